/* Checks across keys and entries: limits that bound each other, listen
 * addresses off loopback only with `auth`, and the pipelines' topics (bound,
 * derived, and free of cycles). */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "config/keys.h"

int sl__cfg_limits_check(struct sl__ld *ld, const struct sl_config_node *map, const char *path,
                         void *obj)
{
	const struct sl_config_limits *l = obj;
	char a[32], b[32];

	if (l->max_frame_bytes <= l->memory_budget)
		return 0;
	sl__cfg_fmt_size(l->max_frame_bytes, a, sizeof(a));
	sl__cfg_fmt_size(l->memory_budget, b, sizeof(b));
	return sl__cfg_fail(ld, map->line, path,
	                    "max_frame_bytes (%s) is larger than memory_budget (%s)", a, b);
}

/* A numeric host of the loopback network: 127.0.0.0/8 or ::1. */
static bool sl__loopback(const char *host)
{
	struct in_addr a4;
	struct in6_addr a6;

	if (!strcmp(host, "localhost"))
		return true;
	if (inet_pton(AF_INET, host, &a4) == 1)
		return (ntohl(a4.s_addr) >> 24) == 127;
	if (inet_pton(AF_INET6, host, &a6) == 1)
		return IN6_IS_ADDR_LOOPBACK(&a6) ||
		       (IN6_IS_ADDR_V4MAPPED(&a6) && a6.s6_addr[12] == 127);
	return false;
}

/* An open port is a choice someone made, not a default someone missed (the
 * class of Fluent Bit's CVE-2024-4323): a listen address off loopback needs
 * `auth.token_file`, or `auth.allow_unauthenticated: true` said out loud. */
int sl__cfg_open_ports_check(struct sl__ld *ld, const struct sl_config_node *map, const char *path,
                             void *obj)
{
	const struct sl_config *cfg = obj;
	const struct sl_config_addr *addrs[] = {&cfg->listen.native, &cfg->listen.http};
	const char *names[] = {"listen.native", "listen.http"};

	(void)path;
	if (cfg->auth.token_file || cfg->auth.allow_unauthenticated)
		return 0;
	for (size_t i = 0; i < SL_ARRAY_LEN(addrs); i++)
		if (addrs[i]->host && !sl__loopback(addrs[i]->host))
			return sl__cfg_fail(
			    ld, map->line, names[i],
			    "%s is not a loopback address and `auth` is not set: set "
			    "auth.token_file, or auth.allow_unauthenticated: true to "
			    "serve it without authentication",
			    addrs[i]->host);
	return 0;
}

/* A replicated topic needs a cluster to put its replicas on. */
int sl__cfg_root_check(struct sl__ld *ld, const struct sl_config_node *map, const char *path,
                       void *obj)
{
	const struct sl_config *cfg = obj;
	int rc = sl__cfg_open_ports_check(ld, map, path, obj);

	if (rc)
		return rc;
	/* A client in cluster mode routes each event to its partition's leader
	 * with the hash partitioner (client/route.c): a topic that places keys
	 * otherwise would be refused event by event. */
	for (size_t i = 0; cfg->cluster.n_etcd && i < cfg->n_topics; i++)
		if (cfg->topics[i].partitioner != SL_CONFIG_PART_HASH)
			return sl__cfg_fail(
			    ld, cfg->topics[i].line, "topics",
			    "topic '%s': partitioner %s is not available in cluster mode yet "
			    "(clients route by hash): use hash",
			    cfg->topics[i].name,
			    sl_config_partitioner_name(cfg->topics[i].partitioner));
	if (cfg->cluster.n_etcd)
		return rc;
	for (size_t i = 0; i < cfg->n_topics; i++)
		if (cfg->topics[i].replicas > 1)
			return sl__cfg_fail(
			    ld, cfg->topics[i].line, "topics",
			    "topic '%s' asks for %u replicas, but this node is not in a "
			    "cluster (set cluster.etcd)",
			    cfg->topics[i].name, cfg->topics[i].replicas);
	return 0;
}

/* The etcd client speaks plain HTTP to etcd's gateway (etcd/etcd.h). */
int sl__cfg_cluster_check(struct sl__ld *ld, const struct sl_config_node *map, const char *path,
                          void *obj)
{
	const struct sl_config_cluster *c = obj;

	for (size_t i = 0; i < c->n_etcd; i++)
		if (strncmp(c->etcd[i], "http://", 7) || !c->etcd[i][7])
			return sl__cfg_fail(
			    ld, map->line, path,
			    "etcd endpoint '%s': expected http://host:port (https is "
			    "not supported)",
			    c->etcd[i]);
	return 0;
}

/* acks and min_insync default from the replica count (PRODUCT.md): quorum
 * from three replicas, a majority in sync. */
int sl__cfg_topic_check(struct sl__ld *ld, const struct sl_config_node *map, const char *path,
                        void *obj)
{
	struct sl_config_topic *t = obj;

	if (!sl_config_node_get(map, "acks"))
		t->acks = t->replicas >= 3 ? SL_CONFIG_ACKS_QUORUM : SL_CONFIG_ACKS_LEADER;
	if (!sl_config_node_get(map, "min_insync"))
		t->min_insync = t->replicas / 2 + 1;
	if (t->min_insync > t->replicas)
		return sl__cfg_fail(ld, map->line, path,
		                    "min_insync (%u) is larger than replicas (%u)", t->min_insync,
		                    t->replicas);
	return sl__cfg_part_args(ld, t, path);
}

static int sl__add_derived(struct sl__ld *ld, struct sl_config *cfg, size_t from, const char *name,
                           uint32_t line)
{
	struct sl_config_topic *topics, *t;

	topics = realloc(cfg->topics, (cfg->n_topics + 1) * sizeof(*topics));
	if (!topics)
		return sl__cfg_oom(ld);
	cfg->topics = topics;
	t = &topics[cfg->n_topics];
	*t = topics[from];
	t->name = strdup(name);
	if (!t->name)
		return sl__cfg_oom(ld);
	/* Its own copies of what the struct copy shared. */
	t->part_splits = NULL;
	t->n_part_splits = 0;
	t->part_file = NULL;
	if (sl_config_node_dup(topics[from].partitioner_args, &t->partitioner_args)) {
		free(t->name);
		return sl__cfg_oom(ld);
	}
	t->derived = true;
	t->line = line;
	cfg->n_topics++;
	return sl__cfg_part_args(ld, t, name);
}

/* Kahn's algorithm over the topic graph the pipelines draw: events that
 * flowed around a cycle would be reprocessed forever. */
static int sl__check_cycles(struct sl__ld *ld, const struct sl_config_node *seq, const char *path,
                            const struct sl_config *cfg)
{
	size_t *indeg = calloc(cfg->n_topics + 1, sizeof(*indeg));
	size_t *queue = calloc(cfg->n_topics + 1, sizeof(*queue));
	size_t head = 0, tail = 0;
	int rc = 0;

	if (!indeg || !queue) {
		rc = sl__cfg_oom(ld);
		goto out;
	}
	for (size_t i = 0; i < cfg->n_pipelines; i++)
		indeg[cfg->pipelines[i].to_topic]++;
	for (size_t t = 0; t < cfg->n_topics; t++) {
		if (!indeg[t])
			queue[tail++] = t;
	}
	while (head < tail) {
		size_t t = queue[head++];

		for (size_t i = 0; i < cfg->n_pipelines; i++) {
			if (cfg->pipelines[i].from_topic == t &&
			    !--indeg[cfg->pipelines[i].to_topic])
				queue[tail++] = cfg->pipelines[i].to_topic;
		}
	}
	if (tail < cfg->n_topics) {
		/* Unprocessed topics all have an unprocessed predecessor; walking
		 * back n steps from any of them must end on the cycle itself. */
		size_t t = 0, at = 0;
		char p[SL__PATH];

		while (!indeg[t])
			t++;
		for (size_t step = 0; step < cfg->n_topics; step++) {
			for (size_t i = 0; i < cfg->n_pipelines; i++) {
				if (cfg->pipelines[i].to_topic == t &&
				    indeg[cfg->pipelines[i].from_topic]) {
					t = cfg->pipelines[i].from_topic;
					break;
				}
			}
		}
		for (size_t i = 0; i < cfg->n_pipelines; i++) {
			if (cfg->pipelines[i].from_topic == t &&
			    indeg[cfg->pipelines[i].to_topic]) {
				at = i;
				break;
			}
		}
		sl__cfg_idx(p, path, at);
		rc = sl__cfg_fail(ld, seq->items[at].line, p,
		                  "pipelines form a cycle through topic '%s'", cfg->topics[t].name);
	}
out:
	free(indeg);
	free(queue);
	return rc;
}

/*
 * Binds each pipeline's `from` and `to` to topics. A `to` that no topic
 * lists is made from its `from` topic; that topic may itself be such a
 * `to`, listed later, so this runs passes until nothing more resolves.
 */
int sl__cfg_resolve_pipelines(struct sl__ld *ld, const struct sl_config_node *seq, const char *path,
                              void *obj)
{
	struct sl_config *cfg = obj;
	bool *done = calloc(cfg->n_pipelines + 1, sizeof(*done));
	size_t left = cfg->n_pipelines;
	char p[SL__PATH], kp[SL__PATH];
	int rc = 0;

	if (!done)
		return sl__cfg_oom(ld);
	for (bool progress = true; left && progress;) {
		progress = false;
		for (size_t i = 0; i < cfg->n_pipelines && !rc; i++) {
			struct sl_config_pipeline *pl = &cfg->pipelines[i];
			ssize_t from, to;

			if (done[i] || (from = sl__cfg_topic_index(cfg, pl->from)) < 0)
				continue;
			if (!strcmp(pl->from, pl->to)) {
				sl__cfg_idx(p, path, i);
				sl__cfg_sub(kp, p, "to");
				rc = sl__cfg_fail(
				    ld, sl_config_node_get(&seq->items[i], "to")->line, kp,
				    "'%s' is also the pipeline's 'from' topic", pl->to);
				break;
			}
			to = sl__cfg_topic_index(cfg, pl->to);
			if (to < 0) {
				rc =
				    sl__add_derived(ld, cfg, (size_t)from, pl->to,
				                    sl_config_node_get(&seq->items[i], "to")->line);
				to = (ssize_t)cfg->n_topics - 1;
			}
			pl->from_topic = (size_t)from;
			pl->to_topic = (size_t)to;
			done[i] = true;
			left--;
			progress = true;
		}
		if (rc)
			goto out;
	}
	for (size_t i = 0; i < cfg->n_pipelines; i++) {
		if (done[i])
			continue;
		sl__cfg_idx(p, path, i);
		sl__cfg_sub(kp, p, "from");
		rc = sl__cfg_fail(ld, sl_config_node_get(&seq->items[i], "from")->line, kp,
		                  "no topic named '%s'", cfg->pipelines[i].from);
		goto out;
	}
	rc = sl__check_cycles(ld, seq, path, cfg);
out:
	free(done);
	return rc;
}
