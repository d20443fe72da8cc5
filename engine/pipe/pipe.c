/*
 * A pipeline stage: one input partition through a chain of transforms,
 * its ack window and its progress file. See pipe.h for why this is exactly
 * once.
 */
#include "pipe/pipe.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include "base/base.h"
#include "dedup/dedup.h"
#include "log/log.h"

/* Event bytes gathered per batch. The log view may reuse its read buffer
 * between two record batches, so a batch's events are copied here first;
 * 256 KiB stays in L2. */
#define SL__ARENA_BYTES (256u << 10)

/* Progress file: u32 magic "SLPP", u32 version, u64 X, u64 S, u32 crc32c
 * of the 24 bytes before it. */
#define SL__PROG_MAGIC   0x50504c53u
#define SL__PROG_VERSION 1u
#define SL__PROG_BYTES   28u

uint64_t sl_pipe_producer_id(const char *name, uint32_t partition)
{
	uint64_t h = XXH3_64bits(name, strlen(name)) & ((UINT64_C(1) << 42) - 1);
	/* Partitions are below 4096 (config): 20 bits leave room. */
	return SL_PRODUCERS_PIPE_ID_BASE | (h << 20) | (partition & 0xfffffu);
}

struct sl__mark {
	uint64_t x; /* inputs below x ... */
	uint64_t s; /* ... have every output below s */
};

/* One transform of the chain. */
struct sl__level {
	struct sl_plugin *plugin;
	struct sl_plugin_inst *inst;
	struct sl_plugin_emitter em;
	/* This level's outputs for the `to` topic, read back as events: the
	 * next level's inputs (pointing into em's buffer). */
	struct sl_plugin_event *next;
	uint32_t next_cap;
};

struct sl_pipe_stage {
	char *name;
	uint32_t partition;
	uint32_t to_topic;
	struct sl__level *lv;
	uint32_t n_lv;
	struct sl_log_view *view;
	int dirfd;
	char file[16]; /* the partition number */

	uint64_t next;     /* first input not read */
	uint64_t out_seq;  /* next output's sequence */
	uint64_t acked_lo; /* outputs below it are all acked */
	/* Ack flags of outputs [acked_lo, out_seq), at seq & ack_mask. */
	uint8_t *ack;
	uint64_t ack_mask;
	/* Marks not yet covered by acked_lo, in input order. */
	struct sl__mark *marks;
	uint32_t m_head, m_tail, m_cap;
	struct sl__mark wm;    /* the watermark */
	struct sl__mark saved; /* what the file holds */

	/* the batch being gathered by the visitor */
	struct sl_plugin_event *evs;
	uint32_t n_evs, batch;
	uint8_t *arena;
	size_t arena_len, arena_cap;
	uint64_t last_seen;
	bool seen;
	sl_pipe_out_fn out;
	void *out_arg;

	uint64_t skipped; /* stored events that did not decode */
	bool failed;
	char error[512];
};

void sl_pipe_stage_fail(struct sl_pipe_stage *s, const char *fmt, ...)
{
	va_list ap;

	if (s->failed)
		return;
	va_start(ap, fmt);
	vsnprintf(s->error, sizeof(s->error), fmt, ap);
	va_end(ap);
	s->failed = true;
}

/* ---- progress ------------------------------------------------------------------ */

/* Loads (X, S); an absent file is (0, 0). A damaged one is (0, 0) too, said
 * once: resuming from the start is always correct (pipe.h), only slower. */
static void sl__load(struct sl_pipe_stage *s)
{
	uint8_t b[SL__PROG_BYTES + 1];
	size_t n = 0;
	int fd = openat(s->dirfd, s->file, O_RDONLY | O_CLOEXEC);

	s->wm = (struct sl__mark){0, 0};
	if (fd < 0) {
		if (errno != ENOENT)
			fprintf(stderr,
			        "sluiced: pipeline %s partition %u: progress: %s; from the start\n",
			        s->name, s->partition, strerror(errno));
		return;
	}
	while (n < sizeof(b)) {
		ssize_t k = read(fd, b + n, sizeof(b) - n);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			break;
		n += (size_t)k;
	}
	close(fd);
	if (n != SL__PROG_BYTES || sl_get_le32(b) != SL__PROG_MAGIC ||
	    sl_get_le32(b + 4) != SL__PROG_VERSION || sl_get_le32(b + 24) != sl_crc32c(0, b, 24)) {
		fprintf(
		    stderr,
		    "sluiced: pipeline %s partition %u: progress file damaged; from the start\n",
		    s->name, s->partition);
		return;
	}
	s->wm.x = sl_get_le64(b + 8);
	s->wm.s = sl_get_le64(b + 16);
}

int sl_pipe_stage_save(struct sl_pipe_stage *s)
{
	uint8_t b[SL__PROG_BYTES];
	const char *step = "write";

	if (s->wm.x == s->saved.x && s->wm.s == s->saved.s)
		return 0;
	sl_put_le32(b, SL__PROG_MAGIC);
	sl_put_le32(b + 4, SL__PROG_VERSION);
	sl_put_le64(b + 8, s->wm.x);
	sl_put_le64(b + 16, s->wm.s);
	sl_put_le32(b + 24, sl_crc32c(0, b, 24));
	struct iovec iov = {b, sizeof(b)};
	int ret = sl_file_replace(s->dirfd, s->file, &iov, 1, 0, &step, NULL);
	if (ret < 0) {
		fprintf(stderr, "sluiced: pipeline %s partition %u: progress %s: %s\n", s->name,
		        s->partition, step, strerror(-ret));
		return ret;
	}
	s->saved = s->wm;
	return 1;
}

/* ---- the ack window and the marks ------------------------------------------------- */

/* Moves the watermark over every mark whose outputs are all acked. */
static void sl__advance(struct sl_pipe_stage *s)
{
	while (s->m_head != s->m_tail) {
		struct sl__mark *m = &s->marks[s->m_head & (s->m_cap - 1)];
		if (m->s > s->acked_lo)
			break;
		s->wm = *m;
		s->m_head++;
	}
}

static int sl__mark(struct sl_pipe_stage *s, uint64_t x, uint64_t seq)
{
	if (s->m_head != s->m_tail) {
		/* No output since the last mark: the later position says more. */
		struct sl__mark *t = &s->marks[(s->m_tail - 1) & (s->m_cap - 1)];
		if (t->s == seq) {
			t->x = x;
			sl__advance(s);
			return 0;
		}
	}
	if (s->m_tail - s->m_head == s->m_cap) {
		uint32_t cap = s->m_cap ? s->m_cap * 2 : 64;
		struct sl__mark *v = malloc((size_t)cap * sizeof(*v));
		if (!v)
			return -ENOMEM;
		for (uint32_t i = s->m_head; i != s->m_tail; i++)
			v[i & (cap - 1)] = s->marks[i & (s->m_cap - 1)];
		free(s->marks);
		s->marks = v;
		s->m_cap = cap;
	}
	s->marks[s->m_tail++ & (s->m_cap - 1)] = (struct sl__mark){x, seq};
	sl__advance(s);
	return 0;
}

/* Room for one more output in the ack window. */
static int sl__ack_room(struct sl_pipe_stage *s)
{
	uint64_t cap = s->ack_mask + 1;
	if (s->out_seq - s->acked_lo < cap)
		return 0;
	uint64_t ncap = cap * 2;
	uint8_t *v = calloc(ncap, 1);
	if (!v)
		return -ENOMEM;
	for (uint64_t q = s->acked_lo; q < s->out_seq; q++)
		v[q & (ncap - 1)] = s->ack[q & s->ack_mask];
	free(s->ack);
	s->ack = v;
	s->ack_mask = ncap - 1;
	return 0;
}

void sl_pipe_stage_acked(struct sl_pipe_stage *s, uint64_t seq)
{
	if (seq < s->acked_lo || seq >= s->out_seq)
		return; /* not in flight: nothing to learn */
	s->ack[seq & s->ack_mask] = 1;
	while (s->acked_lo < s->out_seq && s->ack[s->acked_lo & s->ack_mask])
		s->acked_lo++;
	sl__advance(s);
}

/* ---- the chain ------------------------------------------------------------------ */

static int sl__send(struct sl_pipe_stage *s, uint32_t topic, const uint8_t *ev, uint32_t len)
{
	if (sl__ack_room(s) < 0) {
		sl_pipe_stage_fail(s, "pipeline %s partition %u: out of memory", s->name,
		                   s->partition);
		return -ENOMEM;
	}
	uint64_t seq = s->out_seq++;
	s->ack[seq & s->ack_mask] = 0;
	int ret = s->out(s->out_arg, topic, ev, len, seq);
	if (ret < 0) {
		sl_pipe_stage_fail(s, "pipeline %s partition %u: output %" PRIu64 " refused: %s",
		                   s->name, s->partition, seq, sl_strerror(ret));
		return ret;
	}
	return 0;
}

/*
 * Runs transform `level` on ev[0..n) and sends on what it emitted: to the
 * `to` topic through the rest of the chain, to a named topic at once.
 * Outputs leave in a fixed order (this level's named ones as met, then
 * whatever the next level makes of the rest), so a rerun repeats it.
 */
static int sl__run(struct sl_pipe_stage *s, uint32_t level, const struct sl_plugin_event *ev,
                   uint32_t n)
{
	struct sl__level *L = &s->lv[level];
	const uint8_t *bytes;
	uint32_t len, nn = 0;
	size_t cur = 0;
	int topic, ret;

	sl_plugin_emitter_reset(&L->em);
	ret = L->plugin->ops.transform.process(L->inst->inst, ev, n, &L->em);
	if (ret < 0) {
		sl_pipe_stage_fail(
		    s, "pipeline %s partition %u: transform %u (%s) at offset %" PRIu64 ": %s",
		    s->name, s->partition, level + 1, L->plugin->info.name, ev[0].offset,
		    sl_strerror(ret));
		return -SL_EPLUGIN;
	}
	while (sl_plugin_emitter_next(&L->em, &cur, &topic, &bytes, &len) > 0) {
		if (topic == SL_PIPE_TOPIC_TO && level + 1 < s->n_lv) {
			if (nn == L->next_cap) {
				uint32_t cap = L->next_cap ? L->next_cap * 2 : 64;
				void *v = realloc(L->next, (size_t)cap * sizeof(*L->next));
				if (!v) {
					sl_pipe_stage_fail(s, "pipeline %s: out of memory",
					                   s->name);
					return -ENOMEM;
				}
				L->next = v;
				L->next_cap = cap;
			}
			/* n is 1 in a chain: the input's offset is known. */
			if (sl_plugin_event_fill(&L->next[nn], bytes, len, s->partition,
			                         ev[0].offset, ev[0].append_time_ms) < 0) {
				s->skipped++; /* the host encoded it: cannot happen */
				continue;
			}
			nn++;
			continue;
		}
		ret = sl__send(s, topic == SL_PIPE_TOPIC_TO ? s->to_topic : (uint32_t)topic, bytes,
		               len);
		if (ret < 0)
			return ret;
	}
	return nn ? sl__run(s, level + 1, L->next, nn) : 0;
}

/* Runs the chain on the gathered batch and marks the position after it. */
static int sl__flush(struct sl_pipe_stage *s)
{
	int ret = 0;

	if (!s->seen)
		return 0;
	if (s->n_evs && s->n_lv == 1)
		ret = sl__run(s, 0, s->evs, s->n_evs);
	for (uint32_t i = 0; s->n_lv > 1 && i < s->n_evs && ret == 0; i++)
		ret = sl__run(s, 0, &s->evs[i], 1);
	if (ret < 0)
		return ret;
	s->next = s->last_seen + 1;
	if (sl__mark(s, s->next, s->out_seq) < 0) {
		sl_pipe_stage_fail(s, "pipeline %s: out of memory", s->name);
		return -ENOMEM;
	}
	s->n_evs = 0;
	s->arena_len = 0;
	s->seen = false;
	return 0;
}

static int sl__visit(void *arg, const struct sl_log_record *rec)
{
	struct sl_pipe_stage *s = arg;

	if (s->n_evs == s->batch || s->arena_len + rec->len > s->arena_cap) {
		if (sl__flush(s) < 0)
			return -1;
	}
	if (rec->len > s->arena_cap) {
		/* One event larger than the arena (which is empty now). */
		void *p = sl_grow(s->arena, &s->arena_cap, rec->len, SL__ARENA_BYTES);
		if (!p) {
			sl_pipe_stage_fail(s, "pipeline %s: out of memory", s->name);
			return -1;
		}
		s->arena = p;
	}
	s->seen = true;
	s->last_seen = rec->offset;
	uint8_t *copy = s->arena + s->arena_len;
	memcpy(copy, rec->event, rec->len);
	if (sl_plugin_event_fill(&s->evs[s->n_evs], copy, rec->len, s->partition, rec->offset,
	                         rec->append_time_ms) < 0) {
		/* Validated before it was stored: a log written by something
		 * else. Passed over (as the appliers do), never a reason to
		 * stop every later event. */
		s->skipped++;
		return 0;
	}
	s->arena_len += rec->len;
	s->n_evs++;
	return 0;
}

int sl_pipe_stage_step(struct sl_pipe_stage *s, uint64_t limit, uint32_t max_events,
                       uint32_t max_bytes, sl_pipe_out_fn out, void *arg)
{
	uint64_t next;
	int ret;

	if (s->failed)
		return -SL_EPLUGIN;
	if (s->next >= limit)
		return 0;
	s->out = out;
	s->out_arg = arg;
	s->n_evs = 0;
	s->arena_len = 0;
	s->seen = false;
	ret = sl_log_view_read(s->view, s->next, limit, max_events, max_bytes, sl__visit, s, &next);
	if (s->failed)
		return -SL_EPLUGIN;
	if (ret < 0) {
		sl_pipe_stage_fail(s, "pipeline %s partition %u: reading the input: %s", s->name,
		                   s->partition, sl_log_view_strerror(s->view, ret));
		return ret;
	}
	if (sl__flush(s) < 0)
		return -SL_EPLUGIN;
	return ret;
}

/* ---- open, close, getters --------------------------------------------------------- */

int sl_pipe_stage_open(const struct sl_pipe_stage_opts *o, struct sl_pipe_stage **out, char *err,
                       size_t errlen)
{
	struct sl_pipe_stage *s;
	char dir[4096];
	int ret = -ENOMEM;

	*out = NULL;
	if (!o->n_transforms) {
		sl_errf(err, errlen, "pipeline %s: no transforms", o->name);
		return -EINVAL;
	}
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->dirfd = -1;
	s->partition = o->partition;
	s->to_topic = o->to_topic;
	s->batch = SL_PIPE_BATCH;
	s->name = strdup(o->name);
	s->lv = calloc(o->n_transforms, sizeof(*s->lv));
	s->evs = calloc(s->batch, sizeof(*s->evs));
	s->arena = malloc(SL__ARENA_BYTES);
	s->arena_cap = SL__ARENA_BYTES;
	s->ack = calloc(1024, 1);
	s->ack_mask = 1023;
	if (!s->name || !s->lv || !s->evs || !s->arena || !s->ack)
		goto out;
	s->n_lv = o->n_transforms;
	for (uint32_t i = 0; i < o->n_transforms; i++) {
		struct sl__level *L = &s->lv[i];
		struct sl_plugin_inst_opts io = {
		    .name = o->name,
		    .topic = o->from,
		    .partition = o->partition,
		    .n_partitions = o->n_partitions,
		    .args = o->args ? o->args[i] : NULL,
		};
		L->plugin = o->plugins[i];
		if (L->plugin->kind != SL_PLUGIN_TRANSFORM) {
			sl_errf(err, errlen, "pipeline %s: plugin %s is a %s, not a transform",
			        o->name, L->plugin->name, sl_plugin_kind_name(L->plugin->kind));
			ret = -SL_EPLUGIN;
			goto out;
		}
		L->em.resolve = o->resolve;
		L->em.resolve_arg = o->resolve_arg;
		L->em.default_topic = SL_PIPE_TOPIC_TO;
		/* Derived ids differ between pipelines and between the
		 * transforms of a chain, and are the same on every rerun. */
		L->em.id_seed = XXH3_64bits_withSeed(o->name, strlen(o->name), i);
		char why[400];
		if ((ret = sl_plugin_inst_create(L->plugin, &io, &L->inst, why, sizeof(why))) < 0) {
			sl_errf(err, errlen, "pipeline %s partition %u: transform %u: %s", o->name,
			        o->partition, i + 1, why);
			goto out;
		}
	}
	if ((ret = sl_log_view_open(o->log_dir, &s->view)) < 0) {
		sl_errf(err, errlen, "pipeline %s: %s: cannot open the log: %s", o->name,
		        o->log_dir, sl_strerror(ret));
		goto out;
	}
	sl_log_view_follow_cuts(s->view, o->log_cuts);
	sl_log_view_follow_start(s->view, o->log_start, false);
	if (snprintf(dir, sizeof(dir), "%s/pipelines/%s", o->data_dir, o->name) >=
	    (int)sizeof(dir)) {
		sl_errf(err, errlen, "pipeline %s: data_dir path too long", o->name);
		ret = -ENAMETOOLONG;
		goto out;
	}
	if ((ret = sl_mkdirs(dir)) < 0 ||
	    (s->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) {
		ret = ret < 0 ? ret : -errno;
		sl_errf(err, errlen, "pipeline %s: %s: %s", o->name, dir, strerror(-ret));
		goto out;
	}
	snprintf(s->file, sizeof(s->file), "%u", o->partition);
	sl__load(s);
	s->saved = s->wm;
	s->next = s->wm.x;
	s->out_seq = s->acked_lo = s->wm.s;
	ret = 0;
out:
	if (ret < 0) {
		sl_pipe_stage_close(s);
		return ret;
	}
	*out = s;
	return 0;
}

void sl_pipe_stage_close(struct sl_pipe_stage *s)
{
	if (!s)
		return;
	for (uint32_t i = 0; s->lv && i < s->n_lv; i++) {
		sl_plugin_inst_destroy(s->lv[i].inst);
		sl_plugin_emitter_release(&s->lv[i].em);
		free(s->lv[i].next);
	}
	sl_log_view_close(s->view);
	if (s->dirfd >= 0)
		close(s->dirfd);
	free(s->lv);
	free(s->evs);
	free(s->arena);
	free(s->ack);
	free(s->marks);
	free(s->name);
	free(s);
}

uint64_t sl_pipe_stage_next(const struct sl_pipe_stage *s)
{
	return s->next;
}

uint64_t sl_pipe_stage_out_seq(const struct sl_pipe_stage *s)
{
	return s->out_seq;
}

uint64_t sl_pipe_stage_acked_seq(const struct sl_pipe_stage *s)
{
	return s->acked_lo;
}

uint64_t sl_pipe_stage_unacked(const struct sl_pipe_stage *s)
{
	return s->out_seq - s->acked_lo;
}

void sl_pipe_stage_watermark(const struct sl_pipe_stage *s, uint64_t *x, uint64_t *seq)
{
	*x = s->wm.x;
	*seq = s->wm.s;
}

bool sl_pipe_stage_failed(const struct sl_pipe_stage *s)
{
	return s->failed;
}

const char *sl_pipe_stage_error(const struct sl_pipe_stage *s)
{
	return s->error;
}

/* ---- status and metrics ------------------------------------------------------------ */

const char *sl_pipe_state_name(uint32_t state)
{
	switch (state) {
	case SL_PIPE_RUNNING:
		return "running";
	case SL_PIPE_WAITING:
		return "waiting";
	case SL_PIPE_FAILED:
		return "failed";
	case SL_PIPE_REFUSED:
		return "refused";
	default:
		return "unknown";
	}
}

#define SL__LD(x) atomic_load_explicit(&(x), memory_order_relaxed)

static uint64_t sl__lag(const struct sl_pipe_part *pp)
{
	uint64_t end = atomic_load_explicit(&pp->part->durable_pub, memory_order_acquire);
	uint64_t next = atomic_load_explicit(&pp->next_pub, memory_order_acquire);
	return end > next ? end - next : 0;
}

static void sl__put_json_str(FILE *f, const char *s)
{
	fputc('"', f);
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\')
			fprintf(f, "\\%c", c);
		else if (c < 0x20)
			fprintf(f, "\\u%04x", c);
		else
			fputc(c, f);
	}
	fputc('"', f);
}

void sl_pipes_status_json(const struct sl_pipes *ps, FILE *out)
{
	fputc('[', out);
	for (uint32_t i = 0; ps && i < ps->n; i++) {
		const struct sl_pipe *pl = &ps->v[i];
		bool bound = atomic_load_explicit(&pl->bound_pub, memory_order_acquire);
		/* Pipeline and topic names are config names: [A-Za-z0-9._-]. */
		fprintf(out,
		        "%s{\"name\":\"%s\",\"from\":\"%s\",\"to\":\"%s\",\"state\":\"%s\","
		        "\"transforms\":[",
		        i ? "," : "", pl->name, bound ? pl->from->name : pl->from_name,
		        bound ? pl->to->name : pl->to_name,
		        bound ? "serving" : "waiting_for_topic");
		for (uint32_t t = 0; t < pl->n_plugins; t++)
			fprintf(out, "%s\"%s\"", t ? "," : "", pl->plugins[t]->name);
		fputs("],\"partitions\":[", out);
		for (uint32_t p = 0; bound && p < pl->n_parts; p++) {
			const struct sl_pipe_part *pp = &pl->parts[p];
			uint32_t state = atomic_load_explicit(&pp->state_pub, memory_order_acquire);
			fprintf(out,
			        "%s{\"partition\":%u,\"input_offset\":%" PRIu64 ",\"lag\":%" PRIu64
			        ",\"outputs\":%" PRIu64 ",\"outputs_durable\":%" PRIu64
			        ",\"state\":\"%s\"",
			        p ? "," : "", p,
			        atomic_load_explicit(&pp->next_pub, memory_order_acquire),
			        sl__lag(pp), SL__LD(pp->emitted_pub), SL__LD(pp->durable_pub),
			        sl_pipe_state_name(state));
			/* The error is final once the state says FAILED (the
			 * acquire above pairs with the owner's release). */
			if (state == SL_PIPE_FAILED && pp->st) {
				fputs(",\"error\":", out);
				sl__put_json_str(out, sl_pipe_stage_error(pp->st));
			}
			fputc('}', out);
		}
		fputs("]}", out);
	}
	fputc(']', out);
}

void sl_pipes_metrics(const struct sl_pipes *ps, FILE *out)
{
	static const struct {
		const char *name, *type, *help;
	} fam[] = {
	    {"sluice_pipeline_input_offset", "gauge",
	     "Next offset of the input partition the pipeline stage reads."},
	    {"sluice_pipeline_lag_events", "gauge",
	     "Durable input events the pipeline stage has not read yet."},
	    {"sluice_pipeline_outputs_total", "counter",
	     "Outputs the pipeline stage has sent (its next sequence; kept across restarts)."},
	    {"sluice_pipeline_outputs_durable_total", "counter",
	     "Outputs acknowledged as stored, or as duplicates of stored ones (a prefix)."},
	    {"sluice_pipeline_state", "gauge",
	     "0 running, 1 waiting (outputs unacked or pressure), 2 failed, 3 refused."},
	};

	if (!ps || !ps->n)
		return;
	for (size_t f = 0; f < SL_ARRAY_LEN(fam); f++) {
		fprintf(out, "# HELP %s %s\n# TYPE %s %s\n", fam[f].name, fam[f].help, fam[f].name,
		        fam[f].type);
		for (uint32_t i = 0; i < ps->n; i++) {
			const struct sl_pipe *pl = &ps->v[i];
			bool bound = atomic_load_explicit(&pl->bound_pub, memory_order_acquire);
			for (uint32_t p = 0; bound && p < pl->n_parts; p++) {
				const struct sl_pipe_part *pp = &pl->parts[p];
				uint64_t v;
				switch (f) {
				case 0:
					v = atomic_load_explicit(&pp->next_pub,
					                         memory_order_acquire);
					break;
				case 1:
					v = sl__lag(pp);
					break;
				case 2:
					v = SL__LD(pp->emitted_pub);
					break;
				case 3:
					v = SL__LD(pp->durable_pub);
					break;
				default:
					v = SL__LD(pp->state_pub);
					break;
				}
				fprintf(out, "%s{pipeline=\"%s\",partition=\"%u\"} %" PRIu64 "\n",
				        fam[f].name, pl->name, p, v);
			}
		}
	}
	fputs("# HELP sluice_pipeline_waiting_for_topic 1 while the pipeline waits for its from "
	      "or to topic to be created.\n# TYPE sluice_pipeline_waiting_for_topic gauge\n",
	      out);
	for (uint32_t i = 0; i < ps->n; i++) {
		const struct sl_pipe *pl = &ps->v[i];
		bool bound = atomic_load_explicit(&pl->bound_pub, memory_order_acquire);
		fprintf(out, "sluice_pipeline_waiting_for_topic{pipeline=\"%s\"} %d\n", pl->name,
		        !bound);
	}
}

struct sl_pipe_part *sl_pipes_nth(struct sl_pipes *ps, uint32_t k)
{
	for (uint32_t i = 0; ps && i < ps->n; i++) {
		struct sl_pipe *pl = &ps->v[i];
		if (!atomic_load_explicit(&pl->bound_pub, memory_order_acquire))
			continue;
		if (k < pl->n_parts)
			return &pl->parts[k];
		k -= pl->n_parts;
	}
	return NULL;
}

int sl_pipes_wait(struct sl_pipes *ps, bool (*done)(void *arg), void *arg, uint64_t timeout_ns)
{
	return sl_notify_wait(&ps->changed, done, arg, timeout_ns);
}
