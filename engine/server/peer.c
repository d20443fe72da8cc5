/*
 * GET requests to other nodes' HTTP ports (server.h, "Asking peers"): the
 * failover controller's questions to the replicas and the quorum reads'
 * fan-out share this one way of asking, so both keep the same bounds (a
 * connect bound, a whole-request bound), the same node-to-node token and
 * the same cap on what an answer may make us hold.
 *
 * Requests of one call run in parallel on one libcurl multi handle, driven
 * on the calling thread (curl_multi_poll): no thread of ours is created,
 * and nothing here runs on a reactor. Multi handles, with their easy
 * handles and their connection caches, are kept in a small pool between
 * calls, so a quorum read reuses its keep-alive connections to the peers
 * instead of a TCP handshake per replica per read. The price on the peer:
 * each kept connection holds one of its HTTP threads (thread per
 * connection) until its idle timeout, and counts against its
 * http_max_connections and max_connections_per_ip, so at most
 * SL__PEERS_POOL idle ones per peer from each node; a limit set below what
 * a node's concurrent quorum reads need gets them refused (503), which
 * the read counts as no answer.
 *
 * Threads: any thread but a reactor's; the pool under its mutex, a run is
 * its caller's alone.
 */
#include <curl/curl.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "server/server.h"
#include "json/json.h"

/* Idle multi handles kept for reuse: one per HTTP thread running a quorum
 * read at once is enough to keep their connections warm; beyond that a
 * burst pays for its handshakes. */
#define SL__PEERS_POOL 16

struct sl__peer_slot {
	CURLM *m;
	CURL *e[SL_PEERS_MAX];
	struct sl__peer_slot *next;
};

struct sl_peers {
	pthread_mutex_t mu;
	struct sl__peer_slot *free;
	uint32_t n_free;
};

struct sl_peer_run {
	struct sl_peers *ps;
	struct sl__peer_slot *slot;
	struct sl_peer_get *g;
	size_t n;
	size_t running;
	struct curl_slist *hdr;
};

int sl__peers_create(struct sl_peers **out)
{
	struct sl_peers *ps = calloc(1, sizeof(*ps));
	if (!ps)
		return -ENOMEM;
	pthread_mutex_init(&ps->mu, NULL);
	*out = ps;
	return 0;
}

static void sl__peer_slot_free(struct sl__peer_slot *s)
{
	for (size_t i = 0; i < SL_PEERS_MAX; i++)
		if (s->e[i])
			curl_easy_cleanup(s->e[i]);
	if (s->m)
		curl_multi_cleanup(s->m);
	free(s);
}

void sl__peers_destroy(struct sl_peers *ps)
{
	if (!ps)
		return;
	while (ps->free) {
		struct sl__peer_slot *s = ps->free;
		ps->free = s->next;
		sl__peer_slot_free(s);
	}
	pthread_mutex_destroy(&ps->mu);
	free(ps);
}

static size_t sl__peer_body(char *p, size_t size, size_t n, void *arg)
{
	struct sl_peer_get *g = arg;
	size_t len = size * n;
	if (g->body.len + len > g->max_body || sl_json_buf_put_raw(&g->body, p, len) < 0)
		return 0; /* curl ends the transfer: CURLE_WRITE_ERROR */
	return len;
}

int sl__peers_begin(struct sl_peers *ps, struct sl_peer_get *g, size_t n, const char *token,
                    struct sl_peer_run **out)
{
	struct sl_peer_run *run;
	int ret = -ENOMEM;

	*out = NULL;
	if (n > SL_PEERS_MAX)
		return -EINVAL;
	if (!(run = calloc(1, sizeof(*run))))
		return -ENOMEM;
	run->ps = ps;
	run->g = g;
	run->n = n;
	pthread_mutex_lock(&ps->mu);
	run->slot = ps->free;
	if (run->slot) {
		ps->free = run->slot->next;
		ps->n_free--;
	}
	pthread_mutex_unlock(&ps->mu);
	if (!run->slot) {
		if (!(run->slot = calloc(1, sizeof(*run->slot))) ||
		    !(run->slot->m = curl_multi_init()))
			goto fail;
	}
	if (token && token[0]) {
		char h[600];
		snprintf(h, sizeof(h), "Authorization: Bearer %s", token);
		if (!(run->hdr = curl_slist_append(NULL, h)))
			goto fail;
	}
	for (size_t i = 0; i < n; i++) {
		CURL **e = &run->slot->e[i];
		g[i].status = 0;
		g[i].err = 0;
		g[i].done = false;
		g[i].started = false;
		g[i].body.len = 0;
		if (!g[i].url) {
			g[i].done = true; /* nothing to ask: no address known */
			g[i].err = CURLE_URL_MALFORMAT;
			continue;
		}
		if (!*e && !(*e = curl_easy_init()))
			goto fail;
		curl_easy_reset(*e);
		curl_easy_setopt(*e, CURLOPT_URL, g[i].url);
		curl_easy_setopt(*e, CURLOPT_NOSIGNAL, 1L);
		curl_easy_setopt(*e, CURLOPT_PROXY, ""); /* a peer: never through $http_proxy */
		curl_easy_setopt(*e, CURLOPT_CONNECTTIMEOUT_MS, (long)g[i].connect_ms);
		curl_easy_setopt(*e, CURLOPT_TIMEOUT_MS, (long)g[i].timeout_ms);
		curl_easy_setopt(*e, CURLOPT_WRITEFUNCTION, sl__peer_body);
		curl_easy_setopt(*e, CURLOPT_WRITEDATA, &g[i]);
		curl_easy_setopt(*e, CURLOPT_PRIVATE, &g[i]);
		if (run->hdr)
			curl_easy_setopt(*e, CURLOPT_HTTPHEADER, run->hdr);
		if (curl_multi_add_handle(run->slot->m, *e) != CURLM_OK)
			goto fail;
		g[i].started = true;
		run->running++;
	}
	/* Sends what can go at once (connections, requests), so that the
	 * peers work while the caller does its own part. */
	int still = 0;
	curl_multi_perform(run->slot->m, &still);
	*out = run;
	return 0;
fail:
	sl__peers_end(run);
	return ret;
}

/* Collects finished transfers into their sl_peer_get. */
static void sl__peers_collect(struct sl_peer_run *run)
{
	CURLMsg *msg;
	int left;

	while ((msg = curl_multi_info_read(run->slot->m, &left))) {
		struct sl_peer_get *g = NULL;
		if (msg->msg != CURLMSG_DONE)
			continue;
		curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&g);
		if (!g || g->done)
			continue;
		g->err = (int)msg->data.result;
		if (msg->data.result == CURLE_OK)
			curl_easy_getinfo(msg->easy_handle, CURLINFO_RESPONSE_CODE, &g->status);
		g->done = true;
		run->running--;
		curl_multi_remove_handle(run->slot->m, msg->easy_handle);
	}
}

int sl__peers_wait(struct sl_peer_run *run, uint64_t deadline_ns,
                   bool (*enough)(void *arg, const struct sl_peer_get *g, size_t n), void *arg)
{
	if (!run)
		return -EINVAL;
	for (;;) {
		int still = 0;
		curl_multi_perform(run->slot->m, &still);
		sl__peers_collect(run);
		if (!run->running || (enough && enough(arg, run->g, run->n)))
			return 0;
		uint64_t now = sl_now_ns();
		if (now >= deadline_ns)
			return -ETIMEDOUT;
		uint64_t left_ms = (deadline_ns - now + 999999u) / 1000000u;
		/* Each request also has its own bound (timeout_ms); this one is
		 * the caller's for all of them together. Slices of 100 ms at
		 * most, so that `enough` also sees a stop in time. */
		curl_multi_poll(run->slot->m, NULL, 0, left_ms > 100 ? 100 : (int)left_ms, NULL);
	}
}

void sl__peers_end(struct sl_peer_run *run)
{
	if (!run)
		return;
	struct sl__peer_slot *s = run->slot;
	if (s) {
		/* Unfinished transfers are abandoned (their connections closed
		 * by curl); finished ones left their connection in the cache. */
		for (size_t i = 0; i < run->n; i++)
			if (run->g[i].started && !run->g[i].done && s->e[i])
				curl_multi_remove_handle(s->m, s->e[i]);
		if (s->m) {
			pthread_mutex_lock(&run->ps->mu);
			if (run->ps->n_free < SL__PEERS_POOL) {
				s->next = run->ps->free;
				run->ps->free = s;
				run->ps->n_free++;
				s = NULL;
			}
			pthread_mutex_unlock(&run->ps->mu);
		}
		if (s)
			sl__peer_slot_free(s);
	}
	curl_slist_free_all(run->hdr);
	free(run);
}

int sl__peers_get(struct sl_peers *ps, struct sl_peer_get *g, size_t n, const char *token,
                  uint64_t deadline_ns)
{
	struct sl_peer_run *run;
	int ret = sl__peers_begin(ps, g, n, token, &run);
	if (ret < 0)
		return ret;
	ret = sl__peers_wait(run, deadline_ns, NULL, NULL);
	sl__peers_end(run);
	return ret;
}
