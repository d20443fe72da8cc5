#include "read/read.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "base/base.h"
#include "log/log.h"
#include "proto/proto.h"
#include "ring/ring.h"
#include "topic/topic.h"

/* Requests in flight to the reader at once, from all reactors. */
#define SL_READ_QUEUE 4096
/* How often a waiting (long-poll) request looks for new data. */
#define SL_READ_POLL_MS 2
/* An answer holds at most this many event bytes, whatever is asked. */
#define SL_READ_MAX_BYTES (4u << 20)

struct sl_reader {
	const struct sl_topics *topics;
	uint32_t n;
	sl_reader_wake_fn wake;
	void *wake_arg;
	struct sl_ring in;        /* MPMC: reactors push, the reader pops */
	struct sl_ring *out;      /* per reactor, SPSC: reader -> reactor */
	_Atomic uint64_t *outstanding; /* per reactor */
	struct sl_log_view **views; /* per topic, per partition (flattened) */
	uint32_t *view_base;      /* topic -> first index in views */
	int efd;
	pthread_t thread;
	bool started;
	_Atomic bool draining; /* answer at once, wait for nothing */
	_Atomic bool stop;     /* leave the thread */
	struct sl_fetch_req *waiting;
	/* Scratch for one answer. */
	uint8_t *buf;
	size_t len, cap;
	int64_t *times;
	size_t n_times, cap_times;
	bool oom;
};

/* ---- FetchResult encoding ------------------------------------------------ */

static int sl__reserve(struct sl_reader *rd, size_t more)
{
	if (rd->len + more <= rd->cap)
		return 0;
	size_t cap = rd->cap ? rd->cap : 64 * 1024;
	while (cap < rd->len + more)
		cap *= 2;
	uint8_t *p = realloc(rd->buf, cap);
	if (!p) {
		rd->oom = true;
		return -ENOMEM;
	}
	rd->buf = p;
	rd->cap = cap;
	return 0;
}

static size_t sl__varint_len(uint64_t v)
{
	size_t n = 1;
	while (v >= 0x80) {
		v >>= 7;
		n++;
	}
	return n;
}

static void sl__put_varint(struct sl_reader *rd, uint64_t v)
{
	if (sl__reserve(rd, 10) < 0)
		return;
	while (v >= 0x80) {
		rd->buf[rd->len++] = (uint8_t)(v | 0x80);
		v >>= 7;
	}
	rd->buf[rd->len++] = (uint8_t)v;
}

/* field number, wire type */
static void sl__put_tag(struct sl_reader *rd, uint32_t field, uint32_t wt)
{
	sl__put_varint(rd, (uint64_t)field << 3 | wt);
}

static void sl__put_bytes(struct sl_reader *rd, uint32_t field, const void *p, size_t n)
{
	sl__put_tag(rd, field, 2);
	sl__put_varint(rd, n);
	if (sl__reserve(rd, n) < 0)
		return;
	memcpy(rd->buf + rd->len, p, n);
	rd->len += n;
}

static void sl__put_u64(struct sl_reader *rd, uint32_t field, uint64_t v)
{
	if (!v)
		return; /* proto3: zero is the default, not encoded */
	sl__put_tag(rd, field, 0);
	sl__put_varint(rd, v);
}

static int sl__visit(void *arg, const struct sl_log_record *rec)
{
	struct sl_reader *rd = arg;
	/* Event i is FetchResult.events[i], stored bytes verbatim: an encoded
	 * Event is exactly the payload of a length-delimited Event field. */
	sl__put_bytes(rd, 5, rec->event, rec->len);
	if (rd->n_times == rd->cap_times) {
		size_t cap = rd->cap_times ? rd->cap_times * 2 : 256;
		int64_t *t = realloc(rd->times, cap * sizeof(*t));
		if (!t) {
			rd->oom = true;
			return 1;
		}
		rd->times = t;
		rd->cap_times = cap;
	}
	rd->times[rd->n_times++] = rec->append_time_ms;
	return rd->oom;
}

static const char *sl__topic_name(const struct sl_reader *rd, uint32_t t)
{
	return rd->topics->v[t].name;
}

/* Builds the answer frame for `req` from what is there now. Returns true
 * when the request is answered (data, error, or its deadline passed). */
static bool sl__serve(struct sl_reader *rd, struct sl_fetch_req *req, bool final)
{
	struct sl_partition *p = &rd->topics->v[req->topic].parts[req->partition];
	uint64_t durable = atomic_load_explicit(&p->durable_pub, memory_order_acquire);
	uint32_t error = 0;
	char message[400] = "";
	uint64_t next = req->offset;
	int n = 0;

	/* p->log and p->error are set at start-up only (a refused partition);
	 * a log that fails later is the owner's business: what is durable
	 * stays readable. */
	bool refused = !p->log;
	if (!final && req->offset >= durable && sl_now_ns() < req->deadline_ns && !refused)
		return false; /* nothing yet: keep waiting */

	rd->len = SL_FRAME_HDR_LEN;
	rd->n_times = 0;
	rd->oom = false;
	if (sl__reserve(rd, 256) < 0)
		goto out_of_memory;
	sl__put_u64(rd, 1, req->request_id);
	const char *tn = sl__topic_name(rd, req->topic);
	sl__put_bytes(rd, 2, tn, strlen(tn));
	sl__put_u64(rd, 3, req->partition);

	struct sl_log_view **vp = &rd->views[rd->view_base[req->topic] + req->partition];
	if (!*vp && p->dir && !refused) {
		int ret = sl_log_view_open(p->dir, vp);
		if (ret < 0) {
			*vp = NULL;
			error = SLUICE__V1__ERROR_CODE__ERR_STORAGE;
			snprintf(message, sizeof(message), "cannot open %s: %s", p->dir,
				 sl_strerror(ret));
		}
	}
	uint64_t start = atomic_load_explicit(&p->start_pub, memory_order_relaxed);
	uint64_t base = req->offset < start ? start : req->offset;
	if (*vp && !refused && req->offset < durable) {
		uint32_t max_bytes = req->max_bytes && req->max_bytes < SL_READ_MAX_BYTES
					     ? req->max_bytes
					     : SL_READ_MAX_BYTES;
		uint32_t max_events = req->max_events ? req->max_events : 1000;
		n = sl_log_view_read(*vp, req->offset, durable, max_events, max_bytes, sl__visit, rd,
				     &next);
		if (n < 0) {
			error = SLUICE__V1__ERROR_CODE__ERR_STORAGE;
			snprintf(message, sizeof(message), "%s",
				 n == -SL_ECORRUPT ? sl_log_view_error(*vp) : sl_strerror(n));
			n = 0;
		}
	} else if (refused && !error) {
		error = SLUICE__V1__ERROR_CODE__ERR_STORAGE;
		snprintf(message, sizeof(message), "%s", p->error ? p->error : "partition refused");
	}
	if (rd->oom)
		goto out_of_memory;
	if (n > 0)
		base = next - (uint64_t)n;
	sl__put_u64(rd, 4, base);
	sl__put_u64(rd, 6, durable);
	sl__put_u64(rd, 7, error);
	if (message[0])
		sl__put_bytes(rd, 8, message, strlen(message));
	if (rd->n_times) {
		size_t plen = 0;
		for (size_t i = 0; i < rd->n_times; i++)
			plen += sl__varint_len((uint64_t)rd->times[i]);
		sl__put_tag(rd, 9, 2);
		sl__put_varint(rd, plen);
		for (size_t i = 0; i < rd->n_times; i++)
			sl__put_varint(rd, (uint64_t)rd->times[i]);
	}
	if (rd->oom)
		goto out_of_memory;
	req->frame = malloc(rd->len);
	if (!req->frame)
		goto out_of_memory;
	memcpy(req->frame, rd->buf, rd->len);
	sl_frame_header_write(req->frame, rd->len, SLUICE__V1__FRAME_TYPE__FRAME_FETCH_RESULT,
			      rd->len - SL_FRAME_HDR_LEN);
	req->frame_len = (uint32_t)rd->len;
	return true;

out_of_memory:
	/* The reactor sees frame == NULL and answers with an error frame. */
	req->frame = NULL;
	req->frame_len = 0;
	return true;
}

static void sl__answer(struct sl_reader *rd, struct sl_fetch_req *req)
{
	/* Once pushed, req belongs to the reactor (which may free it at once):
	 * read what we need first. A full ring (more long polls answered at
	 * once than it holds) waits for the reactor to take some. */
	uint32_t reactor = req->reactor;
	while (!sl_ring_push_spsc(&rd->out[reactor], req))
		sched_yield();
	rd->wake(rd->wake_arg, reactor);
}

static void *sl__thread(void *arg)
{
	struct sl_reader *rd = arg;
	pthread_setname_np(pthread_self(), "sl-reader");

	for (;;) {
		bool stopping = atomic_load_explicit(&rd->stop, memory_order_acquire);
		bool final = stopping || atomic_load_explicit(&rd->draining, memory_order_acquire);
		void *items[64];
		unsigned got;

		while ((got = sl_ring_pop_batch_mpmc(&rd->in, items, SL_ARRAY_LEN(items))) > 0) {
			for (unsigned i = 0; i < got; i++) {
				struct sl_fetch_req *req = items[i];
				if (sl__serve(rd, req, final)) {
					sl__answer(rd, req);
				} else {
					req->next = rd->waiting;
					rd->waiting = req;
				}
			}
		}
		struct sl_fetch_req **pp = &rd->waiting;
		while (*pp) {
			struct sl_fetch_req *req = *pp;
			if (sl__serve(rd, req, final)) {
				*pp = req->next;
				sl__answer(rd, req);
			} else {
				pp = &req->next;
			}
		}
		if (stopping && sl_ring_size(&rd->in) == 0)
			break;
		struct pollfd pfd = {.fd = rd->efd, .events = POLLIN};
		int ret = poll(&pfd, 1, rd->waiting ? SL_READ_POLL_MS : -1);
		if (ret > 0) {
			uint64_t v;
			ssize_t n = read(rd->efd, &v, sizeof(v));
			(void)n;
		}
	}
	return NULL;
}

int sl_reader_create(const struct sl_topics *topics, uint32_t n_reactors, sl_reader_wake_fn wake,
		     void *wake_arg, struct sl_reader **out)
{
	struct sl_reader *rd = aligned_alloc(SL_CACHELINE, (sizeof(*rd) + SL_CACHELINE - 1) &
							       ~(size_t)(SL_CACHELINE - 1));
	int ret = -ENOMEM;

	if (!rd)
		return -ENOMEM;
	memset(rd, 0, sizeof(*rd));
	rd->topics = topics;
	rd->n = n_reactors;
	rd->wake = wake;
	rd->wake_arg = wake_arg;
	rd->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (rd->efd < 0) {
		ret = -errno;
		goto fail;
	}
	ret = sl_ring_init(&rd->in, SL_READ_QUEUE);
	if (ret < 0)
		goto fail;
	ret = -ENOMEM;
	rd->out = aligned_alloc(SL_CACHELINE, n_reactors * sizeof(*rd->out));
	rd->outstanding = calloc(n_reactors, sizeof(*rd->outstanding));
	rd->view_base = calloc(topics->n ? topics->n : 1, sizeof(*rd->view_base));
	if (!rd->out || !rd->outstanding || !rd->view_base)
		goto fail;
	memset(rd->out, 0, n_reactors * sizeof(*rd->out));
	for (uint32_t i = 0; i < n_reactors; i++) {
		ret = sl_ring_init(&rd->out[i], SL_READ_QUEUE * 2);
		if (ret < 0)
			goto fail;
	}
	uint32_t total = 0;
	for (uint32_t t = 0; t < topics->n; t++) {
		rd->view_base[t] = total;
		total += topics->v[t].n_parts;
	}
	ret = -ENOMEM;
	rd->views = calloc(total ? total : 1, sizeof(*rd->views));
	if (!rd->views)
		goto fail;
	*out = rd;
	return 0;
fail:
	sl_reader_destroy(rd);
	return ret;
}

int sl_reader_start(struct sl_reader *rd)
{
	int ret = pthread_create(&rd->thread, NULL, sl__thread, rd);
	if (ret)
		return -ret;
	rd->started = true;
	return 0;
}

void sl_reader_drain(struct sl_reader *rd)
{
	atomic_store_explicit(&rd->draining, true, memory_order_release);
	uint64_t one = 1;
	ssize_t n = write(rd->efd, &one, sizeof(one));
	(void)n;
}

void sl_reader_stop(struct sl_reader *rd)
{
	if (!rd || !rd->started)
		return;
	atomic_store_explicit(&rd->stop, true, memory_order_release);
	uint64_t one = 1;
	ssize_t n = write(rd->efd, &one, sizeof(one));
	(void)n;
	pthread_join(rd->thread, NULL);
	rd->started = false;
}

void sl_reader_destroy(struct sl_reader *rd)
{
	if (!rd)
		return;
	sl_reader_stop(rd);
	void *item;
	while (rd->in.slots && sl_ring_pop_mpmc(&rd->in, &item))
		free(item);
	if (rd->out)
		for (uint32_t i = 0; i < rd->n; i++) {
			while (rd->out[i].slots && sl_ring_pop_spsc(&rd->out[i], &item)) {
				free(((struct sl_fetch_req *)item)->frame);
				free(item);
			}
			sl_ring_destroy(&rd->out[i]);
		}
	sl_ring_destroy(&rd->in);
	if (rd->views) {
		uint32_t total = 0;
		for (uint32_t t = 0; t < rd->topics->n; t++)
			total += rd->topics->v[t].n_parts;
		for (uint32_t i = 0; i < total; i++)
			sl_log_view_close(rd->views[i]);
	}
	if (rd->efd >= 0)
		close(rd->efd);
	free(rd->views);
	free(rd->view_base);
	free(rd->outstanding);
	free(rd->out);
	free(rd->buf);
	free(rd->times);
	free(rd);
}

int sl_reader_submit(struct sl_reader *rd, struct sl_fetch_req *req)
{
	/* Counted before the push: once pushed, the request is the reader's. */
	uint32_t reactor = req->reactor;
	atomic_fetch_add_explicit(&rd->outstanding[reactor], 1, memory_order_relaxed);
	if (!sl_ring_push_mpmc(&rd->in, req)) {
		atomic_fetch_sub_explicit(&rd->outstanding[reactor], 1, memory_order_relaxed);
		return -EAGAIN;
	}
	uint64_t one = 1;
	ssize_t n = write(rd->efd, &one, sizeof(one));
	(void)n;
	return 0;
}

struct sl_fetch_req *sl_reader_take(struct sl_reader *rd, uint32_t reactor)
{
	void *item;
	if (!sl_ring_pop_spsc(&rd->out[reactor], &item))
		return NULL;
	atomic_fetch_sub_explicit(&rd->outstanding[reactor], 1, memory_order_relaxed);
	return item;
}

uint64_t sl_reader_outstanding(struct sl_reader *rd, uint32_t reactor)
{
	return atomic_load_explicit(&rd->outstanding[reactor], memory_order_relaxed);
}
