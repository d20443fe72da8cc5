/* Runner for the TSan build of the threaded tests; see criterion/criterion.h. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "criterion/criterion.h"

static struct sl_shim_test *sl_shim_head, **sl_shim_tail = &sl_shim_head;
static const struct sl_shim_test *sl_shim_current;

/*
 * RocksDB (Debian's build, not instrumented) orders its memtable's skip list
 * and its caches with atomics TSan does not see, so a read of a commit on
 * one thread and the writer's insert on another look like races inside it
 * (tests/unit/state.c). Suppressed: races with a frame in RocksDB, the
 * interceptors (memcpy, malloc) RocksDB calls, and races with a frame in
 * libstdc++ (RocksDB's frames often do not show, having no frame pointers;
 * sluice's own code is C and never calls libstdc++). Races between frames
 * of sluice's own code are still reported.
 */
const char *__tsan_default_suppressions(void);
const char *__tsan_default_suppressions(void)
{
	return "race:librocksdb.so\n"
	       "called_from_lib:librocksdb.so\n"
	       "race:libstdc++.so\n";
}

void sl_shim_register(struct sl_shim_test *t)
{
	/* Constructors run in source order: keep it. */
	*sl_shim_tail = t;
	sl_shim_tail = &t->next;
}

void sl_shim_fail(const char *file, int line, const char *expr, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "[FAIL] %s::%s: %s:%d: %s", sl_shim_current ? sl_shim_current->suite : "?",
	        sl_shim_current ? sl_shim_current->name : "?", file, line, expr);
	if (fmt && *fmt) {
		fputs(": ", stderr);
		va_start(ap, fmt);
		vfprintf(stderr, fmt, ap);
		va_end(ap);
	}
	fputc('\n', stderr);
	exit(1);
}

void sl_shim_log(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

int main(int argc, char **argv)
{
	unsigned n = 0;

	/* Same argument shape as Criterion's runner where it matters. */
	(void)argc;
	(void)argv;
	for (const struct sl_shim_test *t = sl_shim_head; t; t = t->next) {
		sl_shim_current = t;
		fprintf(stderr, "[RUN ] %s::%s\n", t->suite, t->name);
		t->fn();
		fprintf(stderr, "[ OK ] %s::%s\n", t->suite, t->name);
		n++;
	}
	fprintf(stderr, "tsan runner: all %u tests ran clean\n", n);
	return 0;
}
