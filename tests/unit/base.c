#include <criterion/criterion.h>
#include <string.h>

#include "base/base.h"

Test(base, strerror_names_domain_and_errno_codes)
{
	cr_assert_str_eq(sl_strerror(-SL_EFRAME_TOO_BIG), "frame larger than the maximum frame size");
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
