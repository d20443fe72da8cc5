/*
 * sluice/plugin.h: the plugin ABI, the one header a plugin includes.
 *
 * A plugin is a shared object (NAME.so, found in the first `plugin_path`
 * folder that has it) that exports ONE symbol, `sl_plugin_entry`
 * (SL_PLUGIN_DEFINE below writes it). The host loads it with
 * dlopen(RTLD_NOW | RTLD_LOCAL), calls the entry once with its function table
 * and gets back a description of the plugin: ABI version, kind, name and a
 * table of callbacks. Build plugins with hidden visibility
 * (-fvisibility=hidden; sl_add_plugin() in plugins/CMakeLists.txt does) so
 * nothing but the entry point is exported and two plugins never bind to each
 * other's symbols.
 *
 * ---- Versions --------------------------------------------------------------
 *
 * SL_PLUGIN_ABI_MAJOR changes when anything already published changes
 * meaning, layout or size in a way an old plugin or host would misread. The
 * host refuses a plugin of another major. SL_PLUGIN_ABI_MINOR grows when
 * something is appended: a host function at the end of struct sl_host, a
 * callback at the end of an ops table, a field at the end of a struct that
 * carries `struct_size`. The host refuses a plugin of a NEWER minor than its
 * own (the plugin could call functions the host does not have); an older
 * minor is fine.
 *
 * Frozen for good, whatever the major: the symbol name `sl_plugin_entry`, its
 * signature, the first four fields of struct sl_plugin_info (struct_size,
 * abi_major, abi_minor, kind) and the first three of struct sl_host
 * (struct_size, abi_major, abi_minor), so any host can read any plugin's
 * version and say why it refuses it, and any plugin can refuse any host.
 *
 * Struct sizes. Every struct a plugin hands to the host starts with
 * `uint32_t struct_size` = sizeof as the plugin was compiled. The host
 * refuses one smaller than what the plugin's minor promises, and reads
 * fields past struct_size (appended in a later minor than the plugin's) as
 * zero / NULL. Structs the host hands to the plugin also start with
 * struct_size: a plugin compiled against minor m may read every field minor
 * m declares, because the host's minor is >= m. struct sl_plugin_event is the
 * exception: it is passed in arrays, so its layout is frozen within a major
 * (new facts about an event come as host functions reading its bytes).
 *
 * ---- Kinds ------------------------------------------------------------------
 *
 *  transform   events in, zero or more events out (to the pipeline's `to`
 *              topic, or to a topic it names): filter, route, enrich.
 *  projection  a read model built from a topic: apply events, answer queries,
 *              snapshot and restore. The host stores the snapshot together
 *              with the offset applied, atomically, so every event is applied
 *              exactly once across restarts.
 *  sink        writes batches of events to the outside world; idempotent by
 *              (partition, offset): the host may give it a batch again after
 *              a crash, and tells it nothing else.
 *
 * ---- Threads ----------------------------------------------------------------
 *
 * One instance per (plugin config entry, partition). The host calls the
 * callbacks of an instance from ONE thread at a time, and calls to one
 * instance never overlap (a hand-over between threads is ordered by the
 * host: a thread start or a ring), so instances need no locks. Which thread:
 * `create` (and a projection's `restore`, a sink's `resume_offset`) runs on
 * the thread that starts the server, before the threads below start; then a
 * projection or transform instance is called on the reactor thread of the
 * core that owns its partition, and a sink instance on its sink's own
 * thread (`sl-sink-NAME`); `destroy` runs on the stopping thread once those
 * have stopped. (A projection rebuild's second instance lives on the owning
 * reactor from create to destroy.) Different instances (other
 * partitions) run on other cores at the same time: a plugin shares no
 * mutable state between instances (no writable globals, or it locks them
 * itself, which defeats the design).
 *
 * Queries run on the owning core too: the host carries a query from the HTTP
 * thread to the partition's core and calls `query` between two `apply`
 * calls, so a query sees a model that is never half-applied. The pure
 * callbacks (`key_route`, `merge`) touch no instance and may be called from
 * any thread, concurrently.
 *
 * Concurrent queries (ABI 1.1, opt-in). A projection whose ops carry
 * SL_PROJECTION_CONCURRENT_QUERY is queried on the HTTP threads instead, at
 * any moment from the end of its opening (create, and restore when there is
 * a snapshot) until destroy, concurrently with its own apply (and snapshot) on the owning core and
 * with other queries: no hop to a busy core, so a query does not wait for the core's turn. Still no
 * locks: the host runs every such query inside an epoch read section (ck_epoch), and the plugin
 * keeps to three rules:
 *   1. everything a query reads is either written once before it is
 *      published (release store of the pointer or of a "slot used" marker,
 *      acquire load in query) or is a naturally aligned word written and read
 *      with atomic operations (relaxed is enough for counters);
 *   2. memory a query may still hold is never freed or reused directly:
 *      after unlinking it, apply hands it to host->retire, and the host
 *      calls the given free function once every query that could have seen
 *      it has returned;
 *   3. `query` reads only (no caches, no scratch in the instance).
 * A query then sees each value as some apply left it, never torn, and at
 * least everything the host had reported applied when the query began (the
 * host checks read-your-writes and max_lag against that offset). The host
 * destroys the instance only after every query on it has returned.
 * Without the flag nothing changes: queries go to the owning core.
 *
 * Callbacks run on a reactor: they must not block (no sleeping, no network,
 * no waiting on locks). Sinks are the exception the host plans for: their
 * write_batch may do blocking I/O, and the host runs sink instances on a
 * thread of their own (still one thread per instance at a time).
 *
 * The host functions (struct sl_host) may be called from any thread, each on
 * objects the current callback was given.
 *
 * ---- Ownership ---------------------------------------------------------------
 *
 *  - struct sl_host: the host's, read-only, valid from the entry call until
 *    the plugin is unloaded. A plugin may keep the pointer.
 *  - struct sl_plugin_info and the ops table it points to, `name` and every
 *    other string in them: the plugin's, static (const globals), valid until
 *    unload. The host reads them, never writes them.
 *  - Events given to apply / process / write_batch (the array, and every
 *    byte an event points to): the host's, read-only, valid only during that
 *    call. Keep what you need by copying it.
 *  - Args (struct sl_plugin_args) and every string a host arg function
 *    returns: the host's, valid only during `create`. Copy what you keep.
 *  - The instance (`void *`): the plugin's, from create until destroy; the
 *    host only passes it back. struct sl_plugin_ctx (create's `ctx`): the
 *    host's, valid from create until destroy; keep it for host->log.
 *  - Events emitted (host->emit / emit_copy): copied by the host at once.
 *    They are published only when the callback that emitted them returns
 *    success; a failed call's emits are dropped with it.
 *  - struct sl_plugin_out (query answers, snapshots) and struct
 *    sl_plugin_emitter (events out): the host's, valid during the call that
 *    received them; the plugin appends through host functions, which copy.
 *  - Snapshot bytes given to restore: the host's, valid during that call.
 *  - Error text: the host's buffer `err` in struct sl_plugin_create; the
 *    plugin writes a NUL-terminated reason there when create fails.
 *
 * ---- Errors -----------------------------------------------------------------
 *
 * Callbacks return 0 (or a count) on success and a negative errno on
 * failure. -ENOENT from query means "no such key" (HTTP 404). A negative
 * return from apply or write_batch stops that instance: the host reports it
 * and does not advance past the batch (the same batch is given again after a
 * restart). An event a plugin cannot use (bad data) is not an error: skip it
 * or emit it to an error topic, so one bad event never stops a partition.
 */
#ifndef SLUICE_PLUGIN_H
#define SLUICE_PLUGIN_H

#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SL_PLUGIN_ABI_MAJOR 1
#define SL_PLUGIN_ABI_MINOR 2

/* The one symbol the host looks up. */
#define SL_PLUGIN_ENTRY_SYMBOL "sl_plugin_entry"

#define SL_PLUGIN_EXPORT __attribute__((visibility("default")))

enum sl_plugin_kind {
	SL_PLUGIN_TRANSFORM = 1,
	SL_PLUGIN_PROJECTION = 2,
	SL_PLUGIN_SINK = 3,
};

/* Opaque host objects, passed back to host functions. */
struct sl_plugin_ctx;     /* an instance as the host sees it (logging) */
struct sl_plugin_args;    /* a node of the YAML args tree */
struct sl_plugin_out;     /* a growable byte buffer (query answers, snapshots) */
struct sl_plugin_emitter; /* where a transform (or projection) sends events */
struct sl_state;          /* host-kept keyed state (ABI 1.2, see struct sl_host) */

/*
 * One stored event, decoded by the host once, zero-copy: every pointer points
 * into `bytes` (the encoded sluice.v1.Event as stored in the log) or into
 * host memory, valid only during the callback. Strings are NOT
 * NUL-terminated. Layout frozen within a major (see top).
 */
struct sl_plugin_event {
	const uint8_t *bytes; /* the whole encoded event */
	const uint8_t *id;    /* 16 bytes (UUID), or NULL when the event has none */
	const char *type;
	const char *aggregate; /* the partition key */
	const uint8_t *data;   /* the payload, JSON by convention */
	uint32_t len;          /* of bytes */
	uint32_t type_len;
	uint32_t aggregate_len;
	uint32_t data_len;
	int64_t timestamp_ms;   /* the producer's, ms since the Unix epoch */
	int64_t append_time_ms; /* the server's, when the event was stored */
	uint64_t offset;        /* in its partition */
	uint32_t partition;
	uint32_t schema_version;
};

/*
 * An event a plugin builds (transforms, error topics). The host encodes it;
 * every pointer need only be valid during the emit call. Zero / NULL fields
 * are absent.
 */
struct sl_plugin_event_out {
	uint32_t struct_size;
	uint32_t schema_version;
	/* The input event this one derives from, or NULL. With id NULL the host
	 * derives the id from the source's id (or its partition and offset) and
	 * the count of events emitted for it so far in this call: the same input
	 * run again after a crash gives the same ids, so repeats can be told
	 * apart from new events downstream. Without a source the id is
	 * unique but a replay does not reproduce it: pass the source. */
	const struct sl_plugin_event *source;
	const uint8_t *id; /* 16 bytes, or NULL (see source) */
	const char *type;
	const char *aggregate;
	const uint8_t *data;
	uint32_t type_len;
	uint32_t aggregate_len;
	uint32_t data_len;
	uint32_t pad0;
	int64_t timestamp_ms; /* 0: the host's clock */
};

/* What `create` gets. */
struct sl_plugin_create {
	uint32_t struct_size;
	uint32_t partition;    /* the partition this instance serves */
	uint32_t n_partitions; /* of its topic */
	uint32_t pad0;
	const struct sl_host *host;
	struct sl_plugin_ctx *ctx;         /* for host->log */
	const struct sl_plugin_args *args; /* the entry's `args:` map; read with host->arg_* */
	const char *name;                  /* the config entry's name (a projection's, a sink's) */
	const char *topic;                 /* the topic read */
	char *err; /* why create failed, NUL-terminated, at most errlen bytes */
	size_t errlen;
};

/* ---- ops tables, one per kind ------------------------------------------------ */

struct sl_transform_ops {
	uint32_t struct_size;
	uint32_t flags; /* none defined yet: 0 */
	int (*create)(const struct sl_plugin_create *c, void **inst);
	void (*destroy)(void *inst);
	/* Events of one partition in offset order. Send 0..k events per input
	 * with host->emit / host->emit_copy. Return 0, or -errno to stop.
	 * Must be deterministic: the same inputs give the same outputs, in
	 * the same order (after a crash the host runs inputs again, and only
	 * that lets it recognise the outputs already stored). */
	int (*process)(void *inst, const struct sl_plugin_event *ev, uint32_t n,
	               struct sl_plugin_emitter *em);
};

/* Query modes (see key_route). */
#define SL_PLUGIN_QUERY_FULL 0u /* write the final JSON answer */
#define SL_PLUGIN_QUERY_PART 1u /* write this partition's share, for merge */

/* struct sl_projection_ops.flags (ABI 1.1): `query` may run on any thread,
 * concurrently with the instance's other callbacks (see Threads at the top). */
#define SL_PROJECTION_CONCURRENT_QUERY 0x1u
/*
 * (ABI 1.2) The host keeps the model: the plugin reads and changes its state
 * only through host->state_* on host->state(ctx) in create and apply, and
 * answers queries from `query_state`, which gets a read-only view. The host
 * stores the state on disk (larger than memory) and commits it together
 * with the offset applied, so there are no snapshots: `snapshot`, `restore`
 * and `query` may be NULL. Queries run on any thread, concurrently with
 * apply, each on a view of the state as last committed.
 */
#define SL_PROJECTION_HOST_STATE 0x2u

struct sl_projection_ops {
	uint32_t struct_size;
	uint32_t flags; /* SL_PROJECTION_* (ABI 1.1); 0: none */
	int (*create)(const struct sl_plugin_create *c, void **inst);
	void (*destroy)(void *inst);
	/*
	 * Applies events of the instance's partition, in offset order, each
	 * exactly once. `em` sends derived events (e.g. rejections to an error
	 * topic); it is never NULL. Return 0, or -errno to stop the instance.
	 */
	int (*apply)(void *inst, const struct sl_plugin_event *ev, uint32_t n,
	             struct sl_plugin_emitter *em);
	/*
	 * Answers one key. FULL: append one JSON object to `out`. PART: append
	 * this partition's share in any form `merge` reads. Return 0, -ENOENT
	 * (no such key here), -EINVAL (malformed key).
	 */
	int (*query)(void *inst, const char *key, uint32_t key_len, uint32_t mode,
	             struct sl_plugin_out *out);
	/* Appends the whole model to `out`, in a form restore reads back. The
	 * same model should write the same bytes (a rebuild is checked against
	 * the live model by comparing them). */
	int (*snapshot)(void *inst, struct sl_plugin_out *out);
	/* Replaces the model of a freshly created instance by a snapshot. Bytes
	 * that are not a snapshot of this plugin: -EINVAL (the host then tries
	 * an older snapshot, or rebuilds from offset 0). */
	int (*restore)(void *inst, const uint8_t *bytes, size_t len);
	/*
	 * Which partition holds a key. Return 1 with *agg / *agg_len set to the
	 * aggregate whose partition answers (the host applies the topic's
	 * partitioner), 0 when every partition holds a share (the host asks each
	 * with QUERY_PART and combines with merge), or -EINVAL. NULL: the key is
	 * the aggregate itself. Pure; any thread.
	 */
	int (*key_route)(const char *key, uint32_t key_len, const char **agg, uint32_t *agg_len);
	/* Combines the PART answers of n partitions (those that did not answer
	 * -ENOENT; n may be 0) into the FULL answer. Pure; any thread. */
	int (*merge)(const struct sl_host *host, const char *key, uint32_t key_len,
	             const uint8_t *const *parts, const size_t *part_lens, uint32_t n,
	             struct sl_plugin_out *out);
	/* ---- ABI 1.2 ---- */
	/*
	 * A host-state projection's query (SL_PROJECTION_HOST_STATE): as
	 * `query`, reading the state through `st`, a read-only view of this
	 * partition as last committed (host->state_get / state_iter; the
	 * pointers they give stay valid until this call returns). Any thread,
	 * concurrently with apply and other queries; `inst` may be read (its
	 * settings from create) but not changed.
	 */
	int (*query_state)(void *inst, struct sl_state *st, const char *key, uint32_t key_len,
	                   uint32_t mode, struct sl_plugin_out *out);
};

struct sl_sink_ops {
	uint32_t struct_size;
	uint32_t flags; /* none defined yet: 0 */
	int (*create)(const struct sl_plugin_create *c, void **inst);
	void (*destroy)(void *inst);
	/* The first offset of the instance's partition the outside world does
	 * not hold yet (0 when empty), read from the outside world itself: the
	 * host starts there after a restart. */
	int (*resume_offset)(void *inst, uint64_t *next);
	/*
	 * Writes n events of `partition` in offset order, the first at
	 * first_offset (each carries its own offset: retention and compaction
	 * leave gaps). May repeat offsets written before (after a crash):
	 * writing them again must not duplicate anything. Return 0 once they
	 * are durable outside, or -errno (the host retries the batch later).
	 */
	int (*write_batch)(void *inst, uint32_t partition, uint64_t first_offset,
	                   const struct sl_plugin_event *ev, uint32_t n);
};

/* ---- what the entry point returns ---------------------------------------------- */

struct sl_plugin_info {
	/* frozen forever (see top) */
	uint32_t struct_size;
	uint32_t abi_major;
	uint32_t abi_minor;
	uint32_t kind; /* enum sl_plugin_kind */
	/* ABI 1.0 */
	const char *name;        /* the plugin's name, e.g. "counter" */
	const char *version;     /* the plugin's own version, free text */
	const char *description; /* one line */
	/* struct sl_transform_ops / sl_projection_ops / sl_sink_ops by kind */
	const void *ops;
};

/* ---- the host's function table ------------------------------------------------ */

enum sl_plugin_log_level {
	SL_PLUGIN_LOG_ERROR = 0,
	SL_PLUGIN_LOG_WARN = 1,
	SL_PLUGIN_LOG_INFO = 2,
	SL_PLUGIN_LOG_DEBUG = 3,
};

/*
 * Functions the host offers. Grows only at its end (a new minor). Every
 * function may be called from any thread on objects of the current call.
 */
struct sl_host {
	uint32_t struct_size;
	uint32_t abi_major;
	uint32_t abi_minor;
	uint32_t pad0;

	/* One line to the server's log, prefixed with the plugin, its config
	 * entry and partition. */
	void (*log)(struct sl_plugin_ctx *ctx, int level, const char *fmt, ...)
	    __attribute__((format(printf, 3, 4)));

	/*
	 * Args: the `args:` YAML tree. A node is a map, a list or a scalar.
	 * arg_get finds `key` in a map (NULL when absent or not a map);
	 * arg_len / arg_at walk a list (or a map's entries, whose key arg_key
	 * gives). The typed reads take a node and a key (NULL: the node
	 * itself) and return 0 with *out set, -ENOENT when absent or null
	 * (*out untouched, so set the default first), -EINVAL when the value is
	 * not of the type (text that is not a number, a map where a string is
	 * wanted...). Strings are NUL-terminated, valid during create.
	 */
	const struct sl_plugin_args *(*arg_get)(const struct sl_plugin_args *node, const char *key);
	size_t (*arg_len)(const struct sl_plugin_args *node);
	const struct sl_plugin_args *(*arg_at)(const struct sl_plugin_args *node, size_t i);
	const char *(*arg_key)(const struct sl_plugin_args *node);
	int (*arg_str)(const struct sl_plugin_args *node, const char *key, const char **out);
	int (*arg_i64)(const struct sl_plugin_args *node, const char *key, int64_t *out);
	int (*arg_f64)(const struct sl_plugin_args *node, const char *key, double *out);
	int (*arg_bool)(const struct sl_plugin_args *node, const char *key, int *out);
	/* Every key of the map `node` must be one of the NULL-terminated
	 * `known`; else -EINVAL with the first unknown key in *bad. Lets a
	 * plugin refuse a typo at start-up instead of ignoring it. */
	int (*arg_check_keys)(const struct sl_plugin_args *node, const char *const *known,
	                      const char **bad);

	/* Output buffers: append bytes; append a JSON string (quoted,
	 * escaped, invalid UTF-8 replaced); 0 or -ENOMEM. */
	int (*out_put)(struct sl_plugin_out *out, const void *bytes, size_t len);
	int (*out_put_json_str)(struct sl_plugin_out *out, const char *s, size_t len);
	/*
	 * Appends an encoded event as one JSON object in the consume format
	 * (id, type, aggregate, timestamp, partition, offset, data...), with
	 * `extra` members (key: NUL-terminated name, json/json_len: a complete
	 * JSON value) placed before `data`. No newline. -EINVAL when the bytes
	 * are not an event, -ENOMEM.
	 */
	int (*out_put_event_json)(struct sl_plugin_out *out, const uint8_t *bytes, size_t len,
	                          uint32_t partition, uint64_t offset,
	                          const char *const *extra_keys, const char *const *extra_json,
	                          const size_t *extra_json_lens, size_t n_extra);

	/* Events out. emit_copy sends an event unchanged (its stored bytes,
	 * its id); emit builds a new one. topic NULL: the pipeline's `to`
	 * topic (a projection has none: -EINVAL). Returns 0, -ENOENT when the
	 * topic is not one the host knows, -EINVAL for an event that cannot be
	 * encoded (empty type or aggregate), -ENOMEM. The host copies. */
	int (*emit_copy)(struct sl_plugin_emitter *em, const char *topic, size_t topic_len,
	                 const struct sl_plugin_event *ev);
	int (*emit)(struct sl_plugin_emitter *em, const char *topic, size_t topic_len,
	            const struct sl_plugin_event_out *ev);

	/* A fast 64-bit hash (XXH3) of bytes, the same in every process and
	 * release of this major: fine for hash tables and for snapshots. */
	uint64_t (*hash64)(const void *bytes, size_t len, uint64_t seed);

	/*
	 * Reads a number at the top level of a JSON object (an event's data):
	 * the member `key`. Returns 0 with *out, -ENOENT when the bytes are an
	 * object without that member, -EINVAL when they are not a JSON object
	 * or the member is not a number. The _i64 form accepts only integers
	 * in the 64-bit range.
	 */
	int (*json_get_i64)(const uint8_t *json, size_t len, const char *key, int64_t *out);
	int (*json_get_f64)(const uint8_t *json, size_t len, const char *key, double *out);
	/* The same for a string member: copied (unescaped, no NUL) into
	 * buf[0..cap), its length in *out_len. -ENOSPC when it does not fit. */
	int (*json_get_str)(const uint8_t *json, size_t len, const char *key, char *buf, size_t cap,
	                    size_t *out_len);

	/* ---- ABI 1.1 ---- */

	/*
	 * Frees `ptr` later: the host calls free_fn(ptr) once no query that
	 * could have seen it is still running (concurrent queries, see Threads
	 * at the top), on the thread that calls the instance, from a later
	 * callback's return or at destroy. Call it from the instance's own
	 * callbacks (create, restore, apply) with the `ctx` create gave.
	 * free_fn must not touch the instance (it may run after destroy). For
	 * a plugin without SL_PROJECTION_CONCURRENT_QUERY it frees at once.
	 */
	void (*retire)(struct sl_plugin_ctx *ctx, void *ptr, void (*free_fn)(void *ptr));

	/* ---- ABI 1.2: state kept by the host (SL_PROJECTION_HOST_STATE) ---- */

	/*
	 * The instance's state, for create and apply (on the instance's
	 * thread): one partition's keys, each 1 to 496 bytes of any value,
	 * with values of any length. Changes made by apply become durable
	 * together with the offset applied, so after a crash the state holds
	 * exactly the events below that offset. NULL for other plugins.
	 */
	struct sl_state *(*state)(struct sl_plugin_ctx *ctx);
	/*
	 * Reads `key`: 0 with *val / *vlen (valid until the next state call on
	 * st, or the callback's return), -ENOENT when absent, -ENAMETOOLONG
	 * for a key over 496 bytes (also for the calls below), -EIO.
	 */
	int (*state_get)(struct sl_state *st, const void *key, size_t klen, const void **val,
	                 size_t *vlen);
	/* Sets key to a copy of val[0..vlen). 0, -ENOMEM, -EROFS on a query's view. */
	int (*state_put)(struct sl_state *st, const void *key, size_t klen, const void *val,
	                 size_t vlen);
	/*
	 * Changes key in place, without a get and a put: *val points to its
	 * value resized to vlen bytes (the old bytes kept up to vlen, zeros
	 * past them; all zeros for a new key), writable until the next state
	 * call on st or the callback's return. Returns 1 when the key
	 * existed, 0 when it is new, or -errno as put.
	 */
	int (*state_modify)(struct sl_state *st, const void *key, size_t klen, size_t vlen,
	                    void **val);
	/* Removes key (absent is fine). 0, -ENOMEM, -EROFS. */
	int (*state_del)(struct sl_state *st, const void *key, size_t klen);
	/*
	 * Calls fn for each key >= from (byte order; from_len 0: every key) in
	 * order, with this instance's changes so far on the writer's view,
	 * until fn returns non-zero (returned) or the keys end (0). Pointers
	 * valid during fn; fn must not call state functions on st.
	 */
	int (*state_iter)(struct sl_state *st, const void *from, size_t from_len,
	                  int (*fn)(void *arg, const void *key, size_t klen, const void *val,
	                            size_t vlen),
	                  void *arg);
};

/*
 * The entry point every plugin exports. The host passes its table; the
 * plugin stores a pointer to its static info in *out and returns 0, or a
 * negative errno to refuse to load (for example when host->abi_major is not
 * the one it was built for).
 */
typedef int (*sl_plugin_entry_fn)(const struct sl_host *host, const struct sl_plugin_info **out);

/*
 * Writes the entry point for a plugin whose static struct sl_plugin_info is
 * `info_var`. It refuses a host of another major before touching anything.
 */
#define SL_PLUGIN_DEFINE(info_var)                                                                 \
	SL_PLUGIN_EXPORT int sl_plugin_entry(const struct sl_host *host,                           \
	                                     const struct sl_plugin_info **out);                   \
	SL_PLUGIN_EXPORT int sl_plugin_entry(const struct sl_host *host,                           \
	                                     const struct sl_plugin_info **out)                    \
	{                                                                                          \
		if (!host || host->abi_major != SL_PLUGIN_ABI_MAJOR ||                             \
		    (int64_t)host->abi_minor < (int64_t)SL_PLUGIN_ABI_MINOR)                       \
			return -EPROTO;                                                            \
		*out = &(info_var);                                                                \
		return 0;                                                                          \
	}

/* An info struct for this header's version. */
#define SL_PLUGIN_INFO_INIT(kind_, name_, version_, description_, ops_)                            \
	{                                                                                          \
		.struct_size = sizeof(struct sl_plugin_info), .abi_major = SL_PLUGIN_ABI_MAJOR,    \
		.abi_minor = SL_PLUGIN_ABI_MINOR, .kind = (kind_), .name = (name_),                \
		.version = (version_), .description = (description_), .ops = (ops_),               \
	}

#ifdef __cplusplus
}
#endif

#endif
