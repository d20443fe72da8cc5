#include "server/server.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dedup/idwin.h"
#include "pipe/pipe.h"
#include "proto/proto.h"
#include "reactor/reactor.h"
#include "read/read.h"
#include "ring/ring.h"
#include "sink/sink.h"
#include "state/state.h"

void sl__wake_reactor(void *arg, uint32_t reactor)
{
	struct sl_server *srv = arg;
	sl_reactor_wake(srv->reactors[reactor]);
}

/* Ring slots between a pair of reactors: more than both pools together plus
 * a burst of overflow blocks, so the backlog path stays cold. */
#define SL_PAIR_RING_SLOTS 1024

struct sl_sink_spec sl__sink_spec(const struct sl_server *srv, uint32_t i)
{
	const struct sl_server_sink_spec *in = &srv->opts.sinks[i];
	return (struct sl_sink_spec){
	    .name = in->name,
	    .plugin = in->plugin,
	    .topic = in->topic == SL_SERVER_TOPIC_LATER ? SL_SINK_TOPIC_LATER : in->topic,
	    .topic_name = in->topic_name,
	    .args = in->args,
	    .circuit_failures = in->circuit_failures,
	    .circuit_cooldown_ns = in->circuit_cooldown_ns,
	};
}

/* The sinks of opts->sinks (engine/sink): plugins loaded, one instance per
 * partition asked where to resume, each registered as a follower of its
 * partition, so before any reactor runs. */
static int sl__sinks_create(struct sl_server *srv, char *err, size_t errlen)
{
	const struct sl_server_opts *o = &srv->opts;
	struct sl_sink_spec *sp;
	int ret;

	if (!o->n_sinks)
		return 0;
	sp = calloc(o->n_sinks, sizeof(*sp));
	if (!sp)
		return -ENOMEM;
	for (uint32_t i = 0; i < o->n_sinks; i++)
		sp[i] = sl__sink_spec(srv, i);
	ret = sl_sinks_create(sp, o->n_sinks, &srv->topics, o->plugin_path, o->n_plugin_path,
	                      &srv->sinks, err, errlen);
	free(sp);
	return ret;
}

/* The pipelines of opts->pipelines (engine/pipe): their specs in pipe's
 * terms (kept: a pipeline that waits for a topic is bound from them
 * later, server/late.c), then the stages built there, before any reactor
 * runs (each takes the stages of its partitions). */
static int sl__pipes_create(struct sl_server *srv, char *err, size_t errlen)
{
	const struct sl_server_opts *o = &srv->opts;
	struct sl_pipe_spec *sp;
	struct sl_pipe_transform_spec *tr;
	uint32_t n_tr = 0;

	if (!o->n_pipelines)
		return 0;
	for (uint32_t i = 0; i < o->n_pipelines; i++)
		n_tr += o->pipelines[i].n_transforms;
	srv->pipe_specs = sp = calloc(o->n_pipelines, sizeof(*sp));
	srv->pipe_transforms = tr = calloc(n_tr ? n_tr : 1, sizeof(*tr));
	if (!sp || !tr)
		return -ENOMEM;
	n_tr = 0;
	for (uint32_t i = 0; i < o->n_pipelines; i++) {
		const struct sl_server_pipeline_spec *in = &o->pipelines[i];
		sp[i] = (struct sl_pipe_spec){
		    .name = in->name,
		    .from = in->from == SL_SERVER_TOPIC_LATER ? SL_PIPE_TOPIC_LATER : in->from,
		    .to = in->to == SL_SERVER_TOPIC_LATER ? SL_PIPE_TOPIC_LATER : in->to,
		    .from_name = in->from_name,
		    .to_name = in->to_name,
		    .transforms = &tr[n_tr],
		    .n_transforms = in->n_transforms,
		};
		for (uint32_t k = 0; k < in->n_transforms; k++)
			tr[n_tr++] = (struct sl_pipe_transform_spec){
			    .plugin = in->transforms[k].plugin,
			    .args = in->transforms[k].args,
			};
	}
	return sl_pipes_create(sp, o->n_pipelines, &srv->topics, o->plugin_path, o->n_plugin_path,
	                       o->data_dir, &srv->pipes, err, errlen);
}

/* One server per data folder: two would interleave writes to the same
 * segments. The lock dies with the process, so kill -9 leaves none behind. */
static int sl__lock_data_dir(struct sl_server *srv, const char *dir, char *err, size_t errlen)
{
	char path[4096];
	if (mkdir(dir, 0755) < 0 && errno != EEXIST) {
		int e = errno;
		snprintf(err, errlen, "cannot create data_dir %s: %s", dir, strerror(e));
		return -e;
	}
	snprintf(path, sizeof(path), "%s/.lock", dir);
	srv->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (srv->lock_fd < 0) {
		int e = errno;
		snprintf(err, errlen, "cannot open %s: %s", path, strerror(e));
		return -e;
	}
	if (flock(srv->lock_fd, LOCK_EX | LOCK_NB) < 0) {
		int e = errno;
		snprintf(err, errlen, "data_dir %s is in use by another sluiced (%s)", dir,
		         strerror(e));
		return -e;
	}
	return 0;
}

/*
 * Three eighths of the budget for events in flight: the rest covers each
 * reactor's fixed buffers (8 MiB of receive buffers, ~6 MiB of blocks), the
 * ack FIFOs and sequence tables, growth slack of the log buffers that hold
 * what the credits count, and the read models. With half, 1,000 producers
 * offered ten times the peak reached 430-600 MiB of a 512 MiB budget once
 * group commits got larger (one sync in flight per reactor);
 * tests/e2e/overload.py measures it. The event-id windows (issue 20) are
 * bounded ahead of time (partitions x dedup_window_events x 32 B): that
 * bound comes off the budget first (with the windows on, the same test
 * reached 514 MiB of 512), up to half of it; past a quarter it is said at
 * start, since a window that fills then takes what the budget does not
 * hold. Topics made at runtime later are not counted.
 */
static void sl__credit_pool(struct sl_server *srv)
{
	uint64_t budget = srv->opts.memory_budget, windows = 0;
	uint32_t n = atomic_load(&srv->topics.n);

	for (uint32_t i = 0; i < n; i++) {
		const struct sl_topic_spec *sp = &srv->topics.v[i].spec;
		if (sp->dedup_window_ms > 0)
			windows +=
			    (uint64_t)sp->n_parts * sp->dedup_window_events * SL_IDWIN_BYTES_PER_ID;
	}
	if (windows > budget / 4)
		fprintf(stderr,
		        "sluiced: the event-id windows may hold up to %" PRIu64
		        " MiB of the %" PRIu64 " MiB memory_budget (partitions x "
		        "dedup_window_events x 32 B): lower dedup_window_events or raise "
		        "memory_budget\n",
		        windows >> 20, budget >> 20);
	sl_credit_pool_init(&srv->credits,
	                    (budget - (windows < budget / 2 ? windows : budget / 2)) * 3 / 8,
	                    srv->opts.credit_start_bytes);
}

int sl_server_create(const struct sl_server_opts *opts, struct sl_server **out, char *err,
                     size_t errlen)
{
	struct sl_server *srv;
	int ret = -ENOMEM;

	srv = aligned_alloc(SL_CACHELINE,
	                    (sizeof(*srv) + SL_CACHELINE - 1) & ~(size_t)(SL_CACHELINE - 1));
	if (!srv)
		return -ENOMEM;
	memset(srv, 0, sizeof(*srv));
	srv->opts = *opts;
	srv->lock_fd = -1;
	snprintf(err, errlen, "invalid server options");
	if (!srv->opts.n_reactors) {
		long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
		srv->opts.n_reactors = ncpu > 0 ? (uint32_t)ncpu : 1;
	}
	if (srv->opts.n_reactors > 256 || !srv->opts.max_connections ||
	    !srv->opts.max_frame_bytes || srv->opts.max_frame_bytes > SL_FRAME_MAX_LIMIT ||
	    !srv->opts.data_dir) {
		free(srv);
		return -EINVAL;
	}
	srv->n = srv->opts.n_reactors;
	if (!srv->opts.memory_budget)
		srv->opts.memory_budget = 512ull << 20;
	if (!srv->opts.max_lag_events)
		srv->opts.max_lag_events = 1000000;
	if (!srv->opts.max_connections_per_ip ||
	    srv->opts.max_connections_per_ip > srv->opts.max_connections)
		srv->opts.max_connections_per_ip = srv->opts.max_connections;
	if (!srv->opts.max_waiting_events)
		srv->opts.max_waiting_events = 131072;
	if (!srv->opts.credit_start_bytes)
		srv->opts.credit_start_bytes = 64u << 10;
	ret = sl__lock_data_dir(srv, opts->data_dir, err, errlen);
	if (ret < 0)
		goto fail;
	char path[4096];
	if (snprintf(path, sizeof(path), "%s/producers", opts->data_dir) >= (int)sizeof(path)) {
		snprintf(err, errlen, "data_dir path too long");
		ret = -ENAMETOOLONG;
		goto fail;
	}
	ret = sl_producers_open(path, &srv->producers, err, errlen);
	if (ret < 0)
		goto fail;
	/* Opening the partitions seeds the registry with every producer their
	 * logs and checkpoints remember. */
	/* The config's topics and those created at runtime (topics.yaml). */
	struct sl_topic_spec *specs = NULL;
	uint32_t n_specs = 0;
	ret = sl__rt_load(srv, &specs, &n_specs, err, errlen);
	if (ret < 0)
		goto fail;
	ret = sl_topics_create(specs, n_specs, srv->n, opts->data_dir, srv->producers, &srv->topics,
	                       err, errlen);
	free(specs);
	if (ret < 0)
		goto fail;
	for (uint32_t i = opts->n_topics; i < n_specs; i++)
		srv->topics.v[i].runtime = true;
	sl__credit_pool(srv);
	sl__producers_expiry(srv);
	/* Before the reactors: each takes the appliers of its partitions. */
	err[0] = 0;
	ret = sl__projs_create(srv, err, errlen);
	if (ret < 0) {
		if (!err[0])
			sl_errf(err, errlen, "projections: %s", sl_strerror(ret));
		goto fail;
	}
	err[0] = 0;
	ret = sl__sinks_create(srv, err, errlen);
	if (ret < 0) {
		if (!err[0])
			sl_errf(err, errlen, "sinks: %s", sl_strerror(ret));
		goto fail;
	}
	/* Before the reactors too: each takes the stages of its partitions. */
	err[0] = 0;
	ret = sl__pipes_create(srv, err, errlen);
	if (ret < 0) {
		if (!err[0])
			sl_errf(err, errlen, "pipelines: %s", sl_strerror(ret));
		goto fail;
	}

	/* Typo protection: each consumer still waiting for its topic said. */
	sl__late_report(srv);
	/* Consumer groups' committed offsets, read back before anyone asks. */
	ret = sl__groups_create(srv, err, errlen);
	if (ret < 0)
		goto fail;

	ret = sl_net_parse_addr(opts->listen_native, &srv->native_addr);
	if (ret < 0) {
		snprintf(err, errlen, "bad listen address %s", opts->listen_native);
		goto fail;
	}
	snprintf(err, errlen, "out of memory");

	ret = -ENOMEM;
	srv->rings = calloc((size_t)srv->n * srv->n, sizeof(*srv->rings));
	srv->reactors = calloc(srv->n, sizeof(*srv->reactors));
	if (!srv->rings || !srv->reactors)
		goto fail;
	for (uint32_t i = 0; i < srv->n; i++)
		for (uint32_t j = 0; j < srv->n; j++) {
			if (i == j)
				continue;
			struct sl_ring *ring = aligned_alloc(SL_CACHELINE, sizeof(*ring));
			if (!ring)
				goto fail;
			ret = sl_ring_init(ring, SL_PAIR_RING_SLOTS);
			if (ret < 0) {
				free(ring);
				goto fail;
			}
			srv->rings[i * srv->n + j] = ring;
		}

	/* One count per client address for every reactor's accepts; it never
	 * holds more addresses than there are connections. */
	ret = sl_iplimit_create(srv->opts.max_connections, &srv->per_ip);
	if (ret < 0)
		goto fail;
	/* The reader before the reactors: their env names it. */
	ret = sl_reader_create(&srv->topics, srv->n, srv->opts.max_frame_bytes, sl__wake_reactor,
	                       srv, &srv->reader);
	if (ret < 0)
		goto fail;
	srv->env = (struct sl_reactor_env){
	    .n = srv->n,
	    .peers = srv->reactors,
	    .topics = &srv->topics,
	    .topic_specs = srv->opts.topics,
	    .rings = srv->rings,
	    .reader = srv->reader,
	    .producers = srv->producers,
	    .auth = srv->opts.auth,
	    .credits = &srv->credits,
	    .lim =
	        {
	            .max_connections = srv->opts.max_connections,
	            .max_connections_per_ip = srv->opts.max_connections_per_ip,
	            .max_frame_bytes = srv->opts.max_frame_bytes,
	            .handshake_timeout_ms = srv->opts.handshake_timeout_ms,
	            .idle_timeout_ms = srv->opts.idle_timeout_ms,
	            .drain_timeout_ms = srv->opts.drain_timeout_ms,
	            .max_lag_events = srv->opts.max_lag_events,
	            .max_waiting_events = srv->opts.max_waiting_events,
	            .pin = srv->opts.pin,
	        },
	    .conns = &srv->conns.value,
	    .per_ip = srv->per_ip,
	    .refused = srv->refused.value,
	    .input_done = &srv->input_done.value,
	    .stopping = &srv->stopping.value,
	    .start_barrier = &srv->barrier,
	    .projs = srv->projs,
	    .n_projs = srv->n_projs,
	    .pq = srv->pq,
	    .pipes = srv->pipes,
	    .admin = sl__admin_submit_req,
	    .admin_arg = srv,
	    .auto_create = srv->opts.auto_create_topics,
	    .groups = srv->groups,
	};
	ret = sl__admin_init(srv);
	if (ret < 0)
		goto fail;
	/* Cluster mode: every partition's replication state, before the
	 * reactors (whose env gets the fetchers' rings). */
	ret = sl__cluster_create(srv, err, errlen);
	if (ret < 0)
		goto fail;
	for (uint32_t i = 0; i < srv->n; i++) {
		ret = sl_reactor_create(&srv->env, i, &srv->reactors[i]);
		if (ret < 0)
			goto fail;
	}

	/* Every reactor listens on the same address; the first bind fixes the
	 * port when the configured one is 0. */
	for (uint32_t i = 0; i < srv->n; i++) {
		int fd = sl_net_listen(&srv->native_addr, 1024);
		if (fd < 0) {
			ret = fd;
			snprintf(err, errlen, "cannot listen on %s: %s", opts->listen_native,
			         strerror(-fd));
			goto fail;
		}
		if (i == 0) {
			int port = sl_net_local_port(fd);
			if (port < 0) {
				close(fd);
				ret = port;
				goto fail;
			}
			sl_net_set_port(&srv->native_addr, (uint16_t)port);
		}
		sl_reactor_listen(srv->reactors[i], fd);
	}
	*out = srv;
	return 0;
fail:
	sl_server_destroy(srv);
	return ret;
}

uint16_t sl_server_native_port(const struct sl_server *srv)
{
	const struct sockaddr_storage *ss = &srv->native_addr.ss;
	if (ss->ss_family == AF_INET)
		return ntohs(((const struct sockaddr_in *)ss)->sin_port);
	return ntohs(((const struct sockaddr_in6 *)ss)->sin6_port);
}

int sl_server_start(struct sl_server *srv)
{
	/* Sinks first: if their threads cannot start, nothing else has. */
	int rret = sl_sinks_start(srv->sinks);
	if (rret < 0)
		return rret;
	rret = sl_reader_start(srv->reader);
	if (rret < 0)
		return rret;
	/* Before the reactors, which hand it what they must not wait for. */
	rret = sl__admin_start(srv);
	if (rret < 0)
		return rret;
	pthread_barrier_t *bar = &srv->barrier;
	int ret;

	ret = pthread_barrier_init(bar, NULL, srv->n);
	if (ret)
		return -ret;
	srv->barrier_ok = true;
	for (uint32_t i = 0; i < srv->n; i++) {
		ret = sl_reactor_start(srv->reactors[i]);
		if (ret < 0) {
			/* Threads already started wait at the barrier forever;
			 * there is no clean way back, so say so and stop. */
			fprintf(stderr, "sluiced: cannot start reactor %u: %s\n", i,
			        strerror(-ret));
			abort();
		}
	}
	/* A node joins its cluster once it can serve: roles come from etcd. */
	char err[512];
	ret = sl__cluster_start(srv, err, sizeof(err));
	if (ret < 0) {
		fprintf(stderr, "sluiced: cannot join the cluster: %s\n", err);
		sl_server_stop(srv);
		return ret;
	}
	/* Runtime topics made, altered or deleted while this node was away. */
	if (srv->cl)
		sl__admin_sync(srv);
	return 0;
}

void sl_server_stop(struct sl_server *srv)
{
	atomic_store_explicit(&srv->stopping.value, 1, memory_order_release);
	if (srv->reader)
		sl_reader_drain(srv->reader);
	for (uint32_t i = 0; i < srv->n; i++)
		if (srv->reactors[i])
			sl_reactor_wake(srv->reactors[i]);
}

int sl_server_wait(struct sl_server *srv)
{
	int result = 0;
	for (uint32_t i = 0; i < srv->n; i++) {
		int ret = sl_reactor_join(srv->reactors[i]);
		if (ret < 0 && !result)
			result = ret;
	}
	/* Its commits wake reactors: stopped while they still exist. */
	sl_state_writer_stop(srv->state_writer);
	srv->state_writer = NULL;
	/* The reactors waited for its answers; what is left is answered 503
	 * (and dropped: nobody reads it any more). */
	sl__admin_stop(srv);
	sl_reader_stop(srv->reader);
	/* Fetchers hand chunks to reactors: stopped once they are gone; the
	 * lease goes with it (the node leaves the cluster at once). */
	sl__cluster_stop(srv);
	/* After the reactors: the sinks' progress keeps their partitions'
	 * lag bound moving while the reactors drain. What a sink has not
	 * written yet it resumes at the next start (resume_offset). */
	sl_sinks_stop(srv->sinks);
	return result;
}

void sl_server_destroy(struct sl_server *srv)
{
	if (!srv)
		return;
	/* Sink threads read the partitions: stopped before anything goes. */
	sl_sinks_stop(srv->sinks);
	/* Blocks still in rings (only after a reactor failed) are in no pool:
	 * free them here, before the pools go. */
	if (srv->rings)
		for (size_t i = 0; i < (size_t)srv->n * srv->n; i++)
			if (srv->rings[i]) {
				void *b;
				while (sl_ring_pop_spsc(srv->rings[i], &b))
					free(b);
				sl_ring_destroy(srv->rings[i]);
				free(srv->rings[i]);
			}
	sl__admin_stop(srv);
	sl_reader_destroy(srv->reader);
	sl__cluster_destroy(srv);
	sl_state_writer_stop(srv->state_writer);
	srv->state_writer = NULL;
	if (srv->reactors)
		for (uint32_t i = 0; i < srv->n; i++)
			sl_reactor_destroy(srv->reactors[i]);
	if (srv->barrier_ok)
		pthread_barrier_destroy(&srv->barrier);
	free(srv->rings);
	free(srv->reactors);
	sl__projs_destroy(srv);
	/* After the reactors ended: the stages are ours again. */
	sl_pipes_destroy(srv->pipes);
	free(srv->pipe_specs);
	free(srv->pipe_transforms);
	sl__groups_destroy(srv);
	sl_topics_destroy(&srv->topics);
	sl__rt_free(srv);
	/* After the topics, which keep pointers to the sinks' done_pub. */
	sl_sinks_destroy(srv->sinks);
	sl_producers_close(srv->producers);
	/* After the reactors, whose connections release their counts. */
	sl_iplimit_destroy(srv->per_ip);
	if (srv->lock_fd >= 0)
		close(srv->lock_fd);
	free(srv);
}
