/*
 * Fuzz target: the time index reader (`<base>.tix`, log/tix_format.h) and
 * the seek by time that trusts it (sl_log_view_seek_time).
 *
 * At start-up a log is written on /dev/shm with the log API: 40 batches of
 * 4 events at append times 1000, 1010, ... (the clock hook), stepping back
 * by 25 ms at batch 20, rolled into several 4 KiB segments; the genuine
 * index of the first segment is kept as the seed's shape. Each input
 * replaces that segment's `.tix`. Checked:
 *   - sl_tix_decode accepts the input or not, never reads past it, and what
 *     it accepts encodes back to the same bytes;
 *   - a seek for several times (some from the input's first bytes) returns
 *     0 or 1, never an error and never crashes, and lands on a batch's
 *     first offset (a multiple of 4) below the limit, or on the limit;
 *   - with the input refused by the decoder (the reader then scans the
 *     headers), every answer is exactly the first batch whose running
 *     maximum of times reaches the time asked.
 * An index that decodes but lies can move an answer (it is a cache, not
 * checked against the bytes it describes); it never makes one that is not
 * a batch start.
 *
 * Files live in a per-process folder on /dev/shm, removed at exit.
 */
#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <liburing.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/base.h"
#include "log/log.h"
#include "log/tix_format.h"

static void cleanup(void);

#define CHECK(x)                                                                                   \
	do {                                                                                       \
		if (!(x)) {                                                                        \
			fprintf(stderr, "tix.c:%d: check failed: %s\n", __LINE__, #x);             \
			cleanup();                                                                 \
			abort();                                                                   \
		}                                                                                  \
	} while (0)

#define ROUNDS    40u
#define PER_ROUND 4u

static struct {
	char dir[128];
	int64_t now;
	int64_t times[ROUNDS];
	uint64_t limit;
} g;

static int64_t clock_fn(void)
{
	return g.now;
}

static void cleanup(void)
{
	char path[512];
	DIR *d = opendir(g.dir);
	if (!d)
		return;
	struct dirent *de;
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", g.dir, de->d_name);
		unlink(path);
	}
	closedir(d);
	rmdir(g.dir);
}

static void build(void)
{
	struct io_uring ring;
	struct sl_log_opts o = {
	    .dir = g.dir, .segment_bytes = 4096, .durability = SL_LOG_NONE, .clock_ms = clock_fn};
	struct sl_log *log;
	char err[300];
	CHECK(io_uring_queue_init(8, &ring, 0) == 0);
	CHECK(sl_log_open(&o, &log, err, sizeof(err)) == 0);
	uint8_t ev[90];
	for (uint32_t r = 0; r < ROUNDS; r++) {
		g.times[r] = 1000 + (int64_t)r * 10 - (r >= 20 && r < 23 ? 25 : 0);
		g.now = g.times[r];
		for (uint32_t i = 0; i < PER_ROUND; i++) {
			uint64_t off;
			memset(ev, (int)r, sizeof(ev));
			CHECK(sl_log_append(log, 1 + r, 1, i, ev, sizeof(ev), &off) == 0);
		}
		/* none: the write alone makes them durable (2), no I/O waits */
		CHECK(sl_log_flush(log, &ring, 1) == 2);
	}
	g.limit = sl_log_durable(log);
	CHECK(g.limit == ROUNDS * PER_ROUND);
	sl_log_close(log);
	io_uring_queue_exit(&ring);
}

static uint64_t expected(int64_t t)
{
	int64_t m = INT64_MIN;
	for (uint32_t r = 0; r < ROUNDS; r++) {
		if (g.times[r] > m)
			m = g.times[r];
		if (m >= t)
			return (uint64_t)r * PER_ROUND;
	}
	return g.limit;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	snprintf(g.dir, sizeof(g.dir), "/dev/shm/sluice-fuzz-tix-%d", (int)getpid());
	cleanup();
	build();
	atexit(cleanup);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char path[256];
	snprintf(path, sizeof(path), "%s/%020u.tix", g.dir, 0u);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	CHECK(fd >= 0);
	CHECK(size == 0 || write(fd, data, size) == (ssize_t)size);
	close(fd);

	/* The decoder alone: exact bytes, a round trip. */
	size_t cap = size / SL_TIX_ENTRY + 1;
	struct sl_tix *v = malloc(cap * sizeof(*v));
	CHECK(v);
	size_t n = sl_tix_decode(v, data, size);
	if (n) {
		uint8_t *back = malloc(size);
		CHECK(back);
		CHECK(n * SL_TIX_ENTRY == size);
		sl_tix_encode(back, v, n);
		CHECK(memcmp(back, data, size) == 0);
		free(back);
	}
	free(v);

	/* The seek through it, from a fresh view (it loads the file). */
	int64_t asks[6] = {900, 1000, 1105, 1195, 1391, 5000};
	if (size >= 8)
		asks[5] = (int64_t)sl_get_le64(data) % 2000;
	struct sl_log_view *view;
	CHECK(sl_log_view_open(g.dir, &view) == 0);
	for (size_t i = 0; i < SL_ARRAY_LEN(asks); i++) {
		uint64_t at = 0;
		int ret = sl_log_view_seek_time(view, asks[i], g.limit, &at);
		CHECK(ret == 0 || ret == 1);
		CHECK(at <= g.limit && at % PER_ROUND == 0);
		CHECK(ret == (at < g.limit));
		if (!n)
			CHECK(at == expected(asks[i]));
	}
	sl_log_view_close(view);
	return 0;
}
