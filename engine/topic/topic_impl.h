/* Internals of topic/, shared by topic.c and producers.c. */
#ifndef SL_TOPIC_IMPL_H
#define SL_TOPIC_IMPL_H

#include "topic/topic.h"

/* The log's on_seal hook: writes the partition's producer checkpoint for
 * offsets below next_base (owner thread). */
void sl__part_checkpoint(void *arg, uint64_t next_base);

/* Builds p->dd from the newest good checkpoint and the log records after
 * it, and seeds `prods` with what it holds (main thread, at open); with
 * `ids` also p->idw (when the topic's dedup_window is on) from the log's
 * last window, in the same pass over the records. */
int sl__part_open_producers(struct sl_partition *p, struct sl_producers *prods, bool ids, char *err,
                            size_t errlen);

#endif
