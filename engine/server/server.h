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
#include <stdio.h>

#include "base/base.h"
#include "credit/credit.h"
#include "net/net.h"
#include "topic/topic.h"
#include "json/json.h"

#include "plugin/plugin.h"

struct sl_config_topic;
#include "project/project.h"
#include "reactor/reactor.h"

struct sl_reactor;
struct sl_reader;
struct sl_ring;
struct sl_applier;
struct sl_config_node;
struct sl_sinks;
struct sl_pipes;
struct sl_pipe_spec;
struct sl_pipe_transform_spec;
struct sl_sink_spec;
struct sl_auth;

/*
 * A consumer's topic index that says "the topic named topic_name, which the
 * config does not list" (issue 22): found at create among the runtime
 * topics (data_dir/topics.yaml), or the consumer waits for it and binds
 * when sl_server_topic_create makes it (server/late.c).
 */
#define SL_SERVER_TOPIC_LATER UINT32_MAX

/* A projection to run: plugin NAME.so fed by one topic. */
struct sl_server_proj_spec {
	const char *name;
	const char *plugin;
	uint32_t topic;         /* index into sl_server_opts.topics, or SL_SERVER_TOPIC_LATER */
	const char *topic_name; /* its name (needed with SL_SERVER_TOPIC_LATER) */
	const struct sl_config_node *args; /* the entry's args map, or NULL */
	/* Snapshot cadence of this projection's partitions; 0: the server's
	 * (snapshot_every_*), and 0 there too: 1M events, 60 s. */
	uint64_t snapshot_every_events;
	uint64_t snapshot_every_ns;
};

/* A sink to run (engine/sink): plugin NAME.so copying one topic to the
 * outside world, behind a circuit breaker per partition. */
struct sl_server_sink_spec {
	const char *name;
	const char *plugin;
	uint32_t topic;         /* index into sl_server_opts.topics, or SL_SERVER_TOPIC_LATER */
	const char *topic_name; /* its name (needed with SL_SERVER_TOPIC_LATER) */
	const struct sl_config_node *args; /* the entry's args map, or NULL */
	uint32_t circuit_failures;         /* 0: the default (5) */
	uint64_t circuit_cooldown_ns;      /* 0: the default (1 s) */
};

/* A pipeline to run (engine/pipe): topic `from` through transform plugins,
 * in order, into topic `to` (a transform may also name other topics). */
struct sl_server_transform_spec {
	const char *plugin;
	const struct sl_config_node *args; /* the entry's args map, or NULL */
};

struct sl_server_pipeline_spec {
	const char *name;
	uint32_t from, to; /* indexes into sl_server_opts.topics, or SL_SERVER_TOPIC_LATER */
	const char *from_name, *to_name; /* (needed with SL_SERVER_TOPIC_LATER) */
	const struct sl_server_transform_spec *transforms;
	uint32_t n_transforms; /* >= 1 */
};

/* Cluster mode (PRODUCT.md, Cluster): no etcd endpoints, a node alone. */
struct sl_server_cluster_opts {
	const char *node_id;
	const char *const *etcd;
	size_t n_etcd;
	const char *name;
	const char *advertise_native; /* host:port */
	const char *advertise_http;
	uint32_t session_ttl_ms;
	const char *token_file; /* the token this node presents to others */
};

struct sl_srvcluster;

struct sl_server_opts {
	const char *listen_native; /* "host:port"; port 0 picks one */
	const char *data_dir;      /* partition logs live under it */
	uint32_t n_reactors;       /* 0: one per online CPU */
	uint32_t max_connections;
	/* Native connections one client address may hold (net.h says what
	 * an address is); 0: max_connections (no limit of its own). */
	uint32_t max_connections_per_ip;
	uint32_t max_frame_bytes;
	uint32_t handshake_timeout_ms;
	uint32_t idle_timeout_ms;
	uint32_t drain_timeout_ms; /* give up on clients that do not read */
	const struct sl_topic_spec *topics;
	uint32_t n_topics;
	/* The same topics as the config has them (settings for describe and
	 * list, conflicts with data_dir/topics.yaml); may be NULL. */
	const struct sl_config_topic *config_topics;
	uint32_t n_config_topics;
	bool pin; /* pin reactor i to CPU i % ncpu */
	const struct sl_server_proj_spec *projections;
	uint32_t n_projections;
	const char *const *plugin_path; /* folders searched for NAME.so */
	size_t n_plugin_path;
	/* Snapshot cadence of every projection partition; 0: 1M events, 60 s. */
	uint64_t snapshot_every_events;
	uint64_t snapshot_every_ns;
	/* Test hook (tests/e2e/rebuild.py; sluiced reads it from the
	 * environment, SLUICE_TEST_REBUILD_PAUSE): where every rebuild stops
	 * for good, "apply:N" (after N events), "swap" (both models settled,
	 * before the swap's write) or "swapped" (after it); NULL: nowhere. */
	const char *test_rebuild_pause;
	/* limits.memory_budget; 0: 512 MiB. Three eighths of it are the pool
	 * of byte credits (events in flight; sl_server_create says why), a
	 * quarter the caches of host-state projections (shared evenly by
	 * every projection partition), the rest is for fixed buffers, indexes
	 * and in-memory read models. */
	uint64_t memory_budget;
	/* A partition whose slowest follower (projection, sink) is more than
	 * this many events behind its durable end is pressured; 0: 1M. */
	uint64_t max_lag_events;
	/* A partition with more than this many events waiting for durability
	 * is pressured; 0: 131072. */
	uint64_t max_waiting_events;
	/* The byte window a connection starts with; 0: 64 KiB. It doubles as
	 * the connection uses it, up to its fair share of the pool. (Tests
	 * that pipeline more than that without reading credits set it.) */
	uint64_t credit_start_bytes;
	/* Sinks (engine/sink), one thread each. */
	const struct sl_server_sink_spec *sinks;
	uint32_t n_sinks;
	/* Pipelines (engine/pipe), a stage per partition of `from` on the
	 * reactor that owns it. */
	const struct sl_server_pipeline_spec *pipelines;
	uint32_t n_pipelines;
	/* The token Hellos and HTTP requests must carry (auth/auth.h); NULL:
	 * none. The caller keeps it until sl_server_destroy. */
	const struct sl_auth *auth;
	struct sl_server_cluster_opts cluster;
	/* `auto_create_topics`: a produce to a topic that does not exist
	 * creates it with the defaults (server/admin.c); off: refused. */
	bool auto_create_topics;
};

struct sl_server {
	struct sl_server_opts opts;
	struct sl_topics topics;
	/* Topics created at runtime (server/topics.c): their definitions as
	 * in data_dir/topics.yaml; `mu` serializes the admin calls. */
	struct {
		pthread_mutex_t mu;
		bool inited;
		struct sl_config_topic *v;
		size_t n;
		char *path;
	} rt;
	struct sl_addr native_addr; /* with the port actually bound */
	uint32_t n;                 /* reactors */
	struct sl_reactor **reactors;
	/* rings[i * n + j] carries blocks from reactor i to reactor j (i != j) */
	struct sl_ring **rings;
	struct sl_reader *reader; /* serves Fetch off the reactors */
	/* Cross-reactor counters, each on its own cache line. C11 atomics
	 * rather than ck_pr: they are cold, and TSan understands them. */
	struct {
		_Atomic uint32_t value;
	} SL_CACHE_ALIGNED conns; /* open connections, all reactors */
	struct {
		_Atomic uint32_t value;
	} SL_CACHE_ALIGNED input_done; /* reactors that stopped reading */
	struct {
		_Atomic uint32_t value;
	} SL_CACHE_ALIGNED stopping; /* set once by sl_server_stop() */
	/* Connections refused at accept, by the limit that refused them
	 * (/metrics): [0] max_connections, [1] max_connections_per_ip. */
	struct {
		_Atomic uint64_t value[2];
	} SL_CACHE_ALIGNED refused;
	/* Native connections per client address, shared by the reactors. */
	struct sl_iplimit *per_ip;
	/* The byte credits of every connection (credit/credit.h): 3/8 of
	 * memory_budget, sl_server_create says why. */
	struct sl_credit_pool credits;
	struct sl_producers *producers; /* ids and epochs, shared by the reactors */
	struct sl_proj *projs; /* immutable after create (the appliers are the reactors') */
	/* Reclamation for concurrent-query projections (their models are read
	 * on HTTP threads while their reactors apply). */
	struct sl_epoch *epoch;
	uint32_t n_projs;
	/* Commits the stores of host-state projections (engine/state); NULL
	 * when none has one. Stopped once the reactors are joined. */
	struct sl_state_writer *state_writer;
	/* Topic admin asked on the native port and topics made by a first
	 * produce (server/admin.c): one thread does them off the reactors,
	 * from a queue under mu. */
	struct {
		pthread_mutex_t mu;
		pthread_cond_t cv;
		pthread_t th;
		struct sl_admin_req *head, *tail;
		uint32_t n;
		bool inited, started, stop;
		bool sync; /* the cluster's runtime topics changed (cluster mode) */
	} admin;
	struct sl_ring *pq;     /* per reactor: MPMC ring of struct sl_pquery * */
	struct sl_sinks *sinks; /* sink threads (engine/sink); NULL when none */
	struct sl_pipes *pipes; /* pipeline stages (engine/pipe); NULL when none */
	/* The pipelines' specs in pipe's terms (their transforms in one
	 * array): what binds a pipeline that waited for a topic. */
	struct sl_pipe_spec *pipe_specs;
	struct sl_pipe_transform_spec *pipe_transforms;
	pthread_barrier_t barrier; /* reactors meet once their rings exist */
	/* What the reactors are given (reactor.h): pointers into this server,
	 * filled before the first reactor is created. */
	struct sl_reactor_env env;
	int lock_fd; /* flock on data_dir/.lock */
	bool barrier_ok;
	/* HTTP requests refused for a missing or wrong token: counted by the
	 * HTTP port's threads (sl_server_http_backend hands it over). */
	_Atomic uint64_t http_auth_failures;
	struct sl_srvcluster *cl; /* cluster mode (server/cluster.c); NULL alone */
	/* Consumer groups (group/group.h, server/groups.c): the reactors'
	 * heartbeats and commits, read by status and metrics. */
	struct sl_groups *groups;
	struct sl_peers *peers; /* cluster mode: asking other nodes (server/peer.c) */
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

/*
 * Read-model queries, from any thread but the reactors'; blocks until
 * answered (at most timeout_ms plus a tick). Asks the plugin where `key`
 * lives (one partition, or every one with their answers merged); with
 * has_min, first waits until the projection has applied event `min_offset`
 * of partition `min_partition` (read your writes); with has_max_lag, refuses
 * to answer from a model more than max_lag events behind its partition's
 * durable end as the leader holds it (sl_pquery_lag: on a follower, as it
 * last heard it; a follower that has not heard from its leader within
 * SL_PQUERY_HEARD_MAX_MS is refused too). Returns the HTTP status and a
 * malloc'd JSON body (*body, *len) in every case: 200 (the plugin's object
 * with "token", "lag" and, on a follower, "leader_heard_ms" added), 400
 * (bad key / partition), 404 (no such projection or key), 409 (too far
 * behind, or its lag unknown), 503 (not serving), 504 (min_offset not
 * applied in time).
 * With consistency ONE given explicitly, the answer of a key held in one
 * partition, and its 404 for a missing entry, also carry "applied" (the
 * model holds every event below it) and "holds" (every event this replica
 * holds that may have been acked is below it: a leader's HW, any other
 * replica's own durable end): what a quorum read compares.
 * With consistency QUORUM (cluster mode; server/qread.c): the most applied
 * answer of a majority of the key's partition's replicas, asked in
 * parallel with consistency=one (this node's own model directly when it is
 * one of them); 503 when fewer than a majority answered. A node alone is
 * its own majority.
 */
enum sl_server_consistency {
	SL_SERVER_CONSISTENCY_DEFAULT = 0, /* one, and the answer as before */
	SL_SERVER_CONSISTENCY_ONE,         /* one; the answer adds "applied", "holds" */
	SL_SERVER_CONSISTENCY_QUORUM,      /* server/qread.c */
};
struct sl_server_query {
	const char *projection;
	size_t projection_len;
	const char *key;
	size_t key_len;
	bool has_min, has_max_lag;
	uint32_t min_partition;
	uint64_t min_offset, max_lag;
	uint32_t timeout_ms;
	enum sl_server_consistency consistency;
};
int sl_server_query(struct sl_server *srv, const struct sl_server_query *q, char **body,
                    size_t *len);
/* server/project.c, for server/qread.c: the index of projection NAME, or
 * -ENOENT; the query of this node's own model (consistency one). */
int sl__proj_find(const struct sl_server *srv, const char *name, size_t len);
int sl__query_local(struct sl_server *srv, const struct sl_server_query *q, char **body,
                    size_t *len);
/* server/qread.c: a consistency=quorum read (see sl_server_query). */
int sl__qread(struct sl_server *srv, const struct sl_server_query *q, char **body, size_t *len);
/* server/cluster.c, for quorum reads: partition p of `topic`'s replica set
 * as etcd holds it, with each one's HTTP address ("" unknown) and whether
 * it is this node. 0, or -ENOENT (no state known, or alone). Any thread. */
struct sl_server_replica {
	char id[64];
	char http[256];
	bool self;
};
int sl__cluster_replica_set(struct sl_server *srv, const char *topic, uint32_t p,
                            struct sl_server_replica *out, uint32_t *n);
/* server/project.c, for server.c: plugins and appliers (before the
 * reactors exist), and their release (final snapshots) after they ended. */
int sl__projs_create(struct sl_server *srv, char *err, size_t errlen);
/* Opens projection i's appliers on pj->topic (set by the caller); follow:
 * registers their lag with the partitions now, which only a caller whose
 * partitions no reactor owns yet may do (else their owners do it,
 * sl_reactor_bind). -errno with err. Control or admin thread. */
int sl__proj_open(struct sl_server *srv, uint32_t i, bool follow, char *err, size_t errlen);
/* The projection's topic once it serves (acquire), else NULL (it waits
 * for the topic, or could not bind to it). Any thread. */
const struct sl_topic *sl__proj_serving(const struct sl_proj *pj);
void sl__projs_destroy(struct sl_server *srv);
/* server.c: sink i of opts.sinks in sink's terms (create, and a bind later). */
struct sl_sink_spec sl__sink_spec(const struct sl_server *srv, uint32_t i);
/*
 * server/late.c: projections, sinks and pipelines of topics made at
 * runtime (issue 22). Each names the topic it waits for at start (one
 * stderr line per consumer); sl_server_topic_create, under the registry's
 * mutex, calls sl__late_bind once the new topic `index` is built (before
 * any reactor adopts it: sinks register as followers there) and
 * sl__late_commit once every reactor adopted it (each reactor takes the
 * new projection parts and stages, sl_reactor_bind; then they are
 * published). sl__late_users: how many consumers are bound to topic t
 * (their names in `names`), which a runtime delete refuses.
 */
void sl__late_report(struct sl_server *srv);
void sl__late_bind(struct sl_server *srv, uint32_t index);
void sl__late_commit(struct sl_server *srv);
int sl__late_users(struct sl_server *srv, const struct sl_topic *t, char *names, size_t len);
/* server.c: wakes reactor `reactor` of the server `arg` (callbacks of the
 * reader and of the projections' state commits). */
void sl__wake_reactor(void *arg, uint32_t reactor);

/*
 * Rebuilds projection `name` from offset 0 beside the live model, on each
 * partition's reactor a few thousand events per turn, until it reaches the
 * offset the live model has applied, then compares the two models' bytes.
 * The live model keeps serving. Without `swap` it is not replaced; with
 * it (host-state projections only: 400 for the others), each partition
 * whose models differ gets the rebuilt one, atomically and durably
 * (reactor/proj.c, sl_applier_swap_in). Returns the HTTP status and a JSON
 * body: {"projection":..,"equal":bool,"swapped":N,"partitions":[{"partition",
 * "events","equal","swapped","bytes","rebuilt_bytes"}]}.
 */
int sl_server_rebuild(struct sl_server *srv, const char *name, size_t name_len, bool swap,
                      char **body, size_t *len);

/* GET /v1/status and /metrics bodies (malloc'd). */
int sl_server_status_json(struct sl_server *srv, char **body, size_t *len);
int sl_server_metrics_text(struct sl_server *srv, char **body, size_t *len);

/* The HTTP port's backend over this server (server/http.c); srv must
 * outlive the HTTP server. */
struct sl_http_backend;
/*
 * Topic administration at runtime (server/topics.c). Any thread but a
 * reactor's (HTTP threads); calls are serialized inside. Each returns an
 * HTTP status (200, 201 created, 400 bad request, 404 no such topic, 409
 * exists / in use / a config topic, 500, 503 stopping) and *body, a
 * malloc'd JSON document the caller frees (*blen its length): the topic,
 * the list, or {"error": CODE, "message": TEXT}. Create's body:
 * {"name", "partitions", "replicas" (1), "settings": {KEY: VALUE}} with the
 * keys of a config topic (nested ones dotted: "retention.bytes"); alter's:
 * {"settings": {...}} (overload, retention.*, cleanup, dedup_window,
 * producer_expiry).
 */
int sl_server_topic_create(struct sl_server *srv, const char *json, size_t len, char **body,
                           size_t *blen);
int sl_server_topic_list(struct sl_server *srv, char **body, size_t *blen);
int sl_server_topic_describe(struct sl_server *srv, const char *name, size_t name_len, char **body,
                             size_t *blen);
int sl_server_topic_alter(struct sl_server *srv, const char *name, size_t name_len,
                          const char *json, size_t len, char **body, size_t *blen);
int sl_server_topic_delete(struct sl_server *srv, const char *name, size_t name_len, char **body,
                           size_t *blen);
/* A config topic as the server builds it: 0, or -EINVAL with err. The
 * spec points into c (name, the partitioner's arguments). */
int sl_server_topic_spec(const struct sl_config_topic *c, struct sl_topic_spec *out, char *err,
                         size_t errlen);
/* --check-config: builds (and frees) the topic's partitioner with the
 * code the server starts it with (the directory file read and checked).
 * 0, or a negative code with err naming the topic. */
int sl_server_topic_check(const struct sl_config_topic *c, char *err, size_t errlen);
/* SIGHUP: every directory partitioner reads its file again (part.h,
 * sl_part_reload); one line each on `log`. Returns how many kept their old
 * table (a bad file). Any thread but a reactor's; readers go on. */
int sl_server_reload_partitioners(struct sl_server *srv, FILE *log);
/* --check-config: reports (to `report`) the config's topics that data_dir's
 * topics.yaml also lists; returns how many contradict it (a start refuses
 * those), or -errno with err when the file cannot be read. */
int sl_server_runtime_topics_check(const char *data_dir, const struct sl_config_topic *cfg,
                                   uint32_t n_cfg, FILE *report, char *err, size_t errlen);
/* server/topics.c, for server.c: the registry read at create (merged specs:
 * the config's then the runtime ones, malloc'd), freed at destroy. */
int sl__rt_load(struct sl_server *srv, struct sl_topic_spec **specs, uint32_t *n, char *err,
                size_t errlen);
void sl__rt_free(struct sl_server *srv);
/* The registry's idle expiry: the longest producer_expiry of the topics
 * (an id is forgotten server-wide only once every topic would). After the
 * topics are made, and again when one is added at runtime. */
void sl__producers_expiry(struct sl_server *srv);
/* server/admin.c: the admin thread (init before the reactors are made,
 * start before they run, stop after they ended; destroy any time). */
int sl__admin_init(struct sl_server *srv);
/* groups.c: consumer groups. The table, filled from the offsets topic
 * (control thread, before the reactors); its part of /v1/status (a JSON
 * array) and of /metrics (HTTP threads). */
int sl__groups_create(struct sl_server *srv, char *err, size_t errlen);
void sl__groups_destroy(struct sl_server *srv);
void sl__groups_status_json(struct sl_server *srv, FILE *f);
void sl__groups_metrics(struct sl_server *srv, FILE *f);
int sl__admin_start(struct sl_server *srv);
void sl__admin_stop(struct sl_server *srv);
/* The reactors' env->admin: queues req for the thread; -EAGAIN when the
 * queue is full or the thread not running. */
int sl__admin_submit_req(void *arg, struct sl_admin_req *req);
/* Any thread (the cluster thread's on_rtopics): the admin thread runs
 * sl__topics_sync soon (requests coalesce). */
void sl__admin_sync(struct sl_server *srv);

/* server/topics_cluster.c, cluster mode: this node's runtime topics made,
 * altered and deleted to match the cluster's registry (etcd rtopics/).
 * Admin thread. */
void sl__topics_sync(struct sl_server *srv);
/* The cluster's registry of runtime topics (sl_cluster_rtopic_put and
 * _delete through this node's cluster object): -EAGAIN before it joined. */
int sl__cluster_rt_put(struct sl_server *srv, const char *name, const char *def, size_t len,
                       bool create, char *err, size_t errlen);
int sl__cluster_rt_delete(struct sl_server *srv, const char *name, uint32_t partitions, char *err,
                          size_t errlen);
/* server/topics.c for it: the three admin calls with `def`, a definition
 * from the cluster's registry (one topic in topics.yaml's form): done here
 * only, nothing written to etcd. `internal`: the server makes one of its
 * own topics (SL_TOPIC_INTERNAL_PREFIX names, refused to requests). */
int sl__topic_create(struct sl_server *srv, const char *json, size_t len, const char *def,
                     size_t def_len, bool internal, char **body, size_t *blen);
int sl__topic_alter(struct sl_server *srv, const char *name, size_t name_len, const char *json,
                    size_t len, const char *def, size_t def_len, char **body, size_t *blen);
int sl__topic_delete(struct sl_server *srv, const char *name, size_t name_len, bool local_only,
                     char **body, size_t *blen);
/* A registry text (`topics:` and a list) parsed: *v malloc'd, *n entries;
 * a topic's definition as that text (malloc'd). 0, -errno or -SL_ECONFIG
 * with err. */
int sl__rt_parse(const char *yaml, size_t len, const char *source, struct sl_config_topic **v,
                 size_t *n, char *err, size_t errlen);
int sl__rt_def(const struct sl_config_topic *t, char **def, size_t *len);
/* The names of the runtime topics this node has (malloc'd array of
 * strdup'd names). */
int sl__rt_names(struct sl_server *srv, char ***names, size_t *n);
/* server/topics.c for topics_admin.c (under rt.mu): the registry written
 * (atomically replaced, durable), a runtime topic's entry, a config
 * topic's entry (NULL: none). */
int sl__rt_write(struct sl_server *srv);
struct sl_config_topic *sl__rt_find(struct sl_server *srv, const char *name);
const struct sl_config_topic *sl__cfg_topic(const struct sl_server *srv, const char *name);

/* server/cluster.c for topics created at runtime: replication states for
 * a new topic's partitions (before its reactors adopt it); the cluster
 * takes it (placement) and its cached states are applied (after it is
 * published); a deleted one is not followed or placed by this node any
 * more (before its partitions are dropped). */
int sl__cluster_topic_added(struct sl_server *srv, uint32_t index, char *err, size_t errlen);
int sl__cluster_topic_take(struct sl_server *srv, uint32_t index, char *err, size_t errlen);
void sl__cluster_topic_removed(struct sl_server *srv, struct sl_topic *t);

void sl_server_http_backend(struct sl_server *srv, struct sl_http_backend *out);

/* server/cluster.c: a node of a cluster. create: after the topics, before
 * the reactors (their env); start: after the reactors started; stop: after
 * they stopped. GET /v1/cluster (-ENOENT alone). */
int sl__cluster_create(struct sl_server *srv, char *err, size_t errlen);
int sl__cluster_start(struct sl_server *srv, char *err, size_t errlen);
void sl__cluster_stop(struct sl_server *srv);
void sl__cluster_destroy(struct sl_server *srv);
int sl_server_cluster_json(struct sl_server *srv, char **body, size_t *len);
/* POST /v1/cluster/leader?topic=T&partition=P&node=N on the partition's
 * leader: a planned move (server/cluster.c). The HTTP status, and *body a
 * JSON answer (malloc'd). Blocks up to 10 s while the target catches up. */
int sl_server_partition_move(struct sl_server *srv, const char *topic, const char *partition,
                             const char *node, char **body, size_t *len);
/* The replication lines of /metrics (nothing alone). */
void sl__cluster_metrics(struct sl_server *srv, FILE *f);
/* server/hot.c, for status.c: a topic's skew (its busiest partition's
 * rate over their mean; 0 without events), its top hot_keys keys into
 * out[SL_HOT_K_MAX] (how many), its status fields (skew, factor, hot
 * keys), and the skew and hot-key metrics. HTTP threads. */
double sl__topic_skew(const struct sl_topic *t);
uint32_t sl__topic_hot_keys(const struct sl_topic *t, struct sl_hot_key *out);
void sl__status_hot_topic(const struct sl_topic *t, FILE *f);
void sl__metrics_hot(struct sl_server *srv, FILE *f);
/* GET /v1/cluster/replica?topic=T&partition=P: this node's copy of the
 * partition as the failover controller asks it, {"node","role","epoch",
 * "last_epoch","end","durable"}: the HTTP status (200, 400, 404, 409) and
 * *body (malloc'd JSON). Any HTTP thread. */
int sl_server_replica_json(struct sl_server *srv, const char *topic, const char *partition,
                           char **body, size_t *len);

/*
 * Asking peers (server/peer.c): GET requests to other nodes' HTTP ports,
 * in parallel on one libcurl multi handle driven by the calling thread,
 * each bounded by its own connect and whole-request timeouts and all by
 * the caller's deadline, with the node-to-node token (the first of this
 * node's auth.token_file, read by the caller). Used by the failover
 * controller (`sl-ctl`) and by quorum reads (HTTP threads). Never on a
 * reactor: a call blocks up to its deadline. The pool (one per server,
 * sl__peers_create/destroy on the control thread) keeps multi handles
 * and their keep-alive connections between calls; any thread may run
 * calls on it at once.
 */
#define SL_PEERS_MAX 8 /* requests in one call: a replica set (SL_REPL_MAX) */
struct sl_peers;
struct sl_peer_get {
	/* in */
	const char *url; /* "http://host:port/path?query", the caller's; NULL: not asked
	                  * (done at once, err set) */
	uint32_t connect_ms, timeout_ms;
	size_t max_body; /* a longer answer fails the request (err CURLE_WRITE_ERROR) */
	/* out */
	bool started, done;
	int err;                 /* CURLcode: 0 when an answer came */
	long status;             /* its HTTP status; 0 without an answer */
	struct sl_json_buf body; /* the caller releases it (sl_json_buf_release) */
};
struct sl_peer_run;
int sl__peers_create(struct sl_peers **out);
void sl__peers_destroy(struct sl_peers *ps);
/* Starts g[0..n) (n <= SL_PEERS_MAX) and sends what can go at once. 0 with
 * *run, which the caller ends with sl__peers_end whatever happens. */
int sl__peers_begin(struct sl_peers *ps, struct sl_peer_get *g, size_t n, const char *token,
                    struct sl_peer_run **run);
/* Drives the requests until all are done, `enough` (may be NULL, asked
 * after each round of progress) says so, or deadline_ns: 0, or
 * -ETIMEDOUT (what finished is in g all the same). */
int sl__peers_wait(struct sl_peer_run *run, uint64_t deadline_ns,
                   bool (*enough)(void *arg, const struct sl_peer_get *g, size_t n), void *arg);
/* Abandons what is still running; the handles go back to the pool. */
void sl__peers_end(struct sl_peer_run *run);
/* begin + wait for all + end. */
int sl__peers_get(struct sl_peers *ps, struct sl_peer_get *g, size_t n, const char *token,
                  uint64_t deadline_ns);

/* server/failover.c: the failover controller (issue 17), its own thread
 * `sl-ctl`. start after the cluster started (c), stop before it stops. */
struct sl_failover;
struct sl_cluster;
int sl__failover_start(struct sl_server *srv, struct sl_cluster *c, const char *self,
                       struct sl_failover **out, char *err, size_t errlen);
void sl__failover_stop(struct sl_failover *k);
/* A node vanished: look at the partitions now (any thread). */
void sl__failover_kick(struct sl_failover *k);
/* The controller's node id as this node last learnt it ("" unknown). */
void sl__failover_controller(struct sl_failover *k, char *out, size_t cap);
void sl__failover_metrics(struct sl_failover *k, FILE *f);

/* server/fetch.c: the follower's side of replication (cluster mode). */
struct sl_fetchers {
	struct sl_server *srv;
	/* The token file (auth.token_file), read again at every connect so
	 * that a rotation (SIGHUP) reaches new connections; NULL: no auth. */
	const char *token_file;
	char self[SL_REPL_ID_MAX];
	/* follow/unfollow come from the cluster thread and, once at start,
	 * from the control thread (sl__cluster_start): `mu` orders them. */
	pthread_mutex_t mu;
	struct sl_fetcher *list; /* one per leader node; under `mu` */
};
/* Cluster thread: follow partition p (topic index `topic`) from `leader`
 * at host:port `addr` in leader epoch `epoch`; unfollow it. */
int sl__fetch_follow(struct sl_fetchers *fs, uint32_t topic, struct sl_partition *p,
                     const char *leader, const char *addr, uint32_t epoch);
void sl__fetch_unfollow(struct sl_fetchers *fs, struct sl_partition *p);
/* env.repl_durable: a followed partition made more of its log durable. */
void sl__fetch_durable(void *arg, struct sl_partition *p);
/* After the reactors stopped. */
void sl__fetchers_stop(struct sl_fetchers *fs);

#endif
