#include "dedup/dedup.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "log/log.h"

enum { SL__SLOT_EMPTY = 0, SL__SLOT_PENDING, SL__SLOT_DURABLE };

struct sl__dedup_slot {
	uint64_t seq;
	uint64_t offset;
	uint32_t partition;
	uint32_t state;
};

struct sl__dedup_prod {
	uint64_t id;
	uint64_t next;
	uint64_t last_ns;
	uint32_t epoch;
	uint32_t npending;
	struct sl__dedup_slot slots[];
};

struct sl_dedup {
	uint32_t window;
	uint32_t max_producers;
	uint32_t count;
	uint32_t shift; /* 64 - log2(cap) for the multiplicative hash */
	uint64_t cap;   /* power of two, >= 2 * max_producers: probes stay short */
	uint64_t now_ns;
	uint64_t next_assign;
	struct sl__dedup_prod **tab;
};

#define SL__HDR_BYTES 40u
#define SL__PROD_BYTES 24u
#define SL__ENTRY_BYTES 24u

static uint64_t sl__hash(const struct sl_dedup *t, uint64_t id)
{
	return (id * UINT64_C(0x9e3779b97f4a7c15)) >> t->shift;
}

static uint64_t sl__find_pos(const struct sl_dedup *t, uint64_t id, bool *found)
{
	uint64_t mask = t->cap - 1, i = sl__hash(t, id);

	/* cap > count, so an empty bucket ends every probe. */
	for (;; i = (i + 1) & mask) {
		if (!t->tab[i]) {
			*found = false;
			return i;
		}
		if (t->tab[i]->id == id) {
			*found = true;
			return i;
		}
	}
}

static struct sl__dedup_prod *sl__find(const struct sl_dedup *t, uint64_t id)
{
	bool found;
	uint64_t i = sl__find_pos(t, id, &found);

	return found ? t->tab[i] : NULL;
}

/* Backward-shift deletion keeps every entry reachable from its home bucket
 * without tombstones. */
static void sl__remove_at(struct sl_dedup *t, uint64_t i)
{
	uint64_t mask = t->cap - 1, j = i;

	free(t->tab[i]);
	t->tab[i] = NULL;
	for (;;) {
		j = (j + 1) & mask;
		if (!t->tab[j])
			break;
		uint64_t home = sl__hash(t, t->tab[j]->id);
		/* Move j into the hole i unless its home lies cyclically in (i, j]. */
		bool stays = i <= j ? (home > i && home <= j) : (home > i || home <= j);
		if (!stays) {
			t->tab[i] = t->tab[j];
			t->tab[j] = NULL;
			i = j;
		}
	}
	t->count--;
}

static int sl__create_prod(struct sl_dedup *t, uint64_t id, uint32_t epoch,
			   struct sl__dedup_prod **out)
{
	bool found;
	uint64_t i = sl__find_pos(t, id, &found);
	struct sl__dedup_prod *p;

	if (found) {
		*out = t->tab[i];
		return 0;
	}
	if (t->count >= t->max_producers)
		return -ENOSPC;
	p = calloc(1, sizeof(*p) + (size_t)t->window * sizeof(p->slots[0]));
	if (!p)
		return -ENOMEM;
	p->id = id;
	p->epoch = epoch;
	p->last_ns = t->now_ns;
	t->tab[i] = p;
	t->count++;
	/* Assigned ids stay clear of ids seen so far. */
	if (id >= t->next_assign)
		t->next_assign = id + 1 ? id + 1 : 1;
	*out = p;
	return 0;
}

/*
 * Records `seq` durable. With `infer` (recovery), a sequence beyond the
 * window moves `next` up: it was accepted only when seq < next + W held, so
 * everything up to seq - W was durable then.
 */
static int sl__put_durable(struct sl_dedup *t, struct sl__dedup_prod *p, uint64_t seq,
			   uint32_t partition, uint64_t offset, bool infer)
{
	uint64_t w = t->window, mask = w - 1;
	struct sl__dedup_slot *s;

	if (seq >= p->next && seq - p->next >= w) {
		if (!infer)
			return -SL_ESEQ_GAP;
		p->next = seq - w + 1;
	}
	s = &p->slots[seq & mask];
	if (s->state != SL__SLOT_EMPTY) {
		/* All slot sequences stay below next + W, so a newer one in this
		 * slot means `seq` is below next and long superseded. */
		if (s->seq > seq || (s->seq == seq && s->state == SL__SLOT_DURABLE))
			return 0;
		if (s->state == SL__SLOT_PENDING)
			p->npending--;
	}
	s->seq = seq;
	s->offset = offset;
	s->partition = partition;
	s->state = SL__SLOT_DURABLE;
	/* At most W steps: slot sequences are below the old next + W. */
	for (;;) {
		s = &p->slots[p->next & mask];
		if (s->state != SL__SLOT_DURABLE || s->seq != p->next)
			break;
		p->next++;
	}
	return 0;
}

int sl_dedup_create(const struct sl_dedup_opts *opts, struct sl_dedup **out)
{
	struct sl_dedup *t;
	uint32_t w = opts && opts->window ? opts->window : 8192;
	uint32_t maxp = opts && opts->max_producers ? opts->max_producers : 4096;
	uint64_t cap = 16;
	uint32_t shift = 60;

	if (!sl_is_pow2(w) || w > SL_DEDUP_WINDOW_MAX || maxp > (UINT32_C(1) << 30))
		return -EINVAL;
	while (cap < 2 * (uint64_t)maxp) {
		cap <<= 1;
		shift--;
	}
	t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	t->tab = calloc(cap, sizeof(t->tab[0]));
	if (!t->tab) {
		free(t);
		return -ENOMEM;
	}
	t->window = w;
	t->max_producers = maxp;
	t->cap = cap;
	t->shift = shift;
	t->next_assign = 1;
	*out = t;
	return 0;
}

static void sl__clear(struct sl_dedup *t)
{
	for (uint64_t i = 0; i < t->cap; i++) {
		free(t->tab[i]);
		t->tab[i] = NULL;
	}
	t->count = 0;
	t->next_assign = 1;
}

void sl_dedup_destroy(struct sl_dedup *t)
{
	if (!t)
		return;
	sl__clear(t);
	free(t->tab);
	free(t);
}

void sl_dedup_set_clock(struct sl_dedup *t, uint64_t now_ns)
{
	t->now_ns = now_ns;
}

int sl_dedup_hello(struct sl_dedup *t, uint64_t want_id, uint64_t *id, uint32_t *epoch,
		   uint64_t *next)
{
	struct sl__dedup_prod *p;
	int ret;

	if (!want_id) {
		if (t->count >= t->max_producers)
			return -ENOSPC;
		/* count < cap, so at most count + 1 candidates are tried. */
		want_id = t->next_assign;
		while (!want_id || sl__find(t, want_id))
			want_id++;
		t->next_assign = want_id;
	}
	p = sl__find(t, want_id);
	if (!p) {
		ret = sl__create_prod(t, want_id, 0, &p);
		if (ret < 0)
			return ret;
	}
	if (p->epoch == UINT32_MAX)
		return -EOVERFLOW;
	p->epoch++;
	p->last_ns = t->now_ns;
	*id = p->id;
	*epoch = p->epoch;
	*next = p->next;
	return 0;
}

int sl_dedup_check(const struct sl_dedup *t, uint64_t id, uint32_t epoch, uint64_t seq,
		   uint32_t *partition, uint64_t *offset)
{
	const struct sl__dedup_prod *p = sl__find(t, id);
	const struct sl__dedup_slot *s;

	if (SL_UNLIKELY(!p))
		return -ENOENT;
	if (SL_UNLIKELY(epoch != p->epoch))
		return -SL_EFENCED;
	if (SL_UNLIKELY(seq >= SL_DEDUP_SEQ_LIMIT))
		return -SL_ESEQ_GAP;
	s = &p->slots[seq & (t->window - 1)];
	if (seq >= p->next) {
		if (seq - p->next >= t->window)
			return -SL_ESEQ_GAP;
		if (s->state == SL__SLOT_EMPTY || s->seq != seq)
			return SL_DEDUP_NEW;
	} else if (s->state == SL__SLOT_EMPTY || s->seq != seq) {
		*partition = UINT32_MAX;
		*offset = UINT64_MAX;
		return SL_DEDUP_STALE;
	}
	*partition = s->partition;
	*offset = s->offset;
	return s->state == SL__SLOT_DURABLE ? SL_DEDUP_DUP_DURABLE : SL_DEDUP_DUP_PENDING;
}

int sl_dedup_pending(struct sl_dedup *t, uint64_t id, uint64_t seq, uint32_t partition,
		     uint64_t offset)
{
	struct sl__dedup_prod *p = sl__find(t, id);
	struct sl__dedup_slot *s;

	if (!p)
		return -ENOENT;
	if (seq < p->next || seq - p->next >= t->window || seq >= SL_DEDUP_SEQ_LIMIT)
		return -SL_ESEQ_GAP;
	s = &p->slots[seq & (t->window - 1)];
	if (s->state != SL__SLOT_EMPTY && s->seq == seq)
		return -EEXIST;
	/* Whatever the slot held is below next (seq - W or older): forgotten. */
	s->seq = seq;
	s->offset = offset;
	s->partition = partition;
	s->state = SL__SLOT_PENDING;
	p->npending++;
	p->last_ns = t->now_ns;
	return 0;
}

int sl_dedup_durable(struct sl_dedup *t, uint64_t id, uint64_t seq, uint32_t partition,
		     uint64_t offset)
{
	struct sl__dedup_prod *p = sl__find(t, id);

	if (!p)
		return -ENOENT;
	if (seq >= SL_DEDUP_SEQ_LIMIT)
		return -SL_ESEQ_GAP;
	return sl__put_durable(t, p, seq, partition, offset, false);
}

int sl_dedup_observe(struct sl_dedup *t, uint64_t id, uint32_t epoch, uint64_t seq,
		     uint32_t partition, uint64_t offset)
{
	struct sl__dedup_prod *p;
	int ret;

	if (!id || seq >= SL_DEDUP_SEQ_LIMIT)
		return -EINVAL;
	ret = sl__create_prod(t, id, epoch, &p);
	if (ret < 0)
		return ret;
	if (epoch > p->epoch)
		p->epoch = epoch;
	return sl__put_durable(t, p, seq, partition, offset, true);
}

int sl_dedup_get(const struct sl_dedup *t, uint64_t id, uint32_t *epoch, uint64_t *next)
{
	const struct sl__dedup_prod *p = sl__find(t, id);

	if (!p)
		return -ENOENT;
	*epoch = p->epoch;
	*next = p->next;
	return 0;
}

uint32_t sl_dedup_count(const struct sl_dedup *t)
{
	return t->count;
}

uint32_t sl_dedup_expire(struct sl_dedup *t, uint64_t older_than_ns)
{
	uint32_t n = 0;
	uint64_t i = 0, steps = 0, limit = t->cap + t->count;

	/* A backward shift may move a not-yet-visited entry into bucket i, so
	 * i is revisited after a removal; every step either advances i or
	 * removes one producer, which bounds the loop by cap + count. */
	while (i < t->cap && steps++ < limit) {
		struct sl__dedup_prod *p = t->tab[i];
		if (p && !p->npending && p->last_ns < older_than_ns) {
			sl__remove_at(t, i);
			n++;
			continue;
		}
		i++;
	}
	return n;
}

/* ---- checkpoint ------------------------------------------------------------ */

static void sl__put32(uint8_t *b, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		b[i] = (uint8_t)(v >> (8 * i));
}

static void sl__put64(uint8_t *b, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		b[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t sl__get32(const uint8_t *b)
{
	uint32_t v = 0;
	for (int i = 0; i < 4; i++)
		v |= (uint32_t)b[i] << (8 * i);
	return v;
}

static uint64_t sl__get64(const uint8_t *b)
{
	uint64_t v = 0;
	for (int i = 0; i < 8; i++)
		v |= (uint64_t)b[i] << (8 * i);
	return v;
}

/* sl_crc32c takes an int length underneath: chain in chunks so a
 * checkpoint above 2 GiB (many producers with large windows) is covered. */
static uint32_t sl__crc(const uint8_t *b, size_t len)
{
	uint32_t crc = 0;
	const size_t chunk = (size_t)1 << 30;

	while (len > chunk) {
		crc = sl_crc32c(crc, b, chunk);
		b += chunk;
		len -= chunk;
	}
	return sl_crc32c(crc, b, len);
}

static uint32_t sl__durable_slots(const struct sl_dedup *t, const struct sl__dedup_prod *p)
{
	uint32_t n = 0;
	for (uint32_t i = 0; i < t->window; i++)
		n += p->slots[i].state == SL__SLOT_DURABLE;
	return n;
}

size_t sl_dedup_checkpoint_bound(const struct sl_dedup *t, uint32_t nmarks)
{
	return SL__HDR_BYTES + 8 * (size_t)nmarks + 4 +
	       (size_t)t->count * (SL__PROD_BYTES + (size_t)t->window * SL__ENTRY_BYTES);
}

static int sl__cmp_prod(const void *a, const void *b)
{
	uint64_t x = (*(struct sl__dedup_prod *const *)a)->id;
	uint64_t y = (*(struct sl__dedup_prod *const *)b)->id;
	return x < y ? -1 : x > y;
}

int sl_dedup_checkpoint_write(const struct sl_dedup *t, const uint64_t *marks, uint32_t nmarks,
			      void *buf, size_t cap, size_t *len)
{
	struct sl__dedup_prod **ps = NULL;
	uint8_t *b = buf;
	size_t need = SL__HDR_BYTES + 8 * (size_t)nmarks + 4, at;
	uint32_t n = 0;
	int ret = 0;

	if (t->count) {
		ps = malloc(t->count * sizeof(*ps));
		if (!ps)
			return -ENOMEM;
	}
	for (uint64_t i = 0; i < t->cap; i++) {
		if (t->tab[i]) {
			ps[n++] = t->tab[i];
			need += SL__PROD_BYTES +
				(size_t)sl__durable_slots(t, t->tab[i]) * SL__ENTRY_BYTES;
		}
	}
	if (need > cap) {
		ret = -ENOSPC;
		goto out;
	}
	/* Ascending ids and slot order make the bytes a function of the state. */
	if (n)
		qsort(ps, n, sizeof(*ps), sl__cmp_prod);
	sl__put32(b + 0, SL_DEDUP_CKPT_MAGIC);
	sl__put32(b + 4, SL_DEDUP_CKPT_VERSION);
	sl__put32(b + 8, t->window);
	sl__put32(b + 12, nmarks);
	sl__put64(b + 16, n);
	sl__put64(b + 24, t->next_assign);
	sl__put64(b + 32, need);
	at = SL__HDR_BYTES;
	for (uint32_t i = 0; i < nmarks; i++, at += 8)
		sl__put64(b + at, marks[i]);
	for (uint32_t k = 0; k < n; k++) {
		const struct sl__dedup_prod *p = ps[k];
		sl__put64(b + at, p->id);
		sl__put64(b + at + 8, p->next);
		sl__put32(b + at + 16, p->epoch);
		sl__put32(b + at + 20, sl__durable_slots(t, p));
		at += SL__PROD_BYTES;
		for (uint32_t i = 0; i < t->window; i++) {
			const struct sl__dedup_slot *s = &p->slots[i];
			if (s->state != SL__SLOT_DURABLE)
				continue;
			sl__put64(b + at, s->seq);
			sl__put64(b + at + 8, s->offset);
			sl__put32(b + at + 16, s->partition);
			sl__put32(b + at + 20, 0);
			at += SL__ENTRY_BYTES;
		}
	}
	sl__put32(b + at, sl__crc(b, at));
	*len = at + 4;
out:
	free(ps);
	return ret;
}

static int sl__bad(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (err && errlen) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return -SL_ECORRUPT;
}

int sl_dedup_checkpoint_read(struct sl_dedup *t, const void *buf, size_t len, uint64_t *marks,
			     uint32_t max_marks, uint32_t *nmarks, char *err, size_t errlen)
{
	const uint8_t *b = buf;
	uint32_t version, window, nm;
	uint64_t np, at, prev_id = 0;
	int ret = 0;

	if (err && errlen)
		err[0] = '\0';
	if (t->count)
		return -EBUSY;
	if (len < SL__HDR_BYTES + 4) {
		ret = sl__bad(err, errlen, "checkpoint truncated: %zu bytes, header needs %u", len,
			      SL__HDR_BYTES + 4);
		goto out;
	}
	if (sl__get32(b) != SL_DEDUP_CKPT_MAGIC) {
		ret = sl__bad(err, errlen, "not a dedup checkpoint (bad magic)");
		goto out;
	}
	version = sl__get32(b + 4);
	if (version != SL_DEDUP_CKPT_VERSION) {
		ret = sl__bad(err, errlen, "checkpoint version %u not supported (want %u)", version,
			      SL_DEDUP_CKPT_VERSION);
		goto out;
	}
	if (sl__get64(b + 32) != len) {
		ret = sl__bad(err, errlen,
			      "checkpoint truncated or padded: header says %llu bytes, got %zu",
			      (unsigned long long)sl__get64(b + 32), len);
		goto out;
	}
	if (sl__get32(b + len - 4) != sl__crc(b, len - 4)) {
		ret = sl__bad(err, errlen, "checkpoint checksum mismatch");
		goto out;
	}
	window = sl__get32(b + 8);
	nm = sl__get32(b + 12);
	np = sl__get64(b + 16);
	t->next_assign = sl__get64(b + 24);
	if (!sl_is_pow2(window) || window > SL_DEDUP_WINDOW_MAX) {
		ret = sl__bad(err, errlen, "checkpoint window %u is not a power of two <= %u",
			      window, SL_DEDUP_WINDOW_MAX);
		goto out;
	}
	if (!t->next_assign) {
		ret = sl__bad(err, errlen, "checkpoint next id is 0");
		goto out;
	}
	/* Sizes are checked against what remains before any multiplication
	 * can overflow. */
	if (nm > (len - SL__HDR_BYTES - 4) / 8) {
		ret = sl__bad(err, errlen, "checkpoint marks (%u) overrun its length", nm);
		goto out;
	}
	at = SL__HDR_BYTES + 8 * (uint64_t)nm;
	if (np > (len - 4 - at) / SL__PROD_BYTES) {
		ret = sl__bad(err, errlen, "checkpoint producers (%llu) overrun its length",
			      (unsigned long long)np);
		goto out;
	}
	if (nm > max_marks || np > t->max_producers) {
		if (err && errlen)
			snprintf(err, errlen,
				 "checkpoint holds %u marks, %llu producers; room for %u, %u",
				 nm, (unsigned long long)np, max_marks, t->max_producers);
		ret = -ENOSPC;
		goto out;
	}
	for (uint32_t i = 0; i < nm; i++)
		marks[i] = sl__get64(b + SL__HDR_BYTES + 8 * (size_t)i);
	*nmarks = nm;
	for (uint64_t k = 0; k < np; k++) {
		struct sl__dedup_prod *p;
		uint64_t id, next;
		uint32_t n;

		if (len - 4 - at < SL__PROD_BYTES) {
			ret = sl__bad(err, errlen, "checkpoint producer %llu truncated",
				      (unsigned long long)k);
			goto out;
		}
		id = sl__get64(b + at);
		next = sl__get64(b + at + 8);
		n = sl__get32(b + at + 20);
		/* next reaches the limit itself once 2^63 - 1 is durable. */
		if (!id || next > SL_DEDUP_SEQ_LIMIT) {
			ret = sl__bad(err, errlen,
				      "checkpoint producer %llu: id 0 or next out of range",
				      (unsigned long long)k);
			goto out;
		}
		/* Ascending as written; also rules out an id given twice. */
		if (id <= prev_id) {
			ret = sl__bad(err, errlen, "checkpoint producer ids not ascending at %llu",
				      (unsigned long long)id);
			goto out;
		}
		prev_id = id;
		at += SL__PROD_BYTES;
		if (n > window || n > (len - 4 - at) / SL__ENTRY_BYTES) {
			ret = sl__bad(err, errlen, "checkpoint producer %llu: %u entries overrun",
				      (unsigned long long)id, n);
			goto out;
		}
		ret = sl__create_prod(t, id, sl__get32(b + at - SL__PROD_BYTES + 16), &p);
		if (ret < 0)
			goto out;
		p->next = next;
		for (uint32_t i = 0; i < n; i++, at += SL__ENTRY_BYTES) {
			uint64_t seq = sl__get64(b + at);
			if (seq >= SL_DEDUP_SEQ_LIMIT || seq == next || sl__get32(b + at + 20)) {
				ret = sl__bad(err, errlen,
					      "checkpoint producer %llu: bad entry, sequence %llu",
					      (unsigned long long)id, (unsigned long long)seq);
				goto out;
			}
			/* A window that shrank since the write is handled like
			 * recovery: an entry beyond it moves next. */
			sl__put_durable(t, p, seq, sl__get32(b + at + 16), sl__get64(b + at + 8),
					true);
		}
	}
	if (at != len - 4)
		ret = sl__bad(err, errlen, "checkpoint has %llu unexpected trailing bytes",
			      (unsigned long long)(len - 4 - at));
out:
	if (ret < 0)
		sl__clear(t);
	return ret;
}
