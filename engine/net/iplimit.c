/*
 * Connections per client address: an open-addressing table (linear
 * probing, backward-shift deletion, so no tombstones pile up under churn)
 * of (address key, count) under one mutex. Accepts and closes are rare next
 * to the data path, and a mutex keeps the limit exact across the threads
 * that accept on one port (an atomic counter per hash bucket would make
 * two addresses that collide share a limit).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "net/net.h"

struct sl__ipslot {
	struct sl_ipkey k;
	uint32_t n; /* 0: empty */
};

struct sl_iplimit {
	pthread_mutex_t mu;
	uint32_t mask; /* capacity - 1; capacity a power of two >= 2 x max_addrs */
	uint32_t used, max_addrs;
	struct sl__ipslot *slots;
};

int sl_ipkey_of(const struct sockaddr *sa, socklen_t len, struct sl_ipkey *out)
{
	static const uint8_t v4mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

	memset(out, 0, sizeof(*out));
	if (sa->sa_family == AF_INET && len >= (socklen_t)sizeof(struct sockaddr_in)) {
		memcpy(out->b, v4mapped, 12);
		memcpy(out->b + 12, &((const struct sockaddr_in *)sa)->sin_addr, 4);
		return 0;
	}
	if (sa->sa_family == AF_INET6 && len >= (socklen_t)sizeof(struct sockaddr_in6)) {
		const uint8_t *a = ((const struct sockaddr_in6 *)sa)->sin6_addr.s6_addr;
		if (!memcmp(a, v4mapped, 12))
			memcpy(out->b, a, 16); /* an IPv4 client of a dual-stack socket */
		else
			memcpy(out->b, a, 8); /* its /64 */
		return 0;
	}
	return -EAFNOSUPPORT;
}

int sl_ipkey_of_peer(int fd, struct sl_ipkey *out)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);

	if (getpeername(fd, (struct sockaddr *)&ss, &len) < 0)
		return -errno;
	return sl_ipkey_of((struct sockaddr *)&ss, len, out);
}

void sl_ipkey_str(const struct sl_ipkey *k, char *buf, size_t cap)
{
	static const uint8_t v4mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
	char a[INET6_ADDRSTRLEN];

	if (!memcmp(k->b, v4mapped, 12)) {
		inet_ntop(AF_INET, k->b + 12, a, sizeof(a));
		snprintf(buf, cap, "%s", a);
	} else {
		inet_ntop(AF_INET6, k->b, a, sizeof(a));
		snprintf(buf, cap, "%s/64", a);
	}
}

static uint32_t sl__iphash(const struct sl_ipkey *k)
{
	uint64_t lo, hi;

	memcpy(&lo, k->b, 8);
	memcpy(&hi, k->b + 8, 8);
	/* A 64-bit mix (splitmix64's finaliser) of both halves: loopback
	 * tests and real clients differ only in the low bytes. */
	uint64_t x = lo ^ (hi * 0x9e3779b97f4a7c15ull);
	x ^= x >> 30;
	x *= 0xbf58476d1ce4e5b9ull;
	x ^= x >> 27;
	x *= 0x94d049bb133111ebull;
	x ^= x >> 31;
	return (uint32_t)x;
}

int sl_iplimit_create(uint32_t max_addrs, struct sl_iplimit **out)
{
	struct sl_iplimit *t = calloc(1, sizeof(*t));
	uint32_t cap = 16;

	*out = NULL;
	if (!t)
		return -ENOMEM;
	/* Half full at most: probes stay short. */
	while (cap < 2 * (uint64_t)max_addrs && cap < (1u << 31))
		cap <<= 1;
	t->slots = calloc(cap, sizeof(*t->slots));
	if (!t->slots) {
		free(t);
		return -ENOMEM;
	}
	t->mask = cap - 1;
	t->max_addrs = max_addrs;
	pthread_mutex_init(&t->mu, NULL);
	*out = t;
	return 0;
}

void sl_iplimit_destroy(struct sl_iplimit *t)
{
	if (!t)
		return;
	pthread_mutex_destroy(&t->mu);
	free(t->slots);
	free(t);
}

/* The slot holding k, or the empty slot where it would go. Under mu. */
static struct sl__ipslot *sl__ipfind(struct sl_iplimit *t, const struct sl_ipkey *k)
{
	uint32_t i = sl__iphash(k) & t->mask;

	/* Bounded: the table is never more than half full. */
	while (t->slots[i].n && memcmp(&t->slots[i].k, k, sizeof(*k)))
		i = (i + 1) & t->mask;
	return &t->slots[i];
}

bool sl_iplimit_acquire(struct sl_iplimit *t, const struct sl_ipkey *k, uint32_t limit)
{
	bool ok = false;

	pthread_mutex_lock(&t->mu);
	struct sl__ipslot *s = sl__ipfind(t, k);
	if (s->n) {
		if (s->n < limit) {
			s->n++;
			ok = true;
		}
	} else if (limit > 0 && t->used < t->max_addrs) {
		s->k = *k;
		s->n = 1;
		t->used++;
		ok = true;
	}
	pthread_mutex_unlock(&t->mu);
	return ok;
}

void sl_iplimit_release(struct sl_iplimit *t, const struct sl_ipkey *k)
{
	pthread_mutex_lock(&t->mu);
	struct sl__ipslot *s = sl__ipfind(t, k);
	if (s->n && --s->n == 0) {
		/* Backward shift: move later members of the probe run into the
		 * hole so that every key stays reachable from its home slot. */
		uint32_t hole = (uint32_t)(s - t->slots), j = hole;
		t->used--;
		for (;;) {
			j = (j + 1) & t->mask;
			if (!t->slots[j].n)
				break;
			uint32_t home = sl__iphash(&t->slots[j].k) & t->mask;
			/* j's entry may move to hole unless its home lies
			 * cyclically in (hole, j]. */
			bool stays =
			    hole <= j ? (home > hole && home <= j) : (home > hole || home <= j);
			if (stays)
				continue;
			t->slots[hole] = t->slots[j];
			t->slots[j].n = 0;
			hole = j;
		}
	}
	pthread_mutex_unlock(&t->mu);
}

uint32_t sl_iplimit_count(struct sl_iplimit *t, const struct sl_ipkey *k)
{
	pthread_mutex_lock(&t->mu);
	uint32_t n = sl__ipfind(t, k)->n;
	pthread_mutex_unlock(&t->mu);
	return n;
}
