/*
 * Fuzz target: the client library's Ack scanner (client/ack.c), which
 * reads what a server sends without protobuf-c. Checked against protobuf-c
 * on every input:
 *  - a body it accepts is one protobuf-c decodes too, with exactly as many
 *    answered events (parts' indexes plus rejects' indexes) as it reported;
 *  - a body it refuses reports nothing (the whole body is validated first);
 *  - every event it reports reads inside the input.
 * The scanner may refuse more than protobuf-c (an AckPart whose offsets do
 * not match its indexes), never less.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "client/client_impl.h"
#include "sluice/v1/wire.pb-c.h"

struct ctx {
	const uint8_t *lo, *hi;
	uint64_t n;
};

static void on_event(void *arg, const struct sl__ack_event *e)
{
	struct ctx *c = arg;
	c->n++;
	if (e->message_len) {
		const uint8_t *m = (const uint8_t *)e->message;
		if (m < c->lo || m + e->message_len > c->hi)
			abort();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ctx c = {.lo = data, .hi = data + size};
	int n = sl__ack_scan(data, size, on_event, &c);

	if (n < 0) {
		if (c.n)
			abort();
		return 0;
	}
	if ((uint64_t)n != c.n)
		abort();
	Sluice__V1__Ack *a = sluice__v1__ack__unpack(NULL, size, data);
	if (!a)
		abort(); /* we accepted what protobuf-c refuses */
	uint64_t m = 0;
	for (size_t i = 0; i < a->n_parts; i++)
		m += a->parts[i]->n_index;
	for (size_t i = 0; i < a->n_rejects; i++)
		m += a->rejects[i]->n_index;
	if (m != (uint64_t)n)
		abort();
	sluice__v1__ack__free_unpacked(a, NULL);
	return 0;
}
