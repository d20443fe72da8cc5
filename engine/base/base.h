/*
 * base: what every subsystem shares — error codes and their text, cache-line
 * layout helpers, branch hints, monotonic time, buffer growth, little-endian
 * fields and the crash-safe replacement of a small file.
 *
 * Ownership: sl_grow() reallocates the caller's buffer; nothing else here
 * allocates. sl_strerror() returns static strings.
 * Threads: every function is safe to call from any thread.
 */
#ifndef SL_BASE_H
#define SL_BASE_H

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#ifdef __cplusplus
extern "C" {
#endif

/* 64 B on every x86_64 and most arm64 parts; counters written by different
 * threads live on separate lines so they never false-share. */
#define SL_CACHELINE     64
#define SL_CACHE_ALIGNED __attribute__((aligned(SL_CACHELINE)))

#define SL_LIKELY(x)    __builtin_expect(!!(x), 1)
#define SL_UNLIKELY(x)  __builtin_expect(!!(x), 0)
#define SL_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define SL_UNUSED       __attribute__((unused))

/*
 * Domain errors. Functions return 0 (or a count) on success and a negative
 * value on failure: -errno for system errors, or one of these. They start far
 * above any errno value so the two ranges never meet.
 */
enum sl_err {
	SL_EBASE = 10000,
	SL_EFRAME_TOO_BIG,       /* length prefix above the configured maximum */
	SL_EFRAME_TRUNC,         /* input ended inside a frame */
	SL_EPROTO_DECODE,        /* frame body is not valid protobuf */
	SL_EPROTO_UNKNOWN,       /* message type not known */
	SL_EPROTO_VERSION,       /* protocol version not supported */
	SL_EPROTO_STATE,         /* message not allowed in this connection state */
	SL_ECONFIG,              /* invalid configuration */
	SL_ECORRUPT,             /* stored data failed its checksum */
	SL_EFENCED,              /* producer epoch is older than the current one */
	SL_ESEQ_GAP,             /* producer sequence beyond the accepted window */
	SL_ECREDIT,              /* sent beyond the granted credits */
	SL_EOVERLOAD,            /* rejected by the topic's overload policy */
	SL_ENOTOPIC,             /* topic not known */
	SL_EPLUGIN,              /* plugin refused (ABI, entry point, sizes) */
	SL_ETIMEOUT,             /* deadline passed */
	SL_ELOG_FAILED,          /* partition log stopped after an I/O error */
	SL_ELOG_FULL,            /* partition's device is full: not stored, retry later */
	SL_ENOT_LEADER,          /* cluster: this node does not lead the partition */
	SL_ENOT_ENOUGH_REPLICAS, /* acks: all with fewer than min_insync in sync */
	SL_EPRODUCER_EXPIRED,    /* a resend of a producer id the partition forgot */
	SL_EUNTRACKED,           /* sequence tracking impossible now: not stored, retry */
	SL_EUNKNOWN_MEMBER,      /* consumer group: not (or no longer) a member: join again */
	SL_EOUT_OF_RANGE,        /* offset below the log's start (retention removed it) */
	SL_EMAX
};

/* Text for a negative return value of any sluice function (domain or errno). */
const char *sl_strerror(int err);

/*
 * Growth of a byte buffer: returns `p` reallocated to hold at least `need`
 * bytes (capacity doubling from `first`), and sets *cap; NULL when memory
 * runs out, leaving `p` and *cap as they were. For byte buffers that grow
 * with their input; arrays of structs grown by count, and buffers resized
 * to an exact size (a shrink, a frame of known length), call realloc
 * themselves.
 */
void *sl_grow(void *p, size_t *cap, size_t need, size_t first);

/* A name of the safe alphabet that topics, projections, plugins and
 * consumer groups are named in (they become folder names, URL segments,
 * `NAME.so` and offsets records' keys): letters, digits, '.', '_', '-', 1 to
 * 128 bytes, not starting with '.' or '-'. */
bool sl_name_ok(const char *s, size_t n);

/* Decimal digits only (no sign, no spaces), at least one, value <= max:
 * 0 with *out, or -EINVAL. */
int sl_parse_dec(const char *s, size_t n, uint64_t max, uint64_t *out);

/* A read token, "PARTITION:OFFSET" in decimal, exactly `len` bytes: an
 * ack's position, what a query takes as min_offset and what its answer
 * says it reflects (the one definition of the format). 0, or -EINVAL. */
int sl_token_parse(const char *s, size_t len, uint32_t *partition, uint64_t *offset);

/* The k-th smallest (0-based, k < n) of v[0..n), reordering v: Hoare's
 * selection, expected O(n). For the sweeps that forget the least recently
 * used eighth of a table (dedup/). */
uint64_t sl_select_u64(uint64_t *v, size_t n, size_t k);

/* Formats an error text into err[0..errlen) (nothing when err is NULL or
 * errlen 0): the one shape of every `char *err, size_t errlen` out-param. */
void sl_errf(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Wakes whoever waits on eventfd `fd`. Async-signal-safe; a full counter
 * means a wake is already pending, which is all a waker wants. */
void sl_eventfd_signal(int fd);

/*
 * ThreadSanitizer does not see ck's fences (the TSan build uses ck's
 * builtin port, whose loads and stores are volatile accesses); code that
 * publishes or observes through ck pairs them with these, so TSan learns the
 * happens-before edge the fence gives. Nothing outside the TSan build.
 */
#if SL_TSAN
#include <sanitizer/tsan_interface.h>
#define SL_TSAN_RELEASE(p) __tsan_release((void *)(p))
#define SL_TSAN_ACQUIRE(p) __tsan_acquire((void *)(p))
#else
#define SL_TSAN_RELEASE(p) ((void)0)
#define SL_TSAN_ACQUIRE(p) ((void)0)
#endif

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

/* The same in milliseconds: the unit of the times stored in the log
 * (batch times), which the dedup tables compare against. */
static inline uint64_t sl_wall_ms(void)
{
	return sl_wall_ns() / 1000000;
}

static inline int sl_is_pow2(uint64_t v)
{
	return v && !(v & (v - 1));
}

/* Little-endian fields of on-disk formats (every target sluice builds for,
 * x86_64 and arm64 Linux, is little-endian, so these are plain copies). */
static inline void sl_put_le32(uint8_t *p, uint32_t v)
{
	__builtin_memcpy(p, &v, 4);
}
static inline void sl_put_le64(uint8_t *p, uint64_t v)
{
	__builtin_memcpy(p, &v, 8);
}
static inline uint32_t sl_get_le32(const uint8_t *p)
{
	uint32_t v;
	__builtin_memcpy(&v, p, 4);
	return v;
}
static inline uint64_t sl_get_le64(const uint8_t *p)
{
	uint64_t v;
	__builtin_memcpy(&v, p, 8);
	return v;
}
#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "sl_put_le* / sl_get_le* assume a little-endian target"
#endif

/* The value of hex digit c (either case), or -1: the one hex decoder
 * (UUIDs in json/, percent-encoding in http/). */
static inline int sl_hex_digit(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c |= 0x20; /* ASCII letters: fold to lowercase */
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/* The byte two hex digits at s spell (s[0] high), or -1. */
static inline int sl_hex_byte(const char *s)
{
	int hi = sl_hex_digit((unsigned char)s[0]), lo = sl_hex_digit((unsigned char)s[1]);
	return hi < 0 || lo < 0 ? -1 : hi << 4 | lo;
}

struct iovec;

/*
 * Replaces the file `name` in folder `dirfd` (AT_FDCWD for a path) by the
 * bytes of iov[0..n) so that a crash leaves either the old file or the
 * whole new one: they go to `name`.tmp, which is fdatasynced, renamed over
 * `name`, and then the folder is fsynced. Returns 0 or -errno; then *step
 * (may be NULL) names the step that failed, and *renamed (may be NULL) says
 * whether the rename had happened (a failed folder sync leaves a new file
 * that may or may not survive a crash). The .tmp is removed on failure
 * before the rename, except with SL_FILE_TEST_NO_RENAME, a test hook that
 * stops right before the rename (-ECANCELED) as a crash there would.
 */
#define SL_FILE_TEST_NO_RENAME 1u
/* The new file is readable by its owner only (0600), for secrets. */
#define SL_FILE_PRIVATE 2u
int sl_file_replace(int dirfd, const char *name, const struct iovec *iov, int n, unsigned flags,
                    const char **step, int *renamed);

/* Creates `dir` and every missing folder above it (mode 0755); 0 when it
 * exists, -errno (-ENAMETOOLONG past 4095 bytes). */
int sl_mkdirs(const char *dir);
/* Removes `path` and everything below it (links not followed); 0, -errno
 * (-ENOENT when it is not there). */
int sl_rmtree(const char *path);

/*
 * A condition other threads wait for without polling (engine/base/notify.c):
 * whoever changes what a waiter's predicate reads calls sl_notify_signal()
 * afterwards; sl_notify_wait() checks done(arg) under the lock and again at
 * every signal, until it holds (0) or timeout_ns passes (-ETIMEDOUT).
 * Signalling with nobody waiting costs a lock and an unlock. Deadlines are
 * on the monotonic clock. Any threads.
 */
struct sl_notify {
	pthread_mutex_t mu;
	pthread_cond_t cv;
};
int sl_notify_init(struct sl_notify *n);
void sl_notify_destroy(struct sl_notify *n);
void sl_notify_signal(struct sl_notify *n);
int sl_notify_wait(struct sl_notify *n, bool (*done)(void *arg), void *arg, uint64_t timeout_ns);

#ifdef __cplusplus
}
#endif

#endif
