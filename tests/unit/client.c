/*
 * libsluice against an in-process server: real reactors, real sockets on
 * loopback. Every wait is a client call with a deadline (flush, poll), never
 * a sleep; every loop is bounded by a count or a deadline.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <ftw.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client/client_impl.h"
#include "part/part.h"
#include "proto/proto.h"
#include "reactor/reactor.h"
#include "server/server.h"
#include "sluice/client.h"

static struct sl_topic_spec g_topics[] = {
    {.name = "events", .n_parts = 8, .partitioner = SL_PART_HASH},
    {.name = "other", .n_parts = 3, .partitioner = SL_PART_HASH},
};

/* Each server stores under its own temporary folder; a restarted one
 * reuses its predecessor's. */
struct dir {
	char path[64];
};

static void dir_make(struct dir *d)
{
	snprintf(d->path, sizeof(d->path), "/tmp/sluice-client-test-XXXXXX");
	cr_assert_not_null(mkdtemp(d->path));
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	return remove(path);
}

static void dir_remove(struct dir *d)
{
	cr_assert_eq(nftw(d->path, rm_entry, 16, FTW_DEPTH | FTW_PHYS), 0);
}

static struct sl_server *start_server(const char *listen, struct dir *d)
{
	struct sl_server_opts o = {
	    .listen_native = listen,
	    .data_dir = d->path,
	    .n_reactors = 2,
	    .max_connections = 64,
	    .max_frame_bytes = 1 << 20,
	    .handshake_timeout_ms = 5000,
	    .idle_timeout_ms = 60000,
	    .drain_timeout_ms = 1000,
	    .topics = g_topics,
	    .n_topics = 2,
	    .pin = true,
	};
	struct sl_server *srv;
	char err[512];
	int ret = sl_server_create(&o, &srv, err, sizeof(err));
	cr_assert_eq(ret, 0, "server on %s: %s", listen, err);
	cr_assert_eq(sl_server_start(srv), 0);
	return srv;
}

static void stop_server(struct sl_server *srv)
{
	sl_server_stop(srv);
	sl_server_wait(srv);
	sl_server_destroy(srv);
}

/* What the callback saw, per sequence. */
struct rec {
	int status;
	uint32_t code;
	uint32_t partition;
	uint64_t offset;
	uint32_t calls;
};

struct seen {
	struct rec *r;
	uint64_t n;
	uint64_t calls;
	uint64_t out_of_range;
};

static void on_ack(void *arg, const struct sl_client_ack *a)
{
	struct seen *s = arg;
	s->calls++;
	if (a->sequence >= s->n) {
		s->out_of_range++;
		return;
	}
	struct rec *r = &s->r[a->sequence];
	r->calls++;
	r->status = a->status;
	r->code = a->code;
	r->partition = a->partition;
	r->offset = a->offset;
}

static void seen_init(struct seen *s, uint64_t n)
{
	s->r = calloc(n, sizeof(*s->r));
	cr_assert_not_null(s->r);
	s->n = n;
	s->calls = s->out_of_range = 0;
}

static struct sl_client *connect_to(uint16_t port, struct seen *s, bool nonblocking)
{
	struct sl_client_opts o = {
	    .port = port,
	    .client_name = "test",
	    .on_ack = on_ack,
	    .arg = s,
	    .nonblocking = nonblocking,
	    .backoff_min_ms = 5,
	    .backoff_max_ms = 50,
	    .seed = 42,
	};
	struct sl_client *c;
	char err[256];
	int ret = sl_client_connect(&o, &c, err, sizeof(err));
	cr_assert_eq(ret, 0, "connect: %s", err);
	return c;
}

static void key_of(uint64_t i, uint32_t keys, char *buf, size_t cap)
{
	snprintf(buf, cap, "key-%u", (unsigned)(i % keys));
}

static int produce_one(struct sl_client *c, const char *topic, uint64_t i, uint32_t keys,
                       uint64_t *seq)
{
	char agg[32], data[64];
	key_of(i, keys, agg, sizeof(agg));
	int dl = snprintf(data, sizeof(data), "{\"i\":%llu}", (unsigned long long)i);
	struct sl_client_event ev = {
	    .type = "T",
	    .type_len = 1,
	    .aggregate = agg,
	    .aggregate_len = strlen(agg),
	    .data = data,
	    .data_len = (size_t)dl,
	};
	return sl_client_produce(c, topic, &ev, seq);
}

/*
 * Pipelined: N events go out without waiting (the window is far larger than
 * one batch), each sequence is answered exactly once, stored in the
 * partition its aggregate hashes to, with per-key offsets increasing.
 */
Test(client, produce_pipelined_every_sequence_acked_once, .timeout = 60)
{
	struct dir d;
	dir_make(&d);
	struct sl_server *srv = start_server("127.0.0.1:0", &d);
	struct seen s;
	enum { N = 20000, KEYS = 37 };
	seen_init(&s, N);
	struct sl_client *c = connect_to(sl_server_native_port(srv), &s, false);
	cr_assert_neq(sl_client_producer_id(c), 0);

	for (uint64_t i = 0; i < N; i++) {
		uint64_t seq;
		cr_assert_eq(produce_one(c, NULL, i, KEYS, &seq), 0);
		cr_assert_eq(seq, i, "sequences start at 0 and are dense");
	}
	int ret = sl_client_flush(c, 30000);
	cr_assert_eq(ret, 0, "flush: %s (%s)", sl_strerror(ret), sl_client_last_error(c));
	cr_assert_eq(sl_client_inflight(c), 0);

	struct sl_partitioner part;
	cr_assert_eq(sl_part_init(&part, SL_PART_HASH, 8), 0);
	uint64_t last[KEYS];
	bool have[KEYS] = {0};
	for (uint64_t i = 0; i < N; i++) {
		char agg[32];
		key_of(i, KEYS, agg, sizeof(agg));
		cr_assert_eq(s.r[i].calls, 1, "seq %llu answered %u times", (unsigned long long)i,
		             s.r[i].calls);
		cr_assert_eq(s.r[i].status, 0);
		cr_assert_eq(s.r[i].partition, sl_part_of_key(&part, agg, strlen(agg)));
		uint32_t k = (uint32_t)(i % KEYS);
		if (have[k])
			cr_assert_gt(s.r[i].offset, last[k], "per-key order broken");
		have[k] = true;
		last[k] = s.r[i].offset;
	}
	cr_assert_eq(s.calls, N);
	cr_assert_eq(s.out_of_range, 0);

	struct sl_client_stats st;
	sl_client_get_stats(c, &st);
	cr_assert_eq(st.produced, N);
	cr_assert_eq(st.acked, N);
	cr_assert_eq(st.refused, 0);
	cr_assert_eq(st.stray_acks, 0);
	/* Batched: 256 events per frame by default. */
	cr_assert_leq(st.batches, N / 256 + 2);
	sl_client_close(c);
	cr_assert_eq(s.calls, N, "close after flush answers nothing more");
	sl_part_destroy(&part);
	stop_server(srv);
	free(s.r);
	dir_remove(&d);
}

Test(client, unknown_topic_refused_with_its_code, .timeout = 30)
{
	struct dir d;
	dir_make(&d);
	struct sl_server *srv = start_server("127.0.0.1:0", &d);
	struct seen s;
	seen_init(&s, 30);
	struct sl_client *c = connect_to(sl_server_native_port(srv), &s, false);

	for (uint64_t i = 0; i < 10; i++)
		cr_assert_eq(produce_one(c, "nope", i, 3, NULL), 0);
	for (uint64_t i = 10; i < 20; i++)
		cr_assert_eq(produce_one(c, "other", i, 3, NULL), 0);
	for (uint64_t i = 20; i < 30; i++)
		cr_assert_eq(produce_one(c, "nope", i, 3, NULL), 0);
	cr_assert_eq(sl_client_flush(c, 10000), 0);
	for (uint64_t i = 0; i < 30; i++) {
		cr_assert_eq(s.r[i].calls, 1);
		if (i >= 10 && i < 20) {
			cr_assert_eq(s.r[i].status, 0);
			cr_assert_lt(s.r[i].partition, 3);
		} else {
			cr_assert_eq(s.r[i].status, -SL_ENOTOPIC, "seq %llu: %d",
			             (unsigned long long)i, s.r[i].status);
			cr_assert_eq(s.r[i].code, SLUICE__V1__ERROR_CODE__ERR_UNKNOWN_TOPIC);
		}
	}
	struct sl_client_stats st;
	sl_client_get_stats(c, &st);
	cr_assert_eq(st.refused, 20);
	cr_assert_eq(st.acked, 10);
	/* Three topic changes, three frames. */
	cr_assert_eq(st.batches, 3);
	sl_client_close(c);
	stop_server(srv);
	free(s.r);
	dir_remove(&d);
}

/*
 * Read tokens: per topic partition, the highest offset acked to this client
 * (refused events count for nothing), raised by tokens the application
 * saw elsewhere and never lowered; the answers' format is the acks'.
 */
Test(client, read_tokens_keep_the_highest_per_partition, .timeout = 30)
{
	struct dir d;
	dir_make(&d);
	struct sl_server *srv = start_server("127.0.0.1:0", &d);
	struct seen s;
	enum { N = 400 };
	seen_init(&s, N + 10);
	struct sl_client *c = connect_to(sl_server_native_port(srv), &s, false);
	char tok[SL_CLIENT_TOKEN_MAX], want[SL_CLIENT_TOKEN_MAX];

	cr_assert_eq(sl_client_read_token(c, NULL, 0, tok, sizeof(tok)), -ENOENT);
	for (uint64_t i = 0; i < N; i++)
		cr_assert_eq(produce_one(c, i % 4 ? NULL : "other", i, 29, NULL), 0);
	for (uint64_t i = N; i < N + 10; i++)
		cr_assert_eq(produce_one(c, "nope", i, 3, NULL), 0);
	cr_assert_eq(sl_client_flush(c, 10000), 0);

	/* The highest offset acked per (topic, partition), from the acks. */
	int64_t hi[2][8];
	memset(hi, 0xff, sizeof(hi));
	for (uint64_t i = 0; i < N; i++) {
		cr_assert_eq(s.r[i].status, 0);
		int t = i % 4 ? 0 : 1;
		if ((int64_t)s.r[i].offset > hi[t][s.r[i].partition])
			hi[t][s.r[i].partition] = (int64_t)s.r[i].offset;
	}
	const char *names[2] = {"events", "other"};
	for (int t = 0; t < 2; t++)
		for (uint32_t p = 0; p < 8; p++) {
			int n = sl_client_read_token(c, t ? names[t] : NULL, p, tok, sizeof(tok));
			if (hi[t][p] < 0) {
				cr_assert_eq(n, -ENOENT, "%s/%u: %d", names[t], p, n);
				continue;
			}
			snprintf(want, sizeof(want), "%u:%lld", p, (long long)hi[t][p]);
			cr_assert_eq(n, (int)strlen(want), "%s/%u: %d", names[t], p, n);
			cr_assert_str_eq(tok, want);
			cr_assert_eq(sl_client_read_token(c, names[t], p, tok, sizeof(tok)), n);
		}
	/* Refused events leave nothing behind. */
	cr_assert_eq(sl_client_read_token(c, "nope", 0, tok, sizeof(tok)), -ENOENT);

	/* A token seen elsewhere (a query's answer) raises; a lower one does
	 * not lower. Offset 0 is a token too. */
	cr_assert_eq(sl_client_saw_token(c, NULL, "1:1000000"), 0);
	cr_assert_eq(sl_client_read_token(c, NULL, 1, tok, sizeof(tok)), 9);
	cr_assert_str_eq(tok, "1:1000000");
	cr_assert_eq(sl_client_saw_token(c, NULL, "1:3"), 0);
	cr_assert_str_eq((sl_client_read_token(c, NULL, 1, tok, sizeof(tok)), tok), "1:1000000");
	cr_assert_eq(sl_client_saw_token(c, "fresh", "4095:0"), 0);
	cr_assert_eq(sl_client_read_token(c, "fresh", 4095, tok, sizeof(tok)), 6);
	cr_assert_str_eq(tok, "4095:0");
	cr_assert_eq(sl_client_read_token(c, "fresh", 0, tok, sizeof(tok)), -ENOENT);
	cr_assert_eq(sl_client_saw_token(c, NULL, "0:18446744073709551613"), 0);
	cr_assert_eq(sl_client_read_token(c, NULL, 0, tok, sizeof(tok)), 22);
	cr_assert_str_eq(tok, "0:18446744073709551613");

	/* Malformed tokens and a short buffer. */
	const char *bad[] = {"",
	                     ":",
	                     "1:",
	                     ":5",
	                     "x:1",
	                     "1:x",
	                     "-1:2",
	                     "1:-2",
	                     " 1:2",
	                     "1:2 ",
	                     "4096:1",
	                     "1:18446744073709551614",
	                     "1:99999999999999999999"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		cr_assert_eq(sl_client_saw_token(c, NULL, bad[i]), -EINVAL, "'%s'", bad[i]);
	cr_assert_eq(sl_client_saw_token(c, NULL, NULL), -EINVAL);
	cr_assert_eq(sl_client_read_token(c, NULL, 1, tok, 9), -ENOSPC);
	cr_assert_str_eq(tok, "");
	cr_assert_eq(sl_client_read_token(c, NULL, 1, NULL, 0), -EINVAL);

	sl_client_close(c);
	stop_server(srv);
	free(s.r);
	dir_remove(&d);
}

/*
 * The server goes away with events in flight and comes back on the same
 * port: the client reconnects and resends what was not answered, with the
 * original sequences. The server does not deduplicate yet, so a resend after
 * a lost ack may store an event twice; the client still answers each
 * sequence once, and none may be lost.
 */
Test(client, reconnect_resends_unacked_to_a_new_server, .timeout = 120)
{
	struct dir d;
	dir_make(&d);
	struct sl_server *srv = start_server("127.0.0.1:0", &d);
	uint16_t port = sl_server_native_port(srv);
	char listen[32];
	snprintf(listen, sizeof(listen), "127.0.0.1:%u", port);
	struct seen s;
	enum { A = 5000, B = 3000, N = A + B };
	seen_init(&s, N);
	struct sl_client *c = connect_to(port, &s, false);
	uint64_t id = sl_client_producer_id(c);

	/* Some acked, some in flight, some still batched. */
	for (uint64_t i = 0; i < A; i++)
		cr_assert_eq(produce_one(c, NULL, i, 11, NULL), 0);
	sl_client_poll(c, 0);
	stop_server(srv);

	/* Produced while there is no server at all: they wait in the client. */
	for (uint64_t i = A; i < N; i++)
		cr_assert_eq(produce_one(c, NULL, i, 11, NULL), 0);
	/* The client notices and starts backing off; nothing is answered. */
	for (int i = 0; i < 5; i++)
		cr_assert_geq(sl_client_poll(c, 10), 0);
	cr_assert_gt(sl_client_inflight(c), 0);

	srv = start_server(listen, &d);
	cr_assert_eq(sl_server_native_port(srv), port);
	int ret = sl_client_flush(c, 60000);
	cr_assert_eq(ret, 0, "flush: %s (%s)", sl_strerror(ret), sl_client_last_error(c));

	for (uint64_t i = 0; i < N; i++) {
		cr_assert_eq(s.r[i].calls, 1, "seq %llu answered %u times", (unsigned long long)i,
		             s.r[i].calls);
		cr_assert_eq(s.r[i].status, 0, "seq %llu lost: %d", (unsigned long long)i,
		             s.r[i].status);
	}
	struct sl_client_stats st;
	sl_client_get_stats(c, &st);
	cr_assert_geq(st.connects, 2);
	cr_assert_geq(st.resent, B, "everything produced while down went out as a resend");
	cr_assert_eq(sl_client_producer_id(c), id, "same producer id after the reconnect");

	/* The new server received every resent event. */
	sl_client_close(c);
	sl_server_stop(srv);
	sl_server_wait(srv);
	uint64_t in = 0;
	for (uint32_t i = 0; i < srv->n; i++) {
		struct sl_reactor_stats rs;
		sl_reactor_get_stats(srv->reactors[i], &rs);
		in += rs.events_in;
	}
	cr_assert_eq(in, st.resent);
	sl_server_destroy(srv);
	free(s.r);
	dir_remove(&d);
}

/* The event-loop face: the client's fd in poll(), plus its timeout. */
Test(client, event_loop_integration, .timeout = 60)
{
	struct dir d;
	dir_make(&d);
	struct sl_server *srv = start_server("127.0.0.1:0", &d);
	struct seen s;
	enum { N = 3000 };
	seen_init(&s, N);
	struct sl_client *c = connect_to(sl_server_native_port(srv), &s, true);
	int fd = sl_client_fd(c);
	cr_assert_geq(fd, 0);

	uint64_t next = 0;
	uint64_t deadline = sl_now_ns() + 30ull * 1000000000u;
	while ((next < N || sl_client_inflight(c)) && sl_now_ns() < deadline) {
		while (next < N) {
			int ret = produce_one(c, NULL, next, 5, NULL);
			if (ret == -EAGAIN)
				break;
			cr_assert_eq(ret, 0);
			next++;
		}
		int t = sl_client_timeout_ms(c);
		struct pollfd p = {.fd = fd, .events = POLLIN};
		poll(&p, 1, t < 0 || t > 1000 ? 1000 : t);
		cr_assert_geq(sl_client_poll(c, 0), 0);
	}
	cr_assert_eq(next, N);
	cr_assert_eq(sl_client_inflight(c), 0);
	for (uint64_t i = 0; i < N; i++)
		cr_assert_eq(s.r[i].calls, 1);
	cr_assert_eq(sl_client_fd(c), fd, "the fd is stable");
	sl_client_close(c);
	stop_server(srv);
	free(s.r);
	dir_remove(&d);
}

/* A window of 100 events: produce never has more in flight, and a
 * nonblocking client says EAGAIN instead of waiting. */
Test(client, window_bounds_inflight, .timeout = 60)
{
	struct dir d;
	dir_make(&d);
	struct sl_server *srv = start_server("127.0.0.1:0", &d);
	struct seen s;
	enum { N = 2000 };
	seen_init(&s, N);
	struct sl_client_opts o = {
	    .port = sl_server_native_port(srv),
	    .on_ack = on_ack,
	    .arg = &s,
	    .max_inflight = 100,
	    .batch_max_events = 64,
	};
	struct sl_client *c;
	cr_assert_eq(sl_client_connect(&o, &c, NULL, 0), 0);
	for (uint64_t i = 0; i < N; i++) {
		cr_assert_eq(produce_one(c, NULL, i, 7, NULL), 0);
		cr_assert_leq(sl_client_inflight(c), 100);
	}
	cr_assert_eq(sl_client_flush(c, 10000), 0);
	for (uint64_t i = 0; i < N; i++)
		cr_assert_eq(s.r[i].calls, 1);
	sl_client_close(c);

	o.nonblocking = true;
	cr_assert_eq(sl_client_connect(&o, &c, NULL, 0), 0);
	uint64_t ok = 0;
	int ret = 0;
	for (int i = 0; i < 1000 && (ret = produce_one(c, NULL, (uint64_t)i, 7, NULL)) == 0; i++)
		ok++;
	cr_assert_eq(ret, -EAGAIN);
	cr_assert_eq(ok, 100);
	cr_assert_eq(sl_client_flush(c, 10000), 0);
	sl_client_close(c);
	stop_server(srv);
	free(s.r);
	dir_remove(&d);
}

Test(client, close_cancels_what_is_unanswered, .timeout = 30)
{
	struct dir d;
	dir_make(&d);
	struct sl_server *srv = start_server("127.0.0.1:0", &d);
	struct seen s;
	seen_init(&s, 100);
	struct sl_client *c = connect_to(sl_server_native_port(srv), &s, false);
	stop_server(srv);
	for (uint64_t i = 0; i < 100; i++)
		cr_assert_eq(produce_one(c, NULL, i, 3, NULL), 0);
	sl_client_close(c);
	cr_assert_eq(s.calls, 100);
	for (uint64_t i = 0; i < 100; i++) {
		cr_assert_eq(s.r[i].calls, 1);
		cr_assert_eq(s.r[i].status, -ECANCELED);
	}
	free(s.r);
	dir_remove(&d);
}

Test(client, connect_refused_and_bad_input, .timeout = 30)
{
	struct dir d;
	dir_make(&d);
	struct sl_server *srv = start_server("127.0.0.1:0", &d);
	uint16_t port = sl_server_native_port(srv);
	struct seen s;
	seen_init(&s, 4);
	struct sl_client *c = connect_to(port, &s, false);

	/* An event larger than a frame. */
	size_t big = (1u << 20) + 1;
	char *data = calloc(1, big);
	struct sl_client_event ev = {.type = "T",
	                             .type_len = 1,
	                             .aggregate = "a",
	                             .aggregate_len = 1,
	                             .data = data,
	                             .data_len = big};
	cr_assert_eq(sl_client_produce(c, NULL, &ev, NULL), -EMSGSIZE);
	free(data);
	/* Bytes that are not an Event never reach the server. */
	uint8_t junk[] = {0x0a, 0x05, 0x01};
	cr_assert_eq(sl_client_produce_encoded(c, NULL, junk, sizeof(junk), NULL),
	             -SL_EPROTO_DECODE);
	/* An encoded event goes through as it is. */
	uint8_t buf[128];
	uint8_t id[16] = {1, 2, 3};
	struct sl_event_view v = {.id = id,
	                          .type = "T",
	                          .type_len = 1,
	                          .aggregate = "k",
	                          .aggregate_len = 1,
	                          .timestamp_ms = 5};
	int len = sl_event_encode(buf, sizeof(buf), &v, NULL, 0);
	cr_assert_gt(len, 0);
	uint64_t seq = 99;
	cr_assert_eq(sl_client_produce_encoded(c, NULL, buf, (size_t)len, &seq), 0);
	cr_assert_eq(seq, 0);
	cr_assert_eq(sl_client_flush(c, 10000), 0);
	cr_assert_eq(s.r[0].calls, 1);
	cr_assert_eq(s.r[0].status, 0);
	sl_client_close(c);
	stop_server(srv);

	/* Nothing listens there any more. */
	struct sl_client_opts o = {.port = port};
	char err[256];
	cr_assert_eq(sl_client_connect(&o, &c, err, sizeof(err)), -ECONNREFUSED);
	cr_assert_null(c);
	cr_assert(strstr(err, "refused") != NULL, "error text: %s", err);
	free(s.r);
	dir_remove(&d);
}

/* ---- the Ack scanner on its own ------------------------------------------- */

struct scanned {
	struct sl__ack_event ev[64];
	int n;
};

static void on_scan(void *arg, const struct sl__ack_event *e)
{
	struct scanned *s = arg;
	cr_assert_lt(s->n, 64);
	s->ev[s->n++] = *e;
}

Test(client, ack_scan_reads_what_the_encoder_writes)
{
	uint32_t idx_a[] = {4, 7, 9};
	uint64_t offs[] = {100, 50, 75};
	uint32_t idx_r[] = {1, 2};
	struct sl_ack_part parts[] = {
	    {.partition = 3, .base_offset = 10, .index = {.first = 0, .n = 3}},
	    {.partition = 5,
	     .base_offset = 0,
	     .index = {.v = idx_a, .n = 3},
	     .offsets = offs,
	     .duplicate = true},
	};
	struct sl_ack_reject rj = {.index = {.v = idx_r, .n = 2},
	                           .code = 10,
	                           .message = "busy",
	                           .message_len = 4,
	                           .retry_after_ms = 250};
	struct sl_ack ack = {
	    .base_sequence = 1000, .parts = parts, .n_parts = 2, .rejects = &rj, .n_rejects = 1};
	uint8_t buf[512];
	int len = sl_ack_encode(buf, sizeof(buf), &ack);
	cr_assert_gt(len, 0);

	struct scanned s = {.n = 0};
	int n = sl__ack_scan(buf + 5, (size_t)len - 5, on_scan, &s);
	cr_assert_eq(n, 8);
	cr_assert_eq(s.n, 8);
	for (int i = 0; i < 3; i++) {
		cr_assert_eq(s.ev[i].seq, 1000u + (unsigned)i);
		cr_assert_eq(s.ev[i].partition, 3);
		cr_assert_eq(s.ev[i].offset, 10u + (unsigned)i);
		cr_assert_eq(s.ev[i].code, 0);
		cr_assert_not(s.ev[i].duplicate);
	}
	for (int i = 0; i < 3; i++) {
		cr_assert_eq(s.ev[3 + i].seq, 1000u + idx_a[i]);
		cr_assert_eq(s.ev[3 + i].offset, offs[i]);
		cr_assert(s.ev[3 + i].duplicate);
	}
	for (int i = 0; i < 2; i++) {
		cr_assert_eq(s.ev[6 + i].seq, 1000u + idx_r[i]);
		cr_assert_eq(s.ev[6 + i].code, 10);
		cr_assert_eq(s.ev[6 + i].retry_after_ms, 250);
		cr_assert_eq(s.ev[6 + i].message_len, 4);
		cr_assert_arr_eq(s.ev[6 + i].message, "busy", 4);
	}

	/* Every strict prefix is malformed or a shorter valid message; a
	 * malformed one reports nothing. */
	for (int cut = 1; cut < len - 5; cut++) {
		struct scanned t = {.n = 0};
		int r = sl__ack_scan(buf + 5, (size_t)cut, on_scan, &t);
		if (r < 0)
			cr_assert_eq(t.n, 0, "cut %d: events reported from a bad frame", cut);
		else
			cr_assert_eq(t.n, r);
	}
}

/* Unpacked repeated fields, base_sequence last, an unknown field: all legal
 * protobuf that another encoder may write. */
Test(client, ack_scan_unpacked_and_reordered)
{
	const uint8_t part[] = {
	    0x08, 0x02, /* partition 2 */
	    0x18, 0x05, /* index 5 (unpacked) */
	    0x20, 0x2a, /* offsets 42 */
	    0x18, 0x06, /* index 6 */
	    0x20, 0x2b, /* offsets 43 */
	    0x78, 0x01, /* field 15: unknown, skipped */
	};
	uint8_t body[64];
	size_t n = 0;
	body[n++] = 0x12;
	body[n++] = sizeof(part);
	memcpy(body + n, part, sizeof(part));
	n += sizeof(part);
	body[n++] = 0x08; /* base_sequence 300, after the part */
	body[n++] = 0xac;
	body[n++] = 0x02;
	struct scanned s = {.n = 0};
	cr_assert_eq(sl__ack_scan(body, n, on_scan, &s), 2);
	cr_assert_eq(s.ev[0].seq, 305);
	cr_assert_eq(s.ev[0].offset, 42);
	cr_assert_eq(s.ev[1].seq, 306);
	cr_assert_eq(s.ev[1].offset, 43);
	cr_assert_eq(s.ev[1].partition, 2);

	/* offsets[] present but shorter than index[]: refused. */
	const uint8_t bad[] = {0x12, 0x06, 0x18, 0x05, 0x18, 0x06, 0x20, 0x01};
	s.n = 0;
	cr_assert_eq(sl__ack_scan(bad, sizeof(bad), on_scan, &s), -SL_EPROTO_DECODE);
	cr_assert_eq(s.n, 0);
	/* Wrong wire type for base_sequence. */
	const uint8_t wt[] = {0x0a, 0x00};
	cr_assert_eq(sl__ack_scan(wt, sizeof(wt), on_scan, &s), -SL_EPROTO_DECODE);
}

/* ---- cluster routing pieces (client/route.c) -------------------------------- */

Test(client_route, server_lists_parse)
{
	struct sl__hostport *v;
	size_t n;
	char err[200];

	cr_assert_eq(sl__servers_parse("127.0.0.1:7400", &v, &n, err, sizeof(err)), 0);
	cr_assert_eq(n, 1);
	cr_assert_str_eq(v[0].host, "127.0.0.1");
	cr_assert_eq(v[0].port, 7400);
	free(v);

	cr_assert_eq(
	    sl__servers_parse("a:1, b.example:7410 ,[::1]:7420,h:65535", &v, &n, err, sizeof(err)),
	    0);
	cr_assert_eq(n, 4);
	cr_assert_str_eq(v[0].host, "a");
	cr_assert_eq(v[0].port, 1);
	cr_assert_str_eq(v[1].host, "b.example");
	cr_assert_eq(v[1].port, 7410);
	cr_assert_str_eq(v[2].host, "::1");
	cr_assert_eq(v[2].port, 7420);
	cr_assert_eq(v[3].port, 65535);
	char buf[300];
	sl__hostport_format(&v[2], buf, sizeof(buf));
	cr_assert_str_eq(buf, "[::1]:7420");
	free(v);

	const char *bad[] = {"",        "h",         "h:",       ":7400", "h:0",
	                     "h:65536", "h:7x",      "h:1,,h:2", "h:1,",  "::1:7400",
	                     "[::1]",   "[::1]7400", "h:123456"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		cr_assert_eq(sl__servers_parse(bad[i], &v, &n, err, sizeof(err)), -EINVAL,
		             "accepted '%s'", bad[i]);
		cr_assert(err[0], "no reason for '%s'", bad[i]);
	}
}

static Sluice__V1__PartitionInfo *sl__pinfo(Sluice__V1__PartitionInfo *pi, uint32_t p,
                                            const char *leader, const char *native, uint32_t epoch)
{
	sluice__v1__partition_info__init(pi);
	pi->partition = p;
	pi->leader = (char *)leader;
	pi->leader_native = (char *)native;
	pi->leader_epoch = epoch;
	return pi;
}

Test(client_route, table_from_metadata)
{
	Sluice__V1__PartitionInfo pi[4], *pp[4];
	Sluice__V1__TopicInfo ti = SLUICE__V1__TOPIC_INFO__INIT;
	struct sl__route r;
	char err[200];

	/* Listed out of order, as a Metadata answer may: indexed by number. */
	pp[0] = sl__pinfo(&pi[0], 2, "n3", "127.0.0.1:7530", 4);
	pp[1] = sl__pinfo(&pi[1], 0, "n1", "127.0.0.1:7510", 1);
	pp[2] = sl__pinfo(&pi[2], 1, "n2", "127.0.0.1:7520", 2);
	pp[3] = sl__pinfo(&pi[3], 3, "n1", "127.0.0.1:7510", 1);
	ti.name = "events";
	ti.partitions = pp;
	ti.n_partitions = 4;
	cr_assert_eq(sl__route_build(&ti, &r, err, sizeof(err)), 1);
	cr_assert(r.cluster);
	cr_assert_eq(r.n_parts, 4);
	cr_assert_str_eq(r.p[0].native, "127.0.0.1:7510");
	cr_assert_str_eq(r.p[1].leader, "n2");
	cr_assert_str_eq(r.p[2].native, "127.0.0.1:7530");
	cr_assert_eq(r.p[2].epoch, 4);
	/* Keys go where the server's partitioner puts them. */
	struct sl_partitioner pt;
	cr_assert_eq(sl_part_init(&pt, SL_PART_HASH, 4), 0);
	for (int i = 0; i < 200; i++) {
		char key[16];
		int len = snprintf(key, sizeof(key), "order-%d", i);
		uint32_t p, want = sl_part_of_key(&pt, key, (size_t)len);
		const char *to = sl__route_leader(&r, key, (size_t)len, &p);
		cr_assert_eq(p, want);
		cr_assert_str_eq(to, r.p[want].native);
	}
	sl__route_free(&r);

	/* A later answer from a node that missed a leader change names an
	 * older epoch: the client keeps the newer leader it knows. */
	{
		struct sl__route fresh;
		cr_assert_eq(sl__route_build(&ti, &r, err, sizeof(err)), 1);
		sl__pinfo(&pi[2], 1, "n1", "127.0.0.1:7510", 1); /* was n2 at 2 */
		sl__pinfo(&pi[0], 2, "n1", "127.0.0.1:7510", 5); /* was n3 at 4 */
		cr_assert_eq(sl__route_build(&ti, &fresh, err, sizeof(err)), 1);
		cr_assert_eq(sl__route_keep_newer(&fresh, &r), 1);
		sl__route_free(&r);
		cr_assert_str_eq(fresh.p[1].leader, "n2");
		cr_assert_str_eq(fresh.p[1].native, "127.0.0.1:7520");
		cr_assert_eq(fresh.p[1].epoch, 2);
		cr_assert_str_eq(fresh.p[2].leader, "n1"); /* a newer epoch wins */
		cr_assert_eq(fresh.p[2].epoch, 5);
		sl__route_free(&fresh);
		sl__pinfo(&pi[2], 1, "n2", "127.0.0.1:7520", 2);
		sl__pinfo(&pi[0], 2, "n3", "127.0.0.1:7530", 4);
	}

	/* A leader whose address is not known yet: nothing to send to. */
	sl__pinfo(&pi[0], 2, "n3", "", 4);
	cr_assert_eq(sl__route_build(&ti, &r, err, sizeof(err)), 1);
	cr_assert_null(r.p[2].native);
	cr_assert_str_eq(r.p[2].leader ? r.p[2].leader : "", "");
	sl__route_free(&r);

	/* A node alone: no leaders, no cluster. */
	for (int i = 0; i < 4; i++)
		sl__pinfo(&pi[i], (uint32_t)i, "", "", 0);
	cr_assert_eq(sl__route_build(&ti, &r, err, sizeof(err)), 0);
	cr_assert_not(r.cluster);
	sl__route_free(&r);

	/* A partition twice (so one missing), or beyond the count: refused. */
	sl__pinfo(&pi[3], 0, "n1", "127.0.0.1:7510", 1);
	cr_assert_eq(sl__route_build(&ti, &r, err, sizeof(err)), -EINVAL);
	cr_assert(strstr(err, "partition 0"), "%s", err);
	sl__pinfo(&pi[3], 4, "n1", "127.0.0.1:7510", 1);
	cr_assert_eq(sl__route_build(&ti, &r, err, sizeof(err)), -EINVAL);
	ti.n_partitions = 0;
	cr_assert_eq(sl__route_build(&ti, &r, err, sizeof(err)), -EINVAL);
}

/*
 * Named producers (issue 20): the name gives the same producer id to a new
 * client, which resumes where the first one's events end
 * (sl_client_resume_sequence; its sequences start there) and fences it;
 * a reconnect says Hello by name again (a name's id by number would be
 * refused), across a server restart; bad names fail connect with why.
 */
Test(client, named_producer_resumes_fences_and_reconnects, .timeout = 120)
{
	struct dir d;
	dir_make(&d);
	struct sl_server *srv = start_server("127.0.0.1:0", &d);
	uint16_t port = sl_server_native_port(srv);
	char listen[32];
	snprintf(listen, sizeof(listen), "127.0.0.1:%u", port);
	enum { A = 100, B = 50, N = A + 1 + B };
	struct seen sa, sb;
	seen_init(&sa, N);
	seen_init(&sb, N);
	struct sl_client_opts o = {
	    .port = port,
	    .on_ack = on_ack,
	    .arg = &sa,
	    .backoff_min_ms = 5,
	    .backoff_max_ms = 50,
	    .producer_name = "app-1",
	};
	struct sl_client *a, *b;
	char err[256];
	cr_assert_eq(sl_client_connect(&o, &a, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(sl_client_resume_sequence(a), 0, "a new name starts at 0");
	uint64_t id = sl_client_producer_id(a);
	cr_assert_geq(id, UINT64_C(1) << 61, "id %llx not in the named range",
	              (unsigned long long)id);
	for (uint64_t i = 0; i < A; i++) {
		uint64_t seq;
		cr_assert_eq(produce_one(a, NULL, i, 7, &seq), 0);
		cr_assert_eq(seq, i);
	}
	cr_assert_eq(sl_client_flush(a, 30000), 0, "%s", sl_client_last_error(a));

	/* Another process of the same name: same id, where A ended. */
	o.arg = &sb;
	cr_assert_eq(sl_client_connect(&o, &b, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(sl_client_producer_id(b), id);
	cr_assert_eq(sl_client_resume_sequence(b), A);
	uint64_t seq;
	cr_assert_eq(produce_one(b, NULL, A, 7, &seq), 0);
	cr_assert_eq(seq, A, "sequences start at the resume sequence");
	cr_assert_eq(sl_client_flush(b, 30000), 0, "%s", sl_client_last_error(b));
	cr_assert_eq(sb.r[A].status, 0);

	/* A is fenced: its next event is answered with the error. */
	cr_assert_eq(produce_one(a, NULL, A, 7, &seq), 0);
	cr_assert_lt(sl_client_flush(a, 30000), 0, "a fenced client flushed");
	cr_assert_eq(sa.r[seq].calls, 1);
	cr_assert_eq(sa.r[seq].status, -SL_EFENCED, "status %d", sa.r[seq].status);
	sl_client_close(a);

	/* B rides out a server restart: its reconnect says hello by name. */
	stop_server(srv);
	srv = start_server(listen, &d);
	for (uint64_t i = A + 1; i < N; i++) {
		cr_assert_eq(produce_one(b, NULL, i, 7, &seq), 0);
		cr_assert_eq(seq, i);
	}
	cr_assert_eq(sl_client_flush(b, 60000), 0, "%s", sl_client_last_error(b));
	for (uint64_t i = A + 1; i < N; i++)
		cr_assert(sb.r[i].calls == 1 && sb.r[i].status == 0, "seq %llu: %d",
		          (unsigned long long)i, sb.r[i].status);
	cr_assert_eq(sl_client_producer_id(b), id);
	cr_assert_eq(sl_client_resume_sequence(b), A, "later Welcomes do not move it");
	sl_client_close(b);

	/* Bad names, and a name with an id. */
	o.producer_name = "app 1";
	cr_assert_eq(sl_client_connect(&o, &a, err, sizeof(err)), -EINVAL);
	cr_assert_not_null(strstr(err, "printable"), "%s", err);
	o.producer_name = "app-1";
	o.producer_id = 5;
	cr_assert_eq(sl_client_connect(&o, &a, err, sizeof(err)), -EINVAL);
	cr_assert_not_null(strstr(err, "producer_id"), "%s", err);
	stop_server(srv);
	free(sa.r);
	free(sb.r);
	dir_remove(&d);
}
