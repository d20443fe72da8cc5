/*
 * cluster/: the control plane against a real etcd (one member per test,
 * tests/etcd/etcd_server.c), several cluster objects in one process with
 * distinct node ids standing in for nodes. Waits are on the cluster's
 * callbacks (a condition variable with a bounded deadline) or on etcd's
 * own watch, never on sleeps. The codec and placement tests need no etcd.
 *
 * Each live test starts etcd in its body and stops it at its end; .fini
 * stops it too when an assertion ends the test early (Criterion), and the
 * TSan stand-in runner, which ignores .fini, exits on a failure, which
 * kills etcd (PR_SET_PDEATHSIG).
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "../etcd/etcd_server.h"
#include "base/base.h"
#include "cluster/cluster.h"
#include "etcd/etcd.h"

#define SEC 1000000000ull

static struct sl_test_etcd srv;
static bool srv_up;
static char err[1024];

static void up(void)
{
	int r = sl_test_etcd_start(&srv, err, sizeof(err));
	cr_assert_eq(r, 0, "could not start etcd: %s", err);
	srv_up = true;
}

static void down(void)
{
	if (srv_up)
		sl_test_etcd_stop(&srv); /* SIGKILL: also ends a stopped etcd */
	srv_up = false;
}

/* What one cluster object's callbacks saw; guarded by n.mu. */
#define W_PARTS 64
struct watcher {
	struct sl_notify n;
	_Atomic(struct sl_cluster *) c;
	int leases_true, leases_false;
	uint64_t false_at, deadline_at_false;
	struct sl_pstate ps[W_PARTS];
	bool have[W_PARTS];
	int n_have;
	int n_alive;
	char alive[8][SL_CLUSTER_ID_MAX];
};

static void on_lease(void *arg, bool held)
{
	struct watcher *w = arg;
	uint64_t now = sl_now_ns();
	struct sl_cluster *c = atomic_load(&w->c);
	pthread_mutex_lock(&w->n.mu);
	if (held) {
		w->leases_true++;
	} else {
		w->leases_false++;
		w->false_at = now;
		w->deadline_at_false = c ? sl_cluster_lease_deadline_ns(c) : 1;
	}
	pthread_mutex_unlock(&w->n.mu);
	sl_notify_signal(&w->n);
}

static void on_partition(void *arg, const char *topic, uint32_t p, const struct sl_pstate *s)
{
	struct watcher *w = arg;
	if (strcmp(topic, "t") != 0 || p >= W_PARTS)
		return;
	pthread_mutex_lock(&w->n.mu);
	if (!w->have[p])
		w->n_have++;
	w->have[p] = true;
	w->ps[p] = *s;
	pthread_mutex_unlock(&w->n.mu);
	sl_notify_signal(&w->n);
}

static void on_node(void *arg, const struct sl_cluster_node *nd)
{
	struct watcher *w = arg;
	pthread_mutex_lock(&w->n.mu);
	int i = 0;
	while (i < w->n_alive && strcmp(w->alive[i], nd->id) != 0)
		i++;
	if (nd->alive && i == w->n_alive && i < 8)
		snprintf(w->alive[w->n_alive++], SL_CLUSTER_ID_MAX, "%s", nd->id);
	else if (!nd->alive && i < w->n_alive)
		memcpy(w->alive[i], w->alive[--w->n_alive], SL_CLUSTER_ID_MAX);
	pthread_mutex_unlock(&w->n.mu);
	sl_notify_signal(&w->n);
}

static void watcher_init(struct watcher *w)
{
	memset(w, 0, sizeof(*w));
	cr_assert_eq(sl_notify_init(&w->n), 0);
}

/* Predicates, evaluated under w->n.mu by sl_notify_wait. */
struct want {
	struct watcher *w;
	int n;
	uint32_t p, epoch;
};
static bool have_parts(void *arg)
{
	struct want *x = arg;
	return x->w->n_have >= x->n;
}
static bool lease_false(void *arg)
{
	struct want *x = arg;
	return x->w->leases_false >= x->n;
}
static bool lease_true(void *arg)
{
	struct want *x = arg;
	return x->w->leases_true >= x->n;
}
static bool epoch_at(void *arg)
{
	struct want *x = arg;
	return x->w->have[x->p] && x->w->ps[x->p].epoch >= x->epoch;
}
static bool n_alive(void *arg)
{
	struct want *x = arg;
	return x->w->n_alive >= x->n;
}

static bool n_alive_is(void *arg)
{
	struct want *x = arg;
	return x->w->n_alive == x->n;
}

static int start_node(const char *id, uint32_t ttl_ms, struct watcher *w, struct sl_cluster **c)
{
	const char *ep[] = {srv.url};
	char native[64], http[64];
	snprintf(native, sizeof(native), "127.0.0.1:74%02d", id[strlen(id) - 1] - '0');
	snprintf(http, sizeof(http), "127.0.0.1:75%02d", id[strlen(id) - 1] - '0');
	struct sl_cluster_opts o = {
	    .node_id = id,
	    .etcd = ep,
	    .n_etcd = 1,
	    .name = "test",
	    .advertise_native = native,
	    .advertise_http = http,
	    .session_ttl_ms = ttl_ms,
	    .on_partition = w ? on_partition : NULL,
	    .on_lease = w ? on_lease : NULL,
	    .on_node = w ? on_node : NULL,
	    .arg = w,
	};
	int r = sl_cluster_start(&o, c, err, sizeof(err));
	if (r == 0 && w)
		atomic_store(&w->c, *c);
	return r;
}

static struct sl_etcd *raw_client(void)
{
	const char *ep[] = {srv.url};
	struct sl_etcd *e;
	cr_assert_eq(sl_etcd_open(ep, 1, "/sluice/test/", 2000, &e, err, sizeof(err)), 0, "%s",
	             err);
	return e;
}

struct kvcopy {
	const char *key;
	bool there;
	int64_t lease;
	char val[SL_CLUSTER_JSON_MAX];
	size_t len;
};
static int grab(void *arg, const struct sl_etcd_kv *kv)
{
	struct kvcopy *k = arg;
	if (strcmp(kv->key, k->key) == 0 && kv->value_len < sizeof(k->val)) {
		k->there = true;
		k->lease = kv->lease;
		memcpy(k->val, kv->value, kv->value_len);
		k->len = kv->value_len;
	}
	return 0;
}
static int count_kv(void *arg, const struct sl_etcd_kv *kv)
{
	(void)kv;
	(*(int *)arg)++;
	return 0;
}

/* ---- pure: codecs ----------------------------------------------------------------- */

Test(cluster, pstate_codec_round_trip_and_strict_refusals)
{
	const char *ok = "{\"leader\":\"n1\",\"epoch\":3,\"replicas\":[\"n1\",\"n2\",\"n3\"],"
	                 "\"isr\":[\"n1\",\"n3\"],\"moving_to\":\"n4\"}";
	struct sl_pstate s, s2;
	char buf[SL_CLUSTER_JSON_MAX], why[256];
	cr_assert_eq(sl_cluster_pstate_decode(ok, strlen(ok), &s, why, sizeof(why)), 0, "%s", why);
	cr_assert_str_eq(s.leader, "n1");
	cr_assert_eq(s.epoch, 3);
	cr_assert_eq(s.n_replicas, 3);
	cr_assert_eq(s.n_isr, 2);
	cr_assert_str_eq(s.isr[1], "n3");
	cr_assert_str_eq(s.moving_to, "n4");
	int n = sl_cluster_pstate_encode(&s, buf, sizeof(buf));
	cr_assert_gt(n, 0);
	cr_assert_str_eq(buf, ok, "compact, in key order: %s", buf);
	cr_assert_eq(sl_cluster_pstate_decode(buf, (size_t)n, &s2, why, sizeof(why)), 0);
	cr_assert_arr_eq(&s, &s2, sizeof(s));

	static const struct {
		const char *json, *why;
	} badv[] = {
	    {"{\"leader\":\"n1\",\"epoch\":1,\"replicas\":[\"n1\"],\"isr\":[],\"x\":0}", "unknown"},
	    {"{\"leader\":\"n1\",\"epoch\":\"1\",\"replicas\":[\"n1\"],\"isr\":[]}", "integer"},
	    {"{\"leader\":\"n1\",\"epoch\":1.0,\"replicas\":[\"n1\"],\"isr\":[]}", "integer"},
	    {"{\"leader\":\"n1\",\"epoch\":-1,\"replicas\":[\"n1\"],\"isr\":[]}", "not in"},
	    {"{\"leader\":\"n1\",\"epoch\":4294967296,\"replicas\":[\"n1\"],\"isr\":[]}", "not in"},
	    {"{\"leader\":\"n1\",\"epoch\":1,\"replicas\":[],\"isr\":[]}", "0 ids"},
	    {"{\"leader\":\"a\",\"epoch\":1,\"replicas\":[\"a\",\"b\",\"c\",\"d\",\"e\",\"f\","
	     "\"g\","
	     "\"h\"],\"isr\":[]}",
	     "8 ids"},
	    {"{\"leader\":\"n1\",\"epoch\":1,\"replicas\":[\"n1\",\"n1\"],\"isr\":[]}", "twice"},
	    {"{\"leader\":\"n 1\",\"epoch\":1,\"replicas\":[\"n1\"],\"isr\":[]}", "node id"},
	    {"{\"leader\":\"n1\",\"epoch\":1,\"replicas\":[\"n1\",1],\"isr\":[]}", "not a string"},
	    {"{\"leader\":\"n9\",\"epoch\":1,\"replicas\":[\"n1\"],\"isr\":[]}", "not a replica"},
	    {"{\"leader\":\"n1\",\"epoch\":1,\"replicas\":[\"n1\"],\"isr\":[\"n2\"]}",
	     "not a replica"},
	    {"{\"leader\":\"n1\",\"epoch\":1,\"replicas\":[\"n1\"]}", "\"isr\" is missing"},
	    {"{\"leader\":\"n1\",\"epoch\":1,\"replicas\":\"n1\",\"isr\":[]}", "not an array"},
	    {"[1]", "not a JSON object"},
	    {"{\"leader\":\"n1\"} x", "not JSON"},
	    {"{\"leader\":\"n\\u0000\",\"epoch\":1,\"replicas\":[\"n1\"],\"isr\":[]}", "node id"},
	};
	for (size_t i = 0; i < SL_ARRAY_LEN(badv); i++) {
		why[0] = 0;
		int r = sl_cluster_pstate_decode(badv[i].json, strlen(badv[i].json), &s, why,
		                                 sizeof(why));
		cr_assert_eq(r, -EINVAL, "%s accepted", badv[i].json);
		cr_assert(strstr(why, badv[i].why), "%s: \"%s\" lacks \"%s\"", badv[i].json, why,
		          badv[i].why);
	}
	char big[SL_CLUSTER_JSON_MAX + 2];
	memset(big, ' ', sizeof(big));
	cr_assert_eq(sl_cluster_pstate_decode(big, sizeof(big), &s, why, sizeof(why)), -EINVAL);

	/* the encoder refuses what the decoder would */
	struct sl_pstate b = s2;
	snprintf(b.leader, sizeof(b.leader), "n9");
	cr_assert_eq(sl_cluster_pstate_encode(&b, buf, sizeof(buf)), -EINVAL);
	cr_assert_eq(sl_cluster_pstate_encode(&s2, buf, 16), -ENOSPC);
}

Test(cluster, node_topic_ordinal_codecs)
{
	struct sl_cluster_node nd = {
	    .id = "n1", .native = "10.0.0.1:7401", .http = "[::1]:7481", .ordinal = 4294967295ll};
	struct sl_cluster_node back;
	char buf[SL_CLUSTER_JSON_MAX], why[256];
	int n = sl_cluster_node_encode(&nd, buf, sizeof(buf));
	cr_assert_gt(n, 0);
	cr_assert_eq(sl_cluster_node_decode(buf, (size_t)n, &back, why, sizeof(why)), 0, "%s", why);
	cr_assert_str_eq(back.http, "[::1]:7481");
	cr_assert_eq(back.ordinal, 4294967295ll);
	const char *nb[] = {
	    "{\"id\":\"n1\",\"native\":\"a b\",\"http\":\"x\",\"ordinal\":1}",
	    "{\"id\":\"n1\",\"native\":\"a\",\"http\":\"x\"}",
	    "{\"id\":\"n1\",\"native\":\"a\",\"http\":\"x\",\"ordinal\":true}",
	    "{\"id\":\"\",\"native\":\"a\",\"http\":\"x\",\"ordinal\":1}",
	    "{\"id\":\"n1\",\"native\":\"a\",\"http\":\"x\",\"ordinal\":1,\"zone\":\"z\"}",
	};
	for (size_t i = 0; i < SL_ARRAY_LEN(nb); i++) {
		why[0] = 0;
		cr_assert_eq(sl_cluster_node_decode(nb[i], strlen(nb[i]), &back, why, sizeof(why)),
		             -EINVAL, "%s", nb[i]);
		cr_assert_neq(why[0], 0);
	}
	uint32_t p, r;
	n = sl_cluster_topic_encode(8, 3, buf, sizeof(buf));
	cr_assert_str_eq(buf, "{\"partitions\":8,\"replicas\":3}");
	cr_assert_eq(sl_cluster_topic_decode(buf, (size_t)n, &p, &r, why, sizeof(why)), 0);
	cr_assert(p == 8 && r == 3);
	const char *tb = "{\"partitions\":8,\"replicas\":8}";
	cr_assert_eq(sl_cluster_topic_decode(tb, strlen(tb), &p, &r, why, sizeof(why)), -EINVAL);
	cr_assert_eq(sl_cluster_ordinal_decode("0", 1, &p), 0);
	cr_assert_eq(sl_cluster_ordinal_decode("4294967296", 10, &p), -EINVAL);
	cr_assert_eq(sl_cluster_ordinal_decode("07", 2, &p), -EINVAL);
	cr_assert_eq(sl_cluster_ordinal_decode("-1", 2, &p), -EINVAL);
	cr_assert(sl_cluster_id_ok("a.B_c-9"));
	cr_assert_not(sl_cluster_id_ok("a/b"));
	cr_assert_not(sl_cluster_id_ok(""));
	char id64[65];
	memset(id64, 'a', 64);
	id64[64] = 0;
	cr_assert_not(sl_cluster_id_ok(id64));
	id64[63] = 0;
	cr_assert(sl_cluster_id_ok(id64));
}

/* ---- pure: placement ------------------------------------------------------------- */

Test(cluster, placement_spread)
{
	static const char *ids[] = {"a", "b", "c", "d", "e", "f", "g", "h", "i"};
	for (size_t n = 1; n <= SL_ARRAY_LEN(ids); n++) {
		for (uint32_t r = 1; r <= SL_CLUSTER_REPLICAS_MAX && r <= n; r++) {
			for (uint32_t P = 1; P <= 50; P++) {
				unsigned lead[9] = {0}, hold[9] = {0};
				for (uint32_t p = 0; p < P; p++) {
					struct sl_pstate s;
					cr_assert_eq(sl_cluster_place(ids, n, p, r, &s), 0);
					cr_assert_eq(s.epoch, 1);
					cr_assert_eq(s.n_replicas, r);
					cr_assert_eq(s.n_isr, r);
					cr_assert_str_eq(s.leader, s.replicas[0]);
					cr_assert_str_eq(s.leader, ids[p % n]);
					for (uint32_t i = 0; i < r; i++) {
						cr_assert_str_eq(s.replicas[i], s.isr[i]);
						hold[s.replicas[i][0] - 'a']++;
					}
					lead[s.leader[0] - 'a']++;
					/* a state the codec takes as it is */
					char buf[SL_CLUSTER_JSON_MAX];
					cr_assert_gt(sl_cluster_pstate_encode(&s, buf, sizeof(buf)),
					             0);
				}
				/* Leaders: floor or ceil of P/N always. Replicas: floor
				 * or ceil of P*R/N when N divides P (or R is 1 or N);
				 * otherwise a node holds R*floor(P/N) plus the number of
				 * its R start positions below P % N, which can miss
				 * floor/ceil (N=4, R=2, P=2: b holds 2, not 1), so the
				 * general check is that bound, and the spread of any
				 * two nodes is at most min(R, N - R). */
				unsigned lo = ~0u, hi = 0;
				for (size_t k = 0; k < n; k++) {
					cr_assert(lead[k] == P / n || lead[k] == (P + n - 1) / n,
					          "n=%zu r=%u P=%u: node %zu leads %u", n, r, P, k,
					          lead[k]);
					uint32_t pr = P * r;
					if (P % n == 0 || r == 1 || r == n)
						cr_assert(hold[k] == pr / n ||
						              hold[k] == (pr + n - 1) / n,
						          "n=%zu r=%u P=%u: node %zu holds %u", n,
						          r, P, k, hold[k]);
					cr_assert(hold[k] >= r * (P / n) &&
					              hold[k] <= r * ((P + n - 1) / n),
					          "n=%zu r=%u P=%u: node %zu holds %u", n, r, P, k,
					          hold[k]);
					lo = hold[k] < lo ? hold[k] : lo;
					hi = hold[k] > hi ? hold[k] : hi;
				}
				cr_assert_leq(hi - lo, r < n - r ? r : n - r, "n=%zu r=%u P=%u", n,
				              r, P);
			}
		}
	}
	struct sl_pstate s;
	const char *unsorted[] = {"b", "a"};
	const char *dup[] = {"a", "a"};
	cr_assert_eq(sl_cluster_place(ids, 2, 0, 3, &s), -EINVAL, "fewer nodes than replicas");
	cr_assert_eq(sl_cluster_place(unsorted, 2, 0, 1, &s), -EINVAL);
	cr_assert_eq(sl_cluster_place(dup, 2, 0, 1, &s), -EINVAL);
	cr_assert_eq(sl_cluster_place(ids, 9, 0, 0, &s), -EINVAL);
	cr_assert_eq(sl_cluster_place(ids, 9, 0, 8, &s), -EINVAL);
}

/* ---- live: registration, ordinals, leases ------------------------------------------ */

Test(cluster, registration_visible_in_etcd_with_stable_ordinals, .fini = down, .timeout = 60)
{
	up();
	struct sl_cluster *c1, *c2;
	cr_assert_eq(start_node("n1", 5000, NULL, &c1), 0, "%s", err);
	cr_assert_eq(start_node("n2", 5000, NULL, &c2), 0, "%s", err);
	cr_assert_neq(sl_cluster_ordinal(c1), sl_cluster_ordinal(c2));
	cr_assert_gt(sl_cluster_lease_deadline_ns(c1), sl_now_ns());

	struct sl_etcd *e = raw_client();
	struct kvcopy k = {.key = "nodes/n1"};
	cr_assert_geq(sl_etcd_get_prefix(e, "nodes/", grab, &k), 2, "%s", sl_etcd_errmsg(e));
	cr_assert(k.there);
	cr_assert_eq(k.lease, sl_cluster_lease_id(c1), "the record lives under n1's lease");
	struct sl_cluster_node nd;
	char why[256];
	cr_assert_eq(sl_cluster_node_decode(k.val, k.len, &nd, why, sizeof(why)), 0, "%s", why);
	cr_assert_str_eq(nd.id, "n1");
	cr_assert_str_eq(nd.native, "127.0.0.1:7401");
	cr_assert_str_eq(nd.http, "127.0.0.1:7501");
	cr_assert_eq(nd.ordinal, sl_cluster_ordinal(c1));
	int64_t ttl = 0;
	cr_assert_eq(sl_etcd_lease_timetolive(e, k.lease, &ttl), 0);
	cr_assert(ttl > 0 && ttl <= 5, "ttl %lld", (long long)ttl);

	/* the ordinal is n1's for good: a restart gets it back */
	uint32_t ord = sl_cluster_ordinal(c1);
	sl_cluster_stop(c1);
	cr_assert_eq(start_node("n1", 5000, NULL, &c1), 0, "%s", err);
	cr_assert_eq(sl_cluster_ordinal(c1), ord);
	uint8_t *v;
	size_t len;
	cr_assert_eq(sl_etcd_get(e, "ordinal_next", &v, &len, NULL, NULL), 0);
	cr_assert_eq(len, 1);
	cr_assert_eq(v[0], '2', "two ids, two ordinals handed out");
	free(v);
	sl_cluster_stop(c1);
	sl_cluster_stop(c2);
	sl_etcd_close(e);
	down();
}

Test(cluster, same_id_refused_while_alive_then_accepted_after_stop, .fini = down, .timeout = 60)
{
	up();
	struct sl_cluster *a, *b;
	cr_assert_eq(start_node("n1", 5000, NULL, &a), 0, "%s", err);
	cr_assert_eq(start_node("n1", 5000, NULL, &b), -EEXIST);
	cr_assert(strstr(err, "node id n1 is already registered by a live node"), "%s", err);

	/* a clean leave revokes the lease: the key goes at once */
	sl_cluster_stop(a);
	struct sl_etcd *e = raw_client();
	uint8_t *v;
	size_t len;
	cr_assert_eq(sl_etcd_get(e, "nodes/n1", &v, &len, NULL, NULL), -ENOENT);
	cr_assert_eq(start_node("n1", 5000, NULL, &b), 0, "%s", err);
	sl_cluster_stop(b);
	sl_etcd_close(e);
	down();
}

struct del_seen {
	bool deleted;
};
static int on_del(void *arg, const struct sl_etcd_event *ev)
{
	if (ev->type == SL_ETCD_DELETE && strcmp(ev->kv.key, "nodes/n1") == 0)
		((struct del_seen *)arg)->deleted = true;
	return 0;
}

Test(cluster, lease_expiry_removes_a_node_that_stopped_keeping_alive, .fini = down, .timeout = 60)
{
	up();
	struct sl_cluster *a, *b;
	cr_assert_eq(start_node("n1", 1000, NULL, &a), 0, "%s", err);
	struct sl_etcd *e = raw_client();
	struct sl_etcd_watch *w;
	cr_assert_eq(sl_etcd_watch_open(e, "nodes/", 0, &w), 0, "%s", sl_etcd_errmsg(e));
	uint64_t t0 = sl_now_ns();
	sl__cluster_abandon(a); /* no revoke: a crash, as etcd sees it */

	/* still registered under the abandoned lease */
	cr_assert_eq(start_node("n1", 1000, NULL, &b), -EEXIST, "%s", err);

	/* etcd's watch is the event source: wait for the DELETE it sends when
	 * the lease expires (1 s TTL + etcd's 500 ms expiry sweep) */
	struct del_seen d = {0};
	while (!d.deleted && sl_now_ns() - t0 < 10 * SEC) {
		int r = sl_etcd_watch_next(w, 500, on_del, &d);
		cr_assert_geq(r, 0, "%s", sl_etcd_watch_errmsg(w));
	}
	cr_assert(d.deleted, "nodes/n1 outlived its lease");
	cr_log_info("lease expiry: key gone %.0f ms after the keepalives stopped",
	            (double)(sl_now_ns() - t0) / 1e6);
	cr_assert_eq(start_node("n1", 1000, NULL, &b), 0, "%s", err);
	sl_cluster_stop(b);
	sl_etcd_watch_close(w);
	sl_etcd_close(e);
	down();
}

Test(cluster, lease_lost_while_etcd_paused_and_regained_after, .fini = down, .timeout = 60)
{
	up();
	struct watcher w;
	watcher_init(&w);
	struct sl_cluster *c;
	cr_assert_eq(start_node("n1", 1000, &w, &c), 0, "%s", err);
	struct want x = {.w = &w, .n = 1};
	cr_assert_eq(sl_notify_wait(&w.n, lease_true, &x, 5 * SEC), 0);
	int64_t lease0 = sl_cluster_lease_id(c);

	cr_assert_eq(kill(srv.pid, SIGSTOP), 0);
	int st;
	cr_assert_eq(waitpid(srv.pid, &st, WUNTRACED), srv.pid);
	cr_assert(WIFSTOPPED(st));
	uint64_t stopped_at = sl_now_ns();
	/* An answer etcd wrote just before it stopped may still move the
	 * deadline once; never past what the last keepalive allows. */
	uint64_t d0 = sl_cluster_lease_deadline_ns(c);
	cr_assert_leq(d0, stopped_at + 1 * SEC, "deadline beyond the TTL from now");

	cr_assert_eq(sl_notify_wait(&w.n, lease_false, &x, 10 * SEC), 0, "lease never lost");
	pthread_mutex_lock(&w.n.mu);
	uint64_t false_at = w.false_at, dl = w.deadline_at_false;
	pthread_mutex_unlock(&w.n.mu);
	cr_assert_geq(false_at, d0, "lost before the deadline passed");
	cr_assert_eq(dl, 0, "the deadline is withdrawn before on_lease(false)");
	cr_assert_lt(false_at - d0, 2 * SEC, "noticed %.0f ms late", (double)(false_at - d0) / 1e6);
	cr_log_info("lease lost %.0f ms after etcd stopped (deadline was %.0f ms after)",
	            (double)(false_at - stopped_at) / 1e6, (double)(d0 - stopped_at) / 1e6);

	cr_assert_eq(kill(srv.pid, SIGCONT), 0);
	x.n = 2;
	cr_assert_eq(sl_notify_wait(&w.n, lease_true, &x, 15 * SEC), 0, "lease never regained");
	cr_assert_gt(sl_cluster_lease_deadline_ns(c), sl_now_ns());
	int64_t lease1 = sl_cluster_lease_id(c);
	cr_assert(lease1 != 0 && lease1 != lease0, "a new lease");
	struct sl_etcd *e = raw_client();
	struct kvcopy k = {.key = "nodes/n1"};
	cr_assert_geq(sl_etcd_get_prefix(e, "nodes/", grab, &k), 1);
	cr_assert(k.there);
	cr_assert_eq(k.lease, lease1, "registered again under the new lease");
	sl_etcd_close(e);
	sl_cluster_stop(c);
	sl_notify_destroy(&w.n);
	down();
}

/* ---- live: placement, CAS ---------------------------------------------------------- */

static const struct sl_cluster_topic topic_t = {"t", 6, 3};

/* Three nodes; placement of "t" (6 partitions, 3 replicas) waits for the
 * third, then every node sees every state. */
static void three_nodes(struct watcher w[3], struct sl_cluster *c[3])
{
	static const char *ids[] = {"n1", "n2", "n3"};
	for (int i = 0; i < 3; i++)
		watcher_init(&w[i]);
	struct sl_etcd *e = raw_client();
	int count = 0;

	cr_assert_eq(start_node(ids[0], 5000, &w[0], &c[0]), 0, "%s", err);
	cr_assert_eq(sl_cluster_topics(c[0], &topic_t, 1, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(start_node(ids[1], 5000, &w[1], &c[1]), 0, "%s", err);
	/* n2's cache holds n1 and n2: its own attempt sees 2 < 3 nodes */
	cr_assert_eq(sl_cluster_topics(c[1], &topic_t, 1, err, sizeof(err)), 0, "%s", err);
	/* and n1 has seen n2 join (its membership pass ran with 2 nodes) */
	struct want x = {.w = &w[0], .n = 2};
	cr_assert_eq(sl_notify_wait(&w[0].n, n_alive, &x, 5 * SEC), 0);
	cr_assert_eq(sl_etcd_get_prefix(e, "partitions/", count_kv, &count), 0);
	cr_assert_eq(count, 0, "placed with fewer live nodes than replicas");

	/* n3 joins without asking for the topic: n1's and n2's cluster
	 * threads place it when they see the third node */
	cr_assert_eq(start_node(ids[2], 5000, &w[2], &c[2]), 0, "%s", err);
	for (int i = 0; i < 3; i++) {
		struct want y = {.w = &w[i], .n = 6};
		cr_assert_eq(sl_notify_wait(&w[i].n, have_parts, &y, 10 * SEC), 0,
		             "%s saw only some states", ids[i]);
	}
	for (uint32_t p = 0; p < 6; p++) {
		struct sl_pstate s;
		cr_assert_eq(sl_cluster_pstate_get(c[2], "t", p, &s), 0);
		cr_assert_str_eq(s.leader, ids[p % 3]);
		cr_assert_eq(s.epoch, 1);
		cr_assert_eq(s.n_replicas, 3);
		for (uint32_t i = 0; i < 3; i++)
			cr_assert_str_eq(s.replicas[i], ids[(p + i) % 3]);
		cr_assert_eq(s.n_isr, 3);
		cr_assert_gt(s.mod_revision, 0);
	}
	count = 0;
	cr_assert_eq(sl_etcd_get_prefix(e, "partitions/t/", count_kv, &count), 6);
	cr_assert_eq(count, 6);
	sl_etcd_close(e);
}

static int list_node(void *arg, const struct sl_cluster_node *n)
{
	char *out = arg;
	size_t l = strlen(out);
	snprintf(out + l, 256 - l, "%s%s:%s:%lld", l ? " " : "", n->id, n->alive ? "up" : "down",
	         (long long)n->ordinal);
	return 0;
}

Test(cluster, placement_waits_for_r_nodes_then_all_states_appear, .fini = down, .timeout = 60)
{
	up();
	struct watcher w[3];
	struct sl_cluster *c[3];
	three_nodes(w, c);

	/* a node whose config disagrees gets the topic's own error */
	const struct sl_cluster_topic other = {"t", 4, 3};
	cr_assert_eq(sl_cluster_topics(c[2], &other, 1, err, sizeof(err)), -EINVAL);
	cr_assert(strstr(err, "topic t") && strstr(err, "4 partitions") &&
	              strstr(err, "6 partitions"),
	          "%s", err);

	/* a node that leaves stays known, as down, while states name it */
	sl_cluster_stop(c[2]);
	/* n1 hears n3 leave (its key revoked): n_alive drops to 2 */
	struct want x = {.w = &w[0], .n = 2};
	cr_assert_eq(sl_notify_wait(&w[0].n, n_alive_is, &x, 5 * SEC), 0);
	char list[256] = "";
	cr_assert_eq(sl_cluster_nodes(c[0], list_node, list), 3);
	cr_assert(strstr(list, "n1:up") && strstr(list, "n2:up") && strstr(list, "n3:down"), "%s",
	          list);
	sl_cluster_stop(c[0]);
	sl_cluster_stop(c[1]);
	for (int i = 0; i < 3; i++)
		sl_notify_destroy(&w[i].n);
	down();
}

struct casw {
	struct sl_cluster *c;
	struct sl_pstate next;
	int64_t expect, got_rev;
	int r;
	pthread_barrier_t *go;
	char err[256];
};
static void *cas_thread(void *arg)
{
	struct casw *k = arg;
	pthread_barrier_wait(k->go);
	k->r = sl_cluster_pstate_cas(k->c, "t", 0, &k->next, k->expect, &k->got_rev, k->err,
	                             sizeof(k->err));
	return NULL;
}

Test(cluster, cas_two_writers_on_one_revision_exactly_one_wins, .fini = down, .timeout = 60)
{
	up();
	struct watcher w[3];
	struct sl_cluster *c[3];
	three_nodes(w, c);

	struct sl_pstate s;
	cr_assert_eq(sl_cluster_pstate_get(c[0], "t", 0, &s), 0);
	cr_assert_str_eq(s.leader, "n1");
	pthread_barrier_t go;
	pthread_barrier_init(&go, NULL, 2);
	struct casw k[2] = {{.c = c[0], .next = s, .expect = s.mod_revision, .go = &go},
	                    {.c = c[1], .next = s, .expect = s.mod_revision, .go = &go}};
	snprintf(k[0].next.leader, SL_CLUSTER_ID_MAX, "n2");
	snprintf(k[1].next.leader, SL_CLUSTER_ID_MAX, "n3");
	k[0].next.epoch = k[1].next.epoch = s.epoch + 1;
	pthread_t th[2];
	for (int i = 0; i < 2; i++)
		cr_assert_eq(pthread_create(&th[i], NULL, cas_thread, &k[i]), 0);
	for (int i = 0; i < 2; i++)
		pthread_join(th[i], NULL);
	pthread_barrier_destroy(&go);
	int winner = k[0].r == 0 ? 0 : 1;
	cr_assert_eq(k[winner].r, 0, "%s", k[winner].err);
	cr_assert_eq(k[1 - winner].r, -ESTALE, "both won? %d %d", k[0].r, k[1].r);
	cr_assert(strstr(k[1 - winner].err, "another writer won"), "%s", k[1 - winner].err);
	cr_assert_gt(k[winner].got_rev, s.mod_revision);

	/* the loser re-reads (after its watch caught up) and wins on that */
	struct want x = {.w = &w[1], .p = 0, .epoch = 2};
	cr_assert_eq(sl_notify_wait(&w[1].n, epoch_at, &x, 5 * SEC), 0);
	struct sl_pstate now;
	cr_assert_eq(sl_cluster_pstate_get(c[1], "t", 0, &now), 0);
	cr_assert_eq(now.mod_revision, k[winner].got_rev);
	cr_assert_str_eq(now.leader, k[winner].next.leader);
	now.epoch++;
	int64_t rev3;
	cr_assert_eq(
	    sl_cluster_pstate_cas(c[1], "t", 0, &now, now.mod_revision, &rev3, err, sizeof(err)), 0,
	    "%s", err);
	/* create-if-absent on a key that exists loses too */
	cr_assert_eq(sl_cluster_pstate_cas(c[1], "t", 0, &now, 0, NULL, err, sizeof(err)), -ESTALE);
	/* a state the codec refuses is never written */
	struct sl_pstate bad = now;
	snprintf(bad.leader, SL_CLUSTER_ID_MAX, "n9");
	cr_assert_eq(sl_cluster_pstate_cas(c[1], "t", 0, &bad, rev3, NULL, err, sizeof(err)),
	             -EINVAL);
	cr_assert(strstr(err, "not a replica"), "%s", err);
	for (int i = 0; i < 3; i++)
		sl_cluster_stop(c[i]);
	for (int i = 0; i < 3; i++)
		sl_notify_destroy(&w[i].n);
	down();
}

Test(cluster, on_partition_tells_of_another_writers_cas, .fini = down, .timeout = 60)
{
	up();
	struct watcher w[3];
	struct sl_cluster *c[3];
	three_nodes(w, c);

	/* n2 moves partition 4's leadership to n3 with a shrunk ISR */
	struct sl_pstate s;
	cr_assert_eq(sl_cluster_pstate_get(c[1], "t", 4, &s), 0);
	cr_assert_str_eq(s.leader, "n2");
	struct sl_pstate next = s;
	snprintf(next.leader, SL_CLUSTER_ID_MAX, "n3");
	next.epoch = 2;
	next.n_isr = 2;
	snprintf(next.isr[0], SL_CLUSTER_ID_MAX, "n2");
	snprintf(next.isr[1], SL_CLUSTER_ID_MAX, "n3");
	int64_t rev;
	cr_assert_eq(
	    sl_cluster_pstate_cas(c[1], "t", 4, &next, s.mod_revision, &rev, err, sizeof(err)), 0,
	    "%s", err);

	/* n1 did not write it; its callback brings the new state */
	struct want x = {.w = &w[0], .p = 4, .epoch = 2};
	cr_assert_eq(sl_notify_wait(&w[0].n, epoch_at, &x, 5 * SEC), 0, "n1 never heard");
	pthread_mutex_lock(&w[0].n.mu);
	struct sl_pstate got = w[0].ps[4];
	pthread_mutex_unlock(&w[0].n.mu);
	cr_assert_str_eq(got.leader, "n3");
	cr_assert_eq(got.n_isr, 2);
	cr_assert_eq(got.mod_revision, rev);
	for (int i = 0; i < 3; i++)
		sl_cluster_stop(c[i]);
	for (int i = 0; i < 3; i++)
		sl_notify_destroy(&w[i].n);
	down();
}

/* ---- the controller's choice (elect.c), pure ------------------------------- */

static struct sl_pstate three(const char *leader, uint32_t epoch, const char *isr)
{
	struct sl_pstate s = {0};
	const char *ids[] = {"n1", "n2", "n3"};
	snprintf(s.leader, sizeof(s.leader), "%s", leader);
	s.epoch = epoch;
	s.n_replicas = 3;
	for (int i = 0; i < 3; i++) {
		snprintf(s.replicas[i], sizeof(s.replicas[i]), "%s", ids[i]);
		if (strstr(isr, ids[i]))
			snprintf(s.isr[s.n_isr++], sizeof(s.isr[0]), "%s", ids[i]);
	}
	s.mod_revision = 42;
	return s;
}

#define DEAD                                                                                       \
	{                                                                                          \
		.alive = false                                                                     \
	}
#define SILENT                                                                                     \
	{                                                                                          \
		.alive = true                                                                      \
	}
#define R(e, d)                                                                                    \
	{                                                                                          \
		.alive = true, .answered = true, .last_epoch = (e), .durable = (d)                 \
	}

Test(cluster, elect_quorum_most_complete_of_a_majority)
{
	struct sl_pstate s = three("n1", 1, "n1 n2 n3"), next;
	bool unclean = true;
	/* n1 dead: n2 and n3 are a majority; n3 holds more of epoch 1 */
	struct sl_cluster_reply r[3] = {DEAD, R(1, 900), R(1, 1000)};
	cr_assert_eq(sl_cluster_elect(&s, r, SL_CLUSTER_ACKS_QUORUM, false, &next, &unclean), 0);
	cr_assert_str_eq(next.leader, "n3");
	cr_assert_eq(next.epoch, 2);
	cr_assert(!unclean);
	cr_assert_eq(next.n_isr, 2, "the ISR is who answered");
	cr_assert_str_eq(next.isr[0], "n2");
	cr_assert_str_eq(next.isr[1], "n3");
	cr_assert_eq(next.n_replicas, 3, "the replica set stays");
	/* a newer epoch wins over a longer log of an older one */
	struct sl_cluster_reply r2[3] = {DEAD, R(3, 10), R(2, 5000)};
	cr_assert_eq(sl_cluster_elect(&s, r2, SL_CLUSTER_ACKS_QUORUM, false, &next, &unclean), 0);
	cr_assert_str_eq(next.leader, "n2");
	/* ties go to the earlier replica */
	struct sl_cluster_reply r3[3] = {DEAD, R(1, 7), R(1, 7)};
	cr_assert_eq(sl_cluster_elect(&s, r3, SL_CLUSTER_ACKS_LEADER, false, &next, &unclean), 0);
	cr_assert_str_eq(next.leader, "n2");
	/* a live replica that did not answer counts for nothing */
	struct sl_cluster_reply r4[3] = {DEAD, SILENT, R(1, 7)};
	cr_assert_eq(sl_cluster_elect(&s, r4, SL_CLUSTER_ACKS_QUORUM, false, &next, &unclean),
	             -EAGAIN);
}

Test(cluster, elect_quorum_without_a_majority_only_unclean)
{
	struct sl_pstate s = three("n1", 4, "n1 n2 n3"), next;
	bool unclean = false;
	struct sl_cluster_reply r[3] = {DEAD, DEAD, R(4, 100)};
	cr_assert_eq(sl_cluster_elect(&s, r, SL_CLUSTER_ACKS_QUORUM, false, &next, &unclean),
	             -EAGAIN);
	cr_assert(!unclean);
	cr_assert_eq(sl_cluster_elect(&s, r, SL_CLUSTER_ACKS_QUORUM, true, &next, &unclean), 0);
	cr_assert(unclean, "counted as unclean");
	cr_assert_str_eq(next.leader, "n3");
	cr_assert_eq(next.epoch, 5);
	cr_assert_eq(next.n_isr, 1);
	cr_assert_str_eq(next.isr[0], "n3");
	/* no one to choose even unclean */
	struct sl_cluster_reply none[3] = {DEAD, DEAD, SILENT};
	cr_assert_lt(sl_cluster_elect(&s, none, SL_CLUSTER_ACKS_QUORUM, true, &next, &unclean), 0);
	cr_assert(!unclean);
}

Test(cluster, elect_all_from_the_live_isr)
{
	/* n3 left the ISR: it may hold less than was acked */
	struct sl_pstate s = three("n1", 2, "n1 n2"), next;
	bool unclean = false;
	struct sl_cluster_reply r[3] = {DEAD, R(2, 50), R(2, 80)};
	cr_assert_eq(sl_cluster_elect(&s, r, SL_CLUSTER_ACKS_ALL, false, &next, &unclean), 0);
	cr_assert_str_eq(next.leader, "n2", "in sync, though n3 says it holds more");
	cr_assert_eq(next.n_isr, 1, "the ISR minus the dead");
	cr_assert_str_eq(next.isr[0], "n2");
	/* a live in-sync replica that did not answer still holds every ack */
	struct sl_cluster_reply r2[3] = {DEAD, SILENT, DEAD};
	cr_assert_eq(sl_cluster_elect(&s, r2, SL_CLUSTER_ACKS_ALL, false, &next, &unclean), 0);
	cr_assert_str_eq(next.leader, "n2");
	/* only an out-of-sync replica lives: unclean only */
	struct sl_cluster_reply r3[3] = {DEAD, DEAD, R(2, 80)};
	cr_assert_eq(sl_cluster_elect(&s, r3, SL_CLUSTER_ACKS_ALL, false, &next, &unclean),
	             -ENOENT);
	cr_assert_eq(sl_cluster_elect(&s, r3, SL_CLUSTER_ACKS_ALL, true, &next, &unclean), 0);
	cr_assert(unclean);
	cr_assert_str_eq(next.leader, "n3");
	cr_assert_eq(next.epoch, 3);
}

/* ---- a quorum read's choice (qread.c), pure --------------------------------- */

static struct sl_cluster_qreply qr(uint64_t applied, uint64_t holds)
{
	return (struct sl_cluster_qreply){
	    .answered = true, .status = 200, .applied = applied, .holds = holds};
}

static const struct sl_cluster_qreply qr_none = {.answered = false, .status = 0};

Test(cluster, qread_pick_the_most_applied_of_a_majority)
{
	uint64_t need = 0;

	/* The lagging replica answers first (index 0): the choice is the most
	 * applied, not the first; need is the most any of them holds. */
	struct sl_cluster_qreply r[3] = {qr(100, 120), qr(250, 250), qr_none};
	cr_assert_eq(sl_cluster_qread_pick(r, 3, 3, 0, &need), 1);
	cr_assert_eq(need, 250);
	/* Ties go to the earlier. */
	struct sl_cluster_qreply t[3] = {qr(7, 7), qr_none, qr(7, 9)};
	cr_assert_eq(sl_cluster_qread_pick(t, 3, 3, 0, &need), 0);
	cr_assert_eq(need, 9); /* the answer at 7 is short of 9: ask again */
	/* A token raises need. */
	cr_assert_eq(sl_cluster_qread_pick(r, 3, 3, 400, &need), 1);
	cr_assert_eq(need, 400);
	/* A follower that holds acked events it has not applied yet makes
	 * need pass every applied offset: the caller asks again. */
	struct sl_cluster_qreply f[3] = {qr(50, 50), qr(40, 60), qr(50, 50)};
	cr_assert_eq(sl_cluster_qread_pick(f, 3, 3, 0, &need), 0);
	cr_assert_eq(need, 60);
	cr_assert_lt(f[0].applied, need);
	/* A 404 with its offsets is an answer like any other. */
	struct sl_cluster_qreply nf = qr(300, 300);
	nf.status = 404;
	struct sl_cluster_qreply g[3] = {qr(250, 250), nf, qr_none};
	cr_assert_eq(sl_cluster_qread_pick(g, 3, 3, 0, &need), 1);
}

Test(cluster, qread_pick_refuses_without_a_majority)
{
	uint64_t need = 0;
	struct sl_cluster_qreply one[3] = {qr_none, qr(250, 250), qr_none};
	cr_assert_eq(sl_cluster_qread_pick(one, 3, 3, 0, &need), -EAGAIN);
	cr_assert_eq(need, 250);
	struct sl_cluster_qreply none[3] = {qr_none, qr_none, qr_none};
	cr_assert_eq(sl_cluster_qread_pick(none, 3, 3, 0, &need), -EAGAIN);
	/* 2 of 5 is not a majority, 3 of 5 is; 1 of 1 is. */
	struct sl_cluster_qreply five[5] = {qr(1, 1), qr(2, 2), qr_none, qr_none, qr_none};
	cr_assert_eq(sl_cluster_qread_pick(five, 5, 5, 0, &need), -EAGAIN);
	five[4] = qr(3, 3);
	cr_assert_eq(sl_cluster_qread_pick(five, 5, 5, 0, &need), 4);
	struct sl_cluster_qreply alone[1] = {qr(5, 5)};
	cr_assert_eq(sl_cluster_qread_pick(alone, 1, 1, 0, &need), 0);
	cr_assert_eq(sl_cluster_qread_pick(alone, 1, 0, 0, &need), -EAGAIN);
}

Test(cluster, qread_parse_answers_and_refusals)
{
	struct sl_cluster_qreply r;
	const char *ok = "{\"key\":\"aggregate:a\",\"count\":3,\"token\":\"0:9\",\"lag\":0,"
	                 "\"applied\":10,\"holds\":12}\n";
	cr_assert_eq(sl_cluster_qread_parse(200, ok, strlen(ok), &r), 0);
	cr_assert(r.answered && r.status == 200 && r.applied == 10 && r.holds == 12);
	const char *nf = "{\"error\":\"not_found\",\"message\":\"no entry\",\"applied\":0,"
	                 "\"holds\":0}";
	cr_assert_eq(sl_cluster_qread_parse(404, nf, strlen(nf), &r), 0);
	cr_assert(r.answered && r.status == 404 && r.applied == 0);
	/* Refusals and malformed bodies are not answers. */
	cr_assert_eq(sl_cluster_qread_parse(503, ok, strlen(ok), &r), -EAGAIN);
	cr_assert(!r.answered && r.status == 503);
	const char *bad[] = {"",
	                     "{\"applied\":1}",
	                     "{\"applied\":-1,\"holds\":2}",
	                     "{\"applied\":\"1\",\"holds\":2}",
	                     "{\"applied\":1,\"holds\":2} x",
	                     "[1,2]",
	                     "{\"applied\":1,\"holds\":99999999999999999999}",
	                     "{\"applied\":1,\"holds\":2"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		cr_assert_eq(sl_cluster_qread_parse(200, bad[i], strlen(bad[i]), &r), -EPROTO, "%s",
		             bad[i]);
		cr_assert(!r.answered);
	}
}
