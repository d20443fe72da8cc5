/*
 * Fuzz the topic path parser (sl_http_parse_topic): the NAME of
 * /v1/topics/NAME as it comes off the wire. Input layout:
 *   byte 0   buffer choice: odd = exactly what the path needs
 *            (strlen(path) + 1), even = byte0 / 2 bytes (often too small)
 *   then     the path after /v1/topics/ (a NUL in it ends it, as in C)
 * The path and the buffer are separate heap blocks of exact size, so ASan
 * sees any read or write past them. It must never crash; on success the
 * name is in the buffer, non-empty, NUL-terminated, holds no '/' and no
 * NUL, is no longer than the path, and the path held no raw '/'; -ENOENT
 * only when the path holds a raw '/'; every refusal says why.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http/http.h"

#define CHECK(c)                                                                                   \
	do {                                                                                       \
		if (!(c))                                                                          \
			__builtin_trap();                                                          \
	} while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	uint8_t mode = data[0];
	char *path = malloc(size);
	CHECK(path);
	memcpy(path, data + 1, size - 1);
	path[size - 1] = 0;
	size_t plen = strlen(path);

	size_t cap = (mode & 1) ? plen + 1 : (size_t)(mode >> 1);
	char *buf = malloc(cap ? cap : 1);
	CHECK(buf);
	const char *name = NULL;
	size_t nlen = 0;
	char err[256];
	err[0] = 0;
	int r = sl_http_parse_topic(path, buf, cap, &name, &nlen, err, sizeof(err));
	if (r == 0) {
		CHECK(cap >= plen + 1);
		CHECK(name == buf);
		CHECK(nlen > 0 && nlen <= plen);
		CHECK(name[nlen] == 0);
		CHECK(!memchr(name, 0, nlen));
		CHECK(!memchr(name, '/', nlen));
		CHECK(!memchr(path, '/', plen));
		CHECK(err[0] == 0);
		/* Without escapes the name is the path itself. */
		if (!memchr(path, '%', plen))
			CHECK(nlen == plen && !memcmp(name, path, plen));
	} else {
		CHECK(r == -EINVAL || r == -ENOENT);
		CHECK((r == -ENOENT) == (memchr(path, '/', plen) != NULL));
		CHECK(err[0] != 0);
		CHECK(memchr(err, 0, sizeof(err)) != NULL);
	}
	free(buf);
	free(path);
	return 0;
}
