/*
 * Segment files: creating them (in place, or taking the preparer's), their
 * sparse indexes, sealing and rolling; plus the file helpers the views use.
 *
 * Threads: everything that takes a `struct sl_log` runs on the log's
 * thread (its owner reactor, or whoever opened it, during sl_log_open).
 * sl__idx_add, sl__idx_load, sl__pread_all, sl__pwrite_all and
 * sl__list_bases touch only what the caller passes them: any thread, on its
 * own segment array (views call them on theirs).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/base.h"
#include "log/log_impl.h"

void sl__fail(struct sl_log *log, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(log->error, sizeof(log->error), fmt, ap);
	va_end(ap);
	log->failed = true;
}

void sl__full(struct sl_log *log, const char *fmt, ...)
{
	va_list ap;
	uint64_t now = sl_now_ns();

	va_start(ap, fmt);
	vsnprintf(log->error, sizeof(log->error), fmt, ap);
	va_end(ap);
	/* Said once per episode (the reactor compares sl_log_full), retried
	 * from now + SL_LOG_FULL_RETRY_NS whatever failed this time. */
	if (!log->full) {
		log->full = true;
		log->full_since_ns = now;
		log->stats.full_episodes++;
	}
	log->full_retry_ns = now + SL_LOG_FULL_RETRY_NS;
}

void sl__full_clear(struct sl_log *log)
{
	if (!log->full)
		return;
	log->full = false;
	log->error[0] = 0;
	log->stats.full_ns += sl_now_ns() - log->full_since_ns;
}

/* Once per log: the operator learns why the active segment grows as it is
 * written, and where. */
static void sl__prealloc_warn(struct sl_log *log, int err)
{
	if (log->no_prealloc)
		return;
	log->no_prealloc = true;
	fprintf(stderr,
	        "sluiced: %s: the filesystem cannot pre-allocate segments (fallocate: %s); "
	        "appending without pre-allocation\n",
	        log->dir, strerror(-err));
}

uint64_t sl__prealloc_first(const struct sl_log *log)
{
	return log->opts.segment_bytes < SL_LOG_PREALLOC_FIRST ? log->opts.segment_bytes
	                                                       : SL_LOG_PREALLOC_FIRST;
}

int sl__prealloc(struct sl_log *log, int fd)
{
	sl_fallocate_fn fn = log->prep.fallocate_fn; /* resolved at open */

	if (fn(fd, 0, 0, (off_t)sl__prealloc_first(log)) == 0)
		return 0;
	int ret = -errno;
	if (!sl__prealloc_unsupported(ret))
		return ret;
	sl__prealloc_warn(log, ret);
	return 0;
}

uint64_t sl__prealloc_next_step(const struct sl_log *log)
{
	return sl__prealloc_step(log->alloc_step);
}

uint64_t sl__prealloc_step(uint64_t last)
{
	/* Each step twice the last, up to SL_LOG_PREALLOC_MAX_STEP: a busy
	 * partition soon takes large steps (few calls), an idle one holds
	 * little it does not use. */
	uint64_t step = 2 * last;
	if (step > SL_LOG_PREALLOC_MAX_STEP)
		step = SL_LOG_PREALLOC_MAX_STEP;
	if (step < SL_LOG_PREALLOC_FIRST)
		step = SL_LOG_PREALLOC_FIRST;
	return step;
}

int sl__prealloc_ahead(struct sl_log *log, uint64_t need_end)
{
	if (log->no_prealloc || need_end <= log->alloc_end)
		return 0;
	struct sl_seg *s = &log->segs[log->n_segs - 1];
	sl_fallocate_fn fn = log->prep.fallocate_fn; /* resolved at open */
	uint64_t step = sl__prealloc_next_step(log);
	uint64_t end = log->alloc_end + step;
	if (end > log->opts.segment_bytes)
		end = log->opts.segment_bytes;
	if (end < need_end)
		end = need_end; /* one group commit larger than the segment's rest */
	if (fn(s->fd, 0, (off_t)log->alloc_end, (off_t)(end - log->alloc_end)) < 0) {
		int ret = -errno;
		if (sl__prealloc_unsupported(ret)) {
			sl__prealloc_warn(log, ret);
			return 0;
		}
		return ret;
	}
	log->stats.prealloc_steps++;
	log->alloc_step = end - log->alloc_end;
	log->alloc_end = end;
	return 0;
}

char *sl__seg_path(const struct sl_log *log, uint64_t base, const char *ext)
{
	char *p = NULL;
	if (asprintf(&p, "%s/%020" PRIu64 ".%s", log->dir, base, ext) < 0)
		return NULL;
	return p;
}
int sl__seg_add(struct sl_log *log, uint64_t base, int fd)
{
	if (log->n_segs == log->cap_segs) {
		uint32_t cap = log->cap_segs ? log->cap_segs * 2 : 8;
		struct sl_seg *s = realloc(log->segs, cap * sizeof(*s));
		if (!s)
			return -ENOMEM;
		log->segs = s;
		log->cap_segs = cap;
	}
	struct sl_seg *s = &log->segs[log->n_segs++];
	memset(s, 0, sizeof(*s));
	s->base = base;
	s->fd = fd;
	return 0;
}

/* Adds a sparse index entry, at most one per SL_IDX_EVERY bytes, and only
 * past the last one (a view may read a batch again: entries stay sorted). */
int sl__idx_add(struct sl_seg *s, uint64_t offset, uint64_t pos)
{
	if (s->n_idx && (pos <= s->idx[s->n_idx - 1].pos || pos - s->last_idx_pos < SL_IDX_EVERY))
		return 0;
	if (s->n_idx == s->cap_idx) {
		uint32_t cap = s->cap_idx ? s->cap_idx * 2 : 64;
		struct sl_idx *v = realloc(s->idx, cap * sizeof(*v));
		if (!v)
			return -ENOMEM;
		s->idx = v;
		s->cap_idx = cap;
	}
	s->idx[s->n_idx++] = (struct sl_idx){(uint32_t)(offset - s->base), (uint32_t)pos};
	s->last_idx_pos = (uint32_t)pos;
	return 0;
}

int sl__tix_add(struct sl_seg *s, uint64_t offset, uint64_t pos, int64_t time_ms)
{
	if (s->tix_bad)
		return 0;
	if (!s->n_tix && pos != 0) {
		s->tix_bad = true; /* began mid-segment: entries would lie */
		return 0;
	}
	if (s->n_tix && pos <= s->tix_last_pos)
		return 0; /* seen before (a view reading a batch again) */
	if (!s->n_tix || time_ms > s->tix_max)
		s->tix_max = time_ms;
	s->tix_last_rel = (uint32_t)(offset - s->base);
	s->tix_last_pos = (uint32_t)pos;
	if (s->n_tix && pos - s->last_tix_pos < SL_TIX_EVERY)
		return 0;
	if (s->n_tix == s->cap_tix) {
		uint32_t cap = s->cap_tix ? s->cap_tix * 2 : 16;
		struct sl_tix *v = realloc(s->tix, cap * sizeof(*v));
		if (!v)
			return -ENOMEM;
		s->tix = v;
		s->cap_tix = cap;
	}
	s->tix[s->n_tix++] = (struct sl_tix){s->tix_max, s->tix_last_rel, (uint32_t)pos};
	s->last_tix_pos = (uint32_t)pos;
	return 0;
}

int sl__tix_finish(struct sl_seg *s)
{
	if (s->tix_bad || !s->n_tix)
		return 0;
	struct sl_tix *last = &s->tix[s->n_tix - 1];
	if (last->pos == s->tix_last_pos) {
		last->time_ms = s->tix_max;
	} else {
		if (s->n_tix == s->cap_tix) {
			struct sl_tix *v = realloc(s->tix, (s->cap_tix + 1) * sizeof(*v));
			if (!v)
				return -ENOMEM;
			s->tix = v;
			s->cap_tix++;
		}
		s->tix[s->n_tix++] = (struct sl_tix){s->tix_max, s->tix_last_rel, s->tix_last_pos};
	}
	s->tix_whole = true;
	return 0;
}

void sl__tix_load(const char *dir, struct sl_seg *s)
{
	char path[4096];
	struct stat st;
	snprintf(path, sizeof(path), "%s/%020" PRIu64 ".tix", dir, s->base);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	/* 2^28 entries is 4 TiB of segment at one per 16 KiB: larger is not ours. */
	if (fstat(fd, &st) == 0 && st.st_size > 0 && st.st_size / SL_TIX_ENTRY < (1 << 28)) {
		size_t len = (size_t)st.st_size;
		uint8_t *raw = malloc(len);
		struct sl_tix *v = malloc((len / SL_TIX_ENTRY + 1) * sizeof(*v));
		size_t n = 0;
		if (raw && v && sl__pread_all(fd, raw, len, 0) == (ssize_t)len)
			n = sl_tix_decode(v, raw, len);
		if (n) {
			free(s->tix);
			s->tix = v;
			s->n_tix = s->cap_tix = (uint32_t)n;
			s->last_tix_pos = s->tix_last_pos = v[n - 1].pos;
			s->tix_last_rel = v[n - 1].rel;
			s->tix_max = v[n - 1].time_ms;
			s->tix_bad = false;
			s->tix_whole = true;
			v = NULL;
		}
		free(raw);
		free(v);
	}
	close(fd);
}

void sl__seg_free_index(struct sl_seg *s)
{
	free(s->idx);
	free(s->tix);
	s->idx = NULL;
	s->tix = NULL;
	s->n_idx = s->cap_idx = s->n_tix = s->cap_tix = 0;
}

int sl__fsync_dir(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	int ret = fsync(fd) < 0 ? -errno : 0;
	close(fd);
	return ret;
}

/* Takes the prepared next segment as `name`, if one is ready: -EAGAIN if
 * not (the caller creates it in place). */
static int sl__seg_take_prepared(struct sl_log *log, uint64_t base, int *fd)
{
	struct sl_segprep_req *rq = &log->prep;
	int state = atomic_load_explicit(&rq->state, memory_order_acquire);

	if (state == SL_SEGPREP_FAILED)
		atomic_store_explicit(&rq->state, SL_SEGPREP_NONE, memory_order_relaxed);
	if (state != SL_SEGPREP_READY)
		return -EAGAIN;
	char *path = sl__seg_path(log, base, "log");
	atomic_store_explicit(&rq->state, SL_SEGPREP_NONE, memory_order_relaxed);
	if (!path || renameat2(AT_FDCWD, rq->path, AT_FDCWD, path, RENAME_NOREPLACE) < 0) {
		int ret = path ? -errno : -ENOMEM;
		free(path);
		close(rq->fd);
		unlink(rq->path);
		return ret == -EEXIST ? ret : -EAGAIN;
	}
	free(path);
	*fd = rq->fd;
	rq->fd = -1;
	if (rq->prealloc_err)
		sl__prealloc_warn(log, rq->prealloc_err);
	log->stats.segments_prepared++;
	return 0;
}

/*
 * Creates the segment starting at `base` with its first step pre-allocated
 * (SL_LOG_PREALLOC_FIRST), synced; sl__prealloc_ahead allocates the rest in
 * steps as it is written. Measured on this ext4 (bench/log.cc): fdatasync
 * into fallocate()d blocks is about as fast as appending (each first write
 * into a block still journals the extent's conversion: 3 device writes per
 * sync, against 2 when overwriting written blocks, which is 1.6-2x faster).
 * Pre-allocation is kept because it reserves space ahead of the writes and
 * keeps a segment's extents few; recycling old segments would reach the
 * overwrite rate (not done yet). Without fallocate (sl__prealloc) the file
 * starts empty and grows as written.
 */
int sl__seg_create(struct sl_log *log, uint64_t base)
{
	char *path = sl__seg_path(log, base, "log");
	int fd = -1, ret;

	if (!path)
		return -ENOMEM;
	if (log->opts.prep) {
		ret = sl__seg_take_prepared(log, base, &fd);
		if (ret == 0) {
			/* The name must be durable before anything in it is. */
			ret = sl__fsync_dir(log->dir);
			if (ret < 0) {
				sl__fail(log, "sync folder %s: %s", log->dir, strerror(-ret));
				goto out;
			}
			goto add;
		}
	}
	fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (fd < 0) {
		ret = -errno;
		if (sl__no_space(ret))
			sl__full(log, "create %s: %s", path, strerror(-ret));
		else
			sl__fail(log, "create %s: %s", path, strerror(-ret));
		goto out;
	}
	ret = sl__prealloc(log, fd);
	if (sl__no_space(ret)) {
		/* Nothing of it is in use: the roll is tried again, with the
		 * name free, once space may be back. */
		sl__full(log, "pre-allocate %s: %s", path, strerror(-ret));
		close(fd);
		fd = -1;
		unlink(path);
		goto out;
	}
	if (ret == 0 && fsync(fd) < 0)
		ret = -errno;
	if (ret < 0) {
		sl__fail(log, "pre-allocate %s: %s", path, strerror(-ret));
		goto out;
	}
	ret = sl__fsync_dir(log->dir);
	if (ret < 0) {
		sl__fail(log, "sync folder %s: %s", log->dir, strerror(-ret));
		goto out;
	}
add:
	ret = sl__seg_add(log, base, fd);
	if (ret == 0) {
		struct stat st;
		/* What was allocated, prepared or here: the first step, or
		 * nothing where the filesystem cannot. */
		log->alloc_end = fstat(fd, &st) == 0 ? (uint64_t)st.st_size : 0;
		log->alloc_step = log->alloc_end;
		fd = -1;
		log->write_pos = 0;
		log->wb_kicked = 0;
		log->stats.segments++;
	}
out:
	if (fd >= 0)
		close(fd);
	free(path);
	return ret;
}

/* Writes an index file of a sealed segment (takes path and buf): through
 * the preparer when there is one, else here. A failure is not fatal: the
 * file is a cache. */
static void sl__seal_file(struct sl_log *log, char *path, uint8_t *buf, size_t len)
{
	if (log->opts.prep && sl_segprep_write_file(log->opts.prep, path, buf, len, NULL) == 0)
		return; /* the preparer owns path and buf now */
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd >= 0) {
		if (write(fd, buf, len) != (ssize_t)len)
			(void)ftruncate(fd, 0);
		(void)fdatasync(fd);
		close(fd);
	}
	free(buf);
	free(path);
}

/* Seals the active segment: cut the unused pre-allocation, write its
 * indexes, sync the segment. Runs only when no I/O is in flight. */
static int sl__seg_seal(struct sl_log *log)
{
	struct sl_seg *s = &log->segs[log->n_segs - 1];
	char *ipath = NULL;
	int ret = 0;

	s->size = log->write_pos;
	if (ftruncate(s->fd, (off_t)s->size) < 0 || fsync(s->fd) < 0) {
		ret = -errno;
		sl__fail(log, "seal segment %020" PRIu64 " of %s: %s", s->base, log->dir,
		         strerror(-ret));
		return ret;
	}
	ipath = sl__seg_path(log, s->base, "idx");
	if (!ipath)
		return -ENOMEM;
	/* The index is a cache: a missing or short one is rebuilt by reading
	 * the segment, so a failure here is not fatal, and the preparer can
	 * write it while the reactor goes on (its sync was ~0.4 ms of a
	 * roll's 2-5). */
	size_t ilen = (size_t)s->n_idx * SL_IDX_ENTRY;
	uint8_t *ibuf = malloc(ilen ? ilen : 1);
	if (!ibuf) {
		free(ipath);
		return 0;
	}
	sl_idx_encode(ibuf, s->idx, s->n_idx);
	sl__seal_file(log, ipath, ibuf, ilen);
	/* The time index likewise (a cache too: seek by time and retention
	 * by age scan the segment without it). */
	if (sl__tix_finish(s) < 0 || s->tix_bad || !s->n_tix)
		return 0;
	char *tpath = sl__seg_path(log, s->base, "tix");
	size_t tlen = (size_t)s->n_tix * SL_TIX_ENTRY;
	uint8_t *tbuf = tpath ? malloc(tlen) : NULL;
	if (!tbuf) {
		free(tpath);
		return 0;
	}
	sl_tix_encode(tbuf, s->tix, s->n_tix);
	sl__seal_file(log, tpath, tbuf, tlen);
	return 0;
}

int sl__roll(struct sl_log *log, uint64_t base)
{
	uint64_t t0 = sl_now_ns();
	int ret;
	/* A roll that found no space for the next segment is tried again
	 * later; the active segment was sealed (and checkpointed) then, and
	 * nothing was written to it since. */
	if (!log->sealed) {
		ret = sl__seg_seal(log);
		if (ret < 0)
			return ret;
		/* Not while replaying the journal at open: the state that
		 * checkpoints (the producer table) is rebuilt after, from the
		 * records past its newest checkpoint. */
		if (log->opts.on_seal && !log->replaying)
			log->opts.on_seal(log->opts.on_seal_arg, base);
		log->sealed = true;
	}
	ret = sl__seg_create(log, base);
	if (ret == 0)
		log->sealed = false;
	log->stats.rolls++;
	log->stats.roll_ns += sl_now_ns() - t0;
	return ret;
}

/* Reads [pos, pos+len) of fd into buf. Short at EOF. */
ssize_t sl__pread_all(int fd, uint8_t *buf, size_t len, uint64_t pos)
{
	size_t got = 0;
	while (got < len) {
		ssize_t n = pread(fd, buf + got, len - got, (off_t)(pos + got));
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			break;
		got += (size_t)n;
	}
	return (ssize_t)got;
}
ssize_t sl__pwrite_all(int fd, const uint8_t *p, size_t len, uint64_t pos)
{
	size_t done = 0;
	while (done < len) {
		ssize_t w = pwrite(fd, p + done, len - done, (off_t)(pos + done));
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (w == 0)
			break;
		done += (size_t)w;
	}
	return (ssize_t)done;
}
/*
 * Loads the sparse index that sealing wrote beside segment `s` of `dir`.
 * The index is a cache: a missing or malformed one leaves s without entries
 * and the reader scans from the segment's start instead; entries point at
 * batch starts, which readers verify anyway.
 */
void sl__idx_load(const char *dir, struct sl_seg *s)
{
	char ipath[4096];
	struct stat ist;
	snprintf(ipath, sizeof(ipath), "%s/%020" PRIu64 ".idx", dir, s->base);
	int ifd = open(ipath, O_RDONLY | O_CLOEXEC);
	if (ifd < 0)
		return;
	if (fstat(ifd, &ist) == 0 && ist.st_size > 0 && ist.st_size % SL_IDX_ENTRY == 0 &&
	    ist.st_size / SL_IDX_ENTRY <= UINT32_MAX) {
		size_t n = (size_t)ist.st_size / SL_IDX_ENTRY;
		uint8_t *raw = malloc((size_t)ist.st_size);
		struct sl_idx *v = malloc(n * sizeof(*v));
		if (raw && v && sl__pread_all(ifd, raw, (size_t)ist.st_size, 0) == ist.st_size) {
			sl_idx_decode(v, raw, n);
			if (v[0].rel == 0 && v[0].pos == 0) {
				free(s->idx);
				s->idx = v;
				s->n_idx = s->cap_idx = (uint32_t)n;
				s->last_idx_pos = v[n - 1].pos;
				v = NULL;
			}
		}
		free(raw);
		free(v);
	}
	close(ifd);
}

static int sl__cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}
int sl__list_bases(const char *dir, bool all, uint64_t after, uint64_t **out, size_t *n)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	uint64_t *v = NULL;
	size_t cap = 0;
	int ret = 0;

	*out = NULL;
	*n = 0;
	if (!d)
		return -errno;
	while ((de = readdir(d))) {
		char *end;
		if (strlen(de->d_name) != 24 || strcmp(de->d_name + 20, ".log") != 0)
			continue;
		uint64_t base = strtoull(de->d_name, &end, 10);
		if (end != de->d_name + 20 || (!all && base <= after))
			continue;
		if (*n == cap) {
			cap = cap ? cap * 2 : 16;
			uint64_t *p = realloc(v, cap * sizeof(*p));
			if (!p) {
				ret = -ENOMEM;
				goto out;
			}
			v = p;
		}
		v[(*n)++] = base;
	}
	if (*n)
		qsort(v, *n, sizeof(*v), sl__cmp_u64);
out:
	closedir(d);
	if (ret < 0) {
		free(v);
		v = NULL;
		*n = 0;
	}
	*out = v;
	return ret;
}

uint32_t sl_log_segments(const struct sl_log *log)
{
	return log->n_segs;
}

int sl_log_segment_first(const struct sl_log *log, uint32_t i, uint64_t *base, int64_t *time_ms)
{
	uint8_t h[SL_LOG_BATCH_HDR];
	const struct sl_seg *s = &log->segs[i];

	*base = s->base;
	/* Not s->size: sealed segments found at open have none recorded.
	 * A pre-allocated, unwritten start reads as zeros: no magic. */
	ssize_t n = pread(s->fd, h, sizeof(h), 0);
	if (n < 0)
		return -errno;
	if ((size_t)n < SL_LOG_BATCH_HDR_V1)
		return -ENODATA;
	uint32_t hdr = sl_batch_hdr_size(sl_get_le32(h + SL_BATCH_MAGIC));
	if (!hdr || (size_t)n < hdr)
		return -ENODATA;
	struct sl_bhdr b;
	sl_batch_hdr_decode(h, &b);
	*time_ms = b.time_ms;
	return 0;
}
