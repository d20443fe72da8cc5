/*
 * What the HTTP port reports about the server: GET /v1/status (JSON) and
 * GET /metrics (Prometheus text). Read from any thread through the values
 * the owners publish atomically (durable and start offsets, applied
 * offsets, the connection count); nothing here touches reactor state.
 */
#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pipe/pipe.h"
#include "reactor/reactor.h"
#include "server/server.h"
#include "sink/sink.h"
#include "state/state.h"

/* open_memstream() sets buf and size at fclose: read them after it. */
static int sl__finish(FILE *f, char **body, size_t *len, char **buf, size_t *sz)
{
	if (fclose(f) != 0) {
		free(*buf);
		return -ENOMEM;
	}
	*body = *buf;
	*len = *sz;
	return 0;
}

int sl_server_status_json(struct sl_server *srv, char **body, size_t *len)
{
	char *buf = NULL;
	size_t sz = 0;
	FILE *f = open_memstream(&buf, &sz);
	if (!f)
		return -ENOMEM;
	fprintf(f, "{\"connections\":%u,\"reactors\":%u,\"topics\":[",
	        atomic_load_explicit(&srv->conns.value, memory_order_relaxed), srv->n);
	bool first = true;
	for (uint32_t t = 0; t < srv->topics.n; t++) {
		const struct sl_topic *tp = &srv->topics.v[t];
		if (atomic_load(&tp->deleted))
			continue;
		/* Topic and projection names come from the config (or a
		 * runtime create, checked the same), which allows only
		 * [A-Za-z0-9._-]: no JSON escaping needed. */
		fprintf(f, "%s{\"name\":\"%s\",\"partitions\":[", first ? "" : ",", tp->name);
		first = false;
		for (uint32_t p = 0; p < tp->n_parts; p++) {
			struct sl_partition *part = &tp->parts[p];
			fprintf(
			    f,
			    "%s{\"partition\":%u,\"start_offset\":%" PRIu64
			    ",\"end_offset\":%" PRIu64 ",\"serving\":%s,\"queue\":%" PRIu64
			    ",\"follower_lag\":%" PRIu64 ",\"pressured\":%s,\"dropped\":%" PRIu64
			    ",\"sampled_out\":%" PRIu64 ",\"rejected\":%" PRIu64
			    ",\"events_per_s\":%.1f,\"bytes_per_s\":%.1f",
			    p ? "," : "", p,
			    atomic_load_explicit(&part->start_pub, memory_order_relaxed),
			    atomic_load_explicit(&part->durable_pub, memory_order_acquire),
			    part->refused ? "false" : "true",
			    atomic_load_explicit(&part->waiting_pub, memory_order_relaxed),
			    atomic_load_explicit(&part->follower_lag_pub, memory_order_relaxed),
			    atomic_load_explicit(&part->pressured, memory_order_relaxed) ? "true"
			                                                                 : "false",
			    atomic_load_explicit(&part->dropped, memory_order_relaxed),
			    atomic_load_explicit(&part->sampled_out, memory_order_relaxed),
			    atomic_load_explicit(&part->rejected, memory_order_relaxed),
			    sl_hot_rate_events_per_s(&part->rate),
			    sl_hot_rate_bytes_per_s(&part->rate));
			/* Retention (follower names are [A-Za-z0-9._-] and a
			 * space: no escaping). */
			const char *held =
			    atomic_load_explicit(&part->held_by_pub, memory_order_relaxed);
			fprintf(
			    f,
			    ",\"log_start_offset\":%" PRIu64 ",\"retention_held_by\":%s%s%s"
			    ",\"retention_deleted_segments\":%" PRIu64
			    ",\"retention_deleted_bytes\":%" PRIu64 "}",
			    atomic_load_explicit(&part->start_pub, memory_order_relaxed),
			    held ? "\"" : "", held ? held : "null", held ? "\"" : "",
			    atomic_load_explicit(&part->retained_segments_pub,
			                         memory_order_relaxed),
			    atomic_load_explicit(&part->retained_bytes_pub, memory_order_relaxed));
		}
		fprintf(f, "]");
		sl__status_hot_topic(tp, f);
		fprintf(f, "}");
	}
	fprintf(f, "],\"projections\":[");
	for (uint32_t i = 0; i < srv->n_projs; i++) {
		const struct sl_proj *pj = &srv->projs[i];
		const struct sl_topic *t = sl__proj_serving(pj);
		uint32_t st = atomic_load_explicit(&srv->projs[i].state_pub, memory_order_acquire);
		fprintf(f,
		        "%s{\"name\":\"%s\",\"plugin\":\"%s\",\"topic\":\"%s\",\"state\":\"%s\","
		        "\"partitions\":[",
		        i ? "," : "", pj->name, pj->plugin->name, t ? t->name : pj->waits_for,
		        st == SL_PROJ_WAITING       ? "waiting_for_topic"
		        : st == SL_PROJ_BIND_FAILED ? "failed"
		                                    : "serving");
		for (uint32_t p = 0; t && p < t->n_parts; p++) {
			struct sl_proj_part *pp = &pj->parts[p];
			uint64_t end =
			    atomic_load_explicit(&pp->part->durable_pub, memory_order_acquire);
			uint64_t applied =
			    atomic_load_explicit(&pp->applied_pub, memory_order_relaxed);
			fprintf(f,
			        "%s{\"partition\":%u,\"applied_offset\":%" PRIu64
			        ",\"lag\":%" PRIu64 "}",
			        p ? "," : "", p, applied, end > applied ? end - applied : 0);
		}
		fprintf(f, "]}");
	}
	fprintf(f, "],\"sinks\":");
	sl_sinks_status_json(srv->sinks, f);
	fprintf(f, ",\"pipelines\":");
	sl_pipes_status_json(srv->pipes, f);
	fprintf(f, ",\"groups\":");
	sl__groups_status_json(srv, f);
	fprintf(f, "}\n");
	return sl__finish(f, body, len, &buf, &sz);
}

/* Age of the oldest event a projection has not applied, approximated from
 * above by the append time of the last one it read (exact while events
 * keep coming); 0 when it is caught up, absent before it read any. */
/* Partitions of a projection that serves; 0 while it waits for its topic. */
static uint32_t sl__proj_nparts(const struct sl_proj *pj)
{
	const struct sl_topic *t = sl__proj_serving(pj);
	return t ? t->n_parts : 0;
}

/* Host-state projections (engine/state): their caches and stores. Per
 * projection, the partitions summed; the cache's bytes per partition too
 * (its budget is per partition). */
static void sl__metrics_state(struct sl_server *srv, FILE *f)
{
	static const struct {
		const char *name, *type, *help;
	} m[] = {
	    {"sluice_state_cache_bytes", "gauge",
	     "Bytes of a host-state projection's caches (entries, keys, values, tables)."},
	    {"sluice_state_cache_entries", "gauge", "Keys held in its caches."},
	    {"sluice_state_cache_hits_total", "counter", "Key lookups its caches answered."},
	    {"sluice_state_cache_misses_total", "counter", "Key lookups that read its store."},
	    {"sluice_state_cache_evictions_total", "counter", "Clean keys evicted for room."},
	    {"sluice_state_commits_total", "counter",
	     "Batches of changes committed with their offsets."},
	    {"sluice_state_committed_keys_total", "counter", "Keys written by those commits."},
	    {"sluice_state_commit_failures_total", "counter",
	     "Commits that failed (retried; applying waits once the cache is full)."},
	    {"sluice_state_blocked_steps_total", "counter",
	     "Apply steps that waited for a commit to free the cache."},
	};
	bool any = false;
	for (uint32_t i = 0; i < srv->n_projs; i++)
		any |= srv->projs[i].sdb != NULL;
	if (!any)
		return;
	for (size_t k = 0; k < sizeof(m) / sizeof(m[0]); k++) {
		fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", m[k].name, m[k].help, m[k].name,
		        m[k].type);
		for (uint32_t i = 0; i < srv->n_projs; i++) {
			const struct sl_proj *pj = &srv->projs[i];
			uint64_t v[9] = {0};
			if (!pj->sdb)
				continue;
			for (uint32_t p = 0; p < sl__proj_nparts(pj); p++) {
				struct sl_state_part *sp =
				    pj->parts[p].a ? sl_applier_state(pj->parts[p].a) : NULL;
				struct sl_state_part_stats st;
				if (!sp)
					continue;
				sl_state_part_get_stats(sp, &st);
				uint64_t one[9] = {
				    st.cache_bytes,    st.entries,
				    st.hits,           st.misses,
				    st.evictions,      st.commits,
				    st.committed_keys, sl_state_part_commit_failures(sp),
				    st.blocked_steps};
				for (int j = 0; j < 9; j++)
					v[j] += one[j];
			}
			fprintf(f, "%s{projection=\"%s\"} %" PRIu64 "\n", m[k].name, pj->name,
			        v[k]);
		}
	}
	fprintf(f, "# HELP sluice_state_store_memory_bytes A host-state projection's store in "
	           "memory: memtables, block cache, index and filter blocks.\n"
	           "# TYPE sluice_state_store_memory_bytes gauge\n");
	for (uint32_t i = 0; i < srv->n_projs; i++)
		if (srv->projs[i].sdb)
			fprintf(f,
			        "sluice_state_store_memory_bytes{projection=\"%s\"} %" PRIu64 "\n",
			        srv->projs[i].name, sl_state_db_memory_bytes(srv->projs[i].sdb));
	fprintf(f, "# HELP sluice_state_store_disk_bytes Bytes of its files on disk.\n"
	           "# TYPE sluice_state_store_disk_bytes gauge\n");
	for (uint32_t i = 0; i < srv->n_projs; i++)
		if (srv->projs[i].sdb)
			fprintf(f, "sluice_state_store_disk_bytes{projection=\"%s\"} %" PRIu64 "\n",
			        srv->projs[i].name, sl_state_db_file_bytes(srv->projs[i].sdb));
}

/* Rebuilds under way (sluice projection rebuild), per partition: only
 * while one runs. */
static void sl__metrics_rebuild(struct sl_server *srv, FILE *f)
{
	fprintf(f, "# HELP sluice_projection_rebuild_phase A rebuild under way: 1 applying from "
	           "offset 0, 2 swapping (the live model held while both commit), 3 paused by a "
	           "test hook.\n"
	           "# TYPE sluice_projection_rebuild_phase gauge\n"
	           "# HELP sluice_projection_rebuild_applied The first offset the rebuild has not "
	           "applied.\n"
	           "# TYPE sluice_projection_rebuild_applied gauge\n");
	for (uint32_t i = 0; i < srv->n_projs; i++) {
		const struct sl_proj *pj = &srv->projs[i];
		/* One waiting for its topic has no partitions yet. */
		const struct sl_topic *t = sl__proj_serving(pj);
		for (uint32_t p = 0; t && p < t->n_parts; p++) {
			const struct sl_proj_part *pp = &pj->parts[p];
			uint32_t ph = atomic_load_explicit(&pp->rb_phase_pub, memory_order_relaxed);
			if (!ph)
				continue;
			fprintf(
			    f,
			    "sluice_projection_rebuild_phase{projection=\"%s\",partition=\"%u\"} "
			    "%u\n"
			    "sluice_projection_rebuild_applied{projection=\"%s\",partition=\"%u\"}"
			    " %" PRIu64 "\n",
			    pj->name, p, ph, pj->name, p,
			    atomic_load_explicit(&pp->rb_next_pub, memory_order_relaxed));
		}
	}
}

static void sl__metrics_lag_seconds(struct sl_server *srv, FILE *f)
{
	fprintf(f, "# HELP sluice_projection_lag_seconds Age of the oldest durable event not yet "
	           "applied.\n"
	           "# TYPE sluice_projection_lag_seconds gauge\n");
	int64_t now_ms = (int64_t)(sl_wall_ns() / 1000000u);
	for (uint32_t i = 0; i < srv->n_projs; i++)
		for (uint32_t p = 0; p < sl__proj_nparts(&srv->projs[i]); p++) {
			struct sl_proj_part *pp = &srv->projs[i].parts[p];
			uint64_t end =
			    atomic_load_explicit(&pp->part->durable_pub, memory_order_acquire);
			uint64_t a = atomic_load_explicit(&pp->applied_pub, memory_order_relaxed);
			int64_t t = atomic_load_explicit(&pp->applied_ms_pub, memory_order_relaxed);
			double lag = 0;
			if (a < end) {
				if (!t)
					continue;
				lag = now_ms > t ? (double)(now_ms - t) / 1000.0 : 0;
			}
			fprintf(f,
			        "sluice_projection_lag_seconds{projection=\"%s\",partition=\"%u\"} "
			        "%.3f\n",
			        srv->projs[i].name, p, lag);
		}
}

/* One line per partition of a counter or gauge read with `get`. */
static void sl__per_partition(struct sl_server *srv, FILE *f, const char *name, const char *type,
                              const char *help, double (*get)(const struct sl_partition *))
{
	fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
	for (uint32_t t = 0; t < srv->topics.n; t++)
		for (uint32_t p = 0;
		     !atomic_load(&srv->topics.v[t].deleted) && p < srv->topics.v[t].n_parts; p++)
			fprintf(f, "%s{topic=\"%s\",partition=\"%u\"} %.15g\n", name,
			        srv->topics.v[t].name, p, get(&srv->topics.v[t].parts[p]));
}

#define SL__LOAD(x) ((double)atomic_load_explicit(&(x), memory_order_relaxed))
static double sl__m_waiting(const struct sl_partition *p)
{
	return SL__LOAD(p->waiting_pub);
}
static double sl__m_flag(const struct sl_partition *p)
{
	return SL__LOAD(p->pressured) != 0;
}
static double sl__m_follow(const struct sl_partition *p)
{
	return SL__LOAD(p->follower_lag_pub);
}
static double sl__m_dropped(const struct sl_partition *p)
{
	return SL__LOAD(p->dropped);
}
static double sl__m_sampled(const struct sl_partition *p)
{
	return SL__LOAD(p->sampled_out);
}
static double sl__m_rejected(const struct sl_partition *p)
{
	return SL__LOAD(p->rejected);
}
static double sl__m_dedup(const struct sl_partition *p)
{
	return SL__LOAD(p->dedup_bytes_pub);
}
static double sl__m_dd_producers(const struct sl_partition *p)
{
	return SL__LOAD(p->dedup_producers_pub);
}
static double sl__m_dd_forgotten(const struct sl_partition *p)
{
	return SL__LOAD(p->dedup_forgotten_pub);
}
static double sl__m_dd_expired(const struct sl_partition *p)
{
	return SL__LOAD(p->dedup_expired_refused_pub);
}
static double sl__m_dd_untracked(const struct sl_partition *p)
{
	return SL__LOAD(p->dedup_untracked_pub);
}
static double sl__m_dd_untracked_stored(const struct sl_partition *p)
{
	return SL__LOAD(p->dedup_untracked_stored_pub);
}
static double sl__m_id_dups(const struct sl_partition *p)
{
	return SL__LOAD(p->id_dups_pub);
}
static double sl__m_idw_count(const struct sl_partition *p)
{
	return SL__LOAD(p->idw_count_pub);
}
static double sl__m_idw_bytes(const struct sl_partition *p)
{
	return SL__LOAD(p->idw_bytes_pub);
}
static double sl__m_pressured_s(const struct sl_partition *p)
{
	return SL__LOAD(p->pressured_ns) / 1e9;
}
static double sl__m_log_bytes(const struct sl_partition *p)
{
	return SL__LOAD(p->log_bytes_pub);
}
static double sl__m_log_rolls(const struct sl_partition *p)
{
	return SL__LOAD(p->log_rolls_pub);
}
static double sl__m_events_per_s(const struct sl_partition *p)
{
	return sl_hot_rate_events_per_s(&p->rate);
}
static double sl__m_bytes_per_s(const struct sl_partition *p)
{
	return sl_hot_rate_bytes_per_s(&p->rate);
}
static double sl__m_log_roll_s(const struct sl_partition *p)
{
	return SL__LOAD(p->log_roll_ns_pub) / 1e9;
}
static double sl__m_log_start(const struct sl_partition *p)
{
	return SL__LOAD(p->start_pub);
}
static double sl__m_retained_segments(const struct sl_partition *p)
{
	return SL__LOAD(p->retained_segments_pub);
}
static double sl__m_retained_bytes(const struct sl_partition *p)
{
	return SL__LOAD(p->retained_bytes_pub);
}
static double sl__m_retention_held(const struct sl_partition *p)
{
	return atomic_load_explicit(&p->held_by_pub, memory_order_relaxed) ? 1 : 0;
}

/* A latency histogram of every partition's log (cumulative buckets,
 * Prometheus style): `hist` and `sum_ns` are the offsets of the published
 * bucket counts and nanosecond sum in struct sl_partition. */
static void sl__log_hist(struct sl_server *srv, FILE *f, const char *name, const char *help,
                         size_t hist, size_t sum_ns)
{
	static const uint64_t le[SL_LOG_SYNC_BUCKETS] = SL_LOG_SYNC_BUCKETS_US;
	fprintf(f, "# HELP %s %s\n# TYPE %s histogram\n", name, help, name);
	for (uint32_t t = 0; t < srv->topics.n; t++)
		for (uint32_t p = 0; p < srv->topics.v[t].n_parts; p++) {
			const struct sl_partition *part = &srv->topics.v[t].parts[p];
			const _Atomic uint64_t *h =
			    (const _Atomic uint64_t *)((const char *)part + hist);
			const _Atomic uint64_t *sum =
			    (const _Atomic uint64_t *)((const char *)part + sum_ns);
			const char *topic = srv->topics.v[t].name;
			uint64_t cum = 0;
			for (uint32_t k = 0; k < SL_LOG_SYNC_BUCKETS; k++) {
				char bound[32];
				cum += atomic_load_explicit(&h[k], memory_order_relaxed);
				if (le[k] == UINT64_MAX)
					snprintf(bound, sizeof(bound), "+Inf");
				else
					snprintf(bound, sizeof(bound), "%g", (double)le[k] / 1e6);
				fprintf(
				    f,
				    "%s_bucket{topic=\"%s\",partition=\"%u\",le=\"%s\"} %" PRIu64
				    "\n",
				    name, topic, p, bound, cum);
			}
			fprintf(f, "%s_sum{topic=\"%s\",partition=\"%u\"} %.6f\n", name, topic, p,
			        (double)atomic_load_explicit(sum, memory_order_relaxed) / 1e9);
			fprintf(f, "%s_count{topic=\"%s\",partition=\"%u\"} %" PRIu64 "\n", name,
			        topic, p, cum);
		}
}

/* The reactors' journals (log.h): their fdatasyncs, one per group commit
 * of all their fsync-policy partitions. */
static void sl__metrics_journal(struct sl_server *srv, FILE *f)
{
	static const uint64_t le[SL_LOG_SYNC_BUCKETS] = SL_LOG_SYNC_BUCKETS_US;
	const struct sl_topics *t = &srv->topics;
	if (!t->n_journals)
		return;
	fprintf(f, "# HELP sluice_journal_sync_seconds fdatasyncs of the reactor's journal (one "
	           "per group commit of all its fsync partitions): latency, queued to completed.\n"
	           "# TYPE sluice_journal_sync_seconds histogram\n");
	for (uint32_t r = 0; r < t->n_journals; r++) {
		struct sl_journal_stats st;
		uint64_t cum = 0;
		if (!t->journals[r])
			continue;
		sl_journal_read_stats(t->journals[r], &st);
		for (uint32_t k = 0; k < SL_LOG_SYNC_BUCKETS; k++) {
			cum += st.sync_hist[k];
			if (le[k] == UINT64_MAX)
				fprintf(f,
				        "sluice_journal_sync_seconds_bucket{reactor=\"%u\",le=\"+"
				        "Inf\"} "
				        "%" PRIu64 "\n",
				        r, cum);
			else
				fprintf(
				    f,
				    "sluice_journal_sync_seconds_bucket{reactor=\"%u\",le=\"%g\"} "
				    "%" PRIu64 "\n",
				    r, (double)le[k] / 1e6, cum);
		}
		fprintf(f, "sluice_journal_sync_seconds_sum{reactor=\"%u\"} %.6f\n", r,
		        (double)st.sync_ns / 1e9);
		fprintf(f, "sluice_journal_sync_seconds_count{reactor=\"%u\"} %" PRIu64 "\n", r,
		        cum);
	}
	static const struct {
		const char *name, *help;
		size_t off;
	} c[] = {
	    {"sluice_journal_written_bytes_total", "Bytes the reactor's journal wrote.",
	     offsetof(struct sl_journal_stats, bytes)},
	    {"sluice_journal_chunks_total", "Partition group commits the journal carried.",
	     offsetof(struct sl_journal_stats, chunks)},
	    {"sluice_journal_segment_writes_total",
	     "Writes of journaled bytes to their partitions' segments.",
	     offsetof(struct sl_journal_stats, segment_writes)},
	    {"sluice_journal_checkpoints_total",
	     "Journal files retired (the segments they covered synced, the file deleted).",
	     offsetof(struct sl_journal_stats, checkpoints)},
	};
	for (size_t i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
		fprintf(f, "# HELP %s %s\n# TYPE %s counter\n", c[i].name, c[i].help, c[i].name);
		for (uint32_t r = 0; r < t->n_journals; r++) {
			struct sl_journal_stats st;
			uint64_t v;
			if (!t->journals[r])
				continue;
			sl_journal_read_stats(t->journals[r], &st);
			memcpy(&v, (const char *)&st + c[i].off, sizeof(v));
			fprintf(f, "%s{reactor=\"%u\"} %" PRIu64 "\n", c[i].name, r, v);
		}
	}
}

static void sl__metrics_log(struct sl_server *srv, FILE *f)
{
	sl__metrics_journal(srv, f);
	sl__per_partition(srv, f, "sluice_log_written_bytes_total", "counter",
	                  "Bytes the partition's log wrote (batch headers included).",
	                  sl__m_log_bytes);
	sl__log_hist(srv, f, "sluice_log_sync_seconds",
	             "fdatasyncs (group commits) of the partition's own log: latency, queued to "
	             "completed (interval and none policies; fsync partitions sync through "
	             "their reactor's journal: sluice_journal_sync_seconds).",
	             offsetof(struct sl_partition, log_sync_hist_pub),
	             offsetof(struct sl_partition, log_sync_ns_pub));
	sl__log_hist(srv, f, "sluice_log_commit_seconds",
	             "Group commits of the partition's log: from the append of the group's first "
	             "event until the group is durable under the topic's policy (its wait for a "
	             "sync already in flight included).",
	             offsetof(struct sl_partition, log_commit_hist_pub),
	             offsetof(struct sl_partition, log_commit_ns_pub));
	sl__per_partition(srv, f, "sluice_log_segment_rolls_total", "counter",
	                  "Segment rolls (seal, checkpoint, next segment).", sl__m_log_rolls);
	sl__per_partition(srv, f, "sluice_log_segment_roll_seconds_total", "counter",
	                  "Time the rolls took on the partition's reactor (the reactor waits).",
	                  sl__m_log_roll_s);
	sl__per_partition(srv, f, "sluice_log_start_offset", "gauge",
	                  "The partition's first stored offset (retention moves it).",
	                  sl__m_log_start);
	sl__per_partition(srv, f, "sluice_retention_deleted_segments_total", "counter",
	                  "Segments retention deleted (by size or age).", sl__m_retained_segments);
	sl__per_partition(srv, f, "sluice_retention_deleted_bytes_total", "counter",
	                  "Bytes of the segments retention deleted.", sl__m_retained_bytes);
	sl__per_partition(srv, f, "sluice_retention_held", "gauge",
	                  "1 while a projection, sink or pipeline that has not read a segment past "
	                  "the limits keeps it (status names it: retention_held_by).",
	                  sl__m_retention_held);
}

static void sl__metrics_pressure(struct sl_server *srv, FILE *f)
{
	sl__per_partition(srv, f, "sluice_partition_queue_events", "gauge",
	                  "Events appended and waiting for durability (the partition's queue).",
	                  sl__m_waiting);
	sl__per_partition(srv, f, "sluice_partition_follower_lag_events", "gauge",
	                  "Events the slowest projection or sink of the partition is behind.",
	                  sl__m_follow);
	sl__per_partition(srv, f, "sluice_partition_pressured", "gauge",
	                  "1 while the partition is over a bound and its overload policy applies.",
	                  sl__m_flag);
	sl__per_partition(srv, f, "sluice_partition_pressured_seconds_total", "counter",
	                  "Time the partition spent pressured (finished spells).",
	                  sl__m_pressured_s);
	sl__per_partition(srv, f, "sluice_partition_sequence_table_bytes", "gauge",
	                  "Memory of the partition's producer sequence table (exactly once).",
	                  sl__m_dedup);
	sl__per_partition(srv, f, "sluice_partition_producers", "gauge",
	                  "Producer ids the partition's sequence table tracks.",
	                  sl__m_dd_producers);
	sl__per_partition(srv, f, "sluice_producers_expired_total", "counter",
	                  "Producer ids the partition forgot: idle past producer_expiry, or the "
	                  "least recently used past the table's bound.",
	                  sl__m_dd_forgotten);
	sl__per_partition(srv, f, "sluice_producer_expired_refused_total", "counter",
	                  "Resent events refused with ERR_PRODUCER_EXPIRED (their producer may "
	                  "have been forgotten after storing them).",
	                  sl__m_dd_expired);
	sl__per_partition(srv, f, "sluice_untracked_refused_total", "counter",
	                  "Events refused with ERR_UNTRACKED (no memory to track their sequence).",
	                  sl__m_dd_untracked);
	sl__per_partition(srv, f, "sluice_untracked_stored_total", "counter",
	                  "Events stored without a sequence entry (a follower out of memory); "
	                  "0 on a leader, which refuses instead.",
	                  sl__m_dd_untracked_stored);
	sl__per_partition(srv, f, "sluice_id_duplicates_total", "counter",
	                  "Events answered as duplicates because their id was in the partition's "
	                  "window (dedup_window), not stored again.",
	                  sl__m_id_dups);
	sl__per_partition(
	    srv, f, "sluice_partition_id_window_entries", "gauge",
	    "Event ids in the partition's window (dedup_window, dedup_window_events).",
	    sl__m_idw_count);
	sl__per_partition(srv, f, "sluice_partition_id_window_bytes", "gauge",
	                  "Memory of the partition's event-id window.", sl__m_idw_bytes);
	sl__per_partition(srv, f, "sluice_overload_dropped_total", "counter",
	                  "Events shed by the drop policy.", sl__m_dropped);
	sl__per_partition(srv, f, "sluice_overload_sampled_out_total", "counter",
	                  "Events shed by the sample policy.", sl__m_sampled);
	sl__per_partition(srv, f, "sluice_overload_rejected_total", "counter",
	                  "Events refused by the reject policy.", sl__m_rejected);
}

static void sl__metrics_credits(struct sl_server *srv, FILE *f)
{
	uint64_t events = 0, frames = 0, held = 0, held_ns = 0, cut = 0;
	for (uint32_t i = 0; i < srv->n; i++) {
		struct sl_reactor_credit_stats cs;
		sl_reactor_get_credit_stats(srv->reactors[i], &cs);
		events += cs.granted_events;
		frames += cs.frames;
		held += cs.held_now;
		held_ns += cs.held_ns;
		cut += cs.cut;
	}
	int64_t pool = sl_credit_pool_avail(&srv->credits);
	fprintf(f,
	        "# HELP sluice_credit_pool_bytes Credit bytes (3/8 of the memory budget) not "
	        "granted to any connection.\n"
	        "# TYPE sluice_credit_pool_bytes gauge\n"
	        "sluice_credit_pool_bytes %" PRId64 "\n"
	        "# HELP sluice_credit_outstanding_bytes Credit bytes held by connections or in "
	        "flight.\n"
	        "# TYPE sluice_credit_outstanding_bytes gauge\n"
	        "sluice_credit_outstanding_bytes %" PRId64 "\n"
	        "# HELP sluice_credit_connections Connections holding a credit window.\n"
	        "# TYPE sluice_credit_connections gauge\n"
	        "sluice_credit_connections %u\n"
	        "# HELP sluice_credit_granted_events_total Event credits granted (Welcome and "
	        "Credit).\n"
	        "# TYPE sluice_credit_granted_events_total counter\n"
	        "sluice_credit_granted_events_total %" PRIu64 "\n"
	        "# HELP sluice_credit_frames_total Credit frames sent.\n"
	        "# TYPE sluice_credit_frames_total counter\n"
	        "sluice_credit_frames_total %" PRIu64 "\n"
	        "# HELP sluice_credit_blocked_connections Producers waiting for credits now.\n"
	        "# TYPE sluice_credit_blocked_connections gauge\n"
	        "sluice_credit_blocked_connections %" PRIu64 "\n"
	        "# HELP sluice_credit_blocked_seconds_total Time producers spent waiting for "
	        "credits (finished waits).\n"
	        "# TYPE sluice_credit_blocked_seconds_total counter\n"
	        "sluice_credit_blocked_seconds_total %.3f\n"
	        "# HELP sluice_credit_violations_total Connections cut off for sending beyond "
	        "their credits.\n"
	        "# TYPE sluice_credit_violations_total counter\n"
	        "sluice_credit_violations_total %" PRIu64 "\n",
	        pool, (int64_t)srv->credits.total - pool, sl_credit_pool_credited(&srv->credits),
	        events, frames, held, (double)held_ns / 1e9, cut);
}

int sl_server_metrics_text(struct sl_server *srv, char **body, size_t *len)
{
	char *buf = NULL;
	size_t sz = 0;
	FILE *f = open_memstream(&buf, &sz);
	if (!f)
		return -ENOMEM;
	fprintf(f,
	        "# HELP sluice_connections Open client connections.\n"
	        "# TYPE sluice_connections gauge\n"
	        "sluice_connections %u\n"
	        "# HELP sluice_connections_refused_total Native connections refused at accept, "
	        "by the limit that refused them.\n"
	        "# TYPE sluice_connections_refused_total counter\n"
	        "sluice_connections_refused_total{limit=\"max_connections\"} %" PRIu64 "\n"
	        "sluice_connections_refused_total{limit=\"max_connections_per_ip\"} %" PRIu64 "\n",
	        atomic_load_explicit(&srv->conns.value, memory_order_relaxed),
	        atomic_load_explicit(&srv->refused.value[0], memory_order_relaxed),
	        atomic_load_explicit(&srv->refused.value[1], memory_order_relaxed));
	fprintf(f,
	        "# HELP sluice_partition_end_offset Next offset of the partition (durable end).\n"
	        "# TYPE sluice_partition_end_offset gauge\n");
	for (uint32_t t = 0; t < srv->topics.n; t++)
		for (uint32_t p = 0; p < srv->topics.v[t].n_parts; p++)
			fprintf(
			    f,
			    "sluice_partition_end_offset{topic=\"%s\",partition=\"%u\"} %" PRIu64
			    "\n",
			    srv->topics.v[t].name, p,
			    atomic_load_explicit(&srv->topics.v[t].parts[p].durable_pub,
			                         memory_order_acquire));
	fprintf(f, "# HELP sluice_projection_applied_offset Next offset the projection applies.\n"
	           "# TYPE sluice_projection_applied_offset gauge\n");
	for (uint32_t i = 0; i < srv->n_projs; i++)
		for (uint32_t p = 0; p < sl__proj_nparts(&srv->projs[i]); p++)
			fprintf(f,
			        "sluice_projection_applied_offset{projection=\"%s\",partition=\"%"
			        "u\"} %" PRIu64 "\n",
			        srv->projs[i].name, p,
			        atomic_load_explicit(&srv->projs[i].parts[p].applied_pub,
			                             memory_order_relaxed));
	fprintf(f, "# HELP sluice_projection_lag_events Durable events not yet applied.\n"
	           "# TYPE sluice_projection_lag_events gauge\n");
	for (uint32_t i = 0; i < srv->n_projs; i++)
		for (uint32_t p = 0; p < sl__proj_nparts(&srv->projs[i]); p++) {
			struct sl_proj_part *pp = &srv->projs[i].parts[p];
			uint64_t end =
			    atomic_load_explicit(&pp->part->durable_pub, memory_order_acquire);
			uint64_t a = atomic_load_explicit(&pp->applied_pub, memory_order_relaxed);
			fprintf(f,
			        "sluice_projection_lag_events{projection=\"%s\",partition=\"%u\"} "
			        "%" PRIu64 "\n",
			        srv->projs[i].name, p, end > a ? end - a : 0);
		}
	fprintf(f, "# HELP sluice_projection_waiting_for_topic 1 while the projection waits for "
	           "its topic to be created.\n"
	           "# TYPE sluice_projection_waiting_for_topic gauge\n");
	for (uint32_t i = 0; i < srv->n_projs; i++) {
		const struct sl_proj *pj = &srv->projs[i];
		const struct sl_topic *t = sl__proj_serving(pj);
		fprintf(f,
		        "sluice_projection_waiting_for_topic{projection=\"%s\",topic=\"%s\"} %d\n",
		        pj->name,
		        t               ? t->name
		        : pj->waits_for ? pj->waits_for
		                        : "",
		        atomic_load_explicit(&srv->projs[i].state_pub, memory_order_acquire) ==
		            SL_PROJ_WAITING);
	}
	sl__metrics_lag_seconds(srv, f);
	sl__metrics_state(srv, f);
	sl__metrics_rebuild(srv, f);
	sl__metrics_pressure(srv, f);
	sl__per_partition(srv, f, "sluice_partition_events_per_second", "gauge",
	                  "Events appended to the partition per second, over the last 10 s.",
	                  sl__m_events_per_s);
	sl__per_partition(srv, f, "sluice_partition_bytes_per_second", "gauge",
	                  "Bytes the partition's log wrote per second (batch headers included), "
	                  "over the last 10 s.",
	                  sl__m_bytes_per_s);
	sl__metrics_hot(srv, f);
	sl__metrics_log(srv, f);
	sl__metrics_credits(srv, f);
	sl__groups_metrics(srv, f);
	uint64_t native_auth = 0;
	for (uint32_t i = 0; i < srv->n; i++)
		native_auth += sl_reactor_auth_failures(srv->reactors[i]);
	fprintf(f,
	        "# HELP sluice_auth_failures_total Requests refused for a missing or wrong "
	        "token (auth).\n"
	        "# TYPE sluice_auth_failures_total counter\n"
	        "sluice_auth_failures_total{port=\"native\"} %" PRIu64 "\n"
	        "sluice_auth_failures_total{port=\"http\"} %" PRIu64 "\n",
	        native_auth, atomic_load_explicit(&srv->http_auth_failures, memory_order_relaxed));
	sl_sinks_metrics(srv->sinks, f);
	sl_pipes_metrics(srv->pipes, f);
	sl__cluster_metrics(srv, f);
	return sl__finish(f, body, len, &buf, &sz);
}
