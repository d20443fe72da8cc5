/*
 * Recovery's view of the journals (log.h, struct sl_jrec): reads every
 * journal file under <data_dir>/.journal/, checks each frame
 * (journal_format.h) and every batch in it, and indexes the chunks by log
 * key, in offset order, for sl_log_open's replay (recover.c).
 *
 * A bad frame is a torn tail when nothing valid follows it in its file (one
 * frame is in flight at a time and none of it was acked); a valid frame
 * after it is corruption, and the start is refused with the file and byte:
 * which partitions the damaged frame held cannot be known.
 *
 * Threads: the thread that opens the logs, before the reactors start.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/base.h"
#include "log/journal_format.h"
#include "log/log_impl.h"

struct sl__jfile {
	char *path;
	uint8_t *data; /* the file's bytes up to its last valid frame */
	size_t len;
};

struct sl_jrec {
	struct sl__jfile *files;
	size_t n_files;
	struct sl_jchunk *chunks; /* sorted by key, then first offset */
	size_t n_chunks, cap_chunks;
	uint64_t next_seq;
	uint64_t frames;
};

static int sl__cmp_chunk(const void *a, const void *b)
{
	const struct sl_jchunk *x = a, *y = b;
	size_t n = x->key_len < y->key_len ? x->key_len : y->key_len;
	int c = memcmp(x->key, y->key, n);
	if (c)
		return c;
	if (x->key_len != y->key_len)
		return x->key_len < y->key_len ? -1 : 1;
	if (x->first != y->first)
		return x->first < y->first ? -1 : 1;
	return x->order < y->order ? -1 : x->order > y->order;
}

/* Checks the batches of a chunk: whole, valid, offsets consecutive. */
static bool sl__chunk_batches_ok(const uint8_t *p, uint32_t len, uint64_t *first, uint64_t *end)
{
	uint32_t at = 0;
	bool any = false;
	while (at < len) {
		struct sl_bhdr b;
		if (!sl_batch_valid(p + at, len - at, &b))
			return false;
		if (!any)
			*first = b.base_offset;
		else if (b.base_offset != *end)
			return false;
		*end = b.base_offset + b.count;
		any = true;
		uint64_t span = sl_batch_span_of(&b);
		if (span > len - at)
			return false;
		at += (uint32_t)span;
	}
	return any;
}

/* Validates the frame at `pos`: 1 with its chunks added (when `add`), 0
 * when it is not a valid frame. */
static int sl__frame(struct sl_jrec *r, const uint8_t *d, size_t size, size_t pos, uint64_t order,
                     bool add, size_t *next)
{
	if (size - pos < SL_JF_HDR || sl_get_le32(d + pos + SL_JF_MAGIC) != SL_JF_MAGIC_V)
		return 0;
	uint32_t len = sl_get_le32(d + pos + SL_JF_LEN);
	uint32_t n = sl_get_le32(d + pos + SL_JF_CHUNKS);
	if (len > SL_JF_MAX_LEN || len % 8 || len > size - pos - SL_JF_HDR || n == 0)
		return 0;
	uint32_t crc = sl_crc32c(0, d + pos + SL_JF_CRC_FROM, SL_JF_HDR - SL_JF_CRC_FROM + len);
	if (crc != sl_get_le32(d + pos + SL_JF_CRC))
		return 0;
	const uint8_t *c = d + pos + SL_JF_HDR, *e = c + len;
	for (uint32_t i = 0; i < n; i++) {
		if ((size_t)(e - c) < SL_JC_HDR)
			return 0;
		uint32_t klen = sl_get_le32(c + SL_JC_KEY_LEN), blen = sl_get_le32(c + SL_JC_LEN);
		uint64_t kspan = sl_batch_align(klen);
		if (klen == 0 || klen > SL_JC_KEY_MAX || blen == 0 || blen % 8 ||
		    (uint64_t)(e - c) < SL_JC_HDR + kspan + blen)
			return 0;
		struct sl_jchunk ch = {
		    .key = (const char *)c + SL_JC_HDR,
		    .key_len = klen,
		    .p = c + SL_JC_HDR + kspan,
		    .len = blen,
		    .gen = sl_get_le64(c + SL_JC_GEN),
		    .order = order + i,
		};
		if (memchr(ch.key, '\0', klen) ||
		    !sl__chunk_batches_ok(ch.p, blen, &ch.first, &ch.end))
			return 0;
		if (add) {
			if (r->n_chunks == r->cap_chunks) {
				size_t cap = r->cap_chunks * sizeof(*r->chunks);
				struct sl_jchunk *v =
				    sl_grow(r->chunks, &cap, (r->n_chunks + 1) * sizeof(*v),
				            256 * sizeof(*v));
				if (!v)
					return -ENOMEM;
				r->chunks = v;
				r->cap_chunks = cap / sizeof(*v);
			}
			r->chunks[r->n_chunks++] = ch;
		}
		c += SL_JC_HDR + kspan + blen;
	}
	if (c != e)
		return 0;
	*next = pos + SL_JF_HDR + len;
	return 1;
}

/* Reads one file and adds its frames' chunks. */
static int sl__load_file(struct sl_jrec *r, const char *path, uint64_t *order, char *err,
                         size_t errlen)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct stat st;
	int ret = 0;
	if (fd < 0 || fstat(fd, &st) < 0) {
		ret = -errno;
		snprintf(err, errlen, "journal: open %s: %s", path, strerror(-ret));
		if (fd >= 0)
			close(fd);
		return ret;
	}
	size_t size = (size_t)st.st_size;
	uint8_t *d = malloc(size ? size : 1);
	if (!d) {
		close(fd);
		return -ENOMEM;
	}
	ssize_t got = sl__pread_all(fd, d, size, 0);
	close(fd);
	if (got < 0 || (size_t)got != size) {
		ret = got < 0 ? (int)got : -EIO;
		snprintf(err, errlen, "journal: read %s: %s", path, strerror(-ret));
		free(d);
		return ret;
	}
	size_t pos = 0;
	for (;;) {
		size_t next;
		size_t mark = r->n_chunks;
		int f = sl__frame(r, d, size, pos, *order, true, &next);
		if (f < 0) {
			free(d);
			return f;
		}
		if (f == 0) {
			r->n_chunks = mark;
			break;
		}
		*order += 1u << 20; /* room for a frame's chunks, in order */
		r->frames++;
		pos = next;
	}
	/* pos: the first byte that is not a valid frame. A valid frame later
	 * in the file means the bad one was synced and acked: corruption. */
	for (size_t at = pos + 8; at + SL_JF_HDR <= size; at += 8) {
		size_t next;
		if (sl_get_le32(d + at + SL_JF_MAGIC) != SL_JF_MAGIC_V)
			continue;
		if (sl__frame(r, d, size, at, 0, false, &next) == 1) {
			snprintf(
			    err, errlen,
			    "journal %s: corrupt frame at byte %zu followed by a valid frame at "
			    "byte %zu: refusing to start (the partitions it held cannot be known)",
			    path, pos, at);
			free(d);
			return -SL_ECORRUPT;
		}
	}
	struct sl__jfile *fv = realloc(r->files, (r->n_files + 1) * sizeof(*fv));
	if (!fv) {
		free(d);
		return -ENOMEM;
	}
	r->files = fv;
	r->files[r->n_files].path = strdup(path);
	r->files[r->n_files].data = d;
	r->files[r->n_files].len = pos;
	if (!r->files[r->n_files].path) {
		free(d);
		return -ENOMEM;
	}
	r->n_files++;
	return 0;
}

static int sl__cmp_name(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The names in `dir` that pass `keep`, sorted. */
static int sl__names(const char *dir, bool (*keep)(const char *), char ***out, size_t *n)
{
	DIR *d = opendir(dir);
	*out = NULL;
	*n = 0;
	if (!d)
		return errno == ENOENT ? 0 : -errno;
	struct dirent *e;
	size_t cap = 0;
	int ret = 0;
	while ((e = readdir(d))) {
		if (!keep(e->d_name))
			continue;
		if (*n == cap) {
			cap = cap ? 2 * cap : 16;
			char **v = realloc(*out, cap * sizeof(*v));
			if (!v) {
				ret = -ENOMEM;
				break;
			}
			*out = v;
		}
		if (!((*out)[*n] = strdup(e->d_name))) {
			ret = -ENOMEM;
			break;
		}
		(*n)++;
	}
	closedir(d);
	if (*n)
		qsort(*out, *n, sizeof(**out), sl__cmp_name);
	return ret;
}

static void sl__names_free(char **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

static bool sl__is_reactor_dir(const char *s)
{
	if (!*s)
		return false;
	for (; *s; s++)
		if (*s < '0' || *s > '9')
			return false;
	return true;
}

static bool sl__is_jfile(const char *s)
{
	size_t n = strlen(s);
	if (n != 24 || strcmp(s + 20, ".jnl"))
		return false;
	for (size_t i = 0; i < 20; i++)
		if (s[i] < '0' || s[i] > '9')
			return false;
	return true;
}

int sl_jrec_load(const char *data_dir, struct sl_jrec **out, char *err, size_t errlen)
{
	struct sl_jrec *r = calloc(1, sizeof(*r));
	char **rd = NULL, *root = NULL;
	size_t n_rd = 0;
	uint64_t order = 0;
	int ret = -ENOMEM;

	*out = NULL;
	snprintf(err, errlen, "journal: out of memory");
	if (!r || asprintf(&root, "%s/%s", data_dir, SL_JOURNAL_DIR_NAME) < 0) {
		root = NULL;
		goto fail;
	}
	ret = sl__names(root, sl__is_reactor_dir, &rd, &n_rd);
	if (ret < 0) {
		snprintf(err, errlen, "journal: read folder %s: %s", root, strerror(-ret));
		goto fail;
	}
	for (size_t i = 0; i < n_rd; i++) {
		char *sub = NULL, **fn = NULL;
		size_t n_fn = 0;
		if (asprintf(&sub, "%s/%s", root, rd[i]) < 0) {
			ret = -ENOMEM;
			goto fail;
		}
		ret = sl__names(sub, sl__is_jfile, &fn, &n_fn);
		for (size_t k = 0; ret == 0 && k < n_fn; k++) {
			char *path = NULL;
			if (asprintf(&path, "%s/%s", sub, fn[k]) < 0) {
				ret = -ENOMEM;
				break;
			}
			uint64_t seq = strtoull(fn[k], NULL, 10);
			if (seq + 1 > r->next_seq)
				r->next_seq = seq + 1;
			ret = sl__load_file(r, path, &order, err, errlen);
			free(path);
		}
		if (ret < 0 && ret != -SL_ECORRUPT && ret != -ENOMEM && !err[0])
			snprintf(err, errlen, "journal: read folder %s: %s", sub, strerror(-ret));
		free(sub);
		sl__names_free(fn, n_fn);
		if (ret < 0)
			goto fail;
	}
	if (r->n_chunks)
		qsort(r->chunks, r->n_chunks, sizeof(*r->chunks), sl__cmp_chunk);
	sl__names_free(rd, n_rd);
	free(root);
	err[0] = '\0';
	*out = r;
	return 0;
fail:
	sl__names_free(rd, n_rd);
	free(root);
	sl_jrec_free(r);
	return ret;
}

uint64_t sl_jrec_next_seq(const struct sl_jrec *r)
{
	return r ? r->next_seq : 0;
}

void sl_jrec_counts(const struct sl_jrec *r, uint64_t *files, uint64_t *frames, uint64_t *chunks)
{
	*files = r ? r->n_files : 0;
	*frames = r ? r->frames : 0;
	*chunks = r ? r->n_chunks : 0;
}

size_t sl__jrec_find(struct sl_jrec *r, const char *key, struct sl_jchunk **out)
{
	size_t klen = strlen(key), lo = 0, hi = r ? r->n_chunks : 0;
	*out = NULL;
	/* The first chunk whose key is not below `key`. */
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		const struct sl_jchunk *c = &r->chunks[mid];
		size_t n = c->key_len < klen ? c->key_len : klen;
		int cmp = memcmp(c->key, key, n);
		if (!cmp)
			cmp = c->key_len < klen ? -1 : c->key_len > klen;
		if (cmp < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	size_t n = 0;
	while (lo + n < (r ? r->n_chunks : 0) && r->chunks[lo + n].key_len == klen &&
	       !memcmp(r->chunks[lo + n].key, key, klen)) {
		r->chunks[lo + n].claimed = true;
		n++;
	}
	if (n)
		*out = &r->chunks[lo];
	return n;
}

int sl_jrec_finish(struct sl_jrec *r, const char *data_dir, bool keep, char *err, size_t errlen)
{
	int ret = 0;
	if (!r)
		return 0;
	for (size_t i = 0; i < r->n_chunks && !keep; i++) {
		if (r->chunks[i].claimed)
			continue;
		/* No folder: a topic deleted at runtime (its folder goes first),
		 * whose events go with it. */
		char path[4096];
		struct stat st;
		snprintf(path, sizeof(path), "%s/%.*s", data_dir, (int)r->chunks[i].key_len,
		         r->chunks[i].key);
		if (stat(path, &st) < 0 && errno == ENOENT)
			continue;
		{
			fprintf(stderr,
			        "sluiced: the journal holds events of %.*s, which is not a "
			        "partition of this configuration: its journal files are kept "
			        "(replayed once it is configured again)\n",
			        (int)r->chunks[i].key_len, r->chunks[i].key);
			keep = true;
		}
	}
	for (size_t i = 0; i < r->n_files && !keep; i++) {
		if (unlink(r->files[i].path) < 0 && errno != ENOENT) {
			ret = -errno;
			snprintf(err, errlen, "journal: delete %s: %s", r->files[i].path,
			         strerror(-ret));
			break;
		}
		/* The deletion need not be durable: a file that comes back is
		 * replayed again, and a replay skips what the segments hold. */
	}
	sl_jrec_free(r);
	return ret;
}

void sl_jrec_free(struct sl_jrec *r)
{
	if (!r)
		return;
	for (size_t i = 0; i < r->n_files; i++) {
		free(r->files[i].path);
		free(r->files[i].data);
	}
	free(r->files);
	free(r->chunks);
	free(r);
}
