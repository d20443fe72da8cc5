/*
 * server: one sluiced instance — its topics, its reactors (one pinned thread
 * per core) and the rings between them — built from options, run until told
 * to stop, then drained.
 *
 * Ownership: sl_server_create() returns a server the caller frees with
 * sl_server_destroy() after sl_server_wait() returned. Threads:
 * create/start/wait/destroy from one control thread; sl_server_stop() from
 * any thread and from a signal handler (it only writes to eventfds).
 */
#ifndef SL_SERVER_H
#define SL_SERVER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "base/base.h"
#include "net/net.h"
#include "topic/topic.h"

struct sl_reactor;
struct sl_reader;
struct sl_ring;

struct sl_server_opts {
	const char *listen_native;     /* "host:port"; port 0 picks one */
	const char *data_dir;          /* partition logs live under it */
	uint32_t n_reactors;           /* 0: one per online CPU */
	uint32_t max_connections;
	uint32_t max_frame_bytes;
	uint32_t handshake_timeout_ms;
	uint32_t idle_timeout_ms;
	uint32_t drain_timeout_ms;     /* give up on clients that do not read */
	const struct sl_topic_spec *topics;
	uint32_t n_topics;
	bool pin;                      /* pin reactor i to CPU i % ncpu */
};

struct sl_server {
	struct sl_server_opts opts;
	struct sl_topics topics;
	struct sl_addr native_addr;    /* with the port actually bound */
	uint32_t n;                    /* reactors */
	struct sl_reactor **reactors;
	/* rings[i * n + j] carries blocks from reactor i to reactor j (i != j) */
	struct sl_ring **rings;
	struct sl_reader *reader;      /* serves Fetch off the reactors */
	/* Cross-reactor counters, each on its own cache line. C11 atomics
	 * rather than ck_pr: they are cold, and TSan understands them. */
	struct {
		_Atomic uint32_t value;
	} SL_CACHE_ALIGNED conns;     /* open connections, all reactors */
	struct {
		_Atomic uint32_t value;
	} SL_CACHE_ALIGNED input_done; /* reactors that stopped reading */
	struct {
		_Atomic uint32_t value;
	} SL_CACHE_ALIGNED stopping;  /* set once by sl_server_stop() */
	struct sl_producers *producers; /* ids and epochs, shared by the reactors */
	pthread_barrier_t barrier;     /* reactors meet once their rings exist */
	int lock_fd;                   /* flock on data_dir/.lock */
	bool barrier_ok;
};

/* Opens the data folder (locked against a second server), recovers every
 * partition log, binds the listening sockets. On failure `err` says why. */
int sl_server_create(const struct sl_server_opts *opts, struct sl_server **out, char *err,
		     size_t errlen);
/* Starts the reactor threads. */
int sl_server_start(struct sl_server *srv);
/* Asks every reactor to drain and exit; async-signal-safe, idempotent. */
void sl_server_stop(struct sl_server *srv);
/* Joins the reactors; 0 when all drained cleanly. */
int sl_server_wait(struct sl_server *srv);
void sl_server_destroy(struct sl_server *srv);

/* The native port actually bound (useful with port 0). */
uint16_t sl_server_native_port(const struct sl_server *srv);

#endif
