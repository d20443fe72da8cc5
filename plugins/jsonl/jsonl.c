/*
 * jsonl: a sink appending the events of its topic to JSON-lines files, one
 * file per partition, one event per line in the consume format.
 *
 *   path: FILE    ".P" (the partition) goes before FILE's extension, or at
 *                 its end when it has none: archive.jsonl -> archive.3.jsonl
 *
 * Idempotence comes from the file itself: every line carries its offset, so
 * the last whole line says where the partition stands. The instance keeps
 * `next` (the first offset the file does not hold) and `size` (the bytes that
 * are whole, durable lines); write_batch skips every event below `next`, so a
 * batch given again after a crash writes nothing twice.
 *
 * Crash safety. Appends go out in runs of whole lines, each run fdatasync'ed
 * before the next is written, and a run is at most JSONL_RUN_BYTES long or a
 * single line. A crash can therefore damage only the last run: its tail may
 * be missing (a line without its newline) or, on filesystems that extend the
 * size before the data lands, hold zeros. Recovery (on the first
 * resume_offset or write_batch) parses every line that touches the last
 * JSONL_RUN_BYTES of the file and cuts the file at the first one that is not
 * a whole event line of this partition, or at a torn end; the host then gives
 * the cut events again. Lines before that window were synced before the last
 * run began and are not re-read, so opening a large archive costs one window.
 *
 * A file whose first line is whole but is not an event line of this
 * partition is refused, never cut: the path probably names someone else's
 * file.
 *
 * Threads: the host runs sink callbacks on a thread of its own, one call at
 * a time per instance, so blocking file I/O is fine here. flock() keeps two
 * instances (two config entries with one path, or two servers) from
 * appending to one file.
 */
#include <sluice/plugin.h>

#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

/* Bytes one fdatasync covers at most (bar one longer line), and so the
 * window recovery parses: a few ms of JSON parsing at start-up against one
 * sync per MiB while writing. */
#define JSONL_RUN_BYTES (1u << 20)
/* Block size of the backward and forward newline scans. */
#define JSONL_SCAN_BYTES 16384

struct jsonl {
	const struct sl_host *host;
	struct sl_plugin_ctx *ctx;
	char *file;
	int fd;
	uint32_t partition;
	bool recovered; /* next and size are known */
	int broken;     /* -errno: the file is in a state we could not undo */
	uint64_t next;  /* the first offset the file does not hold */
	uint64_t size;  /* bytes of whole, durable lines */
	char *buf;      /* lines being appended; recovery's read buffer */
	size_t len, cap;
	char *wrap; /* an event's data wrapped in an object, for the JSON test */
	size_t wrap_cap;
};

/* ---- small buffers ------------------------------------------------------------ */

static int grow(char **p, size_t *cap, size_t need)
{
	size_t c = *cap ? *cap : 4096;
	char *q;

	if (need <= *cap)
		return 0;
	while (c < need)
		c *= 2;
	q = realloc(*p, c);
	if (!q)
		return -ENOMEM;
	*p = q;
	*cap = c;
	return 0;
}

/* Appends to j->buf; room was reserved by the caller. */
static void put(struct jsonl *j, const void *s, size_t n)
{
	memcpy(j->buf + j->len, s, n);
	j->len += n;
}

#define PUT_LIT(j, s) put((j), (s), sizeof(s) - 1)

static void put_u64(struct jsonl *j, uint64_t v, bool neg)
{
	char tmp[24];
	char *p = tmp + sizeof(tmp);

	do {
		*--p = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	if (neg)
		*--p = '-';
	put(j, p, (size_t)(tmp + sizeof(tmp) - p));
}

static void put_i64(struct jsonl *j, int64_t v)
{
	/* Through uint64 so that INT64_MIN negates without overflow. */
	if (v < 0)
		put_u64(j, 0 - (uint64_t)v, true);
	else
		put_u64(j, (uint64_t)v, false);
}

/* ---- the consume format --------------------------------------------------------
 *
 * The line is built here because sink callbacks get no struct sl_plugin_out
 * to hand host->out_put_event_json (ABI 1.0 gives those only to queries and
 * snapshots). It follows the consume format's rules: keys in its order,
 * strings escaped the same way (invalid UTF-8 as U+FFFD), data printed as
 * JSON when the host's strict parser takes it, else as data_b64. Two things
 * the ABI does not show a sink are missing: event headers, and json-c's
 * re-serialisation of data (data printed here is the stored text with the
 * whitespace between tokens removed, which is the same bytes for data
 * `sluice produce` stored; escapes such as \u00e9 stay as written).
 */

/* Length of the well-formed UTF-8 sequence at p (RFC 3629: no overlongs, no
 * surrogates, nothing past U+10FFFF), or 0. */
static size_t utf8_len(const unsigned char *p, size_t rem)
{
	unsigned char c = p[0], lo = 0x80, hi = 0xbf;
	size_t n;

	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf)
		n = 2;
	else if (c >= 0xe0 && c <= 0xef)
		n = 3;
	else if (c >= 0xf0 && c <= 0xf4)
		n = 4;
	else
		return 0;
	if (c == 0xe0)
		lo = 0xa0;
	else if (c == 0xed)
		hi = 0x9f;
	else if (c == 0xf0)
		lo = 0x90;
	else if (c == 0xf4)
		hi = 0x8f;
	if (rem < n || p[1] < lo || p[1] > hi)
		return 0;
	for (size_t k = 2; k < n; k++)
		if ((p[k] & 0xc0) != 0x80)
			return 0;
	return n;
}

/* A JSON string; room for 6 * n + 2 reserved. */
static void put_str(struct jsonl *j, const char *s, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *p = (const unsigned char *)s;

	put(j, "\"", 1);
	for (size_t i = 0; i < n;) {
		unsigned char c = p[i];
		size_t k;

		if (c >= 0x20 && c != '"' && c != '\\' && (k = utf8_len(p + i, n - i))) {
			put(j, p + i, k);
			i += k;
			continue;
		}
		i++;
		if (c >= 0x80)
			PUT_LIT(j, "\\ufffd");
		else if (c == '"' || c == '\\')
			put(j, (char[2]){'\\', (char)c}, 2);
		else if (c == '\b')
			PUT_LIT(j, "\\b");
		else if (c == '\f')
			PUT_LIT(j, "\\f");
		else if (c == '\n')
			PUT_LIT(j, "\\n");
		else if (c == '\r')
			PUT_LIT(j, "\\r");
		else if (c == '\t')
			PUT_LIT(j, "\\t");
		else
			put(j, (char[6]){'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]}, 6);
	}
	put(j, "\"", 1);
}

static void put_b64(struct jsonl *j, const uint8_t *d, size_t n)
{
	static const char a[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	char *o = j->buf + j->len;

	for (size_t i = 0; i < n; i += 3) {
		uint32_t v = (uint32_t)d[i] << 16;
		if (i + 1 < n)
			v |= (uint32_t)d[i + 1] << 8;
		if (i + 2 < n)
			v |= d[i + 2];
		*o++ = a[v >> 18];
		*o++ = a[(v >> 12) & 63];
		*o++ = i + 1 < n ? a[(v >> 6) & 63] : '=';
		*o++ = i + 2 < n ? a[v & 63] : '=';
	}
	j->len = (size_t)(o - j->buf);
}

/* Whether data is one strict JSON value, as the host's parser (the one the
 * consume format uses) judges: wrapped as {"d":DATA}, it parses as an object
 * exactly when DATA is a value, and the wrapper adds the one level of depth
 * the consume format reserves for the line's own object. */
static int is_json(struct jsonl *j, const uint8_t *d, size_t n, bool *yes)
{
	int64_t unused;
	int ret = grow(&j->wrap, &j->wrap_cap, n + 6);

	if (ret < 0)
		return ret;
	memcpy(j->wrap, "{\"d\":", 5);
	memcpy(j->wrap + 5, d, n);
	j->wrap[5 + n] = '}';
	ret = j->host->json_get_i64((const uint8_t *)j->wrap, n + 6, "-", &unused);
	if (ret == -ENOMEM)
		return ret;
	*yes = ret == -ENOENT;
	return 0;
}

/* Strict JSON text without the whitespace between its tokens (raw control
 * characters cannot occur inside its strings, so no newline survives). */
static void put_compact(struct jsonl *j, const uint8_t *d, size_t n)
{
	bool in_str = false, esc = false;

	for (size_t i = 0; i < n; i++) {
		uint8_t c = d[i];
		if (in_str) {
			if (esc)
				esc = false;
			else if (c == '\\')
				esc = true;
			else if (c == '"')
				in_str = false;
		} else if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
			continue;
		} else if (c == '"') {
			in_str = true;
		}
		j->buf[j->len++] = (char)c;
	}
}

/* Appends one event's line, newline included. */
static int put_line(struct jsonl *j, const struct sl_plugin_event *e)
{
	static const char hex[] = "0123456789abcdef";
	bool json = false;
	/* Strings escape to at most 6 bytes a byte, data to 4/3 (base64);
	 * 256 is ample for the names, numbers and punctuation. */
	size_t need =
	    j->len + 6 * ((size_t)e->type_len + e->aggregate_len) + 2 * (size_t)e->data_len + 256;
	int ret = grow(&j->buf, &j->cap, need);

	if (ret < 0)
		return ret;
	if (e->data_len && (ret = is_json(j, e->data, e->data_len, &json)) < 0)
		return ret;
	if (e->id) {
		char id[36];
		for (int i = 0, o = 0; i < 16; i++) {
			if (i == 4 || i == 6 || i == 8 || i == 10)
				id[o++] = '-';
			id[o++] = hex[e->id[i] >> 4];
			id[o++] = hex[e->id[i] & 15];
		}
		PUT_LIT(j, "{\"id\":\"");
		put(j, id, sizeof(id));
		PUT_LIT(j, "\",\"type\":");
	} else {
		PUT_LIT(j, "{\"type\":");
	}
	put_str(j, e->type, e->type_len);
	PUT_LIT(j, ",\"aggregate\":");
	put_str(j, e->aggregate, e->aggregate_len);
	PUT_LIT(j, ",\"timestamp\":");
	put_i64(j, e->timestamp_ms);
	PUT_LIT(j, ",\"partition\":");
	put_u64(j, e->partition, false);
	PUT_LIT(j, ",\"offset\":");
	put_u64(j, e->offset, false);
	if (e->schema_version) {
		PUT_LIT(j, ",\"schema_version\":");
		put_u64(j, e->schema_version, false);
	}
	if (!e->data_len) {
		PUT_LIT(j, ",\"data\":null");
	} else if (json) {
		PUT_LIT(j, ",\"data\":");
		put_compact(j, e->data, e->data_len);
	} else {
		PUT_LIT(j, ",\"data_b64\":\"");
		put_b64(j, e->data, e->data_len);
		PUT_LIT(j, "\"");
	}
	PUT_LIT(j, "}\n");
	return 0;
}

/* ---- file I/O ------------------------------------------------------------------- */

static int pread_all(int fd, void *buf, size_t n, uint64_t off)
{
	for (size_t done = 0; done < n;) {
		ssize_t r = pread(fd, (char *)buf + done, n - done, (off_t)(off + done));
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -errno;
		/* The file shrank under us: someone else writes it. */
		if (r == 0)
			return -EIO;
		done += (size_t)r;
	}
	return 0;
}

static int pwrite_all(int fd, const void *buf, size_t n, uint64_t off)
{
	for (size_t done = 0; done < n;) {
		ssize_t r = pwrite(fd, (const char *)buf + done, n - done, (off_t)(off + done));
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -errno;
		done += (size_t)r;
	}
	return 0;
}

/* The last '\n' in [floor, end): 1 with *pos, 0 when none, -errno. */
static int find_nl_back(int fd, uint64_t floor, uint64_t end, uint64_t *pos)
{
	char blk[JSONL_SCAN_BYTES];

	while (end > floor) {
		size_t n = end - floor < sizeof(blk) ? (size_t)(end - floor) : sizeof(blk);
		int ret = pread_all(fd, blk, n, end - n);
		if (ret < 0)
			return ret;
		const char *q = memrchr(blk, '\n', n);
		if (q) {
			*pos = end - n + (uint64_t)(q - blk);
			return 1;
		}
		end -= n;
	}
	return 0;
}

/* The first '\n' in [start, end): 1 with *pos, 0 when none, -errno. */
static int find_nl_fwd(int fd, uint64_t start, uint64_t end, uint64_t *pos)
{
	char blk[JSONL_SCAN_BYTES];

	while (start < end) {
		size_t n = end - start < sizeof(blk) ? (size_t)(end - start) : sizeof(blk);
		int ret = pread_all(fd, blk, n, start);
		if (ret < 0)
			return ret;
		const char *q = memchr(blk, '\n', n);
		if (q) {
			*pos = start + (uint64_t)(q - blk);
			return 1;
		}
		start += n;
	}
	return 0;
}

/* Reads [a, b) into j->buf. */
static int read_range(struct jsonl *j, uint64_t a, uint64_t b)
{
	if (b - a > SIZE_MAX / 2)
		return -EFBIG;
	int ret = grow(&j->buf, &j->cap, (size_t)(b - a) + 1);
	if (ret < 0)
		return ret;
	j->len = (size_t)(b - a);
	return pread_all(j->fd, j->buf, j->len, a);
}

/* Whether line[0..n) (no newline) is an event line of this partition: 1
 * with *off, 0 when not. */
static int line_offset(struct jsonl *j, const char *line, size_t n, uint64_t *off)
{
	int64_t o, p;

	if (j->host->json_get_i64((const uint8_t *)line, n, "offset", &o) < 0 || o < 0 ||
	    j->host->json_get_i64((const uint8_t *)line, n, "partition", &p) < 0 ||
	    p != (int64_t)j->partition)
		return 0;
	*off = (uint64_t)o;
	return 1;
}

/* Reads the whole line [a, b) (b at its newline) and checks it. */
static int line_at(struct jsonl *j, uint64_t a, uint64_t b, uint64_t *off)
{
	int ret = read_range(j, a, b);
	if (ret < 0)
		return ret;
	return line_offset(j, j->buf, j->len, off);
}

static int refuse(struct jsonl *j, uint64_t at)
{
	j->host->log(j->ctx, SL_PLUGIN_LOG_ERROR,
	             "%s: the line at byte %llu is not an event line of partition %u; "
	             "not touching a file this sink may not have written",
	             j->file, (unsigned long long)at, j->partition);
	return -EINVAL;
}

/* Finds next and size from the file, cutting a torn tail (see top). */
static int recover(struct jsonl *j)
{
	struct stat st;
	uint64_t end, w0, rs, cut, nl, last = 0;
	bool have = false;
	int ret;

	j->len = 0;
	if (fstat(j->fd, &st) < 0)
		return -errno;
	end = (uint64_t)st.st_size;
	j->next = 0;
	cut = 0;
	if (!end)
		goto done;
	/* The first line: ours, or the file is not ours. */
	if ((ret = find_nl_fwd(j->fd, 0, end, &nl)) < 0)
		return ret;
	if (!ret) {
		/* No newline at all: our first run, torn, or a stranger. Ours
		 * start the way every line does (or a piece of that). */
		static const char id[] = "{\"id\":\"", ty[] = "{\"type\":\"";
		char head[sizeof(ty) - 1];
		size_t n = end < sizeof(head) ? (size_t)end : sizeof(head);
		if ((ret = pread_all(j->fd, head, n, 0)) < 0)
			return ret;
		if (memcmp(head, id, n < sizeof(id) - 1 ? n : sizeof(id) - 1) &&
		    memcmp(head, ty, n))
			return refuse(j, 0);
		goto done;
	}
	if ((ret = line_at(j, 0, nl, &last)) < 0)
		return ret;
	if (!ret)
		return refuse(j, 0);
	/* The window: from the start of the line holding byte end - RUN. */
	w0 = end > JSONL_RUN_BYTES ? end - JSONL_RUN_BYTES : 0;
	rs = 0;
	if (w0 && (ret = find_nl_back(j->fd, 0, w0, &nl)) < 0)
		return ret;
	if (w0 && ret)
		rs = nl + 1;
	if ((ret = read_range(j, rs, end)) < 0)
		return ret;
	cut = rs;
	for (size_t p = 0; p < j->len;) {
		const char *q = memchr(j->buf + p, '\n', j->len - p);
		uint64_t off;
		/* A torn end (no newline) or a damaged line: cut here. */
		if (!q || !line_offset(j, j->buf + p, (size_t)(q - j->buf) - p, &off))
			break;
		last = off;
		have = true;
		p = (size_t)(q - j->buf) + 1;
		cut = rs + p;
	}
	if (!have && cut) {
		/* Every line of the window is cut: the one before it is whole
		 * and synced, and says where the partition stands. */
		uint64_t ls = 0;
		if ((ret = find_nl_back(j->fd, 0, cut - 1, &nl)) < 0)
			return ret;
		if (ret)
			ls = nl + 1;
		if ((ret = line_at(j, ls, cut - 1, &last)) < 0)
			return ret;
		if (!ret)
			return refuse(j, ls);
		have = true;
	}
	if (have)
		j->next = last + 1;
done:
	if (cut < end) {
		j->host->log(j->ctx, SL_PLUGIN_LOG_WARN,
		             "%s: cutting %llu bytes at byte %llu left by a crash; "
		             "they are written again from offset %llu",
		             j->file, (unsigned long long)(end - cut), (unsigned long long)cut,
		             (unsigned long long)j->next);
		if (ftruncate(j->fd, (off_t)cut) < 0 || fdatasync(j->fd) < 0)
			return -errno;
	}
	j->size = cut;
	j->len = 0;
	j->recovered = true;
	return 0;
}

/* Writes buf[0..n) at the end, makes it durable, and moves `next`. */
static int flush(struct jsonl *j, size_t n, uint64_t next)
{
	int ret = pwrite_all(j->fd, j->buf, n, j->size);

	if (!ret && fdatasync(j->fd) < 0)
		ret = -errno;
	if (ret < 0) {
		/* Whatever part landed is not known to be durable (a failed
		 * fdatasync may have dropped the pages): take it back, so the
		 * batch given again is written again. If even that fails the
		 * file's end is unknown, and only a restart's recovery can tell. */
		if (ftruncate(j->fd, (off_t)j->size) < 0)
			j->broken = ret;
		j->host->log(j->ctx, SL_PLUGIN_LOG_ERROR, "%s: cannot append: %s", j->file,
		             strerror(-ret));
		return ret;
	}
	j->size += n;
	j->next = next;
	return 0;
}

/* ---- callbacks ------------------------------------------------------------------ */

static void jsonl_free(struct jsonl *j)
{
	if (!j)
		return;
	if (j->fd >= 0)
		close(j->fd); /* drops the flock too */
	free(j->file);
	free(j->buf);
	free(j->wrap);
	free(j);
}

/* FILE with ".P" before its extension, or appended when it has none. */
static char *part_file(const char *path, uint32_t part)
{
	const char *base = strrchr(path, '/');
	const char *dot;
	char *f;
	size_t pre;

	base = base ? base + 1 : path;
	dot = strrchr(base, '.');
	/* A leading dot names a hidden file, not an extension. */
	pre = dot && dot > base ? (size_t)(dot - path) : strlen(path);
	f = malloc(strlen(path) + 16);
	if (f)
		sprintf(f, "%.*s.%u%s", (int)pre, path, part, path + pre);
	return f;
}

/* A new file's name must reach the disk too, or a power loss forgets it. */
static int sync_dir_of(const char *file)
{
	const char *slash = strrchr(file, '/');
	char *dir = slash ? strndup(file, slash == file ? 1 : (size_t)(slash - file)) : strdup(".");
	int fd, ret = 0;

	if (!dir)
		return -ENOMEM;
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0 || fsync(fd) < 0)
		ret = -errno;
	if (fd >= 0)
		close(fd);
	free(dir);
	return ret;
}

static int jsonl_create(const struct sl_plugin_create *c, void **inst)
{
	static const char *const known[] = {"path", NULL};
	const struct sl_host *h = c->host;
	const char *bad = NULL, *path = NULL;
	struct jsonl *j;
	struct stat st;
	int ret;

	if (h->arg_check_keys(c->args, known, &bad) < 0) {
		snprintf(c->err, c->errlen, "unknown arg '%s' (jsonl takes path)", bad ? bad : "?");
		return -EINVAL;
	}
	ret = h->arg_str(c->args, "path", &path);
	if (ret < 0 || !path[0] || path[strlen(path) - 1] == '/') {
		snprintf(c->err, c->errlen, "path must name a file (path: ./archive.jsonl)");
		return -EINVAL;
	}
	j = calloc(1, sizeof(*j));
	if (!j)
		return -ENOMEM;
	j->fd = -1;
	j->host = h;
	j->ctx = c->ctx;
	j->partition = c->partition;
	if (!(j->file = part_file(path, c->partition))) {
		ret = -ENOMEM;
		goto fail;
	}
	j->fd = open(j->file, O_RDWR | O_CLOEXEC);
	if (j->fd < 0 && errno == ENOENT) {
		j->fd = open(j->file, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
		if (j->fd >= 0 && (ret = sync_dir_of(j->file)) < 0) {
			snprintf(c->err, c->errlen, "cannot sync the folder of %s: %s", j->file,
			         strerror(-ret));
			goto fail;
		}
	}
	if (j->fd < 0) {
		ret = -errno;
		snprintf(c->err, c->errlen, "cannot open %s: %s", j->file, strerror(-ret));
		goto fail;
	}
	if (fstat(j->fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		ret = -EINVAL;
		snprintf(c->err, c->errlen, "%s is not a regular file", j->file);
		goto fail;
	}
	if (flock(j->fd, LOCK_EX | LOCK_NB) < 0) {
		ret = -errno;
		snprintf(c->err, c->errlen, "%s is being written by another sink (%s)", j->file,
		         ret == -EWOULDBLOCK ? "two entries with one path, or another server"
		                             : strerror(-ret));
		goto fail;
	}
	*inst = j;
	return 0;
fail:
	jsonl_free(j);
	return ret;
}

static void jsonl_destroy(void *inst)
{
	jsonl_free(inst);
}

static int jsonl_resume_offset(void *inst, uint64_t *next)
{
	struct jsonl *j = inst;
	int ret;

	if (j->broken)
		return j->broken;
	if (!j->recovered && (ret = recover(j)) < 0)
		return ret;
	*next = j->next;
	return 0;
}

static int jsonl_write_batch(void *inst, uint32_t partition, uint64_t first_offset,
                             const struct sl_plugin_event *ev, uint32_t n)
{
	struct jsonl *j = inst;
	uint64_t run_next;
	int ret;

	(void)first_offset; /* each event carries its own */
	if (j->broken)
		return j->broken;
	if (!j->recovered && (ret = recover(j)) < 0)
		return ret;
	if (partition != j->partition) {
		j->host->log(j->ctx, SL_PLUGIN_LOG_ERROR, "%s: got a batch of partition %u",
		             j->file, partition);
		return -EINVAL;
	}
	j->len = 0;
	run_next = j->next;
	for (uint32_t i = 0; i < n; i++) {
		size_t mark = j->len;

		/* Held already (a batch given again), or repeated in this one. */
		if (ev[i].offset < run_next)
			continue;
		if ((ret = put_line(j, &ev[i])) < 0)
			return ret;
		/* A run is at most JSONL_RUN_BYTES or one line: what recovery
		 * re-reads (see top). */
		if (mark && j->len > JSONL_RUN_BYTES) {
			if ((ret = flush(j, mark, run_next)) < 0)
				return ret;
			memmove(j->buf, j->buf + mark, j->len - mark);
			j->len -= mark;
		}
		run_next = ev[i].offset + 1;
	}
	if (j->len && (ret = flush(j, j->len, run_next)) < 0)
		return ret;
	j->len = 0;
	return 0;
}

static const struct sl_sink_ops jsonl_ops = {
    .struct_size = sizeof(struct sl_sink_ops),
    .create = jsonl_create,
    .destroy = jsonl_destroy,
    .resume_offset = jsonl_resume_offset,
    .write_batch = jsonl_write_batch,
};

static const struct sl_plugin_info jsonl_info = SL_PLUGIN_INFO_INIT(
    SL_PLUGIN_SINK, "jsonl", "1.0",
    "appends events to JSON-lines files, one per partition, exactly once", &jsonl_ops);

SL_PLUGIN_DEFINE(jsonl_info)
