/* What the commands that use the HTTP port share: its default address,
 * URLs, a request that collects the answer (libcurl), and the way an error
 * answer is told. */
#include "cli/cli.h"

#include <curl/curl.h>
#include <errno.h>
#include <json-c/json.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"

size_t sl_cli_body_write(char *p, size_t size, size_t n, void *arg)
{
	struct sl_cli_body *b = arg;
	size_t add = size * n;

	if (b->len + add > SL_CLI_MAX_BODY) {
		b->too_big = true;
		return 0; /* curl stops with CURLE_WRITE_ERROR */
	}
	char *d = sl_grow(b->data, &b->cap, b->len + add + 1, 4096);
	if (!d)
		return 0;
	b->data = d;
	memcpy(b->data + b->len, p, add);
	b->len += add;
	b->data[b->len] = 0;
	return add;
}

void sl_cli_base_url(const struct sl_cli_server *s, char *out, size_t cap)
{
	if (strchr(s->host, ':'))
		snprintf(out, cap, "http://[%s]:%u", s->host, s->port);
	else
		snprintf(out, cap, "http://%s:%u", s->host, s->port);
}

int sl_cli_http_default(struct sl_cli_server *out)
{
	const char *env = getenv("SLUICE_HTTP");
	return sl_cli_server_parse(env && *env ? env : SL_CLI_DEFAULT_HTTP, out);
}

struct curl_slist *sl_cli_auth_header(const struct sl_cli_server *s)
{
	char line[sizeof(s->token) + 32];

	if (!s->token[0])
		return NULL;
	snprintf(line, sizeof(line), "Authorization: Bearer %s", s->token);
	return curl_slist_append(NULL, line);
}

int sl_cli_http_request(const struct sl_cli_server *http, const char *method, const char *path,
                        const char *json, size_t json_len, long connect_ms, long timeout_ms,
                        struct sl_cli_body *body, long *status, char *err, size_t errlen)
{
	char base[300], url[SL_CLI_MAX_URL], cerr[CURL_ERROR_SIZE] = "";
	CURL *cu = curl_easy_init();
	struct curl_slist *hdr = sl_cli_auth_header(http), *h;
	int ret = -EIO;

	if (!cu) {
		snprintf(err, errlen, "cannot start libcurl");
		curl_slist_free_all(hdr);
		return -ENOMEM;
	}
	if (http->token[0] && !hdr)
		goto oom;
	sl_cli_base_url(http, base, sizeof(base));
	int n = snprintf(url, sizeof(url), "%s%s", base, path);
	if (n < 0 || (size_t)n >= sizeof(url)) {
		snprintf(err, errlen, "%s: request path longer than %zu bytes", base,
		         sizeof(url) - strlen(base) - 1);
		ret = -ENAMETOOLONG;
		goto out;
	}
	curl_easy_setopt(cu, CURLOPT_URL, url);
	curl_easy_setopt(cu, CURLOPT_WRITEFUNCTION, sl_cli_body_write);
	curl_easy_setopt(cu, CURLOPT_WRITEDATA, body);
	curl_easy_setopt(cu, CURLOPT_ERRORBUFFER, cerr);
	curl_easy_setopt(cu, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(cu, CURLOPT_PROXY, ""); /* a local port: never through $http_proxy */
	curl_easy_setopt(cu, CURLOPT_CONNECTTIMEOUT_MS, connect_ms);
	curl_easy_setopt(cu, CURLOPT_TIMEOUT_MS, timeout_ms);
	if (json) {
		curl_easy_setopt(cu, CURLOPT_POSTFIELDS, json);
		curl_easy_setopt(cu, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)json_len);
		if (!(h = curl_slist_append(hdr, "Content-Type: application/json")))
			goto oom;
		hdr = h;
		/* The body is small: it goes with the header rather than after
		 * a wait for 100 Continue. */
		if (!(h = curl_slist_append(hdr, "Expect:")))
			goto oom;
		hdr = h;
	}
	if (strcmp(method, json ? "POST" : "GET"))
		curl_easy_setopt(cu, CURLOPT_CUSTOMREQUEST, method);
	if (hdr)
		curl_easy_setopt(cu, CURLOPT_HTTPHEADER, hdr);
	CURLcode cr = curl_easy_perform(cu);
	if (cr != CURLE_OK) {
		snprintf(err, errlen, "%s: %s", base,
		         body->too_big ? "answer too large"
		         : *cerr       ? cerr
		                       : curl_easy_strerror(cr));
		ret = cr == CURLE_COULDNT_CONNECT ? -ECONNREFUSED : -EIO;
		goto out;
	}
	curl_easy_getinfo(cu, CURLINFO_RESPONSE_CODE, status);
	ret = 0;
	goto out;
oom:
	snprintf(err, errlen, "out of memory");
	ret = -ENOMEM;
out:
	curl_easy_cleanup(cu);
	curl_slist_free_all(hdr);
	return ret;
}

int sl_cli_http_get(const struct sl_cli_server *http, const char *path, long timeout_ms,
                    struct sl_cli_body *body, long *status, char *err, size_t errlen)
{
	return sl_cli_http_request(http, "GET", path, NULL, 0, timeout_ms, timeout_ms, body, status,
	                           err, errlen);
}

void sl_cli_http_print_error(const char *cmd, long status, const struct sl_cli_body *b)
{
	struct json_object *o = b->data ? json_tokener_parse(b->data) : NULL;
	struct json_object *m;

	if (o && json_object_object_get_ex(o, "message", &m) &&
	    json_object_is_type(m, json_type_string))
		fprintf(stderr, "sluice %s: %s (HTTP %ld)\n", cmd, json_object_get_string(m),
		        status);
	else if (b->len)
		fprintf(stderr, "sluice %s: HTTP %ld: %.*s%s", cmd, status,
		        (int)(b->len > 500 ? 500 : b->len), b->data,
		        b->data[b->len - 1] == '\n' ? "" : "\n");
	else
		fprintf(stderr, "sluice %s: HTTP %ld with no message\n", cmd, status);
	if (o)
		json_object_put(o);
}
