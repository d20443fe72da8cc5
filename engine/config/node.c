/* The generic YAML tree: built from libyaml's event stream, read by lookups.
 * dump.c writes it back. */
#include "config/config.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "base/base.h"

/* Deep enough for any sensible plugin argument, shallow enough that the
 * recursive builder, copier and printer cannot exhaust a thread's stack. */
#define SL__NODE_MAX_DEPTH 64

struct sl__np {
	yaml_parser_t parser;
	const char *yaml;
	size_t len;
	const char *name;
	char *err;
	size_t errlen;
	char path[512]; /* key path of the node being built, for messages */
	size_t path_len;
};

static int sl__np_fail(struct sl__np *np, size_t line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int sl__np_fail(struct sl__np *np, size_t line, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (!np->errlen)
		return -SL_ECONFIG;
	n = snprintf(np->err, np->errlen, "%s:%zu: %s%s", np->name, line, np->path,
	             np->path_len ? ": " : "");
	if (n < 0 || (size_t)n >= np->errlen)
		return -SL_ECONFIG;
	va_start(ap, fmt);
	vsnprintf(np->err + n, np->errlen - (size_t)n, fmt, ap);
	va_end(ap);
	return -SL_ECONFIG;
}

/* Line (1-based) of a byte offset, for reader errors that carry only that. */
static size_t sl__line_of(const char *s, size_t len, size_t off)
{
	size_t line = 1;

	for (size_t i = 0; i < off && i < len; i++)
		line += s[i] == '\n';
	return line;
}

static int sl__np_next(struct sl__np *np, yaml_event_t *ev)
{
	yaml_parser_t *p = &np->parser;

	if (yaml_parser_parse(p, ev))
		return 0;
	if (p->error == YAML_MEMORY_ERROR) {
		if (np->errlen)
			snprintf(np->err, np->errlen, "%s: out of memory parsing YAML", np->name);
		return -ENOMEM;
	}
	if (!np->errlen)
		return -SL_ECONFIG;
	if (p->error == YAML_READER_ERROR) {
		snprintf(np->err, np->errlen, "%s:%zu: YAML syntax error: %s", np->name,
		         sl__line_of(np->yaml, np->len, p->problem_offset),
		         p->problem ? p->problem : "unreadable input");
	} else if (p->context) {
		snprintf(np->err, np->errlen, "%s:%zu:%zu: YAML syntax error: %s (%s at line %zu)",
		         np->name, p->problem_mark.line + 1, p->problem_mark.column + 1,
		         p->problem ? p->problem : "invalid YAML", p->context,
		         p->context_mark.line + 1);
	} else {
		snprintf(np->err, np->errlen, "%s:%zu:%zu: YAML syntax error: %s", np->name,
		         p->problem_mark.line + 1, p->problem_mark.column + 1,
		         p->problem ? p->problem : "invalid YAML");
	}
	return -SL_ECONFIG;
}

static bool sl__is_null_word(const char *s)
{
	return !*s || !strcmp(s, "~") || !strcmp(s, "null") || !strcmp(s, "Null") ||
	       !strcmp(s, "NULL");
}

/* Appends "[i]" or ".key" to np->path; returns the length to restore. */
static size_t sl__np_push(struct sl__np *np, const char *key, size_t idx)
{
	size_t old = np->path_len;
	int n;

	if (key)
		n = snprintf(np->path + old, sizeof(np->path) - old, "%s%s", old ? "." : "", key);
	else
		n = snprintf(np->path + old, sizeof(np->path) - old, "[%zu]", idx);
	if (n < 0 || (size_t)n >= sizeof(np->path) - old)
		np->path_len = sizeof(np->path) - 1; /* truncated: messages stay readable */
	else
		np->path_len = old + (size_t)n;
	return old;
}

static void sl__np_pop(struct sl__np *np, size_t old)
{
	np->path_len = old;
	np->path[old] = '\0';
}

static int sl__grow(struct sl_config_node *node, size_t *cap)
{
	struct sl_config_node *items;
	size_t ncap;

	if (node->n_items < *cap)
		return 0;
	ncap = *cap ? *cap * 2 : 4;
	items = realloc(node->items, ncap * sizeof(*items));
	if (!items)
		return -ENOMEM;
	node->items = items;
	*cap = ncap;
	return 0;
}

static int sl__np_oom(struct sl__np *np)
{
	if (np->errlen)
		snprintf(np->err, np->errlen, "%s: out of memory", np->name);
	return -ENOMEM;
}

/* Fills `node` from the event `ev` (which the caller deletes), reading the
 * events of a collection's contents. */
static int sl__build(struct sl__np *np, const yaml_event_t *ev, struct sl_config_node *node,
                     int depth)
{
	yaml_event_t sub;
	size_t cap = 0, mark;
	int rc = 0;

	node->line = (uint32_t)ev->start_mark.line + 1;
	switch (ev->type) {
	case YAML_ALIAS_EVENT:
		return sl__np_fail(np, node->line, "anchors and aliases are not supported");
	case YAML_SCALAR_EVENT:
		if (ev->data.scalar.anchor)
			return sl__np_fail(np, node->line, "anchors and aliases are not supported");
		if (memchr(ev->data.scalar.value, '\0', ev->data.scalar.length))
			return sl__np_fail(np, node->line, "scalar contains a NUL character");
		node->value = strndup((const char *)ev->data.scalar.value, ev->data.scalar.length);
		if (!node->value)
			return sl__np_oom(np);
		node->quoted = ev->data.scalar.style != YAML_PLAIN_SCALAR_STYLE;
		node->kind = !node->quoted && sl__is_null_word(node->value) ? SL_CONFIG_NODE_NULL
		                                                            : SL_CONFIG_NODE_SCALAR;
		return 0;
	case YAML_SEQUENCE_START_EVENT:
	case YAML_MAPPING_START_EVENT:
		break;
	default:
		return sl__np_fail(np, node->line, "unexpected YAML event");
	}

	if ((ev->type == YAML_SEQUENCE_START_EVENT && ev->data.sequence_start.anchor) ||
	    (ev->type == YAML_MAPPING_START_EVENT && ev->data.mapping_start.anchor))
		return sl__np_fail(np, node->line, "anchors and aliases are not supported");
	if (depth >= SL__NODE_MAX_DEPTH)
		return sl__np_fail(np, node->line, "nested deeper than %d levels",
		                   SL__NODE_MAX_DEPTH);

	if (ev->type == YAML_SEQUENCE_START_EVENT) {
		node->kind = SL_CONFIG_NODE_SEQ;
		for (;;) {
			if ((rc = sl__np_next(np, &sub)))
				return rc;
			if (sub.type == YAML_SEQUENCE_END_EVENT) {
				yaml_event_delete(&sub);
				return 0;
			}
			rc = sl__grow(node, &cap) ? sl__np_oom(np) : 0;
			if (!rc) {
				struct sl_config_node *it = &node->items[node->n_items++];

				memset(it, 0, sizeof(*it));
				mark = sl__np_push(np, NULL, node->n_items - 1);
				rc = sl__build(np, &sub, it, depth + 1);
				sl__np_pop(np, mark);
			}
			yaml_event_delete(&sub);
			if (rc)
				return rc;
		}
	}

	node->kind = SL_CONFIG_NODE_MAP;
	for (;;) {
		struct sl_config_node *it;
		yaml_event_t val;

		if ((rc = sl__np_next(np, &sub)))
			return rc;
		if (sub.type == YAML_MAPPING_END_EVENT) {
			yaml_event_delete(&sub);
			return 0;
		}
		if (sub.type != YAML_SCALAR_EVENT || sub.data.scalar.anchor) {
			rc = sub.type == YAML_ALIAS_EVENT || sub.type == YAML_SCALAR_EVENT
			         ? sl__np_fail(np, sub.start_mark.line + 1,
			                       "anchors and aliases are not supported")
			         : sl__np_fail(np, sub.start_mark.line + 1, "keys must be scalars");
			yaml_event_delete(&sub);
			return rc;
		}
		if (memchr(sub.data.scalar.value, '\0', sub.data.scalar.length)) {
			rc = sl__np_fail(np, sub.start_mark.line + 1,
			                 "key contains a NUL character");
			yaml_event_delete(&sub);
			return rc;
		}
		if (sl__grow(node, &cap)) {
			yaml_event_delete(&sub);
			return sl__np_oom(np);
		}
		it = &node->items[node->n_items++];
		memset(it, 0, sizeof(*it));
		it->key_line = (uint32_t)sub.start_mark.line + 1;
		it->key = strndup((const char *)sub.data.scalar.value, sub.data.scalar.length);
		yaml_event_delete(&sub);
		if (!it->key)
			return sl__np_oom(np);
		for (size_t i = 0; i + 1 < node->n_items; i++) {
			if (!strcmp(node->items[i].key, it->key))
				return sl__np_fail(np, it->key_line,
				                   "duplicate key '%.64s' (first at line %u)",
				                   it->key, node->items[i].key_line);
		}
		if ((rc = sl__np_next(np, &val)))
			return rc;
		mark = sl__np_push(np, it->key, 0);
		rc = sl__build(np, &val, it, depth + 1);
		sl__np_pop(np, mark);
		yaml_event_delete(&val);
		if (rc)
			return rc;
	}
}

/* Expects `type` as the next event. */
static int sl__np_expect(struct sl__np *np, yaml_event_type_t type, const char *what)
{
	yaml_event_t ev;
	int rc;

	if ((rc = sl__np_next(np, &ev)))
		return rc;
	if (ev.type != type)
		rc = sl__np_fail(np, ev.start_mark.line + 1, "%s", what);
	yaml_event_delete(&ev);
	return rc;
}

int sl_config_node_parse(const char *yaml, size_t len, const char *name,
                         struct sl_config_node **root, char *err, size_t errlen)
{
	struct sl__np np = {.yaml = yaml, .len = len, .name = name, .err = err, .errlen = errlen};
	struct sl_config_node *node = NULL;
	yaml_event_t ev;
	bool have_ev = false;
	int rc;

	*root = NULL;
	if (errlen)
		err[0] = '\0';
	if (!yaml_parser_initialize(&np.parser))
		return sl__np_oom(&np);
	yaml_parser_set_input_string(&np.parser, (const unsigned char *)yaml, len);

	if ((rc = sl__np_expect(&np, YAML_STREAM_START_EVENT, "expected the start of the input")))
		goto out;
	if ((rc = sl__np_next(&np, &ev)))
		goto out;
	have_ev = true;
	if (ev.type == YAML_STREAM_END_EVENT)
		goto out; /* nothing but comments: an empty document */
	if (ev.type != YAML_DOCUMENT_START_EVENT) {
		rc = sl__np_fail(&np, ev.start_mark.line + 1, "expected a YAML document");
		goto out;
	}
	yaml_event_delete(&ev);
	have_ev = false;

	if ((rc = sl__np_next(&np, &ev)))
		goto out;
	have_ev = true;
	node = calloc(1, sizeof(*node));
	if (!node) {
		rc = sl__np_oom(&np);
		goto out;
	}
	if ((rc = sl__build(&np, &ev, node, 0)))
		goto out;
	yaml_event_delete(&ev);
	have_ev = false;

	if ((rc = sl__np_expect(&np, YAML_DOCUMENT_END_EVENT, "expected the end of the document")))
		goto out;
	if ((rc = sl__np_next(&np, &ev)))
		goto out;
	have_ev = true;
	if (ev.type != YAML_STREAM_END_EVENT) {
		rc = sl__np_fail(&np, ev.start_mark.line + 1, "only one YAML document is allowed");
		goto out;
	}
out:
	if (have_ev)
		yaml_event_delete(&ev);
	yaml_parser_delete(&np.parser);
	if (rc) {
		sl_config_node_free(node);
		return rc;
	}
	*root = node;
	return 0;
}

static void sl__node_clear(struct sl_config_node *node)
{
	for (size_t i = 0; i < node->n_items; i++)
		sl__node_clear(&node->items[i]);
	free(node->items);
	free(node->key);
	free(node->value);
}

void sl_config_node_free(struct sl_config_node *node)
{
	if (!node)
		return;
	sl__node_clear(node);
	free(node);
}

/* Copies into a zeroed `dst`; on failure dst holds what was copied so far,
 * which sl__node_clear releases. */
static int sl__node_copy(struct sl_config_node *dst, const struct sl_config_node *src)
{
	dst->kind = src->kind;
	dst->line = src->line;
	dst->key_line = src->key_line;
	dst->quoted = src->quoted;
	if (src->key && !(dst->key = strdup(src->key)))
		return -ENOMEM;
	if (src->value && !(dst->value = strdup(src->value)))
		return -ENOMEM;
	if (!src->n_items)
		return 0;
	dst->items = calloc(src->n_items, sizeof(*dst->items));
	if (!dst->items)
		return -ENOMEM;
	for (size_t i = 0; i < src->n_items; i++) {
		dst->n_items = i + 1;
		if (sl__node_copy(&dst->items[i], &src->items[i]))
			return -ENOMEM;
	}
	return 0;
}

int sl_config_node_dup(const struct sl_config_node *node, struct sl_config_node **out)
{
	struct sl_config_node *n;

	*out = NULL;
	if (!node)
		return 0;
	n = calloc(1, sizeof(*n));
	if (!n)
		return -ENOMEM;
	if (sl__node_copy(n, node)) {
		sl_config_node_free(n);
		return -ENOMEM;
	}
	*out = n;
	return 0;
}

const struct sl_config_node *sl_config_node_get(const struct sl_config_node *map, const char *key)
{
	if (!map || map->kind != SL_CONFIG_NODE_MAP)
		return NULL;
	for (size_t i = 0; i < map->n_items; i++) {
		if (!strcmp(map->items[i].key, key))
			return &map->items[i];
	}
	return NULL;
}

size_t sl_config_node_len(const struct sl_config_node *node)
{
	if (!node || (node->kind != SL_CONFIG_NODE_MAP && node->kind != SL_CONFIG_NODE_SEQ))
		return 0;
	return node->n_items;
}

const struct sl_config_node *sl_config_node_at(const struct sl_config_node *node, size_t i)
{
	return i < sl_config_node_len(node) ? &node->items[i] : NULL;
}

const char *sl_config_node_str(const struct sl_config_node *map, const char *key, const char *def)
{
	const struct sl_config_node *n = sl_config_node_get(map, key);

	return n && n->kind == SL_CONFIG_NODE_SCALAR ? n->value : def;
}

static int sl__node_typed(const struct sl_config_node *map, const char *key, uint64_t def,
                          uint64_t *out, int (*parse)(const char *, uint64_t *))
{
	const struct sl_config_node *n = sl_config_node_get(map, key);

	*out = def;
	if (!n || n->kind == SL_CONFIG_NODE_NULL)
		return 0;
	if (n->kind != SL_CONFIG_NODE_SCALAR || parse(n->value, out)) {
		*out = def;
		return -SL_ECONFIG;
	}
	return 0;
}

int sl_config_node_u64(const struct sl_config_node *map, const char *key, uint64_t def,
                       uint64_t *out)
{
	return sl__node_typed(map, key, def, out, sl_config_parse_u64);
}

int sl_config_node_size(const struct sl_config_node *map, const char *key, uint64_t def,
                        uint64_t *out)
{
	return sl__node_typed(map, key, def, out, sl_config_parse_size);
}

int sl_config_node_duration(const struct sl_config_node *map, const char *key, uint64_t def,
                            uint64_t *out_ns)
{
	return sl__node_typed(map, key, def, out_ns, sl_config_parse_duration);
}

int sl_config_node_bool(const struct sl_config_node *map, const char *key, bool def, bool *out)
{
	const struct sl_config_node *n = sl_config_node_get(map, key);

	*out = def;
	if (!n || n->kind == SL_CONFIG_NODE_NULL)
		return 0;
	if (n->kind != SL_CONFIG_NODE_SCALAR)
		return -SL_ECONFIG;
	if (!strcmp(n->value, "true") || !strcmp(n->value, "yes") || !strcmp(n->value, "on"))
		*out = true;
	else if (!strcmp(n->value, "false") || !strcmp(n->value, "no") || !strcmp(n->value, "off"))
		*out = false;
	else
		return -SL_ECONFIG;
	return 0;
}
