/*
 * The time index read back: a segment's batch headers walked to build (or
 * finish) its entries when no `.tix` holds them (the active segment, a
 * segment sealed before time indexes existed, a damaged file), and the
 * newest append time of a sealed segment for retention by age.
 *
 * Threads: any, on the caller's own segment and descriptor (a view's on its
 * thread, the writer's on the owner). Only headers are read here; a batch
 * a seek lands on is checked in full by the read that follows.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/base.h"
#include "log/log_impl.h"

/* Reads the header at pos: 1 with *b, 0 when none is there (end of what
 * was written, or not a batch), -errno. */
static int sl__hdr_at(int fd, uint64_t pos, uint64_t file_size, struct sl_bhdr *b)
{
	uint8_t h[SL_LOG_BATCH_HDR];
	if (pos + SL_LOG_BATCH_HDR_V1 > file_size)
		return 0;
	size_t want = file_size - pos < sizeof(h) ? (size_t)(file_size - pos) : sizeof(h);
	ssize_t n = sl__pread_all(fd, h, want, pos);
	if (n < 0)
		return (int)n;
	uint32_t hdr = (size_t)n < SL_LOG_BATCH_HDR_V1 ? 0 : sl_batch_hdr_size(sl_get_le32(h));
	if (!hdr || (size_t)n < hdr)
		return 0;
	sl_batch_hdr_decode(h, b);
	if (b->len > SL_BATCH_MAX || !b->count || pos + b->hdr_len + b->len > file_size)
		return 0;
	return 1;
}

int sl__tix_scan(int fd, struct sl_seg *s, uint64_t limit)
{
	struct stat st;
	if (s->tix_bad)
		return 0;
	if (fstat(fd, &st) < 0)
		return -errno;
	uint64_t pos = 0, off = s->base;
	if (s->n_tix) {
		/* Go on after the last batch noted: it was checked then. */
		pos = s->tix_last_pos;
		off = s->base + s->tix_last_rel;
		struct sl_bhdr b = {0};
		int ret = sl__hdr_at(fd, pos, (uint64_t)st.st_size, &b);
		if (ret <= 0 || b.base_offset != off)
			return ret < 0 ? ret : 0;
		pos += sl_batch_span_of(&b);
		off += b.count;
	}
	while (off < limit) {
		struct sl_bhdr b = {0};
		int ret = sl__hdr_at(fd, pos, (uint64_t)st.st_size, &b);
		if (ret < 0)
			return ret;
		/* Not a batch where one should be, or one that ends past what
		 * may be read: the end of what this scan may know. */
		if (!ret || b.base_offset != off || b.base_offset + b.count > limit)
			break;
		if ((ret = sl__tix_add(s, off, pos, b.time_ms)) < 0)
			return ret;
		pos += sl_batch_span_of(&b);
		off += b.count;
	}
	return 0;
}

int sl__seg_newest_time(const char *dir, struct sl_seg *s, uint64_t next_base, int64_t *out)
{
	if (!s->tix_whole)
		sl__tix_load(dir, s);
	if (!s->tix_whole) {
		/* A segment with no time index (sealed before there were
		 * any): its batches' headers, once; kept for next time. */
		s->tix_bad = false;
		s->n_tix = 0;
		int ret = sl__tix_scan(s->fd, s, next_base);
		if (ret < 0)
			return ret;
		if (!s->n_tix || s->base + s->tix_last_rel >= next_base || s->tix_bad)
			return -SL_ECORRUPT;
		if ((ret = sl__tix_finish(s)) < 0)
			return ret;
	}
	*out = s->tix[s->n_tix - 1].time_ms;
	return 0;
}
