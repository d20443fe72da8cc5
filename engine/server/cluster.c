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
 * /v1/cluster/replica, below).
 *
 * Threads: create/destroy on the control thread before/after the reactors;
 * the callbacks on `sl-cluster`; the ISR keeper on `sl-isr`; the
 * controller on `sl-ctl`; the JSON on HTTP threads.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "auth/auth.h"
#include "base/base.h"
#include "cluster/cluster.h"
#include "dedup/dedup.h"
#include "ring/ring.h"
#include "server/server.h"

/* How often the leader looks at its followers' progress for the ISR. */
#define SL_ISR_PERIOD_NS (100ull * 1000 * 1000)
/* Chunks a reactor's inbox holds from all fetchers. */
#define SL_REPL_RING 1024u

struct sl_srvcluster {
	struct sl_server *srv;
	struct sl_cluster *_Atomic c;
	struct sl_fetchers fetchers;
	char token[512];
	struct sl_prepl *repls; /* one per partition of the topics at create */
	uint32_t n_repls;
	struct sl_ring *rq; /* per reactor */
	pthread_t isr;
	bool isr_started;
	struct sl_notify stop_n; /* wakes the ISR keeper to stop */
	struct sl_failover *_Atomic ctl;
	_Atomic bool stop;
};

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
	if (SL_PRODUCERS_NODE_BASE(ordinal) >= SL_PRODUCERS_ID_LIMIT / 2) {
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

/* ---- GET /v1/cluster ------------------------------------------------------- */

struct sl__json {
	FILE *f;
	bool first;
};

static int sl__node_json(void *arg, const struct sl_cluster_node *n)
{
	struct sl__json *j = arg;
	fprintf(j->f, "%s{\"id\":\"%s\",\"native\":\"%s\",\"http\":\"%s\",\"alive\":%s}",
	        j->first ? "" : ",", n->id, n->native, n->http, n->alive ? "true" : "false");
	j->first = false;
	return 0;
}

int sl_server_cluster_json(struct sl_server *srv, char **body, size_t *len)
{
	struct sl_srvcluster *cl = srv->cl;
	struct sl_cluster *c = cl ? atomic_load_explicit(&cl->c, memory_order_acquire) : NULL;
	*body = NULL;
	*len = 0;
	if (!c)
		return -ENOENT;
	FILE *f = open_memstream(body, len);
	if (!f)
		return -ENOMEM;
	struct sl__json j = {.f = f, .first = true};
	char ctl[SL_CLUSTER_ID_MAX];
	sl__failover_controller(atomic_load_explicit(&cl->ctl, memory_order_acquire), ctl,
	                        sizeof(ctl));
	fprintf(f, "{\"node\":\"%s\",\"controller\":", cl->fetchers.self);
	fprintf(f, ctl[0] ? "\"%s\"" : "null", ctl);
	fprintf(f, ",\"nodes\":[");
	sl_cluster_nodes(c, sl__node_json, &j);
	fprintf(f, "],\"topics\":[");
	uint32_t n_topics = atomic_load(&srv->topics.n);
	uint64_t now = sl_now_ns();
	bool tfirst = true;
	for (uint32_t t = 0; t < n_topics; t++) {
		struct sl_topic *tp = &srv->topics.v[t];
		if (atomic_load(&tp->deleted))
			continue;
		fprintf(f, "%s{\"name\":\"%s\",\"partitions\":[", tfirst ? "" : ",", tp->name);
		tfirst = false;
		for (uint32_t p = 0; p < tp->n_parts; p++) {
			struct sl_prepl *rp = tp->parts[p].repl;
			struct sl_pstate st;
			fprintf(f, "%s{\"partition\":%u", p ? "," : "", p);
			if (!rp || sl_cluster_pstate_get(c, tp->name, p, &st) < 0) {
				fprintf(f, ",\"leader\":null}");
				continue;
			}
			fprintf(f, ",\"leader\":\"%s\",\"epoch\":%u,\"replicas\":[", st.leader,
			        st.epoch);
			for (uint32_t i = 0; i < st.n_replicas; i++)
				fprintf(f, "%s\"%s\"", i ? "," : "", st.replicas[i]);
			fprintf(f, "],\"isr\":[");
			for (uint32_t i = 0; i < st.n_isr; i++)
				fprintf(f, "%s\"%s\"", i ? "," : "", st.isr[i]);
			bool leader = atomic_load(&rp->role) == SL_REPL_LEADER;
			uint64_t end = atomic_load(&rp->local_end);
			fprintf(f, "],\"high_watermark\":%" PRIu64 ",\"this_node\":\"%s\"",
			        atomic_load(&rp->hw),
			        leader                                       ? "leader"
			        : atomic_load(&rp->role) == SL_REPL_FOLLOWER ? "follower"
			                                                     : "none");
			/* Only the leader knows every replica's progress; a
			 * follower tells its own. */
			fprintf(f, ",\"replica_state\":[");
			bool rfirst = true;
			for (uint32_t i = 0; i < rp->n_peers; i++) {
				uint64_t d, lag_ns = 0;
				if (i == rp->self)
					d = atomic_load(&rp->local_durable);
				else if (leader)
					d = atomic_load(&rp->peers[i].durable);
				else
					continue;
				uint64_t ref = leader ? end : atomic_load(&rp->leader_end);
				if (i != rp->self || !leader) {
					uint64_t cu = i == rp->self
					                  ? atomic_load(&rp->leader_end_ns)
					                  : atomic_load(&rp->peers[i].caught_up_ns);
					lag_ns = d >= ref ? 0 : cu ? now - cu : 0;
				}
				fprintf(f,
				        "%s{\"node\":\"%s\",\"durable_offset\":%" PRIu64
				        ",\"lag_events\":%" PRIu64 ",\"lag_seconds\":%.3f}",
				        rfirst ? "" : ",", rp->peers[i].node, d,
				        ref > d ? ref - d : 0, (double)lag_ns / 1e9);
				rfirst = false;
			}
			fprintf(f, "]}");
		}
		fprintf(f, "]}");
	}
	fprintf(f, "]}\n");
	if (fclose(f) != 0) {
		free(*body);
		*body = NULL;
		return -ENOMEM;
	}
	return 0;
}

/* ---- /metrics --------------------------------------------------------------- */

/* The replication figures this node knows: every replica's role, HW and
 * in-sync count; a leader's view of each follower (lag in events and
 * seconds, bytes sent), a follower's view of itself against the leader. */
void sl__cluster_metrics(struct sl_server *srv, FILE *f)
{
	if (!srv->cl)
		return;
	uint32_t n_topics = atomic_load(&srv->topics.n), under = 0;
	uint64_t now = sl_now_ns();
	fprintf(f, "# HELP sluice_replica_role This node's role for the partition: 0 none, 1 "
	           "leader, 2 follower.\n# TYPE sluice_replica_role gauge\n"
	           "# HELP sluice_partition_high_watermark Offset below which enough replicas hold "
	           "every event durably (acks and readers stop there).\n"
	           "# TYPE sluice_partition_high_watermark gauge\n"
	           "# HELP sluice_partition_isr_size Replicas in the in-sync set (as etcd holds "
	           "it).\n# TYPE sluice_partition_isr_size gauge\n"
	           "# HELP sluice_replica_lag_events Events a replica lacks durably behind its "
	           "leader's end (a leader reports its followers, a follower itself).\n"
	           "# TYPE sluice_replica_lag_events gauge\n"
	           "# HELP sluice_replica_lag_seconds How long the replica has not been caught "
	           "up (0 when it is).\n# TYPE sluice_replica_lag_seconds gauge\n"
	           "# HELP sluice_replica_fetch_bytes_total Bytes of batches the leader sent to "
	           "the follower.\n# TYPE sluice_replica_fetch_bytes_total counter\n");
	for (uint32_t t = 0; t < n_topics; t++) {
		struct sl_topic *tp = &srv->topics.v[t];
		if (atomic_load(&tp->deleted))
			continue;
		for (uint32_t p = 0; p < tp->n_parts; p++) {
			struct sl_prepl *rp = tp->parts[p].repl;
			if (!rp)
				continue;
			uint32_t role = atomic_load(&rp->role);
			uint32_t isr = (uint32_t)__builtin_popcount(atomic_load(&rp->isr_mask));
			const char *lbl = tp->name;
			fprintf(f, "sluice_replica_role{topic=\"%s\",partition=\"%u\"} %u\n", lbl,
			        p, role);
			fprintf(f,
			        "sluice_partition_high_watermark{topic=\"%s\",partition=\"%u\"} "
			        "%" PRIu64 "\n",
			        lbl, p, atomic_load(&rp->hw));
			fprintf(f, "sluice_partition_isr_size{topic=\"%s\",partition=\"%u\"} %u\n",
			        lbl, p, isr);
			if (role == SL_REPL_LEADER && isr < rp->n_peers)
				under++;
			uint64_t end = atomic_load(&rp->local_end);
			for (uint32_t i = 0; i < rp->n_peers; i++) {
				uint64_t d, ref, cu;
				if (role == SL_REPL_LEADER && i != rp->self) {
					d = atomic_load(&rp->peers[i].durable);
					ref = end;
					cu = atomic_load(&rp->peers[i].caught_up_ns);
					fprintf(f,
					        "sluice_replica_fetch_bytes_total{topic=\"%s\","
					        "partition="
					        "\"%u\",node=\"%s\"} %" PRIu64 "\n",
					        lbl, p, rp->peers[i].node,
					        atomic_load(&rp->peers[i].fetch_bytes));
				} else if (role == SL_REPL_FOLLOWER && i == rp->self) {
					d = atomic_load(&rp->local_durable);
					ref = atomic_load(&rp->leader_end);
					cu = atomic_load(&rp->leader_end_ns);
				} else {
					continue;
				}
				fprintf(
				    f,
				    "sluice_replica_lag_events{topic=\"%s\",partition=\"%u\",node="
				    "\"%s\"} %" PRIu64 "\n",
				    lbl, p, rp->peers[i].node, ref > d ? ref - d : 0);
				fprintf(
				    f,
				    "sluice_replica_lag_seconds{topic=\"%s\",partition=\"%u\",node="
				    "\"%s\"} %.3f\n",
				    lbl, p, rp->peers[i].node,
				    d >= ref || !cu ? 0.0 : (double)(now - cu) / 1e9);
			}
		}
	}
	fprintf(f,
	        "# HELP sluice_under_replicated_partitions Partitions this node leads whose "
	        "in-sync set lacks a replica.\n# TYPE sluice_under_replicated_partitions gauge\n"
	        "sluice_under_replicated_partitions %u\n",
	        under);
	sl__failover_metrics(atomic_load_explicit(&srv->cl->ctl, memory_order_acquire), f);
}

/* ---- planned leader moves ----------------------------------------------------- */

/* How long a move waits for the target to hold everything. */
#define SL_MOVE_TIMEOUT_NS (10ull * 1000 * 1000 * 1000)

static int sl__move_reply(char **body, size_t *len, int status, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int sl__move_reply(char **body, size_t *len, int status, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vasprintf(body, fmt, ap);
	va_end(ap);
	if (n < 0) {
		*body = NULL;
		*len = 0;
		return 500;
	}
	*len = (size_t)n;
	return status;
}

/* Waits (this HTTP thread) until pred holds or the deadline passes; an
 * operator's command, so a 1 ms re-check is cheap enough. */
static bool sl__move_wait(struct sl_prepl *rp, uint32_t target, uint64_t deadline, int what)
{
	struct timespec ms = {0, 1000 * 1000};
	for (;;) {
		bool ok;
		if (what == 0) {
			ok = atomic_load_explicit(&rp->moving_seen, memory_order_acquire) >= 1;
		} else {
			uint64_t end = atomic_load_explicit(&rp->local_end, memory_order_acquire);
			ok = atomic_load_explicit(&rp->hw, memory_order_acquire) >= end &&
			     atomic_load_explicit(&rp->peers[target].durable,
			                          memory_order_acquire) >= end;
		}
		if (ok)
			return true;
		if (sl_now_ns() >= deadline)
			return false;
		nanosleep(&ms, NULL);
	}
}

int sl_server_partition_move(struct sl_server *srv, const char *topic, const char *partition,
                             const char *node, char **body, size_t *len)
{
	struct sl_srvcluster *cl = srv->cl;
	struct sl_cluster *c = cl ? atomic_load_explicit(&cl->c, memory_order_acquire) : NULL;
	const char *self = cl ? cl->fetchers.self : "";
	struct sl_pstate st;
	char err[256];
	char *end = NULL;

	if (!c)
		return sl__move_reply(
		    body, len, 404,
		    "{\"error\":\"not_found\",\"message\":\"this node is not in a "
		    "cluster\"}\n");
	struct sl_topic *t = topic ? sl_topics_find(&srv->topics, topic, strlen(topic)) : NULL;
	unsigned long p = partition ? strtoul(partition, &end, 10) : 0;
	if (!t || !partition || !*partition || *end || p >= t->n_parts || !node ||
	    !sl_cluster_id_ok(node))
		return sl__move_reply(body, len, 400,
		                      "{\"error\":\"bad_request\",\"message\":\"expected topic, "
		                      "partition and node of an existing partition\"}\n");
	struct sl_partition *part = &t->parts[p];
	struct sl_prepl *rp = part->repl;
	if (!rp || sl_cluster_pstate_get(c, t->name, (uint32_t)p, &st) < 0)
		return sl__move_reply(body, len, 409,
		                      "{\"error\":\"not_placed\",\"message\":\"%s/%lu has no state "
		                      "in etcd yet\"}\n",
		                      t->name, p);
	if (!strcmp(st.leader, node))
		return sl__move_reply(body, len, 200,
		                      "{\"moved\":false,\"leader\":\"%s\",\"epoch\":%u}\n", node,
		                      st.epoch);
	if (strcmp(st.leader, self) ||
	    atomic_load_explicit(&rp->role, memory_order_acquire) != SL_REPL_LEADER)
		return sl__move_reply(
		    body, len, 409,
		    "{\"error\":\"not_leader\",\"leader\":\"%s\",\"message\":\"%s "
		    "leads %s/%lu: ask it\"}\n",
		    st.leader, st.leader, t->name, p);
	int target = -1;
	bool in_sync = false;
	for (uint32_t i = 0; i < st.n_replicas; i++)
		if (!strcmp(st.replicas[i], node))
			target = (int)i;
	for (uint32_t i = 0; i < st.n_isr; i++)
		in_sync |= !strcmp(st.isr[i], node);
	if (target < 0 || !in_sync || (uint32_t)target >= rp->n_peers ||
	    strcmp(rp->peers[target].node, node))
		return sl__move_reply(body, len, 409,
		                      "{\"error\":\"not_in_sync\",\"message\":\"%s is not an "
		                      "in-sync replica of %s/%lu\"}\n",
		                      node, t->name, p);
	uint32_t idle = 0;
	if (!atomic_compare_exchange_strong(&rp->moving, &idle, 1))
		return sl__move_reply(body, len, 409,
		                      "{\"error\":\"busy\",\"message\":\"a move of %s/%lu is under "
		                      "way\"}\n",
		                      t->name, p);
	/* 1. No new events: once the owner says it saw it, nothing more is
	 * appended here. 2. Everything appended is acked (HW at the end) and
	 * durable on the target. 3. Nothing more is acked here. 4. The new
	 * state, guarded by the revision read: the target leads the next
	 * epoch, starting where this log ends. */
	sl_reactor_wake(srv->reactors[part->owner]);
	uint64_t deadline = sl_now_ns() + SL_MOVE_TIMEOUT_NS;
	const char *why = NULL;
	if (!sl__move_wait(rp, (uint32_t)target, deadline, 0))
		why = "the partition's reactor did not stop taking events";
	else if (!sl__move_wait(rp, (uint32_t)target, deadline, 1))
		why = "the target did not catch up";
	if (why) {
		atomic_store_explicit(&rp->moving, 0, memory_order_release);
		return sl__move_reply(body, len, 504,
		                      "{\"error\":\"timeout\",\"message\":\"%s within 10 s; %s/%lu "
		                      "stays on %s\"}\n",
		                      why, t->name, p, self);
	}
	atomic_store_explicit(&rp->moving, 2, memory_order_release);
	struct sl_pstate next = st;
	snprintf(next.leader, sizeof(next.leader), "%s", node);
	next.epoch = st.epoch + 1;
	next.moving_to[0] = '\0';
	int ret = sl_cluster_pstate_cas(c, t->name, (uint32_t)p, &next, st.mod_revision, NULL, err,
	                                sizeof(err));
	if (ret < 0) {
		atomic_store_explicit(&rp->moving, 0, memory_order_release);
		return sl__move_reply(body, len, ret == -ESTALE ? 409 : 500,
		                      "{\"error\":\"%s\",\"message\":\"%s/%lu: the new state was "
		                      "not written: %s\"}\n",
		                      ret == -ESTALE ? "conflict" : "internal", t->name, p,
		                      ret == -ESTALE ? "another writer changed it first" : err);
	}
	fprintf(stderr, "sluiced: %s/%lu: leadership handed to %s (epoch %u)\n", t->name, p, node,
	        next.epoch);
	return sl__move_reply(body, len, 200,
	                      "{\"moved\":true,\"leader\":\"%s\",\"epoch\":%u,\"offset\":%" PRIu64
	                      "}\n",
	                      node, next.epoch, atomic_load(&rp->local_end));
}

/* ---- GET /v1/cluster/replica (the controller's question) ------------------------ */

int sl_server_replica_json(struct sl_server *srv, const char *topic, const char *partition,
                           char **body, size_t *len)
{
	struct sl_srvcluster *cl = srv->cl;
	char *end = NULL;

	if (!cl)
		return sl__move_reply(body, len, 404,
		                      "{\"error\":\"not_found\",\"message\":\"this node is not "
		                      "in a cluster\"}\n");
	struct sl_topic *t = topic ? sl_topics_find(&srv->topics, topic, strlen(topic)) : NULL;
	unsigned long p = partition ? strtoul(partition, &end, 10) : 0;
	if (!t || !partition || !*partition || *end || p >= t->n_parts)
		return sl__move_reply(body, len, 400,
		                      "{\"error\":\"bad_request\",\"message\":\"expected topic and "
		                      "partition of an existing partition\"}\n");
	struct sl_partition *part = &t->parts[p];
	struct sl_prepl *rp = part->repl;
	if (!rp || !part->log || part->refused)
		return sl__move_reply(body, len, 409,
		                      "{\"error\":\"no_copy\",\"message\":\"%s/%lu has no usable "
		                      "copy here\"}\n",
		                      t->name, p);
	/* The newest epoch the log holds: the epoch file's copy (a leader's
	 * own epoch is in it before it takes an event of the epoch). */
	pthread_mutex_lock(&rp->mu);
	uint32_t last = rp->n_epochs ? rp->epochs[rp->n_epochs - 1] : 0;
	pthread_mutex_unlock(&rp->mu);
	uint32_t role = atomic_load_explicit(&rp->role, memory_order_acquire);
	return sl__move_reply(body, len, 200,
	                      "{\"node\":\"%s\",\"role\":\"%s\",\"epoch\":%u,\"last_epoch\":%u,"
	                      "\"end\":%" PRIu64 ",\"durable\":%" PRIu64 "}\n",
	                      cl->fetchers.self,
	                      role == SL_REPL_LEADER     ? "leader"
	                      : role == SL_REPL_FOLLOWER ? "follower"
	                                                 : "none",
	                      atomic_load_explicit(&rp->epoch, memory_order_acquire), last,
	                      atomic_load_explicit(&rp->local_end, memory_order_acquire),
	                      atomic_load_explicit(&rp->local_durable, memory_order_acquire));
}

/* ---- a partition's replica set, for quorum reads (HTTP threads) ---------------- */

struct sl__rset {
	struct sl_server_replica *v;
	uint32_t n;
};

static int sl__rset_cb(void *arg, const struct sl_cluster_node *n)
{
	struct sl__rset *rs = arg;
	for (uint32_t i = 0; i < rs->n; i++)
		if (!strcmp(rs->v[i].id, n->id))
			snprintf(rs->v[i].http, sizeof(rs->v[i].http), "%s", n->http);
	return 0;
}

int sl__cluster_replica_set(struct sl_server *srv, const char *topic, uint32_t p,
                            struct sl_server_replica *out, uint32_t *n)
{
	struct sl_srvcluster *cl = srv->cl;
	struct sl_cluster *c = cl ? atomic_load_explicit(&cl->c, memory_order_acquire) : NULL;
	struct sl_pstate st;

	*n = 0;
	if (!c || sl_cluster_pstate_get(c, topic, p, &st) < 0 || !st.n_replicas ||
	    st.n_replicas > SL_REPL_MAX)
		return -ENOENT;
	for (uint32_t i = 0; i < st.n_replicas; i++) {
		snprintf(out[i].id, sizeof(out[i].id), "%s", st.replicas[i]);
		out[i].http[0] = 0;
		out[i].self = !strcmp(st.replicas[i], cl->fetchers.self);
	}
	struct sl__rset rs = {.v = out, .n = st.n_replicas};
	if (sl_cluster_nodes(c, sl__rset_cb, &rs) < 0)
		return -ENOMEM;
	*n = st.n_replicas;
	return 0;
}
