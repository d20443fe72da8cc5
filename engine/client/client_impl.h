/*
 * Internals of libsluice shared by its source files (and its unit test):
 * client.c (errors, the public producer API), window.c (batches, the
 * window and credits, answers, resends), conn.c (connection, handshake,
 * frames, socket, the loop), ack.c (Ack scanning), consumer.c. Nothing here
 * is installed or exported (libsluice.map). Threads: a client is not
 * thread-safe (sluice/client.h); everything here runs on its caller's.
 */
#ifndef SL_CLIENT_IMPL_H
#define SL_CLIENT_IMPL_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "base/varint.h"
#include "part/part.h"
#include "proto/proto.h"
#include "sluice/client.h"
#include "json/json.h"

/* ---- Ack scanning -------------------------------------------------------- */

/* One event answered by an Ack frame. */
struct sl__ack_event {
	uint64_t seq; /* Ack.base_sequence + index */
	uint32_t partition;
	uint64_t offset;
	bool duplicate;
	bool dropped;        /* shed by the topic's overload policy */
	uint32_t code;       /* 0 for a stored event, the Reject's code otherwise */
	const char *message; /* the Reject's text (points into the frame) */
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

/* ---- routing (route.c, pure) ------------------------------------------------ */

#define SL__SERVERS_MAX 64
/* sl_part_of_key's bound on partition counts. */
#define SL__ROUTE_MAX_PARTS 4096

struct sl__hostport {
	char host[256];
	uint16_t port;
};

/* "h:p,h:p,[v6]:p" (spaces around items allowed) into *out (malloc'd,
 * at least one entry). 0, -EINVAL with err saying which item, -ENOMEM. */
int sl__servers_parse(const char *list, struct sl__hostport **out, size_t *n, char *err,
                      size_t errlen);
/* "host:port", "[v6]:port". */
void sl__hostport_format(const struct sl__hostport *h, char *out, size_t cap);

/* One partition as a Metadata answer names it. */
struct sl__rpart {
	char *leader; /* node id; NULL: none known (or no address for it) */
	char *native; /* its native "host:port"; NULL with leader */
	uint32_t epoch;
	bool seen;
};

/* A topic's routing table: which node takes each partition's events. */
struct sl__route {
	uint32_t n_parts;
	bool cluster; /* some partition has a leader: route by leader */
	struct sl__rpart *p;
};

/* Builds a table from one TopicInfo: 1 (cluster mode: leaders named), 0 (a
 * node alone: no leaders), or -EINVAL (no partitions, one listed twice or
 * out of range; err says which) / -ENOMEM. */
int sl__route_build(const Sluice__V1__TopicInfo *ti, struct sl__route *out, char *err,
                    size_t errlen);
void sl__route_free(struct sl__route *r);
/* A client never goes back to a leader of an older epoch: a Metadata
 * answer from a node that has not yet seen a leader change names the old
 * one. Each partition of `fresh` whose epoch is below the one `old` knows
 * (same partition count) takes old's entry; old is left to be freed.
 * Returns how many were kept. */
uint32_t sl__route_keep_newer(struct sl__route *fresh, struct sl__route *old);
/* The leader address of the partition `key` goes to (hash partitioner, as
 * the server's), NULL when none is known; *part gets the partition. */
const char *sl__route_leader(const struct sl__route *r, const void *key, size_t len,
                             uint32_t *part);

/* consumer.c: one Metadata round trip on a consumer's connection; *md is
 * freed with sl_frame_msg_free(&md->base). */
struct sl_consumer;
int sl__consumer_metadata(struct sl_consumer *c, const char *topic, Sluice__V1__Metadata **md);

/* ---- read tokens (token.c) ----------------------------------------------- */

/* A topic's highest offsets seen, by partition: offset + 1, 0 for none. */
struct sl__tokens {
	char *topic;
	uint64_t *next;
	uint32_t n;
};

/* ---- the client -------------------------------------------------------- */

struct sl__router;

enum sl__state {
	SL__IDLE,       /* no connection and nothing to send: connect on demand */
	SL__BACKOFF,    /* waiting until reconnect_at */
	SL__CONNECTING, /* non-blocking connect in progress */
	SL__HELLO,      /* Hello sent, waiting for Welcome */
	SL__READY,
	SL__FAILED, /* fatal error: every call returns c->fatal */
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
	uint32_t n;         /* events */
	uint32_t n_done;    /* answered */
	uint32_t len;       /* frame bytes, once sealed */
	uint32_t topic;     /* index into sl_client.topics */
	uint64_t ev_bytes;  /* its events' encoded bytes: what it costs in credits */
	uint64_t sealed_ns; /* sl_now_ns() when sealed: a resend says how long ago */
};

/* A re-encoded resend in `out`, written only once credits pay for it. */
struct sl__rsframe {
	size_t end; /* offset in `out` just past the frame */
	uint32_t n;
	uint64_t bytes;
};

struct sl_client {
	/* options, with defaults applied and strings owned */
	struct sl_client_opts o;
	char *host;
	char *name;
	char *token;          /* "" when none */
	char *pname;          /* opts.producer_name, or NULL */
	uint32_t batch_limit; /* bytes of one frame: min(option, server max + 4) */

	struct sockaddr_storage addr;
	socklen_t addr_len;
	char addr_text[96];

	int fd;
	enum sl__state state;
	bool initial; /* inside sl_client_connect: failures are not retried */
	int fatal;    /* the failed state's error */
	bool in_cb;

	uint64_t producer_id;
	uint8_t proof[SL_CLIENT_PROOF_LEN]; /* of producer_id; valid when proof_len */
	size_t proof_len;
	uint32_t epoch;
	/* A router's resume leg (router_move.c, "Exactly once across a
	 * failover"): it says Hello with this epoch (wire.proto
	 * Hello.resume_epoch) and resends another leg's events at their own
	 * sequences, with gaps (`sparse`: the window counts events in flight,
	 * not the span of sequences). 0 and false on every other client. */
	uint32_t resume_epoch;
	bool sparse;
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
	uint64_t wait_since; /* a frame has waited for credits since (ns), 0 = not */
	uint32_t max_frame;
	uint64_t win_events; /* min(credits, max_inflight) */
	uint64_t win_bytes;

	uint64_t next_seq;
	uint64_t resume_seq; /* the first Welcome's next_sequence */

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
	int ep_fd; /* the socket registered in epfd, -1 none */
	uint32_t ep_mask;

	/* Cluster mode (router.c): this client is the application's handle
	 * and routes to one leg (an sl_client of its own) per leader node. */
	struct sl__router *rt;
	/* A leg: the raw bytes and topic of the event being answered with
	 * ERR_NOT_LEADER, valid during its callback, so the router can resend
	 * it elsewhere. */
	bool leg;
	const uint8_t *cb_raw;
	size_t cb_raw_len;
	const char *cb_topic;
	/* The walk through one batch's events that finds them (acks come in
	 * order, so it goes on where it stopped). */
	const uint8_t *raw_buf;
	struct sl_event_iter raw_it;
	uint32_t raw_next;
	/* Events of this connection were taken away by the router: even the
	 * first Welcome re-encodes what is left instead of writing the
	 * batches as they were built. */
	bool extracted;

	/* Read tokens: the highest offset seen stored, per topic partition
	 * (token.c). On the application's client only, never on a leg (the
	 * router notes its legs' acks on the application's). The topic of
	 * the event being answered, during its callback (a leg's, for the
	 * router). */
	struct sl__tokens *toks;
	uint32_t n_toks;
	const char *ack_topic;

	struct sl_uuid_rng rng;
	struct sl_client_stats st;
	uint64_t answered; /* acked + refused: what poll counts */
	char err[256];
};

/* ---- shared by client.c, window.c and conn.c ------------------------------ */

#define SL__DEF_BATCH_EVENTS   256
#define SL__MAX_BATCH_EVENTS   65536
#define SL__DEF_BATCH_BYTES    (1u << 20)
#define SL__DEF_INFLIGHT       8192
#define SL__DEF_INFLIGHT_BYTES (64ull << 20)
#define SL__DEF_CONNECT_MS     5000
#define SL__DEF_ACK_MS         30000
#define SL__DEF_BACKOFF_MIN_MS 50
#define SL__DEF_BACKOFF_MAX_MS 2000
/* Before Welcome says otherwise: the protocol's documented default. */
#define SL__DEF_MAX_FRAME (1u << 20)
/* First size of a batch buffer; it doubles up to batch_limit as needed.
 * Small, because a batch holds its buffer until every event in it is
 * answered, and batches of one event (interactive input, open-loop
 * producers without linger) can fill a whole window: 8192 x 4 KiB. Pooled
 * buffers keep what they grew to, so full batches stop reallocating once
 * the pool is warm. */
#define SL__BUF_START (4u << 10)
/* Pooled batch buffers kept for reuse; more are freed on return. Enough for
 * a full default window of full batches. */
#define SL__POOL_MAX 64
/* Buffers larger than this are not kept once empty (a resend burst or one
 * huge frame should not pin its memory). */
#define SL__KEEP_BYTES (1u << 20)
#define SL__IOV_MAX    64
#define SL__READ_BUF   (64u << 10)

#define SL__NS_PER_MS 1000000ull

/* ---- small helpers shared by the client's files ----------------------------- */

/* Bytes of `tag | len | payload` for an event of `size` bytes. */
static inline size_t sl__event_field_len(size_t size)
{
	return 1 + sl_varint_len(size) + size;
}

static inline size_t sl__epoch_room(uint32_t epoch)
{
	return epoch ? 1 + sl_varint_len(epoch) : 0;
}

static inline struct sl__batch *sl__at(const struct sl_client *c, uint64_t i)
{
	return &c->ring[i & (c->ring_cap - 1)];
}

/* The oldest unanswered sequence's batch start, or next_seq when idle. */
static inline uint64_t sl__first_seq(const struct sl_client *c)
{
	if (c->head != c->tail)
		return sl__at(c, c->head)->base_seq;
	if (c->has_open)
		return c->open.base_seq;
	return c->next_seq;
}

static inline uint64_t sl__span(const struct sl_client *c)
{
	return c->next_seq - sl__first_seq(c);
}

static inline bool sl__busy(const struct sl_client *c)
{
	return c->head != c->tail || c->has_open;
}

/* How far `out` may be written: resends wait for credits, Hello does not. */
static inline size_t sl__out_lim(const struct sl_client *c)
{
	return c->rs_head < c->rs_n ? c->out_lim : c->out_len;
}

static inline bool sl__out_pending(const struct sl_client *c)
{
	return c->out_off < sl__out_lim(c) ||
	       (c->state == SL__READY && c->out_off == c->out_len && c->send_idx != c->cred_idx);
}

/* Room in the window for one more event of `bytes` encoded bytes. */
static inline bool sl__room_for(const struct sl_client *c, uint64_t bytes)
{
	uint64_t span = c->sparse ? c->st.inflight : sl__span(c);
	if (span == 0)
		return true; /* one event alone always goes, whatever its size */
	uint64_t inflight = c->ring_bytes + (c->has_open ? c->bld.len : 0);
	return span < c->win_events && inflight + bytes <= c->win_bytes;
}

/* client.c: errors */
void sl__client_seterr(struct sl_client *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
int sl__client_code_status(uint32_t code);
bool sl__client_code_retryable(uint32_t code);
/* The token a Hello carries: `opt`, else $SLUICE_TOKEN, else "" (none). */
const char *sl__client_token(const char *opt);

/* window.c: batches, the window and credits, answers, resends */
void sl__client_credit_advance(struct sl_client *c);
void sl__client_credit_reset(struct sl_client *c);
void sl__client_recompute_window(struct sl_client *c);
int sl__client_out_reserve(struct sl_client *c, size_t n);
struct sl__bbuf *sl__client_bbuf_get(struct sl_client *c, size_t need);
void sl__client_bbuf_put(struct sl_client *c, struct sl__bbuf *b);
int sl__client_ring_grow(struct sl_client *c);
void sl__client_retire(struct sl_client *c);
void sl__client_on_ack_event(void *arg, const struct sl__ack_event *e);
void sl__client_answer_all(struct sl_client *c, struct sl__batch *b, int status, uint32_t code);
void sl__client_deliver(struct sl_client *c, const struct sl_client_ack *a);
/* A leg's unanswered events, each offered to `take`; those it takes (true)
 * count as answered here without a callback (the router answers them). */
typedef bool (*sl__take_fn)(void *arg, const char *topic, uint64_t seq, const uint8_t *ev,
                            size_t len);
int sl__client_take(struct sl_client *c, sl__take_fn take, void *arg);
/* Drops the connection as a failed one (why: the last error's text); the
 * unanswered events stay, to be resent after a reconnect or taken. */
void sl__client_abandon(struct sl_client *c, const char *why);
int sl__client_seal(struct sl_client *c);
int sl__client_resend_batch(struct sl_client *c, struct sl__batch *b);

/* conn.c: the connection, frames, reading and writing, the loop */
void sl__client_ep_sync(struct sl_client *c);
void sl__client_close_fd(struct sl_client *c);
void sl__client_connect_start(struct sl_client *c);
void sl__client_write(struct sl_client *c);
bool sl__client_linger_due(const struct sl_client *c, uint64_t now);
uint64_t sl__client_next_timer(const struct sl_client *c, bool linger);
void sl__client_turn(struct sl_client *c, uint64_t until, bool seal_linger);
int sl__client_run(struct sl_client *c, uint64_t deadline, bool (*done)(const struct sl_client *),
                   bool seal_linger);
bool sl__client_ready(const struct sl_client *c);
bool sl__client_all_answered(const struct sl_client *c);

/* client.c: a client with options applied and its address resolved, not
 * connected: it connects when it has something to send. */
int sl__client_new(const struct sl_client_opts *opts, struct sl_client **out);
void sl__client_free(struct sl_client *c);
int64_t sl__client_topic(struct sl_client *c, const char *topic);
/* A sparse client (a resume leg) takes an encoded event at sequence `seq`
 * (>= next_seq; the sequences between are never sent). 0, -ERANGE (seq
 * below next_seq, or not a sparse client), -EAGAIN (window full), or the
 * errors of sl_client_produce_encoded. */
int sl__client_produce_at(struct sl_client *c, const char *topic, const void *event, size_t len,
                          uint64_t seq);

/* token.c: notes that `offset` of topic/partition was seen stored (0,
 * -EINVAL past the partition bound, -ENOMEM); frees the tables. */
int sl__client_token_note(struct sl_client *c, const char *topic, uint32_t partition,
                          uint64_t offset);
void sl__client_tokens_free(struct sl_client *c);

/* router.c: cluster mode behind the public API. sl__rt_open returns 1 when
 * Metadata names leaders (c is then a router), 0 when no bootstrap server
 * is in a cluster (c goes on as one connection to *chosen), <0 when none
 * answered. */
int sl__rt_open(struct sl_client *c, const struct sl__hostport *servers, size_t n, size_t *chosen);
int sl__rt_produce(struct sl_client *c, const char *topic, const struct sl_client_event *ev,
                   const void *enc, size_t enc_len, uint64_t *seq);
int sl__rt_poll(struct sl_client *c, int timeout_ms);
int sl__rt_flush(struct sl_client *c, int timeout_ms);
int sl__rt_fd(struct sl_client *c);
int sl__rt_timeout_ms(const struct sl_client *c);
void sl__rt_stats(const struct sl_client *c, struct sl_client_stats *out);
void sl__rt_close(struct sl_client *c);

#endif
