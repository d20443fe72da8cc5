/*
 * hot: hot partitions and hot keys (issue 19 item 3).
 *
 * Two small pieces, both written by one owner thread and read by any:
 *
 * - struct sl_hot_rate, one per partition (in struct sl_partition): its
 *   owner samples the log's end offset and written bytes once a second
 *   (sl_hot_rate_sample, from the reactor's tick) into a ring of the last
 *   SL_HOT_RATE_SLOTS samples and publishes events/s and bytes/s over the
 *   last ~10 s as two relaxed atomics. Nothing on the per-event path.
 *
 * - struct sl_hot, a Space-Saving summary (Metwally, Agrawal, El Abbadi
 *   2005) of aggregate ids, one per (topic, reactor): every partition of
 *   the topic that the reactor owns feeds it as it appends events
 *   (sl_hot_add). Keys of different partitions never meet, and a key has
 *   one partition, so one reactor's summary holds its keys alone and the
 *   topic's top K is the union of its reactors' summaries (sl_hot_top).
 *   One summary per reactor rather than per partition keeps the memory
 *   independent of the partition count (SL_HOT_BYTES per topic and
 *   reactor that owns a partition of it) and gives the hot keys of a
 *   reactor's partitions the whole of its SL_HOT_COUNTERS counters.
 *
 * Space-Saving's bound, with m = SL_HOT_COUNTERS counters over a stream
 * of N (sampled, decayed) events: every count is an overestimate, by at
 * most its entry's `err`, and err <= min count <= N / m; every key whose
 * true count exceeds N / m is in the summary. The summary is a min-heap of
 * counters (indices, the 64-byte entries never move) with an open-address
 * index by key hash: an update is a hash, one probe run and a sift-down
 * (a hot key sits deep in the heap, where a sift is short). No
 * allocation, lock or system call: everything is allocated with the
 * summary.
 *
 * Keys: the identity of a key is its 64-bit XXH3 hash and its length (two
 * distinct keys that agree on both are counted as one: with 256 counters,
 * about 2^-49 a pair); its first SL_HOT_KEY_PREFIX bytes are kept for
 * display, marked as cut when the key is longer.
 *
 * "By rate" means recent: every SL_HOT_HALVE_NS the owner halves every
 * count (and error, and N) in place (sl_hot_halve; a monotone map keeps
 * the heap ordered). An event t seconds old weighs 2^-floor(t/10 s); the
 * summary also tracks the same weighting of elapsed time (`span`), so
 * count / span is the key's rate for a steady stream and a recency-
 * weighted one otherwise (half of the weight is in the last 10-20 s).
 * Halving rounds counts up, so a count stays an overestimate and the
 * lower bound count - err may be off by one event.
 *
 * Sampling: one event in SL_HOT_SAMPLE is counted, chosen by a per-
 * summary xorshift (so no period in the stream can alias with it), and
 * rates are scaled back by it. An update of every event cost 65 ns on a
 * Zipf(1.1) stream and 110 ns on uniform keys (bench_hot, this 2-vCPU VM:
 * a miss replaces the smallest counter, whose new count sifts down past
 * the many tied at the minimum), 3-10% of a reactor's time per event;
 * sampled, 11 and 17 ns. The price: an estimate carries the sampling's
 * noise besides its error (the relative standard deviation of a key's
 * rate is about sqrt(SL_HOT_SAMPLE / its count): 1% for a key with 80,000
 * events in the decayed window, 10% at 800), and err counts in sampled
 * events times SL_HOT_SAMPLE. End to end (bench/scripts/ab.sh def, 2M
 * events, 7 alternating pairs against the build before, 2026-12, with
 * other sessions loading the 2 vCPUs): 399-568k events/s against
 * 415-611k, per-pair ratios 0.89-1.15, median 0.96: no cost the noise
 * lets one see, and a few percent cannot be ruled out.
 *
 * Publication: once a second the owner copies its top SL_HOT_PUB entries
 * into `pub` under a sequence counter (a seqlock whose data words are
 * relaxed atomics, so readers race with nothing); readers retry while it
 * moves (sl_hot_read, bounded). The writer never waits.
 *
 * Ownership: sl_hot_create returns a summary the caller frees with
 * sl_hot_destroy (the topics own theirs). Threads: sl_hot_add,
 * sl_hot_halve, sl_hot_publish, sl_hot_rate_sample: the owner (a
 * reactor) only; sl_hot_read, sl_hot_rate_*_per_s, sl_hot_top,
 * sl_hot_key_quote: any thread.
 */
#ifndef SL_HOT_H
#define SL_HOT_H

#ifndef __cplusplus
#include <stdatomic.h>
#endif
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/base.h"

/* m: 256 counters keep the error of a key at most N/256 (0.4% of the
 * reactor's recent events of the topic); the unit test's Zipf(1.1) stream
 * of 1M events over 100,000 keys finds its true top 10 with room. */
#define SL_HOT_COUNTERS 256u
/* Index slots: twice the counters, so a probe run stays short. */
#define SL_HOT_SLOTS (2u * SL_HOT_COUNTERS)
/* The most keys a topic reports (hot_keys), and so what each summary
 * publishes: the topic's top K is among its reactors' top K each. */
#define SL_HOT_K_MAX 64u
#define SL_HOT_PUB   SL_HOT_K_MAX
/* Bytes of a key kept for display. */
#define SL_HOT_KEY_PREFIX 32u
/* The decay period: counts halve every 10 s. */
#define SL_HOT_HALVE_NS (10ull * 1000000000ull)
/* One event in this many is counted (a power of two): see Sampling. */
#define SL_HOT_SAMPLE 8u
/* Rate samples: one a second, the rate over the last 10 s. */
#define SL_HOT_RATE_SLOTS    11u
#define SL_HOT_RATE_EVERY_NS 1000000000ull
/* A partition below this many events/s is never called hot, whatever
 * the mean: in a quiet topic one active partition is n times the mean. */
#define SL_HOT_MIN_EVENTS_PER_S 100.0

#ifdef __cplusplus
extern "C" {
#endif

/* A published entry as a reader holds it. */
struct sl_hot_key {
	uint64_t hash;
	double events_per_s; /* estimate: an overestimate by at most error_per_s */
	double error_per_s;
	uint32_t len, part;
	uint8_t klen;
	char key[SL_HOT_KEY_PREFIX];
};

/* A published summary as a reader holds it. */
struct sl_hot_snap {
	uint32_t n;
	double events;      /* N, scaled by the sample */
	double bound_per_s; /* N / m as a rate: no key absent is above it */
	double span_s;      /* decayed seconds the counts cover */
	struct sl_hot_key k[SL_HOT_PUB];
};

struct sl_hot;

/* A zeroed summary (sample: SL_HOT_SAMPLE, or 1..2^16 a power of two for
 * tests), its clocks started at now_ns. NULL without memory. */
struct sl_hot *sl_hot_create(uint32_t sample, uint64_t now_ns);
void sl_hot_destroy(struct sl_hot *h);

/* Owner. Counts one event of key[0..len) appended to partition `part`
 * (sl_hot_add below, out of line: for C++). */
void sl_hot_add_call(struct sl_hot *h, const void *key, size_t len, uint32_t part);

/* Owner. Halves every count, error and N (and the decayed span), now. */
void sl_hot_halve(struct sl_hot *h, uint64_t now_ns);

/* Owner, at its tick: halves when SL_HOT_HALVE_NS passed, then publishes
 * the top SL_HOT_PUB entries and the span up to now. */
void sl_hot_publish(struct sl_hot *h, uint64_t now_ns);

/* Any thread. Copies what `h` published: 0, or -EAGAIN when the owner
 * kept writing through every one of a bounded number of tries. */
int sl_hot_read(const struct sl_hot *h, struct sl_hot_snap *out);

/* Any thread. The top `k` keys (k <= SL_HOT_K_MAX) of the union of
 * snaps[0..n) by rate, highest first, into out[]; returns how many. */
uint32_t sl_hot_top(const struct sl_hot_snap *snaps, uint32_t n, uint32_t k,
                    struct sl_hot_key *out);

/* Any thread. The key as text that is safe inside a JSON string and a
 * Prometheus label value alike: printable ASCII but '"' and '\' kept,
 * every other byte as \xHH with its backslash written doubled ("\\x0a"),
 * "..." after a key cut to its prefix. Returns the length (cap >=
 * SL_HOT_KEY_TEXT). */
#define SL_HOT_KEY_TEXT (SL_HOT_KEY_PREFIX * 5 + 4)
size_t sl_hot_key_quote(const struct sl_hot_key *k, char *out, size_t cap);

/* Whether a partition at `rate` crosses (true while hot, with `was` its
 * last state) `factor` x the topic's mean: hot above factor x mean (and
 * SL_HOT_MIN_EVENTS_PER_S), cold again below 3/4 of that, so a rate at
 * the edge is not said every second. factor 0: never. */
bool sl_hot_is_hot(bool was, double rate, double mean, uint32_t factor);

#ifdef __cplusplus
}
#else /* _Atomic is C's: the C++ benchmarks see the summary opaque */

/* One counter: 64 bytes, a cache line. */
struct sl_hot_entry {
	uint64_t hash;  /* XXH3 of the whole key */
	uint64_t count; /* an overestimate of its (sampled, decayed) count */
	uint64_t err;   /* by at most this */
	uint32_t len;   /* the key's whole length */
	uint16_t part;  /* the partition it was last counted in */
	uint8_t klen;   /* bytes of key[] used: min(len, SL_HOT_KEY_PREFIX) */
	uint8_t pad;
	char key[SL_HOT_KEY_PREFIX];
};

/* What a summary publishes: the seqlock and SL_HOT_PUB entries as words. */
#define SL__HOT_WORDS (sizeof(struct sl_hot_entry) / sizeof(uint64_t))
struct sl_hot_pub {
	_Atomic uint64_t seq; /* odd while the owner writes */
	_Atomic uint64_t n;   /* entries published */
	_Atomic uint64_t total, floor, span_ns, sample;
	_Atomic uint64_t w[SL_HOT_PUB][SL__HOT_WORDS];
};

struct sl_hot {
	struct sl_hot_entry e[SL_HOT_COUNTERS];
	uint16_t heap[SL_HOT_COUNTERS]; /* entry indices, min count first */
	uint16_t pos[SL_HOT_COUNTERS];  /* entry -> its heap position */
	uint16_t slot[SL_HOT_SLOTS];    /* index by hash: entry + 1, 0 empty */
	uint32_t n;                     /* entries in use */
	uint32_t sample;                /* SL_HOT_SAMPLE */
	uint64_t total;                 /* N: the sum of the counts */
	uint64_t rng;                   /* xorshift state for sampling */
	uint64_t span_ns;               /* decayed time, as the counts are */
	uint64_t since_ns;              /* when span_ns was last brought up to date */
	uint64_t halved_ns;             /* when the counts were last halved */
	struct sl_hot_pub pub SL_CACHE_ALIGNED;
};

/* The memory of one summary. */
#define SL_HOT_BYTES  sizeof(struct sl_hot)

void sl_hot__add(struct sl_hot *h, const void *key, size_t len, uint32_t part);
/* Owner. Counts one event of key[0..len) appended to partition `part`. */
static inline void sl_hot_add(struct sl_hot *h, const void *key, size_t len, uint32_t part)
{
	if (h->sample > 1) {
		/* xorshift64: the same event count cannot alias a period. */
		uint64_t x = h->rng;
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		h->rng = x;
		if (x & (h->sample - 1))
			return;
	}
	sl_hot__add(h, key, len, part);
}

/* ---- partition rates --------------------------------------------------- */

struct sl_hot_rate {
	/* owner */
	uint64_t ev[SL_HOT_RATE_SLOTS], by[SL_HOT_RATE_SLOTS], ns[SL_HOT_RATE_SLOTS];
	uint32_t head, n;
	uint64_t next_ns; /* when the next sample is due */
	bool hot;         /* past hot_partition_factor x the mean (said once) */
	/* published: doubles' bits, relaxed (a reader wants a recent value) */
	_Atomic uint64_t events_pub, bytes_pub;
};

/* Owner: takes a sample of the counters (events: the log's end offset;
 * bytes: written) if one is due at now_ns; true when it took one (and
 * published the rates). */
bool sl_hot_rate_sample(struct sl_hot_rate *r, uint64_t events, uint64_t bytes, uint64_t now_ns);

static inline double sl__hot_f64(const _Atomic uint64_t *a)
{
	uint64_t b = atomic_load_explicit(a, memory_order_relaxed);
	double d;
	__builtin_memcpy(&d, &b, sizeof(d));
	return d;
}
/* Any thread: events/s and bytes/s over the last ~10 s (0 before two
 * samples). */
static inline double sl_hot_rate_events_per_s(const struct sl_hot_rate *r)
{
	return sl__hot_f64(&r->events_pub);
}
static inline double sl_hot_rate_bytes_per_s(const struct sl_hot_rate *r)
{
	return sl__hot_f64(&r->bytes_pub);
}

#endif /* __cplusplus */

#endif
