/*
 * pipe: pipelines — a `from` topic's events through a chain of transform
 * plugins into derived topics, exactly once.
 *
 * A STAGE serves one (pipeline, partition p of `from`). It reads p through
 * its own log view below the partition's durable end (a transform never
 * sees what a crash could take back), runs the chain on what it read
 * (transform 1's outputs, re-read as events, are transform 2's inputs...;
 * an output sent to a topic by name leaves the chain there), and hands
 * every final output, with its topic and its SEQUENCE, to the caller, which
 * produces it through the normal path (reactor/pipe.c).
 *
 * Exactly once. A stage is an idempotent producer: its id is
 * sl_pipe_producer_id() (the reserved range of dedup.h), epoch 1, and the
 * sequence of its k-th output ever is k (`out_seq`, dense). Transforms are
 * deterministic (sluice/plugin.h), so running inputs again gives the same
 * outputs with the same sequences. Every partition receives a stage's
 * outputs in sequence order (one thread, FIFO rings), a crash loses only a
 * suffix of each partition's log, and recovery rebuilds the sequence tables
 * from the logs: an output run again whose sequence is at or below what its
 * partition holds for the stage was stored (DUP/STALE, not stored again),
 * one above is new. So the stage may resume from ANY earlier input position
 * together with the out_seq it had there, never from a later one.
 *
 * Progress. The caller reports each output's ack (sl_pipe_stage_acked).
 * The stage keeps the outputs in flight as a window of ack flags indexed by
 * sequence, and marks (X, S) after each batch of inputs: the inputs below X
 * have all their outputs below S. The watermark is the last mark whose
 * outputs are all acked; sl_pipe_stage_save writes it to
 * data_dir/pipelines/NAME/P (tmp, fdatasync, rename: sl_file_replace), and
 * open resumes there (no file, or an unreadable one: (0, 0), every output
 * then a duplicate). The file may lag the truth by any amount: only how
 * much work a restart repeats depends on it.
 *
 * sl_pipes is the server's set of stages (built by server/pipeline.c,
 * stepped by the reactors); the published atomics in struct sl_pipe_part
 * are what other threads read (status, metrics, the partition's lag bound).
 *
 * Ownership: sl_pipe_stage_open returns a stage the caller closes; it owns
 * its plugin instances, not the plugins. Events handed to the output
 * function live only during the call.
 * Threads: a stage belongs to one thread at a time (the reactor owning its
 * partition; open and close on the control thread before/after the
 * reactors run). sl_pipes_metrics / sl_pipes_status_json from any thread
 * while the set exists (atomics only).
 */
#ifndef SL_PIPE_H
#define SL_PIPE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "base/base.h"
#include "plugin/plugin.h"
#include "topic/topic.h"

/* Inputs one stage reads per reactor turn, and their bytes: a turn stays
 * short (a few hundred us of filter work) so ingest on the core never
 * waits long. */
#define SL_PIPE_STEP_EVENTS 4096u
#define SL_PIPE_STEP_BYTES  (1u << 20)
/* A stage reads no further while more outputs than this wait for their
 * acks: bounds its ack window and the ack refs it puts in partitions'
 * queues (half of max_waiting_events, so a stage alone never pressures
 * a partition it writes). */
#define SL_PIPE_MAX_UNACKED 65536u
/* Outputs the transforms produce per process call are batched up to
 * this many inputs (a single transform; a chain takes one input at a
 * time, so every intermediate event knows its input's offset). */
#define SL_PIPE_BATCH 256u

/* The emitter's topic for "the pipeline's `to`": never a topic index. */
#define SL_PIPE_TOPIC_TO 0x7fffffff

/* The producer id of stage (pipeline `name`, input partition p): the
 * reserved range of dedup.h. From the name, not the pipeline's place in
 * the config: reordering the config must not hand one pipeline another's
 * sequences. */
uint64_t sl_pipe_producer_id(const char *name, uint32_t partition);

/* ---- one stage ------------------------------------------------------------------- */

struct sl_pipe_stage_opts {
	const char *name;      /* the pipeline's */
	const char *from;      /* its `from` topic (for the plugins' create) */
	uint32_t partition;    /* of `from` */
	uint32_t n_partitions; /* of `from` */
	uint32_t to_topic;     /* index of the `to` topic: SL_PIPE_TOPIC_TO maps to it */
	const char *log_dir;   /* the input partition's log folder */
#ifndef __cplusplus
	const _Atomic uint64_t *log_cuts;  /* its cut counter (sl_log_view_follow_cuts) */
	const _Atomic uint64_t *log_start; /* its first offset (sl_log_view_follow_start) */
#else
	const void *log_cuts; /* the same pointer; the C++ benchmarks leave it NULL */
	const void *log_start;
#endif
	const char *data_dir;             /* progress in data_dir/pipelines/NAME/PARTITION */
	struct sl_plugin *const *plugins; /* transform plugins, chain order */
	const struct sl_config_node *const *args; /* each one's args map (or NULL) */
	uint32_t n_transforms;                    /* >= 1 */
	/* Topic names a transform emits to -> index >= 0, or -ENOENT. */
	int (*resolve)(void *arg, const char *topic, size_t len);
	void *resolve_arg;
};

/*
 * Gets each final output, in sequence order: its topic index, its encoded
 * bytes and its sequence. Return 0, or a negative error to stop the stage
 * (the output then counts as never sent: a restart sends it again).
 */
typedef int (*sl_pipe_out_fn)(void *arg, uint32_t topic, const uint8_t *ev, uint32_t len,
                              uint64_t seq);

struct sl_pipe_stage;

/* Creates the plugin instances, opens the input's log view, and loads the
 * progress file. 0, or -SL_EPLUGIN / -errno with err. */
int sl_pipe_stage_open(const struct sl_pipe_stage_opts *o, struct sl_pipe_stage **out, char *err,
                       size_t errlen);
void sl_pipe_stage_close(struct sl_pipe_stage *s);

/*
 * Reads up to max_events inputs (about max_bytes) below `limit`, runs the
 * chain on them and calls `out` for every final output. Returns the
 * number of inputs read (0: caught up), or a negative error after which
 * the stage is stopped (sl_pipe_stage_error says why).
 */
int sl_pipe_stage_step(struct sl_pipe_stage *s, uint64_t limit, uint32_t max_events,
                       uint32_t max_bytes, sl_pipe_out_fn out, void *arg);

/* Output `seq` is durable (stored, or a duplicate of a stored one). May be
 * called from inside `out` (an output answered at once). */
void sl_pipe_stage_acked(struct sl_pipe_stage *s, uint64_t seq);

/* Stops the stage with a reason (an output refused). The first reason
 * stays. */
void sl_pipe_stage_fail(struct sl_pipe_stage *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Writes the watermark if it moved since the last write: 1 when written,
 * 0 when there was nothing to write, or -errno (the stage goes on; the
 * next save tries again). Blocks for an fdatasync and a folder fsync. */
int sl_pipe_stage_save(struct sl_pipe_stage *s);

uint64_t sl_pipe_stage_next(const struct sl_pipe_stage *s);      /* first input not read */
uint64_t sl_pipe_stage_out_seq(const struct sl_pipe_stage *s);   /* outputs sent, ever */
uint64_t sl_pipe_stage_acked_seq(const struct sl_pipe_stage *s); /* outputs acked (a prefix) */
uint64_t sl_pipe_stage_unacked(const struct sl_pipe_stage *s);
/* The watermark: inputs below *x are done, with *s outputs. */
void sl_pipe_stage_watermark(const struct sl_pipe_stage *s, uint64_t *x, uint64_t *seq);
bool sl_pipe_stage_failed(const struct sl_pipe_stage *s);
const char *sl_pipe_stage_error(const struct sl_pipe_stage *s);

/* ---- the server's set ------------------------------------------------------------ */

enum sl_pipe_state {
	SL_PIPE_RUNNING = 0, /* reading, or caught up */
	SL_PIPE_WAITING,     /* too many outputs unacked, or an output partition pressured */
	SL_PIPE_FAILED,      /* stopped: `error` says why */
	SL_PIPE_REFUSED,     /* its input partition was refused at start-up */
};

const char *sl_pipe_state_name(uint32_t state);

/* One stage as the server sees it. Only the owner of `part` touches the
 * plain fields after start; the _pub atomics are for everyone. */
struct sl_pipe_part {
	struct sl_pipe_stage *st;  /* NULL when refused */
	struct sl_partition *part; /* partition p of `from` */
	uint32_t pipe;             /* index into sl_pipes.v */
	uint32_t index;            /* pipe << 12 | partition: the ack marker's low bits */
	uint64_t producer_id;
	bool failed;           /* stopped (the stage's error says why) */
	uint64_t saved_ns;     /* its progress file last written */
	bool *out_topics;      /* topics it has sent to, by index (pressure) */
	uint32_t resolve_from; /* its `from` topic: never an output */
	const struct sl_topics *topics;
	/* Published by the owner: next input (release: the partition's lag
	 * bound reads it as a follower), outputs sent, outputs acked, state
	 * (release after `error` is final). */
	_Atomic uint64_t next_pub;
	_Atomic uint64_t emitted_pub;
	_Atomic uint64_t durable_pub;
	_Atomic uint32_t state_pub;
};

struct sl_pipe {
	char *name;
	struct sl_topic *from, *to;
	struct sl_plugin **plugins; /* loaded, chain order */
	uint32_t n_plugins;
	struct sl_pipe_part *parts; /* a stage per partition of `from` (n_parts) */
	uint32_t n_parts;
	/*
	 * A pipeline whose `from` or `to` did not exist at start (issue 22):
	 * from, to and parts stay NULL, from_name and to_name say what it
	 * waits for, until sl_pipes_bind. bound_pub is stored with release
	 * once they are set (sl_pipes_bound); other threads read them only
	 * after an acquire load that says so. bind_pending marks it for the
	 * reactors' sl_reactor_bind (written before that request).
	 */
	char *from_name, *to_name;
	_Atomic bool bound_pub;
	bool bind_pending;
};

struct sl_pipes {
	struct sl_pipe *v;
	uint32_t n;
	/* Signalled by the reactors when a stage's published progress or state
	 * changed, or all its outputs became durable: sl_pipes_wait(). */
	struct sl_notify changed;
};

/* Waits until done(arg) holds, checking it again whenever a stage made
 * progress (not by polling): 0, or -ETIMEDOUT after timeout_ns. Any thread
 * but the reactors; for tests and tools. */
int sl_pipes_wait(struct sl_pipes *ps, bool (*done)(void *arg), void *arg, uint64_t timeout_ns);

/* The k-th stage over every bound pipeline in order (their partitions in
 * order), or NULL past the last: for tests and tools that look at every
 * stage. Any thread, as sl_pipes_metrics. */
struct sl_pipe_part *sl_pipes_nth(struct sl_pipes *ps, uint32_t k);
/* Prometheus text per stage: sluice_pipeline_input_offset,
 * _lag_events, _outputs_total, _outputs_durable_total, _state (enum
 * sl_pipe_state). Nothing for NULL or an empty set. */
void sl_pipes_metrics(const struct sl_pipes *ps, FILE *out);

/* A JSON array: [{"name","from","to","transforms":[..],"partitions":
 * [{"partition","input_offset","lag","outputs","outputs_durable","state",
 * "error"?}]}]. "[]" for NULL or an empty set. */
void sl_pipes_status_json(const struct sl_pipes *ps, FILE *out);

/* ---- a stage in the server: what its owner publishes (pipe/stage.c) --------------- */
/* The owning reactor drives the stages (reactor/pipe.c) and calls these;
 * all on the owner's thread. */

/* Publishes the stage's input and output positions (next_pub with
 * release: the partition's lag bound reads it as a follower). */
void sl_pipe_part_publish(struct sl_pipe_part *pp);
/* Sets state_pub (release); returns whether it changed. */
bool sl_pipe_part_set_state(struct sl_pipe_part *pp, uint32_t state);
/* The stage stopped: said once on stderr, and it reads no more. Its
 * outputs in flight are still acked (the watermark stays exact). */
void sl_pipe_part_fail(struct sl_pipe_part *pp);
/* The answer to output `seq` of stage `index` of ps: stored (status 0),
 * or refused by `topic` partition `partition` with wire error `status`
 * (the stage stops). Signals ps->changed when sl_pipes_wait may care. */
void sl_pipes_output_answered(struct sl_pipes *ps, uint32_t index, uint64_t seq, int32_t status,
                              const char *topic, uint32_t partition);
/* Whether a partition of a topic the stage has written to is pressured:
 * then it waits (its own lag pressures its input, and so its producers). */
bool sl_pipe_part_pressured(const struct sl_pipe_part *pp);

/* ---- building the set (pipe/set.c) ------------------------------------------------ */

/* A pipeline to run: topic `from` through transform plugins, in order,
 * into topic `to` (a transform may also name other topics). */
struct sl_pipe_transform_spec {
	const char *plugin;
	const struct sl_config_node *args; /* the entry's args map, or NULL */
};
/* A topic index meaning "the topic of that name, when there is one". */
#define SL_PIPE_TOPIC_LATER UINT32_MAX

struct sl_pipe_spec {
	const char *name;
	uint32_t from, to;               /* indexes into the topics, or SL_PIPE_TOPIC_LATER */
	const char *from_name, *to_name; /* (needed with SL_PIPE_TOPIC_LATER) */
	const struct sl_pipe_transform_spec *transforms;
	uint32_t n_transforms; /* >= 1 */
};

/*
 * Loads the transform plugins, opens a stage per partition of each
 * pipeline's `from` at its saved progress (data_dir/pipelines/NAME/P) and
 * registers it as a follower of its input partition; before the reactors
 * start. A partition the topics refused gets no stage (state "refused").
 * Returns 0 (*out NULL when n == 0), or a negative error with `err` naming
 * the pipeline and the reason; *out is then NULL.
 */
int sl_pipes_create(const struct sl_pipe_spec *specs, uint32_t n, struct sl_topics *topics,
                    const char *const *plugin_path, size_t n_plugin_path, const char *data_dir,
                    struct sl_pipes **out, char *err, size_t errlen);
/*
 * A pipeline that waits (issue 22) is built without stages: its plugins
 * are loaded at create all the same (a bad one stops the start). Once
 * both its topics exist (`from` and `to`, given: the caller may bind
 * before a new topic is published), sl_pipes_bind opens its stages (as create does,
 * but without registering them as followers: their partitions may be
 * owned already, and only the owner may, sl_reactor_bind) and marks it
 * bind_pending; the caller has every reactor take the stages
 * (sl_reactor_bind), then calls sl_pipes_bound, which publishes it.
 * sl_pipes_waits_for: the topic pipeline i still waits for, or NULL once
 * bound. Control or admin thread, one call at a time.
 */
int sl_pipes_bind(struct sl_pipes *ps, uint32_t i, const struct sl_pipe_spec *sp,
                  struct sl_topic *from, struct sl_topic *to, struct sl_topics *topics,
                  const char *data_dir, char *err, size_t errlen);
void sl_pipes_bound(struct sl_pipes *ps, uint32_t i);
const char *sl_pipes_waits_for(const struct sl_pipes *ps, uint32_t i,
                               const struct sl_topics *topics);

/* Writes each stage's final progress (its watermark only ever covers
 * acked outputs, so it is right to keep even when the stage failed),
 * closes the stages, unloads the plugins. After the reactors ended; NULL
 * is fine. */
void sl_pipes_destroy(struct sl_pipes *ps);

#endif
