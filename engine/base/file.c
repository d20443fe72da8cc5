#include "base/base.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

/* Writes every byte of iov (which it consumes), retrying short writes. */
static int sl__writev_all(int fd, struct iovec *iov, int n)
{
	while (n > 0) {
		ssize_t w = writev(fd, iov, n);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		while (n > 0 && (size_t)w >= iov->iov_len) {
			w -= (ssize_t)iov->iov_len;
			iov++;
			n--;
		}
		if (n > 0) {
			iov->iov_base = (uint8_t *)iov->iov_base + w;
			iov->iov_len -= (size_t)w;
		}
	}
	return 0;
}

/* The folder holding `name` under dirfd, opened for fsync. */
static int sl__open_dir_of(int dirfd, const char *name)
{
	if (!strchr(name, '/'))
		return dirfd == AT_FDCWD ? open(".", O_RDONLY | O_DIRECTORY | O_CLOEXEC)
		                         : dup(dirfd);
	char *copy = strdup(name);
	if (!copy) {
		errno = ENOMEM;
		return -1;
	}
	int fd = openat(dirfd, dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	free(copy);
	return fd;
}

int sl_file_replace(int dirfd, const char *name, const struct iovec *iov, int n, unsigned flags,
                    const char **step, int *renamed)
{
	struct iovec local[8];
	size_t len = strlen(name);
	char *tmp = malloc(len + 5);
	const char *at = "open";
	int fd = -1, dfd = -1, ret = 0;

	if (renamed)
		*renamed = 0;
	if (!tmp || n < 0 || n > (int)SL_ARRAY_LEN(local)) {
		ret = tmp ? -EINVAL : -ENOMEM;
		goto out;
	}
	memcpy(tmp, name, len);
	memcpy(tmp + len, ".tmp", 5);
	memcpy(local, iov, (size_t)n * sizeof(*iov));
	fd = openat(dirfd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC,
	            flags & SL_FILE_PRIVATE ? 0600 : 0644);
	if (fd < 0) {
		ret = -errno;
		goto out;
	}
	at = "write";
	if ((ret = sl__writev_all(fd, local, n)) < 0)
		goto fail;
	/* The data must be on the device before the name points at it: a
	 * rename that reached it first would leave a torn file under the real
	 * name after a power cut. */
	at = "fdatasync";
	if (fdatasync(fd) < 0) {
		ret = -errno;
		goto fail;
	}
	if (flags & SL_FILE_TEST_NO_RENAME) {
		at = "stopped before rename (test)";
		ret = -ECANCELED;
		goto out; /* left behind as a crash would leave it */
	}
	at = "rename";
	if (renameat(dirfd, tmp, dirfd, name) < 0) {
		ret = -errno;
		goto fail;
	}
	if (renamed)
		*renamed = 1;
	/* The rename itself is durable only once the folder is. */
	at = "fsync of the folder";
	dfd = sl__open_dir_of(dirfd, name);
	if (dfd < 0 || fsync(dfd) < 0)
		ret = -errno;
	goto out;
fail:
	(void)unlinkat(dirfd, tmp, 0);
out:
	if (ret < 0 && step)
		*step = at;
	if (fd >= 0)
		close(fd);
	if (dfd >= 0)
		close(dfd);
	free(tmp);
	return ret;
}

int sl_mkdirs(const char *dir)
{
	char path[4096];
	size_t n = strlen(dir);

	if (n >= sizeof(path))
		return -ENAMETOOLONG;
	memcpy(path, dir, n + 1);
	for (size_t i = 1; i <= n; i++) {
		if (path[i] != '/' && path[i] != '\0')
			continue;
		char c = path[i];
		path[i] = '\0';
		if (mkdir(path, 0755) < 0 && errno != EEXIST)
			return -errno;
		path[i] = c;
	}
	return 0;
}

static int sl__rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path) < 0 ? -1 : 0;
}

int sl_rmtree(const char *path)
{
	return nftw(path, sl__rm_one, 16, FTW_DEPTH | FTW_PHYS) < 0 ? -errno : 0;
}
