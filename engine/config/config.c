/* Loading, merging and validating the configuration; printing it back. */
#include "config/config.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/base.h"

/* A config file is a few kilobytes; anything far larger is a mistake (a log
 * or a binary passed by accident), refused before parsing it. */
#define SL__FILE_MAX (16u << 20)

/* Key paths like "pipelines[12].transforms[3].plugin" fit with room. */
#define SL__PATH 256

/* cpu_set_t holds 1024 CPUs: the most reactor threads that can be pinned. */
#define SL__MAX_CORES 1024

struct sl__ld {
	const char *name; /* prefixes messages */
	const char *base_dir;
	char *err;
	size_t errlen;
};

static int sl__fail(struct sl__ld *ld, uint32_t line, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int sl__fail(struct sl__ld *ld, uint32_t line, const char *path, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (!ld->errlen)
		return -SL_ECONFIG;
	n = snprintf(ld->err, ld->errlen, "%s:%u: %s%s", ld->name, line, path, *path ? ": " : "");
	if (n < 0 || (size_t)n >= ld->errlen)
		return -SL_ECONFIG;
	va_start(ap, fmt);
	vsnprintf(ld->err + n, ld->errlen - (size_t)n, fmt, ap);
	va_end(ap);
	return -SL_ECONFIG;
}

static int sl__oom(struct sl__ld *ld)
{
	if (ld->errlen)
		snprintf(ld->err, ld->errlen, "%s: out of memory", ld->name);
	return -ENOMEM;
}

/* What a node holds, for "got ..." in messages: quoted and cut to a
 * printable excerpt, since the text may be anything. */
static const char *sl__got(const struct sl_config_node *n, char *buf, size_t len)
{
	size_t o = 0;

	if (n->kind == SL_CONFIG_NODE_MAP)
		return "a map";
	if (n->kind == SL_CONFIG_NODE_SEQ)
		return "a sequence";
	if (n->kind == SL_CONFIG_NODE_NULL)
		return "nothing";
	buf[o++] = '\'';
	for (const char *p = n->value; *p && o + 5 < len; p++) {
		unsigned char c = (unsigned char)*p;

		buf[o++] = c < 0x20 || c >= 0x7f ? '?' : (char)c;
		if (o >= 64 && p[1]) {
			memcpy(buf + o, "...", 3);
			o += 3;
			break;
		}
	}
	buf[o++] = '\'';
	buf[o] = '\0';
	return buf;
}

/* sl__got() for messages that have no room for a buffer of their own. */
#define sl__kind_name(n) sl__got((n), (char[96]){0}, 96)

/* Key paths are for messages: one cut short still reads well, so a
 * truncated path only gets an ellipsis. */
static void sl__path_cut(char *out, int n)
{
	if (n < 0 || n >= SL__PATH)
		memcpy(out + SL__PATH - 4, "...", 4);
}

static void sl__sub(char *out, const char *parent, const char *key)
{
	sl__path_cut(out, snprintf(out, SL__PATH, "%s%s%.64s", parent, *parent ? "." : "", key));
}

static void sl__idx(char *out, const char *parent, size_t i)
{
	sl__path_cut(out, snprintf(out, SL__PATH, "%s[%zu]", parent, i));
}

/* Edit distance for "did you mean": keys are short, so a row buffer of 65
 * entries covers them; longer words simply get no suggestion. */
static size_t sl__distance(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b), row[65];

	if (la > 64 || lb > 64)
		return SIZE_MAX;
	for (size_t j = 0; j <= lb; j++)
		row[j] = j;
	for (size_t i = 1; i <= la; i++) {
		size_t diag = row[0];

		row[0] = i;
		for (size_t j = 1; j <= lb; j++) {
			size_t up = row[j];
			size_t best = diag + (a[i - 1] != b[j - 1]);

			if (up + 1 < best)
				best = up + 1;
			if (row[j - 1] + 1 < best)
				best = row[j - 1] + 1;
			row[j] = best;
			diag = up;
		}
	}
	return row[lb];
}

static int sl__check_keys(struct sl__ld *ld, const struct sl_config_node *map, const char *path,
                          const char *const *keys, size_t nkeys)
{
	for (size_t i = 0; i < map->n_items; i++) {
		const struct sl_config_node *it = &map->items[i];
		const char *best = NULL;
		size_t best_d = 3; /* suggest only keys within two edits */
		char shown[96], list[256];
		size_t o = 0;
		bool known = false;

		for (size_t k = 0; k < nkeys && !known; k++) {
			size_t d;

			known = !strcmp(it->key, keys[k]);
			d = sl__distance(it->key, keys[k]);
			if (d < best_d) {
				best_d = d;
				best = keys[k];
			}
		}
		if (known)
			continue;
		struct sl_config_node as_scalar = {.kind = SL_CONFIG_NODE_SCALAR, .value = it->key};

		sl__got(&as_scalar, shown, sizeof(shown));
		if (best)
			return sl__fail(ld, it->key_line, path,
			                "unknown key %s (did you mean '%s'?)", shown, best);
		list[0] = '\0';
		for (size_t k = 0; k < nkeys; k++) {
			int n =
			    snprintf(list + o, sizeof(list) - o, "%s%s", k ? ", " : "", keys[k]);

			if (n < 0 || (size_t)n >= sizeof(list) - o)
				break;
			o += (size_t)n;
		}
		return sl__fail(ld, it->key_line, path, "unknown key %s (expected one of: %s)",
		                shown, list);
	}
	return 0;
}

/* A map, or nothing (an empty value), which reads as an empty map. */
static int sl__want_map(struct sl__ld *ld, const struct sl_config_node *n, const char *path)
{
	if (n->kind == SL_CONFIG_NODE_MAP || n->kind == SL_CONFIG_NODE_NULL)
		return 0;
	return sl__fail(ld, n->line, path, "expected a map, got %s", sl__kind_name(n));
}

static int sl__want_seq(struct sl__ld *ld, const struct sl_config_node *n, const char *path)
{
	if (n->kind == SL_CONFIG_NODE_SEQ || n->kind == SL_CONFIG_NODE_NULL)
		return 0;
	return sl__fail(ld, n->line, path, "expected a sequence, got %s", sl__kind_name(n));
}

static int sl__want_scalar(struct sl__ld *ld, const struct sl_config_node *n, const char *path,
                           const char *what)
{
	char got[96];

	if (n->kind == SL_CONFIG_NODE_SCALAR)
		return 0;
	return sl__fail(ld, n->line, path, "expected %s, got %s", what,
	                sl__got(n, got, sizeof(got)));
}

static int sl__bad(struct sl__ld *ld, const struct sl_config_node *n, const char *path,
                   const char *what)
{
	char got[96];

	return sl__fail(ld, n->line, path, "expected %s, got %s", what,
	                sl__got(n, got, sizeof(got)));
}

/* ---- Scalars -------------------------------------------------------------- */

static int sl__get_int(struct sl__ld *ld, const struct sl_config_node *n, const char *path,
                       uint64_t lo, uint64_t hi, uint64_t *out)
{
	char what[80];
	uint64_t v;

	snprintf(what, sizeof(what), "an integer %llu..%llu", (unsigned long long)lo,
	         (unsigned long long)hi);
	if (sl__want_scalar(ld, n, path, what))
		return -SL_ECONFIG;
	if (sl_config_parse_u64(n->value, &v) || v < lo || v > hi)
		return sl__bad(ld, n, path, what);
	*out = v;
	return 0;
}

static void sl__fmt_size(uint64_t v, char *buf, size_t len)
{
	static const char *const units[] = {"TiB", "GiB", "MiB", "KiB"};

	for (size_t i = 0; i < SL_ARRAY_LEN(units) && v; i++) {
		uint64_t m = 1ull << (10 * (4 - i));

		if (v % m == 0) {
			snprintf(buf, len, "%llu%s", (unsigned long long)(v / m), units[i]);
			return;
		}
	}
	snprintf(buf, len, "%llu", (unsigned long long)v);
}

static void sl__fmt_duration(uint64_t ns, char *buf, size_t len)
{
	static const struct {
		const char *name;
		uint64_t mult;
	} units[] = {
	    {"d", 86400000000000ull}, {"h", 3600000000000ull}, {"m", 60000000000ull},
	    {"s", 1000000000ull},     {"ms", 1000000ull},      {"us", 1000ull},
	};

	for (size_t i = 0; i < SL_ARRAY_LEN(units) && ns; i++) {
		if (ns % units[i].mult == 0) {
			snprintf(buf, len, "%llu%s", (unsigned long long)(ns / units[i].mult),
			         units[i].name);
			return;
		}
	}
	snprintf(buf, len, ns ? "%lluns" : "%llu", (unsigned long long)ns);
}

static int sl__unit_error(struct sl__ld *ld, const struct sl_config_node *n, const char *path,
                          const char *text, int rc, const char *what, const char *kind)
{
	char got[96];

	sl__got(n, got, sizeof(got));
	if (text[0] == '-')
		return sl__fail(ld, n->line, path, "%s cannot be negative, got %s", kind, got);
	if (rc == -ERANGE)
		return sl__fail(ld, n->line, path, "%s %s does not fit in 64 bits", kind, got);
	return sl__fail(ld, n->line, path, "expected %s, got %s", what, got);
}

#define SL__SIZE_FORMS     "a size like 512MiB, 64KiB, 1MB or a byte count"
#define SL__DURATION_FORMS "a duration like 250us, 10ms, 5s, 1h or 7d"

static int sl__get_size(struct sl__ld *ld, const struct sl_config_node *n, const char *path,
                        uint64_t lo, uint64_t hi, uint64_t *out)
{
	char a[32], b[32];
	uint64_t v;
	int rc;

	if (sl__want_scalar(ld, n, path, SL__SIZE_FORMS))
		return -SL_ECONFIG;
	if ((rc = sl_config_parse_size(n->value, &v)))
		return sl__unit_error(ld, n, path, n->value, rc, SL__SIZE_FORMS, "a size");
	if (v < lo || v > hi) {
		sl__fmt_size(lo, a, sizeof(a));
		sl__fmt_size(hi, b, sizeof(b));
		return sl__fail(ld, n->line, path, "expected a size from %s to %s, got '%s'", a, b,
		                n->value);
	}
	*out = v;
	return 0;
}

static int sl__duration_of(struct sl__ld *ld, const struct sl_config_node *n, const char *path,
                           const char *text, uint64_t lo, uint64_t *out)
{
	char a[32];
	int rc;

	if ((rc = sl_config_parse_duration(text, out)))
		return sl__unit_error(ld, n, path, text, rc, SL__DURATION_FORMS, "a duration");
	if (*out < lo) {
		sl__fmt_duration(lo, a, sizeof(a));
		return sl__fail(ld, n->line, path, "expected a duration of at least %s, got '%s'",
		                a, text);
	}
	return 0;
}

static int sl__get_duration(struct sl__ld *ld, const struct sl_config_node *n, const char *path,
                            uint64_t lo, uint64_t *out)
{
	if (sl__want_scalar(ld, n, path, SL__DURATION_FORMS))
		return -SL_ECONFIG;
	return sl__duration_of(ld, n, path, n->value, lo, out);
}

static int sl__set_str(struct sl__ld *ld, char **dst, const char *s)
{
	char *c = strdup(s);

	if (!c)
		return sl__oom(ld);
	free(*dst);
	*dst = c;
	return 0;
}

/* base + "/" + rel, dropping rel's leading "./" parts; rel as it is when it
 * is absolute or there is no base. ".." is kept: folding it lexically would
 * be wrong across symbolic links. */
static char *sl__join(const char *base, const char *rel)
{
	size_t bl;
	char *out;

	if (!base || rel[0] == '/')
		return strdup(rel);
	while (rel[0] == '.' && (rel[1] == '/' || !rel[1])) {
		rel += rel[1] ? 2 : 1;
		while (*rel == '/')
			rel++;
	}
	bl = strlen(base);
	while (bl > 1 && base[bl - 1] == '/')
		bl--;
	if (!*rel)
		return strndup(base, bl);
	out = malloc(bl + strlen(rel) + 2);
	if (!out)
		return NULL;
	memcpy(out, base, bl);
	out[bl] = '/';
	strcpy(out + bl + 1, rel);
	if (bl == 1 && base[0] == '/')
		memmove(out, out + 1, strlen(out)); /* "/" + "x" is "/x", not "//x" */
	return out;
}

static int sl__get_path(struct sl__ld *ld, const struct sl_config_node *n, const char *path,
                        char **dst)
{
	char *p;

	if (sl__want_scalar(ld, n, path, "a path"))
		return -SL_ECONFIG;
	if (!n->value[0])
		return sl__bad(ld, n, path, "a non-empty path");
	p = sl__join(ld->base_dir, n->value);
	if (!p)
		return sl__oom(ld);
	free(*dst);
	*dst = p;
	return 0;
}

/* Names become folder names, URL segments and `NAME.so`: one path component
 * of a safe alphabet. */
static bool sl__name_ok(const char *s)
{
	size_t n = strlen(s);

	if (!n || n > 128 || s[0] == '.' || s[0] == '-')
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '.' || c == '_' || c == '-'))
			return false;
	}
	return true;
}

#define SL__NAME_FORMS                                                                             \
	"a name of letters, digits, '.', '_' and '-' (1..128 characters, not starting with '.' "   \
	"or "                                                                                      \
	"'-')"

static int sl__get_name(struct sl__ld *ld, const struct sl_config_node *n, const char *path,
                        char **dst)
{
	if (sl__want_scalar(ld, n, path, SL__NAME_FORMS))
		return -SL_ECONFIG;
	if (!sl__name_ok(n->value))
		return sl__bad(ld, n, path, SL__NAME_FORMS);
	return sl__set_str(ld, dst, n->value);
}

static int sl__get_args(struct sl__ld *ld, const struct sl_config_node *n, const char *path,
                        struct sl_config_node **dst)
{
	struct sl_config_node *copy = NULL;

	if (sl__want_map(ld, n, path))
		return -SL_ECONFIG;
	if (n->kind == SL_CONFIG_NODE_MAP) {
		if (sl_config_node_dup(n, &copy))
			return sl__oom(ld);
		/* The copy stands alone: it is nobody's entry. */
		free(copy->key);
		copy->key = NULL;
		copy->key_line = 0;
	} else {
		copy = calloc(1, sizeof(*copy));
		if (!copy)
			return sl__oom(ld);
		copy->kind = SL_CONFIG_NODE_MAP;
		copy->line = n->line;
	}
	sl_config_node_free(*dst);
	*dst = copy;
	return 0;
}

static struct sl_config_node *sl__empty_map(void)
{
	struct sl_config_node *m = calloc(1, sizeof(*m));

	if (m)
		m->kind = SL_CONFIG_NODE_MAP;
	return m;
}

/* ---- Sections --------------------------------------------------------------- */

static const char *const sl__partitioner_names[] = {
    [SL_CONFIG_PART_HASH] = "hash",
    [SL_CONFIG_PART_RANGE] = "range",
    [SL_CONFIG_PART_CONSISTENT] = "consistent",
    [SL_CONFIG_PART_JUMP] = "jump",
    [SL_CONFIG_PART_DIRECTORY] = "directory",
};

const char *sl_config_partitioner_name(enum sl_config_partitioner p)
{
	return (size_t)p < SL_ARRAY_LEN(sl__partitioner_names) ? sl__partitioner_names[p] : "?";
}

static int sl__get_cores(struct sl__ld *ld, const struct sl_config_node *n, uint32_t *out)
{
	const char *what = "auto or an integer 1..1024";
	uint64_t v;

	if (sl__want_scalar(ld, n, "cores", what))
		return -SL_ECONFIG;
	if (!strcmp(n->value, "auto")) {
		*out = 0;
		return 0;
	}
	if (sl_config_parse_u64(n->value, &v) || v < 1 || v > SL__MAX_CORES)
		return sl__bad(ld, n, "cores", what);
	*out = (uint32_t)v;
	return 0;
}

static int sl__get_addr(struct sl__ld *ld, const struct sl_config_node *n, const char *path,
                        struct sl_config_addr *a)
{
	const char *what = "host:port (an IPv4 address, a bracketed IPv6 address or a hostname, "
	                   "and a port 0..65535)";
	char *host;
	uint16_t port;
	int rc;

	if (sl__want_scalar(ld, n, path, what))
		return -SL_ECONFIG;
	rc = sl_config_parse_addr(n->value, &host, &port);
	if (rc == -ENOMEM)
		return sl__oom(ld);
	if (rc)
		return sl__bad(ld, n, path, what);
	free(a->host);
	a->host = host;
	a->port = port;
	return 0;
}

static int sl__apply_listen(struct sl__ld *ld, const struct sl_config_node *map,
                            struct sl_config *cfg)
{
	static const char *const keys[] = {"native", "http"};
	char p[SL__PATH];
	int rc;

	if ((rc = sl__want_map(ld, map, "listen")) || map->kind == SL_CONFIG_NODE_NULL)
		return rc;
	if ((rc = sl__check_keys(ld, map, "listen", keys, SL_ARRAY_LEN(keys))))
		return rc;
	for (size_t i = 0; i < map->n_items; i++) {
		const struct sl_config_node *it = &map->items[i];

		sl__sub(p, "listen", it->key);
		rc = sl__get_addr(ld, it, p,
		                  !strcmp(it->key, "native") ? &cfg->listen.native
		                                             : &cfg->listen.http);
		if (rc)
			return rc;
	}
	return 0;
}

static int sl__apply_limits(struct sl__ld *ld, const struct sl_config_node *map,
                            struct sl_config *cfg)
{
	static const char *const keys[] = {"max_connections", "max_frame_bytes", "memory_budget",
	                                   "handshake_timeout", "idle_timeout", "max_follower_lag"};
	struct sl_config_limits *l = &cfg->limits;
	char p[SL__PATH], a[32], b[32];
	uint64_t v = 0;
	int rc;

	if ((rc = sl__want_map(ld, map, "limits")) || map->kind == SL_CONFIG_NODE_NULL)
		return rc;
	if ((rc = sl__check_keys(ld, map, "limits", keys, SL_ARRAY_LEN(keys))))
		return rc;
	for (size_t i = 0; i < map->n_items; i++) {
		const struct sl_config_node *it = &map->items[i];

		sl__sub(p, "limits", it->key);
		if (!strcmp(it->key, "max_connections")) {
			/* Each connection is a descriptor and a buffer set; 16M is far
			 * beyond any fd limit, so larger is certainly a typo. */
			rc = sl__get_int(ld, it, p, 1, 1u << 24, &v);
			l->max_connections = (uint32_t)v;
		} else if (!strcmp(it->key, "max_frame_bytes")) {
			/* 64 B holds a frame header and a tiny event; 1 GiB keeps every
			 * length inside the wire's 32-bit prefix with room. */
			rc = sl__get_size(ld, it, p, 64, 1ull << 30, &l->max_frame_bytes);
		} else if (!strcmp(it->key, "memory_budget")) {
			rc = sl__get_size(ld, it, p, 1ull << 20, UINT64_MAX, &l->memory_budget);
		} else if (!strcmp(it->key, "handshake_timeout")) {
			rc = sl__get_duration(ld, it, p, 1000000, &l->handshake_timeout_ns);
		} else if (!strcmp(it->key, "max_follower_lag")) {
			/* Events a projection or sink may fall behind before its
			 * topic's overload policy applies. */
			rc = sl__get_int(ld, it, p, 1, 1ull << 40, &l->max_follower_lag);
		} else {
			rc = sl__get_duration(ld, it, p, 0, &l->idle_timeout_ns);
		}
		if (rc)
			return rc;
	}
	if (l->max_frame_bytes > l->memory_budget) {
		sl__fmt_size(l->max_frame_bytes, a, sizeof(a));
		sl__fmt_size(l->memory_budget, b, sizeof(b));
		return sl__fail(ld, map->line, "limits",
		                "max_frame_bytes (%s) is larger than memory_budget (%s)", a, b);
	}
	return 0;
}

static int sl__apply_plugin_path(struct sl__ld *ld, const struct sl_config_node *seq,
                                 struct sl_config *cfg)
{
	char p[SL__PATH];
	int rc;

	if ((rc = sl__want_seq(ld, seq, "plugin_path")))
		return rc;
	for (size_t i = 0; i < cfg->n_plugin_path; i++)
		free(cfg->plugin_path[i]);
	free(cfg->plugin_path);
	cfg->plugin_path = NULL;
	cfg->n_plugin_path = 0;
	if (!seq->n_items)
		return 0;
	cfg->plugin_path = calloc(seq->n_items, sizeof(*cfg->plugin_path));
	if (!cfg->plugin_path)
		return sl__oom(ld);
	for (size_t i = 0; i < seq->n_items; i++) {
		sl__idx(p, "plugin_path", i);
		cfg->n_plugin_path = i + 1;
		if ((rc = sl__get_path(ld, &seq->items[i], p, &cfg->plugin_path[i])))
			return rc;
	}
	return 0;
}

/* ---- Topics ------------------------------------------------------------------ */

static int sl__topic_init(struct sl_config_topic *t)
{
	memset(t, 0, sizeof(*t));
	t->partitions = SL_CONFIG_TOPIC_PARTITIONS;
	t->partitioner = SL_CONFIG_PART_HASH;
	t->durability = SL_CONFIG_DUR_FSYNC;
	t->overload = SL_CONFIG_OVERLOAD_BLOCK;
	t->retention_bytes = SL_CONFIG_TOPIC_RETENTION_BYTES;
	t->retention_age_ns = SL_CONFIG_TOPIC_RETENTION_AGE;
	t->cleanup = SL_CONFIG_CLEANUP_DELETE;
	t->segment_bytes = SL_CONFIG_TOPIC_SEGMENT_BYTES;
	t->partitioner_args = sl__empty_map();
	return t->partitioner_args ? 0 : -ENOMEM;
}

static void sl__topic_clear(struct sl_config_topic *t)
{
	free(t->name);
	sl_config_node_free(t->partitioner_args);
}

/* "0.25": digits with at most one '.', nothing else (no exponent, sign,
 * hex, inf or nan), then strtod, which reads that form exactly. */
static int sl__parse_rate(const char *s, double *out)
{
	size_t dots = 0, digits = 0;
	char *end;

	for (const char *p = s; *p; p++) {
		if (*p == '.')
			dots++;
		else if (*p >= '0' && *p <= '9')
			digits++;
		else
			return -EINVAL;
	}
	if (!digits || dots > 1)
		return -EINVAL;
	*out = strtod(s, &end);
	if (*end || !(*out > 0.0 && *out <= 1.0))
		return -EINVAL;
	return 0;
}

static int sl__topic_durability(struct sl__ld *ld, const struct sl_config_node *n, const char *path,
                                struct sl_config_topic *t)
{
	const char *what = "fsync, interval:DURATION (like interval:10ms) or none";

	if (sl__want_scalar(ld, n, path, what))
		return -SL_ECONFIG;
	t->durability_interval_ns = 0;
	if (!strcmp(n->value, "fsync")) {
		t->durability = SL_CONFIG_DUR_FSYNC;
	} else if (!strcmp(n->value, "none")) {
		t->durability = SL_CONFIG_DUR_NONE;
	} else if (!strncmp(n->value, "interval:", 9)) {
		t->durability = SL_CONFIG_DUR_INTERVAL;
		return sl__duration_of(ld, n, path, n->value + 9, 1000, &t->durability_interval_ns);
	} else {
		return sl__bad(ld, n, path, what);
	}
	return 0;
}

static int sl__topic_overload(struct sl__ld *ld, const struct sl_config_node *n, const char *path,
                              struct sl_config_topic *t)
{
	const char *what = "block, drop, sample:RATE (0 < RATE <= 1, like sample:0.1) or reject";

	if (sl__want_scalar(ld, n, path, what))
		return -SL_ECONFIG;
	t->sample_rate = 0;
	if (!strcmp(n->value, "block"))
		t->overload = SL_CONFIG_OVERLOAD_BLOCK;
	else if (!strcmp(n->value, "drop"))
		t->overload = SL_CONFIG_OVERLOAD_DROP;
	else if (!strcmp(n->value, "reject"))
		t->overload = SL_CONFIG_OVERLOAD_REJECT;
	else if (!strncmp(n->value, "sample:", 7) && !sl__parse_rate(n->value + 7, &t->sample_rate))
		t->overload = SL_CONFIG_OVERLOAD_SAMPLE;
	else
		return sl__bad(ld, n, path, what);
	return 0;
}

static int sl__topic_retention(struct sl__ld *ld, const struct sl_config_node *map,
                               const char *path, struct sl_config_topic *t)
{
	static const char *const keys[] = {"bytes", "age"};
	char p[SL__PATH];
	int rc;

	if ((rc = sl__want_map(ld, map, path)) || map->kind == SL_CONFIG_NODE_NULL)
		return rc;
	if ((rc = sl__check_keys(ld, map, path, keys, SL_ARRAY_LEN(keys))))
		return rc;
	for (size_t i = 0; i < map->n_items; i++) {
		const struct sl_config_node *it = &map->items[i];

		sl__sub(p, path, it->key);
		rc = !strcmp(it->key, "bytes")
		         ? sl__get_size(ld, it, p, 0, UINT64_MAX, &t->retention_bytes)
		         : sl__get_duration(ld, it, p, 0, &t->retention_age_ns);
		if (rc)
			return rc;
	}
	return 0;
}

static int sl__parse_topic(struct sl__ld *ld, const struct sl_config_node *map, const char *path,
                           struct sl_config_topic *t)
{
	static const char *const keys[] = {
	    "name",     "partitions", "partitioner", "partitioner_args", "durability",
	    "overload", "retention",  "cleanup",     "segment_bytes"};
	char p[SL__PATH];
	uint64_t v = 0;
	int rc;

	t->line = map->line;
	if (map->kind != SL_CONFIG_NODE_MAP)
		return sl__fail(ld, map->line, path, "expected a map (a topic), got %s",
		                sl__kind_name(map));
	if ((rc = sl__check_keys(ld, map, path, keys, SL_ARRAY_LEN(keys))))
		return rc;
	if (!sl_config_node_get(map, "name"))
		return sl__fail(ld, map->line, path, "missing key 'name'");
	for (size_t i = 0; i < map->n_items && !rc; i++) {
		const struct sl_config_node *it = &map->items[i];
		const char *k = it->key;

		sl__sub(p, path, k);
		if (!strcmp(k, "name")) {
			rc = sl__get_name(ld, it, p, &t->name);
		} else if (!strcmp(k, "partitions")) {
			rc = sl__get_int(ld, it, p, 1, SL_CONFIG_TOPIC_MAX_PARTITIONS, &v);
			t->partitions = (uint32_t)v;
		} else if (!strcmp(k, "partitioner")) {
			const char *what = "hash, range, consistent, jump or directory";
			size_t j;

			if ((rc = sl__want_scalar(ld, it, p, what)))
				break;
			for (j = 0; j < SL_ARRAY_LEN(sl__partitioner_names); j++) {
				if (!strcmp(it->value, sl__partitioner_names[j]))
					break;
			}
			if (j == SL_ARRAY_LEN(sl__partitioner_names))
				rc = sl__bad(ld, it, p, what);
			t->partitioner = (enum sl_config_partitioner)j;
		} else if (!strcmp(k, "partitioner_args")) {
			rc = sl__get_args(ld, it, p, &t->partitioner_args);
		} else if (!strcmp(k, "durability")) {
			rc = sl__topic_durability(ld, it, p, t);
		} else if (!strcmp(k, "overload")) {
			rc = sl__topic_overload(ld, it, p, t);
		} else if (!strcmp(k, "retention")) {
			rc = sl__topic_retention(ld, it, p, t);
		} else if (!strcmp(k, "cleanup")) {
			const char *what = "delete or compact";

			if ((rc = sl__want_scalar(ld, it, p, what)))
				break;
			if (!strcmp(it->value, "delete"))
				t->cleanup = SL_CONFIG_CLEANUP_DELETE;
			else if (!strcmp(it->value, "compact"))
				t->cleanup = SL_CONFIG_CLEANUP_COMPACT;
			else
				rc = sl__bad(ld, it, p, what);
		} else {
			/* 4 KiB: one page, the smallest useful segment (tests roll
			 * segments with it); 1 GiB keeps positions in 32 bits. */
			rc = sl__get_size(ld, it, p, 4096, 1ull << 30, &t->segment_bytes);
		}
	}
	return rc;
}

static ssize_t sl__topic_index(const struct sl_config *cfg, const char *name)
{
	for (size_t i = 0; i < cfg->n_topics; i++) {
		if (!strcmp(cfg->topics[i].name, name))
			return (ssize_t)i;
	}
	return -1;
}

const struct sl_config_topic *sl_config_topic_find(const struct sl_config *cfg, const char *name)
{
	ssize_t i = sl__topic_index(cfg, name);

	return i < 0 ? NULL : &cfg->topics[i];
}

static int sl__apply_topics(struct sl__ld *ld, const struct sl_config_node *seq,
                            struct sl_config *cfg)
{
	char p[SL__PATH], np[SL__PATH];
	int rc;

	if ((rc = sl__want_seq(ld, seq, "topics")) || !seq->n_items)
		return rc;
	cfg->topics = calloc(seq->n_items, sizeof(*cfg->topics));
	if (!cfg->topics)
		return sl__oom(ld);
	for (size_t i = 0; i < seq->n_items; i++) {
		struct sl_config_topic *t = &cfg->topics[i];

		sl__idx(p, "topics", i);
		cfg->n_topics = i + 1;
		if (sl__topic_init(t))
			return sl__oom(ld);
		if ((rc = sl__parse_topic(ld, &seq->items[i], p, t)))
			return rc;
		for (size_t j = 0; j < i; j++) {
			if (!strcmp(cfg->topics[j].name, t->name)) {
				sl__sub(np, p, "name");
				return sl__fail(ld,
				                sl_config_node_get(&seq->items[i], "name")->line,
				                np, "duplicate topic name '%s' (first at line %u)",
				                t->name, cfg->topics[j].line);
			}
		}
	}
	return 0;
}

/* ---- Pipelines, projections, sinks ---------------------------------------- */

static int sl__parse_transform(struct sl__ld *ld, const struct sl_config_node *map,
                               const char *path, struct sl_config_transform *tr)
{
	static const char *const keys[] = {"plugin", "args"};
	char p[SL__PATH];
	int rc = 0;

	tr->line = map->line;
	if (map->kind != SL_CONFIG_NODE_MAP)
		return sl__fail(ld, map->line, path, "expected a map (a transform), got %s",
		                sl__kind_name(map));
	if ((rc = sl__check_keys(ld, map, path, keys, SL_ARRAY_LEN(keys))))
		return rc;
	if (!sl_config_node_get(map, "plugin"))
		return sl__fail(ld, map->line, path, "missing key 'plugin'");
	for (size_t i = 0; i < map->n_items && !rc; i++) {
		const struct sl_config_node *it = &map->items[i];

		sl__sub(p, path, it->key);
		if (!strcmp(it->key, "plugin"))
			rc = sl__get_name(ld, it, p, &tr->plugin);
		else
			rc = sl__get_args(ld, it, p, &tr->args);
	}
	if (!rc && !tr->args && !(tr->args = sl__empty_map()))
		rc = sl__oom(ld);
	return rc;
}

static int sl__parse_pipeline(struct sl__ld *ld, const struct sl_config_node *map, const char *path,
                              struct sl_config_pipeline *pl)
{
	static const char *const keys[] = {"name", "from", "to", "transforms"};
	static const char *const required[] = {"name", "from", "to"};
	char p[SL__PATH], tp[SL__PATH];
	int rc = 0;

	pl->line = map->line;
	if (map->kind != SL_CONFIG_NODE_MAP)
		return sl__fail(ld, map->line, path, "expected a map (a pipeline), got %s",
		                sl__kind_name(map));
	if ((rc = sl__check_keys(ld, map, path, keys, SL_ARRAY_LEN(keys))))
		return rc;
	for (size_t i = 0; i < SL_ARRAY_LEN(required); i++) {
		if (!sl_config_node_get(map, required[i]))
			return sl__fail(ld, map->line, path, "missing key '%s'", required[i]);
	}
	for (size_t i = 0; i < map->n_items && !rc; i++) {
		const struct sl_config_node *it = &map->items[i];

		sl__sub(p, path, it->key);
		if (!strcmp(it->key, "name")) {
			rc = sl__get_name(ld, it, p, &pl->name);
		} else if (!strcmp(it->key, "from")) {
			rc = sl__get_name(ld, it, p, &pl->from);
		} else if (!strcmp(it->key, "to")) {
			rc = sl__get_name(ld, it, p, &pl->to);
		} else {
			if ((rc = sl__want_seq(ld, it, p)) || !it->n_items)
				continue;
			pl->transforms = calloc(it->n_items, sizeof(*pl->transforms));
			if (!pl->transforms)
				return sl__oom(ld);
			for (size_t j = 0; j < it->n_items && !rc; j++) {
				sl__idx(tp, p, j);
				pl->n_transforms = j + 1;
				rc = sl__parse_transform(ld, &it->items[j], tp, &pl->transforms[j]);
			}
		}
	}
	return rc;
}

static int sl__add_derived(struct sl__ld *ld, struct sl_config *cfg, size_t from, const char *name,
                           uint32_t line)
{
	struct sl_config_topic *topics, *t;

	topics = realloc(cfg->topics, (cfg->n_topics + 1) * sizeof(*topics));
	if (!topics)
		return sl__oom(ld);
	cfg->topics = topics;
	t = &topics[cfg->n_topics];
	*t = topics[from];
	t->name = strdup(name);
	if (!t->name)
		return sl__oom(ld);
	if (sl_config_node_dup(topics[from].partitioner_args, &t->partitioner_args)) {
		free(t->name);
		return sl__oom(ld);
	}
	t->derived = true;
	t->line = line;
	cfg->n_topics++;
	return 0;
}

/* Kahn's algorithm over the topic graph the pipelines draw: events that
 * flowed around a cycle would be reprocessed forever. */
static int sl__check_cycles(struct sl__ld *ld, const struct sl_config_node *seq,
                            const struct sl_config *cfg)
{
	size_t *indeg = calloc(cfg->n_topics + 1, sizeof(*indeg));
	size_t *queue = calloc(cfg->n_topics + 1, sizeof(*queue));
	size_t head = 0, tail = 0;
	int rc = 0;

	if (!indeg || !queue) {
		rc = sl__oom(ld);
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
		sl__idx(p, "pipelines", at);
		rc = sl__fail(ld, seq->items[at].line, p,
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
static int sl__resolve_pipelines(struct sl__ld *ld, const struct sl_config_node *seq,
                                 struct sl_config *cfg)
{
	bool *done = calloc(cfg->n_pipelines + 1, sizeof(*done));
	size_t left = cfg->n_pipelines;
	char p[SL__PATH], kp[SL__PATH];
	int rc = 0;

	if (!done)
		return sl__oom(ld);
	for (bool progress = true; left && progress;) {
		progress = false;
		for (size_t i = 0; i < cfg->n_pipelines && !rc; i++) {
			struct sl_config_pipeline *pl = &cfg->pipelines[i];
			ssize_t from, to;

			if (done[i] || (from = sl__topic_index(cfg, pl->from)) < 0)
				continue;
			if (!strcmp(pl->from, pl->to)) {
				sl__idx(p, "pipelines", i);
				sl__sub(kp, p, "to");
				rc =
				    sl__fail(ld, sl_config_node_get(&seq->items[i], "to")->line, kp,
				             "'%s' is also the pipeline's 'from' topic", pl->to);
				break;
			}
			to = sl__topic_index(cfg, pl->to);
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
		sl__idx(p, "pipelines", i);
		sl__sub(kp, p, "from");
		rc = sl__fail(ld, sl_config_node_get(&seq->items[i], "from")->line, kp,
		              "no topic named '%s'", cfg->pipelines[i].from);
		goto out;
	}
	rc = sl__check_cycles(ld, seq, cfg);
out:
	free(done);
	return rc;
}

static int sl__apply_pipelines(struct sl__ld *ld, const struct sl_config_node *seq,
                               struct sl_config *cfg)
{
	char p[SL__PATH], np[SL__PATH];
	int rc;

	if ((rc = sl__want_seq(ld, seq, "pipelines")) || !seq->n_items)
		return rc;
	cfg->pipelines = calloc(seq->n_items, sizeof(*cfg->pipelines));
	if (!cfg->pipelines)
		return sl__oom(ld);
	for (size_t i = 0; i < seq->n_items; i++) {
		struct sl_config_pipeline *pl = &cfg->pipelines[i];

		sl__idx(p, "pipelines", i);
		cfg->n_pipelines = i + 1;
		if ((rc = sl__parse_pipeline(ld, &seq->items[i], p, pl)))
			return rc;
		for (size_t j = 0; j < i; j++) {
			if (!strcmp(cfg->pipelines[j].name, pl->name)) {
				sl__sub(np, p, "name");
				return sl__fail(
				    ld, sl_config_node_get(&seq->items[i], "name")->line, np,
				    "duplicate pipeline name '%s' (first at line %u)", pl->name,
				    cfg->pipelines[j].line);
			}
		}
	}
	return sl__resolve_pipelines(ld, seq, cfg);
}

/* A sink's `circuit: { failures: N, cooldown: D }`. */
static int sl__parse_circuit(struct sl__ld *ld, const struct sl_config_node *map, const char *path,
                             struct sl_config_consumer *c)
{
	static const char *const keys[] = {"failures", "cooldown"};
	char p[SL__PATH];
	uint64_t v = 0;
	int rc;

	if ((rc = sl__want_map(ld, map, path)) || map->kind == SL_CONFIG_NODE_NULL)
		return rc;
	if ((rc = sl__check_keys(ld, map, path, keys, SL_ARRAY_LEN(keys))))
		return rc;
	for (size_t i = 0; i < map->n_items; i++) {
		const struct sl_config_node *it = &map->items[i];

		sl__sub(p, path, it->key);
		if (!strcmp(it->key, "failures")) {
			/* A million failures in a row is never meant: a typo. */
			rc = sl__get_int(ld, it, p, 1, 1000000, &v);
			c->circuit_failures = (uint32_t)v;
		} else {
			/* At least 1 ms: a zero cool-down probes a dead target
			 * in a busy loop. */
			rc = sl__get_duration(ld, it, p, 1000000, &c->circuit_cooldown_ns);
		}
		if (rc)
			return rc;
	}
	return 0;
}

static int sl__parse_consumer(struct sl__ld *ld, const struct sl_config_node *map, const char *path,
                              const char *what, struct sl_config_consumer *c,
                              const struct sl_config *cfg)
{
	static const char *const keys[] = {"name", "plugin", "from", "args", "circuit"};
	const struct sl_config_node *circuit;
	bool sink = !strcmp(what, "sink");
	char p[SL__PATH];
	ssize_t from;
	int rc = 0;

	c->line = map->line;
	if (map->kind != SL_CONFIG_NODE_MAP)
		return sl__fail(ld, map->line, path, "expected a map (a %s), got %s", what,
		                sl__kind_name(map));
	/* `circuit` guards a call to the outside world: only sinks make one. */
	circuit = sl_config_node_get(map, "circuit");
	if (circuit && !sink) {
		sl__sub(p, path, "circuit");
		return sl__fail(ld, circuit->key_line ? circuit->key_line : circuit->line, p,
		                "only sinks take a circuit breaker (a %s has no outside world to "
		                "guard)",
		                what);
	}
	if ((rc = sl__check_keys(ld, map, path, keys, SL_ARRAY_LEN(keys) - !sink)))
		return rc;
	if (sink) {
		c->circuit_failures = SL_CONFIG_CIRCUIT_FAILURES;
		c->circuit_cooldown_ns = SL_CONFIG_CIRCUIT_COOLDOWN_NS;
	}
	for (size_t i = 0; i < 3; i++) {
		if (!sl_config_node_get(map, keys[i]))
			return sl__fail(ld, map->line, path, "missing key '%s'", keys[i]);
	}
	for (size_t i = 0; i < map->n_items && !rc; i++) {
		const struct sl_config_node *it = &map->items[i];

		sl__sub(p, path, it->key);
		if (!strcmp(it->key, "name")) {
			rc = sl__get_name(ld, it, p, &c->name);
		} else if (!strcmp(it->key, "plugin")) {
			rc = sl__get_name(ld, it, p, &c->plugin);
		} else if (!strcmp(it->key, "from")) {
			if ((rc = sl__get_name(ld, it, p, &c->from)))
				break;
			if ((from = sl__topic_index(cfg, c->from)) < 0)
				rc = sl__fail(ld, it->line, p, "no topic named '%s'", c->from);
			c->from_topic = (size_t)from;
		} else if (!strcmp(it->key, "circuit")) {
			rc = sl__parse_circuit(ld, it, p, c);
		} else {
			rc = sl__get_args(ld, it, p, &c->args);
		}
	}
	if (!rc && !c->args && !(c->args = sl__empty_map()))
		rc = sl__oom(ld);
	return rc;
}

static int sl__apply_consumers(struct sl__ld *ld, const struct sl_config_node *seq, const char *key,
                               const char *what, struct sl_config_consumer **arr, size_t *n,
                               const struct sl_config *cfg)
{
	char p[SL__PATH], np[SL__PATH];
	int rc;

	if ((rc = sl__want_seq(ld, seq, key)) || !seq->n_items)
		return rc;
	*arr = calloc(seq->n_items, sizeof(**arr));
	if (!*arr)
		return sl__oom(ld);
	for (size_t i = 0; i < seq->n_items; i++) {
		struct sl_config_consumer *c = &(*arr)[i];

		sl__idx(p, key, i);
		*n = i + 1;
		if ((rc = sl__parse_consumer(ld, &seq->items[i], p, what, c, cfg)))
			return rc;
		for (size_t j = 0; j < i; j++) {
			if (!strcmp((*arr)[j].name, c->name)) {
				sl__sub(np, p, "name");
				return sl__fail(ld,
				                sl_config_node_get(&seq->items[i], "name")->line,
				                np, "duplicate %s name '%s' (first at line %u)",
				                what, c->name, (*arr)[j].line);
			}
		}
	}
	return 0;
}

/* ---- Whole configuration --------------------------------------------------------- */

static void sl__consumers_free(struct sl_config_consumer *arr, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(arr[i].name);
		free(arr[i].plugin);
		free(arr[i].from);
		sl_config_node_free(arr[i].args);
	}
	free(arr);
}

/* Drops the lists: a file's lists replace the default's whole. */
static void sl__lists_free(struct sl_config *cfg)
{
	for (size_t i = 0; i < cfg->n_topics; i++)
		sl__topic_clear(&cfg->topics[i]);
	free(cfg->topics);
	for (size_t i = 0; i < cfg->n_pipelines; i++) {
		struct sl_config_pipeline *pl = &cfg->pipelines[i];

		free(pl->name);
		free(pl->from);
		free(pl->to);
		for (size_t j = 0; j < pl->n_transforms; j++) {
			free(pl->transforms[j].plugin);
			sl_config_node_free(pl->transforms[j].args);
		}
		free(pl->transforms);
	}
	free(cfg->pipelines);
	sl__consumers_free(cfg->projections, cfg->n_projections);
	sl__consumers_free(cfg->sinks, cfg->n_sinks);
	cfg->topics = NULL;
	cfg->n_topics = 0;
	cfg->pipelines = NULL;
	cfg->n_pipelines = 0;
	cfg->projections = NULL;
	cfg->n_projections = 0;
	cfg->sinks = NULL;
	cfg->n_sinks = 0;
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
	for (size_t i = 0; i < cfg->n_plugin_path; i++)
		free(cfg->plugin_path[i]);
	free(cfg->plugin_path);
	memset(cfg, 0, sizeof(*cfg));
}

static int sl__apply(struct sl__ld *ld, const struct sl_config_node *root, struct sl_config *cfg)
{
	static const char *const keys[] = {"data_dir",  "cores",       "listen",
	                                   "limits",    "plugin_path", "topics",
	                                   "pipelines", "projections", "sinks"};
	const struct sl_config_node *pipelines = NULL, *projections = NULL, *sinks = NULL;
	int rc;

	if (!root || root->kind == SL_CONFIG_NODE_NULL)
		return 0;
	if (root->kind != SL_CONFIG_NODE_MAP)
		return sl__fail(ld, root->line, "", "expected a map of configuration keys, got %s",
		                sl__kind_name(root));
	if ((rc = sl__check_keys(ld, root, "", keys, SL_ARRAY_LEN(keys))))
		return rc;
	for (size_t i = 0; i < root->n_items && !rc; i++) {
		const struct sl_config_node *it = &root->items[i];
		const char *k = it->key;

		if (!strcmp(k, "data_dir"))
			rc = sl__get_path(ld, it, k, &cfg->data_dir);
		else if (!strcmp(k, "cores"))
			rc = sl__get_cores(ld, it, &cfg->cores);
		else if (!strcmp(k, "listen"))
			rc = sl__apply_listen(ld, it, cfg);
		else if (!strcmp(k, "limits"))
			rc = sl__apply_limits(ld, it, cfg);
		else if (!strcmp(k, "plugin_path"))
			rc = sl__apply_plugin_path(ld, it, cfg);
		else if (!strcmp(k, "topics"))
			rc = sl__apply_topics(ld, it, cfg);
		else if (!strcmp(k, "pipelines"))
			pipelines = it;
		else if (!strcmp(k, "projections"))
			projections = it;
		else
			sinks = it;
	}
	/* After every topic is known, whatever the order of the keys. */
	if (!rc && pipelines)
		rc = sl__apply_pipelines(ld, pipelines, cfg);
	if (!rc && projections)
		rc = sl__apply_consumers(ld, projections, "projections", "projection",
		                         &cfg->projections, &cfg->n_projections, cfg);
	if (!rc && sinks)
		rc = sl__apply_consumers(ld, sinks, "sinks", "sink", &cfg->sinks, &cfg->n_sinks,
		                         cfg);
	return rc;
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
		rc = sl__oom(&ld);
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
		rc = sl__oom(&ld);
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
	*out = sl__join(cfg->base_dir, path);
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

/* ---- Printing ------------------------------------------------------------------- */

static void sl__dump_scalar(const char *key, const char *text, FILE *out, int indent)
{
	struct sl_config_node n = {.kind = SL_CONFIG_NODE_SCALAR, .value = (char *)text};

	fprintf(out, "%*s%s:", indent, "", key);
	sl_config_node_dump(&n, out, indent + 2);
}

static void sl__dump_size(const char *key, uint64_t v, FILE *out, int indent)
{
	char buf[32];

	sl__fmt_size(v, buf, sizeof(buf));
	fprintf(out, "%*s%s: %s\n", indent, "", key, buf);
}

static void sl__dump_duration(const char *key, uint64_t v, FILE *out, int indent)
{
	char buf[32];

	sl__fmt_duration(v, buf, sizeof(buf));
	fprintf(out, "%*s%s: %s\n", indent, "", key, buf);
}

static void sl__dump_addr(const char *key, const struct sl_config_addr *a, FILE *out)
{
	char buf[300];
	bool v6 = a->host && strchr(a->host, ':');

	snprintf(buf, sizeof(buf), "%s%s%s:%u", v6 ? "[" : "", a->host ? a->host : "",
	         v6 ? "]" : "", a->port);
	sl__dump_scalar(key, buf, out, 2);
}

/* The shortest plain decimal that reads back as exactly `rate`: %g would
 * print exponents, which the sample:RATE form does not accept. */
static void sl__fmt_rate(double rate, char *buf, size_t len)
{
	for (int prec = 1; prec < 400; prec++) {
		snprintf(buf, len, "%.*f", prec, rate);
		if (strtod(buf, NULL) == rate)
			break;
	}
	for (size_t n = strlen(buf); n > 2 && buf[n - 1] == '0' && buf[n - 2] != '.'; n--)
		buf[n - 1] = '\0';
}

static void sl__dump_topic(const struct sl_config_topic *t, FILE *out)
{
	char buf[512];

	sl__dump_scalar("- name", t->name, out, 2);
	fprintf(out, "    partitions: %u\n", t->partitions);
	fprintf(out, "    partitioner: %s\n", sl_config_partitioner_name(t->partitioner));
	fputs("    partitioner_args:", out);
	sl_config_node_dump(t->partitioner_args, out, 6);
	switch (t->durability) {
	case SL_CONFIG_DUR_FSYNC:
		fputs("    durability: fsync\n", out);
		break;
	case SL_CONFIG_DUR_NONE:
		fputs("    durability: none\n", out);
		break;
	default:
		sl__fmt_duration(t->durability_interval_ns, buf, sizeof(buf));
		fprintf(out, "    durability: interval:%s\n", buf);
	}
	switch (t->overload) {
	case SL_CONFIG_OVERLOAD_BLOCK:
		fputs("    overload: block\n", out);
		break;
	case SL_CONFIG_OVERLOAD_DROP:
		fputs("    overload: drop\n", out);
		break;
	case SL_CONFIG_OVERLOAD_REJECT:
		fputs("    overload: reject\n", out);
		break;
	default:
		sl__fmt_rate(t->sample_rate, buf, sizeof(buf));
		fprintf(out, "    overload: sample:%s\n", buf);
	}
	fputs("    retention:\n", out);
	sl__dump_size("bytes", t->retention_bytes, out, 6);
	sl__dump_duration("age", t->retention_age_ns, out, 6);
	fprintf(out, "    cleanup: %s\n",
	        t->cleanup == SL_CONFIG_CLEANUP_COMPACT ? "compact" : "delete");
	sl__dump_size("segment_bytes", t->segment_bytes, out, 4);
}

static void sl__dump_consumers(const char *key, const struct sl_config_consumer *arr, size_t n,
                               FILE *out)
{
	fprintf(out, "%s:%s\n", key, n ? "" : " []");
	for (size_t i = 0; i < n; i++) {
		sl__dump_scalar("- name", arr[i].name, out, 2);
		sl__dump_scalar("plugin", arr[i].plugin, out, 4);
		sl__dump_scalar("from", arr[i].from, out, 4);
		fputs("    args:", out);
		sl_config_node_dump(arr[i].args, out, 6);
		if (arr[i].circuit_failures) {
			fprintf(out, "    circuit:\n      failures: %u\n", arr[i].circuit_failures);
			sl__dump_duration("cooldown", arr[i].circuit_cooldown_ns, out, 6);
		}
	}
}

int sl_config_dump(const struct sl_config *cfg, FILE *out)
{
	const struct sl_config_limits *l = &cfg->limits;

	if (cfg->data_dir)
		sl__dump_scalar("data_dir", cfg->data_dir, out, 0);
	if (cfg->cores)
		fprintf(out, "cores: %u\n", cfg->cores);
	else
		fputs("cores: auto\n", out);
	fputs("listen:\n", out);
	sl__dump_addr("native", &cfg->listen.native, out);
	sl__dump_addr("http", &cfg->listen.http, out);
	fputs("limits:\n", out);
	fprintf(out, "  max_connections: %u\n", l->max_connections);
	sl__dump_size("max_frame_bytes", l->max_frame_bytes, out, 2);
	sl__dump_size("memory_budget", l->memory_budget, out, 2);
	sl__dump_duration("handshake_timeout", l->handshake_timeout_ns, out, 2);
	sl__dump_duration("idle_timeout", l->idle_timeout_ns, out, 2);
	fprintf(out, "  max_follower_lag: %llu\n", (unsigned long long)l->max_follower_lag);
	fprintf(out, "plugin_path:%s\n", cfg->n_plugin_path ? "" : " []");
	for (size_t i = 0; i < cfg->n_plugin_path; i++) {
		struct sl_config_node n = {.kind = SL_CONFIG_NODE_SCALAR,
		                           .value = cfg->plugin_path[i]};

		fputs("  -", out);
		sl_config_node_dump(&n, out, 4);
	}
	fprintf(out, "topics:%s\n", cfg->n_topics ? "" : " []");
	for (size_t i = 0; i < cfg->n_topics; i++)
		sl__dump_topic(&cfg->topics[i], out);
	fprintf(out, "pipelines:%s\n", cfg->n_pipelines ? "" : " []");
	for (size_t i = 0; i < cfg->n_pipelines; i++) {
		const struct sl_config_pipeline *pl = &cfg->pipelines[i];

		sl__dump_scalar("- name", pl->name, out, 2);
		sl__dump_scalar("from", pl->from, out, 4);
		sl__dump_scalar("to", pl->to, out, 4);
		fprintf(out, "    transforms:%s\n", pl->n_transforms ? "" : " []");
		for (size_t j = 0; j < pl->n_transforms; j++) {
			sl__dump_scalar("- plugin", pl->transforms[j].plugin, out, 6);
			fputs("        args:", out);
			sl_config_node_dump(pl->transforms[j].args, out, 10);
		}
	}
	sl__dump_consumers("projections", cfg->projections, cfg->n_projections, out);
	sl__dump_consumers("sinks", cfg->sinks, cfg->n_sinks, out);
	return ferror(out) ? -EIO : 0;
}
