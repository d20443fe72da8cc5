/*
 * A node of a cluster (issue 16): the glue between the control plane in
 * etcd (cluster/cluster.h) and the partitions. At create every partition
 * gets its replication state (topic.h, struct sl_prepl) and its leader-epoch
 * file; at start the node registers and names its topics, and from then on
 * the cluster thread's callbacks turn each partition state etcd holds into
 * a role here (leader, follower, none: the owner reactor takes it, see
 * reactor/repl.c) and into what the fetchers follow (server/fetch.c).
 *
 * The in-sync set is kept by the leader (`sl-isr`, every 100 ms): a follower
 * that has not been caught up for replica_lag_max leaves it, one that is
 * caught up joins it again; each change is a guarded write to etcd first,
 * and the HW moves on the new set only after etcd took it.
 *
 * When a node dies, the failover controller (server/failover.c, `sl-ctl`, one
 * node at a time) gives the partitions it led new leaders; every node
 * answers the controller's question about its copy of a partition (GET
 * /v1/cluster/replica, server/cluster_http.c).
 *
 * Threads: create/destroy on the control thread before/after the reactors;
 * the callbacks on `sl-cluster`; the ISR keeper on `sl-isr`; the
 * controller on `sl-ctl`. What HTTP threads ask of the cluster (status,
 * metrics, moves, the controller's question, replica sets) is
 * server/cluster_http.c's.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "auth/auth.h"
#include "base/base.h"
#include "cluster/cluster.h"
#include "ring/ring.h"
#include "server/cluster_impl.h"
#include "server/server.h"

/* How often the leader looks at its followers' progress for the ISR. */
#define SL_ISR_PERIOD_NS (100ull * 1000 * 1000)
/* Chunks a reactor's inbox holds from all fetchers. */
#define SL_REPL_RING 1024u

static uint64_t sl__lease_deadline(void *arg)
{
	struct sl_srvcluster *cl = arg;
	struct sl_cluster *c = atomic_load_explicit(&cl->c, memory_order_acquire);
	return c ? sl_cluster_lease_deadline_ns(c) : 0;
}

/* ---- create --------------------------------------------------------------- */

static int sl__repl_init(struct sl_prepl *rp, struct sl_partition *p, char *err, size_t errlen)
{
	const struct sl_topic_spec *s = &p->topic->spec;
	int ret;

	pthread_mutex_init(&rp->mu, NULL);
	rp->acks = s->acks;
	rp->min_insync = s->min_insync ? s->min_insync : 1;
	rp->lag_max_ns = s->replica_lag_max_ns ? s->replica_lag_max_ns : 10000000000ull;
	if (!p->log) /* refused at open: it takes no role */
		return 0;
	ret = sl_epochs_load(p->dir, &rp->epoch_file, err, errlen);
	if (ret < 0)
		return ret;
	/* The copy fetch answers read: the newest entries. */
	uint32_t n = sl_epochs_count(rp->epoch_file);
	const struct sl_epoch *v = sl_epochs_entries(rp->epoch_file);
	uint32_t from = n > SL_REPL_EPOCHS ? n - SL_REPL_EPOCHS : 0;
	for (uint32_t i = from; i < n; i++) {
		rp->epochs[rp->n_epochs] = v[i].epoch;
		rp->epoch_starts[rp->n_epochs++] = v[i].start;
	}
	uint64_t end = sl_log_end(p->log);
	atomic_store_explicit(&rp->local_end, end, memory_order_relaxed);
	atomic_store_explicit(&rp->local_durable, sl_log_durable(p->log), memory_order_relaxed);
	/* Nothing is visible before this node learns the HW: readers wait
	 * for the leader's word (a restarted replica may hold more than the
	 * cluster acked). */
	atomic_store_explicit(&p->durable_pub, 0, memory_order_relaxed);
	p->repl = rp;
	return 0;
}

int sl__cluster_create(struct sl_server *srv, char *err, size_t errlen)
{
	const struct sl_server_cluster_opts *o = &srv->opts.cluster;
	struct sl_srvcluster *cl;
	int ret = -ENOMEM;

	if (!o->n_etcd)
		return 0;
	cl = calloc(1, sizeof(*cl));
	if (!cl)
		goto oom;
	srv->cl = cl;
	cl->srv = srv;
	if (sl_notify_init(&cl->stop_n) != 0 || sl__peers_create(&srv->peers) < 0)
		goto oom;
	cl->fetchers.srv = srv;
	pthread_mutex_init(&cl->fetchers.mu, NULL);
	snprintf(cl->fetchers.self, sizeof(cl->fetchers.self), "%s", o->node_id);
	if (o->token_file) {
		/* Checked now: a node that cannot read its token would fail
		 * every connection to its leaders later. */
		ret = sl_auth_file_token(o->token_file, cl->token, sizeof(cl->token), err, errlen);
		if (ret < 0)
			return ret;
		cl->fetchers.token_file = o->token_file;
	}
	uint32_t n_topics = atomic_load(&srv->topics.n), total = 0;
	for (uint32_t t = 0; t < n_topics; t++)
		total += srv->topics.v[t].n_parts;
	cl->repls = calloc(total ? total : 1, sizeof(*cl->repls));
	cl->rq = calloc(srv->n, sizeof(*cl->rq));
	if (!cl->repls || !cl->rq)
		goto oom;
	for (uint32_t i = 0; i < srv->n; i++) {
		ret = sl_ring_init(&cl->rq[i], SL_REPL_RING);
		if (ret < 0)
			goto oom;
	}
	for (uint32_t t = 0, k = 0; t < n_topics; t++)
		for (uint32_t p = 0; p < srv->topics.v[t].n_parts; p++, k++) {
			ret = sl__repl_init(&cl->repls[k], &srv->topics.v[t].parts[p], err, errlen);
			cl->n_repls = k + 1;
			if (ret < 0)
				return ret;
		}
	/* No fresh producer id before this node knows its range (its
	 * ordinal, at start). */
	sl_producers_require_base(srv->producers);
	srv->env.rq = cl->rq;
	srv->env.repl_durable = sl__fetch_durable;
	srv->env.repl_arg = &cl->fetchers;
	srv->env.lease_deadline = sl__lease_deadline;
	srv->env.lease_arg = cl;
	return 0;
oom:
	snprintf(err, errlen, "cluster: out of memory");
	return -ENOMEM;
}

/* ---- the cluster's callbacks (sl-cluster thread) ------------------------- */

struct sl__addr_find {
	const char *id;
	char native[SL_CLUSTER_ADDR_MAX];
};

static int sl__addr_cb(void *arg, const struct sl_cluster_node *n)
{
	struct sl__addr_find *a = arg;
	if (strcmp(n->id, a->id) || !n->alive)
		return 0;
	snprintf(a->native, sizeof(a->native), "%s", n->native);
	return 1;
}

/* Follows the partition's leader when this node is one of its followers
 * and the leader's address is known. */
static void sl__follow(struct sl_srvcluster *cl, struct sl_partition *p)
{
	struct sl_prepl *rp = p->repl;
	struct sl_cluster *c = atomic_load_explicit(&cl->c, memory_order_acquire);
	char leader[SL_REPL_ID_MAX];
	uint32_t role, epoch;

	pthread_mutex_lock(&rp->mu);
	role = rp->want_role;
	epoch = rp->want_epoch;
	snprintf(leader, sizeof(leader), "%s", rp->leader);
	pthread_mutex_unlock(&rp->mu);
	struct sl__addr_find a = {.id = leader};
	bool known = leader[0] && c && sl_cluster_nodes(c, sl__addr_cb, &a) == 1;
	/* Metadata answers name the leader's address, whatever our role. */
	pthread_mutex_lock(&rp->mu);
	snprintf(rp->leader_native, sizeof(rp->leader_native), "%s", known ? a.native : "");
	pthread_mutex_unlock(&rp->mu);
	if (role != SL_REPL_FOLLOWER || !known) {
		/* A follower whose leader's address is unknown waits for it
		 * (on_node). */
		sl__fetch_unfollow(&cl->fetchers, p);
		return;
	}
	int ret = sl__fetch_follow(&cl->fetchers, p->topic->index, p, leader, a.native, epoch);
	if (ret < 0)
		fprintf(stderr, "sluiced: %s/%u: cannot follow %s: %s\n", p->topic->name, p->id,
		        leader, sl_strerror(ret));
}

static void sl__on_partition(void *arg, const char *topic, uint32_t p, const struct sl_pstate *s)
{
	struct sl_srvcluster *cl = arg;
	struct sl_server *srv = cl->srv;
	struct sl_topic *t = sl_topics_find(&srv->topics, topic, strlen(topic));
	if (!t || p >= t->n_parts || !t->parts[p].repl)
		return;
	struct sl_partition *part = &t->parts[p];
	struct sl_prepl *rp = part->repl;
	const char *self = cl->fetchers.self;
	int me = -1;
	uint32_t isr = 0;

	for (uint32_t i = 0; i < s->n_replicas; i++)
		if (!strcmp(s->replicas[i], self))
			me = (int)i;
	for (uint32_t i = 0; i < s->n_replicas; i++)
		for (uint32_t k = 0; k < s->n_isr; k++)
			if (!strcmp(s->replicas[i], s->isr[k]))
				isr |= 1u << i;
	pthread_mutex_lock(&rp->mu);
	if (s->mod_revision && s->mod_revision < rp->want_rev) {
		pthread_mutex_unlock(&rp->mu);
		return;
	}
	if (s->mod_revision)
		rp->want_rev = s->mod_revision;
	for (uint32_t i = 0; i < s->n_replicas && i < SL_REPL_MAX; i++) {
		struct sl_prepl_peer *pe = &rp->peers[i];
		if (strcmp(pe->node, s->replicas[i])) {
			/* Another node in this slot: what was known of the old one
			 * says nothing of it. */
			snprintf(pe->node, sizeof(pe->node), "%s", s->replicas[i]);
			atomic_store(&pe->durable, 0);
			atomic_store(&pe->caught_up_ns, 0);
			atomic_store(&pe->fetch_ns, 0);
		}
	}
	/* Stored only when they change (a new replica set): the owner reads
	 * both without the lock on every HW move (topic/repl.c), and most
	 * states (every ISR change, every failover) keep them. A change of
	 * the replica set itself is still unordered with those reads (found by
	 * TSan under the failover tests; the set never changes yet). */
	uint32_t n_peers = s->n_replicas < SL_REPL_MAX ? s->n_replicas : SL_REPL_MAX;
	uint32_t self_i = me < 0 ? 0 : (uint32_t)me;
	if (rp->n_peers != n_peers)
		rp->n_peers = n_peers;
	if (rp->self != self_i)
		rp->self = self_i;
	snprintf(rp->leader, sizeof(rp->leader), "%s", s->leader);
	rp->want_epoch = s->epoch;
	rp->want_role = me < 0                     ? SL_REPL_NONE
	                : !strcmp(s->leader, self) ? SL_REPL_LEADER
	                                           : SL_REPL_FOLLOWER;
	pthread_mutex_unlock(&rp->mu);
	atomic_store_explicit(&rp->isr_mask, isr, memory_order_release);
	atomic_fetch_add_explicit(&rp->gen, 1, memory_order_release);
	sl_reactor_wake(srv->reactors[part->owner]);
	sl__follow(cl, part);
}

/* A node (re)registered: partitions that wait for its address follow it. */
static void sl__on_node(void *arg, const struct sl_cluster_node *n)
{
	struct sl_srvcluster *cl = arg;
	uint32_t n_topics = atomic_load(&cl->srv->topics.n);
	if (!n->alive) {
		/* Partitions it led need a leader: the controller looks now. */
		sl__failover_kick(atomic_load_explicit(&cl->ctl, memory_order_acquire));
		return;
	}
	for (uint32_t t = 0; t < n_topics; t++)
		for (uint32_t p = 0; p < cl->srv->topics.v[t].n_parts; p++) {
			struct sl_partition *part = &cl->srv->topics.v[t].parts[p];
			struct sl_prepl *rp = part->repl;
			if (!rp)
				continue;
			pthread_mutex_lock(&rp->mu);
			bool mine =
			    !strcmp(rp->leader, n->id) && strcmp(rp->leader_native, n->native);
			pthread_mutex_unlock(&rp->mu);
			if (mine)
				sl__follow(cl, part);
		}
}

/* The cluster's runtime topics changed: this node's copy follows on the
 * admin thread (server/topics_cluster.c), which may wait for reactors. */
static void sl__on_rtopics(void *arg)
{
	struct sl_srvcluster *cl = arg;
	sl__admin_sync(cl->srv);
}

/* ---- topics created at runtime ---------------------------------------------- */

int sl__cluster_topic_added(struct sl_server *srv, uint32_t index, char *err, size_t errlen)
{
	struct sl_srvcluster *cl = srv->cl;
	struct sl_topic *t = &srv->topics.v[index];
	struct sl__rrepls *rr = calloc(1, sizeof(*rr));
	if (!rr || !(rr->v = calloc(t->n_parts, sizeof(*rr->v)))) {
		free(rr);
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	/* Kept to the end, like the topic's slot (a deleted topic's partitions
	 * keep their pointers to it). */
	rr->next = cl->rrepls;
	cl->rrepls = rr;
	for (uint32_t p = 0; p < t->n_parts; p++) {
		int ret = sl__repl_init(&rr->v[p], &t->parts[p], err, errlen);
		rr->n = p + 1;
		if (ret < 0)
			return ret;
	}
	return 0;
}

int sl__cluster_topic_take(struct sl_server *srv, uint32_t index, char *err, size_t errlen)
{
	struct sl_srvcluster *cl = srv->cl;
	struct sl_cluster *c = atomic_load_explicit(&cl->c, memory_order_acquire);
	struct sl_topic *t = &srv->topics.v[index];
	if (!c) {
		snprintf(err, errlen, "this node is not in its cluster yet");
		return -EAGAIN;
	}
	struct sl_cluster_topic ct = {
	    .name = t->name,
	    .partitions = t->n_parts,
	    .replicas = t->spec.replicas ? t->spec.replicas : 1,
	};
	int ret = sl_cluster_topics(c, &ct, 1, err, errlen);
	if (ret < 0)
		return ret;
	/* States the watch delivered before the topic was here were dropped
	 * (sl__on_partition found no topic): taken from the cache now. */
	for (uint32_t p = 0; p < t->n_parts; p++) {
		struct sl_pstate st;
		if (t->parts[p].repl && sl_cluster_pstate_get(c, t->name, p, &st) == 0)
			sl__on_partition(cl, t->name, p, &st);
	}
	return 0;
}

void sl__cluster_topic_removed(struct sl_server *srv, struct sl_topic *t)
{
	struct sl_srvcluster *cl = srv->cl;
	struct sl_cluster *c = atomic_load_explicit(&cl->c, memory_order_acquire);
	if (c)
		sl_cluster_topic_forget(c, t->name);
	for (uint32_t p = 0; p < t->n_parts; p++)
		if (t->parts[p].repl)
			sl__fetch_unfollow(&cl->fetchers, &t->parts[p]);
}

static void sl__on_lease(void *arg, bool held)
{
	struct sl_srvcluster *cl = arg;
	fprintf(stderr, "sluiced: node %s: %s\n", cl->fetchers.self,
	        held ? "holds its lease in etcd" : "lost its lease in etcd: acks stop");
}

/* ---- the in-sync set (sl-isr) ---------------------------------------------- */

static void sl__isr_check(struct sl_srvcluster *cl, struct sl_cluster *c, struct sl_partition *p,
                          uint64_t now)
{
	struct sl_prepl *rp = p->repl;
	struct sl_pstate st;
	char err[256];

	if (atomic_load_explicit(&rp->role, memory_order_acquire) != SL_REPL_LEADER ||
	    sl_cluster_pstate_get(c, p->topic->name, p->id, &st) < 0 ||
	    strcmp(st.leader, cl->fetchers.self) ||
	    st.epoch != atomic_load_explicit(&rp->epoch, memory_order_acquire))
		return;
	uint32_t have = atomic_load_explicit(&rp->isr_mask, memory_order_acquire), want = 0;
	for (uint32_t i = 0; i < rp->n_peers; i++) {
		uint64_t cu =
		    atomic_load_explicit(&rp->peers[i].caught_up_ns, memory_order_acquire);
		if (i == rp->self || (cu && now - cu <= rp->lag_max_ns))
			want |= 1u << i;
	}
	if (want == have)
		return;
	struct sl_pstate next = st;
	next.n_isr = 0;
	for (uint32_t i = 0; i < rp->n_peers; i++)
		if (want & (1u << i))
			snprintf(next.isr[next.n_isr++], sizeof(next.isr[0]), "%s",
			         rp->peers[i].node);
	int ret = sl_cluster_pstate_cas(c, p->topic->name, p->id, &next, st.mod_revision, NULL, err,
	                                sizeof(err));
	if (ret < 0) {
		if (ret != -ESTALE)
			fprintf(stderr, "sluiced: %s/%u: cannot write the in-sync set: %s\n",
			        p->topic->name, p->id, err);
		return;
	}
	/* etcd has it: the HW may move on it from now on. */
	atomic_store_explicit(&rp->isr_mask, want, memory_order_release);
	sl_reactor_wake(cl->srv->reactors[p->owner]);
	fprintf(stderr, "sluiced: %s/%u: in-sync replicas %s to %u of %u\n", p->topic->name, p->id,
	        __builtin_popcount(want) < __builtin_popcount(have) ? "shrank" : "changed",
	        (unsigned)__builtin_popcount(want), rp->n_peers);
}

static bool sl__stopping(void *arg)
{
	return atomic_load_explicit(&((struct sl_srvcluster *)arg)->stop, memory_order_acquire);
}

static void *sl__isr_thread(void *arg)
{
	struct sl_srvcluster *cl = arg;
	pthread_setname_np(pthread_self(), "sl-isr");
	/* A look every SL_ISR_PERIOD_NS until stopped. */
	while (sl_notify_wait(&cl->stop_n, sl__stopping, cl, SL_ISR_PERIOD_NS) == -ETIMEDOUT) {
		struct sl_cluster *c = atomic_load_explicit(&cl->c, memory_order_acquire);
		uint64_t now = sl_now_ns();
		uint32_t n_topics = atomic_load(&cl->srv->topics.n);
		for (uint32_t t = 0; c && t < n_topics; t++) {
			struct sl_topic *tp = &cl->srv->topics.v[t];
			for (uint32_t p = 0; p < tp->n_parts; p++)
				if (tp->parts[p].repl)
					sl__isr_check(cl, c, &tp->parts[p], now);
		}
	}
	return NULL;
}

/* ---- start, stop ----------------------------------------------------------- */

int sl__cluster_start(struct sl_server *srv, char *err, size_t errlen)
{
	struct sl_srvcluster *cl = srv->cl;
	const struct sl_server_cluster_opts *o = &srv->opts.cluster;
	struct sl_cluster *c = NULL;
	int ret;

	if (!cl)
		return 0;
	struct sl_cluster_opts co = {
	    .node_id = o->node_id,
	    .etcd = o->etcd,
	    .n_etcd = o->n_etcd,
	    .name = o->name,
	    .advertise_native = o->advertise_native,
	    .advertise_http = o->advertise_http,
	    .session_ttl_ms = o->session_ttl_ms,
	    .on_partition = sl__on_partition,
	    .on_lease = sl__on_lease,
	    .on_node = sl__on_node,
	    .on_rtopics = sl__on_rtopics,
	    .arg = cl,
	};
	/* The callbacks run as soon as the thread starts, and look the
	 * cluster up through cl->c: store it before they can matter (the
	 * first on_partition calls of the initial load find it NULL and only
	 * set roles; sl__cluster_refollow below follows for them). */
	/* A node restarted after kill -9 finds its old registration still
	 * held by its old lease until that expires: wait for it (at most two
	 * TTLs), rather than make every restart script retry. */
	uint64_t give_up = sl_now_ns() + 2ull * o->session_ttl_ms * 1000000ull + 1000000000ull;
	while ((ret = sl_cluster_start(&co, &c, err, errlen)) == -EEXIST && sl_now_ns() < give_up) {
		struct timespec ts = {0, 200 * 1000 * 1000};
		nanosleep(&ts, NULL);
	}
	if (ret < 0)
		return ret;
	atomic_store_explicit(&cl->c, c, memory_order_release);
	uint32_t ordinal = sl_cluster_ordinal(c);
	/* A base below 2^61 is a multiple of 2^40, so its range ends at 2^61
	 * at most: no node's fresh id is ever a name's (dedup.h). */
	if (SL_PRODUCERS_NODE_BASE(ordinal) >= SL_PRODUCERS_NAMED_BASE) {
		snprintf(err, errlen, "node ordinal %u is past the producer id ranges", ordinal);
		return -ERANGE;
	}
	/* The key first: set_base lets hellos in. */
	sl_producers_set_key(srv->producers, sl_cluster_producer_key(c), SL_CLUSTER_KEY_BYTES);
	sl_producers_set_base(srv->producers, SL_PRODUCERS_NODE_BASE(ordinal));
	uint32_t n_topics = atomic_load(&srv->topics.n);
	struct sl_cluster_topic *ct = calloc(n_topics ? n_topics : 1, sizeof(*ct));
	if (!ct)
		return -ENOMEM;
	for (uint32_t t = 0; t < n_topics; t++)
		ct[t] = (struct sl_cluster_topic){
		    .name = srv->topics.v[t].name,
		    .partitions = srv->topics.v[t].n_parts,
		    .replicas = srv->topics.v[t].spec.replicas ? srv->topics.v[t].spec.replicas : 1,
		};
	ret = sl_cluster_topics(c, ct, n_topics, err, errlen);
	free(ct);
	if (ret < 0)
		return ret;
	for (uint32_t t = 0; t < n_topics; t++)
		for (uint32_t p = 0; p < srv->topics.v[t].n_parts; p++)
			if (srv->topics.v[t].parts[p].repl)
				sl__follow(cl, &srv->topics.v[t].parts[p]);
	if (pthread_create(&cl->isr, NULL, sl__isr_thread, cl) != 0) {
		snprintf(err, errlen, "cannot start the in-sync set keeper");
		return -EAGAIN;
	}
	cl->isr_started = true;
	struct sl_failover *ctl = NULL;
	ret = sl__failover_start(srv, c, cl->fetchers.self, &ctl, err, errlen);
	if (ret < 0)
		return ret;
	atomic_store_explicit(&cl->ctl, ctl, memory_order_release);
	return 0;
}

/* After the reactors stopped: nothing follows, nothing leads. */
void sl__cluster_stop(struct sl_server *srv)
{
	struct sl_srvcluster *cl = srv->cl;
	if (!cl)
		return;
	/* The controller first: it uses the cluster object. */
	sl__failover_stop(atomic_exchange(&cl->ctl, NULL));
	if (cl->isr_started) {
		atomic_store_explicit(&cl->stop, true, memory_order_release);
		sl_notify_signal(&cl->stop_n);
		pthread_join(cl->isr, NULL);
		cl->isr_started = false;
	}
	/* The cluster thread before the fetchers: its callbacks follow and
	 * unfollow, and must not start a fetcher while they go. */
	struct sl_cluster *c = atomic_exchange(&cl->c, NULL);
	sl_cluster_stop(c);
	sl__fetchers_stop(&cl->fetchers);
}

void sl__cluster_destroy(struct sl_server *srv)
{
	struct sl_srvcluster *cl = srv->cl;
	if (!cl)
		return;
	sl__cluster_stop(srv);
	for (uint32_t k = 0; k < cl->n_repls; k++) {
		sl_epochs_free(cl->repls[k].epoch_file);
		pthread_mutex_destroy(&cl->repls[k].mu);
	}
	while (cl->rrepls) {
		struct sl__rrepls *rr = cl->rrepls;
		cl->rrepls = rr->next;
		for (uint32_t k = 0; k < rr->n; k++) {
			sl_epochs_free(rr->v[k].epoch_file);
			pthread_mutex_destroy(&rr->v[k].mu);
		}
		free(rr->v);
		free(rr);
	}
	if (cl->rq)
		for (uint32_t i = 0; i < srv->n; i++)
			sl_ring_destroy(&cl->rq[i]);
	free(cl->rq);
	free(cl->repls);
	sl_notify_destroy(&cl->stop_n);
	pthread_mutex_destroy(&cl->fetchers.mu);
	free(cl);
	srv->cl = NULL;
	/* After HTTP stopped (no quorum read runs) and the controller. */
	sl__peers_destroy(srv->peers);
	srv->peers = NULL;
}
