/*
 * etcd's private parts, shared by etcd.c (the client) and watch.c: the
 * client's fields and the curl helpers. Not for other modules.
 */
#ifndef SL_ETCD_IMPL_H
#define SL_ETCD_IMPL_H

#include <curl/curl.h>
#include <json-c/json.h>
#include <stdbool.h>

#include "etcd/etcd.h"
#include "json/json.h"

#define SL__ETCD_ERRLEN  1024
#define SL__ETCD_URL_MAX 256

struct sl_etcd {
	char *endpoints[SL_ETCD_ENDPOINTS_MAX]; /* without a trailing '/' */
	size_t n_endpoints;
	size_t cur; /* the endpoint the next request goes to */
	char *prefix;
	size_t prefix_len;
	uint32_t timeout_ms;
	CURL *h;
	struct curl_slist *hdrs;
	struct sl_json_buf in; /* the answer being received */
	int64_t revision;
	char curl_err[CURL_ERROR_SIZE];
	char err[SL__ETCD_ERRLEN];
};

int sl__etcd_curl_init(void);
void sl__etcd_set_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* CURLOPT_WRITEFUNCTION into a struct sl_json_buf, bounded by
 * SL_ETCD_ANSWER_MAX. */
size_t sl__etcd_curl_write(char *p, size_t size, size_t n, void *arg);
bool sl__etcd_curl_not_sent(CURLcode rc);
int sl__etcd_curl_errno(CURLcode rc);
/* Request fields: an int64 as proto3 JSON's string; the full key (client
 * prefix + rel) as base64 "key", and with range its "range_end". 0 or
 * -ENOMEM. */
int sl__etcd_add_i64(struct json_object *o, const char *name, int64_t v);
int sl__etcd_add_key(struct sl_etcd *e, struct json_object *o, const char *rel, bool range);

#endif
