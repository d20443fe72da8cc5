/*
 * Durability changed while the log runs (log.h, sl_log_set_durability):
 * the switch between two group commits, leaving or joining the reactor's
 * journal with a roll so the boundary is a synced segment start. Split
 * from commit.c, whose flush calls sl__log_switch first.
 *
 * Threads: the log's owner only, as commit.c.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "log/log_impl.h"

/* ---- durability changed while the log runs (log.h) ---------------------- */

/*
 * The switch itself, at a group-commit boundary: 1 done (or nothing
 * waited), 0 not at a boundary yet (or the roll found the device full: it
 * is tried again, as a flush's roll is), -SL_ELOG_FAILED.
 */
int sl__log_switch(struct sl_log *log)
{
	if (!log->sw_pending)
		return 1;
	if (log->failed)
		return -SL_ELOG_FAILED;
	/* Never inside a write or sync, nor while a journal frame that holds
	 * the log's bytes is open or in flight: the journal's callbacks and
	 * the ack of those bytes still name it. */
	if (log->inflight || (log->opts.journal && log->acked < log->jsent_off))
		return 0;
	if (SL_UNLIKELY(log->full) && sl_now_ns() < log->full_retry_ns)
		return 0;
	struct sl_journal *from = log->opts.journal, *to = log->sw_journal;
	bool leave = from && from != to, join = to && to != from;
	if (leave && sl__log_segwrite(log, NULL) < 0)
		return -SL_ELOG_FAILED;
	/* log.h says why each of these rolls; an empty active segment is a
	 * boundary already (and has nothing to sync). */
	bool roll =
	    leave || join || (log->sw_dur == SL_LOG_FSYNC && log->opts.durability != SL_LOG_FSYNC);
	if (roll && (log->write_pos > 0 || log->sealed)) {
		int ret = sl__roll(log, log->wb.first_offset);
		if (ret < 0)
			return log->full && !log->failed ? 0 : -SL_ELOG_FAILED;
	}
	if (leave) {
		sl__journal_detach(from, log);
		log->opts.journal = NULL;
		log->jlazy = false;
		log->jopen_gen = 0;
		/* Not "already on this file's checkpoint list" should it join
		 * the same file again: detach took it off. */
		log->jfile_gen = 0;
		log->durable = log->acked;
	}
	if (join) {
		int ret = sl__journal_attach(to, log);
		if (ret < 0)
			return ret;
		free(log->jkey);
		log->jkey = log->sw_key;
		log->sw_key = NULL;
		log->opts.journal = to;
		log->jsent = 0;
		log->jopen_gen = 0;
		log->jfile_gen = 0;
		/* Everything before the buffer is written and, by the roll,
		 * on the device. */
		log->jsent_off = log->wb.first_offset;
		log->acked = log->durable = log->wb.first_offset;
	}
	log->opts.durability = log->sw_dur;
	log->opts.interval_ns = log->sw_interval_ns;
	log->last_sync_ns = sl_now_ns();
	log->sw_pending = false;
	free(log->sw_key);
	log->sw_key = NULL;
	return 1;
}

int sl_log_set_durability(struct sl_log *log, enum sl_log_durability d, uint64_t interval_ns,
                          struct sl_journal *j, const char *key)
{
	if (d != SL_LOG_FSYNC)
		j = NULL;
	if (log->failed)
		return -SL_ELOG_FAILED;
	if (d == log->opts.durability && j == log->opts.journal) {
		/* Already so (a change still waiting is called off). */
		log->opts.interval_ns = interval_ns;
		log->sw_pending = false;
		free(log->sw_key);
		log->sw_key = NULL;
		return 1;
	}
	if (!log->sw_pending || log->sw_dur != d || log->sw_journal != j) {
		char *k = j ? strdup(key) : NULL;
		if (j && !k)
			return -ENOMEM;
		free(log->sw_key);
		log->sw_key = k;
		log->sw_dur = d;
		log->sw_journal = j;
		log->sw_pending = true;
	}
	log->sw_interval_ns = interval_ns;
	return sl__log_switch(log);
}

int sl_log_switch(struct sl_log *log)
{
	return sl__log_switch(log);
}

enum sl_log_durability sl_log_durability(const struct sl_log *log)
{
	return log->opts.durability;
}
