/*
 * Topic admin on the native port (TopicAdmin frames) and topics created by
 * a first Produce (env->auto_create), the reactor's side: a request is
 * copied into a struct sl_admin_req and handed to the server's admin thread
 * (env->admin), which does the work a reactor must not wait for (folders,
 * the registry's fsync, every reactor adopting the topic) and hands the
 * request back (ctl.c); here the answer goes to the connection that asked.
 *
 * A Produce that names a missing topic parks its connection: the frame and
 * everything after it wait unread (conn.c, sl__conn_unpark), so the
 * producer's order is kept and nothing is refused while the topic is made.
 *
 * Threads: the reactor's own.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "reactor/conn.h"

/* A request body's bound, as the HTTP routes' (engine/http, 413 past it). */
#define SL__ADMIN_BODY_MAX (64u * 1024u)

static struct sl_admin_req *sl__admin_req_new(struct sl_conn *c, enum sl_admin_op op,
                                              const char *name, size_t name_len, const char *body,
                                              size_t body_len)
{
	struct sl_admin_req *req = malloc(sizeof(*req) + name_len + 1 + body_len + 1);
	if (!req)
		return NULL;
	memset(req, 0, sizeof(*req));
	char *p = (char *)(req + 1);
	memcpy(p, name, name_len);
	p[name_len] = 0;
	memcpy(p + name_len + 1, body, body_len);
	p[name_len + 1 + body_len] = 0;
	req->conn = c->slot;
	req->gen = c->gen;
	req->op = op;
	req->name = p;
	req->name_len = name_len;
	req->body = p + name_len + 1;
	req->body_len = body_len;
	return req;
}

static void sl__admin_reply(struct sl_reactor *r, struct sl_conn *c, uint64_t request_id,
                            uint32_t status, const char *body)
{
	Sluice__V1__TopicAdminResult res = SLUICE__V1__TOPIC_ADMIN_RESULT__INIT;
	res.request_id = request_id;
	res.status = status;
	res.body = (char *)body;
	if (sl__conn_put_msg(c, SLUICE__V1__FRAME_TYPE__FRAME_TOPIC_ADMIN_RESULT, &res.base) < 0)
		sl__conn_fail(r, c, SLUICE__V1__ERROR_CODE__ERR_INTERNAL, "out of memory");
	sl__conn_mark_flush(r, c);
}

static const enum sl_admin_op sl__ops[] = {
    [SLUICE__V1__TOPIC_OP__TOPIC_OP_LIST] = SL_ADMIN_LIST,
    [SLUICE__V1__TOPIC_OP__TOPIC_OP_DESCRIBE] = SL_ADMIN_DESCRIBE,
    [SLUICE__V1__TOPIC_OP__TOPIC_OP_CREATE] = SL_ADMIN_CREATE,
    [SLUICE__V1__TOPIC_OP__TOPIC_OP_ALTER] = SL_ADMIN_ALTER,
    [SLUICE__V1__TOPIC_OP__TOPIC_OP_DELETE] = SL_ADMIN_DELETE,
};

void sl__on_topic_admin(struct sl_reactor *r, struct sl_conn *c, const struct sl_frame *f)
{
	ProtobufCMessage *m = sl__conn_request(r, c, f, "TopicAdmin", "TopicAdmin");
	if (!m)
		return;
	Sluice__V1__TopicAdmin *q = (Sluice__V1__TopicAdmin *)m;
	size_t name_len = strlen(q->name), body_len = strlen(q->body);
	uint32_t op = (uint32_t)q->op;

	if (op >= SL_ARRAY_LEN(sl__ops) || !sl__ops[op]) {
		sl__admin_reply(r, c, q->request_id, 400,
		                "{\"error\":\"bad_request\",\"message\":\"unknown topic op\"}");
		goto out;
	}
	if (body_len > SL__ADMIN_BODY_MAX) {
		sl__admin_reply(r, c, q->request_id, 413,
		                "{\"error\":\"too_large\",\"message\":\"a topic request body is at "
		                "most 64 KiB\"}");
		goto out;
	}
	struct sl_admin_req *req =
	    sl__admin_req_new(c, sl__ops[op], q->name, name_len, q->body, body_len);
	if (!req) {
		sl__admin_reply(r, c, q->request_id, 500,
		                "{\"error\":\"internal\",\"message\":\"out of memory\"}");
		goto out;
	}
	req->request_id = q->request_id;
	int ret = sl__admin_submit(r, req);
	if (ret < 0) {
		sl__admin_reply(
		    r, c, q->request_id, 503,
		    ret == -ESHUTDOWN
		        ? "{\"error\":\"stopping\",\"message\":\"the server is stopping\"}"
		        : "{\"error\":\"busy\",\"message\":\"topic admin is not served "
		          "here or is busy; retry\"}");
		goto out;
	}
	c->owed++;
out:
	sl_frame_msg_free(m);
}

int sl__produce_park(struct sl_reactor *r, struct sl_conn *c, const char *topic, size_t len)
{
	struct sl_admin_req *req = sl__admin_req_new(c, SL_ADMIN_AUTO_CREATE, topic, len, "", 0);
	if (!req)
		return -ENOMEM;
	int ret = sl__admin_submit(r, req);
	if (ret < 0)
		return ret;
	c->owed++;
	c->parking = true;
	return 0;
}

void sl__conn_admin_answer(struct sl_reactor *r, struct sl_conn *c, struct sl_admin_req *req)
{
	c->owed--;
	if (req->op == SL_ADMIN_AUTO_CREATE) {
		/* 2xx: the topic is there (made now, or by another producer
		 * meanwhile): the parked frames go to it. */
		sl__conn_unpark(r, c, req->status >= 300);
		return;
	}
	sl__admin_reply(r, c, req->request_id, (uint32_t)req->status,
	                req->answer ? req->answer : "{}");
}
