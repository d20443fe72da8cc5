/*
 * The leader-epoch file (`leader-epochs` in a partition's folder): the one
 * definition of its bytes, used by log/epochs.c, its unit test and the
 * fuzz target. Integers little endian.
 *
 *   offset size name               what
 *        0    4 SL_EPOCHS_MAGIC    'SLE1' (SL_EPOCHS_MAGIC_V)
 *        4    4 SL_EPOCHS_CRC      crc32c of [SL_EPOCHS_COUNT, end of file)
 *        8    4 SL_EPOCHS_COUNT    entries that follow
 *       12    . entries, SL_EPOCHS_ENTRY bytes each, epochs strictly
 *               increasing, start offsets not decreasing:
 *                 +0 4 SL_EPOCHS_E_EPOCH  leader epoch
 *                 +4 8 SL_EPOCHS_E_START  first offset that epoch's leader wrote
 *
 * Pure definitions; any thread.
 */
#ifndef SL_LOG_EPOCHS_FORMAT_H
#define SL_LOG_EPOCHS_FORMAT_H

#define SL_EPOCHS_FILE    "leader-epochs"
#define SL_EPOCHS_MAGIC_V 0x31454c53u /* "SLE1" little endian */

enum {
	SL_EPOCHS_MAGIC = 0,
	SL_EPOCHS_CRC = 4,
	SL_EPOCHS_COUNT = 8,
	SL_EPOCHS_HDR = 12,
	SL_EPOCHS_CRC_FROM = SL_EPOCHS_COUNT,
};
enum {
	SL_EPOCHS_E_EPOCH = 0,
	SL_EPOCHS_E_START = 4,
	SL_EPOCHS_ENTRY = 12,
};
/* A file holds at most this many entries (one per leader change): bounds
 * what a damaged count can make the loader allocate. */
#define SL_EPOCHS_MAX (1u << 20)

#endif
