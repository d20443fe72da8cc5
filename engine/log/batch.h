/*
 * batch: the record batch, the unit a segment file (`<base>.log`) is made of.
 * This header is the one definition of its bytes: the writer (commit.c),
 * recovery (recover.c), the views (view.c), the unit test and the segment
 * fuzz target all use these names, never the numbers.
 *
 * Batches lie back to back from byte 0 of a segment, each starting on an
 * 8-byte boundary (SL_LOG_ALIGN; zero padding between them). Integers are
 * little endian.
 *
 *   offset size name                  what
 *        0    4 SL_BATCH_MAGIC        'SLB2' (SL_LOG_MAGIC); 'SLB1' in
 *                                     segments written before leader epochs
 *                                     (SL_LOG_MAGIC_V1: read, never written)
 *        4    4 SL_BATCH_CRC          crc32c of [SL_BATCH_CRC_FROM, header + len)
 *        8    8 SL_BATCH_BASE_OFFSET  offset of the first event
 *       16    4 SL_BATCH_COUNT        events in the batch (>= 1)
 *       20    4 SL_BATCH_LEN          bytes of records after the header
 *       24    8 SL_BATCH_TIME_MS      append time, server clock, ms (signed)
 *       32    8 SL_BATCH_PRODUCER     producer id
 *       40    4 SL_BATCH_EPOCH        producer epoch
 *       44    4 SL_BATCH_UNIT_START   segment position where the group-commit
 *                                     write holding this batch began
 *       48    8 SL_BATCH_BASE_SEQ     sequence of the first event
 *       56    4 SL_BATCH_LEADER_EPOCH the leader epoch the batch was appended
 *                                     in (0: a partition not replicated)
 *       60    4 SL_BATCH_RESERVED     zero
 *       64    . records (SL_LOG_BATCH_HDR = 64 bytes of header; an 'SLB1'
 *               batch has no leader epoch: its records start at 56,
 *               SL_LOG_BATCH_HDR_V1, and it reads as leader epoch 0)
 *
 * A record: varint size, varint (seq - base_seq), then `size` bytes of the
 * encoded event. `count` records fill exactly `len` bytes. Varints are
 * base/varint.h's (strict: at most 10 bytes, value within 64 bits).
 *
 * unit_start lets recovery tell a torn tail from corruption (log.h); the
 * checksum covers it, so it is stamped before the checksum is taken, when
 * the write is issued. The leader epoch is known when the batch is built
 * (the partition's owner sets it, sl_log_set_leader_epoch) and is covered
 * by the checksum; a follower's copy keeps it, byte for byte.
 *
 * Whoever walks batches takes each one's header size from its magic
 * (sl_batch_hdr_size, sl_batch_span_at / _of), never a constant: a log
 * may hold both kinds, old segments and new ones after an upgrade.
 *
 * Pure definitions and functions on caller-owned bytes; any thread.
 */
#ifndef SL_LOG_BATCH_H
#define SL_LOG_BATCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/base.h"

#define SL_LOG_MAGIC    0x32424c53u /* "SLB2" little endian */
#define SL_LOG_MAGIC_V1 0x31424c53u /* "SLB1": before leader epochs */
#define SL_LOG_ALIGN    8u

enum {
	SL_BATCH_MAGIC = 0,
	SL_BATCH_CRC = 4,
	SL_BATCH_BASE_OFFSET = 8,
	SL_BATCH_COUNT = 16,
	SL_BATCH_LEN = 20,
	SL_BATCH_TIME_MS = 24,
	SL_BATCH_PRODUCER = 32,
	SL_BATCH_EPOCH = 40,
	SL_BATCH_UNIT_START = 44,
	SL_BATCH_BASE_SEQ = 48,
	SL_BATCH_LEADER_EPOCH = 56,
	SL_BATCH_RESERVED = 60,
	SL_BATCH_CRC_FROM = SL_BATCH_BASE_OFFSET,
};
#define SL_LOG_BATCH_HDR    64u /* what the writer writes, and the largest */
#define SL_LOG_BATCH_HDR_V1 56u

/* The header size a batch starting with `magic` has; 0: not a batch. */
static inline uint32_t sl_batch_hdr_size(uint32_t magic)
{
	return magic == SL_LOG_MAGIC      ? SL_LOG_BATCH_HDR
	       : magic == SL_LOG_MAGIC_V1 ? SL_LOG_BATCH_HDR_V1
	                                  : 0;
}

/* One batch holds at most this many record bytes: bounds a reader's buffer.
 * Events up to max_frame_bytes fit (a batch this size holds one). */
#define SL_BATCH_MAX (8u << 20)
/* A record's overhead at most: its two varints. */
#define SL_BATCH_REC_MAX_OVERHEAD (2u * 10u)

/* A batch header, decoded. */
struct sl_bhdr {
	uint64_t base_offset;
	uint32_t count, len, epoch, unit_start;
	int64_t time_ms;
	uint64_t producer_id, base_seq;
	uint32_t hdr_len;      /* SL_LOG_BATCH_HDR, or _V1 for an 'SLB1' batch */
	uint32_t leader_epoch; /* 0 in an 'SLB1' batch */
};

/* Decodes the header at h (SL_LOG_BATCH_HDR_V1 bytes, SL_LOG_BATCH_HDR when
 * the magic says 'SLB2'; the checksum is not checked here, an unknown magic
 * decodes as an 'SLB2' header: callers check the magic first). */
static inline void sl_batch_hdr_decode(const uint8_t *h, struct sl_bhdr *b)
{
	bool v1 = sl_get_le32(h + SL_BATCH_MAGIC) == SL_LOG_MAGIC_V1;
	b->hdr_len = v1 ? SL_LOG_BATCH_HDR_V1 : SL_LOG_BATCH_HDR;
	b->leader_epoch = v1 ? 0 : sl_get_le32(h + SL_BATCH_LEADER_EPOCH);
	b->base_offset = sl_get_le64(h + SL_BATCH_BASE_OFFSET);
	b->count = sl_get_le32(h + SL_BATCH_COUNT);
	b->len = sl_get_le32(h + SL_BATCH_LEN);
	b->time_ms = (int64_t)sl_get_le64(h + SL_BATCH_TIME_MS);
	b->producer_id = sl_get_le64(h + SL_BATCH_PRODUCER);
	b->epoch = sl_get_le32(h + SL_BATCH_EPOCH);
	b->unit_start = sl_get_le32(h + SL_BATCH_UNIT_START);
	b->base_seq = sl_get_le64(h + SL_BATCH_BASE_SEQ);
}

/* Encodes every field but the checksum (sl_batch_seal takes it), as an
 * 'SLB2' batch (hdr_len is not read). */
static inline void sl_batch_hdr_encode(uint8_t *h, const struct sl_bhdr *b)
{
	sl_put_le32(h + SL_BATCH_MAGIC, SL_LOG_MAGIC);
	sl_put_le32(h + SL_BATCH_CRC, 0);
	sl_put_le64(h + SL_BATCH_BASE_OFFSET, b->base_offset);
	sl_put_le32(h + SL_BATCH_COUNT, b->count);
	sl_put_le32(h + SL_BATCH_LEN, b->len);
	sl_put_le64(h + SL_BATCH_TIME_MS, (uint64_t)b->time_ms);
	sl_put_le64(h + SL_BATCH_PRODUCER, b->producer_id);
	sl_put_le32(h + SL_BATCH_EPOCH, b->epoch);
	sl_put_le32(h + SL_BATCH_UNIT_START, b->unit_start);
	sl_put_le64(h + SL_BATCH_BASE_SEQ, b->base_seq);
	sl_put_le32(h + SL_BATCH_LEADER_EPOCH, b->leader_epoch);
	sl_put_le32(h + SL_BATCH_RESERVED, 0);
}

/* v rounded up to SL_LOG_ALIGN. */
static inline uint64_t sl_batch_align(uint64_t v)
{
	return (v + SL_LOG_ALIGN - 1) & ~(uint64_t)(SL_LOG_ALIGN - 1);
}

/* Bytes a batch takes in its segment, padding included: the next batch
 * starts this far after it. From its decoded header, or from its bytes at h
 * (magic and length read there: an unknown magic counts as 'SLB2'). */
static inline uint64_t sl_batch_span_of(const struct sl_bhdr *b)
{
	return sl_batch_align((uint64_t)b->hdr_len + b->len);
}

static inline uint64_t sl_batch_span_at(const uint8_t *h)
{
	uint32_t hdr = sl_get_le32(h + SL_BATCH_MAGIC) == SL_LOG_MAGIC_V1 ? SL_LOG_BATCH_HDR_V1
	                                                                  : SL_LOG_BATCH_HDR;
	return sl_batch_align((uint64_t)hdr + sl_get_le32(h + SL_BATCH_LEN));
}

/* CRC32C (Castagnoli) with the SSE4.2 instruction, through ISA-L. */
uint32_t sl_crc32c(uint32_t crc, const void *buf, size_t len);

/* Stamps unit_start into the whole batch at h and takes its checksum. */
void sl_batch_seal(uint8_t *h, uint32_t unit_start);

/* Checks a whole batch in memory (avail bytes from its start): magic,
 * bounds, checksum, and that its records parse to exactly `count` events.
 * Fills *b. */
bool sl_batch_valid(const uint8_t *p, size_t avail, struct sl_bhdr *b);

#endif
