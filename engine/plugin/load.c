/*
 * Finding, loading and checking plugins; instances.
 */
#include "plugin/plugin.h"

#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/base.h"

/*
 * The smallest struct sizes a plugin of each minor may hand over: what that
 * minor declared. Index = minor. When a minor appends a field, the entries
 * of older minors stay at their old sizes (write them as offsetof() of the
 * first field appended), and a new entry says sizeof.
 */
struct sl__min_sizes {
	uint32_t info;
	uint32_t transform;
	uint32_t projection;
	uint32_t sink;
};

static const struct sl__min_sizes sl__min[SL_PLUGIN_ABI_MINOR + 1] = {
    [0] =
        {
            .info = sizeof(struct sl_plugin_info),
            .transform = sizeof(struct sl_transform_ops),
            .projection = offsetof(struct sl_projection_ops, query_state),
            .sink = sizeof(struct sl_sink_ops),
        },
    /* 1.1 appended only a host function and a projection flag. */
    [1] =
        {
            .info = sizeof(struct sl_plugin_info),
            .transform = sizeof(struct sl_transform_ops),
            .projection = offsetof(struct sl_projection_ops, query_state),
            .sink = sizeof(struct sl_sink_ops),
        },
    /* 1.2 appended query_state to the projection ops (and host functions). */
    [2] =
        {
            .info = sizeof(struct sl_plugin_info),
            .transform = sizeof(struct sl_transform_ops),
            .projection = sizeof(struct sl_projection_ops),
            .sink = sizeof(struct sl_sink_ops),
        },
};

/* The flags each minor defines, by kind; a plugin setting others was built
 * against a header this host does not know (or sets garbage): refused. */
static uint32_t sl__known_flags(enum sl_plugin_kind kind, uint32_t minor)
{
	if (kind == SL_PLUGIN_PROJECTION && minor >= 2)
		return SL_PROJECTION_CONCURRENT_QUERY | SL_PROJECTION_HOST_STATE;
	if (kind == SL_PLUGIN_PROJECTION && minor >= 1)
		return SL_PROJECTION_CONCURRENT_QUERY;
	return 0;
}

/* The fields every major shares (sluice/plugin.h: frozen forever). */
struct sl__info_head {
	uint32_t struct_size;
	uint32_t abi_major;
	uint32_t abi_minor;
	uint32_t kind;
};

const char *sl_plugin_kind_name(uint32_t kind)
{
	switch (kind) {
	case SL_PLUGIN_TRANSFORM:
		return "transform";
	case SL_PLUGIN_PROJECTION:
		return "projection";
	case SL_PLUGIN_SINK:
		return "sink";
	default:
		return "unknown";
	}
}

/* Checks the kind's ops table and copies it zero-extended. */
static int sl__take_ops(struct sl_plugin *p, const void *ops, char *err, size_t errlen)
{
	const struct sl__min_sizes *min = &sl__min[p->abi_minor];
	const char *kind = sl_plugin_kind_name(p->kind);
	const char *missing = NULL;
	uint32_t need, have, host_size;

	if (!ops) {
		sl_errf(err, errlen, "%s: no %s ops table (info.ops is NULL)", p->file, kind);
		return -SL_EPLUGIN;
	}
	/* Every ops table starts with its struct_size. */
	memcpy(&have, ops, sizeof(have));
	switch (p->kind) {
	case SL_PLUGIN_TRANSFORM:
		need = min->transform;
		host_size = sizeof(p->ops.transform);
		break;
	case SL_PLUGIN_PROJECTION:
		need = min->projection;
		host_size = sizeof(p->ops.projection);
		break;
	default:
		need = min->sink;
		host_size = sizeof(p->ops.sink);
		break;
	}
	if (have < need) {
		sl_errf(err, errlen,
		        "%s: %s ops table is %u bytes, plugin ABI %d.%u needs at least %u", p->file,
		        kind, have, SL_PLUGIN_ABI_MAJOR, p->abi_minor, need);
		return -SL_EPLUGIN;
	}
	memset(&p->ops, 0, sizeof(p->ops));
	memcpy(&p->ops, ops, have < host_size ? have : host_size);

	switch (p->kind) {
	case SL_PLUGIN_TRANSFORM: {
		const struct sl_transform_ops *o = &p->ops.transform;
		missing = !o->create    ? "create"
		          : !o->destroy ? "destroy"
		          : !o->process ? "process"
		                        : NULL;
		break;
	}
	case SL_PLUGIN_PROJECTION: {
		const struct sl_projection_ops *o = &p->ops.projection;
		/* The flags sit at a fixed place whatever the minor; unknown
		 * ones are refused below. */
		bool host_state = p->abi_minor >= 2 && (o->flags & SL_PROJECTION_HOST_STATE);
		missing = !o->create                      ? "create"
		          : !o->destroy                   ? "destroy"
		          : !o->apply                     ? "apply"
		          : host_state && !o->query_state ? "query_state"
		          : host_state                    ? NULL
		          : !o->query                     ? "query"
		          : !o->snapshot                  ? "snapshot"
		          : !o->restore                   ? "restore"
		                                          : NULL;
		/* A key spread over every partition needs its parts combined. */
		if (!missing && o->key_route && !o->merge)
			missing = "merge (required with key_route)";
		break;
	}
	default: {
		const struct sl_sink_ops *o = &p->ops.sink;
		missing = !o->create          ? "create"
		          : !o->destroy       ? "destroy"
		          : !o->write_batch   ? "write_batch"
		          : !o->resume_offset ? "resume_offset"
		                              : NULL;
		break;
	}
	}
	if (missing) {
		sl_errf(err, errlen, "%s: %s ops table has no '%s' callback", p->file, kind,
		        missing);
		return -SL_EPLUGIN;
	}
	/* Every ops table has its flags right after struct_size. */
	uint32_t flags;
	memcpy(&flags, (const char *)ops + sizeof(uint32_t), sizeof(flags));
	if (flags & ~sl__known_flags(p->kind, p->abi_minor)) {
		sl_errf(err, errlen, "%s: %s ops flags 0x%x not defined in plugin ABI %d.%u",
		        p->file, kind, flags & ~sl__known_flags(p->kind, p->abi_minor),
		        SL_PLUGIN_ABI_MAJOR, p->abi_minor);
		return -SL_EPLUGIN;
	}
	return 0;
}

/* Everything after dlopen: the entry point and what it returns. */
static int sl__check(struct sl_plugin *p, enum sl_plugin_kind want, char *err, size_t errlen)
{
	const struct sl_plugin_info *info = NULL;
	struct sl__info_head head;
	sl_plugin_entry_fn entry;
	void *sym;
	int ret;

	dlerror();
	sym = dlsym(p->dl, SL_PLUGIN_ENTRY_SYMBOL);
	if (!sym) {
		sl_errf(err, errlen,
		        "%s: no '%s' entry point (not a sluice plugin, or built without "
		        "SL_PLUGIN_DEFINE / default visibility)",
		        p->file, SL_PLUGIN_ENTRY_SYMBOL);
		return -SL_EPLUGIN;
	}
	/* POSIX guarantees dlsym's object pointer converts to a function one. */
	memcpy(&entry, &sym, sizeof(entry));
	ret = entry(sl_plugin_host(), &info);
	if (ret < 0) {
		sl_errf(err, errlen, "%s: %s() refused to load: %s", p->file,
		        SL_PLUGIN_ENTRY_SYMBOL, sl_strerror(ret));
		return -SL_EPLUGIN;
	}
	if (ret > 0 || !info) {
		sl_errf(err, errlen, "%s: %s() returned %d and %s", p->file, SL_PLUGIN_ENTRY_SYMBOL,
		        ret, info ? "an info" : "no info");
		return -SL_EPLUGIN;
	}
	memcpy(&head, info, sizeof(head));
	if (head.struct_size < sizeof(head)) {
		sl_errf(err, errlen, "%s: plugin info is %u bytes, too small to hold a version",
		        p->file, head.struct_size);
		return -SL_EPLUGIN;
	}
	if (head.abi_major != SL_PLUGIN_ABI_MAJOR) {
		sl_errf(err, errlen, "%s: built for plugin ABI %u.%u, this sluiced speaks %d.%d",
		        p->file, head.abi_major, head.abi_minor, SL_PLUGIN_ABI_MAJOR,
		        SL_PLUGIN_ABI_MINOR);
		return -SL_EPLUGIN;
	}
	if (head.abi_minor > SL_PLUGIN_ABI_MINOR) {
		sl_errf(err, errlen,
		        "%s: built for plugin ABI %u.%u, newer than this sluiced's %d.%d "
		        "(upgrade sluiced or rebuild the plugin)",
		        p->file, head.abi_major, head.abi_minor, SL_PLUGIN_ABI_MAJOR,
		        SL_PLUGIN_ABI_MINOR);
		return -SL_EPLUGIN;
	}
	p->abi_minor = head.abi_minor;
	if (head.struct_size < sl__min[p->abi_minor].info) {
		sl_errf(err, errlen,
		        "%s: plugin info is %u bytes, plugin ABI %d.%u needs at least %u", p->file,
		        head.struct_size, SL_PLUGIN_ABI_MAJOR, p->abi_minor,
		        sl__min[p->abi_minor].info);
		return -SL_EPLUGIN;
	}
	memset(&p->info, 0, sizeof(p->info));
	memcpy(&p->info, info,
	       head.struct_size < sizeof(p->info) ? head.struct_size : sizeof(p->info));
	if (head.kind != SL_PLUGIN_TRANSFORM && head.kind != SL_PLUGIN_PROJECTION &&
	    head.kind != SL_PLUGIN_SINK) {
		sl_errf(err, errlen, "%s: unknown plugin kind %u", p->file, head.kind);
		return -SL_EPLUGIN;
	}
	if (head.kind != (uint32_t)want) {
		sl_errf(err, errlen, "%s: is a %s plugin, a %s plugin was asked for", p->file,
		        sl_plugin_kind_name(head.kind), sl_plugin_kind_name(want));
		return -SL_EPLUGIN;
	}
	p->kind = (enum sl_plugin_kind)head.kind;
	if (!p->info.name || !p->info.name[0]) {
		sl_errf(err, errlen, "%s: plugin info has no name", p->file);
		return -SL_EPLUGIN;
	}
	return sl__take_ops(p, p->info.ops, err, errlen);
}

/*
 * Whoever can change a plugin decides what sluiced runs, so a plugin is
 * loaded only from a file that only root or sluiced's own user could have
 * written, as ssh refuses an authorized_keys and sudo a sudoers file:
 * the file and every folder above it must be owned by root or by our
 * effective uid and writable by neither others nor a group other than
 * root's or ours. The one
 * exception is sudo's: a sticky folder above the plugin's own folder may be
 * writable by all (/tmp), since the sticky bit keeps others from renaming
 * or deleting what they do not own, and the folders below it are checked.
 * The plugin's own folder never may: anyone could drop a NAME.so there.
 * The path is resolved first (symlinks followed) and the resolved file is
 * what is loaded: every component of it is checked, and none of them can
 * be changed by anyone else between this check and the dlopen.
 * 0 with `resolved` filled, or -SL_EPLUGIN with err naming the path and why.
 */
static int sl__plugin_trusted(const char *file, char *resolved, char *err, size_t errlen)
{
	char dir[PATH_MAX];
	struct stat st;
	uid_t me = geteuid();

	if (!realpath(file, resolved)) {
		sl_errf(err, errlen, "%s: cannot load: %s", file, strerror(errno));
		return -SL_EPLUGIN;
	}
	if (stat(resolved, &st) < 0) {
		sl_errf(err, errlen, "%s: cannot load: %s", file, strerror(errno));
		return -SL_EPLUGIN;
	}
	if (!S_ISREG(st.st_mode)) {
		sl_errf(err, errlen, "%s: refused: %s is not a regular file", file, resolved);
		return -SL_EPLUGIN;
	}
	const char *what = "file", *path = resolved;
	bool own_folder = true; /* the next folder checked is the file's own */
	strcpy(dir, resolved);
	for (;;) {
		if (st.st_uid != 0 && st.st_uid != me) {
			sl_errf(err, errlen,
			        "%s: refused: %s %s is owned by uid %u, not by root or sluiced's "
			        "uid %u (a plugin and every folder above it must be)",
			        file, what, path, (unsigned)st.st_uid, (unsigned)me);
			return -SL_EPLUGIN;
		}
		bool sticky_ok = !S_ISREG(st.st_mode) && !own_folder && (st.st_mode & S_ISVTX);
		/* Group-writable is safe when the group is root's or our own
		 * (a checkout made under umask 002 by root or by sluiced's
		 * user): nobody else is in it by that right. */
		bool group_ok = st.st_gid == 0 || st.st_gid == getegid();
		mode_t unsafe = (mode_t)(S_IWOTH | (group_ok ? 0 : S_IWGRP));
		if ((st.st_mode & unsafe) && !sticky_ok) {
			sl_errf(err, errlen,
			        "%s: refused: %s %s is writable by %s (mode %04o): only root or "
			        "sluiced's uid %u may be able to change a plugin or a folder "
			        "above it",
			        file, what, path, (st.st_mode & S_IWOTH) ? "others" : "its group",
			        (unsigned)(st.st_mode & 07777), (unsigned)me);
			return -SL_EPLUGIN;
		}
		if (!strcmp(dir, "/"))
			return 0;
		if (S_ISDIR(st.st_mode))
			own_folder = false;
		/* Up one folder: a resolved path is absolute, without "." or
		 * ".." and without a trailing '/'. */
		char *slash = strrchr(dir, '/');
		if (slash == dir)
			slash[1] = '\0';
		else
			*slash = '\0';
		what = "folder";
		path = dir;
		if (stat(dir, &st) < 0) {
			sl_errf(err, errlen, "%s: cannot check folder %s: %s", file, dir,
			        strerror(errno));
			return -SL_EPLUGIN;
		}
	}
}

int sl_plugin_open(const char *file, enum sl_plugin_kind want, struct sl_plugin **out, char *err,
                   size_t errlen)
{
	struct sl_plugin *p;
	const char *base;
	size_t n;
	int ret;

	*out = NULL;
	p = calloc(1, sizeof(*p));
	if (!p || !(p->file = strdup(file))) {
		free(p);
		sl_errf(err, errlen, "%s: out of memory", file);
		return -ENOMEM;
	}
	base = strrchr(file, '/');
	base = base ? base + 1 : file;
	n = strlen(base);
	if (n > 3 && !strcmp(base + n - 3, ".so"))
		n -= 3;
	if (!(p->name = strndup(base, n))) {
		sl_errf(err, errlen, "%s: out of memory", file);
		ret = -ENOMEM;
		goto out;
	}
	/* RTLD_NOW: an unresolved symbol fails here, at start-up, not at the
	 * first call on a reactor. RTLD_LOCAL: nothing the plugin defines can
	 * satisfy another plugin's references. */
	char resolved[PATH_MAX];
	ret = sl__plugin_trusted(file, resolved, err, errlen);
	if (ret < 0)
		goto out;
	p->dl = dlopen(resolved, RTLD_NOW | RTLD_LOCAL);
	if (!p->dl) {
		const char *why = dlerror();
		sl_errf(err, errlen, "%s: cannot load: %s", file, why ? why : "dlopen failed");
		ret = -SL_EPLUGIN;
		goto out;
	}
	ret = sl__check(p, want, err, errlen);
out:
	if (ret < 0) {
		sl_plugin_unload(p);
		return ret;
	}
	*out = p;
	return 0;
}

static bool sl__name_ok(const char *name)
{
	return name && name[0] && name[0] != '.' && !strchr(name, '/');
}

int sl_plugin_load(const char *const *path, size_t n_path, const char *name,
                   enum sl_plugin_kind want, struct sl_plugin **out, char *err, size_t errlen)
{
	char file[4096];
	size_t used = 0;

	*out = NULL;
	if (!sl__name_ok(name)) {
		sl_errf(err, errlen, "plugin name '%s' is not a file name", name ? name : "");
		return -SL_EPLUGIN;
	}
	for (size_t i = 0; i < n_path; i++) {
		struct stat st;
		int n = snprintf(file, sizeof(file), "%s/%s.so", path[i], name);
		if (n < 0 || (size_t)n >= sizeof(file))
			continue;
		/* The first folder that has it wins, even if it then fails to
		 * load: falling through to another folder's copy would run a
		 * plugin nobody meant to run. */
		if (stat(file, &st) == 0 && S_ISREG(st.st_mode))
			return sl_plugin_open(file, want, out, err, errlen);
	}
	if (err && errlen) {
		int n = snprintf(err, errlen, "plugin '%s' not found: no %s.so in", name, name);
		used = n > 0 ? (size_t)n : 0;
		for (size_t i = 0; i < n_path && used < errlen; i++) {
			n = snprintf(err + used, errlen - used, "%s %s", i ? "," : "", path[i]);
			used += n > 0 ? (size_t)n : 0;
		}
		if (!n_path && used < errlen)
			snprintf(err + used, errlen - used, " (plugin_path is empty)");
	}
	return -ENOENT;
}

void sl_plugin_unload(struct sl_plugin *p)
{
	if (!p)
		return;
	if (p->dl)
		dlclose(p->dl);
	free(p->file);
	free(p->name);
	free(p);
}

/* ---- instances ------------------------------------------------------------- */

int sl_plugin_inst_create(struct sl_plugin *p, const struct sl_plugin_inst_opts *o,
                          struct sl_plugin_inst **out, char *err, size_t errlen)
{
	char why[512] = "";
	struct sl_plugin_inst *in;
	int ret;

	*out = NULL;
	in = calloc(1, sizeof(*in));
	if (!in || !(in->ctx.name = strdup(o->name ? o->name : p->info.name))) {
		free(in);
		sl_errf(err, errlen, "%s: out of memory", p->info.name);
		return -ENOMEM;
	}
	in->plugin = p;
	in->ctx.plugin = p;
	in->ctx.partition = o->partition;
	in->ctx.log_fn = o->log_fn;
	in->ctx.log_arg = o->log_arg;
	in->ctx.state = o->state;
	if (o->epoch && sl_plugin_concurrent_query(p) &&
	    !(in->ctx.er = sl_epoch_rec_get(o->epoch))) {
		free(in->ctx.name);
		free(in);
		sl_errf(err, errlen, "%s: out of memory", p->info.name);
		return -ENOMEM;
	}

	struct sl_plugin_create c = {
	    .struct_size = sizeof(c),
	    .partition = o->partition,
	    .n_partitions = o->n_partitions,
	    .host = sl_plugin_host(),
	    .ctx = &in->ctx,
	    .args = (const struct sl_plugin_args *)o->args,
	    .name = in->ctx.name,
	    .topic = o->topic ? o->topic : "",
	    .err = why,
	    .errlen = sizeof(why),
	};
	switch (p->kind) {
	case SL_PLUGIN_TRANSFORM:
		ret = p->ops.transform.create(&c, &in->inst);
		break;
	case SL_PLUGIN_PROJECTION:
		ret = p->ops.projection.create(&c, &in->inst);
		break;
	default:
		ret = p->ops.sink.create(&c, &in->inst);
		break;
	}
	if (ret < 0) {
		why[sizeof(why) - 1] = '\0';
		sl_errf(err, errlen, "%s (plugin %s): %s", in->ctx.name, p->info.name,
		        why[0] ? why : sl_strerror(ret));
		if (in->ctx.er) {
			sl_epoch_barrier(in->ctx.er);
			sl_epoch_rec_put(in->ctx.er);
		}
		free(in->ctx.name);
		free(in);
		return ret == -ENOMEM ? -ENOMEM : -SL_EPLUGIN;
	}
	*out = in;
	return 0;
}

bool sl_plugin_concurrent_query(const struct sl_plugin *p)
{
	/* A host-state projection's queries read a committed view of the
	 * store, never what apply is changing: any thread, always. */
	return p->kind == SL_PLUGIN_PROJECTION &&
	       (p->ops.projection.flags &
	        (SL_PROJECTION_CONCURRENT_QUERY | SL_PROJECTION_HOST_STATE));
}

bool sl_plugin_host_state(const struct sl_plugin *p)
{
	return p->kind == SL_PLUGIN_PROJECTION &&
	       (p->ops.projection.flags & SL_PROJECTION_HOST_STATE);
}

bool sl_plugin_inst_poll(struct sl_plugin_inst *i)
{
	return i->ctx.er && sl_epoch_poll(i->ctx.er);
}

void sl_plugin_inst_destroy(struct sl_plugin_inst *i)
{
	if (!i)
		return;
	/* Queries that found the instance before it was unpublished end
	 * first; then what it retired is freed (its free functions touch no
	 * instance), and then the instance. */
	if (i->ctx.er)
		sl_epoch_barrier(i->ctx.er);
	switch (i->plugin->kind) {
	case SL_PLUGIN_TRANSFORM:
		i->plugin->ops.transform.destroy(i->inst);
		break;
	case SL_PLUGIN_PROJECTION:
		i->plugin->ops.projection.destroy(i->inst);
		break;
	default:
		i->plugin->ops.sink.destroy(i->inst);
		break;
	}
	if (i->ctx.er) {
		/* What destroy retired: no query can see it any more. */
		sl_epoch_barrier(i->ctx.er);
		sl_epoch_rec_put(i->ctx.er);
	}
	free(i->ctx.name);
	free(i);
}
