/*
 * Retention: the log's oldest sealed segments deleted once they are wholly
 * past the topic's limits and nothing that must still read them holds
 * them (log.h, sl_log_retain).
 *
 * Threads: sl_log_retain runs on the log's owner (it changes the segment
 * list); the files go on the segment preparer's thread (sl-segprep) when
 * the log has one: the last close of a 64 MiB segment whose name is gone
 * frees its blocks, a few milliseconds of filesystem work that the
 * reactor must not wait for. The job owns the descriptors it was given
 * and touches nothing else of the log.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/base.h"
#include "log/log_impl.h"

/* Segments taken out of a log, to be removed from its folder. */
struct sl__retain_job {
	char *dir;
	uint32_t n;
	struct {
		uint64_t base;
		int fd;
	} seg[];
};

static void sl__unlink_seg_file(const char *dir, uint64_t base, const char *ext)
{
	char path[4096];
	snprintf(path, sizeof(path), "%s/%020" PRIu64 ".%s", dir, base, ext);
	if (unlink(path) < 0 && errno != ENOENT)
		fprintf(stderr, "sluiced: retention: delete %s: %s\n", path, strerror(errno));
}

/* Oldest first, each segment's indexes before it (a crash in between
 * leaves a segment without its caches, never a cache without its
 * segment); the folder synced once at the end, so that a restart finds
 * the start it was told, or, after a crash before the sync, an older start
 * (the data there intact: a later pass deletes it again). Descriptors
 * closed last: a view that still holds one keeps reading its file until it
 * lets go. */
static void sl__retain_run(void *arg)
{
	struct sl__retain_job *j = arg;
	for (uint32_t i = 0; i < j->n; i++) {
		sl__unlink_seg_file(j->dir, j->seg[i].base, "idx");
		sl__unlink_seg_file(j->dir, j->seg[i].base, "tix");
		sl__unlink_seg_file(j->dir, j->seg[i].base, "log");
	}
	int ret = sl__fsync_dir(j->dir);
	if (ret < 0)
		fprintf(stderr, "sluiced: retention: sync of folder %s: %s\n", j->dir,
		        strerror(-ret));
	for (uint32_t i = 0; i < j->n; i++)
		close(j->seg[i].fd);
	free(j->dir);
	free(j);
}

/* Bytes of batches a segment holds: what sealing cut it to, or (sealed in
 * an earlier run) its file's size. */
static uint64_t sl__seg_bytes(struct sl_seg *s)
{
	struct stat st;
	if (!s->size && fstat(s->fd, &st) == 0)
		s->size = (uint64_t)st.st_size;
	return s->size;
}

int sl_log_retain(struct sl_log *log, const struct sl_log_retention *r, struct sl_log_retained *out)
{
	memset(out, 0, sizeof(*out));
	out->start = sl_log_start(log);
	if ((!r->bytes && !r->age_ms) || log->n_segs < 2)
		return 0;
	uint64_t total = log->write_pos;
	for (uint32_t i = 0; i + 1 < log->n_segs; i++)
		total += sl__seg_bytes(&log->segs[i]);

	uint32_t k = 0;
	for (; k + 1 < log->n_segs; k++) {
		struct sl_seg *s = &log->segs[k];
		uint64_t size = sl__seg_bytes(s), next_base = log->segs[k + 1].base;
		bool over_bytes = r->bytes && total - size >= r->bytes;
		bool over_age = false;
		if (!over_bytes && r->age_ms) {
			int64_t newest;
			int ret = sl__seg_newest_time(log->dir, s, next_base, &newest);
			if (ret < 0) {
				/* Its age unknown (headers unreadable): kept, and
				 * so is everything after it. Said once per
				 * segment: the index is marked bad. */
				if (!s->tix_bad)
					fprintf(stderr,
					        "sluiced: retention: %s/%020" PRIu64
					        ".log: its newest append time cannot be "
					        "read (%s); kept\n",
					        log->dir, s->base, sl_strerror(ret));
				s->tix_bad = true;
				break;
			}
			over_age = newest < r->now_ms - (int64_t)r->age_ms;
		}
		if (!over_bytes && !over_age)
			break;
		if (next_base > r->hold) {
			out->held = true;
			break;
		}
		out->by_age |= over_age && !over_bytes;
		out->bytes += size;
		total -= size;
	}
	if (!k)
		return 0;

	struct sl__retain_job *j = malloc(sizeof(*j) + k * sizeof(j->seg[0]));
	char *dir = j ? strdup(log->dir) : NULL;
	if (!dir) {
		free(j);
		out->bytes = 0;
		out->by_age = false;
		return -ENOMEM;
	}
	j->dir = dir;
	j->n = k;
	for (uint32_t i = 0; i < k; i++) {
		j->seg[i].base = log->segs[i].base;
		j->seg[i].fd = log->segs[i].fd;
		sl__seg_free_index(&log->segs[i]);
	}
	memmove(log->segs, log->segs + k, (log->n_segs - k) * sizeof(*log->segs));
	log->n_segs -= k;
	log->stats.retained_segments += k;
	log->stats.retained_bytes += out->bytes;
	out->segments = k;
	out->start = sl_log_start(log);
	/* Readers hear of the new start before the files go (log.h). */
	if (r->start_pub)
		atomic_store_explicit(r->start_pub, out->start, memory_order_release);
	if (!log->opts.prep || sl_segprep_call(log->opts.prep, sl__retain_run, j) < 0)
		sl__retain_run(j);
	return (int)k;
}
