/*
 * xfer: the blocks that carry events and acks between reactors.
 *
 * A block is allocated from the pool of the reactor that fills it (its
 * `home`), crosses to another reactor through their SPSC ring, is consumed
 * there, and goes back home through the reverse ring marked SL_X_RETURN. So a
 * block is only ever touched by one thread at a time, and the ring's
 * release/acquire pair orders the hand-over of its contents.
 *
 * Threads: a block belongs to whichever reactor last popped it from a ring.
 */
#ifndef SL_REACTOR_XFER_H
#define SL_REACTOR_XFER_H

#include <stddef.h>
#include <stdint.h>

enum sl_xkind {
	SL_X_EVENTS = 1, /* events for partitions of the receiver */
	SL_X_ACKS = 2,   /* acks for connections of the receiver */
	SL_X_RETURN = 3, /* a block of the receiver's coming home */
};

/* One event handed to its partition's owner; its bytes are in data[]. */
struct sl_xev {
	uint64_t base_seq;
	uint64_t producer_id;
	uint32_t epoch;
	uint32_t conn, gen;
	uint32_t index;
	uint16_t topic;
	uint16_t resend_s; /* a resend first sent this many s ago (rounded up, saturated); 0: not */
	/* Where the event's id starts in its bytes, + 1; 0: no id, or past
	 * what 16 bits say (the owner then scans for it). The sender's scan
	 * found it: the owner need not look again (sl_partition_produce). */
	uint16_t id_at;
	/* Where its aggregate id (the key) starts, + 1, and its length, for
	 * the owner's hot-key count (hot/hot.h); key_at 0 with key_len 0: no
	 * key (an empty one), with SL_XEV_KEY_SCAN: past what 16 bits say
	 * (the owner scans). In what was padding: the block holds as many. */
	uint16_t key_at;
	uint32_t partition;
	uint32_t off, len;
	uint16_t key_len;
	uint16_t pad;
};

#define SL_XEV_KEY_SCAN UINT16_MAX

static inline uint16_t sl_xev_id_at(const uint8_t *ev, const uint8_t *id)
{
	size_t at = id ? (size_t)(id - ev) + 1 : 0;
	return at <= UINT16_MAX ? (uint16_t)at : 0;
}

/* Fills x's key_at and key_len for key[0..len) inside the event at ev. */
static inline void sl_xev_set_key(struct sl_xev *x, const uint8_t *ev, const char *key, size_t len)
{
	size_t at = len ? (size_t)((const uint8_t *)key - ev) + 1 : 0;
	if (at <= UINT16_MAX && len < SL_XEV_KEY_SCAN) {
		x->key_at = (uint16_t)at;
		x->key_len = (uint16_t)len;
	} else {
		x->key_at = 0;
		x->key_len = SL_XEV_KEY_SCAN;
	}
}

_Static_assert(sizeof(struct sl_xev) == 56, "an xev fills no more of a block than before");

/*
 * sl_xev.conn / sl_xack.conn / sl_ack_ref.conn with this bit: not a
 * connection slot but a pipeline stage (index in the low bits) on reactor
 * `core`, whose output the event is (reactor/pipe.c). Slots never reach
 * it (max_connections is far below 2^31).
 */
#define SL_CONN_PIPE 0x80000000u
/* With SL_CONN_PIPE: an event a projection emitted (reactor/proj.c); the
 * low bits are its sl_proj_part's emit_ref. */
#define SL_CONN_PROJ 0x40000000u
/* With SL_CONN_PIPE: a consumer group's commit record (reactor/group.c);
 * the low bits are the committing connection's slot, the ack's gen its
 * generation and base_seq the Commit's request id. */
#define SL_CONN_COMMIT 0x20000000u

/* One ack for a connection of the receiver. */
struct sl_xack {
	uint64_t base_seq;
	uint64_t offset;
	uint32_t conn, gen;
	uint32_t index;
	uint32_t partition;
	int32_t status; /* 0 or an ErrorCode of wire.proto */
	uint32_t len;   /* the event's bytes, credited back to the connection */
	uint16_t flags; /* SL_ACK_* (topic.h) */
	uint16_t topic;
};

/* 64 KiB of event bytes: about 600 events of 100 B, so one ring push and one
 * wake carry hundreds of events; 1024 descriptors cover smaller events. */
#define SL_XBLOCK_DATA (64u * 1024)
#define SL_XBLOCK_DESC 1024u

struct sl_xblock {
	uint8_t kind;
	uint8_t overflow; /* allocated past the pool: freed, not pooled, at home */
	uint16_t home;    /* reactor whose pool it belongs to */
	uint32_t n;       /* descriptors used */
	uint32_t used;    /* data bytes used */
	uint32_t cap;     /* data bytes available */
	struct sl_xblock *next_free;
	union {
		struct sl_xev ev[SL_XBLOCK_DESC];
		struct sl_xack ack[SL_XBLOCK_DESC];
	};
	uint8_t data[]; /* SL_XBLOCK_DATA for pool blocks; an event larger
	                 * than that travels alone in an overflow block */
};

#endif
