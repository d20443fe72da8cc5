/*
 * journal_format: the bytes of a reactor's journal file, the one definition
 * (the writer journal.c, recovery jrec.c, the unit test and the fuzz target
 * use these names, never the numbers).
 *
 * A journal is a folder `<data_dir>/journal/<reactor>/` of files named by a
 * sequence number (`00000000000000000007.jnl`), written one after the other.
 * A file holds frames back to back from byte 0, each 8-byte aligned; after
 * the last frame the file is zero (pre-allocated) or ends. One frame is one
 * group commit of the reactor: one write, one fdatasync. Integers are little
 * endian.
 *
 * Frame header (SL_JF_HDR bytes):
 *   offset size name            what
 *        0    4 SL_JF_MAGIC     'SLJ1' (SL_JF_MAGIC_V)
 *        4    4 SL_JF_CRC       crc32c of [SL_JF_CRC_FROM, SL_JF_HDR + len)
 *        8    4 SL_JF_LEN       bytes of chunks after the header (multiple of 8)
 *       12    4 SL_JF_CHUNKS    chunks in the frame (>= 1)
 *       16    8 SL_JF_SEQ       the frame's number: one more than the previous
 *                               frame of the same file
 *       24    8 SL_JF_RESERVED  zero
 *
 * Chunk (SL_JC_HDR bytes of header): the bytes one partition's log handed
 * to this group commit, exactly as they go to its segment:
 *        0    4 SL_JC_KEY_LEN   bytes of the key (1..SL_JC_KEY_MAX)
 *        4    4 SL_JC_LEN       bytes of record batches (multiple of 8, > 0)
 *        8    8 SL_JC_GEN       the log's truncation generation when it wrote
 *                                 the chunk (truncated_format.h; 0 before its
 *                                 first truncation, and in files written
 *                                 before the field had a meaning)
 *       16    . the key: the partition's folder relative to data_dir
 *                 ("<topic>/<partition>"), zero-padded to 8
 *        .    . SL_JC_LEN bytes of record batches (log/batch.h), whole
 *                 and sealed (checksummed), consecutive offsets
 *
 * Only one frame of a journal is in flight at a time (written, its
 * fdatasync not completed) and none of it is acked before, so only a file's
 * last frame can be torn: a bad frame followed by a valid one is
 * corruption (jrec.c).
 */
#ifndef SL_LOG_JOURNAL_FORMAT_H
#define SL_LOG_JOURNAL_FORMAT_H

#define SL_JF_MAGIC_V 0x314a4c53u /* "SLJ1" little endian */

enum {
	SL_JF_MAGIC = 0,
	SL_JF_CRC = 4,
	SL_JF_LEN = 8,
	SL_JF_CHUNKS = 12,
	SL_JF_SEQ = 16,
	SL_JF_RESERVED = 24,
	SL_JF_HDR = 32,
	SL_JF_CRC_FROM = SL_JF_LEN,
};

enum {
	SL_JC_KEY_LEN = 0,
	SL_JC_LEN = 4,
	SL_JC_GEN = 8,
	SL_JC_HDR = 16,
};

/* A key is a folder name under data_dir: a topic name and a number. */
#define SL_JC_KEY_MAX 512u
/* A frame is at most this large (a group commit's bytes are far below:
 * the credits bound what waits for a sync); recovery refuses larger. */
#define SL_JF_MAX_LEN (1u << 30)

#endif
