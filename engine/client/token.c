/*
 * libsluice: read tokens (sluice/client.h, "Read tokens"). Per topic
 * partition, the highest offset this client saw acked as stored, or was
 * told of through sl_client_saw_token (a query answer's "token"), so that
 * an application that reads from any replica passes min_offset = that and
 * never reads older than what it wrote or read before.
 *
 * A small table per topic, by partition, grown on demand up to the
 * partition bound Metadata allows (SL__ROUTE_MAX_PARTS: 32 KiB a topic at
 * most). The application's thread only, like the rest of the client.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client/client_impl.h"

static struct sl__tokens *sl__tok_find(const struct sl_client *c, const char *topic)
{
	for (uint32_t i = 0; i < c->n_toks; i++)
		if (!strcmp(c->toks[i].topic, topic))
			return &c->toks[i];
	return NULL;
}

int sl__client_token_note(struct sl_client *c, const char *topic, uint32_t partition,
                          uint64_t offset)
{
	if (!topic || partition >= SL__ROUTE_MAX_PARTS || offset >= UINT64_MAX - 1)
		return -EINVAL;
	struct sl__tokens *t = sl__tok_find(c, topic);
	if (!t) {
		struct sl__tokens *v = realloc(c->toks, (c->n_toks + 1) * sizeof(*v));
		if (!v)
			return -ENOMEM;
		c->toks = v;
		t = &v[c->n_toks];
		*t = (struct sl__tokens){.topic = strdup(topic)};
		if (!t->topic)
			return -ENOMEM;
		c->n_toks++;
	}
	if (partition >= t->n) {
		uint32_t n = t->n ? t->n : 8;
		while (n <= partition)
			n *= 2;
		if (n > SL__ROUTE_MAX_PARTS)
			n = SL__ROUTE_MAX_PARTS;
		uint64_t *v = realloc(t->next, n * sizeof(*v));
		if (!v)
			return -ENOMEM;
		memset(v + t->n, 0, (n - t->n) * sizeof(*v));
		t->next = v;
		t->n = n;
	}
	/* Kept as the first offset not covered (0: none seen), so that
	 * offset 0 is a token like any other. */
	if (offset + 1 > t->next[partition])
		t->next[partition] = offset + 1;
	return 0;
}

void sl__client_tokens_free(struct sl_client *c)
{
	for (uint32_t i = 0; i < c->n_toks; i++) {
		free(c->toks[i].topic);
		free(c->toks[i].next);
	}
	free(c->toks);
	c->toks = NULL;
	c->n_toks = 0;
}

int sl_client_saw_token(struct sl_client *c, const char *topic, const char *token)
{
	uint32_t p;
	uint64_t o;

	if (!c || !token || sl_token_parse(token, strlen(token), &p, &o) < 0 ||
	    p >= SL__ROUTE_MAX_PARTS || o > UINT64_MAX - 2)
		return -EINVAL;
	return sl__client_token_note(c, topic ? topic : c->o.topic, p, o);
}

int sl_client_read_token(const struct sl_client *c, const char *topic, uint32_t partition,
                         char *buf, size_t len)
{
	if (!c || !buf)
		return -EINVAL;
	const struct sl__tokens *t = sl__tok_find(c, topic ? topic : c->o.topic);
	if (!t || partition >= t->n || !t->next[partition])
		return -ENOENT;
	int n = snprintf(buf, len, "%" PRIu32 ":%" PRIu64, partition, t->next[partition] - 1);
	if (n < 0 || (size_t)n >= len) {
		if (len)
			buf[0] = '\0';
		return -ENOSPC;
	}
	return n;
}
