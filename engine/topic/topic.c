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
		ret = sl__part_open_producers(part, prods, lerr, sizeof(lerr));
		if (ret < 0) {
			sl_log_close(part->log);
			part->log = NULL;
		}
	}
	if (ret == -SL_ECORRUPT) {
		/* Refuse this partition, keep the others serving (and the
		 * journal files, which may hold what repairs it). */
		part->log = NULL;
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

int sl_topics_create(const struct sl_topic_spec *specs, uint32_t n, uint32_t n_reactors,
                     const char *data_dir, struct sl_producers *producers, struct sl_topics *out,
                     char *err, size_t errlen)
{
	int ret = -ENOMEM;

	memset(out, 0, sizeof(*out));
	snprintf(err, errlen, "out of memory");
	if (n_reactors == 0)
		return -EINVAL;
	out->v = calloc(n ? n : 1, sizeof(*out->v));
	if (!out->v)
		return -ENOMEM;
	ret = sl_segprep_create(&out->prep);
	if (ret < 0) {
		free(out->v);
		out->v = NULL;
		snprintf(err, errlen, "segment preparer: %s", strerror(-ret));
		return ret;
	}
	/* The journals (log.h): read back what they hold for the replays,
	 * then one new journal per reactor, numbered after every old file
	 * (which are deleted once every log has taken its part). */
	struct sl_jrec *jrec = NULL;
	bool any_fsync = false;
	for (uint32_t i = 0; i < n; i++)
		any_fsync |= specs[i].durability == SL_LOG_FSYNC;
	if (any_fsync) {
		ret = sl_jrec_load(data_dir, &jrec, err, errlen);
		if (ret < 0)
			goto fail;
		out->journals = calloc(n_reactors, sizeof(*out->journals));
		if (!out->journals) {
			ret = -ENOMEM;
			goto fail;
		}
		out->n_journals = n_reactors;
		/* A reactor with few fsync partitions syncs each itself: one
		 * sync per partition is cheap there, and the journal's second
		 * copy of every byte costs more (bench/scripts/scale.sh,
		 * interleaved, 2026-12-06: 8 partitions 0.58-0.62M events/s
		 * p99 83-90 ms journaled against 0.72-0.75M p99 35-40 ms; 64:
		 * 479k p99 58 ms against 310k p99 62 ms; 1,000: 583k against
		 * 62k). */
		uint32_t *owned = calloc(n_reactors, sizeof(*owned));
		if (!owned) {
			ret = -ENOMEM;
			goto fail;
		}
		for (uint32_t i = 0; i < n; i++)
			if (specs[i].durability == SL_LOG_FSYNC)
				for (uint32_t p = 0; p < specs[i].n_parts; p++)
					owned[p % n_reactors]++;
		for (uint32_t r = 0; r < n_reactors; r++) {
			char jdir[4096];
			if (owned[r] <= SL_JOURNAL_MIN_PARTITIONS)
				continue;
			snprintf(jdir, sizeof(jdir), "%s/%s/%u", data_dir, SL_JOURNAL_DIR_NAME, r);
			struct sl_journal_opts jo = {
			    .dir = jdir,
			    .first_seq = sl_jrec_next_seq(jrec),
			    .prep = out->prep,
			};
			ret = sl_journal_create(&jo, &out->journals[r], err, errlen);
			if (ret < 0) {
				free(owned);
				goto fail;
			}
		}
		free(owned);
	}
	for (uint32_t i = 0; i < n; i++) {
		struct sl_topic *t = &out->v[i];
		out->n = i + 1;
		t->index = i;
		t->n_parts = specs[i].n_parts;
		t->overload = specs[i].overload;
		if (t->overload == SL_OVERLOAD_SAMPLE) {
			/* Keep an event when the hash of its id falls below
			 * rate * 2^64: the same id is kept or shed every time
			 * (a retry is judged like its original). */
			double r = specs[i].sample_rate;
			t->sample_below =
			    r >= 1.0 ? UINT64_MAX : (uint64_t)(r * 18446744073709551616.0);
		}
		t->name = strdup(specs[i].name);
		if (!t->name)
			goto fail;
		ret = sl_part_init(&t->part, specs[i].partitioner, specs[i].n_parts);
		if (ret < 0) {
			snprintf(err, errlen, "topic %s: partitioner not available", t->name);
			goto fail;
		}
		ret = -ENOMEM;
		t->parts = calloc(t->n_parts, sizeof(*t->parts));
		if (!t->parts)
			goto fail;
		for (uint32_t p = 0; p < t->n_parts; p++) {
			struct sl_partition *part = &t->parts[p];
			part->topic = t;
			part->id = p;
			part->owner = p % n_reactors;
			part->w_cap = 1024;
			part->waiting = malloc(part->w_cap * sizeof(*part->waiting));
			if (!part->waiting)
				goto fail;
			ret = sl__open_log(part, &specs[i], data_dir, producers, out->prep,
			                   out->journals ? out->journals[part->owner] : NULL, jrec,
			                   err, errlen);
			if (ret < 0)
				goto fail;
			ret = -ENOMEM;
			if (part->log) {
				atomic_store(&part->durable_pub, sl_log_end(part->log));
				atomic_store(&part->start_pub, sl_log_start(part->log));
			}
		}
	}
	if (jrec) {
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
		ret = sl_jrec_finish(jrec, keep, err, errlen);
		jrec = NULL;
		if (ret < 0)
			goto fail;
	}
	return 0;
fail:
	sl_jrec_free(jrec);
	sl_topics_destroy(out);
	return ret;
}

void sl_topics_destroy(struct sl_topics *t)
{
	for (uint32_t i = 0; i < t->n; i++) {
		struct sl_topic *tp = &t->v[i];
		if (tp->parts)
			for (uint32_t p = 0; p < tp->n_parts; p++) {
				free(tp->parts[p].waiting);
				sl_log_close(tp->parts[p].log);
				sl_dedup_destroy(tp->parts[p].dd);
				free(tp->parts[p].error);
				free(tp->parts[p].dir);
				free(tp->parts[p].full_msg);
				free(tp->parts[p].followers);
			}
		free(tp->parts);
		free(tp->name);
		sl_part_destroy(&tp->part);
	}
	/* After every log (a closing log writes what its journal holds for
	 * it), before the preparer (that runs their checkpoints). */
	for (uint32_t r = 0; r < t->n_journals; r++)
		sl_journal_destroy(t->journals[r]);
	free(t->journals);
	/* After every log: they may still be asking it. */
	sl_segprep_destroy(t->prep);
	free(t->v);
	memset(t, 0, sizeof(*t));
}

int sl_partition_follow(struct sl_partition *p, _Atomic uint64_t *next)
{
	_Atomic uint64_t **v = realloc(p->followers, (p->n_followers + 1) * sizeof(*v));
	if (!v)
		return -ENOMEM;
	v[p->n_followers++] = next;
	p->followers = v;
	return 0;
}

struct sl_topic *sl_topics_find(const struct sl_topics *t, const char *name, size_t len)
{
	/* A handful of topics: a linear scan beats hashing the name. */
	for (uint32_t i = 0; i < t->n; i++)
		if (strlen(t->v[i].name) == len && memcmp(t->v[i].name, name, len) == 0)
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

int sl_partition_produce(struct sl_partition *p, uint64_t pid, uint32_t epoch, uint64_t seq,
                         const uint8_t *ev, uint32_t len, struct sl_ack_ref *ref)
{
	if (SL_UNLIKELY(!p->log))
		return -SL_ELOG_FAILED;
	if (pid) {
		uint64_t off;
		int v = sl_dedup_check(p->dd, pid, epoch, seq, &off);
		if (SL_UNLIKELY(v != SL_DEDUP_NEW)) {
			if (v < 0)
				return v;
			if (v == SL_DEDUP_STALE) {
				ref->offset = 0;
				ref->flags = SL_ACK_DUP | SL_ACK_OFFSET_UNKNOWN;
				return 1;
			}
			ref->offset = off;
			ref->flags = SL_ACK_DUP;
			/* Nothing is acked before it is durable, duplicates
			 * included: one whose original is still in flight waits
			 * in the FIFO. It may sit behind higher offsets there,
			 * which only makes its ack later, never early. */
			if (off < sl_log_acked(p->log))
				return 1;
			return sl__partition_wait(p, ref);
		}
	}
	if (SL_UNLIKELY(p->w_tail - p->w_head == p->w_cap)) {
		int ret = sl__partition_grow(p);
		if (ret < 0)
			return ret;
	}
	int ret = sl_log_append(p->log, pid, epoch, seq, ev, len, &ref->offset);
	if (ret < 0)
		return ret;
	if (pid && SL_UNLIKELY((ret = sl_dedup_record(p->dd, pid, epoch, seq, ref->offset)) < 0)) {
		/* Stored but not tracked (the table is full or memory ran
		 * out): a resend of this one event would be stored again.
		 * Said once per partition, counted always. */
		if (!p->dd_untracked++)
			fprintf(stderr,
			        "sluiced: topic %s partition %u: producer %" PRIu64
			        " sequence %" PRIu64 " not tracked: %s\n",
			        p->topic->name, p->id, pid, seq, sl_strerror(ret));
	}
	p->waiting[p->w_tail++ & (p->w_cap - 1)] = *ref;
	return 0;
}
