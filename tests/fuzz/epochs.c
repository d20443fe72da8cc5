/*
 * Fuzz target: the leader-epoch file's loader (log/epochs.c).
 *
 * The input is a whole `leader-epochs` file. Checked: sl_epochs_decode
 * returns 0 or -SL_ECORRUPT (with a message) and nothing else; what it
 * accepts is ordered (epochs increasing, starts not decreasing), encodes
 * back to the same bytes, and answers sl_epochs_end_of within the list.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "log/log.h"

#define CHECK(x)                                                                                   \
	do {                                                                                       \
		if (!(x)) {                                                                        \
			fprintf(stderr, "epochs fuzz: %s failed\n", #x);                           \
			abort();                                                                   \
		}                                                                                  \
	} while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct sl_epochs *e = sl_epochs_new("fuzz");
	char err[400];
	err[0] = 0;
	CHECK(e);
	int ret = sl_epochs_decode(e, data, size, err, sizeof(err));
	CHECK(ret == 0 || ret == -SL_ECORRUPT || ret == -ENOMEM);
	if (ret == -SL_ECORRUPT)
		CHECK(err[0] && sl_epochs_count(e) == 0);
	if (ret == 0) {
		size_t n = sl_epochs_encode(e, NULL, 0);
		CHECK(n == size);
		uint8_t *back = malloc(n);
		CHECK(back);
		CHECK(sl_epochs_encode(e, back, n) == n);
		CHECK(memcmp(back, data, n) == 0);
		free(back);
		const struct sl_epoch *last = sl_epochs_last(e);
		if (last) {
			uint64_t end;
			uint32_t found;
			uint64_t log_end = last->start + 7;
			CHECK(sl_epochs_end_of(e, last->epoch, log_end, &end, &found) == 0);
			CHECK(found == last->epoch && end == log_end);
			CHECK(sl_epochs_end_of(e, UINT32_MAX, log_end, &end, &found) == 0);
			if (last->epoch > 0 &&
			    sl_epochs_end_of(e, last->epoch - 1, log_end, &end, &found) == 0)
				CHECK(found < last->epoch && end <= last->start);
		}
	}
	sl_epochs_free(e);
	return 0;
}
