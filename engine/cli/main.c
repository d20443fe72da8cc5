/*
 * sluice: the client CLI. `sluice COMMAND [OPTIONS]`; every command answers
 * --help. The commands live one per file; this one only dispatches.
 */
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"

struct sl_cli_cmd {
	const char *name;
	const char *summary;
	int (*run)(int argc, char **argv);
};

static const struct sl_cli_cmd sl_cli_cmds[] = {
    {"produce", "send JSON lines from stdin as events, print acks", sl_cli_produce},
    {"bench", "end-to-end load generator (events/s, MB/s, latency percentiles)", sl_cli_bench},
    {"consume", "print events of a topic as JSON lines", sl_cli_consume},
    {"query", "read one entry of a projection (over the HTTP port)", sl_cli_query},
    {"projection", "rebuild a projection from offset 0 and compare it with the live one",
     sl_cli_projection},
    {"status", "topics, partitions and their offsets (groups: not yet)", sl_cli_status},
    {"topic", "create, list, describe, alter or delete topics (over the HTTP port)", sl_cli_topic},
    {"cluster", "cluster status: nodes, partition leaders, replicas and their lag", sl_cli_cluster},
    {"partition", "move a partition's leadership to another in-sync replica", sl_cli_partition},
};

static void usage(FILE *out)
{
	fprintf(out, "usage: sluice COMMAND [OPTIONS]\n"
	             "\n"
	             "The sluice client. Commands:\n");
	for (size_t i = 0; i < sizeof(sl_cli_cmds) / sizeof(sl_cli_cmds[0]); i++)
		fprintf(out, "  %-9s %s\n", sl_cli_cmds[i].name, sl_cli_cmds[i].summary);
	fprintf(out,
	        "\n"
	        "`sluice COMMAND --help` describes a command. The server is\n"
	        "" SL_CLI_DEFAULT_SERVER " unless --server HOST:PORT[,HOST:PORT...] (bootstrap\n"
	        "servers: the first that answers is used) or the SLUICE_SERVER environment\n"
	        "variable says otherwise.\n");
}

int main(int argc, char **argv)
{
	/* A closed stdout (`sluice produce --print-acks | head`) must show up
	 * as a write error, not kill us before the summary. Sockets use
	 * MSG_NOSIGNAL anyway. */
	signal(SIGPIPE, SIG_IGN);
	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	const char *cmd = argv[1];
	if (!strcmp(cmd, "--help") || !strcmp(cmd, "-h") || !strcmp(cmd, "help")) {
		if (argc > 2 && strcmp(cmd, "help") == 0) {
			/* `sluice help produce` = `sluice produce --help` */
			for (size_t i = 0; i < sizeof(sl_cli_cmds) / sizeof(sl_cli_cmds[0]); i++)
				if (!strcmp(argv[2], sl_cli_cmds[i].name)) {
					char *av[] = {argv[2], "--help", NULL};
					return sl_cli_cmds[i].run(2, av);
				}
		}
		usage(stdout);
		return 0;
	}
	if (!strcmp(cmd, "--version")) {
		printf("sluice 0.1.0\n");
		return 0;
	}
	for (size_t i = 0; i < sizeof(sl_cli_cmds) / sizeof(sl_cli_cmds[0]); i++)
		if (!strcmp(cmd, sl_cli_cmds[i].name))
			return sl_cli_cmds[i].run(argc - 1, argv + 1);
	fprintf(stderr, "sluice: unknown command '%s'\n\n", cmd);
	usage(stderr);
	return 2;
}
