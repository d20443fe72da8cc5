/*
 * Fuzz target: data_dir/topics.yaml, the registry of topics created at
 * runtime, as a start reads it back (server/topics.c through the config's
 * topic table). The input is the file; it is checked against a config
 * that has topic `events` (8 partitions). The reader returns a count of
 * contradictions (>= 0) or a clean error (-errno, -SL_ECONFIG) with a
 * message; it never crashes, leaks or reads out of bounds (ASan).
 *
 * Files live in a per-process folder on /dev/shm, removed at exit.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/base.h"
#include "config/config.h"
#include "server/server.h"

static char g_dir[128];

static void cleanup(void)
{
	char path[200];
	if (!g_dir[0])
		return;
	snprintf(path, sizeof(path), "%s/topics.yaml", g_dir);
	unlink(path);
	rmdir(g_dir);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char path[200], err[600];
	if (!g_dir[0]) {
		snprintf(g_dir, sizeof(g_dir), "/dev/shm/sluice-fuzz-topics-%d", (int)getpid());
		if (mkdir(g_dir, 0755) < 0)
			abort();
		atexit(cleanup);
	}
	snprintf(path, sizeof(path), "%s/topics.yaml", g_dir);
	FILE *f = fopen(path, "w");
	if (!f)
		abort();
	if (size && fwrite(data, 1, size, f) != size)
		abort();
	fclose(f);
	struct sl_config_topic cfg = {.name = (char *)"events", .partitions = 8};
	FILE *report = fopen("/dev/null", "w");
	err[0] = '\0';
	int ret = sl_server_runtime_topics_check(g_dir, &cfg, 1, report, err, sizeof(err));
	fclose(report);
	if (ret < 0 && ret != -SL_ECONFIG && ret != -ENOMEM && ret != -EINVAL)
		abort();
	if (ret < 0 && !err[0])
		abort(); /* every refusal says why */
	return 0;
}
