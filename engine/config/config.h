/*
 * config: the server's configuration — loads sluice.yaml (or the embedded
 * default) with libyaml, merges a file onto the default, validates every key
 * and unit, and hands back plain structs.
 *
 * Merge rules (PRODUCT.md, "Config"): a key a file omits takes the embedded
 * default's value (maps key by key, recursively); `topics`, `pipelines`,
 * `projections` and `sinks` are exactly what the file lists, absent means
 * none. A pipeline's `to` topic that no entry of `topics` lists is created
 * with a copy of its `from` topic's settings (`derived` is set). Relative
 * paths written in a file are made relative to the file's folder; those of the
 * embedded default (and so those a file omits) stay relative to the working
 * directory. Plugin `args` and `partitioner_args` are kept as a generic tree
 * (struct sl_config_node) for the plugins and partitioners to read.
 *
 * Keys: each section is a table (config/keys.h: name, type, offset, range,
 * one-line doc) that one loop parses and the dump prints; a new key is a
 * row in config.c (root, listen, limits), topics.c or pipelines.c.
 *
 * Errors: -SL_ECONFIG with one line in `err` naming the source, the line, the
 * key path and what was wrong, e.g.
 *   "sluice.yaml:12: topics[0].partitions: expected an integer 1..4096, got 'abc'"
 * -ENOMEM and -errno (opening a file) carry a message too.
 *
 * Ownership: a struct sl_config owns every string, array and tree it points
 * to; sl_config_free() releases them all and zeroes the struct. On failure a
 * load leaves *cfg zeroed, so sl_config_free() is always safe to call.
 * Threads: no global state; a config is a value. Loading may run on any
 * thread; a loaded config may be read from many threads at once.
 */
#ifndef SL_CONFIG_H
#define SL_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* ---- Generic YAML tree (plugin args, partitioner args) ------------------ */

enum sl_config_node_kind {
	SL_CONFIG_NODE_NULL,   /* plain empty, `~` or `null` */
	SL_CONFIG_NODE_SCALAR, /* any other scalar, kept as text */
	SL_CONFIG_NODE_MAP,    /* entries in file order, each with a unique key */
	SL_CONFIG_NODE_SEQ,
};

struct sl_config_node {
	enum sl_config_node_kind kind;
	uint32_t line;                /* 1-based line of the value in its source */
	uint32_t key_line;            /* line of `key` when this is a map entry, else 0 */
	char *key;                    /* set on a map's entries, NULL elsewhere */
	char *value;                  /* SCALAR and NULL: the text, never NULL */
	bool quoted;                  /* SCALAR written in quotes or as a block */
	struct sl_config_node *items; /* MAP: entries; SEQ: elements */
	size_t n_items;
};

/*
 * Parses one YAML document into a tree. An empty document gives *root = NULL.
 * Anchors, aliases, multiple documents, non-scalar keys, duplicate keys and
 * NUL characters are refused; nesting deeper than 64 levels too. `name`
 * prefixes error messages. Free the tree with sl_config_node_free().
 */
int sl_config_node_parse(const char *yaml, size_t len, const char *name,
                         struct sl_config_node **root, char *err, size_t errlen);
void sl_config_node_free(struct sl_config_node *node);
/* Deep copy; NULL in, NULL out. *out is NULL on -ENOMEM. */
int sl_config_node_dup(const struct sl_config_node *node, struct sl_config_node **out);

/* Lookups. Each accepts NULL or a node of another kind and then finds nothing. */
const struct sl_config_node *sl_config_node_get(const struct sl_config_node *map, const char *key);
size_t sl_config_node_len(const struct sl_config_node *node); /* MAP/SEQ items */
const struct sl_config_node *sl_config_node_at(const struct sl_config_node *node, size_t i);
/* The scalar text at `key`, or `def` when absent, null or not a scalar. */
const char *sl_config_node_str(const struct sl_config_node *map, const char *key, const char *def);
/*
 * Typed reads of `key` in `map`: *out = def when absent or null, the parsed
 * value when it is a scalar of the right form, and -SL_ECONFIG otherwise
 * (not a scalar, malformed, negative or out of range).
 */
int sl_config_node_u64(const struct sl_config_node *map, const char *key, uint64_t def,
                       uint64_t *out);
int sl_config_node_size(const struct sl_config_node *map, const char *key, uint64_t def,
                        uint64_t *out);
int sl_config_node_duration(const struct sl_config_node *map, const char *key, uint64_t def,
                            uint64_t *out_ns);
int sl_config_node_bool(const struct sl_config_node *map, const char *key, bool def, bool *out);

/*
 * Writes a tree as one YAML document (libyaml's emitter) that parses back to
 * an equal tree; a NULL tree writes nothing, which parses back to NULL.
 * Returns 0, -ENOMEM, or -EIO when the emitter or the stream fails.
 */
int sl_config_node_dump(const struct sl_config_node *node, FILE *out);

/* ---- Units ---------------------------------------------------------------- */

/*
 * All return 0, -EINVAL when the text is not of the form (a leading '-' is
 * malformed too), or -ERANGE when the value does not fit 64 bits.
 *   u64:      decimal digits only.
 *   size:     digits, optional space, optional unit B KB MB GB TB (powers of
 *             1000) or KiB MiB GiB TiB (powers of 1024): 512MiB, 1MB, 4096.
 *   duration: digits, optional space, unit ns us ms s m h d (to nanoseconds):
 *             250us, 10ms, 5s, 1h, 7d; a bare 0 is allowed.
 */
int sl_config_parse_u64(const char *s, uint64_t *out);
int sl_config_parse_size(const char *s, uint64_t *out);
int sl_config_parse_duration(const char *s, uint64_t *out_ns);
/*
 * "host:port": an IPv4 address, a bracketed IPv6 address ([::1]:7400) or a
 * DNS hostname, and a port 0..65535 (0 asks the kernel for a free one).
 * *host is a malloc'd copy without brackets. -EINVAL when malformed, -ENOMEM.
 */
int sl_config_parse_addr(const char *s, char **host, uint16_t *port);

/* ---- The configuration ---------------------------------------------------- */

enum sl_config_partitioner {
	SL_CONFIG_PART_HASH,
	SL_CONFIG_PART_RANGE,
	SL_CONFIG_PART_CONSISTENT,
	SL_CONFIG_PART_JUMP,
	SL_CONFIG_PART_DIRECTORY,
};

enum sl_config_durability {
	SL_CONFIG_DUR_FSYNC,    /* ack after fdatasync (group commit) */
	SL_CONFIG_DUR_INTERVAL, /* fdatasync every durability_interval_ns */
	SL_CONFIG_DUR_NONE,     /* the kernel flushes when it likes */
};

enum sl_config_overload {
	SL_CONFIG_OVERLOAD_BLOCK,
	SL_CONFIG_OVERLOAD_DROP,
	SL_CONFIG_OVERLOAD_SAMPLE, /* keep a sample_rate fraction */
	SL_CONFIG_OVERLOAD_REJECT,
};

enum sl_config_cleanup {
	SL_CONFIG_CLEANUP_DELETE,
	SL_CONFIG_CLEANUP_COMPACT,
};

/* When a replicated topic acks an event (PRODUCT.md, Cluster). */
enum sl_config_acks {
	SL_CONFIG_ACKS_LEADER, /* the leader's fdatasync: a failover can lose it */
	SL_CONFIG_ACKS_QUORUM, /* a majority of the replicas hold it durably */
	SL_CONFIG_ACKS_ALL,    /* every in-sync replica, at least min_insync of them */
};

/* Replicas a topic may ask for: a partition's state in etcd lists them. */
#define SL_CONFIG_MAX_REPLICAS 7

/* Per-topic defaults for keys a topic entry omits. */
#define SL_CONFIG_TOPIC_PARTITIONS      8
#define SL_CONFIG_TOPIC_MAX_PARTITIONS  4096
#define SL_CONFIG_TOPIC_RETENTION_BYTES (10ull << 30)
#define SL_CONFIG_TOPIC_RETENTION_AGE   (7ull * 86400 * 1000000000ull)
#define SL_CONFIG_TOPIC_SEGMENT_BYTES   (64ull << 20)
#define SL_CONFIG_TOPIC_DEDUP_WINDOW    (600ull * 1000000000ull)
/* 32 bytes an id (dedup/idwin.h): 8 MiB per partition at most. */
#define SL_CONFIG_TOPIC_DEDUP_WINDOW_EVENTS (1ull << 18)
#define SL_CONFIG_TOPIC_PRODUCER_EXPIRY     (7ull * 86400 * 1000000000ull)
/* hot_keys and hot_partition_factor (hot/hot.h: SL_HOT_K_MAX bounds the
 * first, server/topics.c checks that it holds). */
#define SL_CONFIG_TOPIC_HOT_KEYS     10u
#define SL_CONFIG_TOPIC_HOT_KEYS_MAX 64u
#define SL_CONFIG_TOPIC_HOT_FACTOR   4u

struct sl_config_addr {
	char *host; /* no brackets around IPv6 */
	uint16_t port;
};

struct sl_config_limits {
	uint32_t max_connections;
	uint64_t max_frame_bytes;
	uint64_t memory_budget;
	uint64_t handshake_timeout_ns;   /* connect to completed handshake */
	uint64_t idle_timeout_ns;        /* no traffic; 0 = never */
	uint64_t max_follower_lag;       /* events a projection/sink may lag */
	uint32_t max_connections_per_ip; /* per port, per client address */
	uint32_t http_max_connections;
	uint64_t http_timeout_ns;        /* HTTP idle (keep-alive) timeout */
	uint64_t http_header_timeout_ns; /* connect to the first request's header */
};

/* `auth`: a token both ports demand (auth/auth.h); without it sluiced
 * listens on loopback addresses only, unless allow_unauthenticated. */
struct sl_config_auth {
	char *token_file; /* NULL: no authentication */
	bool allow_unauthenticated;
};

/* `cluster`: the node joins a cluster through etcd (PRODUCT.md, Cluster).
 * An empty `etcd` list (the default) is a node alone. */
struct sl_config_cluster {
	char **etcd; /* endpoint URLs, http://host:port */
	size_t n_etcd;
	char *name;                       /* etcd key prefix /sluice/<name>/ */
	struct sl_config_addr adv_native; /* host NULL: listen.native */
	struct sl_config_addr adv_http;   /* host NULL: listen.http */
	uint64_t session_ttl_ns;          /* the node's lease in etcd */
};

struct sl_config_topic {
	char *name;
	uint32_t partitions; /* 1..4096 */
	enum sl_config_partitioner partitioner;
	struct sl_config_node *partitioner_args; /* a MAP, never NULL */
	/* partitioner_args as the partitioner reads them (check.c: the keys
	 * each strategy takes, their types). range: the split keys as
	 * written; consistent (and directory's consistent fallback): vnodes,
	 * 0 for the default; directory: the file, resolved against the
	 * config's folder, and where unlisted keys go. Their meaning (split
	 * order, the file's lines) is part/'s to check, at start and in
	 * --check-config alike (sl_server_topic_check). */
	char **part_splits;
	size_t n_part_splits;
	uint32_t part_vnodes;
	char *part_file;
	enum sl_config_partitioner part_fallback;
	enum sl_config_durability durability;
	uint64_t durability_interval_ns; /* > 0 for INTERVAL, else 0 */
	enum sl_config_overload overload;
	double sample_rate;        /* (0, 1] for SAMPLE, else 0 */
	uint64_t retention_bytes;  /* per partition; 0 = no limit */
	uint64_t retention_age_ns; /* 0 = no limit */
	enum sl_config_cleanup cleanup;
	uint64_t segment_bytes;
	/* Cluster mode. acks defaults to quorum from 3 replicas, else leader;
	 * min_insync to a majority of the replicas. */
	uint32_t replicas; /* 1..SL_CONFIG_MAX_REPLICAS; > 1 needs `cluster` */
	enum sl_config_acks acks;
	uint32_t min_insync;         /* 1..replicas */
	uint64_t replica_lag_max_ns; /* a follower this far behind leaves the ISR */
	bool unclean_election;       /* an out-of-sync replica may lead (loses data) */
	/* Exactly once (issue 20). dedup_window: an event whose id was stored
	 * this recently is a duplicate whoever sends it (0: off); at most
	 * dedup_window_events ids per partition are kept. producer_expiry: an
	 * idle producer id is forgotten after it. */
	uint64_t dedup_window_ns;
	uint64_t dedup_window_events;
	uint64_t producer_expiry_ns;
	/* Hot keys and partitions (issue 19): how many of the topic's
	 * busiest aggregate ids are reported (0: none counted), and the
	 * multiple of the mean partition rate past which a partition is said
	 * to be hot (0: never). */
	uint32_t hot_keys;
	uint32_t hot_partition_factor;
	bool derived; /* not listed: made for a pipeline's `to` */
	uint32_t line;
};

struct sl_config_transform {
	char *plugin;
	struct sl_config_node *args; /* a MAP, never NULL */
	uint32_t line;
};

/* A consumer's `from` (or a pipeline's `to`) that no topic of the file
 * lists: it waits for a topic of that name, created at runtime or listed
 * in data_dir/topics.yaml, and binds when there is one (issue 22). */
#define SL_CONFIG_TOPIC_LATER SIZE_MAX

struct sl_config_pipeline {
	char *name;
	char *from;
	char *to;
	size_t from_topic; /* index into sl_config.topics, or SL_CONFIG_TOPIC_LATER */
	size_t to_topic;   /* the same; a `to` is made from a listed `from` only */
	struct sl_config_transform *transforms;
	size_t n_transforms;
	uint32_t line;
};

/* A projection or a sink: a plugin fed by one topic. */
struct sl_config_consumer {
	char *name;
	char *plugin;
	char *from;
	size_t from_topic;           /* index into sl_config.topics, or SL_CONFIG_TOPIC_LATER */
	struct sl_config_node *args; /* a MAP, never NULL */
	uint32_t line;
	/* Sinks only (`circuit: { failures: 5, cooldown: 1s }`): consecutive
	 * failures that open a partition's circuit breaker, and how long it
	 * stays open before a probe. A projection entry has 0 and 0 (the key
	 * is refused there). */
	uint32_t circuit_failures;
	uint64_t circuit_cooldown_ns;
	/* Projections only (`snapshot: { every_events: 1000000, every: 60s }`):
	 * a partition's model is snapshotted after this many events applied or
	 * this long, whichever comes first. Sinks: 0 and 0. */
	uint64_t snapshot_every_events;
	uint64_t snapshot_every_ns;
};

/* Defaults of a projection's `snapshot:` keys. */
#define SL_CONFIG_SNAPSHOT_EVENTS 1000000u
#define SL_CONFIG_SNAPSHOT_NS     (60ull * 1000000000ull)

/* Defaults of a sink's `circuit:` keys. */
#define SL_CONFIG_CIRCUIT_FAILURES    5
#define SL_CONFIG_CIRCUIT_COOLDOWN_NS 1000000000ull

struct sl_config {
	char *source;   /* the file as named to the loader, or "<default>" */
	char *base_dir; /* folder a file's relative paths were resolved in; NULL = cwd */
	char *data_dir;
	uint32_t cores; /* 0 = auto */
	struct {
		struct sl_config_addr native;
		struct sl_config_addr http;
	} listen;
	struct sl_config_limits limits;
	char **plugin_path; /* empty = default, see sl_config_resolve_plugin_path */
	size_t n_plugin_path;
	struct sl_config_topic *topics;
	size_t n_topics;
	bool auto_create_topics; /* a produce to a missing topic creates it */
	struct sl_config_pipeline *pipelines;
	size_t n_pipelines;
	struct sl_config_consumer *projections;
	size_t n_projections;
	struct sl_config_consumer *sinks;
	size_t n_sinks;
	struct sl_config_auth auth;
	char *node_id; /* `node: { id }`; NULL: the host name */
	struct sl_config_cluster cluster;
};

/* The embedded default as YAML text (static, NUL-terminated). */
const char *sl_config_default_yaml(void);

/* The embedded default (PRODUCT.md's example without pipelines and sinks). */
int sl_config_default(struct sl_config *cfg);
/* Reads `path`; relative paths inside resolve against the file's folder. */
int sl_config_load_file(const char *path, struct sl_config *cfg, char *err, size_t errlen);
/* Parses `yaml` merged onto the default. Relative paths inside resolve
 * against `base_dir` (NULL: left relative to the working directory). */
int sl_config_load_string(const char *yaml, size_t len, const char *base_dir, struct sl_config *cfg,
                          char *err, size_t errlen);
void sl_config_free(struct sl_config *cfg);

/* Calls fn once per projection, sink and pipeline that names a topic no
 * entry lists (SL_CONFIG_TOPIC_LATER), in file order: its kind
 * ("projection", "sink", "pipeline"), its name, and the first topic it
 * waits for (a pipeline's `from`, else its `to`). Returns how many. */
size_t sl_config_each_waiting(const struct sl_config *cfg,
                              void (*fn)(void *arg, const char *kind, const char *name,
                                         const char *topic),
                              void *arg);

/*
 * Fills an empty plugin_path with the `plugins` folder beside the folder of
 * `exe_path` (NULL: this process's executable), so build/bin/sluiced finds
 * build/plugins. A non-empty plugin_path is left as it is. 0 or -errno.
 */
int sl_config_resolve_plugin_path(struct sl_config *cfg, const char *exe_path);

/* `path` made relative to cfg->base_dir when it is relative; malloc'd. For
 * plugins' path-valued args. 0, or -ENOMEM. */
int sl_config_resolve_path(const struct sl_config *cfg, const char *path, char **out);

const struct sl_config_topic *sl_config_topic_find(const struct sl_config *cfg, const char *name);

/* Prints the effective configuration as YAML (libyaml's emitter, keys in
 * the tables' order) that loads back to the same configuration, and whose
 * load prints the same bytes again. Returns 0, -ENOMEM, or -EIO when the
 * emitter or the stream fails. */
int sl_config_dump(const struct sl_config *cfg, FILE *out);

/*
 * One topic on its own (topics created at runtime, data_dir/topics.yaml):
 * sl_config_topic_parse reads a map with the keys of a `topics` entry,
 * defaults for what it omits, every check the config makes (`what`
 * prefixes messages); 0 or -SL_ECONFIG with err. Free with
 * sl_config_topic_clear. sl_config_topics_dump writes `topics: [...]` as
 * YAML that sl_config_node_parse reads back. sl_config_topic_each calls fn
 * with every setting as text, nested keys dotted ("retention.bytes").
 */
int sl_config_topic_parse(const struct sl_config_node *map, const char *what,
                          struct sl_config_topic *out, char *err, size_t errlen);
void sl_config_topic_clear(struct sl_config_topic *t);
int sl_config_topics_dump(const struct sl_config_topic *v, size_t n, FILE *out);
void sl_config_topic_each(const struct sl_config_topic *t,
                          void (*fn)(void *arg, const char *key, const char *value), void *arg);

const char *sl_config_partitioner_name(enum sl_config_partitioner p);

#endif
