/*
 * Built by the e2e `install` case against an installed libsluice (through
 * pkg-config, shared and static): connects, produces 100 events, flushes,
 * and prints how many were acked. Uses only the public header.
 */
#include <sluice/client.h>
#include <stdio.h>
#include <stdlib.h>

static void on_ack(void *arg, const struct sl_client_ack *a)
{
	if (a->status == 0)
		++*(int *)arg;
}

int main(int argc, char **argv)
{
	struct sl_client *c;
	char err[256];
	int acked = 0;

	if (argc != 3)
		return 2;
	struct sl_client_opts o = {
	    .host = argv[1],
	    .port = (uint16_t)atoi(argv[2]),
	    .on_ack = on_ack,
	    .arg = &acked,
	};
	if (sl_client_connect(&o, &c, err, sizeof(err)) < 0) {
		fprintf(stderr, "connect: %s\n", err);
		return 1;
	}
	for (int i = 0; i < 100; i++) {
		struct sl_client_event ev = {.type = "smoke",
		                             .type_len = 5,
		                             .aggregate = "k",
		                             .aggregate_len = 1,
		                             .data = "{}",
		                             .data_len = 2};
		int ret = sl_client_produce(c, NULL, &ev, NULL);
		if (ret < 0) {
			fprintf(stderr, "produce: %s\n", sl_strerror(ret));
			return 1;
		}
	}
	int ret = sl_client_flush(c, 10000);
	if (ret < 0)
		fprintf(stderr, "flush: %s: %s\n", sl_strerror(ret), sl_client_last_error(c));
	sl_client_close(c);
	printf("acked %d\n", acked);
	return ret < 0;
}
