/*
 * Topics at runtime (issue 22), the admin calls: create, list, describe,
 * alter, delete, as HTTP's /v1/topics, the native port's TopicAdmin (the
 * admin thread, server/admin.c) and a cluster's registry (topics_cluster.c)
 * ask them. What they do and in which order is server/topics.c's header;
 * each call is done under the registry's mutex. Every answer is an HTTP
 * status and a JSON document.
 *
 * Threads: any but a reactor's (HTTP threads, the admin thread).
 */
#include "config/config.h"
#include "reactor/reactor.h"
#include "server/server.h"
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

#define SL__DELETED ".deleted-"

/* ---- answers ------------------------------------------------------------------ */

static int sl__reply(struct json_object *o, char **body, size_t *blen, int status)
{
	const char *s = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN);
	*body = strdup(s ? s : "{}");
	*blen = *body ? strlen(*body) : 0;
	json_object_put(o);
	return *body ? status : 500;
}

static int sl__error(char **body, size_t *blen, int status, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static int sl__error(char **body, size_t *blen, int status, const char *code, const char *fmt, ...)
{
	char msg[700];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	struct json_object *o = json_object_new_object();
	json_object_object_add(o, "error", json_object_new_string(code));
	json_object_object_add(o, "message", json_object_new_string(msg));
	return sl__reply(o, body, blen, status);
}

static void sl__setting(void *arg, const char *key, const char *value)
{
	if (strcmp(key, "name") && strcmp(key, "partitions"))
		json_object_object_add(arg, key, json_object_new_string(value));
}

/* What the partitions run under now (an alter answers once every partition
 * switched), in the config's form. */
static const char *sl__durability_text(const struct sl_topic *t, char *buf, size_t len)
{
	if (t->spec.durability == SL_LOG_FSYNC)
		return "fsync";
	if (t->spec.durability == SL_LOG_NONE)
		return "none";
	uint64_t ns = t->spec.interval_ns;
	if (ns % 1000000000u == 0)
		snprintf(buf, len, "interval:%" PRIu64 "s", ns / 1000000000u);
	else if (ns % 1000000u == 0)
		snprintf(buf, len, "interval:%" PRIu64 "ms", ns / 1000000u);
	else
		snprintf(buf, len, "interval:%" PRIu64 "us", ns / 1000u);
	return buf;
}

static struct json_object *sl__topic_json(struct sl_server *srv, const struct sl_topic *t)
{
	struct json_object *o = json_object_new_object(), *set = json_object_new_object();
	struct json_object *ends = json_object_new_array();
	json_object_object_add(o, "name", json_object_new_string(t->name));
	json_object_object_add(o, "partitions", json_object_new_int64(t->n_parts));
	json_object_object_add(o, "replicas",
	                       json_object_new_int64(t->spec.replicas ? t->spec.replicas : 1));
	json_object_object_add(o, "source",
	                       json_object_new_string(t->runtime ? "runtime" : "config"));
	char dbuf[48];
	json_object_object_add(o, "durability",
	                       json_object_new_string(sl__durability_text(t, dbuf, sizeof(dbuf))));
	const struct sl_config_topic *c =
	    t->runtime ? sl__rt_find(srv, t->name) : sl__cfg_topic(srv, t->name);
	if (c)
		sl_config_topic_each(c, sl__setting, set);
	json_object_object_add(o, "settings", set);
	for (uint32_t p = 0; p < t->n_parts; p++)
		json_object_array_add(ends, json_object_new_int64((int64_t)atomic_load_explicit(
		                                &t->parts[p].durable_pub, memory_order_acquire)));
	json_object_object_add(o, "end_offsets", ends);
	return o;
}

int sl_server_topic_list(struct sl_server *srv, char **body, size_t *blen)
{
	struct json_object *o = json_object_new_object(), *a = json_object_new_array();
	pthread_mutex_lock(&srv->rt.mu);
	uint32_t n = atomic_load(&srv->topics.n);
	for (uint32_t i = 0; i < n; i++)
		if (!atomic_load(&srv->topics.v[i].deleted))
			json_object_array_add(a, sl__topic_json(srv, &srv->topics.v[i]));
	pthread_mutex_unlock(&srv->rt.mu);
	json_object_object_add(o, "topics", a);
	return sl__reply(o, body, blen, 200);
}

int sl_server_topic_describe(struct sl_server *srv, const char *name, size_t name_len, char **body,
                             size_t *blen)
{
	pthread_mutex_lock(&srv->rt.mu);
	struct sl_topic *t = sl_topics_find(&srv->topics, name, name_len);
	int ret = t ? sl__reply(sl__topic_json(srv, t), body, blen, 200)
	            : sl__error(body, blen, 404, "not_found", "no topic named '%.*s'",
	                        (int)name_len, name);
	pthread_mutex_unlock(&srv->rt.mu);
	return ret;
}

/* ---- requests ------------------------------------------------------------------ */

/* Appends a deep copy of `val` to map `m` under `key`. */
static int sl__map_put(struct sl_config_node *m, const char *key, const struct sl_config_node *val)
{
	struct sl_config_node *items = realloc(m->items, (m->n_items + 1) * sizeof(*items));
	if (!items)
		return -ENOMEM;
	m->items = items;
	struct sl_config_node *dup = NULL;
	if (sl_config_node_dup(val, &dup) < 0 || !dup)
		return -ENOMEM;
	items[m->n_items] = *dup;
	free(dup);
	free(items[m->n_items].key);
	items[m->n_items].key = strdup(key);
	if (!items[m->n_items].key) {
		m->n_items++;
		return -ENOMEM;
	}
	m->n_items++;
	return 0;
}

static struct sl_config_node *sl__new_map(void)
{
	struct sl_config_node *m = calloc(1, sizeof(*m));
	if (m)
		m->kind = SL_CONFIG_NODE_MAP;
	return m;
}

/* Puts `val` at a dotted key ("retention.bytes": map retention, key bytes)
 * of map `m`, replacing what is there. */
static int sl__put_dotted(struct sl_config_node *m, const char *key,
                          const struct sl_config_node *val)
{
	const char *dot = strchr(key, '.');
	size_t klen = dot ? (size_t)(dot - key) : strlen(key);
	for (size_t i = 0; i < m->n_items; i++) {
		struct sl_config_node *e = &m->items[i];
		if (strlen(e->key) != klen || memcmp(e->key, key, klen))
			continue;
		if (!dot) {
			/* Swap the new value in; the old one leaves in dup's
			 * wrapper, freed whole. */
			struct sl_config_node *dup = NULL;
			if (sl_config_node_dup(val, &dup) < 0 || !dup)
				return -ENOMEM;
			struct sl_config_node old = *e;
			*e = *dup;
			free(e->key);
			e->key = old.key;
			old.key = NULL;
			*dup = old;
			sl_config_node_free(dup);
			return 0;
		}
		if (e->kind != SL_CONFIG_NODE_MAP)
			return -EINVAL;
		return sl__put_dotted(e, dot + 1, val);
	}
	if (!dot)
		return sl__map_put(m, key, val);
	char head[128];
	if (klen >= sizeof(head))
		return -EINVAL;
	memcpy(head, key, klen);
	head[klen] = '\0';
	struct sl_config_node empty = {.kind = SL_CONFIG_NODE_MAP};
	int ret = sl__map_put(m, head, &empty);
	if (ret < 0)
		return ret;
	return sl__put_dotted(&m->items[m->n_items - 1], dot + 1, val);
}

struct sl__put {
	struct sl_config_node *map;
	int ret;
};

static void sl__put_text(void *arg, const char *key, const char *value)
{
	struct sl__put *pt = arg;
	struct sl_config_node v = {.kind = SL_CONFIG_NODE_SCALAR, .value = (char *)value};
	int r = sl__put_dotted(pt->map, key, &v);
	if (r < 0 && !pt->ret)
		pt->ret = r;
}

/* The settings map of a request into `topic` (a map being built). */
static int sl__put_settings(struct sl_config_node *topic, const struct sl_config_node *settings,
                            char *err, size_t errlen)
{
	if (!settings || settings->kind == SL_CONFIG_NODE_NULL)
		return 0;
	if (settings->kind != SL_CONFIG_NODE_MAP) {
		snprintf(err, errlen, "settings: expected a map of key: value");
		return -EINVAL;
	}
	for (size_t i = 0; i < settings->n_items; i++) {
		const struct sl_config_node *e = &settings->items[i];
		if (!strcmp(e->key, "name") || !strcmp(e->key, "partitions")) {
			snprintf(err, errlen,
			         "settings: '%s' is not a setting (give it beside them)", e->key);
			return -EINVAL;
		}
		int ret = sl__put_dotted(topic, e->key, e);
		if (ret < 0) {
			snprintf(err, errlen, "settings: %s: %s", e->key,
			         ret == -EINVAL ? "not a key of a topic" : strerror(-ret));
			return ret;
		}
	}
	return 0;
}

static int sl__parse_body(const char *json, size_t len, struct sl_config_node **root, char *err,
                          size_t errlen)
{
	int ret = sl_config_node_parse(json, len, "request body", root, err, errlen);
	if (ret < 0)
		return ret;
	if (!*root || (*root)->kind != SL_CONFIG_NODE_MAP) {
		snprintf(err, errlen, "request body: expected a JSON object");
		return -EINVAL;
	}
	return 0;
}

/* Has every reactor do kind (adopt or drop) for topic `index`. */
static int sl__all_reactors(struct sl_server *srv, uint32_t index, bool adopt)
{
	int ret = 0;
	for (uint32_t r = 0; r < srv->n; r++) {
		int x = adopt ? sl_reactor_adopt(srv->reactors[r], index)
		              : sl_reactor_drop(srv->reactors[r], index);
		if (x < 0)
			ret = x;
	}
	return ret;
}

int sl_server_topic_create(struct sl_server *srv, const char *json, size_t len, char **body,
                           size_t *blen)
{
	return sl__topic_create(srv, json, len, NULL, 0, false, body, blen);
}

/* Names under SL_TOPIC_INTERNAL_PREFIX are the server's own topics (the
 * offsets of consumer groups): made by the server, never by a request, and
 * not altered or deleted by one. */
static bool sl__reserved(const char *name)
{
	return !strncmp(name, SL_TOPIC_INTERNAL_PREFIX, sizeof(SL_TOPIC_INTERNAL_PREFIX) - 1);
}

/* A definition from the cluster's registry: exactly one topic. */
static int sl__def_parse(const char *def, size_t def_len, struct sl_config_topic *ct, char *err,
                         size_t errlen)
{
	struct sl_config_topic *v;
	size_t n;
	int ret = sl__rt_parse(def, def_len, "cluster topic", &v, &n, err, errlen);
	if (ret < 0)
		return ret;
	if (n != 1) {
		snprintf(err, errlen, "a cluster topic definition holds %zu topics", n);
		ret = -SL_ECONFIG;
	} else {
		*ct = v[0];
		memset(&v[0], 0, sizeof(v[0]));
	}
	for (size_t i = 0; i < n; i++)
		sl_config_topic_clear(&v[i]);
	free(v);
	return ret;
}

int sl__topic_create(struct sl_server *srv, const char *json, size_t len, const char *def,
                     size_t def_len, bool internal, char **body, size_t *blen)
{
	char err[600] = "";
	struct sl_config_node *root = NULL, *topic = sl__new_map();
	struct sl_config_topic ct = {0};
	char *mydef = NULL, name[256] = "";
	size_t mydef_len = 0;
	bool in_etcd = false;
	int status = 400, ret;

	pthread_mutex_lock(&srv->rt.mu);
	if (!topic) {
		status = sl__error(body, blen, 500, "internal", "out of memory");
		goto out;
	}
	if (def) {
		/* Made by another node (or by this one before a restart): its
		 * definition as the cluster holds it. */
		ret = sl__def_parse(def, def_len, &ct, err, sizeof(err));
		if (ret < 0) {
			status = sl__error(body, blen, 400, "bad_request", "%s", err);
			goto out;
		}
		goto parsed;
	}
	ret = sl__parse_body(json, len, &root, err, sizeof(err));
	if (ret < 0) {
		status = sl__error(body, blen, 400, "bad_request", "%s", err);
		goto out;
	}
	for (size_t i = 0; i < root->n_items; i++) {
		const struct sl_config_node *e = &root->items[i];
		if (!strcmp(e->key, "name") || !strcmp(e->key, "partitions"))
			ret = sl__map_put(topic, e->key, e);
		else if (!strcmp(e->key, "settings"))
			ret = sl__put_settings(topic, e, err, sizeof(err));
		else if (!strcmp(e->key, "replicas") && srv->cl)
			ret = sl__map_put(topic, e->key, e); /* the config's check */
		else if (!strcmp(e->key, "replicas")) {
			if (e->kind != SL_CONFIG_NODE_SCALAR || strcmp(e->value, "1")) {
				status =
				    sl__error(body, blen, 400, "bad_request",
				              "replicas: only 1 without cluster mode (got %s)",
				              e->kind == SL_CONFIG_NODE_SCALAR ? e->value : "?");
				goto out;
			}
			ret = 0;
		} else {
			status = sl__error(
			    body, blen, 400, "bad_request",
			    "unknown field '%s' (name, partitions, replicas, settings)", e->key);
			goto out;
		}
		if (ret < 0) {
			status = sl__error(body, blen, 400, "bad_request", "%s",
			                   err[0] ? err : strerror(-ret));
			goto out;
		}
	}
	ret = sl_config_topic_parse(topic, "topic", &ct, err, sizeof(err));
	if (ret < 0) {
		status = sl__error(body, blen, 400, "bad_request", "%s", err);
		goto out;
	}
parsed:
	snprintf(name, sizeof(name), "%s", ct.name);
	if (!def && !internal && sl__reserved(ct.name)) {
		status = sl__error(body, blen, 400, "reserved",
		                   "topic names starting with '%s' are the server's own",
		                   SL_TOPIC_INTERNAL_PREFIX);
		goto out;
	}
	if (sl_topics_find(&srv->topics, ct.name, strlen(ct.name))) {
		status = sl__error(body, blen, 409, "exists", "topic '%s' exists", ct.name);
		goto out;
	}
	struct sl_topic_spec spec;
	ret = sl_server_topic_spec(&ct, &spec, err, sizeof(err));
	if (ret < 0) {
		status = sl__error(body, blen, 400, "bad_request", "%s", err);
		goto out;
	}
	if (srv->cl && spec.partitioner != SL_PART_HASH) {
		status = sl__error(body, blen, 400, "bad_request",
		                   "partitioner %s is not available in cluster mode yet",
		                   sl_part_kind_name(spec.partitioner));
		goto out;
	}
	if (srv->cl && !def) {
		/* The cluster's registry first: the name is taken there once,
		 * and every node makes its copy from it (topics_cluster.c). */
		ret = sl__rt_def(&ct, &mydef, &mydef_len);
		if (ret == 0)
			ret = sl__cluster_rt_put(srv, ct.name, mydef, mydef_len, true, err,
			                         sizeof(err));
		if (ret < 0) {
			status = sl__error(body, blen, ret == -EEXIST ? 409 : 503,
			                   ret == -EEXIST ? "exists" : "cluster", "%s",
			                   err[0] ? err : sl_strerror(ret));
			goto out;
		}
		in_etcd = true;
	}
	uint32_t index;
	ret = sl_topics_add(&srv->topics, &spec, &index, err, sizeof(err));
	if (ret == 0)
		sl__producers_expiry(srv);
	if (ret < 0) {
		status = sl__error(body, blen, ret == -ENOSPC ? 409 : 500,
		                   ret == -ENOSPC ? "too_many" : "internal", "%s", err);
		goto out;
	}
	/* Cluster mode: its partitions take no events before a role. */
	if (srv->cl && (ret = sl__cluster_topic_added(srv, index, err, sizeof(err))) < 0) {
		sl_topics_unadd(&srv->topics, index);
		status = sl__error(body, blen, 500, "internal", "%s", err);
		goto out;
	}
	/* Durable before anything in it can be acked. */
	struct sl_config_topic *v = realloc(srv->rt.v, (srv->rt.n + 1) * sizeof(*v));
	if (!v) {
		sl_topics_unadd(&srv->topics, index);
		status = sl__error(body, blen, 500, "internal", "out of memory");
		goto out;
	}
	srv->rt.v = v;
	srv->rt.v[srv->rt.n++] = ct;
	memset(&ct, 0, sizeof(ct));
	ret = sl__rt_write(srv);
	if (ret < 0) {
		srv->rt.n--;
		sl_config_topic_clear(&srv->rt.v[srv->rt.n]);
		sl_topics_unadd(&srv->topics, index);
		status = sl__error(body, blen, 500, "storage", "write %s: %s", srv->rt.path,
		                   strerror(-ret));
		goto out;
	}
	srv->topics.v[index].runtime = true;
	in_etcd = false; /* here to stay: the next start makes it from the registry */
	/* What waits for this topic opens now, before any reactor owns its
	 * partitions (server/late.c), and is taken by the reactors after. */
	sl__late_bind(srv, index);
	ret = sl__all_reactors(srv, index, true);
	sl_topics_publish(&srv->topics, index);
	if (ret == 0)
		sl__late_commit(srv);
	if (ret < 0) {
		status = sl__error(body, blen, 503, "stopping",
		                   "the server is stopping; the topic is kept for the next start");
		goto out;
	}
	if (srv->cl && (ret = sl__cluster_topic_take(srv, index, err, sizeof(err))) < 0)
		fprintf(stderr, "sluiced: topic %s: not placed yet: %s\n",
		        srv->topics.v[index].name, err);
	fprintf(stderr, "sluiced: topic %s created (%u partitions)\n", srv->topics.v[index].name,
	        srv->topics.v[index].n_parts);
	status = sl__reply(sl__topic_json(srv, &srv->topics.v[index]), body, blen, 201);
out:
	if (in_etcd) {
		/* Not made here after all: the cluster forgets it too. */
		char e2[256];
		if (sl__cluster_rt_delete(srv, name, 0, e2, sizeof(e2)) < 0)
			fprintf(stderr, "sluiced: topic %s: %s\n", name, e2);
	}
	pthread_mutex_unlock(&srv->rt.mu);
	free(mydef);
	sl_config_topic_clear(&ct);
	sl_config_node_free(root);
	sl_config_node_free(topic);
	return status;
}

/* Settings a topic may change while it runs. */
static bool sl__alterable(const char *key)
{
	return !strcmp(key, "overload") || !strcmp(key, "retention") ||
	       !strcmp(key, "retention.bytes") || !strcmp(key, "retention.age") ||
	       !strcmp(key, "cleanup") || !strcmp(key, "dedup_window") ||
	       !strcmp(key, "producer_expiry") || !strcmp(key, "hot_partition_factor") ||
	       !strcmp(key, "durability");
}

/*
 * Puts durability d (interval_ns) in force for topic t: its spec first (the
 * owners read it in the request), a journal for each reactor that now
 * passes the journal's threshold, then every owner switches its partitions
 * (sl_reactor_set_durability: each at its next group-commit boundary) and
 * has before this returns. 0, or -ESHUTDOWN.
 */
static int sl__durability_apply(struct sl_server *srv, struct sl_topic *t, enum sl_log_durability d,
                                uint64_t interval_ns)
{
	char err[400];
	int ret = 0;
	t->spec.durability = d;
	t->spec.interval_ns = interval_ns;
	if (d == SL_LOG_FSYNC && sl_topics_journals(&srv->topics, err, sizeof(err)) < 0)
		fprintf(stderr,
		        "sluiced: topic %s: no journal (%s); its partitions sync their own "
		        "segments\n",
		        t->name, err);
	for (uint32_t i = 0; i < srv->n; i++) {
		int x = sl_reactor_set_durability(srv->reactors[i], t->index);
		if (x < 0)
			ret = x;
	}
	return ret;
}

int sl_server_topic_alter(struct sl_server *srv, const char *name, size_t name_len,
                          const char *json, size_t len, char **body, size_t *blen)
{
	return sl__topic_alter(srv, name, name_len, json, len, NULL, 0, body, blen);
}

int sl__topic_alter(struct sl_server *srv, const char *name, size_t name_len, const char *json,
                    size_t len, const char *def, size_t def_len, char **body, size_t *blen)
{
	char err[600] = "";
	struct sl_config_node *root = NULL, *topic = sl__new_map();
	struct sl_config_topic ct = {0};
	char *mydef = NULL;
	size_t mydef_len = 0;
	int status, ret;

	pthread_mutex_lock(&srv->rt.mu);
	struct sl_topic *t = sl_topics_find(&srv->topics, name, name_len);
	if (!topic) {
		status = sl__error(body, blen, 500, "internal", "out of memory");
		goto out;
	}
	if (!t) {
		status = sl__error(body, blen, 404, "not_found", "no topic named '%.*s'",
		                   (int)name_len, name);
		goto out;
	}
	struct sl_config_topic *cur = sl__rt_find(srv, t->name);
	if (!def && sl__reserved(t->name)) {
		status =
		    sl__error(body, blen, 409, "reserved",
		              "topic '%s' is the server's own (consumer groups' offsets)", t->name);
		goto out;
	}
	if (!t->runtime || !cur) {
		status = sl__error(body, blen, 409, "config_topic",
		                   "topic '%s' is defined in the config: change it there", t->name);
		goto out;
	}
	if (def) {
		/* Altered on another node: its definition as the cluster holds
		 * it (that node checked what may change). */
		ret = sl__def_parse(def, def_len, &ct, err, sizeof(err));
		if (ret == 0 && ct.partitions != cur->partitions) {
			snprintf(err, sizeof(err), "partitions %u, here %u", ct.partitions,
			         cur->partitions);
			ret = -EINVAL;
		}
		if (ret < 0) {
			status = sl__error(body, blen, 400, "bad_request", "%s", err);
			goto out;
		}
		goto parsed;
	}
	ret = sl__parse_body(json, len, &root, err, sizeof(err));
	const struct sl_config_node *set = ret < 0 ? NULL : sl_config_node_get(root, "settings");
	if (ret < 0 || !set || set->kind != SL_CONFIG_NODE_MAP || root->n_items != 1) {
		status = sl__error(body, blen, 400, "bad_request", "%s",
		                   err[0] ? err : "expected {\"settings\": {KEY: VALUE, ...}}");
		goto out;
	}
	for (size_t i = 0; i < set->n_items; i++)
		if (!sl__alterable(set->items[i].key)) {
			status = sl__error(body, blen, 400, "not_alterable",
			                   "'%s' cannot change while the topic runs (alterable: "
			                   "overload, retention.bytes, retention.age, cleanup, "
			                   "dedup_window, producer_expiry, hot_partition_factor, "
			                   "durability; the partition count changes by resharding)",
			                   set->items[i].key);
			goto out;
		}
	/* The current definition, then the changes, checked as a whole. */
	struct sl__put pt = {.map = topic};
	sl_config_topic_each(cur, sl__put_text, &pt);
	int put_ret = pt.ret;
	if (put_ret == 0)
		put_ret = sl__put_settings(topic, set, err, sizeof(err));
	if (put_ret < 0) {
		status = sl__error(body, blen, 400, "bad_request", "%s",
		                   err[0] ? err : strerror(-put_ret));
		goto out;
	}
	ret = sl_config_topic_parse(topic, "topic", &ct, err, sizeof(err));
	if (ret < 0) {
		status = sl__error(body, blen, 400, "bad_request", "%s", err);
		goto out;
	}
parsed:;
	struct sl_topic_spec spec;
	ret = sl_server_topic_spec(&ct, &spec, err, sizeof(err));
	if (ret < 0) {
		status = sl__error(body, blen, 400, "bad_request", "%s", err);
		goto out;
	}
	if (srv->cl && !def) {
		/* The cluster's registry first; the other nodes follow it. */
		ret = sl__rt_def(&ct, &mydef, &mydef_len);
		if (ret == 0)
			ret = sl__cluster_rt_put(srv, ct.name, mydef, mydef_len, false, err,
			                         sizeof(err));
		if (ret < 0) {
			status = sl__error(body, blen, 503, "cluster", "%s",
			                   err[0] ? err : sl_strerror(ret));
			goto out;
		}
	}
	/*
	 * Durable first, then in force; but a durability that becomes fsync
	 * is in force first. Its switch syncs what the relaxed policy wrote
	 * (a roll, log.h); recorded before that, a power cut in between would
	 * restart the partitions under fsync's recovery rule on a last
	 * segment of unsynced relaxed writes, and refuse them as corrupt.
	 * This way the record never names a stricter policy than the one
	 * running; a change to a relaxed policy is recorded first (a restart
	 * in between recovers fsync's bytes under the relaxed rule, which
	 * only ever cuts more of an unacked tail).
	 */
	enum sl_log_durability old_dur = t->spec.durability;
	uint64_t old_interval = t->spec.interval_ns;
	bool dur = spec.durability != old_dur || spec.interval_ns != old_interval;
	bool dur_first = dur && spec.durability == SL_LOG_FSYNC;
	if (dur_first && sl__durability_apply(srv, t, spec.durability, spec.interval_ns) < 0) {
		status = sl__error(body, blen, 503, "stopping", "the server is stopping");
		goto out;
	}
	struct sl_config_topic old = *cur;
	*cur = ct;
	memset(&ct, 0, sizeof(ct));
	ret = sl__rt_write(srv);
	if (ret < 0) {
		ct = *cur;
		*cur = old;
		if (dur_first)
			(void)sl__durability_apply(srv, t, old_dur, old_interval);
		status = sl__error(body, blen, 500, "storage", "write %s: %s", srv->rt.path,
		                   strerror(-ret));
		goto out;
	}
	sl_config_topic_clear(&old);
	double r = spec.sample_rate;
	atomic_store(&t->sample_below,
	             r >= 1.0 ? UINT64_MAX : (uint64_t)(r * 18446744073709551616.0));
	atomic_store(&t->overload, spec.overload);
	t->spec.overload = spec.overload;
	t->spec.sample_rate = spec.sample_rate;
	atomic_store(&t->hot_factor, spec.hot_factor);
	t->spec.hot_factor = spec.hot_factor;
	/* Retention: every owner reads the limits at its next pass (within
	 * a second, reactor.c), the running partitions included. */
	atomic_store(&t->retention_bytes, spec.retention_bytes);
	atomic_store(&t->retention_age_ms, spec.retention_age_ms);
	t->spec.retention_bytes = spec.retention_bytes;
	t->spec.retention_age_ms = spec.retention_age_ms;
	/* Each owner brings its id windows in line before the answer; the
	 * expiry is read at every tick. */
	atomic_store(&t->dedup_window_ms, spec.dedup_window_ms);
	atomic_store(&t->producer_expiry_ns, spec.producer_expiry_ns);
	sl__producers_expiry(srv);
	for (uint32_t i = 0; i < srv->n; i++)
		(void)sl_reactor_retune(srv->reactors[i], t->index);
	if (dur && !dur_first)
		(void)sl__durability_apply(srv, t, spec.durability, spec.interval_ns);
	fprintf(stderr, "sluiced: topic %s altered\n", t->name);
	status = sl__reply(sl__topic_json(srv, t), body, blen, 200);
out:
	pthread_mutex_unlock(&srv->rt.mu);
	free(mydef);
	sl_config_topic_clear(&ct);
	sl_config_node_free(root);
	sl_config_node_free(topic);
	return status;
}

int sl_server_topic_delete(struct sl_server *srv, const char *name, size_t name_len, char **body,
                           size_t *blen)
{
	return sl__topic_delete(srv, name, name_len, false, body, blen);
}

int sl__topic_delete(struct sl_server *srv, const char *name, size_t name_len, bool local_only,
                     char **body, size_t *blen)
{
	char err[600] = "";
	int status, ret;
	pthread_mutex_lock(&srv->rt.mu);
	struct sl_topic *t = sl_topics_find(&srv->topics, name, name_len);
	if (!t) {
		status = sl__error(body, blen, 404, "not_found", "no topic named '%.*s'",
		                   (int)name_len, name);
		goto out;
	}
	struct sl_config_topic *rt = sl__rt_find(srv, t->name);
	size_t k = rt ? (size_t)(rt - srv->rt.v) : srv->rt.n;
	if (sl__reserved(t->name)) {
		status =
		    sl__error(body, blen, 409, "reserved",
		              "topic '%s' is the server's own (consumer groups' offsets)", t->name);
		goto out;
	}
	if (!t->runtime || !rt) {
		status = sl__error(body, blen, 409, "config_topic",
		                   "topic '%s' is defined in the config: remove it there", t->name);
		goto out;
	}
	char users[400];
	int n_users = sl__late_users(srv, t, users, sizeof(users));
	if (n_users > 0) {
		/* Their positions (snapshots, targets, progress files) are
		 * offsets of this topic: server/late.c says why. */
		status = sl__error(body, blen, 409, "in_use",
		                   "topic '%s' is read by %s: remove %s from the config (and "
		                   "restart) first",
		                   t->name, users, n_users > 1 ? "them" : "it");
		goto out;
	}
	if (srv->cl && !local_only &&
	    (ret = sl__cluster_rt_delete(srv, t->name, t->n_parts, err, sizeof(err))) < 0) {
		status = sl__error(body, blen, 503, "cluster", "%s", err);
		goto out;
	}
	if (srv->cl)
		sl__cluster_topic_removed(srv, t);
	atomic_store(&t->deleted, true);
	ret = sl__all_reactors(srv, t->index, false);
	if (ret < 0) {
		status = sl__error(body, blen, 503, "stopping",
		                   "the server is stopping; the topic is deleted at the next start "
		                   "only if asked again");
		atomic_store(&t->deleted, false);
		goto out;
	}
	/* The folder goes first (renamed at once, removed after): a start
	 * never finds half of it, and the registry never lists a topic
	 * whose folder is gone. */
	char from[4096], to[4200];
	snprintf(from, sizeof(from), "%s/%s", srv->opts.data_dir, t->name);
	snprintf(to, sizeof(to), "%s/%s%s-%u", srv->opts.data_dir, SL__DELETED, t->name, t->index);
	if (rename(from, to) < 0 && errno != ENOENT) {
		ret = -errno;
		status =
		    sl__error(body, blen, 500, "storage", "rename %s: %s", from, strerror(-ret));
		goto out;
	}
	int dfd = open(srv->opts.data_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd >= 0) {
		(void)fsync(dfd);
		close(dfd);
	}
	sl_config_topic_clear(&srv->rt.v[k]);
	memmove(&srv->rt.v[k], &srv->rt.v[k + 1], (srv->rt.n - k - 1) * sizeof(*srv->rt.v));
	srv->rt.n--;
	ret = sl__rt_write(srv);
	if (ret < 0)
		fprintf(stderr,
		        "sluiced: write %s: %s (the deleted topic %s comes back empty "
		        "at the next start)\n",
		        srv->rt.path, strerror(-ret), t->name);
	(void)sl_rmtree(to);
	fprintf(stderr, "sluiced: topic %s deleted\n", t->name);
	struct json_object *o = json_object_new_object();
	json_object_object_add(o, "deleted", json_object_new_string(t->name));
	status = sl__reply(o, body, blen, 200);
out:
	pthread_mutex_unlock(&srv->rt.mu);
	return status;
}
