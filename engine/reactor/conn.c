/*
 * Connections of one reactor: the handshake, frame reassembly across
 * receive buffers, Produce dispatch, Ack encoding, and closing.
 *
 * A connection is freed only after every io_uring operation on it has
 * completed (recv_armed and send_armed both false), so a completion never
 * finds its connection gone. Its slot's generation outlives it: acks that
 * come back for a closed connection find a newer generation and are dropped.
 */
#include <stdatomic.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include "net/net.h"
#include "proto/event.h"
#include "reactor/reactor_impl.h"
#include "read/read.h"

#define SL_PROTOCOL_VERSION 1

/* How long a producer refused under the `reject` policy is told to wait:
 * a partition's pressure is re-evaluated at least every tick. */
#define SL_RETRY_AFTER_MS SL_TICK_MS

static void sl__conn_arm_recv(struct sl_reactor *r, struct sl_conn *c);
static void sl__conn_maybe_close(struct sl_reactor *r, struct sl_conn *c);

int sl__conns_init(struct sl_reactor *r)
{
	/* Every connection of the server could land on one reactor. */
	r->conn_cap = r->lim.max_connections;
	r->conns = calloc(r->conn_cap, sizeof(*r->conns));
	r->gens = calloc(r->conn_cap, sizeof(*r->gens));
	r->free_slots = malloc(r->conn_cap * sizeof(*r->free_slots));
	if (!r->conns || !r->gens || !r->free_slots)
		return -ENOMEM;
	/* Lowest slot first: keeps the tick's scan short on a quiet server. */
	for (uint32_t i = 0; i < r->conn_cap; i++)
		r->free_slots[i] = r->conn_cap - 1 - i;
	r->n_free = r->conn_cap;
	return 0;
}

static void sl__conn_unlink_held(struct sl_reactor *r, struct sl_conn *c)
{
	if (!c->on_held_list)
		return;
	*c->held_pprev = c->held_next;
	if (c->held_next)
		c->held_next->held_pprev = c->held_pprev;
	c->on_held_list = false;
	atomic_fetch_sub_explicit(&r->m_held_now, 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&r->m_held_ns, sl_now_ns() - c->held_since,
				  memory_order_relaxed);
	c->held_since = 0;
}

/* Puts a connection on the held list: its credits wait (pressure, or a
 * pool too short for its window). */
static void sl__conn_hold(struct sl_reactor *r, struct sl_conn *c)
{
	if (c->on_held_list)
		return;
	c->on_held_list = true;
	c->held_since = sl_now_ns();
	c->held_next = r->held_head;
	if (r->held_head)
		r->held_head->held_pprev = &c->held_next;
	c->held_pprev = &r->held_head;
	r->held_head = c;
	atomic_fetch_add_explicit(&r->m_held_now, 1, memory_order_relaxed);
}

static void sl__conn_free(struct sl_reactor *r, struct sl_conn *c)
{
	sl__conn_unlink_held(r, c);
	/* The window's bytes the client holds come back now (credit.h). */
	sl_credit_close(r->credits, &c->cr);
	r->conns[c->slot] = NULL;
	r->gens[c->slot]++;
	r->free_slots[r->n_free++] = c->slot;
	r->n_conns--;
	atomic_fetch_sub_explicit(r->env->conns, 1, memory_order_relaxed);
	free(c->rbuf);
	free(c->out[0].p);
	free(c->out[1].p);
	free(c->acks);
	free(c);
}

void sl__conns_destroy(struct sl_reactor *r)
{
	if (r->conns)
		for (uint32_t i = 0; i < r->conn_cap; i++)
			if (r->conns[i]) {
				close(r->conns[i]->fd);
				sl__conn_free(r, r->conns[i]);
			}
	free(r->conns);
	free(r->gens);
	free(r->free_slots);
	r->conns = NULL;
}

static int sl__buf_reserve(struct sl_buf *b, size_t more)
{
	uint8_t *p = sl_grow(b->p, &b->cap, b->len + more, 4096);
	if (!p)
		return -ENOMEM;
	b->p = p;
	return 0;
}

static void sl__conn_mark_flush(struct sl_reactor *r, struct sl_conn *c)
{
	if (!c->on_flush_list) {
		c->on_flush_list = true;
		c->flush_next = r->flush_head;
		r->flush_head = c;
	}
}

static void sl__conn_mark_resume(struct sl_reactor *r, struct sl_conn *c)
{
	c->want_recv = true;
	if (!c->on_resume_list) {
		c->on_resume_list = true;
		c->resume_next = r->resume_head;
		r->resume_head = c;
	}
}

static uint32_t sl__conn_out_pending(const struct sl_conn *c)
{
	return c->out[0].len + c->out[1].len;
}

/* Queues an Error frame and closes the connection once it is sent. */
static void sl__conn_fail(struct sl_reactor *r, struct sl_conn *c, uint32_t code, const char *fmt,
			  ...) __attribute__((format(printf, 4, 5)));

static void sl__conn_fail(struct sl_reactor *r, struct sl_conn *c, uint32_t code, const char *fmt,
			  ...)
{
	char msg[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (c->state == SL_CONN_CLOSING)
		return;
	r->stats.proto_errors++;
	fprintf(stderr, "sluiced: connection %u.%u closed: %s\n", r->id, c->slot, msg);
	struct sl_buf *b = &c->out[c->sending ^ 1];
	if (sl__buf_reserve(b, sizeof(msg) + 64) == 0) {
		int n = sl_frame_encode_error(b->p + b->len, b->cap - b->len, code, msg);
		if (n > 0)
			b->len += (uint32_t)n;
	}
	c->state = SL_CONN_CLOSING;
	c->deadline_ns = 0;
	sl__conn_mark_flush(r, c);
}

/* ---- accept ---------------------------------------------------------------- */

void sl__conn_accepted(struct sl_reactor *r, int fd)
{
	const struct sl_reactor_env *env = r->env;

	if (r->stopping || atomic_fetch_add_explicit(env->conns, 1, memory_order_relaxed) >= r->lim.max_connections ||
	    r->n_free == 0) {
		if (!r->stopping)
			atomic_fetch_sub_explicit(env->conns, 1, memory_order_relaxed);
		/* Cold path: tell the client why in one blocking write (a fresh
		 * socket's send buffer always has room) and close. */
		uint8_t buf[160];
		int n = sl_frame_encode_error(buf, sizeof(buf),
					      r->stopping ? SLUICE__V1__ERROR_CODE__ERR_DRAINING
							  : SLUICE__V1__ERROR_CODE__ERR_LIMIT,
					      r->stopping ? "server is shutting down"
							  : "connection limit reached");
		if (n > 0 && send(fd, buf, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT) < 0) {
			/* nothing more to do for it */
		}
		close(fd);
		return;
	}
	struct sl_conn *c = calloc(1, sizeof(*c));
	if (!c) {
		atomic_fetch_sub_explicit(env->conns, 1, memory_order_relaxed);
		close(fd);
		return;
	}
	sl_net_tune_conn(fd);
	c->slot = r->free_slots[--r->n_free];
	c->gen = ++r->gens[c->slot];
	c->fd = fd;
	c->state = SL_CONN_HELLO;
	c->deadline_ns = sl_now_ns() + (uint64_t)r->lim.handshake_timeout_ms * 1000000u;
	r->conns[c->slot] = c;
	r->n_conns++;
	r->stats.conns_accepted++;
	sl__conn_arm_recv(r, c);
}

/* ---- receive ----------------------------------------------------------------- */

static void sl__conn_arm_recv(struct sl_reactor *r, struct sl_conn *c)
{
	struct io_uring_sqe *sqe = sl__sqe(r);
	io_uring_prep_recv(sqe, c->fd, NULL, r->buf_size, 0);
	sqe->flags |= IOSQE_BUFFER_SELECT;
	sqe->buf_group = SL_BGID;
	io_uring_sqe_set_data64(sqe, SL_UD(SL_OP_RECV, c->slot));
	c->recv_armed = true;
	c->want_recv = false;
	r->recvs_armed++;
}

static bool sl__conn_may_read(const struct sl_reactor *r, const struct sl_conn *c)
{
	return !r->stopping && !r->throttled && c->state != SL_CONN_CLOSING && !c->read_eof &&
	       sl__conn_out_pending(c) < SL_CONN_OUT_HIGH;
}

/* Appends an encoded frame to the connection's output. */
static int sl__conn_put_msg(struct sl_conn *c, uint8_t type, const ProtobufCMessage *m)
{
	struct sl_buf *b = &c->out[c->sending ^ 1];
	size_t need = sl_frame_msg_size(m);
	if (sl__buf_reserve(b, need) < 0)
		return -ENOMEM;
	int n = sl_frame_encode_msg(type, m, b->p + b->len, b->cap - b->len);
	if (n < 0)
		return n;
	b->len += (uint32_t)n;
	return 0;
}

/* Decodes the control request in `f` for a connection past its Hello, or
 * fails the connection saying what was wrong; NULL then. */
static ProtobufCMessage *sl__conn_request(struct sl_reactor *r, struct sl_conn *c,
					  const struct sl_frame *f, const char *what,
					  const char *message)
{
	ProtobufCMessage *m = NULL;

	if (c->state != SL_CONN_READY) {
		sl__conn_fail(r, c, SLUICE__V1__ERROR_CODE__ERR_STATE, "%s before Hello", what);
		return NULL;
	}
	if (sl_frame_decode_msg(f, &m) < 0) {
		sl__conn_fail(r, c, SLUICE__V1__ERROR_CODE__ERR_MALFORMED,
			      "%s: body is not a valid sluice.v1.%s", what, message);
		return NULL;
	}
	return m;
}

static void sl__on_hello(struct sl_reactor *r, struct sl_conn *c, const struct sl_frame *f)
{
	ProtobufCMessage *m = NULL;
	Sluice__V1__Hello *h;

	if (c->state != SL_CONN_HELLO) {
		sl__conn_fail(r, c, SLUICE__V1__ERROR_CODE__ERR_STATE, "Hello sent twice");
		return;
	}
	if (sl_frame_decode_msg(f, &m) < 0) {
		sl__conn_fail(r, c, SLUICE__V1__ERROR_CODE__ERR_MALFORMED,
			      "Hello: body is not a valid sluice.v1.Hello");
		return;
	}
	h = (Sluice__V1__Hello *)m;
	if (h->min_version > SL_PROTOCOL_VERSION || h->max_version < SL_PROTOCOL_VERSION) {
		sl__conn_fail(r, c, SLUICE__V1__ERROR_CODE__ERR_VERSION,
			      "client speaks protocol versions %u..%u, this server speaks %u",
			      h->min_version, h->max_version, SL_PROTOCOL_VERSION);
		sl_frame_msg_free(m);
		return;
	}
	uint64_t want = h->producer_id, next = 0;
	c->idempotent = !h->idempotence_off;
	sl_frame_msg_free(m);
	/* A known id gets a new epoch, which fences its older sessions: their
	 * next Produce fails (below, and in every partition this epoch has
	 * written to). Hellos are rare; the registry's mutex is never on the
	 * event path. */
	int ret = sl_producers_hello(r->env->producers, want, &c->prod, &c->epoch, &next);
	if (ret < 0) {
		sl__conn_fail(r, c,
			      ret == -ENOSPC ? SLUICE__V1__ERROR_CODE__ERR_LIMIT
					     : SLUICE__V1__ERROR_CODE__ERR_INTERNAL,
			      "producer %" PRIu64 ": %s", want, sl_strerror(ret));
		return;
	}
	c->producer_id = c->prod->id;
	c->expect = next;
	/* A new id starts at 0, and a producer with stored sequences goes on
	 * from them. An id the server knows no sequence of (its data folder
	 * was replaced, or the producer brings its own id) may start anywhere:
	 * its first frame says where. */
	c->seq_known = !want || next > 0;

	Sluice__V1__Welcome w = SLUICE__V1__WELCOME__INIT;
	w.version = SL_PROTOCOL_VERSION;
	w.producer_id = c->producer_id;
	w.epoch = c->epoch;
	w.next_sequence = next;
	/* The events window is the one every partition's sequence table
	 * covers (SL_PRODUCER_WINDOW): a producer within its credits can
	 * retry any event it has not seen answered. The byte window is a
	 * share of the pool; none left: the connection waits for a Credit. */
	bool whole = sl_credit_open(r->credits, &c->cr);
	atomic_fetch_add_explicit(&r->m_credit_events, c->cr.cr_events, memory_order_relaxed);
	w.credit_events = (uint32_t)c->cr.cr_events;
	w.credit_bytes = c->cr.win_bytes;
	if (!whole)
		sl__conn_hold(r, c);
	w.max_frame_bytes = r->lim.max_frame_bytes;
	w.server_name = "sluiced";
	ret = sl__conn_put_msg(c, SLUICE__V1__FRAME_TYPE__FRAME_WELCOME, &w.base);
	if (ret < 0) {
		sl__conn_fail(r, c, SLUICE__V1__ERROR_CODE__ERR_INTERNAL,
			      ret == -ENOMEM ? "out of memory" : "cannot encode Welcome");
		return;
	}
	/* From now on the idle timeout, not the handshake's, applies. */
	c->deadline_ns = sl_now_ns() + (uint64_t)r->lim.idle_timeout_ms * 1000000u;
	c->state = SL_CONN_READY;
	sl__conn_mark_flush(r, c);
}

/* What an event costs in credit bytes (wire.proto Credit). */
static inline uint32_t sl__cost(const struct sl_event_view *ev)
{
	return (uint32_t)ev->raw_len + SL_CREDIT_EVENT_OVERHEAD;
}

/* Answers one event of a Produce that will not be stored (its `len` bytes
 * of credit come back with the answer). */
static void sl__conn_refuse(struct sl_reactor *r, struct sl_conn *c, uint64_t base_seq,
			    uint32_t index, int32_t code, uint32_t len)
{
	struct sl_xack a = {
		.base_seq = base_seq, .conn = c->slot, .gen = c->gen, .index = index,
		.status = code, .len = len,
	};
	sl__conn_ack(r, &a);
}

/*
 * The topic's overload policy for an event bound to a pressured partition
 * (never called for `block`: there, credits stop instead). Returns true
 * when the event was answered here (shed or refused), false to store it.
 */
static bool sl__overload(struct sl_reactor *r, struct sl_conn *c, const struct sl_produce *pr,
			 struct sl_topic *t, struct sl_partition *part, uint32_t index,
			 const struct sl_event_view *ev)
{
	struct sl_xack a = {
		.base_seq = pr->base_sequence, .conn = c->slot, .gen = c->gen, .index = index,
		.partition = part->id, .len = sl__cost(ev), .topic = (uint16_t)t->index,
	};
	switch (t->overload) {
	case SL_OVERLOAD_SAMPLE: {
		/* By the event's id, so a retry is judged like its original;
		 * an event without one (the client library always sets one)
		 * by its bytes. */
		uint64_t h = ev->id ? XXH3_64bits(ev->id, SL_EVENT_ID_LEN)
				    : XXH3_64bits(ev->raw, ev->raw_len);
		if (h < t->sample_below)
			return false;
		atomic_fetch_add_explicit(&part->sampled_out, 1, memory_order_relaxed);
		a.flags = SL_ACK_DROPPED;
		break;
	}
	case SL_OVERLOAD_DROP:
		atomic_fetch_add_explicit(&part->dropped, 1, memory_order_relaxed);
		a.flags = SL_ACK_DROPPED;
		break;
	case SL_OVERLOAD_REJECT:
		atomic_fetch_add_explicit(&part->rejected, 1, memory_order_relaxed);
		a.status = SLUICE__V1__ERROR_CODE__ERR_OVERLOAD;
		break;
	default:
		return false;
	}
	sl__conn_ack(r, &a);
	return true;
}

/* Sends one event of a Produce to its partition (here or on its owner). */
static void sl__produce_one(struct sl_reactor *r, struct sl_conn *c, const struct sl_produce *pr,
			    struct sl_topic *t, uint32_t index, const struct sl_event_view *ev)
{
	uint32_t p = sl_part_of_key(&t->part, ev->aggregate, ev->aggregate_len);
	struct sl_partition *part = &t->parts[p];
	int ret;

	if (t->overload != SL_OVERLOAD_BLOCK &&
	    atomic_load_explicit(&part->pressured, memory_order_relaxed) &&
	    sl__overload(r, c, pr, t, part, index, ev))
		return;

	/* Producer id 0 tells the partition not to deduplicate (and is what
	 * the log stores for such events, so recovery skips them too). */
	uint64_t pid = c->idempotent ? c->producer_id : 0;
	if (part->owner == r->id) {
		struct sl_ack_ref ref = {
			.base_seq = pr->base_sequence, .conn = c->slot, .gen = c->gen,
			.index = index, .len = sl__cost(ev), .core = (uint16_t)r->id,
		};
		ret = sl__part_produce(r, part, pid, c->epoch, pr->base_sequence + index, ev->raw,
				       (uint32_t)ev->raw_len, &ref);
	} else {
		struct sl_xev x = {
			.base_seq = pr->base_sequence, .producer_id = pid,
			.epoch = c->epoch, .conn = c->slot, .gen = c->gen,
			.index = index, .topic = (uint16_t)t->index, .partition = p,
			.len = (uint32_t)ev->raw_len,
		};
		ret = sl__xsend_event(r, part->owner, &x, ev->raw);
	}
	if (ret < 0)
		sl__conn_refuse(r, c, pr->base_sequence, index, (int32_t)sl_proto_wire_error(ret),
				sl__cost(ev));
}

static void sl__on_produce(struct sl_reactor *r, struct sl_conn *c, const struct sl_frame *f)
{
	struct sl_produce pr;
	struct sl_proto_error perr;
	struct sl_event_iter it;
	struct sl_event_view ev;

	if (c->state != SL_CONN_READY) {
		sl__conn_fail(r, c, SLUICE__V1__ERROR_CODE__ERR_STATE, "Produce before Hello");
		return;
	}
	/* One pass validates the frame and fills the views of its events
	 * (perf showed the second scan of scan-then-iterate as the top
	 * server symbol, 12.6%); frames with more events than the scratch
	 * holds fall back to the iterator. */
	if (sl_produce_scan_views(f->body, f->body_len, &pr, r->views, SL_PRODUCE_VIEWS, &perr) < 0) {
		sl__conn_fail(r, c, sl_proto_error_wire_code(&perr), "Produce: %s", perr.reason);
		return;
	}
	/* Credits: the frame's events and their cost in credit bytes. */
	uint64_t bytes = (uint64_t)pr.n_events * SL_CREDIT_EVENT_OVERHEAD;
	if (pr.n_events <= SL_PRODUCE_VIEWS) {
		for (uint32_t i = 0; i < pr.n_events; i++)
			bytes += r->views[i].raw_len;
	} else {
		sl_produce_iter_init(&pr, &it);
		while (sl_event_iter_next(&it, &ev) > 0)
			bytes += ev.raw_len;
	}
	/* Beyond the credits: cut off (credit.h, wire.proto). */
	if (!sl_credit_spend(&c->cr, pr.n_events, bytes)) {
		atomic_fetch_add_explicit(&r->m_credit_cut, 1, memory_order_relaxed);
		sl__conn_fail(r, c, SLUICE__V1__ERROR_CODE__ERR_CREDIT,
			      "Produce of %u events (%" PRIu64 " bytes) beyond the credits granted "
			      "(%" PRIu64 " events, %" PRId64 " bytes)",
			      pr.n_events, bytes, c->cr.cr_events, c->cr.cr_bytes);
		return;
	}
	if (c->idempotent && !sl_producer_is_current(c->prod, c->epoch)) {
		/* A newer session of this producer id said hello: this one is
		 * a zombie. Fatal for the session, as the contract says. */
		r->stats.fenced++;
		sl__conn_fail(r, c, SLUICE__V1__ERROR_CODE__ERR_FENCED,
			      "producer %" PRIu64 " epoch %u is fenced by a newer session",
			      c->producer_id, c->epoch);
		return;
	}
	int32_t refuse = 0;
	if (pr.epoch && pr.epoch != c->epoch)
		refuse = SLUICE__V1__ERROR_CODE__ERR_FENCED;
	else if (c->idempotent && pr.base_sequence > c->expect && c->seq_known)
		/* A gap: sequences [expect, base) were never sent. Accepting
		 * these would let a lost frame go unnoticed. */
		refuse = SLUICE__V1__ERROR_CODE__ERR_SEQUENCE;
	else if (pr.base_sequence + pr.n_events > SL_DEDUP_SEQ_LIMIT ||
		 pr.base_sequence + pr.n_events < pr.base_sequence)
		refuse = SLUICE__V1__ERROR_CODE__ERR_SEQUENCE;
	if (refuse == SLUICE__V1__ERROR_CODE__ERR_SEQUENCE)
		r->stats.seq_refused += pr.n_events;
	/* Sequences of a frame past these checks are used up, even when its
	 * events are refused below (unknown topic, storage): a producer does
	 * not send a refused event again under the same sequence. */
	if (!refuse)
		c->seq_known = true;
	if (!refuse && c->idempotent && pr.base_sequence + pr.n_events > c->expect) {
		c->expect = pr.base_sequence + pr.n_events;
		sl_producer_accepted(c->prod, c->expect);
	}
	struct sl_topic *t = NULL;
	if (!refuse && !(t = sl_topics_find(r->topics, pr.topic, pr.topic_len)))
		refuse = SLUICE__V1__ERROR_CODE__ERR_UNKNOWN_TOPIC;

	c->cr.unacked += pr.n_events;
	r->stats.events_in += pr.n_events;
	if (refuse) {
		/* The frame's bytes come back at once, its events one by one. */
		c->cr.in_bytes -= bytes;
		for (uint32_t i = 0; i < pr.n_events; i++)
			sl__conn_refuse(r, c, pr.base_sequence, i, refuse, 0);
		return;
	}
	if (pr.n_events <= SL_PRODUCE_VIEWS) {
		for (uint32_t i = 0; i < pr.n_events; i++)
			sl__produce_one(r, c, &pr, t, i, &r->views[i]);
		return;
	}
	sl_produce_iter_init(&pr, &it);
	while (sl_event_iter_next(&it, &ev) > 0)
		sl__produce_one(r, c, &pr, t, it.index - 1, &ev);
}


/* A FetchResult carrying only an error, answered by the reactor itself. */
static void sl__fetch_refuse(struct sl_reactor *r, struct sl_conn *c, const Sluice__V1__Fetch *fe,
			     uint32_t code, const char *fmt, ...) __attribute__((format(printf, 5, 6)));
static void sl__fetch_refuse(struct sl_reactor *r, struct sl_conn *c, const Sluice__V1__Fetch *fe,
			     uint32_t code, const char *fmt, ...)
{
	char msg[256];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	Sluice__V1__FetchResult res = SLUICE__V1__FETCH_RESULT__INIT;
	res.request_id = fe->request_id;
	res.topic = fe->topic;
	res.partition = fe->partition;
	res.base_offset = fe->offset;
	res.error = (Sluice__V1__ErrorCode)code;
	res.message = msg;
	if (sl__conn_put_msg(c, SLUICE__V1__FRAME_TYPE__FRAME_FETCH_RESULT, &res.base) < 0)
		sl__conn_fail(r, c, SLUICE__V1__ERROR_CODE__ERR_INTERNAL, "out of memory");
	sl__conn_mark_flush(r, c);
}

/* Longest a Fetch may wait for new data. */
#define SL_FETCH_MAX_WAIT_MS 30000

static void sl__on_fetch(struct sl_reactor *r, struct sl_conn *c, const struct sl_frame *f)
{
	ProtobufCMessage *m = sl__conn_request(r, c, f, "Fetch", "Fetch");
	if (!m)
		return;
	Sluice__V1__Fetch *fe = (Sluice__V1__Fetch *)m;
	struct sl_topic *t = sl_topics_find(r->topics, fe->topic, strlen(fe->topic));
	if (!t) {
		sl__fetch_refuse(r, c, fe, SLUICE__V1__ERROR_CODE__ERR_UNKNOWN_TOPIC,
				 "unknown topic '%s'", fe->topic);
		goto out;
	}
	if (fe->partition >= t->n_parts) {
		sl__fetch_refuse(r, c, fe, SLUICE__V1__ERROR_CODE__ERR_UNKNOWN_TOPIC,
				 "topic '%s' has partitions 0..%u, not %u", fe->topic, t->n_parts - 1,
				 fe->partition);
		goto out;
	}
	struct sl_fetch_req *req = calloc(1, sizeof(*req));
	if (!req) {
		sl__fetch_refuse(r, c, fe, SLUICE__V1__ERROR_CODE__ERR_INTERNAL, "out of memory");
		goto out;
	}
	uint32_t wait = fe->wait_ms < SL_FETCH_MAX_WAIT_MS ? fe->wait_ms : SL_FETCH_MAX_WAIT_MS;
	*req = (struct sl_fetch_req){
		.conn = c->slot, .gen = c->gen, .reactor = r->id, .topic = t->index,
		.partition = fe->partition, .offset = fe->offset, .max_events = fe->max_events,
		.max_bytes = fe->max_bytes, .request_id = fe->request_id,
		.deadline_ns = sl_now_ns() + (uint64_t)wait * 1000000u,
	};
	if (r->stopping || sl_reader_submit(r->env->reader, req) < 0) {
		free(req);
		sl__fetch_refuse(r, c, fe,
				 r->stopping ? SLUICE__V1__ERROR_CODE__ERR_DRAINING
					     : SLUICE__V1__ERROR_CODE__ERR_OVERLOAD,
				 r->stopping ? "server is shutting down" : "too many fetches in flight");
		goto out;
	}
	c->owed++;
out:
	sl_frame_msg_free(m);
}

static void sl__on_metadata(struct sl_reactor *r, struct sl_conn *c, const struct sl_frame *f)
{
	const struct sl_topics *ts = r->topics;
	ProtobufCMessage *m = sl__conn_request(r, c, f, "Metadata", "MetadataRequest");
	if (!m)
		return;
	Sluice__V1__MetadataRequest *q = (Sluice__V1__MetadataRequest *)m;
	Sluice__V1__Metadata md = SLUICE__V1__METADATA__INIT;
	md.request_id = q->request_id;
	/* Cold path: one answer per `sluice consume` or `status`; plain
	 * allocations are fine here. */
	Sluice__V1__TopicInfo *tinfo = calloc(ts->n ? ts->n : 1, sizeof(*tinfo));
	Sluice__V1__TopicInfo **tptr = calloc(ts->n ? ts->n : 1, sizeof(*tptr));
	uint32_t total = 0;
	for (uint32_t i = 0; i < ts->n; i++)
		total += ts->v[i].n_parts;
	Sluice__V1__PartitionInfo *pinfo = calloc(total ? total : 1, sizeof(*pinfo));
	Sluice__V1__PartitionInfo **pptr = calloc(total ? total : 1, sizeof(*pptr));
	if (!tinfo || !tptr || !pinfo || !pptr) {
		sl__conn_fail(r, c, SLUICE__V1__ERROR_CODE__ERR_INTERNAL, "out of memory");
		goto out;
	}
	uint32_t k = 0;
	for (uint32_t i = 0; i < ts->n; i++) {
		const struct sl_topic *t = &ts->v[i];
		if (q->topic[0] && strcmp(q->topic, t->name) != 0)
			continue;
		Sluice__V1__TopicInfo *ti = &tinfo[md.n_topics];
		sluice__v1__topic_info__init(ti);
		ti->name = t->name;
		ti->partitions = &pptr[k];
		for (uint32_t p = 0; p < t->n_parts; p++, k++) {
			struct sl_partition *part = &t->parts[p];
			sluice__v1__partition_info__init(&pinfo[k]);
			pinfo[k].partition = p;
			pinfo[k].start_offset = atomic_load_explicit(&part->start_pub, memory_order_relaxed);
			pinfo[k].end_offset = atomic_load_explicit(&part->durable_pub, memory_order_acquire);
			pptr[k] = &pinfo[k];
			ti->n_partitions++;
		}
		tptr[md.n_topics++] = ti;
	}
	md.topics = tptr;
	if (q->topic[0] && !md.n_topics) {
		md.error = SLUICE__V1__ERROR_CODE__ERR_UNKNOWN_TOPIC;
		md.message = "unknown topic";
	}
	if (sl__conn_put_msg(c, SLUICE__V1__FRAME_TYPE__FRAME_METADATA_RESULT, &md.base) < 0)
		sl__conn_fail(r, c, SLUICE__V1__ERROR_CODE__ERR_INTERNAL, "out of memory");
	sl__conn_mark_flush(r, c);
out:
	free(tinfo);
	free(tptr);
	free(pinfo);
	free(pptr);
	sl_frame_msg_free(m);
}

void sl__conns_take_fetches(struct sl_reactor *r)
{
	struct sl_fetch_req *req;
	while ((req = sl_reader_take(r->env->reader, r->id))) {
		struct sl_conn *c = req->conn < r->conn_cap ? r->conns[req->conn] : NULL;
		if (c && c->gen == req->gen) {
			c->owed--;
			struct sl_buf *b = &c->out[c->sending ^ 1];
			if (!req->frame || sl__buf_reserve(b, req->frame_len) < 0) {
				sl__conn_fail(r, c, SLUICE__V1__ERROR_CODE__ERR_INTERNAL,
					      "out of memory answering a Fetch");
			} else {
				memcpy(b->p + b->len, req->frame, req->frame_len);
				b->len += req->frame_len;
				sl__conn_mark_flush(r, c);
			}
		}
		free(req->frame);
		free(req);
	}
}

static void sl__on_frame(struct sl_reactor *r, struct sl_conn *c, const struct sl_frame *f)
{
	switch (f->type) {
	case SLUICE__V1__FRAME_TYPE__FRAME_PRODUCE:
		sl__on_produce(r, c, f);
		break;
	case SLUICE__V1__FRAME_TYPE__FRAME_HELLO:
		sl__on_hello(r, c, f);
		break;
	case SLUICE__V1__FRAME_TYPE__FRAME_FETCH:
		sl__on_fetch(r, c, f);
		break;
	case SLUICE__V1__FRAME_TYPE__FRAME_METADATA:
		sl__on_metadata(r, c, f);
		break;
	case SLUICE__V1__FRAME_TYPE__FRAME_COMMIT:
		sl__conn_fail(r, c, SLUICE__V1__ERROR_CODE__ERR_UNKNOWN_TYPE,
			      "%s is not served by this server yet", sl_frame_type_name(f->type));
		break;
	default:
		if (sl_frame_type_check(f->type) < 0)
			sl__conn_fail(r, c, SLUICE__V1__ERROR_CODE__ERR_UNKNOWN_TYPE,
				      "unknown frame type %u", f->type);
		else
			sl__conn_fail(r, c, SLUICE__V1__ERROR_CODE__ERR_STATE,
				      "%s is a server-to-client message",
				      sl_frame_type_name(f->type));
		break;
	}
}

static void sl__conn_bad_frame(struct sl_reactor *r, struct sl_conn *c, int err, uint32_t len)
{
	if (err == -SL_EFRAME_TOO_BIG)
		sl__conn_fail(r, c, SLUICE__V1__ERROR_CODE__ERR_FRAME_TOO_BIG,
			      "frame length %u exceeds max_frame_bytes %u", len,
			      r->lim.max_frame_bytes);
	else
		sl__conn_fail(r, c, SLUICE__V1__ERROR_CODE__ERR_MALFORMED,
			      "bad frame header: length %u (a frame holds at least its type byte)",
			      len);
}

static uint32_t sl__le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static int sl__rbuf_reserve(struct sl_conn *c, uint32_t need)
{
	if (c->rcap >= need)
		return 0;
	uint32_t cap = need < 4096 ? 4096 : need;
	uint8_t *p = realloc(c->rbuf, cap);
	if (!p)
		return -ENOMEM;
	c->rbuf = p;
	c->rcap = cap;
	return 0;
}

/* Feeds received bytes to the connection; frames are handled in place. */
static void sl__conn_input(struct sl_reactor *r, struct sl_conn *c, const uint8_t *p, size_t n)
{
	uint32_t max = r->lim.max_frame_bytes;
	struct sl_frame f;
	int ret;

	if (c->rlen) {
		/* A frame started in an earlier buffer: complete it first. The
		 * header tells its size before we reserve room for it. */
		if (c->rlen < SL_FRAME_HDR_LEN) {
			size_t take = SL_FRAME_HDR_LEN - c->rlen;
			if (take > n)
				take = n;
			memcpy(c->rbuf + c->rlen, p, take);
			c->rlen += (uint32_t)take;
			p += take;
			n -= take;
			if (c->rlen < SL_FRAME_HDR_LEN)
				return;
		}
		ret = sl_frame_parse(c->rbuf, c->rlen, max, &f);
		if (ret < 0) {
			sl__conn_bad_frame(r, c, ret, sl__le32(c->rbuf));
			return;
		}
		if (ret == 0) {
			if (sl__rbuf_reserve(c, f.need) < 0) {
				sl__conn_fail(r, c, SLUICE__V1__ERROR_CODE__ERR_INTERNAL,
					      "out of memory");
				return;
			}
			size_t take = f.need - c->rlen;
			if (take > n)
				take = n;
			memcpy(c->rbuf + c->rlen, p, take);
			c->rlen += (uint32_t)take;
			p += take;
			n -= take;
			if (c->rlen < f.need)
				return;
			ret = sl_frame_parse(c->rbuf, c->rlen, max, &f);
		}
		c->rlen = 0;
		if (ret > 0)
			sl__on_frame(r, c, &f);
		if (c->rcap > 64 * 1024) {
			/* A big frame came through; do not keep its buffer. */
			free(c->rbuf);
			c->rbuf = NULL;
			c->rcap = 0;
		}
	}
	while (n && c->state != SL_CONN_CLOSING) {
		ret = sl_frame_parse(p, n, max, &f);
		if (ret > 0) {
			sl__on_frame(r, c, &f);
			p += ret;
			n -= (size_t)ret;
			continue;
		}
		if (ret < 0) {
			sl__conn_bad_frame(r, c, ret, n >= 4 ? sl__le32(p) : 0);
			return;
		}
		/* Partial frame at the end of the buffer: keep it. */
		uint32_t need = f.need > n ? f.need : (uint32_t)n;
		if (sl__rbuf_reserve(c, need < SL_FRAME_HDR_LEN ? SL_FRAME_HDR_LEN : need) < 0) {
			sl__conn_fail(r, c, SLUICE__V1__ERROR_CODE__ERR_INTERNAL, "out of memory");
			return;
		}
		memcpy(c->rbuf, p, n);
		c->rlen = (uint32_t)n;
		break;
	}
}

void sl__conn_on_recv(struct sl_reactor *r, uint32_t slot, int res, uint32_t flags)
{
	struct sl_conn *c = r->conns[slot];

	r->recvs_armed--;
	c->recv_armed = false;
	if (res > 0) {
		uint16_t bid = (uint16_t)(flags >> IORING_CQE_BUFFER_SHIFT);
		if (c->state != SL_CONN_CLOSING) {
			if (c->state == SL_CONN_READY)
				c->deadline_ns = sl_now_ns() +
						 (uint64_t)r->lim.idle_timeout_ms * 1000000u;
			sl__conn_input(r, c, r->bufs + (size_t)bid * r->buf_size, (size_t)res);
		}
		/* Everything was copied out or handled: the buffer goes back at
		 * the end of this turn. */
		sl__buf_recycle(r, bid);
	} else if (res == -ENOBUFS) {
		/* All receive buffers are being processed this turn; retry. */
		if (!r->stopping)
			sl__conn_mark_resume(r, c);
	} else if (res == 0 || res == -ECANCELED) {
		/* The peer closed its side (or we stopped reading): answer what
		 * it sent, then close. */
		c->read_eof = true;
		c->deadline_ns = 0;
	} else {
		c->read_eof = true;
		if (c->state != SL_CONN_CLOSING)
			c->state = SL_CONN_CLOSING;
		c->out[0].len = c->out[1].len = 0;
	}
	if (c->recv_armed)
		return;
	if (sl__conn_may_read(r, c))
		sl__conn_arm_recv(r, c);
	else if (!c->read_eof && c->state != SL_CONN_CLOSING && !r->stopping)
		sl__conn_mark_resume(r, c);
	sl__conn_mark_flush(r, c);
}

/* ---- acks and output ------------------------------------------------------ */

void sl__conn_ack(struct sl_reactor *r, const struct sl_xack *a)
{
	struct sl_conn *c = a->conn < r->conn_cap ? r->conns[a->conn] : NULL;

	/* ---- pipelines: the ack of a stage's output, not a connection's */
	if (a->conn & SL_CONN_PIPE) {
		if (a->conn & SL_CONN_PROJ)
			sl__proj_emit_ack(r, a);
		else
			sl__pipe_ack(r, a);
		return;
	}
	/* ---- */
	if (!c || c->gen != a->gen) {
		/* Its connection is gone (the producer will retry); the bytes
		 * it had in flight go back to the pool (sl__conn_free). */
		sl_credit_pool_give(r->credits, (int64_t)a->len);
		return;
	}
	if (c->n_acks == c->cap_acks) {
		uint32_t cap = c->cap_acks ? c->cap_acks * 2 : 256;
		struct sl_conn_ack *v = realloc(c->acks, (size_t)cap * sizeof(*v));
		if (!v) {
			sl__conn_fail(r, c, SLUICE__V1__ERROR_CODE__ERR_INTERNAL, "out of memory");
			return;
		}
		c->acks = v;
		c->cap_acks = cap;
	}
	c->acks[c->n_acks++] = (struct sl_conn_ack){
		.base_seq = a->base_seq, .offset = a->offset, .index = a->index,
		.partition = a->partition, .status = a->status, .flags = a->flags,
	};
	sl_credit_answered(&c->cr, a->len,
			   !a->status && !(a->flags & SL_ACK_DROPPED) &&
				   r->topics->v[a->topic].overload == SL_OVERLOAD_BLOCK
			       ? SL_PMASK_BIT(a->topic, a->partition)
			       : 0);
	r->stats.acks_out++;
	sl__conn_mark_flush(r, c);
}

/* Largest Ack frame we build at once: bounds the scratch arrays. */
#define SL_ACK_MAX_PARTS 256

/*
 * Encodes pending acks into Ack frames. Consecutive acks of the same Produce
 * go into one frame; within it, events stored at consecutive offsets of one
 * partition become one part (the common case: a batch for one key).
 */
static int sl__conn_encode_acks(struct sl_reactor *r, struct sl_conn *c)
{
	struct sl_ack_part parts[SL_ACK_MAX_PARTS];
	struct sl_ack_reject rejects[SL_ACK_MAX_PARTS];
	uint32_t idx[SL_ACK_MAX_PARTS * 4];
	struct sl_buf *b = &c->out[c->sending ^ 1];
	uint32_t i = 0;

	while (i < c->n_acks) {
		struct sl_ack ack = {.base_sequence = c->acks[i].base_seq};
		uint32_t n_idx = 0;
		size_t np = 0, nr = 0;

		while (i < c->n_acks && c->acks[i].base_seq == ack.base_sequence &&
		       n_idx < SL_ARRAY_LEN(idx)) {
			const struct sl_conn_ack *a = &c->acks[i];
			if (a->status) {
				struct sl_ack_reject *rj = nr ? &rejects[nr - 1] : NULL;
				if (!rj || rj->code != (uint32_t)a->status ||
				    rj->index.v + rj->index.n != &idx[n_idx]) {
					if (nr == SL_ACK_MAX_PARTS)
						break;
					rj = &rejects[nr++];
					*rj = (struct sl_ack_reject){.code = (uint32_t)a->status};
					if (a->status == SLUICE__V1__ERROR_CODE__ERR_OVERLOAD)
						rj->retry_after_ms = SL_RETRY_AFTER_MS;
					rj->index.v = &idx[n_idx];
				}
				idx[n_idx++] = a->index;
				rj->index.n++;
			} else {
				struct sl_ack_part *pt = np ? &parts[np - 1] : NULL;
				bool dup = a->flags & SL_ACK_DUP;
				bool unknown = a->flags & SL_ACK_OFFSET_UNKNOWN;
				bool dropped = a->flags & SL_ACK_DROPPED;
				if (!pt || pt->partition != a->partition ||
				    pt->duplicate != dup || pt->offset_unknown != unknown ||
				    pt->dropped != dropped ||
				    (!unknown && !dropped &&
				     pt->base_offset + pt->index.n != a->offset) ||
				    pt->index.v + pt->index.n != &idx[n_idx]) {
					if (np == SL_ACK_MAX_PARTS)
						break;
					pt = &parts[np++];
					*pt = (struct sl_ack_part){.partition = a->partition,
								   .base_offset = a->offset,
								   .duplicate = dup,
								   .offset_unknown = unknown,
								   .dropped = dropped};
					pt->index.v = &idx[n_idx];
				}
				idx[n_idx++] = a->index;
				pt->index.n++;
			}
			i++;
		}
		ack.parts = parts;
		ack.n_parts = np;
		ack.rejects = rejects;
		ack.n_rejects = nr;
		size_t need = sl_ack_frame_size(&ack);
		if (!need || sl__buf_reserve(b, need) < 0)
			return -ENOMEM;
		int n = sl_ack_encode(b->p + b->len, b->cap - b->len, &ack);
		if (n < 0)
			return n;
		b->len += (uint32_t)n;
	}
	c->n_acks = 0;
	return 0;
}

static void sl__conn_start_send(struct sl_reactor *r, struct sl_conn *c)
{
	struct sl_buf *b = &c->out[c->sending];
	struct io_uring_sqe *sqe = sl__sqe(r);
	io_uring_prep_send(sqe, c->fd, b->p + c->sent, b->len - c->sent, MSG_NOSIGNAL);
	io_uring_sqe_set_data64(sqe, SL_UD(SL_OP_SEND, c->slot));
	c->send_armed = true;
}

/* Starts sending what has been queued, if nothing is in flight. */
static void sl__conn_kick_send(struct sl_reactor *r, struct sl_conn *c)
{
	if (c->send_armed)
		return;
	if (c->out[c->sending].len == 0) {
		if (c->out[c->sending ^ 1].len == 0)
			return;
		c->sending ^= 1;
		c->sent = 0;
	}
	sl__conn_start_send(r, c);
}

void sl__conn_on_send(struct sl_reactor *r, uint32_t slot, int res)
{
	struct sl_conn *c = r->conns[slot];
	struct sl_buf *b = &c->out[c->sending];

	c->send_armed = false;
	if (res < 0) {
		/* The peer is gone: nothing more can reach it. */
		c->out[0].len = c->out[1].len = 0;
		c->sent = 0;
		if (c->state != SL_CONN_CLOSING)
			c->state = SL_CONN_CLOSING;
		if (c->recv_armed)
			shutdown(c->fd, SHUT_RDWR);
		sl__conn_maybe_close(r, c);
		return;
	}
	c->sent += (uint32_t)res;
	if (c->sent == b->len) {
		b->len = 0;
		c->sent = 0;
	}
	sl__conn_kick_send(r, c);
	if (c->want_recv && !c->recv_armed && sl__conn_may_read(r, c))
		sl__conn_arm_recv(r, c);
	sl__conn_maybe_close(r, c);
}

/* Closes a connection that is done: nothing in flight, nothing to send, and
 * either failed or read to the end with every event answered. */
static void sl__conn_maybe_close(struct sl_reactor *r, struct sl_conn *c)
{
	if (c->recv_armed || c->send_armed || c->on_flush_list)
		return;
	if (sl__conn_out_pending(c) || c->n_acks)
		return;
	bool done = c->state == SL_CONN_CLOSING || (c->read_eof && c->cr.unacked == 0 && c->owed == 0);
	if (!done)
		return;
	if (c->on_resume_list) {
		c->want_recv = false; /* unlinked lazily by sl__conns_resume */
		c->state = SL_CONN_CLOSING;
		return;
	}
	close(c->fd);
	sl__conn_free(r, c);
}

uint64_t sl__pressure_mask(const struct sl_reactor *r)
{
	uint64_t m = 0;
	for (uint32_t i = 0; i < r->n; i++)
		m |= atomic_load_explicit(&r->env->peers[i]->pmask.value, memory_order_relaxed);
	return m;
}

/*
 * Grants a connection the room its answers freed in its windows, in one
 * Credit frame, unless a pressured partition of a `block` topic answered
 * some of them: then it waits on the held list (sl__conns_unhold).
 */
static void sl__conn_credit(struct sl_reactor *r, struct sl_conn *c)
{
	struct sl_credit_grant g;

	if (c->state != SL_CONN_READY || !c->cr.credited)
		return;
	if (c->cr.hold_mask) {
		uint64_t m = sl__pressure_mask(r);
		if (sl_credit_held(&c->cr, m)) {
			sl__conn_hold(r, c);
			r->held_seen = m;
			return;
		}
	}
	sl_credit_grant(r->credits, &c->cr, &g);
	/* The pool ran short: try again at the next tick. */
	if (g.short_)
		sl__conn_hold(r, c);
	else
		sl__conn_unlink_held(r, c);
	if (!g.send)
		return;
	Sluice__V1__Credit cr = SLUICE__V1__CREDIT__INIT;
	cr.events = (uint32_t)g.events;
	cr.bytes = g.bytes;
	if (sl__conn_put_msg(c, SLUICE__V1__FRAME_TYPE__FRAME_CREDIT, &cr.base) < 0) {
		sl__conn_fail(r, c, SLUICE__V1__ERROR_CODE__ERR_INTERNAL, "out of memory");
		return;
	}
	sl_credit_granted(&c->cr, &g);
	atomic_fetch_add_explicit(&r->m_credit_events, g.events, memory_order_relaxed);
	atomic_fetch_add_explicit(&r->m_credit_frames, 1, memory_order_relaxed);
}

/* Re-examines the held connections when the pressure they wait on may have
 * eased: every tick, and whenever the mask changed. */
void sl__conns_unhold(struct sl_reactor *r, bool tick)
{
	if (!r->held_head)
		return;
	if (!tick && sl__pressure_mask(r) == r->held_seen)
		return;
	for (struct sl_conn *c = r->held_head; c; c = c->held_next)
		sl__conn_mark_flush(r, c);
}

void sl__conns_flush(struct sl_reactor *r)
{
	struct sl_conn *c = r->flush_head;

	r->flush_head = NULL;
	while (c) {
		struct sl_conn *next = c->flush_next;
		c->on_flush_list = false;
		if (c->n_acks && sl__conn_encode_acks(r, c) < 0)
			sl__conn_fail(r, c, SLUICE__V1__ERROR_CODE__ERR_INTERNAL,
				      "cannot encode acks");
		sl__conn_credit(r, c);
		if (c->state == SL_CONN_CLOSING && c->recv_armed && !c->read_eof) {
			/* Stop reading: the recv completes with 0 or -ECANCELED. */
			struct io_uring_sqe *sqe = sl__sqe(r);
			io_uring_prep_cancel64(sqe, SL_UD(SL_OP_RECV, c->slot), 0);
			io_uring_sqe_set_data64(sqe, SL_UD(SL_OP_NONE, 0));
			c->read_eof = true;
		}
		sl__conn_kick_send(r, c);
		sl__conn_maybe_close(r, c);
		c = next;
	}
}

void sl__conns_resume(struct sl_reactor *r)
{
	struct sl_conn *c = r->resume_head, *keep = NULL;

	r->resume_head = NULL;
	while (c) {
		struct sl_conn *next = c->resume_next;
		c->on_resume_list = false;
		if (c->want_recv && !c->recv_armed && sl__conn_may_read(r, c)) {
			sl__conn_arm_recv(r, c);
		} else if (c->want_recv && c->state != SL_CONN_CLOSING && !r->stopping) {
			c->on_resume_list = true;
			c->resume_next = keep;
			keep = c;
		} else {
			sl__conn_maybe_close(r, c);
		}
		c = next;
	}
	r->resume_head = keep;
}

void sl__conn_timeout(struct sl_reactor *r, struct sl_conn *c)
{
	if (c->state == SL_CONN_HELLO)
		sl__conn_fail(r, c, SLUICE__V1__ERROR_CODE__ERR_TIMEOUT, "no Hello within %u ms",
			      r->lim.handshake_timeout_ms);
	else if (c->state == SL_CONN_READY && c->on_held_list)
		/* Quiet because we withhold its credits: not its fault. */
		c->deadline_ns = sl_now_ns() + (uint64_t)r->lim.idle_timeout_ms * 1000000u;
	else if (c->state == SL_CONN_READY && c->cr.unacked == 0 && c->owed == 0)
		sl__conn_fail(r, c, SLUICE__V1__ERROR_CODE__ERR_TIMEOUT, "idle for %u ms",
			      r->lim.idle_timeout_ms);
	else
		c->deadline_ns = 0;
}

void sl__conns_stop_reading(struct sl_reactor *r)
{
	for (uint32_t i = 0; i < r->conn_cap; i++) {
		struct sl_conn *c = r->conns[i];
		if (!c)
			continue;
		c->want_recv = false;
		if (c->recv_armed) {
			struct io_uring_sqe *sqe = sl__sqe(r);
			io_uring_prep_cancel64(sqe, SL_UD(SL_OP_RECV, c->slot), 0);
			io_uring_sqe_set_data64(sqe, SL_UD(SL_OP_NONE, 0));
		}
		sl__conn_mark_flush(r, c);
	}
}

bool sl__conns_flushed(struct sl_reactor *r)
{
	if (r->flush_head)
		return false;
	for (uint32_t i = 0; i < r->conn_cap; i++) {
		struct sl_conn *c = r->conns[i];
		if (c && (c->send_armed || sl__conn_out_pending(c) || c->n_acks))
			return false;
	}
	return true;
}

void sl__conns_close_all(struct sl_reactor *r)
{
	for (uint32_t i = 0; i < r->conn_cap; i++) {
		struct sl_conn *c = r->conns[i];
		if (!c)
			continue;
		/* Anything still in flight was cancelled or is moot; the ring
		 * goes away with the thread, so no completion can follow. */
		close(c->fd);
		sl__conn_free(r, c);
	}
	r->flush_head = NULL;
	r->resume_head = NULL;
}
