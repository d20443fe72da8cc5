/*
 * The leader-epoch file of a partition (log.h: leader epochs; the bytes:
 * epochs_format.h).
 *
 * Threads: the partition's owner (its reactor), or a tool. Every change is
 * durable before it returns (sl_file_replace: tmp, fdatasync, rename,
 * folder sync), so a crash leaves the old list or the new one.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "base/base.h"
#include "log/batch.h"
#include "log/epochs_format.h"
#include "log/log_impl.h"

struct sl_epochs {
	char *dir;
	struct sl_epoch *e;
	uint32_t n;
	size_t cap; /* bytes */
};

int sl_epochs_decode(struct sl_epochs *ep, const uint8_t *p, size_t n, char *err, size_t errlen)
{
	const char *why = NULL;
	if (n < SL_EPOCHS_HDR || sl_get_le32(p + SL_EPOCHS_MAGIC) != SL_EPOCHS_MAGIC_V) {
		why = "not a leader-epoch file (magic)";
		goto bad;
	}
	uint32_t count = sl_get_le32(p + SL_EPOCHS_COUNT);
	if (count > SL_EPOCHS_MAX || n != SL_EPOCHS_HDR + (size_t)count * SL_EPOCHS_ENTRY) {
		why = "size does not match its count";
		goto bad;
	}
	if (sl_crc32c(0, p + SL_EPOCHS_CRC_FROM, n - SL_EPOCHS_CRC_FROM) !=
	    sl_get_le32(p + SL_EPOCHS_CRC)) {
		why = "checksum mismatch";
		goto bad;
	}
	struct sl_epoch *e =
	    sl_grow(ep->e, &ep->cap, (count ? count : 1) * sizeof(*e), 16 * sizeof(*e));
	if (!e)
		return -ENOMEM;
	ep->e = e;
	for (uint32_t i = 0; i < count; i++) {
		const uint8_t *q = p + SL_EPOCHS_HDR + (size_t)i * SL_EPOCHS_ENTRY;
		e[i].epoch = sl_get_le32(q + SL_EPOCHS_E_EPOCH);
		e[i].start = sl_get_le64(q + SL_EPOCHS_E_START);
		if (i && (e[i].epoch <= e[i - 1].epoch || e[i].start < e[i - 1].start)) {
			why = "entries out of order";
			goto bad;
		}
	}
	ep->n = count;
	return 0;
bad:
	ep->n = 0;
	snprintf(err, errlen, "%s/%s: %s: refusing to serve this partition", ep->dir ? ep->dir : "",
	         SL_EPOCHS_FILE, why);
	return -SL_ECORRUPT;
}

int sl_epochs_load(const char *dir, struct sl_epochs **out, char *err, size_t errlen)
{
	struct sl_epochs *ep = calloc(1, sizeof(*ep));
	uint8_t *buf = NULL;
	char path[4096];
	int fd = -1, ret = -ENOMEM;
	struct stat st;

	err[0] = 0;
	if (!ep || !(ep->dir = strdup(dir)))
		goto fail;
	snprintf(path, sizeof(path), "%s/%s", dir, SL_EPOCHS_FILE);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		ret = -errno;
		if (ret == -ENOENT) { /* a partition that never had a leader change */
			*out = ep;
			return 0;
		}
		snprintf(err, errlen, "open %s: %s", path, strerror(-ret));
		goto fail;
	}
	if (fstat(fd, &st) < 0) {
		ret = -errno;
		snprintf(err, errlen, "stat %s: %s", path, strerror(-ret));
		goto fail;
	}
	if ((uint64_t)st.st_size > SL_EPOCHS_HDR + (uint64_t)SL_EPOCHS_MAX * SL_EPOCHS_ENTRY) {
		ret = -SL_ECORRUPT;
		snprintf(err, errlen, "%s: %lld bytes, more than any leader-epoch file holds", path,
		         (long long)st.st_size);
		goto fail;
	}
	ret = -ENOMEM;
	if (!(buf = malloc(st.st_size ? (size_t)st.st_size : 1)))
		goto fail;
	ssize_t n = sl__pread_all(fd, buf, (size_t)st.st_size, 0);
	if (n < 0) {
		ret = (int)n;
		snprintf(err, errlen, "read %s: %s", path, strerror(-ret));
		goto fail;
	}
	ret = sl_epochs_decode(ep, buf, (size_t)n, err, errlen);
	if (ret < 0)
		goto fail;
	close(fd);
	free(buf);
	*out = ep;
	return 0;
fail:
	if (fd >= 0)
		close(fd);
	free(buf);
	sl_epochs_free(ep);
	return ret;
}

struct sl_epochs *sl_epochs_new(const char *dir)
{
	struct sl_epochs *ep = calloc(1, sizeof(*ep));
	if (ep && !(ep->dir = strdup(dir ? dir : ""))) {
		free(ep);
		return NULL;
	}
	return ep;
}

void sl_epochs_free(struct sl_epochs *ep)
{
	if (!ep)
		return;
	free(ep->e);
	free(ep->dir);
	free(ep);
}

size_t sl_epochs_encode(const struct sl_epochs *ep, uint8_t *p, size_t cap)
{
	size_t n = SL_EPOCHS_HDR + (size_t)ep->n * SL_EPOCHS_ENTRY;
	if (n > cap)
		return n;
	sl_put_le32(p + SL_EPOCHS_MAGIC, SL_EPOCHS_MAGIC_V);
	sl_put_le32(p + SL_EPOCHS_COUNT, ep->n);
	for (uint32_t i = 0; i < ep->n; i++) {
		uint8_t *q = p + SL_EPOCHS_HDR + (size_t)i * SL_EPOCHS_ENTRY;
		sl_put_le32(q + SL_EPOCHS_E_EPOCH, ep->e[i].epoch);
		sl_put_le64(q + SL_EPOCHS_E_START, ep->e[i].start);
	}
	sl_put_le32(p + SL_EPOCHS_CRC,
	            sl_crc32c(0, p + SL_EPOCHS_CRC_FROM, n - SL_EPOCHS_CRC_FROM));
	return n;
}

/* Writes the first n entries durably; they become the list once on disk. */
static int sl__epochs_store(struct sl_epochs *ep, uint32_t n)
{
	uint32_t keep = ep->n;
	ep->n = n;
	size_t len = sl_epochs_encode(ep, NULL, 0);
	uint8_t *buf = malloc(len);
	int ret = -ENOMEM;
	if (buf) {
		sl_epochs_encode(ep, buf, len);
		char path[4096];
		snprintf(path, sizeof(path), "%s/%s", ep->dir, SL_EPOCHS_FILE);
		struct iovec iov = {.iov_base = buf, .iov_len = len};
		ret = sl_file_replace(AT_FDCWD, path, &iov, 1, 0, NULL, NULL);
		free(buf);
	}
	if (ret < 0)
		ep->n = keep;
	return ret;
}

int sl_epochs_append(struct sl_epochs *ep, uint32_t epoch, uint64_t start)
{
	if (ep->n && (epoch <= ep->e[ep->n - 1].epoch || start < ep->e[ep->n - 1].start))
		return -EINVAL;
	if (ep->n >= SL_EPOCHS_MAX)
		return -ENOSPC;
	struct sl_epoch *e = sl_grow(ep->e, &ep->cap, (ep->n + 1) * sizeof(*e), 16 * sizeof(*e));
	if (!e)
		return -ENOMEM;
	ep->e = e;
	e[ep->n] = (struct sl_epoch){.epoch = epoch, .start = start};
	return sl__epochs_store(ep, ep->n + 1);
}

int sl_epochs_truncate_from(struct sl_epochs *ep, uint64_t offset)
{
	uint32_t n = ep->n;
	while (n && ep->e[n - 1].start >= offset)
		n--;
	return n == ep->n ? 0 : sl__epochs_store(ep, n);
}

int sl_epochs_end_of(const struct sl_epochs *ep, uint32_t epoch, uint64_t log_end,
                     uint64_t *end_offset, uint32_t *epoch_found)
{
	uint32_t i = ep->n;
	while (i && ep->e[i - 1].epoch > epoch)
		i--;
	if (!i)
		return -ENOENT;
	*epoch_found = ep->e[i - 1].epoch;
	*end_offset = i < ep->n ? ep->e[i].start : log_end;
	return 0;
}

const struct sl_epoch *sl_epochs_last(const struct sl_epochs *ep)
{
	return ep->n ? &ep->e[ep->n - 1] : NULL;
}

uint32_t sl_epochs_count(const struct sl_epochs *ep)
{
	return ep->n;
}

const struct sl_epoch *sl_epochs_entries(const struct sl_epochs *ep)
{
	return ep->e;
}
