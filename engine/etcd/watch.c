/*
 * The watch: POST /v3/watch is one HTTP response that never ends, a stream
 * of JSON objects, one per line (grpc-gateway writes each message compact,
 * then "\n"; a JSON string cannot hold a raw newline, so a newline always
 * ends a message). Its own CURL easy handle on a curl multi handle, driven
 * by the caller's thread in sl_etcd_watch_next() (etcd.h says why).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "etcd/etcd_impl.h"

struct sl_etcd_watch {
	CURLM *m;
	CURL *h; /* NULL when no transfer is attached */
	struct curl_slist *hdrs;
	char *body;
	char *prefix; /* the client's, stripped from keys */
	size_t prefix_len;
	char *what; /* "PREFIX from revision R" for messages */
	uint32_t connect_ms;
	struct sl_json_buf in; /* bytes received and not yet taken as lines */
	size_t off;            /* start of the first untaken line in in */
	bool done;             /* the transfer ended */
	CURLcode done_rc;
	struct sl__etcd_watch_msg msg; /* the message whose events are being handed out */
	size_t next_ev;
	bool created;
	int64_t revision;
	int64_t compact_revision;
	int error; /* sticky: every call after it returns it */
	char curl_err[CURL_ERROR_SIZE];
	char err[SL__ETCD_ERRLEN];
};

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void detach(struct sl_etcd_watch *w)
{
	if (!w->h)
		return;
	curl_multi_remove_handle(w->m, w->h);
	curl_easy_cleanup(w->h);
	w->h = NULL;
}

static int attach(struct sl_etcd_watch *w, const char *ep)
{
	char url[SL__ETCD_URL_MAX + 16];
	snprintf(url, sizeof(url), "%s/v3/watch", ep);
	w->in.len = 0;
	w->off = 0;
	w->done = false;
	w->curl_err[0] = 0;
	if (!(w->h = curl_easy_init()))
		return -ENOMEM;
	curl_easy_setopt(w->h, CURLOPT_URL, url);
	curl_easy_setopt(w->h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(w->h, CURLOPT_HTTPHEADER, w->hdrs);
	curl_easy_setopt(w->h, CURLOPT_POSTFIELDS, w->body);
	curl_easy_setopt(w->h, CURLOPT_POSTFIELDSIZE, (long)strlen(w->body));
	/* no total timeout: the response is meant to last as long as the watch */
	curl_easy_setopt(w->h, CURLOPT_CONNECTTIMEOUT_MS, (long)w->connect_ms);
	curl_easy_setopt(w->h, CURLOPT_WRITEFUNCTION, sl__etcd_curl_write);
	curl_easy_setopt(w->h, CURLOPT_WRITEDATA, &w->in);
	curl_easy_setopt(w->h, CURLOPT_ERRORBUFFER, w->curl_err);
	/* a peer that vanishes without a FIN is found by TCP keepalive */
	curl_easy_setopt(w->h, CURLOPT_TCP_KEEPALIVE, 1L);
	curl_easy_setopt(w->h, CURLOPT_TCP_KEEPIDLE, 10L);
	curl_easy_setopt(w->h, CURLOPT_TCP_KEEPINTVL, 5L);
	if (curl_multi_add_handle(w->m, w->h) != CURLM_OK) {
		curl_easy_cleanup(w->h);
		w->h = NULL;
		return -ENOMEM;
	}
	return 0;
}

/* Runs the transfer and waits at most wait_ms for something to happen. */
static int pump(struct sl_etcd_watch *w, int wait_ms)
{
	int running = 0;
	if (w->done)
		return 0;
	if (curl_multi_perform(w->m, &running) != CURLM_OK)
		return -EIO;
	CURLMsg *cm;
	int left;
	while ((cm = curl_multi_info_read(w->m, &left))) {
		if (cm->msg == CURLMSG_DONE && cm->easy_handle == w->h) {
			w->done = true;
			w->done_rc = cm->data.result;
		}
	}
	if (!w->done && wait_ms > 0) {
		if (curl_multi_poll(w->m, NULL, 0, wait_ms, NULL) != CURLM_OK)
			return -EIO;
		if (curl_multi_perform(w->m, &running) != CURLM_OK)
			return -EIO;
		while ((cm = curl_multi_info_read(w->m, &left))) {
			if (cm->msg == CURLMSG_DONE && cm->easy_handle == w->h) {
				w->done = true;
				w->done_rc = cm->data.result;
			}
		}
	}
	return 0;
}

static long status_of(struct sl_etcd_watch *w)
{
	long status = 0;
	if (w->h)
		curl_easy_getinfo(w->h, CURLINFO_RESPONSE_CODE, &status);
	return status;
}

static int set_error(struct sl_etcd_watch *w, int r)
{
	w->error = r;
	return r;
}

/* Takes one message: the next complete line, or with the transfer over, what
 * is left. 1 when a message was taken (into w->msg), 0 when none is there
 * yet, or the watch's error. */
static int take(struct sl_etcd_watch *w)
{
	char perr[SL__ETCD_ERRLEN - 256];
	const char *p = w->in.data ? w->in.data + w->off : "";
	size_t avail = w->in.len - w->off;
	const char *nl = memchr(p, '\n', avail);
	size_t n;
	if (nl) {
		n = (size_t)(nl - p);
	} else if (w->done && avail) {
		n = avail;
	} else {
		if (w->off) {
			/* compact, so the buffer holds one partial line at most */
			memmove(w->in.data, p, avail);
			w->in.len = avail;
			w->off = 0;
		}
		return 0;
	}
	size_t start = w->off;
	w->off += nl ? n + 1 : n;
	while (n && (p[n - 1] == '\r' || p[n - 1] == ' '))
		n--;
	if (n == 0)
		return 0;
	sl__etcd_watch_msg_release(&w->msg);
	w->next_ev = 0;
	int r = sl__etcd_watch_msg_parse(w->in.data + start, n, w->prefix, w->prefix_len, &w->msg,
	                                 perr, sizeof(perr));
	if (r < 0) {
		sl__etcd_set_err(w->err, sizeof(w->err), "watch of %s: %s", w->what, perr);
		return set_error(w, r);
	}
	if (w->msg.error) {
		sl__etcd_set_err(w->err, sizeof(w->err), "watch of %s: etcd: %s", w->what,
		                 w->msg.cancel_reason);
		return set_error(w, w->msg.error);
	}
	if (w->msg.canceled) {
		if (w->msg.compact_revision > 0) {
			w->compact_revision = w->msg.compact_revision;
			sl__etcd_set_err(
			    w->err, sizeof(w->err),
			    "watch of %s: etcd compacted its history up to revision %" PRId64
			    "; read the keys again and watch from that read's revision + 1",
			    w->what, w->compact_revision);
			return set_error(w, -ERANGE);
		}
		sl__etcd_set_err(
		    w->err, sizeof(w->err), "watch of %s: canceled by etcd (%s)", w->what,
		    w->msg.cancel_reason[0] ? w->msg.cancel_reason : "no reason given");
		return set_error(w, -ECANCELED);
	}
	if (w->msg.created) {
		w->created = true;
		/* the revision the watch starts after, when it starts "now" */
		if (!w->revision && w->msg.revision)
			w->revision = w->msg.revision;
	}
	return 1;
}

/* The transfer is over and every line was taken: say why it ended. */
static int ended(struct sl_etcd_watch *w)
{
	long status = status_of(w);
	if (status && status != 200) {
		char perr[SL__ETCD_ERRLEN - 256];
		int r = sl__etcd_error_parse(status, w->in.data ? w->in.data : "", w->in.len, perr,
		                             sizeof(perr));
		sl__etcd_set_err(w->err, sizeof(w->err), "watch of %s: %s", w->what, perr);
		return set_error(w, r);
	}
	if (w->done_rc != CURLE_OK) {
		int r = sl__etcd_curl_errno(w->done_rc);
		sl__etcd_set_err(w->err, sizeof(w->err), "watch of %s: %s", w->what,
		                 w->curl_err[0] ? w->curl_err : curl_easy_strerror(w->done_rc));
		return set_error(w, sl__etcd_curl_not_sent(w->done_rc) ? r : -ECONNRESET);
	}
	sl__etcd_set_err(w->err, sizeof(w->err), "watch of %s: etcd ended the stream", w->what);
	return set_error(w, -ECONNRESET);
}

/*
 * One pass of the state machine: deliver buffered events, take complete
 * lines, or report the end. >0 events delivered (or cb's value through
 * *stop), 0 nothing to do without waiting, <0 error.
 */
static int drain(struct sl_etcd_watch *w, sl_etcd_event_cb cb, void *arg, int *delivered)
{
	for (;;) {
		while (cb && w->next_ev < w->msg.n_events) {
			const struct sl_etcd_event *ev = &w->msg.events[w->next_ev++];
			if (ev->kv.mod_revision > w->revision)
				w->revision = ev->kv.mod_revision;
			(*delivered)++;
			int r = cb(arg, ev);
			if (r)
				return r;
		}
		long status = status_of(w);
		if (status && status != 200) {
			/* an error answer, not a stream: read it whole first */
			return w->done ? ended(w) : 0;
		}
		/* without a callback (open): stop at the first message */
		int r = take(w);
		if (r < 0)
			return r;
		if (r == 0)
			return w->done ? (w->in.len - w->off ? 0 : ended(w)) : 0;
		if (!cb)
			return 0;
	}
}

int sl_etcd_watch_open(struct sl_etcd *e, const char *prefix, int64_t start_revision,
                       struct sl_etcd_watch **out)
{
	struct sl_etcd_watch *w = NULL;
	struct json_object *body = NULL, *cr = NULL;
	int r = -ENOMEM;
	*out = NULL;
	if (!prefix || start_revision < 0) {
		sl__etcd_set_err(e->err, sizeof(e->err), "watch: %s",
		                 prefix ? "negative start revision" : "prefix is NULL");
		return -EINVAL;
	}
	if (!(w = calloc(1, sizeof(*w))))
		return -ENOMEM;
	w->connect_ms = e->timeout_ms;
	if (!(w->m = curl_multi_init()))
		goto fail;
	if (!(w->hdrs = curl_slist_append(NULL, "Content-Type: application/json")))
		goto fail;
	if (!(w->prefix = strdup(e->prefix)))
		goto fail;
	w->prefix_len = e->prefix_len;
	size_t wl = strlen(e->prefix) + strlen(prefix) + 48;
	if (!(w->what = malloc(wl)))
		goto fail;
	if (start_revision)
		snprintf(w->what, wl, "%s%s* from revision %" PRId64, e->prefix, prefix,
		         start_revision);
	else
		snprintf(w->what, wl, "%s%s* from now", e->prefix, prefix);
	body = json_object_new_object();
	cr = json_object_new_object();
	if (!body || !cr || sl__etcd_add_key(e, cr, prefix, true) < 0 ||
	    (start_revision && sl__etcd_add_i64(cr, "start_revision", start_revision) < 0))
		goto fail;
	if (json_object_object_add(body, "create_request", cr) < 0)
		goto fail;
	cr = NULL;
	const char *text = json_object_to_json_string_ext(body, JSON_C_TO_STRING_PLAIN);
	if (!text || !(w->body = strdup(text)))
		goto fail;

	char why[SL__ETCD_ERRLEN / 2];
	size_t whylen = 0;
	why[0] = 0;
	for (size_t tries = 0; tries < e->n_endpoints; tries++) {
		const char *ep = e->endpoints[e->cur];
		w->error = 0;
		if ((r = attach(w, ep)) < 0)
			goto fail;
		int64_t deadline = now_ms() + e->timeout_ms;
		int dummy = 0;
		r = 0;
		while (!w->created && r == 0) {
			int64_t left = deadline - now_ms();
			if (left <= 0) {
				r = -ETIMEDOUT;
				sl__etcd_set_err(
				    w->err, sizeof(w->err),
				    "watch of %s: etcd did not confirm it within %u ms", w->what,
				    e->timeout_ms);
				break;
			}
			if ((r = pump(w, (int)left)) < 0)
				break;
			r = drain(w, NULL, NULL, &dummy);
		}
		if (r == 0)
			break;
		if (whylen < sizeof(why))
			whylen += (size_t)snprintf(why + whylen, sizeof(why) - whylen, "%s%s: %s",
			                           whylen ? "; " : "", ep, w->err);
		detach(w);
		e->cur = (e->cur + 1) % e->n_endpoints;
		if (!(w->done && sl__etcd_curl_not_sent(w->done_rc))) {
			sl__etcd_set_err(e->err, sizeof(e->err), "%s", w->err);
			goto fail;
		}
	}
	if (r < 0) {
		sl__etcd_set_err(e->err, sizeof(e->err), "no etcd endpoint took the watch (%s)",
		                 why);
		goto fail;
	}
	/* what came with "created" is kept for the first sl_etcd_watch_next */
	w->error = 0;
	json_object_put(body);
	*out = w;
	return 0;
fail:
	json_object_put(cr);
	json_object_put(body);
	if (r == -ENOMEM)
		sl__etcd_set_err(e->err, sizeof(e->err), "watch: out of memory");
	sl_etcd_watch_close(w);
	return r;
}

void sl_etcd_watch_close(struct sl_etcd_watch *w)
{
	if (!w)
		return;
	detach(w);
	if (w->m)
		curl_multi_cleanup(w->m);
	curl_slist_free_all(w->hdrs);
	sl__etcd_watch_msg_release(&w->msg);
	sl_json_buf_release(&w->in);
	free(w->body);
	free(w->prefix);
	free(w->what);
	free(w);
}

int sl_etcd_watch_next(struct sl_etcd_watch *w, uint32_t timeout_ms, sl_etcd_event_cb cb, void *arg)
{
	if (w->error)
		return w->error;
	int delivered = 0;
	int64_t deadline = now_ms() + timeout_ms;
	for (;;) {
		int r = drain(w, cb, arg, &delivered);
		if (r != 0)
			return r; /* cb's value or an error */
		if (delivered)
			return delivered;
		if (w->done)
			continue; /* drain reports the end once the buffer is empty */
		int64_t left = deadline - now_ms();
		if (left <= 0)
			return 0;
		if ((r = pump(w, (int)left)) < 0) {
			sl__etcd_set_err(w->err, sizeof(w->err), "watch of %s: curl multi failed",
			                 w->what);
			return set_error(w, r);
		}
	}
}

int64_t sl_etcd_watch_revision(const struct sl_etcd_watch *w)
{
	return w->revision;
}

int64_t sl_etcd_watch_compact_revision(const struct sl_etcd_watch *w)
{
	return w->compact_revision;
}

const char *sl_etcd_watch_errmsg(const struct sl_etcd_watch *w)
{
	return w->err;
}
