/*
 * The requests a connection sends, but Produce (produce.c): Hello (the
 * token when the server has `auth`, the session, its producer id and epoch,
 * the first credit windows), Fetch
 * (handed to the reader thread, answered through the reactor), Metadata,
 * and the dispatch of every whole frame by its type (TopicAdmin: admin.c).
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/auth.h"
#include "dedup/dedup.h"
#include "reactor/conn.h"
#include "read/read.h"

ProtobufCMessage *sl__conn_request(struct sl_reactor *r, struct sl_conn *c,
                                   const struct sl_frame *f, const char *what, const char *message)
{
	ProtobufCMessage *m = NULL;

	if (c->state != SL_CONN_READY) {
		sl__conn_fail(r, c, SLUICE__V1__ERROR_CODE__ERR_STATE, "%s before Hello", what);
		return NULL;
	}
	if (sl_frame_decode_msg(f, &m) < 0) {
		sl__conn_fail(r, c, SLUICE__V1__ERROR_CODE__ERR_MALFORMED,
		              "%s: body is not a valid sluice.v1.%s", what, message);
		return NULL;
	}
	return m;
}

static void sl__on_hello(struct sl_reactor *r, struct sl_conn *c, const struct sl_frame *f)
{
	ProtobufCMessage *m = NULL;
	Sluice__V1__Hello *h;

	if (c->state != SL_CONN_HELLO) {
		sl__conn_fail(r, c, SLUICE__V1__ERROR_CODE__ERR_STATE, "Hello sent twice");
		return;
	}
	if (sl_frame_decode_msg(f, &m) < 0) {
		sl__conn_fail(r, c, SLUICE__V1__ERROR_CODE__ERR_MALFORMED,
		              "Hello: body is not a valid sluice.v1.Hello");
		return;
	}
	h = (Sluice__V1__Hello *)m;
	if (h->min_version > SL_PROTO_VERSION || h->max_version < SL_PROTO_VERSION) {
		sl__conn_fail(r, c, SLUICE__V1__ERROR_CODE__ERR_VERSION,
		              "client speaks protocol versions %u..%u, this server speaks %u",
		              h->min_version, h->max_version, SL_PROTO_VERSION);
		sl_frame_msg_free(m);
		return;
	}
	/* Before anything of the session: a client without the token learns
	 * nothing about producers, topics or credits. */
	if (r->env->auth && !sl_auth_check(r->env->auth, h->token, strlen(h->token))) {
		bool none = !*h->token;
		sl_frame_msg_free(m);
		atomic_fetch_add_explicit(&r->m_auth_failures, 1, memory_order_relaxed);
		sl__conn_fail(r, c, SLUICE__V1__ERROR_CODE__ERR_AUTH, "%s",
		              none ? "this server requires a token: set SLUICE_TOKEN or "
		                     "--token-file (auth.token_file of its config)"
		                   : "wrong token");
		return;
	}
	if (h->replica_node[0]) {
		/* A follower node: it fetches, it never produces, so it takes no
		 * producer id and no credits. */
		c->replica_node = strdup(h->replica_node);
		sl_frame_msg_free(m);
		Sluice__V1__Welcome w = SLUICE__V1__WELCOME__INIT;
		w.version = SL_PROTO_VERSION;
		w.max_frame_bytes = r->lim.max_frame_bytes;
		w.server_name = "sluiced";
		if (!c->replica_node ||
		    sl__conn_put_msg(c, SLUICE__V1__FRAME_TYPE__FRAME_WELCOME, &w.base) < 0) {
			sl__conn_fail(r, c, SLUICE__V1__ERROR_CODE__ERR_INTERNAL, "out of memory");
			return;
		}
		c->deadline_ns = sl_now_ns() + (uint64_t)r->lim.idle_timeout_ms * 1000000u;
		c->state = SL_CONN_READY;
		sl__conn_mark_flush(r, c);
		return;
	}
	uint64_t want = h->producer_id, next = 0;
	uint32_t resume = h->resume_epoch;
	c->idempotent = !h->idempotence_off;
	/* A named producer (dedup.h, SL_PRODUCERS_NAMED_BASE): the name is
	 * its only key, so it excludes the numbered ways in, and deduplicates
	 * (a name without sequences tracked would promise nothing). */
	char name[SL_PRODUCER_NAME_MAX + 1];
	size_t name_len = h->producer_name ? strlen(h->producer_name) : 0;
	if (name_len) {
		const char *why = sl_producers_name_ok(h->producer_name, name_len);
		const char *bad = why              ? why
		                  : want           ? "excludes producer_id"
		                  : resume         ? "excludes resume_epoch"
		                  : !c->idempotent ? "needs idempotence"
		                                   : NULL;
		if (bad) {
			sl_frame_msg_free(m);
			sl__conn_fail(r, c, SLUICE__V1__ERROR_CODE__ERR_MALFORMED,
			              "Hello: producer_name %s", bad);
			return;
		}
		memcpy(name, h->producer_name, name_len + 1);
	}
	/* The Hello is freed before the registry is asked: its proof is kept.
	 * One of another length is wrong anyway; the registry refuses it by
	 * its length alone. */
	uint8_t want_proof[SL_PRODUCER_PROOF_LEN] = {0};
	size_t want_proof_len = h->producer_proof.len;
	if (want_proof_len == sizeof(want_proof))
		memcpy(want_proof, h->producer_proof.data, sizeof(want_proof));
	sl_frame_msg_free(m);
	/* A known id gets a new epoch, which fences its older sessions: their
	 * next Produce fails (below, and in every partition this epoch has
	 * written to). Hellos are rare; the registry's mutex is never on the
	 * event path. */
	int ret;
	if (resume) {
		/* A resend of an earlier session's events (wire.proto): only for
		 * a deduplicated producer that names its id. */
		if (!want || !c->idempotent) {
			sl__conn_fail(r, c, SLUICE__V1__ERROR_CODE__ERR_STATE,
			              "Hello: resume_epoch needs producer_id and idempotence");
			return;
		}
		ret = sl_producers_resume(r->env->producers, want, want_proof, want_proof_len,
		                          resume, &c->prod, &next);
		c->epoch = resume;
		c->resume = true;
	} else if (name_len) {
		ret = sl_producers_hello_named(r->env->producers, name, name_len, &c->prod,
		                               &c->epoch, &next);
		if (ret == -EOPNOTSUPP) {
			/* One name would need one sequence space across the leader
			 * nodes a client routes to; each node has its own today. */
			sl__conn_fail(r, c, SLUICE__V1__ERROR_CODE__ERR_STATE,
			              "named producers are not served in cluster mode yet");
			return;
		}
	} else {
		ret = sl_producers_hello(r->env->producers, want, want_proof, want_proof_len,
		                         &c->prod, &c->epoch, &next);
	}
	if (ret == -EINVAL && want >= SL_PRODUCERS_NAMED_BASE && want < SL_PRODUCERS_NAMED_END) {
		sl__conn_fail(r, c, SLUICE__V1__ERROR_CODE__ERR_MALFORMED,
		              "producer %" PRIu64 ": ids from 2^61 to 2^62 belong to named "
		              "producers (Hello.producer_name), not asked for by number",
		              want);
		return;
	}
	if (ret == -EACCES) {
		/* Resuming a known id takes its proof: otherwise any client could
		 * fence any other by naming its id (dedup.h, Proofs). */
		atomic_fetch_add_explicit(&r->m_auth_failures, 1, memory_order_relaxed);
		sl__conn_fail(r, c, SLUICE__V1__ERROR_CODE__ERR_AUTH, "producer %" PRIu64 ": %s",
		              want,
		              want_proof_len ? "the proof is not this id's: it was issued to "
		                               "another client"
		                             : "resuming this id takes the proof its Welcome gave");
		return;
	}
	if (ret < 0) {
		sl__conn_fail(r, c,
		              ret == -ENOSPC ? SLUICE__V1__ERROR_CODE__ERR_LIMIT
		                             : SLUICE__V1__ERROR_CODE__ERR_INTERNAL,
		              "producer %" PRIu64 ": %s", want, sl_strerror(ret));
		return;
	}
	c->producer_id = c->prod->id;
	c->expect = next;
	/* A new id starts at 0, and a producer whose session this process
	 * saw goes on from its sequences. An id the server knows no sequence
	 * of (its data folder was replaced, or the producer brings its own id),
	 * or knows only from its stored events (after a restart: sequences
	 * used up on refused events are not stored), may start further on:
	 * its first frame says where. Seen: a partition moved back to a node
	 * restarted after kill -9 refused the producer's next events as a gap
	 * (the soak's --leader-returns). */
	c->seq_known = !resume && (!want || (next > 0 && sl_producer_seq_exact(c->prod, next)));
	uint64_t welcome_next = next;
	if (name_len) {
		/* A name is new (0) or continues from its sequences, known
		 * exactly or only from its stored events, like a numbered id. */
		c->seq_known = !next || sl_producer_seq_exact(c->prod, next);
		/*
		 * Deviation from "1 + the highest sequence stored": after a
		 * restart of the server (next only seeded), what the logs hold
		 * of a name need not be a prefix of its sequences. A kill -9
		 * while its events were in flight keeps each partition's log
		 * up to its last group commit, and those differ: sequence 900
		 * may be stored on one partition while 850 was lost with
		 * another's tail. A restarted process that skipped to 901
		 * would lose 850 for good. What bounds the loss: libsluice
		 * sends a sequence only within the window of the oldest
		 * unanswered one (client.h, "Window"; credits, 8192, cap it),
		 * and an answer to a stored event comes at durability, so
		 * every sequence below next - SL_PRODUCER_WINDOW was answered
		 * before the crash. So the name resumes that far back: each
		 * resent event that is stored is answered as a duplicate by its
		 * partition's table (which keeps that window), each lost one is
		 * past its partition's last, hence new, and stored. The cost is
		 * up to 8192 duplicates answered once after a server restart.
		 * When the server saw the sequences accepted itself (exact),
		 * every accepted event is stored by the partition it went to
		 * (or refused there: a storage error, the `reject` policy; a
		 * refused sequence is used up, for a name as for any producer),
		 * so next is where the stream goes on.
		 */
		if (!c->seq_known)
			welcome_next = next > SL_PRODUCER_WINDOW ? next - SL_PRODUCER_WINDOW : 0;
	}

	Sluice__V1__Welcome w = SLUICE__V1__WELCOME__INIT;
	w.version = SL_PROTO_VERSION;
	w.producer_id = c->producer_id;
	w.epoch = c->epoch;
	w.next_sequence = welcome_next;
	/* The events window is the one every partition's sequence table
	 * covers (SL_PRODUCER_WINDOW): a producer within its credits can
	 * retry any event it has not seen answered. The byte window is a
	 * share of the pool; none left: the connection waits for a Credit. */
	bool whole = sl_credit_open(r->credits, &c->cr);
	atomic_fetch_add_explicit(&r->m_credit_events, c->cr.cr_events, memory_order_relaxed);
	w.credit_events = (uint32_t)c->cr.cr_events;
	w.credit_bytes = c->cr.win_bytes;
	if (!whole)
		sl__conn_hold(r, c);
	w.max_frame_bytes = r->lim.max_frame_bytes;
	w.server_name = "sluiced";
	uint8_t proof[SL_PRODUCER_PROOF_LEN];
	sl_producers_proof(r->env->producers, c->producer_id, proof);
	w.producer_proof.data = proof;
	w.producer_proof.len = sizeof(proof);
	ret = sl__conn_put_msg(c, SLUICE__V1__FRAME_TYPE__FRAME_WELCOME, &w.base);
	if (ret < 0) {
		sl__conn_fail(r, c, SLUICE__V1__ERROR_CODE__ERR_INTERNAL,
		              ret == -ENOMEM ? "out of memory" : "cannot encode Welcome");
		return;
	}
	/* From now on the idle timeout, not the handshake's, applies. */
	c->deadline_ns = sl_now_ns() + (uint64_t)r->lim.idle_timeout_ms * 1000000u;
	c->state = SL_CONN_READY;
	sl__conn_mark_flush(r, c);
}

/* A FetchResult carrying only an error, answered by the reactor itself. */
static void sl__fetch_refuse(struct sl_reactor *r, struct sl_conn *c, const Sluice__V1__Fetch *fe,
                             uint32_t code, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static void sl__fetch_refuse(struct sl_reactor *r, struct sl_conn *c, const Sluice__V1__Fetch *fe,
                             uint32_t code, const char *fmt, ...)
{
	char msg[256];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	Sluice__V1__FetchResult res = SLUICE__V1__FETCH_RESULT__INIT;
	res.request_id = fe->request_id;
	res.topic = fe->topic;
	res.partition = fe->partition;
	res.base_offset = fe->offset;
	res.error = (Sluice__V1__ErrorCode)code;
	res.message = msg;
	if (sl__conn_put_msg(c, SLUICE__V1__FRAME_TYPE__FRAME_FETCH_RESULT, &res.base) < 0)
		sl__conn_fail(r, c, SLUICE__V1__ERROR_CODE__ERR_INTERNAL, "out of memory");
	sl__conn_mark_flush(r, c);
}

/* Hands a Fetch or ReplicaFetch to the reader: 0 (the connection owes its
 * answer now), or the code the caller refuses it with, *why its text (req
 * freed). */
static uint32_t sl__to_reader(struct sl_reactor *r, struct sl_conn *c, struct sl_fetch_req *req,
                              const char **why)
{
	if (r->stopping || sl_reader_submit(r->env->reader, req) < 0) {
		free(req);
		*why = r->stopping ? "server is shutting down" : "too many fetches in flight";
		return r->stopping ? SLUICE__V1__ERROR_CODE__ERR_DRAINING
		                   : SLUICE__V1__ERROR_CODE__ERR_OVERLOAD;
	}
	c->owed++;
	return 0;
}

/* Longest a Fetch may wait for new data. */
#define SL_FETCH_MAX_WAIT_MS 30000

static void sl__on_fetch(struct sl_reactor *r, struct sl_conn *c, const struct sl_frame *f)
{
	ProtobufCMessage *m = sl__conn_request(r, c, f, "Fetch", "Fetch");
	if (!m)
		return;
	Sluice__V1__Fetch *fe = (Sluice__V1__Fetch *)m;
	struct sl_topic *t = sl_topics_find(r->topics, fe->topic, strlen(fe->topic));
	if (!t) {
		sl__fetch_refuse(r, c, fe, SLUICE__V1__ERROR_CODE__ERR_UNKNOWN_TOPIC,
		                 "unknown topic '%s'", fe->topic);
		goto out;
	}
	if (fe->partition >= t->n_parts) {
		sl__fetch_refuse(r, c, fe, SLUICE__V1__ERROR_CODE__ERR_UNKNOWN_TOPIC,
		                 "topic '%s' has partitions 0..%u, not %u", fe->topic,
		                 t->n_parts - 1, fe->partition);
		goto out;
	}
	struct sl_fetch_req *req = calloc(1, sizeof(*req));
	if (!req) {
		sl__fetch_refuse(r, c, fe, SLUICE__V1__ERROR_CODE__ERR_INTERNAL, "out of memory");
		goto out;
	}
	uint32_t wait = fe->wait_ms < SL_FETCH_MAX_WAIT_MS ? fe->wait_ms : SL_FETCH_MAX_WAIT_MS;
	*req = (struct sl_fetch_req){
	    .conn = c->slot,
	    .gen = c->gen,
	    .reactor = r->id,
	    .topic = t->index,
	    .partition = fe->partition,
	    .offset = fe->offset,
	    .max_events = fe->max_events,
	    .max_bytes = fe->max_bytes,
	    .request_id = fe->request_id,
	    .deadline_ns = sl_now_ns() + (uint64_t)wait * 1000000u,
	    .from_time_ms = fe->from_time_ms,
	};
	const char *why;
	uint32_t code = sl__to_reader(r, c, req, &why);
	if (code)
		sl__fetch_refuse(r, c, fe, code, "%s", why);
out:
	sl_frame_msg_free(m);
}

/* A ReplicaData carrying only an error, answered by the reactor itself. */
static void sl__replica_refuse(struct sl_reactor *r, struct sl_conn *c,
                               const Sluice__V1__ReplicaFetch *rf, uint32_t code, const char *msg)
{
	Sluice__V1__ReplicaData d = SLUICE__V1__REPLICA_DATA__INIT;
	d.request_id = rf->request_id;
	d.topic = rf->topic;
	d.partition = rf->partition;
	d.base_offset = rf->offset;
	d.error = (Sluice__V1__ErrorCode)code;
	d.message = (char *)msg;
	if (sl__conn_put_msg(c, SLUICE__V1__FRAME_TYPE__FRAME_REPLICA_DATA, &d.base) < 0)
		sl__conn_fail(r, c, SLUICE__V1__ERROR_CODE__ERR_INTERNAL, "out of memory");
	sl__conn_mark_flush(r, c);
}

/* A follower node's fetch: to the reader, like a Fetch (read.h). */
static void sl__on_replica_fetch(struct sl_reactor *r, struct sl_conn *c, const struct sl_frame *f)
{
	ProtobufCMessage *m = sl__conn_request(r, c, f, "ReplicaFetch", "ReplicaFetch");
	if (!m)
		return;
	Sluice__V1__ReplicaFetch *rf = (Sluice__V1__ReplicaFetch *)m;
	if (!c->replica_node) {
		sl__conn_fail(r, c, SLUICE__V1__ERROR_CODE__ERR_STATE,
		              "ReplicaFetch from a session that is not a cluster node's");
		goto out;
	}
	struct sl_topic *t = sl_topics_find(r->topics, rf->topic, strlen(rf->topic));
	if (!t || rf->partition >= t->n_parts) {
		sl__replica_refuse(r, c, rf, SLUICE__V1__ERROR_CODE__ERR_UNKNOWN_TOPIC,
		                   "unknown topic or partition");
		goto out;
	}
	struct sl_fetch_req *req = calloc(1, sizeof(*req));
	if (!req) {
		sl__replica_refuse(r, c, rf, SLUICE__V1__ERROR_CODE__ERR_INTERNAL, "out of memory");
		goto out;
	}
	uint32_t wait = rf->wait_ms < SL_FETCH_MAX_WAIT_MS ? rf->wait_ms : SL_FETCH_MAX_WAIT_MS;
	*req = (struct sl_fetch_req){
	    .conn = c->slot,
	    .gen = c->gen,
	    .reactor = r->id,
	    .topic = t->index,
	    .partition = rf->partition,
	    .offset = rf->offset,
	    .max_bytes = rf->max_bytes,
	    .request_id = rf->request_id,
	    .deadline_ns = sl_now_ns() + (uint64_t)wait * 1000000u,
	    .replica = true,
	    .epoch = rf->leader_epoch,
	    .last_epoch = rf->last_epoch,
	    .durable = rf->durable,
	};
	snprintf(req->node, sizeof(req->node), "%s", c->replica_node);
	const char *why;
	uint32_t code = sl__to_reader(r, c, req, &why);
	if (code)
		sl__replica_refuse(r, c, rf, code, why);
out:
	sl_frame_msg_free(m);
}

static void sl__on_metadata(struct sl_reactor *r, struct sl_conn *c, const struct sl_frame *f)
{
	const struct sl_topics *ts = r->topics;
	ProtobufCMessage *m = sl__conn_request(r, c, f, "Metadata", "MetadataRequest");
	if (!m)
		return;
	Sluice__V1__MetadataRequest *q = (Sluice__V1__MetadataRequest *)m;
	Sluice__V1__Metadata md = SLUICE__V1__METADATA__INIT;
	md.request_id = q->request_id;
	/* Cold path: one answer per `sluice consume` or `status`; plain
	 * allocations are fine here. */
	/* Topics created at runtime may appear meanwhile: one count for all. */
	uint32_t n_topics = atomic_load(&ts->n);
	Sluice__V1__TopicInfo *tinfo = calloc(n_topics ? n_topics : 1, sizeof(*tinfo));
	Sluice__V1__TopicInfo **tptr = calloc(n_topics ? n_topics : 1, sizeof(*tptr));
	uint32_t total = 0;
	for (uint32_t i = 0; i < n_topics; i++)
		total += ts->v[i].n_parts;
	Sluice__V1__PartitionInfo *pinfo = calloc(total ? total : 1, sizeof(*pinfo));
	Sluice__V1__PartitionInfo **pptr = calloc(total ? total : 1, sizeof(*pptr));
	/* Cluster mode: each partition's leader as this node knows it. */
	char(*leaders)[2][256] = calloc(total ? total : 1, sizeof(*leaders));
	if (!tinfo || !tptr || !pinfo || !pptr || !leaders) {
		sl__conn_fail(r, c, SLUICE__V1__ERROR_CODE__ERR_INTERNAL, "out of memory");
		goto out;
	}
	uint32_t k = 0;
	for (uint32_t i = 0; i < n_topics; i++) {
		const struct sl_topic *t = &ts->v[i];
		if ((q->topic[0] && strcmp(q->topic, t->name) != 0) || atomic_load(&t->deleted))
			continue;
		Sluice__V1__TopicInfo *ti = &tinfo[md.n_topics];
		sluice__v1__topic_info__init(ti);
		ti->name = t->name;
		ti->partitions = &pptr[k];
		for (uint32_t p = 0; p < t->n_parts; p++, k++) {
			struct sl_partition *part = &t->parts[p];
			sluice__v1__partition_info__init(&pinfo[k]);
			pinfo[k].partition = p;
			pinfo[k].start_offset =
			    atomic_load_explicit(&part->start_pub, memory_order_relaxed);
			pinfo[k].end_offset =
			    atomic_load_explicit(&part->durable_pub, memory_order_acquire);
			if (part->repl) {
				struct sl_prepl *rp = part->repl;
				pthread_mutex_lock(&rp->mu);
				snprintf(leaders[k][0], sizeof(leaders[k][0]), "%s", rp->leader);
				snprintf(leaders[k][1], sizeof(leaders[k][1]), "%s",
				         rp->leader_native);
				pthread_mutex_unlock(&rp->mu);
				/* A leader knows its own address from the node list
				 * only through its followers' view: say it here. */
				pinfo[k].leader = leaders[k][0];
				pinfo[k].leader_native = leaders[k][1];
				pinfo[k].leader_epoch = atomic_load(&rp->epoch);
			}
			pptr[k] = &pinfo[k];
			ti->n_partitions++;
		}
		tptr[md.n_topics++] = ti;
	}
	md.topics = tptr;
	if (q->topic[0] && !md.n_topics) {
		md.error = SLUICE__V1__ERROR_CODE__ERR_UNKNOWN_TOPIC;
		md.message = "unknown topic";
	}
	if (sl__conn_put_msg(c, SLUICE__V1__FRAME_TYPE__FRAME_METADATA_RESULT, &md.base) < 0)
		sl__conn_fail(r, c, SLUICE__V1__ERROR_CODE__ERR_INTERNAL, "out of memory");
	sl__conn_mark_flush(r, c);
out:
	free(tinfo);
	free(tptr);
	free(pinfo);
	free(pptr);
	free(leaders);
	sl_frame_msg_free(m);
}

void sl__conns_take_fetches(struct sl_reactor *r)
{
	struct sl_fetch_req *req;
	while ((req = sl_reader_take(r->env->reader, r->id))) {
		struct sl_conn *c = req->conn < r->conn_cap ? r->conns[req->conn] : NULL;
		if (c && c->gen == req->gen) {
			c->owed--;
			struct sl_buf *b = &c->out[c->sending ^ 1];
			if (!req->frame || sl__buf_reserve(b, req->frame_len) < 0) {
				sl__conn_fail(r, c, SLUICE__V1__ERROR_CODE__ERR_INTERNAL,
				              "out of memory answering a Fetch");
			} else {
				memcpy(b->p + b->len, req->frame, req->frame_len);
				b->len += req->frame_len;
				sl__conn_mark_flush(r, c);
			}
		}
		free(req->frame);
		free(req);
	}
}

void sl__conn_on_frame(struct sl_reactor *r, struct sl_conn *c, const struct sl_frame *f)
{
	switch (f->type) {
	case SLUICE__V1__FRAME_TYPE__FRAME_PRODUCE:
		sl__on_produce(r, c, f);
		break;
	case SLUICE__V1__FRAME_TYPE__FRAME_HELLO:
		sl__on_hello(r, c, f);
		break;
	case SLUICE__V1__FRAME_TYPE__FRAME_FETCH:
		sl__on_fetch(r, c, f);
		break;
	case SLUICE__V1__FRAME_TYPE__FRAME_METADATA:
		sl__on_metadata(r, c, f);
		break;
	case SLUICE__V1__FRAME_TYPE__FRAME_REPLICA_FETCH:
		sl__on_replica_fetch(r, c, f);
		break;
	case SLUICE__V1__FRAME_TYPE__FRAME_TOPIC_ADMIN:
		sl__on_topic_admin(r, c, f);
		break;
	case SLUICE__V1__FRAME_TYPE__FRAME_COMMIT:
		sl__on_commit(r, c, f);
		break;
	case SLUICE__V1__FRAME_TYPE__FRAME_GROUP_HEARTBEAT:
		sl__on_group_heartbeat(r, c, f);
		break;
	default:
		if (sl_frame_type_check(f->type) < 0)
			sl__conn_fail(r, c, SLUICE__V1__ERROR_CODE__ERR_UNKNOWN_TYPE,
			              "unknown frame type %u", f->type);
		else
			sl__conn_fail(r, c, SLUICE__V1__ERROR_CODE__ERR_STATE,
			              "%s is a server-to-client message",
			              sl_frame_type_name(f->type));
		break;
	}
}
