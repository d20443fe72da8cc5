/*
 * snap_format: a projection's snapshot file
 * (`<generation, 20 digits>.snap` in the projection's folder for a
 * partition). This header is the one definition of its bytes; snap.c and
 * the tests use these names.
 *
 * Little endian, versioned, CRC32C-checked:
 *
 *   header (SL_SNAP_HDR = 40 bytes)
 *     offset size name                 what
 *          0    4 SL_SNAP_OFF_MAGIC    "SLPS" (SL_SNAP_MAGIC)
 *          4    4 SL_SNAP_OFF_VERSION  1 (SL_SNAP_VERSION)
 *          8    4 SL_SNAP_OFF_NMARKS   marks that follow (<= SL_SNAP_MAX_MARKS)
 *         12    4 SL_SNAP_OFF_RESERVED zero
 *         16    8 SL_SNAP_OFF_GEN      generation; equals the file's name
 *         24    8 SL_SNAP_OFF_PLEN     payload bytes
 *         32    8 SL_SNAP_OFF_WRITTEN  when written, wall clock, ms (signed)
 *   n_marks marks (SL_SNAP_MARK = 16 bytes)
 *          0    4 SL_SNAP_M_PARTITION  partition (or SL_SNAP_MARK_EMIT_SEQ)
 *          4    4 SL_SNAP_M_RESERVED   zero
 *          8    8 SL_SNAP_M_OFFSET     first offset not in the model
 *   payload (the plugin's snapshot bytes)
 *   trailer (SL_SNAP_TRAILER = 4 bytes): crc32c of every byte before it
 *
 * A file whose length is not HDR + n_marks * MARK + plen + TRAILER is torn.
 *
 * Pure definitions; any thread.
 */
#ifndef SL_PROJECT_SNAP_FORMAT_H
#define SL_PROJECT_SNAP_FORMAT_H

#define SL_SNAP_MAGIC     0x53504c53u /* "SLPS" little endian */
#define SL_SNAP_VERSION   1u
#define SL_SNAP_HDR       40u
#define SL_SNAP_MAX_MARKS 65536u

enum {
	SL_SNAP_OFF_MAGIC = 0,
	SL_SNAP_OFF_VERSION = 4,
	SL_SNAP_OFF_NMARKS = 8,
	SL_SNAP_OFF_RESERVED = 12,
	SL_SNAP_OFF_GEN = 16,
	SL_SNAP_OFF_PLEN = 24,
	SL_SNAP_OFF_WRITTEN = 32,

	SL_SNAP_M_PARTITION = 0,
	SL_SNAP_M_RESERVED = 4,
	SL_SNAP_M_OFFSET = 8,
	SL_SNAP_MARK = 16,

	SL_SNAP_TRAILER = 4,
};

#endif
