#include "json/json.h"

#include <errno.h>
#include <json-c/json.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"

void sl_json_buf_release(struct sl_json_buf *b)
{
	free(b->data);
	if (b->sl__tok)
		json_tokener_free(b->sl__tok);
	memset(b, 0, sizeof(*b));
}

int sl_json_buf_reserve(struct sl_json_buf *b, size_t extra)
{
	if (extra >= SIZE_MAX / 2 - b->len)
		return -ENOMEM;
	/* Doubling keeps appends amortised O(1); 256 B covers a small event
	 * in one allocation. */
	char *p = sl_grow(b->data, &b->cap, b->len + extra + 1, 256);
	if (!p)
		return -ENOMEM;
	b->data = p;
	return 0;
}

int sl_json_buf_put_raw(struct sl_json_buf *b, const void *p, size_t n)
{
	int rc = sl_json_buf_reserve(b, n);

	if (rc)
		return rc;
	if (n)
		memcpy(b->data + b->len, p, n);
	b->len += n;
	b->data[b->len] = '\0';
	return 0;
}

/*
 * Length of the well-formed UTF-8 sequence at p (1..4), or 0. Well-formed
 * per RFC 3629: no overlong forms, no surrogates (ED A0..BF), nothing above
 * U+10FFFF (F4 90.. and F5..FF).
 */
static size_t sl__utf8_len(const unsigned char *p, size_t rem)
{
	unsigned char c = p[0];
	unsigned char lo = 0x80, hi = 0xbf;
	size_t len;

	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf) {
		len = 2;
	} else if (c >= 0xe0 && c <= 0xef) {
		len = 3;
		if (c == 0xe0)
			lo = 0xa0;
		else if (c == 0xed)
			hi = 0x9f;
	} else if (c >= 0xf0 && c <= 0xf4) {
		len = 4;
		if (c == 0xf0)
			lo = 0x90;
		else if (c == 0xf4)
			hi = 0x8f;
	} else {
		return 0;
	}
	if (rem < len || p[1] < lo || p[1] > hi)
		return 0;
	for (size_t k = 2; k < len; k++)
		if ((p[k] & 0xc0) != 0x80)
			return 0;
	return len;
}

int sl_json_buf_put_str(struct sl_json_buf *b, const char *s, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *p = (const unsigned char *)s;
	/* Worst case: every byte becomes "\ufffd" (6), plus the quotes. */
	int rc = n > (SIZE_MAX - 2) / 6 ? -ENOMEM : sl_json_buf_reserve(b, n * 6 + 2);

	if (rc)
		return rc;
	char *o = b->data + b->len;
	*o++ = '"';
	for (size_t i = 0; i < n;) {
		unsigned char c = p[i];
		if (c >= 0x20 && c < 0x80 && c != '"' && c != '\\') {
			*o++ = (char)c;
			i++;
			continue;
		}
		if (c >= 0x80) {
			size_t len = sl__utf8_len(p + i, n - i);
			if (len) {
				memcpy(o, p + i, len);
				o += len;
				i += len;
			} else {
				memcpy(o, "\\ufffd", 6);
				o += 6;
				i++;
			}
			continue;
		}
		*o++ = '\\';
		switch (c) {
		case '"':
			*o++ = '"';
			break;
		case '\\':
			*o++ = '\\';
			break;
		case '\b':
			*o++ = 'b';
			break;
		case '\f':
			*o++ = 'f';
			break;
		case '\n':
			*o++ = 'n';
			break;
		case '\r':
			*o++ = 'r';
			break;
		case '\t':
			*o++ = 't';
			break;
		default:
			*o++ = 'u';
			*o++ = '0';
			*o++ = '0';
			*o++ = hex[c >> 4];
			*o++ = hex[c & 15];
		}
		i++;
	}
	*o++ = '"';
	b->len = (size_t)(o - b->data);
	b->data[b->len] = '\0';
	return 0;
}

static bool sl__is_digit(unsigned char c)
{
	return c >= '0' && c <= '9';
}

static int sl__hex4(const unsigned char *p, unsigned *v)
{
	unsigned x = 0;

	for (int k = 0; k < 4; k++) {
		unsigned char c = p[k];
		x <<= 4;
		if (sl__is_digit(c))
			x |= (unsigned)(c - '0');
		else if ((c | 0x20) >= 'a' && (c | 0x20) <= 'f')
			x |= (unsigned)((c | 0x20) - 'a' + 10);
		else
			return -1;
	}
	*v = x;
	return 0;
}

/* Scans a JSON number at s[*i]; RFC 8259 grammar. Integers (no fraction,
 * no exponent) must fit int64 or uint64: json-c stores them so, and clamps
 * what does not fit. */
static const char *sl__lex_number(const unsigned char *s, size_t n, size_t *i)
{
	size_t j = *i, int_start;
	bool neg = false, integer = true;

	if (s[j] == '-') {
		neg = true;
		j++;
	}
	int_start = j;
	if (j >= n || !sl__is_digit(s[j]))
		return "not a JSON number";
	if (s[j] == '0') {
		j++;
		if (j < n && sl__is_digit(s[j]))
			return "number with a leading zero";
	} else {
		while (j < n && sl__is_digit(s[j]))
			j++;
	}
	size_t int_len = j - int_start;
	if (j < n && s[j] == '.') {
		integer = false;
		j++;
		if (j >= n || !sl__is_digit(s[j]))
			return "not a JSON number";
		while (j < n && sl__is_digit(s[j]))
			j++;
	}
	if (j < n && (s[j] == 'e' || s[j] == 'E')) {
		integer = false;
		j++;
		if (j < n && (s[j] == '+' || s[j] == '-'))
			j++;
		if (j >= n || !sl__is_digit(s[j]))
			return "not a JSON number";
		while (j < n && sl__is_digit(s[j]))
			j++;
	}
	if (integer) {
		/* Decimal text of -INT64_MIN and UINT64_MAX; no leading zeros, so
		 * same-length texts compare like their values. */
		const char *lim = neg ? "9223372036854775808" : "18446744073709551615";
		size_t lim_len = strlen(lim);
		if (int_len > lim_len ||
		    (int_len == lim_len && memcmp(s + int_start, lim, lim_len) > 0))
			return "integer beyond the 64-bit range";
	}
	*i = j;
	return NULL;
}

/* Scans a string whose opening quote is at s[*i]; *i ends past the closing
 * quote, or at the offending byte. *nul: the string held \u0000. */
static const char *sl__lex_string(const unsigned char *s, size_t n, size_t *i, bool *nul)
{
	const char *bad = NULL;
	size_t j = *i + 1;

	*nul = false;
	while (!bad) {
		if (j >= n) {
			bad = "unterminated string";
			break;
		}
		unsigned char c = s[j];
		if (c >= 0x20 && c < 0x80 && c != '"' && c != '\\') {
			j++; /* the common case, first */
			continue;
		}
		if (c == '"') {
			j++;
			break;
		}
		if (c == '\\') {
			unsigned char e = j + 1 < n ? s[j + 1] : 0;
			unsigned v;
			if (e == 'u') {
				if (n - j < 6 || sl__hex4(s + j + 2, &v))
					bad = "bad \\u escape in a string";
				else
					*nul |= v == 0;
				j += bad ? 0 : 6;
			} else if (e && strchr("\"\\/bfnrt", e)) {
				j += 2;
			} else {
				bad = "bad escape in a string";
			}
			continue;
		}
		if (c < 0x20) {
			bad = "unescaped control character in a string";
			break;
		}
		size_t len = sl__utf8_len(s + j, n - j);
		if (!len)
			bad = "invalid UTF-8 in a string";
		j += len;
	}
	*i = j;
	return bad;
}

int sl_json_lex_check(const char *text, size_t n, size_t *at, const char **why)
{
	const unsigned char *s = (const unsigned char *)text;
	const char *bad = NULL;
	bool key_nul = false; /* the last string held \u0000 */
	size_t i = 0;

	while (i < n && !bad) {
		unsigned char c = s[i];
		if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
			i++;
			continue;
		}
		if (c == ':' && key_nul) {
			bad = "\\u0000 in an object key";
			break;
		}
		key_nul = false;
		switch (c) {
		case '{':
		case '}':
		case '[':
		case ']':
		case ',':
		case ':':
			i++;
			break;
		case '"':
			bad = sl__lex_string(s, n, &i, &key_nul);
			break;
		case 't':
		case 'f':
		case 'n': {
			const char *lit = c == 't' ? "true" : c == 'f' ? "false" : "null";
			size_t len = strlen(lit);
			if (n - i < len || memcmp(s + i, lit, len))
				bad = "unexpected word";
			else
				i += len;
			break;
		}
		default:
			if (c == '-' || sl__is_digit(c))
				bad = sl__lex_number(s, n, &i);
			else
				bad = "unexpected character";
		}
	}
	if (!bad)
		return 0;
	if (at)
		*at = i;
	if (why)
		*why = bad;
	return -EINVAL;
}
