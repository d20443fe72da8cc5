/*
 * record_format: one committed offset as an event of the offsets topic
 * (SL_GROUP_TOPIC). This header is the one definition of its bytes.
 *
 * The event (sluice.v1.Event): type SL_GROUP_RECORD_TYPE; aggregate
 * "GROUP/TOPIC/PARTITION" (names never hold '/', the partition in decimal):
 * compaction keeps the latest event of each, which is the partition's
 * committed offset; no id (the offsets topic keeps no id window); data, 32
 * bytes, little endian:
 *
 *   offset size name                 what
 *        0    1 SL_GREC_VERSION      1
 *        1    3 (zero)
 *        4    4 SL_GREC_PARTITION    the partition again (checked against the aggregate)
 *        8    8 SL_GREC_OFFSET       the next offset the group reads
 *       16    4 SL_GREC_GENERATION   the generation the commit was made in
 *       20    4 (zero)
 *       24    8 SL_GREC_TIME_MS      when the server took it (ms, signed)
 *       32      SL_GREC_LEN
 *
 * A reader skips a record of a later version (a downgrade keeps what it
 * can read); bytes past SL_GREC_LEN are ignored.
 */
#ifndef SL_GROUP_RECORD_FORMAT_H
#define SL_GROUP_RECORD_FORMAT_H

#define SL_GROUP_RECORD_TYPE "sluice.offset_commit"

enum {
	SL_GREC_VERSION = 0,
	SL_GREC_PARTITION = 4,
	SL_GREC_OFFSET = 8,
	SL_GREC_GENERATION = 16,
	SL_GREC_TIME_MS = 24,
	SL_GREC_LEN = 32,
};

#define SL_GREC_V1 1u

#endif
