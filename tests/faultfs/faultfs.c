/*
 * faultfs: a FUSE passthrough filesystem that models a disk with a volatile
 * write cache, so that a test can cut the power under sluiced.
 *
 *   faultfs BACKING MOUNTPOINT [-f] [other libfuse options]
 *
 * Every operation goes to BACKING at once (reads see every write, as they
 * would see the page cache), and faultfs remembers what a power cut could
 * still take back:
 *
 * Data (per inode, `struct ffs_node`). Every write, truncate and size-
 * changing fallocate since the file's last successful fsync or fdatasync
 * is an undo record (`struct ffs_rec`): the range it changed, the file's
 * size before, and the bytes the range held before (only those below the old
 * size: an append costs no memory). fsync/fdatasync of the file drops its
 * records (they are durable). An undo log rather than a page shadow because
 * `crash torn` needs each write's own bounds and the bytes under it, and
 * sluice's unsynced data is mostly appends. (A truncate that shrinks a
 * file holds the cut bytes until the next sync: a 64 MiB pre-allocated
 * segment sealed to its size costs 64 MiB here for that moment.)
 *
 * Metadata (one journal, `struct ffs_op`). create, mkdir, unlink, rmdir
 * and rename are appended to a global ordered journal, as ext4's jbd2 does:
 * what is durable of the metadata is always a prefix of the journal. An
 * operation that removes a file (unlink, rename over) moves it into
 * BACKING/.faultfs-grave/ instead, so a crash can bring it back; the
 * graveyard is emptied when the operation becomes durable. The prefix that
 * is made durable:
 *   - fsync of a directory: up to the last operation that changed it;
 *   - fsync of a file: up to the last operation on its inode (its creation,
 *     a rename of it) -- on ext4 the inode's last change commits the whole
 *     transaction, its name included;
 *   - fdatasync of a file: up to its creation (the data needs the inode).
 * This is the conservative end of ext4 (a commit may cover more, at any
 * time). It answers sluice's patterns as ext4 does: tmp + fdatasync +
 * rename + fsync of the folder is durable after the folder's fsync, and a
 * rename not followed by one is undone. File sizes are data: a size change
 * is durable with the file's own fsync/fdatasync only.
 *
 * A power cut (`crash` on the control file) first rolls every inode's data
 * back through the file descriptor faultfs holds for it (the mode decides
 * how much), then undoes the journal's pending operations newest first,
 * then forgets everything: the filesystem serves on as a disk just booted.
 * Open handles stay valid and see the rolled-back contents (the test kills
 * the process using them anyway). The undo of the data is exact:
 *   crash                every unsynced change undone;
 *   crash reorder SEED   each 4 KiB page touched since the last sync is kept
 *                        (today's contents) or dropped (the synced ones,
 *                        zeros past the synced size) at random, and the
 *                        file's size independently (a separate metadata
 *                        write): only whole pages of the unsynced writes;
 *   crash torn SEED      every unsynced write kept except the last one of
 *                        each file, which is cut at a 512-byte sector
 *                        boundary inside it (the bytes past the cut are the
 *                        old ones; a write inside one sector is dropped).
 *
 * Control: MOUNTPOINT/.faultfs/ctl. Write a command line (several lines in
 * one write are run in order; a bad one fails the write with EINVAL);
 * reading returns `key value` lines (state as of the open). Commands:
 * crash [reorder SEED | torn SEED]; eio fsync|write|read PATTERN once|always
 * (fnmatch, no flags, on the path relative to the root: `events/0/ *.log`
 * without the space); enospc BYTES | enospc off (writes and fallocate fail
 * with ENOSPC once BYTES more were written; the write that crosses the
 * line is short); nofallocate on|off (fallocate answers EOPNOTSUPP, as
 * many FUSE filesystems do); clear (every armed fault removed). Faults
 * stay armed across a crash. A failed fsync (eio) leaves the file's
 * records in place: what it should have made durable is still not.
 *
 * Threads: one. faultfs runs libfuse's single-threaded loop (-s is always
 * passed), so every operation and every control command is applied in one
 * global order, which is the order the model is about (the journal's, a
 * file's undo log); the whole state (`struct ffs`) is touched by that
 * thread only and needs no locks. Throughput is not the point: the backing
 * files are never synced (a crash of the test machine itself is out of
 * scope), so faultfs is faster than the disk it models.
 *
 * Kernel caches are off (direct_io, zero attribute and entry timeouts), so
 * what a reader sees after a crash is the rolled-back backing file.
 */
#define FUSE_USE_VERSION 35

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <fuse.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/types.h>
#include <unistd.h>

#define FFS_PAGE      4096u
#define FFS_SECTOR    512u
#define FFS_GRAVE     ".faultfs-grave"
#define FFS_CTL_DIR   "/.faultfs"
#define FFS_CTL       "/.faultfs/ctl"
#define FFS_BUCKETS   1024u
#define FFS_MAX_FAULT 64u

/* One unsynced change of a file: [off, off+len) written (or, for a
 * truncate, the range between the new and the old size), the size before,
 * and the bytes [off, min(off+len, old_size)) held before. */
struct ffs_rec {
	uint64_t off, len;
	uint64_t old_size;
	uint8_t *old;
	bool trunc;
};

/* What faultfs knows of one backing inode: its undo log, and where it
 * stands in the journal. */
struct ffs_node {
	struct ffs_node *next; /* hash chain */
	ino_t ino;
	uint64_t create_seq; /* journal op that created it; 0: durable */
	uint64_t meta_seq;   /* last journal op on it (for a folder: on its entries) */
	int fd;              /* O_RDWR on the inode while it has records; -1 */
	char *path;          /* its name at its first unsynced change (ctl report) */
	struct ffs_rec *recs;
	size_t n_recs, cap_recs;
	uint64_t unsynced; /* bytes of its records */
};

enum ffs_kind { FFS_CREATE, FFS_MKDIR, FFS_UNLINK, FFS_RMDIR, FFS_RENAME };
static const char *const ffs_kind_name[] = {"create", "mkdir", "unlink", "rmdir", "rename"};

/* A metadata operation not yet durable. Paths are relative to BACKING. */
struct ffs_op {
	uint64_t seq;
	enum ffs_kind kind;
	char *path, *path2; /* rename: from, to */
	char *grave;        /* the removed file's name in the graveyard, or NULL */
	ino_t grave_ino;
	mode_t mode; /* rmdir: the folder's mode */
};

enum ffs_fault_kind { FFS_F_FSYNC, FFS_F_WRITE, FFS_F_READ };
static const char *const ffs_fault_name[] = {"fsync", "write", "read"};

struct ffs_fault {
	enum ffs_fault_kind kind;
	char *pattern;
	bool once;
};

/* An open file: the backing descriptor (always O_RDWR when the file allows
 * it, so its old bytes can be read), or the control file's text. */
struct ffs_fh {
	int fd;
	ino_t ino;
	bool append;
	bool ctl;
	bool root;  /* a folder handle on the root */
	char *text; /* ctl: the state as of open */
	size_t text_len;
};

struct ffs {
	int root;  /* BACKING */
	int grave; /* BACKING/.faultfs-grave */
	struct ffs_node *nodes[FFS_BUCKETS];
	struct ffs_op *ops;
	size_t n_ops, cap_ops;
	uint64_t seq; /* last journal seq handed out */
	struct ffs_fault faults[FFS_MAX_FAULT];
	size_t n_faults;
	int64_t enospc_left; /* -1: off */
	bool nofallocate;
	uint64_t grave_n;
	/* counters, reported by ctl */
	uint64_t writes, write_bytes, fsyncs, fdatasyncs, dir_fsyncs, crashes;
	uint64_t eio_fired, enospc_fired, ops_committed, ops_undone;
	uint64_t last_pages_kept, last_pages_dropped, last_torn_files, last_undone_bytes;
	uint64_t ctl_errors;
};

static struct ffs *ffs_get(void)
{
	return fuse_get_context()->private_data;
}

/* "/a/b" -> "a/b"; "/" -> "." */
static const char *ffs_rel(const char *path)
{
	while (*path == '/')
		path++;
	return *path ? path : ".";
}

static bool ffs_is_ctl(const char *path)
{
	return path && (strcmp(path, FFS_CTL_DIR) == 0 || strcmp(path, FFS_CTL) == 0);
}

static bool ffs_is_grave(const char *path)
{
	const char *r = ffs_rel(path);
	size_t n = strlen(FFS_GRAVE);
	return strncmp(r, FFS_GRAVE, n) == 0 && (r[n] == 0 || r[n] == '/');
}

/* ---- random numbers (seeded, reproducible: splitmix64) ---- */

static uint64_t ffs_rand(uint64_t *s)
{
	uint64_t z = (*s += UINT64_C(0x9e3779b97f4a7c15));
	z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
	z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
	return z ^ (z >> 31);
}

/* ---- I/O helpers ---- */

static int ffs_pread_all(int fd, uint8_t *buf, size_t len, uint64_t off)
{
	size_t got = 0;
	while (got < len) {
		ssize_t n = pread(fd, buf + got, len - got, (off_t)(off + got));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0) { /* past EOF reads as zeros */
			memset(buf + got, 0, len - got);
			break;
		}
		got += (size_t)n;
	}
	return 0;
}

static int ffs_pwrite_all(int fd, const uint8_t *buf, size_t len, uint64_t off)
{
	size_t done = 0;
	while (done < len) {
		ssize_t n = pwrite(fd, buf + done, len - done, (off_t)(off + done));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		done += (size_t)n;
	}
	return 0;
}

static int ffs_size(int fd, uint64_t *size)
{
	struct stat st;
	if (fstat(fd, &st) < 0)
		return -errno;
	*size = (uint64_t)st.st_size;
	return 0;
}

/* The inode of path (relative to BACKING), or 0. */
static ino_t ffs_ino_at(struct ffs *fs, const char *rel)
{
	struct stat st;
	return fstatat(fs->root, rel, &st, AT_SYMLINK_NOFOLLOW) < 0 ? 0 : st.st_ino;
}

/* The inode of the folder holding rel. */
static ino_t ffs_parent_ino(struct ffs *fs, const char *rel)
{
	char buf[PATH_MAX];
	const char *slash = strrchr(rel, '/');
	if (!slash)
		return ffs_ino_at(fs, ".");
	size_t n = (size_t)(slash - rel);
	if (n >= sizeof(buf))
		return 0;
	memcpy(buf, rel, n);
	buf[n] = 0;
	return ffs_ino_at(fs, buf);
}

/* ---- nodes ---- */

static struct ffs_node *ffs_node_find(struct ffs *fs, ino_t ino)
{
	struct ffs_node *n = fs->nodes[ino % FFS_BUCKETS];
	while (n && n->ino != ino)
		n = n->next;
	return n;
}

static struct ffs_node *ffs_node_get(struct ffs *fs, ino_t ino)
{
	struct ffs_node *n = ffs_node_find(fs, ino);
	if (n)
		return n;
	n = calloc(1, sizeof(*n));
	if (!n)
		return NULL;
	n->ino = ino;
	n->fd = -1;
	n->next = fs->nodes[ino % FFS_BUCKETS];
	fs->nodes[ino % FFS_BUCKETS] = n;
	return n;
}

/* The file's changes are durable (or gone): forget them. */
static void ffs_node_clear(struct ffs_node *n)
{
	for (size_t i = 0; i < n->n_recs; i++)
		free(n->recs[i].old);
	free(n->recs);
	n->recs = NULL;
	n->n_recs = n->cap_recs = 0;
	n->unsynced = 0;
	if (n->fd >= 0)
		close(n->fd);
	n->fd = -1;
}

static void ffs_node_drop(struct ffs *fs, ino_t ino)
{
	struct ffs_node **pp = &fs->nodes[ino % FFS_BUCKETS];
	while (*pp && (*pp)->ino != ino)
		pp = &(*pp)->next;
	if (!*pp)
		return;
	struct ffs_node *n = *pp;
	*pp = n->next;
	ffs_node_clear(n);
	free(n->path);
	free(n);
}

/* Appends an undo record for a change about to be made through fd. The
 * caller fills rec's range and old_size; this reads the old bytes.
 * On failure nothing is recorded and the change must not be made. */
static int ffs_node_record(struct ffs *fs, int fd, ino_t ino, const char *path, struct ffs_rec rec)
{
	struct ffs_node *n = ffs_node_get(fs, ino);
	int ret = 0;

	if (!n)
		return -ENOMEM;
	if (n->fd < 0) {
		n->fd = dup(fd);
		if (n->fd < 0)
			return -errno;
	}
	if (n->n_recs == 0 && path) {
		/* The name of its first unsynced change, for the ctl report. */
		free(n->path);
		n->path = strdup(ffs_rel(path));
	}
	if (n->n_recs == n->cap_recs) {
		size_t cap = n->cap_recs ? n->cap_recs * 2 : 16;
		struct ffs_rec *r = realloc(n->recs, cap * sizeof(*r));
		if (!r)
			return -ENOMEM;
		n->recs = r;
		n->cap_recs = cap;
	}
	rec.old = NULL;
	if (rec.off < rec.old_size) {
		uint64_t end = rec.off + rec.len < rec.old_size ? rec.off + rec.len : rec.old_size;
		size_t olen = (size_t)(end - rec.off);
		rec.old = malloc(olen ? olen : 1);
		if (!rec.old)
			return -ENOMEM;
		ret = ffs_pread_all(fd, rec.old, olen, rec.off);
		if (ret < 0) {
			free(rec.old);
			return ret;
		}
	}
	n->recs[n->n_recs++] = rec;
	n->unsynced += rec.len;
	return 0;
}

/* The write that was recorded last came out shorter (or failed: len 0). */
static void ffs_node_shorten_last(struct ffs *fs, ino_t ino, uint64_t len)
{
	struct ffs_node *n = ffs_node_find(fs, ino);
	if (!n || !n->n_recs)
		return;
	struct ffs_rec *r = &n->recs[n->n_recs - 1];
	n->unsynced -= r->len - len;
	r->len = len;
	if (len == 0) {
		free(r->old);
		n->n_recs--;
	}
}

/* ---- the journal ---- */

static void ffs_op_free(struct ffs_op *op)
{
	free(op->path);
	free(op->path2);
	free(op->grave);
}

static struct ffs_op *ffs_op_add(struct ffs *fs, enum ffs_kind kind, const char *path,
                                 const char *path2)
{
	if (fs->n_ops == fs->cap_ops) {
		size_t cap = fs->cap_ops ? fs->cap_ops * 2 : 64;
		struct ffs_op *o = realloc(fs->ops, cap * sizeof(*o));
		if (!o)
			return NULL;
		fs->ops = o;
		fs->cap_ops = cap;
	}
	struct ffs_op *op = &fs->ops[fs->n_ops];
	memset(op, 0, sizeof(*op));
	op->kind = kind;
	op->path = strdup(path);
	op->path2 = path2 ? strdup(path2) : NULL;
	if (!op->path || (path2 && !op->path2)) {
		ffs_op_free(op);
		return NULL;
	}
	op->seq = ++fs->seq;
	fs->n_ops++;
	return op;
}

/* Marks the inode and its folder as changed by op seq. */
static void ffs_touch(struct ffs *fs, ino_t ino, uint64_t seq, bool created)
{
	struct ffs_node *n = ino ? ffs_node_get(fs, ino) : NULL;
	if (!n)
		return;
	n->meta_seq = seq;
	if (created)
		n->create_seq = seq;
}

/* Makes every pending operation up to seq durable: the graveyard lets go
 * of what they removed. */
static void ffs_commit(struct ffs *fs, uint64_t seq)
{
	size_t k = 0;
	while (k < fs->n_ops && fs->ops[k].seq <= seq) {
		struct ffs_op *op = &fs->ops[k];
		if (op->grave) {
			(void)unlinkat(fs->grave, op->grave, 0);
			ffs_node_drop(fs, op->grave_ino);
		}
		ffs_op_free(op);
		fs->ops_committed++;
		k++;
	}
	if (k) {
		memmove(fs->ops, fs->ops + k, (fs->n_ops - k) * sizeof(*fs->ops));
		fs->n_ops -= k;
	}
}

/* Moves rel into the graveyard: its name there, or NULL (errno set). */
static char *ffs_bury(struct ffs *fs, const char *rel)
{
	char name[32];
	snprintf(name, sizeof(name), "%" PRIu64, ++fs->grave_n);
	if (renameat(fs->root, rel, fs->grave, name) < 0)
		return NULL;
	char *s = strdup(name);
	if (!s) {
		(void)renameat(fs->grave, name, fs->root, rel);
		errno = ENOMEM;
	}
	return s;
}

/* ---- faults ---- */

static bool ffs_fault_fires(struct ffs *fs, enum ffs_fault_kind kind, const char *path)
{
	if (!path)
		return false;
	const char *rel = ffs_rel(path);
	for (size_t i = 0; i < fs->n_faults; i++) {
		struct ffs_fault *f = &fs->faults[i];
		if (f->kind != kind || fnmatch(f->pattern, rel, 0) != 0)
			continue;
		fs->eio_fired++;
		if (f->once) {
			free(f->pattern);
			fs->faults[i] = fs->faults[--fs->n_faults];
		}
		return true;
	}
	return false;
}

static void ffs_faults_clear(struct ffs *fs)
{
	for (size_t i = 0; i < fs->n_faults; i++)
		free(fs->faults[i].pattern);
	fs->n_faults = 0;
	fs->enospc_left = -1;
	fs->nofallocate = false;
}

/* ---- the power cut ---- */

enum ffs_mode { FFS_ALL, FFS_REORDER, FFS_TORN };

/* Undoes rec through fd: its old bytes back, the size before it. */
static int ffs_undo_rec(int fd, const struct ffs_rec *r)
{
	int ret = 0;
	if (ftruncate(fd, (off_t)r->old_size) < 0)
		return -errno;
	if (r->old) {
		uint64_t end = r->off + r->len < r->old_size ? r->off + r->len : r->old_size;
		ret = ffs_pwrite_all(fd, r->old, (size_t)(end - r->off), r->off);
	}
	return ret;
}

/* crash torn: the last record cut at a sector boundary inside it. */
static int ffs_crash_torn(struct ffs *fs, struct ffs_node *n, uint64_t *rng)
{
	struct ffs_rec *r = &n->recs[n->n_recs - 1];
	if (r->trunc || r->len == 0)
		return ffs_undo_rec(n->fd, r);
	/* Candidates: off itself (nothing of it kept) and every sector
	 * boundary strictly inside the write. */
	uint64_t first = (r->off / FFS_SECTOR + 1) * FFS_SECTOR;
	uint64_t inside =
	    first < r->off + r->len ? (r->off + r->len - 1 - first) / FFS_SECTOR + 1 : 0;
	uint64_t pick = ffs_rand(rng) % (inside + 1);
	uint64_t cut = pick == 0 ? r->off : first + (pick - 1) * FFS_SECTOR;
	uint64_t end = r->off + r->len;
	int ret;

	fs->last_torn_files++;
	fs->last_undone_bytes += end - cut;
	/* Size: what it was before the write, or up to the cut if the write
	 * grew the file past it. */
	uint64_t size = r->old_size > cut ? r->old_size : cut;
	if (r->old_size < end && ftruncate(n->fd, (off_t)size) < 0)
		return -errno;
	if (r->old && cut < r->old_size) {
		uint64_t oend = end < r->old_size ? end : r->old_size;
		ret = ffs_pwrite_all(n->fd, r->old + (cut - r->off), (size_t)(oend - cut), cut);
		if (ret < 0)
			return ret;
	}
	return 0;
}

/* crash reorder: each touched page kept or dropped, and the size too. */
static int ffs_crash_reorder(struct ffs *fs, struct ffs_node *n, uint64_t *rng)
{
	uint64_t cur, synced = n->recs[0].old_size;
	uint64_t lo = UINT64_MAX, hi = 0;
	uint8_t *img = NULL, *keep = NULL;
	int ret = ffs_size(n->fd, &cur);

	if (ret < 0)
		return ret;
	/* The pages touched, as one span [lo, hi) of pages (sluice's unsynced
	 * ranges are close together: a span keeps this simple). */
	for (size_t i = 0; i < n->n_recs; i++) {
		struct ffs_rec *r = &n->recs[i];
		uint64_t a = r->off / FFS_PAGE, b = (r->off + r->len + FFS_PAGE - 1) / FFS_PAGE;
		if (r->len == 0)
			continue;
		lo = a < lo ? a : lo;
		hi = b > hi ? b : hi;
	}
	if (lo >= hi)
		goto size;
	size_t span = (size_t)((hi - lo) * FFS_PAGE);
	img = malloc(span);
	keep = calloc(hi - lo, 1);
	if (!img || !keep) {
		ret = -ENOMEM;
		goto out;
	}
	/* The synced image of the span: today's bytes, then every record
	 * undone newest first (bytes that did not exist before a record read
	 * as zeros, which is what a dropped page past the old size holds). */
	ret = ffs_pread_all(n->fd, img, span, lo * FFS_PAGE);
	if (ret < 0)
		goto out;
	if (cur < hi * FFS_PAGE && cur > lo * FFS_PAGE)
		memset(img + (cur - lo * FFS_PAGE), 0, (size_t)(hi * FFS_PAGE - cur));
	for (size_t i = n->n_recs; i-- > 0;) {
		struct ffs_rec *r = &n->recs[i];
		uint64_t base = lo * FFS_PAGE, end = r->off + r->len;
		if (r->len == 0)
			continue;
		if (r->old) {
			uint64_t oend = end < r->old_size ? end : r->old_size;
			memcpy(img + (r->off - base), r->old, (size_t)(oend - r->off));
		}
		uint64_t z = r->old_size > r->off ? r->old_size : r->off;
		if (z < end)
			memset(img + (z - base), 0, (size_t)(end - z));
	}
	/* Which pages were touched at all (the span may have gaps). */
	uint8_t *touched = calloc(hi - lo, 1);
	if (!touched) {
		ret = -ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < n->n_recs; i++) {
		struct ffs_rec *r = &n->recs[i];
		if (r->len == 0)
			continue;
		for (uint64_t p = r->off / FFS_PAGE; p * FFS_PAGE < r->off + r->len; p++)
			touched[p - lo] = 1;
	}
	for (uint64_t p = lo; p < hi; p++) {
		if (!touched[p - lo])
			continue;
		keep[p - lo] = ffs_rand(rng) & 1;
		if (keep[p - lo])
			fs->last_pages_kept++;
		else
			fs->last_pages_dropped++;
	}
	free(touched);
size:;
	/* The size is one more write the disk may or may not have done. */
	uint64_t size = (ffs_rand(rng) & 1) ? cur : synced;
	if (ftruncate(n->fd, (off_t)size) < 0) {
		ret = -errno;
		goto out;
	}
	for (uint64_t p = lo; p < hi && img; p++) {
		uint64_t at = p * FFS_PAGE;
		if (keep[p - lo] || at >= size)
			continue;
		size_t len = (size_t)(size - at < FFS_PAGE ? size - at : FFS_PAGE);
		ret = ffs_pwrite_all(n->fd, img + (at - lo * FFS_PAGE), len, at);
		if (ret < 0)
			goto out;
		fs->last_undone_bytes += len;
	}
out:
	free(img);
	free(keep);
	return ret;
}

static int ffs_crash(struct ffs *fs, enum ffs_mode mode, uint64_t seed)
{
	uint64_t rng = seed;
	int ret = 0;

	fs->last_pages_kept = fs->last_pages_dropped = fs->last_torn_files = 0;
	fs->last_undone_bytes = 0;
	/* Data first, through the descriptors held (a file removed or renamed
	 * by a pending operation is still reachable so). Buckets in order:
	 * the same seed gives the same cut for the same history. */
	for (size_t b = 0; b < FFS_BUCKETS; b++) {
		for (struct ffs_node *n = fs->nodes[b]; n; n = n->next) {
			int r = 0;
			if (!n->n_recs || n->fd < 0)
				continue;
			if (mode == FFS_TORN) {
				r = ffs_crash_torn(fs, n, &rng);
			} else if (mode == FFS_REORDER) {
				r = ffs_crash_reorder(fs, n, &rng);
			} else {
				for (size_t i = n->n_recs; i-- > 0 && r == 0;) {
					r = ffs_undo_rec(n->fd, &n->recs[i]);
					fs->last_undone_bytes += n->recs[i].len;
				}
			}
			if (r < 0 && ret == 0)
				ret = r;
		}
	}
	/* Then the metadata, newest first: each undo finds the names as its
	 * operation left them. */
	for (size_t k = fs->n_ops; k-- > 0;) {
		struct ffs_op *op = &fs->ops[k];
		int r = 0;
		switch (op->kind) {
		case FFS_CREATE:
			r = unlinkat(fs->root, op->path, 0);
			break;
		case FFS_MKDIR:
			r = unlinkat(fs->root, op->path, AT_REMOVEDIR);
			break;
		case FFS_UNLINK:
			r = renameat(fs->grave, op->grave, fs->root, op->path);
			break;
		case FFS_RMDIR:
			r = mkdirat(fs->root, op->path, op->mode);
			break;
		case FFS_RENAME:
			r = renameat(fs->root, op->path2, fs->root, op->path);
			if (r == 0 && op->grave)
				r = renameat(fs->grave, op->grave, fs->root, op->path2);
			break;
		}
		if (r < 0) {
			fprintf(stderr, "faultfs: crash: undo %s %s: %s\n", ffs_kind_name[op->kind],
			        op->path, strerror(errno));
			if (ret == 0)
				ret = -errno;
		}
		ffs_op_free(op);
		fs->ops_undone++;
	}
	fs->n_ops = 0;
	for (size_t b = 0; b < FFS_BUCKETS; b++) {
		while (fs->nodes[b])
			ffs_node_drop(fs, fs->nodes[b]->ino);
	}
	fs->crashes++;
	return ret;
}

/* ---- the control file ---- */

static int ffs_ctl_line(struct ffs *fs, char *line)
{
	char *argv[5];
	int argc = 0;
	for (char *t = strtok(line, " \t\r"); t && argc < 5; t = strtok(NULL, " \t\r"))
		argv[argc++] = t;
	if (argc == 0)
		return 0;
	if (strcmp(argv[0], "crash") == 0) {
		if (argc == 1)
			return ffs_crash(fs, FFS_ALL, 0);
		if (argc == 3 &&
		    (strcmp(argv[1], "reorder") == 0 || strcmp(argv[1], "torn") == 0)) {
			char *end;
			uint64_t seed = strtoull(argv[2], &end, 0);
			if (*end)
				return -EINVAL;
			return ffs_crash(fs, argv[1][0] == 'r' ? FFS_REORDER : FFS_TORN, seed);
		}
		return -EINVAL;
	}
	if (strcmp(argv[0], "eio") == 0 && argc == 4) {
		enum ffs_fault_kind kind;
		if (strcmp(argv[1], "fsync") == 0)
			kind = FFS_F_FSYNC;
		else if (strcmp(argv[1], "write") == 0)
			kind = FFS_F_WRITE;
		else if (strcmp(argv[1], "read") == 0)
			kind = FFS_F_READ;
		else
			return -EINVAL;
		bool once = strcmp(argv[3], "once") == 0;
		if (!once && strcmp(argv[3], "always") != 0)
			return -EINVAL;
		if (fs->n_faults == FFS_MAX_FAULT)
			return -ENOSPC;
		char *pat = strdup(argv[2]);
		if (!pat)
			return -ENOMEM;
		fs->faults[fs->n_faults++] = (struct ffs_fault){kind, pat, once};
		return 0;
	}
	if (strcmp(argv[0], "enospc") == 0 && argc == 2) {
		if (strcmp(argv[1], "off") == 0) {
			fs->enospc_left = -1;
			return 0;
		}
		char *end;
		long long n = strtoll(argv[1], &end, 0);
		if (*end || n < 0)
			return -EINVAL;
		fs->enospc_left = n;
		return 0;
	}
	if (strcmp(argv[0], "nofallocate") == 0 && argc == 2) {
		if (strcmp(argv[1], "on") != 0 && strcmp(argv[1], "off") != 0)
			return -EINVAL;
		fs->nofallocate = strcmp(argv[1], "on") == 0;
		return 0;
	}
	if (strcmp(argv[0], "clear") == 0 && argc == 1) {
		ffs_faults_clear(fs);
		return 0;
	}
	return -EINVAL;
}

struct ffs_buf {
	char *p;
	size_t len, cap;
};

static void ffs_printf(struct ffs_buf *b, const char *fmt, ...)
{
	va_list ap;
	for (;;) {
		va_start(ap, fmt);
		int n = vsnprintf(b->p ? b->p + b->len : NULL, b->p ? b->cap - b->len : 0, fmt, ap);
		va_end(ap);
		if (n < 0)
			return;
		if (b->p && b->len + (size_t)n < b->cap) {
			b->len += (size_t)n;
			return;
		}
		size_t cap = (b->cap ? b->cap * 2 : 4096) + (size_t)n;
		char *p = realloc(b->p, cap);
		if (!p)
			return;
		b->p = p;
		b->cap = cap;
	}
}

/* The state as `key value` lines; repeated keys (unsynced, pending, fault)
 * are one line per item. */
static char *ffs_ctl_text(struct ffs *fs, size_t *len)
{
	struct ffs_buf b = {0};
	uint64_t unsynced = 0, files = 0;
	for (size_t i = 0; i < FFS_BUCKETS; i++) {
		for (struct ffs_node *n = fs->nodes[i]; n; n = n->next) {
			if (!n->n_recs)
				continue;
			unsynced += n->unsynced;
			files++;
		}
	}
	ffs_printf(&b, "unsynced_bytes %" PRIu64 "\n", unsynced);
	ffs_printf(&b, "unsynced_files %" PRIu64 "\n", files);
	ffs_printf(&b, "pending_ops %zu\n", fs->n_ops);
	ffs_printf(&b, "writes %" PRIu64 "\n", fs->writes);
	ffs_printf(&b, "write_bytes %" PRIu64 "\n", fs->write_bytes);
	ffs_printf(&b, "fsyncs %" PRIu64 "\n", fs->fsyncs);
	ffs_printf(&b, "fdatasyncs %" PRIu64 "\n", fs->fdatasyncs);
	ffs_printf(&b, "dir_fsyncs %" PRIu64 "\n", fs->dir_fsyncs);
	ffs_printf(&b, "ops_committed %" PRIu64 "\n", fs->ops_committed);
	ffs_printf(&b, "ops_undone %" PRIu64 "\n", fs->ops_undone);
	ffs_printf(&b, "crashes %" PRIu64 "\n", fs->crashes);
	ffs_printf(&b, "faults_fired %" PRIu64 "\n", fs->eio_fired + fs->enospc_fired);
	ffs_printf(&b, "eio_fired %" PRIu64 "\n", fs->eio_fired);
	ffs_printf(&b, "enospc_fired %" PRIu64 "\n", fs->enospc_fired);
	ffs_printf(&b, "enospc_left %" PRId64 "\n", fs->enospc_left);
	ffs_printf(&b, "nofallocate %d\n", fs->nofallocate ? 1 : 0);
	ffs_printf(&b, "ctl_errors %" PRIu64 "\n", fs->ctl_errors);
	ffs_printf(&b, "last_crash_pages_kept %" PRIu64 "\n", fs->last_pages_kept);
	ffs_printf(&b, "last_crash_pages_dropped %" PRIu64 "\n", fs->last_pages_dropped);
	ffs_printf(&b, "last_crash_torn_files %" PRIu64 "\n", fs->last_torn_files);
	ffs_printf(&b, "last_crash_undone_bytes %" PRIu64 "\n", fs->last_undone_bytes);
	for (size_t i = 0; i < fs->n_faults; i++)
		ffs_printf(&b, "fault eio %s %s %s\n", ffs_fault_name[fs->faults[i].kind],
		           fs->faults[i].pattern, fs->faults[i].once ? "once" : "always");
	for (size_t i = 0; i < FFS_BUCKETS; i++) {
		for (struct ffs_node *n = fs->nodes[i]; n; n = n->next) {
			if (n->n_recs)
				ffs_printf(&b, "unsynced %s %" PRIu64 "\n", n->path ? n->path : "?",
				           n->unsynced);
		}
	}
	for (size_t k = 0; k < fs->n_ops; k++)
		ffs_printf(&b, "pending %s %s%s%s\n", ffs_kind_name[fs->ops[k].kind],
		           fs->ops[k].path, fs->ops[k].path2 ? " " : "",
		           fs->ops[k].path2 ? fs->ops[k].path2 : "");
	*len = b.len;
	return b.p;
}

/* ---- FUSE operations ---- */

static void *ffs_init(struct fuse_conn_info *conn, struct fuse_config *cfg)
{
	(void)conn;
	cfg->use_ino = 1;
	cfg->direct_io = 1; /* no page cache to outlive a crash */
	cfg->kernel_cache = 0;
	cfg->attr_timeout = 0;  /* nor sizes */
	cfg->entry_timeout = 0; /* nor names */
	cfg->negative_timeout = 0;
	cfg->hard_remove = 1; /* unlink is ours: no .fuse_hidden renames */
	/* Not nullpath_ok: faults match the path at the time of the call
	 * (sluice renames next.prep while writing through it); an unlinked
	 * file's operations get NULL. */
	return fuse_get_context()->private_data;
}

static int ffs_getattr(const char *path, struct stat *st, struct fuse_file_info *fi)
{
	struct ffs *fs = ffs_get();
	if (fi && fi->fh) {
		struct ffs_fh *fh = (struct ffs_fh *)(uintptr_t)fi->fh;
		if (!fh->ctl && fh->fd >= 0)
			return fstat(fh->fd, st) < 0 ? -errno : 0;
	}
	if (!path)
		return -ENOENT;
	if (ffs_is_ctl(path)) {
		memset(st, 0, sizeof(*st));
		bool dir = strcmp(path, FFS_CTL_DIR) == 0;
		st->st_mode = dir ? S_IFDIR | 0755 : S_IFREG | 0644;
		st->st_nlink = dir ? 2 : 1;
		st->st_ino = UINT64_MAX - (dir ? 1 : 2); /* far from the backing inodes */
		return 0;
	}
	if (ffs_is_grave(path))
		return -ENOENT;
	return fstatat(fs->root, ffs_rel(path), st, AT_SYMLINK_NOFOLLOW) < 0 ? -errno : 0;
}

/* Folders: the handle holds the backing folder open (an unlinked one's
 * path is NULL). */
static int ffs_opendir(const char *path, struct fuse_file_info *fi)
{
	struct ffs *fs = ffs_get();
	struct ffs_fh *fh;
	struct stat st;

	if (!path || ffs_is_grave(path))
		return -ENOENT;
	fh = calloc(1, sizeof(*fh));
	if (!fh)
		return -ENOMEM;
	fh->fd = -1;
	if (strcmp(path, FFS_CTL_DIR) == 0) {
		fh->ctl = true;
	} else {
		fh->fd = openat(fs->root, ffs_rel(path), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (fh->fd < 0 || fstat(fh->fd, &st) < 0) {
			int ret = -errno;
			if (fh->fd >= 0)
				close(fh->fd);
			free(fh);
			return ret;
		}
		fh->ino = st.st_ino;
		fh->root = strcmp(path, "/") == 0;
	}
	fi->fh = (uint64_t)(uintptr_t)fh;
	return 0;
}

static int ffs_readdir(const char *path, void *buf, fuse_fill_dir_t fill, off_t off,
                       struct fuse_file_info *fi, enum fuse_readdir_flags flags)
{
	struct ffs_fh *fh = (struct ffs_fh *)(uintptr_t)fi->fh;
	(void)path;
	(void)off;
	(void)flags;
	if (fh->ctl) {
		fill(buf, ".", NULL, 0, 0);
		fill(buf, "..", NULL, 0, 0);
		fill(buf, "ctl", NULL, 0, 0);
		return 0;
	}
	int fd = dup(fh->fd);
	if (fd < 0)
		return -errno;
	DIR *d = fdopendir(fd);
	if (!d) {
		int ret = -errno;
		close(fd);
		return ret;
	}
	rewinddir(d);
	struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		if (fh->root && strcmp(de->d_name, FFS_GRAVE) == 0)
			continue;
		if (fill(buf, de->d_name, NULL, 0, 0))
			break;
	}
	if (fh->root)
		fill(buf, ".faultfs", NULL, 0, 0);
	closedir(d);
	return 0;
}

static int ffs_releasedir(const char *path, struct fuse_file_info *fi)
{
	struct ffs_fh *fh = (struct ffs_fh *)(uintptr_t)fi->fh;
	(void)path;
	if (fh->fd >= 0)
		close(fh->fd);
	free(fh);
	return 0;
}

static int ffs_fsyncdir(const char *path, int datasync, struct fuse_file_info *fi)
{
	struct ffs *fs = ffs_get();
	struct ffs_fh *fh = (struct ffs_fh *)(uintptr_t)fi->fh;
	(void)datasync;
	if (fh->ctl)
		return 0;
	if (ffs_fault_fires(fs, FFS_F_FSYNC, path))
		return -EIO;
	fs->dir_fsyncs++;
	struct ffs_node *n = ffs_node_find(fs, fh->ino);
	if (n)
		ffs_commit(fs, n->meta_seq);
	return 0;
}

static int ffs_mkdir(const char *path, mode_t mode)
{
	struct ffs *fs = ffs_get();
	const char *rel = ffs_rel(path);
	if (ffs_is_ctl(path) || ffs_is_grave(path))
		return -EPERM;
	if (mkdirat(fs->root, rel, mode) < 0)
		return -errno;
	struct ffs_op *op = ffs_op_add(fs, FFS_MKDIR, rel, NULL);
	if (!op) {
		(void)unlinkat(fs->root, rel, AT_REMOVEDIR);
		return -ENOMEM;
	}
	ffs_touch(fs, ffs_ino_at(fs, rel), op->seq, true);
	ffs_touch(fs, ffs_parent_ino(fs, rel), op->seq, false);
	return 0;
}

/* What rmdir and unlink check first: the control file and the graveyard
 * are not the caller's to remove, and the entry must exist (*st). */
static int ffs_removable(struct ffs *fs, const char *path, const char *rel, struct stat *st)
{
	if (ffs_is_ctl(path) || ffs_is_grave(path))
		return -EPERM;
	return fstatat(fs->root, rel, st, AT_SYMLINK_NOFOLLOW) < 0 ? -errno : 0;
}

static int ffs_rmdir(const char *path)
{
	struct ffs *fs = ffs_get();
	const char *rel = ffs_rel(path);
	struct stat st;
	int ret = ffs_removable(fs, path, rel, &st);
	if (ret < 0)
		return ret;
	ino_t parent = ffs_parent_ino(fs, rel);
	if (unlinkat(fs->root, rel, AT_REMOVEDIR) < 0)
		return -errno;
	struct ffs_op *op = ffs_op_add(fs, FFS_RMDIR, rel, NULL);
	if (!op)
		return -ENOMEM; /* removed, but a crash will not bring it back */
	op->mode = st.st_mode & 07777;
	ffs_touch(fs, parent, op->seq, false);
	ffs_node_drop(fs, st.st_ino);
	return 0;
}

static int ffs_unlink(const char *path)
{
	struct ffs *fs = ffs_get();
	const char *rel = ffs_rel(path);
	struct stat st;
	int ret = ffs_removable(fs, path, rel, &st);
	if (ret < 0)
		return ret;
	if (S_ISDIR(st.st_mode))
		return -EISDIR;
	ino_t parent = ffs_parent_ino(fs, rel);
	char *grave = ffs_bury(fs, rel);
	if (!grave)
		return -errno;
	struct ffs_op *op = ffs_op_add(fs, FFS_UNLINK, rel, NULL);
	if (!op) {
		(void)renameat(fs->grave, grave, fs->root, rel);
		free(grave);
		return -ENOMEM;
	}
	op->grave = grave;
	op->grave_ino = st.st_ino;
	ffs_touch(fs, parent, op->seq, false);
	ffs_touch(fs, st.st_ino, op->seq, false);
	return 0;
}

static int ffs_rename(const char *from, const char *to, unsigned int flags)
{
	struct ffs *fs = ffs_get();
	const char *rf = ffs_rel(from), *rt = ffs_rel(to);
	struct stat sf, st;
	char *grave = NULL;

	if (ffs_is_ctl(from) || ffs_is_ctl(to) || ffs_is_grave(from) || ffs_is_grave(to))
		return -EPERM;
	if (flags & ~(unsigned)RENAME_NOREPLACE)
		return -EINVAL; /* RENAME_EXCHANGE, WHITEOUT: not modelled */
	if (fstatat(fs->root, rf, &sf, AT_SYMLINK_NOFOLLOW) < 0)
		return -errno;
	bool exists = fstatat(fs->root, rt, &st, AT_SYMLINK_NOFOLLOW) == 0;
	if (exists && (flags & RENAME_NOREPLACE))
		return -EEXIST;
	if (exists && (S_ISDIR(st.st_mode) || S_ISDIR(sf.st_mode)))
		return -EOPNOTSUPP; /* over a folder: not modelled (sluice never does) */
	if (exists && st.st_ino == sf.st_ino)
		return 0;
	ino_t pf = ffs_parent_ino(fs, rf), pt = ffs_parent_ino(fs, rt);
	if (exists) {
		grave = ffs_bury(fs, rt);
		if (!grave)
			return -errno;
	}
	if (renameat(fs->root, rf, fs->root, rt) < 0) {
		int ret = -errno;
		if (grave)
			(void)renameat(fs->grave, grave, fs->root, rt);
		free(grave);
		return ret;
	}
	struct ffs_op *op = ffs_op_add(fs, FFS_RENAME, rf, rt);
	if (!op) {
		(void)renameat(fs->root, rt, fs->root, rf);
		if (grave)
			(void)renameat(fs->grave, grave, fs->root, rt);
		free(grave);
		return -ENOMEM;
	}
	op->grave = grave;
	op->grave_ino = exists ? st.st_ino : 0;
	ffs_touch(fs, sf.st_ino, op->seq, false);
	ffs_touch(fs, pf, op->seq, false);
	ffs_touch(fs, pt, op->seq, false);
	if (exists)
		ffs_touch(fs, st.st_ino, op->seq, false);
	return 0;
}

/* Truncates the file open as fd to size, recorded. */
static int ffs_truncate_fd(struct ffs *fs, int fd, const char *path, uint64_t size)
{
	struct stat st;
	if (fstat(fd, &st) < 0)
		return -errno;
	uint64_t cur = (uint64_t)st.st_size;
	if (cur == size)
		return 0;
	struct ffs_rec rec = {.off = size < cur ? size : cur,
	                      .len = size < cur ? cur - size : size - cur,
	                      .old_size = cur,
	                      .trunc = true};
	int ret = ffs_node_record(fs, fd, st.st_ino, path, rec);
	if (ret < 0)
		return ret;
	if (ftruncate(fd, (off_t)size) < 0) {
		ret = -errno;
		ffs_node_shorten_last(fs, st.st_ino, 0);
		return ret;
	}
	return 0;
}

static int ffs_truncate(const char *path, off_t size, struct fuse_file_info *fi)
{
	struct ffs *fs = ffs_get();
	struct ffs_fh *fh = fi ? (struct ffs_fh *)(uintptr_t)fi->fh : NULL;
	if (fh && fh->ctl)
		return 0;
	if (!fh && ffs_is_ctl(path))
		return 0;
	if (fh)
		return ffs_truncate_fd(fs, fh->fd, path, (uint64_t)size);
	if (!path || ffs_is_grave(path))
		return -ENOENT;
	int fd = openat(fs->root, ffs_rel(path), O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	int ret = ffs_truncate_fd(fs, fd, path, (uint64_t)size);
	close(fd);
	return ret;
}

/* Opens the backing file for fi (O_RDWR when it can: the undo log reads
 * old bytes through it), after creating it if `create`. */
static int ffs_open_common(const char *path, mode_t mode, struct fuse_file_info *fi, bool create)
{
	struct ffs *fs = ffs_get();
	const char *rel = ffs_rel(path);
	struct ffs_fh *fh;
	struct stat st;
	int ret = 0;

	if (ffs_is_ctl(path)) {
		if (strcmp(path, FFS_CTL) != 0)
			return -EISDIR;
		fh = calloc(1, sizeof(*fh));
		if (!fh)
			return -ENOMEM;
		fh->ctl = true;
		fh->fd = -1;
		fh->text = ffs_ctl_text(fs, &fh->text_len);
		fi->fh = (uint64_t)(uintptr_t)fh;
		fi->direct_io = 1;
		return 0;
	}
	if (ffs_is_grave(path))
		return create ? -EPERM : -ENOENT;
	bool existed = fstatat(fs->root, rel, &st, AT_SYMLINK_NOFOLLOW) == 0;
	if (create && existed && (fi->flags & O_EXCL))
		return -EEXIST;
	if (!create && !existed)
		return -errno;
	int flags = fi->flags & ~(O_TRUNC | O_APPEND | O_CREAT | O_EXCL | O_ACCMODE | O_DIRECT);
	int fd = openat(fs->root, rel,
	                flags | O_RDWR | O_CLOEXEC | (existed ? 0 : O_CREAT | O_EXCL), mode);
	if (fd < 0 && (errno == EACCES || errno == EISDIR || errno == EROFS))
		fd = openat(fs->root, rel, flags | (fi->flags & O_ACCMODE) | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0) {
		ret = -errno;
		goto fail;
	}
	if (!existed) {
		struct ffs_op *op = ffs_op_add(fs, FFS_CREATE, rel, NULL);
		if (!op) {
			ret = -ENOMEM;
			(void)unlinkat(fs->root, rel, 0);
			goto fail;
		}
		ffs_node_drop(fs, st.st_ino); /* a reused inode number */
		ffs_touch(fs, st.st_ino, op->seq, true);
		ffs_touch(fs, ffs_parent_ino(fs, rel), op->seq, false);
	}
	if ((fi->flags & O_TRUNC) && existed && st.st_size > 0) {
		ret = ffs_truncate_fd(fs, fd, path, 0);
		if (ret < 0)
			goto fail;
	}
	fh = calloc(1, sizeof(*fh));
	if (!fh) {
		ret = -ENOMEM;
		goto fail;
	}
	fh->fd = fd;
	fh->ino = st.st_ino;
	fh->append = fi->flags & O_APPEND;
	fi->fh = (uint64_t)(uintptr_t)fh;
	fi->direct_io = 1;
	return 0;
fail:
	close(fd);
	return ret;
}

static int ffs_open(const char *path, struct fuse_file_info *fi)
{
	if (!path)
		return -ENOENT;
	return ffs_open_common(path, 0, fi, false);
}

static int ffs_create(const char *path, mode_t mode, struct fuse_file_info *fi)
{
	if (!path)
		return -ENOENT;
	return ffs_open_common(path, mode, fi, true);
}

static int ffs_read(const char *path, char *buf, size_t size, off_t off, struct fuse_file_info *fi)
{
	struct ffs *fs = ffs_get();
	struct ffs_fh *fh = (struct ffs_fh *)(uintptr_t)fi->fh;
	if (fh->ctl) {
		if ((size_t)off >= fh->text_len)
			return 0;
		size_t n = fh->text_len - (size_t)off < size ? fh->text_len - (size_t)off : size;
		memcpy(buf, fh->text + off, n);
		return (int)n;
	}
	if (ffs_fault_fires(fs, FFS_F_READ, path))
		return -EIO;
	ssize_t n = pread(fh->fd, buf, size, off);
	return n < 0 ? -errno : (int)n;
}

static int ffs_ctl_write(struct ffs *fs, const char *buf, size_t size)
{
	char *copy = malloc(size + 1);
	int ret = 0;
	if (!copy)
		return -ENOMEM;
	memcpy(copy, buf, size);
	copy[size] = 0;
	char *save = NULL;
	for (char *line = strtok_r(copy, "\n", &save); line && ret == 0;
	     line = strtok_r(NULL, "\n", &save))
		ret = ffs_ctl_line(fs, line);
	free(copy);
	if (ret < 0) {
		fs->ctl_errors++;
		return ret;
	}
	return (int)size;
}

static int ffs_write(const char *path, const char *buf, size_t size, off_t off,
                     struct fuse_file_info *fi)
{
	struct ffs *fs = ffs_get();
	struct ffs_fh *fh = (struct ffs_fh *)(uintptr_t)fi->fh;
	uint64_t cur = 0;
	int ret;

	if (fh->ctl)
		return ffs_ctl_write(fs, buf, size);
	if (ffs_fault_fires(fs, FFS_F_WRITE, path))
		return -EIO;
	if (fs->enospc_left == 0) {
		fs->enospc_fired++;
		return -ENOSPC;
	}
	if (fs->enospc_left > 0 && size > (uint64_t)fs->enospc_left)
		size = (size_t)fs->enospc_left; /* the write that crosses the line is short */
	ret = ffs_size(fh->fd, &cur);
	if (ret < 0)
		return ret;
	if (fh->append)
		off = (off_t)cur;
	struct ffs_rec rec = {.off = (uint64_t)off, .len = size, .old_size = cur};
	ret = ffs_node_record(fs, fh->fd, fh->ino, path, rec);
	if (ret < 0)
		return ret;
	ssize_t n = pwrite(fh->fd, buf, size, off);
	if (n < 0) {
		ret = -errno;
		ffs_node_shorten_last(fs, fh->ino, 0);
		return ret;
	}
	if ((size_t)n < size)
		ffs_node_shorten_last(fs, fh->ino, (uint64_t)n);
	if (fs->enospc_left > 0)
		fs->enospc_left -= n;
	fs->writes++;
	fs->write_bytes += (uint64_t)n;
	return (int)n;
}

static int ffs_fsync(const char *path, int datasync, struct fuse_file_info *fi)
{
	struct ffs *fs = ffs_get();
	struct ffs_fh *fh = (struct ffs_fh *)(uintptr_t)fi->fh;
	if (fh->ctl)
		return 0;
	if (ffs_fault_fires(fs, FFS_F_FSYNC, path))
		return -EIO; /* nothing made durable: the records stay */
	if (datasync)
		fs->fdatasyncs++;
	else
		fs->fsyncs++;
	struct ffs_node *n = ffs_node_find(fs, fh->ino);
	if (!n)
		return 0;
	ffs_node_clear(n);
	ffs_commit(fs, datasync ? n->create_seq : n->meta_seq);
	return 0;
}

static int ffs_fallocate(const char *path, int mode, off_t off, off_t len,
                         struct fuse_file_info *fi)
{
	struct ffs *fs = ffs_get();
	struct ffs_fh *fh = (struct ffs_fh *)(uintptr_t)fi->fh;
	uint64_t cur = 0;
	int ret;

	if (fh->ctl || fs->nofallocate || (mode & ~FALLOC_FL_KEEP_SIZE))
		return -EOPNOTSUPP;
	if (fs->enospc_left >= 0) {
		if ((uint64_t)len > (uint64_t)fs->enospc_left) {
			fs->enospc_fired++;
			return -ENOSPC;
		}
		fs->enospc_left -= len;
	}
	ret = ffs_size(fh->fd, &cur);
	if (ret < 0)
		return ret;
	uint64_t end = (uint64_t)off + (uint64_t)len;
	bool grows = !(mode & FALLOC_FL_KEEP_SIZE) && end > cur;
	if (grows) {
		/* Like an append of zeros: undone to the old size. */
		struct ffs_rec rec = {.off = cur, .len = end - cur, .old_size = cur};
		ret = ffs_node_record(fs, fh->fd, fh->ino, path, rec);
		if (ret < 0)
			return ret;
	}
	if (fallocate(fh->fd, mode, off, len) < 0) {
		ret = -errno;
		if (grows)
			ffs_node_shorten_last(fs, fh->ino, 0);
		return ret;
	}
	return 0;
}

static int ffs_release(const char *path, struct fuse_file_info *fi)
{
	struct ffs_fh *fh = (struct ffs_fh *)(uintptr_t)fi->fh;
	(void)path;
	if (!fh)
		return 0;
	if (fh->fd >= 0)
		close(fh->fd);
	free(fh->text);
	free(fh);
	return 0;
}

static int ffs_statfs(const char *path, struct statvfs *sv)
{
	(void)path;
	return fstatvfs(ffs_get()->root, sv) < 0 ? -errno : 0;
}

static int ffs_chmod(const char *path, mode_t mode, struct fuse_file_info *fi)
{
	struct ffs *fs = ffs_get();
	struct ffs_fh *fh = fi ? (struct ffs_fh *)(uintptr_t)fi->fh : NULL;
	if (fh && !fh->ctl)
		return fchmod(fh->fd, mode) < 0 ? -errno : 0;
	if (!path || ffs_is_ctl(path) || ffs_is_grave(path))
		return -EPERM;
	return fchmodat(fs->root, ffs_rel(path), mode, 0) < 0 ? -errno : 0;
}

static int ffs_chown(const char *path, uid_t uid, gid_t gid, struct fuse_file_info *fi)
{
	struct ffs *fs = ffs_get();
	struct ffs_fh *fh = fi ? (struct ffs_fh *)(uintptr_t)fi->fh : NULL;
	if (fh && !fh->ctl)
		return fchown(fh->fd, uid, gid) < 0 ? -errno : 0;
	if (!path || ffs_is_ctl(path) || ffs_is_grave(path))
		return -EPERM;
	return fchownat(fs->root, ffs_rel(path), uid, gid, AT_SYMLINK_NOFOLLOW) < 0 ? -errno : 0;
}

static int ffs_utimens(const char *path, const struct timespec tv[2], struct fuse_file_info *fi)
{
	struct ffs *fs = ffs_get();
	struct ffs_fh *fh = fi ? (struct ffs_fh *)(uintptr_t)fi->fh : NULL;
	if (fh && fh->ctl)
		return 0;
	if (fh)
		return futimens(fh->fd, tv) < 0 ? -errno : 0;
	if (!path || ffs_is_grave(path))
		return -ENOENT;
	if (ffs_is_ctl(path))
		return 0;
	return utimensat(fs->root, ffs_rel(path), tv, AT_SYMLINK_NOFOLLOW) < 0 ? -errno : 0;
}

static const struct fuse_operations ffs_ops = {
    .init = ffs_init,
    .getattr = ffs_getattr,
    .opendir = ffs_opendir,
    .readdir = ffs_readdir,
    .releasedir = ffs_releasedir,
    .fsyncdir = ffs_fsyncdir,
    .mkdir = ffs_mkdir,
    .rmdir = ffs_rmdir,
    .unlink = ffs_unlink,
    .rename = ffs_rename,
    .truncate = ffs_truncate,
    .open = ffs_open,
    .create = ffs_create,
    .read = ffs_read,
    .write = ffs_write,
    .fsync = ffs_fsync,
    .fallocate = ffs_fallocate,
    .release = ffs_release,
    .statfs = ffs_statfs,
    .chmod = ffs_chmod,
    .chown = ffs_chown,
    .utimens = ffs_utimens,
};

/* Empties the graveyard left by an earlier mount: whatever is there was
 * removed by operations a previous run treated as durable at unmount. */
static int ffs_grave_reset(int root)
{
	int fd = openat(root, FFS_GRAVE, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0 && errno == ENOENT) {
		if (mkdirat(root, FFS_GRAVE, 0700) < 0)
			return -errno;
		fd = openat(root, FFS_GRAVE, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	}
	if (fd < 0)
		return -errno;
	int scan = dup(fd);
	DIR *d = scan >= 0 ? fdopendir(scan) : NULL;
	if (!d) {
		close(fd);
		if (scan >= 0)
			close(scan);
		return -EIO;
	}
	struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
			(void)unlinkat(fd, de->d_name, 0);
	}
	closedir(d);
	return fd;
}

/* Everything the model holds, at exit (a clean unmount keeps what it has:
 * the graveyard is emptied at the next start). */
static void ffs_free(struct ffs *fs)
{
	for (size_t b = 0; b < FFS_BUCKETS; b++) {
		while (fs->nodes[b])
			ffs_node_drop(fs, fs->nodes[b]->ino);
	}
	for (size_t k = 0; k < fs->n_ops; k++)
		ffs_op_free(&fs->ops[k]);
	free(fs->ops);
	ffs_faults_clear(fs);
}

int main(int argc, char **argv)
{
	struct ffs fs = {.root = -1, .grave = -1, .enospc_left = -1};
	char *fargv[64];
	int fargc = 0, ret = 1;

	if (argc < 3 || argc > 60 || argv[1][0] == '-') {
		fprintf(stderr, "usage: faultfs BACKING MOUNTPOINT [-f] [libfuse options]\n");
		return 2;
	}
	fs.root = open(argv[1], O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fs.root < 0) {
		fprintf(stderr, "faultfs: %s: %s\n", argv[1], strerror(errno));
		return 1;
	}
	fs.grave = ffs_grave_reset(fs.root);
	if (fs.grave < 0) {
		fprintf(stderr, "faultfs: %s/%s: %s\n", argv[1], FFS_GRAVE, strerror(-fs.grave));
		goto out;
	}
	fargv[fargc++] = argv[0];
	fargv[fargc++] = argv[2];
	fargv[fargc++] = "-s"; /* one thread: the model's order (see the top) */
	fargv[fargc++] = "-o";
	fargv[fargc++] = "fsname=faultfs,subtype=faultfs";
	for (int i = 3; i < argc; i++)
		fargv[fargc++] = argv[i];
	fargv[fargc] = NULL;
	ret = fuse_main(fargc, fargv, &ffs_ops, &fs);
	ffs_free(&fs);
out:
	close(fs.root);
	if (fs.grave >= 0)
		close(fs.grave);
	return ret;
}
