/*
 * ring: the cold half (allocation). The hot operations are inline in ring.h.
 */
#include <stdlib.h>

#include "ring/ring.h"

int sl__ring_init(struct sl_ring *r, unsigned int capacity, size_t item_size)
{
	size_t bytes;
	void *slots;

	if (item_size == 0 || capacity < 2 || capacity > SL_RING_CAPACITY_MAX ||
	    !sl_is_pow2(capacity))
		return -EINVAL;
	if (item_size > SIZE_MAX / capacity - SL_CACHELINE)
		return -EINVAL;
	/* aligned_alloc wants a multiple of the alignment. */
	bytes = ((size_t)capacity * item_size + SL_CACHELINE - 1) & ~(size_t)(SL_CACHELINE - 1);
	slots = aligned_alloc(SL_CACHELINE, bytes);
	if (!slots)
		return -ENOMEM;
	/* Touch every page now so the first lap of the ring does not take
	 * page faults on the hot path. */
	memset(slots, 0, bytes);

	memset(r, 0, sizeof(*r));
	ck_ring_init(&r->ck, capacity);
	r->slots = slots;
	return 0;
}

int sl_ring_init(struct sl_ring *r, unsigned int capacity)
{
	return sl__ring_init(r, capacity, sizeof(void *));
}

void sl_ring_destroy(struct sl_ring *r)
{
	free(r->slots);
	r->slots = NULL;
}
