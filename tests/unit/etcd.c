/*
 * etcd/: the client against a real etcd (Debian etcd-server), one member
 * per test on free loopback ports (tests/etcd/etcd_server.c), started in
 * the fixture and killed in its teardown, which Criterion runs also when
 * an assertion fails. No etcd installed: every live test fails naming the
 * package. The parser tests at the end need no etcd.
 */
#include <criterion/criterion.h>
#include <curl/curl.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../etcd/etcd_server.h"
#include "etcd/etcd.h"

static struct sl_test_etcd srv;
static struct sl_etcd *cli;
static char err[1024];

static void setup(void)
{
	int r = sl_test_etcd_start(&srv, err, sizeof(err));
	cr_assert_eq(r, 0, "could not start etcd: %s", err);
	const char *ep[] = {srv.url};
	r = sl_etcd_open(ep, 1, "/sluice/t/", 2000, &cli, err, sizeof(err));
	cr_assert_eq(r, 0, "open: %d %s", r, err);
}

static void teardown(void)
{
	sl_etcd_close(cli);
	cli = NULL;
	sl_test_etcd_stop(&srv);
}

TestSuite(etcd, .init = setup, .fini = teardown, .timeout = 30);

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

Test(etcd, put_get_del_binary)
{
	const uint8_t v[] = {0, 1, 0xff, 'a', 0, '\n', '"', 0x80};
	cr_assert_eq(sl_etcd_put(cli, "bin", v, sizeof(v), 0), 0, "%s", sl_etcd_errmsg(cli));
	int64_t put_rev = sl_etcd_revision(cli);
	cr_assert_gt(put_rev, 1);

	uint8_t *got = NULL;
	size_t len = 0;
	int64_t mod = 0, create = 0;
	cr_assert_eq(sl_etcd_get(cli, "bin", &got, &len, &mod, &create), 0, "%s",
	             sl_etcd_errmsg(cli));
	cr_assert_eq(len, sizeof(v));
	cr_assert_arr_eq(got, v, sizeof(v));
	cr_assert_eq(got[len], 0, "values are NUL-terminated past their length");
	cr_assert_eq(mod, put_rev);
	cr_assert_eq(create, put_rev);
	free(got);

	/* an empty value is proto3's default: absent from the answer */
	cr_assert_eq(sl_etcd_put(cli, "empty", "", 0, 0), 0);
	cr_assert_eq(sl_etcd_get(cli, "empty", &got, &len, NULL, NULL), 0);
	cr_assert_eq(len, 0);
	free(got);

	cr_assert_eq(sl_etcd_del(cli, "bin"), 1);
	int64_t del_rev = sl_etcd_revision(cli);
	cr_assert_gt(del_rev, put_rev);
	cr_assert_eq(sl_etcd_get(cli, "bin", &got, &len, NULL, NULL), -ENOENT);
	cr_assert(strstr(sl_etcd_errmsg(cli), "/sluice/t/bin"), "%s", sl_etcd_errmsg(cli));
	cr_assert_eq(sl_etcd_del(cli, "bin"), 0, "nothing left to delete");
}

struct collected {
	char keys[8][32];
	char vals[8][32];
	int64_t mod[8];
	int n;
};

static int collect(void *arg, const struct sl_etcd_kv *kv)
{
	struct collected *c = arg;
	cr_assert_lt(c->n, 8);
	snprintf(c->keys[c->n], 32, "%s", kv->key);
	snprintf(c->vals[c->n], 32, "%.*s", (int)kv->value_len, (const char *)kv->value);
	c->mod[c->n] = kv->mod_revision;
	c->n++;
	return 0;
}

static int stop_at_first(void *arg, const struct sl_etcd_kv *kv)
{
	(void)kv;
	(*(int *)arg)++;
	return 42;
}

Test(etcd, get_prefix)
{
	cr_assert_eq(sl_etcd_put(cli, "nodes/b", "2", 1, 0), 0);
	cr_assert_eq(sl_etcd_put(cli, "nodes/a", "1", 1, 0), 0);
	cr_assert_eq(sl_etcd_put(cli, "nodesX", "no", 2, 0), 0);
	cr_assert_eq(sl_etcd_put(cli, "other", "o", 1, 0), 0);
	/* outside the client's prefix: never seen */
	const char *ep[] = {srv.url};
	struct sl_etcd *raw;
	cr_assert_eq(sl_etcd_open(ep, 1, "/sluice/u/", 2000, &raw, err, sizeof(err)), 0);
	cr_assert_eq(sl_etcd_put(raw, "nodes/z", "z", 1, 0), 0);
	sl_etcd_close(raw);

	struct collected c = {0};
	cr_assert_eq(sl_etcd_get_prefix(cli, "nodes/", collect, &c), 2, "%s", sl_etcd_errmsg(cli));
	cr_assert_str_eq(c.keys[0], "nodes/a");
	cr_assert_str_eq(c.vals[0], "1");
	cr_assert_str_eq(c.keys[1], "nodes/b");
	cr_assert_str_eq(c.vals[1], "2");
	cr_assert_gt(sl_etcd_revision(cli), 0);

	memset(&c, 0, sizeof(c));
	cr_assert_eq(sl_etcd_get_prefix(cli, "", collect, &c), 4);
	cr_assert_str_eq(c.keys[3], "other");

	memset(&c, 0, sizeof(c));
	cr_assert_eq(sl_etcd_get_prefix(cli, "none/", collect, &c), 0);

	int calls = 0;
	cr_assert_eq(sl_etcd_get_prefix(cli, "nodes/", stop_at_first, &calls), 42);
	cr_assert_eq(calls, 1);
}

Test(etcd, txn_put_if_second_writer_loses)
{
	const char *ep[] = {srv.url};
	struct sl_etcd *other;
	cr_assert_eq(sl_etcd_open(ep, 1, "/sluice/t/", 2000, &other, err, sizeof(err)), 0);

	cr_assert_eq(sl_etcd_put(cli, "leader", "n0", 2, 0), 0);
	int64_t r0 = 0;
	cr_assert_eq(sl_etcd_get(cli, "leader", NULL, NULL, &r0, NULL), 0);

	/* both read r0; the first to write wins, the second's guard is stale */
	bool ok = false;
	int64_t r1 = 0, seen = 0;
	cr_assert_eq(sl_etcd_txn_put_if(cli, "leader", "n1", 2, 0, r0, &ok, &r1), 0, "%s",
	             sl_etcd_errmsg(cli));
	cr_assert(ok);
	cr_assert_gt(r1, r0);
	cr_assert_eq(sl_etcd_txn_put_if(other, "leader", "n2", 2, 0, r0, &ok, &seen), 0, "%s",
	             sl_etcd_errmsg(other));
	cr_assert_not(ok, "a stale revision must not win");
	cr_assert_eq(seen, r1, "the loser learns the winner's revision");

	uint8_t *v;
	size_t len;
	int64_t mod;
	cr_assert_eq(sl_etcd_get(other, "leader", &v, &len, &mod, NULL), 0);
	cr_assert_eq(len, 2);
	cr_assert_arr_eq(v, "n1", 2);
	cr_assert_eq(mod, r1);
	free(v);

	/* the loser retries with what it learned */
	cr_assert_eq(sl_etcd_txn_put_if(other, "leader", "n2", 2, 0, seen, &ok, &r1), 0);
	cr_assert(ok);

	/* a fenced delete with the old revision leaves the successor's key */
	cr_assert_eq(sl_etcd_txn_del_if(cli, "leader", seen, &ok), 0);
	cr_assert_not(ok);
	cr_assert_eq(sl_etcd_txn_del_if(cli, "leader", r1, &ok), 0);
	cr_assert(ok);
	cr_assert_eq(sl_etcd_get(cli, "leader", NULL, NULL, NULL, NULL), -ENOENT);
	sl_etcd_close(other);
}

Test(etcd, create_if_absent)
{
	bool ok = false;
	int64_t rev = 0, seen = 0, create1 = 0, create2 = 0;
	cr_assert_eq(sl_etcd_txn_put_if(cli, "epoch", "1", 1, 0, 0, &ok, &rev), 0, "%s",
	             sl_etcd_errmsg(cli));
	cr_assert(ok);
	cr_assert_eq(sl_etcd_get(cli, "epoch", NULL, NULL, NULL, &create1), 0);
	cr_assert_eq(create1, rev);

	cr_assert_eq(sl_etcd_txn_put_if(cli, "epoch", "2", 1, 0, 0, &ok, &seen), 0);
	cr_assert_not(ok, "the key exists");
	cr_assert_eq(seen, rev);

	/* deleted and created again: a new create_revision, the fencing token */
	cr_assert_eq(sl_etcd_del(cli, "epoch"), 1);
	cr_assert_eq(sl_etcd_txn_put_if(cli, "epoch", "3", 1, 0, 0, &ok, &rev), 0);
	cr_assert(ok);
	cr_assert_eq(sl_etcd_get(cli, "epoch", NULL, NULL, NULL, &create2), 0);
	cr_assert_gt(create2, create1);
}

Test(etcd, lease_revoke_removes_its_keys)
{
	int64_t id = 0, ttl = 0, left = 0;
	cr_assert_eq(sl_etcd_lease_grant(cli, 30, &id, &ttl), 0, "%s", sl_etcd_errmsg(cli));
	cr_assert_neq(id, 0);
	cr_assert_eq(ttl, 30);
	cr_assert_eq(sl_etcd_put(cli, "members/n1", "up", 2, id), 0, "%s", sl_etcd_errmsg(cli));
	cr_assert_eq(sl_etcd_lease_timetolive(cli, id, &left), 0);
	cr_assert(left > 0 && left <= 30, "%ld", (long)left);
	cr_assert_eq(sl_etcd_lease_keepalive(cli, id, &left), 0, "%s", sl_etcd_errmsg(cli));
	cr_assert_eq(left, 30);

	cr_assert_eq(sl_etcd_lease_revoke(cli, id), 0, "%s", sl_etcd_errmsg(cli));
	cr_assert_eq(sl_etcd_get(cli, "members/n1", NULL, NULL, NULL, NULL), -ENOENT);
	cr_assert_eq(sl_etcd_lease_keepalive(cli, id, &left), -ENOENT);
	cr_assert_eq(sl_etcd_lease_timetolive(cli, id, &left), -ENOENT);
	/* a gateway error answer (404, gRPC NotFound), told clearly */
	cr_assert_eq(sl_etcd_lease_revoke(cli, id), -ENOENT);
	cr_assert(strstr(sl_etcd_errmsg(cli), "requested lease not found"), "%s",
	          sl_etcd_errmsg(cli));
	cr_assert(strstr(sl_etcd_errmsg(cli), "NotFound"), "%s", sl_etcd_errmsg(cli));
	/* a put on a lease that is gone: etcd refuses it */
	cr_assert_eq(sl_etcd_put(cli, "members/n1", "up", 2, id), -ENOENT);
}

/* One office, two candidates (two clients, two leases): the first holds
 * it and confirms it; the second waits (its bounded campaign times out and
 * is withdrawn); the first's lease goes and the second's campaign wins;
 * the first's confirm then says it no longer holds; resign empties it. */
Test(etcd, election_one_holder_then_the_next)
{
	const char *ep[] = {srv.url};
	struct sl_etcd *b = NULL;
	cr_assert_eq(sl_etcd_open(ep, 1, "/sluice/t/", 2000, &b, err, sizeof(err)), 0, "%s", err);
	int64_t la = 0, lb = 0, left = 0;
	cr_assert_eq(sl_etcd_lease_grant(cli, 30, &la, NULL), 0, "%s", sl_etcd_errmsg(cli));
	cr_assert_eq(sl_etcd_lease_grant(b, 30, &lb, NULL), 0, "%s", sl_etcd_errmsg(b));
	cr_assert_eq(sl_etcd_election_leader(cli, "ctl", &(struct sl_etcd_leader){0}), -ENOENT,
	             "%s", sl_etcd_errmsg(cli));

	struct sl_etcd_leader a, l, bl;
	cr_assert_eq(sl_etcd_campaign(cli, "ctl", la, "n1", 2, 5000, &a), 0, "%s",
	             sl_etcd_errmsg(cli));
	cr_assert(!strncmp(a.key, "ctl/", 4), "%s", a.key);
	cr_assert_gt(a.rev, 0);
	cr_assert_eq(a.lease, la);
	bool holds = false;
	cr_assert_eq(sl_etcd_leader_confirm(cli, &a, &holds, &left), 0, "%s", sl_etcd_errmsg(cli));
	cr_assert(holds && left > 0);
	cr_assert_eq(sl_etcd_election_leader(b, "ctl", &l), 0, "%s", sl_etcd_errmsg(b));
	cr_assert_str_eq(l.value, "n1");
	cr_assert_str_eq(l.key, a.key);
	cr_assert_eq(l.rev, a.rev);

	int64_t t0 = now_ms();
	cr_assert_eq(sl_etcd_campaign(b, "ctl", lb, "n2", 2, 300, &bl), -ETIMEDOUT, "%s",
	             sl_etcd_errmsg(b));
	cr_assert_geq(now_ms() - t0, 250);
	cr_assert_eq(sl_etcd_election_leader(b, "ctl", &l), 0);
	cr_assert_str_eq(l.value, "n1");

	cr_assert_eq(sl_etcd_lease_revoke(cli, la), 0, "%s", sl_etcd_errmsg(cli));
	cr_assert_eq(sl_etcd_leader_confirm(cli, &a, &holds, &left), 0);
	cr_assert(!holds && left == 0, "a holder whose lease is gone does not hold");
	cr_assert_eq(sl_etcd_campaign(b, "ctl", lb, "n2", 2, 5000, &bl), 0, "%s",
	             sl_etcd_errmsg(b));
	cr_assert_gt(bl.rev, a.rev);
	cr_assert_eq(sl_etcd_leader_confirm(b, &bl, &holds, NULL), 0);
	cr_assert(holds);
	cr_assert_eq(sl_etcd_election_leader(cli, "ctl", &l), 0);
	cr_assert_str_eq(l.value, "n2");
	/* a campaign again under the same lease: the same office, at once */
	struct sl_etcd_leader again;
	cr_assert_eq(sl_etcd_campaign(b, "ctl", lb, "n2", 2, 1000, &again), 0);
	cr_assert_str_eq(again.key, bl.key);
	cr_assert_eq(again.rev, bl.rev);

	cr_assert_eq(sl_etcd_resign(b, &bl), 0, "%s", sl_etcd_errmsg(b));
	cr_assert_eq(sl_etcd_leader_confirm(b, &bl, &holds, NULL), 0);
	cr_assert(!holds);
	cr_assert_eq(sl_etcd_election_leader(b, "ctl", &l), -ENOENT, "%s", sl_etcd_errmsg(b));
	cr_assert_eq(sl_etcd_lease_revoke(b, lb), 0);
	sl_etcd_close(b);
}

struct seen {
	int n;
	int type[16];
	char key[16][32];
	char val[16][32];
	int64_t rev[16];
};

static int record(void *arg, const struct sl_etcd_event *ev)
{
	struct seen *s = arg;
	cr_assert_lt(s->n, 16);
	s->type[s->n] = ev->type;
	snprintf(s->key[s->n], 32, "%s", ev->kv.key);
	snprintf(s->val[s->n], 32, "%.*s", (int)ev->kv.value_len, (const char *)ev->kv.value);
	s->rev[s->n] = ev->kv.mod_revision;
	s->n++;
	return 0;
}

/* Waits on the watch (bounded) until s holds n events. */
static void wait_events(struct sl_etcd_watch *w, struct seen *s, int n, int64_t bound_ms)
{
	int64_t deadline = now_ms() + bound_ms;
	while (s->n < n && now_ms() < deadline) {
		int r = sl_etcd_watch_next(w, 200, record, s);
		cr_assert_geq(r, 0, "watch: %d %s", r, sl_etcd_watch_errmsg(w));
	}
	cr_assert_eq(s->n, n, "%d events within %ld ms, wanted %d", s->n, (long)bound_ms, n);
}

Test(etcd, keepalive_keeps_a_key_then_it_expires)
{
	int64_t id = 0, ttl = 0, left = 0;
	/* 1 s: the test etcd runs a 100 ms election timeout (etcd_server.c) */
	cr_assert_eq(sl_etcd_lease_grant(cli, 1, &id, &ttl), 0, "%s", sl_etcd_errmsg(cli));
	cr_assert_eq(ttl, 1, "granted %ld", (long)ttl);
	cr_assert_eq(sl_etcd_put(cli, "members/n1", "up", 2, id), 0);
	struct sl_etcd_watch *w;
	cr_assert_eq(sl_etcd_watch_open(cli, "members/", 0, &w), 0, "%s", sl_etcd_errmsg(cli));

	/* three TTLs of keepalives, each after waiting 250 ms on the watch:
	 * no DELETE may come */
	struct seen s = {0};
	int64_t until = now_ms() + 3000;
	while (now_ms() < until) {
		cr_assert_eq(sl_etcd_lease_keepalive(cli, id, &left), 0, "%s", sl_etcd_errmsg(cli));
		cr_assert_eq(sl_etcd_watch_next(w, 250, record, &s), 0,
		             "no event while kept alive");
	}
	cr_assert_eq(sl_etcd_get(cli, "members/n1", NULL, NULL, NULL, NULL), 0);

	/* keepalives stop: the key goes with the lease, seen as a DELETE */
	int64_t t0 = now_ms();
	wait_events(w, &s, 1, 5000);
	int64_t took = now_ms() - t0;
	cr_assert_eq(s.type[0], SL_ETCD_DELETE);
	cr_assert_str_eq(s.key[0], "members/n1");
	cr_assert_geq(took, 500, "expired %ld ms after the last keepalive", (long)took);
	cr_assert_eq(sl_etcd_lease_keepalive(cli, id, &left), -ENOENT);
	sl_etcd_watch_close(w);
}

Test(etcd, watch_put_delete_in_order)
{
	struct sl_etcd_watch *w;
	cr_assert_eq(sl_etcd_put(cli, "pre", "old", 3, 0), 0);
	int64_t first = sl_etcd_revision(cli);
	cr_assert_eq(sl_etcd_watch_open(cli, "w/", 0, &w), 0, "%s", sl_etcd_errmsg(cli));
	cr_assert_eq(sl_etcd_put(cli, "w/x", "1", 1, 0), 0);
	int64_t r1 = sl_etcd_revision(cli);
	cr_assert_eq(sl_etcd_put(cli, "outside", "o", 1, 0), 0);
	cr_assert_eq(sl_etcd_put(cli, "w/y", "", 0, 0), 0);
	int64_t r2 = sl_etcd_revision(cli);
	cr_assert_eq(sl_etcd_del(cli, "w/x"), 1);
	int64_t r3 = sl_etcd_revision(cli);

	struct seen s = {0};
	wait_events(w, &s, 3, 5000);
	cr_assert_eq(s.type[0], SL_ETCD_PUT);
	cr_assert_str_eq(s.key[0], "w/x");
	cr_assert_str_eq(s.val[0], "1");
	cr_assert_eq(s.rev[0], r1);
	cr_assert_eq(s.type[1], SL_ETCD_PUT);
	cr_assert_str_eq(s.key[1], "w/y");
	cr_assert_str_eq(s.val[1], "");
	cr_assert_eq(s.rev[1], r2);
	cr_assert_eq(s.type[2], SL_ETCD_DELETE);
	cr_assert_str_eq(s.key[2], "w/x");
	cr_assert_eq(s.rev[2], r3);
	cr_assert_eq(sl_etcd_watch_revision(w), r3);
	cr_assert_eq(sl_etcd_watch_next(w, 100, record, &s), 0, "nothing more");
	sl_etcd_watch_close(w);

	/* from a past revision: the history replays, then goes on */
	memset(&s, 0, sizeof(s));
	cr_assert_eq(sl_etcd_watch_open(cli, "", first, &w), 0, "%s", sl_etcd_errmsg(cli));
	wait_events(w, &s, 5, 5000);
	cr_assert_str_eq(s.key[0], "pre");
	cr_assert_str_eq(s.key[2], "outside");
	cr_assert_eq(s.rev[4], r3);
	sl_etcd_watch_close(w);
}

static size_t discard(char *p, size_t s, size_t n, void *arg)
{
	(void)p;
	(void)arg;
	return s * n;
}

Test(etcd, watch_from_a_compacted_revision)
{
	for (int i = 0; i < 3; i++)
		cr_assert_eq(sl_etcd_put(cli, "c/k", "v", 1, 0), 0);
	int64_t rev = sl_etcd_revision(cli);
	/* compaction is not the client's business: ask the gateway directly */
	char url[128], body[64];
	snprintf(url, sizeof(url), "%s/v3/kv/compaction", srv.url);
	snprintf(body, sizeof(body), "{\"revision\":\"%ld\"}", (long)rev);
	CURL *h = curl_easy_init();
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, discard);
	cr_assert_eq(curl_easy_perform(h), CURLE_OK);
	curl_easy_cleanup(h);

	struct sl_etcd_watch *w;
	struct seen s = {0};
	cr_assert_eq(sl_etcd_watch_open(cli, "c/", 2, &w), 0, "%s", sl_etcd_errmsg(cli));
	int r = 0;
	int64_t deadline = now_ms() + 5000;
	while (r == 0 && now_ms() < deadline)
		r = sl_etcd_watch_next(w, 200, record, &s);
	cr_assert_eq(r, -ERANGE, "%d %s", r, sl_etcd_watch_errmsg(w));
	cr_assert_eq(sl_etcd_watch_compact_revision(w), rev);
	cr_assert(strstr(sl_etcd_watch_errmsg(w), "compacted"), "%s", sl_etcd_watch_errmsg(w));
	cr_assert_eq(sl_etcd_watch_next(w, 10, record, &s), -ERANGE, "the error sticks");
	cr_assert_eq(s.n, 0);
	sl_etcd_watch_close(w);
}

Test(etcd, first_endpoint_dead)
{
	char dead[64];
	int port = sl_test_free_port();
	cr_assert_gt(port, 0);
	snprintf(dead, sizeof(dead), "http://127.0.0.1:%d", port);
	const char *ep[] = {dead, srv.url};
	struct sl_etcd *e;
	cr_assert_eq(sl_etcd_open(ep, 2, "/sluice/t/", 2000, &e, err, sizeof(err)), 0, "%s", err);
	cr_assert_str_eq(sl_etcd_endpoint(e), srv.url);
	cr_assert_eq(sl_etcd_put(e, "k", "v", 1, 0), 0, "%s", sl_etcd_errmsg(e));
	struct sl_etcd_watch *w;
	cr_assert_eq(sl_etcd_watch_open(e, "k", 0, &w), 0, "%s", sl_etcd_errmsg(e));
	sl_etcd_watch_close(w);
	sl_etcd_close(e);

	/* every endpoint dead: one error naming each */
	const char *none[] = {dead, dead};
	err[0] = 0;
	int r = sl_etcd_open(none, 2, "/sluice/t/", 1000, &e, err, sizeof(err));
	cr_assert_eq(r, -ECONNREFUSED, "%d %s", r, err);
	cr_assert(strstr(err, "no etcd endpoint answered"), "%s", err);
	cr_assert(strstr(err, dead), "%s", err);
}

Test(etcd, errors_are_clear)
{
	/* not the gateway: etcd's peer port speaks HTTP but knows no /v3 */
	const char *peer[] = {srv.peer_url};
	struct sl_etcd *e;
	int r = sl_etcd_open(peer, 1, "", 1000, &e, err, sizeof(err));
	cr_assert_lt(r, 0);
	cr_assert(strstr(err, srv.peer_url), "%s", err);
	cr_assert(strstr(err, "HTTP 404"), "%s", err);

	/* arguments */
	const char *bad[] = {"127.0.0.1:2379"};
	cr_assert_eq(sl_etcd_open(bad, 1, "", 1000, &e, err, sizeof(err)), -EINVAL);
	cr_assert(strstr(err, "not http://host:port"), "%s", err);
	cr_assert_eq(sl_etcd_lease_grant(cli, 0, NULL, NULL), -EINVAL);
	/* etcd's own refusal: a lease ID that never existed */
	cr_assert_eq(sl_etcd_put(cli, "k", "v", 1, 12345), -ENOENT);
	cr_assert(strstr(sl_etcd_errmsg(cli), "lease not found"), "%s", sl_etcd_errmsg(cli));
	cr_assert(strstr(sl_etcd_errmsg(cli), "/v3/kv/put"), "%s", sl_etcd_errmsg(cli));
}

/* ---- the parsers, on answers captured from etcd 3.4.23 ---------------------- */

static int parse(enum sl__etcd_kind k, const char *s, struct sl__etcd_answer *a)
{
	return sl__etcd_answer_parse(k, s, strlen(s), "/p/", 3, a, err, sizeof(err));
}

Test(etcd_parse, proto3_defaults_and_int64_strings)
{
	struct sl__etcd_answer a;
	cr_assert_eq(
	    parse(SL__ETCD_TXN, "{\"header\":{\"cluster_id\":\"1\",\"revision\":\"3\"}}", &a), 0,
	    "%s", err);
	cr_assert_not(a.succeeded, "a failed txn has no \"succeeded\"");
	cr_assert_eq(a.revision, 3);
	sl__etcd_answer_release(&a);

	cr_assert_eq(parse(SL__ETCD_RANGE,
	                   "{\"header\":{\"revision\":\"9\"},\"kvs\":[{\"key\":\"L3Av\",\"create_"
	                   "revision\":\"2\",\"mod_revision\":\"9\",\"version\":\"4\"}],"
	                   "\"count\":\"1\"}",
	                   &a),
	             0, "%s", err);
	cr_assert_eq(a.n_kvs, 1);
	cr_assert_eq(a.kvs[0].key_len, 0, "key /p/ is \"\" relative to /p/");
	cr_assert_eq(a.kvs[0].value_len, 0);
	cr_assert_eq(a.kvs[0].mod_revision, 9);
	sl__etcd_answer_release(&a);

	cr_assert_eq(parse(SL__ETCD_KEEPALIVE, "{\"result\":{\"header\":{},\"ID\":\"7\"}}\n", &a),
	             0);
	cr_assert_eq(a.id, 7);
	cr_assert_eq(a.ttl, 0, "a gone lease's keepalive has no TTL");
	sl__etcd_answer_release(&a);
}

Test(etcd_parse, malformed_answers_are_refused)
{
	struct sl__etcd_answer a;
	const char *bad[] = {
	    "",
	    "[]",
	    "{\"header\":{\"revision\":\"9x\"}}",
	    "{\"header\":{\"revision\":\" 9\"}}",
	    "{\"header\":{\"revision\":\"99999999999999999999\"}}",
	    "{\"header\":[]}",
	    "{\"kvs\":{}}",
	    "{\"kvs\":[{\"key\":\"L3A\"}]}",      /* not padded base64 */
	    "{\"kvs\":[{\"key\":\"eHl6\"}]}",     /* "xyz": outside /p/ */
	    "{\"kvs\":[{\"key\":\"L3AvAA==\"}]}", /* a NUL in a key */
	    "{\"kvs\":[{\"key\":\"L3Av\",\"value\":5}]}",
	    "{} x",
	    "{\"header\":{}",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
		err[0] = 0;
		int r = parse(SL__ETCD_RANGE, bad[i], &a);
		cr_assert_eq(r, -EPROTO, "%s: %d", bad[i], r);
		cr_assert_neq(err[0], 0, "%s: no reason given", bad[i]);
	}
	cr_assert_eq(parse(SL__ETCD_KEEPALIVE, "{\"header\":{}}", &a), -EPROTO);
}

Test(etcd_parse, error_answers)
{
	const char *nf = "{\"error\":\"etcdserver: requested lease not found\",\"message\":"
	                 "\"etcdserver: requested lease not found\",\"code\":5}";
	cr_assert_eq(sl__etcd_error_parse(404, nf, strlen(nf), err, sizeof(err)), -ENOENT);
	cr_assert_str_eq(err, "etcdserver: requested lease not found (HTTP 404, gRPC code 5 "
	                      "NotFound)");
	cr_assert_eq(sl__etcd_error_parse(502, "<html>", 6, err, sizeof(err)), -EPROTO);
	cr_assert(strstr(err, "HTTP 502"), "%s", err);
	cr_assert_eq(sl__etcd_error_parse(500, "{\"code\":99}", 11, err, sizeof(err)), -EPROTO);
}

Test(etcd_parse, watch_messages)
{
	struct sl__etcd_watch_msg m;
	const char *del = "{\"result\":{\"header\":{\"revision\":\"7\"},\"events\":[{\"type\":"
	                  "\"DELETE\",\"kv\":{\"key\":\"L3AvYQ==\",\"mod_revision\":\"7\"}}]}}";
	cr_assert_eq(sl__etcd_watch_msg_parse(del, strlen(del), "/p/", 3, &m, err, sizeof(err)), 0,
	             "%s", err);
	cr_assert_eq(m.n_events, 1);
	cr_assert_eq(m.events[0].type, SL_ETCD_DELETE);
	cr_assert_str_eq(m.events[0].kv.key, "a");
	sl__etcd_watch_msg_release(&m);

	const char *cmp =
	    "{\"result\":{\"header\":{},\"canceled\":true,\"compact_revision\":\"6\"}}";
	cr_assert_eq(sl__etcd_watch_msg_parse(cmp, strlen(cmp), "/p/", 3, &m, err, sizeof(err)), 0);
	cr_assert(m.canceled);
	cr_assert_eq(m.compact_revision, 6);
	sl__etcd_watch_msg_release(&m);

	const char *e =
	    "{\"error\":{\"grpc_code\":14,\"http_code\":503,\"message\":\"no leader\"}}";
	cr_assert_eq(sl__etcd_watch_msg_parse(e, strlen(e), "/p/", 3, &m, err, sizeof(err)), 0);
	cr_assert_eq(m.error, -EAGAIN);
	sl__etcd_watch_msg_release(&m);

	const char *t = "{\"result\":{\"events\":[{\"type\":\"PATCH\",\"kv\":{}}]}}";
	cr_assert_eq(sl__etcd_watch_msg_parse(t, strlen(t), "/p/", 3, &m, err, sizeof(err)),
	             -EPROTO);
}

Test(etcd_parse, election_answers)
{
	struct sl__etcd_answer a;
	/* campaign: a LeaderKey (no value; rev is the key's create revision) */
	cr_assert_eq(parse(SL__ETCD_ELECTION,
	                   "{\"header\":{\"revision\":\"9\"},\"leader\":{\"name\":\"L3AvY3Rs\","
	                   "\"key\":\"L3AvY3RsLzY5NGQ5YTk5YjE2ZWJkMDQ=\",\"rev\":\"8\","
	                   "\"lease\":\"7587875443843743236\"}}",
	                   &a),
	             0, "%s", err);
	cr_assert_eq(a.n_kvs, 1);
	cr_assert_str_eq(a.kvs[0].key, "ctl/694d9a99b16ebd04");
	cr_assert_eq(a.kvs[0].create_revision, 8);
	cr_assert_eq(a.kvs[0].lease, 7587875443843743236LL);
	cr_assert_eq(a.revision, 9);
	sl__etcd_answer_release(&a);
	/* leader: a KeyValue */
	cr_assert_eq(parse(SL__ETCD_ELECTION,
	                   "{\"header\":{\"revision\":\"9\"},\"kv\":{\"key\":\"L3AvY3RsLzE=\","
	                   "\"create_revision\":\"8\",\"mod_revision\":\"8\",\"version\":\"1\","
	                   "\"value\":\"bjE=\",\"lease\":\"5\"}}",
	                   &a),
	             0, "%s", err);
	cr_assert_eq(a.n_kvs, 1);
	cr_assert_str_eq((const char *)a.kvs[0].value, "n1");
	cr_assert_eq(a.kvs[0].create_revision, 8);
	sl__etcd_answer_release(&a);
	/* resign: a header only */
	cr_assert_eq(parse(SL__ETCD_ELECTION, "{\"header\":{\"revision\":\"10\"}}", &a), 0);
	cr_assert_eq(a.n_kvs, 0);
	sl__etcd_answer_release(&a);
	cr_assert_eq(parse(SL__ETCD_ELECTION, "{\"leader\":[]}", &a), -EPROTO);
	cr_assert_eq(parse(SL__ETCD_ELECTION, "{\"leader\":{\"rev\":8}}", &a), -EPROTO);
	cr_assert_eq(parse(SL__ETCD_ELECTION, "{\"leader\":{\"key\":\"L3gvMQ==\"}}", &a), -EPROTO,
	             "a key outside the prefix");
	cr_assert_eq(parse(SL__ETCD_ELECTION, "{\"leader\":{},\"kv\":{}}", &a), -EPROTO);
}

Test(etcd_parse, prefix_end)
{
	char out[8];
	cr_assert_eq(sl__etcd_prefix_end("ab", 2, out), 2);
	cr_assert_arr_eq(out, "ac", 2);
	cr_assert_eq(sl__etcd_prefix_end("a\xff", 2, out), 1);
	cr_assert_arr_eq(out, "b", 1);
	cr_assert_eq(sl__etcd_prefix_end("\xff\xff", 2, out), 1);
	cr_assert_eq(out[0], 0);
}
