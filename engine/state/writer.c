/*
 * The state writer thread (state.h): commits the batches the owners of
 * parts hand over, one durable RocksDB write per projection per round, so the
 * cost of a commit (one fdatasync) is shared by every partition of a
 * projection, wherever its reactor is. The reactors never wait on the disk
 * for their state; they only learn, at a later step, that a batch is
 * committed.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "state/state_impl.h"

struct sl__wdb {
	struct sl_state_db *db;
	struct sl_state_part **parts;
	struct sl__batch **batches; /* a round's scratch, as long as parts */
	struct sl_state_part **taken;
	uint32_t n, cap;
	bool failing; /* the last commit failed */
};

struct sl_state_writer {
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t cv;      /* kicks and stop, for the thread */
	pthread_cond_t idle_cv; /* the end of a round, for removers */
	bool stop, kicked, busy, started;
	uint64_t interval_ns;
	struct sl__wdb *dbs;
	uint32_t n_dbs, dbs_cap;
};

void sl__state_writer_kick(struct sl_state_writer *w)
{
	pthread_mutex_lock(&w->mu);
	w->kicked = true;
	pthread_cond_signal(&w->cv);
	pthread_mutex_unlock(&w->mu);
}

/* One round for one projection: takes what its parts handed over (under
 * mu), commits it (without mu), tells the owners. */
static void sl__round_db(struct sl_state_writer *w, struct sl__wdb *d)
{
	char err[sizeof(((struct sl_state_part *)0)->commit_err)];
	uint32_t n = 0;

	for (uint32_t i = 0; i < d->n; i++) {
		struct sl_state_part *p = d->parts[i];
		/* Acquire: pairs with the owner's release; the batch is whole. */
		struct sl__batch *b = atomic_load_explicit(&p->handoff, memory_order_acquire);
		if (b) {
			d->batches[n] = b;
			d->taken[n++] = p;
		}
	}
	if (!n)
		return;
	w->busy = true;
	pthread_mutex_unlock(&w->mu);
	int ret = sl__state_commit(d->db, d->batches, n, err, sizeof(err));
	for (uint32_t i = 0; i < n; i++) {
		struct sl_state_part *p = d->taken[i];
		if (ret < 0) {
			/* Kept in handoff: the next round tries again; the owner
			 * keeps its entries pinned meanwhile. */
			snprintf(p->commit_err, sizeof(p->commit_err), "%s", err);
			atomic_fetch_add_explicit(&p->commit_failures, 1, memory_order_relaxed);
			continue;
		}
		atomic_store_explicit(&p->handoff, NULL, memory_order_relaxed);
		sl__state_committed(p, d->batches[i]);
		if (p->on_commit)
			p->on_commit(p->on_commit_arg);
	}
	/* Said once per run of failures (a full disk retries every interval),
	 * and when commits come back; metrics count every one. */
	if (ret < 0 && !d->failing)
		fprintf(stderr, "sluiced: state: %s (retried until it works)\n", err);
	else if (ret == 0 && d->failing)
		fprintf(stderr, "sluiced: state: commits work again\n");
	d->failing = ret < 0;
	pthread_mutex_lock(&w->mu);
	w->busy = false;
	pthread_cond_broadcast(&w->idle_cv);
}

static void *sl__writer_main(void *arg)
{
	struct sl_state_writer *w = arg;

	pthread_setname_np(pthread_self(), "sl-state");
	pthread_mutex_lock(&w->mu);
	for (;;) {
		if (!w->kicked && !w->stop) {
			/* A kick comes with every batch; the timeout only
			 * retries failed commits. */
			uint64_t at = sl_now_ns() + w->interval_ns;
			struct timespec ts = {.tv_sec = (time_t)(at / 1000000000u),
			                      .tv_nsec = (long)(at % 1000000000u)};
			pthread_cond_timedwait(&w->cv, &w->mu, &ts);
		}
		bool stop = w->stop;
		w->kicked = false;
		for (uint32_t i = 0; i < w->n_dbs; i++)
			sl__round_db(w, &w->dbs[i]);
		if (stop)
			break;
	}
	pthread_mutex_unlock(&w->mu);
	return NULL;
}

int sl_state_writer_start(const struct sl_state_writer_opts *o, struct sl_state_writer **out)
{
	struct sl_state_writer *w = calloc(1, sizeof(*w));
	pthread_condattr_t ca;
	int ret;

	*out = NULL;
	if (!w)
		return -ENOMEM;
	w->interval_ns = o && o->interval_ns ? o->interval_ns : SL_STATE_INTERVAL_NS;
	pthread_mutex_init(&w->mu, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&w->cv, &ca);
	pthread_condattr_destroy(&ca);
	pthread_cond_init(&w->idle_cv, NULL);
	if ((ret = pthread_create(&w->thread, NULL, sl__writer_main, w))) {
		pthread_mutex_destroy(&w->mu);
		pthread_cond_destroy(&w->cv);
		pthread_cond_destroy(&w->idle_cv);
		free(w);
		return -ret;
	}
	w->started = true;
	*out = w;
	return 0;
}

void sl_state_writer_stop(struct sl_state_writer *w)
{
	if (!w)
		return;
	pthread_mutex_lock(&w->mu);
	w->stop = true;
	pthread_cond_signal(&w->cv);
	pthread_mutex_unlock(&w->mu);
	pthread_join(w->thread, NULL);
	/* Parts still registered commit inline from now on. */
	for (uint32_t i = 0; i < w->n_dbs; i++) {
		struct sl__wdb *d = &w->dbs[i];
		for (uint32_t j = 0; j < d->n; j++) {
			struct sl_state_part *p = d->parts[j];
			/* A batch the last round could not commit stays the
			 * owner's in flight; sl_state_part_sync retries it. */
			atomic_store_explicit(&p->handoff, NULL, memory_order_relaxed);
			p->writer = NULL;
		}
		free(d->parts);
		free(d->batches);
		free(d->taken);
	}
	free(w->dbs);
	pthread_mutex_destroy(&w->mu);
	pthread_cond_destroy(&w->cv);
	pthread_cond_destroy(&w->idle_cv);
	free(w);
}

static int sl__grow_db(struct sl__wdb *d)
{
	uint32_t cap = d->cap ? d->cap * 2 : 16;
	void *a = realloc(d->parts, cap * sizeof(*d->parts));
	if (!a)
		return -ENOMEM;
	d->parts = a;
	if (!(a = realloc(d->batches, cap * sizeof(*d->batches))))
		return -ENOMEM;
	d->batches = a;
	if (!(a = realloc(d->taken, cap * sizeof(*d->taken))))
		return -ENOMEM;
	d->taken = a;
	d->cap = cap;
	return 0;
}

int sl_state_writer_add(struct sl_state_writer *w, struct sl_state_part *p)
{
	struct sl__wdb *d = NULL;
	int ret = 0;

	pthread_mutex_lock(&w->mu);
	/* A round reads the lists and scratch arrays without the lock. */
	while (w->busy)
		pthread_cond_wait(&w->idle_cv, &w->mu);
	for (uint32_t i = 0; i < w->n_dbs && !d; i++)
		if (w->dbs[i].db == p->db)
			d = &w->dbs[i];
	if (!d) {
		if (w->n_dbs == w->dbs_cap) {
			uint32_t cap = w->dbs_cap ? w->dbs_cap * 2 : 4;
			void *a = realloc(w->dbs, cap * sizeof(*w->dbs));
			if (!a) {
				ret = -ENOMEM;
				goto out;
			}
			w->dbs = a;
			w->dbs_cap = cap;
		}
		d = &w->dbs[w->n_dbs++];
		memset(d, 0, sizeof(*d));
		d->db = p->db;
	}
	if (d->n == d->cap && (ret = sl__grow_db(d)) < 0)
		goto out;
	d->parts[d->n++] = p;
	p->writer = w;
	p->interval_ns = w->interval_ns;
out:
	pthread_mutex_unlock(&w->mu);
	return ret;
}

void sl__state_writer_remove(struct sl_state_writer *w, struct sl_state_part *p)
{
	pthread_mutex_lock(&w->mu);
	/* Not while a round may be reading p's batch. */
	while (w->busy)
		pthread_cond_wait(&w->idle_cv, &w->mu);
	for (uint32_t i = 0; i < w->n_dbs; i++) {
		struct sl__wdb *d = &w->dbs[i];
		for (uint32_t j = 0; j < d->n; j++)
			if (d->parts[j] == p) {
				d->parts[j] = d->parts[--d->n];
				break;
			}
	}
	p->writer = NULL;
	pthread_mutex_unlock(&w->mu);
}
