/*
 * sluice consume --group G: read as a member of a consumer group (issue
 * 18). The server says which partitions this member holds (heartbeats,
 * sluice/consumer.h); each is read from the group's committed offset (or
 * --from when given), and after every batch the offset after the last
 * event printed is committed: after printing and flushing stdout
 * (--commit after, at-least-once: a crash between the two prints the batch
 * again elsewhere), or before printing (--commit before, at-most-once: a
 * crash between the two loses the batch). A partition the server takes
 * away is committed and dropped before the next heartbeat says so.
 *
 * Without --follow the member leaves once every partition it holds is read
 * to its end and it holds all it was given; with --max, once it printed
 * that many.
 *
 * Threads: the CLI's one.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "cli/cli.h"
#include "sluice/consumer.h"

struct sl__held {
	uint32_t partition;
	uint64_t pos; /* the next offset to read */
};

struct sl__gc {
	const struct sl_cli_group *o;
	struct sl_consumer *c;
	struct sl_group_member m;
	struct sl__held *held;
	size_t n_held;
	uint32_t *owned; /* scratch for heartbeats */
	struct sl_partition_info *parts;
	size_t n_parts;
	/* --commit before: a batch kept until its commit is durable */
	uint8_t *buf;
	size_t buf_len, buf_cap;
	struct sl_fetched *evs;
	size_t n_evs, cap_evs;
};

/* --commit before: copies a fetched event to print after the commit. */
static int sl__keep(void *arg, const struct sl_fetched *e)
{
	struct sl__gc *g = arg;
	if (g->n_evs == g->cap_evs) {
		size_t cap = g->cap_evs ? g->cap_evs * 2 : 256;
		struct sl_fetched *v = realloc(g->evs, cap * sizeof(*v));
		if (!v)
			return -1;
		g->evs = v;
		g->cap_evs = cap;
	}
	uint8_t *b = sl_grow(g->buf, &g->buf_cap, g->buf_len + e->len, 1u << 16);
	if (!b)
		return -1;
	g->buf = b;
	memcpy(g->buf + g->buf_len, e->event, e->len);
	g->evs[g->n_evs] = *e;
	g->evs[g->n_evs].event = (const uint8_t *)(uintptr_t)g->buf_len; /* rebased below */
	g->n_evs++;
	g->buf_len += e->len;
	return g->o->max && *g->o->printed + g->n_evs >= g->o->max;
}

static int sl__commit(struct sl__gc *g, struct sl__held *h)
{
	int ret = sl_consumer_commit(g->c, g->o->group, &g->m, g->o->topic, h->partition, h->pos);
	if (ret < 0 && ret != -SL_EFENCED && ret != -SL_EUNKNOWN_MEMBER)
		fprintf(stderr, "sluice consume: group %s: commit of partition %u at %llu: %s\n",
		        g->o->group, h->partition, (unsigned long long)h->pos,
		        sl_consumer_last_error(g->c));
	return ret;
}

/* Where a newly held partition starts: --from when given, else the
 * group's committed offset, else the partition's first. */
static uint64_t sl__start(struct sl__gc *g, const struct sl_group_part *a)
{
	const struct sl_partition_info *pi = NULL;
	for (size_t i = 0; i < g->n_parts; i++)
		if (g->parts[i].partition == a->partition)
			pi = &g->parts[i];
	uint64_t first = pi ? pi->start_offset : 0, end = pi ? pi->end_offset : 0, at;
	if (g->o->from_time) {
		/* The first event stored at or after the time; none yet: the
		 * end, where such events will be. */
		if (sl_consumer_offset_for_time(g->c, g->o->topic, a->partition, g->o->from_ms,
		                                &at) < 0) {
			fprintf(stderr,
			        "sluice consume: partition %u: --from %s: %s; from its start\n",
			        a->partition, g->o->from, sl_consumer_last_error(g->c));
			return first;
		}
		return at;
	}
	if (g->o->from && !strcmp(g->o->from, "latest"))
		return end;
	if (g->o->from && !strcmp(g->o->from, "earliest"))
		return first;
	if (g->o->from)
		return g->o->from_off < first ? first : g->o->from_off;
	if (a->has_committed)
		return a->committed;
	return first;
}

/* A heartbeat and what it says: partitions no longer ours are committed
 * and dropped, new ones added. 0, 1 when the assignment changed, or <0. */
static int sl__heartbeat(struct sl__gc *g, bool leave)
{
	for (size_t i = 0; i < g->n_held; i++)
		g->owned[i] = g->held[i].partition;
	int ret = sl_consumer_group_heartbeat(g->c, g->o->group, g->o->topic, g->o->session_ms,
	                                      g->owned, g->n_held, leave, &g->m);
	if (ret == -SL_EUNKNOWN_MEMBER) {
		/* Replaced while away: nothing we hold is ours; join again. */
		fprintf(stderr, "sluice consume: group %s: %s; joining again\n", g->o->group,
		        sl_consumer_last_error(g->c));
		g->n_held = 0;
		return 1;
	}
	if (ret < 0) {
		fprintf(stderr, "sluice consume: group %s: %s\n", g->o->group,
		        sl_consumer_last_error(g->c));
		return ret;
	}
	if (leave)
		return 0;
	int changed = 0;
	for (size_t i = 0; i < g->n_held;) {
		bool keep = false;
		for (size_t k = 0; k < g->m.n_assigned && !keep; k++)
			keep = g->m.assigned[k].partition == g->held[i].partition;
		if (keep) {
			i++;
			continue;
		}
		/* Revoked: what was printed of it is committed already (after
		 * every batch); a failed commit means another holds it now. */
		g->held[i] = g->held[--g->n_held];
		changed = 1;
	}
	for (size_t k = 0; k < g->m.n_assigned; k++) {
		bool have = false;
		for (size_t i = 0; i < g->n_held && !have; i++)
			have = g->held[i].partition == g->m.assigned[k].partition;
		if (have)
			continue;
		g->held[g->n_held++] = (struct sl__held){.partition = g->m.assigned[k].partition,
		                                         .pos = sl__start(g, &g->m.assigned[k])};
		changed = 1;
	}
	return changed;
}

/* One batch of partition h: printed and committed in the chosen order.
 * The number of events, or <0. */
static int sl__batch_at(struct sl__gc *g, struct sl__held *h, uint32_t wait_ms)
{
	uint64_t next = h->pos, end;
	uint32_t want = 1000;
	if (g->o->max && g->o->max - *g->o->printed < want)
		want = (uint32_t)(g->o->max - *g->o->printed);
	int n;
	if (!g->o->commit_before) {
		n = sl_consumer_fetch(g->c, g->o->topic, h->partition, h->pos, want, 0, wait_ms,
		                      g->o->print, g->o->print_arg, &next, &end);
		if (n <= 0)
			return n;
		fflush(stdout);
		h->pos = next;
		int ret = sl__commit(g, h);
		return ret < 0 && ret != -SL_EFENCED && ret != -SL_EUNKNOWN_MEMBER ? ret : n;
	}
	g->n_evs = 0;
	g->buf_len = 0;
	n = sl_consumer_fetch(g->c, g->o->topic, h->partition, h->pos, want, 0, wait_ms, sl__keep,
	                      g, &next, &end);
	if (n <= 0)
		return n;
	uint64_t at = h->pos;
	h->pos = next;
	int ret = sl__commit(g, h);
	if (ret < 0) {
		/* Not committed: not ours to print (at-most-once holds only if
		 * what is printed was committed first). */
		h->pos = at;
		return ret == -SL_EFENCED || ret == -SL_EUNKNOWN_MEMBER ? 0 : ret;
	}
	for (size_t i = 0; i < g->n_evs; i++) {
		struct sl_fetched e = g->evs[i];
		e.event = g->buf + (uintptr_t)e.event;
		g->o->print(g->o->print_arg, &e);
	}
	fflush(stdout);
	return n;
}

/* sl__batch_at, and a partition whose offsets retention deleted under
 * the member (a group does not hold the log back: its lag said so) goes
 * on from the log's start. */
static int sl__batch(struct sl__gc *g, struct sl__held *h, uint32_t wait_ms)
{
	int n = sl__batch_at(g, h, wait_ms);
	if (n == -SL_EOUT_OF_RANGE) {
		uint64_t start = sl_consumer_log_start(g->c);
		fprintf(stderr,
		        "sluice consume: group %s: partition %u: offsets %llu..%llu are no longer "
		        "stored (retention); going on from %llu\n",
		        g->o->group, h->partition, (unsigned long long)h->pos,
		        (unsigned long long)(start ? start - 1 : 0), (unsigned long long)start);
		h->pos = start;
		return 0;
	}
	return n;
}

int sl_cli_consume_group(struct sl_consumer *c, const struct sl_cli_group *o,
                         struct sl_partition_info *parts, size_t n_parts)
{
	struct sl__gc g = {.o = o, .c = c, .parts = parts, .n_parts = n_parts};
	int rc = 1;
	uint64_t next_hb = 0;

	g.held = calloc(n_parts ? n_parts : 1, sizeof(*g.held));
	g.owned = calloc(n_parts ? n_parts : 1, sizeof(*g.owned));
	if (!g.held || !g.owned)
		goto out;
	for (uint32_t round = 0;; round++) {
		uint64_t now = sl_now_ns();
		if (now >= next_hb) {
			int ch = sl__heartbeat(&g, false);
			if (ch < 0)
				goto out;
			/* After a change the server waits for our word on what we
			 * dropped: say it at once. */
			next_hb = ch ? now : now + (uint64_t)g.m.heartbeat_ms * 1000000u;
		}
		bool progress = false, all_end = g.m.id[0] != 0;
		for (size_t i = 0; i < g.n_held && !(o->max && *o->printed >= o->max); i++) {
			int n = sl__batch(&g, &g.held[i], 0);
			if (n < 0)
				goto out;
			progress |= n > 0;
			all_end &= n == 0;
		}
		if (o->max && *o->printed >= o->max)
			break;
		/* Done (not following): all held read to the end, we hold
		 * exactly what we were given, and no partition is between
		 * members (one may still be coming to us). */
		if (!o->follow && all_end && g.n_held == g.m.n_assigned && g.m.settled &&
		    next_hb > sl_now_ns())
			break;
		if (!progress) {
			/* Caught up: wait at the server on one partition in turn,
			 * within the heartbeat period. */
			uint32_t wait = g.m.heartbeat_ms / 2 ? g.m.heartbeat_ms / 2 : 1;
			if (g.n_held) {
				int n = sl__batch(&g, &g.held[round % g.n_held], wait);
				if (n < 0)
					goto out;
			} else {
				uint64_t until = next_hb > sl_now_ns() ? next_hb : sl_now_ns();
				struct timespec ts = {0,
				                      (long)((until - sl_now_ns()) % 1000000000u)};
				/* Nothing held: the next heartbeat is all there is to do. */
				nanosleep(&ts, NULL);
			}
		}
	}
	rc = 0;
out:
	if (g.m.id[0]) {
		/* Every batch was committed as it went: leave, so the others
		 * take our partitions now instead of a session later. */
		g.n_held = 0;
		if (sl__heartbeat(&g, true) < 0)
			rc = 1;
	}
	sl_group_member_clear(&g.m);
	free(g.held);
	free(g.owned);
	free(g.buf);
	free(g.evs);
	return rc;
}
