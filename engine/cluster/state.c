/*
 * The values the cluster keeps in etcd, to and from JSON: a node record,
 * a topic's shape, a partition state, an ordinal. Pure functions of their
 * input (fuzzed by tests/fuzz/cluster_state.c). Strict, because another
 * node (or a person with etcdctl) wrote what we read: anything not exactly
 * the shape below is refused with the reason, and the cache ignores it
 * rather than act on half a state.
 */
#include <errno.h>
#include <json-c/json.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "base/base.h"
#include "cluster/cluster_impl.h"
#include "json/json.h"

bool sl_cluster_id_ok(const char *id)
{
	size_t n = id ? strnlen(id, SL_CLUSTER_ID_MAX) : 0;
	if (n == 0 || n >= SL_CLUSTER_ID_MAX)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = id[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '.' || c == '_' || c == '-'))
			return false;
	}
	return true;
}

bool sl_cluster_topic_name_ok(const char *name)
{
	size_t n = name ? strnlen(name, SL_CLUSTER_TOPIC_MAX) : 0;
	if (n == 0 || n >= SL_CLUSTER_TOPIC_MAX || name[0] == '.' || name[0] == '-')
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = name[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '.' || c == '_' || c == '-'))
			return false;
	}
	return true;
}

/* An advertised address: 1..255 printable ASCII characters, no spaces,
 * quotes or backslashes (it is printed into URLs, logs and JSON). The
 * host:port syntax itself is the server's to check when it dials. */
static bool addr_ok(const char *a, size_t n)
{
	if (n == 0 || n >= SL_CLUSTER_ADDR_MAX)
		return false;
	for (size_t i = 0; i < n; i++)
		if (a[i] <= ' ' || a[i] > '~' || a[i] == '"' || a[i] == '\\')
			return false;
	return true;
}

static int bad(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int bad(char *err, size_t errlen, const char *fmt, ...)
{
	if (err && errlen) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return -EINVAL;
}

/* ---- decoding ----------------------------------------------------------------- */

/* Exactly one JSON object, strict. Depth 3 is what our values need at most
 * ({"isr":["a"]}: the object, the array, the string); json-c refuses more. */
static int parse_object(const char *json, size_t len, struct json_object **out, char *err,
                        size_t errlen)
{
	const char *why;
	size_t at;
	*out = NULL;
	if (!json || len > SL_CLUSTER_JSON_MAX)
		return bad(err, errlen, "value of %zu bytes (at most %d)", len,
		           SL_CLUSTER_JSON_MAX);
	if (sl_json_lex_check(json, len, &at, &why))
		return bad(err, errlen, "not JSON: %s at byte %zu", why, at);
	struct json_tokener *tok = json_tokener_new_ex(3);
	if (!tok)
		return -ENOMEM;
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
	struct json_object *o = json_tokener_parse_ex(tok, json, (int)len);
	enum json_tokener_error je = json_tokener_get_error(tok);
	size_t end = json_tokener_get_parse_end(tok);
	json_tokener_free(tok);
	if (!o || je != json_tokener_success) {
		json_object_put(o);
		return bad(err, errlen, "not JSON: %s",
		           je == json_tokener_continue ? "it ends early"
		                                       : json_tokener_error_desc(je));
	}
	for (size_t i = end; i < len; i++) {
		if (json[i] != ' ' && json[i] != '\n' && json[i] != '\r' && json[i] != '\t') {
			json_object_put(o);
			return bad(err, errlen, "bytes after the JSON value at byte %zu", i);
		}
	}
	if (!json_object_is_type(o, json_type_object)) {
		json_object_put(o);
		return bad(err, errlen, "not a JSON object");
	}
	*out = o;
	return 0;
}

/* Every key of o is one of names[0..n); *seen gets bit i for names[i]. */
static int known_keys(struct json_object *o, const char *const *names, size_t n, unsigned *seen,
                      char *err, size_t errlen)
{
	*seen = 0;
	json_object_object_foreach(o, k, v)
	{
		(void)v;
		size_t i = 0;
		while (i < n && strcmp(k, names[i]) != 0)
			i++;
		if (i == n)
			return bad(err, errlen, "unknown key \"%.64s\"", k);
		*seen |= 1u << i;
	}
	return 0;
}

static int get_u32(struct json_object *o, const char *name, uint32_t lo, uint32_t hi, uint32_t *out,
                   char *err, size_t errlen)
{
	struct json_object *v = json_object_object_get(o, name);
	if (!json_object_is_type(v, json_type_int))
		return bad(err, errlen, "\"%s\" is not an integer", name);
	/* json-c keeps integers above INT64_MAX as uint64; get_int64 then
	 * saturates, which the range check refuses too */
	int64_t x = json_object_get_int64(v);
	if (x < (int64_t)lo || x > (int64_t)hi)
		return bad(err, errlen, "\"%s\" is %lld, not in %u..%u", name, (long long)x, lo,
		           hi);
	*out = (uint32_t)x;
	return 0;
}

/* A string that is a node id, or "" when empty_ok. */
static int id_of(struct json_object *v, const char *what, bool empty_ok,
                 char out[SL_CLUSTER_ID_MAX], char *err, size_t errlen)
{
	if (!json_object_is_type(v, json_type_string))
		return bad(err, errlen, "%s is not a string", what);
	const char *s = json_object_get_string(v);
	size_t n = (size_t)json_object_get_string_len(v);
	if (n == 0 && empty_ok) {
		out[0] = 0;
		return 0;
	}
	/* strlen == n: no "\u0000" cutting it short */
	if (n >= SL_CLUSTER_ID_MAX || strlen(s) != n || !sl_cluster_id_ok(s))
		return bad(err, errlen, "%s \"%.64s\" is not a node id ([A-Za-z0-9._-], 1..63)",
		           what, s);
	memcpy(out, s, n + 1);
	return 0;
}

static int id_list(struct json_object *o, const char *name, uint32_t min,
                   char out[SL_CLUSTER_REPLICAS_MAX][SL_CLUSTER_ID_MAX], uint32_t *n, char *err,
                   size_t errlen)
{
	struct json_object *a = json_object_object_get(o, name);
	if (!json_object_is_type(a, json_type_array))
		return bad(err, errlen, "\"%s\" is not an array", name);
	size_t len = json_object_array_length(a);
	if (len < min || len > SL_CLUSTER_REPLICAS_MAX)
		return bad(err, errlen, "\"%s\" has %zu ids (%u..%d)", name, len, min,
		           SL_CLUSTER_REPLICAS_MAX);
	for (size_t i = 0; i < len; i++) {
		char what[32];
		snprintf(what, sizeof(what), "%s[%zu]", name, i);
		int r = id_of(json_object_array_get_idx(a, i), what, false, out[i], err, errlen);
		if (r < 0)
			return r;
		for (size_t j = 0; j < i; j++)
			if (strcmp(out[j], out[i]) == 0)
				return bad(err, errlen, "\"%s\" names %s twice", name, out[i]);
	}
	*n = (uint32_t)len;
	return 0;
}

static bool in_list(const char list[][SL_CLUSTER_ID_MAX], uint32_t n, const char *id)
{
	for (uint32_t i = 0; i < n; i++)
		if (strcmp(list[i], id) == 0)
			return true;
	return false;
}

/* The relations between the fields, shared by the decoder and the encoder
 * (which must never write what the decoder refuses). */
int sl__cluster_pstate_check(const struct sl_pstate *s, char *err, size_t errlen)
{
	if (s->n_replicas < 1 || s->n_replicas > SL_CLUSTER_REPLICAS_MAX)
		return bad(err, errlen, "%u replicas (1..%d)", s->n_replicas,
		           SL_CLUSTER_REPLICAS_MAX);
	if (s->n_isr > s->n_replicas)
		return bad(err, errlen, "isr of %u, more than the %u replicas", s->n_isr,
		           s->n_replicas);
	for (uint32_t i = 0; i < s->n_replicas; i++) {
		if (!sl_cluster_id_ok(s->replicas[i]))
			return bad(err, errlen, "replicas[%u] is not a node id", i);
		for (uint32_t j = 0; j < i; j++)
			if (strcmp(s->replicas[i], s->replicas[j]) == 0)
				return bad(err, errlen, "replicas name %s twice", s->replicas[i]);
	}
	for (uint32_t i = 0; i < s->n_isr; i++) {
		if (!in_list(s->replicas, s->n_replicas, s->isr[i]))
			return bad(err, errlen, "isr[%u] %.64s is not a replica", i, s->isr[i]);
		for (uint32_t j = 0; j < i; j++)
			if (strcmp(s->isr[i], s->isr[j]) == 0)
				return bad(err, errlen, "isr names %s twice", s->isr[i]);
	}
	if (s->leader[0] && !in_list(s->replicas, s->n_replicas, s->leader))
		return bad(err, errlen, "leader %.64s is not a replica", s->leader);
	if (s->moving_to[0] && !sl_cluster_id_ok(s->moving_to))
		return bad(err, errlen, "moving_to is not a node id");
	/* a leader's strlen bounded by the array: checked by id_ok when set */
	if (s->leader[0] && !sl_cluster_id_ok(s->leader))
		return bad(err, errlen, "leader is not a node id");
	return 0;
}

enum { PS_LEADER, PS_EPOCH, PS_REPLICAS, PS_ISR, PS_MOVING_TO };
static const char *const pstate_keys[] = {"leader", "epoch", "replicas", "isr", "moving_to"};
#define PS_REQUIRED ((1u << PS_LEADER) | (1u << PS_EPOCH) | (1u << PS_REPLICAS) | (1u << PS_ISR))

static void missing(unsigned seen, unsigned required, const char *const *names, char *err,
                    size_t errlen)
{
	for (unsigned i = 0; i < 32; i++) {
		if ((required >> i & 1) && !(seen >> i & 1)) {
			bad(err, errlen, "\"%s\" is missing", names[i]);
			return;
		}
	}
}

int sl_cluster_pstate_decode(const char *json, size_t len, struct sl_pstate *out, char *err,
                             size_t errlen)
{
	struct json_object *o;
	unsigned seen;
	int r = parse_object(json, len, &o, err, errlen);
	if (r < 0)
		return r;
	memset(out, 0, sizeof(*out));
	if ((r = known_keys(o, pstate_keys, SL_ARRAY_LEN(pstate_keys), &seen, err, errlen)) < 0)
		goto out;
	if ((seen & PS_REQUIRED) != PS_REQUIRED) {
		missing(seen, PS_REQUIRED, pstate_keys, err, errlen);
		r = -EINVAL;
		goto out;
	}
	if ((r = id_of(json_object_object_get(o, "leader"), "\"leader\"", true, out->leader, err,
	               errlen)) < 0 ||
	    (r = get_u32(o, "epoch", 0, UINT32_MAX, &out->epoch, err, errlen)) < 0 ||
	    (r = id_list(o, "replicas", 1, out->replicas, &out->n_replicas, err, errlen)) < 0 ||
	    (r = id_list(o, "isr", 0, out->isr, &out->n_isr, err, errlen)) < 0)
		goto out;
	if ((seen & 1u << PS_MOVING_TO) &&
	    (r = id_of(json_object_object_get(o, "moving_to"), "\"moving_to\"", true,
	               out->moving_to, err, errlen)) < 0)
		goto out;
	r = sl__cluster_pstate_check(out, err, errlen);
out:
	json_object_put(o);
	if (r < 0)
		memset(out, 0, sizeof(*out));
	return r;
}

enum { ND_ID, ND_NATIVE, ND_HTTP, ND_ORDINAL };
static const char *const node_keys[] = {"id", "native", "http", "ordinal"};
#define ND_REQUIRED 0xfu

static int addr_of(struct json_object *o, const char *name, char out[SL_CLUSTER_ADDR_MAX],
                   char *err, size_t errlen)
{
	struct json_object *v = json_object_object_get(o, name);
	if (!json_object_is_type(v, json_type_string))
		return bad(err, errlen, "\"%s\" is not a string", name);
	const char *s = json_object_get_string(v);
	size_t n = (size_t)json_object_get_string_len(v);
	if (!addr_ok(s, n))
		return bad(err, errlen,
		           "\"%s\" is not an address (1..%d printable characters, no spaces, "
		           "quotes or backslashes)",
		           name, SL_CLUSTER_ADDR_MAX - 1);
	memcpy(out, s, n + 1);
	return 0;
}

int sl_cluster_node_decode(const char *json, size_t len, struct sl_cluster_node *out, char *err,
                           size_t errlen)
{
	struct json_object *o;
	unsigned seen;
	uint32_t ord = 0;
	int r = parse_object(json, len, &o, err, errlen);
	if (r < 0)
		return r;
	memset(out, 0, sizeof(*out));
	if ((r = known_keys(o, node_keys, SL_ARRAY_LEN(node_keys), &seen, err, errlen)) < 0)
		goto out;
	if ((seen & ND_REQUIRED) != ND_REQUIRED) {
		missing(seen, ND_REQUIRED, node_keys, err, errlen);
		r = -EINVAL;
		goto out;
	}
	if ((r = id_of(json_object_object_get(o, "id"), "\"id\"", false, out->id, err, errlen)) <
	        0 ||
	    (r = addr_of(o, "native", out->native, err, errlen)) < 0 ||
	    (r = addr_of(o, "http", out->http, err, errlen)) < 0 ||
	    (r = get_u32(o, "ordinal", 0, UINT32_MAX, &ord, err, errlen)) < 0)
		goto out;
	out->ordinal = ord;
	out->alive = true;
out:
	json_object_put(o);
	if (r < 0)
		memset(out, 0, sizeof(*out));
	return r;
}

static const char *const topic_keys[] = {"partitions", "replicas"};

int sl_cluster_topic_decode(const char *json, size_t len, uint32_t *partitions, uint32_t *replicas,
                            char *err, size_t errlen)
{
	struct json_object *o;
	unsigned seen;
	int r = parse_object(json, len, &o, err, errlen);
	if (r < 0)
		return r;
	if ((r = known_keys(o, topic_keys, 2, &seen, err, errlen)) < 0)
		goto out;
	if (seen != 3u) {
		missing(seen, 3u, topic_keys, err, errlen);
		r = -EINVAL;
		goto out;
	}
	if ((r = get_u32(o, "partitions", 1, SL_CLUSTER_PARTITIONS_MAX, partitions, err, errlen)) <
	        0 ||
	    (r = get_u32(o, "replicas", 1, SL_CLUSTER_REPLICAS_MAX, replicas, err, errlen)) < 0)
		goto out;
out:
	json_object_put(o);
	return r;
}

int sl_cluster_ordinal_decode(const char *s, size_t len, uint32_t *out)
{
	uint64_t v = 0;
	/* 10 digits hold UINT32_MAX; "0" alone is the only leading zero */
	if (!s || len == 0 || len > 10 || (len > 1 && s[0] == '0'))
		return -EINVAL;
	for (size_t i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -EINVAL;
		v = v * 10 + (uint64_t)(s[i] - '0');
	}
	if (v > UINT32_MAX)
		return -EINVAL;
	*out = (uint32_t)v;
	return 0;
}

/* ---- encoding ----------------------------------------------------------------- */

/* Our values hold only ids, digits and checked addresses: nothing that
 * needs escaping, so snprintf writes them directly and the decoder's tests
 * (round trips in the unit test and the fuzz target) keep the two honest. */
static int finish(int n, size_t cap)
{
	if (n < 0)
		return -EINVAL;
	if ((size_t)n >= cap)
		return -ENOSPC;
	return n;
}

static int put_ids(char *buf, size_t cap, size_t at, const char list[][SL_CLUSTER_ID_MAX],
                   uint32_t n)
{
	for (uint32_t i = 0; i < n && at < cap; i++)
		at += (size_t)snprintf(buf + at, cap - at, "%s\"%s\"", i ? "," : "", list[i]);
	if (at < cap)
		at += (size_t)snprintf(buf + at, cap - at, "]");
	return (int)at;
}

int sl_cluster_pstate_encode(const struct sl_pstate *s, char *buf, size_t cap)
{
	if (!buf || cap == 0 || sl__cluster_pstate_check(s, NULL, 0) < 0)
		return -EINVAL;
	size_t at = (size_t)snprintf(buf, cap, "{\"leader\":\"%s\",\"epoch\":%u,\"replicas\":[",
	                             s->leader, s->epoch);
	if (at < cap)
		at = (size_t)put_ids(buf, cap, at, s->replicas, s->n_replicas);
	if (at < cap)
		at += (size_t)snprintf(buf + at, cap - at, ",\"isr\":[");
	if (at < cap)
		at = (size_t)put_ids(buf, cap, at, s->isr, s->n_isr);
	if (at < cap)
		at += (size_t)snprintf(buf + at, cap - at, ",\"moving_to\":\"%s\"}", s->moving_to);
	return finish(at > INT_MAX ? -1 : (int)at, cap);
}

int sl_cluster_node_encode(const struct sl_cluster_node *n, char *buf, size_t cap)
{
	if (!buf || cap == 0 || !sl_cluster_id_ok(n->id) || n->ordinal < 0 ||
	    n->ordinal > (int64_t)UINT32_MAX ||
	    !addr_ok(n->native, strnlen(n->native, SL_CLUSTER_ADDR_MAX)) ||
	    !addr_ok(n->http, strnlen(n->http, SL_CLUSTER_ADDR_MAX)))
		return -EINVAL;
	return finish(snprintf(buf, cap,
	                       "{\"id\":\"%s\",\"native\":\"%s\",\"http\":\"%s\",\"ordinal\":%lld}",
	                       n->id, n->native, n->http, (long long)n->ordinal),
	              cap);
}

int sl_cluster_topic_encode(uint32_t partitions, uint32_t replicas, char *buf, size_t cap)
{
	if (!buf || cap == 0 || partitions < 1 || partitions > SL_CLUSTER_PARTITIONS_MAX ||
	    replicas < 1 || replicas > SL_CLUSTER_REPLICAS_MAX)
		return -EINVAL;
	return finish(
	    snprintf(buf, cap, "{\"partitions\":%u,\"replicas\":%u}", partitions, replicas), cap);
}
