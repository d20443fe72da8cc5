/*
 * varint: protobuf's base-128 varints, the one codec every format of sluice
 * uses (the wire protocol's hand-written scanners and encoders, the log's
 * record headers, the client's Ack reader).
 *
 * Pure functions on caller-owned bytes; any thread.
 *
 * Decoding accepts at most 10 bytes whose value fits in 64 bits. protobuf-c
 * takes any 10-byte varint and drops the excess bits; no encoder writes one,
 * so refusing it keeps what we accept a subset of what protobuf-c accepts,
 * with the same values.
 */
#ifndef SL_VARINT_H
#define SL_VARINT_H

#include <stddef.h>
#include <stdint.h>

#define SL_VARINT_MAX 10 /* bytes of the longest 64-bit varint */

/* Bytes sl_varint_put writes for v (1..10). */
static inline size_t sl_varint_len(uint64_t v)
{
	return (size_t)(((63 - __builtin_clzll(v | 1)) * 9 + 73) / 64);
}

/* Writes v at p (room for SL_VARINT_MAX bytes); returns the end. */
static inline uint8_t *sl_varint_put(uint8_t *p, uint64_t v)
{
	while (v >= 0x80) {
		*p++ = (uint8_t)(v | 0x80);
		v >>= 7;
	}
	*p++ = (uint8_t)v;
	return p;
}

/*
 * Reads a varint from [p, end). Returns the bytes it took (1..10), or 0 when
 * the input ends inside it or it is longer than 10 bytes or above 64 bits;
 * *out is set only on success. A caller that must tell truncation from
 * overflow looks at the bytes: a 0 where [p, end) holds no byte below 0x80
 * within its first SL_VARINT_MAX is a truncation.
 */
static inline size_t sl_varint_get(const uint8_t *p, const uint8_t *end, uint64_t *out)
{
	uint64_t v = 0;

	if (__builtin_expect(p < end && *p < 0x80, 1)) {
		*out = *p;
		return 1;
	}
	/* Ten bytes at hand (every varint inside a Produce but the last
	 * field's): no bounds check per byte. */
	if (__builtin_expect(end - p >= SL_VARINT_MAX, 1)) {
		for (unsigned i = 0; i < SL_VARINT_MAX - 1; i++) {
			v |= (uint64_t)(p[i] & 0x7f) << (7 * i);
			if (p[i] < 0x80) {
				*out = v;
				return i + 1;
			}
		}
		/* The 10th byte holds one bit: anything more overflows 64 bits. */
		if (p[SL_VARINT_MAX - 1] > 1)
			return 0;
		*out = v | (uint64_t)p[SL_VARINT_MAX - 1] << 63;
		return SL_VARINT_MAX;
	}
	for (unsigned i = 0; i < SL_VARINT_MAX; i++) {
		uint8_t b;

		if (p + i >= end)
			return 0;
		b = p[i];
		if (i == SL_VARINT_MAX - 1 && b > 1)
			return 0;
		v |= (uint64_t)(b & 0x7f) << (7 * i);
		if (b < 0x80) {
			*out = v;
			return i + 1;
		}
	}
	return 0;
}

#endif
