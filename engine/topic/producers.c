/*
 * A partition's producer sequences on disk: the checkpoint written at every
 * segment seal, and the rebuild at open (last good checkpoint, then every
 * record after it read back from the log).
 *
 * Why at the seal: sealing syncs the whole segment, so every record below
 * the next segment's base is on the device, and a checkpoint restricted to
 * offsets below that base holds only durable state. Recovery then replays at
 * most the records after the newest checkpoint, about one segment, whatever
 * the log's total size. A checkpoint that is missing, torn or corrupt is
 * skipped for an older one, and without any the whole log is replayed:
 * slower, never wrong, because the log itself carries producer id, epoch
 * and sequence in every record batch.
 *
 * Threads: the checkpoint is taken on the partition's owner (inside its
 * log's roll) and written by the log's segment preparer thread when there is
 * one (so the reactor does not wait for its syncs); the rebuild runs on the
 * main thread before the reactors start.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include "base/base.h"
#include "log/log.h"
#include "proto/proto.h"
#include "topic/topic_impl.h"

#define SL__CKPT_SUFFIX ".dedup"

static int sl__ckpt_path(const struct sl_partition *p, uint64_t base, const char *suffix, char *buf,
                         size_t cap)
{
	int n = snprintf(buf, cap, "%s/%020" PRIu64 SL__CKPT_SUFFIX "%s", p->dir, base, suffix);
	return n < 0 || (size_t)n >= cap ? -ENAMETOOLONG : 0;
}

void sl__part_checkpoint(void *arg, uint64_t next_base)
{
	struct sl_partition *p = arg;
	char path[4200];
	size_t cap = sl_dedup_checkpoint_bound(p->dd), len = 0;
	uint8_t *buf = malloc(cap ? cap : 1);
	int ret = -ENOMEM;

	if (!buf)
		goto out;
	ret = sl_dedup_checkpoint_write(p->dd, next_base, buf, cap, &len);
	if (ret < 0)
		goto out;
	if ((ret = sl__ckpt_path(p, next_base, "", path, sizeof(path))) < 0)
		goto out;
	/* Keep the newest two: the previous one is the fallback if this one
	 * is found damaged. */
	char old[sizeof(path)];
	bool drop = p->dd_ckpt_prev != UINT64_MAX &&
	            sl__ckpt_path(p, p->dd_ckpt_prev, "", old, sizeof(old)) == 0;
	/* Off the reactor when the log has a preparer: the table is copied
	 * above; writing it is a tmp file, two syncs and a rename (~1 ms of a
	 * roll's 2-5 ms). The older file goes only once this one is whole;
	 * if this one fails, that older file is never removed (a few KiB;
	 * recovery takes the newest good one). */
	struct sl_segprep *prep = p->log ? sl_log_segprep(p->log) : NULL;
	char *pcopy = prep ? strdup(path) : NULL, *ocopy = prep && drop ? strdup(old) : NULL;
	if (pcopy && (!drop || ocopy) && sl_segprep_write_file(prep, pcopy, buf, len, ocopy) == 0) {
		buf = NULL; /* the preparer's now */
	} else {
		free(pcopy);
		free(ocopy);
		struct iovec iov = {buf, len};
		if ((ret = sl_file_replace(AT_FDCWD, path, &iov, 1, 0, NULL, NULL)) < 0)
			goto out;
		if (drop)
			(void)unlink(old);
	}
	p->dd_ckpt_prev = p->dd_ckpt_last;
	p->dd_ckpt_last = next_base;
out:
	if (ret < 0)
		/* Not fatal: recovery falls back to an older checkpoint or to
		 * replaying the log, both correct, only slower. */
		fprintf(stderr,
		        "sluiced: topic %s partition %u: producer checkpoint at offset %" PRIu64
		        " not written: %s\n",
		        p->topic->name, p->id, next_base, sl_strerror(ret));
	free(buf);
}

static int sl__cmp_desc(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? 1 : x > y ? -1 : 0;
}

/* Bases of the checkpoints in the partition's folder, newest first. */
static int sl__list_ckpts(const struct sl_partition *p, uint64_t **out, size_t *n_out)
{
	DIR *d = opendir(p->dir);
	uint64_t *v = NULL;
	size_t n = 0, cap = 0;
	struct dirent *e;

	*out = NULL;
	*n_out = 0;
	if (!d)
		return -errno;
	while ((e = readdir(d))) {
		const char *name = e->d_name;
		if (strlen(name) != 20 + strlen(SL__CKPT_SUFFIX) ||
		    strcmp(name + 20, SL__CKPT_SUFFIX) != 0)
			continue;
		uint64_t base = 0;
		bool ok = true;
		for (int i = 0; i < 20; i++) {
			if (name[i] < '0' || name[i] > '9') {
				ok = false;
				break;
			}
			base = base * 10 + (uint64_t)(name[i] - '0');
		}
		if (!ok)
			continue;
		size_t bytes = cap * sizeof(*v);
		uint64_t *nv = sl_grow(v, &bytes, (n + 1) * sizeof(*v), 16 * sizeof(*v));
		if (!nv) {
			closedir(d);
			free(v);
			return -ENOMEM;
		}
		v = nv;
		cap = bytes / sizeof(*v);
		v[n++] = base;
	}
	closedir(d);
	if (n > 1)
		qsort(v, n, sizeof(*v), sl__cmp_desc);
	*out = v;
	*n_out = n;
	return 0;
}

static int sl__read_file(const char *path, uint8_t **out, size_t *len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	uint8_t *buf = NULL;
	size_t n = 0, cap = 0;
	int ret = 0;

	if (fd < 0)
		return -errno;
	for (;;) {
		if (n == cap) {
			uint8_t *nb = sl_grow(buf, &cap, n + 65536, 65536);
			if (!nb) {
				ret = -ENOMEM;
				break;
			}
			buf = nb;
		}
		ssize_t r = read(fd, buf + n, cap - n);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			ret = -errno;
			break;
		}
		if (r == 0)
			break;
		n += (size_t)r;
	}
	close(fd);
	if (ret < 0) {
		free(buf);
		return ret;
	}
	*out = buf;
	*len = n;
	return 0;
}

static void sl__seed_one(void *arg, uint64_t id, uint32_t epoch, uint64_t last)
{
	struct sl_producers *prods = arg;
	int ret = sl_producers_seed(prods, id, epoch, last);
	if (ret < 0)
		fprintf(stderr, "sluiced: producer %" PRIu64 ": not remembered: %s\n", id,
		        sl_strerror(ret));
}

/* Ids read ahead of their add: each add's index slot is prefetched this
 * many records before (a window's index is megabytes: one cache miss per
 * add one after another was most of a restart, perf: sl_idwin_add 44% of
 * it, ~0.5 us an id). */
#define SL__ID_AHEAD 8u

struct sl__replay {
	struct sl_partition *p;
	uint64_t dd_from; /* sequences: records from here */
	uint64_t id_from; /* ids: records after here (UINT64_MAX: none) */
	uint64_t id_skip; /* start of the log's ids: id_from is 'the rest' */
	int64_t newest_ms;
	int err;
	struct {
		uint8_t id[SL_IDWIN_ID_LEN];
		uint64_t offset;
		int64_t time_ms;
	} ahead[SL__ID_AHEAD]; /* ids read, not yet added: [n_added, n_read) */
	uint64_t n_read, n_added;
};

/* Adds the ids read ahead, all or all but the last SL__ID_AHEAD - 1. */
static void sl__replay_ids_add(struct sl__replay *rp, bool all)
{
	while (rp->n_added < rp->n_read && (all || rp->n_read - rp->n_added >= SL__ID_AHEAD)) {
		const __typeof__(rp->ahead[0]) *a = &rp->ahead[rp->n_added++ % SL__ID_AHEAD];
		(void)sl_idwin_add(rp->p->idw, a->id, a->offset, a->time_ms);
	}
}

/* The event-id window's part of a record (see sl__idwin_start). */
static void sl__replay_id(struct sl__replay *rp, const struct sl_log_record *rec)
{
	struct sl_event_view ev;
	rp->p->idw_replayed++;
	if (rec->append_time_ms > rp->newest_ms)
		rp->newest_ms = rec->append_time_ms;
	/* Events were scanned when they came in: one that does not scan now
	 * has no id to find (the log checked its batch's checksum). */
	if (sl_event_scan(rec->event, rec->len, &ev) < 0 || !ev.id)
		return;
	if (rec->offset == rp->id_from && rec->offset > rp->id_skip)
		/* It stands for every record before the window, none of
		 * them read: the horizon covers them (idwin.h). */
		sl_idwin_skipped(rp->p->idw, rec->append_time_ms);
	else {
		sl_idwin_prefetch(rp->p->idw, ev.id);
		sl__replay_ids_add(rp, false);
		__typeof__(rp->ahead[0]) *a = &rp->ahead[rp->n_read++ % SL__ID_AHEAD];
		memcpy(a->id, ev.id, SL_IDWIN_ID_LEN);
		a->offset = rec->offset;
		a->time_ms = rec->append_time_ms;
	}
}

static int sl__replay_one(void *arg, const struct sl_log_record *rec)
{
	struct sl__replay *rp = arg;

	if (rec->offset >= rp->id_from)
		sl__replay_id(rp, rec);
	if (rec->offset < rp->dd_from)
		return 0;
	rp->p->dd_replayed++;
	if (!rec->producer_id)
		return 0; /* a producer without deduplication */
	/* Its last_ms as the live table gave it, give or take a tick. */
	if (rec->append_time_ms > 0)
		sl_dedup_set_time(rp->p->dd, (uint64_t)rec->append_time_ms);
	int r = sl_dedup_record(rp->p->dd, rec->producer_id, rec->epoch, rec->seq, rec->offset);
	/* -EINVAL: a record the table already holds, or one out of its
	 * producer's order that the live table would not have accepted
	 * either; neither changes what the table must answer. */
	if (r < 0 && r != -EINVAL) {
		rp->err = r;
		return -1;
	}
	return 0;
}

/*
 * Where the event-id window's rebuild starts: the record before the first
 * one that may be in the window (it stands for all those before it), or
 * the log's start. Cheap bounds, no reading: the cap (the window keeps at
 * most the `cap` newest records; offsets are dense), and the segments'
 * first batches (a segment whose first batch is out of the window of the
 * newest time known, the last segment's first, has nothing newer before
 * it: times do not decrease along the log). What the bounds leave of
 * older records the replay's add (cap) and final expire (time) drop.
 */
static uint64_t sl__idwin_start(const struct sl_partition *p, uint64_t start, uint64_t end)
{
	uint64_t at = start, base;
	uint32_t cap = sl_idwin_cap(p->idw), n = sl_log_segments(p->log);
	int64_t win = sl_idwin_window_ms(p->idw), newest = 0, t;
	bool known = false;

	if (end - start > (uint64_t)cap + 1)
		at = end - cap - 1;
	for (uint32_t i = n; i-- > 0;)
		if (sl_log_segment_first(p->log, i, &base, &t) == 0) {
			newest = t;
			known = true;
			break;
		}
	for (uint32_t i = n; known && i-- > 0;)
		if (sl_log_segment_first(p->log, i, &base, &t) == 0 && newest - t >= win) {
			if (base > at)
				at = base;
			break;
		}
	return at;
}

int sl__part_open_producers(struct sl_partition *p, struct sl_producers *prods, bool ids, char *err,
                            size_t errlen)
{
	struct sl_dedup_opts o = {.window = SL_PRODUCER_WINDOW};
	uint64_t *bases = NULL, from, end;
	struct sl_log_view *v = NULL;
	size_t n_bases = 0;
	char path[4200], cerr[256];
	int ret;

	p->dd_ckpt_last = p->dd_ckpt_prev = UINT64_MAX;
	ret = sl_dedup_create(&o, &p->dd);
	if (ret < 0)
		goto out;
	from = sl_log_start(p->log);
	end = sl_log_end(p->log);
	ret = sl__list_ckpts(p, &bases, &n_bases);
	if (ret < 0)
		goto out;
	for (size_t i = 0; i < n_bases; i++) {
		uint8_t *buf = NULL;
		size_t len = 0;
		uint64_t upto = 0;
		if (bases[i] > end || bases[i] < from)
			continue; /* not this log's (a torn roll), or below retention */
		if (sl__ckpt_path(p, bases[i], "", path, sizeof(path)) < 0)
			continue;
		ret = sl__read_file(path, &buf, &len);
		if (ret == 0)
			ret = sl_dedup_checkpoint_read(p->dd, buf, len, &upto, cerr, sizeof(cerr));
		else
			snprintf(cerr, sizeof(cerr), "%s", sl_strerror(ret));
		free(buf);
		if (ret == 0 && upto != bases[i]) {
			snprintf(cerr, sizeof(cerr),
			         "it covers offsets below %" PRIu64 ", not %" PRIu64, upto,
			         bases[i]);
			/* The table must be empty again for the next try. */
			sl_dedup_destroy(p->dd);
			p->dd = NULL;
			if ((ret = sl_dedup_create(&o, &p->dd)) < 0)
				goto out;
			ret = -SL_ECORRUPT;
		}
		if (ret == 0) {
			from = upto;
			p->dd_ckpt_last = upto;
			break;
		}
		fprintf(stderr, "sluiced: %s: ignored (%s); replaying further back\n", path, cerr);
	}
	/* Read in large steps: a view checks each stored batch once per read
	 * call, so reading event by event would check a batch once per event. */
	ret = sl_log_view_open(p->dir, &v);
	if (ret < 0)
		goto out;
	struct sl__replay rp = {
	    .p = p, .dd_from = from, .id_from = UINT64_MAX, .newest_ms = INT64_MIN};
	const struct sl_topic_spec *spec = &p->topic->spec;
	if (ids && spec->dedup_window_ms > 0) {
		uint32_t cap =
		    spec->dedup_window_events ? spec->dedup_window_events : SL_IDWIN_CAP_DEFAULT;
		sl_idwin_destroy(p->idw);
		p->idw = NULL;
		if ((ret = sl_idwin_create(spec->dedup_window_ms, cap, &p->idw)) < 0)
			goto out;
		p->idw_replayed = 0;
		rp.id_skip = sl_log_start(p->log);
		rp.id_from = sl__idwin_start(p, rp.id_skip, end);
		/* Its size at once, not by fourfold growths each re-hashing
		 * all it holds. */
		if ((ret = sl_idwin_reserve(p->idw, end - rp.id_from)) < 0)
			goto out;
		/* One pass for both: sequences from the checkpoint, ids from
		 * the window's start, whichever comes first. */
		if (rp.id_from < from)
			from = rp.id_from;
	}
	while (from < end) {
		uint64_t next = from;
		ret = sl_log_view_read(v, from, end, 65536, 8u << 20, sl__replay_one, &rp, &next);
		if (ret < 0 || rp.err < 0) {
			if (rp.err < 0)
				ret = rp.err;
			else
				snprintf(err, errlen, "%s", sl_log_view_strerror(v, ret));
			goto out;
		}
		if (ret == 0 || next <= from)
			break;
		from = next;
	}
	sl__replay_ids_add(&rp, true);
	/* The window of the newest batch: what the clock says at the first
	 * tick may drop more. */
	if (rp.id_from != UINT64_MAX && rp.newest_ms != INT64_MIN)
		sl_idwin_expire(p->idw, rp.newest_ms);
	sl_dedup_foreach(p->dd, sl__seed_one, prods);
	/* From here on the owner's tick moves the table's clock. */
	sl_dedup_set_time(p->dd, sl_wall_ms());
	ret = 0;
out:
	if (ret < 0 && !err[0])
		snprintf(err, errlen, "producer sequences: %s", sl_strerror(ret));
	sl_log_view_close(v);
	free(bases);
	return ret;
}
