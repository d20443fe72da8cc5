/*
 * sluice bench's load generator (one measurement; bench.c runs them).
 *
 * C connections (libsluice clients, each an idempotent producer with its
 * own server-assigned producer id) are driven by T worker threads (default
 * one per 256 connections, at most one per CPU). Each worker has one epoll
 * set holding its clients' sl_client_fd()s and services, per turn, only the
 * connections that need it: those whose fd is ready (acks in, socket
 * writable), whose client timers are due, or that have events to send now.
 * So a turn costs what the ready connections cost, not what all of them do,
 * and 1000 connections need no more threads than 10.
 *
 * Without --rate the loop is closed: every connection keeps its in-flight
 * window full. With --rate R it is open: event i (counted over all
 * connections, which take them round robin) is due at start + i/R, and its
 * latency counts from that intended time, so a stall of the server shows as
 * latency of every event that could not go out on time (no coordinated
 * omission). A generator that falls behind queues nothing: the due times
 * follow from the event index, and a connection whose window (the server's
 * credits) is full just sends its overdue events when room comes back.
 * Every event also has a second latency, from the moment the client library
 * took it (sl_client_produce() returned 0; its batch is written in the same
 * turn unless the socket is full): what the server's queue costs, which
 * credits bound. In a closed loop the two are the same.
 *
 * Latencies go into log-linear histograms per worker; per-event state is
 * two timestamps in a ring indexed by sequence (libsluice keeps in-flight
 * sequences within one window), so nothing is allocated per event.
 *
 * Server restarts are ridden out by the client library: it reconnects and
 * resends unanswered events with their original sequences.
 *
 * --idempotence compare runs the whole measurement four times in one
 * process, in the order off, on, on, off (idempotence_off clients: the
 * server stores without sequence tracking), each on fresh connections with
 * the same options, and the workers' aggregate choices seeded alike, so all
 * runs send the same keys in the same order (ids stay random and unique).
 *
 * --sweep measures the peak with a closed loop, then runs open loops at
 * 50, 90, 100 and 200% of it, each on fresh connections with the same
 * options.
 */
#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "cli/bench.h"

static void sl__on_ack(void *arg, const struct sl_client_ack *a)
{
	struct sl__conn *cn = arg;
	struct sl__worker *w = cn->w;

	cn->answered++;
	w->n_answered++;
	if (a->status == 0) {
		const struct sl__stamp *t = &cn->ts[a->sequence & cn->mask];
		sl_hist_record(&w->hist, w->now > t->due ? w->now - t->due : 0);
		sl_hist_record(&w->hist_send, w->now > t->sent ? w->now - t->sent : 0);
		w->acked++;
		if (a->dropped)
			w->dropped++;
		return;
	}
	if (a->status == -ECANCELED)
		return;
	if (a->status == -SL_EOVERLOAD)
		w->overload++;
	if (!w->refused)
		snprintf(w->err, sizeof(w->err), "event refused: %s%s%.*s",
		         a->code ? sl_client_code_name(a->code) : sl_strerror(a->status),
		         a->message_len ? ": " : "", (int)a->message_len, a->message);
	w->refused++;
}

static inline uint64_t sl__due(const struct sl__bench *b, uint64_t gi)
{
	return b->start_ns + (uint64_t)((long double)gi * 1e9L / (long double)b->rate);
}

/* Open loop: how many events (a global index bound) are due at `now`.
 * Exactly the count sl__due() agrees with, so no event is taken as due
 * here and as not due by the connection that sends it, or the other way. */
static uint64_t sl__due_count(const struct sl__bench *b, uint64_t now)
{
	if (now < b->start_ns)
		return 0;
	long double x = (long double)(now - b->start_ns) * (long double)b->rate / 1e9L;
	uint64_t e = x >= (long double)b->events ? b->events : (uint64_t)x + 1;
	while (e > 0 && sl__due(b, e - 1) > now)
		e--;
	while (e < b->events && sl__due(b, e) <= now)
		e++;
	return e;
}

/* Open loop: the first event at or after the cursor that one of w's
 * connections sends; b->events when none is left (or closed loop). Worker t
 * owns connections t, t + T, ...: within 2T indexes there is one of them,
 * the wrap from C - 1 to 0 included. */
static uint64_t sl__next_own(const struct sl__worker *w)
{
	const struct sl__bench *b = w->b;
	uint64_t g = w->cursor;

	if (b->rate <= 0)
		return b->events;
	for (uint64_t i = 0; i < 2 * b->threads && g < b->events; i++, g++)
		if (g % b->conns % b->threads == w->idx)
			return g;
	return b->events;
}

static inline void sl__queue(struct sl__worker *w, struct sl__conn *cn)
{
	if (cn->queued)
		return;
	cn->queued = true;
	w->next[w->n_next++] = cn;
}

/* Produces what connection cn may send now; <0 on a fatal error. */
static int sl__fill(struct sl__worker *w, struct sl__conn *cn)
{
	struct sl__bench *b = w->b;
	uint64_t now = sl_now_ns();
	struct sl_client_event ev = {
	    .type = "bench",
	    .type_len = 5,
	    .timestamp_ms = (int64_t)(sl_wall_ns() / 1000000u),
	    .data = b->data,
	    .data_len = b->size,
	};
	uint32_t since = 0;
	char key[SL__KEY_STRIDE];

	cn->blocked = false;
	while (cn->sent < cn->quota) {
		uint64_t due = now;
		if (b->rate > 0) {
			due = sl__due(b, cn->k + b->conns * cn->sent);
			if (due > now) {
				now = sl_now_ns();
				if (due > now)
					break;
			}
		}
		uint64_t k = b->sequential_keys ? (cn->k + b->conns * cn->sent) % b->keys
		                                : sl_uuid_rng_next(&w->rng) % b->keys;
		if (b->key_text) {
			ev.aggregate = b->key_text + k * SL__KEY_STRIDE;
			ev.aggregate_len = b->key_len[k];
		} else {
			/* The client copies the event into its frame at once. */
			ev.aggregate = key;
			ev.aggregate_len =
			    (uint32_t)snprintf(key, sizeof(key), "key-%llu", (unsigned long long)k);
		}
		uint64_t seq;
		int ret = sl_client_produce(cn->c, b->topic, &ev, &seq);
		if (ret == -EAGAIN) {
			cn->blocked = true;
			break;
		}
		if (ret < 0) {
			snprintf(w->err, sizeof(w->err), "connection %u: %s", cn->k,
			         sl_client_last_error(cn->c)[0] ? sl_client_last_error(cn->c)
			                                        : sl_strerror(ret));
			return ret;
		}
		cn->ts[seq & cn->mask] = (struct sl__stamp){.due = due, .sent = now};
		cn->sent++;
		if (++since == SL__CLOCK_EVERY) {
			since = 0;
			now = sl_now_ns();
		}
	}
	return 0;
}

/*
 * One service of a connection: send what it may, then one non-blocking poll
 * (writes, reads acks, runs timers). Queues it again when that freed room
 * for events it has to send now, or when its timers want it at once;
 * otherwise its fd, its timers or its next due event bring it back.
 */
static int sl__service(struct sl__worker *w, struct sl__conn *cn)
{
	int ret = sl__fill(w, cn);
	if (ret < 0)
		return ret;
	w->now = sl_now_ns();
	ret = sl_client_poll(cn->c, 0);
	if (ret < 0) {
		snprintf(w->err, sizeof(w->err), "connection %u: %s", cn->k,
		         sl_client_last_error(cn->c)[0] ? sl_client_last_error(cn->c)
		                                        : sl_strerror(ret));
		return ret;
	}
	int t = sl_client_timeout_ms(cn->c);
	cn->timer_at = t < 0 ? UINT64_MAX : w->now + (uint64_t)t * 1000000u;
	if (t == 0 || (ret > 0 && cn->blocked && cn->sent < cn->quota))
		sl__queue(w, cn);
	else if (cn->timer_at < w->timer_min)
		w->timer_min = cn->timer_at;
	return 0;
}

/* Waits up to `wait` ns for a ready fd and queues the connections behind
 * the ready ones. */
static void sl__wait(struct sl__worker *w, uint64_t wait)
{
	struct epoll_event evs[SL__EVENTS];
	struct timespec ts = {(time_t)(wait / 1000000000u), (long)(wait % 1000000000u)};
	int n;

	if (!wait) {
		n = epoll_wait(w->ep, evs, SL__EVENTS, 0);
	} else if (!w->no_pwait2) {
		/* epoll_wait's milliseconds would pace an open loop in 1 ms
		 * bursts: an event due 10 us from now would go up to 1 ms late. */
		n = epoll_pwait2(w->ep, evs, SL__EVENTS, &ts, NULL);
		if (n < 0 && (errno == ENOSYS || errno == EPERM)) {
			w->no_pwait2 = true;
			n = 0;
		}
	} else {
		struct pollfd p = {.fd = w->ep, .events = POLLIN};
		n = ppoll(&p, 1, &ts, NULL) > 0 ? epoll_wait(w->ep, evs, SL__EVENTS, 0) : 0;
	}
	for (int i = 0; i < n; i++)
		sl__queue(w, evs[i].data.ptr);
}

static void *sl__worker_run(void *arg)
{
	struct sl__worker *w = arg;
	struct sl__bench *b = w->b;
	uint64_t total = 0, answered = 0;

	for (uint32_t i = 0; i < w->n; i++) {
		struct sl__conn *cn = w->conns[i];
		total += cn->quota;
		/* Everyone once at the start: a closed loop fills its windows,
		 * every client's timers get read. */
		sl__queue(w, cn);
	}
	w->timer_min = UINT64_MAX;
	w->last_progress = sl_now_ns();
	while (answered < total) {
		uint64_t now = sl_now_ns();
		uint64_t wait = 0;
		if (!w->n_next) {
			wait = SL__TICK_NS;
			if (w->timer_min < now + wait)
				wait = w->timer_min > now ? w->timer_min - now : 0;
			uint64_t g = sl__next_own(w);
			if (g < b->events) {
				uint64_t due = sl__due(b, g);
				if (due < now + wait)
					wait = due > now ? due - now : 0;
			}
		}
		sl__wait(w, wait);

		now = sl_now_ns();
		if (b->rate > 0 && w->cursor < b->events) {
			uint64_t end = sl__due_count(b, now);
			/* Event g goes to connection g % C, owned by worker
			 * (g % C) % T: C consecutive indexes cover everyone. */
			uint64_t stop = end - w->cursor > b->conns ? w->cursor + b->conns : end;
			for (uint64_t g = w->cursor; g < stop; g++) {
				uint64_t k = g % b->conns;
				if (k % b->threads == w->idx)
					sl__queue(w, &b->cs[k]);
			}
			if (end > w->cursor)
				w->cursor = end;
		}
		if (now >= w->timer_min) {
			uint64_t min = UINT64_MAX;
			for (uint32_t i = 0; i < w->n; i++) {
				struct sl__conn *cn = w->conns[i];
				if (cn->queued)
					continue;
				if (cn->timer_at <= now)
					sl__queue(w, cn);
				else if (cn->timer_at < min)
					min = cn->timer_at;
			}
			w->timer_min = min;
		}

		struct sl__conn **run = w->next;
		uint32_t n_run = w->n_next;
		w->next = w->run;
		w->run = run;
		w->n_next = 0;
		for (uint32_t i = 0; i < n_run; i++) {
			run[i]->queued = false;
			int ret = sl__service(w, run[i]);
			if (ret < 0) {
				w->status = ret;
				goto out;
			}
		}

		now = sl_now_ns();
		if (w->n_answered != answered) {
			answered = w->n_answered;
			w->last_progress = now;
			atomic_store_explicit(&w->answered, answered, memory_order_relaxed);
		} else if (now - w->last_progress > (uint64_t)(b->timeout_s * 1e9)) {
			w->status = -SL_ETIMEOUT;
			snprintf(w->err, sizeof(w->err), "no ack for %g s", b->timeout_s);
			goto out;
		}
	}
	atomic_store_explicit(&w->answered, answered, memory_order_relaxed);
out:
	pthread_mutex_lock(&b->mu);
	b->finished++;
	if (b->finished == b->threads)
		b->end_ns = sl_now_ns();
	pthread_cond_signal(&b->cv);
	pthread_mutex_unlock(&b->mu);
	return NULL;
}

static void sl__progress(struct sl__bench *b, bool final)
{
	uint64_t done = 0;
	for (uint64_t i = 0; i < b->threads; i++)
		done += atomic_load_explicit(&b->ws[i].answered, memory_order_relaxed);
	double s = (double)(sl_now_ns() - b->start_ns) / 1e9;
	fprintf(stderr, "\r\033[Ksluice bench: %llu/%llu answered, %.1f s, %.0f events/s%s",
	        (unsigned long long)done, (unsigned long long)b->events, s,
	        s > 0 ? (double)done / s : 0.0, final ? "\n" : "");
}

/* cli/bench.h says what one measurement does. */
int sl__bench_run(struct sl__bench *b, struct sl__result *res)
{
	int status = -1;
	struct sl_hist all = {0}, all_send = {0};

	memset(res, 0, sizeof(*res));
	b->finished = 0;
	b->cs = calloc(b->conns, sizeof(*b->cs));
	b->ws = calloc(b->threads, sizeof(*b->ws));
	if (!b->cs || !b->ws) {
		fprintf(stderr, "sluice bench: out of memory\n");
		goto out;
	}
	for (uint64_t t = 0; t < b->threads; t++)
		b->ws[t].ep = -1;
	for (uint64_t t = 0; t < b->threads; t++) {
		struct sl__worker *w = &b->ws[t];
		uint64_t cap = b->conns / b->threads + 1;
		w->b = b;
		w->idx = (uint32_t)t;
		w->ep = epoll_create1(EPOLL_CLOEXEC);
		w->conns = calloc(cap, sizeof(*w->conns));
		w->run = calloc(cap, sizeof(*w->run));
		w->next = calloc(cap, sizeof(*w->next));
		if (w->ep < 0) {
			fprintf(stderr, "sluice bench: epoll: %s\n", sl_strerror(-errno));
			goto out;
		}
		if (!w->conns || !w->run || !w->next || sl_hist_init(&w->hist) < 0 ||
		    sl_hist_init(&w->hist_send) < 0) {
			fprintf(stderr, "sluice bench: out of memory\n");
			goto out;
		}
		sl_uuid_rng_seed_u64(&w->rng, b->key_seed + t);
	}
	for (uint64_t k = 0; k < b->conns; k++) {
		struct sl__conn *cn = &b->cs[k];
		struct sl__worker *w = &b->ws[k % b->threads];
		cn->k = (uint32_t)k;
		cn->quota = b->events / b->conns + (k < b->events % b->conns);
		cn->w = w;
		/* In-flight sequences span at most a window, and a connection
		 * never has more than its quota: 1000 connections of 500 events
		 * need 512 stamps each, not 8192. */
		uint64_t span = b->window < cn->quota ? b->window : cn->quota;
		uint64_t ring = 1;
		while (ring < span)
			ring *= 2;
		cn->mask = ring - 1;
		cn->ts = calloc(ring, sizeof(*cn->ts));
		if (!cn->ts) {
			fprintf(stderr, "sluice bench: out of memory\n");
			goto out;
		}
		w->conns[w->n++] = cn;
		struct sl_client_opts co = {
		    .servers = b->srv.list,
		    .idempotence_off = b->idem_off,
		    .client_name = "sluice bench",
		    .token = b->srv.token,
		    .topic = b->topic,
		    .max_inflight = (uint32_t)b->window,
		    .batch_max_events = (uint32_t)b->batch,
		    .linger_us = (uint32_t)b->linger_us,
		    .nonblocking = true,
		    .on_ack = sl__on_ack,
		    .arg = cn,
		};
		char pname[272];
		if (b->producer) {
			snprintf(pname, sizeof(pname), "%s-%llu", b->producer,
			         (unsigned long long)k);
			co.producer_name = pname; /* copied by connect */
		}
		char err[256];
		int ret = sl_client_connect(&co, &cn->c, err, sizeof(err));
		if (ret < 0) {
			fprintf(stderr, "sluice bench: connection %llu: %s\n",
			        (unsigned long long)k, err);
			goto out;
		}
		int fd = sl_client_fd(cn->c);
		struct epoll_event ev = {.events = EPOLLIN, .data.ptr = cn};
		if (fd < 0 || epoll_ctl(w->ep, EPOLL_CTL_ADD, fd, &ev) < 0) {
			fprintf(stderr, "sluice bench: connection %llu: epoll: %s\n",
			        (unsigned long long)k, sl_strerror(fd < 0 ? fd : -errno));
			goto out;
		}
	}

	bool tty = isatty(2);
	b->start_ns = sl_now_ns();
	uint64_t started = 0;
	for (; started < b->threads; started++) {
		if (pthread_create(&b->ws[started].th, NULL, sl__worker_run, &b->ws[started]) !=
		    0) {
			fprintf(stderr, "sluice bench: cannot start a thread\n");
			break;
		}
	}
	pthread_mutex_lock(&b->mu);
	while (b->finished < started) {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += 500000000;
		if (ts.tv_nsec >= 1000000000) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000;
		}
		if (pthread_cond_timedwait(&b->cv, &b->mu, &ts) == ETIMEDOUT && tty) {
			pthread_mutex_unlock(&b->mu);
			sl__progress(b, false);
			pthread_mutex_lock(&b->mu);
		}
	}
	pthread_mutex_unlock(&b->mu);
	for (uint64_t t = 0; t < started; t++)
		pthread_join(b->ws[t].th, NULL);
	if (tty)
		sl__progress(b, true);
	if (started < b->threads)
		goto out;

	if (sl_hist_init(&all) < 0 || sl_hist_init(&all_send) < 0) {
		fprintf(stderr, "sluice bench: out of memory\n");
		goto out;
	}
	for (uint64_t t = 0; t < b->threads; t++) {
		struct sl__worker *w = &b->ws[t];
		sl_hist_merge(&all, &w->hist);
		sl_hist_merge(&all_send, &w->hist_send);
		res->acked += w->acked;
		res->refused += w->refused;
		res->dropped += w->dropped;
		res->overload += w->overload;
		if (!res->err[0] && w->err[0])
			snprintf(res->err, sizeof(res->err), "%s", w->err);
	}
	for (uint64_t k = 0; k < b->conns; k++) {
		struct sl_client_stats st;
		sl_client_get_stats(b->cs[k].c, &st);
		res->reconnects += st.connects ? st.connects - 1 : 0;
		res->resent += st.resent;
		res->duplicates += st.duplicates;
		res->credit_frames += st.credit_frames;
		res->credit_waits += st.credit_waits;
		res->credit_wait_ns += st.credit_wait_ns;
	}
	res->secs = (double)(b->end_ns - b->start_ns) / 1e9;
	if (res->secs <= 0)
		res->secs = 1e-9;
	res->eps = (double)res->acked / res->secs;
	res->mbps = (double)res->acked * (double)b->size / 1e6 / res->secs;
	res->p50 = (double)sl_hist_quantile(&all, 0.50) / 1e3;
	res->p90 = (double)sl_hist_quantile(&all, 0.90) / 1e3;
	res->p99 = (double)sl_hist_quantile(&all, 0.99) / 1e3;
	res->p999 = (double)sl_hist_quantile(&all, 0.999) / 1e3;
	res->maxu = all.n ? (double)all.max / 1e3 : 0;
	res->mean = all.n ? (double)(all.sum / all.n) / 1e3 : 0;
	res->s_p50 = (double)sl_hist_quantile(&all_send, 0.50) / 1e3;
	res->s_p90 = (double)sl_hist_quantile(&all_send, 0.90) / 1e3;
	res->s_p99 = (double)sl_hist_quantile(&all_send, 0.99) / 1e3;
	res->s_p999 = (double)sl_hist_quantile(&all_send, 0.999) / 1e3;
	res->s_maxu = all_send.n ? (double)all_send.max / 1e3 : 0;
	res->s_mean = all_send.n ? (double)(all_send.sum / all_send.n) / 1e3 : 0;
	status = 0;
out:
	sl_hist_free(&all);
	sl_hist_free(&all_send);
	for (uint64_t k = 0; b->cs && k < b->conns; k++) {
		sl_client_close(b->cs[k].c);
		free(b->cs[k].ts);
	}
	for (uint64_t t = 0; b->ws && t < b->threads; t++) {
		struct sl__worker *w = &b->ws[t];
		if (w->ep >= 0)
			close(w->ep);
		free(w->conns);
		free(w->run);
		free(w->next);
		sl_hist_free(&w->hist);
		sl_hist_free(&w->hist_send);
	}
	free(b->cs);
	free(b->ws);
	b->cs = NULL;
	b->ws = NULL;
	return status;
}
