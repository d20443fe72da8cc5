/*
 * route: a transform that sends each event, unchanged (its stored bytes, its
 * id), to a topic chosen by the event's type.
 *
 *   routes:  { TYPE: TOPIC, ... }   where each type goes
 *   default: TOPIC                  where the other types go (optional;
 *                                   without it they are dropped)
 *
 * The table is built once at create: an open-addressing hash table of the
 * types (host hash64, at most half full, linear probing), so routing an event
 * costs a hash and one memcmp whatever the number of routes. An instance
 * holds only its parsed args, so it needs no snapshot: a transform restarts
 * where its pipeline's consumer offset says, and emit_copy keeps the ids, so
 * a replay after a crash is recognised downstream.
 */
#include <sluice/plugin.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Types and topic names are identifiers; a bound keeps one arg from taking
 * megabytes and keeps every length in a uint32_t. */
#define ROUTE_NAME_MAX 1024

struct route_topic {
	char *name;
	size_t len;
};

struct route_slot {
	uint64_t hash;
	char *type; /* NULL: empty */
	uint32_t type_len;
	uint32_t topic; /* index into topics */
};

struct route {
	const struct sl_host *host;
	struct sl_plugin_ctx *ctx;
	struct route_slot *slots;
	size_t mask; /* slots - 1, a power of two minus one */
	struct route_topic *topics;
	size_t n_topics;
	int dflt; /* index into topics, -1: drop */
};

static void route_free(struct route *r)
{
	if (!r)
		return;
	for (size_t i = 0; r->slots && i <= r->mask; i++)
		free(r->slots[i].type);
	for (size_t i = 0; i < r->n_topics; i++)
		free(r->topics[i].name);
	free(r->slots);
	free(r->topics);
	free(r);
}

/* Checks one name arg: 0, or -EINVAL with the reason in err. */
static int check_name(const struct sl_plugin_create *c, const char *what, const char *s)
{
	size_t n = strlen(s);

	if (!n) {
		snprintf(c->err, c->errlen, "%s must not be empty", what);
		return -EINVAL;
	}
	if (n > ROUTE_NAME_MAX) {
		snprintf(c->err, c->errlen, "%s is longer than %d bytes", what, ROUTE_NAME_MAX);
		return -EINVAL;
	}
	return 0;
}

/* The index of topic `s`, added when new: >= 0, or -ENOMEM. Several types
 * going to one topic share its name. */
static int topic_index(struct route *r, const char *s)
{
	size_t n = strlen(s);
	struct route_topic *t;

	for (size_t i = 0; i < r->n_topics; i++)
		if (r->topics[i].len == n && !memcmp(r->topics[i].name, s, n))
			return (int)i;
	t = realloc(r->topics, (r->n_topics + 1) * sizeof(*t));
	if (!t)
		return -ENOMEM;
	r->topics = t;
	if (!(t[r->n_topics].name = strdup(s)))
		return -ENOMEM;
	t[r->n_topics].len = n;
	return (int)r->n_topics++;
}

static struct route_slot *lookup(const struct route *r, const char *type, size_t len, uint64_t hash)
{
	/* At most half full: the probe always meets an empty slot. */
	for (size_t i = hash & r->mask;; i = (i + 1) & r->mask) {
		struct route_slot *s = &r->slots[i];
		if (!s->type ||
		    (s->hash == hash && s->type_len == len && !memcmp(s->type, type, len)))
			return s;
	}
}

static int route_create(const struct sl_plugin_create *c, void **inst)
{
	static const char *const known[] = {"routes", "default", NULL};
	const struct sl_host *h = c->host;
	const struct sl_plugin_args *routes;
	const char *bad = NULL, *s;
	struct route *r;
	size_t n, cap;
	int ret;

	if (h->arg_check_keys(c->args, known, &bad) < 0) {
		snprintf(c->err, c->errlen, "unknown arg '%s' (route takes routes, default)",
		         bad ? bad : "?");
		return -EINVAL;
	}
	r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	r->host = h;
	r->ctx = c->ctx;
	r->dflt = -1;

	routes = h->arg_get(c->args, "routes");
	/* A scalar or a list where a map is wanted: arg_key of the entries
	 * tells them apart (a list's elements have no key). */
	n = routes ? h->arg_len(routes) : 0;
	if ((routes && h->arg_str(routes, NULL, &s) == 0) ||
	    (n && !h->arg_key(h->arg_at(routes, 0)))) {
		snprintf(c->err, c->errlen, "routes must be a map of type: topic");
		ret = -EINVAL;
		goto fail;
	}
	for (cap = 2; cap < 2 * n; cap *= 2)
		;
	r->slots = calloc(cap, sizeof(*r->slots));
	if (!r->slots) {
		ret = -ENOMEM;
		goto fail;
	}
	r->mask = cap - 1;
	for (size_t i = 0; i < n; i++) {
		const struct sl_plugin_args *e = h->arg_at(routes, i);
		const char *type = h->arg_key(e);
		char what[64];

		snprintf(what, sizeof(what), "routes[%zu]: the type", i);
		if ((ret = check_name(c, what, type)) < 0)
			goto fail;
		if (h->arg_str(e, NULL, &s) < 0) {
			snprintf(c->err, c->errlen, "routes.%.64s must be a topic name", type);
			ret = -EINVAL;
			goto fail;
		}
		snprintf(what, sizeof(what), "routes.%.32s", type);
		if ((ret = check_name(c, what, s)) < 0)
			goto fail;
		size_t len = strlen(type);
		uint64_t hash = h->hash64(type, len, 0);
		struct route_slot *slot = lookup(r, type, len, hash);
		/* The YAML parser refuses duplicate keys; this keeps the table
		 * sound whatever tree the host hands over. */
		if (slot->type) {
			snprintf(c->err, c->errlen, "routes: type '%.64s' given twice", type);
			ret = -EINVAL;
			goto fail;
		}
		if ((ret = topic_index(r, s)) < 0)
			goto fail;
		slot->topic = (uint32_t)ret;
		slot->hash = hash;
		slot->type_len = (uint32_t)len;
		if (!(slot->type = strdup(type))) {
			ret = -ENOMEM;
			goto fail;
		}
	}
	ret = h->arg_str(c->args, "default", &s);
	if (ret == -EINVAL) {
		snprintf(c->err, c->errlen, "default must be a topic name");
		goto fail;
	}
	if (ret == 0) {
		if ((ret = check_name(c, "default", s)) < 0 || (ret = topic_index(r, s)) < 0)
			goto fail;
		r->dflt = ret;
	}
	if (!n && r->dflt < 0) {
		snprintf(c->err, c->errlen,
		         "route needs routes (a map of type: topic) or a default topic");
		ret = -EINVAL;
		goto fail;
	}
	*inst = r;
	return 0;
fail:
	route_free(r);
	return ret;
}

static void route_destroy(void *inst)
{
	route_free(inst);
}

static int route_process(void *inst, const struct sl_plugin_event *ev, uint32_t n,
                         struct sl_plugin_emitter *em)
{
	struct route *r = inst;
	/* Streams repeat few types: the previous event's type is compared
	 * first (its bytes stay valid for this whole call). */
	const char *last = NULL;
	uint32_t last_len = 0;
	int t = -1;

	for (uint32_t i = 0; i < n; i++) {
		const struct sl_plugin_event *e = &ev[i];

		if (!last || last_len != e->type_len || memcmp(last, e->type, e->type_len)) {
			const struct route_slot *s = lookup(
			    r, e->type, e->type_len, r->host->hash64(e->type, e->type_len, 0));
			t = s->type ? (int)s->topic : r->dflt;
			last = e->type;
			last_len = e->type_len;
		}
		if (t < 0)
			continue;
		int ret = r->host->emit_copy(em, r->topics[t].name, r->topics[t].len, e);
		if (ret < 0) {
			/* A topic the host does not know is a config mistake that
			 * every later event of the type would repeat: stop and
			 * say which, rather than drop events silently. */
			r->host->log(r->ctx, SL_PLUGIN_LOG_ERROR,
			             "cannot send type '%.*s' (offset %llu) to topic '%s': %s",
			             (int)(e->type_len > 256 ? 256 : e->type_len), e->type,
			             (unsigned long long)e->offset, r->topics[t].name,
			             ret == -ENOENT ? "no such topic" : "emit failed");
			return ret;
		}
	}
	return 0;
}

static const struct sl_transform_ops route_ops = {
    .struct_size = sizeof(struct sl_transform_ops),
    .create = route_create,
    .destroy = route_destroy,
    .process = route_process,
};

static const struct sl_plugin_info route_info =
    SL_PLUGIN_INFO_INIT(SL_PLUGIN_TRANSFORM, "route", "1.0",
                        "sends each event to a topic chosen by its type", &route_ops);

SL_PLUGIN_DEFINE(route_info)
