/*
 * ring: bounded lock-free FIFO rings that carry work between cores, built on
 * Concurrency Kit's ck_ring (its ck_ring_t counters and algorithm, ck_pr for
 * loads, stores, fences and CAS) and extended with batch operations that
 * publish an index once per batch.
 *
 * Two flavours share one layout (struct sl_ring):
 *   - the pointer ring, sl_ring_*: items are `void *`, the common case;
 *   - typed rings, SL_RING_DEFINE(name, type): items are small fixed-size
 *     values (a 16-32 byte descriptor) copied in and out by value, through
 *     sl_ring_<name>_*.
 *
 * Capacity: a power of two N, 2 <= N <= SL_RING_CAPACITY_MAX. ck tells "full"
 * from "empty" by keeping one slot empty, so a ring of capacity N holds at
 * most N - 1 items.
 *
 * Ownership: the caller owns the struct sl_ring (embed it or allocate it
 * aligned to SL_CACHELINE: the counters are laid out one cache line each);
 * init allocates the slot buffer and destroy frees it. The ring never owns
 * what the items point to: a pointer popped is the popper's to use or free.
 *
 * Threads: the suffix is the contract, per side.
 *   - *_push_*spsc: only one thread ever pushes to this ring;
 *     *_pop_*spsc: only one thread ever pops from it. A ring used only with
 *     the _spsc functions is a single-producer/single-consumer ring.
 *   - *_mpmc: any number of threads may push and pop concurrently.
 *   - Mixing per side is allowed in one direction: many producers with
 *     push_*mpmc and one consumer with pop_*spsc (MPSC). One producer with
 *     many consumers must push with push_*mpmc too, because pop_*mpmc reads
 *     a slot before it claims it (see "Slots" below) and needs the producer
 *     to write slots with atomic stores.
 *   - init/destroy: no other thread may use the ring. size: any thread, the
 *     answer is a snapshot.
 *   Each side keeps a copy of the other side's index (private to an _spsc
 *   end, shared by the threads of an _mpmc side) and reads the index itself
 *   only when the copy shows too little room or too few items; a copy that
 *   cannot be right is reloaded too, so one side may switch between its
 *   _spsc and _mpmc calls as long as its promise holds.
 *
 * Return values: single push/pop return bool like ck (false: full / empty);
 * batch push/pop return how many items moved (0..n, fewer than asked when the
 * ring fills or empties); init returns 0 or a negative errno.
 *
 * Memory ordering (x86 is TSO, so every fence below compiles to a compiler
 * barrier there; the comments say what each orders with, which is what a
 * weaker machine needs):
 *   producer: write slots -> release fence -> store p_tail   (publish)
 *   consumer: load p_tail -> acquire fence -> read slots     (observe)
 *   consumer: read slots  -> release fence -> store c_head   (free slots)
 *   producer: load c_head -> acquire fence -> write slots    (reuse slots)
 * A copy of an index that other threads take (the _mpmc sides) is stored
 * after a release fence and read before an acquire fence, so taking the copy
 * carries the same happens-before as loading the index did.
 * ThreadSanitizer does not model standalone fences, and ck's compiler-builtin
 * port (CK_USE_CC_BUILTINS, used in the TSan build) does loads and stores as
 * volatile accesses, which TSan treats as plain ones. So when SL_TSAN is set
 * the counters are accessed with relaxed __atomic builtins and every fence
 * that publishes or observes is paired with __tsan_release/__tsan_acquire on
 * the counter it orders with.
 *
 * Slots: the _spsc ends copy items with memcpy (plain loads and stores). The
 * _mpmc ends copy them with relaxed atomic word loads and stores, which are
 * plain moves on x86: pop_mpmc reads the slots before the CAS that claims
 * them (once the CAS succeeds a producer may overwrite them), and a read that
 * then loses its CAS may have overlapped a producer's write. With atomic
 * words that overlap is not a data race and the stale copy is discarded.
 */
#ifndef SL_RING_H
#define SL_RING_H

#include <ck_cc.h>
#include <ck_md.h>
#include <ck_pr.h>
#include <ck_stdbool.h>
#include <ck_string.h>
#ifdef __cplusplus
/* ck_ring.h returns `false` from a function that returns a pointer: a null
 * pointer constant in C, an error in C++. The benchmarks include this header
 * from C++, so only there ck_ring.h's body sees `false` as 0 (its own
 * includes are already in, above). */
#pragma push_macro("false")
#undef false
#define false 0
#include <ck_ring.h>
#pragma pop_macro("false")
#else
#include <ck_ring.h>
#endif
#include <sched.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "base/base.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Counters are unsigned int (ck's); 2^31 keeps "used < mask" arithmetic and
 * slot offsets (capacity * item size) far from overflow. */
#define SL_RING_CAPACITY_MAX (1u << 31)

/*
 * Pause iterations a producer spins in push_*mpmc waiting for an earlier
 * producer to publish, before it yields the CPU. Publishing takes
 * nanoseconds, so ~1000 pauses (tens of microseconds) means that producer is
 * not running: it was preempted between its reservation and its publish,
 * which happens only when cores are oversubscribed (tests, a busy machine),
 * never with one pinned thread per core.
 */
#define SL_RING_SPIN_YIELD 1024

struct sl_ring {
	/* Line 0: c_head (consumers). Line 1: p_tail, p_head (producers).
	 * Line 2: size, mask, then slots below: read-only after init. */
	ck_ring_t ck;
	void *slots;
	/* Producers' copy of c_head: a value c_head had, so never more than
	 * it. push_*spsc keeps it alone; push_*mpmc producers share it and
	 * any of them refreshes it. A stale copy only makes the ring look
	 * fuller than it is: producers read c_head (the consumers' line)
	 * only when the copy shows too little room. */
	unsigned int p_seen_c SL_CACHE_ALIGNED;
	/* Consumers' copy of p_tail, the same way round: a stale copy only
	 * makes the ring look emptier, and consumers read p_tail only when
	 * it shows fewer items than they asked for. */
	unsigned int c_seen_p SL_CACHE_ALIGNED;
} SL_CACHE_ALIGNED;

/* Allocates `capacity` slots of `item_size` bytes, aligned to a cache line and
 * pre-faulted. 0, -EINVAL (capacity not a power of two in
 * [2, SL_RING_CAPACITY_MAX], or item_size 0) or -ENOMEM. */
int sl__ring_init(struct sl_ring *r, unsigned int capacity, size_t item_size);

/* The pointer ring: capacity slots of `void *`. */
int sl_ring_init(struct sl_ring *r, unsigned int capacity);
/* Frees the slots; items still in the ring are not touched. */
void sl_ring_destroy(struct sl_ring *r);

#define SL__RING_INLINE static inline __attribute__((always_inline))

/* Loads and stores of a counter another thread reads or writes. */
SL__RING_INLINE unsigned int sl__ring_ld(const unsigned int *p)
{
#if SL_TSAN
	return __atomic_load_n(p, __ATOMIC_RELAXED);
#else
	return ck_pr_load_uint(p);
#endif
}

SL__RING_INLINE void sl__ring_st(unsigned int *p, unsigned int v)
{
#if SL_TSAN
	__atomic_store_n(p, v, __ATOMIC_RELAXED);
#else
	ck_pr_store_uint(p, v);
#endif
}

/* Word types for the _mpmc slot copies; may_alias because they read and
 * write the caller's item type. */
typedef uint64_t sl__ring_w64 __attribute__((may_alias));
typedef uint32_t sl__ring_w32 __attribute__((may_alias));
typedef uint16_t sl__ring_w16 __attribute__((may_alias));
typedef uint8_t sl__ring_w8 __attribute__((may_alias));

/* Widest word that divides the item and is no more aligned than it is. */
#define SL__RING_WORD(size, align)                                                                 \
	(((size) % 8 == 0 && (align) >= 8)   ? 8                                                   \
	 : ((size) % 4 == 0 && (align) >= 4) ? 4                                                   \
	 : ((size) % 2 == 0 && (align) >= 2) ? 2                                                   \
	                                     : 1)

/* word == 0: plain copy (the _spsc ends). Otherwise relaxed atomic stores of
 * `word`-byte words into the ring (dst) or loads from it (src). */
SL__RING_INLINE void sl__ring_copy_in(void *dst, const void *src, size_t bytes, size_t word)
{
	size_t i;

	switch (word) {
	case 0:
		memcpy(dst, src, bytes);
		break;
	case 8:
		for (i = 0; i < bytes / 8; i++)
			__atomic_store_n((sl__ring_w64 *)dst + i, ((const sl__ring_w64 *)src)[i],
			                 __ATOMIC_RELAXED);
		break;
	case 4:
		for (i = 0; i < bytes / 4; i++)
			__atomic_store_n((sl__ring_w32 *)dst + i, ((const sl__ring_w32 *)src)[i],
			                 __ATOMIC_RELAXED);
		break;
	case 2:
		for (i = 0; i < bytes / 2; i++)
			__atomic_store_n((sl__ring_w16 *)dst + i, ((const sl__ring_w16 *)src)[i],
			                 __ATOMIC_RELAXED);
		break;
	default:
		for (i = 0; i < bytes; i++)
			__atomic_store_n((sl__ring_w8 *)dst + i, ((const sl__ring_w8 *)src)[i],
			                 __ATOMIC_RELAXED);
		break;
	}
}

SL__RING_INLINE void sl__ring_copy_out(void *dst, const void *src, size_t bytes, size_t word)
{
	size_t i;

	switch (word) {
	case 0:
		memcpy(dst, src, bytes);
		break;
	case 8:
		for (i = 0; i < bytes / 8; i++)
			((sl__ring_w64 *)dst)[i] =
			    __atomic_load_n((const sl__ring_w64 *)src + i, __ATOMIC_RELAXED);
		break;
	case 4:
		for (i = 0; i < bytes / 4; i++)
			((sl__ring_w32 *)dst)[i] =
			    __atomic_load_n((const sl__ring_w32 *)src + i, __ATOMIC_RELAXED);
		break;
	case 2:
		for (i = 0; i < bytes / 2; i++)
			((sl__ring_w16 *)dst)[i] =
			    __atomic_load_n((const sl__ring_w16 *)src + i, __ATOMIC_RELAXED);
		break;
	default:
		for (i = 0; i < bytes; i++)
			((sl__ring_w8 *)dst)[i] =
			    __atomic_load_n((const sl__ring_w8 *)src + i, __ATOMIC_RELAXED);
		break;
	}
}

/* Copies n items into slots idx, idx+1, ... (wrapping): at most two runs. */
SL__RING_INLINE void sl__ring_put(const struct sl_ring *r, unsigned int idx, const void *items,
                                  unsigned int n, size_t ts, size_t word)
{
	const unsigned int at = idx & r->ck.mask;
	const unsigned int run = r->ck.size - at;
	char *slots = (char *)r->slots;

	/* One item never wraps; saying so spares the single calls a branch. */
	if (__builtin_constant_p(n) && n == 1) {
		sl__ring_copy_in(slots + (size_t)at * ts, items, ts, word);
		return;
	}
	if (SL_LIKELY(n <= run)) {
		sl__ring_copy_in(slots + (size_t)at * ts, items, (size_t)n * ts, word);
		return;
	}
	sl__ring_copy_in(slots + (size_t)at * ts, items, (size_t)run * ts, word);
	sl__ring_copy_in(slots, (const char *)items + (size_t)run * ts, (size_t)(n - run) * ts,
	                 word);
}

SL__RING_INLINE void sl__ring_get(const struct sl_ring *r, unsigned int idx, void *items,
                                  unsigned int n, size_t ts, size_t word)
{
	const unsigned int at = idx & r->ck.mask;
	const unsigned int run = r->ck.size - at;
	const char *slots = (const char *)r->slots;

	if (__builtin_constant_p(n) && n == 1) {
		sl__ring_copy_out(items, slots + (size_t)at * ts, ts, word);
		return;
	}
	if (SL_LIKELY(n <= run)) {
		sl__ring_copy_out(items, slots + (size_t)at * ts, (size_t)n * ts, word);
		return;
	}
	sl__ring_copy_out(items, slots + (size_t)at * ts, (size_t)run * ts, word);
	sl__ring_copy_out((char *)items + (size_t)run * ts, slots, (size_t)(n - run) * ts, word);
}

/*
 * Single producer: up to n items, one store of p_tail, at most one load of
 * c_head (only when the cached copy shows too little room).
 */
SL__RING_INLINE unsigned int sl__ring_push_sp(struct sl_ring *r, const void *items, unsigned int n,
                                              size_t ts)
{
	const unsigned int mask = r->ck.mask;
	/* Plain read: this thread is the only writer of p_tail. */
	const unsigned int prod = r->ck.p_tail;
	const unsigned int used = prod - r->p_seen_c;
	unsigned int room = mask - used;

	/* used > mask: the copy predates pushes this side made through
	 * push_*mpmc; it bounds nothing then, so reload it like a short one. */
	if (SL_UNLIKELY(used > mask || room < n)) {
		r->p_seen_c = sl__ring_ld(&r->ck.c_head);
		/* Acquire: the slot writes below stay after this c_head load,
		 * so they cannot land in slots the consumer is still reading.
		 * Pairs with the release before the c_head store in pop. */
		ck_pr_fence_acquire();
		SL_TSAN_ACQUIRE(&r->ck.c_head);
		room = mask - (prod - r->p_seen_c);
		if (room < n) {
			if (room == 0)
				return 0;
			n = room;
		}
	}
	sl__ring_put(r, prod, items, n, ts, 0);
	/* Release: the slot writes are visible before the new p_tail. Pairs
	 * with the acquire after the p_tail load in pop. */
	ck_pr_fence_release();
	SL_TSAN_RELEASE(&r->ck.p_tail);
	/* p_head is the multi-producer reservation counter; keeping it equal
	 * to p_tail (same line, no extra miss) lets this side switch to
	 * push_*mpmc and keeps ck_ring_valid() true. */
	sl__ring_st(&r->ck.p_head, prod + n);
	sl__ring_st(&r->ck.p_tail, prod + n);
	return n;
}

/*
 * Single consumer: up to n items, one store of c_head, at most one load of
 * p_tail (only when the cached copy shows fewer than n items).
 */
SL__RING_INLINE unsigned int sl__ring_pop_sc(struct sl_ring *r, void *items, unsigned int n,
                                             size_t ts)
{
	const unsigned int mask = r->ck.mask;
	/* Plain read: this thread is the only writer of c_head. */
	const unsigned int cons = r->ck.c_head;
	unsigned int avail = r->c_seen_p - cons;

	/* avail > mask: the copy predates pops this side made through
	 * pop_*mpmc, so it is below cons; reload it like a short one. */
	if (SL_UNLIKELY(avail > mask || avail < n)) {
		r->c_seen_p = sl__ring_ld(&r->ck.p_tail);
		/* Acquire: the slot reads below stay after this p_tail load.
		 * Pairs with the release before the p_tail store in push. */
		ck_pr_fence_acquire();
		SL_TSAN_ACQUIRE(&r->ck.p_tail);
		avail = r->c_seen_p - cons;
		if (avail < n) {
			if (avail == 0)
				return 0;
			n = avail;
		}
	}
	sl__ring_get(r, cons, items, n, ts, 0);
	/* Release: the slot reads complete before c_head frees the slots.
	 * Pairs with the acquire after the c_head load in push. */
	ck_pr_fence_release();
	SL_TSAN_RELEASE(&r->ck.c_head);
	sl__ring_st(&r->ck.c_head, cons + n);
	return n;
}

/*
 * Multi producer: reserve up to n slots with one CAS on p_head, fill them,
 * wait until every earlier reservation has published, publish with one store
 * of p_tail. ck's _ck_ring_enqueue_mp, for n slots instead of one, and
 * bounding the room by the producers' shared copy of c_head (p_seen_c) so
 * that c_head, which consumers write on every pop, is read only when the
 * copy shows too little room.
 */
SL__RING_INLINE unsigned int sl__ring_push_mp(struct sl_ring *r, const void *items, unsigned int n,
                                              size_t ts, size_t word)
{
	const unsigned int mask = r->ck.mask;
	unsigned int prod, cons, used, k, spins;

	prod = sl__ring_ld(&r->ck.p_head);
	for (;;) {
		/* Load-load: the c_head copy (and c_head below) is read after
		 * p_head. If a re-read of p_head below still equals prod, p_head
		 * held prod while c_head was cons, so "full" was true then. */
		ck_pr_fence_load();
		cons = sl__ring_ld(&r->p_seen_c);
		/* Acquire: pairs with the release before the store of the copy
		 * below, made by the producer that loaded that c_head; through
		 * it, with the consumers' release before moving c_head. */
		ck_pr_fence_acquire();
		SL_TSAN_ACQUIRE(&r->p_seen_c);
		used = prod - cons;
		/* used >= mask: no room by the copy, or the copy is newer than
		 * a stale prod (the subtraction wrapped). */
		if (SL_UNLIKELY(used >= mask || mask - used < n)) {
			cons = sl__ring_ld(&r->ck.c_head);
			/* Acquire: the slot writes below stay after this load
			 * that shows the slots free. Pairs with the release
			 * before the c_head CAS or store in pop. */
			ck_pr_fence_acquire();
			SL_TSAN_ACQUIRE(&r->ck.c_head);
			/* Release: other producers that take this copy also
			 * take what the acquire above gave us. */
			ck_pr_fence_release();
			SL_TSAN_RELEASE(&r->p_seen_c);
			sl__ring_st(&r->p_seen_c, cons);
			used = prod - cons;
		}
		/* cons <= c_head now, so prod + k <= c_head + mask: the slots
		 * are free if the CAS confirms prod. A stale prod fails the
		 * CAS, which hands back the current p_head. */
		if (SL_LIKELY(used < mask)) {
			k = n < mask - used ? n : mask - used;
			if (ck_pr_cas_uint_value(&r->ck.p_head, prod, prod + k, &prod))
				break;
		} else {
			unsigned int now;

			/* Load-load: this p_head re-read follows the c_head
			 * load (see above). */
			ck_pr_fence_load();
			now = sl__ring_ld(&r->ck.p_head);
			if (now == prod)
				return 0;
			prod = now;
		}
	}
	sl__ring_put(r, prod, items, k, ts, word);

	/* Reservations publish in order: p_tail reaches prod only when every
	 * earlier producer has published its slots. */
	for (spins = 0; sl__ring_ld(&r->ck.p_tail) != prod; spins++) {
		if (SL_UNLIKELY(spins >= SL_RING_SPIN_YIELD)) {
			sched_yield();
			spins = 0;
		}
		ck_pr_stall();
	}
	/* Acquire: the earlier producers' slot writes happen before our
	 * publish, so a consumer that sees our p_tail sees theirs too. Pairs
	 * with their release before the p_tail store. */
	ck_pr_fence_acquire();
	SL_TSAN_ACQUIRE(&r->ck.p_tail);
	/* Release: our slot writes are visible before the new p_tail. Pairs
	 * with the acquire after the p_tail load in pop. */
	ck_pr_fence_release();
	SL_TSAN_RELEASE(&r->ck.p_tail);
	sl__ring_st(&r->ck.p_tail, prod + k);
	return k;
}

/*
 * Multi consumer: read up to n published items, then claim them with one CAS
 * on c_head; if another consumer claimed first, what was read is discarded and
 * the loop retries from the c_head the CAS returned. ck's _ck_ring_dequeue_mc,
 * for n slots instead of one, and counting published items by the consumers'
 * shared copy of p_tail (c_seen_p) so that p_tail is read only when the copy
 * shows fewer than n.
 */
SL__RING_INLINE unsigned int sl__ring_pop_mc(struct sl_ring *r, void *items, unsigned int n,
                                             size_t ts, size_t word)
{
	const unsigned int mask = r->ck.mask;
	unsigned int cons, prod, avail, k;

	cons = sl__ring_ld(&r->ck.c_head);
	for (;;) {
		/* Load-load: the p_tail copy (and p_tail below) is read after
		 * c_head, so a fresh p_tail is >= cons: prod - cons counts
		 * items that really were published. The other order could
		 * pair a new c_head with an old p_tail and claim slots not yet
		 * written. */
		ck_pr_fence_load();
		prod = sl__ring_ld(&r->c_seen_p);
		/* Acquire: pairs with the release before the store of the copy
		 * below, made by the consumer that loaded that p_tail; through
		 * it, with the producers' release before publishing. */
		ck_pr_fence_acquire();
		SL_TSAN_ACQUIRE(&r->c_seen_p);
		avail = prod - cons;
		/* avail > mask: the copy is older than cons (it wrapped). */
		if (avail > mask || avail < n) {
			prod = sl__ring_ld(&r->ck.p_tail);
			/* Acquire: the slot reads below stay after this p_tail
			 * load. Pairs with the release before the p_tail store
			 * in push. */
			ck_pr_fence_acquire();
			SL_TSAN_ACQUIRE(&r->ck.p_tail);
			/* Release: consumers that take this copy also take
			 * what the acquire above gave us. */
			ck_pr_fence_release();
			SL_TSAN_RELEASE(&r->c_seen_p);
			sl__ring_st(&r->c_seen_p, prod);
			avail = prod - cons;
			if (avail == 0)
				return 0;
		}
		k = avail < n ? avail : n;
		sl__ring_get(r, cons, items, k, ts, word);
		/* Release: the slot reads complete before the CAS frees the
		 * slots to producers. Pairs with the acquire after the c_head
		 * load in push. */
		ck_pr_fence_release();
		SL_TSAN_RELEASE(&r->ck.c_head);
		if (ck_pr_cas_uint_value(&r->ck.c_head, cons, cons + k, &cons))
			return k;
	}
}

/* Items in the ring; a snapshot when other threads are pushing or popping. */
SL__RING_INLINE unsigned int sl__ring_size(const struct sl_ring *r)
{
	unsigned int c, p;

	c = sl__ring_ld(&r->ck.c_head);
	/* Load-load: p_tail after c_head, so p - c does not wrap. It can
	 * still exceed what the ring holds if both moved in between. */
	ck_pr_fence_load();
	p = sl__ring_ld(&r->ck.p_tail);
	return p - c < r->ck.mask ? p - c : r->ck.mask;
}

/* ---- The pointer ring ---- */

#define SL__RING_PTR_WORD SL__RING_WORD(sizeof(void *), __alignof__(void *))

/* Slots, a power of two; the ring holds one fewer item. */
static inline unsigned int sl_ring_capacity(const struct sl_ring *r)
{
	return r->ck.size;
}

static inline unsigned int sl_ring_size(const struct sl_ring *r)
{
	return sl__ring_size(r);
}

static inline bool sl_ring_push_spsc(struct sl_ring *r, void *item)
{
	return sl__ring_push_sp(r, &item, 1, sizeof(void *)) != 0;
}

static inline bool sl_ring_pop_spsc(struct sl_ring *r, void **item)
{
	return sl__ring_pop_sc(r, item, 1, sizeof(void *)) != 0;
}

static inline unsigned int sl_ring_push_batch_spsc(struct sl_ring *r, void *const *items,
                                                   unsigned int n)
{
	return n ? sl__ring_push_sp(r, items, n, sizeof(void *)) : 0;
}

static inline unsigned int sl_ring_pop_batch_spsc(struct sl_ring *r, void **items, unsigned int n)
{
	return n ? sl__ring_pop_sc(r, items, n, sizeof(void *)) : 0;
}

static inline bool sl_ring_push_mpmc(struct sl_ring *r, void *item)
{
	return sl__ring_push_mp(r, &item, 1, sizeof(void *), SL__RING_PTR_WORD) != 0;
}

static inline bool sl_ring_pop_mpmc(struct sl_ring *r, void **item)
{
	return sl__ring_pop_mc(r, item, 1, sizeof(void *), SL__RING_PTR_WORD) != 0;
}

static inline unsigned int sl_ring_push_batch_mpmc(struct sl_ring *r, void *const *items,
                                                   unsigned int n)
{
	return n ? sl__ring_push_mp(r, items, n, sizeof(void *), SL__RING_PTR_WORD) : 0;
}

static inline unsigned int sl_ring_pop_batch_mpmc(struct sl_ring *r, void **items, unsigned int n)
{
	return n ? sl__ring_pop_mc(r, items, n, sizeof(void *), SL__RING_PTR_WORD) : 0;
}

/* ---- Typed rings ----
 *
 * SL_RING_DEFINE(desc, struct sl_desc) defines struct sl_ring_desc and
 *   int  sl_ring_desc_init(struct sl_ring_desc *r, unsigned int capacity);
 *   void sl_ring_desc_destroy(struct sl_ring_desc *r);
 *   unsigned int sl_ring_desc_capacity(const struct sl_ring_desc *r);
 *   unsigned int sl_ring_desc_size(const struct sl_ring_desc *r);
 *   bool sl_ring_desc_push_spsc(struct sl_ring_desc *r, const struct sl_desc *item);
 *   bool sl_ring_desc_pop_spsc(struct sl_ring_desc *r, struct sl_desc *item);
 *   unsigned int sl_ring_desc_push_batch_spsc(r, const struct sl_desc *items, unsigned int n);
 *   unsigned int sl_ring_desc_pop_batch_spsc(r, struct sl_desc *items, unsigned int n);
 *   ... and the same four with _mpmc.
 * Items are copied; keep them small (the copy happens inside the publish
 * window of the MPMC ends). Use it once per name, at file scope.
 */
/* Generated functions are unused in most files that define a ring. */
#define SL__RING_GEN static inline __attribute__((unused))

#define SL_RING_DEFINE(name, type)                                                                 \
	struct sl_ring_##name {                                                                    \
		struct sl_ring base;                                                               \
	};                                                                                         \
	SL__RING_GEN int sl_ring_##name##_init(struct sl_ring_##name *r, unsigned int capacity)    \
	{                                                                                          \
		return sl__ring_init(&r->base, capacity, sizeof(type));                            \
	}                                                                                          \
	SL__RING_GEN void sl_ring_##name##_destroy(struct sl_ring_##name *r)                       \
	{                                                                                          \
		sl_ring_destroy(&r->base);                                                         \
	}                                                                                          \
	SL__RING_GEN unsigned int sl_ring_##name##_capacity(const struct sl_ring_##name *r)        \
	{                                                                                          \
		return r->base.ck.size;                                                            \
	}                                                                                          \
	SL__RING_GEN unsigned int sl_ring_##name##_size(const struct sl_ring_##name *r)            \
	{                                                                                          \
		return sl__ring_size(&r->base);                                                    \
	}                                                                                          \
	SL__RING_GEN bool sl_ring_##name##_push_spsc(struct sl_ring_##name *r, const type *item)   \
	{                                                                                          \
		return sl__ring_push_sp(&r->base, item, 1, sizeof(type)) != 0;                     \
	}                                                                                          \
	SL__RING_GEN bool sl_ring_##name##_pop_spsc(struct sl_ring_##name *r, type *item)          \
	{                                                                                          \
		return sl__ring_pop_sc(&r->base, item, 1, sizeof(type)) != 0;                      \
	}                                                                                          \
	SL__RING_GEN unsigned int sl_ring_##name##_push_batch_spsc(                                \
	    struct sl_ring_##name *r, const type *items, unsigned int n)                           \
	{                                                                                          \
		return n ? sl__ring_push_sp(&r->base, items, n, sizeof(type)) : 0;                 \
	}                                                                                          \
	SL__RING_GEN unsigned int sl_ring_##name##_pop_batch_spsc(struct sl_ring_##name *r,        \
	                                                          type *items, unsigned int n)     \
	{                                                                                          \
		return n ? sl__ring_pop_sc(&r->base, items, n, sizeof(type)) : 0;                  \
	}                                                                                          \
	SL__RING_GEN bool sl_ring_##name##_push_mpmc(struct sl_ring_##name *r, const type *item)   \
	{                                                                                          \
		return sl__ring_push_mp(&r->base, item, 1, sizeof(type),                           \
		                        SL__RING_WORD(sizeof(type), __alignof__(type))) != 0;      \
	}                                                                                          \
	SL__RING_GEN bool sl_ring_##name##_pop_mpmc(struct sl_ring_##name *r, type *item)          \
	{                                                                                          \
		return sl__ring_pop_mc(&r->base, item, 1, sizeof(type),                            \
		                       SL__RING_WORD(sizeof(type), __alignof__(type))) != 0;       \
	}                                                                                          \
	SL__RING_GEN unsigned int sl_ring_##name##_push_batch_mpmc(                                \
	    struct sl_ring_##name *r, const type *items, unsigned int n)                           \
	{                                                                                          \
		return n ? sl__ring_push_mp(&r->base, items, n, sizeof(type),                      \
		                            SL__RING_WORD(sizeof(type), __alignof__(type)))        \
		         : 0;                                                                      \
	}                                                                                          \
	SL__RING_GEN unsigned int sl_ring_##name##_pop_batch_mpmc(struct sl_ring_##name *r,        \
	                                                          type *items, unsigned int n)     \
	{                                                                                          \
		return n ? sl__ring_pop_mc(&r->base, items, n, sizeof(type),                       \
		                           SL__RING_WORD(sizeof(type), __alignof__(type)))         \
		         : 0;                                                                      \
	}                                                                                          \
	struct sl__ring_##name##_semicolon_eater

#ifdef __cplusplus
}
#endif

#endif
