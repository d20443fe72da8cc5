/*
 * Fuzz target: a partition's dedup checkpoint read back from disk after a
 * crash or damage.
 *
 * Byte 0 picks the mode, the rest is the checkpoint. Bit 0 of byte 0 set:
 * the length field and the CRC32C trailer are patched to match, so the
 * fuzzer gets past the checksum and reaches the structural checks (counts,
 * ids, entries, marks, windows); clear: the bytes are read as they are.
 * Bit 1 picks the table's window (8 or 64), so checkpoints of another
 * window load too.
 *
 * Checked: sl_dedup_checkpoint_read never crashes or leaks; on failure the
 * table is empty and a corruption comes with a message; on success the state
 * is canonical (writing it, reading that into a fresh table and writing
 * again gives the same bytes) and the table keeps answering: each producer's
 * last is a duplicate below the mark, the next sequence is new and records
 * at the mark, the forgotten mark (version 3) refuses exactly the resends
 * it must, and a new producer always fits (past the bound the least
 * recently used go).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "dedup/dedup.h"
#include "log/log.h"

#define CHECK(x)                                                                                   \
	do {                                                                                       \
		if (!(x)) {                                                                        \
			fprintf(stderr, "dedup.c:%d: check failed: %s\n", __LINE__, #x);           \
			abort();                                                                   \
		}                                                                                  \
	} while (0)

#define MAX_PRODUCERS 64

static struct sl_dedup *mk(uint32_t window)
{
	struct sl_dedup_opts o = {.window = window, .max_producers = MAX_PRODUCERS};
	struct sl_dedup *t = NULL;
	CHECK(sl_dedup_create(&o, &t) == 0);
	return t;
}

static uint8_t *write_all(const struct sl_dedup *t, uint64_t upto, size_t *len)
{
	size_t cap = sl_dedup_checkpoint_bound(t);
	uint8_t *b = malloc(cap);
	CHECK(b);
	CHECK(sl_dedup_checkpoint_write(t, upto, b, cap, len) == 0);
	CHECK(*len <= cap);
	return b;
}

struct prods {
	uint32_t n;
	uint64_t id[MAX_PRODUCERS], last[MAX_PRODUCERS];
	uint32_t epoch[MAX_PRODUCERS];
};

static void collect(void *arg, uint64_t id, uint32_t epoch, uint64_t last)
{
	struct prods *ps = arg;
	CHECK(ps->n < MAX_PRODUCERS);
	ps->id[ps->n] = id;
	ps->epoch[ps->n] = epoch;
	ps->last[ps->n++] = last;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct sl_dedup *t, *t2;
	uint64_t upto = 0, upto2 = 0;
	uint8_t *buf, *w1, *w2;
	size_t len, l1, l2;
	uint32_t window;
	char err[256];
	int ret;

	if (size < 1)
		return 0;
	window = data[0] & 2 ? 64 : 8;
	len = size - 1;
	buf = malloc(len ? len : 1);
	CHECK(buf);
	memcpy(buf, data + 1, len);
	if ((data[0] & 1) && len >= SL_CKPT_HDR + SL_CKPT_TRAILER) {
		sl_put_le64(buf + SL_CKPT_LENGTH, len);
		sl_put_le32(buf + len - SL_CKPT_TRAILER, sl_crc32c(0, buf, len - SL_CKPT_TRAILER));
	}

	t = mk(window);
	err[0] = '\0';
	ret = sl_dedup_checkpoint_read(t, buf, len, &upto, err, sizeof(err));
	if (ret < 0) {
		CHECK(ret == -SL_ECORRUPT || ret == -ENOSPC || ret == -ENOMEM);
		CHECK(sl_dedup_count(t) == 0);
		CHECK(ret == -ENOMEM || err[0]);
		goto out;
	}

	w1 = write_all(t, upto, &l1);
	t2 = mk(window);
	ret = sl_dedup_checkpoint_read(t2, w1, l1, &upto2, err, sizeof(err));
	if (ret)
		fprintf(stderr, "re-read failed: %s\n", err);
	CHECK(ret == 0);
	CHECK(upto2 == upto);
	w2 = write_all(t2, upto2, &l2);
	CHECK(l1 == l2 && memcmp(w1, w2, l1) == 0);
	free(w1);
	free(w2);
	sl_dedup_destroy(t2);

	/* The loaded table keeps working. */
	struct prods ps = {0};
	sl_dedup_foreach(t, collect, &ps);
	CHECK(ps.n == sl_dedup_count(t));
	for (uint32_t i = 0; i < ps.n; i++) {
		uint64_t off = 0, last = ps.last[i], lo = last > 3 ? last - 3 : 0;
		CHECK(sl_dedup_check(t, ps.id[i], ps.epoch[i], last, &off) == SL_DEDUP_DUP);
		CHECK(off < upto);
		for (uint64_t s = lo; s <= last; s++) {
			ret = sl_dedup_check(t, ps.id[i], ps.epoch[i], s, &off);
			CHECK(ret == SL_DEDUP_DUP || ret == SL_DEDUP_STALE || ret == -SL_ESEQ_GAP);
		}
		if (ps.epoch[i])
			CHECK(sl_dedup_check(t, ps.id[i], ps.epoch[i] - 1, last, &off) ==
			      -SL_EFENCED);
		/* last + 1 is new unless last is the very last sequence. */
		if (last + 1 < SL_DEDUP_SEQ_LIMIT &&
		    i < UINT64_MAX - upto) { /* no wrap of upto + i */
			CHECK(sl_dedup_check(t, ps.id[i], ps.epoch[i], last + 1, &off) ==
			      SL_DEDUP_NEW);
			CHECK(sl_dedup_record(t, ps.id[i], ps.epoch[i], last + 1, upto + i) == 0);
			CHECK(sl_dedup_check(t, ps.id[i], ps.epoch[i], last + 1, &off) ==
			      SL_DEDUP_DUP);
			CHECK(off == upto + i);
		}
	}
	/* A producer id the checkpoint does not hold (ids ascend, so one
	 * above the highest is free unless that is the top id). */
	{
		uint64_t top = 0;
		for (uint32_t i = 0; i < ps.n; i++)
			if (ps.id[i] > top)
				top = ps.id[i];
		if (top < UINT64_MAX) {
			uint64_t id = top + 1, fm = sl_dedup_forgot_ms(t);
			/* Unknown here: a resend first sent before the newest
			 * forgotten record is refused, one after it is not. */
			if (fm)
				CHECK(sl_dedup_resend_check(t, id, fm) == -SL_EPRODUCER_EXPIRED);
			if (fm < UINT64_MAX)
				CHECK(sl_dedup_resend_check(t, id, fm + 1) == 0);
			/* Past the bound the least recently used go: it fits. */
			ret = sl_dedup_record(t, id, 1, 0, UINT64_MAX);
			CHECK(ret == 0);
			CHECK(sl_dedup_count(t) <= MAX_PRODUCERS);
		}
	}
out:
	sl_dedup_destroy(t);
	free(buf);
	return 0;
}
