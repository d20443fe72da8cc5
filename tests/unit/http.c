/*
 * The HTTP port against a fake backend, over loopback with libcurl: every
 * route, statuses and bodies, percent-decoding, bad parameters, bounds,
 * concurrent handlers that block, the topic routes with their request
 * bodies (sizes at and past SL_HTTP_MAX_BODY, announced and chunked) and
 * the token on every route. The fake answers from a table; its
 * "block" projection parks the handler on a condition variable until the
 * test releases it or the query's timeout_ms passes, so concurrency is
 * observed (every handler inside the backend at once), not inferred from
 * timing. Every wait has a deadline; no sleeps.
 */
#include <criterion/criterion.h>
#include <curl/curl.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "auth/auth.h"
#include "base/base.h"
#include "http/http.h"
#include "json/json.h"

/* ---- the fake backend ------------------------------------------------------ */

struct fake {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int arrived; /* handlers inside "block" right now */
	int max_inside;
	bool released;
	int status_calls, metrics_calls;
	int topic_calls;
};

static void fake_init(struct fake *f)
{
	memset(f, 0, sizeof(*f));
	pthread_mutex_init(&f->mu, NULL);
	pthread_cond_init(&f->cv, NULL);
}

static void fake_destroy(struct fake *f)
{
	pthread_mutex_destroy(&f->mu);
	pthread_cond_destroy(&f->cv);
}

static char *dupmem(const char *s, size_t *len)
{
	*len = strlen(s);
	char *p = malloc(*len + 1);
	cr_assert_not_null(p);
	memcpy(p, s, *len + 1);
	return p;
}

static void deadline_in(struct timespec *ts, uint64_t ms)
{
	clock_gettime(CLOCK_REALTIME, ts);
	uint64_t ns = (uint64_t)ts->tv_nsec + (ms % 1000) * 1000000ull;
	ts->tv_sec += (time_t)(ms / 1000 + ns / 1000000000ull);
	ts->tv_nsec = (long)(ns % 1000000000ull);
}

/* Echoes what the parser made of the request, so tests check decoding. */
static void fake_echo(const struct sl_http_query *q, struct sl_http_reply *out)
{
	struct sl_json_buf b = {0};
	char num[256];

	cr_assert_eq(sl_json_buf_put_raw(&b, "{\"projection\":", 14), 0);
	cr_assert_eq(sl_json_buf_put_str(&b, q->projection, q->projection_len), 0);
	cr_assert_eq(sl_json_buf_put_raw(&b, ",\"key\":", 7), 0);
	cr_assert_eq(sl_json_buf_put_str(&b, q->key, q->key_len), 0);
	int n = snprintf(num, sizeof(num),
	                 ",\"key_len\":%zu,\"has_min\":%d,\"min_partition\":%u,\"min_offset\":%llu,"
	                 "\"has_max_lag\":%d,\"max_lag\":%llu,\"timeout_ms\":%u}",
	                 q->key_len, q->has_min, q->has_min ? q->min_partition : 0,
	                 q->has_min ? (unsigned long long)q->min_offset : 0ull, q->has_max_lag,
	                 q->has_max_lag ? (unsigned long long)q->max_lag : 0ull, q->timeout_ms);
	cr_assert_eq(sl_json_buf_put_raw(&b, num, (size_t)n), 0);
	*out = (struct sl_http_reply){.status = 200, .body = b.data, .len = b.len};
	b.data = NULL;
	sl_json_buf_release(&b);
}

static void fake_block(struct fake *f, const struct sl_http_query *q, struct sl_http_reply *out)
{
	struct timespec dl;
	bool timed_out = false;

	deadline_in(&dl, q->timeout_ms);
	pthread_mutex_lock(&f->mu);
	f->arrived++;
	if (f->arrived > f->max_inside)
		f->max_inside = f->arrived;
	pthread_cond_broadcast(&f->cv);
	while (!f->released && !timed_out)
		timed_out = pthread_cond_timedwait(&f->cv, &f->mu, &dl) == ETIMEDOUT;
	f->arrived--;
	pthread_mutex_unlock(&f->mu);
	if (timed_out && !f->released) {
		sl_http_error_reply(out, 504, "timeout", "offset %u:%llu not applied within %u ms",
		                    q->min_partition, (unsigned long long)q->min_offset,
		                    q->timeout_ms);
		return;
	}
	out->status = 200;
	out->body = dupmem("{\"released\":true}\n", &out->len);
}

static void fake_query(void *arg, const struct sl_http_query *q, struct sl_http_reply *out)
{
	struct fake *f = arg;
	static const struct {
		const char *key;
		const char *body;
	} table[] = {
	    {"acct-1", "{\"balance\":5}\n"},
	    {"a/b", "{\"slash\":true}\n"},
	    {"100%", "{\"percent\":true}\n"},
	    {"k y+z", "{\"space\":true}\n"},
	};

	if (!strcmp(q->projection, "echo"))
		return fake_echo(q, out);
	if (!strcmp(q->projection, "block"))
		return fake_block(f, q, out);
	if (!strcmp(q->projection, "nullbody")) {
		out->status = 200; /* and no body: the module must answer 500 */
		return;
	}
	if (!strcmp(q->projection, "lag")) {
		sl_http_error_reply(out, 409, "lag_exceeded",
		                    "the model is 12 events behind, more than max_lag %llu",
		                    (unsigned long long)q->max_lag);
		return;
	}
	if (strcmp(q->projection, "table")) {
		sl_http_error_reply(out, 404, "unknown_projection", "no projection '%s'",
		                    q->projection);
		return;
	}
	for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++)
		if (q->key_len == strlen(table[i].key) &&
		    !memcmp(q->key, table[i].key, q->key_len)) {
			out->status = 200;
			out->body = dupmem(table[i].body, &out->len);
			return;
		}
	sl_http_error_reply(out, 404, "not_found", "no entry for key '%s'", q->key);
}

static void fake_status(void *arg, struct sl_http_reply *out)
{
	struct fake *f = arg;
	pthread_mutex_lock(&f->mu);
	f->status_calls++;
	pthread_mutex_unlock(&f->mu);
	out->status = 200;
	out->body = dupmem("{\"topics\":[]}\n", &out->len);
}

static void fake_metrics(void *arg, struct sl_http_reply *out)
{
	struct fake *f = arg;
	pthread_mutex_lock(&f->mu);
	f->metrics_calls++;
	pthread_mutex_unlock(&f->mu);
	out->status = 200;
	out->body = dupmem("# TYPE sluice_up gauge\nsluice_up 1\n", &out->len);
	out->content_type = NULL; /* the Prometheus type by default */
}

/* The topics backend: counts its calls and echoes what reached it, so
 * tests check the operation, the decoded name and the body byte for byte
 * (and that the body is NUL-terminated, as http.h promises). Topic
 * "missing" answers the backend's own 404, "fresh" a 201. */
static void fake_topics(void *arg, const struct sl_http_topic_req *t, struct sl_http_reply *out)
{
	static const char *const ops[] = {"list", "create", "describe", "alter", "delete"};
	struct fake *f = arg;
	struct sl_json_buf b = {0};
	char num[160];
	int status = 200;

	pthread_mutex_lock(&f->mu);
	f->topic_calls++;
	pthread_mutex_unlock(&f->mu);
	if (t->name && !strcmp(t->name, "missing")) {
		sl_http_error_reply(out, 404, "unknown_topic", "no topic '%s'", t->name);
		return;
	}
	if (t->name && !strcmp(t->name, "fresh"))
		status = 201;
	int ok = sl_json_buf_put_raw(&b, "{\"op\":\"", 7) == 0 &&
	         sl_json_buf_put_raw(&b, ops[t->op], strlen(ops[t->op])) == 0 &&
	         sl_json_buf_put_raw(&b, "\",\"name\":", 9) == 0;
	ok = ok && (t->name ? sl_json_buf_put_str(&b, t->name, t->name_len)
	                    : sl_json_buf_put_raw(&b, "null", 4)) == 0;
	int n = snprintf(num, sizeof(num), ",\"name_len\":%zu,\"body_len\":%zu,\"terminated\":%s",
	                 t->name_len, t->body_len,
	                 !t->body                    ? "null"
	                 : t->body[t->body_len] == 0 ? "true"
	                                             : "false");
	ok = ok && sl_json_buf_put_raw(&b, num, (size_t)n) == 0 &&
	     sl_json_buf_put_raw(&b, ",\"body\":", 8) == 0;
	ok = ok && (t->body ? sl_json_buf_put_str(&b, t->body, t->body_len)
	                    : sl_json_buf_put_raw(&b, "null", 4)) == 0;
	ok = ok && sl_json_buf_put_raw(&b, "}\n", 2) == 0;
	if (!ok) {
		sl_json_buf_release(&b);
		return; /* no body: the module answers 500 */
	}
	*out = (struct sl_http_reply){.status = status, .body = b.data, .len = b.len};
	b.data = NULL;
	sl_json_buf_release(&b);
}

static int topic_calls(struct fake *f)
{
	pthread_mutex_lock(&f->mu);
	int n = f->topic_calls;
	pthread_mutex_unlock(&f->mu);
	return n;
}

struct fx {
	struct fake f;
	struct sl_http *h;
	struct sl_auth *auth;
	_Atomic uint64_t auth_failures;
	char dir[64]; /* the token file's folder, when auth */
	char base[64];
};

#define TOKEN "0123456789abcdef0123456789abcdef"

/* A server on a free loopback port; topics: with the topics backend;
 * with_auth: with a token file holding TOKEN. */
static void fx_start_opts(struct fx *x, bool topics, bool with_auth)
{
	char err[256], path[96];

	memset(x, 0, sizeof(*x));
	cr_assert_eq(curl_global_init(CURL_GLOBAL_DEFAULT), CURLE_OK);
	fake_init(&x->f);
	if (with_auth) {
		snprintf(x->dir, sizeof(x->dir), "/tmp/sluice-http-test-XXXXXX");
		cr_assert_not_null(mkdtemp(x->dir));
		snprintf(path, sizeof(path), "%s/token", x->dir);
		FILE *fp = fopen(path, "w");
		cr_assert_not_null(fp);
		cr_assert_eq(fchmod(fileno(fp), 0600), 0);
		fputs(TOKEN "\n", fp);
		cr_assert_eq(fclose(fp), 0);
		cr_assert_eq(sl_auth_load(path, &x->auth, err, sizeof(err)), 0, "%s", err);
	}
	struct sl_http_backend b = {.arg = &x->f,
	                            .query = fake_query,
	                            .status = fake_status,
	                            .metrics = fake_metrics,
	                            .topics = topics ? fake_topics : NULL,
	                            .auth = x->auth,
	                            .auth_failures = &x->auth_failures};
	int r = sl_http_start("127.0.0.1:0", &b, &x->h, err, sizeof(err));
	cr_assert_eq(r, 0, "sl_http_start: %s", err);
	cr_assert_gt(sl_http_port(x->h), 0);
	snprintf(x->base, sizeof(x->base), "http://127.0.0.1:%u", sl_http_port(x->h));
}

static void fx_start(struct fx *x)
{
	fx_start_opts(x, true, false);
}

static void fx_stop(struct fx *x)
{
	char path[96];

	sl_http_stop(x->h);
	fake_destroy(&x->f);
	if (x->auth) {
		sl_auth_free(x->auth);
		snprintf(path, sizeof(path), "%s/token", x->dir);
		unlink(path);
		rmdir(x->dir);
	}
	curl_global_cleanup();
}

/* ---- the client side ------------------------------------------------------- */

struct resp {
	long status;
	char *body;
	size_t len, cap;
	char ctype[128];
	char allow[64];
	CURLcode rc;
};

static size_t on_body(char *p, size_t size, size_t n, void *arg)
{
	struct resp *r = arg;
	size_t add = size * n;
	char *d = sl_grow(r->body, &r->cap, r->len + add + 1, 256);
	if (!d)
		return 0;
	r->body = d;
	memcpy(r->body + r->len, p, add);
	r->len += add;
	r->body[r->len] = 0;
	return add;
}

static size_t on_header(char *p, size_t size, size_t n, void *arg)
{
	struct resp *r = arg;
	size_t len = size * n;
	char *dst = NULL;
	size_t cap = 0, skip = 0;

	if (len > 13 && !strncasecmp(p, "Content-Type:", 13)) {
		dst = r->ctype, cap = sizeof(r->ctype), skip = 13;
	} else if (len > 6 && !strncasecmp(p, "Allow:", 6)) {
		dst = r->allow, cap = sizeof(r->allow), skip = 6;
	}
	if (dst) {
		while (skip < len && p[skip] == ' ')
			skip++;
		size_t v = len - skip;
		while (v && (p[skip + v - 1] == '\r' || p[skip + v - 1] == '\n'))
			v--;
		if (v >= cap)
			v = cap - 1;
		memcpy(dst, p + skip, v);
		dst[v] = 0;
	}
	return len;
}

/* One request on a fresh connection; `path` goes out byte for byte. */
static void req_on(CURL *cu, const char *method, const char *base, const char *path, struct resp *r)
{
	size_t ul = strlen(base) + strlen(path) + 1;
	char *url = malloc(ul);
	cr_assert_not_null(url);
	snprintf(url, ul, "%s%s", base, path);
	memset(r, 0, sizeof(*r));
	curl_easy_setopt(cu, CURLOPT_URL, url);
	curl_easy_setopt(cu, CURLOPT_PATH_AS_IS, 1L);
	curl_easy_setopt(cu, CURLOPT_PROXY, "");
	curl_easy_setopt(cu, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(cu, CURLOPT_TIMEOUT_MS, 20000L);
	curl_easy_setopt(cu, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(cu, CURLOPT_WRITEDATA, r);
	curl_easy_setopt(cu, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(cu, CURLOPT_HEADERDATA, r);
	if (!strcmp(method, "HEAD")) {
		curl_easy_setopt(cu, CURLOPT_NOBODY, 1L);
	} else if (!strcmp(method, "POST")) {
		curl_easy_setopt(cu, CURLOPT_POSTFIELDS, "x=1");
	} else if (strcmp(method, "GET")) {
		curl_easy_setopt(cu, CURLOPT_CUSTOMREQUEST, method);
	}
	r->rc = curl_easy_perform(cu);
	curl_easy_getinfo(cu, CURLINFO_RESPONSE_CODE, &r->status);
	if (!r->body)
		on_body("", 1, 0, r);
	free(url);
}

static void req(const char *method, const char *base, const char *path, struct resp *r)
{
	CURL *cu = curl_easy_init();
	cr_assert_not_null(cu);
	req_on(cu, method, base, path, r);
	curl_easy_cleanup(cu);
	cr_assert_eq(r->rc, CURLE_OK, "%s %s: %s", method, path, curl_easy_strerror(r->rc));
}

static void get(struct fx *x, const char *path, struct resp *r)
{
	req("GET", x->base, path, r);
}

static void resp_free(struct resp *r)
{
	free(r->body);
	r->body = NULL;
}

/* Checks an error answer: status, JSON content type, code, and that the
 * message contains `needle`. */
static void expect_error(struct fx *x, const char *path, long status, const char *code,
                         const char *needle)
{
	struct resp r;
	char want[96];

	get(x, path, &r);
	cr_assert_eq(r.status, status, "GET %s: status %ld, want %ld: %s", path, r.status, status,
	             r.body);
	cr_assert_str_eq(r.ctype, "application/json", "GET %s: type %s", path, r.ctype);
	snprintf(want, sizeof(want), "{\"error\":\"%s\",\"message\":\"", code);
	cr_assert(!strncmp(r.body, want, strlen(want)), "GET %s: body %s", path, r.body);
	cr_assert_not_null(strstr(r.body, needle), "GET %s: '%s' not in %s", path, needle, r.body);
	resp_free(&r);
}

/* ---- routes ------------------------------------------------------------------ */

Test(http, fixed_routes, .timeout = 60)
{
	struct fx x;
	struct resp r;

	fx_start(&x);
	get(&x, "/healthz", &r);
	cr_assert_eq(r.status, 200);
	cr_assert_str_eq(r.body, "ok\n");
	cr_assert_str_eq(r.ctype, "text/plain; charset=utf-8");
	resp_free(&r);

	get(&x, "/v1/status", &r);
	cr_assert_eq(r.status, 200);
	cr_assert_str_eq(r.body, "{\"topics\":[]}\n");
	cr_assert_str_eq(r.ctype, "application/json");
	resp_free(&r);

	get(&x, "/metrics", &r);
	cr_assert_eq(r.status, 200);
	/* The backend's text, then the HTTP port's own figures. */
	const char *mine = "# TYPE sluice_up gauge\nsluice_up 1\n";
	cr_assert_eq(strncmp(r.body, mine, strlen(mine)), 0, "%s", r.body);
	cr_assert_not_null(strstr(r.body, "\nsluice_http_connections "), "%s", r.body);
	cr_assert_not_null(
	    strstr(r.body, "\nsluice_http_refused_total{limit=\"http_max_connections\"} 0\n"), "%s",
	    r.body);
	cr_assert_str_eq(r.ctype, "text/plain; version=0.0.4; charset=utf-8");
	resp_free(&r);

	/* The dashboard: HTML that polls both endpoints, nothing external. */
	get(&x, "/", &r);
	cr_assert_eq(r.status, 200);
	cr_assert_str_eq(r.ctype, "text/html; charset=utf-8");
	cr_assert_not_null(strstr(r.body, "<html"));
	cr_assert_not_null(strstr(r.body, "'/v1/status'"));
	cr_assert_not_null(strstr(r.body, "'/metrics'"));
	cr_assert_null(strstr(r.body, "http://"));
	cr_assert_null(strstr(r.body, "https://"));
	cr_assert_null(strstr(r.body, " src="));
	resp_free(&r);

	/* Parameters on fixed routes are ignored, not refused. */
	get(&x, "/healthz?verbose=1", &r);
	cr_assert_eq(r.status, 200);
	resp_free(&r);

	/* HEAD: the status without a body. */
	req("HEAD", x.base, "/healthz", &r);
	cr_assert_eq(r.status, 200);
	cr_assert_eq(r.len, 0);
	resp_free(&r);

	pthread_mutex_lock(&x.f.mu);
	cr_assert_eq(x.f.status_calls, 1);
	cr_assert_eq(x.f.metrics_calls, 1);
	pthread_mutex_unlock(&x.f.mu);
	fx_stop(&x);
}

Test(http, unknown_routes_and_methods, .timeout = 60)
{
	struct fx x;
	struct resp r;

	fx_start(&x);
	expect_error(&x, "/nope", 404, "not_found", "no route for /nope");
	expect_error(&x, "/v1/statusx", 404, "not_found", "no route");
	expect_error(&x, "/v1/projections", 404, "not_found", "no route");
	expect_error(&x, "/healthz/", 404, "not_found", "no route");

	static const char *const methods[] = {"POST", "PUT", "DELETE", "PATCH"};
	for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++) {
		req(methods[i], x.base, "/v1/projections/table/acct-1", &r);
		cr_assert_eq(r.status, 405, "%s: %ld", methods[i], r.status);
		cr_assert_str_eq(r.allow, "GET, HEAD");
		cr_assert_str_eq(r.ctype, "application/json");
		cr_assert_not_null(strstr(r.body, "\"error\":\"method_not_allowed\""), "%s",
		                   r.body);
		cr_assert_not_null(strstr(r.body, methods[i]), "%s", r.body);
		resp_free(&r);
	}
	fx_stop(&x);
}

Test(http, projection_answers, .timeout = 60)
{
	struct fx x;
	struct resp r;

	fx_start(&x);
	get(&x, "/v1/projections/table/acct-1", &r);
	cr_assert_eq(r.status, 200);
	cr_assert_str_eq(r.body, "{\"balance\":5}\n");
	cr_assert_str_eq(r.ctype, "application/json");
	resp_free(&r);

	/* A '/' in the key, encoded or raw; '%' and '+' encoded. */
	get(&x, "/v1/projections/table/a%2Fb", &r);
	cr_assert_str_eq(r.body, "{\"slash\":true}\n");
	resp_free(&r);
	get(&x, "/v1/projections/table/a/b", &r);
	cr_assert_str_eq(r.body, "{\"slash\":true}\n");
	resp_free(&r);
	get(&x, "/v1/projections/table/100%25", &r);
	cr_assert_str_eq(r.body, "{\"percent\":true}\n");
	resp_free(&r);
	get(&x, "/v1/projections/t%61ble/k%20y%2Bz", &r);
	cr_assert_str_eq(r.body, "{\"space\":true}\n");
	resp_free(&r);

	expect_error(&x, "/v1/projections/table/acct-2", 404, "not_found", "acct-2");
	expect_error(&x, "/v1/projections/nosuch/acct-1", 404, "unknown_projection", "nosuch");
	expect_error(&x, "/v1/projections/lag/k?max_lag=3", 409, "lag_exceeded",
	             "more than max_lag 3");
	/* A backend that forgets the body gets a 500, not a crash. */
	expect_error(&x, "/v1/projections/nullbody/k", 500, "internal", "out of memory");
	fx_stop(&x);
}

Test(http, parameters_reach_the_backend, .timeout = 60)
{
	struct fx x;
	struct resp r;

	fx_start(&x);
	get(&x, "/v1/projections/echo/k1", &r);
	cr_assert_eq(r.status, 200);
	cr_assert_str_eq(r.body,
	                 "{\"projection\":\"echo\",\"key\":\"k1\",\"key_len\":2,\"has_min\":0,"
	                 "\"min_partition\":0,\"min_offset\":0,\"has_max_lag\":0,\"max_lag\":0,"
	                 "\"timeout_ms\":5000}");
	resp_free(&r);

	get(&x,
	    "/v1/projections/echo/x%00y%3Az?min_offset=3%3A1042&max_lag=18446744073709551615"
	    "&timeout_ms=60000",
	    &r);
	cr_assert_eq(r.status, 200, "%s", r.body);
	cr_assert_str_eq(r.body,
	                 "{\"projection\":\"echo\",\"key\":\"x\\u0000y:z\",\"key_len\":5,"
	                 "\"has_min\":1,\"min_partition\":3,\"min_offset\":1042,\"has_max_lag\":1,"
	                 "\"max_lag\":18446744073709551615,\"timeout_ms\":60000}");
	resp_free(&r);

	get(&x, "/v1/projections/echo/k?min_offset=4294967295:0&timeout_ms=0&max_lag=0", &r);
	cr_assert_eq(r.status, 200, "%s", r.body);
	cr_assert_not_null(strstr(r.body, "\"min_partition\":4294967295,\"min_offset\":0"));
	cr_assert_not_null(strstr(r.body, "\"has_max_lag\":1,\"max_lag\":0,\"timeout_ms\":0"));
	resp_free(&r);
	fx_stop(&x);
}

Test(http, bad_parameters, .timeout = 60)
{
	struct fx x;

	fx_start(&x);
	expect_error(
	    &x, "/v1/projections/echo/k?min_offset=x", 400, "bad_request",
	    "min_offset: expected PARTITION:OFFSET (an ack token such as 3:1042), got 'x'");
	expect_error(&x, "/v1/projections/echo/k?min_offset=3", 400, "bad_request", "got '3'");
	expect_error(&x, "/v1/projections/echo/k?min_offset=3:", 400, "bad_request", "got '3:'");
	expect_error(&x, "/v1/projections/echo/k?min_offset=-1:5", 400, "bad_request",
	             "min_offset");
	expect_error(&x, "/v1/projections/echo/k?min_offset=4294967296:0", 400, "bad_request",
	             "min_offset");
	expect_error(&x, "/v1/projections/echo/k?min_offset=1:18446744073709551616", 400,
	             "bad_request", "min_offset");
	expect_error(&x, "/v1/projections/echo/k?min_offset", 400, "bad_request",
	             "min_offset: needs a value");
	expect_error(&x, "/v1/projections/echo/k?max_lag=1e3", 400, "bad_request",
	             "max_lag: expected a whole number of events, got '1e3'");
	expect_error(&x, "/v1/projections/echo/k?max_lag=", 400, "bad_request", "got ''");
	expect_error(&x, "/v1/projections/echo/k?timeout_ms=60001", 400, "bad_request",
	             "timeout_ms: expected a whole number of milliseconds from 0 to 60000");
	expect_error(&x, "/v1/projections/echo/k?max_lag=1&max_lag=2", 400, "bad_request",
	             "max_lag: given twice");
	expect_error(&x, "/v1/projections/echo/k?wait=1", 400, "bad_request",
	             "unknown parameter 'wait'");
	expect_error(&x, "/v1/projections/echo/k?max_lag=%zz", 400, "bad_request",
	             "bad percent-encoding");
	expect_error(&x, "/v1/projections/echo/k%zz", 400, "bad_request",
	             "key: bad percent-encoding at byte 1");
	expect_error(&x, "/v1/projections/echo/k%4", 400, "bad_request",
	             "key: bad percent-encoding");
	expect_error(&x, "/v1/projections/e%00cho/k", 400, "bad_request", "NUL");
	expect_error(&x, "/v1/projections/echo", 400, "bad_request", "NAME/KEY");
	expect_error(&x, "/v1/projections/echo/", 400, "bad_request", "NAME/KEY");
	expect_error(&x, "/v1/projections//k", 400, "bad_request", "NAME/KEY");
	expect_error(&x, "/v1/projections/", 400, "bad_request", "NAME/KEY");

	/* More parameters than SL_HTTP_MAX_ARGS. */
	char path[512];
	int n = snprintf(path, sizeof(path), "/v1/projections/echo/k?");
	for (int i = 0; i <= SL_HTTP_MAX_ARGS; i++)
		n += snprintf(path + n, sizeof(path) - (size_t)n, "a%d=1&", i);
	expect_error(&x, path, 400, "bad_request", "too many query parameters (17, at most 16)");
	fx_stop(&x);
}

Test(http, long_urls_are_refused, .timeout = 60)
{
	struct fx x;
	struct resp r;
	size_t big = 200000;
	char *path = malloc(big + 64);

	cr_assert_not_null(path);
	fx_start(&x);
	/* Just at the limit: served. */
	size_t pre = strlen("/v1/projections/table/");
	memcpy(path, "/v1/projections/table/", pre);
	memset(path + pre, 'k', SL_HTTP_MAX_URL - pre);
	path[SL_HTTP_MAX_URL] = 0;
	expect_error(&x, path, 404, "not_found", "no entry");
	/* One byte over, in the path or in the parameters: 414 from us. */
	path[SL_HTTP_MAX_URL] = 'k';
	path[SL_HTTP_MAX_URL + 1] = 0;
	expect_error(&x, path, 414, "uri_too_long", "longer than 2048 bytes");
	snprintf(path, big, "/v1/projections/table/k?max_lag=");
	memset(path + strlen(path), '1', SL_HTTP_MAX_URL);
	path[SL_HTTP_MAX_URL + 40] = 0;
	expect_error(&x, path, 414, "uri_too_long", "longer than");
	/* Beyond MHD's per-connection memory: refused by MHD itself, still
	 * with a 4xx, and the server keeps serving. */
	memcpy(path, "/v1/projections/table/", pre);
	memset(path + pre, 'k', big - pre);
	path[big] = 0;
	get(&x, path, &r);
	cr_assert(r.status == 414 || r.status == 431, "status %ld", r.status);
	resp_free(&r);
	get(&x, "/healthz", &r);
	cr_assert_eq(r.status, 200);
	resp_free(&r);
	fx_stop(&x);
	free(path);
}

/* ---- topics ------------------------------------------------------------------- */

/* A request that may carry a body: announced (Content-Length) or chunked. */
struct breq {
	const char *method;
	const char *path;
	const char *body; /* NULL: none */
	size_t len;
	bool chunked;
	bool expect;       /* send `Expect: 100-continue` (the server may refuse first) */
	const char *token; /* `Authorization: Bearer token` */
};

struct upload {
	const char *p;
	size_t len, off;
};

static size_t on_read(char *buf, size_t size, size_t n, void *arg)
{
	struct upload *u = arg;
	size_t take = size * n;

	if (take > u->len - u->off)
		take = u->len - u->off;
	/* Small pieces, so a chunked body arrives as many chunks. */
	if (take > 4000)
		take = 4000;
	memcpy(buf, u->p + u->off, take);
	u->off += take;
	return take;
}

/* Sends q on a fresh connection; r->rc says whether an answer came. */
static void breq_send(struct fx *x, const struct breq *q, struct resp *r)
{
	CURL *cu = curl_easy_init();
	struct curl_slist *hdr = NULL;
	struct upload up = {.p = q->body, .len = q->len};
	char line[128];

	cr_assert_not_null(cu);
	size_t ul = strlen(x->base) + strlen(q->path) + 1;
	char *url = malloc(ul);
	cr_assert_not_null(url);
	snprintf(url, ul, "%s%s", x->base, q->path);
	memset(r, 0, sizeof(*r));
	curl_easy_setopt(cu, CURLOPT_URL, url);
	curl_easy_setopt(cu, CURLOPT_PATH_AS_IS, 1L);
	curl_easy_setopt(cu, CURLOPT_PROXY, "");
	curl_easy_setopt(cu, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(cu, CURLOPT_TIMEOUT_MS, 20000L);
	curl_easy_setopt(cu, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(cu, CURLOPT_WRITEDATA, r);
	curl_easy_setopt(cu, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(cu, CURLOPT_HEADERDATA, r);
	if (q->body && q->chunked) {
		curl_easy_setopt(cu, CURLOPT_POST, 1L);
		curl_easy_setopt(cu, CURLOPT_READFUNCTION, on_read);
		curl_easy_setopt(cu, CURLOPT_READDATA, &up);
		hdr = curl_slist_append(hdr, "Transfer-Encoding: chunked");
	} else if (q->body) {
		curl_easy_setopt(cu, CURLOPT_POSTFIELDS, q->body);
		curl_easy_setopt(cu, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)q->len);
	}
	if (!strcmp(q->method, "HEAD"))
		curl_easy_setopt(cu, CURLOPT_NOBODY, 1L);
	else if (strcmp(q->method, q->body ? "POST" : "GET"))
		curl_easy_setopt(cu, CURLOPT_CUSTOMREQUEST, q->method);
	hdr = curl_slist_append(hdr, q->expect ? "Expect: 100-continue" : "Expect:");
	if (q->token) {
		snprintf(line, sizeof(line), "Authorization: Bearer %s", q->token);
		hdr = curl_slist_append(hdr, line);
	}
	curl_easy_setopt(cu, CURLOPT_HTTPHEADER, hdr);
	r->rc = curl_easy_perform(cu);
	curl_easy_getinfo(cu, CURLINFO_RESPONSE_CODE, &r->status);
	if (!r->body)
		on_body("", 1, 0, r);
	curl_slist_free_all(hdr);
	curl_easy_cleanup(cu);
	free(url);
}

/* Sends q and checks the answer's status, that it is JSON, and that its
 * body contains `needle`. */
static void breq_expect(struct fx *x, const struct breq *q, long status, const char *needle)
{
	struct resp r;

	breq_send(x, q, &r);
	cr_assert_eq(r.rc, CURLE_OK, "%s %s: %s", q->method, q->path, curl_easy_strerror(r.rc));
	cr_assert_eq(r.status, status, "%s %s: status %ld, want %ld: %s", q->method, q->path,
	             r.status, status, r.body);
	if (strcmp(q->method, "HEAD")) {
		cr_assert_str_eq(r.ctype, "application/json", "%s %s", q->method, q->path);
		cr_assert_not_null(strstr(r.body, needle), "%s %s: '%s' not in %s", q->method,
		                   q->path, needle, r.body);
	}
	resp_free(&r);
}

Test(http, topic_routes_reach_the_backend, .timeout = 60)
{
	struct fx x;
	const char *doc = "{\"name\":\"orders\",\"partitions\":8}";
	const char *alter = "{\"settings\":{\"durability\":\"none\"}}";

	fx_start(&x);
	breq_expect(&x, &(struct breq){.method = "GET", .path = "/v1/topics"}, 200,
	            "{\"op\":\"list\",\"name\":null,\"name_len\":0,\"body_len\":0,"
	            "\"terminated\":null,\"body\":null}");
	breq_expect(&x, &(struct breq){.method = "HEAD", .path = "/v1/topics"}, 200, "");
	breq_expect(
	    &x,
	    &(struct breq){.method = "POST", .path = "/v1/topics", .body = doc, .len = strlen(doc)},
	    200,
	    "{\"op\":\"create\",\"name\":null,\"name_len\":0,\"body_len\":32,"
	    "\"terminated\":true,\"body\":\"{\\\"name\\\":\\\"orders\\\",\\\"partitions\\\":8}"
	    "\"}");
	breq_expect(&x, &(struct breq){.method = "GET", .path = "/v1/topics/orders"}, 200,
	            "{\"op\":\"describe\",\"name\":\"orders\",\"name_len\":6,\"body_len\":0,"
	            "\"terminated\":null,\"body\":null}");
	breq_expect(&x, &(struct breq){.method = "HEAD", .path = "/v1/topics/orders"}, 200, "");
	/* POST and PATCH on a topic both alter it. */
	static const char *const alters[] = {"POST", "PATCH"};
	for (size_t i = 0; i < 2; i++)
		breq_expect(&x,
		            &(struct breq){.method = alters[i],
		                           .path = "/v1/topics/orders",
		                           .body = alter,
		                           .len = strlen(alter)},
		            200,
		            "{\"op\":\"alter\",\"name\":\"orders\",\"name_len\":6,\"body_len\":34,"
		            "\"terminated\":true,\"body\":\"{\\\"settings\\\":{\\\"durability\\\":"
		            "\\\"none\\\"}}\"}");
	breq_expect(&x, &(struct breq){.method = "DELETE", .path = "/v1/topics/orders"}, 200,
	            "{\"op\":\"delete\",\"name\":\"orders\",\"name_len\":6,\"body_len\":0,"
	            "\"terminated\":null,\"body\":null}");
	/* NAME percent-decoded once, '+' literal; any byte but '/' and NUL. */
	breq_expect(&x, &(struct breq){.method = "GET", .path = "/v1/topics/or%64ers.v1_x-y"}, 200,
	            "\"name\":\"orders.v1_x-y\",\"name_len\":13,");
	breq_expect(&x, &(struct breq){.method = "GET", .path = "/v1/topics/a+b%2525%20c"}, 200,
	            "\"name\":\"a+b%25 c\",\"name_len\":8,");
	/* A body on list, describe or delete is read and dropped. */
	breq_expect(
	    &x,
	    &(struct breq){
	        .method = "DELETE", .path = "/v1/topics/orders", .body = doc, .len = strlen(doc)},
	    200, "\"op\":\"delete\",\"name\":\"orders\",\"name_len\":6,\"body_len\":0,");
	/* A body with a NUL in it arrives whole; chunked as well. */
	breq_expect(
	    &x,
	    &(struct breq){.method = "POST", .path = "/v1/topics", .body = "{\"a\0b\"}", .len = 7},
	    200, "\"body_len\":7,\"terminated\":true,\"body\":\"{\\\"a\\u0000b\\\"}\"");
	breq_expect(&x,
	            &(struct breq){.method = "PATCH",
	                           .path = "/v1/topics/orders",
	                           .body = alter,
	                           .len = strlen(alter),
	                           .chunked = true},
	            200, "\"op\":\"alter\",\"name\":\"orders\",\"name_len\":6,\"body_len\":34,");
	/* The backend's statuses and errors go out as they are. */
	breq_expect(
	    &x,
	    &(struct breq){
	        .method = "POST", .path = "/v1/topics/fresh", .body = alter, .len = strlen(alter)},
	    201, "\"op\":\"alter\"");
	breq_expect(&x, &(struct breq){.method = "GET", .path = "/v1/topics/missing"}, 404,
	            "{\"error\":\"unknown_topic\",\"message\":\"no topic 'missing'\"}");
	cr_assert_eq(topic_calls(&x.f), 15);
	fx_stop(&x);
}

Test(http, topic_bad_requests, .timeout = 60)
{
	struct fx x;
	struct resp r;
	const char *doc = "{\"name\":\"t\"}";

	fx_start(&x);
	/* Each method where it is not one: 405 with the path's Allow. */
	static const struct {
		const char *method, *path, *allow;
	} wrong[] = {
	    {"PUT", "/v1/topics", "GET, HEAD, POST"},
	    {"PATCH", "/v1/topics", "GET, HEAD, POST"},
	    {"DELETE", "/v1/topics", "GET, HEAD, POST"},
	    {"PUT", "/v1/topics/t", "GET, HEAD, POST, PATCH, DELETE"},
	    {"OPTIONS", "/v1/topics/t", "GET, HEAD, POST, PATCH, DELETE"},
	};
	for (size_t i = 0; i < sizeof(wrong) / sizeof(wrong[0]); i++) {
		breq_send(&x,
		          &(struct breq){.method = wrong[i].method,
		                         .path = wrong[i].path,
		                         .body = doc,
		                         .len = strlen(doc)},
		          &r);
		cr_assert_eq(r.rc, CURLE_OK, "%s", curl_easy_strerror(r.rc));
		cr_assert_eq(r.status, 405, "%s %s: %ld", wrong[i].method, wrong[i].path, r.status);
		cr_assert_str_eq(r.allow, wrong[i].allow);
		cr_assert_not_null(strstr(r.body, "\"error\":\"method_not_allowed\""), "%s",
		                   r.body);
		resp_free(&r);
	}
	/* Names: empty, bad escapes, '/' or NUL once decoded: 400; a path
	 * below a topic, or one that only starts like /v1/topics: 404. */
	expect_error(&x, "/v1/topics/", 400, "bad_request", "non-empty NAME");
	expect_error(&x, "/v1/topics/a%2Fb", 400, "bad_request", "topic name: contains '/'");
	expect_error(&x, "/v1/topics/a%00b", 400, "bad_request", "NUL");
	expect_error(&x, "/v1/topics/a%zz", 400, "bad_request", "bad percent-encoding at byte 1");
	expect_error(&x, "/v1/topics/a%2", 400, "bad_request", "bad percent-encoding");
	expect_error(&x, "/v1/topics/a/b", 404, "not_found", "no route for /v1/topics/a/b");
	expect_error(&x, "/v1/topics//", 404, "not_found", "no route");
	expect_error(&x, "/v1/topicsx", 404, "not_found", "no route");
	/* Refused on the header, before the body (which is never read). */
	breq_expect(
	    &x,
	    &(struct breq){
	        .method = "DELETE", .path = "/v1/topics/a/b", .body = doc, .len = strlen(doc)},
	    404, "no route");
	/* No parameters: a mutation never ignores what it was asked. */
	expect_error(&x, "/v1/topics?verbose=1", 400, "bad_request",
	             "unknown parameter 'verbose' (/v1/topics takes none)");
	breq_expect(&x, &(struct breq){.method = "DELETE", .path = "/v1/topics/t?if_empty=1"}, 400,
	            "unknown parameter 'if_empty' (/v1/topics/NAME takes none)");
	/* Create and alter need a body. */
	breq_expect(&x,
	            &(struct breq){.method = "POST", .path = "/v1/topics", .body = "", .len = 0},
	            400, "POST /v1/topics needs a JSON body");
	breq_expect(&x, &(struct breq){.method = "PATCH", .path = "/v1/topics/t"}, 400,
	            "PATCH /v1/topics/NAME needs a JSON body");
	/* Too long a target: 414 as elsewhere. */
	char path[SL_HTTP_MAX_URL + 64];
	int n = snprintf(path, sizeof(path), "/v1/topics/");
	memset(path + n, 't', sizeof(path) - (size_t)n - 1);
	path[sizeof(path) - 1] = 0;
	expect_error(&x, path, 414, "uri_too_long", "longer than 2048 bytes");
	cr_assert_eq(topic_calls(&x.f), 0);
	fx_stop(&x);
}

Test(http, topic_body_limits, .timeout = 60)
{
	struct fx x;
	struct resp r;
	size_t big = 2u << 20;
	char *body = malloc(big);
	char want[64];

	cr_assert_not_null(body);
	memset(body, 'x', big);
	fx_start(&x);
	/* Exactly SL_HTTP_MAX_BODY, announced or chunked: served whole. */
	snprintf(want, sizeof(want), "\"body_len\":%u,\"terminated\":true", SL_HTTP_MAX_BODY);
	breq_expect(
	    &x,
	    &(struct breq){
	        .method = "POST", .path = "/v1/topics", .body = body, .len = SL_HTTP_MAX_BODY},
	    200, want);
	breq_expect(&x,
	            &(struct breq){.method = "PATCH",
	                           .path = "/v1/topics/t",
	                           .body = body,
	                           .len = SL_HTTP_MAX_BODY,
	                           .chunked = true},
	            200, want);
	cr_assert_eq(topic_calls(&x.f), 2);

	/* One byte more, announced: 413 on the header. The client that waits
	 * for 100 Continue reads it before sending any of its body. */
	breq_expect(&x,
	            &(struct breq){.method = "POST",
	                           .path = "/v1/topics",
	                           .body = body,
	                           .len = SL_HTTP_MAX_BODY + 1,
	                           .expect = true},
	            413,
	            "{\"error\":\"content_too_large\",\"message\":\"request body of 65537 bytes, "
	            "more than 65536");
	/* Chunked, nothing announced: read, dropped, then 413. */
	breq_expect(&x,
	            &(struct breq){.method = "PATCH",
	                           .path = "/v1/topics/t",
	                           .body = body,
	                           .len = SL_HTTP_MAX_BODY + 1,
	                           .chunked = true},
	            413, "\"error\":\"content_too_large\"");
	breq_expect(&x,
	            &(struct breq){.method = "DELETE",
	                           .path = "/v1/topics/t",
	                           .body = body,
	                           .len = SL_HTTP_MAX_BODY_DROP - 1000,
	                           .chunked = true},
	            413, "request body of more than 65536 bytes");
	/* Chunked past SL_HTTP_MAX_BODY_DROP: the connection is closed with
	 * no answer (curl sees the close or a reset, whichever comes first). */
	breq_send(
	    &x,
	    &(struct breq){
	        .method = "POST", .path = "/v1/topics", .body = body, .len = big, .chunked = true},
	    &r);
	cr_assert_neq(r.rc, CURLE_OK, "status %ld: %s", r.status, r.body);
	cr_assert_eq(r.status, 0);
	resp_free(&r);
	cr_assert_eq(topic_calls(&x.f), 2);
	/* And the port goes on serving. */
	breq_expect(&x, &(struct breq){.method = "GET", .path = "/v1/topics"}, 200,
	            "\"op\":\"list\"");
	fx_stop(&x);
	free(body);
}

Test(http, topics_without_a_backend, .timeout = 60)
{
	struct fx x;

	fx_start_opts(&x, false, false);
	expect_error(&x, "/v1/topics", 404, "not_found", "no route for /v1/topics");
	expect_error(&x, "/v1/topics/t", 404, "not_found", "no route");
	breq_expect(&x,
	            &(struct breq){.method = "POST", .path = "/v1/topics", .body = "{}", .len = 2},
	            404, "no route");
	breq_expect(&x, &(struct breq){.method = "DELETE", .path = "/v1/topics/t"}, 404,
	            "no route");
	/* The routes are not suggested where they are not served. */
	struct resp r;
	get(&x, "/nope", &r);
	cr_assert_null(strstr(r.body, "/v1/topics"), "%s", r.body);
	resp_free(&r);
	fx_stop(&x);
}

/* With `auth`, every route but /healthz wants the token, before anything
 * else about the request is looked at (a topic body is never read). */
Test(http, auth_on_every_route, .timeout = 60)
{
	struct fx x;
	struct resp r;
	const char *doc = "{\"name\":\"t\"}";
	static const struct {
		const char *method, *path;
		bool body;
	} routes[] = {
	    {"GET", "/v1/status", false},
	    {"GET", "/metrics", false},
	    {"GET", "/", false},
	    {"GET", "/v1/projections/table/acct-1", false},
	    {"GET", "/v1/topics", false},
	    {"POST", "/v1/topics", true},
	    {"GET", "/v1/topics/t", false},
	    {"PATCH", "/v1/topics/t", true},
	    {"POST", "/v1/topics/t", true},
	    {"DELETE", "/v1/topics/t", false},
	    /* Even where the answer would be 404, 405 or 400. */
	    {"GET", "/nope", false},
	    {"PUT", "/v1/topics", true},
	    {"GET", "/v1/topics/a%2Fb", false},
	};

	fx_start_opts(&x, true, true);
	uint64_t failures = 0;
	for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++) {
		static const char *const tokens[] = {NULL, "wrong-token-wrong-token-wrong"};
		for (size_t k = 0; k < 2; k++) {
			breq_send(&x,
			          &(struct breq){.method = routes[i].method,
			                         .path = routes[i].path,
			                         .body = routes[i].body ? doc : NULL,
			                         .len = routes[i].body ? strlen(doc) : 0,
			                         .token = tokens[k]},
			          &r);
			cr_assert_eq(r.rc, CURLE_OK, "%s", curl_easy_strerror(r.rc));
			cr_assert_eq(r.status, 401, "%s %s (%s): %ld %s", routes[i].method,
			             routes[i].path, tokens[k] ? "wrong token" : "no token",
			             r.status, r.body);
			cr_assert_not_null(strstr(r.body, "\"error\":\"unauthorized\""), "%s",
			                   r.body);
			resp_free(&r);
			failures++;
		}
		breq_send(&x,
		          &(struct breq){.method = routes[i].method,
		                         .path = routes[i].path,
		                         .body = routes[i].body ? doc : NULL,
		                         .len = routes[i].body ? strlen(doc) : 0,
		                         .token = TOKEN},
		          &r);
		cr_assert_eq(r.rc, CURLE_OK, "%s", curl_easy_strerror(r.rc));
		cr_assert_neq(r.status, 401, "%s %s with the token: %s", routes[i].method,
		              routes[i].path, r.body);
		resp_free(&r);
	}
	cr_assert_eq(atomic_load(&x.auth_failures), failures);
	/* Only the requests with the token reached the topics backend. */
	cr_assert_eq(topic_calls(&x.f), 6);
	breq_expect(&x, &(struct breq){.method = "GET", .path = "/v1/topics", .token = TOKEN}, 200,
	            "\"op\":\"list\"");
	get(&x, "/healthz", &r);
	cr_assert_eq(r.status, 200);
	resp_free(&r);
	fx_stop(&x);
}

/* ---- concurrency --------------------------------------------------------------- */

struct client_arg {
	const char *base;
	char path[128];
	struct resp r;
};

static void *client_thread(void *p)
{
	struct client_arg *a = p;
	CURL *cu = curl_easy_init();
	if (!cu) {
		a->r.rc = CURLE_FAILED_INIT;
		return NULL;
	}
	req_on(cu, "GET", a->base, a->path, &a->r);
	curl_easy_cleanup(cu);
	return NULL;
}

/* Waits until `n` handlers are inside the blocking backend at once, or 10 s. */
static bool wait_inside(struct fake *f, int n)
{
	struct timespec dl;
	bool ok;

	deadline_in(&dl, 10000);
	pthread_mutex_lock(&f->mu);
	while (f->arrived < n)
		if (pthread_cond_timedwait(&f->cv, &f->mu, &dl) == ETIMEDOUT)
			break;
	ok = f->arrived >= n;
	pthread_mutex_unlock(&f->mu);
	return ok;
}

Test(http, concurrent_blocking_queries, .timeout = 60)
{
	enum { N = 8 };
	struct fx x;
	struct client_arg args[N];
	pthread_t th[N];
	struct resp r;

	fx_start(&x);
	for (int i = 0; i < N; i++) {
		memset(&args[i], 0, sizeof(args[i]));
		args[i].base = x.base;
		snprintf(args[i].path, sizeof(args[i].path),
		         "/v1/projections/block/k%d?timeout_ms=30000", i);
		cr_assert_eq(pthread_create(&th[i], NULL, client_thread, &args[i]), 0);
	}
	/* All N handlers are blocked in the backend at the same moment ... */
	cr_assert(wait_inside(&x.f, N), "only %d of %d handlers ran concurrently", x.f.arrived, N);
	/* ... and the port still answers everything else meanwhile. */
	get(&x, "/healthz", &r);
	cr_assert_eq(r.status, 200);
	resp_free(&r);
	get(&x, "/v1/projections/table/acct-1", &r);
	cr_assert_eq(r.status, 200);
	resp_free(&r);

	pthread_mutex_lock(&x.f.mu);
	x.f.released = true;
	pthread_cond_broadcast(&x.f.cv);
	pthread_mutex_unlock(&x.f.mu);
	for (int i = 0; i < N; i++) {
		cr_assert_eq(pthread_join(th[i], NULL), 0);
		cr_assert_eq(args[i].r.rc, CURLE_OK, "%s", curl_easy_strerror(args[i].r.rc));
		cr_assert_eq(args[i].r.status, 200);
		cr_assert_str_eq(args[i].r.body, "{\"released\":true}\n");
		resp_free(&args[i].r);
	}
	cr_assert_eq(x.f.max_inside, N);
	fx_stop(&x);
}

Test(http, timeout_answers_504, .timeout = 60)
{
	struct fx x;

	fx_start(&x);
	expect_error(&x, "/v1/projections/block/k?min_offset=2:7&timeout_ms=50", 504, "timeout",
	             "offset 2:7 not applied within 50 ms");
	fx_stop(&x);
}

/* Stop must not wait for idle keep-alive connections (MHD closes them), nor
 * leave a handler running: it returns once every thread is joined. */
Test(http, stop_with_idle_keepalive, .timeout = 60)
{
	struct fx x;
	struct resp r;

	fx_start(&x);
	CURL *cu = curl_easy_init();
	cr_assert_not_null(cu);
	req_on(cu, "GET", x.base, "/healthz", &r);
	cr_assert_eq(r.status, 200);
	resp_free(&r);
	req_on(cu, "GET", x.base, "/v1/status", &r); /* same connection, reused */
	cr_assert_eq(r.status, 200);
	resp_free(&r);
	long conns = -1;
	curl_easy_getinfo(cu, CURLINFO_NUM_CONNECTS, &conns);
	cr_assert_eq(conns, 0, "the second request opened a new connection");
	uint64_t t0 = sl_now_ns();
	fx_stop(&x);
	cr_assert_lt(sl_now_ns() - t0, 5000000000ull, "stop waited on an idle connection");
	curl_easy_cleanup(cu);
}

Test(http, start_errors, .timeout = 60)
{
	struct fx x;
	struct sl_http *h2 = NULL;
	char err[256], addr[64];
	struct sl_http_backend b = {
	    .arg = NULL, .query = fake_query, .status = fake_status, .metrics = fake_metrics};

	fx_start(&x);
	snprintf(addr, sizeof(addr), "127.0.0.1:%u", sl_http_port(x.h));
	cr_assert_eq(sl_http_start(addr, &b, &h2, err, sizeof(err)), -EADDRINUSE);
	cr_assert_null(h2);
	cr_assert_not_null(strstr(err, addr), "%s", err);
	cr_assert_not_null(strstr(err, "in use"), "%s", err);

	cr_assert_eq(sl_http_start("nohost", &b, &h2, err, sizeof(err)), -EINVAL);
	cr_assert_not_null(strstr(err, "expected HOST:PORT"), "%s", err);
	cr_assert_eq(sl_http_start("example.com:80", &b, &h2, err, sizeof(err)), -EINVAL);
	struct sl_http_backend half = b;
	half.metrics = NULL;
	cr_assert_eq(sl_http_start("127.0.0.1:0", &half, &h2, err, sizeof(err)), -EINVAL);
	cr_assert_null(h2);
	sl_http_stop(NULL);
	fx_stop(&x);
}

/* ---- the parser alone ------------------------------------------------------------ */

static int parse(const char *path, const char *const *names, const char *const *values, size_t n,
                 struct sl_http_query *q, char *err, size_t errlen)
{
	static char buf[SL_HTTP_MAX_URL + 2];
	return sl_http_parse_query(path, names, values, n, buf, sizeof(buf), q, err, errlen);
}

Test(http, parse_consistency)
{
	struct sl_http_query q;
	char err[256];

	cr_assert_eq(parse("p/k", NULL, NULL, 0, &q, err, sizeof(err)), 0);
	cr_assert_eq(q.consistency, SL_HTTP_CONSISTENCY_DEFAULT);
	const char *n[] = {"consistency"};
	const char *one[] = {"one"}, *quorum[] = {"quorum"}, *all[] = {"all"}, *none[] = {NULL};
	cr_assert_eq(parse("p/k", n, one, 1, &q, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(q.consistency, SL_HTTP_CONSISTENCY_ONE);
	cr_assert_eq(parse("p/k", n, quorum, 1, &q, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(q.consistency, SL_HTTP_CONSISTENCY_QUORUM);
	cr_assert_eq(parse("p/k", n, all, 1, &q, err, sizeof(err)), -EINVAL);
	cr_assert_str_eq(err, "consistency: expected one or quorum, got 'all'");
	cr_assert_eq(parse("p/k", n, none, 1, &q, err, sizeof(err)), -EINVAL);
	const char *n2[] = {"consistency", "consistency"}, *v2[] = {"one", "quorum"};
	cr_assert_eq(parse("p/k", n2, v2, 2, &q, err, sizeof(err)), -EINVAL);
	cr_assert_str_eq(err, "consistency: given twice");
}

Test(http, parse_query_direct)
{
	struct sl_http_query q;
	char err[256];

	cr_assert_eq(parse("p/k", NULL, NULL, 0, &q, err, sizeof(err)), 0);
	cr_assert_eq(q.projection_len, 1);
	cr_assert_eq(q.key_len, 1);
	cr_assert_str_eq(q.projection, "p");
	cr_assert_str_eq(q.key, "k");
	cr_assert_eq(q.timeout_ms, SL_HTTP_TIMEOUT_DEFAULT_MS);
	cr_assert_not(q.has_min);
	cr_assert_not(q.has_max_lag);

	/* '+' is literal in the path, a space in parameters. */
	const char *n1[] = {"min%5Foffset", "", "max_lag"};
	const char *v1[] = {"0%3A9", NULL, "+7"};
	cr_assert_eq(parse("a+b/c+d", n1, v1, 2, &q, err, sizeof(err)), 0, "%s", err);
	cr_assert_str_eq(q.projection, "a+b");
	cr_assert_str_eq(q.key, "c+d");
	cr_assert(q.has_min && q.min_partition == 0 && q.min_offset == 9);
	cr_assert_eq(parse("a/b", n1, v1, 3, &q, err, sizeof(err)), -EINVAL);
	cr_assert_str_eq(err, "max_lag: expected a whole number of events, got ' 7'");

	/* A buffer too small for the path is refused, not overrun. */
	char small[4];
	cr_assert_eq(
	    sl_http_parse_query("ab/c", NULL, NULL, 0, small, sizeof(small), &q, err, sizeof(err)),
	    -EINVAL);
	cr_assert_str_eq(err, "path: longer than 2 bytes");
	cr_assert_eq(sl_http_parse_query("a/c", NULL, NULL, 0, small, 5, &q, err, sizeof(err)), 0);
	cr_assert_eq(sl_http_parse_query(NULL, NULL, NULL, 0, small, 0, &q, err, sizeof(err)),
	             -EINVAL);

	/* A long bad value is quoted cut, never overrunning the message. */
	char longv[300];
	memset(longv, '9', sizeof(longv) - 1);
	longv[sizeof(longv) - 1] = 0;
	const char *n2[] = {"max_lag"};
	const char *v2[] = {longv};
	cr_assert_eq(parse("a/b", n2, v2, 1, &q, err, sizeof(err)), -EINVAL);
	cr_assert_not_null(strstr(err, "9999...'"), "%s", err);

	uint32_t p;
	uint64_t o;
	cr_assert_eq(sl_token_parse("12:34", 5, &p, &o), 0);
	cr_assert(p == 12 && o == 34);
	cr_assert_eq(sl_token_parse("12:34", 4, &p, &o), 0); /* exactly len bytes */
	cr_assert_eq(o, 3);
	cr_assert_eq(sl_token_parse(":1", 2, &p, &o), -EINVAL);
	cr_assert_eq(sl_token_parse("1:2:3", 5, &p, &o), -EINVAL);
	cr_assert_eq(sl_token_parse(" 1:2", 4, &p, &o), -EINVAL);
	cr_assert_eq(sl_token_parse("+1:2", 4, &p, &o), -EINVAL);
}

Test(http, error_reply_escapes)
{
	struct sl_http_reply r;

	cr_assert_eq(sl_http_error_reply(&r, 404, "not_found", "no key '%s'", "a\"b\\c\n\x01"), 0);
	cr_assert_eq(r.status, 404);
	cr_assert_null(r.content_type);
	cr_assert_str_eq(
	    r.body, "{\"error\":\"not_found\",\"message\":\"no key 'a\\\"b\\\\c\\n\\u0001'\"}\n");
	cr_assert_eq(r.len, strlen(r.body));
	free(r.body);
}
