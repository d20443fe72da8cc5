/*
 * dedup: producer sequence tracking, the server half of "exactly once".
 *
 * Two parts:
 *
 * 1. struct sl_dedup, one per PARTITION, owned by the partition's reactor
 *    thread and changed synchronously with the partition's appends. Per
 *    producer id it keeps the highest epoch seen here, `last` (the highest
 *    sequence recorded here) and a FIFO of (seq, offset) of the producer's
 *    events recorded here, in record order, so seq and offset both increase
 *    along it. The FIFO holds every record with seq >= `kept`, where
 *    kept >= last - W + 1 (W: the window, the most unacknowledged events a
 *    producer may have in flight). Why that suffices: a retried event maps
 *    to the partition of its original (same key, same partition count), and
 *    a producer that has sent `last` holds acks for every sequence up to
 *    last - W, so it never retries those.
 *
 *    Verdicts of a sequence `s` of a known producer, in this partition:
 *      s > last            NEW: never seen (one producer's events reach a
 *                          partition in sequence order: one TCP stream, FIFO
 *                          rings), append it, then sl_dedup_record();
 *      s in the FIFO       DUP: the original's offset is known;
 *      s < kept            STALE: it may have been stored and forgotten;
 *                          storing it again could duplicate it;
 *      otherwise           -SL_ESEQ_GAP: kept <= s < last and not in the
 *                          FIFO, so it was NEVER stored here, yet later
 *                          sequences were: storing it now would break the
 *                          producer's order (it was refused or skipped
 *                          earlier). Refused. base.h has no code of its own
 *                          for "out of order"; SL_ESEQ_GAP is the nearest.
 *    (Why `kept` and not "older than the FIFO's head": a producer whose
 *    first event here was 1000 never stored 5 here; answering STALE, i.e.
 *    "duplicate", would acknowledge an event that is stored nowhere.)
 *
 *    Recovery of a partition uses its own log only: read its latest
 *    checkpoint (state restricted to offsets below a durable mark `upto`)
 *    into an empty table, then sl_dedup_record() every record read back from
 *    the log at offsets >= upto, in offset order. The result answers every
 *    query like the live table did once the same records are in it (the unit
 *    test checks this for every sequence of every producer).
 *
 *    Memory: a producer costs 64 bytes in the table (open addressing, grown
 *    by doubling up to the next power of two >= 2 * max_producers) plus its
 *    FIFO: 16 bytes an entry, a power of two from 8 (or W if smaller) up to
 *    W, grown by doubling when full. Entries below `kept` are dropped in
 *    bulk when the FIFO fills (not one per record: that put a cache miss
 *    into every append), and it doubles while more than half is live after
 *    a drop, so it holds at most twice the live entries and never more
 *    than W. At most W entries are ever live, so in steady state record()
 *    never allocates.
 *
 *    Forgetting (issue 20). The table holds at most max_producers: when a
 *    new one would pass it, the least recently used eighth is forgotten in
 *    one sweep; and sl_dedup_expire() forgets producers idle for the
 *    topic's producer_expiry. Each producer keeps `last_ms`, the table's
 *    time (sl_dedup_set_time: the reactor's tick live, each batch's time in
 *    a replay) at its last record, and the table keeps `forgot_ms`, the
 *    newest last_ms of any producer it forgot. So: every producer that
 *    recorded here after forgot_ms is still in the table. An unknown
 *    producer's event sent for the first time is NEW, as before (it cannot
 *    have been stored); a RESENT one whose first sending may predate
 *    forgot_ms may have been stored and forgotten: sl_dedup_resend_check()
 *    says -SL_EPRODUCER_EXPIRED and it is refused, never stored untracked.
 *    The caller learns "first sent at or after since_ms" from the client
 *    (Produce.resend_age_ms) less a margin for the tick. sl_dedup_prepare()
 *    before an append makes the record() after it unable to fail, so an
 *    event is either tracked or refused (-ENOMEM: ERR_UNTRACKED, retryable).
 *    forgot_ms and every last_ms are in the checkpoint.
 *
 * 2. struct sl_producers, the producer registry, one per SERVER: ids and
 *    the current epoch of each producer, shared by every reactor. See its
 *    own block below.
 *
 * Ownership: sl_dedup_create() / sl_producers_open() return objects the
 * caller frees with sl_dedup_destroy() / sl_producers_close(). Nothing
 * returned points into an sl_dedup table. A struct sl_producer returned by
 * sl_producers_hello() stays valid (same address) until sl_producers_close().
 * Threads: an sl_dedup belongs to ONE thread (the partition's owner, or the
 * main thread during recovery); no sl_dedup function is thread-safe, check()
 * included (it updates a lookup cache). The registry's rules are below.
 */
#ifndef SL_DEDUP_H
#define SL_DEDUP_H

#include <stddef.h>
#include <stdint.h>

#include "dedup/checkpoint_format.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Sequences are below 2^63, so last + W and the like never wrap. */
#define SL_DEDUP_SEQ_LIMIT         (UINT64_C(1) << 63)
#define SL_DEDUP_WINDOW_DEFAULT    8192u
#define SL_DEDUP_WINDOW_MAX        (UINT32_C(1) << 24)
#define SL_DEDUP_PRODUCERS_DEFAULT 65536u
#define SL_DEDUP_PRODUCERS_MAX     (UINT32_C(1) << 30)

struct sl_dedup_opts {
	uint32_t window;        /* W: a power of two <= SL_DEDUP_WINDOW_MAX; 0 = 8192 */
	uint32_t max_producers; /* a new one beyond it: the LRU eighth goes; 0 = 65536 */
};

struct sl_dedup;

/* Non-negative return values of sl_dedup_check(). */
enum sl_dedup_verdict {
	SL_DEDUP_NEW = 0, /* append it, then sl_dedup_record() */
	SL_DEDUP_DUP,     /* stored at *offset (durable or not: the caller checks) */
	SL_DEDUP_STALE,   /* below what is kept: stored long ago, offset forgotten */
};

/* -EINVAL (window not a power of two or too big, max_producers too big),
 * -ENOMEM. */
int sl_dedup_create(const struct sl_dedup_opts *o, struct sl_dedup **out);
void sl_dedup_destroy(struct sl_dedup *t);

/*
 * Admission of event `seq` of producer (id, epoch) in this partition. No
 * effect on the state (but a one-entry lookup cache, hence not const).
 * Returns a verdict (see the top) with *offset set for DUP, or:
 *   -EINVAL       seq >= SL_DEDUP_SEQ_LIMIT;
 *   -SL_EFENCED   epoch < the producer's epoch here (a zombie session);
 *   -SL_ESEQ_GAP  kept <= seq < last and seq not in the FIFO (out of order).
 * An unknown producer gets NEW for any sequence and epoch. NEW costs O(1);
 * DUP and the refusals a binary search of the FIFO.
 */
int sl_dedup_check(struct sl_dedup *t, uint64_t id, uint32_t epoch, uint64_t seq, uint64_t *offset);

/*
 * Records event `seq` of (id, epoch) stored at `offset`: live right after
 * appending a NEW event; in recovery for each record read back from the log
 * in offset order. Creates the producer if unknown, raises its epoch (never
 * lowers it), appends to the FIFO and raises kept to seq - W + 1 (entries
 * below it are dropped when the FIFO fills).
 * seq <= last is a replay: 0 if that seq is in the FIFO at that same offset,
 * or is below `kept` at an offset below the oldest kept one (recorded and
 * dropped before, consistently); -EINVAL otherwise. Also -EINVAL: id 0,
 * seq >= SL_DEDUP_SEQ_LIMIT, seq > last at an offset not above the
 * producer's last offset. A new producer beyond max_producers makes the
 * least recently used eighth go first. -ENOMEM (never after a successful
 * sl_dedup_prepare() for this id and seq). On error the table is unchanged.
 */
int sl_dedup_record(struct sl_dedup *t, uint64_t id, uint32_t epoch, uint64_t seq, uint64_t offset);

/* Epoch and last of a producer; -ENOENT when unknown here. */
int sl_dedup_get(const struct sl_dedup *t, uint64_t id, uint32_t *epoch, uint64_t *last);

/* Producers known. */
uint32_t sl_dedup_count(const struct sl_dedup *t);

/* Calls fn once per producer (in table order, not sorted): id, epoch, last.
 * For seeding the registry at start-up. fn must not change the table. */
void sl_dedup_foreach(const struct sl_dedup *t,
                      void (*fn)(void *arg, uint64_t id, uint32_t epoch, uint64_t last), void *arg);

/* Bytes held by the table (struct, buckets, FIFOs), for metrics. */
size_t sl_dedup_memory(const struct sl_dedup *t);

/*
 * Memory of idle producers. sl_dedup_tick() advances the table's clock (the
 * owner calls it every server tick); sl_dedup_trim() keeps only the last
 * entry of every producer that recorded nothing here for idle_ticks ticks
 * (kept = last) and frees the rest of its FIFO; returns the bytes freed.
 * A retry of an older sequence of such a producer is then answered STALE,
 * a duplicate whose offset is unknown, instead of DUP with its offset.
 * Why that is still exactly once: every sequence below `last` reached this
 * partition before `last` did (one stream, FIFO rings), so it was stored,
 * or refused with an answer the producer acted on. The one exception is a
 * refusal whose answer was lost with the connection and that the producer
 * retries after the trim (refusals at a partition are storage failures and
 * fenced zombies: rare, and a long idle time makes the window tiny). Without
 * trimming, every producer that ever wrote would keep up to 2 x W entries
 * per partition for good: the budget could not hold a server whose
 * producers come and go.
 */
void sl_dedup_tick(struct sl_dedup *t);
size_t sl_dedup_trim(struct sl_dedup *t, uint32_t idle_ticks);

/* The table's time in ms (wall clock); never goes back. The next records
 * take it as their last_ms. */
void sl_dedup_set_time(struct sl_dedup *t, uint64_t now_ms);
uint64_t sl_dedup_now_ms(const struct sl_dedup *t);

/*
 * Before appending a NEW event seq of producer id: makes room (an eviction
 * of the LRU eighth, a table or FIFO growth) so that sl_dedup_record() of
 * it cannot fail. -ENOMEM: refuse the event (not stored), retryable.
 */
int sl_dedup_prepare(struct sl_dedup *t, uint64_t id, uint64_t seq);

/*
 * A resent event of producer id, first sent at or after since_ms (table
 * time): 0 when the table knows the producer or forgot nobody since then;
 * -SL_EPRODUCER_EXPIRED when the producer is unknown here and may have
 * been forgotten after storing it (see the top).
 */
int sl_dedup_resend_check(struct sl_dedup *t, uint64_t id, uint64_t since_ms);

/* Forgets every producer that recorded nothing for idle_ms (table time);
 * returns how many. O(table) when someone goes, a scan otherwise. */
uint64_t sl_dedup_expire(struct sl_dedup *t, uint64_t idle_ms);

/* Producers forgotten so far (expiry and eviction), and forgot_ms. */
uint64_t sl_dedup_forgotten(const struct sl_dedup *t);
uint64_t sl_dedup_forgot_ms(const struct sl_dedup *t);

/*
 * Checkpoint: little-endian, versioned, CRC32C-checked; the layout is
 * dedup/checkpoint_format.h. The same state and `upto` always write the
 * same bytes.
 */

/* Enough bytes for any sl_dedup_checkpoint_write() of the current state. */
size_t sl_dedup_checkpoint_bound(const struct sl_dedup *t);

/*
 * The state restricted to entries at offsets < upto (records at or past
 * `upto` may not be durable yet and must not be in a checkpoint): per
 * producer its FIFO prefix below upto, whose last entry is its `last`; a
 * producer with an empty prefix is left out; epoch and kept as they are.
 * `upto` is stored in the header. -ENOSPC if cap is too small (nothing
 * written then), -ENOMEM.
 */
int sl_dedup_checkpoint_write(const struct sl_dedup *t, uint64_t upto, void *buf, size_t cap,
                              size_t *len);

/*
 * Loads a checkpoint into an EMPTY table (-EBUSY otherwise). *upto = its
 * mark: replay the log from there. A checkpoint of another window loads:
 * its entries are cut to this table's window. -SL_ECORRUPT with `err`
 * saying what is wrong (magic, version, length, checksum, ids not
 * ascending, entries not increasing in seq and offset, an offset >= upto,
 * ...); -ENOSPC with `err` when it holds more producers than fit; -ENOMEM.
 * On any error the table is left empty (the caller then tries an older
 * checkpoint or replays the whole log).
 */
int sl_dedup_checkpoint_read(struct sl_dedup *t, const void *buf, size_t len, uint64_t *upto,
                             char *err, size_t errlen);

/* ------------------------------------------------------------------------ */
/*
 * The producer registry: which producer ids exist, and each one's current
 * epoch. One per server, shared by every reactor.
 *
 * Ids must never be reused: a reused id would make a new producer's events
 * look like duplicates of an old one's. So fresh ids come from blocks of
 * SL_PRODUCERS_ID_BLOCK, and the end of a block is written to the
 * registry's file (tmp, fdatasync, rename, fsync of the folder) before any
 * id of the block is handed out; after a crash, numbering resumes at the
 * stored end. A few ids of the last block are lost per restart, no more.
 *
 * Epochs need not be written at hello. Every epoch that ever wrote is in the
 * partition logs (every record batch carries producer id, epoch and
 * sequences) and in the partition checkpoints, so after a crash the registry
 * is re-seeded from them (sl_producers_seed, from sl_dedup_foreach of every
 * recovered partition). An epoch handed out but never used to write cannot
 * matter after a crash: a crash closes every session, and every session says
 * hello again and gets an epoch above everything seeded. next_seq is not
 * written either: it is rebuilt the same way, and it only tells a client
 * where to resume (Welcome's next_sequence); the partitions' tables, not
 * next_seq, decide what is a duplicate.
 *
 * Threads: sl_producers_open/close are for start-up and shut-down (one
 * thread, no sessions); sl_producers_seed for start-up, and for a
 * partition's owner that rebuilt its sequences after a truncation (under
 * the mutex, like sl_producers_hello). sl_producers_hello may be called
 * from any thread at any time (a mutex inside: hellos are rare and never on
 * the event path). sl_producer_is_current and sl_producer_accepted are
 * lock-free, for any thread, on the event path.
 */
#ifndef __cplusplus /* C11 atomics; the C++ benchmarks use only the table */
#include <stdatomic.h>
#include <stdbool.h>

#define SL_PRODUCERS_ID_BLOCK (UINT64_C(1) << 16)
/* Ids stay below 2^62 so a block end never wraps. */
#define SL_PRODUCERS_ID_LIMIT (UINT64_C(1) << 62)
/*
 * Reserved: ids in [2^62, 2^63) belong to the server's own producers, the
 * pipeline stages (engine/pipe: 2^62 | 42 bits of a hash of the pipeline's
 * name << 20 | the input partition). The registry never hands them out
 * (the ids above are small sequential numbers, and a Hello asking for one
 * is refused), so no client can pose as a stage; a partition's table holds
 * them like any other producer, and sl_producers_seed passes over them.
 */
#define SL_PRODUCERS_PIPE_ID_BASE SL_PRODUCERS_ID_LIMIT
#define SL_PRODUCERS_PIPE_ID_END  (UINT64_C(1) << 63)
/*
 * Reserved: ids in [2^61, 2^62) belong to named producers (issue 20,
 * Hello.producer_name): a name's id is derived, never stored,
 *     SL_PRODUCERS_NAMED_BASE | (XXH3_64bits_withSeed(name, SEED) & (2^61 - 1)),
 * so the same name gets the same id after any restart of either side
 * without a table of names to keep durable. No other id reaches the range:
 * fresh ids alone are sequential from 1 and refused (-ENOSPC) at the base
 * (2^61 of them: never); a cluster node's range is (ordinal + 1) << 40 and
 * server/cluster.c refuses an ordinal whose base is at or above 2^61, so
 * the highest range ends at 2^61 exactly. A Hello that asks for an id of
 * the range by number (producer_id, resume_epoch) is refused: a name is
 * the only way in, so no numbered producer can be taken for a named one.
 * Collisions: two names share an id with probability about n^2 / 2^62 for
 * n names (2^20 names, the registry's limit: 2.4e-7); the two would then
 * fence each other and share one sequence space, which is why a name is
 * one stream and the odds are stated here rather than hidden.
 */
#define SL_PRODUCERS_NAMED_BASE (UINT64_C(1) << 61)
#define SL_PRODUCERS_NAMED_END  SL_PRODUCERS_ID_LIMIT
/* The seed of a name's hash: fixed forever, or every name changes id (and
 * starts over at sequence 0) on an upgrade. */
#define SL_PRODUCERS_NAME_SEED UINT64_C(0x736c7569636550ed)
/* A name is 1..255 bytes of printable ASCII without spaces (0x21..0x7e):
 * it travels in logs (logfmt), command lines and `PREFIX-i`, so nothing in
 * it needs quoting or normalising (UTF-8 would: two spellings of one
 * name, invisible characters). */
#define SL_PRODUCER_NAME_MAX 255u
/* The most producers the registry holds: a fresh one beyond is -ENOSPC. */
#define SL_PRODUCERS_MAX_DEFAULT (UINT32_C(1) << 20)

struct sl_producer { /* stable address for the registry's lifetime */
	uint64_t id;
	_Atomic uint32_t epoch;    /* the current session's; written under the mutex */
	_Atomic uint64_t next_seq; /* 1 + highest sequence accepted from any session (0 = none) */
	/* next_seq as the logs gave it (sl_producers_seed): a lower bound
	 * only, since sequences a session used up on refused events are not
	 * stored. A next_seq still equal to it is not known exactly. */
	_Atomic uint64_t seeded;
	/* Forgetting: sessions holding the entry (hello, resume and
	 * hello_named add one; sl_producers_release takes it back), and since
	 * when it has none (ms, wall clock). Only an entry without sessions
	 * is forgotten, so no session ever holds a recycled one. */
	_Atomic uint32_t sessions;
	_Atomic uint64_t idle_since_ms;
	struct sl_producer *next_free; /* the free list, under the mutex */
	/* One line each: reactors serving different producers never share
	 * a written line. */
} __attribute__((aligned(64)));

struct sl_producers;

/*
 * path: a file (e.g. <data_dir>/producers) holding the id high-water mark.
 * Loads it if present; a file that is not a valid one is -SL_ECORRUPT with
 * `err` saying why (the server must not guess ids then); absent, ids start
 * at 1 and the file is created by the first fresh id. Also loads (or makes)
 * the proofs' key, <path>.key (below). -ENOMEM, -errno.
 */
int sl_producers_open(const char *path, struct sl_producers **out, char *err, size_t errlen);
void sl_producers_close(struct sl_producers *r);

/*
 * Start-up only: merges what a partition's table knows of a producer: epoch
 * = max, next_seq = max(next_seq, last + 1); fresh ids will be above `id`.
 * -EINVAL (id 0, id >= SL_PRODUCERS_ID_LIMIT, last >= SL_DEDUP_SEQ_LIMIT),
 * -ENOSPC, -ENOMEM. A pipeline stage's id (SL_PRODUCERS_PIPE_ID_BASE) is
 * passed over: 0, nothing recorded. A named producer's id is seeded like
 * any other (that is how its next_seq survives a kill -9 of the server),
 * but never moves the next fresh id.
 */
int sl_producers_seed(struct sl_producers *r, uint64_t id, uint32_t epoch, uint64_t last);

/*
 * A session says hello. want_id 0: a fresh id, never one seen or assigned
 * before (even before a crash). A known or unknown want_id keeps that id
 * (an unknown one is reserved durably like a fresh one when above the
 * stored mark, so it is never handed to someone else). A known one only
 * with its proof (proof[0..proof_len), below): -EACCES otherwise. An
 * unknown id is nobody's, so nothing can be fenced by taking it (the server
 * lost or never had its sequences), and it is taken without one. Either way
 * the epoch becomes current + 1 (unknown: 1), which fences every older
 * session. Returns 0 with the entry (*out), the new epoch and next_seq
 * (Welcome's next_sequence). -EINVAL (want_id >= SL_PRODUCERS_ID_LIMIT, or
 * in the named range: a name is the only way to it),
 * -EOVERFLOW when the epoch would wrap, -ENOSPC past the limit of
 * producers, -ENOMEM, -EIO or -errno when the mark cannot be written (no id
 * is handed out then).
 */
/*
 * Cluster mode: a fresh id must be unique in the whole cluster, not only on
 * this node (a client holds a session on each leader node, and a partition
 * that moves between them must never take one node's producer for
 * another's: its sequences would answer the other's events as
 * duplicates, acked and never stored). Each node hands out ids from its own
 * range, SL_PRODUCERS_NODE_BASE(ordinal), the ordinal etcd gives the node.
 * require_base: every hello is refused (-EAGAIN) until set_base gives the
 * range (and set_key the proofs' key). Ids of other ranges (a producer of another node, resumed
 * here or seeded from replicated batches) never move this node's next fresh id or its durable mark:
 * only its own range's do. set_base recomputes both from the ids the registry holds in the range,
 * since the partitions seeded it before the range was known (a node restarted with replicated
 * partitions took the highest id of a later node's range as its next one, and would have handed out
 * that node's ids). Any thread (the registry's mutex).
 */
#define SL_PRODUCERS_NODE_BITS          40
#define SL_PRODUCERS_NODE_BASE(ordinal) (((uint64_t)(ordinal) + 1) << SL_PRODUCERS_NODE_BITS)
void sl_producers_require_base(struct sl_producers *r);
void sl_producers_set_base(struct sl_producers *r, uint64_t base);

int sl_producers_hello(struct sl_producers *r, uint64_t want_id, const uint8_t *proof,
                       size_t proof_len, struct sl_producer **out, uint32_t *epoch,
                       uint64_t *next_seq);

/*
 * Named producers (SL_PRODUCERS_NAMED_BASE above). sl_producers_name_ok:
 * whether name[0..len) is a valid name; NULL, or *why says what is wrong
 * (a static string). sl_producers_named_id: the name's id (valid names
 * only). Both pure, any thread.
 *
 * sl_producers_hello_named: a session says hello under a name. No proof:
 * the name is the claim (wire.proto Hello.producer_name; with `auth` only
 * token holders get this far). Like sl_producers_hello otherwise: the id
 * is added if unknown (never touching the mark or the next fresh id: the
 * range is no one's fresh ids), its epoch becomes current + 1, which
 * fences every older session of the name, and *next_seq is 1 + the
 * highest sequence accepted from it, or stored, as seeded from the logs
 * after a restart (sl_producer_seq_exact tells which). -EINVAL (a bad
 * name), -EOPNOTSUPP in cluster mode (require_base was called: one name
 * would need one sequence space across the leader nodes, which does not
 * exist yet), -EOVERFLOW, -ENOSPC, -ENOMEM. Any thread (the mutex).
 */
const char *sl_producers_name_ok(const char *name, size_t len);
uint64_t sl_producers_named_id(const char *name, size_t len);
int sl_producers_hello_named(struct sl_producers *r, const char *name, size_t len,
                             struct sl_producer **out, uint32_t *epoch, uint64_t *next_seq);

/*
 * Cluster mode, exactly once across a failover: a session that only RESENDS
 * events an earlier session of `id` sent under `epoch`, possibly on another
 * node (the client's connection to a dead or deposed leader). It must show
 * the id's proof (always: the proofs' key is the cluster's, set_key), keeps
 * that epoch instead of taking a new one (so it fences no session, and a
 * partition's table refuses it only if a newer epoch of the id wrote there),
 * and raises the registry's epoch to it, so that a later hello here goes
 * above it. An id unknown here is added (its events may have reached this
 * node only through replication). 0 with *out and *next_seq; -EAGAIN before
 * set_base, -EACCES (wrong proof), -EINVAL (id 0 or too big, epoch 0),
 * -ENOSPC, -ENOMEM. Any thread (the mutex).
 */
int sl_producers_resume(struct sl_producers *r, uint64_t id, const uint8_t *proof, size_t proof_len,
                        uint32_t epoch, struct sl_producer **out, uint64_t *next_seq);

/*
 * Cluster mode: the proofs' key becomes the cluster's (len bytes, at most
 * 32 used), shared through etcd, so that a proof one node issued is good on
 * every node (a failover resumes the id on the new leader). Called once at
 * start, before set_base (hellos wait for set_base). Proofs issued before,
 * under the node's own key, are no longer good. Any thread (the mutex).
 */
void sl_producers_set_key(struct sl_producers *r, const uint8_t *key, size_t len);

/* Producers known. */
uint32_t sl_producers_count(struct sl_producers *r);

/*
 * Forgetting (issue 20). The registry holds at most SL_PRODUCERS_MAX_DEFAULT
 * entries; an entry with no session goes once idle past the expiry
 * (sl_producers_set_expiry: the longest producer_expiry of the topics; 0:
 * never), looked for at most once a second at a hello, or, when a new one
 * would pass the bound, the least recently idle eighth of those without a
 * session goes (-ENOSPC only when every entry has a live session). A
 * forgotten id's partitions forget it by their own rules (their tables'
 * bounds and the same expiry); an id that comes back before they did gets
 * an epoch above every forgotten one's (`epoch_floor`), so no partition
 * fences it. sl_producers_release: a session holding p ended (its
 * connection closed); call once per successful hello, hello_named or
 * resume. Any thread.
 */
void sl_producers_release(struct sl_producer *p);
void sl_producers_set_expiry(struct sl_producers *r, uint64_t idle_ms);
/* The bound (SL_PRODUCERS_MAX_DEFAULT unless set; tests set it lower). */
void sl_producers_set_limit(struct sl_producers *r, uint32_t max);
uint64_t sl_producers_forgotten(struct sl_producers *r);

/*
 * Proofs (issue 23): a producer id can be resumed only by the client it was
 * issued to, so that no client can fence another by saying Hello with its
 * id. The Welcome that issues an id carries its proof, HMAC-SHA256(key, id)
 * cut to 16 bytes, and a Hello that asks for a known id must show it
 * (sl_producers_hello). The key is
 * <path>.key (32 random bytes, 0600), made at the first open and kept with
 * the registry, so proofs survive restarts without a table of them; a data
 * folder made anew makes a new key, and the old ids are refused, as their
 * sequences are gone anyway. Any thread (the key is read-only after open).
 */
#define SL_PRODUCER_PROOF_LEN 16
void sl_producers_proof(const struct sl_producers *r, uint64_t id,
                        uint8_t out[SL_PRODUCER_PROOF_LEN]);
/* True when `proof` (len bytes) is id's; compared in constant time. */
bool sl_producers_proof_ok(const struct sl_producers *r, uint64_t id, const uint8_t *proof,
                           size_t len);

/* Is `epoch` still p's current session? Pairs with the release store of a
 * hello: once a newer hello has returned, every later call says false. */
static inline bool sl_producer_is_current(const struct sl_producer *p, uint32_t epoch)
{
	return atomic_load_explicit(&p->epoch, memory_order_acquire) == epoch;
}

/* Whether next_seq (what sl_producers_hello gave) is every sequence a
 * session of this id used, or only what its stored events show (seeded
 * from the logs after a restart, nothing accepted since): then the
 * session's first frame may start further on. */
static inline bool sl_producer_seq_exact(const struct sl_producer *p, uint64_t next_seq)
{
	return next_seq != atomic_load_explicit(&p->seeded, memory_order_relaxed);
}

/* Raises p->next_seq to next_seq (an atomic max: sessions on different
 * reactors may race; the highest wins). */
static inline void sl_producer_accepted(struct sl_producer *p, uint64_t next_seq)
{
	uint64_t cur = atomic_load_explicit(&p->next_seq, memory_order_relaxed);

	/* Fails only when another thread changed it; each retry sees a higher
	 * value, and stops once it is at least next_seq. */
	while (cur < next_seq &&
	       !atomic_compare_exchange_weak_explicit(&p->next_seq, &cur, next_seq,
	                                              memory_order_relaxed, memory_order_relaxed))
		;
}
#endif /* !__cplusplus */

#ifdef __cplusplus
}
#endif

#endif
