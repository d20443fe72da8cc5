/*
 * part: which partition of a topic an event goes to, keyed by its aggregate
 * id. A partitioner is a small immutable value built once per topic at
 * start-up and then read by every reactor thread concurrently.
 *
 * Strategies: hash (xxh3 of the key modulo the partition count). The other
 * strategies of the product brief (range, consistent, jump, directory) plug in
 * behind the same sl_part_of_key() and are refused by sl_part_init() until
 * they exist.
 *
 * Ownership: sl_part_init() fills a caller-owned struct; sl_part_destroy()
 * frees what init allocated. Threads: init/destroy from one thread before /
 * after the reactors run; sl_part_of_key() from any thread.
 */
#ifndef SL_PART_H
#define SL_PART_H

#include <stddef.h>
#include <stdint.h>

enum sl_part_kind {
	SL_PART_HASH = 0,
	SL_PART_RANGE,
	SL_PART_CONSISTENT,
	SL_PART_JUMP,
	SL_PART_DIRECTORY,
};

struct sl_partitioner {
	enum sl_part_kind kind;
	uint32_t n_parts;
};

/* 0, or -SL_ECONFIG for a strategy not built yet / -EINVAL for 0 parts. */
int sl_part_init(struct sl_partitioner *p, enum sl_part_kind kind, uint32_t n_parts);
void sl_part_destroy(struct sl_partitioner *p);

/* The partition of `key` (an aggregate id); always < p->n_parts. */
uint32_t sl_part_of_key(const struct sl_partitioner *p, const void *key, size_t len);

#endif
