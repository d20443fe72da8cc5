/*
 * read: the read path. Fetch requests are served from the partition logs on
 * a reader thread, off the reactors, so a read that misses the page cache
 * never stalls a core's ingest.
 *
 * A reactor hands a request to the reader through an MPMC ring (every
 * reactor pushes, the reader pops) and an eventfd wake. The reader reads
 * through its own sl_log_view of the partition's folder, never touching the
 * writer's state: it only loads the partition's published durable end (an
 * acquire load of sl_partition.durable_pub). It encodes the FetchResult frame
 * (events verbatim, as stored) and sends the request back to its reactor
 * through that reactor's SPSC ring, waking it; the reactor copies the frame
 * into the connection's output. A request for data not yet there waits (long
 * poll) until its deadline, re-checked every millisecond or two.
 *
 * A follower node's ReplicaFetch takes the same way: its report (the
 * follower's durable end) is stored in the partition's replication state
 * and the owner reactor woken to move the high watermark; the answer
 * (ReplicaData) carries whole batches as the segments hold them.
 *
 * Ownership: requests are allocated by the reactor (sl_fetch_req_new) and
 * freed by it once answered (sl_fetch_req_free); the reader owns them while
 * they are in its hands. Threads: sl_reader_submit from reactor threads;
 * sl_reader_take from the reactor named in the request; create/start/stop
 * from the control thread.
 */
#ifndef SL_READ_H
#define SL_READ_H

#include <stdbool.h>
#include <stdint.h>

struct sl_topics;
struct sl_reader;

struct sl_fetch_req {
	uint32_t conn, gen; /* the asking connection on `reactor` */
	uint32_t reactor;
	uint32_t topic; /* index in sl_topics */
	uint32_t partition;
	uint64_t offset;
	uint32_t max_events;
	uint32_t max_bytes;
	uint64_t deadline_ns; /* long poll: answer empty at this time */
	uint64_t request_id;
	/* Fetch.from_time_ms: not 0, the answer starts at the first event at
	 * or after this append time (sl_log_view_seek_time), and `offset` is
	 * set to it once found (the field then 0). */
	int64_t from_time_ms;
	struct sl_fetch_req *next; /* reader's waiting list */
	/* A follower node's ReplicaFetch (cluster mode) instead of a Fetch:
	 * raw batches below the leader's durable end, and a report of the
	 * follower's durable end (recorded once, when the reader takes it). */
	bool replica;
	bool reported;
	uint32_t epoch, last_epoch;
	uint64_t durable;
	char node[64];
	/* The answer: a whole FetchResult frame, malloc'd by the reader. */
	uint8_t *frame;
	uint32_t frame_len;
};

/* `wake(arg, reactor)` is called by the reader after it queued an answer
 * for that reactor; it must be cheap and thread-safe (an eventfd write). */
typedef void (*sl_reader_wake_fn)(void *arg, uint32_t reactor);

/* max_event: the largest event that can be stored (max_frame_bytes): an
 * answer always has room for one, so no event is ever too big to read. */
int sl_reader_create(const struct sl_topics *topics, uint32_t n_reactors, uint32_t max_event,
                     sl_reader_wake_fn wake, void *wake_arg, struct sl_reader **out);
int sl_reader_start(struct sl_reader *rd);
/* From now on answers every request at once (long polls end empty); the
 * thread keeps running so reactors can still get answers while they drain. */
void sl_reader_drain(struct sl_reader *rd);
/* Answers what is left and ends the thread; after the reactors stopped. */
void sl_reader_stop(struct sl_reader *rd);
void sl_reader_destroy(struct sl_reader *rd);

/* Reactor threads. Queues a request; -EAGAIN when the queue is full (the
 * reactor answers the client with an error frame then). */
int sl_reader_submit(struct sl_reader *rd, struct sl_fetch_req *req);
/* Reactor `reactor` only: the next answered request, or NULL. */
struct sl_fetch_req *sl_reader_take(struct sl_reader *rd, uint32_t reactor);
/* Requests submitted and not yet taken back (for drain). */
uint64_t sl_reader_outstanding(struct sl_reader *rd, uint32_t reactor);

#endif
