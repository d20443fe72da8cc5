/*
 * The server in-process: real reactors, real io_uring, real sockets on
 * loopback, driven by a small blocking client that speaks the wire protocol
 * with the proto module's encoders. Every wait is a blocking read with a
 * receive timeout as a safety net, never a sleep.
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "config/config.h"
#include "log/log.h"
#include "part/part.h"
#include "pipe/pipe.h"
#include "proto/proto.h"
#include "reactor/reactor.h"
#include "server/server.h"
#include "sink/sink.h"
#include "wire_client.h"

struct fixture {
	struct sl_server *srv;
	uint16_t port;
	char dir[64];
};

static struct sl_topic_spec g_topics[] = {
    {.name = "events", .n_parts = 8, .partitioner = SL_PART_HASH},
    {.name = "other", .n_parts = 3, .partitioner = SL_PART_HASH},
};

static void start_with(struct fixture *f, uint32_t reactors, uint32_t max_conns, uint32_t hs_ms,
                       uint32_t idle_ms, bool auto_create)
{
	snprintf(f->dir, sizeof(f->dir), "/tmp/sluice-server-test-XXXXXX");
	cr_assert_not_null(mkdtemp(f->dir));
	struct sl_server_opts o = {
	    .listen_native = "127.0.0.1:0",
	    .data_dir = f->dir,
	    .n_reactors = reactors,
	    .max_connections = max_conns,
	    .max_frame_bytes = 1 << 20,
	    .handshake_timeout_ms = hs_ms,
	    .idle_timeout_ms = idle_ms,
	    .drain_timeout_ms = 10000,
	    .topics = g_topics,
	    .n_topics = 2,
	    .pin = true,
	    /* These tests pipeline up to 8,000 events (~860 KB) before
	     * reading anything: a window that holds them from the start
	     * (credits are tests/unit/backpressure.c's subject). */
	    .credit_start_bytes = 8u << 20,
	    .auto_create_topics = auto_create,
	};
	char err[512];
	int ret = sl_server_create(&o, &f->srv, err, sizeof(err));
	cr_assert_eq(ret, 0, "server: %s", err);
	cr_assert_eq(sl_server_start(f->srv), 0);
	f->port = sl_server_native_port(f->srv);
	cr_assert_neq(f->port, 0);
}

static void start_idle(struct fixture *f, uint32_t reactors, uint32_t max_conns, uint32_t hs_ms,
                       uint32_t idle_ms)
{
	start_with(f, reactors, max_conns, hs_ms, idle_ms, false);
}

static void start(struct fixture *f, uint32_t reactors, uint32_t max_conns, uint32_t hs_ms)
{
	start_idle(f, reactors, max_conns, hs_ms, 60000);
}

static void stop(struct fixture *f)
{
	tu_server_halt(&f->srv);
	rm_dir(f->dir);
}

static uint32_t expect_error(int fd)
{
	uint8_t *body;
	uint32_t len;
	int type = read_frame(fd, &body, &len);
	cr_assert_eq(type, SLUICE__V1__FRAME_TYPE__FRAME_ERROR, "expected Error, got %d", type);
	Sluice__V1__Error *e = sluice__v1__error__unpack(NULL, len, body);
	cr_assert_not_null(e);
	cr_assert_gt(strlen(e->message), 0, "error without text");
	uint32_t code = e->code;
	sluice__v1__error__free_unpacked(e, NULL);
	free(body);
	expect_closed(fd);
	return code;
}

static void hello(int fd, uint32_t minv, uint32_t maxv)
{
	Sluice__V1__Hello h = SLUICE__V1__HELLO__INIT;
	uint8_t buf[256];
	h.min_version = minv;
	h.max_version = maxv;
	h.client_name = "test";
	int n = sl_frame_encode_msg(SLUICE__V1__FRAME_TYPE__FRAME_HELLO, &h.base, buf, sizeof(buf));
	cr_assert_gt(n, 0);
	send_all(fd, buf, (size_t)n);
}

static Sluice__V1__Welcome *welcome(int fd)
{
	uint8_t *body;
	uint32_t len;
	int type = read_frame(fd, &body, &len);
	cr_assert_eq(type, SLUICE__V1__FRAME_TYPE__FRAME_WELCOME, "expected Welcome, got %d", type);
	Sluice__V1__Welcome *w = sluice__v1__welcome__unpack(NULL, len, body);
	free(body);
	cr_assert_not_null(w);
	return w;
}

static int handshake(uint16_t port)
{
	int fd = dial(port);
	hello(fd, 1, 1);
	Sluice__V1__Welcome *w = welcome(fd);
	cr_assert_eq(w->version, 1);
	cr_assert_neq(w->producer_id, 0);
	cr_assert_eq(w->epoch, 1);
	sluice__v1__welcome__free_unpacked(w, NULL);
	return fd;
}

/* Builds a Produce of n events with aggregates "key-<k>" and returns its size. */
static int build_produce(uint8_t *buf, size_t cap, const char *topic, uint64_t base_seq, uint32_t n,
                         uint32_t first_key, uint32_t n_keys)
{
	struct sl_produce_builder b;
	cr_assert_eq(sl_produce_begin(&b, buf, cap, topic, strlen(topic), base_seq, 0), 0);
	for (uint32_t i = 0; i < n; i++) {
		char agg[32], data[64];
		uint8_t id[16] = {0};
		uint64_t seq = base_seq + i;
		memcpy(id, &seq, sizeof(seq));
		snprintf(agg, sizeof(agg), "key-%u", first_key + (i % n_keys));
		snprintf(data, sizeof(data), "{\"seq\":%llu}", (unsigned long long)seq);
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
	return len;
}

struct acked {
	int32_t status; /* -1: not acked yet */
	uint32_t partition;
	uint64_t offset;
};

/* Reads Acks until every event of [base, base+n) is answered. */
static void collect_acks(int fd, uint64_t base, uint32_t n, struct acked *out)
{
	uint32_t left = n;
	for (uint32_t i = 0; i < n; i++)
		out[i].status = -1;
	while (left) {
		uint8_t *body;
		uint32_t len;
		int type = read_frame(fd, &body, &len);
		cr_assert_eq(type, SLUICE__V1__FRAME_TYPE__FRAME_ACK, "expected Ack, got %d", type);
		Sluice__V1__Ack *a = sluice__v1__ack__unpack(NULL, len, body);
		cr_assert_not_null(a);
		free(body);
		cr_assert_geq(a->base_sequence, base);
		uint64_t shift = a->base_sequence - base;
		for (size_t p = 0; p < a->n_parts; p++) {
			Sluice__V1__AckPart *pt = a->parts[p];
			for (size_t k = 0; k < pt->n_index; k++) {
				uint64_t i = shift + pt->index[k];
				cr_assert_lt(i, n);
				cr_assert_eq(out[i].status, -1, "event %llu acked twice",
				             (unsigned long long)i);
				out[i].status = 0;
				out[i].partition = pt->partition;
				out[i].offset =
				    pt->n_offsets ? pt->offsets[k] : pt->base_offset + k;
				left--;
			}
		}
		for (size_t r = 0; r < a->n_rejects; r++) {
			Sluice__V1__Reject *rj = a->rejects[r];
			for (size_t k = 0; k < rj->n_index; k++) {
				uint64_t i = shift + rj->index[k];
				cr_assert_lt(i, n);
				cr_assert_eq(out[i].status, -1);
				out[i].status = rj->code;
				left--;
			}
		}
		sluice__v1__ack__free_unpacked(a, NULL);
	}
}

Test(server, hello_welcome, .timeout = 30)
{
	struct fixture f;
	start(&f, 1, 16, 5000);
	int fd = handshake(f.port);
	close(fd);
	stop(&f);
}

/*
 * Every event acked exactly once, in the partition its key hashes to, with
 * offsets dense per partition and increasing per key in send order.
 */
/* Sum of every sample of metric `name` (all label sets) in Prometheus text. */
static double metric_sum(const char *text, const char *name)
{
	double sum = 0;
	size_t n = strlen(name);
	for (const char *l = text; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL) {
		if (strncmp(l, name, n) || (l[n] != '{' && l[n] != ' '))
			continue;
		const char *sp = strchr(l, ' ');
		if (sp)
			sum += strtod(sp + 1, NULL);
	}
	return sum;
}

static void produce_and_check(uint32_t reactors)
{
	struct fixture f;
	start(&f, reactors, 16, 5000);
	int fd = handshake(f.port);

	/* 8,000 events: within the 8,192 events of credit a Welcome grants. */
	enum { BATCHES = 40, PER = 200, KEYS = 37 };
	static uint8_t buf[1 << 16];
	static struct acked acks[BATCHES * PER];
	/* Pipelined: all batches go out before any ack is read. */
	for (uint32_t b = 0; b < BATCHES; b++) {
		int len =
		    build_produce(buf, sizeof(buf), "events", (uint64_t)b * PER, PER, 0, KEYS);
		send_all(fd, buf, (size_t)len);
	}
	collect_acks(fd, 0, BATCHES * PER, acks);

	struct sl_partitioner part;
	cr_assert_eq(sl_part_init(&part, SL_PART_HASH, 8), 0);
	uint64_t count[8] = {0}, last_key_off[KEYS];
	bool seen_key[KEYS] = {0};
	for (uint32_t i = 0; i < BATCHES * PER; i++) {
		char agg[32];
		uint32_t k = i % PER % KEYS;
		snprintf(agg, sizeof(agg), "key-%u", k);
		cr_assert_eq(acks[i].status, 0, "event %u refused: %d", i, acks[i].status);
		cr_assert_eq(acks[i].partition, sl_part_of_key(&part, agg, strlen(agg)));
		count[acks[i].partition]++;
		if (seen_key[k])
			cr_assert_gt(acks[i].offset, last_key_off[k], "key order broken");
		seen_key[k] = true;
		last_key_off[k] = acks[i].offset;
	}
	/* The log's counters in /metrics: every ack came after an fdatasync
	 * (fsync policy), which the reactor counted before it sent the ack. */
	char *mt;
	size_t mlen;
	cr_assert_eq(sl_server_metrics_text(f.srv, &mt, &mlen), 0);
	double syncs = metric_sum(mt, "sluice_log_sync_seconds_count");
	cr_assert_geq(syncs, 1);
	cr_assert_leq(syncs, (double)BATCHES * 8);
	cr_assert_gt(metric_sum(mt, "sluice_log_sync_seconds_sum"), 0);
	/* Cumulative buckets: +Inf holds every sync of the partition. */
	cr_assert_eq(
	    metric_sum(mt, "sluice_log_sync_seconds_bucket{topic=\"events\",partition=\"0\","
	                   "le=\"+Inf\"}"),
	    metric_sum(mt, "sluice_log_sync_seconds_count{topic=\"events\",partition=\"0\"}"));
	/* Under fsync every sync covers one group commit, which waited at
	 * least as long as its sync. */
	cr_assert_eq(metric_sum(mt, "sluice_log_commit_seconds_count"), syncs);
	cr_assert_geq(metric_sum(mt, "sluice_log_commit_seconds_sum"),
	              metric_sum(mt, "sluice_log_sync_seconds_sum"));
	cr_assert_eq(
	    metric_sum(mt, "sluice_log_commit_seconds_bucket{topic=\"events\",partition=\"0\","
	                   "le=\"+Inf\"}"),
	    metric_sum(mt, "sluice_log_commit_seconds_count{topic=\"events\",partition=\"0\"}"));
	cr_assert_geq(metric_sum(mt, "sluice_log_written_bytes_total"), (double)BATCHES * PER * 16);
	cr_assert_eq(metric_sum(mt, "sluice_log_segment_rolls_total"), 0);
	free(mt);

	/* Stored, byte for byte, where the acks say, with their sequences. */
	sl_server_stop(f.srv);
	cr_assert_eq(sl_server_wait(f.srv), 0);
	sl_server_destroy(f.srv);
	static uint8_t frames[BATCHES][1 << 16];
	static struct sl_event_view views[BATCHES * PER];
	for (uint32_t b = 0; b < BATCHES; b++) {
		int len = build_produce(frames[b], sizeof(frames[b]), "events", (uint64_t)b * PER,
		                        PER, 0, KEYS);
		struct sl_frame fr;
		struct sl_produce pr;
		struct sl_event_iter it;
		cr_assert_eq(sl_frame_parse(frames[b], (size_t)len, 1 << 20, &fr), len);
		cr_assert_eq(sl_produce_scan(fr.body, fr.body_len, &pr, NULL), 0);
		sl_produce_iter_init(&pr, &it);
		for (uint32_t k = 0; k < PER; k++)
			cr_assert_eq(sl_event_iter_next(&it, &views[b * PER + k]), 1);
	}
	uint64_t stored = 0;
	for (uint32_t p = 0; p < 8; p++) {
		char dir[128], err[256];
		snprintf(dir, sizeof(dir), "%s/events/%u", f.dir, p);
		struct sl_log_opts lo = {.dir = dir, .segment_bytes = 64u << 20};
		struct sl_log *log;
		cr_assert_eq(sl_log_open(&lo, &log, err, sizeof(err)), 0, "%s", err);
		struct sl_log_reader *rd;
		struct sl_log_record rec;
		cr_assert_eq(sl_log_reader_open(log, 0, &rd), 0);
		while (sl_log_reader_next(rd, sl_log_durable(log), &rec) == 1) {
			cr_assert_lt(rec.seq, BATCHES * PER);
			uint64_t i = rec.seq;
			cr_assert_eq(acks[i].partition, p);
			cr_assert_eq(acks[i].offset, rec.offset);
			cr_assert_eq(rec.len, views[i].raw_len);
			cr_assert_eq(memcmp(rec.event, views[i].raw, rec.len), 0,
			             "event %llu differs on disk", (unsigned long long)i);
			stored++;
		}
		sl_log_reader_close(rd);
		sl_log_close(log);
	}
	cr_assert_eq(stored, BATCHES * PER);

	/* Dense: offsets of each partition are exactly 0..count-1. */
	for (uint32_t p = 0; p < 8; p++) {
		uint8_t *hit = calloc(count[p] ? count[p] : 1, 1);
		for (uint32_t i = 0; i < BATCHES * PER; i++)
			if (acks[i].partition == p) {
				cr_assert_lt(acks[i].offset, count[p]);
				cr_assert_eq(hit[acks[i].offset], 0);
				hit[acks[i].offset] = 1;
			}
		free(hit);
	}
	close(fd);
	rm_dir(f.dir);
}

Test(server, produce_one_reactor, .timeout = 60)
{
	produce_and_check(1);
}

Test(server, produce_across_reactors, .timeout = 60)
{
	produce_and_check(2);
}

Test(server, produce_more_reactors_than_cores, .timeout = 60)
{
	produce_and_check(4);
}

/*
 * Every partitioner in a running server (issue 19): a topic of each kind
 * starts, and each event lands where sl_part_of_key says for the same spec
 * (the acks name the partition). Then the directory's file changes and the
 * server rereads it (what SIGHUP does): the listed keys move, a bad file
 * keeps the table in use.
 */
static void produce_to(uint16_t port, const char *topic, uint32_t n, const struct sl_part_spec *ps,
                       uint32_t *parts_seen)
{
	int fd = handshake(port);
	static uint8_t buf[1 << 16];
	static struct acked acks[64];
	cr_assert_leq(n, 64);
	int len = build_produce(buf, sizeof(buf), topic, 0, n, 0, n);
	send_all(fd, buf, (size_t)len);
	collect_acks(fd, 0, n, acks);
	close(fd);
	struct sl_partitioner p;
	char err[300];
	cr_assert_eq(sl_part_init_spec(&p, ps, err, sizeof(err)), 0, "%s", err);
	*parts_seen = 0;
	for (uint32_t i = 0; i < n; i++) {
		char agg[32];
		snprintf(agg, sizeof(agg), "key-%u", i);
		cr_assert_eq(acks[i].status, 0, "%s event %u refused: %d", topic, i,
		             acks[i].status);
		cr_assert_eq(acks[i].partition, sl_part_of_key(&p, agg, strlen(agg)),
		             "%s: %s acked on partition %u", topic, agg, acks[i].partition);
		*parts_seen |= 1u << acks[i].partition;
	}
	sl_part_destroy(&p);
}

Test(server, every_partitioner_places_events_where_it_says, .timeout = 60)
{
	struct fixture f;
	snprintf(f.dir, sizeof(f.dir), "/tmp/sluice-server-test-XXXXXX");
	cr_assert_not_null(mkdtemp(f.dir));
	char file[128], tmp[140];
	snprintf(file, sizeof(file), "%s/dir.map", f.dir);
	snprintf(tmp, sizeof(tmp), "%s.new", file);
	FILE *fp = fopen(file, "w");
	cr_assert_not_null(fp);
	fputs("# listed keys\nkey-0 5\nkey-1 5\nkey-2 5\n", fp);
	fclose(fp);
	static const char *const splits[] = {"key-15", "key-3", "key-5"};
	struct sl_topic_spec topics[] = {
	    {.name = "h", .n_parts = 4, .partitioner = SL_PART_HASH},
	    {.name = "r",
	     .n_parts = 4,
	     .partitioner = SL_PART_RANGE,
	     .part_args = {.splits = splits, .n_splits = 3}},
	    {.name = "c",
	     .n_parts = 6,
	     .partitioner = SL_PART_CONSISTENT,
	     .part_args = {.vnodes = 32}},
	    {.name = "j", .n_parts = 6, .partitioner = SL_PART_JUMP},
	    {.name = "d",
	     .n_parts = 6,
	     .partitioner = SL_PART_DIRECTORY,
	     .part_args = {.file = file, .fallback = SL_PART_CONSISTENT, .vnodes = 16}},
	};
	struct sl_server_opts o = {
	    .listen_native = "127.0.0.1:0",
	    .data_dir = f.dir,
	    .n_reactors = 2,
	    .max_connections = 16,
	    .max_frame_bytes = 1 << 20,
	    .handshake_timeout_ms = 5000,
	    .idle_timeout_ms = 60000,
	    .drain_timeout_ms = 10000,
	    .topics = topics,
	    .n_topics = SL_ARRAY_LEN(topics),
	    .pin = true,
	};
	char err[512];
	cr_assert_eq(sl_server_create(&o, &f.srv, err, sizeof(err)), 0, "server: %s", err);
	cr_assert_eq(sl_server_start(f.srv), 0);
	f.port = sl_server_native_port(f.srv);
	for (size_t t = 0; t < SL_ARRAY_LEN(topics); t++) {
		struct sl_part_spec ps = topics[t].part_args;
		ps.kind = topics[t].partitioner;
		ps.n_parts = topics[t].n_parts;
		uint32_t seen;
		produce_to(f.port, topics[t].name, 40, &ps, &seen);
		/* 40 keys reach more than one partition with every strategy. */
		cr_assert_gt(__builtin_popcount(seen), 1, "%s: one partition only", topics[t].name);
		if (topics[t].partitioner == SL_PART_RANGE)
			cr_assert_eq(seen, 0xf, "range: every partition holds some key-N");
	}
	/* The directory's file changes: keys 0..2 to partition 1, key-3 to 0. */
	fp = fopen(tmp, "w");
	cr_assert_not_null(fp);
	fputs("key-0 1\nkey-1 1\nkey-2 1\nkey-3 0\n", fp);
	fclose(fp);
	cr_assert_eq(rename(tmp, file), 0);
	char *out = NULL;
	size_t outlen = 0;
	FILE *log = open_memstream(&out, &outlen);
	cr_assert_eq(sl_server_reload_partitioners(f.srv, log), 0);
	fclose(log);
	cr_assert_not_null(strstr(out, "topic d: directory reloaded from"), "%s", out);
	cr_assert_not_null(strstr(out, "(4 keys)"), "%s", out);
	free(out);
	struct sl_part_spec ps = topics[4].part_args;
	ps.kind = SL_PART_DIRECTORY;
	ps.n_parts = 6;
	uint32_t seen;
	produce_to(f.port, "d", 40, &ps, &seen);
	/* A bad file: the table just read stays. */
	fp = fopen(tmp, "w");
	cr_assert_not_null(fp);
	fputs("key-0 1\nkey-1 9\n", fp);
	fclose(fp);
	cr_assert_eq(rename(tmp, file), 0);
	log = open_memstream(&out, &outlen);
	cr_assert_eq(sl_server_reload_partitioners(f.srv, log), 1);
	fclose(log);
	cr_assert_not_null(strstr(out, "dir.map:2: partition 9 is out of range"), "%s", out);
	free(out);
	/* Placed by the table read before (the one `ps` reads is the bad file:
	 * compare with the published one through the topic). */
	struct sl_topic *dt = sl_topics_find(&f.srv->topics, "d", 1);
	cr_assert_not_null(dt);
	cr_assert_eq(sl_part_of_key(&dt->part, "key-3", 5), 0);
	cr_assert_eq(sl_part_of_key(&dt->part, "key-1", 5), 1);
	stop(&f);
}

Test(server, unknown_topic_is_refused_per_event, .timeout = 30)
{
	struct fixture f;
	start(&f, 2, 16, 5000);
	int fd = handshake(f.port);
	static uint8_t buf[1 << 14];
	struct acked acks[10];
	int len = build_produce(buf, sizeof(buf), "nope", 0, 10, 0, 3);
	send_all(fd, buf, (size_t)len);
	collect_acks(fd, 0, 10, acks);
	for (int i = 0; i < 10; i++)
		cr_assert_eq(acks[i].status, SLUICE__V1__ERROR_CODE__ERR_UNKNOWN_TOPIC);
	/* The connection still works. */
	len = build_produce(buf, sizeof(buf), "other", 10, 10, 0, 3);
	send_all(fd, buf, (size_t)len);
	collect_acks(fd, 10, 10, acks);
	for (int i = 0; i < 10; i++)
		cr_assert_eq(acks[i].status, 0);
	close(fd);
	stop(&f);
}

Test(server, wrong_version, .timeout = 30)
{
	struct fixture f;
	start(&f, 1, 16, 5000);
	int fd = dial(f.port);
	hello(fd, 2, 3);
	cr_assert_eq(expect_error(fd), SLUICE__V1__ERROR_CODE__ERR_VERSION);
	close(fd);
	stop(&f);
}

Test(server, bad_input_closes_only_that_connection, .timeout = 60)
{
	struct fixture f;
	start(&f, 2, 64, 5000);
	int good = handshake(f.port);
	uint8_t buf[4096];
	int fd;

	/* Oversized length: refused from the 4 prefix bytes alone. */
	fd = handshake(f.port);
	uint8_t big[5] = {0xff, 0xff, 0xff, 0x7f, SLUICE__V1__FRAME_TYPE__FRAME_PRODUCE};
	send_all(fd, big, sizeof(big));
	cr_assert_eq(expect_error(fd), SLUICE__V1__ERROR_CODE__ERR_FRAME_TOO_BIG);
	close(fd);

	/* Garbage bytes before Hello: a zero length is no frame at all. */
	fd = dial(f.port);
	memset(buf, 0, 64);
	send_all(fd, buf, 64);
	cr_assert_eq(expect_error(fd), SLUICE__V1__ERROR_CODE__ERR_MALFORMED);
	close(fd);

	/* A frame whose body is not a valid Produce. */
	fd = handshake(f.port);
	uint8_t bad[] = {5, 0, 0, 0, SLUICE__V1__FRAME_TYPE__FRAME_PRODUCE, 0x1a, 0x7f, 0x01, 0x02};
	send_all(fd, bad, sizeof(bad));
	cr_assert_eq(expect_error(fd), SLUICE__V1__ERROR_CODE__ERR_MALFORMED);
	close(fd);

	/* Unknown frame type. */
	fd = handshake(f.port);
	uint8_t unk[] = {1, 0, 0, 0, 200};
	send_all(fd, unk, sizeof(unk));
	cr_assert_eq(expect_error(fd), SLUICE__V1__ERROR_CODE__ERR_UNKNOWN_TYPE);
	close(fd);

	/* Produce before Hello. */
	fd = dial(f.port);
	int len = build_produce(buf, sizeof(buf), "events", 0, 3, 0, 3);
	send_all(fd, buf, (size_t)len);
	cr_assert_eq(expect_error(fd), SLUICE__V1__ERROR_CODE__ERR_STATE);
	close(fd);

	/* Invalid Hello body. */
	fd = dial(f.port);
	uint8_t badhello[] = {3, 0, 0, 0, SLUICE__V1__FRAME_TYPE__FRAME_HELLO, 0x08, 0xff};
	send_all(fd, badhello, sizeof(badhello));
	cr_assert_eq(expect_error(fd), SLUICE__V1__ERROR_CODE__ERR_MALFORMED);
	close(fd);

	/* Truncated frame, then the client goes away: nothing to answer. */
	fd = handshake(f.port);
	len = build_produce(buf, sizeof(buf), "events", 0, 3, 0, 3);
	send_all(fd, buf, (size_t)len - 7);
	shutdown(fd, SHUT_WR);
	expect_closed(fd);
	close(fd);

	/* Meanwhile the good connection was never disturbed. */
	struct acked acks[20];
	len = build_produce(buf, sizeof(buf), "events", 0, 20, 0, 5);
	send_all(good, buf, (size_t)len);
	collect_acks(good, 0, 20, acks);
	for (int i = 0; i < 20; i++)
		cr_assert_eq(acks[i].status, 0);
	close(good);
	stop(&f);
}

Test(server, frame_split_across_reads, .timeout = 30)
{
	struct fixture f;
	start(&f, 1, 16, 5000);
	int fd = handshake(f.port);
	static uint8_t buf[1 << 16];
	static struct acked acks[300];
	int len = build_produce(buf, sizeof(buf), "events", 0, 300, 0, 7);
	/* One byte at a time for the header, then uneven pieces. */
	size_t off = 0;
	while (off < (size_t)len) {
		size_t piece = off < 8 ? 1 : 997;
		if (piece > (size_t)len - off)
			piece = (size_t)len - off;
		send_all(fd, buf + off, piece);
		off += piece;
	}
	collect_acks(fd, 0, 300, acks);
	for (int i = 0; i < 300; i++)
		cr_assert_eq(acks[i].status, 0);
	close(fd);
	stop(&f);
}

Test(server, connection_limit, .timeout = 30)
{
	struct fixture f;
	start(&f, 1, 2, 5000);
	int a = handshake(f.port), b = handshake(f.port);
	int c = dial(f.port);
	cr_assert_eq(expect_error(c), SLUICE__V1__ERROR_CODE__ERR_LIMIT);
	close(c);
	close(a);
	close(b);
	stop(&f);
}

Test(server, handshake_timeout, .timeout = 30)
{
	struct fixture f;
	start(&f, 1, 16, 200);
	int fd = dial(f.port);
	/* Say nothing: the server must give up on its own. */
	cr_assert_eq(expect_error(fd), SLUICE__V1__ERROR_CODE__ERR_TIMEOUT);
	close(fd);
	stop(&f);
}

Test(server, drain_answers_everything_received, .timeout = 60)
{
	struct fixture f;
	start(&f, 2, 16, 5000);
	int fd = handshake(f.port);
	static uint8_t buf[1 << 16];
	for (uint32_t b = 0; b < 20; b++) {
		int len = build_produce(buf, sizeof(buf), "events", b * 200, 200, 0, 11);
		send_all(fd, buf, (size_t)len);
	}
	/* Stop once the first answer shows the server at work, while the rest
	 * is still in flight: whatever it took in must be answered before it
	 * closes the connection and exits. */
	uint64_t acked = 0, acked_at_stop = 0;
	bool stopped = false;
	for (;;) {
		if (acked && !stopped) {
			acked_at_stop = acked;
			sl_server_stop(f.srv);
			stopped = true;
		}
		uint8_t *body;
		uint32_t len;
		int type = read_frame(fd, &body, &len);
		if (type < 0)
			break;
		cr_assert_eq(type, SLUICE__V1__FRAME_TYPE__FRAME_ACK);
		Sluice__V1__Ack *a = sluice__v1__ack__unpack(NULL, len, body);
		cr_assert_not_null(a);
		for (size_t p = 0; p < a->n_parts; p++)
			acked += a->parts[p]->n_index;
		cr_assert_eq(a->n_rejects, 0);
		sluice__v1__ack__free_unpacked(a, NULL);
		free(body);
	}
	cr_assert_eq(sl_server_wait(f.srv), 0);
	uint64_t received = 0;
	for (uint32_t i = 0; i < f.srv->n; i++) {
		struct sl_reactor_stats st;
		sl_reactor_get_stats(f.srv->reactors[i], &st);
		received += st.events_in;
	}
	cr_assert(stopped, "no ack came at all: the server never took anything in");
	cr_assert_lt(acked_at_stop, 20 * 200, "everything was answered before the stop");
	cr_assert_gt(received, acked_at_stop, "the stop found nothing received and unanswered");
	cr_assert_eq(acked, received, "received %llu, acked %llu", (unsigned long long)received,
	             (unsigned long long)acked);
	sl_server_destroy(f.srv);
	rm_dir(f.dir);
	close(fd);
}

static Sluice__V1__FetchResult *fetch(int fd, const char *topic, uint32_t part, uint64_t off,
                                      uint32_t max_events, uint32_t wait_ms, uint64_t req_id)
{
	Sluice__V1__Fetch fe = SLUICE__V1__FETCH__INIT;
	fe.topic = (char *)topic;
	fe.partition = part;
	fe.offset = off;
	fe.max_events = max_events;
	fe.max_bytes = 1 << 20;
	fe.wait_ms = wait_ms;
	fe.request_id = req_id;
	send_msg(fd, SLUICE__V1__FRAME_TYPE__FRAME_FETCH, &fe.base);
	uint8_t *body;
	uint32_t len;
	int type = read_frame(fd, &body, &len);
	cr_assert_eq(type, SLUICE__V1__FRAME_TYPE__FRAME_FETCH_RESULT, "got frame %d", type);
	Sluice__V1__FetchResult *res = sluice__v1__fetch_result__unpack(NULL, len, body);
	free(body);
	cr_assert_not_null(res);
	cr_assert_eq(res->request_id, req_id);
	return res;
}

/* Everything acked can be fetched back, by partition and offset, and the
 * metadata's end offsets count exactly what was acked. */
Test(server, fetch_and_metadata, .timeout = 60)
{
	struct fixture f;
	start(&f, 2, 16, 5000);
	int fd = handshake(f.port);
	static uint8_t buf[1 << 16];
	static struct acked acks[1000];
	for (uint32_t b = 0; b < 5; b++) {
		int len = build_produce(buf, sizeof(buf), "events", b * 200, 200, 0, 13);
		send_all(fd, buf, (size_t)len);
	}
	collect_acks(fd, 0, 1000, acks);

	int cfd = handshake(f.port);
	Sluice__V1__MetadataRequest mq = SLUICE__V1__METADATA_REQUEST__INIT;
	mq.request_id = 42;
	send_msg(cfd, SLUICE__V1__FRAME_TYPE__FRAME_METADATA, &mq.base);
	uint8_t *body;
	uint32_t len;
	cr_assert_eq(read_frame(cfd, &body, &len), SLUICE__V1__FRAME_TYPE__FRAME_METADATA_RESULT);
	Sluice__V1__Metadata *md = sluice__v1__metadata__unpack(NULL, len, body);
	free(body);
	cr_assert_not_null(md);
	cr_assert_eq(md->request_id, 42);
	cr_assert_eq(md->n_topics, 2);
	cr_assert_str_eq(md->topics[0]->name, "events");
	uint64_t ends[8] = {0}, total = 0;
	for (int i = 0; i < 1000; i++)
		if (acks[i].offset + 1 > ends[acks[i].partition])
			ends[acks[i].partition] = acks[i].offset + 1;
	for (size_t p = 0; p < md->topics[0]->n_partitions; p++) {
		cr_assert_eq(md->topics[0]->partitions[p]->end_offset, ends[p]);
		total += md->topics[0]->partitions[p]->end_offset;
	}
	cr_assert_eq(total, 1000);
	sluice__v1__metadata__free_unpacked(md, NULL);

	/* Read partition by partition in pieces of 7 and match every event's
	 * sequence (its payload {"seq":N}) to the ack that placed it. */
	uint64_t seen = 0;
	for (uint32_t p = 0; p < 8; p++) {
		uint64_t off = 0;
		while (off < ends[p]) {
			Sluice__V1__FetchResult *res = fetch(cfd, "events", p, off, 7, 0, off + 1);
			cr_assert_eq(res->error, 0, "fetch error: %s", res->message);
			cr_assert_eq(res->base_offset, off);
			cr_assert_gt(res->n_events, 0);
			cr_assert_eq(res->n_append_time_ms, res->n_events);
			cr_assert_eq(res->end_offset, ends[p]);
			for (size_t k = 0; k < res->n_events; k++) {
				unsigned long long seq;
				Sluice__V1__Event *e = res->events[k];
				cr_assert_eq(
				    sscanf((const char *)e->data.data, "{\"seq\":%llu}", &seq), 1);
				cr_assert_lt(seq, 1000);
				cr_assert_eq(acks[seq].partition, p);
				cr_assert_eq(acks[seq].offset, off + k);
				cr_assert_eq(e->id.len, 16);
				seen++;
			}
			off += res->n_events;
			sluice__v1__fetch_result__free_unpacked(res, NULL);
		}
	}
	cr_assert_eq(seen, 1000);

	/* Errors are answers, not disconnects. */
	Sluice__V1__FetchResult *res = fetch(cfd, "nope", 0, 0, 10, 0, 7);
	cr_assert_eq(res->error, SLUICE__V1__ERROR_CODE__ERR_UNKNOWN_TOPIC);
	sluice__v1__fetch_result__free_unpacked(res, NULL);
	res = fetch(cfd, "events", 99, 0, 10, 0, 8);
	cr_assert_eq(res->error, SLUICE__V1__ERROR_CODE__ERR_UNKNOWN_TOPIC);
	sluice__v1__fetch_result__free_unpacked(res, NULL);

	/* Long poll: ask past the end with a wait, then produce. The answer
	 * carries the new event, long before the 20 s deadline. */
	Sluice__V1__Fetch fe = SLUICE__V1__FETCH__INIT;
	fe.topic = "other";
	fe.partition = 0;
	fe.offset = 0;
	fe.max_events = 10;
	fe.wait_ms = 20000;
	fe.request_id = 99;
	send_msg(cfd, SLUICE__V1__FRAME_TYPE__FRAME_FETCH, &fe.base);
	struct sl_partitioner part;
	cr_assert_eq(sl_part_init(&part, SL_PART_HASH, 3), 0);
	uint32_t key = 0;
	char agg[32];
	for (;; key++) {
		snprintf(agg, sizeof(agg), "key-%u", key);
		if (sl_part_of_key(&part, agg, strlen(agg)) == 0)
			break;
	}
	len = (uint32_t)build_produce(buf, sizeof(buf), "other", 1000, 1, key, 1);
	uint64_t t0 = sl_now_ns();
	send_all(fd, buf, len);
	cr_assert_eq(read_frame(cfd, &body, &len), SLUICE__V1__FRAME_TYPE__FRAME_FETCH_RESULT);
	res = sluice__v1__fetch_result__unpack(NULL, len, body);
	free(body);
	cr_assert_eq(res->request_id, 99);
	cr_assert_eq(res->n_events, 1);
	cr_assert_lt(sl_now_ns() - t0, 10000000000ull);
	sluice__v1__fetch_result__free_unpacked(res, NULL);
	close(cfd);
	close(fd);
	stop(&f);
}

/* A frame with more events than the reactor's view scratch (1024) takes
 * the iterator path; every event is still acked once, in order per key. */
Test(server, frame_with_more_events_than_the_view_scratch, .timeout = 60)
{
	struct fixture f;
	start(&f, 2, 16, 5000);
	int fd = handshake(f.port);
	enum { N = 3000 };
	static uint8_t buf[1 << 19];
	static struct acked acks[N];
	int len = build_produce(buf, sizeof(buf), "events", 0, N, 0, 17);
	send_all(fd, buf, (size_t)len);
	collect_acks(fd, 0, N, acks);
	uint64_t last[17];
	bool seen[17] = {0};
	for (int i = 0; i < N; i++) {
		cr_assert_eq(acks[i].status, 0);
		int k = i % 17;
		if (seen[k])
			cr_assert_gt(acks[i].offset, last[k]);
		seen[k] = true;
		last[k] = acks[i].offset;
	}
	close(fd);
	stop(&f);
}

Test(server, idle_timeout, .timeout = 30)
{
	struct fixture f;
	start_idle(&f, 1, 16, 5000, 300);
	int fd = handshake(f.port);
	/* Handshake done, then silence: the server gives up on its own. */
	cr_assert_eq(expect_error(fd), SLUICE__V1__ERROR_CODE__ERR_TIMEOUT);
	close(fd);
	stop(&f);
}

/* Topics at runtime through the server's admin calls while the reactors
 * run (threads: the control thread builds the topic and the reactors adopt
 * or drop its partitions on their own threads; TSan watches the hand-over):
 * a created topic takes events on every reactor, a deleted one refuses
 * them and is gone from the list. */
Test(server, topics_created_and_deleted_while_running)
{
	struct fixture f;
	start(&f, 2, 16, 5000);
	char *body;
	size_t blen;
	/* 40 partitions: each reactor then owns more than
	 * SL_JOURNAL_MIN_PARTITIONS fsync partitions and gets a journal at
	 * adoption, so the journal's path runs here too (under TSan). */
	const char *req = "{\"name\": \"rt\", \"partitions\": 40}";
	int st = sl_server_topic_create(f.srv, req, strlen(req), &body, &blen);
	cr_assert_eq(st, 201, "create: %d %.*s", st, (int)blen, body);
	free(body);
	st = sl_server_topic_create(f.srv, req, strlen(req), &body, &blen);
	cr_assert_eq(st, 409, "a second create of the same name: %d", st);
	free(body);

	int fd = handshake(f.port);
	enum { N = 400 };
	static uint8_t buf[1 << 16];
	static struct acked acks[N];
	int len = build_produce(buf, sizeof(buf), "rt", 0, N, 0, 53);
	send_all(fd, buf, (size_t)len);
	collect_acks(fd, 0, N, acks);
	bool used[2] = {0};
	for (uint32_t i = 0; i < N; i++) {
		cr_assert_eq(acks[i].status, 0, "event %u refused: %d", i, acks[i].status);
		cr_assert_lt(acks[i].partition, 40);
		used[acks[i].partition % 2] = true;
	}
	/* Partitions of both reactors (p % 2) took events. */
	cr_assert(used[0] && used[1]);
	/* ... through the reactors' journals (one frame carries several
	 * partitions' commits). */
	char *mt;
	size_t mlen;
	cr_assert_eq(sl_server_metrics_text(f.srv, &mt, &mlen), 0);
	static const char want[] = "sluice_journal_sync_seconds_count{reactor=\"1\"}";
	cr_assert_not_null(memmem(mt, mlen, want, sizeof(want) - 1), "no journal for reactor 1");
	free(mt);

	st = sl_server_topic_delete(f.srv, "rt", 2, &body, &blen);
	cr_assert_eq(st, 200, "delete: %d %.*s", st, (int)blen, body);
	free(body);
	len = build_produce(buf, sizeof(buf), "rt", N, 10, 0, 5);
	send_all(fd, buf, (size_t)len);
	collect_acks(fd, N, 10, acks);
	for (uint32_t i = 0; i < 10; i++)
		cr_assert_eq(acks[i].status, SLUICE__V1__ERROR_CODE__ERR_UNKNOWN_TOPIC,
		             "event to a deleted topic: %d", acks[i].status);
	st = sl_server_topic_list(f.srv, &body, &blen);
	cr_assert_eq(st, 200);
	cr_assert_null(memmem(body, blen, "\"rt\"", 4), "deleted topic listed: %.*s", (int)blen,
	               body);
	free(body);
	close(fd);
	stop(&f);
}

/* One TopicAdmin round trip on fd: the answer's status; *body its JSON. */
static uint32_t admin_call(int fd, uint64_t id, Sluice__V1__TopicOp op, const char *name,
                           const char *json, char **body)
{
	Sluice__V1__TopicAdmin q = SLUICE__V1__TOPIC_ADMIN__INIT;
	uint8_t buf[4096];
	q.request_id = id;
	q.op = op;
	q.name = (char *)name;
	q.body = (char *)json;
	int n = sl_frame_encode_msg(SLUICE__V1__FRAME_TYPE__FRAME_TOPIC_ADMIN, &q.base, buf,
	                            sizeof(buf));
	cr_assert_gt(n, 0);
	send_all(fd, buf, (size_t)n);
	uint8_t *raw;
	uint32_t len;
	int type = read_frame(fd, &raw, &len);
	cr_assert_eq(type, SLUICE__V1__FRAME_TYPE__FRAME_TOPIC_ADMIN_RESULT,
	             "expected TopicAdminResult, got %d", type);
	Sluice__V1__TopicAdminResult *r = sluice__v1__topic_admin_result__unpack(NULL, len, raw);
	free(raw);
	cr_assert_not_null(r);
	cr_assert_eq(r->request_id, id);
	uint32_t st = r->status;
	*body = strdup(r->body);
	sluice__v1__topic_admin_result__free_unpacked(r, NULL);
	return st;
}

/* Topic admin on the native port gives what the HTTP routes give. */
Test(server, topic_admin_native, .timeout = 60)
{
	struct fixture f;
	start(&f, 2, 16, 5000);
	int fd = handshake(f.port);
	char *b;
	uint32_t st = admin_call(fd, 1, SLUICE__V1__TOPIC_OP__TOPIC_OP_CREATE, "",
	                         "{\"name\": \"na\", \"partitions\": 4}", &b);
	cr_assert_eq(st, 201, "create: %u %s", st, b);
	cr_assert_not_null(strstr(b, "\"partitions\":4"), "%s", b);
	free(b);
	st = admin_call(fd, 2, SLUICE__V1__TOPIC_OP__TOPIC_OP_CREATE, "", "{\"name\": \"na\"}", &b);
	cr_assert_eq(st, 409, "a second create: %u %s", st, b);
	free(b);
	st = admin_call(fd, 3, SLUICE__V1__TOPIC_OP__TOPIC_OP_LIST, "", "", &b);
	cr_assert_eq(st, 200);
	cr_assert(strstr(b, "\"na\"") && strstr(b, "\"events\""), "list: %s", b);
	free(b);
	st = admin_call(fd, 4, SLUICE__V1__TOPIC_OP__TOPIC_OP_ALTER, "na",
	                "{\"settings\": {\"overload\": \"drop\"}}", &b);
	cr_assert_eq(st, 200, "alter: %u %s", st, b);
	cr_assert_not_null(strstr(b, "\"overload\":\"drop\""), "%s", b);
	free(b);
	st = admin_call(fd, 5, SLUICE__V1__TOPIC_OP__TOPIC_OP_DESCRIBE, "nope", "", &b);
	cr_assert_eq(st, 404, "describe of a missing topic: %u %s", st, b);
	free(b);
	st = admin_call(fd, 6, (Sluice__V1__TopicOp)77, "", "", &b);
	cr_assert_eq(st, 400, "an unknown op: %u %s", st, b);
	free(b);
	/* Events go to the new topic on the same connection. */
	static uint8_t buf[1 << 14];
	static struct acked acks[50];
	int len = build_produce(buf, sizeof(buf), "na", 0, 50, 0, 7);
	send_all(fd, buf, (size_t)len);
	collect_acks(fd, 0, 50, acks);
	for (uint32_t i = 0; i < 50; i++)
		cr_assert(acks[i].status == 0 && acks[i].partition < 4, "event %u: %d", i,
		          acks[i].status);
	st = admin_call(fd, 7, SLUICE__V1__TOPIC_OP__TOPIC_OP_DELETE, "na", "", &b);
	cr_assert_eq(st, 200, "delete: %u %s", st, b);
	free(b);
	close(fd);
	/* Before Hello: refused like any request. */
	fd = dial(f.port);
	Sluice__V1__TopicAdmin q = SLUICE__V1__TOPIC_ADMIN__INIT;
	q.op = SLUICE__V1__TOPIC_OP__TOPIC_OP_LIST;
	len = sl_frame_encode_msg(SLUICE__V1__FRAME_TYPE__FRAME_TOPIC_ADMIN, &q.base, buf,
	                          sizeof(buf));
	send_all(fd, buf, (size_t)len);
	cr_assert_eq(expect_error(fd), SLUICE__V1__ERROR_CODE__ERR_STATE);
	close(fd);
	stop(&f);
}

/* auto_create_topics: the first produce to a missing topic waits for it
 * (its frames and those after it, in order) instead of being refused; a
 * name no topic may have is refused, and the connection goes on. */
Test(server, auto_create_parks_the_produce, .timeout = 60)
{
	struct fixture f;
	start_with(&f, 2, 16, 5000, 60000, true);
	int fd = handshake(f.port);
	enum { N = 300 };
	static uint8_t buf[1 << 16];
	static struct acked acks[N];
	/* Three frames in one write: the first parks, the others with it. */
	size_t off = 0;
	for (uint32_t k = 0; k < 3; k++)
		off += (size_t)build_produce(buf + off, sizeof(buf) - off, "fresh", k * 100, 100,
		                             k * 100, 300);
	send_all(fd, buf, off);
	collect_acks(fd, 0, N, acks);
	uint64_t next[8] = {0};
	for (uint32_t i = 0; i < N; i++) {
		cr_assert_eq(acks[i].status, 0, "event %u refused: %d", i, acks[i].status);
		cr_assert_lt(acks[i].partition, 8, "the defaults' 8 partitions");
		/* In send order per partition: the parked frames kept theirs. */
		cr_assert_eq(acks[i].offset, next[acks[i].partition]++, "event %u out of order", i);
	}
	char *b;
	size_t blen;
	cr_assert_eq(sl_server_topic_describe(f.srv, "fresh", 5, &b, &blen), 200);
	cr_assert_not_null(strstr(b, "\"source\":\"runtime\""), "%s", b);
	free(b);
	/* A name no topic may have: refused per event, the session goes on. */
	int len = build_produce(buf, sizeof(buf), "no such/name", N, 5, 0, 5);
	len += build_produce(buf + len, sizeof(buf) - (size_t)len, "fresh", N + 5, 5, 0, 5);
	send_all(fd, buf, (size_t)len);
	collect_acks(fd, N, 10, acks);
	for (uint32_t i = 0; i < 5; i++)
		cr_assert_eq(acks[i].status, SLUICE__V1__ERROR_CODE__ERR_UNKNOWN_TOPIC, "%u: %d", i,
		             acks[i].status);
	for (uint32_t i = 5; i < 10; i++)
		cr_assert_eq(acks[i].status, 0, "%u: %d", i, acks[i].status);
	close(fd);
	stop(&f);
}

/* dedup_window altered while the topic runs: off, an id resent by another
 * producer is stored again; on again, the window holds what is stored from
 * then on (an older id is not in it); in force when the alter answers. */
Test(server, dedup_window_altered_at_runtime, .timeout = 60)
{
	struct fixture f;
	start(&f, 2, 16, 5000);
	char *b;
	size_t blen;
	const char *req = "{\"name\": \"dw\", \"partitions\": 1}";
	cr_assert_eq(sl_server_topic_create(f.srv, req, strlen(req), &b, &blen), 201);
	free(b);
	static uint8_t buf[1 << 14];
	static struct acked acks[10];
	/* Each connection is a new producer; build_produce's ids follow the
	 * sequences, so sequence s carries the same id on every connection. */
	int fd = handshake(f.port);
	int len = build_produce(buf, sizeof(buf), "dw", 0, 10, 0, 3);
	send_all(fd, buf, (size_t)len);
	collect_acks(fd, 0, 10, acks);
	close(fd);
	cr_assert_eq(acks[9].offset, 9);
	/* On (10m by default): id 0 again is the original. */
	fd = handshake(f.port);
	len = build_produce(buf, sizeof(buf), "dw", 0, 1, 0, 1);
	send_all(fd, buf, (size_t)len);
	collect_acks(fd, 0, 1, acks);
	close(fd);
	cr_assert(acks[0].status == 0 && acks[0].offset == 0, "window on: offset %llu",
	          (unsigned long long)acks[0].offset);

	const char *off = "{\"settings\": {\"dedup_window\": \"0\"}}";
	int st = sl_server_topic_alter(f.srv, "dw", 2, off, strlen(off), &b, &blen);
	cr_assert_eq(st, 200, "alter: %d %.*s", st, (int)blen, b);
	free(b);
	fd = handshake(f.port);
	len = build_produce(buf, sizeof(buf), "dw", 0, 1, 0, 1);
	send_all(fd, buf, (size_t)len);
	collect_acks(fd, 0, 1, acks);
	close(fd);
	cr_assert(acks[0].status == 0 && acks[0].offset == 10,
	          "window off: id 0 stored again at 10, got offset %llu",
	          (unsigned long long)acks[0].offset);

	const char *on = "{\"settings\": {\"dedup_window\": \"5m\"}}";
	st = sl_server_topic_alter(f.srv, "dw", 2, on, strlen(on), &b, &blen);
	cr_assert_eq(st, 200, "alter: %d %.*s", st, (int)blen, b);
	cr_assert_not_null(strstr(b, "\"dedup_window\":\"5m\""), "%.*s", (int)blen, b);
	free(b);
	/* Ids 0..2 from a new producer: all stored before the window came
	 * back, so stored again (11..13); the same from another producer
	 * then: each the one just stored. */
	for (uint64_t round = 0; round < 2; round++) {
		fd = handshake(f.port);
		len = build_produce(buf, sizeof(buf), "dw", 0, 3, 0, 1);
		send_all(fd, buf, (size_t)len);
		collect_acks(fd, 0, 3, acks);
		close(fd);
		for (uint32_t i = 0; i < 3; i++)
			cr_assert(acks[i].status == 0 && acks[i].offset == 11 + i,
			          "round %llu id %u: status %d offset %llu",
			          (unsigned long long)round, i, acks[i].status,
			          (unsigned long long)acks[i].offset);
	}
	stop(&f);
}

/* durability altered while events stream (issue 22): a topic of 40
 * partitions made `none` turns fsync (each reactor then owns more than
 * SL_JOURNAL_MIN_PARTITIONS fsync partitions: the alter makes their
 * journals and the partitions join them), none, interval and fsync again,
 * each alter made right after a Produce was sent, so that its events are
 * taken while the partitions switch (under TSan: the control thread's
 * requests against the reactors). Every event is acked once, at dense
 * offsets, and each answer says the durability in force. */
Test(server, durability_altered_at_runtime, .timeout = 120)
{
	struct fixture f;
	start(&f, 2, 16, 5000);
	char *b, *mt;
	size_t blen, mlen;
	const char *req =
	    "{\"name\": \"du\", \"partitions\": 40, \"settings\": {\"durability\": \"none\"}}";
	int st = sl_server_topic_create(f.srv, req, strlen(req), &b, &blen);
	cr_assert_eq(st, 201, "create: %d %.*s", st, (int)blen, b);
	cr_assert_not_null(memmem(b, blen, "\"durability\":\"none\"", 19), "%.*s", (int)blen, b);
	free(b);
	static const char jwant[] = "sluice_journal_sync_seconds_count{reactor=\"1\"}";
	cr_assert_eq(sl_server_metrics_text(f.srv, &mt, &mlen), 0);
	cr_assert_null(memmem(mt, mlen, jwant, sizeof(jwant) - 1), "a journal before fsync");
	free(mt);

	/* The last round goes under the last alter's fsync alone. */
	static const char *const policies[] = {"fsync", "none", "interval:5ms", "fsync", NULL};
	enum { N = 400, ROUNDS = 5 };
	static uint8_t buf[1 << 16];
	static struct acked acks[N];
	static uint64_t next[40];
	static uint8_t seen[40][ROUNDS * N];
	int fd = handshake(f.port);
	for (uint32_t k = 0; k < ROUNDS; k++) {
		int len = build_produce(buf, sizeof(buf), "du", (uint64_t)k * N, N, 0, 53);
		send_all(fd, buf, (size_t)len);
		if (policies[k]) {
			char alter[128];
			snprintf(alter, sizeof(alter), "{\"settings\": {\"durability\": \"%s\"}}",
			         policies[k]);
			st = sl_server_topic_alter(f.srv, "du", 2, alter, strlen(alter), &b, &blen);
			cr_assert_eq(st, 200, "alter to %s: %d %.*s", policies[k], st, (int)blen,
			             b);
			char want[64];
			int wl = snprintf(want, sizeof(want), "\"durability\":\"%s\"", policies[k]);
			cr_assert_not_null(memmem(b, blen, want, (size_t)wl), "alter to %s: %.*s",
			                   policies[k], (int)blen, b);
			free(b);
		}
		collect_acks(fd, (uint64_t)k * N, N, acks);
		for (uint32_t i = 0; i < N; i++) {
			cr_assert_eq(acks[i].status, 0, "round %u event %u refused: %d", k, i,
			             acks[i].status);
			cr_assert_lt(acks[i].partition, 40);
			cr_assert_lt(acks[i].offset, ROUNDS * N);
			cr_assert_eq(seen[acks[i].partition][acks[i].offset]++, 0,
			             "partition %u offset %llu acked twice", acks[i].partition,
			             (unsigned long long)acks[i].offset);
			if (acks[i].offset + 1 > next[acks[i].partition])
				next[acks[i].partition] = acks[i].offset + 1;
		}
	}
	/* fsync on 20 partitions a reactor: through the journal the alter
	 * made. */
	cr_assert_eq(sl_server_metrics_text(f.srv, &mt, &mlen), 0);
	const char *at = memmem(mt, mlen, jwant, sizeof(jwant) - 1);
	cr_assert_not_null(at, "no journal after the alter to fsync");
	cr_assert_gt(strtoull(at + sizeof(jwant), NULL, 10), 0, "reactor 1's journal never synced");
	free(mt);
	/* Dense: every offset below each partition's end was acked once. */
	uint64_t total = 0;
	for (uint32_t p = 0; p < 40; p++) {
		for (uint64_t o = 0; o < next[p]; o++)
			cr_assert_eq(seen[p][o], 1, "partition %u offset %llu not acked", p,
			             (unsigned long long)o);
		total += next[p];
	}
	cr_assert_eq(total, (uint64_t)ROUNDS * N);
	close(fd);
	stop(&f);
}

/* ---- consumers of a topic made later (issue 22) ----------------------------------- */

/* Every partition of sink 0 wrote up to its partition's durable end. */
static bool sink_caught_up(void *arg)
{
	struct sl_server *srv = arg;
	struct sl_topic *t = sl_topics_find(&srv->topics, "late", 4);
	struct sl_sink_part_stats st;
	for (uint32_t p = 0; t && p < t->n_parts; p++)
		if (sl_sinks_part_stats(srv->sinks, 0, p, &st) < 0 ||
		    st.done < atomic_load(&t->parts[p].durable_pub))
			return false;
	return t != NULL;
}

/* Every stage read its input and every output it sent is acked. */
static bool pipes_caught_up(void *arg)
{
	struct sl_pipes *ps = arg;
	struct sl_pipe_part *pp;
	uint32_t k = 0;
	for (; (pp = sl_pipes_nth(ps, k)); k++)
		if (atomic_load(&pp->next_pub) < atomic_load(&pp->part->durable_pub) ||
		    atomic_load(&pp->durable_pub) < atomic_load(&pp->emitted_pub))
			return false;
	return k > 0;
}

/* A projection, a sink and a pipeline of topic `late`, which the server
 * does not have at start: they wait (503, status), and bind when
 * sl_server_topic_create makes it, the reactors taking the new parts on
 * their threads while this one queries (under TSan too). */
Test(server, consumers_bind_to_a_topic_made_later, .timeout = 120)
{
	struct fixture f;
	char err[512], yaml[256];
	struct sl_config_node *filter_args, *sink_args;
	snprintf(f.dir, sizeof(f.dir), "/tmp/sluice-server-test-XXXXXX");
	cr_assert_not_null(mkdtemp(f.dir));
	cr_assert_eq(sl_config_node_parse("{type: T}", 9, "args", &filter_args, err, sizeof(err)),
	             0);
	snprintf(yaml, sizeof(yaml), "{path: %s/out.jsonl}", f.dir);
	cr_assert_eq(sl_config_node_parse(yaml, strlen(yaml), "args", &sink_args, err, sizeof(err)),
	             0);
	static const char *const path[] = {SL_PLUGIN_DIR};
	struct sl_server_proj_spec proj = {.name = "counter",
	                                   .plugin = "counter",
	                                   .topic = SL_SERVER_TOPIC_LATER,
	                                   .topic_name = "late"};
	struct sl_server_sink_spec sink = {.name = "archive",
	                                   .plugin = "jsonl",
	                                   .topic = SL_SERVER_TOPIC_LATER,
	                                   .topic_name = "late",
	                                   .args = sink_args};
	struct sl_server_transform_spec tr = {.plugin = "filter", .args = filter_args};
	struct sl_server_pipeline_spec pipe = {.name = "copy",
	                                       .from = SL_SERVER_TOPIC_LATER,
	                                       .to = 1,
	                                       .from_name = "late",
	                                       .to_name = "other",
	                                       .transforms = &tr,
	                                       .n_transforms = 1};
	struct sl_server_opts o = {
	    .listen_native = "127.0.0.1:0",
	    .data_dir = f.dir,
	    .n_reactors = 2,
	    .max_connections = 16,
	    .max_frame_bytes = 1 << 20,
	    .handshake_timeout_ms = 5000,
	    .idle_timeout_ms = 60000,
	    .drain_timeout_ms = 10000,
	    .topics = g_topics,
	    .n_topics = 2,
	    .credit_start_bytes = 8u << 20,
	    .plugin_path = path,
	    .n_plugin_path = 1,
	    .projections = &proj,
	    .n_projections = 1,
	    .sinks = &sink,
	    .n_sinks = 1,
	    .pipelines = &pipe,
	    .n_pipelines = 1,
	};
	cr_assert_eq(sl_server_create(&o, &f.srv, err, sizeof(err)), 0, "server: %s", err);
	cr_assert_eq(sl_server_start(f.srv), 0);
	f.port = sl_server_native_port(f.srv);

	char *body;
	size_t blen;
	struct sl_server_query q = {.projection = "counter",
	                            .projection_len = 7,
	                            .key = "type:T",
	                            .key_len = 6,
	                            .timeout_ms = 30000};
	int st = sl_server_query(f.srv, &q, &body, &blen);
	cr_assert(st == 503 && memmem(body, blen, "waits for topic late", 20),
	          "query while waiting: %d %.*s", st, (int)blen, body);
	free(body);
	cr_assert_eq(sl_server_status_json(f.srv, &body, &blen), 0);
	uint32_t waiting = 0;
	for (char *at = body;
	     (at = memmem(at, blen - (size_t)(at - body), "waiting_for_topic", 17)); at++)
		waiting++;
	cr_assert_eq(waiting, 3, "status: %.*s", (int)blen, body);
	free(body);

	const char *req = "{\"name\": \"late\", \"partitions\": 4}";
	st = sl_server_topic_create(f.srv, req, strlen(req), &body, &blen);
	cr_assert_eq(st, 201, "create: %d %.*s", st, (int)blen, body);
	free(body);

	int fd = handshake(f.port);
	enum { N = 1000 };
	static uint8_t buf[1 << 17];
	static struct acked acks[N];
	int len = build_produce(buf, sizeof(buf), "late", 0, N, 0, 37);
	send_all(fd, buf, (size_t)len);
	collect_acks(fd, 0, N, acks);
	int64_t last[4] = {-1, -1, -1, -1};
	for (uint32_t i = 0; i < N; i++) {
		cr_assert_eq(acks[i].status, 0, "event %u refused: %d", i, acks[i].status);
		if ((int64_t)acks[i].offset > last[acks[i].partition])
			last[acks[i].partition] = (int64_t)acks[i].offset;
	}
	/* Read your writes on every partition: the reactors apply them. */
	for (uint32_t p = 0; p < 4; p++) {
		if (last[p] < 0)
			continue;
		q.has_min = true;
		q.min_partition = p;
		q.min_offset = (uint64_t)last[p];
		st = sl_server_query(f.srv, &q, &body, &blen);
		cr_assert_eq(st, 200, "after %u:%lld: %d %.*s", p, (long long)last[p], st,
		             (int)blen, body);
		if (p < 3)
			free(body);
	}
	cr_assert_not_null(memmem(body, blen, "\"count\":1000", 12), "counter: %.*s", (int)blen,
	                   body);
	free(body);
	cr_assert_eq(sl_sinks_wait(f.srv->sinks, sink_caught_up, f.srv, 60ull * 1000000000u), 0,
	             "the sink did not write the topic");
	uint64_t written = 0;
	for (uint32_t p = 0; p < 4; p++) {
		struct sl_sink_part_stats ss;
		cr_assert_eq(sl_sinks_part_stats(f.srv->sinks, 0, p, &ss), 0);
		written += ss.events;
	}
	cr_assert_eq(written, N);
	cr_assert_eq(
	    sl_pipes_wait(f.srv->pipes, pipes_caught_up, f.srv->pipes, 60ull * 1000000000u), 0,
	    "the pipeline did not copy the topic");
	uint64_t copied = 0;
	for (uint32_t p = 0; p < f.srv->topics.v[1].n_parts; p++)
		copied += atomic_load(&f.srv->topics.v[1].parts[p].durable_pub);
	cr_assert_eq(copied, N, "other holds %llu of %u", (unsigned long long)copied, N);

	st = sl_server_topic_delete(f.srv, "late", 4, &body, &blen);
	cr_assert(st == 409 && memmem(body, blen, "projection counter", 18),
	          "delete of a topic that is read: %d %.*s", st, (int)blen, body);
	free(body);
	close(fd);
	stop(&f);
	sl_config_node_free(filter_args);
	sl_config_node_free(sink_args);
}
