/*
 * flaky_sink: a sink plugin for tests of the sink runtime (tests/unit/sink.c),
 * built to a test-only folder, never to build/plugins/.
 *
 *   path: FILE              required. Every event written appends the line
 *                           "PARTITION OFFSET\n" to FILE (one file for all
 *                           partitions, O_APPEND), fdatasync'ed before
 *                           write_batch returns 0.
 *   fail_first: N           the first N write_batch calls of each instance
 *                           fail with -EIO, writing nothing.
 *   fail_until_file: F      write_batch fails with -EIO while F exists: a
 *                           test switches failures on and off.
 *   fail_partition: P       fail_first and fail_until_file apply only to
 *                           partition P (default: every partition).
 *   delay_us: D             sleep D microseconds per write_batch: a slow sink.
 *
 * Idempotent by offset, as the ABI asks: resume_offset reads FILE back and
 * answers this partition's largest offset + 1, and write_batch skips every
 * event below what the file holds. So a test can tell a duplicate written
 * by the host from one the plugin let through: the file shows every line.
 */
#include <sluice/plugin.h>

#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

struct flaky {
	const struct sl_host *host;
	struct sl_plugin_ctx *ctx;
	uint32_t partition;
	int fd;
	char *path;
	char *fail_file;
	int64_t fail_first;
	int64_t fail_partition; /* -1: all */
	int64_t delay_us;
	uint64_t next; /* the first offset the file does not hold */
	char *buf;
	size_t cap;
};

static void flaky_free(struct flaky *f)
{
	if (!f)
		return;
	if (f->fd >= 0)
		close(f->fd);
	free(f->path);
	free(f->fail_file);
	free(f->buf);
	free(f);
}

/* Largest offset + 1 of this partition in the file (0 when none). */
static int scan(struct flaky *f, uint64_t *next)
{
	FILE *in = fopen(f->path, "r");
	unsigned long long p, o;
	uint64_t n = 0;

	if (!in)
		return -errno;
	while (fscanf(in, "%llu %llu\n", &p, &o) == 2)
		if (p == f->partition && o + 1 > n)
			n = o + 1;
	fclose(in);
	*next = n;
	return 0;
}

static int flaky_create(const struct sl_plugin_create *c, void **inst)
{
	static const char *const known[] = {"path",           "fail_first", "fail_until_file",
	                                    "fail_partition", "delay_us",   NULL};
	const struct sl_host *h = c->host;
	const char *bad = NULL, *path = NULL, *ff = NULL;
	struct flaky *f;
	int ret;

	if (h->arg_check_keys(c->args, known, &bad) < 0) {
		snprintf(c->err, c->errlen, "unknown arg '%s'", bad ? bad : "?");
		return -EINVAL;
	}
	if (h->arg_str(c->args, "path", &path) < 0 || !path[0]) {
		snprintf(c->err, c->errlen, "path is required");
		return -EINVAL;
	}
	f = calloc(1, sizeof(*f));
	if (!f)
		return -ENOMEM;
	f->host = h;
	f->ctx = c->ctx;
	f->partition = c->partition;
	f->fail_partition = -1;
	f->fd = -1;
	if ((ret = h->arg_i64(c->args, "fail_first", &f->fail_first)) == -EINVAL ||
	    (ret = h->arg_i64(c->args, "fail_partition", &f->fail_partition)) == -EINVAL ||
	    (ret = h->arg_i64(c->args, "delay_us", &f->delay_us)) == -EINVAL ||
	    (ret = h->arg_str(c->args, "fail_until_file", &ff)) == -EINVAL) {
		snprintf(c->err, c->errlen,
		         "fail_first, fail_partition, delay_us: integers; "
		         "fail_until_file: a path");
		flaky_free(f);
		return -EINVAL;
	}
	f->path = strdup(path);
	f->fail_file = ff ? strdup(ff) : NULL;
	if (!f->path || (ff && !f->fail_file)) {
		flaky_free(f);
		return -ENOMEM;
	}
	f->fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
	if (f->fd < 0) {
		ret = -errno;
		snprintf(c->err, c->errlen, "cannot open %s", path);
		flaky_free(f);
		return ret;
	}
	*inst = f;
	return 0;
}

static void flaky_destroy(void *inst)
{
	flaky_free(inst);
}

static int flaky_resume_offset(void *inst, uint64_t *next)
{
	struct flaky *f = inst;
	int ret = scan(f, &f->next);

	if (ret == 0)
		*next = f->next;
	return ret;
}

static bool should_fail(struct flaky *f)
{
	if (f->fail_partition >= 0 && f->fail_partition != (int64_t)f->partition)
		return false;
	if (f->fail_first > 0) {
		f->fail_first--;
		return true;
	}
	return f->fail_file && access(f->fail_file, F_OK) == 0;
}

static int flaky_write_batch(void *inst, uint32_t partition, uint64_t first_offset,
                             const struct sl_plugin_event *ev, uint32_t n)
{
	struct flaky *f = inst;
	size_t len = 0;

	if (f->delay_us > 0) {
		struct timespec ts = {.tv_sec = f->delay_us / 1000000,
		                      .tv_nsec = (f->delay_us % 1000000) * 1000};
		nanosleep(&ts, NULL);
	}
	if (should_fail(f))
		return -EIO;
	if (partition != f->partition || !n || ev[0].offset != first_offset)
		return -EINVAL;
	if ((size_t)n * 48 > f->cap) {
		char *b = realloc(f->buf, (size_t)n * 48);
		if (!b)
			return -ENOMEM;
		f->buf = b;
		f->cap = (size_t)n * 48;
	}
	uint64_t next = f->next;
	for (uint32_t i = 0; i < n; i++) {
		if (ev[i].offset < next)
			continue; /* held already: idempotent by offset */
		len += (size_t)snprintf(f->buf + len, f->cap - len, "%u %llu\n", partition,
		                        (unsigned long long)ev[i].offset);
		next = ev[i].offset + 1;
	}
	for (size_t done = 0; done < len;) {
		ssize_t w = write(f->fd, f->buf + done, len - done);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -errno;
		done += (size_t)w;
	}
	if (len && fdatasync(f->fd) < 0)
		return -errno;
	f->next = next;
	return 0;
}

static const struct sl_sink_ops flaky_ops = {
    .struct_size = sizeof(struct sl_sink_ops),
    .create = flaky_create,
    .destroy = flaky_destroy,
    .resume_offset = flaky_resume_offset,
    .write_batch = flaky_write_batch,
};

static const struct sl_plugin_info flaky_info = SL_PLUGIN_INFO_INIT(
    SL_PLUGIN_SINK, "flaky_sink", "test",
    "test sink: appends partition and offset lines; fails and stalls on demand", &flaky_ops);

SL_PLUGIN_DEFINE(flaky_info)
