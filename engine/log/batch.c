/*
 * The record batch's checks and seal (batch.h). Pure functions on
 * caller-owned bytes: any thread (the writer seals, recovery and views
 * check).
 */
#include "log/batch.h"

#include <isa-l/crc.h>

#include "base/varint.h"

uint32_t sl_crc32c(uint32_t crc, const void *buf, size_t len)
{
	/* ISA-L's crc32_iscsi uses the SSE4.2 crc32 instruction (three streams
	 * interleaved) and leaves the pre/post inversion to the caller; doing it
	 * here gives the standard CRC32C, chainable: crc(a+b) = crc(crc(a), b).
	 * Its length is an int: longer buffers go in 1 GiB steps. */
	const unsigned char *b = buf;
	const size_t step = (size_t)1 << 30;
	crc = ~crc;
	for (; len > step; b += step, len -= step)
		crc = crc32_iscsi((unsigned char *)b, (int)step, crc);
	return ~crc32_iscsi((unsigned char *)b, (int)len, crc);
}

void sl_batch_seal(uint8_t *h, uint32_t unit_start)
{
	uint32_t len = sl_get_le32(h + SL_BATCH_LEN);
	uint32_t hdr = sl_batch_hdr_size(sl_get_le32(h + SL_BATCH_MAGIC));

	sl_put_le32(h + SL_BATCH_UNIT_START, unit_start);
	sl_put_le32(h + SL_BATCH_CRC,
	            sl_crc32c(0, h + SL_BATCH_CRC_FROM, hdr - SL_BATCH_CRC_FROM + (size_t)len));
}

bool sl_batch_valid(const uint8_t *p, size_t avail, struct sl_bhdr *b)
{
	if (avail < SL_LOG_BATCH_HDR_V1)
		return false;
	uint32_t hdr = sl_batch_hdr_size(sl_get_le32(p + SL_BATCH_MAGIC));
	if (!hdr || avail < hdr)
		return false;
	sl_batch_hdr_decode(p, b);
	if (b->count == 0 || b->len > SL_BATCH_MAX || hdr + (size_t)b->len > avail)
		return false;
	if (hdr == SL_LOG_BATCH_HDR && sl_get_le32(p + SL_BATCH_RESERVED))
		return false;
	uint32_t crc =
	    sl_crc32c(0, p + SL_BATCH_CRC_FROM, hdr - SL_BATCH_CRC_FROM + (size_t)b->len);
	if (crc != sl_get_le32(p + SL_BATCH_CRC))
		return false;
	const uint8_t *r = p + hdr, *end = r + b->len;
	for (uint32_t i = 0; i < b->count; i++) {
		uint64_t size, delta;
		size_t n = sl_varint_get(r, end, &size);
		if (!n)
			return false;
		r += n;
		n = sl_varint_get(r, end, &delta);
		if (!n || size > (uint64_t)(end - r - n))
			return false;
		r += n + size;
	}
	return r == end;
}
