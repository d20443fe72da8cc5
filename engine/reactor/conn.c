/*
 * Connections of one reactor, their I/O: accept, receive into provided
 * buffers and frame reassembly across them, send, close, timeouts, and the
 * lists a connection waits on (flush, resume, held). conn.h says what the
 * other files of a connection do, and when a connection may be freed.
 */
#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "net/net.h"
#include "reactor/conn.h"

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

void sl__conn_unlink_held(struct sl_reactor *r, struct sl_conn *c)
{
	if (!c->on_held_list)
		return;
	*c->held_pprev = c->held_next;
	if (c->held_next)
		c->held_next->held_pprev = c->held_pprev;
	c->on_held_list = false;
	atomic_fetch_sub_explicit(&r->m_held_now, 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&r->m_held_ns, sl_now_ns() - c->held_since, memory_order_relaxed);
	c->held_since = 0;
}

void sl__conn_hold(struct sl_reactor *r, struct sl_conn *c)
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
	/* The registry may forget an id once no session holds it. */
	if (c->prod)
		sl_producers_release(c->prod);
	/* The window's bytes the client holds come back now (credit.h). */
	sl_credit_close(r->credits, &c->cr);
	/* A consumer that died takes its partitions with it now, not a
	 * session timeout later. */
	sl__groups_conn_closed(r, c);
	r->conns[c->slot] = NULL;
	r->gens[c->slot]++;
	r->free_slots[r->n_free++] = c->slot;
	r->n_conns--;
	atomic_fetch_sub_explicit(r->env->conns, 1, memory_order_relaxed);
	if (c->ip_counted)
		sl_iplimit_release(r->env->per_ip, &c->ip);
	free(c->rbuf);
	free(c->park);
	free(c->out[0].p);
	free(c->out[1].p);
	free(c->acks);
	free(c->replica_node);
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

static void sl__conn_mark_resume(struct sl_reactor *r, struct sl_conn *c)
{
	c->want_recv = true;
	if (!c->on_resume_list) {
		c->on_resume_list = true;
		c->resume_next = r->resume_head;
		r->resume_head = c;
	}
}

void sl__conn_fail(struct sl_reactor *r, struct sl_conn *c, uint32_t code, const char *fmt, ...)
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

/* Cold path: tells a refused client why in one non-blocking write (a fresh
 * socket's send buffer always has room) and closes. */
static void sl__conn_refuse(int fd, uint32_t code, const char *msg)
{
	uint8_t buf[256];
	int n = sl_frame_encode_error(buf, sizeof(buf), code, msg);
	if (n > 0 && send(fd, buf, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT) < 0) {
		/* nothing more to do for it */
	}
	close(fd);
}

void sl__conn_accepted(struct sl_reactor *r, int fd)
{
	const struct sl_reactor_env *env = r->env;
	struct sl_ipkey ip = {{0}};
	bool ip_known = false;

	if (r->stopping) {
		sl__conn_refuse(fd, SLUICE__V1__ERROR_CODE__ERR_DRAINING,
		                "server is shutting down");
		return;
	}
	if (atomic_fetch_add_explicit(env->conns, 1, memory_order_relaxed) >=
	        r->lim.max_connections ||
	    r->n_free == 0) {
		atomic_fetch_sub_explicit(env->conns, 1, memory_order_relaxed);
		if (env->refused)
			atomic_fetch_add_explicit(&env->refused[0], 1, memory_order_relaxed);
		sl__conn_refuse(fd, SLUICE__V1__ERROR_CODE__ERR_LIMIT,
		                "connection limit reached (limits.max_connections)");
		return;
	}
	/* Per client address (limits.max_connections_per_ip): one address
	 * cannot take every slot from the others. A peer whose address cannot
	 * be read (it already left) or is not IP is not counted. */
	if (env->per_ip && sl_ipkey_of_peer(fd, &ip) == 0) {
		if (!sl_iplimit_acquire(env->per_ip, &ip, r->lim.max_connections_per_ip)) {
			char a[64], msg[160];
			atomic_fetch_sub_explicit(env->conns, 1, memory_order_relaxed);
			if (env->refused)
				atomic_fetch_add_explicit(&env->refused[1], 1,
				                          memory_order_relaxed);
			sl_ipkey_str(&ip, a, sizeof(a));
			snprintf(msg, sizeof(msg),
			         "too many connections from %s: %u "
			         "(limits.max_connections_per_ip)",
			         a, r->lim.max_connections_per_ip);
			sl__conn_refuse(fd, SLUICE__V1__ERROR_CODE__ERR_LIMIT, msg);
			return;
		}
		ip_known = true;
	}
	struct sl_conn *c = calloc(1, sizeof(*c));
	if (!c) {
		atomic_fetch_sub_explicit(env->conns, 1, memory_order_relaxed);
		if (ip_known)
			sl_iplimit_release(env->per_ip, &ip);
		close(fd);
		return;
	}
	c->ip_counted = ip_known;
	c->ip = ip;
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
	       !c->park && sl__conn_out_pending(c) < SL_CONN_OUT_HIGH;
}

int sl__conn_put_msg(struct sl_conn *c, uint8_t type, const ProtobufCMessage *m)
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

/* Parks the input from the frame that asked (its `have` bytes already in
 * c->park, else at p) to the end of the buffer: kept until the admin
 * thread answers (sl__conn_unpark). */
static void sl__conn_park_rest(struct sl_reactor *r, struct sl_conn *c, uint32_t have,
                               const uint8_t *p, size_t n)
{
	c->parking = false;
	uint8_t *q = realloc(c->park, (size_t)have + n + 1);
	if (!q) {
		free(c->park);
		c->park = NULL;
		c->park_len = 0;
		sl__conn_fail(r, c, SLUICE__V1__ERROR_CODE__ERR_INTERNAL, "out of memory");
		return;
	}
	memcpy(q + have, p, n);
	c->park = q;
	c->park_len = have + (uint32_t)n;
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
			sl__conn_bad_frame(r, c, ret, sl_get_le32(c->rbuf));
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
			sl__conn_on_frame(r, c, &f);
		if (SL_UNLIKELY(c->parking)) {
			/* The frame is rbuf's whole content: rbuf becomes the
			 * parked input, the rest of this buffer after it. */
			uint32_t flen = (uint32_t)ret;
			c->park = c->rbuf;
			c->park_len = flen;
			c->rbuf = NULL;
			c->rcap = 0;
			sl__conn_park_rest(r, c, flen, p, n);
			return;
		}
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
			sl__conn_on_frame(r, c, &f);
			if (SL_UNLIKELY(c->parking)) {
				sl__conn_park_rest(r, c, 0, p, n);
				return;
			}
			p += ret;
			n -= (size_t)ret;
			continue;
		}
		if (ret < 0) {
			sl__conn_bad_frame(r, c, ret, n >= 4 ? sl_get_le32(p) : 0);
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

void sl__conn_unpark(struct sl_reactor *r, struct sl_conn *c, bool failed)
{
	uint8_t *p = c->park;
	uint32_t n = c->park_len;

	c->park = NULL;
	c->park_len = 0;
	/* While it is fed again, no frame parks: a topic that could not be
	 * made is refused like any unknown one. */
	c->park_failed = failed;
	if (c->state != SL_CONN_CLOSING)
		sl__conn_input(r, c, p, n);
	c->park_failed = false;
	free(p);
	if (!c->recv_armed) {
		if (sl__conn_may_read(r, c))
			sl__conn_arm_recv(r, c);
		else if (!c->read_eof && c->state != SL_CONN_CLOSING && !r->stopping)
			sl__conn_mark_resume(r, c);
	}
	sl__conn_mark_flush(r, c);
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
				c->deadline_ns =
				    sl_now_ns() + (uint64_t)r->lim.idle_timeout_ms * 1000000u;
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
	bool done =
	    c->state == SL_CONN_CLOSING || (c->read_eof && c->cr.unacked == 0 && c->owed == 0);
	if (!done)
		return;
	if (c->on_resume_list) {
		c->want_recv = false; /* unlinked lazily by sl__conns_resume */
		c->state = SL_CONN_CLOSING;
		return;
	}
	/* A stopping reactor stopped reading with input still queued: a close
	 * now would reset the connection and lose the last acks (see
	 * sl__conns_close_all), so it closes them all at the end, gracefully. */
	if (r->stopping)
		return;
	close(c->fd);
	sl__conn_free(r, c);
}

void sl__conns_flush(struct sl_reactor *r)
{
	struct sl_conn *c = r->flush_head;

	r->flush_head = NULL;
	while (c) {
		struct sl_conn *next = c->flush_next;
		c->on_flush_list = false;
		sl__conn_answer(r, c);
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

static void sl__conn_timeout(struct sl_reactor *r, struct sl_conn *c)
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

/* Closing a TCP socket whose receive queue holds unread bytes makes the
 * kernel reset the connection at once and throw away what is still in our
 * send queue: the last acks of a drain, sent but not yet taken by the peer,
 * would be lost (e2e sigterm_drains saw 58 of 31,039 go so under load). So
 * the stop half-closes every connection (FIN after the queued acks), reads
 * and drops what producers still send until each peer closes too, and only
 * then closes; a peer that never closes costs at most SL_LINGER_MS (or what
 * is left of the drain's deadline). */
#define SL_LINGER_MS 2000

static void sl__conns_linger(struct sl_reactor *r, uint64_t deadline_ns)
{
	enum { SINK = 1 << 16 };
	struct pollfd *pf = calloc(r->conn_cap, sizeof(*pf));
	char *sink = malloc(SINK); /* each reactor its own: they linger at once */
	nfds_t n = 0;

	if (!pf || !sink)
		goto out; /* closing at once only risks the last acks */
	for (uint32_t i = 0; i < r->conn_cap; i++) {
		struct sl_conn *c = r->conns[i];
		if (c && shutdown(c->fd, SHUT_WR) == 0)
			pf[n++] = (struct pollfd){.fd = c->fd, .events = POLLIN};
	}
	for (nfds_t open = n; open;) {
		uint64_t now = sl_now_ns();
		if (now >= deadline_ns)
			break;
		int ret = poll(pf, n, (int)((deadline_ns - now + 999999) / 1000000));
		if (ret < 0 && errno != EINTR)
			break;
		for (nfds_t k = 0; ret > 0 && k < n; k++) {
			if (pf[k].fd < 0 || !pf[k].revents)
				continue;
			ssize_t got;
			/* Bounded: a peer cannot outrun 64 reads of 64 KiB a turn. */
			for (int m = 0; m < 64; m++) {
				got = recv(pf[k].fd, sink, SINK, MSG_DONTWAIT);
				if (got <= 0)
					break;
			}
			if (got == 0 || (got < 0 && errno != EAGAIN && errno != EINTR)) {
				pf[k].fd = -1; /* the peer closed: nothing more to drop */
				open--;
			}
		}
	}
out:
	free(sink);
	free(pf);
}

void sl__conns_close_all(struct sl_reactor *r)
{
	if (!r->drain_expired) {
		uint64_t deadline = sl_now_ns() + (uint64_t)SL_LINGER_MS * 1000000u;
		if (r->drain_deadline_ns && r->drain_deadline_ns < deadline)
			deadline = r->drain_deadline_ns;
		sl__conns_linger(r, deadline);
	}
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

void sl__conns_timeouts(struct sl_reactor *r, uint64_t now)
{
	for (uint32_t i = 0; i < r->conn_cap; i++) {
		struct sl_conn *c = r->conns[i];
		if (c && c->deadline_ns && now > c->deadline_ns)
			sl__conn_timeout(r, c);
	}
}
