/* Checks across keys and entries: limits that bound each other, listen
 * addresses off loopback only with `auth`, and the pipelines' topics (bound,
 * derived or waited for, and free of cycles). */
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
	/* Topics come from the config alone in cluster mode (none is made at
	 * runtime there): a consumer of a topic no entry lists is a typo. */
	for (size_t i = 0; cfg->cluster.n_etcd && i < cfg->n_projections + cfg->n_sinks; i++) {
		const struct sl_config_consumer *c = i < cfg->n_projections
		                                         ? &cfg->projections[i]
		                                         : &cfg->sinks[i - cfg->n_projections];
		if (c->from_topic == SL_CONFIG_TOPIC_LATER)
			return sl__cfg_fail(
			    ld, c->line, i < cfg->n_projections ? "projections" : "sinks",
			    "no topic named '%s' (in cluster mode every topic is in "
			    "the config)",
			    c->from);
	}
	for (size_t i = 0; cfg->cluster.n_etcd && i < cfg->n_pipelines; i++)
		if (cfg->pipelines[i].from_topic == SL_CONFIG_TOPIC_LATER ||
		    cfg->pipelines[i].to_topic == SL_CONFIG_TOPIC_LATER)
			return sl__cfg_fail(
			    ld, cfg->pipelines[i].line, "pipelines",
			    "no topic named '%s' (in cluster mode every topic is in "
			    "the config)",
			    cfg->pipelines[i].from_topic == SL_CONFIG_TOPIC_LATER
			        ? cfg->pipelines[i].from
			        : cfg->pipelines[i].to);
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

/* The node of topic `name` in the pipelines' graph: its index when the
 * file lists it, else one past the listed ones per name that a pipeline
 * waits for (names[], *n_names grows). */
static size_t sl__graph_node(const struct sl_config *cfg, size_t listed, const char *name,
                             const char **names, size_t *n_names)
{
	if (listed != SL_CONFIG_TOPIC_LATER)
		return listed;
	for (size_t k = 0; k < *n_names; k++)
		if (!strcmp(names[k], name))
			return cfg->n_topics + k;
	names[*n_names] = name;
	return cfg->n_topics + (*n_names)++;
}

/* Kahn's algorithm over the topic graph the pipelines draw: events that
 * flowed around a cycle would be reprocessed forever. Topics a pipeline
 * waits for are nodes too: a cycle through them would close once they
 * exist. */
static int sl__check_cycles(struct sl__ld *ld, const struct sl_config_node *seq, const char *path,
                            const struct sl_config *cfg)
{
	size_t np = cfg->n_pipelines, nn, n_names = 0;
	size_t *fi = calloc(np + 1, sizeof(*fi)), *ti = calloc(np + 1, sizeof(*ti));
	const char **names = calloc(2 * np + 1, sizeof(*names));
	size_t *indeg = calloc(cfg->n_topics + 2 * np + 1, sizeof(*indeg));
	size_t *queue = calloc(cfg->n_topics + 2 * np + 1, sizeof(*queue));
	size_t head = 0, tail = 0;
	int rc = 0;

	if (!fi || !ti || !names || !indeg || !queue) {
		rc = sl__cfg_oom(ld);
		goto out;
	}
	for (size_t i = 0; i < np; i++) {
		const struct sl_config_pipeline *pl = &cfg->pipelines[i];
		fi[i] = sl__graph_node(cfg, pl->from_topic, pl->from, names, &n_names);
		ti[i] = sl__graph_node(cfg, pl->to_topic, pl->to, names, &n_names);
	}
	nn = cfg->n_topics + n_names;
	for (size_t i = 0; i < np; i++)
		indeg[ti[i]]++;
	for (size_t t = 0; t < nn; t++) {
		if (!indeg[t])
			queue[tail++] = t;
	}
	while (head < tail) {
		size_t t = queue[head++];

		for (size_t i = 0; i < np; i++) {
			if (fi[i] == t && !--indeg[ti[i]])
				queue[tail++] = ti[i];
		}
	}
	if (tail < nn) {
		/* Unprocessed topics all have an unprocessed predecessor; walking
		 * back n steps from any of them must end on the cycle itself. */
		size_t t = 0, at = 0;
		char p[SL__PATH];

		while (!indeg[t])
			t++;
		for (size_t step = 0; step < nn; step++) {
			for (size_t i = 0; i < np; i++) {
				if (ti[i] == t && indeg[fi[i]]) {
					t = fi[i];
					break;
				}
			}
		}
		for (size_t i = 0; i < np; i++) {
			if (fi[i] == t && indeg[ti[i]]) {
				at = i;
				break;
			}
		}
		sl__cfg_idx(p, path, at);
		rc = sl__cfg_fail(
		    ld, seq->items[at].line, p, "pipelines form a cycle through topic '%s'",
		    t < cfg->n_topics ? cfg->topics[t].name : names[t - cfg->n_topics]);
	}
out:
	free(fi);
	free(ti);
	free(names);
	free(indeg);
	free(queue);
	return rc;
}

/*
 * Binds each pipeline's `from` and `to` to topics. A `to` that no topic
 * lists is made from its `from` topic; that topic may itself be such a
 * `to`, listed later, so this runs passes until nothing more resolves.
 * What is left waits for topics made at runtime (SL_CONFIG_TOPIC_LATER).
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
	/* What is left reads a topic no entry lists: it waits for one created
	 * at runtime (or in data_dir/topics.yaml). Its `to`, when no entry
	 * lists it either, is not made here (the settings it would copy are
	 * unknown): the pipeline waits for both. */
	for (size_t i = 0; i < cfg->n_pipelines; i++) {
		struct sl_config_pipeline *pl = &cfg->pipelines[i];
		ssize_t to;

		if (done[i])
			continue;
		if (!strcmp(pl->from, pl->to)) {
			sl__cfg_idx(p, path, i);
			sl__cfg_sub(kp, p, "to");
			rc = sl__cfg_fail(ld, sl_config_node_get(&seq->items[i], "to")->line, kp,
			                  "'%s' is also the pipeline's 'from' topic", pl->to);
			goto out;
		}
		to = sl__cfg_topic_index(cfg, pl->to);
		pl->from_topic = SL_CONFIG_TOPIC_LATER;
		pl->to_topic = to < 0 ? SL_CONFIG_TOPIC_LATER : (size_t)to;
	}
	rc = sl__check_cycles(ld, seq, path, cfg);
out:
	free(done);
	return rc;
}
