/*
 * The hand-written protobuf wire-format scanner: Produce and FetchResult
 * bodies, and events.
 *
 * Why not protobuf_c_message_unpack() here: it allocates the message, every
 * string and bytes field, every repeated array and every sub-message (5
 * allocations per event of the Produce below), copies the bytes in, and the
 * server would then have to re-encode each event to store it verbatim.
 * bench/proto.cc, Release build, this 2-vCPU EPYC (shared with other jobs:
 * medians of 3-5 runs, CPU time, ranges over several runs), one Produce of
 * 64 events with a 16-byte id and 100 bytes of data (~150 B each):
 *   protobuf_c_message_unpack + free      165-240 ns/event  (4-6 M events/s)
 *   sl_produce_scan (full validation)      14-16 ns/event  (~65 M events/s)
 *   sl_produce_scan_views (+ every view)   15-16 ns/event
 *   sl_produce_scan, then the iterator     32-39 ns/event
 * so 11-15x less per event, nothing allocated, nothing copied: the event
 * bytes stay where they arrived and the log stores them as received.
 *
 * Every read is bounds-checked against `end`; nothing here trusts a length
 * it has not compared with what is left. Failures format their reason on a
 * cold path only.
 */
#include "proto/proto.h"

#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "base/varint.h"

enum {
	SL__WT_VARINT = 0,
	SL__WT_I64 = 1,
	SL__WT_LEN = 2,
	SL__WT_I32 = 5,
};

#define SL__TAG(field, wt) (((uint32_t)(field) << 3) | (wt))

/* Reasons: static text, so a failing read only hands back a pointer. */
static const char sl__r_trunc[] = "truncated";
static const char sl__r_varint[] = "varint longer than 10 bytes or above 64 bits";
static const char sl__r_tag[] = "bad field tag";
static const char sl__r_len[] = "length runs past the end";
static const char sl__r_lenvar[] = "bad length prefix";
static const char sl__r_wt[] = "wrong wire type";
static const char sl__r_group[] = "unsupported wire type (group or reserved)";

/*
 * Why the varint at p did not decode (sl_varint_get returned 0): the input
 * ends inside it, or it is longer than 10 bytes or above 64 bits. Off the
 * hot path: only malformed input gets here.
 */
static __attribute__((noinline, cold)) const char *sl__varint_why(const uint8_t *p,
                                                                  const uint8_t *end)
{
	for (unsigned i = 0; i < SL_VARINT_MAX; i++) {
		if (p + i >= end)
			return sl__r_trunc;
		if (i == SL_VARINT_MAX - 1 || p[i] < 0x80)
			break;
	}
	return sl__r_varint;
}

/*
 * Reads a varint (base/varint.h: at most 10 bytes whose value fits in 64
 * bits, a subset of what protobuf-c accepts, with equal values).
 */
static inline const char *sl__varint(const uint8_t **pp, const uint8_t *end, uint64_t *out)
{
	size_t n = sl_varint_get(*pp, end, out);

	if (SL_LIKELY(n)) {
		*pp += n;
		return NULL;
	}
	*out = 0; /* callers read it only on success; this tells the compiler */
	return sl__varint_why(*pp, end);
}

/* A tag is at most 5 bytes (protobuf-c's limit) and names a field > 0. */
static inline const char *sl__tag(const uint8_t **pp, const uint8_t *end, uint32_t *tag)
{
	const uint8_t *start = *pp;
	uint64_t v;

	if (SL_LIKELY(start < end && *start < 0x80 && *start >= 0x08)) {
		*tag = *start;
		*pp = start + 1;
		return NULL;
	}
	if (sl__varint(pp, end, &v))
		return start == end ? sl__r_trunc : sl__r_tag;
	if (*pp - start > 5 || v > UINT32_MAX || (v >> 3) == 0)
		return sl__r_tag;
	*tag = (uint32_t)v;
	return NULL;
}

/*
 * A length-delimited payload: prefix at most 5 bytes and at most INT_MAX
 * (protobuf-c's limits), payload entirely before end.
 */
static inline const char *sl__bytes(const uint8_t **pp, const uint8_t *end, const uint8_t **data,
                                    size_t *len)
{
	const uint8_t *start = *pp;
	uint64_t n;

	if (SL_LIKELY(start < end && *start < 0x80)) {
		n = *start;
		*pp = start + 1;
	} else if (SL_LIKELY(end - start >= 2 && start[1] < 0x80)) {
		/* 128..16383: every event of a typical Produce */
		n = (uint64_t)(start[0] & 0x7f) | (uint64_t)start[1] << 7;
		*pp = start + 2;
	} else {
		if (sl__varint(pp, end, &n))
			return start == end ? sl__r_trunc : sl__r_lenvar;
		if (*pp - start > 5 || n > INT_MAX)
			return sl__r_lenvar;
	}
	if (n > (uint64_t)(end - *pp))
		return sl__r_len;
	*data = *pp;
	*len = (size_t)n;
	*pp += n;
	return NULL;
}

/* Skips the value of an unknown field of wire type wt. */
static inline const char *sl__skip(const uint8_t **pp, const uint8_t *end, uint32_t wt)
{
	const uint8_t *d;
	size_t n;
	uint64_t v;

	switch (wt) {
	case SL__WT_VARINT:
		return sl__varint(pp, end, &v);
	case SL__WT_I64:
		if (end - *pp < 8)
			return sl__r_trunc;
		*pp += 8;
		return NULL;
	case SL__WT_LEN:
		return sl__bytes(pp, end, &d, &n);
	case SL__WT_I32:
		if (end - *pp < 4)
			return sl__r_trunc;
		*pp += 4;
		return NULL;
	default:
		return sl__r_group; /* 3/4 (groups): protobuf-c refuses them too */
	}
}

__attribute__((cold, noinline)) static int
sl__fail(struct sl_proto_error *err, int fault, int64_t event, const char *where, const char *what)
{
	if (err) {
		err->code = -SL_EPROTO_DECODE;
		err->fault = fault;
		err->event = event;
		if (event >= 0)
			snprintf(err->reason, sizeof(err->reason), "event %lld: %s: %s",
			         (long long)event, where, what);
		else
			snprintf(err->reason, sizeof(err->reason), "%s: %s", where, what);
	}
	return -SL_EPROTO_DECODE;
}

uint32_t sl_proto_error_wire_code(const struct sl_proto_error *err)
{
	return err->fault == SL_PROTO_FAULT_EVENT ? SLUICE__V1__ERROR_CODE__ERR_EVENT
	                                          : SLUICE__V1__ERROR_CODE__ERR_MALFORMED;
}

/* Header { string key = 1; bytes value = 2; } checked, and read if h. */
static inline const char *sl__header(const uint8_t *p, const uint8_t *end,
                                     struct sl_event_header *h, const char **where)
{
	const char *why;
	const uint8_t *d;
	size_t n;
	uint32_t tag;

	if (h)
		*h = (struct sl_event_header){0};
	while (p < end) {
		if ((why = sl__tag(&p, end, &tag))) {
			*where = "Event.headers";
			return why;
		}
		switch (tag) {
		case SL__TAG(1, SL__WT_LEN):
			if ((why = sl__bytes(&p, end, &d, &n))) {
				*where = "Header.key";
				return why;
			}
			if (h) {
				h->key = (const char *)d;
				h->key_len = n;
			}
			break;
		case SL__TAG(2, SL__WT_LEN):
			if ((why = sl__bytes(&p, end, &d, &n))) {
				*where = "Header.value";
				return why;
			}
			if (h) {
				h->value = n ? d : NULL;
				h->value_len = n;
			}
			break;
		default:
			if ((tag >> 3) <= 2) {
				*where = (tag >> 3) == 1 ? "Header.key" : "Header.value";
				return sl__r_wt;
			}
			if ((why = sl__skip(&p, end, tag & 7))) {
				*where = "Event.headers";
				return why;
			}
		}
	}
	return NULL;
}

static const char *const sl__event_name[] = {
    "Event",      "Event.id",      "Event.type",           "Event.aggregate", "Event.timestamp_ms",
    "Event.data", "Event.headers", "Event.schema_version",
};

/*
 * Reads the value of one Event field whose tag was just consumed. Inlined
 * twice: with a constant tag on the in-order fast path (the switch folds
 * away) and with a variable one in the general loop.
 */
__attribute__((always_inline)) static inline int
sl__event_field(uint32_t tag, const uint8_t **pp, const uint8_t *end, struct sl_event_view *v,
                struct sl_proto_error *err, int64_t index)
{
	const char *why;
	const char *where;
	const uint8_t *d;
	uint64_t x;
	size_t n;

	switch (tag) {
	case SL__TAG(1, SL__WT_LEN):
		if (SL_UNLIKELY(why = sl__bytes(pp, end, &d, &n)))
			goto bad_field;
		/* Empty equals absent in proto3 (protobuf-c reads both the
		 * same); anything else must be a whole UUID. */
		if (SL_UNLIKELY(n != 0 && n != SL_EVENT_ID_LEN))
			return sl__fail(err, SL_PROTO_FAULT_EVENT, index, "Event.id",
			                "must be 16 bytes");
		v->id = n ? d : NULL;
		return 0;
	case SL__TAG(2, SL__WT_LEN):
		if (SL_UNLIKELY(why = sl__bytes(pp, end, &d, &n)))
			goto bad_field;
		v->type = (const char *)d;
		v->type_len = n;
		return 0;
	case SL__TAG(3, SL__WT_LEN):
		if (SL_UNLIKELY(why = sl__bytes(pp, end, &d, &n)))
			goto bad_field;
		v->aggregate = (const char *)d;
		v->aggregate_len = n;
		return 0;
	case SL__TAG(4, SL__WT_VARINT):
		if (SL_UNLIKELY(why = sl__varint(pp, end, &x)))
			goto bad_field;
		v->timestamp_ms = (int64_t)x;
		return 0;
	case SL__TAG(5, SL__WT_LEN):
		if (SL_UNLIKELY(why = sl__bytes(pp, end, &d, &n)))
			goto bad_field;
		v->data = n ? d : NULL;
		v->data_len = n;
		return 0;
	case SL__TAG(6, SL__WT_LEN):
		if (SL_UNLIKELY(why = sl__bytes(pp, end, &d, &n)))
			goto bad_field;
		if (SL_UNLIKELY(why = sl__header(d, d + n, NULL, &where)))
			return sl__fail(err, SL_PROTO_FAULT_WIRE, index, where, why);
		v->n_headers++; /* bounded: each header takes >= 2 bytes */
		return 0;
	case SL__TAG(7, SL__WT_VARINT):
		if (SL_UNLIKELY(why = sl__varint(pp, end, &x)))
			goto bad_field;
		v->schema_version = (uint32_t)x; /* protobuf keeps the low 32 bits */
		return 0;
	default:
		if (SL_UNLIKELY((tag >> 3) < SL_ARRAY_LEN(sl__event_name))) {
			why = sl__r_wt;
			goto bad_field;
		}
		if (SL_UNLIKELY(why = sl__skip(pp, end, tag & 7)))
			return sl__fail(err, SL_PROTO_FAULT_WIRE, index, "Event (unknown field)",
			                why);
		return 0;
	}

bad_field:
	return sl__fail(err, SL_PROTO_FAULT_WIRE, index, sl__event_name[tag >> 3], why);
}

/* Consumes field `tag` when it is next, as an in-order encoder wrote it. */
#define SL__EVENT_TRY(tag)                                                                         \
	do {                                                                                       \
		if (p < end && *p == (tag)) {                                                      \
			p++;                                                                       \
			if (SL_UNLIKELY(rc = sl__event_field((tag), &p, end, v, err, index)))      \
				return rc;                                                         \
		}                                                                                  \
	} while (0)

/*
 * The event scanner every path shares. Encoders write fields in number
 * order, so it first takes them in that order with one predictable compare
 * each; a switch on the tag (an indirect jump per field, which perf showed
 * as a third of the scan) only runs for what is left: unknown, repeated or
 * out-of-order fields, and multi-byte tags.
 */
static inline int sl__event_scan(const uint8_t *buf, size_t len, struct sl_event_view *v,
                                 struct sl_proto_error *err, int64_t index)
{
	const uint8_t *p = buf;
	const uint8_t *end = buf + len;
	const char *why;
	uint32_t tag;
	int rc;

	/* Field by field: a compound-literal reset compiles to `rep stos`,
	 * whose start-up cost was 38% of the whole scan (perf, bench/proto.cc). */
	v->id = NULL;
	v->type = NULL;
	v->type_len = 0;
	v->aggregate = NULL;
	v->aggregate_len = 0;
	v->timestamp_ms = 0;
	v->data = NULL;
	v->data_len = 0;
	v->schema_version = 0;
	v->n_headers = 0;
	v->raw = buf;
	v->raw_len = len;

	SL__EVENT_TRY(SL__TAG(1, SL__WT_LEN));
	SL__EVENT_TRY(SL__TAG(2, SL__WT_LEN));
	SL__EVENT_TRY(SL__TAG(3, SL__WT_LEN));
	SL__EVENT_TRY(SL__TAG(4, SL__WT_VARINT));
	SL__EVENT_TRY(SL__TAG(5, SL__WT_LEN));
	while (p < end && *p == SL__TAG(6, SL__WT_LEN)) {
		p++;
		if (SL_UNLIKELY(
		        rc = sl__event_field(SL__TAG(6, SL__WT_LEN), &p, end, v, err, index)))
			return rc;
	}
	SL__EVENT_TRY(SL__TAG(7, SL__WT_VARINT));

	while (p < end) {
		if (SL_UNLIKELY(why = sl__tag(&p, end, &tag)))
			return sl__fail(err, SL_PROTO_FAULT_WIRE, index, "Event", why);
		if (SL_UNLIKELY(rc = sl__event_field(tag, &p, end, v, err, index)))
			return rc;
	}
	return 0;
}

#undef SL__EVENT_TRY

int sl_event_scan(const uint8_t *buf, size_t len, struct sl_event_view *view)
{
	return sl__event_scan(buf, len, view, NULL, -1);
}

int sl_event_scan_err(const uint8_t *buf, size_t len, struct sl_event_view *view,
                      struct sl_proto_error *err)
{
	return sl__event_scan(buf, len, view, err, -1);
}

int sl_event_header_next(const struct sl_event_view *view, size_t *cursor,
                         struct sl_event_header *header)
{
	const uint8_t *end = view->raw + view->raw_len;
	const uint8_t *p;
	const uint8_t *d;
	const char *where;
	size_t n;
	uint32_t tag;

	if (*cursor > view->raw_len)
		return -SL_EPROTO_DECODE;
	p = view->raw + *cursor;
	while (p < end) {
		if (sl__tag(&p, end, &tag))
			return -SL_EPROTO_DECODE;
		if (tag == SL__TAG(6, SL__WT_LEN)) {
			if (sl__bytes(&p, end, &d, &n) || sl__header(d, d + n, header, &where))
				return -SL_EPROTO_DECODE;
			*cursor = (size_t)(p - view->raw);
			return 1;
		}
		if (sl__skip(&p, end, tag & 7))
			return -SL_EPROTO_DECODE;
	}
	*cursor = view->raw_len;
	return 0;
}

static const char *const sl__produce_name[] = {
    "Produce",        "Produce.topic", "Produce.base_sequence",
    "Produce.events", "Produce.epoch", "Produce.resend_age_ms",
};

/* One Produce field whose tag was just consumed; inlined like sl__event_field. */
__attribute__((always_inline)) static inline int
sl__produce_field(uint32_t tag, const uint8_t **pp, const uint8_t *end, struct sl_produce *out,
                  struct sl_event_view *views, uint32_t max_views, struct sl_proto_error *err)
{
	struct sl_event_view scratch;
	const char *why;
	const uint8_t *d;
	uint64_t x;
	size_t n;
	int rc;

	switch (tag) {
	case SL__TAG(3, SL__WT_LEN):
		if (SL_UNLIKELY(why = sl__bytes(pp, end, &d, &n)))
			return sl__fail(err, SL_PROTO_FAULT_WIRE, out->n_events, "Produce.events",
			                why);
		if (SL_UNLIKELY(out->n_events == UINT32_MAX))
			return sl__fail(err, SL_PROTO_FAULT_WIRE, -1, "Produce.events",
			                "too many events");
		rc = sl__event_scan(d, n,
		                    out->n_events < max_views ? &views[out->n_events] : &scratch,
		                    err, out->n_events);
		if (SL_UNLIKELY(rc))
			return rc;
		out->n_events++;
		return 0;
	case SL__TAG(1, SL__WT_LEN):
		if (SL_UNLIKELY(why = sl__bytes(pp, end, &d, &n)))
			goto bad_field;
		out->topic = (const char *)d;
		out->topic_len = n;
		return 0;
	case SL__TAG(2, SL__WT_VARINT):
		if (SL_UNLIKELY(why = sl__varint(pp, end, &x)))
			goto bad_field;
		out->base_sequence = x;
		return 0;
	case SL__TAG(4, SL__WT_VARINT):
		if (SL_UNLIKELY(why = sl__varint(pp, end, &x)))
			goto bad_field;
		out->epoch = (uint32_t)x;
		return 0;
	case SL__TAG(5, SL__WT_VARINT):
		if (SL_UNLIKELY(why = sl__varint(pp, end, &x)))
			goto bad_field;
		out->resend_age_ms = x;
		return 0;
	default:
		if (SL_UNLIKELY((tag >> 3) < SL_ARRAY_LEN(sl__produce_name))) {
			why = sl__r_wt;
			goto bad_field;
		}
		if (SL_UNLIKELY(why = sl__skip(pp, end, tag & 7)))
			return sl__fail(err, SL_PROTO_FAULT_WIRE, -1, "Produce (unknown field)",
			                why);
		return 0;
	}

bad_field:
	return sl__fail(err, SL_PROTO_FAULT_WIRE, -1, sl__produce_name[tag >> 3], why);
}

int sl_produce_scan(const uint8_t *body, size_t len, struct sl_produce *out,
                    struct sl_proto_error *err)
{
	return sl_produce_scan_views(body, len, out, NULL, 0, err);
}

#define SL__PRODUCE_TRY(tag)                                                                       \
	do {                                                                                       \
		if (p < end && *p == (tag)) {                                                      \
			p++;                                                                       \
			rc = sl__produce_field((tag), &p, end, out, views, max_views, err);        \
			if (SL_UNLIKELY(rc))                                                       \
				return rc;                                                         \
		}                                                                                  \
	} while (0)

/* In field order first (topic, base_sequence, the run of events, epoch),
 * then whatever is left, as in sl__event_scan. */
int sl_produce_scan_views(const uint8_t *body, size_t len, struct sl_produce *out,
                          struct sl_event_view *views, uint32_t max_views,
                          struct sl_proto_error *err)
{
	const uint8_t *p = body;
	const uint8_t *end = body + len;
	const char *why;
	uint32_t tag;
	int rc;

	out->topic = NULL;
	out->topic_len = 0;
	out->base_sequence = 0;
	out->epoch = 0;
	out->resend_age_ms = 0;
	out->n_events = 0;
	out->body = body;
	out->body_len = len;
	SL__PRODUCE_TRY(SL__TAG(1, SL__WT_LEN));
	SL__PRODUCE_TRY(SL__TAG(2, SL__WT_VARINT));
	while (p < end && *p == SL__TAG(3, SL__WT_LEN)) {
		p++;
		rc = sl__produce_field(SL__TAG(3, SL__WT_LEN), &p, end, out, views, max_views, err);
		if (SL_UNLIKELY(rc))
			return rc;
	}
	SL__PRODUCE_TRY(SL__TAG(4, SL__WT_VARINT));
	while (p < end) {
		if (SL_UNLIKELY(why = sl__tag(&p, end, &tag)))
			return sl__fail(err, SL_PROTO_FAULT_WIRE, -1, "Produce", why);
		rc = sl__produce_field(tag, &p, end, out, views, max_views, err);
		if (SL_UNLIKELY(rc))
			return rc;
	}
	return 0;
}

#undef SL__PRODUCE_TRY

void sl_produce_iter_init(const struct sl_produce *produce, struct sl_event_iter *it)
{
	it->p = produce->body;
	it->end = produce->body + produce->body_len;
	it->tag = SL__TAG(3, SL__WT_LEN);
	it->index = 0;
}

int sl_event_iter_next(struct sl_event_iter *it, struct sl_event_view *view)
{
	const uint8_t *d;
	size_t n;
	uint32_t tag;
	int rc;

	while (it->p < it->end) {
		if (SL_UNLIKELY(sl__tag(&it->p, it->end, &tag)))
			return -SL_EPROTO_DECODE;
		if (SL_LIKELY(tag == it->tag)) {
			if (SL_UNLIKELY(sl__bytes(&it->p, it->end, &d, &n)))
				return -SL_EPROTO_DECODE;
			rc = sl__event_scan(d, n, view, NULL, it->index);
			if (SL_UNLIKELY(rc))
				return rc;
			it->index++;
			return 1;
		}
		if (SL_UNLIKELY(sl__skip(&it->p, it->end, tag & 7)))
			return -SL_EPROTO_DECODE;
	}
	return 0;
}

/* ---- FetchResult (the consume path) ------------------------------------- */

static const char *const sl__fetch_field[] = {
    "FetchResult",
    "FetchResult.request_id",
    "FetchResult.topic",
    "FetchResult.partition",
    "FetchResult.base_offset",
    "FetchResult.events",
    "FetchResult.end_offset",
    "FetchResult.error",
    "FetchResult.message",
    "FetchResult.append_time_ms",
    "FetchResult.log_start_offset",
};

/* Counts the varints of a packed run; all must be whole. */
static inline const char *sl__packed_count(const uint8_t *p, const uint8_t *end, uint32_t *count)
{
	const char *why;
	uint64_t x;

	while (p < end) {
		if ((why = sl__varint(&p, end, &x)))
			return why;
		if (*count == UINT32_MAX)
			return "too many values";
		(*count)++;
	}
	return NULL;
}

int sl_fetch_result_scan(const uint8_t *body, size_t len, struct sl_fetch_result *out,
                         struct sl_proto_error *err)
{
	const uint8_t *p = body;
	const uint8_t *end = body + len;
	struct sl_event_view scratch;
	const char *why;
	const uint8_t *d;
	uint64_t x;
	size_t n;
	uint32_t tag;
	int rc;

	*out = (struct sl_fetch_result){.body = body, .body_len = len};
	while (p < end) {
		if (SL_UNLIKELY(why = sl__tag(&p, end, &tag)))
			return sl__fail(err, SL_PROTO_FAULT_WIRE, -1, "FetchResult", why);
		switch (tag) {
		case SL__TAG(5, SL__WT_LEN):
			if (SL_UNLIKELY(why = sl__bytes(&p, end, &d, &n)))
				return sl__fail(err, SL_PROTO_FAULT_WIRE, out->n_events,
				                "FetchResult.events", why);
			if (SL_UNLIKELY(out->n_events == UINT32_MAX))
				return sl__fail(err, SL_PROTO_FAULT_WIRE, -1, "FetchResult.events",
				                "too many events");
			rc = sl__event_scan(d, n, &scratch, err, out->n_events);
			if (SL_UNLIKELY(rc))
				return rc;
			out->n_events++;
			break;
		case SL__TAG(1, SL__WT_VARINT):
		case SL__TAG(3, SL__WT_VARINT):
		case SL__TAG(4, SL__WT_VARINT):
		case SL__TAG(6, SL__WT_VARINT):
		case SL__TAG(7, SL__WT_VARINT):
		case SL__TAG(10, SL__WT_VARINT):
			if (SL_UNLIKELY(why = sl__varint(&p, end, &x)))
				goto bad_field;
			switch (tag >> 3) {
			case 10:
				out->log_start_offset = x;
				break;
			case 1:
				out->request_id = x;
				break;
			case 3:
				out->partition = (uint32_t)x;
				break;
			case 4:
				out->base_offset = x;
				break;
			case 6:
				out->end_offset = x;
				break;
			default:
				out->error = (uint32_t)x;
				break; /* enum: low 32 bits */
			}
			break;
		case SL__TAG(2, SL__WT_LEN):
		case SL__TAG(8, SL__WT_LEN):
			if (SL_UNLIKELY(why = sl__bytes(&p, end, &d, &n)))
				goto bad_field;
			if (tag >> 3 == 2) {
				out->topic = (const char *)d;
				out->topic_len = n;
			} else {
				out->message = (const char *)d;
				out->message_len = n;
			}
			break;
		/* repeated int64: protobuf-c reads packed and unpacked alike */
		case SL__TAG(9, SL__WT_VARINT):
			if (SL_UNLIKELY(why = sl__varint(&p, end, &x)))
				goto bad_field;
			if (SL_UNLIKELY(out->n_append_times == UINT32_MAX)) {
				why = "too many values";
				goto bad_field;
			}
			out->n_append_times++;
			break;
		case SL__TAG(9, SL__WT_LEN):
			if (SL_UNLIKELY(why = sl__bytes(&p, end, &d, &n)))
				goto bad_field;
			if (SL_UNLIKELY(why = sl__packed_count(d, d + n, &out->n_append_times)))
				goto bad_field;
			break;
		default:
			if (SL_UNLIKELY((tag >> 3) < SL_ARRAY_LEN(sl__fetch_field))) {
				why = sl__r_wt;
				goto bad_field;
			}
			if (SL_UNLIKELY(why = sl__skip(&p, end, tag & 7)))
				return sl__fail(err, SL_PROTO_FAULT_WIRE, -1,
				                "FetchResult (unknown field)", why);
		}
	}
	return 0;

bad_field:
	return sl__fail(err, SL_PROTO_FAULT_WIRE, -1, sl__fetch_field[tag >> 3], why);
}

void sl_fetch_result_iter_init(const struct sl_fetch_result *fr, struct sl_event_iter *it)
{
	it->p = fr->body;
	it->end = fr->body + fr->body_len;
	it->tag = SL__TAG(5, SL__WT_LEN);
	it->index = 0;
}

void sl_fetch_result_times_init(const struct sl_fetch_result *fr, struct sl_times_iter *it)
{
	*it = (struct sl_times_iter){.p = fr->body, .end = fr->body + fr->body_len};
}

int sl_fetch_result_times_next(struct sl_times_iter *it, int64_t *out)
{
	const uint8_t *d;
	uint64_t x;
	size_t n;
	uint32_t tag;

	for (;;) {
		if (it->pk < it->pk_end) {
			if (sl__varint(&it->pk, it->pk_end, &x))
				return -SL_EPROTO_DECODE;
			*out = (int64_t)x;
			return 1;
		}
		if (it->p >= it->end)
			return 0;
		if (sl__tag(&it->p, it->end, &tag))
			return -SL_EPROTO_DECODE;
		if (tag == SL__TAG(9, SL__WT_VARINT)) {
			if (sl__varint(&it->p, it->end, &x))
				return -SL_EPROTO_DECODE;
			*out = (int64_t)x;
			return 1;
		}
		if (tag == SL__TAG(9, SL__WT_LEN)) {
			if (sl__bytes(&it->p, it->end, &d, &n))
				return -SL_EPROTO_DECODE;
			it->pk = d;
			it->pk_end = d + n;
			continue;
		}
		if (sl__skip(&it->p, it->end, tag & 7))
			return -SL_EPROTO_DECODE;
	}
}
