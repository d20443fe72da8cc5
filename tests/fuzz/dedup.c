/*
 * Fuzz target: a dedup checkpoint read back from disk after a crash or
 * damage.
 *
 * Byte 0 picks the mode, the rest is the checkpoint. Bit 0 of byte 0 set:
 * the length field and the CRC32C trailer are patched to match, so the
 * fuzzer gets past the checksum and reaches the structural checks (counts,
 * ids, windows, entries); clear: the bytes are read as they are. Bit 1
 * picks the table's window (8 or 64), so checkpoints of another window load
 * too.
 *
 * Checked: sl_dedup_checkpoint_read never crashes or leaks; on failure the
 * table is empty; on success the state is canonical: writing it, reading
 * that back into a fresh table and writing again gives the same bytes, and
 * the table answers admission queries and takes new sessions and events
 * without error.
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

#define MAX_MARKS 16

static struct sl_dedup *mk(uint32_t window)
{
	struct sl_dedup_opts o = {.window = window, .max_producers = 64};
	struct sl_dedup *t = NULL;
	CHECK(sl_dedup_create(&o, &t) == 0);
	return t;
}

static uint8_t *write_all(const struct sl_dedup *t, const uint64_t *marks, uint32_t nm,
			  size_t *len)
{
	size_t cap = sl_dedup_checkpoint_bound(t, nm);
	uint8_t *b = malloc(cap);
	CHECK(b);
	CHECK(sl_dedup_checkpoint_write(t, marks, nm, b, cap, len) == 0);
	return b;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint64_t marks[MAX_MARKS], marks2[MAX_MARKS];
	uint32_t nm = 0, nm2 = 0, window;
	struct sl_dedup *t, *t2;
	uint8_t *buf, *w1, *w2;
	size_t len, l1, l2;
	char err[256];
	int ret;

	if (size < 1)
		return 0;
	window = data[0] & 2 ? 64 : 8;
	len = size - 1;
	buf = malloc(len ? len : 1);
	CHECK(buf);
	memcpy(buf, data + 1, len);
	if ((data[0] & 1) && len >= 44) {
		uint64_t l = len;
		for (int i = 0; i < 8; i++)
			buf[32 + i] = (uint8_t)(l >> (8 * i));
		uint32_t c = sl_crc32c(0, buf, len - 4);
		for (int i = 0; i < 4; i++)
			buf[len - 4 + i] = (uint8_t)(c >> (8 * i));
	}

	t = mk(window);
	ret = sl_dedup_checkpoint_read(t, buf, len, marks, MAX_MARKS, &nm, err, sizeof(err));
	if (ret < 0) {
		CHECK(ret == -SL_ECORRUPT || ret == -ENOSPC || ret == -ENOMEM);
		CHECK(sl_dedup_count(t) == 0);
		CHECK(ret != -SL_ECORRUPT || err[0]);
		goto out;
	}
	CHECK(nm <= MAX_MARKS);

	w1 = write_all(t, marks, nm, &l1);
	t2 = mk(window);
	ret = sl_dedup_checkpoint_read(t2, w1, l1, marks2, MAX_MARKS, &nm2, err, sizeof(err));
	if (ret)
		fprintf(stderr, "re-read failed: %s\n", err);
	CHECK(ret == 0);
	CHECK(nm2 == nm && (nm == 0 || memcmp(marks, marks2, nm * sizeof(marks[0])) == 0));
	w2 = write_all(t2, marks2, nm2, &l2);
	CHECK(l1 == l2 && memcmp(w1, w2, l1) == 0);
	free(w1);
	free(w2);
	sl_dedup_destroy(t2);

	/* The loaded table keeps working: a new session of one of its
	 * producers (taken from the input) and a fresh one. */
	{
		uint64_t want = len >= 48 ? (uint64_t)buf[40] | (uint64_t)buf[41] << 8 : 0;
		uint64_t id, next, o;
		uint32_t ep, p;
		ret = sl_dedup_hello(t, want, &id, &ep, &next);
		CHECK(ret == 0 || ret == -ENOSPC || ret == -EOVERFLOW);
		if (ret == 0) {
			for (uint64_t s = next > 4 ? next - 4 : 0; s < next + 4; s++) {
				ret = sl_dedup_check(t, id, ep, s, &p, &o);
				/* A sequence space used up to 2^63 refuses the rest. */
				CHECK((ret >= 0 && ret <= SL_DEDUP_STALE) ||
				      (ret == -SL_ESEQ_GAP && s >= SL_DEDUP_SEQ_LIMIT));
				CHECK(s < next || ret != SL_DEDUP_STALE);
				if (ret == SL_DEDUP_NEW) {
					CHECK(sl_dedup_pending(t, id, s, 1, s) == 0);
					CHECK(sl_dedup_durable(t, id, s, 1, s) == 0);
				}
			}
		}
	}
out:
	sl_dedup_destroy(t);
	free(buf);
	return 0;
}
