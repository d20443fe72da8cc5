/*
 * Fuzz target: a journal file read back at start (log/jrec.c) and the
 * replay of what it holds into a partition's log (log/recover.c).
 *
 * The input is the content of `.journal/0/00000000000000000000.jnl`. Checked:
 *   - sl_jrec_load returns 0 or -SL_ECORRUPT (a bad frame followed by a
 *     valid one), nothing else, and names the file when it refuses;
 *   - when it loads, opening the journaled log `t/0` replays its chunks:
 *     0, or -SL_ECORRUPT when they do not continue the (empty) log, and a
 *     reader returns exactly the offsets [0, end) it reports;
 *   - a second open (the journal read again, after the segment took the
 *     replay) ends at the same offset.
 *
 * Files live in a per-process folder on /dev/shm, removed at exit.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/base.h"
#include "log/log.h"

static char g_dir[128];

static void cleanup(void)
{
	char cmd[200];
	if (!g_dir[0])
		return;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", g_dir);
	if (system(cmd) != 0)
		fprintf(stderr, "journal fuzz: could not remove %s\n", g_dir);
}

#define CHECK(x)                                                                                   \
	do {                                                                                       \
		if (!(x)) {                                                                        \
			fprintf(stderr, "journal.c:%d: check failed: %s\n", __LINE__, #x);         \
			cleanup();                                                                 \
			abort();                                                                   \
		}                                                                                  \
	} while (0)

/* Opens t/0 with what the journal holds; returns sl_log_open's result and
 * the log's end. */
static int open_replayed(uint64_t *end)
{
	char err[600], dir[200];
	struct sl_jrec *rec;
	int ret = sl_jrec_load(g_dir, &rec, err, sizeof(err));
	CHECK(ret == 0);
	snprintf(dir, sizeof(dir), "%s/t/0", g_dir);
	struct sl_log_opts o = {.dir = dir,
	                        .segment_bytes = 8192,
	                        .durability = SL_LOG_FSYNC,
	                        .journal = NULL,
	                        .journal_key = "t/0",
	                        .replay = rec};
	/* Journaled without a journal to write to: only the replay runs. */
	struct sl_journal *j;
	char jdir[200];
	snprintf(jdir, sizeof(jdir), "%s/jw", g_dir);
	struct sl_journal_opts jo = {.dir = jdir, .first_seq = 1};
	CHECK(sl_journal_create(&jo, &j, err, sizeof(err)) == 0);
	o.journal = j;
	struct sl_log *log = NULL;
	ret = sl_log_open(&o, &log, err, sizeof(err));
	CHECK(ret == 0 || ret == -SL_ECORRUPT);
	if (ret == 0) {
		*end = sl_log_end(log);
		struct sl_log_reader *rd;
		struct sl_log_record r;
		uint64_t next = 0;
		int n;
		CHECK(sl_log_reader_open(log, 0, &rd) == 0);
		while ((n = sl_log_reader_next(rd, sl_log_durable(log), &r)) == 1)
			CHECK(r.offset == next++);
		CHECK(n == 0);
		CHECK(next == *end);
		sl_log_reader_close(rd);
		sl_log_close(log);
	}
	sl_journal_destroy(j);
	CHECK(sl_jrec_finish(rec, g_dir, true, err, sizeof(err)) == 0);
	return ret;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char path[300], cmd[200];
	if (!g_dir[0]) {
		snprintf(g_dir, sizeof(g_dir), "/dev/shm/sluice-fuzz-journal-%d", (int)getpid());
		atexit(cleanup);
	}
	snprintf(cmd, sizeof(cmd), "rm -rf '%s' && mkdir -p '%s/.journal/0'", g_dir, g_dir);
	CHECK(system(cmd) == 0);
	snprintf(path, sizeof(path), "%s/.journal/0/00000000000000000000.jnl", g_dir);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	CHECK(fd >= 0);
	CHECK(write(fd, data, size) == (ssize_t)size);
	close(fd);

	char err[600];
	struct sl_jrec *rec;
	int ret = sl_jrec_load(g_dir, &rec, err, sizeof(err));
	CHECK(ret == 0 || ret == -SL_ECORRUPT);
	if (ret < 0) {
		CHECK(strstr(err, path) != NULL);
		return 0;
	}
	sl_jrec_free(rec);
	uint64_t end1 = 0, end2 = 0;
	if (open_replayed(&end1) == 0) {
		CHECK(open_replayed(&end2) == 0);
		CHECK(end1 == end2);
	}
	return 0;
}
