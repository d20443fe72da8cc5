/*
 * Consumers of topics made at runtime (issue 22): a projection, sink or
 * pipeline whose topic the config does not list, and that is not in
 * data_dir/topics.yaml at start, waits for it. It is built at create
 * without appliers, instances or stages (its plugin loaded, so a bad one
 * still stops the start), said on stderr (a typo shows there), reported
 * `waiting_for_topic` in /v1/status and /metrics, and a query to such a
 * projection is answered 503 not_serving naming the topic.
 *
 * When sl_server_topic_create makes the topic, it binds, in two steps
 * around the reactors' adopt:
 *  - sl__late_bind, once the topic's slot is built and in the registry,
 *    before any reactor owns its partitions: projections' appliers and
 *    pipelines' stages opened here (off the reactors), sinks' instances
 *    too, and the sinks registered as followers of the partitions (no
 *    owner reads the followers yet);
 *  - sl__late_commit, once every reactor adopted the topic: each reactor
 *    takes the parts and stages of the partitions it owns and registers
 *    them as followers itself (sl_reactor_bind; a pipeline may bind when
 *    its `to` is made, on a `from` that reactors own already), then the
 *    projections and pipelines are published as serving.
 * A pipeline waits for its `from` and its `to`, and binds when the later
 * of the two is made. A projection bound later gets the per-partition
 * cache share computed at start (server/project.c), a sink its thread.
 *
 * A topic with a bound consumer is not deleted at runtime (409 naming
 * them): its projections' snapshots, its sinks' targets and its stages'
 * progress hold offsets of that topic, which a topic made again under the
 * same name would not match.
 *
 * Threads: report on the control thread at create; bind, commit and users
 * in the admin calls, under the registry's mutex (server/topics.c).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "pipe/pipe.h"
#include "server/server.h"
#include "sink/sink.h"

void sl__late_report(struct sl_server *srv)
{
	for (uint32_t i = 0; i < srv->n_projs; i++)
		if (atomic_load(&srv->projs[i].state_pub) == SL_PROJ_WAITING)
			fprintf(stderr, "sluiced: projection %s waits for topic %s\n",
			        srv->projs[i].name, srv->projs[i].waits_for);
	for (uint32_t i = 0; i < sl_sinks_count(srv->sinks); i++)
		if (sl_sinks_waits_for(srv->sinks, i))
			fprintf(stderr, "sluiced: sink %s waits for topic %s\n",
			        sl_sinks_name(srv->sinks, i), sl_sinks_waits_for(srv->sinks, i));
	for (uint32_t i = 0; srv->pipes && i < srv->pipes->n; i++) {
		const char *w = sl_pipes_waits_for(srv->pipes, i, &srv->topics);
		if (w)
			fprintf(stderr, "sluiced: pipeline %s waits for topic %s\n",
			        srv->pipes->v[i].name, w);
	}
}

/* Topic `name`: the one being made (slot `index`, not published yet), or
 * one that exists; NULL. */
static struct sl_topic *sl__late_find(struct sl_server *srv, uint32_t index, const char *name)
{
	if (!strcmp(srv->topics.v[index].name, name))
		return &srv->topics.v[index];
	return sl_topics_find(&srv->topics, name, strlen(name));
}

void sl__late_bind(struct sl_server *srv, uint32_t index)
{
	struct sl_topic *t = &srv->topics.v[index];
	char err[600];

	for (uint32_t i = 0; i < srv->n_projs; i++) {
		struct sl_proj *pj = &srv->projs[i];
		if (atomic_load(&pj->state_pub) != SL_PROJ_WAITING ||
		    strcmp(pj->waits_for, t->name))
			continue;
		pj->topic = t;
		err[0] = 0;
		int ret = sl__proj_open(srv, i, false, err, sizeof(err));
		if (ret < 0) {
			/* The topic is made all the same; the projection says
			 * why it does not serve (503) and stays so. */
			fprintf(stderr, "sluiced: projection %s cannot start on topic %s: %s\n",
			        pj->name, t->name, err[0] ? err : sl_strerror(ret));
			atomic_store_explicit(&pj->state_pub, SL_PROJ_BIND_FAILED,
			                      memory_order_release);
			continue;
		}
		pj->bind_pending = true;
	}
	for (uint32_t i = 0; i < sl_sinks_count(srv->sinks); i++) {
		const char *w = sl_sinks_waits_for(srv->sinks, i);
		if (!w || strcmp(w, t->name))
			continue;
		struct sl_sink_spec spec = sl__sink_spec(srv, i);
		err[0] = 0;
		int ret = sl_sinks_bind(srv->sinks, i, &spec, t, err, sizeof(err));
		if (ret < 0)
			fprintf(stderr, "sluiced: sink %s cannot start on topic %s: %s\n",
			        sl_sinks_name(srv->sinks, i), t->name,
			        err[0] ? err : sl_strerror(ret));
		else
			fprintf(stderr, "sluiced: sink %s bound to topic %s\n",
			        sl_sinks_name(srv->sinks, i), t->name);
	}
	for (uint32_t i = 0; srv->pipes && i < srv->pipes->n; i++) {
		struct sl_pipe *pl = &srv->pipes->v[i];
		if (atomic_load(&pl->bound_pub) || pl->parts ||
		    (strcmp(pl->from_name, t->name) && strcmp(pl->to_name, t->name)))
			continue;
		struct sl_topic *from = sl__late_find(srv, index, pl->from_name);
		struct sl_topic *to = sl__late_find(srv, index, pl->to_name);
		if (!from || !to)
			continue; /* still waits for the other one */
		err[0] = 0;
		int ret = sl_pipes_bind(srv->pipes, i, &srv->pipe_specs[i], from, to, &srv->topics,
		                        srv->opts.data_dir, err, sizeof(err));
		if (ret < 0)
			fprintf(stderr, "sluiced: pipeline %s cannot start on %s -> %s: %s\n",
			        pl->name, from->name, to->name, err[0] ? err : sl_strerror(ret));
	}
}

void sl__late_commit(struct sl_server *srv)
{
	bool any = false;
	for (uint32_t i = 0; i < srv->n_projs; i++)
		any |= srv->projs[i].bind_pending;
	for (uint32_t i = 0; srv->pipes && i < srv->pipes->n; i++)
		any |= srv->pipes->v[i].bind_pending;
	if (!any)
		return;
	/* Each reactor takes what it owns; one that stopped takes nothing
	 * (the server is going away: nothing is stepped any more). */
	for (uint32_t r = 0; r < srv->n; r++)
		(void)sl_reactor_bind(srv->reactors[r]);
	for (uint32_t i = 0; i < srv->n_projs; i++) {
		struct sl_proj *pj = &srv->projs[i];
		if (!pj->bind_pending)
			continue;
		pj->bind_pending = false;
		/* topic and parts are set: queries and status may read them. */
		atomic_store_explicit(&pj->state_pub, SL_PROJ_SERVING, memory_order_release);
		fprintf(stderr, "sluiced: projection %s bound to topic %s\n", pj->name,
		        pj->topic->name);
	}
	for (uint32_t i = 0; srv->pipes && i < srv->pipes->n; i++) {
		struct sl_pipe *pl = &srv->pipes->v[i];
		if (!pl->bind_pending)
			continue;
		sl_pipes_bound(srv->pipes, i);
		fprintf(stderr, "sluiced: pipeline %s bound (%s -> %s)\n", pl->name, pl->from->name,
		        pl->to->name);
	}
}

int sl__late_users(struct sl_server *srv, const struct sl_topic *t, char *names, size_t len)
{
	size_t at = 0;
	int n = 0;

	names[0] = 0;
	/* Every consumer that holds the topic's partitions: serving, or one
	 * whose appliers failed to open on it (some may be open). */
	for (uint32_t i = 0; i < srv->n_projs; i++)
		if (atomic_load(&srv->projs[i].state_pub) != SL_PROJ_WAITING &&
		    srv->projs[i].topic == t && ++n && at < len)
			at += (size_t)snprintf(names + at, len - at, "%sprojection %s",
			                       at ? ", " : "", srv->projs[i].name);
	for (uint32_t i = 0; i < sl_sinks_count(srv->sinks); i++)
		if (!sl_sinks_waits_for(srv->sinks, i) &&
		    !strcmp(sl_sinks_topic(srv->sinks, i), t->name) && ++n && at < len)
			at += (size_t)snprintf(names + at, len - at, "%ssink %s", at ? ", " : "",
			                       sl_sinks_name(srv->sinks, i));
	for (uint32_t i = 0; srv->pipes && i < srv->pipes->n; i++) {
		const struct sl_pipe *pl = &srv->pipes->v[i];
		if (pl->parts && (pl->from == t || pl->to == t) && ++n && at < len)
			at += (size_t)snprintf(names + at, len - at, "%spipeline %s",
			                       at ? ", " : "", pl->name);
	}
	return n;
}
