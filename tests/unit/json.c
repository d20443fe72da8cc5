#include <criterion/criterion.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/base.h"
#include "json/json.h"

#define NOW_MS 1764064800000LL /* 2025-11-25T10:00:00Z */
#define S(lit) (lit), (sizeof(lit) - 1)

/* ---- helpers ---------------------------------------------------------------- */

static char errbuf[512];

static int parse(struct sl_json_event *ev, const char *line, size_t len, struct sl_uuid_rng *rng)
{
	return sl_json_event_parse(line, len, NOW_MS, rng, ev, errbuf, sizeof(errbuf));
}

/* Parse a line that must fail with -EINVAL and exactly this message. */
static void expect_error(const char *line, const char *msg)
{
	struct sl_json_event ev = {0};
	int rc = parse(&ev, line, strlen(line), NULL);

	cr_assert_eq(rc, -EINVAL, "line %s: rc %d, err '%s'", line, rc, errbuf);
	cr_assert_str_eq(errbuf, msg, "line %s: got '%s'", line, errbuf);
	sl_json_event_release(&ev);
}

static void expect_error_prefix(const char *line, size_t len, const char *prefix)
{
	struct sl_json_event ev = {0};
	int rc = parse(&ev, line, len, NULL);

	cr_assert_eq(rc, -EINVAL, "rc %d, err '%s'", rc, errbuf);
	cr_assert(!strncmp(errbuf, prefix, strlen(prefix)), "got '%s', want '%s...'", errbuf,
	          prefix);
	sl_json_event_release(&ev);
}

static bool mem_eq(const void *a, size_t an, const void *b, size_t bn)
{
	return an == bn && (an == 0 || !memcmp(a, b, an));
}

#define assert_mem(p, n, lit)                                                                      \
	cr_assert(mem_eq((p), (n), (lit), sizeof(lit) - 1), "got '%.*s', want '%s'", (int)(n),     \
	          (const char *)(p), (lit))

/* Formats ev with partition 0 / offset 0 and no extras; returns the line. */
static const char *format(const struct sl_event_view *ev, const struct sl_json_header *h, size_t nh,
                          struct sl_json_buf *b)
{
	b->len = 0;
	cr_assert_eq(sl_json_event_format(ev, h, nh, 0, 0, NULL, 0, b), 0);
	return b->data;
}

static const char *format_data(const void *data, size_t n, struct sl_json_buf *b)
{
	struct sl_event_view ev = {
	    .type = "t",
	    .type_len = 1,
	    .aggregate = "a",
	    .aggregate_len = 1,
	    .data = data,
	    .data_len = n,
	};
	return format(&ev, NULL, 0, b);
}

/* What follows "data" or "data_b64" in a formatted line, without "}\n". */
static const char *data_part(const char *line)
{
	static char part[4096];
	const char *p = strstr(line, ",\"data");
	cr_assert(p, "no data in %s", line);
	snprintf(part, sizeof(part), "%s", p + 1);
	size_t n = strlen(part);
	cr_assert(n >= 2 && !strcmp(part + n - 2, "}\n"), "line %s", line);
	part[n - 2] = '\0';
	return part;
}

static int64_t utc_ms(int y, int mo, int d, int h, int mi, int s)
{
	struct tm tm = {.tm_year = y - 1900,
	                .tm_mon = mo - 1,
	                .tm_mday = d,
	                .tm_hour = h,
	                .tm_min = mi,
	                .tm_sec = s};
	return (int64_t)timegm(&tm) * 1000;
}

/* ---- UUIDs -------------------------------------------------------------------- */

Test(json_uuid, parse_any_case_format_lowercase)
{
	static const uint8_t want[16] = {0x12, 0x3e, 0x45, 0x67, 0xe8, 0x9b, 0x12, 0xd3,
	                                 0xa4, 0x56, 0x42, 0x66, 0x14, 0x17, 0x40, 0x00};
	const char *forms[] = {"123e4567-e89b-12d3-a456-426614174000",
	                       "123E4567-E89B-12D3-A456-426614174000",
	                       "123e4567-E89b-12D3-a456-426614174000"};
	char txt[SL_UUID_STR_LEN + 1];
	uint8_t id[16];

	for (size_t i = 0; i < SL_ARRAY_LEN(forms); i++) {
		memset(id, 0, sizeof(id));
		cr_assert_eq(sl_uuid_parse(forms[i], strlen(forms[i]), id), 0, "%s", forms[i]);
		cr_assert_arr_eq(id, want, 16);
		sl_uuid_format(id, txt);
		cr_assert_str_eq(txt, "123e4567-e89b-12d3-a456-426614174000");
	}
	memset(id, 0, sizeof(id));
	cr_assert_eq(sl_uuid_parse(S("00000000-0000-0000-0000-000000000000"), id), 0);
	memset(id, 0xff, sizeof(id));
	sl_uuid_format(id, txt);
	cr_assert_str_eq(txt, "ffffffff-ffff-ffff-ffff-ffffffffffff");
}

Test(json_uuid, rejects_everything_but_canonical_text)
{
	const char *bad[] = {
	    "",
	    "123e4567-e89b-12d3-a456-42661417400",   /* 35 */
	    "123e4567-e89b-12d3-a456-4266141740000", /* 37 */
	    "123e4567e89b12d3a456426614174000",      /* no hyphens */
	    "{123e4567-e89b-12d3-a456-426614174000}",
	    "urn:uuid:123e4567-e89b-12d3-a456-426614174000",
	    "123e4567-e89b-12d3-a456_426614174000",
	    "123e456-7e89b-12d3-a456-426614174000", /* hyphen moved */
	    "123e4567-e89b-12d3-a456-42661417400g",
	    "123e4567-e89b-12d3-a456-4266141740 0",
	    " 23e4567-e89b-12d3-a456-426614174000",
	    "+23e4567-e89b-12d3-a456-426614174000",
	    "123e4567-e89b-12d3-a456--26614174000",
	};
	uint8_t id[16] = {7};

	for (size_t i = 0; i < SL_ARRAY_LEN(bad); i++)
		cr_assert_eq(sl_uuid_parse(bad[i], strlen(bad[i]), id), -EINVAL, "%s", bad[i]);
	/* An embedded NUL is not a hex digit. */
	cr_assert_eq(sl_uuid_parse("123e4567-e89b-12d3-a456-42661417\0000", 36, id), -EINVAL);
	cr_assert_eq(id[0], 7, "a failed parse leaves the output alone");
}

static int cmp16(const void *a, const void *b)
{
	return memcmp(a, b, 16);
}

Test(json_uuid, v4_has_version_and_variant_and_does_not_repeat)
{
	enum { N = 20000 };
	static uint8_t ids[N][16];
	struct sl_uuid_rng rng;
	char txt[SL_UUID_STR_LEN + 1];
	uint8_t back[16];

	cr_assert_eq(sl_uuid_rng_seed(&rng), 0);
	for (int i = 0; i < N; i++) {
		sl_uuid_gen_v4(&rng, ids[i]);
		cr_assert_eq(ids[i][6] >> 4, 4);
		cr_assert_eq(ids[i][8] >> 6, 2);
		sl_uuid_format(ids[i], txt);
		cr_assert_eq(txt[14], '4');
		cr_assert(strchr("89ab", txt[19]));
		cr_assert_eq(sl_uuid_parse(txt, strlen(txt), back), 0);
		cr_assert_arr_eq(back, ids[i], 16);
	}
	qsort(ids, N, 16, cmp16);
	for (int i = 1; i < N; i++)
		cr_assert_neq(memcmp(ids[i - 1], ids[i], 16), 0, "duplicate id");
}

Test(json_uuid, seeding)
{
	struct sl_uuid_rng a, b, c, d;

	sl_uuid_rng_seed_u64(&a, 42);
	sl_uuid_rng_seed_u64(&b, 42);
	sl_uuid_rng_seed_u64(&c, 43);
	for (int i = 0; i < 100; i++) {
		uint64_t x = sl_uuid_rng_next(&a);
		cr_assert_eq(x, sl_uuid_rng_next(&b));
		cr_assert_neq(x, sl_uuid_rng_next(&c));
	}
	/* Seed 0 must not give the all-zero state (a fixed point). */
	sl_uuid_rng_seed_u64(&d, 0);
	cr_assert_neq(sl_uuid_rng_next(&d) | sl_uuid_rng_next(&d), 0);

	cr_assert_eq(sl_uuid_rng_seed(&a), 0);
	cr_assert_eq(sl_uuid_rng_seed(&b), 0);
	cr_assert_neq(memcmp(a.s, b.s, sizeof(a.s)), 0);
}

/* ---- base64 ------------------------------------------------------------------ */

Test(json_b64, rfc4648_vectors)
{
	static const char *const v[][2] = {
	    {"", ""},
	    {"f", "Zg=="},
	    {"fo", "Zm8="},
	    {"foo", "Zm9v"},
	    {"foob", "Zm9vYg=="},
	    {"fooba", "Zm9vYmE="},
	    {"foobar", "Zm9vYmFy"},
	};
	char enc[16];
	uint8_t dec[16];
	size_t n;

	for (size_t i = 0; i < SL_ARRAY_LEN(v); i++) {
		size_t len = strlen(v[i][0]);
		cr_assert_eq(sl_b64_encode((const uint8_t *)v[i][0], len, enc), strlen(v[i][1]));
		cr_assert(mem_eq(enc, strlen(v[i][1]), v[i][1], strlen(v[i][1])));
		cr_assert_eq(sl_b64_decode(v[i][1], strlen(v[i][1]), dec, &n), 0);
		cr_assert(mem_eq(dec, n, v[i][0], len));
	}
}

Test(json_b64, every_byte_and_length_round_trips)
{
	uint8_t in[300], dec[300];
	char enc[SL_B64_ENCODED_LEN(300)];
	size_t n;

	for (size_t i = 0; i < sizeof(in); i++)
		in[i] = (uint8_t)(i * 7 + 3);
	for (size_t len = 0; len <= sizeof(in); len++) {
		size_t e = sl_b64_encode(in, len, enc);
		cr_assert_eq(e, SL_B64_ENCODED_LEN(len));
		cr_assert_eq(sl_b64_decode(enc, e, dec, &n), 0, "len %zu", len);
		cr_assert(mem_eq(dec, n, in, len), "len %zu", len);
		cr_assert_leq(n, SL_B64_DECODED_MAX(e));
	}
}

Test(json_b64, rejects_bad_input)
{
	const char *bad[] = {
	    "Zg=",                          /* not a multiple of 4 */
	    "Zg",                           /* unpadded */
	    "Zg=a",                         /* data after padding */
	    "Z===",                         /* too much padding */
	    "====",    "=Zg=",  "Zg==Zg==", /* padding inside */
	    "Zh==",                         /* non-zero unused bits: "Zg==" is the encoding */
	    "Zm9=",                         /* likewise, "Zm8=" */
	    "Zm9v\n",  "Zm9 v", "Zm9vYg==\n", "-_8=", /* URL-safe alphabet */
	    "Zm9\xc3",
	};
	uint8_t dec[16];
	size_t n;

	for (size_t i = 0; i < SL_ARRAY_LEN(bad); i++)
		cr_assert_eq(sl_b64_decode(bad[i], strlen(bad[i]), dec, &n), -EINVAL, "%s", bad[i]);
	cr_assert_eq(sl_b64_decode("Zm\0v", 4, dec, &n), -EINVAL);
}

/* ---- RFC 3339 ------------------------------------------------------------------ */

static int64_t tparse(const char *s)
{
	int64_t ms = 0x5a5a;
	cr_assert_eq(sl_json_time_parse(s, strlen(s), &ms), 0, "%s", s);
	return ms;
}

Test(json_time, rfc3339_forms)
{
	int64_t base = utc_ms(2026, 11, 25, 10, 0, 0);

	cr_assert_eq(tparse("1970-01-01T00:00:00Z"), 0);
	cr_assert_eq(tparse("2026-11-25T10:00:00Z"), base);
	cr_assert_eq(tparse("2026-11-25T10:00:00.123Z"), base + 123);
	cr_assert_eq(tparse("2026-11-25t10:00:00.123z"), base + 123);
	cr_assert_eq(tparse("2026-11-25 10:00:00.123Z"), base + 123);
	cr_assert_eq(tparse("2026-11-25T10:00:00.5Z"), base + 500);
	cr_assert_eq(tparse("2026-11-25T10:00:00.12Z"), base + 120);
	cr_assert_eq(tparse("2026-11-25T10:00:00.123999999Z"), base + 123); /* truncated */
	cr_assert_eq(tparse("2026-11-25T12:00:00.123+02:00"), base + 123);
	cr_assert_eq(tparse("2026-11-25T04:30:00-05:30"), base);
	cr_assert_eq(tparse("2026-11-25T10:00:00-00:00"), base);
	cr_assert_eq(tparse("2026-11-26T00:00:00+14:00"), base);
	cr_assert_eq(tparse("1969-12-31T23:59:59.999Z"), -1);
	cr_assert_eq(tparse("0000-01-01T00:00:00Z"), -62167219200000LL);
	cr_assert_eq(tparse("9999-12-31T23:59:59.999Z"), 253402300799999LL);
	cr_assert_eq(tparse("2024-02-29T00:00:00Z"), utc_ms(2024, 2, 29, 0, 0, 0));
	cr_assert_eq(tparse("2000-02-29T00:00:00Z"), utc_ms(2000, 2, 29, 0, 0, 0));
	/* A leap second reads as the next minute's first second. */
	cr_assert_eq(tparse("2016-12-31T23:59:60Z"), utc_ms(2017, 1, 1, 0, 0, 0));
}

Test(json_time, agrees_with_timegm)
{
	/* Every 13th day over 1900..2200 at a varying time of day. */
	for (int64_t day = -25567; day < 84006; day += 13) {
		time_t t = (time_t)(day * 86400 + (day * 7919) % 86400);
		struct tm tm;
		char s[64];
		gmtime_r(&t, &tm);
		strftime(s, sizeof(s), "%Y-%m-%dT%H:%M:%SZ", &tm);
		cr_assert_eq(tparse(s), (int64_t)t * 1000, "%s", s);
	}
}

Test(json_time, rejects_invalid)
{
	const char *bad[] = {
	    "",
	    "2026-11-25",
	    "2026-11-25T10:00:00",   /* no offset */
	    "2026-11-25T10:00Z",     /* no seconds */
	    "2026-11-25T10:00:00.Z", /* empty fraction */
	    "2026-11-25T10:00:00.123",
	    "2026-11-25T10:00:00+0200", /* offset without colon */
	    "2026-11-25T10:00:00+02",
	    "2026-11-25T10:00:00+24:00",
	    "2026-11-25T10:00:00+02:60",
	    "2026-11-25T10:00:00Zx",
	    "2026-11-25T10:00:00Z ",
	    " 2026-11-25T10:00:00Z",
	    "2026-13-01T10:00:00Z",
	    "2026-00-01T10:00:00Z",
	    "2026-11-00T10:00:00Z",
	    "2026-11-31T10:00:00Z",
	    "2023-02-29T10:00:00Z",
	    "1900-02-29T10:00:00Z",
	    "2026-11-25T24:00:00Z",
	    "2026-11-25T10:60:00Z",
	    "2026-11-25T10:00:61Z",
	    "2026-11-25X10:00:00Z",
	    "26-11-25T10:00:00Z",
	    "+2026-11-25T10:00:00Z",
	    "2026-1-25T10:00:00Z",
	    "2026/11/25T10:00:00Z",
	    "yesterday",
	    "1732528800000",
	};
	int64_t ms = 77;

	for (size_t i = 0; i < SL_ARRAY_LEN(bad); i++)
		cr_assert_eq(sl_json_time_parse(bad[i], strlen(bad[i]), &ms), -EINVAL, "%s",
		             bad[i]);
	cr_assert_eq(ms, 77);
}

/* ---- strict lexical check ------------------------------------------------------ */

Test(json_lex, accepts_json)
{
	const char *good[] = {
	    "{}",
	    "[]",
	    "0",
	    "-0",
	    "1.5",
	    "-1.5e-3",
	    "1E+9",
	    "1e400",
	    "true",
	    "false",
	    "null",
	    "\"\"",
	    "\"\\u0000 in a value\"",
	    "\"\\ud83d\\ude00\"",
	    "\"é😀\"",
	    "18446744073709551615",
	    "-9223372036854775808",
	    "9223372036854775808",
	    "{\"a\" : [1, 2, {\"b\": null}] }\n",
	    " \t\r\n[1]",
	    "\"\\\"\\\\\\/\\b\\f\\n\\r\\t\"",
	};
	for (size_t i = 0; i < SL_ARRAY_LEN(good); i++)
		cr_assert_eq(sl_json_lex_check(good[i], strlen(good[i]), NULL, NULL), 0, "%s",
		             good[i]);
}

Test(json_lex, rejects_what_json_c_lets_through)
{
	static const struct {
		const char *text;
		size_t at;
		const char *why;
	} bad[] = {
	    {"NaN", 0, "unexpected character"},
	    {"[Infinity]", 1, "unexpected character"},
	    {"-Infinity", 0, "not a JSON number"},
	    {"1.", 0, "not a JSON number"},
	    {"1.e5", 0, "not a JSON number"},
	    {"1e", 0, "not a JSON number"},
	    {"-", 0, "not a JSON number"},
	    {"01", 0, "number with a leading zero"},
	    {"18446744073709551616", 0, "integer beyond the 64-bit range"},
	    {"[-9223372036854775809]", 1, "integer beyond the 64-bit range"},
	    {"123456789012345678901234567890", 0, "integer beyond the 64-bit range"},
	    {"\"a\tb\"", 2, "unescaped control character in a string"},
	    {"\"a\nb\"", 2, "unescaped control character in a string"},
	    {"\"\xc0\x80\"", 1, "invalid UTF-8 in a string"},         /* overlong NUL */
	    {"\"\xed\xa0\x80\"", 1, "invalid UTF-8 in a string"},     /* surrogate */
	    {"\"\xf4\x90\x80\x80\"", 1, "invalid UTF-8 in a string"}, /* > U+10FFFF */
	    {"\"\xe2\x82\"", 1, "invalid UTF-8 in a string"},         /* truncated */
	    {"\"\xff\"", 1, "invalid UTF-8 in a string"},
	    {"{\"a\\u0000b\":1}", 11, "\\u0000 in an object key"},
	    {"\"\\x\"", 1, "bad escape in a string"},
	    {"\"\\u12G4\"", 1, "bad \\u escape in a string"},
	    {"\"\\u12\"", 1, "bad \\u escape in a string"},
	    {"\"abc", 4, "unterminated string"},
	    {"tru", 0, "unexpected word"},
	    {"nul", 0, "unexpected word"},
	    {"'a'", 0, "unexpected character"},
	    {"{} // c", 3, "unexpected character"},
	    {"\v1", 0, "unexpected character"},
	    {"\xc3\xa9", 0, "unexpected character"},
	};
	for (size_t i = 0; i < SL_ARRAY_LEN(bad); i++) {
		size_t at = 999;
		const char *why = NULL;
		cr_assert_eq(sl_json_lex_check(bad[i].text, strlen(bad[i].text), &at, &why),
		             -EINVAL, "%s", bad[i].text);
		cr_assert_str_eq(why, bad[i].why, "%s", bad[i].text);
		cr_assert_eq(at, bad[i].at, "%s: at %zu", bad[i].text, at);
	}
	cr_assert_eq(sl_json_lex_check("[1,\0]", 5, NULL, NULL), -EINVAL);
	cr_assert_eq(sl_json_lex_check("\"a\0\"", 4, NULL, NULL), -EINVAL);
}

/* ---- parse ---------------------------------------------------------------------- */

Test(json_parse, every_field)
{
	struct sl_json_event ev = {0};
	const char line[] =
	    "{\"id\":\"123E4567-E89B-12D3-A456-426614174000\",\"type\":\"OrderPlaced\","
	    "\"aggregate\":\"order-42\",\"timestamp\":\"2026-11-25T10:00:00.123Z\","
	    "\"data\":{\"total\": 12.50, \"items\": [1, 2]},\"headers\":{\"trace\":\"abc\","
	    "\"src\":\"web\"},\"schema_version\":3}\n";

	cr_assert_eq(parse(&ev, S(line), NULL), 0, "%s", errbuf);
	char id[SL_UUID_STR_LEN + 1];
	cr_assert_not_null(ev.ev.id);
	sl_uuid_format(ev.ev.id, id);
	cr_assert_str_eq(id, "123e4567-e89b-12d3-a456-426614174000");
	assert_mem(ev.ev.type, ev.ev.type_len, "OrderPlaced");
	assert_mem(ev.ev.aggregate, ev.ev.aggregate_len, "order-42");
	cr_assert_eq(ev.ev.timestamp_ms, utc_ms(2026, 11, 25, 10, 0, 0) + 123);
	assert_mem(ev.ev.data, ev.ev.data_len, "{\"total\":12.50,\"items\":[1,2]}");
	cr_assert_eq(ev.ev.schema_version, 3);
	cr_assert_eq(ev.n_headers, 2);
	cr_assert_eq(ev.ev.n_headers, 2);
	assert_mem(ev.headers[0].key, ev.headers[0].key_len, "trace");
	assert_mem(ev.headers[0].value, ev.headers[0].value_len, "abc");
	assert_mem(ev.headers[1].key, ev.headers[1].key_len, "src");
	assert_mem(ev.headers[1].value, ev.headers[1].value_len, "web");
	cr_assert_not(ev.has_position);
	cr_assert_null(ev.ev.raw);
	sl_json_event_release(&ev);
	cr_assert_null(ev.sl__root);
}

Test(json_parse, defaults)
{
	struct sl_json_event ev = {0};
	struct sl_uuid_rng rng;

	sl_uuid_rng_seed_u64(&rng, 1);
	cr_assert_eq(parse(&ev, S("{\"type\":\"t\",\"aggregate\":\"a\"}"), &rng), 0);
	cr_assert_not_null(ev.ev.id);
	cr_assert_eq(ev.ev.id[6] >> 4, 4, "a generated id is a v4 UUID");
	cr_assert_eq(ev.ev.timestamp_ms, NOW_MS);
	cr_assert_eq(ev.ev.data_len, 0);
	cr_assert_eq(ev.n_headers, 0);
	cr_assert_eq(ev.ev.schema_version, 0);

	/* Without a generator the id stays absent for the caller to fill. */
	cr_assert_eq(parse(&ev, S("{\"type\":\"t\",\"aggregate\":\"a\"}"), NULL), 0);
	cr_assert_null(ev.ev.id);

	/* null is absent for every optional key. */
	cr_assert_eq(parse(&ev,
	                   S("{\"type\":\"t\",\"aggregate\":\"a\",\"id\":null,\"timestamp\":null,"
	                     "\"data\":null,\"data_b64\":null,\"headers\":null,"
	                     "\"schema_version\":null,\"partition\":null,\"offset\":null}"),
	                   &rng),
	             0, "%s", errbuf);
	cr_assert_not_null(ev.ev.id);
	cr_assert_eq(ev.ev.timestamp_ms, NOW_MS);
	cr_assert_eq(ev.ev.data_len, 0);
	cr_assert_not(ev.has_position);
	sl_json_event_release(&ev);
}

static void expect_data(const char *data_json, const char *stored, size_t stored_len)
{
	struct sl_json_event ev = {0};
	char line[1024];
	int n = snprintf(line, sizeof(line), "{\"type\":\"t\",\"aggregate\":\"a\",\"data\":%s}",
	                 data_json);

	cr_assert_eq(parse(&ev, line, (size_t)n, NULL), 0, "%s: %s", data_json, errbuf);
	cr_assert(mem_eq(ev.ev.data, ev.ev.data_len, stored, stored_len),
	          "data %s stored as '%.*s'", data_json, (int)ev.ev.data_len, ev.ev.data);
	sl_json_event_release(&ev);
}
#define EXPECT_DATA(in, stored) expect_data((in), (stored), sizeof(stored) - 1)

Test(json_parse, data_kinds)
{
	EXPECT_DATA("{\"a\": 1, \"b\": [true, false, null], \"c\": {\"d\": \"e\"}}",
	            "{\"a\":1,\"b\":[true,false,null],\"c\":{\"d\":\"e\"}}");
	EXPECT_DATA("[1, \"two\", 3.0]", "[1,\"two\",3.0]");
	EXPECT_DATA("[]", "[]");
	EXPECT_DATA("{}", "{}");
	EXPECT_DATA("\"hello\"", "\"hello\"");
	EXPECT_DATA("\"\"", "\"\"");
	EXPECT_DATA("\"a/b \\\"q\\\" \\u00e9 \\n\"", "\"a/b \\\"q\\\" é \\n\"");
	EXPECT_DATA("\"nul \\u0000 inside\"", "\"nul \\u0000 inside\"");
	EXPECT_DATA("42", "42");
	EXPECT_DATA("-7", "-7");
	EXPECT_DATA("1.50", "1.50");
	EXPECT_DATA("1e400", "1e400");
	EXPECT_DATA("18446744073709551615", "18446744073709551615");
	EXPECT_DATA("-9223372036854775808", "-9223372036854775808");
	EXPECT_DATA("true", "true");
	EXPECT_DATA("false", "false");
	EXPECT_DATA("null", ""); /* null is absent: an empty payload */
}

Test(json_parse, data_b64_binary)
{
	struct sl_json_event ev = {0};
	static const uint8_t want[] = {0x00, 0x01, 0x02, 0xff};

	cr_assert_eq(
	    parse(&ev, S("{\"type\":\"t\",\"aggregate\":\"a\",\"data_b64\":\"AAEC/w==\"}"), NULL),
	    0, "%s", errbuf);
	cr_assert(mem_eq(ev.ev.data, ev.ev.data_len, want, sizeof(want)));
	cr_assert_eq(parse(&ev, S("{\"type\":\"t\",\"aggregate\":\"a\",\"data_b64\":\"\"}"), NULL),
	             0);
	cr_assert_eq(ev.ev.data_len, 0);
	sl_json_event_release(&ev);
}

Test(json_parse, timestamps)
{
	static const struct {
		const char *ts;
		int64_t ms;
	} t[] = {
	    {"1764064800123", 1764064800123LL},
	    {"0", 0},
	    {"-1000", -1000},
	    {"9223372036854775807", INT64_MAX},
	    {"-9223372036854775808", INT64_MIN},
	    {"\"2026-11-25T10:00:00.123Z\"", 1795600800123LL},
	    {"\"2026-11-25T12:00:00.123+02:00\"", 1795600800123LL},
	    {"\"2026-11-25T10:00:00Z\"", 1795600800000LL},
	    {"\"2026-11-25T10:00:00.1Z\"", 1795600800100LL},
	};
	struct sl_json_event ev = {0};
	char line[256];

	cr_assert_eq(utc_ms(2026, 11, 25, 10, 0, 0), 1795600800000LL);
	for (size_t i = 0; i < SL_ARRAY_LEN(t); i++) {
		int n = snprintf(line, sizeof(line),
		                 "{\"type\":\"t\",\"aggregate\":\"a\",\"timestamp\":%s}", t[i].ts);
		cr_assert_eq(parse(&ev, line, (size_t)n, NULL), 0, "%s: %s", t[i].ts, errbuf);
		cr_assert_eq(ev.ev.timestamp_ms, t[i].ms, "%s", t[i].ts);
	}
	sl_json_event_release(&ev);
}

Test(json_parse, position_from_consume_output)
{
	struct sl_json_event ev = {0};

	cr_assert_eq(parse(&ev,
	                   S("{\"type\":\"t\",\"aggregate\":\"a\",\"partition\":4294967295,"
	                     "\"offset\":18446744073709551615}"),
	                   NULL),
	             0, "%s", errbuf);
	cr_assert(ev.has_position);
	cr_assert_eq(ev.partition, UINT32_MAX);
	cr_assert_eq(ev.offset, UINT64_MAX);
	sl_json_event_release(&ev);
}

Test(json_parse, line_endings_and_blank_lines)
{
	struct sl_json_event ev = {0};
	const char *blank[] = {"", " ", "\n", "\r\n", " \t \r\n"};

	cr_assert_eq(parse(&ev, S("{\"type\":\"t\",\"aggregate\":\"a\"}\r\n"), NULL), 0);
	cr_assert_eq(parse(&ev, S("  {\"type\":\"t\",\"aggregate\":\"a\"}  \n"), NULL), 0);
	for (size_t i = 0; i < SL_ARRAY_LEN(blank); i++) {
		cr_assert_eq(parse(&ev, blank[i], strlen(blank[i]), NULL), -ENODATA, "'%s'",
		             blank[i]);
		cr_assert_str_eq(errbuf, "blank line");
	}
	/* \v is not JSON whitespace: not blank, and not JSON either. */
	cr_assert_eq(parse(&ev, S("\v"), NULL), -EINVAL);
	sl_json_event_release(&ev);
}

Test(json_parse, duplicate_keys_last_wins)
{
	struct sl_json_event ev = {0};

	cr_assert_eq(parse(&ev, S("{\"type\":\"x\",\"aggregate\":\"a\",\"type\":\"y\"}"), NULL), 0);
	assert_mem(ev.ev.type, ev.ev.type_len, "y");
	sl_json_event_release(&ev);
}

Test(json_parse, error_messages)
{
#define BASE "\"type\":\"t\",\"aggregate\":\"a\""
	expect_error("[1]", "a line must be a JSON object, not an array");
	expect_error("\"x\"", "a line must be a JSON object, not a string");
	expect_error("42", "a line must be a JSON object, not an integer");
	expect_error("null", "a line must be a JSON object, not null");
	expect_error("true", "a line must be a JSON object, not a boolean");
	expect_error("{\"type\":\"t\"}", "'aggregate' is required");
	expect_error("{\"aggregate\":\"a\"}", "'type' is required");
	expect_error("{}", "'type' is required");
	expect_error("{\"type\":1,\"aggregate\":\"a\"}", "'type' must be a string, not an integer");
	expect_error("{\"type\":null,\"aggregate\":\"a\"}", "'type' is required");
	expect_error("{\"type\":\"\",\"aggregate\":\"a\"}", "'type' must not be empty");
	expect_error("{\"type\":\"t\",\"aggregate\":[]}",
	             "'aggregate' must be a string, not an array");
	expect_error("{\"type\":\"t\",\"aggregate\":\"\"}", "'aggregate' must not be empty");
	expect_error("{" BASE ",\"id\":5}", "'id' must be a string (a UUID), not an integer");
	expect_error("{" BASE ",\"id\":\"xyz\"}",
	             "'id' is not a UUID: \"xyz\" (want 8-4-4-4-12 hex digits)");
	expect_error("{" BASE ",\"id\":\"123e4567e89b12d3a456426614174000\"}",
	             "'id' is not a UUID: \"123e4567e89b12d3a456426614174000\" (want 8-4-4-4-12 "
	             "hex digits)");
	expect_error("{" BASE ",\"timestamp\":\"yesterday\"}",
	             "'timestamp' is not an RFC 3339 time: \"yesterday\" (want e.g. "
	             "\"2026-11-25T10:00:00.123Z\")");
	expect_error("{" BASE ",\"timestamp\":\"2026-11-25T10:00:00\"}",
	             "'timestamp' is not an RFC 3339 time: \"2026-11-25T10:00:00\" (want e.g. "
	             "\"2026-11-25T10:00:00.123Z\")");
	expect_error("{" BASE ",\"timestamp\":1.5}",
	             "'timestamp' must be an integer (ms since the epoch, 64-bit) or an RFC 3339 "
	             "string, not a fractional number");
	expect_error("{" BASE ",\"timestamp\":9223372036854775808}",
	             "'timestamp' is beyond the 64-bit range");
	expect_error("{" BASE ",\"timestamp\":{}}",
	             "'timestamp' must be an integer (ms since the epoch, 64-bit) or an RFC 3339 "
	             "string, not an object");
	expect_error("{" BASE ",\"timestamp\":true}",
	             "'timestamp' must be an integer (ms since the epoch, 64-bit) or an RFC 3339 "
	             "string, not a boolean");
	expect_error("{" BASE ",\"data\":1,\"data_b64\":\"AA==\"}",
	             "'data' and 'data_b64' are mutually exclusive");
	expect_error("{" BASE ",\"data_b64\":5}", "'data_b64' must be a string, not an integer");
	expect_error("{" BASE ",\"data_b64\":\"!!\"}",
	             "'data_b64' is not valid base64 (standard alphabet, with padding): \"!!\"");
	expect_error("{" BASE ",\"data_b64\":\"AA\"}",
	             "'data_b64' is not valid base64 (standard alphabet, with padding): \"AA\"");
	expect_error("{" BASE ",\"headers\":[]}",
	             "'headers' must be an object of strings, not an array");
	expect_error("{" BASE ",\"headers\":{\"k\":1}}",
	             "'headers.k' must be a string, not an integer");
	expect_error("{" BASE ",\"headers\":{\"k\":null}}",
	             "'headers.k' must be a string, not null");
	expect_error("{" BASE ",\"schema_version\":-1}",
	             "'schema_version' must be an integer in [0, 4294967295]");
	expect_error("{" BASE ",\"schema_version\":4294967296}",
	             "'schema_version' must be an integer in [0, 4294967295]");
	expect_error("{" BASE ",\"schema_version\":\"1\"}",
	             "'schema_version' must be an integer in [0, 4294967295]");
	expect_error("{" BASE ",\"partition\":-1}",
	             "'partition' must be an integer in [0, 4294967295]");
	expect_error("{" BASE ",\"offset\":1.0}", "'offset' must be a non-negative integer");
	expect_error("{" BASE ",\"foo\":1}", "unknown key 'foo'");
	expect_error("{" BASE ",\"Type\":1}", "unknown key 'Type'");
	expect_error("{" BASE ",\"a\\nb\\u00e9\":1}", "unknown key 'a\\x0ab\\xc3\\xa9'");
	char line[256], msg[128];
	memset(msg, 0, sizeof(msg));
	snprintf(line, sizeof(line), "{" BASE ",\"%0100d\":1}", 0);
	snprintf(msg, sizeof(msg), "unknown key '%072d...'", 0);
	expect_error(line, msg); /* long keys are cut short */
	/* Syntax errors: byte offsets into the line. */
	expect_error("{\"type\":", "invalid JSON at byte 8: unexpected end of data");
	expect_error("{\"type\" \"t\"}",
	             "invalid JSON at byte 8: object property name separator ':' expected");
	expect_error("{" BASE "} {}", "invalid JSON at byte 29: text after the JSON value");
	expect_error("{" BASE "}x", "invalid JSON at byte 28: unexpected character");
	expect_error("{" BASE ",\"data\":NaN}", "invalid JSON at byte 35: unexpected character");
	expect_error("{" BASE ",\"data\":1.}", "invalid JSON at byte 35: not a JSON number");
	expect_error("{" BASE ",\"data\":[1,]}", "invalid JSON at byte 38: unexpected character");
	expect_error("{" BASE ",\"data\":123456789012345678901234567890}",
	             "invalid JSON at byte 35: integer beyond the 64-bit range");
	expect_error("{" BASE ",\"data\":\"a\tb\"}",
	             "invalid JSON at byte 37: unescaped control character in a string");
	expect_error("{" BASE ",\"data\":\"\xff\"}",
	             "invalid JSON at byte 36: invalid UTF-8 in a string");
	expect_error("{" BASE ",\"data\":{\"k\\u0000\":1}}",
	             "invalid JSON at byte 45: \\u0000 in an object key");
	expect_error("{'type':'t'}", "invalid JSON at byte 1: unexpected character");
#undef BASE
}

Test(json_parse, embedded_nul_in_line)
{
	expect_error_prefix(S("{\"type\":\"t\",\"aggregate\":\"a\"}\0"),
	                    "invalid JSON at byte 28: unexpected character");
	expect_error_prefix(S("{\"type\":\"t\0\",\"aggregate\":\"a\"}"),
	                    "invalid JSON at byte 10: unescaped control character");
}

static size_t nested_line(char *buf, size_t cap, int depth)
{
	size_t n = (size_t)snprintf(buf, cap, "{\"type\":\"t\",\"aggregate\":\"a\",\"data\":");
	for (int i = 0; i < depth; i++)
		buf[n++] = '[';
	for (int i = 0; i < depth; i++)
		buf[n++] = ']';
	buf[n++] = '}';
	cr_assert_lt(n, cap);
	return n;
}

Test(json_parse, nesting_limit)
{
	struct sl_json_event ev = {0};
	char line[512];
	size_t n;

	/* The line's own object is one level: data gets the rest. */
	n = nested_line(line, sizeof(line), SL_JSON_MAX_DEPTH - 1);
	cr_assert_eq(parse(&ev, line, n, NULL), 0, "%s", errbuf);
	cr_assert_eq(ev.ev.data_len, 2 * (SL_JSON_MAX_DEPTH - 1));
	n = nested_line(line, sizeof(line), SL_JSON_MAX_DEPTH);
	cr_assert_eq(parse(&ev, line, n, NULL), -EINVAL);
	cr_assert(strstr(errbuf, "nesting too deep"), "%s", errbuf);
	sl_json_event_release(&ev);
}

Test(json_parse, reuse_after_errors)
{
	struct sl_json_event ev = {0};
	char line[256];
	size_t cap_after_first;

	for (int i = 0; i < 1000; i++) {
		int n;
		if (i % 3 == 2) {
			n = snprintf(line, sizeof(line), "{\"type\":\"t\",\"aggregate\":%d}", i);
			cr_assert_eq(parse(&ev, line, (size_t)n, NULL), -EINVAL);
			cr_assert_null(ev.sl__root);
			cr_assert_null(ev.ev.type);
			continue;
		}
		n = snprintf(line, sizeof(line),
		             "{\"type\":\"t%d\",\"aggregate\":\"a\",\"headers\":{\"a\":\"1\","
		             "\"b\":\"2\",\"c\":\"3\"},\"data_b64\":\"AAECAw==\"}",
		             i);
		cr_assert_eq(parse(&ev, line, (size_t)n, NULL), 0, "%s", errbuf);
		cr_assert_eq(ev.n_headers, 3);
		cr_assert_eq(ev.ev.data_len, 4);
		if (i == 0)
			cap_after_first = ev.sl__headers_cap;
		cr_assert_eq(ev.sl__headers_cap, cap_after_first, "headers array reused");
	}
	sl_json_event_release(&ev);
	/* Released: zeroed and usable again. */
	cr_assert_eq(parse(&ev, S("{\"type\":\"t\",\"aggregate\":\"a\"}"), NULL), 0);
	sl_json_event_release(&ev);
}

/* ---- format ---------------------------------------------------------------------- */

Test(json_format, full_event)
{
	static const uint8_t id[16] = {0x12, 0x3e, 0x45, 0x67, 0xe8, 0x9b, 0x12, 0xd3,
	                               0xa4, 0x56, 0x42, 0x66, 0x14, 0x17, 0x40, 0x00};
	struct sl_event_view ev = {
	    .id = id,
	    .type = "OrderPlaced",
	    .type_len = 11,
	    .aggregate = "order-42",
	    .aggregate_len = 8,
	    .timestamp_ms = 1795600800123LL,
	    .data = (const uint8_t *)"{\"total\": 12.50,\n \"items\": [1, 2]}",
	    .data_len = 34,
	    .schema_version = 7,
	};
	struct sl_json_header h[] = {{"trace", 5, "abc", 3}, {"src", 3, "web", 3}};
	struct sl_json_field extra[] = {{"token", "\"3:17\"", 6}};
	struct sl_json_buf b = {0};

	cr_assert_eq(sl_json_event_format(&ev, h, 2, 3, 17, extra, 1, &b), 0);
	cr_assert_str_eq(
	    b.data,
	    "{\"id\":\"123e4567-e89b-12d3-a456-426614174000\",\"type\":\"OrderPlaced\","
	    "\"aggregate\":\"order-42\",\"timestamp\":1795600800123,\"partition\":3,"
	    "\"offset\":17,\"schema_version\":7,\"headers\":{\"trace\":\"abc\","
	    "\"src\":\"web\"},\"token\":\"3:17\",\"data\":{\"total\":12.50,\"items\":[1,2]}}\n");
	cr_assert_eq(b.len, strlen(b.data));
	sl_json_buf_release(&b);
}

Test(json_format, minimal_event_and_extremes)
{
	struct sl_event_view ev = {.type = "t",
	                           .type_len = 1,
	                           .aggregate = "a",
	                           .aggregate_len = 1,
	                           .timestamp_ms = INT64_MIN};
	struct sl_json_buf b = {0};

	cr_assert_eq(sl_json_event_format(&ev, NULL, 0, UINT32_MAX, UINT64_MAX, NULL, 0, &b), 0);
	cr_assert_str_eq(b.data,
	                 "{\"type\":\"t\",\"aggregate\":\"a\",\"timestamp\":-9223372036854775808,"
	                 "\"partition\":4294967295,\"offset\":18446744073709551615,"
	                 "\"data\":null}\n");
	sl_json_buf_release(&b);
}

Test(json_format, appends_lines)
{
	struct sl_event_view ev = {
	    .type = "t", .type_len = 1, .aggregate = "a", .aggregate_len = 1};
	struct sl_json_buf b = {0};

	for (uint64_t off = 0; off < 100; off++)
		cr_assert_eq(sl_json_event_format(&ev, NULL, 0, 0, off, NULL, 0, &b), 0);
	size_t lines = 0;
	for (size_t i = 0; i < b.len; i++)
		lines += b.data[i] == '\n';
	cr_assert_eq(lines, 100);
	cr_assert(strstr(b.data, "\"offset\":99,"));
	size_t cap = b.cap;
	b.len = 0;
	cr_assert_eq(sl_json_event_format(&ev, NULL, 0, 0, 0, NULL, 0, &b), 0);
	cr_assert_eq(b.cap, cap, "emptying keeps the memory");
	sl_json_buf_release(&b);
}

Test(json_format, data_as_json_or_base64)
{
	struct sl_json_buf b = {0};

	cr_assert_str_eq(data_part(format_data("", 0, &b)), "\"data\":null");
	cr_assert_str_eq(data_part(format_data(S("null"), &b)), "\"data\":null");
	cr_assert_str_eq(data_part(format_data(S(" {\"a\" :\r\n [1, 2.50] }\n"), &b)),
	                 "\"data\":{\"a\":[1,2.50]}");
	cr_assert_str_eq(data_part(format_data(S("\"hi\""), &b)), "\"data\":\"hi\"");
	cr_assert_str_eq(data_part(format_data(S("\"a\\/b\\u00e9\""), &b)), "\"data\":\"a/bé\"");
	cr_assert_str_eq(data_part(format_data(S("3"), &b)), "\"data\":3");
	cr_assert_str_eq(data_part(format_data(S("-1.5e3"), &b)), "\"data\":-1.5e3");
	cr_assert_str_eq(data_part(format_data(S("false"), &b)), "\"data\":false");
	cr_assert_str_eq(data_part(format_data(S("[]"), &b)), "\"data\":[]");
	cr_assert_str_eq(data_part(format_data(S("\"x\\u0000y\""), &b)), "\"data\":\"x\\u0000y\"");
	/* Not strict JSON: base64. */
	cr_assert_str_eq(data_part(format_data(S("\x00\x01\x02\xff"), &b)),
	                 "\"data_b64\":\"AAEC/w==\"");
	cr_assert_str_eq(data_part(format_data(S("hello"), &b)), "\"data_b64\":\"aGVsbG8=\"");
	cr_assert_str_eq(data_part(format_data(S("\"\xff\""), &b)), "\"data_b64\":\"Iv8i\"");
	cr_assert_str_eq(data_part(format_data(S("{}\0"), &b)), "\"data_b64\":\"e30A\"");
	cr_assert_str_eq(data_part(format_data(S("\"a\0b\""), &b)), "\"data_b64\":\"ImEAYiI=\"");
	cr_assert_str_eq(data_part(format_data(S("{} {}"), &b)), "\"data_b64\":\"e30ge30=\"");
	cr_assert_str_eq(data_part(format_data(S("NaN"), &b)), "\"data_b64\":\"TmFO\"");
	cr_assert_str_eq(data_part(format_data(S("1."), &b)), "\"data_b64\":\"MS4=\"");
	cr_assert_str_eq(data_part(format_data(S("[1,]"), &b)), "\"data_b64\":\"WzEsXQ==\"");
	cr_assert_str_eq(data_part(format_data(S("\"a\tb\""), &b)), "\"data_b64\":\"ImEJYiI=\"");
	cr_assert_str_eq(data_part(format_data(S("99999999999999999999"), &b)),
	                 "\"data_b64\":\"OTk5OTk5OTk5OTk5OTk5OTk5OTk=\"");
	cr_assert_str_eq(data_part(format_data(S("\"\xed\xa0\x80\""), &b)),
	                 "\"data_b64\":\"Iu2ggCI=\"");
	cr_assert_str_eq(data_part(format_data(S(" "), &b)), "\"data_b64\":\"IA==\"");
	sl_json_buf_release(&b);
}

Test(json_format, data_nesting_limit)
{
	char data[2 * SL_JSON_MAX_DEPTH + 2];
	struct sl_json_buf b = {0};

	/* Empty arrays: one level each (see SL_JSON_MAX_DEPTH). */
	for (int depth = SL_JSON_MAX_DEPTH - 1; depth <= SL_JSON_MAX_DEPTH; depth++) {
		memset(data, '[', (size_t)depth);
		memset(data + depth, ']', (size_t)depth);
		const char *p = data_part(format_data(data, 2 * (size_t)depth, &b));
		if (depth == SL_JSON_MAX_DEPTH - 1)
			cr_assert(!strncmp(p, "\"data\":[[[", 10), "%s", p);
		else
			cr_assert(!strncmp(p, "\"data_b64\":", 11), "%s", p);
	}
	sl_json_buf_release(&b);
}

Test(json_format, strings_escaped_and_utf8_repaired)
{
	struct sl_event_view ev = {
	    .type = "q\"b\\s/\n\t\x01\x7f",
	    .type_len = 10,
	    .aggregate = "ok é \xff bad \xc3 \xe2\x82 end\0x",
	    .aggregate_len = 22,
	};
	struct sl_json_header h[] = {{"k\0", 2, "v\x1f", 2}};
	struct sl_json_buf b = {0};

	cr_assert_eq(sl_json_event_format(&ev, h, 1, 0, 0, NULL, 0, &b), 0);
	cr_assert_str_eq(b.data,
	                 "{\"type\":\"q\\\"b\\\\s/\\n\\t\\u0001\x7f\","
	                 "\"aggregate\":\"ok é \\ufffd bad \\ufffd \\ufffd\\ufffd end\\u0000x\","
	                 "\"timestamp\":0,\"partition\":0,\"offset\":0,"
	                 "\"headers\":{\"k\\u0000\":\"v\\u001f\"},\"data\":null}\n");
	/* Whatever the bytes, the line is JSON json-c accepts. */
	struct json_object *o = json_tokener_parse(b.data);
	cr_assert_not_null(o);
	json_object_put(o);
	sl_json_buf_release(&b);
}

/* ---- round trips ------------------------------------------------------------------ */

static void assert_same_event(const struct sl_json_event *a, const struct sl_json_event *b)
{
	cr_assert(mem_eq(a->ev.type, a->ev.type_len, b->ev.type, b->ev.type_len));
	cr_assert(
	    mem_eq(a->ev.aggregate, a->ev.aggregate_len, b->ev.aggregate, b->ev.aggregate_len));
	cr_assert_eq(a->ev.timestamp_ms, b->ev.timestamp_ms);
	cr_assert_eq(!a->ev.id, !b->ev.id);
	if (a->ev.id)
		cr_assert_arr_eq(a->ev.id, b->ev.id, 16);
	cr_assert(mem_eq(a->ev.data, a->ev.data_len, b->ev.data, b->ev.data_len),
	          "data '%.*s' vs '%.*s'", (int)a->ev.data_len, a->ev.data, (int)b->ev.data_len,
	          b->ev.data);
	cr_assert_eq(a->ev.schema_version, b->ev.schema_version);
	cr_assert_eq(a->n_headers, b->n_headers);
	for (size_t i = 0; i < a->n_headers; i++) {
		cr_assert(mem_eq(a->headers[i].key, a->headers[i].key_len, b->headers[i].key,
		                 b->headers[i].key_len));
		cr_assert(mem_eq(a->headers[i].value, a->headers[i].value_len, b->headers[i].value,
		                 b->headers[i].value_len));
	}
}

static void round_trip(const char *line, size_t len)
{
	struct sl_json_event a = {0}, b = {0};
	struct sl_json_buf out = {0};
	struct sl_uuid_rng rng;

	sl_uuid_rng_seed_u64(&rng, 9);
	cr_assert_eq(parse(&a, line, len, &rng), 0, "%.*s: %s", (int)len, line, errbuf);
	cr_assert_eq(sl_json_event_format(&a.ev, a.headers, a.n_headers, 5, 6, NULL, 0, &out), 0);
	cr_assert_eq(out.data[out.len - 1], '\n');
	cr_assert_eq(memchr(out.data, '\n', out.len), out.data + out.len - 1, "one line");
	cr_assert_eq(parse(&b, out.data, out.len, NULL), 0, "%s: %s", out.data, errbuf);
	assert_same_event(&a, &b);
	cr_assert(b.has_position);
	cr_assert_eq(b.partition, 5);
	cr_assert_eq(b.offset, 6);
	sl_json_event_release(&a);
	sl_json_event_release(&b);
	sl_json_buf_release(&out);
}
#define ROUND_TRIP(lit) round_trip((lit), sizeof(lit) - 1)

Test(json_roundtrip, lines)
{
	ROUND_TRIP("{\"type\":\"t\",\"aggregate\":\"a\"}");
	ROUND_TRIP("{\"type\":\"OrderPlaced\",\"aggregate\":\"order-1\",\"id\":"
	           "\"AAAAAAAA-bbbb-4ccc-8ddd-EEEEEEEEEEEE\",\"timestamp\":\"2026-11-25T10:00:00."
	           "123+02:00\","
	           "\"data\":{\"n\":[1,2.5e10,-0.0,\"x\\ny\"],\"o\":{}},\"headers\":{\"h1\":\"v1\","
	           "\"\":\"\",\"é\":\"\\u0000\"},\"schema_version\":4294967295}");
	ROUND_TRIP("{\"type\":\"t\",\"aggregate\":\"a\",\"data\":\"just a string\"}");
	ROUND_TRIP("{\"type\":\"t\",\"aggregate\":\"a\",\"data\":\"\"}");
	ROUND_TRIP("{\"type\":\"t\",\"aggregate\":\"a\",\"data\":12345678901234567890}");
	ROUND_TRIP("{\"type\":\"t\",\"aggregate\":\"a\",\"data\":-9223372036854775808}");
	ROUND_TRIP("{\"type\":\"t\",\"aggregate\":\"a\",\"data\":1e400}");
	ROUND_TRIP("{\"type\":\"t\",\"aggregate\":\"a\",\"data\":null}");
	ROUND_TRIP("{\"type\":\"t\",\"aggregate\":\"a\",\"data\":true}");
	ROUND_TRIP("{\"type\":\"t\",\"aggregate\":\"a\",\"data\":\"\\ud83d\\ude00 \\ud800\"}");
	ROUND_TRIP("{\"type\":\"t\",\"aggregate\":\"a\",\"data_b64\":\"AAEC/w==\"}");
	ROUND_TRIP("{\"type\":\"t\",\"aggregate\":\"a\",\"timestamp\":-9223372036854775808}");
	ROUND_TRIP("{\"type\":\"\\u0000\\\"\\\\\",\"aggregate\":\"\\t😀\"}");
}

Test(json_roundtrip, binary_payloads)
{
	struct sl_uuid_rng rng;
	uint8_t bytes[200];
	char line[512];

	sl_uuid_rng_seed_u64(&rng, 3);
	for (size_t len = 1; len < sizeof(bytes); len += 7) {
		for (size_t i = 0; i < len; i++)
			bytes[i] = (uint8_t)sl_uuid_rng_next(&rng);
		bytes[0] = 0xff; /* never JSON, so the bytes come back as they went */
		int n = snprintf(line, sizeof(line),
		                 "{\"type\":\"t\",\"aggregate\":\"a\",\"data_b64\":\"");
		n += (int)sl_b64_encode(bytes, len, line + n);
		n += snprintf(line + n, sizeof(line) - (size_t)n, "\"}");
		round_trip(line, (size_t)n);
	}
}
