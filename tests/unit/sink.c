/*
 * The sink runtime (engine/sink) inside a real in-process server: reactors,
 * io_uring, loopback sockets, the wire protocol (tests/unit/wire_client.h),
 * and the test-only flaky_sink plugin (tests/plugins/flaky_sink.c), which
 * appends "PARTITION OFFSET" per event to a file and fails or stalls on
 * demand.
 *
 * What is checked is what the outside world holds (the file): every acked
 * event exactly once, in offset order per partition, after failures that
 * open and close the circuit breaker, with one partition failing while the
 * others go on, and across a restart where the outside world lost its tail
 * (the sink resumes where the plugin says, not where the host last was).
 *
 * Waits are on the sinks' own notification (sl_sinks_wait: woken after
 * every write attempt and breaker change), bounded by a deadline; nothing
 * sleeps.
 */
#include <criterion/criterion.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/base.h"
#include "config/config.h"
#include "proto/proto.h"
#include "server/server.h"
#include "sink/breaker.h"
#include "sink/sink.h"
#include "wire_client.h"

#define N_PARTS     4
#define DEADLINE_NS (UINT64_C(60) * 1000000000u)

static struct sl_topic_spec g_topics[] = {
    {.name = "events", .n_parts = N_PARTS, .partitioner = SL_PART_HASH},
};

struct fixture {
	struct sl_server *srv;
	uint16_t port;
	char dir[64];
	char out[128];  /* the flaky sink's file */
	char flag[128]; /* its fail_until_file */
	struct sl_config_node *args;
};

/* Starts a server on f->dir (which exists) with one sink named "flaky":
 * plugin `plugin`, args parsed from `args_yaml`, circuit k / cooldown_ns
 * (0: the defaults). Returns what sl_server_create returned. */
static int start_sink_server(struct fixture *f, const char *plugin, const char *args_yaml,
                             uint32_t k, uint64_t cooldown_ns, char *err, size_t errlen)
{
	sl_config_node_free(f->args);
	f->args = NULL;
	cr_assert_eq(
	    sl_config_node_parse(args_yaml, strlen(args_yaml), "args", &f->args, err, errlen), 0,
	    "%s", err);
	static const char *const path[] = {SL_TEST_PLUGIN_DIR, SL_PLUGIN_DIR};
	struct sl_server_sink_spec sink = {
	    .name = "flaky",
	    .plugin = plugin,
	    .topic = 0,
	    .args = f->args,
	    .circuit_failures = k,
	    .circuit_cooldown_ns = cooldown_ns,
	};
	struct sl_server_opts o = {
	    TU_SERVER_OPTS(f->dir, 2), .topics = g_topics, .n_topics = 1,  .pin = true,
	    .plugin_path = path,       .n_plugin_path = 2, .sinks = &sink, .n_sinks = 1,
	};
	int ret = sl_server_create(&o, &f->srv, err, errlen);
	if (ret < 0)
		return ret;
	cr_assert_eq(sl_server_start(f->srv), 0);
	f->port = sl_server_native_port(f->srv);
	return 0;
}

static void start_flaky(struct fixture *f, const char *extra_args, uint32_t k, uint64_t cooldown_ns,
                        bool keep_dir)
{
	char yaml[512], err[512];
	if (!keep_dir) {
		snprintf(f->dir, sizeof(f->dir), "/tmp/sluice-sink-test-XXXXXX");
		cr_assert_not_null(mkdtemp(f->dir));
		snprintf(f->out, sizeof(f->out), "%s/sink.out", f->dir);
		snprintf(f->flag, sizeof(f->flag), "%s/fail.flag", f->dir);
	}
	snprintf(yaml, sizeof(yaml), "path: %s\nfail_until_file: %s\n%s", f->out, f->flag,
	         extra_args);
	int ret = start_sink_server(f, "flaky_sink", yaml, k, cooldown_ns, err, sizeof(err));
	cr_assert_eq(ret, 0, "server: %s", err);
}

static void halt(struct fixture *f)
{
	tu_server_halt(&f->srv);
}

static void finish(struct fixture *f)
{
	if (f->srv)
		halt(f);
	sl_config_node_free(f->args);
	f->args = NULL;
	rm_dir(f->dir);
}

/* ---- producing over the wire ------------------------------------------------------ */

struct session {
	int fd;
	uint32_t epoch;
	uint64_t next_sequence;
};

static struct session hello(uint16_t port)
{
	struct session s = {.fd = dial(port)};
	Sluice__V1__Hello h = SLUICE__V1__HELLO__INIT;
	h.min_version = 1;
	h.max_version = 1;
	h.client_name = "sink test";
	send_msg(s.fd, SLUICE__V1__FRAME_TYPE__FRAME_HELLO, &h.base);
	uint8_t *body;
	uint32_t len;
	int type = read_frame(s.fd, &body, &len);
	cr_assert_eq(type, SLUICE__V1__FRAME_TYPE__FRAME_WELCOME, "expected Welcome, got %d", type);
	Sluice__V1__Welcome *w = sluice__v1__welcome__unpack(NULL, len, body);
	free(body);
	cr_assert_not_null(w);
	s.epoch = w->epoch;
	s.next_sequence = w->next_sequence;
	sluice__v1__welcome__free_unpacked(w, NULL);
	return s;
}

/* Where each acked event went; `ends` is each partition's end offset. */
struct acked {
	uint64_t ends[N_PARTS];
	uint64_t total;
};

/* Produces n events (aggregates over 64 keys, so every partition gets
 * some) in frames of 256, each frame's acks read before the next, and
 * records where they were stored. */
static void produce(uint16_t port, uint32_t n, struct acked *acked)
{
	static uint8_t buf[1 << 18];
	struct session s = hello(port);
	for (uint32_t done = 0; done < n;) {
		uint32_t m = n - done < 256 ? n - done : 256;
		uint64_t base = s.next_sequence;
		struct sl_produce_builder b;
		cr_assert_eq(sl_produce_begin(&b, buf, sizeof(buf), "events", 6, base, s.epoch), 0);
		for (uint32_t i = 0; i < m; i++) {
			char agg[32], data[64];
			uint8_t id[16] = {0};
			uint64_t k = acked->total + done + i;
			memcpy(id, &k, sizeof(k));
			id[8] = 0x5c;
			snprintf(agg, sizeof(agg), "key-%llu", (unsigned long long)(k % 64));
			snprintf(data, sizeof(data), "{\"k\":%llu}", (unsigned long long)k);
			struct sl_event_view v = {
			    .id = id,
			    .type = "T",
			    .type_len = 1,
			    .aggregate = agg,
			    .aggregate_len = strlen(agg),
			    .timestamp_ms = 1,
			    .data = (const uint8_t *)data,
			    .data_len = strlen(data),
			};
			cr_assert_geq(sl_produce_add_event(&b, &v, NULL, 0), 0);
		}
		int len = sl_produce_finish(&b);
		cr_assert_gt(len, 0);
		send_all(s.fd, buf, (size_t)len);
		for (uint32_t left = m; left;) {
			uint8_t *body;
			uint32_t blen;
			int type = read_frame(s.fd, &body, &blen);
			cr_assert_eq(type, SLUICE__V1__FRAME_TYPE__FRAME_ACK,
			             "expected Ack, got %d", type);
			Sluice__V1__Ack *a = sluice__v1__ack__unpack(NULL, blen, body);
			free(body);
			cr_assert_not_null(a);
			cr_assert_eq(a->n_rejects, 0, "events refused");
			for (size_t p = 0; p < a->n_parts; p++) {
				Sluice__V1__AckPart *pt = a->parts[p];
				cr_assert_lt(pt->partition, N_PARTS);
				cr_assert(!pt->duplicate);
				for (size_t k = 0; k < pt->n_index; k++) {
					uint64_t off =
					    pt->n_offsets ? pt->offsets[k] : pt->base_offset + k;
					if (off + 1 > acked->ends[pt->partition])
						acked->ends[pt->partition] = off + 1;
				}
				cr_assert_leq(pt->n_index, left);
				left -= (uint32_t)pt->n_index;
			}
			sluice__v1__ack__free_unpacked(a, NULL);
		}
		s.next_sequence += m;
		done += m;
	}
	acked->total += n;
	close(s.fd);
}

/* ---- waiting and checking ------------------------------------------------------------ */

static struct sl_sink_part_stats part_stats(const struct fixture *f, uint32_t p)
{
	struct sl_sink_part_stats st;
	cr_assert_eq(sl_sinks_part_stats(f->srv->sinks, 0, p, &st), 0);
	return st;
}

/* What a wait watches: partition p's done offset reaching `end`, or its
 * circuit having opened `opens` times. */
struct watch {
	const struct fixture *f;
	uint32_t p;
	uint64_t end, opens;
};

static bool watch_done(void *arg)
{
	const struct watch *w = arg;
	return part_stats(w->f, w->p).done >= w->end;
}

static bool watch_opens(void *arg)
{
	const struct watch *w = arg;
	return part_stats(w->f, w->p).to_open >= w->opens;
}

/* Waits until partition p's sink has written everything below end: woken
 * by every write attempt of the sinks, not by polling. */
static void wait_done_part(const struct fixture *f, uint32_t p, uint64_t end)
{
	struct watch w = {.f = f, .p = p, .end = end};
	cr_assert_eq(sl_sinks_wait(f->srv->sinks, watch_done, &w, DEADLINE_NS), 0,
	             "partition %u: done %llu of %llu after 60 s", p,
	             (unsigned long long)part_stats(f, p).done, (unsigned long long)end);
}

static void wait_done(const struct fixture *f, const struct acked *a)
{
	for (uint32_t p = 0; p < N_PARTS; p++)
		wait_done_part(f, p, a->ends[p]);
}

/* The file holds every offset below ends[p] of every partition exactly
 * once, in offset order per partition, and nothing else. */
static void check_file(const struct fixture *f, const uint64_t ends[N_PARTS])
{
	uint64_t next[N_PARTS] = {0};
	unsigned long long p, o;
	uint64_t lines = 0;
	FILE *in = fopen(f->out, "r");

	cr_assert_not_null(in, "no sink output %s", f->out);
	while (fscanf(in, "%llu %llu\n", &p, &o) == 2) {
		lines++;
		cr_assert_lt(p, N_PARTS, "line %llu: partition %llu", (unsigned long long)lines, p);
		cr_assert_eq(o, next[p],
		             "line %llu: partition %llu offset %llu where %llu was next (%s)",
		             (unsigned long long)lines, p, o, (unsigned long long)next[p],
		             o < next[p] ? "a duplicate" : "a gap");
		next[p] = o + 1;
	}
	cr_assert(feof(in), "a line that is not 'partition offset'");
	fclose(in);
	for (uint32_t i = 0; i < N_PARTS; i++)
		cr_assert_eq(next[i], ends[i], "partition %u: the sink wrote %llu of %llu events",
		             i, (unsigned long long)next[i], (unsigned long long)ends[i]);
}

/* ---- tests --------------------------------------------------------------------------- */

Test(sink, every_event_reaches_the_sink_once_in_order, .timeout = 120)
{
	struct fixture f = {0};
	struct acked a = {0};

	start_flaky(&f, "", 5, 50 * 1000000ull, false);
	produce(f.port, 3000, &a);
	produce(f.port, 2000, &a);
	wait_done(&f, &a);
	for (uint32_t p = 0; p < N_PARTS; p++) {
		struct sl_sink_part_stats st = part_stats(&f, p);
		cr_assert_gt(a.ends[p], 0, "partition %u got no events", p);
		cr_assert_eq(st.events, a.ends[p]);
		cr_assert_eq(st.failures, 0);
		cr_assert_eq(st.circuit, SL_BREAKER_CLOSED);
		cr_assert_geq(st.batches, 1);
	}
	check_file(&f, a.ends);

	/* Metrics and status show the same. */
	char *buf = NULL;
	size_t len = 0;
	FILE *m = open_memstream(&buf, &len);
	sl_sinks_metrics(f.srv->sinks, m);
	fclose(m);
	char want[160];
	snprintf(want, sizeof(want),
	         "sluice_sink_events_total{sink=\"flaky\",partition=\"0\"} %llu\n",
	         (unsigned long long)a.ends[0]);
	cr_assert_not_null(strstr(buf, want), "%s", buf);
	cr_assert_not_null(strstr(buf, "# TYPE sluice_sink_events_total counter\n"), "%s", buf);
	cr_assert_not_null(strstr(buf, "# TYPE sluice_sink_lag_events gauge\n"), "%s", buf);
	cr_assert_not_null(
	    strstr(buf, "sluice_sink_lag_events{sink=\"flaky\",partition=\"3\"} 0\n"), "%s", buf);
	cr_assert_not_null(
	    strstr(buf, "sluice_sink_failures_total{sink=\"flaky\",partition=\"1\"} 0\n"), "%s",
	    buf);
	cr_assert_not_null(
	    strstr(buf, "sluice_sink_circuit_state{sink=\"flaky\",partition=\"2\"} 0\n"), "%s",
	    buf);
	cr_assert_not_null(strstr(buf, "sluice_sink_circuit_transitions_total{sink=\"flaky\","
	                               "partition=\"0\",to=\"open\"} 0\n"),
	                   "%s", buf);
	cr_assert_not_null(strstr(buf, "# HELP sluice_sink_circuit_transitions_total "), "%s", buf);
	free(buf);
	buf = NULL;
	m = open_memstream(&buf, &len);
	sl_sinks_status_json(f.srv->sinks, m);
	fclose(m);
	snprintf(want, sizeof(want),
	         "[{\"name\":\"flaky\",\"plugin\":\"flaky_sink\",\"topic\":\"events\","
	         "\"state\":\"serving\",\"partitions\":[{\"partition\":0,\"done\":%llu,\"lag\":0,",
	         (unsigned long long)a.ends[0]);
	cr_assert_eq(strncmp(buf, want, strlen(want)), 0, "%s\nwant %s", buf, want);
	cr_assert_not_null(strstr(buf, "\"circuit\":\"closed\"}]}]"), "%s", buf);
	free(buf);
	finish(&f);
}

Test(sink, failures_open_the_circuit_and_a_probe_closes_it, .timeout = 120)
{
	struct fixture f = {0};
	struct acked a = {0};

	/* Every instance fails its first 4 calls; K = 3, 50 ms: three
	 * failures open it, the first probe (after 50 ms) fails and opens it
	 * for 100 ms, the second probe succeeds and closes it. */
	start_flaky(&f, "fail_first: 4\n", 3, 50 * 1000000ull, false);
	produce(f.port, 2000, &a);
	wait_done(&f, &a);
	for (uint32_t p = 0; p < N_PARTS; p++) {
		struct sl_sink_part_stats st = part_stats(&f, p);
		cr_assert_eq(st.failures, 4, "partition %u: %llu failures", p,
		             (unsigned long long)st.failures);
		cr_assert_eq(st.to_open, 2, "partition %u: opened %llu times", p,
		             (unsigned long long)st.to_open);
		cr_assert_eq(st.to_half_open, 2);
		cr_assert_eq(st.to_closed, 1);
		cr_assert_eq(st.circuit, SL_BREAKER_CLOSED);
		cr_assert_eq(st.events, a.ends[p]);
	}
	check_file(&f, a.ends);
	finish(&f);
}

Test(sink, one_failing_partition_does_not_stop_the_others, .timeout = 120)
{
	struct fixture f = {0};
	struct acked a = {0};

	start_flaky(&f, "fail_partition: 0\n", 2, 20 * 1000000ull, false);
	FILE *flag = fopen(f.flag, "w");
	cr_assert_not_null(flag);
	fclose(flag);
	produce(f.port, 2000, &a);
	/* The others write everything while partition 0 fails... */
	for (uint32_t p = 1; p < N_PARTS; p++)
		wait_done_part(&f, p, a.ends[p]);
	struct watch w = {.f = &f, .p = 0, .opens = 2};
	cr_assert_eq(sl_sinks_wait(f.srv->sinks, watch_opens, &w, DEADLINE_NS), 0,
	             "partition 0's circuit did not open twice");
	struct sl_sink_part_stats st = part_stats(&f, 0);
	cr_assert_eq(st.done, 0);
	cr_assert_eq(st.events, 0);
	cr_assert_geq(st.failures, 3);
	/* ...and it catches up once its target is back. */
	cr_assert_eq(unlink(f.flag), 0);
	wait_done_part(&f, 0, a.ends[0]);
	st = part_stats(&f, 0);
	cr_assert_eq(st.circuit, SL_BREAKER_CLOSED);
	cr_assert_eq(st.to_closed, 1);
	for (uint32_t p = 1; p < N_PARTS; p++)
		cr_assert_eq(part_stats(&f, p).failures, 0);
	check_file(&f, a.ends);
	finish(&f);
}

/* Keeps the lines of each partition below keep[p]: the outside world lost
 * its tail (an archive restored from an older backup). */
static void cut_file(const char *file, const uint64_t keep[N_PARTS])
{
	char tmp[160];
	unsigned long long p, o;
	snprintf(tmp, sizeof(tmp), "%s.tmp", file);
	FILE *in = fopen(file, "r"), *out = fopen(tmp, "w");
	cr_assert(in && out);
	while (fscanf(in, "%llu %llu\n", &p, &o) == 2)
		if (o < keep[p])
			fprintf(out, "%llu %llu\n", p, o);
	fclose(in);
	cr_assert_eq(fclose(out), 0);
	cr_assert_eq(rename(tmp, file), 0);
}

Test(sink, restart_resumes_where_the_outside_world_stands, .timeout = 120)
{
	struct fixture f = {0};
	struct acked a = {0};
	uint64_t keep[N_PARTS];

	start_flaky(&f, "", 5, 50 * 1000000ull, false);
	produce(f.port, 1500, &a);
	wait_done(&f, &a);
	halt(&f);
	check_file(&f, a.ends);

	/* Same folder, same file: nothing written again. */
	start_flaky(&f, "", 5, 50 * 1000000ull, true);
	for (uint32_t p = 0; p < N_PARTS; p++) {
		struct sl_sink_part_stats st = part_stats(&f, p);
		cr_assert_eq(st.done, a.ends[p], "partition %u resumed at %llu, not %llu", p,
		             (unsigned long long)st.done, (unsigned long long)a.ends[p]);
	}
	produce(f.port, 1000, &a);
	wait_done(&f, &a);
	for (uint32_t p = 0; p < N_PARTS; p++)
		keep[p] = a.ends[p] / 3;
	halt(&f);
	check_file(&f, a.ends);

	/* The outside world lost its tail: the sink writes it again from
	 * where the plugin says it stands, once. */
	cut_file(f.out, keep);
	start_flaky(&f, "", 5, 50 * 1000000ull, true);
	wait_done(&f, &a);
	/* Exactly what was cut went through the host again: it started at
	 * the plugin's resume_offset, not at 0 and not at the log's end. */
	uint64_t rewritten = 0;
	for (uint32_t p = 0; p < N_PARTS; p++)
		rewritten += part_stats(&f, p).events;
	uint64_t want = 0;
	for (uint32_t p = 0; p < N_PARTS; p++)
		want += a.ends[p] - keep[p];
	cr_assert_eq(rewritten, want);
	halt(&f);
	check_file(&f, a.ends);
	finish(&f);
}

Test(sink, a_slow_sink_still_gets_everything, .timeout = 120)
{
	struct fixture f = {0};
	struct acked a = {0};

	start_flaky(&f, "delay_us: 20000\n", 5, 50 * 1000000ull, false);
	produce(f.port, 1000, &a);
	wait_done(&f, &a);
	check_file(&f, a.ends);
	/* A stop while idle or mid-delay is prompt and clean. */
	finish(&f);
}

Test(sink, plugins_that_are_not_sinks_or_refuse_are_named, .timeout = 60)
{
	struct fixture f = {0};
	char err[512];

	snprintf(f.dir, sizeof(f.dir), "/tmp/sluice-sink-test-XXXXXX");
	cr_assert_not_null(mkdtemp(f.dir));
	int ret = start_sink_server(&f, "counter", "{}", 0, 0, err, sizeof(err));
	cr_assert_lt(ret, 0);
	cr_assert_null(f.srv);
	cr_assert_not_null(strstr(err, "sink flaky: "), "%s", err);
	cr_assert_not_null(strstr(err, "is a projection plugin, a sink plugin was asked for"), "%s",
	                   err);
	ret = start_sink_server(&f, "no_such_plugin", "{}", 0, 0, err, sizeof(err));
	cr_assert_lt(ret, 0);
	cr_assert_not_null(strstr(err, "sink flaky: "), "%s", err);
	/* The plugin's own refusal, with the partition. */
	ret = start_sink_server(&f, "flaky_sink", "{ bogus: 1 }", 0, 0, err, sizeof(err));
	cr_assert_lt(ret, 0);
	cr_assert_not_null(strstr(err, "sink flaky partition 0: "), "%s", err);
	cr_assert_not_null(strstr(err, "unknown arg 'bogus'"), "%s", err);
	finish(&f);
}
