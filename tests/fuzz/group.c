/*
 * Fuzz target: what consumer groups read from outside (engine/group):
 * GroupHeartbeat and Commit requests as a connection sends them, run
 * against a groups table, and the offsets topic's records read back at
 * start.
 *
 * Input: byte 0 picks the reader (0: a record; 1: a sequence of requests),
 * the rest is its input. For requests: each is a u16 length (little
 * endian), a u8 frame type (GROUP_HEARTBEAT or COMMIT) and the body. Checked:
 * a record decodes to 0 or -EINVAL, and what decodes encodes back to a
 * record that decodes to the same values; requests never crash or leak,
 * every answer assigns only partitions of the topic, at most once each, and
 * no partition is ever assigned to two members.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "group/group.h"
#include "proto/proto.h"

#define CHECK(x)                                                                                   \
	do {                                                                                       \
		if (!(x)) {                                                                        \
			fprintf(stderr, "group fuzz: %s failed\n", #x);                            \
			abort();                                                                   \
		}                                                                                  \
	} while (0)

#define PARTS 16u

static void record(const uint8_t *d, size_t n)
{
	struct sl_group_record r, r2;
	char err[120];
	uint8_t back[SL_GROUP_RECORD_MAX];

	int ret = sl_group_record_decode(d, n, &r, err, sizeof(err));
	CHECK(ret == 0 || ret == -EINVAL);
	if (ret < 0)
		return;
	int len = sl_group_record_encode(&r, back, sizeof(back));
	CHECK(len > 0);
	CHECK(sl_group_record_decode(back, (size_t)len, &r2, err, sizeof(err)) == 0);
	CHECK(r2.partition == r.partition && r2.offset == r.offset &&
	      r2.generation == r.generation && r2.time_ms == r.time_ms);
	CHECK(r2.group_len == r.group_len && !memcmp(r2.group, r.group, r.group_len));
	CHECK(r2.topic_len == r.topic_len && !memcmp(r2.topic, r.topic, r.topic_len));
}

static void heartbeat(struct sl_groups *g, const Sluice__V1__GroupHeartbeat *q, uint64_t now,
                      uint32_t conn)
{
	struct sl_group_grant a[PARTS];
	struct sl_group_hb in = {
	    .group = q->group,
	    .group_len = strlen(q->group),
	    .member = q->member_id,
	    .member_len = strlen(q->member_id),
	    .generation = q->generation,
	    .topic = "t",
	    .topic_len = 1,
	    .n_parts = PARTS,
	    .owned = q->owned,
	    .n_owned = q->n_owned,
	    .session_ms = q->session_timeout_ms,
	    .leave = q->leave,
	    .client = q->client_name,
	    .client_len = strlen(q->client_name),
	    .conn = conn,
	    .now_ns = now,
	};
	struct sl_group_hb_out o = {.assigned = a};
	if (sl_groups_heartbeat(g, &in, &o) < 0 || o.error)
		return;
	CHECK(o.n_assigned <= PARTS);
	bool seen[PARTS] = {0};
	for (uint32_t i = 0; i < o.n_assigned; i++) {
		CHECK(a[i].partition < PARTS);
		CHECK(!seen[a[i].partition]);
		seen[a[i].partition] = true;
	}
}

static void requests(const uint8_t *d, size_t n)
{
	struct sl_groups *g;
	uint64_t now = 1000000;
	uint32_t conn = 0;

	CHECK(sl_groups_create(&g) == 0);
	while (n >= 3) {
		size_t len = (size_t)d[0] | (size_t)d[1] << 8;
		uint8_t type = d[2];
		d += 3;
		n -= 3;
		if (len > n)
			len = n;
		struct sl_frame f = {.type = type, .body = d, .body_len = (uint32_t)len};
		ProtobufCMessage *m = NULL;
		now += 50000000; /* 50 ms a request: sessions expire along the way */
		conn = (conn + 1) % 4;
		if (type == SLUICE__V1__FRAME_TYPE__FRAME_GROUP_HEARTBEAT &&
		    sl_frame_decode_msg(&f, &m) == 0) {
			heartbeat(g, (Sluice__V1__GroupHeartbeat *)m, now, conn);
		} else if (type == SLUICE__V1__FRAME_TYPE__FRAME_COMMIT &&
		           sl_frame_decode_msg(&f, &m) == 0) {
			Sluice__V1__Commit *c = (Sluice__V1__Commit *)m;
			char msg[300];
			struct sl_group_commit gc = {
			    .group = c->group,
			    .group_len = strlen(c->group),
			    .member = c->member_id,
			    .member_len = strlen(c->member_id),
			    .generation = c->generation,
			    .topic = c->topic,
			    .topic_len = strlen(c->topic),
			    .partition = c->partition,
			    .offset = c->offset,
			};
			uint32_t code = sl_groups_commit(g, &gc, msg, sizeof(msg));
			CHECK(code == 0 || msg[0]);
		} else if (type == 0xfe) {
			sl_groups_conn_gone(g, 0, conn, 0);
		}
		if (m)
			sl_frame_msg_free(m);
		d += len;
		n -= len;
	}
	/* No partition held by two live members. */
	struct sl_group_snap *v;
	uint32_t k;
	if (sl_groups_snapshot(g, &v, &k) == 0) {
		for (uint32_t i = 0; i < k; i++)
			for (uint32_t t = 0; t < v[i].n_topics; t++) {
				uint32_t held = 0;
				for (uint32_t p = 0; p < v[i].topics[t].n_parts; p++)
					held += v[i].topics[t].parts[p].owner[0] != 0;
				uint32_t by_members = 0;
				for (uint32_t s = 0; s < v[i].n_members; s++)
					if (!strcmp(v[i].members[s].topic, v[i].topics[t].name))
						by_members += v[i].members[s].n_held;
				CHECK(held == by_members);
			}
		sl_groups_snapshot_free(v, k);
	}
	sl_groups_destroy(g);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!size)
		return 0;
	if (data[0] & 1)
		requests(data + 1, size - 1);
	else
		record(data + 1, size - 1);
	return 0;
}
