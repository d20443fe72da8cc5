#include "topic/topic.h"
#include "topic/topic_impl.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "base/base.h"

static int sl__open_log(struct sl_partition *part, const struct sl_topic_spec *spec,
                        const char *data_dir, struct sl_producers *prods, struct sl_segprep *prep,
                        struct sl_journal *journal, struct sl_jrec *jrec, char *err, size_t errlen)
{
	char dir[4096], key[600], lerr[512] = "";
	struct sl_log_opts o = {
	    .dir = dir,
	    .prep = prep,
	    .segment_bytes = spec->segment_bytes ? spec->segment_bytes : (64u << 20),
	    .durability = spec->durability,
	    .interval_ns = spec->interval_ns,
	    .on_seal = sl__part_checkpoint,
	    .on_seal_arg = part,
	    .journal = spec->durability == SL_LOG_FSYNC ? journal : NULL,
	    .journal_key = key,
	    .journal_arg = part,
	    .replay = jrec,
	};
	snprintf(key, sizeof(key), "%s/%u", spec->name, part->id);
	int n = snprintf(dir, sizeof(dir), "%s/%s/%u", data_dir, spec->name, part->id);
	if (n < 0 || (size_t)n >= sizeof(dir)) {
		snprintf(err, errlen, "data_dir path too long");
		return -ENAMETOOLONG;
	}
	part->dir = strdup(dir);
	if (!part->dir)
		return -ENOMEM;
	if (asprintf(&part->full_msg,
	             "topic %s partition %u: no space left on the device of %s; not stored, "
	             "retry once space is freed",
	             spec->name, part->id, dir) < 0) {
		part->full_msg = NULL;
		return -ENOMEM;
	}
	int ret = sl_log_open(&o, &part->log, lerr, sizeof(lerr));
	if (ret == 0) {
		ret = sl__part_open_producers(part, prods, true, lerr, sizeof(lerr));
		if (ret < 0) {
			sl_log_close(part->log);
			part->log = NULL;
		}
	}
	if (ret == -SL_ECORRUPT) {
		/* Refuse this partition, keep the others serving (and the
		 * journal files, which may hold what repairs it). */
		part->log = NULL;
		part->refused = true;
		if (asprintf(&part->error, "topic %s partition %u refused: %s", spec->name,
		             part->id, lerr) < 0)
			part->error = NULL;
		fprintf(stderr, "sluiced: %s\n", part->error ? part->error : lerr);
		return 0;
	}
	if (ret < 0)
		snprintf(err, errlen, "topic %s partition %u: %s", spec->name, part->id, lerr);
	return ret;
}

/* Builds slot i from spec: partitions, their logs (recovered, replaying
 * jrec), journals taken from t->journals when `with_journal`. */
static int sl__topic_build(struct sl_topics *out, uint32_t i, const struct sl_topic_spec *spec,
                           struct sl_jrec *jrec, bool with_journal, char *err, size_t errlen)
{
	struct sl_topic *t = &out->v[i];
	int ret = -ENOMEM;

	memset(t, 0, sizeof(*t));
	snprintf(err, errlen, "out of memory");
	t->index = i;
	t->n_parts = spec->n_parts;
	t->overload = spec->overload;
	if (t->overload == SL_OVERLOAD_SAMPLE) {
		/* Keep an event when the hash of its id falls below
		 * rate * 2^64: the same id is kept or shed every time
		 * (a retry is judged like its original). */
		double r = spec->sample_rate;
		t->sample_below = r >= 1.0 ? UINT64_MAX : (uint64_t)(r * 18446744073709551616.0);
	}
	atomic_init(&t->dedup_window_ms, spec->dedup_window_ms);
	atomic_init(&t->producer_expiry_ns, spec->producer_expiry_ns);
	t->name = strdup(spec->name);
	if (!t->name)
		return -ENOMEM;
	t->internal =
	    !strncmp(t->name, SL_TOPIC_INTERNAL_PREFIX, sizeof(SL_TOPIC_INTERNAL_PREFIX) - 1);
	t->spec = *spec;
	t->spec.name = t->name;
	struct sl_part_spec ps = spec->part_args;
	ps.kind = spec->partitioner;
	ps.n_parts = spec->n_parts;
	/* The partitioner keeps its own copies; the spec's pointers belong to
	 * whoever built it and may go. */
	t->spec.part_args = (struct sl_part_spec){0};
	char perr[400];
	ret = sl_part_init_spec(&t->part, &ps, perr, sizeof(perr));
	if (ret < 0) {
		snprintf(err, errlen, "topic %s: partitioner %s: %s", t->name,
		         sl_part_kind_name(ps.kind), perr);
		return ret;
	}
	t->parts = calloc(t->n_parts, sizeof(*t->parts));
	if (!t->parts)
		return -ENOMEM;
	atomic_store(&t->hot_factor, spec->hot_factor);
	atomic_store(&t->retention_bytes, spec->retention_bytes);
	atomic_store(&t->retention_age_ms, spec->retention_age_ms);
	if (spec->hot_keys) {
		/* Allocated now, so that counting allocates nothing; only
		 * reactors that own one of its partitions count. */
		uint32_t n = out->n_reactors < t->n_parts ? out->n_reactors : t->n_parts;
		t->hot = calloc(out->n_reactors, sizeof(*t->hot));
		if (!t->hot)
			return -ENOMEM;
		t->n_hot = n;
		for (uint32_t r = 0; r < n; r++)
			if (!(t->hot[r] = sl_hot_create(SL_HOT_SAMPLE, sl_now_ns())))
				return -ENOMEM;
	}
	for (uint32_t p = 0; p < t->n_parts; p++) {
		struct sl_partition *part = &t->parts[p];
		part->topic = t;
		part->id = p;
		part->owner = p % out->n_reactors;
		part->w_cap = 1024;
		part->waiting = malloc(part->w_cap * sizeof(*part->waiting));
		if (!part->waiting)
			return -ENOMEM;
		struct sl_journal *j =
		    with_journal ? atomic_load(&out->journals[part->owner]) : NULL;
		ret = sl__open_log(part, spec, out->data_dir, out->producers, out->prep, j, jrec,
		                   err, errlen);
		if (ret < 0)
			return ret;
		if (part->log) {
			atomic_store(&part->durable_pub, sl_log_end(part->log));
			atomic_store(&part->start_pub, sl_log_start(part->log));
		}
	}
	return 0;
}

static void sl__topic_free(struct sl_topic *tp)
{
	if (tp->parts)
		for (uint32_t p = 0; p < tp->n_parts; p++) {
			free(tp->parts[p].waiting);
			sl_log_close(tp->parts[p].log);
			sl_dedup_destroy(tp->parts[p].dd);
			sl_idwin_destroy(tp->parts[p].idw);
			free(tp->parts[p].error);
			free(tp->parts[p].dir);
			free(tp->parts[p].full_msg);
			free(tp->parts[p].followers);
			for (uint32_t f = 0; f < tp->parts[p].n_followers; f++)
				free(tp->parts[p].follower_names[f]);
			free(tp->parts[p].follower_names);
		}
	free(tp->parts);
	for (uint32_t r = 0; tp->hot && r < tp->n_hot; r++)
		sl_hot_destroy(tp->hot[r]);
	free(tp->hot);
	free(tp->name);
	sl_part_destroy(&tp->part);
	memset(tp, 0, sizeof(*tp));
}

/* A journal for reactor r, numbered from first_seq. */
static int sl__journal_for(struct sl_topics *out, uint32_t r, uint64_t first_seq, char *err,
                           size_t errlen)
{
	char jdir[4096];
	struct sl_journal *j;
	snprintf(jdir, sizeof(jdir), "%s/%s/%u", out->data_dir, SL_JOURNAL_DIR_NAME, r);
	struct sl_journal_opts jo = {.dir = jdir, .first_seq = first_seq, .prep = out->prep};
	int ret = sl_journal_create(&jo, &j, err, errlen);
	if (ret == 0)
		atomic_store(&out->journals[r], j);
	return ret;
}

int sl_topics_create(const struct sl_topic_spec *specs, uint32_t n, uint32_t n_reactors,
                     const char *data_dir, struct sl_producers *producers, struct sl_topics *out,
                     char *err, size_t errlen)
{
	int ret = -ENOMEM;
	uint32_t *owned = NULL;
	struct sl_jrec *jrec = NULL;

	memset(out, 0, sizeof(*out));
	snprintf(err, errlen, "out of memory");
	if (n_reactors == 0)
		return -EINVAL;
	if (n > SL_TOPICS_MAX) {
		snprintf(err, errlen, "%u topics: at most %u", n, SL_TOPICS_MAX);
		return -EINVAL;
	}
	out->n_reactors = n_reactors;
	out->producers = producers;
	out->v = calloc(SL_TOPICS_MAX, sizeof(*out->v));
	out->journals = calloc(n_reactors, sizeof(*out->journals));
	out->data_dir = strdup(data_dir);
	owned = calloc(n_reactors, sizeof(*owned));
	if (!out->v || !out->journals || !out->data_dir || !owned)
		goto fail;
	out->n_journals = n_reactors;
	ret = sl_segprep_create(&out->prep);
	if (ret < 0) {
		snprintf(err, errlen, "segment preparer: %s", strerror(-ret));
		goto fail;
	}
	/* The journals (log.h): read back what they hold for the replays,
	 * then a new journal for each reactor that owns enough fsync
	 * partitions, numbered after every old file (deleted once every log
	 * has taken its part). */
	ret = sl_jrec_load(data_dir, &jrec, err, errlen);
	if (ret < 0)
		goto fail;
	/* A reactor with few fsync partitions syncs each itself: one sync
	 * per partition is cheap there, and the journal's second copy of
	 * every byte costs more (bench/scripts/scale.sh, interleaved,
	 * 2026-12-06: 8 partitions 0.58-0.62M events/s p99 83-90 ms
	 * journaled against 0.72-0.75M p99 35-40 ms; 64: 479k p99 58 ms
	 * against 310k p99 62 ms; 1,000: 583k against 62k). */
	for (uint32_t i = 0; i < n; i++)
		if (specs[i].durability == SL_LOG_FSYNC)
			for (uint32_t p = 0; p < specs[i].n_parts; p++)
				owned[p % n_reactors]++;
	for (uint32_t r = 0; r < n_reactors; r++) {
		if (owned[r] <= SL_JOURNAL_MIN_PARTITIONS)
			continue;
		ret = sl__journal_for(out, r, sl_jrec_next_seq(jrec), err, errlen);
		if (ret < 0)
			goto fail;
	}
	for (uint32_t i = 0; i < n; i++) {
		atomic_store(&out->n, i + 1);
		ret = sl__topic_build(out, i, &specs[i], jrec, true, err, errlen);
		if (ret < 0)
			goto fail;
	}
	uint64_t files, frames, chunks;
	bool keep = false;
	sl_jrec_counts(jrec, &files, &frames, &chunks);
	for (uint32_t i = 0; i < out->n; i++)
		for (uint32_t p = 0; p < out->v[i].n_parts; p++)
			keep |= out->v[i].parts[p].error != NULL;
	if (frames)
		fprintf(stderr,
		        "sluiced: journal: %" PRIu64 " group commits in %" PRIu64
		        " files read back (%" PRIu64 " partition chunks)%s\n",
		        frames, files, chunks,
		        keep ? "; the files are kept: a partition was refused" : "");
	ret = sl_jrec_finish(jrec, data_dir, keep, err, errlen);
	jrec = NULL;
	if (ret < 0)
		goto fail;
	free(owned);
	return 0;
fail:
	free(owned);
	sl_jrec_free(jrec);
	sl_topics_destroy(out);
	return ret;
}

int sl_topics_add(struct sl_topics *t, const struct sl_topic_spec *spec, uint32_t *index, char *err,
                  size_t errlen)
{
	uint32_t i = atomic_load(&t->n);
	if (i >= SL_TOPICS_MAX) {
		snprintf(err, errlen, "this server holds %u topics (deleted ones included) already",
		         SL_TOPICS_MAX);
		return -ENOSPC;
	}
	/* A reactor that now passes the journal's threshold gets one (its
	 * older partitions keep syncing their own segments). */
	if (spec->durability == SL_LOG_FSYNC)
		for (uint32_t r = 0; r < t->n_reactors; r++) {
			if (atomic_load(&t->journals[r]))
				continue;
			uint32_t owned = 0;
			for (uint32_t k = 0; k < i; k++)
				if (!atomic_load(&t->v[k].deleted) &&
				    t->v[k].spec.durability == SL_LOG_FSYNC)
					owned += t->v[k].n_parts / t->n_reactors +
					         (r < t->v[k].n_parts % t->n_reactors);
			owned +=
			    spec->n_parts / t->n_reactors + (r < spec->n_parts % t->n_reactors);
			if (owned <= SL_JOURNAL_MIN_PARTITIONS)
				continue;
			int ret = sl__journal_for(t, r, 0, err, errlen);
			if (ret < 0)
				return ret;
		}
	int ret = sl__topic_build(t, i, spec, NULL, false, err, errlen);
	if (ret < 0) {
		sl__topic_free(&t->v[i]);
		return ret;
	}
	t->v[i].runtime = true;
	*index = i;
	return 0;
}

int sl_topics_journals(struct sl_topics *t, char *err, size_t errlen)
{
	uint32_t n = atomic_load(&t->n);
	for (uint32_t r = 0; r < t->n_reactors; r++) {
		if (atomic_load(&t->journals[r]))
			continue;
		uint32_t owned = 0;
		for (uint32_t k = 0; k < n; k++)
			if (!atomic_load(&t->v[k].deleted) &&
			    t->v[k].spec.durability == SL_LOG_FSYNC)
				owned += t->v[k].n_parts / t->n_reactors +
				         (r < t->v[k].n_parts % t->n_reactors);
		if (owned <= SL_JOURNAL_MIN_PARTITIONS)
			continue;
		int ret = sl__journal_for(t, r, 0, err, errlen);
		if (ret < 0)
			return ret;
	}
	return 0;
}

void sl_topics_publish(struct sl_topics *t, uint32_t index)
{
	atomic_store(&t->n, index + 1);
}

void sl_topics_unadd(struct sl_topics *t, uint32_t index)
{
	sl__topic_free(&t->v[index]);
}

void sl_topics_destroy(struct sl_topics *t)
{
	uint32_t n = t->v ? atomic_load(&t->n) : 0;
	for (uint32_t i = 0; i < n; i++)
		sl__topic_free(&t->v[i]);
	/* After every log (a closing log writes what its journal holds for
	 * it), before the preparer (that runs their checkpoints). */
	for (uint32_t r = 0; t->journals && r < t->n_journals; r++)
		sl_journal_destroy(atomic_load(&t->journals[r]));
	free(t->journals);
	/* After every log: they may still be asking it. */
	sl_segprep_destroy(t->prep);
	free(t->v);
	free(t->data_dir);
	memset(t, 0, sizeof(*t));
}

int sl_partition_follow(struct sl_partition *p, _Atomic uint64_t *next, const char *kind,
                        const char *name)
{
	char *label;
	if (asprintf(&label, "%s %s", kind, name) < 0)
		return -ENOMEM;
	_Atomic uint64_t **v = realloc(p->followers, (p->n_followers + 1) * sizeof(*v));
	if (v)
		p->followers = v;
	char **nv = v ? realloc(p->follower_names, (p->n_followers + 1) * sizeof(*nv)) : NULL;
	if (!nv) {
		free(label);
		return -ENOMEM;
	}
	p->follower_names = nv;
	v[p->n_followers] = next;
	nv[p->n_followers++] = label;
	return 0;
}

struct sl_topic *sl_topics_find(const struct sl_topics *t, const char *name, size_t len)
{
	/* A handful of topics: a linear scan beats hashing the name. */
	uint32_t n = atomic_load(&t->n);
	for (uint32_t i = 0; i < n; i++)
		if (strlen(t->v[i].name) == len && memcmp(t->v[i].name, name, len) == 0 &&
		    !atomic_load_explicit(&t->v[i].deleted, memory_order_relaxed))
			return &t->v[i];
	return NULL;
}

static int sl__partition_grow(struct sl_partition *p)
{
	uint32_t cap = p->w_cap * 2, n = p->w_tail - p->w_head;
	struct sl_ack_ref *w = malloc((size_t)cap * sizeof(*w));
	if (!w)
		return -ENOMEM;
	for (uint32_t i = 0; i < n; i++)
		w[i] = p->waiting[(p->w_head + i) & (p->w_cap - 1)];
	free(p->waiting);
	p->waiting = w;
	p->w_cap = cap;
	p->w_head = 0;
	p->w_tail = n;
	return 0;
}

static int sl__partition_wait(struct sl_partition *p, const struct sl_ack_ref *ref)
{
	/* The FIFO only grows to the number of unacked events, which credits
	 * bound; growth is rare and amortised. */
	if (SL_UNLIKELY(p->w_tail - p->w_head == p->w_cap)) {
		int ret = sl__partition_grow(p);
		if (ret < 0)
			return ret;
	}
	p->waiting[p->w_tail++ & (p->w_cap - 1)] = *ref;
	return 0;
}

/* The table time at or after which a resend's original was first sent
 * (SL_RESEND_MARGIN_MS). At least 1: 0 is "not a resend". */
static uint64_t sl__resend_since(const struct sl_partition *p, uint32_t resend_s)
{
	uint64_t now = sl_dedup_now_ms(p->dd),
	         back = (uint64_t)resend_s * 1000 + SL_RESEND_MARGIN_MS;

	return now > back ? now - back : 1;
}

/* Answers `ref` as a duplicate of the event stored at `off`: 1 when that
 * is ackable now (the caller answers), else it waits in the FIFO (0). */
static int sl__partition_dup(struct sl_partition *p, uint64_t off, struct sl_ack_ref *ref)
{
	ref->offset = off;
	ref->flags = SL_ACK_DUP;
	/* Nothing is acked before it is durable, duplicates included: one
	 * whose original is still in flight waits in the FIFO. It may sit
	 * behind higher offsets there, which only makes its ack later, never
	 * early. */
	if (off < sl_partition_ackable(p))
		return 1;
	return sl__partition_wait(p, ref);
}

/* Whether `id` is in the partition's window now, with *off. The edge is
 * exact (topic.h): an entry the tick has not expired yet but that is past
 * it is expired here and not answered. The clock is read on a hit only. */
static bool sl__partition_id_seen(struct sl_partition *p, const uint8_t *id, uint64_t *off)
{
	int64_t t;
	if (SL_LIKELY(!sl_idwin_find(p->idw, id, off, &t)))
		return false;
	int64_t now = (int64_t)sl_wall_ms(); /* as batch times are */
	if (now - t < sl_idwin_window_ms(p->idw))
		return true;
	sl_idwin_expire(p->idw, now);
	return false;
}

int sl_partition_produce(struct sl_partition *p, uint64_t pid, uint32_t epoch, uint64_t seq,
                         uint32_t resend_s, const uint8_t *ev, uint32_t len, const uint8_t *id,
                         struct sl_ack_ref *ref)
{
	uint64_t off;
	if (SL_UNLIKELY(!p->log))
		return -SL_ELOG_FAILED;
	/* A pipeline stage's outputs may share their input's id rightly
	 * (a filter passes events on as they are): recorded, never checked. */
	bool by_id = p->idw && id && pid &&
	             !(pid >= SL_PRODUCERS_PIPE_ID_BASE && pid < SL_PRODUCERS_PIPE_ID_END);
	if (pid) {
		int v = sl_dedup_check(p->dd, pid, epoch, seq, &off);
		/* A resend of a producer this table does not know: it may have
		 * been stored and forgotten (dedup.h). The id window may know:
		 * the id is there (a duplicate), or the window holds every id
		 * stored since the resend was first sent and this one is not
		 * among them (never stored: new). Else it cannot be told. */
		if (SL_UNLIKELY(resend_s) && (v == SL_DEDUP_NEW || v == -SL_ESEQ_GAP)) {
			uint64_t since = sl__resend_since(p, resend_s);
			if (sl_dedup_resend_check(p->dd, pid, since) < 0) {
				if (by_id && sl__partition_id_seen(p, id, &off))
					goto dup_by_id;
				if (!by_id || since <= (uint64_t)sl_idwin_horizon_ms(p->idw)) {
					p->dd_expired_refused++;
					return -SL_EPRODUCER_EXPIRED;
				}
			}
		}
		if (SL_UNLIKELY(v != SL_DEDUP_NEW)) {
			/* A gap may be the resend of an event answered as a
			 * duplicate by id, which took no sequence entry. */
			if (v == -SL_ESEQ_GAP && by_id && sl__partition_id_seen(p, id, &off))
				goto dup_by_id;
			if (v < 0)
				return v;
			if (v == SL_DEDUP_STALE) {
				ref->offset = 0;
				ref->flags = SL_ACK_DUP | SL_ACK_OFFSET_UNKNOWN;
				return 1;
			}
			return sl__partition_dup(p, off, ref);
		}
	}
	if (by_id && SL_UNLIKELY(sl__partition_id_seen(p, id, &off)))
		goto dup_by_id;
	if (SL_UNLIKELY(p->w_tail - p->w_head == p->w_cap)) {
		int ret = sl__partition_grow(p);
		if (ret < 0)
			return ret;
	}
	/* Room to track it first: an event is tracked or not stored (no
	 * event is stored untracked while idempotence is on). */
	if (pid && SL_UNLIKELY(sl_dedup_prepare(p->dd, pid, seq) < 0)) {
		p->dd_untracked++;
		return -SL_EUNTRACKED;
	}
	int ret = sl_log_append(p->log, pid, epoch, seq, ev, len, &ref->offset);
	if (ret < 0)
		return ret;
	if (pid && SL_UNLIKELY((ret = sl_dedup_record(p->dd, pid, epoch, seq, ref->offset)) < 0)) {
		/* Cannot happen after sl_dedup_prepare (dedup.h); said if it
		 * ever does, since the event is then stored untracked. */
		fprintf(stderr,
		        "sluiced: topic %s partition %u: producer %" PRIu64 " sequence %" PRIu64
		        " not tracked: %s\n",
		        p->topic->name, p->id, pid, seq, sl_strerror(ret));
		p->dd_untracked_stored++;
	}
	/* Never fails for memory (idwin.h); -EINVAL only for an offset not
	 * above the last, which a log never hands out. */
	if (p->idw && id)
		(void)sl_idwin_add(p->idw, id, ref->offset, sl_log_append_time_ms(p->log));
	p->waiting[p->w_tail++ & (p->w_cap - 1)] = *ref;
	return 0;
dup_by_id:
	/* Not recorded by sequence: the table answers for what this producer
	 * stored here, and this event is stored under another's. */
	atomic_store_explicit(&p->id_dups_pub,
	                      atomic_load_explicit(&p->id_dups_pub, memory_order_relaxed) + 1,
	                      memory_order_relaxed);
	return sl__partition_dup(p, off, ref);
}
