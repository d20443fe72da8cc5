/*
 * Fuzz target: a directory partitioner's file (part/part.c,
 * sl_part_dir_parse), as a start and a SIGHUP read it. The first byte picks
 * the partition count (1..256), the rest is the file. A file either parses
 * into a table whose every answer is a listed partition below the count, or
 * is refused with "fuzz:LINE: reason" and no table; never a crash, a leak
 * or a read out of bounds (ASan). Every line's first field is looked up
 * again: a parsed file must find each listed key.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "part/part.h"

static int blank(char c)
{
	return c == ' ' || c == '\t' || c == '\r';
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
	struct sl_part_table *t = NULL;
	char err[400] = "";

	if (size < 1)
		return 0;
	uint32_t n = (uint32_t)data[0] + 1;
	const char *buf = (const char *)data + 1;
	size_t len = size - 1;
	int ret = sl_part_dir_parse(buf, len, "fuzz", n, &t, err, sizeof(err));
	if (ret < 0) {
		/* Refusals name the file and line; only memory runs out
		 * otherwise. */
		if (t || (ret != -ENOMEM && strncmp(err, "fuzz:", 5)))
			abort();
		return 0;
	}
	uint32_t found = 0;
	for (const char *p = buf, *end = buf + len; p < end;) {
		const char *eol = memchr(p, '\n', (size_t)(end - p));
		if (!eol)
			eol = end;
		const char *k = p;
		while (k < eol && blank(*k))
			k++;
		const char *e = k;
		while (e < eol && !blank(*e))
			e++;
		if (e > k && *k != '#') {
			int64_t q = sl_part_table_find(t, k, (size_t)(e - k));
			if (q < 0 || q >= n)
				abort();
			found++;
		}
		p = eol + 1;
	}
	/* Every key is on its own line and none twice. */
	if (found != sl_part_table_len(t))
		abort();
	sl_part_table_free(t);
	return 0;
}
