/*
 * libsluice: batching, the in-flight window, the connection state machine,
 * acks, reconnects and resends. See sluice/client.h for the contract.
 *
 * Invariants:
 *  - Sealed batches sit in `ring` in sequence order with no gaps; the open
 *    batch (if any) follows the last sealed one. So the events in flight are
 *    exactly the sequences [first in ring or open, next_seq).
 *  - A batch leaves the ring (and its buffer returns to the pool) only from
 *    the head, once every event of it is answered: the window is a span of
 *    sequences, which lets callers index per-event state by sequence.
 *  - Batches are written in ring order, starting at send_idx; `out` (Hello,
 *    re-encoded resends) always goes before them.
 *  - After a reconnect nothing is trusted about what the old connection
 *    delivered: every unanswered event is re-encoded into `out` with its
 *    original sequence and the new epoch, and send_idx moves past the ring.
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

#define SL__PROTOCOL_VERSION 1
#define SL__DEF_BATCH_EVENTS 256
#define SL__MAX_BATCH_EVENTS 65536
#define SL__DEF_BATCH_BYTES (1u << 20)
#define SL__DEF_INFLIGHT 8192
#define SL__DEF_INFLIGHT_BYTES (64ull << 20)
#define SL__DEF_CONNECT_MS 5000
#define SL__DEF_ACK_MS 30000
#define SL__DEF_BACKOFF_MIN_MS 50
#define SL__DEF_BACKOFF_MAX_MS 2000
/* Before Welcome says otherwise: the protocol's documented default. */
#define SL__DEF_MAX_FRAME (1u << 20)
/* First size of a batch buffer; it doubles up to batch_limit as needed.
 * Small, because a batch holds its buffer until every event in it is
 * answered, and batches of one event (interactive input, open-loop
 * producers without linger) can fill a whole window: 8192 x 4 KiB. Pooled
 * buffers keep what they grew to, so full batches stop reallocating once
 * the pool is warm. */
#define SL__BUF_START (4u << 10)
/* Pooled batch buffers kept for reuse; more are freed on return. Enough for
 * a full default window of full batches. */
#define SL__POOL_MAX 64
/* Buffers larger than this are not kept once empty (a resend burst or one
 * huge frame should not pin its memory). */
#define SL__KEEP_BYTES (1u << 20)
#define SL__IOV_MAX 64
#define SL__READ_BUF (64u << 10)

static const uint64_t SL__NS_PER_MS = 1000000u;

/* ---- errors ------------------------------------------------------------- */

static void sl__seterr(struct sl_client *c, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void sl__seterr(struct sl_client *c, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(c->err, sizeof(c->err), fmt, ap);
	va_end(ap);
}

const char *sl_client_code_name(uint32_t code)
{
	const ProtobufCEnumValue *v =
		protobuf_c_enum_descriptor_get_value(&sluice__v1__error_code__descriptor, (int)code);
	return v ? v->name : "ERR_?";
}

/* The negative status a wire ErrorCode stands for. */
static int sl__code_status(uint32_t code)
{
	switch (code) {
	case SLUICE__V1__ERROR_CODE__ERR_FRAME_TOO_BIG:
		return -SL_EFRAME_TOO_BIG;
	case SLUICE__V1__ERROR_CODE__ERR_MALFORMED:
	case SLUICE__V1__ERROR_CODE__ERR_EVENT:
		return -SL_EPROTO_DECODE;
	case SLUICE__V1__ERROR_CODE__ERR_UNKNOWN_TYPE:
		return -SL_EPROTO_UNKNOWN;
	case SLUICE__V1__ERROR_CODE__ERR_VERSION:
		return -SL_EPROTO_VERSION;
	case SLUICE__V1__ERROR_CODE__ERR_STATE:
		return -SL_EPROTO_STATE;
	case SLUICE__V1__ERROR_CODE__ERR_UNKNOWN_TOPIC:
		return -SL_ENOTOPIC;
	case SLUICE__V1__ERROR_CODE__ERR_FENCED:
		return -SL_EFENCED;
	case SLUICE__V1__ERROR_CODE__ERR_SEQUENCE:
		return -SL_ESEQ_GAP;
	case SLUICE__V1__ERROR_CODE__ERR_CREDIT:
		return -SL_ECREDIT;
	case SLUICE__V1__ERROR_CODE__ERR_OVERLOAD:
		return -SL_EOVERLOAD;
	case SLUICE__V1__ERROR_CODE__ERR_TIMEOUT:
		return -SL_ETIMEOUT;
	case SLUICE__V1__ERROR_CODE__ERR_STORAGE:
		return -SL_ELOG_FAILED;
	case SLUICE__V1__ERROR_CODE__ERR_LIMIT:
		return -EUSERS;
	case SLUICE__V1__ERROR_CODE__ERR_DRAINING:
		return -ESHUTDOWN;
	default:
		return -EPROTO;
	}
}

/* Connection-level Errors that another connection may not get: the server
 * is busy, leaving, or timed us out. Everything else is a bug on one side or
 * a fencing, and retrying would only repeat it. */
static bool sl__code_retryable(uint32_t code)
{
	switch (code) {
	case SLUICE__V1__ERROR_CODE__ERR_TIMEOUT:
	case SLUICE__V1__ERROR_CODE__ERR_LIMIT:
	case SLUICE__V1__ERROR_CODE__ERR_DRAINING:
	case SLUICE__V1__ERROR_CODE__ERR_OVERLOAD:
	case SLUICE__V1__ERROR_CODE__ERR_STORAGE:
	case SLUICE__V1__ERROR_CODE__ERR_INTERNAL:
		return true;
	default:
		return false;
	}
}

/* ---- small helpers -------------------------------------------------------- */

static inline uint32_t sl__vlen(uint64_t v)
{
	uint32_t n = 1;
	while (v >= 0x80) {
		v >>= 7;
		n++;
	}
	return n;
}

/* Bytes of `tag | len | payload` for an event of `size` bytes. */
static inline size_t sl__event_field_len(size_t size)
{
	return 1 + sl__vlen(size) + size;
}

static inline size_t sl__epoch_room(uint32_t epoch)
{
	return epoch ? 1 + sl__vlen(epoch) : 0;
}

static inline struct sl__batch *sl__at(const struct sl_client *c, uint64_t i)
{
	return &c->ring[i & (c->ring_cap - 1)];
}

/* The oldest unanswered sequence's batch start, or next_seq when idle. */
static inline uint64_t sl__first_seq(const struct sl_client *c)
{
	if (c->head != c->tail)
		return sl__at(c, c->head)->base_seq;
	if (c->has_open)
		return c->open.base_seq;
	return c->next_seq;
}

static inline uint64_t sl__span(const struct sl_client *c)
{
	return c->next_seq - sl__first_seq(c);
}

static inline bool sl__busy(const struct sl_client *c)
{
	return c->head != c->tail || c->has_open;
}

/* How far `out` may be written: resends wait for credits, Hello does not. */
static inline size_t sl__out_lim(const struct sl_client *c)
{
	return c->rs_head < c->rs_n ? c->out_lim : c->out_len;
}

static inline bool sl__out_pending(const struct sl_client *c)
{
	return c->out_off < sl__out_lim(c) ||
	       (c->state == SL__READY && c->out_off == c->out_len && c->send_idx != c->cred_idx);
}

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
static void sl__credit_advance(struct sl_client *c)
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
static void sl__credit_reset(struct sl_client *c)
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

static void sl__recompute_window(struct sl_client *c)
{
	uint64_t e = c->o.max_inflight, b = c->o.max_inflight_bytes;

	/* The events window never exceeds the server's (its sequence tables
	 * cover that many retries); bytes only bound our own memory: the
	 * server's byte credits come and go, and sl__credit_advance waits. */
	if (c->credit_events && c->credit_events < e)
		e = c->credit_events;
	c->win_events = e ? e : 1;
	c->win_bytes = b;
	uint64_t lim = (uint64_t)c->max_frame + 4;
	c->batch_limit = c->o.batch_max_bytes < lim ? c->o.batch_max_bytes : (uint32_t)lim;
}

static int sl__out_reserve(struct sl_client *c, size_t n)
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

static struct sl__bbuf *sl__bbuf_get(struct sl_client *c, size_t need)
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

static void sl__bbuf_put(struct sl_client *c, struct sl__bbuf *b)
{
	/* A buffer that fits the current frame limit is always reusable. */
	if (c->n_pool < SL__POOL_MAX && b->cap <= c->batch_limit) {
		c->pool[c->n_pool++] = b;
		return;
	}
	free(b->p);
	free(b);
}

static int sl__ring_grow(struct sl_client *c)
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

static void sl__deliver(struct sl_client *c, const struct sl_client_ack *a)
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
static void sl__retire(struct sl_client *c)
{
	while (c->head != c->tail) {
		struct sl__batch *b = sl__at(c, c->head);
		if (b->n_done < b->n)
			break;
		c->ring_bytes -= b->len;
		sl__bbuf_put(c, b->b);
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

static void sl__on_ack_event(void *arg, const struct sl__ack_event *e)
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
		.status = e->code ? sl__code_status(e->code) : 0,
		.code = e->code,
		.partition = e->partition,
		.offset = e->offset,
		.duplicate = e->duplicate,
		.dropped = e->dropped,
		.retry_after_ms = e->retry_after_ms,
		.message = e->message ? e->message : "",
		.message_len = e->message_len,
	};
	sl__deliver(c, &a);
}

/* Answers every unanswered event of batch b with `status`. */
static void sl__answer_all(struct sl_client *c, struct sl__batch *b, int status, uint32_t code)
{
	for (uint32_t i = 0; i < b->n; i++) {
		uint64_t bit = 1ull << (i & 63);
		if (b->b->done[i >> 6] & bit)
			continue;
		b->b->done[i >> 6] |= bit;
		b->n_done++;
		struct sl_client_ack a = {
			.sequence = b->base_seq + i, .status = status, .code = code, .message = "",
		};
		sl__deliver(c, &a);
	}
}

/* ---- the connection ------------------------------------------------------- */

static void sl__ep_sync(struct sl_client *c)
{
	if (c->epfd < 0)
		return;
	int fd = c->state >= SL__CONNECTING && c->state <= SL__READY ? c->fd : -1;
	uint32_t mask = 0;
	if (fd >= 0) {
		mask = c->state == SL__CONNECTING ? EPOLLOUT : EPOLLIN;
		if (c->state != SL__CONNECTING && sl__out_pending(c))
			mask |= EPOLLOUT;
	}
	if (fd == c->ep_fd && mask == c->ep_mask)
		return;
	if (c->ep_fd >= 0 && c->ep_fd != fd)
		epoll_ctl(c->epfd, EPOLL_CTL_DEL, c->ep_fd, NULL);
	if (fd >= 0) {
		struct epoll_event ev = {.events = mask, .data.fd = fd};
		if (epoll_ctl(c->epfd, c->ep_fd == fd ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, fd, &ev) < 0)
			fd = -1;
	}
	c->ep_fd = fd;
	c->ep_mask = fd >= 0 ? mask : 0;
}

static void sl__close_fd(struct sl_client *c)
{
	if (c->fd < 0)
		return;
	if (c->epfd >= 0 && c->ep_fd == c->fd) {
		epoll_ctl(c->epfd, EPOLL_CTL_DEL, c->fd, NULL);
		c->ep_fd = -1;
		c->ep_mask = 0;
	}
	close(c->fd);
	c->fd = -1;
}

static uint64_t sl__backoff_ns(struct sl_client *c)
{
	uint64_t ms = c->o.backoff_min_ms;
	for (uint32_t i = 0; i < c->attempt && ms < c->o.backoff_max_ms; i++)
		ms *= 2;
	if (ms > c->o.backoff_max_ms)
		ms = c->o.backoff_max_ms;
	c->attempt++;
	/* Jitter over [ms/2, ms]: many producers cut off by one restart do not
	 * all come back in the same millisecond. */
	uint64_t ns = ms * SL__NS_PER_MS;
	return ns / 2 + sl_uuid_rng_next(&c->rng) % (ns / 2 + 1);
}

/*
 * The connection is gone (err says why). Unanswered events stay where they
 * are and go out again after the next Welcome.
 */
static void sl__disconnect(struct sl_client *c, int err)
{
	sl__close_fd(c);
	c->in_len = 0;
	c->out_len = c->out_off = 0;
	c->send_off = 0;
	sl__credit_reset(c);
	if (c->state == SL__FAILED)
		return;
	if (c->initial) {
		c->state = SL__FAILED;
		c->fatal = err;
		return;
	}
	if (sl__busy(c)) {
		c->state = SL__BACKOFF;
		c->reconnect_at = sl_now_ns() + sl__backoff_ns(c);
	} else {
		c->state = SL__IDLE;
	}
}

/* A fatal error: answer everything with it; every later call returns it. */
static void sl__fail(struct sl_client *c, int err)
{
	sl__close_fd(c);
	c->state = SL__FAILED;
	c->fatal = err;
	c->in_len = 0;
	c->out_len = c->out_off = 0;
	if (c->initial)
		return; /* nothing was produced yet */
	if (c->has_open) {
		/* Seal-free: the open batch never went out. */
		struct sl__batch *b = &c->open;
		c->has_open = false;
		sl__answer_all(c, b, err, 0);
		sl__bbuf_put(c, b->b);
	}
	for (uint64_t i = c->head; i < c->tail; i++)
		sl__answer_all(c, sl__at(c, i), err, 0);
	sl__retire(c);
}

static int sl__send_hello(struct sl_client *c)
{
	Sluice__V1__Hello h = SLUICE__V1__HELLO__INIT;
	h.min_version = SL__PROTOCOL_VERSION;
	h.max_version = SL__PROTOCOL_VERSION;
	h.producer_id = c->producer_id;
	h.client_name = c->name;
	h.idempotence_off = c->o.idempotence_off;
	size_t need = sl_frame_msg_size(&h.base);
	int ret = sl__out_reserve(c, need);
	if (ret < 0)
		return ret;
	ret = sl_frame_encode_msg(SLUICE__V1__FRAME_TYPE__FRAME_HELLO, &h.base, c->out + c->out_len,
				  c->out_cap - c->out_len);
	if (ret < 0)
		return ret;
	c->out_len += (size_t)ret;
	c->state = SL__HELLO;
	return 0;
}

static void sl__connect_start(struct sl_client *c)
{
	int fd = socket(c->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	int ret;

	if (fd < 0) {
		ret = -errno;
		sl__seterr(c, "socket: %s", strerror(-ret));
		c->state = SL__CONNECTING; /* so disconnect schedules a retry */
		sl__disconnect(c, ret);
		return;
	}
	int one = 1;
	/* Batches are written whole; Nagle would only hold back the last one. */
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	c->fd = fd;
	c->in_len = 0;
	c->out_len = c->out_off = 0;
	c->conn_deadline = sl_now_ns() + (uint64_t)c->o.connect_timeout_ms * SL__NS_PER_MS;
	if (connect(fd, (struct sockaddr *)&c->addr, c->addr_len) == 0) {
		ret = sl__send_hello(c);
		if (ret < 0)
			sl__fail(c, ret);
		return;
	}
	if (errno == EINPROGRESS) {
		c->state = SL__CONNECTING;
		return;
	}
	ret = -errno;
	sl__seterr(c, "connect %s: %s", c->addr_text, strerror(-ret));
	c->state = SL__CONNECTING;
	sl__disconnect(c, ret);
}

/* ---- sealing and resending ------------------------------------------------- */

/* Finishes the open batch and appends it to the ring. */
static int sl__seal(struct sl_client *c)
{
	if (!c->has_open)
		return 0;
	if (c->tail - c->head == c->ring_cap) {
		int ret = sl__ring_grow(c);
		if (ret < 0)
			return ret;
	}
	int len = sl_produce_finish(&c->bld);
	c->open.len = (uint32_t)len;
	*sl__at(c, c->tail) = c->open;
	c->tail++;
	c->ring_bytes += (uint64_t)len;
	c->has_open = false;
	c->st.batches++;
	return 0;
}

static int sl__begin_frame(struct sl_client *c, struct sl_produce_builder *bld,
			   const struct sl_produce *pr, uint64_t seq, size_t room)
{
	int ret = sl__out_reserve(c, room);
	if (ret < 0)
		return ret;
	return sl_produce_begin(bld, c->out + c->out_len, room, pr->topic, pr->topic_len, seq,
				c->epoch);
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

static int sl__resend_batch(struct sl_client *c, struct sl__batch *b)
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
			ret = sl__begin_frame(c, &bld, &pr, b->base_seq + i, c->batch_limit);
			if (ret < 0)
				return ret;
			open = true;
		}
		ret = sl_produce_add_encoded(&bld, v.raw, v.raw_len);
		if (ret == -ENOSPC && bld.n_events) {
			/* Full (the new server may take smaller frames): next one. */
			if ((ret = sl__resend_close(c, &bld, &fbytes)) < 0)
				return ret;
			ret = sl__begin_frame(c, &bld, &pr, b->base_seq + i, c->batch_limit);
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
			sl__deliver(c, &a);
			continue;
		}
		fbytes += v.raw_len + SL_CREDIT_EVENT_OVERHEAD;
		c->st.resent++;
	}
	if (open)
		return sl__resend_close(c, &bld, &fbytes);
	return 0;
}

static int sl__on_welcome(struct sl_client *c, const struct sl_frame *f)
{
	ProtobufCMessage *m;
	int ret = sl_frame_decode_msg(f, &m);

	if (ret < 0) {
		sl__seterr(c, "%s: Welcome: malformed", c->addr_text);
		return ret;
	}
	Sluice__V1__Welcome *w = (Sluice__V1__Welcome *)m;
	bool first = c->st.connects == 0;
	if (w->version != SL__PROTOCOL_VERSION) {
		sl__seterr(c, "%s: server chose protocol version %u", c->addr_text, w->version);
		sl_frame_msg_free(m);
		return -SL_EPROTO_VERSION;
	}
	c->producer_id = w->producer_id;
	c->epoch = w->epoch;
	c->credit_events = w->credit_events;
	c->credit_bytes = w->credit_bytes;
	sl__credit_reset(c);
	c->cr_events = w->credit_events;
	c->cr_bytes = (int64_t)w->credit_bytes;
	c->max_frame = w->max_frame_bytes && w->max_frame_bytes <= SL_FRAME_MAX_LIMIT
			       ? w->max_frame_bytes
			       : SL__DEF_MAX_FRAME;
	/* A known producer continues where the server says it stands. */
	if (first && !sl__busy(c) && w->next_sequence > c->next_seq)
		c->next_seq = w->next_sequence;
	sl_frame_msg_free(m);
	sl__recompute_window(c);
	c->state = SL__READY;
	c->attempt = 0;
	c->st.connects++;
	c->progress_ns = sl_now_ns();

	/* The open batch carries the old epoch: seal it and resend it with the
	 * rest. */
	ret = sl__seal(c);
	if (ret < 0)
		return ret;
	if (!first) {
		for (uint64_t i = c->head; i < c->tail; i++) {
			ret = sl__resend_batch(c, sl__at(c, i));
			if (ret < 0)
				return ret;
		}
		sl__retire(c);
		c->send_idx = c->tail;
		c->send_off = 0;
	}
	c->cred_idx = c->send_idx;
	sl__credit_advance(c);
	return 0;
}

static int sl__on_error_frame(struct sl_client *c, const struct sl_frame *f)
{
	ProtobufCMessage *m;
	uint32_t code = SLUICE__V1__ERROR_CODE__ERR_INTERNAL;

	if (sl_frame_decode_msg(f, &m) == 0) {
		Sluice__V1__Error *e = (Sluice__V1__Error *)m;
		code = (uint32_t)e->code;
		sl__seterr(c, "%s: server error %s: %s", c->addr_text, sl_client_code_name(code),
			   e->message ? e->message : "");
		sl_frame_msg_free(m);
	} else {
		sl__seterr(c, "%s: server sent a malformed Error", c->addr_text);
	}
	int err = sl__code_status(code);
	if (!sl__code_retryable(code) || c->initial)
		sl__fail(c, err);
	else
		sl__disconnect(c, err);
	return 1; /* the connection is gone: stop parsing */
}

/* Handles one frame; <0 is fatal, 1 means the connection was closed. */
static int sl__on_frame(struct sl_client *c, const struct sl_frame *f)
{
	int ret;

	switch (f->type) {
	case SLUICE__V1__FRAME_TYPE__FRAME_ACK:
		if (c->state != SL__READY)
			break;
		ret = sl__ack_scan(f->body, f->body_len, sl__on_ack_event, c);
		if (ret < 0) {
			sl__seterr(c, "%s: malformed Ack", c->addr_text);
			return ret;
		}
		c->progress_ns = sl_now_ns();
		sl__retire(c);
		return 0;
	case SLUICE__V1__FRAME_TYPE__FRAME_WELCOME:
		if (c->state != SL__HELLO) {
			sl__seterr(c, "%s: Welcome out of place", c->addr_text);
			return -SL_EPROTO_STATE;
		}
		return sl__on_welcome(c, f);
	case SLUICE__V1__FRAME_TYPE__FRAME_CREDIT: {
		ProtobufCMessage *m;
		if (sl_frame_decode_msg(f, &m) < 0) {
			sl__seterr(c, "%s: malformed Credit", c->addr_text);
			return -SL_EPROTO_DECODE;
		}
		Sluice__V1__Credit *cr = (Sluice__V1__Credit *)m;
		c->cr_events += cr->events;
		c->cr_bytes += (int64_t)cr->bytes;
		c->st.credit_frames++;
		sl_frame_msg_free(m);
		sl__credit_advance(c);
		return 0;
	}
	case SLUICE__V1__FRAME_TYPE__FRAME_ERROR:
		return sl__on_error_frame(c, f);
	default:
		sl__seterr(c, "%s: unexpected %s frame", c->addr_text, sl_frame_type_name(f->type));
		return -SL_EPROTO_UNKNOWN;
	}
	return 0;
}

/* Reads what the socket has and handles every complete frame. */
static void sl__read(struct sl_client *c)
{
	/* Bounded: a server that never stops sending must not keep the caller
	 * here forever; what is left is read at the next turn. */
	for (int turns = 0; turns < 16 && c->fd >= 0; turns++) {
		if (c->in_cap - c->in_len < 4096) {
			size_t cap = c->in_cap ? c->in_cap * 2 : SL__READ_BUF;
			uint8_t *p = realloc(c->in, cap);
			if (!p) {
				sl__seterr(c, "out of memory");
				sl__fail(c, -ENOMEM);
				return;
			}
			c->in = p;
			c->in_cap = cap;
		}
		ssize_t n = recv(c->fd, c->in + c->in_len, c->in_cap - c->in_len, MSG_DONTWAIT);
		if (n < 0) {
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return;
			if (errno == EINTR)
				continue;
			int err = -errno;
			sl__seterr(c, "%s: %s", c->addr_text, strerror(-err));
			sl__disconnect(c, err);
			return;
		}
		if (n == 0) {
			sl__seterr(c, "%s: connection closed by the server", c->addr_text);
			sl__disconnect(c, -ECONNRESET);
			return;
		}
		c->in_len += (size_t)n;

		size_t off = 0;
		uint32_t max = c->max_frame > SL__DEF_MAX_FRAME ? c->max_frame : SL__DEF_MAX_FRAME;
		while (c->fd >= 0) {
			struct sl_frame f;
			int ret = sl_frame_parse(c->in + off, c->in_len - off, max, &f);
			if (ret == 0) {
				/* Room for the whole frame before reading on. */
				if (f.need > c->in_cap) {
					uint8_t *p = realloc(c->in, f.need);
					if (!p) {
						sl__fail(c, -ENOMEM);
						return;
					}
					c->in = p;
					c->in_cap = f.need;
				}
				break;
			}
			if (ret < 0) {
				sl__seterr(c, "%s: bad frame from the server: %s", c->addr_text,
					   sl_strerror(ret));
				sl__fail(c, ret);
				return;
			}
			int r = sl__on_frame(c, &f);
			if (r < 0) {
				sl__fail(c, r);
				return;
			}
			if (r > 0)
				return; /* closed: the buffer was reset */
			off += (size_t)ret;
		}
		if (c->fd < 0)
			return;
		if (off) {
			memmove(c->in, c->in + off, c->in_len - off);
			c->in_len -= off;
		}
		if (c->in_cap > SL__KEEP_BYTES && c->in_len == 0) {
			/* A big frame came through; do not keep its buffer. */
			free(c->in);
			c->in = NULL;
			c->in_cap = 0;
		}
	}
}

/* Writes `out` then sealed batches, as much as the socket takes. */
static void sl__write(struct sl_client *c)
{
	sl__credit_advance(c);
	while (c->fd >= 0 && (c->state == SL__HELLO || c->state == SL__READY)) {
		struct iovec iov[SL__IOV_MAX];
		int n = 0;
		size_t lim = sl__out_lim(c);

		if (c->out_off < lim)
			iov[n++] = (struct iovec){c->out + c->out_off, lim - c->out_off};
		/* Batches follow every resend: sequences go out in order. */
		if (c->state == SL__READY && lim == c->out_len) {
			size_t off = c->send_off;
			for (uint64_t i = c->send_idx; i < c->cred_idx && n < SL__IOV_MAX; i++) {
				struct sl__batch *b = sl__at(c, i);
				iov[n++] = (struct iovec){b->b->p + off, b->len - off};
				off = 0;
			}
		}
		if (!n)
			return;
		struct msghdr mh = {.msg_iov = iov, .msg_iovlen = (size_t)n};
		ssize_t w = sendmsg(c->fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (w < 0) {
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return;
			if (errno == EINTR)
				continue;
			int err = -errno;
			sl__seterr(c, "%s: %s", c->addr_text, strerror(-err));
			sl__disconnect(c, err);
			return;
		}
		c->st.bytes_sent += (uint64_t)w;
		/* The ack clock starts when the first unanswered batch leaves. */
		if (c->send_idx == c->head)
			c->progress_ns = sl_now_ns();
		size_t left = (size_t)w;
		if (c->out_off < lim) {
			size_t t = lim - c->out_off;
			if (t > left)
				t = left;
			c->out_off += t;
			left -= t;
			if (c->out_off == c->out_len) {
				c->out_off = c->out_len = 0;
				if (c->out_cap > SL__KEEP_BYTES) {
					free(c->out);
					c->out = NULL;
					c->out_cap = 0;
				}
			}
		}
		while (left) {
			struct sl__batch *b = sl__at(c, c->send_idx);
			size_t t = b->len - c->send_off;
			if (t > left) {
				c->send_off += left;
				break;
			}
			left -= t;
			c->send_idx++;
			c->send_off = 0;
		}
	}
}

/* ---- the loop ----------------------------------------------------------- */

static bool sl__linger_due(const struct sl_client *c, uint64_t now)
{
	return c->has_open && now - c->open_ns >= (uint64_t)c->o.linger_us * 1000u;
}

/* Timers: connect/handshake deadline, ack timeout, backoff end. */
static void sl__timers(struct sl_client *c, uint64_t now)
{
	switch (c->state) {
	case SL__IDLE:
		if (sl__busy(c))
			sl__connect_start(c);
		break;
	case SL__BACKOFF:
		if (now >= c->reconnect_at)
			sl__connect_start(c);
		break;
	case SL__CONNECTING:
	case SL__HELLO:
		if (now >= c->conn_deadline) {
			sl__seterr(c, "%s: %s timed out", c->addr_text,
				   c->state == SL__CONNECTING ? "connect" : "handshake");
			sl__disconnect(c, -SL_ETIMEOUT);
		}
		break;
	case SL__READY:
		/* Only events already written can be waiting for an ack. */
		if (c->head != c->send_idx &&
		    now - c->progress_ns >= (uint64_t)c->o.ack_timeout_ms * SL__NS_PER_MS) {
			sl__seterr(c, "%s: no ack for %u ms", c->addr_text, c->o.ack_timeout_ms);
			sl__disconnect(c, -SL_ETIMEOUT);
		}
		break;
	default:
		break;
	}
}

/* The next instant a timer needs the loop, or UINT64_MAX. */
static uint64_t sl__next_timer(const struct sl_client *c, bool linger)
{
	uint64_t t = UINT64_MAX;

	switch (c->state) {
	case SL__BACKOFF:
		t = c->reconnect_at;
		break;
	case SL__CONNECTING:
	case SL__HELLO:
		t = c->conn_deadline;
		break;
	case SL__READY:
		if (c->head != c->send_idx)
			t = c->progress_ns + (uint64_t)c->o.ack_timeout_ms * SL__NS_PER_MS;
		break;
	case SL__IDLE:
		if (sl__busy(c))
			t = 0;
		break;
	default:
		break;
	}
	if (linger && c->has_open) {
		uint64_t l = c->open_ns + (uint64_t)c->o.linger_us * 1000u;
		if (l < t)
			t = l;
	}
	return t;
}

/*
 * One turn: timers, writes, then wait for the socket until `until` (an
 * absolute sl_now_ns time, 0 = do not wait) and handle what it says.
 */
static void sl__turn(struct sl_client *c, uint64_t until, bool seal_linger)
{
	uint64_t now = sl_now_ns();

	if (seal_linger && sl__linger_due(c, now) && sl__seal(c) < 0) {
		sl__fail(c, -ENOMEM);
		return;
	}
	sl__timers(c, now);
	if (c->state == SL__HELLO || c->state == SL__READY)
		sl__write(c);
	if (c->state == SL__FAILED)
		return;

	uint64_t t = sl__next_timer(c, seal_linger);
	if (until < t)
		t = until;
	struct timespec ts = {0, 0};
	if (t > now) {
		uint64_t d = t - now;
		ts.tv_sec = (time_t)(d / 1000000000u);
		ts.tv_nsec = (long)(d % 1000000000u);
	}
	if (t <= now && (c->state == SL__HELLO || c->state == SL__READY)) {
		/* No wait: a recv that finds nothing costs what a ppoll that
		 * finds nothing costs, and one syscall less when data is there.
		 * (The write above already went as far as the socket allows.) */
		sl__read(c);
		return;
	}
	struct pollfd p = {.fd = -1};
	if (c->fd >= 0 && c->state >= SL__CONNECTING && c->state <= SL__READY) {
		p.fd = c->fd;
		p.events = c->state == SL__CONNECTING ? POLLOUT : POLLIN;
		if (c->state != SL__CONNECTING && sl__out_pending(c))
			p.events |= POLLOUT;
	}
	int n = ppoll(&p, 1, t == UINT64_MAX ? NULL : &ts, NULL);
	if (n <= 0 || p.fd < 0)
		return;
	if (c->state == SL__CONNECTING) {
		int err = 0;
		socklen_t l = sizeof(err);
		if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &l) < 0)
			err = errno;
		if (err) {
			sl__seterr(c, "connect %s: %s", c->addr_text, strerror(err));
			sl__disconnect(c, -err);
			return;
		}
		int ret = sl__send_hello(c);
		if (ret < 0)
			sl__fail(c, ret);
		else
			sl__write(c);
		return;
	}
	if (p.revents & (POLLIN | POLLERR | POLLHUP))
		sl__read(c);
	/* A Credit read just now may have cleared batches for writing. */
	if (c->fd >= 0 && ((p.revents & POLLOUT) || sl__out_pending(c)))
		sl__write(c);
}

/* Runs turns until done(c) or the deadline (UINT64_MAX: none). */
static int sl__run(struct sl_client *c, uint64_t deadline, bool (*done)(const struct sl_client *),
		   bool seal_linger)
{
	for (;;) {
		if (c->state == SL__FAILED)
			return c->fatal;
		if (done(c))
			return 0;
		if (deadline != UINT64_MAX && sl_now_ns() >= deadline)
			return -SL_ETIMEOUT;
		sl__turn(c, deadline, seal_linger);
	}
}

static bool sl__ready(const struct sl_client *c)
{
	return c->state == SL__READY;
}

static bool sl__all_answered(const struct sl_client *c)
{
	return !sl__busy(c);
}

/* Room in the window for one more event of `bytes` encoded bytes. */
static inline bool sl__room_for(const struct sl_client *c, uint64_t bytes)
{
	uint64_t span = sl__span(c);
	if (span == 0)
		return true; /* one event alone always goes, whatever its size */
	uint64_t inflight = c->ring_bytes + (c->has_open ? c->bld.len : 0);
	return span < c->win_events && inflight + bytes <= c->win_bytes;
}

/* ---- public API ------------------------------------------------------------ */

static int sl__resolve(struct sl_client *c)
{
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV};
	struct addrinfo *res = NULL;
	char port[8];

	snprintf(port, sizeof(port), "%u", c->o.port);
	int ret = getaddrinfo(c->host, port, &hints, &res);
	if (ret != 0 || !res) {
		sl__seterr(c, "cannot resolve '%s': %s", c->host, gai_strerror(ret));
		if (res)
			freeaddrinfo(res);
		return -EHOSTUNREACH;
	}
	memcpy(&c->addr, res->ai_addr, res->ai_addrlen);
	c->addr_len = res->ai_addrlen;
	freeaddrinfo(res);
	snprintf(c->addr_text, sizeof(c->addr_text), strchr(c->host, ':') ? "[%s]:%u" : "%s:%u",
		 c->host, c->o.port);
	return 0;
}

static void sl__free(struct sl_client *c)
{
	sl__close_fd(c);
	if (c->epfd >= 0)
		close(c->epfd);
	if (c->has_open)
		sl__bbuf_put(c, c->open.b);
	for (uint64_t i = c->head; i < c->tail; i++)
		sl__bbuf_put(c, sl__at(c, i)->b);
	for (uint32_t i = 0; i < c->n_pool; i++) {
		free(c->pool[i]->p);
		free(c->pool[i]);
	}
	for (uint32_t i = 0; i < c->n_topics; i++)
		free(c->topics[i]);
	free(c->topics);
	free(c->topic_lens);
	free(c->pool);
	free(c->ring);
	free(c->rs);
	free(c->out);
	free(c->in);
	free(c->hdr_scratch);
	free(c->host);
	free(c->name);
	free(c);
}

/* Index of `topic` in the client's table, adding it when new; <0 on error. */
static int64_t sl__topic(struct sl_client *c, const char *topic)
{
	if (!topic)
		return 0;
	size_t len = strlen(topic);
	if (c->has_open && c->topic_lens[c->open.topic] == len &&
	    memcmp(c->topics[c->open.topic], topic, len) == 0)
		return c->open.topic;
	for (uint32_t i = 0; i < c->n_topics; i++)
		if (c->topic_lens[i] == len && memcmp(c->topics[i], topic, len) == 0)
			return i;
	if (!len || len > 65535)
		return -EINVAL;
	if (c->n_topics == c->topics_cap) {
		uint32_t cap = c->topics_cap ? c->topics_cap * 2 : 4;
		char **t = realloc(c->topics, cap * sizeof(*t));
		if (!t)
			return -ENOMEM;
		c->topics = t;
		size_t *l = realloc(c->topic_lens, cap * sizeof(*l));
		if (!l)
			return -ENOMEM;
		c->topic_lens = l;
		c->topics_cap = cap;
	}
	char *s = strdup(topic);
	if (!s)
		return -ENOMEM;
	c->topics[c->n_topics] = s;
	c->topic_lens[c->n_topics] = len;
	return c->n_topics++;
}

int sl_client_connect(const struct sl_client_opts *opts, struct sl_client **out, char *err,
		      size_t errlen)
{
	struct sl_client *c = calloc(1, sizeof(*c));
	int ret;

	*out = NULL;
	if (err && errlen)
		err[0] = 0;
	if (!c) {
		if (err && errlen)
			snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	c->fd = c->epfd = c->ep_fd = -1;
	c->o = opts ? *opts : (struct sl_client_opts){0};
	struct sl_client_opts *o = &c->o;
	if (!o->port)
		o->port = 7400;
	if (!o->batch_max_events)
		o->batch_max_events = SL__DEF_BATCH_EVENTS;
	if (!o->batch_max_bytes)
		o->batch_max_bytes = SL__DEF_BATCH_BYTES;
	if (!o->max_inflight)
		o->max_inflight = SL__DEF_INFLIGHT;
	if (!o->max_inflight_bytes)
		o->max_inflight_bytes = SL__DEF_INFLIGHT_BYTES;
	if (!o->connect_timeout_ms)
		o->connect_timeout_ms = SL__DEF_CONNECT_MS;
	if (!o->ack_timeout_ms)
		o->ack_timeout_ms = SL__DEF_ACK_MS;
	if (!o->backoff_min_ms)
		o->backoff_min_ms = SL__DEF_BACKOFF_MIN_MS;
	if (!o->backoff_max_ms)
		o->backoff_max_ms = SL__DEF_BACKOFF_MAX_MS;
	if (o->backoff_max_ms < o->backoff_min_ms)
		o->backoff_max_ms = o->backoff_min_ms;
	ret = -EINVAL;
	if (o->batch_max_events > SL__MAX_BATCH_EVENTS || o->batch_max_bytes < 64) {
		sl__seterr(c, "batch limits out of range");
		goto out;
	}
	c->host = strdup(o->host ? o->host : "127.0.0.1");
	c->name = strdup(o->client_name ? o->client_name : "libsluice");
	c->bitmap_words = (o->batch_max_events + 63) / 64;
	c->pool = calloc(SL__POOL_MAX, sizeof(*c->pool));
	ret = -ENOMEM;
	if (!c->host || !c->name || !c->pool)
		goto out;
	o->host = c->host;
	o->client_name = c->name;
	if (sl__topic(c, o->topic ? o->topic : "events") != 0) {
		ret = -EINVAL;
		goto out;
	}
	o->topic = c->topics[0];
	if (o->seed)
		sl_uuid_rng_seed_u64(&c->rng, o->seed);
	else if ((ret = sl_uuid_rng_seed(&c->rng)) < 0)
		goto out;
	c->producer_id = o->producer_id;
	c->max_frame = SL__DEF_MAX_FRAME;
	sl__recompute_window(c);
	ret = sl__ring_grow(c);
	if (ret < 0)
		goto out;
	ret = sl__resolve(c);
	if (ret < 0)
		goto out;

	c->initial = true;
	sl__connect_start(c);
	ret = sl__run(c, sl_now_ns() + (uint64_t)o->connect_timeout_ms * SL__NS_PER_MS, sl__ready,
		      false);
	c->initial = false;
	if (ret < 0) {
		if (!c->err[0] || ret == -SL_ETIMEOUT)
			sl__seterr(c, "%s: %s", c->addr_text,
				   ret == -SL_ETIMEOUT ? "handshake timed out" : sl_strerror(ret));
		goto out;
	}
	c->err[0] = 0;
	*out = c;
	return 0;
out:
	if (err && errlen)
		snprintf(err, errlen, "%s", c->err[0] ? c->err : sl_strerror(ret));
	/* Nothing to answer: no event was produced. */
	sl__free(c);
	return ret;
}

/*
 * Makes the open batch of topic `t` ready to take an event of `size`
 * encoded bytes: waits for the window, seals on topic change, count or
 * size, grows the buffer when that is enough.
 */
static int sl__reserve(struct sl_client *c, uint32_t t, size_t size)
{
	size_t field = sl__event_field_len(size);
	int ret;

	if (!sl__room_for(c, field)) {
		/* What is batched must go out, or its acks could never come. */
		ret = sl__seal(c);
		if (ret < 0)
			return ret;
		if (c->o.nonblocking) {
			if (c->state == SL__READY)
				sl__write(c);
			return -EAGAIN;
		}
		uint64_t deadline = c->o.block_timeout_ms
					    ? sl_now_ns() + (uint64_t)c->o.block_timeout_ms *
								    SL__NS_PER_MS
					    : UINT64_MAX;
		for (;;) {
			if (c->state == SL__FAILED)
				return c->fatal;
			if (sl__room_for(c, field))
				break;
			if (deadline != UINT64_MAX && sl_now_ns() >= deadline) {
				sl__seterr(c, "window full for %u ms", c->o.block_timeout_ms);
				return -SL_ETIMEOUT;
			}
			sl__turn(c, deadline, false);
		}
	}
	if (c->has_open) {
		/* A batch larger than the byte window Welcome granted could only
		 * go out alone, when nothing else is in flight. */
		if (c->open.topic != t || c->open.n == c->o.batch_max_events ||
		    (c->credit_bytes &&
		     c->open.ev_bytes + field + SL_CREDIT_EVENT_OVERHEAD > c->credit_bytes)) {
			ret = sl__seal(c);
			if (ret < 0)
				return ret;
		} else if (c->bld.cap - c->bld.len < field) {
			struct sl__bbuf *b = c->open.b;
			size_t room = sl__epoch_room(c->bld.epoch);
			size_t need = c->bld.len + field + room;
			if (need <= c->batch_limit && b->cap < c->batch_limit) {
				size_t cap = b->cap * 2;
				while (cap < need)
					cap *= 2;
				if (cap > c->batch_limit)
					cap = c->batch_limit;
				uint8_t *p = realloc(b->p, cap);
				if (!p)
					return -ENOMEM;
				b->p = p;
				b->cap = cap;
				c->bld.buf = p;
				c->bld.cap = cap - room;
			} else {
				ret = sl__seal(c);
				if (ret < 0)
					return ret;
			}
		}
	}
	if (!c->has_open) {
		/* Header, topic, base sequence and epoch take at most this. */
		size_t head = SL_FRAME_HDR_LEN + 1 + 5 + c->topic_lens[t] + 11 + 6;
		if (head + field > c->batch_limit) {
			sl__seterr(c, "event of %zu bytes exceeds the %u-byte frame limit", size,
				   c->batch_limit);
			return -EMSGSIZE;
		}
		size_t want = SL__BUF_START;
		if (want < head + field)
			want = head + field;
		if (want > c->batch_limit)
			want = c->batch_limit;
		struct sl__bbuf *b = sl__bbuf_get(c, want);
		if (!b)
			return -ENOMEM;
		size_t cap = b->cap < c->batch_limit ? b->cap : c->batch_limit;
		ret = sl_produce_begin(&c->bld, b->p, cap, c->topics[t], c->topic_lens[t],
				       c->next_seq, c->epoch);
		if (ret < 0) {
			sl__bbuf_put(c, b);
			return ret;
		}
		c->open = (struct sl__batch){.b = b, .base_seq = c->next_seq, .topic = t};
		c->has_open = true;
		c->open_ns = c->o.linger_us ? sl_now_ns() : 0;
	}
	return 0;
}

/* After an event went into the open batch. */
static int sl__commit(struct sl_client *c, uint64_t *seq, size_t size)
{
	if (seq)
		*seq = c->next_seq;
	c->next_seq++;
	c->open.n++;
	c->open.ev_bytes += size + SL_CREDIT_EVENT_OVERHEAD;
	c->st.produced++;
	c->st.inflight++;
	if (c->open.n == c->o.batch_max_events) {
		int ret = sl__seal(c);
		if (ret < 0)
			return ret;
		if (c->state == SL__READY)
			sl__write(c);
		else if (c->state == SL__IDLE)
			sl__connect_start(c);
	}
	return 0;
}

static int sl__enter(struct sl_client *c)
{
	if (!c)
		return -EINVAL;
	if (c->in_cb)
		return -EBUSY;
	if (c->state == SL__FAILED)
		return c->fatal;
	return 0;
}

int sl_client_produce(struct sl_client *c, const char *topic, const struct sl_client_event *ev,
		      uint64_t *seq)
{
	uint8_t id[SL_EVENT_ID_LEN];
	int ret = sl__enter(c);

	if (ret < 0)
		return ret;
	if (!ev || (!ev->type && ev->type_len) || (!ev->aggregate && ev->aggregate_len) ||
	    (!ev->data && ev->data_len) || (!ev->headers && ev->n_headers))
		return -EINVAL;
	int64_t t = sl__topic(c, topic);
	if (t < 0)
		return (int)t;

	struct sl_event_view v = {
		.id = ev->id,
		.type = ev->type,
		.type_len = ev->type_len,
		.aggregate = ev->aggregate,
		.aggregate_len = ev->aggregate_len,
		.timestamp_ms = ev->timestamp_ms,
		.data = ev->data,
		.data_len = ev->data_len,
		.schema_version = ev->schema_version,
	};
	if (!v.id) {
		sl_uuid_gen_v4(&c->rng, id);
		v.id = id;
	}
	if (!v.timestamp_ms)
		v.timestamp_ms = (int64_t)(sl_wall_ns() / SL__NS_PER_MS);
	if (ev->n_headers > c->hdr_cap) {
		struct sl_event_header *h = realloc(c->hdr_scratch, ev->n_headers * sizeof(*h));
		if (!h)
			return -ENOMEM;
		c->hdr_scratch = h;
		c->hdr_cap = ev->n_headers;
	}
	for (size_t i = 0; i < ev->n_headers; i++)
		c->hdr_scratch[i] = (struct sl_event_header){
			.key = ev->headers[i].key,
			.key_len = ev->headers[i].key_len,
			.value = ev->headers[i].value,
			.value_len = ev->headers[i].value_len,
		};
	size_t size = sl_event_encoded_size(&v, c->hdr_scratch, ev->n_headers);
	if (size > SL_FRAME_MAX_LIMIT)
		return -EMSGSIZE;
	ret = sl__reserve(c, (uint32_t)t, size);
	if (ret < 0)
		goto out;
	ret = sl_produce_add_event(&c->bld, &v, c->hdr_scratch, ev->n_headers);
	if (ret < 0)
		goto out; /* reserve made room: cannot happen */
	ret = sl__commit(c, seq, size);
out:
	/* Even a refused produce may have sealed and written a batch. */
	if (c->epfd >= 0)
		sl__ep_sync(c);
	return ret;
}

int sl_client_produce_encoded(struct sl_client *c, const char *topic, const void *event,
			      size_t len, uint64_t *seq)
{
	struct sl_event_view v;
	int ret = sl__enter(c);

	if (ret < 0)
		return ret;
	if ((!event && len) || len > SL_FRAME_MAX_LIMIT)
		return -EINVAL;
	/* A bad event would make the server refuse the whole frame and close
	 * the connection, and every resend would repeat that. */
	ret = sl_event_scan(event, len, &v);
	if (ret < 0)
		return ret;
	int64_t t = sl__topic(c, topic);
	if (t < 0)
		return (int)t;
	ret = sl__reserve(c, (uint32_t)t, len);
	if (ret < 0)
		goto out;
	ret = sl_produce_add_encoded(&c->bld, event, len);
	if (ret < 0)
		goto out;
	ret = sl__commit(c, seq, len);
out:
	if (c->epfd >= 0)
		sl__ep_sync(c);
	return ret;
}

int sl_client_poll(struct sl_client *c, int timeout_ms)
{
	int ret = sl__enter(c);

	if (ret < 0)
		return ret;
	uint64_t before = c->answered, now = sl_now_ns();
	uint64_t deadline = timeout_ms < 0 ? UINT64_MAX
					   : now + (uint64_t)timeout_ms * SL__NS_PER_MS;
	if (sl__linger_due(c, now) && sl__seal(c) < 0)
		return -ENOMEM;
	/* Always one turn, even with timeout 0: it sends and reads. */
	for (int turns = 0;; turns++) {
		sl__turn(c, turns ? deadline : now, true);
		if (c->answered != before || c->state == SL__FAILED)
			break;
		if (!sl__busy(c) && !sl__out_pending(c))
			break;
		if (sl_now_ns() >= deadline)
			break;
	}
	sl__ep_sync(c);
	if (c->answered != before)
		return (int)(c->answered - before > INT32_MAX ? INT32_MAX : c->answered - before);
	return c->state == SL__FAILED ? c->fatal : 0;
}

int sl_client_flush(struct sl_client *c, int timeout_ms)
{
	int ret = sl__enter(c);

	if (ret < 0)
		return ret;
	ret = sl__seal(c);
	if (ret < 0)
		return ret;
	uint64_t deadline = timeout_ms < 0 ? UINT64_MAX
					   : sl_now_ns() + (uint64_t)timeout_ms * SL__NS_PER_MS;
	ret = sl__run(c, deadline, sl__all_answered, true);
	sl__ep_sync(c);
	return ret;
}

int sl_client_fd(struct sl_client *c)
{
	if (c->epfd < 0) {
		c->epfd = epoll_create1(EPOLL_CLOEXEC);
		if (c->epfd < 0)
			return -errno;
	}
	sl__ep_sync(c);
	return c->epfd;
}

int sl_client_timeout_ms(const struct sl_client *c)
{
	if (c->state == SL__FAILED)
		return -1;
	/* Writable socket with pending data is the fd's job; a sealed batch
	 * that never went out because we were not connected is the timers'. */
	uint64_t t = sl__next_timer(c, true);
	if (c->has_open && c->o.linger_us == 0)
		t = 0;
	if (t == UINT64_MAX)
		return -1;
	uint64_t now = sl_now_ns();
	if (t <= now)
		return 0;
	uint64_t ms = (t - now + SL__NS_PER_MS - 1) / SL__NS_PER_MS;
	return ms > INT32_MAX ? INT32_MAX : (int)ms;
}

uint64_t sl_client_inflight(const struct sl_client *c)
{
	return c->st.inflight;
}

void sl_client_get_stats(const struct sl_client *c, struct sl_client_stats *out)
{
	*out = c->st;
	out->credit_events = c->cr_events;
	out->credit_bytes = c->cr_bytes > 0 ? (uint64_t)c->cr_bytes : 0;
	if (c->wait_since)
		out->credit_wait_ns += sl_now_ns() - c->wait_since;
}

uint64_t sl_client_producer_id(const struct sl_client *c)
{
	return c->producer_id;
}

const char *sl_client_last_error(const struct sl_client *c)
{
	return c ? c->err : "no client";
}

void sl_client_close(struct sl_client *c)
{
	if (!c || c->in_cb)
		return;
	sl__close_fd(c);
	if (c->has_open) {
		struct sl__batch b = c->open;
		c->has_open = false;
		sl__answer_all(c, &b, -ECANCELED, 0);
		sl__bbuf_put(c, b.b);
	}
	for (uint64_t i = c->head; i < c->tail; i++)
		sl__answer_all(c, sl__at(c, i), -ECANCELED, 0);
	sl__retire(c);
	sl__free(c);
}
