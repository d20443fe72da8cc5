/*
 * cluster's private parts, shared by session.c (start, stop, the cluster
 * thread: lease, registration, watch), cache.c (the cache the watch keeps,
 * read from any thread) and write.c (writes from any thread: topics,
 * placement, CAS). Not for other modules.
 */
#ifndef SL_CLUSTER_IMPL_H
#define SL_CLUSTER_IMPL_H

#include <pthread.h>
#include <stdatomic.h>

#include "cluster/cluster.h"
#include "etcd/etcd.h"

#define SL__CLUSTER_ERRLEN 512

/* A topic in the cache: its record (topics/<t>) and partition states
 * indexed by partition (states may arrive before the record: a fresh read
 * returns keys in order, and "partitions/" sorts before "topics/"). */
struct sl__ctopic {
	char name[SL_CLUSTER_TOPIC_MAX];
	bool has_rec;
	uint32_t partitions, replicas;
	struct sl_pstate *ps; /* [cap] */
	bool *have;           /* [cap] */
	uint32_t cap;
	/* Its record was deleted (a runtime topic removed): its missing
	 * states are not placed again, whoever still wants it. */
	bool removed;
};

struct sl__cnode {
	struct sl_cluster_node n;
	bool seen; /* its record was seen (alive at some point) */
};

/* What the watch keeps current. Guarded by sl_cluster.mu. */
struct sl__cache {
	struct sl__ctopic *topics;
	size_t n_topics;
	struct sl__cnode *nodes;
	size_t n_nodes;
	struct sl_cluster_rtopic *rts; /* runtime topics' definitions */
	size_t n_rts;
};

/* A topic this node serves (sl_cluster_topics), its record confirmed. */
struct sl__want {
	char name[SL_CLUSTER_TOPIC_MAX];
	uint32_t partitions, replicas;
};

struct sl_cluster {
	struct sl_cluster_opts o; /* callbacks and arg; strings below */
	char id[SL_CLUSTER_ID_MAX];
	char native[SL_CLUSTER_ADDR_MAX];
	char http[SL_CLUSTER_ADDR_MAX];
	uint32_t ordinal;
	uint8_t producer_key[SL_CLUSTER_KEY_BYTES]; /* fixed once started */

	/* cluster thread's (and start's, before the thread exists) */
	struct sl_etcd *e;
	struct sl_etcd_watch *w;
	int64_t wrev;         /* the last revision applied to the cache */
	bool reread;          /* the watch's history is gone: read everything again */
	int64_t ttl_s;        /* granted */
	uint64_t interval_ns; /* keepalive period: ttl / 3 */
	uint64_t margin_ns;
	int64_t old_lease; /* a lease we lost: its key may linger */
	bool held;
	bool place_dirty;
	pthread_t th;
	bool th_started;

	/* callers' writes */
	pthread_mutex_t wmu;
	struct sl_etcd *ce;

	/* the cache and the wanted topics */
	pthread_mutex_t mu;
	struct sl__cache cache;
	struct sl__want *want;
	size_t n_want;

	atomic_bool stop;
	atomic_uint_fast64_t deadline_ns;
	atomic_int_fast64_t lease;
};

/* cache.c */
/* A fresh read of the whole prefix replaces the cache; with notify, the
 * callbacks for what changed run afterwards (cluster thread). *rev: the
 * read's revision. 0 or an etcd error. */
int sl__cache_reload(struct sl_cluster *c, struct sl_etcd *e, bool notify, int64_t *rev);
/* One watch event: cache updated, callbacks run (cluster thread). Sets
 * c->place_dirty when membership changed. */
int sl__cache_event(void *arg, const struct sl_etcd_event *ev);
/* Callbacks for everything cached (the thread's first act). */
void sl__cache_announce(struct sl_cluster *c);
void sl__cache_free(struct sl__cache *k);
/* The live node ids, sorted: a malloc'd array of n ids (free()). 0 or
 * -ENOMEM. Takes mu. */
int sl__cache_live_ids(struct sl_cluster *c, char (**ids)[SL_CLUSTER_ID_MAX], size_t *n);

/* state.c: the relations a partition state must satisfy (the decoder's
 * and the encoder's one check). 0 or -EINVAL with err. */
int sl__cluster_pstate_check(const struct sl_pstate *s, char *err, size_t errlen);

/* write.c */
/* Creates the missing partition states of every wanted topic once R nodes
 * are live, through client e (the thread's, or ce under wmu). 0 or an etcd
 * error (err). */
int sl__cluster_place_missing(struct sl_cluster *c, struct sl_etcd *e, char *err, size_t errlen);

#endif
