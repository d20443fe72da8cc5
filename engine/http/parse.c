/* Projection and topic request parsing and the JSON error body: the pure half
 * of http/. */
#include "http/http.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "json/json.h"

/* Decoded parameter names and values live on the stack: the longest valid
 * value is a token of 10 + 1 + 20 digits; anything longer is wrong anyway
 * and only needs enough of itself for the message. */
#define SL__ARG_CAP  64
#define SL__SHOW_CAP 40

/*
 * Percent-decodes s[0..n) into dst (room for cap bytes, never less than the
 * output needs when cap >= n). 0 with *dlen set; -EINVAL with *bad the byte
 * offset of a '%' not followed by two hex digits; -ENOSPC when dst is full
 * (*dlen then holds what fitted, for messages).
 */
static int sl__pct_decode(const char *s, size_t n, bool plus_is_space, char *dst, size_t cap,
                          size_t *dlen, size_t *bad)
{
	size_t o = 0;

	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (c == '%') {
			int b = i + 2 < n ? sl_hex_byte(s + i + 1) : -1;
			if (b < 0) {
				*bad = i;
				*dlen = o;
				return -EINVAL;
			}
			c = (char)b;
			i += 2;
		} else if (c == '+' && plus_is_space) {
			c = ' ';
		}
		if (o == cap) {
			*dlen = o;
			return -ENOSPC;
		}
		dst[o++] = c;
	}
	*dlen = o;
	return 0;
}

/* A printable copy of s[0..n) for an error message: at most SL__SHOW_CAP
 * bytes, anything outside printable ASCII as '?', "..." when cut. */
static void sl__show(const char *s, size_t n, char *out, size_t cap)
{
	size_t o = 0, lim = n < SL__SHOW_CAP ? n : SL__SHOW_CAP;

	for (size_t i = 0; i < lim && o + 1 < cap; i++)
		out[o++] = s[i] >= 0x20 && s[i] < 0x7f ? s[i] : '?';
	if (n > lim && o + 3 < cap) {
		memcpy(out + o, "...", 3);
		o += 3;
	}
	out[o] = 0;
}

enum sl__arg { SL__ARG_MIN, SL__ARG_LAG, SL__ARG_TIMEOUT, SL__ARG_CONS, SL__ARG_N };

static const char *const sl__arg_names[SL__ARG_N] = {"min_offset", "max_lag", "timeout_ms",
                                                     "consistency"};

static int sl__parse_arg(const char *name, const char *value, bool seen[SL__ARG_N],
                         struct sl_http_query *q, char *err, size_t errlen)
{
	char nb[SL__ARG_CAP], vb[SL__ARG_CAP], show[SL__SHOW_CAP + 4];
	size_t nlen, vlen, bad;
	int which = -1, r;

	r = sl__pct_decode(name, strlen(name), true, nb, sizeof(nb), &nlen, &bad);
	if (r == -EINVAL) {
		sl__show(name, strlen(name), show, sizeof(show));
		sl_errf(err, errlen, "parameter '%s': bad percent-encoding at byte %zu", show, bad);
		return -EINVAL;
	}
	if (r == 0)
		for (int i = 0; i < SL__ARG_N; i++)
			if (nlen == strlen(sl__arg_names[i]) && !memcmp(nb, sl__arg_names[i], nlen))
				which = i;
	if (which < 0) {
		sl__show(nb, nlen, show, sizeof(show));
		sl_errf(err, errlen,
		        "unknown parameter '%s' (expected min_offset, max_lag, timeout_ms or "
		        "consistency)",
		        show);
		return -EINVAL;
	}
	const char *an = sl__arg_names[which];
	if (seen[which]) {
		sl_errf(err, errlen, "%s: given twice", an);
		return -EINVAL;
	}
	seen[which] = true;
	if (!value) {
		sl_errf(err, errlen, "%s: needs a value (%s=...)", an, an);
		return -EINVAL;
	}
	r = sl__pct_decode(value, strlen(value), true, vb, sizeof(vb), &vlen, &bad);
	if (r == -EINVAL) {
		sl__show(value, strlen(value), show, sizeof(show));
		sl_errf(err, errlen, "%s: bad percent-encoding at byte %zu of '%s'", an, bad, show);
		return -EINVAL;
	}
	/* -ENOSPC: longer than any valid value, but what fitted may parse, so
	 * refuse explicitly (the message shows its start and "..."). */
	bool too_long = r == -ENOSPC;
	sl__show(vb, vlen, show, sizeof(show));
	switch (which) {
	case SL__ARG_MIN:
		if (too_long || sl_token_parse(vb, vlen, &q->min_partition, &q->min_offset) < 0) {
			sl_errf(
			    err, errlen,
			    "min_offset: expected PARTITION:OFFSET (an ack token such as 3:1042), "
			    "got '%s'",
			    show);
			return -EINVAL;
		}
		q->has_min = true;
		break;
	case SL__ARG_LAG:
		if (too_long || sl_parse_dec(vb, vlen, UINT64_MAX, &q->max_lag) < 0) {
			sl_errf(err, errlen, "max_lag: expected a whole number of events, got '%s'",
			        show);
			return -EINVAL;
		}
		q->has_max_lag = true;
		break;
	case SL__ARG_CONS:
		if (vlen == 3 && !memcmp(vb, "one", 3) && !too_long)
			q->consistency = SL_HTTP_CONSISTENCY_ONE;
		else if (vlen == 6 && !memcmp(vb, "quorum", 6) && !too_long)
			q->consistency = SL_HTTP_CONSISTENCY_QUORUM;
		else {
			sl_errf(err, errlen, "consistency: expected one or quorum, got '%s'", show);
			return -EINVAL;
		}
		break;
	default: {
		uint64_t t;
		if (too_long || sl_parse_dec(vb, vlen, SL_HTTP_TIMEOUT_MAX_MS, &t) < 0) {
			sl_errf(err, errlen,
			        "timeout_ms: expected a whole number of milliseconds from 0 to %u, "
			        "got '%s'",
			        SL_HTTP_TIMEOUT_MAX_MS, show);
			return -EINVAL;
		}
		q->timeout_ms = (uint32_t)t;
		break;
	}
	}
	return 0;
}

int sl_http_parse_query(const char *path, const char *const *arg_names,
                        const char *const *arg_values, size_t n_args, char *buf, size_t buf_cap,
                        struct sl_http_query *out, char *err, size_t errlen)
{
	struct sl_http_query q = {.timeout_ms = SL_HTTP_TIMEOUT_DEFAULT_MS};
	bool seen[SL__ARG_N] = {false};
	char show[SL__SHOW_CAP + 4];
	size_t n = path ? strlen(path) : 0, nlen, klen, bad;

	if (!path)
		path = "";
	if (buf_cap < 2 || n > buf_cap - 2) {
		sl_errf(err, errlen, "path: longer than %zu bytes", buf_cap >= 2 ? buf_cap - 2 : 0);
		return -EINVAL;
	}
	const char *slash = memchr(path, '/', n);
	if (!slash || slash == path || slash + 1 == path + n) {
		sl__show(path, n, show, sizeof(show));
		sl_errf(err, errlen,
		        "expected /v1/projections/NAME/KEY (both non-empty), got "
		        "/v1/projections/%s",
		        show);
		return -EINVAL;
	}
	size_t raw_name = (size_t)(slash - path), raw_key = n - raw_name - 1;
	/* Decoding never grows: NAME fits in raw_name bytes, KEY in raw_key,
	 * and with their NULs both in n + 1 <= buf_cap - 1. */
	if (sl__pct_decode(path, raw_name, false, buf, raw_name, &nlen, &bad) < 0) {
		sl_errf(err, errlen, "projection name: bad percent-encoding at byte %zu", bad);
		return -EINVAL;
	}
	buf[nlen] = 0;
	if (memchr(buf, 0, nlen)) {
		sl_errf(err, errlen, "projection name: contains a NUL byte (%%00)");
		return -EINVAL;
	}
	char *key = buf + nlen + 1;
	if (sl__pct_decode(slash + 1, raw_key, false, key, raw_key, &klen, &bad) < 0) {
		sl_errf(err, errlen, "key: bad percent-encoding at byte %zu", bad);
		return -EINVAL;
	}
	key[klen] = 0;
	q.projection = buf;
	q.projection_len = nlen;
	q.key = key;
	q.key_len = klen;

	if (n_args > SL_HTTP_MAX_ARGS) {
		sl_errf(err, errlen, "too many query parameters (%zu, at most %d)", n_args,
		        SL_HTTP_MAX_ARGS);
		return -EINVAL;
	}
	for (size_t i = 0; i < n_args; i++) {
		const char *an = arg_names ? arg_names[i] : NULL;
		const char *av = arg_values ? arg_values[i] : NULL;
		/* "a=1&&b=2" and a trailing '&' leave empty names: nothing said. */
		if (!an || (!*an && !av))
			continue;
		if (sl__parse_arg(an, av, seen, &q, err, errlen) < 0)
			return -EINVAL;
	}
	*out = q;
	return 0;
}

int sl_http_parse_rebuild(const char *const *arg_names, const char *const *arg_values,
                          size_t n_args, bool *swap, char *err, size_t errlen)
{
	char show[SL__SHOW_CAP + 4];
	bool seen = false, on = false;

	/* Set only on success: a refused request asks for nothing. */
	*swap = false;
	if (n_args > SL_HTTP_MAX_ARGS) {
		sl_errf(err, errlen, "too many query parameters (%zu, at most %d)", n_args,
		        SL_HTTP_MAX_ARGS);
		return -EINVAL;
	}
	for (size_t i = 0; i < n_args; i++) {
		const char *an = arg_names ? arg_names[i] : NULL;
		const char *av = arg_values ? arg_values[i] : NULL;
		if (!an || (!*an && !av))
			continue;
		if (strcmp(an, "swap") != 0) {
			sl__show(an, strlen(an), show, sizeof(show));
			sl_errf(err, errlen, "unknown parameter '%s' (a rebuild takes swap=0|1)",
			        show);
			return -EINVAL;
		}
		if (seen) {
			sl_errf(err, errlen, "swap: given twice");
			return -EINVAL;
		}
		seen = true;
		/* Asked exactly: a mistyped value must not swap, nor quietly
		 * not swap. */
		if (av && (!strcmp(av, "1") || !strcmp(av, "true")))
			on = true;
		else if (!av || (strcmp(av, "0") && strcmp(av, "false"))) {
			sl__show(av ? av : "", av ? strlen(av) : 0, show, sizeof(show));
			sl_errf(err, errlen, "swap: expected 0, 1, true or false, got '%s'", show);
			return -EINVAL;
		}
	}
	*swap = on;
	return 0;
}

int sl_http_parse_topic(const char *path, char *buf, size_t buf_cap, const char **name,
                        size_t *name_len, char *err, size_t errlen)
{
	char show[SL__SHOW_CAP + 4];
	size_t n = path ? strlen(path) : 0, len, bad;

	if (!path)
		path = "";
	if (memchr(path, '/', n)) {
		sl__show(path, n, show, sizeof(show));
		sl_errf(err, errlen, "no route below a topic: /v1/topics/%s", show);
		return -ENOENT;
	}
	if (!n) {
		sl_errf(err, errlen, "expected /v1/topics/NAME with a non-empty NAME");
		return -EINVAL;
	}
	if (!buf_cap || n > buf_cap - 1) {
		sl_errf(err, errlen, "topic name: longer than %zu bytes",
		        buf_cap ? buf_cap - 1 : 0);
		return -EINVAL;
	}
	/* Decoding never grows: NAME fits in n bytes, its NUL in the next. */
	if (sl__pct_decode(path, n, false, buf, n, &len, &bad) < 0) {
		sl_errf(err, errlen, "topic name: bad percent-encoding at byte %zu", bad);
		return -EINVAL;
	}
	buf[len] = 0;
	if (memchr(buf, 0, len)) {
		sl_errf(err, errlen, "topic name: contains a NUL byte (%%00)");
		return -EINVAL;
	}
	/* A topic's name is its folder under data_dir: never a path. */
	if (memchr(buf, '/', len)) {
		sl__show(buf, len, show, sizeof(show));
		sl_errf(err, errlen, "topic name: contains '/' (%%2F): '%s'", show);
		return -EINVAL;
	}
	*name = buf;
	*name_len = len;
	return 0;
}

int sl_http_error_reply(struct sl_http_reply *out, int status, const char *code, const char *fmt,
                        ...)
{
	struct sl_json_buf b = {0};
	char msg[1024];
	va_list ap;
	int r;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	*out = (struct sl_http_reply){.status = status};
	r = sl_json_buf_put_raw(&b, "{\"error\":", 9);
	if (!r)
		r = sl_json_buf_put_str(&b, code, strlen(code));
	if (!r)
		r = sl_json_buf_put_raw(&b, ",\"message\":", 11);
	if (!r)
		r = sl_json_buf_put_str(&b, msg, strlen(msg));
	if (!r)
		r = sl_json_buf_put_raw(&b, "}\n", 2);
	if (r) {
		sl_json_buf_release(&b);
		return -ENOMEM;
	}
	out->body = b.data;
	out->len = b.len;
	b.data = NULL;
	sl_json_buf_release(&b);
	return 0;
}
