#include <criterion/criterion.h>
#include <string.h>

#include "base/base.h"
#include "base/varint.h"

Test(base, strerror_names_domain_and_errno_codes)
{
	cr_assert_str_eq(sl_strerror(-SL_EFRAME_TOO_BIG),
	                 "frame larger than the maximum frame size");
	cr_assert_str_eq(sl_strerror(-ENOENT), strerror(ENOENT));
	cr_assert_str_eq(sl_strerror(-SL_EMAX), "unknown error");
	cr_assert_str_eq(sl_strerror(-(SL_EBASE)), "unknown error");
}

Test(base, every_domain_code_has_text)
{
	for (int e = SL_EBASE + 1; e < SL_EMAX; e++)
		cr_assert_str_neq(sl_strerror(-e), "unknown error", "code %d has no text", e);
}

Test(base, monotonic_clock_does_not_go_back)
{
	uint64_t prev = sl_now_ns();
	for (int i = 0; i < 1000; i++) {
		uint64_t now = sl_now_ns();
		cr_assert_geq(now, prev);
		prev = now;
	}
}

Test(base, pow2)
{
	cr_assert(sl_is_pow2(1));
	cr_assert(sl_is_pow2(1024));
	cr_assert_not(sl_is_pow2(0));
	cr_assert_not(sl_is_pow2(1000));
}

/* Every length, on both decoding paths: with ten bytes at hand (no bounds
 * check per byte) and with the input ending right after the varint. */
Test(base, varint_round_trip_every_length_both_paths)
{
	uint8_t buf[32];
	for (unsigned bits = 0; bits <= 64; bits++) {
		uint64_t vals[3] = {bits ? (UINT64_C(1) << (bits - 1)) : 0,
		                    bits == 64 ? UINT64_MAX : (UINT64_C(1) << bits) - 1,
		                    0x0123456789abcdefull >> (64 - (bits ? bits : 1))};
		for (int k = 0; k < 3; k++) {
			uint64_t v = vals[k], got = 0;
			memset(buf, 0xff, sizeof(buf));
			size_t n = (size_t)(sl_varint_put(buf, v) - buf);
			cr_assert_eq(n, sl_varint_len(v), "len of %llu", (unsigned long long)v);
			cr_assert_eq(sl_varint_get(buf, buf + sizeof(buf), &got), n);
			cr_assert_eq(got, v);
			got = 0;
			cr_assert_eq(sl_varint_get(buf, buf + n, &got), n);
			cr_assert_eq(got, v);
			/* Cut short by one byte: truncated, on the short path. */
			cr_assert_eq(sl_varint_get(buf, buf + n - 1, &got), 0);
		}
	}
}

/* The 10th byte holds bit 63 only: 2..0x7f there overflow 64 bits and are
 * refused on both paths, as are 11-byte varints. */
Test(base, varint_refuses_overflow_and_overlong)
{
	uint8_t b[16];
	uint64_t v = 7;
	memset(b, 0x80, sizeof(b));
	b[9] = 0x01;
	cr_assert_eq(sl_varint_get(b, b + 16, &v), 10);
	cr_assert_eq(v, UINT64_C(1) << 63);
	cr_assert_eq(sl_varint_get(b, b + 10, &v), 10);
	cr_assert_eq(v, UINT64_C(1) << 63);
	for (unsigned x = 2; x < 0x100; x++) {
		b[9] = (uint8_t)x;
		v = 7;
		cr_assert_eq(sl_varint_get(b, b + 16, &v), 0, "10th byte 0x%02x", x);
		cr_assert_eq(sl_varint_get(b, b + 10, &v), 0, "10th byte 0x%02x", x);
		cr_assert_eq(v, 7, "*out written on failure");
	}
	cr_assert_eq(sl_varint_get(b, b, &v), 0);
}

Test(base, hex_digits_and_bytes)
{
	for (int c = 0; c < 256; c++) {
		int want = c >= '0' && c <= '9'   ? c - '0'
		           : c >= 'a' && c <= 'f' ? c - 'a' + 10
		           : c >= 'A' && c <= 'F' ? c - 'A' + 10
		                                  : -1;
		cr_assert_eq(sl_hex_digit((unsigned char)c), want, "0x%02x", c);
	}
	cr_assert_eq(sl_hex_byte("00"), 0);
	cr_assert_eq(sl_hex_byte("fF"), 255);
	cr_assert_eq(sl_hex_byte("a5"), 0xa5);
	cr_assert_eq(sl_hex_byte("g0"), -1);
	cr_assert_eq(sl_hex_byte("0G"), -1);
	cr_assert_eq(sl_hex_byte("@0"), -1); /* '@' | 0x20 is '`', not a digit */
}
