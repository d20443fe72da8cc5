/*
 * Fuzz target: bytes from the network. Walks the input as a stream of frames
 * and feeds each one to what the server and client do with it: the type
 * check, the Produce and FetchResult scanners and their iterators, the event
 * reader and header iterator, and the protobuf-c control decoders. The whole
 * input is also scanned as a bare Produce and FetchResult body, so the
 * scanners see bytes that do not have to survive framing first.
 *
 * Differential: whatever the hand-written scanner accepts, protobuf-c must
 * accept too, with equal values (the reverse need not hold: the scanner is
 * stricter on purpose, see proto/proto.h). Decoded Acks are re-encoded with
 * sl_ack_encode() and must equal protobuf-c's own encoding.
 */
#include <stdlib.h>
#include <string.h>

#include "proto/proto.h"
#include "sluice/v1/event.pb-c.h"
#include "sluice/v1/wire.pb-c.h"

#define CHECK(x)                                                                                   \
	do {                                                                                       \
		if (!(x))                                                                          \
			abort();                                                                   \
	} while (0)

/* Small, so that length prefixes above it show up often. */
#define MAX_FRAME (64u << 10)

static bool same_str(const char *s, size_t n, const char *pc)
{
	/* protobuf-c copies every byte and NUL-terminates; strlen() may stop
	 * early on an embedded NUL, so compare the bytes we know. */
	return (n == 0 || memcmp(s, pc, n) == 0) && pc[n] == 0;
}

static bool same_mem(const void *a, size_t alen, const ProtobufCBinaryData *b)
{
	return alen == b->len && (alen == 0 || memcmp(a, b->data, alen) == 0);
}

static void check_event(const struct sl_event_view *v, const Sluice__V1__Event *e)
{
	struct sl_event_header h;
	size_t cur = 0;

	if (e->id.len)
		CHECK(v->id && e->id.len == SL_EVENT_ID_LEN && !memcmp(v->id, e->id.data, 16));
	else
		CHECK(!v->id);
	CHECK(same_str(v->type, v->type_len, e->type));
	CHECK(same_str(v->aggregate, v->aggregate_len, e->aggregate));
	CHECK(v->timestamp_ms == e->timestamp_ms);
	CHECK(same_mem(v->data, v->data_len, &e->data));
	CHECK(v->schema_version == e->schema_version);
	CHECK(v->n_headers == e->n_headers);
	for (size_t i = 0; i < e->n_headers; i++) {
		CHECK(sl_event_header_next(v, &cur, &h) == 1);
		CHECK(same_str(h.key, h.key_len, e->headers[i]->key));
		CHECK(same_mem(h.value, h.value_len, &e->headers[i]->value));
	}
	CHECK(sl_event_header_next(v, &cur, &h) == 0);
}

static void check_produce(const uint8_t *body, size_t len)
{
	struct sl_produce pr;
	struct sl_proto_error err;
	struct sl_event_iter it;
	struct sl_event_view v;
	Sluice__V1__Produce *u;
	int rc;

	rc = sl_produce_scan(body, len, &pr, &err);
	if (rc) {
		CHECK(rc == -SL_EPROTO_DECODE && err.code == rc);
		CHECK(err.fault == SL_PROTO_FAULT_WIRE || err.fault == SL_PROTO_FAULT_EVENT);
		CHECK(memchr(err.reason, 0, sizeof(err.reason)));
		return;
	}
	u = sluice__v1__produce__unpack(NULL, len, body);
	CHECK(u);
	CHECK(same_str(pr.topic, pr.topic_len, u->topic));
	CHECK(pr.base_sequence == u->base_sequence);
	CHECK(pr.epoch == u->epoch);
	CHECK(pr.n_events == u->n_events);
	sl_produce_iter_init(&pr, &it);
	for (size_t i = 0; i < u->n_events; i++) {
		CHECK(sl_event_iter_next(&it, &v) == 1);
		CHECK(v.raw >= body && v.raw + v.raw_len <= body + len);
		check_event(&v, u->events[i]);
	}
	CHECK(sl_event_iter_next(&it, &v) == 0);
	sluice__v1__produce__free_unpacked(u, NULL);
}

static void check_fetch_result(const uint8_t *body, size_t len)
{
	struct sl_fetch_result fr;
	struct sl_proto_error err;
	struct sl_event_iter it;
	struct sl_times_iter ti;
	struct sl_event_view v;
	Sluice__V1__FetchResult *u;
	int64_t t;
	int rc;

	rc = sl_fetch_result_scan(body, len, &fr, &err);
	if (rc) {
		CHECK(rc == -SL_EPROTO_DECODE && err.code == rc);
		return;
	}
	u = sluice__v1__fetch_result__unpack(NULL, len, body);
	CHECK(u);
	CHECK(fr.request_id == u->request_id);
	CHECK(same_str(fr.topic, fr.topic_len, u->topic));
	CHECK(fr.partition == u->partition);
	CHECK(fr.base_offset == u->base_offset);
	CHECK(fr.end_offset == u->end_offset);
	CHECK(fr.error == (uint32_t)u->error);
	CHECK(same_str(fr.message, fr.message_len, u->message));
	CHECK(fr.n_events == u->n_events);
	CHECK(fr.n_append_times == u->n_append_time_ms);
	sl_fetch_result_iter_init(&fr, &it);
	for (size_t i = 0; i < u->n_events; i++) {
		CHECK(sl_event_iter_next(&it, &v) == 1);
		check_event(&v, u->events[i]);
	}
	CHECK(sl_event_iter_next(&it, &v) == 0);
	sl_fetch_result_times_init(&fr, &ti);
	for (size_t i = 0; i < u->n_append_time_ms; i++) {
		CHECK(sl_fetch_result_times_next(&ti, &t) == 1);
		CHECK(t == u->append_time_ms[i]);
	}
	CHECK(sl_fetch_result_times_next(&ti, &t) == 0);
	sluice__v1__fetch_result__free_unpacked(u, NULL);
}

/* Re-encodes a decoded Ack with our encoder; protobuf-c must write the same. */
static void check_ack(const Sluice__V1__Ack *a)
{
	struct sl_ack_part parts[16];
	struct sl_ack_reject rejects[16];
	struct sl_ack ack = {.base_sequence = a->base_sequence};
	size_t n, size;
	uint8_t *ours, *ref;

	if (a->n_parts > 16 || a->n_rejects > 16 || a->base.n_unknown_fields)
		return;
	for (size_t i = 0; i < a->n_parts; i++) {
		const Sluice__V1__AckPart *p = a->parts[i];
		/* our API ties offsets to index; skip the shapes it cannot say */
		if (p->base.n_unknown_fields || (p->n_offsets && p->n_offsets != p->n_index) ||
		    p->n_index > UINT32_MAX)
			return;
		parts[i] = (struct sl_ack_part){
		    .partition = p->partition,
		    .base_offset = p->base_offset,
		    .index = {p->index, 0, (uint32_t)p->n_index},
		    .offsets = p->n_offsets ? p->offsets : NULL,
		    .duplicate = p->duplicate,
		    .offset_unknown = p->offset_unknown,
		    .dropped = p->dropped,
		};
	}
	for (size_t i = 0; i < a->n_rejects; i++) {
		const Sluice__V1__Reject *r = a->rejects[i];
		if (r->base.n_unknown_fields)
			return;
		/* protobuf-c packs a string up to its first NUL; so does this */
		rejects[i] = (struct sl_ack_reject){
		    .index = {r->index, 0, (uint32_t)r->n_index},
		    .code = (uint32_t)r->code,
		    .message = r->message,
		    .message_len = strlen(r->message),
		    .retry_after_ms = r->retry_after_ms,
		};
	}
	ack.parts = parts;
	ack.n_parts = a->n_parts;
	ack.rejects = rejects;
	ack.n_rejects = a->n_rejects;

	size = sl_ack_frame_size(&ack);
	CHECK(size >= SL_FRAME_HDR_LEN);
	n = protobuf_c_message_get_packed_size(&a->base);
	CHECK(size == n + SL_FRAME_HDR_LEN);
	ours = malloc(size);
	ref = malloc(n ? n : 1);
	CHECK(ours && ref);
	CHECK(sl_ack_encode(ours, size, &ack) == (int)size);
	protobuf_c_message_pack(&a->base, ref);
	CHECK(n == 0 || memcmp(ours + SL_FRAME_HDR_LEN, ref, n) == 0);
	free(ours);
	free(ref);
}

static void check_frame(const struct sl_frame *f)
{
	ProtobufCMessage *m;
	int rc = sl_frame_decode_msg(f, &m);

	if (sl_frame_type_check(f->type)) {
		CHECK(rc == -SL_EPROTO_UNKNOWN && !m);
		return;
	}
	CHECK(rc == 0 || (rc == -SL_EPROTO_DECODE && !m));
	if (f->type == SLUICE__V1__FRAME_TYPE__FRAME_PRODUCE)
		check_produce(f->body, f->body_len);
	if (f->type == SLUICE__V1__FRAME_TYPE__FRAME_FETCH_RESULT)
		check_fetch_result(f->body, f->body_len);
	if (rc)
		return;
	if (f->type == SLUICE__V1__FRAME_TYPE__FRAME_ACK)
		check_ack((const Sluice__V1__Ack *)m);

	/* What protobuf-c decoded encodes back into a whole frame. (It need not
	 * decode again: protobuf-c keeps an unknown field whose non-minimal tag
	 * says field 0, re-emits it as a plain 0 tag, and then refuses that.) */
	size_t size = sl_frame_msg_size(m);
	uint8_t *buf = malloc(size);
	struct sl_frame back;
	ProtobufCMessage *m2;
	CHECK(buf);
	CHECK(sl_frame_encode_msg(f->type, m, buf, size) == (int)size);
	CHECK(sl_frame_parse(buf, size, SL_FRAME_MAX_LIMIT, &back) == (int)size);
	CHECK(back.type == f->type);
	CHECK(back.body == buf + SL_FRAME_HDR_LEN && back.body_len == size - SL_FRAME_HDR_LEN);
	rc = sl_frame_decode_msg(&back, &m2);
	CHECK(rc == 0 || rc == -SL_EPROTO_DECODE);
	sl_frame_msg_free(m2);
	free(buf);
	sl_frame_msg_free(m);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t off = 0;

	/* A bounded walk: every successful parse consumes at least 5 bytes. */
	while (off < size) {
		struct sl_frame f;
		int n = sl_frame_parse(data + off, size - off, MAX_FRAME, &f);

		if (n == 0) {
			CHECK(f.need > size - off && f.need <= MAX_FRAME + 4);
			break;
		}
		if (n < 0) {
			CHECK(n == -SL_EFRAME_TOO_BIG || n == -SL_EPROTO_DECODE);
			break;
		}
		CHECK((size_t)n <= size - off && n >= SL_FRAME_HDR_LEN && f.need == (uint32_t)n);
		CHECK(f.body == data + off + SL_FRAME_HDR_LEN && f.body_len == (uint32_t)n - 5);
		check_frame(&f);
		off += (size_t)n;
	}
	check_produce(data, size);
	check_fetch_result(data, size);
	return 0;
}
