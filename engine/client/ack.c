/*
 * The client's Ack reader: a protobuf wire-format scanner for one message
 * type, so that reading acks allocates nothing (protobuf-c would allocate
 * the message, each part, each reject and each repeated array, per frame).
 *
 * Two passes over the body: the first validates everything and learns the
 * singular fields (base_sequence may come after the parts; the last
 * occurrence of a singular field wins), the second reports events. Within
 * an AckPart, index[] and offsets[] are walked by two independent cursors,
 * each of which handles packed runs and unpacked elements in any mix.
 */
#include "client/client_impl.h"

#include <string.h>

#include "base/varint.h"

enum {
	SL__WT_VARINT = 0,
	SL__WT_I64 = 1,
	SL__WT_LEN = 2,
	SL__WT_I32 = 5,
};

static inline int sl__rd_varint(const uint8_t **pp, const uint8_t *end, uint64_t *out)
{
	size_t n = sl_varint_get(*pp, end, out);

	if (!n)
		return -SL_EPROTO_DECODE;
	*pp += n;
	return 0;
}

/* Reads a tag: at most 5 bytes (protobuf-c's limit, as the server's
 * scanner has it: fuzz_ack found a 6-byte one accepted here), a field
 * number of at least 1 that fits in 29 bits. */
static inline int sl__rd_tag(const uint8_t **pp, const uint8_t *end, uint32_t *field, uint32_t *wt)
{
	const uint8_t *start = *pp;
	uint64_t t;

	if (sl__rd_varint(pp, end, &t) < 0 || *pp - start > 5 || t >> 32 || (t >> 3) == 0)
		return -SL_EPROTO_DECODE;
	*field = (uint32_t)(t >> 3);
	*wt = (uint32_t)(t & 7);
	return 0;
}

/* Reads a length prefix and checks the bytes are there. */
static inline int sl__rd_len(const uint8_t **pp, const uint8_t *end, const uint8_t **start,
                             size_t *len)
{
	uint64_t n;

	if (sl__rd_varint(pp, end, &n) < 0 || n > (uint64_t)(end - *pp))
		return -SL_EPROTO_DECODE;
	*start = *pp;
	*len = (size_t)n;
	*pp += n;
	return 0;
}

static int sl__skip(const uint8_t **pp, const uint8_t *end, uint32_t wt)
{
	uint64_t v;
	const uint8_t *s;
	size_t n;

	switch (wt) {
	case SL__WT_VARINT:
		return sl__rd_varint(pp, end, &v);
	case SL__WT_I64:
		if (end - *pp < 8)
			return -SL_EPROTO_DECODE;
		*pp += 8;
		return 0;
	case SL__WT_LEN:
		return sl__rd_len(pp, end, &s, &n);
	case SL__WT_I32:
		if (end - *pp < 4)
			return -SL_EPROTO_DECODE;
		*pp += 4;
		return 0;
	default:
		return -SL_EPROTO_DECODE; /* groups are not in proto3 */
	}
}

/* Reads a singular varint field after checking its wire type. */
static inline int sl__rd_field_varint(const uint8_t **pp, const uint8_t *end, uint32_t wt,
                                      uint64_t *v)
{
	if (wt != SL__WT_VARINT)
		return -SL_EPROTO_DECODE;
	return sl__rd_varint(pp, end, v);
}

/*
 * Cursor over the elements of one repeated varint field inside a message
 * body, in order, whether they come packed (one or several runs) or one
 * tag per element.
 */
struct sl__rep {
	const uint8_t *p, *end;     /* rest of the message */
	const uint8_t *pk, *pk_end; /* rest of the current packed run */
	uint32_t field;
};

static void sl__rep_init(struct sl__rep *r, const uint8_t *p, size_t len, uint32_t field)
{
	*r = (struct sl__rep){.p = p, .end = p + len, .pk = NULL, .pk_end = NULL, .field = field};
}

/* 1 with *v, 0 at the end, <0 when malformed. */
static int sl__rep_next(struct sl__rep *r, uint64_t *v)
{
	for (;;) {
		if (r->pk < r->pk_end)
			return sl__rd_varint(&r->pk, r->pk_end, v) < 0 ? -SL_EPROTO_DECODE : 1;
		if (r->p >= r->end)
			return 0;
		uint32_t field, wt;
		if (sl__rd_tag(&r->p, r->end, &field, &wt) < 0)
			return -SL_EPROTO_DECODE;
		if (field == r->field && wt == SL__WT_LEN) {
			size_t n;
			if (sl__rd_len(&r->p, r->end, &r->pk, &n) < 0)
				return -SL_EPROTO_DECODE;
			r->pk_end = r->pk + n;
			continue;
		}
		if (field == r->field && wt == SL__WT_VARINT)
			return sl__rd_varint(&r->p, r->end, v) < 0 ? -SL_EPROTO_DECODE : 1;
		if (sl__skip(&r->p, r->end, wt) < 0)
			return -SL_EPROTO_DECODE;
	}
}

/* Counts the elements of a repeated varint field (validating them). */
static int64_t sl__rep_count(const uint8_t *p, size_t len, uint32_t field)
{
	struct sl__rep r;
	uint64_t v;
	int64_t n = 0;
	int ret;

	sl__rep_init(&r, p, len, field);
	while ((ret = sl__rep_next(&r, &v)) > 0)
		n++;
	return ret < 0 ? ret : n;
}

struct sl__part {
	uint32_t partition;
	uint64_t base_offset;
	bool duplicate;
	bool offset_unknown;
	bool dropped;
	int64_t n_index, n_offsets;
};

/* Validates an AckPart and reads its singular fields. */
static int sl__part_read(const uint8_t *p, size_t len, struct sl__part *out)
{
	const uint8_t *end = p + len;
	uint64_t v;

	*out = (struct sl__part){0};
	while (p < end) {
		uint32_t field, wt;
		if (sl__rd_tag(&p, end, &field, &wt) < 0)
			return -SL_EPROTO_DECODE;
		switch (field) {
		case 1:
			if (sl__rd_field_varint(&p, end, wt, &v) < 0)
				return -SL_EPROTO_DECODE;
			out->partition = (uint32_t)v; /* uint32: protobuf truncates */
			break;
		case 2:
			if (sl__rd_field_varint(&p, end, wt, &v) < 0)
				return -SL_EPROTO_DECODE;
			out->base_offset = v;
			break;
		case 5:
			if (sl__rd_field_varint(&p, end, wt, &v) < 0)
				return -SL_EPROTO_DECODE;
			out->duplicate = v != 0;
			break;
		case 6:
			if (sl__rd_field_varint(&p, end, wt, &v) < 0)
				return -SL_EPROTO_DECODE;
			out->offset_unknown = v != 0;
			break;
		case 7:
			if (sl__rd_field_varint(&p, end, wt, &v) < 0)
				return -SL_EPROTO_DECODE;
			out->dropped = v != 0;
			break;
		case 3:
		case 4:
			if (wt != SL__WT_LEN && wt != SL__WT_VARINT)
				return -SL_EPROTO_DECODE;
			/* counted below */
			__attribute__((fallthrough));
		default:
			if (sl__skip(&p, end, wt) < 0)
				return -SL_EPROTO_DECODE;
			break;
		}
	}
	const uint8_t *start = end - len;
	out->n_index = sl__rep_count(start, len, 3);
	out->n_offsets = sl__rep_count(start, len, 4);
	if (out->n_index < 0 || out->n_offsets < 0)
		return -SL_EPROTO_DECODE;
	/* offsets[] is all or nothing: one per index when present. */
	if (out->n_offsets && out->n_offsets != out->n_index)
		return -SL_EPROTO_DECODE;
	return 0;
}

struct sl__reject {
	uint32_t code;
	const char *message;
	size_t message_len;
	uint32_t retry_after_ms;
	int64_t n_index;
};

static int sl__reject_read(const uint8_t *p, size_t len, struct sl__reject *out)
{
	const uint8_t *end = p + len, *s;
	uint64_t v;
	size_t n;

	*out = (struct sl__reject){0};
	while (p < end) {
		uint32_t field, wt;
		if (sl__rd_tag(&p, end, &field, &wt) < 0)
			return -SL_EPROTO_DECODE;
		switch (field) {
		case 2:
			if (sl__rd_field_varint(&p, end, wt, &v) < 0)
				return -SL_EPROTO_DECODE;
			out->code = (uint32_t)v; /* an enum travels as int32 */
			break;
		case 3:
			if (wt != SL__WT_LEN || sl__rd_len(&p, end, &s, &n) < 0)
				return -SL_EPROTO_DECODE;
			out->message = (const char *)s;
			out->message_len = n;
			break;
		case 4:
			if (sl__rd_field_varint(&p, end, wt, &v) < 0)
				return -SL_EPROTO_DECODE;
			out->retry_after_ms = (uint32_t)v;
			break;
		case 1:
			if (wt != SL__WT_LEN && wt != SL__WT_VARINT)
				return -SL_EPROTO_DECODE;
			__attribute__((fallthrough));
		default:
			if (sl__skip(&p, end, wt) < 0)
				return -SL_EPROTO_DECODE;
			break;
		}
	}
	out->n_index = sl__rep_count(end - len, len, 1);
	return out->n_index < 0 ? -SL_EPROTO_DECODE : 0;
}

/* Pass 1 when fn is NULL (validate, find base_sequence), pass 2 otherwise. */
static int64_t sl__ack_walk(const uint8_t *body, size_t len, uint64_t *base, sl__ack_fn fn,
                            void *arg)
{
	const uint8_t *p = body, *end = body + len, *s;
	int64_t total = 0;
	uint64_t v;
	size_t n;

	while (p < end) {
		uint32_t field, wt;
		if (sl__rd_tag(&p, end, &field, &wt) < 0)
			return -SL_EPROTO_DECODE;
		if (field == 1) {
			if (sl__rd_field_varint(&p, end, wt, &v) < 0)
				return -SL_EPROTO_DECODE;
			if (!fn)
				*base = v;
			continue;
		}
		if (field != 2 && field != 3) {
			if (sl__skip(&p, end, wt) < 0)
				return -SL_EPROTO_DECODE;
			continue;
		}
		if (wt != SL__WT_LEN || sl__rd_len(&p, end, &s, &n) < 0)
			return -SL_EPROTO_DECODE;
		if (field == 2) {
			struct sl__part pt;
			if (sl__part_read(s, n, &pt) < 0)
				return -SL_EPROTO_DECODE;
			total += pt.n_index;
			if (!fn)
				continue;
			struct sl__rep ri, ro;
			uint64_t idx, off;
			sl__rep_init(&ri, s, n, 3);
			sl__rep_init(&ro, s, n, 4);
			for (int64_t k = 0; k < pt.n_index; k++) {
				/* Both were counted in pass 1: these cannot fail. */
				sl__rep_next(&ri, &idx);
				if (pt.n_offsets)
					sl__rep_next(&ro, &off);
				else
					off = pt.base_offset + (uint64_t)k;
				struct sl__ack_event ev = {
				    .seq = *base + (uint32_t)idx,
				    .partition = pt.partition,
				    .offset = pt.offset_unknown ? SL_CLIENT_OFFSET_UNKNOWN : off,
				    .duplicate = pt.duplicate,
				    .dropped = pt.dropped,
				};
				fn(arg, &ev);
			}
		} else {
			struct sl__reject rj;
			if (sl__reject_read(s, n, &rj) < 0)
				return -SL_EPROTO_DECODE;
			total += rj.n_index;
			if (!fn)
				continue;
			struct sl__rep ri;
			uint64_t idx;
			sl__rep_init(&ri, s, n, 1);
			while (sl__rep_next(&ri, &idx) > 0) {
				struct sl__ack_event ev = {
				    .seq = *base + (uint32_t)idx,
				    /* A refusal with no code is still a refusal. */
				    .code =
				        rj.code ? rj.code : SLUICE__V1__ERROR_CODE__ERR_INTERNAL,
				    .message = rj.message,
				    .message_len = rj.message_len,
				    .retry_after_ms = rj.retry_after_ms,
				};
				fn(arg, &ev);
			}
		}
	}
	return total;
}

int sl__ack_scan(const uint8_t *body, size_t len, sl__ack_fn fn, void *arg)
{
	uint64_t base = 0;
	int64_t n = sl__ack_walk(body, len, &base, NULL, NULL);

	if (n < 0)
		return (int)n;
	if (n > INT32_MAX)
		return -SL_EPROTO_DECODE;
	if (fn)
		sl__ack_walk(body, len, &base, fn, arg);
	return (int)n;
}
