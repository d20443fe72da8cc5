#include "part/part.h"

#include <errno.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include "base/base.h"

int sl_part_init(struct sl_partitioner *p, enum sl_part_kind kind, uint32_t n_parts)
{
	if (n_parts == 0)
		return -EINVAL;
	if (kind != SL_PART_HASH)
		return -SL_ECONFIG;
	p->kind = kind;
	p->n_parts = n_parts;
	return 0;
}

void sl_part_destroy(struct sl_partitioner *p)
{
	p->n_parts = 0;
}

uint32_t sl_part_of_key(const struct sl_partitioner *p, const void *key, size_t len)
{
	/* xxh3: ~1 ns for short keys and well mixed in the low bits, so a plain
	 * modulo is unbiased enough for any partition count we allow (<= 4096).
	 * The seed is fixed: partition assignment is part of the stored data's
	 * meaning and must not change between runs. */
	uint64_t h = XXH3_64bits(key, len);
	/* multiply-shift instead of %: no division on the hot path */
	return (uint32_t)(((h >> 32) * (uint64_t)p->n_parts) >> 32);
}
