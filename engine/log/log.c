#include "log/log.h"
#include "log/log_impl.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <isa-l/crc.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "base/base.h"

/* A sparse index entry every this many bytes of a segment: a lookup reads at
 * most this much past the entry to find an offset. */
#define SL_IDX_EVERY 4096u
/* One batch holds at most this much: bounds a reader's buffer. Events up to
 * max_frame_bytes fit (a batch this size holds one). */
#define SL_BATCH_MAX (8u << 20)
#define SL_RECOVERY_CHUNK (1u << 20)

uint32_t sl_crc32c(uint32_t crc, const void *buf, size_t len)
{
	/* ISA-L's crc32_iscsi uses the SSE4.2 crc32 instruction (three streams
	 * interleaved) and leaves the pre/post inversion to the caller; doing it
	 * here gives the standard CRC32C, chainable: crc(a+b) = crc(crc(a), b).
	 * Its length is an int: longer buffers go in 1 GiB steps. */
	const unsigned char *b = buf;
	const size_t step = (size_t)1 << 30;
	crc = ~crc;
	for (; len > step; b += step, len -= step)
		crc = crc32_iscsi((unsigned char *)b, (int)step, crc);
	return ~crc32_iscsi((unsigned char *)b, (int)len, crc);
}

struct sl_idx {
	uint32_t rel; /* offset - segment base */
	uint32_t pos; /* byte position of the batch holding it */
};

struct sl_seg {
	uint64_t base;
	int fd;
	uint64_t size;       /* bytes of batches (sealed) or written so far (active) */
	struct sl_idx *idx;
	uint32_t n_idx, cap_idx;
	uint32_t last_idx_pos;
};

struct sl_wbuf {
	uint8_t *p;
	uint32_t len;  /* a group commit is far below 4 GiB: batches are capped */
	size_t cap;
	size_t peak;   /* recent group-commit sizes, decaying (sl__wbuf_reuse) */
	uint64_t first_offset; /* offset of the first event in it */
};

/* A buffer keeps up to this much capacity whatever its recent use. */
#define SL_LOG_BUF_KEEP (4u << 20)

/*
 * Empties the buffer for the next group commit. An overload can grow one
 * to hundreds of MiB (everything appended while an fdatasync is slow);
 * kept, that capacity would stay resident for good, on every partition
 * that ever saw a burst, past the memory budget the credits enforce. So a
 * buffer larger than SL_LOG_BUF_KEEP and four times its recent peak
 * shrinks to twice that peak.
 */
static void sl__wbuf_reuse(struct sl_wbuf *b, uint64_t first_offset)
{
	b->peak = b->len > b->peak ? b->len : b->peak - b->peak / 8;
	if (b->cap > SL_LOG_BUF_KEEP && b->cap > 4 * b->peak) {
		size_t cap = 2 * b->peak < SL_LOG_BUF_KEEP ? SL_LOG_BUF_KEEP : 2 * b->peak;
		uint8_t *p = realloc(b->p, cap);
		if (p) {
			b->p = p;
			b->cap = cap;
		}
	}
	b->len = 0;
	b->first_offset = first_offset;
}

struct sl_log {
	struct sl_log_opts opts;
	char *dir;
	int dir_fd;
	struct sl_seg *segs;
	uint32_t n_segs, cap_segs;

	uint64_t next_offset;
	uint64_t durable;
	uint64_t write_pos;    /* where the next write goes in the active segment */

	/* Appends go here; a group commit pwrites it (synchronously, on this
	 * thread) and it is emptied at once, while the fdatasync runs. One
	 * buffer: a second (from when the write itself went through io_uring)
	 * only kept its capacity resident between commits, outside what the
	 * credits count, which took the 1,000-producer overload over its
	 * memory budget once syncs got larger. */
	struct sl_wbuf wb;
	/* The batch being filled, in wb. */
	bool batch_open;
	uint32_t batch_at;
	uint64_t batch_pid, batch_base_seq, batch_base_off;
	uint32_t batch_epoch, batch_count;

	/* The group commit in flight. */
	bool inflight;
	uint32_t inflight_ops;
	uint64_t inflight_end;
	uint64_t inflight_pos, inflight_len;
	int inflight_err;
	bool inflight_is_sync;  /* an fdatasync is among the ops */
	bool inflight_fail;     /* test hook fired for this sync */
	uint64_t inflight_t0;   /* when the fdatasync was queued (stats) */
	uint64_t wb_kicked;     /* active segment: writeback started below this */
	uint64_t inflight_synced_to; /* write_pos when the sync in flight was queued */
	/* When the first event of the buffered group / of the group in flight
	 * was appended: its wait until durable is the commit latency. */
	uint64_t group_t0, inflight_group_t0;
	bool unsynced;          /* written, not yet fdatasync'd (interval policy) */
	uint64_t last_sync_ns;
	uint32_t n_syncs;

	bool failed;
	char error[320];
	struct sl_log_stats stats;
	struct sl_segprep_req prep;  /* the next segment, when opts.prep */
};

static void sl__fail(struct sl_log *log, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sl__fail(struct sl_log *log, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(log->error, sizeof(log->error), fmt, ap);
	va_end(ap);
	log->failed = true;
}

static uint64_t sl__align(uint64_t v)
{
	return (v + SL_LOG_ALIGN - 1) & ~(uint64_t)(SL_LOG_ALIGN - 1);
}

static size_t sl__put_varint(uint8_t *p, uint64_t v)
{
	size_t n = 0;
	while (v >= 0x80) {
		p[n++] = (uint8_t)(v | 0x80);
		v >>= 7;
	}
	p[n++] = (uint8_t)v;
	return n;
}

/* 0 on a malformed or overlong varint. */
static size_t sl__get_varint(const uint8_t *p, const uint8_t *end, uint64_t *v)
{
	uint64_t r = 0;
	for (size_t i = 0; i < 10 && p + i < end; i++) {
		r |= (uint64_t)(p[i] & 0x7f) << (7 * i);
		if (!(p[i] & 0x80)) {
			*v = r;
			return i + 1;
		}
	}
	return 0;
}

static char *sl__seg_path(const struct sl_log *log, uint64_t base, const char *ext)
{
	char *p = NULL;
	if (asprintf(&p, "%s/%020" PRIu64 ".%s", log->dir, base, ext) < 0)
		return NULL;
	return p;
}

/* ---- batch validation (recovery and readers) ---------------------------- */

struct sl_bhdr {
	uint64_t base_offset;
	uint32_t count, len, epoch, unit_start;
	int64_t time_ms;
	uint64_t producer_id, base_seq;
};

static void sl__hdr_decode(const uint8_t *h, struct sl_bhdr *b)
{
	b->base_offset = sl_get_le64(h + 8);
	b->count = sl_get_le32(h + 16);
	b->len = sl_get_le32(h + 20);
	b->time_ms = (int64_t)sl_get_le64(h + 24);
	b->producer_id = sl_get_le64(h + 32);
	b->epoch = sl_get_le32(h + 40);
	b->unit_start = sl_get_le32(h + 44);
	b->base_seq = sl_get_le64(h + 48);
}

/* Checks a whole batch in memory: magic, bounds, checksum, and that its
 * records parse to exactly `count` events. */
static bool sl__batch_valid(const uint8_t *p, size_t avail, struct sl_bhdr *b)
{
	if (avail < SL_LOG_BATCH_HDR || sl_get_le32(p) != SL_LOG_MAGIC)
		return false;
	sl__hdr_decode(p, b);
	if (b->count == 0 || b->len > SL_BATCH_MAX || SL_LOG_BATCH_HDR + (size_t)b->len > avail)
		return false;
	uint32_t crc = sl_crc32c(0, p + 8, SL_LOG_BATCH_HDR - 8 + (size_t)b->len);
	if (crc != sl_get_le32(p + 4))
		return false;
	const uint8_t *r = p + SL_LOG_BATCH_HDR, *end = r + b->len;
	for (uint32_t i = 0; i < b->count; i++) {
		uint64_t size, delta;
		size_t n = sl__get_varint(r, end, &size);
		if (!n)
			return false;
		r += n;
		n = sl__get_varint(r, end, &delta);
		if (!n || size > (uint64_t)(end - r - n))
			return false;
		r += n + size;
	}
	return r == end;
}

/* ---- segments ---------------------------------------------------------------- */

static int sl__seg_add(struct sl_log *log, uint64_t base, int fd)
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
static int sl__idx_add(struct sl_seg *s, uint64_t offset, uint64_t pos)
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

static int sl__fsync_dir(struct sl_log *log)
{
	return fsync(log->dir_fd) < 0 ? -errno : 0;
}

/*
 * Creates the segment starting at `base`, pre-allocated and synced. Measured
 * on this ext4 (bench/log.cc): fdatasync into fallocate()d blocks is about as
 * fast as appending (each first write into a block still journals the
 * extent's conversion: 3 device writes per sync, against 2 when overwriting
 * written blocks, which is 1.6-2x faster). Pre-allocation is kept because it
 * reserves the space up front and keeps a segment contiguous; recycling old
 * segments would reach the overwrite rate (not done yet).
 */
/* Takes the prepared next segment as `name`, if one is ready: -EAGAIN if
 * not (the caller creates it in place). */
static int sl__seg_take_prepared(struct sl_log *log, uint64_t base, int *fd)
{
	char name[32];
	struct sl_segprep_req *rq = &log->prep;
	int state = atomic_load_explicit(&rq->state, memory_order_acquire);

	if (state == SL_SEGPREP_FAILED)
		atomic_store_explicit(&rq->state, SL_SEGPREP_NONE, memory_order_relaxed);
	if (state != SL_SEGPREP_READY)
		return -EAGAIN;
	snprintf(name, sizeof(name), "%020" PRIu64 ".log", base);
	atomic_store_explicit(&rq->state, SL_SEGPREP_NONE, memory_order_relaxed);
	if (renameat2(log->dir_fd, SL_SEGPREP_NAME, log->dir_fd, name, RENAME_NOREPLACE) < 0) {
		int ret = -errno;
		close(rq->fd);
		unlinkat(log->dir_fd, SL_SEGPREP_NAME, 0);
		return ret == -EEXIST ? ret : -EAGAIN;
	}
	*fd = rq->fd;
	rq->fd = -1;
	log->stats.segments_prepared++;
	return 0;
}

static int sl__seg_create(struct sl_log *log, uint64_t base)
{
	char *path = sl__seg_path(log, base, "log");
	int fd = -1, ret;

	if (!path)
		return -ENOMEM;
	if (log->opts.prep) {
		ret = sl__seg_take_prepared(log, base, &fd);
		if (ret == 0) {
			/* The name must be durable before anything in it is. */
			ret = sl__fsync_dir(log);
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
		sl__fail(log, "create %s: %s", path, strerror(-ret));
		goto out;
	}
	if (fallocate(fd, 0, 0, (off_t)log->opts.segment_bytes) < 0 || fsync(fd) < 0) {
		ret = -errno;
		sl__fail(log, "pre-allocate %s: %s", path, strerror(-ret));
		goto out;
	}
	ret = sl__fsync_dir(log);
	if (ret < 0) {
		sl__fail(log, "sync folder %s: %s", log->dir, strerror(-ret));
		goto out;
	}
add:
	ret = sl__seg_add(log, base, fd);
	if (ret == 0) {
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

/* Seals the active segment: cut the unused pre-allocation, write its index,
 * sync both. Runs only when no I/O is in flight. */
static int sl__seg_seal(struct sl_log *log)
{
	struct sl_seg *s = &log->segs[log->n_segs - 1];
	char *ipath = NULL;
	int ret = 0, ifd = -1;

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
	size_t ilen = (size_t)s->n_idx * sizeof(*s->idx);
	void *icopy = log->opts.prep ? malloc(ilen ? ilen : 1) : NULL;
	if (icopy) {
		memcpy(icopy, s->idx, ilen);
		if (sl_segprep_write_file(log->opts.prep, ipath, icopy, ilen, NULL) == 0)
			return 0;
		free(icopy);
	}
	ifd = open(ipath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (ifd >= 0) {
		if (write(ifd, s->idx, ilen) != (ssize_t)ilen)
			(void)ftruncate(ifd, 0);
		(void)fdatasync(ifd);
		close(ifd);
	}
	free(ipath);
	return 0;
}

static int sl__roll(struct sl_log *log, uint64_t base)
{
	uint64_t t0 = sl_now_ns();
	int ret = sl__seg_seal(log);
	if (ret < 0)
		return ret;
	if (log->opts.on_seal)
		log->opts.on_seal(log->opts.on_seal_arg, base);
	ret = sl__seg_create(log, base);
	log->stats.rolls++;
	log->stats.roll_ns += sl_now_ns() - t0;
	return ret;
}

/* ---- recovery -------------------------------------------------------------- */

/* Reads [pos, pos+len) of fd into *buf (grown as needed). Short at EOF. */
static ssize_t sl__pread_all(int fd, uint8_t *buf, size_t len, uint64_t pos)
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

struct sl_scan {
	int fd;
	uint64_t file_size;
	uint8_t *buf;
	size_t cap;
};

/* Reads the batch at pos into scan->buf and validates it. */
static int sl__scan_batch(struct sl_scan *sc, uint64_t pos, struct sl_bhdr *b, bool *valid)
{
	uint8_t h[SL_LOG_BATCH_HDR];
	*valid = false;
	if (pos + SL_LOG_BATCH_HDR > sc->file_size)
		return 0;
	ssize_t n = sl__pread_all(sc->fd, h, sizeof(h), pos);
	if (n < 0)
		return (int)n;
	if ((size_t)n < sizeof(h) || sl_get_le32(h) != SL_LOG_MAGIC)
		return 0;
	sl__hdr_decode(h, b);
	if (b->len > SL_BATCH_MAX || pos + SL_LOG_BATCH_HDR + b->len > sc->file_size)
		return 0;
	size_t need = SL_LOG_BATCH_HDR + b->len;
	if (sc->cap < need) {
		uint8_t *p = realloc(sc->buf, need);
		if (!p)
			return -ENOMEM;
		sc->buf = p;
		sc->cap = need;
	}
	n = sl__pread_all(sc->fd, sc->buf, need, pos);
	if (n < 0)
		return (int)n;
	*valid = (size_t)n == need && sl__batch_valid(sc->buf, need, b);
	return 0;
}

/*
 * Looks past the damage at `from` for valid batches (8-byte steps). Reports
 * the first valid batch whose group-commit write began after `from` (proof
 * that the damaged bytes were synced before it), else the first valid batch
 * at all, else none. Also where the last non-zero byte is. Bounded by the
 * segment's size, never by the log's.
 */
static int sl__scan_forward(struct sl_scan *sc, uint64_t from, uint64_t *found_pos,
			    struct sl_bhdr *found, uint64_t *last_nonzero)
{
	uint8_t *chunk = malloc(SL_RECOVERY_CHUNK);
	bool later = false;
	int ret = 0;

	if (!chunk)
		return -ENOMEM;
	*found_pos = UINT64_MAX;
	*last_nonzero = from;
	for (uint64_t base = from; base < sc->file_size; base += SL_RECOVERY_CHUNK) {
		ssize_t n = sl__pread_all(sc->fd, chunk, SL_RECOVERY_CHUNK, base);
		if (n < 0) {
			ret = (int)n;
			goto out;
		}
		for (ssize_t i = 0; i < n; i += SL_LOG_ALIGN) {
			uint64_t word;
			size_t take = (size_t)(n - i) < 8 ? (size_t)(n - i) : 8;
			word = 0;
			memcpy(&word, chunk + i, take);
			if (!word)
				continue;
			*last_nonzero = base + (uint64_t)i + take;
			if ((uint32_t)word != SL_LOG_MAGIC || later)
				continue;
			struct sl_bhdr b;
			bool valid;
			ret = sl__scan_batch(sc, base + (uint64_t)i, &b, &valid);
			if (ret < 0)
				goto out;
			if (!valid)
				continue;
			if (*found_pos == UINT64_MAX || b.unit_start > from) {
				*found_pos = base + (uint64_t)i;
				*found = b;
				later = b.unit_start > from;
			}
		}
		if (n < (ssize_t)SL_RECOVERY_CHUNK)
			break;
	}
out:
	free(chunk);
	return ret;
}

static ssize_t sl__pwrite_all(int fd, const uint8_t *p, size_t len, uint64_t pos)
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

static int sl__zero_range(int fd, uint64_t from, uint64_t to)
{
	static const uint8_t zeros[4096];
	while (from < to) {
		size_t n = to - from < sizeof(zeros) ? (size_t)(to - from) : sizeof(zeros);
		ssize_t w = sl__pwrite_all(fd, zeros, n, from);
		if (w < 0)
			return (int)w;
		if ((size_t)w < n)
			return -ENOSPC;
		from += n;
	}
	return fdatasync(fd) < 0 ? -errno : 0;
}

/* Recovers the last segment: finds where valid data ends, decides torn tail
 * or corruption, rebuilds its index. */
static int sl__recover_last(struct sl_log *log, char *err, size_t errlen)
{
	struct sl_seg *s = &log->segs[log->n_segs - 1];
	struct sl_scan sc = {.fd = s->fd};
	struct stat st;
	char *path = sl__seg_path(log, s->base, "log");
	uint64_t pos = 0, off = s->base;
	int ret = 0;

	if (!path)
		return -ENOMEM;
	if (fstat(s->fd, &st) < 0) {
		ret = -errno;
		snprintf(err, errlen, "stat %s: %s", path, strerror(-ret));
		goto out;
	}
	sc.file_size = (uint64_t)st.st_size;
	for (;;) {
		struct sl_bhdr b;
		bool valid;
		ret = sl__scan_batch(&sc, pos, &b, &valid);
		if (ret < 0) {
			snprintf(err, errlen, "read %s at byte %" PRIu64 ": %s", path, pos,
				 strerror(-ret));
			goto out;
		}
		if (!valid || b.base_offset != off)
			break;
		ret = sl__idx_add(s, off, pos);
		if (ret < 0)
			goto out;
		off += b.count;
		pos += sl__align(SL_LOG_BATCH_HDR + (uint64_t)b.len);
	}

	/* pos is the first byte that is not a valid next batch. */
	uint64_t vpos, last_nz;
	struct sl_bhdr vb = {0};
	ret = sl__scan_forward(&sc, pos, &vpos, &vb, &last_nz);
	if (ret < 0) {
		snprintf(err, errlen, "read %s: %s", path, strerror(-ret));
		goto out;
	}
	if (vpos != UINT64_MAX) {
		/* Something valid follows the damage. Only the last group-commit
		 * write can be torn: if the valid batch's write began after the
		 * damage, the damaged bytes were synced (and acked) earlier. */
		bool torn_unit = log->opts.durability != SL_LOG_FSYNC || vb.unit_start <= pos;
		if (!torn_unit) {
			snprintf(err, errlen,
				 "%s: corrupt batch at byte %" PRIu64 " (offset %" PRIu64
				 ") followed by a valid batch at byte %" PRIu64
				 " (offset %" PRIu64 "): refusing to serve this partition",
				 path, pos, off, vpos, vb.base_offset);
			ret = -SL_ECORRUPT;
			goto out;
		}
	}
	if (last_nz > pos) {
		/* A torn tail: never acked (its fdatasync never completed), so
		 * cut it, on disk too, so its bytes cannot resurface. */
		ret = sl__zero_range(s->fd, pos, last_nz);
		if (ret < 0) {
			snprintf(err, errlen, "truncate torn tail of %s at byte %" PRIu64 ": %s",
				 path, pos, strerror(-ret));
			goto out;
		}
		log->stats.recovered_truncated_bytes += last_nz - pos;
	}
	s->size = pos;
	log->write_pos = pos;
	log->next_offset = off;
	if (sc.file_size < log->opts.segment_bytes &&
	    fallocate(s->fd, 0, 0, (off_t)log->opts.segment_bytes) == 0)
		(void)fsync(s->fd);
out:
	free(sc.buf);
	free(path);
	return ret;
}

/*
 * Loads the sparse index that sealing wrote beside segment `s` of `dir`.
 * The index is a cache: a missing or malformed one leaves s without entries
 * and the reader scans from the segment's start instead; entries point at
 * batch starts, which readers verify anyway.
 */
static void sl__idx_load(const char *dir, struct sl_seg *s)
{
	char ipath[4096];
	struct stat ist;
	snprintf(ipath, sizeof(ipath), "%s/%020" PRIu64 ".idx", dir, s->base);
	int ifd = open(ipath, O_RDONLY | O_CLOEXEC);
	if (ifd < 0)
		return;
	if (fstat(ifd, &ist) == 0 && ist.st_size > 0 &&
	    ist.st_size % (off_t)sizeof(struct sl_idx) == 0) {
		struct sl_idx *v = malloc((size_t)ist.st_size);
		if (v && sl__pread_all(ifd, (uint8_t *)v, (size_t)ist.st_size, 0) == ist.st_size &&
		    v[0].rel == 0 && v[0].pos == 0) {
			free(s->idx);
			s->idx = v;
			s->n_idx = s->cap_idx = (uint32_t)(ist.st_size / (off_t)sizeof(struct sl_idx));
			s->last_idx_pos = v[s->n_idx - 1].pos;
			v = NULL;
		}
		free(v);
	}
	close(ifd);
}

static int sl__cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

static int sl__mkdirs(const char *dir)
{
	char *p = strdup(dir);
	if (!p)
		return -ENOMEM;
	for (char *s = p + 1; *s; s++) {
		if (*s != '/')
			continue;
		*s = '\0';
		if (mkdir(p, 0755) < 0 && errno != EEXIST) {
			int e = -errno;
			free(p);
			return e;
		}
		*s = '/';
	}
	int ret = mkdir(p, 0755) < 0 && errno != EEXIST ? -errno : 0;
	free(p);
	return ret;
}

/*
 * The segment bases in `dir` greater than `after` (all of them when
 * `all`), sorted. *out is malloc'd (NULL when none).
 */
static int sl__list_bases(const char *dir, bool all, uint64_t after, uint64_t **out, size_t *n)
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

int sl_log_open(const struct sl_log_opts *opts, struct sl_log **out, char *err, size_t errlen)
{
	struct sl_log *log = calloc(1, sizeof(*log));
	uint64_t *bases = NULL;
	size_t n_bases = 0;
	int ret = -ENOMEM;

	if (!log)
		return -ENOMEM;
	err[0] = '\0';
	log->opts = *opts;
	log->dir_fd = -1;
	if (opts->segment_bytes < 4096 || opts->segment_bytes > UINT32_MAX) {
		snprintf(err, errlen, "segment size %" PRIu64 " out of range 4KiB..4GiB",
			 opts->segment_bytes);
		ret = -EINVAL;
		goto fail;
	}
	log->dir = strdup(opts->dir);
	if (!log->dir)
		goto fail;
	ret = sl__mkdirs(log->dir);
	if (ret < 0) {
		snprintf(err, errlen, "create folder %s: %s", log->dir, strerror(-ret));
		goto fail;
	}
	log->dir_fd = open(log->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (log->dir_fd < 0) {
		ret = -errno;
		snprintf(err, errlen, "open folder %s: %s", log->dir, strerror(-ret));
		goto fail;
	}
	log->prep.dir_fd = log->dir_fd;
	log->prep.bytes = opts->segment_bytes;
	log->prep.fd = -1;
	/* A prepared segment a crash left behind: never part of the log. */
	unlinkat(log->dir_fd, SL_SEGPREP_NAME, 0);
	ret = sl__list_bases(log->dir, true, 0, &bases, &n_bases);
	if (ret < 0) {
		snprintf(err, errlen, "read folder %s: %s", log->dir, strerror(-ret));
		goto fail;
	}

	for (size_t i = 0; i < n_bases; i++) {
		char *path = sl__seg_path(log, bases[i], "log");
		if (!path) {
			ret = -ENOMEM;
			goto fail;
		}
		int fd = open(path, O_RDWR | O_CLOEXEC);
		if (fd < 0) {
			ret = -errno;
			snprintf(err, errlen, "open %s: %s", path, strerror(-ret));
			free(path);
			goto fail;
		}
		free(path);
		ret = sl__seg_add(log, bases[i], fd);
		if (ret < 0) {
			close(fd);
			goto fail;
		}
		log->stats.segments++;
	}
	if (log->n_segs) {
		ret = sl__recover_last(log, err, errlen);
		if (ret < 0)
			goto fail;
		/* What survived a kill -9 may still be only in the page cache
		 * (written, its fdatasync never completed). From here on it
		 * counts as durable (readers see it, a resent duplicate of it
		 * is acked), so it must be on the device first. */
		if (fdatasync(log->segs[log->n_segs - 1].fd) < 0) {
			ret = -errno;
			snprintf(err, errlen, "fdatasync of %s/%020" PRIu64 ".log after recovery: %s",
				 log->dir, log->segs[log->n_segs - 1].base, strerror(-ret));
			goto fail;
		}
	} else {
		ret = sl__seg_create(log, 0);
		if (ret < 0) {
			snprintf(err, errlen, "%s", log->error);
			goto fail;
		}
	}
	log->durable = log->next_offset;
	log->wb.first_offset = log->next_offset;
	log->last_sync_ns = sl_now_ns();
	free(bases);
	*out = log;
	return 0;
fail:
	free(bases);
	sl_log_close(log);
	return ret;
}

bool sl_log_next_asked(const struct sl_log *log)
{
	return atomic_load_explicit(&log->prep.state, memory_order_acquire) != SL_SEGPREP_NONE;
}

bool sl_log_next_ready(const struct sl_log *log)
{
	return atomic_load_explicit(&log->prep.state, memory_order_acquire) == SL_SEGPREP_READY;
}

void sl_log_close(struct sl_log *log)
{
	if (!log)
		return;
	if (log->opts.prep) {
		sl__segprep_cancel(log->opts.prep, &log->prep);
		if (atomic_load_explicit(&log->prep.state, memory_order_acquire) == SL_SEGPREP_READY)
			close(log->prep.fd);
		/* Ready or half made, it is of no use to anyone now. */
		unlinkat(log->dir_fd, SL_SEGPREP_NAME, 0);
	}
	for (uint32_t i = 0; i < log->n_segs; i++) {
		if (log->segs[i].fd >= 0)
			close(log->segs[i].fd);
		free(log->segs[i].idx);
	}
	free(log->segs);
	if (log->dir_fd >= 0)
		close(log->dir_fd);
	free(log->wb.p);
	free(log->dir);
	free(log);
}

/* ---- append and group commit ------------------------------------------------- */

static int sl__wbuf_reserve(struct sl_wbuf *b, size_t more)
{
	uint8_t *p = sl_grow(b->p, &b->cap, (size_t)b->len + more, 256 * 1024);
	if (!p)
		return -ENOMEM;
	b->p = p;
	return 0;
}

static void sl__batch_close(struct sl_log *log)
{
	struct sl_wbuf *b = &log->wb;
	uint8_t *h = b->p + log->batch_at;
	uint32_t len = b->len - log->batch_at - SL_LOG_BATCH_HDR;

	sl_put_le32(h, SL_LOG_MAGIC);
	sl_put_le64(h + 8, log->batch_base_off);
	sl_put_le32(h + 16, log->batch_count);
	sl_put_le32(h + 20, len);
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	sl_put_le64(h + 24, (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000);
	sl_put_le64(h + 32, log->batch_pid);
	sl_put_le32(h + 40, log->batch_epoch);
	sl_put_le32(h + 44, 0); /* unit_start: set when the write is issued */
	sl_put_le64(h + 48, log->batch_base_seq);
	/* The checksum is taken when the write is issued, once unit_start is
	 * known; zero padding keeps every batch 8-byte aligned. */
	uint32_t pad = (uint32_t)(sl__align(b->len) - b->len);
	memset(b->p + b->len, 0, pad);
	b->len += pad;
	log->batch_open = false;
	log->stats.batches++;
}

int sl_log_append(struct sl_log *log, uint64_t producer_id, uint32_t epoch, uint64_t seq,
		  const uint8_t *event, uint32_t len, uint64_t *offset)
{
	struct sl_wbuf *b = &log->wb;

	if (SL_UNLIKELY(log->failed))
		return -SL_ELOG_FAILED;
	if (SL_UNLIKELY((size_t)len + 32 > SL_BATCH_MAX - SL_LOG_BATCH_HDR))
		return -EMSGSIZE;
	/* One clock read per group commit, not per event. */
	if (b->len == 0)
		log->group_t0 = sl_now_ns();
	if (log->batch_open &&
	    (producer_id != log->batch_pid || epoch != log->batch_epoch ||
	     seq < log->batch_base_seq || seq - log->batch_base_seq > UINT32_MAX ||
	     (size_t)(b->len - log->batch_at) + len + 32 > SL_BATCH_MAX))
		sl__batch_close(log);
	/* Worst case: header, two varints, the event, padding. */
	if (sl__wbuf_reserve(b, SL_LOG_BATCH_HDR + 20 + (size_t)len + SL_LOG_ALIGN) < 0)
		return -ENOMEM;
	if (!log->batch_open) {
		log->batch_open = true;
		log->batch_at = b->len;
		log->batch_pid = producer_id;
		log->batch_epoch = epoch;
		log->batch_base_seq = seq;
		log->batch_base_off = log->next_offset;
		log->batch_count = 0;
		b->len += SL_LOG_BATCH_HDR;
	}
	b->len += (uint32_t)sl__put_varint(b->p + b->len, len);
	b->len += (uint32_t)sl__put_varint(b->p + b->len, seq - log->batch_base_seq);
	memcpy(b->p + b->len, event, len);
	b->len += len;
	log->batch_count++;
	*offset = log->next_offset++;
	return 0;
}

/* Stamps unit_start into every batch of the buffer, checksums them, and
 * indexes them at their segment positions. */
static int sl__seal_buffer(struct sl_log *log, struct sl_wbuf *b, uint64_t pos)
{
	struct sl_seg *s = &log->segs[log->n_segs - 1];
	uint32_t at = 0;
	while (at < b->len) {
		uint8_t *h = b->p + at;
		uint32_t len = sl_get_le32(h + 20);
		sl_put_le32(h + 44, (uint32_t)pos);
		sl_put_le32(h + 4, sl_crc32c(0, h + 8, SL_LOG_BATCH_HDR - 8 + (size_t)len));
		int ret = sl__idx_add(s, sl_get_le64(h + 8), pos + at);
		if (ret < 0)
			return ret;
		at += (uint32_t)sl__align(SL_LOG_BATCH_HDR + (uint64_t)len);
	}
	return 0;
}

static struct io_uring_sqe *sl__get_sqe(struct io_uring *ring)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(ring);
	if (!sqe) {
		io_uring_submit(ring);
		sqe = io_uring_get_sqe(ring);
	}
	return sqe;
}

/* Interval and none: start the writeback of what the active segment got
 * since the last kick, once that is SL_LOG_WRITEBACK_BYTES (log.h). */
static void sl__writeback_kick(struct sl_log *log, struct io_uring *ring)
{
	uint64_t len = log->write_pos - log->wb_kicked;
	if (len < SL_LOG_WRITEBACK_BYTES)
		return;
	struct io_uring_sqe *sqe = sl__get_sqe(ring);
	if (!sqe)
		return; /* the next flush tries again, with more */
	io_uring_prep_sync_file_range(sqe, log->segs[log->n_segs - 1].fd, (unsigned)len,
				      log->wb_kicked, SYNC_FILE_RANGE_WRITE);
	io_uring_sqe_set_data64(sqe, SL_LOG_UD_IGNORE);
	log->wb_kicked = log->write_pos;
	log->stats.writebacks++;
}

static uint32_t sl__hist_bucket(uint64_t ns)
{
	static const uint64_t le[SL_LOG_SYNC_BUCKETS] = SL_LOG_SYNC_BUCKETS_US;
	uint64_t us = ns / 1000;
	uint32_t k = 0;
	while (us > le[k])
		k++;
	return k;
}

static void sl__commit_hist_add(struct sl_log *log, uint64_t ns)
{
	log->stats.commits++;
	log->stats.commit_hist[sl__hist_bucket(ns)]++;
	log->stats.commit_ns += ns;
}

int sl_log_flush(struct sl_log *log, struct io_uring *ring, uint64_t ud)
{
	if (log->failed)
		return -SL_ELOG_FAILED;
	/* Interval: nothing is acked after the periodic sync, so writes go on
	 * while it runs (they waited for it before: at 500k events/s every
	 * 10 ms sync held the acks behind it, ack p99 8-9 ms). Only a roll
	 * waits, as sealing wants no I/O in flight. Fsync: the next group
	 * gathers in the buffer until the sync in flight completes. */
	bool beside_sync = log->inflight && log->opts.durability == SL_LOG_INTERVAL;
	if (log->inflight && !beside_sync)
		return 0;
	if (log->batch_open)
		sl__batch_close(log);

	struct sl_wbuf *b = &log->wb;
	bool want_sync = !beside_sync &&
			 (log->opts.durability == SL_LOG_FSYNC ||
			  (log->opts.durability == SL_LOG_INTERVAL && sl_log_sync_due(log, sl_now_ns())));
	if (b->len == 0) {
		if (!(want_sync && log->unsynced))
			return 0;
		/* Interval policy: a lone fdatasync of earlier writes. */
		struct io_uring_sqe *sqe = sl__get_sqe(ring);
		if (!sqe)
			return -EBUSY;
		io_uring_prep_fsync(sqe, log->segs[log->n_segs - 1].fd, IORING_FSYNC_DATASYNC);
		io_uring_sqe_set_data64(sqe, ud);
		log->inflight = true;
		log->inflight_ops = 1;
		log->inflight_is_sync = true;
		log->inflight_len = 0;
		log->inflight_end = log->durable;
		log->inflight_synced_to = log->write_pos;
		log->inflight_err = 0;
		log->inflight_t0 = sl_now_ns();
		log->inflight_fail = ++log->n_syncs == log->opts.fail_sync_at;
		return 1;
	}

	if (want_sync && io_uring_sq_space_left(ring) < 1) {
		io_uring_submit(ring);
		if (io_uring_sq_space_left(ring) < 1)
			return -EBUSY;
	}
	if (log->write_pos > 0 && log->write_pos + b->len > log->opts.segment_bytes) {
		if (beside_sync)
			return 0; /* the completion brings the caller back */
		int ret = sl__roll(log, b->first_offset);
		if (ret < 0)
			return -SL_ELOG_FAILED;
	}
	/* Half way through a segment, ask for the next one: a log that never
	 * fills one (most, in tests) never costs a prepared file. */
	if (log->opts.prep && log->write_pos + b->len > log->opts.segment_bytes / 2 &&
	    atomic_load_explicit(&log->prep.state, memory_order_relaxed) == SL_SEGPREP_NONE)
		sl__segprep_request(log->opts.prep, &log->prep);
	struct sl_seg *s = &log->segs[log->n_segs - 1];
	int ret = sl__seal_buffer(log, b, log->write_pos);
	if (ret < 0)
		return ret;

	/*
	 * The write itself is a plain pwrite on this thread: a buffered write
	 * is a copy into the page cache, and io_uring hands buffered ext4
	 * writes to its worker threads, which costs ~100 us of hand-off per
	 * write against ~5 us for pwrite of 4 KiB (bench/log.cc). Only the
	 * fdatasync, which waits for the device, goes through io_uring.
	 */
	ssize_t w = sl__pwrite_all(s->fd, b->p, b->len, log->write_pos);
	if (w != (ssize_t)b->len) {
		sl__fail(log, "write of %s/%020" PRIu64 ".log (bytes %" PRIu64 "..%" PRIu64
			      ") failed: %s; partition stopped",
			 log->dir, s->base, log->write_pos, log->write_pos + b->len,
			 strerror(w < 0 ? (int)-w : ENOSPC));
		return -SL_ELOG_FAILED;
	}
	log->stats.bytes_written += b->len;
	log->stats.writes++;
	if (!want_sync) {
		sl__commit_hist_add(log, sl_now_ns() - log->group_t0);
		log->write_pos += b->len;
		s->size = log->write_pos;
		log->unsynced = true;
		log->durable = log->next_offset;
		sl__wbuf_reuse(&log->wb, log->next_offset);
		sl__writeback_kick(log, ring);
		return 2;
	}
	struct io_uring_sqe *sqe = io_uring_get_sqe(ring); /* room checked above */
	io_uring_prep_fsync(sqe, s->fd, IORING_FSYNC_DATASYNC);
	io_uring_sqe_set_data64(sqe, ud);
	log->inflight_ops = 1;
	log->inflight_is_sync = true;
	log->inflight_fail = ++log->n_syncs == log->opts.fail_sync_at;
	log->inflight = true;
	log->inflight_err = 0;
	log->inflight_t0 = sl_now_ns();
	log->inflight_group_t0 = log->group_t0;
	log->inflight_pos = log->write_pos;
	log->inflight_len = b->len;
	log->inflight_end = log->next_offset;
	log->write_pos += b->len;
	log->inflight_synced_to = log->write_pos;
	/* Written: appends start over in the same buffer while the sync runs. */
	sl__wbuf_reuse(&log->wb, log->next_offset);
	return 1;
}

int sl_log_on_cqe(struct sl_log *log, int res)
{
	if (!log->inflight || !log->inflight_ops)
		return 0;
	log->inflight_ops--;
	bool is_sync_cqe = log->inflight_is_sync && log->inflight_ops == 0;
	if (is_sync_cqe && log->inflight_fail && res >= 0)
		res = -EIO; /* test hook: as if the device failed the sync */
	if (res < 0 && !log->inflight_err)
		log->inflight_err = res;

	if (log->inflight_ops)
		return 0;

	log->inflight = false;
	struct sl_seg *s = &log->segs[log->n_segs - 1];
	if (log->inflight_err) {
		/* Never ack what this covered, never retry it as if nothing
		 * happened: after a failed fdatasync the page cache may hold data
		 * the disk does not (the 2018 fsync lesson). The log stops. */
		char path[64];
		snprintf(path, sizeof(path), "%020" PRIu64 ".log", s->base);
		sl__fail(log, "%s of %s/%s (bytes %" PRIu64 "..%" PRIu64 ") failed: %s; "
			      "partition stopped",
			 log->inflight_is_sync ? "write+fdatasync" : "write", log->dir, path,
			 log->inflight_pos, log->inflight_pos + log->inflight_len,
			 strerror(-log->inflight_err));
		return -SL_ELOG_FAILED;
	}
	if (log->inflight_is_sync) {
		uint64_t now = sl_now_ns();
		log->stats.syncs++;
		log->stats.sync_hist[sl__hist_bucket(now - log->inflight_t0)]++;
		log->stats.sync_ns += now - log->inflight_t0;
		/* A lone interval sync (inflight_len 0) covers writes already
		 * counted when they were written. */
		if (log->inflight_len)
			sl__commit_hist_add(log, now - log->inflight_group_t0);
		/* Interval: writes made beside the sync are not covered. */
		log->unsynced = log->write_pos > log->inflight_synced_to;
		log->last_sync_ns = now;
	} else {
		log->unsynced = true;
	}
	s->size = log->write_pos;
	/* Interval: writes beside the sync made `durable` pass its end. */
	if (log->durable >= log->inflight_end)
		return 0;
	log->durable = log->inflight_end;
	return 1;
}

bool sl_log_sync_due(const struct sl_log *log, uint64_t now_ns)
{
	return log->opts.durability == SL_LOG_INTERVAL && log->unsynced &&
	       now_ns - log->last_sync_ns >= log->opts.interval_ns;
}

bool sl_log_flush_syncs(const struct sl_log *log, uint64_t now_ns)
{
	if (log->failed || log->inflight)
		return false;
	if (log->opts.durability == SL_LOG_FSYNC)
		return log->batch_open || log->wb.len;
	return sl_log_sync_due(log, now_ns);
}

struct sl_segprep *sl_log_segprep(const struct sl_log *log)
{
	return log->opts.prep;
}

uint64_t sl_log_durable(const struct sl_log *log)
{
	return log->durable;
}
uint64_t sl_log_end(const struct sl_log *log)
{
	return log->next_offset;
}
uint64_t sl_log_start(const struct sl_log *log)
{
	return log->n_segs ? log->segs[0].base : 0;
}
bool sl_log_failed(const struct sl_log *log)
{
	return log->failed;
}
bool sl_log_busy(const struct sl_log *log)
{
	return log->inflight || log->batch_open || log->wb.len;
}
bool sl_log_io_pending(const struct sl_log *log)
{
	return log->inflight;
}
const char *sl_log_error(const struct sl_log *log)
{
	return log->error;
}
void sl_log_get_stats(const struct sl_log *log, struct sl_log_stats *out)
{
	*out = log->stats;
}

/* ---- views ------------------------------------------------------------------ */

#define SL_VIEW_CHUNK (256u * 1024)


struct sl_log_view {
	char *dir;
	struct sl_seg *segs;
	uint32_t n_segs, cap_segs;
	/* Where the last read stopped: a sequential consumer resumes here
	 * without any lookup. */
	uint32_t cur_seg;
	uint64_t cur_pos;   /* a batch start in cur_seg */
	uint64_t cur_at;    /* that batch's first offset */
	uint64_t cur_next;  /* the offset the last read stopped before */
	bool cur_valid;
	/* cur_next > cur_at: the last read stopped inside the batch at cur_pos
	 * after checking it whole. Bytes below the durable end never change,
	 * so resuming there skips the checksum (read one event at a time, a
	 * 64-event batch was checksummed 64 times) and starts at the record it
	 * stopped before, cur_rpos bytes into the batch's records, instead of
	 * walking them from the first. */
	uint32_t cur_rpos;
	/* Bytes of the current segment read ahead, valid during one read. */
	uint8_t *buf;
	uint64_t buf_pos;
	uint32_t buf_len, buf_cap;
	char error[320];
};


/* Re-reads the folder for segments we do not know yet (new ones appear at
 * the end; retention removes from the front, which a view notices as
 * ENOENT-free descriptors it already holds, so it keeps reading them). */
static int sl__view_list(struct sl_log_view *v)
{
	uint64_t *add;
	size_t n_add;
	int ret = sl__list_bases(v->dir, v->n_segs == 0,
				 v->n_segs ? v->segs[v->n_segs - 1].base : 0, &add, &n_add);
	if (ret < 0)
		return ret;
	for (size_t i = 0; i < n_add; i++) {
		char path[4096];
		snprintf(path, sizeof(path), "%s/%020" PRIu64 ".log", v->dir, add[i]);
		int fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			continue; /* removed meanwhile */
		/* Views read forward: a larger read-ahead window. bench_log
		 * LogRead cold, interleaved runs: 0.84-1.21 GB/s with it,
		 * 0.48-0.96 without (this disk drifts by 2x over minutes). */
		(void)posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
		if (v->n_segs == v->cap_segs) {
			uint32_t cap = v->cap_segs ? v->cap_segs * 2 : 8;
			struct sl_seg *s = realloc(v->segs, cap * sizeof(*s));
			if (!s) {
				close(fd);
				ret = -ENOMEM;
				break;
			}
			v->segs = s;
			v->cap_segs = cap;
		}
		struct sl_seg *s = &v->segs[v->n_segs++];
		memset(s, 0, sizeof(*s));
		s->base = add[i];
		s->fd = fd;
	}
	free(add);
	return ret;
}

int sl_log_view_open(const char *dir, struct sl_log_view **out)
{
	struct sl_log_view *v = calloc(1, sizeof(*v));
	if (!v)
		return -ENOMEM;
	v->dir = strdup(dir);
	if (!v->dir) {
		free(v);
		return -ENOMEM;
	}
	int ret = sl__view_list(v);
	if (ret < 0) {
		sl_log_view_close(v);
		return ret;
	}
	*out = v;
	return 0;
}

void sl_log_view_close(struct sl_log_view *v)
{
	if (!v)
		return;
	for (uint32_t i = 0; i < v->n_segs; i++) {
		close(v->segs[i].fd);
		free(v->segs[i].idx);
	}
	free(v->segs);
	free(v->buf);
	free(v->dir);
	free(v);
}

const char *sl_log_view_error(const struct sl_log_view *v)
{
	return v->error;
}

uint64_t sl_log_view_start(struct sl_log_view *v)
{
	if (!v->n_segs)
		(void)sl__view_list(v);
	return v->n_segs ? v->segs[0].base : 0;
}

/* Makes [pos, pos+need) of segment s available in v->buf; returns a pointer
 * or NULL when the file holds fewer bytes. */
static const uint8_t *sl__view_bytes(struct sl_log_view *v, struct sl_seg *s, uint64_t pos,
				     uint32_t need, int *err)
{
	*err = 0;
	if (pos >= v->buf_pos && pos + need <= v->buf_pos + v->buf_len)
		return v->buf + (pos - v->buf_pos);
	uint32_t want = need > SL_VIEW_CHUNK ? need : SL_VIEW_CHUNK;
	if (v->buf_cap < want) {
		uint8_t *p = realloc(v->buf, want);
		if (!p) {
			*err = -ENOMEM;
			return NULL;
		}
		v->buf = p;
		v->buf_cap = want;
	}
	ssize_t n = sl__pread_all(s->fd, v->buf, want, pos);
	if (n < 0) {
		*err = (int)n;
		v->buf_len = 0;
		return NULL;
	}
	v->buf_pos = pos;
	v->buf_len = (uint32_t)n;
	return (uint32_t)n >= need ? v->buf : NULL;
}

/* Position of the batch holding `offset` in segment i, from the index:
 * a batch at or before it, with that batch's first offset. */
static void sl__view_seek(const struct sl_seg *s, uint64_t offset, uint64_t *pos, uint64_t *at)
{
	uint32_t lo = 0, hi = s->n_idx;
	*pos = 0;
	*at = s->base;
	if (!s->n_idx)
		return;
	uint64_t rel = offset - s->base;
	while (hi - lo > 1) {
		uint32_t mid = (lo + hi) / 2;
		if (s->idx[mid].rel <= rel)
			lo = mid;
		else
			hi = mid;
	}
	if (s->idx[lo].rel <= rel) {
		*pos = s->idx[lo].pos;
		*at = s->base + s->idx[lo].rel;
	}
}

int sl_log_view_read(struct sl_log_view *v, uint64_t offset, uint64_t limit, uint32_t max_events,
		     uint32_t max_bytes, sl_log_visit_fn fn, void *arg, uint64_t *next)
{
	uint32_t seg;
	uint64_t pos, at;
	int visited = 0, err;
	uint64_t bytes = 0;

	*next = offset;
	/* Read-ahead bytes are kept between reads: below the durable end a
	 * segment never changes. Bytes read ahead past it may have been in
	 * flight then; they only ever fail validation, and a failure on cached
	 * bytes is retried from the file once before it counts. */
	bool fresh = false;
	if (!v->n_segs || offset >= limit) {
		if (!v->n_segs && (err = sl__view_list(v)) < 0)
			return err;
		if (offset >= limit || !v->n_segs)
			return 0;
	}
	if (offset < v->segs[0].base)
		offset = v->segs[0].base;
	bool trusted = false; /* the batch at cur_seg/cur_pos was checked by the last read */
	if (v->cur_valid && v->cur_next == offset) {
		seg = v->cur_seg;
		pos = v->cur_pos;
		at = v->cur_at;
		trusted = v->cur_next > v->cur_at;
	} else {
		if (offset >= v->segs[v->n_segs - 1].base && (err = sl__view_list(v)) < 0)
			return err;
		seg = 0;
		for (uint32_t i = 1; i < v->n_segs; i++)
			if (v->segs[i].base <= offset)
				seg = i;
		/* A sealed segment (one follows it) has its index on disk. */
		if (!v->segs[seg].n_idx && seg + 1 < v->n_segs)
			sl__idx_load(v->dir, &v->segs[seg]);
		sl__view_seek(&v->segs[seg], offset, &pos, &at);
	}

	while (at < limit && (uint32_t)visited < max_events) {
		struct sl_seg *s = &v->segs[seg];
		if (seg + 1 < v->n_segs && at >= v->segs[seg + 1].base) {
			seg++;
			pos = 0;
			continue;
		}
		const uint8_t *h = sl__view_bytes(v, s, pos, SL_LOG_BATCH_HDR, &err);
		struct sl_bhdr b;
		if (h && sl_get_le32(h) == SL_LOG_MAGIC) {
			sl__hdr_decode(h, &b);
			if (b.len <= SL_BATCH_MAX)
				h = sl__view_bytes(v, s, pos, SL_LOG_BATCH_HDR + b.len, &err);
			else
				h = NULL;
		} else if (!err && (seg + 1 >= v->n_segs)) {
			/* Past the end of what we know: a new segment may hold it. */
			uint32_t before = v->n_segs;
			if ((err = sl__view_list(v)) < 0)
				return err;
			if (v->n_segs > before && v->segs[seg + 1].base == at) {
				seg++;
				pos = 0;
				continue;
			}
			h = NULL;
		} else {
			h = NULL;
		}
		if (err < 0)
			return err;
		bool resumed = trusted && seg == v->cur_seg && pos == v->cur_pos;
		bool ok = h && (resumed || sl__batch_valid(h, SL_LOG_BATCH_HDR + (size_t)b.len, &b)) &&
			  b.base_offset == at;
		trusted = false;
		if (!ok && !fresh) {
			fresh = true;
			v->buf_len = 0;
			continue;
		}
		if (!ok) {
			snprintf(v->error, sizeof(v->error),
				 "%s/%020" PRIu64 ".log: no valid batch at byte %" PRIu64
				 " where offset %" PRIu64 " should be",
				 v->dir, s->base, pos, at);
			v->cur_valid = false;
			if (visited)
				return visited; /* report the damage on the next read */
			return -SL_ECORRUPT;
		}
		fresh = false;
		if ((err = sl__idx_add(s, at, pos)) < 0)
			return err;
		const uint8_t *r = h + SL_LOG_BATCH_HDR, *end = r + b.len, *resume = r;
		uint64_t off = b.base_offset;
		uint32_t i = 0;
		bool stop = false;
		if (resumed && v->cur_rpos < b.len && v->cur_next > off &&
		    v->cur_next - off < b.count) {
			r += v->cur_rpos;
			i = (uint32_t)(v->cur_next - off);
			off = v->cur_next;
		}
		for (; i < b.count; i++, off++) {
			uint64_t size = 0, delta = 0;
			resume = r;
			r += sl__get_varint(r, end, &size);
			r += sl__get_varint(r, end, &delta);
			const uint8_t *ev = r;
			r += size;
			if (off < offset)
				continue;
			if (off >= limit || (uint32_t)visited >= max_events ||
			    (visited && bytes + size > max_bytes)) {
				stop = true;
				break;
			}
			struct sl_log_record rec = {
				.offset = off, .producer_id = b.producer_id, .epoch = b.epoch,
				.seq = b.base_seq + delta, .append_time_ms = b.time_ms,
				.event = ev, .len = (uint32_t)size,
			};
			int verdict = fn(arg, &rec);
			if (verdict < 0) {
				stop = true; /* refused: not visited, read again next time */
				break;
			}
			visited++;
			bytes += size;
			*next = off + 1;
			if (verdict > 0) {
				stop = true;
				off++;
				resume = r;
				break;
			}
		}
		if (stop && off < b.base_offset + b.count) {
			/* Stopped inside this batch: the next read resumes in it,
			 * at the record of offset `off` (= *next). */
			v->cur_seg = seg;
			v->cur_pos = pos;
			v->cur_at = b.base_offset;
			v->cur_next = *next;
			v->cur_valid = true;
			v->cur_rpos = (uint32_t)(resume - (h + SL_LOG_BATCH_HDR));
			return visited;
		}
		pos += sl__align(SL_LOG_BATCH_HDR + (uint64_t)b.len);
		at = b.base_offset + b.count;
		if (stop)
			break;
	}
	/* At a batch boundary: `at` is the first offset of the batch at pos. */
	v->cur_seg = seg;
	v->cur_pos = pos;
	v->cur_at = at;
	v->cur_next = at;
	v->cur_valid = visited == 0 || *next == at;
	return visited;
}

/* ---- readers ------------------------------------------------------------------ */

/* The writer thread's reader is a view of the log's folder read one event
 * at a time: one reading path, with every check the views make. */
struct sl_log_reader {
	struct sl_log_view *v;
	uint64_t next;
};

int sl_log_reader_open(struct sl_log *log, uint64_t offset, struct sl_log_reader **out)
{
	struct sl_log_reader *rd = calloc(1, sizeof(*rd));
	if (!rd)
		return -ENOMEM;
	int ret = sl_log_view_open(log->dir, &rd->v);
	if (ret < 0) {
		free(rd);
		return ret;
	}
	rd->next = offset < sl_log_start(log) ? sl_log_start(log) : offset;
	*out = rd;
	return 0;
}

static int sl__reader_take(void *arg, const struct sl_log_record *rec)
{
	*(struct sl_log_record *)arg = *rec;
	return 0;
}

int sl_log_reader_next(struct sl_log_reader *rd, uint64_t limit, struct sl_log_record *rec)
{
	uint64_t next;
	/* The event stays in the view's buffer until the next read. */
	int n = sl_log_view_read(rd->v, rd->next, limit, 1, UINT32_MAX, sl__reader_take, rec, &next);
	if (n <= 0)
		return n;
	rd->next = next;
	return 1;
}

const char *sl_log_reader_error(const struct sl_log_reader *rd)
{
	return sl_log_view_error(rd->v);
}

void sl_log_reader_close(struct sl_log_reader *rd)
{
	if (!rd)
		return;
	sl_log_view_close(rd->v);
	free(rd);
}
