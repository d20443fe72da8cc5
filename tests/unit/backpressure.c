/*
 * Backpressure at the protocol level: an in-process server (real reactors,
 * io_uring, loopback) driven by the blocking wire client of wire_client.h
 * and by libsluice. The contract under test is wire.proto's Credit: a
 * Welcome grants windows of events and bytes, a Produce spends them, the
 * server grants them back as events become durable, withholds them while a
 * partition of a `block` topic is pressured, and cuts off a client that
 * sends beyond them (ERR_CREDIT). Under `drop`, `sample` and `reject` a
 * pressured partition sheds instead, and every shed event is counted.
 *
 * Pressure is made deterministic with a follower that the test moves by
 * hand: a published offset registered on the partition (as a projection's
 * or a sink's is) that stays at 0 until the test lets it catch up.
 *
 * No sleeps: every wait is a blocking read (with a receive timeout as a
 * safety net). Absence of a Credit is shown by ordering: a Metadata request
 * sent after the acks is answered after any Credit those acks released.
 */
#include <criterion/criterion.h>
#include <stdatomic.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include "config/config.h"
#include "part/part.h"
#include "proto/proto.h"
#include "server/server.h"
#include "sink/sink.h"
#include "sluice/client.h"
#include "wire_client.h"

struct fixture {
	struct sl_server *srv;
	uint16_t port;
	char dir[64];
	struct sl_topic_spec topic;
	_Atomic uint64_t follower; /* a stand-in projection: its next offset */
};

/* n_parts partitions; the stand-in follower (when asked for) follows
 * partition 0, so the events of its keys meet its pressure. */
static void start_n(struct fixture *f, uint32_t n_parts, enum sl_overload policy, double rate,
                    uint64_t budget, bool with_follower)
{
	snprintf(f->dir, sizeof(f->dir), "/tmp/sluice-bp-test-XXXXXX");
	cr_assert_not_null(mkdtemp(f->dir));
	f->topic = (struct sl_topic_spec){.name = "events",
	                                  .n_parts = n_parts,
	                                  .partitioner = SL_PART_HASH,
	                                  .overload = policy,
	                                  .sample_rate = rate};
	struct sl_server_opts o = {
	    TU_SERVER_OPTS(f->dir, 1), .topics = &f->topic,    .n_topics = 1,
	    .memory_budget = budget,   .max_lag_events = 1000,
	};
	char err[512];
	cr_assert_eq(sl_server_create(&o, &f->srv, err, sizeof(err)), 0, "server: %s", err);
	atomic_store(&f->follower, 0);
	if (with_follower)
		cr_assert_eq(sl_partition_follow(&f->srv->topics.v[0].parts[0], &f->follower,
		                                 "test", "follower"),
		             0);
	cr_assert_eq(sl_server_start(f->srv), 0);
	f->port = sl_server_native_port(f->srv);
}

/* One partition, so every event meets the same pressure. */
static void start(struct fixture *f, enum sl_overload policy, double rate, uint64_t budget,
                  bool with_follower)
{
	start_n(f, 1, policy, rate, budget, with_follower);
}

static void stop(struct fixture *f)
{
	tu_server_halt(&f->srv);
	rm_dir(f->dir);
}

/* Hello as a new producer; returns the Welcome's credits. */
static int session(uint16_t port, uint32_t *ev_credit, uint64_t *byte_credit)
{
	int fd = dial(port);
	Sluice__V1__Hello h = SLUICE__V1__HELLO__INIT;
	h.min_version = 1;
	h.max_version = 1;
	send_msg(fd, SLUICE__V1__FRAME_TYPE__FRAME_HELLO, &h.base);
	uint8_t *body;
	uint32_t len;
	cr_assert_eq(read_frame_any(fd, &body, &len), SLUICE__V1__FRAME_TYPE__FRAME_WELCOME);
	Sluice__V1__Welcome *w = sluice__v1__welcome__unpack(NULL, len, body);
	cr_assert_not_null(w);
	*ev_credit = w->credit_events;
	*byte_credit = w->credit_bytes;
	sluice__v1__welcome__free_unpacked(w, NULL);
	free(body);
	return fd;
}

/* An event id made from its sequence: known to the test for sampling. */
static void event_id(uint64_t seq, uint8_t id[16])
{
	memset(id, 0, 16);
	memcpy(id, &seq, sizeof(seq));
	id[15] = 0x5a;
}

/* A Produce of n events with `data` bytes of payload each; returns its size
 * and the events' encoded bytes (what the frame costs in credits). */
static size_t build(uint8_t *buf, size_t cap, uint64_t base, uint32_t n, size_t data,
                    uint64_t *cost)
{
	static char payload[200 * 1024];
	struct sl_produce_builder b;
	cr_assert_leq(data, sizeof(payload));
	memset(payload, 'x', data);
	cr_assert_eq(sl_produce_begin(&b, buf, cap, "events", 6, base, 0), 0);
	*cost = 0;
	for (uint32_t i = 0; i < n; i++) {
		uint8_t id[16];
		event_id(base + i, id);
		struct sl_event_view v = {
		    .id = id,
		    .type = "T",
		    .type_len = 1,
		    .aggregate = "a",
		    .aggregate_len = 1,
		    .timestamp_ms = 1,
		    .data = (const uint8_t *)payload,
		    .data_len = data,
		};
		size_t before = b.len;
		cr_assert_geq(sl_produce_add_event(&b, &v, NULL, 0), 0);
		*cost += sl_event_encoded_size(&v, NULL, 0) + SL_CREDIT_EVENT_OVERHEAD;
		(void)before;
	}
	int len = sl_produce_finish(&b);
	cr_assert_gt(len, 0);
	return (size_t)len;
}

static uint8_t g_buf[2 << 20];

/* What the frames read so far said. */
struct tally {
	uint64_t stored, dropped, rejected, other;
	uint64_t credit_events, credit_bytes, credit_frames;
	uint32_t retry_after_ms;
	uint8_t *fate; /* per sequence: 1 stored, 2 dropped, 3 rejected */
};

static void on_frame(int type, const uint8_t *body, uint32_t len, struct tally *t)
{
	if (type == SLUICE__V1__FRAME_TYPE__FRAME_CREDIT) {
		Sluice__V1__Credit *c = sluice__v1__credit__unpack(NULL, len, body);
		cr_assert_not_null(c);
		t->credit_events += c->events;
		t->credit_bytes += c->bytes;
		t->credit_frames++;
		sluice__v1__credit__free_unpacked(c, NULL);
		return;
	}
	cr_assert_eq(type, SLUICE__V1__FRAME_TYPE__FRAME_ACK, "unexpected frame %d", type);
	Sluice__V1__Ack *a = sluice__v1__ack__unpack(NULL, len, body);
	cr_assert_not_null(a);
	for (size_t p = 0; p < a->n_parts; p++) {
		Sluice__V1__AckPart *pt = a->parts[p];
		for (size_t k = 0; k < pt->n_index; k++) {
			uint64_t seq = a->base_sequence + pt->index[k];
			cr_assert_eq(t->fate[seq], 0, "event %llu answered twice",
			             (unsigned long long)seq);
			t->fate[seq] = pt->dropped ? 2 : 1;
			if (pt->dropped)
				t->dropped++;
			else
				t->stored++;
		}
	}
	for (size_t r = 0; r < a->n_rejects; r++) {
		Sluice__V1__Reject *rj = a->rejects[r];
		for (size_t k = 0; k < rj->n_index; k++) {
			uint64_t seq = a->base_sequence + rj->index[k];
			cr_assert_eq(t->fate[seq], 0);
			if (rj->code == SLUICE__V1__ERROR_CODE__ERR_OVERLOAD) {
				t->fate[seq] = 3;
				t->rejected++;
				t->retry_after_ms = rj->retry_after_ms;
			} else {
				t->other++;
			}
		}
	}
	sluice__v1__ack__free_unpacked(a, NULL);
}

/* Reads frames until `n` more events are answered. */
static void answers(int fd, uint64_t n, struct tally *t)
{
	uint64_t want = t->stored + t->dropped + t->rejected + t->other + n;
	while (t->stored + t->dropped + t->rejected + t->other < want) {
		uint8_t *body;
		uint32_t len;
		int type = read_frame_any(fd, &body, &len);
		cr_assert_geq(type, 0, "connection closed");
		on_frame(type, body, len, t);
		free(body);
	}
}

/* Sends a Metadata request and reads up to its answer, tallying what comes
 * before it; returns the partition's end offset. Frames the server queued
 * before it saw the request come first, so this shows what it had sent. */
static uint64_t barrier(int fd, struct tally *t)
{
	Sluice__V1__MetadataRequest mq = SLUICE__V1__METADATA_REQUEST__INIT;
	mq.topic = "events";
	send_msg(fd, SLUICE__V1__FRAME_TYPE__FRAME_METADATA, &mq.base);
	for (;;) {
		uint8_t *body;
		uint32_t len;
		int type = read_frame_any(fd, &body, &len);
		cr_assert_geq(type, 0, "connection closed");
		if (type == SLUICE__V1__FRAME_TYPE__FRAME_METADATA_RESULT) {
			Sluice__V1__Metadata *md = sluice__v1__metadata__unpack(NULL, len, body);
			cr_assert_not_null(md);
			uint64_t end = md->topics[0]->partitions[0]->end_offset;
			sluice__v1__metadata__free_unpacked(md, NULL);
			free(body);
			return end;
		}
		on_frame(type, body, len, t);
		free(body);
	}
}

/* Waits for a Credit frame (the next frame must be one). */
static void expect_credit(int fd, struct tally *t)
{
	uint8_t *body;
	uint32_t len;
	int type = read_frame_any(fd, &body, &len);
	cr_assert_eq(type, SLUICE__V1__FRAME_TYPE__FRAME_CREDIT, "expected Credit, got %d", type);
	on_frame(type, body, len, t);
	free(body);
}

static void expect_error(int fd, uint32_t code)
{
	uint8_t *body;
	uint32_t len;
	int type;
	/* Acks or credits may precede it; the Error closes the stream. */
	while ((type = read_frame_any(fd, &body, &len)) != SLUICE__V1__FRAME_TYPE__FRAME_ERROR) {
		cr_assert_geq(type, 0, "closed without an Error");
		free(body);
	}
	Sluice__V1__Error *e = sluice__v1__error__unpack(NULL, len, body);
	cr_assert_not_null(e);
	cr_assert_eq(e->code, code, "error %d: %s", e->code, e->message);
	sluice__v1__error__free_unpacked(e, NULL);
	free(body);
	expect_closed(fd);
}

Test(backpressure, welcome_grants_and_acks_give_back, .timeout = 60)
{
	struct fixture f;
	start(&f, SL_OVERLOAD_BLOCK, 0, 0, false);
	uint32_t ce;
	uint64_t cb;
	int fd = session(f.port, &ce, &cb);
	cr_assert_eq(ce, 8192, "the events window is the sequence tables' window");
	cr_assert_eq(cb, 64u << 10, "a window starts at 64 KiB");

	struct tally t = {.fate = calloc(8192, 1)};
	uint64_t cost;
	size_t len = build(g_buf, sizeof(g_buf), 0, 4000, 100, &cost);
	send_all(fd, g_buf, len);
	answers(fd, 4000, &t);
	cr_assert_eq(t.stored, 4000);
	/* Everything answered: the server gives back what was spent, in the
	 * turn that sent the last acks, so before the barrier. */
	barrier(fd, &t);
	cr_assert_eq(t.credit_events, 4000);
	/* The bytes come back, plus the growth of a window the frame overran,
	 * and the window never passes the largest one. */
	cr_assert_geq(t.credit_bytes, cost);
	cr_assert_leq(cb + t.credit_bytes - cost, 8u << 20);
	cr_assert_geq(t.credit_frames, 1);
	close(fd);
	free(t.fate);
	stop(&f);
}

Test(backpressure, beyond_event_credits_is_cut_off, .timeout = 60)
{
	struct fixture f;
	start(&f, SL_OVERLOAD_BLOCK, 0, 0, false);
	uint32_t ce;
	uint64_t cb;
	int fd = session(f.port, &ce, &cb);
	uint64_t cost;
	size_t len = build(g_buf, sizeof(g_buf), 0, ce + 1, 10, &cost);
	send_all(fd, g_buf, len);
	expect_error(fd, SLUICE__V1__ERROR_CODE__ERR_CREDIT);
	/* Nothing of the refused frame was stored. */
	int fd2 = session(f.port, &ce, &cb);
	struct tally t = {0};
	cr_assert_eq(barrier(fd2, &t), 0);
	close(fd);
	close(fd2);
	stop(&f);
}

/* The budget whose credit pool (3/8 of it, server.c) is 16 KiB exactly. */
#define SMALL_BUDGET 43691u

Test(backpressure, beyond_byte_credits_is_cut_off, .timeout = 60)
{
	struct fixture f;
	/* A 16 KiB pool (three eighths of the budget), the smallest byte
	 * window. */
	start(&f, SL_OVERLOAD_BLOCK, 0, SMALL_BUDGET, false);
	uint32_t ce;
	uint64_t cb;
	int fd = session(f.port, &ce, &cb);
	cr_assert_eq(ce, 8192);
	cr_assert_eq(cb, 16u << 10);

	/* A frame beyond the byte window goes when nothing is unanswered. */
	struct tally t = {.fate = calloc(16, 1)};
	uint64_t cost;
	size_t len = build(g_buf, sizeof(g_buf), 0, 2, 10 << 10, &cost);
	cr_assert_gt(cost, cb);
	send_all(fd, g_buf, len);
	answers(fd, 2, &t);
	cr_assert_eq(t.stored, 2);
	barrier(fd, &t);
	/* Answered, it is paid back exactly, debt included: the window is
	 * whole again. */
	cr_assert_eq(t.credit_bytes, cost);

	/* Not while something is: one small event, then 17 KiB, in one send
	 * (one loopback segment, one receive: parsed in the same turn, before
	 * the first can be durable). */
	uint64_t c1, c2;
	size_t l1 = build(g_buf, sizeof(g_buf), 2, 1, 100, &c1);
	size_t l2 = build(g_buf + l1, sizeof(g_buf) - l1, 3, 1, 17 << 10, &c2);
	cr_assert_gt(c1 + c2, cb);
	cr_assert_lt(l1 + l2, 32u << 10);
	send_all(fd, g_buf, l1 + l2);
	expect_error(fd, SLUICE__V1__ERROR_CODE__ERR_CREDIT);
	close(fd);
	free(t.fate);
	stop(&f);
}

Test(backpressure, block_withholds_credits_until_the_follower_catches_up, .timeout = 60)
{
	struct fixture f;
	start(&f, SL_OVERLOAD_BLOCK, 0, 0, true);
	uint32_t ce;
	uint64_t cb;
	int fd = session(f.port, &ce, &cb);
	struct tally t = {.fate = calloc(8192, 1)};
	uint64_t cost;
	/* 2,000 events: twice the follower's allowed lag once durable. */
	size_t len = build(g_buf, sizeof(g_buf), 0, 2000, 50, &cost);
	send_all(fd, g_buf, len);
	answers(fd, 2000, &t);
	cr_assert_eq(t.stored, 2000, "block stores everything it accepted");
	/* A Credit may have come before the acks (the window grew: the frame
	 * spent most of it); none comes with or after them. */
	uint64_t frames = t.credit_frames, granted = t.credit_events;
	cr_assert_eq(barrier(fd, &t), 2000);
	cr_assert_eq(t.credit_frames, frames, "credits flowed past a pressured partition");
	cr_assert_eq(granted, 0, "event credits came back before the acks");
	cr_assert_eq(atomic_load(&f.srv->topics.v[0].parts[0].pressured), SL_PRESSURE_FOLLOW);

	/* The follower catches up: the next tick re-evaluates, credits come. */
	atomic_store_explicit(&f.follower, 2000, memory_order_release);
	expect_credit(fd, &t);
	cr_assert_eq(t.credit_events, 2000);
	cr_assert_geq(t.credit_bytes, cost, "the bytes spent come back (and the growth)");
	cr_assert_eq(atomic_load(&f.srv->topics.v[0].parts[0].pressured), 0);
	close(fd);
	free(t.fate);
	stop(&f);
}

/* Drives a pressured partition under a shedding policy: 1,500 events
 * stored (pressure comes with their durability), then 1,000 more. */
static void shed_run(struct fixture *f, struct tally *t, uint64_t *end)
{
	uint32_t ce;
	uint64_t cb, cost;
	int fd = session(f->port, &ce, &cb);
	size_t len = build(g_buf, sizeof(g_buf), 0, 1500, 50, &cost);
	send_all(fd, g_buf, len);
	answers(fd, 1500, t);
	cr_assert_eq(t->stored, 1500);
	cr_assert_eq(barrier(fd, t), 1500);
	cr_assert_neq(atomic_load(&f->srv->topics.v[0].parts[0].pressured), 0);
	/* Not `block`: credits keep flowing (the Metadata answer came after
	 * the turn that released the acks). */
	cr_assert_geq(t->credit_frames, 1);

	len = build(g_buf, sizeof(g_buf), 1500, 1000, 50, &cost);
	send_all(fd, g_buf, len);
	answers(fd, 1000, t);
	*end = barrier(fd, t);
	close(fd);
}

Test(backpressure, drop_sheds_and_counts_exactly, .timeout = 60)
{
	struct fixture f;
	start(&f, SL_OVERLOAD_DROP, 0, 0, true);
	struct tally t = {.fate = calloc(4096, 1)};
	uint64_t end;
	shed_run(&f, &t, &end);
	cr_assert_eq(t.dropped, 1000);
	cr_assert_eq(end, 1500, "a dropped event was stored");
	cr_assert_eq(atomic_load(&f.srv->topics.v[0].parts[0].dropped), 1000);
	free(t.fate);
	stop(&f);
}

Test(backpressure, sample_keeps_by_event_id, .timeout = 60)
{
	struct fixture f;
	start(&f, SL_OVERLOAD_SAMPLE, 0.25, 0, true);
	struct tally t = {.fate = calloc(4096, 1)};
	uint64_t end;
	shed_run(&f, &t, &end);
	/* Each event's fate is what its id decides. */
	uint64_t below = (uint64_t)(0.25 * 18446744073709551616.0), kept = 0;
	for (uint64_t s = 1500; s < 2500; s++) {
		uint8_t id[16];
		event_id(s, id);
		bool keep = XXH3_64bits(id, 16) < below;
		kept += keep;
		cr_assert_eq(t.fate[s], keep ? 1 : 2, "event %llu", (unsigned long long)s);
	}
	cr_assert(kept > 150 && kept < 350, "kept %llu of 1000 at 0.25", (unsigned long long)kept);
	cr_assert_eq(end, 1500 + kept);
	cr_assert_eq(atomic_load(&f.srv->topics.v[0].parts[0].sampled_out), 1000 - kept);
	free(t.fate);
	stop(&f);
}

Test(backpressure, reject_refuses_with_a_retry_hint, .timeout = 60)
{
	struct fixture f;
	start(&f, SL_OVERLOAD_REJECT, 0, 0, true);
	struct tally t = {.fate = calloc(4096, 1)};
	uint64_t end;
	shed_run(&f, &t, &end);
	cr_assert_eq(t.rejected, 1000);
	cr_assert_gt(t.retry_after_ms, 0);
	cr_assert_eq(end, 1500);
	cr_assert_eq(atomic_load(&f.srv->topics.v[0].parts[0].rejected), 1000);
	free(t.fate);
	stop(&f);
}

struct counts {
	uint64_t ok, refused;
};

static void count_ack(void *arg, const struct sl_client_ack *a)
{
	struct counts *c = arg;
	if (a->status == 0)
		c->ok++;
	else
		c->refused++;
}

Test(backpressure, libsluice_lives_within_a_small_window, .timeout = 120)
{
	struct fixture f;
	/* 16 KiB of byte credits for 10 MB of events: the client must wait
	 * for Credit frames again and again, and never overstep. */
	start(&f, SL_OVERLOAD_BLOCK, 0, SMALL_BUDGET, false);
	struct counts n = {0};
	struct sl_client_opts o = {
	    .host = "127.0.0.1", .port = f.port, .on_ack = count_ack, .arg = &n};
	struct sl_client *c;
	char err[256];
	cr_assert_eq(sl_client_connect(&o, &c, err, sizeof(err)), 0, "%s", err);
	static char data[200];
	memset(data, 'd', sizeof(data));
	enum { N = 50000 };
	for (uint32_t i = 0; i < N; i++) {
		struct sl_client_event ev = {.type = "T",
		                             .type_len = 1,
		                             .aggregate = "agg",
		                             .aggregate_len = 3,
		                             .data = data,
		                             .data_len = sizeof(data)};
		cr_assert_eq(sl_client_produce(c, NULL, &ev, NULL), 0);
	}
	cr_assert_eq(sl_client_flush(c, 60000), 0, "%s", sl_client_last_error(c));
	struct sl_client_stats st;
	sl_client_get_stats(c, &st);
	cr_assert_eq(n.ok, N);
	cr_assert_eq(n.refused, 0);
	cr_assert_eq(st.connects, 1, "cut off and reconnected: %s", sl_client_last_error(c));
	cr_assert_gt(st.credit_frames, 100);
	cr_assert_gt(st.credit_waits, 0);
	sl_client_close(c);
	stop(&f);
}

/* An aggregate whose events go to partition `want` of n (hash). */
static void key_for(uint32_t want, uint32_t n, char *out, size_t cap)
{
	struct sl_partitioner part;
	cr_assert_eq(sl_part_init(&part, SL_PART_HASH, n), 0);
	for (uint32_t k = 0; k < 100000; k++) {
		snprintf(out, cap, "agg-%u", k);
		if (sl_part_of_key(&part, out, strlen(out)) == want) {
			sl_part_destroy(&part);
			return;
		}
	}
	cr_assert_fail("no key for partition %u", want);
}

Test(backpressure, a_pressured_partition_holds_only_its_producers, .timeout = 120)
{
	struct fixture f;
	start_n(&f, 2, SL_OVERLOAD_BLOCK, 0, 0, true);
	char slow_key[32], fast_key[32];
	key_for(0, 2, slow_key, sizeof(slow_key));
	key_for(1, 2, fast_key, sizeof(fast_key));

	/* B fills partition 0 past its follower's bound: held. */
	uint32_t ce;
	uint64_t cb;
	int fd = session(f.port, &ce, &cb);
	struct sl_produce_builder b;
	cr_assert_eq(sl_produce_begin(&b, g_buf, sizeof(g_buf), "events", 6, 0, 0), 0);
	for (uint32_t i = 0; i < 2000; i++) {
		uint8_t id[16];
		event_id(i, id);
		struct sl_event_view v = {.id = id,
		                          .type = "T",
		                          .type_len = 1,
		                          .aggregate = slow_key,
		                          .aggregate_len = strlen(slow_key),
		                          .timestamp_ms = 1,
		                          .data = (const uint8_t *)"{}",
		                          .data_len = 2};
		cr_assert_geq(sl_produce_add_event(&b, &v, NULL, 0), 0);
	}
	int len = sl_produce_finish(&b);
	send_all(fd, g_buf, (size_t)len);
	struct tally t = {.fate = calloc(4096, 1)};
	answers(fd, 2000, &t);
	uint64_t frames = t.credit_frames;
	barrier(fd, &t);
	cr_assert_eq(t.credit_frames, frames);
	cr_assert_eq(t.credit_events, 0);

	/* A sends to partition 1 only: 50,000 events, six windows' worth,
	 * so they go through only if A's credits keep coming. */
	struct counts n = {0};
	struct sl_client_opts o = {
	    .host = "127.0.0.1", .port = f.port, .on_ack = count_ack, .arg = &n};
	struct sl_client *c;
	char err[256];
	cr_assert_eq(sl_client_connect(&o, &c, err, sizeof(err)), 0, "%s", err);
	enum { N = 50000 };
	for (uint32_t i = 0; i < N; i++) {
		struct sl_client_event ev = {.type = "T",
		                             .type_len = 1,
		                             .aggregate = fast_key,
		                             .aggregate_len = strlen(fast_key),
		                             .data = "{}",
		                             .data_len = 2};
		cr_assert_eq(sl_client_produce(c, NULL, &ev, NULL), 0);
	}
	cr_assert_eq(sl_client_flush(c, 60000), 0, "%s", sl_client_last_error(c));
	cr_assert_eq(n.ok, N);
	struct sl_client_stats st;
	sl_client_get_stats(c, &st);
	cr_assert_gt(st.credit_frames, 0);
	sl_client_close(c);

	/* B is still held all along. */
	barrier(fd, &t);
	cr_assert_eq(t.credit_frames, frames);
	cr_assert_neq(atomic_load(&f.srv->topics.v[0].parts[0].pressured), 0);
	cr_assert_eq(atomic_load(&f.srv->topics.v[0].parts[1].pressured), 0);
	close(fd);
	free(t.fate);
	stop(&f);
}

static bool sink_has_all(void *arg)
{
	struct sl_sink_part_stats ss;
	return sl_sinks_part_stats(arg, 0, 0, &ss) == 0 && ss.done >= 30000;
}

/* A deliberately slow sink (tests/plugins/flaky_sink.c, 20 ms a batch)
 * under `block`: the producer is throttled by credits, nothing is lost, and
 * the sink ends up with every event. */
Test(backpressure, a_slow_sink_throttles_producers, .timeout = 120)
{
	char dir[64], args_yaml[256], err[512];
	snprintf(dir, sizeof(dir), "/tmp/sluice-bp-sink-XXXXXX");
	cr_assert_not_null(mkdtemp(dir));
	snprintf(args_yaml, sizeof(args_yaml), "path: %s/sink.out\ndelay_us: 20000\n", dir);
	struct sl_config_node *args = NULL;
	cr_assert_eq(
	    sl_config_node_parse(args_yaml, strlen(args_yaml), "args", &args, err, sizeof(err)), 0,
	    "%s", err);
	static const char *const path[] = {SL_TEST_PLUGIN_DIR};
	struct sl_server_sink_spec sink = {.name = "slow", .plugin = "flaky_sink", .args = args};
	struct sl_topic_spec topic = {.name = "events", .n_parts = 1, .partitioner = SL_PART_HASH};
	struct sl_server_opts o = {
	    .listen_native = "127.0.0.1:0",
	    .data_dir = dir,
	    .n_reactors = 1,
	    .max_connections = 8,
	    .max_frame_bytes = 1 << 20,
	    .handshake_timeout_ms = 5000,
	    .idle_timeout_ms = 60000,
	    .drain_timeout_ms = 10000,
	    .topics = &topic,
	    .n_topics = 1,
	    .plugin_path = path,
	    .n_plugin_path = 1,
	    .sinks = &sink,
	    .n_sinks = 1,
	    .max_lag_events = 2000,
	};
	struct sl_server *srv;
	cr_assert_eq(sl_server_create(&o, &srv, err, sizeof(err)), 0, "server: %s", err);
	cr_assert_eq(sl_server_start(srv), 0);

	struct counts n = {0};
	struct sl_client_opts co = {.host = "127.0.0.1",
	                            .port = sl_server_native_port(srv),
	                            .on_ack = count_ack,
	                            .arg = &n};
	struct sl_client *c;
	cr_assert_eq(sl_client_connect(&co, &c, err, sizeof(err)), 0, "%s", err);
	enum { N = 30000 };
	for (uint32_t i = 0; i < N; i++) {
		struct sl_client_event ev = {.type = "T",
		                             .type_len = 1,
		                             .aggregate = "a",
		                             .aggregate_len = 1,
		                             .data = "{}",
		                             .data_len = 2};
		cr_assert_eq(sl_client_produce(c, NULL, &ev, NULL), 0);
	}
	cr_assert_eq(sl_client_flush(c, 60000), 0, "%s", sl_client_last_error(c));
	struct sl_client_stats st;
	sl_client_get_stats(c, &st);
	cr_assert_eq(n.ok, N);
	cr_assert_gt(st.credit_waits, 0, "the producer never waited for the slow sink");
	sl_client_close(c);
	struct sl_partition *part = &srv->topics.v[0].parts[0];
	/* Pressure came and went (a finished spell is counted). */
	cr_assert_gt(atomic_load(&part->pressured_ns), 0);

	/* The sink catches up with everything (woken by its progress). */
	cr_assert_eq(sl_sinks_wait(srv->sinks, sink_has_all, srv->sinks, 60ull * 1000000000u), 0);
	struct sl_sink_part_stats ss;
	cr_assert_eq(sl_sinks_part_stats(srv->sinks, 0, 0, &ss), 0);
	cr_assert_eq(ss.done, N);
	sl_server_stop(srv);
	cr_assert_eq(sl_server_wait(srv), 0);
	sl_server_destroy(srv);
	sl_config_node_free(args);
	rm_dir(dir);
}
