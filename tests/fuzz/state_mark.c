/*
 * Fuzz target: the state store's partition mark (state/state_format.h), read
 * back from RocksDB at every partition's open and every query's view. Checked:
 * no crash; 0 only for a value of the exact size, magic and version, whose
 * fields are then the bytes at their offsets; -SL_ECORRUPT otherwise. The
 * same bytes as a partition's live record (sl_state_live_parse, read at
 * every open and query view): 0 only for 8 bytes with the magic naming one
 * of that partition's two key spaces.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "state/state.h"
#include "state/state_format.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct sl_state_mark m;
	int ret = sl_state_mark_parse(data, size, &m);

	if (ret == 0) {
		uint64_t next;
		if (size != SL_STATE_META_BYTES)
			abort();
		memcpy(&next, data + SL_STATE_META_OFF_NEXT, 8);
		if (next != m.next)
			abort();
	} else if (ret != -SL_ECORRUPT) {
		abort();
	}
	uint32_t part = size ? data[0] % 8u : 0, space;
	ret = sl_state_live_parse(data, size, part, &space);
	if (ret == 0) {
		uint32_t magic;
		if (size != SL_STATE_LIVE_BYTES)
			abort();
		memcpy(&magic, data + SL_STATE_LIVE_OFF_MAGIC, 4);
		if (magic != SL_STATE_LIVE_MAGIC ||
		    (space != part && space != (part | SL_STATE_SPACE_ALT)))
			abort();
	} else if (ret != -SL_ECORRUPT || space != part) {
		abort();
	}
	return 0;
}
