/*
 * proto: the hand-written scanner and encoders must agree with protobuf-c,
 * byte for byte where we encode and value for value where we scan, and must
 * refuse every malformed or truncated input without reading out of bounds
 * (inputs are copied into exactly-sized heap buffers so ASan sees overreads).
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "proto/proto.h"
#include "sluice/v1/event.pb-c.h"
#include "sluice/v1/wire.pb-c.h"

/* ---- fixtures ------------------------------------------------------------ */

static uint64_t rnd(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

#define MAX_HDR 4

struct ev_fix {
	Sluice__V1__Event e;
	Sluice__V1__Header h[MAX_HDR];
	Sluice__V1__Header *hp[MAX_HDR];
	uint8_t id[16];
	char type[40];
	char agg[80];
	uint8_t data[400];
	char hk[MAX_HDR][16];
	uint8_t hv[MAX_HDR][200];
	/* the same event as our encoders take it */
	struct sl_event_view view;
	struct sl_event_header hdr[MAX_HDR];
};

static void rnd_str(uint64_t *s, char *dst, size_t n)
{
	for (size_t i = 0; i < n; i++)
		dst[i] = (char)('a' + rnd(s) % 26);
	dst[n] = 0;
}

/* Variant v steers the edge cases: absent fields, negative and huge values,
 * lengths on both sides of the 1- to 2-byte varint boundary. */
static void make_event(struct ev_fix *f, uint64_t *s, unsigned v)
{
	size_t n;

	memset(f, 0, sizeof(*f));
	sluice__v1__event__init(&f->e);
	if (v % 5 != 4) {
		for (int i = 0; i < 16; i++)
			f->id[i] = (uint8_t)rnd(s);
		f->e.id.data = f->id;
		f->e.id.len = 16;
		f->view.id = f->id;
	}
	n = v % 7 == 3 ? 0 : 1 + rnd(s) % 30;
	rnd_str(s, f->type, n);
	f->e.type = f->type;
	n = v % 11 == 5 ? 0 : 1 + rnd(s) % 70;
	rnd_str(s, f->agg, n);
	f->e.aggregate = f->agg;
	switch (v % 4) {
	case 0:
		f->e.timestamp_ms = 1700000000000LL + (int64_t)(rnd(s) % 1000000);
		break;
	case 1:
		f->e.timestamp_ms = -(int64_t)(rnd(s) % 100000) - 1;
		break;
	case 2:
		f->e.timestamp_ms = 0;
		break;
	default:
		f->e.timestamp_ms = INT64_MAX;
		break;
	}
	n = v % 9 == 7 ? 0 : (v % 3 == 0 ? 100 : rnd(s) % sizeof(f->data));
	for (size_t i = 0; i < n; i++)
		f->data[i] = (uint8_t)rnd(s);
	f->e.data.data = n ? f->data : NULL;
	f->e.data.len = n;
	f->e.n_headers = v % (MAX_HDR + 1);
	for (size_t i = 0; i < f->e.n_headers; i++) {
		sluice__v1__header__init(&f->h[i]);
		n = (v + i) % 4 == 1 ? 0 : 1 + rnd(s) % 12;
		rnd_str(s, f->hk[i], n);
		f->h[i].key = f->hk[i];
		n = (v + i) % 3 == 2 ? 0 : rnd(s) % 200;
		for (size_t j = 0; j < n; j++)
			f->hv[i][j] = (uint8_t)rnd(s);
		f->h[i].value.data = n ? f->hv[i] : NULL;
		f->h[i].value.len = n;
		f->hp[i] = &f->h[i];
		f->hdr[i] =
		    (struct sl_event_header){f->hk[i], strlen(f->hk[i]), n ? f->hv[i] : NULL, n};
	}
	f->e.headers = f->e.n_headers ? f->hp : NULL;
	f->e.schema_version = v % 6 == 1 ? 0 : (v % 6 == 2 ? UINT32_MAX : (uint32_t)(v % 300));

	f->view.type = f->type;
	f->view.type_len = strlen(f->type);
	f->view.aggregate = f->agg;
	f->view.aggregate_len = strlen(f->agg);
	f->view.timestamp_ms = f->e.timestamp_ms;
	f->view.data = f->e.data.data;
	f->view.data_len = f->e.data.len;
	f->view.schema_version = f->e.schema_version;
	f->view.n_headers = (uint32_t)f->e.n_headers;
}

/* Heap copy of exactly n bytes: any read past the end is an ASan report. */
static uint8_t *dup_exact(const void *src, size_t n)
{
	uint8_t *p = malloc(n ? n : 1);

	cr_assert_not_null(p);
	if (n)
		memcpy(p, src, n);
	return p;
}

static uint8_t *pack(const ProtobufCMessage *m, size_t *len)
{
	*len = protobuf_c_message_get_packed_size(m);
	uint8_t *buf = malloc(*len ? *len : 1);
	cr_assert_not_null(buf);
	cr_assert_eq(protobuf_c_message_pack(m, buf), *len);
	return buf;
}

static void expect_mem(const void *a, size_t alen, const void *b, size_t blen, const char *what)
{
	cr_assert_eq(alen, blen, "%s: length %zu, expected %zu", what, alen, blen);
	if (alen)
		cr_assert_eq(memcmp(a, b, alen), 0, "%s differs", what);
}

static void expect_str(const char *s, size_t n, const char *c, const char *what)
{
	expect_mem(s, n, c, strlen(c), what);
}

/* Every field of a view, and its headers, against protobuf-c's message. */
static void expect_view_matches(const struct sl_event_view *v, const Sluice__V1__Event *e)
{
	struct sl_event_header h;
	size_t cur = 0;

	if (e->id.len) {
		cr_assert_not_null(v->id);
		expect_mem(v->id, 16, e->id.data, e->id.len, "id");
	} else {
		cr_assert_null(v->id);
	}
	expect_str(v->type, v->type_len, e->type, "type");
	expect_str(v->aggregate, v->aggregate_len, e->aggregate, "aggregate");
	cr_assert_eq(v->timestamp_ms, e->timestamp_ms);
	expect_mem(v->data, v->data_len, e->data.data, e->data.len, "data");
	cr_assert_eq(v->schema_version, e->schema_version);
	cr_assert_eq(v->n_headers, e->n_headers);
	for (size_t i = 0; i < e->n_headers; i++) {
		cr_assert_eq(sl_event_header_next(v, &cur, &h), 1);
		expect_str(h.key, h.key_len, e->headers[i]->key, "header key");
		expect_mem(h.value, h.value_len, e->headers[i]->value.data,
		           e->headers[i]->value.len, "header value");
	}
	cr_assert_eq(sl_event_header_next(v, &cur, &h), 0);
}

/* ---- frames -------------------------------------------------------------- */

Test(proto, frame_parse_whole_partial_and_back_to_back)
{
	uint8_t buf[32];
	struct sl_frame f;
	int n;

	cr_assert_eq(sl_frame_header_write(buf, sizeof(buf), 6, 3), SL_FRAME_HDR_LEN);
	memcpy(buf + 5, "\x08\x01\x10", 3);
	cr_assert_eq(sl_frame_header_write(buf + 8, sizeof(buf) - 8, 2, 0), SL_FRAME_HDR_LEN);
	cr_assert_eq(buf[0], 4);
	cr_assert_eq(buf[1] | buf[2] | buf[3], 0);

	for (size_t len = 0; len < 8; len++) {
		uint8_t *p = dup_exact(buf, len);
		memset(&f, 0, sizeof(f));
		cr_assert_eq(sl_frame_parse(p, len, 1024, &f), 0, "prefix %zu", len);
		cr_assert_eq(f.need, len < 4 ? SL_FRAME_HDR_LEN : 8);
		free(p);
	}
	n = sl_frame_parse(buf, 13, 1024, &f);
	cr_assert_eq(n, 8);
	cr_assert_eq(f.type, 6);
	cr_assert_eq(f.body, buf + 5);
	cr_assert_eq(f.body_len, 3);
	n = sl_frame_parse(buf + 8, 5, 1024, &f);
	cr_assert_eq(n, 5);
	cr_assert_eq(f.type, 2);
	cr_assert_eq(f.body_len, 0);
}

Test(proto, frame_oversized_refused_from_prefix_alone)
{
	const uint8_t big[4] = {0x01, 0x00, 0x10, 0x00}; /* 1 MiB + 1 */
	const uint8_t max[4] = {0x00, 0x00, 0x10, 0x00}; /* exactly 1 MiB */
	const uint8_t huge[4] = {0xff, 0xff, 0xff, 0xff};
	const uint8_t zero[5] = {0, 0, 0, 0, 3};
	struct sl_frame f;
	uint8_t *p;

	/* Only the 4 prefix bytes exist: the verdict needs nothing more. */
	p = dup_exact(big, 4);
	cr_assert_eq(sl_frame_parse(p, 4, 1u << 20, &f), -SL_EFRAME_TOO_BIG);
	free(p);
	p = dup_exact(huge, 4);
	cr_assert_eq(sl_frame_parse(p, 4, 1u << 20, &f), -SL_EFRAME_TOO_BIG);
	free(p);
	p = dup_exact(max, 4);
	cr_assert_eq(sl_frame_parse(p, 4, 1u << 20, &f), 0);
	cr_assert_eq(f.need, (1u << 20) + 4);
	free(p);
	cr_assert_eq(sl_frame_parse(zero, 5, 1u << 20, &f), -SL_EPROTO_DECODE);
	cr_assert_eq(sl_frame_parse(max, 4, SL_FRAME_MAX_LIMIT + 1, &f), -EINVAL);
	cr_assert_eq(sl_frame_header_write((uint8_t[5]){0}, 4, 1, 0), -ENOSPC);
	cr_assert_eq(sl_frame_header_write((uint8_t[5]){0}, 5, 1, SL_FRAME_MAX_LIMIT), -EMSGSIZE);
}

Test(proto, frame_types_known_and_unknown)
{
	for (int t = 1; t <= SL_FRAME_TYPE_MAX; t++) {
		cr_assert_eq(sl_frame_type_check((uint8_t)t), 0, "type %d", t);
		cr_assert_str_neq(sl_frame_type_name((uint8_t)t), "UNKNOWN");
		cr_assert_not_null(sl_frame_type_descriptor((uint8_t)t));
	}
	cr_assert_str_eq(sl_frame_type_name(3), "PRODUCE");
	cr_assert_eq(sl_frame_type_descriptor(4), &sluice__v1__ack__descriptor);
	cr_assert_eq(sl_frame_type_descriptor(11), &sluice__v1__metadata_request__descriptor);
	cr_assert_eq(sl_frame_type_check(0), -SL_EPROTO_UNKNOWN);
	cr_assert_eq(sl_frame_type_check(SL_FRAME_TYPE_MAX + 1), -SL_EPROTO_UNKNOWN);
	cr_assert_eq(sl_frame_type_check(255), -SL_EPROTO_UNKNOWN);
	cr_assert_str_eq(sl_frame_type_name(200), "UNKNOWN");
}

/* ---- events -------------------------------------------------------------- */

Test(proto, event_scan_agrees_with_protobuf_c)
{
	uint64_t s = 0x9e3779b97f4a7c15ull;

	for (unsigned v = 0; v < 400; v++) {
		struct ev_fix f;
		struct sl_event_view view;
		size_t len;

		make_event(&f, &s, v);
		uint8_t *buf = pack(&f.e.base, &len);
		uint8_t *exact = dup_exact(buf, len);
		cr_assert_eq(sl_event_scan(exact, len, &view), 0, "variant %u", v);
		cr_assert_eq(view.raw, exact);
		cr_assert_eq(view.raw_len, len);
		expect_view_matches(&view, &f.e);
		free(exact);
		free(buf);
	}
}

Test(proto, event_encoder_writes_protobuf_c_bytes)
{
	uint64_t s = 12345;
	uint8_t out[2048];

	for (unsigned v = 0; v < 400; v++) {
		struct ev_fix f;
		size_t len;

		make_event(&f, &s, v);
		uint8_t *ref = pack(&f.e.base, &len);
		cr_assert_eq(sl_event_encoded_size(&f.view, f.hdr, f.e.n_headers), len);
		int n = sl_event_encode(out, sizeof(out), &f.view, f.hdr, f.e.n_headers);
		expect_mem(out, (size_t)n, ref, len, "encoded event");

		Sluice__V1__Event *u = sluice__v1__event__unpack(NULL, (size_t)n, out);
		cr_assert_not_null(u);
		struct sl_event_view back;
		cr_assert_eq(sl_event_scan(out, (size_t)n, &back), 0);
		expect_view_matches(&back, u);
		sluice__v1__event__free_unpacked(u, NULL);

		/* One byte short never writes. */
		memset(out, 0xAA, sizeof(out));
		cr_assert_eq(sl_event_encode(out, len - 1, &f.view, f.hdr, f.e.n_headers), -ENOSPC);
		cr_assert_eq(out[0], 0xAA);
		free(ref);
	}
}

/* Our verdict on bytes must match protobuf-c's, except where we are stricter
 * on purpose (strict == true: we must refuse, protobuf-c may accept). */
static void expect_event_verdict(const uint8_t *b, size_t n, bool ok, int fault, const char *needle)
{
	struct sl_event_view v;
	struct sl_proto_error err = {0};
	uint8_t *p = dup_exact(b, n);
	int rc = sl_event_scan_err(p, n, &v, &err);
	Sluice__V1__Event *u = sluice__v1__event__unpack(NULL, n, p);

	if (ok) {
		cr_assert_eq(rc, 0, "refused: %s", err.reason);
		cr_assert_not_null(u, "protobuf-c refuses what we accept");
		expect_view_matches(&v, u);
	} else {
		cr_assert_eq(rc, -SL_EPROTO_DECODE);
		cr_assert_eq(err.code, -SL_EPROTO_DECODE);
		cr_assert_eq(err.fault, fault, "fault %d (%s)", err.fault, err.reason);
		if (needle)
			cr_assert(strstr(err.reason, needle), "reason '%s' lacks '%s'", err.reason,
			          needle);
		if (fault == SL_PROTO_FAULT_WIRE)
			cr_assert_null(u, "protobuf-c accepts what we call malformed");
	}
	sluice__v1__event__free_unpacked(u, NULL);
	free(p);
}

#define BYTES(...) (const uint8_t[]){__VA_ARGS__}, sizeof((const uint8_t[]){__VA_ARGS__})

Test(proto, event_malformed_inputs_refused)
{
	/* wrong wire types for every known field */
	expect_event_verdict(BYTES(0x08, 0x01), false, SL_PROTO_FAULT_WIRE, "Event.id: wrong wire");
	expect_event_verdict(BYTES(0x10, 0x01), false, SL_PROTO_FAULT_WIRE, "Event.type");
	expect_event_verdict(BYTES(0x18, 0x01), false, SL_PROTO_FAULT_WIRE, "Event.aggregate");
	expect_event_verdict(BYTES(0x22, 0x01, 0x00), false, SL_PROTO_FAULT_WIRE,
	                     "Event.timestamp_ms");
	expect_event_verdict(BYTES(0x2d, 1, 2, 3, 4), false, SL_PROTO_FAULT_WIRE, "Event.data");
	expect_event_verdict(BYTES(0x30, 0x01), false, SL_PROTO_FAULT_WIRE, "Event.headers");
	expect_event_verdict(BYTES(0x3a, 0x00), false, SL_PROTO_FAULT_WIRE, "Event.schema_version");
	/* varints: 11 bytes; 10 bytes overflowing 64 bits; unterminated */
	expect_event_verdict(
	    BYTES(0x20, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00), false,
	    SL_PROTO_FAULT_WIRE, "varint");
	{
		/* protobuf-c drops the excess bits of this one; we refuse it. */
		struct sl_event_view v;
		const uint8_t b[] = {0x20, 0xff, 0xff, 0xff, 0xff, 0xff,
		                     0xff, 0xff, 0xff, 0xff, 0x02};
		cr_assert_eq(sl_event_scan(b, sizeof(b), &v), -SL_EPROTO_DECODE);
		const uint8_t ok[] = {0x20, 0xff, 0xff, 0xff, 0xff, 0xff,
		                      0xff, 0xff, 0xff, 0xff, 0x01};
		cr_assert_eq(sl_event_scan(ok, sizeof(ok), &v), 0);
		cr_assert_eq(v.timestamp_ms, -1);
	}
	expect_event_verdict(BYTES(0x20, 0x80, 0x80), false, SL_PROTO_FAULT_WIRE, "truncated");
	/* lengths past the end, length prefix too long */
	expect_event_verdict(BYTES(0x12, 0x05, 'a', 'b'), false, SL_PROTO_FAULT_WIRE,
	                     "Event.type: length runs past the end");
	expect_event_verdict(BYTES(0x2a, 0xff, 0xff, 0xff, 0xff, 0x0f), false, SL_PROTO_FAULT_WIRE,
	                     "Event.data");
	expect_event_verdict(BYTES(0x2a, 0x81, 0x80, 0x80, 0x80, 0x80, 0x00), false,
	                     SL_PROTO_FAULT_WIRE, "bad length prefix");
	expect_event_verdict(BYTES(0x12), false, SL_PROTO_FAULT_WIRE, "truncated");
	/* tags: field 0, groups, reserved wire types, 6-byte tag */
	expect_event_verdict(BYTES(0x02, 0x00), false, SL_PROTO_FAULT_WIRE, "bad field tag");
	expect_event_verdict(BYTES(0x43), false, SL_PROTO_FAULT_WIRE, "unsupported wire type");
	expect_event_verdict(BYTES(0x44), false, SL_PROTO_FAULT_WIRE, "unsupported wire type");
	expect_event_verdict(BYTES(0x46), false, SL_PROTO_FAULT_WIRE, "unsupported wire type");
	expect_event_verdict(BYTES(0xc8, 0x80, 0x80, 0x80, 0x80, 0x00, 0x00), false,
	                     SL_PROTO_FAULT_WIRE, "bad field tag");
	/* a malformed header inside an event */
	expect_event_verdict(BYTES(0x32, 0x02, 0x08, 0x01), false, SL_PROTO_FAULT_WIRE,
	                     "Header.key: wrong wire type");
	expect_event_verdict(BYTES(0x32, 0x02, 0x12, 0x03), false, SL_PROTO_FAULT_WIRE,
	                     "Header.value");
	/* bad id lengths: valid protobuf, invalid event */
	uint8_t id15[17] = {0x0a, 15};
	uint8_t id17[19] = {0x0a, 17};
	expect_event_verdict(id15, sizeof(id15), false, SL_PROTO_FAULT_EVENT,
	                     "Event.id: must be 16 bytes");
	expect_event_verdict(id17, sizeof(id17), false, SL_PROTO_FAULT_EVENT, "Event.id");
	/* an empty id is proto3's "absent" */
	expect_event_verdict(BYTES(0x0a, 0x00), true, 0, NULL);
	expect_event_verdict((const uint8_t *)"", 0, true, 0, NULL);
}

Test(proto, event_unknown_fields_skipped)
{
	/* aggregate "ab", then unknown fields of every wire type, in the event
	 * and in a header, then schema_version 7 */
	expect_event_verdict(BYTES(0x1a, 0x02, 'a', 'b', 0x40, 0x96, 0x01, /* 8: varint */
	                           0x49, 1, 2, 3, 4, 5, 6, 7, 8,           /* 9: fixed64 */
	                           0x52, 0x03, 'x', 'y', 'z',              /* 10: bytes */
	                           0x5d, 1, 2, 3, 4,                       /* 11: fixed32 */
	                           0xf8, 0xff, 0xff, 0xff, 0x0f, 0x01,     /* 2^29-1: varint */
	                           0x32, 0x0d, 0x0a, 0x01, 'k', 0x18, 0x05, 0x12, 0x01, 'v', 0x25,
	                           0, 0, 0, 0, /* in the header */
	                           0x38, 0x07),
	                     true, 0, NULL);
	/* the last occurrence of a singular field wins, as in protobuf */
	expect_event_verdict(BYTES(0x1a, 0x01, 'a', 0x38, 0x01, 0x1a, 0x01, 'b', 0x38, 0x02), true,
	                     0, NULL);
	/* a non-minimal tag encoding names the same field */
	expect_event_verdict(BYTES(0x9a, 0x00, 0x01, 'q'), true, 0, NULL);
}

Test(proto, event_every_truncation_refused_or_equal_to_protobuf_c)
{
	uint64_t s = 77;
	struct ev_fix f;
	size_t len;

	make_event(&f, &s, 3); /* id, type, aggregate, negative time, data, 3 headers */
	uint8_t *buf = pack(&f.e.base, &len);
	size_t boundaries = 0, refused = 0;
	/* one field per set singular value, plus one per header */
	size_t fields = !!f.e.id.len + !!f.type[0] + !!f.agg[0] + !!f.e.timestamp_ms +
	                !!f.e.data.len + f.e.n_headers + !!f.e.schema_version;

	for (size_t cut = 0; cut < len; cut++) {
		uint8_t *p = dup_exact(buf, cut);
		struct sl_event_view v;
		int rc = sl_event_scan(p, cut, &v);
		Sluice__V1__Event *u = sluice__v1__event__unpack(NULL, cut, p);

		/* A cut on a field boundary is a shorter valid event; anywhere
		 * else it must be refused, and protobuf-c must agree. */
		cr_assert_eq(rc == 0, u != NULL, "cut %zu: we say %d", cut, rc);
		if (rc == 0) {
			expect_view_matches(&v, u);
			boundaries++;
		} else {
			refused++;
		}
		sluice__v1__event__free_unpacked(u, NULL);
		free(p);
	}
	cr_assert_eq(boundaries, fields); /* one valid cut per field start */
	cr_assert_gt(refused, len / 2);
	free(buf);
}

/* ---- Produce ------------------------------------------------------------- */

#define N_EV 64

struct produce_fix {
	struct ev_fix ev[N_EV];
	Sluice__V1__Event *evp[N_EV];
	Sluice__V1__Produce p;
};

static void make_produce(struct produce_fix *pf, size_t n, uint64_t seed, const char *topic,
                         uint64_t base, uint32_t epoch)
{
	uint64_t s = seed;

	sluice__v1__produce__init(&pf->p);
	for (size_t i = 0; i < n; i++) {
		make_event(&pf->ev[i], &s, (unsigned)(i * 7 + seed));
		pf->evp[i] = &pf->ev[i].e;
	}
	pf->p.topic = (char *)topic;
	pf->p.base_sequence = base;
	pf->p.epoch = epoch;
	pf->p.n_events = n;
	pf->p.events = n ? pf->evp : NULL;
}

static void expect_produce_matches(const struct sl_produce *pr, const Sluice__V1__Produce *p)
{
	struct sl_event_iter it;
	struct sl_event_view v;

	expect_str(pr->topic, pr->topic_len, p->topic, "topic");
	cr_assert_eq(pr->base_sequence, p->base_sequence);
	cr_assert_eq(pr->epoch, p->epoch);
	cr_assert_eq(pr->n_events, p->n_events);
	sl_produce_iter_init(pr, &it);
	for (size_t i = 0; i < p->n_events; i++) {
		size_t len;
		cr_assert_eq(sl_event_iter_next(&it, &v), 1, "event %zu", i);
		/* the raw bytes are the event exactly as encoded */
		uint8_t *ref = pack(&p->events[i]->base, &len);
		expect_mem(v.raw, v.raw_len, ref, len, "raw event");
		free(ref);
		expect_view_matches(&v, p->events[i]);
	}
	cr_assert_eq(sl_event_iter_next(&it, &v), 0);
}

Test(proto, produce_scan_agrees_with_protobuf_c)
{
	static struct produce_fix pf;
	const struct {
		size_t n;
		const char *topic;
		uint64_t base;
		uint32_t epoch;
	} cases[] = {
	    {64, "events", 1000, 3},
	    {1, "t", 0, 0},
	    {0, "", 0, 0},
	    {17, "orders-with-a-longer-topic-name", UINT64_MAX, UINT32_MAX},
	};

	for (size_t c = 0; c < SL_ARRAY_LEN(cases); c++) {
		struct sl_produce pr;
		struct sl_proto_error err = {0};
		size_t len;

		make_produce(&pf, cases[c].n, 42 + c, cases[c].topic, cases[c].base,
		             cases[c].epoch);
		uint8_t *buf = pack(&pf.p.base, &len);
		uint8_t *exact = dup_exact(buf, len);
		cr_assert_eq(sl_produce_scan(exact, len, &pr, &err), 0, "%s", err.reason);
		expect_produce_matches(&pr, &pf.p);
		free(exact);
		free(buf);
	}
}

Test(proto, produce_scan_views_fills_the_same_views_in_one_pass)
{
	static struct produce_fix pf;
	struct sl_event_view views[N_EV + 1], v;
	struct sl_event_iter it;
	struct sl_produce pr, pr2;
	size_t len;

	make_produce(&pf, 20, 3, "events", 5, 1);
	uint8_t *buf = pack(&pf.p.base, &len);
	for (uint32_t cap = 0; cap <= 21; cap += 7) {
		memset(views, 0xA5, sizeof(views));
		cr_assert_eq(sl_produce_scan_views(buf, len, &pr, views, cap, NULL), 0);
		cr_assert_eq(sl_produce_scan(buf, len, &pr2, NULL), 0);
		cr_assert_eq(memcmp(&pr, &pr2, sizeof(pr)), 0);
		sl_produce_iter_init(&pr, &it);
		for (uint32_t i = 0; i < 20; i++) {
			cr_assert_eq(sl_event_iter_next(&it, &v), 1);
			if (i < cap)
				cr_assert_eq(memcmp(&views[i], &v, sizeof(v)), 0, "view %u", i);
		}
		/* nothing written past the events or past cap */
		for (uint32_t i = cap < 20 ? cap : 20; i <= N_EV; i++)
			cr_assert_eq(((uint8_t *)&views[i])[0], 0xA5, "view %u written", i);
	}
	free(buf);
}

Test(proto, produce_builder_writes_protobuf_c_bytes)
{
	static struct produce_fix pf;
	static uint8_t frame[1 << 16];
	uint8_t enc[2048];

	for (int epoch = 0; epoch < 2; epoch++) {
		struct sl_produce_builder b;
		struct sl_frame f;
		size_t len;

		make_produce(&pf, 40, 9 + epoch, "events", 77 + epoch, epoch ? 300 : 0);
		cr_assert_eq(sl_produce_begin(&b, frame, sizeof(frame), "events", 6, 77 + epoch,
		                              epoch ? 300 : 0),
		             0);
		/* half encoded from views in place, half added pre-encoded */
		for (size_t i = 0; i < 40; i++) {
			struct ev_fix *e = &pf.ev[i];
			if (i % 2) {
				cr_assert_eq(
				    sl_produce_add_event(&b, &e->view, e->hdr, e->e.n_headers), 0);
			} else {
				int n = sl_event_encode(enc, sizeof(enc), &e->view, e->hdr,
				                        e->e.n_headers);
				cr_assert_gt(n, 0);
				cr_assert_eq(sl_produce_add_encoded(&b, enc, (size_t)n), 0);
			}
		}
		cr_assert_eq(b.n_events, 40);
		int flen = sl_produce_finish(&b);
		cr_assert_eq(sl_frame_parse(frame, (size_t)flen, 1u << 20, &f), flen);
		cr_assert_eq(f.type, SLUICE__V1__FRAME_TYPE__FRAME_PRODUCE);

		uint8_t *ref = pack(&pf.p.base, &len);
		expect_mem(f.body, f.body_len, ref, len, "Produce body");
		free(ref);

		Sluice__V1__Produce *u = sluice__v1__produce__unpack(NULL, f.body_len, f.body);
		cr_assert_not_null(u);
		struct sl_produce pr;
		cr_assert_eq(sl_produce_scan(f.body, f.body_len, &pr, NULL), 0);
		expect_produce_matches(&pr, u);
		sluice__v1__produce__free_unpacked(u, NULL);
	}
}

Test(proto, produce_builder_full_leaves_frame_intact)
{
	uint8_t frame[256];
	uint8_t data[60];
	struct sl_produce_builder b;
	struct sl_event_view v = {
	    .aggregate = "k", .aggregate_len = 1, .data = data, .data_len = sizeof(data)};
	struct sl_produce pr;
	struct sl_frame f;
	int added = 0;

	memset(data, 'x', sizeof(data));
	cr_assert_eq(sl_produce_begin(&b, frame, sizeof(frame), "t", 1, 5, 9), 0);
	for (int i = 0; i < 10; i++) {
		size_t before = b.len;
		int rc = sl_produce_add_event(&b, &v, NULL, 0);
		if (rc == -ENOSPC) {
			cr_assert_eq(b.len, before);
			break;
		}
		cr_assert_eq(rc, 0);
		added++;
	}
	cr_assert_eq(added, 3); /* 67 bytes each into 256 - 5 - 3 - 2, 2 held for epoch */
	cr_assert_eq(sl_produce_add_encoded(&b, data, sizeof(data)), -ENOSPC);
	int n = sl_produce_finish(&b);
	cr_assert_leq(n, (int)sizeof(frame));
	cr_assert_eq(sl_frame_parse(frame, (size_t)n, 1024, &f), n);
	cr_assert_eq(sl_produce_scan(f.body, f.body_len, &pr, NULL), 0);
	cr_assert_eq(pr.n_events, 3);
	cr_assert_eq(pr.epoch, 9);
	cr_assert_eq(pr.base_sequence, 5);
	cr_assert_eq(sl_produce_begin(&b, frame, 8, "topic", 5, 0, 0), -ENOSPC);
}

Test(proto, produce_every_truncation_refused_or_equal_to_protobuf_c)
{
	static struct produce_fix pf;
	size_t len;

	make_produce(&pf, 3, 5, "events", 10, 2);
	uint8_t *buf = pack(&pf.p.base, &len);
	size_t ok = 0;

	for (size_t cut = 0; cut < len; cut++) {
		uint8_t *p = dup_exact(buf, cut);
		struct sl_produce pr;
		struct sl_proto_error err = {0};
		int rc = sl_produce_scan(p, cut, &pr, &err);
		Sluice__V1__Produce *u = sluice__v1__produce__unpack(NULL, cut, p);

		cr_assert_eq(rc == 0, u != NULL, "cut %zu: we say %d (%s)", cut, rc, err.reason);
		if (rc == 0) {
			expect_produce_matches(&pr, u);
			ok++;
		}
		sluice__v1__produce__free_unpacked(u, NULL);
		free(p);
	}
	cr_assert_eq(ok, 1 + 2 + 3); /* empty, after topic, after base_sequence, after each event */
	free(buf);

	/* The same through frames: every prefix of a whole frame needs more. */
	struct sl_produce_builder b;
	uint8_t frame[4096];
	struct sl_frame f;
	cr_assert_eq(sl_produce_begin(&b, frame, sizeof(frame), "t", 1, 1, 1), 0);
	for (int i = 0; i < 3; i++)
		cr_assert_eq(
		    sl_produce_add_event(&b, &pf.ev[i].view, pf.ev[i].hdr, pf.ev[i].e.n_headers),
		    0);
	int n = sl_produce_finish(&b);
	for (int cut = 0; cut < n; cut++) {
		uint8_t *p = dup_exact(frame, (size_t)cut);
		cr_assert_eq(sl_frame_parse(p, (size_t)cut, 1 << 20, &f), 0, "cut %d", cut);
		cr_assert_eq(f.need, cut < 4 ? SL_FRAME_HDR_LEN : (uint32_t)n);
		free(p);
	}
}

static void expect_produce_refused(const uint8_t *b, size_t n, int fault, int64_t event,
                                   const char *needle)
{
	struct sl_produce pr;
	struct sl_proto_error err = {0};
	uint8_t *p = dup_exact(b, n);

	cr_assert_eq(sl_produce_scan(p, n, &pr, &err), -SL_EPROTO_DECODE);
	cr_assert_eq(err.fault, fault, "%s", err.reason);
	cr_assert_eq(err.event, event, "%s", err.reason);
	cr_assert(strstr(err.reason, needle), "reason '%s' lacks '%s'", err.reason, needle);
	cr_assert_eq(sl_proto_error_wire_code(&err), fault == SL_PROTO_FAULT_EVENT
	                                                 ? SLUICE__V1__ERROR_CODE__ERR_EVENT
	                                                 : SLUICE__V1__ERROR_CODE__ERR_MALFORMED);
	if (fault == SL_PROTO_FAULT_WIRE) {
		Sluice__V1__Produce *u = sluice__v1__produce__unpack(NULL, n, p);
		cr_assert_null(u, "protobuf-c accepts what we call malformed");
	}
	free(p);
}

Test(proto, produce_malformed_inputs_refused)
{
	expect_produce_refused(BYTES(0x08, 0x01), SL_PROTO_FAULT_WIRE, -1, "Produce.topic: wrong");
	expect_produce_refused(BYTES(0x12, 0x00), SL_PROTO_FAULT_WIRE, -1, "Produce.base_sequence");
	expect_produce_refused(BYTES(0x18, 0x00), SL_PROTO_FAULT_WIRE, -1, "Produce.events");
	expect_produce_refused(BYTES(0x25, 0, 0, 0, 0), SL_PROTO_FAULT_WIRE, -1, "Produce.epoch");
	expect_produce_refused(BYTES(0x0a, 0x09, 'e'), SL_PROTO_FAULT_WIRE, -1, "past the end");
	expect_produce_refused(BYTES(0x1a, 0x02, 0x1a, 0x05), SL_PROTO_FAULT_WIRE, 0,
	                       "event 0: Event.aggregate: length runs past the end");
	/* the third event's id is 15 bytes */
	uint8_t b[64] = {0x1a, 0x00, 0x1a, 0x00, 0x1a, 17, 0x0a, 15};
	expect_produce_refused(b, 6 + 17, SL_PROTO_FAULT_EVENT, 2, "event 2: Event.id");
	expect_produce_refused(
	    BYTES(0x20, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01),
	    SL_PROTO_FAULT_WIRE, -1, "Produce.epoch: varint");
	expect_produce_refused(BYTES(0x0a, 0x00, 0x5b), SL_PROTO_FAULT_WIRE, -1,
	                       "Produce (unknown field)");
	expect_produce_refused(BYTES(0x00), SL_PROTO_FAULT_WIRE, -1, "Produce: bad field tag");
}

Test(proto, produce_unknown_fields_skipped)
{
	const uint8_t b[] = {0x0a, 0x01, 't', 0x28, 0x05, 0x1a, 0x04, 0x1a, 0x02, 'a',  'b',
	                     0x31, 1,    2,   3,    4,    5,    6,    7,    8,    0x3a, 0x00,
	                     0x45, 1,    2,   3,    4,    0x20, 0x09, 0x10, 0x2a, 0x1a, 0x00};
	struct sl_produce pr;
	Sluice__V1__Produce *u = sluice__v1__produce__unpack(NULL, sizeof(b), b);

	cr_assert_not_null(u);
	cr_assert_eq(sl_produce_scan(b, sizeof(b), &pr, NULL), 0);
	expect_produce_matches(&pr, u);
	cr_assert_eq(pr.n_events, 2);
	cr_assert_eq(pr.epoch, 9);
	cr_assert_eq(pr.base_sequence, 42);
	sluice__v1__produce__free_unpacked(u, NULL);
}

/* ---- FetchResult ----------------------------------------------------------- */

static void expect_fetch_matches(const struct sl_fetch_result *fr, const Sluice__V1__FetchResult *u)
{
	struct sl_event_iter it;
	struct sl_times_iter ti;
	struct sl_event_view v;
	int64_t t;

	cr_assert_eq(fr->request_id, u->request_id);
	expect_str(fr->topic, fr->topic_len, u->topic, "topic");
	cr_assert_eq(fr->partition, u->partition);
	cr_assert_eq(fr->base_offset, u->base_offset);
	cr_assert_eq(fr->end_offset, u->end_offset);
	cr_assert_eq(fr->error, (uint32_t)u->error);
	expect_str(fr->message, fr->message_len, u->message, "message");
	cr_assert_eq(fr->n_events, u->n_events);
	cr_assert_eq(fr->n_append_times, u->n_append_time_ms);
	sl_fetch_result_iter_init(fr, &it);
	for (size_t i = 0; i < u->n_events; i++) {
		cr_assert_eq(sl_event_iter_next(&it, &v), 1);
		expect_view_matches(&v, u->events[i]);
	}
	cr_assert_eq(sl_event_iter_next(&it, &v), 0);
	sl_fetch_result_times_init(fr, &ti);
	for (size_t i = 0; i < u->n_append_time_ms; i++) {
		cr_assert_eq(sl_fetch_result_times_next(&ti, &t), 1);
		cr_assert_eq(t, u->append_time_ms[i]);
	}
	cr_assert_eq(sl_fetch_result_times_next(&ti, &t), 0);
}

Test(proto, fetch_result_scan_agrees_with_protobuf_c)
{
	static struct produce_fix pf;
	Sluice__V1__FetchResult fr = SLUICE__V1__FETCH_RESULT__INIT;
	int64_t times[N_EV];
	size_t len;

	make_produce(&pf, 30, 11, "x", 0, 0);
	for (int i = 0; i < 30; i++)
		times[i] = i == 3 ? 0 : (i == 4 ? -1 : 1764086400000LL + i);
	fr.request_id = 99;
	fr.topic = "events";
	fr.partition = 7;
	fr.base_offset = 1u << 20;
	fr.n_events = 30;
	fr.events = pf.evp;
	fr.end_offset = (1u << 20) + 30;
	fr.error = SLUICE__V1__ERROR_CODE__ERR_TIMEOUT;
	fr.message = "partial";
	fr.n_append_time_ms = 30;
	fr.append_time_ms = times;
	uint8_t *buf = pack(&fr.base, &len); /* times packed */
	uint8_t *exact = dup_exact(buf, len);
	struct sl_fetch_result got;
	struct sl_proto_error err = {0};
	cr_assert_eq(sl_fetch_result_scan(exact, len, &got, &err), 0, "%s", err.reason);
	expect_fetch_matches(&got, &fr);

	/* every truncation: refused, or a shorter valid message equal to protobuf-c's */
	for (size_t cut = 0; cut < len; cut++) {
		uint8_t *p = dup_exact(buf, cut);
		int rc = sl_fetch_result_scan(p, cut, &got, NULL);
		Sluice__V1__FetchResult *u = sluice__v1__fetch_result__unpack(NULL, cut, p);
		cr_assert_eq(rc == 0, u != NULL, "cut %zu", cut);
		if (u)
			expect_fetch_matches(&got, u);
		sluice__v1__fetch_result__free_unpacked(u, NULL);
		free(p);
	}
	free(exact);
	free(buf);

	/* wrong wire types and a bad packed run */
	const uint8_t wt[] = {0x2a, 0x02, 0x08, 0x01};
	cr_assert_eq(sl_fetch_result_scan(wt, sizeof(wt), &got, &err), -SL_EPROTO_DECODE);
	cr_assert(strstr(err.reason, "event 0: Event.id: wrong wire type"), "%s", err.reason);
	const uint8_t pk[] = {0x4a, 0x02, 0x01, 0x80};
	cr_assert_eq(sl_fetch_result_scan(pk, sizeof(pk), &got, &err), -SL_EPROTO_DECODE);
	cr_assert(strstr(err.reason, "FetchResult.append_time_ms"), "%s", err.reason);
	cr_assert_null(sluice__v1__fetch_result__unpack(NULL, sizeof(pk), pk));
	const uint8_t top[] = {0x12, 0x00, 0x10, 0x01};
	cr_assert_eq(sl_fetch_result_scan(top, sizeof(top), &got, &err), -SL_EPROTO_DECODE);
	cr_assert(strstr(err.reason, "FetchResult.topic: wrong wire type"), "%s", err.reason);
}

Test(proto, fetch_result_builder_round_trips_through_protobuf_c)
{
	static struct produce_fix pf;
	static uint8_t frame[1 << 16];
	uint8_t enc[2048];
	struct sl_fetch_result_builder b;
	struct sl_fetch_result_head h = {
	    .request_id = 5,
	    .topic = "events",
	    .topic_len = 6,
	    .partition = 2,
	    .base_offset = 1000,
	    .end_offset = 1020,
	    .error = 0,
	    .message = NULL,
	};
	struct sl_frame f;
	ProtobufCMessage *m;
	size_t n_back;

	make_produce(&pf, 20, 21, "x", 0, 0);
	cr_assert_eq(sl_fetch_result_begin(&b, frame, sizeof(frame), &h), 0);
	for (int i = 0; i < 20; i++) {
		struct ev_fix *e = &pf.ev[i];
		int n = sl_event_encode(enc, sizeof(enc), &e->view, e->hdr, e->e.n_headers);
		cr_assert_eq(
		    sl_fetch_result_add(&b, enc, (size_t)n, i == 0 ? 0 : 1764086400000LL + i), 0);
	}
	int n = sl_fetch_result_finish(&b);
	cr_assert_eq(sl_frame_parse(frame, (size_t)n, 1u << 20, &f), n);
	cr_assert_eq(f.type, SLUICE__V1__FRAME_TYPE__FRAME_FETCH_RESULT);
	cr_assert_eq(sl_frame_decode_msg(&f, &m), 0);
	Sluice__V1__FetchResult *u = (Sluice__V1__FetchResult *)m;
	cr_assert_eq(u->n_events, 20);
	cr_assert_eq(u->append_time_ms[0], 0);
	cr_assert_eq(u->append_time_ms[19], 1764086400019LL);
	for (int i = 0; i < 20; i++) {
		/* what arrived is what was stored: repacking gives the same bytes */
		size_t len;
		uint8_t *ref = pack(&pf.ev[i].e.base, &len);
		uint8_t *back = pack(&u->events[i]->base, &n_back);
		expect_mem(back, n_back, ref, len, "fetched event");
		free(ref);
		free(back);
	}
	struct sl_fetch_result got;
	cr_assert_eq(sl_fetch_result_scan(f.body, f.body_len, &got, NULL), 0);
	expect_fetch_matches(&got, u);
	sl_frame_msg_free(m);

	/* an error answer with no events, and a full buffer */
	h.error = SLUICE__V1__ERROR_CODE__ERR_UNKNOWN_TOPIC;
	h.message = "no topic 'nope'";
	h.message_len = strlen(h.message);
	cr_assert_eq(sl_fetch_result_begin(&b, frame, 64, &h), 0);
	cr_assert_eq(sl_fetch_result_add(&b, enc, 100, 1), -ENOSPC);
	n = sl_fetch_result_finish(&b);
	cr_assert_leq(n, 64);
	cr_assert_eq(sl_frame_parse(frame, (size_t)n, 1u << 20, &f), n);
	cr_assert_eq(sl_frame_decode_msg(&f, &m), 0);
	u = (Sluice__V1__FetchResult *)m;
	cr_assert_eq(u->error, SLUICE__V1__ERROR_CODE__ERR_UNKNOWN_TOPIC);
	cr_assert_str_eq(u->message, "no topic 'nope'");
	cr_assert_eq(u->end_offset, 1020);
	cr_assert_eq(u->n_events, 0);
	sl_frame_msg_free(m);
	cr_assert_eq(sl_fetch_result_begin(&b, frame, 20, &h), -ENOSPC);
}

/* ---- Ack ----------------------------------------------------------------- */

static void expect_ack_matches_pc(const struct sl_ack *a)
{
	static uint8_t buf[1 << 16];
	Sluice__V1__Ack pa = SLUICE__V1__ACK__INIT;
	Sluice__V1__AckPart pparts[8], *ppp[8];
	Sluice__V1__Reject prej[8], *prp[8];
	static uint32_t idx[16][512];
	char msg[8][64];
	struct sl_frame f;
	size_t len;

	pa.base_sequence = a->base_sequence;
	for (size_t i = 0; i < a->n_parts; i++) {
		const struct sl_ack_part *p = &a->parts[i];
		sluice__v1__ack_part__init(&pparts[i]);
		pparts[i].partition = p->partition;
		pparts[i].base_offset = p->base_offset;
		pparts[i].n_index = p->index.n;
		for (uint32_t j = 0; j < p->index.n; j++)
			idx[i][j] = p->index.v ? p->index.v[j] : p->index.first + j;
		pparts[i].index = idx[i];
		pparts[i].n_offsets = p->offsets ? p->index.n : 0;
		pparts[i].offsets = (uint64_t *)p->offsets;
		pparts[i].duplicate = p->duplicate;
		ppp[i] = &pparts[i];
	}
	pa.n_parts = a->n_parts;
	pa.parts = ppp;
	for (size_t i = 0; i < a->n_rejects; i++) {
		const struct sl_ack_reject *r = &a->rejects[i];
		sluice__v1__reject__init(&prej[i]);
		prej[i].n_index = r->index.n;
		for (uint32_t j = 0; j < r->index.n; j++)
			idx[8 + i][j] = r->index.v ? r->index.v[j] : r->index.first + j;
		prej[i].index = idx[8 + i];
		prej[i].code = (Sluice__V1__ErrorCode)r->code;
		memcpy(msg[i], r->message ? r->message : "", r->message_len);
		msg[i][r->message_len] = 0;
		prej[i].message = msg[i];
		prej[i].retry_after_ms = r->retry_after_ms;
		prp[i] = &prej[i];
	}
	pa.n_rejects = a->n_rejects;
	pa.rejects = prp;

	uint8_t *ref = pack(&pa.base, &len);
	size_t want = sl_ack_frame_size(a);
	cr_assert_eq(want, len + SL_FRAME_HDR_LEN);
	cr_assert_eq(sl_ack_encode(buf, want - 1, a), -ENOSPC);
	int n = sl_ack_encode(buf, sizeof(buf), a);
	cr_assert_eq((size_t)n, want);
	cr_assert_eq(sl_frame_parse(buf, (size_t)n, 1u << 20, &f), n);
	cr_assert_eq(f.type, SLUICE__V1__FRAME_TYPE__FRAME_ACK);
	expect_mem(f.body, f.body_len, ref, len, "Ack body");
	free(ref);

	/* and field by field through protobuf-c's decoder */
	ProtobufCMessage *m;
	cr_assert_eq(sl_frame_decode_msg(&f, &m), 0);
	Sluice__V1__Ack *u = (Sluice__V1__Ack *)m;
	cr_assert_eq(u->base_sequence, a->base_sequence);
	cr_assert_eq(u->n_parts, a->n_parts);
	for (size_t i = 0; i < a->n_parts; i++) {
		cr_assert_eq(u->parts[i]->partition, a->parts[i].partition);
		cr_assert_eq(u->parts[i]->base_offset, a->parts[i].base_offset);
		expect_mem(u->parts[i]->index, u->parts[i]->n_index * 4, idx[i],
		           a->parts[i].index.n * 4, "index");
		cr_assert_eq(u->parts[i]->n_offsets, a->parts[i].offsets ? a->parts[i].index.n : 0);
		if (u->parts[i]->n_offsets)
			expect_mem(u->parts[i]->offsets, u->parts[i]->n_offsets * 8,
			           a->parts[i].offsets, a->parts[i].index.n * 8, "offsets");
		cr_assert_eq(!!u->parts[i]->duplicate, a->parts[i].duplicate);
	}
	cr_assert_eq(u->n_rejects, a->n_rejects);
	for (size_t i = 0; i < a->n_rejects; i++) {
		cr_assert_eq((uint32_t)u->rejects[i]->code, a->rejects[i].code);
		cr_assert_str_eq(u->rejects[i]->message, msg[i]);
		cr_assert_eq(u->rejects[i]->retry_after_ms, a->rejects[i].retry_after_ms);
		expect_mem(u->rejects[i]->index, u->rejects[i]->n_index * 4, idx[8 + i],
		           a->rejects[i].index.n * 4, "reject index");
	}
	sl_frame_msg_free(m);
}

Test(proto, ack_encoder_writes_protobuf_c_bytes)
{
	static const uint32_t scattered[] = {0, 5, 127, 128, 300, 16384, 70000};
	static const uint64_t offs[] = {1, 0, 1ull << 40, 99, UINT64_MAX, 128, 7};
	uint32_t big_run[400];
	for (uint32_t i = 0; i < 400; i++)
		big_run[i] = i * 3;

	/* the server's common case: one part, the whole Produce in a run */
	struct sl_ack_part one = {.partition = 3, .base_offset = 123456, .index = {NULL, 0, 64}};
	expect_ack_matches_pc(&(struct sl_ack){.base_sequence = 1000, .parts = &one, .n_parts = 1});

	struct sl_ack_part parts[] = {
	    {.partition = 0, .base_offset = 0, .index = {NULL, 0, 1}},
	    {.partition = 7, .base_offset = 5, .index = {scattered, 0, 7}},
	    {.partition = 2, .index = {scattered, 0, 7}, .offsets = offs, .duplicate = true},
	    {.partition = UINT32_MAX, .base_offset = UINT64_MAX, .index = {NULL, 100, 300}},
	    {.partition = 1, .index = {big_run, 0, 400}},
	    {0},
	};
	struct sl_ack_reject rejects[] = {
	    {.index = {NULL, 64, 3},
	     .code = SLUICE__V1__ERROR_CODE__ERR_OVERLOAD,
	     .message = "overloaded",
	     .message_len = 10,
	     .retry_after_ms = 250},
	    {.index = {scattered, 0, 2}, .code = SLUICE__V1__ERROR_CODE__ERR_EVENT},
	    {.code = 0},
	};
	expect_ack_matches_pc(&(struct sl_ack){.base_sequence = UINT64_MAX,
	                                       .parts = parts,
	                                       .n_parts = SL_ARRAY_LEN(parts),
	                                       .rejects = rejects,
	                                       .n_rejects = SL_ARRAY_LEN(rejects)});
	expect_ack_matches_pc(&(struct sl_ack){0});
	expect_ack_matches_pc(
	    &(struct sl_ack){.base_sequence = 1, .rejects = rejects, .n_rejects = 1});

	/* a run past UINT32_MAX is a caller bug, refused */
	struct sl_ack_part wrap = {.index = {NULL, UINT32_MAX, 2}};
	struct sl_ack bad = {.parts = &wrap, .n_parts = 1};
	uint8_t buf[64];
	cr_assert_eq(sl_ack_frame_size(&bad), 0);
	cr_assert_eq(sl_ack_encode(buf, sizeof(buf), &bad), -EINVAL);
}

/* ---- control messages through protobuf-c -------------------------------- */

Test(proto, control_messages_round_trip)
{
	uint8_t buf[256];
	Sluice__V1__Hello h = SLUICE__V1__HELLO__INIT;
	struct sl_frame f;
	ProtobufCMessage *m;

	h.min_version = 1;
	h.max_version = 1;
	h.producer_id = 0xabcdef0123ull;
	h.client_name = "unit";
	int n = sl_frame_encode_msg(SLUICE__V1__FRAME_TYPE__FRAME_HELLO, &h.base, buf, sizeof(buf));
	cr_assert_eq((size_t)n, sl_frame_msg_size(&h.base));
	cr_assert_eq(sl_frame_parse(buf, (size_t)n, 1024, &f), n);
	cr_assert_eq(f.type, SLUICE__V1__FRAME_TYPE__FRAME_HELLO);
	cr_assert_eq(sl_frame_decode_msg(&f, &m), 0);
	Sluice__V1__Hello *u = (Sluice__V1__Hello *)m;
	cr_assert_eq(m->descriptor, &sluice__v1__hello__descriptor);
	cr_assert_eq(u->producer_id, h.producer_id);
	cr_assert_eq(u->max_version, 1);
	cr_assert_str_eq(u->client_name, "unit");
	sl_frame_msg_free(m);

	/* wrong message for the type, unknown type, no room */
	cr_assert_eq(
	    sl_frame_encode_msg(SLUICE__V1__FRAME_TYPE__FRAME_CREDIT, &h.base, buf, sizeof(buf)),
	    -EINVAL);
	cr_assert_eq(sl_frame_encode_msg(99, &h.base, buf, sizeof(buf)), -SL_EPROTO_UNKNOWN);
	cr_assert_eq(sl_frame_encode_msg(SLUICE__V1__FRAME_TYPE__FRAME_HELLO, &h.base, buf, 6),
	             -ENOSPC);

	/* decoding garbage and unknown types */
	const uint8_t junk[] = {0x0a, 0x05, 'a'};
	struct sl_frame jf = {
	    .type = SLUICE__V1__FRAME_TYPE__FRAME_WELCOME, .body = junk, .body_len = sizeof(junk)};
	m = (ProtobufCMessage *)1;
	cr_assert_eq(sl_frame_decode_msg(&jf, &m), -SL_EPROTO_DECODE);
	cr_assert_null(m);
	jf.type = 0;
	cr_assert_eq(sl_frame_decode_msg(&jf, &m), -SL_EPROTO_UNKNOWN);
	jf.type = SL_FRAME_TYPE_MAX + 1;
	cr_assert_eq(sl_frame_decode_msg(&jf, &m), -SL_EPROTO_UNKNOWN);
	sl_frame_msg_free(NULL);

	/* Error frames */
	n = sl_frame_encode_error(buf, sizeof(buf), sl_proto_wire_error(-SL_EFRAME_TOO_BIG),
	                          "frame of 2000000 bytes above 1048576");
	cr_assert_gt(n, 0);
	cr_assert_eq(sl_frame_parse(buf, (size_t)n, 1024, &f), n);
	cr_assert_eq(sl_frame_decode_msg(&f, &m), 0);
	Sluice__V1__Error *e = (Sluice__V1__Error *)m;
	cr_assert_eq(e->code, SLUICE__V1__ERROR_CODE__ERR_FRAME_TOO_BIG);
	cr_assert_str_eq(e->message, "frame of 2000000 bytes above 1048576");
	sl_frame_msg_free(m);
}

Test(proto, wire_error_mapping)
{
	cr_assert_eq(sl_proto_wire_error(-SL_EPROTO_DECODE), SLUICE__V1__ERROR_CODE__ERR_MALFORMED);
	cr_assert_eq(sl_proto_wire_error(-SL_EPROTO_UNKNOWN),
	             SLUICE__V1__ERROR_CODE__ERR_UNKNOWN_TYPE);
	cr_assert_eq(sl_proto_wire_error(-SL_EFENCED), SLUICE__V1__ERROR_CODE__ERR_FENCED);
	cr_assert_eq(sl_proto_wire_error(-SL_ELOG_FAILED), SLUICE__V1__ERROR_CODE__ERR_STORAGE);
	cr_assert_eq(sl_proto_wire_error(-ENOMEM), SLUICE__V1__ERROR_CODE__ERR_INTERNAL);
}
