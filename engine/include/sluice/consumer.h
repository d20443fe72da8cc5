/*
 * sluice/consumer.h: libsluice's consumer side — read a topic's partitions
 * by offset over sluice's native protocol.
 *
 * A consumer is one blocking TCP connection to sluiced. It asks for
 * partition metadata (first and end offsets) and fetches events by
 * (topic, partition, offset); events arrive as the server stored them, the
 * encoded sluice.v1.Event bytes, with the offset and the time the server
 * stored them. A fetch with `wait_ms` waits at the server until an event at
 * or after the offset exists (long poll) or the time passes.
 *
 * Errors: 0 (or a count) on success, negative errno or -SL_E* (see
 * <sluice/base/base.h>) on failure; sl_consumer_last_error() says more
 * (address, the server's message).
 *
 * Ownership: sl_consumer_connect() returns a consumer sl_consumer_close()
 * frees. Partition arrays are malloc'd for the caller (free()). An event
 * passed to the visitor lives only during the call.
 *
 * Threads: one consumer per thread; no global state.
 */
#ifndef SLUICE_CONSUMER_H
#define SLUICE_CONSUMER_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

struct sl_consumer;

struct sl_consumer_opts {
	const char *host; /* numeric address or "localhost" */
	uint16_t port;
	const char *client_name; /* for the server's logs; may be NULL */
	uint32_t timeout_ms;     /* per request, beyond any wait asked; 0: 10 s */
	const char *token;       /* as sl_client_opts.token (0.2) */
};

int sl_consumer_connect(const struct sl_consumer_opts *opts, struct sl_consumer **out, char *err,
                        size_t errlen);
void sl_consumer_close(struct sl_consumer *c);
const char *sl_consumer_last_error(const struct sl_consumer *c);

struct sl_partition_info {
	uint32_t partition;
	uint64_t start_offset; /* oldest offset still stored */
	uint64_t end_offset;   /* the next offset to be written (durable end) */
};

/* The partitions of `topic`; *out is malloc'd. -SL_ENOTOPIC when unknown. */
int sl_consumer_partitions(struct sl_consumer *c, const char *topic, struct sl_partition_info **out,
                           size_t *n);

struct sl_topic_info {
	char *name;
	struct sl_partition_info *partitions;
	size_t n_partitions;
};

/* Every topic of the server with its partitions; free with
 * sl_consumer_topics_free(). */
int sl_consumer_topics(struct sl_consumer *c, struct sl_topic_info **out, size_t *n);
void sl_consumer_topics_free(struct sl_topic_info *topics, size_t n);

/*
 * Topics at runtime (0.6): the requests of HTTP's /v1/topics over the
 * native port. `name` for describe, alter and delete; `body` the route's
 * JSON body for create ({"name","partitions","replicas","settings":{...}})
 * and alter ({"settings":{...}}), else NULL. On 0, *status is the HTTP
 * status the server gives (2xx done; 4xx refused; 5xx failed) and *answer
 * its JSON document (malloc'd, free()). timeout_ms 0: the consumer's.
 */
enum sl_topic_op {
	SL_TOPIC_LIST = 1,
	SL_TOPIC_DESCRIBE = 2,
	SL_TOPIC_CREATE = 3,
	SL_TOPIC_ALTER = 4,
	SL_TOPIC_DELETE = 5,
};
int sl_consumer_topic_admin(struct sl_consumer *c, enum sl_topic_op op, const char *name,
                            const char *body, uint32_t timeout_ms, int *status, char **answer);

struct sl_fetched {
	uint32_t partition;
	uint64_t offset;
	int64_t append_time_ms;
	const uint8_t *event; /* an encoded sluice.v1.Event */
	size_t len;
};

/* Return non-zero to stop visiting this answer's events. */
typedef int (*sl_consumer_fn)(void *arg, const struct sl_fetched *ev);

/*
 * One fetch: events of `partition` from `offset`, at most max_events (0:
 * the server's default) and about max_bytes (0: the server's default). Each
 * is passed to `fn` in offset order. *next is the offset after the last one
 * visited, *end the partition's end offset as the server saw it. Returns the
 * number visited (0 when none yet), or an error (-SL_ENOTOPIC, -SL_ECORRUPT
 * for data the server found damaged, -SL_EOUT_OF_RANGE when `offset` is
 * below the partition's first stored offset: retention deleted it, and
 * sl_consumer_log_start() says where the partition starts now (0.7),
 * -SL_ETIMEOUT, -errno).
 */
int sl_consumer_fetch(struct sl_consumer *c, const char *topic, uint32_t partition, uint64_t offset,
                      uint32_t max_events, uint32_t max_bytes, uint32_t wait_ms, sl_consumer_fn fn,
                      void *arg, uint64_t *next, uint64_t *end);

/*
 * Consumer groups (0.7). The server spreads a topic's partitions over the
 * group's members and keeps the offsets they commit (wire.proto,
 * GroupHeartbeat, says the rules). A member calls
 * sl_consumer_group_heartbeat every m->heartbeat_ms (the first call, with
 * m zeroed, joins) saying which partitions it holds; m->assigned is what it
 * should hold now: it starts the new ones at their committed offsets and
 * stops the ones no longer listed after committing them, then says so in
 * the next heartbeat. Keep waits (Fetch wait_ms) below heartbeat_ms.
 */
struct sl_group_part {
	uint32_t partition;
	int has_committed; /* 0: the group never committed this partition */
	uint64_t committed;
};
struct sl_group_member {
	char id[33];                    /* this member's id, "" before it joined */
	uint32_t generation;            /* the group's, as last told */
	uint32_t heartbeat_ms;          /* the next heartbeat within this */
	uint32_t members;               /* members of the group */
	int settled;                    /* no partition of the group between members */
	struct sl_group_part *assigned; /* malloc'd; replaced by each heartbeat */
	size_t n_assigned;
};
/*
 * One heartbeat (a join when m->id is ""; with `leave`, the member leaves
 * and m is cleared). 0 with m updated; -SL_EUNKNOWN_MEMBER when the server
 * no longer knows the member (it timed out: its partitions went to others):
 * m is cleared, drop every partition and call again to join;
 * -SL_ENOTOPIC, -SL_ETIMEOUT, -errno.
 */
int sl_consumer_group_heartbeat(struct sl_consumer *c, const char *group, const char *topic,
                                uint32_t session_timeout_ms, const uint32_t *owned, size_t n_owned,
                                int leave, struct sl_group_member *m);
/* Frees m->assigned and zeroes m. */
void sl_group_member_clear(struct sl_group_member *m);
/*
 * Commits `offset` (the next one the group reads) of a partition m holds:
 * 0 once it is durable on the server. -SL_EFENCED: m does not hold it (any
 * more, or in this generation); -SL_EUNKNOWN_MEMBER; -errno.
 */
int sl_consumer_commit(struct sl_consumer *c, const char *group, const struct sl_group_member *m,
                       const char *topic, uint32_t partition, uint64_t offset);

/*
 * Seek by time (0.7): the first offset of `partition` whose event was
 * stored at or after time_ms (ms since the epoch, the server's clock when
 * it appended the event; a server clock stepped back is read as its
 * running maximum, so the answer is the first event after which every
 * event is at least that recent). 1 with *offset; 0 when none is that
 * recent yet (*offset: the partition's end offset, where such events will
 * be); or an error as sl_consumer_fetch. Seeks within what is stored: a
 * time older than the log's start answers its first offset.
 */
int sl_consumer_offset_for_time(struct sl_consumer *c, const char *topic, uint32_t partition,
                                int64_t time_ms, uint64_t *offset);

/* After -SL_EOUT_OF_RANGE: the partition's first stored offset as the
 * server said (0.7). */
uint64_t sl_consumer_log_start(const struct sl_consumer *c);

#ifdef __cplusplus
}
#endif

#endif
