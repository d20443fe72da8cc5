/*
 * libsluice in cluster mode (sluice/client.h, "Cluster mode"): the
 * application's client becomes a router over legs, one ordinary sl_client
 * per leader node, each with its own Hello, producer id, sequences, window
 * and resends (client.c's invariants hold per leg unchanged).
 *
 * Sequences. The application sees the router's own sequences; each leg
 * maps its sequences to them in a ring indexed by leg sequence (a leg keeps
 * every sequence in flight within max_inflight of its oldest unanswered
 * one, so the ring never overwrites a live entry). The router keeps its own
 * window of max_inflight sequences the same way, so callers may index
 * per-event state by sequence exactly as with one connection.
 *
 * What happens to events whose partition changes leader (pending events,
 * the order per partition, Metadata refreshes) is router_move.c's.
 *
 * Threads: the application's, like any client. Legs run non-blocking; the
 * router does the waiting on an epoll fd that holds the legs' fds.
 */
#include "client/router_impl.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "sluice/consumer.h"

/* ---- Metadata --------------------------------------------------------------- */

static int sl__md_from(struct sl__router *rt, const char *host, uint16_t port, const char *topic,
                       Sluice__V1__Metadata **md)
{
	uint32_t to = rt->s->o.connect_timeout_ms;
	struct sl_consumer_opts co = {
	    .host = host,
	    .port = port,
	    .client_name = rt->s->name,
	    .timeout_ms = to < SL__META_TIMEOUT_MS ? to : SL__META_TIMEOUT_MS,
	    .token = rt->s->token,
	};
	struct sl_consumer *con;
	char err[256];
	int ret = sl_consumer_connect(&co, &con, err, sizeof(err));
	if (ret == -EACCES) {
		/* As the producer's own Hello would say it. */
		const char *msg = strncmp(err, "server: ", 8) ? err : err + 8;
		sl__client_seterr(rt->s,
		                  strchr(host, ':') ? "[%s]:%u: server error %s: %s"
		                                    : "%s:%u: server error %s: %s",
		                  host, port, sl_client_code_name(SLUICE__V1__ERROR_CODE__ERR_AUTH),
		                  msg);
		return ret;
	}
	if (ret < 0) {
		sl__client_seterr(rt->s, "metadata: %s", err);
		return ret;
	}
	ret = sl__consumer_metadata(con, topic, md);
	if (ret < 0)
		sl__client_seterr(rt->s, "metadata from %s:%u: %s", host, port,
		                  sl_consumer_last_error(con));
	sl_consumer_close(con);
	return ret;
}

/* Metadata of `topic` from the bootstrap servers (the last good one first),
 * then the nodes the router has legs to. */
static int sl__md_any(struct sl__router *rt, const char *topic, Sluice__V1__Metadata **md)
{
	int ret = -ECONNREFUSED;

	for (size_t k = 0; k < rt->n_servers; k++) {
		size_t i = (rt->good + k) % rt->n_servers;
		ret = sl__md_from(rt, rt->servers[i].host, rt->servers[i].port, topic, md);
		if (ret == 0) {
			rt->good = i;
			return 0;
		}
		if (ret == -EACCES)
			return ret; /* the others would refuse the token too */
	}
	for (size_t i = 0; i < rt->n_legs; i++) {
		struct sl__hostport *hp;
		size_t n;
		if (sl__servers_parse(rt->legs[i]->addr, &hp, &n, NULL, 0) < 0)
			continue;
		ret = sl__md_from(rt, hp->host, hp->port, topic, md);
		free(hp);
		if (ret == 0)
			return 0;
	}
	return ret;
}

/* Asks for topic t's table. A topic the cluster does not know routes to
 * the bootstrap server, which refuses its events as it always did. */
int sl__route_topic(struct sl__router *rt, uint32_t t)
{
	Sluice__V1__Metadata *md;
	struct sl__route r = {0};
	int ret;

	if (t >= rt->n_routes) {
		uint32_t n = rt->s->n_topics > t + 1 ? rt->s->n_topics : t + 1;
		struct sl__route *v = realloc(rt->routes, n * sizeof(*v));
		if (!v)
			return -ENOMEM;
		rt->routes = v;
		bool *k = realloc(rt->known, n * sizeof(*k));
		if (!k)
			return -ENOMEM;
		rt->known = k;
		struct sl__flight **f = realloc(rt->flight, n * sizeof(*f));
		if (!f)
			return -ENOMEM;
		rt->flight = f;
		uint32_t *nf = realloc(rt->n_flight, n * sizeof(*nf));
		if (!nf)
			return -ENOMEM;
		rt->n_flight = nf;
		for (uint32_t i = rt->n_routes; i < n; i++) {
			rt->routes[i] = (struct sl__route){0};
			rt->known[i] = false;
			rt->flight[i] = NULL;
			rt->n_flight[i] = 0;
		}
		rt->n_routes = n;
	}
	ret = sl__md_any(rt, rt->s->topics[t], &md);
	if (ret < 0)
		return ret;
	if (!md->error && md->n_topics == 1) {
		char err[200];
		ret = sl__route_build(md->topics[0], &r, err, sizeof(err));
		if (ret < 0)
			sl__client_seterr(rt->s, "metadata: %s", err);
	}
	sl_frame_msg_free(&md->base);
	if (ret < 0)
		return ret;
	/* A router exists only in cluster mode: a table that names no leader
	 * (every partition between leaders, as a node saw it a moment ago)
	 * is not a node alone. Taken as one, its events went to the
	 * bootstrap server past the order per partition: the new leader
	 * stored a new event before older ones its predecessor gave back
	 * (seen: e2e_cluster_old_leader_truncates). */
	if (r.n_parts)
		r.cluster = true;
	if (r.cluster && r.n_parts != rt->n_flight[t]) {
		/* What is in flight is counted from here on (a topic's
		 * partition count does not change while it is used). */
		struct sl__flight *f = calloc(r.n_parts, sizeof(*f));
		if (!f) {
			sl__route_free(&r);
			return -ENOMEM;
		}
		free(rt->flight[t]);
		rt->flight[t] = f;
		rt->n_flight[t] = r.n_parts;
	}
	(void)sl__route_keep_newer(&r, &rt->routes[t]);
	sl__route_free(&rt->routes[t]);
	rt->routes[t] = r;
	rt->known[t] = true;
	return 0;
}

static struct sl__leg *sl__leg_find(struct sl__router *rt, const char *addr)
{
	for (size_t i = 0; i < rt->n_legs; i++)
		if (!rt->legs[i]->resume && !strcmp(rt->legs[i]->addr, addr))
			return rt->legs[i];
	return NULL;
}

struct sl__leg *sl__leg_get(struct sl__router *rt, const char *addr)
{
	struct sl__leg *l = sl__leg_find(rt, addr);
	return l ? l : sl__leg_new(rt, addr, NULL);
}

struct sl__leg *sl__leg_new(struct sl__router *rt, const char *addr, const struct sl__pend *as)
{
	struct sl__leg *l = NULL;
	struct sl__hostport *hp = NULL;
	size_t n;

	if (sl__servers_parse(addr, &hp, &n, NULL, 0) < 0 || n != 1)
		goto fail;
	struct sl__leg **v = realloc(rt->legs, (rt->n_legs + 1) * sizeof(*v));
	if (!v)
		goto fail;
	rt->legs = v;
	l = calloc(1, sizeof(*l));
	if (!l)
		goto fail;
	l->rt = rt;
	snprintf(l->addr, sizeof(l->addr), "%s", addr);
	uint64_t ring = sl__pow2(rt->s->o.max_inflight);
	l->app = calloc(ring, sizeof(*l->app));
	l->tp = calloc(ring, sizeof(*l->tp));
	l->mask = ring - 1;
	struct sl_client_opts o = rt->lo;
	o.host = hp->host;
	o.port = hp->port;
	o.arg = l;
	/* Legs of a seeded client must not all draw the same event ids. */
	if (o.seed)
		o.seed += rt->n_legs + 1;
	if (as) {
		o.producer_id = as->pid;
		o.producer_proof = as->proof;
	}
	if (!l->app || !l->tp || sl__client_new(&o, &l->c) < 0)
		goto fail;
	l->c->leg = true;
	if (as) {
		l->resume = true;
		l->c->resume_epoch = as->epoch;
		l->c->epoch = as->epoch;
		l->c->sparse = true;
	}
	int fd = sl_client_fd(l->c);
	struct epoll_event ev = {.events = EPOLLIN, .data.ptr = l};
	if (fd < 0 || epoll_ctl(rt->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
		sl__client_free(l->c);
		goto fail;
	}
	rt->legs[rt->n_legs++] = l;
	free(hp);
	return l;
fail:
	if (l) {
		free(l->app);
		free(l->tp);
	}
	free(l);
	free(hp);
	return NULL;
}

const char *sl__default_addr(struct sl__router *rt, char *buf, size_t cap)
{
	sl__hostport_format(&rt->servers[rt->good], buf, cap);
	return buf;
}

/* Where an event of topic t with this aggregate goes: its leader, the
 * bootstrap server for a topic without leaders, NULL while the leader is
 * unknown. */
const char *sl__target(struct sl__router *rt, uint32_t t, const void *key, size_t len, char *buf,
                       size_t cap, uint64_t *tp)
{
	uint32_t part = 0;
	*tp = SL__NO_TP;
	if (t >= rt->n_routes || !rt->known[t] || !rt->routes[t].cluster)
		return sl__default_addr(rt, buf, cap);
	const char *to = sl__route_leader(&rt->routes[t], key, len, &part);
	*tp = (uint64_t)t << 32 | part;
	return to;
}

bool sl__leg_down(const struct sl__leg *l)
{
	return l->c->state == SL__BACKOFF;
}

uint64_t sl__leg_silent_at(const struct sl__leg *l)
{
	const struct sl_client *c = l->c;
	if (c->state != SL__READY || c->head == c->send_idx)
		return UINT64_MAX; /* nothing waits for an ack there */
	return c->progress_ns + (uint64_t)SL__SILENT_MS * SL__NS_PER_MS;
}

bool sl__leg_silent(const struct sl__leg *l, uint64_t now)
{
	return now >= sl__leg_silent_at(l);
}

/* A resume leg with nothing left on it goes (router_move.c), once no
 * event waits to be placed (one may yet go to it: a new leg per event
 * would be a handshake per event, each leg sending one at a time until
 * its first is accepted). Its partitions' flights forget it, so that a
 * leg allocated at its address later is not taken for it. */
static void sl__reap(struct sl__router *rt)
{
	for (size_t i = 0; !rt->n_pend && i < rt->n_legs;) {
		struct sl__leg *l = rt->legs[i];
		if (!l->resume || l->c->st.inflight || l->c->has_open) {
			i++;
			continue;
		}
		for (uint32_t t = 0; t < rt->n_routes; t++)
			for (uint32_t p = 0; p < rt->n_flight[t]; p++)
				if (rt->flight[t][p].leg == l)
					rt->flight[t][p] =
					    (struct sl__flight){.pend = rt->flight[t][p].pend};
		int fd = sl_client_fd(l->c);
		if (fd >= 0)
			epoll_ctl(rt->epfd, EPOLL_CTL_DEL, fd, NULL);
		sl_client_close(l->c);
		free(l->app);
		free(l->tp);
		free(l);
		rt->legs[i] = rt->legs[--rt->n_legs];
	}
}

/* ---- the loop ---------------------------------------------------------------- */

static uint64_t sl__next_timer(const struct sl__router *rt)
{
	uint64_t t = UINT64_MAX, now = sl_now_ns();

	if (rt->refresh_want || rt->n_pend)
		t = rt->refresh_at;
	for (size_t i = 0; i < rt->n_legs; i++) {
		const struct sl_client *c = rt->legs[i]->c;
		int ms = sl_client_timeout_ms(c);
		if (ms >= 0 && now + (uint64_t)ms * SL__NS_PER_MS < t)
			t = now + (uint64_t)ms * SL__NS_PER_MS;
		/* When it turns silent, and then at the refresh pace while it
		 * stays so (SL__SILENT_MS). */
		uint64_t s = sl__leg_silent_at(rt->legs[i]);
		if (s <= now)
			s = rt->refresh_at;
		if (s < t)
			t = s;
	}
	return t;
}

/* One turn: every leg polled, refresh and resends when due, then a wait
 * for any leg until `until` (0: no wait) unless something was answered or
 * done(rt) already holds. */
static void sl__turn_until(struct sl__router *rt, uint64_t until,
                           bool (*done)(const struct sl__router *))
{
	struct sl_client *s = rt->s;
	uint64_t before = s->answered;

	uint64_t now0 = sl_now_ns();
	for (size_t i = 0; i < rt->n_legs; i++) {
		struct sl__leg *l = rt->legs[i];
		sl_client_poll(l->c, 0);
		if (sl__leg_down(l) || sl__leg_silent(l, now0))
			rt->refresh_want = true;
	}
	sl__reap(rt);
	if (!s->producer_id && rt->n_legs && rt->legs[0]->c->producer_id) {
		s->producer_id = rt->legs[0]->c->producer_id;
		memcpy(s->proof, rt->legs[0]->c->proof, SL_CLIENT_PROOF_LEN);
		s->proof_len = rt->legs[0]->c->proof_len;
	}
	uint64_t now = sl_now_ns();
	if ((rt->refresh_want || rt->n_pend) && now >= rt->refresh_at)
		sl__refresh(rt);
	else if (rt->n_pend)
		sl__place(rt); /* those a confirmed leader now lets go */
	if (s->answered != before || until <= now || (done && done(rt)))
		return;
	uint64_t t = sl__next_timer(rt);
	if (until < t)
		t = until;
	now = sl_now_ns();
	int ms = 0;
	if (t > now) {
		uint64_t d = (t - now + SL__NS_PER_MS - 1) / SL__NS_PER_MS;
		ms = t == UINT64_MAX || d > INT32_MAX ? -1 : (int)d;
	}
	struct epoll_event evs[16];
	if (ms != 0)
		epoll_wait(rt->epfd, evs, 16, ms);
}

static void sl__turn(struct sl__router *rt, uint64_t until)
{
	sl__turn_until(rt, until, NULL);
}

static bool sl__legs_settled(const struct sl__router *rt)
{
	for (size_t i = 0; i < rt->n_legs; i++)
		if (rt->legs[i]->c->state == SL__CONNECTING || rt->legs[i]->c->state == SL__HELLO)
			return false;
	return true;
}

static bool sl__all_answered(const struct sl__router *rt)
{
	return rt->s->st.inflight == 0;
}

int sl__rt_open(struct sl_client *c, const struct sl__hostport *servers, size_t n, size_t *chosen)
{
	struct sl__router *rt = calloc(1, sizeof(*rt));
	Sluice__V1__Metadata *md = NULL;
	int ret = -ENOMEM;

	*chosen = 0;
	if (!rt)
		return -ENOMEM;
	rt->s = c;
	rt->epfd = -1;
	rt->servers = malloc(n * sizeof(*servers));
	if (!rt->servers)
		goto fail;
	memcpy(rt->servers, servers, n * sizeof(*servers));
	rt->n_servers = n;
	ret = sl__md_any(rt, c->topics[0], &md);
	if (ret < 0)
		goto fail;
	*chosen = rt->good;
	struct sl__route r = {0};
	if (!md->error && md->n_topics == 1)
		ret = sl__route_build(md->topics[0], &r, NULL, 0);
	else
		ret = 0;
	sl_frame_msg_free(&md->base);
	if (ret <= 0) {
		sl__route_free(&r);
		goto fail; /* a node alone (or a topic it does not know) */
	}
	if (c->pname) {
		/* One name needs one sequence space across the leader nodes,
		 * and each leg has its own today (README, named producers). */
		sl__route_free(&r);
		sl__client_seterr(c,
		                  "producer name '%s': named producers are not served in "
		                  "cluster mode yet",
		                  c->pname);
		ret = -EOPNOTSUPP;
		goto fail;
	}

	ret = -ENOMEM;
	rt->routes = calloc(1, sizeof(*rt->routes));
	rt->known = calloc(1, sizeof(*rt->known));
	rt->flight = calloc(1, sizeof(*rt->flight));
	rt->n_flight = calloc(1, sizeof(*rt->n_flight));
	uint64_t ring = sl__pow2(c->o.max_inflight);
	rt->done = calloc(ring, 1);
	rt->wmask = ring - 1;
	rt->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (!rt->routes || !rt->known || !rt->flight || !rt->n_flight || !rt->done ||
	    rt->epfd < 0 ||
	    !(rt->flight[0] = calloc(r.n_parts ? r.n_parts : 1, sizeof(**rt->flight)))) {
		sl__route_free(&r);
		goto fail;
	}
	rt->n_flight[0] = r.n_parts;
	rt->routes[0] = r;
	rt->known[0] = true;
	rt->n_routes = 1;
	rt->lo = c->o;
	rt->lo.servers = NULL;
	rt->lo.on_ack = sl__on_leg_ack;
	rt->lo.nonblocking = true;
	rt->lo.block_timeout_ms = 0;
	/* Each node assigns its own producer ids. */
	rt->lo.producer_id = 0;
	rt->lo.producer_proof = NULL;
	c->producer_id = 0;
	c->proof_len = 0;
	c->rt = rt;
	c->state = SL__READY;

	/* A connection to every leader now, so that the first events find
	 * them ready; one that cannot be reached is not an error here (its
	 * events find the next leader through Metadata). */
	for (uint32_t p = 0; p < r.n_parts; p++) {
		struct sl__leg *l = r.p[p].native ? sl__leg_get(rt, r.p[p].native) : NULL;
		if (l && l->c->state == SL__IDLE)
			sl__client_connect_start(l->c);
	}
	uint64_t deadline = sl_now_ns() + (uint64_t)c->o.connect_timeout_ms * SL__NS_PER_MS;
	while (!sl__legs_settled(rt) && sl_now_ns() < deadline)
		sl__turn_until(rt, deadline, sl__legs_settled);
	rt->refresh_at = sl_now_ns();
	return 1;
fail:
	*chosen = rt->good;
	if (rt->epfd >= 0)
		close(rt->epfd);
	free(rt->routes);
	free(rt->known);
	if (rt->flight)
		free(rt->flight[0]);
	free(rt->flight);
	free(rt->n_flight);
	free(rt->done);
	free(rt->servers);
	free(rt);
	c->rt = NULL;
	return ret;
}

int sl__rt_produce(struct sl_client *c, const char *topic, const struct sl_client_event *ev,
                   const void *enc, size_t enc_len, uint64_t *seq)
{
	struct sl__router *rt = c->rt;
	const void *key;
	size_t key_len;
	int ret;

	if (ev) {
		if ((!ev->aggregate && ev->aggregate_len))
			return -EINVAL;
		key = ev->aggregate;
		key_len = ev->aggregate_len;
	} else {
		struct sl_event_view v;
		ret = sl_event_scan(enc, enc_len, &v);
		if (ret < 0)
			return ret;
		key = v.aggregate;
		key_len = v.aggregate_len;
	}
	int64_t t = sl__client_topic(c, topic);
	if (t < 0)
		return (int)t;
	if ((uint32_t)t >= rt->n_routes || !rt->known[t]) {
		/* First event of this topic: its table now. Nothing answering
		 * leaves it to the bootstrap server and a later refresh. */
		if (sl__route_topic(rt, (uint32_t)t) < 0)
			rt->refresh_want = true;
	}
	uint64_t deadline = c->o.block_timeout_ms
	                        ? sl_now_ns() + (uint64_t)c->o.block_timeout_ms * SL__NS_PER_MS
	                        : UINT64_MAX;
	const char *tname = c->topics[t];
	uint64_t ls = 0, tp = SL__NO_TP;
	struct sl__leg *l;
	for (;;) {
		char buf[300];
		ret = -EAGAIN;
		l = NULL;
		if (rt->next_seq - rt->first < c->o.max_inflight) {
			const char *to =
			    sl__target(rt, (uint32_t)t, key, key_len, buf, sizeof(buf), &tp);
			/* No leader known: the bootstrap server refuses it with
			 * ERR_NOT_LEADER, and it waits for a refresh like any
			 * other. */
			if (!to)
				to = sl__default_addr(rt, buf, sizeof(buf));
			l = sl__leg_get(rt, to);
			if (!l)
				return -ENOMEM;
			/* Its partition's older events first (Order per partition). */
			if (sl__fl_ok(rt, l, tp, false))
				ret =
				    ev ? sl_client_produce(l->c, tname, ev, &ls)
				       : sl_client_produce_encoded(l->c, tname, enc, enc_len, &ls);
		}
		if (ret != -EAGAIN)
			break;
		if (c->o.nonblocking) {
			sl__turn(rt, 0);
			return -EAGAIN;
		}
		if (deadline != UINT64_MAX && sl_now_ns() >= deadline) {
			sl__client_seterr(c, "window full for %u ms", c->o.block_timeout_ms);
			return -SL_ETIMEOUT;
		}
		sl__turn(rt, deadline);
	}
	if (ret < 0) {
		if (l && l->c->err[0])
			sl__client_seterr(c, "%s", l->c->err);
		return ret;
	}
	l->app[ls & l->mask] = rt->next_seq;
	sl__fl_sent(rt, l, ls, tp);
	if (seq)
		*seq = rt->next_seq;
	rt->next_seq++;
	c->st.produced++;
	c->st.inflight++;
	return 0;
}

int sl__rt_poll(struct sl_client *c, int timeout_ms)
{
	struct sl__router *rt = c->rt;
	uint64_t before = rt->answered_told, now = sl_now_ns();
	uint64_t deadline =
	    timeout_ms < 0 ? UINT64_MAX : now + (uint64_t)timeout_ms * SL__NS_PER_MS;

	for (int turns = 0;; turns++) {
		if (c->answered != before)
			break; /* some came during a produce: said now */
		sl__turn_until(rt, turns ? deadline : now, sl__all_answered);
		if (c->answered != before || !c->st.inflight || sl_now_ns() >= deadline)
			break;
	}
	rt->answered_told = c->answered;
	uint64_t n = c->answered - before;
	return (int)(n > INT32_MAX ? INT32_MAX : n);
}

int sl__rt_flush(struct sl_client *c, int timeout_ms)
{
	struct sl__router *rt = c->rt;
	uint64_t deadline =
	    timeout_ms < 0 ? UINT64_MAX : sl_now_ns() + (uint64_t)timeout_ms * SL__NS_PER_MS;

	for (size_t i = 0; i < rt->n_legs; i++) {
		int ret = sl__client_seal(rt->legs[i]->c);
		if (ret < 0)
			return ret;
	}
	while (c->st.inflight) {
		if (deadline != UINT64_MAX && sl_now_ns() >= deadline)
			return -SL_ETIMEOUT;
		sl__turn_until(rt, deadline, sl__all_answered);
	}
	return 0;
}

int sl__rt_fd(struct sl_client *c)
{
	return c->rt->epfd;
}

int sl__rt_timeout_ms(const struct sl_client *c)
{
	uint64_t t = sl__next_timer(c->rt), now = sl_now_ns();
	if (t == UINT64_MAX)
		return -1;
	if (t <= now)
		return 0;
	uint64_t ms = (t - now + SL__NS_PER_MS - 1) / SL__NS_PER_MS;
	return ms > INT32_MAX ? INT32_MAX : (int)ms;
}

void sl__rt_stats(const struct sl_client *c, struct sl_client_stats *out)
{
	const struct sl__router *rt = c->rt;

	/* Answers as the application saw them; traffic summed over legs. */
	*out = c->st;
	for (size_t i = 0; i < rt->n_legs; i++) {
		struct sl_client_stats ls;
		sl_client_get_stats(rt->legs[i]->c, &ls);
		out->batches += ls.batches;
		out->bytes_sent += ls.bytes_sent;
		/* One handshake counts for the client as a whole (callers take
		 * connects - 1 as reconnects); each leg's later ones add. */
		if (ls.connects)
			out->connects += out->connects ? ls.connects - 1 : ls.connects;
		out->resent += ls.resent;
		out->stray_acks += ls.stray_acks;
		out->credit_events += ls.credit_events;
		out->credit_bytes += ls.credit_bytes;
		out->credit_frames += ls.credit_frames;
		out->credit_waits += ls.credit_waits;
		out->credit_wait_ns += ls.credit_wait_ns;
	}
}

void sl__rt_close(struct sl_client *c)
{
	struct sl__router *rt = c->rt;

	rt->closing = true;
	for (size_t i = 0; i < rt->n_legs; i++) {
		sl_client_close(rt->legs[i]->c);
		free(rt->legs[i]->app);
		free(rt->legs[i]->tp);
		free(rt->legs[i]);
	}
	for (size_t i = 0; i < rt->n_pend; i++) {
		struct sl_client_ack a = {.status = -ECANCELED, .message = ""};
		sl__answer(rt, rt->pend[i].app, &a);
		free(rt->pend[i].ev);
	}
	for (uint32_t t = 0; t < rt->n_routes; t++) {
		sl__route_free(&rt->routes[t]);
		free(rt->flight[t]);
	}
	free(rt->flight);
	free(rt->n_flight);
	if (rt->epfd >= 0)
		close(rt->epfd);
	free(rt->legs);
	free(rt->routes);
	free(rt->known);
	free(rt->pend);
	free(rt->done);
	free(rt->servers);
	free(rt);
	c->rt = NULL;
}
