#include "json/json.h"

#include <errno.h>

static const char sl__b64_alphabet[64] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* Symbol value + 1 for alphabet bytes, 0 for everything else (including
 * '='), so that the zero-filled rest of the table means "invalid". Looked up
 * as value1 - 1u, an invalid byte becomes 0xffffffff: bit 0x80 flags it, as no
 * valid symbol (0..63) has that bit. */
static const uint8_t sl__b64_value1[256] = {
    ['A'] = 1,  ['B'] = 2,  ['C'] = 3,  ['D'] = 4,  ['E'] = 5,  ['F'] = 6,  ['G'] = 7,  ['H'] = 8,
    ['I'] = 9,  ['J'] = 10, ['K'] = 11, ['L'] = 12, ['M'] = 13, ['N'] = 14, ['O'] = 15, ['P'] = 16,
    ['Q'] = 17, ['R'] = 18, ['S'] = 19, ['T'] = 20, ['U'] = 21, ['V'] = 22, ['W'] = 23, ['X'] = 24,
    ['Y'] = 25, ['Z'] = 26, ['a'] = 27, ['b'] = 28, ['c'] = 29, ['d'] = 30, ['e'] = 31, ['f'] = 32,
    ['g'] = 33, ['h'] = 34, ['i'] = 35, ['j'] = 36, ['k'] = 37, ['l'] = 38, ['m'] = 39, ['n'] = 40,
    ['o'] = 41, ['p'] = 42, ['q'] = 43, ['r'] = 44, ['s'] = 45, ['t'] = 46, ['u'] = 47, ['v'] = 48,
    ['w'] = 49, ['x'] = 50, ['y'] = 51, ['z'] = 52, ['0'] = 53, ['1'] = 54, ['2'] = 55, ['3'] = 56,
    ['4'] = 57, ['5'] = 58, ['6'] = 59, ['7'] = 60, ['8'] = 61, ['9'] = 62, ['+'] = 63, ['/'] = 64,
};

size_t sl_b64_encode(const uint8_t *in, size_t n, char *out)
{
	char *p = out;
	size_t i = 0;

	for (; i + 3 <= n; i += 3) {
		uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
		p[0] = sl__b64_alphabet[v >> 18];
		p[1] = sl__b64_alphabet[(v >> 12) & 63];
		p[2] = sl__b64_alphabet[(v >> 6) & 63];
		p[3] = sl__b64_alphabet[v & 63];
		p += 4;
	}
	if (n - i == 1) {
		uint32_t v = (uint32_t)in[i] << 16;
		p[0] = sl__b64_alphabet[v >> 18];
		p[1] = sl__b64_alphabet[(v >> 12) & 63];
		p[2] = '=';
		p[3] = '=';
		p += 4;
	} else if (n - i == 2) {
		uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8;
		p[0] = sl__b64_alphabet[v >> 18];
		p[1] = sl__b64_alphabet[(v >> 12) & 63];
		p[2] = sl__b64_alphabet[(v >> 6) & 63];
		p[3] = '=';
		p += 4;
	}
	return (size_t)(p - out);
}

int sl_b64_decode(const char *in, size_t n, uint8_t *out, size_t *out_len)
{
	const unsigned char *s = (const unsigned char *)in;
	uint8_t *p = out;
	size_t full, i;

	if (n % 4)
		return -EINVAL;
	/* The last quantum may carry padding; all others are four symbols. */
	full = n ? n - 4 : 0;
	for (i = 0; i < full; i += 4) {
		uint32_t a = sl__b64_value1[s[i]] - 1u, b = sl__b64_value1[s[i + 1]] - 1u;
		uint32_t c = sl__b64_value1[s[i + 2]] - 1u, d = sl__b64_value1[s[i + 3]] - 1u;
		if ((a | b | c | d) & 0x80)
			return -EINVAL;
		uint32_t v = a << 18 | b << 12 | c << 6 | d;
		p[0] = (uint8_t)(v >> 16);
		p[1] = (uint8_t)(v >> 8);
		p[2] = (uint8_t)v;
		p += 3;
	}
	if (n) {
		uint32_t a = sl__b64_value1[s[i]] - 1u, b = sl__b64_value1[s[i + 1]] - 1u;
		uint32_t c = sl__b64_value1[s[i + 2]] - 1u, d = sl__b64_value1[s[i + 3]] - 1u;
		if ((a | b) & 0x80)
			return -EINVAL;
		if (s[i + 2] == '=') {
			/* "xx==": one byte; the 4 low bits of b are unused and
			 * must be zero for the encoding to be the only one. */
			if (s[i + 3] != '=' || (b & 0x0f))
				return -EINVAL;
			*p++ = (uint8_t)(a << 2 | b >> 4);
		} else if (s[i + 3] == '=') {
			if ((c & 0x80) || (c & 0x03))
				return -EINVAL;
			uint32_t v = a << 18 | b << 12 | c << 6;
			*p++ = (uint8_t)(v >> 16);
			*p++ = (uint8_t)(v >> 8);
		} else {
			if ((c | d) & 0x80)
				return -EINVAL;
			uint32_t v = a << 18 | b << 12 | c << 6 | d;
			*p++ = (uint8_t)(v >> 16);
			*p++ = (uint8_t)(v >> 8);
			*p++ = (uint8_t)v;
		}
	}
	*out_len = (size_t)(p - out);
	return 0;
}
