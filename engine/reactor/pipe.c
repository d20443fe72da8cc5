/*
 * The reactor's side of pipelines (engine/pipe): it only drives. It steps
 * the stages of the partitions it owns (when, and how much), produces their
 * outputs through the normal path, and hands their acks to pipe/stage.c.
 *
 * An output is produced like a connection's event: into its topic's
 * partition of its aggregate, with sl__part_produce when this reactor owns
 * that partition, else in an event block to the owner. Its ack ref names
 * the stage instead of a connection (conn = SL_CONN_PIPE | stage index,
 * len 0: no credits are involved), and sl__conn_ack hands such acks here.
 */
#include <stdlib.h>

#include "pipe/pipe.h"
#include "proto/proto.h"
#include "reactor/reactor_impl.h"

/* How often a stage's progress file is written (at most; one write per
 * reactor per tick): a restart repeats about this much work, plus what
 * was in flight. */
#define SL_PIPE_SAVE_NS (UINT64_C(1000000000))
/*
 * A stage steps at once when at least this many inputs wait, else at the
 * next tick (100 ms): its log view reads ahead in 256 KiB, and stepping
 * after every group commit (a few KiB) made the kernel zero and copy the
 * pre-allocated tail of the segment again and again (perf: 10% of the
 * CPU, and ingest at half the rate). So a pipeline trails its input by at
 * most this many events or one tick.
 */
#define SL_PIPE_MIN_EVENTS 1024u

struct sl__pipe_out_ctx {
	struct sl_reactor *r;
	struct sl_pipe_part *pp;
};

/* Appends the stages of pipelines `pick` accepts whose partitions this
 * reactor owns to r->pipe_parts; with `follow`, registers each one's
 * input position with its partition (this reactor owns it). */
static int sl__pipe_take(struct sl_reactor *r, bool (*pick)(const struct sl_pipe *), bool follow)
{
	struct sl_pipes *ps = r->env->pipes;
	uint32_t n = 0;

	for (uint32_t i = 0; ps && i < ps->n; i++)
		for (uint32_t p = 0; pick(&ps->v[i]) && p < ps->v[i].n_parts; p++)
			n += ps->v[i].parts[p].st && ps->v[i].parts[p].part->owner == r->id;
	if (!n)
		return 0;
	struct sl_pipe_part **v = realloc(r->pipe_parts, (r->n_pipe_parts + n) * sizeof(*v));
	if (!v)
		return -ENOMEM;
	r->pipe_parts = v;
	uint64_t now = sl_now_ns();
	for (uint32_t i = 0; i < ps->n; i++)
		for (uint32_t p = 0; pick(&ps->v[i]) && p < ps->v[i].n_parts; p++) {
			struct sl_pipe_part *pp = &ps->v[i].parts[p];
			if (!pp->st || pp->part->owner != r->id)
				continue;
			if (follow && sl_partition_follow(pp->part, &pp->next_pub, "pipeline",
			                                  ps->v[i].name) < 0)
				return -ENOMEM;
			pp->saved_ns = now;
			r->pipe_parts[r->n_pipe_parts++] = pp;
		}
	return 0;
}

/* At create: the pipelines bound from the start (followed then). */
static bool sl__pipe_open_now(const struct sl_pipe *pl)
{
	return pl->parts && !pl->bind_pending;
}

/* sl_reactor_bind: what the server just bound to a topic made at runtime. */
static bool sl__pipe_binding(const struct sl_pipe *pl)
{
	return pl->parts && pl->bind_pending;
}

int sl__pipe_init(struct sl_reactor *r)
{
	return sl__pipe_take(r, sl__pipe_open_now, false);
}

int sl__pipe_bind(struct sl_reactor *r)
{
	return sl__pipe_take(r, sl__pipe_binding, true);
}

void sl__pipe_ack(struct sl_reactor *r, const struct sl_xack *a)
{
	sl_pipes_output_answered(r->env->pipes, a->conn & ~SL_CONN_PIPE, a->base_seq, a->status,
	                         r->topics->v[a->topic].name, a->partition);
}

/* One final output of a stage into its topic, as a producer would send it. */
static int sl__pipe_out(void *arg, uint32_t topic, const uint8_t *ev, uint32_t len, uint64_t seq)
{
	struct sl__pipe_out_ctx *c = arg;
	struct sl_pipe_part *pp = c->pp;

	pp->out_topics[topic] = true;
	return sl__internal_produce(c->r, topic, pp->producer_id, SL_CONN_PIPE | pp->index, ev, len,
	                            seq);
}

void sl__pipe_step(struct sl_reactor *r)
{
	bool now = r->pipe_tick_due;

	r->pipe_tick_due = false;
	r->pipe_behind = false;
	/* Draining: no new outputs. What is in flight is answered before the
	 * reactors stop (remote_unacked, the partitions' queues); the rest of
	 * the input waits for the next start. */
	if (r->stopping)
		return;
	bool changed = false;
	for (uint32_t i = 0; i < r->n_pipe_parts; i++) {
		struct sl_pipe_part *pp = r->pipe_parts[i];
		if (pp->failed)
			continue;
		/* What readers may see (the HW on a replicated partition), as
		 * projections and sinks: an output never comes from an event
		 * a failover could take back. Stored by this thread. */
		uint64_t limit = atomic_load_explicit(&pp->part->durable_pub, memory_order_relaxed);
		uint64_t next = sl_pipe_stage_next(pp->st);
		if (next >= limit) {
			changed |= sl_pipe_part_set_state(pp, SL_PIPE_RUNNING);
			continue;
		}
		if (!now && limit - next < SL_PIPE_MIN_EVENTS)
			continue;
		/* Acks (and the tick, for pressure elsewhere) bring the loop
		 * back: no need to spin while waiting. */
		if (sl_pipe_stage_unacked(pp->st) > SL_PIPE_MAX_UNACKED ||
		    sl_pipe_part_pressured(pp)) {
			changed |= sl_pipe_part_set_state(pp, SL_PIPE_WAITING);
			continue;
		}
		struct sl__pipe_out_ctx c = {r, pp};
		int ret = sl_pipe_stage_step(pp->st, limit, SL_PIPE_STEP_EVENTS, SL_PIPE_STEP_BYTES,
		                             sl__pipe_out, &c);
		sl_pipe_part_publish(pp);
		changed = true;
		if (ret < 0) {
			sl_pipe_part_fail(pp);
			continue;
		}
		sl_pipe_part_set_state(pp, SL_PIPE_RUNNING);
		if (sl_pipe_stage_next(pp->st) < limit)
			r->pipe_behind = true;
	}
	/* Once a step, not per stage: one lock and unlock when nobody waits. */
	if (changed)
		sl_notify_signal(&r->env->pipes->changed);
}

void sl__pipe_tick(struct sl_reactor *r)
{
	uint64_t now = sl_now_ns();

	r->pipe_tick_due = true;
	/* A progress write is an fdatasync and a folder fsync on this thread
	 * (a few ms): one stage per tick at most, the next one due in turn,
	 * so the stalls spread out instead of adding up in one turn. */
	for (uint32_t k = 0; k < r->n_pipe_parts; k++) {
		struct sl_pipe_part *pp = r->pipe_parts[r->pipe_save_next++ % r->n_pipe_parts];
		if (now - pp->saved_ns < SL_PIPE_SAVE_NS)
			continue;
		pp->saved_ns = now;
		if (sl_pipe_stage_save(pp->st) != 0)
			break; /* written (or failed trying): this tick's one */
	}
}
