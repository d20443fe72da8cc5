/*
 * sluice/client.h: libsluice, the producer side of sluice's native protocol.
 *
 * A client is one TCP connection to sluiced (and the connections that
 * replace it after failures). sl_client_produce() encodes an event straight
 * into the current batch, a Produce frame being built in place, and assigns
 * it the next sequence number of this producer. Batches go out whole, with
 * one non-blocking write for as many batches as the socket takes. Acks come
 * back asynchronously: every event for which sl_client_produce() returned 0
 * gets exactly one call of the ack callback (stored, refused, or cancelled),
 * always from inside a call the application made (produce, poll, flush,
 * close), never from another thread.
 *
 * Batching. A batch is sent when it holds batch_max_events events or
 * batch_max_bytes bytes, when the topic changes, and at sl_client_poll() /
 * sl_client_flush() once it is linger_us old (linger 0: at the next poll).
 * An application that only calls sl_client_produce() sends full batches;
 * one that wants every event out promptly calls sl_client_poll(c, 0) when
 * it has nothing more to produce for now.
 *
 * Window. At most min(the server's credits, max_inflight) events, and
 * max_inflight_bytes bytes, are in flight, counted from the oldest event
 * not yet answered: every event in flight has a sequence in
 * [oldest unanswered, oldest unanswered + window). sl_client_produce() never
 * blocks except when that window is full; then it reads acks (and runs their
 * callbacks) until there is room, or returns -EAGAIN at once when the client
 * was opened with `nonblocking`.
 *
 * Failures. After a disconnect, an ack timeout, or an Error the server sends
 * before closing (draining, connection limit, ...), the client reconnects
 * with exponential backoff (with jitter), sends Hello again with the same
 * producer id, and resends every unanswered event with its ORIGINAL
 * sequence. The library keeps each batch's encoded bytes until every event
 * of it is answered, which is what makes the resend possible. The server
 * deduplicates by (producer id, sequence), durably across its own restarts,
 * so this is exactly-once delivery: an event whose ack was lost with the
 * connection is answered, when resent, as a duplicate with its original
 * partition and offset, and is not stored twice (unless the client was
 * opened with `idempotence_off`: then it is stored again). Resent frames
 * say how long ago their events were first sent (Produce.resend_age_ms): a
 * partition that has forgotten the producer id since (idle past the topic's
 * producer_expiry, or least recently used past its bound) answers a resend
 * it cannot judge with -SL_EPRODUCER_EXPIRED (not stored, not retried); an
 * event the server cannot track right now is refused with -SL_EUNTRACKED
 * (not stored; retry it). Errors that a
 * retry cannot cure (fenced by a newer session of the same producer id,
 * protocol version, malformed frames) put the client in a failed state:
 * every unanswered event is answered with the error, and every later call
 * returns it.
 *
 * Cluster mode (opts.servers). When the Metadata of the bootstrap server
 * that answers names partition leaders, the client routes: each event goes
 * to its partition's leader (the partition is the server's own, the hash of
 * the aggregate over the topic's partition count), over one connection per
 * leader node, each with its own Hello, producer id, sequences and the
 * resends above. An event a node refuses with ERR_NOT_LEADER, and the
 * unanswered events of a connection that fails when Metadata then names
 * another leader for their partition, are not answered: the client refreshes
 * its Metadata (from the bootstrap servers, then the nodes it knows; at most
 * every 100 ms, the interval doubling up to backoff_max_ms while leaders
 * stay unknown) and sends them, same id and bytes, to the new leader as new
 * events of that connection. A connection whose oldest unanswered event has
 * waited 1 s (a leader paused or cut off answers nothing and sends no RST)
 * makes the client ask Metadata too; once it names another leader for a
 * partition the connection has events in flight for, the connection is
 * dropped as a failed one and its events move the same way. Each event still gets exactly one
 * callback, with the sequence produce returned. Across a change of leader a resent event is a
 * duplicate only through its id (the topic's dedup_window): the new leader has its own producer
 * ids. An event whose leader stays unknown for ack_timeout_ms is answered with -SL_ENOT_LEADER. A
 * refresh is a blocking round trip (at most connect_timeout_ms per server) on the calling thread.
 * When no partition has a leader (a node alone), the client is exactly the one connection above, to
 * the server that answered. sl_client_producer_id() and _proof() give the first leader
 * connection's.
 *
 * Errors: functions return 0 (or a count) on success and a negative value on
 * failure: -errno, or a -SL_E* code (enum sl_err in <sluice/base/base.h>,
 * installed beside this header, which needs POSIX declarations: build with
 * _GNU_SOURCE or _POSIX_C_SOURCE >= 199309L under a strict -std=c11);
 * sl_strerror() gives the text of either kind, sl_client_last_error() the
 * text of the last failure with its context (address, server message).
 *
 * Ownership: sl_client_connect() returns a client that sl_client_close()
 * frees; the options' strings are copied. An event's bytes are copied (or
 * encoded) into the batch before sl_client_produce() returns. The ack passed
 * to the callback, and its message, live only during the call.
 *
 * Threads: a client is not thread-safe. Use one client per thread, or hand
 * it over between threads with your own synchronisation; the library has no
 * global state, so separate clients never interfere. Callbacks must not call
 * sl_client_produce/poll/flush/close on their own client (-EBUSY).
 */
#ifndef SLUICE_CLIENT_H
#define SLUICE_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

struct sl_client;

/* Text for a negative return value (also declared, identically, in
 * base/base.h). */
const char *sl_strerror(int err);

/* What became of one event: passed to the ack callback once per event. */
struct sl_client_ack {
	uint64_t sequence; /* the value sl_client_produce() returned in *seq */
	/* 0 when stored; otherwise why not: -SL_ENOTOPIC, -SL_EOVERLOAD,
	 * -SL_EFENCED ... for a refusal by the server (code says exactly which),
	 * -ECANCELED when sl_client_close() ran before an answer came, or the
	 * error that put the client in its failed state. */
	int status;
	uint32_t code;           /* the server's sluice.v1.ErrorCode for a refusal, else 0 */
	uint32_t partition;      /* where a stored event went ... */
	uint64_t offset;         /* ... and its offset in that partition */
	bool duplicate;          /* the server had stored it before; offset is the
	                          * original, or SL_CLIENT_OFFSET_UNKNOWN when it was
	                          * stored so long ago that the server forgot where */
	uint32_t retry_after_ms; /* the server's hint for an overload refusal */
	const char *message;     /* the server's text for a refusal, not NUL-terminated */
	size_t message_len;
	/* status 0 but not stored: the topic was overloaded and its policy
	 * (drop, sample) shed the event. Counted by the server; not retried. */
	bool dropped;
};

#define SL_CLIENT_OFFSET_UNKNOWN UINT64_MAX

typedef void (*sl_client_ack_fn)(void *arg, const struct sl_client_ack *ack);

/* Zeroed fields take the default shown. */
struct sl_client_opts {
	const char *host;            /* "127.0.0.1": a name or a numeric address */
	uint16_t port;               /* 7400 */
	uint64_t producer_id;        /* 0: the server assigns one at the first Hello */
	bool idempotence_off;        /* the server stores resent events again
	                              * (at-least-once); for benchmarks */
	const char *client_name;     /* "libsluice": free text for the server's logs */
	const char *topic;           /* "events": for sl_client_produce(c, NULL, ...) */
	uint32_t batch_max_events;   /* 256; at most 65536 */
	uint32_t batch_max_bytes;    /* 1 MiB; never more than the server's max frame */
	uint32_t linger_us;          /* 0: see "Batching" above */
	uint32_t max_inflight;       /* 8192 events; the server's credits may lower it */
	uint64_t max_inflight_bytes; /* 64 MiB */
	bool nonblocking;            /* produce returns -EAGAIN instead of waiting */
	uint32_t block_timeout_ms;   /* 0: a blocked produce waits as long as it takes;
	                              * else it gives up with -SL_ETIMEOUT */
	uint32_t connect_timeout_ms; /* 5000: TCP connect plus Hello/Welcome */
	uint32_t ack_timeout_ms;     /* 30000: no ack for this long while events are
	                              * in flight counts as a dead connection */
	uint32_t backoff_min_ms;     /* 50: first reconnect delay, doubled per failure */
	uint32_t backoff_max_ms;     /* 2000 */
	uint64_t seed;               /* 0: seed event ids and jitter from getrandom();
	                              * else reproducible ids (tests only: clients
	                              * with one seed generate the same ids) */
	sl_client_ack_fn on_ack;     /* may be NULL: acks are then only counted */
	void *arg;                   /* passed to on_ack */
	/* The server's token when it has `auth` (NULL: $SLUICE_TOKEN when set).
	 * A missing or wrong one fails the connect with -EACCES. Added in 0.2:
	 * the struct grew, hence the library's SONAME 0.2. */
	const char *token;
	/* With producer_id: the proof the server gave with it (16 bytes, from
	 * sl_client_producer_proof of an earlier client); without the right
	 * one the server refuses the id (-EACCES). 0.2. */
	const uint8_t *producer_proof;
	/* Bootstrap servers, "HOST:PORT[,HOST:PORT...]" ([V6]:PORT for IPv6),
	 * tried in order; host and port are then ignored. NULL: host and port,
	 * one server, no Metadata asked (as before 0.3). With a list, connect
	 * asks the first that answers for the Metadata of `topic` (see
	 * "Cluster mode"). Added in 0.3: the struct grew, hence SONAME 0.3. */
	const char *servers;
	/* A producer that names itself (0.5): 1..255 bytes of printable ASCII
	 * without spaces. The same name gets the same producer id from the
	 * server after any restart of either side, with a new epoch that
	 * fences every older session of the name (-SL_EFENCED there), and
	 * sequences resume where the server's stored events of the name end
	 * (sl_client_resume_sequence). A name is ONE stream of events: two
	 * processes must not use it at once, and sequence s must be the same
	 * event in every run. Excludes producer_id and idempotence_off
	 * (-EINVAL). Not served in cluster mode yet: connect fails with
	 * -EOPNOTSUPP when Metadata names leaders (or the node refuses it). */
	const char *producer_name;
};

struct sl_client_header {
	const char *key;
	size_t key_len;
	const void *value;
	size_t value_len;
};

/* One event to produce. Strings need not be NUL-terminated. */
struct sl_client_event {
	const uint8_t *id; /* 16 bytes, or NULL: a random v4 UUID */
	const char *type;
	size_t type_len;
	const char *aggregate; /* the partition key */
	size_t aggregate_len;
	int64_t timestamp_ms; /* ms since the Unix epoch; 0: now */
	const void *data;
	size_t data_len;
	const struct sl_client_header *headers;
	size_t n_headers;
	uint32_t schema_version;
};

struct sl_client_stats {
	uint64_t produced;   /* events accepted by sl_client_produce() */
	uint64_t acked;      /* answered as stored (duplicates included) */
	uint64_t duplicates; /* of which the server had stored before */
	uint64_t refused;    /* answered with an error (refused, cancelled, failed) */
	uint64_t inflight;   /* produced and not answered yet */
	uint64_t batches;    /* Produce frames built */
	uint64_t bytes_sent; /* bytes written to sockets, resends included */
	uint64_t connects;   /* successful handshakes (the first one included) */
	uint64_t resent;     /* events sent again after a reconnect */
	uint64_t stray_acks; /* acks for nothing in flight (ignored) */
	uint64_t dropped;    /* of acked: shed by the topic's overload policy */
	/* Credits (the server's grants, see wire.proto Credit): */
	uint64_t credit_events;  /* events the client may still send now */
	uint64_t credit_bytes;   /* event bytes it may still send now */
	uint64_t credit_frames;  /* Credit frames received */
	uint64_t credit_waits;   /* times a batch waited for credits */
	uint64_t credit_wait_ns; /* total time batches waited for credits */
};

/*
 * Resolves the server, connects and completes the handshake, waiting at most
 * connect_timeout_ms. A failure here is not retried: the error (e.g.
 * -ECONNREFUSED, -SL_ETIMEOUT) is returned, *out is NULL, and err (when not
 * NULL) holds the text with its context.
 */
int sl_client_connect(const struct sl_client_opts *opts, struct sl_client **out, char *err,
                      size_t errlen);

/*
 * Adds one event to the current batch of `topic` (NULL: opts.topic) and
 * stores its sequence in *seq (seq may be NULL). Returns 0; -EAGAIN
 * (nonblocking, window full), -SL_ETIMEOUT (block_timeout_ms passed),
 * -EMSGSIZE (the event alone exceeds a batch), -EINVAL, -EBUSY (called from
 * a callback) or the failed state's error. Only a 0 return gets a callback.
 */
int sl_client_produce(struct sl_client *c, const char *topic, const struct sl_client_event *ev,
                      uint64_t *seq);

/* The same for an event the caller encoded (a sluice.v1.Event message); the
 * bytes are checked to be one, and copied as they are. */
int sl_client_produce_encoded(struct sl_client *c, const char *topic, const void *event, size_t len,
                              uint64_t *seq);

/*
 * Sends what is batched (see linger), reads what arrived and runs the
 * callbacks, reconnects when it is time. Waits up to timeout_ms (-1: no
 * limit) for at least one event to be answered, but returns at once when
 * nothing is in flight. Returns the number of events answered, or a
 * negative error (the failed state's, or -EBUSY).
 */
int sl_client_poll(struct sl_client *c, int timeout_ms);

/* Sends everything and waits until every event produced so far is answered:
 * 0, -SL_ETIMEOUT after timeout_ms (-1: no limit), or an error as above. */
int sl_client_flush(struct sl_client *c, int timeout_ms);

/*
 * For event loops: an fd (stable for the client's life; an epoll fd inside)
 * that becomes readable when sl_client_poll(c, 0) has work to do, and
 * sl_client_timeout_ms(), the ms after which it must be called anyway
 * (timers: linger, reconnect backoff, ack timeout), -1 when none is due.
 * Call sl_client_poll(c, 0) when either fires. Returns the fd or -errno.
 */
int sl_client_fd(struct sl_client *c);
int sl_client_timeout_ms(const struct sl_client *c);

/* Events produced and not yet answered. */
uint64_t sl_client_inflight(const struct sl_client *c);
void sl_client_get_stats(const struct sl_client *c, struct sl_client_stats *out);
/* The producer id the server confirmed (assigned when opts.producer_id was 0). */
uint64_t sl_client_producer_id(const struct sl_client *c);
/* Copies the proof that goes with the producer id (16 bytes) into out:
 * keep it with the id to resume the producer from another process (opts.
 * producer_id and producer_proof). 0, or -ENOENT before the first Welcome. */
#define SL_CLIENT_PROOF_LEN 16
int sl_client_producer_proof(const struct sl_client *c, uint8_t out[SL_CLIENT_PROOF_LEN]);
/*
 * Where this client's sequences began (0.5): the first Welcome's
 * next_sequence, the first sequence sl_client_produce() assigned or will
 * assign. For a named producer (opts.producer_name) it is how far the
 * server holds the name's stream, so a restarted process skips that many
 * events of its input: sequence s is its event s. After a kill -9 of the
 * server it may be up to 8192 below the last stored sequence (those resent
 * are answered as duplicates, none is stored twice): the logs of a crash
 * need not hold a prefix of the stream. 0 for a new producer, and in
 * cluster mode.
 */
uint64_t sl_client_resume_sequence(const struct sl_client *c);
/* Text of the last failure with its context; "" when there was none. */
const char *sl_client_last_error(const struct sl_client *c);

/*
 * Read tokens (0.4): monotonic reads across replicas. In a cluster every
 * replica serves projection queries (GET /v1/projections/NAME/KEY on any
 * node's HTTP port), each from its own model, which may trail another's.
 * An application that passes `min_offset=TOKEN` with the highest token it
 * has seen for the key's partition never reads older than its own writes
 * or than what it read before, whichever replica answers (the query waits
 * until that replica's model has applied the token, or times out).
 *
 * The client keeps, per topic partition, the highest offset acked as
 * stored to it (noted before the ack's callback runs; dropped events and
 * duplicates whose offset the server forgot do not count), and the tokens
 * the application hands it with sl_client_saw_token, such as the "token"
 * of a query's answer. Tokens are "PARTITION:OFFSET" (decimal), as acks
 * and answers print them; topic NULL means opts.topic.
 *
 * sl_client_read_token writes the highest token of (topic, partition) into
 * buf (NUL-terminated; SL_CLIENT_TOKEN_MAX bytes always suffice) and
 * returns its length; -ENOENT when none was seen, -ENOSPC when buf is too
 * small (buf is then ""), -EINVAL for a NULL client or buf.
 * sl_client_saw_token raises the stored token when `token` is higher (a
 * lower one changes nothing): 0, -EINVAL for a malformed token or a
 * partition past 4095, -ENOMEM.
 */
#define SL_CLIENT_TOKEN_MAX 32
int sl_client_read_token(const struct sl_client *c, const char *topic, uint32_t partition,
                         char *buf, size_t len);
int sl_client_saw_token(struct sl_client *c, const char *topic, const char *token);
/* "ERR_UNKNOWN_TOPIC" ... for a sluice.v1.ErrorCode; "ERR_?" when unknown. */
const char *sl_client_code_name(uint32_t code);

/*
 * Closes the connection and frees the client. Events still unanswered get
 * their callback with -ECANCELED first: flush before closing to avoid that.
 */
void sl_client_close(struct sl_client *c);

#ifdef __cplusplus
}
#endif

#endif
