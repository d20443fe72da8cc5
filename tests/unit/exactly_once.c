/*
 * Exactly once at the protocol level: an in-process server (real reactors,
 * io_uring, loopback sockets) driven by a small blocking client that speaks
 * the wire protocol, as in tests/unit/server.c (whose fixture helpers are
 * repeated here). The contract under test is wire.proto's: a producer id and
 * an epoch per session, a sequence per event; a resent event is answered as
 * a duplicate with its original partition and offset and is never stored
 * twice, an older epoch is fenced, a gap is refused with ERR_SEQUENCE, and
 * all of it holds across a restart of the server on the same data folder.
 *
 * What is stored is checked through the protocol (Metadata end offsets and
 * Fetch), never by looking at the server's internals. Every wait is a
 * blocking read with a receive timeout as a safety net, never a sleep; the
 * one polling loop (waiting for events to become readable) is bounded.
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

#include "dedup/dedup.h"
#include "part/part.h"
#include "proto/proto.h"
#include "server/server.h"
#include "wire_client.h"

#define N_PARTS 8

static struct sl_topic_spec g_topics[] = {
    {.name = "events", .n_parts = N_PARTS, .partitioner = SL_PART_HASH},
};

#include "eo_client.h"

/* (a) A resend in a new session is answered as a duplicate, at the offset
 * the first ack gave, and stored once. */
Test(exactly_once, duplicate_answered_with_original_offset, .timeout = 60)
{
	struct fixture f;
	start(&f, 2);
	enum { N = 10 };
	struct acked first[N], again[N];

	struct session a = hello_as(f.port, NULL, false);
	cr_assert_eq(a.next_sequence, 0, "a new producer starts at 0");
	produce(&a, 0, N, 7, a.epoch);
	collect_acks(a.fd, 0, N, first);
	for (int i = 0; i < N; i++) {
		cr_assert_eq(first[i].status, 0, "event %d refused: %d", i, first[i].status);
		cr_assert_not(first[i].duplicate, "event %d: first send answered as duplicate", i);
	}
	close(a.fd);

	struct session b = hello_as(f.port, &a, false);
	cr_assert_eq(b.epoch, a.epoch + 1, "a known id gets the next epoch");
	cr_assert_eq(b.next_sequence, N, "next_sequence %llu after %d accepted",
	             (unsigned long long)b.next_sequence, N);
	produce(&b, 0, N, 7, b.epoch);
	collect_acks(b.fd, 0, N, again);
	for (int i = 0; i < N; i++) {
		cr_assert_eq(again[i].status, 0, "resent event %d refused: %d", i, again[i].status);
		cr_assert(again[i].duplicate, "resent event %d not answered as a duplicate", i);
		cr_assert_not(again[i].offset_unknown, "event %d: original offset forgotten", i);
		cr_assert_eq(again[i].partition, first[i].partition);
		cr_assert_eq(again[i].offset, first[i].offset, "event %d: offset %llu, first %llu",
		             i, (unsigned long long)again[i].offset,
		             (unsigned long long)first[i].offset);
	}
	cr_assert_eq(check_stored(f.port, N, 1, first), N);

	/* The session goes on with new sequences as usual. */
	produce(&b, N, N, 7, b.epoch);
	collect_acks(b.fd, N, N, again);
	for (int i = 0; i < N; i++)
		cr_assert(again[i].status == 0 && !again[i].duplicate);
	cr_assert_eq(check_stored(f.port, 2 * N, 1, NULL), 2 * N);
	close(b.fd);
	stop(&f);
}

/* (b) Acks lost with the connection: the producer reconnects without having
 * seen them and resends. */
Test(exactly_once, acks_lost_then_resent, .timeout = 60)
{
	struct fixture f;
	start(&f, 2);
	enum { N = 600 };
	static struct acked acks[N];

	/* First: the events are surely stored before the resend, so every one
	 * must come back as a duplicate where the log has it. */
	struct session a = hello_as(f.port, NULL, false);
	produce(&a, 0, N / 2, 13, a.epoch);
	produce(&a, N / 2, N / 2, 13, a.epoch);
	wait_stored(f.port, N);
	close(a.fd); /* the acks were never read */

	struct session b = hello_as(f.port, &a, false);
	cr_assert_eq(b.next_sequence, N);
	produce(&b, 0, N, 13, b.epoch);
	collect_acks(b.fd, 0, N, acks);
	for (int i = 0; i < N; i++) {
		cr_assert_eq(acks[i].status, 0, "event %d refused: %d", i, acks[i].status);
		cr_assert(acks[i].duplicate, "event %d stored before, not answered as duplicate",
		          i);
	}
	cr_assert_eq(check_stored(f.port, N, 1, acks), N);
	close(b.fd);

	/* Then the race: close right after sending, reconnect at once and
	 * resend while the first copies may still be on their way to disk (or
	 * not read at all). Each event is answered once and stored once,
	 * whichever copy wins. */
	struct session c = hello_as(f.port, &a, false);
	produce(&c, N, N, 13, c.epoch);
	close(c.fd);
	struct session d = hello_as(f.port, &a, false);
	cr_assert_gt(d.epoch, c.epoch);
	produce(&d, N, N, 13, d.epoch);
	collect_acks(d.fd, N, N, acks);
	for (int i = 0; i < N; i++)
		cr_assert_eq(acks[i].status, 0, "event %d refused: %d", N + i, acks[i].status);
	cr_assert_eq(check_stored(f.port, 2 * N, 1, NULL), 2 * N);
	close(d.fd);
	stop(&f);
}

/* (c) A zombie: session A of an id is superseded by session B of the same
 * id; whatever A sends afterwards is fenced and not stored. */
Test(exactly_once, zombie_is_fenced, .timeout = 60)
{
	struct fixture f;
	start(&f, 2);
	enum { N = 20 };
	struct acked acks[N];

	struct session a = hello_as(f.port, NULL, false);
	struct session b = hello_as(f.port, &a, false);
	cr_assert_eq(b.epoch, a.epoch + 1);

	produce(&a, 0, N, 5, a.epoch);
	/* Either answer is the contract's: an Error that ends the session, or
	 * every event refused with ERR_FENCED. */
	uint8_t *body;
	uint32_t len;
	int type = read_frame(a.fd, &body, &len);
	if (type == SLUICE__V1__FRAME_TYPE__FRAME_ERROR) {
		Sluice__V1__Error *e = sluice__v1__error__unpack(NULL, len, body);
		free(body);
		cr_assert_not_null(e);
		cr_assert_eq(e->code, SLUICE__V1__ERROR_CODE__ERR_FENCED, "Error %d: %s", e->code,
		             e->message);
		cr_assert_gt(strlen(e->message), 0, "error without text");
		sluice__v1__error__free_unpacked(e, NULL);
		expect_closed(a.fd);
	} else {
		cr_assert_eq(type, SLUICE__V1__FRAME_TYPE__FRAME_ACK, "got frame %d", type);
		clear_acks(acks, N);
		uint32_t got = apply_ack(body, len, 0, N, acks);
		free(body);
		collect_more(a.fd, 0, N, N - got, acks);
		for (int i = 0; i < N; i++)
			cr_assert_eq(acks[i].status, SLUICE__V1__ERROR_CODE__ERR_FENCED,
			             "zombie event %d: status %d", i, acks[i].status);
	}
	close(a.fd);
	cr_assert_eq(stored_total(f.port, NULL), 0, "a fenced session stored events");

	/* The current session is not disturbed, and A's sequences were not
	 * taken: B's events are new. */
	produce(&b, 0, N, 5, b.epoch);
	collect_acks(b.fd, 0, N, acks);
	for (int i = 0; i < N; i++) {
		cr_assert_eq(acks[i].status, 0, "event %d refused: %d", i, acks[i].status);
		cr_assert_not(acks[i].duplicate, "event %d: a duplicate of a fenced send", i);
	}
	cr_assert_eq(check_stored(f.port, N, 1, acks), N);
	close(b.fd);
	stop(&f);
}

/* Says Hello as producer `id` with `proof` (len bytes) and expects the
 * server to refuse it with ERR_AUTH and close. */
static void expect_hello_refused(uint16_t port, uint64_t id, const uint8_t *proof, size_t len)
{
	int fd = dial(port);
	Sluice__V1__Hello h = SLUICE__V1__HELLO__INIT;
	h.min_version = 1;
	h.max_version = 1;
	h.producer_id = id;
	h.producer_proof.data = (uint8_t *)proof;
	h.producer_proof.len = len;
	send_msg(fd, SLUICE__V1__FRAME_TYPE__FRAME_HELLO, &h.base);
	uint8_t *body;
	uint32_t blen;
	int type = read_frame(fd, &body, &blen);
	cr_assert_eq(type, SLUICE__V1__FRAME_TYPE__FRAME_ERROR, "Hello as %llu: frame %d",
	             (unsigned long long)id, type);
	Sluice__V1__Error *e = sluice__v1__error__unpack(NULL, blen, body);
	free(body);
	cr_assert_not_null(e);
	cr_assert_eq(e->code, SLUICE__V1__ERROR_CODE__ERR_AUTH, "Error %d: %s", e->code,
	             e->message);
	cr_assert_not_null(strstr(e->message, "proof"), "%s", e->message);
	sluice__v1__error__free_unpacked(e, NULL);
	expect_closed(fd);
	close(fd);
}

/* Issue 23: naming another client's producer id, without its proof or
 * with another id's, is refused, and the producer goes on unfenced; the
 * proof survives a restart. */
Test(exactly_once, no_client_fences_another, .timeout = 90)
{
	struct fixture f;
	start(&f, 2);
	enum { N = 10 };
	struct acked acks[N];

	struct session a = hello_as(f.port, NULL, false);
	struct session other = hello_as(f.port, NULL, false);
	cr_assert_neq(a.id, other.id);
	cr_assert(memcmp(a.proof, other.proof, sizeof(a.proof)) != 0, "two ids, one proof");
	expect_hello_refused(f.port, a.id, NULL, 0);
	expect_hello_refused(f.port, a.id, other.proof, sizeof(other.proof));
	uint8_t bad[16];
	memcpy(bad, a.proof, sizeof(bad));
	bad[15] ^= 1;
	expect_hello_refused(f.port, a.id, bad, sizeof(bad));
	expect_hello_refused(f.port, a.id, a.proof, 15);

	/* A is still the current session: its events are stored. */
	produce(&a, 0, N, 3, a.epoch);
	collect_acks(a.fd, 0, N, acks);
	for (int i = 0; i < N; i++)
		cr_assert_eq(acks[i].status, 0, "event %d refused: %d", i, acks[i].status);
	close(a.fd);
	close(other.fd);

	/* After a restart the same proof resumes the id. */
	halt(&f);
	start_on(&f, 2, true);
	struct session b = hello_as(f.port, &a, false);
	cr_assert_eq(b.id, a.id);
	cr_assert(memcmp(b.proof, a.proof, sizeof(a.proof)) == 0, "the proof changed");
	close(b.fd);
	stop(&f);
}

/* (d) A gap: sequences far beyond next_sequence are refused, nothing of
 * them is stored, and the session goes on. */
Test(exactly_once, gap_refused_with_err_sequence, .timeout = 60)
{
	struct fixture f;
	start(&f, 2);
	enum { N = 16 };
	struct acked acks[N];

	struct session a = hello_as(f.port, NULL, false);
	uint64_t far = a.next_sequence + (UINT64_C(1) << 40);
	produce(&a, far, N, 5, a.epoch);
	collect_acks(a.fd, far, N, acks);
	for (int i = 0; i < N; i++)
		cr_assert_eq(acks[i].status, SLUICE__V1__ERROR_CODE__ERR_SEQUENCE,
		             "event %d of a gap: status %d", i, acks[i].status);
	cr_assert_eq(stored_total(f.port, NULL), 0, "events of a gap were stored");

	/* Just past next_sequence + 1 is a gap too (one sequence missing). */
	produce(&a, a.next_sequence + 1, N, 5, a.epoch);
	collect_acks(a.fd, a.next_sequence + 1, N, acks);
	for (int i = 0; i < N; i++)
		cr_assert_eq(acks[i].status, SLUICE__V1__ERROR_CODE__ERR_SEQUENCE,
		             "event %d one past the next sequence: status %d", i, acks[i].status);
	cr_assert_eq(stored_total(f.port, NULL), 0, "events of a gap were stored");

	/* The refusal did not break the session: in sequence, it stores. */
	produce(&a, a.next_sequence, N, 5, a.epoch);
	collect_acks(a.fd, a.next_sequence, N, acks);
	for (int i = 0; i < N; i++)
		cr_assert(acks[i].status == 0 && !acks[i].duplicate, "event %d: status %d", i,
		          acks[i].status);
	cr_assert_eq(stored_total(f.port, NULL), N);
	close(a.fd);
	stop(&f);
}

/* (e) The server's memory of sequences survives a restart on the same
 * data folder: next_sequence, a greater epoch, duplicates at their
 * original offsets. */
Test(exactly_once, state_survives_restart, .timeout = 90)
{
	struct fixture f;
	start(&f, 2);
	enum { N = 300 };
	static struct acked first[N], again[N];

	struct session a = hello_as(f.port, NULL, false);
	produce(&a, 0, N, 11, a.epoch);
	collect_acks(a.fd, 0, N, first);
	for (int i = 0; i < N; i++)
		cr_assert_eq(first[i].status, 0);
	close(a.fd);
	halt(&f);

	start_on(&f, 2, true);
	struct session b = hello_as(f.port, &a, false);
	cr_assert_gt(b.epoch, a.epoch, "epoch %u after a restart, was %u", b.epoch, a.epoch);
	cr_assert_eq(b.next_sequence, N, "next_sequence %llu after a restart, expected %d",
	             (unsigned long long)b.next_sequence, N);
	produce(&b, 0, N, 11, b.epoch);
	collect_acks(b.fd, 0, N, again);
	for (int i = 0; i < N; i++) {
		cr_assert_eq(again[i].status, 0, "resent event %d refused: %d", i, again[i].status);
		cr_assert(again[i].duplicate, "event %d not a duplicate after the restart", i);
		cr_assert_not(again[i].offset_unknown, "event %d: original offset forgotten", i);
		cr_assert_eq(again[i].partition, first[i].partition);
		cr_assert_eq(again[i].offset, first[i].offset);
	}
	cr_assert_eq(check_stored(f.port, N, 1, first), N);
	cr_assert_eq(stored_total(f.port, NULL), N);
	close(b.fd);
	stop(&f);
}

/* Producer checkpoints, written at every segment roll (off the reactor, by
 * the segment preparer), carry the sequences across a restart: segments of
 * 4 KiB roll many times, and the restart must find the checkpoints. */
Test(exactly_once, state_survives_restart_across_rolls, .timeout = 90)
{
	struct fixture f;
	enum { N = 2000, CHUNK = 100 };
	static struct acked first[N], again[N];

	g_topics[0].segment_bytes = 4096;
	start(&f, 2);
	struct session a = hello_as(f.port, NULL, false);
	/* One frame at a time: each its own group commit, so the logs roll. */
	for (uint32_t b = 0; b < N; b += CHUNK) {
		produce(&a, b, CHUNK, 64, a.epoch);
		collect_acks(a.fd, b, CHUNK, first + b);
	}
	for (int i = 0; i < N; i++)
		cr_assert_eq(first[i].status, 0);
	close(a.fd);
	halt(&f);

	/* Every partition rolled and kept its newest one or two checkpoints. */
	for (uint32_t p = 0; p < N_PARTS; p++) {
		char cmd[256];
		snprintf(cmd, sizeof(cmd), "ls %s/events/%u | grep -c '^[0-9]*\\.dedup$'", f.dir,
		         p);
		FILE *ls = popen(cmd, "r");
		int n = -1;
		cr_assert_eq(fscanf(ls, "%d", &n), 1);
		pclose(ls);
		cr_assert(n >= 1 && n <= 2, "partition %u holds %d checkpoints", p, n);
	}

	start_on(&f, 2, true);
	struct session b = hello_as(f.port, &a, false);
	cr_assert_eq(b.next_sequence, N, "next_sequence %llu after a restart, expected %d",
	             (unsigned long long)b.next_sequence, N);
	for (uint32_t k = 0; k < N; k += CHUNK) {
		produce(&b, k, CHUNK, 64, b.epoch);
		collect_acks(b.fd, k, CHUNK, again + k);
	}
	for (int i = 0; i < N; i++) {
		cr_assert_eq(again[i].status, 0, "resent event %d refused: %d", i, again[i].status);
		cr_assert(again[i].duplicate, "event %d not a duplicate after the restart", i);
		cr_assert_eq(again[i].partition, first[i].partition);
		cr_assert_eq(again[i].offset, first[i].offset);
	}
	cr_assert_eq(stored_total(f.port, NULL), N);
	close(b.fd);
	stop(&f);
	g_topics[0].segment_bytes = 0;
}

/* Hello.idempotence_off: resent events are stored again (at-least-once);
 * what `sluice bench --idempotence off` measures. */
Test(exactly_once, idempotence_off_stores_resends, .timeout = 60)
{
	struct fixture f;
	start(&f, 2);
	enum { N = 40 };
	struct acked acks[N];

	struct session a = hello_as(f.port, NULL, true);
	produce(&a, 0, N, 7, a.epoch);
	collect_acks(a.fd, 0, N, acks);
	close(a.fd);
	struct session b = hello_as(f.port, &a, true);
	produce(&b, 0, N, 7, b.epoch);
	collect_acks(b.fd, 0, N, acks);
	for (int i = 0; i < N; i++)
		cr_assert(acks[i].status == 0 && !acks[i].duplicate, "event %d: status %d", i,
		          acks[i].status);
	cr_assert_eq(check_stored(f.port, N, 2, NULL), 2 * N);
	close(b.fd);
	stop(&f);
}

/* Issue 20, named producers through the server: the name's id, its epoch
 * bumped by a second Hello (the first session fenced), Welcome's
 * next_sequence where the stream goes on (never an ERR_SEQUENCE there),
 * after a restart a window back (resends answered as duplicates, nothing
 * stored twice); the wrong ways in refused with their reasons. */
Test(exactly_once, named_producer_resumes, .timeout = 90)
{
	struct fixture f;
	start(&f, 2);
	enum { N = 300 };
	static struct acked acks[2 * N];

	struct session a = hello_named(f.port, "orders-eu");
	cr_assert_eq(a.id, sl_producers_named_id("orders-eu", 9));
	cr_assert_eq(a.next_sequence, 0);
	produce(&a, 0, N, 7, a.epoch);
	collect_acks(a.fd, 0, N, acks);
	for (int i = 0; i < N; i++)
		cr_assert(acks[i].status == 0 && !acks[i].duplicate, "event %d: %d", i,
		          acks[i].status);

	/* The same name again: same id, the next epoch, where A ended. */
	struct session b = hello_named(f.port, "orders-eu");
	cr_assert_eq(b.id, a.id);
	cr_assert_eq(b.epoch, a.epoch + 1);
	cr_assert_eq(b.next_sequence, N);
	/* A is fenced now (an Error, or each event refused ERR_FENCED). */
	produce(&a, N, 5, 7, a.epoch);
	uint8_t *body;
	uint32_t len;
	int type = read_frame(a.fd, &body, &len);
	if (type == SLUICE__V1__FRAME_TYPE__FRAME_ERROR) {
		Sluice__V1__Error *e = sluice__v1__error__unpack(NULL, len, body);
		cr_assert_eq(e->code, SLUICE__V1__ERROR_CODE__ERR_FENCED, "%s", e->message);
		sluice__v1__error__free_unpacked(e, NULL);
	} else {
		cr_assert_eq(type, SLUICE__V1__FRAME_TYPE__FRAME_ACK);
		clear_acks(acks, 5);
		uint32_t got = apply_ack(body, len, N, 5, acks);
		collect_more(a.fd, N, 5, 5 - got, acks);
		for (int i = 0; i < 5; i++)
			cr_assert_eq(acks[i].status, SLUICE__V1__ERROR_CODE__ERR_FENCED);
	}
	free(body);
	close(a.fd);
	produce(&b, b.next_sequence, N, 7, b.epoch);
	collect_acks(b.fd, N, N, acks);
	for (int i = 0; i < N; i++)
		cr_assert(acks[i].status == 0 && !acks[i].duplicate, "event %d: %d", N + i,
		          acks[i].status);
	close(b.fd);
	cr_assert_eq(check_stored(f.port, 2 * N, 1, NULL), 2 * N);

	/* The wrong ways in. */
	Sluice__V1__Hello h = SLUICE__V1__HELLO__INIT;
	h.producer_id = a.id; /* a name's id by number, even with its proof */
	h.producer_proof.data = a.proof;
	h.producer_proof.len = sizeof(a.proof);
	expect_hello_error(f.port, &h, SLUICE__V1__ERROR_CODE__ERR_MALFORMED, "named producers");
	h = (Sluice__V1__Hello)SLUICE__V1__HELLO__INIT;
	h.producer_name = "orders-eu";
	h.producer_id = 5;
	expect_hello_error(f.port, &h, SLUICE__V1__ERROR_CODE__ERR_MALFORMED,
	                   "excludes producer_id");
	h = (Sluice__V1__Hello)SLUICE__V1__HELLO__INIT;
	h.producer_name = "orders eu";
	expect_hello_error(f.port, &h, SLUICE__V1__ERROR_CODE__ERR_MALFORMED, "printable");

	/* A restart: the name comes back from the logs, a window back (2N is
	 * less than one: from 0). Resending from there stores nothing twice
	 * and is never a sequence error; the stream goes on after it. */
	halt(&f);
	start_on(&f, 2, true);
	struct session c = hello_named(f.port, "orders-eu");
	cr_assert_eq(c.id, a.id);
	cr_assert_gt(c.epoch, b.epoch);
	cr_assert_eq(c.next_sequence, 0, "2N stored, one window back: 0, got %llu",
	             (unsigned long long)c.next_sequence);
	produce(&c, 0, 2 * N, 7, c.epoch);
	collect_acks(c.fd, 0, 2 * N, acks);
	for (int i = 0; i < 2 * N; i++)
		cr_assert(acks[i].status == 0 && acks[i].duplicate, "resent %d: %d", i,
		          acks[i].status);
	produce(&c, 2 * N, N, 7, c.epoch);
	collect_acks(c.fd, 2 * N, N, acks);
	for (int i = 0; i < N; i++)
		cr_assert(acks[i].status == 0 && !acks[i].duplicate, "event %d: %d", 2 * N + i,
		          acks[i].status);
	close(c.fd);
	cr_assert_eq(check_stored(f.port, 3 * N, 1, NULL), 3 * N);
	stop(&f);
}
