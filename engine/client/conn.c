/*
 * libsluice's connection: connect and handshake (Hello, Welcome), backoff
 * and reconnect, frames in (Ack, Credit, Error), reading and writing the
 * socket, timers, and the loop that poll, flush and connect turn. Runs on
 * the thread that calls the client (sluice/client.h).
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

/* ---- the connection ------------------------------------------------------- */

void sl__client_ep_sync(struct sl_client *c)
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

void sl__client_close_fd(struct sl_client *c)
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
	sl__client_close_fd(c);
	c->in_len = 0;
	c->out_len = c->out_off = 0;
	c->send_off = 0;
	sl__client_credit_reset(c);
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

void sl__client_abandon(struct sl_client *c, const char *why)
{
	sl__client_seterr(c, "%s: %s", c->addr_text, why);
	sl__disconnect(c, -SL_ETIMEOUT);
}

/* A fatal error: answer everything with it; every later call returns it. */
static void sl__fail(struct sl_client *c, int err)
{
	sl__client_close_fd(c);
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
		sl__client_answer_all(c, b, err, 0);
		sl__client_bbuf_put(c, b->b);
	}
	for (uint64_t i = c->head; i < c->tail; i++)
		sl__client_answer_all(c, sl__at(c, i), err, 0);
	sl__client_retire(c);
}

static int sl__send_hello(struct sl_client *c)
{
	Sluice__V1__Hello h = SLUICE__V1__HELLO__INIT;
	h.min_version = SL_PROTO_VERSION;
	h.max_version = SL_PROTO_VERSION;
	h.producer_id = c->producer_id;
	h.producer_proof.data = c->proof;
	h.producer_proof.len = c->producer_id ? c->proof_len : 0;
	h.client_name = c->name;
	h.idempotence_off = c->o.idempotence_off;
	h.token = c->token;
	h.resume_epoch = c->producer_id ? c->resume_epoch : 0;
	if (c->pname) {
		/* Every Hello by name, reconnects too: the server refuses a
		 * name's id asked for by number (dedup.h). */
		h.producer_name = c->pname;
		h.producer_id = 0;
		h.producer_proof.len = 0;
		h.resume_epoch = 0;
	}
	size_t need = sl_frame_msg_size(&h.base);
	int ret = sl__client_out_reserve(c, need);
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

void sl__client_connect_start(struct sl_client *c)
{
	int fd = socket(c->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	int ret;

	if (fd < 0) {
		ret = -errno;
		sl__client_seterr(c, "socket: %s", strerror(-ret));
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
	sl__client_seterr(c, "connect %s: %s", c->addr_text, strerror(-ret));
	c->state = SL__CONNECTING;
	sl__disconnect(c, ret);
}

static int sl__on_welcome(struct sl_client *c, const struct sl_frame *f)
{
	ProtobufCMessage *m;
	int ret = sl_frame_decode_msg(f, &m);

	if (ret < 0) {
		sl__client_seterr(c, "%s: Welcome: malformed", c->addr_text);
		return ret;
	}
	Sluice__V1__Welcome *w = (Sluice__V1__Welcome *)m;
	bool first = c->st.connects == 0;
	if (w->version != SL_PROTO_VERSION) {
		sl__client_seterr(c, "%s: server chose protocol version %u", c->addr_text,
		                  w->version);
		sl_frame_msg_free(m);
		return -SL_EPROTO_VERSION;
	}
	c->producer_id = w->producer_id;
	if (w->producer_proof.len == SL_CLIENT_PROOF_LEN) {
		memcpy(c->proof, w->producer_proof.data, SL_CLIENT_PROOF_LEN);
		c->proof_len = SL_CLIENT_PROOF_LEN;
	}
	c->epoch = w->epoch;
	c->credit_events = w->credit_events;
	c->credit_bytes = w->credit_bytes;
	sl__client_credit_reset(c);
	c->cr_events = w->credit_events;
	c->cr_bytes = (int64_t)w->credit_bytes;
	c->max_frame = w->max_frame_bytes && w->max_frame_bytes <= SL_FRAME_MAX_LIMIT
	                   ? w->max_frame_bytes
	                   : SL__DEF_MAX_FRAME;
	/* A known producer continues where the server says it stands. */
	if (first && !c->sparse && !sl__busy(c) && w->next_sequence > c->next_seq)
		c->next_seq = w->next_sequence;
	/* Later Welcomes do not move it: the client's own count goes on (its
	 * unanswered events are resent at their sequences). */
	if (first)
		c->resume_seq = c->next_seq;
	sl_frame_msg_free(m);
	sl__client_recompute_window(c);
	c->state = SL__READY;
	c->attempt = 0;
	c->st.connects++;
	c->progress_ns = sl_now_ns();

	/* The open batch carries the old epoch: seal it and resend it with the
	 * rest. */
	ret = sl__client_seal(c);
	if (ret < 0)
		return ret;
	if (!first || c->extracted) {
		for (uint64_t i = c->head; i < c->tail; i++) {
			ret = sl__client_resend_batch(c, sl__at(c, i));
			if (ret < 0)
				return ret;
		}
		sl__client_retire(c);
		c->send_idx = c->tail;
		c->send_off = 0;
	}
	c->cred_idx = c->send_idx;
	sl__client_credit_advance(c);
	return 0;
}

static int sl__on_error_frame(struct sl_client *c, const struct sl_frame *f)
{
	ProtobufCMessage *m;
	uint32_t code = SLUICE__V1__ERROR_CODE__ERR_INTERNAL;

	if (sl_frame_decode_msg(f, &m) == 0) {
		Sluice__V1__Error *e = (Sluice__V1__Error *)m;
		code = (uint32_t)e->code;
		sl__client_seterr(c, "%s: server error %s: %s", c->addr_text,
		                  sl_client_code_name(code), e->message ? e->message : "");
		sl_frame_msg_free(m);
	} else {
		sl__client_seterr(c, "%s: server sent a malformed Error", c->addr_text);
	}
	int err = sl__client_code_status(code);
	if (!sl__client_code_retryable(code) || c->initial)
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
		ret = sl__ack_scan(f->body, f->body_len, sl__client_on_ack_event, c);
		if (ret < 0) {
			sl__client_seterr(c, "%s: malformed Ack", c->addr_text);
			return ret;
		}
		c->progress_ns = sl_now_ns();
		sl__client_retire(c);
		return 0;
	case SLUICE__V1__FRAME_TYPE__FRAME_WELCOME:
		if (c->state != SL__HELLO) {
			sl__client_seterr(c, "%s: Welcome out of place", c->addr_text);
			return -SL_EPROTO_STATE;
		}
		return sl__on_welcome(c, f);
	case SLUICE__V1__FRAME_TYPE__FRAME_CREDIT: {
		ProtobufCMessage *m;
		if (sl_frame_decode_msg(f, &m) < 0) {
			sl__client_seterr(c, "%s: malformed Credit", c->addr_text);
			return -SL_EPROTO_DECODE;
		}
		Sluice__V1__Credit *cr = (Sluice__V1__Credit *)m;
		c->cr_events += cr->events;
		c->cr_bytes += (int64_t)cr->bytes;
		c->st.credit_frames++;
		sl_frame_msg_free(m);
		sl__client_credit_advance(c);
		return 0;
	}
	case SLUICE__V1__FRAME_TYPE__FRAME_ERROR:
		return sl__on_error_frame(c, f);
	default:
		sl__client_seterr(c, "%s: unexpected %s frame", c->addr_text,
		                  sl_frame_type_name(f->type));
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
				sl__client_seterr(c, "out of memory");
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
			sl__client_seterr(c, "%s: %s", c->addr_text, strerror(-err));
			sl__disconnect(c, err);
			return;
		}
		if (n == 0) {
			sl__client_seterr(c, "%s: connection closed by the server", c->addr_text);
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
				sl__client_seterr(c, "%s: bad frame from the server: %s",
				                  c->addr_text, sl_strerror(ret));
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
void sl__client_write(struct sl_client *c)
{
	sl__client_credit_advance(c);
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
			sl__client_seterr(c, "%s: %s", c->addr_text, strerror(-err));
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

bool sl__client_linger_due(const struct sl_client *c, uint64_t now)
{
	return c->has_open && now - c->open_ns >= (uint64_t)c->o.linger_us * 1000u;
}

/* Timers: connect/handshake deadline, ack timeout, backoff end. */
static void sl__timers(struct sl_client *c, uint64_t now)
{
	switch (c->state) {
	case SL__IDLE:
		if (sl__busy(c))
			sl__client_connect_start(c);
		break;
	case SL__BACKOFF:
		if (now >= c->reconnect_at)
			sl__client_connect_start(c);
		break;
	case SL__CONNECTING:
	case SL__HELLO:
		if (now >= c->conn_deadline) {
			sl__client_seterr(c, "%s: %s timed out", c->addr_text,
			                  c->state == SL__CONNECTING ? "connect" : "handshake");
			sl__disconnect(c, -SL_ETIMEOUT);
		}
		break;
	case SL__READY:
		/* Only events already written can be waiting for an ack. */
		if (c->head != c->send_idx &&
		    now - c->progress_ns >= (uint64_t)c->o.ack_timeout_ms * SL__NS_PER_MS) {
			sl__client_seterr(c, "%s: no ack for %u ms", c->addr_text,
			                  c->o.ack_timeout_ms);
			sl__disconnect(c, -SL_ETIMEOUT);
		}
		break;
	default:
		break;
	}
}

/* The next instant a timer needs the loop, or UINT64_MAX. */
uint64_t sl__client_next_timer(const struct sl_client *c, bool linger)
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
void sl__client_turn(struct sl_client *c, uint64_t until, bool seal_linger)
{
	uint64_t now = sl_now_ns();

	if (seal_linger && sl__client_linger_due(c, now) && sl__client_seal(c) < 0) {
		sl__fail(c, -ENOMEM);
		return;
	}
	sl__timers(c, now);
	if (c->state == SL__HELLO || c->state == SL__READY)
		sl__client_write(c);
	if (c->state == SL__FAILED)
		return;

	uint64_t t = sl__client_next_timer(c, seal_linger);
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
			sl__client_seterr(c, "connect %s: %s", c->addr_text, strerror(err));
			sl__disconnect(c, -err);
			return;
		}
		int ret = sl__send_hello(c);
		if (ret < 0)
			sl__fail(c, ret);
		else
			sl__client_write(c);
		return;
	}
	if (p.revents & (POLLIN | POLLERR | POLLHUP))
		sl__read(c);
	/* A Credit read just now may have cleared batches for writing. */
	if (c->fd >= 0 && ((p.revents & POLLOUT) || sl__out_pending(c)))
		sl__client_write(c);
}

/* Runs turns until done(c) or the deadline (UINT64_MAX: none). */
int sl__client_run(struct sl_client *c, uint64_t deadline, bool (*done)(const struct sl_client *),
                   bool seal_linger)
{
	for (;;) {
		if (c->state == SL__FAILED)
			return c->fatal;
		if (done(c))
			return 0;
		if (deadline != UINT64_MAX && sl_now_ns() >= deadline)
			return -SL_ETIMEOUT;
		sl__client_turn(c, deadline, seal_linger);
	}
}

bool sl__client_ready(const struct sl_client *c)
{
	return c->state == SL__READY;
}

bool sl__client_all_answered(const struct sl_client *c)
{
	return !sl__busy(c);
}
