/*
 * The client: endpoints, one reused CURL easy handle, the unary calls.
 * Request bodies are built with json-c, answers read by answer.c.
 */
#include <curl/curl.h>
#include <errno.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "etcd/etcd_impl.h"
#include "json/json.h"

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_rc;

static void curl_init(void)
{
	curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

int sl__etcd_curl_init(void)
{
	pthread_once(&curl_once, curl_init);
	return curl_init_rc == CURLE_OK ? 0 : -ENOMEM;
}

void sl__etcd_set_err(char *err, size_t errlen, const char *fmt, ...)
{
	if (!err || !errlen)
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

#define SET_ERR(e, ...) sl__etcd_set_err((e)->err, sizeof((e)->err), __VA_ARGS__)

size_t sl__etcd_curl_write(char *p, size_t size, size_t n, void *arg)
{
	struct sl_json_buf *b = arg;
	size_t len = size * n;
	/* Returning less than len makes curl fail the transfer with
	 * CURLE_WRITE_ERROR, which the caller reports as -EMSGSIZE. */
	if (b->len + len > SL_ETCD_ANSWER_MAX || sl_json_buf_put_raw(b, p, len) < 0)
		return 0;
	return len;
}

/* Was the request never sent? Only then may another endpoint get it. */
bool sl__etcd_curl_not_sent(CURLcode rc)
{
	return rc == CURLE_COULDNT_CONNECT || rc == CURLE_COULDNT_RESOLVE_HOST ||
	       rc == CURLE_COULDNT_RESOLVE_PROXY || rc == CURLE_UNSUPPORTED_PROTOCOL ||
	       rc == CURLE_URL_MALFORMAT;
}

int sl__etcd_curl_errno(CURLcode rc)
{
	switch (rc) {
	case CURLE_COULDNT_CONNECT:
		return -ECONNREFUSED;
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_RESOLVE_PROXY:
		return -EHOSTUNREACH;
	case CURLE_OPERATION_TIMEDOUT:
		return -ETIMEDOUT;
	case CURLE_WRITE_ERROR:
		return -EMSGSIZE;
	case CURLE_OUT_OF_MEMORY:
		return -ENOMEM;
	case CURLE_URL_MALFORMAT:
	case CURLE_UNSUPPORTED_PROTOCOL:
		return -EINVAL;
	case CURLE_GOT_NOTHING:
	case CURLE_RECV_ERROR:
	case CURLE_SEND_ERROR:
	case CURLE_PARTIAL_FILE:
		return -ECONNRESET;
	default:
		return -EIO;
	}
}

/* ---- the one request path ---------------------------------------------------- */

/*
 * POSTs body to path on the current endpoint, failing over on connect
 * errors only (etcd.h: a request sent is never sent again). On HTTP 200
 * the answer is parsed as kind into *a and its header revision kept.
 */
static int call(struct sl_etcd *e, const char *path, struct json_object *body,
                enum sl__etcd_kind kind, struct sl__etcd_answer *a)
{
	const char *text = json_object_to_json_string_ext(body, JSON_C_TO_STRING_PLAIN);
	char why[SL__ETCD_ERRLEN];
	size_t whylen = 0;
	int r = -ECONNREFUSED;
	if (!text)
		return -ENOMEM;
	why[0] = 0;
	memset(a, 0, sizeof(*a));
	for (size_t tries = 0; tries < e->n_endpoints; tries++) {
		const char *ep = e->endpoints[e->cur];
		char url[SL__ETCD_URL_MAX + 64];
		snprintf(url, sizeof(url), "%s%s", ep, path);
		e->in.len = 0;
		curl_easy_setopt(e->h, CURLOPT_URL, url);
		curl_easy_setopt(e->h, CURLOPT_POSTFIELDS, text);
		curl_easy_setopt(e->h, CURLOPT_POSTFIELDSIZE, (long)strlen(text));
		CURLcode rc = curl_easy_perform(e->h);
		if (rc != CURLE_OK) {
			r = sl__etcd_curl_errno(rc);
			if (whylen < sizeof(why))
				whylen += (size_t)snprintf(why + whylen, sizeof(why) - whylen,
				                           "%s%s: %s", whylen ? "; " : "", ep,
				                           e->curl_err[0] ? e->curl_err
				                                          : curl_easy_strerror(rc));
			/* the next call starts from the next endpoint either way */
			e->cur = (e->cur + 1) % e->n_endpoints;
			if (sl__etcd_curl_not_sent(rc))
				continue;
			if (rc == CURLE_WRITE_ERROR)
				SET_ERR(e, "%s%s: answer larger than %u bytes", ep, path,
				        SL_ETCD_ANSWER_MAX);
			else
				SET_ERR(
				    e, "%s%s: %s (not retried elsewhere: it may have been applied)",
				    ep, path,
				    e->curl_err[0] ? e->curl_err : curl_easy_strerror(rc));
			return r;
		}
		long status = 0;
		curl_easy_getinfo(e->h, CURLINFO_RESPONSE_CODE, &status);
		char perr[SL__ETCD_ERRLEN - 128];
		if (status != 200) {
			r = sl__etcd_error_parse(status, e->in.data ? e->in.data : "", e->in.len,
			                         perr, sizeof(perr));
			SET_ERR(e, "%s%s: %s", ep, path, perr);
			return r;
		}
		r = sl__etcd_answer_parse(kind, e->in.data ? e->in.data : "", e->in.len, e->prefix,
		                          e->prefix_len, a, perr, sizeof(perr));
		if (r < 0) {
			SET_ERR(e, "%s%s: %s", ep, path, perr);
			return r;
		}
		if (a->revision)
			e->revision = a->revision;
		return 0;
	}
	SET_ERR(e, "no etcd endpoint answered (%s)", why);
	return r;
}

/* ---- building requests ------------------------------------------------------- */

int sl__etcd_add_i64(struct json_object *o, const char *name, int64_t v)
{
	char s[24];
	snprintf(s, sizeof(s), "%" PRId64, v);
	struct json_object *f = json_object_new_string(s);
	if (!f || json_object_object_add(o, name, f) < 0) {
		json_object_put(f);
		return -ENOMEM;
	}
	return 0;
}

static int add_b64(struct json_object *o, const char *name, const void *p, size_t n)
{
	char *s = malloc(SL_B64_ENCODED_LEN(n) + 1);
	if (!s)
		return -ENOMEM;
	size_t sn = sl_b64_encode(p, n, s);
	struct json_object *f = json_object_new_string_len(s, (int)sn);
	free(s);
	if (!f || json_object_object_add(o, name, f) < 0) {
		json_object_put(f);
		return -ENOMEM;
	}
	return 0;
}

static int add_obj(struct json_object *o, const char *name, struct json_object *v)
{
	if (!v || json_object_object_add(o, name, v) < 0) {
		json_object_put(v);
		return -ENOMEM;
	}
	return 0;
}

/* Moves *v into o as `name` (add_obj) or to the end of array a: *v is NULL
 * afterwards whatever happened, so a caller's cleanup frees each object
 * once. */
static int give_obj(struct json_object *o, const char *name, struct json_object **v)
{
	int r = add_obj(o, name, *v);
	*v = NULL;
	return r;
}

static int give_elem(struct json_object *a, struct json_object **v)
{
	int r = json_object_array_add(a, *v) < 0 ? -ENOMEM : 0;
	if (r < 0)
		json_object_put(*v);
	*v = NULL;
	return r;
}

/* The full key (client prefix + rel) as "key" of o; with range, also the
 * "range_end" that makes it a prefix. */
int sl__etcd_add_key(struct sl_etcd *e, struct json_object *o, const char *rel, bool range)
{
	size_t rn = strlen(rel), n = e->prefix_len + rn;
	char *k = malloc(n + 2);
	if (!k)
		return -ENOMEM;
	memcpy(k, e->prefix, e->prefix_len);
	memcpy(k + e->prefix_len, rel, rn);
	int r;
	if (range && n == 0) {
		/* "" from "": etcd wants key "\0" with range_end "\0" for every key */
		k[0] = 0;
		if ((r = add_b64(o, "key", k, 1)) == 0)
			r = add_b64(o, "range_end", k, 1);
	} else {
		r = add_b64(o, "key", k, n);
		if (r == 0 && range) {
			char *end = malloc(n + 1);
			if (!end) {
				r = -ENOMEM;
			} else {
				size_t en = sl__etcd_prefix_end(k, n, end);
				r = add_b64(o, "range_end", end, en);
				free(end);
			}
		}
	}
	free(k);
	return r;
}

static int check_key(struct sl_etcd *e, const char *key, bool may_be_empty)
{
	if (!key) {
		SET_ERR(e, "key is NULL");
		return -EINVAL;
	}
	if (!may_be_empty && !key[0] && !e->prefix_len) {
		SET_ERR(e, "empty key with an empty prefix: etcd has no key \"\"");
		return -EINVAL;
	}
	return 0;
}

/* ---- open, close --------------------------------------------------------------- */

int sl_etcd_open(const char *const *endpoints, size_t n, const char *prefix, uint32_t timeout_ms,
                 struct sl_etcd **out, char *err, size_t errlen)
{
	struct sl_etcd *e = NULL;
	struct json_object *body = NULL;
	int r;
	*out = NULL;
	if (!endpoints || n == 0 || n > SL_ETCD_ENDPOINTS_MAX) {
		sl__etcd_set_err(err, errlen, "etcd: %zu endpoints (1 to %d)", n,
		                 SL_ETCD_ENDPOINTS_MAX);
		return -EINVAL;
	}
	if (timeout_ms == 0) {
		sl__etcd_set_err(err, errlen, "etcd: a timeout of 0 ms");
		return -EINVAL;
	}
	for (size_t i = 0; i < n; i++) {
		const char *ep = endpoints[i];
		if (!ep || (strncmp(ep, "http://", 7) != 0 && strncmp(ep, "https://", 8) != 0) ||
		    strlen(ep) > SL__ETCD_URL_MAX) {
			sl__etcd_set_err(err, errlen,
			                 "etcd: endpoint %zu \"%.64s\" is not http://host:port", i,
			                 ep ? ep : "(null)");
			return -EINVAL;
		}
	}
	if ((r = sl__etcd_curl_init()) < 0) {
		sl__etcd_set_err(err, errlen, "etcd: curl_global_init failed");
		return r;
	}
	e = calloc(1, sizeof(*e));
	if (!e)
		return -ENOMEM;
	r = -ENOMEM;
	e->n_endpoints = n;
	e->timeout_ms = timeout_ms;
	for (size_t i = 0; i < n; i++) {
		size_t l = strlen(endpoints[i]);
		while (l > 0 && endpoints[i][l - 1] == '/')
			l--; /* paths are appended with their own '/' */
		if (!(e->endpoints[i] = strndup(endpoints[i], l)))
			goto fail;
	}
	if (!(e->prefix = strdup(prefix ? prefix : "")))
		goto fail;
	e->prefix_len = strlen(e->prefix);
	if (!(e->h = curl_easy_init()))
		goto fail;
	e->hdrs = curl_slist_append(NULL, "Content-Type: application/json");
	if (!e->hdrs)
		goto fail;
	/* NOSIGNAL: timeouts without SIGALRM, which would hit the whole process */
	curl_easy_setopt(e->h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e->h, CURLOPT_HTTPHEADER, e->hdrs);
	curl_easy_setopt(e->h, CURLOPT_TIMEOUT_MS, (long)timeout_ms);
	curl_easy_setopt(e->h, CURLOPT_CONNECTTIMEOUT_MS, (long)timeout_ms);
	curl_easy_setopt(e->h, CURLOPT_WRITEFUNCTION, sl__etcd_curl_write);
	curl_easy_setopt(e->h, CURLOPT_WRITEDATA, &e->in);
	curl_easy_setopt(e->h, CURLOPT_ERRORBUFFER, e->curl_err);
	curl_easy_setopt(e->h, CURLOPT_TCP_KEEPALIVE, 1L);
	/* Only the endpoints' own scheme: no redirects to elsewhere. */
	curl_easy_setopt(e->h, CURLOPT_FOLLOWLOCATION, 0L);

	struct sl__etcd_answer a;
	body = json_object_new_object();
	if (!body)
		goto fail;
	r = call(e, "/v3/maintenance/status", body, SL__ETCD_STATUS, &a);
	if (r < 0) {
		sl__etcd_set_err(err, errlen, "etcd: %s", e->err);
		goto fail;
	}
	sl__etcd_answer_release(&a);
	json_object_put(body);
	e->err[0] = 0;
	*out = e;
	return 0;
fail:
	json_object_put(body);
	if (r == -ENOMEM && (!err || !err[0]))
		sl__etcd_set_err(err, errlen, "etcd: out of memory");
	sl_etcd_close(e);
	return r;
}

void sl_etcd_close(struct sl_etcd *e)
{
	if (!e)
		return;
	if (e->h)
		curl_easy_cleanup(e->h);
	curl_slist_free_all(e->hdrs);
	for (size_t i = 0; i < e->n_endpoints; i++)
		free(e->endpoints[i]);
	free(e->prefix);
	sl_json_buf_release(&e->in);
	free(e);
}

const char *sl_etcd_errmsg(const struct sl_etcd *e)
{
	return e->err;
}

int64_t sl_etcd_revision(const struct sl_etcd *e)
{
	return e->revision;
}

const char *sl_etcd_endpoint(const struct sl_etcd *e)
{
	return e->endpoints[e->cur];
}

/* ---- keys ------------------------------------------------------------------- */

/* A request whose body is only a key (or a prefix's range): range and
 * deleterange. The key is checked first; *a is filled on success. */
static int keyed_call(struct sl_etcd *e, const char *path, const char *key, bool prefix,
                      enum sl__etcd_kind kind, struct sl__etcd_answer *a)
{
	int r = check_key(e, key, prefix);
	if (r < 0)
		return r;
	struct json_object *body = json_object_new_object();
	if (!body || sl__etcd_add_key(e, body, key, prefix) < 0) {
		json_object_put(body);
		return -ENOMEM;
	}
	r = call(e, path, body, kind, a);
	json_object_put(body);
	return r;
}

int sl_etcd_get(struct sl_etcd *e, const char *key, uint8_t **value, size_t *len,
                int64_t *mod_revision, int64_t *create_revision)
{
	struct sl__etcd_answer a;
	int r = keyed_call(e, "/v3/kv/range", key, false, SL__ETCD_RANGE, &a);
	if (r < 0)
		return r;
	if (a.n_kvs == 0) {
		SET_ERR(e, "key \"%s%s\" does not exist", e->prefix, key);
		r = -ENOENT;
		goto out;
	}
	if (a.n_kvs != 1 || a.kvs[0].key_len != strlen(key) || strcmp(a.kvs[0].key, key) != 0) {
		SET_ERR(e, "range of key \"%s%s\" answered another key", e->prefix, key);
		r = -EPROTO;
		goto out;
	}
	if (value) {
		uint8_t *v = malloc(a.kvs[0].value_len + 1);
		if (!v) {
			r = -ENOMEM;
			goto out;
		}
		memcpy(v, a.kvs[0].value, a.kvs[0].value_len);
		v[a.kvs[0].value_len] = 0;
		*value = v;
	}
	if (len)
		*len = a.kvs[0].value_len;
	if (mod_revision)
		*mod_revision = a.kvs[0].mod_revision;
	if (create_revision)
		*create_revision = a.kvs[0].create_revision;
out:
	sl__etcd_answer_release(&a);
	return r;
}

int sl_etcd_get_prefix(struct sl_etcd *e, const char *prefix, sl_etcd_kv_cb cb, void *arg)
{
	struct sl__etcd_answer a;
	int r = keyed_call(e, "/v3/kv/range", prefix, true, SL__ETCD_RANGE, &a);
	if (r < 0)
		return r;
	if (a.more) {
		/* no limit was asked, so etcd must have sent everything */
		SET_ERR(e, "range of \"%s%s\" came back incomplete", e->prefix, prefix);
		r = -EPROTO;
		goto out;
	}
	for (size_t i = 0; i < a.n_kvs; i++) {
		if ((r = cb(arg, &a.kvs[i])) != 0)
			goto out;
	}
	r = (int)a.n_kvs;
out:
	sl__etcd_answer_release(&a);
	return r;
}

/* A put request's fields into o (also a txn's request_put). */
static int fill_put(struct sl_etcd *e, struct json_object *o, const char *key, const void *value,
                    size_t len, int64_t lease)
{
	int r = sl__etcd_add_key(e, o, key, false);
	if (r == 0)
		r = add_b64(o, "value", value ? value : "", value ? len : 0);
	if (r == 0 && lease)
		r = sl__etcd_add_i64(o, "lease", lease);
	return r;
}

int sl_etcd_put(struct sl_etcd *e, const char *key, const void *value, size_t len, int64_t lease)
{
	struct sl__etcd_answer a;
	int r = check_key(e, key, false);
	if (r < 0)
		return r;
	struct json_object *body = json_object_new_object();
	if (!body || fill_put(e, body, key, value, len, lease) < 0) {
		json_object_put(body);
		return -ENOMEM;
	}
	r = call(e, "/v3/kv/put", body, SL__ETCD_PUT, &a);
	json_object_put(body);
	if (r == 0)
		sl__etcd_answer_release(&a);
	return r;
}

int sl_etcd_del(struct sl_etcd *e, const char *key)
{
	struct sl__etcd_answer a;
	int r = keyed_call(e, "/v3/kv/deleterange", key, false, SL__ETCD_DELETE, &a);
	if (r < 0)
		return r;
	r = a.deleted > 1 ? 1 : (int)a.deleted;
	sl__etcd_answer_release(&a);
	return r;
}

/*
 * {"compare":[{key, target, MOD mod_revision R | CREATE create_revision 0}],
 *  "success":[{op: {...}}], "failure":[{"request_range":{key}}]}
 * The failure branch reads the key, so the loser learns its revision.
 */
static struct json_object *txn_body(struct sl_etcd *e, const char *key, int64_t expect,
                                    const char *op, struct json_object *req)
{
	struct json_object *body = json_object_new_object(), *cmp = json_object_new_object();
	struct json_object *cmps = json_object_new_array(), *succ = json_object_new_array();
	struct json_object *fail = json_object_new_array(), *s1 = json_object_new_object();
	struct json_object *f1 = json_object_new_object(), *rr = json_object_new_object();
	int r = -ENOMEM;
	if (!body || !cmp || !cmps || !succ || !fail || !s1 || !f1 || !rr || !req)
		goto out;
	/* CREATE with create_revision 0 is "absent"; MOD compares the last write */
	if (sl__etcd_add_key(e, cmp, key, false) < 0 ||
	    json_object_object_add(cmp, "target",
	                           json_object_new_string(expect ? "MOD" : "CREATE")) < 0 ||
	    sl__etcd_add_i64(cmp, expect ? "mod_revision" : "create_revision", expect) < 0 ||
	    sl__etcd_add_key(e, rr, key, false) < 0)
		goto out;
	/* "result": "EQUAL" is proto3's default (0) and may be left out.
	 * Each piece goes into its parent, which owns it from then on. */
	if (give_elem(cmps, &cmp) < 0 || give_obj(s1, op, &req) < 0 || give_elem(succ, &s1) < 0 ||
	    give_obj(f1, "request_range", &rr) < 0 || give_elem(fail, &f1) < 0 ||
	    give_obj(body, "compare", &cmps) < 0 || give_obj(body, "success", &succ) < 0 ||
	    give_obj(body, "failure", &fail) < 0)
		goto out;
	r = 0;
out:
	json_object_put(cmp);
	json_object_put(cmps);
	json_object_put(succ);
	json_object_put(fail);
	json_object_put(s1);
	json_object_put(f1);
	json_object_put(rr);
	json_object_put(req);
	if (r < 0) {
		json_object_put(body);
		return NULL;
	}
	return body;
}

int sl_etcd_txn_put_if(struct sl_etcd *e, const char *key, const void *value, size_t len,
                       int64_t lease, int64_t expect_mod_revision, bool *succeeded,
                       int64_t *revision)
{
	struct sl__etcd_answer a;
	int r = check_key(e, key, false);
	if (r < 0)
		return r;
	if (expect_mod_revision < 0) {
		SET_ERR(e, "expected revision %" PRId64 " of \"%s\" is negative",
		        expect_mod_revision, key);
		return -EINVAL;
	}
	struct json_object *req = json_object_new_object();
	if (req && fill_put(e, req, key, value, len, lease) < 0) {
		json_object_put(req);
		return -ENOMEM;
	}
	struct json_object *body = txn_body(e, key, expect_mod_revision, "request_put", req);
	if (!body)
		return -ENOMEM;
	r = call(e, "/v3/kv/txn", body, SL__ETCD_TXN, &a);
	json_object_put(body);
	if (r < 0)
		return r;
	if (succeeded)
		*succeeded = a.succeeded;
	if (revision) {
		/* a txn with a write moves the store's revision to the write's */
		if (a.succeeded)
			*revision = a.revision;
		else
			*revision = a.n_kvs ? a.kvs[0].mod_revision : 0;
	}
	sl__etcd_answer_release(&a);
	return 0;
}

int sl_etcd_txn_del_if(struct sl_etcd *e, const char *key, int64_t expect_mod_revision,
                       bool *succeeded)
{
	struct sl__etcd_answer a;
	int r = check_key(e, key, false);
	if (r < 0)
		return r;
	if (expect_mod_revision <= 0) {
		SET_ERR(e, "a fenced delete of \"%s\" needs a revision > 0", key);
		return -EINVAL;
	}
	struct json_object *req = json_object_new_object();
	if (req && sl__etcd_add_key(e, req, key, false) < 0) {
		json_object_put(req);
		return -ENOMEM;
	}
	struct json_object *body =
	    txn_body(e, key, expect_mod_revision, "request_delete_range", req);
	if (!body)
		return -ENOMEM;
	r = call(e, "/v3/kv/txn", body, SL__ETCD_TXN, &a);
	json_object_put(body);
	if (r < 0)
		return r;
	if (succeeded)
		*succeeded = a.succeeded;
	sl__etcd_answer_release(&a);
	return 0;
}

/* ---- leases ------------------------------------------------------------------- */

static int lease_call(struct sl_etcd *e, const char *path, enum sl__etcd_kind kind,
                      const char *field, int64_t v, struct sl__etcd_answer *a)
{
	struct json_object *body = json_object_new_object();
	if (!body || sl__etcd_add_i64(body, field, v) < 0) {
		json_object_put(body);
		return -ENOMEM;
	}
	int r = call(e, path, body, kind, a);
	json_object_put(body);
	return r;
}

int sl_etcd_lease_grant(struct sl_etcd *e, int64_t ttl_s, int64_t *id, int64_t *granted_ttl)
{
	struct sl__etcd_answer a;
	if (ttl_s <= 0) {
		SET_ERR(e, "lease TTL %" PRId64 " s: must be > 0", ttl_s);
		return -EINVAL;
	}
	int r = lease_call(e, "/v3/lease/grant", SL__ETCD_LEASE, "TTL", ttl_s, &a);
	if (r < 0)
		return r;
	if (a.id == 0) {
		SET_ERR(e, "lease grant answered without an ID");
		r = -EPROTO;
	} else {
		if (id)
			*id = a.id;
		if (granted_ttl)
			*granted_ttl = a.ttl;
	}
	sl__etcd_answer_release(&a);
	return r;
}

int sl_etcd_lease_keepalive(struct sl_etcd *e, int64_t id, int64_t *ttl_left)
{
	struct sl__etcd_answer a;
	int r = lease_call(e, "/v3/lease/keepalive", SL__ETCD_KEEPALIVE, "ID", id, &a);
	if (r < 0)
		return r;
	if (a.ttl <= 0) {
		/* etcd answers a keepalive of an unknown lease with TTL 0, which
		 * proto3 JSON leaves out */
		SET_ERR(e, "lease %" PRId64 " is gone (expired or revoked)", id);
		r = -ENOENT;
	} else if (ttl_left) {
		*ttl_left = a.ttl;
	}
	sl__etcd_answer_release(&a);
	return r;
}

int sl_etcd_lease_revoke(struct sl_etcd *e, int64_t id)
{
	struct sl__etcd_answer a;
	int r = lease_call(e, "/v3/lease/revoke", SL__ETCD_LEASE, "ID", id, &a);
	if (r == 0)
		sl__etcd_answer_release(&a);
	return r;
}

int sl_etcd_lease_timetolive(struct sl_etcd *e, int64_t id, int64_t *ttl)
{
	struct sl__etcd_answer a;
	int r = lease_call(e, "/v3/lease/timetolive", SL__ETCD_LEASE, "ID", id, &a);
	if (r < 0)
		return r;
	if (a.ttl < 0) {
		/* -1: "not found"; 0 is a lease in its last second, still there */
		SET_ERR(e, "lease %" PRId64 " is gone (expired or revoked)", id);
		r = -ENOENT;
	} else if (ttl) {
		*ttl = a.ttl;
	}
	sl__etcd_answer_release(&a);
	return r;
}

/* ---- elections ---------------------------------------------------------------- */

/* The election's full name (prefix + rel) as "name" of o. */
static int add_name(struct sl_etcd *e, struct json_object *o, const char *rel)
{
	size_t rn = strlen(rel);
	if (!rn || e->prefix_len + rn + 1 + 16 >= SL_ETCD_LEADER_KEY_MAX) {
		SET_ERR(e, "election name \"%.64s\" is empty or too long", rel);
		return -ENAMETOOLONG;
	}
	char k[SL_ETCD_LEADER_KEY_MAX];
	memcpy(k, e->prefix, e->prefix_len);
	memcpy(k + e->prefix_len, rel, rn);
	return add_b64(o, "name", k, e->prefix_len + rn);
}

/* kvs[0] of an election answer into *out (relative key). */
static int take_leader(struct sl_etcd *e, const char *what, struct sl__etcd_answer *a,
                       struct sl_etcd_leader *out)
{
	memset(out, 0, sizeof(*out));
	if (a->n_kvs != 1 || a->kvs[0].key_len >= sizeof(out->key)) {
		SET_ERR(e, "%s answered no leader key", what);
		return -EPROTO;
	}
	memcpy(out->key, a->kvs[0].key, a->kvs[0].key_len);
	out->rev = a->kvs[0].create_revision;
	out->lease = a->kvs[0].lease;
	size_t vn = a->kvs[0].value_len < sizeof(out->value) - 1 ? a->kvs[0].value_len
	                                                         : sizeof(out->value) - 1;
	memcpy(out->value, a->kvs[0].value, vn);
	out->value[vn] = 0;
	return 0;
}

int sl_etcd_campaign(struct sl_etcd *e, const char *name, int64_t lease, const void *value,
                     size_t len, uint32_t timeout_ms, struct sl_etcd_leader *out)
{
	struct sl__etcd_answer a;
	if (!name || lease <= 0 || timeout_ms == 0) {
		SET_ERR(e, "campaign: a name, a lease and a timeout are needed");
		return -EINVAL;
	}
	struct json_object *body = json_object_new_object();
	int r = body ? add_name(e, body, name) : -ENOMEM;
	if (r == 0)
		r = sl__etcd_add_i64(body, "lease", lease);
	if (r == 0)
		r = add_b64(body, "value", value ? value : "", value ? len : 0);
	if (r < 0) {
		json_object_put(body);
		return r;
	}
	/* The campaign waits for the office: its own bound, not the
	 * client's. When it runs out the connection closes, the gateway
	 * cancels the campaign and etcd withdraws the candidacy. */
	curl_easy_setopt(e->h, CURLOPT_TIMEOUT_MS, (long)timeout_ms);
	r = call(e, "/v3/election/campaign", body, SL__ETCD_ELECTION, &a);
	curl_easy_setopt(e->h, CURLOPT_TIMEOUT_MS, (long)e->timeout_ms);
	json_object_put(body);
	if (r < 0)
		return r;
	r = take_leader(e, "campaign", &a, out);
	sl__etcd_answer_release(&a);
	return r;
}

int sl_etcd_election_leader(struct sl_etcd *e, const char *name, struct sl_etcd_leader *out)
{
	struct sl__etcd_answer a;
	struct json_object *body = json_object_new_object();
	int r = body ? add_name(e, body, name ? name : "") : -ENOMEM;
	if (r < 0) {
		json_object_put(body);
		return r;
	}
	r = call(e, "/v3/election/leader", body, SL__ETCD_ELECTION, &a);
	json_object_put(body);
	if (r < 0) {
		/* etcd 3.4 answers an office no one holds with gRPC Unknown,
		 * "election: no leader" */
		if (strstr(e->err, "election: no leader"))
			r = -ENOENT;
		return r;
	}
	if (a.n_kvs == 0) {
		SET_ERR(e, "election \"%s\" has no leader", name);
		r = -ENOENT;
	} else {
		r = take_leader(e, "leader", &a, out);
	}
	sl__etcd_answer_release(&a);
	return r;
}

int sl_etcd_resign(struct sl_etcd *e, const struct sl_etcd_leader *l)
{
	struct sl__etcd_answer a;
	struct json_object *body = json_object_new_object(), *ld = json_object_new_object();
	int r = body && ld ? 0 : -ENOMEM;
	/* The LeaderKey as the campaign answered it: etcd deletes the key
	 * only if its create revision is still rev. */
	if (r == 0)
		r = sl__etcd_add_key(e, ld, l->key, false);
	if (r == 0)
		r = sl__etcd_add_i64(ld, "rev", l->rev);
	if (r == 0)
		r = sl__etcd_add_i64(ld, "lease", l->lease);
	if (r == 0)
		r = give_obj(body, "leader", &ld);
	json_object_put(ld);
	if (r < 0) {
		json_object_put(body);
		return r;
	}
	r = call(e, "/v3/election/resign", body, SL__ETCD_ELECTION, &a);
	json_object_put(body);
	if (r == 0)
		sl__etcd_answer_release(&a);
	return r;
}

int sl_etcd_leader_confirm(struct sl_etcd *e, const struct sl_etcd_leader *l, bool *holds,
                           int64_t *ttl_left)
{
	struct sl__etcd_answer a;
	*holds = false;
	if (ttl_left)
		*ttl_left = 0;
	if (l->rev <= 0) {
		SET_ERR(e, "confirm: leader key \"%s\" without a revision", l->key);
		return -EINVAL;
	}
	/* {"compare":[{key, target CREATE, create_revision rev}]}: true only
	 * while the key the campaign won exists unchanged in identity (a key
	 * deleted and created again has a new create revision). */
	struct json_object *body = json_object_new_object(), *cmp = json_object_new_object();
	struct json_object *cmps = json_object_new_array();
	int r = body && cmp && cmps ? 0 : -ENOMEM;
	if (r == 0)
		r = sl__etcd_add_key(e, cmp, l->key, false);
	if (r == 0 && json_object_object_add(cmp, "target", json_object_new_string("CREATE")) < 0)
		r = -ENOMEM;
	if (r == 0)
		r = sl__etcd_add_i64(cmp, "create_revision", l->rev);
	if (r == 0)
		r = give_elem(cmps, &cmp);
	if (r == 0)
		r = give_obj(body, "compare", &cmps);
	json_object_put(cmp);
	json_object_put(cmps);
	if (r < 0) {
		json_object_put(body);
		return r;
	}
	r = call(e, "/v3/kv/txn", body, SL__ETCD_TXN, &a);
	json_object_put(body);
	if (r < 0)
		return r;
	bool key_ok = a.succeeded;
	sl__etcd_answer_release(&a);
	if (!key_ok)
		return 0;
	int64_t ttl = 0;
	r = sl_etcd_lease_timetolive(e, l->lease, &ttl);
	if (r == -ENOENT)
		return 0;
	if (r < 0)
		return r;
	*holds = ttl > 0;
	if (ttl_left)
		*ttl_left = ttl;
	return 0;
}
