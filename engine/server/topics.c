/*
 * Topics at runtime (issue 22): the registry that keeps them,
 * `data_dir/topics.yaml` (a `topics:` list in the config's own form,
 * written by config/dump.c and read back by the config's topic table, so a
 * runtime topic is checked exactly as a configured one); the spec of a
 * topic as the server builds it; the admin calls are topics_admin.c's.
 *
 * Create: the topic is built in the next slot (folders, logs), written to
 * the registry (durable before anything can be acked in it), adopted by
 * every reactor, then published to lookups. Delete: marked deleted (no
 * lookup finds it), every reactor drops its partitions (what was appended
 * still becomes durable and is acked, then the logs close), the folder is
 * renamed to `.deleted-NAME-SLOT`, the registry rewritten, the folder
 * removed; a start removes what a crash left of such folders. A topic of
 * the config is altered or deleted in the config, not here.
 *
 * Threads: the admin calls (topics_admin.c) on any thread but a reactor's,
 * one at a time under the registry's mutex; load/free on the control
 * thread at create/destroy.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "config/config.h"
#include "reactor/reactor.h"
#include "server/server.h"

#define SL__TOPICS_FILE "topics.yaml"
#define SL__DELETED     ".deleted-"

/* Each reactor's summary publishes the most keys a topic may ask for. */
_Static_assert(SL_CONFIG_TOPIC_HOT_KEYS_MAX <= SL_HOT_K_MAX, "hot_keys beyond what is published");

int sl_server_topic_spec(const struct sl_config_topic *c, struct sl_topic_spec *out, char *err,
                         size_t errlen)
{
	memset(out, 0, sizeof(*out));
	out->name = c->name;
	out->n_parts = c->partitions;
	static const enum sl_part_kind kinds[] = {
	    [SL_CONFIG_PART_HASH] = SL_PART_HASH,
	    [SL_CONFIG_PART_RANGE] = SL_PART_RANGE,
	    [SL_CONFIG_PART_CONSISTENT] = SL_PART_CONSISTENT,
	    [SL_CONFIG_PART_JUMP] = SL_PART_JUMP,
	    [SL_CONFIG_PART_DIRECTORY] = SL_PART_DIRECTORY,
	};
	out->partitioner = kinds[c->partitioner];
	out->part_args = (struct sl_part_spec){
	    .splits = (const char *const *)c->part_splits,
	    .n_splits = (uint32_t)c->n_part_splits,
	    .vnodes = c->part_vnodes,
	    .file = c->part_file,
	    .fallback = kinds[c->part_fallback],
	};
	out->segment_bytes = c->segment_bytes;
	out->interval_ns = c->durability_interval_ns;
	out->durability = c->durability == SL_CONFIG_DUR_INTERVAL ? SL_LOG_INTERVAL
	                  : c->durability == SL_CONFIG_DUR_NONE   ? SL_LOG_NONE
	                                                          : SL_LOG_FSYNC;
	out->overload = c->overload == SL_CONFIG_OVERLOAD_DROP     ? SL_OVERLOAD_DROP
	                : c->overload == SL_CONFIG_OVERLOAD_SAMPLE ? SL_OVERLOAD_SAMPLE
	                : c->overload == SL_CONFIG_OVERLOAD_REJECT ? SL_OVERLOAD_REJECT
	                                                           : SL_OVERLOAD_BLOCK;
	out->sample_rate = c->sample_rate;
	out->replicas = c->replicas;
	out->acks = c->acks == SL_CONFIG_ACKS_ALL      ? SL_REPL_ACKS_ALL
	            : c->acks == SL_CONFIG_ACKS_QUORUM ? SL_REPL_ACKS_QUORUM
	                                               : SL_REPL_ACKS_LEADER;
	out->min_insync = c->min_insync;
	out->replica_lag_max_ns = c->replica_lag_max_ns;
	out->unclean_election = c->unclean_election;
	out->producer_expiry_ns = c->producer_expiry_ns;
	/* Rounded up to a millisecond: a window set is never off. */
	out->dedup_window_ms = (int64_t)((c->dedup_window_ns + 999999) / 1000000);
	out->dedup_window_events = (uint32_t)c->dedup_window_events;
	out->hot_keys = c->hot_keys;
	out->hot_factor = c->hot_partition_factor;
	out->retention_bytes = c->retention_bytes;
	/* Rounded up to a millisecond: a limit set is never off. */
	out->retention_age_ms = (c->retention_age_ns + 999999) / 1000000;
	(void)err;
	(void)errlen;
	return 0;
}

int sl_server_topic_check(const struct sl_config_topic *c, char *err, size_t errlen)
{
	struct sl_topic_spec spec;
	struct sl_partitioner p;
	char perr[400];
	int ret = sl_server_topic_spec(c, &spec, err, errlen);
	if (ret < 0)
		return ret;
	/* The partitioner the server would build, built and dropped: the
	 * directory file is read here exactly as at start. */
	spec.part_args.kind = spec.partitioner;
	spec.part_args.n_parts = spec.n_parts;
	ret = sl_part_init_spec(&p, &spec.part_args, perr, sizeof(perr));
	if (ret < 0) {
		snprintf(err, errlen, "topic '%s': partitioner %s: %s", c->name,
		         sl_part_kind_name(spec.partitioner), perr);
		return ret;
	}
	sl_part_destroy(&p);
	return 0;
}

int sl_server_reload_partitioners(struct sl_server *srv, FILE *log)
{
	uint32_t n = atomic_load(&srv->topics.n);
	int bad = 0;

	for (uint32_t i = 0; i < n; i++) {
		const struct sl_topic *t = &srv->topics.v[i];
		char err[600];
		uint32_t keys = 0;
		if (t->part.kind != SL_PART_DIRECTORY || atomic_load(&t->deleted))
			continue;
		if (sl_part_reload(&t->part, &keys, err, sizeof(err)) < 0) {
			fprintf(
			    log,
			    "sluiced: topic %s: directory not reloaded, the old table stays: %s\n",
			    t->name, err);
			bad++;
		} else {
			fprintf(log, "sluiced: topic %s: directory reloaded from %s (%u keys)\n",
			        t->name, sl_part_dir_file(&t->part), keys);
		}
	}
	return bad;
}

void sl__producers_expiry(struct sl_server *srv)
{
	uint32_t n = atomic_load(&srv->topics.n);
	uint64_t most = 0;

	for (uint32_t i = 0; i < n; i++) {
		uint64_t e = atomic_load(&srv->topics.v[i].producer_expiry_ns);
		/* A topic that never forgets keeps every id. */
		if (!e) {
			most = 0;
			break;
		}
		if (e > most)
			most = e;
	}
	sl_producers_set_expiry(srv->producers, most / 1000000);
}

/* ---- the registry file ------------------------------------------------------ */

int sl__rt_write(struct sl_server *srv)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	if (!f)
		return -ENOMEM;
	int ret = sl_config_topics_dump(srv->rt.v, srv->rt.n, f);
	if (fclose(f) != 0 && ret == 0)
		ret = -EIO;
	if (ret == 0) {
		struct iovec iov = {buf, len};
		ret = sl_file_replace(AT_FDCWD, srv->rt.path, &iov, 1, 0, NULL, NULL);
	}
	free(buf);
	return ret;
}

/* Folders a deletion left behind (renamed, not yet removed). */
static void sl__rt_sweep(const char *data_dir)
{
	DIR *d = opendir(data_dir);
	struct dirent *e;
	if (!d)
		return;
	while ((e = readdir(d)))
		if (!strncmp(e->d_name, SL__DELETED, strlen(SL__DELETED))) {
			char p[4096];
			snprintf(p, sizeof(p), "%s/%s", data_dir, e->d_name);
			(void)sl_rmtree(p);
		}
	closedir(d);
}

/* The topic named `name` among v[0..n), or NULL. */
static const struct sl_config_topic *sl__in(const struct sl_config_topic *v, size_t n,
                                            const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (!strcmp(v[i].name, name))
			return &v[i];
	return NULL;
}

const struct sl_config_topic *sl__cfg_topic(const struct sl_server *srv, const char *name)
{
	return sl__in(srv->opts.config_topics, srv->opts.n_config_topics, name);
}

int sl__rt_parse(const char *yaml, size_t len, const char *path, struct sl_config_topic **v,
                 size_t *n, char *err, size_t errlen)
{
	struct sl_config_node *root = NULL;
	int ret;

	*v = NULL;
	*n = 0;
	ret = sl_config_node_parse(yaml, len, path, &root, err, errlen);
	if (ret < 0)
		goto out;
	const struct sl_config_node *seq = root ? sl_config_node_get(root, "topics") : NULL;
	if (root && (root->kind != SL_CONFIG_NODE_MAP || !seq ||
	             (seq->kind != SL_CONFIG_NODE_SEQ && seq->kind != SL_CONFIG_NODE_NULL))) {
		snprintf(err, errlen, "%s: expected `topics:` and a list", path);
		ret = -SL_ECONFIG;
		goto out;
	}
	size_t m = seq && seq->kind == SL_CONFIG_NODE_SEQ ? seq->n_items : 0;
	*v = calloc(m ? m : 1, sizeof(**v));
	if (!*v) {
		ret = -ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < m; i++) {
		ret = sl_config_topic_parse(&seq->items[i], path, &(*v)[i], err, errlen);
		if (ret < 0)
			goto out;
		*n = i + 1;
	}
out:
	if (ret < 0) {
		for (size_t i = 0; i < *n; i++)
			sl_config_topic_clear(&(*v)[i]);
		free(*v);
		*v = NULL;
		*n = 0;
	}
	sl_config_node_free(root);
	return ret;
}

/* Reads a registry file: *v (malloc'd, *n entries; none when the file
 * does not exist). 0, or -errno / -SL_ECONFIG with err. */
static int sl__rt_read(const char *path, struct sl_config_topic **v, size_t *n, char *err,
                       size_t errlen)
{
	char *yaml = NULL;
	size_t len = 0;
	int ret;

	*v = NULL;
	*n = 0;
	FILE *f = fopen(path, "r");
	if (!f) {
		if (errno == ENOENT)
			return 0;
		ret = -errno;
		snprintf(err, errlen, "read %s: %s", path, strerror(-ret));
		return ret;
	}
	struct stat st;
	if (fstat(fileno(f), &st) == 0 && (yaml = malloc((size_t)st.st_size + 1)))
		len = fread(yaml, 1, (size_t)st.st_size, f);
	fclose(f);
	if (!yaml)
		return -ENOMEM;
	ret = sl__rt_parse(yaml, len, path, v, n, err, errlen);
	free(yaml);
	return ret;
}

int sl__rt_def(const struct sl_config_topic *t, char **def, size_t *len)
{
	*def = NULL;
	*len = 0;
	FILE *f = open_memstream(def, len);
	if (!f)
		return -ENOMEM;
	int ret = sl_config_topics_dump(t, 1, f);
	if (fclose(f) != 0 && ret == 0)
		ret = -EIO;
	if (ret < 0) {
		free(*def);
		*def = NULL;
	}
	return ret;
}

int sl__rt_names(struct sl_server *srv, char ***names, size_t *n)
{
	int ret = 0;
	pthread_mutex_lock(&srv->rt.mu);
	*n = 0;
	*names = calloc(srv->rt.n ? srv->rt.n : 1, sizeof(**names));
	for (size_t i = 0; *names && i < srv->rt.n; i++) {
		if (!((*names)[i] = strdup(srv->rt.v[i].name))) {
			ret = -ENOMEM;
			break;
		}
		*n = i + 1;
	}
	if (!*names)
		ret = -ENOMEM;
	pthread_mutex_unlock(&srv->rt.mu);
	return ret;
}

int sl_server_runtime_topics_check(const char *data_dir, const struct sl_config_topic *cfg,
                                   uint32_t n_cfg, FILE *report, char *err, size_t errlen)
{
	char path[4096];
	struct sl_config_topic *v;
	size_t n;
	snprintf(path, sizeof(path), "%s/%s", data_dir, SL__TOPICS_FILE);
	int ret = sl__rt_read(path, &v, &n, err, errlen);
	if (ret < 0)
		return ret;
	int bad = 0;
	for (size_t i = 0; i < n; i++) {
		const struct sl_config_topic *c = sl__in(cfg, n_cfg, v[i].name);
		if (!c)
			continue;
		if (c->partitions != v[i].partitions) {
			fprintf(
			    report,
			    "# contradiction: topic %s has %u partitions in the config and %u as "
			    "created at runtime (%s): the server refuses to start\n",
			    c->name, c->partitions, v[i].partitions, path);
			bad++;
		} else {
			fprintf(report,
			        "# note: topic %s is in the config and was created at runtime "
			        "(%s): the "
			        "config's definition is used\n",
			        c->name, path);
		}
	}
	for (size_t i = 0; i < n; i++)
		sl_config_topic_clear(&v[i]);
	free(v);
	return bad;
}

int sl__rt_load(struct sl_server *srv, struct sl_topic_spec **specs, uint32_t *n, char *err,
                size_t errlen)
{
	const struct sl_server_opts *o = &srv->opts;
	struct sl_config_topic *v = NULL;
	size_t m = 0;
	int ret;

	pthread_mutex_init(&srv->rt.mu, NULL);
	srv->rt.inited = true;
	*specs = NULL;
	*n = 0;
	if (asprintf(&srv->rt.path, "%s/%s", o->data_dir, SL__TOPICS_FILE) < 0) {
		srv->rt.path = NULL;
		return -ENOMEM;
	}
	sl__rt_sweep(o->data_dir);
	ret = sl__rt_read(srv->rt.path, &v, &m, err, errlen);
	if (ret < 0)
		return ret;
	srv->rt.v = calloc(m ? m : 1, sizeof(*srv->rt.v));
	if (!srv->rt.v) {
		ret = -ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < m; i++) {
		struct sl_config_topic *t = &v[i];
		const struct sl_config_topic *c = sl__cfg_topic(srv, t->name);
		bool dup = sl__in(srv->rt.v, srv->rt.n, t->name) != NULL;
		if (c && c->partitions != t->partitions) {
			snprintf(
			    err, errlen,
			    "topic %s: the config gives it %u partitions, but it was created at "
			    "runtime with %u (%s): remove it from one of them",
			    t->name, c->partitions, t->partitions, srv->rt.path);
			ret = -SL_ECONFIG;
			goto out;
		}
		if (c || dup) {
			fprintf(stderr,
			        "sluiced: topic %s is %s and was created at runtime (%s): %s's "
			        "definition is used\n",
			        t->name, c ? "in the config" : "listed twice", srv->rt.path,
			        c ? "the config" : "the first");
			continue;
		}
		srv->rt.v[srv->rt.n++] = *t;
		memset(t, 0, sizeof(*t));
	}
	*specs = calloc(o->n_topics + srv->rt.n + 1, sizeof(**specs));
	if (!*specs) {
		ret = -ENOMEM;
		goto out;
	}
	if (o->n_topics)
		memcpy(*specs, o->topics, o->n_topics * sizeof(**specs));
	for (size_t i = 0; i < srv->rt.n; i++) {
		ret = sl_server_topic_spec(&srv->rt.v[i], &(*specs)[o->n_topics + i], err, errlen);
		if (ret < 0)
			goto out;
	}
	*n = o->n_topics + (uint32_t)srv->rt.n;
	ret = 0;
out:
	if (ret < 0) {
		free(*specs);
		*specs = NULL;
	}
	for (size_t i = 0; i < m; i++)
		sl_config_topic_clear(&v[i]);
	free(v);
	return ret;
}

void sl__rt_free(struct sl_server *srv)
{
	for (size_t i = 0; i < srv->rt.n; i++)
		sl_config_topic_clear(&srv->rt.v[i]);
	free(srv->rt.v);
	free(srv->rt.path);
	if (srv->rt.inited)
		pthread_mutex_destroy(&srv->rt.mu);
	memset(&srv->rt, 0, sizeof(srv->rt));
}

struct sl_config_topic *sl__rt_find(struct sl_server *srv, const char *name)
{
	/* The registry is the server's own (mutable) array. */
	return (struct sl_config_topic *)sl__in(srv->rt.v, srv->rt.n, name);
}
