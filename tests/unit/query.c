/*
 * Read models served in process: a server (real reactors, io_uring,
 * loopback) with the `counter` and `latest` projections, fed by libsluice,
 * queried through sl_server_query() from several threads at once while
 * events flow — the path the HTTP port takes, without HTTP, so the TSan
 * build sees every hand-over: requests into the owning reactor's ring, the
 * plugin's query on that reactor, the answer back under the request's lock.
 *
 * Read your writes: after each event's ack, a query with min_offset set to
 * the ack's partition:offset must count every event of that aggregate
 * produced so far (they are all stored at or below that offset of that
 * partition). Every wait is the server's own (min_offset); nothing sleeps.
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"
#include "log/log.h"
#include "proto/event.h"
#include "server/server.h"
#include "sluice/client.h"
#include "wire_client.h"

#define N_AGG     40
#define ROUNDS    60
#define PER_ROUND 50

struct acked {
	uint32_t partition;
	uint64_t offset;
	int status;
};

static void on_ack(void *arg, const struct sl_client_ack *a)
{
	struct acked *v = arg;
	v[a->sequence] =
	    (struct acked){.partition = a->partition, .offset = a->offset, .status = a->status};
}

struct querier {
	struct sl_server *srv;
	_Atomic bool *stop;
	uint64_t answered, ok;
	char err[256];
};

/* Queries without waiting, as fast as answers come, until told to stop
 * (bounded: at most 100,000 queries). */
static void *query_loop(void *arg)
{
	struct querier *q = arg;
	for (uint32_t i = 0; i < 100000 && !atomic_load(q->stop); i++) {
		char key[32];
		const char *proj = i % 2 ? "latest" : "counter";
		if (i % 7 == 0)
			snprintf(key, sizeof(key), "total");
		else
			snprintf(key, sizeof(key), "acct-%u", i % N_AGG);
		if (i % 2 && i % 7 == 0)
			snprintf(key, sizeof(key), "acct-%u", (i / 7) % N_AGG);
		struct sl_server_query sq = {.projection = proj,
		                             .projection_len = strlen(proj),
		                             .key = key,
		                             .key_len = strlen(key),
		                             .timeout_ms = 5000};
		char *body = NULL;
		size_t len = 0;
		int status = sl_server_query(q->srv, &sq, &body, &len);
		q->answered++;
		if (status == 200 || status == 404)
			q->ok++;
		else if (!q->err[0])
			snprintf(q->err, sizeof(q->err), "%s %s: %d %.*s", proj, key, status,
			         (int)len, body ? body : "");
		free(body);
	}
	return NULL;
}

/* The "count" of a counter answer, or -1. */
static long long count_of(const char *body, size_t len)
{
	char buf[256];
	if (len >= sizeof(buf))
		return -1;
	memcpy(buf, body, len);
	buf[len] = 0;
	const char *c = strstr(buf, "\"count\":");
	return c ? atoll(c + 8) : -1;
}

Test(query, read_your_writes_while_others_query, .timeout = 120)
{
	char dir[64], err[512];
	snprintf(dir, sizeof(dir), "/tmp/sluice-query-test-XXXXXX");
	cr_assert_not_null(mkdtemp(dir));
	static const char *const path[] = {SL_PLUGIN_DIR};
	struct sl_topic_spec topic = {.name = "events", .n_parts = 4, .partitioner = SL_PART_HASH};
	struct sl_server_proj_spec projs[] = {
	    {.name = "counter", .plugin = "counter", .topic = 0},
	    {.name = "latest", .plugin = "latest", .topic = 0},
	};
	struct sl_server_opts o = {
	    .listen_native = "127.0.0.1:0",
	    .data_dir = dir,
	    .n_reactors = 2,
	    .max_connections = 8,
	    .max_frame_bytes = 1 << 20,
	    .handshake_timeout_ms = 5000,
	    .idle_timeout_ms = 60000,
	    .drain_timeout_ms = 10000,
	    .topics = &topic,
	    .n_topics = 1,
	    .pin = true,
	    .projections = projs,
	    .n_projections = 2,
	    .plugin_path = path,
	    .n_plugin_path = 1,
	};
	struct sl_server *srv;
	cr_assert_eq(sl_server_create(&o, &srv, err, sizeof(err)), 0, "server: %s", err);
	cr_assert_eq(sl_server_start(srv), 0);

	_Atomic bool stop = false;
	struct querier qs[2] = {{.srv = srv, .stop = &stop}, {.srv = srv, .stop = &stop}};
	pthread_t th[2];
	for (int i = 0; i < 2; i++)
		cr_assert_eq(pthread_create(&th[i], NULL, query_loop, &qs[i]), 0);

	static struct acked acks[ROUNDS * PER_ROUND];
	struct sl_client_opts co = {
	    .host = "127.0.0.1", .port = sl_server_native_port(srv), .on_ack = on_ack, .arg = acks};
	struct sl_client *c;
	cr_assert_eq(sl_client_connect(&co, &c, err, sizeof(err)), 0, "%s", err);
	uint32_t produced[N_AGG] = {0};
	uint64_t seq_base = 0;
	for (uint32_t r = 0; r < ROUNDS; r++) {
		uint32_t agg_of[PER_ROUND];
		for (uint32_t i = 0; i < PER_ROUND; i++) {
			char agg[32];
			agg_of[i] = (r * PER_ROUND + i * 7) % N_AGG;
			snprintf(agg, sizeof(agg), "acct-%u", agg_of[i]);
			struct sl_client_event ev = {.type = "Deposited",
			                             .type_len = 9,
			                             .aggregate = agg,
			                             .aggregate_len = strlen(agg),
			                             .data = "{\"amount\":1}",
			                             .data_len = 12};
			uint64_t seq;
			cr_assert_eq(sl_client_produce(c, NULL, &ev, &seq), 0);
			if (r == 0 && i == 0)
				seq_base = seq;
		}
		cr_assert_eq(sl_client_flush(c, 30000), 0, "%s", sl_client_last_error(c));
		cr_assert_eq(seq_base, 0, "a new producer starts at sequence 0");
		/* Each event of the round: its aggregate's count, read at its own
		 * token, is every event of that aggregate produced up to it. */
		for (uint32_t i = 0; i < PER_ROUND; i++) {
			uint64_t s = r * PER_ROUND + i;
			const struct acked *a = &acks[s];
			cr_assert_eq(a->status, 0);
			produced[agg_of[i]]++;
			char key[32];
			snprintf(key, sizeof(key), "acct-%u", agg_of[i]);
			struct sl_server_query sq = {
			    .projection = "counter",
			    .projection_len = 7,
			    .key = key,
			    .key_len = strlen(key),
			    .has_min = true,
			    .min_partition = a->partition,
			    .min_offset = a->offset,
			    .timeout_ms = 10000,
			};
			char *body = NULL;
			size_t len = 0;
			int status = sl_server_query(srv, &sq, &body, &len);
			cr_assert_eq(status, 200, "%s: %d %.*s", key, status, (int)len, body);
			long long n = count_of(body, len);
			/* Later events of the round may be applied too: at least. */
			cr_assert_geq(n, produced[agg_of[i]], "%s at %u:%llu: %.*s", key,
			              a->partition, (unsigned long long)a->offset, (int)len, body);
			free(body);
		}
	}
	sl_client_close(c);
	atomic_store(&stop, true);
	for (int i = 0; i < 2; i++) {
		pthread_join(th[i], NULL);
		cr_assert_gt(qs[i].answered, 0);
		cr_assert_eq(qs[i].ok, qs[i].answered, "%s", qs[i].err);
	}
	/* The last token's partition applied: the total answers. */
	struct sl_server_query tq = {.projection = "counter",
	                             .projection_len = 7,
	                             .key = "total",
	                             .key_len = 5,
	                             .has_min = true};
	uint32_t last = ROUNDS * PER_ROUND - 1;
	tq.min_partition = acks[last].partition;
	tq.min_offset = acks[last].offset;
	tq.timeout_ms = 10000;
	char *body = NULL;
	size_t len = 0;
	cr_assert_eq(sl_server_query(srv, &tq, &body, &len), 200);
	free(body);
	sl_server_stop(srv);
	cr_assert_eq(sl_server_wait(srv), 0);
	sl_server_destroy(srv);
	rm_dir(dir);
}

/* ---- what a projection emits: balance's rejections, exactly once ---------- */

/* Counts stored events of type BalanceRejected (the count is the first
 * member of the context). */
static int count_rejected(void *arg, const struct sl_log_record *rec)
{
	struct sl_event_view v;
	cr_assert_eq(sl_event_scan(rec->event, rec->len, &v), 0);
	if (v.type_len == 15 && memcmp(v.type, "BalanceRejected", 15) == 0)
		(*(uint32_t *)arg)++;
	return 0;
}

static struct sl_server *ledger_server(const char *dir)
{
	static const char *const path[] = {SL_PLUGIN_DIR};
	static struct sl_topic_spec topics[] = {
	    {.name = "events", .n_parts = 2, .partitioner = SL_PART_HASH},
	    {.name = "ledger_errors", .n_parts = 2, .partitioner = SL_PART_HASH},
	};
	static struct sl_config_node *args;
	char err[512];
	if (!args) {
		const char *y = "field: amount\nmin: 0\nreject_topic: ledger_errors\n";
		cr_assert_eq(sl_config_node_parse(y, strlen(y), "args", &args, err, sizeof(err)), 0,
		             "%s", err);
	}
	static struct sl_server_proj_spec proj = {
	    .name = "ledger", .plugin = "balance", .topic = 0};
	proj.args = args;
	struct sl_server_opts o = {
	    .listen_native = "127.0.0.1:0",
	    .data_dir = dir,
	    .n_reactors = 2,
	    .max_connections = 8,
	    .max_frame_bytes = 1 << 20,
	    .handshake_timeout_ms = 5000,
	    .idle_timeout_ms = 60000,
	    .drain_timeout_ms = 10000,
	    .topics = topics,
	    .n_topics = 2,
	    .pin = true,
	    .projections = &proj,
	    .n_projections = 1,
	    .plugin_path = path,
	    .n_plugin_path = 1,
	};
	struct sl_server *srv;
	cr_assert_eq(sl_server_create(&o, &srv, err, sizeof(err)), 0, "server: %s", err);
	cr_assert_eq(sl_server_start(srv), 0);
	return srv;
}

static uint64_t stored(struct sl_server *srv, uint32_t topic)
{
	uint64_t n = 0;
	for (uint32_t p = 0; p < srv->topics.v[topic].n_parts; p++)
		n += atomic_load(&srv->topics.v[topic].parts[p].durable_pub);
	return n;
}

/* Waits until every account's last event is applied (read your writes). */
static void ledger_applied(struct sl_server *srv, const struct acked *last, uint32_t n)
{
	for (uint32_t k = 0; k < n; k++) {
		char key[32];
		snprintf(key, sizeof(key), "acct-%u", k);
		struct sl_server_query sq = {
		    .projection = "ledger",
		    .projection_len = 6,
		    .key = key,
		    .key_len = strlen(key),
		    .has_min = true,
		    .min_partition = last[k].partition,
		    .min_offset = last[k].offset,
		    .timeout_ms = 10000,
		};
		char *body = NULL;
		size_t len = 0;
		int status = sl_server_query(srv, &sq, &body, &len);
		cr_assert_eq(status, 200, "%s: %d %.*s", key, status, (int)len, body);
		cr_assert(strstr(body, "\"balance\":40") && strstr(body, "\"rejected\":1"),
		          "%s: %.*s", key, (int)len, body);
		free(body);
	}
}

Test(query, projection_emits_exactly_once_across_restarts, .timeout = 120)
{
	enum { ACCTS = 10 };
	char dir[64], err[512];
	snprintf(dir, sizeof(dir), "/tmp/sluice-ledger-test-XXXXXX");
	cr_assert_not_null(mkdtemp(dir));
	struct sl_server *srv = ledger_server(dir);

	/* Per account: +100, -60, -60 (the second withdrawal would overdraw). */
	static struct acked acks[3 * ACCTS];
	struct sl_client_opts co = {
	    .host = "127.0.0.1", .port = sl_server_native_port(srv), .on_ack = on_ack, .arg = acks};
	struct sl_client *c;
	cr_assert_eq(sl_client_connect(&co, &c, err, sizeof(err)), 0, "%s", err);
	for (uint32_t i = 0; i < 3 * ACCTS; i++) {
		char agg[32];
		const char *data = i < ACCTS ? "{\"amount\":100}" : "{\"amount\":-60}";
		snprintf(agg, sizeof(agg), "acct-%u", i % ACCTS);
		struct sl_client_event ev = {.type = i < ACCTS ? "Deposited" : "Withdrawn",
		                             .type_len = 9,
		                             .aggregate = agg,
		                             .aggregate_len = strlen(agg),
		                             .data = data,
		                             .data_len = strlen(data)};
		cr_assert_eq(sl_client_produce(c, NULL, &ev, NULL), 0);
	}
	cr_assert_eq(sl_client_flush(c, 30000), 0, "%s", sl_client_last_error(c));
	sl_client_close(c);
	struct acked last[ACCTS];
	for (uint32_t k = 0; k < ACCTS; k++)
		last[k] = acks[2 * ACCTS + k];
	ledger_applied(srv, last, ACCTS);
	/* The rejections were published with the step that applied them; the
	 * drain makes everything in flight durable before the server stops. */
	sl_server_stop(srv);
	cr_assert_eq(sl_server_wait(srv), 0);
	cr_assert_eq(stored(srv, 1), ACCTS);
	sl_server_destroy(srv);

	/* Again from offset 0 (snapshots gone): the same rejections are
	 * emitted with the same sequences and answered as duplicates. */
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s/projections'", dir);
	cr_assert_eq(system(cmd), 0);
	srv = ledger_server(dir);
	ledger_applied(srv, last, ACCTS);
	cr_assert_eq(stored(srv, 1), ACCTS);
	sl_server_stop(srv);
	cr_assert_eq(sl_server_wait(srv), 0);
	cr_assert_eq(stored(srv, 1), ACCTS, "a rejection was stored twice");

	/* What is stored: one BalanceRejected per account. */
	uint32_t seen = 0;
	for (uint32_t p = 0; p < 2; p++) {
		char ldir[128];
		snprintf(ldir, sizeof(ldir), "%s/ledger_errors/%u", dir, p);
		struct sl_log_view *v;
		cr_assert_eq(sl_log_view_open(ldir, &v), 0);
		struct count_ctx {
			uint32_t n;
		} cc = {0};
		uint64_t next;
		int got =
		    sl_log_view_read(v, 0, UINT64_MAX, 1000, 1 << 20, count_rejected, &cc, &next);
		cr_assert_geq(got, 0);
		seen += cc.n;
		sl_log_view_close(v);
	}
	cr_assert_eq(seen, ACCTS);
	sl_server_destroy(srv);
	rm_dir(dir);
}
