/*
 * sluice status: the server's topics and partitions with their offsets,
 * from one Metadata request. Consumer groups and projections are named as
 * not served yet, so the output never suggests they exist.
 */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "sluice/consumer.h"

int sl_cli_status(int argc, char **argv)
{
	static const struct option opts[] = {
		{"server", required_argument, NULL, 's'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	struct sl_cli_server server;
	bool have_server = false;
	int c;

	optind = 1;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 's':
			if (sl_cli_server_parse(optarg, &server) < 0) {
				fprintf(stderr, "sluice status: --server: expected HOST:PORT, got '%s'\n", optarg);
				return 2;
			}
			have_server = true;
			break;
		case 'h':
			printf("usage: sluice status [--server HOST:PORT]\n"
			       "\n"
			       "Prints the server's topics and partitions with their first and end\n"
			       "offsets (end: the next offset to be written; everything below it is\n"
			       "durable). Consumer groups and projections are not served yet.\n"
			       "\n"
			       "  --server H:P   server (default " SL_CLI_DEFAULT_SERVER ", or $SLUICE_SERVER)\n");
			return 0;
		default:
			fprintf(stderr, "usage: sluice status [--server HOST:PORT]\n");
			return 2;
		}
	}
	if (!have_server && sl_cli_server_default(&server) < 0) {
		fprintf(stderr, "sluice status: SLUICE_SERVER is not HOST:PORT\n");
		return 2;
	}
	struct sl_consumer_opts co = {.host = server.host, .port = server.port,
				      .client_name = "sluice status"};
	struct sl_consumer *con;
	struct sl_topic_info *topics;
	size_t n;
	char err[512];
	if (sl_consumer_connect(&co, &con, err, sizeof(err)) < 0) {
		fprintf(stderr, "sluice status: %s\n", err);
		return 1;
	}
	if (sl_consumer_topics(con, &topics, &n) < 0) {
		fprintf(stderr, "sluice status: %s\n", sl_consumer_last_error(con));
		sl_consumer_close(con);
		return 1;
	}
	printf("server %s:%u\n", server.host, server.port);
	for (size_t i = 0; i < n; i++) {
		unsigned long long total = 0;
		for (size_t p = 0; p < topics[i].n_partitions; p++)
			total += topics[i].partitions[p].end_offset - topics[i].partitions[p].start_offset;
		printf("topic %s: %zu partitions, %llu events stored\n", topics[i].name,
		       topics[i].n_partitions, total);
		printf("  %-9s %12s %12s\n", "partition", "start", "end");
		for (size_t p = 0; p < topics[i].n_partitions; p++)
			printf("  %-9u %12llu %12llu\n", topics[i].partitions[p].partition,
			       (unsigned long long)topics[i].partitions[p].start_offset,
			       (unsigned long long)topics[i].partitions[p].end_offset);
	}
	printf("consumer groups: not served yet\n");
	printf("projections: not served yet\n");
	sl_consumer_topics_free(topics, n);
	sl_consumer_close(con);
	return 0;
}
