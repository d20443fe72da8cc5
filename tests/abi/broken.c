/*
 * Plugins that must be refused, one per way of being wrong, built from this
 * one file with one ABI_* macro each (tests/abi/CMakeLists.txt), plus
 * ABI_GOOD, the same plugin done right. Each is what a real mistake looks
 * like from the host's side: a plugin built against another header, a
 * hand-rolled entry point, a table from an older header copy.
 */
#include <sluice/plugin.h>

#include <stddef.h>

#include <stdlib.h>

/* Each variant leaves some of these out. */
#define UNUSED __attribute__((unused))

UNUSED static int p_create(const struct sl_plugin_create *c, void **inst)
{
	*inst = calloc(1, 8);
	return *inst ? 0 : -ENOMEM;
}

UNUSED static void p_destroy(void *inst)
{
	free(inst);
}

UNUSED static int p_apply(void *inst, const struct sl_plugin_event *ev, uint32_t n,
                          struct sl_plugin_emitter *em)
{
	*(uint64_t *)inst += n;
	return 0;
}

UNUSED static int p_query(void *inst, const char *key, uint32_t key_len, uint32_t mode,
                          struct sl_plugin_out *out)
{
	return -ENOENT;
}

UNUSED static int p_snapshot(void *inst, struct sl_plugin_out *out)
{
	return 0;
}

#if defined(ABI_UNRESOLVED)
/* Defined nowhere: RTLD_NOW must fail at load, not at the first call. */
extern int sl_abi_test_no_such_function(void);
#endif

UNUSED static int p_restore(void *inst, const uint8_t *bytes, size_t len)
{
#if defined(ABI_UNRESOLVED)
	return sl_abi_test_no_such_function();
#else
	return 0;
#endif
}

UNUSED static int p_process(void *inst, const struct sl_plugin_event *ev, uint32_t n,
                            struct sl_plugin_emitter *em)
{
	return 0;
}

static const struct sl_projection_ops ops UNUSED = {
#if defined(ABI_SMALL_OPS)
    .struct_size = 16,
#elif defined(ABI_MINOR1) || defined(ABI_MINOR1_STATE)
    /* 1.1's table: it ends before query_state. */
    .struct_size = offsetof(struct sl_projection_ops, query_state),
#else
    .struct_size = sizeof(struct sl_projection_ops),
#endif
#if defined(ABI_MINOR0_FLAG)
    .flags = SL_PROJECTION_CONCURRENT_QUERY, /* a 1.1 flag in a 1.0 plugin */
#elif defined(ABI_BAD_FLAGS)
    .flags = 0x80,
#elif defined(ABI_MINOR1)
    .flags = SL_PROJECTION_CONCURRENT_QUERY,
#elif defined(ABI_MINOR1_STATE) || defined(ABI_STATE_NO_QUERY)
    .flags = SL_PROJECTION_HOST_STATE, /* 1.2's flag (in a 1.1 plugin, or without query_state) */
#endif
    .create = p_create,
    .destroy = p_destroy,
#if !defined(ABI_NO_APPLY)
    .apply = p_apply,
#endif
    .query = p_query,
    .snapshot = p_snapshot,
    .restore = p_restore,
};

static const struct sl_transform_ops xops UNUSED = {
    .struct_size = sizeof(struct sl_transform_ops),
    .create = p_create,
    .destroy = p_destroy,
    .process = p_process,
};

#if defined(ABI_TINY_INFO)
/* Only the frozen head, and it claims to be smaller than even that. */
static const struct {
	uint32_t struct_size, abi_major, abi_minor, kind;
} info UNUSED = {8, SL_PLUGIN_ABI_MAJOR, SL_PLUGIN_ABI_MINOR, SL_PLUGIN_PROJECTION};
#elif defined(ABI_SMALL_INFO)
/* A 1.0 info cut short: the head and the name only. */
static const struct {
	uint32_t struct_size, abi_major, abi_minor, kind;
	const char *name;
} info UNUSED = {24, SL_PLUGIN_ABI_MAJOR, SL_PLUGIN_ABI_MINOR, SL_PLUGIN_PROJECTION,
                 "abi_small_info"};
#else
static const struct sl_plugin_info info UNUSED = {
    .struct_size = sizeof(struct sl_plugin_info),
#if defined(ABI_MAJOR2)
    .abi_major = SL_PLUGIN_ABI_MAJOR + 1,
    .abi_minor = 0,
#elif defined(ABI_MINOR_NEWER)
    .abi_major = SL_PLUGIN_ABI_MAJOR,
    .abi_minor = SL_PLUGIN_ABI_MINOR + 1,
#elif defined(ABI_MINOR0) || defined(ABI_MINOR0_FLAG)
    .abi_major = SL_PLUGIN_ABI_MAJOR,
    .abi_minor = 0,
#elif defined(ABI_MINOR1) || defined(ABI_MINOR1_STATE)
    .abi_major = SL_PLUGIN_ABI_MAJOR,
    .abi_minor = 1,
#else
    .abi_major = SL_PLUGIN_ABI_MAJOR,
    .abi_minor = SL_PLUGIN_ABI_MINOR,
#endif
#if defined(ABI_TRANSFORM)
    .kind = SL_PLUGIN_TRANSFORM,
    .ops = &xops,
#elif defined(ABI_BAD_KIND)
    .kind = 42,
    .ops = &ops,
#else
    .kind = SL_PLUGIN_PROJECTION,
#if !defined(ABI_NULL_OPS)
    .ops = &ops,
#endif
#endif
#if !defined(ABI_NO_NAME)
    .name = "abi_test",
#endif
    .version = "0",
    .description = "a plugin for tests/abi",
};
#endif

#if defined(ABI_NO_ENTRY)
/* Exported, but under another name: the classic typo. */
SL_PLUGIN_EXPORT int sl_plugin_entry_v1(const struct sl_host *host,
                                        const struct sl_plugin_info **out);
SL_PLUGIN_EXPORT int sl_plugin_entry_v1(const struct sl_host *host,
                                        const struct sl_plugin_info **out)
{
	*out = (const struct sl_plugin_info *)&info;
	return 0;
}
#elif defined(ABI_HIDDEN_ENTRY)
/* The right name, but not exported: hidden visibility hides it. */
int sl_plugin_entry(const struct sl_host *host, const struct sl_plugin_info **out);
int sl_plugin_entry(const struct sl_host *host, const struct sl_plugin_info **out)
{
	*out = (const struct sl_plugin_info *)&info;
	return 0;
}
#else
SL_PLUGIN_EXPORT int sl_plugin_entry(const struct sl_host *host, const struct sl_plugin_info **out);
SL_PLUGIN_EXPORT int sl_plugin_entry(const struct sl_host *host, const struct sl_plugin_info **out)
{
#if defined(ABI_ENTRY_ERROR)
	return -ENOTSUP;
#elif defined(ABI_NULL_INFO)
	return 0;
#else
	/* Touch the table so a broken host shows up here too. */
	if (host->struct_size < 16 || host->abi_major != SL_PLUGIN_ABI_MAJOR)
		return -EPROTO;
	*out = (const struct sl_plugin_info *)&info;
	return 0;
#endif
}
#endif
