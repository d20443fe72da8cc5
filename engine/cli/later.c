/*
 * consume, query, status: their options are fixed by the product brief, but
 * the server does not serve them yet (no Fetch, no projections, no status
 * endpoint). Each says exactly what is missing and exits 2 rather than
 * pretending.
 */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"

#define SL_CLI_NOT_YET 2

static bool sl__wants_help(int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--"))
			break;
		if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h"))
			return true;
	}
	return false;
}

int sl_cli_consume(int argc, char **argv)
{
	if (sl__wants_help(argc, argv)) {
		printf("usage: sluice consume [--topic T] [--partition P] [--from earliest|latest|OFFSET]\n"
		       "                      [--group G] [--max N] [--follow] [--server HOST:PORT]\n"
		       "\n"
		       "Prints the events of a topic on stdout, one JSON object per line, with at\n"
		       "least id, type, aggregate, timestamp, partition, offset and data (or\n"
		       "data_b64 when the stored bytes are not JSON).\n"
		       "\n"
		       "  --topic T        topic to read (default: events)\n"
		       "  --partition P    one partition only (default: all of them)\n"
		       "  --from WHERE     earliest (default), latest, or an offset; given with\n"
		       "                   --group it overrides the group's committed offset\n"
		       "  --group G        consumer group: start at its committed offset (a new\n"
		       "                   group starts at earliest) and commit what was printed\n"
		       "  --max N          stop after N events in total\n"
		       "  --follow         keep waiting for new events instead of exiting at the end\n"
		       "  --server H:P     server (default " SL_CLI_DEFAULT_SERVER ", or $SLUICE_SERVER)\n"
		       "\n"
		       "Not available yet: the server does not serve Fetch/Commit (reading the\n"
		       "partition logs back) in this version; the command exits with status 2.\n");
		return 0;
	}
	fprintf(stderr, "sluice consume: not available yet: the server does not serve Fetch/Commit "
			"(reading partitions back and consumer groups) in this version\n");
	return SL_CLI_NOT_YET;
}

int sl_cli_query(int argc, char **argv)
{
	if (sl__wants_help(argc, argv)) {
		printf("usage: sluice query PROJECTION KEY [--min-offset TOKEN] [--server HOST:PORT]\n"
		       "\n"
		       "Prints one read-model entry of a projection as one JSON object (for the\n"
		       "`latest` projection: the aggregate's latest event, in the consume format).\n"
		       "\n"
		       "  --min-offset TOKEN  read your writes: wait until the projection has applied\n"
		       "                      the event of this ack token (from `sluice produce\n"
		       "                      --print-acks`), or fail with a clear timeout error\n"
		       "  --server H:P        server (default " SL_CLI_DEFAULT_SERVER ", or $SLUICE_SERVER)\n"
		       "\n"
		       "Not available yet: the server does not run projections or answer queries\n"
		       "in this version; the command exits with status 2.\n");
		return 0;
	}
	fprintf(stderr, "sluice query: not available yet: the server does not run projections or "
			"answer queries in this version\n");
	return SL_CLI_NOT_YET;
}

int sl_cli_status(int argc, char **argv)
{
	if (sl__wants_help(argc, argv)) {
		printf("usage: sluice status [--server HOST:PORT]\n"
		       "\n"
		       "Prints the server's topics and partitions with their end offsets, the lag\n"
		       "of every consumer group, and the projections.\n"
		       "\n"
		       "  --server H:P   server (default " SL_CLI_DEFAULT_SERVER ", or $SLUICE_SERVER)\n"
		       "\n"
		       "Not available yet: the server does not answer Metadata requests (nor\n"
		       "GET /v1/status) in this version; the command exits with status 2.\n");
		return 0;
	}
	fprintf(stderr, "sluice status: not available yet: the server does not answer Metadata "
			"requests (nor GET /v1/status) in this version\n");
	return SL_CLI_NOT_YET;
}
