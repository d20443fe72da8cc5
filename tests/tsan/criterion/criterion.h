/*
 * A stand-in for <criterion/criterion.h>, used only by the ThreadSanitizer
 * build of the `threads` tests.
 *
 * Why: Criterion's runner cannot start under TSan — BoxFort's inheritable
 * arena collides with TSan's memory layout and every test program aborts with
 * "Could not initialize inheritable arena" (Snaipe/Criterion#274, still open;
 * reproduced here with clang 14 and Criterion 2.4.1). The threaded tests are
 * exactly the ones TSan must see, so the TSan build compiles the same test
 * sources against this header: Test() registers the body, the runner in
 * main.c calls each in turn in one process, and a failed assertion prints
 * where and exits non-zero. Only what our tests use is here.
 */
#ifndef SL_TSAN_CRITERION_SHIM_H
#define SL_TSAN_CRITERION_SHIM_H

#include <stdbool.h>
#include <stddef.h>
#include <string.h>

struct sl_shim_test {
	const char *suite;
	const char *name;
	void (*fn)(void);
	struct sl_shim_test *next;
};

void sl_shim_register(struct sl_shim_test *t);
void sl_shim_fail(const char *file, int line, const char *expr, const char *fmt, ...)
    __attribute__((noreturn, format(printf, 4, 5)));
void sl_shim_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Test options (.timeout = ..., .init = ...) are accepted and ignored: CTest
 * enforces the timeout of the whole program. */
#define Test(suite, name, ...)                                                                     \
	static void suite##__##name(void);                                                         \
	static struct sl_shim_test suite##__##name##__desc = {#suite, #name, suite##__##name,      \
	                                                      NULL};                               \
	__attribute__((constructor)) static void suite##__##name##__reg(void)                      \
	{                                                                                          \
		sl_shim_register(&suite##__##name##__desc);                                        \
	}                                                                                          \
	static void suite##__##name(void)

#define cr_assert(cond, ...)                                                                       \
	do {                                                                                       \
		if (!(cond))                                                                       \
			sl_shim_fail(__FILE__, __LINE__, #cond, "" __VA_ARGS__);                   \
	} while (0)
#define cr_assert_not(cond, ...)       cr_assert(!(cond), __VA_ARGS__)
#define cr_assert_eq(a, b, ...)        cr_assert((a) == (b), __VA_ARGS__)
#define cr_assert_neq(a, b, ...)       cr_assert((a) != (b), __VA_ARGS__)
#define cr_assert_lt(a, b, ...)        cr_assert((a) < (b), __VA_ARGS__)
#define cr_assert_leq(a, b, ...)       cr_assert((a) <= (b), __VA_ARGS__)
#define cr_assert_gt(a, b, ...)        cr_assert((a) > (b), __VA_ARGS__)
#define cr_assert_geq(a, b, ...)       cr_assert((a) >= (b), __VA_ARGS__)
#define cr_assert_null(p, ...)         cr_assert((p) == NULL, __VA_ARGS__)
#define cr_assert_not_null(p, ...)     cr_assert((p) != NULL, __VA_ARGS__)
#define cr_assert_str_eq(a, b, ...)    cr_assert(strcmp((a), (b)) == 0, __VA_ARGS__)
#define cr_assert_str_neq(a, b, ...)   cr_assert(strcmp((a), (b)) != 0, __VA_ARGS__)
#define cr_assert_arr_eq(a, b, n, ...) cr_assert(memcmp((a), (b), (n)) == 0, __VA_ARGS__)
#define cr_assert_fail(...)            sl_shim_fail(__FILE__, __LINE__, "fail", "" __VA_ARGS__)
#define cr_expect                      cr_assert
#define cr_expect_eq                   cr_assert_eq
#define cr_expect_neq                  cr_assert_neq
#define cr_log_info(...)               sl_shim_log(__VA_ARGS__)
#define cr_log_warn(...)               sl_shim_log(__VA_ARGS__)
#define cr_log_error(...)              sl_shim_log(__VA_ARGS__)

#endif
