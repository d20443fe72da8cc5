/*
 * The offsets topic's records (record_format.h): encode on the reactor
 * that takes a commit, decode at start (replay) and in the fuzz target.
 * Pure functions; any thread.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "base/base.h"
#include "group/group.h"
#include "group/record_format.h"
#include "proto/proto.h"

int sl_group_record_encode(const struct sl_group_record *r, uint8_t *buf, size_t cap)
{
	char agg[2 * SL_GROUP_NAME_MAX + 16];
	uint8_t data[SL_GREC_LEN] = {0};

	if (r->group_len > SL_GROUP_NAME_MAX || r->topic_len > SL_GROUP_NAME_MAX)
		return -EINVAL;
	int n = snprintf(agg, sizeof(agg), "%.*s/%.*s/%u", (int)r->group_len, r->group,
	                 (int)r->topic_len, r->topic, r->partition);
	data[SL_GREC_VERSION] = SL_GREC_V1;
	sl_put_le32(data + SL_GREC_PARTITION, r->partition);
	sl_put_le64(data + SL_GREC_OFFSET, r->offset);
	sl_put_le32(data + SL_GREC_GENERATION, r->generation);
	sl_put_le64(data + SL_GREC_TIME_MS, (uint64_t)r->time_ms);
	struct sl_event_view v = {
	    .type = SL_GROUP_RECORD_TYPE,
	    .type_len = sizeof(SL_GROUP_RECORD_TYPE) - 1,
	    .aggregate = agg,
	    .aggregate_len = (size_t)n,
	    .timestamp_ms = r->time_ms,
	    .data = data,
	    .data_len = sizeof(data),
	};
	return sl_event_encode(buf, cap, &v, NULL, 0);
}

static int sl__bad(char *err, size_t errlen, const char *why)
{
	snprintf(err, errlen, "%s", why);
	return -EINVAL;
}

int sl_group_record_decode(const uint8_t *ev, size_t len, struct sl_group_record *r, char *err,
                           size_t errlen)
{
	struct sl_event_view v;

	if (sl_event_scan(ev, len, &v) < 0)
		return sl__bad(err, errlen, "not an event");
	if (v.type_len != sizeof(SL_GROUP_RECORD_TYPE) - 1 ||
	    memcmp(v.type, SL_GROUP_RECORD_TYPE, v.type_len))
		return sl__bad(err, errlen, "not a commit record (type)");
	if (v.data_len < SL_GREC_LEN)
		return sl__bad(err, errlen, "commit record data shorter than 32 bytes");
	if (v.data[SL_GREC_VERSION] != SL_GREC_V1)
		return sl__bad(err, errlen, "commit record of another version");
	/* GROUP/TOPIC/PARTITION: names hold no '/'. */
	const char *a = v.aggregate, *end = a + v.aggregate_len;
	const char *s1 = memchr(a, '/', v.aggregate_len);
	const char *s2 = s1 ? memchr(s1 + 1, '/', (size_t)(end - s1 - 1)) : NULL;
	if (!s2)
		return sl__bad(err, errlen, "commit record aggregate is not GROUP/TOPIC/PARTITION");
	r->group = a;
	r->group_len = (size_t)(s1 - a);
	r->topic = s1 + 1;
	r->topic_len = (size_t)(s2 - s1 - 1);
	if (!sl_group_name_ok(r->group, r->group_len) || !sl_group_name_ok(r->topic, r->topic_len))
		return sl__bad(err, errlen, "commit record names a bad group or topic");
	uint64_t part = 0;
	const char *d = s2 + 1;
	if (d == end || end - d > 10 || (*d == '0' && end - d > 1))
		return sl__bad(err, errlen, "commit record partition is not a decimal number");
	for (; d < end; d++) {
		if (*d < '0' || *d > '9')
			return sl__bad(err, errlen,
			               "commit record partition is not a decimal number");
		part = part * 10 + (uint64_t)(*d - '0');
	}
	r->partition = sl_get_le32(v.data + SL_GREC_PARTITION);
	if (part != r->partition)
		return sl__bad(err, errlen, "commit record partition differs from its aggregate's");
	r->offset = sl_get_le64(v.data + SL_GREC_OFFSET);
	r->generation = sl_get_le32(v.data + SL_GREC_GENERATION);
	r->time_ms = (int64_t)sl_get_le64(v.data + SL_GREC_TIME_MS);
	return 0;
}
