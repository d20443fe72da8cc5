/*
 * The failover controller (issue 17): one node of the cluster at a time,
 * elected through etcd's election service, gives every partition whose
 * leader died a new one.
 *
 * Office: every node's `sl-ctl` thread campaigns for `controller` (under
 * /sluice/<name>/) with its node id, under the node's own lease, so the
 * office ends when the node dies (its lease expires) or leaves (revoked).
 * A campaign blocks until won, bounded by SL_CTL_CAMPAIGN_NS so the thread
 * sees a stop or a new lease; a node that is not controller asks etcd who
 * is after each bound (for /v1/cluster). A won campaign is confirmed (a
 * txn on the leader key's create revision and the lease's time to live:
 * a campaign can return after the lease behind it expired), and the
 * controller acts only while this node's lease deadline holds (cluster.h:
 * last keepalive sent + TTL - a margin), checked before every write, and
 * while its key is still the office's (confirmed again every
 * SL_CTL_CONFIRM_NS). The first failed check ends the term: no act after.
 * Two controllers cannot race on a partition anyway: every write is the
 * revision-guarded CAS of its state.
 *
 * Decisions: at taking office and then every SL_CTL_PERIOD_NS (at once
 * when a node vanishes from the watch cache), each partition of this
 * node's topics whose leader is not a live node gets one: the live
 * replicas are asked (GET /v1/cluster/replica, all at once and bounded:
 * server/peer.c) for their
 * last leader epoch and durable end, sl_cluster_elect() chooses (cluster.h
 * says the rules per acks mode), and the new state (leader, epoch + 1, the
 * ISR) is written with the CAS guarded by the revision read. A lost CAS is
 * decided again from the new state at the next look. The old leader, if
 * only paused or cut off, acks nothing past its lease deadline, which
 * passed before etcd deleted its node key; back, it follows the new leader
 * and cuts what its log holds beyond (server/fetch.c).
 *
 * Threads: start/stop on the control thread; everything else on `sl-ctl`,
 * but the getters (controller name, metrics) and the kick, from any thread.
 */
#include <errno.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/auth.h"
#include "base/base.h"
#include "cluster/cluster.h"
#include "etcd/etcd.h"
#include "server/server.h"
#include "json/json.h"

#define SL_CTL_MS 1000000ull
/* A campaign's bound: how late a stop or a new lease is seen while another
 * node holds the office. Each bound withdraws the candidacy and makes a
 * new one (two etcd writes): cheap at once a second. */
#define SL_CTL_CAMPAIGN_MS 1000u
/* How often the controller looks at every partition (and at once when a
 * node vanishes): a retry after no majority answered or a lost CAS. */
#define SL_CTL_PERIOD_NS (200ull * SL_CTL_MS)
/* How often the office is confirmed in etcd besides the lease deadline. */
#define SL_CTL_CONFIRM_NS (500ull * SL_CTL_MS)
/* A replica's answer: a live node answers from memory in well under a
 * millisecond; a paused one must not hold the election for long. */
#define SL_CTL_ASK_CONNECT_MS 300L
#define SL_CTL_ASK_MS         800L
/* Partitions whose "cannot elect" was said, so it is said once per state
 * and set of answers, not every look. */
#define SL_CTL_SAID_MAX 256

struct sl__said {
	char topic[SL_CLUSTER_TOPIC_MAX];
	uint32_t p;
	int64_t rev;
	uint32_t answered;
};

struct sl_failover {
	struct sl_server *srv;
	struct sl_cluster *c;
	char self[SL_CLUSTER_ID_MAX];
	const char *token_file;
	struct sl_etcd *e; /* sl-ctl's */
	pthread_t th;
	bool started;
	struct sl_notify n;
	_Atomic bool stop;
	_Atomic bool kick;
	_Atomic uint32_t office; /* 1 while this node is controller */
	_Atomic uint64_t elections, unclean;
	pthread_mutex_t mu; /* guards controller */
	char controller[SL_CLUSTER_ID_MAX];
	struct sl__said said[SL_CTL_SAID_MAX];
	uint32_t n_said;
	char last_err[256]; /* the last etcd error said, said once */
};

static void sl__failover_set_controller(struct sl_failover *k, const char *id)
{
	pthread_mutex_lock(&k->mu);
	snprintf(k->controller, sizeof(k->controller), "%.*s", SL_CLUSTER_ID_MAX - 1, id);
	pthread_mutex_unlock(&k->mu);
}

void sl__failover_controller(struct sl_failover *k, char *out, size_t cap)
{
	if (!k) {
		snprintf(out, cap, "%s", "");
		return;
	}
	pthread_mutex_lock(&k->mu);
	snprintf(out, cap, "%s", k->controller);
	pthread_mutex_unlock(&k->mu);
}

void sl__failover_kick(struct sl_failover *k)
{
	if (!k)
		return;
	atomic_store_explicit(&k->kick, true, memory_order_release);
	sl_notify_signal(&k->n);
}

void sl__failover_metrics(struct sl_failover *k, FILE *f)
{
	if (!k)
		return;
	fprintf(f,
	        "# HELP sluice_controller 1 while this node is the cluster's failover "
	        "controller.\n# TYPE sluice_controller gauge\nsluice_controller %u\n"
	        "# HELP sluice_leader_elections_total Partition leaders this node elected as "
	        "controller after a leader died.\n# TYPE sluice_leader_elections_total "
	        "counter\nsluice_leader_elections_total %" PRIu64 "\n"
	        "# HELP sluice_unclean_elections_total Of those, leaders that were not known "
	        "to hold every acked event (unclean_election: true).\n"
	        "# TYPE sluice_unclean_elections_total counter\n"
	        "sluice_unclean_elections_total %" PRIu64 "\n",
	        atomic_load(&k->office), atomic_load(&k->elections), atomic_load(&k->unclean));
}

static bool sl__failover_woken(void *arg)
{
	struct sl_failover *k = arg;
	return atomic_load_explicit(&k->stop, memory_order_acquire) ||
	       atomic_load_explicit(&k->kick, memory_order_acquire);
}

static bool sl__failover_stopping(void *arg)
{
	return atomic_load_explicit(&((struct sl_failover *)arg)->stop, memory_order_acquire);
}

/* An etcd failure, said once until another one comes. */
static void sl__failover_etcd_err(struct sl_failover *k, const char *what, const char *msg)
{
	if (!strcmp(k->last_err, msg))
		return;
	snprintf(k->last_err, sizeof(k->last_err), "%s", msg);
	fprintf(stderr, "sluiced: node %s: controller election: %s: %s\n", k->self, what, msg);
}

/* ---- asking a replica ----------------------------------------------------------- */

static bool sl__failover_u64(struct json_object *o, const char *name, uint64_t *v)
{
	struct json_object *f;
	if (!json_object_object_get_ex(o, name, &f) || !json_object_is_type(f, json_type_int))
		return false;
	int64_t x = json_object_get_int64(f);
	if (x < 0)
		return false;
	*v = (uint64_t)x;
	return true;
}

/* GET /v1/cluster/replica of one node, as the request to send. */
static void sl__failover_ask(struct sl_peer_get *g, char *url, size_t cap, const char *http,
                             const char *topic, uint32_t p)
{
	snprintf(url, cap, "http://%s/v1/cluster/replica?topic=%s&partition=%u", http, topic, p);
	g->url = url;
	g->connect_ms = SL_CTL_ASK_CONNECT_MS;
	g->timeout_ms = SL_CTL_ASK_MS;
	g->max_body = 4096;
}

/* Its answer: true with *r filled when it answered 200 with the numbers. */
static bool sl__failover_answer(struct sl_peer_get *g, struct sl_cluster_reply *r)
{
	bool ok = false;

	if (g->done && !g->err && g->status == 200 && g->body.len &&
	    sl_json_buf_put_raw(&g->body, "", 1) == 0) {
		struct json_object *o = json_tokener_parse(g->body.data);
		uint64_t e = 0;
		ok = o && json_object_is_type(o, json_type_object) &&
		     sl__failover_u64(o, "last_epoch", &e) && e <= UINT32_MAX &&
		     sl__failover_u64(o, "durable", &r->durable);
		r->last_epoch = (uint32_t)e;
		json_object_put(o);
	}
	r->answered = ok;
	return ok;
}

/* ---- one partition ---------------------------------------------------------------- */

struct sl__live {
	size_t n;
	struct sl_cluster_node v[64];
};

static int sl__failover_node_cb(void *arg, const struct sl_cluster_node *n)
{
	struct sl__live *l = arg;
	if (n->alive && l->n < sizeof(l->v) / sizeof(l->v[0]))
		l->v[l->n++] = *n;
	return 0;
}

static const struct sl_cluster_node *sl__failover_live(const struct sl__live *l, const char *id)
{
	for (size_t i = 0; i < l->n; i++)
		if (!strcmp(l->v[i].id, id))
			return &l->v[i];
	return NULL;
}

/* Whether "cannot elect" was said already for this state and answers;
 * remembers it if not. */
static bool sl__failover_said(struct sl_failover *k, const char *topic, uint32_t p, int64_t rev,
                              uint32_t answered)
{
	struct sl__said *s = NULL;
	for (uint32_t i = 0; i < k->n_said && !s; i++)
		if (k->said[i].p == p && !strcmp(k->said[i].topic, topic))
			s = &k->said[i];
	if (s && s->rev == rev && s->answered == answered)
		return true;
	if (!s)
		s = &k->said[k->n_said < SL_CTL_SAID_MAX ? k->n_said++ : 0];
	snprintf(s->topic, sizeof(s->topic), "%s", topic);
	s->p = p;
	s->rev = rev;
	s->answered = answered;
	return false;
}

static enum sl_cluster_acks sl__failover_acks(enum sl_repl_acks a)
{
	return a == SL_REPL_ACKS_ALL      ? SL_CLUSTER_ACKS_ALL
	       : a == SL_REPL_ACKS_QUORUM ? SL_CLUSTER_ACKS_QUORUM
	                                  : SL_CLUSTER_ACKS_LEADER;
}

/* Gives partition p of topic t a leader if its own is dead. false: the
 * office is over (deadline passed): stop acting. */
static bool sl__failover_partition(struct sl_failover *k, struct sl_topic *t, uint32_t p,
                                   const struct sl__live *live, char *token, bool *token_read)
{
	struct sl_pstate st, next;
	struct sl_cluster_reply r[SL_CLUSTER_REPLICAS_MAX];
	char err[256];
	uint32_t answered = 0, n_alive = 0;
	bool unclean = false;

	if (sl_cluster_pstate_get(k->c, t->name, p, &st) < 0 ||
	    (st.leader[0] && sl__failover_live(live, st.leader)))
		return true;
	if (!*token_read) {
		/* read again at each election: SIGHUP may have rotated it */
		token[0] = 0;
		if (k->token_file &&
		    sl_auth_file_token(k->token_file, token, 512, err, sizeof(err)) < 0)
			token[0] = 0;
		*token_read = true;
	}
	memset(r, 0, sizeof(r));
	/* The live replicas are asked at once, so a paused one costs the
	 * election one bound (SL_CTL_ASK_MS), not one each. */
	struct sl_peer_get g[SL_CLUSTER_REPLICAS_MAX];
	char urls[SL_CLUSTER_REPLICAS_MAX][SL_CLUSTER_ADDR_MAX + SL_CLUSTER_TOPIC_MAX + 64];
	memset(g, 0, sizeof(g));
	for (uint32_t i = 0; i < st.n_replicas; i++) {
		const struct sl_cluster_node *n = sl__failover_live(live, st.replicas[i]);
		r[i].alive = n != NULL;
		n_alive += r[i].alive;
		if (n && n->http[0])
			sl__failover_ask(&g[i], urls[i], sizeof(urls[i]), n->http, t->name, p);
	}
	sl__peers_get(k->srv->peers, g, st.n_replicas, token,
	              sl_now_ns() + (uint64_t)SL_CTL_ASK_MS * SL_CTL_MS);
	for (uint32_t i = 0; i < st.n_replicas; i++) {
		if (sl__failover_answer(&g[i], &r[i]))
			answered |= 1u << i;
		sl_json_buf_release(&g[i].body);
	}
	int ret = sl_cluster_elect(&st, r, sl__failover_acks(t->spec.acks),
	                           t->spec.unclean_election, &next, &unclean);
	if (ret < 0) {
		if (!sl__failover_said(k, t->name, p, st.mod_revision, answered))
			fprintf(
			    stderr,
			    "sluiced: controller %s: cannot elect a leader for %s/%u (leader %s "
			    "gone, epoch %u): %s; %u of %u replicas live, %u answered%s\n",
			    k->self, t->name, p, st.leader[0] ? st.leader : "(none)", st.epoch,
			    ret == -EAGAIN ? "no majority of the replicas answered"
			                   : "no in-sync replica is live",
			    n_alive, st.n_replicas, (unsigned)__builtin_popcount(answered),
			    t->spec.unclean_election ? "" : " (unclean_election is off)");
		return true;
	}
	/* The last check before the write: this node's lease (and so its
	 * office) still holds. */
	if (sl_cluster_lease_deadline_ns(k->c) <= sl_now_ns())
		return false;
	ret =
	    sl_cluster_pstate_cas(k->c, t->name, p, &next, st.mod_revision, NULL, err, sizeof(err));
	if (ret < 0) {
		if (ret != -ESTALE)
			fprintf(stderr,
			        "sluiced: controller %s: %s/%u: cannot write the new leader: %s\n",
			        k->self, t->name, p, err);
		return true;
	}
	atomic_fetch_add_explicit(&k->elections, 1, memory_order_relaxed);
	int w = -1;
	for (uint32_t i = 0; i < st.n_replicas; i++)
		if (!strcmp(st.replicas[i], next.leader))
			w = (int)i;
	fprintf(stderr,
	        "sluiced: controller %s: %s/%u: leader %s, leader epoch %u (was %s, gone; it "
	        "holds epoch %u to %" PRIu64 "; %u of %u replicas answered)\n",
	        k->self, t->name, p, next.leader, next.epoch, st.leader[0] ? st.leader : "(none)",
	        w >= 0 ? r[w].last_epoch : 0, w >= 0 ? r[w].durable : 0,
	        (unsigned)__builtin_popcount(answered), st.n_replicas);
	if (unclean) {
		atomic_fetch_add_explicit(&k->unclean, 1, memory_order_relaxed);
		uint64_t most = 0;
		for (uint32_t i = 0; i < st.n_replicas; i++)
			if (r[i].answered && r[i].durable > most)
				most = r[i].durable;
		fprintf(stderr,
		        "sluiced: controller %s: UNCLEAN ELECTION of %s/%u: %s was not known to "
		        "hold every acked event (acks %s, %u of %u replicas answered); acked "
		        "events the dead replicas held past offset %" PRIu64
		        " may be LOST (unclean_election: true)\n",
		        k->self, t->name, p, next.leader,
		        t->spec.acks == SL_REPL_ACKS_ALL      ? "all"
		        : t->spec.acks == SL_REPL_ACKS_QUORUM ? "quorum"
		                                              : "leader",
		        (unsigned)__builtin_popcount(answered), st.n_replicas,
		        w >= 0 ? r[w].durable : most);
	}
	return true;
}

/* Every partition of this node's topics. false: the office is over. */
static bool sl__failover_scan(struct sl_failover *k)
{
	struct sl__live live = {0};
	char token[512];
	bool token_read = false;

	if (sl_cluster_nodes(k->c, sl__failover_node_cb, &live) < 0)
		return true;
	uint32_t n_topics = atomic_load(&k->srv->topics.n);
	for (uint32_t t = 0; t < n_topics; t++) {
		struct sl_topic *tp = &k->srv->topics.v[t];
		if (atomic_load(&tp->deleted))
			continue;
		for (uint32_t p = 0; p < tp->n_parts; p++) {
			if (atomic_load_explicit(&k->stop, memory_order_acquire))
				return true;
			if (!tp->parts[p].repl)
				continue;
			if (!sl__failover_partition(k, tp, p, &live, token, &token_read))
				return false;
		}
	}
	return true;
}

/* ---- the office ------------------------------------------------------------------- */

/* A term: from a confirmed campaign until the lease deadline passes, the
 * key is no longer the office's, or the node stops. */
static void sl__failover_term(struct sl_failover *k, const struct sl_etcd_leader *me)
{
	const char *why = "stopping";
	uint64_t next_confirm = sl_now_ns() + SL_CTL_CONFIRM_NS;

	atomic_store(&k->office, 1);
	sl__failover_set_controller(k, k->self);
	fprintf(stderr, "sluiced: node %s: controller\n", k->self);
	while (!atomic_load_explicit(&k->stop, memory_order_acquire)) {
		uint64_t now = sl_now_ns();
		if (sl_cluster_lease_deadline_ns(k->c) <= now ||
		    sl_cluster_lease_id(k->c) != me->lease) {
			why = "its lease deadline passed";
			break;
		}
		if (now >= next_confirm) {
			bool holds = false;
			int r = sl_etcd_leader_confirm(k->e, me, &holds, NULL);
			if (r == 0 && !holds) {
				why = "etcd no longer names it";
				break;
			}
			/* An etcd error: the deadline above still bounds the term. */
			next_confirm = now + SL_CTL_CONFIRM_NS;
		}
		atomic_store_explicit(&k->kick, false, memory_order_release);
		if (!sl__failover_scan(k)) {
			why = "its lease deadline passed";
			break;
		}
		sl_notify_wait(&k->n, sl__failover_woken, k, SL_CTL_PERIOD_NS);
	}
	atomic_store(&k->office, 0);
	sl__failover_set_controller(k, "");
	fprintf(stderr, "sluiced: node %s: no longer controller (%s)\n", k->self, why);
	/* Leaving while the lease holds: the next candidate need not wait for
	 * it to expire. */
	if (atomic_load(&k->stop) && sl_cluster_lease_deadline_ns(k->c) > sl_now_ns())
		sl_etcd_resign(k->e, me);
}

static void *sl__failover_thread(void *arg)
{
	struct sl_failover *k = arg;
	pthread_setname_np(pthread_self(), "sl-ctl");
	while (!atomic_load_explicit(&k->stop, memory_order_acquire)) {
		int64_t lease = sl_cluster_lease_id(k->c);
		if (!lease || sl_cluster_lease_deadline_ns(k->c) <= sl_now_ns()) {
			/* No office without a lease: wait for on_lease(true). */
			sl_notify_wait(&k->n, sl__failover_stopping, k, 100 * SL_CTL_MS);
			continue;
		}
		struct sl_etcd_leader me;
		int r = sl_etcd_campaign(k->e, "controller", lease, k->self, strlen(k->self),
		                         SL_CTL_CAMPAIGN_MS, &me);
		if (r == -ETIMEDOUT) {
			/* Another node holds the office: who, for /v1/cluster
			 * (and the log, when it changed). */
			struct sl_etcd_leader who;
			char was[SL_CLUSTER_ID_MAX];
			sl__failover_controller(k, was, sizeof(was));
			if (sl_etcd_election_leader(k->e, "controller", &who) < 0)
				who.value[0] = 0;
			sl__failover_set_controller(k, who.value);
			if (who.value[0] && strcmp(was, who.value))
				fprintf(stderr, "sluiced: node %s: the controller is %s\n", k->self,
				        who.value);
			continue;
		}
		if (r < 0) {
			sl__failover_etcd_err(k, "campaign", sl_etcd_errmsg(k->e));
			sl_notify_wait(&k->n, sl__failover_stopping, k, 500 * SL_CTL_MS);
			continue;
		}
		/* CLUSTER-NOTES: a campaign may return after the lease behind
		 * it expired. Act only on a confirmed office, and only while
		 * this node's own deadline holds (sl__failover_term). */
		bool holds = false;
		r = sl_etcd_leader_confirm(k->e, &me, &holds, NULL);
		if (r < 0 || !holds || me.lease != lease) {
			if (r < 0)
				sl__failover_etcd_err(k, "confirm", sl_etcd_errmsg(k->e));
			sl_notify_wait(&k->n, sl__failover_stopping, k, 100 * SL_CTL_MS);
			continue;
		}
		k->last_err[0] = 0;
		sl__failover_term(k, &me);
	}
	return NULL;
}

int sl__failover_start(struct sl_server *srv, struct sl_cluster *c, const char *self,
                       struct sl_failover **out, char *err, size_t errlen)
{
	const struct sl_server_cluster_opts *o = &srv->opts.cluster;
	struct sl_failover *k = calloc(1, sizeof(*k));
	char prefix[SL_CLUSTER_TOPIC_MAX + 16];
	int ret;

	*out = NULL;
	if (!k)
		return -ENOMEM;
	k->srv = srv;
	k->c = c;
	k->token_file = o->token_file;
	snprintf(k->self, sizeof(k->self), "%s", self);
	pthread_mutex_init(&k->mu, NULL);
	if (sl_notify_init(&k->n) != 0) {
		pthread_mutex_destroy(&k->mu);
		free(k);
		return -ENOMEM;
	}
	snprintf(prefix, sizeof(prefix), "/sluice/%s/", o->name);
	/* Its own client: a campaign blocks it (etcd.h: one thread per
	 * client). Requests other than campaigns are bounded like the
	 * cluster thread's. */
	ret = sl_etcd_open(o->etcd, o->n_etcd, prefix, 1000, &k->e, err, errlen);
	if (ret < 0)
		goto fail;
	if (pthread_create(&k->th, NULL, sl__failover_thread, k) != 0) {
		snprintf(err, errlen, "cannot start the failover controller's thread");
		ret = -EAGAIN;
		goto fail;
	}
	k->started = true;
	*out = k;
	return 0;
fail:
	sl_etcd_close(k->e);
	sl_notify_destroy(&k->n);
	pthread_mutex_destroy(&k->mu);
	free(k);
	return ret;
}

void sl__failover_stop(struct sl_failover *k)
{
	if (!k)
		return;
	if (k->started) {
		atomic_store_explicit(&k->stop, true, memory_order_release);
		sl_notify_signal(&k->n);
		pthread_join(k->th, NULL);
	}
	sl_etcd_close(k->e);
	sl_notify_destroy(&k->n);
	pthread_mutex_destroy(&k->mu);
	free(k);
}
