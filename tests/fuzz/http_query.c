/*
 * Fuzz the projection request parser (sl_http_parse_query), the part of
 * the HTTP port that reads untrusted bytes. Input layout, seeds being
 * readable text:
 *   byte 0   buffer choice: odd = exactly what the path needs
 *            (strlen(path) + 2), even = byte0 / 2 bytes (often too small)
 *   then     the path after /v1/projections/ up to the first '\n'
 *   then     query parameters separated by '&', each "name=value" or a bare
 *            "name" (a NULL value)
 * Every string and the buffer are separate heap blocks of exact size, so
 * ASan sees any read or write past them. It must never crash, and on
 * success every field must be consistent: strings inside the buffer, NUL
 * after each, lengths that fit the path, timeout within bounds, and an
 * empty error text; on failure a non-empty error. The same parameters go
 * through sl_http_parse_rebuild (a rebuild's swap=): swap is set only for
 * exactly one "swap=1" or "swap=true".
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "http/http.h"

#define CHECK(c)                                                                                   \
	do {                                                                                       \
		if (!(c))                                                                          \
			__builtin_trap();                                                          \
	} while (0)

/* More than SL_HTTP_MAX_ARGS, so the too-many refusal is reached. */
#define MAX_FUZZ_ARGS 40

static char *dup_range(const uint8_t *p, size_t n)
{
	char *s = malloc(n + 1);
	CHECK(s);
	memcpy(s, p, n);
	s[n] = 0;
	return s;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *names[MAX_FUZZ_ARGS] = {0}, *values[MAX_FUZZ_ARGS] = {0};
	size_t n_args = 0;

	if (size < 1)
		return 0;
	uint8_t mode = data[0];
	const uint8_t *p = data + 1, *end = data + size;
	const uint8_t *nl = memchr(p, '\n', (size_t)(end - p));
	const uint8_t *path_end = nl ? nl : end;
	char *path = dup_range(p, (size_t)(path_end - p));
	size_t plen = strlen(path); /* a NUL in the input cuts it, as in C */

	for (const uint8_t *a = nl ? nl + 1 : end; a < end && n_args < MAX_FUZZ_ARGS;) {
		const uint8_t *amp = memchr(a, '&', (size_t)(end - a));
		const uint8_t *aend = amp ? amp : end;
		const uint8_t *eq = memchr(a, '=', (size_t)(aend - a));
		names[n_args] = dup_range(a, (size_t)((eq ? eq : aend) - a));
		values[n_args] = eq ? dup_range(eq + 1, (size_t)(aend - eq - 1)) : NULL;
		n_args++;
		a = amp ? amp + 1 : end;
	}

	size_t cap = (mode & 1) ? plen + 2 : (size_t)(mode >> 1);
	char *buf = malloc(cap ? cap : 1);
	CHECK(buf);
	struct sl_http_query q;
	char err[256];
	err[0] = 0;
	int r = sl_http_parse_query(path, (const char *const *)names, (const char *const *)values,
	                            n_args, buf, cap, &q, err, sizeof(err));
	if (r == 0) {
		CHECK(cap >= plen + 2);
		CHECK(q.projection == buf);
		CHECK(q.projection_len > 0 && q.key_len > 0);
		CHECK(q.projection[q.projection_len] == 0);
		CHECK(!memchr(q.projection, 0, q.projection_len));
		CHECK(q.key == q.projection + q.projection_len + 1);
		CHECK(q.key + q.key_len < buf + cap);
		CHECK(q.key[q.key_len] == 0);
		/* Decoding never grows, and NAME and KEY are split by one '/'. */
		CHECK(q.projection_len + 1 + q.key_len <= plen);
		CHECK(q.timeout_ms <= SL_HTTP_TIMEOUT_MAX_MS);
		CHECK(q.consistency == SL_HTTP_CONSISTENCY_DEFAULT ||
		      q.consistency == SL_HTTP_CONSISTENCY_ONE ||
		      q.consistency == SL_HTTP_CONSISTENCY_QUORUM);
		CHECK(n_args <= SL_HTTP_MAX_ARGS);
		CHECK(err[0] == 0);
		/* Without parameters, the defaults. */
		if (!n_args)
			CHECK(!q.has_min && !q.has_max_lag &&
			      q.timeout_ms == SL_HTTP_TIMEOUT_DEFAULT_MS &&
			      q.consistency == SL_HTTP_CONSISTENCY_DEFAULT);
	} else {
		CHECK(r == -EINVAL);
		CHECK(err[0] != 0);
		CHECK(memchr(err, 0, sizeof(err)) != NULL);
	}
	bool swap = true;
	err[0] = 0;
	r = sl_http_parse_rebuild((const char *const *)names, (const char *const *)values, n_args,
	                          &swap, err, sizeof(err));
	if (r == 0) {
		CHECK(err[0] == 0 && n_args <= SL_HTTP_MAX_ARGS);
		size_t asked = 0;
		for (size_t i = 0; i < n_args; i++)
			asked += names[i][0] && !strcmp(names[i], "swap") && values[i] &&
			         (!strcmp(values[i], "1") || !strcmp(values[i], "true"));
		CHECK(swap == (asked == 1));
	} else {
		CHECK(r == -EINVAL && err[0] != 0 && !swap);
	}
	/* A token parses only as digits ':' digits, and any bytes are safe. */
	uint32_t tp;
	uint64_t to;
	if (sl_token_parse(path, plen, &tp, &to) == 0) {
		const char *c = memchr(path, ':', plen);
		CHECK(c && c > path && c < path + plen - 1);
		for (const char *s = path; s < path + plen; s++)
			CHECK(s == c || (*s >= '0' && *s <= '9'));
	}

	free(buf);
	free(path);
	for (size_t i = 0; i < n_args; i++) {
		free(names[i]);
		free(values[i]);
	}
	return 0;
}
