/*
 * The HTTP port's connections: admitted or over a limit, their header
 * deadlines, and the watcher that shuts the ones that miss them. http.h
 * (top) has the policy; this file is its mechanism on MHD's callbacks.
 *
 * Why not MHD's own options alone: MHD_OPTION_CONNECTION_LIMIT and
 * MHD_OPTION_PER_IP_CONNECTION_LIMIT close a connection at accept without
 * a word (the client sees a reset, and /healthz fails with everything
 * else), and MHD_OPTION_CONNECTION_TIMEOUT measures only inactivity. MHD's
 * connection limit stays as the hard bound (the limit plus the reserve),
 * its timeout as the idle timeout; the rest is here.
 *
 * Safety of the watcher's shutdown(fd): MHD reports a connection closed
 * (MHD_CONNECTION_NOTIFY_CLOSED) before it closes its socket, and the
 * entry leaves the live list then, under the mutex the watcher holds while
 * it shuts, so an fd is never shut after it was closed (and reused).
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "base/base.h"
#include "http/http_impl.h"
#include "net/net.h"

enum sl__hstate {
	SL__H_ADMITTED, /* holds a count of n_admitted and of per_ip */
	SL__H_OVER,     /* a reserve slot: one request, 503 unless health */
	SL__H_CANNED,   /* answered 503 at connect; closed when it has spoken */
};

enum sl__hwhy { SL__WHY_MAX, SL__WHY_PER_IP };

struct sl__hconn {
	struct sl__hconn *next, **pprev; /* live list; pprev NULL: free */
	int fd;
	uint8_t state;
	uint8_t why;   /* over or canned: which limit */
	bool ip_known; /* ip is a client address (held in per_ip or over_ip) */
	bool waiting;  /* a request header is awaited: deadline applies */
	bool shut;     /* the watcher shut it */
	uint64_t deadline_ns;
	struct sl_ipkey ip;
};

struct sl__hconns {
	struct sl_http_limits lim;
	pthread_mutex_t mu;
	pthread_cond_t cv; /* the watcher's stop */
	pthread_t watcher;
	bool watcher_started, stop;
	/* Under mu. */
	struct sl__hconn *live;
	struct sl__hconn **free_v; /* free entries, a stack */
	uint32_t n_free, n_slots, n_admitted;
	struct sl__hconn *slab;
	struct sl_iplimit *per_ip;  /* admitted connections per address */
	struct sl_iplimit *over_ip; /* reserve slots per address */
	/* Figures, relaxed. */
	_Atomic uint64_t open, refused[2], over_served, header_timeouts;
};

static const char *const sl__why_key[] = {"http_max_connections", "max_connections_per_ip"};

/* ---- life cycle ----------------------------------------------------------- */

static void *sl__hwatch(void *arg);

int sl__hconns_create(const struct sl_http_limits *lim, struct sl__hconns **out)
{
	struct sl__hconns *hc = calloc(1, sizeof(*hc));
	pthread_condattr_t ca;
	int r = -ENOMEM;

	*out = NULL;
	if (!hc)
		return -ENOMEM;
	if (lim)
		hc->lim = *lim;
	if (!hc->lim.max_connections)
		hc->lim.max_connections = SL_HTTP_MAX_CONNS;
	if (!hc->lim.max_connections_per_ip ||
	    hc->lim.max_connections_per_ip > hc->lim.max_connections)
		hc->lim.max_connections_per_ip = hc->lim.max_connections;
	if (!hc->lim.idle_timeout_ms)
		hc->lim.idle_timeout_ms = SL_HTTP_IDLE_TIMEOUT_S * 1000u;
	if (!hc->lim.header_timeout_ms)
		hc->lim.header_timeout_ms = SL_HTTP_HEADER_TIMEOUT_MS;
	hc->n_slots = hc->lim.max_connections + SL_HTTP_RESERVE;
	hc->slab = calloc(hc->n_slots, sizeof(*hc->slab));
	hc->free_v = calloc(hc->n_slots, sizeof(*hc->free_v));
	if (!hc->slab || !hc->free_v)
		goto fail;
	for (uint32_t i = 0; i < hc->n_slots; i++)
		hc->free_v[hc->n_free++] = &hc->slab[hc->n_slots - 1 - i];
	if ((r = sl_iplimit_create(hc->n_slots, &hc->per_ip)) < 0 ||
	    (r = sl_iplimit_create(hc->n_slots, &hc->over_ip)) < 0)
		goto fail;
	pthread_mutex_init(&hc->mu, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&hc->cv, &ca);
	pthread_condattr_destroy(&ca);
	r = -pthread_create(&hc->watcher, NULL, sl__hwatch, hc);
	if (r < 0) {
		pthread_cond_destroy(&hc->cv);
		pthread_mutex_destroy(&hc->mu);
		goto fail;
	}
	hc->watcher_started = true;
	*out = hc;
	return 0;
fail:
	sl_iplimit_destroy(hc->per_ip);
	sl_iplimit_destroy(hc->over_ip);
	free(hc->slab);
	free(hc->free_v);
	free(hc);
	return r;
}

void sl__hconns_destroy(struct sl__hconns *hc)
{
	if (!hc)
		return;
	pthread_mutex_lock(&hc->mu);
	hc->stop = true;
	pthread_cond_signal(&hc->cv);
	pthread_mutex_unlock(&hc->mu);
	pthread_join(hc->watcher, NULL);
	pthread_cond_destroy(&hc->cv);
	pthread_mutex_destroy(&hc->mu);
	sl_iplimit_destroy(hc->per_ip);
	sl_iplimit_destroy(hc->over_ip);
	free(hc->slab);
	free(hc->free_v);
	free(hc);
}

unsigned sl__hconns_slots(const struct sl__hconns *hc)
{
	return hc->n_slots;
}

unsigned sl__hconns_idle_s(const struct sl__hconns *hc)
{
	return (hc->lim.idle_timeout_ms + 999u) / 1000u;
}

/* ---- the watcher ---------------------------------------------------------- */

/* Every 100 ms: shut the connections whose request header is late. A
 * scan of at most n_slots entries under the mutex; a fixed period rather
 * than a timer per deadline because deadlines are seconds long and a tenth
 * of a second late is nothing. */
static void *sl__hwatch(void *arg)
{
	struct sl__hconns *hc = arg;

	pthread_setname_np(pthread_self(), "sl-http-watch");
	pthread_mutex_lock(&hc->mu);
	while (!hc->stop) {
		struct timespec ts;
		clock_gettime(CLOCK_MONOTONIC, &ts);
		ts.tv_nsec += 100 * 1000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&hc->cv, &hc->mu, &ts);
		uint64_t now = sl_now_ns();
		for (struct sl__hconn *e = hc->live; e; e = e->next)
			if (e->waiting && !e->shut && e->deadline_ns <= now) {
				/* Wakes its thread (EOF on its socket); MHD then
				 * closes it and tells us (NOTIFY_CLOSED). */
				shutdown(e->fd, SHUT_RDWR);
				e->shut = true;
				if (e->state == SL__H_ADMITTED)
					atomic_fetch_add_explicit(&hc->header_timeouts, 1,
					                          memory_order_relaxed);
			}
	}
	pthread_mutex_unlock(&hc->mu);
	return NULL;
}

/* ---- MHD's callbacks -------------------------------------------------------- */

/* The 503 body and headers, for a canned answer written at connect. */
static int sl__h503_text(char *buf, size_t cap, char *body, size_t body_cap, uint8_t why,
                         const struct sl__hconns *hc, const struct sl_ipkey *ip)
{
	char a[64];
	int n;

	if (why == SL__WHY_PER_IP) {
		sl_ipkey_str(ip, a, sizeof(a));
		n = snprintf(body, body_cap,
		             "{\"error\":\"unavailable\",\"message\":\"too many connections from "
		             "%s: %u (limits.max_connections_per_ip); retry after %d s\"}\n",
		             a, hc->lim.max_connections_per_ip, SL_HTTP_RETRY_AFTER_S);
	} else {
		n = snprintf(body, body_cap,
		             "{\"error\":\"unavailable\",\"message\":\"too many connections: %u "
		             "(limits.http_max_connections); retry after %d s\"}\n",
		             hc->lim.max_connections, SL_HTTP_RETRY_AFTER_S);
	}
	if (n < 0 || (size_t)n >= body_cap)
		return -1;
	if (!buf)
		return n;
	return snprintf(buf, cap,
	                "HTTP/1.1 503 Service Unavailable\r\n"
	                "Retry-After: %d\r\n"
	                "Content-Type: application/json\r\n"
	                "Cache-Control: no-store\r\n"
	                "Connection: close\r\n"
	                "Content-Length: %d\r\n\r\n%s",
	                SL_HTTP_RETRY_AFTER_S, n, body);
}

static void sl__hstarted(struct sl__hconns *hc, struct MHD_Connection *c, void **ctx)
{
	const union MHD_ConnectionInfo *fi =
	    MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
	const union MHD_ConnectionInfo *ai =
	    MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	uint64_t now = sl_now_ns();

	pthread_mutex_lock(&hc->mu);
	/* MHD never opens more than n_slots (its connection limit). */
	struct sl__hconn *e = hc->n_free ? hc->free_v[--hc->n_free] : NULL;
	if (!e) {
		pthread_mutex_unlock(&hc->mu);
		*ctx = NULL;
		return;
	}
	memset(e, 0, sizeof(*e));
	e->fd = fi ? fi->connect_fd : -1;
	if (ai && ai->client_addr) {
		const struct sockaddr *sa = ai->client_addr;
		socklen_t len = sa->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6)
		                                          : sizeof(struct sockaddr_in);
		e->ip_known = sl_ipkey_of(sa, len, &e->ip) == 0;
	}
	e->waiting = true;
	if (hc->n_admitted < hc->lim.max_connections &&
	    (!e->ip_known ||
	     sl_iplimit_acquire(hc->per_ip, &e->ip, hc->lim.max_connections_per_ip))) {
		e->state = SL__H_ADMITTED;
		hc->n_admitted++;
		e->deadline_ns = now + (uint64_t)hc->lim.header_timeout_ms * 1000000u;
	} else {
		e->why = hc->n_admitted >= hc->lim.max_connections ? SL__WHY_MAX : SL__WHY_PER_IP;
		e->deadline_ns = now + (uint64_t)SL_HTTP_OVER_HEADER_MS * 1000000u;
		e->state = SL__H_OVER;
		if (e->ip_known &&
		    !sl_iplimit_acquire(hc->over_ip, &e->ip, SL_HTTP_RESERVE_PER_IP)) {
			e->ip_known = false; /* holds no count */
			e->state = SL__H_CANNED;
		}
	}
	e->next = hc->live;
	if (hc->live)
		hc->live->pprev = &e->next;
	e->pprev = &hc->live;
	hc->live = e;
	pthread_mutex_unlock(&hc->mu);
	atomic_fetch_add_explicit(&hc->open, 1, memory_order_relaxed);
	*ctx = e;

	if (e->state == SL__H_CANNED && e->fd >= 0) {
		/* Its thread does not exist yet (MHD starts it after this
		 * call), so the socket is ours for one write: a fresh socket's
		 * send buffer has room. The write side is then shut, so what MHD
		 * would send goes nowhere, while MHD still reads the request
		 * (a close with unread input would reset the connection and
		 * could destroy the answer before the client reads it). */
		char buf[768], body[384];
		int n = sl__h503_text(buf, sizeof(buf), body, sizeof(body), e->why, hc, &e->ip);
		if (n > 0 && (size_t)n < sizeof(buf) &&
		    send(e->fd, buf, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT) < 0) {
			/* it left already */
		}
		shutdown(e->fd, SHUT_WR);
		atomic_fetch_add_explicit(&hc->refused[e->why], 1, memory_order_relaxed);
	}
}

static void sl__hclosed(struct sl__hconns *hc, struct sl__hconn *e)
{
	pthread_mutex_lock(&hc->mu);
	*e->pprev = e->next;
	if (e->next)
		e->next->pprev = e->pprev;
	e->pprev = NULL;
	if (e->state == SL__H_ADMITTED) {
		hc->n_admitted--;
		if (e->ip_known)
			sl_iplimit_release(hc->per_ip, &e->ip);
	} else if (e->state == SL__H_OVER && e->ip_known) {
		sl_iplimit_release(hc->over_ip, &e->ip);
	}
	hc->free_v[hc->n_free++] = e;
	pthread_mutex_unlock(&hc->mu);
	atomic_fetch_sub_explicit(&hc->open, 1, memory_order_relaxed);
}

void sl__hconns_notify(void *cls, struct MHD_Connection *c, void **socket_context,
                       enum MHD_ConnectionNotificationCode toe)
{
	struct sl__hconns *hc = cls;

	if (toe == MHD_CONNECTION_NOTIFY_STARTED)
		sl__hstarted(hc, c, socket_context);
	else if (toe == MHD_CONNECTION_NOTIFY_CLOSED && *socket_context)
		sl__hclosed(hc, *socket_context);
}

static struct sl__hconn *sl__hentry(struct MHD_Connection *c)
{
	const union MHD_ConnectionInfo *i =
	    MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
	return i ? i->socket_context : NULL;
}

void sl__hconns_completed(void *cls, struct MHD_Connection *c, void **req,
                          enum MHD_RequestTerminationCode toe)
{
	struct sl__hconns *hc = cls;
	struct sl__hconn *e = sl__hentry(c);

	(void)req;
	(void)toe;
	if (!e)
		return;
	pthread_mutex_lock(&hc->mu);
	if (e->state == SL__H_ADMITTED) {
		/* The next request's header is due within the idle timeout. */
		e->waiting = true;
		e->deadline_ns = sl_now_ns() + (uint64_t)hc->lim.idle_timeout_ms * 1000000u;
	} else if (!e->shut) {
		/* An over connection had its one answer (all of it sent: MHD
		 * reports completion after the last byte): end it with a FIN;
		 * MHD closes on the client's. */
		shutdown(e->fd, SHUT_WR);
		e->waiting = true;
		e->deadline_ns = sl_now_ns() + (uint64_t)SL_HTTP_OVER_HEADER_MS * 1000000u;
		/* Its address's share of the spare slots comes back now, not at
		 * the close: a prober that connects again at once (a load
		 * balancer, or several behind one address) found it still held
		 * by connections that only waited for their close, and got the
		 * canned 503 (e2e slowloris_health, 1 run in 5). */
		if (e->state == SL__H_OVER && e->ip_known) {
			sl_iplimit_release(hc->over_ip, &e->ip);
			e->ip_known = false;
		}
	}
	pthread_mutex_unlock(&hc->mu);
}

bool sl__hconns_admit(struct sl__hconns *hc, struct MHD_Connection *c, const char *url,
                      enum MHD_Result *ret)
{
	struct sl__hconn *e = sl__hentry(c);

	if (!e)
		return false;
	pthread_mutex_lock(&hc->mu);
	e->waiting = false;
	uint8_t state = e->state, why = e->why;
	struct sl_ipkey ip = e->ip;
	pthread_mutex_unlock(&hc->mu);
	if (state == SL__H_ADMITTED)
		return false;
	if (state == SL__H_CANNED) {
		*ret = MHD_NO; /* answered at connect; close */
		return true;
	}
	if (!strcmp(url, "/healthz") || !strcmp(url, "/metrics")) {
		atomic_fetch_add_explicit(&hc->over_served, 1, memory_order_relaxed);
		return false;
	}
	char body[384];
	int n = sl__h503_text(NULL, 0, body, sizeof(body), why, hc, &ip);
	struct MHD_Response *resp =
	    n > 0 ? MHD_create_response_from_buffer((size_t)n, body, MHD_RESPMEM_MUST_COPY) : NULL;
	atomic_fetch_add_explicit(&hc->refused[why], 1, memory_order_relaxed);
	if (!resp) {
		*ret = MHD_NO;
		return true;
	}
	char retry[16];
	snprintf(retry, sizeof(retry), "%d", SL_HTTP_RETRY_AFTER_S);
	enum MHD_Result ok =
	    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
	if (ok == MHD_YES)
		ok = MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
	if (ok == MHD_YES)
		ok = MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER, retry);
	if (ok == MHD_YES)
		ok = MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION, "close");
	if (ok == MHD_YES)
		ok = MHD_queue_response(c, MHD_HTTP_SERVICE_UNAVAILABLE, resp);
	MHD_destroy_response(resp);
	*ret = ok;
	return true;
}

/* ---- figures ---------------------------------------------------------------- */

void sl__hconns_stats(struct sl__hconns *hc, struct sl_http_stats *out)
{
	out->open = atomic_load_explicit(&hc->open, memory_order_relaxed);
	out->refused_max = atomic_load_explicit(&hc->refused[SL__WHY_MAX], memory_order_relaxed);
	out->refused_per_ip =
	    atomic_load_explicit(&hc->refused[SL__WHY_PER_IP], memory_order_relaxed);
	out->over_served = atomic_load_explicit(&hc->over_served, memory_order_relaxed);
	out->header_timeouts = atomic_load_explicit(&hc->header_timeouts, memory_order_relaxed);
}

void sl__hconns_metrics_append(struct sl__hconns *hc, struct sl_http_reply *r)
{
	struct sl_http_stats st;
	char text[1536];

	if (!r->body)
		return;
	sl__hconns_stats(hc, &st);
	int n = snprintf(
	    text, sizeof(text),
	    "# HELP sluice_http_connections Open HTTP connections (admitted and over a limit).\n"
	    "# TYPE sluice_http_connections gauge\n"
	    "sluice_http_connections %" PRIu64 "\n"
	    "# HELP sluice_http_refused_total HTTP requests answered 503 for a connection over "
	    "a limit.\n"
	    "# TYPE sluice_http_refused_total counter\n"
	    "sluice_http_refused_total{limit=\"%s\"} %" PRIu64 "\n"
	    "sluice_http_refused_total{limit=\"%s\"} %" PRIu64 "\n"
	    "# HELP sluice_http_over_limit_served_total /healthz and /metrics answered on a "
	    "connection over a limit.\n"
	    "# TYPE sluice_http_over_limit_served_total counter\n"
	    "sluice_http_over_limit_served_total %" PRIu64 "\n"
	    "# HELP sluice_http_header_timeouts_total HTTP connections closed for a request "
	    "header not complete in time.\n"
	    "# TYPE sluice_http_header_timeouts_total counter\n"
	    "sluice_http_header_timeouts_total %" PRIu64 "\n",
	    st.open, sl__why_key[SL__WHY_MAX], st.refused_max, sl__why_key[SL__WHY_PER_IP],
	    st.refused_per_ip, st.over_served, st.header_timeouts);
	if (n <= 0 || (size_t)n >= sizeof(text))
		return;
	char *b = realloc(r->body, r->len + (size_t)n);
	if (!b)
		return;
	memcpy(b + r->len, text, (size_t)n);
	r->body = b;
	r->len += (size_t)n;
}
