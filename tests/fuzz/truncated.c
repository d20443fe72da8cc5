/*
 * Fuzz target: the truncation record's reader (log/truncate.c,
 * truncated_format.h).
 *
 * The input is a whole `truncated` file. Checked: sl_log_trunc_decode
 * returns 0 or -SL_ECORRUPT (with a message) and nothing else, leaves its
 * output untouched when it refuses, and what it accepts (generation >= 1)
 * encodes back to the same bytes.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "log/log.h"

#define CHECK(x)                                                                                   \
	do {                                                                                       \
		if (!(x)) {                                                                        \
			fprintf(stderr, "truncated fuzz: %s failed\n", #x);                        \
			abort();                                                                   \
		}                                                                                  \
	} while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct sl_log_trunc t = {.gen = 0xdead, .offset = 0xbeef};
	char err[200];
	err[0] = 0;
	int ret = sl_log_trunc_decode(data, size, &t, err, sizeof(err));
	CHECK(ret == 0 || ret == -SL_ECORRUPT);
	if (ret < 0) {
		CHECK(err[0]);
		CHECK(t.gen == 0xdead && t.offset == 0xbeef);
		return 0;
	}
	CHECK(t.gen >= 1);
	size_t n = sl_log_trunc_encode(&t, NULL, 0);
	CHECK(n == size);
	uint8_t *back = malloc(n);
	CHECK(back);
	CHECK(sl_log_trunc_encode(&t, back, n) == n);
	CHECK(memcmp(back, data, n) == 0);
	free(back);
	return 0;
}
