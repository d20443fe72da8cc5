/*
 * sluiced: the server. Loads the configuration (embedded default unless
 * --config), builds the server, runs its reactors, and drains on SIGTERM or
 * SIGINT: stop accepting, answer everything already received, exit 0.
 * SIGHUP reads auth.token_file again (token rotation without a restart) and
 * every directory partitioner's file (server/topics.c).
 *
 * Signals are blocked in every thread and taken by the main thread with
 * sigwait(), so no handler runs inside a reactor.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "auth/auth.h"
#include "base/base.h"
#include "config/config.h"
#include "http/http.h"
#include "reactor/reactor.h"
#include "server/server.h"
#include "sink/sink.h"

/*
 * jemalloc's options for sluiced (it reads this symbol at start; MALLOC_CONF
 * still overrides). A burst (an overload, a large group commit) frees what
 * it grew, but jemalloc returns freed pages to the kernel only as later
 * allocations pass by: an idle server would keep its peak resident for
 * good. A background thread purges them within about a second instead
 * (measured: 368 MiB resident after ten times the peak rate from 1,000
 * connections, 280 MiB 3 s later, most of the rest the producers'
 * sequence tables).
 */
const char *malloc_conf = "background_thread:true,dirty_decay_ms:1000,muzzy_decay_ms:0";

static void usage(FILE *out)
{
	fprintf(out,
	        "usage: sluiced [--config FILE] [--data-dir DIR] [--cores N]\n"
	        "       sluiced --check-config FILE\n"
	        "\n"
	        "Serves sluice's native protocol. Without --config it serves the embedded\n"
	        "default: topic 'events' (8 partitions), native port 127.0.0.1:7400,\n"
	        "HTTP port 127.0.0.1:7480, data in ./sluice-data.\n"
	        "\n"
	        "  --config FILE        YAML configuration (see ops/sluice.yaml)\n"
	        "  --data-dir DIR       overrides data_dir of the configuration\n"
	        "  --cores N            overrides cores: reactor threads, one pinned per core\n"
	        "  --check-config FILE  validate FILE, print the effective configuration or\n"
	        "                       what is wrong, exit 0 when valid\n"
	        "  --print-default      print the embedded default configuration\n"
	        "  --help               this text\n"
	        "\n"
	        "SIGTERM/SIGINT drain: stop accepting, answer what was received, exit 0.\n"
	        "SIGHUP reads auth.token_file and directory partitioners' files again.\n");
}

/* --check-config's note for a consumer of a topic the config does not
 * list (sluiced serves it the same way: waiting, bound when it exists). */
static void note_waiting(void *arg, const char *kind, const char *name, const char *topic)
{
	fprintf(arg,
	        "# note: %s %s waits for topic %s (not in the config: it binds when the topic "
	        "is created at runtime, or at start when data_dir/topics.yaml lists it)\n",
	        kind, name, topic);
}

static int check_config(const char *path)
{
	struct sl_config cfg;
	char err[512];
	int ret = sl_config_load_file(path, &cfg, err, sizeof(err));
	if (ret < 0) {
		fprintf(stderr, "sluiced: %s\n", err);
		return 1;
	}
	/* Each topic's partitioner as the server builds it: a range's splits,
	 * a directory's file, line by line. */
	for (size_t i = 0; i < cfg.n_topics; i++)
		if (sl_server_topic_check(&cfg.topics[i], err, sizeof(err)) < 0) {
			fprintf(stderr, "sluiced: %s: %s\n", path, err);
			sl_config_free(&cfg);
			return 1;
		}
	/* Topics created at runtime in data_dir (if it exists) that the
	 * config contradicts. */
	int bad = sl_server_runtime_topics_check(cfg.data_dir, cfg.topics, (uint32_t)cfg.n_topics,
	                                         stdout, err, sizeof(err));
	if (bad < 0) {
		fprintf(stderr, "sluiced: %s\n", err);
		sl_config_free(&cfg);
		return 1;
	}
	if (bad) {
		fprintf(stderr, "sluiced: %s contradicts %d topic(s) created at runtime in %s\n",
		        path, bad, cfg.data_dir);
		sl_config_free(&cfg);
		return 1;
	}
	printf("# %s: valid\n", path);
	sl_config_each_waiting(&cfg, note_waiting, stdout);
	sl_config_dump(&cfg, stdout);
	sl_config_free(&cfg);
	return 0;
}

/* A consumer's topic for the server: its index, or "waits for it by name". */
static uint32_t topic_index(size_t i)
{
	return i == SL_CONFIG_TOPIC_LATER ? SL_SERVER_TOPIC_LATER : (uint32_t)i;
}

/* A configured duration in ms for a 32-bit field (49 days at most). */
static uint32_t ms_of(uint64_t ns)
{
	uint64_t ms = ns / 1000000u;
	return ms > UINT32_MAX ? UINT32_MAX : (uint32_t)ms;
}

/*
 * Every connection and every partition holds descriptors: raise the soft
 * RLIMIT_NOFILE to the hard one (a shell's default soft limit, 1024, would
 * make accept fail with EMFILE long before max_connections), and the hard
 * one too when it is below what the config needs and we may (root, or
 * CAP_SYS_RESOURCE: up to fs.nr_open); otherwise say so, naming systemd's
 * LimitNOFILE. A partition holds 2 (its folder and its active segment) and
 * one more per sealed segment while sluiced runs.
 */
static void raise_nofile(const struct sl_config *cfg)
{
	struct rlimit rl;
	uint64_t need = (uint64_t)cfg->limits.max_connections + cfg->limits.http_max_connections +
	                SL_HTTP_RESERVE + 256; /* snapshots, rings, stdio */
	for (size_t i = 0; i < cfg->n_topics; i++)
		need += 2u * cfg->topics[i].partitions;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		return;
	if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < need) {
		struct rlimit up = {.rlim_cur = need, .rlim_max = need};
		if (setrlimit(RLIMIT_NOFILE, &up) == 0)
			rl = up;
	}
	if (rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < need)
		fprintf(stderr,
		        "sluiced: note: open files limited to %llu, below the %llu that the "
		        "partitions and limits.max_connections and http_max_connections may "
		        "need; raise the hard limit (systemd: LimitNOFILE=%llu)\n",
		        (unsigned long long)rl.rlim_cur, (unsigned long long)need,
		        (unsigned long long)need);
}

#if defined(__has_feature)
#if __has_feature(thread_sanitizer)
/* Under ThreadSanitizer (the tsan build's cluster cases): RocksDB, not
 * instrumented, orders its memtable and caches with atomics TSan does not
 * see; races with a frame in it are suppressed, as in tests/tsan/main.c. */
const char *__tsan_default_suppressions(void);
const char *__tsan_default_suppressions(void)
{
	return "race:librocksdb.so\n"
	       "called_from_lib:librocksdb.so\n"
	       "race:libstdc++.so\n";
}
#endif
#endif

int main(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"config", required_argument, NULL, 'c'},
	    {"data-dir", required_argument, NULL, 'd'},
	    {"cores", required_argument, NULL, 'n'},
	    {"check-config", required_argument, NULL, 'k'},
	    {"print-default", no_argument, NULL, 'p'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	const char *config_path = NULL, *data_dir = NULL;
	long cores = -1;
	struct sl_config cfg;
	char err[512];
	int c, ret;

	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'c':
			config_path = optarg;
			break;
		case 'd':
			data_dir = optarg;
			break;
		case 'n': {
			char *end;
			cores = strtol(optarg, &end, 10);
			if (*end || cores < 0 || cores > 256) {
				fprintf(stderr,
				        "sluiced: --cores: expected 0..256 (0 = all), got '%s'\n",
				        optarg);
				return 2;
			}
			break;
		}
		case 'k':
			return check_config(optarg);
		case 'p':
			fputs(sl_config_default_yaml(), stdout);
			return 0;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "sluiced: unexpected argument '%s'\n", argv[optind]);
		usage(stderr);
		return 2;
	}

	if (config_path)
		ret = sl_config_load_file(config_path, &cfg, err, sizeof(err));
	else
		ret = sl_config_default(&cfg);
	if (ret < 0) {
		fprintf(stderr, "sluiced: %s\n", config_path ? err : sl_strerror(ret));
		return 1;
	}
	if (data_dir) {
		char *d = strdup(data_dir);
		if (!d)
			return 1;
		free(cfg.data_dir);
		cfg.data_dir = d;
	}
	if (cores >= 0)
		cfg.cores = (uint32_t)cores;

	struct sl_topic_spec *specs = calloc(cfg.n_topics ? cfg.n_topics : 1, sizeof(*specs));
	if (!specs)
		return 1;
	for (size_t i = 0; i < cfg.n_topics; i++) {
		if (sl_server_topic_spec(&cfg.topics[i], &specs[i], err, sizeof(err)) < 0) {
			fprintf(stderr, "sluiced: %s\n", err);
			return 1;
		}
	}

	char listen[300];
	const char *h = cfg.listen.native.host;
	snprintf(listen, sizeof(listen), strchr(h, ':') ? "[%s]:%u" : "%s:%u", h,
	         cfg.listen.native.port);
	ret = sl_config_resolve_plugin_path(&cfg, NULL);
	if (ret < 0) {
		fprintf(stderr, "sluiced: cannot find the plugins folder: %s\n", sl_strerror(ret));
		return 1;
	}
	struct sl_server_proj_spec *pspecs =
	    calloc(cfg.n_projections ? cfg.n_projections : 1, sizeof(*pspecs));
	if (!pspecs)
		return 1;
	for (size_t i = 0; i < cfg.n_projections; i++)
		pspecs[i] = (struct sl_server_proj_spec){
		    .name = cfg.projections[i].name,
		    .plugin = cfg.projections[i].plugin,
		    .topic = topic_index(cfg.projections[i].from_topic),
		    .topic_name = cfg.projections[i].from,
		    .args = cfg.projections[i].args,
		    .snapshot_every_events = cfg.projections[i].snapshot_every_events,
		    .snapshot_every_ns = cfg.projections[i].snapshot_every_ns,
		};
	struct sl_server_sink_spec *sspecs = calloc(cfg.n_sinks ? cfg.n_sinks : 1, sizeof(*sspecs));
	if (!sspecs)
		return 1;
	for (size_t i = 0; i < cfg.n_sinks; i++)
		sspecs[i] = (struct sl_server_sink_spec){
		    .name = cfg.sinks[i].name,
		    .plugin = cfg.sinks[i].plugin,
		    .topic = topic_index(cfg.sinks[i].from_topic),
		    .topic_name = cfg.sinks[i].from,
		    .args = cfg.sinks[i].args,
		    .circuit_failures = cfg.sinks[i].circuit_failures,
		    .circuit_cooldown_ns = cfg.sinks[i].circuit_cooldown_ns,
		};
	/* Pipelines: one spec each, their transforms in one array. */
	size_t n_tr = 0;
	for (size_t i = 0; i < cfg.n_pipelines; i++)
		n_tr += cfg.pipelines[i].n_transforms;
	struct sl_server_pipeline_spec *plspecs =
	    calloc(cfg.n_pipelines ? cfg.n_pipelines : 1, sizeof(*plspecs));
	struct sl_server_transform_spec *trspecs = calloc(n_tr ? n_tr : 1, sizeof(*trspecs));
	if (!plspecs || !trspecs)
		return 1;
	n_tr = 0;
	for (size_t i = 0; i < cfg.n_pipelines; i++) {
		const struct sl_config_pipeline *pl = &cfg.pipelines[i];
		plspecs[i] = (struct sl_server_pipeline_spec){
		    .name = pl->name,
		    .from = topic_index(pl->from_topic),
		    .to = topic_index(pl->to_topic),
		    .from_name = pl->from,
		    .to_name = pl->to,
		    .transforms = trspecs + n_tr,
		    .n_transforms = (uint32_t)pl->n_transforms,
		};
		for (size_t k = 0; k < pl->n_transforms; k++)
			trspecs[n_tr++] = (struct sl_server_transform_spec){
			    .plugin = pl->transforms[k].plugin,
			    .args = pl->transforms[k].args,
			};
	}
	struct sl_server_opts so = {
	    .listen_native = listen,
	    .data_dir = cfg.data_dir,
	    .n_reactors = cfg.cores,
	    .max_connections = cfg.limits.max_connections,
	    .max_connections_per_ip = cfg.limits.max_connections_per_ip,
	    .max_frame_bytes = (uint32_t)cfg.limits.max_frame_bytes,
	    .handshake_timeout_ms = (uint32_t)(cfg.limits.handshake_timeout_ns / 1000000u),
	    .idle_timeout_ms = (uint32_t)(cfg.limits.idle_timeout_ns / 1000000u),
	    .drain_timeout_ms = 10000,
	    .topics = specs,
	    .n_topics = (uint32_t)cfg.n_topics,
	    .config_topics = cfg.topics,
	    .n_config_topics = (uint32_t)cfg.n_topics,
	    .pin = true,
	    .projections = pspecs,
	    .n_projections = (uint32_t)cfg.n_projections,
	    .sinks = sspecs,
	    .n_sinks = (uint32_t)cfg.n_sinks,
	    .pipelines = plspecs,
	    .n_pipelines = (uint32_t)cfg.n_pipelines,
	    .plugin_path = (const char *const *)cfg.plugin_path,
	    .n_plugin_path = cfg.n_plugin_path,
	    .memory_budget = cfg.limits.memory_budget,
	    .max_lag_events = cfg.limits.max_follower_lag,
	    .auto_create_topics = cfg.auto_create_topics,
	};
	if (so.idle_timeout_ms == 0)
		so.idle_timeout_ms = UINT32_MAX;
	/* Cluster mode: the node's name (default: the host name) and where
	 * the others reach it (default: where it listens). */
	char node_id[256], adv_native[300], adv_http[300];
	if (cfg.cluster.n_etcd) {
		if (cfg.node_id)
			snprintf(node_id, sizeof(node_id), "%s", cfg.node_id);
		else if (gethostname(node_id, sizeof(node_id)) < 0)
			snprintf(node_id, sizeof(node_id), "%s", "sluiced");
		node_id[sizeof(node_id) - 1] = '\0';
		const struct sl_config_addr *an =
		    cfg.cluster.adv_native.host ? &cfg.cluster.adv_native : &cfg.listen.native;
		const struct sl_config_addr *ah =
		    cfg.cluster.adv_http.host ? &cfg.cluster.adv_http : &cfg.listen.http;
		snprintf(adv_native, sizeof(adv_native),
		         strchr(an->host, ':') ? "[%s]:%u" : "%s:%u", an->host, an->port);
		snprintf(adv_http, sizeof(adv_http), strchr(ah->host, ':') ? "[%s]:%u" : "%s:%u",
		         ah->host, ah->port);
		so.cluster = (struct sl_server_cluster_opts){
		    .node_id = node_id,
		    .etcd = (const char *const *)cfg.cluster.etcd,
		    .n_etcd = cfg.cluster.n_etcd,
		    .name = cfg.cluster.name,
		    .advertise_native = adv_native,
		    .advertise_http = adv_http,
		    .session_ttl_ms = (uint32_t)(cfg.cluster.session_ttl_ns / 1000000u),
		    .token_file = cfg.auth.token_file,
		};
	}
	struct sl_auth *auth = NULL;
	if (cfg.auth.token_file) {
		ret = sl_auth_load(cfg.auth.token_file, &auth, err, sizeof(err));
		if (ret < 0) {
			fprintf(stderr, "sluiced: cannot start: auth: %s\n", err);
			return 1;
		}
		so.auth = auth;
	}

	/* Block the drain signals before any thread exists so every thread
	 * inherits the mask and only sigwait() below sees them. */
	sigset_t sigs;
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);
	signal(SIGPIPE, SIG_IGN);
	raise_nofile(&cfg);

	/* Tests only: where rebuilds stop, for kills and power cuts at a
	 * chosen point (server.h). */
	so.test_rebuild_pause = getenv("SLUICE_TEST_REBUILD_PAUSE");

	struct sl_server *srv;
	ret = sl_server_create(&so, &srv, err, sizeof(err));
	if (ret < 0) {
		fprintf(stderr, "sluiced: cannot start: %s\n", err);
		return 1;
	}
	ret = sl_server_start(srv);
	if (ret < 0) {
		fprintf(stderr, "sluiced: %s\n", sl_strerror(ret));
		return 1;
	}
	char hlisten[300];
	const char *hh = cfg.listen.http.host;
	snprintf(hlisten, sizeof(hlisten), strchr(hh, ':') ? "[%s]:%u" : "%s:%u", hh,
	         cfg.listen.http.port);
	struct sl_http_backend hb;
	struct sl_http *http = NULL;
	sl_server_http_backend(srv, &hb);
	struct sl_http_limits hl = {
	    .max_connections = cfg.limits.http_max_connections,
	    .max_connections_per_ip = cfg.limits.max_connections_per_ip,
	    .idle_timeout_ms = ms_of(cfg.limits.http_timeout_ns),
	    .header_timeout_ms = ms_of(cfg.limits.http_header_timeout_ns),
	};
	ret = sl_http_start_limited(hlisten, &hb, &hl, &http, err, sizeof(err));
	if (ret < 0) {
		fprintf(stderr, "sluiced: cannot start the HTTP port: %s\n", err);
		sl_server_stop(srv);
		sl_server_wait(srv);
		sl_server_destroy(srv);
		return 1;
	}
	printf("sluiced: native %s:%u, http %s:%u, %u reactors, data %s, config %s\n", h,
	       sl_server_native_port(srv), hh, sl_http_port(http), srv->n, cfg.data_dir,
	       cfg.source);
	for (size_t i = 0; i < cfg.n_topics; i++) {
		const struct sl_config_topic *t = &cfg.topics[i];
		printf("sluiced: topic %s: %u partitions\n", t->name, t->partitions);
		/* Accepted keys of features not built: said, never silently
		 * taken as working. */
		if (t->cleanup == SL_CONFIG_CLEANUP_COMPACT)
			fprintf(stderr,
			        "sluiced: note: topic %s: cleanup: compact is not enforced yet "
			        "(nothing is compacted; retention by bytes and age is)\n",
			        t->name);
	}
	for (uint32_t i = 0; i < srv->n_projs; i++) {
		/* The HTTP port already runs: a create may bind it meanwhile. */
		const struct sl_topic *pt = sl__proj_serving(&srv->projs[i]);
		printf("sluiced: projection %s: plugin %s (%s), topic %s%s\n", srv->projs[i].name,
		       srv->projs[i].plugin->name, srv->projs[i].plugin->file,
		       pt ? pt->name : srv->projs[i].waits_for, pt ? "" : " (not serving yet)");
	}
	for (size_t i = 0; i < cfg.n_pipelines; i++) {
		const struct sl_config_pipeline *pl = &cfg.pipelines[i];
		printf("sluiced: pipeline %s: %s -> %s through", pl->name, pl->from, pl->to);
		for (size_t k = 0; k < pl->n_transforms; k++)
			printf("%s %s", k ? "," : "", pl->transforms[k].plugin);
		printf("\n");
	}
	for (size_t i = 0; i < cfg.n_sinks; i++)
		printf("sluiced: sink %s: plugin %s, topic %s, circuit after %u failures\n",
		       cfg.sinks[i].name, cfg.sinks[i].plugin, cfg.sinks[i].from,
		       cfg.sinks[i].circuit_failures ? cfg.sinks[i].circuit_failures
		                                     : SL_SINK_CIRCUIT_FAILURES);
	printf("sluiced: ready\n");
	fflush(stdout);

	int sig = 0;
	for (;;) {
		sigwait(&sigs, &sig);
		if (sig != SIGHUP)
			break;
		/* Directory partitioners: a bad file keeps the table in use. */
		sl_server_reload_partitioners(srv, stderr);
		if (!auth)
			continue;
		/* A bad file keeps the tokens accepted until now. */
		if (sl_auth_reload(auth, err, sizeof(err)) < 0)
			fprintf(stderr, "sluiced: SIGHUP: auth not reloaded: %s\n", err);
		else
			fprintf(stderr, "sluiced: SIGHUP: auth tokens reloaded from %s\n",
			        cfg.auth.token_file);
	}
	fprintf(stderr, "sluiced: %s: draining\n", sig == SIGINT ? "SIGINT" : "SIGTERM");
	/* HTTP first: its handlers wait on the reactors, which answer every
	 * pending query as they stop. */
	sl_server_stop(srv);
	sl_http_stop(http);
	ret = sl_server_wait(srv);

	uint64_t in = 0, acked = 0;
	for (uint32_t i = 0; i < srv->n; i++) {
		struct sl_reactor_stats st;
		sl_reactor_get_stats(srv->reactors[i], &st);
		in += st.events_in;
		acked += st.acks_out;
	}
	fprintf(stderr, "sluiced: stopped: %llu events received, %llu acked\n",
	        (unsigned long long)in, (unsigned long long)acked);
	sl_server_destroy(srv);
	sl_auth_free(auth);
	free(specs);
	free(pspecs);
	free(sspecs);
	free(plspecs);
	free(trspecs);
	sl_config_free(&cfg);
	return ret < 0 ? 1 : 0;
}
