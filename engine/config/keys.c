/* The generic half of the configuration: messages that name the line and
 * the key path, the scalar types with their units and ranges, and the loop
 * that parses a section through its table (keys.h). */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "config/keys.h"

int sl__cfg_fail(struct sl__ld *ld, uint32_t line, const char *path, const char *fmt, ...)
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

int sl__cfg_oom(struct sl__ld *ld)
{
	if (ld->errlen)
		snprintf(ld->err, ld->errlen, "%s: out of memory", ld->name);
	return -ENOMEM;
}

/* What a node holds, for "got ..." in messages: quoted and cut to a
 * printable excerpt, since the text may be anything. */
const char *sl__cfg_got(const struct sl_config_node *n, char *buf, size_t len)
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

/* Key paths are for messages: one cut short still reads well, so a
 * truncated path only gets an ellipsis. */
static void sl__path_cut(char *out, int n)
{
	if (n < 0 || n >= SL__PATH)
		memcpy(out + SL__PATH - 4, "...", 4);
}

void sl__cfg_sub(char *out, const char *parent, const char *key)
{
	sl__path_cut(out, snprintf(out, SL__PATH, "%s%s%.64s", parent, *parent ? "." : "", key));
}

void sl__cfg_idx(char *out, const char *parent, size_t i)
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

/* A map, or nothing (an empty value), which reads as an empty map. */
static int sl__want_map(struct sl__ld *ld, const struct sl_config_node *n, const char *path)
{
	if (n->kind == SL_CONFIG_NODE_MAP || n->kind == SL_CONFIG_NODE_NULL)
		return 0;
	return sl__cfg_fail(ld, n->line, path, "expected a map, got %s", sl__cfg_kind_name(n));
}

static int sl__want_seq(struct sl__ld *ld, const struct sl_config_node *n, const char *path)
{
	if (n->kind == SL_CONFIG_NODE_SEQ || n->kind == SL_CONFIG_NODE_NULL)
		return 0;
	return sl__cfg_fail(ld, n->line, path, "expected a sequence, got %s", sl__cfg_kind_name(n));
}

int sl__cfg_want_scalar(struct sl__ld *ld, const struct sl_config_node *n, const char *path,
                        const char *what)
{
	char got[96];

	if (n->kind == SL_CONFIG_NODE_SCALAR)
		return 0;
	return sl__cfg_fail(ld, n->line, path, "expected %s, got %s", what,
	                    sl__cfg_got(n, got, sizeof(got)));
}

int sl__cfg_bad(struct sl__ld *ld, const struct sl_config_node *n, const char *path,
                const char *what)
{
	char got[96];

	return sl__cfg_fail(ld, n->line, path, "expected %s, got %s", what,
	                    sl__cfg_got(n, got, sizeof(got)));
}

static int sl__get_int(struct sl__ld *ld, const struct sl_config_node *n, const char *path,
                       uint64_t lo, uint64_t hi, uint64_t *out)
{
	char what[80];
	uint64_t v;

	snprintf(what, sizeof(what), "an integer %llu..%llu", (unsigned long long)lo,
	         (unsigned long long)hi);
	if (sl__cfg_want_scalar(ld, n, path, what))
		return -SL_ECONFIG;
	if (sl_config_parse_u64(n->value, &v) || v < lo || v > hi)
		return sl__cfg_bad(ld, n, path, what);
	*out = v;
	return 0;
}

void sl__cfg_fmt_size(uint64_t v, char *buf, size_t len)
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

void sl__cfg_fmt_duration(uint64_t ns, char *buf, size_t len)
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

	sl__cfg_got(n, got, sizeof(got));
	if (text[0] == '-')
		return sl__cfg_fail(ld, n->line, path, "%s cannot be negative, got %s", kind, got);
	if (rc == -ERANGE)
		return sl__cfg_fail(ld, n->line, path, "%s %s does not fit in 64 bits", kind, got);
	return sl__cfg_fail(ld, n->line, path, "expected %s, got %s", what, got);
}

#define SL__SIZE_FORMS     "a size like 512MiB, 64KiB, 1MB or a byte count"
#define SL__DURATION_FORMS "a duration like 250us, 10ms, 5s, 1h or 7d"

static int sl__get_size(struct sl__ld *ld, const struct sl_config_node *n, const char *path,
                        uint64_t lo, uint64_t hi, uint64_t *out)
{
	char a[32], b[32];
	uint64_t v;
	int rc;

	if (sl__cfg_want_scalar(ld, n, path, SL__SIZE_FORMS))
		return -SL_ECONFIG;
	if ((rc = sl_config_parse_size(n->value, &v)))
		return sl__unit_error(ld, n, path, n->value, rc, SL__SIZE_FORMS, "a size");
	if (v < lo || v > hi) {
		sl__cfg_fmt_size(lo, a, sizeof(a));
		sl__cfg_fmt_size(hi, b, sizeof(b));
		return sl__cfg_fail(ld, n->line, path, "expected a size from %s to %s, got '%s'", a,
		                    b, n->value);
	}
	*out = v;
	return 0;
}

int sl__cfg_duration_of(struct sl__ld *ld, const struct sl_config_node *n, const char *path,
                        const char *text, uint64_t lo, uint64_t *out)
{
	char a[32];
	int rc;

	if ((rc = sl_config_parse_duration(text, out)))
		return sl__unit_error(ld, n, path, text, rc, SL__DURATION_FORMS, "a duration");
	if (*out < lo) {
		sl__cfg_fmt_duration(lo, a, sizeof(a));
		return sl__cfg_fail(ld, n->line, path,
		                    "expected a duration of at least %s, got '%s'", a, text);
	}
	return 0;
}

static int sl__get_duration(struct sl__ld *ld, const struct sl_config_node *n, const char *path,
                            uint64_t lo, uint64_t *out)
{
	if (sl__cfg_want_scalar(ld, n, path, SL__DURATION_FORMS))
		return -SL_ECONFIG;
	return sl__cfg_duration_of(ld, n, path, n->value, lo, out);
}

static int sl__set_str(struct sl__ld *ld, char **dst, const char *s)
{
	char *c = strdup(s);

	if (!c)
		return sl__cfg_oom(ld);
	free(*dst);
	*dst = c;
	return 0;
}

/* base + "/" + rel, dropping rel's leading "./" parts; rel as it is when it
 * is absolute or there is no base. ".." is kept: folding it lexically would
 * be wrong across symbolic links. */
char *sl__cfg_join(const char *base, const char *rel)
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

	if (sl__cfg_want_scalar(ld, n, path, "a path"))
		return -SL_ECONFIG;
	if (!n->value[0])
		return sl__cfg_bad(ld, n, path, "a non-empty path");
	p = sl__cfg_join(ld->base_dir, n->value);
	if (!p)
		return sl__cfg_oom(ld);
	free(*dst);
	*dst = p;
	return 0;
}

/* Names become folder names, URL segments and `NAME.so`: one path component
 * of a safe alphabet (base.h). */
static bool sl__name_ok(const char *s)
{
	return sl_name_ok(s, strlen(s));
}

#define SL__NAME_FORMS                                                                             \
	"a name of letters, digits, '.', '_' and '-' (1..128 characters, not starting with '.' "   \
	"or "                                                                                      \
	"'-')"

static int sl__get_name(struct sl__ld *ld, const struct sl_config_node *n, const char *path,
                        char **dst)
{
	if (sl__cfg_want_scalar(ld, n, path, SL__NAME_FORMS))
		return -SL_ECONFIG;
	if (!sl__name_ok(n->value))
		return sl__cfg_bad(ld, n, path, SL__NAME_FORMS);
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
			return sl__cfg_oom(ld);
		/* The copy stands alone: it is nobody's entry. */
		free(copy->key);
		copy->key = NULL;
		copy->key_line = 0;
	} else {
		copy = calloc(1, sizeof(*copy));
		if (!copy)
			return sl__cfg_oom(ld);
		copy->kind = SL_CONFIG_NODE_MAP;
		copy->line = n->line;
	}
	sl_config_node_free(*dst);
	*dst = copy;
	return 0;
}

struct sl_config_node *sl__cfg_empty_map(void)
{
	struct sl_config_node *m = calloc(1, sizeof(*m));

	if (m)
		m->kind = SL_CONFIG_NODE_MAP;
	return m;
}

/* ---- The generic loop ------------------------------------------------------- */

static const struct sl__key *sl__row(const struct sl__section *sec, const char *key)
{
	for (size_t k = 0; k < sec->n_keys; k++) {
		if (!strcmp(sec->keys[k].name, key))
			return &sec->keys[k];
	}
	return NULL;
}

/* Unknown keys: the nearest row within two edits, else the whole table. */
static int sl__check_keys(struct sl__ld *ld, const struct sl__section *sec,
                          const struct sl_config_node *map, const char *path)
{
	for (size_t i = 0; i < map->n_items; i++) {
		const struct sl_config_node *it = &map->items[i];
		const char *best = NULL;
		size_t best_d = 3; /* suggest only keys within two edits */
		char shown[96], list[256];
		size_t o = 0;

		if (sl__row(sec, it->key))
			continue;
		for (size_t k = 0; k < sec->n_keys; k++) {
			size_t d = sl__distance(it->key, sec->keys[k].name);

			if (d < best_d) {
				best_d = d;
				best = sec->keys[k].name;
			}
		}
		struct sl_config_node as_scalar = {.kind = SL_CONFIG_NODE_SCALAR, .value = it->key};

		sl__cfg_got(&as_scalar, shown, sizeof(shown));
		if (best)
			return sl__cfg_fail(ld, it->key_line, path,
			                    "unknown key %s (did you mean '%s'?)", shown, best);
		list[0] = '\0';
		for (size_t k = 0; k < sec->n_keys; k++) {
			int n = snprintf(list + o, sizeof(list) - o, "%s%s", k ? ", " : "",
			                 sec->keys[k].name);

			if (n < 0 || (size_t)n >= sizeof(list) - o)
				break;
			o += (size_t)n;
		}
		return sl__cfg_fail(ld, it->key_line, path, "unknown key %s (expected one of: %s)",
		                    shown, list);
	}
	return 0;
}

static int sl__get_bool(struct sl__ld *ld, const struct sl_config_node *n, const char *path,
                        bool *out)
{
	const char *what = "true or false";

	if (sl__cfg_want_scalar(ld, n, path, what))
		return -SL_ECONFIG;
	/* The words sl_config_node_bool() reads, so plugins and sluice agree. */
	if (!strcmp(n->value, "true") || !strcmp(n->value, "yes") || !strcmp(n->value, "on"))
		*out = true;
	else if (!strcmp(n->value, "false") || !strcmp(n->value, "no") || !strcmp(n->value, "off"))
		*out = false;
	else
		return sl__cfg_bad(ld, n, path, what);
	return 0;
}

/* "a, b or c" from an enum's names. */
static void sl__enum_what(const struct sl__key *key, char *buf, size_t len)
{
	size_t o = 0;

	buf[0] = '\0';
	for (size_t i = 0; i < key->n_names; i++) {
		const char *sep = !i ? "" : i + 1 == key->n_names ? " or " : ", ";
		int n = snprintf(buf + o, len - o, "%s%s", sep, key->names[i]);

		if (n < 0 || (size_t)n >= len - o)
			return;
		o += (size_t)n;
	}
}

static int sl__get_enum(struct sl__ld *ld, const struct sl__key *key,
                        const struct sl_config_node *n, const char *path, uint64_t *out)
{
	char what[256];

	sl__enum_what(key, what, sizeof(what));
	if (sl__cfg_want_scalar(ld, n, path, what))
		return -SL_ECONFIG;
	for (size_t i = 0; i < key->n_names; i++) {
		if (key->names[i] && !strcmp(n->value, key->names[i])) {
			*out = i;
			return 0;
		}
	}
	return sl__cfg_bad(ld, n, path, what);
}

/* INT and ENUM fields are 32 or 64 bits wide. */
static void sl__store_uint(void *field, size_t size, uint64_t v)
{
	if (size == sizeof(uint32_t)) {
		uint32_t v32 = (uint32_t)v;

		memcpy(field, &v32, sizeof(v32));
	} else {
		memcpy(field, &v, sizeof(v));
	}
}

/* A list of paths replaces the one there: lists are what a file says. */
static int sl__get_paths(struct sl__ld *ld, const struct sl_config_node *seq, const char *path,
                         char ***arr, size_t *n, bool resolve)
{
	char p[SL__PATH];
	int rc;

	if ((rc = sl__want_seq(ld, seq, path)))
		return rc;
	for (size_t i = 0; i < *n; i++)
		free((*arr)[i]);
	free(*arr);
	*arr = NULL;
	*n = 0;
	if (!seq->n_items)
		return 0;
	*arr = calloc(seq->n_items, sizeof(**arr));
	if (!*arr)
		return sl__cfg_oom(ld);
	for (size_t i = 0; i < seq->n_items; i++) {
		sl__cfg_idx(p, path, i);
		*n = i + 1;
		if (resolve)
			rc = sl__get_path(ld, &seq->items[i], p, &(*arr)[i]);
		else if (!(rc = sl__cfg_want_scalar(ld, &seq->items[i], p, "a string")))
			rc = sl__set_str(ld, &(*arr)[i], seq->items[i].value);
		if (rc)
			return rc;
	}
	return 0;
}

/* An array of sections. The target starts empty (a file's lists replace
 * the default's before it is applied); the count grows with each element
 * so that a failure frees exactly what was made. */
static int sl__get_seq(struct sl__ld *ld, const struct sl__key *key,
                       const struct sl_config_node *seq, const char *path, void *obj)
{
	const struct sl__section *sec = key->sub;
	void **arr = (void **)((char *)obj + key->off);
	size_t *n = (size_t *)((char *)obj + key->off_n);
	char p[SL__PATH], np[SL__PATH];
	int rc;

	if ((rc = sl__want_seq(ld, seq, path)) || !seq->n_items)
		return rc;
	*arr = calloc(seq->n_items, sec->elem_size);
	if (!*arr)
		return sl__cfg_oom(ld);
	for (size_t i = 0; i < seq->n_items; i++) {
		const struct sl_config_node *m = &seq->items[i];
		char *el = (char *)*arr + i * sec->elem_size;

		sl__cfg_idx(p, path, i);
		*n = i + 1;
		if (sec->init && sec->init(el))
			return sl__cfg_oom(ld);
		if (sec->line_off)
			memcpy(el + sec->line_off, &m->line, sizeof(m->line));
		if (m->kind != SL_CONFIG_NODE_MAP)
			return sl__cfg_fail(ld, m->line, p, "expected a map (a %s), got %s",
			                    sec->what, sl__cfg_kind_name(m));
		if ((rc = sl__cfg_section_parse(ld, sec, m, p, el)))
			return rc;
		if (!sec->unique_name)
			continue;
		for (size_t j = 0; j < i; j++) {
			char *other = (char *)*arr + j * sec->elem_size;
			const char *a = *(char **)(el + sec->name_off);
			const char *b = *(char **)(other + sec->name_off);
			uint32_t first;

			if (strcmp(a, b))
				continue;
			memcpy(&first, other + sec->line_off, sizeof(first));
			sl__cfg_sub(np, p, "name");
			return sl__cfg_fail(ld, sl_config_node_get(m, "name")->line, np,
			                    "duplicate %s name '%s' (first at line %u)", sec->what,
			                    a, first);
		}
	}
	return 0;
}

int sl__cfg_key_parse(struct sl__ld *ld, const struct sl__key *key, const struct sl_config_node *n,
                      const char *path, void *obj)
{
	void *field = (char *)obj + key->off;
	uint64_t v = 0;
	int rc;

	switch (key->type) {
	case SL__T_BOOL:
		return sl__get_bool(ld, n, path, field);
	case SL__T_INT:
		if ((rc = sl__get_int(ld, n, path, key->lo, key->hi, &v)))
			return rc;
		sl__store_uint(field, key->size, v);
		return 0;
	case SL__T_SIZE:
		return sl__get_size(ld, n, path, key->lo, key->hi, field);
	case SL__T_DURATION:
		return sl__get_duration(ld, n, path, key->lo, field);
	case SL__T_NAME:
		return sl__get_name(ld, n, path, field);
	case SL__T_PATH:
		return sl__get_path(ld, n, path, field);
	case SL__T_ENUM:
		if ((rc = sl__get_enum(ld, key, n, path, &v)))
			return rc;
		sl__store_uint(field, key->size, v);
		return 0;
	case SL__T_PATHS:
	case SL__T_STRS:
		return sl__get_paths(ld, n, path, field, (size_t *)((char *)obj + key->off_n),
		                     key->type == SL__T_PATHS);
	case SL__T_MAP:
		return sl__cfg_section_parse(ld, key->sub, n, path, field);
	case SL__T_SEQ:
		if ((rc = sl__get_seq(ld, key, n, path, obj)))
			return rc;
		return key->after ? key->after(ld, n, path, obj) : 0;
	case SL__T_ARGS:
		return sl__get_args(ld, n, path, field);
	case SL__T_CUSTOM:
		return key->parse(ld, n, path, obj);
	}
	return -EINVAL;
}

int sl__cfg_section_parse(struct sl__ld *ld, const struct sl__section *sec,
                          const struct sl_config_node *map, const char *path, void *obj)
{
	char p[SL__PATH];
	int rc;

	if ((rc = sl__want_map(ld, map, path)) || map->kind == SL_CONFIG_NODE_NULL)
		return rc;
	if (sec->pre && (rc = sec->pre(ld, map, path, obj)))
		return rc;
	if ((rc = sl__check_keys(ld, sec, map, path)))
		return rc;
	for (size_t k = 0; k < sec->n_keys; k++) {
		if (sec->keys[k].required && !sl_config_node_get(map, sec->keys[k].name))
			return sl__cfg_fail(ld, map->line, path, "missing key '%s'",
			                    sec->keys[k].name);
	}
	for (size_t i = 0; i < map->n_items; i++) {
		const struct sl_config_node *it = &map->items[i];
		const struct sl__key *key = sl__row(sec, it->key);

		if (key->late)
			continue;
		sl__cfg_sub(p, path, it->key);
		if ((rc = sl__cfg_key_parse(ld, key, it, p, obj)))
			return rc;
	}
	for (size_t k = 0; k < sec->n_keys; k++) {
		const struct sl__key *key = &sec->keys[k];
		const struct sl_config_node *it;

		if (!key->late || !(it = sl_config_node_get(map, key->name)))
			continue;
		sl__cfg_sub(p, path, it->key);
		if ((rc = sl__cfg_key_parse(ld, key, it, p, obj)))
			return rc;
	}
	return sec->check ? sec->check(ld, map, path, obj) : 0;
}
