/* Internals of log/, shared by log.c and prep.c (the segment preparer). */
#ifndef SL_LOG_IMPL_H
#define SL_LOG_IMPL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "log/log.h"

/* The prepared next segment's name in a log's folder: never a segment
 * name (those are 20 digits and ".log"), so readers never list it. */
#define SL_SEGPREP_NAME "next.prep"

enum sl_segprep_state {
	SL_SEGPREP_NONE = 0, /* nothing asked */
	SL_SEGPREP_WAITING,  /* queued or being prepared */
	SL_SEGPREP_READY,    /* `fd` is the prepared file */
	SL_SEGPREP_FAILED,   /* the roll creates its segment in place */
};

/* One log's request, embedded in the log. `state` is set by the preparer
 * (release) and read by the log's thread (acquire); the rest belongs to
 * whoever holds the preparer's mutex. */
struct sl_segprep_req {
	int dir_fd;
	uint64_t bytes;
	_Atomic int state;
	int fd;
	bool queued;
	struct sl_segprep_req *next;
};

/* Asks for a prepared file unless one is asked for or ready. */
void sl__segprep_request(struct sl_segprep *p, struct sl_segprep_req *rq);
/* Withdraws a queued request, or waits until the one being prepared is
 * done: afterwards the preparer no longer touches rq. */
void sl__segprep_cancel(struct sl_segprep *p, struct sl_segprep_req *rq);

#endif
