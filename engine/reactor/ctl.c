/*
 * Topics at runtime, the reactor's side (reactor.h: sl_reactor_adopt,
 * sl_reactor_drop, sl_reactor_retune, sl_reactor_set_durability): a
 * control request goes in under ctl_mu, ctl_pending goes up and the
 * reactor is woken; between turns the reactor sees ctl_pending (one
 * relaxed load a turn), does the request on its own thread and answers
 * under ctl_mu. A drop may take several turns: it waits until the
 * partitions' logs have nothing in flight; a durability change too: each
 * partition switches at its next group-commit boundary.
 *
 * Consumers bound at runtime (sl_reactor_bind): the projections and
 * pipelines the server marked bind_pending hand their parts to the
 * reactors that own the partitions, the same way (proj.c, pipe.c).
 *
 * Topic admin requests of this reactor's connections (native TopicAdmin,
 * a Produce that asks for a topic to be created) go to the server's admin
 * thread through env->admin; their answers come back here: queued under
 * ctl_mu with the SL__CTL_ANSWERS bit of ctl_pending, taken between turns.
 *
 * Threads: sl_reactor_adopt/drop/bind on the control thread (the server's
 * admin calls, one at a time); sl_reactor_admin_done on the admin thread;
 * sl__ctl_run and sl__admin_submit on the reactor.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "reactor/conn.h"

enum {
	SL__CTL_ADOPT = 1,
	SL__CTL_DROP = 2,
	SL__CTL_RETUNE = 3,
	SL__CTL_BIND = 4,
	SL__CTL_DURABILITY = 5,
};

static int sl__ctl_request(struct sl_reactor *r, uint32_t kind, uint32_t index)
{
	pthread_mutex_lock(&r->ctl_mu);
	if (r->ctl_closed) {
		pthread_mutex_unlock(&r->ctl_mu);
		return -ESHUTDOWN;
	}
	r->ctl_kind = kind;
	r->ctl_topic = index;
	r->ctl_done = false;
	atomic_fetch_or_explicit(&r->ctl_pending, SL__CTL_REQUEST, memory_order_release);
	pthread_mutex_unlock(&r->ctl_mu);
	sl_reactor_wake(r);
	pthread_mutex_lock(&r->ctl_mu);
	/* The reactor answers within a turn (a drop: within the turns its
	 * logs take to go idle), or from its exit path (sl__ctl_stop). */
	while (!r->ctl_done)
		pthread_cond_wait(&r->ctl_cv, &r->ctl_mu);
	int ret = r->ctl_closed ? -ESHUTDOWN : 0;
	pthread_mutex_unlock(&r->ctl_mu);
	return ret;
}

int sl_reactor_adopt(struct sl_reactor *r, uint32_t index)
{
	return sl__ctl_request(r, SL__CTL_ADOPT, index);
}

int sl_reactor_drop(struct sl_reactor *r, uint32_t index)
{
	return sl__ctl_request(r, SL__CTL_DROP, index);
}

int sl_reactor_retune(struct sl_reactor *r, uint32_t index)
{
	return sl__ctl_request(r, SL__CTL_RETUNE, index);
}

int sl_reactor_set_durability(struct sl_reactor *r, uint32_t index)
{
	return sl__ctl_request(r, SL__CTL_DURABILITY, index);
}

int sl_reactor_bind(struct sl_reactor *r)
{
	return sl__ctl_request(r, SL__CTL_BIND, 0);
}

static void sl__ctl_answer(struct sl_reactor *r)
{
	pthread_mutex_lock(&r->ctl_mu);
	atomic_fetch_and_explicit(&r->ctl_pending, ~SL__CTL_REQUEST, memory_order_relaxed);
	r->ctl_done = true;
	pthread_cond_broadcast(&r->ctl_cv);
	pthread_mutex_unlock(&r->ctl_mu);
}

static int sl__parts_reserve(struct sl_reactor *r, uint32_t more)
{
	uint32_t need = r->n_parts + more;
	if (need <= r->cap_parts)
		return 0;
	struct sl_partition **p = realloc(r->parts, need * sizeof(*p));
	if (!p)
		return -ENOMEM;
	r->parts = p;
	p = realloc(r->dirty_parts, need * sizeof(*p));
	if (!p)
		return -ENOMEM;
	r->dirty_parts = p;
	r->cap_parts = need;
	return 0;
}

static uint32_t sl__tick_with(const struct sl_topic *t, uint32_t tick);

static void sl__ctl_adopt(struct sl_reactor *r, struct sl_topic *t)
{
	uint32_t mine = 0;
	for (uint32_t p = 0; p < t->n_parts; p++)
		mine += t->parts[p].owner == r->id;
	if (sl__parts_reserve(r, mine) < 0) {
		/* Not adopted: its partitions refuse what comes (no owner
		 * steps them); said once. */
		fprintf(stderr, "sluiced: reactor %u: no memory to adopt topic %s\n", r->id,
		        t->name);
		return;
	}
	struct sl_journal *j =
	    atomic_load_explicit(&r->env->topics->journals[r->id], memory_order_acquire);
	if (j && !r->journal)
		r->journal = j;
	for (uint32_t p = 0; p < t->n_parts; p++) {
		struct sl_partition *part = &t->parts[p];
		if (part->owner != r->id)
			continue;
		part->rslot = r->n_parts;
		r->parts[r->n_parts++] = part;
		if (part->log && r->journal && t->spec.durability == SL_LOG_FSYNC) {
			char key[600];
			snprintf(key, sizeof(key), "%s/%u", t->name, part->id);
			if (sl_log_set_journal(part->log, r->journal, key) < 0)
				fprintf(
				    stderr,
				    "sluiced: topic %s partition %u: no memory for the journal; "
				    "it syncs its own segment\n",
				    t->name, part->id);
		}
	}
	/* The new topic is not among the published ones yet. */
	r->tick_ms = sl__tick_with(t, sl__tick_ms(r->env->topics));
}

/* tick, or t's interval when that is shorter (ms, at least 1). */
static uint32_t sl__tick_with(const struct sl_topic *t, uint32_t tick)
{
	if (t->spec.durability != SL_LOG_INTERVAL || atomic_load(&t->deleted))
		return tick;
	uint64_t ms = t->spec.interval_ns / 1000000u;
	return ms < tick ? (ms ? (uint32_t)ms : 1) : tick;
}

uint32_t sl__tick_ms(const struct sl_topics *topics)
{
	uint32_t tick = SL_TICK_MS, n = atomic_load_explicit(&topics->n, memory_order_acquire);
	for (uint32_t i = 0; i < n; i++)
		tick = sl__tick_with(&topics->v[i], tick);
	return tick;
}

/*
 * The topic's durability was altered (t->spec, stored by the control
 * thread before this request): every partition of it owned here switches
 * at its next group-commit boundary (sl_log_set_durability says what a
 * switch does). A partition waiting for its in-flight write, sync or
 * journal frame makes this request take more turns, as a drop does; the
 * answer comes once all of them run under the new policy, so that an event
 * acked after the alter's answer was acked under it. True when done.
 */
static bool sl__ctl_durability(struct sl_reactor *r, struct sl_topic *t)
{
	struct sl_journal *j =
	    atomic_load_explicit(&r->env->topics->journals[r->id], memory_order_acquire);
	if (j && !r->journal)
		r->journal = j; /* made for this alter (sl_topics_journals) */
	bool done = true;
	for (uint32_t p = 0; p < t->n_parts; p++) {
		struct sl_partition *part = &t->parts[p];
		if (part->owner != r->id || !part->log || part->error)
			continue;
		char key[600];
		snprintf(key, sizeof(key), "%s/%u", t->name, part->id);
		enum sl_log_durability d = t->spec.durability;
		int ret = sl_log_set_durability(part->log, d, t->spec.interval_ns,
		                                d == SL_LOG_FSYNC ? r->journal : NULL, key);
		if (ret == -ENOMEM && d == SL_LOG_FSYNC && r->journal) {
			/* Without the journal's memory it syncs its own segment,
			 * as an adopt does; said once. */
			fprintf(stderr,
			        "sluiced: topic %s partition %u: no memory for the journal; it "
			        "syncs its own segment\n",
			        t->name, part->id);
			ret = sl_log_set_durability(part->log, d, t->spec.interval_ns, NULL, key);
		}
		if (ret == 0) {
			done = false;
			continue;
		}
		if (ret < 0) {
			sl__part_failed(r, part);
			continue;
		}
		/* Under the new policy: what its switch made durable is
		 * published and acked, and what gathered meanwhile goes out. */
		sl__part_durable(r, part);
		if (sl_log_busy(part->log) && !part->dirty) {
			part->dirty = true;
			r->dirty_parts[r->n_dirty_parts++] = part;
		}
	}
	if (done)
		r->tick_ms = sl__tick_ms(r->env->topics); /* armed with it from the next tick */
	return done;
}

/*
 * A partition's id window made to follow its topic's dedup_window as
 * altered at runtime: off (dropped), on (a new, empty window: it holds the
 * ids stored from now on, so its horizon is now: a forgotten producer's
 * resend of an older event is refused, never taken for new), or another
 * length. The next start rebuilds it from the log at the stored length.
 */
static void sl__part_idwin_follow(struct sl_partition *p, int64_t window_ms, int64_t wall_ms)
{
	if (!p->dd || (p->idw ? sl_idwin_window_ms(p->idw) == window_ms : window_ms <= 0))
		return;
	if (window_ms <= 0) {
		sl_idwin_destroy(p->idw);
		p->idw = NULL;
		atomic_store_explicit(&p->idw_count_pub, 0, memory_order_relaxed);
		atomic_store_explicit(&p->idw_bytes_pub, 0, memory_order_relaxed);
		return;
	}
	if (p->idw) {
		sl_idwin_set_window_ms(p->idw, window_ms);
		return;
	}
	uint32_t cap = p->topic->spec.dedup_window_events ? p->topic->spec.dedup_window_events
	                                                  : SL_IDWIN_CAP_DEFAULT;
	if (sl_idwin_create(window_ms, cap, &p->idw) < 0) {
		/* Out of memory: the partition goes on without one (its
		 * producers' sequences still protect it); said once. */
		fprintf(stderr, "sluiced: topic %s partition %u: no memory for the id window\n",
		        p->topic->name, p->id);
		p->idw = NULL;
		return;
	}
	sl_idwin_skipped(p->idw, wall_ms);
}

static void sl__ctl_retune(struct sl_reactor *r, struct sl_topic *t)
{
	int64_t wms = atomic_load_explicit(&t->dedup_window_ms, memory_order_relaxed);
	int64_t now_ms = (int64_t)sl_wall_ms();
	for (uint32_t p = 0; p < t->n_parts; p++)
		if (t->parts[p].owner == r->id && t->parts[p].log)
			sl__part_idwin_follow(&t->parts[p], wms, now_ms);
}

/* True once every partition of t owned here is closed. */
static bool sl__ctl_drop(struct sl_reactor *r, struct sl_topic *t)
{
	bool done = true;
	for (uint32_t p = 0; p < t->n_parts; p++) {
		struct sl_partition *part = &t->parts[p];
		if (part->owner != r->id || !part->log)
			continue;
		/* What was appended goes on to durability and is acked (the
		 * producers were told nothing else); then the log closes. */
		if (sl_log_busy(part->log) || sl_log_io_pending(part->log)) {
			done = false;
			continue;
		}
		if (part->dirty) {
			for (uint32_t i = 0; i < r->n_dirty_parts; i++)
				if (r->dirty_parts[i] == part) {
					memmove(&r->dirty_parts[i], &r->dirty_parts[i + 1],
					        (r->n_dirty_parts - i - 1) *
					            sizeof(*r->dirty_parts));
					r->n_dirty_parts--;
					break;
				}
			part->dirty = false;
		}
		if (!part->error && asprintf(&part->error, "topic %s was deleted", t->name) < 0)
			part->error = NULL;
		struct sl_log *log = part->log;
		part->log = NULL; /* appends are refused from here (sl_partition_produce) */
		sl_log_close(log);
	}
	return done;
}

void sl_reactor_admin_done(struct sl_reactor *r, struct sl_admin_req *req)
{
	pthread_mutex_lock(&r->ctl_mu);
	if (r->ctl_closed) {
		/* The reactor is gone: nobody waits for the answer. */
		pthread_mutex_unlock(&r->ctl_mu);
		free(req->answer);
		free(req);
		return;
	}
	req->next = r->admin_done;
	r->admin_done = req;
	atomic_fetch_or_explicit(&r->ctl_pending, SL__CTL_ANSWERS, memory_order_release);
	pthread_mutex_unlock(&r->ctl_mu);
	sl_reactor_wake(r);
}

int sl__admin_submit(struct sl_reactor *r, struct sl_admin_req *req)
{
	req->reactor = r->id;
	if (!r->env->admin || r->stopping || r->env->admin(r->env->admin_arg, req) != 0) {
		free(req);
		return r->stopping ? -ESHUTDOWN : -EAGAIN;
	}
	r->admin_out++;
	return 0;
}

/* The answers back from the admin thread, oldest first. */
static void sl__ctl_take_answers(struct sl_reactor *r)
{
	pthread_mutex_lock(&r->ctl_mu);
	struct sl_admin_req *list = r->admin_done, *rev = NULL;
	r->admin_done = NULL;
	atomic_fetch_and_explicit(&r->ctl_pending, ~SL__CTL_ANSWERS, memory_order_relaxed);
	pthread_mutex_unlock(&r->ctl_mu);
	while (list) {
		struct sl_admin_req *next = list->next;
		list->next = rev;
		rev = list;
		list = next;
	}
	while (rev) {
		struct sl_admin_req *req = rev;
		rev = rev->next;
		r->admin_out--;
		struct sl_conn *c = req->conn < r->conn_cap ? r->conns[req->conn] : NULL;
		if (c && c->gen == req->gen)
			sl__conn_admin_answer(r, c, req);
		free(req->answer);
		free(req);
	}
}

void sl__ctl_free_answers(struct sl_reactor *r)
{
	while (r->admin_done) {
		struct sl_admin_req *req = r->admin_done;
		r->admin_done = req->next;
		free(req->answer);
		free(req);
	}
}

void sl__ctl_run(struct sl_reactor *r)
{
	if (atomic_load_explicit(&r->ctl_pending, memory_order_acquire) & SL__CTL_ANSWERS)
		sl__ctl_take_answers(r);
	pthread_mutex_lock(&r->ctl_mu);
	uint32_t kind = r->ctl_kind, index = r->ctl_topic;
	bool done = r->ctl_done;
	pthread_mutex_unlock(&r->ctl_mu);
	if (done)
		return;
	struct sl_topic *t = &r->env->topics->v[index];
	if (kind == SL__CTL_ADOPT) {
		sl__ctl_adopt(r, t);
		sl__ctl_answer(r);
	} else if (kind == SL__CTL_DROP) {
		if (sl__ctl_drop(r, t))
			sl__ctl_answer(r);
	} else if (kind == SL__CTL_RETUNE) {
		sl__ctl_retune(r, t);
		sl__ctl_answer(r);
	} else if (kind == SL__CTL_DURABILITY) {
		if (sl__ctl_durability(r, t))
			sl__ctl_answer(r);
	} else if (kind == SL__CTL_BIND) {
		/* Without memory the parts stay unstepped (their models never
		 * move, and their queries wait): said, like an adopt's. */
		if (sl__proj_bind(r) < 0 || sl__pipe_bind(r) < 0)
			fprintf(stderr,
			        "sluiced: reactor %u: no memory to take what was bound at "
			        "runtime\n",
			        r->id);
		sl__ctl_answer(r);
	}
}

void sl__ctl_stop(struct sl_reactor *r)
{
	/* From here every request is refused; one that waits is answered. */
	pthread_mutex_lock(&r->ctl_mu);
	r->ctl_closed = true;
	r->ctl_done = true;
	atomic_fetch_and_explicit(&r->ctl_pending, ~SL__CTL_REQUEST, memory_order_relaxed);
	pthread_cond_broadcast(&r->ctl_cv);
	pthread_mutex_unlock(&r->ctl_mu);
}
