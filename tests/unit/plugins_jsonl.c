/*
 * The jsonl sink through the loader: lines in the consume format (compared
 * byte for byte with the host's formatter), one file per partition, resume
 * from the file after a reopen, batches given again writing nothing twice,
 * a torn or damaged tail cut and written again, files it did not write left
 * alone, and its refusals of bad args.
 */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config/config.h"
#include "plugins_util.h"

#define MAXEV 4096

static struct sl_plugin *g_p;
static char *g_dir;
static char g_log[1024];

/* Events of one test: encoded bytes and their plugin views. */
static uint8_t *g_bytes[MAXEV];
static struct sl_plugin_event g_ev[MAXEV];

static void capture(void *arg, int level, const char *line)
{
	(void)arg;
	(void)level;
	snprintf(g_log, sizeof(g_log), "%s", line);
}

static void setup(void)
{
	g_p = tu_load("jsonl", SL_PLUGIN_SINK);
	g_dir = tu_tmpdir("jsonl");
}

static void teardown(void)
{
	for (int i = 0; i < MAXEV; i++) {
		free(g_bytes[i]);
		g_bytes[i] = NULL;
	}
	sl_plugin_unload(g_p);
	tu_rmdir(g_dir);
}

static int make_ex(const char *yaml, uint32_t partition, struct sl_plugin_inst **out, char *err,
                   size_t errlen)
{
	struct sl_config_node *args = NULL;
	struct sl_plugin_inst_opts o = {.name = "archive",
	                                .topic = "events",
	                                .partition = partition,
	                                .n_partitions = 4,
	                                .log_fn = capture};
	char perr[256];

	cr_assert_eq(sl_config_node_parse(yaml, strlen(yaml), "t", &args, perr, sizeof(perr)), 0,
	             "%s", perr);
	o.args = args;
	int ret = sl_plugin_inst_create(g_p, &o, out, err, errlen);
	sl_config_node_free(args);
	return ret;
}

/* An instance writing `name` (in the test's folder) for `partition`. */
static struct sl_plugin_inst *make(const char *name, uint32_t partition)
{
	char yaml[512], err[512];
	struct sl_plugin_inst *in = NULL;

	snprintf(yaml, sizeof(yaml), "path: '%s/%s'\n", g_dir, name);
	cr_assert_eq(make_ex(yaml, partition, &in, err, sizeof(err)), 0, "%s", err);
	return in;
}

/* In a static buffer: one at a time. */
static char *file_of(const char *name)
{
	static char f[512];
	snprintf(f, sizeof(f), "%s/%s", g_dir, name);
	return f;
}

/* Event i of a partition: offset `off`, data picked by `data` (NULL: a
 * small object). */
static void ev(int i, uint32_t partition, uint64_t off, const char *type, const char *data)
{
	char agg[32], d[64];

	cr_assert_lt(i, MAXEV);
	snprintf(agg, sizeof(agg), "order-%d", i % 7);
	snprintf(d, sizeof(d), "{\"n\":%d,\"p\":%u}", i, partition);
	free(g_bytes[i]);
	size_t cap = 512 + (data ? strlen(data) : 0);
	g_bytes[i] = malloc(cap);
	uint32_t len = tu_event(g_bytes[i], cap, type ? type : "OrderPlaced", agg, data ? data : d,
	                        (uint64_t)i + 1000 * partition);
	tu_fill(&g_ev[i], g_bytes[i], len, partition, off);
}

/* Events [a, b) with offset = index (plus `gap` * index). */
static void evs(int a, int b, uint32_t partition)
{
	for (int i = a; i < b; i++)
		ev(i, partition, (uint64_t)i, NULL, NULL);
}

static int wr(struct sl_plugin_inst *in, int a, int b)
{
	return g_p->ops.sink.write_batch(in->inst, g_ev[a].partition, g_ev[a].offset, &g_ev[a],
	                                 (uint32_t)(b - a));
}

static uint64_t resume(struct sl_plugin_inst *in)
{
	uint64_t next = UINT64_MAX;
	int ret = g_p->ops.sink.resume_offset(in->inst, &next);
	cr_assert_eq(ret, 0, "resume_offset: %d (%s)", ret, g_log);
	return next;
}

/* The consume format of events [a, b), as the host prints it. */
static char *expected(int a, int b, size_t *len)
{
	struct sl_plugin_out out = {0};
	const struct sl_host *h = sl_plugin_host();

	for (int i = a; i < b; i++) {
		cr_assert_eq(h->out_put_event_json(&out, g_ev[i].bytes, g_ev[i].len,
		                                   g_ev[i].partition, g_ev[i].offset, NULL, NULL,
		                                   NULL, 0),
		             0);
		cr_assert_eq(h->out_put(&out, "\n", 1), 0);
	}
	char *s = malloc(out.buf.len + 1);
	memcpy(s, out.buf.data ? out.buf.data : "", out.buf.len);
	s[out.buf.len] = '\0';
	*len = out.buf.len;
	sl_plugin_out_release(&out);
	return s;
}

static char *slurp(const char *file, size_t *len)
{
	FILE *f = fopen(file, "rb");
	cr_assert_not_null(f, "%s", file);
	cr_assert_eq(fseek(f, 0, SEEK_END), 0);
	long n = ftell(f);
	cr_assert_geq(n, 0);
	rewind(f);
	char *s = malloc((size_t)n + 1);
	cr_assert_eq(fread(s, 1, (size_t)n, f), (size_t)n);
	s[n] = '\0';
	fclose(f);
	*len = (size_t)n;
	return s;
}

/* The file holds exactly events [a, b) in the consume format. A mismatch
 * reports where and a short excerpt of each side: whole files of megabytes
 * in one assertion message would swamp the test runner. */
static void assert_file(const char *name, int a, int b)
{
	size_t el, fl, at = 0;
	char *e = expected(a, b, &el);
	char *f = slurp(file_of(name), &fl);

	while (at < el && at < fl && e[at] == f[at])
		at++;
	size_t from = at > 80 ? at - 80 : 0;
	cr_assert(fl == el && at == el,
	          "%s: %zu bytes, want %zu; first difference at byte %zu\n--- got\n%.160s\n"
	          "--- want\n%.160s",
	          name, fl, el, at, f + (from < fl ? from : fl), e + (from < el ? from : el));
	free(e);
	free(f);
}

static off_t size_of(const char *name)
{
	struct stat st;
	cr_assert_eq(stat(file_of(name), &st), 0);
	return st.st_size;
}

TestSuite(plugins_jsonl, .init = setup, .fini = teardown);

Test(plugins_jsonl, lines_are_the_consume_format)
{
	static const char *const data[] = {
	    "{\"total\":120,\"region\":\"eu\",\"items\":[1,2,{\"sku\":\"a/b\"}]}",
	    "{ \"spaced\" : [1, 2],\n  \"nl\": true }", /* whitespace: compacted */
	    "\"a string\"",
	    "42",
	    "[1,2.5,-3e2,null]",
	    "null",
	    "not json at all",
	    "{\"unterminated\":",
	    "{\"utf8\":\"h\xc3\xa9llo \xe2\x82\xac\"}",
	    "\x01\x02\xff binary",
	    "",
	};
	static const char *const types[] = {
	    "OrderPlaced", "quote\"back\\slash", "tab\there",   "bad\xff utf8", "\xe2\x82\xac euro",
	    "ctl\x01",     "OrderPlaced",        "OrderPlaced", "OrderPlaced",  "OrderPlaced",
	    "OrderPlaced",
	};
	int n = (int)(sizeof(data) / sizeof(data[0]));
	struct sl_plugin_inst *in = make("archive.jsonl", 2);

	for (int i = 0; i < n; i++)
		ev(i, 2, (uint64_t)i * 3, types[i], data[i]);
	cr_assert_eq(resume(in), 0);
	cr_assert_eq(wr(in, 0, n), 0);
	assert_file("archive.2.jsonl", 0, n);
	cr_assert_eq(resume(in), (uint64_t)(n - 1) * 3 + 1, "next follows the last offset");
	sl_plugin_inst_destroy(in);
}

Test(plugins_jsonl, one_file_per_partition)
{
	struct sl_plugin_inst *a = make("archive.jsonl", 0);
	struct sl_plugin_inst *b = make("archive.jsonl", 3);
	struct sl_plugin_inst *c = make("noext", 1);
	struct sl_plugin_inst *d = make(".hidden", 1);

	evs(0, 5, 0);
	cr_assert_eq(wr(a, 0, 5), 0);
	evs(10, 13, 3);
	cr_assert_eq(wr(b, 10, 13), 0);
	evs(20, 22, 1);
	cr_assert_eq(wr(c, 20, 22), 0);
	cr_assert_eq(wr(d, 20, 22), 0);
	assert_file("archive.0.jsonl", 0, 5);
	assert_file("archive.3.jsonl", 10, 13);
	assert_file("noext.1", 20, 22);
	assert_file(".hidden.1", 20, 22);
	cr_assert_eq(access(file_of("archive.jsonl"), F_OK), -1);

	/* A batch of another partition is refused, not written. */
	cr_assert_eq(wr(a, 20, 22), -EINVAL);
	assert_file("archive.0.jsonl", 0, 5);
	sl_plugin_inst_destroy(a);
	sl_plugin_inst_destroy(b);
	sl_plugin_inst_destroy(c);
	sl_plugin_inst_destroy(d);
}

Test(plugins_jsonl, resumes_after_reopen_and_never_duplicates)
{
	struct sl_plugin_inst *in = make("a.jsonl", 1);

	evs(0, 10, 1);
	cr_assert_eq(wr(in, 0, 5), 0);
	off_t size = size_of("a.1.jsonl");
	/* The same batch again (a crash before the host recorded it). */
	cr_assert_eq(wr(in, 0, 5), 0);
	cr_assert_eq(size_of("a.1.jsonl"), size);
	sl_plugin_inst_destroy(in);

	in = make("a.jsonl", 1);
	cr_assert_eq(resume(in), 5);
	/* Overlapping: 3 and 4 are held, 5..7 are new. */
	cr_assert_eq(wr(in, 3, 8), 0);
	cr_assert_eq(wr(in, 0, 8), 0);
	assert_file("a.1.jsonl", 0, 8);
	sl_plugin_inst_destroy(in);

	/* write_batch without resume_offset first reads the file too. */
	in = make("a.jsonl", 1);
	cr_assert_eq(wr(in, 0, 10), 0);
	assert_file("a.1.jsonl", 0, 10);
	cr_assert_eq(resume(in), 10);
	sl_plugin_inst_destroy(in);
}

Test(plugins_jsonl, offsets_with_gaps)
{
	struct sl_plugin_inst *in = make("g.jsonl", 0);

	ev(0, 0, 0, NULL, NULL);
	ev(1, 0, 5, NULL, NULL);
	ev(2, 0, 9, NULL, NULL);
	cr_assert_eq(wr(in, 0, 3), 0);
	cr_assert_eq(resume(in), 10);
	sl_plugin_inst_destroy(in);
	in = make("g.jsonl", 0);
	cr_assert_eq(resume(in), 10);
	cr_assert_eq(wr(in, 1, 3), 0);
	assert_file("g.0.jsonl", 0, 3);
	sl_plugin_inst_destroy(in);
}

Test(plugins_jsonl, torn_last_line_is_cut_and_written_again)
{
	struct sl_plugin_inst *in = make("t.jsonl", 0);

	evs(0, 6, 0);
	cr_assert_eq(wr(in, 0, 5), 0);
	sl_plugin_inst_destroy(in);
	/* A crash in the middle of the last line. */
	off_t size = size_of("t.0.jsonl");
	cr_assert_eq(truncate(file_of("t.0.jsonl"), size - 10), 0);

	in = make("t.jsonl", 0);
	g_log[0] = '\0';
	cr_assert_eq(resume(in), 4);
	cr_assert_not_null(strstr(g_log, "cutting"), "%s", g_log);
	assert_file("t.0.jsonl", 0, 4);
	cr_assert_eq(wr(in, 4, 6), 0);
	assert_file("t.0.jsonl", 0, 6);
	sl_plugin_inst_destroy(in);

	/* Torn just before the newline: the line is whole but unterminated. */
	cr_assert_eq(truncate(file_of("t.0.jsonl"), size_of("t.0.jsonl") - 1), 0);
	in = make("t.jsonl", 0);
	cr_assert_eq(resume(in), 5);
	assert_file("t.0.jsonl", 0, 5);
	sl_plugin_inst_destroy(in);

	/* The first write torn: nothing whole, the file starts again. */
	cr_assert_eq(truncate(file_of("t.0.jsonl"), 20), 0);
	in = make("t.jsonl", 0);
	cr_assert_eq(resume(in), 0);
	cr_assert_eq(size_of("t.0.jsonl"), 0);
	cr_assert_eq(wr(in, 0, 6), 0);
	assert_file("t.0.jsonl", 0, 6);
	sl_plugin_inst_destroy(in);
}

Test(plugins_jsonl, damaged_line_in_the_tail_is_cut)
{
	struct sl_plugin_inst *in = make("z.jsonl", 0);
	size_t el;

	evs(0, 6, 0);
	cr_assert_eq(wr(in, 0, 6), 0);
	sl_plugin_inst_destroy(in);
	/* Zeros over the middle of line 3 (size kept), as a filesystem that
	 * extended the file before the data landed leaves it. */
	char *e = expected(0, 3, &el);
	int fd = open(file_of("z.0.jsonl"), O_WRONLY);
	cr_assert_geq(fd, 0);
	char zeros[16] = {0};
	cr_assert_eq(pwrite(fd, zeros, sizeof(zeros), (off_t)el + 20), (ssize_t)sizeof(zeros));
	close(fd);
	free(e);

	in = make("z.jsonl", 0);
	cr_assert_eq(resume(in), 3);
	assert_file("z.0.jsonl", 0, 3);
	cr_assert_eq(wr(in, 0, 6), 0);
	assert_file("z.0.jsonl", 0, 6);
	sl_plugin_inst_destroy(in);
}

Test(plugins_jsonl, large_batches_in_runs)
{
	/* About 3 MiB: several fdatasync runs, and a tail window smaller than
	 * the file. */
	static char big[1100];
	struct sl_plugin_inst *in = make("big.jsonl", 0);
	int n = 3000;

	memset(big, 'x', sizeof(big) - 1);
	big[0] = '"';
	big[sizeof(big) - 2] = '"';
	for (int i = 0; i < n; i++)
		ev(i, 0, (uint64_t)i, NULL, big);
	cr_assert_eq(wr(in, 0, n), 0);
	assert_file("big.0.jsonl", 0, n);
	sl_plugin_inst_destroy(in);

	/* Cut mid-way through a line near the end. */
	cr_assert_eq(truncate(file_of("big.0.jsonl"), size_of("big.0.jsonl") - 1500), 0);
	in = make("big.jsonl", 0);
	cr_assert_eq(resume(in), (uint64_t)n - 2);
	cr_assert_eq(wr(in, 0, n), 0);
	assert_file("big.0.jsonl", 0, n);
	sl_plugin_inst_destroy(in);

	/* Zeros over the last 1.5 KiB, size kept: the last two lines cut. */
	int fd = open(file_of("big.0.jsonl"), O_WRONLY);
	cr_assert_geq(fd, 0);
	static char zeros[1500];
	cr_assert_eq(pwrite(fd, zeros, sizeof(zeros), size_of("big.0.jsonl") - 1500),
	             (ssize_t)sizeof(zeros));
	close(fd);
	in = make("big.jsonl", 0);
	cr_assert_eq(resume(in), (uint64_t)n - 2);
	assert_file("big.0.jsonl", 0, n - 2);
	sl_plugin_inst_destroy(in);
}

Test(plugins_jsonl, leaves_files_it_did_not_write_alone)
{
	static const char text[] = "hello, this is my file\nwith two lines\n";
	struct sl_plugin_inst *in;
	size_t len;

	FILE *f = fopen(file_of("mine.0.txt"), "w");
	cr_assert_not_null(f);
	fputs(text, f);
	fclose(f);
	in = make("mine.txt", 0);
	uint64_t next;
	g_log[0] = '\0';
	cr_assert_eq(g_p->ops.sink.resume_offset(in->inst, &next), -EINVAL);
	cr_assert_not_null(strstr(g_log, "not an event line of partition 0"), "%s", g_log);
	evs(0, 2, 0);
	cr_assert_eq(wr(in, 0, 2), -EINVAL);
	char *s = slurp(file_of("mine.0.txt"), &len);
	cr_assert_str_eq(s, text);
	free(s);
	sl_plugin_inst_destroy(in);

	/* One line without a newline is a torn first write only when it
	 * starts like an event line: a JSON document of someone else stays. */
	f = fopen(file_of("doc.0.json"), "w");
	cr_assert_not_null(f);
	fputs("{\"name\":\"mine\"}", f);
	fclose(f);
	in = make("doc.json", 0);
	cr_assert_eq(g_p->ops.sink.resume_offset(in->inst, &next), -EINVAL);
	cr_assert_eq(size_of("doc.0.json"), 15);
	sl_plugin_inst_destroy(in);

	/* Lines of another partition are not ours either. */
	in = make("p.jsonl", 1);
	evs(0, 2, 1);
	cr_assert_eq(wr(in, 0, 2), 0);
	sl_plugin_inst_destroy(in);
	char from[512];
	snprintf(from, sizeof(from), "%s", file_of("p.1.jsonl"));
	cr_assert_eq(rename(from, file_of("p.2.jsonl")), 0);
	in = make("p.jsonl", 2);
	cr_assert_eq(g_p->ops.sink.resume_offset(in->inst, &next), -EINVAL);
	sl_plugin_inst_destroy(in);
}

Test(plugins_jsonl, refuses_bad_args_and_a_second_writer)
{
	static const struct {
		const char *yaml, *why;
	} bad[] = {
	    {"{}\n", "path must name a file"},
	    {"path: ''\n", "path must name a file"},
	    {"path: /tmp/\n", "path must name a file"},
	    {"path: [a]\n", "path must name a file"},
	    {"path: x.jsonl\nfsync: false\n", "unknown arg 'fsync' (jsonl takes path)"},
	    {"path: /nonexistent-dir-sluice/x.jsonl\n",
	     "cannot open /nonexistent-dir-sluice/x.0.jsonl: No such file or directory"},
	};
	struct sl_plugin_inst *in = NULL, *first;
	char err[512], yaml[600];

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		cr_assert_eq(make_ex(bad[i].yaml, 0, &in, err, sizeof(err)), -SL_EPLUGIN, "%s",
		             bad[i].yaml);
		cr_assert_not_null(strstr(err, bad[i].why), "%s: %s", bad[i].yaml, err);
		cr_assert_not_null(strstr(err, "archive (plugin jsonl): "), "%s", err);
	}
	first = make("w.jsonl", 0);
	snprintf(yaml, sizeof(yaml), "path: %s\n", file_of("w.jsonl"));
	cr_assert_eq(make_ex(yaml, 0, &in, err, sizeof(err)), -SL_EPLUGIN);
	cr_assert_not_null(strstr(err, "is being written by another sink"), "%s", err);
	sl_plugin_inst_destroy(first);
	/* Free again once the first is gone. */
	cr_assert_eq(make_ex(yaml, 0, &in, err, sizeof(err)), 0, "%s", err);
	sl_plugin_inst_destroy(in);
	mkdir(file_of("d.0"), 0755);
	snprintf(yaml, sizeof(yaml), "path: %s\n", file_of("d"));
	cr_assert_eq(make_ex(yaml, 0, &in, err, sizeof(err)), -SL_EPLUGIN);
	cr_assert_not_null(strstr(err, "d.0: Is a directory"), "%s", err);
}
