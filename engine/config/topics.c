/* Topics: the key table of a topic entry, its defaults, and the values of
 * a form of their own (durability, overload). */
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "config/keys.h"

static const char *const sl__partitioner_names[] = {
    [SL_CONFIG_PART_HASH] = "hash",
    [SL_CONFIG_PART_RANGE] = "range",
    [SL_CONFIG_PART_CONSISTENT] = "consistent",
    [SL_CONFIG_PART_JUMP] = "jump",
    [SL_CONFIG_PART_DIRECTORY] = "directory",
};

static const char *const sl__acks_names[] = {
    [SL_CONFIG_ACKS_LEADER] = "leader",
    [SL_CONFIG_ACKS_QUORUM] = "quorum",
    [SL_CONFIG_ACKS_ALL] = "all",
};

static const char *const sl__cleanup_names[] = {
    [SL_CONFIG_CLEANUP_DELETE] = "delete",
    [SL_CONFIG_CLEANUP_COMPACT] = "compact",
};

const char *sl_config_partitioner_name(enum sl_config_partitioner p)
{
	return (size_t)p < SL_ARRAY_LEN(sl__partitioner_names) ? sl__partitioner_names[p] : "?";
}

static int sl__topic_init(void *obj)
{
	struct sl_config_topic *t = obj;

	t->partitions = SL_CONFIG_TOPIC_PARTITIONS;
	t->partitioner = SL_CONFIG_PART_HASH;
	t->durability = SL_CONFIG_DUR_FSYNC;
	t->overload = SL_CONFIG_OVERLOAD_BLOCK;
	t->retention_bytes = SL_CONFIG_TOPIC_RETENTION_BYTES;
	t->retention_age_ns = SL_CONFIG_TOPIC_RETENTION_AGE;
	t->cleanup = SL_CONFIG_CLEANUP_DELETE;
	t->segment_bytes = SL_CONFIG_TOPIC_SEGMENT_BYTES;
	t->replicas = 1;
	t->acks = SL_CONFIG_ACKS_LEADER;
	t->min_insync = 1;
	t->replica_lag_max_ns = 10ull * 1000000000ull;
	t->dedup_window_ns = SL_CONFIG_TOPIC_DEDUP_WINDOW;
	t->dedup_window_events = SL_CONFIG_TOPIC_DEDUP_WINDOW_EVENTS;
	t->producer_expiry_ns = SL_CONFIG_TOPIC_PRODUCER_EXPIRY;
	t->hot_keys = SL_CONFIG_TOPIC_HOT_KEYS;
	t->hot_partition_factor = SL_CONFIG_TOPIC_HOT_FACTOR;
	t->partitioner_args = sl__cfg_empty_map();
	return t->partitioner_args ? 0 : -ENOMEM;
}

static void sl__part_args_clear(struct sl_config_topic *t)
{
	for (size_t i = 0; i < t->n_part_splits; i++)
		free(t->part_splits[i]);
	free(t->part_splits);
	free(t->part_file);
	t->part_splits = NULL;
	t->n_part_splits = 0;
	t->part_file = NULL;
	t->part_vnodes = 0;
	t->part_fallback = SL_CONFIG_PART_HASH;
}

void sl__cfg_topic_clear(struct sl_config_topic *t)
{
	free(t->name);
	sl_config_node_free(t->partitioner_args);
	sl__part_args_clear(t);
}

/* The keys each partitioner takes in partitioner_args. */
static const char *const sl__part_keys[][3] = {
    [SL_CONFIG_PART_HASH] = {NULL},
    [SL_CONFIG_PART_RANGE] = {"splits", NULL},
    [SL_CONFIG_PART_CONSISTENT] = {"vnodes", NULL},
    [SL_CONFIG_PART_JUMP] = {NULL},
    [SL_CONFIG_PART_DIRECTORY] = {"file", "fallback", "vnodes"},
};

int sl__cfg_part_args(struct sl__ld *ld, struct sl_config_topic *t, const char *path)
{
	const struct sl_config_node *a = t->partitioner_args, *n;
	const char *pname = sl_config_partitioner_name(t->partitioner);
	char sub[SL__PATH];
	uint64_t v;

	/* An omitted map is the default's (line 0): name the topic's line. */
	uint32_t line = a && a->line ? a->line : t->line;

	sl__part_args_clear(t);
	sl__cfg_sub(sub, path, "partitioner_args");
	for (size_t i = 0; a && i < a->n_items; i++) {
		const char *const *ok = sl__part_keys[t->partitioner];
		char list[64] = "";
		size_t k = 0;
		while (k < 3 && ok[k] && strcmp(ok[k], a->items[i].key))
			k++;
		if (k < 3 && ok[k])
			continue;
		for (k = 0; k < 3 && ok[k]; k++)
			snprintf(list + strlen(list), sizeof(list) - strlen(list), "%s%s",
			         k ? ", " : "", ok[k]);
		return sl__cfg_fail(ld, a->items[i].key_line, sub,
		                    "topic '%s': partitioner %s takes no key '%s' (%s%s)", t->name,
		                    pname, a->items[i].key,
		                    list[0] ? "it takes: " : "it takes none", list);
	}
	if (t->partitioner == SL_CONFIG_PART_RANGE) {
		n = sl_config_node_get(a, "splits");
		if (!n || n->kind != SL_CONFIG_NODE_SEQ)
			return sl__cfg_fail(
			    ld, n ? n->line : line, sub,
			    "topic '%s': range needs `splits: [k1, ...]`, %u sorted "
			    "split keys",
			    t->name, t->partitions - 1);
		t->part_splits = calloc(n->n_items ? n->n_items : 1, sizeof(*t->part_splits));
		if (!t->part_splits)
			return sl__cfg_oom(ld);
		for (size_t i = 0; i < n->n_items; i++) {
			const struct sl_config_node *e = &n->items[i];
			if (e->kind != SL_CONFIG_NODE_SCALAR)
				return sl__cfg_fail(
				    ld, e->line, sub,
				    "topic '%s': splits[%zu]: expected a key, got %s", t->name, i,
				    sl__cfg_kind_name(e));
			if (!(t->part_splits[i] = strdup(e->value)))
				return sl__cfg_oom(ld);
			t->n_part_splits++;
		}
	}
	if (sl_config_node_get(a, "vnodes")) {
		if (sl_config_node_u64(a, "vnodes", 0, &v) < 0 || v == 0 || v > UINT32_MAX)
			return sl__cfg_fail(ld, sl_config_node_get(a, "vnodes")->line, sub,
			                    "topic '%s': vnodes: expected a positive integer",
			                    t->name);
		t->part_vnodes = (uint32_t)v;
	}
	if (t->partitioner == SL_CONFIG_PART_DIRECTORY) {
		n = sl_config_node_get(a, "file");
		if (!n || n->kind != SL_CONFIG_NODE_SCALAR || !n->value[0])
			return sl__cfg_fail(ld, n ? n->line : line, sub,
			                    "topic '%s': directory needs `file: PATH`", t->name);
		if (!(t->part_file = sl__cfg_join(ld->base_dir, n->value)))
			return sl__cfg_oom(ld);
		const char *fb = sl_config_node_str(a, "fallback", "hash");
		if (!strcmp(fb, "hash"))
			t->part_fallback = SL_CONFIG_PART_HASH;
		else if (!strcmp(fb, "jump"))
			t->part_fallback = SL_CONFIG_PART_JUMP;
		else if (!strcmp(fb, "consistent"))
			t->part_fallback = SL_CONFIG_PART_CONSISTENT;
		else
			return sl__cfg_fail(ld, sl_config_node_get(a, "fallback")->line, sub,
			                    "topic '%s': fallback: expected hash, jump or "
			                    "consistent, got '%s'",
			                    t->name, fb);
	}
	return 0;
}

/* "0.25": digits with at most one '.', nothing else (no exponent, sign,
 * hex, inf or nan), then strtod, which reads that form exactly. */
static int sl__parse_rate(const char *s, double *out)
{
	size_t dots = 0, digits = 0;
	char *end;

	for (const char *p = s; *p; p++) {
		if (*p == '.')
			dots++;
		else if (*p >= '0' && *p <= '9')
			digits++;
		else
			return -EINVAL;
	}
	if (!digits || dots > 1)
		return -EINVAL;
	*out = strtod(s, &end);
	if (*end || !(*out > 0.0 && *out <= 1.0))
		return -EINVAL;
	return 0;
}

/* The shortest plain decimal that reads back as exactly `rate`: %g would
 * print exponents, which the sample:RATE form does not accept. */
static void sl__fmt_rate(double rate, char *buf, size_t len)
{
	for (int prec = 1; prec < 400; prec++) {
		snprintf(buf, len, "%.*f", prec, rate);
		if (strtod(buf, NULL) == rate)
			break;
	}
	for (size_t n = strlen(buf); n > 2 && buf[n - 1] == '0' && buf[n - 2] != '.'; n--)
		buf[n - 1] = '\0';
}

static int sl__durability_parse(struct sl__ld *ld, const struct sl_config_node *n, const char *path,
                                void *obj)
{
	const char *what = "fsync, interval:DURATION (like interval:10ms) or none";
	struct sl_config_topic *t = obj;

	if (sl__cfg_want_scalar(ld, n, path, what))
		return -SL_ECONFIG;
	t->durability_interval_ns = 0;
	if (!strcmp(n->value, "fsync")) {
		t->durability = SL_CONFIG_DUR_FSYNC;
	} else if (!strcmp(n->value, "none")) {
		t->durability = SL_CONFIG_DUR_NONE;
	} else if (!strncmp(n->value, "interval:", 9)) {
		t->durability = SL_CONFIG_DUR_INTERVAL;
		return sl__cfg_duration_of(ld, n, path, n->value + 9, 1000,
		                           &t->durability_interval_ns);
	} else {
		return sl__cfg_bad(ld, n, path, what);
	}
	return 0;
}

static void sl__durability_fmt(const void *obj, char *buf, size_t len)
{
	const struct sl_config_topic *t = obj;
	char d[32];

	switch (t->durability) {
	case SL_CONFIG_DUR_FSYNC:
		snprintf(buf, len, "fsync");
		break;
	case SL_CONFIG_DUR_NONE:
		snprintf(buf, len, "none");
		break;
	default:
		sl__cfg_fmt_duration(t->durability_interval_ns, d, sizeof(d));
		snprintf(buf, len, "interval:%s", d);
	}
}

static int sl__overload_parse(struct sl__ld *ld, const struct sl_config_node *n, const char *path,
                              void *obj)
{
	const char *what = "block, drop, sample:RATE (0 < RATE <= 1, like sample:0.1) or reject";
	struct sl_config_topic *t = obj;

	if (sl__cfg_want_scalar(ld, n, path, what))
		return -SL_ECONFIG;
	t->sample_rate = 0;
	if (!strcmp(n->value, "block"))
		t->overload = SL_CONFIG_OVERLOAD_BLOCK;
	else if (!strcmp(n->value, "drop"))
		t->overload = SL_CONFIG_OVERLOAD_DROP;
	else if (!strcmp(n->value, "reject"))
		t->overload = SL_CONFIG_OVERLOAD_REJECT;
	else if (!strncmp(n->value, "sample:", 7) && !sl__parse_rate(n->value + 7, &t->sample_rate))
		t->overload = SL_CONFIG_OVERLOAD_SAMPLE;
	else
		return sl__cfg_bad(ld, n, path, what);
	return 0;
}

static void sl__overload_fmt(const void *obj, char *buf, size_t len)
{
	const struct sl_config_topic *t = obj;
	char r[400];

	switch (t->overload) {
	case SL_CONFIG_OVERLOAD_BLOCK:
		snprintf(buf, len, "block");
		break;
	case SL_CONFIG_OVERLOAD_DROP:
		snprintf(buf, len, "drop");
		break;
	case SL_CONFIG_OVERLOAD_REJECT:
		snprintf(buf, len, "reject");
		break;
	default:
		sl__fmt_rate(t->sample_rate, r, sizeof(r));
		snprintf(buf, len, "sample:%s", r);
	}
}

#define T struct sl_config_topic

static const struct sl__key sl__retention_keys[] = {
    {"bytes", SL__T_SIZE, SL__FIELD(T, retention_bytes), .lo = 0, .hi = UINT64_MAX,
     .doc = "bytes kept per partition before the oldest segments go; 0: no limit"},
    {"age", SL__T_DURATION, SL__FIELD(T, retention_age_ns), .lo = 0,
     .doc = "age after which a sealed segment goes; 0: no limit"},
};

static const struct sl__section sl__retention_section = {
    .keys = sl__retention_keys,
    .n_keys = SL_ARRAY_LEN(sl__retention_keys),
};

static const struct sl__key sl__topic_keys[] = {
    {"name", SL__T_NAME, SL__FIELD(T, name), .required = true,
     .doc = "the topic's name: its folder under data_dir and its name on the wire"},
    {"partitions", SL__T_INT, SL__FIELD(T, partitions), .lo = 1,
     .hi = SL_CONFIG_TOPIC_MAX_PARTITIONS, .doc = "number of partitions, fixed at creation"},
    {"partitioner", SL__T_ENUM, SL__FIELD(T, partitioner), .names = sl__partitioner_names,
     .n_names = SL_ARRAY_LEN(sl__partitioner_names), .doc = "which partition a key goes to"},
    {"partitioner_args", SL__T_ARGS, SL__FIELD(T, partitioner_args),
     .doc = "the partitioner's arguments, a free-form map"},
    {"durability", SL__T_CUSTOM, 0, .parse = sl__durability_parse, .fmt = sl__durability_fmt,
     .doc = "when an event is acked: fsync, interval:DURATION or none"},
    {"overload", SL__T_CUSTOM, 0, .parse = sl__overload_parse, .fmt = sl__overload_fmt,
     .doc = "what a pressured partition does: block, drop, sample:RATE or reject"},
    /* Both retention keys live in the topic itself: the section is a view
     * of the same struct, so its offset is 0. */
    {"retention", SL__T_MAP, 0, .sub = &sl__retention_section,
     .doc = "how much of each partition is kept"},
    {"cleanup", SL__T_ENUM, SL__FIELD(T, cleanup), .names = sl__cleanup_names,
     .n_names = SL_ARRAY_LEN(sl__cleanup_names), .doc = "delete or compact old segments"},
    /* 4 KiB: one page, the smallest useful segment (tests roll segments
     * with it); 1 GiB keeps positions in 32 bits. */
    {"segment_bytes", SL__T_SIZE, SL__FIELD(T, segment_bytes), .lo = 4096, .hi = 1ull << 30,
     .doc = "size of a log segment"},
    {"replicas", SL__T_INT, SL__FIELD(T, replicas), .lo = 1, .hi = SL_CONFIG_MAX_REPLICAS,
     .doc = "copies of each partition on distinct nodes (cluster mode)"},
    {"acks", SL__T_ENUM, SL__FIELD(T, acks), .names = sl__acks_names,
     .n_names = SL_ARRAY_LEN(sl__acks_names),
     .doc = "when an event is acked: leader, quorum or all (default: quorum from 3 replicas)"},
    {"min_insync", SL__T_INT, SL__FIELD(T, min_insync), .lo = 1, .hi = SL_CONFIG_MAX_REPLICAS,
     .doc = "acks: all refuses events while fewer replicas are in sync (default: a majority)"},
    /* Under a millisecond every scheduling hiccup would shrink the ISR. */
    {"replica_lag_max", SL__T_DURATION, SL__FIELD(T, replica_lag_max_ns), .lo = 1000000,
     .doc = "a follower this far behind the leader leaves the in-sync set"},
    {"unclean_election", SL__T_BOOL, SL__FIELD(T, unclean_election),
     .doc = "let an out-of-sync replica lead when no in-sync one is left (loses events)"},
    {"dedup_window", SL__T_DURATION, SL__FIELD(T, dedup_window_ns), .lo = 0,
     .hi = 7ull * 24 * 3600 * 1000000000ull,
     .doc = "an event whose id was stored this recently is a duplicate, whoever sends it; 0: off"},
    {"dedup_window_events", SL__T_INT, SL__FIELD(T, dedup_window_events), .lo = 1024,
     .hi = 1ull << 28, .doc = "the most event ids the window keeps per partition"},
    /* A second at least: an expiry shorter than a reconnect would forget
     * producers while they retry. */
    {"producer_expiry", SL__T_DURATION, SL__FIELD(T, producer_expiry_ns), .lo = 1000000000ull,
     .doc = "an idle producer id is forgotten after it"},
    {"hot_keys", SL__T_INT, SL__FIELD(T, hot_keys), .lo = 0, .hi = SL_CONFIG_TOPIC_HOT_KEYS_MAX,
     .doc = "the topic's busiest aggregate ids reported by rate in status and metrics; 0: off"},
    {"hot_partition_factor", SL__T_INT, SL__FIELD(T, hot_partition_factor), .lo = 0, .hi = 1000000,
     .doc = "a partition past this many times the topic's mean rate is logged as hot; 0: never"},
};

#undef T

const struct sl__section sl__topic_section = {
    .what = "topic",
    .keys = sl__topic_keys,
    .n_keys = SL_ARRAY_LEN(sl__topic_keys),
    .elem_size = sizeof(struct sl_config_topic),
    .line_off = offsetof(struct sl_config_topic, line),
    .name_off = offsetof(struct sl_config_topic, name),
    .unique_name = true,
    .init = sl__topic_init,
    .check = sl__cfg_topic_check,
};

ssize_t sl__cfg_topic_index(const struct sl_config *cfg, const char *name)
{
	for (size_t i = 0; i < cfg->n_topics; i++) {
		if (!strcmp(cfg->topics[i].name, name))
			return (ssize_t)i;
	}
	return -1;
}

const struct sl_config_topic *sl_config_topic_find(const struct sl_config *cfg, const char *name)
{
	ssize_t i = sl__cfg_topic_index(cfg, name);

	return i < 0 ? NULL : &cfg->topics[i];
}

int sl_config_topic_parse(const struct sl_config_node *map, const char *what,
                          struct sl_config_topic *out, char *err, size_t errlen)
{
	struct sl__ld ld = {.name = what, .err = err, .errlen = errlen};
	int rc;

	memset(out, 0, sizeof(*out));
	if (errlen)
		err[0] = '\0';
	if ((rc = sl__topic_init(out)))
		return rc;
	if (!map || map->kind != SL_CONFIG_NODE_MAP) {
		snprintf(err, errlen, "%s: expected a map (a topic)", what);
		sl__cfg_topic_clear(out);
		memset(out, 0, sizeof(*out));
		return -SL_ECONFIG;
	}
	rc = sl__cfg_section_parse(&ld, &sl__topic_section, map, "topic", out);
	if (rc) {
		sl__cfg_topic_clear(out);
		memset(out, 0, sizeof(*out));
	}
	return rc;
}

void sl_config_topic_clear(struct sl_config_topic *t)
{
	sl__cfg_topic_clear(t);
	memset(t, 0, sizeof(*t));
}
