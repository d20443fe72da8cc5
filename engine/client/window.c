/*
 * libsluice's producer side of the window: batch buffers and the ring of
 * sealed batches, credits, answering events from Acks, and re-encoding
 * unanswered events for a new connection. The invariants are client.c's.
 * Runs on the thread that calls the client (sluice/client.h).
 */
#include "client/client_impl.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/uio.h>
#include <unistd.h>

/* Spends credits on a frame of n events and `bytes` credit bytes, if they
 * cover it (or it is the one frame beyond its byte credits that a
 * connection with nothing unanswered may send). */
static bool sl__pay(struct sl_client *c, uint32_t n, uint64_t bytes)
{
	if (n > c->cr_events)
		return false;
	/* Beyond them the credits go below zero: a debt the next grants pay,
	 * exactly as the server counts it, whatever order our spending and
	 * its grants cross in. */
	if ((int64_t)bytes > c->cr_bytes && c->sess_inflight != 0)
		return false;
	c->cr_bytes -= (int64_t)bytes;
	c->cr_events -= n;
	c->sess_inflight += n;
	return true;
}

/* Clears for writing every frame, in order, that the credits pay for. */
void sl__client_credit_advance(struct sl_client *c)
{
	bool waiting = false;

	if (c->state != SL__READY)
		return;
	while (c->rs_head < c->rs_n) {
		const struct sl__rsframe *f = &c->rs[c->rs_head];
		if (!sl__pay(c, f->n, f->bytes)) {
			waiting = true;
			break;
		}
		c->out_lim = f->end;
		c->rs_head++;
	}
	if (!waiting) {
		c->rs_head = c->rs_n = 0;
		while (c->cred_idx < c->tail) {
			const struct sl__batch *b = sl__at(c, c->cred_idx);
			if (!sl__pay(c, b->n, b->ev_bytes)) {
				waiting = true;
				break;
			}
			c->cred_idx++;
		}
	}
	if (waiting && !c->wait_since) {
		c->wait_since = sl_now_ns();
		c->st.credit_waits++;
	} else if (!waiting && c->wait_since) {
		c->st.credit_wait_ns += sl_now_ns() - c->wait_since;
		c->wait_since = 0;
	}
}

/* A new connection starts with no credits (Welcome brings them). */
void sl__client_credit_reset(struct sl_client *c)
{
	c->cr_events = c->cr_bytes = 0;
	c->sess_inflight = 0;
	c->rs_head = c->rs_n = 0;
	c->out_lim = 0;
	if (c->wait_since) {
		c->st.credit_wait_ns += sl_now_ns() - c->wait_since;
		c->wait_since = 0;
	}
}

static int sl__rs_push(struct sl_client *c, uint32_t n, uint64_t bytes)
{
	if (c->rs_n == c->rs_cap) {
		uint32_t cap = c->rs_cap ? c->rs_cap * 2 : 64;
		struct sl__rsframe *v = realloc(c->rs, cap * sizeof(*v));
		if (!v)
			return -ENOMEM;
		c->rs = v;
		c->rs_cap = cap;
	}
	c->rs[c->rs_n++] = (struct sl__rsframe){.end = c->out_len, .n = n, .bytes = bytes};
	return 0;
}

void sl__client_recompute_window(struct sl_client *c)
{
	uint64_t e = c->o.max_inflight, b = c->o.max_inflight_bytes;

	/* The events window never exceeds the server's (its sequence tables
	 * cover that many retries); bytes only bound our own memory: the
	 * server's byte credits come and go, and sl__client_credit_advance waits. */
	if (c->credit_events && c->credit_events < e)
		e = c->credit_events;
	c->win_events = e ? e : 1;
	c->win_bytes = b;
	uint64_t lim = (uint64_t)c->max_frame + 4;
	c->batch_limit = c->o.batch_max_bytes < lim ? c->o.batch_max_bytes : (uint32_t)lim;
}

int sl__client_out_reserve(struct sl_client *c, size_t n)
{
	if (c->out_off == c->out_len)
		c->out_off = c->out_len = 0;
	uint8_t *p = sl_grow(c->out, &c->out_cap, c->out_len + n, 4096);
	if (!p)
		return -ENOMEM;
	c->out = p;
	return 0;
}

/* ---- batch buffers ---------------------------------------------------------- */

struct sl__bbuf *sl__client_bbuf_get(struct sl_client *c, size_t need)
{
	struct sl__bbuf *b = c->n_pool ? c->pool[--c->n_pool] : NULL;

	if (!b) {
		b = malloc(sizeof(*b) + c->bitmap_words * sizeof(uint64_t));
		if (!b)
			return NULL;
		b->p = NULL;
		b->cap = 0;
	}
	if (b->cap < need) {
		size_t cap = b->cap ? b->cap : SL__BUF_START;
		while (cap < need)
			cap *= 2;
		uint8_t *p = realloc(b->p, cap);
		if (!p) {
			free(b->p);
			free(b);
			return NULL;
		}
		b->p = p;
		b->cap = cap;
	}
	memset(b->done, 0, c->bitmap_words * sizeof(uint64_t));
	return b;
}

void sl__client_bbuf_put(struct sl_client *c, struct sl__bbuf *b)
{
	/* A buffer that fits the current frame limit is always reusable. */
	if (c->n_pool < SL__POOL_MAX && b->cap <= c->batch_limit) {
		c->pool[c->n_pool++] = b;
		return;
	}
	free(b->p);
	free(b);
}

int sl__client_ring_grow(struct sl_client *c)
{
	uint64_t cap = c->ring_cap ? c->ring_cap * 2 : 64;
	struct sl__batch *r = malloc(cap * sizeof(*r));

	if (!r)
		return -ENOMEM;
	/* Unwrap into the new ring keeping the same absolute indexes. */
	for (uint64_t i = c->head; i < c->tail; i++)
		r[i & (cap - 1)] = *sl__at(c, i);
	free(c->ring);
	c->ring = r;
	c->ring_cap = cap;
	return 0;
}

/* ---- answering events ------------------------------------------------------ */

void sl__client_deliver(struct sl_client *c, const struct sl_client_ack *a)
{
	if (a->status == 0) {
		c->st.acked++;
		if (a->duplicate)
			c->st.duplicates++;
		if (a->dropped)
			c->st.dropped++;
	} else {
		c->st.refused++;
	}
	c->st.inflight--;
	c->answered++;
	if (c->o.on_ack) {
		c->in_cb = true;
		c->o.on_ack(c->o.arg, a);
		c->in_cb = false;
	}
}

/* Returns fully answered batches at the head to the pool. */
void sl__client_retire(struct sl_client *c)
{
	while (c->head != c->tail) {
		struct sl__batch *b = sl__at(c, c->head);
		if (b->n_done < b->n)
			break;
		c->ring_bytes -= b->len;
		sl__client_bbuf_put(c, b->b);
		b->b = NULL;
		c->head++;
	}
	if (c->send_idx < c->head) {
		c->send_idx = c->head;
		c->send_off = 0;
	}
	if (c->cred_idx < c->send_idx)
		c->cred_idx = c->send_idx;
}

/* The sealed batch holding seq, or NULL. */
static struct sl__batch *sl__find(struct sl_client *c, uint64_t seq)
{
	uint64_t lo = c->head, hi = c->tail;

	if (lo == hi)
		return NULL;
	/* Acks come in runs of one batch: try the last hit first. */
	if (c->find_hint >= lo && c->find_hint < hi) {
		struct sl__batch *b = sl__at(c, c->find_hint);
		if (seq >= b->base_seq && seq - b->base_seq < b->n)
			return b;
	}
	struct sl__batch *last = sl__at(c, hi - 1);
	if (seq < sl__at(c, lo)->base_seq || seq >= last->base_seq + last->n)
		return NULL;
	while (hi - lo > 1) {
		uint64_t mid = lo + (hi - lo) / 2;
		if (sl__at(c, mid)->base_seq <= seq)
			lo = mid;
		else
			hi = mid;
	}
	c->find_hint = lo;
	return sl__at(c, lo);
}

/* The raw bytes of event i of batch b (a leg's, for the router). Acks
 * answer a batch's events in order, so the walk goes on from where the
 * last one stopped, and a batch costs one pass. */
static int sl__batch_raw(struct sl_client *c, const struct sl__batch *b, uint32_t i,
                         const uint8_t **raw, size_t *len)
{
	struct sl_event_view v;

	if (c->raw_buf != b->b->p || i < c->raw_next) {
		struct sl_frame f;
		struct sl_produce pr;
		if (sl_frame_parse(b->b->p, b->len, SL_FRAME_MAX_LIMIT, &f) <= 0 ||
		    sl_produce_scan(f.body, f.body_len, &pr, NULL) < 0)
			return -EPROTO; /* our own bytes: cannot happen */
		sl_produce_iter_init(&pr, &c->raw_it);
		c->raw_buf = b->b->p;
		c->raw_next = 0;
	}
	while (sl_event_iter_next(&c->raw_it, &v) > 0) {
		if (c->raw_next++ == i) {
			*raw = v.raw;
			*len = v.raw_len;
			return 0;
		}
	}
	c->raw_buf = NULL;
	return -EPROTO;
}

void sl__client_on_ack_event(void *arg, const struct sl__ack_event *e)
{
	struct sl_client *c = arg;
	struct sl__batch *b = sl__find(c, e->seq);

	if (!b) {
		c->st.stray_acks++;
		return;
	}
	uint64_t i = e->seq - b->base_seq;
	uint64_t bit = 1ull << (i & 63);
	if (b->b->done[i >> 6] & bit) {
		c->st.stray_acks++; /* answered twice: keep the first answer */
		return;
	}
	b->b->done[i >> 6] |= bit;
	b->n_done++;
	/* Answered on this connection: it was paid for on it (acks of an
	 * older connection never arrive on this one). */
	if (c->sess_inflight)
		c->sess_inflight--;
	struct sl_client_ack a = {
	    .sequence = e->seq,
	    .status = e->code ? sl__client_code_status(e->code) : 0,
	    .code = e->code,
	    .partition = e->partition,
	    .offset = e->offset,
	    .duplicate = e->duplicate,
	    .dropped = e->dropped,
	    .retry_after_ms = e->retry_after_ms,
	    .message = e->message ? e->message : "",
	    .message_len = e->message_len,
	};
	c->cb_raw = NULL;
	if (c->leg && e->code == SLUICE__V1__ERROR_CODE__ERR_NOT_LEADER &&
	    sl__batch_raw(c, b, (uint32_t)i, &c->cb_raw, &c->cb_raw_len) == 0)
		c->cb_topic = c->topics[b->topic];
	/* A read token: noted before the callback, so an application that
	 * asks for it there has it (a failure to note only costs the token:
	 * out of memory). */
	if (!c->leg && !e->code && !e->dropped && e->offset != SL_CLIENT_OFFSET_UNKNOWN)
		(void)sl__client_token_note(c, c->topics[b->topic], e->partition, e->offset);
	c->ack_topic = c->topics[b->topic];
	sl__client_deliver(c, &a);
	c->ack_topic = NULL;
	c->cb_raw = NULL;
}

/* Answers every unanswered event of batch b with `status`. */
void sl__client_answer_all(struct sl_client *c, struct sl__batch *b, int status, uint32_t code)
{
	for (uint32_t i = 0; i < b->n; i++) {
		uint64_t bit = 1ull << (i & 63);
		if (b->b->done[i >> 6] & bit)
			continue;
		b->b->done[i >> 6] |= bit;
		b->n_done++;
		struct sl_client_ack a = {
		    .sequence = b->base_seq + i,
		    .status = status,
		    .code = code,
		    .message = "",
		};
		sl__client_deliver(c, &a);
	}
}

int sl__client_take(struct sl_client *c, sl__take_fn take, void *arg)
{
	int ret = sl__client_seal(c);
	uint64_t taken = 0;

	if (ret < 0)
		return ret;
	for (uint64_t k = c->head; k < c->tail; k++) {
		struct sl__batch *b = sl__at(c, k);
		struct sl_frame f;
		struct sl_produce pr;
		struct sl_event_iter it;
		struct sl_event_view v;
		if (b->n_done == b->n)
			continue;
		if (sl_frame_parse(b->b->p, b->len, SL_FRAME_MAX_LIMIT, &f) <= 0 ||
		    sl_produce_scan(f.body, f.body_len, &pr, NULL) < 0)
			return -EPROTO;
		sl_produce_iter_init(&pr, &it);
		for (uint32_t i = 0; sl_event_iter_next(&it, &v) > 0; i++) {
			uint64_t bit = 1ull << (i & 63);
			if ((b->b->done[i >> 6] & bit) ||
			    !take(arg, c->topics[b->topic], b->base_seq + i, v.raw, v.raw_len))
				continue;
			b->b->done[i >> 6] |= bit;
			b->n_done++;
			c->st.inflight--;
			taken++;
		}
	}
	if (taken)
		c->extracted = true;
	c->raw_buf = NULL;
	sl__client_retire(c);
	return (int)(taken > INT32_MAX ? INT32_MAX : taken);
}

/* ---- sealing and resending ------------------------------------------------- */

/* Finishes the open batch and appends it to the ring. */
int sl__client_seal(struct sl_client *c)
{
	if (!c->has_open)
		return 0;
	if (c->tail - c->head == c->ring_cap) {
		int ret = sl__client_ring_grow(c);
		if (ret < 0)
			return ret;
	}
	int len = sl_produce_finish(&c->bld);
	c->open.len = (uint32_t)len;
	c->open.sealed_ns = sl_now_ns();
	*sl__at(c, c->tail) = c->open;
	c->tail++;
	c->ring_bytes += (uint64_t)len;
	c->has_open = false;
	c->st.batches++;
	return 0;
}

/* A resend frame: it says how long ago its events were first sent
 * (Produce.resend_age_ms), rounded up, so that a partition that forgot this
 * producer can tell whether they may have been stored before (dedup.h). */
static int sl__begin_frame(struct sl_client *c, struct sl_produce_builder *bld,
                           const struct sl_produce *pr, uint64_t seq, size_t room,
                           uint64_t sealed_ns)
{
	uint64_t now = sl_now_ns(), age_ms = now > sealed_ns ? (now - sealed_ns) / 1000000 + 1 : 1;
	int ret = sl__client_out_reserve(c, room);
	if (ret < 0)
		return ret;
	ret = sl_produce_begin(bld, c->out + c->out_len, room, pr->topic, pr->topic_len, seq,
	                       c->epoch);
	if (ret < 0)
		return ret;
	return sl_produce_set_resend_age(bld, age_ms);
}

/*
 * Re-encodes the unanswered events of batch b into `out` as Produce frames
 * of the new epoch, one frame per run of consecutive unanswered events (a
 * frame's events must have consecutive sequences).
 */
/* Finishes a resend frame in `out`; it waits there for credits. */
static int sl__resend_close(struct sl_client *c, struct sl_produce_builder *bld, uint64_t *bytes)
{
	uint32_t n = bld->n_events;
	c->out_len += (size_t)sl_produce_finish(bld);
	int ret = sl__rs_push(c, n, *bytes);
	*bytes = 0;
	return ret;
}

int sl__client_resend_batch(struct sl_client *c, struct sl__batch *b)
{
	struct sl_frame f;
	struct sl_produce pr;
	struct sl_event_iter it;
	struct sl_event_view v;
	struct sl_produce_builder bld;
	bool open = false;
	uint64_t fbytes = 0;
	int ret;

	if (b->n_done == b->n)
		return 0;
	if (sl_frame_parse(b->b->p, b->len, SL_FRAME_MAX_LIMIT, &f) <= 0 ||
	    sl_produce_scan(f.body, f.body_len, &pr, NULL) < 0)
		return -EPROTO; /* our own bytes: cannot happen */
	sl_produce_iter_init(&pr, &it);
	for (uint32_t i = 0; sl_event_iter_next(&it, &v) > 0; i++) {
		if (b->b->done[i >> 6] & (1ull << (i & 63))) {
			if (open && (ret = sl__resend_close(c, &bld, &fbytes)) < 0)
				return ret;
			open = false;
			continue;
		}
		if (!open) {
			ret = sl__begin_frame(c, &bld, &pr, b->base_seq + i, c->batch_limit,
			                      b->sealed_ns);
			if (ret < 0)
				return ret;
			open = true;
		}
		ret = sl_produce_add_encoded(&bld, v.raw, v.raw_len);
		if (ret == -ENOSPC && bld.n_events) {
			/* Full (the new server may take smaller frames): next one. */
			if ((ret = sl__resend_close(c, &bld, &fbytes)) < 0)
				return ret;
			ret = sl__begin_frame(c, &bld, &pr, b->base_seq + i, c->batch_limit,
			                      b->sealed_ns);
			if (ret < 0)
				return ret;
			ret = sl_produce_add_encoded(&bld, v.raw, v.raw_len);
		}
		if (ret < 0) {
			/* Larger than this server's frames: it can never be sent
			 * here. The empty frame begun for it is dropped (out_len
			 * never moved past it). */
			open = false;
			b->b->done[i >> 6] |= 1ull << (i & 63);
			b->n_done++;
			struct sl_client_ack a = {.sequence = b->base_seq + i,
			                          .status = -SL_EFRAME_TOO_BIG,
			                          .code = SLUICE__V1__ERROR_CODE__ERR_FRAME_TOO_BIG,
			                          .message = ""};
			sl__client_deliver(c, &a);
			continue;
		}
		fbytes += v.raw_len + SL_CREDIT_EVENT_OVERHEAD;
		c->st.resent++;
	}
	if (open)
		return sl__resend_close(c, &bld, &fbytes);
	return 0;
}
