/* The sequence table's checkpoint: dedup.h says what it holds,
 * checkpoint_format.h is its bytes. */
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "dedup/dedup.h"
#include "dedup/dedup_impl.h"
#include "log/log.h"

/* ---- checkpoint ------------------------------------------------------------ */

size_t sl_dedup_checkpoint_bound(const struct sl_dedup *t)
{
	return SL_CKPT_HDR + SL_CKPT_TRAILER + (size_t)t->count * SL_CKPT_PROD +
	       (size_t)t->entries * SL_CKPT_ENTRY;
}

static int sl__cmp_prod(const void *a, const void *b)
{
	uint64_t x = (*(const struct sl__dedup_prod *const *)a)->id;
	uint64_t y = (*(const struct sl__dedup_prod *const *)b)->id;
	return x < y ? -1 : x > y;
}

int sl_dedup_checkpoint_write(const struct sl_dedup *t, uint64_t upto, void *buf, size_t cap,
                              size_t *len)
{
	const struct sl__dedup_prod **ps = NULL;
	uint8_t *b = buf;
	size_t need = SL_CKPT_HDR + SL_CKPT_TRAILER, at;
	uint64_t np = 0;
	uint32_t n = 0;
	int ret = 0;

	if (t->count) {
		ps = malloc(t->count * sizeof(*ps));
		if (!ps)
			return -ENOMEM;
	}
	for (uint64_t i = 0; i < t->cap; i++) {
		const struct sl__dedup_prod *p = &t->tab[i];
		uint32_t k, j0;
		if (!p->id)
			continue;
		/* Entries below kept may still be held (dropped lazily): the
		 * checkpoint leaves them out, so its bytes depend only on
		 * what the table answers. */
		k = sl__prefix_below(p, upto);
		j0 = sl__live_from(p);
		if (k <= j0)
			continue;
		ps[n++] = p;
		need += SL_CKPT_PROD + (size_t)(k - j0) * SL_CKPT_ENTRY;
	}
	if (need > cap) {
		ret = -ENOSPC;
		goto out;
	}
	/* Ascending ids and FIFO order make the bytes a function of the state. */
	if (n)
		qsort(ps, n, sizeof(*ps), sl__cmp_prod);
	np = n;
	sl_put_le32(b + SL_CKPT_MAGIC, SL_DEDUP_CKPT_MAGIC);
	sl_put_le32(b + SL_CKPT_VERSION, SL_DEDUP_CKPT_VERSION);
	sl_put_le32(b + SL_CKPT_WINDOW, t->window);
	sl_put_le32(b + SL_CKPT_RESERVED, 0);
	sl_put_le64(b + SL_CKPT_UPTO, upto);
	sl_put_le64(b + SL_CKPT_NPROD, np);
	sl_put_le64(b + SL_CKPT_LENGTH, need);
	sl_put_le64(b + SL_CKPT_FORGOT, t->forgot_ms);
	at = SL_CKPT_HDR;
	for (uint32_t i = 0; i < n; i++) {
		const struct sl__dedup_prod *p = ps[i];
		uint32_t k = sl__prefix_below(p, upto), j0 = sl__live_from(p);
		sl_put_le64(b + at + SL_CKPT_P_ID, p->id);
		sl_put_le64(b + at + SL_CKPT_P_KEPT, p->kept);
		sl_put_le32(b + at + SL_CKPT_P_EPOCH, p->epoch);
		sl_put_le32(b + at + SL_CKPT_P_N, k - j0);
		sl_put_le64(b + at + SL_CKPT_P_LAST_MS, p->last_ms);
		at += SL_CKPT_PROD;
		for (uint32_t j = j0; j < k; j++, at += SL_CKPT_ENTRY) {
			sl_put_le64(b + at + SL_CKPT_E_SEQ, sl__at(p, j)->seq);
			sl_put_le64(b + at + SL_CKPT_E_OFFSET, sl__at(p, j)->offset);
		}
	}
	sl_put_le32(b + at, sl_crc32c(0, b, at));
	*len = at + SL_CKPT_TRAILER;
out:
	free(ps);
	return ret;
}

static int sl__bad(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

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

static uint32_t sl__pow2_at_least(uint32_t v, uint32_t min)
{
	uint32_t c = min;
	while (c < v)
		c <<= 1;
	return c;
}

/* One producer's record from b + at (its header already bounds-checked). */
static int sl__read_prod(struct sl_dedup *t, const uint8_t *b, size_t end, uint64_t *at_io,
                         uint64_t upto, uint32_t window, uint32_t prod_size, uint64_t prev_id,
                         uint64_t *id_out, char *err, size_t errlen)
{
	uint64_t at = *at_io, id = sl_get_le64(b + at + SL_CKPT_P_ID),
	         kept = sl_get_le64(b + at + SL_CKPT_P_KEPT);
	uint32_t epoch = sl_get_le32(b + at + SL_CKPT_P_EPOCH),
	         n = sl_get_le32(b + at + SL_CKPT_P_N), skip, fifo_cap;
	uint64_t prev_seq = 0, prev_off = 0, last, first = at + prod_size;
	uint64_t last_ms = prod_size == SL_CKPT_PROD ? sl_get_le64(b + at + SL_CKPT_P_LAST_MS) : 0;
	struct sl__dedup_prod *p;
	int ret;

	*id_out = id;
	if (!id)
		return sl__bad(err, errlen, "dedup checkpoint: producer id 0");
	/* Ascending as written; also rules out an id given twice. */
	if (id <= prev_id)
		return sl__bad(err, errlen,
		               "dedup checkpoint: producer ids not ascending (%llu after %llu)",
		               (unsigned long long)id, (unsigned long long)prev_id);
	if (!n)
		return sl__bad(err, errlen, "dedup checkpoint: producer %llu has no entries",
		               (unsigned long long)id);
	/* A FIFO never holds more than its window. */
	if (n > window)
		return sl__bad(err, errlen,
		               "dedup checkpoint: producer %llu has %u entries, window is %u",
		               (unsigned long long)id, n, window);
	if (n > (end - first) / SL_CKPT_ENTRY)
		return sl__bad(err, errlen,
		               "dedup checkpoint: producer %llu: %u entries overrun its length",
		               (unsigned long long)id, n);
	for (uint32_t i = 0; i < n; i++) {
		uint64_t seq = sl_get_le64(b + first + (uint64_t)i * SL_CKPT_ENTRY + SL_CKPT_E_SEQ);
		uint64_t off =
		    sl_get_le64(b + first + (uint64_t)i * SL_CKPT_ENTRY + SL_CKPT_E_OFFSET);
		if (seq >= SL_DEDUP_SEQ_LIMIT)
			return sl__bad(err, errlen,
			               "dedup checkpoint: producer %llu: sequence %llu >= 2^63",
			               (unsigned long long)id, (unsigned long long)seq);
		if (i && (seq <= prev_seq || off <= prev_off))
			return sl__bad(err, errlen,
			               "dedup checkpoint: producer %llu: entry %u (sequence %llu, "
			               "offset %llu) does not increase on (%llu, %llu)",
			               (unsigned long long)id, i, (unsigned long long)seq,
			               (unsigned long long)off, (unsigned long long)prev_seq,
			               (unsigned long long)prev_off);
		if (off >= upto)
			return sl__bad(err, errlen,
			               "dedup checkpoint: producer %llu: offset %llu is not below "
			               "the mark %llu",
			               (unsigned long long)id, (unsigned long long)off,
			               (unsigned long long)upto);
		prev_seq = seq;
		prev_off = off;
	}
	last = prev_seq;
	if (kept > sl_get_le64(b + first))
		return sl__bad(err, errlen,
		               "dedup checkpoint: producer %llu: kept %llu above its oldest entry "
		               "%llu",
		               (unsigned long long)id, (unsigned long long)kept,
		               (unsigned long long)sl_get_le64(b + first));
	/* Another window: cut to this table's. A smaller stored window keeps
	 * its larger `kept`: the entries below it are not there. */
	if (sl__kept_floor(t, last) > kept)
		kept = sl__kept_floor(t, last);
	for (skip = 0;
	     sl_get_le64(b + first + (uint64_t)skip * SL_CKPT_ENTRY + SL_CKPT_E_SEQ) < kept; skip++)
		;
	fifo_cap = sl__pow2_at_least(n - skip, sl__first_fifo_cap(t));
	ret = sl__dedup_create_prod(
	    t, id, epoch, sl_get_le64(b + first + (uint64_t)skip * SL_CKPT_ENTRY + SL_CKPT_E_SEQ),
	    sl_get_le64(b + first + (uint64_t)skip * SL_CKPT_ENTRY + SL_CKPT_E_OFFSET), fifo_cap,
	    &p);
	if (ret == -ENOSPC && err && errlen)
		snprintf(err, errlen, "dedup checkpoint: more producers than the table's %u",
		         t->max_producers);
	if (ret < 0)
		return ret;
	for (uint32_t i = skip + 1; i < n; i++) {
		const uint8_t *e = b + first + (uint64_t)i * SL_CKPT_ENTRY;
		p->fifo[p->n++] = (struct sl__dedup_ent){sl_get_le64(e + SL_CKPT_E_SEQ),
		                                         sl_get_le64(e + SL_CKPT_E_OFFSET)};
		t->entries++;
	}
	p->last = last;
	p->kept = kept;
	p->last_ms = last_ms;
	*at_io = first + (uint64_t)n * SL_CKPT_ENTRY;
	return 0;
}

int sl_dedup_checkpoint_read(struct sl_dedup *t, const void *buf, size_t len, uint64_t *upto,
                             char *err, size_t errlen)
{
	const uint8_t *b = buf;
	uint32_t version, window, hdr = SL_CKPT_HDR, prod = SL_CKPT_PROD;
	uint64_t np, at, mark, prev_id = 0, end;
	int ret = 0;

	if (err && errlen)
		err[0] = '\0';
	if (t->count)
		return -EBUSY;
	if (len < SL_CKPT_HDR_V2 + SL_CKPT_TRAILER) {
		ret = sl__bad(err, errlen, "dedup checkpoint truncated: %zu bytes, header needs %u",
		              len, SL_CKPT_HDR_V2 + SL_CKPT_TRAILER);
		goto out;
	}
	if (sl_get_le32(b + SL_CKPT_MAGIC) != SL_DEDUP_CKPT_MAGIC) {
		ret = sl__bad(err, errlen, "not a dedup checkpoint (bad magic 0x%08x)",
		              sl_get_le32(b + SL_CKPT_MAGIC));
		goto out;
	}
	version = sl_get_le32(b + SL_CKPT_VERSION);
	if (version == 2) {
		hdr = SL_CKPT_HDR_V2;
		prod = SL_CKPT_PROD_V2;
	} else if (version != SL_DEDUP_CKPT_VERSION) {
		ret =
		    sl__bad(err, errlen, "dedup checkpoint version %u not supported (want 2 or %u)",
		            version, SL_DEDUP_CKPT_VERSION);
		goto out;
	} else if (len < SL_CKPT_HDR + SL_CKPT_TRAILER) {
		ret = sl__bad(err, errlen, "dedup checkpoint truncated: %zu bytes, header needs %u",
		              len, SL_CKPT_HDR + SL_CKPT_TRAILER);
		goto out;
	}
	if (sl_get_le64(b + SL_CKPT_LENGTH) != len) {
		ret = sl__bad(err, errlen,
		              "dedup checkpoint truncated or padded: header says %llu bytes, "
		              "got %zu",
		              (unsigned long long)sl_get_le64(b + SL_CKPT_LENGTH), len);
		goto out;
	}
	if (sl_get_le32(b + len - SL_CKPT_TRAILER) != sl_crc32c(0, b, len - SL_CKPT_TRAILER)) {
		ret = sl__bad(err, errlen, "dedup checkpoint checksum mismatch");
		goto out;
	}
	window = sl_get_le32(b + SL_CKPT_WINDOW);
	mark = sl_get_le64(b + SL_CKPT_UPTO);
	np = sl_get_le64(b + SL_CKPT_NPROD);
	if (!sl_is_pow2(window) || window > SL_DEDUP_WINDOW_MAX) {
		ret = sl__bad(err, errlen, "dedup checkpoint window %u is not a power of two <= %u",
		              window, SL_DEDUP_WINDOW_MAX);
		goto out;
	}
	if (sl_get_le32(b + SL_CKPT_RESERVED)) {
		ret = sl__bad(err, errlen, "dedup checkpoint reserved header field is not zero");
		goto out;
	}
	end = len - SL_CKPT_TRAILER;
	/* Counts are checked against what remains before any multiplication
	 * can overflow. */
	if (np > (end - hdr) / prod) {
		ret = sl__bad(err, errlen, "dedup checkpoint: %llu producers overrun its length",
		              (unsigned long long)np);
		goto out;
	}
	if (np > t->max_producers) {
		if (err && errlen)
			snprintf(err, errlen,
			         "dedup checkpoint holds %llu producers, the table has room for %u",
			         (unsigned long long)np, t->max_producers);
		ret = -ENOSPC;
		goto out;
	}
	at = hdr;
	for (uint64_t k = 0; k < np; k++) {
		uint64_t id;
		if (end - at < prod) {
			ret = sl__bad(err, errlen,
			              "dedup checkpoint: producer %llu of %llu truncated",
			              (unsigned long long)k, (unsigned long long)np);
			goto out;
		}
		ret = sl__read_prod(t, b, end, &at, mark, window, prod, prev_id, &id, err, errlen);
		if (ret < 0)
			goto out;
		prev_id = id;
	}
	if (at != end) {
		ret = sl__bad(err, errlen, "dedup checkpoint has %llu unexpected trailing bytes",
		              (unsigned long long)(end - at));
		goto out;
	}
	*upto = mark;
	if (version == SL_DEDUP_CKPT_VERSION)
		t->forgot_ms = sl_get_le64(b + SL_CKPT_FORGOT);
out:
	if (ret < 0)
		sl__dedup_clear(t);
	return ret;
}
