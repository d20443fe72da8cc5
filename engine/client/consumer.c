/*
 * The consumer side of libsluice: a blocking connection that asks for
 * metadata and fetches events. Control messages go through protobuf-c; a
 * FetchResult is scanned in place (sl_fetch_result_scan), so its events are
 * handed to the caller without being decoded or copied.
 */
#include "sluice/consumer.h"

#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/base.h"
#include "client/client_impl.h"
#include "net/net.h"
#include "proto/proto.h"

/* Frames a consumer accepts: a FetchResult holds at most 4 MiB of events
 * (the server's cap) plus framing. */
#define SL_CONSUMER_MAX_FRAME (64u << 20)

struct sl_consumer {
	int fd;
	uint32_t timeout_ms;
	uint64_t next_request;
	uint8_t *buf;
	size_t cap;
	char error[512];
	uint64_t log_start; /* the last ERR_OFFSET_OUT_OF_RANGE's log_start_offset */
};

static int sl__fail(struct sl_consumer *c, int ret, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int sl__fail(struct sl_consumer *c, int ret, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(c->error, sizeof(c->error), fmt, ap);
	va_end(ap);
	return ret;
}

/* Waits until fd is ready for `events` or the deadline passes. */
static int sl__wait(struct sl_consumer *c, short events, uint64_t deadline_ns)
{
	for (;;) {
		uint64_t now = sl_now_ns();
		if (now >= deadline_ns)
			return -SL_ETIMEOUT;
		struct pollfd p = {.fd = c->fd, .events = events};
		int ms = (int)((deadline_ns - now + 999999) / 1000000);
		int n = poll(&p, 1, ms);
		if (n > 0)
			return 0;
		if (n < 0 && errno != EINTR)
			return -errno;
	}
}

static int sl__send(struct sl_consumer *c, const uint8_t *p, size_t len, uint64_t deadline_ns)
{
	while (len) {
		ssize_t n = send(c->fd, p, len, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n > 0) {
			p += n;
			len -= (size_t)n;
			continue;
		}
		if (n < 0 && errno != EAGAIN && errno != EINTR)
			return sl__fail(c, -errno, "send: %s", strerror(errno));
		int ret = sl__wait(c, POLLOUT, deadline_ns);
		if (ret < 0)
			return sl__fail(c, ret, "send: %s", sl_strerror(ret));
	}
	return 0;
}

static int sl__recv(struct sl_consumer *c, uint8_t *p, size_t len, uint64_t deadline_ns)
{
	while (len) {
		ssize_t n = recv(c->fd, p, len, MSG_DONTWAIT);
		if (n > 0) {
			p += n;
			len -= (size_t)n;
			continue;
		}
		if (n == 0)
			return sl__fail(c, -ECONNRESET, "the server closed the connection");
		if (errno != EAGAIN && errno != EINTR)
			return sl__fail(c, -errno, "recv: %s", strerror(errno));
		int ret = sl__wait(c, POLLIN, deadline_ns);
		if (ret < 0)
			return sl__fail(c, ret, "waiting for the server: %s", sl_strerror(ret));
	}
	return 0;
}

static int sl__send_msg(struct sl_consumer *c, uint8_t type, const ProtobufCMessage *m,
                        uint64_t deadline_ns)
{
	uint8_t small[1024], *p = small;
	size_t need = sl_frame_msg_size(m);
	/* Control requests fit the stack; a topic admin body may not. */
	if (need > sizeof(small) && !(p = malloc(need)))
		return sl__fail(c, -ENOMEM, "out of memory");
	int n = sl_frame_encode_msg(type, m, p, need > sizeof(small) ? need : sizeof(small));
	int ret = n < 0 ? sl__fail(c, n, "cannot encode request: %s", sl_strerror(n))
	                : sl__send(c, p, (size_t)n, deadline_ns);
	if (p != small)
		free(p);
	return ret;
}

/*
 * Reads the next frame into c->buf. An Error frame becomes a failure with
 * the server's text; other frames come back as (type, body, len).
 */
static int sl__read_frame(struct sl_consumer *c, uint64_t deadline_ns, struct sl_frame *f)
{
	uint8_t hdr[SL_FRAME_HDR_LEN];
	int ret = sl__recv(c, hdr, sizeof(hdr), deadline_ns);
	if (ret < 0)
		return ret;
	ret = sl_frame_parse(hdr, sizeof(hdr), SL_CONSUMER_MAX_FRAME, f);
	if (ret < 0)
		return sl__fail(c, ret, "bad frame from the server: %s", sl_strerror(ret));
	size_t body = f->need - SL_FRAME_HDR_LEN;
	if (c->cap < f->need) {
		uint8_t *p = realloc(c->buf, f->need);
		if (!p)
			return sl__fail(c, -ENOMEM, "out of memory");
		c->buf = p;
		c->cap = f->need;
	}
	memcpy(c->buf, hdr, sizeof(hdr));
	ret = sl__recv(c, c->buf + SL_FRAME_HDR_LEN, body, deadline_ns);
	if (ret < 0)
		return ret;
	ret = sl_frame_parse(c->buf, f->need, SL_CONSUMER_MAX_FRAME, f);
	if (ret < 0)
		return sl__fail(c, ret, "bad frame from the server: %s", sl_strerror(ret));
	if (f->type == SLUICE__V1__FRAME_TYPE__FRAME_ERROR) {
		ProtobufCMessage *m = NULL;
		if (sl_frame_decode_msg(f, &m) < 0)
			return sl__fail(c, -SL_EPROTO_DECODE,
			                "the server sent an unreadable Error");
		Sluice__V1__Error *e = (Sluice__V1__Error *)m;
		/* A refused token is told apart: a producer's connect reports it
		 * as such (and does not knock again). */
		ret = e->code == SLUICE__V1__ERROR_CODE__ERR_AUTH ? -EACCES : -ECONNRESET;
		sl__fail(c, ret, "server: %s", e->message);
		sl_frame_msg_free(m);
		return ret;
	}
	return 0;
}

static uint64_t sl__deadline(const struct sl_consumer *c, uint32_t extra_ms)
{
	return sl_now_ns() + ((uint64_t)c->timeout_ms + extra_ms) * 1000000u;
}

int sl_consumer_connect(const struct sl_consumer_opts *opts, struct sl_consumer **out, char *err,
                        size_t errlen)
{
	struct sl_consumer *c = calloc(1, sizeof(*c));
	struct sl_addr addr;
	char hp[300];
	int ret;

	if (!c)
		return -ENOMEM;
	c->fd = -1;
	c->timeout_ms = opts->timeout_ms ? opts->timeout_ms : 10000;
	snprintf(hp, sizeof(hp), strchr(opts->host, ':') ? "[%s]:%u" : "%s:%u", opts->host,
	         opts->port);
	ret = sl_net_parse_addr(hp, &addr);
	if (ret < 0) {
		sl__fail(c, ret, "bad server address %s", hp);
		goto fail;
	}
	c->fd = socket(addr.ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (c->fd < 0 || connect(c->fd, (struct sockaddr *)&addr.ss, addr.len) < 0) {
		ret = sl__fail(c, -errno, "cannot connect to %s: %s", hp, strerror(errno));
		goto fail;
	}
	uint64_t deadline = sl__deadline(c, 0);
	Sluice__V1__Hello h = SLUICE__V1__HELLO__INIT;
	h.min_version = SL_PROTO_VERSION;
	h.max_version = SL_PROTO_VERSION;
	h.client_name = (char *)(opts->client_name ? opts->client_name : "sluice-consumer");
	h.token = (char *)sl__client_token(opts->token);
	ret = sl__send_msg(c, SLUICE__V1__FRAME_TYPE__FRAME_HELLO, &h.base, deadline);
	if (ret < 0)
		goto fail;
	struct sl_frame f;
	ret = sl__read_frame(c, deadline, &f);
	if (ret < 0)
		goto fail;
	if (f.type != SLUICE__V1__FRAME_TYPE__FRAME_WELCOME) {
		ret = sl__fail(c, -SL_EPROTO_STATE, "expected Welcome from %s, got %s", hp,
		               sl_frame_type_name(f.type));
		goto fail;
	}
	*out = c;
	return 0;
fail:
	snprintf(err, errlen, "%s", c->error);
	sl_consumer_close(c);
	return ret;
}

void sl_consumer_close(struct sl_consumer *c)
{
	if (!c)
		return;
	if (c->fd >= 0)
		close(c->fd);
	free(c->buf);
	free(c);
}

const char *sl_consumer_last_error(const struct sl_consumer *c)
{
	return c->error;
}

/* One Metadata round trip; *md is the decoded answer (sl_frame_msg_free). */
int sl__consumer_metadata(struct sl_consumer *c, const char *topic, Sluice__V1__Metadata **md)
{
	uint64_t deadline = sl__deadline(c, 0);
	Sluice__V1__MetadataRequest q = SLUICE__V1__METADATA_REQUEST__INIT;
	ProtobufCMessage *m = NULL;
	struct sl_frame f;
	int ret;

	q.topic = (char *)(topic ? topic : "");
	q.request_id = ++c->next_request;
	ret = sl__send_msg(c, SLUICE__V1__FRAME_TYPE__FRAME_METADATA, &q.base, deadline);
	if (ret < 0)
		return ret;
	ret = sl__read_frame(c, deadline, &f);
	if (ret < 0)
		return ret;
	if (f.type != SLUICE__V1__FRAME_TYPE__FRAME_METADATA_RESULT ||
	    sl_frame_decode_msg(&f, &m) < 0)
		return sl__fail(c, -SL_EPROTO_DECODE, "expected Metadata, got %s",
		                sl_frame_type_name(f.type));
	*md = (Sluice__V1__Metadata *)m;
	return 0;
}

static int sl__copy_partitions(struct sl_consumer *c, const Sluice__V1__TopicInfo *t,
                               struct sl_partition_info **out, size_t *n)
{
	*out = calloc(t->n_partitions ? t->n_partitions : 1, sizeof(**out));
	if (!*out)
		return sl__fail(c, -ENOMEM, "out of memory");
	for (size_t i = 0; i < t->n_partitions; i++)
		(*out)[i] = (struct sl_partition_info){
		    .partition = t->partitions[i]->partition,
		    .start_offset = t->partitions[i]->start_offset,
		    .end_offset = t->partitions[i]->end_offset,
		};
	*n = t->n_partitions;
	return 0;
}

int sl_consumer_partitions(struct sl_consumer *c, const char *topic, struct sl_partition_info **out,
                           size_t *n)
{
	Sluice__V1__Metadata *md;
	int ret;

	*out = NULL;
	*n = 0;
	ret = sl__consumer_metadata(c, topic, &md);
	if (ret < 0)
		return ret;
	if (md->error || md->n_topics == 0)
		ret = sl__fail(c, -SL_ENOTOPIC, "unknown topic '%s'", topic);
	else
		ret = sl__copy_partitions(c, md->topics[0], out, n);
	sl_frame_msg_free(&md->base);
	return ret;
}

int sl_consumer_topics(struct sl_consumer *c, struct sl_topic_info **out, size_t *n)
{
	Sluice__V1__Metadata *md;
	int ret;

	*out = NULL;
	*n = 0;
	ret = sl__consumer_metadata(c, NULL, &md);
	if (ret < 0)
		return ret;
	*out = calloc(md->n_topics ? md->n_topics : 1, sizeof(**out));
	if (!*out) {
		ret = sl__fail(c, -ENOMEM, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < md->n_topics; i++) {
		(*out)[i].name = strdup(md->topics[i]->name);
		*n = i + 1;
		if (!(*out)[i].name) {
			ret = sl__fail(c, -ENOMEM, "out of memory");
			goto out;
		}
		ret = sl__copy_partitions(c, md->topics[i], &(*out)[i].partitions,
		                          &(*out)[i].n_partitions);
		if (ret < 0)
			goto out;
	}
out:
	if (ret < 0) {
		sl_consumer_topics_free(*out, *n);
		*out = NULL;
		*n = 0;
	}
	sl_frame_msg_free(&md->base);
	return ret;
}

void sl_consumer_topics_free(struct sl_topic_info *topics, size_t n)
{
	for (size_t i = 0; topics && i < n; i++) {
		free(topics[i].name);
		free(topics[i].partitions);
	}
	free(topics);
}

/* One Fetch (from_time_ms 0: by offset alone); *base: the answer's
 * base_offset. */
static int sl__fetch(struct sl_consumer *c, const char *topic, uint32_t partition, uint64_t offset,
                     int64_t from_time_ms, uint32_t max_events, uint32_t max_bytes,
                     uint32_t wait_ms, sl_consumer_fn fn, void *arg, uint64_t *next, uint64_t *end,
                     uint64_t *base)
{
	uint64_t deadline = sl__deadline(c, wait_ms);
	Sluice__V1__Fetch q = SLUICE__V1__FETCH__INIT;
	struct sl_fetch_result fr;
	struct sl_proto_error perr;
	struct sl_frame f;
	int ret;

	*next = offset;
	q.topic = (char *)topic;
	q.partition = partition;
	q.offset = offset;
	q.max_events = max_events;
	q.max_bytes = max_bytes;
	q.wait_ms = wait_ms;
	q.from_time_ms = from_time_ms;
	q.request_id = ++c->next_request;
	ret = sl__send_msg(c, SLUICE__V1__FRAME_TYPE__FRAME_FETCH, &q.base, deadline);
	if (ret < 0)
		return ret;
	ret = sl__read_frame(c, deadline, &f);
	if (ret < 0)
		return ret;
	if (f.type != SLUICE__V1__FRAME_TYPE__FRAME_FETCH_RESULT)
		return sl__fail(c, -SL_EPROTO_STATE, "expected FetchResult, got %s",
		                sl_frame_type_name(f.type));
	if (sl_fetch_result_scan(f.body, f.body_len, &fr, &perr) < 0)
		return sl__fail(c, -SL_EPROTO_DECODE, "bad FetchResult: %s", perr.reason);
	if (fr.request_id != q.request_id)
		return sl__fail(c, -SL_EPROTO_STATE, "answer to request %llu, expected %llu",
		                (unsigned long long)fr.request_id,
		                (unsigned long long)q.request_id);
	*end = fr.end_offset;
	*base = fr.base_offset;
	if (fr.error) {
		ret = fr.error == SLUICE__V1__ERROR_CODE__ERR_UNKNOWN_TOPIC ? -SL_ENOTOPIC
		      : fr.error == SLUICE__V1__ERROR_CODE__ERR_STORAGE     ? -SL_ECORRUPT
		      : fr.error == SLUICE__V1__ERROR_CODE__ERR_OFFSET_OUT_OF_RANGE
		          ? -SL_EOUT_OF_RANGE
		          : -SL_EPROTO_STATE;
		if (ret == -SL_EOUT_OF_RANGE)
			c->log_start = fr.log_start_offset;
		return sl__fail(c, ret, "server: %.*s", (int)fr.message_len, fr.message);
	}
	struct sl_event_iter it;
	struct sl_times_iter tt;
	struct sl_event_view ev;
	int visited = 0;
	sl_fetch_result_iter_init(&fr, &it);
	sl_fetch_result_times_init(&fr, &tt);
	while (sl_event_iter_next(&it, &ev) > 0) {
		int64_t t = 0;
		if (sl_fetch_result_times_next(&tt, &t) < 0)
			t = 0;
		struct sl_fetched e = {
		    .partition = partition,
		    .offset = fr.base_offset + (uint64_t)visited,
		    .append_time_ms = t,
		    .event = ev.raw,
		    .len = ev.raw_len,
		};
		visited++;
		*next = e.offset + 1;
		if (fn(arg, &e))
			break;
	}
	return visited;
}

int sl_consumer_topic_admin(struct sl_consumer *c, enum sl_topic_op op, const char *name,
                            const char *body, uint32_t timeout_ms, int *status, char **answer)
{
	uint64_t deadline =
	    sl_now_ns() + (uint64_t)(timeout_ms ? timeout_ms : c->timeout_ms) * 1000000u;
	Sluice__V1__TopicAdmin q = SLUICE__V1__TOPIC_ADMIN__INIT;
	ProtobufCMessage *m = NULL;
	struct sl_frame f;
	int ret;

	*status = 0;
	*answer = NULL;
	q.request_id = ++c->next_request;
	q.op = (Sluice__V1__TopicOp)op;
	q.name = (char *)(name ? name : "");
	q.body = (char *)(body ? body : "");
	ret = sl__send_msg(c, SLUICE__V1__FRAME_TYPE__FRAME_TOPIC_ADMIN, &q.base, deadline);
	if (ret < 0)
		return ret;
	ret = sl__read_frame(c, deadline, &f);
	if (ret < 0)
		return ret;
	if (f.type != SLUICE__V1__FRAME_TYPE__FRAME_TOPIC_ADMIN_RESULT ||
	    sl_frame_decode_msg(&f, &m) < 0)
		return sl__fail(c, -SL_EPROTO_DECODE, "expected TopicAdminResult, got %s",
		                sl_frame_type_name(f.type));
	Sluice__V1__TopicAdminResult *res = (Sluice__V1__TopicAdminResult *)m;
	if (res->request_id != q.request_id) {
		ret =
		    sl__fail(c, -SL_EPROTO_DECODE, "answer to request %llu, asked %llu",
		             (unsigned long long)res->request_id, (unsigned long long)q.request_id);
	} else if (!(*answer = strdup(res->body))) {
		ret = sl__fail(c, -ENOMEM, "out of memory");
	} else {
		*status = (int)res->status;
		ret = 0;
	}
	sl_frame_msg_free(m);
	return ret;
}

int sl_consumer_fetch(struct sl_consumer *c, const char *topic, uint32_t partition, uint64_t offset,
                      uint32_t max_events, uint32_t max_bytes, uint32_t wait_ms, sl_consumer_fn fn,
                      void *arg, uint64_t *next, uint64_t *end)
{
	uint64_t base;
	return sl__fetch(c, topic, partition, offset, 0, max_events, max_bytes, wait_ms, fn, arg,
	                 next, end, &base);
}

static int sl__stop_at_first(void *arg, const struct sl_fetched *ev)
{
	(void)arg;
	(void)ev;
	return 1;
}

int sl_consumer_offset_for_time(struct sl_consumer *c, const char *topic, uint32_t partition,
                                int64_t time_ms, uint64_t *offset)
{
	uint64_t next, end, base;
	/* A time before 1970 (or 0, which the wire reads as "unused") asks
	 * for everything: the earliest millisecond there is. */
	int64_t t = time_ms > 0 ? time_ms : 1;
	int ret = sl__fetch(c, topic, partition, 0, t, 1, 1, 0, sl__stop_at_first, NULL, &next,
	                    &end, &base);
	if (ret < 0)
		return ret;
	*offset = ret > 0 ? base : end;
	return ret > 0;
}

uint64_t sl_consumer_log_start(const struct sl_consumer *c)
{
	return c->log_start;
}

/* ---- consumer groups (0.7) --------------------------------------------------- */

void sl_group_member_clear(struct sl_group_member *m)
{
	free(m->assigned);
	memset(m, 0, sizeof(*m));
}

/* A group answer's error as a return value (-SL_E*), after sl__fail. */
static int sl__group_error(struct sl_consumer *c, uint32_t code, const char *msg)
{
	int ret = code == SLUICE__V1__ERROR_CODE__ERR_UNKNOWN_MEMBER  ? -SL_EUNKNOWN_MEMBER
	          : code == SLUICE__V1__ERROR_CODE__ERR_FENCED        ? -SL_EFENCED
	          : code == SLUICE__V1__ERROR_CODE__ERR_UNKNOWN_TOPIC ? -SL_ENOTOPIC
	          : code == SLUICE__V1__ERROR_CODE__ERR_STORAGE       ? -SL_ELOG_FAILED
	          : code == SLUICE__V1__ERROR_CODE__ERR_DISK_FULL     ? -SL_ELOG_FULL
	          : code == SLUICE__V1__ERROR_CODE__ERR_DRAINING      ? -EAGAIN
	                                                              : -EPROTO;
	return sl__fail(c, ret, "%s", msg && msg[0] ? msg : sl_strerror(ret));
}

int sl_consumer_group_heartbeat(struct sl_consumer *c, const char *group, const char *topic,
                                uint32_t session_timeout_ms, const uint32_t *owned, size_t n_owned,
                                int leave, struct sl_group_member *m)
{
	uint64_t deadline = sl_now_ns() + (uint64_t)c->timeout_ms * 1000000u;
	Sluice__V1__GroupHeartbeat q = SLUICE__V1__GROUP_HEARTBEAT__INIT;
	ProtobufCMessage *msg = NULL;
	struct sl_frame f;
	int ret;

	q.request_id = ++c->next_request;
	q.group = (char *)group;
	q.member_id = m->id;
	q.generation = m->generation;
	q.topic = (char *)topic;
	q.owned = (uint32_t *)owned;
	q.n_owned = n_owned;
	q.session_timeout_ms = session_timeout_ms;
	q.leave = leave != 0;
	q.client_name = (char *)"";
	ret = sl__send_msg(c, SLUICE__V1__FRAME_TYPE__FRAME_GROUP_HEARTBEAT, &q.base, deadline);
	if (ret < 0)
		return ret;
	ret = sl__read_frame(c, deadline, &f);
	if (ret < 0)
		return ret;
	if (f.type != SLUICE__V1__FRAME_TYPE__FRAME_GROUP_HEARTBEAT_RESULT ||
	    sl_frame_decode_msg(&f, &msg) < 0)
		return sl__fail(c, -SL_EPROTO_DECODE, "expected GroupHeartbeatResult, got %s",
		                sl_frame_type_name(f.type));
	Sluice__V1__GroupHeartbeatResult *res = (Sluice__V1__GroupHeartbeatResult *)msg;
	if (res->request_id != q.request_id) {
		ret =
		    sl__fail(c, -SL_EPROTO_DECODE, "answer to request %llu, asked %llu",
		             (unsigned long long)res->request_id, (unsigned long long)q.request_id);
		goto out;
	}
	if (res->error) {
		ret = sl__group_error(c, res->error, res->message);
		if (ret == -SL_EUNKNOWN_MEMBER)
			sl_group_member_clear(m);
		goto out;
	}
	if (leave) {
		sl_group_member_clear(m);
		goto out;
	}
	struct sl_group_part *v = calloc(res->n_assigned ? res->n_assigned : 1, sizeof(*v));
	if (!v) {
		ret = sl__fail(c, -ENOMEM, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < res->n_assigned; i++)
		v[i] = (struct sl_group_part){.partition = res->assigned[i]->partition,
		                              .has_committed = res->assigned[i]->has_committed,
		                              .committed = res->assigned[i]->committed};
	free(m->assigned);
	m->assigned = v;
	m->n_assigned = res->n_assigned;
	snprintf(m->id, sizeof(m->id), "%s", res->member_id);
	m->generation = res->generation;
	m->heartbeat_ms = res->heartbeat_ms;
	m->members = res->members;
	m->settled = res->settled;
out:
	sl_frame_msg_free(msg);
	return ret;
}

int sl_consumer_commit(struct sl_consumer *c, const char *group, const struct sl_group_member *m,
                       const char *topic, uint32_t partition, uint64_t offset)
{
	uint64_t deadline = sl_now_ns() + (uint64_t)c->timeout_ms * 1000000u;
	Sluice__V1__Commit q = SLUICE__V1__COMMIT__INIT;
	ProtobufCMessage *msg = NULL;
	struct sl_frame f;
	int ret;

	q.request_id = ++c->next_request;
	q.group = (char *)group;
	q.topic = (char *)topic;
	q.partition = partition;
	q.offset = offset;
	q.member_id = (char *)m->id;
	q.generation = m->generation;
	ret = sl__send_msg(c, SLUICE__V1__FRAME_TYPE__FRAME_COMMIT, &q.base, deadline);
	if (ret < 0)
		return ret;
	ret = sl__read_frame(c, deadline, &f);
	if (ret < 0)
		return ret;
	if (f.type != SLUICE__V1__FRAME_TYPE__FRAME_COMMIT_ACK || sl_frame_decode_msg(&f, &msg) < 0)
		return sl__fail(c, -SL_EPROTO_DECODE, "expected CommitAck, got %s",
		                sl_frame_type_name(f.type));
	Sluice__V1__CommitAck *res = (Sluice__V1__CommitAck *)msg;
	if (res->request_id != q.request_id)
		ret =
		    sl__fail(c, -SL_EPROTO_DECODE, "answer to request %llu, asked %llu",
		             (unsigned long long)res->request_id, (unsigned long long)q.request_id);
	else if (res->error)
		ret = sl__group_error(c, res->error, res->message);
	sl_frame_msg_free(msg);
	return ret;
}
