/*
 * A server's set of pipeline stages (pipe.h, "the server's set"): the
 * transform plugins loaded, one stage per partition of each pipeline's
 * `from` topic, opened at its saved progress and registered as a follower
 * of its input partition, before the reactors run (each steps the stages
 * of the partitions it owns: reactor/pipe.c, so the plugins need no
 * locks); destroy writes the final progress after the reactors ended.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pipe/pipe.h"

/* Names a transform emits to. The `from` topic is not one: a stage that
 * wrote into its own input would read its outputs again, for ever. */
static int sl__pipe_resolve(void *arg, const char *name, size_t len)
{
	const struct sl_pipe_part *pp = arg;
	const struct sl_topic *t = sl_topics_find(pp->topics, name, len);

	if (!t || t->index == pp->resolve_from)
		return -ENOENT;
	return (int)t->index;
}

/* Opens pipeline pl's stages, one per partition of pl->from (set, like
 * pl->to). follow: registers each one's input position with its partition
 * now (before any reactor owns it), else its owner does (sl_reactor_bind). */
static int sl__pipe_open(struct sl_topics *topics, const char *data_dir,
                         const struct sl_pipe_spec *sp, struct sl_pipe *pl, struct sl_pipes *ps,
                         bool follow, char *err, size_t errlen)
{
	const struct sl_config_node *args[64];
	int ret;

	if (sp->n_transforms > SL_ARRAY_LEN(args)) {
		sl_errf(err, errlen, "pipeline %s: more than %zu transforms", sp->name,
		        SL_ARRAY_LEN(args));
		return -EINVAL;
	}
	for (uint32_t k = 0; k < sp->n_transforms; k++)
		args[k] = sp->transforms[k].args;
	pl->parts = calloc(pl->from->n_parts, sizeof(*pl->parts));
	if (!pl->parts)
		return -ENOMEM;
	pl->n_parts = pl->from->n_parts;
	for (uint32_t p = 0; p < pl->from->n_parts; p++) {
		struct sl_pipe_part *pp = &pl->parts[p];
		pp->pipe = (uint32_t)(pl - ps->v);
		/* Partitions are < 4096 (config), pipelines too (below). */
		pp->index = pp->pipe << 12 | p;
		pp->part = &pl->from->parts[p];
		pp->producer_id = sl_pipe_producer_id(pl->name, p);
		pp->topics = topics;
		pp->resolve_from = pl->from->index;
		/* Every slot: a transform may route to a topic made later. */
		pp->out_topics = calloc(SL_TOPICS_MAX, sizeof(*pp->out_topics));
		if (!pp->out_topics)
			return -ENOMEM;
		pp->out_topics[pl->to->index] = true;
		if (!pp->part->log) {
			/* A refused input partition: its stage is not served
			 * either, and status says so. */
			atomic_store_explicit(&pp->state_pub, SL_PIPE_REFUSED,
			                      memory_order_relaxed);
			continue;
		}
		struct sl_pipe_stage_opts so = {
		    .name = pl->name,
		    .from = pl->from->name,
		    .partition = p,
		    .n_partitions = pl->from->n_parts,
		    .to_topic = pl->to->index,
		    .log_dir = pp->part->dir,
		    .log_cuts = &pp->part->cuts,
		    .log_start = &pp->part->start_pub,
		    .data_dir = data_dir,
		    .plugins = pl->plugins,
		    .args = args,
		    .n_transforms = pl->n_plugins,
		    .resolve = sl__pipe_resolve,
		    .resolve_arg = pp,
		};
		if ((ret = sl_pipe_stage_open(&so, &pp->st, err, errlen)) < 0)
			return ret;
		atomic_store_explicit(&pp->next_pub, sl_pipe_stage_next(pp->st),
		                      memory_order_relaxed);
		atomic_store_explicit(&pp->emitted_pub, sl_pipe_stage_out_seq(pp->st),
		                      memory_order_relaxed);
		atomic_store_explicit(&pp->durable_pub, sl_pipe_stage_acked_seq(pp->st),
		                      memory_order_relaxed);
		/* Its lag bounds the input partition's (backpressure): a slow
		 * pipeline throttles the producers of `from` under `block`. */
		if (follow &&
		    (ret = sl_partition_follow(pp->part, &pp->next_pub, "pipeline", pl->name)) < 0)
			return ret;
	}
	return 0;
}

/* The topic `index` names, or the one named `name` (runtime topics), or NULL. */
static struct sl_topic *sl__pipe_topic(struct sl_topics *topics, uint32_t index, const char *name)
{
	if (index != SL_PIPE_TOPIC_LATER)
		return &topics->v[index];
	return sl_topics_find(topics, name, strlen(name));
}

static int sl__pipes_build(const struct sl_pipe_spec *specs, uint32_t n, struct sl_topics *topics,
                           const char *const *plugin_path, size_t n_plugin_path,
                           const char *data_dir, struct sl_pipes **out, char *err, size_t errlen)
{
	struct sl_pipes *ps;
	int ret;

	if (!n)
		return 0;
	for (uint32_t i = 0; i < n; i++) {
		const struct sl_pipe_spec *sp = &specs[i];
		uint32_t nt = atomic_load(&topics->n);
		if ((sp->from != SL_PIPE_TOPIC_LATER && sp->from >= nt) ||
		    (sp->to != SL_PIPE_TOPIC_LATER && sp->to >= nt) ||
		    (sp->from == SL_PIPE_TOPIC_LATER && !sp->from_name) ||
		    (sp->to == SL_PIPE_TOPIC_LATER && !sp->to_name) ||
		    (sp->from == sp->to && sp->from != SL_PIPE_TOPIC_LATER)) {
			sl_errf(err, errlen, "pipeline %s: bad from/to topics", sp->name);
			return -EINVAL;
		}
		if (!sp->n_transforms) {
			sl_errf(err, errlen, "pipeline %s: no transforms", sp->name);
			return -EINVAL;
		}
	}
	/* Stage indexes ride in ack refs below SL_CONN_PIPE: pipeline << 12
	 * | partition. */
	if (n >= (1u << 12)) {
		sl_errf(err, errlen, "pipelines: too many (%u)", n);
		return -EINVAL;
	}
	ps = calloc(1, sizeof(*ps));
	if (!ps)
		return -ENOMEM;
	ret = sl_notify_init(&ps->changed);
	if (ret < 0) {
		free(ps);
		return ret;
	}
	*out = ps;
	ps->v = calloc(n, sizeof(*ps->v));
	if (!ps->v)
		return -ENOMEM;
	for (uint32_t i = 0; i < n; i++) {
		const struct sl_pipe_spec *sp = &specs[i];
		struct sl_pipe *pl = &ps->v[i];
		ps->n = i + 1;
		pl->from = sl__pipe_topic(topics, sp->from, sp->from_name);
		pl->to = sl__pipe_topic(topics, sp->to, sp->to_name);
		pl->name = strdup(sp->name);
		pl->plugins = calloc(sp->n_transforms, sizeof(*pl->plugins));
		if (!pl->name || !pl->plugins)
			return -ENOMEM;
		if (pl->from == pl->to && pl->from) {
			sl_errf(err, errlen, "pipeline %s: bad from/to topics", sp->name);
			return -EINVAL;
		}
		/* Stage ids come from a hash of the name: two names meeting
		 * there would share sequences (pipe.h). Refused, never guessed. */
		for (uint32_t j = 0; j < i; j++)
			if (sl_pipe_producer_id(ps->v[j].name, 0) ==
			    sl_pipe_producer_id(pl->name, 0)) {
				sl_errf(
				    err, errlen,
				    "pipelines %s and %s: their names give the same producer id; "
				    "rename one",
				    ps->v[j].name, pl->name);
				return -EINVAL;
			}
		for (uint32_t k = 0; k < sp->n_transforms; k++) {
			char lerr[512];
			ret = sl_plugin_load(plugin_path, n_plugin_path, sp->transforms[k].plugin,
			                     SL_PLUGIN_TRANSFORM, &pl->plugins[k], lerr,
			                     sizeof(lerr));
			if (ret < 0) {
				sl_errf(err, errlen, "pipeline %s: transform %u: %s", sp->name,
				        k + 1, lerr);
				return ret;
			}
			pl->n_plugins = k + 1;
		}
		if (!pl->from || !pl->to) {
			/* Waits for a topic made at runtime (sl_pipes_bind). */
			pl->from = pl->to = NULL;
			pl->from_name = strdup(sp->from_name ? sp->from_name : "");
			pl->to_name = strdup(sp->to_name ? sp->to_name : "");
			if (!pl->from_name || !pl->to_name)
				return -ENOMEM;
			continue;
		}
		if ((ret = sl__pipe_open(topics, data_dir, sp, pl, ps, true, err, errlen)) < 0)
			return ret;
		atomic_store_explicit(&pl->bound_pub, true, memory_order_relaxed);
	}
	return 0;
}

const char *sl_pipes_waits_for(const struct sl_pipes *ps, uint32_t i,
                               const struct sl_topics *topics)
{
	const struct sl_pipe *pl = &ps->v[i];
	if (atomic_load_explicit(&pl->bound_pub, memory_order_acquire))
		return NULL;
	if (!sl_topics_find(topics, pl->from_name, strlen(pl->from_name)))
		return pl->from_name;
	return pl->to_name;
}

int sl_pipes_bind(struct sl_pipes *ps, uint32_t i, const struct sl_pipe_spec *sp,
                  struct sl_topic *from, struct sl_topic *to, struct sl_topics *topics,
                  const char *data_dir, char *err, size_t errlen)
{
	struct sl_pipe *pl = &ps->v[i];

	if (!from || !to || from == to || pl->parts)
		return -EINVAL;
	pl->from = from;
	pl->to = to;
	int ret = sl__pipe_open(topics, data_dir, sp, pl, ps, false, err, errlen);
	if (ret < 0)
		return ret;
	pl->bind_pending = true;
	return 0;
}

void sl_pipes_bound(struct sl_pipes *ps, uint32_t i)
{
	struct sl_pipe *pl = &ps->v[i];
	pl->bind_pending = false;
	/* Stages, topics and parts are set: status may read them now. */
	atomic_store_explicit(&pl->bound_pub, true, memory_order_release);
}

int sl_pipes_create(const struct sl_pipe_spec *specs, uint32_t n, struct sl_topics *topics,
                    const char *const *plugin_path, size_t n_plugin_path, const char *data_dir,
                    struct sl_pipes **out, char *err, size_t errlen)
{
	*out = NULL;
	int ret = sl__pipes_build(specs, n, topics, plugin_path, n_plugin_path, data_dir, out, err,
	                          errlen);
	if (ret < 0) {
		sl_pipes_destroy(*out);
		*out = NULL;
	}
	return ret;
}

void sl_pipes_destroy(struct sl_pipes *ps)
{
	if (!ps)
		return;
	for (uint32_t i = 0; i < ps->n; i++) {
		struct sl_pipe *pl = &ps->v[i];
		for (uint32_t p = 0; pl->parts && p < pl->n_parts; p++) {
			struct sl_pipe_part *pp = &pl->parts[p];
			/* The reactors have ended (joined): the stage is ours
			 * now. Its watermark only ever covers acked outputs, so
			 * it is right to keep even when the stage failed. */
			if (pp->st)
				sl_pipe_stage_save(pp->st);
			sl_pipe_stage_close(pp->st);
			free(pp->out_topics);
		}
		free(pl->parts);
		for (uint32_t k = 0; k < pl->n_plugins; k++)
			sl_plugin_unload(pl->plugins[k]);
		free(pl->plugins);
		free(pl->name);
		free(pl->from_name);
		free(pl->to_name);
	}
	free(ps->v);
	sl_notify_destroy(&ps->changed);
	free(ps);
}
