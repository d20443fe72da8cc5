/*
 * The journal (log.h): one durable write path per reactor. Its logs hand
 * it the batches they sealed (sl__journal_add); one frame per group commit
 * is written and fdatasynced; its completion makes every log in the frame
 * durable at once, then the logs' bytes go to their segments in large
 * writes, some at once, some deferred (below). A file past file_bytes is
 * retired: every log's bytes handed to it are written to their segments
 * and those segments fdatasynced off the reactor (a checkpoint, on the
 * segment preparer's thread), then the file is deleted.
 *
 * Threads: everything here runs on the journal's reactor, but the
 * checkpoint job, which touches only its own struct sl__jckpt (its `state`
 * is stored with release and polled with acquire).
 */
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
#include "log/journal_format.h"
#include "log/log_impl.h"

/* A log's part in a frame: what durable moves to when the frame is. */
struct sl__jent {
	struct sl_log *log;
	uint64_t end;
	uint64_t t0; /* the group's first append, for the commit latency */
};

struct sl__jlist {
	struct sl__jent *v;
	uint32_t n, cap;
};

/* A retired file's checkpoint: the dup()ed descriptors of the segments its
 * logs wrote to, synced and closed on the preparer's thread, then the file
 * deleted. */
struct sl__jckpt {
	struct sl__jckpt *next;
	int *fds;
	int *errs;            /* per descriptor: its fdatasync's -errno, or 0 */
	struct sl_log **logs; /* per descriptor (NULL once detached) */
	uint32_t n;
	char *path;
	_Atomic int state; /* 0 running, 1 done (errs says how each went) */
};

static void sl__ckpt_free(struct sl__jckpt *c)
{
	free(c->fds);
	free(c->errs);
	free(c->logs);
	free(c->path);
	free(c);
}

struct sl_journal {
	struct sl_journal_opts opts;
	char *dir;
	int fd;
	uint64_t file_seq;
	uint64_t pos;                   /* where the next frame goes */
	uint64_t alloc_end, alloc_step; /* pre-allocated in steps like a segment */
	bool no_prealloc;
	uint64_t frame_seq;

	/* The open frame: its header's room at 0, then chunks (the logs'
	 * buffer type, shrunk the same way after an overload). */
	struct sl_wbuf fb;
	uint32_t n_chunks;
	struct sl__jlist open, flight;
	uint64_t open_gen; /* bumped when the open frame goes out */

	bool inflight;
	uint64_t inflight_t0;
	uint64_t inflight_pos, inflight_len;
	bool inflight_fail;
	uint32_t n_syncs;

	/* Logs with bytes handed to the journal and not yet in their segment,
	 * in the order they got them (deferred segment writes). */
	struct sl_log **lazy;
	uint32_t lazy_head, n_lazy, cap_lazy;

	/* Logs that handed bytes to the current file (its checkpoint syncs
	 * their segments). */
	struct sl_log **touched;
	uint32_t n_touched, cap_touched;
	uint64_t file_gen;

	struct sl_log **logs; /* attached */
	uint32_t n_logs, cap_logs;

	struct sl__jckpt *ckpts; /* running, oldest first */

	bool failed, full;
	uint64_t full_retry_ns;
	char error[320];
	struct sl_journal_stats stats;
	/* The owner's ring (the last commit's): segment writebacks go there,
	 * completing with SL_LOG_UD_IGNORE. */
	struct io_uring *ring;
	/* `stats` published for other threads (metrics): stored relaxed by
	 * the owner after each sync, field by field. */
	_Atomic uint64_t pub[sizeof(struct sl_journal_stats) / sizeof(uint64_t)];
};

_Static_assert(sizeof(struct sl_journal_stats) % sizeof(uint64_t) == 0,
               "journal stats are published as 64-bit words");

static void sl__jpublish(struct sl_journal *j)
{
	uint64_t w[sizeof(j->stats) / sizeof(uint64_t)];
	memcpy(w, &j->stats, sizeof(w));
	for (size_t i = 0; i < sizeof(w) / sizeof(w[0]); i++)
		atomic_store_explicit(&j->pub[i], w[i], memory_order_relaxed);
}

void sl_journal_read_stats(const struct sl_journal *j, struct sl_journal_stats *out)
{
	uint64_t w[sizeof(*out) / sizeof(uint64_t)];
	for (size_t i = 0; i < sizeof(w) / sizeof(w[0]); i++)
		w[i] = atomic_load_explicit(&j->pub[i], memory_order_relaxed);
	memcpy(out, w, sizeof(w));
}

static void sl__jfail(struct sl_journal *j, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void sl__jfail(struct sl_journal *j, const char *fmt, ...)
{
	va_list ap;
	if (j->failed)
		return;
	va_start(ap, fmt);
	vsnprintf(j->error, sizeof(j->error), fmt, ap);
	va_end(ap);
	j->failed = true;
	fprintf(stderr, "sluiced: %s\n", j->error);
}

static int sl__jlist_push(struct sl__jlist *l, struct sl__jent e)
{
	if (l->n == l->cap) {
		size_t cap = l->cap;
		struct sl__jent *v =
		    sl_grow(l->v, &cap, ((size_t)l->n + 1) * sizeof(*v), 64 * sizeof(*v));
		if (!v)
			return -ENOMEM;
		l->v = v;
		l->cap = (uint32_t)(cap / sizeof(*v));
	}
	l->v[l->n++] = e;
	return 0;
}

static int sl__ptrs_push(struct sl_log ***v, uint32_t *n, uint32_t *cap, struct sl_log *log)
{
	if (*n == *cap) {
		size_t c = (size_t)*cap * sizeof(**v);
		struct sl_log **p =
		    sl_grow(*v, &c, ((size_t)*n + 1) * sizeof(**v), 64 * sizeof(**v));
		if (!p)
			return -ENOMEM;
		*v = p;
		*cap = (uint32_t)(c / sizeof(**v));
	}
	(*v)[(*n)++] = log;
	return 0;
}

static char *sl__jfile_path(const char *dir, uint64_t seq)
{
	char *p;
	if (asprintf(&p, "%s/%020" PRIu64 ".jnl", dir, seq) < 0)
		return NULL;
	return p;
}

/* Creates file `seq` and makes its name durable. */
static int sl__jfile_open(struct sl_journal *j, uint64_t seq)
{
	char *path = sl__jfile_path(j->dir, seq);
	if (!path)
		return -ENOMEM;
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	int ret = fd < 0 ? -errno : 0;
	if (ret == 0)
		ret = sl__fsync_dir(j->dir);
	if (ret < 0) {
		sl__jfail(j, "journal: create %s: %s", path, strerror(-ret));
		if (fd >= 0) {
			close(fd);
			unlink(path);
		}
		free(path);
		return ret;
	}
	free(path);
	j->fd = fd;
	j->file_seq = seq;
	j->pos = 0;
	j->alloc_end = 0;
	j->alloc_step = 0;
	j->frame_seq = 0;
	j->file_gen++;
	j->stats.files++;
	return 0;
}

/* Pre-allocates ahead of the writes in steps (SL_LOG_PREALLOC_FIRST, then
 * doubling up to SL_LOG_PREALLOC_MAX_STEP), as a segment does: an
 * fdatasync of blocks already allocated costs less (LIMITS.md). */
static int sl__jprealloc(struct sl_journal *j, uint64_t need_end)
{
	if (j->no_prealloc || need_end <= j->alloc_end)
		return 0;
	uint64_t end = j->alloc_end + sl__prealloc_step(j->alloc_step);
	if (end < need_end)
		end = need_end;
	sl_fallocate_fn fn = j->opts.fallocate_fn ? j->opts.fallocate_fn : fallocate;
	while (fn(j->fd, 0, (off_t)j->alloc_end, (off_t)(end - j->alloc_end)) < 0) {
		int ret = -errno;
		if (sl__prealloc_unsupported(ret)) {
			j->no_prealloc = true;
			return 0;
		}
		if (!sl__no_space(ret) || end == need_end)
			return ret;
		/* No room for a whole step: what this frame needs may fit,
		 * and the steps start small again. */
		end = need_end;
		j->alloc_step = 0;
	}
	if (j->alloc_step || end - j->alloc_end >= SL_LOG_PREALLOC_FIRST)
		j->alloc_step = end - j->alloc_end;
	j->alloc_end = end;
	return 0;
}

int sl_journal_create(const struct sl_journal_opts *o, struct sl_journal **out, char *err,
                      size_t errlen)
{
	struct sl_journal *j = calloc(1, sizeof(*j));
	int ret = -ENOMEM;
	if (!j)
		return -ENOMEM;
	j->opts = *o;
	j->fd = -1;
	if (!j->opts.file_bytes)
		j->opts.file_bytes = SL_JOURNAL_FILE_BYTES;
	j->dir = strdup(o->dir);
	if (!j->dir)
		goto fail;
	/* <data_dir>/.journal/<n>: the parent may be new too. */
	char *parent = strdup(o->dir);
	if (!parent)
		goto fail;
	char *slash = strrchr(parent, '/');
	if (slash && slash != parent) {
		*slash = '\0';
		if (mkdir(parent, 0755) < 0 && errno != EEXIST) {
			ret = -errno;
			snprintf(err, errlen, "create %s: %s", parent, strerror(-ret));
			free(parent);
			goto fail;
		}
	}
	free(parent);
	if (mkdir(j->dir, 0755) < 0 && errno != EEXIST) {
		ret = -errno;
		snprintf(err, errlen, "create %s: %s", j->dir, strerror(-ret));
		goto fail;
	}
	j->fb.len = SL_JF_HDR;
	j->fb.p = malloc(64 * 1024);
	j->fb.cap = 64 * 1024;
	if (!j->fb.p)
		goto fail;
	ret = sl__jfile_open(j, o->first_seq);
	if (ret < 0) {
		snprintf(err, errlen, "%s", j->error);
		goto fail;
	}
	*out = j;
	return 0;
fail:
	if (ret == -ENOMEM)
		snprintf(err, errlen, "journal %s: out of memory", o->dir);
	sl_journal_destroy(j);
	return ret;
}

/* Checkpoints that ended: a segment whose fdatasync failed stops its
 * partition (its acked events stay in the journal file, which is kept
 * for the next start's replay); cb NULL: the logs are closed. */
static void sl__ckpt_poll(struct sl_journal *j, sl_journal_cb cb, void *arg)
{
	while (j->ckpts) {
		struct sl__jckpt *c = j->ckpts;
		if (!atomic_load_explicit(&c->state, memory_order_acquire))
			return;
		bool ok = true;
		for (uint32_t i = 0; i < c->n; i++) {
			if (!c->errs[i])
				continue;
			ok = false;
			struct sl_log *log = c->logs[i];
			if (!log || !cb || log->failed)
				continue;
			sl__fail(log,
			         "fdatasync of %s/%020" PRIu64
			         ".log (journal checkpoint) failed: %s; "
			         "partition stopped",
			         log->dir, log->segs[log->n_segs - 1].base, strerror(-c->errs[i]));
			cb(arg, log->opts.journal_arg, -SL_ELOG_FAILED);
		}
		if (ok)
			j->stats.checkpoints++;
		else
			fprintf(stderr,
			        "sluiced: journal checkpoint of %s failed; the file is kept\n",
			        c->path);
		j->ckpts = c->next;
		sl__ckpt_free(c);
	}
}

void sl_journal_destroy(struct sl_journal *j)
{
	if (!j)
		return;
	/* Checkpoints still running touch only their own job; let them end. */
	if (j->ckpts && j->opts.prep)
		sl_segprep_drain(j->opts.prep);
	sl__ckpt_poll(j, NULL, NULL);
	if (j->fd >= 0)
		close(j->fd);
	free(j->fb.p);
	free(j->open.v);
	free(j->flight.v);
	free(j->lazy);
	free(j->touched);
	free(j->logs);
	free(j->dir);
	free(j);
}

int sl__journal_attach(struct sl_journal *j, struct sl_log *log)
{
	return sl__ptrs_push(&j->logs, &j->n_logs, &j->cap_logs, log);
}

void sl__journal_detach(struct sl_journal *j, struct sl_log *log)
{
	for (uint32_t i = 0; i < j->n_logs; i++)
		if (j->logs[i] == log) {
			j->logs[i] = j->logs[--j->n_logs];
			break;
		}
	/* A closing log is not in a frame in flight (its owner waited) nor,
	 * once its bytes are written, lazy; drop stale pointers anyway. */
	for (uint32_t i = j->lazy_head; i < j->n_lazy; i++)
		if (j->lazy[i] == log)
			j->lazy[i] = NULL;
	for (uint32_t i = 0; i < j->n_touched; i++)
		if (j->touched[i] == log)
			j->touched[i] = NULL;
	for (struct sl__jckpt *c = j->ckpts; c; c = c->next)
		for (uint32_t i = 0; i < c->n; i++)
			if (c->logs[i] == log)
				c->logs[i] = NULL;
}

bool sl__journal_full(const struct sl_journal *j)
{
	return j->full;
}

bool sl_journal_failed(const struct sl_journal *j)
{
	return j->failed;
}
const char *sl_journal_error(const struct sl_journal *j)
{
	return j->error;
}
bool sl_journal_inflight(const struct sl_journal *j)
{
	return j->inflight;
}
bool sl_journal_pending(const struct sl_journal *j)
{
	return j->n_chunks > 0;
}
void sl_journal_get_stats(const struct sl_journal *j, struct sl_journal_stats *out)
{
	*out = j->stats;
}

int sl__journal_add(struct sl_journal *j, struct sl_log *log, const uint8_t *p, uint32_t len,
                    uint64_t end, uint64_t t0)
{
	if (j->failed)
		return -SL_ELOG_FAILED;
	size_t klen = strlen(log->jkey);
	size_t need = j->fb.len + SL_JC_HDR + sl_batch_align(klen) + len;
	uint8_t *b = sl_grow(j->fb.p, &j->fb.cap, need, 64 * 1024);
	if (!b)
		return -ENOMEM;
	j->fb.p = b;
	/* One entry per log and frame: a second hand-off in the same frame
	 * only moves its end. */
	if (log->jopen_gen == j->open_gen + 1 && log->jopen_idx < j->open.n &&
	    j->open.v[log->jopen_idx].log == log) {
		j->open.v[log->jopen_idx].end = end;
	} else {
		struct sl__jent e = {.log = log, .end = end, .t0 = t0};
		if (sl__jlist_push(&j->open, e) < 0)
			return -ENOMEM;
		log->jopen_gen = j->open_gen + 1;
		log->jopen_idx = j->open.n - 1;
	}
	if (log->jfile_gen != j->file_gen) {
		if (sl__ptrs_push(&j->touched, &j->n_touched, &j->cap_touched, log) < 0)
			return -ENOMEM;
		log->jfile_gen = j->file_gen;
	}
	uint8_t *c = j->fb.p + j->fb.len;
	memset(c, 0, SL_JC_HDR + sl_batch_align(klen));
	sl_put_le32(c + SL_JC_KEY_LEN, (uint32_t)klen);
	sl_put_le32(c + SL_JC_LEN, len);
	sl_put_le64(c + SL_JC_GEN, log->jgen);
	memcpy(c + SL_JC_HDR, log->jkey, klen);
	memcpy(c + SL_JC_HDR + sl_batch_align(klen), p, len);
	j->fb.len = (uint32_t)need; /* a frame is far below 4 GiB: credits bound it */
	j->n_chunks++;
	return 0;
}

/* Puts a log whose bytes wait for their segment on the deferred list. */
static int sl__lazy_push(struct sl_journal *j, struct sl_log *log)
{
	if (log->jlazy)
		return 0;
	if (j->lazy_head && j->n_lazy == j->cap_lazy) {
		memmove(j->lazy, j->lazy + j->lazy_head,
		        (j->n_lazy - j->lazy_head) * sizeof(*j->lazy));
		j->n_lazy -= j->lazy_head;
		j->lazy_head = 0;
	}
	if (sl__ptrs_push(&j->lazy, &j->n_lazy, &j->cap_lazy, log) < 0)
		return -ENOMEM; /* the caller writes now instead of later */
	log->jlazy = true;
	log->jlazy_since = sl_now_ns();
	return 0;
}

/* How long bytes wait for their segment write: longer with more logs, so
 * that each write carries more (a pwrite costs ~2 us whatever its size up
 * to a few KiB: 1,000 partitions written every millisecond would spend a
 * core on it). */
static uint64_t sl__lazy_delay(const struct sl_journal *j)
{
	uint64_t d = (uint64_t)j->n_logs * SL_JOURNAL_LAZY_NS_PER_LOG;
	if (d < SL_JOURNAL_LAZY_MIN_NS)
		d = SL_JOURNAL_LAZY_MIN_NS;
	if (d > SL_JOURNAL_LAZY_MAX_NS)
		d = SL_JOURNAL_LAZY_MAX_NS;
	return d;
}

static void sl__segwrite_cb(struct sl_journal *j, struct sl_log *log, sl_journal_cb cb, void *arg)
{
	int ret = sl__log_segwrite(log, j->ring);
	j->stats.segment_writes++;
	cb(arg, log->opts.journal_arg, ret < 0 ? ret : 1);
}

void sl_journal_segwrites(struct sl_journal *j, bool all, sl_journal_cb cb, void *arg)
{
	uint64_t now = all ? 0 : sl_now_ns(), delay = sl__lazy_delay(j);
	while (j->lazy_head < j->n_lazy) {
		struct sl_log *log = j->lazy[j->lazy_head];
		if (log && !all && log->jlazy_since + delay > now)
			break;
		j->lazy_head++;
		if (!log)
			continue;
		log->jlazy = false;
		if (log->jsent && !log->failed)
			sl__segwrite_cb(j, log, cb, arg);
	}
	if (j->lazy_head == j->n_lazy)
		j->lazy_head = j->n_lazy = 0;
}

bool sl_journal_lazy(const struct sl_journal *j)
{
	return j->lazy_head < j->n_lazy;
}

static void sl__ckpt_run(void *arg)
{
	struct sl__jckpt *c = arg;
	bool ok = true;
	for (uint32_t i = 0; i < c->n; i++) {
		c->errs[i] = fdatasync(c->fds[i]) < 0 ? -errno : 0;
		ok &= !c->errs[i];
		close(c->fds[i]);
	}
	/* A segment that did not sync keeps the file: its events are acked
	 * and the next start replays them from here. */
	if (ok)
		(void)unlink(c->path);
	atomic_store_explicit(&c->state, 1, memory_order_release);
}

/*
 * Retires the current file: every log that handed it bytes writes what it
 * holds to its segment now, the preparer fdatasyncs those segments (their
 * descriptors dup()ed: a roll may close the log's own) and deletes the
 * file, and a new file starts. Until the checkpoint is done the file stays,
 * and recovery replays it (what a replay finds in the segment already is
 * skipped).
 */
static int sl__jswitch(struct sl_journal *j, sl_journal_cb cb, void *arg)
{
	struct sl__jckpt *c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	size_t m = j->n_touched ? j->n_touched : 1;
	c->fds = malloc(m * sizeof(*c->fds));
	c->errs = calloc(m, sizeof(*c->errs));
	c->logs = malloc(m * sizeof(*c->logs));
	c->path = sl__jfile_path(j->dir, j->file_seq);
	if (!c->fds || !c->errs || !c->logs || !c->path) {
		sl__ckpt_free(c);
		return -ENOMEM;
	}
	for (uint32_t i = 0; i < j->n_touched; i++) {
		struct sl_log *log = j->touched[i];
		if (!log || log->failed)
			continue;
		if (log->jsent) {
			log->jlazy = false; /* its lazy entry finds nothing to write */
			sl__segwrite_cb(j, log, cb, arg);
			if (log->failed)
				continue;
		}
		int fd = dup(log->segs[log->n_segs - 1].fd);
		if (fd < 0) {
			int ret = -errno;
			for (uint32_t k = 0; k < c->n; k++)
				close(c->fds[k]);
			sl__ckpt_free(c);
			return ret;
		}
		c->logs[c->n] = log;
		c->fds[c->n++] = fd;
	}
	j->n_touched = 0;
	close(j->fd);
	j->fd = -1;
	int ret = sl__jfile_open(j, j->file_seq + 1);
	if (ret < 0) {
		for (uint32_t k = 0; k < c->n; k++)
			close(c->fds[k]);
		sl__ckpt_free(c);
		return ret;
	}
	struct sl__jckpt **tail = &j->ckpts;
	while (*tail)
		tail = &(*tail)->next;
	*tail = c;
	if (!j->opts.prep || sl_segprep_call(j->opts.prep, sl__ckpt_run, c) < 0)
		sl__ckpt_run(c); /* no preparer: on this thread */
	return 0;
}

int sl_journal_commit(struct sl_journal *j, struct io_uring *ring, uint64_t ud, sl_journal_cb cb,
                      void *arg)
{
	j->ring = ring;
	sl__ckpt_poll(j, cb, arg);
	if (j->failed) {
		/* Everything handed over fails with it. */
		while (j->open.n) {
			struct sl__jent e = j->open.v[--j->open.n];
			sl__fail(e.log, "%s", j->error);
			cb(arg, e.log->opts.journal_arg, -SL_ELOG_FAILED);
		}
		j->fb.len = SL_JF_HDR;
		j->n_chunks = 0;
		return -SL_ELOG_FAILED;
	}
	if (j->inflight || !j->n_chunks)
		return 0;
	if (j->full && sl_now_ns() < j->full_retry_ns)
		return 0;
	if (io_uring_sq_space_left(ring) < 1) {
		io_uring_submit(ring);
		if (io_uring_sq_space_left(ring) < 1)
			return 0;
	}
	uint64_t flen = j->fb.len - SL_JF_HDR;
	if (j->pos > 0 && j->pos + j->fb.len > j->opts.file_bytes) {
		int ret = sl__jswitch(j, cb, arg);
		if (ret < 0) {
			sl__jfail(j, "journal %s: retire file %" PRIu64 ": %s", j->dir, j->file_seq,
			          strerror(-ret));
			return sl_journal_commit(j, ring, ud, cb, arg);
		}
	}
	int ret = sl__jprealloc(j, j->pos + j->fb.len);
	if (ret == 0) {
		uint8_t *h = j->fb.p;
		sl_put_le32(h + SL_JF_MAGIC, SL_JF_MAGIC_V);
		sl_put_le32(h + SL_JF_LEN, (uint32_t)flen);
		sl_put_le32(h + SL_JF_CHUNKS, j->n_chunks);
		sl_put_le64(h + SL_JF_SEQ, j->frame_seq);
		sl_put_le64(h + SL_JF_RESERVED, 0);
		sl_put_le32(h + SL_JF_CRC,
		            sl_crc32c(0, h + SL_JF_CRC_FROM, j->fb.len - SL_JF_CRC_FROM));
		ssize_t w = sl__pwrite_all(j->fd, j->fb.p, j->fb.len, j->pos);
		ret = w == (ssize_t)j->fb.len ? 0 : w < 0 ? (int)w : -ENOSPC;
	}
	if (ret < 0) {
		if (ret == -ENOSPC || ret == -EDQUOT) {
			/* Refused, not lost: the same frame goes again at the
			 * same place once there is room. Appends stop meanwhile
			 * (every log of the journal is full). */
			uint64_t now = sl_now_ns();
			if (!j->full) {
				j->full = true;
				j->stats.full_episodes++;
			}
			j->full_retry_ns = now + SL_LOG_FULL_RETRY_NS;
			for (uint32_t i = 0; i < j->n_logs; i++)
				if (!j->logs[i]->full) {
					sl__full(
					    j->logs[i],
					    "journal %s: %s; new events are refused until space "
					    "is freed",
					    j->dir, strerror(-ret));
					cb(arg, j->logs[i]->opts.journal_arg, 0);
				}
			return 0;
		}
		sl__jfail(j,
		          "journal %s: write of %020" PRIu64 ".jnl (bytes %" PRIu64 "..%" PRIu64
		          ") failed: %s; partitions stopped",
		          j->dir, j->file_seq, j->pos, j->pos + j->fb.len, strerror(-ret));
		return sl_journal_commit(j, ring, ud, cb, arg);
	}
	if (j->full) {
		j->full = false;
		for (uint32_t i = 0; i < j->n_logs; i++) {
			sl__full_clear(j->logs[i]);
			cb(arg, j->logs[i]->opts.journal_arg, 0);
		}
	}
	struct io_uring_sqe *sqe = io_uring_get_sqe(ring); /* room checked above */
	io_uring_prep_fsync(sqe, j->fd, IORING_FSYNC_DATASYNC);
	io_uring_sqe_set_data64(sqe, ud);
	j->inflight = true;
	j->inflight_t0 = sl_now_ns();
	j->inflight_pos = j->pos;
	j->inflight_len = j->fb.len;
	j->inflight_fail = ++j->n_syncs == j->opts.fail_sync_at;
	j->pos += j->fb.len;
	j->frame_seq++;
	j->stats.bytes += j->fb.len;
	j->stats.frames++;
	j->stats.chunks += j->n_chunks;
	/* The frame's logs wait in `flight`; the next frame gathers. */
	struct sl__jlist t = j->flight;
	j->flight = j->open;
	j->open = t;
	j->open.n = 0;
	j->open_gen++;
	sl__wbuf_reuse(&j->fb, 0);
	j->fb.len = SL_JF_HDR;
	j->n_chunks = 0;
	return 1;
}

int sl_journal_on_cqe(struct sl_journal *j, int res, sl_journal_cb cb, void *arg)
{
	if (!j->inflight)
		return 0;
	j->inflight = false;
	if (j->inflight_fail && res >= 0)
		res = -EIO; /* test hook: as if the device failed the sync */
	uint64_t now = sl_now_ns();
	if (res < 0) {
		/* Never acked, never retried as if nothing happened (the page
		 * cache may hold what the disk does not): the journal stops,
		 * and every log in the frame with it. */
		sl__jfail(j,
		          "journal %s: write+fdatasync of %020" PRIu64 ".jnl (bytes %" PRIu64
		          "..%" PRIu64 ") failed: %s; partitions stopped",
		          j->dir, j->file_seq, j->inflight_pos, j->inflight_pos + j->inflight_len,
		          strerror(-res));
		for (uint32_t i = 0; i < j->flight.n; i++) {
			sl__fail(j->flight.v[i].log, "%s", j->error);
			cb(arg, j->flight.v[i].log->opts.journal_arg, -SL_ELOG_FAILED);
		}
		j->flight.n = 0;
		sl__jpublish(j);
		return -SL_ELOG_FAILED;
	}
	j->stats.syncs++;
	j->stats.sync_ns += now - j->inflight_t0;
	j->stats.sync_hist[sl__hist_bucket(now - j->inflight_t0)]++;
	for (uint32_t i = 0; i < j->flight.n; i++) {
		struct sl__jent *e = &j->flight.v[i];
		struct sl_log *log = e->log;
		sl__log_journaled(log, e->end, now - e->t0);
		/* Large enough to be worth a write now; else it waits with the
		 * others (sl_journal_segwrites). */
		if (log->jsent >= SL_JOURNAL_SEGWRITE_MIN ||
		    (log->jsent && sl__lazy_push(j, log) < 0)) {
			log->jlazy = false;
			sl__segwrite_cb(j, log, cb, arg);
			continue;
		}
		cb(arg, log->opts.journal_arg, 1);
	}
	j->flight.n = 0;
	sl__jpublish(j);
	return 1;
}
