/*
 * Hot partitions and hot keys in /v1/status and /metrics (hot/hot.h): the
 * partitions' rates as their owners published them, each topic's skew
 * (the busiest partition's rate over the mean of all), and its top
 * hot_keys aggregate ids merged here from the summaries each reactor
 * published. HTTP threads; nothing here touches reactor state.
 */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

#include "server/server.h"

double sl__topic_skew(const struct sl_topic *t)
{
	double max = 0, sum = 0;
	for (uint32_t p = 0; p < t->n_parts; p++) {
		double r = sl_hot_rate_events_per_s(&t->parts[p].rate);
		sum += r;
		if (r > max)
			max = r;
	}
	/* 0 for a quiet topic: max over mean is undefined there. */
	return sum > 0 ? max / (sum / t->n_parts) : 0;
}

uint32_t sl__topic_hot_keys(const struct sl_topic *t, struct sl_hot_key *out)
{
	uint32_t k = t->spec.hot_keys, n = 0, got = 0;
	if (!t->hot || !k)
		return 0;
	struct sl_hot_snap *snaps = malloc(t->n_hot * sizeof(*snaps));
	if (!snaps)
		return 0;
	for (uint32_t r = 0; r < t->n_hot; r++)
		/* A summary its owner keeps rewriting is left out this time. */
		if (t->hot[r] && sl_hot_read(t->hot[r], &snaps[n]) == 0)
			n++;
	got = sl_hot_top(snaps, n, k, out);
	free(snaps);
	return got;
}

void sl__status_hot_topic(const struct sl_topic *t, FILE *f)
{
	struct sl_hot_key keys[SL_HOT_K_MAX];
	char text[SL_HOT_KEY_TEXT];
	uint32_t n = sl__topic_hot_keys(t, keys);
	fprintf(f, ",\"skew\":%.3f,\"hot_partition_factor\":%u,\"hot_keys\":[", sl__topic_skew(t),
	        atomic_load_explicit(&t->hot_factor, memory_order_relaxed));
	for (uint32_t i = 0; i < n; i++) {
		sl_hot_key_quote(&keys[i], text, sizeof(text));
		fprintf(f,
		        "%s{\"key\":\"%s\",\"key_bytes\":%u,\"partition\":%u,\"events_per_s\":%.1f,"
		        "\"error\":%.1f}",
		        i ? "," : "", text, keys[i].len, keys[i].part, keys[i].events_per_s,
		        keys[i].error_per_s);
	}
	fprintf(f, "]");
}

void sl__metrics_hot(struct sl_server *srv, FILE *f)
{
	uint32_t n_topics = atomic_load(&srv->topics.n);
	fprintf(f, "# HELP sluice_topic_partition_skew The busiest partition's event rate over the "
	           "mean of the topic's partitions (1: even; 0: no events).\n"
	           "# TYPE sluice_topic_partition_skew gauge\n");
	for (uint32_t t = 0; t < n_topics; t++)
		if (!atomic_load(&srv->topics.v[t].deleted))
			fprintf(f, "sluice_topic_partition_skew{topic=\"%s\"} %.3f\n",
			        srv->topics.v[t].name, sl__topic_skew(&srv->topics.v[t]));
	/* The key is a label, as sl_hot_key_quote writes it (printable ASCII,
	 * other bytes \\xHH, "..." when cut): a scrape holds at most
	 * hot_keys series a topic, though which keys they name changes. */
	static const char *const name[2] = {"sluice_topic_hot_key_events_per_second",
	                                    "sluice_topic_hot_key_error_events_per_second"};
	static const char *const help[2] = {
	    "A hot key's recent event rate (hot_keys busiest aggregate ids by rank; an "
	    "overestimate by at most the error).",
	    "How much the hot key's rate may be overestimated (Space-Saving's error)."};
	uint32_t *nk = calloc(n_topics ? n_topics : 1, sizeof(*nk));
	struct sl_hot_key **all = calloc(n_topics ? n_topics : 1, sizeof(*all));
	if (!nk || !all)
		goto out;
	for (uint32_t t = 0; t < n_topics; t++)
		if (!atomic_load(&srv->topics.v[t].deleted) &&
		    (all[t] = malloc(SL_HOT_K_MAX * sizeof(**all))))
			nk[t] = sl__topic_hot_keys(&srv->topics.v[t], all[t]);
	/* Both metrics from one reading, so that they name the same keys. */
	for (int m = 0; m < 2; m++) {
		char text[SL_HOT_KEY_TEXT];
		fprintf(f, "# HELP %s %s\n# TYPE %s gauge\n", name[m], help[m], name[m]);
		for (uint32_t t = 0; t < n_topics; t++)
			for (uint32_t i = 0; i < nk[t]; i++) {
				sl_hot_key_quote(&all[t][i], text, sizeof(text));
				fprintf(f, "%s{topic=\"%s\",rank=\"%u\",key=\"%s\"} %.1f\n",
				        name[m], srv->topics.v[t].name, i + 1, text,
				        m ? all[t][i].error_per_s : all[t][i].events_per_s);
			}
	}
out:
	for (uint32_t t = 0; all && t < n_topics; t++)
		free(all[t]);
	free(all);
	free(nk);
}
