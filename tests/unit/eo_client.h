/*
 * The exactly-once tests' fixture and blocking wire client (issue 20 split
 * them out of exactly_once.c so the tests of producers that come and go,
 * exactly_once_lasts.c, use the same ones): an in-process server on a
 * fresh folder, sessions (Hello, as a new producer, a resumed one or a
 * named one), Produce frames whose events' bytes depend only on their
 * sequence, Acks collected per event, and what is stored read back through
 * Metadata and Fetch.
 *
 * The including file defines N_PARTS (the partitions of topic "events")
 * and g_topics (the server's topics) before it includes this.
 */
#ifndef SL_TEST_EO_CLIENT_H
#define SL_TEST_EO_CLIENT_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "proto/proto.h"
#include "server/server.h"
#include "wire_client.h"

struct fixture {
	struct sl_server *srv;
	uint16_t port;
	char dir[64];
};

/* Starts a server on f->dir, which exists already when keep_dir (a
 * restart), else is created. */
static inline void start_on(struct fixture *f, uint32_t reactors, bool keep_dir)
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

static inline void start(struct fixture *f, uint32_t reactors)
{
	start_on(f, reactors, false);
}

/* Drains and frees the server, leaving its folder. */
static inline void halt(struct fixture *f)
{
	tu_server_halt(&f->srv);
}

static inline void stop(struct fixture *f)
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

/* Dials and sends Hello as the producer of `resume` (with its proof), or
 * as a new one (NULL); hello_recv reads the answer. */
static inline struct session hello_send(uint16_t port, const struct session *resume,
                                        bool idempotence_off)
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
	s.id = want;
	return s;
}

/* Reads the Welcome of a Hello hello_send sent (many may be in flight). */
static inline void hello_recv(struct session *sp)
{
	struct session s = *sp;
	uint64_t want = s.id;
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
	*sp = s;
}

/* Dials and says Hello as the producer of `resume` (with its proof), or as
 * a new one (NULL). */
static inline struct session hello_as(uint16_t port, const struct session *resume,
                                      bool idempotence_off)
{
	struct session s = hello_send(port, resume, idempotence_off);
	hello_recv(&s);
	return s;
}

/* A Produce of events [base_seq, base_seq + n) of the given epoch, with
 * aggregates "key-<i % n_keys>". An event's bytes depend only on its
 * sequence (id and data carry it), so a resend is byte for byte the same
 * event. Returns the frame size. */
static inline int build_produce(uint8_t *buf, size_t cap, uint64_t base_seq, uint32_t n,
                                uint32_t n_keys, uint32_t epoch)
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

static inline void produce(const struct session *s, uint64_t base_seq, uint32_t n, uint32_t n_keys,
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

static inline void clear_acks(struct acked *out, uint32_t n)
{
	for (uint32_t i = 0; i < n; i++)
		out[i] = (struct acked){.status = -1};
}

/* Records one Ack frame's answers for events [base, base+n); returns how
 * many it answered. An event answered twice fails the test. */
static inline uint32_t apply_ack(const uint8_t *body, uint32_t len, uint64_t base, uint32_t n,
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
static inline void collect_more(int fd, uint64_t base, uint32_t n, uint32_t left, struct acked *out)
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
static inline void collect_acks(int fd, uint64_t base, uint32_t n, struct acked *out)
{
	clear_acks(out, n);
	collect_more(fd, base, n, n, out);
}

/* Total stored events of topic "events" and each partition's end, from
 * Metadata over the session fd. */
static inline uint64_t metadata_total(int fd, uint64_t ends[N_PARTS])
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
static inline uint64_t stored_total(uint16_t port, uint64_t ends[N_PARTS])
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
static inline uint64_t check_stored(uint16_t port, uint64_t n, uint32_t times,
                                    const struct acked *where)
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
static inline void wait_stored(uint16_t port, uint64_t n)
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

/* Says Hello under a name and returns the Welcome's session; a refusal
 * fails the test. */
static inline struct session hello_named(uint16_t port, const char *name)
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
static inline void expect_hello_error(uint16_t port, Sluice__V1__Hello *h, int code,
                                      const char *what)
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
	cr_assert_eq((int)e->code, code, "Error %d: %s", (int)e->code, e->message);
	cr_assert_not_null(strstr(e->message, what), "'%s' does not say '%s'", e->message, what);
	sluice__v1__error__free_unpacked(e, NULL);
	expect_closed(fd);
	close(fd);
}

#endif
