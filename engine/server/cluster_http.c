/*
 * What the HTTP threads ask of a cluster node (cluster mode): GET
 * /v1/cluster (this node's view), the replication lines of /metrics, a
 * planned leader move (POST /v1/cluster/leader), the failover controller's
 * question about this node's copy of a partition (GET
 * /v1/cluster/replica) and a partition's replica set for quorum reads.
 * The other half of the node, the threads that keep the state these read,
 * is server/cluster.c.
 *
 * Threads: HTTP threads only; they read the partitions' atomics and the
 * cluster's cached states (sl_cluster_pstate_get), never write a role.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/base.h"
#include "cluster/cluster.h"
#include "server/cluster_impl.h"
#include "server/server.h"

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
