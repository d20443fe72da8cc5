/*
 * Fuzz the cluster's value codecs (engine/cluster/state.c): what another
 * node, or a person with etcdctl, stored under /sluice/<name>/.
 * Input layout:
 *   byte 0   low 2 bits: 0 a partition state, 1 a node record, 2 a topic
 *            record, 3 an ordinal
 *   then     the value's bytes
 * The value is a heap block of exact size, so ASan sees any read past it.
 * It must never crash or leak. A value that decodes must encode again, and
 * the encoding must decode to the same thing (the encoder never writes what
 * the decoder refuses, and the two agree); a refusal says why.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/cluster.h"

#define CHECK(c)                                                                                   \
	do {                                                                                       \
		if (!(c))                                                                          \
			__builtin_trap();                                                          \
	} while (0)

static void pstate(const char *v, size_t n)
{
	struct sl_pstate a, b;
	char err[256] = "", out[SL_CLUSTER_JSON_MAX];
	int r = sl_cluster_pstate_decode(v, n, &a, err, sizeof(err));
	if (r < 0) {
		CHECK(r == -EINVAL || r == -ENOMEM);
		CHECK(r == -ENOMEM || err[0]);
		return;
	}
	CHECK(a.n_replicas >= 1 && a.n_replicas <= SL_CLUSTER_REPLICAS_MAX);
	CHECK(a.n_isr <= a.n_replicas);
	CHECK(a.leader[0] == 0 || sl_cluster_id_ok(a.leader));
	int l = sl_cluster_pstate_encode(&a, out, sizeof(out));
	CHECK(l > 0 && (size_t)l < sizeof(out) && out[l] == 0);
	CHECK(sl_cluster_pstate_decode(out, (size_t)l, &b, err, sizeof(err)) == 0);
	CHECK(memcmp(&a, &b, sizeof(a)) == 0);
}

static void node(const char *v, size_t n)
{
	struct sl_cluster_node a, b;
	char err[256] = "", out[SL_CLUSTER_JSON_MAX];
	int r = sl_cluster_node_decode(v, n, &a, err, sizeof(err));
	if (r < 0) {
		CHECK(r == -EINVAL || r == -ENOMEM);
		CHECK(r == -ENOMEM || err[0]);
		return;
	}
	CHECK(sl_cluster_id_ok(a.id));
	int l = sl_cluster_node_encode(&a, out, sizeof(out));
	CHECK(l > 0 && (size_t)l < sizeof(out));
	CHECK(sl_cluster_node_decode(out, (size_t)l, &b, err, sizeof(err)) == 0);
	CHECK(memcmp(&a, &b, sizeof(a)) == 0);
}

static void topic(const char *v, size_t n)
{
	uint32_t p = 0, r2 = 0, p2, rr2;
	char err[256] = "", out[64];
	int r = sl_cluster_topic_decode(v, n, &p, &r2, err, sizeof(err));
	if (r < 0) {
		CHECK(r == -EINVAL || r == -ENOMEM);
		CHECK(r == -ENOMEM || err[0]);
		return;
	}
	CHECK(p >= 1 && p <= SL_CLUSTER_PARTITIONS_MAX && r2 >= 1 && r2 <= SL_CLUSTER_REPLICAS_MAX);
	int l = sl_cluster_topic_encode(p, r2, out, sizeof(out));
	CHECK(l > 0);
	CHECK(sl_cluster_topic_decode(out, (size_t)l, &p2, &rr2, err, sizeof(err)) == 0);
	CHECK(p == p2 && r2 == rr2);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	size_t n = size - 1;
	char *v = malloc(n ? n : 1);
	CHECK(v);
	memcpy(v, data + 1, n);
	switch (data[0] & 3) {
	case 0:
		pstate(v, n);
		break;
	case 1:
		node(v, n);
		break;
	case 2:
		topic(v, n);
		break;
	default: {
		uint32_t o;
		if (sl_cluster_ordinal_decode(v, n, &o) == 0)
			CHECK(n >= 1 && n <= 10);
		break;
	}
	}
	free(v);
	return 0;
}
