/*
 * Append and group commit: the write buffer, batches being filled, the
 * group commit's pwrite and fdatasync through the owner's io_uring, its
 * completions, the durable end and the stats.
 *
 * Threads: the log's owner only (the reactor that owns the partition, or a
 * tool working on a log it opened). Nothing here is shared: other threads
 * learn the durable end from what the owner publishes (topic/), and read
 * through views (view.c). Hot path: sl_log_append takes no lock, makes no
 * syscall, and allocates only when the buffer must grow.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/base.h"
#include "base/varint.h"
#include "log/log_impl.h"

/*
 * Empties the buffer for the next group commit. An overload can grow one
 * to hundreds of MiB (everything appended while an fdatasync is slow);
 * kept, that capacity would stay resident for good, on every partition
 * that ever saw a burst, past the memory budget the credits enforce. So a
 * buffer larger than SL_LOG_BUF_KEEP and four times its recent peak
 * shrinks to twice that peak.
 */
void sl__wbuf_reuse(struct sl_wbuf *b, uint64_t first_offset)
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

	struct sl_bhdr bh = {
	    .base_offset = log->batch_base_off,
	    .count = log->batch_count,
	    .len = len,
	    .time_ms = log->batch_time_ms,
	    .producer_id = log->batch_pid,
	    .epoch = log->batch_epoch,
	    .unit_start = 0, /* set when the write is issued (sl_batch_seal) */
	    .base_seq = log->batch_base_seq,
	    .leader_epoch = log->leader_epoch,
	};
	sl_batch_hdr_encode(h, &bh);
	/* The checksum is taken when the write is issued, once unit_start is
	 * known; zero padding keeps every batch 8-byte aligned. */
	uint32_t pad = (uint32_t)(sl_batch_align(b->len) - b->len);
	memset(b->p + b->len, 0, pad);
	b->len += pad;
	log->batch_open = false;
	log->stats.batches++;
}

void sl_log_set_leader_epoch(struct sl_log *log, uint32_t epoch)
{
	if (epoch == log->leader_epoch)
		return;
	if (log->batch_open)
		sl__batch_close(log);
	log->leader_epoch = epoch;
}

int sl_log_append(struct sl_log *log, uint64_t producer_id, uint32_t epoch, uint64_t seq,
                  const uint8_t *event, uint32_t len, uint64_t *offset)
{
	struct sl_wbuf *b = &log->wb;

	if (SL_UNLIKELY(log->failed | log->full))
		return log->failed ? -SL_ELOG_FAILED : -SL_ELOG_FULL;
	if (SL_UNLIKELY((size_t)len + 32 > SL_BATCH_MAX - SL_LOG_BATCH_HDR))
		return -EMSGSIZE;
	/* One clock read per group commit, not per event (a journaled log's
	 * buffer may still hold what waits for its segment: jsent). */
	if (b->len == log->jsent)
		log->group_t0 = sl_now_ns();
	if (log->batch_open &&
	    (producer_id != log->batch_pid || epoch != log->batch_epoch ||
	     seq < log->batch_base_seq || seq - log->batch_base_seq > UINT32_MAX ||
	     (size_t)(b->len - log->batch_at) + len + 32 > SL_BATCH_MAX))
		sl__batch_close(log);
	/* Worst case: header, two varints, the event, padding. */
	if (sl__wbuf_reserve(b, SL_LOG_BATCH_HDR + SL_BATCH_REC_MAX_OVERHEAD + (size_t)len +
	                            SL_LOG_ALIGN) < 0)
		return -ENOMEM;
	if (!log->batch_open) {
		log->batch_open = true;
		log->batch_at = b->len;
		log->batch_pid = producer_id;
		log->batch_epoch = epoch;
		log->batch_base_seq = seq;
		log->batch_base_off = log->next_offset;
		log->batch_count = 0;
		log->group_own = true;
		/* Taken when the batch opens, not when it closes: the
		 * partition's event-id window records it with each event
		 * appended (sl_log_append_time_ms), and recovery reads the
		 * same value back from the header. */
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		log->batch_time_ms = log->opts.clock_ms
		                         ? log->opts.clock_ms()
		                         : (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
		b->len += SL_LOG_BATCH_HDR;
	}
	uint8_t *r = sl_varint_put(b->p + b->len, len);
	r = sl_varint_put(r, seq - log->batch_base_seq);
	b->len = (uint32_t)(r - b->p);
	memcpy(b->p + b->len, event, len);
	b->len += len;
	log->batch_count++;
	*offset = log->next_offset++;
	return 0;
}

int64_t sl_log_append_time_ms(const struct sl_log *log)
{
	return log->batch_time_ms;
}

int sl__seal_group(struct sl_log *log, uint32_t at, uint64_t pos)
{
	struct sl_seg *s = &log->segs[log->n_segs - 1];
	struct sl_wbuf *b = &log->wb;
	uint64_t base = pos - at; /* segment position of wb byte 0 */
	uint32_t r = 0;
	while (at < b->len) {
		uint8_t *h = b->p + at;
		while (r < log->n_raw && log->raw[r].to <= at)
			r++;
		/* A replica's batch keeps the leader's unit_start and checksum:
		 * byte-identical copies (log.h, raw appends). */
		if (r < log->n_raw && log->raw[r].from <= at)
			log->last_unit = sl_get_le32(h + SL_BATCH_UNIT_START);
		else {
			sl_batch_seal(h, (uint32_t)pos);
			log->last_unit = (uint32_t)pos;
		}
		int ret = sl__idx_add(s, sl_get_le64(h + SL_BATCH_BASE_OFFSET), base + at);
		if (ret == 0)
			ret = sl__tix_add(s, sl_get_le64(h + SL_BATCH_BASE_OFFSET), base + at,
			                  (int64_t)sl_get_le64(h + SL_BATCH_TIME_MS));
		if (ret < 0)
			return ret;
		at += (uint32_t)sl_batch_span_at(h);
	}
	return 0;
}

bool sl__group_rolls(const struct sl_log *log, uint64_t seg_end, uint32_t at)
{
	if (log->raw_group == SL_RAWGROUP_ROLL)
		return seg_end > 0;
	if (log->raw_group == SL_RAWGROUP_STAY)
		return false;
	return seg_end > 0 && seg_end + (log->wb.len - at) > log->opts.segment_bytes;
}

void sl__group_done(struct sl_log *log)
{
	log->n_raw = 0;
	log->raw_group = SL_RAWGROUP_NONE;
	log->group_own = false;
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

uint32_t sl__hist_bucket(uint64_t ns)
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

/*
 * Before bytes go to the active segment up to `end`: half way through a
 * segment, asks for the next one (a log that never fills one, most in
 * tests, never costs a prepared file), and allocates ahead. 0; 1 when the
 * device is full (the log turned `full`, the bytes wait); -SL_ELOG_FAILED.
 */
static int sl__make_room(struct sl_log *log, uint64_t end)
{
	if (log->opts.prep && end > log->opts.segment_bytes / 2 &&
	    atomic_load_explicit(&log->prep.state, memory_order_relaxed) == SL_SEGPREP_NONE)
		sl__segprep_request(log->opts.prep, &log->prep);
	int ret = sl__prealloc_ahead(log, end);
	if (ret == 0)
		return 0;
	uint64_t base = log->segs[log->n_segs - 1].base;
	if (sl__no_space(ret)) {
		sl__full(log,
		         "pre-allocate %s/%020" PRIu64 ".log beyond byte %" PRIu64
		         ": %s; new events are refused until space is freed",
		         log->dir, base, log->alloc_end, strerror(-ret));
		return 1;
	}
	sl__fail(log, "pre-allocate %s/%020" PRIu64 ".log beyond byte %" PRIu64 ": %s", log->dir,
	         base, log->alloc_end, strerror(-ret));
	return -SL_ELOG_FAILED;
}

/* ---- journaled logs (log.h: the journal) ----------------------------------- */

int sl__log_segwrite(struct sl_log *log, struct io_uring *ring)
{
	struct sl_wbuf *b = &log->wb;
	uint32_t n = log->jsent;
	if (!n || log->failed)
		return log->failed ? -SL_ELOG_FAILED : 0;
	struct sl_seg *s = &log->segs[log->n_segs - 1];
	ssize_t w = sl__pwrite_all(s->fd, b->p, n, log->write_pos);
	if (w != (ssize_t)n) {
		/* Acked already (the journal has it): a write that fails now
		 * stops the partition; a restart replays the journal. The
		 * space was allocated before the hand-off, so ENOSPC here is
		 * not the device filling up. */
		int err = w < 0 ? (int)w : -ENOSPC;
		sl__fail(log,
		         "write of %s/%020" PRIu64 ".log (bytes %" PRIu64 "..%" PRIu64
		         ") failed: %s; partition stopped",
		         log->dir, s->base, log->write_pos, log->write_pos + n, strerror(-err));
		return -SL_ELOG_FAILED;
	}
	log->stats.bytes_written += n;
	log->stats.writes++;
	log->write_pos += n;
	s->size = log->write_pos;
	/* Start the writeback as the segment fills, as the relaxed policies
	 * do: the checkpoint's fdatasyncs (and a roll's) then find little
	 * left, instead of 64 MiB per journal file at once beside the
	 * journal's own syncs (8 partitions: ack p99 140 ms without). */
	if (ring)
		sl__writeback_kick(log, ring);
	memmove(b->p, b->p + n, b->len - n);
	b->len -= n;
	if (log->batch_open)
		log->batch_at -= n;
	/* Raw runs are all in the group after the hand-off (jsent). */
	for (uint32_t i = 0; i < log->n_raw; i++) {
		log->raw[i].from -= n;
		log->raw[i].to -= n;
	}
	log->jsent = 0;
	if (b->len == 0)
		sl__wbuf_reuse(b, log->jsent_off);
	else
		b->first_offset = log->jsent_off;
	log->durable = log->acked < b->first_offset ? log->acked : b->first_offset;
	return 0;
}

void sl__log_journaled(struct sl_log *log, uint64_t end, uint64_t commit_ns)
{
	if (end > log->acked)
		log->acked = end;
	sl__commit_hist_add(log, commit_ns);
	/* wb starts at the first offset not yet in the segment. */
	uint64_t written = log->wb.first_offset;
	log->durable = log->acked < written ? log->acked : written;
}

/*
 * A journaled log's group commit: seals what was appended since the last
 * hand-off at the segment positions it will have, and hands it to the
 * journal. A roll happens here, before the sealing (positions depend on
 * it): the bytes still waiting for their segment are written first.
 */
static int sl__jflush(struct sl_log *log)
{
	if (log->failed)
		return -SL_ELOG_FAILED;
	if (SL_UNLIKELY(log->full) && sl_now_ns() < log->full_retry_ns)
		return 0;
	if (log->batch_open)
		sl__batch_close(log);
	struct sl_wbuf *b = &log->wb;
	uint32_t newlen = b->len - log->jsent;
	if (!newlen)
		return 0;
	uint64_t seg_end = log->write_pos + log->jsent;
	if (sl__group_rolls(log, seg_end, log->jsent)) {
		if (sl__log_segwrite(log, NULL) < 0)
			return -SL_ELOG_FAILED;
		int ret = sl__roll(log, log->jsent_off);
		if (ret < 0)
			return log->full && !log->failed ? 0 : -SL_ELOG_FAILED;
		if (log->raw_group == SL_RAWGROUP_ROLL)
			log->raw_group = SL_RAWGROUP_STAY; /* rolled: not again on a retry */
		seg_end = 0;
	}
	struct sl_seg *s = &log->segs[log->n_segs - 1];
	/* Allocated before the journal has it: a full device refuses it
	 * here, unacked, and not at the deferred write, acked. */
	int ret = sl__make_room(log, seg_end + newlen);
	if (ret)
		return ret < 0 ? ret : 0;
	if (log->full && !sl__journal_full(log->opts.journal))
		sl__full_clear(log);
	ret = sl__seal_group(log, log->jsent, seg_end);
	if (ret < 0)
		return ret;
	if (log->no_prealloc) {
		/* Nothing reserves the segment's space on this filesystem, so
		 * a deferred write could meet a full device after the ack:
		 * the bytes go to the segment first (a refusal then is a full
		 * device, retried, nothing acked). Bytes still deferred from
		 * before (the log learnt just now that the filesystem cannot
		 * pre-allocate: a segment recovered from one that could) go
		 * first, so the new ones start the buffer, at seg_end. */
		if (log->jsent && sl__log_segwrite(log, NULL) < 0)
			return -SL_ELOG_FAILED;
		ssize_t w = sl__pwrite_all(s->fd, b->p, newlen, seg_end);
		if (w != (ssize_t)newlen) {
			int err = w < 0 ? (int)w : -ENOSPC;
			if (sl__no_space(err)) {
				sl__full(
				    log,
				    "write of %s/%020" PRIu64 ".log (bytes %" PRIu64 "..%" PRIu64
				    ") failed: %s; new events are refused until space is freed",
				    log->dir, s->base, seg_end, seg_end + newlen, strerror(-err));
				return 0;
			}
			sl__fail(log,
			         "write of %s/%020" PRIu64 ".log (bytes %" PRIu64 "..%" PRIu64
			         ") failed: %s; partition stopped",
			         log->dir, s->base, seg_end, seg_end + newlen, strerror(-err));
			return -SL_ELOG_FAILED;
		}
		if (log->full && !sl__journal_full(log->opts.journal))
			sl__full_clear(log);
	}
	ret = sl__journal_add(log->opts.journal, log, b->p + log->jsent, newlen, log->next_offset,
	                      log->group_t0);
	if (ret < 0) {
		if (ret == -SL_ELOG_FAILED)
			sl__fail(log, "%s", sl_journal_error(log->opts.journal));
		return ret == -SL_ELOG_FAILED ? ret : -ENOMEM;
	}
	log->jsent_off = log->next_offset;
	sl__group_done(log);
	if (log->no_prealloc) {
		/* In the segment already (jsent is 0 in this mode). */
		log->stats.bytes_written += newlen;
		log->stats.writes++;
		log->write_pos += newlen;
		s->size = log->write_pos;
		sl__wbuf_reuse(b, log->next_offset);
		return 3;
	}
	log->jsent = b->len;
	return 3;
}

int sl_log_flush(struct sl_log *log, struct io_uring *ring, uint64_t ud)
{
	/* A durability change first: nothing is written under the old policy
	 * once it is asked for, and nothing waits for the new one before it. */
	if (SL_UNLIKELY(log->sw_pending)) {
		int ret = sl__log_switch(log);
		/* No memory to join the journal: the owner's request, which
		 * tries again each turn, decides (it may join without). */
		if (ret <= 0)
			return ret == -ENOMEM ? 0 : ret;
	}
	if (log->opts.journal)
		return sl__jflush(log);
	if (log->failed)
		return -SL_ELOG_FAILED;
	if (SL_UNLIKELY(log->full) && sl_now_ns() < log->full_retry_ns)
		return 0;
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
	bool want_sync =
	    !beside_sync &&
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
	if (sl__group_rolls(log, log->write_pos, 0)) {
		if (beside_sync)
			return 0; /* the completion brings the caller back */
		int ret = sl__roll(log, b->first_offset);
		if (ret < 0)
			return log->full && !log->failed ? 0 : -SL_ELOG_FAILED;
		if (log->raw_group == SL_RAWGROUP_ROLL)
			log->raw_group = SL_RAWGROUP_STAY; /* rolled: not again on a retry */
	}
	struct sl_seg *s = &log->segs[log->n_segs - 1];
	int ret = sl__make_room(log, log->write_pos + b->len);
	if (ret)
		return ret < 0 ? ret : 0;
	ret = sl__seal_group(log, 0, log->write_pos);
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
		/* A short write without an error is the device filling up. */
		int err = w < 0 ? (int)w : -ENOSPC;
		if (sl__no_space(err)) {
			/* Written again, whole and at the same place, once there
			 * is room: what part of it went through is overwritten
			 * with the same bytes, and nothing of it is acked before. */
			sl__full(log,
			         "write of %s/%020" PRIu64 ".log (bytes %" PRIu64 "..%" PRIu64
			         ") failed: %s; new events are refused until space is freed",
			         log->dir, s->base, log->write_pos, log->write_pos + b->len,
			         strerror(-err));
			return 0;
		}
		sl__fail(log,
		         "write of %s/%020" PRIu64 ".log (bytes %" PRIu64 "..%" PRIu64
		         ") failed: %s; partition stopped",
		         log->dir, s->base, log->write_pos, log->write_pos + b->len,
		         strerror(-err));
		return -SL_ELOG_FAILED;
	}
	sl__full_clear(log);
	sl__group_done(log);
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
		sl__fail(log,
		         "%s of %s/%s (bytes %" PRIu64 "..%" PRIu64 ") failed: %s; "
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
	if (log->failed || log->inflight || log->full)
		return false;
	if (log->opts.journal) /* a hand-off: the journal's commit syncs */
		return log->batch_open || log->wb.len > log->jsent;
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
uint64_t sl_log_acked(const struct sl_log *log)
{
	return log->opts.journal ? log->acked : log->durable;
}
struct sl_journal *sl_log_journal(const struct sl_log *log)
{
	return log->opts.journal;
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
bool sl_log_full(const struct sl_log *log)
{
	return log->full;
}
bool sl_log_busy(const struct sl_log *log)
{
	if (log->opts.journal)
		return log->batch_open || log->wb.len > log->jsent || log->acked < log->next_offset;
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

int sl_log_set_journal(struct sl_log *log, struct sl_journal *j, const char *key)
{
	if (log->opts.journal)
		return 0;
	char *k = strdup(key);
	if (!k)
		return -ENOMEM;
	int ret = sl__journal_attach(j, log);
	if (ret < 0) {
		free(k);
		return ret;
	}
	free(log->jkey);
	log->jkey = k;
	log->opts.journal = j;
	log->acked = log->durable;
	log->jsent = 0;
	log->jsent_off = log->next_offset;
	return 0;
}

/* ---- raw appends: a replica's copy of the leader's batches (log.h) ------- */

/*
 * Checks that [p, p + n) is whole batches back to back, each valid, zero
 * padded, continuing the log at `first`. Nothing is changed.
 */
static int sl__raw_check(const uint8_t *p, size_t n, uint64_t first)
{
	uint64_t expect = first;
	size_t at = 0;
	while (at < n) {
		struct sl_bhdr b;
		if (!sl_batch_valid(p + at, n - at, &b))
			return -SL_ECORRUPT;
		uint64_t span = sl_batch_span_of(&b);
		if (span > n - at)
			return -EINVAL; /* the last batch without its padding */
		for (size_t i = b.hdr_len + b.len; i < span; i++)
			if (p[at + i])
				return -SL_ECORRUPT;
		if (b.base_offset != expect)
			return -EINVAL; /* a gap or an overlap */
		expect += b.count;
		at += span;
	}
	return 0;
}

/*
 * Where the leader's segment holding the batch at p[at] starts, when the
 * replica's active segment so far is one group written at 0 (every
 * unit_start 0) and this batch's unit_start is 0 too: the batch either
 * continues that group or starts the next segment with a group of its own.
 * The first later batch C with a non-zero unit_start tells which: its
 * unit_start is its position in its segment, so its segment began that many
 * bytes before it. Returns 1 with *start (a byte of p, >= at) where a
 * segment starts, 0 when the active segment goes on up to C, -1 when
 * nothing in p tells. *until: C's byte (n without one).
 */
static int sl__raw_seg_start(const uint8_t *p, size_t n, size_t at, uint64_t seg_pos, size_t *start,
                             size_t *until)
{
	size_t c = at;
	while (c < n && sl_get_le32(p + c + SL_BATCH_UNIT_START) == 0)
		c += sl_batch_span_at(p + c);
	*until = c;
	if (c >= n)
		return -1;
	uint64_t cu = sl_get_le32(p + c + SL_BATCH_UNIT_START);
	if (seg_pos + (c - at) == cu)
		return 0;
	for (size_t s = at; s < c; s += sl_batch_span_at(p + s))
		if (c - s == cu) {
			*start = s;
			return 1;
		}
	return -1;
}

int sl_log_append_raw(struct sl_log *log, const uint8_t *p, size_t n, uint64_t *end)
{
	struct sl_wbuf *b = &log->wb;
	int ret;

	*end = log->next_offset;
	if (SL_UNLIKELY(log->failed | log->full))
		return log->failed ? -SL_ELOG_FAILED : -SL_ELOG_FULL;
	if (n > INT32_MAX || n % SL_LOG_ALIGN)
		return -EINVAL;
	ret = sl__raw_check(p, n, log->next_offset);
	if (ret < 0)
		return ret;
	if (log->batch_open)
		sl__batch_close(log);
	/* The log's own batches share no group with raw ones after them: the
	 * group's position (and so its roll) is decided at the flush for
	 * the first, here for the second. */
	if (log->group_own)
		return 0;

	uint32_t gstart = log->opts.journal ? log->jsent : 0;
	bool group_empty = b->len == gstart;
	/* Where the next byte goes in its segment. */
	uint64_t seg_pos = log->raw_group == SL_RAWGROUP_ROLL ? (uint64_t)(b->len - gstart)
	                                                      : log->write_pos + b->len;
	uint32_t prev_u = log->last_unit, batches = 0;
	uint64_t next = log->next_offset;
	size_t take = 0, known_start = SIZE_MAX, known_until = 0;
	bool roll_first = false;
	while (take < n) {
		const uint8_t *h = p + take;
		uint32_t u = sl_get_le32(h + SL_BATCH_UNIT_START);
		bool roll = false;
		if (u == 0 && seg_pos > 0) {
			if (prev_u != 0) {
				roll = true; /* a group at 0 after one further in */
			} else if (take < known_until) {
				roll = take == known_start;
			} else {
				/* One group at 0 so far, and this batch at 0 too. */
				int k = sl__raw_seg_start(p, n, take, seg_pos, &known_start,
				                          &known_until);
				if (k == 0) {
					known_start = SIZE_MAX;
				} else if (k < 0) {
					/* Nothing later tells: the group goes on (log.h
					 * says when this differs from the leader). */
					known_start = SIZE_MAX;
				}
				roll = take == known_start;
			}
		}
		if (roll) {
			if (!(group_empty && take == 0))
				break; /* the caller flushes and passes the rest */
			roll_first = true;
			seg_pos = 0;
		}
		uint64_t span = sl_batch_span_at(h);
		seg_pos += span;
		prev_u = u;
		next = sl_get_le64(h + SL_BATCH_BASE_OFFSET) + sl_get_le32(h + SL_BATCH_COUNT);
		take += span;
		batches++;
	}
	if (!take)
		return 0;
	if (sl__wbuf_reserve(b, take) < 0)
		return -ENOMEM;
	if (log->n_raw == log->cap_raw) {
		size_t cap = (size_t)log->cap_raw * sizeof(*log->raw);
		struct sl_rawrun *r =
		    sl_grow(log->raw, &cap, (log->n_raw + 1) * sizeof(*r), 4 * sizeof(*r));
		if (!r)
			return -ENOMEM;
		log->raw = r;
		log->cap_raw = (uint32_t)(cap / sizeof(*r));
	}
	if (group_empty) {
		log->group_t0 = sl_now_ns();
		log->raw_group = roll_first ? SL_RAWGROUP_ROLL : SL_RAWGROUP_STAY;
	}
	memcpy(b->p + b->len, p, take);
	struct sl_rawrun *last = log->n_raw ? &log->raw[log->n_raw - 1] : NULL;
	if (last && last->to == b->len)
		last->to += (uint32_t)take;
	else
		log->raw[log->n_raw++] = (struct sl_rawrun){b->len, b->len + (uint32_t)take};
	b->len += (uint32_t)take;
	log->last_unit = prev_u;
	log->next_offset = next;
	log->stats.batches += batches;
	*end = next;
	return (int)take;
}
