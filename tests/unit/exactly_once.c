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

struct fixture {
	struct sl_server *srv;
	uint16_t port;
	char dir[64];
};

static struct sl_topic_spec g_topics[] = {
    {.name = "events", .n_parts = N_PARTS, .partitioner = SL_PART_HASH},
};

/* Starts a server on f->dir, which exists already when keep_dir (a
 * restart), else is created. */
static void start_on(struct fixture *f, uint32_t reactors, bool keep_dir)
{
	if (!keep_dir) {
		snprintf(f->dir, sizeof(f->dir), "/tmp/sluice-eo-test-XXXXXX");
		cr_assert_not_null(mkdtemp(f->dir));
	}
	struct sl_server_opts o = {
	    TU_SERVER_OPTS(f->dir, reactors),
	    .topics = g_topics,
	    .n_topics = 1,
	    .pin = true,
	};
	char err[512];
	int ret = sl_server_create(&o, &f->srv, err, sizeof(err));
	cr_assert_eq(ret, 0, "server: %s", err);
	cr_assert_eq(sl_server_start(f->srv), 0);
	f->port = sl_server_native_port(f->srv);
	cr_assert_neq(f->port, 0);
}

static void start(struct fixture *f, uint32_t reactors)
{
	start_on(f, reactors, false);
}

/* Drains and frees the server, leaving its folder. */
static void halt(struct fixture *f)
{
	tu_server_halt(&f->srv);
}

static void stop(struct fixture *f)
{
	halt(f);
	rm_dir(f->dir);
}

struct session {
	int fd;
	uint64_t id;
	uint32_t epoch;
	uint64_t next_sequence;
	uint8_t proof[16]; /* Welcome.producer_proof */
};

/* Dials and says Hello as the producer of `resume` (with its proof), or as
 * a new one (NULL). */
static struct session hello_as(uint16_t port, const struct session *resume, bool idempotence_off)
{
	struct session s = {.fd = dial(port)};
	uint64_t want = resume ? resume->id : 0;
	Sluice__V1__Hello h = SLUICE__V1__HELLO__INIT;
	h.min_version = 1;
	h.max_version = 1;
	h.producer_id = want;
	if (resume) {
		h.producer_proof.data = (uint8_t *)resume->proof;
		h.producer_proof.len = sizeof(resume->proof);
	}
	h.client_name = "exactly-once test";
	h.idempotence_off = idempotence_off;
	send_msg(s.fd, SLUICE__V1__FRAME_TYPE__FRAME_HELLO, &h.base);

	uint8_t *body;
	uint32_t len;
	int type = read_frame(s.fd, &body, &len);
	cr_assert_eq(type, SLUICE__V1__FRAME_TYPE__FRAME_WELCOME, "expected Welcome, got %d", type);
	Sluice__V1__Welcome *w = sluice__v1__welcome__unpack(NULL, len, body);
	free(body);
	cr_assert_not_null(w);
	cr_assert_eq(w->version, 1);
	cr_assert_neq(w->producer_id, 0);
	if (want)
		cr_assert_eq(w->producer_id, want, "asked to be producer %llu, got %llu",
		             (unsigned long long)want, (unsigned long long)w->producer_id);
	cr_assert_geq(w->epoch, 1);
	s.id = w->producer_id;
	s.epoch = w->epoch;
	s.next_sequence = w->next_sequence;
	cr_assert_eq(w->producer_proof.len, sizeof(s.proof), "Welcome without a proof");
	memcpy(s.proof, w->producer_proof.data, sizeof(s.proof));
	sluice__v1__welcome__free_unpacked(w, NULL);
	return s;
}

/* A Produce of events [base_seq, base_seq + n) of the given epoch, with
 * aggregates "key-<i % n_keys>". An event's bytes depend only on its
 * sequence (id and data carry it), so a resend is byte for byte the same
 * event. Returns the frame size. */
static int build_produce(uint8_t *buf, size_t cap, uint64_t base_seq, uint32_t n, uint32_t n_keys,
                         uint32_t epoch)
{
	struct sl_produce_builder b;
	cr_assert_eq(sl_produce_begin(&b, buf, cap, "events", 6, base_seq, epoch), 0);
	for (uint32_t i = 0; i < n; i++) {
		char agg[32], data[64];
		uint8_t id[16] = {0};
		uint64_t seq = base_seq + i;
		memcpy(id, &seq, sizeof(seq));
		id[15] = 0xe0;
		snprintf(agg, sizeof(agg), "key-%llu", (unsigned long long)(seq % n_keys));
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

static void produce(const struct session *s, uint64_t base_seq, uint32_t n, uint32_t n_keys,
                    uint32_t epoch)
{
	static uint8_t buf[1 << 18];
	int len = build_produce(buf, sizeof(buf), base_seq, n, n_keys, epoch);
	send_all(s->fd, buf, (size_t)len);
}

struct acked {
	int32_t status; /* -1: not answered yet; 0 stored; else the ErrorCode */
	uint32_t partition;
	uint64_t offset;
	bool duplicate;
	bool offset_unknown;
};

static void clear_acks(struct acked *out, uint32_t n)
{
	for (uint32_t i = 0; i < n; i++)
		out[i] = (struct acked){.status = -1};
}

/* Records one Ack frame's answers for events [base, base+n); returns how
 * many it answered. An event answered twice fails the test. */
static uint32_t apply_ack(const uint8_t *body, uint32_t len, uint64_t base, uint32_t n,
                          struct acked *out)
{
	uint32_t answered = 0;
	Sluice__V1__Ack *a = sluice__v1__ack__unpack(NULL, len, body);
	cr_assert_not_null(a);
	cr_assert_geq(a->base_sequence, base);
	uint64_t shift = a->base_sequence - base;
	for (size_t p = 0; p < a->n_parts; p++) {
		Sluice__V1__AckPart *pt = a->parts[p];
		if (pt->n_offsets)
			cr_assert_eq(pt->n_offsets, pt->n_index, "offsets and index differ");
		for (size_t k = 0; k < pt->n_index; k++) {
			uint64_t i = shift + pt->index[k];
			cr_assert_lt(i, n);
			cr_assert_eq(out[i].status, -1, "event %llu answered twice",
			             (unsigned long long)(base + i));
			out[i].status = 0;
			out[i].partition = pt->partition;
			out[i].offset = pt->n_offsets ? pt->offsets[k] : pt->base_offset + k;
			out[i].duplicate = pt->duplicate;
			out[i].offset_unknown = pt->offset_unknown;
			answered++;
		}
	}
	for (size_t r = 0; r < a->n_rejects; r++) {
		Sluice__V1__Reject *rj = a->rejects[r];
		for (size_t k = 0; k < rj->n_index; k++) {
			uint64_t i = shift + rj->index[k];
			cr_assert_lt(i, n);
			cr_assert_eq(out[i].status, -1, "event %llu answered twice",
			             (unsigned long long)(base + i));
			cr_assert_neq(rj->code, 0, "a Reject without a code");
			out[i].status = rj->code;
			answered++;
		}
	}
	sluice__v1__ack__free_unpacked(a, NULL);
	return answered;
}

/* Reads Acks until `left` more events of [base, base+n) are answered.
 * Another frame type (an Error, a close) fails the test. */
static void collect_more(int fd, uint64_t base, uint32_t n, uint32_t left, struct acked *out)
{
	while (left) {
		uint8_t *body;
		uint32_t len;
		int type = read_frame(fd, &body, &len);
		cr_assert_eq(type, SLUICE__V1__FRAME_TYPE__FRAME_ACK,
		             "expected Ack, got %d (%u left)", type, left);
		uint32_t got = apply_ack(body, len, base, n, out);
		free(body);
		cr_assert_leq(got, left);
		left -= got;
	}
}

/* Reads Acks until every event of [base, base+n) is answered, each once. */
static void collect_acks(int fd, uint64_t base, uint32_t n, struct acked *out)
{
	clear_acks(out, n);
	collect_more(fd, base, n, n, out);
}

/* Total stored events of topic "events" and each partition's end, from
 * Metadata over the session fd. */
static uint64_t metadata_total(int fd, uint64_t ends[N_PARTS])
{
	Sluice__V1__MetadataRequest mq = SLUICE__V1__METADATA_REQUEST__INIT;
	mq.topic = "events";
	mq.request_id = 7;
	send_msg(fd, SLUICE__V1__FRAME_TYPE__FRAME_METADATA, &mq.base);
	uint8_t *body;
	uint32_t len;
	int type = read_frame(fd, &body, &len);
	cr_assert_eq(type, SLUICE__V1__FRAME_TYPE__FRAME_METADATA_RESULT, "got frame %d", type);
	Sluice__V1__Metadata *md = sluice__v1__metadata__unpack(NULL, len, body);
	free(body);
	cr_assert_not_null(md);
	cr_assert_eq(md->error, 0, "metadata: %s", md->message);
	cr_assert_eq(md->n_topics, 1);
	cr_assert_eq(md->topics[0]->n_partitions, N_PARTS);
	uint64_t total = 0;
	for (size_t p = 0; p < N_PARTS; p++) {
		Sluice__V1__PartitionInfo *pi = md->topics[0]->partitions[p];
		cr_assert_eq(pi->start_offset, 0);
		if (ends)
			ends[pi->partition] = pi->end_offset;
		total += pi->end_offset;
	}
	sluice__v1__metadata__free_unpacked(md, NULL);
	return total;
}

/* The same over a session of its own (a reader: idempotence off, so it
 * takes no part in sequence tracking). */
static uint64_t stored_total(uint16_t port, uint64_t ends[N_PARTS])
{
	struct session s = hello_as(port, NULL, true);
	uint64_t total = metadata_total(s.fd, ends);
	close(s.fd);
	return total;
}

/*
 * Reads every stored event back (Fetch, partition by partition) and checks
 * that each sequence in [0, n) is stored exactly as often as `times` says
 * (1 for exactly once), nothing else is stored, and - when `where` is given -
 * that each event sits where `where` says. Returns the total read.
 */
static uint64_t check_stored(uint16_t port, uint64_t n, uint32_t times, const struct acked *where)
{
	uint64_t ends[N_PARTS];
	struct session s = hello_as(port, NULL, true);
	uint64_t total = metadata_total(s.fd, ends);
	uint32_t *count = calloc(n ? n : 1, sizeof(*count));
	uint64_t req = 100, read = 0;

	cr_assert_not_null(count);
	for (uint32_t p = 0; p < N_PARTS; p++) {
		uint64_t off = 0;
		/* Bounded: each round reads at least one event. */
		for (uint64_t round = 0; off < ends[p] && round <= ends[p]; round++) {
			Sluice__V1__Fetch fe = SLUICE__V1__FETCH__INIT;
			fe.topic = "events";
			fe.partition = p;
			fe.offset = off;
			fe.max_events = 500;
			fe.max_bytes = 1 << 20;
			fe.request_id = ++req;
			send_msg(s.fd, SLUICE__V1__FRAME_TYPE__FRAME_FETCH, &fe.base);
			uint8_t *body;
			uint32_t len;
			int type = read_frame(s.fd, &body, &len);
			cr_assert_eq(type, SLUICE__V1__FRAME_TYPE__FRAME_FETCH_RESULT,
			             "got frame %d", type);
			Sluice__V1__FetchResult *res =
			    sluice__v1__fetch_result__unpack(NULL, len, body);
			free(body);
			cr_assert_not_null(res);
			cr_assert_eq(res->request_id, req);
			cr_assert_eq(res->error, 0, "fetch %u@%llu: %s", p, (unsigned long long)off,
			             res->message);
			cr_assert_eq(res->base_offset, off);
			cr_assert_gt(res->n_events, 0, "partition %u ends early at %llu", p,
			             (unsigned long long)off);
			for (size_t k = 0; k < res->n_events; k++) {
				unsigned long long seq;
				Sluice__V1__Event *e = res->events[k];
				char data[64] = {0};
				cr_assert_lt(e->data.len, sizeof(data));
				memcpy(data, e->data.data, e->data.len);
				cr_assert_eq(sscanf(data, "{\"seq\":%llu}", &seq), 1,
				             "foreign event at %u@%llu", p,
				             (unsigned long long)(off + k));
				cr_assert_lt(seq, n, "event of sequence %llu was never sent", seq);
				count[seq]++;
				if (where && where[seq].status == 0 && !where[seq].offset_unknown) {
					cr_assert_eq(
					    where[seq].partition, p,
					    "event %llu acked in partition %u, stored in %u", seq,
					    where[seq].partition, p);
					cr_assert_eq(
					    where[seq].offset, off + k,
					    "event %llu acked at offset %llu, stored at %llu", seq,
					    (unsigned long long)where[seq].offset,
					    (unsigned long long)(off + k));
				}
				read++;
			}
			off += res->n_events;
			sluice__v1__fetch_result__free_unpacked(res, NULL);
		}
		cr_assert_eq(off, ends[p]);
	}
	close(s.fd);
	cr_assert_eq(read, total);
	for (uint64_t i = 0; i < n; i++)
		cr_assert_eq(count[i], times, "event %llu stored %u times, expected %u",
		             (unsigned long long)i, count[i], times);
	free(count);
	return read;
}

/* Waits until `n` events are stored (readable), by asking Metadata: each
 * round is a blocking request, and the rounds are bounded in number and
 * in time (20 s). */
static void wait_stored(uint16_t port, uint64_t n)
{
	struct session s = hello_as(port, NULL, true);
	uint64_t total = 0, end = sl_now_ns() + 20000000000ull;
	for (int round = 0; round < 10000000 && sl_now_ns() < end; round++) {
		total = metadata_total(s.fd, NULL);
		if (total >= n)
			break;
	}
	close(s.fd);
	cr_assert_eq(total, n, "%llu events stored, expected %llu", (unsigned long long)total,
	             (unsigned long long)n);
}

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

/* Says Hello under a name and returns the Welcome's session; a refusal
 * fails the test. */
static struct session hello_named(uint16_t port, const char *name)
{
	struct session s = {.fd = dial(port)};
	Sluice__V1__Hello h = SLUICE__V1__HELLO__INIT;
	h.min_version = 1;
	h.max_version = 1;
	h.producer_name = (char *)name;
	h.client_name = "exactly-once test";
	send_msg(s.fd, SLUICE__V1__FRAME_TYPE__FRAME_HELLO, &h.base);
	uint8_t *body;
	uint32_t len;
	int type = read_frame(s.fd, &body, &len);
	cr_assert_eq(type, SLUICE__V1__FRAME_TYPE__FRAME_WELCOME, "Hello as %s: frame %d", name,
	             type);
	Sluice__V1__Welcome *w = sluice__v1__welcome__unpack(NULL, len, body);
	free(body);
	cr_assert_not_null(w);
	s.id = w->producer_id;
	s.epoch = w->epoch;
	s.next_sequence = w->next_sequence;
	memcpy(s.proof, w->producer_proof.data, sizeof(s.proof));
	sluice__v1__welcome__free_unpacked(w, NULL);
	return s;
}

/* Sends Hello h and expects an Error with `code` whose text holds `what`,
 * then the close. */
static void expect_hello_error(uint16_t port, Sluice__V1__Hello *h, int code, const char *what)
{
	int fd = dial(port);
	h->min_version = 1;
	h->max_version = 1;
	send_msg(fd, SLUICE__V1__FRAME_TYPE__FRAME_HELLO, &h->base);
	uint8_t *body;
	uint32_t len;
	int type = read_frame(fd, &body, &len);
	cr_assert_eq(type, SLUICE__V1__FRAME_TYPE__FRAME_ERROR, "frame %d, want an Error", type);
	Sluice__V1__Error *e = sluice__v1__error__unpack(NULL, len, body);
	free(body);
	cr_assert_not_null(e);
	cr_assert_eq(e->code, code, "Error %d: %s", e->code, e->message);
	cr_assert_not_null(strstr(e->message, what), "'%s' does not say '%s'", e->message, what);
	sluice__v1__error__free_unpacked(e, NULL);
	expect_closed(fd);
	close(fd);
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
