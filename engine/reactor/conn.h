/*
 * A connection of a reactor: its state, its output buffers, its pending
 * acks and its credit windows (credit/credit.h), shared by the files that
 * serve it: conn.c (accept, receive and frame reassembly, send, close,
 * timeouts), handlers.c (Hello, Fetch, Metadata, the frame dispatch),
 * produce.c (Produce, the overload policies) and acks.c (Ack encoding,
 * the credit grants, the held list's re-examination).
 *
 * A connection is freed only after every io_uring operation on it has
 * completed (recv_armed and send_armed both false), so a completion never
 * finds its connection gone. Its slot's generation outlives it: acks that
 * come back for a closed connection find a newer generation and are dropped.
 *
 * Threads: everything here runs on the connection's reactor.
 */
#ifndef SL_REACTOR_CONN_H
#define SL_REACTOR_CONN_H

#include <errno.h>

#include "net/net.h"
#include "reactor/reactor_impl.h"

/* A connection whose unsent output passes this stops being read until its
 * peer reads: a client that does not read its acks cannot grow our memory. */
#define SL_CONN_OUT_HIGH (4u << 20)

enum sl_conn_state {
	SL_CONN_HELLO = 0, /* waiting for Hello */
	SL_CONN_READY,
	SL_CONN_CLOSING, /* sends what is queued (an Error), then closes */
};

struct sl_buf {
	uint8_t *p;
	size_t len, cap;
};

/* An ack waiting to be encoded into the connection's next Ack frame. */
struct sl_conn_ack {
	uint64_t base_seq;
	uint64_t offset;
	uint32_t index;
	uint32_t partition;
	int32_t status;
	uint16_t flags; /* SL_ACK_* */
	uint16_t topic; /* names the partition a refusal's text comes from */
};

struct sl_conn {
	uint32_t slot, gen;
	int fd;
	bool ip_counted;    /* holds one of env->per_ip's counts for ip */
	struct sl_ipkey ip; /* the client's address as counted (net.h) */
	uint8_t state;
	bool recv_armed; /* a recv SQE is in flight */
	bool send_armed; /* a send SQE is in flight (out[sending]) */
	bool read_eof;   /* peer shut its side; we may still send */
	bool want_recv;  /* re-arm when the reactor or output allows */
	bool on_flush_list;
	bool on_resume_list;
	uint64_t producer_id;
	uint32_t epoch;
	bool idempotent;          /* sequences deduplicated (Hello did not turn it off) */
	char *replica_node;       /* a cluster node fetching as a follower (malloc'd) */
	struct sl_producer *prod; /* the registry's entry for producer_id */
	uint64_t expect;          /* next sequence this session may send without a gap */
	bool seq_known;           /* expect is known (else the first frame sets it) */
	/* A resend session (Hello.resume_epoch): it keeps an earlier session's
	 * epoch, is not fenced by the registry's current epoch (only per
	 * partition), and its sequences may skip, so expect is never known. */
	bool resume;
	uint64_t deadline_ns; /* handshake or idle deadline, 0 = none */
	struct sl_credit cr;  /* its windows (credit/credit.h) */
	uint64_t held_since;  /* on the held list since (ns), 0 = not held */
	bool on_held_list;
	struct sl_conn *held_next, **held_pprev;
	uint32_t owed; /* Fetch and topic admin answers still to come */
	/* Input parked while the topic a Produce named is created (env's
	 * auto_create): that frame and all that followed it, fed again when
	 * the admin thread answers (produce.c). Nothing more is read
	 * meanwhile. `parking` is set by the handler that asks. */
	uint8_t *park;
	uint32_t park_len;
	bool parking;
	bool park_failed;  /* the creation failed: refuse, do not park again */
	bool group_member; /* heartbeat for a group member: it leaves at close */
	/* Reassembly of a frame that spans receive buffers. */
	uint8_t *rbuf;
	uint32_t rlen, rcap;
	/* Output: out[sending] is with the kernel, out[!sending] fills. */
	struct sl_buf out[2];
	uint32_t sending, sent;
	struct sl_conn_ack *acks;
	uint32_t n_acks, cap_acks;
	struct sl_conn *flush_next;
	struct sl_conn *resume_next;
};

/* ---- helpers shared by the connection's files --------------------------------- */

static inline int sl__buf_reserve(struct sl_buf *b, size_t more)
{
	uint8_t *p = sl_grow(b->p, &b->cap, b->len + more, 4096);
	if (!p)
		return -ENOMEM;
	b->p = p;
	return 0;
}

/* Queues the connection for this turn's flush (acks, credits, sends). */
static inline void sl__conn_mark_flush(struct sl_reactor *r, struct sl_conn *c)
{
	if (!c->on_flush_list) {
		c->on_flush_list = true;
		c->flush_next = r->flush_head;
		r->flush_head = c;
	}
}

static inline uint32_t sl__conn_out_pending(const struct sl_conn *c)
{
	return c->out[0].len + c->out[1].len;
}

/* handlers.c: decodes the control request in `f` for a connection past
 * its Hello, or fails the connection saying what was wrong; NULL then. */
ProtobufCMessage *sl__conn_request(struct sl_reactor *r, struct sl_conn *c,
                                   const struct sl_frame *f, const char *what, const char *message);
/* admin.c: a TopicAdmin frame; a Produce to a missing topic parks its
 * connection and asks for the topic (0; -errno: not parked, refuse). */
void sl__on_topic_admin(struct sl_reactor *r, struct sl_conn *c, const struct sl_frame *f);
int sl__produce_park(struct sl_reactor *r, struct sl_conn *c, const char *topic, size_t len);
/* group.c: GroupHeartbeat and Commit frames. */
void sl__on_group_heartbeat(struct sl_reactor *r, struct sl_conn *c, const struct sl_frame *f);
void sl__on_commit(struct sl_reactor *r, struct sl_conn *c, const struct sl_frame *f);

/* conn.c */
/* Feeds a parked connection's input again (the admin thread answered);
 * failed: the topic it waited for was not made. */
void sl__conn_unpark(struct sl_reactor *r, struct sl_conn *c, bool failed);
/* Queues an Error frame and closes the connection once it is sent. */
void sl__conn_fail(struct sl_reactor *r, struct sl_conn *c, uint32_t code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Appends an encoded frame to the connection's output. */
int sl__conn_put_msg(struct sl_conn *c, uint8_t type, const ProtobufCMessage *m);
/* Puts a connection on the held list: its credits wait (pressure, or a
 * pool too short for its window); and takes it off. */
void sl__conn_hold(struct sl_reactor *r, struct sl_conn *c);
void sl__conn_unlink_held(struct sl_reactor *r, struct sl_conn *c);

/* handlers.c: one whole frame of c (parsed in place by conn.c). */
void sl__conn_on_frame(struct sl_reactor *r, struct sl_conn *c, const struct sl_frame *f);

/* produce.c */
void sl__on_produce(struct sl_reactor *r, struct sl_conn *c, const struct sl_frame *f);

/* acks.c: encodes c's pending acks and grants its credits (the flush). */
void sl__conn_answer(struct sl_reactor *r, struct sl_conn *c);

#endif
