/*
 * The snapshot store: atomically replaced, checksummed snapshot files
 * (the layout: project/snap_format.h). A store belongs to one thread at a
 * time (project.h).
 */
#include "project/project.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "base/base.h"
#include "log/log.h"

#define SL__GEN_DIGITS 20

struct sl_snap_store {
	char *dir;
	uint32_t keep;
	bool stop_before_rename;
	uint64_t next_gen;
	int dirfd;
};

/* "<20 digits>.snap" -> generation; false for any other name. */
static bool sl__parse_name(const char *name, uint64_t *gen)
{
	uint64_t g = 0;

	for (int i = 0; i < SL__GEN_DIGITS; i++) {
		if (name[i] < '0' || name[i] > '9')
			return false;
		uint64_t d = (uint64_t)(name[i] - '0');
		if (g > (UINT64_MAX - d) / 10)
			return false;
		g = g * 10 + d;
	}
	if (strcmp(name + SL__GEN_DIGITS, ".snap"))
		return false;
	*gen = g;
	return true;
}

static bool sl__is_tmp(const char *name)
{
	size_t n = strlen(name);
	return n == SL__GEN_DIGITS + 9 && !strcmp(name + SL__GEN_DIGITS, ".snap.tmp");
}

/* The generations present, descending. *out malloc'd (NULL when none). */
static int sl__list(struct sl_snap_store *s, uint64_t **out, size_t *n_out, bool remove_tmp)
{
	uint64_t *v = NULL;
	size_t n = 0, cap = 0;
	struct dirent *de;
	int fd = dup(s->dirfd);
	DIR *d;

	*out = NULL;
	*n_out = 0;
	if (fd < 0)
		return -errno;
	d = fdopendir(fd);
	if (!d) {
		int e = -errno;
		close(fd);
		return e;
	}
	rewinddir(d);
	while ((de = readdir(d))) {
		uint64_t g;
		if (remove_tmp && sl__is_tmp(de->d_name)) {
			/* A crash before its rename: never complete, never used. */
			unlinkat(s->dirfd, de->d_name, 0);
			continue;
		}
		if (!sl__parse_name(de->d_name, &g))
			continue;
		if (n == cap) {
			size_t c = cap;
			void *p = sl_grow(v, &c, (n + 1) * sizeof(*v), 16 * sizeof(*v));
			if (!p) {
				free(v);
				closedir(d);
				return -ENOMEM;
			}
			v = p;
			cap = c / sizeof(*v);
		}
		v[n++] = g;
	}
	closedir(d);
	/* Insertion sort, descending: a folder holds a handful. */
	for (size_t i = 1; i < n; i++)
		for (size_t j = i; j > 0 && v[j - 1] < v[j]; j--) {
			uint64_t t = v[j];
			v[j] = v[j - 1];
			v[j - 1] = t;
		}
	*out = v;
	*n_out = n;
	return 0;
}

int sl_snap_store_open(const struct sl_snap_store_opts *o, struct sl_snap_store **out, char *err,
                       size_t errlen)
{
	struct sl_snap_store *s;
	uint64_t *gens = NULL;
	size_t n = 0;
	int ret;

	*out = NULL;
	s = calloc(1, sizeof(*s));
	if (!s || !(s->dir = strdup(o->dir))) {
		free(s);
		sl_errf(err, errlen, "%s: out of memory", o->dir);
		return -ENOMEM;
	}
	s->dirfd = -1;
	s->keep = o->keep ? o->keep : 2;
	s->stop_before_rename = o->test_stop_before_rename;
	if ((ret = sl_mkdirs(o->dir)) < 0) {
		sl_errf(err, errlen, "%s: cannot create: %s", o->dir, sl_strerror(ret));
		goto out;
	}
	s->dirfd = open(o->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (s->dirfd < 0) {
		ret = -errno;
		sl_errf(err, errlen, "%s: cannot open: %s", o->dir, sl_strerror(ret));
		goto out;
	}
	if ((ret = sl__list(s, &gens, &n, true)) < 0) {
		sl_errf(err, errlen, "%s: cannot list: %s", o->dir, sl_strerror(ret));
		goto out;
	}
	s->next_gen = n ? gens[0] + 1 : 1;
	free(gens);
out:
	if (ret < 0) {
		sl_snap_store_close(s);
		return ret;
	}
	*out = s;
	return 0;
}

void sl_snap_store_close(struct sl_snap_store *s)
{
	if (!s)
		return;
	if (s->dirfd >= 0)
		close(s->dirfd);
	free(s->dir);
	free(s);
}

const char *sl_snap_store_dir(const struct sl_snap_store *s)
{
	return s->dir;
}

uint64_t sl_snap_store_next_gen(const struct sl_snap_store *s)
{
	return s->next_gen;
}

int sl_snap_store_write(struct sl_snap_store *s, const struct sl_snap_mark *marks, uint32_t n_marks,
                        const void *payload, size_t len, char *err, size_t errlen)
{
	char name[SL__GEN_DIGITS + 16];
	uint8_t hdr[SL_SNAP_HDR], trailer[SL_SNAP_TRAILER];
	uint8_t *mk = NULL;
	uint64_t *gens = NULL;
	size_t n_gens = 0;
	uint64_t gen = s->next_gen;
	const char *step = "";
	int renamed = 0, ret = 0;
	uint32_t crc;

	if (n_marks > SL_SNAP_MAX_MARKS)
		return -EINVAL;
	snprintf(name, sizeof(name), "%020" PRIu64 ".snap", gen);

	mk = malloc((size_t)n_marks * SL_SNAP_MARK + 1);
	if (!mk)
		return -ENOMEM;
	sl_put_le32(hdr + SL_SNAP_OFF_MAGIC, SL_SNAP_MAGIC);
	sl_put_le32(hdr + SL_SNAP_OFF_VERSION, SL_SNAP_VERSION);
	sl_put_le32(hdr + SL_SNAP_OFF_NMARKS, n_marks);
	sl_put_le32(hdr + SL_SNAP_OFF_RESERVED, 0);
	sl_put_le64(hdr + SL_SNAP_OFF_GEN, gen);
	sl_put_le64(hdr + SL_SNAP_OFF_PLEN, (uint64_t)len);
	sl_put_le64(hdr + SL_SNAP_OFF_WRITTEN, sl_wall_ns() / 1000000);
	for (uint32_t i = 0; i < n_marks; i++) {
		uint8_t *m = mk + (size_t)i * SL_SNAP_MARK;
		sl_put_le32(m + SL_SNAP_M_PARTITION, marks[i].partition);
		sl_put_le32(m + SL_SNAP_M_RESERVED, 0);
		sl_put_le64(m + SL_SNAP_M_OFFSET, marks[i].offset);
	}
	crc = sl_crc32c(0, hdr, sizeof(hdr));
	crc = sl_crc32c(crc, mk, (size_t)n_marks * SL_SNAP_MARK);
	crc = sl_crc32c(crc, payload, len);
	sl_put_le32(trailer, crc);

	struct iovec iov[4] = {
	    {hdr, sizeof(hdr)},
	    {mk, (size_t)n_marks * SL_SNAP_MARK},
	    {(void *)payload, len},
	    {trailer, sizeof(trailer)},
	};
	ret = sl_file_replace(s->dirfd, name, iov, 4,
	                      s->stop_before_rename ? SL_FILE_TEST_NO_RENAME : 0, &step, &renamed);
	if (ret < 0)
		goto fail;
	s->next_gen = gen + 1;
	/* Old generations go after the new one is durable, never before. */
	if (sl__list(s, &gens, &n_gens, false) == 0) {
		for (size_t i = s->keep; i < n_gens; i++) {
			char old[SL__GEN_DIGITS + 16];
			snprintf(old, sizeof(old), "%020" PRIu64 ".snap", gens[i]);
			unlinkat(s->dirfd, old, 0);
		}
		free(gens);
	}
	goto out;
fail:
	/* A generation whose rename happened but whose folder sync failed may
	 * or may not survive a crash: never reuse its number. */
	if (renamed)
		s->next_gen = gen + 1;
	sl_errf(err, errlen, "%s/%s%s: %s: %s", s->dir, name, renamed ? "" : ".tmp", step,
	        sl_strerror(ret));
out:
	free(mk);
	return ret;
}

void sl_snap_release(struct sl_snap *snap)
{
	if (!snap)
		return;
	free(snap->marks);
	free(snap->sl__file);
	memset(snap, 0, sizeof(*snap));
}

/* Reads and checks one file. 0, -SL_ECORRUPT with err, -errno. */
static int sl__load_one(struct sl_snap_store *s, uint64_t gen, struct sl_snap *out, char *err,
                        size_t errlen)
{
	char name[SL__GEN_DIGITS + 16];
	struct stat st;
	uint8_t *b = NULL;
	size_t size, got = 0;
	int fd, ret = 0;

	memset(out, 0, sizeof(*out));
	snprintf(name, sizeof(name), "%020" PRIu64 ".snap", gen);
	fd = openat(s->dirfd, name, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0) {
		ret = -errno;
		goto out;
	}
	size = (size_t)st.st_size;
	if (size < SL_SNAP_HDR + SL_SNAP_TRAILER) {
		sl_errf(err, errlen, "%s/%s: %zu bytes, shorter than a header (torn)", s->dir, name,
		        size);
		ret = -SL_ECORRUPT;
		goto out;
	}
	if (!(b = malloc(size))) {
		ret = -ENOMEM;
		goto out;
	}
	while (got < size) {
		ssize_t r = pread(fd, b + got, size - got, (off_t)got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			ret = -errno;
			goto out;
		}
		if (r == 0)
			break;
		got += (size_t)r;
	}
	uint32_t magic = sl_get_le32(b + SL_SNAP_OFF_MAGIC);
	uint32_t version = sl_get_le32(b + SL_SNAP_OFF_VERSION);
	uint32_t n_marks = sl_get_le32(b + SL_SNAP_OFF_NMARKS);
	uint64_t plen = sl_get_le64(b + SL_SNAP_OFF_PLEN);
	const char *why = NULL;
	if (got != size)
		why = "shrank while read";
	else if (magic != SL_SNAP_MAGIC)
		why = "not a snapshot (bad magic)";
	else if (version != SL_SNAP_VERSION)
		why = "unknown snapshot version";
	else if (n_marks > SL_SNAP_MAX_MARKS || (uint64_t)SL_SNAP_HDR +
	                                                (uint64_t)n_marks * SL_SNAP_MARK + plen +
	                                                SL_SNAP_TRAILER !=
	                                            size)
		why = "length does not match its header (torn)";
	else if (sl_get_le64(b + SL_SNAP_OFF_GEN) != gen)
		why = "generation does not match its name";
	else if (sl_crc32c(0, b, size - SL_SNAP_TRAILER) != sl_get_le32(b + size - SL_SNAP_TRAILER))
		why = "checksum mismatch";
	if (why) {
		sl_errf(err, errlen, "%s/%s: %s", s->dir, name, why);
		ret = -SL_ECORRUPT;
		goto out;
	}
	out->marks = calloc(n_marks ? n_marks : 1, sizeof(*out->marks));
	if (!out->marks) {
		ret = -ENOMEM;
		goto out;
	}
	for (uint32_t i = 0; i < n_marks; i++) {
		const uint8_t *m = b + SL_SNAP_HDR + (size_t)i * SL_SNAP_MARK;
		out->marks[i].partition = sl_get_le32(m + SL_SNAP_M_PARTITION);
		out->marks[i].offset = sl_get_le64(m + SL_SNAP_M_OFFSET);
	}
	out->n_marks = n_marks;
	out->generation = gen;
	out->written_ms = (int64_t)sl_get_le64(b + SL_SNAP_OFF_WRITTEN);
	out->payload = b + SL_SNAP_HDR + (size_t)n_marks * SL_SNAP_MARK;
	out->payload_len = (size_t)plen;
	out->sl__file = b;
	b = NULL;
out:
	free(b);
	close(fd);
	if (ret < 0 && out->marks) {
		free(out->marks);
		out->marks = NULL;
	}
	return ret;
}

int sl_snap_store_load(struct sl_snap_store *s, uint64_t below, struct sl_snap *out,
                       uint32_t *n_bad, char *err, size_t errlen)
{
	uint64_t *gens;
	size_t n;
	bool first = true;
	int ret;

	memset(out, 0, sizeof(*out));
	if ((ret = sl__list(s, &gens, &n, false)) < 0) {
		sl_errf(err, errlen, "%s: cannot list: %s", s->dir, sl_strerror(ret));
		return ret;
	}
	ret = -ENOENT;
	for (size_t i = 0; i < n; i++) {
		if (gens[i] >= below)
			continue;
		/* The error kept is the newest file's: the one an operator
		 * expected to be used. */
		ret = sl__load_one(s, gens[i], out, first ? err : NULL, first ? errlen : 0);
		first = false;
		if (ret == 0)
			break;
		if (ret == -SL_ECORRUPT || ret == -ENOENT) {
			if (ret == -SL_ECORRUPT && n_bad)
				(*n_bad)++;
			ret = -ENOENT;
			continue;
		}
		sl_errf(err, errlen, "%s: reading generation %" PRIu64 ": %s", s->dir, gens[i],
		        sl_strerror(ret));
		break;
	}
	free(gens);
	return ret;
}
