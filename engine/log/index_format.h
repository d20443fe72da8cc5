/*
 * index_format: the sparse index of a sealed segment (`<base>.idx` beside
 * `<base>.log`). This header is the one definition of its bytes.
 *
 * The file is an array of 8-byte entries, nothing else (no header, no
 * checksum). Integers are little endian.
 *
 *   offset size name          what
 *        0    4 SL_IDX_REL    offset - segment base of the batch's first event
 *        4    4 SL_IDX_POS    byte position of that batch in the segment
 *        8      SL_IDX_ENTRY  (the next entry)
 *
 * Entries are sorted by both fields, at most one per SL_IDX_EVERY bytes of
 * segment, and the first is {0, 0}. The index is a cache: a missing, short
 * or malformed file (size not a multiple of SL_IDX_ENTRY, or a first entry
 * other than {0, 0}) is ignored and the reader scans the segment from its
 * start; entries only say where to start looking, and the batch found there
 * is checked like any other, so a wrong entry costs a failed read, never a
 * wrong event.
 *
 * Pure functions on caller-owned bytes; any thread.
 */
#ifndef SL_LOG_INDEX_FORMAT_H
#define SL_LOG_INDEX_FORMAT_H

#include <stddef.h>
#include <stdint.h>

#include "base/base.h"

enum {
	SL_IDX_REL = 0,
	SL_IDX_POS = 4,
	SL_IDX_ENTRY = 8,
};

/* A sparse index entry every this many bytes of a segment: a lookup reads at
 * most this much past the entry to find an offset. */
#define SL_IDX_EVERY 4096u

/* One entry, decoded (also the in-memory index of a segment). */
struct sl_idx {
	uint32_t rel; /* offset - segment base */
	uint32_t pos; /* byte position of the batch holding it */
};

/* Writes n entries to out (n * SL_IDX_ENTRY bytes). */
static inline void sl_idx_encode(uint8_t *out, const struct sl_idx *v, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		sl_put_le32(out + i * SL_IDX_ENTRY + SL_IDX_REL, v[i].rel);
		sl_put_le32(out + i * SL_IDX_ENTRY + SL_IDX_POS, v[i].pos);
	}
}

/* Reads n entries from in (n * SL_IDX_ENTRY bytes). */
static inline void sl_idx_decode(struct sl_idx *v, const uint8_t *in, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		v[i].rel = sl_get_le32(in + i * SL_IDX_ENTRY + SL_IDX_REL);
		v[i].pos = sl_get_le32(in + i * SL_IDX_ENTRY + SL_IDX_POS);
	}
}

#endif
