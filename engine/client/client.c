/*
 * libsluice: batching, the in-flight window, the connection state machine,
 * acks, reconnects and resends. See sluice/client.h for the contract.
 *
 * Invariants:
 *  - Sealed batches sit in `ring` in sequence order with no gaps; the open
 *    batch (if any) follows the last sealed one. So the events in flight are
 *    exactly the sequences [first in ring or open, next_seq).
 *  - A batch leaves the ring (and its buffer returns to the pool) only from
 *    the head, once every event of it is answered: the window is a span of
 *    sequences, which lets callers index per-event state by sequence.
 *  - Batches are written in ring order, starting at send_idx; `out` (Hello,
 *    re-encoded resends) always goes before them.
 *  - After a reconnect nothing is trusted about what the old connection
 *    delivered: every unanswered event is re-encoded into `out` with its
 *    original sequence and the new epoch, and send_idx moves past the ring.
 */
#include "client/client_impl.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/uio.h>
#include <unistd.h>

/* ---- errors ------------------------------------------------------------- */

void sl__client_seterr(struct sl_client *c, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(c->err, sizeof(c->err), fmt, ap);
	va_end(ap);
}

const char *sl_client_code_name(uint32_t code)
{
	const ProtobufCEnumValue *v =
	    protobuf_c_enum_descriptor_get_value(&sluice__v1__error_code__descriptor, (int)code);
	return v ? v->name : "ERR_?";
}

/* The negative status a wire ErrorCode stands for. */
int sl__client_code_status(uint32_t code)
{
	switch (code) {
	case SLUICE__V1__ERROR_CODE__ERR_FRAME_TOO_BIG:
		return -SL_EFRAME_TOO_BIG;
	case SLUICE__V1__ERROR_CODE__ERR_MALFORMED:
	case SLUICE__V1__ERROR_CODE__ERR_EVENT:
		return -SL_EPROTO_DECODE;
	case SLUICE__V1__ERROR_CODE__ERR_UNKNOWN_TYPE:
		return -SL_EPROTO_UNKNOWN;
	case SLUICE__V1__ERROR_CODE__ERR_VERSION:
		return -SL_EPROTO_VERSION;
	case SLUICE__V1__ERROR_CODE__ERR_STATE:
		return -SL_EPROTO_STATE;
	case SLUICE__V1__ERROR_CODE__ERR_UNKNOWN_TOPIC:
		return -SL_ENOTOPIC;
	case SLUICE__V1__ERROR_CODE__ERR_FENCED:
		return -SL_EFENCED;
	case SLUICE__V1__ERROR_CODE__ERR_SEQUENCE:
		return -SL_ESEQ_GAP;
	case SLUICE__V1__ERROR_CODE__ERR_CREDIT:
		return -SL_ECREDIT;
	case SLUICE__V1__ERROR_CODE__ERR_OVERLOAD:
		return -SL_EOVERLOAD;
	case SLUICE__V1__ERROR_CODE__ERR_TIMEOUT:
		return -SL_ETIMEOUT;
	case SLUICE__V1__ERROR_CODE__ERR_STORAGE:
		return -SL_ELOG_FAILED;
	case SLUICE__V1__ERROR_CODE__ERR_DISK_FULL:
		return -SL_ELOG_FULL;
	case SLUICE__V1__ERROR_CODE__ERR_AUTH:
		return -EACCES;
	case SLUICE__V1__ERROR_CODE__ERR_LIMIT:
		return -EUSERS;
	case SLUICE__V1__ERROR_CODE__ERR_DRAINING:
		return -ESHUTDOWN;
	case SLUICE__V1__ERROR_CODE__ERR_NOT_LEADER:
		return -SL_ENOT_LEADER;
	case SLUICE__V1__ERROR_CODE__ERR_NOT_ENOUGH_REPLICAS:
		return -SL_ENOT_ENOUGH_REPLICAS;
	case SLUICE__V1__ERROR_CODE__ERR_STALE_EPOCH:
		return -SL_EFENCED;
	case SLUICE__V1__ERROR_CODE__ERR_PRODUCER_EXPIRED:
		return -SL_EPRODUCER_EXPIRED;
	case SLUICE__V1__ERROR_CODE__ERR_UNTRACKED:
		return -SL_EUNTRACKED;
	case SLUICE__V1__ERROR_CODE__ERR_OFFSET_OUT_OF_RANGE:
		return -SL_EOUT_OF_RANGE;
	default:
		return -EPROTO;
	}
}

/* Connection-level Errors that another connection may not get: the server
 * is busy, leaving, or timed us out. Everything else is a bug on one side or
 * a fencing, and retrying would only repeat it. */
bool sl__client_code_retryable(uint32_t code)
{
	switch (code) {
	case SLUICE__V1__ERROR_CODE__ERR_TIMEOUT:
	case SLUICE__V1__ERROR_CODE__ERR_LIMIT:
	case SLUICE__V1__ERROR_CODE__ERR_DRAINING:
	case SLUICE__V1__ERROR_CODE__ERR_OVERLOAD:
	case SLUICE__V1__ERROR_CODE__ERR_STORAGE:
	case SLUICE__V1__ERROR_CODE__ERR_INTERNAL:
		return true;
	default:
		return false;
	}
}

const char *sl__client_token(const char *opt)
{
	const char *env = getenv("SLUICE_TOKEN");
	return opt ? opt : env ? env : "";
}

/* ---- public API ------------------------------------------------------------ */

static int sl__resolve(struct sl_client *c)
{
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV};
	struct addrinfo *res = NULL;
	char port[8];

	snprintf(port, sizeof(port), "%u", c->o.port);
	int ret = getaddrinfo(c->host, port, &hints, &res);
	if (ret != 0 || !res) {
		sl__client_seterr(c, "cannot resolve '%s': %s", c->host, gai_strerror(ret));
		if (res)
			freeaddrinfo(res);
		return -EHOSTUNREACH;
	}
	memcpy(&c->addr, res->ai_addr, res->ai_addrlen);
	c->addr_len = res->ai_addrlen;
	freeaddrinfo(res);
	snprintf(c->addr_text, sizeof(c->addr_text), strchr(c->host, ':') ? "[%s]:%u" : "%s:%u",
	         c->host, c->o.port);
	return 0;
}

void sl__client_free(struct sl_client *c)
{
	sl__client_close_fd(c);
	if (c->epfd >= 0)
		close(c->epfd);
	if (c->has_open)
		sl__client_bbuf_put(c, c->open.b);
	for (uint64_t i = c->head; i < c->tail; i++)
		sl__client_bbuf_put(c, sl__at(c, i)->b);
	for (uint32_t i = 0; i < c->n_pool; i++) {
		free(c->pool[i]->p);
		free(c->pool[i]);
	}
	for (uint32_t i = 0; i < c->n_topics; i++)
		free(c->topics[i]);
	free(c->topics);
	free(c->topic_lens);
	free(c->pool);
	free(c->ring);
	free(c->rs);
	free(c->out);
	free(c->in);
	free(c->hdr_scratch);
	sl__client_tokens_free(c);
	free(c->host);
	free(c->name);
	free(c->token);
	free(c->pname);
	free(c);
}

/* Index of `topic` in the client's table, adding it when new; <0 on error. */
int64_t sl__client_topic(struct sl_client *c, const char *topic)
{
	if (!topic)
		return 0;
	size_t len = strlen(topic);
	if (c->has_open && c->topic_lens[c->open.topic] == len &&
	    memcmp(c->topics[c->open.topic], topic, len) == 0)
		return c->open.topic;
	for (uint32_t i = 0; i < c->n_topics; i++)
		if (c->topic_lens[i] == len && memcmp(c->topics[i], topic, len) == 0)
			return i;
	if (!len || len > 65535)
		return -EINVAL;
	if (c->n_topics == c->topics_cap) {
		uint32_t cap = c->topics_cap ? c->topics_cap * 2 : 4;
		char **t = realloc(c->topics, cap * sizeof(*t));
		if (!t)
			return -ENOMEM;
		c->topics = t;
		size_t *l = realloc(c->topic_lens, cap * sizeof(*l));
		if (!l)
			return -ENOMEM;
		c->topic_lens = l;
		c->topics_cap = cap;
	}
	char *s = strdup(topic);
	if (!s)
		return -ENOMEM;
	c->topics[c->n_topics] = s;
	c->topic_lens[c->n_topics] = len;
	return c->n_topics++;
}

/* Options with their defaults, owned strings, buffers; no connection. */
static int sl__client_init(struct sl_client *c, const struct sl_client_opts *opts)
{
	int ret;

	c->o = opts ? *opts : (struct sl_client_opts){0};
	struct sl_client_opts *o = &c->o;
	if (!o->port)
		o->port = 7400;
	if (!o->batch_max_events)
		o->batch_max_events = SL__DEF_BATCH_EVENTS;
	if (!o->batch_max_bytes)
		o->batch_max_bytes = SL__DEF_BATCH_BYTES;
	if (!o->max_inflight)
		o->max_inflight = SL__DEF_INFLIGHT;
	if (!o->max_inflight_bytes)
		o->max_inflight_bytes = SL__DEF_INFLIGHT_BYTES;
	if (!o->connect_timeout_ms)
		o->connect_timeout_ms = SL__DEF_CONNECT_MS;
	if (!o->ack_timeout_ms)
		o->ack_timeout_ms = SL__DEF_ACK_MS;
	if (!o->backoff_min_ms)
		o->backoff_min_ms = SL__DEF_BACKOFF_MIN_MS;
	if (!o->backoff_max_ms)
		o->backoff_max_ms = SL__DEF_BACKOFF_MAX_MS;
	if (o->backoff_max_ms < o->backoff_min_ms)
		o->backoff_max_ms = o->backoff_min_ms;
	ret = -EINVAL;
	if (o->batch_max_events > SL__MAX_BATCH_EVENTS || o->batch_max_bytes < 64) {
		sl__client_seterr(c, "batch limits out of range");
		goto out;
	}
	c->host = strdup(o->host ? o->host : "127.0.0.1");
	c->name = strdup(o->client_name ? o->client_name : "libsluice");
	c->token = strdup(sl__client_token(o->token));
	c->bitmap_words = (o->batch_max_events + 63) / 64;
	c->pool = calloc(SL__POOL_MAX, sizeof(*c->pool));
	ret = -ENOMEM;
	if (!c->host || !c->name || !c->token || !c->pool)
		goto out;
	o->host = c->host;
	o->client_name = c->name;
	o->token = c->token;
	if (sl__client_topic(c, o->topic ? o->topic : "events") != 0) {
		ret = -EINVAL;
		goto out;
	}
	o->topic = c->topics[0];
	if (o->seed)
		sl_uuid_rng_seed_u64(&c->rng, o->seed);
	else if ((ret = sl_uuid_rng_seed(&c->rng)) < 0)
		goto out;
	if (o->producer_name) {
		/* The server's rule (dedup.h), checked here too so that a bad
		 * name fails at once with the reason. */
		size_t n = strlen(o->producer_name);
		bool ok = n && n <= 255;
		for (size_t i = 0; ok && i < n; i++)
			ok = (unsigned char)o->producer_name[i] >= 0x21 &&
			     (unsigned char)o->producer_name[i] <= 0x7e;
		ret = -EINVAL;
		if (!ok) {
			sl__client_seterr(c,
			                  "producer name '%s': 1..255 bytes of printable ASCII "
			                  "without spaces",
			                  o->producer_name);
			goto out;
		}
		if (o->producer_id || o->idempotence_off) {
			sl__client_seterr(c, "producer_name excludes %s",
			                  o->producer_id ? "producer_id" : "idempotence_off");
			goto out;
		}
		if (!(c->pname = strdup(o->producer_name))) {
			ret = -ENOMEM;
			goto out;
		}
		o->producer_name = c->pname;
	}
	c->producer_id = o->producer_id;
	if (o->producer_id && o->producer_proof) {
		memcpy(c->proof, o->producer_proof, SL_CLIENT_PROOF_LEN);
		c->proof_len = SL_CLIENT_PROOF_LEN;
	}
	o->producer_proof = NULL; /* copied: the caller's buffer may go */
	c->max_frame = SL__DEF_MAX_FRAME;
	sl__client_recompute_window(c);
	ret = sl__client_ring_grow(c);
out:
	return ret;
}

int sl__client_new(const struct sl_client_opts *opts, struct sl_client **out)
{
	struct sl_client *c = calloc(1, sizeof(*c));
	int ret;

	*out = NULL;
	if (!c)
		return -ENOMEM;
	c->fd = c->epfd = c->ep_fd = -1;
	ret = sl__client_init(c, opts);
	if (ret == 0)
		ret = sl__resolve(c);
	if (ret < 0) {
		sl__client_free(c);
		return ret;
	}
	*out = c;
	return 0;
}

int sl_client_connect(const struct sl_client_opts *opts, struct sl_client **out, char *err,
                      size_t errlen)
{
	struct sl_client *c = calloc(1, sizeof(*c));
	struct sl__hostport *servers = NULL;
	size_t n_servers = 0, chosen = 0;
	int ret;

	*out = NULL;
	if (err && errlen)
		err[0] = 0;
	if (!c) {
		if (err && errlen)
			snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	c->fd = c->epfd = c->ep_fd = -1;
	ret = sl__client_init(c, opts);
	if (ret < 0)
		goto out;
	if (opts && opts->servers) {
		/* Bootstrap servers: Metadata from the first that answers says
		 * whether this is a cluster (route by leader) or one node. */
		ret =
		    sl__servers_parse(opts->servers, &servers, &n_servers, c->err, sizeof(c->err));
		if (ret < 0)
			goto out;
		c->o.servers = NULL; /* the caller's string may go */
		ret = sl__rt_open(c, servers, n_servers, &chosen);
		if (ret == -EACCES || ret == -EOPNOTSUPP)
			goto out; /* refused our token, or a name: c->err says so */
		if (ret == 1) {
			free(servers);
			c->err[0] = 0;
			*out = c;
			return 0;
		}
		/* No cluster (or nothing answered Metadata: then the connect
		 * below says why): one connection to the server chosen. */
		c->err[0] = 0;
		char *h = strdup(servers[chosen].host);
		if (!h) {
			ret = -ENOMEM;
			goto out;
		}
		free(c->host);
		c->host = h;
		c->o.host = h;
		c->o.port = servers[chosen].port;
	}
	ret = sl__resolve(c);
	if (ret < 0)
		goto out;

	c->initial = true;
	sl__client_connect_start(c);
	ret = sl__client_run(c, sl_now_ns() + (uint64_t)c->o.connect_timeout_ms * SL__NS_PER_MS,
	                     sl__client_ready, false);
	c->initial = false;
	if (ret < 0) {
		if (!c->err[0] || ret == -SL_ETIMEOUT)
			sl__client_seterr(c, "%s: %s", c->addr_text,
			                  ret == -SL_ETIMEOUT ? "handshake timed out"
			                                      : sl_strerror(ret));
		goto out;
	}
	c->err[0] = 0;
	free(servers);
	*out = c;
	return 0;
out:
	if (err && errlen)
		snprintf(err, errlen, "%s", c->err[0] ? c->err : sl_strerror(ret));
	free(servers);
	/* Nothing to answer: no event was produced. */
	sl__client_free(c);
	return ret;
}

/*
 * Makes the open batch of topic `t` ready to take an event of `size`
 * encoded bytes: waits for the window, seals on topic change, count or
 * size, grows the buffer when that is enough.
 */
static int sl__reserve(struct sl_client *c, uint32_t t, size_t size)
{
	size_t field = sl__event_field_len(size);
	int ret;

	if (!sl__room_for(c, field)) {
		/* What is batched must go out, or its acks could never come. */
		ret = sl__client_seal(c);
		if (ret < 0)
			return ret;
		if (c->o.nonblocking) {
			if (c->state == SL__READY)
				sl__client_write(c);
			return -EAGAIN;
		}
		uint64_t deadline =
		    c->o.block_timeout_ms
		        ? sl_now_ns() + (uint64_t)c->o.block_timeout_ms * SL__NS_PER_MS
		        : UINT64_MAX;
		for (;;) {
			if (c->state == SL__FAILED)
				return c->fatal;
			if (sl__room_for(c, field))
				break;
			if (deadline != UINT64_MAX && sl_now_ns() >= deadline) {
				sl__client_seterr(c, "window full for %u ms",
				                  c->o.block_timeout_ms);
				return -SL_ETIMEOUT;
			}
			sl__client_turn(c, deadline, false);
		}
	}
	if (c->has_open) {
		/* A batch larger than the byte window Welcome granted could only
		 * go out alone, when nothing else is in flight. */
		if (c->open.topic != t || c->open.n == c->o.batch_max_events ||
		    (c->credit_bytes &&
		     c->open.ev_bytes + field + SL_CREDIT_EVENT_OVERHEAD > c->credit_bytes)) {
			ret = sl__client_seal(c);
			if (ret < 0)
				return ret;
		} else if (c->bld.cap - c->bld.len < field) {
			struct sl__bbuf *b = c->open.b;
			size_t room = sl__epoch_room(c->bld.epoch);
			size_t need = c->bld.len + field + room;
			if (need <= c->batch_limit && b->cap < c->batch_limit) {
				size_t cap = b->cap * 2;
				while (cap < need)
					cap *= 2;
				if (cap > c->batch_limit)
					cap = c->batch_limit;
				uint8_t *p = realloc(b->p, cap);
				if (!p)
					return -ENOMEM;
				b->p = p;
				b->cap = cap;
				c->bld.buf = p;
				c->bld.cap = cap - room;
			} else {
				ret = sl__client_seal(c);
				if (ret < 0)
					return ret;
			}
		}
	}
	if (!c->has_open) {
		/* Header, topic, base sequence and epoch take at most this. */
		size_t head = SL_FRAME_HDR_LEN + 1 + 5 + c->topic_lens[t] + 11 + 6;
		if (head + field > c->batch_limit) {
			sl__client_seterr(c, "event of %zu bytes exceeds the %u-byte frame limit",
			                  size, c->batch_limit);
			return -EMSGSIZE;
		}
		size_t want = SL__BUF_START;
		if (want < head + field)
			want = head + field;
		if (want > c->batch_limit)
			want = c->batch_limit;
		struct sl__bbuf *b = sl__client_bbuf_get(c, want);
		if (!b)
			return -ENOMEM;
		size_t cap = b->cap < c->batch_limit ? b->cap : c->batch_limit;
		ret = sl_produce_begin(&c->bld, b->p, cap, c->topics[t], c->topic_lens[t],
		                       c->next_seq, c->epoch);
		/* A resume leg only resends another leg's events: marked so
		 * (wire.proto Produce.resend_age_ms), as old as they can be.
		 * Each was first sent on a leg that then waited at most
		 * ack_timeout_ms for its answer, and waits at most as long
		 * again for a leader (router_move.c): three times that bounds
		 * its age with room for the refreshes between. */
		if (ret == 0 && c->resume_epoch)
			ret = sl_produce_set_resend_age(&c->bld, 3 * (uint64_t)c->o.ack_timeout_ms);
		if (ret < 0) {
			sl__client_bbuf_put(c, b);
			return ret;
		}
		c->open = (struct sl__batch){.b = b, .base_seq = c->next_seq, .topic = t};
		c->has_open = true;
		c->open_ns = c->o.linger_us ? sl_now_ns() : 0;
	}
	return 0;
}

/* After an event went into the open batch. */
static int sl__commit(struct sl_client *c, uint64_t *seq, size_t size)
{
	if (seq)
		*seq = c->next_seq;
	c->next_seq++;
	c->open.n++;
	c->open.ev_bytes += size + SL_CREDIT_EVENT_OVERHEAD;
	c->st.produced++;
	c->st.inflight++;
	if (c->open.n == c->o.batch_max_events) {
		int ret = sl__client_seal(c);
		if (ret < 0)
			return ret;
		if (c->state == SL__READY)
			sl__client_write(c);
		else if (c->state == SL__IDLE)
			sl__client_connect_start(c);
	}
	return 0;
}

static int sl__enter(struct sl_client *c)
{
	if (!c)
		return -EINVAL;
	if (c->in_cb)
		return -EBUSY;
	if (c->state == SL__FAILED)
		return c->fatal;
	return 0;
}

int sl_client_produce(struct sl_client *c, const char *topic, const struct sl_client_event *ev,
                      uint64_t *seq)
{
	uint8_t id[SL_EVENT_ID_LEN];
	int ret = sl__enter(c);

	if (ret < 0)
		return ret;
	if (c->rt)
		return sl__rt_produce(c, topic, ev, NULL, 0, seq);
	if (!ev || (!ev->type && ev->type_len) || (!ev->aggregate && ev->aggregate_len) ||
	    (!ev->data && ev->data_len) || (!ev->headers && ev->n_headers))
		return -EINVAL;
	int64_t t = sl__client_topic(c, topic);
	if (t < 0)
		return (int)t;

	struct sl_event_view v = {
	    .id = ev->id,
	    .type = ev->type,
	    .type_len = ev->type_len,
	    .aggregate = ev->aggregate,
	    .aggregate_len = ev->aggregate_len,
	    .timestamp_ms = ev->timestamp_ms,
	    .data = ev->data,
	    .data_len = ev->data_len,
	    .schema_version = ev->schema_version,
	};
	if (!v.id) {
		sl_uuid_gen_v4(&c->rng, id);
		v.id = id;
	}
	if (!v.timestamp_ms)
		v.timestamp_ms = (int64_t)(sl_wall_ns() / SL__NS_PER_MS);
	if (ev->n_headers > c->hdr_cap) {
		struct sl_event_header *h = realloc(c->hdr_scratch, ev->n_headers * sizeof(*h));
		if (!h)
			return -ENOMEM;
		c->hdr_scratch = h;
		c->hdr_cap = ev->n_headers;
	}
	for (size_t i = 0; i < ev->n_headers; i++)
		c->hdr_scratch[i] = (struct sl_event_header){
		    .key = ev->headers[i].key,
		    .key_len = ev->headers[i].key_len,
		    .value = ev->headers[i].value,
		    .value_len = ev->headers[i].value_len,
		};
	size_t size = sl_event_encoded_size(&v, c->hdr_scratch, ev->n_headers);
	if (size > SL_FRAME_MAX_LIMIT)
		return -EMSGSIZE;
	ret = sl__reserve(c, (uint32_t)t, size);
	if (ret < 0)
		goto out;
	ret = sl_produce_add_event(&c->bld, &v, c->hdr_scratch, ev->n_headers);
	if (ret < 0)
		goto out; /* reserve made room: cannot happen */
	ret = sl__commit(c, seq, size);
out:
	/* Even a refused produce may have sealed and written a batch. */
	if (c->epfd >= 0)
		sl__client_ep_sync(c);
	return ret;
}

int sl_client_produce_encoded(struct sl_client *c, const char *topic, const void *event, size_t len,
                              uint64_t *seq)
{
	struct sl_event_view v;
	int ret = sl__enter(c);

	if (ret < 0)
		return ret;
	if ((!event && len) || len > SL_FRAME_MAX_LIMIT)
		return -EINVAL;
	/* A bad event would make the server refuse the whole frame and close
	 * the connection, and every resend would repeat that. */
	ret = sl_event_scan(event, len, &v);
	if (ret < 0)
		return ret;
	if (c->rt)
		return sl__rt_produce(c, topic, NULL, event, len, seq);
	int64_t t = sl__client_topic(c, topic);
	if (t < 0)
		return (int)t;
	ret = sl__reserve(c, (uint32_t)t, len);
	if (ret < 0)
		goto out;
	ret = sl_produce_add_encoded(&c->bld, event, len);
	if (ret < 0)
		goto out;
	ret = sl__commit(c, seq, len);
out:
	if (c->epfd >= 0)
		sl__client_ep_sync(c);
	return ret;
}

int sl__client_produce_at(struct sl_client *c, const char *topic, const void *event, size_t len,
                          uint64_t seq)
{
	int ret = sl__enter(c);

	if (ret < 0)
		return ret;
	if (!c->sparse || seq < c->next_seq || seq >= (UINT64_C(1) << 63))
		return -ERANGE;
	int64_t t = sl__client_topic(c, topic);
	if (t < 0)
		return (int)t;
	/* A batch holds consecutive sequences: a gap begins another. */
	if (c->has_open && seq != c->next_seq && (ret = sl__client_seal(c)) < 0)
		return ret;
	uint64_t was = c->next_seq;
	c->next_seq = seq;
	ret = sl__reserve(c, (uint32_t)t, len);
	if (ret == 0)
		ret = sl_produce_add_encoded(&c->bld, event, len);
	if (ret == 0)
		ret = sl__commit(c, NULL, len);
	else if (!c->has_open)
		c->next_seq = was; /* nothing began at seq */
	if (c->epfd >= 0)
		sl__client_ep_sync(c);
	return ret;
}

int sl_client_poll(struct sl_client *c, int timeout_ms)
{
	int ret = sl__enter(c);

	if (ret < 0)
		return ret;
	if (c->rt)
		return sl__rt_poll(c, timeout_ms);
	uint64_t before = c->answered, now = sl_now_ns();
	uint64_t deadline =
	    timeout_ms < 0 ? UINT64_MAX : now + (uint64_t)timeout_ms * SL__NS_PER_MS;
	if (sl__client_linger_due(c, now) && sl__client_seal(c) < 0)
		return -ENOMEM;
	/* Always one turn, even with timeout 0: it sends and reads. */
	for (int turns = 0;; turns++) {
		sl__client_turn(c, turns ? deadline : now, true);
		if (c->answered != before || c->state == SL__FAILED)
			break;
		if (!sl__busy(c) && !sl__out_pending(c))
			break;
		if (sl_now_ns() >= deadline)
			break;
	}
	sl__client_ep_sync(c);
	if (c->answered != before)
		return (int)(c->answered - before > INT32_MAX ? INT32_MAX : c->answered - before);
	return c->state == SL__FAILED ? c->fatal : 0;
}

int sl_client_flush(struct sl_client *c, int timeout_ms)
{
	int ret = sl__enter(c);

	if (ret < 0)
		return ret;
	if (c->rt)
		return sl__rt_flush(c, timeout_ms);
	ret = sl__client_seal(c);
	if (ret < 0)
		return ret;
	uint64_t deadline =
	    timeout_ms < 0 ? UINT64_MAX : sl_now_ns() + (uint64_t)timeout_ms * SL__NS_PER_MS;
	ret = sl__client_run(c, deadline, sl__client_all_answered, true);
	sl__client_ep_sync(c);
	return ret;
}

int sl_client_fd(struct sl_client *c)
{
	if (c->rt)
		return sl__rt_fd(c);
	if (c->epfd < 0) {
		c->epfd = epoll_create1(EPOLL_CLOEXEC);
		if (c->epfd < 0)
			return -errno;
	}
	sl__client_ep_sync(c);
	return c->epfd;
}

int sl_client_timeout_ms(const struct sl_client *c)
{
	if (c->rt)
		return sl__rt_timeout_ms(c);
	if (c->state == SL__FAILED)
		return -1;
	/* Writable socket with pending data is the fd's job; a sealed batch
	 * that never went out because we were not connected is the timers'. */
	uint64_t t = sl__client_next_timer(c, true);
	if (c->has_open && c->o.linger_us == 0)
		t = 0;
	if (t == UINT64_MAX)
		return -1;
	uint64_t now = sl_now_ns();
	if (t <= now)
		return 0;
	uint64_t ms = (t - now + SL__NS_PER_MS - 1) / SL__NS_PER_MS;
	return ms > INT32_MAX ? INT32_MAX : (int)ms;
}

uint64_t sl_client_inflight(const struct sl_client *c)
{
	return c->st.inflight;
}

void sl_client_get_stats(const struct sl_client *c, struct sl_client_stats *out)
{
	if (c->rt) {
		sl__rt_stats(c, out);
		return;
	}
	*out = c->st;
	out->credit_events = c->cr_events;
	out->credit_bytes = c->cr_bytes > 0 ? (uint64_t)c->cr_bytes : 0;
	if (c->wait_since)
		out->credit_wait_ns += sl_now_ns() - c->wait_since;
}

int sl_client_producer_proof(const struct sl_client *c, uint8_t out[SL_CLIENT_PROOF_LEN])
{
	if (c->proof_len != SL_CLIENT_PROOF_LEN)
		return -ENOENT;
	memcpy(out, c->proof, SL_CLIENT_PROOF_LEN);
	return 0;
}

uint64_t sl_client_producer_id(const struct sl_client *c)
{
	return c->producer_id;
}

uint64_t sl_client_resume_sequence(const struct sl_client *c)
{
	return c->resume_seq;
}

const char *sl_client_last_error(const struct sl_client *c)
{
	return c ? c->err : "no client";
}

void sl_client_close(struct sl_client *c)
{
	if (!c || c->in_cb)
		return;
	if (c->rt) {
		sl__rt_close(c);
		sl__client_free(c);
		return;
	}
	sl__client_close_fd(c);
	if (c->has_open) {
		struct sl__batch b = c->open;
		c->has_open = false;
		sl__client_answer_all(c, &b, -ECANCELED, 0);
		sl__client_bbuf_put(c, b.b);
	}
	for (uint64_t i = c->head; i < c->tail; i++)
		sl__client_answer_all(c, sl__at(c, i), -ECANCELED, 0);
	sl__client_retire(c);
	sl__client_free(c);
}
