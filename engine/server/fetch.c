/*
 * The follower's side of replication (cluster mode, issue 16): one fetcher
 * thread per node this node follows partitions of (`sl-fetch-<node>`), with
 * one connection to that node's native port (Hello with replica_node and
 * the cluster's token). Per followed partition it keeps one ReplicaFetch in
 * flight (a long poll at the leader while nothing is newer), hands what it
 * gets to the partition's owner reactor (sl_reactor_repl_submit: one chunk
 * of a partition at a time, so batches arrive in order), and reports the
 * partition's durable end as soon as the owner made more of it durable (the
 * owner calls sl__fetch_durable, which wakes the thread; a report goes out
 * even while a long poll is outstanding, so the leader's HW never waits for
 * a poll to end).
 *
 * Threads: sl__fetch_follow / sl__fetch_unfollow from the cluster thread
 * (the callbacks of server/cluster.c), sl__fetch_durable from reactors,
 * chunk completions on reactors (atomics and the eventfd), everything else
 * on the fetcher's own thread. A fetcher's partition list is under its
 * mutex, which the thread holds only while it walks the list, never across
 * I/O.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "auth/auth.h"
#include "base/base.h"
#include "net/net.h"
#include "proto/proto.h"
#include "server/server.h"

/* Bytes a fetch asks for: big enough to carry a group commit of a busy
 * partition, small enough that one partition cannot hog the connection. */
#define SL_FETCH_MAX_BYTES (1u << 20)
/* A long poll's length at the leader: a follower whose leader went quiet
 * finds out about a dead connection within it. */
#define SL_FETCH_WAIT_MS 500u
/* How long after a refusal (not the leader, stale epoch, storage) a
 * partition is asked for again: the cluster's watch brings the new state
 * meanwhile. */
#define SL_FETCH_RETRY_NS (100ull * 1000 * 1000)
/* Reconnect backoff, doubling. */
#define SL_FETCH_BACKOFF_MIN_NS (50ull * 1000 * 1000)
#define SL_FETCH_BACKOFF_MAX_NS (2000ull * 1000 * 1000)

struct sl__fpart {
	struct sl_fetcher *f;
	struct sl_partition *p;
	uint32_t topic;              /* index in the server's topics */
	uint32_t epoch;              /* the leader epoch followed */
	bool active;                 /* false: unfollowed, gone once its chunk is back */
	uint64_t next;               /* the next offset to ask for */
	uint64_t data_id, report_id; /* requests in flight (0: none) */
	uint64_t reported;           /* durable end last sent */
	uint64_t retry_at;           /* after a refusal */
	int last_refusal;            /* said on stderr (error code, or a chunk's -errno); 0: none */
	bool chunk_out;              /* the owner has the chunk */
	_Atomic bool chunk_done;     /* the owner is done with it */
	struct sl_repl_chunk chunk;
};

struct sl_fetcher {
	struct sl_server *srv;
	char node[SL_REPL_ID_MAX];
	char addr[256];
	char self[SL_REPL_ID_MAX];
	const char *token_file;
	pthread_t thread;
	int efd;
	_Atomic bool stop;
	pthread_mutex_t mu;
	struct sl__fpart **parts;
	uint32_t n_parts, cap_parts;
	/* The thread's own. */
	int fd;
	uint64_t seq;
	uint64_t backoff_ns, connect_at;
	int last_err; /* of the last failed connect, 0 after one succeeded */
	uint8_t *in;
	size_t in_len, in_cap;
	struct sl_fetcher *next_fetcher;
};

static void sl__fetch_wake(struct sl_fetcher *f)
{
	sl_eventfd_signal(f->efd);
}

/* Reactor thread: the owner is done with a chunk. */
static void sl__chunk_done(void *arg, struct sl_repl_chunk *c)
{
	struct sl__fpart *fp = arg;
	/* The fetcher before the store: once chunk_done is seen, the fetcher
	 * thread may free an unfollowed fp (TSan saw the read after it). The
	 * fetcher itself lives until the fetchers stop, after the reactors. */
	struct sl_fetcher *f = fp->f;
	(void)c;
	atomic_store_explicit(&fp->chunk_done, true, memory_order_release);
	sl__fetch_wake(f);
}

void sl__fetch_durable(void *arg, struct sl_partition *p)
{
	(void)arg;
	struct sl_fetcher *f = atomic_load_explicit(&p->repl->fetcher, memory_order_acquire);
	if (f)
		sl__fetch_wake(f);
}

/* ---- the connection ------------------------------------------------------ */

static void sl__fetch_close(struct sl_fetcher *f, const char *why)
{
	if (f->fd >= 0) {
		fprintf(stderr, "sluiced: replication from %s (%s): connection closed: %s\n",
		        f->node, f->addr, why);
		close(f->fd);
	}
	f->fd = -1;
	f->in_len = 0;
	f->connect_at = sl_now_ns() + f->backoff_ns;
	f->backoff_ns = f->backoff_ns * 2 > SL_FETCH_BACKOFF_MAX_NS ? SL_FETCH_BACKOFF_MAX_NS
	                                                            : f->backoff_ns * 2;
	/* What was in flight on it is gone: ask again on the next one. */
	pthread_mutex_lock(&f->mu);
	for (uint32_t i = 0; i < f->n_parts; i++) {
		f->parts[i]->data_id = 0;
		f->parts[i]->report_id = 0;
	}
	pthread_mutex_unlock(&f->mu);
}

static int sl__send_all(int fd, const uint8_t *p, size_t n)
{
	while (n) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN) {
				struct pollfd pfd = {.fd = fd, .events = POLLOUT};
				if (poll(&pfd, 1, 1000) <= 0)
					return -ETIMEDOUT;
				continue;
			}
			return -errno;
		}
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

static int sl__send_msg(struct sl_fetcher *f, uint8_t type, const ProtobufCMessage *m)
{
	uint8_t stack[1024];
	size_t need = sl_frame_msg_size(m);
	uint8_t *buf = need <= sizeof(stack) ? stack : malloc(need);
	if (!buf)
		return -ENOMEM;
	int ret = sl_frame_encode_msg(type, m, buf, need);
	if (ret >= 0)
		ret = sl__send_all(f->fd, buf, need);
	if (buf != stack)
		free(buf);
	return ret;
}

/* Reads what the socket has; 0, or -errno / -ECONNRESET at its end. */
static int sl__fetch_recv(struct sl_fetcher *f)
{
	for (;;) {
		if (f->in_cap - f->in_len < 65536) {
			uint8_t *nb = sl_grow(f->in, &f->in_cap, f->in_len + 65536, 1u << 20);
			if (!nb)
				return -ENOMEM;
			f->in = nb;
		}
		ssize_t n = recv(f->fd, f->in + f->in_len, f->in_cap - f->in_len, MSG_DONTWAIT);
		if (n > 0) {
			f->in_len += (size_t)n;
			continue;
		}
		if (n == 0)
			return -ECONNRESET;
		if (errno == EINTR)
			continue;
		return errno == EAGAIN ? 0 : -errno;
	}
}

/* Connects and says Hello as a replica; waits for the Welcome. */
static int sl__fetch_connect(struct sl_fetcher *f)
{
	struct sl_addr a;
	int ret = sl_net_parse_addr(f->addr, &a);
	if (ret < 0)
		return ret;
	int fd = socket(a.ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&a.ss, a.len) < 0 && errno != EINPROGRESS) {
		ret = -errno;
		close(fd);
		return ret;
	}
	struct pollfd pfd = {.fd = fd, .events = POLLOUT};
	int err = 0;
	socklen_t elen = sizeof(err);
	if (poll(&pfd, 1, 1000) <= 0 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &elen) < 0 ||
	    err) {
		close(fd);
		return err ? -err : -ETIMEDOUT;
	}
	sl_net_tune_conn(fd);
	f->fd = fd;
	Sluice__V1__Hello h = SLUICE__V1__HELLO__INIT;
	h.min_version = SL_PROTO_VERSION;
	h.max_version = SL_PROTO_VERSION;
	h.client_name = f->self;
	h.replica_node = f->self;
	char token[512] = "", terr[256];
	if (f->token_file &&
	    sl_auth_file_token(f->token_file, token, sizeof(token), terr, sizeof(terr)) < 0)
		fprintf(stderr, "sluiced: replication from %s: token: %s\n", f->node, terr);
	h.token = token;
	ret = sl__send_msg(f, SLUICE__V1__FRAME_TYPE__FRAME_HELLO, &h.base);
	uint64_t deadline = sl_now_ns() + 2000ull * 1000 * 1000;
	int got = 0; /* the last read's result: frames it brought are read first */
	while (ret == 0) {
		struct sl_frame fr;
		int n = sl_frame_parse(f->in, f->in_len, SL_FRAME_MAX_LIMIT, &fr);
		if (n > 0) {
			if (fr.type == SLUICE__V1__FRAME_TYPE__FRAME_WELCOME) {
				memmove(f->in, f->in + n, f->in_len - (size_t)n);
				f->in_len -= (size_t)n;
				f->backoff_ns = SL_FETCH_BACKOFF_MIN_NS;
				return 0;
			}
			ProtobufCMessage *m = NULL;
			if (fr.type == SLUICE__V1__FRAME_TYPE__FRAME_ERROR &&
			    sl_frame_decode_msg(&fr, &m) == 0) {
				fprintf(stderr, "sluiced: replication from %s (%s): refused: %s\n",
				        f->node, f->addr, ((Sluice__V1__Error *)m)->message);
				sl_frame_msg_free(m);
			}
			ret = -EPROTO;
			break;
		}
		if (n < 0 || got < 0) {
			ret = n < 0 ? n : got;
			break;
		}
		uint64_t now = sl_now_ns();
		pfd = (struct pollfd){.fd = fd, .events = POLLIN};
		if (now >= deadline || poll(&pfd, 1, (int)((deadline - now) / 1000000u) + 1) <= 0) {
			ret = -ETIMEDOUT;
			break;
		}
		got = sl__fetch_recv(f);
	}
	close(fd);
	f->fd = -1;
	f->in_len = 0;
	return ret;
}

/* ---- requests and answers ------------------------------------------------ */

static int sl__fetch_send(struct sl_fetcher *f, struct sl__fpart *fp, bool data)
{
	struct sl_prepl *rp = fp->p->repl;
	Sluice__V1__ReplicaFetch q = SLUICE__V1__REPLICA_FETCH__INIT;
	uint64_t durable = atomic_load_explicit(&rp->local_durable, memory_order_acquire);
	q.request_id = ++f->seq;
	q.topic = fp->p->topic->name;
	q.partition = fp->p->id;
	q.leader_epoch = fp->epoch;
	q.offset = fp->next;
	q.durable = durable;
	q.max_bytes = data ? SL_FETCH_MAX_BYTES : 0;
	q.wait_ms = data ? SL_FETCH_WAIT_MS : 0;
	pthread_mutex_lock(&rp->mu);
	q.last_epoch = rp->n_epochs ? rp->epochs[rp->n_epochs - 1] : 0;
	pthread_mutex_unlock(&rp->mu);
	int ret = sl__send_msg(f, SLUICE__V1__FRAME_TYPE__FRAME_REPLICA_FETCH, &q.base);
	if (ret < 0)
		return ret;
	fp->reported = durable;
	if (data)
		fp->data_id = q.request_id;
	else
		fp->report_id = q.request_id;
	return 0;
}

static struct sl__fpart *sl__fpart_of(struct sl_fetcher *f, const char *topic, uint32_t p)
{
	for (uint32_t i = 0; i < f->n_parts; i++) {
		struct sl__fpart *fp = f->parts[i];
		if (fp->p->id == p && !strcmp(fp->p->topic->name, topic))
			return fp;
	}
	return NULL;
}

/* Stores what the leader said of its HW and end (single writer: this
 * thread), for the owner to publish. */
static void sl__leader_said(struct sl__fpart *fp, const Sluice__V1__ReplicaData *d)
{
	struct sl_prepl *rp = fp->p->repl;
	if (d->high_watermark > atomic_load_explicit(&rp->leader_hw, memory_order_relaxed))
		atomic_store_explicit(&rp->leader_hw, d->high_watermark, memory_order_release);
	atomic_store_explicit(&rp->leader_end, d->leader_end, memory_order_relaxed);
	atomic_store_explicit(&rp->leader_end_ns, sl_now_ns(), memory_order_relaxed);
}

/*
 * Where this replica's log and its leader's part (KIP-101, with KIP-279's
 * refinement): the leader said where, in its log, the largest epoch it
 * holds not newer than this replica's last one ends (epoch_end_epoch,
 * epoch_end). This replica's own log may hold that epoch for less long (a
 * later epoch of its own began earlier: one the leader never had), so the
 * logs agree up to the lower of the two ends. `end` (the log's end) when
 * they agree everywhere. After a cut the next request asks with the last
 * epoch left, until the two agree.
 */
static uint64_t sl__diverges_at(struct sl_prepl *rp, const Sluice__V1__ReplicaData *d, uint64_t end)
{
	uint64_t cut = d->epoch_end < end ? d->epoch_end : end;
	pthread_mutex_lock(&rp->mu);
	for (uint32_t i = 0; i < rp->n_epochs; i++)
		if (rp->epochs[i] > d->epoch_end_epoch) {
			if (rp->epoch_starts[i] < cut)
				cut = rp->epoch_starts[i];
			break;
		}
	pthread_mutex_unlock(&rp->mu);
	return cut;
}

/* Hands fp->chunk to the partition's owner (one at a time). */
static void sl__chunk_submit(struct sl__fpart *fp, struct sl_reactor *owner)
{
	fp->chunk_out = true;
	atomic_store_explicit(&fp->chunk_done, false, memory_order_relaxed);
	if (sl_reactor_repl_submit(owner, &fp->chunk) < 0) {
		free(fp->chunk.bytes);
		fp->chunk.bytes = NULL;
		fp->chunk_out = false;
		fp->retry_at = sl_now_ns() + SL_FETCH_RETRY_NS;
	}
}

static void sl__on_data(struct sl_fetcher *f, const Sluice__V1__ReplicaData *d)
{
	pthread_mutex_lock(&f->mu);
	struct sl__fpart *fp = sl__fpart_of(f, d->topic, d->partition);
	if (!fp)
		goto out;
	bool data = d->request_id == fp->data_id;
	if (data)
		fp->data_id = 0;
	else if (d->request_id == fp->report_id)
		fp->report_id = 0;
	else
		goto out; /* an answer from before a reconnect */
	if (d->error) {
		if (data)
			fp->retry_at = sl_now_ns() + SL_FETCH_RETRY_NS;
		/* Said once until the leader answers again: a refusal that
		 * lasts is how a replica stays out of the in-sync set. */
		if (data && fp->last_refusal != (int)d->error) {
			fp->last_refusal = (int)d->error;
			fprintf(stderr,
			        "sluiced: %s/%u: fetch from %s (leader epoch %u) refused: %s "
			        "(asked again every %llu ms)\n",
			        fp->p->topic->name, fp->p->id, f->node, fp->epoch,
			        d->message && *d->message ? d->message : "no reason given",
			        SL_FETCH_RETRY_NS / 1000000ull);
			/* Retention on the leader passed this replica's end: its
			 * log cannot continue the leader's (a follower only ever
			 * appends the next offsets). Asked again at the retry
			 * pace above, never in a tight loop. */
			if (d->error == SLUICE__V1__ERROR_CODE__ERR_OFFSET_OUT_OF_RANGE)
				fprintf(stderr,
				        "sluiced: %s/%u: this replica is behind the leader's "
				        "retention and cannot catch up by fetching (its copy "
				        "would have to start again at the leader's log start, "
				        "which this version does not do): it stays out of the "
				        "in-sync set\n",
				        fp->p->topic->name, fp->p->id);
		}
		goto out;
	}
	if (data)
		fp->last_refusal = 0;
	sl__leader_said(fp, d);
	struct sl_reactor *owner = f->srv->reactors[fp->p->owner];
	if (data && fp->active && !fp->chunk_out) {
		uint64_t end = atomic_load_explicit(&fp->p->repl->local_end, memory_order_acquire);
		uint64_t cut = sl__diverges_at(fp->p->repl, d, end);
		if (cut < end ||
		    atomic_load_explicit(&fp->p->repl->agreed, memory_order_acquire) < end) {
			/* The batches in this answer continue a log this
			 * replica must first cut, or whose agreement with
			 * this leader its owner has not recorded yet (the
			 * first answer of an epoch: a cut at the end, which
			 * cuts nothing, checked against the epoch the owner
			 * follows; from then on readers may see up to the
			 * HW this leader sends): dropped, fetched again. */
			fp->chunk = (struct sl_repl_chunk){
			    .topic = fp->topic,
			    .partition = fp->p->id,
			    .epoch = fp->epoch,
			    .truncate = true,
			    .truncate_to = cut,
			    .done = sl__chunk_done,
			    .done_arg = fp,
			};
			sl__chunk_submit(fp, owner);
			goto out;
		}
	}
	if (data && d->batches.len && fp->active && !fp->chunk_out) {
		struct sl_repl_chunk *c = &fp->chunk;
		*c = (struct sl_repl_chunk){
		    .topic = fp->topic,
		    .partition = fp->p->id,
		    .epoch = fp->epoch,
		    .bytes = malloc(d->batches.len),
		    .len = d->batches.len,
		    .done = sl__chunk_done,
		    .done_arg = fp,
		};
		for (size_t k = 0; k < d->n_epochs && k < d->n_epoch_starts &&
		                   c->n_epochs < SL_ARRAY_LEN(c->epochs);
		     k++) {
			c->epochs[c->n_epochs] = d->epochs[k];
			c->epoch_starts[c->n_epochs++] = d->epoch_starts[k];
		}
		if (!c->bytes) {
			fp->retry_at = sl_now_ns() + SL_FETCH_RETRY_NS;
			goto out;
		}
		memcpy(c->bytes, d->batches.data, d->batches.len);
		sl__chunk_submit(fp, owner);
	} else {
		sl_reactor_wake(owner); /* the HW the leader sent may move ours */
	}
out:
	pthread_mutex_unlock(&f->mu);
}

static int sl__fetch_frames(struct sl_fetcher *f)
{
	size_t off = 0;
	int ret = 0;
	for (;;) {
		struct sl_frame fr;
		int n = sl_frame_parse(f->in + off, f->in_len - off, SL_FRAME_MAX_LIMIT, &fr);
		if (n <= 0) {
			ret = n;
			break;
		}
		off += (size_t)n;
		ProtobufCMessage *m = NULL;
		if (sl_frame_decode_msg(&fr, &m) < 0) {
			ret = -EPROTO;
			break;
		}
		if (fr.type == SLUICE__V1__FRAME_TYPE__FRAME_REPLICA_DATA) {
			sl__on_data(f, (Sluice__V1__ReplicaData *)m);
		} else if (fr.type == SLUICE__V1__FRAME_TYPE__FRAME_ERROR) {
			fprintf(stderr, "sluiced: replication from %s: %s\n", f->node,
			        ((Sluice__V1__Error *)m)->message);
			ret = -EPROTO;
		}
		sl_frame_msg_free(m);
		if (ret < 0)
			break;
	}
	memmove(f->in, f->in + off, f->in_len - off);
	f->in_len -= off;
	return ret;
}

/* Chunks the owners are done with, partitions unfollowed, and the requests
 * each followed partition needs now. Returns the earliest retry time. */
static uint64_t sl__fetch_turn(struct sl_fetcher *f, uint64_t now)
{
	uint64_t wake_at = UINT64_MAX;
	pthread_mutex_lock(&f->mu);
	for (uint32_t i = 0; i < f->n_parts;) {
		struct sl__fpart *fp = f->parts[i];
		if (fp->chunk_out && atomic_load_explicit(&fp->chunk_done, memory_order_acquire)) {
			fp->chunk_out = false;
			free(fp->chunk.bytes);
			fp->chunk.bytes = NULL;
			if (fp->chunk.status < 0 && fp->chunk.status != -ESTALE &&
			    !fp->chunk.truncate)
				fprintf(
				    stderr, "sluiced: %s/%u: fetched batches not appended: %s\n",
				    fp->p->topic->name, fp->p->id, sl_strerror(fp->chunk.status));
			if (fp->chunk.status < 0)
				fp->retry_at = now + SL_FETCH_RETRY_NS;
			if (fp->chunk.status == -ESTALE && fp->last_refusal != -ESTALE) {
				fp->last_refusal = -ESTALE;
				fprintf(stderr,
				        "sluiced: %s/%u: fetched for leader epoch %u, which this "
				        "replica does not follow (now %u): dropped\n",
				        fp->p->topic->name, fp->p->id, fp->chunk.epoch,
				        atomic_load_explicit(&fp->p->repl->epoch,
				                             memory_order_acquire));
			}
			/* A cut refused (the owner said why): this replica
			 * cannot follow this leader without losing what was
			 * read; it stays out of the in-sync set. */
			if (fp->chunk.truncate && fp->chunk.status < 0 &&
			    fp->chunk.status != -ESTALE)
				fp->active = false;
			fp->next = fp->chunk.end;
		}
		if (!fp->active && !fp->chunk_out) {
			f->parts[i] = f->parts[--f->n_parts];
			free(fp);
			continue;
		}
		i++;
		if (!fp->active || f->fd < 0)
			continue;
		if (fp->retry_at > now) {
			wake_at = fp->retry_at < wake_at ? fp->retry_at : wake_at;
			continue;
		}
		int ret = 0;
		uint64_t durable =
		    atomic_load_explicit(&fp->p->repl->local_durable, memory_order_acquire);
		if (!fp->data_id && !fp->chunk_out)
			ret = sl__fetch_send(f, fp, true);
		else if (!fp->report_id && durable > fp->reported)
			ret = sl__fetch_send(f, fp, false);
		if (ret < 0) {
			pthread_mutex_unlock(&f->mu);
			sl__fetch_close(f, sl_strerror(ret));
			return now + f->backoff_ns;
		}
	}
	pthread_mutex_unlock(&f->mu);
	return wake_at;
}

static void *sl__fetch_thread(void *arg)
{
	struct sl_fetcher *f = arg;
	char name[16];
	snprintf(name, sizeof(name), "sl-fetch-%.6s", f->node);
	pthread_setname_np(pthread_self(), name);

	while (!atomic_load_explicit(&f->stop, memory_order_acquire)) {
		uint64_t now = sl_now_ns();
		if (f->fd < 0 && now >= f->connect_at) {
			int ret = sl__fetch_connect(f);
			if (ret < 0) {
				/* Said once per kind of failure, not at every retry. */
				if (ret != f->last_err)
					fprintf(
					    stderr,
					    "sluiced: replication from %s (%s): cannot connect: %s "
					    "(retrying)\n",
					    f->node, f->addr, sl_strerror(ret));
				f->last_err = ret;
				f->fd = -1;
				sl__fetch_close(f, sl_strerror(ret));
			} else {
				f->last_err = 0;
			}
		}
		uint64_t wake_at = sl__fetch_turn(f, now);
		if (f->fd < 0 && f->connect_at < wake_at)
			wake_at = f->connect_at;
		int timeout = -1;
		if (wake_at != UINT64_MAX) {
			now = sl_now_ns();
			timeout = wake_at > now ? (int)((wake_at - now) / 1000000u) + 1 : 0;
		}
		struct pollfd pfd[2] = {{.fd = f->efd, .events = POLLIN},
		                        {.fd = f->fd, .events = POLLIN}};
		int n = poll(pfd, f->fd >= 0 ? 2 : 1, timeout);
		if (n < 0 && errno != EINTR)
			break;
		if (pfd[0].revents & POLLIN) {
			uint64_t v;
			ssize_t r = read(f->efd, &v, sizeof(v));
			(void)r;
		}
		if (f->fd >= 0 && (pfd[1].revents & (POLLIN | POLLHUP | POLLERR))) {
			int ret = sl__fetch_recv(f);
			int fr = sl__fetch_frames(f);
			if (ret < 0 || fr < 0)
				sl__fetch_close(f, sl_strerror(ret < 0 ? ret : fr));
		}
	}
	if (f->fd >= 0)
		close(f->fd);
	f->fd = -1;
	return NULL;
}

/* ---- following ------------------------------------------------------------ */

static struct sl_fetcher *sl__fetcher_get(struct sl_fetchers *fs, const char *node,
                                          const char *addr)
{
	for (struct sl_fetcher *f = fs->list; f; f = f->next_fetcher)
		if (!strcmp(f->node, node)) {
			if (strcmp(f->addr, addr)) {
				/* The node came back elsewhere: the thread reconnects
				 * there at its next connect (a closed socket). */
				snprintf(f->addr, sizeof(f->addr), "%s", addr);
			}
			return f;
		}
	struct sl_fetcher *f = calloc(1, sizeof(*f));
	if (!f)
		return NULL;
	f->srv = fs->srv;
	f->fd = -1;
	f->token_file = fs->token_file;
	f->backoff_ns = SL_FETCH_BACKOFF_MIN_NS;
	snprintf(f->node, sizeof(f->node), "%s", node);
	snprintf(f->addr, sizeof(f->addr), "%s", addr);
	snprintf(f->self, sizeof(f->self), "%s", fs->self);
	pthread_mutex_init(&f->mu, NULL);
	f->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (f->efd < 0 || pthread_create(&f->thread, NULL, sl__fetch_thread, f) != 0) {
		if (f->efd >= 0)
			close(f->efd);
		pthread_mutex_destroy(&f->mu);
		free(f);
		return NULL;
	}
	f->next_fetcher = fs->list;
	fs->list = f;
	return f;
}

static void sl__unfollow(struct sl_partition *p);

int sl__fetch_follow(struct sl_fetchers *fs, uint32_t topic, struct sl_partition *p,
                     const char *leader, const char *addr, uint32_t epoch)
{
	pthread_mutex_lock(&fs->mu);
	struct sl_fetcher *old = atomic_load_explicit(&p->repl->fetcher, memory_order_acquire);
	if (old && strcmp(old->node, leader))
		sl__unfollow(p);
	struct sl_fetcher *f = sl__fetcher_get(fs, leader, addr);
	if (!f) {
		pthread_mutex_unlock(&fs->mu);
		return -ENOMEM;
	}
	pthread_mutex_lock(&f->mu);
	struct sl__fpart *fp = sl__fpart_of(f, p->topic->name, p->id);
	if (!fp) {
		if (f->n_parts == f->cap_parts) {
			uint32_t cap = f->cap_parts ? f->cap_parts * 2 : 16;
			struct sl__fpart **v = realloc(f->parts, cap * sizeof(*v));
			if (!v) {
				pthread_mutex_unlock(&f->mu);
				pthread_mutex_unlock(&fs->mu);
				return -ENOMEM;
			}
			f->parts = v;
			f->cap_parts = cap;
		}
		fp = calloc(1, sizeof(*fp));
		if (!fp) {
			pthread_mutex_unlock(&f->mu);
			pthread_mutex_unlock(&fs->mu);
			return -ENOMEM;
		}
		fp->f = f;
		fp->p = p;
		fp->topic = topic;
		fp->next = atomic_load_explicit(&p->repl->local_end, memory_order_acquire);
		f->parts[f->n_parts++] = fp;
	}
	fp->epoch = epoch;
	fp->active = true;
	fp->retry_at = 0;
	pthread_mutex_unlock(&f->mu);
	atomic_store_explicit(&p->repl->fetcher, f, memory_order_release);
	sl__fetch_wake(f);
	pthread_mutex_unlock(&fs->mu);
	return 0;
}

void sl__fetch_unfollow(struct sl_fetchers *fs, struct sl_partition *p)
{
	pthread_mutex_lock(&fs->mu);
	sl__unfollow(p);
	pthread_mutex_unlock(&fs->mu);
}

static void sl__unfollow(struct sl_partition *p)
{
	struct sl_fetcher *f = atomic_load_explicit(&p->repl->fetcher, memory_order_acquire);
	if (!f)
		return;
	pthread_mutex_lock(&f->mu);
	struct sl__fpart *fp = sl__fpart_of(f, p->topic->name, p->id);
	if (fp)
		fp->active = false;
	pthread_mutex_unlock(&f->mu);
	atomic_store_explicit(&p->repl->fetcher, NULL, memory_order_release);
	sl__fetch_wake(f);
}

void sl__fetchers_stop(struct sl_fetchers *fs)
{
	for (struct sl_fetcher *f = fs->list; f; f = f->next_fetcher) {
		atomic_store_explicit(&f->stop, true, memory_order_release);
		sl__fetch_wake(f);
	}
	while (fs->list) {
		struct sl_fetcher *f = fs->list;
		fs->list = f->next_fetcher;
		pthread_join(f->thread, NULL);
		/* The reactors are stopped: no chunk is with an owner any more
		 * (their rings were drained or the chunk never taken). */
		for (uint32_t i = 0; i < f->n_parts; i++) {
			struct sl_prepl *rp = f->parts[i]->p->repl;
			atomic_store_explicit(&rp->fetcher, NULL, memory_order_relaxed);
			free(f->parts[i]->chunk.bytes);
			free(f->parts[i]);
		}
		free(f->parts);
		free(f->in);
		close(f->efd);
		pthread_mutex_destroy(&f->mu);
		free(f);
	}
}
