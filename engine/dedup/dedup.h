/*
 * dedup: producer sequence tracking, the server half of "exactly once".
 *
 * Every event carries its producer's id, epoch and sequence number. The
 * server spreads one producer's events over several partitions, so they
 * become durable in any order; this table remembers, per producer:
 *
 *   - the current epoch (a new hello bumps it and fences older sessions);
 *   - `next`, the lowest sequence not yet durable: every sequence below it
 *     is durable (the contiguous durable prefix);
 *   - a ring of W slots (W = the producer's credit window, a power of two).
 *     Slot `seq & (W-1)` holds the newest sequence of its residue class that
 *     the table knows, with its state (PENDING: accepted and appended, not yet
 *     durable; DURABLE) and its (partition, offset). Sequences in
 *     [next, next + W) may be accepted; a slot keeps a durable sequence below
 *     `next` until sequence + W is accepted, so a retry of any of the last W
 *     sequences is answered with its original partition and offset.
 *
 * Why a retry is never STALE for a well-behaved producer: a producer may have
 * at most W unacked events in flight (its credits), so while it has not seen
 * the ack of `s` it cannot have sent `s + W`, and the slot of `s` still holds
 * `s`. STALE (below `next`, forgotten) is reached only by a producer that
 * retries an event it already had acked, or whose window exceeds W. The
 * event is durable (it is below `next`), so writing it again would create a
 * duplicate: the server answers "duplicate, original offset unknown".
 *
 * Sequences form one space per producer id across epochs and topics; the
 * `partition` is a u32 the caller defines (it may encode the topic). Sequences
 * must be below SL_DEDUP_SEQ_LIMIT (2^63) so `next + W` never wraps.
 *
 * Recovery after kill -9: load the latest checkpoint (which carries the
 * caller's per-partition log positions as "marks"), then sl_dedup_observe()
 * every record read back from each partition's log from its mark on, in any
 * order across partitions. observe() is idempotent, so replaying records a
 * checkpoint already covered is harmless. The result equals the live state
 * once everything live was durable (PENDING entries die with the process,
 * which is right: they were never acked). Epochs bumped by a hello that wrote
 * nothing are not in the log; that is harmless because a crash closes every
 * session, and every new session says hello again and gets a fresh epoch.
 *
 * Acks: nothing is acknowledged before it is durable. A NEW event is acked
 * when its partition's log reports its offset durable (the caller then calls
 * sl_dedup_durable); a DUP_PENDING one is queued on the same condition; only
 * DUP_DURABLE and STALE are answered at once.
 *
 * Memory: per producer 24 * W bytes of slots plus a 32-byte header
 * (W = 8192: 192 KiB; W = 1024: 24 KiB), allocated at hello / first observe,
 * never per event: check, pending and durable never allocate. The table
 * itself is 8 bytes per bucket, the next power of two >= 2 * max_producers.
 * A checkpoint takes at most 24 bytes per durable slot plus 24 per producer.
 * sl_dedup_expire() forgets producers idle for longer than a given time; a
 * forgotten producer that says hello again starts at next = 0 (Welcome's
 * next_sequence tells the client so).
 *
 * Ownership: sl_dedup_create() returns a table the caller frees with
 * sl_dedup_destroy(). Nothing returned points into the table.
 * Threads: a table belongs to ONE thread at a time; no function is
 * thread-safe. (How tables are sharded across reactors is the integration's
 * choice; one table per producer-owning core fits the shard-per-core shape.)
 */
#ifndef SL_DEDUP_H
#define SL_DEDUP_H

#include <stddef.h>
#include <stdint.h>

#define SL_DEDUP_SEQ_LIMIT (UINT64_C(1) << 63)
#define SL_DEDUP_WINDOW_MAX (UINT32_C(1) << 24)
#define SL_DEDUP_CKPT_MAGIC 0x44444c53u /* "SLDD" little endian */
#define SL_DEDUP_CKPT_VERSION 1u

struct sl_dedup_opts {
	uint32_t window;        /* W: power of two, 1..SL_DEDUP_WINDOW_MAX; 0 = 8192 */
	uint32_t max_producers; /* hello/observe beyond it: -ENOSPC; 0 = 4096 */
};

struct sl_dedup;

/* Verdicts of sl_dedup_check (its non-negative return values). */
enum sl_dedup_verdict {
	SL_DEDUP_NEW = 0,       /* append it, then sl_dedup_pending() */
	SL_DEDUP_DUP_DURABLE,   /* already durable at (*partition, *offset): ack it */
	SL_DEDUP_DUP_PENDING,   /* being written at (*partition, *offset): ack when durable */
	SL_DEDUP_STALE,         /* durable long ago, location forgotten: a duplicate */
};

int sl_dedup_create(const struct sl_dedup_opts *opts, struct sl_dedup **out);
void sl_dedup_destroy(struct sl_dedup *t);

/* The caller's coarse clock (e.g. once per reactor loop), stamped on a
 * producer by hello and pending; sl_dedup_expire compares against it. */
void sl_dedup_set_clock(struct sl_dedup *t, uint64_t now_ns);

/*
 * A producer session starts. want_id 0 asks for a new id (never one the table
 * knows). A known id gets epoch + 1, which fences every older session; an
 * unknown one starts at epoch 1 and next 0. Returns 0 with *id, *epoch and
 * *next (Welcome's next_sequence), -ENOSPC when the table is full, -EOVERFLOW
 * when the epoch would wrap, -ENOMEM.
 */
int sl_dedup_hello(struct sl_dedup *t, uint64_t want_id, uint64_t *id, uint32_t *epoch,
		   uint64_t *next);

/*
 * Admission of event `seq` of session (id, epoch). No side effect. Returns a
 * verdict (>= 0); for DUP_* *partition and *offset say where the event is,
 * for STALE they are UINT32_MAX and UINT64_MAX. Errors: -ENOENT (no hello for
 * this id), -SL_EFENCED (epoch is not the current one), -SL_ESEQ_GAP
 * (seq >= next + W, or seq >= SL_DEDUP_SEQ_LIMIT: refuse the event).
 */
int sl_dedup_check(const struct sl_dedup *t, uint64_t id, uint32_t epoch, uint64_t seq,
		   uint32_t *partition, uint64_t *offset);

/* After appending a NEW event at (partition, offset). -ENOENT, -SL_ESEQ_GAP
 * (outside [next, next + W)), -EEXIST (already pending or durable). */
int sl_dedup_pending(struct sl_dedup *t, uint64_t id, uint64_t seq, uint32_t partition,
		     uint64_t offset);

/*
 * The event is durable at (partition, offset): advances `next` over the
 * contiguous durable prefix. No epoch: fencing is decided at admission, and an
 * event accepted from an older session still becomes durable. Idempotent for
 * a sequence already durable (its first location is kept). -ENOENT,
 * -SL_ESEQ_GAP (seq >= next + W).
 */
int sl_dedup_durable(struct sl_dedup *t, uint64_t id, uint64_t seq, uint32_t partition,
		     uint64_t offset);

/*
 * Recovery: one record read back from a log, in any order. Creates the
 * producer if unknown, raises its epoch to `epoch`, records the sequence as
 * durable. A sequence at or beyond next + W proves every sequence up to
 * seq - W was durable when it was accepted, so `next` moves to seq - W + 1.
 * -ENOSPC, -ENOMEM, -EINVAL (id 0, seq >= SL_DEDUP_SEQ_LIMIT).
 */
int sl_dedup_observe(struct sl_dedup *t, uint64_t id, uint32_t epoch, uint64_t seq,
		     uint32_t partition, uint64_t offset);

/* Current epoch and next of a producer; -ENOENT. */
int sl_dedup_get(const struct sl_dedup *t, uint64_t id, uint32_t *epoch, uint64_t *next);

/* Producers known. */
uint32_t sl_dedup_count(const struct sl_dedup *t);

/* Forgets producers last stamped before older_than_ns and with nothing
 * pending. Returns how many were forgotten. */
uint32_t sl_dedup_expire(struct sl_dedup *t, uint64_t older_than_ns);

/*
 * Checkpoint: little-endian, CRC32C-checked, versioned.
 *   header  u32 magic "SLDD", u32 version, u32 window, u32 nmarks,
 *           u64 nproducers, u64 next_assign, u64 total length
 *   marks   nmarks x u64 (the caller's, e.g. per-partition log positions)
 *   per producer, ascending id: u64 id, u64 next, u32 epoch, u32 n,
 *           n x { u64 seq, u64 offset, u32 partition, u32 zero } (DURABLE slots)
 *   trailer u32 crc32c of everything before it
 * The same state always writes the same bytes.
 */
size_t sl_dedup_checkpoint_bound(const struct sl_dedup *t, uint32_t nmarks);
/* Writes into buf; *len is the byte count. -ENOSPC when cap is too small,
 * -ENOMEM. */
int sl_dedup_checkpoint_write(const struct sl_dedup *t, const uint64_t *marks, uint32_t nmarks,
			      void *buf, size_t cap, size_t *len);
/*
 * Loads a checkpoint into an EMPTY table (-EBUSY otherwise); up to max_marks
 * marks are copied out, *nmarks says how many it held. A bad, truncated or
 * unknown-version checkpoint returns -SL_ECORRUPT with `err` saying what was
 * wrong; -ENOSPC when it holds more producers or marks than fit. On any
 * error the table is left empty: the caller replays the logs instead. The
 * checkpoint's window may differ from the table's.
 */
int sl_dedup_checkpoint_read(struct sl_dedup *t, const void *buf, size_t len, uint64_t *marks,
			     uint32_t max_marks, uint32_t *nmarks, char *err, size_t errlen);

#endif
