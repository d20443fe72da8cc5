#include "part/part.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include "base/base.h"

/* ---- hash ------------------------------------------------------------------- */

static uint32_t sl__hash(uint64_t h, uint32_t n)
{
	/* multiply-shift of the high half instead of %: no division on the
	 * hot path. This is the mapping stored data was written with. */
	return (uint32_t)(((h >> 32) * (uint64_t)n) >> 32);
}

/* ---- jump ------------------------------------------------------------------- */

/*
 * Lamping and Veach, "A Fast, Minimal Memory, Consistent Hash Algorithm"
 * (2014): follow the key's bucket as the bucket count grows from 1. With b
 * buckets the key moves to the new one with probability 1/(b+1); rather
 * than try every count, draw from a generator seeded by the key the next
 * count j at which it jumps (j = floor((b+1) / r) for r uniform in (0, 1]),
 * and stop once j reaches n. The paper's generator is the 64-bit LCG
 * k = k * 2862933555777941757 + 1 and r is built from its top 31 bits.
 * We take r = (top31 + 1) / 2^31 and compute j in integers,
 * ((b+1) << 31) / (top31 + 1), instead of the paper's doubles: exact, so the
 * same on every machine and compiler (b < 2^32 keeps the shift in 63 bits).
 */
static uint32_t sl__jump(uint64_t k, uint32_t n)
{
	uint64_t b = 0, j = 0;

	while (j < n) {
		b = j;
		k = k * 2862933555777941757ull + 1;
		j = ((b + 1) << 31) / ((k >> 33) + 1);
	}
	return (uint32_t)b;
}

/* ---- range ------------------------------------------------------------------ */

struct sl__part_key {
	uint32_t off, len;
};

struct sl__part_range {
	uint32_t n;
	struct sl__part_key *k;
	uint8_t *bytes;
};

/* Bytewise order: memcmp over the common length, then the shorter first. */
static int sl__keycmp(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen)
{
	int c = memcmp(a, b, alen < blen ? alen : blen);
	if (c)
		return c;
	return alen < blen ? -1 : alen > blen;
}

static uint32_t sl__range_of(const struct sl__part_range *r, const void *key, size_t len)
{
	/* The count of splits <= key: partition i holds [split(i-1), split(i)). */
	uint32_t lo = 0, hi = r->n;
	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;
		const struct sl__part_key *s = &r->k[mid];
		if (sl__keycmp(r->bytes + s->off, s->len, key, len) <= 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static int sl__range_build(struct sl_partitioner *p, const struct sl_part_spec *s, char *err,
                           size_t errlen)
{
	uint32_t want = s->n_parts - 1;
	size_t total = 0;

	if (s->n_splits != want || (want && !s->splits)) {
		snprintf(err, errlen,
		         "range: %u split key(s) for %u partitions: expected %u (one fewer "
		         "than partitions)",
		         s->n_splits, s->n_parts, want);
		return -SL_ECONFIG;
	}
	for (uint32_t i = 0; i < want; i++) {
		size_t len = strlen(s->splits[i]);
		if (len > SL_PART_KEY_MAX) {
			snprintf(err, errlen, "range: split %u is longer than %u bytes", i,
			         SL_PART_KEY_MAX);
			return -SL_ECONFIG;
		}
		total += len;
		if (!i)
			continue;
		const char *a = s->splits[i - 1], *b = s->splits[i];
		int c = sl__keycmp((const uint8_t *)a, strlen(a), (const uint8_t *)b, len);
		if (c == 0) {
			snprintf(err, errlen, "range: split %u '%.64s' repeats split %u", i, b,
			         i - 1);
			return -SL_ECONFIG;
		}
		if (c > 0) {
			snprintf(err, errlen,
			         "range: split %u '%.64s' sorts before split %u '%.64s': splits "
			         "must increase in bytewise order",
			         i, b, i - 1, a);
			return -SL_ECONFIG;
		}
	}
	struct sl__part_range *r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	r->n = want;
	r->k = calloc(want ? want : 1, sizeof(*r->k));
	r->bytes = malloc(total ? total : 1);
	if (!r->k || !r->bytes) {
		free(r->k);
		free(r->bytes);
		free(r);
		return -ENOMEM;
	}
	uint32_t off = 0;
	for (uint32_t i = 0; i < want; i++) {
		uint32_t len = (uint32_t)strlen(s->splits[i]);
		memcpy(r->bytes + off, s->splits[i], len);
		r->k[i] = (struct sl__part_key){off, len};
		off += len;
	}
	p->range = r;
	return 0;
}

static void sl__range_free(struct sl__part_range *r)
{
	if (!r)
		return;
	free(r->k);
	free(r->bytes);
	free(r);
}

/* ---- consistent --------------------------------------------------------------- */

/* Fixed forever: the ring's points are part of the stored data's meaning. */
#define SL__RING_SEED 0x736c7569636572ull /* "sluicer" */

struct sl__part_ring {
	uint32_t n;
	uint64_t *h;     /* sorted */
	uint32_t *owner; /* the partition of h[i] */
};

struct sl__point {
	uint64_t h;
	uint32_t owner;
};

static int sl__point_cmp(const void *a, const void *b)
{
	const struct sl__point *x = a, *y = b;
	if (x->h != y->h)
		return x->h < y->h ? -1 : 1;
	/* Equal hashes (2^-64 a pair): the lower partition first, so the
	 * ring does not depend on qsort's order. */
	return x->owner < y->owner ? -1 : x->owner > y->owner;
}

static uint32_t sl__ring_of(const struct sl__part_ring *r, uint64_t h)
{
	/* The first point at or after h, wrapping past the last. */
	uint32_t lo = 0, hi = r->n;
	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;
		if (r->h[mid] < h)
			lo = mid + 1;
		else
			hi = mid;
	}
	return r->owner[lo == r->n ? 0 : lo];
}

static int sl__ring_build(struct sl_partitioner *p, uint32_t n_parts, uint32_t vnodes, char *err,
                          size_t errlen)
{
	uint32_t v = vnodes ? vnodes : SL_PART_VNODES_DEFAULT;

	if (v > SL_PART_VNODES_MAX || (uint64_t)v * n_parts > SL_PART_RING_MAX) {
		snprintf(err, errlen,
		         "consistent: %u vnodes x %u partitions: expected vnodes 1..%u and at "
		         "most %u points in all",
		         v, n_parts, SL_PART_VNODES_MAX, SL_PART_RING_MAX);
		return -SL_ECONFIG;
	}
	uint32_t n = v * n_parts;
	struct sl__point *pts = malloc((size_t)n * sizeof(*pts));
	struct sl__part_ring *r = calloc(1, sizeof(*r));
	if (!pts || !r)
		goto oom;
	r->n = n;
	r->h = malloc((size_t)n * sizeof(*r->h));
	r->owner = malloc((size_t)n * sizeof(*r->owner));
	if (!r->h || !r->owner)
		goto oom;
	for (uint32_t part = 0, i = 0; part < n_parts; part++)
		for (uint32_t k = 0; k < v; k++, i++) {
			/* A point's name is its partition and number, little
			 * endian: the same bytes on every machine. */
			uint8_t name[8];
			sl_put_le32(name, part);
			sl_put_le32(name + 4, k);
			pts[i] =
			    (struct sl__point){XXH3_64bits_withSeed(name, 8, SL__RING_SEED), part};
		}
	qsort(pts, n, sizeof(*pts), sl__point_cmp);
	for (uint32_t i = 0; i < n; i++) {
		r->h[i] = pts[i].h;
		r->owner[i] = pts[i].owner;
	}
	free(pts);
	p->ring = r;
	return 0;
oom:
	free(pts);
	if (r) {
		free(r->h);
		free(r->owner);
	}
	free(r);
	return -ENOMEM;
}

static void sl__ring_free(struct sl__part_ring *r)
{
	if (!r)
		return;
	free(r->h);
	free(r->owner);
	free(r);
}

/* ---- directory: the table --------------------------------------------------- */

/* One slot of the open-addressing table; len 0 is empty (keys are not). */
struct sl__dent {
	uint64_t h;
	uint32_t off;
	uint16_t len;
	uint16_t part;
};

struct sl_part_table {
	uint32_t n;    /* keys */
	uint32_t mask; /* slots - 1, a power of two at least twice n */
	struct sl__dent *slot;
	uint8_t *bytes;
	size_t bytes_len;
};

static const struct sl__dent *sl__probe(const struct sl_part_table *t, uint64_t h, const void *key,
                                        size_t len, uint32_t *at)
{
	uint32_t i = (uint32_t)h & t->mask;
	for (;; i = (i + 1) & t->mask) {
		const struct sl__dent *e = &t->slot[i];
		if (!e->len ||
		    (e->h == h && e->len == len && !memcmp(t->bytes + e->off, key, len))) {
			if (at)
				*at = i;
			return e->len ? e : NULL;
		}
	}
}

int64_t sl_part_table_find(const struct sl_part_table *t, const void *key, size_t len)
{
	if (!t || !t->n || !len || len > SL_PART_KEY_MAX)
		return -1;
	const struct sl__dent *e = sl__probe(t, XXH3_64bits(key, len), key, len, NULL);
	return e ? e->part : -1;
}

uint32_t sl_part_table_len(const struct sl_part_table *t)
{
	return t ? t->n : 0;
}

void sl_part_table_free(struct sl_part_table *t)
{
	if (!t)
		return;
	free(t->slot);
	free(t->bytes);
	free(t);
}

static bool sl__blank(char c)
{
	return c == ' ' || c == '\t' || c == '\r';
}

/* The line (1-based) each slot's key came from, for "listed twice". */
static int sl__fail(char *err, size_t errlen, const char *name, uint32_t line, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static int sl__fail(char *err, size_t errlen, const char *name, uint32_t line, const char *fmt, ...)
{
	char why[300];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	snprintf(err, errlen, "%s:%u: %s", name, line, why);
	return -SL_ECONFIG;
}

int sl_part_dir_parse(const char *buf, size_t len, const char *name, uint32_t n_parts,
                      struct sl_part_table **out, char *err, size_t errlen)
{
	struct sl_part_table *t = calloc(1, sizeof(*t));
	uint32_t *lines = NULL;
	uint32_t cap = 16, line = 0;
	int ret = -ENOMEM;

	*out = NULL;
	if (!t)
		return -ENOMEM;
	if (n_parts == 0 || n_parts > SL_PART_MAX_PARTS) {
		free(t);
		snprintf(err, errlen, "%s: %u partitions", name, n_parts);
		return -EINVAL;
	}
	/* Slots for every line that may hold a key, at most half full: sized
	 * once from the file, never regrown while keys go in. */
	uint64_t maybe = 0;
	for (const char *q = buf, *e = buf + len; q < e;) {
		while (q < e && sl__blank(*q))
			q++;
		if (q < e && *q != '\n' && *q != '#')
			maybe++;
		const char *nl = memchr(q, '\n', (size_t)(e - q));
		q = nl ? nl + 1 : e;
	}
	while (cap < 2 * maybe)
		cap <<= 1;
	t->mask = cap - 1;
	t->slot = calloc(cap, sizeof(*t->slot));
	lines = calloc(cap, sizeof(*lines));
	t->bytes = malloc(len ? len : 1);
	if (!t->slot || !lines || !t->bytes)
		goto out;
	const char *p = buf, *end = buf + len;
	while (p < end) {
		const char *eol = memchr(p, '\n', (size_t)(end - p));
		if (!eol)
			eol = end;
		line++;
		const char *nul = memchr(p, '\0', (size_t)(eol - p));
		if (nul) {
			ret = sl__fail(err, errlen, name, line, "a NUL byte at column %zu",
			               (size_t)(nul - p) + 1);
			goto out;
		}
		const char *q = p;
		p = eol + (eol < end);
		while (q < eol && sl__blank(*q))
			q++;
		if (q == eol || *q == '#')
			continue;
		const char *k = q;
		while (q < eol && !sl__blank(*q))
			q++;
		size_t klen = (size_t)(q - k);
		while (q < eol && sl__blank(*q))
			q++;
		const char *v = q;
		while (q < eol && !sl__blank(*q))
			q++;
		size_t vlen = (size_t)(q - v);
		while (q < eol && sl__blank(*q))
			q++;
		if (!vlen) {
			ret = sl__fail(err, errlen, name, line,
			               "'%.*s' has no partition: expected `KEY PARTITION`",
			               (int)(klen < 64 ? klen : 64), k);
			goto out;
		}
		if (q < eol) {
			ret =
			    sl__fail(err, errlen, name, line,
			             "a third field '%.*s': expected `KEY PARTITION` (keys cannot "
			             "hold spaces)",
			             (int)((size_t)(eol - q) < 64 ? (size_t)(eol - q) : 64), q);
			goto out;
		}
		if (klen > SL_PART_KEY_MAX) {
			ret = sl__fail(err, errlen, name, line, "a key of %zu bytes: at most %u",
			               klen, SL_PART_KEY_MAX);
			goto out;
		}
		uint64_t part = 0;
		bool digits = vlen <= 10;
		for (size_t i = 0; i < vlen && digits; i++) {
			digits = v[i] >= '0' && v[i] <= '9';
			part = part * 10 + (uint64_t)(v[i] - '0');
		}
		if (!digits) {
			ret = sl__fail(err, errlen, name, line,
			               "partition '%.*s' is not a decimal number", (int)vlen, v);
			goto out;
		}
		if (part >= n_parts) {
			ret = sl__fail(err, errlen, name, line,
			               "partition %llu is out of range: the topic has %u (0..%u)",
			               (unsigned long long)part, n_parts, n_parts - 1);
			goto out;
		}
		uint64_t h = XXH3_64bits(k, klen);
		uint32_t at;
		if (sl__probe(t, h, k, klen, &at)) {
			ret = sl__fail(err, errlen, name, line,
			               "key '%.*s' is listed twice (first at line %u)",
			               (int)(klen < 64 ? klen : 64), k, lines[at]);
			goto out;
		}
		memcpy(t->bytes + t->bytes_len, k, klen);
		t->slot[at] =
		    (struct sl__dent){h, (uint32_t)t->bytes_len, (uint16_t)klen, (uint16_t)part};
		lines[at] = line;
		t->bytes_len += klen;
		t->n++;
	}
	*out = t;
	t = NULL;
	ret = 0;
out:
	free(lines);
	sl_part_table_free(t);
	return ret;
}

/* ---- directory: publication and reload -------------------------------------- */

/*
 * Readers of the current table are counted per stripe and per phase; a
 * reloader publishes the new table, flips the phase, and waits until the
 * old phase's counters drain before freeing the old table. A reader that
 * loaded the old table incremented its counter (seq_cst) before loading
 * the pointer, so before the reloader's store, and the reloader's seq_cst
 * loads of the counters come after that store: it sees the reader. A
 * reader of the new phase loaded the phase (acquire) after the flip, so
 * after the store, and holds the new table. Readers never wait; stripes
 * keep threads off one another's cache line.
 */
#define SL__STRIPES 32u

struct sl__stripe {
	_Atomic uint64_t n[2];
} __attribute__((aligned(SL_CACHELINE)));

struct sl_part_dir {
	struct sl__stripe stripe[SL__STRIPES];
	struct sl_part_table *_Atomic cur;
	_Atomic uint32_t phase;
	uint32_t n_parts;
	char *file;
	pthread_mutex_t mu; /* one reloader at a time */
};

static _Atomic uint32_t sl__next_stripe;
static _Thread_local uint32_t sl__my_stripe = UINT32_MAX;

static struct sl__stripe *sl__stripe_of(struct sl_part_dir *d)
{
	/* A thread keeps one stripe for life, handed out round robin: the
	 * reactors (created first) each get their own. */
	if (sl__my_stripe == UINT32_MAX)
		sl__my_stripe =
		    atomic_fetch_add_explicit(&sl__next_stripe, 1, memory_order_relaxed) %
		    SL__STRIPES;
	return &d->stripe[sl__my_stripe];
}

static int64_t sl__dir_find(struct sl_part_dir *d, const void *key, size_t len)
{
	struct sl__stripe *s = sl__stripe_of(d);
	uint32_t ph = atomic_load_explicit(&d->phase, memory_order_acquire) & 1;
	atomic_fetch_add_explicit(&s->n[ph], 1, memory_order_seq_cst);
	const struct sl_part_table *t = atomic_load_explicit(&d->cur, memory_order_seq_cst);
	int64_t r = sl_part_table_find(t, key, len);
	/* Pairs with the reloader's acquire load: the lookup above happens
	 * before the free. */
	atomic_fetch_sub_explicit(&s->n[ph], 1, memory_order_release);
	return r;
}

/* Reads and parses d's file (256 MiB at most). */
static int sl__dir_read(const char *file, uint32_t n_parts, struct sl_part_table **out, char *err,
                        size_t errlen)
{
	FILE *f = fopen(file, "rb");
	char *buf = NULL;
	size_t len = 0, n;
	int ret;

	*out = NULL;
	if (!f) {
		ret = -errno;
		snprintf(err, errlen, "%s: cannot open: %s", file, strerror(-ret));
		return ret;
	}
	const size_t max = 256u << 20;
	struct stat st;
	size_t cap = fstat(fileno(f), &st) == 0 && st.st_size > 0 ? (size_t)st.st_size + 1 : 4096;
	if (cap > max + 1)
		cap = max + 1;
	buf = malloc(cap);
	if (!buf) {
		ret = -ENOMEM;
		snprintf(err, errlen, "%s: out of memory", file);
		goto out;
	}
	while ((n = fread(buf + len, 1, cap - len, f)) > 0) {
		len += n;
		if (len == cap && cap <= max) {
			size_t nc = cap * 2 > max + 1 ? max + 1 : cap * 2;
			char *nb = nc > cap ? realloc(buf, nc) : NULL;
			if (!nb)
				break;
			buf = nb;
			cap = nc;
		}
	}
	if (ferror(f)) {
		ret = -EIO;
		snprintf(err, errlen, "%s: read error", file);
		goto out;
	}
	if (len > max) {
		ret = -SL_ECONFIG;
		snprintf(err, errlen, "%s: larger than %zu MiB", file, max >> 20);
		goto out;
	}
	ret = sl_part_dir_parse(buf, len, file, n_parts, out, err, errlen);
	if (ret == -ENOMEM)
		snprintf(err, errlen, "%s: out of memory", file);
out:
	fclose(f);
	free(buf);
	return ret;
}

static void sl__dir_free(struct sl_part_dir *d)
{
	if (!d)
		return;
	sl_part_table_free(atomic_load(&d->cur));
	free(d->file);
	pthread_mutex_destroy(&d->mu);
	free(d);
}

static int sl__dir_build(struct sl_partitioner *p, const struct sl_part_spec *s, char *err,
                         size_t errlen)
{
	struct sl_part_table *t;
	int ret;

	if (!s->file || !s->file[0]) {
		snprintf(err, errlen, "directory: no file given");
		return -SL_ECONFIG;
	}
	if (s->fallback != SL_PART_HASH && s->fallback != SL_PART_JUMP &&
	    s->fallback != SL_PART_CONSISTENT) {
		snprintf(err, errlen, "directory: fallback '%s': expected hash, jump or consistent",
		         sl_part_kind_name(s->fallback));
		return -SL_ECONFIG;
	}
	if (s->fallback == SL_PART_CONSISTENT &&
	    (ret = sl__ring_build(p, s->n_parts, s->vnodes, err, errlen)) < 0)
		return ret;
	ret = sl__dir_read(s->file, s->n_parts, &t, err, errlen);
	if (ret < 0)
		return ret;
	struct sl_part_dir *d = aligned_alloc(SL_CACHELINE, sizeof(*d));
	char *file = strdup(s->file);
	if (!d || !file) {
		free(d);
		free(file);
		sl_part_table_free(t);
		return -ENOMEM;
	}
	memset(d, 0, sizeof(*d));
	atomic_init(&d->cur, t);
	d->n_parts = s->n_parts;
	d->file = file;
	pthread_mutex_init(&d->mu, NULL);
	p->dir = d;
	p->fallback = s->fallback;
	return 0;
}

int sl_part_reload(const struct sl_partitioner *p, uint32_t *n_keys, char *err, size_t errlen)
{
	struct sl_part_dir *d = p->dir;
	struct sl_part_table *t;

	if (p->kind != SL_PART_DIRECTORY || !d) {
		snprintf(err, errlen, "not a directory partitioner");
		return -EINVAL;
	}
	/* Parsed before the mutex: a slow file holds up no other reloader
	 * for longer than it must, and a bad one changes nothing. */
	int ret = sl__dir_read(d->file, d->n_parts, &t, err, errlen);
	if (ret < 0)
		return ret;
	if (n_keys)
		*n_keys = t->n;
	pthread_mutex_lock(&d->mu);
	struct sl_part_table *old = atomic_exchange_explicit(&d->cur, t, memory_order_seq_cst);
	uint32_t was = atomic_fetch_add_explicit(&d->phase, 1, memory_order_seq_cst) & 1;
	for (uint32_t i = 0; i < SL__STRIPES; i++)
		/* Readers of the old phase are inside a lookup (nanoseconds);
		 * yield rather than burn the core a reactor may share. */
		while (atomic_load_explicit(&d->stripe[i].n[was], memory_order_seq_cst))
			sched_yield();
	/* Acquire: every lookup that read `old` ended before this point. */
	atomic_thread_fence(memory_order_acquire);
	pthread_mutex_unlock(&d->mu);
	sl_part_table_free(old);
	return 0;
}

const char *sl_part_dir_file(const struct sl_partitioner *p)
{
	return p->dir ? p->dir->file : NULL;
}

/* ---- the face --------------------------------------------------------------- */

const char *sl_part_kind_name(enum sl_part_kind k)
{
	static const char *const names[] = {
	    [SL_PART_HASH] = "hash",
	    [SL_PART_RANGE] = "range",
	    [SL_PART_CONSISTENT] = "consistent",
	    [SL_PART_JUMP] = "jump",
	    [SL_PART_DIRECTORY] = "directory",
	};
	return (size_t)k < SL_ARRAY_LEN(names) ? names[k] : "?";
}

int sl_part_init_spec(struct sl_partitioner *p, const struct sl_part_spec *s, char *err,
                      size_t errlen)
{
	int ret = 0;

	memset(p, 0, sizeof(*p));
	if (errlen)
		err[0] = '\0';
	if (s->n_parts == 0 || s->n_parts > SL_PART_MAX_PARTS) {
		snprintf(err, errlen, "%u partitions: expected 1..%u", s->n_parts,
		         SL_PART_MAX_PARTS);
		return -EINVAL;
	}
	p->kind = s->kind;
	p->n_parts = s->n_parts;
	switch (s->kind) {
	case SL_PART_HASH:
	case SL_PART_JUMP:
		break;
	case SL_PART_RANGE:
		ret = sl__range_build(p, s, err, errlen);
		break;
	case SL_PART_CONSISTENT:
		ret = sl__ring_build(p, s->n_parts, s->vnodes, err, errlen);
		break;
	case SL_PART_DIRECTORY:
		ret = sl__dir_build(p, s, err, errlen);
		break;
	default:
		snprintf(err, errlen, "unknown partitioner %d", (int)s->kind);
		ret = -EINVAL;
	}
	if (ret < 0)
		sl_part_destroy(p);
	return ret;
}

int sl_part_init(struct sl_partitioner *p, enum sl_part_kind kind, uint32_t n_parts)
{
	struct sl_part_spec s = {.kind = kind, .n_parts = n_parts};
	char err[256];

	if (kind != SL_PART_HASH && kind != SL_PART_JUMP && kind != SL_PART_CONSISTENT)
		return -EINVAL;
	int ret = sl_part_init_spec(p, &s, err, sizeof(err));
	return ret == -SL_ECONFIG ? -EINVAL : ret;
}

void sl_part_destroy(struct sl_partitioner *p)
{
	sl__range_free(p->range);
	sl__ring_free(p->ring);
	sl__dir_free(p->dir);
	memset(p, 0, sizeof(*p));
}

uint32_t sl_part_of_key(const struct sl_partitioner *p, const void *key, size_t len)
{
	/* xxh3: ~1 ns for short keys and well mixed in every bit. The seed is
	 * fixed: partition assignment is part of the stored data's meaning
	 * and must not change between runs. */
	enum sl_part_kind kind = p->kind;

	switch (kind) {
	case SL_PART_RANGE:
		return sl__range_of(p->range, key, len);
	case SL_PART_DIRECTORY: {
		int64_t r = sl__dir_find(p->dir, key, len);
		if (r >= 0)
			return (uint32_t)r;
		kind = p->fallback;
		break;
	}
	default:
		break;
	}
	uint64_t h = XXH3_64bits(key, len);
	switch (kind) {
	case SL_PART_JUMP:
		return sl__jump(h, p->n_parts);
	case SL_PART_CONSISTENT:
		return sl__ring_of(p->ring, h);
	default:
		return sl__hash(h, p->n_parts);
	}
}
