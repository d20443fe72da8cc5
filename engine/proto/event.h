/*
 * event: a read-only view of one encoded sluice.v1.Event.
 *
 * Events travel and rest in their encoded protobuf form. A view points into
 * the encoded bytes (it owns nothing, allocates nothing) and is valid only as
 * long as those bytes are. Fields absent from the encoding read as empty / 0.
 * The same struct is what encoders take as input (proto/proto.h), so the CLI
 * can fill one from JSON and have it encoded without protobuf-c messages.
 *
 * Threads: plain data; any thread may use a view of bytes it may read.
 */
#ifndef SL_PROTO_EVENT_H
#define SL_PROTO_EVENT_H

#include <stddef.h>
#include <stdint.h>

#define SL_EVENT_ID_LEN 16

struct sl_event_view {
	const uint8_t *id; /* SL_EVENT_ID_LEN bytes, or NULL when absent */
	const char *type;  /* not NUL-terminated */
	size_t type_len;
	const char *aggregate; /* partition key; not NUL-terminated */
	size_t aggregate_len;
	int64_t timestamp_ms; /* ms since the Unix epoch */
	const uint8_t *data;
	size_t data_len;
	uint32_t schema_version;
	uint32_t n_headers; /* headers are read with sl_event_header_next() */
	const uint8_t *raw; /* the whole encoded event */
	size_t raw_len;
};

#endif
