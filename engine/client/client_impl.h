/*
 * Internals of libsluice shared by its source files (and its unit test).
 * Nothing here is installed.
 */
#ifndef SL_CLIENT_IMPL_H
#define SL_CLIENT_IMPL_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "json/json.h"
#include "proto/proto.h"
#include "sluice/client.h"

/* ---- Ack scanning -------------------------------------------------------- */

/* One event answered by an Ack frame. */
struct sl__ack_event {
	uint64_t seq;            /* Ack.base_sequence + index */
	uint32_t partition;
	uint64_t offset;
	bool duplicate;
	bool dropped;            /* shed by the topic's overload policy */
	uint32_t code;           /* 0 for a stored event, the Reject's code otherwise */
	const char *message;     /* the Reject's text (points into the frame) */
	size_t message_len;
	uint32_t retry_after_ms;
};

typedef void (*sl__ack_fn)(void *arg, const struct sl__ack_event *ev);

/*
 * Scans an Ack body with no allocation. The whole body is validated first,
 * so a malformed frame reports nothing; then fn runs once per answered
 * event, parts before rejects. Repeated fields are read packed or unpacked,
 * as protobuf requires of parsers. Returns the number of events, or
 * -SL_EPROTO_DECODE (an AckPart whose offsets do not match its indexes, a
 * truncated or overflowing varint, a wrong wire type for a known field).
 */
int sl__ack_scan(const uint8_t *body, size_t len, sl__ack_fn fn, void *arg);

/* ---- the client -------------------------------------------------------- */

enum sl__state {
	SL__IDLE,       /* no connection and nothing to send: connect on demand */
	SL__BACKOFF,    /* waiting until reconnect_at */
	SL__CONNECTING, /* non-blocking connect in progress */
	SL__HELLO,      /* Hello sent, waiting for Welcome */
	SL__READY,
	SL__FAILED,     /* fatal error: every call returns c->fatal */
};

/* A batch's memory: its frame bytes and which of its events are answered.
 * Pooled, so steady-state producing allocates nothing. */
struct sl__bbuf {
	uint8_t *p;
	size_t cap;
	uint64_t done[]; /* one bit per event */
};

struct sl__batch {
	struct sl__bbuf *b;
	uint64_t base_seq;
	uint32_t n;      /* events */
	uint32_t n_done; /* answered */
	uint32_t len;    /* frame bytes, once sealed */
	uint32_t topic;  /* index into sl_client.topics */
	uint64_t ev_bytes; /* its events' encoded bytes: what it costs in credits */
};

/* A re-encoded resend in `out`, written only once credits pay for it. */
struct sl__rsframe {
	size_t end;      /* offset in `out` just past the frame */
	uint32_t n;
	uint64_t bytes;
};

struct sl_client {
	/* options, with defaults applied and strings owned */
	struct sl_client_opts o;
	char *host;
	char *name;
	uint32_t batch_limit; /* bytes of one frame: min(option, server max + 4) */

	struct sockaddr_storage addr;
	socklen_t addr_len;
	char addr_text[96];

	int fd;
	enum sl__state state;
	bool initial;   /* inside sl_client_connect: failures are not retried */
	int fatal;      /* the failed state's error */
	bool in_cb;

	uint64_t producer_id;
	uint32_t epoch;
	uint64_t credit_events; /* the windows Welcome granted */
	uint64_t credit_bytes;
	/* Credits (wire.proto Credit): what this connection may still send.
	 * A frame is paid for when it is cleared for writing: batches
	 * [send_idx, cred_idx) are paid for, resends in `out` up to out_lim. */
	uint64_t cr_events;
	int64_t cr_bytes;       /* below 0 after a frame beyond them (wire.proto) */
	uint64_t sess_inflight; /* events paid for on this connection, unanswered */
	uint64_t cred_idx;
	size_t out_lim;
	struct sl__rsframe *rs;
	uint32_t rs_head, rs_n, rs_cap;
	uint64_t wait_since;    /* a frame has waited for credits since (ns), 0 = not */
	uint32_t max_frame;
	uint64_t win_events; /* min(credits, max_inflight) */
	uint64_t win_bytes;

	uint64_t next_seq;

	/* sealed batches in sequence order: ring[head & mask] .. ring[tail-1] */
	struct sl__batch *ring;
	uint64_t ring_cap; /* a power of two */
	uint64_t head, tail;
	uint64_t send_idx; /* next batch to write */
	size_t send_off;   /* bytes of it already written */
	uint64_t ring_bytes;
	uint64_t find_hint; /* ring index of the last batch an ack was found in */

	/* the batch being filled */
	bool has_open;
	struct sl__batch open;
	struct sl_produce_builder bld;
	uint64_t open_ns;

	struct sl__bbuf **pool;
	uint32_t n_pool;
	uint32_t bitmap_words;

	/* control frames and re-encoded resends, written before batches */
	uint8_t *out;
	size_t out_len, out_off, out_cap;

	/* received bytes not yet parsed */
	uint8_t *in;
	size_t in_len, in_cap;

	uint64_t reconnect_at;
	uint64_t conn_deadline;
	uint64_t progress_ns; /* last ack, or when the oldest unanswered was sent */
	uint32_t attempt;

	char **topics;
	size_t *topic_lens;
	uint32_t n_topics, topics_cap;

	struct sl_event_header *hdr_scratch;
	size_t hdr_cap;

	int epfd;
	int ep_fd;        /* the socket registered in epfd, -1 none */
	uint32_t ep_mask;

	struct sl_uuid_rng rng;
	struct sl_client_stats st;
	uint64_t answered; /* acked + refused: what poll counts */
	char err[256];
};

#endif
