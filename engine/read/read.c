#include "read/read.h"

#include <errno.h>
#include <inttypes.h>
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
	struct sl_ring in;             /* MPMC: reactors push, the reader pops */
	struct sl_ring *out;           /* per reactor, SPSC: reader -> reactor */
	_Atomic uint64_t *outstanding; /* per reactor */
	struct sl_log_view **views;    /* per topic, per partition (flattened) */
	uint32_t n_views;
	uint32_t *view_base;    /* topic -> first index in views (SL_TOPICS_MAX) */
	uint32_t n_view_topics; /* topics view_base covers; more added at runtime */
	int efd;
	pthread_t thread;
	bool started;
	_Atomic bool draining; /* answer at once, wait for nothing */
	_Atomic bool stop;     /* leave the thread */
	struct sl_fetch_req *waiting;
	/* Scratch for one answer. */
	uint8_t *buf;
	size_t cap;
	/* Scratch for a ReplicaData's batches: kept, because a fresh one per
	 * answer (9 MiB of room: a whole batch past max_bytes) was page
	 * faults and page clearing on every answer (perf: most of this
	 * thread's kernel time under replication). */
	uint8_t *raw;
	size_t raw_cap;
	uint32_t max_event; /* largest event that can have been stored */
};

/* ---- answers ------------------------------------------------------------- */

static int sl__visit(void *arg, const struct sl_log_record *rec)
{
	struct sl_fetch_result_builder *b = arg;
	/* The stored bytes go out verbatim: an encoded Event is exactly the
	 * payload of a length-delimited FetchResult.events field. No room
	 * left: stop before this event; it leads the next answer. */
	return sl_fetch_result_add(b, rec->event, rec->len, rec->append_time_ms) < 0 ? -1 : 0;
}

/* Builds the answer frame for `req` from what is there now. Returns true
 * when the request is answered (data, error, or its deadline passed). */

/* Views for topics created at runtime up to `topic` (the reader's thread:
 * only it touches views). */
static int sl__views_grow(struct sl_reader *rd, uint32_t topic)
{
	uint32_t n = atomic_load(&rd->topics->n), total = rd->n_views;
	if (topic >= n)
		return -EINVAL;
	uint32_t more = 0;
	for (uint32_t t = rd->n_view_topics; t < n; t++)
		more += rd->topics->v[t].n_parts;
	struct sl_log_view **v = realloc(rd->views, (size_t)(total + more + 1) * sizeof(*v));
	if (!v)
		return -ENOMEM;
	memset(v + total, 0, (size_t)(more + 1) * sizeof(*v));
	rd->views = v;
	for (uint32_t t = rd->n_view_topics; t < n; t++) {
		rd->view_base[t] = total;
		total += rd->topics->v[t].n_parts;
	}
	rd->n_views = total;
	rd->n_view_topics = n;
	return 0;
}

static bool sl__serve_replica(struct sl_reader *rd, struct sl_fetch_req *req, bool final);

/* Opens partition p's view into *vp when it has none yet: 0 or -errno
 * (*vp NULL). Every view follows the partition's cuts (log.h). */
static int sl__view_ensure(struct sl_partition *p, struct sl_log_view **vp)
{
	if (*vp)
		return 0;
	int ret = sl_log_view_open(p->dir, vp);
	if (ret < 0) {
		*vp = NULL;
		return ret;
	}
	sl_log_view_follow_cuts(*vp, &p->cuts);
	/* Retention: let go of deleted segments; a Fetch below the start is
	 * answered ERR_OFFSET_OUT_OF_RANGE, never moved up silently (its
	 * events would not be where the asker counts them). */
	sl_log_view_follow_start(*vp, &p->start_pub, true);
	return 0;
}

static bool sl__serve(struct sl_reader *rd, struct sl_fetch_req *req, bool final)
{
	if (req->replica)
		return sl__serve_replica(rd, req, final);
	struct sl_partition *p = &rd->topics->v[req->topic].parts[req->partition];
	uint64_t durable = atomic_load_explicit(&p->durable_pub, memory_order_acquire);
	uint64_t start = atomic_load_explicit(&p->start_pub, memory_order_acquire);
	/* `refused` and p->error of a refused partition are set at start-up
	 * only; a log that fails later is the owner's business: what is
	 * durable stays readable. A topic deleted at runtime is read no more
	 * (its owner closes its logs). */
	bool deleted =
	    atomic_load_explicit(&rd->topics->v[req->topic].deleted, memory_order_acquire);
	bool refused = p->refused || deleted;
	const char *tn = rd->topics->v[req->topic].name;
	struct sl_fetch_result_head head = {
	    .request_id = req->request_id,
	    .topic = tn,
	    .topic_len = strlen(tn),
	    .partition = req->partition,
	    .end_offset = durable,
	    .base_offset = req->offset,
	};
	char message[400];

	req->frame = NULL;
	req->frame_len = 0;
	bool seeking = req->from_time_ms != 0;
	if (!final && !seeking && req->offset >= durable && sl_now_ns() < req->deadline_ns &&
	    !refused)
		return false; /* nothing yet: keep waiting */

	struct sl_log_view *none = NULL, **vp = &none;
	bool no_view = req->topic >= rd->n_view_topics && sl__views_grow(rd, req->topic) < 0;
	if (!no_view)
		vp = &rd->views[rd->view_base[req->topic] + req->partition];
	if (refused || no_view) {
		head.error = SLUICE__V1__ERROR_CODE__ERR_STORAGE;
		snprintf(message, sizeof(message), "%s",
		         deleted    ? "topic deleted"
		         : no_view  ? "out of memory"
		         : p->error ? p->error
		                    : "partition refused");
	} else {
		int ret = sl__view_ensure(p, vp);
		if (ret < 0) {
			head.error = SLUICE__V1__ERROR_CODE__ERR_STORAGE;
			snprintf(message, sizeof(message), "cannot open %s: %s", p->dir,
			         sl_strerror(ret));
		}
	}
	if (!head.error && seeking) {
		/* Seek by time: within what is stored, from the asked offset
		 * on. Nothing that recent yet: wait like any long poll (the
		 * last segment's scan goes on where it stopped), then an
		 * empty answer at the end. */
		uint64_t at;
		int ret = sl_log_view_seek_time(*vp, req->from_time_ms, durable, &at);
		if (ret < 0) {
			head.error = SLUICE__V1__ERROR_CODE__ERR_STORAGE;
			snprintf(message, sizeof(message), "%s", sl_log_view_strerror(*vp, ret));
		} else if (ret == 0) {
			if (!final && sl_now_ns() < req->deadline_ns)
				return false;
			head.base_offset = durable;
			req->offset = durable;
		} else {
			if (at < start)
				at = start;
			req->offset = at > req->offset ? at : req->offset;
			req->from_time_ms = 0;
			head.base_offset = req->offset;
			if (!final && req->offset >= durable && sl_now_ns() < req->deadline_ns)
				return false;
		}
	} else if (!head.error && req->offset < start) {
		head.error = SLUICE__V1__ERROR_CODE__ERR_OFFSET_OUT_OF_RANGE;
		head.log_start_offset = start;
		snprintf(message, sizeof(message),
		         "offset %" PRIu64
		         " is no longer stored: retention deleted it; %s/%u starts "
		         "at %" PRIu64,
		         req->offset, tn, req->partition, start);
	}
	if (head.error) {
		head.message = message;
		head.message_len = strlen(message);
	}

	uint32_t max_bytes = req->max_bytes && req->max_bytes < SL_READ_MAX_BYTES
	                         ? req->max_bytes
	                         : SL_READ_MAX_BYTES;
	uint32_t max_events = req->max_events ? req->max_events : 1000;
	/* Room for max_bytes of events, their framing, and one event of up to
	 * a frame's size (an answer always carries at least one). */
	size_t cap = (size_t)max_bytes + (size_t)max_events * 24 + rd->max_event + 4096;
	if (rd->cap < cap) {
		uint8_t *nb = realloc(rd->buf, cap);
		if (!nb)
			return true; /* frame NULL: the reactor answers "out of memory" */
		rd->buf = nb;
		rd->cap = cap;
	}
	struct sl_fetch_result_builder b;
	if (sl_fetch_result_begin(&b, rd->buf, rd->cap, &head) < 0)
		return true;
	if (!head.error && req->offset < durable) {
		uint64_t next;
		int n = sl_log_view_read(*vp, req->offset, durable, max_events, max_bytes,
		                         sl__visit, &b, &next);
		if (n < 0) {
			/* Start over with just the error: retention passed the
			 * offset since the check above, or the storage failed. */
			head.error = n == -SL_EOUT_OF_RANGE
			                 ? SLUICE__V1__ERROR_CODE__ERR_OFFSET_OUT_OF_RANGE
			                 : SLUICE__V1__ERROR_CODE__ERR_STORAGE;
			if (n == -SL_EOUT_OF_RANGE)
				head.log_start_offset = sl_log_view_start(*vp);
			snprintf(message, sizeof(message), "%s", sl_log_view_strerror(*vp, n));
			head.message = message;
			head.message_len = strlen(message);
			if (sl_fetch_result_begin(&b, rd->buf, rd->cap, &head) < 0)
				return true;
		}
	}
	int len = sl_fetch_result_finish(&b);
	if (len < 0)
		return true;
	req->frame = malloc((size_t)len);
	if (!req->frame)
		return true;
	memcpy(req->frame, rd->buf, (size_t)len);
	req->frame_len = (uint32_t)len;
	return true;
}

/* ---- replication (cluster mode): the leader's side of a ReplicaFetch ---- */

/* Stores the follower's report and wakes the owner: its HW may move. */
/* The asking follower's entry among the partition's replicas, or NULL. */
static struct sl_prepl_peer *sl__peer_of(struct sl_prepl *rp, const char *node)
{
	for (uint32_t i = 0; i < rp->n_peers; i++)
		if (i != rp->self && !strcmp(rp->peers[i].node, node))
			return &rp->peers[i];
	return NULL;
}

static void sl__replica_report(struct sl_reader *rd, struct sl_partition *p,
                               struct sl_prepl_peer *pe, struct sl_fetch_req *req, uint64_t local)
{
	uint64_t now = sl_now_ns();

	req->reported = true;
	if (pe) {
		/* Caught up (for the in-sync set) as of the previous report if
		 * it now holds what the leader held then: under steady load a
		 * follower is always a little behind the leader's present end,
		 * never behind its recent past (Kafka's lastCaughtUpTime). */
		if (req->durable >= local)
			atomic_store_explicit(&pe->caught_up_ns, now, memory_order_relaxed);
		else if (pe->prev_ns && req->durable >= pe->prev_local)
			atomic_store_explicit(&pe->caught_up_ns, pe->prev_ns, memory_order_relaxed);
		pe->prev_local = local;
		pe->prev_ns = now;
		atomic_store_explicit(&pe->durable, req->durable, memory_order_release);
		atomic_store_explicit(&pe->fetch_ns, now, memory_order_relaxed);
		rd->wake(rd->wake_arg, p->owner);
	}
}

/* Where the follower's last epoch ends here (KIP-101): the start of the
 * next epoch this log knows, or its end when that epoch is the last; and in
 * *found the largest epoch held that is not newer than the follower's (0:
 * none), which the follower compares with its own (KIP-279: it may hold an
 * epoch this log never had). */
static uint64_t sl__epoch_end(struct sl_prepl *rp, uint32_t epoch, uint64_t local, uint32_t *found)
{
	uint64_t end = local;

	*found = 0;
	pthread_mutex_lock(&rp->mu);
	for (uint32_t i = 0; i < rp->n_epochs; i++) {
		if (rp->epochs[i] > epoch) {
			end = rp->epoch_starts[i];
			break;
		}
		*found = rp->epochs[i];
	}
	pthread_mutex_unlock(&rp->mu);
	return end;
}

static bool sl__serve_replica(struct sl_reader *rd, struct sl_fetch_req *req, bool final)
{
	struct sl_topic *t = &rd->topics->v[req->topic];
	struct sl_partition *p = &t->parts[req->partition];
	struct sl_prepl *rp = p->repl;
	Sluice__V1__ReplicaData d = SLUICE__V1__REPLICA_DATA__INIT;
	char message[400] = "";
	uint64_t local = 0;

	req->frame = NULL;
	req->frame_len = 0;
	d.request_id = req->request_id;
	d.topic = t->name;
	d.partition = req->partition;
	d.base_offset = req->offset;
	if (!rp || atomic_load_explicit(&rp->role, memory_order_acquire) != SL_REPL_LEADER) {
		d.error = SLUICE__V1__ERROR_CODE__ERR_NOT_LEADER;
		snprintf(message, sizeof(message), "this node does not lead %s/%u", t->name,
		         req->partition);
	} else if (atomic_load_explicit(&rp->epoch, memory_order_acquire) != req->epoch) {
		d.error = SLUICE__V1__ERROR_CODE__ERR_STALE_EPOCH;
		snprintf(message, sizeof(message), "%s/%u: leader epoch is %u, not %u", t->name,
		         req->partition, atomic_load(&rp->epoch), req->epoch);
	} else if (p->refused || atomic_load_explicit(&t->deleted, memory_order_acquire)) {
		d.error = SLUICE__V1__ERROR_CODE__ERR_STORAGE;
		snprintf(message, sizeof(message), "%s", p->error ? p->error : "partition refused");
	}
	uint32_t ep_found = 0;
	uint64_t ep_end = 0;
	bool parted = false;
	if (!d.error) {
		struct sl_prepl_peer *pe = sl__peer_of(rp, req->node);
		local = atomic_load_explicit(&rp->local_durable, memory_order_acquire);
		ep_end = sl__epoch_end(rp, req->last_epoch, local, &ep_found);
		/* The follower holds more of its last epoch than this log does
		 * (an old leader back after a failover): nothing here continues
		 * its log, and its offset need not even start a batch here.
		 * Answered at once with no batches: where to cut. */
		parted = req->offset > ep_end;
		if (!req->reported)
			sl__replica_report(rd, p, pe, req, local);
		/* A follower that holds events above the HW it was last told
		 * hears of a newer HW at once, not when its long poll ends
		 * (500 ms): until then it shows none of them, and a query
		 * with the token of one waits there (read replicas). Its
		 * report is what moves the HW, and the answer to the report
		 * leaves before the owner moves it. */
		uint64_t hw = atomic_load_explicit(&rp->hw, memory_order_acquire);
		bool news = pe && hw > pe->hw_told && req->offset > pe->hw_told;
		if (!final && !parted && req->max_bytes && req->offset >= local && !news &&
		    sl_now_ns() < req->deadline_ns)
			return false; /* nothing newer yet: keep waiting */
	}
	uint32_t max_bytes =
	    req->max_bytes < SL_READ_MAX_BYTES ? req->max_bytes : SL_READ_MAX_BYTES;
	size_t cap = (size_t)max_bytes + SL_BATCH_MAX + SL_LOG_BATCH_HDR + 4096;
	uint8_t *raw = NULL;
	size_t len = 0;
	uint64_t next = req->offset;
	uint32_t ep[SL_REPL_EPOCHS];
	uint64_t ep_start[SL_REPL_EPOCHS];
	if (!d.error && !parted && max_bytes && req->offset < local) {
		struct sl_log_view **vp = NULL;
		if (req->topic < rd->n_view_topics || sl__views_grow(rd, req->topic) == 0)
			vp = &rd->views[rd->view_base[req->topic] + req->partition];
		int ret = vp ? sl__view_ensure(p, vp) : -ENOMEM;
		if (ret == 0 && rd->raw_cap < cap) {
			uint8_t *nb = realloc(rd->raw, cap);
			if (nb) {
				rd->raw = nb;
				rd->raw_cap = cap;
			} else {
				ret = -ENOMEM;
			}
		}
		raw = rd->raw;
		if (ret == 0)
			ret = sl_log_view_read_raw(*vp, req->offset, local, max_bytes, raw, cap,
			                           &len, &next);
		if (ret == -ERANGE) {
			/* Below this log's start (retention): the follower cannot
			 * continue its log from here; the message names the start
			 * (ReplicaData has no field for it). */
			d.error = SLUICE__V1__ERROR_CODE__ERR_OFFSET_OUT_OF_RANGE;
			snprintf(message, sizeof(message),
			         "offset %" PRIu64 " is below the leader's log start %" PRIu64
			         " (retention)",
			         req->offset, sl_log_view_start(*vp));
			len = 0;
		} else if (ret < 0) {
			d.error = SLUICE__V1__ERROR_CODE__ERR_STORAGE;
			snprintf(message, sizeof(message), "%s",
			         vp && *vp ? sl_log_view_strerror(*vp, ret) : sl_strerror(ret));
			len = 0;
		}
	}
	if (!d.error) {
		struct sl_prepl_peer *pe = sl__peer_of(rp, req->node);
		if (pe)
			atomic_fetch_add_explicit(&pe->fetch_bytes, len, memory_order_relaxed);
		d.leader_epoch = req->epoch;
		d.batches.data = raw;
		d.batches.len = len;
		d.high_watermark = atomic_load_explicit(&rp->hw, memory_order_acquire);
		if (pe)
			pe->hw_told = d.high_watermark;
		d.leader_end = local;
		d.epoch_end = ep_end;
		d.epoch_end_epoch = ep_found;
		/* The epochs that begin inside these batches: the follower's
		 * epoch file follows the leader's. */
		pthread_mutex_lock(&rp->mu);
		for (uint32_t i = 0; i < rp->n_epochs; i++)
			if (rp->epoch_starts[i] >= req->offset && rp->epoch_starts[i] < next) {
				ep[d.n_epochs] = rp->epochs[i];
				ep_start[d.n_epochs++] = rp->epoch_starts[i];
			}
		pthread_mutex_unlock(&rp->mu);
		d.epochs = ep;
		d.n_epoch_starts = d.n_epochs;
		d.epoch_starts = ep_start;
	}
	d.message = message;
	size_t need = sl_frame_msg_size(&d.base);
	req->frame = malloc(need);
	if (req->frame && sl_frame_encode_msg(SLUICE__V1__FRAME_TYPE__FRAME_REPLICA_DATA, &d.base,
	                                      req->frame, need) == (int)need) {
		req->frame_len = (uint32_t)need;
	} else {
		free(req->frame);
		req->frame = NULL;
	}
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

int sl_reader_create(const struct sl_topics *topics, uint32_t n_reactors, uint32_t max_event,
                     sl_reader_wake_fn wake, void *wake_arg, struct sl_reader **out)
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
	rd->max_event = max_event;
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
	rd->view_base = calloc(SL_TOPICS_MAX, sizeof(*rd->view_base));
	if (!rd->out || !rd->outstanding || !rd->view_base)
		goto fail;
	memset(rd->out, 0, n_reactors * sizeof(*rd->out));
	for (uint32_t i = 0; i < n_reactors; i++) {
		ret = sl_ring_init(&rd->out[i], SL_READ_QUEUE * 2);
		if (ret < 0)
			goto fail;
	}
	uint32_t total = 0;
	rd->n_view_topics = atomic_load(&topics->n);
	for (uint32_t t = 0; t < rd->n_view_topics; t++) {
		rd->view_base[t] = total;
		total += topics->v[t].n_parts;
	}
	ret = -ENOMEM;
	rd->views = calloc(total ? total : 1, sizeof(*rd->views));
	rd->n_views = total;
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
	sl_eventfd_signal(rd->efd);
}

void sl_reader_stop(struct sl_reader *rd)
{
	if (!rd || !rd->started)
		return;
	atomic_store_explicit(&rd->stop, true, memory_order_release);
	sl_eventfd_signal(rd->efd);
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
	for (uint32_t i = 0; rd->views && i < rd->n_views; i++)
		sl_log_view_close(rd->views[i]);
	if (rd->efd >= 0)
		close(rd->efd);
	free(rd->views);
	free(rd->view_base);
	free(rd->outstanding);
	free(rd->out);
	free(rd->buf);
	free(rd->raw);
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
	sl_eventfd_signal(rd->efd);
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
