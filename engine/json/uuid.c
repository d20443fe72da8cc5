#include "json/json.h"

#include <errno.h>
#include <sys/random.h>

#include "base/base.h"

/* splitmix64 spreads any seed (even 0) over the whole xoshiro state, which
 * must never be all zero: that state is a fixed point. */
static uint64_t sl__splitmix64(uint64_t *x)
{
	uint64_t z = (*x += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

void sl_uuid_rng_seed_u64(struct sl_uuid_rng *rng, uint64_t seed)
{
	for (int i = 0; i < 4; i++)
		rng->s[i] = sl__splitmix64(&seed);
}

int sl_uuid_rng_seed(struct sl_uuid_rng *rng)
{
	uint64_t seed[4];
	size_t got = 0;

	/* 32 bytes never come back short from the urandom pool once it is
	 * initialised, but EINTR before that is allowed: retry a bounded
	 * number of times. */
	for (int tries = 0; got < sizeof(seed) && tries < 8; tries++) {
		ssize_t r = getrandom((char *)seed + got, sizeof(seed) - got, 0);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		got += (size_t)r;
	}
	if (got < sizeof(seed))
		return -EAGAIN;
	for (int i = 0; i < 4; i++)
		rng->s[i] = seed[i];
	/* The all-zero state never leaves zero; 2^-256 odds, but cheap. */
	if (!(seed[0] | seed[1] | seed[2] | seed[3]))
		rng->s[0] = 1;
	return 0;
}

int sl_uuid_parse(const char *s, size_t n, uint8_t out[SL_EVENT_ID_LEN])
{
	uint8_t id[SL_EVENT_ID_LEN];
	size_t j = 0;

	if (n != SL_UUID_STR_LEN)
		return -EINVAL;
	for (size_t i = 0; i < n;) {
		if (i == 8 || i == 13 || i == 18 || i == 23) {
			if (s[i] != '-')
				return -EINVAL;
			i++;
			continue;
		}
		int b = sl_hex_byte(s + i);
		if (b < 0)
			return -EINVAL;
		id[j++] = (uint8_t)b;
		i += 2;
	}
	for (j = 0; j < SL_EVENT_ID_LEN; j++)
		out[j] = id[j];
	return 0;
}

void sl_uuid_format(const uint8_t id[SL_EVENT_ID_LEN], char out[SL_UUID_STR_LEN + 1])
{
	static const char hex[] = "0123456789abcdef";
	char *p = out;

	for (int i = 0; i < SL_EVENT_ID_LEN; i++) {
		if (i == 4 || i == 6 || i == 8 || i == 10)
			*p++ = '-';
		*p++ = hex[id[i] >> 4];
		*p++ = hex[id[i] & 15];
	}
	*p = '\0';
}
