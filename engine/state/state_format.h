/*
 * The state store's records (state/state.h), defined once. One RocksDB
 * database per projection; its keys, byte-ordered:
 *
 *   'k' space(u32 big-endian) KEY   the plugin's value bytes, as given
 *   'l' partition(u32 big-endian)   which space is the partition's live model,
 *                                   below (absent: the partition's own number)
 *   'm' space(u32 big-endian)       the space's mark, below
 *
 * A partition P has two key spaces: P, and P | SL_STATE_SPACE_ALT (the top
 * bit; partitions are < 4096). One holds the live model, the other a
 * rebuild's (sluice projection rebuild), made beside it in the same store
 * so that a swap is one small write (sl_state_part_swap: the live record
 * names the rebuilt space, the old space's keys and mark are deleted, in
 * one durable write) rather than a copy of the model. Big-endian spaces
 * keep one space's keys contiguous, so an iteration is one range and a
 * space is dropped with one range deletion. A live record, little-endian:
 *
 *   0  u32 magic "SLSL"      4  u32 space: P or P | SL_STATE_SPACE_ALT
 *
 * Any other value refuses the partition's open. A mark, little-endian:
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
#define SL_STATE_TAG_LIVE     'l'

#define SL_STATE_SPACE_ALT 0x80000000u

#define SL_STATE_LIVE_MAGIC     0x4c534c53u /* "SLSL" */
#define SL_STATE_LIVE_OFF_MAGIC 0
#define SL_STATE_LIVE_OFF_SPACE 4
#define SL_STATE_LIVE_BYTES     8

#endif
