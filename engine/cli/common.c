/* What the commands share: addresses, numbers, the fd limit, the latency
 * histogram. */
#include "cli/cli.h"

#include "auth/auth.h"
#include "client/client_impl.h"
#include "sluice/consumer.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

int sl_cli_server_parse(const char *s, struct sl_cli_server *out)
{
	const char *colon, *host = s;
	size_t hlen;

	if (!s || !*s)
		return -EINVAL;
	if (*s == '[') {
		const char *close = strchr(s, ']');
		if (!close || close[1] != ':')
			return -EINVAL;
		host = s + 1;
		hlen = (size_t)(close - host);
		colon = close + 1;
	} else {
		colon = strrchr(s, ':');
		if (!colon)
			return -EINVAL;
		hlen = (size_t)(colon - s);
	}
	uint64_t port;
	if (!hlen || hlen >= sizeof(out->host) || sl_cli_parse_u64(colon + 1, 1, 65535, &port) < 0)
		return -EINVAL;
	memcpy(out->host, host, hlen);
	out->host[hlen] = 0;
	out->port = (uint16_t)port;
	out->list[0] = 0;
	return 0;
}

int sl_cli_token(const char *cmd, const char *file, struct sl_cli_server *s)
{
	char err[512];
	int ret = sl_auth_client_token(file, s->token, sizeof(s->token), err, sizeof(err));
	if (ret < 0) {
		fprintf(stderr, "%s: %s\n", cmd, err);
		return -1;
	}
	if (ret == 0)
		s->token[0] = 0;
	return 0;
}

int sl_cli_servers_parse(const char *s, struct sl_cli_server *out)
{
	struct sl__hostport *v;
	size_t n;

	if (!s || strlen(s) >= sizeof(out->list) || sl__servers_parse(s, &v, &n, NULL, 0) < 0)
		return -EINVAL;
	snprintf(out->host, sizeof(out->host), "%s", v[0].host);
	out->port = v[0].port;
	free(v);
	snprintf(out->list, sizeof(out->list), "%s", s);
	return 0;
}

int sl_cli_server_default(struct sl_cli_server *out)
{
	const char *env = getenv("SLUICE_SERVER");
	return sl_cli_servers_parse(env && *env ? env : SL_CLI_DEFAULT_SERVER, out);
}

int sl_cli_consumer_connect(const struct sl_cli_server *s, const char *name,
                            struct sl_consumer **out, char *err, size_t errlen)
{
	struct sl__hostport one, *v = &one;
	size_t n = 1;
	int ret = -EINVAL;

	*out = NULL;
	if (s->list[0]) {
		if (sl__servers_parse(s->list, &v, &n, err, errlen) < 0)
			return -EINVAL;
	} else {
		snprintf(one.host, sizeof(one.host), "%s", s->host);
		one.port = s->port;
	}
	for (size_t i = 0; i < n; i++) {
		struct sl_consumer_opts co = {
		    .host = v[i].host, .port = v[i].port, .client_name = name, .token = s->token};
		ret = sl_consumer_connect(&co, out, err, errlen);
		if (ret == 0)
			break;
	}
	if (v != &one)
		free(v);
	return ret;
}

int sl_cli_parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
	char *end;

	if (!s || *s < '0' || *s > '9')
		return -EINVAL;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || *end || v < min || v > max)
		return -EINVAL;
	*out = v;
	return 0;
}

int sl_cli_parse_double(const char *s, double min, double max, double *out)
{
	char *end;

	if (!s || !*s)
		return -EINVAL;
	errno = 0;
	double v = strtod(s, &end);
	if (errno || *end || !isfinite(v) || v < min || v > max)
		return -EINVAL;
	*out = v;
	return 0;
}

int sl_cli_nofile_reserve(uint64_t need, uint64_t *limit)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		return -errno;
	/* The soft limit is often 1024 for select()'s sake; we never select. */
	if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < need && rl.rlim_cur < rl.rlim_max) {
		rlim_t old = rl.rlim_cur;
		rl.rlim_cur = rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
			rl.rlim_cur = old;
	}
	if (limit)
		*limit = rl.rlim_cur == RLIM_INFINITY ? UINT64_MAX : (uint64_t)rl.rlim_cur;
	return rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur >= need ? 0 : -EMFILE;
}

int sl_hist_init(struct sl_hist *h)
{
	*h = (struct sl_hist){.min = UINT64_MAX};
	h->b = calloc(SL_HIST_BUCKETS, sizeof(*h->b));
	return h->b ? 0 : -ENOMEM;
}

void sl_hist_free(struct sl_hist *h)
{
	free(h->b);
	h->b = NULL;
}

void sl_hist_merge(struct sl_hist *into, const struct sl_hist *from)
{
	for (uint32_t i = 0; i < SL_HIST_BUCKETS; i++)
		into->b[i] += from->b[i];
	into->n += from->n;
	into->sum += from->sum;
	if (from->min < into->min)
		into->min = from->min;
	if (from->max > into->max)
		into->max = from->max;
}

/* The largest value that falls in bucket i. */
static uint64_t sl__hist_top(uint32_t i)
{
	if (i < 128)
		return i;
	uint32_t e = (i - 128) / 64 + 1, sub = (i - 128) % 64 + 64;
	return (((uint64_t)sub + 1) << e) - 1;
}

uint64_t sl_hist_quantile(const struct sl_hist *h, double q)
{
	if (!h->n)
		return 0;
	if (q < 0)
		q = 0;
	if (q > 1)
		q = 1;
	/* Rank of the value, 1-based: the smallest with rank/n >= q. */
	uint64_t rank = (uint64_t)ceill((long double)q * (long double)h->n);
	if (rank < 1)
		rank = 1;
	uint64_t seen = 0;
	for (uint32_t i = 0; i < SL_HIST_BUCKETS; i++) {
		seen += h->b[i];
		if (seen >= rank) {
			uint64_t top = sl__hist_top(i);
			return top < h->max ? top : h->max;
		}
	}
	return h->max;
}
