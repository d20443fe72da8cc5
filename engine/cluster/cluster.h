/*
 * cluster: the node's control plane in etcd (issue 16): membership under a
 * lease, a cluster-unique ordinal per node id, the topics' shapes, and each
 * partition's state (leader, leader epoch, replicas, in-sync replicas),
 * kept current in a local cache by a watch. sluice runs no consensus of its
 * own: every decision that two nodes could race on is one etcd txn guarded
 * by a revision, so exactly one writer wins and the other learns it lost.
 *
 * Keys, under /sluice/<name>/ (the etcd client's prefix):
 *   nodes/<id>             {"id","native","http","ordinal"} under the
 *                          node's lease: gone when the node leaves or dies
 *   ordinals/<id>          "N": allocated once per id, never deleted
 *   ordinal_next           "N": the next ordinal (a revision-guarded counter)
 *   topics/<topic>         {"partitions":P,"replicas":R}, created once
 *   partitions/<topic>/<p> {"leader","epoch","replicas","isr","moving_to"}:
 *                          every write is guarded by the mod_revision it was
 *                          read at (0: created only if absent)
 * The codecs are strict (state.c): a value of the wrong shape is refused and
 * ignored by the cache; it never reaches a callback.
 *
 * Pure choices, any thread, no state: the failover controller's election of
 * a dead leader's successor (elect.c) and a quorum read's choice among the
 * replicas' answers (qread.c, which also reads those answers).
 *
 * The lease and fencing (CLUSTER-NOTES: a paused leader must fence itself):
 * sl_cluster_lease_deadline_ns() is when the node stops being allowed to act
 * as a leader: the time the last successful keepalive was SENT (etcd
 * restarted the TTL no earlier than that) + the TTL etcd granted - a margin
 * (SL_CLUSTER_MARGIN_NS). A node checks it before every leader action and
 * stamps writes with the partition's epoch; a node past its deadline may
 * still hold the lease, never the other way round. Transient keepalive
 * failures before the deadline do not drop the lease (the deadline is the
 * guarantee); past it, or when etcd says the lease is gone, on_lease(false)
 * runs, and the thread grants a new lease, registers again and calls
 * on_lease(true).
 *
 * Ownership: sl_cluster_start() returns an object freed by sl_cluster_stop().
 * Everything handed out is copied into caller memory (struct sl_pstate,
 * struct sl_cluster_node); pointers given to a callback are valid only
 * during it.
 *
 * Threads: sl_cluster_start() and sl_cluster_stop() on one (control)
 * thread. The cluster thread `sl-cluster` runs the keepalives, the watch,
 * the cache updates and the creation of missing partition states; every
 * callback runs on it, with no lock of ours held, so a callback may call any
 * function here except sl_cluster_stop(). sl_cluster_topics(),
 * sl_cluster_pstate_cas(), sl_cluster_pstate_get(), sl_cluster_nodes() and
 * the getters are safe from any thread: writes from callers go through a
 * second etcd client under a mutex (the thread's own client is never
 * shared), the cache is read under its mutex (not on any hot path), the
 * lease deadline is one atomic load.
 */
#ifndef SL_CLUSTER_H
#define SL_CLUSTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

struct sl_cluster;

/* Node ids: [A-Za-z0-9._-], 1..63 characters (the NUL makes 64). */
#define SL_CLUSTER_ID_MAX 64
/* A partition's replica set; 7 tolerates 3 failures with a majority, more
 * than any placement sluice is meant for. */
#define SL_CLUSTER_REPLICAS_MAX 7
/* Topic names: the config's alphabet and length (config/keys.c). */
#define SL_CLUSTER_TOPIC_MAX 129
/* Partitions of a topic: SL_CONFIG_TOPIC_MAX_PARTITIONS (config.h). */
#define SL_CLUSTER_PARTITIONS_MAX 4096
/* "host:port" as advertised, printable ASCII. */
#define SL_CLUSTER_ADDR_MAX 256
/* The largest value the codecs write or accept: a partition state with 7
 * replicas of 63-character ids is about 1.1 KiB, a node record with two
 * 255-character addresses about 0.7 KiB. */
#define SL_CLUSTER_JSON_MAX 2048

/* One partition's state as stored in partitions/<topic>/<p>. */
struct sl_pstate {
	char leader[SL_CLUSTER_ID_MAX]; /* "": no leader */
	uint32_t epoch;                 /* leader epoch: the data plane's fencing token */
	uint32_t n_replicas;            /* 1..SL_CLUSTER_REPLICAS_MAX */
	char replicas[SL_CLUSTER_REPLICAS_MAX][SL_CLUSTER_ID_MAX];
	uint32_t n_isr; /* 0..n_replicas, each one of replicas */
	char isr[SL_CLUSTER_REPLICAS_MAX][SL_CLUSTER_ID_MAX];
	char moving_to[SL_CLUSTER_ID_MAX]; /* "": no move under way */
	int64_t mod_revision;              /* as read (not stored in the value) */
};

/* A node as the cluster knows it. */
struct sl_cluster_node {
	char id[SL_CLUSTER_ID_MAX];
	char native[SL_CLUSTER_ADDR_MAX]; /* "" when never seen registered */
	char http[SL_CLUSTER_ADDR_MAX];
	int64_t ordinal; /* -1: not known */
	bool alive;      /* its nodes/<id> key exists */
};

/* A topic this node serves. */
struct sl_cluster_topic {
	const char *name;
	uint32_t partitions; /* 1..SL_CLUSTER_PARTITIONS_MAX */
	uint32_t replicas;   /* 1..SL_CLUSTER_REPLICAS_MAX */
};

struct sl_cluster_opts {
	const char *node_id;
	const char *const *etcd; /* endpoints "http://host:port" */
	size_t n_etcd;
	const char *name;             /* the cluster: keys under /sluice/<name>/ */
	const char *advertise_native; /* "host:port" */
	const char *advertise_http;
	/* Rounded up to whole seconds (etcd's unit); etcd raises a TTL below its
	 * minimum (1.5 election timeouts, rounded up to a second). */
	uint32_t session_ttl_ms;
	/* Bound on each etcd request of callers (CAS, topics); 0: 2000 ms. The
	 * cluster thread's own requests are bounded by a quarter of the TTL, so
	 * a hung etcd cannot hold it past the lease deadline. */
	uint32_t request_timeout_ms;
	/* Cluster thread. Every state seen: once for each at start, then on each
	 * change (a new mod_revision). May be NULL. */
	void (*on_partition)(void *arg, const char *topic, uint32_t p, const struct sl_pstate *s);
	/* Cluster thread. true first thing on the thread, false when the lease
	 * is lost (deadline passed or lease gone), true when a new one is held
	 * and the node registered again. May be NULL. */
	void (*on_lease)(void *arg, bool held);
	/* Cluster thread. A node's record appeared, changed or vanished
	 * (alive false). May be NULL. */
	void (*on_node)(void *arg, const struct sl_cluster_node *n);
	/* The set of runtime topics' definitions (rtopics/) changed, or was
	 * read again: sl_cluster_rtopics_get says what it is now. */
	void (*on_rtopics)(void *arg);
	void *arg;
};

/* Subtracted from the TTL in the lease deadline: it covers the time between
 * a check of the deadline and the write it guards, and clock-rate error
 * (parts per million, negligible). A tenth of the TTL, at least 100 ms. */
#define SL_CLUSTER_MARGIN_MIN_NS 100000000ull

/*
 * Opens etcd (twice: the thread's client and the callers'), grants the
 * lease, refuses a node id registered by a live node (-EEXIST, "node id n1
 * is already registered by a live node"), allocates or reads the ordinal,
 * registers nodes/<id>, reads the whole prefix into the cache and starts
 * the watch, then the thread. 0, -EINVAL (options: err says which),
 * -EEXIST, or an etcd error (err names it). On failure nothing is left
 * behind (the lease is revoked).
 */
int sl_cluster_start(const struct sl_cluster_opts *o, struct sl_cluster **out, char *err,
                     size_t errlen);

/* Stops the thread, revokes the lease (the node's key goes at once), frees.
 * NULL is a no-op. Control thread. */
void sl_cluster_stop(struct sl_cluster *c);

/* CLOCK_MONOTONIC ns until which this node may act as a leader (0: no
 * lease). Any thread; one atomic load. */
uint64_t sl_cluster_lease_deadline_ns(const struct sl_cluster *c);

/* This node's ordinal (fixed for the life of the object). Any thread. */
uint32_t sl_cluster_ordinal(const struct sl_cluster *c);

/* The key of producer proofs, the same on every node (etcd producer_key,
 * made by the first node): SL_CLUSTER_KEY_BYTES, fixed for the life of the
 * object. Any thread. */
#define SL_CLUSTER_KEY_BYTES 32
const uint8_t *sl_cluster_producer_key(const struct sl_cluster *c);

/* The lease currently held (0 while none). Any thread. */
int64_t sl_cluster_lease_id(const struct sl_cluster *c);

/*
 * Adds topics this node serves (calling again adds more; a topic given
 * again with the same shape is a no-op). On the calling thread, for each:
 * topics/<t> is created if absent, or compared with what is stored; a
 * different shape is -EINVAL naming the topic and both shapes (the other
 * topics are still taken). Then, and again on the cluster thread whenever
 * membership changes, every missing partition state of a taken topic is
 * created (create-if-absent) with sl_cluster_place() over the live nodes,
 * once at least R are live. 0, -EINVAL, or an etcd error; err says which.
 */
int sl_cluster_topics(struct sl_cluster *c, const struct sl_cluster_topic *t, size_t n, char *err,
                      size_t errlen);

/*
 * Topics created at runtime: each one's definition (the server's text,
 * opaque here) under rtopics/<t>, the cluster's registry of them; every
 * node makes, alters and deletes its own copy when the set changes
 * (on_rtopics). Any thread.
 *
 * put: create (only if absent: -EEXIST when the name is taken) or replace.
 * delete: rtopics/<t> becomes SL_CLUSTER_RTOPIC_GONE (a create of the
 * name replaces it), then topics/<t> goes (so no node places its missing
 * states again, see forget), then each partitions/<t>/<p> below
 * `partitions`. forget: this node no longer serves the topic (it is not
 * placed by it any more). get: a malloc'd copy of the set (free with
 * sl_cluster_rtopics_free). 0, or an etcd error with err.
 */
/* The definition of a deleted topic (a tombstone; a definition never
 * reads so). */
#define SL_CLUSTER_RTOPIC_GONE "deleted\n"
struct sl_cluster_rtopic {
	char name[SL_CLUSTER_TOPIC_MAX];
	char *def;
	size_t len;
};
int sl_cluster_rtopic_put(struct sl_cluster *c, const char *name, const char *def, size_t len,
                          bool create, char *err, size_t errlen);
int sl_cluster_rtopic_delete(struct sl_cluster *c, const char *name, uint32_t partitions, char *err,
                             size_t errlen);
void sl_cluster_topic_forget(struct sl_cluster *c, const char *name);
int sl_cluster_rtopics_get(struct sl_cluster *c, struct sl_cluster_rtopic **out, size_t *n);
void sl_cluster_rtopics_free(struct sl_cluster_rtopic *v, size_t n);

/*
 * Writes next as partitions/<topic>/<p> only if its mod_revision is still
 * expect_mod_rev (0: only if absent). 0 with *new_mod_rev (may be NULL) the
 * revision of this write; -ESTALE when another writer won (re-read:
 * sl_cluster_pstate_get() catches up through the watch, on_partition says
 * when); -EINVAL for a state the codec refuses; another -errno on etcd
 * errors (a timeout may have written: re-read). err says which. Any thread.
 */
int sl_cluster_pstate_cas(struct sl_cluster *c, const char *topic, uint32_t p,
                          const struct sl_pstate *next, int64_t expect_mod_rev,
                          int64_t *new_mod_rev, char *err, size_t errlen);

/* The cached state of partition p of topic: 0, or -ENOENT when none is
 * known. Any thread. */
int sl_cluster_pstate_get(struct sl_cluster *c, const char *topic, uint32_t p,
                          struct sl_pstate *out);

/*
 * Calls cb for every node known, in id order: the live ones, those seen
 * live since start, and those named in a partition state (alive false when
 * their key is gone). cb runs with no lock held; a non-zero return stops
 * the walk and is returned. Otherwise the count, or -ENOMEM. Any thread.
 */
int sl_cluster_nodes(struct sl_cluster *c, int (*cb)(void *arg, const struct sl_cluster_node *n),
                     void *arg);

/* ---- pure parts (state.c, place.c), for the fuzz target and the tests ---- */

/* [A-Za-z0-9._-], 1..63 characters. */
bool sl_cluster_id_ok(const char *id);
/* The config's topic names: [A-Za-z0-9._-], 1..128, not starting with '.'
 * or '-'. */
bool sl_cluster_topic_name_ok(const char *name);

/*
 * Placement: replica i of partition p is nodes[(p + i) % n], the leader is
 * replicas[0], epoch 1, isr = replicas. nodes: the live node ids, sorted
 * (strcmp), distinct, n >= r. Every node then leads floor or ceil of P/N
 * partitions; it holds floor or ceil of P*R/N replicas when N divides P
 * (or R is 1 or N), and between R*floor(P/N) and R*ceil(P/N) otherwise
 * (place.c says why). 0 or -EINVAL.
 */
int sl_cluster_place(const char *const *nodes, size_t n, uint32_t p, uint32_t r,
                     struct sl_pstate *out);

/*
 * Codecs. Encoders check what they write (a state the decoder would refuse
 * is -EINVAL) and write compact JSON, NUL-terminated, into buf (cap bytes):
 * the length, -EINVAL, or -ENOSPC. Decoders take exactly one JSON object of
 * len bytes (at most SL_CLUSTER_JSON_MAX), every key known and required
 * (moving_to may be absent: ""), of its exact type, ids valid, arrays
 * within bounds and free of repeats, the leader one of the replicas, the
 * isr a subset of them: 0, or -EINVAL with err saying what. (A key given
 * twice: json-c keeps the last one.) A decoded state's mod_revision is 0.
 */
int sl_cluster_pstate_encode(const struct sl_pstate *s, char *buf, size_t cap);
int sl_cluster_pstate_decode(const char *json, size_t len, struct sl_pstate *out, char *err,
                             size_t errlen);
int sl_cluster_node_encode(const struct sl_cluster_node *n, char *buf, size_t cap);
int sl_cluster_node_decode(const char *json, size_t len, struct sl_cluster_node *out, char *err,
                           size_t errlen);
int sl_cluster_topic_encode(uint32_t partitions, uint32_t replicas, char *buf, size_t cap);
int sl_cluster_topic_decode(const char *json, size_t len, uint32_t *partitions, uint32_t *replicas,
                            char *err, size_t errlen);
/* A decimal ordinal as stored in ordinals/<id>: 0..UINT32_MAX, digits only,
 * no leading zeros. 0 or -EINVAL. */
int sl_cluster_ordinal_decode(const char *s, size_t len, uint32_t *out);

/* ---- failover: the controller's choice (elect.c, pure) ------------------ */

enum sl_cluster_acks {
	SL_CLUSTER_ACKS_LEADER = 0,
	SL_CLUSTER_ACKS_QUORUM = 1,
	SL_CLUSTER_ACKS_ALL = 2,
};

/* What one replica said of its copy of a partition (GET
 * /v1/cluster/replica), or that it said nothing. */
struct sl_cluster_reply {
	bool alive;          /* its nodes/<id> key exists */
	bool answered;       /* it answered (within the controller's bound) */
	uint32_t last_epoch; /* the newest leader epoch its log holds */
	uint64_t durable;    /* its durable end */
};

/*
 * The new state of a partition whose leader is dead. s: its state as read;
 * r[i]: replica s->replicas[i]. Candidates are alive AND answered
 * replicas; "most complete" is the highest (last_epoch, durable), ties to
 * the earlier replica.
 *   all:            the most complete live in-sync replica (every one holds
 *                   every acked event); next ISR = old ISR minus the dead.
 *                   A live in-sync replica that did not answer may still be
 *                   chosen when none answered (it holds what was acked).
 *   quorum, leader: only with a majority of the replica set answering (as
 *                   Raft: the most complete log of a majority holds every
 *                   entry a majority acked); next ISR = the replicas that
 *                   answered (live, reachable; repl.c starts each as caught
 *                   up and the keeper drops laggards after replica_lag_max;
 *                   the quorum HW counts all replicas, ISR or not).
 * With no clean choice and unclean set: the most complete candidate, ISR
 * = it alone, *unclean = true. next: leader, epoch + 1, isr, moving_to "",
 * replicas unchanged. 0, -EAGAIN (quorum: fewer than a majority answered),
 * -ENOENT (no candidate: all: no live in-sync replica; or none answered),
 * -EINVAL (s invalid).
 */
int sl_cluster_elect(const struct sl_pstate *s, const struct sl_cluster_reply *r,
                     enum sl_cluster_acks acks, bool unclean, struct sl_pstate *next,
                     bool *was_unclean);

/* ---- quorum reads of read models (qread.c, pure) ------------------------- */

/* The largest replica answer a quorum read takes (a read-model entry: the
 * `latest` plugin's event is the largest today, bounded by the frame). */
#define SL_CLUSTER_QREAD_BODY_MAX (2u << 20)

/* What one replica answered to GET /v1/projections/NAME/KEY?consistency=one. */
struct sl_cluster_qreply {
	bool answered;    /* 200 (the entry) or 404 (no entry), with both offsets */
	int status;       /* its HTTP status; 0 when it did not answer */
	uint64_t applied; /* its model holds every event below this */
	uint64_t holds;   /* every event it holds that may have been acked is below */
};

/*
 * A replica's answer: `status` and its JSON body (an object with the
 * members "applied" and "holds", non-negative integers, among any others).
 * 0 with out->answered for a 200 or 404 that has both; -EAGAIN for any
 * other status (a refusal: 409, 503, 504 ...); -EPROTO for a body that is
 * not such an object (or over SL_CLUSTER_QREAD_BODY_MAX); -ENOMEM. out is
 * always set (answered false unless 0). Pure; the fuzz target's entry.
 */
int sl_cluster_qread_parse(int status, const char *body, size_t len, struct sl_cluster_qreply *out);

/*
 * The choice among r[0..n) (answered or not) of a partition with
 * n_replicas replicas: the index of the most applied answer (ties: the
 * earlier), and *need = the largest of min_need and every answer's
 * `holds`. That answer sees every write acked before the replicas
 * answered when its `applied` >= *need (qread.c says why); when it is
 * below, the caller asks again with min_offset = *need - 1. -EAGAIN when
 * fewer than a majority of n_replicas answered (*need still set).
 */
int sl_cluster_qread_pick(const struct sl_cluster_qreply *r, uint32_t n, uint32_t n_replicas,
                          uint64_t min_need, uint64_t *need);

/* ---- test hook ----------------------------------------------------------- */

/* As sl_cluster_stop() but WITHOUT revoking the lease: what a crashed or
 * partitioned node leaves behind (its key lives until the TTL runs out). */
void sl__cluster_abandon(struct sl_cluster *c);

#ifdef __cplusplus
}
#endif

#endif
