/*
 * checkpoint_format: the producer checkpoint of a partition
 * (`<upto, 20 digits>.dedup` in the partition's folder): the sequence table
 * restricted to offsets below `upto` (dedup.h). This header is the one
 * definition of its bytes; dedup.c and the tests use these names.
 *
 * Little endian, versioned, CRC32C-checked:
 *
 *   header (SL_CKPT_HDR = 48 bytes)
 *     offset size name              what
 *          0    4 SL_CKPT_MAGIC     "SLDD" (SL_DEDUP_CKPT_MAGIC)
 *          4    4 SL_CKPT_VERSION   3 (SL_DEDUP_CKPT_VERSION)
 *          8    4 SL_CKPT_WINDOW    the writer's window W, a power of two
 *         12    4 SL_CKPT_RESERVED  zero
 *         16    8 SL_CKPT_UPTO      every entry's offset is below this
 *         24    8 SL_CKPT_NPROD     producer records that follow
 *         32    8 SL_CKPT_LENGTH    the whole file's bytes, trailer included
 *         40    8 SL_CKPT_FORGOT    newest last time (ms) of a producer the
 *                                   table forgot (dedup.h), 0: none
 *   per producer, ascending id (SL_CKPT_PROD = 32 bytes)
 *          0    8 SL_CKPT_P_ID      producer id (never 0)
 *          8    8 SL_CKPT_P_KEPT    oldest sequence the table still answers
 *         16    4 SL_CKPT_P_EPOCH   its epoch
 *         20    4 SL_CKPT_P_N       entries that follow (1..W)
 *         24    8 SL_CKPT_P_LAST_MS when it last recorded here (ms)
 *     n entries, seq and offset both strictly increasing (SL_CKPT_ENTRY = 16)
 *          0    8 SL_CKPT_E_SEQ     sequence
 *          8    8 SL_CKPT_E_OFFSET  its offset in the partition
 *   trailer (SL_CKPT_TRAILER = 4 bytes)
 *          0    4                   crc32c of every byte before it
 *
 * A producer's `last` is its last entry's seq. The same state and `upto`
 * always write the same bytes. Version 2 (no FORGOT, no P_LAST_MS: a
 * 40-byte header, 24-byte producers) is still read: its producers' times
 * count as the table's newest, so they are forgotten last.
 *
 * Pure definitions; any thread.
 */
#ifndef SL_DEDUP_CHECKPOINT_FORMAT_H
#define SL_DEDUP_CHECKPOINT_FORMAT_H

#define SL_DEDUP_CKPT_MAGIC   0x44444c53u /* "SLDD" little endian */
#define SL_DEDUP_CKPT_VERSION 3u          /* 2 had no times; 1 was the per-producer window table */

enum {
	SL_CKPT_MAGIC = 0,
	SL_CKPT_VERSION = 4,
	SL_CKPT_WINDOW = 8,
	SL_CKPT_RESERVED = 12,
	SL_CKPT_UPTO = 16,
	SL_CKPT_NPROD = 24,
	SL_CKPT_LENGTH = 32,
	SL_CKPT_HDR_V2 = 40,
	SL_CKPT_FORGOT = 40,
	SL_CKPT_HDR = 48,

	SL_CKPT_P_ID = 0,
	SL_CKPT_P_KEPT = 8,
	SL_CKPT_P_EPOCH = 16,
	SL_CKPT_P_N = 20,
	SL_CKPT_PROD_V2 = 24,
	SL_CKPT_P_LAST_MS = 24,
	SL_CKPT_PROD = 32,

	SL_CKPT_E_SEQ = 0,
	SL_CKPT_E_OFFSET = 8,
	SL_CKPT_ENTRY = 16,

	SL_CKPT_TRAILER = 4,
};

#endif
