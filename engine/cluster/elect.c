/*
 * The controller's choice of a partition's next leader (cluster.h,
 * sl_cluster_elect): a pure function of the state read from etcd and what
 * the replicas answered, so the rules are tested without a cluster.
 *
 * Why a responding majority is enough under quorum acks: an acked event is
 * durable on a majority M1 of the replicas. The controller acts only after
 * the dead leader's lease expired in etcd, and a leader acks nothing past
 * its own lease deadline, which comes first (cluster.h): no ack happens
 * after the answers were given. Any majority M2 that answered meets M1 in
 * some replica z, whose (last epoch, durable end) holds every acked event;
 * the most complete answer is at least z's: in the same last epoch its log
 * is a longer prefix of that epoch's leader's log, and a newer last epoch
 * was led by a replica chosen the same way, so it holds everything acked
 * before it.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "cluster/cluster_impl.h"

static bool sl__in_isr(const struct sl_pstate *s, const char *id)
{
	for (uint32_t k = 0; k < s->n_isr; k++)
		if (!strcmp(s->isr[k], id))
			return true;
	return false;
}

/* Whether a is more complete than b. */
static bool sl__ahead(const struct sl_cluster_reply *a, const struct sl_cluster_reply *b)
{
	return a->last_epoch != b->last_epoch ? a->last_epoch > b->last_epoch
	                                      : a->durable > b->durable;
}

/* The most complete replica among those with mask bit set that answered;
 * -1 for none. */
static int sl__best(const struct sl_pstate *s, const struct sl_cluster_reply *r, uint32_t mask)
{
	int best = -1;
	for (uint32_t i = 0; i < s->n_replicas; i++)
		if ((mask & (1u << i)) && r[i].alive && r[i].answered &&
		    (best < 0 || sl__ahead(&r[i], &r[best])))
			best = (int)i;
	return best;
}

int sl_cluster_elect(const struct sl_pstate *s, const struct sl_cluster_reply *r,
                     enum sl_cluster_acks acks, bool unclean, struct sl_pstate *next,
                     bool *was_unclean)
{
	char err[128];
	uint32_t all = 0, isr = 0, answered = 0;
	int pick = -1;

	*was_unclean = false;
	if (sl__cluster_pstate_check(s, err, sizeof(err)) < 0 || s->epoch == UINT32_MAX)
		return -EINVAL;
	for (uint32_t i = 0; i < s->n_replicas; i++) {
		all |= 1u << i;
		if (sl__in_isr(s, s->replicas[i]) && r[i].alive)
			isr |= 1u << i;
		if (r[i].answered)
			answered |= 1u << i;
	}
	*next = *s;
	next->moving_to[0] = '\0';
	next->mod_revision = 0;
	if (acks == SL_CLUSTER_ACKS_ALL) {
		pick = sl__best(s, r, isr);
		for (uint32_t i = 0; pick < 0 && i < s->n_replicas; i++)
			if (isr & (1u << i))
				pick = (int)i;
		if (pick >= 0) {
			next->n_isr = 0;
			for (uint32_t i = 0; i < s->n_replicas; i++)
				if (isr & (1u << i))
					memcpy(next->isr[next->n_isr++], s->replicas[i],
					       SL_CLUSTER_ID_MAX);
		}
	} else if ((uint32_t)__builtin_popcount(answered) >= s->n_replicas / 2 + 1) {
		pick = sl__best(s, r, all);
		if (pick >= 0) {
			next->n_isr = 0;
			for (uint32_t i = 0; i < s->n_replicas; i++)
				if ((answered & (1u << i)) && r[i].alive)
					memcpy(next->isr[next->n_isr++], s->replicas[i],
					       SL_CLUSTER_ID_MAX);
		}
	}
	if (pick < 0 && unclean) {
		pick = sl__best(s, r, all);
		if (pick >= 0) {
			*was_unclean = true;
			next->n_isr = 1;
			memcpy(next->isr[0], s->replicas[pick], SL_CLUSTER_ID_MAX);
		}
	}
	if (pick < 0)
		return acks != SL_CLUSTER_ACKS_ALL &&
		               (uint32_t)__builtin_popcount(answered) < s->n_replicas / 2 + 1
		           ? -EAGAIN
		           : -ENOENT;
	memcpy(next->leader, s->replicas[pick], SL_CLUSTER_ID_MAX);
	next->epoch = s->epoch + 1;
	return 0;
}
