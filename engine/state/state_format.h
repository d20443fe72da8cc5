/*
 * The state store's records (state/state.h), defined once. One RocksDB
 * database per projection; its keys, byte-ordered:
 *
 *   'k' partition(u32 big-endian) KEY   the plugin's value bytes, as given
 *   'm' partition(u32 big-endian)       the partition's mark, below
 *
 * Big-endian partitions keep one partition's keys contiguous, so an
 * iteration is one range. A mark, little-endian:
 *
 *   0  u32 magic "SLSM"      8  u64 next: the first log offset not in the state
 *   4  u32 version (1)      16  u64 emit_seq: the next emitted event's sequence
 *                           24  u64 gen: commits of this partition so far
 *                           32  i64 wall-clock ms of the commit
 *
 * A mark of another magic, version or size refuses the partition's open (a
 * store of something else, or of a newer sluiced).
 */
#ifndef SL_STATE_FORMAT_H
#define SL_STATE_FORMAT_H

#define SL_STATE_META_MAGIC   0x4d534c53u /* "SLSM" */
#define SL_STATE_META_VERSION 1u

#define SL_STATE_META_OFF_MAGIC    0
#define SL_STATE_META_OFF_VERSION  4
#define SL_STATE_META_OFF_NEXT     8
#define SL_STATE_META_OFF_EMIT_SEQ 16
#define SL_STATE_META_OFF_GEN      24
#define SL_STATE_META_OFF_MS       32
#define SL_STATE_META_BYTES        40

/* The tag and partition before every key. */
#define SL_STATE_PREFIX_BYTES 5
#define SL_STATE_TAG_KEY      'k'
#define SL_STATE_TAG_MARK     'm'

#endif
