/*
 * The sink runtime (see sink.h): a thread per sink, an instance, a log view
 * and a breaker per partition.
 */
#include "sink/sink.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/base.h"
#include "log/log.h"
#include "plugin/plugin.h"
#include "sink/breaker.h"

/* One write_batch call at most: 4,096 events or 1 MiB of their bytes (at
 * least one event, whatever its size). Large enough that a sink which
 * syncs per batch (jsonl: one fdatasync) spends its time writing, small
 * enough that a batch given again after a failure is cheap to hold. */
#define SL__BATCH_EVENTS 4096u
#define SL__BATCH_BYTES  (1u << 20)
/* How long an idle sink thread sleeps before looking at its partitions'
 * durable ends again: the sink's added latency when idle, and how soon a
 * stop is seen. Stop also broadcasts, so it is usually at once. */
#define SL__IDLE_NS (UINT64_C(5) * 1000000u)

/* One event of the batch being gathered: where its bytes sit in the arena.
 * Positions, not pointers: the arena may move while it grows. */
struct sl__rec {
	size_t pos;
	uint32_t len;
	uint64_t offset;
	int64_t append_time_ms;
};

struct sl__part {
	struct sl__sink *sink;
	struct sl_partition *part;
	struct sl_plugin_inst *inst;
	struct sl_log_view *view;
	uint32_t partition;
	bool refused; /* the partition has no log: nothing to serve */

	/* the sink thread's */
	uint64_t next; /* first offset not written */
	struct sl_breaker br;
	bool pending; /* evs[0..n_evs) wait to be written (again) */
	int read_err; /* the log view failed: the attempt is a failure */
	uint64_t batch_end;
	struct sl__rec *recs;
	uint32_t n_recs;
	struct sl_plugin_event *evs;
	uint32_t n_evs;
	uint8_t *arena;
	size_t arena_len, arena_cap;

	/* read by others (relaxed), but done_pub: release, for the owner
	 * reactor's lag bound (sl_partition_follow) */
	_Atomic uint64_t done_pub;
	_Atomic uint64_t events, batches, failures, skipped;
};

struct sl__sink {
	struct sl_sinks *set;
	char *name;
	struct sl_plugin *plugin;
	struct sl_topic *topic;
	struct sl__part *parts;
	uint32_t n_parts;
	uint32_t k;
	pthread_t thread;
	bool started; /* under the set's mu once the set runs */
	/* A sink of a topic that did not exist at create (sl_sinks_bind):
	 * topic, parts and n_parts are set before bound_pub (release); other
	 * threads read them after an acquire load that says bound. */
	char *waits_for;
	_Atomic bool bound_pub;
};

struct sl_sinks {
	struct sl__sink *v;
	uint32_t n;
	pthread_mutex_t mu;
	pthread_cond_t cv;        /* broadcast at stop; idle threads wait on it */
	struct sl_notify changed; /* every write attempt: sl_sinks_wait() */
	_Atomic bool stop;
	bool sync_ok;
	bool running; /* sl_sinks_start ran: a sink bound later starts at once (mu) */
};

/* ---- the sink thread ----------------------------------------------------------- */

static const char *sl__err_text(const struct sl__part *sp, int err)
{
	return sl_log_view_strerror(sp->view, err);
}

/* One line per breaker state change: enough to see an outage begin, be
 * probed and end, without a line per failed batch. */
static void sl__report(const struct sl__part *sp, enum sl_breaker_state from, int err)
{
	const struct sl__sink *sk = sp->sink;
	enum sl_breaker_state to = sl_breaker_state(&sp->br);
	uint64_t ms = sl_breaker_cooldown(&sp->br) / 1000000u;

	if (to == SL_BREAKER_OPEN && from == SL_BREAKER_CLOSED)
		fprintf(stderr,
		        "sluiced: sink %s partition %u: circuit open after %u failures: %s "
		        "(next try in %" PRIu64 " ms)\n",
		        sk->name, sp->partition, sk->k, sl__err_text(sp, err), ms);
	else if (to == SL_BREAKER_OPEN)
		fprintf(stderr,
		        "sluiced: sink %s partition %u: circuit open again, the probe failed: %s "
		        "(next try in %" PRIu64 " ms)\n",
		        sk->name, sp->partition, sl__err_text(sp, err), ms);
	else if (to == SL_BREAKER_HALF_OPEN)
		fprintf(stderr, "sluiced: sink %s partition %u: circuit half-open: probing\n",
		        sk->name, sp->partition);
	else
		fprintf(stderr,
		        "sluiced: sink %s partition %u: circuit closed: writing again at offset "
		        "%" PRIu64 "\n",
		        sk->name, sp->partition, sp->next);
}

static int sl__visit(void *arg, const struct sl_log_record *rec)
{
	struct sl__part *sp = arg;

	if (sp->arena_len + rec->len > sp->arena_cap) {
		void *p =
		    sl_grow(sp->arena, &sp->arena_cap, sp->arena_len + rec->len, SL__BATCH_BYTES);
		if (!p) {
			sp->read_err = -ENOMEM;
			return -1; /* not counted: read again next time */
		}
		sp->arena = p;
	}
	memcpy(sp->arena + sp->arena_len, rec->event, rec->len);
	sp->recs[sp->n_recs++] = (struct sl__rec){
	    .pos = sp->arena_len,
	    .len = rec->len,
	    .offset = rec->offset,
	    .append_time_ms = rec->append_time_ms,
	};
	sp->arena_len += rec->len;
	return 0;
}

static void sl__publish(struct sl__part *sp, uint64_t next)
{
	sp->next = next;
	/* Release: the owner reactor's acquire load sees the new position
	 * only after the outside world holds everything below it. */
	atomic_store_explicit(&sp->done_pub, next, memory_order_release);
}

/* Gathers the next batch below the durable end. 1: a batch is pending;
 * 0: nothing new (or only events that do not decode, now passed); < 0: the
 * log could not be read (sp->read_err). */
static int sl__gather(struct sl__part *sp, uint64_t limit)
{
	uint64_t end = sp->next;
	int ret;

	sp->n_recs = 0;
	sp->n_evs = 0;
	sp->arena_len = 0;
	sp->read_err = 0;
	ret = sl_log_view_read(sp->view, sp->next, limit, SL__BATCH_EVENTS, SL__BATCH_BYTES,
	                       sl__visit, sp, &end);
	if (ret < 0 || (sp->read_err && !sp->n_recs)) {
		sp->read_err = ret < 0 ? ret : sp->read_err;
		return sp->read_err;
	}
	if (!sp->n_recs)
		return 0;
	/* Out of memory after some events: write those, read on later. */
	sp->read_err = 0;
	sp->batch_end = sp->recs[sp->n_recs - 1].offset + 1;
	for (uint32_t i = 0; i < sp->n_recs; i++) {
		const struct sl__rec *r = &sp->recs[i];
		if (sl_plugin_event_fill(&sp->evs[sp->n_evs], sp->arena + r->pos, r->len,
		                         sp->partition, r->offset, r->append_time_ms) < 0) {
			/* Stored events are validated before they are stored:
			 * this is a log written by something else. Counted and
			 * passed over, so one bad event never stops a sink. */
			atomic_fetch_add_explicit(&sp->skipped, 1, memory_order_relaxed);
			continue;
		}
		sp->n_evs++;
	}
	if (!sp->n_evs) {
		sl__publish(sp, sp->batch_end);
		return 0;
	}
	sp->pending = true;
	return 1;
}

/* One attempt on one partition. Returns 1 when it wrote something (the
 * thread goes straight on), 0 otherwise (idle, held back by the breaker,
 * or failed: the thread may rest before the next turn). */
static int sl__step(struct sl__part *sp)
{
	const struct sl_sink_ops *ops = &sp->sink->plugin->ops.sink;
	uint64_t now = sl_now_ns();
	enum sl_breaker_state before;
	int ret;

	if (sp->refused)
		return 0;
	if (!sp->pending && !sp->read_err) {
		uint64_t limit = atomic_load_explicit(&sp->part->durable_pub, memory_order_acquire);
		if (sp->next >= limit)
			return 0;
		/* Open and cooling down: not even a read until the probe may
		 * go (a peek at the owner's own breaker, nothing consumed). */
		if (sl_breaker_state(&sp->br) == SL_BREAKER_OPEN &&
		    now < sl_breaker_retry_at(&sp->br))
			return 0;
		ret = sl__gather(sp, limit);
		if (ret == 0)
			return 0;
	}
	/* allow() and record() always pair within this call, so a half-open
	 * breaker's probe is never left without its result. */
	before = sl_breaker_state(&sp->br);
	if (!sl_breaker_allow(&sp->br, now))
		return 0;
	if (sl_breaker_state(&sp->br) != before)
		sl__report(sp, before, 0);
	before = sl_breaker_state(&sp->br);
	if (sp->read_err) {
		ret = sp->read_err;
		sp->read_err = 0; /* read again at the next attempt */
	} else {
		ret = ops->write_batch(sp->inst->inst, sp->partition, sp->evs[0].offset, sp->evs,
		                       sp->n_evs);
		if (ret > 0)
			ret = 0;
	}
	if (ret < 0) {
		atomic_fetch_add_explicit(&sp->failures, 1, memory_order_relaxed);
		if (sl_breaker_record(&sp->br, false, sl_now_ns()))
			sl__report(sp, before, ret);
		sl_notify_signal(&sp->sink->set->changed);
		return 0;
	}
	atomic_fetch_add_explicit(&sp->events, sp->n_evs, memory_order_relaxed);
	atomic_fetch_add_explicit(&sp->batches, 1, memory_order_relaxed);
	sp->pending = false;
	sl__publish(sp, sp->batch_end);
	if (sl_breaker_record(&sp->br, true, sl_now_ns()))
		sl__report(sp, before, 0);
	sl_notify_signal(&sp->sink->set->changed);
	return 1;
}

static bool sl__stopping(const struct sl_sinks *s)
{
	return atomic_load_explicit(&s->stop, memory_order_acquire);
}

static void *sl__main(void *arg)
{
	struct sl__sink *sk = arg;
	struct sl_sinks *s = sk->set;
	char tname[16];

	/* The kernel keeps 15 characters: "sl-sink-" and the first 7 of the
	 * name, enough to tell sinks apart in top. */
	snprintf(tname, sizeof(tname), "sl-sink-%s", sk->name);
	pthread_setname_np(pthread_self(), tname);
	while (!sl__stopping(s)) {
		bool busy = false;
		for (uint32_t p = 0; p < sk->n_parts && !sl__stopping(s); p++)
			busy |= sl__step(&sk->parts[p]) > 0;
		if (busy)
			continue;
		struct timespec ts;
		clock_gettime(CLOCK_MONOTONIC, &ts);
		uint64_t at =
		    (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec + SL__IDLE_NS;
		ts.tv_sec = (time_t)(at / 1000000000u);
		ts.tv_nsec = (long)(at % 1000000000u);
		pthread_mutex_lock(&s->mu);
		if (!sl__stopping(s))
			pthread_cond_timedwait(&s->cv, &s->mu, &ts);
		pthread_mutex_unlock(&s->mu);
	}
	return NULL;
}

/* ---- create, start, stop, destroy ------------------------------------------------ */

static void sl__part_free(struct sl__part *sp)
{
	sl_plugin_inst_destroy(sp->inst);
	sl_log_view_close(sp->view);
	free(sp->recs);
	free(sp->evs);
	free(sp->arena);
}

static int sl__part_open(struct sl__sink *sk, const struct sl_sink_spec *spec, uint32_t p,
                         char *err, size_t errlen)
{
	struct sl__part *sp = &sk->parts[p];
	char why[512] = "";
	uint64_t next = 0;
	int ret;

	sp->sink = sk;
	sp->part = &sk->topic->parts[p];
	sp->partition = p;
	sl_breaker_init(&sp->br, sk->k,
	                spec->circuit_cooldown_ns ? spec->circuit_cooldown_ns
	                                          : SL_SINK_CIRCUIT_COOLDOWN_NS);
	if (!sp->part->log) {
		/* Refused at open (corruption): served by nothing until the
		 * operator repairs it; the sink says so in its status. */
		sp->refused = true;
		return 0;
	}
	sp->recs = calloc(SL__BATCH_EVENTS, sizeof(*sp->recs));
	sp->evs = calloc(SL__BATCH_EVENTS, sizeof(*sp->evs));
	if (!sp->recs || !sp->evs) {
		sl_errf(err, errlen, "sink %s: out of memory", sk->name);
		return -ENOMEM;
	}
	if ((ret = sl_log_view_open(sp->part->dir, &sp->view)) < 0) {
		sl_errf(err, errlen, "sink %s partition %u: cannot open the log %s: %s", sk->name,
		        p, sp->part->dir, sl_strerror(ret));
		return ret;
	}
	sl_log_view_follow_cuts(sp->view, &sp->part->cuts);
	sl_log_view_follow_start(sp->view, &sp->part->start_pub, false);
	struct sl_plugin_inst_opts io = {
	    .name = sk->name,
	    .topic = sk->topic->name,
	    .partition = p,
	    .n_partitions = sk->topic->n_parts,
	    .args = spec->args,
	};
	if ((ret = sl_plugin_inst_create(sk->plugin, &io, &sp->inst, why, sizeof(why))) < 0) {
		sl_errf(err, errlen, "sink %s partition %u: %s", sk->name, p, why);
		return ret;
	}
	/* Where the outside world stands. Asked here, not in the thread: a
	 * sink that cannot say (its file is someone else's, say) is a start-up
	 * error with its reason, like any other bad config. */
	if ((ret = sk->plugin->ops.sink.resume_offset(sp->inst->inst, &next)) < 0) {
		sl_errf(err, errlen,
		        "sink %s partition %u: plugin %s cannot say where to resume: %s", sk->name,
		        p, sk->plugin->info.name, sl_strerror(ret));
		return ret;
	}
	uint64_t durable = atomic_load_explicit(&sp->part->durable_pub, memory_order_acquire);
	if (next > durable)
		fprintf(
		    stderr,
		    "sluiced: sink %s partition %u: the outside world holds offsets up to %" PRIu64
		    " but the log ends at %" PRIu64 "; writing resumes at %" PRIu64
		    " (was the data folder replaced?)\n",
		    sk->name, p, next - 1, durable, next);
	sp->next = next;
	atomic_init(&sp->done_pub, next);
	return 0;
}

/* An instance per partition of sk->topic. */
static int sl__parts_open(struct sl__sink *sk, const struct sl_sink_spec *spec, char *err,
                          size_t errlen)
{
	sk->parts = calloc(sk->topic->n_parts, sizeof(*sk->parts));
	if (!sk->parts) {
		sl_errf(err, errlen, "sink %s: out of memory", sk->name);
		return -ENOMEM;
	}
	sk->n_parts = sk->topic->n_parts;
	for (uint32_t p = 0; p < sk->n_parts; p++) {
		int ret = sl__part_open(sk, spec, p, err, errlen);
		if (ret < 0)
			return ret;
	}
	return 0;
}

/* Registers each instance's done_pub with its partition. Last, once
 * nothing else can fail but memory: a partition must never keep a
 * pointer into a set that was freed. */
static int sl__follow(struct sl__sink *sk, char *err, size_t errlen)
{
	for (uint32_t p = 0; p < sk->n_parts; p++) {
		struct sl__part *sp = &sk->parts[p];
		if (sp->refused)
			continue;
		if (sl_partition_follow(sp->part, &sp->done_pub, "sink", sk->name) < 0) {
			/* Registered pointers cannot be taken back: the caller
			 * destroys the topics without serving them. */
			sl_errf(err, errlen, "sink %s: out of memory", sk->name);
			return -ENOMEM;
		}
	}
	return 0;
}

int sl_sinks_create(const struct sl_sink_spec *specs, uint32_t n, struct sl_topics *topics,
                    const char *const *plugin_path, size_t n_plugin_path, struct sl_sinks **out,
                    char *err, size_t errlen)
{
	struct sl_sinks *s;
	int ret = -ENOMEM;

	*out = NULL;
	s = calloc(1, sizeof(*s));
	if (!s)
		goto oom;
	atomic_init(&s->stop, false);
	pthread_condattr_t ca;
	if (pthread_condattr_init(&ca))
		goto oom;
	/* The idle wait's deadline is on the monotonic clock, like every
	 * other time in the engine: a wall-clock step cannot stall a sink. */
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	ret = pthread_cond_init(&s->cv, &ca);
	pthread_condattr_destroy(&ca);
	if (!ret && (ret = -sl_notify_init(&s->changed)))
		pthread_cond_destroy(&s->cv);
	if (ret) {
		ret = -ret;
		free(s);
		sl_errf(err, errlen, "sinks: %s", sl_strerror(ret));
		return ret;
	}
	pthread_mutex_init(&s->mu, NULL);
	s->sync_ok = true;
	if (n && !(s->v = calloc(n, sizeof(*s->v))))
		goto oom;
	for (uint32_t i = 0; i < n; i++) {
		const struct sl_sink_spec *sp = &specs[i];
		struct sl__sink *sk = &s->v[i];
		char lerr[512];

		s->n = i + 1;
		sk->set = s;
		if (sp->topic == SL_SINK_TOPIC_LATER ? !sp->topic_name : sp->topic >= topics->n) {
			sl_errf(err, errlen, "sink %s: no topic %u", sp->name, sp->topic);
			ret = -EINVAL;
			goto fail;
		}
		sk->topic = sp->topic != SL_SINK_TOPIC_LATER
		                ? &topics->v[sp->topic]
		                : sl_topics_find(topics, sp->topic_name, strlen(sp->topic_name));
		sk->k = sp->circuit_failures ? sp->circuit_failures : SL_SINK_CIRCUIT_FAILURES;
		if (!(sk->name = strdup(sp->name)))
			goto oom;
		/* The plugin now, waiting or not: a bad one stops the start. */
		ret = sl_plugin_load(plugin_path, n_plugin_path, sp->plugin, SL_PLUGIN_SINK,
		                     &sk->plugin, lerr, sizeof(lerr));
		if (ret < 0) {
			sl_errf(err, errlen, "sink %s: %s", sp->name, lerr);
			goto fail;
		}
		if (!sk->topic) {
			if (!(sk->waits_for = strdup(sp->topic_name)))
				goto oom;
			continue;
		}
		if ((ret = sl__parts_open(sk, sp, err, errlen)) < 0)
			goto fail;
		atomic_store_explicit(&sk->bound_pub, true, memory_order_relaxed);
	}
	for (uint32_t i = 0; i < s->n; i++)
		if ((ret = sl__follow(&s->v[i], err, errlen)) < 0)
			goto fail;
	*out = s;
	return 0;
oom:
	ret = -ENOMEM;
	sl_errf(err, errlen, "sinks: out of memory");
fail:
	sl_sinks_destroy(s);
	return ret;
}

int sl_sinks_start(struct sl_sinks *s)
{
	if (!s)
		return 0;
	pthread_mutex_lock(&s->mu);
	s->running = true;
	pthread_mutex_unlock(&s->mu);
	for (uint32_t i = 0; i < s->n; i++) {
		if (!atomic_load_explicit(&s->v[i].bound_pub, memory_order_relaxed))
			continue; /* started by sl_sinks_bind */
		pthread_mutex_lock(&s->mu);
		int ret = pthread_create(&s->v[i].thread, NULL, sl__main, &s->v[i]);
		s->v[i].started = ret == 0;
		pthread_mutex_unlock(&s->mu);
		if (ret) {
			sl_sinks_stop(s);
			return -ret;
		}
	}
	return 0;
}

int sl_sinks_bind(struct sl_sinks *s, uint32_t i, const struct sl_sink_spec *spec,
                  struct sl_topic *topic, char *err, size_t errlen)
{
	struct sl__sink *sk;
	int ret;

	if (!s || i >= s->n || !(sk = &s->v[i])->waits_for || sk->topic)
		return -EINVAL;
	sk->topic = topic;
	if ((ret = sl__parts_open(sk, spec, err, errlen)) < 0 ||
	    (ret = sl__follow(sk, err, errlen)) < 0)
		return ret;
	atomic_store_explicit(&sk->bound_pub, true, memory_order_release);
	/* Under mu: a stop that came first sees no thread to join, one that
	 * comes after joins this one. */
	pthread_mutex_lock(&s->mu);
	ret = 0;
	if (s->running && !sl__stopping(s)) {
		ret = -pthread_create(&sk->thread, NULL, sl__main, sk);
		sk->started = ret == 0;
	}
	pthread_mutex_unlock(&s->mu);
	if (ret < 0)
		sl_errf(err, errlen, "sink %s: cannot start its thread: %s", sk->name,
		        sl_strerror(ret));
	return ret;
}

const char *sl_sinks_waits_for(const struct sl_sinks *s, uint32_t i)
{
	if (!s || i >= s->n || atomic_load_explicit(&s->v[i].bound_pub, memory_order_acquire))
		return NULL;
	return s->v[i].waits_for;
}

const char *sl_sinks_topic(const struct sl_sinks *s, uint32_t i)
{
	if (!s || i >= s->n)
		return NULL;
	if (!atomic_load_explicit(&s->v[i].bound_pub, memory_order_acquire))
		return s->v[i].waits_for;
	return s->v[i].topic->name;
}

const char *sl_sinks_name(const struct sl_sinks *s, uint32_t i)
{
	return s && i < s->n ? s->v[i].name : NULL;
}

void sl_sinks_stop(struct sl_sinks *s)
{
	if (!s || !s->sync_ok)
		return;
	pthread_mutex_lock(&s->mu);
	atomic_store_explicit(&s->stop, true, memory_order_release);
	pthread_cond_broadcast(&s->cv);
	pthread_mutex_unlock(&s->mu);
	/* No sl_sinks_bind starts a thread from here (stop is set). */
	for (uint32_t i = 0; i < s->n; i++) {
		pthread_mutex_lock(&s->mu);
		bool started = s->v[i].started;
		s->v[i].started = false;
		pthread_mutex_unlock(&s->mu);
		if (started)
			pthread_join(s->v[i].thread, NULL);
	}
}

void sl_sinks_destroy(struct sl_sinks *s)
{
	if (!s)
		return;
	sl_sinks_stop(s);
	for (uint32_t i = 0; i < s->n; i++) {
		struct sl__sink *sk = &s->v[i];
		for (uint32_t p = 0; sk->parts && p < sk->n_parts; p++)
			sl__part_free(&sk->parts[p]);
		free(sk->parts);
		/* Instances first: the plugin's code must outlive them. */
		sl_plugin_unload(sk->plugin);
		free(sk->name);
		free(sk->waits_for);
	}
	free(s->v);
	if (s->sync_ok) {
		pthread_mutex_destroy(&s->mu);
		pthread_cond_destroy(&s->cv);
		sl_notify_destroy(&s->changed);
	}
	free(s);
}

/* ---- reading the counters ---------------------------------------------------------- */

uint32_t sl_sinks_count(const struct sl_sinks *s)
{
	return s ? s->n : 0;
}

/* Partitions of a sink that is bound (acquire), 0 while it waits. */
static uint32_t sl__bound_parts(const struct sl__sink *sk)
{
	return atomic_load_explicit(&sk->bound_pub, memory_order_acquire) ? sk->n_parts : 0;
}

static uint64_t sl__ld(const _Atomic uint64_t *v)
{
	return atomic_load_explicit(v, memory_order_relaxed);
}

static uint64_t sl__lag(const struct sl__part *sp)
{
	uint64_t durable = atomic_load_explicit(&sp->part->durable_pub, memory_order_relaxed);
	uint64_t done = sl__ld(&sp->done_pub);
	return durable > done ? durable - done : 0;
}

int sl_sinks_part_stats(const struct sl_sinks *s, uint32_t sink, uint32_t partition,
                        struct sl_sink_part_stats *out)
{
	struct sl_breaker_stats bs;

	if (!s || sink >= s->n ||
	    !atomic_load_explicit(&s->v[sink].bound_pub, memory_order_acquire) ||
	    partition >= s->v[sink].n_parts)
		return -ENOENT;
	const struct sl__part *sp = &s->v[sink].parts[partition];
	sl_breaker_get_stats(&sp->br, &bs);
	*out = (struct sl_sink_part_stats){
	    .done = sl__ld(&sp->done_pub),
	    .events = sl__ld(&sp->events),
	    .batches = sl__ld(&sp->batches),
	    .failures = sl__ld(&sp->failures),
	    .skipped = sl__ld(&sp->skipped),
	    .circuit = sl_breaker_state(&sp->br),
	    .to_open = bs.to_open,
	    .to_half_open = bs.to_half_open,
	    .to_closed = bs.to_closed,
	};
	return 0;
}

/* Names are config names (a safe alphabet), but a label value or a JSON
 * string must hold whatever it is given. */
static void sl__put_escaped(FILE *out, const char *v)
{
	for (const unsigned char *p = (const unsigned char *)v; *p; p++) {
		if (*p == '"' || *p == '\\')
			fprintf(out, "\\%c", *p);
		else if (*p == '\n')
			fputs("\\n", out);
		else if (*p < 0x20)
			fprintf(out, "\\u%04x", *p);
		else
			fputc(*p, out);
	}
}

static void sl__labels(FILE *out, const struct sl__sink *sk, uint32_t p)
{
	fputs("{sink=\"", out);
	sl__put_escaped(out, sk->name);
	fprintf(out, "\",partition=\"%u\"", p);
}

enum sl__metric { SL__M_EVENTS, SL__M_LAG, SL__M_FAILURES, SL__M_STATE, SL__M_N };

void sl_sinks_metrics(const struct sl_sinks *s, FILE *out)
{
	static const struct {
		const char *name, *type, *help;
	} fam[SL__M_N] = {
	    [SL__M_EVENTS] = {"sluice_sink_events_total", "counter",
	                      "Events a sink wrote to the outside world."},
	    [SL__M_LAG] = {"sluice_sink_lag_events", "gauge",
	                   "Durable events of the partition the sink has not written yet."},
	    [SL__M_FAILURES] = {"sluice_sink_failures_total", "counter",
	                        "Failed sink attempts (write_batch errors, log read errors)."},
	    [SL__M_STATE] = {"sluice_sink_circuit_state", "gauge",
	                     "The partition's circuit breaker: 0 closed, 1 open, 2 half-open."},
	};

	if (!s || !s->n)
		return;
	for (int m = 0; m < SL__M_N; m++) {
		fprintf(out, "# HELP %s %s\n# TYPE %s %s\n", fam[m].name, fam[m].help, fam[m].name,
		        fam[m].type);
		for (uint32_t i = 0; i < s->n; i++)
			for (uint32_t p = 0; p < sl__bound_parts(&s->v[i]); p++) {
				const struct sl__part *sp = &s->v[i].parts[p];
				uint64_t v;
				if (sp->refused)
					continue;
				switch (m) {
				case SL__M_EVENTS:
					v = sl__ld(&sp->events);
					break;
				case SL__M_LAG:
					v = sl__lag(sp);
					break;
				case SL__M_FAILURES:
					v = sl__ld(&sp->failures);
					break;
				default:
					v = sl_breaker_state(&sp->br);
					break;
				}
				fputs(fam[m].name, out);
				sl__labels(out, &s->v[i], p);
				fprintf(out, "} %" PRIu64 "\n", v);
			}
	}
	fputs("# HELP sluice_sink_circuit_transitions_total Circuit breaker state changes, by the "
	      "state entered.\n# TYPE sluice_sink_circuit_transitions_total counter\n",
	      out);
	for (uint32_t i = 0; i < s->n; i++)
		for (uint32_t p = 0; p < sl__bound_parts(&s->v[i]); p++) {
			const struct sl__part *sp = &s->v[i].parts[p];
			struct sl_breaker_stats bs;
			if (sp->refused)
				continue;
			sl_breaker_get_stats(&sp->br, &bs);
			const uint64_t vals[3] = {bs.to_open, bs.to_half_open, bs.to_closed};
			static const char *const to[3] = {"open", "half_open", "closed"};
			for (int t = 0; t < 3; t++) {
				fputs("sluice_sink_circuit_transitions_total", out);
				sl__labels(out, &s->v[i], p);
				fprintf(out, ",to=\"%s\"} %" PRIu64 "\n", to[t], vals[t]);
			}
		}
	fputs("# HELP sluice_sink_waiting_for_topic 1 while the sink waits for its topic to be "
	      "created.\n# TYPE sluice_sink_waiting_for_topic gauge\n",
	      out);
	for (uint32_t i = 0; i < s->n; i++) {
		fputs("sluice_sink_waiting_for_topic{sink=\"", out);
		sl__put_escaped(out, s->v[i].name);
		fputs("\",topic=\"", out);
		sl__put_escaped(out, sl_sinks_topic(s, i));
		fprintf(out, "\"} %d\n", sl_sinks_waits_for(s, i) != NULL);
	}
}

void sl_sinks_status_json(const struct sl_sinks *s, FILE *out)
{
	fputc('[', out);
	for (uint32_t i = 0; s && i < s->n; i++) {
		const struct sl__sink *sk = &s->v[i];
		fputs(i ? ",{\"name\":\"" : "{\"name\":\"", out);
		sl__put_escaped(out, sk->name);
		fputs("\",\"plugin\":\"", out);
		sl__put_escaped(out, sk->plugin->name);
		fputs("\",\"topic\":\"", out);
		sl__put_escaped(out, sl_sinks_topic(s, i));
		fputs(sl_sinks_waits_for(s, i) ? "\",\"state\":\"waiting_for_topic\""
		                               : "\",\"state\":\"serving\"",
		      out);
		fputs(",\"partitions\":[", out);
		for (uint32_t p = 0; p < sl__bound_parts(sk); p++) {
			const struct sl__part *sp = &sk->parts[p];
			fprintf(
			    out,
			    "%s{\"partition\":%u,\"done\":%" PRIu64 ",\"lag\":%" PRIu64
			    ",\"events\":%" PRIu64 ",\"failures\":%" PRIu64 ",\"circuit\":\"%s\"}",
			    p ? "," : "", p, sl__ld(&sp->done_pub), sp->refused ? 0 : sl__lag(sp),
			    sl__ld(&sp->events), sl__ld(&sp->failures),
			    sp->refused ? "refused"
			                : sl_breaker_state_name(sl_breaker_state(&sp->br)));
		}
		fputs("]}", out);
	}
	fputc(']', out);
}

int sl_sinks_wait(struct sl_sinks *s, bool (*done)(void *arg), void *arg, uint64_t timeout_ns)
{
	return sl_notify_wait(&s->changed, done, arg, timeout_ns);
}
