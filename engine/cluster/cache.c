/*
 * The cache of nodes and partition states: written on the cluster thread
 * (a fresh read at start or after a compacted/canceled watch, then one
 * watch event at a time), read from any thread under sl_cluster.mu.
 * Callbacks run after the lock is dropped, with copies, so they may call
 * back into the getters. Values that fail their codec are ignored: the
 * cache holds only states a node may act on.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "cluster/cluster_impl.h"

enum key_kind { K_OTHER, K_NODE, K_ORDINAL, K_TOPIC, K_PARTITION, K_RTOPIC };

/* nodes/<id>, ordinals/<id>, topics/<t>, partitions/<t>/<p>, rtopics/<t>
 * (a topic created at runtime: its definition); anything else
 * under the prefix (ordinal_next, keys of later versions) is K_OTHER. */
static enum key_kind parse_key(const char *key, char *name, size_t cap, uint32_t *p)
{
	static const struct {
		const char *pre;
		enum key_kind k;
	} forms[] = {{"nodes/", K_NODE},
	             {"ordinals/", K_ORDINAL},
	             {"topics/", K_TOPIC},
	             {"partitions/", K_PARTITION},
	             {"rtopics/", K_RTOPIC}};
	for (size_t i = 0; i < SL_ARRAY_LEN(forms); i++) {
		size_t pl = strlen(forms[i].pre);
		if (strncmp(key, forms[i].pre, pl) != 0)
			continue;
		const char *rest = key + pl;
		if (forms[i].k != K_PARTITION) {
			if (strlen(rest) >= cap)
				return K_OTHER;
			strcpy(name, rest);
			bool ok = forms[i].k == K_TOPIC || forms[i].k == K_RTOPIC
			              ? sl_cluster_topic_name_ok(name)
			              : sl_cluster_id_ok(name);
			return ok ? forms[i].k : K_OTHER;
		}
		const char *slash = strchr(rest, '/');
		if (!slash || (size_t)(slash - rest) >= cap)
			return K_OTHER;
		memcpy(name, rest, (size_t)(slash - rest));
		name[slash - rest] = 0;
		uint32_t v;
		if (!sl_cluster_topic_name_ok(name) ||
		    sl_cluster_ordinal_decode(slash + 1, strlen(slash + 1), &v) < 0 ||
		    v >= SL_CLUSTER_PARTITIONS_MAX)
			return K_OTHER;
		*p = v;
		return K_PARTITION;
	}
	return K_OTHER;
}

static struct sl__ctopic *topic_find(struct sl__cache *k, const char *name, bool add)
{
	for (size_t i = 0; i < k->n_topics; i++)
		if (strcmp(k->topics[i].name, name) == 0)
			return &k->topics[i];
	if (!add)
		return NULL;
	struct sl__ctopic *t = realloc(k->topics, (k->n_topics + 1) * sizeof(*t));
	if (!t)
		return NULL;
	k->topics = t;
	t = &k->topics[k->n_topics++];
	memset(t, 0, sizeof(*t));
	snprintf(t->name, sizeof(t->name), "%s", name);
	return t;
}

/* A runtime topic's definition put (value) or deleted (NULL); true when
 * it changed. */
static bool rtopic_set(struct sl__cache *k, const char *name, const uint8_t *value, size_t len)
{
	size_t i = 0;
	while (i < k->n_rts && strcmp(k->rts[i].name, name) != 0)
		i++;
	if (!value) {
		if (i == k->n_rts)
			return false;
		free(k->rts[i].def);
		k->rts[i] = k->rts[--k->n_rts];
		return true;
	}
	if (i < k->n_rts && k->rts[i].len == len && memcmp(k->rts[i].def, value, len) == 0)
		return false;
	char *def = malloc(len + 1);
	if (!def)
		return false; /* kept as it was; the next change or reload fixes it */
	memcpy(def, value, len);
	def[len] = 0;
	if (i == k->n_rts) {
		struct sl_cluster_rtopic *g = realloc(k->rts, (k->n_rts + 1) * sizeof(*g));
		if (!g) {
			free(def);
			return false;
		}
		k->rts = g;
		memset(&g[i], 0, sizeof(g[i]));
		snprintf(g[i].name, sizeof(g[i].name), "%s", name);
		k->n_rts++;
	} else {
		free(k->rts[i].def);
	}
	k->rts[i].def = def;
	k->rts[i].len = len;
	return true;
}

static struct sl__cnode *node_find(struct sl__cache *k, const char *id, bool add)
{
	for (size_t i = 0; i < k->n_nodes; i++)
		if (strcmp(k->nodes[i].n.id, id) == 0)
			return &k->nodes[i];
	if (!add)
		return NULL;
	struct sl__cnode *n = realloc(k->nodes, (k->n_nodes + 1) * sizeof(*n));
	if (!n)
		return NULL;
	k->nodes = n;
	n = &k->nodes[k->n_nodes++];
	memset(n, 0, sizeof(*n));
	snprintf(n->n.id, sizeof(n->n.id), "%s", id);
	n->n.ordinal = -1;
	return n;
}

static int topic_grow(struct sl__ctopic *t, uint32_t p)
{
	if (p < t->cap)
		return 0;
	uint32_t cap = t->cap ? t->cap : 8;
	while (cap <= p)
		cap *= 2;
	struct sl_pstate *ps = realloc(t->ps, cap * sizeof(*ps));
	if (!ps)
		return -ENOMEM;
	t->ps = ps;
	bool *have = realloc(t->have, cap * sizeof(*have));
	if (!have)
		return -ENOMEM;
	t->have = have;
	memset(t->have + t->cap, 0, (cap - t->cap) * sizeof(*have));
	t->cap = cap;
	return 0;
}

void sl__cache_free(struct sl__cache *k)
{
	for (size_t i = 0; i < k->n_topics; i++) {
		free(k->topics[i].ps);
		free(k->topics[i].have);
	}
	free(k->topics);
	free(k->nodes);
	for (size_t i = 0; i < k->n_rts; i++)
		free(k->rts[i].def);
	free(k->rts);
	memset(k, 0, sizeof(*k));
}

/* What one key-value does to the cache (a PUT, or a DELETE when kv->value
 * is NULL). *node_changed / *part_changed: what to tell whom. */
struct effect {
	enum key_kind kind;
	char name[SL_CLUSTER_TOPIC_MAX];
	uint32_t p;
	struct sl_cluster_node node;
	struct sl_pstate ps;
	bool notify; /* a callback is due */
	bool membership;
};

static void apply(struct sl__cache *k, const struct sl_etcd_kv *kv, bool del, struct effect *fx)
{
	char err[128];
	memset(fx, 0, sizeof(*fx));
	fx->kind = parse_key(kv->key, fx->name, sizeof(fx->name), &fx->p);
	switch (fx->kind) {
	case K_NODE: {
		struct sl__cnode *n = node_find(k, fx->name, !del);
		if (!n)
			return;
		if (del) {
			if (n->n.alive) {
				n->n.alive = false;
				fx->node = n->n;
				fx->notify = fx->membership = true;
			}
			return;
		}
		struct sl_cluster_node rec;
		if (sl_cluster_node_decode((const char *)kv->value, kv->value_len, &rec, err,
		                           sizeof(err)) < 0 ||
		    strcmp(rec.id, fx->name) != 0)
			return; /* not a node record we can use: as if absent */
		fx->membership = !n->n.alive;
		n->n = rec;
		n->seen = true;
		fx->node = rec;
		fx->notify = true;
		return;
	}
	case K_ORDINAL: {
		uint32_t v;
		if (del ||
		    sl_cluster_ordinal_decode((const char *)kv->value, kv->value_len, &v) < 0)
			return;
		struct sl__cnode *n = node_find(k, fx->name, true);
		if (n && n->n.ordinal < 0)
			n->n.ordinal = v;
		return;
	}
	case K_TOPIC: {
		struct sl__ctopic *t = topic_find(k, fx->name, !del);
		if (!t)
			return;
		if (del) {
			t->has_rec = false;
			t->removed = true;
			return;
		}
		t->removed = false;
		t->has_rec =
		    sl_cluster_topic_decode((const char *)kv->value, kv->value_len, &t->partitions,
		                            &t->replicas, err, sizeof(err)) == 0;
		return;
	}
	case K_PARTITION: {
		struct sl__ctopic *t = topic_find(k, fx->name, !del);
		if (!t)
			return;
		if (del) {
			if (fx->p < t->cap)
				t->have[fx->p] = false;
			return;
		}
		struct sl_pstate s;
		if (sl_cluster_pstate_decode((const char *)kv->value, kv->value_len, &s, err,
		                             sizeof(err)) < 0 ||
		    topic_grow(t, fx->p) < 0)
			return;
		s.mod_revision = kv->mod_revision;
		if (t->have[fx->p] && t->ps[fx->p].mod_revision == s.mod_revision)
			return; /* seen already (a watch restarted over it) */
		t->ps[fx->p] = s;
		t->have[fx->p] = true;
		fx->ps = s;
		fx->notify = true;
		return;
	}
	case K_RTOPIC:
		fx->notify = rtopic_set(k, fx->name, del ? NULL : kv->value, kv->value_len);
		return;
	case K_OTHER:
		return;
	}
}

static void tell(struct sl_cluster *c, const struct effect *fx)
{
	if (!fx->notify)
		return;
	if (fx->kind == K_NODE && c->o.on_node)
		c->o.on_node(c->o.arg, &fx->node);
	if (fx->kind == K_PARTITION && c->o.on_partition)
		c->o.on_partition(c->o.arg, fx->name, fx->p, &fx->ps);
	if (fx->kind == K_RTOPIC && c->o.on_rtopics)
		c->o.on_rtopics(c->o.arg);
}

int sl__cache_event(void *arg, const struct sl_etcd_event *ev)
{
	struct sl_cluster *c = arg;
	struct effect fx;
	if (ev->kv.mod_revision > c->wrev)
		c->wrev = ev->kv.mod_revision;
	pthread_mutex_lock(&c->mu);
	apply(&c->cache, &ev->kv, ev->type == SL_ETCD_DELETE, &fx);
	pthread_mutex_unlock(&c->mu);
	if (fx.membership)
		c->place_dirty = true;
	tell(c, &fx);
	return 0;
}

static int load_one(void *arg, const struct sl_etcd_kv *kv)
{
	struct effect fx;
	apply(arg, kv, false, &fx);
	return 0;
}

int sl__cache_reload(struct sl_cluster *c, struct sl_etcd *e, bool notify, int64_t *rev)
{
	struct sl__cache fresh = {0};
	int r = sl_etcd_get_prefix(e, "", load_one, &fresh);
	if (r < 0) {
		sl__cache_free(&fresh);
		return r;
	}
	*rev = sl_etcd_revision(e);

	/* Nodes seen before and gone now stay known (not alive). The diff
	 * against the old cache says what changed while no watch ran. */
	struct effect *fxs = NULL;
	size_t n_fx = 0, cap_fx = 0;
	pthread_mutex_lock(&c->mu);
	struct sl__cache old = c->cache;
	for (size_t i = 0; i < old.n_nodes; i++) {
		const struct sl__cnode *o = &old.nodes[i];
		struct sl__cnode *n = node_find(&fresh, o->n.id, o->seen);
		if (!n)
			continue;
		if (!n->seen && o->seen) {
			n->n = o->n;
			n->n.alive = false;
			n->seen = true;
		}
		if (n->n.ordinal < 0)
			n->n.ordinal = o->n.ordinal;
	}
	c->cache = fresh;
	if (notify) {
		for (size_t i = 0; i < fresh.n_nodes; i++) {
			const struct sl__cnode *n = &fresh.nodes[i];
			const struct sl__cnode *o = node_find(&old, n->n.id, false);
			if (!n->seen || (o && o->n.alive == n->n.alive &&
			                 strcmp(o->n.native, n->n.native) == 0 &&
			                 strcmp(o->n.http, n->n.http) == 0))
				continue;
			if (n_fx == cap_fx) {
				cap_fx = cap_fx ? 2 * cap_fx : 16;
				struct effect *g = realloc(fxs, cap_fx * sizeof(*g));
				if (!g)
					break; /* best effort; the cache itself is whole */
				fxs = g;
			}
			fxs[n_fx++] = (struct effect){.kind = K_NODE, .node = n->n, .notify = true};
		}
		for (size_t i = 0; i < fresh.n_topics; i++) {
			const struct sl__ctopic *t = &fresh.topics[i];
			const struct sl__ctopic *o = topic_find(&old, t->name, false);
			for (uint32_t p = 0; p < t->cap; p++) {
				if (!t->have[p] || (o && p < o->cap && o->have[p] &&
				                    o->ps[p].mod_revision == t->ps[p].mod_revision))
					continue;
				if (n_fx == cap_fx) {
					cap_fx = cap_fx ? 2 * cap_fx : 16;
					struct effect *g = realloc(fxs, cap_fx * sizeof(*g));
					if (!g)
						break;
					fxs = g;
				}
				struct effect *f = &fxs[n_fx++];
				memset(f, 0, sizeof(*f));
				f->kind = K_PARTITION;
				f->notify = true;
				snprintf(f->name, sizeof(f->name), "%s", t->name);
				f->p = p;
				f->ps = t->ps[p];
			}
		}
	}
	pthread_mutex_unlock(&c->mu);
	sl__cache_free(&old);
	c->place_dirty = true;
	for (size_t i = 0; i < n_fx; i++)
		tell(c, &fxs[i]);
	free(fxs);
	/* Runtime topics: the server compares the whole set anyway. */
	if (notify && c->o.on_rtopics)
		c->o.on_rtopics(c->o.arg);
	return 0;
}

int sl_cluster_rtopics_get(struct sl_cluster *c, struct sl_cluster_rtopic **out, size_t *n)
{
	int ret = 0;
	pthread_mutex_lock(&c->mu);
	const struct sl__cache *k = &c->cache;
	struct sl_cluster_rtopic *v = calloc(k->n_rts ? k->n_rts : 1, sizeof(*v));
	size_t m = 0;
	if (!v)
		ret = -ENOMEM;
	for (size_t i = 0; v && i < k->n_rts; i++, m++) {
		v[i] = k->rts[i];
		if (!(v[i].def = malloc(k->rts[i].len + 1))) {
			ret = -ENOMEM;
			break;
		}
		memcpy(v[i].def, k->rts[i].def, k->rts[i].len + 1);
	}
	pthread_mutex_unlock(&c->mu);
	if (ret < 0) {
		sl_cluster_rtopics_free(v, m);
		return ret;
	}
	*out = v;
	*n = m;
	return 0;
}

void sl_cluster_rtopics_free(struct sl_cluster_rtopic *v, size_t n)
{
	for (size_t i = 0; v && i < n; i++)
		free(v[i].def);
	free(v);
}

void sl__cache_announce(struct sl_cluster *c)
{
	/* Copies under the lock, callbacks after it. */
	struct effect *fxs = NULL;
	size_t n_fx = 0, cap_fx = 0;
	pthread_mutex_lock(&c->mu);
	struct sl__cache *k = &c->cache;
	for (size_t i = 0; i < k->n_nodes + k->n_topics; i++) {
		uint32_t np = i < k->n_nodes ? 1 : k->topics[i - k->n_nodes].cap;
		for (uint32_t p = 0; p < np; p++) {
			struct effect f = {0};
			if (i < k->n_nodes) {
				if (!k->nodes[i].n.alive)
					continue;
				f.kind = K_NODE;
				f.node = k->nodes[i].n;
			} else {
				const struct sl__ctopic *t = &k->topics[i - k->n_nodes];
				if (!t->have[p])
					continue;
				f.kind = K_PARTITION;
				snprintf(f.name, sizeof(f.name), "%s", t->name);
				f.p = p;
				f.ps = t->ps[p];
			}
			f.notify = true;
			if (n_fx == cap_fx) {
				cap_fx = cap_fx ? 2 * cap_fx : 16;
				struct effect *g = realloc(fxs, cap_fx * sizeof(*g));
				if (!g)
					goto out;
				fxs = g;
			}
			fxs[n_fx++] = f;
		}
	}
out:
	pthread_mutex_unlock(&c->mu);
	for (size_t i = 0; i < n_fx; i++)
		tell(c, &fxs[i]);
	free(fxs);
}

static int cmp_id(const void *a, const void *b)
{
	return strcmp(a, b);
}

int sl__cache_live_ids(struct sl_cluster *c, char (**ids)[SL_CLUSTER_ID_MAX], size_t *n)
{
	pthread_mutex_lock(&c->mu);
	size_t cnt = 0;
	char(*out)[SL_CLUSTER_ID_MAX] = malloc((c->cache.n_nodes + 1) * SL_CLUSTER_ID_MAX);
	if (!out) {
		pthread_mutex_unlock(&c->mu);
		return -ENOMEM;
	}
	for (size_t i = 0; i < c->cache.n_nodes; i++)
		if (c->cache.nodes[i].n.alive)
			memcpy(out[cnt++], c->cache.nodes[i].n.id, SL_CLUSTER_ID_MAX);
	pthread_mutex_unlock(&c->mu);
	qsort(out, cnt, SL_CLUSTER_ID_MAX, cmp_id);
	*ids = out;
	*n = cnt;
	return 0;
}

/* ---- any thread ---------------------------------------------------------------- */

int sl_cluster_pstate_get(struct sl_cluster *c, const char *topic, uint32_t p,
                          struct sl_pstate *out)
{
	int r = -ENOENT;
	pthread_mutex_lock(&c->mu);
	const struct sl__ctopic *t = topic ? topic_find(&c->cache, topic, false) : NULL;
	if (t && p < t->cap && t->have[p]) {
		*out = t->ps[p];
		r = 0;
	}
	pthread_mutex_unlock(&c->mu);
	return r;
}

static int cmp_node(const void *a, const void *b)
{
	return strcmp(((const struct sl_cluster_node *)a)->id,
	              ((const struct sl_cluster_node *)b)->id);
}

/* Adds id to list (not alive) unless it is there. */
static int add_named(struct sl_cluster_node **list, size_t *n, size_t *cap,
                     const struct sl__cache *k, const char *id)
{
	if (!id[0])
		return 0;
	for (size_t i = 0; i < *n; i++)
		if (strcmp((*list)[i].id, id) == 0)
			return 0;
	if (*n == *cap) {
		size_t nc = *cap ? 2 * *cap : 16;
		struct sl_cluster_node *g = realloc(*list, nc * sizeof(*g));
		if (!g)
			return -ENOMEM;
		*list = g;
		*cap = nc;
	}
	struct sl_cluster_node *x = &(*list)[(*n)++];
	memset(x, 0, sizeof(*x));
	snprintf(x->id, sizeof(x->id), "%s", id);
	x->ordinal = -1;
	for (size_t i = 0; i < k->n_nodes; i++)
		if (strcmp(k->nodes[i].n.id, id) == 0)
			x->ordinal = k->nodes[i].n.ordinal;
	return 0;
}

int sl_cluster_nodes(struct sl_cluster *c, int (*cb)(void *arg, const struct sl_cluster_node *n),
                     void *arg)
{
	struct sl_cluster_node *list = NULL;
	size_t n = 0, cap = 0;
	int r = 0;
	pthread_mutex_lock(&c->mu);
	const struct sl__cache *k = &c->cache;
	for (size_t i = 0; i < k->n_nodes && r == 0; i++) {
		if (!k->nodes[i].n.alive && !k->nodes[i].seen)
			continue;
		if (n == cap) {
			size_t nc = cap ? 2 * cap : 16;
			struct sl_cluster_node *g = realloc(list, nc * sizeof(*g));
			if (!g) {
				r = -ENOMEM;
				break;
			}
			list = g;
			cap = nc;
		}
		list[n++] = k->nodes[i].n;
	}
	for (size_t i = 0; i < k->n_topics && r == 0; i++) {
		const struct sl__ctopic *t = &k->topics[i];
		for (uint32_t p = 0; p < t->cap && r == 0; p++) {
			if (!t->have[p])
				continue;
			const struct sl_pstate *s = &t->ps[p];
			for (uint32_t j = 0; j < s->n_replicas && r == 0; j++)
				r = add_named(&list, &n, &cap, k, s->replicas[j]);
			if (r == 0)
				r = add_named(&list, &n, &cap, k, s->moving_to);
		}
	}
	pthread_mutex_unlock(&c->mu);
	if (r == 0) {
		qsort(list, n, sizeof(*list), cmp_node);
		for (size_t i = 0; i < n && r == 0; i++)
			r = cb(arg, &list[i]);
		if (r == 0)
			r = (int)n;
	}
	free(list);
	return r;
}
