/*
 * json: the JSON faces of an event, as the CLI reads and prints them.
 *
 * `sluice produce` reads one JSON object per line and turns it into a
 * struct sl_event_view for the encoder; `sluice consume`, queries and sinks
 * print an event (a view of its encoded bytes) as one compact JSON object.
 * Alongside: canonical UUID text, v4 UUID generation from a caller-owned
 * generator, strict base64, RFC 3339 times, and a growable output buffer.
 *
 * Input object (one per line):
 *   type            string, non-empty, required
 *   aggregate       string, non-empty, required (the partition key)
 *   id              canonical UUID string (8-4-4-4-12 hex, any case);
 *                   absent: a random v4 id from the caller's generator
 *   timestamp       integer ms since the epoch, or an RFC 3339 string
 *                   ("2026-11-25T10:00:00.123Z", "...+02:00"); absent: now
 *   data            any JSON value, stored as its compact JSON text (a string
 *                   keeps its quotes, so it reads back as the same JSON)
 *   data_b64        standard base64 with padding, stored as the bytes it
 *                   decodes to; excludes `data`
 *   headers         object of string -> string
 *   schema_version  integer in [0, 2^32)
 *   partition, offset  accepted so that consume output can be produced again;
 *                   they do not choose anything, the caller decides what to
 *                   do with them (has_position)
 * Any other key is an error. `null` counts as absent for every optional key,
 * so `"data": null` and no `data` both store an empty payload. Top-level keys
 * given twice: the last one wins (json-c keeps one value per key).
 *
 * Output object (sl_json_event_format), keys in this order:
 *   id, type, aggregate, timestamp (integer ms), partition, offset,
 *   schema_version (when not 0), headers (when any), the caller's extra
 *   fields, then `data` or `data_b64`. `data` is the stored bytes as JSON
 *   when they are strict JSON (see below); an empty payload prints as
 *   `"data":null`; anything else prints as `"data_b64":"..."`. JSON data
 *   prints as json-c re-serialises it: compact (stored whitespace, newlines
 *   included, never splits a line), escapes decoded, a key given twice kept
 *   once; so bytes sent as data_b64 that happen to be JSON print as that
 *   JSON, not byte for byte, and stored "null" reads back empty. Strings that
 *   are not valid UTF-8 (type, aggregate, headers from other producers) print
 *   with U+FFFD in place of each bad byte. One '\n' ends every object, so a
 *   buffer of several events is ready to write as JSON lines.
 *
 * Strict JSON: json-c parses (JSON_TOKENER_STRICT | _VALIDATE_UTF8, whole
 * input consumed), and sl_json_lex_check() rejects what json-c 0.16 lets
 * through even in strict mode: NaN / Infinity / "1.", raw control characters
 * inside strings, overlong / surrogate / beyond-U+10FFFF UTF-8, integers
 * beyond the 64-bit range (json-c clamps them: data would change silently),
 * and "\u0000" in object keys (json-c cuts the key there). Input lines and
 * stored data go through the same test, so whatever produce accepts prints
 * back as JSON, and round trips hold: parse -> format -> parse gives the same
 * fields.
 *
 * Ownership: a struct sl_json_event owns everything its view and headers
 * point into; they stay valid until the next parse into it or its release.
 * A struct sl_json_buf owns its bytes. Both are zero-initialised to start and
 * reused across lines (no per-line allocation beyond json-c's own objects).
 *
 * Threads: no shared state; one sl_json_event / sl_json_buf / sl_uuid_rng
 * per thread. Everything else is pure.
 */
#ifndef SL_JSON_H
#define SL_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "proto/event.h"

struct json_object;
struct json_tokener;

/* ---- UUIDs ---------------------------------------------------------------- */

#define SL_UUID_STR_LEN 36 /* 8-4-4-4-12, without a NUL */

/*
 * xoshiro256** state: a fast generator (about 1 ns a draw) for unique event
 * ids, not for secrets. Seed each copy separately: a forked child that keeps
 * its parent's state repeats its parent's ids.
 */
struct sl_uuid_rng {
	uint64_t s[4];
};

/* Seed from getrandom(2). 0, or -errno when the kernel gave no entropy. */
int sl_uuid_rng_seed(struct sl_uuid_rng *rng);
/* Seed deterministically (tests, reproducible benches). */
void sl_uuid_rng_seed_u64(struct sl_uuid_rng *rng, uint64_t seed);

static inline uint64_t sl__rotl64(uint64_t x, int k)
{
	return (x << k) | (x >> (64 - k));
}

static inline uint64_t sl_uuid_rng_next(struct sl_uuid_rng *rng)
{
	uint64_t *s = rng->s;
	uint64_t r = sl__rotl64(s[1] * 5, 7) * 9;
	uint64_t t = s[1] << 17;

	s[2] ^= s[0];
	s[3] ^= s[1];
	s[1] ^= s[2];
	s[0] ^= s[3];
	s[2] ^= t;
	s[3] = sl__rotl64(s[3], 45);
	return r;
}

/* A random (version 4, RFC 9562 variant) UUID: 122 random bits. */
static inline void sl_uuid_gen_v4(struct sl_uuid_rng *rng, uint8_t out[SL_EVENT_ID_LEN])
{
	uint64_t w[2] = {sl_uuid_rng_next(rng), sl_uuid_rng_next(rng)};

	/* Random bits are random in any byte order: copy them as they lie. */
	memcpy(out, w, sizeof(w));
	out[6] = (uint8_t)((out[6] & 0x0f) | 0x40);
	out[8] = (uint8_t)((out[8] & 0x3f) | 0x80);
}

/* Canonical text only (36 chars, hyphens at 8/13/18/23, hex digits of either
 * case); any version. 0, or -EINVAL. */
int sl_uuid_parse(const char *s, size_t n, uint8_t out[SL_EVENT_ID_LEN]);
/* Lowercase canonical text; writes SL_UUID_STR_LEN chars and a NUL. */
void sl_uuid_format(const uint8_t id[SL_EVENT_ID_LEN], char out[SL_UUID_STR_LEN + 1]);

/* ---- base64 (RFC 4648 standard alphabet, with padding) --------------------- */

#define SL_B64_ENCODED_LEN(n) (((n) + 2) / 3 * 4)
#define SL_B64_DECODED_MAX(n) ((n) / 4 * 3)

/* Writes SL_B64_ENCODED_LEN(n) chars (no NUL) and returns that count. */
size_t sl_b64_encode(const uint8_t *in, size_t n, char *out);
/*
 * Decodes into out (room for SL_B64_DECODED_MAX(n) bytes); *out_len gets the
 * count. Strict: length a multiple of 4, padding only at the end, no
 * whitespace, unused bits zero (so every byte string has one encoding).
 * 0, or -EINVAL.
 */
int sl_b64_decode(const char *in, size_t n, uint8_t *out, size_t *out_len);

/* ---- times ------------------------------------------------------------------ */

/*
 * RFC 3339 date-time to ms since the epoch: YYYY-MM-DD, 'T' (or 't' or a
 * space), hh:mm:ss, optional fraction (any number of digits; truncated to
 * ms), then 'Z' / 'z' or +hh:mm / -hh:mm. Second 60 (a leap second) counts
 * as the next minute's first second. 0, or -EINVAL.
 */
int sl_json_time_parse(const char *s, size_t n, int64_t *ms);

/* ---- output buffer ---------------------------------------------------------- */

/*
 * Growable output. Start zeroed; `len = 0` empties it while keeping the
 * memory. data[len] is always a NUL once anything was written.
 */
struct sl_json_buf {
	char *data;
	size_t len;
	size_t cap;
	struct json_tokener *sl__tok; /* reused to test stored data */
};

void sl_json_buf_release(struct sl_json_buf *b);
/* Room for n more bytes after data[len] (and the NUL past them), for callers
 * that write in place and then advance len. 0, or -ENOMEM. */
int sl_json_buf_reserve(struct sl_json_buf *b, size_t n);
/* Appends raw bytes. 0, or -ENOMEM. */
int sl_json_buf_put_raw(struct sl_json_buf *b, const void *p, size_t n);
/* Appends a JSON string (quotes, escapes, U+FFFD for bad UTF-8). 0 or -ENOMEM. */
int sl_json_buf_put_str(struct sl_json_buf *b, const char *s, size_t n);

/*
 * The strictness json-c lacks (see top): a lexical pass over JSON text.
 * 0 when it passes; -EINVAL otherwise, with *at the byte offset and *why a
 * static reason. Structure (nesting, commas) is json-c's job, not this one's.
 */
int sl_json_lex_check(const char *s, size_t n, size_t *at, const char **why);

/* ---- events ----------------------------------------------------------------- */

struct sl_json_header {
	const char *key;
	size_t key_len;
	const char *value;
	size_t value_len;
};

/*
 * Values nested deeper than this are refused: json-c's count, where the
 * line's own object is a level and so is a scalar inside a container
 * ({"data":[1]} is 3 deep). Stored data prints as JSON up to one level less,
 * what fits under a line's object: data taken from a line always prints as
 * JSON, and printed data always fits in a line.
 */
#define SL_JSON_MAX_DEPTH 64

struct sl_json_event {
	struct sl_event_view ev; /* raw/raw_len NULL; n_headers = n_headers */
	struct sl_json_header *headers;
	size_t n_headers;
	bool has_position; /* the line carried partition / offset */
	uint32_t partition;
	uint64_t offset;

	/* private: storage the fields above point into */
	struct json_tokener *sl__tok;
	struct json_object *sl__root;
	uint8_t sl__id[SL_EVENT_ID_LEN];
	uint8_t *sl__bytes; /* decoded data_b64 */
	size_t sl__bytes_cap;
	size_t sl__headers_cap;
};

/*
 * Parse one line (a trailing "\n" or "\r\n" is fine) into *out, replacing
 * what it held. now_ms fills a missing timestamp; rng a missing id (NULL:
 * ev.id stays NULL for the caller to fill).
 *
 * 0 on success. -ENODATA for an empty or all-whitespace line (skip it),
 * -EINVAL for a bad line, with err naming the key, e.g. "'aggregate' must be
 * a string" (the caller prefixes "line N: "), -ENOMEM. After an error *out
 * holds no event but stays reusable.
 */
int sl_json_event_parse(const char *line, size_t len, int64_t now_ms, struct sl_uuid_rng *rng,
                        struct sl_json_event *out, char *err, size_t errlen);
/* Frees everything *ev holds and zeroes it (it may be reused afterwards). */
void sl_json_event_release(struct sl_json_event *ev);

/* An extra output member: `json` is a complete JSON value, copied verbatim. */
struct sl_json_field {
	const char *key; /* NUL-terminated; escaped on output */
	const char *json;
	size_t json_len;
};

/*
 * Append one event as a compact JSON object and a '\n' to out (see top for
 * the keys). headers may be NULL when n_headers is 0; extra may be NULL when
 * n_extra is 0. 0, or -ENOMEM (out then holds its previous content).
 */
int sl_json_event_format(const struct sl_event_view *ev, const struct sl_json_header *headers,
                         size_t n_headers, uint32_t partition, uint64_t offset,
                         const struct sl_json_field *extra, size_t n_extra,
                         struct sl_json_buf *out);

#endif
