/* Pipelines, projections and sinks: the key tables of their entries (with a
 * transform's and a sink's `circuit`), and freeing them. Binding a
 * pipeline's topics is a cross-entry check (check.c). */
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "config/keys.h"

/* ---- Pipelines ---------------------------------------------------------------- */

static int sl__args_init(void *obj)
{
	struct sl_config_node **args = obj;

	*args = sl__cfg_empty_map();
	return *args ? 0 : -ENOMEM;
}

static int sl__transform_init(void *obj)
{
	return sl__args_init(&((struct sl_config_transform *)obj)->args);
}

#define TR struct sl_config_transform

static const struct sl__key sl__transform_keys[] = {
    {"plugin", SL__T_NAME, SL__FIELD(TR, plugin), .required = true,
     .doc = "the transform plugin: NAME.so on the plugin path"},
    {"args", SL__T_ARGS, SL__FIELD(TR, args), .doc = "the plugin's arguments, a free-form map"},
};

#undef TR

static const struct sl__section sl__transform_section = {
    .what = "transform",
    .keys = sl__transform_keys,
    .n_keys = SL_ARRAY_LEN(sl__transform_keys),
    .elem_size = sizeof(struct sl_config_transform),
    .line_off = offsetof(struct sl_config_transform, line),
    .init = sl__transform_init,
};

#define PL struct sl_config_pipeline

static const struct sl__key sl__pipeline_keys[] = {
    {"name", SL__T_NAME, SL__FIELD(PL, name), .required = true,
     .doc = "the pipeline's name: its progress folder and its producer id"},
    {"from", SL__T_NAME, SL__FIELD(PL, from), .required = true,
     .doc = "the topic it reads; one no topic lists is waited for (made at runtime)"},
    {"to", SL__T_NAME, SL__FIELD(PL, to), .required = true,
     .doc = "the topic it writes; made from `from`'s settings when no topic lists it "
            "(waited for when `from` is)"},
    {"transforms", SL__T_SEQ, offsetof(PL, transforms), .off_n = offsetof(PL, n_transforms),
     .sub = &sl__transform_section, .doc = "the chain of transforms, in order"},
};

#undef PL

const struct sl__section sl__pipeline_section = {
    .what = "pipeline",
    .keys = sl__pipeline_keys,
    .n_keys = SL_ARRAY_LEN(sl__pipeline_keys),
    .elem_size = sizeof(struct sl_config_pipeline),
    .line_off = offsetof(struct sl_config_pipeline, line),
    .name_off = offsetof(struct sl_config_pipeline, name),
    .unique_name = true,
};

void sl__cfg_pipelines_free(struct sl_config_pipeline *arr, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		struct sl_config_pipeline *pl = &arr[i];

		free(pl->name);
		free(pl->from);
		free(pl->to);
		for (size_t j = 0; j < pl->n_transforms; j++) {
			free(pl->transforms[j].plugin);
			sl_config_node_free(pl->transforms[j].args);
		}
		free(pl->transforms);
	}
	free(arr);
}

/* ---- Projections and sinks ------------------------------------------------------ */

/* `from` names a topic already known (the file's topics and those the
 * pipelines made: consumers are parsed after both), or one the consumer
 * waits for (SL_CONFIG_TOPIC_LATER): created at runtime, or listed in
 * data_dir/topics.yaml. sluiced names every waiting consumer at start,
 * which is what catches a typo. */
static int sl__from_parse(struct sl__ld *ld, const struct sl_config_node *n, const char *path,
                          void *obj)
{
	static const struct sl__key name = {"from", SL__T_NAME,
	                                    .off = offsetof(struct sl_config_consumer, from)};
	struct sl_config_consumer *c = obj;
	ssize_t from;
	int rc;

	if ((rc = sl__cfg_key_parse(ld, &name, n, path, obj)))
		return rc;
	from = sl__cfg_topic_index(ld->cfg, c->from);
	c->from_topic = from < 0 ? SL_CONFIG_TOPIC_LATER : (size_t)from;
	return 0;
}

static void sl__from_fmt(const void *obj, char *buf, size_t len)
{
	snprintf(buf, len, "%s", ((const struct sl_config_consumer *)obj)->from);
}

static int sl__consumer_init(void *obj)
{
	return sl__args_init(&((struct sl_config_consumer *)obj)->args);
}

static int sl__projection_init(void *obj)
{
	struct sl_config_consumer *c = obj;

	c->snapshot_every_events = SL_CONFIG_SNAPSHOT_EVENTS;
	c->snapshot_every_ns = SL_CONFIG_SNAPSHOT_NS;
	return sl__consumer_init(obj);
}

static int sl__sink_init(void *obj)
{
	struct sl_config_consumer *c = obj;

	c->circuit_failures = SL_CONFIG_CIRCUIT_FAILURES;
	c->circuit_cooldown_ns = SL_CONFIG_CIRCUIT_COOLDOWN_NS;
	return sl__consumer_init(obj);
}

/* `circuit` guards a call to the outside world: only sinks make one. Said
 * before any other check, since "unknown key" would not tell why. */
static int sl__projection_pre(struct sl__ld *ld, const struct sl_config_node *map, const char *path,
                              void *obj)
{
	const struct sl_config_node *circuit = sl_config_node_get(map, "circuit");
	char p[SL__PATH];

	(void)obj;
	if (!circuit)
		return 0;
	sl__cfg_sub(p, path, "circuit");
	return sl__cfg_fail(
	    ld, circuit->key_line ? circuit->key_line : circuit->line, p,
	    "only sinks take a circuit breaker (a projection has no outside world to "
	    "guard)");
}

#define C struct sl_config_consumer

static const struct sl__key sl__circuit_keys[] = {
    /* A million failures in a row is never meant: a typo. */
    {"failures", SL__T_INT, SL__FIELD(C, circuit_failures), .lo = 1, .hi = 1000000,
     .doc = "consecutive failed batches that open a partition's circuit"},
    /* At least 1 ms: a zero cool-down probes a dead target in a busy loop. */
    {"cooldown", SL__T_DURATION, SL__FIELD(C, circuit_cooldown_ns), .lo = 1000000,
     .doc = "how long an open circuit waits before a probe (doubling up to 30s)"},
};

static const struct sl__section sl__circuit_section = {
    .keys = sl__circuit_keys,
    .n_keys = SL_ARRAY_LEN(sl__circuit_keys),
};

#define SL__CONSUMER_KEYS(kind)                                                                    \
	{"name", SL__T_NAME, SL__FIELD(C, name), .required = true,                                 \
	 .doc = "the " kind "'s name, unique among " kind "s"},                                    \
	    {"plugin", SL__T_NAME, SL__FIELD(C, plugin), .required = true,                         \
	     .doc = "the " kind " plugin: NAME.so on the plugin path"},                            \
	    {"from",                                                                               \
	     SL__T_CUSTOM,                                                                         \
	     0,                                                                                    \
	     .parse = sl__from_parse,                                                              \
	     .fmt = sl__from_fmt,                                                                  \
	     .required = true,                                                                     \
	     .doc = "the topic it reads"},                                                         \
	{                                                                                          \
		"args", SL__T_ARGS, SL__FIELD(C, args),                                            \
		    .doc = "the plugin's arguments, a free-form map"                               \
	}

static const struct sl__key sl__snapshot_keys[] = {
    /* 2^40 events is beyond any partition's life: larger is a typo. */
    {"every_events", SL__T_INT, SL__FIELD(C, snapshot_every_events), .lo = 1, .hi = 1ull << 40,
     .doc = "snapshot a partition's model after this many events applied"},
    {"every", SL__T_DURATION, SL__FIELD(C, snapshot_every_ns), .lo = 1000000,
     .doc = "or after this long, whichever comes first"},
};

static const struct sl__section sl__snapshot_section = {
    .keys = sl__snapshot_keys,
    .n_keys = SL_ARRAY_LEN(sl__snapshot_keys),
};

static const struct sl__key sl__projection_keys[] = {
    SL__CONSUMER_KEYS("projection"),
    /* The snapshot's keys live in the entry itself: offset 0. */
    {"snapshot", SL__T_MAP, 0, .sub = &sl__snapshot_section,
     .doc = "how often each partition's model is snapshotted (what a restart replays)"},
};

static const struct sl__key sl__sink_keys[] = {
    SL__CONSUMER_KEYS("sink"),
    /* The circuit's keys live in the entry itself: offset 0. */
    {"circuit", SL__T_MAP, 0, .sub = &sl__circuit_section,
     .doc = "the per-partition circuit breaker: failures and cooldown"},
};

#undef C

const struct sl__section sl__projection_section = {
    .what = "projection",
    .keys = sl__projection_keys,
    .n_keys = SL_ARRAY_LEN(sl__projection_keys),
    .elem_size = sizeof(struct sl_config_consumer),
    .line_off = offsetof(struct sl_config_consumer, line),
    .name_off = offsetof(struct sl_config_consumer, name),
    .unique_name = true,
    .init = sl__projection_init,
    .pre = sl__projection_pre,
};

const struct sl__section sl__sink_section = {
    .what = "sink",
    .keys = sl__sink_keys,
    .n_keys = SL_ARRAY_LEN(sl__sink_keys),
    .elem_size = sizeof(struct sl_config_consumer),
    .line_off = offsetof(struct sl_config_consumer, line),
    .name_off = offsetof(struct sl_config_consumer, name),
    .unique_name = true,
    .init = sl__sink_init,
};

void sl__cfg_consumers_free(struct sl_config_consumer *arr, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(arr[i].name);
		free(arr[i].plugin);
		free(arr[i].from);
		sl_config_node_free(arr[i].args);
	}
	free(arr);
}
