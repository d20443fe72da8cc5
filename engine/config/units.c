/* Units of the configuration: integers, sizes, durations, host:port. */
#include "config/config.h"

#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"

struct sl__unit {
	const char *name;
	uint64_t mult;
};

static const struct sl__unit sl__size_units[] = {
    {"B", 1},
    {"KB", 1000ull},
    {"MB", 1000ull * 1000},
    {"GB", 1000ull * 1000 * 1000},
    {"TB", 1000ull * 1000 * 1000 * 1000},
    {"KiB", 1ull << 10},
    {"MiB", 1ull << 20},
    {"GiB", 1ull << 30},
    {"TiB", 1ull << 40},
};

static const struct sl__unit sl__duration_units[] = {
    {"ns", 1},
    {"us", 1000ull},
    {"\xc2\xb5s", 1000ull}, /* µs */
    {"ms", 1000ull * 1000},
    {"s", 1000ull * 1000 * 1000},
    {"m", 60ull * 1000 * 1000 * 1000},
    {"h", 3600ull * 1000 * 1000 * 1000},
    {"d", 86400ull * 1000 * 1000 * 1000},
};

/* Leading decimal digits of `s`; *end points past them. -EINVAL when there
 * are none, -ERANGE when they overflow. */
static int sl__digits(const char *s, uint64_t *out, const char **end)
{
	uint64_t v = 0;
	const char *p = s;

	if (*p < '0' || *p > '9')
		return -EINVAL;
	for (; *p >= '0' && *p <= '9'; p++) {
		if (__builtin_mul_overflow(v, 10, &v) || __builtin_add_overflow(v, *p - '0', &v)) {
			while (*p >= '0' && *p <= '9')
				p++;
			*end = p;
			return -ERANGE;
		}
	}
	*out = v;
	*end = p;
	return 0;
}

int sl_config_parse_u64(const char *s, uint64_t *out)
{
	const char *end;
	uint64_t v;
	int rc = sl__digits(s, &v, &end);

	if (rc == -ERANGE)
		return *end ? -EINVAL : -ERANGE;
	if (rc || *end)
		return -EINVAL;
	*out = v;
	return 0;
}

static int sl__parse_unit(const char *s, uint64_t *out, const struct sl__unit *units, size_t n,
                          bool unit_required)
{
	const char *p;
	uint64_t v;
	int rc = sl__digits(s, &v, &p);

	if (rc && rc != -ERANGE)
		return rc;
	while (*p == ' ')
		p++;
	if (!*p) {
		if (p != s && p[-1] == ' ')
			return -EINVAL; /* trailing space without a unit */
		if (rc)
			return rc;
		if (unit_required && v)
			return -EINVAL;
		*out = v;
		return 0;
	}
	for (size_t i = 0; i < n; i++) {
		if (strcmp(p, units[i].name))
			continue;
		if (rc)
			return rc;
		if (__builtin_mul_overflow(v, units[i].mult, &v))
			return -ERANGE;
		*out = v;
		return 0;
	}
	return -EINVAL;
}

int sl_config_parse_size(const char *s, uint64_t *out)
{
	return sl__parse_unit(s, out, sl__size_units, SL_ARRAY_LEN(sl__size_units), false);
}

int sl_config_parse_duration(const char *s, uint64_t *out_ns)
{
	return sl__parse_unit(s, out_ns, sl__duration_units, SL_ARRAY_LEN(sl__duration_units),
	                      true);
}

/* RFC 1123 hostname: dot-separated labels of letters, digits and inner
 * hyphens, 1..63 each, 253 in all. An all-digit last label would make an
 * address lookalike ("999.1.1.1"), which is refused. */
static bool sl__hostname_ok(const char *h, size_t n)
{
	size_t label = 0;
	bool digits_only = true;

	if (!n || n > 253)
		return false;
	for (size_t i = 0; i <= n; i++) {
		char c = i < n ? h[i] : '.';

		if (c == '.') {
			if (!label || h[i - 1] == '-')
				return false;
			if (i == n && digits_only)
				return false;
			label = 0;
			digits_only = true;
			continue;
		}
		if (c == '-' && !label)
			return false;
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '-'))
			return false;
		if (c < '0' || c > '9')
			digits_only = false;
		if (++label > 63)
			return false;
	}
	return true;
}

int sl_config_parse_addr(const char *s, char **host, uint16_t *port)
{
	const char *colon = strrchr(s, ':');
	const char *h = s;
	size_t hlen;
	uint64_t p;
	char buf[INET6_ADDRSTRLEN + 1];
	unsigned char addr[sizeof(struct in6_addr)];

	*host = NULL;
	if (!colon || sl_config_parse_u64(colon + 1, &p) || p > 65535)
		return -EINVAL;
	hlen = (size_t)(colon - s);
	if (hlen && s[0] == '[') {
		if (hlen < 3 || s[hlen - 1] != ']' || hlen - 2 >= sizeof(buf))
			return -EINVAL;
		h = s + 1;
		hlen -= 2;
		memcpy(buf, h, hlen);
		buf[hlen] = '\0';
		if (inet_pton(AF_INET6, buf, addr) != 1)
			return -EINVAL;
	} else {
		if (memchr(s, ':', hlen))
			return -EINVAL; /* IPv6 without brackets: the port is ambiguous */
		if (hlen < sizeof(buf)) {
			memcpy(buf, s, hlen);
			buf[hlen] = '\0';
		}
		if (!(hlen < sizeof(buf) && inet_pton(AF_INET, buf, addr) == 1) &&
		    !sl__hostname_ok(s, hlen))
			return -EINVAL;
	}
	*host = strndup(h, hlen);
	if (!*host)
		return -ENOMEM;
	*port = (uint16_t)p;
	return 0;
}
