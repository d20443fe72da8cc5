/*
 * sink: the sink runtime — the threads that copy each configured sink's
 * topic to the outside world through its plugin, exactly once, behind a
 * circuit breaker per partition.
 *
 * One thread per sink config entry ("sl-sink-NAME"), serving one plugin
 * instance per partition of the sink's `from` topic, round robin, one batch
 * (up to 4,096 events / 1 MiB) per partition per turn. Each instance starts
 * at the plugin's resume_offset (asked at create: the outside world says
 * where it stands), reads its partition's log through its own sl_log_view up
 * to the partition's `durable_pub` (acquire) — a sink never sees an event a
 * crash could take back — and calls write_batch. On success it moves on and
 * publishes `done_pub` (release), which the partition's owner reactor reads
 * to bound the sink's lag (sl_partition_follow, registered at create: a slow
 * or failing sink throttles producers under the topic's `block` policy). On
 * failure the same batch is given again when the partition's breaker
 * (sink/breaker.h) allows; every state change is one line on stderr. A
 * failing partition never holds up the others of the same sink beyond the
 * time of its own attempts.
 *
 * Writes are at least once into the plugin and exactly once outside: after
 * a crash, resume_offset may be below what was written (the plugin made it
 * durable but the host never heard), and write_batch skips what it holds
 * (the ABI's contract, sluice/plugin.h).
 *
 * Ownership: sl_sinks_create returns a set the caller frees with
 * sl_sinks_destroy, after the topics' reactors have stopped using the
 * registered `done_pub` pointers (they live in the set) or at least after
 * sl_sinks_stop. The set keeps pointers to the topics' partitions: the
 * topics must outlive sl_sinks_stop.
 * Threads: create, start, stop, destroy from one control thread (stop is
 * idempotent); bind from the server's admin calls; sl_sinks_metrics and sl_sinks_status_json from
 * any thread while the set exists (they read atomics only).
 */
#ifndef SL_SINK_H
#define SL_SINK_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "topic/topic.h"

struct sl_config_node;

/* Defaults of a sink entry's `circuit:` (config/config.h). */
#define SL_SINK_CIRCUIT_FAILURES    5u
#define SL_SINK_CIRCUIT_COOLDOWN_NS (UINT64_C(1000000000))

/* A spec's topic index meaning "the topic named topic_name, when there is one". */
#define SL_SINK_TOPIC_LATER UINT32_MAX

/* One sink to run: plugin NAME.so fed by one topic. */
struct sl_sink_spec {
	const char *name;
	const char *plugin;
	uint32_t topic;                    /* index into the topics, or SL_SINK_TOPIC_LATER */
	const char *topic_name;            /* (needed with SL_SINK_TOPIC_LATER) */
	const struct sl_config_node *args; /* the entry's args map, or NULL */
	uint32_t circuit_failures;         /* 0: SL_SINK_CIRCUIT_FAILURES */
	uint64_t circuit_cooldown_ns;      /* 0: SL_SINK_CIRCUIT_COOLDOWN_NS */
};

struct sl_sinks;

/*
 * Loads each sink's plugin (refusing one that is not a sink plugin, with an
 * error naming the sink), creates one instance per partition of its topic,
 * asks each where the outside world stands (resume_offset), and registers
 * each instance's `done_pub` with its partition (sl_partition_follow). Call
 * before the reactors start. A partition the topics refused (no log) gets no
 * instance and is reported as "refused". Returns 0, or a negative error with
 * `err` naming the sink (and partition) and the reason; *out is then NULL.
 * n == 0 gives an empty set.
 */
int sl_sinks_create(const struct sl_sink_spec *specs, uint32_t n, struct sl_topics *topics,
                    const char *const *plugin_path, size_t n_plugin_path, struct sl_sinks **out,
                    char *err, size_t errlen);

/* Starts the sink threads. 0 or -errno (then none runs). */
int sl_sinks_start(struct sl_sinks *s);

/*
 * A sink whose topic did not exist at create (issue 22) is built without
 * instances (its plugin loaded all the same: a bad one stops the start)
 * and reported waiting. sl_sinks_bind gives sink i its topic, made since:
 * instances as at create, their done_pub registered with the partitions
 * (the caller binds before any reactor owns them: sl_server_topic_create
 * does it before the adopt), and its thread started when the set runs.
 * One call at a time (the server's admin calls); 0, or -errno with err.
 * sl_sinks_waits_for: the topic sink i waits for, NULL once bound;
 * sl_sinks_topic its topic's name either way; sl_sinks_name its name.
 * Any thread.
 */
int sl_sinks_bind(struct sl_sinks *s, uint32_t i, const struct sl_sink_spec *spec,
                  struct sl_topic *topic, char *err, size_t errlen);
const char *sl_sinks_waits_for(const struct sl_sinks *s, uint32_t i);
const char *sl_sinks_topic(const struct sl_sinks *s, uint32_t i);
const char *sl_sinks_name(const struct sl_sinks *s, uint32_t i);

/* Tells every sink thread to stop after its current call and joins them.
 * Idempotent; a set never started, or NULL, is fine. */
void sl_sinks_stop(struct sl_sinks *s);

/* Stops (if needed), destroys the instances, unloads the plugins. NULL is fine. */
void sl_sinks_destroy(struct sl_sinks *s);

/* Prometheus text: per sink and partition, events written, lag (durable
 * end minus done), failures, circuit state (0 closed, 1 open, 2 half-open)
 * and circuit transitions by target state, each family with # HELP and
 * # TYPE. Nothing at all for an empty set. */
void sl_sinks_metrics(const struct sl_sinks *s, FILE *out);

/* A JSON array: [{"name","plugin","topic","partitions":[{"partition","done",
 * "lag","events","failures","circuit"}]}]; "circuit" is closed, open,
 * half_open, or refused (a partition with no log). "[]" for an empty set. */
void sl_sinks_status_json(const struct sl_sinks *s, FILE *out);

/* Counters of one partition of sink `i` (tests, tools); -ENOENT when out
 * of range. Any thread. */
struct sl_sink_part_stats {
	uint64_t done;   /* first offset not yet written outside */
	uint64_t events; /* written since create */
	uint64_t batches;
	uint64_t failures; /* write_batch (or log read) failures */
	uint64_t skipped;  /* stored events that did not decode (never written) */
	uint32_t circuit;  /* enum sl_breaker_state */
	uint64_t to_open, to_half_open, to_closed;
};
int sl_sinks_part_stats(const struct sl_sinks *s, uint32_t sink, uint32_t partition,
                        struct sl_sink_part_stats *out);
/*
 * Waits until done(arg) is true, checking it again after every write
 * attempt and breaker change of any sink (not by polling): 0, or
 * -ETIMEDOUT after timeout_ns. done may read sl_sinks_part_stats. Any
 * thread but the sinks'; for tests and tools that wait for a sink.
 */
int sl_sinks_wait(struct sl_sinks *s, bool (*done)(void *arg), void *arg, uint64_t timeout_ns);
uint32_t sl_sinks_count(const struct sl_sinks *s);

#endif
