/*
 * sluice bench: the end-to-end load generator.
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

#include "base/base.h"
#include "cli/cli.h"
#include "json/json.h"
#include "sluice/client.h"

/* The server's default max_connections; each costs two fds here. */
#define SL__MAX_CONNS 10000
/* Default threads: one per this many connections, at most one per CPU. One
 * thread drives a few hundred connections' acks without falling behind the
 * server; more threads on the server's cores would only take its CPU. */
#define SL__CONNS_PER_THREAD 256
/* Upper bound of one wait: timeouts and the progress line are checked at
 * least this often. */
#define SL__TICK_NS (100ull * 1000000u)
/* While filling a window the send stamp is re-read every this many events:
 * a whole window (8192 events) takes about a millisecond to encode, one
 * clock read per event would cost more than a tenth of that. */
#define SL__CLOCK_EVERY 64
/* Ready fds taken per epoll wait; more stay ready for the next turn. */
#define SL__EVENTS 512

struct sl__bench;
struct sl__worker;

/* When one event was due and when the client library took it. */
struct sl__stamp {
	uint64_t due;
	uint64_t sent;
};

struct sl__conn {
	struct sl_client *c;
	uint32_t k;        /* global connection index */
	uint64_t quota;    /* events this connection sends */
	uint64_t sent;
	uint64_t answered;
	uint64_t timer_at; /* when the client's timers want a poll; UINT64_MAX: never */
	bool blocked;      /* window full at the last fill */
	bool queued;       /* in the worker's list for the next service round */
	struct sl__stamp *ts; /* per sequence & mask */
	uint64_t mask;
	struct sl__worker *w;
};

struct sl__worker {
	struct sl__bench *b;
	uint32_t idx;
	struct sl__conn **conns;
	uint32_t n;
	/* Connections to service: `next` collects them (each at most once,
	 * see sl__conn.queued), `run` is the round being serviced. */
	struct sl__conn **run, **next;
	uint32_t n_next;
	int ep;
	bool no_pwait2;    /* the kernel lacks epoll_pwait2: ppoll the set */
	/* Open loop: every event below this global index was due at the last
	 * look, and its connection was queued then. */
	uint64_t cursor;
	/* No client timer is due before this (it may be early, never late). */
	uint64_t timer_min;
	struct sl_hist hist;      /* from the intended time */
	struct sl_hist hist_send; /* from the library taking the event */
	struct sl_uuid_rng rng;
	uint64_t now;      /* the clock for callbacks, read before each poll */
	uint64_t acked, refused, dropped, overload, n_answered;
	uint64_t last_progress;
	int status;
	char err[256];
	pthread_t th;
	/* Read by the main thread for the progress line: published once per
	 * turn, not per event. */
	_Atomic uint64_t answered SL_CACHE_ALIGNED;
};

enum sl__idem { SL__IDEM_ON, SL__IDEM_OFF, SL__IDEM_COMPARE };

struct sl__bench {
	uint64_t events, size, conns, keys, threads, window, batch, linger_us;
	double rate;
	double timeout_s;
	const char *topic;
	struct sl_cli_server srv;
	enum sl__idem idem;
	bool sweep;
	const char *query;          /* --query PROJECTION/KEY, or NULL */
	uint64_t query_threads;
	struct sl_cli_server http;  /* --http, for --query */

	char *data;
	char *key_text;
	uint8_t *key_len;
	uint64_t key_seed; /* worker t's aggregate choices: seed key_seed + t */

	/* One measurement (sl__bench_run): */
	bool idem_off;
	uint64_t start_ns;
	uint64_t end_ns;

	struct sl__conn *cs;
	struct sl__worker *ws;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	uint32_t finished;
};

/* What one measurement found. */
struct sl__result {
	uint64_t acked, refused, reconnects, resent, duplicates;
	uint64_t dropped, overload;  /* acked but shed; refused with ERR_OVERLOAD */
	uint64_t credit_frames, credit_waits, credit_wait_ns;
	double secs, eps, mbps, p50, p90, p99, p999, maxu, mean;
	/* The same latencies from the library taking each event. */
	double s_p50, s_p90, s_p99, s_p999, s_maxu, s_mean;
	char err[256];
};

#define SL__KEY_STRIDE 24

static void sl__bench_usage(FILE *out)
{
	fprintf(out,
		"usage: sluice bench --events N --size BYTES --connections C [--rate R | --sweep]\n"
		"                    [--topic T] [--keys K] [--threads T] [--window W] [--batch B]\n"
		"                    [--linger US] [--timeout S] [--idempotence on|off|compare]\n"
		"                    [--server HOST:PORT]\n"
		"\n"
		"The end-to-end load generator: produces N events of BYTES data bytes each over\n"
		"C connections and measures throughput and ack latency. Every event has a\n"
		"unique id (a random v4 UUID), an aggregate drawn from K keys, and as data a\n"
		"JSON string of exactly BYTES bytes (BYTES >= 2). Each connection is an\n"
		"idempotent producer (unless --idempotence off) that reconnects and resends\n"
		"across server restarts.\n"
		"\n"
		"  --events N       events in total (required)\n"
		"  --size BYTES     data bytes per event (required)\n"
		"  --connections C  connections (required, at most 10000), events spread\n"
		"                   round robin; the fd limit is raised to the hard limit\n"
		"                   when C needs it\n"
		"  --rate R         open loop: R events/s in total, latency measured from each\n"
		"                   event's intended send time (start + i/R); a run that falls\n"
		"                   behind sends as fast as the window (the server's credits)\n"
		"                   allows, queueing nothing. Without it the loop is closed\n"
		"                   (as fast as the in-flight window allows) and latency is\n"
		"                   measured from the actual send\n"
		"  --sweep          a closed-loop run measures the peak events/s, then open-loop\n"
		"                   runs at 50, 90, 100 and 200%% of that peak, each of N events\n"
		"                   on fresh connections with the same options; a table on\n"
		"                   stderr, one JSON line per run on stdout\n"
		"  --topic T        topic (default: events)\n"
		"  --keys K         distinct aggregates (default 1024)\n"
		"  --threads T      worker threads driving the connections (default: one per\n"
		"                   256 connections, at most one per CPU)\n"
		"  --window W       max in-flight events per connection (default 8192; the\n"
		"                   server's credits may lower it)\n"
		"  --batch B        max events per Produce frame (default 256)\n"
		"  --linger US      let a partial batch wait up to US microseconds for more\n"
		"                   events before it is sent (default 0: send at once)\n"
		"  --timeout S      give up after S seconds without any ack (default 60)\n"
		"  --idempotence M  on (default): exactly-once producers, the server tracks\n"
		"                   their sequences; off: the server stores every event it\n"
		"                   is sent, resends again (at-least-once); compare: the whole\n"
		"                   measurement four times, off, on, on, off (so a drift over\n"
		"                   the runs weighs on both alike), on fresh connections with\n"
		"                   the same options and the same keys, and what on costs\n"
		"  --query P/K      while producing, query projection P for key K (URL-escaped)\n"
		"                   in a closed loop on the HTTP port: answered/s and latency\n"
		"  --query-threads N  query threads, one keep-alive connection each (default 1)\n"
		"  --http H:P       HTTP port for --query (default 127.0.0.1:7480, or $SLUICE_HTTP)\n"
		"  --server H:P     server (default " SL_CLI_DEFAULT_SERVER ", or $SLUICE_SERVER)\n"
		"\n"
		"Prints a live progress line on stderr when it is a terminal, a human summary\n"
		"on stderr at the end, then one JSON line on stdout with events, acked,\n"
		"refused, connections, threads, size, rate, idempotence, seconds,\n"
		"events_per_s, mb_per_s (data bytes, 1 MB = 10^6 B), p50_us, p90_us, p99_us,\n"
		"p999_us, max_us, mean_us, latency_from (intended with --rate, else send),\n"
		"send_p50_us, send_p90_us, send_p99_us, send_p999_us, send_max_us,\n"
		"send_mean_us (latency from the moment the client library took the event:\n"
		"what the server's queue costs), reconnects, resent, duplicates, dropped\n"
		"(acked but shed by the topic's overload policy), rejected_overload (of\n"
		"refused: refused with ERR_OVERLOAD), credit_frames (Credit frames received),\n"
		"credit_waits and credit_wait_ms (times and ms batches waited for credits),\n"
		"summed over the connections.\n"
		"With compare: a summary per run, then the line of the idempotent runs (their\n"
		"combined events/s, the latencies of the slower one), plus\n"
		"events_per_s_idempotence_off, p99_us_idempotence_off and\n"
		"idempotence_overhead_pct (100 * (off - on) / off events/s: positive when\n"
		"idempotence costs throughput).\n"
		"With --sweep: one line per run, in order, each with sweep_pct (0 for the\n"
		"closed-loop run that measured the peak, then 50, 90, 100, 200) and\n"
		"peak_events_per_s; rate is the run's target.\n"
		"Exit status 0 when every event (of every run) was acked.\n");
}

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
		uint64_t k = sl_uuid_rng_next(&w->rng) % b->keys;
		ev.aggregate = b->key_text + k * SL__KEY_STRIDE;
		ev.aggregate_len = b->key_len[k];
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

static int sl__bench_args(int argc, char **argv, struct sl__bench *b)
{
	static const struct option opts[] = {
		{"events", required_argument, NULL, 'n'},
		{"size", required_argument, NULL, 'z'},
		{"connections", required_argument, NULL, 'c'},
		{"rate", required_argument, NULL, 'r'},
		{"topic", required_argument, NULL, 't'},
		{"keys", required_argument, NULL, 'k'},
		{"threads", required_argument, NULL, 'T'},
		{"window", required_argument, NULL, 'w'},
		{"batch", required_argument, NULL, 'b'},
		{"linger", required_argument, NULL, 'l'},
		{"timeout", required_argument, NULL, 'o'},
		{"idempotence", required_argument, NULL, 'i'},
		{"server", required_argument, NULL, 's'},
		{"query", required_argument, NULL, 'q'},
		{"query-threads", required_argument, NULL, 'Q'},
		{"http", required_argument, NULL, 'H'},
		{"sweep", no_argument, NULL, 'S'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	int opt;
	bool has_n = false, has_size = false, has_c = false;

	optind = 1;
	while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		const char *name = NULL;
		int bad = 0;
		switch (opt) {
		case 'n':
			name = "--events";
			bad = sl_cli_parse_u64(optarg, 1, UINT64_MAX / 2, &b->events);
			has_n = true;
			break;
		case 'z':
			name = "--size";
			bad = sl_cli_parse_u64(optarg, 0, 1000000, &b->size);
			has_size = true;
			break;
		case 'c':
			name = "--connections";
			bad = sl_cli_parse_u64(optarg, 1, SL__MAX_CONNS, &b->conns);
			has_c = true;
			break;
		case 'r':
			name = "--rate";
			bad = sl_cli_parse_double(optarg, 1e-3, 1e9, &b->rate);
			break;
		case 't':
			b->topic = optarg;
			break;
		case 'k':
			name = "--keys";
			bad = sl_cli_parse_u64(optarg, 1, 1u << 24, &b->keys);
			break;
		case 'T':
			name = "--threads";
			bad = sl_cli_parse_u64(optarg, 1, 256, &b->threads);
			break;
		case 'w':
			name = "--window";
			bad = sl_cli_parse_u64(optarg, 1, 1u << 20, &b->window);
			break;
		case 'b':
			name = "--batch";
			bad = sl_cli_parse_u64(optarg, 1, 65536, &b->batch);
			break;
		case 'l':
			name = "--linger";
			bad = sl_cli_parse_u64(optarg, 0, 1000000, &b->linger_us);
			break;
		case 'o':
			name = "--timeout";
			bad = sl_cli_parse_double(optarg, 0.001, 1e7, &b->timeout_s);
			break;
		case 'i':
			name = "--idempotence";
			if (strcmp(optarg, "on") == 0)
				b->idem = SL__IDEM_ON;
			else if (strcmp(optarg, "off") == 0)
				b->idem = SL__IDEM_OFF;
			else if (strcmp(optarg, "compare") == 0)
				b->idem = SL__IDEM_COMPARE;
			else
				bad = -EINVAL;
			break;
		case 's':
			name = "--server";
			bad = sl_cli_server_parse(optarg, &b->srv);
			break;
		case 'q':
			name = "--query";
			/* PROJECTION/KEY, as it goes into the URL */
			bad = strchr(optarg, '/') && optarg[0] != '/' && strlen(optarg) < 1024
				      ? 0
				      : -EINVAL;
			b->query = optarg;
			break;
		case 'Q':
			name = "--query-threads";
			bad = sl_cli_parse_u64(optarg, 1, 64, &b->query_threads);
			break;
		case 'H':
			name = "--http";
			bad = sl_cli_server_parse(optarg, &b->http);
			break;
		case 'S':
			b->sweep = true;
			break;
		case 'h':
			sl__bench_usage(stdout);
			return 1;
		default:
			sl__bench_usage(stderr);
			return -2;
		}
		if (bad < 0) {
			fprintf(stderr, "sluice bench: %s: bad value '%s'%s\n", name, optarg,
				opt == 'i' ? " (expected on, off or compare)" : "");
			return -2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "sluice bench: unexpected argument '%s'\n", argv[optind]);
		return -2;
	}
	if (!has_n || !has_size || !has_c) {
		fprintf(stderr, "sluice bench: --events, --size and --connections are required\n");
		sl__bench_usage(stderr);
		return -2;
	}
	if (b->sweep && b->rate > 0) {
		fprintf(stderr, "sluice bench: --sweep chooses the rates itself: no --rate\n");
		return -2;
	}
	if (!b->threads) {
		long cpus = sysconf(_SC_NPROCESSORS_ONLN);
		b->threads = (b->conns + SL__CONNS_PER_THREAD - 1) / SL__CONNS_PER_THREAD;
		if (cpus > 0 && b->threads > (uint64_t)cpus)
			b->threads = (uint64_t)cpus;
	}
	if (b->threads > b->conns)
		b->threads = b->conns;
	return 0;
}

/*
 * One measurement: connects b->conns clients (idempotence_off as b->idem_off
 * says), drives them until every event is answered or a worker gives up,
 * and fills *res. 0 when it ran (res->acked says how well), <0 when it could
 * not start (the reason is printed).
 */
static int sl__bench_run(struct sl__bench *b, struct sl__result *res)
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
			.host = b->srv.host,
			.port = b->srv.port,
			.idempotence_off = b->idem_off,
			.client_name = "sluice bench",
			.topic = b->topic,
			.max_inflight = (uint32_t)b->window,
			.batch_max_events = (uint32_t)b->batch,
			.linger_us = (uint32_t)b->linger_us,
			.nonblocking = true,
			.on_ack = sl__on_ack,
			.arg = cn,
		};
		char err[256];
		int ret = sl_client_connect(&co, &cn->c, err, sizeof(err));
		if (ret < 0) {
			fprintf(stderr, "sluice bench: connection %llu: %s\n", (unsigned long long)k,
				err);
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
		if (pthread_create(&b->ws[started].th, NULL, sl__worker_run, &b->ws[started]) != 0) {
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

static void sl__summary(const struct sl__bench *b, const struct sl__result *r, bool idem_off)
{
	fprintf(stderr, "sluice bench: %llu events of %llu B data over %llu connection%s, %llu thread%s, "
			"idempotence %s, ",
		(unsigned long long)b->events, (unsigned long long)b->size,
		(unsigned long long)b->conns, b->conns == 1 ? "" : "s",
		(unsigned long long)b->threads, b->threads == 1 ? "" : "s", idem_off ? "off" : "on");
	if (b->rate > 0)
		fprintf(stderr, "open loop at %.0f events/s\n", b->rate);
	else
		fprintf(stderr, "closed loop (window %llu)\n", (unsigned long long)b->window);
	fprintf(stderr, "  acked %llu, refused %llu in %.3f s: %.0f events/s, %.1f MB/s\n",
		(unsigned long long)r->acked, (unsigned long long)r->refused, r->secs, r->eps,
		r->mbps);
	fprintf(stderr, "  latency from %s: p50 %.0f us, p90 %.0f us, p99 %.0f us, p99.9 %.0f us, "
			"max %.0f us, mean %.0f us\n",
		b->rate > 0 ? "intended" : "send", r->p50, r->p90, r->p99, r->p999, r->maxu, r->mean);
	if (b->rate > 0)
		fprintf(stderr, "  latency from send: p50 %.0f us, p90 %.0f us, p99 %.0f us, "
				"p99.9 %.0f us, max %.0f us, mean %.0f us\n",
			r->s_p50, r->s_p90, r->s_p99, r->s_p999, r->s_maxu, r->s_mean);
	fprintf(stderr, "  overload: dropped %llu, rejected %llu; credits: %llu frames, "
			"%llu waits, %.1f ms waited\n",
		(unsigned long long)r->dropped, (unsigned long long)r->overload,
		(unsigned long long)r->credit_frames, (unsigned long long)r->credit_waits,
		(double)r->credit_wait_ns / 1e6);
	if (r->reconnects || r->resent || r->duplicates)
		fprintf(stderr, "  reconnects %llu, events resent %llu, answered as duplicates %llu\n",
			(unsigned long long)r->reconnects, (unsigned long long)r->resent,
			(unsigned long long)r->duplicates);
	if (r->err[0])
		fprintf(stderr, "  error: %s\n", r->err);
}

/* The JSON line's fields up to (not including) its closing brace. */
static void sl__json(const struct sl__bench *b, const struct sl__result *r, bool idem_off)
{
	printf("{\"events\":%llu,\"acked\":%llu,\"refused\":%llu,\"connections\":%llu,"
	       "\"threads\":%llu,\"size\":%llu,\"rate\":%.0f,\"idempotence\":\"%s\","
	       "\"seconds\":%.6f,\"events_per_s\":%.1f,\"mb_per_s\":%.3f,\"p50_us\":%.1f,"
	       "\"p90_us\":%.1f,\"p99_us\":%.1f,\"p999_us\":%.1f,\"max_us\":%.1f,\"mean_us\":%.1f,"
	       "\"latency_from\":\"%s\",\"reconnects\":%llu,\"resent\":%llu,\"duplicates\":%llu",
	       (unsigned long long)b->events, (unsigned long long)r->acked,
	       (unsigned long long)r->refused, (unsigned long long)b->conns,
	       (unsigned long long)b->threads, (unsigned long long)b->size, b->rate,
	       b->idem == SL__IDEM_COMPARE ? "compare" : idem_off ? "off" : "on", r->secs, r->eps,
	       r->mbps, r->p50, r->p90, r->p99, r->p999, r->maxu, r->mean,
	       b->rate > 0 ? "intended" : "send", (unsigned long long)r->reconnects,
	       (unsigned long long)r->resent, (unsigned long long)r->duplicates);
	printf(",\"send_p50_us\":%.1f,\"send_p90_us\":%.1f,\"send_p99_us\":%.1f,"
	       "\"send_p999_us\":%.1f,\"send_max_us\":%.1f,\"send_mean_us\":%.1f,"
	       "\"dropped\":%llu,\"rejected_overload\":%llu,\"credit_frames\":%llu,"
	       "\"credit_waits\":%llu,\"credit_wait_ms\":%.3f",
	       r->s_p50, r->s_p90, r->s_p99, r->s_p999, r->s_maxu, r->s_mean,
	       (unsigned long long)r->dropped, (unsigned long long)r->overload,
	       (unsigned long long)r->credit_frames, (unsigned long long)r->credit_waits,
	       (double)r->credit_wait_ns / 1e6);
}

/* Microseconds in a table cell: "-" for a figure that does not apply. */
static const char *sl__cell(char *buf, size_t len, bool on, double us)
{
	if (!on)
		return "-";
	snprintf(buf, len, "%.0f", us);
	return buf;
}

/*
 * --sweep: the peak from a closed loop, then open loops at fractions of it.
 * Every run is a full measurement on fresh connections, so a run that ends
 * in trouble (events refused or timed out) leaves the next one a clean
 * start; only a failed peak run stops the sweep (it has no rate to offer).
 * Exit status as sl_cli_bench's.
 */
static int sl__bench_sweep(struct sl__bench *b)
{
	static const int pcts[] = {0, 50, 90, 100, 200};
	enum { N = sizeof(pcts) / sizeof(pcts[0]) };
	struct sl__result runs[N];
	double rates[N] = {0};
	int done = 0, status = 0;
	double peak = 0;

	memset(runs, 0, sizeof(runs));
	for (; done < N; done++) {
		b->rate = pcts[done] ? peak * pcts[done] / 100.0 : 0;
		rates[done] = b->rate;
		if (sl__bench_run(b, &runs[done]) < 0)
			return 1;
		struct sl__result *r = &runs[done];
		if (!pcts[done])
			peak = r->eps;
		sl__summary(b, r, b->idem_off);
		sl__json(b, r, b->idem_off);
		printf(",\"sweep_pct\":%d,\"peak_events_per_s\":%.1f}\n", pcts[done], peak);
		fflush(stdout);
		if (r->acked != b->events)
			status = 1;
		if (!pcts[done] && (r->acked != b->events || peak < 1e-3)) {
			fprintf(stderr, "sluice bench: the closed-loop run did not complete: no peak "
					"to sweep\n");
			done++;
			break;
		}
	}
	b->rate = 0;

	char c[6][24];
	fprintf(stderr, "\nsluice bench --sweep: %llu events of %llu B over %llu connection%s, "
			"peak %.0f events/s (closed loop); latencies in us\n",
		(unsigned long long)b->events, (unsigned long long)b->size,
		(unsigned long long)b->conns, b->conns == 1 ? "" : "s", peak);
	fprintf(stderr, "%6s %10s %10s | %27s | %27s | %8s %8s %8s\n", "", "", "",
		"from intended send time", "from actual send", "", "", "credit");
	fprintf(stderr, "%6s %10s %10s | %8s %8s %9s | %8s %8s %9s | %8s %8s %8s\n", "load",
		"target/s", "events/s", "p50", "p99", "p99.9", "p50", "p99", "p99.9", "dropped",
		"rejected", "waits");
	for (int i = 0; i < done; i++) {
		const struct sl__result *r = &runs[i];
		char load[16], target[24];
		bool open = pcts[i] > 0;
		if (open) {
			snprintf(load, sizeof(load), "%d%%", pcts[i]);
			snprintf(target, sizeof(target), "%.0f", rates[i]);
		} else {
			snprintf(load, sizeof(load), "peak");
			snprintf(target, sizeof(target), "-");
		}
		fprintf(stderr, "%6s %10s %10.0f | %8s %8s %9s | %8.0f %8.0f %9.0f | %8llu %8llu %8llu\n",
			load, target, r->eps, sl__cell(c[0], sizeof(c[0]), open, r->p50),
			sl__cell(c[1], sizeof(c[1]), open, r->p99),
			sl__cell(c[2], sizeof(c[2]), open, r->p999), r->s_p50, r->s_p99, r->s_p999,
			(unsigned long long)r->dropped, (unsigned long long)r->overload,
			(unsigned long long)r->credit_waits);
	}
	return status;
}

int sl_cli_bench(int argc, char **argv)
{
	struct sl__bench b = {
		.keys = 1024, .window = 8192, .batch = 256, .timeout_s = 60,
		.topic = "events", .idem = SL__IDEM_ON,
	};
	struct sl__result on = {0}, off = {0};
	int status = 1;

	if (sl_cli_server_default(&b.srv) < 0) {
		fprintf(stderr, "sluice bench: SLUICE_SERVER: expected HOST:PORT\n");
		return 2;
	}
	const char *hv = getenv("SLUICE_HTTP");
	if (sl_cli_server_parse(hv && *hv ? hv : "127.0.0.1:7480", &b.http) < 0) {
		fprintf(stderr, "sluice bench: SLUICE_HTTP: expected HOST:PORT\n");
		return 2;
	}
	b.query_threads = 1;
	int r = sl__bench_args(argc, argv, &b);
	if (r)
		return r > 0 ? 0 : 2;
	if (b.query && b.idem == SL__IDEM_COMPARE) {
		fprintf(stderr, "sluice bench: --query and --idempotence compare do not go together\n");
		return 2;
	}
	if (b.sweep && (b.query || b.idem == SL__IDEM_COMPARE)) {
		fprintf(stderr, "sluice bench: --sweep goes with neither --query nor "
				"--idempotence compare\n");
		return 2;
	}
	/* Each connection holds a socket and its client's epoll fd; the rest
	 * is stdio, the workers' epoll sets and the query connections. */
	uint64_t need = 2 * b.conns + b.threads + b.query_threads + 32, limit = 0;
	if (sl_cli_nofile_reserve(need, &limit) < 0) {
		fprintf(stderr, "sluice bench: %llu connections need about %llu file descriptors; "
				"the limit is %llu (raise ulimit -Hn)\n",
			(unsigned long long)b.conns, (unsigned long long)need,
			(unsigned long long)limit);
		return 2;
	}

	pthread_mutex_init(&b.mu, NULL);
	pthread_cond_init(&b.cv, NULL);
	b.data = malloc(b.size ? b.size : 1);
	b.key_text = malloc(b.keys * SL__KEY_STRIDE);
	b.key_len = malloc(b.keys);
	struct sl_uuid_rng seeder;
	if (!b.data || !b.key_text || !b.key_len || sl_uuid_rng_seed(&seeder) < 0) {
		fprintf(stderr, "sluice bench: out of memory or entropy\n");
		goto out;
	}
	b.key_seed = sl_uuid_rng_next(&seeder);
	memset(b.data, 'x', b.size);
	if (b.size >= 2)
		b.data[0] = b.data[b.size - 1] = '"';
	for (uint64_t k = 0; k < b.keys; k++)
		b.key_len[k] = (uint8_t)snprintf(b.key_text + k * SL__KEY_STRIDE, SL__KEY_STRIDE,
						 "key-%llu", (unsigned long long)k);

	if (b.sweep) {
		b.idem_off = b.idem == SL__IDEM_OFF;
		status = sl__bench_sweep(&b);
		goto out;
	}
	if (b.idem != SL__IDEM_COMPARE) {
		struct sl__result *one = b.idem == SL__IDEM_OFF ? &off : &on;
		struct sl_cli_qload *ql = NULL;
		struct sl_cli_qload_result qr;
		b.idem_off = b.idem == SL__IDEM_OFF;
		if (b.query && sl_cli_qload_start(&b.http, b.query, (uint32_t)b.query_threads,
						  &ql) < 0) {
			fprintf(stderr, "sluice bench: --query: cannot start the query threads\n");
			goto out;
		}
		int rr = sl__bench_run(&b, one);
		if (ql)
			sl_cli_qload_stop(ql, &qr);
		if (rr < 0)
			goto out;
		sl__summary(&b, one, b.idem_off);
		if (ql)
			fprintf(stderr,
				"  queries (%s, %llu thread%s): %llu answered, %.0f/s, p50 %.0f us, "
				"p99 %.0f us, p99.9 %.0f us, %llu errors%s%s\n",
				b.query, (unsigned long long)b.query_threads,
				b.query_threads == 1 ? "" : "s", (unsigned long long)qr.queries, qr.qps,
				qr.p50, qr.p99, qr.p999, (unsigned long long)qr.errors,
				qr.errors ? ": " : "", qr.err);
		sl__json(&b, one, b.idem_off);
		if (ql)
			printf(",\"queries\":%llu,\"queries_per_s\":%.1f,\"query_p50_us\":%.1f,"
			       "\"query_p99_us\":%.1f,\"query_p999_us\":%.1f,\"query_errors\":%llu",
			       (unsigned long long)qr.queries, qr.qps, qr.p50, qr.p99, qr.p999,
			       (unsigned long long)qr.errors);
		printf("}\n");
		status = one->acked == b.events ? 0 : 1;
		goto out;
	}
	/*
	 * Compare: four runs, off, on, on, off, each of N events. Run order
	 * alone moved one off/on pair by 5-13% with identical work on both
	 * sides (the log grows, the page cache fills, the machine warms); in
	 * this ABBA order a drift that is linear over the runs weighs on both
	 * modes alike. Each mode's events/s is 2N over its two runs' seconds;
	 * its latencies are those of its slower run (the larger p99).
	 */
	static const bool order[4] = {true, false, false, true};
	struct sl__result runs[4];
	double secs_on = 0, secs_off = 0;
	memset(runs, 0, sizeof(runs));
	for (int i = 0; i < 4; i++) {
		b.idem_off = order[i];
		if (sl__bench_run(&b, &runs[i]) < 0)
			goto out;
		sl__summary(&b, &runs[i], order[i]);
		if (runs[i].acked != b.events) {
			/* Later runs would measure against a server in trouble. */
			fprintf(stderr, "sluice bench: run %d of the comparison did not complete: "
					"not comparing\n", i + 1);
			goto out;
		}
		*(order[i] ? &secs_off : &secs_on) += runs[i].secs;
	}
	on = runs[1].p99 >= runs[2].p99 ? runs[1] : runs[2];
	off = runs[0].p99 >= runs[3].p99 ? runs[0] : runs[3];
	on.secs = secs_on;
	on.eps = secs_on > 0 ? 2.0 * (double)b.events / secs_on : 0;
	on.mbps = on.eps * (double)b.size / 1e6;
	off.eps = secs_off > 0 ? 2.0 * (double)b.events / secs_off : 0;
	double pct = off.eps > 0 ? 100.0 * (off.eps - on.eps) / off.eps : 0;
	fprintf(stderr, "sluice bench: idempotence on %.0f events/s, off %.0f events/s "
			"(runs off, on, on, off): overhead %.1f%% (negative: on was faster); "
			"p99 %.0f us on, %.0f us off\n",
		on.eps, off.eps, pct, on.p99, off.p99);
	sl__json(&b, &on, false);
	printf(",\"events_per_s_idempotence_off\":%.1f,\"p99_us_idempotence_off\":%.1f,"
	       "\"idempotence_overhead_pct\":%.2f",
	       off.eps, off.p99, pct);
	printf("}\n");
	status = on.acked == b.events ? 0 : 1;
out:
	fflush(stdout);
	free(b.data);
	free(b.key_text);
	free(b.key_len);
	pthread_mutex_destroy(&b.mu);
	pthread_cond_destroy(&b.cv);
	return status;
}
