/*
 * Fuzz the JSON faces of an event. The first byte picks a mode (its value
 * mod 4, so the seeds can start with an ASCII digit):
 *   0  the rest is a `sluice produce` line: when it parses, format it, parse
 *      the output again and demand the same event, and formatting that gives
 *      the same line (a fixed point after one step);
 *   1  the rest is a stored event (8 bytes of numbers, then type, aggregate,
 *      header key and value split at 0xff bytes, then data): formatting must give one line that
 * parses back with the same bytes wherever they were printed as they are; 2  base64: whatever
 * decodes must encode back to the same text, and whatever is encoded must decode back; 3  UUID and
 * RFC 3339 text: no crash, UUIDs print back in lowercase.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "json/json.h"

#define CHECK(c)                                                                                   \
	do {                                                                                       \
		if (!(c))                                                                          \
			__builtin_trap();                                                          \
	} while (0)

static bool mem_eq(const void *a, size_t an, const void *b, size_t bn)
{
	return an == bn && (an == 0 || !memcmp(a, b, an));
}

static bool ascii(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] >= 0x80)
			return false;
	return true;
}

static void same_fields(const struct sl_json_event *a, const struct sl_json_event *b)
{
	CHECK(mem_eq(a->ev.type, a->ev.type_len, b->ev.type, b->ev.type_len));
	CHECK(mem_eq(a->ev.aggregate, a->ev.aggregate_len, b->ev.aggregate, b->ev.aggregate_len));
	CHECK(a->ev.timestamp_ms == b->ev.timestamp_ms);
	CHECK(a->ev.schema_version == b->ev.schema_version);
	CHECK(!a->ev.id == !b->ev.id);
	CHECK(!a->ev.id || !memcmp(a->ev.id, b->ev.id, SL_EVENT_ID_LEN));
	CHECK(a->n_headers == b->n_headers && b->ev.n_headers == b->n_headers);
	for (size_t i = 0; i < a->n_headers; i++) {
		CHECK(mem_eq(a->headers[i].key, a->headers[i].key_len, b->headers[i].key,
		             b->headers[i].key_len));
		CHECK(mem_eq(a->headers[i].value, a->headers[i].value_len, b->headers[i].value,
		             b->headers[i].value_len));
	}
}

static void one_line(const struct sl_json_buf *out)
{
	CHECK(out->len > 0 && out->data[out->len - 1] == '\n');
	CHECK(memchr(out->data, '\n', out->len) == out->data + out->len - 1);
	CHECK(strlen(out->data) == out->len); /* no raw NUL anywhere */
}

static void fuzz_line(const char *line, size_t len)
{
	struct sl_json_event a = {0}, b = {0};
	struct sl_json_buf out1 = {0}, out2 = {0};
	struct sl_uuid_rng rng;
	char err[256];
	int rc;

	sl_uuid_rng_seed_u64(&rng, len);
	rc = sl_json_event_parse(line, len, 1234, &rng, &a, err, sizeof(err));
	CHECK(rc == 0 || rc == -EINVAL || rc == -ENODATA);
	CHECK(rc == 0 || strlen(err) > 0);
	if (rc)
		goto out;
	CHECK(a.ev.type_len > 0 && a.ev.aggregate_len > 0 && a.ev.id);
	CHECK(sl_json_event_format(&a.ev, a.headers, a.n_headers, 7, 8, NULL, 0, &out1) == 0);
	one_line(&out1);
	rc = sl_json_event_parse(out1.data, out1.len, 0, NULL, &b, err, sizeof(err));
	CHECK(rc == 0);
	same_fields(&a, &b);
	CHECK(b.has_position && b.partition == 7 && b.offset == 8);

	bool from_b64 = a.ev.data_len && a.ev.data == a.sl__bytes;
	if (strstr(out1.data, ",\"data_b64\":\"") || !from_b64)
		CHECK(mem_eq(a.ev.data, a.ev.data_len, b.ev.data, b.ev.data_len) ||
		      (mem_eq(a.ev.data, a.ev.data_len, "null", 4) && !b.ev.data_len));

	CHECK(sl_json_event_format(&b.ev, b.headers, b.n_headers, 7, 8, NULL, 0, &out2) == 0);
	CHECK(mem_eq(out1.data, out1.len, out2.data, out2.len));
out:
	sl_json_event_release(&a);
	sl_json_event_release(&b);
	sl_json_buf_release(&out1);
	sl_json_buf_release(&out2);
}

/* Next field of p[0..n) up to a 0xff byte. */
static const char *field(const uint8_t **p, size_t *n, size_t *len)
{
	const uint8_t *s = *p, *e = memchr(s, 0xff, *n);
	*len = e ? (size_t)(e - s) : *n;
	*p += *len + (e != NULL);
	*n -= *len + (e != NULL);
	return (const char *)s;
}

static void fuzz_stored(const uint8_t *p, size_t n)
{
	struct sl_event_view ev = {0};
	struct sl_json_header h = {0};
	struct sl_json_event back = {0};
	struct sl_json_buf out = {0};
	uint8_t id[SL_EVENT_ID_LEN] = {0};
	char err[256];
	uint64_t num = 0;

	for (size_t i = 0; i < 8 && n; i++, p++, n--)
		num = num << 8 | *p;
	ev.timestamp_ms = (int64_t)num;
	ev.schema_version = (uint32_t)(num >> 13);
	if (num & 1) {
		memcpy(id, &num, sizeof(num));
		ev.id = id;
	}
	ev.type = field(&p, &n, &ev.type_len);
	ev.aggregate = field(&p, &n, &ev.aggregate_len);
	h.key = field(&p, &n, &h.key_len);
	h.value = field(&p, &n, &h.value_len);
	ev.data = p; /* the rest, 0xff bytes included */
	ev.data_len = n;
	size_t nh = num & 2 ? 1 : 0;

	CHECK(sl_json_event_format(&ev, &h, nh, (uint32_t)num, num, NULL, 0, &out) == 0);
	one_line(&out);
	int rc = sl_json_event_parse(out.data, out.len, 0, NULL, &back, err, sizeof(err));
	bool parsable = ev.type_len && ev.aggregate_len && !(nh && memchr(h.key, 0, h.key_len));
	CHECK(parsable ? rc == 0 : rc == -EINVAL);
	if (rc)
		goto out;
	CHECK(back.ev.timestamp_ms == ev.timestamp_ms &&
	      back.ev.schema_version == ev.schema_version);
	CHECK(back.partition == (uint32_t)num && back.offset == num);
	CHECK(!ev.id == !back.ev.id && (!ev.id || !memcmp(ev.id, back.ev.id, SL_EVENT_ID_LEN)));
	if (ascii(ev.type, ev.type_len))
		CHECK(mem_eq(ev.type, ev.type_len, back.ev.type, back.ev.type_len));
	if (ascii(ev.aggregate, ev.aggregate_len))
		CHECK(mem_eq(ev.aggregate, ev.aggregate_len, back.ev.aggregate,
		             back.ev.aggregate_len));
	CHECK(back.n_headers == nh);
	if (nh && ascii(h.value, h.value_len))
		CHECK(
		    mem_eq(h.value, h.value_len, back.headers[0].value, back.headers[0].value_len));
	if (strstr(out.data, ",\"data_b64\":\""))
		CHECK(mem_eq(ev.data, ev.data_len, back.ev.data, back.ev.data_len));
	else
		CHECK(ev.data_len || !back.ev.data_len);
out:
	sl_json_event_release(&back);
	sl_json_buf_release(&out);
}

static void fuzz_b64(const uint8_t *p, size_t n)
{
	/* Room for decoding p (3n/4) and for decoding p's encoding (n). */
	uint8_t *dec = malloc(n + 1);
	char *enc = malloc(SL_B64_ENCODED_LEN(n) + 1);
	size_t dn = 0;

	CHECK(dec && enc);
	if (sl_b64_decode((const char *)p, n, dec, &dn) == 0) {
		CHECK(dn <= SL_B64_DECODED_MAX(n));
		CHECK(sl_b64_encode(dec, dn, enc) == n && !memcmp(enc, p, n));
	}
	size_t en = sl_b64_encode(p, n, enc);
	CHECK(en == SL_B64_ENCODED_LEN(n));
	CHECK(sl_b64_decode(enc, en, dec, &dn) == 0 && mem_eq(dec, dn, p, n));
	free(dec);
	free(enc);
}

static void fuzz_text(const char *s, size_t n)
{
	uint8_t id[SL_EVENT_ID_LEN];
	char txt[SL_UUID_STR_LEN + 1];
	int64_t ms;

	if (sl_uuid_parse(s, n, id) == 0) {
		sl_uuid_format(id, txt);
		for (size_t i = 0; i < n; i++) {
			char c = s[i] >= 'A' && s[i] <= 'F' ? (char)(s[i] | 0x20) : s[i];
			CHECK(txt[i] == c);
		}
	}
	if (sl_json_time_parse(s, n, &ms) == 0)
		CHECK(n >= 20);
	size_t at = 0;
	const char *why = NULL;
	if (sl_json_lex_check(s, n, &at, &why))
		CHECK(why && at <= n);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!size)
		return 0;
	switch (data[0] % 4) {
	case 0:
		fuzz_line((const char *)data + 1, size - 1);
		break;
	case 1:
		fuzz_stored(data + 1, size - 1);
		break;
	case 2:
		fuzz_b64(data + 1, size - 1);
		break;
	case 3:
		fuzz_text((const char *)data + 1, size - 1);
		break;
	}
	return 0;
}
