/*
 * The hand-written encoders for the hot path: events, Produce frames (client
 * and load generator) and Ack frames (server). They write the bytes
 * protobuf_c_message_pack() would write for the same values (field-number
 * order, proto3 zero values left out, repeated scalars packed), so the two
 * codecs are interchangeable and the tests compare bytes, not just values.
 * Sizes are computed first, so nested lengths are known before writing and
 * nothing is ever moved; capacity is checked before the first byte is
 * written, so a failed call leaves the destination as it was.
 */
#include "proto/proto.h"

#include <endian.h>
#include <string.h>

#include "base/varint.h"

enum {
	SL__WT_VARINT = 0,
	SL__WT_LEN = 2,
};

#define SL__TAG(field, wt) ((uint8_t)(((field) << 3) | (wt)))

/* Size of a length-delimited field (one-byte tag) with an n-byte payload. */
static inline size_t sl__len_field(size_t n)
{
	return 1 + sl_varint_len(n) + n;
}

static inline uint8_t *sl__put_len_field(uint8_t *p, uint8_t tag, const void *d, size_t n)
{
	*p++ = tag;
	p = sl_varint_put(p, n);
	memcpy(p, d, n);
	return p + n;
}

static inline uint8_t *sl__put_varint_field(uint8_t *p, uint8_t tag, uint64_t v)
{
	*p++ = tag;
	return sl_varint_put(p, v);
}

/* Enums travel as int32: a value above INT32_MAX is negative and sign-extends
 * to 10 bytes, as protobuf-c writes it. */
static inline uint64_t sl__enum_wire(uint32_t v)
{
	return (uint64_t)(int64_t)(int32_t)v;
}

static inline void sl__put_frame_header(uint8_t *p, uint8_t type, size_t body_len)
{
	uint32_t le = htole32((uint32_t)(body_len + 1));

	memcpy(p, &le, 4);
	p[4] = type;
}

/* ---- events ------------------------------------------------------------ */

static inline size_t sl__header_size(const struct sl_event_header *h)
{
	return (h->key_len ? sl__len_field(h->key_len) : 0) +
	       (h->value_len ? sl__len_field(h->value_len) : 0);
}

size_t sl_event_encoded_size(const struct sl_event_view *v, const struct sl_event_header *headers,
                             size_t n_headers)
{
	size_t s = 0;

	if (v->id)
		s += 2 + SL_EVENT_ID_LEN;
	if (v->type_len)
		s += sl__len_field(v->type_len);
	if (v->aggregate_len)
		s += sl__len_field(v->aggregate_len);
	if (v->timestamp_ms)
		s += 1 + sl_varint_len((uint64_t)v->timestamp_ms);
	if (v->data_len)
		s += sl__len_field(v->data_len);
	for (size_t i = 0; i < n_headers; i++)
		s += sl__len_field(sl__header_size(&headers[i]));
	if (v->schema_version)
		s += 1 + sl_varint_len(v->schema_version);
	return s;
}

static uint8_t *sl__event_write(uint8_t *p, const struct sl_event_view *v,
                                const struct sl_event_header *headers, size_t n_headers)
{
	if (v->id)
		p = sl__put_len_field(p, SL__TAG(1, SL__WT_LEN), v->id, SL_EVENT_ID_LEN);
	if (v->type_len)
		p = sl__put_len_field(p, SL__TAG(2, SL__WT_LEN), v->type, v->type_len);
	if (v->aggregate_len)
		p = sl__put_len_field(p, SL__TAG(3, SL__WT_LEN), v->aggregate, v->aggregate_len);
	if (v->timestamp_ms)
		p = sl__put_varint_field(p, SL__TAG(4, SL__WT_VARINT), (uint64_t)v->timestamp_ms);
	if (v->data_len)
		p = sl__put_len_field(p, SL__TAG(5, SL__WT_LEN), v->data, v->data_len);
	for (size_t i = 0; i < n_headers; i++) {
		const struct sl_event_header *h = &headers[i];

		*p++ = SL__TAG(6, SL__WT_LEN);
		p = sl_varint_put(p, sl__header_size(h));
		if (h->key_len)
			p = sl__put_len_field(p, SL__TAG(1, SL__WT_LEN), h->key, h->key_len);
		if (h->value_len)
			p = sl__put_len_field(p, SL__TAG(2, SL__WT_LEN), h->value, h->value_len);
	}
	if (v->schema_version)
		p = sl__put_varint_field(p, SL__TAG(7, SL__WT_VARINT), v->schema_version);
	return p;
}

int sl_event_encode(uint8_t *dst, size_t cap, const struct sl_event_view *view,
                    const struct sl_event_header *headers, size_t n_headers)
{
	size_t size = sl_event_encoded_size(view, headers, n_headers);

	if (size > SL_FRAME_MAX_LIMIT)
		return -EMSGSIZE;
	if (size > cap)
		return -ENOSPC;
	sl__event_write(dst, view, headers, n_headers);
	return (int)size;
}

/* ---- Produce builder ---------------------------------------------------- */

int sl_produce_begin(struct sl_produce_builder *b, uint8_t *dst, size_t cap, const char *topic,
                     size_t topic_len, uint64_t base_sequence, uint32_t epoch)
{
	/* Produce.epoch is field 4, after the events: protobuf-c writes it last,
	 * so finish() appends it and its room is held back from the start. */
	size_t epoch_room = epoch ? 1 + sl_varint_len(epoch) : 0;
	size_t need = SL_FRAME_HDR_LEN + (topic_len ? sl__len_field(topic_len) : 0) +
	              (base_sequence ? 1 + sl_varint_len(base_sequence) : 0) + epoch_room;
	uint8_t *p;

	if (cap > SL_FRAME_MAX_LIMIT + 4)
		cap = SL_FRAME_MAX_LIMIT + 4;
	if (topic_len > cap || need > cap)
		return -ENOSPC;
	p = dst + SL_FRAME_HDR_LEN;
	if (topic_len)
		p = sl__put_len_field(p, SL__TAG(1, SL__WT_LEN), topic, topic_len);
	if (base_sequence)
		p = sl__put_varint_field(p, SL__TAG(2, SL__WT_VARINT), base_sequence);
	*b = (struct sl_produce_builder){
	    .buf = dst,
	    .cap = cap - epoch_room,
	    .len = (size_t)(p - dst),
	    .epoch = epoch,
	};
	return 0;
}

int sl_produce_add_encoded(struct sl_produce_builder *b, const uint8_t *event, size_t len)
{
	if (SL_UNLIKELY(b->n_events == UINT32_MAX))
		return -EMSGSIZE;
	if (len > b->cap || sl__len_field(len) > b->cap - b->len)
		return -ENOSPC;
	b->len = (size_t)(sl__put_len_field(b->buf + b->len, SL__TAG(3, SL__WT_LEN), event, len) -
	                  b->buf);
	b->n_events++;
	return 0;
}

int sl_produce_add_event(struct sl_produce_builder *b, const struct sl_event_view *view,
                         const struct sl_event_header *headers, size_t n_headers)
{
	size_t size = sl_event_encoded_size(view, headers, n_headers);
	uint8_t *p;

	if (SL_UNLIKELY(b->n_events == UINT32_MAX))
		return -EMSGSIZE;
	if (size > b->cap || sl__len_field(size) > b->cap - b->len)
		return -ENOSPC;
	p = b->buf + b->len;
	*p++ = SL__TAG(3, SL__WT_LEN);
	p = sl_varint_put(p, size);
	p = sl__event_write(p, view, headers, n_headers);
	b->len = (size_t)(p - b->buf);
	b->n_events++;
	return 0;
}

int sl_produce_set_resend_age(struct sl_produce_builder *b, uint64_t age_ms)
{
	size_t room;

	if (!age_ms)
		age_ms = 1;
	room = 1 + sl_varint_len(age_ms);
	if (b->n_events || b->resend_age_ms || room > b->cap - b->len)
		return -ENOSPC;
	/* Written by finish(), after the epoch: its room is held back now. */
	b->cap -= room;
	b->resend_age_ms = age_ms;
	return 0;
}

int sl_produce_finish(struct sl_produce_builder *b)
{
	uint8_t *p = b->buf + b->len;

	if (b->epoch)
		p = sl__put_varint_field(p, SL__TAG(4, SL__WT_VARINT), b->epoch);
	if (b->resend_age_ms)
		p = sl__put_varint_field(p, SL__TAG(5, SL__WT_VARINT), b->resend_age_ms);
	b->len = (size_t)(p - b->buf);
	sl__put_frame_header(b->buf, SLUICE__V1__FRAME_TYPE__FRAME_PRODUCE,
	                     b->len - SL_FRAME_HDR_LEN);
	return (int)b->len;
}

/* ---- FetchResult builder -------------------------------------------------- */

static size_t sl__fetch_tail(const struct sl_fetch_result_head *h)
{
	return (h->end_offset ? 1 + sl_varint_len(h->end_offset) : 0) +
	       (h->error ? 1 + sl_varint_len(sl__enum_wire(h->error)) : 0) +
	       (h->message_len ? sl__len_field(h->message_len) : 0) +
	       (h->log_start_offset ? 1 + sl_varint_len(h->log_start_offset) : 0);
}

int sl_fetch_result_begin(struct sl_fetch_result_builder *b, uint8_t *dst, size_t cap,
                          const struct sl_fetch_result_head *h)
{
	size_t tail, need;
	uint8_t *p;

	if (cap > SL_FRAME_MAX_LIMIT + 4)
		cap = SL_FRAME_MAX_LIMIT + 4;
	if (h->topic_len > cap || h->message_len > cap)
		return -ENOSPC;
	tail = sl__fetch_tail(h);
	need = SL_FRAME_HDR_LEN + (h->request_id ? 1 + sl_varint_len(h->request_id) : 0) +
	       (h->topic_len ? sl__len_field(h->topic_len) : 0) +
	       (h->partition ? 1 + sl_varint_len(h->partition) : 0) +
	       (h->base_offset ? 1 + sl_varint_len(h->base_offset) : 0) + tail;
	if (need > cap)
		return -ENOSPC;
	p = dst + SL_FRAME_HDR_LEN;
	if (h->request_id)
		p = sl__put_varint_field(p, SL__TAG(1, SL__WT_VARINT), h->request_id);
	if (h->topic_len)
		p = sl__put_len_field(p, SL__TAG(2, SL__WT_LEN), h->topic, h->topic_len);
	if (h->partition)
		p = sl__put_varint_field(p, SL__TAG(3, SL__WT_VARINT), h->partition);
	if (h->base_offset)
		p = sl__put_varint_field(p, SL__TAG(4, SL__WT_VARINT), h->base_offset);
	*b = (struct sl_fetch_result_builder){
	    .buf = dst,
	    .cap = cap - tail,
	    .len = (size_t)(p - dst),
	    .end_offset = h->end_offset,
	    .error = h->error,
	    .message = h->message,
	    .message_len = h->message_len,
	    .log_start_offset = h->log_start_offset,
	};
	return 0;
}

int sl_fetch_result_add(struct sl_fetch_result_builder *b, const uint8_t *event, size_t len,
                        int64_t append_time_ms)
{
	size_t need;
	uint8_t *p;

	if (SL_UNLIKELY(b->n_events == UINT32_MAX))
		return -EMSGSIZE;
	if (len > b->cap)
		return -ENOSPC;
	/* a repeated value is written even when 0: times stay aligned with events */
	need = sl__len_field(len) + 1 + sl_varint_len((uint64_t)append_time_ms);
	if (need > b->cap - b->len)
		return -ENOSPC;
	p = sl__put_len_field(b->buf + b->len, SL__TAG(5, SL__WT_LEN), event, len);
	p = sl__put_varint_field(p, SL__TAG(9, SL__WT_VARINT), (uint64_t)append_time_ms);
	b->len = (size_t)(p - b->buf);
	b->n_events++;
	return 0;
}

int sl_fetch_result_finish(struct sl_fetch_result_builder *b)
{
	uint8_t *p = b->buf + b->len;

	if (b->end_offset)
		p = sl__put_varint_field(p, SL__TAG(6, SL__WT_VARINT), b->end_offset);
	if (b->error)
		p = sl__put_varint_field(p, SL__TAG(7, SL__WT_VARINT), sl__enum_wire(b->error));
	if (b->message_len)
		p = sl__put_len_field(p, SL__TAG(8, SL__WT_LEN), b->message, b->message_len);
	if (b->log_start_offset)
		p = sl__put_varint_field(p, SL__TAG(10, SL__WT_VARINT), b->log_start_offset);
	b->len = (size_t)(p - b->buf);
	sl__put_frame_header(b->buf, SLUICE__V1__FRAME_TYPE__FRAME_FETCH_RESULT,
	                     b->len - SL_FRAME_HDR_LEN);
	return (int)b->len;
}

/* ---- Ack ------------------------------------------------------------------ */

/* Payload bytes of a packed index list; false when a run overflows 32 bits. */
static bool sl__index_payload(const struct sl_index_list *l, size_t *out)
{
	size_t s = 0;

	if (l->v) {
		for (uint32_t i = 0; i < l->n; i++)
			s += sl_varint_len(l->v[i]);
	} else {
		if (l->n && (uint64_t)l->first + l->n - 1 > UINT32_MAX)
			return false;
		for (uint32_t i = 0; i < l->n; i++)
			s += sl_varint_len(l->first + i);
	}
	*out = s;
	return true;
}

static uint8_t *sl__put_index(uint8_t *p, uint8_t tag, const struct sl_index_list *l,
                              size_t payload)
{
	if (!l->n)
		return p;
	*p++ = tag;
	p = sl_varint_put(p, payload);
	for (uint32_t i = 0; i < l->n; i++)
		p = sl_varint_put(p, l->v ? l->v[i] : l->first + i);
	return p;
}

struct sl__part_sizes {
	size_t index;   /* packed payload of index */
	size_t offsets; /* packed payload of offsets */
	size_t body;    /* the whole AckPart */
};

static bool sl__part_size(const struct sl_ack_part *pt, struct sl__part_sizes *s)
{
	size_t b = 0;

	if (!sl__index_payload(&pt->index, &s->index))
		return false;
	s->offsets = 0;
	if (pt->offsets)
		for (uint32_t i = 0; i < pt->index.n; i++)
			s->offsets += sl_varint_len(pt->offsets[i]);
	if (pt->partition)
		b += 1 + sl_varint_len(pt->partition);
	if (pt->base_offset)
		b += 1 + sl_varint_len(pt->base_offset);
	if (pt->index.n)
		b += sl__len_field(s->index);
	if (pt->offsets && pt->index.n)
		b += sl__len_field(s->offsets);
	if (pt->duplicate)
		b += 2;
	if (pt->offset_unknown)
		b += 2;
	if (pt->dropped)
		b += 2;
	s->body = b;
	return true;
}

static bool sl__reject_size(const struct sl_ack_reject *r, size_t *index, size_t *body)
{
	size_t b = 0;

	if (!sl__index_payload(&r->index, index))
		return false;
	if (r->index.n)
		b += sl__len_field(*index);
	if (r->code)
		b += 1 + sl_varint_len(sl__enum_wire(r->code));
	if (r->message_len)
		b += sl__len_field(r->message_len);
	if (r->retry_after_ms)
		b += 1 + sl_varint_len(r->retry_after_ms);
	*body = b;
	return true;
}

/* Body size of the Ack, or 0 with *bad set. */
static size_t sl__ack_body_size(const struct sl_ack *a, bool *bad)
{
	size_t s = a->base_sequence ? 1 + sl_varint_len(a->base_sequence) : 0;
	struct sl__part_sizes ps;
	size_t ri, rb;

	*bad = false;
	for (size_t i = 0; i < a->n_parts; i++) {
		if (!sl__part_size(&a->parts[i], &ps))
			goto bad;
		s += sl__len_field(ps.body);
	}
	for (size_t i = 0; i < a->n_rejects; i++) {
		if (!sl__reject_size(&a->rejects[i], &ri, &rb))
			goto bad;
		s += sl__len_field(rb);
	}
	return s;
bad:
	*bad = true;
	return 0;
}

size_t sl_ack_frame_size(const struct sl_ack *ack)
{
	bool bad;
	size_t s = sl__ack_body_size(ack, &bad);

	if (bad || s + 1 > SL_FRAME_MAX_LIMIT)
		return 0;
	return SL_FRAME_HDR_LEN + s;
}

int sl_ack_encode(uint8_t *dst, size_t cap, const struct sl_ack *ack)
{
	struct sl__part_sizes ps;
	size_t body, ri, rb;
	uint8_t *p;
	bool bad;

	body = sl__ack_body_size(ack, &bad);
	if (bad)
		return -EINVAL;
	if (body + 1 > SL_FRAME_MAX_LIMIT)
		return -EMSGSIZE;
	if (SL_FRAME_HDR_LEN + body > cap)
		return -ENOSPC;
	sl__put_frame_header(dst, SLUICE__V1__FRAME_TYPE__FRAME_ACK, body);
	p = dst + SL_FRAME_HDR_LEN;
	if (ack->base_sequence)
		p = sl__put_varint_field(p, SL__TAG(1, SL__WT_VARINT), ack->base_sequence);
	for (size_t i = 0; i < ack->n_parts; i++) {
		const struct sl_ack_part *pt = &ack->parts[i];

		sl__part_size(pt, &ps);
		*p++ = SL__TAG(2, SL__WT_LEN);
		p = sl_varint_put(p, ps.body);
		if (pt->partition)
			p = sl__put_varint_field(p, SL__TAG(1, SL__WT_VARINT), pt->partition);
		if (pt->base_offset)
			p = sl__put_varint_field(p, SL__TAG(2, SL__WT_VARINT), pt->base_offset);
		p = sl__put_index(p, SL__TAG(3, SL__WT_LEN), &pt->index, ps.index);
		if (pt->offsets && pt->index.n) {
			*p++ = SL__TAG(4, SL__WT_LEN);
			p = sl_varint_put(p, ps.offsets);
			for (uint32_t j = 0; j < pt->index.n; j++)
				p = sl_varint_put(p, pt->offsets[j]);
		}
		if (pt->duplicate) {
			*p++ = SL__TAG(5, SL__WT_VARINT);
			*p++ = 1;
		}
		if (pt->offset_unknown) {
			*p++ = SL__TAG(6, SL__WT_VARINT);
			*p++ = 1;
		}
		if (pt->dropped) {
			*p++ = SL__TAG(7, SL__WT_VARINT);
			*p++ = 1;
		}
	}
	for (size_t i = 0; i < ack->n_rejects; i++) {
		const struct sl_ack_reject *r = &ack->rejects[i];

		sl__reject_size(r, &ri, &rb);
		*p++ = SL__TAG(3, SL__WT_LEN);
		p = sl_varint_put(p, rb);
		p = sl__put_index(p, SL__TAG(1, SL__WT_LEN), &r->index, ri);
		if (r->code)
			p = sl__put_varint_field(p, SL__TAG(2, SL__WT_VARINT),
			                         sl__enum_wire(r->code));
		if (r->message_len)
			p = sl__put_len_field(p, SL__TAG(3, SL__WT_LEN), r->message,
			                      r->message_len);
		if (r->retry_after_ms)
			p = sl__put_varint_field(p, SL__TAG(4, SL__WT_VARINT), r->retry_after_ms);
	}
	return (int)(p - dst);
}
