/*
 * The admin thread: topic admin asked on the native port (TopicAdmin) and
 * topics made by a first produce (`auto_create_topics`), done off the
 * reactors. A reactor must not wait for them: a create writes folders and
 * the registry with fsyncs, then has every reactor adopt the topic, which
 * the asking reactor itself must do between its turns.
 *
 * Requests come from the reactors (sl__admin_submit_req, env->admin) into
 * a queue under admin.mu; the thread runs the same calls as the HTTP routes
 * (server/topics.c, serialized there) and hands each request back to its
 * reactor with the answer (sl_reactor_admin_done). Queued requests left at
 * stop are answered 503. In cluster mode it also brings this node's runtime
 * topics in line with the cluster's (sl__admin_sync, sl__topics_sync).
 *
 * Threads: submit from reactors; the thread; init/start/stop from the
 * control thread.
 */
#include <errno.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "group/group.h"
#include "reactor/reactor.h"
#include "server/server.h"

/* Requests queued at most: each is a parked connection or an admin call,
 * a few hundred bytes; past it a request is refused (retryable). */
#define SL__ADMIN_QUEUE_MAX 65536u

static const char sl__stopping[] =
    "{\"error\":\"stopping\",\"message\":\"the server is stopping\"}";

int sl__admin_submit_req(void *arg, struct sl_admin_req *req)
{
	struct sl_server *srv = arg;
	int ret = -EAGAIN;

	pthread_mutex_lock(&srv->admin.mu);
	if (srv->admin.started && !srv->admin.stop && srv->admin.n < SL__ADMIN_QUEUE_MAX) {
		req->next = NULL;
		if (srv->admin.tail)
			srv->admin.tail->next = req;
		else
			srv->admin.head = req;
		srv->admin.tail = req;
		srv->admin.n++;
		pthread_cond_signal(&srv->admin.cv);
		ret = 0;
	}
	pthread_mutex_unlock(&srv->admin.mu);
	return ret;
}

void sl__admin_sync(struct sl_server *srv)
{
	pthread_mutex_lock(&srv->admin.mu);
	if (srv->admin.started && !srv->admin.stop && !srv->admin.sync) {
		srv->admin.sync = true;
		pthread_cond_signal(&srv->admin.cv);
	}
	pthread_mutex_unlock(&srv->admin.mu);
}

/* A produce named a topic that does not exist: made with the defaults of
 * `sluice topic create NAME`. 201 when the topic exists afterwards (made
 * here or by someone else meanwhile), else the create's refusal. */
static int sl__auto_create(struct sl_server *srv, struct sl_admin_req *req, char **body,
                           size_t *blen)
{
	struct json_object *o = json_object_new_object();
	if (!o)
		return 500;
	json_object_object_add(o, "name",
	                       json_object_new_string_len(req->name, (int)req->name_len));
	bool offsets = req->name_len == sizeof(SL_GROUP_TOPIC) - 1 &&
	               !memcmp(req->name, SL_GROUP_TOPIC, req->name_len);
	if (offsets) {
		/* The consumer groups' offsets (a first heartbeat asks): no id
		 * window (records carry no ids), kept whole: a group's offsets
		 * must outlive any age (compaction keeps them small). */
		struct json_object *set = json_object_new_object();
		json_object_object_add(o, "partitions", json_object_new_int(SL_GROUP_TOPIC_PARTS));
		json_object_object_add(set, "dedup_window", json_object_new_string("0"));
		json_object_object_add(set, "retention.bytes", json_object_new_string("0"));
		json_object_object_add(set, "retention.age", json_object_new_string("0"));
		json_object_object_add(o, "settings", set);
	}
	const char *js = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN);
	int status = sl__topic_create(srv, js, strlen(js), NULL, 0, offsets, body, blen);
	json_object_put(o);
	if (status == 201) {
		fprintf(stderr, "sluiced: topic %.*s created by its first %s\n", (int)req->name_len,
		        req->name, offsets ? "consumer group" : "produce");
		return status;
	}
	if (sl_topics_find(&srv->topics, req->name, req->name_len))
		return 201;
	fprintf(stderr, "sluiced: topic %.*s not created for a produce (%d): %.*s\n",
	        (int)req->name_len, req->name, status, (int)(*body ? *blen : 0),
	        *body ? *body : "");
	return status;
}

static void sl__admin_do(struct sl_server *srv, struct sl_admin_req *req)
{
	char *body = NULL;
	size_t blen = 0;
	int status;

	switch (req->op) {
	case SL_ADMIN_LIST:
		status = sl_server_topic_list(srv, &body, &blen);
		break;
	case SL_ADMIN_DESCRIBE:
		status = sl_server_topic_describe(srv, req->name, req->name_len, &body, &blen);
		break;
	case SL_ADMIN_CREATE:
		status = sl_server_topic_create(srv, req->body, req->body_len, &body, &blen);
		break;
	case SL_ADMIN_ALTER:
		status = sl_server_topic_alter(srv, req->name, req->name_len, req->body,
		                               req->body_len, &body, &blen);
		break;
	case SL_ADMIN_DELETE:
		status = sl_server_topic_delete(srv, req->name, req->name_len, &body, &blen);
		break;
	case SL_ADMIN_AUTO_CREATE:
		status = sl__auto_create(srv, req, &body, &blen);
		break;
	default:
		status = 400;
		break;
	}
	req->status = status;
	req->answer = body;
	req->answer_len = blen;
}

static void *sl__admin_main(void *arg)
{
	struct sl_server *srv = arg;

	pthread_mutex_lock(&srv->admin.mu);
	for (;;) {
		while (!srv->admin.head && !srv->admin.stop && !srv->admin.sync)
			pthread_cond_wait(&srv->admin.cv, &srv->admin.mu);
		if (srv->admin.sync && !srv->admin.stop) {
			/* Requests coalesce: one pass sees the cluster's set as it
			 * is by then. */
			srv->admin.sync = false;
			pthread_mutex_unlock(&srv->admin.mu);
			sl__topics_sync(srv);
			pthread_mutex_lock(&srv->admin.mu);
			continue;
		}
		struct sl_admin_req *req = srv->admin.head;
		if (!req)
			break;
		srv->admin.head = req->next;
		if (!srv->admin.head)
			srv->admin.tail = NULL;
		srv->admin.n--;
		bool stop = srv->admin.stop;
		pthread_mutex_unlock(&srv->admin.mu);
		if (stop) {
			req->status = 503;
			req->answer = strdup(sl__stopping);
			req->answer_len = req->answer ? strlen(req->answer) : 0;
		} else {
			sl__admin_do(srv, req);
		}
		sl_reactor_admin_done(srv->reactors[req->reactor], req);
		pthread_mutex_lock(&srv->admin.mu);
	}
	pthread_mutex_unlock(&srv->admin.mu);
	return NULL;
}

int sl__admin_init(struct sl_server *srv)
{
	int ret = pthread_mutex_init(&srv->admin.mu, NULL);
	if (ret)
		return -ret;
	ret = pthread_cond_init(&srv->admin.cv, NULL);
	if (ret) {
		pthread_mutex_destroy(&srv->admin.mu);
		return -ret;
	}
	srv->admin.inited = true;
	return 0;
}

int sl__admin_start(struct sl_server *srv)
{
	pthread_mutex_lock(&srv->admin.mu);
	int ret = pthread_create(&srv->admin.th, NULL, sl__admin_main, srv);
	srv->admin.started = ret == 0;
	pthread_mutex_unlock(&srv->admin.mu);
	return -ret;
}

void sl__admin_stop(struct sl_server *srv)
{
	if (!srv->admin.inited)
		return;
	pthread_mutex_lock(&srv->admin.mu);
	bool started = srv->admin.started;
	srv->admin.stop = true;
	srv->admin.started = false;
	pthread_cond_signal(&srv->admin.cv);
	pthread_mutex_unlock(&srv->admin.mu);
	if (started)
		pthread_join(srv->admin.th, NULL);
	pthread_mutex_destroy(&srv->admin.mu);
	pthread_cond_destroy(&srv->admin.cv);
	srv->admin.inited = false;
}
