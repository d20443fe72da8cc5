/*
 * The parsers of what etcd's gateway sends: answers, error answers and
 * watch messages. Pure functions of the bytes (fuzzed by
 * tests/fuzz/etcd_answer.c). proto3 JSON: a missing field is its zero
 * value; a present field of the wrong JSON type is -EPROTO.
 */
#include <errno.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "etcd/etcd.h"
#include "json/json.h"

static int fail(char *err, size_t errlen, int ret, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int fail(char *err, size_t errlen, int ret, const char *fmt, ...)
{
	if (err && errlen) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return ret;
}

/* json-c stops at the first complete value; anything but whitespace after
 * it means the answer is not one JSON object. */
static int parse_object(const char *buf, size_t len, struct json_object **out, char *err,
                        size_t errlen)
{
	if (len > SL_ETCD_ANSWER_MAX || len > INT32_MAX)
		return fail(err, errlen, -EMSGSIZE, "answer of %zu bytes is too large", len);
	struct json_tokener *tok = json_tokener_new();
	if (!tok)
		return -ENOMEM;
	struct json_object *o = json_tokener_parse_ex(tok, buf, (int)len);
	enum json_tokener_error jerr = json_tokener_get_error(tok);
	size_t used = json_tokener_get_parse_end(tok);
	json_tokener_free(tok);
	if (!o || jerr != json_tokener_success) {
		json_object_put(o);
		return fail(err, errlen, -EPROTO, "answer is not JSON (%s)",
		            jerr == json_tokener_continue ? "it ends early"
		                                          : json_tokener_error_desc(jerr));
	}
	for (size_t i = used; i < len; i++) {
		if (buf[i] != ' ' && buf[i] != '\n' && buf[i] != '\r' && buf[i] != '\t') {
			json_object_put(o);
			return fail(err, errlen, -EPROTO, "answer has bytes after its JSON value");
		}
	}
	if (!json_object_is_type(o, json_type_object)) {
		json_object_put(o);
		return fail(err, errlen, -EPROTO, "answer is not a JSON object");
	}
	*out = o;
	return 0;
}

/* An int64 field: a JSON string of decimal digits (how the gateway sends
 * 64-bit integers) or a JSON integer (how it sends 32-bit ones, and what a
 * future version might do). Missing or null: 0. */
static int get_i64(struct json_object *o, const char *name, int64_t *v, char *err, size_t errlen)
{
	struct json_object *f;
	*v = 0;
	if (!o || !json_object_object_get_ex(o, name, &f) || !f)
		return 0;
	if (json_object_is_type(f, json_type_int)) {
		*v = json_object_get_int64(f);
		return 0;
	}
	if (!json_object_is_type(f, json_type_string))
		return fail(err, errlen, -EPROTO, "\"%s\" is not an integer", name);
	const char *s = json_object_get_string(f);
	size_t n = (size_t)json_object_get_string_len(f);
	if (n == 0 || n > 20)
		return fail(err, errlen, -EPROTO, "\"%s\" is not an integer", name);
	errno = 0;
	char *end;
	long long x = strtoll(s, &end, 10);
	/* strtoll accepts leading blanks and '+': proto3 JSON never sends them */
	if (errno || end != s + n || !(s[0] == '-' || (s[0] >= '0' && s[0] <= '9')))
		return fail(err, errlen, -EPROTO, "\"%s\" is not an integer: \"%.24s\"", name, s);
	*v = x;
	return 0;
}

static int get_bool(struct json_object *o, const char *name, bool *v, char *err, size_t errlen)
{
	struct json_object *f;
	*v = false;
	if (!o || !json_object_object_get_ex(o, name, &f) || !f)
		return 0;
	if (!json_object_is_type(f, json_type_boolean))
		return fail(err, errlen, -EPROTO, "\"%s\" is not a boolean", name);
	*v = json_object_get_boolean(f);
	return 0;
}

/* An object field: NULL when missing or null, -EPROTO when not an object. */
static int get_obj(struct json_object *o, const char *name, struct json_object **v, char *err,
                   size_t errlen)
{
	struct json_object *f;
	*v = NULL;
	if (!o || !json_object_object_get_ex(o, name, &f) || !f)
		return 0;
	if (!json_object_is_type(f, json_type_object))
		return fail(err, errlen, -EPROTO, "\"%s\" is not an object", name);
	*v = f;
	return 0;
}

static int get_array(struct json_object *o, const char *name, struct json_object **v, char *err,
                     size_t errlen)
{
	struct json_object *f;
	*v = NULL;
	if (!o || !json_object_object_get_ex(o, name, &f) || !f)
		return 0;
	if (!json_object_is_type(f, json_type_array))
		return fail(err, errlen, -EPROTO, "\"%s\" is not an array", name);
	*v = f;
	return 0;
}

static int get_header_revision(struct json_object *o, int64_t *rev, char *err, size_t errlen)
{
	struct json_object *h;
	int r = get_obj(o, "header", &h, err, errlen);
	if (r < 0)
		return r;
	return get_i64(h, "revision", rev, err, errlen);
}

/* A base64 field's string (missing: empty). */
static int get_b64(struct json_object *o, const char *name, const char **s, size_t *n, char *err,
                   size_t errlen)
{
	struct json_object *f;
	*s = "";
	*n = 0;
	if (!json_object_object_get_ex(o, name, &f) || !f)
		return 0;
	if (!json_object_is_type(f, json_type_string))
		return fail(err, errlen, -EPROTO, "\"%s\" is not a base64 string", name);
	*s = json_object_get_string(f);
	*n = (size_t)json_object_get_string_len(f);
	return 0;
}

/*
 * The kvs of an array of mvccpb.KeyValue objects (or of watch events, whose
 * "kv" holds one). Keys and values go into one block of decoded bytes, each
 * NUL-terminated; two passes: sizes, then decoding.
 */
struct kv_src {
	struct json_object *kv;
	int type; /* watch events only */
};

static int decode_kvs(struct kv_src *src, size_t n, const char *strip, size_t strip_len,
                      struct sl_etcd_kv *kvs, void **mem_out, char *err, size_t errlen)
{
	size_t total = 0;
	for (size_t i = 0; i < n; i++) {
		const char *s;
		size_t sn;
		int r = get_b64(src[i].kv, "key", &s, &sn, err, errlen);
		if (r < 0)
			return r;
		total += SL_B64_DECODED_MAX(sn) + 1;
		r = get_b64(src[i].kv, "value", &s, &sn, err, errlen);
		if (r < 0)
			return r;
		total += SL_B64_DECODED_MAX(sn) + 1;
	}
	uint8_t *mem = malloc(total ? total : 1);
	if (!mem)
		return -ENOMEM;
	uint8_t *p = mem;
	int r = 0;
	for (size_t i = 0; i < n; i++) {
		struct json_object *kv = src[i].kv;
		struct sl_etcd_kv *k = &kvs[i];
		const char *s;
		size_t sn, dn;
		memset(k, 0, sizeof(*k));
		get_b64(kv, "key", &s, &sn, NULL, 0);
		if (sl_b64_decode(s, sn, p, &dn) < 0) {
			r = fail(err, errlen, -EPROTO, "a key is not base64");
			goto out;
		}
		p[dn] = 0;
		if (dn < strip_len || memcmp(p, strip, strip_len) != 0) {
			r = fail(err, errlen, -EPROTO, "key \"%.*s\" is outside the prefix \"%s\"",
			         (int)(dn > 64 ? 64 : dn), (const char *)p, strip);
			goto out;
		}
		if (memchr(p, 0, dn)) {
			r = fail(err, errlen, -EPROTO, "a key holds a NUL byte");
			goto out;
		}
		k->key = (const char *)p + strip_len;
		k->key_len = dn - strip_len;
		p += dn + 1;
		get_b64(kv, "value", &s, &sn, NULL, 0);
		if (sl_b64_decode(s, sn, p, &dn) < 0) {
			r = fail(err, errlen, -EPROTO, "the value of key \"%s\" is not base64",
			         k->key);
			goto out;
		}
		p[dn] = 0;
		k->value = p;
		k->value_len = dn;
		p += dn + 1;
		if ((r = get_i64(kv, "create_revision", &k->create_revision, err, errlen)) < 0 ||
		    (r = get_i64(kv, "mod_revision", &k->mod_revision, err, errlen)) < 0 ||
		    (r = get_i64(kv, "version", &k->version, err, errlen)) < 0 ||
		    (r = get_i64(kv, "lease", &k->lease, err, errlen)) < 0)
			goto out;
	}
out:
	if (r < 0) {
		free(mem);
		return r;
	}
	*mem_out = mem;
	return 0;
}

/* An array of KeyValue objects into out->kvs. */
static int parse_kv_array(struct json_object *arr, const char *strip, size_t strip_len,
                          struct sl__etcd_answer *out, char *err, size_t errlen)
{
	size_t n = arr ? json_object_array_length(arr) : 0;
	if (n == 0)
		return 0;
	struct kv_src *src = calloc(n, sizeof(*src));
	out->kvs = calloc(n, sizeof(*out->kvs));
	int r = -ENOMEM;
	if (!src || !out->kvs)
		goto out;
	for (size_t i = 0; i < n; i++) {
		src[i].kv = json_object_array_get_idx(arr, i);
		if (!src[i].kv || !json_object_is_type(src[i].kv, json_type_object)) {
			r = fail(err, errlen, -EPROTO, "kvs[%zu] is not an object", i);
			goto out;
		}
	}
	r = decode_kvs(src, n, strip, strip_len, out->kvs, &out->sl__mem, err, errlen);
	if (r == 0)
		out->n_kvs = n;
out:
	free(src);
	return r;
}

void sl__etcd_answer_release(struct sl__etcd_answer *a)
{
	if (!a)
		return;
	free(a->kvs);
	free(a->sl__mem);
	memset(a, 0, sizeof(*a));
}

/* txn: "succeeded", and the kvs of the first response_range among the
 * responses (the one txn_put_if puts in its failure branch). */
static int parse_txn(struct json_object *o, const char *strip, size_t strip_len,
                     struct sl__etcd_answer *out, char *err, size_t errlen)
{
	int r = get_bool(o, "succeeded", &out->succeeded, err, errlen);
	struct json_object *resps;
	if (r < 0 || (r = get_array(o, "responses", &resps, err, errlen)) < 0 || !resps)
		return r;
	size_t n = json_object_array_length(resps);
	for (size_t i = 0; i < n; i++) {
		struct json_object *e = json_object_array_get_idx(resps, i), *rr, *kvs;
		if (!e || !json_object_is_type(e, json_type_object))
			return fail(err, errlen, -EPROTO, "responses[%zu] is not an object", i);
		if ((r = get_obj(e, "response_range", &rr, err, errlen)) < 0)
			return r;
		if (!rr || out->kvs)
			continue;
		if ((r = get_array(rr, "kvs", &kvs, err, errlen)) < 0 ||
		    (r = parse_kv_array(kvs, strip, strip_len, out, err, errlen)) < 0)
			return r;
	}
	return 0;
}

/* An election answer: a campaign's "leader" (a LeaderKey: name, key, rev,
 * lease) or a leader call's "kv" (a KeyValue) as kvs[0]; resign has
 * neither. */
static int parse_election(struct json_object *o, const char *strip, size_t strip_len,
                          struct sl__etcd_answer *out, char *err, size_t errlen)
{
	struct json_object *ld, *kv;
	int r;
	if ((r = get_obj(o, "leader", &ld, err, errlen)) < 0 ||
	    (r = get_obj(o, "kv", &kv, err, errlen)) < 0)
		return r;
	if (ld && kv)
		return fail(err, errlen, -EPROTO, "election answer has both a leader and a kv");
	if (!ld && !kv)
		return 0;
	struct kv_src src = {.kv = ld ? ld : kv};
	int64_t rev = 0, lease = 0;
	if (ld && ((r = get_i64(ld, "rev", &rev, err, errlen)) < 0 ||
	           (r = get_i64(ld, "lease", &lease, err, errlen)) < 0))
		return r;
	out->kvs = calloc(1, sizeof(*out->kvs));
	if (!out->kvs)
		return -ENOMEM;
	if ((r = decode_kvs(&src, 1, strip, strip_len, out->kvs, &out->sl__mem, err, errlen)) < 0)
		return r;
	out->n_kvs = 1;
	if (ld) {
		/* a LeaderKey has no value; "rev" is the key's create revision */
		out->kvs[0].create_revision = rev;
		out->kvs[0].lease = lease;
	}
	return 0;
}

int sl__etcd_answer_parse(enum sl__etcd_kind kind, const char *buf, size_t len, const char *strip,
                          size_t strip_len, struct sl__etcd_answer *out, char *err, size_t errlen)
{
	memset(out, 0, sizeof(*out));
	if (kind < 0 || kind >= SL__ETCD_KIND_MAX)
		return fail(err, errlen, -EINVAL, "unknown answer kind %d", (int)kind);
	struct json_object *o = NULL, *body, *kvs;
	int r = parse_object(buf, len, &o, err, errlen);
	if (r < 0)
		return r;
	body = o;
	if (kind == SL__ETCD_KEEPALIVE) {
		/* the streaming RPC's one answer, wrapped like a watch message */
		struct json_object *e;
		if ((r = get_obj(o, "error", &e, err, errlen)) < 0)
			goto out;
		if (e) {
			r = fail(err, errlen, -EPROTO, "keepalive answered an error");
			goto out;
		}
		if ((r = get_obj(o, "result", &body, err, errlen)) < 0)
			goto out;
		if (!body) {
			r = fail(err, errlen, -EPROTO, "keepalive answer has no \"result\"");
			goto out;
		}
	}
	if ((r = get_header_revision(body, &out->revision, err, errlen)) < 0)
		goto out;
	switch (kind) {
	case SL__ETCD_RANGE:
		if ((r = get_i64(body, "count", &out->count, err, errlen)) < 0 ||
		    (r = get_bool(body, "more", &out->more, err, errlen)) < 0 ||
		    (r = get_array(body, "kvs", &kvs, err, errlen)) < 0)
			goto out;
		r = parse_kv_array(kvs, strip, strip_len, out, err, errlen);
		break;
	case SL__ETCD_DELETE:
		r = get_i64(body, "deleted", &out->deleted, err, errlen);
		break;
	case SL__ETCD_TXN:
		r = parse_txn(body, strip, strip_len, out, err, errlen);
		break;
	case SL__ETCD_ELECTION:
		r = parse_election(body, strip, strip_len, out, err, errlen);
		break;
	case SL__ETCD_LEASE:
	case SL__ETCD_KEEPALIVE:
		if ((r = get_i64(body, "ID", &out->id, err, errlen)) < 0)
			goto out;
		r = get_i64(body, "TTL", &out->ttl, err, errlen);
		break;
	default:
		break;
	}
out:
	json_object_put(o);
	if (r < 0)
		sl__etcd_answer_release(out);
	return r;
}

/* google.golang.org/grpc/codes, as the gateway puts them in "code". */
static const char *const grpc_names[] = {
    "OK",       "Canceled",        "Unknown",          "InvalidArgument",   "DeadlineExceeded",
    "NotFound", "AlreadyExists",   "PermissionDenied", "ResourceExhausted", "FailedPrecondition",
    "Aborted",  "OutOfRange",      "Unimplemented",    "Internal",          "Unavailable",
    "DataLoss", "Unauthenticated",
};

static int grpc_errno(int64_t code)
{
	switch (code) {
	case 1:
		return -ECANCELED;
	case 3:
	case 9: /* FailedPrecondition: etcd uses it for requests it refuses as made */
		return -EINVAL;
	case 4:
		return -ETIMEDOUT;
	case 5:
		return -ENOENT;
	case 6:
		return -EEXIST;
	case 7:
	case 16:
		return -EACCES;
	case 8:
		return -ENOSPC;
	case 11: /* "mvcc: required revision has been compacted" */
		return -ERANGE;
	case 12:
		return -ENOSYS;
	case 14: /* no leader, member stopping: worth a retry */
		return -EAGAIN;
	default:
		return -EPROTO;
	}
}

/* The error object: {"error": "...", "code": N, "message": "..."} from
 * unary calls; {"error": {"grpc_code", "http_code", "message"}} inside a
 * stream. Returns the -errno and fills err. */
static int error_from(struct json_object *o, long http_status, char *err, size_t errlen)
{
	struct json_object *f, *inner = NULL;
	int64_t code = 0;
	const char *msg = NULL;
	if (json_object_object_get_ex(o, "error", &f) && f &&
	    json_object_is_type(f, json_type_object))
		inner = f;
	struct json_object *src = inner ? inner : o;
	if (get_i64(src, inner ? "grpc_code" : "code", &code, NULL, 0) < 0)
		code = 2;
	if (json_object_object_get_ex(src, "message", &f) && f &&
	    json_object_is_type(f, json_type_string))
		msg = json_object_get_string(f);
	if ((!msg || !*msg) && !inner && json_object_object_get_ex(o, "error", &f) && f &&
	    json_object_is_type(f, json_type_string))
		msg = json_object_get_string(f);
	const char *name = code >= 0 && code < (int64_t)(sizeof(grpc_names) / sizeof(*grpc_names))
	                       ? grpc_names[code]
	                       : "?";
	if (http_status)
		fail(err, errlen, 0, "%s (HTTP %ld, gRPC code %" PRId64 " %s)",
		     msg && *msg ? msg : "no message", http_status, code, name);
	else
		fail(err, errlen, 0, "%s (gRPC code %" PRId64 " %s)",
		     msg && *msg ? msg : "no message", code, name);
	int r = grpc_errno(code);
	return r ? r : -EPROTO;
}

int sl__etcd_error_parse(long http_status, const char *buf, size_t len, char *err, size_t errlen)
{
	struct json_object *o = NULL;
	char jerr[128];
	if (parse_object(buf, len, &o, jerr, sizeof(jerr)) < 0) {
		/* Not the gateway's error (a proxy, a wrong port): say what came. */
		size_t show = len > 80 ? 80 : len;
		for (size_t i = 0; i < show; i++)
			if ((unsigned char)buf[i] < 0x20 || (unsigned char)buf[i] >= 0x7f) {
				show = i;
				break;
			}
		fail(err, errlen, 0,
		     "HTTP %ld with a body that is not etcd's (%zu bytes: \"%.*s\")", http_status,
		     len, (int)show, buf);
		switch (http_status) {
		case 404:
			return -ENOENT; /* a path the gateway does not know */
		case 408:
		case 504:
			return -ETIMEDOUT;
		case 503:
			return -EAGAIN;
		default:
			return -EPROTO;
		}
	}
	int r = error_from(o, http_status, err, errlen);
	json_object_put(o);
	return r;
}

void sl__etcd_watch_msg_release(struct sl__etcd_watch_msg *m)
{
	if (!m)
		return;
	free(m->events);
	free(m->sl__mem);
	memset(m, 0, sizeof(*m));
}

int sl__etcd_watch_msg_parse(const char *buf, size_t len, const char *strip, size_t strip_len,
                             struct sl__etcd_watch_msg *out, char *err, size_t errlen)
{
	memset(out, 0, sizeof(*out));
	struct json_object *o = NULL, *res, *e, *evs;
	struct kv_src *src = NULL;
	int r = parse_object(buf, len, &o, err, errlen);
	if (r < 0)
		return r;
	if ((r = get_obj(o, "error", &e, err, errlen)) < 0) {
		/* the unary form's string "error" inside a stream: still an error */
		out->error = error_from(o, 0, err, errlen);
		fail(out->cancel_reason, sizeof(out->cancel_reason), 0, "%s", err ? err : "");
		r = 0;
		goto out;
	}
	if (e) {
		out->error = error_from(o, 0, err, errlen);
		fail(out->cancel_reason, sizeof(out->cancel_reason), 0, "%s", err ? err : "");
		goto out;
	}
	if ((r = get_obj(o, "result", &res, err, errlen)) < 0)
		goto out;
	if (!res) {
		r = fail(err, errlen, -EPROTO,
		         "watch message has neither \"result\" nor \"error\"");
		goto out;
	}
	if ((r = get_header_revision(res, &out->revision, err, errlen)) < 0 ||
	    (r = get_bool(res, "created", &out->created, err, errlen)) < 0 ||
	    (r = get_bool(res, "canceled", &out->canceled, err, errlen)) < 0 ||
	    (r = get_i64(res, "compact_revision", &out->compact_revision, err, errlen)) < 0 ||
	    (r = get_array(res, "events", &evs, err, errlen)) < 0)
		goto out;
	if (json_object_object_get_ex(res, "cancel_reason", &e) && e) {
		if (!json_object_is_type(e, json_type_string)) {
			r = fail(err, errlen, -EPROTO, "\"cancel_reason\" is not a string");
			goto out;
		}
		fail(out->cancel_reason, sizeof(out->cancel_reason), 0, "%s",
		     json_object_get_string(e));
	}
	size_t n = evs ? json_object_array_length(evs) : 0;
	if (n == 0)
		goto out;
	src = calloc(n, sizeof(*src));
	out->events = calloc(n, sizeof(*out->events));
	struct sl_etcd_kv *kvs = calloc(n, sizeof(*kvs));
	if (!src || !out->events || !kvs) {
		free(kvs);
		r = -ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		struct json_object *ev = json_object_array_get_idx(evs, i), *t;
		if (!ev || !json_object_is_type(ev, json_type_object)) {
			r = fail(err, errlen, -EPROTO, "events[%zu] is not an object", i);
			break;
		}
		src[i].type = SL_ETCD_PUT;
		if (json_object_object_get_ex(ev, "type", &t) && t) {
			const char *ts = json_object_is_type(t, json_type_string)
			                     ? json_object_get_string(t)
			                     : NULL;
			if (json_object_is_type(t, json_type_int) && json_object_get_int(t) <= 1)
				src[i].type = json_object_get_int(t);
			else if (ts && !strcmp(ts, "DELETE"))
				src[i].type = SL_ETCD_DELETE;
			else if (!ts || strcmp(ts, "PUT") != 0) {
				r = fail(err, errlen, -EPROTO, "events[%zu] has an unknown type",
				         i);
				break;
			}
			if (src[i].type < 0) {
				r = fail(err, errlen, -EPROTO, "events[%zu] has an unknown type",
				         i);
				break;
			}
		}
		if ((r = get_obj(ev, "kv", &src[i].kv, err, errlen)) < 0)
			break;
		if (!src[i].kv) {
			r = fail(err, errlen, -EPROTO, "events[%zu] has no \"kv\"", i);
			break;
		}
	}
	if (r == 0)
		r = decode_kvs(src, n, strip, strip_len, kvs, &out->sl__mem, err, errlen);
	if (r == 0) {
		for (size_t i = 0; i < n; i++) {
			out->events[i].type = (enum sl_etcd_event_type)src[i].type;
			out->events[i].kv = kvs[i];
		}
		out->n_events = n;
	}
	free(kvs);
out:
	free(src);
	json_object_put(o);
	if (r < 0)
		sl__etcd_watch_msg_release(out);
	return r;
}

size_t sl__etcd_prefix_end(const char *prefix, size_t len, char *out)
{
	memcpy(out, prefix, len);
	while (len > 0) {
		unsigned char c = (unsigned char)out[len - 1];
		if (c < 0xff) {
			out[len - 1] = (char)(c + 1);
			out[len] = 0;
			return len;
		}
		len--; /* "ab\xff" ends before "ac": drop the 0xff and raise 'b' */
	}
	out[0] = 0;
	return 1;
}
