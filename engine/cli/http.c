/* What the commands that use the HTTP port share: its default address,
 * URLs, and a GET that collects the answer (libcurl). */
#include "cli/cli.h"

#include <curl/curl.h>
#include <errno.h>
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

int sl_cli_http_get(const struct sl_cli_server *http, const char *path, long timeout_ms,
                    struct sl_cli_body *body, long *status, char *err, size_t errlen)
{
	char base[300], url[600], cerr[CURL_ERROR_SIZE] = "";
	CURL *cu = curl_easy_init();
	int ret = -EIO;

	if (!cu) {
		snprintf(err, errlen, "cannot start libcurl");
		return -ENOMEM;
	}
	sl_cli_base_url(http, base, sizeof(base));
	snprintf(url, sizeof(url), "%s%s", base, path);
	curl_easy_setopt(cu, CURLOPT_URL, url);
	curl_easy_setopt(cu, CURLOPT_WRITEFUNCTION, sl_cli_body_write);
	curl_easy_setopt(cu, CURLOPT_WRITEDATA, body);
	curl_easy_setopt(cu, CURLOPT_ERRORBUFFER, cerr);
	curl_easy_setopt(cu, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(cu, CURLOPT_PROXY, ""); /* a local port: never through $http_proxy */
	curl_easy_setopt(cu, CURLOPT_CONNECTTIMEOUT_MS, timeout_ms);
	curl_easy_setopt(cu, CURLOPT_TIMEOUT_MS, timeout_ms);
	struct curl_slist *hdr = sl_cli_auth_header(http);
	if (hdr)
		curl_easy_setopt(cu, CURLOPT_HTTPHEADER, hdr);
	CURLcode cr = curl_easy_perform(cu);
	if (cr != CURLE_OK) {
		snprintf(err, errlen, "%s: %s", base,
		         body->too_big ? "answer too large"
		         : *cerr       ? cerr
		                       : curl_easy_strerror(cr));
		goto out;
	}
	curl_easy_getinfo(cu, CURLINFO_RESPONSE_CODE, status);
	ret = 0;
out:
	curl_easy_cleanup(cu);
	curl_slist_free_all(hdr);
	return ret;
}
