/*
 * base: what every subsystem shares — error codes and their text, cache-line
 * layout helpers, branch hints, monotonic time.
 *
 * Ownership: nothing here allocates. sl_strerror() returns static strings.
 * Threads: every function is safe to call from any thread.
 */
#ifndef SL_BASE_H
#define SL_BASE_H

#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#ifdef __cplusplus
extern "C" {
#endif

/* 64 B on every x86_64 and most arm64 parts; counters written by different
 * threads live on separate lines so they never false-share. */
#define SL_CACHELINE 64
#define SL_CACHE_ALIGNED __attribute__((aligned(SL_CACHELINE)))

#define SL_LIKELY(x) __builtin_expect(!!(x), 1)
#define SL_UNLIKELY(x) __builtin_expect(!!(x), 0)
#define SL_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define SL_UNUSED __attribute__((unused))

/*
 * Domain errors. Functions return 0 (or a count) on success and a negative
 * value on failure: -errno for system errors, or one of these. They start far
 * above any errno value so the two ranges never meet.
 */
enum sl_err {
	SL_EBASE = 10000,
	SL_EFRAME_TOO_BIG,   /* length prefix above the configured maximum */
	SL_EFRAME_TRUNC,     /* input ended inside a frame */
	SL_EPROTO_DECODE,    /* frame body is not valid protobuf */
	SL_EPROTO_UNKNOWN,   /* message type not known */
	SL_EPROTO_VERSION,   /* protocol version not supported */
	SL_EPROTO_STATE,     /* message not allowed in this connection state */
	SL_ECONFIG,          /* invalid configuration */
	SL_ECORRUPT,         /* stored data failed its checksum */
	SL_EFENCED,          /* producer epoch is older than the current one */
	SL_ESEQ_GAP,         /* producer sequence beyond the accepted window */
	SL_ECREDIT,          /* sent beyond the granted credits */
	SL_EOVERLOAD,        /* rejected by the topic's overload policy */
	SL_ENOTOPIC,         /* topic not known */
	SL_EPLUGIN,          /* plugin refused (ABI, entry point, sizes) */
	SL_ETIMEOUT,         /* deadline passed */
	SL_ELOG_FAILED,      /* partition log stopped after an I/O error */
	SL_EMAX
};

/* Text for a negative return value of any sluice function (domain or errno). */
const char *sl_strerror(int err);

/*
 * Growth of a byte buffer: returns `p` reallocated to hold at least `need`
 * bytes (capacity doubling from `first`), and sets *cap; NULL when memory
 * runs out, leaving `p` and *cap as they were. Every growable buffer of the
 * engine goes through here.
 */
void *sl_grow(void *p, size_t *cap, size_t need, size_t first);

/* Wakes whoever waits on eventfd `fd`. Async-signal-safe; a full counter
 * means a wake is already pending, which is all a waker wants. */
void sl_eventfd_signal(int fd);

/* Monotonic nanoseconds; never goes backwards, not wall time. */
static inline uint64_t sl_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Wall-clock nanoseconds since the epoch, for event timestamps. */
static inline uint64_t sl_wall_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static inline int sl_is_pow2(uint64_t v) { return v && !(v & (v - 1)); }

#ifdef __cplusplus
}
#endif

#endif
