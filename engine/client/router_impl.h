/*
 * libsluice's router (cluster mode), inside: the state shared by router.c
 * (Metadata, legs, the loop, the public calls) and router_move.c (events
 * that change leader: pending, the order per partition, refreshes). Both
 * run on the application's thread; nothing here is shared with another.
 */
#ifndef SL_CLIENT_ROUTER_IMPL_H
#define SL_CLIENT_ROUTER_IMPL_H

#include "client/client_impl.h"
#include "sluice/consumer.h"

/* The shortest interval between two Metadata refreshes; doubled per
 * refresh while events wait for a leader, up to backoff_max_ms and at most
 * SL__REFRESH_MAX_MS. 100 ms: an election in etcd takes a session TTL
 * (seconds), so faster asks only load the nodes. 500 ms: the new leader is
 * found within half a second of its election (with backoff_max_ms, 2 s,
 * a producer found it about 3 s after: e2e_failover_leader_kill9's longest
 * pause between acks was 5.1 s for a 2 s TTL). */
#define SL__REFRESH_MIN_MS 100
#define SL__REFRESH_MAX_MS 500
/* Per server tried for Metadata: a dead node must not hold a producer for
 * the whole connect timeout when others can answer. */
#define SL__META_TIMEOUT_MS 1000
/* A leg whose oldest unanswered event has waited this long asks Metadata
 * (at the refresh pace above); when another node now leads a partition it
 * has events in flight for, the leg is dropped as a failed one and those
 * events move under their identity. A leader that is paused or cut off by
 * the network sends no RST: its leg used to wait until the node came back
 * or ack_timeout_ms (30 s) passed. 1 s: well above an ack's time under
 * load here (p99 tens of ms), below any session_ttl a cluster can hold. */
#define SL__SILENT_MS 1000

struct sl__leg {
	struct sl__router *rt;
	struct sl_client *c;
	char addr[300]; /* "host:port" as Metadata names it */
	uint64_t *app;  /* the router's sequence by leg sequence & mask */
	uint64_t *tp;   /* (topic << 32 | partition) of each, SL__NO_TP outside cluster mode */
	uint64_t mask;
	/* A resume leg (router_move.c, "Exactly once across a failover"):
	 * another leg's producer id and epoch on this node, resending that
	 * leg's events at their own sequences; never given new events, and
	 * closed once everything on it is answered. */
	bool resume;
};

#define SL__NO_TP UINT64_MAX

/* A partition's events on their way (see "Order per partition"). */
struct sl__flight {
	struct sl__leg *leg; /* where its in-flight events are */
	uint32_t n;          /* in flight there, unanswered */
	uint32_t pend;       /* refused or taken back, waiting to be resent */
	bool confirmed;      /* `leg` accepted one of them: it serves the partition */
	uint64_t held;       /* the sl__place pass that kept one of its pending events */
};

struct sl__pend {
	uint64_t app;
	uint64_t tp;
	uint32_t topic; /* index in the router client's topic table */
	uint64_t gen;   /* refreshes seen when it came back: placed after the next */
	uint64_t since;
	uint8_t *ev;
	size_t len;
	/* The identity it was last sent under: the leg's producer id (0: it
	 * never reached a server that gave one), epoch, sequence and the id's
	 * proof. A resend elsewhere keeps it (a resume leg). */
	uint64_t pid;
	uint32_t epoch;
	uint64_t lseq;
	uint8_t proof[SL_CLIENT_PROOF_LEN];
};

struct sl__router {
	struct sl_client *s; /* the application's client */
	struct sl__hostport *servers;
	size_t n_servers, good; /* the bootstrap server that answered last */
	struct sl_client_opts lo;
	struct sl__leg **legs;
	size_t n_legs;
	struct sl__route *routes; /* by topic index; known[t] once asked */
	bool *known;
	struct sl__flight **flight; /* by topic index, routes[t].n_parts each */
	uint32_t *n_flight;
	uint32_t n_routes;
	struct sl__pend *pend;
	size_t n_pend, cap_pend;
	uint8_t *done; /* answered, by sequence & wmask, from `first` */
	uint64_t wmask, first, next_seq;
	uint64_t refresh_at, refreshes;
	uint64_t place_pass; /* sl__place calls, from 1 */
	/* s->answered as the last sl_client_poll returned: answers that came
	 * in another call (a nonblocking produce turns the legs when it finds
	 * the window full) are counted by the next poll, else an application
	 * waiting on sl_client_fd for what it already read waits forever. */
	uint64_t answered_told;
	uint32_t refresh_fail;
	bool refresh_want;
	bool closing;
	int epfd;
};

static inline uint64_t sl__pow2(uint64_t v)
{
	uint64_t r = 1;
	while (r < v)
		r *= 2;
	return r;
}

/* router.c */
int sl__route_topic(struct sl__router *rt, uint32_t t);
struct sl__leg *sl__leg_get(struct sl__router *rt, const char *addr);
/* A new leg to addr; `as` non-NULL: a resume leg under its identity. */
struct sl__leg *sl__leg_new(struct sl__router *rt, const char *addr, const struct sl__pend *as);
const char *sl__default_addr(struct sl__router *rt, char *buf, size_t cap);
const char *sl__target(struct sl__router *rt, uint32_t t, const void *key, size_t len, char *buf,
                       size_t cap, uint64_t *tp);
bool sl__leg_down(const struct sl__leg *l);
/* When the leg's oldest unanswered event will have waited SL__SILENT_MS
 * (UINT64_MAX: not connected, or nothing unanswered); silent from then. */
uint64_t sl__leg_silent_at(const struct sl__leg *l);
bool sl__leg_silent(const struct sl__leg *l, uint64_t now);

/* router_move.c */
struct sl__flight *sl__fl(struct sl__router *rt, uint64_t tp);
bool sl__fl_ok(struct sl__router *rt, struct sl__leg *l, uint64_t tp, bool pending);
void sl__fl_sent(struct sl__router *rt, struct sl__leg *l, uint64_t ls, uint64_t tp);
void sl__answer(struct sl__router *rt, uint64_t app, const struct sl_client_ack *a);
void sl__on_leg_ack(void *arg, const struct sl_client_ack *a);
void sl__place(struct sl__router *rt);
void sl__refresh(struct sl__router *rt);

#endif
