/*
 * libsluice's router (router.c), events whose partition changes leader.
 *
 * Moving an event. A leg answers an event refused with ERR_NOT_LEADER to
 * the router with its bytes (c->cb_raw): the router keeps a copy (pending)
 * and does not answer the application. The unanswered events of a leg whose
 * connection is down, and whose partition Metadata now gives to another
 * node, are taken out of the leg (sl__client_take: answered there without a
 * callback, so the leg's later resend skips them). Pending events go to
 * their leader after the next Metadata refresh.
 *
 * Exactly once across a failover. An event that went out on a connection
 * may be stored even though no answer came: the dead leader may have
 * replicated it. Sent again as a new event of the new leader's leg (its
 * own producer id) it would be stored twice. So a pending event keeps the
 * identity it was sent under (the leg's producer id, epoch, sequence and
 * the id's proof), and goes to the new leader on a resume leg: an
 * sl_client of that producer id which says Hello with resume_epoch
 * (wire.proto) and takes events at their own sequences (sparse: gaps where
 * the old leg's events of other partitions were). The new leader's
 * sequence table, copied with the log, answers those already stored as
 * duplicates with their offsets. The nodes share the proofs' key (etcd),
 * so the proof one node gave is good on another. A resume leg of a
 * producer id at a node takes events in sequence order, within one window
 * of what it holds; one that cannot gets another (resume sessions fence
 * nobody). It is closed once it holds nothing and nothing waits. This
 * holds for an event whose partition comes back to the node of the leg it
 * was sent on, too: an earlier send of it there, before a reconnect, may
 * be stored.
 *
 * Order per partition. Events of one partition reach their leader in the
 * order the application gave them: a new event of a partition waits while
 * events of it are pending (refused, to be resent) or still in flight on
 * another leg (the old leader: they may yet be refused, and must be resent
 * before anything newer), and pending events go out in the order they
 * came back. A leg not yet confirmed as the partition's leader (no event
 * of it accepted there since the partition came to it) gets one event at a
 * time: a node named leader in etcd refuses events until its reactor took
 * the role, so a first event refused and a second accepted a moment later
 * would swap them (seen: e2e_cluster_planned_moves). struct sl__flight
 * keeps, per partition, the leg holding its events in flight, how many,
 * whether that leg accepted one, and how many are pending.
 *
 * Threads: the application's, like the rest of the router.
 */
#include "client/router_impl.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* ---- legs -------------------------------------------------------------------- */

static void sl__done(struct sl__router *rt, uint64_t app)
{
	rt->done[app & rt->wmask] = 1;
	while (rt->first < rt->next_seq && rt->done[rt->first & rt->wmask]) {
		rt->done[rt->first & rt->wmask] = 0;
		rt->first++;
	}
}

struct sl__flight *sl__fl(struct sl__router *rt, uint64_t tp)
{
	uint32_t t = (uint32_t)(tp >> 32), p = (uint32_t)tp;
	if (tp == SL__NO_TP || t >= rt->n_routes || p >= rt->n_flight[t])
		return NULL;
	return &rt->flight[t][p];
}

/* An event of partition tp left leg l (answered, refused, or taken back);
 * `served`: 1 accepted there, 0 refused as not its leader, -1 neither. */
static void sl__fl_left(struct sl__router *rt, struct sl__leg *l, uint64_t tp, int served)
{
	struct sl__flight *f = sl__fl(rt, tp);
	if (!f || f->leg != l)
		return;
	if (f->n)
		f->n--;
	if (served >= 0)
		f->confirmed = served;
}

/* May an event of partition tp go to leg l now? */
bool sl__fl_ok(struct sl__router *rt, struct sl__leg *l, uint64_t tp, bool pending)
{
	struct sl__flight *f = sl__fl(rt, tp);
	if (!f)
		return true;
	if (!pending && f->pend)
		return false;
	if (f->leg != l || !f->confirmed)
		return f->n == 0;
	return true;
}

void sl__fl_sent(struct sl__router *rt, struct sl__leg *l, uint64_t ls, uint64_t tp)
{
	struct sl__flight *f = sl__fl(rt, tp);
	l->tp[ls & l->mask] = tp;
	if (f) {
		if (f->leg != l) {
			f->leg = l;
			f->n = 0;
			f->confirmed = false;
		}
		f->n++;
	}
}

/* Answers the application's event `app`. */
void sl__answer(struct sl__router *rt, uint64_t app, const struct sl_client_ack *a)
{
	struct sl_client_ack x = *a;
	x.sequence = app;
	sl__client_deliver(rt->s, &x);
	sl__done(rt, app);
}

/* Event `app` comes back to the router from leg `from`, where it was sent
 * at sequence lseq. */
static int sl__pend_push(struct sl__router *rt, uint64_t app, uint64_t tp, const char *topic,
                         const uint8_t *ev, size_t len, const struct sl__leg *from, uint64_t lseq)
{
	int64_t t = sl__client_topic(rt->s, topic);
	if (t < 0)
		return (int)t;
	if (rt->n_pend == rt->cap_pend) {
		size_t cap = rt->cap_pend ? rt->cap_pend * 2 : 64;
		struct sl__pend *v = realloc(rt->pend, cap * sizeof(*v));
		if (!v)
			return -ENOMEM;
		rt->pend = v;
		rt->cap_pend = cap;
	}
	uint8_t *copy = malloc(len ? len : 1);
	if (!copy)
		return -ENOMEM;
	memcpy(copy, ev, len);
	struct sl__flight *f = sl__fl(rt, tp);
	if (f)
		f->pend++;
	/* In the application's order (its sequences), not in the order they
	 * came back: one refused again by a leader not serving yet must go
	 * before the later ones it had overtaken (seen: it went last and
	 * was stored after newer events of its key). */
	size_t at = rt->n_pend;
	while (at && rt->pend[at - 1].app > app)
		at--;
	memmove(&rt->pend[at + 1], &rt->pend[at], (rt->n_pend - at) * sizeof(rt->pend[0]));
	rt->n_pend++;
	rt->pend[at] = (struct sl__pend){
	    .app = app,
	    .tp = tp,
	    .topic = (uint32_t)t,
	    .gen = rt->refreshes,
	    .since = sl_now_ns(),
	    .ev = copy,
	    .len = len,
	};
	const struct sl_client *fc = from->c;
	if (fc->producer_id && fc->proof_len == SL_CLIENT_PROOF_LEN) {
		rt->pend[at].pid = fc->producer_id;
		rt->pend[at].epoch = fc->epoch;
		rt->pend[at].lseq = lseq;
		memcpy(rt->pend[at].proof, fc->proof, SL_CLIENT_PROOF_LEN);
	}
	rt->refresh_want = true;
	return 0;
}

/* A leg's answer: to the application, or back to the router to resend. */
void sl__on_leg_ack(void *arg, const struct sl_client_ack *a)
{
	struct sl__leg *l = arg;
	struct sl__router *rt = l->rt;
	uint64_t app = l->app[a->sequence & l->mask];
	uint64_t tp = l->tp[a->sequence & l->mask];

	bool refused = a->code == SLUICE__V1__ERROR_CODE__ERR_NOT_LEADER;
	sl__fl_left(rt, l, tp, refused ? 0 : a->status >= 0 && !a->code ? 1 : -1);
	/* The read token goes to the application's client, which outlives
	 * the legs. */
	if (a->status == 0 && !a->dropped && a->offset != SL_CLIENT_OFFSET_UNKNOWN)
		(void)sl__client_token_note(rt->s, l->c->ack_topic, a->partition, a->offset);
	if (!rt->closing && refused && l->c->cb_raw &&
	    sl__pend_push(rt, app, tp, l->c->cb_topic, l->c->cb_raw, l->c->cb_raw_len, l,
	                  a->sequence) == 0)
		return;
	sl__answer(rt, app, a);
}

/* ---- moving events ---------------------------------------------------------- */

struct sl__take_arg {
	struct sl__router *rt;
	struct sl__leg *l;
};

/* A down leg's event goes when Metadata gives its partition to another node. */
static bool sl__take(void *arg, const char *topic, uint64_t seq, const uint8_t *ev, size_t len)
{
	struct sl__take_arg *ta = arg;
	struct sl__router *rt = ta->rt;
	struct sl_event_view v;
	char buf[300];

	uint64_t tp;
	int64_t t = sl__client_topic(rt->s, topic);
	if (t < 0 || sl_event_scan(ev, len, &v) < 0)
		return false;
	const char *to =
	    sl__target(rt, (uint32_t)t, v.aggregate, v.aggregate_len, buf, sizeof(buf), &tp);
	if (!to || !strcmp(to, ta->l->addr))
		return false;
	uint64_t otp = ta->l->tp[seq & ta->l->mask];
	if (sl__pend_push(rt, ta->l->app[seq & ta->l->mask], otp, topic, ev, len, ta->l, seq) < 0)
		return false;
	sl__fl_left(rt, ta->l, otp, -1);
	return true;
}

/* The resume leg that takes pending event p at node `to` under its own
 * identity: one of p's producer id there that can still take p->lseq (in
 * sequence order, within one window of what it holds), or a new one. */
static struct sl__leg *sl__resume_leg(struct sl__router *rt, const char *to,
                                      const struct sl__pend *p)
{
	for (size_t i = 0; i < rt->n_legs; i++) {
		struct sl__leg *l = rt->legs[i];
		if (l->resume && l->c->producer_id == p->pid && !strcmp(l->addr, to) &&
		    l->c->state != SL__FAILED && p->lseq >= l->c->next_seq &&
		    p->lseq - sl__first_seq(l->c) <= l->mask)
			return l;
	}
	return sl__leg_new(rt, to, p);
}

/* Sends pending events that a refresh since their return lets go. */
void sl__place(struct sl__router *rt)
{
	uint64_t now = sl_now_ns(), pass = ++rt->place_pass;
	size_t keep = 0;

	for (size_t i = 0; i < rt->n_pend; i++) {
		struct sl__pend *p = &rt->pend[i];
		struct sl_event_view v;
		char buf[300];
		const char *to = NULL;
		int ret = -EAGAIN;
		uint64_t tp = SL__NO_TP;

		if (p->gen < rt->refreshes && sl_event_scan(p->ev, p->len, &v) == 0)
			to = sl__target(rt, p->topic, v.aggregate, v.aggregate_len, buf,
			                sizeof(buf), &tp);
		struct sl__leg *l = to ? sl__leg_get(rt, to) : NULL;
		/* Sent before: it goes again under the identity it was sent
		 * with (Exactly once across a failover). */
		bool at = l && p->pid;
		if (at)
			l = sl__resume_leg(rt, to, p);
		struct sl__flight *pf = sl__fl(rt, p->tp);
		uint64_t ls = p->lseq;
		/* Not while its partition still has events in flight on the old
		 * leader: they come back after it and must go before anything
		 * newer. Nor after an older pending one of its partition that
		 * this pass keeps (one that came back since the last refresh
		 * waits for the next: a newer one that came back earlier must
		 * not overtake it; seen: e2e_cluster_old_leader_truncates, the
		 * cut's refusals arriving after the admission refusals of
		 * newer events). */
		if (l && (!pf || pf->held != pass) && sl__fl_ok(rt, l, p->tp, true))
			ret = at ? sl__client_produce_at(l->c, rt->s->topics[p->topic], p->ev,
			                                 p->len, p->lseq)
			         : sl_client_produce_encoded(l->c, rt->s->topics[p->topic], p->ev,
			                                     p->len, &ls);
		if (ret == 0) {
			struct sl__flight *f = sl__fl(rt, p->tp);
			if (f && f->pend)
				f->pend--;
			l->app[ls & l->mask] = p->app;
			sl__fl_sent(rt, l, ls, p->tp);
			rt->s->st.resent++;
		} else if (ret == -EAGAIN &&
		           now - p->since < (uint64_t)rt->s->o.ack_timeout_ms * SL__NS_PER_MS) {
			if (pf)
				pf->held = pass;
			rt->pend[keep++] = *p;
			continue;
		} else {
			if (ret == -EAGAIN)
				ret = -SL_ENOT_LEADER;
			struct sl__flight *f = sl__fl(rt, p->tp);
			if (f && f->pend)
				f->pend--;
			struct sl_client_ack a = {
			    .status = ret,
			    .code =
			        ret == -SL_ENOT_LEADER ? SLUICE__V1__ERROR_CODE__ERR_NOT_LEADER : 0,
			    .message = "",
			};
			sl__answer(rt, p->app, &a);
		}
		free(p->ev);
	}
	rt->n_pend = keep;
}

/* Metadata again for every topic in use, then the events it lets move. */
/* Another node leads, as Metadata now says, a partition leg l has events
 * in flight for (a leader paused or cut off: SL__SILENT_MS). */
static bool sl__leg_moved(const struct sl__router *rt, const struct sl__leg *l)
{
	for (uint32_t t = 0; t < rt->n_routes; t++) {
		if (!rt->known[t] || !rt->routes[t].cluster)
			continue;
		for (uint32_t p = 0; p < rt->n_flight[t] && p < rt->routes[t].n_parts; p++) {
			const struct sl__flight *fl = &rt->flight[t][p];
			const char *to = rt->routes[t].p[p].native;
			if (fl->leg == l && fl->n && to && strcmp(to, l->addr))
				return true;
		}
	}
	return false;
}

void sl__refresh(struct sl__router *rt)
{
	uint64_t now = sl_now_ns();
	bool ok = true;

	for (uint32_t t = 0; t < rt->n_routes; t++)
		if (rt->known[t] && sl__route_topic(rt, t) < 0)
			ok = false;
	rt->refreshes++;
	rt->refresh_want = false;
	bool unresolved = false;
	for (size_t i = 0; ok && i < rt->n_legs; i++) {
		if (!sl__leg_silent(rt->legs[i], now))
			continue;
		if (sl__leg_moved(rt, rt->legs[i]))
			sl__client_abandon(rt->legs[i]->c,
			                   "no ack for a while and Metadata names another leader");
		else
			unresolved = true;
	}
	/* The server that answered may be the silent leader itself, cut off
	 * from etcd but not from us: it names itself until it hears of its
	 * successor. The next refresh asks another one first (an answer
	 * naming an older epoch never replaces a newer one: keep_newer). */
	if (unresolved && rt->n_servers > 1)
		rt->good = (rt->good + 1) % rt->n_servers;
	for (size_t i = 0; ok && i < rt->n_legs; i++) {
		struct sl__leg *l = rt->legs[i];
		if (!sl__leg_down(l))
			continue;
		rt->refresh_want = true; /* until it is back */
		struct sl__take_arg ta = {rt, l};
		sl__client_take(l->c, sl__take, &ta);
	}
	sl__place(rt);
	if (!ok || rt->n_pend)
		rt->refresh_want = true;
	if (rt->refresh_want) {
		uint64_t ms = SL__REFRESH_MIN_MS, cap = rt->s->o.backoff_max_ms;
		if (cap > SL__REFRESH_MAX_MS)
			cap = SL__REFRESH_MAX_MS;
		for (uint32_t i = 0; i < rt->refresh_fail && ms < cap; i++)
			ms *= 2;
		if (ms > cap)
			ms = cap;
		rt->refresh_fail++;
		rt->refresh_at = now + ms * SL__NS_PER_MS;
	} else {
		rt->refresh_fail = 0;
		rt->refresh_at = now + SL__REFRESH_MIN_MS * SL__NS_PER_MS;
	}
}
