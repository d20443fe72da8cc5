/*
 * Internals of the reactor, shared by its files: reactor.c (the loop, the
 * partitions owned, io_uring, life cycle), xfer.c (cross-core blocks),
 * proj.c and pipe.c (driving projections and pipeline stages), and the
 * connection's files (conn.h). Everything here runs on the reactor's
 * thread, except the atomics marked as published.
 */
#ifndef SL_REACTOR_IMPL_H
#define SL_REACTOR_IMPL_H

#include <errno.h>
#include <liburing.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "base/base.h"
#include "credit/credit.h"
#include "proto/proto.h"
#include "reactor/reactor.h"
#include "reactor/xfer.h"
#include "topic/topic.h"

/* io_uring user_data: op in the low byte, connection slot above it. */
enum sl_op {
	SL_OP_NONE = 0,
	SL_OP_ACCEPT,
	SL_OP_RECV,
	SL_OP_SEND,
	SL_OP_TICK,
	SL_OP_WAKE,
	SL_OP_MSG,
	SL_OP_MSG_SENT,
	SL_OP_LOG,     /* slot: the partition's index in r->parts */
	SL_OP_JOURNAL, /* the journal's fdatasync */
};
#define SL_UD(op, slot) ((uint64_t)(op) | ((uint64_t)(slot) << 8))
#define SL_UD_OP(ud)    ((uint32_t)((ud)&0xff))
#define SL_UD_SLOT(ud)  ((uint32_t)((ud) >> 8))

#define SL_SQ_ENTRIES 4096
#define SL_BGID       0
/* 256 buffers of 32 KiB: 8 MiB of receive memory per reactor, shared by all
 * its connections; one buffer holds ~300 events of 100 B. */
#define SL_RECV_BUFS     256
#define SL_RECV_BUF_SIZE (32u * 1024)
/* Blocks each reactor may have in flight to its peers (~5.7 MiB). */
#define SL_POOL_BLOCKS 64
#define SL_TICK_MS     100
/* Producers idle for 30 s give up the old entries of their sequence
 * tables, checked every 10 s (dedup.h: sl_dedup_trim). */
#define SL_DEDUP_IDLE_TICKS   300u
#define SL_DEDUP_EXPIRE_EVERY 10u /* ticks between expiry sweeps, at least */
/* Retention passes (sl_log_retain): every second, and at the first tick
 * after a roll (a new sealed segment is what makes one due by size). A
 * pass reads only the segment list in memory, and a sealed segment's
 * newest time once; the deletions run on the segment preparer. */
#define SL_RETAIN_EVERY     10u
#define SL_DEDUP_TRIM_EVERY 100u
/* Event views filled while a Produce is validated: a frame of up to this
 * many events is scanned once (1024 * ~100 B of views per reactor). */
#define SL_PRODUCE_VIEWS 1024

struct sl_conn;
struct sl_proj_part;
struct sl_pipe_part;
struct sl_pquery;

struct sl_reactor {
	const struct sl_reactor_env *env;
	/* Read on every event: copied or cached out of env at create. */
	struct sl_topics *topics;
	struct sl_reactor_limits lim;
	uint32_t id, n;
	pthread_t thread;
	bool started;
	int result;

	struct io_uring uring;
	bool uring_ok;
	_Atomic int ring_fd; /* published for peers (msg_ring) */
	int *peer_fds;
	uint8_t *wake_mask; /* peers pushed to this turn */
	int listen_fd;
	int wake_fd;
	uint64_t wake_val;
	struct __kernel_timespec tick_ts;
	uint32_t tick_ms; /* 100, or less when a topic syncs more often */
	uint64_t ticks;
	uint64_t hot_next_ns; /* hot.c: when rates and hot keys are next due */
	bool accept_armed;

	/* Provided receive buffers. */
	struct io_uring_buf_ring *br;
	size_t br_bytes;
	uint8_t *bufs;
	uint32_t n_bufs, buf_size;
	uint32_t bufs_pending;

	/* Connections: slot table; gens survive the conn so stale acks drop. */
	struct sl_conn **conns;
	uint32_t *gens;
	uint32_t conn_cap, n_conns;
	uint32_t *free_slots;
	uint32_t n_free;
	uint32_t recvs_armed;
	struct sl_conn *flush_head;     /* conns with output or acks to flush */
	struct sl_conn *resume_head;    /* conns waiting to be read again */
	struct sl_conn *held_head;      /* conns whose credits wait for pressure to ease */
	struct sl_credit_pool *credits; /* the server's pool (shared atomics) */
	uint64_t held_seen;             /* pressure mask when the last one was held */
	/* The pressure of the partitions this reactor owns: the OR of
	 * SL_PMASK_BIT of each pressured one (block topics only), published
	 * for every reactor's credit flush. Single writer: this reactor. */
	struct {
		_Atomic uint64_t value;
	} SL_CACHE_ALIGNED pmask;
	/* Credit figures for metrics (relaxed atomics, written here only). */
	_Atomic uint64_t m_credit_events; /* events granted (Welcome + Credit) */
	_Atomic uint64_t m_credit_frames;
	_Atomic uint64_t m_auth_failures; /* Hellos refused: no or a wrong token */
	_Atomic uint64_t m_held_ns;       /* time connections waited for credits */
	_Atomic uint32_t m_held_now;
	_Atomic uint64_t m_credit_cut; /* connections cut off for sending beyond credits */

	/* Cross-core blocks. */
	struct sl_xblock *pool_free;
	uint32_t pool_size;
	uint32_t blocks_out;       /* ours, not home: in rings, peers, cur_* */
	struct sl_xblock **cur_ev; /* per target, filling */
	struct sl_xblock **cur_ack;
	struct sl_xblock **backlog_head; /* per target: waiting for ring room */
	struct sl_xblock **backlog_tail;
	uint64_t remote_unacked; /* events sent to peers, acks not back */
	bool throttled;

	/* Partitions owned. */
	struct sl_partition **parts;
	uint32_t n_parts, cap_parts; /* dirty_parts holds cap_parts too */
	/* Fetched chunks partly appended, the rest after the next flush. */
	struct sl_repl_chunk *repl_pending;
	/* A control request (a topic adopted or dropped at runtime): the
	 * control thread sets it under ctl_mu, raises ctl_pending and wakes
	 * the reactor, which does it between turns and answers. */
	pthread_mutex_t ctl_mu;
	pthread_cond_t ctl_cv;
	_Atomic uint32_t ctl_pending;
	uint32_t ctl_kind, ctl_topic;
	bool ctl_done;
	bool ctl_closed; /* the reactor exits: requests are refused */
	bool ctl_inited;
	/* Topic admin requests answered by the server's admin thread, back
	 * for their connections (ctl.c; under ctl_mu, ctl_pending's
	 * SL__CTL_ANSWERS bit says some wait), and how many are out. */
	struct sl_admin_req *admin_done;
	uint32_t admin_out;
	struct sl_partition **dirty_parts;
	uint32_t n_dirty_parts;
	uint32_t syncs_inflight; /* fdatasyncs of this reactor's logs in flight */
	/* The journal of this reactor's fsync-policy partitions (log.h), or
	 * NULL; owned by the topics. */
	struct sl_journal *journal;

	bool stopping, input_done, drain_expired, exiting;
	uint64_t drain_deadline_ns;

	/* Projections of the partitions owned here (project.h, proj.c). */
	struct sl_proj_part **pparts;
	uint32_t n_pparts;
	bool proj_behind;             /* an applier has more to apply than a turn takes */
	bool proj_tick_due;           /* the tick came: step every applier behind */
	struct sl_pquery *pq_wait;    /* read-your-writes requests parked until applied */
	struct sl_pquery *pq_rebuild; /* rebuilds in progress */

	struct sl_event_view *views; /* SL_PRODUCE_VIEWS scratch for sl__on_produce */
	struct sl_reactor_stats stats;

	/* Pipeline stages of the partitions owned here (reactor/pipe.c). */
	struct sl_pipe_part **pipe_parts;
	uint32_t n_pipe_parts;
	bool pipe_behind;        /* a stage has more input than a turn takes */
	bool pipe_tick_due;      /* the tick came: step every stage with input */
	uint32_t pipe_save_next; /* round robin of progress writes */
};

/* reactor.c */
struct io_uring_sqe *sl__sqe(struct sl_reactor *r);
/* Publishes one encoded event into `topic` for a producer inside the server
 * (a pipeline stage, a projection's emits: epoch 1, sequence `seq`, acks to
 * `conn`), to the partition of its aggregate: admitted here when this core
 * owns it, else sent to the owner. 0 or -errno. */
int sl__internal_produce(struct sl_reactor *r, uint32_t topic, uint64_t pid, uint32_t conn,
                         const uint8_t *ev, uint32_t len, uint64_t seq);
/* The same into partition q of `topic` (v: the event, scanned), acks to
 * (conn, gen): a group commit's record (reactor/group.c). */
int sl__internal_produce_to(struct sl_reactor *r, uint32_t topic, uint32_t q, uint64_t pid,
                            uint32_t conn, uint32_t gen, const uint8_t *ev, uint32_t len,
                            uint64_t seq, const struct sl_event_view *v);
void sl__buf_recycle(struct sl_reactor *r, uint16_t bid);
void sl__begin_stop(struct sl_reactor *r);

/* xfer.c: cross-core blocks */
int sl__xpool_init(struct sl_reactor *r);
void sl__xpool_destroy(struct sl_reactor *r);
/* A block for events (need: their bytes) or acks (0): from the pool, or
 * allocated past it (then receives stop until blocks come home). */
struct sl_xblock *sl__xblock_get(struct sl_reactor *r, uint32_t need);
void sl__xpush(struct sl_reactor *r, uint32_t to, struct sl_xblock *b);
/* Pushes every partly filled block (end of turn). */
void sl__xflush(struct sl_reactor *r);
/* Consumes what the peers pushed to this reactor (bounded per turn). */
void sl__xdrain(struct sl_reactor *r);
/* No backlog to push and nothing inbound: the drain may end. */
bool sl__xquiet(struct sl_reactor *r);

/* acks.c: one answer to an event of a connection of this reactor (or of
 * a pipeline stage or projection: SL_CONN_PIPE), from any partition. */
void sl__conn_ack(struct sl_reactor *r, const struct sl_xack *ack);

/* ---- per event, inline: filling blocks, routing acks, admitting events ---- */

/* One event for reactor `to`, copied into the block filling for it. */
static inline int sl__xsend_event(struct sl_reactor *r, uint32_t to, const struct sl_xev *ev,
                                  const uint8_t *bytes)
{
	struct sl_xblock *b = r->cur_ev[to];

	if (b && (b->n == SL_XBLOCK_DESC || b->cap - b->used < ev->len)) {
		sl__xpush(r, to, b);
		b = NULL;
	}
	if (!b) {
		b = sl__xblock_get(r, ev->len);
		if (!b)
			return -ENOMEM;
		b->kind = SL_X_EVENTS;
		r->cur_ev[to] = b;
	}
	struct sl_xev *d = &b->ev[b->n++];
	*d = *ev;
	d->off = b->used;
	memcpy(b->data + b->used, bytes, ev->len);
	b->used += ev->len;
	r->remote_unacked++;
	return 0;
}

static inline int sl__xsend_ack(struct sl_reactor *r, uint32_t to, const struct sl_xack *ack)
{
	struct sl_xblock *b = r->cur_ack[to];

	if (b && b->n == SL_XBLOCK_DESC) {
		sl__xpush(r, to, b);
		b = NULL;
	}
	if (!b) {
		b = sl__xblock_get(r, 0);
		if (!b)
			return -ENOMEM;
		b->kind = SL_X_ACKS;
		r->cur_ack[to] = b;
	}
	b->ack[b->n++] = *ack;
	return 0;
}

/* Routes one ack to the connection's reactor. */
static inline void sl__route_ack(struct sl_reactor *r, uint32_t core, const struct sl_xack *ack)
{
	if (core == r->id) {
		sl__conn_ack(r, ack);
		return;
	}
	if (sl__xsend_ack(r, core, ack) < 0) {
		/* Out of memory for an ack block: the ack is lost to the client,
		 * which will retry; the event itself is stored. Never silently. */
		fprintf(stderr, "sluiced: reactor %u: no memory for an ack block\n", r->id);
	}
}

/* Answers the producer of `ref`, an event of `p`: its ack (status 0), or a
 * refusal (an ERR_* code: the event is not stored, or no longer). */
static inline void sl__ref_answer(struct sl_reactor *r, const struct sl_partition *p,
                                  const struct sl_ack_ref *ref, uint32_t status)
{
	struct sl_xack a = {
	    .base_seq = ref->base_seq,
	    .offset = status ? 0 : ref->offset,
	    .conn = ref->conn,
	    .gen = ref->gen,
	    .index = ref->index,
	    .partition = p->id,
	    .status = status,
	    .len = ref->len,
	    .flags = status ? 0 : ref->flags,
	    .topic = (uint16_t)p->topic->index,
	};
	sl__route_ack(r, ref->core, &a);
}

/* Admits one event to partition `p` (owned here); a duplicate of a durable
 * event is answered at once. An event stored is counted under its key
 * (key[0..key_len), its aggregate id) in the topic's hot-key summary of
 * this reactor. 0 or sl_partition_produce's errors. */
static inline int sl__part_produce(struct sl_reactor *r, struct sl_partition *p, uint64_t pid,
                                   uint32_t epoch, uint64_t seq, uint32_t resend_s,
                                   const uint8_t *ev, uint32_t len, const uint8_t *id,
                                   const char *key, size_t key_len, struct sl_ack_ref *ref)
{
	/* The owner's word on leadership counts, not the connection's view
	 * of it a moment ago: a move away from here waits until the owner
	 * refuses (moving_seen), so no event lands after the hand-over. */
	if (SL_UNLIKELY(p->repl)) {
		int r2 = sl_prepl_admit(p->repl);
		if (r2 < 0)
			return r2;
	}
	int ret = sl_partition_produce(p, pid, epoch, seq, resend_s, ev, len, id, ref);
	if (ret < 0)
		return ret;
	if (ret == 1) {
		/* A duplicate of a durable event: answered now. */
		r->stats.duplicates++;
		sl__ref_answer(r, p, ref, 0);
		return 0;
	}
	if (ref->flags & SL_ACK_DUP)
		r->stats.duplicates++;
	else if (p->topic->hot)
		sl_hot_add(p->topic->hot[r->id], key, key_len, p->id);
	if (!p->dirty) {
		p->dirty = true;
		r->dirty_parts[r->n_dirty_parts++] = p;
	}
	return 0;
}

/* parts.c (the loop's side of the partitions owned) */
void sl__part_release(struct sl_reactor *r, struct sl_partition *p);
/* Starts the group commit of every partition appended to this turn. */
void sl__part_flush(struct sl_reactor *r);
/* What a partition publishes for readers: its dedup and log figures. */
void sl__part_dedup_pub(struct sl_partition *p);
void sl__part_log_pub(struct sl_partition *p);
/* Completions: the journal's fdatasync, a log's write or sync. */
void sl__on_journal_cqe(struct sl_reactor *r, int res);
void sl__on_log_cqe(struct sl_reactor *r, uint32_t slot, int res);
/* The journal's callback (sl_journal_create's), arg the reactor. */
void sl__journal_cb(void *arg, void *log_arg, int status);
/* Retention's pass over one partition (the tick). */
void sl__part_retain(struct sl_partition *p, int64_t wall_ms);
/* The log moved its durable end (publish, acks); the log failed (every
 * waiting producer hears ERR_STORAGE). */
void sl__part_durable(struct sl_reactor *r, struct sl_partition *p);
void sl__part_failed(struct sl_reactor *r, struct sl_partition *p);
/* The tick's length (ms): SL_TICK_MS, or the shortest interval of the
 * topics under the interval policy (each gets its fdatasync at a tick). */
uint32_t sl__tick_ms(const struct sl_topics *t);

/* repl.c: replicated partitions (cluster mode) */
void sl__repl_take(struct sl_reactor *r);
void sl__repl_step(struct sl_reactor *r);
void sl__repl_durable(struct sl_reactor *r, struct sl_partition *p);

/* hot.c: partition rates, hot-key summaries, hot partitions (the tick) */
void sl__hot_tick(struct sl_reactor *r, uint64_t now);

/* ctl.c: topics adopted or dropped at runtime, topic admin answers */
enum { SL__CTL_REQUEST = 1u, SL__CTL_ANSWERS = 2u }; /* ctl_pending bits */
void sl__ctl_run(struct sl_reactor *r);
void sl__ctl_stop(struct sl_reactor *r);
/* Frees answers nobody takes any more (reactor destroy). */
void sl__ctl_free_answers(struct sl_reactor *r);
/* Hands req to the admin thread: 0, or -errno (req freed then). */
int sl__admin_submit(struct sl_reactor *r, struct sl_admin_req *req);
/* handlers.c: an answered request for connection c (still its own). */
void sl__conn_admin_answer(struct sl_reactor *r, struct sl_conn *c, struct sl_admin_req *req);

/* proj.c */
int sl__proj_init(struct sl_reactor *r);
/* sl_reactor_bind: the parts of projections marked bind_pending. */
int sl__proj_bind(struct sl_reactor *r);
void sl__proj_take(struct sl_reactor *r);
void sl__proj_step(struct sl_reactor *r);
void sl__proj_tick(struct sl_reactor *r);
void sl__proj_stop(struct sl_reactor *r);
void sl__proj_emit_ack(struct sl_reactor *r, const struct sl_xack *a);

/* pipe.c */
int sl__pipe_init(struct sl_reactor *r);
/* sl_reactor_bind: the stages of pipelines marked bind_pending. */
int sl__pipe_bind(struct sl_reactor *r);
void sl__pipe_step(struct sl_reactor *r);
void sl__pipe_tick(struct sl_reactor *r);
/* An ack whose conn has SL_CONN_PIPE (from sl__conn_ack). */
void sl__pipe_ack(struct sl_reactor *r, const struct sl_xack *a);

/* group.c: consumer groups (GroupHeartbeat and Commit are in conn.h) */
/* The ack of a commit record (SL_CONN_COMMIT): the CommitAck. */
void sl__commit_ack(struct sl_reactor *r, const struct sl_xack *a);
/* Members that heartbeat on connection c leave (it closes). */
void sl__groups_conn_closed(struct sl_reactor *r, struct sl_conn *c);
/* Members silent past their session timeout leave (reactor 0's tick). */
void sl__groups_tick(struct sl_reactor *r);

/* Connections, as the loop sees them (conn.c, handlers.c, acks.c; the
 * connection's own internals are in conn.h). */
int sl__conns_init(struct sl_reactor *r);
void sl__conns_destroy(struct sl_reactor *r);
void sl__conn_accepted(struct sl_reactor *r, int fd);
void sl__conn_on_recv(struct sl_reactor *r, uint32_t slot, int res, uint32_t flags);
void sl__conn_on_send(struct sl_reactor *r, uint32_t slot, int res);
/* Every connection whose deadline passed (the tick). */
void sl__conns_timeouts(struct sl_reactor *r, uint64_t now);
void sl__conns_flush(struct sl_reactor *r);
void sl__conns_resume(struct sl_reactor *r);
void sl__conns_stop_reading(struct sl_reactor *r);
bool sl__conns_flushed(struct sl_reactor *r);
void sl__conns_close_all(struct sl_reactor *r);
void sl__conns_take_fetches(struct sl_reactor *r);
void sl__conns_unhold(struct sl_reactor *r, bool tick);
/* Union of every reactor's published pressure mask. */
uint64_t sl__pressure_mask(const struct sl_reactor *r);
/* Owner: re-evaluates the pressure of the partitions it owns. */
void sl__parts_pressure(struct sl_reactor *r);

#endif
