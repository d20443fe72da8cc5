/*
 * Opening a partition log (recovery of its last segment) and closing it.
 *
 * Threads: sl_log_open runs on whichever thread opens the log (the control
 * thread building the topics, or a tool); it then belongs to its owner
 * (log.h). sl_log_close runs on the owner, after its I/O completed. The
 * preparer is the only other thread that touches a log (its request, under
 * the preparer's mutex; sl_log_close withdraws it first).
 *
 * Only the last segment is read at open: sealed ones were synced whole
 * before the next was created, and views check every batch they read.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/base.h"
#include "log/log_impl.h"

/* Recovery reads the damaged tail of a segment in chunks this large. */
#define SL_RECOVERY_CHUNK (1u << 20)

struct sl_scan {
	int fd;
	uint64_t file_size;
	uint8_t *buf;
	size_t cap;
};

/* Reads the batch at pos into scan->buf and validates it. */
static int sl__scan_batch(struct sl_scan *sc, uint64_t pos, struct sl_bhdr *b, bool *valid)
{
	/* The largest header, or what the file has of it: an 'SLB1' batch
	 * may end its file sooner. */
	uint8_t h[SL_LOG_BATCH_HDR];
	*valid = false;
	if (pos + SL_LOG_BATCH_HDR_V1 > sc->file_size)
		return 0;
	size_t want = sc->file_size - pos < sizeof(h) ? (size_t)(sc->file_size - pos) : sizeof(h);
	ssize_t n = sl__pread_all(sc->fd, h, want, pos);
	if (n < 0)
		return (int)n;
	uint32_t hdr = (size_t)n < SL_LOG_BATCH_HDR_V1 ? 0 : sl_batch_hdr_size(sl_get_le32(h));
	if (!hdr || (size_t)n < hdr)
		return 0;
	sl_batch_hdr_decode(h, b);
	if (b->len > SL_BATCH_MAX || pos + b->hdr_len + b->len > sc->file_size)
		return 0;
	size_t need = b->hdr_len + (size_t)b->len;
	uint8_t *p = sl_grow(sc->buf, &sc->cap, need, 64 * 1024);
	if (!p)
		return -ENOMEM;
	sc->buf = p;
	n = sl__pread_all(sc->fd, sc->buf, need, pos);
	if (n < 0)
		return (int)n;
	*valid = (size_t)n == need && sl_batch_valid(sc->buf, need, b);
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
			if (!sl_batch_hdr_size((uint32_t)word) || later)
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
 * or corruption, rebuilds its index. A journaled log stops at `stop_at`,
 * the first offset its journal replays (UINT64_MAX: none): what follows is
 * written again from the journal. */
static int sl__recover_last(struct sl_log *log, uint64_t stop_at, char *err, size_t errlen)
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
		if (off >= stop_at)
			break;
		ret = sl__scan_batch(&sc, pos, &b, &valid);
		if (ret < 0) {
			snprintf(err, errlen, "read %s at byte %" PRIu64 ": %s", path, pos,
			         strerror(-ret));
			goto out;
		}
		if (!valid || b.base_offset != off)
			break;
		ret = sl__idx_add(s, off, pos);
		if (ret == 0)
			ret = sl__tix_add(s, off, pos, b.time_ms);
		if (ret < 0)
			goto out;
		log->last_unit = b.unit_start;
		off += b.count;
		pos += sl_batch_span_of(&b);
	}

	if (stop_at != UINT64_MAX && off != stop_at) {
		/* The journal starts later (or inside a batch): what lies
		 * between was checkpointed, synced and acked, and is gone. */
		snprintf(
		    err, errlen,
		    "%s: events from offset %" PRIu64 " (byte %" PRIu64
		    ") are in neither the segment nor the journal (which starts at offset %" PRIu64
		    "): refusing to serve this partition",
		    path, off, pos, stop_at);
		ret = -SL_ECORRUPT;
		goto out;
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
		/* Journaled: segments are written after the journal, unsynced
		 * until a checkpoint; what a crash left past the valid part was
		 * never acked from the segment (the journal replays what was). */
		/* A replica's unit_starts are its leader's: they say nothing of
		 * what this node synced, and the quorum holds the copy of
		 * record (the follower fetches the rest again). */
		bool torn_unit = log->opts.durability != SL_LOG_FSYNC || log->opts.journal ||
		                 log->opts.replicated || stop_at != UINT64_MAX ||
		                 vb.unit_start <= pos;
		if (torn_unit && log->opts.replicated)
			fprintf(stderr,
			        "sluiced: %s: replica: damaged batch at byte %" PRIu64
			        " (offset %" PRIu64 ") followed by a valid one at byte %" PRIu64
			        "; cut there, the leader sends the rest again\n",
			        path, pos, off, vpos);
		if (!torn_unit) {
			snprintf(err, errlen,
			         "%s: corrupt batch at byte %" PRIu64 " (offset %" PRIu64
			         ") followed by a valid batch at byte %" PRIu64 " (offset %" PRIu64
			         "): refusing to serve this partition",
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
	/* Allocated so far: the file (written, or pre-allocated and zero past
	 * the data); appends allocate ahead of themselves from there. */
	log->alloc_end = sc.file_size > pos ? sc.file_size : pos;
	log->alloc_step = sl__prealloc_first(log);
out:
	free(sc.buf);
	free(path);
	return ret;
}
/* Writes what the replay gathered in wb at write_pos. */
static int sl__replay_write(struct sl_log *log)
{
	struct sl_seg *s = &log->segs[log->n_segs - 1];
	struct sl_wbuf *b = &log->wb;
	if (!b->len)
		return 0;
	ssize_t w = sl__pwrite_all(s->fd, b->p, b->len, log->write_pos);
	if (w != (ssize_t)b->len)
		return w < 0 ? (int)w : -ENOSPC;
	log->write_pos += b->len;
	s->size = log->write_pos;
	if (log->write_pos > log->alloc_end)
		log->alloc_end = log->write_pos;
	b->len = 0;
	return 0;
}

/*
 * Replays the journal's chunks of this log after the recovered end: every
 * batch from next_offset on, in order, rolling where the segment is full
 * (as the writer would have). A batch the segment holds is skipped; a gap
 * is corruption.
 */
static int sl__replay(struct sl_log *log, const struct sl_jchunk *ch, size_t n, char *err,
                      size_t errlen)
{
	int ret = 0;
	log->replaying = true;
	for (size_t i = 0; i < n; i++) {
		uint32_t at = 0;
		while (at < ch[i].len) {
			struct sl_bhdr b;
			const uint8_t *h = ch[i].p + at;
			sl_batch_hdr_decode(h, &b);
			uint32_t span = (uint32_t)sl_batch_span_of(&b);
			at += span;
			if (b.base_offset + b.count <= log->next_offset)
				continue;
			if (b.base_offset != log->next_offset) {
				snprintf(err, errlen,
				         "%s: the journal (%.*s) resumes at offset %" PRIu64
				         " but the log ends at %" PRIu64
				         ": refusing to serve this partition",
				         log->dir, (int)ch[i].key_len, ch[i].key, b.base_offset,
				         log->next_offset);
				ret = -SL_ECORRUPT;
				goto out;
			}
			uint64_t seg_end = log->write_pos + log->wb.len;
			if (seg_end > 0 && seg_end + span > log->opts.segment_bytes) {
				ret = sl__replay_write(log);
				if (ret == 0)
					ret = sl__roll(log, b.base_offset);
				if (ret < 0) {
					snprintf(err, errlen, "replay into %s: %s", log->dir,
					         log->error[0] ? log->error : strerror(-ret));
					goto out;
				}
				seg_end = 0;
			}
			ret = sl__idx_add(&log->segs[log->n_segs - 1], b.base_offset, seg_end);
			if (ret == 0)
				ret = sl__tix_add(&log->segs[log->n_segs - 1], b.base_offset,
				                  seg_end, b.time_ms);
			uint8_t *np = ret < 0 ? NULL
			                      : sl_grow(log->wb.p, &log->wb.cap,
			                                (size_t)log->wb.len + span, 256 * 1024);
			if (!np) {
				ret = ret < 0 ? ret : -ENOMEM;
				goto out;
			}
			log->wb.p = np;
			memcpy(log->wb.p + log->wb.len, h, span);
			log->last_unit = b.unit_start;
			log->wb.len += span;
			log->next_offset = b.base_offset + b.count;
			log->stats.recovered_replayed_batches++;
		}
	}
	ret = sl__replay_write(log);
	if (ret < 0)
		snprintf(err, errlen, "replay into %s/%020" PRIu64 ".log: %s", log->dir,
		         log->segs[log->n_segs - 1].base, strerror(-ret));
out:
	log->replaying = false;
	return ret;
}

/*
 * The journal's chunks of a log that was truncated since they were written
 * (their generation is below its record's) hold nothing the segments lack
 * below the cut, and only cut events above it (log.h, truncation): they are
 * not replayed. *ch becomes the chunks kept (*kept, malloc'd, when some were
 * dropped). A record behind the chunks (lost) yields to their newest
 * generation, which new chunks then carry too.
 */
static int sl__drop_truncated(struct sl_log *log, struct sl_jchunk **ch, size_t *n,
                              struct sl_jchunk **kept)
{
	uint64_t gen = log->jgen;
	size_t m = 0;
	for (size_t i = 0; i < *n; i++)
		if ((*ch)[i].gen > gen)
			gen = (*ch)[i].gen;
	log->jgen = gen;
	for (size_t i = 0; i < *n; i++)
		m += (*ch)[i].gen >= gen;
	if (m == *n)
		return 0;
	*kept = malloc((m ? m : 1) * sizeof(**kept));
	if (!*kept)
		return -ENOMEM;
	for (size_t i = 0, o = 0; i < *n; i++)
		if ((*ch)[i].gen >= gen)
			(*kept)[o++] = (*ch)[i];
	fprintf(stderr,
	        "sluiced: %s: %zu journal chunk(s) written before its truncation at offset "
	        "%" PRIu64 " (generation %" PRIu64 ") not replayed\n",
	        log->dir, *n - m, log->trunc_at, gen);
	*ch = *kept;
	*n = m;
	return 0;
}

int sl_log_open(const struct sl_log_opts *opts, struct sl_log **out, char *err, size_t errlen)
{
	struct sl_log *log = calloc(1, sizeof(*log));
	struct sl_jchunk *kept = NULL;
	uint64_t *bases = NULL;
	size_t n_bases = 0;
	int ret = -ENOMEM;

	if (!log)
		return -ENOMEM;
	err[0] = '\0';
	log->opts = *opts;
	if (opts->segment_bytes < 4096 || opts->segment_bytes > UINT32_MAX) {
		snprintf(err, errlen, "segment size %" PRIu64 " out of range 4KiB..4GiB",
		         opts->segment_bytes);
		ret = -EINVAL;
		goto fail;
	}
	log->dir = strdup(opts->dir);
	if (!log->dir)
		goto fail;
	ret = sl_mkdirs(log->dir);
	if (ret < 0) {
		snprintf(err, errlen, "create folder %s: %s", log->dir, strerror(-ret));
		goto fail;
	}
	if (asprintf(&log->prep.path, "%s/%s", log->dir, SL_SEGPREP_NAME) < 0) {
		log->prep.path = NULL;
		ret = -ENOMEM;
		goto fail;
	}
	/* A prepared segment is asked for only once half of the active one is
	 * written: its partition is busy, and gets it whole, allocated off the
	 * reactor, as before the steps; a busy partition takes steps in its
	 * first segment only. Idle partitions never get that far and hold
	 * their first step alone. */
	log->prep.bytes = opts->segment_bytes;
	log->prep.fallocate_fn = opts->fallocate_fn ? opts->fallocate_fn : fallocate;
	log->prep.fd = -1;
	/* A prepared segment a crash left behind: never part of the log. */
	unlink(log->prep.path);
	ret = sl__trunc_load(log, err, errlen);
	if (ret < 0)
		goto fail;
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
	struct sl_jchunk *ch = NULL;
	size_t n_ch = 0;
	uint64_t stop_at = UINT64_MAX;
	/* A log that syncs its own segments still replays what a journal of
	 * an earlier run holds for it (the journal is chosen at start). */
	if (opts->journal || (opts->replay && opts->journal_key)) {
		log->jkey = strdup(opts->journal_key ? opts->journal_key : log->dir);
		if (!log->jkey) {
			ret = -ENOMEM;
			goto fail;
		}
		n_ch = opts->replay ? sl__jrec_find(opts->replay, log->jkey, &ch) : 0;
		if (n_ch) {
			ret = sl__drop_truncated(log, &ch, &n_ch, &kept);
			if (ret < 0)
				goto fail;
		}
		if (n_ch && !log->n_segs) {
			/* The folder lost its first segment (or never had it
			 * on the device): the journal must start at 0. */
			ret = sl__seg_create(log, 0);
			if (ret < 0) {
				snprintf(err, errlen, "%s", log->error);
				goto fail;
			}
		}
		/* Chunks below the last segment are in sealed segments (synced
		 * whole at their roll): the replay starts at the first after. */
		uint64_t last_base = log->n_segs ? log->segs[log->n_segs - 1].base : 0;
		for (size_t i = 0; i < n_ch; i++)
			if (ch[i].end > last_base) {
				stop_at = ch[i].first > last_base ? ch[i].first : last_base;
				break;
			}
	}
	if (log->n_segs) {
		ret = sl__recover_last(log, stop_at, err, errlen);
		if (ret < 0)
			goto fail;
		if (stop_at != UINT64_MAX) {
			ret = sl__replay(log, ch, n_ch, err, errlen);
			if (ret < 0)
				goto fail;
		}
		/* What survived a kill -9 may still be only in the page cache
		 * (written, its fdatasync never completed). From here on it
		 * counts as durable (readers see it, a resent duplicate of it
		 * is acked), so it must be on the device first. */
		if (fdatasync(log->segs[log->n_segs - 1].fd) < 0) {
			ret = -errno;
			snprintf(err, errlen,
			         "fdatasync of %s/%020" PRIu64 ".log after recovery: %s", log->dir,
			         log->segs[log->n_segs - 1].base, strerror(-ret));
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
	log->acked = log->next_offset;
	log->jsent_off = log->next_offset;
	log->wb.first_offset = log->next_offset;
	if (opts->journal) {
		ret = sl__journal_attach(opts->journal, log);
		if (ret < 0)
			goto fail;
	}
	log->last_sync_ns = sl_now_ns();
	free(kept);
	free(bases);
	*out = log;
	return 0;
fail:
	free(kept);
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
	if (log->opts.journal && log->jkey) {
		/* Acked bytes still waiting for their segment go there now
		 * (the journal still has them until its checkpoint). */
		if (log->jsent && !log->failed)
			(void)sl__log_segwrite(log, NULL);
		sl__journal_detach(log->opts.journal, log);
	}
	free(log->jkey);
	free(log->sw_key);
	if (log->opts.prep) {
		sl__segprep_cancel(log->opts.prep, &log->prep);
		if (atomic_load_explicit(&log->prep.state, memory_order_acquire) ==
		    SL_SEGPREP_READY)
			close(log->prep.fd);
		/* Ready or half made, it is of no use to anyone now. */
		unlink(log->prep.path);
	}
	for (uint32_t i = 0; i < log->n_segs; i++) {
		if (log->segs[i].fd >= 0)
			close(log->segs[i].fd);
		sl__seg_free_index(&log->segs[i]);
	}
	free(log->segs);
	free(log->prep.path);
	free(log->wb.p);
	free(log->raw);
	free(log->dir);
	free(log);
}
