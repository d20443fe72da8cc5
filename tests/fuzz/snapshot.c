/*
 * Fuzz target: a projection snapshot file read back after a crash, a disk
 * fault or a copy gone wrong (project/snap_format.h).
 *
 * Each run: a valid snapshot (generation 1) is written through the store,
 * then the input is written beside it as generation 2, and the store is
 * opened again and asked for the newest valid one. Byte 0 picks the mode,
 * the rest is the file. Bit 0 of byte 0 set: magic, version, generation,
 * payload length and the CRC32C trailer are patched to match (mark count
 * clamped to what the bytes hold), so the fuzzer gets past the checks of a
 * whole file and reaches what follows them; clear: the bytes as they are.
 *
 * Checked: loading never crashes or leaks; it returns generation 2 or falls
 * back to generation 1 exactly (marks and payload), counting generation 2 as
 * bad with a message naming the file; an accepted generation 2 has its
 * payload inside the file, and written again through the store it loads
 * back with the same marks and payload.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/base.h"
#include "log/batch.h" /* sl_crc32c */
#include "project/project.h"
#include "project/snap_format.h"

#define CHECK(x)                                                                                   \
	do {                                                                                       \
		if (!(x)) {                                                                        \
			fprintf(stderr, "snapshot.c:%d: check failed: %s\n", __LINE__, #x);        \
			abort();                                                                   \
		}                                                                                  \
	} while (0)

static char dir[64];
static const struct sl_snap_mark g1_marks[] = {{3, 1000}, {SL_SNAP_MARK_EMIT_SEQ, 17}};
static const char g1_payload[] = "generation one";

/* Removes the store's folder and what is in it (no subfolders). */
static void clean(void)
{
	DIR *d = opendir(dir);
	struct dirent *de;

	if (!d)
		return;
	while ((de = readdir(d)))
		if (de->d_name[0] != '.')
			unlinkat(dirfd(d), de->d_name, 0);
	closedir(d);
	rmdir(dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	/* tmpfs when there is one: the store syncs every file it writes. */
	snprintf(dir, sizeof(dir), "%s/sluice-fuzz-snap-%d",
	         access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp", (int)getpid());
	return 0;
}

static struct sl_snap_store *open_store(void)
{
	struct sl_snap_store_opts o = {.dir = dir, .keep = 3};
	struct sl_snap_store *s = NULL;
	char err[512];

	CHECK(sl_snap_store_open(&o, &s, err, sizeof(err)) == 0);
	return s;
}

/* The input as a whole-looking file: header fields that make it pass the
 * file-level checks, whatever its marks and payload say. */
static uint8_t *patched(const uint8_t *d, size_t n, size_t *len)
{
	size_t size = n < SL_SNAP_HDR + SL_SNAP_TRAILER ? SL_SNAP_HDR + SL_SNAP_TRAILER : n;
	uint8_t *b = calloc(1, size);

	CHECK(b);
	memcpy(b, d, n);
	size_t room = size - SL_SNAP_HDR - SL_SNAP_TRAILER;
	uint32_t marks = sl_get_le32(b + SL_SNAP_OFF_NMARKS) % (uint32_t)(room / SL_SNAP_MARK + 1);
	sl_put_le32(b + SL_SNAP_OFF_MAGIC, SL_SNAP_MAGIC);
	sl_put_le32(b + SL_SNAP_OFF_VERSION, SL_SNAP_VERSION);
	sl_put_le32(b + SL_SNAP_OFF_NMARKS, marks);
	sl_put_le64(b + SL_SNAP_OFF_GEN, 2);
	sl_put_le64(b + SL_SNAP_OFF_PLEN, room - (size_t)marks * SL_SNAP_MARK);
	sl_put_le32(b + size - SL_SNAP_TRAILER, sl_crc32c(0, b, size - SL_SNAP_TRAILER));
	*len = size;
	return b;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct sl_snap_store *s;
	struct sl_snap snap;
	uint8_t *file = NULL;
	size_t len = size ? size - 1 : 0;
	uint32_t n_bad = 0;
	char err[512] = "", path[128];

	s = open_store();
	CHECK(sl_snap_store_write(s, g1_marks, 2, g1_payload, sizeof(g1_payload), err,
	                          sizeof(err)) == 0);
	CHECK(sl_snap_store_next_gen(s) == 2);
	sl_snap_store_close(s);

	if (size && (data[0] & 1))
		file = patched(data + 1, len, &len);
	snprintf(path, sizeof(path), "%s/%020d.snap", dir, 2);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	CHECK(fd >= 0);
	CHECK(write(fd, file ? file : data + (size ? 1 : 0), len) == (ssize_t)len);
	close(fd);
	free(file);

	s = open_store();
	err[0] = 0;
	CHECK(sl_snap_store_load(s, UINT64_MAX, &snap, &n_bad, err, sizeof(err)) == 0);
	if (snap.generation == 1) {
		/* Refused: counted, named, and the older one served whole. */
		CHECK(n_bad == 1);
		CHECK(strstr(err, "00000000000000000002.snap") != NULL);
		CHECK(snap.n_marks == 2);
		for (uint32_t i = 0; i < 2; i++)
			CHECK(snap.marks[i].partition == g1_marks[i].partition &&
			      snap.marks[i].offset == g1_marks[i].offset);
		CHECK(snap.payload_len == sizeof(g1_payload) &&
		      !memcmp(snap.payload, g1_payload, sizeof(g1_payload)));
		sl_snap_release(&snap);
		sl_snap_store_close(s);
		clean();
		return 0;
	}
	CHECK(snap.generation == 2 && n_bad == 0);
	CHECK(snap.n_marks <= SL_SNAP_MAX_MARKS);
	CHECK((size_t)SL_SNAP_HDR + (size_t)snap.n_marks * SL_SNAP_MARK + snap.payload_len +
	          SL_SNAP_TRAILER ==
	      len);
	/* Written again, it reads back the same. */
	struct sl_snap again;
	CHECK(sl_snap_store_write(s, snap.marks, snap.n_marks, snap.payload, snap.payload_len, err,
	                          sizeof(err)) == 0);
	CHECK(sl_snap_store_load(s, UINT64_MAX, &again, NULL, err, sizeof(err)) == 0);
	CHECK(again.generation == 3 && again.n_marks == snap.n_marks &&
	      again.payload_len == snap.payload_len);
	for (uint32_t i = 0; i < snap.n_marks; i++)
		CHECK(again.marks[i].partition == snap.marks[i].partition &&
		      again.marks[i].offset == snap.marks[i].offset);
	CHECK(!snap.payload_len || !memcmp(again.payload, snap.payload, snap.payload_len));
	sl_snap_release(&again);
	sl_snap_release(&snap);
	sl_snap_store_close(s);
	clean();
	return 0;
}
