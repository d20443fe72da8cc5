/*
 * tix_format: the sparse time index of a sealed segment (`<base>.tix` beside
 * `<base>.log`), what seek by time reads (sl_log_view_seek_time). This
 * header is the one definition of its bytes.
 *
 * The file is an array of 16-byte entries, nothing else (no header, no
 * checksum). Integers are little endian.
 *
 *   offset size name          what
 *        0    8 SL_TIX_TIME   the running maximum of the batches' append
 *                             times (SL_BATCH_TIME_MS, ms, signed) from the
 *                             segment's first batch up to this one
 *        8    4 SL_TIX_REL    offset - segment base of the batch's first event
 *       12    4 SL_TIX_POS    byte position of that batch in the segment
 *       16      SL_TIX_ENTRY  (the next entry)
 *
 * Times are the server's clock when the batch was appended. A clock that
 * steps back makes batch times go down; the index keeps the running
 * maximum, so its times never decrease and a binary search stays valid:
 * "the first event at or after T" is the first event whose running maximum
 * is >= T (exactly the first at or after T while the clock only goes
 * forward). Entries: at most one per SL_TIX_EVERY bytes of segment, the
 * first {time of batch 0, 0, 0}, and the last for the segment's last batch
 * (its time is then the segment's newest append time, which retention by
 * age reads). rel and pos strictly increase, time never decreases.
 *
 * The index is a cache: a missing, short or malformed file (size not a
 * multiple of SL_TIX_ENTRY, empty, a first entry not at {0, 0}, an order
 * broken) is ignored and the reader scans the segment's batch headers
 * instead. Entries only say where to start looking; the batch found there
 * is checked like any other (its offset must be where the entry says).
 *
 * Pure functions on caller-owned bytes; any thread.
 */
#ifndef SL_LOG_TIX_FORMAT_H
#define SL_LOG_TIX_FORMAT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/base.h"

enum {
	SL_TIX_TIME = 0,
	SL_TIX_REL = 8,
	SL_TIX_POS = 12,
	SL_TIX_ENTRY = 16,
};

/* An entry every this many bytes of a segment: a lookup reads at most this
 * much (and one batch) past the entry it starts from. Four times the
 * offset index's step: a seek by time is rare, its file 1/1024 of the
 * segment's size at most (64 KiB for 64 MiB). */
#define SL_TIX_EVERY 16384u

/* One entry, decoded (also the in-memory index of a segment). */
struct sl_tix {
	int64_t time_ms; /* running maximum up to and including this batch */
	uint32_t rel;    /* offset - segment base */
	uint32_t pos;    /* byte position of the batch */
};

/* Writes n entries to out (n * SL_TIX_ENTRY bytes). */
static inline void sl_tix_encode(uint8_t *out, const struct sl_tix *v, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		sl_put_le64(out + i * SL_TIX_ENTRY + SL_TIX_TIME, (uint64_t)v[i].time_ms);
		sl_put_le32(out + i * SL_TIX_ENTRY + SL_TIX_REL, v[i].rel);
		sl_put_le32(out + i * SL_TIX_ENTRY + SL_TIX_POS, v[i].pos);
	}
}

/*
 * Reads a whole file's bytes into v (room for len / SL_TIX_ENTRY entries):
 * the count, or 0 when the bytes are not a valid index (the rules above),
 * in which case the caller scans.
 */
static inline size_t sl_tix_decode(struct sl_tix *v, const uint8_t *in, size_t len)
{
	if (len == 0 || len % SL_TIX_ENTRY)
		return 0;
	size_t n = len / SL_TIX_ENTRY;
	for (size_t i = 0; i < n; i++) {
		v[i].time_ms = (int64_t)sl_get_le64(in + i * SL_TIX_ENTRY + SL_TIX_TIME);
		v[i].rel = sl_get_le32(in + i * SL_TIX_ENTRY + SL_TIX_REL);
		v[i].pos = sl_get_le32(in + i * SL_TIX_ENTRY + SL_TIX_POS);
		if (i == 0 ? (v[i].rel != 0 || v[i].pos != 0)
		           : (v[i].rel <= v[i - 1].rel || v[i].pos <= v[i - 1].pos ||
		              v[i].time_ms < v[i - 1].time_ms))
			return 0;
	}
	return n;
}

#endif
