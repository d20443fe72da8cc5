/*
 * skewtime: a preload library that moves a process's wall clock by
 * SL_SKEW_S seconds (signed; CLOCK_REALTIME and its coarse variant,
 * gettimeofday, time). The fault harness restarts a node under it to skew
 * its clock (tests/cluster/nemesis.py, kind `skew`).
 *
 * Why not libfaketime: sluiced links jemalloc, whose initialisation calls
 * clock_gettime before libfaketime has initialised itself, and
 * libfaketime's initialisation allocates: it gives up with "Unexpected
 * recursive calls to clock_gettime()" and sluiced never starts (checked
 * with libfaketime 0.9.10 and jemalloc 5.3, Debian 12). This library
 * allocates nothing and resolves nothing: it reads its variable with
 * getenv and asks the kernel through syscall(2), so it works from the
 * first constructor on. Monotonic clocks are left alone: they have no
 * meaning across machines, so a real node's skew never moves them.
 *
 * Any thread (no state but the offset, read once).
 */
#define _GNU_SOURCE
#include <limits.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define UNREAD LLONG_MIN

static _Atomic long long sl__skew_s = UNREAD;

static long long skew_s(void)
{
	long long s = atomic_load_explicit(&sl__skew_s, memory_order_relaxed);
	if (s == UNREAD) {
		const char *v = getenv("SL_SKEW_S");
		s = v ? strtoll(v, NULL, 10) : 0;
		atomic_store_explicit(&sl__skew_s, s, memory_order_relaxed);
	}
	return s;
}

int clock_gettime(clockid_t clk, struct timespec *ts)
{
	long r = syscall(SYS_clock_gettime, clk, ts);
	if (r == 0 && (clk == CLOCK_REALTIME || clk == CLOCK_REALTIME_COARSE))
		ts->tv_sec += skew_s();
	return (int)r;
}

int gettimeofday(struct timeval *restrict tv, void *restrict tz)
{
	struct timespec ts;
	struct timeval *out = tv; /* glibc declares tv nonnull; callers pass NULL */
	(void)tz;
	if (clock_gettime(CLOCK_REALTIME, &ts) != 0)
		return -1;
	if (out) {
		out->tv_sec = ts.tv_sec;
		out->tv_usec = ts.tv_nsec / 1000;
	}
	return 0;
}

time_t time(time_t *t)
{
	struct timespec ts;
	if (clock_gettime(CLOCK_REALTIME, &ts) != 0)
		return (time_t)-1;
	if (t)
		*t = ts.tv_sec;
	return ts.tv_sec;
}
