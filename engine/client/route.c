/*
 * libsluice's routing pieces that need no connection: the bootstrap server
 * list ("h:p,h:p,[v6]:p") and a topic's routing table built from a
 * Metadata answer (which node leads each partition, at which address).
 * Pure; the cluster producer that uses them is router.c.
 */
#include "client/client_impl.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"

/* One "host:port" or "[v6]:port" of len bytes. */
static int sl__hostport_parse(const char *s, size_t len, struct sl__hostport *out)
{
	const char *host = s, *port;
	size_t hlen;

	if (!len)
		return -EINVAL;
	if (*s == '[') {
		const char *close = memchr(s, ']', len);
		if (!close || (size_t)(close - s) + 1 >= len || close[1] != ':')
			return -EINVAL;
		host = s + 1;
		hlen = (size_t)(close - host);
		port = close + 2;
	} else {
		const char *colon = NULL;
		for (size_t i = 0; i < len; i++)
			if (s[i] == ':')
				colon = s + i;
		if (!colon)
			return -EINVAL;
		hlen = (size_t)(colon - s);
		/* An IPv6 address without brackets is ambiguous. */
		if (memchr(s, ':', hlen))
			return -EINVAL;
		port = colon + 1;
	}
	size_t plen = len - (size_t)(port - s);
	if (!hlen || hlen >= sizeof(out->host) || !plen || plen > 5)
		return -EINVAL;
	uint32_t p = 0;
	for (size_t i = 0; i < plen; i++) {
		if (port[i] < '0' || port[i] > '9')
			return -EINVAL;
		p = p * 10 + (uint32_t)(port[i] - '0');
	}
	if (p == 0 || p > 65535)
		return -EINVAL;
	memcpy(out->host, host, hlen);
	out->host[hlen] = 0;
	out->port = (uint16_t)p;
	return 0;
}

int sl__servers_parse(const char *list, struct sl__hostport **out, size_t *n, char *err,
                      size_t errlen)
{
	struct sl__hostport *v = NULL;
	size_t cnt = 0, cap = 0;

	*out = NULL;
	*n = 0;
	if (!list || !*list) {
		sl_errf(err, errlen, "empty server list");
		return -EINVAL;
	}
	for (const char *s = list;;) {
		const char *comma = strchr(s, ',');
		size_t len = comma ? (size_t)(comma - s) : strlen(s);
		/* Spaces around items are what people type after a comma. */
		while (len && (*s == ' ' || *s == '\t')) {
			s++;
			len--;
		}
		while (len && (s[len - 1] == ' ' || s[len - 1] == '\t'))
			len--;
		if (cnt == SL__SERVERS_MAX) {
			sl_errf(err, errlen, "more than %u servers", SL__SERVERS_MAX);
			goto fail;
		}
		if (cnt == cap) {
			cap = cap ? cap * 2 : 4;
			struct sl__hostport *nv = realloc(v, cap * sizeof(*v));
			if (!nv) {
				free(v);
				sl_errf(err, errlen, "out of memory");
				return -ENOMEM;
			}
			v = nv;
		}
		if (sl__hostport_parse(s, len, &v[cnt]) < 0) {
			sl_errf(err, errlen, "bad server '%.*s': expected HOST:PORT or [V6]:PORT",
			        (int)(len > 200 ? 200 : len), s);
			goto fail;
		}
		cnt++;
		if (!comma)
			break;
		s = comma + 1;
	}
	*out = v;
	*n = cnt;
	return 0;
fail:
	free(v);
	return -EINVAL;
}

void sl__hostport_format(const struct sl__hostport *h, char *out, size_t cap)
{
	snprintf(out, cap, strchr(h->host, ':') ? "[%s]:%u" : "%s:%u", h->host, h->port);
}

void sl__route_free(struct sl__route *r)
{
	for (uint32_t i = 0; r->p && i < r->n_parts; i++) {
		free(r->p[i].leader);
		free(r->p[i].native);
	}
	free(r->p);
	*r = (struct sl__route){0};
}

int sl__route_build(const Sluice__V1__TopicInfo *ti, struct sl__route *out, char *err,
                    size_t errlen)
{
	struct sl__route r = {0};
	int ret = -EINVAL;

	*out = (struct sl__route){0};
	if (!ti->n_partitions || ti->n_partitions > SL__ROUTE_MAX_PARTS) {
		sl_errf(err, errlen, "topic '%s': %zu partitions", ti->name ? ti->name : "",
		        ti->n_partitions);
		return -EINVAL;
	}
	r.n_parts = (uint32_t)ti->n_partitions;
	r.p = calloc(r.n_parts, sizeof(*r.p));
	if (!r.p)
		return -ENOMEM;
	for (size_t i = 0; i < ti->n_partitions; i++) {
		const Sluice__V1__PartitionInfo *pi = ti->partitions[i];
		/* The partitioner maps keys onto [0, n): every partition once. */
		if (pi->partition >= r.n_parts || r.p[pi->partition].seen) {
			sl_errf(err, errlen,
			        "topic '%s': partition %u listed twice or out of range",
			        ti->name ? ti->name : "", pi->partition);
			goto fail;
		}
		struct sl__rpart *p = &r.p[pi->partition];
		p->seen = true;
		p->epoch = pi->leader_epoch;
		bool has_leader = pi->leader && pi->leader[0];
		if (!has_leader)
			continue;
		r.cluster = true;
		struct sl__hostport hp;
		/* A leader whose address this node does not know yet (or cannot
		 * be parsed) is no leader to send to: its events wait for a
		 * refresh. */
		if (!pi->leader_native ||
		    sl__hostport_parse(pi->leader_native, strlen(pi->leader_native), &hp) < 0)
			continue;
		p->leader = strdup(pi->leader);
		p->native = strdup(pi->leader_native);
		if (!p->leader || !p->native) {
			ret = -ENOMEM;
			goto fail;
		}
	}
	*out = r;
	return r.cluster ? 1 : 0;
fail:
	sl__route_free(&r);
	return ret;
}

uint32_t sl__route_keep_newer(struct sl__route *fresh, struct sl__route *old)
{
	uint32_t kept = 0;
	if (!old->p || old->n_parts != fresh->n_parts)
		return 0;
	for (uint32_t i = 0; i < fresh->n_parts; i++)
		if (old->p[i].epoch > fresh->p[i].epoch) {
			struct sl__rpart t = fresh->p[i];
			fresh->p[i] = old->p[i];
			old->p[i] = t;
			kept++;
		}
	return kept;
}

const char *sl__route_leader(const struct sl__route *r, const void *key, size_t len, uint32_t *part)
{
	struct sl_partitioner pt = {.kind = SL_PART_HASH, .n_parts = r->n_parts};
	uint32_t p = sl_part_of_key(&pt, key, len);
	if (part)
		*part = p;
	return r->p[p].native;
}
