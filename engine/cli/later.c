/*
 * query: its options are fixed by the product brief, but the server does not
 * serve projections yet. Each says exactly what is missing and exits 2 rather than
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

