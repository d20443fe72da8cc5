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
 * sl_reactor_create/start/join (control thread) and sl_reactor_wake (any).
 */
#ifndef SL_REACTOR_H
#define SL_REACTOR_H

#include <stdint.h>

struct sl_server;
struct sl_reactor;

/* Allocates reactor `id` of `srv` (its io_uring is set up on its thread). */
int sl_reactor_create(struct sl_server *srv, uint32_t id, struct sl_reactor **out);
/* Starts its thread; the thread pins itself when srv->opts.pin is set. */
int sl_reactor_start(struct sl_reactor *r);
/* Waits for the thread; returns the loop's result (0 after a clean drain). */
int sl_reactor_join(struct sl_reactor *r);
void sl_reactor_destroy(struct sl_reactor *r);
/* Wakes the reactor from any thread or a signal handler (eventfd write). */
void sl_reactor_wake(struct sl_reactor *r);
/* Blocks until the reactor's io_uring exists; its fd, for msg_ring. */
int sl_reactor_ring_fd(struct sl_reactor *r);

struct sl_reactor_stats {
	uint64_t events_in;      /* events received on this reactor's conns */
	uint64_t acks_out;       /* events acked to this reactor's conns */
	uint64_t blocks_sent;    /* transfer blocks pushed to other reactors */
	uint64_t conns_accepted;
	uint64_t proto_errors;
	uint64_t duplicates;     /* resent events answered from partitions here */
	uint64_t fenced;         /* Produce frames of fenced sessions */
	uint64_t seq_refused;    /* events refused for a sequence gap */
};
void sl_reactor_get_stats(struct sl_reactor *r, struct sl_reactor_stats *out);

#endif
