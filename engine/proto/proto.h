/*
 * proto: the native protocol codec (schemas/sluice/v1/wire.proto).
 *
 * Framing is `u32 length (LE) | u8 type | protobuf body`, length counting the
 * type byte and the body. Two codecs sit behind this header:
 *
 *  - a hand-written protobuf wire-format scanner and encoder for the hot path:
 *    Produce in, Ack out, FetchResult out and in, and reading events (server
 *    routing, consumers, projections). It never allocates and never copies an event: views point
 *    into the caller's bytes, encoders write into the caller's buffer. The
 *    reason it exists is measured by bench/proto.cc and written at the top of
 *    proto/scan.c (protobuf-c allocates per message and per field);
 *  - protobuf-c for the rare control messages (Hello, Welcome, Error, Credit,
 *    Fetch, Commit, Metadata...): sl_frame_encode_msg / sl_frame_decode_msg.
 *
 * Validation is complete: a Produce body that sl_produce_scan() accepts is
 * also accepted by protobuf_c_message_unpack() with the same field values
 * (checked by tests/unit/proto.c and tests/fuzz/frame.c). The scanner is
 * stricter than protobuf-c in a few places, always on input no conforming
 * encoder writes: varints whose 10th byte overflows 64 bits, field number 0,
 * and (a sluice rule, not a protobuf one) an event id that is present but
 * not 16 bytes. Strings are bounds-checked, not checked for UTF-8 (protobuf-c
 * does not check either).
 *
 * Ownership: nothing here allocates except sl_frame_decode_msg(), whose
 * message the caller frees with sl_frame_msg_free(). Views, frames and
 * iterators point into the caller's bytes and live as long as those bytes.
 *
 * Threads: no shared state; any thread may call anything on data it owns.
 */
#ifndef SL_PROTO_H
#define SL_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/base.h"
#include "proto/event.h"
#include "sluice/v1/wire.pb-c.h"

#ifdef __cplusplus
extern "C" {
#endif

/*
 * The protocol version this build speaks: the server's Hello check and
 * Welcome, and the client's Hello range and Welcome check, all use this one
 * value. Raise it when a frame changes incompatibly.
 */
#define SL_PROTO_VERSION 1u

/* ---- frames ------------------------------------------------------------ */

#define SL_FRAME_HDR_LEN 5 /* u32 length + u8 type */
/* Upper bound for any max_frame_bytes: keeps every frame size an int, so
 * byte counts come back as plain int returns. The configured default is
 * 1 MiB; nothing sane comes near 1 GiB. */
#define SL_FRAME_MAX_LIMIT (1u << 30)
#define SL_FRAME_TYPE_MAX  SLUICE__V1__FRAME_TYPE__FRAME_GROUP_HEARTBEAT_RESULT

struct sl_frame {
	uint8_t type;        /* a FrameType value, not yet checked */
	const uint8_t *body; /* protobuf body, inside the parsed buffer */
	uint32_t body_len;
	/* Total bytes (header included) the frame at the start of the buffer
	 * takes. Set whenever the length prefix was read, in particular when
	 * sl_frame_parse() returns 0; SL_FRAME_HDR_LEN while the prefix is
	 * itself incomplete. Always <= max_frame_bytes + 4. */
	uint32_t need;
};

/*
 * Parses the frame at the start of buf[0..len).
 * Returns the frame's size (> 0) when it is entirely there, filling *frame;
 * 0 when more bytes are needed (frame->need says how many in total);
 * -SL_EFRAME_TOO_BIG when the length prefix exceeds max_frame_bytes (decided
 * from the 4 prefix bytes alone, before any buffer is sized for the frame);
 * -SL_EPROTO_DECODE when the length is 0 (no type byte);
 * -EINVAL when max_frame_bytes > SL_FRAME_MAX_LIMIT.
 */
int sl_frame_parse(const uint8_t *buf, size_t len, uint32_t max_frame_bytes,
                   struct sl_frame *frame);

/* Writes the 5-byte header of a frame whose body is body_len bytes.
 * Returns SL_FRAME_HDR_LEN, -ENOSPC when cap < 5, -EMSGSIZE when the frame
 * would exceed SL_FRAME_MAX_LIMIT. */
int sl_frame_header_write(uint8_t *dst, size_t cap, uint8_t type, size_t body_len);

/* 0 when type is a FrameType this build knows (FRAME_NONE is not one),
 * -SL_EPROTO_UNKNOWN otherwise. */
int sl_frame_type_check(uint8_t type);

/* "PRODUCE", "ACK", ... or "UNKNOWN"; static text for logs. */
const char *sl_frame_type_name(uint8_t type);

/* The protobuf-c descriptor of the body of a known frame type, else NULL. */
const ProtobufCMessageDescriptor *sl_frame_type_descriptor(uint8_t type);

/* ---- control messages through protobuf-c ------------------------------- */

/* Bytes sl_frame_encode_msg() writes for msg (header included). */
size_t sl_frame_msg_size(const ProtobufCMessage *msg);

/*
 * Encodes msg as one frame of the given type into dst.
 * Returns the frame size, -EINVAL when msg is not the message type names,
 * -SL_EPROTO_UNKNOWN for an unknown type, -ENOSPC when cap is too small,
 * -EMSGSIZE beyond SL_FRAME_MAX_LIMIT.
 */
int sl_frame_encode_msg(uint8_t type, const ProtobufCMessage *msg, uint8_t *dst, size_t cap);

/*
 * Decodes a frame body with protobuf-c. On success *out is the message
 * (free it with sl_frame_msg_free) and 0 is returned; otherwise *out is NULL
 * and the return is -SL_EPROTO_UNKNOWN (type not known) or -SL_EPROTO_DECODE
 * (body is not valid protobuf for the type, or out of memory: protobuf-c does
 * not tell them apart). Allocates: not for the hot path.
 */
int sl_frame_decode_msg(const struct sl_frame *frame, ProtobufCMessage **out);
void sl_frame_msg_free(ProtobufCMessage *msg);

/* Encodes an Error frame (code is an ErrorCode, message may be NULL). */
int sl_frame_encode_error(uint8_t *dst, size_t cap, uint32_t code, const char *message);

/* The wire ErrorCode for a negative sluice return value (ERR_INTERNAL when
 * no better one exists). */
uint32_t sl_proto_wire_error(int err);

/* ---- scanning ---------------------------------------------------------- */

/* What kind of fault a scanner found. */
enum sl_proto_fault {
	SL_PROTO_FAULT_NONE = 0,
	SL_PROTO_FAULT_WIRE,  /* not valid protobuf for the message: ERR_MALFORMED */
	SL_PROTO_FAULT_EVENT, /* valid protobuf, but an event breaks a sluice rule
	                       * (id not 16 bytes): ERR_EVENT */
};

#define SL_PROTO_REASON_MAX 128

/* Filled by the scanners on failure only (success leaves it alone, so the
 * hot path never formats text). */
struct sl_proto_error {
	int code;                         /* the negative value returned */
	int fault;                        /* enum sl_proto_fault */
	int64_t event;                    /* index of the faulty event, -1 when outside any event */
	char reason[SL_PROTO_REASON_MAX]; /* e.g. "event 3: Event.id: must be 16 bytes" */
};

/* The wire ErrorCode that answers a scan failure (ERR_MALFORMED or ERR_EVENT). */
uint32_t sl_proto_error_wire_code(const struct sl_proto_error *err);

/*
 * Scans one encoded Event, walking every field (unknown ones skipped when
 * well-formed), and fills every field of *view; view->raw is buf.
 * Returns 0, or -SL_EPROTO_DECODE (err, if not NULL, says why). Repeated
 * occurrences of a singular field: the last wins, as in protobuf.
 */
int sl_event_scan(const uint8_t *buf, size_t len, struct sl_event_view *view);
int sl_event_scan_err(const uint8_t *buf, size_t len, struct sl_event_view *view,
                      struct sl_proto_error *err);

struct sl_event_header {
	const char *key; /* not NUL-terminated */
	size_t key_len;
	const uint8_t *value;
	size_t value_len;
};

/*
 * Iterates the headers of a scanned event in order. *cursor starts at 0.
 * Returns 1 with *header filled, 0 after the last one, -SL_EPROTO_DECODE if
 * view->raw is not a valid event (cannot happen after sl_event_scan()).
 */
int sl_event_header_next(const struct sl_event_view *view, size_t *cursor,
                         struct sl_event_header *header);

/*
 * Credits (wire.proto Credit): an event costs its encoded size plus this
 * many credit bytes, what the server spends on it besides its bytes while
 * it is in flight (ack bookkeeping, its sequence entry, its answer). Client
 * and server must agree: it is part of the protocol.
 */
#define SL_CREDIT_EVENT_OVERHEAD 64u

/* A scanned Produce body. */
struct sl_produce {
	const char *topic; /* not NUL-terminated */
	size_t topic_len;
	uint64_t base_sequence;
	uint32_t epoch;
	uint32_t n_events;
	uint64_t resend_age_ms; /* 0: first sent now (wire.proto) */
	const uint8_t *body;    /* the scanned body, for the event iterator */
	size_t body_len;
};

/*
 * Validates a Produce body completely (every field, every event) and fills
 * *out. Returns 0, or -SL_EPROTO_DECODE with *err (if not NULL) naming the
 * field and the event index. No allocation, no copy.
 */
int sl_produce_scan(const uint8_t *body, size_t len, struct sl_produce *out,
                    struct sl_proto_error *err);

/*
 * The same, also filling views[i] for the first max_views events while it
 * validates them: one pass instead of scan-then-iterate (about half the cost
 * per event, see bench/proto.cc) for a caller with a scratch array. When
 * n_events > max_views, the rest come from the iterator (which starts at
 * event 0). On failure the views are partly filled and meaningless.
 */
int sl_produce_scan_views(const uint8_t *body, size_t len, struct sl_produce *out,
                          struct sl_event_view *views, uint32_t max_views,
                          struct sl_proto_error *err);

/* Walks the events of a message body in order. Plain value; no cleanup. */
struct sl_event_iter {
	const uint8_t *p;
	const uint8_t *end;
	uint32_t tag;   /* wire tag of the repeated Event field */
	uint32_t index; /* index of the next event */
};

void sl_produce_iter_init(const struct sl_produce *produce, struct sl_event_iter *it);

/*
 * Next event: returns 1 with *view filled (view->raw/raw_len are the encoded
 * event, to be stored verbatim), 0 after the last, -SL_EPROTO_DECODE if the
 * body was not validated first and is malformed.
 */
int sl_event_iter_next(struct sl_event_iter *it, struct sl_event_view *view);

/* A scanned FetchResult body: the consume path reads its events with the
 * event iterator, never through protobuf-c. */
struct sl_fetch_result {
	uint64_t request_id;
	const char *topic; /* not NUL-terminated */
	size_t topic_len;
	uint32_t partition;
	uint64_t base_offset; /* offset of event 0 */
	uint64_t end_offset;
	uint32_t error;      /* ErrorCode */
	const char *message; /* not NUL-terminated */
	size_t message_len;
	uint64_t log_start_offset; /* with ERR_OFFSET_OUT_OF_RANGE */
	uint32_t n_events;
	uint32_t n_append_times;
	const uint8_t *body;
	size_t body_len;
};

/* Validates a FetchResult body completely, like sl_produce_scan(). */
int sl_fetch_result_scan(const uint8_t *body, size_t len, struct sl_fetch_result *out,
                         struct sl_proto_error *err);
void sl_fetch_result_iter_init(const struct sl_fetch_result *fr, struct sl_event_iter *it);

/* append_time_ms values in order, packed or not. */
struct sl_times_iter {
	const uint8_t *p, *end;     /* the body */
	const uint8_t *pk, *pk_end; /* the packed run being read */
};

void sl_fetch_result_times_init(const struct sl_fetch_result *fr, struct sl_times_iter *it);
/* 1 with *out set, 0 after the last, -SL_EPROTO_DECODE on a malformed body. */
int sl_fetch_result_times_next(struct sl_times_iter *it, int64_t *out);

/* ---- encoding (zero allocation, into caller buffers) ------------------- */

/*
 * Encoders take an sl_event_view as input: id (NULL: absent), type,
 * aggregate, timestamp_ms, data, schema_version; n_headers and raw are
 * ignored, headers come as an array (NULL, 0 for none). The bytes are those
 * protobuf_c_message_pack() writes for the same values: fields in number
 * order, zero values left out.
 */
size_t sl_event_encoded_size(const struct sl_event_view *view,
                             const struct sl_event_header *headers, size_t n_headers);

/* Returns the event's size, -ENOSPC when cap is too small, -EMSGSIZE when
 * the event exceeds SL_FRAME_MAX_LIMIT. */
int sl_event_encode(uint8_t *dst, size_t cap, const struct sl_event_view *view,
                    const struct sl_event_header *headers, size_t n_headers);

/*
 * Builds one Produce frame in place. A failed add (-ENOSPC) leaves the
 * builder as it was, so a batching client finishes the frame, sends it and
 * begins the next one. cap should be at most the server's max_frame_bytes + 4.
 */
struct sl_produce_builder {
	uint8_t *buf;
	size_t cap; /* capacity left for events: room for epoch is held back */
	size_t len; /* bytes written, header included */
	uint32_t epoch;
	uint32_t n_events;
	uint64_t resend_age_ms;
};

int sl_produce_begin(struct sl_produce_builder *b, uint8_t *dst, size_t cap, const char *topic,
                     size_t topic_len, uint64_t base_sequence, uint32_t epoch);
/* Appends an already-encoded event (copied verbatim, not validated). */
int sl_produce_add_encoded(struct sl_produce_builder *b, const uint8_t *event, size_t len);
/* Encodes an event from a view straight into the frame. */
int sl_produce_add_event(struct sl_produce_builder *b, const struct sl_event_view *view,
                         const struct sl_event_header *headers, size_t n_headers);
/* Marks the frame begun as a resend whose oldest event was first sent
 * age_ms ago (Produce.resend_age_ms; at least 1), before any event is
 * added. -ENOSPC when the frame has no room for the field. */
int sl_produce_set_resend_age(struct sl_produce_builder *b, uint64_t age_ms);
/* Writes the length prefix (and the epoch and resend age fields); returns
 * the frame size. */
int sl_produce_finish(struct sl_produce_builder *b);

/*
 * Builds one FetchResult frame in place from stored event bytes (the server's
 * consume path). Everything but the events is known when the fetch starts, so
 * it is written (or held back) at begin and an add never invalidates it.
 * Each event is followed by its append time as an unpacked field 9, which
 * protobuf-c and sl_fetch_result_scan read like the packed form.
 */
struct sl_fetch_result_builder {
	uint8_t *buf;
	size_t cap; /* capacity left for events: the tail fields are held back */
	size_t len;
	uint64_t end_offset;
	uint32_t error;
	const char *message;
	size_t message_len;
	uint64_t log_start_offset;
	uint32_t n_events;
};

struct sl_fetch_result_head {
	uint64_t request_id;
	const char *topic;
	size_t topic_len;
	uint32_t partition;
	uint64_t base_offset;
	uint64_t end_offset;
	uint32_t error;      /* ErrorCode */
	const char *message; /* not NUL-terminated; must outlive the builder */
	size_t message_len;
	uint64_t log_start_offset; /* field 10: with ERR_OFFSET_OUT_OF_RANGE, else 0 */
};

int sl_fetch_result_begin(struct sl_fetch_result_builder *b, uint8_t *dst, size_t cap,
                          const struct sl_fetch_result_head *head);
/* Appends a stored event verbatim, and its append time. -ENOSPC leaves the
 * builder as it was. */
int sl_fetch_result_add(struct sl_fetch_result_builder *b, const uint8_t *event, size_t len,
                        int64_t append_time_ms);
/* Writes the held-back fields and the length prefix; returns the frame size. */
int sl_fetch_result_finish(struct sl_fetch_result_builder *b);

/*
 * A list of event indexes within a Produce: v[0..n) or, when v is NULL, the
 * run first, first+1, ..., first+n-1 (the common case: no array to build).
 */
struct sl_index_list {
	const uint32_t *v;
	uint32_t first;
	uint32_t n;
};

struct sl_ack_part {
	uint32_t partition;
	uint64_t base_offset;
	struct sl_index_list index;
	/* NULL: event index[i] is at base_offset + i. Else index.n explicit
	 * offsets (duplicates keep their original, scattered offsets). */
	const uint64_t *offsets;
	bool duplicate;
	bool offset_unknown; /* a duplicate stored too long ago to know where */
	bool dropped;        /* shed by the overload policy: not stored */
};

struct sl_ack_reject {
	struct sl_index_list index;
	uint32_t code;       /* ErrorCode */
	const char *message; /* not NUL-terminated; may be NULL when 0 long */
	size_t message_len;
	uint32_t retry_after_ms;
};

struct sl_ack {
	uint64_t base_sequence;
	const struct sl_ack_part *parts;
	size_t n_parts;
	const struct sl_ack_reject *rejects;
	size_t n_rejects;
};

/* Frame size sl_ack_encode() writes; 0 when the ack is invalid (index run
 * overflowing 32 bits) or larger than SL_FRAME_MAX_LIMIT. */
size_t sl_ack_frame_size(const struct sl_ack *ack);

/* Encodes an Ack frame. Returns the frame size, -ENOSPC, or -EINVAL/-EMSGSIZE
 * for an ack sl_ack_frame_size() refuses. */
int sl_ack_encode(uint8_t *dst, size_t cap, const struct sl_ack *ack);

#ifdef __cplusplus
}
#endif

#endif
