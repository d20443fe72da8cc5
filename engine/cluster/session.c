/*
 * The node's session: start (lease, ordinal, registration, first read,
 * watch) on the control thread, then the cluster thread `sl-cluster`,
 * which keeps the lease alive, follows the watch, recovers a lost lease,
 * and creates missing partition states when membership changes; stop.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "base/base.h"
#include "cluster/cluster_impl.h"

/* The thread's longest wait in one step: how soon it sees sl_cluster_stop()
 * (etcd's watch runs on a curl multi handle inside sl_etcd_watch_next, with
 * no descriptor of ours to wake it by). 100 ms: a stop well under a second,
 * ten idle wake-ups a second. */
#define SL__CLUSTER_TICK_MS 100
/* Retry of a failed grant/registration: doubles from 100 ms up to 1 s, so a
 * node is back within a second of etcd answering again. */
#define SL__CLUSTER_RETRY_MIN_NS 100000000ull
#define SL__CLUSTER_RETRY_MAX_NS 1000000000ull
#define SL__CLUSTER_TIMEOUT_MS   2000

static void set_err(char *err, size_t errlen, const char *what, struct sl_etcd *e)
{
	sl_errf(err, errlen, "cluster: %s: %s", what, e ? sl_etcd_errmsg(e) : "");
}

/* ---- registration -------------------------------------------------------------- */

struct found {
	const char *key;
	bool there;
	int64_t lease, mod;
};

static int find_exact(void *arg, const struct sl_etcd_kv *kv)
{
	struct found *f = arg;
	if (strcmp(kv->key, f->key) == 0) {
		f->there = true;
		f->lease = kv->lease;
		f->mod = kv->mod_revision;
	}
	return 0;
}

/*
 * nodes/<id> under lease, only if absent: the one test that no other live
 * node has this id (its key lives exactly as long as its lease). A key under
 * old_lease is our own from before a lost lease (etcd had not expired it
 * yet): removed, fenced by its revision, and the create tried again.
 */
static int register_node(struct sl_cluster *c, struct sl_etcd *e, int64_t lease, int64_t old_lease,
                         char *err, size_t errlen)
{
	struct sl_cluster_node me = {.ordinal = c->ordinal};
	char key[16 + SL_CLUSTER_ID_MAX], val[SL_CLUSTER_JSON_MAX];
	snprintf(me.id, sizeof(me.id), "%s", c->id);
	snprintf(me.native, sizeof(me.native), "%s", c->native);
	snprintf(me.http, sizeof(me.http), "%s", c->http);
	int n = sl_cluster_node_encode(&me, val, sizeof(val));
	if (n < 0) {
		sl_errf(err, errlen, "cluster: node record of %s does not encode", c->id);
		return n;
	}
	snprintf(key, sizeof(key), "nodes/%s", c->id);
	/* three rounds: create, (remove our stale key), create; a third loss
	 * means someone else keeps recreating it */
	for (int round = 0; round < 3; round++) {
		bool won;
		int64_t rev;
		int r = sl_etcd_txn_put_if(e, key, val, (size_t)n, lease, 0, &won, &rev);
		if (r < 0) {
			set_err(err, errlen, "registering", e);
			return r;
		}
		if (won)
			return 0;
		struct found f = {.key = key};
		if ((r = sl_etcd_get_prefix(e, key, find_exact, &f)) < 0) {
			set_err(err, errlen, "reading the registered node", e);
			return r;
		}
		if (!f.there)
			continue; /* it expired between the two calls */
		if (!old_lease || f.lease != old_lease) {
			sl_errf(err, errlen,
			        "cluster: node id %s is already registered by a live node (key %s "
			        "under lease %" PRIx64 ", etcd %s); stop it, or wait for its lease "
			        "to expire if it died",
			        c->id, key, (uint64_t)f.lease, sl_etcd_endpoint(e));
			return -EEXIST;
		}
		if ((r = sl_etcd_txn_del_if(e, key, f.mod, &won)) < 0) {
			set_err(err, errlen, "removing our stale registration", e);
			return r;
		}
	}
	sl_errf(err, errlen, "cluster: %s keeps being recreated by another writer", key);
	return -EEXIST;
}

/*
 * ordinals/<id>, allocated once: read it, or take ordinal_next's value by
 * advancing it with a txn guarded by the revision we read (a lost race
 * reads again), then create ordinals/<id> if absent. A crash between the
 * two steps, or losing the second to a concurrent start of the same id,
 * leaves a number unused, never one used twice.
 */
static int get_ordinal(struct sl_cluster *c, struct sl_etcd *e, char *err, size_t errlen)
{
	char key[16 + SL_CLUSTER_ID_MAX];
	snprintf(key, sizeof(key), "ordinals/%s", c->id);
	/* each lost round means another node advanced the counter: bounded by
	 * the nodes starting at once, 100 is far above that */
	for (int round = 0; round < 100; round++) {
		uint8_t *v = NULL;
		size_t len = 0;
		int64_t mod = 0;
		uint32_t ord;
		int r = sl_etcd_get(e, key, &v, &len, NULL, NULL);
		if (r == 0) {
			r = sl_cluster_ordinal_decode((const char *)v, len, &ord);
			free(v);
			if (r < 0) {
				sl_errf(err, errlen, "cluster: %s does not hold an ordinal", key);
				return -EINVAL;
			}
			c->ordinal = ord;
			return 0;
		}
		if (r != -ENOENT) {
			set_err(err, errlen, "reading the ordinal", e);
			return r;
		}
		uint32_t next = 0;
		r = sl_etcd_get(e, "ordinal_next", &v, &len, &mod, NULL);
		if (r == 0) {
			r = sl_cluster_ordinal_decode((const char *)v, len, &next);
			free(v);
			if (r < 0 || next == UINT32_MAX) {
				sl_errf(err, errlen,
				        "cluster: ordinal_next is not a usable ordinal");
				return -EINVAL;
			}
		} else if (r != -ENOENT) {
			set_err(err, errlen, "reading ordinal_next", e);
			return r;
		}
		char nv[16], ov[16];
		int nl = snprintf(nv, sizeof(nv), "%u", next + 1);
		int ol = snprintf(ov, sizeof(ov), "%u", next);
		bool won;
		int64_t rev;
		if ((r = sl_etcd_txn_put_if(e, "ordinal_next", nv, (size_t)nl, 0, mod, &won,
		                            &rev)) < 0) {
			set_err(err, errlen, "advancing ordinal_next", e);
			return r;
		}
		if (!won)
			continue;
		if ((r = sl_etcd_txn_put_if(e, key, ov, (size_t)ol, 0, 0, &won, &rev)) < 0) {
			set_err(err, errlen, "storing the ordinal", e);
			return r;
		}
		if (won) {
			c->ordinal = next;
			return 0;
		}
	}
	sl_errf(err, errlen, "cluster: no ordinal after 100 lost races");
	return -EAGAIN;
}

/*
 * producer_key: the key of producer proofs, one for the whole cluster, so
 * that a proof one node issued is good on every node (a client resumes its
 * producer id on a partition's new leader: dedup.h, sl_producers_resume).
 * Made by the first node to start, create-only (a lost race reads the
 * winner's). 32 random bytes, stored as 64 hex digits.
 */
static int get_producer_key(struct sl_cluster *c, struct sl_etcd *e, char *err, size_t errlen)
{
	for (int round = 0; round < 10; round++) {
		uint8_t *v = NULL;
		size_t len = 0;
		int r = sl_etcd_get(e, "producer_key", &v, &len, NULL, NULL);
		if (r == 0) {
			r = len == 2 * SL_CLUSTER_KEY_BYTES ? 0 : -EINVAL;
			for (size_t i = 0; r == 0 && i < SL_CLUSTER_KEY_BYTES; i++) {
				unsigned x;
				if (sscanf((const char *)v + 2 * i, "%2x", &x) != 1)
					r = -EINVAL;
				c->producer_key[i] = (uint8_t)x;
			}
			free(v);
			if (r < 0)
				sl_errf(err, errlen, "cluster: producer_key is not 64 hex digits");
			return r;
		}
		if (r != -ENOENT) {
			set_err(err, errlen, "reading producer_key", e);
			return r;
		}
		uint8_t k[SL_CLUSTER_KEY_BYTES];
		char hex[2 * SL_CLUSTER_KEY_BYTES + 1];
		if (getrandom(k, sizeof(k), 0) != (ssize_t)sizeof(k)) {
			sl_errf(err, errlen, "cluster: no random bytes for producer_key");
			return -EIO;
		}
		for (size_t i = 0; i < sizeof(k); i++)
			snprintf(hex + 2 * i, 3, "%02x", k[i]);
		bool won;
		int64_t rev;
		if ((r = sl_etcd_txn_put_if(e, "producer_key", hex, sizeof(hex) - 1, 0, 0, &won,
		                            &rev)) < 0) {
			set_err(err, errlen, "storing producer_key", e);
			return r;
		}
		/* Won or lost, the next round reads the one that stands. */
	}
	sl_errf(err, errlen, "cluster: producer_key keeps changing");
	return -EAGAIN;
}

/* A lease, and the deadline it gives from sent_ns, the time the request
 * left (etcd started the TTL no earlier). */
static int grant(struct sl_cluster *c, struct sl_etcd *e, int64_t ttl_s, int64_t *id,
                 uint64_t *deadline, char *err, size_t errlen)
{
	int64_t granted = 0;
	uint64_t sent_ns = sl_now_ns();
	int r = sl_etcd_lease_grant(e, ttl_s, id, &granted);
	if (r < 0) {
		set_err(err, errlen, "granting a lease", e);
		return r;
	}
	c->ttl_s = granted > 0 ? granted : ttl_s;
	c->interval_ns = (uint64_t)c->ttl_s * 1000000000ull / 3;
	c->margin_ns = (uint64_t)c->ttl_s * 100000000ull; /* a tenth */
	if (c->margin_ns < SL_CLUSTER_MARGIN_MIN_NS)
		c->margin_ns = SL_CLUSTER_MARGIN_MIN_NS;
	*deadline = sent_ns + (uint64_t)c->ttl_s * 1000000000ull - c->margin_ns;
	return 0;
}

/* ---- the cluster thread -------------------------------------------------------- */

static void lease_lost(struct sl_cluster *c)
{
	/* the deadline first: a leader checking it stops before it hears */
	atomic_store(&c->deadline_ns, 0);
	int64_t old = atomic_exchange(&c->lease, 0);
	if (old)
		c->old_lease = old;
	c->held = false;
	if (c->o.on_lease)
		c->o.on_lease(c->o.arg, false);
}

/* A new lease and registration after a lost one. 0 when held again. */
static int recover(struct sl_cluster *c)
{
	char err[SL__CLUSTER_ERRLEN];
	int64_t id;
	uint64_t deadline;
	if (c->old_lease) {
		/* its key (if etcd has not expired it yet) goes with it; a
		 * failure here is handled by register_node's stale-key path */
		int r = sl_etcd_lease_revoke(c->e, c->old_lease);
		if (r == 0 || r == -ENOENT)
			c->old_lease = 0;
	}
	int r = grant(c, c->e, c->ttl_s, &id, &deadline, err, sizeof(err));
	if (r < 0)
		return r;
	r = register_node(c, c->e, id, c->old_lease, err, sizeof(err));
	if (r < 0) {
		sl_etcd_lease_revoke(c->e, id);
		return r;
	}
	c->old_lease = 0;
	atomic_store(&c->lease, id);
	/* The roles this node held came with the lease it lost, and the
	 * cluster may have moved on without it (a controller elected another
	 * leader while it was paused or cut off). Every state is read again,
	 * the callbacks told what changed, before the new deadline lets a
	 * leader act; a node whose watch only caught up after the deadline
	 * acked as the leader of an older epoch in between (e2e
	 * leader_cut_from_etcd: 250 events acked, then refused at the cut).
	 * The watch resumes after what was read. */
	int64_t rev;
	r = sl__cache_reload(c, c->e, true, &rev);
	if (r < 0) {
		set_err(err, sizeof(err), "reading the cluster's state again", c->e);
		atomic_store(&c->lease, 0);
		c->old_lease = id; /* revoked at the next try, its key with it */
		return r;
	}
	c->wrev = rev;
	c->reread = false;
	if (c->w) {
		sl_etcd_watch_close(c->w);
		c->w = NULL;
	}
	atomic_store(&c->deadline_ns, deadline);
	c->held = true;
	c->place_dirty = true;
	if (c->o.on_lease)
		c->o.on_lease(c->o.arg, true);
	return 0;
}

/* (Re)opens the watch from the last revision the cache applied + 1, or,
 * when etcd's history no longer reaches back that far (compacted) or it
 * canceled the watch, after a fresh read of the whole prefix. */
static void watch_open(struct sl_cluster *c)
{
	if (c->reread) {
		int64_t rev;
		if (sl__cache_reload(c, c->e, true, &rev) < 0)
			return; /* etcd unreachable: the next step tries again */
		c->wrev = rev;
		c->reread = false;
	}
	int r = sl_etcd_watch_open(c->e, "", c->wrev + 1, &c->w);
	if (r < 0) {
		c->w = NULL;
		if (r == -ERANGE || r == -ECANCELED)
			c->reread = true;
	}
}

static uint64_t min_u64(uint64_t a, uint64_t b)
{
	return a < b ? a : b;
}

static void *cluster_main(void *arg)
{
	struct sl_cluster *c = arg;
	uint64_t next_ka = sl_now_ns() + c->interval_ns;
	uint64_t retry_at = 0, backoff = SL__CLUSTER_RETRY_MIN_NS;

	if (c->o.on_lease)
		c->o.on_lease(c->o.arg, true);
	sl__cache_announce(c);

	while (!atomic_load(&c->stop)) {
		uint64_t now = sl_now_ns();
		if (c->held && now >= atomic_load(&c->deadline_ns))
			lease_lost(c);
		if (!c->held && now >= retry_at) {
			if (recover(c) == 0) {
				backoff = SL__CLUSTER_RETRY_MIN_NS;
				next_ka = sl_now_ns() + c->interval_ns;
			} else {
				retry_at = sl_now_ns() + backoff;
				backoff = min_u64(backoff * 2, SL__CLUSTER_RETRY_MAX_NS);
			}
		}
		if (c->held && now >= next_ka) {
			int64_t id = atomic_load(&c->lease), ttl = 0;
			uint64_t sent_ns = sl_now_ns();
			int r = sl_etcd_lease_keepalive(c->e, id, &ttl);
			if (r == 0 && ttl > 0) {
				atomic_store(&c->deadline_ns, sent_ns +
				                                  (uint64_t)ttl * 1000000000ull -
				                                  c->margin_ns);
				next_ka = sent_ns + c->interval_ns;
			} else if (r == -ENOENT || (r == 0 && ttl <= 0)) {
				lease_lost(c); /* etcd says it is gone: no waiting */
				retry_at = 0;
			} else {
				/* not answered: try again soon, the deadline still
				 * holds (it is what the lease guarantees) */
				next_ka = sl_now_ns() + c->interval_ns / 4;
			}
		}
		if (!c->w)
			watch_open(c);
		if (c->place_dirty && c->held) {
			char err[SL__CLUSTER_ERRLEN];
			c->place_dirty = false;
			if (sl__cluster_place_missing(c, c->e, err, sizeof(err)) < 0)
				c->place_dirty = true; /* etcd trouble: next step */
		}

		/* wait for events until the next thing due, at most a tick */
		now = sl_now_ns();
		uint64_t due = now + (uint64_t)SL__CLUSTER_TICK_MS * 1000000u;
		if (c->held)
			due = min_u64(due, min_u64(next_ka, atomic_load(&c->deadline_ns)));
		else
			due = min_u64(due, retry_at);
		uint32_t wait_ms = due > now ? (uint32_t)((due - now + 999999) / 1000000) : 0;
		if (!c->w) {
			/* no watch (etcd unreachable): wait out the step without
			 * spinning; nothing else could wake us earlier */
			struct timespec ts = {0, (long)wait_ms * 1000000};
			nanosleep(&ts, NULL);
			continue;
		}
		int r = sl_etcd_watch_next(c->w, wait_ms ? wait_ms : 1, sl__cache_event, c);
		if (r < 0) {
			/* -ECONNRESET: the stream ended, resume after c->wrev;
			 * -ERANGE (compacted), -ECANCELED, a broken answer: read
			 * everything again first */
			if (r != -ECONNRESET)
				c->reread = true;
			sl_etcd_watch_close(c->w);
			c->w = NULL;
		}
	}
	return NULL;
}

/* ---- start, stop --------------------------------------------------------------- */

static int check_opts(const struct sl_cluster_opts *o, char *err, size_t errlen)
{
	if (!o || !o->node_id || !sl_cluster_id_ok(o->node_id)) {
		sl_errf(err, errlen, "cluster: node id \"%.64s\" is not [A-Za-z0-9._-], 1..63",
		        o && o->node_id ? o->node_id : "(null)");
		return -EINVAL;
	}
	if (!o->name || !sl_cluster_topic_name_ok(o->name)) {
		sl_errf(err, errlen, "cluster: name \"%.64s\" is not [A-Za-z0-9._-], 1..128",
		        o->name ? o->name : "(null)");
		return -EINVAL;
	}
	struct sl_cluster_node probe = {.ordinal = 0};
	char buf[SL_CLUSTER_JSON_MAX];
	snprintf(probe.id, sizeof(probe.id), "%s", o->node_id);
	if (!o->advertise_native || !o->advertise_http ||
	    strlen(o->advertise_native) >= SL_CLUSTER_ADDR_MAX ||
	    strlen(o->advertise_http) >= SL_CLUSTER_ADDR_MAX) {
		sl_errf(err, errlen, "cluster: advertise addresses missing or too long");
		return -EINVAL;
	}
	snprintf(probe.native, sizeof(probe.native), "%s", o->advertise_native);
	snprintf(probe.http, sizeof(probe.http), "%s", o->advertise_http);
	if (sl_cluster_node_encode(&probe, buf, sizeof(buf)) < 0) {
		sl_errf(err, errlen,
		        "cluster: advertise \"%.64s\" / \"%.64s\": not printable host:port",
		        o->advertise_native, o->advertise_http);
		return -EINVAL;
	}
	if (o->session_ttl_ms == 0) {
		sl_errf(err, errlen, "cluster: session_ttl of 0");
		return -EINVAL;
	}
	return 0;
}

static void destroy(struct sl_cluster *c, bool revoke)
{
	if (!c)
		return;
	if (c->th_started) {
		atomic_store(&c->stop, true);
		pthread_join(c->th, NULL);
	}
	sl_etcd_watch_close(c->w);
	if (c->e) {
		int64_t lease = atomic_load(&c->lease);
		if (revoke && lease)
			sl_etcd_lease_revoke(c->e, lease);
		if (revoke && c->old_lease)
			sl_etcd_lease_revoke(c->e, c->old_lease);
	}
	sl_etcd_close(c->e);
	sl_etcd_close(c->ce);
	sl__cache_free(&c->cache);
	free(c->want);
	pthread_mutex_destroy(&c->mu);
	pthread_mutex_destroy(&c->wmu);
	free(c);
}

int sl_cluster_start(const struct sl_cluster_opts *o, struct sl_cluster **out, char *err,
                     size_t errlen)
{
	char prefix[32 + SL_CLUSTER_TOPIC_MAX];
	int r = check_opts(o, err, errlen);
	*out = NULL;
	if (r < 0)
		return r;
	struct sl_cluster *c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	pthread_mutex_init(&c->mu, NULL);
	pthread_mutex_init(&c->wmu, NULL);
	c->o = *o;
	snprintf(c->id, sizeof(c->id), "%s", o->node_id);
	snprintf(c->native, sizeof(c->native), "%s", o->advertise_native);
	snprintf(c->http, sizeof(c->http), "%s", o->advertise_http);
	c->o.node_id = c->o.name = c->o.advertise_native = c->o.advertise_http = NULL;
	c->o.etcd = NULL;
	snprintf(prefix, sizeof(prefix), "/sluice/%s/", o->name);

	/* whole seconds, rounded up: a TTL is never shorter than asked */
	int64_t ttl_s = ((int64_t)o->session_ttl_ms + 999) / 1000;
	/* The thread's requests (keepalives above all) must fail before the
	 * deadline they protect: a quarter of the TTL, at least 100 ms. */
	uint32_t req_ms = o->request_timeout_ms ? o->request_timeout_ms : SL__CLUSTER_TIMEOUT_MS;
	uint32_t thr_ms = (uint32_t)(ttl_s * 1000 / 4);
	if (thr_ms > req_ms)
		thr_ms = req_ms;
	if (thr_ms < 100)
		thr_ms = 100;

	if ((r = sl_etcd_open(o->etcd, o->n_etcd, prefix, thr_ms, &c->e, err, errlen)) < 0 ||
	    (r = sl_etcd_open(o->etcd, o->n_etcd, prefix, req_ms, &c->ce, err, errlen)) < 0)
		goto fail;

	int64_t lease;
	uint64_t deadline;
	if ((r = grant(c, c->e, ttl_s, &lease, &deadline, err, errlen)) < 0)
		goto fail;
	atomic_store(&c->lease, lease);
	if ((r = get_ordinal(c, c->e, err, errlen)) < 0 ||
	    (r = get_producer_key(c, c->e, err, errlen)) < 0 ||
	    (r = register_node(c, c->e, lease, 0, err, errlen)) < 0)
		goto fail;
	atomic_store(&c->deadline_ns, deadline);
	c->held = true;

	int64_t rev;
	if ((r = sl__cache_reload(c, c->e, false, &rev)) < 0) {
		set_err(err, errlen, "reading the cluster's state", c->e);
		goto fail;
	}
	c->wrev = rev;
	if ((r = sl_etcd_watch_open(c->e, "", rev + 1, &c->w)) < 0) {
		set_err(err, errlen, "watching the cluster's state", c->e);
		goto fail;
	}
	if ((r = -pthread_create(&c->th, NULL, cluster_main, c)) < 0) {
		sl_errf(err, errlen, "cluster: thread: %s", strerror(-r));
		goto fail;
	}
	c->th_started = true;
	pthread_setname_np(c->th, "sl-cluster");
	*out = c;
	return 0;
fail:
	destroy(c, true);
	return r;
}

void sl_cluster_stop(struct sl_cluster *c)
{
	destroy(c, true);
}

void sl__cluster_abandon(struct sl_cluster *c)
{
	destroy(c, false);
}

uint64_t sl_cluster_lease_deadline_ns(const struct sl_cluster *c)
{
	return atomic_load(&((struct sl_cluster *)c)->deadline_ns);
}

uint32_t sl_cluster_ordinal(const struct sl_cluster *c)
{
	return c->ordinal;
}

const uint8_t *sl_cluster_producer_key(const struct sl_cluster *c)
{
	return c->producer_key;
}

int64_t sl_cluster_lease_id(const struct sl_cluster *c)
{
	return atomic_load(&((struct sl_cluster *)c)->lease);
}
