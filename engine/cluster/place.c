/*
 * Initial placement of a partition: a pure function of the sorted live
 * node ids, so every node that computes it for the same membership gets
 * the same answer (and the create-if-absent txn makes the first writer's
 * the one that stays when their views differ).
 *
 * The spread: partition p's replicas are the R nodes starting at p % N
 * going round. Over P partitions each start position is taken floor(P/N)
 * or ceil(P/N) times, so leaders (replicas[0]) spread that evenly. Node k
 * holds a replica of p when p % N is one of the R positions ending at k,
 * so it holds R*floor(P/N) plus how many of those R positions fall below
 * P % N. That is floor or ceil of P*R/N when N divides P (or R is 1 or N);
 * otherwise it stays within [R*floor(P/N), R*ceil(P/N)] and two nodes
 * differ by at most min(R, N-R), but can miss floor/ceil: N=4, R=2, P=2
 * gives b two replicas where P*R/N is 1 (tests/unit/cluster.c checks
 * both statements for N <= 9, P <= 50). Moves later even it out; the
 * initial layout only has to be deterministic and fair to leaders.
 */
#include <errno.h>
#include <string.h>

#include "cluster/cluster.h"

int sl_cluster_place(const char *const *nodes, size_t n, uint32_t p, uint32_t r,
                     struct sl_pstate *out)
{
	if (!nodes || r < 1 || r > SL_CLUSTER_REPLICAS_MAX || n < r)
		return -EINVAL;
	for (size_t i = 0; i < n; i++)
		if (!sl_cluster_id_ok(nodes[i]) || (i && strcmp(nodes[i - 1], nodes[i]) >= 0))
			return -EINVAL; /* not sorted, or a repeat: not one membership */
	memset(out, 0, sizeof(*out));
	for (uint32_t i = 0; i < r; i++) {
		const char *id = nodes[((size_t)p + i) % n];
		memcpy(out->replicas[i], id, strlen(id) + 1);
		memcpy(out->isr[i], id, strlen(id) + 1);
	}
	out->n_replicas = r;
	out->n_isr = r;
	memcpy(out->leader, out->replicas[0], sizeof(out->leader));
	out->epoch = 1;
	return 0;
}
