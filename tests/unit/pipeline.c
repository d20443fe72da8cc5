/*
 * Pipelines: an in-process server (real reactors, io_uring, loopback) built
 * from a YAML config with `pipelines:`, fed by libsluice, its derived
 * topics read back from their logs after the server stopped.
 *
 * What must hold, whatever happened in between: every event a pipeline
 * keeps is in its derived topic exactly once, nothing else is, each key's
 * events are in their original order, and each stage's outputs carry the
 * dense sequences 0..n-1 of its producer id, each once. Cases: a filter, a
 * route into two topics, a restart while the stages are behind (held back
 * by a stand-in follower of a derived partition, so "behind" is certain,
 * not a race), and a restart after the progress files were deleted (every
 * output then runs again, and must be answered as a duplicate).
 *
 * The waits poll published counters in bounded loops; no sleep is a
 * synchronisation.
 */
#include <criterion/criterion.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config/config.h"
#include "log/log.h"
#include "pipe/pipe.h"
#include "proto/proto.h"
#include "reactor/reactor.h"
#include "server/server.h"
#include "sluice/client.h"
#include "wire_client.h"

/* 15,000 per input partition: several steps of a stage (4,096), so a
 * stage held back by pressure is certain to stop before its end. */
#define N_EVENTS 60000u
#define N_KEYS   97u

struct fixture {
	struct sl_server *srv;
	struct sl_config cfg;
	struct sl_topic_spec *topics;
	struct sl_server_pipeline_spec *pipes;
	struct sl_server_transform_spec *trs;
	const char *plugin_dir;
	uint16_t port;
	char dir[64];
	_Atomic uint64_t follower; /* a stand-in follower held at 0 */
};

static const char *const g_types[] = {"OrderPlaced", "Refund", "Other"};

static const char g_yaml[] =
    "topics:\n"
    "  - { name: events, partitions: 4 }\n"
    "  - { name: orders, partitions: 3 }\n"
    "  - { name: refunds, partitions: 2 }\n"
    "pipelines:\n"
    "  - { name: big-orders, from: events, to: big,\n"
    "      transforms: [ { plugin: filter, args: { type: OrderPlaced } } ] }\n"
    "  - { name: split, from: events, to: orders,\n"
    "      transforms: [ { plugin: route,\n"
    "                      args: { routes: { OrderPlaced: orders, Refund: refunds } } } ] }\n";

/* start_on() modes */
#define PIPES    1u /* serve the config's pipelines (else only its topics) */
#define STAND_IN 2u /* a follower held at 0 on big/0, lag bound 1,000 */

/* The config's topics and pipelines as server options, as sluiced maps
 * them. With STAND_IN the big-orders stages stop once big/0 is 1,000
 * events ahead of the stand-in (they all write to big/0). */
static void start_on(struct fixture *f, uint32_t reactors, bool keep_dir, unsigned mode)
{
	bool stand_in = mode & STAND_IN;

	char err[512];

	if (!keep_dir) {
		snprintf(f->dir, sizeof(f->dir), "/tmp/sluice-pipe-test-XXXXXX");
		cr_assert_not_null(mkdtemp(f->dir));
	}
	cr_assert_eq(
	    sl_config_load_string(g_yaml, sizeof(g_yaml) - 1, NULL, &f->cfg, err, sizeof(err)), 0,
	    "%s", err);
	f->topics = calloc(f->cfg.n_topics, sizeof(*f->topics));
	f->pipes = calloc(f->cfg.n_pipelines, sizeof(*f->pipes));
	f->trs = calloc(f->cfg.n_pipelines, sizeof(*f->trs));
	cr_assert(f->topics && f->pipes && f->trs);
	for (size_t i = 0; i < f->cfg.n_topics; i++)
		f->topics[i] = (struct sl_topic_spec){.name = f->cfg.topics[i].name,
		                                      .n_parts = f->cfg.topics[i].partitions,
		                                      .partitioner = SL_PART_HASH};
	for (size_t i = 0; i < f->cfg.n_pipelines; i++) {
		const struct sl_config_pipeline *pl = &f->cfg.pipelines[i];
		cr_assert_eq(pl->n_transforms, 1);
		f->trs[i] = (struct sl_server_transform_spec){.plugin = pl->transforms[0].plugin,
		                                              .args = pl->transforms[0].args};
		f->pipes[i] = (struct sl_server_pipeline_spec){.name = pl->name,
		                                               .from = (uint32_t)pl->from_topic,
		                                               .to = (uint32_t)pl->to_topic,
		                                               .transforms = &f->trs[i],
		                                               .n_transforms = 1};
	}
	f->plugin_dir = SL_PLUGIN_DIR;
	struct sl_server_opts o = {
	    TU_SERVER_OPTS(f->dir, reactors),
	    .topics = f->topics,
	    .n_topics = (uint32_t)f->cfg.n_topics,
	    .plugin_path = &f->plugin_dir,
	    .n_plugin_path = 1,
	    .pipelines = f->pipes,
	    .n_pipelines = mode & PIPES ? (uint32_t)f->cfg.n_pipelines : 0,
	    .max_lag_events = stand_in ? 1000 : 0,
	};
	cr_assert_eq(sl_server_create(&o, &f->srv, err, sizeof(err)), 0, "server: %s", err);
	atomic_store(&f->follower, 0);
	if (stand_in) {
		struct sl_topic *big = sl_topics_find(&f->srv->topics, "big", 3);
		cr_assert_not_null(big);
		cr_assert_eq(sl_partition_follow(&big->parts[0], &f->follower, "test", "follower"),
		             0);
	}
	cr_assert_eq(sl_server_start(f->srv), 0);
	f->port = sl_server_native_port(f->srv);
}

/* Drains and frees the server (stages write their progress), keeps the
 * folder. */
static void halt(struct fixture *f)
{
	sl_server_stop(f->srv);
	cr_assert_eq(sl_server_wait(f->srv), 0);
}

static void release(struct fixture *f)
{
	sl_server_destroy(f->srv);
	f->srv = NULL;
	sl_config_free(&f->cfg);
	free(f->topics);
	free(f->pipes);
	free(f->trs);
}

static void stop(struct fixture *f)
{
	halt(f);
	release(f);
}

/* Event i: id = i (little endian) with a marker, key i % N_KEYS, type
 * i % 3. */
static void event_id(uint64_t i, uint8_t id[16])
{
	memset(id, 0, 16);
	memcpy(id, &i, 6); /* i < 2^48 */
	id[6] = 0x40;      /* reads as a v4 UUID */
	id[8] = 0x80;
	id[15] = 0x77;
}

static uint64_t id_index(const uint8_t *id)
{
	uint64_t i = 0;
	memcpy(&i, id, 6);
	return i;
}

static void produce(struct fixture *f, uint32_t n)
{
	struct sl_client_opts o = {.host = "127.0.0.1", .port = f->port, .topic = "events"};
	struct sl_client *c;
	char err[256];

	cr_assert_eq(sl_client_connect(&o, &c, err, sizeof(err)), 0, "%s", err);
	for (uint64_t i = 0; i < n; i++) {
		uint8_t id[16];
		char key[16], data[32];
		const char *type = g_types[i % 3];
		event_id(i, id);
		int kl = snprintf(key, sizeof(key), "k%" PRIu64, i % N_KEYS);
		int dl = snprintf(data, sizeof(data), "{\"i\":%" PRIu64 "}", i);
		struct sl_client_event ev = {.id = id,
		                             .type = type,
		                             .type_len = strlen(type),
		                             .aggregate = key,
		                             .aggregate_len = (size_t)kl,
		                             .data = data,
		                             .data_len = (size_t)dl};
		cr_assert_eq(sl_client_produce(c, NULL, &ev, NULL), 0);
	}
	cr_assert_eq(sl_client_flush(c, 60000), 0, "%s", sl_client_last_error(c));
	struct sl_client_stats st;
	sl_client_get_stats(c, &st);
	cr_assert_eq(st.acked, n);
	sl_client_close(c);
}

/* True when every stage has read its input to the durable end and every
 * output it sent is acked. */
static bool caught_up(struct sl_server *srv)
{
	struct sl_pipes *ps = srv->pipes;
	struct sl_pipe_part *pp;
	for (uint32_t i = 0; (pp = sl_pipes_nth(ps, i)); i++) {
		uint64_t end = atomic_load(&pp->part->durable_pub);
		if (atomic_load(&pp->next_pub) < end ||
		    atomic_load(&pp->durable_pub) < atomic_load(&pp->emitted_pub) ||
		    atomic_load(&pp->state_pub) == SL_PIPE_FAILED)
			return false;
	}
	return true;
}

/* Every big-orders stage waits (held back) or has read all its input, and
 * at least one waits. */
static bool big_orders_settled(void *arg)
{
	struct sl_pipes *ps = arg;
	uint32_t waiting = 0, done = 0, n = 0;
	struct sl_pipe_part *pp;
	for (uint32_t k = 0; (pp = sl_pipes_nth(ps, k)); k++) {
		if (strcmp(ps->v[pp->pipe].name, "big-orders"))
			continue;
		n++;
		waiting += atomic_load(&pp->state_pub) == SL_PIPE_WAITING;
		done += atomic_load(&pp->next_pub) == atomic_load(&pp->part->durable_pub);
	}
	return waiting && waiting + done == n;
}

static bool caught_up_arg(void *srv)
{
	return caught_up(srv);
}

/* Woken by the stages' progress (sl_pipes_wait), bounded at 60 s. */
static void wait_caught_up(struct fixture *f)
{
	cr_assert_eq(sl_pipes_wait(f->srv->pipes, caught_up_arg, f->srv, 60ull * 1000000000u), 0,
	             "the pipelines did not catch up within 60 s");
}

/* ---- reading a derived topic back ------------------------------------------------ */

struct seen {
	uint8_t *count;       /* per event i */
	int64_t last[N_KEYS]; /* last i per key, in offset order */
	uint64_t total;
	/* (producer id, sequence) of every record: each once, dense per id */
	uint64_t *pid, *seq;
	size_t n_rec, cap_rec;
};

static void seen_init(struct seen *s)
{
	memset(s, 0, sizeof(*s));
	s->count = calloc(N_EVENTS, 1);
	cr_assert_not_null(s->count);
}

static void seen_free(struct seen *s)
{
	free(s->count);
	free(s->pid);
	free(s->seq);
}

/* Reads every partition of `topic` from its log. */
static void read_topic(const char *data_dir, const char *topic, uint32_t n_parts, struct seen *s)
{
	char dir[256], err[512];

	for (uint32_t p = 0; p < n_parts; p++) {
		for (uint32_t k = 0; k < N_KEYS; k++)
			s->last[k] = -1;
		snprintf(dir, sizeof(dir), "%s/%s/%u", data_dir, topic, p);
		struct sl_log_opts lo = {.dir = dir, .segment_bytes = 64u << 20};
		struct sl_log *log;
		cr_assert_eq(sl_log_open(&lo, &log, err, sizeof(err)), 0, "%s", err);
		struct sl_log_reader *rd;
		struct sl_log_record rec;
		cr_assert_eq(sl_log_reader_open(log, 0, &rd), 0);
		while (sl_log_reader_next(rd, sl_log_durable(log), &rec) == 1) {
			struct sl_event_view v;
			cr_assert_eq(sl_event_scan(rec.event, rec.len, &v), 0);
			cr_assert_not_null(v.id);
			uint64_t i = id_index(v.id);
			cr_assert_lt(i, N_EVENTS);
			cr_assert_eq(v.id[15], 0x77);
			s->count[i]++;
			s->total++;
			uint32_t key = (uint32_t)(i % N_KEYS);
			cr_assert_gt((int64_t)i, s->last[key], "%s/%u: key %u out of order", topic,
			             p, key);
			s->last[key] = (int64_t)i;
			if (s->n_rec == s->cap_rec) {
				s->cap_rec = s->cap_rec ? s->cap_rec * 2 : 4096;
				s->pid = realloc(s->pid, s->cap_rec * sizeof(*s->pid));
				s->seq = realloc(s->seq, s->cap_rec * sizeof(*s->seq));
				cr_assert(s->pid && s->seq);
			}
			s->pid[s->n_rec] = rec.producer_id;
			s->seq[s->n_rec++] = rec.seq;
		}
		sl_log_reader_close(rd);
		sl_log_close(log);
	}
}

static int cmp_pair(const void *a, const void *b)
{
	const uint64_t *x = a, *y = b;
	if (x[0] != y[0])
		return x[0] < y[0] ? -1 : 1;
	return x[1] < y[1] ? -1 : x[1] > y[1];
}

/* Every (producer, sequence) once, and each producer's sequences dense
 * from 0: no output stored twice, none skipped. Every producer is a
 * stage of one of `names`. */
static void check_sequences(const struct seen *s, const char *const *names, uint32_t n_names)
{
	uint64_t *pairs = malloc(2 * (s->n_rec ? s->n_rec : 1) * sizeof(*pairs));
	cr_assert_not_null(pairs);
	for (size_t i = 0; i < s->n_rec; i++) {
		pairs[2 * i] = s->pid[i];
		pairs[2 * i + 1] = s->seq[i];
	}
	qsort(pairs, s->n_rec, 2 * sizeof(*pairs), cmp_pair);
	uint64_t want = 0;
	for (size_t i = 0; i < s->n_rec; i++) {
		uint64_t pid = pairs[2 * i], seq = pairs[2 * i + 1];
		if (i && pid != pairs[2 * i - 2])
			want = 0;
		bool known = false;
		for (uint32_t k = 0; k < n_names; k++)
			for (uint32_t p = 0; p < 4; p++)
				known |= pid == sl_pipe_producer_id(names[k], p);
		cr_assert(known, "record of producer %" PRIx64 ", not a stage", pid);
		cr_assert_eq(seq, want,
		             "producer %" PRIx64 ": sequence %" PRIu64 " where %" PRIu64 " was due",
		             pid, seq, want);
		want++;
	}
	free(pairs);
}

/* big holds exactly the OrderPlaced events of 0..n-1, once each. */
static void check_big(const char *dir, uint32_t n)
{
	struct seen s;
	seen_init(&s);
	read_topic(dir, "big", 4, &s);
	for (uint32_t i = 0; i < N_EVENTS; i++)
		cr_assert_eq(s.count[i], i < n && i % 3 == 0 ? 1 : 0,
		             "big: event %u stored %u times", i, s.count[i]);
	const char *names[] = {"big-orders"};
	check_sequences(&s, names, 1);
	seen_free(&s);
}

/* orders holds the OrderPlaced, refunds the Refund events, once each. The
 * outputs of one stage spread over both topics, so its sequences are
 * dense over the two together. */
static void check_split(const char *dir, uint32_t n)
{
	struct seen s;
	seen_init(&s);
	read_topic(dir, "orders", 3, &s);
	for (uint32_t i = 0; i < N_EVENTS; i++)
		cr_assert_eq(s.count[i], i < n && i % 3 == 0 ? 1 : 0,
		             "orders: event %u stored %u times", i, s.count[i]);
	memset(s.count, 0, N_EVENTS);
	read_topic(dir, "refunds", 2, &s);
	for (uint32_t i = 0; i < N_EVENTS; i++)
		cr_assert_eq(s.count[i], i < n && i % 3 == 1 ? 1 : 0,
		             "refunds: event %u stored %u times", i, s.count[i]);
	const char *names[] = {"split"};
	check_sequences(&s, names, 1);
	seen_free(&s);
}

/* ---- cases ------------------------------------------------------------------------ */

Test(pipeline, filter_and_route_exactly_once, .timeout = 120)
{
	struct fixture f = {0};

	start_on(&f, 2, false, PIPES);
	produce(&f, N_EVENTS);
	wait_caught_up(&f);
	/* Every input read, every output acked: status agrees. */
	for (uint32_t i = 0; sl_pipes_nth(f.srv->pipes, i); i++)
		cr_assert_eq(atomic_load(&sl_pipes_nth(f.srv->pipes, i)->state_pub),
		             SL_PIPE_RUNNING);
	char *buf = NULL;
	size_t len = 0;
	FILE *m = open_memstream(&buf, &len);
	cr_assert_not_null(m);
	sl_pipes_status_json(f.srv->pipes, m);
	fputc('\n', m);
	sl_pipes_metrics(f.srv->pipes, m);
	cr_assert_eq(fclose(m), 0);
	cr_assert_not_null(strstr(buf,
	                          "[{\"name\":\"big-orders\",\"from\":\"events\",\"to\":\"big\","
	                          "\"state\":\"serving\",\"transforms\":[\"filter\"],"
	                          "\"partitions\":[{\"partition\":0,"),
	                   "%s", buf);
	cr_assert_not_null(strstr(buf, "\"lag\":0,"), "%s", buf);
	cr_assert_not_null(strstr(buf, "\"state\":\"running\"}"), "%s", buf);
	cr_assert_null(strstr(buf, "\"error\""), "%s", buf);
	cr_assert_not_null(
	    strstr(buf, "sluice_pipeline_lag_events{pipeline=\"split\",partition=\"3\"} 0\n"), "%s",
	    buf);
	free(buf);
	stop(&f);
	check_big(f.dir, N_EVENTS);
	check_split(f.dir, N_EVENTS);
	rm_dir(f.dir);
}

Test(pipeline, restart_while_behind, .timeout = 180)
{
	struct fixture f = {0};

	/* The input first, without pipelines (a held-back stage would
	 * pressure its input, and so hold the producer back too). */
	start_on(&f, 2, false, 0);
	produce(&f, N_EVENTS);
	stop(&f);
	/* Then the pipelines, held back: big/0's stand-in follower stays at
	 * 0, so once big/0 is 1,000 events ahead of it the big-orders stages
	 * wait, and the server stops with them behind. */
	start_on(&f, 2, true, PIPES | STAND_IN);
	/* Settled: every big-orders stage waits (and will for as long as the
	 * stand-in stays at 0) or has read all its input, and one waits. */
	uint64_t in_total = 0, read_total = 0;
	cr_assert_eq(
	    sl_pipes_wait(f.srv->pipes, big_orders_settled, f.srv->pipes, 60ull * 1000000000u), 0,
	    "the big-orders stages never waited for the held partition");
	struct sl_pipe_part *pp;
	for (uint32_t k = 0; (pp = sl_pipes_nth(f.srv->pipes, k)); k++) {
		in_total += atomic_load(&pp->part->durable_pub);
		read_total += atomic_load(&pp->next_pub);
	}
	cr_assert_lt(read_total, in_total, "the stages were not behind");
	stop(&f);

	/* Restart: no stand-in; the stages resume at their progress. */
	start_on(&f, 2, true, PIPES);
	wait_caught_up(&f);
	stop(&f);
	check_big(f.dir, N_EVENTS);
	check_split(f.dir, N_EVENTS);

	/* Progress lost: every stage starts from 0 again, every output is a
	 * duplicate of a stored one, nothing is stored twice. A second
	 * batch of input goes through on top. */
	char cmd[160];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s/pipelines'", f.dir);
	cr_assert_eq(system(cmd), 0);
	start_on(&f, 3, true, PIPES);
	wait_caught_up(&f);
	/* Stats are the reactors' own: read once they have stopped. */
	halt(&f);
	uint64_t dups = 0;
	for (uint32_t r = 0; r < f.srv->n; r++) {
		struct sl_reactor_stats st;
		sl_reactor_get_stats(f.srv->reactors[r], &st);
		dups += st.duplicates;
	}
	/* Every output again (a third to big, two thirds to orders and
	 * refunds): all answered as duplicates. */
	cr_assert_eq(dups, N_EVENTS, "%" PRIu64 " duplicates", dups);
	release(&f);
	check_big(f.dir, N_EVENTS);
	check_split(f.dir, N_EVENTS);
	rm_dir(f.dir);
}

Test(pipeline, progress_file_lost_with_more_input, .timeout = 180)
{
	struct fixture f = {0};

	/* Half the events, caught up; progress deleted; the other half on a
	 * restart with a different reactor count. */
	start_on(&f, 1, false, PIPES);
	produce(&f, N_EVENTS / 2);
	wait_caught_up(&f);
	stop(&f);
	char cmd[160];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s/pipelines'", f.dir);
	cr_assert_eq(system(cmd), 0);
	start_on(&f, 2, true, PIPES);
	wait_caught_up(&f);
	struct sl_client_opts o = {.host = "127.0.0.1", .port = f.port, .topic = "events"};
	struct sl_client *c;
	char err[256];
	cr_assert_eq(sl_client_connect(&o, &c, err, sizeof(err)), 0, "%s", err);
	for (uint64_t i = N_EVENTS / 2; i < N_EVENTS; i++) {
		uint8_t id[16];
		char key[16];
		const char *type = g_types[i % 3];
		event_id(i, id);
		int kl = snprintf(key, sizeof(key), "k%" PRIu64, i % N_KEYS);
		struct sl_client_event ev = {.id = id,
		                             .type = type,
		                             .type_len = strlen(type),
		                             .aggregate = key,
		                             .aggregate_len = (size_t)kl,
		                             .data = "{}",
		                             .data_len = 2};
		cr_assert_eq(sl_client_produce(c, NULL, &ev, NULL), 0);
	}
	cr_assert_eq(sl_client_flush(c, 60000), 0, "%s", sl_client_last_error(c));
	sl_client_close(c);
	wait_caught_up(&f);
	stop(&f);
	check_big(f.dir, N_EVENTS);
	check_split(f.dir, N_EVENTS);
	rm_dir(f.dir);
}
