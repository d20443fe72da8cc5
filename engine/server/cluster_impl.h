/*
 * A node's cluster state, shared by server/cluster.c (create, the cluster
 * thread's callbacks, the ISR keeper, start and stop) and
 * server/cluster_http.c (what HTTP threads read of it). Internal to
 * engine/server.
 *
 * Ownership: the server's (srv->cl), made at create, freed at destroy.
 * Threads: set before the threads start; `c` and `ctl` are published with
 * release once they exist (HTTP threads load them with acquire and may see
 * NULL); `stop` is the stop flag every thread reads.
 */
#ifndef SL_SERVER_CLUSTER_IMPL_H
#define SL_SERVER_CLUSTER_IMPL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "base/base.h"
#include "server/server.h"

/* Replication states of topics created at runtime, one array each. */
struct sl__rrepls {
	struct sl_prepl *v;
	uint32_t n;
	struct sl__rrepls *next;
};

struct sl_srvcluster {
	struct sl_server *srv;
	struct sl_cluster *_Atomic c;
	struct sl_fetchers fetchers;
	char token[512];
	struct sl_prepl *repls; /* one per partition of the topics at create */
	uint32_t n_repls;
	struct sl__rrepls *rrepls; /* topics created at runtime (admin calls) */
	bool unlisted_said;        /* admin thread: sl__topics_sync's note */
	struct sl_ring *rq;        /* per reactor */
	pthread_t isr;
	bool isr_started;
	struct sl_notify stop_n; /* wakes the ISR keeper to stop */
	struct sl_failover *_Atomic ctl;
	_Atomic bool stop;
};

#endif
