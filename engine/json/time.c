#include "json/json.h"

#include <errno.h>

/* Reads exactly `width` decimal digits at s[*i]. */
static int sl__digits(const char *s, size_t n, size_t *i, int width, int *out)
{
	int v = 0;

	if (n - *i < (size_t)width)
		return -EINVAL;
	for (int k = 0; k < width; k++) {
		char c = s[*i + (size_t)k];
		if (c < '0' || c > '9')
			return -EINVAL;
		v = v * 10 + (c - '0');
	}
	*i += (size_t)width;
	*out = v;
	return 0;
}

static int sl__expect(const char *s, size_t n, size_t *i, char c)
{
	if (*i >= n || s[*i] != c)
		return -EINVAL;
	(*i)++;
	return 0;
}

static bool sl__leap(int y)
{
	return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

/* Days from 0000-01-01 to the first of January of year y (0..9999): year 0 is
 * a leap year, so for y >= 1 the leap years before y are those among 0..y-1. */
static int64_t sl__days_to_year(int y)
{
	if (y == 0)
		return 0;
	int p = y - 1;
	return 365 * (int64_t)y + p / 4 - p / 100 + p / 400 + 1;
}

int sl_json_time_parse(const char *s, size_t n, int64_t *ms)
{
	static const int mdays[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	static const int before[12] = {0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334};
	int y = 0, mo = 0, d = 0, h = 0, mi = 0, sec = 0, frac = 0, off = 0;
	size_t i = 0;

	if (sl__digits(s, n, &i, 4, &y) || sl__expect(s, n, &i, '-') ||
	    sl__digits(s, n, &i, 2, &mo) || sl__expect(s, n, &i, '-') ||
	    sl__digits(s, n, &i, 2, &d))
		return -EINVAL;
	if (i >= n || (s[i] != 'T' && s[i] != 't' && s[i] != ' '))
		return -EINVAL;
	i++;
	if (sl__digits(s, n, &i, 2, &h) || sl__expect(s, n, &i, ':') ||
	    sl__digits(s, n, &i, 2, &mi) || sl__expect(s, n, &i, ':') ||
	    sl__digits(s, n, &i, 2, &sec))
		return -EINVAL;
	if (i < n && s[i] == '.') {
		size_t start = ++i;
		for (; i < n && s[i] >= '0' && s[i] <= '9'; i++) {
			if (i - start < 3)
				frac = frac * 10 + (s[i] - '0');
		}
		if (i == start)
			return -EINVAL;
		for (size_t k = i - start; k < 3; k++)
			frac *= 10;
	}
	if (i >= n)
		return -EINVAL;
	if (s[i] == 'Z' || s[i] == 'z') {
		i++;
	} else if (s[i] == '+' || s[i] == '-') {
		int sign = s[i] == '-' ? -1 : 1, oh = 0, om = 0;
		i++;
		if (sl__digits(s, n, &i, 2, &oh) || sl__expect(s, n, &i, ':') ||
		    sl__digits(s, n, &i, 2, &om) || oh > 23 || om > 59)
			return -EINVAL;
		off = sign * (oh * 60 + om);
	} else {
		return -EINVAL;
	}
	if (i != n)
		return -EINVAL;
	if (mo < 1 || mo > 12 || d < 1 || h > 23 || mi > 59 || sec > 60)
		return -EINVAL;
	if (d > mdays[mo - 1] + (mo == 2 && sl__leap(y)))
		return -EINVAL;

	/* 719528: days from 0000-01-01 to 1970-01-01. */
	int64_t days =
	    sl__days_to_year(y) - 719528 + before[mo - 1] + (mo > 2 && sl__leap(y)) + (d - 1);
	int64_t secs = days * 86400 + h * 3600 + mi * 60 + sec - (int64_t)off * 60;
	*ms = secs * 1000 + frac;
	return 0;
}
