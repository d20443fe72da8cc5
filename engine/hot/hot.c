/*
 * hot: the Space-Saving summary, its decay and publication, the readers'
 * merge, and the partitions' rate windows. hot.h says who calls what.
 */
#include "hot/hot.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

struct sl_hot *sl_hot_create(uint32_t sample, uint64_t now_ns)
{
	struct sl_hot *h;
	if (!sample || (sample & (sample - 1)) || sample > 65536)
		return NULL;
	if (posix_memalign((void **)&h, SL_CACHELINE, sizeof(*h)))
		return NULL;
	memset(h, 0, sizeof(*h));
	h->sample = sample;
	/* Any nonzero seed: xorshift's only fixed point is 0. */
	h->rng = 0x9e3779b97f4a7c15ull ^ (uint64_t)(uintptr_t)h;
	h->since_ns = h->halved_ns = now_ns;
	return h;
}

void sl_hot_destroy(struct sl_hot *h)
{
	free(h);
}

/* ---- the heap (min count at heap[0]) ----------------------------------- */

static inline uint64_t sl__cnt(const struct sl_hot *h, uint32_t i)
{
	return h->e[h->heap[i]].count;
}

static inline void sl__put(struct sl_hot *h, uint32_t i, uint16_t e)
{
	h->heap[i] = e;
	h->pos[e] = (uint16_t)i;
}

static void sl__sift_down(struct sl_hot *h, uint32_t i)
{
	uint16_t e = h->heap[i];
	uint64_t c = h->e[e].count;
	for (;;) {
		uint32_t l = 2 * i + 1, m = i;
		uint64_t mc = c;
		if (l < h->n && sl__cnt(h, l) < mc)
			m = l, mc = sl__cnt(h, l);
		if (l + 1 < h->n && sl__cnt(h, l + 1) < mc)
			m = l + 1;
		if (m == i)
			break;
		sl__put(h, i, h->heap[m]);
		i = m;
	}
	sl__put(h, i, e);
}

static void sl__sift_up(struct sl_hot *h, uint32_t i)
{
	uint16_t e = h->heap[i];
	uint64_t c = h->e[e].count;
	while (i && sl__cnt(h, (i - 1) / 2) > c) {
		sl__put(h, i, h->heap[(i - 1) / 2]);
		i = (i - 1) / 2;
	}
	sl__put(h, i, e);
}

/* ---- the index (linear probing by hash) -------------------------------- */

static inline uint32_t sl__home(uint64_t hash)
{
	/* The high bits: XXH3's low and high bits are equally good, and the
	 * low ones also pick hash partitions. */
	return (uint32_t)(hash >> 40) & (SL_HOT_SLOTS - 1);
}

/* The slot holding (hash, len), or the empty slot that ends its run. */
static inline uint32_t sl__find(const struct sl_hot *h, uint64_t hash, uint32_t len)
{
	uint32_t s = sl__home(hash);
	for (;;) {
		uint16_t v = h->slot[s];
		if (!v || (h->e[v - 1].hash == hash && h->e[v - 1].len == len))
			return s;
		s = (s + 1) & (SL_HOT_SLOTS - 1);
	}
}

/* Removes slot s, moving later members of the run back so that every
 * key stays reachable from its home without tombstones. */
static void sl__unslot(struct sl_hot *h, uint32_t s)
{
	uint32_t j = s;
	for (;;) {
		h->slot[s] = 0;
		for (;;) {
			j = (j + 1) & (SL_HOT_SLOTS - 1);
			if (!h->slot[j])
				return;
			uint32_t k = sl__home(h->e[h->slot[j] - 1].hash);
			/* j's entry may move to s unless its home lies in (s, j]. */
			if (s <= j ? (s < k && k <= j) : (s < k || k <= j))
				continue;
			break;
		}
		h->slot[s] = h->slot[j];
		s = j;
	}
}

static inline void sl__set_key(struct sl_hot_entry *e, uint64_t hash, const void *key, size_t len,
                               uint32_t l32, uint32_t part)
{
	e->hash = hash;
	e->len = l32;
	e->part = (uint16_t)part;
	e->klen = (uint8_t)(len < SL_HOT_KEY_PREFIX ? len : SL_HOT_KEY_PREFIX);
	/* In fixed-size pieces the compiler inlines: a variable-length
	 * memcpy is a libc call that cost as much as the rest of an update
	 * (perf, bench_hot). The source may end right after the key. */
	const char *k = key;
	char *d = e->key;
	size_t n = e->klen;
	for (; n >= 8; n -= 8, k += 8, d += 8)
		memcpy(d, k, 8);
	for (; n; n--)
		*d++ = *k++;
}

void sl_hot__add(struct sl_hot *h, const void *key, size_t len, uint32_t part)
{
	uint64_t hash = XXH3_64bits(key, len);
	uint32_t l32 = len > UINT32_MAX ? UINT32_MAX : (uint32_t)len;
	uint32_t s = sl__find(h, hash, l32);
	uint16_t i;
	h->total++;
	if (h->slot[s]) {
		/* Known: one more, and down the heap past smaller counts. */
		i = (uint16_t)(h->slot[s] - 1);
		h->e[i].count++;
		h->e[i].part = (uint16_t)part;
		sl__sift_down(h, h->pos[i]);
		return;
	}
	if (h->n < SL_HOT_COUNTERS) {
		/* Room: a counter of 1, the smallest there can be. */
		i = (uint16_t)h->n++;
		h->e[i].count = 1;
		h->e[i].err = 0;
		sl__set_key(&h->e[i], hash, key, len, l32, part);
		h->slot[s] = (uint16_t)(i + 1);
		sl__put(h, h->n - 1, i);
		sl__sift_up(h, h->n - 1);
		return;
	}
	/* Full: the smallest counter takes the key; its count is what the
	 * new key may have had unseen, so it becomes the key's error. */
	i = h->heap[0];
	struct sl_hot_entry *e = &h->e[i];
	sl__unslot(h, sl__find(h, e->hash, e->len));
	e->err = e->count;
	e->count++;
	sl__set_key(e, hash, key, len, l32, part);
	h->slot[sl__find(h, hash, l32)] = (uint16_t)(i + 1);
	sl__sift_down(h, 0);
}

void sl_hot_add_call(struct sl_hot *h, const void *key, size_t len, uint32_t part)
{
	sl_hot_add(h, key, len, part);
}

/* ---- decay and publication --------------------------------------------- */

/* Brings the decayed span up to now. */
static void sl__span(struct sl_hot *h, uint64_t now_ns)
{
	if (now_ns > h->since_ns)
		h->span_ns += now_ns - h->since_ns;
	h->since_ns = now_ns;
}

void sl_hot_halve(struct sl_hot *h, uint64_t now_ns)
{
	uint64_t total = 0;
	/* Rounded up: a count stays at least the halved true count. ceil(x/2)
	 * is monotone, so the heap stays ordered. */
	for (uint32_t i = 0; i < h->n; i++) {
		h->e[i].count = (h->e[i].count + 1) / 2;
		h->e[i].err = (h->e[i].err + 1) / 2;
		total += h->e[i].count;
	}
	/* N is the sum of the counts (it bounds the minimum: min <= N/m). */
	h->total = total;
	sl__span(h, now_ns);
	h->span_ns /= 2;
	h->halved_ns = now_ns;
}

/* Heap positions of the top entries: a max-selection over the counts
 * (once a second, 256 entries: no cleverness needed). */
static uint32_t sl__top(const struct sl_hot *h, uint16_t *out, uint32_t k)
{
	uint32_t n = 0;
	for (uint32_t i = 0; i < h->n; i++) {
		/* Insertion into the sorted out[0..n), largest first. */
		uint64_t c = h->e[i].count;
		uint32_t j = n < k ? n++ : k;
		if (j == k && (k == 0 || h->e[out[k - 1]].count >= c))
			continue;
		if (j == k)
			j = k - 1;
		while (j && h->e[out[j - 1]].count < c) {
			out[j] = out[j - 1];
			j--;
		}
		out[j] = (uint16_t)i;
	}
	return n;
}

void sl_hot_publish(struct sl_hot *h, uint64_t now_ns)
{
	uint16_t top[SL_HOT_PUB];
	if (now_ns - h->halved_ns >= SL_HOT_HALVE_NS)
		sl_hot_halve(h, now_ns);
	sl__span(h, now_ns);
	uint32_t n = sl__top(h, top, SL_HOT_PUB);
	struct sl_hot_pub *p = &h->pub;
	uint64_t seq = atomic_load_explicit(&p->seq, memory_order_relaxed);
	atomic_store_explicit(&p->seq, seq + 1, memory_order_relaxed);
	/* Orders the odd sequence before the words: a reader that sees any
	 * new word sees the odd sequence on its second load. */
	atomic_thread_fence(memory_order_release);
	atomic_store_explicit(&p->n, n, memory_order_relaxed);
	atomic_store_explicit(&p->total, h->total, memory_order_relaxed);
	atomic_store_explicit(&p->floor, h->n == SL_HOT_COUNTERS ? sl__cnt(h, 0) : 0,
	                      memory_order_relaxed);
	atomic_store_explicit(&p->span_ns, h->span_ns, memory_order_relaxed);
	atomic_store_explicit(&p->sample, h->sample, memory_order_relaxed);
	for (uint32_t i = 0; i < n; i++) {
		uint64_t w[SL__HOT_WORDS];
		memcpy(w, &h->e[top[i]], sizeof(w));
		for (uint32_t j = 0; j < SL__HOT_WORDS; j++)
			atomic_store_explicit(&p->w[i][j], w[j], memory_order_relaxed);
	}
	/* Pairs with the reader's acquire load of seq: the words before it. */
	atomic_store_explicit(&p->seq, seq + 2, memory_order_release);
}

/* A reader that keeps meeting a write gives up after this many tries;
 * writes come once a second and take a microsecond. */
#define SL__HOT_TRIES 1000

int sl_hot_read(const struct sl_hot *hc, struct sl_hot_snap *out)
{
	struct sl_hot_pub *p = (struct sl_hot_pub *)&hc->pub;
	for (int t = 0; t < SL__HOT_TRIES; t++) {
		uint64_t s1 = atomic_load_explicit(&p->seq, memory_order_acquire);
		if (s1 & 1)
			continue;
		uint64_t n = atomic_load_explicit(&p->n, memory_order_relaxed);
		uint64_t total = atomic_load_explicit(&p->total, memory_order_relaxed);
		uint64_t span = atomic_load_explicit(&p->span_ns, memory_order_relaxed);
		uint64_t sample = atomic_load_explicit(&p->sample, memory_order_relaxed);
		if (n > SL_HOT_PUB)
			n = SL_HOT_PUB;
		struct sl_hot_entry e[SL_HOT_PUB];
		for (uint32_t i = 0; i < n; i++) {
			uint64_t w[SL__HOT_WORDS];
			for (uint32_t j = 0; j < SL__HOT_WORDS; j++)
				w[j] = atomic_load_explicit(&p->w[i][j], memory_order_relaxed);
			memcpy(&e[i], w, sizeof(w));
		}
		/* Orders the words before the second load of seq: if it has
		 * not moved, no word read was written meanwhile. */
		atomic_thread_fence(memory_order_acquire);
		if (atomic_load_explicit(&p->seq, memory_order_relaxed) != s1)
			continue;
		/* Never 0: a fresh summary has covered no time yet. */
		double span_s = span ? (double)span / 1e9 : 1.0;
		double scale = (double)(sample ? sample : 1) / span_s;
		out->n = (uint32_t)n;
		out->events = (double)total * (double)(sample ? sample : 1);
		out->bound_per_s = (double)total / SL_HOT_COUNTERS * scale;
		out->span_s = span_s;
		for (uint32_t i = 0; i < n; i++) {
			struct sl_hot_key *k = &out->k[i];
			k->hash = e[i].hash;
			k->events_per_s = (double)e[i].count * scale;
			k->error_per_s = (double)e[i].err * scale;
			k->len = e[i].len;
			k->part = e[i].part;
			k->klen = e[i].klen <= SL_HOT_KEY_PREFIX ? e[i].klen : SL_HOT_KEY_PREFIX;
			memcpy(k->key, e[i].key, k->klen);
		}
		return 0;
	}
	return -EAGAIN;
}

uint32_t sl_hot_top(const struct sl_hot_snap *snaps, uint32_t n, uint32_t k, struct sl_hot_key *out)
{
	uint32_t got = 0;
	if (k > SL_HOT_K_MAX)
		k = SL_HOT_K_MAX;
	for (uint32_t s = 0; s < n; s++)
		for (uint32_t i = 0; i < snaps[s].n; i++) {
			const struct sl_hot_key *c = &snaps[s].k[i];
			/* A key in two summaries (moved to another partition, by a
			 * directory reload): one entry, both counts. */
			uint32_t j = 0;
			while (j < got && !(out[j].hash == c->hash && out[j].len == c->len))
				j++;
			struct sl_hot_key m = *c;
			if (j < got) {
				m = out[j];
				m.events_per_s += c->events_per_s;
				m.error_per_s += c->error_per_s;
				for (; j + 1 < got; j++)
					out[j] = out[j + 1];
				got--;
			}
			/* Into the sorted out[0..got), highest rate first. */
			if (got == k && (k == 0 || out[k - 1].events_per_s >= m.events_per_s))
				continue;
			j = got < k ? got++ : k - 1;
			while (j && out[j - 1].events_per_s < m.events_per_s) {
				out[j] = out[j - 1];
				j--;
			}
			out[j] = m;
		}
	return got;
}

size_t sl_hot_key_quote(const struct sl_hot_key *k, char *out, size_t cap)
{
	static const char hex[] = "0123456789abcdef";
	size_t o = 0;
	if (cap < SL_HOT_KEY_TEXT)
		return 0;
	for (uint32_t i = 0; i < k->klen; i++) {
		unsigned char c = (unsigned char)k->key[i];
		if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\') {
			out[o++] = (char)c;
		} else {
			out[o++] = '\\';
			out[o++] = '\\';
			out[o++] = 'x';
			out[o++] = hex[c >> 4];
			out[o++] = hex[c & 15];
		}
	}
	if (k->len > k->klen) {
		memcpy(out + o, "...", 3);
		o += 3;
	}
	out[o] = '\0';
	return o;
}

/* ---- partition rates --------------------------------------------------- */

static inline void sl__f64_store(_Atomic uint64_t *a, double d)
{
	uint64_t b;
	memcpy(&b, &d, sizeof(b));
	atomic_store_explicit(a, b, memory_order_relaxed);
}

bool sl_hot_rate_sample(struct sl_hot_rate *r, uint64_t events, uint64_t bytes, uint64_t now_ns)
{
	if (now_ns < r->next_ns)
		return false;
	r->next_ns = now_ns + SL_HOT_RATE_EVERY_NS;
	uint32_t at = (r->head + r->n) % SL_HOT_RATE_SLOTS;
	if (r->n == SL_HOT_RATE_SLOTS) {
		/* Full: the oldest goes. */
		at = r->head;
		r->head = (r->head + 1) % SL_HOT_RATE_SLOTS;
	} else {
		r->n++;
	}
	r->ev[at] = events;
	r->by[at] = bytes;
	r->ns[at] = now_ns;
	double eps = 0, bps = 0;
	if (r->n > 1) {
		uint32_t o = r->head;
		double dt = (double)(now_ns - r->ns[o]) / 1e9;
		/* A log cut (a follower's truncation) may move the end back. */
		if (dt > 0) {
			eps = events > r->ev[o] ? (double)(events - r->ev[o]) / dt : 0;
			bps = bytes > r->by[o] ? (double)(bytes - r->by[o]) / dt : 0;
		}
	}
	sl__f64_store(&r->events_pub, eps);
	sl__f64_store(&r->bytes_pub, bps);
	return true;
}

bool sl_hot_is_hot(bool was, double rate, double mean, uint32_t factor)
{
	if (!factor || rate < SL_HOT_MIN_EVENTS_PER_S)
		return false;
	double edge = (double)factor * mean;
	return was ? rate >= edge * 0.75 : rate > edge;
}
