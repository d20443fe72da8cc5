/*
 * The truncation record (`truncated` in a partition's folder): the one
 * definition of its bytes, used by log/truncate.c, its unit test and the
 * fuzz target. Integers little endian. Written by sl_log_truncate (tmp,
 * fdatasync, rename, folder fsync) before the log is cut; read at open.
 *
 *   offset size name               what
 *        0    4 SL_TRUNC_MAGIC     'SLT1' (SL_TRUNC_MAGIC_V)
 *        4    4 SL_TRUNC_CRC       crc32c of [SL_TRUNC_CRC_FROM, SL_TRUNC_SIZE)
 *        8    8 SL_TRUNC_GEN       the log's truncation generation (>= 1): one
 *                                  more than the record it replaced
 *       16    8 SL_TRUNC_OFFSET    where that truncation cut the log (for
 *                                  messages: the rule needs only the
 *                                  generation, log.h)
 *
 * The journal's chunks carry the generation of the log that wrote them
 * (journal_format.h, SL_JC_GEN): recovery drops a log's chunks whose
 * generation is below its record's (log.h, truncation).
 *
 * Pure definitions; any thread.
 */
#ifndef SL_LOG_TRUNCATED_FORMAT_H
#define SL_LOG_TRUNCATED_FORMAT_H

#define SL_TRUNC_FILE    "truncated"
#define SL_TRUNC_MAGIC_V 0x31544c53u /* "SLT1" little endian */

enum {
	SL_TRUNC_MAGIC = 0,
	SL_TRUNC_CRC = 4,
	SL_TRUNC_GEN = 8,
	SL_TRUNC_OFFSET = 16,
	SL_TRUNC_SIZE = 24,
	SL_TRUNC_CRC_FROM = SL_TRUNC_GEN,
};

#endif
