#include "json/json.h"

#include <errno.h>
#include <json-c/json.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Trailing text is allowed here only to be reported by us, by name. */
#define SL__TOK_FLAGS                                                                              \
	(JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8 | JSON_TOKENER_ALLOW_TRAILING_CHARS)
#define SL__SER_FLAGS (JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE)

static bool sl__is_ws(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static struct json_tokener *sl__tokener(struct json_tokener **slot, int depth)
{
	if (!*slot) {
		*slot = json_tokener_new_ex(depth);
		if (*slot)
			json_tokener_set_flags(*slot, SL__TOK_FLAGS);
	}
	return *slot;
}

/*
 * Strict JSON text -> value: sl_json_lex_check for what json-c's strict mode
 * misses, json-c for the structure, the whole input consumed. *root gets the
 * value (NULL for JSON null). 0, -EINVAL (with *at, *why), -ENOMEM.
 */
static int sl__parse_strict(struct json_tokener *tok, const char *s, size_t n,
                            struct json_object **root, size_t *at, const char **why)
{
	enum json_tokener_error jerr;
	struct json_object *o;
	size_t end;

	*root = NULL;
	if (n >= INT_MAX) {
		*at = 0;
		*why = "longer than 2 GiB";
		return -EINVAL;
	}
	if (sl_json_lex_check(s, n, at, why))
		return -EINVAL;
	json_tokener_reset(tok);
	o = json_tokener_parse_ex(tok, s, (int)n);
	jerr = json_tokener_get_error(tok);
	end = json_tokener_get_parse_end(tok);
	if (!o && jerr == json_tokener_continue) {
		/* A bare number has no end of its own: a NUL tells json-c the
		 * input is over. */
		o = json_tokener_parse_ex(tok, "", 1);
		jerr = json_tokener_get_error(tok);
		end = n;
	}
	if (jerr != json_tokener_success) {
		json_object_put(o);
		*at = end < n ? end : n;
		*why = jerr == json_tokener_continue ? "unexpected end of input"
		                                     : json_tokener_error_desc(jerr);
		return -EINVAL;
	}
	for (; end < n; end++) {
		if (!sl__is_ws(s[end])) {
			json_object_put(o);
			*at = end;
			*why = "text after the JSON value";
			return -EINVAL;
		}
	}
	*root = o;
	return 0;
}

/* ---- parse ------------------------------------------------------------------ */

static int sl__err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int sl__err(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (err && errlen) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return -EINVAL;
}

/* A user string shortened for an error message, with anything outside
 * printable ASCII as \xNN so messages stay one clean line. */
static const char *sl__snip(char *buf, size_t cap, const char *s, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	size_t o = 0, i = 0;

	for (; i < n && o + 8 < cap; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c >= 0x20 && c < 0x7f && c != '\\') {
			buf[o++] = (char)c;
		} else {
			buf[o++] = '\\';
			buf[o++] = 'x';
			buf[o++] = hex[c >> 4];
			buf[o++] = hex[c & 15];
		}
	}
	if (i < n) {
		memcpy(buf + o, "...", 3);
		o += 3;
	}
	buf[o] = '\0';
	return buf;
}

static const char *sl__type_name(struct json_object *v)
{
	switch (json_object_get_type(v)) {
	case json_type_null:
		return "null";
	case json_type_boolean:
		return "a boolean";
	case json_type_double:
		return "a fractional number";
	case json_type_int:
		return "an integer";
	case json_type_object:
		return "an object";
	case json_type_array:
		return "an array";
	case json_type_string:
		return "a string";
	}
	return "unknown";
}

/* Integer value in [0, max]. json-c keeps values above INT64_MAX as uint64. */
static bool sl__as_u64(struct json_object *v, uint64_t max, uint64_t *out)
{
	if (!json_object_is_type(v, json_type_int))
		return false;
	int64_t i = json_object_get_int64(v);
	if (i < 0)
		return false;
	uint64_t u = i == INT64_MAX ? json_object_get_uint64(v) : (uint64_t)i;
	if (u > max)
		return false;
	*out = u;
	return true;
}

static bool sl__as_i64(struct json_object *v, int64_t *out)
{
	if (!json_object_is_type(v, json_type_int))
		return false;
	int64_t i = json_object_get_int64(v);
	if (i == INT64_MAX && json_object_get_uint64(v) > (uint64_t)INT64_MAX)
		return false;
	*out = i;
	return true;
}

static int sl__grow(void **p, size_t *cap, size_t need, size_t elem)
{
	if (need <= *cap)
		return 0;
	size_t c = *cap ? *cap : 8;
	while (c < need) {
		if (c > SIZE_MAX / 2 / elem)
			return -ENOMEM;
		c *= 2;
	}
	void *n = realloc(*p, c * elem);
	if (!n)
		return -ENOMEM;
	*p = n;
	*cap = c;
	return 0;
}

/* Non-empty string field. */
static int sl__want_str(struct json_object *v, const char *key, const char **s, size_t *n,
                        char *err, size_t errlen)
{
	if (!v)
		return sl__err(err, errlen, "'%s' is required", key);
	if (!json_object_is_type(v, json_type_string))
		return sl__err(err, errlen, "'%s' must be a string, not %s", key, sl__type_name(v));
	*s = json_object_get_string(v);
	*n = (size_t)json_object_get_string_len(v);
	if (!*n)
		return sl__err(err, errlen, "'%s' must not be empty", key);
	return 0;
}

static int sl__parse_headers(struct json_object *v, struct sl_json_event *out, char *err,
                             size_t errlen)
{
	char snip[80];
	size_t n = 0;
	int rc;

	if (!json_object_is_type(v, json_type_object))
		return sl__err(err, errlen, "'headers' must be an object of strings, not %s",
		               sl__type_name(v));
	rc = sl__grow((void **)&out->headers, &out->sl__headers_cap,
	              (size_t)json_object_object_length(v), sizeof(*out->headers));
	if (rc)
		return rc;
	json_object_object_foreach(v, key, val)
	{
		if (!json_object_is_type(val, json_type_string))
			return sl__err(err, errlen, "'headers.%s' must be a string, not %s",
			               sl__snip(snip, sizeof(snip), key, strlen(key)),
			               sl__type_name(val));
		out->headers[n++] = (struct sl_json_header){
		    .key = key,
		    .key_len = strlen(key),
		    .value = json_object_get_string(val),
		    .value_len = (size_t)json_object_get_string_len(val),
		};
	}
	out->n_headers = n;
	out->ev.n_headers = (uint32_t)n;
	return 0;
}

static int sl__parse_fields(struct json_object *root, int64_t now_ms, struct sl_uuid_rng *rng,
                            struct sl_json_event *out, char *err, size_t errlen)
{
	struct json_object *type = NULL, *agg = NULL, *id = NULL, *ts = NULL, *data = NULL,
	                   *b64 = NULL, *hdrs = NULL, *schema = NULL, *part = NULL, *off = NULL;
	struct sl_event_view *ev = &out->ev;
	char snip[80];
	uint64_t u;
	int rc;

	/* json-c holds JSON null as a NULL value: null reads as absent. */
	json_object_object_foreach(root, key, val)
	{
		if (!strcmp(key, "type"))
			type = val;
		else if (!strcmp(key, "aggregate"))
			agg = val;
		else if (!strcmp(key, "id"))
			id = val;
		else if (!strcmp(key, "timestamp"))
			ts = val;
		else if (!strcmp(key, "data"))
			data = val;
		else if (!strcmp(key, "data_b64"))
			b64 = val;
		else if (!strcmp(key, "headers"))
			hdrs = val;
		else if (!strcmp(key, "schema_version"))
			schema = val;
		else if (!strcmp(key, "partition"))
			part = val;
		else if (!strcmp(key, "offset"))
			off = val;
		else
			return sl__err(err, errlen, "unknown key '%s'",
			               sl__snip(snip, sizeof(snip), key, strlen(key)));
	}

	rc = sl__want_str(type, "type", &ev->type, &ev->type_len, err, errlen);
	if (rc)
		return rc;
	rc = sl__want_str(agg, "aggregate", &ev->aggregate, &ev->aggregate_len, err, errlen);
	if (rc)
		return rc;

	if (id) {
		if (!json_object_is_type(id, json_type_string))
			return sl__err(err, errlen, "'id' must be a string (a UUID), not %s",
			               sl__type_name(id));
		const char *s = json_object_get_string(id);
		size_t n = (size_t)json_object_get_string_len(id);
		if (sl_uuid_parse(s, n, out->sl__id))
			return sl__err(err, errlen,
			               "'id' is not a UUID: \"%s\" (want 8-4-4-4-12 hex digits)",
			               sl__snip(snip, sizeof(snip), s, n));
		ev->id = out->sl__id;
	} else if (rng) {
		sl_uuid_gen_v4(rng, out->sl__id);
		ev->id = out->sl__id;
	}

	ev->timestamp_ms = now_ms;
	if (ts && json_object_is_type(ts, json_type_string)) {
		const char *s = json_object_get_string(ts);
		size_t n = (size_t)json_object_get_string_len(ts);
		if (sl_json_time_parse(s, n, &ev->timestamp_ms))
			return sl__err(err, errlen,
			               "'timestamp' is not an RFC 3339 time: \"%s\" (want e.g. "
			               "\"2026-11-25T10:00:00.123Z\")",
			               sl__snip(snip, sizeof(snip), s, n));
	} else if (ts && !sl__as_i64(ts, &ev->timestamp_ms)) {
		if (json_object_is_type(ts, json_type_int))
			return sl__err(err, errlen, "'timestamp' is beyond the 64-bit range");
		return sl__err(err, errlen,
		               "'timestamp' must be an integer (ms since the epoch, 64-bit) or an "
		               "RFC 3339 string, not %s",
		               sl__type_name(ts));
	}

	if (data && b64)
		return sl__err(err, errlen, "'data' and 'data_b64' are mutually exclusive");
	if (data) {
		size_t n = 0;
		const char *txt = json_object_to_json_string_length(data, SL__SER_FLAGS, &n);
		if (!txt)
			return -ENOMEM;
		ev->data = (const uint8_t *)txt;
		ev->data_len = n;
	} else if (b64) {
		if (!json_object_is_type(b64, json_type_string))
			return sl__err(err, errlen, "'data_b64' must be a string, not %s",
			               sl__type_name(b64));
		const char *s = json_object_get_string(b64);
		size_t n = (size_t)json_object_get_string_len(b64);
		/* +1: an empty payload still gets a non-NULL buffer. */
		rc = sl__grow((void **)&out->sl__bytes, &out->sl__bytes_cap,
		              SL_B64_DECODED_MAX(n) + 1, 1);
		if (rc)
			return rc;
		if (sl_b64_decode(s, n, out->sl__bytes, &ev->data_len))
			return sl__err(err, errlen,
			               "'data_b64' is not valid base64 (standard alphabet, "
			               "with padding): \"%s\"",
			               sl__snip(snip, sizeof(snip), s, n));
		ev->data = out->sl__bytes;
	}

	if (hdrs) {
		rc = sl__parse_headers(hdrs, out, err, errlen);
		if (rc)
			return rc;
	}
	if (schema) {
		if (!sl__as_u64(schema, UINT32_MAX, &u))
			return sl__err(err, errlen,
			               "'schema_version' must be an integer in [0, 4294967295]");
		ev->schema_version = (uint32_t)u;
	}
	if (part) {
		if (!sl__as_u64(part, UINT32_MAX, &u))
			return sl__err(err, errlen,
			               "'partition' must be an integer in [0, 4294967295]");
		out->partition = (uint32_t)u;
		out->has_position = true;
	}
	if (off) {
		if (!sl__as_u64(off, UINT64_MAX, &out->offset))
			return sl__err(err, errlen, "'offset' must be a non-negative integer");
		out->has_position = true;
	}
	return 0;
}

int sl_json_event_parse(const char *line, size_t len, int64_t now_ms, struct sl_uuid_rng *rng,
                        struct sl_json_event *out, char *err, size_t errlen)
{
	struct json_tokener *tok;
	struct json_object *root = NULL;
	const char *why = NULL;
	size_t at = 0, i;
	int rc;

	json_object_put(out->sl__root);
	out->sl__root = NULL;
	memset(&out->ev, 0, sizeof(out->ev));
	out->n_headers = 0;
	out->has_position = false;
	out->partition = 0;
	out->offset = 0;
	if (err && errlen)
		err[0] = '\0';

	for (i = 0; i < len && sl__is_ws(line[i]); i++)
		;
	if (i == len) {
		sl__err(err, errlen, "blank line");
		return -ENODATA;
	}
	tok = sl__tokener(&out->sl__tok, SL_JSON_MAX_DEPTH);
	if (!tok)
		return -ENOMEM;
	rc = sl__parse_strict(tok, line, len, &root, &at, &why);
	if (rc == -EINVAL)
		return sl__err(err, errlen, "invalid JSON at byte %zu: %s", at, why);
	if (rc)
		return rc;
	if (!json_object_is_type(root, json_type_object)) {
		rc = sl__err(err, errlen, "a line must be a JSON object, not %s",
		             sl__type_name(root));
		goto out;
	}
	rc = sl__parse_fields(root, now_ms, rng, out, err, errlen);
out:
	if (rc) {
		json_object_put(root);
		memset(&out->ev, 0, sizeof(out->ev));
		out->n_headers = 0;
		out->has_position = false;
		return rc;
	}
	out->sl__root = root;
	return 0;
}

void sl_json_event_release(struct sl_json_event *ev)
{
	json_object_put(ev->sl__root);
	if (ev->sl__tok)
		json_tokener_free(ev->sl__tok);
	free(ev->headers);
	free(ev->sl__bytes);
	memset(ev, 0, sizeof(*ev));
}

/* ---- format ----------------------------------------------------------------- */

static int sl__put_u64(struct sl_json_buf *b, uint64_t v, bool neg)
{
	char tmp[24];
	char *p = tmp + sizeof(tmp);

	do {
		*--p = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	if (neg)
		*--p = '-';
	return sl_json_buf_put_raw(b, p, (size_t)(tmp + sizeof(tmp) - p));
}

static int sl__put_i64(struct sl_json_buf *b, int64_t v)
{
	/* Negating through uint64 keeps INT64_MIN defined. */
	return v < 0 ? sl__put_u64(b, 0 - (uint64_t)v, true) : sl__put_u64(b, (uint64_t)v, false);
}

#define SL__PUT_LIT(b, s) sl_json_buf_put_raw((b), (s), sizeof(s) - 1)

static int sl__put_data(const struct sl_event_view *ev, struct sl_json_buf *out)
{
	struct json_tokener *tok;
	struct json_object *o = NULL;
	const char *why;
	size_t at;
	int rc;

	if (!ev->data_len)
		return SL__PUT_LIT(out, "\"data\":null");
	/* One level less than a line: the line's object wraps the data, so
	 * data printed as JSON always fits in a line again. */
	tok = sl__tokener(&out->sl__tok, SL_JSON_MAX_DEPTH - 1);
	if (!tok)
		return -ENOMEM;
	rc = sl__parse_strict(tok, (const char *)ev->data, ev->data_len, &o, &at, &why);
	if (rc == -ENOMEM)
		return rc;
	if (!rc) {
		/* Re-serialised rather than copied: stored JSON may hold
		 * newlines and other whitespace that must not split a line. */
		size_t n = 4;
		const char *txt = "null"; /* json-c holds JSON null as NULL */
		if (o)
			txt = json_object_to_json_string_length(o, SL__SER_FLAGS, &n);
		rc = txt ? SL__PUT_LIT(out, "\"data\":") : -ENOMEM;
		if (!rc)
			rc = sl_json_buf_put_raw(out, txt, n);
		json_object_put(o);
		return rc;
	}
	if (ev->data_len > SIZE_MAX / 2 / 4 * 3)
		return -ENOMEM;
	size_t enc = SL_B64_ENCODED_LEN(ev->data_len);
	rc = SL__PUT_LIT(out, "\"data_b64\":\"");
	if (!rc)
		rc = sl_json_buf_reserve(out, enc + 1);
	if (rc)
		return rc;
	out->len += sl_b64_encode(ev->data, ev->data_len, out->data + out->len);
	out->data[out->len++] = '"';
	out->data[out->len] = '\0';
	return 0;
}

int sl_json_event_format(const struct sl_event_view *ev, const struct sl_json_header *headers,
                         size_t n_headers, uint32_t partition, uint64_t offset,
                         const struct sl_json_field *extra, size_t n_extra, struct sl_json_buf *out)
{
	size_t start = out->len;
	int rc = 0;

	/* Every step appends; the first failure skips the rest and the
	 * buffer is cut back to where this event began. */
	if (ev->id) {
		char id[SL_UUID_STR_LEN + 1];
		sl_uuid_format(ev->id, id);
		rc = SL__PUT_LIT(out, "{\"id\":\"");
		rc = rc ?: sl_json_buf_put_raw(out, id, SL_UUID_STR_LEN);
		rc = rc ?: SL__PUT_LIT(out, "\",\"type\":");
	} else {
		rc = SL__PUT_LIT(out, "{\"type\":");
	}
	rc = rc ?: sl_json_buf_put_str(out, ev->type, ev->type_len);
	rc = rc ?: SL__PUT_LIT(out, ",\"aggregate\":");
	rc = rc ?: sl_json_buf_put_str(out, ev->aggregate, ev->aggregate_len);
	rc = rc ?: SL__PUT_LIT(out, ",\"timestamp\":");
	rc = rc ?: sl__put_i64(out, ev->timestamp_ms);
	rc = rc ?: SL__PUT_LIT(out, ",\"partition\":");
	rc = rc ?: sl__put_u64(out, partition, false);
	rc = rc ?: SL__PUT_LIT(out, ",\"offset\":");
	rc = rc ?: sl__put_u64(out, offset, false);
	if (ev->schema_version) {
		rc = rc ?: SL__PUT_LIT(out, ",\"schema_version\":");
		rc = rc ?: sl__put_u64(out, ev->schema_version, false);
	}
	if (n_headers) {
		rc = rc ?: SL__PUT_LIT(out, ",\"headers\":{");
		for (size_t i = 0; i < n_headers && !rc; i++) {
			rc = i ? SL__PUT_LIT(out, ",") : 0;
			rc = rc ?: sl_json_buf_put_str(out, headers[i].key, headers[i].key_len);
			rc = rc ?: SL__PUT_LIT(out, ":");
			rc = rc ?: sl_json_buf_put_str(out, headers[i].value, headers[i].value_len);
		}
		rc = rc ?: SL__PUT_LIT(out, "}");
	}
	for (size_t i = 0; i < n_extra && !rc; i++) {
		rc = SL__PUT_LIT(out, ",");
		rc = rc ?: sl_json_buf_put_str(out, extra[i].key, strlen(extra[i].key));
		rc = rc ?: SL__PUT_LIT(out, ":");
		rc = rc ?: sl_json_buf_put_raw(out, extra[i].json, extra[i].json_len);
	}
	rc = rc ?: SL__PUT_LIT(out, ",");
	rc = rc ?: sl__put_data(ev, out);
	rc = rc ?: SL__PUT_LIT(out, "}\n");
	if (rc) {
		out->len = start;
		if (out->data)
			out->data[start] = '\0';
	}
	return rc;
}
