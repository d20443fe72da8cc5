/*
 * Consumer groups through a running server and libsluice (issue 18): the
 * offsets topic made by the first heartbeat, commits durable across a
 * restart, a member replaced after its session timeout refused on commit
 * and heartbeat, a closed connection's member gone at once, and bad
 * requests answered with their reasons.
 */
#include <criterion/criterion.h>
#include <time.h>

#define N_PARTS 4
#include "server/server.h"
#include "wire_client.h"
static struct sl_topic_spec g_topics[] = {
    {.name = "events", .n_parts = N_PARTS, .partitioner = SL_PART_HASH},
};
#include "eo_client.h"
#include "group/group.h"
#include "sluice/consumer.h"

static struct sl_consumer *consumer(uint16_t port)
{
	struct sl_consumer_opts o = {.host = "127.0.0.1", .port = port, .client_name = "t"};
	struct sl_consumer *c;
	char err[300];
	cr_assert_eq(sl_consumer_connect(&o, &c, err, sizeof(err)), 0, "%s", err);
	return c;
}

static size_t held_of(const struct sl_group_member *m, uint32_t *v)
{
	for (size_t i = 0; i < m->n_assigned; i++)
		v[i] = m->assigned[i].partition;
	return m->n_assigned;
}

/* Heartbeats of m (holding what it was given) until it holds `want`
 * partitions; each heartbeat paced as the server asks (the protocol's
 * own period), at most `tries` of them. */
static void beat_until(struct sl_consumer *c, struct sl_group_member *m, uint32_t session,
                       size_t want, int tries)
{
	uint32_t held[N_PARTS];
	for (int i = 0; i < tries; i++) {
		size_t n = held_of(m, held);
		cr_assert_eq(sl_consumer_group_heartbeat(c, "g", "events", session, held, n, 0, m),
		             0, "%s", sl_consumer_last_error(c));
		if (m->n_assigned == want)
			return;
		/* The heartbeat period the server asks for: the protocol's
		 * pacing, and what lets a silent member's session run out, the
		 * time-based expiry these tests are about. */
		struct timespec ts = {0, (long)m->heartbeat_ms * 1000000L};
		nanosleep(&ts, NULL);
	}
	cr_assert_fail("member holds %zu partitions, not %zu, after %d heartbeats", m->n_assigned,
	               want, tries);
}

Test(group_server, commits_survive_a_restart, .timeout = 60)
{
	struct fixture f;
	start(&f, 2);
	struct sl_consumer *c = consumer(f.port);
	struct sl_group_member m = {0};
	beat_until(c, &m, 0, N_PARTS, 1);
	cr_assert_eq(m.members, 1);
	for (size_t i = 0; i < m.n_assigned; i++)
		cr_assert(!m.assigned[i].has_committed);
	for (uint32_t p = 0; p < N_PARTS; p++)
		cr_assert_eq(sl_consumer_commit(c, "g", &m, "events", p, 100 + p), 0, "%s",
		             sl_consumer_last_error(c));
	/* A later commit wins. */
	cr_assert_eq(sl_consumer_commit(c, "g", &m, "events", 2, 500), 0);
	sl_group_member_clear(&m);
	sl_consumer_close(c);
	halt(&f);

	start_on(&f, 2, true);
	c = consumer(f.port);
	beat_until(c, &m, 0, N_PARTS, 1);
	for (size_t i = 0; i < m.n_assigned; i++) {
		uint32_t p = m.assigned[i].partition;
		cr_assert(m.assigned[i].has_committed, "partition %u: no offset after restart", p);
		cr_assert_eq(m.assigned[i].committed, p == 2 ? 500u : 100u + p);
	}
	sl_group_member_clear(&m);
	sl_consumer_close(c);
	stop(&f);
}

Test(group_server, a_replaced_member_is_refused, .timeout = 60)
{
	struct fixture f;
	start(&f, 2);
	struct sl_consumer *ca = consumer(f.port), *cb = consumer(f.port);
	struct sl_group_member a = {0}, b = {0};

	beat_until(ca, &a, 300, N_PARTS, 1);
	cr_assert_eq(sl_consumer_commit(ca, "g", &a, "events", 0, 7), 0, "%s",
	             sl_consumer_last_error(ca));
	/* A falls silent (its connection stays open); B joins and, once A's
	 * 300 ms session ran out, holds everything. */
	beat_until(cb, &b, 300, N_PARTS, 100);
	uint32_t gen_b = b.generation;
	cr_assert_gt(gen_b, a.generation);
	/* A's commit, with what it still believes, is refused... */
	cr_assert_eq(sl_consumer_commit(ca, "g", &a, "events", 0, 9), -SL_EUNKNOWN_MEMBER);
	cr_assert(strstr(sl_consumer_last_error(ca), "not committed"), "%s",
	          sl_consumer_last_error(ca));
	/* ...and so is its heartbeat, which clears it. */
	uint32_t held[N_PARTS];
	size_t n = held_of(&a, held);
	cr_assert_eq(sl_consumer_group_heartbeat(ca, "g", "events", 300, held, n, 0, &a),
	             -SL_EUNKNOWN_MEMBER);
	cr_assert_eq(a.id[0], 0);
	/* B's commit of the same partition is taken; one in a generation
	 * from before B got it is not. */
	cr_assert_eq(sl_consumer_commit(cb, "g", &b, "events", 0, 11), 0);
	b.generation = gen_b - 2;
	cr_assert_eq(sl_consumer_commit(cb, "g", &b, "events", 0, 12), -SL_EFENCED);
	b.generation = gen_b;

	/* A joins again; B closes its connection without leaving: A takes
	 * all, starting where B committed. */
	beat_until(ca, &a, 300, 0, 1);
	sl_consumer_close(cb);
	beat_until(ca, &a, 300, N_PARTS, 100);
	for (size_t i = 0; i < a.n_assigned; i++)
		if (a.assigned[i].partition == 0)
			cr_assert_eq(a.assigned[i].committed, 11);
	sl_group_member_clear(&a);
	sl_group_member_clear(&b);
	sl_consumer_close(ca);
	stop(&f);
}

Test(group_server, bad_requests_get_reasons, .timeout = 60)
{
	struct fixture f;
	start(&f, 2);
	struct sl_consumer *c = consumer(f.port);
	struct sl_group_member m = {0};

	cr_assert_eq(sl_consumer_group_heartbeat(c, "g", "nope", 0, NULL, 0, 0, &m), -SL_ENOTOPIC);
	cr_assert_lt(sl_consumer_group_heartbeat(c, "bad/name", "events", 0, NULL, 0, 0, &m), 0);
	cr_assert(strstr(sl_consumer_last_error(c), "group name"), "%s", sl_consumer_last_error(c));
	cr_assert_lt(sl_consumer_group_heartbeat(c, "g", "events", 5, NULL, 0, 0, &m), 0);
	cr_assert(strstr(sl_consumer_last_error(c), "session_timeout_ms"), "%s",
	          sl_consumer_last_error(c));
	/* A commit from nobody. */
	struct sl_group_member fake = {.id = "0123456789abcdef0123456789abcdef"};
	cr_assert_eq(sl_consumer_commit(c, "g", &fake, "events", 0, 1), -SL_EUNKNOWN_MEMBER);
	/* The offsets topic is the server's own: no produce, no delete. */
	cr_assert_eq(sl_consumer_group_heartbeat(c, "g", "events", 0, NULL, 0, 0, &m), 0);
	int status;
	char *answer;
	cr_assert_eq(
	    sl_consumer_topic_admin(c, SL_TOPIC_DELETE, SL_GROUP_TOPIC, NULL, 0, &status, &answer),
	    0);
	cr_assert_eq(status, 409, "%s", answer);
	free(answer);
	cr_assert_eq(sl_consumer_topic_admin(c, SL_TOPIC_CREATE, NULL,
	                                     "{\"name\":\"__sluice_mine\"}", 0, &status, &answer),
	             0);
	cr_assert_eq(status, 400, "%s", answer);
	free(answer);
	sl_group_member_clear(&m);
	sl_consumer_close(c);
	stop(&f);
}
