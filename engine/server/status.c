/*
 * What the HTTP port reports about the server: GET /v1/status (JSON) and
 * GET /metrics (Prometheus text). Read from any thread through the values
 * the owners publish atomically (durable and start offsets, applied
 * offsets, the connection count); nothing here touches reactor state.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/server.h"

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
	for (uint32_t t = 0; t < srv->topics.n; t++) {
		const struct sl_topic *tp = &srv->topics.v[t];
		/* Topic and projection names come from the config, which
		 * allows only [A-Za-z0-9._-]: no JSON escaping needed. */
		fprintf(f, "%s{\"name\":\"%s\",\"partitions\":[", t ? "," : "", tp->name);
		for (uint32_t p = 0; p < tp->n_parts; p++) {
			struct sl_partition *part = &tp->parts[p];
			fprintf(f, "%s{\"partition\":%u,\"start_offset\":%" PRIu64 ",\"end_offset\":%" PRIu64
				   ",\"serving\":%s}",
				p ? "," : "", p,
				atomic_load_explicit(&part->start_pub, memory_order_relaxed),
				atomic_load_explicit(&part->durable_pub, memory_order_acquire),
				part->log ? "true" : "false");
		}
		fprintf(f, "]}");
	}
	fprintf(f, "],\"projections\":[");
	for (uint32_t i = 0; i < srv->n_projs; i++) {
		const struct sl_proj *pj = &srv->projs[i];
		fprintf(f, "%s{\"name\":\"%s\",\"plugin\":\"%s\",\"topic\":\"%s\",\"partitions\":[",
			i ? "," : "", pj->name, pj->plugin->name, pj->topic->name);
		for (uint32_t p = 0; p < pj->topic->n_parts; p++) {
			struct sl_proj_part *pp = &pj->parts[p];
			uint64_t end = atomic_load_explicit(&pp->part->durable_pub, memory_order_acquire);
			uint64_t applied = atomic_load_explicit(&pp->applied_pub, memory_order_relaxed);
			fprintf(f, "%s{\"partition\":%u,\"applied_offset\":%" PRIu64 ",\"lag\":%" PRIu64 "}",
				p ? "," : "", p, applied, end > applied ? end - applied : 0);
		}
		fprintf(f, "]}");
	}
	fprintf(f, "]}\n");
	return sl__finish(f, body, len, &buf, &sz);
}

int sl_server_metrics_text(struct sl_server *srv, char **body, size_t *len)
{
	char *buf = NULL;
	size_t sz = 0;
	FILE *f = open_memstream(&buf, &sz);
	if (!f)
		return -ENOMEM;
	fprintf(f, "# HELP sluice_connections Open client connections.\n"
		   "# TYPE sluice_connections gauge\n"
		   "sluice_connections %u\n",
		atomic_load_explicit(&srv->conns.value, memory_order_relaxed));
	fprintf(f, "# HELP sluice_partition_end_offset Next offset of the partition (durable end).\n"
		   "# TYPE sluice_partition_end_offset gauge\n");
	for (uint32_t t = 0; t < srv->topics.n; t++)
		for (uint32_t p = 0; p < srv->topics.v[t].n_parts; p++)
			fprintf(f, "sluice_partition_end_offset{topic=\"%s\",partition=\"%u\"} %" PRIu64 "\n",
				srv->topics.v[t].name, p,
				atomic_load_explicit(&srv->topics.v[t].parts[p].durable_pub,
						     memory_order_acquire));
	fprintf(f, "# HELP sluice_projection_applied_offset Next offset the projection applies.\n"
		   "# TYPE sluice_projection_applied_offset gauge\n");
	for (uint32_t i = 0; i < srv->n_projs; i++)
		for (uint32_t p = 0; p < srv->projs[i].topic->n_parts; p++)
			fprintf(f, "sluice_projection_applied_offset{projection=\"%s\",partition=\"%u\"} %" PRIu64 "\n",
				srv->projs[i].name, p,
				atomic_load_explicit(&srv->projs[i].parts[p].applied_pub,
						     memory_order_relaxed));
	fprintf(f, "# HELP sluice_projection_lag_events Durable events not yet applied.\n"
		   "# TYPE sluice_projection_lag_events gauge\n");
	for (uint32_t i = 0; i < srv->n_projs; i++)
		for (uint32_t p = 0; p < srv->projs[i].topic->n_parts; p++) {
			struct sl_proj_part *pp = &srv->projs[i].parts[p];
			uint64_t end = atomic_load_explicit(&pp->part->durable_pub, memory_order_acquire);
			uint64_t a = atomic_load_explicit(&pp->applied_pub, memory_order_relaxed);
			fprintf(f, "sluice_projection_lag_events{projection=\"%s\",partition=\"%u\"} %" PRIu64 "\n",
				srv->projs[i].name, p, end > a ? end - a : 0);
		}
	return sl__finish(f, body, len, &buf, &sz);
}
