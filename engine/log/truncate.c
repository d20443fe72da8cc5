/*
 * Truncation (log.h): a follower cuts what its new leader does not hold,
 * and the `truncated` record (truncated_format.h) that keeps a journal's
 * older chunks of the log from bringing the cut events back at a restart.
 *
 * Threads: sl_log_truncate on the log's owner, with the log idle;
 * sl__trunc_load on the thread that opens the log; the codec on any.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "base/base.h"
#include "log/log_impl.h"
#include "log/truncated_format.h"

/* Producer checkpoints (topic/producers.c): "<base, 20 digits>.dedup". */
#define SL__DEDUP_SUFFIX ".dedup"

int sl_log_trunc_decode(const uint8_t *p, size_t n, struct sl_log_trunc *out, char *err,
                        size_t errlen)
{
	const char *why = NULL;
	if (n != SL_TRUNC_SIZE)
		why = "not the size of a truncation record";
	else if (sl_get_le32(p + SL_TRUNC_MAGIC) != SL_TRUNC_MAGIC_V)
		why = "not a truncation record (magic)";
	else if (sl_crc32c(0, p + SL_TRUNC_CRC_FROM, SL_TRUNC_SIZE - SL_TRUNC_CRC_FROM) !=
	         sl_get_le32(p + SL_TRUNC_CRC))
		why = "checksum mismatch";
	else if (sl_get_le64(p + SL_TRUNC_GEN) == 0)
		why = "generation 0 (a record starts at 1)";
	if (why) {
		snprintf(err, errlen, "%s", why);
		return -SL_ECORRUPT;
	}
	out->gen = sl_get_le64(p + SL_TRUNC_GEN);
	out->offset = sl_get_le64(p + SL_TRUNC_OFFSET);
	return 0;
}

size_t sl_log_trunc_encode(const struct sl_log_trunc *t, uint8_t *p, size_t cap)
{
	if (cap < SL_TRUNC_SIZE)
		return SL_TRUNC_SIZE;
	sl_put_le32(p + SL_TRUNC_MAGIC, SL_TRUNC_MAGIC_V);
	sl_put_le64(p + SL_TRUNC_GEN, t->gen);
	sl_put_le64(p + SL_TRUNC_OFFSET, t->offset);
	sl_put_le32(p + SL_TRUNC_CRC,
	            sl_crc32c(0, p + SL_TRUNC_CRC_FROM, SL_TRUNC_SIZE - SL_TRUNC_CRC_FROM));
	return SL_TRUNC_SIZE;
}

void sl_log_truncation(const struct sl_log *log, struct sl_log_trunc *out)
{
	out->gen = log->jgen;
	out->offset = log->trunc_at;
}

int sl__trunc_load(struct sl_log *log, char *err, size_t errlen)
{
	char path[4200], why[160];
	uint8_t buf[SL_TRUNC_SIZE + 1];
	struct sl_log_trunc t;

	snprintf(path, sizeof(path), "%s/%s", log->dir, SL_TRUNC_FILE);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		if (errno == ENOENT)
			return 0; /* never truncated */
		int ret = -errno;
		snprintf(err, errlen, "open %s: %s", path, strerror(-ret));
		return ret;
	}
	/* One byte more than a record: a longer file is refused too. */
	ssize_t n = sl__pread_all(fd, buf, sizeof(buf), 0);
	close(fd);
	if (n < 0) {
		snprintf(err, errlen, "read %s: %s", path, strerror((int)-n));
		return (int)n;
	}
	int ret = sl_log_trunc_decode(buf, (size_t)n, &t, why, sizeof(why));
	if (ret < 0) {
		snprintf(err, errlen, "%s: %s: refusing to serve this partition", path, why);
		return ret;
	}
	log->jgen = t.gen;
	log->trunc_at = t.offset;
	return 0;
}

/*
 * Where batch `offset` starts in segment k, by its batch headers (the bytes
 * below the cut stay, so their checksums are not the question here): from
 * the last in-memory index entry below offset (strictly: the batch before
 * the cut is read, for its unit_start), else from byte 0. Its
 * index below the cut is built into `idx` (entries before the starting one
 * copied, the rest added as read). *unit: the unit_start of the batch
 * before the cut (0 when there is none).
 */
static int sl__find_cut(struct sl_log *log, uint32_t k, uint64_t offset, struct sl_seg *idx,
                        uint64_t *pos_out, uint32_t *unit, char *err, size_t errlen)
{
	struct sl_seg *s = &log->segs[k];
	uint64_t pos = 0, off = s->base, data_end;
	uint32_t from = 0;
	int ret = 0;

	if (k == log->n_segs - 1) {
		data_end = log->write_pos;
	} else {
		struct stat st;
		if (fstat(s->fd, &st) < 0) {
			ret = -errno;
			snprintf(err, errlen, "stat %s/%020" PRIu64 ".log: %s", log->dir, s->base,
			         strerror(-ret));
			return ret;
		}
		data_end = (uint64_t)st.st_size;
	}
	while (from < s->n_idx && s->base + s->idx[from].rel < offset)
		from++;
	memset(idx, 0, sizeof(*idx));
	idx->base = s->base;
	idx->fd = -1;
	if (from) {
		/* Entries before the starting one stay as they are; it is
		 * added again as its batch is read (if below the cut). */
		from--;
		pos = s->idx[from].pos;
		off = s->base + s->idx[from].rel;
		for (uint32_t i = 0; i < from; i++) {
			ret = sl__idx_add(idx, s->base + s->idx[i].rel, s->idx[i].pos);
			if (ret < 0)
				return ret;
		}
	}
	*unit = 0;
	while (off < offset) {
		/* The largest header, or what the data has of it (an 'SLB1'
		 * batch may end it sooner). */
		uint8_t h[SL_LOG_BATCH_HDR];
		struct sl_bhdr b = {0};
		size_t want = data_end - pos < sizeof(h) ? (size_t)(data_end - pos) : sizeof(h);
		ssize_t n = pos < data_end ? sl__pread_all(s->fd, h, want, pos) : 0;
		if (n < 0) {
			snprintf(err, errlen, "read %s/%020" PRIu64 ".log at byte %" PRIu64 ": %s",
			         log->dir, s->base, pos, strerror((int)-n));
			return (int)n;
		}
		uint32_t hdr =
		    (size_t)n < SL_LOG_BATCH_HDR_V1 ? 0 : sl_batch_hdr_size(sl_get_le32(h));
		bool is_batch = hdr && (size_t)n >= hdr;
		if (is_batch)
			sl_batch_hdr_decode(h, &b);
		if (!is_batch || b.base_offset != off || b.count == 0 || b.len > SL_BATCH_MAX ||
		    pos + sl_batch_span_of(&b) > data_end) {
			snprintf(err, errlen,
			         "%s/%020" PRIu64 ".log: no batch of offset %" PRIu64
			         " at byte %" PRIu64 " (truncating to %" PRIu64 ")",
			         log->dir, s->base, off, pos, offset);
			return -SL_ECORRUPT;
		}
		if (off + b.count > offset) {
			snprintf(err, errlen,
			         "offset %" PRIu64 " is inside the batch of offsets %" PRIu64
			         "..%" PRIu64 ": a log is cut between batches",
			         offset, off, off + b.count - 1);
			return -EINVAL;
		}
		ret = sl__idx_add(idx, off, pos);
		if (ret < 0)
			return ret;
		*unit = b.unit_start;
		off += b.count;
		pos += sl_batch_span_of(&b);
	}
	*pos_out = pos;
	return 0;
}

/* Deletes a file of the folder; one that is not there is fine. */
static int sl__unlink_ext(struct sl_log *log, uint64_t base, const char *ext)
{
	char *p = sl__seg_path(log, base, ext);
	if (!p)
		return -ENOMEM;
	int ret = unlink(p) < 0 && errno != ENOENT ? -errno : 0;
	free(p);
	return ret;
}

/* The producer checkpoints with a base above `offset`: deleted. */
static int sl__drop_dedups(struct sl_log *log, uint64_t offset)
{
	DIR *d = opendir(log->dir);
	struct dirent *de;
	int ret = 0;
	if (!d)
		return -errno;
	while ((de = readdir(d))) {
		char *end;
		if (strlen(de->d_name) != 20 + strlen(SL__DEDUP_SUFFIX) ||
		    strcmp(de->d_name + 20, SL__DEDUP_SUFFIX) != 0 || de->d_name[0] == '-' ||
		    de->d_name[0] == '+')
			continue;
		uint64_t base = strtoull(de->d_name, &end, 10);
		if (end != de->d_name + 20 || base <= offset)
			continue;
		ret = sl__unlink_ext(log, base, "dedup");
		if (ret < 0)
			break;
	}
	closedir(d);
	return ret;
}

/* Steps 3 and 4 of log.h: the files. Any failure leaves a prefix of the old
 * log no shorter than offset. */
static int sl__cut_files(struct sl_log *log, uint32_t k, uint64_t offset, uint64_t pos, char *err,
                         size_t errlen)
{
	struct sl_seg *s = &log->segs[k];
	const char *what = "delete producer checkpoints";
	int ret;

	/* A roll's index and producer checkpoint may still be on their way
	 * to this folder. */
	if (log->opts.prep)
		sl_segprep_drain(log->opts.prep);
	ret = sl__drop_dedups(log, offset);
	for (uint32_t i = log->n_segs - 1; ret == 0 && i > k; i--) {
		what = "delete a later segment";
		ret = sl__unlink_ext(log, log->segs[i].base, "idx");
		if (ret == 0)
			ret = sl__unlink_ext(log, log->segs[i].base, "tix");
		if (ret == 0)
			ret = sl__unlink_ext(log, log->segs[i].base, "log");
		if (ret == 0)
			ret = sl__fsync_dir(log->dir);
	}
	if (ret == 0 && (k < log->n_segs - 1 || log->sealed)) {
		/* Active again: an index file belongs to sealed segments. */
		what = "delete the index of the cut segment";
		ret = sl__unlink_ext(log, s->base, "idx");
		if (ret == 0)
			ret = sl__unlink_ext(log, s->base, "tix");
	}
	if (ret == 0) {
		what = "sync the folder";
		ret = sl__fsync_dir(log->dir);
	}
	if (ret == 0) {
		what = "cut the segment";
		if (ftruncate(s->fd, (off_t)pos) < 0 || fdatasync(s->fd) < 0)
			ret = -errno;
	}
	if (ret < 0) {
		sl__fail(log,
		         "truncate %s to offset %" PRIu64 " (segment %020" PRIu64 ", byte %" PRIu64
		         "): %s: %s; partition stopped",
		         log->dir, offset, s->base, pos, what, strerror(-ret));
		snprintf(err, errlen, "%s", log->error);
		return -SL_ELOG_FAILED;
	}
	return 0;
}

/* Step 2: the record of generation `gen`. */
static int sl__trunc_write(struct sl_log *log, uint64_t gen, uint64_t offset, char *err,
                           size_t errlen)
{
	char path[4200];
	uint8_t buf[SL_TRUNC_SIZE];
	struct sl_log_trunc t = {.gen = gen, .offset = offset};
	const char *step = NULL;
	int renamed = 0;

	snprintf(path, sizeof(path), "%s/%s", log->dir, SL_TRUNC_FILE);
	sl_log_trunc_encode(&t, buf, sizeof(buf));
	struct iovec iov = {buf, sizeof(buf)};
	int ret = sl_file_replace(AT_FDCWD, path, &iov, 1, 0, &step, &renamed);
	if (ret < 0) {
		/* Renamed, the record may be on the device or not: chunks
		 * from now on carry its generation either way (a record
		 * behind the chunks yields to them, log.h), and the old ones
		 * are in synced segments (step 1). */
		if (renamed)
			log->jgen = gen;
		snprintf(err, errlen, "write %s (%s): %s", path, step ? step : "?", strerror(-ret));
	}
	return ret;
}

int sl_log_truncate(struct sl_log *log, uint64_t offset, char *err, size_t errlen)
{
	int ret;

	err[0] = '\0';
	if (offset < sl_log_start(log) || offset > log->next_offset) {
		snprintf(err, errlen,
		         "offset %" PRIu64 " is outside the log (%" PRIu64 "..%" PRIu64 ")", offset,
		         sl_log_start(log), log->next_offset);
		return -EINVAL;
	}
	if (offset == log->next_offset)
		return 0;
	if (log->failed) {
		snprintf(err, errlen, "%s", log->error);
		return -SL_ELOG_FAILED;
	}
	if (sl_log_busy(log) || log->inflight) {
		snprintf(err, errlen, "the log is not idle (events buffered or in flight)");
		return -EBUSY;
	}
	uint32_t k = log->n_segs - 1;
	while (k > 0 && log->segs[k].base > offset)
		k--;

	/* Step 1: every event in a synced segment. */
	if (log->jsent && sl__log_segwrite(log, NULL) < 0) {
		snprintf(err, errlen, "%s", log->error);
		return -SL_ELOG_FAILED;
	}
	struct sl_seg *active = &log->segs[log->n_segs - 1];
	if (fdatasync(active->fd) < 0) {
		sl__fail(log,
		         "fdatasync of %s/%020" PRIu64 ".log (truncation): %s; partition stopped",
		         log->dir, active->base, strerror(errno));
		snprintf(err, errlen, "%s", log->error);
		return -SL_ELOG_FAILED;
	}
	log->unsynced = false;

	struct sl_seg idx;
	uint64_t pos = 0, gen = log->jgen + 1;
	uint32_t unit = 0;
	ret = sl__find_cut(log, k, offset, &idx, &pos, &unit, err, errlen);
	if (ret == 0)
		ret = sl__trunc_write(log, gen, offset, err, errlen);
	if (ret == 0)
		ret = sl__cut_files(log, k, offset, pos, err, errlen);
	if (ret < 0) {
		free(idx.idx);
		return ret;
	}

	/* Step 5: the writer goes on at offset, in segment k. */
	for (uint32_t i = k + 1; i < log->n_segs; i++) {
		close(log->segs[i].fd);
		sl__seg_free_index(&log->segs[i]);
	}
	log->n_segs = k + 1;
	struct sl_seg *s = &log->segs[k];
	free(s->idx);
	s->idx = idx.idx;
	s->n_idx = idx.n_idx;
	s->cap_idx = idx.cap_idx;
	s->last_idx_pos = idx.last_idx_pos;
	/* The time index is not rebuilt (a cache): readers scan this one. */
	free(s->tix);
	s->tix = NULL;
	s->n_tix = s->cap_tix = 0;
	s->tix_bad = true;
	s->tix_whole = false;
	s->size = pos;
	log->write_pos = pos;
	log->wb_kicked = pos;
	log->inflight_synced_to = pos;
	log->alloc_end = pos; /* the next step allocates from here */
	log->alloc_step = 0;
	log->sealed = false;
	log->last_unit = unit;
	log->next_offset = offset;
	log->durable = offset;
	log->acked = offset;
	log->jsent = 0;
	log->jsent_off = offset;
	sl__wbuf_reuse(&log->wb, offset);
	sl__group_done(log);
	log->jgen = gen;
	log->trunc_at = offset;
	/* A roll that waited for space waits no more: the segment it sealed
	 * is active again. A journal without room keeps its logs full. */
	if (log->full && !(log->opts.journal && sl__journal_full(log->opts.journal)))
		sl__full_clear(log);
	return 0;
}
