/*
 * Exactly once that lasts (issue 20), through an in-process server and the
 * blocking wire client of eo_client.h: producers that come and go never
 * make the server store an event untracked; a partition's sequence table
 * stays within its bound by forgetting the least recently used producers
 * (or those idle past producer_expiry); a resend of a forgotten producer is
 * answered by the event-id window when it can be, and refused with
 * ERR_PRODUCER_EXPIRED when nothing can tell whether it was stored.
 *
 * The counts come from the server's /metrics text (published at its tick:
 * read in a bounded loop until they settle, never after a sleep).
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dedup/dedup.h"
#include "part/part.h"
#include "proto/proto.h"
#include "server/server.h"
#include "wire_client.h"

#define N_PARTS 1

static struct sl_topic_spec g_topics[] = {
    {.name = "events", .n_parts = N_PARTS, .partitioner = SL_PART_HASH},
};

#include "eo_client.h"

/* One event whose id is `tag` (so producers' events differ), sequence
 * seq; resend_age_ms > 0 marks the frame a resend first sent that long
 * ago (Produce.resend_age_ms). */
static void send_one(const struct session *s, uint64_t seq, uint64_t tag, uint64_t resend_age_ms)
{
	uint8_t buf[512], id[16] = {0};
	char data[64];
	struct sl_produce_builder b;

	memcpy(id, &tag, sizeof(tag));
	id[15] = 0x1a;
	snprintf(data, sizeof(data), "{\"tag\":%" PRIu64 "}", tag);
	struct sl_event_view v = {
	    .id = id,
	    .type = "T",
	    .type_len = 1,
	    .aggregate = "k",
	    .aggregate_len = 1,
	    .timestamp_ms = 1,
	    .data = (const uint8_t *)data,
	    .data_len = strlen(data),
	};
	cr_assert_eq(sl_produce_begin(&b, buf, sizeof(buf), "events", 6, seq, s->epoch), 0);
	if (resend_age_ms)
		cr_assert_eq(sl_produce_set_resend_age(&b, resend_age_ms), 0);
	cr_assert_geq(sl_produce_add_event(&b, &v, NULL, 0), 0);
	int len = sl_produce_finish(&b);
	cr_assert_gt(len, 0);
	send_all(s->fd, buf, (size_t)len);
}

static struct acked answer_one(const struct session *s, uint64_t seq)
{
	struct acked a;
	collect_acks(s->fd, seq, 1, &a);
	return a;
}

/* A partition metric of topic "events" partition 0 from /metrics. */
static uint64_t metric(struct sl_server *srv, const char *name)
{
	char *body = NULL, want[160];
	size_t len = 0;
	uint64_t v = UINT64_MAX;

	cr_assert_eq(sl_server_metrics_text(srv, &body, &len), 0);
	snprintf(want, sizeof(want), "\n%s{topic=\"events\",partition=\"0\"} ", name);
	const char *at = strstr(body, want);
	cr_assert_not_null(at, "%s not in /metrics", name);
	v = strtoull(at + strlen(want), NULL, 10);
	free(body);
	return v;
}

/* Waits (bounded: 10 s of ticks) until metric `name` reaches `at_least`. */
static uint64_t metric_reaches(struct sl_server *srv, const char *name, uint64_t at_least)
{
	uint64_t v = 0, end = sl_now_ns() + 10000000000ull;
	for (int round = 0; round < 100000000 && sl_now_ns() < end; round++)
		if ((v = metric(srv, name)) >= at_least)
			break;
	cr_assert_geq(v, at_least, "%s: %" PRIu64 ", want at least %" PRIu64, name, v, at_least);
	return v;
}

/*
 * 100,000 producers, one event each, through one partition (the issue's
 * 70 x 1000 short-lived bench connections, as sessions): every event
 * stored and tracked, none refused; the partition's table holds at most
 * its bound (65,536) and forgot the rest, least recently used first; its
 * memory stays under the stated bound. The first producer, forgotten, then
 * resends its event: the id window (on, as by default) answers it as a
 * duplicate at its original offset; a resend of an event it never stored
 * is stored, since the window holds every id since then.
 */
Test(exactly_once_lasts, a_hundred_thousand_producers_through_one_partition, .timeout = 600)
{
	enum { N = 100000 };
	struct fixture f;
	struct session first = {0}, last = {0};
	uint64_t first_off = 0, last_off = 0;

	g_topics[0].dedup_window_ms = 600000;
	g_topics[0].dedup_window_events = 262144;
	g_topics[0].producer_expiry_ns = 7ull * 86400 * 1000000000ull;
	start(&f, 2);
	/* In rounds of B sessions at once (within the test server's
	 * connection limit): dial and Hello all, then one event each, then
	 * the acks, then close. */
	enum { B = 32 };
	for (uint64_t i0 = 0; i0 < N; i0 += B) {
		struct session s[B];
		for (uint64_t k = 0; k < B; k++)
			s[k] = hello_send(f.port, NULL, false);
		for (uint64_t k = 0; k < B; k++) {
			hello_recv(&s[k]);
			send_one(&s[k], 0, i0 + k, 0);
		}
		for (uint64_t k = 0; k < B; k++) {
			uint64_t i = i0 + k;
			struct acked a = answer_one(&s[k], 0);
			cr_assert(a.status == 0 && !a.duplicate,
			          "producer %" PRIu64 ": status %d dup %d", i, a.status,
			          a.duplicate);
			close(s[k].fd);
			if (i == 0) {
				first = s[k];
				first_off = a.offset;
			} else if (i == N - 1) {
				last = s[k];
				last_off = a.offset;
			}
		}
	}
	cr_assert_eq(stored_total(f.port, NULL), N);
	/* The table's count and what it forgot add up to every producer. */
	uint64_t kept = 0, forgot = metric_reaches(f.srv, "sluice_producers_expired_total",
	                                           N - SL_DEDUP_PRODUCERS_DEFAULT);
	/* Both are published at the same tick; bounded by 10 s of ticks. */
	for (uint64_t end = sl_now_ns() + 10000000000ull; sl_now_ns() < end;) {
		kept = metric(f.srv, "sluice_partition_producers");
		forgot = metric(f.srv, "sluice_producers_expired_total");
		if (kept + forgot == N)
			break;
	}
	cr_assert_eq(kept + forgot, N, "%" PRIu64 " kept + %" PRIu64 " forgotten", kept, forgot);
	cr_assert_leq(kept, SL_DEDUP_PRODUCERS_DEFAULT);
	/* 128 B of buckets and at most 128 B of FIFO a producer (dedup.h). */
	uint64_t bytes = metric(f.srv, "sluice_partition_sequence_table_bytes");
	fprintf(stderr,
	        "figure: sequence table %" PRIu64 " bytes for %" PRIu64
	        " producers (%.1f B each)\n",
	        bytes, kept, (double)bytes / (double)kept);
	cr_assert_leq(bytes, (uint64_t)SL_DEDUP_PRODUCERS_DEFAULT * 256 + 65536, "%" PRIu64, bytes);
	cr_assert_eq(metric(f.srv, "sluice_untracked_stored_total"), 0);
	cr_assert_eq(metric(f.srv, "sluice_untracked_refused_total"), 0);

	/* The first producer, forgotten (least recently used), resends. */
	struct session again = hello_as(f.port, &first, false);
	send_one(&again, 0, 0, 5000);
	struct acked a = answer_one(&again, 0);
	cr_assert(a.status == 0 && a.duplicate && a.offset == first_off,
	          "a forgotten producer's resend: status %d dup %d offset %" PRIu64, a.status,
	          a.duplicate, a.offset);
	/* Answered by the id window, not by sequence: it was forgotten. */
	cr_assert_eq(metric_reaches(f.srv, "sluice_id_duplicates_total", 1), 1);
	/* A resend of an event it never stored: the window holds every id
	 * stored since, so it cannot have been: stored now. */
	send_one(&again, 1, N + 1, 5000);
	a = answer_one(&again, 1);
	cr_assert(a.status == 0 && !a.duplicate && a.offset == N, "status %d dup %d", a.status,
	          a.duplicate);
	/* The last producer is still known: its resend is a duplicate by
	 * sequence. */
	struct session back = hello_as(f.port, &last, false);
	send_one(&back, 0, N - 1, 5000);
	a = answer_one(&back, 0);
	cr_assert(a.status == 0 && a.duplicate && a.offset == last_off, "status %d", a.status);
	cr_assert_eq(stored_total(f.port, NULL), N + 1);
	cr_assert_eq(metric(f.srv, "sluice_producer_expired_refused_total"), 0);
	/* Still one by id: the last producer's was answered by sequence. */
	cr_assert_eq(metric(f.srv, "sluice_id_duplicates_total"), 1);
	close(again.fd);
	close(back.fd);
	stop(&f);
}

/*
 * producer_expiry: a producer idle past it is forgotten (the tick's sweep);
 * its resend, with the id window off, cannot be told from a new event, so
 * it is refused with ERR_PRODUCER_EXPIRED and counted, never stored again.
 * A first sending of the same producer is stored as usual.
 */
Test(exactly_once_lasts, a_forgotten_producers_resend_is_refused, .timeout = 60)
{
	struct fixture f;

	g_topics[0].dedup_window_ms = 0;
	g_topics[0].producer_expiry_ns = 1000000; /* 1 ms: forgotten at the next sweep */
	start(&f, 2);
	struct session s = hello_as(f.port, NULL, false);
	for (uint64_t i = 0; i < 3; i++) {
		send_one(&s, i, i, 0);
		struct acked a = answer_one(&s, i);
		cr_assert(a.status == 0 && !a.duplicate, "event %" PRIu64 ": %d", i, a.status);
	}
	close(s.fd);
	metric_reaches(f.srv, "sluice_producers_expired_total", 1);
	cr_assert_eq(metric(f.srv, "sluice_partition_producers"), 0);

	struct session r = hello_as(f.port, &s, false);
	send_one(&r, 1, 1, 3000);
	struct acked a = answer_one(&r, 1);
	cr_assert_eq(a.status, SLUICE__V1__ERROR_CODE__ERR_PRODUCER_EXPIRED,
	             "the resend of a forgotten producer: status %d", a.status);
	cr_assert_eq(metric_reaches(f.srv, "sluice_producer_expired_refused_total", 1), 1);
	cr_assert_eq(stored_total(f.port, NULL), 3);
	/* Sent for the first time (the next sequence: 1 is used up): it
	 * cannot have been stored; stored. */
	send_one(&r, 2, 3, 0);
	a = answer_one(&r, 2);
	cr_assert(a.status == 0 && !a.duplicate && a.offset == 3, "status %d", a.status);
	cr_assert_eq(stored_total(f.port, NULL), 4);
	cr_assert_eq(metric(f.srv, "sluice_untracked_stored_total"), 0);
	close(r.fd);
	stop(&f);
}
