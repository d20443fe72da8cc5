/*
 * The sticky, even assignment of a topic's partitions over the members
 * that read it (group.h, sl_group_assign). Pure: the caller holds the
 * table.
 *
 * Quotas: n/m each, n%m readers one more. The extra ones go to the readers
 * that hold the most now, so a reader that keeps all it has is never asked
 * to give one up to make room for another's extra (fewer moves than giving
 * them by position). Then every partition whose reader is under quota
 * stays; the rest go, in partition order, to the readers under quota in
 * their order.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "group/group.h"

struct sl__rd {
	int32_t slot;
	uint32_t held, quota, got;
	uint32_t order; /* position in r: ties keep the caller's order */
};

static int sl__by_held(const void *a, const void *b)
{
	const struct sl__rd *x = a, *y = b;
	if (x->held != y->held)
		return x->held > y->held ? -1 : 1;
	return x->order < y->order ? -1 : x->order > y->order;
}

static int sl__by_order(const void *a, const void *b)
{
	const struct sl__rd *x = a, *y = b;
	return x->order < y->order ? -1 : x->order > y->order;
}

/* The reader index of member slot s, or -1: readers are few (a group's
 * members), a scan is cheaper than an index built per call. */
static int32_t sl__find(const struct sl__rd *rd, uint32_t m, int32_t s)
{
	for (uint32_t k = 0; k < m; k++)
		if (rd[k].slot == s)
			return (int32_t)k;
	return -1;
}

int sl_group_assign(int32_t *target, uint32_t n, const int32_t *r, uint32_t m, uint32_t *moved,
                    uint32_t *orphans)
{
	*moved = 0;
	*orphans = 0;
	if (!m) {
		for (uint32_t p = 0; p < n; p++) {
			*orphans += target[p] >= 0;
			target[p] = -1;
		}
		return 0;
	}
	struct sl__rd *rd = calloc(m, sizeof(*rd));
	int32_t *was = malloc((size_t)(n ? n : 1) * sizeof(*was));
	if (!rd || !was) {
		free(rd);
		free(was);
		return -ENOMEM;
	}
	for (uint32_t k = 0; k < m; k++)
		rd[k] = (struct sl__rd){.slot = r[k], .order = k};
	memcpy(was, target, (size_t)n * sizeof(*was));
	for (uint32_t p = 0; p < n; p++) {
		int32_t k = target[p] >= 0 ? sl__find(rd, m, target[p]) : -1;
		if (k >= 0)
			rd[k].held++;
	}
	qsort(rd, m, sizeof(*rd), sl__by_held);
	uint32_t base = n / m, extra = n % m;
	for (uint32_t k = 0; k < m; k++)
		rd[k].quota = base + (k < extra);
	qsort(rd, m, sizeof(*rd), sl__by_order);

	/* Keep what fits the quotas, in partition order. */
	for (uint32_t p = 0; p < n; p++) {
		int32_t k = target[p] >= 0 ? sl__find(rd, m, target[p]) : -1;
		if (k >= 0 && rd[k].got < rd[k].quota) {
			rd[k].got++;
			continue;
		}
		target[p] = -1;
	}
	/* The rest to whoever is under quota, in the readers' order. */
	uint32_t k = 0;
	for (uint32_t p = 0; p < n; p++) {
		if (target[p] >= 0)
			continue;
		while (rd[k].got >= rd[k].quota)
			k++; /* the quotas add up to n: someone has room */
		target[p] = rd[k].slot;
		rd[k].got++;
		if (was[p] >= 0 && sl__find(rd, m, was[p]) >= 0)
			(*moved)++;
		else if (was[p] >= 0)
			(*orphans)++;
	}
	free(rd);
	free(was);
	return 0;
}
