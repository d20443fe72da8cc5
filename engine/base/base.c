#include "base/base.h"

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *const sl__err_text[] = {
    [SL_EFRAME_TOO_BIG - SL_EBASE] = "frame larger than the maximum frame size",
    [SL_EFRAME_TRUNC - SL_EBASE] = "truncated frame",
    [SL_EPROTO_DECODE - SL_EBASE] = "malformed protobuf message",
    [SL_EPROTO_UNKNOWN - SL_EBASE] = "unknown message type",
    [SL_EPROTO_VERSION - SL_EBASE] = "unsupported protocol version",
    [SL_EPROTO_STATE - SL_EBASE] = "message not allowed in this connection state",
    [SL_ECONFIG - SL_EBASE] = "invalid configuration",
    [SL_ECORRUPT - SL_EBASE] = "stored data is corrupt",
    [SL_EFENCED - SL_EBASE] = "producer fenced by a newer epoch",
    [SL_ESEQ_GAP - SL_EBASE] = "producer sequence out of window",
    [SL_ECREDIT - SL_EBASE] = "sent beyond granted credits",
    [SL_EOVERLOAD - SL_EBASE] = "rejected by overload policy",
    [SL_ENOTOPIC - SL_EBASE] = "unknown topic",
    [SL_EPLUGIN - SL_EBASE] = "plugin refused",
    [SL_ETIMEOUT - SL_EBASE] = "timed out",
    [SL_ELOG_FAILED - SL_EBASE] = "partition log failed",
    [SL_ELOG_FULL - SL_EBASE] = "no space left for the partition's log; retry later",
    [SL_ENOT_LEADER - SL_EBASE] = "this node does not lead the partition; ask for metadata "
                                  "and send to its leader",
    [SL_ENOT_ENOUGH_REPLICAS - SL_EBASE] = "fewer replicas in sync than min_insync; retry later",
    [SL_EPRODUCER_EXPIRED - SL_EBASE] =
        "the partition forgot this producer id (idle past producer_expiry): a resend may be a "
        "duplicate, not stored",
    [SL_EUNTRACKED - SL_EBASE] = "the server cannot track this sequence now; not stored, retry",
    [SL_EUNKNOWN_MEMBER - SL_EBASE] =
        "not a member of the consumer group (left, or silent past its session timeout): join "
        "again",
    [SL_EOUT_OF_RANGE - SL_EBASE] = "offset no longer stored (below the log's start: retention)",
};

bool sl_name_ok(const char *s, size_t n)
{
	if (!n || n > 128 || s[0] == '.' || s[0] == '-')
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '.' || c == '_' || c == '-'))
			return false;
	}
	return true;
}

int sl_parse_dec(const char *s, size_t n, uint64_t max, uint64_t *out)
{
	uint64_t v = 0;

	if (!n)
		return -EINVAL;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -EINVAL;
		uint64_t d = (uint64_t)(s[i] - '0');
		if (v > (max - d) / 10)
			return -EINVAL;
		v = v * 10 + d;
	}
	*out = v;
	return 0;
}

int sl_token_parse(const char *s, size_t len, uint32_t *partition, uint64_t *offset)
{
	const char *colon = s ? memchr(s, ':', len) : NULL;
	uint64_t p, o;

	if (!colon)
		return -EINVAL;
	size_t plen = (size_t)(colon - s);
	if (sl_parse_dec(s, plen, UINT32_MAX, &p) < 0 ||
	    sl_parse_dec(colon + 1, len - plen - 1, UINT64_MAX, &o) < 0)
		return -EINVAL;
	*partition = (uint32_t)p;
	*offset = o;
	return 0;
}

void *sl_grow(void *p, size_t *cap, size_t need, size_t first)
{
	if (need <= *cap)
		return p;
	size_t c = *cap ? *cap : first;
	while (c < need) {
		if (c > SIZE_MAX / 2)
			return NULL;
		c *= 2;
	}
	void *np = realloc(p, c);
	if (np)
		*cap = c;
	return np;
}

void sl_eventfd_signal(int fd)
{
	uint64_t one = 1;
	ssize_t n = write(fd, &one, sizeof(one));
	(void)n;
}

const char *sl_strerror(int err)
{
	int e = err < 0 ? -err : err;

	if (e > SL_EBASE && e < SL_EMAX && sl__err_text[e - SL_EBASE])
		return sl__err_text[e - SL_EBASE];
	if (e > 0 && e < SL_EBASE)
		return strerror(e); /* glibc: static text for known codes */
	return "unknown error";
}

void sl_errf(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (!err || !errlen)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

uint64_t sl_select_u64(uint64_t *v, size_t n, size_t k)
{
	size_t lo = 0, hi = n - 1;

	while (lo < hi) {
		uint64_t pivot = v[lo + (hi - lo) / 2];
		size_t i = lo, j = hi;
		while (i <= j) {
			while (v[i] < pivot)
				i++;
			while (v[j] > pivot)
				j--;
			if (i <= j) {
				uint64_t x = v[i];
				v[i] = v[j];
				v[j] = x;
				i++;
				if (j == 0)
					break;
				j--;
			}
		}
		if (k <= j)
			hi = j;
		else if (k >= i)
			lo = i;
		else
			break;
	}
	return v[k];
}
