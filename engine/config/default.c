/*
 * The embedded default configuration: PRODUCT.md's example without pipelines
 * and sinks, plus the keys sluice added (limits.handshake_timeout,
 * limits.idle_timeout, limits.http_header_timeout, topics[].segment_bytes). ops/sluice.yaml is the
 * same configuration with its documentation; tests/unit/config.c checks that the two load to the
 * same values, so change them together.
 */
#include "config/config.h"

/* clang-format off */
static const char sl__default_yaml[] =
	"data_dir: ./sluice-data\n"
	"cores: auto\n"
	"listen: { native: 127.0.0.1:7400, http: 127.0.0.1:7480 }\n"
	"limits:\n"
	"  max_connections: 10000\n"
	"  max_frame_bytes: 1048576\n"
	"  memory_budget: 512MiB\n"
	"  handshake_timeout: 10s\n"
	"  idle_timeout: 300s\n"
	"  max_follower_lag: 1000000\n"
	"  max_connections_per_ip: 1024\n"
	"  http_max_connections: 1024\n"
	"  http_timeout: 30s\n"
	"  http_header_timeout: 10s\n"
	"topics:\n"
	"  - name: events\n"
	"    partitions: 8\n"
	"    partitioner: hash\n"
	"    partitioner_args: {}\n"
	"    durability: fsync\n"
	"    overload: block\n"
	"    retention: { bytes: 10GiB, age: 7d }\n"
	"    cleanup: delete\n"
	"    segment_bytes: 64MiB\n"
	"auto_create_topics: false\n"
	"cluster: { etcd: [], name: sluice, session_ttl: 5s }\n"
	"projections:\n"
	"  - { name: counter, plugin: counter, from: events }\n"
	"  - { name: latest,  plugin: latest,  from: events }\n";
/* clang-format on */

const char *sl_config_default_yaml(void)
{
	return sl__default_yaml;
}
