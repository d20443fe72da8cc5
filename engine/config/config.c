/* The configuration's root and server sections (their key tables), loading
 * a file or a string merged onto the embedded default, and freeing. */
#include "config/config.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/base.h"
#include "config/keys.h"

/* A config file is a few kilobytes; anything far larger is a mistake (a log
 * or a binary passed by accident), refused before parsing it. */
#define SL__FILE_MAX (16u << 20)

/* cpu_set_t holds 1024 CPUs: the most reactor threads that can be pinned. */
#define SL__MAX_CORES 1024

/* ---- Values of a form of their own ------------------------------------------- */

static int sl__cores_parse(struct sl__ld *ld, const struct sl_config_node *n, const char *path,
                           void *obj)
{
	const char *what = "auto or an integer 1..1024";
	uint32_t *out = &((struct sl_config *)obj)->cores;
	uint64_t v;

	if (sl__cfg_want_scalar(ld, n, path, what))
		return -SL_ECONFIG;
	if (!strcmp(n->value, "auto")) {
		*out = 0;
		return 0;
	}
	if (sl_config_parse_u64(n->value, &v) || v < 1 || v > SL__MAX_CORES)
		return sl__cfg_bad(ld, n, path, what);
	*out = (uint32_t)v;
	return 0;
}

static void sl__cores_fmt(const void *obj, char *buf, size_t len)
{
	uint32_t cores = ((const struct sl_config *)obj)->cores;

	if (cores)
		snprintf(buf, len, "%u", cores);
	else
		snprintf(buf, len, "auto");
}

static int sl__addr_parse(struct sl__ld *ld, const struct sl_config_node *n, const char *path,
                          struct sl_config_addr *a)
{
	const char *what = "host:port (an IPv4 address, a bracketed IPv6 address or a hostname, "
	                   "and a port 0..65535)";
	char *host;
	uint16_t port;
	int rc;

	if (sl__cfg_want_scalar(ld, n, path, what))
		return -SL_ECONFIG;
	rc = sl_config_parse_addr(n->value, &host, &port);
	if (rc == -ENOMEM)
		return sl__cfg_oom(ld);
	if (rc)
		return sl__cfg_bad(ld, n, path, what);
	free(a->host);
	a->host = host;
	a->port = port;
	return 0;
}

static void sl__addr_fmt(const struct sl_config_addr *a, char *buf, size_t len)
{
	bool v6 = a->host && strchr(a->host, ':');

	snprintf(buf, len, "%s%s%s:%u", v6 ? "[" : "", a->host ? a->host : "", v6 ? "]" : "",
	         a->port);
}

static int sl__native_parse(struct sl__ld *ld, const struct sl_config_node *n, const char *path,
                            void *obj)
{
	return sl__addr_parse(ld, n, path, &((struct sl_config *)obj)->listen.native);
}

static void sl__native_fmt(const void *obj, char *buf, size_t len)
{
	sl__addr_fmt(&((const struct sl_config *)obj)->listen.native, buf, len);
}

static int sl__http_parse(struct sl__ld *ld, const struct sl_config_node *n, const char *path,
                          void *obj)
{
	return sl__addr_parse(ld, n, path, &((struct sl_config *)obj)->listen.http);
}

static void sl__http_fmt(const void *obj, char *buf, size_t len)
{
	sl__addr_fmt(&((const struct sl_config *)obj)->listen.http, buf, len);
}

/* cluster.advertise.*: an address, or empty (null) for "the listen one". */
static int sl__adv_parse(struct sl__ld *ld, const struct sl_config_node *n, const char *path,
                         struct sl_config_addr *a)
{
	if (n->kind == SL_CONFIG_NODE_NULL || (n->kind == SL_CONFIG_NODE_SCALAR && !*n->value)) {
		free(a->host);
		a->host = NULL;
		a->port = 0;
		return 0;
	}
	return sl__addr_parse(ld, n, path, a);
}

static void sl__adv_fmt(const struct sl_config_addr *a, char *buf, size_t len)
{
	if (a->host)
		sl__addr_fmt(a, buf, len);
	else
		snprintf(buf, len, "%s", "");
}

static int sl__adv_native_parse(struct sl__ld *ld, const struct sl_config_node *n, const char *path,
                                void *obj)
{
	return sl__adv_parse(ld, n, path, &((struct sl_config_cluster *)obj)->adv_native);
}

static void sl__adv_native_fmt(const void *obj, char *buf, size_t len)
{
	sl__adv_fmt(&((const struct sl_config_cluster *)obj)->adv_native, buf, len);
}

static int sl__adv_http_parse(struct sl__ld *ld, const struct sl_config_node *n, const char *path,
                              void *obj)
{
	return sl__adv_parse(ld, n, path, &((struct sl_config_cluster *)obj)->adv_http);
}

static void sl__adv_http_fmt(const void *obj, char *buf, size_t len)
{
	sl__adv_fmt(&((const struct sl_config_cluster *)obj)->adv_http, buf, len);
}

/* ---- The tables ------------------------------------------------------------ */

static const struct sl__key sl__listen_keys[] = {
    {"native", SL__T_CUSTOM, 0, .parse = sl__native_parse, .fmt = sl__native_fmt,
     .doc = "host:port of the native protocol (producers, consumers)"},
    {"http", SL__T_CUSTOM, 0, .parse = sl__http_parse, .fmt = sl__http_fmt,
     .doc = "host:port of the HTTP port (queries, status, metrics)"},
};

static const struct sl__section sl__listen_section = {
    .keys = sl__listen_keys,
    .n_keys = SL_ARRAY_LEN(sl__listen_keys),
};

#define L struct sl_config_limits

static const struct sl__key sl__limits_keys[] = {
    /* Each connection is a descriptor and a buffer set; 16M is far beyond
     * any fd limit, so larger is certainly a typo. */
    {"max_connections", SL__T_INT, SL__FIELD(L, max_connections), .lo = 1, .hi = 1u << 24,
     .doc = "native connections accepted at once; more are refused at accept"},
    /* 64 B holds a frame header and a tiny event; 1 GiB keeps every length
     * inside the wire's 32-bit prefix with room. */
    {"max_frame_bytes", SL__T_SIZE, SL__FIELD(L, max_frame_bytes), .lo = 64, .hi = 1ull << 30,
     .doc = "largest frame a client may send"},
    {"memory_budget", SL__T_SIZE, SL__FIELD(L, memory_budget), .lo = 1ull << 20, .hi = UINT64_MAX,
     .doc = "memory for events in flight; 3/8 of it is the credit pool"},
    {"handshake_timeout", SL__T_DURATION, SL__FIELD(L, handshake_timeout_ns), .lo = 1000000,
     .doc = "from connect to a completed handshake"},
    {"idle_timeout", SL__T_DURATION, SL__FIELD(L, idle_timeout_ns), .lo = 0,
     .doc = "a connection with no traffic this long is closed; 0: never"},
    /* Per port: one address may hold this many native connections and
     * this many HTTP connections. Below max_connections so that one
     * client cannot take them all; 1024 leaves a single producer host
     * (sluice bench --connections 1000) or a query host with hundreds
     * of parallel clients room. */
    {"max_connections_per_ip", SL__T_INT, SL__FIELD(L, max_connections_per_ip), .lo = 1,
     .hi = 1u << 24,
     .doc = "connections one client address may hold on each port; more are refused"},
    /* A thread each (libmicrohttpd, a thread per connection: 512 KiB of
     * reserved stack, 16 KiB of request memory); 64k threads is beyond
     * any sane host, so larger is a typo. */
    {"http_max_connections", SL__T_INT, SL__FIELD(L, http_max_connections), .lo = 1, .hi = 1u << 16,
     .doc = "HTTP connections served at once; past it requests get 503 with Retry-After"},
    {"http_timeout", SL__T_DURATION, SL__FIELD(L, http_timeout_ns), .lo = 1000000000,
     .doc = "an HTTP connection with no traffic this long is closed (keep-alive idle)"},
    {"http_header_timeout", SL__T_DURATION, SL__FIELD(L, http_header_timeout_ns), .lo = 100000000,
     .doc = "from connect to the whole first request header; slower clients are closed"},
    /* Events a projection or sink may fall behind before its topic's
     * overload policy applies. */
    {"max_follower_lag", SL__T_INT, SL__FIELD(L, max_follower_lag), .lo = 1, .hi = 1ull << 40,
     .doc = "events a projection or sink may lag before its topic is pressured"},
};

#undef L

static const struct sl__section sl__limits_section = {
    .keys = sl__limits_keys,
    .n_keys = SL_ARRAY_LEN(sl__limits_keys),
    .check = sl__cfg_limits_check,
};

#define A struct sl_config_auth

static const struct sl__key sl__auth_keys[] = {
    {"token_file", SL__T_PATH, SL__FIELD(A, token_file),
     .doc = "file of the token clients must present (one per line; two while rotating)"},
    {"allow_unauthenticated", SL__T_BOOL, SL__FIELD(A, allow_unauthenticated),
     .doc = "listen on addresses other than loopback without a token, knowingly"},
};

#undef A

static const struct sl__section sl__auth_section = {
    .keys = sl__auth_keys,
    .n_keys = SL_ARRAY_LEN(sl__auth_keys),
};

#define N struct sl_config

static const struct sl__key sl__node_keys[] = {
    {"id", SL__T_NAME, SL__FIELD(N, node_id),
     .doc = "this node's name, unique in its cluster; default: the host name"},
};

#undef N

static const struct sl__section sl__node_section = {
    .keys = sl__node_keys,
    .n_keys = SL_ARRAY_LEN(sl__node_keys),
};

static const struct sl__key sl__advertise_keys[] = {
    {"native", SL__T_CUSTOM, 0, .parse = sl__adv_native_parse, .fmt = sl__adv_native_fmt,
     .doc = "host:port other nodes and clients reach the native port at; empty: listen's"},
    {"http", SL__T_CUSTOM, 0, .parse = sl__adv_http_parse, .fmt = sl__adv_http_fmt,
     .doc = "host:port of the HTTP port as others reach it; empty: listen's"},
};

static const struct sl__section sl__advertise_section = {
    .keys = sl__advertise_keys,
    .n_keys = SL_ARRAY_LEN(sl__advertise_keys),
};

#define C struct sl_config_cluster

static const struct sl__key sl__cluster_keys[] = {
    {"etcd", SL__T_STRS, offsetof(C, etcd), .off_n = offsetof(C, n_etcd),
     .doc = "etcd endpoints (http://host:port); empty: this node runs alone"},
    {"name", SL__T_NAME, SL__FIELD(C, name),
     .doc = "the cluster's name: its keys live under /sluice/<name>/ in etcd"},
    /* Both addresses live in the cluster struct itself (offset 0). */
    {"advertise", SL__T_MAP, 0, .sub = &sl__advertise_section,
     .doc = "where other nodes and clients reach this node"},
    /* etcd refuses leases shorter than 1.5 election timeouts (1.5 s by
     * default); an hour would let a dead node's partitions wait that long. */
    {"session_ttl", SL__T_DURATION, SL__FIELD(C, session_ttl_ns), .lo = 2000000000ull,
     .doc = "the node's lease: a node silent this long is dead to the cluster"},
};

#undef C

static const struct sl__section sl__cluster_section = {
    .keys = sl__cluster_keys,
    .n_keys = SL_ARRAY_LEN(sl__cluster_keys),
    .check = sl__cfg_cluster_check,
};

#define R struct sl_config

static const struct sl__key sl__root_keys[] = {
    {"data_dir", SL__T_PATH, SL__FIELD(R, data_dir),
     .doc = "folder of the logs, snapshots and progress files"},
    {"cores", SL__T_CUSTOM, 0, .parse = sl__cores_parse, .fmt = sl__cores_fmt,
     .doc = "reactor threads, one pinned per core: auto (all) or 1..1024"},
    /* The section's keys are custom and reach listen.* from the root. */
    {"listen", SL__T_MAP, 0, .sub = &sl__listen_section, .doc = "where sluiced listens"},
    {"limits", SL__T_MAP, offsetof(R, limits), .sub = &sl__limits_section,
     .doc = "bounds on connections, frames, memory and lag"},
    {"plugin_path", SL__T_PATHS, offsetof(R, plugin_path), .off_n = offsetof(R, n_plugin_path),
     .doc = "folders searched for NAME.so; empty: the plugins folder beside bin/"},
    {"topics", SL__T_SEQ, offsetof(R, topics), .off_n = offsetof(R, n_topics),
     .sub = &sl__topic_section, .doc = "the topics, exactly as listed"},
    {"auto_create_topics", SL__T_BOOL, SL__FIELD(R, auto_create_topics),
     .doc = "a produce to a topic that does not exist creates it with the defaults"},
    {"pipelines", SL__T_SEQ, offsetof(R, pipelines), .off_n = offsetof(R, n_pipelines),
     .sub = &sl__pipeline_section, .after = sl__cfg_resolve_pipelines, .late = true,
     .doc = "topic to topic through a chain of transforms"},
    {"projections", SL__T_SEQ, offsetof(R, projections), .off_n = offsetof(R, n_projections),
     .sub = &sl__projection_section, .late = true, .doc = "read models fed by a topic"},
    {"sinks", SL__T_SEQ, offsetof(R, sinks), .off_n = offsetof(R, n_sinks),
     .sub = &sl__sink_section, .late = true, .doc = "plugins that write a topic out"},
    {"auth", SL__T_MAP, offsetof(R, auth), .sub = &sl__auth_section,
     .doc = "the token both ports demand; absent: loopback addresses only"},
    {"node", SL__T_MAP, 0, .sub = &sl__node_section, .doc = "this node"},
    {"cluster", SL__T_MAP, offsetof(R, cluster), .sub = &sl__cluster_section,
     .doc = "the cluster this node joins through etcd; no endpoints: alone"},
};

#undef R

const struct sl__section sl__root_section = {
    .keys = sl__root_keys,
    .n_keys = SL_ARRAY_LEN(sl__root_keys),
    .check = sl__cfg_root_check,
};

/* ---- Whole configuration --------------------------------------------------------- */

/* Drops the lists: a file's lists replace the default's whole. */
static void sl__lists_free(struct sl_config *cfg)
{
	for (size_t i = 0; i < cfg->n_topics; i++)
		sl__cfg_topic_clear(&cfg->topics[i]);
	free(cfg->topics);
	sl__cfg_pipelines_free(cfg->pipelines, cfg->n_pipelines);
	sl__cfg_consumers_free(cfg->projections, cfg->n_projections);
	sl__cfg_consumers_free(cfg->sinks, cfg->n_sinks);
	cfg->topics = NULL;
	cfg->n_topics = 0;
	cfg->pipelines = NULL;
	cfg->n_pipelines = 0;
	cfg->projections = NULL;
	cfg->n_projections = 0;
	cfg->sinks = NULL;
	cfg->n_sinks = 0;
}

size_t sl_config_each_waiting(const struct sl_config *cfg,
                              void (*fn)(void *arg, const char *kind, const char *name,
                                         const char *topic),
                              void *arg)
{
	size_t n = 0;

	for (size_t i = 0; i < cfg->n_projections; i++)
		if (cfg->projections[i].from_topic == SL_CONFIG_TOPIC_LATER && ++n)
			fn(arg, "projection", cfg->projections[i].name, cfg->projections[i].from);
	for (size_t i = 0; i < cfg->n_sinks; i++)
		if (cfg->sinks[i].from_topic == SL_CONFIG_TOPIC_LATER && ++n)
			fn(arg, "sink", cfg->sinks[i].name, cfg->sinks[i].from);
	for (size_t i = 0; i < cfg->n_pipelines; i++) {
		const struct sl_config_pipeline *pl = &cfg->pipelines[i];
		if (pl->from_topic == SL_CONFIG_TOPIC_LATER ||
		    pl->to_topic == SL_CONFIG_TOPIC_LATER) {
			n++;
			fn(arg, "pipeline", pl->name,
			   pl->from_topic == SL_CONFIG_TOPIC_LATER ? pl->from : pl->to);
		}
	}
	return n;
}

void sl_config_free(struct sl_config *cfg)
{
	if (!cfg)
		return;
	sl__lists_free(cfg);
	free(cfg->source);
	free(cfg->base_dir);
	free(cfg->data_dir);
	free(cfg->listen.native.host);
	free(cfg->listen.http.host);
	free(cfg->auth.token_file);
	free(cfg->node_id);
	for (size_t i = 0; i < cfg->cluster.n_etcd; i++)
		free(cfg->cluster.etcd[i]);
	free(cfg->cluster.etcd);
	free(cfg->cluster.name);
	free(cfg->cluster.adv_native.host);
	free(cfg->cluster.adv_http.host);
	for (size_t i = 0; i < cfg->n_plugin_path; i++)
		free(cfg->plugin_path[i]);
	free(cfg->plugin_path);
	memset(cfg, 0, sizeof(*cfg));
}

static int sl__apply(struct sl__ld *ld, const struct sl_config_node *root, struct sl_config *cfg)
{
	if (!root || root->kind == SL_CONFIG_NODE_NULL)
		return 0;
	if (root->kind != SL_CONFIG_NODE_MAP)
		return sl__cfg_fail(ld, root->line, "",
		                    "expected a map of configuration keys, got %s",
		                    sl__cfg_kind_name(root));
	ld->cfg = cfg;
	return sl__cfg_section_parse(ld, &sl__root_section, root, "", cfg);
}

static int sl__parse_default(struct sl_config *cfg, char *err, size_t errlen)
{
	struct sl__ld ld = {.name = "<default>", .err = err, .errlen = errlen};
	const char *yaml = sl_config_default_yaml();
	struct sl_config_node *root = NULL;
	int rc;

	memset(cfg, 0, sizeof(*cfg));
	if ((rc = sl_config_node_parse(yaml, strlen(yaml), ld.name, &root, err, errlen)))
		return rc;
	rc = sl__apply(&ld, root, cfg);
	if (!rc && !(cfg->source = strdup(ld.name)))
		rc = sl__cfg_oom(&ld);
	sl_config_node_free(root);
	if (rc)
		sl_config_free(cfg);
	return rc;
}

int sl_config_default(struct sl_config *cfg)
{
	char err[256];

	return sl__parse_default(cfg, err, sizeof(err));
}

static int sl__load(const char *yaml, size_t len, const char *name, const char *base_dir,
                    struct sl_config *cfg, char *err, size_t errlen)
{
	struct sl__ld ld = {.name = name, .base_dir = base_dir, .err = err, .errlen = errlen};
	struct sl_config_node *root = NULL;
	int rc;

	memset(cfg, 0, sizeof(*cfg));
	if (errlen)
		err[0] = '\0';
	if ((rc = sl_config_node_parse(yaml, len, name, &root, err, errlen)))
		return rc;
	if ((rc = sl__parse_default(cfg, err, errlen)))
		goto out;
	sl__lists_free(cfg);
	free(cfg->source);
	cfg->source = strdup(name);
	if (!cfg->source || (base_dir && !(cfg->base_dir = strdup(base_dir)))) {
		rc = sl__cfg_oom(&ld);
		goto out;
	}
	rc = sl__apply(&ld, root, cfg);
out:
	sl_config_node_free(root);
	if (rc)
		sl_config_free(cfg);
	return rc;
}

int sl_config_load_string(const char *yaml, size_t len, const char *base_dir, struct sl_config *cfg,
                          char *err, size_t errlen)
{
	return sl__load(yaml, len, "<string>", base_dir, cfg, err, errlen);
}

/* The folder holding `path`, made absolute so the paths resolved against it
 * stay right if the process changes its working directory. */
static char *sl__dir_of(const char *path)
{
	char *real = realpath(path, NULL);
	char *slash, *dir;

	if (!real)
		return NULL;
	slash = strrchr(real, '/');
	dir = slash == real ? strdup("/") : strndup(real, (size_t)(slash - real));
	free(real);
	return dir;
}

int sl_config_load_file(const char *path, struct sl_config *cfg, char *err, size_t errlen)
{
	char *buf = NULL, *dir = NULL;
	size_t len = 0, n;
	FILE *f;
	int rc;

	memset(cfg, 0, sizeof(*cfg));
	f = fopen(path, "rb");
	if (!f) {
		rc = -errno;
		snprintf(err, errlen, "%s: cannot open: %s", path, strerror(-rc));
		return rc;
	}
	buf = malloc(SL__FILE_MAX + 1);
	if (!buf) {
		rc = -ENOMEM;
		snprintf(err, errlen, "%s: out of memory", path);
		goto out;
	}
	while ((n = fread(buf + len, 1, SL__FILE_MAX + 1 - len, f)) > 0)
		len += n;
	if (ferror(f)) {
		rc = -EIO;
		snprintf(err, errlen, "%s: read error", path);
		goto out;
	}
	if (len > SL__FILE_MAX) {
		rc = -SL_ECONFIG;
		snprintf(err, errlen, "%s: larger than %u MiB, not a configuration file", path,
		         SL__FILE_MAX >> 20);
		goto out;
	}
	dir = sl__dir_of(path);
	if (!dir) {
		rc = -errno;
		snprintf(err, errlen, "%s: cannot resolve its folder: %s", path, strerror(-rc));
		goto out;
	}
	rc = sl__load(buf, len, path, dir, cfg, err, errlen);
out:
	fclose(f);
	free(buf);
	free(dir);
	return rc;
}

int sl_config_resolve_path(const struct sl_config *cfg, const char *path, char **out)
{
	*out = sl__cfg_join(cfg->base_dir, path);
	return *out ? 0 : -ENOMEM;
}

int sl_config_resolve_plugin_path(struct sl_config *cfg, const char *exe_path)
{
	char *exe, *slash, *dir;
	size_t len;

	if (cfg->n_plugin_path)
		return 0;
	exe = realpath(exe_path ? exe_path : "/proc/self/exe", NULL);
	if (!exe)
		return -errno;
	/* <prefix>/bin/sluiced -> <prefix>/plugins */
	for (int up = 0; up < 2; up++) {
		slash = strrchr(exe, '/');
		if (slash == exe)
			slash[1] = '\0';
		else
			*slash = '\0';
	}
	len = strlen(exe);
	dir = malloc(len + sizeof("/plugins"));
	cfg->plugin_path = malloc(sizeof(*cfg->plugin_path));
	if (!dir || !cfg->plugin_path) {
		free(exe);
		free(dir);
		free(cfg->plugin_path);
		cfg->plugin_path = NULL;
		return -ENOMEM;
	}
	memcpy(dir, exe, len);
	strcpy(dir + len - (len && exe[len - 1] == '/'), "/plugins");
	free(exe);
	cfg->plugin_path[0] = dir;
	cfg->n_plugin_path = 1;
	return 0;
}
