/*
 * Fuzz the quorum read's reading of a replica's answer
 * (sl_cluster_qread_parse, engine/cluster/qread.c): another node's HTTP
 * body, untrusted. Input layout:
 *   byte 0   the status: 0 -> 200, 1 -> 404, else 503
 *   then     the body's bytes (a heap block of exact size, no NUL after,
 *            so ASan sees any read past it)
 * It must never crash or leak. An answer is a 200 or 404 with both
 * offsets; anything else is refused with answered false. The choice over
 * the parsed answer (sl_cluster_qread_pick) picks it alone as a majority
 * of one, and need is at least its holds.
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

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct sl_cluster_qreply r;
	uint64_t need = 0;

	if (size < 1)
		return 0;
	int status = data[0] == 0 ? 200 : data[0] == 1 ? 404 : 503;
	size_t n = size - 1;
	char *body = malloc(n ? n : 1);
	CHECK(body);
	memcpy(body, data + 1, n);
	int ret = sl_cluster_qread_parse(status, body, n, &r);
	CHECK(r.status == status);
	if (ret == 0) {
		CHECK(r.answered && status != 503);
		CHECK(sl_cluster_qread_pick(&r, 1, 1, 0, &need) == 0);
		CHECK(need == r.holds);
	} else {
		CHECK(!r.answered);
		CHECK(ret == -EAGAIN || ret == -EPROTO || ret == -ENOMEM);
		CHECK(ret != -EAGAIN || status == 503);
	}
	free(body);
	return 0;
}
