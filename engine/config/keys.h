/*
 * config/keys.h: the configuration's key tables and the one loop that
 * parses (keys.c) and prints (dump.c) a section through its table. Private
 * to engine/config/; the face of the module is config.h.
 *
 * Every section of sluice.yaml (the root, `listen`, `limits`, a topic, its
 * `retention`, a pipeline, a transform, a projection, a sink, a sink's
 * `circuit`) is a table of struct sl__key rows: the key's name, its type,
 * where its value lives in the target struct (offsetof), its range or its
 * names, and a one-line doc. Adding a key is adding a row: the parser finds
 * it, unknown keys are refused with a did-you-mean taken from the table, and
 * the dump prints it, in table order.
 *
 * Ownership: the tables are static and constant. Threads: none of this
 * holds state; a struct sl__ld lives for one load on one thread.
 */
#ifndef SL_CONFIG_KEYS_H
#define SL_CONFIG_KEYS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "config/config.h"

/* Key paths like "pipelines[12].transforms[3].plugin" fit with room. */
#define SL__PATH 256

/* One load: where messages go and what paths resolve against. */
struct sl__ld {
	const char *name; /* prefixes messages */
	const char *base_dir;
	char *err;
	size_t errlen;
	struct sl_config *cfg; /* the configuration being filled */
};

struct sl__key;
struct sl__section;

enum sl__type {
	SL__T_BOOL,     /* bool */
	SL__T_INT,      /* uint32_t or uint64_t (by `size`), lo..hi */
	SL__T_SIZE,     /* uint64_t bytes, with units, lo..hi */
	SL__T_DURATION, /* uint64_t nanoseconds, with units, at least lo */
	SL__T_NAME,     /* char *, one safe path component (sl__name_ok) */
	SL__T_PATH,     /* char *, resolved against the file's folder */
	SL__T_ENUM,     /* an enum (int sized), one of `names` */
	SL__T_PATHS,    /* char ** at off, size_t count at off_n: a list of paths */
	SL__T_STRS,     /* like PATHS, the strings kept as written (URLs) */
	SL__T_MAP,      /* a nested section (`sub`) in the same struct */
	SL__T_SEQ,      /* an array of `sub` sections at off, count at off_n */
	SL__T_ARGS,     /* struct sl_config_node *: a free-form map for plugins */
	SL__T_CUSTOM,   /* parse and fmt below: a scalar of a form of its own */
};

/* A custom key's parser: reads scalar `n` into the struct at `obj`. */
typedef int (*sl__parse_fn)(struct sl__ld *ld, const struct sl_config_node *n, const char *path,
                            void *obj);
/* A custom key's printer: the scalar text of the value in `obj`. */
typedef void (*sl__fmt_fn)(const void *obj, char *buf, size_t len);
/* A section's hook: runs on its map node and its struct. */
typedef int (*sl__hook_fn)(struct sl__ld *ld, const struct sl_config_node *map, const char *path,
                           void *obj);

struct sl__key {
	const char *name;
	enum sl__type type;
	size_t off;   /* the value's offset in the section's struct */
	size_t off_n; /* PATHS, SEQ: the count's offset */
	size_t size;  /* INT, ENUM: the field's width */
	uint64_t lo, hi;
	const char *const *names; /* ENUM: names by value */
	size_t n_names;
	const struct sl__section *sub; /* MAP, SEQ */
	sl__parse_fn parse;            /* CUSTOM */
	sl__fmt_fn fmt;                /* CUSTOM */
	/* SEQ: runs once the whole list is parsed, on the section's struct
	 * (the pipelines bind their topics before projections read them). */
	sl__hook_fn after;
	bool required;
	/* Parsed after every other key of its section, in table order,
	 * whatever the file's order (pipelines, projections and sinks name
	 * topics). */
	bool late;
	const char *doc;
};

struct sl__section {
	const char *what; /* SEQ elements: "topic" in "expected a map (a topic)" */
	const struct sl__key *keys;
	size_t n_keys;
	size_t elem_size; /* SEQ elements */
	size_t line_off;  /* SEQ elements: uint32_t line of the entry, or 0 */
	/* SEQ elements whose `name` must be unique in the list: its offset
	 * (char *), else 0. */
	size_t name_off;
	bool unique_name;
	/* SEQ elements: sets the defaults (the element is zeroed first). */
	int (*init)(void *obj);
	sl__hook_fn pre;   /* before the keys are checked */
	sl__hook_fn check; /* after every key: cross-key checks */
};

/* Row builders: the offset and width come from the struct and field. */
#define SL__FIELD(type, field) offsetof(type, field), .size = sizeof(((type *)0)->field)

/* ---- keys.c: messages ---------------------------------------------------- */

int sl__cfg_fail(struct sl__ld *ld, uint32_t line, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
int sl__cfg_oom(struct sl__ld *ld);
/* What a node holds, for "got ..." in messages, quoted and cut short. */
const char *sl__cfg_got(const struct sl_config_node *n, char *buf, size_t len);
#define sl__cfg_kind_name(n) sl__cfg_got((n), (char[96]){0}, 96)
int sl__cfg_bad(struct sl__ld *ld, const struct sl_config_node *n, const char *path,
                const char *what);
int sl__cfg_want_scalar(struct sl__ld *ld, const struct sl_config_node *n, const char *path,
                        const char *what);
void sl__cfg_sub(char *out, const char *parent, const char *key);
void sl__cfg_idx(char *out, const char *parent, size_t i);

/* ---- keys.c: values ------------------------------------------------------ */

int sl__cfg_duration_of(struct sl__ld *ld, const struct sl_config_node *n, const char *path,
                        const char *text, uint64_t lo, uint64_t *out);
void sl__cfg_fmt_size(uint64_t v, char *buf, size_t len);
void sl__cfg_fmt_duration(uint64_t ns, char *buf, size_t len);
char *sl__cfg_join(const char *base, const char *rel);
struct sl_config_node *sl__cfg_empty_map(void);

/* ---- keys.c: the generic loop -------------------------------------------- */

/*
 * Parses map node `map` into `obj` through `sec`: unknown keys refused
 * (with a did-you-mean from the table), required keys checked in table
 * order, every key parsed by its row, `late` rows last, then sec->check.
 * A null node leaves `obj` as it is; another kind than a map is an error.
 */
int sl__cfg_section_parse(struct sl__ld *ld, const struct sl__section *sec,
                          const struct sl_config_node *map, const char *path, void *obj);

/* Parses one key's value `n` by its row into the struct at `obj`. */
int sl__cfg_key_parse(struct sl__ld *ld, const struct sl__key *key, const struct sl_config_node *n,
                      const char *path, void *obj);

/* ---- the tables ------------------------------------------------------------ */

extern const struct sl__section sl__root_section;     /* config.c */
extern const struct sl__section sl__topic_section;    /* topics.c */
extern const struct sl__section sl__pipeline_section; /* pipelines.c */
extern const struct sl__section sl__projection_section;
extern const struct sl__section sl__sink_section;

/* ---- topics.c, pipelines.c, check.c ---------------------------------------- */

void sl__cfg_topic_clear(struct sl_config_topic *t);
/* partitioner_args read into t's part_* fields (paths against ld's folder). */
int sl__cfg_part_args(struct sl__ld *ld, struct sl_config_topic *t, const char *path);
ssize_t sl__cfg_topic_index(const struct sl_config *cfg, const char *name);
void sl__cfg_pipelines_free(struct sl_config_pipeline *arr, size_t n);
void sl__cfg_consumers_free(struct sl_config_consumer *arr, size_t n);
int sl__cfg_root_check(struct sl__ld *ld, const struct sl_config_node *map, const char *path,
                       void *obj);
int sl__cfg_cluster_check(struct sl__ld *ld, const struct sl_config_node *map, const char *path,
                          void *obj);
int sl__cfg_topic_check(struct sl__ld *ld, const struct sl_config_node *map, const char *path,
                        void *obj);
int sl__cfg_open_ports_check(struct sl__ld *ld, const struct sl_config_node *map, const char *path,
                             void *obj);
int sl__cfg_limits_check(struct sl__ld *ld, const struct sl_config_node *map, const char *path,
                         void *obj);
int sl__cfg_resolve_pipelines(struct sl__ld *ld, const struct sl_config_node *seq, const char *path,
                              void *obj);

#endif
