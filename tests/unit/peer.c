/*
 * server/peer.c: GET requests to peers in parallel, against a real HTTP
 * port (http/ with a fake backend) in this process: answers land in their
 * request, a peer that holds its answer (a handler blocked on a condition
 * variable, released at the end) costs the caller its deadline and no
 * more, `enough` ends the wait early, a closed port fails at once, an
 * answer over max_body fails, the token goes out as a Bearer header, and
 * the pool's handles serve call after call. Threaded (MHD's threads), so
 * also under TSan.
 */
#include <criterion/criterion.h>
#include <curl/curl.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "auth/auth.h"
#include "base/base.h"
#include "http/http.h"
#include "server/server.h"
#include "json/json.h"

#define MS 1000000ull

struct fake {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool released;
	int blocked; /* handlers inside "block" */
	char last_token[128];
};

static char *dupstr(const char *s, size_t *len)
{
	*len = strlen(s);
	char *p = malloc(*len + 1);
	cr_assert_not_null(p);
	memcpy(p, s, *len + 1);
	return p;
}

static void fake_query(void *arg, const struct sl_http_query *q, struct sl_http_reply *out)
{
	struct fake *f = arg;

	if (!strcmp(q->projection, "block")) {
		struct timespec dl;
		clock_gettime(CLOCK_REALTIME, &dl);
		dl.tv_sec += 20; /* the test releases it long before */
		pthread_mutex_lock(&f->mu);
		f->blocked++;
		pthread_cond_broadcast(&f->cv);
		while (!f->released)
			if (pthread_cond_timedwait(&f->cv, &f->mu, &dl) == ETIMEDOUT)
				break;
		f->blocked--;
		pthread_mutex_unlock(&f->mu);
		out->status = 200;
		out->body = dupstr("{\"late\":true}\n", &out->len);
		return;
	}
	if (!strcmp(q->projection, "big")) {
		out->status = 200;
		out->len = 100000;
		out->body = malloc(out->len);
		cr_assert_not_null(out->body);
		memset(out->body, ' ', out->len);
		return;
	}
	char body[200];
	snprintf(body, sizeof(body), "{\"key\":\"%.*s\",\"consistency\":%d}\n", (int)q->key_len,
	         q->key, (int)q->consistency);
	out->status = !strcmp(q->projection, "missing") ? 404 : 200;
	out->body = dupstr(body, &out->len);
}

static void fake_status(void *arg, struct sl_http_reply *out)
{
	(void)arg;
	out->status = 200;
	out->body = dupstr("{}", &out->len);
}

struct fx {
	struct fake f;
	struct sl_http *h;
	struct sl_peers *ps;
	char base[64];
	char urls[4][256];
};

static void fx_start(struct fx *x)
{
	char err[256];

	memset(x, 0, sizeof(*x));
	cr_assert_eq(curl_global_init(CURL_GLOBAL_DEFAULT), CURLE_OK);
	pthread_mutex_init(&x->f.mu, NULL);
	pthread_cond_init(&x->f.cv, NULL);
	struct sl_http_backend b = {
	    .arg = &x->f, .query = fake_query, .status = fake_status, .metrics = fake_status};
	cr_assert_eq(sl_http_start("127.0.0.1:0", &b, &x->h, err, sizeof(err)), 0, "%s", err);
	snprintf(x->base, sizeof(x->base), "http://127.0.0.1:%u", sl_http_port(x->h));
	cr_assert_eq(sl__peers_create(&x->ps), 0);
}

static void fx_release(struct fx *x)
{
	pthread_mutex_lock(&x->f.mu);
	x->f.released = true;
	pthread_cond_broadcast(&x->f.cv);
	pthread_mutex_unlock(&x->f.mu);
}

static void fx_stop(struct fx *x)
{
	fx_release(x);
	sl__peers_destroy(x->ps);
	sl_http_stop(x->h); /* waits for the released handlers */
	pthread_mutex_destroy(&x->f.mu);
	pthread_cond_destroy(&x->f.cv);
	curl_global_cleanup();
}

/* A loopback port nothing listens on (bound, then closed). */
static unsigned closed_port(void)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t l = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	cr_assert_geq(fd, 0);
	cr_assert_eq(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	cr_assert_eq(getsockname(fd, (struct sockaddr *)&a, &l), 0);
	close(fd);
	return ntohs(a.sin_port);
}

static void req(struct fx *x, struct sl_peer_get *g, int i, const char *path)
{
	snprintf(x->urls[i], sizeof(x->urls[i]), "%s%s", x->base, path);
	memset(g, 0, sizeof(*g));
	g->url = x->urls[i];
	g->connect_ms = 300;
	g->timeout_ms = 5000;
	g->max_body = 4096;
}

static void release_bodies(struct sl_peer_get *g, size_t n)
{
	for (size_t i = 0; i < n; i++)
		sl_json_buf_release(&g[i].body);
}

static bool body_is(const struct sl_peer_get *g, const char *s)
{
	return g->body.len == strlen(s) && !memcmp(g->body.data, s, g->body.len);
}

Test(peer, answers_land_in_their_requests_and_a_held_one_costs_the_deadline, .timeout = 60)
{
	struct fx x;
	struct sl_peer_get g[4];

	fx_start(&x);
	req(&x, &g[0], 0, "/v1/projections/p/a?consistency=one");
	req(&x, &g[1], 1, "/v1/projections/block/k");
	snprintf(x.urls[2], sizeof(x.urls[2]), "http://127.0.0.1:%u/v1/projections/p/c",
	         closed_port());
	memset(&g[2], 0, sizeof(g[2]));
	g[2].url = x.urls[2];
	g[2].connect_ms = 300;
	g[2].timeout_ms = 5000;
	g[2].max_body = 4096;
	req(&x, &g[3], 3, "/v1/projections/missing/d");
	uint64_t t0 = sl_now_ns();
	cr_assert_eq(sl__peers_get(x.ps, g, 4, NULL, t0 + 300 * MS), -ETIMEDOUT);
	uint64_t took = sl_now_ns() - t0;
	/* The held one costs the caller's deadline, not its own 5 s bound. */
	cr_assert_geq(took, 300 * MS);
	cr_assert_lt(took, 2000 * MS, "took %llu ms", (unsigned long long)(took / MS));
	cr_assert(g[0].done && !g[0].err && g[0].status == 200);
	cr_assert(body_is(&g[0], "{\"key\":\"a\",\"consistency\":1}\n"), "%.*s", (int)g[0].body.len,
	          g[0].body.data);
	cr_assert(g[1].started && !g[1].done && g[1].status == 0);
	cr_assert(g[2].done && g[2].err == CURLE_COULDNT_CONNECT && g[2].status == 0);
	cr_assert(g[3].done && !g[3].err && g[3].status == 404);
	release_bodies(g, 4);
	fx_stop(&x);
}

static bool one_answer(void *arg, const struct sl_peer_get *g, size_t n)
{
	int *seen = arg;
	*seen = 0;
	for (size_t i = 0; i < n; i++)
		*seen += g[i].done && !g[i].err;
	return *seen >= 1;
}

Test(peer, enough_ends_the_wait_and_the_pool_serves_again, .timeout = 60)
{
	struct fx x;
	struct sl_peer_get g[2];
	struct sl_peer_run *run;
	int seen = 0;

	fx_start(&x);
	for (int round = 0; round < 3; round++) {
		req(&x, &g[0], 0, "/v1/projections/block/k");
		req(&x, &g[1], 1, "/v1/projections/p/b");
		uint64_t t0 = sl_now_ns();
		cr_assert_eq(sl__peers_begin(x.ps, g, 2, NULL, &run), 0);
		cr_assert_eq(sl__peers_wait(run, t0 + 10000 * MS, one_answer, &seen), 0);
		cr_assert_lt(sl_now_ns() - t0, 5000 * MS);
		cr_assert_eq(seen, 1);
		cr_assert(g[1].done && g[1].status == 200 && !g[0].done);
		sl__peers_end(run); /* abandons the held one */
		release_bodies(g, 2);
	}
	/* Nothing to ask: done at once. */
	memset(g, 0, sizeof(g));
	cr_assert_eq(sl__peers_get(x.ps, g, 2, NULL, sl_now_ns() + 1000 * MS), 0);
	cr_assert(g[0].done && g[0].err && g[1].done && g[1].err);
	cr_assert_eq(sl__peers_begin(x.ps, g, SL_PEERS_MAX + 1, NULL, &run), -EINVAL);
	fx_stop(&x);
}

static void token_query(void *arg, const struct sl_http_query *q, struct sl_http_reply *out)
{
	(void)arg;
	(void)q;
	out->status = 200;
	out->body = dupstr("{}", &out->len);
}

Test(peer, the_token_goes_as_bearer_and_big_answers_fail, .timeout = 60)
{
	struct fx x;
	struct sl_peer_get g[2];
	char path[128], err[256];

	/* A port with auth: only the right token is answered. */
	fx_start(&x);
	snprintf(path, sizeof(path), "/tmp/sluice-peer-test-%d", (int)getpid());
	FILE *fp = fopen(path, "w");
	cr_assert_not_null(fp);
	cr_assert_eq(fchmod(fileno(fp), 0600), 0);
	fputs("0123456789abcdef0123456789abcdef\n", fp);
	cr_assert_eq(fclose(fp), 0);
	struct sl_auth *auth = NULL;
	cr_assert_eq(sl_auth_load(path, &auth, err, sizeof(err)), 0, "%s", err);
	_Atomic uint64_t failures = 0;
	struct sl_http *h2;
	struct sl_http_backend b = {.arg = &x.f,
	                            .query = token_query,
	                            .status = fake_status,
	                            .metrics = fake_status,
	                            .auth = auth,
	                            .auth_failures = &failures};
	cr_assert_eq(sl_http_start("127.0.0.1:0", &b, &h2, err, sizeof(err)), 0, "%s", err);
	snprintf(x.urls[0], sizeof(x.urls[0]), "http://127.0.0.1:%u/v1/projections/p/k",
	         sl_http_port(h2));
	memset(g, 0, sizeof(g));
	g[0].url = x.urls[0];
	g[0].connect_ms = 300;
	g[0].timeout_ms = 5000;
	g[0].max_body = 4096;
	cr_assert_eq(sl__peers_get(x.ps, g, 1, "wrong", sl_now_ns() + 5000 * MS), 0);
	cr_assert_eq(g[0].status, 401);
	sl_json_buf_release(&g[0].body);
	cr_assert_eq(
	    sl__peers_get(x.ps, g, 1, "0123456789abcdef0123456789abcdef", sl_now_ns() + 5000 * MS),
	    0);
	cr_assert_eq(g[0].status, 200);
	sl_json_buf_release(&g[0].body);
	sl_http_stop(h2);
	sl_auth_free(auth);
	unlink(path);

	/* An answer longer than max_body is a failed request, not a cut one. */
	req(&x, &g[1], 1, "/v1/projections/big/k");
	cr_assert_eq(sl__peers_get(x.ps, &g[1], 1, NULL, sl_now_ns() + 5000 * MS), 0);
	cr_assert(g[1].done && g[1].err == CURLE_WRITE_ERROR);
	sl_json_buf_release(&g[1].body);
	fx_stop(&x);
}
