/*
 * cli/bench.h: what `sluice bench`'s two files share: the run's settings
 * (struct sl__bench), its workers and connections, and one measurement's
 * result. bench_load.c is the load generator (workers, connections, the
 * latency stamps; one measurement); bench.c parses the options, reports
 * (summary, JSON) and runs the sweep and the idempotence comparison.
 *
 * Ownership: sl__bench_run allocates the connections and workers of one
 * measurement and frees them before it returns. Threads: the main thread
 * calls sl__bench_run; it starts and joins the workers.
 */
#ifndef SL_CLI_BENCH_H
#define SL_CLI_BENCH_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "base/base.h"
#include "cli/cli.h"
#include "sluice/client.h"
#include "json/json.h"

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
	uint32_t k;     /* global connection index */
	uint64_t quota; /* events this connection sends */
	uint64_t sent;
	uint64_t answered;
	uint64_t timer_at;    /* when the client's timers want a poll; UINT64_MAX: never */
	bool blocked;         /* window full at the last fill */
	bool queued;          /* in the worker's list for the next service round */
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
	bool no_pwait2; /* the kernel lacks epoll_pwait2: ppoll the set */
	/* Open loop: every event below this global index was due at the last
	 * look, and its connection was queued then. */
	uint64_t cursor;
	/* No client timer is due before this (it may be early, never late). */
	uint64_t timer_min;
	struct sl_hist hist;      /* from the intended time */
	struct sl_hist hist_send; /* from the library taking the event */
	struct sl_uuid_rng rng;
	uint64_t now; /* the clock for callbacks, read before each poll */
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
	bool sequential_keys;   /* --sequential-keys */
	const char *query;      /* --query PROJECTION/KEY, or NULL */
	const char *token_file; /* --token-file, or NULL */
	const char *producer;   /* --producer PREFIX: connection i is PREFIX-i */
	uint64_t query_threads;
	struct sl_cli_server http; /* --http, for --query */

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
	uint64_t dropped, overload; /* acked but shed; refused with ERR_OVERLOAD */
	uint64_t credit_frames, credit_waits, credit_wait_ns;
	double secs, eps, mbps, p50, p90, p99, p999, maxu, mean;
	/* The same latencies from the library taking each event. */
	double s_p50, s_p90, s_p99, s_p999, s_maxu, s_mean;
	char err[256];
};

#define SL__KEY_STRIDE 24
/* Keys written once beforehand up to this many (384 MiB); past it, per
 * event. */
#define SL__KEYS_TABLE_MAX (1u << 24)

/*
 * One measurement: connects b->conns clients (idempotence_off as b->idem_off
 * says), drives them until every event is answered or a worker gives up,
 * and fills *res. 0 when it ran (res->acked says how well), <0 when it could
 * not start (the reason is printed).
 */
int sl__bench_run(struct sl__bench *b, struct sl__result *res);

#endif
