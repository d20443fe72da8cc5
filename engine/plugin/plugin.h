/*
 * plugin: the host side of the plugin ABI (sluice/plugin.h) — finding and
 * loading a plugin, refusing one that does not fit, the host function table,
 * instances, and the buffers plugins write into (answers, snapshots, events
 * out).
 *
 * Loading: NAME.so is looked up in each plugin_path folder in order; the
 * first that has it is opened with dlopen(RTLD_NOW | RTLD_LOCAL) (every
 * symbol resolved now, none leaking into other plugins), its
 * `sl_plugin_entry` is called with the host table, and what it returns is
 * checked: ABI major equal to ours, minor not newer than ours, struct_size of
 * the info and of the ops table at least what its minor promises, the kind
 * the config asked for, the callbacks that kind needs present. Any failure
 * unloads it and says which file and why, e.g.
 *   "plugins/x.so: built for plugin ABI 2.0, this sluiced speaks 1.0".
 * Before dlopen the file's path is resolved and checked like ssh's
 * StrictModes and sudo's sudoers check: the file and every folder above it
 * owned by root or sluiced's uid and writable by neither others nor a group
 * other than root's or sluiced's (a sticky folder above the plugin's own folder, like /tmp, may be
 * world-writable); otherwise it is refused naming the file or folder and
 * why, e.g. "p/x.so: refused: folder /srv/p is writable by others (mode
 * 0777): ...". The resolved file is the one loaded.
 * The info and ops are copied into host structs zero-extended to the host's
 * size, so fields a plugin's older minor lacks read as NULL / 0.
 *
 * Ownership: sl_plugin_load returns a plugin the caller unloads after
 * destroying every instance of it. An instance belongs to the caller until
 * sl_plugin_inst_destroy. sl_plugin_out and sl_plugin_emitter are plain
 * values the caller zero-initialises, reuses, and releases.
 * Threads: loading and unloading on one thread (start-up and shutdown); an
 * instance is used by one thread at a time (see sluice/plugin.h); the host
 * table is constant and safe from any thread.
 */
#ifndef SL_PLUGIN_H
#define SL_PLUGIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/epoch.h"
#include "config/config.h"
#include "sluice/plugin.h"
#include "json/json.h"

struct sl_plugin {
	void *dl;
	char *file; /* the path it was loaded from */
	char *name; /* as asked for (the file name without .so) */
	uint32_t abi_minor;
	enum sl_plugin_kind kind;
	struct sl_plugin_info info; /* zero-extended copy */
	union {
		struct sl_transform_ops transform;
		struct sl_projection_ops projection;
		struct sl_sink_ops sink;
	} ops; /* zero-extended copy of the kind's table */
};

/* The host function table handed to every plugin. */
const struct sl_host *sl_plugin_host(void);

/* "transform", "projection", "sink", or "unknown". */
const char *sl_plugin_kind_name(uint32_t kind);

/*
 * Finds NAME.so in the first of path[0..n_path) that has it and loads it as
 * a plugin of kind `want`. Returns 0, -ENOENT (in no folder; err lists
 * them), -SL_EPLUGIN (refused: err names the file and the reason), -ENOMEM.
 * A name holding '/' or starting with '.' is refused (-SL_EPLUGIN): plugin
 * names are file names, not paths.
 */
int sl_plugin_load(const char *const *path, size_t n_path, const char *name,
                   enum sl_plugin_kind want, struct sl_plugin **out, char *err, size_t errlen);
/* The same for one file. */
int sl_plugin_open(const char *file, enum sl_plugin_kind want, struct sl_plugin **out, char *err,
                   size_t errlen);
void sl_plugin_unload(struct sl_plugin *p);

/* ---- instances -------------------------------------------------------------- */

/* Where an instance's log lines go: one line, no newline. NULL: stderr. */
typedef void (*sl_plugin_log_fn)(void *arg, int level, const char *line);

struct sl_plugin_ctx {
	const struct sl_plugin *plugin;
	char *name; /* the config entry */
	uint32_t partition;
	sl_plugin_log_fn log_fn;
	void *log_arg;
	/* A concurrent-query projection's writer record (host->retire), from
	 * create to destroy; NULL otherwise (retire frees at once). */
	struct sl_epoch_rec *er;
	/* A host-state projection's writer view (host->state), set by its
	 * applier before create; NULL otherwise. */
	struct sl_state *state;
};

struct sl_plugin_inst_opts {
	const char *name;  /* config entry name; NULL: the plugin's */
	const char *topic; /* the topic read; NULL: "" */
	uint32_t partition;
	uint32_t n_partitions;
	const struct sl_config_node *args; /* a map, or NULL for none */
	sl_plugin_log_fn log_fn;
	void *log_arg;
	/* Where a SL_PROJECTION_CONCURRENT_QUERY projection retires memory
	 * its queries may hold; NULL: the host never queries it off its
	 * thread (tests, rebuilds), and retire frees at once. */
	struct sl_epoch *epoch;
	/* A host-state projection's writer view (engine/state), or NULL. */
	struct sl_state *state;
};

struct sl_plugin_inst {
	struct sl_plugin *plugin; /* not owned */
	void *inst;               /* the plugin's */
	struct sl_plugin_ctx ctx;
};

/* Calls the plugin's create. -SL_EPLUGIN with err "NAME: reason" when it
 * refuses (its own reason when it gave one), -ENOMEM. */
int sl_plugin_inst_create(struct sl_plugin *p, const struct sl_plugin_inst_opts *o,
                          struct sl_plugin_inst **out, char *err, size_t errlen);
/* Waits for the queries still reading the instance (concurrent-query
 * projections; the caller has made sure no new one starts), then destroys. */
void sl_plugin_inst_destroy(struct sl_plugin_inst *i);
/* Frees what the instance retired and no query can still read; on the
 * instance's thread, after its callbacks. True while some is pending. */
bool sl_plugin_inst_poll(struct sl_plugin_inst *i);
/* Whether queries on p may run off the owning thread. */
bool sl_plugin_concurrent_query(const struct sl_plugin *p);
/* Whether p keeps its model in the host's state (SL_PROJECTION_HOST_STATE). */
bool sl_plugin_host_state(const struct sl_plugin *p);

/* ---- buffers plugins write into --------------------------------------------- */

/* A query answer or a snapshot. Zero-initialise; `buf.len = 0` reuses. */
struct sl_plugin_out {
	struct sl_json_buf buf;
	struct sl_json_header *sl__hdr; /* scratch for event JSON */
	size_t sl__hdr_cap;
};

void sl_plugin_out_release(struct sl_plugin_out *o);

/*
 * Events a transform or projection emits, encoded, back to back. The owner
 * sets resolve / default_topic / id_seed once; after each call into the
 * plugin it walks what was emitted with sl_plugin_emitter_next and resets.
 */
struct sl_plugin_emitter {
	/* topic name -> index >= 0, or -ENOENT. NULL: no named topics. */
	int (*resolve)(void *arg, const char *topic, size_t len);
	void *resolve_arg;
	int default_topic; /* index for topic NULL; < 0: none */
	uint64_t id_seed;  /* mixed into derived ids (e.g. a hash of the pipeline) */

	uint32_t n;       /* events held */
	uint8_t *sl__buf; /* records: u32 topic, u32 len, bytes, padded to 8 */
	size_t sl__len, sl__cap;
	const struct sl_plugin_event *sl__src; /* for derived ids */
	uint32_t sl__src_count;
};

/* 1 with the next event, 0 after the last. *cursor starts at 0. */
int sl_plugin_emitter_next(const struct sl_plugin_emitter *em, size_t *cursor, int *topic,
                           const uint8_t **bytes, uint32_t *len);
void sl_plugin_emitter_reset(struct sl_plugin_emitter *em);
void sl_plugin_emitter_release(struct sl_plugin_emitter *em);

/*
 * Fills a plugin event from one stored event (zero-copy: pointers into
 * `bytes`). Returns 0, or -SL_EPROTO_DECODE when the bytes are not an event.
 */
int sl_plugin_event_fill(struct sl_plugin_event *pe, const uint8_t *bytes, uint32_t len,
                         uint32_t partition, uint64_t offset, int64_t append_time_ms);

#endif
