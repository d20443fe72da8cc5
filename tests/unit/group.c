/*
 * Consumer groups' table (engine/group): the sticky even assignment, the
 * cooperative hand-over (no partition ever held by two members), fencing
 * of replaced members' commits, expiry, and the offsets topic's records.
 */
#include <criterion/criterion.h>
#include <string.h>

#include "group/group.h"
#include "group/record_format.h"
#include "proto/proto.h"

#define MS (UINT64_C(1000000))

static uint32_t count_of(const int32_t *t, uint32_t n, int32_t who)
{
	uint32_t c = 0;
	for (uint32_t p = 0; p < n; p++)
		c += t[p] == who;
	return c;
}

Test(group, assignment_is_even_and_sticky)
{
	int32_t t[10];
	int32_t r[4] = {0, 1, 2, 3};
	uint32_t moved, orphans;

	memset(t, 0xff, sizeof(t));
	cr_assert_eq(sl_group_assign(t, 10, r, 3, &moved, &orphans), 0);
	uint32_t c0 = count_of(t, 10, 0), c1 = count_of(t, 10, 1), c2 = count_of(t, 10, 2);
	cr_assert_eq(c0 + c1 + c2, 10);
	cr_assert(c0 >= 3 && c0 <= 4 && c1 >= 3 && c1 <= 4 && c2 >= 3 && c2 <= 4);
	cr_assert_eq(moved, 0); /* nothing was anyone's */

	/* A fourth reader: only what it needs moves (10/4: 2 or 3), and
	 * nobody gives one to anyone but the newcomer. */
	int32_t before[10];
	memcpy(before, t, sizeof(t));
	cr_assert_eq(sl_group_assign(t, 10, r, 4, &moved, &orphans), 0);
	uint32_t c3 = count_of(t, 10, 3);
	cr_assert(c3 >= 2 && c3 <= 3, "newcomer got %u", c3);
	cr_assert_eq(moved, c3);
	for (uint32_t p = 0; p < 10; p++)
		cr_assert(t[p] == before[p] || t[p] == 3, "partition %u went %d -> %d", p,
		          before[p], t[p]);

	/* Reader 1 goes: only its partitions move, none between the others. */
	memcpy(before, t, sizeof(t));
	int32_t r2[3] = {0, 2, 3};
	uint32_t had = count_of(t, 10, 1);
	cr_assert_eq(sl_group_assign(t, 10, r2, 3, &moved, &orphans), 0);
	cr_assert_eq(orphans, had);
	cr_assert_eq(moved, 0);
	cr_assert_eq(count_of(t, 10, 1), 0);
	for (uint32_t p = 0; p < 10; p++)
		cr_assert(before[p] == 1 || t[p] == before[p]);

	/* No readers: nothing assigned. */
	cr_assert_eq(sl_group_assign(t, 10, r, 0, &moved, &orphans), 0);
	cr_assert_eq(count_of(t, 10, -1), 10);
}

struct mem {
	char id[SL_GROUP_ID_LEN + 1];
	uint32_t gen;
	uint32_t held[64];
	size_t n_held;
	uint32_t conn;
};

/* One heartbeat of m holding m->held; on return m->held is what it holds
 * after acting on the answer (drops revoked, adds granted). */
static uint32_t beat(struct sl_groups *g, struct mem *m, uint32_t n_parts, uint64_t now, bool leave)
{
	struct sl_group_grant a[64];
	struct sl_group_hb in = {
	    .group = "g",
	    .group_len = 1,
	    .member = m->id,
	    .member_len = strlen(m->id),
	    .generation = m->gen,
	    .topic = "events",
	    .topic_len = 6,
	    .n_parts = n_parts,
	    .owned = m->held,
	    .n_owned = m->n_held,
	    .session_ms = 1000,
	    .leave = leave,
	    .conn = m->conn,
	    .now_ns = now,
	};
	struct sl_group_hb_out o = {.assigned = a};
	cr_assert_eq(sl_groups_heartbeat(g, &in, &o), 0);
	if (o.error)
		return o.error;
	memcpy(m->id, o.member, sizeof(m->id));
	m->gen = o.generation;
	m->n_held = o.n_assigned;
	for (uint32_t i = 0; i < o.n_assigned; i++)
		m->held[i] = a[i].partition;
	return 0;
}

static void no_double_holding(struct mem *ms, size_t n, uint32_t n_parts)
{
	for (uint32_t p = 0; p < n_parts; p++) {
		int holders = 0;
		for (size_t k = 0; k < n; k++)
			for (size_t i = 0; i < ms[k].n_held; i++)
				holders += ms[k].held[i] == p;
		cr_assert(holders <= 1, "partition %u held by %d members", p, holders);
	}
}

Test(group, cooperative_handover_never_holds_twice)
{
	struct sl_groups *g;
	struct mem m[3] = {{.conn = 1}, {.conn = 2}, {.conn = 3}};
	cr_assert_eq(sl_groups_create(&g), 0);

	cr_assert_eq(beat(g, &m[0], 8, 1 * MS, false), 0);
	cr_assert_eq(m[0].n_held, 8);
	cr_assert_eq(beat(g, &m[1], 8, 2 * MS, false), 0);
	/* A still holds all: B waits for A's word. */
	cr_assert_eq(m[1].n_held, 0);
	no_double_holding(m, 2, 8);
	cr_assert_eq(beat(g, &m[0], 8, 3 * MS, false), 0); /* told to give 4 up */
	cr_assert_eq(m[0].n_held, 4);
	cr_assert_eq(beat(g, &m[1], 8, 4 * MS, false), 0); /* A has not said so yet */
	cr_assert_eq(m[1].n_held, 0);
	cr_assert_eq(beat(g, &m[0], 8, 5 * MS, false), 0); /* A says it holds 4 */
	cr_assert_eq(beat(g, &m[1], 8, 6 * MS, false), 0);
	cr_assert_eq(m[1].n_held, 4);
	no_double_holding(m, 2, 8);

	/* A third: each of the two gives up some, the third gets 2. */
	cr_assert_eq(beat(g, &m[2], 8, 7 * MS, false), 0);
	for (int round = 0; round < 3; round++) {
		for (int k = 0; k < 3; k++) {
			cr_assert_eq(beat(g, &m[k], 8, (10 + round * 3 + k) * MS, false), 0);
			no_double_holding(m, 3, 8);
		}
	}
	cr_assert_eq(m[0].n_held + m[1].n_held + m[2].n_held, 8);
	cr_assert(m[2].n_held >= 2);

	/* B leaves: its partitions go to A and C at once (they are free). */
	cr_assert_eq(beat(g, &m[1], 8, 30 * MS, true), 0);
	cr_assert_eq(beat(g, &m[0], 8, 31 * MS, false), 0);
	cr_assert_eq(beat(g, &m[2], 8, 32 * MS, false), 0);
	cr_assert_eq(m[0].n_held + m[2].n_held, 8);
	cr_assert_eq(m[0].n_held, 4);
	sl_groups_destroy(g);
}

Test(group, a_replaced_member_cannot_commit)
{
	struct sl_groups *g;
	struct mem a = {.conn = 1}, b = {.conn = 2};
	char msg[300];
	cr_assert_eq(sl_groups_create(&g), 0);

	cr_assert_eq(beat(g, &a, 2, 1 * MS, false), 0);
	cr_assert_eq(a.n_held, 2);
	struct sl_group_commit c = {.group = "g",
	                            .group_len = 1,
	                            .member = a.id,
	                            .member_len = strlen(a.id),
	                            .generation = a.gen,
	                            .topic = "events",
	                            .topic_len = 6,
	                            .partition = 1,
	                            .offset = 10};
	cr_assert_eq(sl_groups_commit(g, &c, msg, sizeof(msg)), 0, "%s", msg);

	/* A goes silent past its session (1 s); B joins and takes both. */
	cr_assert_eq(beat(g, &b, 2, 2000 * MS, false), 0);
	cr_assert_eq(b.n_held, 2);
	c.offset = 20;
	cr_assert_eq(sl_groups_commit(g, &c, msg, sizeof(msg)),
	             SLUICE__V1__ERROR_CODE__ERR_UNKNOWN_MEMBER);
	/* Nor can A's heartbeat bring it back. */
	cr_assert_eq(beat(g, &a, 2, 2001 * MS, false), SLUICE__V1__ERROR_CODE__ERR_UNKNOWN_MEMBER);

	/* B commits; a commit with a generation from before B was granted
	 * the partition is refused (a stale view of B's own). */
	c.member = b.id;
	c.member_len = strlen(b.id);
	c.generation = b.gen;
	c.offset = 30;
	cr_assert_eq(sl_groups_commit(g, &c, msg, sizeof(msg)), 0, "%s", msg);
	c.generation = b.gen - 1;
	cr_assert_eq(sl_groups_commit(g, &c, msg, sizeof(msg)), SLUICE__V1__ERROR_CODE__ERR_FENCED);
	/* A partition it does not hold: refused too. */
	c.generation = b.gen;
	c.partition = 5;
	cr_assert_eq(sl_groups_commit(g, &c, msg, sizeof(msg)), SLUICE__V1__ERROR_CODE__ERR_FENCED);

	struct sl_group_snap *v;
	uint32_t n;
	cr_assert_eq(sl_groups_snapshot(g, &v, &n), 0);
	cr_assert_eq(n, 1);
	cr_assert_eq(v[0].n_members, 1);
	cr_assert_eq(v[0].expired, 1);
	cr_assert(v[0].topics[0].parts[1].has_committed);
	cr_assert_eq(v[0].topics[0].parts[1].committed, 30);
	sl_groups_snapshot_free(v, n);
	sl_groups_destroy(g);
}

Test(group, a_closed_connection_takes_its_members)
{
	struct sl_groups *g;
	struct mem a = {.conn = 7}, b = {.conn = 8};
	cr_assert_eq(sl_groups_create(&g), 0);
	cr_assert_eq(beat(g, &a, 4, 1 * MS, false), 0);
	cr_assert_eq(beat(g, &b, 4, 2 * MS, false), 0);
	cr_assert_eq(beat(g, &a, 4, 3 * MS, false), 0);
	cr_assert_eq(beat(g, &a, 4, 4 * MS, false), 0);
	cr_assert_eq(beat(g, &b, 4, 5 * MS, false), 0);
	cr_assert_eq(b.n_held, 2);
	sl_groups_conn_gone(g, 0, 7, 0);
	cr_assert_eq(beat(g, &b, 4, 6 * MS, false), 0);
	cr_assert_eq(b.n_held, 4);
	/* Expiry by time alone. */
	cr_assert_eq(sl_groups_expire(g, 500 * MS), 0);
	cr_assert_eq(sl_groups_expire(g, 1007 * MS), 1);
	sl_groups_destroy(g);
}

Test(group, records_round_trip_and_replay_keeps_the_newest_generation)
{
	uint8_t buf[SL_GROUP_RECORD_MAX];
	struct sl_group_record r = {.group = "orders",
	                            .group_len = 6,
	                            .topic = "events",
	                            .topic_len = 6,
	                            .partition = 12,
	                            .offset = 123456789,
	                            .generation = 7,
	                            .time_ms = 1700000000123};
	int n = sl_group_record_encode(&r, buf, sizeof(buf));
	cr_assert_gt(n, 0);
	struct sl_group_record d;
	char err[120];
	cr_assert_eq(sl_group_record_decode(buf, (size_t)n, &d, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(d.group_len, 6);
	cr_assert(!memcmp(d.group, "orders", 6));
	cr_assert(!memcmp(d.topic, "events", 6));
	cr_assert_eq(d.partition, 12);
	cr_assert_eq(d.offset, 123456789);
	cr_assert_eq(d.generation, 7);
	cr_assert_eq(d.time_ms, 1700000000123);
	/* A cut one is refused; so is one whose partition differs from its
	 * aggregate's (data is the event's last field: no headers). */
	cr_assert_eq(sl_group_record_decode(buf, (size_t)n - 3, &d, err, sizeof(err)), -EINVAL);
	buf[n - SL_GREC_LEN + SL_GREC_PARTITION] ^= 1;
	cr_assert_eq(sl_group_record_decode(buf, (size_t)n, &d, err, sizeof(err)), -EINVAL);
	cr_assert(strstr(err, "partition"), "%s", err);

	struct sl_groups *g;
	cr_assert_eq(sl_groups_create(&g), 0);
	r.offset = 100;
	r.generation = 5;
	cr_assert_eq(sl_groups_replay(g, &r), 0);
	r.offset = 50; /* a replaced member's, appended late */
	r.generation = 4;
	cr_assert_eq(sl_groups_replay(g, &r), 0);
	struct sl_group_snap *v;
	uint32_t k;
	cr_assert_eq(sl_groups_snapshot(g, &v, &k), 0);
	cr_assert_eq(v[0].topics[0].parts[12].committed, 100);
	cr_assert_eq(v[0].generation, 5);
	sl_groups_snapshot_free(v, k);

	/* A join after the replay: a generation past every one read back. */
	struct mem a = {.conn = 1};
	struct sl_group_grant ga[16];
	struct sl_group_hb in = {.group = "orders",
	                         .group_len = 6,
	                         .topic = "events",
	                         .topic_len = 6,
	                         .n_parts = 16,
	                         .conn = a.conn,
	                         .now_ns = MS};
	struct sl_group_hb_out o = {.assigned = ga};
	cr_assert_eq(sl_groups_heartbeat(g, &in, &o), 0);
	cr_assert_eq(o.generation, 6);
	cr_assert_eq(o.n_assigned, 16);
	cr_assert(ga[12].has_committed);
	cr_assert_eq(ga[12].committed, 100);
	cr_assert(!ga[3].has_committed);
	sl_groups_destroy(g);
}

Test(group, bad_requests_are_refused)
{
	struct sl_groups *g;
	struct sl_group_grant a[4];
	cr_assert_eq(sl_groups_create(&g), 0);
	struct sl_group_hb in = {.group = "bad/name",
	                         .group_len = 8,
	                         .topic = "events",
	                         .topic_len = 6,
	                         .n_parts = 4,
	                         .now_ns = MS};
	struct sl_group_hb_out o = {.assigned = a};
	cr_assert_eq(sl_groups_heartbeat(g, &in, &o), 0);
	cr_assert_eq(o.error, SLUICE__V1__ERROR_CODE__ERR_MALFORMED);
	in.group = "ok";
	in.group_len = 2;
	in.session_ms = 5;
	cr_assert_eq(sl_groups_heartbeat(g, &in, &o), 0);
	cr_assert_eq(o.error, SLUICE__V1__ERROR_CODE__ERR_MALFORMED);
	in.session_ms = 0;
	in.member = "0123456789abcdef0123456789abcdef";
	in.member_len = 32;
	cr_assert_eq(sl_groups_heartbeat(g, &in, &o), 0);
	cr_assert_eq(o.error, SLUICE__V1__ERROR_CODE__ERR_UNKNOWN_MEMBER);
	sl_groups_destroy(g);
}
