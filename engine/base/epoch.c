#include "base/epoch.h"

#include <ck_epoch.h>
#include <errno.h>
#include <pthread.h>
#include <stddef.h>
#include <stdlib.h>

#include "base/base.h"

struct sl_epoch_rec {
	ck_epoch_record_t ck; /* first: a recycled ck record is one of ours */
	struct sl_epoch *e;
	struct sl_epoch_rec *next_all;
};

struct sl_epoch {
	ck_epoch_t ck;
	pthread_mutex_t mu; /* only for `all`, when a record is allocated */
	struct sl_epoch_rec *all;
};

/* What a writer retired, until its grace period is over. */
struct sl__retired {
	ck_epoch_entry_t entry;
	struct sl_epoch *e;
	void *ptr;
	void (*fn)(void *ptr);
};

int sl_epoch_create(struct sl_epoch **out)
{
	struct sl_epoch *e = calloc(1, sizeof(*e));

	*out = NULL;
	if (!e)
		return -ENOMEM;
	ck_epoch_init(&e->ck);
	pthread_mutex_init(&e->mu, NULL);
	*out = e;
	return 0;
}

void sl_epoch_destroy(struct sl_epoch *e)
{
	if (!e)
		return;
	while (e->all) {
		struct sl_epoch_rec *r = e->all;
		e->all = r->next_all;
		free(r);
	}
	pthread_mutex_destroy(&e->mu);
	free(e);
}

struct sl_epoch_rec *sl_epoch_rec_get(struct sl_epoch *e)
{
	ck_epoch_record_t *ck = ck_epoch_recycle(&e->ck, NULL);
	struct sl_epoch_rec *r;

	if (ck) {
		r = (struct sl_epoch_rec *)ck;
		/* Its last user gave it back with a release (rec_put). */
		SL_TSAN_ACQUIRE(r);
		return r;
	}
	/* Every record is in use: one more, kept until the epoch goes (ck's
	 * list holds it). As many as ever ran at once, so few. */
	if (posix_memalign((void **)&r, SL_CACHELINE, sizeof(*r)))
		return NULL;
	*r = (struct sl_epoch_rec){.e = e};
	ck_epoch_register(&e->ck, &r->ck, NULL);
	pthread_mutex_lock(&e->mu);
	r->next_all = e->all;
	e->all = r;
	pthread_mutex_unlock(&e->mu);
	return r;
}

void sl_epoch_rec_put(struct sl_epoch_rec *r)
{
	if (!r)
		return;
	SL_TSAN_RELEASE(r);
	ck_epoch_unregister(&r->ck);
}

void sl_epoch_enter(struct sl_epoch_rec *r)
{
	ck_epoch_begin(&r->ck, NULL);
}

void sl_epoch_leave(struct sl_epoch_rec *r)
{
	/* Pairs with the acquire before a retired object is freed: what this
	 * section read happens before the free (ck's fences say so to the
	 * CPU; this says it to TSan). */
	SL_TSAN_RELEASE(r->e);
	ck_epoch_end(&r->ck, NULL);
}

static void sl__epoch_free(ck_epoch_entry_t *entry)
{
	struct sl__retired *x =
	    (struct sl__retired *)((char *)entry - offsetof(struct sl__retired, entry));
	SL_TSAN_ACQUIRE(x->e);
	x->fn(x->ptr);
	free(x);
}

void sl_epoch_retire(struct sl_epoch_rec *r, void *ptr, void (*free_fn)(void *ptr))
{
	struct sl__retired *x = malloc(sizeof(*x));

	if (!x) {
		ck_epoch_synchronize(&r->ck);
		SL_TSAN_ACQUIRE(r->e);
		free_fn(ptr);
		return;
	}
	x->e = r->e;
	x->ptr = ptr;
	x->fn = free_fn;
	ck_epoch_call(&r->ck, &x->entry, sl__epoch_free);
}

bool sl_epoch_poll(struct sl_epoch_rec *r)
{
	if (!r->ck.n_pending)
		return false;
	ck_epoch_poll(&r->ck);
	return r->ck.n_pending != 0;
}

void sl_epoch_barrier(struct sl_epoch_rec *r)
{
	ck_epoch_barrier(&r->ck);
}
