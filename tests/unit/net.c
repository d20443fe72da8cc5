/*
 * net/: the count of connections per client address (iplimit.c): exact
 * limits per address, IPv6 counted per /64, the table's address bound, and
 * a churn of thousands of addresses that leaves every count right (the
 * backward-shift deletion keeps every key reachable).
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "net/net.h"

static struct sl_ipkey key4(const char *a)
{
	struct sockaddr_in sa = {.sin_family = AF_INET};
	struct sl_ipkey k;

	cr_assert_eq(inet_pton(AF_INET, a, &sa.sin_addr), 1);
	cr_assert_eq(sl_ipkey_of((struct sockaddr *)&sa, sizeof(sa), &k), 0);
	return k;
}

static struct sl_ipkey key6(const char *a)
{
	struct sockaddr_in6 sa = {.sin6_family = AF_INET6};
	struct sl_ipkey k;

	cr_assert_eq(inet_pton(AF_INET6, a, &sa.sin6_addr), 1);
	cr_assert_eq(sl_ipkey_of((struct sockaddr *)&sa, sizeof(sa), &k), 0);
	return k;
}

Test(net, per_address_limit_is_exact)
{
	struct sl_iplimit *t;
	struct sl_ipkey a = key4("127.0.0.3"), b = key4("127.0.0.2");

	cr_assert_eq(sl_iplimit_create(64, &t), 0);
	for (int i = 0; i < 5; i++)
		cr_assert(sl_iplimit_acquire(t, &a, 5), "connection %d", i);
	cr_assert_not(sl_iplimit_acquire(t, &a, 5));
	cr_assert(sl_iplimit_acquire(t, &b, 5), "another address is not held back");
	cr_assert_eq(sl_iplimit_count(t, &a), 5);
	sl_iplimit_release(t, &a);
	cr_assert(sl_iplimit_acquire(t, &a, 5));
	cr_assert_not(sl_iplimit_acquire(t, &a, 5));
	for (int i = 0; i < 5; i++)
		sl_iplimit_release(t, &a);
	sl_iplimit_release(t, &b);
	cr_assert_eq(sl_iplimit_count(t, &a), 0);
	cr_assert_eq(sl_iplimit_count(t, &b), 0);
	sl_iplimit_destroy(t);
}

Test(net, ipv6_counts_per_64_and_mapped_ipv4_as_ipv4)
{
	struct sl_ipkey x = key6("2001:db8:1:2::1"), y = key6("2001:db8:1:2:ffff::9"),
	                z = key6("2001:db8:1:3::1"), m = key6("::ffff:127.0.0.3"),
	                v = key4("127.0.0.3");
	char s[64];

	cr_assert_eq(memcmp(&x, &y, sizeof(x)), 0, "one /64, one client");
	cr_assert_neq(memcmp(&x, &z, sizeof(x)), 0);
	cr_assert_eq(memcmp(&m, &v, sizeof(m)), 0);
	sl_ipkey_str(&x, s, sizeof(s));
	cr_assert_str_eq(s, "2001:db8:1:2::/64");
	sl_ipkey_str(&v, s, sizeof(s));
	cr_assert_str_eq(s, "127.0.0.3");
}

Test(net, table_holds_at_most_max_addrs)
{
	struct sl_iplimit *t;
	char a[32];

	cr_assert_eq(sl_iplimit_create(3, &t), 0);
	for (int i = 1; i <= 3; i++) {
		snprintf(a, sizeof(a), "10.0.0.%d", i);
		struct sl_ipkey k = key4(a);
		cr_assert(sl_iplimit_acquire(t, &k, 10));
	}
	struct sl_ipkey k4 = key4("10.0.0.4"), k1 = key4("10.0.0.1");
	cr_assert_not(sl_iplimit_acquire(t, &k4, 10), "a fourth address does not fit");
	cr_assert(sl_iplimit_acquire(t, &k1, 10), "a known one still counts up");
	sl_iplimit_release(t, &k1);
	sl_iplimit_release(t, &k1);
	cr_assert(sl_iplimit_acquire(t, &k4, 10), "room again once 10.0.0.1 has none");
	sl_iplimit_destroy(t);
}

/* Thousands of addresses come and go in an interleaved order (so that
 * deletions land inside probe runs); the counts always match a plain
 * array's. */
Test(net, churn_keeps_every_count)
{
	enum { N = 4096 };
	static uint32_t want[N];
	struct sl_iplimit *t;
	char a[32];
	uint64_t x = 88172645463325252ull;

	cr_assert_eq(sl_iplimit_create(N, &t), 0);
	for (int step = 0; step < 200000; step++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		uint32_t i = (uint32_t)(x % N);
		snprintf(a, sizeof(a), "10.%u.%u.1", i >> 8, i & 255);
		struct sl_ipkey k = key4(a);
		if ((x >> 32) & 1 && want[i]) {
			sl_iplimit_release(t, &k);
			want[i]--;
		} else if (sl_iplimit_acquire(t, &k, 3)) {
			cr_assert_lt(want[i], 3u);
			want[i]++;
		} else {
			cr_assert_eq(want[i], 3u, "refused %s below its limit", a);
		}
	}
	for (uint32_t i = 0; i < N; i++) {
		snprintf(a, sizeof(a), "10.%u.%u.1", i >> 8, i & 255);
		struct sl_ipkey k = key4(a);
		cr_assert_eq(sl_iplimit_count(t, &k), want[i], "%s", a);
	}
	sl_iplimit_destroy(t);
}
