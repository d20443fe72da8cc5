/*
 * Fuzz target: one encoded Event, as stored in the log and read back by
 * consumers and projections. sl_event_scan() must refuse or read it without
 * leaving the input; an accepted event must read the same through protobuf-c,
 * and re-encoding its view (sl_event_encode, and inside a Produce built with
 * sl_produce_add_event) must scan back to equal fields and equal protobuf-c's
 * own encoding of the same message.
 */
#include <stdlib.h>
#include <string.h>

#include "proto/proto.h"
#include "sluice/v1/event.pb-c.h"

#define CHECK(x)                                                                                   \
	do {                                                                                       \
		if (!(x))                                                                          \
			abort();                                                                   \
	} while (0)

#define MAX_HDR 64

static bool same_bytes(const void *a, size_t alen, const void *b, size_t blen)
{
	return alen == blen && (alen == 0 || memcmp(a, b, alen) == 0);
}

static void check_same_view(const struct sl_event_view *a, const struct sl_event_view *b)
{
	CHECK(!a->id == !b->id);
	CHECK(!a->id || memcmp(a->id, b->id, SL_EVENT_ID_LEN) == 0);
	CHECK(same_bytes(a->type, a->type_len, b->type, b->type_len));
	CHECK(same_bytes(a->aggregate, a->aggregate_len, b->aggregate, b->aggregate_len));
	CHECK(a->timestamp_ms == b->timestamp_ms);
	CHECK(same_bytes(a->data, a->data_len, b->data, b->data_len));
	CHECK(a->schema_version == b->schema_version);
	CHECK(a->n_headers == b->n_headers);
}

static void check_same_headers(const struct sl_event_view *v, const struct sl_event_header *h,
                               size_t n)
{
	struct sl_event_header x;
	size_t cur = 0;

	for (size_t i = 0; i < n; i++) {
		CHECK(sl_event_header_next(v, &cur, &x) == 1);
		CHECK(same_bytes(x.key, x.key_len, h[i].key, h[i].key_len));
		CHECK(same_bytes(x.value, x.value_len, h[i].value, h[i].value_len));
	}
	CHECK(sl_event_header_next(v, &cur, &x) == 0);
}

static bool has_unknown(const Sluice__V1__Event *e)
{
	if (e->base.n_unknown_fields)
		return true;
	for (size_t i = 0; i < e->n_headers; i++)
		if (e->headers[i]->base.n_unknown_fields)
			return true;
	return false;
}

static bool has_nul(const char *s, size_t n)
{
	return n && memchr(s, 0, n);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct sl_event_header hdr[MAX_HDR], extra;
	struct sl_event_view v, back;
	struct sl_produce_builder b;
	struct sl_produce pr;
	struct sl_event_iter it;
	struct sl_frame f;
	size_t cur = 0, n, cap;
	uint8_t *out, *frame;
	bool nul = false;
	int rc;

	if (sl_event_scan(data, size, &v) != 0)
		return 0;
	CHECK(v.raw == data && v.raw_len == size);
	CHECK(!v.aggregate_len || ((const uint8_t *)v.aggregate >= data &&
	                           (const uint8_t *)v.aggregate + v.aggregate_len <= data + size));
	CHECK(!v.data_len || (v.data >= data && v.data + v.data_len <= data + size));

	Sluice__V1__Event *u = sluice__v1__event__unpack(NULL, size, data);
	CHECK(u);
	CHECK(u->n_headers == v.n_headers);
	if (v.n_headers > MAX_HDR)
		goto out_u;
	for (uint32_t i = 0; i < v.n_headers; i++) {
		CHECK(sl_event_header_next(&v, &cur, &hdr[i]) == 1);
		nul |= has_nul(hdr[i].key, hdr[i].key_len);
	}
	CHECK(sl_event_header_next(&v, &cur, &extra) == 0);
	nul |= has_nul(v.type, v.type_len) || has_nul(v.aggregate, v.aggregate_len);

	/* Re-encode the view: never longer than a minimal re-encoding can be,
	 * so twice the input plus slack always fits. */
	cap = 2 * size + 64;
	out = malloc(cap);
	frame = malloc(cap + 64);
	CHECK(out && frame);
	n = sl_event_encoded_size(&v, hdr, v.n_headers);
	rc = sl_event_encode(out, cap, &v, hdr, v.n_headers);
	CHECK(rc >= 0 && (size_t)rc == n);
	CHECK(sl_event_scan(out, n, &back) == 0);
	check_same_view(&v, &back);
	check_same_headers(&back, hdr, v.n_headers);

	/* protobuf-c writes the same bytes for the same message, unless it
	 * carries unknown fields (re-emitted) or strings with NULs (cut). */
	if (!has_unknown(u) && !nul) {
		size_t pn = protobuf_c_message_get_packed_size(&u->base);
		uint8_t *ref = malloc(pn ? pn : 1);
		CHECK(ref);
		protobuf_c_message_pack(&u->base, ref);
		CHECK(same_bytes(out, n, ref, pn));
		free(ref);
	}

	/* inside a Produce, encoded in place */
	CHECK(sl_produce_begin(&b, frame, cap + 64, "fuzz", 4, 1, 1) == 0);
	CHECK(sl_produce_add_event(&b, &v, hdr, v.n_headers) == 0);
	CHECK(sl_produce_add_encoded(&b, data, size) == 0);
	rc = sl_produce_finish(&b);
	CHECK(sl_frame_parse(frame, (size_t)rc, SL_FRAME_MAX_LIMIT, &f) == rc);
	CHECK(sl_produce_scan(f.body, f.body_len, &pr, NULL) == 0 && pr.n_events == 2);
	sl_produce_iter_init(&pr, &it);
	CHECK(sl_event_iter_next(&it, &back) == 1);
	check_same_view(&v, &back);
	CHECK(same_bytes(back.raw, back.raw_len, out, n));
	CHECK(sl_event_iter_next(&it, &back) == 1);
	CHECK(same_bytes(back.raw, back.raw_len, data, size));
	CHECK(sl_event_iter_next(&it, &back) == 0);

	free(frame);
	free(out);
out_u:
	sluice__v1__event__free_unpacked(u, NULL);
	return 0;
}
