/*
 * Consumer groups, the reactor's side (group/group.h has the rules): a
 * GroupHeartbeat is answered from the groups' table at once; a Commit is
 * checked against it, then its record is produced into the offsets topic
 * like a pipeline's output (the partition of the group, producer id 0: a
 * record written twice says the same thing twice) and the CommitAck goes
 * out when the record is durable, from its ack (the ref names the
 * connection with SL_CONN_PIPE | SL_CONN_COMMIT and carries the request id
 * as its sequence).
 *
 * The offsets topic is made when the first heartbeat needs it: the
 * connection parks as a Produce to a missing topic does (admin.c), and the
 * heartbeat is fed again once the admin thread made it.
 *
 * Threads: the reactor's own.
 */
#include <stdlib.h>
#include <string.h>

#include "group/group.h"
#include "reactor/conn.h"

static void sl__hb_reply(struct sl_reactor *r, struct sl_conn *c, uint64_t request_id,
                         const struct sl_group_hb_out *o)
{
	Sluice__V1__GroupHeartbeatResult res = SLUICE__V1__GROUP_HEARTBEAT_RESULT__INIT;
	Sluice__V1__GroupPartition *parts = NULL, **pp = NULL;

	res.request_id = request_id;
	res.error = (Sluice__V1__ErrorCode)o->error;
	res.message = (char *)o->message;
	res.member_id = (char *)o->member;
	res.generation = o->generation;
	res.heartbeat_ms = o->heartbeat_ms;
	res.members = o->members;
	res.settled = o->settled;
	if (o->n_assigned) {
		parts = calloc(o->n_assigned, sizeof(*parts));
		pp = calloc(o->n_assigned, sizeof(*pp));
		if (!parts || !pp) {
			sl__conn_fail(r, c, SLUICE__V1__ERROR_CODE__ERR_INTERNAL, "out of memory");
			goto out;
		}
		for (uint32_t i = 0; i < o->n_assigned; i++) {
			sluice__v1__group_partition__init(&parts[i]);
			parts[i].partition = o->assigned[i].partition;
			parts[i].committed = o->assigned[i].committed;
			parts[i].has_committed = o->assigned[i].has_committed;
			pp[i] = &parts[i];
		}
		res.n_assigned = o->n_assigned;
		res.assigned = pp;
	}
	if (sl__conn_put_msg(c, SLUICE__V1__FRAME_TYPE__FRAME_GROUP_HEARTBEAT_RESULT, &res.base) <
	    0)
		sl__conn_fail(r, c, SLUICE__V1__ERROR_CODE__ERR_INTERNAL, "out of memory");
	sl__conn_mark_flush(r, c);
out:
	free(parts);
	free(pp);
}

static void sl__hb_refuse(struct sl_reactor *r, struct sl_conn *c, uint64_t request_id,
                          uint32_t code, const char *msg)
{
	struct sl_group_hb_out o = {.error = code};
	snprintf(o.message, sizeof(o.message), "%s", msg);
	sl__hb_reply(r, c, request_id, &o);
}

/* The offsets topic, or NULL when it is not there yet. */
static struct sl_topic *sl__offsets_topic(struct sl_reactor *r)
{
	return sl_topics_find(r->topics, SL_GROUP_TOPIC, sizeof(SL_GROUP_TOPIC) - 1);
}

void sl__on_group_heartbeat(struct sl_reactor *r, struct sl_conn *c, const struct sl_frame *f)
{
	ProtobufCMessage *m = sl__conn_request(r, c, f, "GroupHeartbeat", "GroupHeartbeat");
	if (!m)
		return;
	Sluice__V1__GroupHeartbeat *q = (Sluice__V1__GroupHeartbeat *)m;
	struct sl_group_grant *assigned = NULL;

	if (!r->env->groups || r->env->rq) {
		sl__hb_refuse(r, c, q->request_id, SLUICE__V1__ERROR_CODE__ERR_NOT_COORDINATOR,
		              r->env->rq ? "consumer groups are not served in cluster mode yet"
		                         : "consumer groups are not served by this server");
		goto out;
	}
	if (!sl__offsets_topic(r)) {
		if (!c->park_failed && r->env->admin &&
		    sl__produce_park(r, c, SL_GROUP_TOPIC, sizeof(SL_GROUP_TOPIC) - 1) == 0)
			goto out; /* fed again once the topic is made */
		sl__hb_refuse(r, c, q->request_id, SLUICE__V1__ERROR_CODE__ERR_INTERNAL,
		              "the offsets topic (" SL_GROUP_TOPIC ") could not be made; retry");
		goto out;
	}
	struct sl_topic *t = sl_topics_find(r->topics, q->topic, strlen(q->topic));
	if (!t) {
		sl__hb_refuse(r, c, q->request_id, SLUICE__V1__ERROR_CODE__ERR_UNKNOWN_TOPIC,
		              "no such topic");
		goto out;
	}
	assigned = calloc(t->n_parts ? t->n_parts : 1, sizeof(*assigned));
	if (!assigned) {
		sl__conn_fail(r, c, SLUICE__V1__ERROR_CODE__ERR_INTERNAL, "out of memory");
		goto out;
	}
	struct sl_group_hb in = {
	    .group = q->group,
	    .group_len = strlen(q->group),
	    .member = q->member_id,
	    .member_len = strlen(q->member_id),
	    .generation = q->generation,
	    .topic = t->name,
	    .topic_len = strlen(t->name),
	    .n_parts = t->n_parts,
	    .owned = q->owned,
	    .n_owned = q->n_owned,
	    .session_ms = q->session_timeout_ms,
	    .leave = q->leave,
	    .client = q->client_name,
	    .client_len = strlen(q->client_name),
	    .core = r->id,
	    .conn = c->slot,
	    .conn_gen = c->gen,
	    .now_ns = sl_now_ns(),
	};
	struct sl_group_hb_out o = {.assigned = assigned};
	if (sl_groups_heartbeat(r->env->groups, &in, &o) < 0) {
		sl__hb_refuse(r, c, q->request_id, SLUICE__V1__ERROR_CODE__ERR_INTERNAL,
		              "out of memory");
		goto out;
	}
	/* Its members go when this connection closes. */
	c->group_member = c->group_member || (!o.error && !q->leave);
	sl__hb_reply(r, c, q->request_id, &o);
out:
	free(assigned);
	sl_frame_msg_free(m);
}

static void sl__commit_reply(struct sl_reactor *r, struct sl_conn *c, uint64_t request_id,
                             uint32_t code, const char *msg)
{
	Sluice__V1__CommitAck res = SLUICE__V1__COMMIT_ACK__INIT;
	res.request_id = request_id;
	res.error = (Sluice__V1__ErrorCode)code;
	res.message = (char *)msg;
	if (sl__conn_put_msg(c, SLUICE__V1__FRAME_TYPE__FRAME_COMMIT_ACK, &res.base) < 0)
		sl__conn_fail(r, c, SLUICE__V1__ERROR_CODE__ERR_INTERNAL, "out of memory");
	sl__conn_mark_flush(r, c);
}

void sl__on_commit(struct sl_reactor *r, struct sl_conn *c, const struct sl_frame *f)
{
	ProtobufCMessage *m = sl__conn_request(r, c, f, "Commit", "Commit");
	if (!m)
		return;
	Sluice__V1__Commit *q = (Sluice__V1__Commit *)m;
	char msg[300];
	uint8_t rec[SL_GROUP_RECORD_MAX];

	if (!r->env->groups || r->env->rq) {
		sl__commit_reply(r, c, q->request_id, SLUICE__V1__ERROR_CODE__ERR_NOT_COORDINATOR,
		                 "consumer groups are not served here");
		goto out;
	}
	struct sl_topic *ot = sl__offsets_topic(r);
	struct sl_topic *t = sl_topics_find(r->topics, q->topic, strlen(q->topic));
	if (!t || q->partition >= t->n_parts) {
		sl__commit_reply(r, c, q->request_id, SLUICE__V1__ERROR_CODE__ERR_UNKNOWN_TOPIC,
		                 t ? "no such partition" : "no such topic");
		goto out;
	}
	struct sl_group_commit gc = {
	    .group = q->group,
	    .group_len = strlen(q->group),
	    .member = q->member_id,
	    .member_len = strlen(q->member_id),
	    .generation = q->generation,
	    .topic = t->name,
	    .topic_len = strlen(t->name),
	    .partition = q->partition,
	    .offset = q->offset,
	    .time_ms = (int64_t)sl_wall_ms(),
	};
	uint32_t code = ot ? sl_groups_commit(r->env->groups, &gc, msg, sizeof(msg))
	                   : SLUICE__V1__ERROR_CODE__ERR_UNKNOWN_MEMBER;
	if (code) {
		sl__commit_reply(r, c, q->request_id, code, ot ? msg : "no group has members yet");
		goto out;
	}
	struct sl_group_record gr = {
	    .group = gc.group,
	    .group_len = gc.group_len,
	    .topic = gc.topic,
	    .topic_len = gc.topic_len,
	    .partition = gc.partition,
	    .offset = gc.offset,
	    .generation = gc.generation,
	    .time_ms = gc.time_ms,
	};
	int len = sl_group_record_encode(&gr, rec, sizeof(rec));
	struct sl_event_view v;
	int ret = len < 0 ? len : sl_event_scan(rec, (size_t)len, &v);
	if (ret == 0)
		ret = sl__internal_produce_to(
		    r, ot->index, sl_group_offsets_part(gc.group, gc.group_len, ot->n_parts), 0,
		    SL_CONN_PIPE | SL_CONN_COMMIT | c->slot, c->gen, rec, (uint32_t)len,
		    q->request_id, &v);
	if (ret < 0) {
		sl__commit_reply(r, c, q->request_id, sl_proto_wire_error(ret),
		                 "the commit record was not stored");
		goto out;
	}
	c->owed++;
out:
	sl_frame_msg_free(m);
}

void sl__commit_ack(struct sl_reactor *r, const struct sl_xack *a)
{
	uint32_t slot = a->conn & ~(SL_CONN_PIPE | SL_CONN_COMMIT);
	struct sl_conn *c = slot < r->conn_cap ? r->conns[slot] : NULL;

	if (!c || c->gen != a->gen)
		return; /* its consumer is gone; it commits again when back */
	c->owed--;
	sl__commit_reply(r, c, a->base_seq, (uint32_t)a->status,
	                 a->status ? "the commit record was not stored" : "");
}

void sl__groups_conn_closed(struct sl_reactor *r, struct sl_conn *c)
{
	if (c->group_member && r->env->groups)
		sl_groups_conn_gone(r->env->groups, r->id, c->slot, c->gen);
}

void sl__groups_tick(struct sl_reactor *r)
{
	/* One reactor sweeps for all: the table is shared. */
	if (r->id == 0 && r->env->groups)
		sl_groups_expire(r->env->groups, sl_now_ns());
}
