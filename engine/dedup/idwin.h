/*
 * idwin: the event-id window, idempotence by event id (issue 20, item 3).
 *
 * The sequence table (dedup.h) catches a resend by the producer that sent
 * the original. An event resent by ANOTHER producer (a client restarted
 * without its producer id, a second process replaying a file, a failover
 * to a leader that never saw the session) carries a new producer id and a
 * new sequence, and only its id (Event.id, 16 bytes, always set) tells it
 * is the same event. struct sl_idwin remembers, per PARTITION, the ids
 * stored there recently and where: ids are keyed exactly (all 16 bytes; a
 * fingerprint's false positive would silently drop an event), the value is
 * the offset of the first event stored with that id.
 *
 * Which ids it holds. Entries sit in a FIFO in offset order, each with the
 * append time (ms, server clock) of the batch that holds it. One is dropped
 *   - by time: sl_idwin_expire(now_ms) drops every entry stored at t with
 *     now_ms - t >= window_ms. The edge, precisely: an id stored at t is in
 *     the window, and a duplicate, while now_ms - t < window_ms; at
 *     now_ms - t == window_ms it is out (the unit test checks both sides);
 *   - by count: an add that finds `cap` entries drops the oldest first.
 * Oldest first in both cases, and times along the FIFO never decrease (an
 * add whose time is below the newest one's is recorded at the newest one's:
 * a clock stepped back can only keep an id longer, never drop it early).
 *
 * horizon_ms: the newest time among the entries dropped so far (by time or
 * by count; 0 if none). The guarantee, which the producer-expiry code
 * relies on: every id added at a time > horizon_ms is still found (unless
 * a truncate_from cut it: then its event is gone from the log too). It
 * holds because drops go oldest first along a FIFO whose times never
 * decrease, so everything dropped was added at or before the time of the
 * last one dropped. After recovery (topic/producers.c) horizon covers the
 * records that were not replayed too: replay starts one record before the
 * window, which the cap or the clock then drops.
 *
 * Memory. An entry is 24 bytes in the FIFO ({id 16, offset 8}) plus 8 in
 * the index (uint32 slots, twice the FIFO's capacity: load <= 0.5, so a
 * miss, the common case, ends after ~2.5 probes; the slots' high bits hold
 * the slot's distance from its home and a tag of the hash, so most probes
 * compare no id and a drop reads no other entry): 32 bytes per id when
 * full at a power-of-two cap (262,144 ids: 8 MiB; measured against
 * jemalloc's own count in tests/unit/idwin.c: 32.06). Times are not kept
 * per entry but as marks, one per distinct append time (ms) among the
 * entries, 16 bytes each: at most 16,000 / R bytes per id for a partition
 * taking R ids a second (0.16 at 100,000/s); at worst, a trickle with every
 * id in a millisecond of its own, 16 (48 in all). The FIFO and index
 * start at 64 entries and grow fourfold, to the cap rounded up to a power
 * of two at most (so while growing, room for up to 4 times the ids held:
 * 128 bytes per id at worst, never more than at the cap); an index of
 * 2 MiB or more is asked for on huge pages (MADV_HUGEPAGE), which changes
 * no count above (a power of two fills them). The marks double as
 * needed; nothing shrinks. Once grown, add, find and expire never
 * allocate; should a growth fail, the window keeps its size and drops its
 * oldest entry instead (horizon says so), so add never fails for memory.
 *
 * The hash is seeded per window at create (from getrandom): ids come from
 * clients, who must not be able to pick colliding ones.
 *
 * Ownership: sl_idwin_create returns a window freed with sl_idwin_destroy.
 * Threads: one thread only, none of it is thread-safe: the partition's
 * owner reactor, or the thread opening the partition during recovery.
 */
#ifndef SL_IDWIN_H
#define SL_IDWIN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SL_IDWIN_ID_LEN 16
/* The config's bound for dedup_window_events (config/topics.c): positions
 * and slots are uint32, and an index slot keeps its tag bits above the
 * FIFO index. */
#define SL_IDWIN_CAP_MAX (UINT32_C(1) << 28)
/* dedup_window_events when not given (the config's default too). */
#define SL_IDWIN_CAP_DEFAULT (UINT32_C(1) << 18)
/* Bytes per id at capacity besides the marks (FIFO entry + 2 index slots). */
#define SL_IDWIN_BYTES_PER_ID 32u

struct sl_idwin;

/* window_ms > 0, 1 <= cap <= SL_IDWIN_CAP_MAX; else -EINVAL. -ENOMEM. */
int sl_idwin_create(int64_t window_ms, uint32_t cap, struct sl_idwin **out);
void sl_idwin_destroy(struct sl_idwin *w);

/*
 * 1 when `id` is in the window, with *offset (the first offset stored
 * with it) and, if time_ms is not NULL, *time_ms (its batch's append
 * time, as recorded: a binary search of the marks); 0 when it is not.
 * Entries past the edge stay findable until sl_idwin_expire drops them:
 * a caller between expiries compares *time_ms with its clock.
 * A miss leaves its probe in the window (a cache, which changes no answer:
 * `w` is const to callers, like a C++ `mutable` member) for an
 * sl_idwin_add of the same id that follows with no other change between:
 * that add neither hashes nor probes again.
 */
int sl_idwin_find(const struct sl_idwin *w, const uint8_t id[SL_IDWIN_ID_LEN], uint64_t *offset,
                  int64_t *time_ms);

/*
 * Starts loading the index slot where a find or add of `id` begins, so
 * that a caller with several ids in hand (a block of events) overlaps the
 * cache misses: prefetch id i + k, then handle id i. Changes nothing.
 */
void sl_idwin_prefetch(const struct sl_idwin *w, const uint8_t id[SL_IDWIN_ID_LEN]);

/*
 * Records `id` stored at `offset` in a batch appended at time_ms. Offsets
 * must increase strictly from add to add (-EINVAL otherwise; after
 * sl_idwin_truncate_from(cut) the next may be >= cut). An id already in
 * the window keeps its first offset: returns 1 and changes nothing but the
 * lowest offset the next add may have. Else 0 (the oldest entry dropped
 * first when `cap` are held).
 */
int sl_idwin_add(struct sl_idwin *w, const uint8_t id[SL_IDWIN_ID_LEN], uint64_t offset,
                 int64_t time_ms);

/* A rebuild from the log that starts past records it never adds: they
 * were appended at or before time_ms, and horizon_ms rises to it as if
 * they had been added and dropped. */
void sl_idwin_skipped(struct sl_idwin *w, int64_t time_ms);

/* Drops every entry with now_ms - time >= window_ms; returns how many. */
uint32_t sl_idwin_expire(struct sl_idwin *w, int64_t now_ms);

/* Drops the entries at offsets >= cut (a follower's log cut there), newest
 * first; horizon_ms is not moved (their events are gone, not forgotten).
 * Returns how many. */
uint32_t sl_idwin_truncate_from(struct sl_idwin *w, uint64_t cut);

/* For tests: a slot's distance from its home saturates at dmax (1, 3 or
 * 7: all ones in the field's low bits; the field holds 15) instead, so that
 * the path that finds a saturated slot's home by its hash runs all the
 * time, not once in a blue moon. Only on an empty window: -EINVAL
 * otherwise, or for another dmax. */
int sl_idwin_set_distance_limit(struct sl_idwin *w, uint32_t dmax);

/* See the top: the newest time dropped by time or count, 0 if none. */
int64_t sl_idwin_horizon_ms(const struct sl_idwin *w);

/* Grows the window now to hold n ids (at most its cap) instead of by the
 * adds that need it (a rebuild that knows how many it will add). 0 or
 * -ENOMEM (the window is unchanged then). */
int sl_idwin_reserve(struct sl_idwin *w, uint64_t n);

/* The window's length changed at runtime (window_ms > 0): a shorter one
 * drops more at the next expire; a longer one keeps what it still holds
 * longer (what it already dropped stays dropped: horizon_ms says so). */
void sl_idwin_set_window_ms(struct sl_idwin *w, int64_t window_ms);

uint32_t sl_idwin_count(const struct sl_idwin *w);
int64_t sl_idwin_window_ms(const struct sl_idwin *w);
uint32_t sl_idwin_cap(const struct sl_idwin *w);
/* Bytes held: the struct, FIFO, index and marks. */
size_t sl_idwin_memory(const struct sl_idwin *w);

#ifdef __cplusplus
}
#endif

#endif
