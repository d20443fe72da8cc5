/*
 * The consumer groups' table (group.h): groups, their members, each
 * topic's target and holders, and the committed offsets.
 *
 * Member slots are stable (a member that goes leaves a free slot), so the
 * per-partition arrays can name members by slot. Groups are found through
 * an open-addressing index by XXH3 of the name, kept at most half full.
 *
 * Threads: every entry point takes g->mu (group.h).
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <xxhash.h>

#include "base/base.h"
#include "group/group.h"
#include "proto/proto.h"

struct sl__member {
	bool live;
	char id[SL_GROUP_ID_LEN + 1];
	char client[64];
	uint32_t topic; /* index into the group's topics */
	uint32_t session_ms;
	uint64_t last_ns;
	uint32_t core, conn, conn_gen;
};

struct sl__gtopic {
	char name[SL_GROUP_NAME_MAX + 1];
	uint32_t n_parts;    /* the arrays' length: the most partitions seen */
	uint32_t n_live;     /* partitions the topic has now (assigned ones) */
	int32_t *target;     /* member slot that should hold p, or -1 */
	int32_t *owner;      /* member slot that holds p (granted, not released), or -1 */
	uint32_t *grant_gen; /* the generation p was granted to its owner in */
	uint64_t *committed;
	uint32_t *commit_gen;
	int64_t *commit_ms;
	uint8_t *has; /* committed[p] is one */
};

struct sl__group {
	char name[SL_GROUP_NAME_MAX + 1];
	uint32_t generation;
	struct sl__member *m;
	uint32_t n_m, cap_m, live;
	struct sl__gtopic *t;
	uint32_t n_t;
	uint64_t rebalances, moved, reassigned, expired;
};

struct sl_groups {
	pthread_mutex_t mu;
	struct sl__group **v;
	uint32_t n, cap;
	uint32_t *idx; /* slot + 1 into v, 0 free; idx_cap a power of two */
	uint32_t idx_cap;
};

bool sl_group_name_ok(const char *s, size_t n)
{
	return sl_name_ok(s, n); /* topics' alphabet: they share the records' keys */
}

uint32_t sl_group_offsets_part(const char *group, size_t len, uint32_t n_parts)
{
	return n_parts ? (uint32_t)(XXH3_64bits(group, len) % n_parts) : 0;
}

int sl_groups_create(struct sl_groups **out)
{
	struct sl_groups *g = calloc(1, sizeof(*g));
	if (!g)
		return -ENOMEM;
	g->idx_cap = 64;
	g->idx = calloc(g->idx_cap, sizeof(*g->idx));
	if (!g->idx) {
		free(g);
		return -ENOMEM;
	}
	pthread_mutex_init(&g->mu, NULL);
	*out = g;
	return 0;
}

static void sl__gtopic_free(struct sl__gtopic *t)
{
	free(t->target);
	free(t->owner);
	free(t->grant_gen);
	free(t->committed);
	free(t->commit_gen);
	free(t->commit_ms);
	free(t->has);
}

void sl_groups_destroy(struct sl_groups *g)
{
	if (!g)
		return;
	for (uint32_t i = 0; i < g->n; i++) {
		for (uint32_t k = 0; k < g->v[i]->n_t; k++)
			sl__gtopic_free(&g->v[i]->t[k]);
		free(g->v[i]->t);
		free(g->v[i]->m);
		free(g->v[i]);
	}
	free(g->v);
	free(g->idx);
	pthread_mutex_destroy(&g->mu);
	free(g);
}

/* ---- finding ------------------------------------------------------------ */

static bool sl__is(const char *name, const char *s, size_t len)
{
	return strlen(name) == len && !memcmp(name, s, len);
}

static struct sl__group *sl__find(struct sl_groups *g, const char *name, size_t len)
{
	uint32_t mask = g->idx_cap - 1;
	for (uint32_t h = (uint32_t)XXH3_64bits(name, len) & mask;; h = (h + 1) & mask) {
		if (!g->idx[h])
			return NULL;
		struct sl__group *gr = g->v[g->idx[h] - 1];
		if (sl__is(gr->name, name, len))
			return gr;
	}
}

static void sl__index(struct sl_groups *g, uint32_t i)
{
	uint32_t mask = g->idx_cap - 1;
	const char *name = g->v[i]->name;
	uint32_t h = (uint32_t)XXH3_64bits(name, strlen(name)) & mask;
	while (g->idx[h])
		h = (h + 1) & mask;
	g->idx[h] = i + 1;
}

/* The group named so, made when missing (NULL: out of memory). Groups are
 * never removed: their offsets are kept like the offsets topic's records. */
static struct sl__group *sl__get(struct sl_groups *g, const char *name, size_t len)
{
	struct sl__group *gr = sl__find(g, name, len);
	if (gr)
		return gr;
	if ((g->n + 1) * 2 > g->idx_cap) {
		uint32_t cap = g->idx_cap * 2;
		uint32_t *idx = calloc(cap, sizeof(*idx));
		if (!idx)
			return NULL;
		free(g->idx);
		g->idx = idx;
		g->idx_cap = cap;
		for (uint32_t i = 0; i < g->n; i++)
			sl__index(g, i);
	}
	if (g->n == g->cap) {
		uint32_t cap = g->cap ? g->cap * 2 : 8;
		struct sl__group **v = realloc(g->v, cap * sizeof(*v));
		if (!v)
			return NULL;
		g->v = v;
		g->cap = cap;
	}
	gr = calloc(1, sizeof(*gr));
	if (!gr)
		return NULL;
	memcpy(gr->name, name, len);
	g->v[g->n] = gr;
	sl__index(g, g->n);
	g->n++;
	return gr;
}

static int sl__grow(void **p, size_t size, uint32_t from, uint32_t to, int fill)
{
	void *q = realloc(*p, size * to);
	if (!q)
		return -ENOMEM;
	memset((char *)q + size * from, fill, size * (to - from));
	*p = q;
	return 0;
}

/* Makes the topic's arrays hold n partitions (a topic only grows). */
static int sl__gtopic_size(struct sl__gtopic *t, uint32_t n)
{
	if (n <= t->n_parts)
		return 0;
	uint32_t f = t->n_parts;
	if (sl__grow((void **)&t->target, sizeof(int32_t), f, n, 0xff) < 0 ||
	    sl__grow((void **)&t->owner, sizeof(int32_t), f, n, 0xff) < 0 ||
	    sl__grow((void **)&t->grant_gen, sizeof(uint32_t), f, n, 0) < 0 ||
	    sl__grow((void **)&t->committed, sizeof(uint64_t), f, n, 0) < 0 ||
	    sl__grow((void **)&t->commit_gen, sizeof(uint32_t), f, n, 0) < 0 ||
	    sl__grow((void **)&t->commit_ms, sizeof(int64_t), f, n, 0) < 0 ||
	    sl__grow((void **)&t->has, 1, f, n, 0) < 0)
		return -ENOMEM;
	t->n_parts = n;
	return 0;
}

/* The group's topic named so (made when `make`), its index or -1. */
static int32_t sl__topic(struct sl__group *gr, const char *name, size_t len, bool make)
{
	for (uint32_t k = 0; k < gr->n_t; k++)
		if (sl__is(gr->t[k].name, name, len))
			return (int32_t)k;
	if (!make || len > SL_GROUP_NAME_MAX)
		return -1;
	struct sl__gtopic *v = realloc(gr->t, (gr->n_t + 1) * sizeof(*v));
	if (!v)
		return -1;
	gr->t = v;
	memset(&v[gr->n_t], 0, sizeof(*v));
	memcpy(v[gr->n_t].name, name, len);
	return (int32_t)gr->n_t++;
}

static int32_t sl__member(const struct sl__group *gr, const char *id, size_t len)
{
	if (len != SL_GROUP_ID_LEN)
		return -1;
	for (uint32_t s = 0; s < gr->n_m; s++)
		if (gr->m[s].live && !memcmp(gr->m[s].id, id, len))
			return (int32_t)s;
	return -1;
}

/* ---- assignment ---------------------------------------------------------- */

/* A new target for topic k: its live readers, in slot order. */
static int sl__rebalance(struct sl__group *gr, uint32_t k)
{
	struct sl__gtopic *t = &gr->t[k];
	int32_t r[SL_GROUP_MEMBERS_MAX];
	uint32_t m = 0, moved, orphans;

	for (uint32_t s = 0; s < gr->n_m; s++)
		if (gr->m[s].live && gr->m[s].topic == k)
			r[m++] = (int32_t)s;
	int ret = sl_group_assign(t->target, t->n_live, r, m, &moved, &orphans);
	if (ret < 0)
		return ret;
	gr->rebalances++;
	gr->moved += moved;
	gr->reassigned += m ? orphans : 0;
	return 0;
}

/* Member s goes: what it holds is free, the rest of its topic's readers
 * share its partitions. */
static void sl__remove(struct sl__group *gr, uint32_t s)
{
	struct sl__member *mb = &gr->m[s];
	struct sl__gtopic *t = &gr->t[mb->topic];

	for (uint32_t p = 0; p < t->n_parts; p++)
		if (t->owner[p] == (int32_t)s)
			t->owner[p] = -1;
	mb->live = false;
	gr->live--;
	gr->generation++;
	/* Out of memory: the old target stays (naming a free slot, whose
	 * partitions nobody is granted) until the next change retries. */
	(void)sl__rebalance(gr, mb->topic);
}

static bool sl__reconciling(const struct sl__group *gr)
{
	for (uint32_t k = 0; k < gr->n_t; k++)
		for (uint32_t p = 0; p < gr->t[k].n_parts; p++)
			if (gr->t[k].target[p] >= 0 && gr->t[k].target[p] != gr->t[k].owner[p])
				return true;
	return false;
}

/* ---- heartbeats ---------------------------------------------------------- */

static void sl__new_id(char *id)
{
	uint8_t b[SL_GROUP_ID_LEN / 2];
	size_t got = 0;
	while (got < sizeof(b)) {
		ssize_t n = getrandom(b + got, sizeof(b) - got, 0);
		if (n > 0)
			got += (size_t)n;
	}
	static const char hex[] = "0123456789abcdef";
	for (size_t i = 0; i < sizeof(b); i++) {
		id[2 * i] = hex[b[i] >> 4];
		id[2 * i + 1] = hex[b[i] & 15];
	}
	id[SL_GROUP_ID_LEN] = 0;
}

static uint32_t sl__refuse(struct sl_group_hb_out *out, uint32_t code, const char *fmt,
                           const char *a, size_t alen)
{
	out->error = code;
	snprintf(out->message, sizeof(out->message), fmt, (int)alen, a);
	return code;
}

/* A new member of gr reading topic k: its slot, or -1. */
static int32_t sl__join(struct sl__group *gr, uint32_t k)
{
	uint32_t s;
	for (s = 0; s < gr->n_m && gr->m[s].live; s++)
		;
	if (s == gr->n_m) {
		if (gr->n_m == SL_GROUP_MEMBERS_MAX)
			return -1;
		if (gr->n_m == gr->cap_m) {
			uint32_t cap = gr->cap_m ? gr->cap_m * 2 : 4;
			struct sl__member *v = realloc(gr->m, cap * sizeof(*v));
			if (!v)
				return -1;
			gr->m = v;
			gr->cap_m = cap;
		}
		gr->n_m++;
	}
	memset(&gr->m[s], 0, sizeof(gr->m[s]));
	gr->m[s].live = true;
	gr->m[s].topic = k;
	sl__new_id(gr->m[s].id);
	gr->live++;
	return (int32_t)s;
}

static void sl__expire_group(struct sl__group *gr, uint64_t now_ns, uint32_t *n)
{
	for (uint32_t s = 0; s < gr->n_m; s++) {
		struct sl__member *mb = &gr->m[s];
		if (mb->live && now_ns - mb->last_ns > (uint64_t)mb->session_ms * 1000000u) {
			sl__remove(gr, s);
			gr->expired++;
			(*n)++;
		}
	}
}

int sl_groups_heartbeat(struct sl_groups *g, const struct sl_group_hb *in,
                        struct sl_group_hb_out *out)
{
	int ret = 0;

	out->error = 0;
	out->message[0] = 0;
	out->member[0] = 0;
	out->n_assigned = 0;
	out->generation = 0;
	out->members = 0;
	out->heartbeat_ms = SL_GROUP_HB_MS;
	if (!sl_group_name_ok(in->group, in->group_len)) {
		sl__refuse(out, SLUICE__V1__ERROR_CODE__ERR_MALFORMED,
		           "bad group name '%.*s': letters, digits, '.', '_', '-' (1..128, not "
		           "starting with '.' or '-')",
		           in->group, in->group_len > 128 ? 128 : in->group_len);
		return 0;
	}
	if (!in->topic_len || in->topic_len > SL_GROUP_NAME_MAX) {
		out->error = SLUICE__V1__ERROR_CODE__ERR_MALFORMED;
		snprintf(out->message, sizeof(out->message), "a heartbeat names its topic");
		return 0;
	}
	uint32_t session = in->session_ms ? in->session_ms : SL_GROUP_SESSION_MS;
	if (session < SL_GROUP_SESSION_MIN_MS || session > SL_GROUP_SESSION_MAX_MS) {
		out->error = SLUICE__V1__ERROR_CODE__ERR_MALFORMED;
		snprintf(out->message, sizeof(out->message), "session_timeout_ms %u: from %u to %u",
		         session, SL_GROUP_SESSION_MIN_MS, SL_GROUP_SESSION_MAX_MS);
		return 0;
	}

	pthread_mutex_lock(&g->mu);
	struct sl__group *gr = in->member_len ? sl__find(g, in->group, in->group_len)
	                                      : sl__get(g, in->group, in->group_len);
	if (!gr && !in->member_len) {
		ret = -ENOMEM;
		goto out;
	}
	uint32_t n_exp = 0;
	if (gr)
		sl__expire_group(gr, in->now_ns, &n_exp);
	int32_t s = gr && in->member_len ? sl__member(gr, in->member, in->member_len) : -1;
	if (in->member_len && s < 0) {
		sl__refuse(out, SLUICE__V1__ERROR_CODE__ERR_UNKNOWN_MEMBER,
		           "member %.*s is not in the group (it left, or was silent past its "
		           "session timeout and its partitions went to others): join again",
		           in->member, in->member_len > 64 ? 64 : in->member_len);
		goto out;
	}
	if (!in->member_len && in->leave)
		goto out; /* nothing to leave */
	int32_t k = sl__topic(gr, in->topic, in->topic_len, true);
	if (k < 0 || sl__gtopic_size(&gr->t[k], in->n_parts) < 0) {
		ret = -ENOMEM;
		goto out;
	}
	struct sl__gtopic *t = &gr->t[k];
	/* The topic's partitions changed (made again with another count):
	 * a new target over the partitions it has now. */
	bool rebalance = t->n_live != in->n_parts;
	if (rebalance) {
		for (uint32_t p = in->n_parts; p < t->n_parts; p++)
			t->target[p] = t->owner[p] = -1;
		t->n_live = in->n_parts;
	}
	if (s < 0) {
		s = sl__join(gr, (uint32_t)k);
		if (s < 0) {
			out->error = SLUICE__V1__ERROR_CODE__ERR_LIMIT;
			snprintf(out->message, sizeof(out->message),
			         "group %s has %u members, the most it may have", gr->name,
			         SL_GROUP_MEMBERS_MAX);
			goto out;
		}
		gr->generation++;
		rebalance = true;
	}
	struct sl__member *mb = &gr->m[s];
	if (mb->topic != (uint32_t)k) {
		/* Reads another topic now: what it held of the old one is free. */
		uint32_t old = mb->topic;
		for (uint32_t p = 0; p < gr->t[old].n_parts; p++)
			if (gr->t[old].owner[p] == s)
				gr->t[old].owner[p] = -1;
		mb->topic = (uint32_t)k;
		gr->generation++;
		(void)sl__rebalance(gr, old);
		rebalance = true;
	}
	mb->last_ns = in->now_ns;
	mb->session_ms = session;
	mb->core = in->core;
	mb->conn = in->conn;
	mb->conn_gen = in->conn_gen;
	size_t cl =
	    in->client_len < sizeof(mb->client) - 1 ? in->client_len : sizeof(mb->client) - 1;
	if (cl)
		memcpy(mb->client, in->client, cl);
	mb->client[cl] = 0;
	if (in->leave) {
		sl__remove(gr, (uint32_t)s);
		out->generation = gr->generation;
		out->members = gr->live;
		goto out;
	}
	/* What it no longer holds is free; what it holds and was not granted
	 * is not its (a stale view): never granted by saying so. */
	for (uint32_t p = 0; p < t->n_parts; p++) {
		if (t->owner[p] != s)
			continue;
		bool held = false;
		for (size_t i = 0; i < in->n_owned && !held; i++)
			held = in->owned[i] == p;
		if (!held)
			t->owner[p] = -1;
	}
	if (rebalance && sl__rebalance(gr, (uint32_t)k) < 0) {
		ret = -ENOMEM;
		goto out;
	}
	for (uint32_t p = 0; p < t->n_live; p++) {
		if (t->target[p] == s && t->owner[p] < 0) {
			t->owner[p] = s;
			t->grant_gen[p] = gr->generation;
		}
		if (t->target[p] == s && t->owner[p] == s)
			out->assigned[out->n_assigned++] =
			    (struct sl_group_grant){.partition = p,
			                            .has_committed = t->has[p],
			                            .committed = t->committed[p]};
	}
	memcpy(out->member, mb->id, sizeof(out->member));
	out->generation = gr->generation;
	out->members = gr->live;
	uint32_t hb = session / 3 < SL_GROUP_HB_MS ? session / 3 : SL_GROUP_HB_MS;
	out->settled = !sl__reconciling(gr);
	out->heartbeat_ms = out->settled ? hb : SL_GROUP_HB_FAST_MS;
out:
	pthread_mutex_unlock(&g->mu);
	return ret;
}

/* ---- commits ---------------------------------------------------------------- */

uint32_t sl_groups_commit(struct sl_groups *g, const struct sl_group_commit *c, char *msg,
                          size_t msglen)
{
	uint32_t code = 0;

	msg[0] = 0;
	pthread_mutex_lock(&g->mu);
	struct sl__group *gr = sl__find(g, c->group, c->group_len);
	int32_t s = gr ? sl__member(gr, c->member, c->member_len) : -1;
	if (s < 0) {
		code = SLUICE__V1__ERROR_CODE__ERR_UNKNOWN_MEMBER;
		snprintf(msg, msglen, "member %.*s is not in group %.*s: not committed",
		         (int)(c->member_len > 64 ? 64 : c->member_len), c->member,
		         (int)(c->group_len > 128 ? 128 : c->group_len), c->group);
		goto out;
	}
	int32_t k = sl__topic(gr, c->topic, c->topic_len, false);
	struct sl__gtopic *t = k >= 0 ? &gr->t[k] : NULL;
	if (!t || c->partition >= t->n_parts || t->owner[c->partition] != s ||
	    c->generation < t->grant_gen[c->partition]) {
		code = SLUICE__V1__ERROR_CODE__ERR_FENCED;
		snprintf(msg, msglen,
		         "partition %u of %.*s is not held by member %s in generation %u (the "
		         "group is at %u): not committed",
		         c->partition, (int)(c->topic_len > 128 ? 128 : c->topic_len), c->topic,
		         gr->m[s].id, c->generation, gr->generation);
		goto out;
	}
	t->committed[c->partition] = c->offset;
	t->commit_gen[c->partition] = c->generation;
	t->commit_ms[c->partition] = c->time_ms;
	t->has[c->partition] = 1;
out:
	pthread_mutex_unlock(&g->mu);
	return code;
}

int sl_groups_replay(struct sl_groups *g, const struct sl_group_record *r)
{
	int ret = 0;

	pthread_mutex_lock(&g->mu);
	struct sl__group *gr = sl__get(g, r->group, r->group_len);
	int32_t k = gr ? sl__topic(gr, r->topic, r->topic_len, true) : -1;
	if (k < 0 || r->partition >= UINT32_MAX - 1 ||
	    sl__gtopic_size(&gr->t[k], r->partition + 1) < 0) {
		ret = -ENOMEM;
		goto out;
	}
	struct sl__gtopic *t = &gr->t[k];
	/* The log's order, but never an older generation over a newer one:
	 * a replaced member's commit accepted before it was replaced may be
	 * appended after its successor's. */
	if (!t->has[r->partition] || r->generation >= t->commit_gen[r->partition]) {
		t->committed[r->partition] = r->offset;
		t->commit_gen[r->partition] = r->generation;
		t->commit_ms[r->partition] = r->time_ms;
		t->has[r->partition] = 1;
	}
	if (r->generation > gr->generation)
		gr->generation = r->generation;
out:
	pthread_mutex_unlock(&g->mu);
	return ret;
}

/* ---- members leaving without a word --------------------------------------- */

void sl_groups_conn_gone(struct sl_groups *g, uint32_t core, uint32_t conn, uint32_t gen)
{
	pthread_mutex_lock(&g->mu);
	for (uint32_t i = 0; i < g->n; i++) {
		struct sl__group *gr = g->v[i];
		for (uint32_t s = 0; s < gr->n_m; s++) {
			struct sl__member *mb = &gr->m[s];
			if (mb->live && mb->core == core && mb->conn == conn &&
			    mb->conn_gen == gen) {
				sl__remove(gr, s);
				gr->expired++;
			}
		}
	}
	pthread_mutex_unlock(&g->mu);
}

uint32_t sl_groups_expire(struct sl_groups *g, uint64_t now_ns)
{
	uint32_t n = 0;
	pthread_mutex_lock(&g->mu);
	for (uint32_t i = 0; i < g->n; i++)
		if (g->v[i]->live)
			sl__expire_group(g->v[i], now_ns, &n);
	pthread_mutex_unlock(&g->mu);
	return n;
}

/* ---- snapshots ---------------------------------------------------------------- */

void sl_groups_snapshot_free(struct sl_group_snap *v, uint32_t n)
{
	for (uint32_t i = 0; v && i < n; i++) {
		for (uint32_t k = 0; k < v[i].n_topics; k++)
			free(v[i].topics[k].parts);
		free(v[i].topics);
		free(v[i].members);
	}
	free(v);
}

int sl_groups_snapshot(struct sl_groups *g, struct sl_group_snap **out, uint32_t *n)
{
	int ret = 0;

	pthread_mutex_lock(&g->mu);
	struct sl_group_snap *v = calloc(g->n ? g->n : 1, sizeof(*v));
	if (!v) {
		ret = -ENOMEM;
		goto out;
	}
	for (uint32_t i = 0; i < g->n; i++) {
		const struct sl__group *gr = g->v[i];
		struct sl_group_snap *sn = &v[i];
		memcpy(sn->name, gr->name, sizeof(sn->name));
		sn->generation = gr->generation;
		sn->rebalances = gr->rebalances;
		sn->moved = gr->moved;
		sn->reassigned = gr->reassigned;
		sn->expired = gr->expired;
		sn->reconciling = sl__reconciling(gr);
		sn->members = calloc(gr->live ? gr->live : 1, sizeof(*sn->members));
		sn->topics = calloc(gr->n_t ? gr->n_t : 1, sizeof(*sn->topics));
		if (!sn->members || !sn->topics) {
			sl_groups_snapshot_free(v, i + 1);
			ret = -ENOMEM;
			goto out;
		}
		for (uint32_t s = 0; s < gr->n_m; s++) {
			const struct sl__member *mb = &gr->m[s];
			if (!mb->live)
				continue;
			struct sl_group_snap_member *sm = &sn->members[sn->n_members++];
			memcpy(sm->id, mb->id, sizeof(sm->id));
			memcpy(sm->client, mb->client, sizeof(sm->client));
			memcpy(sm->topic, gr->t[mb->topic].name, sizeof(sm->topic));
			sm->session_ms = mb->session_ms;
			for (uint32_t p = 0; p < gr->t[mb->topic].n_parts; p++)
				sm->n_held += gr->t[mb->topic].owner[p] == (int32_t)s;
		}
		for (uint32_t k = 0; k < gr->n_t; k++) {
			const struct sl__gtopic *t = &gr->t[k];
			struct sl_group_snap_topic *st = &sn->topics[sn->n_topics++];
			memcpy(st->name, t->name, sizeof(st->name));
			st->n_parts = t->n_parts;
			st->parts = calloc(t->n_parts ? t->n_parts : 1, sizeof(*st->parts));
			if (!st->parts) {
				sl_groups_snapshot_free(v, i + 1);
				ret = -ENOMEM;
				goto out;
			}
			for (uint32_t p = 0; p < t->n_parts; p++) {
				struct sl_group_snap_part *sp = &st->parts[p];
				sp->partition = p;
				sp->has_committed = t->has[p];
				sp->committed = t->committed[p];
				sp->commit_ms = t->commit_ms[p];
				if (t->owner[p] >= 0)
					memcpy(sp->owner, gr->m[t->owner[p]].id, sizeof(sp->owner));
			}
		}
	}
	*out = v;
	*n = g->n;
out:
	pthread_mutex_unlock(&g->mu);
	return ret;
}
