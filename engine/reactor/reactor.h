/*
 * reactor: one thread pinned to one core, with its own io_uring, that owns
 * its connections and its partitions (shard per core).
 *
 * Data path. A reactor accepts connections on its own SO_REUSEPORT socket
 * (multishot accept) and receives into provided buffers (a buffer ring
 * registered with its io_uring), so an idle connection holds no receive
 * memory. Frames are parsed in place. Each event of a Produce frame goes to
 * the partition of its aggregate id; when that partition is owned by another
 * reactor the event is copied into a transfer block bound for that reactor,
 * and full blocks cross over through the SPSC ring between the two (one push
 * per block, one io_uring msg_ring wake per loop turn). The owner appends the
 * events, flushes, and sends acks back the same way as ack blocks. Blocks are
 * returned to the reactor that allocated them, so each reactor's block pool
 * bounds its in-flight cross-core memory; when the pool runs dry the reactor
 * stops re-arming receives until blocks come home (backpressure to TCP).
 *
 * Threads: everything here runs on the reactor's own thread, except
 * sl_reactor_create/listen/start/join/destroy (control thread),
 * sl_reactor_wake (any) and the stats getters (any).
 *
 * Layering: the server builds a struct sl_reactor_env and hands it over;
 * the reactor drives topics, logs, credits, projections (project.h) and
 * pipeline stages (pipe.h) and never calls up into the server.
 */
#ifndef SL_REACTOR_H
#define SL_REACTOR_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

struct sl_reactor;
struct sl_topics;
struct sl_topic_spec;
struct sl_ring;
struct sl_reader;
struct sl_producers;
struct sl_credit_pool;
struct sl_proj;
struct sl_pipes;
struct sl_auth;
struct sl_groups;
struct sl_admin_req;
struct sl_iplimit;

/* The limits a reactor enforces (sl_server_opts says what each means). */
struct sl_reactor_limits {
	uint32_t max_connections;        /* of the whole server: every one could land here */
	uint32_t max_connections_per_ip; /* per client address, all reactors */
	uint32_t max_frame_bytes;
	uint32_t handshake_timeout_ms;
	uint32_t idle_timeout_ms;
	uint32_t drain_timeout_ms;
	uint64_t max_lag_events; /* pressure bounds of the partitions owned */
	uint64_t max_waiting_events;
	bool pin; /* pin reactor i to CPU i % ncpu */
};

/*
 * Everything a reactor is given: what it shares with the other reactors
 * and the rest of the server, and nothing else (it never sees the
 * server). The creator owns all of it, fills it before the first
 * sl_reactor_create, and keeps it unchanged until the last
 * sl_reactor_destroy; the reactors read it from their threads.
 */
struct sl_partition;

struct sl_reactor_env {
	uint32_t n;                              /* reactors */
	struct sl_reactor *const *peers;         /* all n, by id: ring fds, pressure masks */
	struct sl_topics *topics;                /* partition p is owned by its `owner` */
	const struct sl_topic_spec *topic_specs; /* durability (the tick's length) */
	/* rings[i * n + j] carries blocks from reactor i to reactor j (i != j) */
	struct sl_ring *const *rings;
	struct sl_reader *reader;       /* serves Fetch off the reactors */
	struct sl_producers *producers; /* ids and epochs (Hello) */
	struct sl_credit_pool *credits; /* byte credits of every connection */
	struct sl_reactor_limits lim;
	/* Cross-reactor counters (each on its own cache line at the owner). */
	_Atomic uint32_t *conns; /* open connections, all reactors */
	/* Connections per client address, all reactors (net.h), checked at
	 * accept against lim.max_connections_per_ip; NULL: not counted. */
	struct sl_iplimit *per_ip;
	/* Connections refused at accept: [0] over max_connections, [1] over
	 * max_connections_per_ip (relaxed adds, read by /metrics). */
	_Atomic uint64_t *refused;
	_Atomic uint32_t *input_done;     /* reactors that stopped reading */
	const _Atomic uint32_t *stopping; /* set once when the server stops */
	pthread_barrier_t *start_barrier; /* n parties; initialised before start */
	/* Projections (project.h): reactor i steps the parts of the
	 * partitions it owns and answers the requests of pq[i], an MPMC ring
	 * of struct sl_pquery * that it is woken for (sl_reactor_wake). */
	struct sl_proj *projs;
	uint32_t n_projs;
	struct sl_ring *pq;
	struct sl_pipes *pipes; /* pipeline stages (pipe.h); NULL: none */
	/* The token every Hello must carry (auth/auth.h; read-only checks
	 * from any thread); NULL: none asked. */
	const struct sl_auth *auth;
	/* Cluster mode (NULL alone): rq[i] is reactor i's MPMC ring of
	 * struct sl_repl_chunk * from the fetchers (sl_reactor_repl_submit);
	 * repl_durable(repl_arg, p) is called on the owner when a partition
	 * it follows made more of its log durable, so that the fetcher tells
	 * the leader (cheap and thread-safe: an eventfd write). */
	struct sl_ring *rq;
	void (*repl_durable)(void *arg, struct sl_partition *p);
	void *repl_arg;
	/* When this node's lease ends (CLOCK_MONOTONIC ns): past it a leader
	 * acks nothing more (its HW stands still), because another node may
	 * lead by then. NULL: no lease (a node alone). */
	uint64_t (*lease_deadline)(void *arg);
	void *lease_arg;
	/* Topic admin asked on the native port, and topics created by a
	 * first produce (server/admin.c): admin(admin_arg, req) hands a
	 * request to the server's admin thread, which answers through
	 * sl_reactor_admin_done; nonzero: not taken (the reactor answers
	 * 503 itself). NULL: neither is served. auto_create: a Produce to a
	 * topic that does not exist parks its connection and asks for the
	 * topic (limits in server/admin.c), instead of refusing its events. */
	int (*admin)(void *arg, struct sl_admin_req *req);
	void *admin_arg;
	bool auto_create;
	/* Consumer groups (group/group.h; needs `admin` to make the offsets
	 * topic). NULL: not served. Refused in cluster mode for now. */
	struct sl_groups *groups;
};

/*
 * One topic admin request between a reactor and the server's admin thread.
 * The reactor allocates it (with name and body copied after the struct),
 * the admin thread owns it until it calls sl_reactor_admin_done, which
 * gives it back to the reactor; the reactor answers the connection (if it
 * is still the same one: conn and gen) and frees it.
 */
enum sl_admin_op {
	SL_ADMIN_LIST = 1,
	SL_ADMIN_DESCRIBE = 2,
	SL_ADMIN_CREATE = 3,
	SL_ADMIN_ALTER = 4,
	SL_ADMIN_DELETE = 5,
	/* A Produce named a topic that does not exist: create it with the
	 * server's defaults (no answer frame; the parked input goes on). */
	SL_ADMIN_AUTO_CREATE = 6,
};

struct sl_admin_req {
	uint32_t reactor, conn, gen;
	uint64_t request_id;
	enum sl_admin_op op;
	const char *name; /* NUL-terminated, inside the allocation */
	size_t name_len;
	const char *body; /* JSON (create, alter), NUL-terminated */
	size_t body_len;
	/* The answer, set by the admin thread: an HTTP-like status and a
	 * JSON document (malloc'd; freed with the request). */
	int status;
	char *answer;
	size_t answer_len;
	struct sl_admin_req *next; /* the admin thread's queue, then the reactor's */
};

/* Any thread (the admin thread): hands an answered request back to its
 * reactor and wakes it. After the reactor stopped, frees it. */
void sl_reactor_admin_done(struct sl_reactor *r, struct sl_admin_req *req);

/*
 * What a fetcher got from a partition's leader, for the partition's owner
 * to apply (cluster mode): record batches to append verbatim (bytes may be
 * NULL: an answer that only moves the leader's HW), the leader's HW and end,
 * and the epochs that start inside the bytes. The owner applies it on its
 * thread and calls done(done_arg, chunk) there with `status` (0, or why it
 * was not appended: the fetcher then fetches again from `end`) and `end`
 * (the log's end after it); the chunk and its bytes belong to the fetcher
 * again from that call on.
 */
struct sl_repl_chunk {
	uint32_t topic, partition;
	uint32_t epoch; /* the leader epoch it was fetched in */
	uint8_t *bytes;
	size_t len;
	uint64_t leader_hw, leader_end;
	uint32_t n_epochs;
	uint32_t epochs[8];
	uint64_t epoch_starts[8];
	int status;
	uint64_t end;
	void (*done)(void *arg, struct sl_repl_chunk *c);
	void *done_arg;
	/* Instead of bytes: cut the log at truncate_to (the fetcher found
	 * that this replica holds what its leader does not; `end` then says
	 * where the log ends). */
	bool truncate;
	uint64_t truncate_to;
	/* The owner's: bytes appended so far, its list of chunks waiting. */
	size_t taken;
	struct sl_repl_chunk *next;
};

/* Any thread: queues a chunk for its partition's owner `r` and wakes it.
 * -EAGAIN when the ring is full (the caller retries after an answer). */
int sl_reactor_repl_submit(struct sl_reactor *r, struct sl_repl_chunk *c);

/* Allocates reactor `id` (its io_uring is set up on its thread); env must
 * outlive it. */
int sl_reactor_create(const struct sl_reactor_env *env, uint32_t id, struct sl_reactor **out);
/* Gives the reactor its listening socket (before start); it closes it. */
void sl_reactor_listen(struct sl_reactor *r, int fd);
/* Starts its thread; the thread pins itself when env->lim.pin is set. */
int sl_reactor_start(struct sl_reactor *r);
/* Waits for the thread; returns the loop's result (0 after a clean drain). */
int sl_reactor_join(struct sl_reactor *r);
void sl_reactor_destroy(struct sl_reactor *r);
/* Wakes the reactor from any thread or a signal handler (eventfd write). */
void sl_reactor_wake(struct sl_reactor *r);

/*
 * Topics at runtime (control thread, one call at a time per reactor):
 * adopt takes the partitions of topic `index` (built by sl_topics_add) that
 * this reactor owns onto its lists, with its journal; drop refuses what
 * still waits for them, waits until their logs are idle, and closes the
 * logs on the reactor's thread (the topic is marked deleted first). Both
 * block until the reactor has done it: 0, or -ESHUTDOWN when it stopped.
 */
int sl_reactor_adopt(struct sl_reactor *r, uint32_t index);
int sl_reactor_drop(struct sl_reactor *r, uint32_t index);
/* The topic's dedup_window was altered (struct sl_topic's atomics): the
 * reactor's partitions of it turn their id windows on, off or to the new
 * length before this returns. */
int sl_reactor_retune(struct sl_reactor *r, uint32_t index);
/* The topic's durability was altered (its spec's durability and
 * interval_ns, stored first): the reactor's partitions of it switch to it,
 * each at its next group-commit boundary (log.h, sl_log_set_durability),
 * joining the reactor's journal under fsync when it has one (from
 * topics->journals), and the tick follows the shortest interval. Returns
 * once all of them run under it: 0, or -ESHUTDOWN. */
int sl_reactor_set_durability(struct sl_reactor *r, uint32_t index);
/*
 * Consumers bound at runtime (server/late.c), the same way: takes the
 * parts of every projection (env->projs) and the stages of every pipeline
 * (env->pipes) marked bind_pending, opened by the caller, whose
 * partitions this reactor owns, and registers each one's lag with its
 * partition (sl_partition_follow: the owner's to do once it owns it).
 * Blocks until done: 0, or -ESHUTDOWN when the reactor stopped.
 */
int sl_reactor_bind(struct sl_reactor *r);
/* Its io_uring's fd, for msg_ring; -1 until the reactor's thread set it up
 * (a plain acquire load: callers wait for the start barrier first). */
int sl_reactor_ring_fd(struct sl_reactor *r);

struct sl_reactor_stats {
	uint64_t events_in;   /* events received on this reactor's conns */
	uint64_t acks_out;    /* events acked to this reactor's conns */
	uint64_t blocks_sent; /* transfer blocks pushed to other reactors */
	uint64_t conns_accepted;
	uint64_t proto_errors;
	uint64_t duplicates;  /* resent events answered from partitions here */
	uint64_t fenced;      /* Produce frames of fenced sessions */
	uint64_t seq_refused; /* events refused for a sequence gap */
};
void sl_reactor_get_stats(struct sl_reactor *r, struct sl_reactor_stats *out);

/* Credit figures of this reactor's connections, for metrics (any thread:
 * relaxed atomics the reactor alone writes). */
struct sl_reactor_credit_stats {
	uint64_t granted_events; /* Welcome and Credit */
	uint64_t frames;         /* Credit frames */
	uint64_t held_now;       /* connections whose grant waits */
	uint64_t held_ns;        /* time they waited (finished waits) */
	uint64_t cut;            /* connections cut off for sending beyond credits */
};
void sl_reactor_get_credit_stats(struct sl_reactor *r, struct sl_reactor_credit_stats *out);
/* Hellos refused for a missing or wrong token (any thread). */
uint64_t sl_reactor_auth_failures(struct sl_reactor *r);

#endif
