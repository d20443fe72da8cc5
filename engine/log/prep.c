/*
 * The segment preparer (log.h). Requests are rare (one per segment roll), so
 * a mutex and a condition variable carry them; the hot path never waits on
 * it: a roll takes a prepared file if one is ready and falls back to
 * creating the segment in place otherwise.
 *
 * Threads: its own thread (sl-segprep) prepares files and writes the small
 * files asked for; logs call in from their owners' threads; a request's
 * fields are under the mutex except `state` (log.h, log_impl.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include "base/base.h"
#include "log/log_impl.h"

/* A small file to write off the reactor (sl_segprep_write_file). */
struct sl__fjob {
	struct sl__fjob *next;
	char *path;
	void *buf;
	size_t len;
	char *unlink_after;
	void (*fn)(void *arg); /* sl_segprep_call: run this instead */
	void *arg;
};

struct sl_segprep {
	pthread_mutex_t mu;
	pthread_cond_t cv;                  /* requests, stop, a request done */
	pthread_cond_t idle;                /* nothing queued or being prepared */
	struct sl_segprep_req *head, *tail; /* waiting requests */
	struct sl_segprep_req *busy;        /* the one being prepared */
	struct sl__fjob *fhead, *ftail;     /* files to write, in order */
	size_t fbytes;                      /* their bytes, queued or being written */
	bool fbusy;                         /* one is being written */
	bool stop;
	pthread_t th;
};

/* File bytes the preparer holds at most; past it the caller writes itself.
 * Checkpoints of many producers are megabytes each, and under overload all
 * partitions roll together: unbounded, the queue put the server ~60 MiB over
 * its memory budget (tests/e2e/overload.py, 1,000 producers). */
#define SL__FJOB_MAX_BYTES (4u << 20)

/* Makes `next.prep` in the request's folder: allocated to `bytes` (or
 * empty, noted in prealloc_err, where the filesystem cannot fallocate),
 * synced. Returns its fd, or -errno (the roll then creates the segment in
 * place). */
static int sl__prepare(struct sl_segprep_req *rq)
{
	int fd = open(rq->path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return -errno;
	if (rq->fallocate_fn(fd, 0, 0, (off_t)rq->bytes) < 0) {
		if (!sl__prealloc_unsupported(-errno))
			goto fail;
		rq->prealloc_err = -errno;
	}
	if (fsync(fd) < 0)
		goto fail;
	return fd;
fail:
	close(fd);
	unlink(rq->path);
	return -EIO;
}

/* Writes one file job and frees it. */
static void sl__fjob_run(struct sl__fjob *j)
{
	if (j->fn) {
		j->fn(j->arg);
		free(j);
		return;
	}
	struct iovec iov = {j->buf, j->len};
	const char *step = NULL;
	int ret = sl_file_replace(AT_FDCWD, j->path, &iov, 1, 0, &step, NULL);
	if (ret < 0)
		/* Not fatal: what goes this way (segment indexes, producer
		 * checkpoints) recovery rebuilds or does without. */
		fprintf(stderr, "sluiced: %s not written (%s): %s\n", j->path,
		        step ? step : "write", strerror(-ret));
	else if (j->unlink_after)
		(void)unlink(j->unlink_after);
	free(j->path);
	free(j->buf);
	free(j->unlink_after);
	free(j);
}

static void *sl__prep_thread(void *arg)
{
	struct sl_segprep *p = arg;

	pthread_mutex_lock(&p->mu);
	for (;;) {
		while (!p->stop && !p->head && !p->fhead)
			pthread_cond_wait(&p->cv, &p->mu);
		/* Files first (small, and at stop still written: a clean stop
		 * leaves every checkpoint asked for); segments only while
		 * running. */
		if (p->fhead) {
			struct sl__fjob *j = p->fhead;
			p->fhead = j->next;
			if (!p->fhead)
				p->ftail = NULL;
			p->fbusy = true;
			pthread_mutex_unlock(&p->mu);
			size_t len = j->len;
			sl__fjob_run(j);
			pthread_mutex_lock(&p->mu);
			p->fbusy = false;
			p->fbytes -= len;
			if (!p->head && !p->fhead)
				pthread_cond_broadcast(&p->idle);
			continue;
		}
		if (p->stop)
			break;
		struct sl_segprep_req *rq = p->head;
		p->head = rq->next;
		if (!p->head)
			p->tail = NULL;
		rq->queued = false;
		p->busy = rq;
		pthread_mutex_unlock(&p->mu);
		int fd = sl__prepare(rq);
		pthread_mutex_lock(&p->mu);
		rq->fd = fd;
		/* Release: the file's contents and fd before the state a
		 * roll reads with acquire. */
		atomic_store_explicit(&rq->state, fd >= 0 ? SL_SEGPREP_READY : SL_SEGPREP_FAILED,
		                      memory_order_release);
		p->busy = NULL;
		pthread_cond_broadcast(&p->cv);
		if (!p->head && !p->fhead)
			pthread_cond_broadcast(&p->idle);
	}
	pthread_mutex_unlock(&p->mu);
	return NULL;
}

int sl_segprep_create(struct sl_segprep **out)
{
	struct sl_segprep *p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	pthread_mutex_init(&p->mu, NULL);
	pthread_cond_init(&p->cv, NULL);
	pthread_cond_init(&p->idle, NULL);
	int ret = pthread_create(&p->th, NULL, sl__prep_thread, p);
	if (ret) {
		free(p);
		return -ret;
	}
	pthread_setname_np(p->th, "sl-segprep");
	*out = p;
	return 0;
}

void sl_segprep_destroy(struct sl_segprep *p)
{
	if (!p)
		return;
	pthread_mutex_lock(&p->mu);
	p->stop = true;
	pthread_cond_broadcast(&p->cv);
	pthread_mutex_unlock(&p->mu);
	pthread_join(p->th, NULL);
	pthread_mutex_destroy(&p->mu);
	pthread_cond_destroy(&p->cv);
	pthread_cond_destroy(&p->idle);
	free(p);
}

void sl__segprep_request(struct sl_segprep *p, struct sl_segprep_req *rq)
{
	pthread_mutex_lock(&p->mu);
	if (!rq->queued && p->busy != rq &&
	    atomic_load_explicit(&rq->state, memory_order_relaxed) == SL_SEGPREP_NONE) {
		atomic_store_explicit(&rq->state, SL_SEGPREP_WAITING, memory_order_relaxed);
		rq->queued = true;
		rq->next = NULL;
		if (p->tail)
			p->tail->next = rq;
		else
			p->head = rq;
		p->tail = rq;
		pthread_cond_signal(&p->cv);
	}
	pthread_mutex_unlock(&p->mu);
}

void sl__segprep_cancel(struct sl_segprep *p, struct sl_segprep_req *rq)
{
	pthread_mutex_lock(&p->mu);
	if (rq->queued) {
		struct sl_segprep_req **pp = &p->head, *prev = NULL;
		while (*pp && *pp != rq) {
			prev = *pp;
			pp = &(*pp)->next;
		}
		if (*pp) {
			*pp = rq->next;
			if (p->tail == rq)
				p->tail = prev;
		}
		rq->queued = false;
		atomic_store_explicit(&rq->state, SL_SEGPREP_NONE, memory_order_relaxed);
	}
	while (p->busy == rq)
		pthread_cond_wait(&p->cv, &p->mu);
	pthread_mutex_unlock(&p->mu);
}

/* Queues job j (it carries `len` file bytes, 0 for a call) unless the
 * file bytes held would pass SL__FJOB_MAX_BYTES: 0 or -EBUSY (j is then
 * the caller's). */
static int sl__fjob_push(struct sl_segprep *p, struct sl__fjob *j, size_t len)
{
	pthread_mutex_lock(&p->mu);
	if (len && p->fbytes + len > SL__FJOB_MAX_BYTES) {
		pthread_mutex_unlock(&p->mu);
		return -EBUSY;
	}
	p->fbytes += len;
	if (p->ftail)
		p->ftail->next = j;
	else
		p->fhead = j;
	p->ftail = j;
	pthread_cond_signal(&p->cv);
	pthread_mutex_unlock(&p->mu);
	return 0;
}

int sl_segprep_call(struct sl_segprep *p, void (*fn)(void *arg), void *arg)
{
	struct sl__fjob *j = calloc(1, sizeof(*j));
	if (!j)
		return -ENOMEM;
	j->fn = fn;
	j->arg = arg;
	return sl__fjob_push(p, j, 0);
}

void sl_segprep_drain(struct sl_segprep *p)
{
	pthread_mutex_lock(&p->mu);
	while ((p->head || p->busy || p->fhead || p->fbusy) && !p->stop)
		pthread_cond_wait(&p->idle, &p->mu);
	pthread_mutex_unlock(&p->mu);
}

int sl_segprep_write_file(struct sl_segprep *p, char *path, void *buf, size_t len,
                          char *unlink_after)
{
	struct sl__fjob *j = malloc(sizeof(*j));
	if (!j)
		return -ENOMEM;
	*j = (struct sl__fjob){.path = path, .buf = buf, .len = len, .unlink_after = unlink_after};
	int ret = sl__fjob_push(p, j, len);
	if (ret < 0)
		free(j);
	return ret;
}
