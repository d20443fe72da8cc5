/*
 * The host function table (struct sl_host) and the buffers behind it.
 */
#include "plugin/plugin.h"

#include <errno.h>
#include <json-c/json.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include "base/base.h"
#include "proto/proto.h"
#include "state/state.h"

/* ---- events ----------------------------------------------------------------- */

int sl_plugin_event_fill(struct sl_plugin_event *pe, const uint8_t *bytes, uint32_t len,
                         uint32_t partition, uint64_t offset, int64_t append_time_ms)
{
	struct sl_event_view v;
	int ret = sl_event_scan(bytes, len, &v);

	if (ret < 0)
		return ret;
	/* Every length below fits: the event itself is at most len bytes. */
	*pe = (struct sl_plugin_event){
	    .bytes = bytes,
	    .id = v.id,
	    .type = v.type,
	    .aggregate = v.aggregate,
	    .data = v.data,
	    .len = len,
	    .type_len = (uint32_t)v.type_len,
	    .aggregate_len = (uint32_t)v.aggregate_len,
	    .data_len = (uint32_t)v.data_len,
	    .timestamp_ms = v.timestamp_ms,
	    .append_time_ms = append_time_ms,
	    .offset = offset,
	    .partition = partition,
	    .schema_version = v.schema_version,
	};
	return 0;
}

/* ---- log -------------------------------------------------------------------- */

static const char *const sl__level[] = {"error", "warning", "info", "debug"};

__attribute__((format(printf, 3, 4))) static void sl__host_log(struct sl_plugin_ctx *ctx, int level,
                                                               const char *fmt, ...)
{
	char line[1024];
	int n;
	va_list ap;

	if (level < 0)
		level = 0;
	if (level > SL_PLUGIN_LOG_DEBUG)
		level = SL_PLUGIN_LOG_DEBUG;
	n = snprintf(line, sizeof(line),
	             "plugin %s (%s, partition %u): %s: ", ctx->plugin->info.name, ctx->name,
	             ctx->partition, sl__level[level]);
	if (n < 0)
		return;
	if ((size_t)n < sizeof(line)) {
		va_start(ap, fmt);
		vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
		va_end(ap);
	}
	/* One line: a plugin's newline must not forge a second log line. */
	for (char *p = line; *p; p++)
		if (*p == '\n' || *p == '\r')
			*p = ' ';
	if (ctx->log_fn)
		ctx->log_fn(ctx->log_arg, level, line);
	else
		fprintf(stderr, "sluiced: %s\n", line);
}

/* ---- args: struct sl_plugin_args is a struct sl_config_node -------------------- */

static const struct sl_config_node *sl__node(const struct sl_plugin_args *a)
{
	return (const struct sl_config_node *)a;
}

static const struct sl_plugin_args *sl__arg_get(const struct sl_plugin_args *node, const char *key)
{
	return (const struct sl_plugin_args *)sl_config_node_get(sl__node(node), key);
}

static size_t sl__arg_len(const struct sl_plugin_args *node)
{
	return sl_config_node_len(sl__node(node));
}

static const struct sl_plugin_args *sl__arg_at(const struct sl_plugin_args *node, size_t i)
{
	return (const struct sl_plugin_args *)sl_config_node_at(sl__node(node), i);
}

static const char *sl__arg_key(const struct sl_plugin_args *node)
{
	const struct sl_config_node *n = sl__node(node);
	return n ? n->key : NULL;
}

/* The scalar a typed read looks at: 0 with *s, -ENOENT, -EINVAL. */
static int sl__scalar(const struct sl_plugin_args *node, const char *key, const char **s)
{
	const struct sl_config_node *n = sl__node(node);

	if (key)
		n = sl_config_node_get(n, key);
	if (!n || n->kind == SL_CONFIG_NODE_NULL)
		return -ENOENT;
	if (n->kind != SL_CONFIG_NODE_SCALAR)
		return -EINVAL;
	*s = n->value;
	return 0;
}

static int sl__arg_str(const struct sl_plugin_args *node, const char *key, const char **out)
{
	return sl__scalar(node, key, out);
}

static int sl__arg_i64(const struct sl_plugin_args *node, const char *key, int64_t *out)
{
	const char *s;
	char *end;
	long long v;
	int ret = sl__scalar(node, key, &s);

	if (ret < 0)
		return ret;
	errno = 0;
	v = strtoll(s, &end, 10);
	if (!s[0] || *end || errno || s[0] == ' ' || s[0] == '+')
		return -EINVAL;
	*out = v;
	return 0;
}

static int sl__arg_f64(const struct sl_plugin_args *node, const char *key, double *out)
{
	const char *s;
	char *end;
	double v;
	int ret = sl__scalar(node, key, &s);

	if (ret < 0)
		return ret;
	errno = 0;
	v = strtod(s, &end);
	if (!s[0] || *end || errno || !isfinite(v) || s[0] == ' ')
		return -EINVAL;
	*out = v;
	return 0;
}

static int sl__arg_bool(const struct sl_plugin_args *node, const char *key, int *out)
{
	const char *s;
	int ret = sl__scalar(node, key, &s);

	if (ret < 0)
		return ret;
	/* The words the config itself takes for booleans. */
	if (!strcmp(s, "true") || !strcmp(s, "yes") || !strcmp(s, "on"))
		*out = 1;
	else if (!strcmp(s, "false") || !strcmp(s, "no") || !strcmp(s, "off"))
		*out = 0;
	else
		return -EINVAL;
	return 0;
}

static int sl__arg_check_keys(const struct sl_plugin_args *node, const char *const *known,
                              const char **bad)
{
	const struct sl_config_node *n = sl__node(node);

	if (!n || n->kind == SL_CONFIG_NODE_NULL)
		return 0;
	if (n->kind != SL_CONFIG_NODE_MAP) {
		*bad = "";
		return -EINVAL;
	}
	for (size_t i = 0; i < n->n_items; i++) {
		const char *k = n->items[i].key;
		bool found = false;
		for (const char *const *q = known; *q && !found; q++)
			found = !strcmp(*q, k);
		if (!found) {
			*bad = k;
			return -EINVAL;
		}
	}
	return 0;
}

/* ---- output buffers -------------------------------------------------------------- */

void sl_plugin_out_release(struct sl_plugin_out *o)
{
	sl_json_buf_release(&o->buf);
	free(o->sl__hdr);
	memset(o, 0, sizeof(*o));
}

static int sl__out_put(struct sl_plugin_out *out, const void *bytes, size_t len)
{
	return sl_json_buf_put_raw(&out->buf, bytes, len);
}

static int sl__out_put_json_str(struct sl_plugin_out *out, const char *s, size_t len)
{
	return sl_json_buf_put_str(&out->buf, s, len);
}

/* The most extra members one event JSON takes: a plugin adds a few. */
#define SL__MAX_EXTRA 16

static int sl__out_put_event_json(struct sl_plugin_out *out, const uint8_t *bytes, size_t len,
                                  uint32_t partition, uint64_t offset,
                                  const char *const *extra_keys, const char *const *extra_json,
                                  const size_t *extra_json_lens, size_t n_extra)
{
	struct sl_json_field extra[SL__MAX_EXTRA];
	struct sl_event_view v;
	struct sl_event_header h;
	size_t cursor = 0, nh = 0, before = out->buf.len;
	int ret;

	if (n_extra > SL__MAX_EXTRA)
		return -EINVAL;
	if (sl_event_scan(bytes, len, &v) < 0)
		return -EINVAL;
	while ((ret = sl_event_header_next(&v, &cursor, &h)) > 0) {
		if (nh == out->sl__hdr_cap) {
			size_t cap = out->sl__hdr_cap ? out->sl__hdr_cap * 2 : 8;
			struct sl_json_header *p = realloc(out->sl__hdr, cap * sizeof(*p));
			if (!p)
				return -ENOMEM;
			out->sl__hdr = p;
			out->sl__hdr_cap = cap;
		}
		out->sl__hdr[nh++] = (struct sl_json_header){
		    .key = h.key,
		    .key_len = h.key_len,
		    .value = (const char *)h.value,
		    .value_len = h.value_len,
		};
	}
	if (ret < 0)
		return -EINVAL;
	for (size_t i = 0; i < n_extra; i++)
		extra[i] = (struct sl_json_field){
		    .key = extra_keys[i],
		    .json = extra_json[i],
		    .json_len = extra_json_lens[i],
		};
	ret = sl_json_event_format(&v, out->sl__hdr, nh, partition, offset, extra, n_extra,
	                           &out->buf);
	if (ret < 0)
		return ret;
	/* The formatter ends each object with a newline, for JSON lines; an
	 * answer is one value that callers may embed. */
	if (out->buf.len > before && out->buf.data[out->buf.len - 1] == '\n')
		out->buf.data[--out->buf.len] = '\0';
	return 0;
}

/* ---- emitter -------------------------------------------------------------------- */

static int sl__emit_bytes(struct sl_plugin_emitter *em, int topic, size_t len, uint8_t **dst)
{
	size_t need = em->sl__len + 8 + ((len + 7) & ~(size_t)7);

	if (len > UINT32_MAX)
		return -EINVAL;
	if (need > em->sl__cap) {
		void *p = sl_grow(em->sl__buf, &em->sl__cap, need, 4096);
		if (!p)
			return -ENOMEM;
		em->sl__buf = p;
	}
	uint8_t *r = em->sl__buf + em->sl__len;
	uint32_t t = (uint32_t)topic, l = (uint32_t)len;
	memcpy(r, &t, 4);
	memcpy(r + 4, &l, 4);
	*dst = r + 8;
	em->sl__len = need;
	em->n++;
	return 0;
}

static int sl__emit_topic(struct sl_plugin_emitter *em, const char *topic, size_t topic_len)
{
	if (!topic)
		return em->default_topic >= 0 ? em->default_topic : -EINVAL;
	if (!em->resolve)
		return -ENOENT;
	return em->resolve(em->resolve_arg, topic, topic_len);
}

static int sl__emit_copy(struct sl_plugin_emitter *em, const char *topic, size_t topic_len,
                         const struct sl_plugin_event *ev)
{
	uint8_t *dst;
	int t = sl__emit_topic(em, topic, topic_len);

	if (t < 0)
		return t;
	int ret = sl__emit_bytes(em, t, ev->len, &dst);
	if (ret < 0)
		return ret;
	memcpy(dst, ev->bytes, ev->len);
	return 0;
}

static int sl__emit(struct sl_plugin_emitter *em, const char *topic, size_t topic_len,
                    const struct sl_plugin_event_out *ev)
{
	struct sl_plugin_event_out e = {0};
	uint8_t id[SL_EVENT_ID_LEN];
	uint8_t *dst;
	int t = sl__emit_topic(em, topic, topic_len);

	if (t < 0)
		return t;
	/* Fields an older minor's struct lacks read as zero. */
	memcpy(&e, ev, ev->struct_size < sizeof(e) ? ev->struct_size : sizeof(e));
	if (!e.type_len || !e.aggregate_len)
		return -EINVAL;
	if (!e.id) {
		/* Deterministic: (seed, source id or position, ordinal for this
		 * source). A crash that runs the same input again emits the
		 * same ids, which the topic's dedup then drops. */
		if (e.source != em->sl__src) {
			em->sl__src = e.source;
			em->sl__src_count = 0;
		}
		uint64_t key[5] = {em->id_seed, 0, 0, 0, em->sl__src_count++};
		if (e.source && e.source->id) {
			memcpy(&key[1], e.source->id, SL_EVENT_ID_LEN);
		} else if (e.source) {
			key[1] = e.source->partition;
			key[2] = e.source->offset;
		} else {
			/* No source: unique (clock, emitter, count), but not what
			 * a replay would give. */
			key[1] = sl_wall_ns();
			key[2] = (uint64_t)(uintptr_t)em;
		}
		key[3] = (uint64_t)t;
		XXH128_hash_t h = XXH3_128bits(key, sizeof(key));
		memcpy(id, &h.low64, 8);
		memcpy(id + 8, &h.high64, 8);
		/* RFC 9562 version 8 (custom), so it reads as a UUID. */
		id[6] = (uint8_t)((id[6] & 0x0f) | 0x80);
		id[8] = (uint8_t)((id[8] & 0x3f) | 0x80);
		e.id = id;
	}
	struct sl_event_view v = {
	    .id = e.id,
	    .type = e.type,
	    .type_len = e.type_len,
	    .aggregate = e.aggregate,
	    .aggregate_len = e.aggregate_len,
	    .timestamp_ms = e.timestamp_ms ? e.timestamp_ms : (int64_t)(sl_wall_ns() / 1000000),
	    .data = e.data,
	    .data_len = e.data_len,
	    .schema_version = e.schema_version,
	};
	size_t len = sl_event_encoded_size(&v, NULL, 0);
	int ret = sl__emit_bytes(em, t, len, &dst);
	if (ret < 0)
		return ret;
	ret = sl_event_encode(dst, len, &v, NULL, 0);
	if (ret < 0) {
		/* Take the record back: nothing half-written stays. */
		em->sl__len -= 8 + ((len + 7) & ~(size_t)7);
		em->n--;
		return ret == -EMSGSIZE ? -EINVAL : ret;
	}
	return 0;
}

int sl_plugin_emitter_next(const struct sl_plugin_emitter *em, size_t *cursor, int *topic,
                           const uint8_t **bytes, uint32_t *len)
{
	uint32_t t, l;

	if (*cursor >= em->sl__len)
		return 0;
	const uint8_t *r = em->sl__buf + *cursor;
	memcpy(&t, r, 4);
	memcpy(&l, r + 4, 4);
	*topic = (int)t;
	*bytes = r + 8;
	*len = l;
	*cursor += 8 + (((size_t)l + 7) & ~(size_t)7);
	return 1;
}

void sl_plugin_emitter_reset(struct sl_plugin_emitter *em)
{
	em->sl__len = 0;
	em->n = 0;
	em->sl__src = NULL;
	em->sl__src_count = 0;
}

void sl_plugin_emitter_release(struct sl_plugin_emitter *em)
{
	free(em->sl__buf);
	em->sl__buf = NULL;
	em->sl__cap = 0;
	sl_plugin_emitter_reset(em);
}

/* ---- hashing, JSON numbers ---------------------------------------------------------- */

static uint64_t sl__hash64(const void *bytes, size_t len, uint64_t seed)
{
	return XXH3_64bits_withSeed(bytes, len, seed);
}

/* The member `key` of the JSON object in json[0..len): 0 with *val (a new
 * reference the caller puts), -ENOENT, -EINVAL. */
static int sl__json_member(const uint8_t *json, size_t len, const char *key,
                           struct json_object **root, struct json_object **val)
{
	struct json_tokener *tok;
	const char *why;
	size_t at;
	int ret = -EINVAL;

	*root = NULL;
	if (len >= INT_MAX || sl_json_lex_check((const char *)json, len, &at, &why))
		return -EINVAL;
	tok = json_tokener_new_ex(SL_JSON_MAX_DEPTH);
	if (!tok)
		return -ENOMEM;
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
	*root = json_tokener_parse_ex(tok, (const char *)json, (int)len);
	if (!*root || json_tokener_get_error(tok) != json_tokener_success ||
	    json_tokener_get_parse_end(tok) != len || !json_object_is_type(*root, json_type_object))
		goto out;
	ret = json_object_object_get_ex(*root, key, val) ? 0 : -ENOENT;
out:
	json_tokener_free(tok);
	if (ret < 0) {
		json_object_put(*root);
		*root = NULL;
	}
	return ret;
}

static int sl__json_get_i64(const uint8_t *json, size_t len, const char *key, int64_t *out)
{
	struct json_object *root, *v;
	int ret = sl__json_member(json, len, key, &root, &v);

	if (ret < 0)
		return ret;
	/* Range already checked: sl_json_lex_check refuses integers beyond 64
	 * bits, which json-c would clamp. */
	if (json_object_is_type(v, json_type_int))
		*out = json_object_get_int64(v);
	else
		ret = -EINVAL;
	json_object_put(root);
	return ret;
}

static int sl__json_get_f64(const uint8_t *json, size_t len, const char *key, double *out)
{
	struct json_object *root, *v;
	int ret = sl__json_member(json, len, key, &root, &v);

	if (ret < 0)
		return ret;
	if (json_object_is_type(v, json_type_int) || json_object_is_type(v, json_type_double))
		*out = json_object_get_double(v);
	else
		ret = -EINVAL;
	json_object_put(root);
	return ret;
}

static int sl__json_get_str(const uint8_t *json, size_t len, const char *key, char *buf, size_t cap,
                            size_t *out_len)
{
	struct json_object *root, *v;
	int ret = sl__json_member(json, len, key, &root, &v);

	if (ret < 0)
		return ret;
	if (json_object_is_type(v, json_type_string)) {
		size_t n = (size_t)json_object_get_string_len(v);
		*out_len = n;
		if (n <= cap)
			memcpy(buf, json_object_get_string(v), n);
		else
			ret = -ENOSPC;
	} else {
		ret = -EINVAL;
	}
	json_object_put(root);
	return ret;
}

/* ---- the table -------------------------------------------------------------------- */

static void sl__host_retire(struct sl_plugin_ctx *ctx, void *ptr, void (*free_fn)(void *ptr))
{
	if (!free_fn)
		return;
	if (ctx && ctx->er)
		sl_epoch_retire(ctx->er, ptr, free_fn);
	else
		free_fn(ptr);
}

static struct sl_state *sl__host_state(struct sl_plugin_ctx *ctx)
{
	return ctx ? ctx->state : NULL;
}

static const struct sl_host sl__host = {
    .struct_size = sizeof(struct sl_host),
    .abi_major = SL_PLUGIN_ABI_MAJOR,
    .abi_minor = SL_PLUGIN_ABI_MINOR,
    .log = sl__host_log,
    .arg_get = sl__arg_get,
    .arg_len = sl__arg_len,
    .arg_at = sl__arg_at,
    .arg_key = sl__arg_key,
    .arg_str = sl__arg_str,
    .arg_i64 = sl__arg_i64,
    .arg_f64 = sl__arg_f64,
    .arg_bool = sl__arg_bool,
    .arg_check_keys = sl__arg_check_keys,
    .out_put = sl__out_put,
    .out_put_json_str = sl__out_put_json_str,
    .out_put_event_json = sl__out_put_event_json,
    .emit_copy = sl__emit_copy,
    .emit = sl__emit,
    .hash64 = sl__hash64,
    .json_get_i64 = sl__json_get_i64,
    .json_get_f64 = sl__json_get_f64,
    .json_get_str = sl__json_get_str,
    .retire = sl__host_retire,
    .state = sl__host_state,
    .state_get = sl_state_get,
    .state_put = sl_state_put,
    .state_modify = sl_state_modify,
    .state_del = sl_state_del,
    .state_iter = sl_state_iter,
};

const struct sl_host *sl_plugin_host(void)
{
	return &sl__host;
}
