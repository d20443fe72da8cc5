/*
 * Views and readers: reading a partition's folder from any thread.
 *
 * Threads: any one thread per view (the reader thread, a sink's thread, a
 * projection's applier on its reactor, a pipeline stage, a tool); a view
 * shares nothing with the writer but the files, and nothing with other
 * views. A reader (sl_log_reader_*) is a view read one event at a time, on
 * the thread that opened it. What may be read is bounded by the `limit` the
 * caller passes (the durable end the owner published): below it, segment
 * bytes never change.
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
#include "base/varint.h"
#include "log/log_impl.h"

#define SL_VIEW_CHUNK (256u * 1024)

struct sl_log_view {
	char *dir;
	struct sl_seg *segs;
	uint32_t n_segs, cap_segs;
	/* Where the last read stopped: a sequential consumer resumes here
	 * without any lookup. */
	uint32_t cur_seg;
	uint64_t cur_pos;  /* a batch start in cur_seg */
	uint64_t cur_at;   /* that batch's first offset */
	uint64_t cur_next; /* the offset the last read stopped before */
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
	uint32_t buf_len;
	size_t buf_cap;
	/* The writer's cut counter (log.h) and its value when this view's
	 * state was built. */
	const _Atomic uint64_t *cuts;
	uint64_t cuts_seen;
	/* The log's published first offset (retention, log.h): segments wholly
	 * below it are let go; `strict`: a read below it is refused. */
	const _Atomic uint64_t *start;
	bool strict;
	char error[320];
};

/* Re-reads the folder for segments we do not know yet (new ones appear at
 * the end; retention removes from the front: a descriptor held keeps its
 * file readable, so a read in progress never tears, and a view that
 * follows the log's start lets go of the segments below it at its next
 * read, sl__view_check_start, so that their space is freed). */
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

/* Forgets every segment, position and byte kept: the next read lists the
 * folder again. */
static void sl__view_forget(struct sl_log_view *v)
{
	for (uint32_t i = 0; i < v->n_segs; i++) {
		close(v->segs[i].fd);
		sl__seg_free_index(&v->segs[i]);
	}
	v->n_segs = 0;
	v->buf_len = 0;
	v->cur_valid = false;
}

void sl_log_view_close(struct sl_log_view *v)
{
	if (!v)
		return;
	sl__view_forget(v);
	free(v->segs);
	free(v->buf);
	free(v->dir);
	free(v);
}

void sl_log_view_follow_cuts(struct sl_log_view *v, const _Atomic uint64_t *cuts)
{
	/* Followed already: taking the counter's value now would skip a cut
	 * this view has not acted on yet. */
	if (v->cuts == cuts)
		return;
	v->cuts = cuts;
	v->cuts_seen = cuts ? atomic_load_explicit(cuts, memory_order_acquire) : 0;
}

/* At the start of every read: the log was cut since this view's state was
 * built (log.h). One acquire load; a cut is rare (a leader change). */
static void sl__view_check_cuts(struct sl_log_view *v)
{
	if (!v->cuts)
		return;
	uint64_t c = atomic_load_explicit(v->cuts, memory_order_acquire);
	if (c == v->cuts_seen)
		return;
	v->cuts_seen = c;
	sl__view_forget(v);
}

void sl_log_view_follow_start(struct sl_log_view *v, const _Atomic uint64_t *start, bool strict)
{
	v->start = start;
	v->strict = strict;
}

/* At the start of every read: closes the segments retention removed (their
 * successor starts at or below the published start). Returns the start
 * (0 when not followed). */
static uint64_t sl__view_check_start(struct sl_log_view *v)
{
	if (!v->start)
		return 0;
	/* Acquire: pairs with the owner's release store made before it hands
	 * the files to be unlinked; a segment listed after that is gone or
	 * let go here. */
	uint64_t start = atomic_load_explicit(v->start, memory_order_acquire);
	uint32_t drop = 0;
	while (drop + 1 < v->n_segs && v->segs[drop + 1].base <= start)
		drop++;
	if (!drop)
		return start;
	for (uint32_t i = 0; i < drop; i++) {
		close(v->segs[i].fd);
		sl__seg_free_index(&v->segs[i]);
	}
	memmove(v->segs, v->segs + drop, (v->n_segs - drop) * sizeof(*v->segs));
	v->n_segs -= drop;
	v->buf_len = 0;
	if (v->cur_valid && v->cur_seg >= drop)
		v->cur_seg -= drop;
	else
		v->cur_valid = false;
	return start;
}

const char *sl_log_view_error(const struct sl_log_view *v)
{
	return v->error;
}

const char *sl_log_view_strerror(const struct sl_log_view *v, int err)
{
	return v && v->error[0] ? v->error : sl_strerror(err);
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
	uint8_t *p = sl_grow(v->buf, &v->buf_cap, want, SL_VIEW_CHUNK);
	if (!p) {
		*err = -ENOMEM;
		return NULL;
	}
	v->buf = p;
	ssize_t n = sl__pread_all(s->fd, v->buf, want, pos);
	if (n < 0) {
		/* A disk that fails a read (EIO): the reader is told which file
		 * and where, and may try again; nothing is cached from it. */
		*err = (int)n;
		v->buf_len = 0;
		snprintf(v->error, sizeof(v->error),
		         "read of %s/%020" PRIu64 ".log (bytes %" PRIu64 "..%" PRIu64 "): %s",
		         v->dir, s->base, pos, pos + want, strerror((int)-n));
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

/* Where to start reading `offset`: where the last read stopped (*trusted:
 * inside a batch it checked), else a batch at or before it from the
 * index. */
static int sl__view_locate(struct sl_log_view *v, uint64_t offset, uint32_t *seg, uint64_t *pos,
                           uint64_t *at, bool *trusted)
{
	int err;
	*trusted = false;
	if (v->cur_valid && v->cur_next == offset) {
		*seg = v->cur_seg;
		*pos = v->cur_pos;
		*at = v->cur_at;
		*trusted = v->cur_next > v->cur_at;
		return 0;
	}
	if (offset >= v->segs[v->n_segs - 1].base && (err = sl__view_list(v)) < 0)
		return err;
	*seg = 0;
	for (uint32_t i = 1; i < v->n_segs; i++)
		if (v->segs[i].base <= offset)
			*seg = i;
	/* A sealed segment (one follows it) has its index on disk. */
	if (!v->segs[*seg].n_idx && *seg + 1 < v->n_segs)
		sl__idx_load(v->dir, &v->segs[*seg]);
	sl__view_seek(&v->segs[*seg], offset, pos, at);
	return 0;
}

/*
 * The batch that starts at offset `at`, at `pos` of segment `seg` or at the
 * start of a later segment (both moved there), checked: its checksum and
 * records unless `trusted` and it is where the last read stopped inside
 * (*resumed), and its first offset. 0 with *hp (into v->buf) and *b;
 * -SL_ECORRUPT with v->error naming the file and byte; -errno.
 */
static int sl__view_batch(struct sl_log_view *v, uint32_t *seg, uint64_t *pos, uint64_t at,
                          bool trusted, const uint8_t **hp, struct sl_bhdr *b, bool *resumed)
{
	/* Read-ahead bytes are kept between reads: below the durable end a
	 * segment never changes. Bytes read ahead past it may have been in
	 * flight then; they only ever fail validation, and a failure on cached
	 * bytes is retried from the file once before it counts. */
	bool fresh = false;
	int err;
	for (;;) {
		struct sl_seg *s = &v->segs[*seg];
		if (*seg + 1 < v->n_segs && at >= v->segs[*seg + 1].base) {
			(*seg)++;
			*pos = 0;
			continue;
		}
		/* The smallest header first: its magic says which it is. */
		const uint8_t *h = sl__view_bytes(v, s, *pos, SL_LOG_BATCH_HDR_V1, &err);
		uint32_t hdr = h ? sl_batch_hdr_size(sl_get_le32(h + SL_BATCH_MAGIC)) : 0;
		if (hdr) {
			uint32_t blen = sl_get_le32(h + SL_BATCH_LEN);
			h = blen <= SL_BATCH_MAX
			        ? sl__view_bytes(v, s, *pos, hdr + (size_t)blen, &err)
			        : NULL;
			if (h)
				sl_batch_hdr_decode(h, b);
		} else if (!err && (*seg + 1 >= v->n_segs)) {
			/* Past the end of what we know: a new segment may hold it. */
			uint32_t before = v->n_segs;
			if ((err = sl__view_list(v)) < 0)
				return err;
			if (v->n_segs > before && v->segs[*seg + 1].base == at) {
				(*seg)++;
				*pos = 0;
				continue;
			}
			h = NULL;
		} else {
			h = NULL;
		}
		if (err < 0)
			return err;
		*resumed = trusted && *seg == v->cur_seg && *pos == v->cur_pos;
		bool ok = h && (*resumed || sl_batch_valid(h, b->hdr_len + (size_t)b->len, b)) &&
		          b->base_offset == at;
		trusted = false;
		if (ok) {
			*hp = h;
			return 0;
		}
		if (!fresh) {
			fresh = true;
			v->buf_len = 0;
			continue;
		}
		snprintf(v->error, sizeof(v->error),
		         "%s/%020" PRIu64 ".log: no valid batch at byte %" PRIu64
		         " where offset %" PRIu64 " should be",
		         v->dir, s->base, *pos, at);
		v->cur_valid = false;
		return -SL_ECORRUPT;
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
	v->error[0] = 0;
	sl__view_check_cuts(v);
	uint64_t start = sl__view_check_start(v);
	if (v->strict && offset < start) {
		snprintf(v->error, sizeof(v->error),
		         "offset %" PRIu64 " is below the log's start %" PRIu64
		         " (removed by retention)",
		         offset, start);
		return -SL_EOUT_OF_RANGE;
	}
	if (!v->n_segs || offset >= limit) {
		if (!v->n_segs && (err = sl__view_list(v)) < 0)
			return err;
		if (offset >= limit || !v->n_segs)
			return 0;
	}
	if (offset < v->segs[0].base) {
		if (v->strict) {
			snprintf(v->error, sizeof(v->error),
			         "offset %" PRIu64 " is below the log's start %" PRIu64
			         " (removed by retention)",
			         offset, v->segs[0].base);
			return -SL_EOUT_OF_RANGE;
		}
		offset = v->segs[0].base;
	}
	bool trusted; /* the batch at cur_seg/cur_pos was checked by the last read */
	if ((err = sl__view_locate(v, offset, &seg, &pos, &at, &trusted)) < 0)
		return err;

	while (at < limit && (uint32_t)visited < max_events) {
		const uint8_t *h;
		struct sl_bhdr b;
		bool resumed;
		err = sl__view_batch(v, &seg, &pos, at, trusted, &h, &b, &resumed);
		trusted = false;
		if (err == -SL_ECORRUPT && visited)
			return visited; /* report the damage on the next read */
		if (err < 0)
			return err;
		struct sl_seg *s = &v->segs[seg];
		if ((err = sl__idx_add(s, at, pos)) < 0)
			return err;
		const uint8_t *r = h + b.hdr_len, *end = r + b.len, *resume = r;
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
			/* Checked whole by sl_batch_valid (now, or by the read
			 * that left cur_* here): every record parses. */
			r += sl_varint_get(r, end, &size);
			r += sl_varint_get(r, end, &delta);
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
			    .offset = off,
			    .producer_id = b.producer_id,
			    .epoch = b.epoch,
			    .seq = b.base_seq + delta,
			    .append_time_ms = b.time_ms,
			    .event = ev,
			    .len = (uint32_t)size,
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
			v->cur_rpos = (uint32_t)(resume - (h + b.hdr_len));
			return visited;
		}
		pos += sl_batch_span_of(&b);
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

int sl_log_view_read_raw(struct sl_log_view *v, uint64_t offset, uint64_t limit, uint32_t max_bytes,
                         uint8_t *buf, size_t cap, size_t *len, uint64_t *next)
{
	uint32_t seg;
	uint64_t pos, at;
	int copied = 0, err;
	bool trusted;

	*len = 0;
	*next = offset;
	v->error[0] = 0;
	sl__view_check_cuts(v);
	if (offset < sl__view_check_start(v))
		return -ERANGE;
	if (!v->n_segs && (err = sl__view_list(v)) < 0)
		return err;
	if (offset >= limit || !v->n_segs)
		return 0;
	if (offset < v->segs[0].base)
		return -ERANGE;
	if ((err = sl__view_locate(v, offset, &seg, &pos, &at, &trusted)) < 0)
		return err;
	while (at < limit) {
		const uint8_t *h;
		struct sl_bhdr b;
		bool resumed;
		/* Whole batches: the one a stop inside left is checked again. */
		err = sl__view_batch(v, &seg, &pos, at, false, &h, &b, &resumed);
		if (err == -SL_ECORRUPT && copied)
			break; /* report the damage on the next read */
		if (err < 0)
			return err;
		if ((err = sl__idx_add(&v->segs[seg], at, pos)) < 0)
			return err;
		uint64_t span = sl_batch_span_of(&b);
		if (at < offset) {
			if (offset < at + b.count)
				return -EINVAL; /* inside this batch */
			pos += span;
			at += b.count;
			continue;
		}
		if (at + b.count > limit)
			break;
		if (span > cap - *len || (copied && *len + span > max_bytes)) {
			if (!copied)
				return -ENOBUFS;
			break;
		}
		/* The padding is zero by construction; written as such, the
		 * copy is what sl_log_append_raw takes whatever the file held
		 * there. */
		memcpy(buf + *len, h, b.hdr_len + (size_t)b.len);
		memset(buf + *len + b.hdr_len + b.len, 0, span - b.hdr_len - b.len);
		*len += span;
		copied++;
		pos += span;
		at += b.count;
		*next = at;
	}
	/* At a batch boundary: a follower's next fetch starts here. */
	v->cur_seg = seg;
	v->cur_pos = pos;
	v->cur_at = at;
	v->cur_next = at;
	v->cur_valid = true;
	return copied;
}

/* ---- seek by time ------------------------------------------------------------- */

/* The segment's time index as far as `limit` may be read: a sealed one's
 * from its `.tix` (else its headers, once), the last one's headers from
 * where its last scan stopped. */
static int sl__view_tix(struct sl_log_view *v, uint32_t i, uint64_t limit)
{
	struct sl_seg *s = &v->segs[i];
	bool sealed = i + 1 < v->n_segs;
	if (s->tix_whole)
		return 0;
	if (sealed) {
		sl__tix_load(v->dir, s);
		if (s->tix_whole)
			return 0;
		limit = v->segs[i + 1].base;
	}
	int ret = sl__tix_scan(s->fd, s, limit);
	if (ret == 0 && sealed)
		ret = sl__tix_finish(s);
	return ret;
}

/* Forgets a segment's time index that did not match its bytes: the next
 * look scans its headers. */
static void sl__view_tix_drop(struct sl_seg *s)
{
	free(s->tix);
	s->tix = NULL;
	s->n_tix = s->cap_tix = 0;
	s->tix_whole = false;
	s->tix_bad = false;
}

/* In segment s, whose running maximum reaches time_ms: the first batch
 * whose running maximum does, from the last entry below it (at most
 * SL_TIX_EVERY bytes and a batch before the next entry, which reaches it).
 * 1 with *offset; 0 when the bytes do not match the index (the caller
 * drops it and scans); -errno. */
static int sl__view_tix_find(struct sl_seg *s, int64_t time_ms, uint64_t *offset)
{
	uint32_t lo = 0, hi = s->n_tix;
	if (s->tix[0].time_ms >= time_ms) {
		*offset = s->base;
		return 1;
	}
	while (hi - lo > 1) {
		uint32_t mid = (lo + hi) / 2;
		if (s->tix[mid].time_ms < time_ms)
			lo = mid;
		else
			hi = mid;
	}
	uint64_t pos = s->tix[lo].pos, off = s->base + s->tix[lo].rel;
	int64_t m = s->tix[lo].time_ms;
	struct stat st;
	if (fstat(s->fd, &st) < 0)
		return -errno;
	for (;;) {
		uint8_t h[SL_LOG_BATCH_HDR];
		struct sl_bhdr b = {0};
		uint64_t size = (uint64_t)st.st_size;
		if (pos + SL_LOG_BATCH_HDR_V1 > size)
			return 0;
		size_t want = size - pos < sizeof(h) ? (size_t)(size - pos) : sizeof(h);
		ssize_t n = sl__pread_all(s->fd, h, want, pos);
		if (n < 0)
			return (int)n;
		uint32_t hl =
		    (size_t)n < SL_LOG_BATCH_HDR_V1 ? 0 : sl_batch_hdr_size(sl_get_le32(h));
		if (!hl || (size_t)n < hl)
			return 0;
		sl_batch_hdr_decode(h, &b);
		if (b.base_offset != off || !b.count || b.len > SL_BATCH_MAX)
			return 0;
		if (b.time_ms > m)
			m = b.time_ms;
		if (m >= time_ms) {
			*offset = off;
			return 1;
		}
		pos += sl_batch_span_of(&b);
		off += b.count;
	}
}

int sl_log_view_seek_time(struct sl_log_view *v, int64_t time_ms, uint64_t limit, uint64_t *offset)
{
	int ret;
	v->error[0] = 0;
	*offset = limit;
	sl__view_check_cuts(v);
	(void)sl__view_check_start(v);
	if ((ret = sl__view_list(v)) < 0)
		return ret;
	uint32_t rescanned = UINT32_MAX;
	for (uint32_t i = 0; i < v->n_segs && v->segs[i].base < limit; i++) {
		struct sl_seg *s = &v->segs[i];
		if ((ret = sl__view_tix(v, i, limit)) < 0)
			return ret;
		if (s->tix_bad || !s->n_tix || s->tix_max < time_ms)
			continue;
		/* The first batch whose running maximum reaches time_ms is in
		 * this segment: the earlier segments' times are all below
		 * it, so the segment's own running maximum decides. */
		uint64_t at = limit;
		if ((ret = sl__view_tix_find(s, time_ms, &at)) < 0)
			return ret;
		if (ret == 0) {
			/* A `.tix` that does not describe its segment (a cache
			 * left by something else): its headers instead, once. */
			if (rescanned == i)
				return -SL_ECORRUPT;
			rescanned = i;
			sl__view_tix_drop(s);
			uint64_t end = i + 1 < v->n_segs ? v->segs[i + 1].base : limit;
			if ((ret = sl__tix_scan(s->fd, s, end)) < 0)
				return ret;
			if (i + 1 < v->n_segs && (ret = sl__tix_finish(s)) < 0)
				return ret;
			i--;
			continue;
		}
		*offset = at < limit ? at : limit;
		return at < limit;
	}
	return 0;
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
	int n =
	    sl_log_view_read(rd->v, rd->next, limit, 1, UINT32_MAX, sl__reader_take, rec, &next);
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
