/*
 * The reactor loop, its io_uring plumbing and its life cycle (the
 * partitions it owns are parts.c's). See reactor.h for the data path; conn.h for what happens to
 * the bytes of one connection; xfer.c for the blocks between reactors.
 */
#include "reactor/reactor_impl.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#include "read/read.h"

/* ---- io_uring plumbing ---------------------------------------------------- */

struct io_uring_sqe *sl__sqe(struct sl_reactor *r)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&r->uring);
	if (SL_UNLIKELY(!sqe)) {
		/* SQ full: hand what is queued to the kernel and take a slot. */
		io_uring_submit(&r->uring);
		sqe = io_uring_get_sqe(&r->uring);
	}
	return sqe;
}

static void sl__arm_accept(struct sl_reactor *r)
{
	struct io_uring_sqe *sqe = sl__sqe(r);
	io_uring_prep_multishot_accept(sqe, r->listen_fd, NULL, NULL, SOCK_CLOEXEC);
	io_uring_sqe_set_data64(sqe, SL_UD(SL_OP_ACCEPT, 0));
	r->accept_armed = true;
}

static void sl__arm_tick(struct sl_reactor *r)
{
	struct io_uring_sqe *sqe = sl__sqe(r);
	r->tick_ts.tv_sec = 0;
	r->tick_ts.tv_nsec = (long)r->tick_ms * 1000000L;
	io_uring_prep_timeout(sqe, &r->tick_ts, 0, 0);
	io_uring_sqe_set_data64(sqe, SL_UD(SL_OP_TICK, 0));
}

static void sl__arm_wake(struct sl_reactor *r)
{
	struct io_uring_sqe *sqe = sl__sqe(r);
	io_uring_prep_read(sqe, r->wake_fd, &r->wake_val, sizeof(r->wake_val), 0);
	io_uring_sqe_set_data64(sqe, SL_UD(SL_OP_WAKE, 0));
}

static void sl__send_wakes(struct sl_reactor *r)
{
	for (uint32_t t = 0; t < r->n; t++) {
		if (!r->wake_mask[t])
			continue;
		r->wake_mask[t] = 0;
		struct io_uring_sqe *sqe = sl__sqe(r);
		/* Posts a CQE into reactor t's ring: wakes it if it waits. The
		 * blocks were pushed before this SQE is even submitted, so the
		 * wakee always finds them. No CQE here unless it fails. */
		io_uring_prep_msg_ring(sqe, r->peer_fds[t], 0, SL_UD(SL_OP_MSG, 0), 0);
		io_uring_sqe_set_data64(sqe, SL_UD(SL_OP_MSG_SENT, 0));
		sqe->flags |= IOSQE_CQE_SKIP_SUCCESS;
	}
}

void sl__buf_recycle(struct sl_reactor *r, uint16_t bid)
{
	io_uring_buf_ring_add(r->br, r->bufs + (size_t)bid * r->buf_size, r->buf_size, bid,
	                      io_uring_buf_ring_mask(r->n_bufs), r->bufs_pending++);
}

static void sl__buf_publish(struct sl_reactor *r)
{
	if (r->bufs_pending) {
		io_uring_buf_ring_advance(r->br, r->bufs_pending);
		r->bufs_pending = 0;
	}
}

static int sl__setup_bufs(struct sl_reactor *r)
{
	size_t ring_bytes = r->n_bufs * sizeof(struct io_uring_buf);
	struct io_uring_buf_reg reg = {0};
	int ret;

	r->br = mmap(NULL, ring_bytes, PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
	if (r->br == MAP_FAILED) {
		r->br = NULL;
		return -errno;
	}
	r->br_bytes = ring_bytes;
	r->bufs = malloc((size_t)r->n_bufs * r->buf_size);
	if (!r->bufs)
		return -ENOMEM;
	reg.ring_addr = (uint64_t)(uintptr_t)r->br;
	reg.ring_entries = r->n_bufs;
	reg.bgid = SL_BGID;
	ret = io_uring_register_buf_ring(&r->uring, &reg, 0);
	if (ret < 0)
		return ret;
	io_uring_buf_ring_init(r->br);
	for (uint32_t i = 0; i < r->n_bufs; i++)
		sl__buf_recycle(r, (uint16_t)i);
	sl__buf_publish(r);
	return 0;
}

static int sl__setup_uring(struct sl_reactor *r)
{
	struct io_uring_params p = {0};
	int ret;

	/* One thread submits and reaps, and completions are run when we ask
	 * for them: cheaper than interrupt-style task work. */
	p.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN;
	ret = io_uring_queue_init_params(SL_SQ_ENTRIES, &r->uring, &p);
	if (ret == -EINVAL) {
		memset(&p, 0, sizeof(p));
		ret = io_uring_queue_init_params(SL_SQ_ENTRIES, &r->uring, &p);
	}
	if (ret < 0)
		return ret;
	r->uring_ok = true;
	return sl__setup_bufs(r);
}

/* ---- the loop ------------------------------------------------------------ */

static void sl__on_tick(struct sl_reactor *r)
{
	uint64_t now = sl_now_ns(), wall_ms = sl_wall_ms();
	r->ticks++;
	sl__proj_tick(r);
	sl__groups_tick(r);
	if (r->n_pipe_parts)
		sl__pipe_tick(r);
	sl__conns_unhold(r, true);
	/* Interval durability: an fdatasync of what was written is due. */
	for (uint32_t i = 0; i < r->n_parts; i++) {
		struct sl_partition *p = r->parts[i];
		if (p->dd) {
			sl_dedup_tick(p->dd);
			sl_dedup_set_time(p->dd, wall_ms);
			/* Every 10 s: forget where idle producers' old events
			 * went (dedup.h says why that is safe). */
			if (r->ticks % SL_DEDUP_TRIM_EVERY == 0)
				sl_dedup_trim(p->dd, SL_DEDUP_IDLE_TICKS);
			/* Forget producers idle past the topic's
			 * producer_expiry (issue 20): a sweep reads the whole
			 * table, so every eighth of the expiry (a producer goes
			 * at most 1/8 late), but at least every second. */
			uint64_t exp_ms = atomic_load_explicit(&p->topic->producer_expiry_ns,
			                                       memory_order_relaxed) /
			                  1000000,
			         every = exp_ms / 8 / SL_TICK_MS;
			if (every < SL_DEDUP_EXPIRE_EVERY)
				every = SL_DEDUP_EXPIRE_EVERY;
			if (r->ticks % every == 0)
				sl_dedup_expire(p->dd, exp_ms);
			sl__part_dedup_pub(p);
		}
		if (p->idw) {
			sl_idwin_expire(p->idw, wall_ms);
			atomic_store_explicit(&p->idw_count_pub, sl_idwin_count(p->idw),
			                      memory_order_relaxed);
			atomic_store_explicit(&p->idw_bytes_pub, sl_idwin_memory(p->idw),
			                      memory_order_relaxed);
		}
		sl__part_log_pub(p);
		if (p->log && !p->error) {
			uint64_t rolls =
			    atomic_load_explicit(&p->log_rolls_pub, memory_order_relaxed);
			if (rolls != p->retain_rolls || r->ticks % SL_RETAIN_EVERY == 0) {
				p->retain_rolls = rolls;
				sl__part_retain(p, (int64_t)wall_ms);
			}
		}
		/* A full device: the log tries its write again when due. */
		if (p->log && !p->dirty && !p->error &&
		    (sl_log_sync_due(p->log, now) || sl_log_full(p->log))) {
			p->dirty = true;
			r->dirty_parts[r->n_dirty_parts++] = p;
		}
	}
	sl__hot_tick(r, now);
	sl__conns_timeouts(r, now);
	if (atomic_load_explicit(r->env->stopping, memory_order_acquire) && !r->stopping)
		sl__begin_stop(r);
	if (r->stopping && r->drain_deadline_ns && now > r->drain_deadline_ns)
		r->drain_expired = true;
}

static void sl__on_cqe(struct sl_reactor *r, struct io_uring_cqe *cqe)
{
	uint64_t ud = io_uring_cqe_get_data64(cqe);
	uint32_t op = SL_UD_OP(ud), slot = SL_UD_SLOT(ud);

	switch (op) {
	case SL_OP_ACCEPT:
		if (!(cqe->flags & IORING_CQE_F_MORE))
			r->accept_armed = false;
		if (cqe->res >= 0)
			sl__conn_accepted(r, cqe->res);
		else if (cqe->res != -ECANCELED && cqe->res != -EBADF && cqe->res != -EINVAL)
			fprintf(stderr, "sluiced: reactor %u: accept: %s\n", r->id,
			        strerror(-cqe->res));
		if (!r->accept_armed && !r->stopping)
			sl__arm_accept(r);
		break;
	case SL_OP_RECV:
		sl__conn_on_recv(r, slot, cqe->res, cqe->flags);
		break;
	case SL_OP_SEND:
		sl__conn_on_send(r, slot, cqe->res);
		break;
	case SL_OP_TICK:
		sl__on_tick(r);
		if (!r->exiting)
			sl__arm_tick(r);
		break;
	case SL_OP_WAKE:
		if (atomic_load_explicit(r->env->stopping, memory_order_acquire) && !r->stopping)
			sl__begin_stop(r);
		if (!r->exiting)
			sl__arm_wake(r);
		break;
	case SL_OP_MSG:
		/* A peer pushed blocks; the drain below picks them up. */
		break;
	case SL_OP_LOG:
		sl__on_log_cqe(r, slot, cqe->res);
		break;
	case SL_OP_JOURNAL:
		sl__on_journal_cqe(r, cqe->res);
		break;
	case SL_OP_MSG_SENT:
		fprintf(stderr, "sluiced: reactor %u: msg_ring: %s\n", r->id, strerror(-cqe->res));
		break;
	default:
		break;
	}
}

void sl__begin_stop(struct sl_reactor *r)
{
	r->stopping = true;
	r->drain_deadline_ns = sl_now_ns() + (uint64_t)r->lim.drain_timeout_ms * 1000000u;
	if (r->listen_fd >= 0) {
		/* Closing the socket ends the multishot accept. */
		struct io_uring_sqe *sqe = sl__sqe(r);
		io_uring_prep_cancel64(sqe, SL_UD(SL_OP_ACCEPT, 0), 0);
		io_uring_sqe_set_data64(sqe, SL_UD(SL_OP_NONE, 0));
		close(r->listen_fd);
		r->listen_fd = -1;
	}
	sl__conns_stop_reading(r);
}

/* True when this reactor has nothing left to do for anyone. */
static bool sl__drained(struct sl_reactor *r)
{
	if (!r->input_done) {
		if (r->recvs_armed || r->accept_armed)
			return false;
		r->input_done = true;
		atomic_fetch_add_explicit(r->env->input_done, 1, memory_order_acq_rel);
	}
	if (r->drain_expired)
		return true;
	if (atomic_load_explicit(r->env->input_done, memory_order_acquire) < r->n)
		return false;
	if (r->blocks_out || r->remote_unacked || sl_reader_outstanding(r->env->reader, r->id) ||
	    r->admin_out)
		return false;
	/* No reactor makes new events any more, but blocks already pushed to
	 * us (events to store, acks to send, our blocks coming home) must be
	 * consumed before we go. */
	if (!sl__xquiet(r))
		return false;
	for (uint32_t i = 0; i < r->n_parts; i++)
		if (sl_partition_waiting(r->parts[i]))
			return false;
	return sl__conns_flushed(r);
}

static int sl__loop(struct sl_reactor *r)
{
	sl__arm_tick(r);
	sl__arm_wake(r);
	if (r->listen_fd >= 0)
		sl__arm_accept(r);

	for (;;) {
		struct io_uring_cqe *cqe;
		unsigned head, seen = 0;
		int ret;

		/* Everything that can make work (data, blocks, timers, the log,
		 * the reader, stop) arrives as a CQE, and every turn ends with
		 * nothing left pending on our side: wait for the next one. */
		if (r->proj_behind || r->pipe_behind) {
			/* Appliers have work left: come straight back after
			 * whatever is ready, instead of sleeping. */
			struct io_uring_sqe *sqe = sl__sqe(r);
			io_uring_prep_nop(sqe);
			io_uring_sqe_set_data64(sqe, SL_UD(SL_OP_NONE, 0));
		}
		ret = io_uring_submit_and_wait(&r->uring, 1);
		if (ret < 0 && ret != -EINTR && ret != -EAGAIN && ret != -EBUSY) {
			fprintf(stderr, "sluiced: reactor %u: io_uring_enter: %s\n", r->id,
			        strerror(-ret));
			return ret;
		}
		io_uring_for_each_cqe(&r->uring, head, cqe)
		{
			sl__on_cqe(r, cqe);
			seen++;
		}
		io_uring_cq_advance(&r->uring, seen);
		if (SL_UNLIKELY(atomic_load_explicit(&r->ctl_pending, memory_order_acquire)))
			sl__ctl_run(r);

		/* Queries first: answering one costs microseconds, while the
		 * rest of the turn (events in, group-commit writes) can take a
		 * millisecond. A request parked here (read your writes) makes
		 * this turn's step apply what it waits for. */
		if (r->n_pparts)
			sl__proj_take(r);
		sl__xdrain(r);
		sl__conns_take_fetches(r);
		/* Fetched batches go into this turn's group commits. */
		if (r->env->rq)
			sl__repl_take(r);
		/* Pipeline stages before the group commits: outputs to local
		 * partitions go into this turn's writes. */
		if (r->n_pipe_parts)
			sl__pipe_step(r);
		sl__part_flush(r);
		/* Journaled bytes go to their segments once they waited long
		 * enough, or all of them when no commit is in flight (nothing
		 * would wake this reactor soon: readers must not wait). */
		if (r->journal && sl_journal_lazy(r->journal))
			sl_journal_segwrites(r->journal, !sl_journal_inflight(r->journal),
			                     sl__journal_cb, r);
		if (r->env->rq)
			sl__repl_step(r);
		if (r->n_pparts)
			sl__proj_step(r);
		sl__parts_pressure(r);
		sl__conns_unhold(r, false);
		sl__xflush(r);
		sl__conns_flush(r);
		sl__buf_publish(r);
		sl__send_wakes(r);

		if (r->throttled && r->blocks_out <= r->pool_size / 2) {
			r->throttled = false;
			sl__conns_resume(r);
		}
		if (r->stopping && sl__drained(r))
			break;
	}
	r->exiting = true;
	sl__ctl_stop(r);
	if (r->journal)
		sl_journal_segwrites(r->journal, true, sl__journal_cb, r);
	sl__proj_stop(r);
	/* Our blocks that peers returned in their last turn, and anything we
	 * still owe them, are settled: sl__drained() waited for both. */
	sl__xflush(r);
	sl__send_wakes(r);
	io_uring_submit(&r->uring);
	sl__conns_close_all(r);
	return 0;
}

static void *sl__thread(void *arg)
{
	struct sl_reactor *r = arg;
	int ret;

	if (r->lim.pin) {
		long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
		cpu_set_t set;
		CPU_ZERO(&set);
		CPU_SET((int)(r->id % (uint32_t)(ncpu > 0 ? ncpu : 1)), &set);
		pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
	}
	char name[16];
	snprintf(name, sizeof(name), "sl-reactor-%u", r->id);
	pthread_setname_np(pthread_self(), name);

	/* The ring must be created on the thread that submits to it
	 * (SINGLE_ISSUER); peers need its fd for msg_ring before anyone sends,
	 * hence the barrier. */
	ret = sl__setup_uring(r);
	atomic_store_explicit(&r->ring_fd, r->uring_ok ? r->uring.ring_fd : -1,
	                      memory_order_release);
	pthread_barrier_wait(r->env->start_barrier);
	if (ret < 0) {
		fprintf(stderr, "sluiced: reactor %u: io_uring setup: %s\n", r->id, strerror(-ret));
		r->result = ret;
		return NULL;
	}
	for (uint32_t t = 0; t < r->n; t++) {
		r->peer_fds[t] = sl_reactor_ring_fd(r->env->peers[t]);
		if (r->peer_fds[t] < 0) {
			r->result = -EIO; /* a peer failed; it says why */
			return NULL;
		}
	}
	r->result = sl__loop(r);
	return NULL;
}

/* ---- life cycle ---------------------------------------------------------- */

int sl_reactor_create(const struct sl_reactor_env *env, uint32_t id, struct sl_reactor **out)
{
	struct sl_reactor *r = calloc(1, sizeof(*r));
	int ret = -ENOMEM;

	if (!r)
		return -ENOMEM;
	r->env = env;
	r->topics = env->topics;
	r->credits = env->credits;
	r->lim = env->lim;
	r->id = id;
	r->n = env->n;
	r->listen_fd = -1;
	r->ring_fd = -1;
	r->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (r->wake_fd < 0) {
		ret = -errno;
		goto fail;
	}
	r->n_bufs = SL_RECV_BUFS;
	r->buf_size = SL_RECV_BUF_SIZE;
	r->cur_ev = calloc(r->n, sizeof(*r->cur_ev));
	r->cur_ack = calloc(r->n, sizeof(*r->cur_ack));
	r->wake_mask = calloc(r->n, 1);
	r->peer_fds = calloc(r->n, sizeof(*r->peer_fds));
	r->backlog_head = calloc(r->n, sizeof(*r->backlog_head));
	r->backlog_tail = calloc(r->n, sizeof(*r->backlog_tail));
	r->views = calloc(SL_PRODUCE_VIEWS, sizeof(*r->views));
	if (!r->cur_ev || !r->cur_ack || !r->wake_mask || !r->peer_fds || !r->backlog_head ||
	    !r->backlog_tail || !r->views || sl__proj_init(r) < 0 || sl__pipe_init(r) < 0)
		goto fail;

	/* Partitions this reactor owns: p % n == id, across all topics. */
	uint32_t total = 0;
	for (uint32_t t = 0; t < env->topics->n; t++)
		total += env->topics->v[t].n_parts;
	r->parts = calloc(total ? total : 1, sizeof(*r->parts));
	r->dirty_parts = calloc(total ? total : 1, sizeof(*r->dirty_parts));
	if (!r->parts || !r->dirty_parts)
		goto fail;
	r->cap_parts = total ? total : 1;
	pthread_mutex_init(&r->ctl_mu, NULL);
	pthread_cond_init(&r->ctl_cv, NULL);
	r->ctl_inited = true;
	r->ctl_done = true; /* no request yet */
	r->tick_ms = sl__tick_ms(env->topics);
	r->journal = id < env->topics->n_journals ? env->topics->journals[id] : NULL;
	for (uint32_t t = 0; t < env->topics->n; t++) {
		for (uint32_t p = 0; p < env->topics->v[t].n_parts; p++)
			if (env->topics->v[t].parts[p].owner == id) {
				env->topics->v[t].parts[p].rslot = r->n_parts;
				r->parts[r->n_parts++] = &env->topics->v[t].parts[p];
			}
	}

	ret = sl__xpool_init(r);
	if (ret < 0)
		goto fail;

	ret = sl__conns_init(r);
	if (ret < 0)
		goto fail;
	*out = r;
	return 0;
fail:
	sl_reactor_destroy(r);
	return ret;
}

void sl_reactor_listen(struct sl_reactor *r, int fd)
{
	if (r->listen_fd >= 0)
		close(r->listen_fd);
	r->listen_fd = fd;
}

int sl_reactor_start(struct sl_reactor *r)
{
	int ret = pthread_create(&r->thread, NULL, sl__thread, r);
	if (ret)
		return -ret;
	r->started = true;
	return 0;
}

int sl_reactor_join(struct sl_reactor *r)
{
	if (!r->started)
		return 0;
	pthread_join(r->thread, NULL);
	r->started = false;
	return r->result;
}

int sl_reactor_ring_fd(struct sl_reactor *r)
{
	return atomic_load_explicit(&r->ring_fd, memory_order_acquire);
}

void sl_reactor_wake(struct sl_reactor *r)
{
	sl_eventfd_signal(r->wake_fd);
}

void sl_reactor_get_stats(struct sl_reactor *r, struct sl_reactor_stats *out)
{
	*out = r->stats;
}

void sl_reactor_get_credit_stats(struct sl_reactor *r, struct sl_reactor_credit_stats *out)
{
	out->granted_events = atomic_load_explicit(&r->m_credit_events, memory_order_relaxed);
	out->frames = atomic_load_explicit(&r->m_credit_frames, memory_order_relaxed);
	out->held_now = atomic_load_explicit(&r->m_held_now, memory_order_relaxed);
	out->held_ns = atomic_load_explicit(&r->m_held_ns, memory_order_relaxed);
	out->cut = atomic_load_explicit(&r->m_credit_cut, memory_order_relaxed);
}

uint64_t sl_reactor_auth_failures(struct sl_reactor *r)
{
	return atomic_load_explicit(&r->m_auth_failures, memory_order_relaxed);
}

void sl_reactor_destroy(struct sl_reactor *r)
{
	if (!r)
		return;
	if (r->ctl_inited) {
		sl__ctl_free_answers(r);
		pthread_mutex_destroy(&r->ctl_mu);
		pthread_cond_destroy(&r->ctl_cv);
	}
	sl__conns_destroy(r);
	sl__xpool_destroy(r);
	if (r->uring_ok)
		io_uring_queue_exit(&r->uring);
	if (r->br)
		munmap(r->br, r->br_bytes);
	free(r->bufs);
	if (r->listen_fd >= 0)
		close(r->listen_fd);
	if (r->wake_fd >= 0)
		close(r->wake_fd);
	free(r->cur_ev);
	free(r->cur_ack);
	free(r->wake_mask);
	free(r->peer_fds);
	free(r->backlog_head);
	free(r->backlog_tail);
	free(r->views);
	free(r->pparts);
	free(r->pipe_parts);
	free(r->parts);
	free(r->dirty_parts);
	free(r);
}
