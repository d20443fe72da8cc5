/*
 * sluice bench --query: read-model queries over the HTTP port while the
 * producers run, to see what ingest does to query latency (and the
 * reverse). Each thread keeps one libcurl handle (one keep-alive
 * connection) and asks the same path in a closed loop until stopped;
 * latency is per request, from send to the whole answer.
 */
#include <curl/curl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "cli/cli.h"

#define SL__QL_MAX_THREADS 64

struct sl__qthread {
	struct sl_cli_qload *q;
	pthread_t th;
	struct sl_hist hist;
	uint64_t errors;
	char err[200];
};

struct sl_cli_qload {
	char url[2048];
	struct curl_slist *hdr; /* Authorization, or NULL */
	_Atomic bool stop;
	uint64_t start_ns;
	uint32_t n;
	struct sl__qthread t[SL__QL_MAX_THREADS];
};

/* The answer is not kept: only whether it came whole. */
static size_t sl__ql_sink(char *p, size_t size, size_t n, void *arg)
{
	(void)p;
	(void)arg;
	return size * n;
}

static void *sl__ql_thread(void *arg)
{
	struct sl__qthread *t = arg;
	CURL *cu = curl_easy_init();
	if (!cu) {
		snprintf(t->err, sizeof(t->err), "libcurl could not start");
		return NULL;
	}
	curl_easy_setopt(cu, CURLOPT_URL, t->q->url);
	curl_easy_setopt(cu, CURLOPT_WRITEFUNCTION, sl__ql_sink);
	curl_easy_setopt(cu, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(cu, CURLOPT_PROXY, "");
	curl_easy_setopt(cu, CURLOPT_TIMEOUT_MS, 10000L);
	if (t->q->hdr)
		curl_easy_setopt(cu, CURLOPT_HTTPHEADER, t->q->hdr);
	/* Bounded by the producers' run: stop is set when it ends. */
	while (!atomic_load_explicit(&t->q->stop, memory_order_relaxed)) {
		uint64_t t0 = sl_now_ns();
		CURLcode cr = curl_easy_perform(cu);
		long status = 0;
		curl_easy_getinfo(cu, CURLINFO_RESPONSE_CODE, &status);
		if (cr != CURLE_OK || status != 200) {
			if (!t->errors++)
				snprintf(t->err, sizeof(t->err), "%s",
				         cr != CURLE_OK ? curl_easy_strerror(cr)
				                        : "HTTP error status");
			if (cr == CURLE_COULDNT_CONNECT)
				break;
			continue;
		}
		sl_hist_record(&t->hist, (sl_now_ns() - t0) / 1000u);
	}
	curl_easy_cleanup(cu);
	return NULL;
}

int sl_cli_qload_start(const struct sl_cli_server *http, const char *path, uint32_t threads,
                       struct sl_cli_qload **out)
{
	struct sl_cli_qload *q;
	if (!threads || threads > SL__QL_MAX_THREADS)
		return -EINVAL;
	q = calloc(1, sizeof(*q));
	if (!q)
		return -ENOMEM;
	int n = snprintf(q->url, sizeof(q->url),
	                 strchr(http->host, ':') ? "http://[%s]:%u/v1/projections/%s"
	                                         : "http://%s:%u/v1/projections/%s",
	                 http->host, http->port, path);
	if (n < 0 || (size_t)n >= sizeof(q->url)) {
		free(q);
		return -ENAMETOOLONG;
	}
	curl_global_init(CURL_GLOBAL_DEFAULT);
	q->hdr = sl_cli_auth_header(http);
	q->start_ns = sl_now_ns();
	for (uint32_t i = 0; i < threads; i++) {
		q->t[i].q = q;
		if (sl_hist_init(&q->t[i].hist) < 0 ||
		    pthread_create(&q->t[i].th, NULL, sl__ql_thread, &q->t[i]) != 0) {
			sl_hist_free(&q->t[i].hist);
			break;
		}
		q->n++;
	}
	if (!q->n) {
		curl_slist_free_all(q->hdr);
		free(q);
		return -ENOMEM;
	}
	*out = q;
	return 0;
}

void sl_cli_qload_stop(struct sl_cli_qload *q, struct sl_cli_qload_result *res)
{
	struct sl_hist all = {0};
	memset(res, 0, sizeof(*res));
	atomic_store_explicit(&q->stop, true, memory_order_relaxed);
	sl_hist_init(&all);
	for (uint32_t i = 0; i < q->n; i++) {
		pthread_join(q->t[i].th, NULL);
		if (all.b)
			sl_hist_merge(&all, &q->t[i].hist);
		res->errors += q->t[i].errors;
		if (q->t[i].errors && !res->err[0])
			snprintf(res->err, sizeof(res->err), "%s", q->t[i].err);
		sl_hist_free(&q->t[i].hist);
	}
	double secs = (double)(sl_now_ns() - q->start_ns) / 1e9;
	res->queries = all.n;
	res->qps = secs > 0 ? (double)all.n / secs : 0;
	res->p50 = (double)sl_hist_quantile(&all, 0.5);
	res->p99 = (double)sl_hist_quantile(&all, 0.99);
	res->p999 = (double)sl_hist_quantile(&all, 0.999);
	sl_hist_free(&all);
	curl_slist_free_all(q->hdr);
	curl_global_cleanup();
	free(q);
}
