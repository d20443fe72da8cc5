/*
 * Consumer groups, the server's side (group/group.h has the rules): the
 * table made at create and filled from the offsets topic before the
 * reactors start (every record of every partition of SL_GROUP_TOPIC, in
 * each partition's order), the offsets topic made the first time a group
 * needs it (admin.c, like a topic a first produce names), and the groups'
 * part of /v1/status and /metrics: members, generation, rebalances, and per
 * partition the committed offset and the lag (events, and seconds: the age
 * of the oldest event not consumed, read from the log at the committed
 * offset).
 *
 * Threads: create/replay on the control thread; status and metrics on HTTP
 * threads (a snapshot of the table, then views of the logs).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "group/group.h"
#include "server/server.h"

_Static_assert(sizeof(SL_TOPIC_INTERNAL_PREFIX) <= sizeof(SL_GROUP_TOPIC),
               "the offsets topic is named under the server's own prefix");

struct sl__replay {
	struct sl_groups *g;
	uint64_t n, bad;
	int ret;
};

static int sl__replay_one(void *arg, const struct sl_log_record *rec)
{
	struct sl__replay *rp = arg;
	struct sl_group_record r;
	char err[120];

	if (sl_group_record_decode(rec->event, rec->len, &r, err, sizeof(err)) < 0) {
		/* Not ours to read (a later version, or an event someone put
		 * there): skipped, said once per start. */
		rp->bad++;
		return 0;
	}
	rp->ret = sl_groups_replay(rp->g, &r);
	rp->n++;
	return rp->ret < 0 ? -1 : 0;
}

int sl__groups_create(struct sl_server *srv, char *err, size_t errlen)
{
	int ret = sl_groups_create(&srv->groups);
	if (ret < 0)
		return ret;
	struct sl_topic *t = sl_topics_find(&srv->topics, SL_GROUP_TOPIC, strlen(SL_GROUP_TOPIC));
	if (!t)
		return 0;
	struct sl__replay rp = {.g = srv->groups};
	uint64_t t0 = sl_now_ns();
	for (uint32_t p = 0; p < t->n_parts; p++) {
		struct sl_partition *part = &t->parts[p];
		uint64_t end = atomic_load_explicit(&part->durable_pub, memory_order_acquire);
		uint64_t off = atomic_load_explicit(&part->start_pub, memory_order_relaxed), next;
		struct sl_log_view *v;
		ret = sl_log_view_open(part->dir, &v);
		if (ret < 0)
			goto fail;
		while (off < end) {
			ret = sl_log_view_read(v, off, end, 4096, 1u << 20, sl__replay_one, &rp,
			                       &next);
			if (ret < 0 || rp.ret < 0) {
				ret = ret < 0 ? ret : rp.ret;
				snprintf(err, errlen, "%s partition %u: %s", SL_GROUP_TOPIC, p,
				         sl_log_view_strerror(v, ret));
				sl_log_view_close(v);
				return ret;
			}
			if (next <= off)
				break;
			off = next;
		}
		sl_log_view_close(v);
	}
	fprintf(
	    stderr,
	    "sluiced: consumer groups: %" PRIu64 " commit records read back in %" PRIu64 " ms%s\n",
	    rp.n, (sl_now_ns() - t0) / 1000000, rp.bad ? " (some were not commit records)" : "");
	return 0;
fail:
	snprintf(err, errlen, "%s: %s", SL_GROUP_TOPIC, sl_strerror(ret));
	return ret;
}

void sl__groups_destroy(struct sl_server *srv)
{
	sl_groups_destroy(srv->groups);
	srv->groups = NULL;
}

/* ---- lag ------------------------------------------------------------------ */

struct sl__lag {
	uint64_t end;    /* the partition's durable end */
	uint64_t events; /* end - committed (the whole partition when none) */
	double seconds;  /* age of the event at the committed offset; 0 caught up */
	bool known;      /* the topic and partition exist */
};

static int sl__first_time(void *arg, const struct sl_log_record *rec)
{
	*(int64_t *)arg = rec->append_time_ms;
	return 1;
}

static void sl__lag_of(struct sl_server *srv, const char *topic, uint32_t p, bool has,
                       uint64_t committed, int64_t now_ms, struct sl__lag *out)
{
	memset(out, 0, sizeof(*out));
	struct sl_topic *t = sl_topics_find(&srv->topics, topic, strlen(topic));
	if (!t || p >= t->n_parts)
		return;
	struct sl_partition *part = &t->parts[p];
	out->known = true;
	out->end = atomic_load_explicit(&part->durable_pub, memory_order_acquire);
	uint64_t from =
	    has ? committed : atomic_load_explicit(&part->start_pub, memory_order_relaxed);
	if (from >= out->end)
		return;
	out->events = out->end - from;
	struct sl_log_view *v;
	int64_t at = 0;
	uint64_t next;
	if (sl_log_view_open(part->dir, &v) < 0)
		return;
	if (sl_log_view_read(v, from, out->end, 1, 1, sl__first_time, &at, &next) > 0 && at > 0)
		out->seconds = now_ms > at ? (double)(now_ms - at) / 1000.0 : 0.0;
	sl_log_view_close(v);
}

void sl__groups_status_json(struct sl_server *srv, FILE *f)
{
	struct sl_group_snap *v = NULL;
	uint32_t n = 0;
	int64_t now_ms = (int64_t)sl_wall_ms();

	fprintf(f, "[");
	if (!srv->groups || sl_groups_snapshot(srv->groups, &v, &n) < 0) {
		fprintf(f, "]");
		return;
	}
	for (uint32_t i = 0; i < n; i++) {
		const struct sl_group_snap *g = &v[i];
		/* Group, topic and client names: [A-Za-z0-9._-] (checked at the
		 * heartbeat); client names are free text: left out here. */
		fprintf(f,
		        "%s{\"name\":\"%s\",\"generation\":%u,\"rebalances\":%" PRIu64
		        ",\"partitions_moved\":%" PRIu64 ",\"partitions_reassigned\":%" PRIu64
		        ",\"members_expired\":%" PRIu64 ",\"reconciling\":%s,\"members\":[",
		        i ? "," : "", g->name, g->generation, g->rebalances, g->moved,
		        g->reassigned, g->expired, g->reconciling ? "true" : "false");
		for (uint32_t k = 0; k < g->n_members; k++)
			fprintf(f, "%s{\"id\":\"%s\",\"topic\":\"%s\",\"partitions\":%u}",
			        k ? "," : "", g->members[k].id, g->members[k].topic,
			        g->members[k].n_held);
		fprintf(f, "],\"topics\":[");
		for (uint32_t k = 0; k < g->n_topics; k++) {
			const struct sl_group_snap_topic *t = &g->topics[k];
			fprintf(f, "%s{\"name\":\"%s\",\"partitions\":[", k ? "," : "", t->name);
			bool first = true;
			for (uint32_t p = 0; p < t->n_parts; p++) {
				const struct sl_group_snap_part *sp = &t->parts[p];
				struct sl__lag lag;
				sl__lag_of(srv, t->name, p, sp->has_committed, sp->committed,
				           now_ms, &lag);
				if (!lag.known)
					continue;
				fprintf(f, "%s{\"partition\":%u,\"committed\":", first ? "" : ",",
				        p);
				first = false;
				if (sp->has_committed)
					fprintf(f, "%" PRIu64, sp->committed);
				else
					fprintf(f, "null");
				fprintf(f,
				        ",\"end_offset\":%" PRIu64 ",\"lag_events\":%" PRIu64
				        ",\"lag_seconds\":%.3f,\"member\":\"%s\"}",
				        lag.end, lag.events, lag.seconds, sp->owner);
			}
			fprintf(f, "]}");
		}
		fprintf(f, "]}");
	}
	fprintf(f, "]");
	sl_groups_snapshot_free(v, n);
}

void sl__groups_metrics(struct sl_server *srv, FILE *f)
{
	struct sl_group_snap *v = NULL;
	uint32_t n = 0;
	int64_t now_ms = (int64_t)sl_wall_ms();

	if (!srv->groups || sl_groups_snapshot(srv->groups, &v, &n) < 0 || !n) {
		sl_groups_snapshot_free(v, n);
		return;
	}
	static const struct {
		const char *name, *type, *help;
	} m[] = {
	    {"sluice_group_members", "gauge", "Members of the consumer group."},
	    {"sluice_group_generation", "gauge",
	     "The group's generation (moves on at every change of membership)."},
	    {"sluice_group_rebalances_total", "counter", "Assignments computed for the group."},
	    {"sluice_group_partitions_moved_total", "counter",
	     "Partitions taken from a live member and given to another (sticky: few)."},
	    {"sluice_group_members_expired_total", "counter",
	     "Members that went without leaving: silent past their session timeout, or "
	     "their connection closed."},
	};
	for (size_t k = 0; k < sizeof(m) / sizeof(m[0]); k++) {
		fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", m[k].name, m[k].help, m[k].name,
		        m[k].type);
		for (uint32_t i = 0; i < n; i++) {
			uint64_t x = k == 0   ? v[i].n_members
			             : k == 1 ? v[i].generation
			             : k == 2 ? v[i].rebalances
			             : k == 3 ? v[i].moved
			                      : v[i].expired;
			fprintf(f, "%s{group=\"%s\"} %" PRIu64 "\n", m[k].name, v[i].name, x);
		}
	}
	fprintf(f, "# HELP sluice_group_committed_offset The group's committed offset "
	           "(partitions it committed).\n# TYPE sluice_group_committed_offset gauge\n");
	for (uint32_t i = 0; i < n; i++)
		for (uint32_t k = 0; k < v[i].n_topics; k++)
			for (uint32_t p = 0; p < v[i].topics[k].n_parts; p++)
				if (v[i].topics[k].parts[p].has_committed)
					fprintf(f,
					        "sluice_group_committed_offset{group=\"%s\",topic="
					        "\"%s\","
					        "partition=\"%u\"} %" PRIu64 "\n",
					        v[i].name, v[i].topics[k].name, p,
					        v[i].topics[k].parts[p].committed);
	/* Each family's samples together, as the text format wants: the
	 * lags once, kept for the second family. */
	uint64_t total = 0, at = 0;
	for (uint32_t i = 0; i < n; i++)
		for (uint32_t k = 0; k < v[i].n_topics; k++)
			total += v[i].topics[k].n_parts;
	struct sl__lag *lags = calloc(total ? total : 1, sizeof(*lags));
	if (!lags) {
		sl_groups_snapshot_free(v, n);
		return;
	}
	for (uint32_t i = 0; i < n; i++)
		for (uint32_t k = 0; k < v[i].n_topics; k++)
			for (uint32_t p = 0; p < v[i].topics[k].n_parts; p++, at++)
				sl__lag_of(srv, v[i].topics[k].name, p,
				           v[i].topics[k].parts[p].has_committed,
				           v[i].topics[k].parts[p].committed, now_ms, &lags[at]);
	for (int fam = 0; fam < 2; fam++) {
		fprintf(
		    f, "%s",
		    fam ? "# HELP sluice_group_lag_seconds Age of the oldest event the group has "
		          "not consumed (0: caught up).\n# TYPE sluice_group_lag_seconds gauge\n"
		        : "# HELP sluice_group_lag_events Events of the partition past the "
		          "group's committed offset.\n# TYPE sluice_group_lag_events gauge\n");
		at = 0;
		for (uint32_t i = 0; i < n; i++)
			for (uint32_t k = 0; k < v[i].n_topics; k++)
				for (uint32_t p = 0; p < v[i].topics[k].n_parts; p++, at++) {
					if (!lags[at].known)
						continue;
					if (fam)
						fprintf(f,
						        "sluice_group_lag_seconds{group=\"%s\","
						        "topic=\"%s\","
						        "partition=\"%u\"} %.3f\n",
						        v[i].name, v[i].topics[k].name, p,
						        lags[at].seconds);
					else
						fprintf(f,
						        "sluice_group_lag_events{group=\"%s\","
						        "topic=\"%s\","
						        "partition=\"%u\"} %" PRIu64 "\n",
						        v[i].name, v[i].topics[k].name, p,
						        lags[at].events);
				}
	}
	free(lags);
	sl_groups_snapshot_free(v, n);
}
