/*
 * Writes to etcd from any thread: topic records, missing partition states
 * (also from the cluster thread, through its own client), and the guarded
 * partition-state writes (CAS). Every write here is a txn that either
 * creates an absent key or replaces the exact revision its caller read, so
 * two nodes racing never both win and nobody overwrites a state it has not
 * seen.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "cluster/cluster_impl.h"

struct missing {
	struct sl__want t;
	uint32_t p;
};

int sl__cluster_place_missing(struct sl_cluster *c, struct sl_etcd *e, char *err, size_t errlen)
{
	char(*ids)[SL_CLUSTER_ID_MAX] = NULL;
	const char **idp = NULL;
	struct missing *todo = NULL;
	size_t n_ids = 0, n_todo = 0, cap = 0;
	int r = sl__cache_live_ids(c, &ids, &n_ids);
	if (r < 0)
		goto out;

	/* What is missing, as the cache sees it; a state created meanwhile by
	 * another node makes our create lose, which is fine. */
	pthread_mutex_lock(&c->mu);
	for (size_t i = 0; i < c->n_want && r == 0; i++) {
		const struct sl__want *w = &c->want[i];
		if (w->replicas > n_ids)
			continue; /* fewer live nodes than replicas: wait for more */
		const struct sl__ctopic *t = NULL;
		for (size_t j = 0; j < c->cache.n_topics; j++)
			if (strcmp(c->cache.topics[j].name, w->name) == 0)
				t = &c->cache.topics[j];
		if (t && t->removed)
			continue; /* deleted by its creator: this node forgets it soon */
		for (uint32_t p = 0; p < w->partitions; p++) {
			if (t && p < t->cap && t->have[p])
				continue;
			if (n_todo == cap) {
				size_t nc = cap ? 2 * cap : 64;
				struct missing *g = realloc(todo, nc * sizeof(*g));
				if (!g) {
					r = -ENOMEM;
					break;
				}
				todo = g;
				cap = nc;
			}
			todo[n_todo++] = (struct missing){*w, p};
		}
	}
	pthread_mutex_unlock(&c->mu);
	if (r < 0 || n_todo == 0)
		goto out;

	if (!(idp = malloc(n_ids * sizeof(*idp)))) {
		r = -ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < n_ids; i++)
		idp[i] = ids[i];
	for (size_t i = 0; i < n_todo; i++) {
		struct sl_pstate s;
		char key[32 + SL_CLUSTER_TOPIC_MAX], val[SL_CLUSTER_JSON_MAX];
		bool won;
		int64_t rev;
		if ((r = sl_cluster_place(idp, n_ids, todo[i].p, todo[i].t.replicas, &s)) < 0 ||
		    (r = sl_cluster_pstate_encode(&s, val, sizeof(val))) < 0) {
			sl_errf(err, errlen, "placement of %s/%u: %s", todo[i].t.name, todo[i].p,
			        sl_strerror(r));
			goto out;
		}
		snprintf(key, sizeof(key), "partitions/%s/%u", todo[i].t.name, todo[i].p);
		r = sl_etcd_txn_put_if(e, key, val, (size_t)r, 0, 0, &won, &rev);
		if (r < 0) {
			sl_errf(err, errlen, "creating %s: %s", key, sl_etcd_errmsg(e));
			goto out;
		}
	}
	r = 0;
out:
	free(idp);
	free(ids);
	free(todo);
	return r;
}

/* topics/<t> created if absent, else compared. Under wmu. */
static int topic_record(struct sl_cluster *c, const struct sl_cluster_topic *t, char *err,
                        size_t errlen)
{
	char key[16 + SL_CLUSTER_TOPIC_MAX], val[64];
	bool won;
	int64_t rev;
	if (!t->name || !sl_cluster_topic_name_ok(t->name)) {
		sl_errf(err, errlen,
		        "topic \"%.64s\": not a topic name ([A-Za-z0-9._-], 1..128, not starting "
		        "with '.' or '-')",
		        t->name ? t->name : "(null)");
		return -EINVAL;
	}
	int n = sl_cluster_topic_encode(t->partitions, t->replicas, val, sizeof(val));
	if (n < 0) {
		sl_errf(err, errlen, "topic %s: %u partitions, %u replicas (1..%d, 1..%d)", t->name,
		        t->partitions, t->replicas, SL_CLUSTER_PARTITIONS_MAX,
		        SL_CLUSTER_REPLICAS_MAX);
		return -EINVAL;
	}
	snprintf(key, sizeof(key), "topics/%s", t->name);
	int r = sl_etcd_txn_put_if(c->ce, key, val, (size_t)n, 0, 0, &won, &rev);
	if (r < 0) {
		sl_errf(err, errlen, "topic %s: %s", t->name, sl_etcd_errmsg(c->ce));
		return r;
	}
	if (won)
		return 0;
	uint8_t *got = NULL;
	size_t len = 0;
	uint32_t p, rr;
	char why[160];
	r = sl_etcd_get(c->ce, key, &got, &len, NULL, NULL);
	if (r < 0) {
		/* -ENOENT: deleted between the txn and the read; a topic being
		 * removed is not ours to recreate behind its remover's back */
		sl_errf(err, errlen, "topic %s: %s", t->name, sl_etcd_errmsg(c->ce));
		return r;
	}
	r = sl_cluster_topic_decode((const char *)got, len, &p, &rr, why, sizeof(why));
	free(got);
	if (r < 0) {
		sl_errf(err, errlen, "topic %s: the cluster's record %s is not valid: %s", t->name,
		        key, why);
		return -EINVAL;
	}
	if (p != t->partitions || rr != t->replicas) {
		sl_errf(err, errlen,
		        "topic %s: this node's config says %u partitions, %u replicas; the "
		        "cluster has %u partitions, %u replicas (%s)",
		        t->name, t->partitions, t->replicas, p, rr, key);
		return -EINVAL;
	}
	return 0;
}

static int want_add(struct sl_cluster *c, const struct sl_cluster_topic *t)
{
	int r = 0;
	pthread_mutex_lock(&c->mu);
	size_t i = 0;
	while (i < c->n_want && strcmp(c->want[i].name, t->name) != 0)
		i++;
	if (i == c->n_want) {
		struct sl__want *g = realloc(c->want, (c->n_want + 1) * sizeof(*g));
		if (!g) {
			r = -ENOMEM;
		} else {
			c->want = g;
			memset(&g[i], 0, sizeof(g[i]));
			snprintf(g[i].name, sizeof(g[i].name), "%s", t->name);
			g[i].partitions = t->partitions;
			g[i].replicas = t->replicas;
			c->n_want++;
		}
	}
	pthread_mutex_unlock(&c->mu);
	return r;
}

int sl_cluster_topics(struct sl_cluster *c, const struct sl_cluster_topic *t, size_t n, char *err,
                      size_t errlen)
{
	int first = 0;
	char e1[SL__CLUSTER_ERRLEN];
	if (err && errlen)
		err[0] = 0;
	pthread_mutex_lock(&c->wmu);
	for (size_t i = 0; i < n; i++) {
		int r = topic_record(c, &t[i], e1, sizeof(e1));
		if (r == 0)
			r = want_add(c, &t[i]);
		if (r < 0 && first == 0) {
			first = r;
			sl_errf(err, errlen, "%s", r == -ENOMEM ? "out of memory" : e1);
		}
	}
	/* Now rather than at the next membership change: the nodes may all be
	 * there already. */
	int r = sl__cluster_place_missing(c, c->ce, e1, sizeof(e1));
	pthread_mutex_unlock(&c->wmu);
	if (r < 0 && first == 0) {
		first = r;
		sl_errf(err, errlen, "%s", e1);
	}
	return first;
}

int sl_cluster_pstate_cas(struct sl_cluster *c, const char *topic, uint32_t p,
                          const struct sl_pstate *next, int64_t expect_mod_rev,
                          int64_t *new_mod_rev, char *err, size_t errlen)
{
	char key[32 + SL_CLUSTER_TOPIC_MAX], val[SL_CLUSTER_JSON_MAX];
	if (!topic || !sl_cluster_topic_name_ok(topic) || p >= SL_CLUSTER_PARTITIONS_MAX ||
	    expect_mod_rev < 0) {
		sl_errf(err, errlen,
		        "partition state of \"%.64s\"/%u: bad topic, partition or revision",
		        topic ? topic : "(null)", p);
		return -EINVAL;
	}
	snprintf(key, sizeof(key), "partitions/%s/%u", topic, p);
	int n = sl_cluster_pstate_encode(next, val, sizeof(val));
	if (n < 0) {
		char why[160] = "";
		sl__cluster_pstate_check(next, why, sizeof(why));
		sl_errf(err, errlen, "%s: refusing to write an invalid state: %s", key, why);
		return -EINVAL;
	}
	bool won = false;
	int64_t rev = 0;
	pthread_mutex_lock(&c->wmu);
	int r = sl_etcd_txn_put_if(c->ce, key, val, (size_t)n, 0, expect_mod_rev, &won, &rev);
	if (r < 0)
		sl_errf(err, errlen, "%s: %s", key, sl_etcd_errmsg(c->ce));
	pthread_mutex_unlock(&c->wmu);
	if (r < 0)
		return r;
	if (!won) {
		sl_errf(err, errlen,
		        "%s: another writer won (mod_revision %" PRId64 ", expected %" PRId64 ")",
		        key, rev, expect_mod_rev);
		return -ESTALE;
	}
	if (new_mod_rev)
		*new_mod_rev = rev;
	return 0;
}

int sl_cluster_rtopic_put(struct sl_cluster *c, const char *name, const char *def, size_t len,
                          bool create, char *err, size_t errlen)
{
	char key[16 + SL_CLUSTER_TOPIC_MAX];
	if (!name || !sl_cluster_topic_name_ok(name)) {
		sl_errf(err, errlen, "not a topic name: \"%.64s\"", name ? name : "(null)");
		return -EINVAL;
	}
	snprintf(key, sizeof(key), "rtopics/%s", name);
	bool won = true;
	int64_t rev = 0;
	pthread_mutex_lock(&c->wmu);
	int r = create ? sl_etcd_txn_put_if(c->ce, key, def, len, 0, 0, &won, &rev)
	               : sl_etcd_put(c->ce, key, def, len, 0);
	if (r == 0 && !won) {
		/* Taken, or the tombstone of a deleted topic of that name: that
		 * one is replaced, if nobody else does it first. */
		uint8_t *got = NULL;
		size_t glen = 0;
		r = sl_etcd_get(c->ce, key, &got, &glen, &rev, NULL);
		if (r == 0 && glen == strlen(SL_CLUSTER_RTOPIC_GONE) &&
		    !memcmp(got, SL_CLUSTER_RTOPIC_GONE, glen))
			r = sl_etcd_txn_put_if(c->ce, key, def, len, 0, rev, &won, &rev);
		else if (r == -ENOENT)
			r = 0; /* deleted meanwhile: still not ours, say so */
		free(got);
	}
	if (r < 0)
		sl_errf(err, errlen, "%s: %s", key, sl_etcd_errmsg(c->ce));
	pthread_mutex_unlock(&c->wmu);
	if (r < 0)
		return r;
	if (!won) {
		sl_errf(err, errlen, "topic %s exists in the cluster", name);
		return -EEXIST;
	}
	return 0;
}

void sl_cluster_topic_forget(struct sl_cluster *c, const char *name)
{
	pthread_mutex_lock(&c->mu);
	for (size_t i = 0; i < c->n_want; i++)
		if (strcmp(c->want[i].name, name) == 0) {
			c->want[i] = c->want[--c->n_want];
			break;
		}
	pthread_mutex_unlock(&c->mu);
}

int sl_cluster_rtopic_delete(struct sl_cluster *c, const char *name, uint32_t partitions, char *err,
                             size_t errlen)
{
	char key[32 + SL_CLUSTER_TOPIC_MAX];
	if (!name || !sl_cluster_topic_name_ok(name) || partitions > SL_CLUSTER_PARTITIONS_MAX) {
		sl_errf(err, errlen, "not a topic name: \"%.64s\"", name ? name : "(null)");
		return -EINVAL;
	}
	sl_cluster_topic_forget(c, name);
	pthread_mutex_lock(&c->wmu);
	/* The definition first, replaced by a tombstone: a node that reads
	 * the set from here on, even one that was down, deletes its copy (an
	 * etcd that lost its data deletes nothing); then the record, which
	 * stops every node's placement of it (removed), then its states. */
	snprintf(key, sizeof(key), "rtopics/%s", name);
	int r = sl_etcd_put(c->ce, key, SL_CLUSTER_RTOPIC_GONE, strlen(SL_CLUSTER_RTOPIC_GONE), 0);
	if (r >= 0 || r == -ENOENT) {
		snprintf(key, sizeof(key), "topics/%s", name);
		r = sl_etcd_del(c->ce, key);
	}
	for (uint32_t p = 0; (r >= 0 || r == -ENOENT) && p < partitions; p++) {
		snprintf(key, sizeof(key), "partitions/%s/%u", name, p);
		r = sl_etcd_del(c->ce, key);
	}
	if (r < 0 && r != -ENOENT)
		sl_errf(err, errlen, "%s: %s", key, sl_etcd_errmsg(c->ce));
	pthread_mutex_unlock(&c->wmu);
	return r < 0 && r != -ENOENT ? r : 0;
}
