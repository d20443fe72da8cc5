/*
 * A pipeline stage as the server runs it (pipe.h, "a stage in the
 * server"): what its owning reactor publishes for other threads, its
 * failure, the answers to its outputs, and the pressure it waits on.
 * reactor/pipe.c decides when to step; this file says what a step or an
 * answer means for the stage.
 */
#include <inttypes.h>
#include <stdio.h>

#include "pipe/pipe.h"

void sl_pipe_part_publish(struct sl_pipe_part *pp)
{
	atomic_store_explicit(&pp->next_pub, sl_pipe_stage_next(pp->st), memory_order_release);
	atomic_store_explicit(&pp->emitted_pub, sl_pipe_stage_out_seq(pp->st),
	                      memory_order_relaxed);
	atomic_store_explicit(&pp->durable_pub, sl_pipe_stage_acked_seq(pp->st),
	                      memory_order_relaxed);
}

bool sl_pipe_part_set_state(struct sl_pipe_part *pp, uint32_t state)
{
	if (atomic_load_explicit(&pp->state_pub, memory_order_relaxed) == state)
		return false;
	atomic_store_explicit(&pp->state_pub, state, memory_order_release);
	return true;
}

void sl_pipe_part_fail(struct sl_pipe_part *pp)
{
	if (pp->failed)
		return;
	pp->failed = true;
	fprintf(stderr, "sluiced: %s; the stage is stopped\n", sl_pipe_stage_error(pp->st));
	/* Release: the error text is final before anyone reads the state. */
	sl_pipe_part_set_state(pp, SL_PIPE_FAILED);
}

void sl_pipes_output_answered(struct sl_pipes *ps, uint32_t index, uint64_t seq, int32_t status,
                              const char *topic, uint32_t partition)
{
	/* Only a stage's owner sends its outputs, so the answer comes back to
	 * the reactor that took the stage (at create, or sl_reactor_bind). */
	uint32_t pipe = index >> 12, p = index & 4095;
	if (!ps || pipe >= ps->n || !ps->v[pipe].parts || p >= ps->v[pipe].n_parts ||
	    !ps->v[pipe].parts[p].st)
		return;
	struct sl_pipe_part *pp = &ps->v[pipe].parts[p];
	if (status) {
		sl_pipe_stage_fail(pp->st,
		                   "pipeline %s partition %u: output %" PRIu64
		                   " refused by topic %s partition %u (wire error %d)",
		                   ps->v[pp->pipe].name, pp->part->id, seq, topic, partition,
		                   status);
		sl_pipe_part_fail(pp);
		sl_notify_signal(&ps->changed);
		return;
	}
	sl_pipe_stage_acked(pp->st, seq);
	atomic_store_explicit(&pp->durable_pub, sl_pipe_stage_acked_seq(pp->st),
	                      memory_order_relaxed);
	/* Everything it sent is durable: what sl_pipes_wait() watches for. */
	if (sl_pipe_stage_acked_seq(pp->st) == sl_pipe_stage_out_seq(pp->st))
		sl_notify_signal(&ps->changed);
}

bool sl_pipe_part_pressured(const struct sl_pipe_part *pp)
{
	const struct sl_topics *ts = pp->topics;

	for (uint32_t t = 0; t < ts->n; t++) {
		if (!pp->out_topics[t])
			continue;
		for (uint32_t q = 0; q < ts->v[t].n_parts; q++)
			if (atomic_load_explicit(&ts->v[t].parts[q].pressured,
			                         memory_order_relaxed))
				return true;
	}
	return false;
}
