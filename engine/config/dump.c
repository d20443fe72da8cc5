/*
 * Printing: a tree or the whole configuration as YAML, through libyaml's
 * emitter. The emitter chooses each scalar's style (plain, quoted, escaped)
 * and each key's form (simple, or `? key` past its simple-key limit) from
 * the text itself, so what it writes reads back through libyaml's parser.
 * Two things only sluice knows are said here: a scalar whose plain form
 * sl_config_node_parse() would read as null (empty, ~, null) is quoted, and
 * a scalar that was quoted in its source stays quoted. The configuration is
 * printed through the key tables (keys.h), in table order, so a key added
 * to a table is printed too.
 */
#include <string.h>
#include <yaml.h>

#include "base/base.h"
#include "config/keys.h"

static bool sl__null_word(const char *s)
{
	return !*s || !strcmp(s, "~") || !strcmp(s, "null") || !strcmp(s, "Null") ||
	       !strcmp(s, "NULL");
}

/* yaml_emitter_emit() takes the event whatever it returns. */
static int sl__emit(yaml_emitter_t *e, yaml_event_t *ev, int init_ok)
{
	if (!init_ok)
		return -ENOMEM;
	return yaml_emitter_emit(e, ev) ? 0 : -EIO;
}

static int sl__scalar(yaml_emitter_t *e, const char *s, bool quote)
{
	yaml_event_t ev;
	int plain = !quote && !sl__null_word(s);

	/* Strings come from a parsed file of at most 16 MiB: they fit an int. */
	return sl__emit(e, &ev,
	                yaml_scalar_event_initialize(&ev, NULL, NULL, (yaml_char_t *)s,
	                                             (int)strlen(s), plain, 1,
	                                             YAML_ANY_SCALAR_STYLE));
}

static int sl__null(yaml_emitter_t *e)
{
	yaml_event_t ev;

	return sl__emit(e, &ev,
	                yaml_scalar_event_initialize(&ev, NULL, NULL, (yaml_char_t *)"~", 1, 1, 0,
	                                             YAML_PLAIN_SCALAR_STYLE));
}

/* Empty collections print in flow style: `{}` and `[]`, on the key's line. */
static int sl__map_start(yaml_emitter_t *e, bool empty)
{
	yaml_event_t ev;

	return sl__emit(e, &ev,
	                yaml_mapping_start_event_initialize(&ev, NULL, NULL, 1,
	                                                    empty ? YAML_FLOW_MAPPING_STYLE
	                                                          : YAML_BLOCK_MAPPING_STYLE));
}

static int sl__map_end(yaml_emitter_t *e)
{
	yaml_event_t ev;

	return sl__emit(e, &ev, yaml_mapping_end_event_initialize(&ev));
}

static int sl__seq_start(yaml_emitter_t *e, bool empty)
{
	yaml_event_t ev;

	return sl__emit(e, &ev,
	                yaml_sequence_start_event_initialize(&ev, NULL, NULL, 1,
	                                                     empty ? YAML_FLOW_SEQUENCE_STYLE
	                                                           : YAML_BLOCK_SEQUENCE_STYLE));
}

static int sl__seq_end(yaml_emitter_t *e)
{
	yaml_event_t ev;

	return sl__emit(e, &ev, yaml_sequence_end_event_initialize(&ev));
}

/* Depth is bounded by the parser's 64 levels (plus the few of the
 * configuration around an args tree). */
static int sl__node(yaml_emitter_t *e, const struct sl_config_node *n)
{
	int rc;

	if (!n || n->kind == SL_CONFIG_NODE_NULL)
		return sl__null(e);
	if (n->kind == SL_CONFIG_NODE_SCALAR)
		return sl__scalar(e, n->value, n->quoted);
	rc = n->kind == SL_CONFIG_NODE_MAP ? sl__map_start(e, !n->n_items)
	                                   : sl__seq_start(e, !n->n_items);
	for (size_t i = 0; i < n->n_items && !rc; i++) {
		if (n->kind == SL_CONFIG_NODE_MAP && (rc = sl__scalar(e, n->items[i].key, false)))
			break;
		rc = sl__node(e, &n->items[i]);
	}
	if (rc)
		return rc;
	return n->kind == SL_CONFIG_NODE_MAP ? sl__map_end(e) : sl__seq_end(e);
}

static uint64_t sl__load_uint(const void *field, size_t size)
{
	uint32_t v32;
	uint64_t v;

	if (size == sizeof(v32)) {
		memcpy(&v32, field, sizeof(v32));
		return v32;
	}
	memcpy(&v, field, sizeof(v));
	return v;
}

static int sl__section(yaml_emitter_t *e, const struct sl__section *sec, const void *obj);

static int sl__value(yaml_emitter_t *e, const struct sl__key *key, const void *obj)
{
	const void *field = (const char *)obj + key->off;
	char buf[1024];
	uint64_t v;
	int rc;

	switch (key->type) {
	case SL__T_BOOL:
		return sl__scalar(e, *(const bool *)field ? "true" : "false", false);
	case SL__T_INT:
		snprintf(buf, sizeof(buf), "%llu",
		         (unsigned long long)sl__load_uint(field, key->size));
		return sl__scalar(e, buf, false);
	case SL__T_SIZE:
		sl__cfg_fmt_size(*(const uint64_t *)field, buf, sizeof(buf));
		return sl__scalar(e, buf, false);
	case SL__T_DURATION:
		sl__cfg_fmt_duration(*(const uint64_t *)field, buf, sizeof(buf));
		return sl__scalar(e, buf, false);
	case SL__T_NAME:
	case SL__T_PATH:
		return sl__scalar(e, *(char *const *)field, false);
	case SL__T_ENUM:
		v = sl__load_uint(field, key->size);
		return sl__scalar(e, v < key->n_names ? key->names[v] : "?", false);
	case SL__T_PATHS:
	case SL__T_STRS: {
		char *const *arr = *(char *const *const *)field;
		size_t n = *(const size_t *)((const char *)obj + key->off_n);

		rc = sl__seq_start(e, !n);
		for (size_t i = 0; i < n && !rc; i++)
			rc = sl__scalar(e, arr[i], false);
		return rc ? rc : sl__seq_end(e);
	}
	case SL__T_MAP:
		return sl__section(e, key->sub, field);
	case SL__T_SEQ: {
		const char *arr = *(const char *const *)field;
		size_t n = *(const size_t *)((const char *)obj + key->off_n);

		rc = sl__seq_start(e, !n);
		for (size_t i = 0; i < n && !rc; i++)
			rc = sl__section(e, key->sub, arr + i * key->sub->elem_size);
		return rc ? rc : sl__seq_end(e);
	}
	case SL__T_ARGS:
		return sl__node(e, *(struct sl_config_node *const *)field);
	case SL__T_CUSTOM:
		key->fmt(obj, buf, sizeof(buf));
		return sl__scalar(e, buf, false);
	}
	return -EINVAL;
}

static int sl__section(yaml_emitter_t *e, const struct sl__section *sec, const void *obj)
{
	int rc = sl__map_start(e, false);

	for (size_t k = 0; k < sec->n_keys && !rc; k++) {
		const struct sl__key *key = &sec->keys[k];

		/* An unset string (data_dir of a hand-made struct) has no value
		 * to print; the loader's default stands for it. */
		if ((key->type == SL__T_NAME || key->type == SL__T_PATH) &&
		    !*(char *const *)((const char *)obj + key->off))
			continue;
		if (!(rc = sl__scalar(e, key->name, false)))
			rc = sl__value(e, key, obj);
	}
	return rc ? rc : sl__map_end(e);
}

/* A YAML stream on `out` through libyaml's emitter: one document that
 * body(e, arg) writes, or none when body is NULL (an empty stream parses
 * back to no tree). */
static int sl__stream(FILE *out, int (*body)(yaml_emitter_t *e, const void *arg), const void *arg)
{
	yaml_emitter_t e;
	yaml_event_t ev;
	int rc;

	if (!yaml_emitter_initialize(&e))
		return -ENOMEM;
	yaml_emitter_set_output_file(&e, out);
	yaml_emitter_set_unicode(&e, 1);
	yaml_emitter_set_width(&e, -1); /* no folding: one value, one line */
	rc = sl__emit(&e, &ev, yaml_stream_start_event_initialize(&ev, YAML_UTF8_ENCODING));
	if (!rc && body) {
		rc = sl__emit(&e, &ev,
		              yaml_document_start_event_initialize(&ev, NULL, NULL, NULL, 1));
		if (!rc)
			rc = body(&e, arg);
		if (!rc)
			rc = sl__emit(&e, &ev, yaml_document_end_event_initialize(&ev, 1));
	}
	if (!rc)
		rc = sl__emit(&e, &ev, yaml_stream_end_event_initialize(&ev));
	if (!rc && !yaml_emitter_flush(&e))
		rc = -EIO;
	yaml_emitter_delete(&e);
	return rc ? rc : ferror(out) ? -EIO : 0;
}

static int sl__node_body(yaml_emitter_t *e, const void *arg)
{
	return sl__node(e, arg);
}

static int sl__cfg_body(yaml_emitter_t *e, const void *arg)
{
	return sl__section(e, &sl__root_section, arg);
}

int sl_config_node_dump(const struct sl_config_node *node, FILE *out)
{
	return sl__stream(out, node ? sl__node_body : NULL, node);
}

int sl_config_dump(const struct sl_config *cfg, FILE *out)
{
	return sl__stream(out, sl__cfg_body, cfg);
}

struct sl__topics {
	const struct sl_config_topic *v;
	size_t n;
};

static int sl__topics_body(yaml_emitter_t *e, const void *arg)
{
	const struct sl__topics *t = arg;
	int rc = sl__map_start(e, false);
	if (!rc)
		rc = sl__scalar(e, "topics", false);
	if (!rc)
		rc = sl__seq_start(e, !t->n);
	for (size_t i = 0; i < t->n && !rc; i++)
		rc = sl__section(e, &sl__topic_section, &t->v[i]);
	if (!rc)
		rc = sl__seq_end(e);
	return rc ? rc : sl__map_end(e);
}

int sl_config_topics_dump(const struct sl_config_topic *v, size_t n, FILE *out)
{
	struct sl__topics t = {v, n};
	return sl__stream(out, sl__topics_body, &t);
}

/* Flattens one section into "prefix.key" = value pairs. */
static void sl__flat(const struct sl__section *sec, const void *obj, const char *prefix,
                     void (*fn)(void *arg, const char *key, const char *value), void *arg)
{
	for (size_t k = 0; k < sec->n_keys; k++) {
		const struct sl__key *key = &sec->keys[k];
		const void *field = (const char *)obj + key->off;
		char name[128], buf[1024];
		snprintf(name, sizeof(name), "%s%s%s", prefix, *prefix ? "." : "", key->name);
		switch (key->type) {
		case SL__T_BOOL:
			fn(arg, name, *(const bool *)field ? "true" : "false");
			break;
		case SL__T_INT:
			snprintf(buf, sizeof(buf), "%llu",
			         (unsigned long long)sl__load_uint(field, key->size));
			fn(arg, name, buf);
			break;
		case SL__T_SIZE:
			sl__cfg_fmt_size(*(const uint64_t *)field, buf, sizeof(buf));
			fn(arg, name, buf);
			break;
		case SL__T_DURATION:
			sl__cfg_fmt_duration(*(const uint64_t *)field, buf, sizeof(buf));
			fn(arg, name, buf);
			break;
		case SL__T_NAME:
		case SL__T_PATH:
			if (*(char *const *)field)
				fn(arg, name, *(char *const *)field);
			break;
		case SL__T_ENUM: {
			uint64_t v = sl__load_uint(field, key->size);
			fn(arg, name, v < key->n_names ? key->names[v] : "?");
			break;
		}
		case SL__T_MAP:
			sl__flat(key->sub, field, name, fn, arg);
			break;
		case SL__T_CUSTOM:
			key->fmt(obj, buf, sizeof(buf));
			fn(arg, name, buf);
			break;
		default: /* lists and free-form maps: not settings */
			break;
		}
	}
}

void sl_config_topic_each(const struct sl_config_topic *t,
                          void (*fn)(void *arg, const char *key, const char *value), void *arg)
{
	sl__flat(&sl__topic_section, t, "", fn, arg);
}
