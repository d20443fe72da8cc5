/* The producer registry: see the second block of dedup.h. */
#include "dedup/dedup.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include "base/base.h"
#include "log/log.h"

#define SL__REG_MAGIC   0x52504c53u /* "SLPR" little endian */
#define SL__REG_VERSION 1u
#define SL__REG_BYTES   20u /* u32 magic, u32 version, u64 id end, u32 crc32c */
/* HMAC-SHA256 key: as long as the hash, as RFC 2104 advises. */
#define SL__KEY_BYTES 32u
/* Entries come in chunks that never move, so a struct sl_producer keeps its
 * address while the registry grows. 256 x 64 B = 16 KiB. */
#define SL__CHUNK 256u

struct sl_producers {
	pthread_mutex_t lock;
	char *path;
	/* The key of the producers' proofs (dedup.h), from <path>.key, or
	 * the cluster's (sl_producers_set_key, before any session here:
	 * hellos wait for set_base, which comes after it). */
	uint8_t key[SL__KEY_BYTES];
	uint64_t next_id; /* the next fresh id */
	/* Cluster mode: fresh ids come from this node's range (its ordinal's,
	 * sl_producers_set_base); `need_base` refuses them until it is known. */
	bool need_base;
	uint64_t base, base_end; /* cluster mode: this node's range (0, 0: alone) */
	uint64_t id_end;         /* durable: ids below it may have been handed out */
	uint32_t count;
	uint32_t max;
	/* Forgetting (dedup.h): slots ever used in the chunks (count is the
	 * live ones), the free ones, the highest epoch of a forgotten id (a
	 * forgotten id that comes back starts above it: a partition may still
	 * hold it), the idle time past which an entry without sessions goes,
	 * and when that was last looked for. */
	uint32_t used;
	struct sl_producer *free_list;
	uint32_t epoch_floor;
	uint64_t forgotten;
	uint64_t expiry_ms;
	uint64_t swept_ms;
	/* id -> entry, open addressing; count <= icap / 2 */
	struct sl_producer **index;
	uint64_t icap;
	struct sl_producer **chunks;
	size_t nchunks, chunks_cap;
};

static uint64_t sl__slot(uint64_t id, uint64_t icap)
{
	return (id * UINT64_C(0x9e3779b97f4a7c15)) >> (64 - __builtin_ctzll(icap));
}

static struct sl_producer **sl__index_pos(struct sl_producer **index, uint64_t icap, uint64_t id)
{
	uint64_t i = sl__slot(id, icap);

	for (;; i = (i + 1) & (icap - 1))
		if (!index[i] || index[i]->id == id)
			return &index[i];
}

static struct sl_producer *sl__reg_find(struct sl_producers *r, uint64_t id)
{
	return *sl__index_pos(r->index, r->icap, id);
}

/* Whether fresh ids of this node may equal `id` (dedup.h, cluster mode):
 * alone, every id; in a cluster, only those of its range, and none while
 * the range is not known. */
static bool sl__own_id(const struct sl_producers *r, uint64_t id)
{
	if (r->need_base)
		return false;
	return !r->base_end || (id >= r->base && id < r->base_end);
}

static bool sl__named_id(uint64_t id)
{
	return id >= SL_PRODUCERS_NAMED_BASE && id < SL_PRODUCERS_NAMED_END;
}

static bool sl__idle(const struct sl_producer *p)
{
	return !atomic_load_explicit(&p->sessions, memory_order_acquire);
}

/*
 * Forgets every entry without a session whose idle time began before `cut`
 * (and, with `left`, as many of those that began exactly at `at`): out of
 * the index (rebuilt: linear probing has no cheap delete), onto the free
 * list. Under the lock. -ENOMEM leaves everything as it was.
 */
static int sl__reg_forget(struct sl_producers *r, uint64_t cut, uint64_t at, uint64_t left)
{
	struct sl_producer **ni = calloc(r->icap, sizeof(*ni));

	if (!ni)
		return -ENOMEM;
	for (uint64_t i = 0; i < r->icap; i++) {
		struct sl_producer *p = r->index[i];
		if (!p)
			continue;
		uint64_t idle = atomic_load_explicit(&p->idle_since_ms, memory_order_relaxed);
		bool go = sl__idle(p) && (idle < cut || (idle == at && left && left--));
		if (!go) {
			*sl__index_pos(ni, r->icap, p->id) = p;
			continue;
		}
		uint32_t e = atomic_load_explicit(&p->epoch, memory_order_relaxed);
		if (e > r->epoch_floor)
			r->epoch_floor = e;
		p->id = 0;
		p->next_free = r->free_list;
		r->free_list = p;
		r->count--;
		r->forgotten++;
	}
	free(r->index);
	r->index = ni;
	return 0;
}

/* Full: the least recently idle eighth of the entries without a session
 * goes. -ENOSPC when every entry has a live session. */
static int sl__reg_evict(struct sl_producers *r)
{
	uint64_t *v = malloc((size_t)r->count * sizeof(*v)), m = 0, k, at, less = 0;
	int ret;

	if (!v)
		return -ENOMEM;
	for (uint64_t i = 0; i < r->icap; i++)
		if (r->index[i] && sl__idle(r->index[i]))
			v[m++] =
			    atomic_load_explicit(&r->index[i]->idle_since_ms, memory_order_relaxed);
	if (!m) {
		free(v);
		return -ENOSPC;
	}
	k = r->max / 8 ? r->max / 8 : 1;
	if (k > m)
		k = m;
	at = sl_select_u64(v, m, k - 1);
	for (uint64_t i = 0; i < m; i++)
		less += v[i] < at;
	free(v);
	ret = sl__reg_forget(r, at, at, k - less);
	return ret;
}

/* At most once a second, at a hello: entries idle past the expiry go. */
static void sl__reg_expire(struct sl_producers *r, uint64_t now)
{
	if (!r->expiry_ms || now < r->swept_ms + 1000 || now <= r->expiry_ms)
		return;
	r->swept_ms = now;
	(void)sl__reg_forget(r, now - r->expiry_ms, 0, 0); /* no memory: next time */
}

/* A new entry for an id not in the registry. */
static int sl__reg_add(struct sl_producers *r, uint64_t id, struct sl_producer **out)
{
	struct sl_producer *p;
	int ret;

	if (r->count >= r->max && (ret = sl__reg_evict(r)) < 0)
		return ret;
	if (2 * ((uint64_t)r->count + 1) > r->icap) {
		uint64_t ncap = r->icap * 2;
		struct sl_producer **ni = calloc(ncap, sizeof(*ni));
		if (!ni)
			return -ENOMEM;
		for (uint64_t i = 0; i < r->icap; i++)
			if (r->index[i])
				*sl__index_pos(ni, ncap, r->index[i]->id) = r->index[i];
		free(r->index);
		r->index = ni;
		r->icap = ncap;
	}
	if (r->free_list) {
		p = r->free_list;
		r->free_list = p->next_free;
		goto fill;
	}
	if (r->used == r->nchunks * SL__CHUNK) {
		if (r->nchunks == r->chunks_cap) {
			size_t bytes = r->chunks_cap * sizeof(*r->chunks);
			void *nc = sl_grow(r->chunks, &bytes, (r->nchunks + 1) * sizeof(*r->chunks),
			                   16 * sizeof(*r->chunks));
			if (!nc)
				return -ENOMEM;
			r->chunks = nc;
			r->chunks_cap = bytes / sizeof(*r->chunks);
		}
		p = aligned_alloc(64, SL__CHUNK * sizeof(*p));
		if (!p)
			return -ENOMEM;
		r->chunks[r->nchunks++] = p;
	}
	p = &r->chunks[r->used / SL__CHUNK][r->used % SL__CHUNK];
	r->used++;
fill:
	memset(p, 0, sizeof(*p));
	p->id = id;
	atomic_init(&p->epoch, 0);
	atomic_init(&p->next_seq, 0);
	atomic_init(&p->sessions, 0);
	atomic_init(&p->idle_since_ms, sl_wall_ms());
	*sl__index_pos(r->index, r->icap, id) = p;
	r->count++;
	*out = p;
	return 0;
}

/*
 * Makes `end` the durable mark: tmp, fdatasync, rename, fsync of the folder.
 * Only after all four may an id below `end` be handed out: a crash before
 * leaves the old file (and the old, lower mark), after it the new one.
 */
static int sl__reg_persist(struct sl_producers *r, uint64_t end)
{
	uint8_t b[SL__REG_BYTES];

	sl_put_le32(b, SL__REG_MAGIC);
	sl_put_le32(b + 4, SL__REG_VERSION);
	sl_put_le64(b + 8, end);
	sl_put_le32(b + 16, sl_crc32c(0, b, 16));
	struct iovec iov = {b, sizeof(b)};
	int ret = sl_file_replace(AT_FDCWD, r->path, &iov, 1, 0, NULL, NULL);
	if (ret == 0)
		r->id_end = end;
	return ret;
}

/* Ids below `end` may be handed out once this returns 0. */
static int sl__reg_reserve(struct sl_producers *r, uint64_t end)
{
	if (end <= r->id_end)
		return 0;
	/* A block at a time: one file write per 65536 fresh ids. */
	return sl__reg_persist(r, end - 1 + SL_PRODUCERS_ID_BLOCK);
}

static int sl__reg_load(struct sl_producers *r, char *err, size_t errlen)
{
	uint8_t b[SL__REG_BYTES + 1];
	size_t n = 0;
	int fd = open(r->path, O_RDONLY | O_CLOEXEC), ret = 0;
	uint64_t end = 0;

	if (fd < 0) {
		if (errno == ENOENT)
			return 0; /* a new data folder */
		ret = -errno;
		snprintf(err, errlen, "%s: %s", r->path, strerror(-ret));
		return ret;
	}
	/* One byte more than the format, to see a longer file. */
	while (n < sizeof(b)) {
		ssize_t k = read(fd, b + n, sizeof(b) - n);
		if (k < 0) {
			if (errno == EINTR)
				continue;
			ret = -errno;
			snprintf(err, errlen, "%s: %s", r->path, strerror(-ret));
			goto out;
		}
		if (k == 0)
			break;
		n += (size_t)k;
	}
	ret = -SL_ECORRUPT;
	if (n != SL__REG_BYTES) {
		snprintf(err, errlen, "%s: %s (%zu bytes, want %u)", r->path,
		         n < SL__REG_BYTES ? "truncated" : "too long", n, SL__REG_BYTES);
		goto out;
	}
	uint32_t magic = sl_get_le32(b), version = sl_get_le32(b + 4), crc = sl_get_le32(b + 16);
	end = sl_get_le64(b + 8);
	if (magic != SL__REG_MAGIC) {
		snprintf(err, errlen, "%s: not a producer registry (bad magic)", r->path);
		goto out;
	}
	if (version != SL__REG_VERSION) {
		snprintf(err, errlen, "%s: producer registry version %u not supported (want %u)",
		         r->path, version, SL__REG_VERSION);
		goto out;
	}
	if (crc != sl_crc32c(0, b, 16)) {
		snprintf(err, errlen, "%s: producer registry checksum mismatch", r->path);
		goto out;
	}
	if (!end || end > SL_PRODUCERS_ID_LIMIT + SL_PRODUCERS_ID_BLOCK) {
		snprintf(err, errlen, "%s: producer id mark %llu out of range", r->path,
		         (unsigned long long)end);
		goto out;
	}
	/* Ids below the mark may have been handed out before a crash. */
	r->next_id = end;
	r->id_end = end;
	ret = 0;
out:
	close(fd);
	return ret;
}

/*
 * Loads <path>.key, or makes one: 32 random bytes, written durably (and
 * owner-readable only) before any proof can be handed out. A key file of
 * another length is -SL_ECORRUPT: a guessed key would refuse every
 * producer's proof, or accept forged ones.
 */
static int sl__key_load(struct sl_producers *r, char *err, size_t errlen)
{
	char kpath[4096];
	uint8_t b[SL__KEY_BYTES + 1];
	int ret;

	snprintf(kpath, sizeof(kpath), "%s.key", r->path);
	int fd = open(kpath, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0 && errno != ENOENT) {
		ret = -errno;
		snprintf(err, errlen, "%s: %s", kpath, strerror(-ret));
		return ret;
	}
	if (fd >= 0) {
		ssize_t n = read(fd, b, sizeof(b));
		close(fd);
		if (n != SL__KEY_BYTES) {
			snprintf(err, errlen, "%s: %zd bytes, a producer key is %u", kpath, n,
			         SL__KEY_BYTES);
			return n < 0 ? -errno : -SL_ECORRUPT;
		}
		memcpy(r->key, b, SL__KEY_BYTES);
		return 0;
	}
	for (size_t got = 0; got < SL__KEY_BYTES;) {
		ssize_t n = getrandom(r->key + got, SL__KEY_BYTES - got, 0);
		if (n < 0 && errno != EINTR) {
			ret = -errno;
			snprintf(err, errlen, "getrandom: %s", strerror(-ret));
			return ret;
		}
		if (n > 0)
			got += (size_t)n;
	}
	struct iovec iov = {r->key, SL__KEY_BYTES};
	ret = sl_file_replace(AT_FDCWD, kpath, &iov, 1, SL_FILE_PRIVATE, NULL, NULL);
	if (ret < 0)
		snprintf(err, errlen, "%s: %s", kpath, strerror(-ret));
	return ret;
}

void sl_producers_proof(const struct sl_producers *r, uint64_t id,
                        uint8_t out[SL_PRODUCER_PROOF_LEN])
{
	uint8_t msg[8], md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;

	sl_put_le64(msg, id);
	if (!HMAC(EVP_sha256(), r->key, SL__KEY_BYTES, msg, sizeof(msg), md, &mdlen) ||
	    mdlen < SL_PRODUCER_PROOF_LEN) {
		/* Cannot happen with a working libcrypto; a proof of all ones
		 * is refused below, so nothing is accepted by mistake. */
		memset(out, 0xff, SL_PRODUCER_PROOF_LEN);
		return;
	}
	memcpy(out, md, SL_PRODUCER_PROOF_LEN);
}

bool sl_producers_proof_ok(const struct sl_producers *r, uint64_t id, const uint8_t *proof,
                           size_t len)
{
	uint8_t want[SL_PRODUCER_PROOF_LEN], ones[SL_PRODUCER_PROOF_LEN];

	if (len != SL_PRODUCER_PROOF_LEN)
		return false;
	sl_producers_proof(r, id, want);
	memset(ones, 0xff, sizeof(ones));
	return CRYPTO_memcmp(want, proof, len) == 0 && CRYPTO_memcmp(want, ones, len) != 0;
}

int sl_producers_open(const char *path, struct sl_producers **out, char *err, size_t errlen)
{
	struct sl_producers *r = calloc(1, sizeof(*r));
	char dummy[1];
	int ret;

	if (!err || !errlen) {
		err = dummy;
		errlen = sizeof(dummy);
	}
	err[0] = '\0';
	if (!r)
		return -ENOMEM;
	r->path = strdup(path);
	r->icap = 64;
	r->index = calloc(r->icap, sizeof(*r->index));
	if (!r->path || !r->index) {
		ret = -ENOMEM;
		goto out;
	}
	if ((ret = pthread_mutex_init(&r->lock, NULL)) != 0) {
		ret = -ret;
		free(r->index);
		free(r->path);
		free(r);
		return ret;
	}
	r->next_id = 1;
	r->id_end = 1;
	r->max = SL_PRODUCERS_MAX_DEFAULT;
	ret = sl__reg_load(r, err, errlen);
	if (ret < 0)
		goto fail;
	ret = sl__key_load(r, err, errlen);
	if (ret < 0)
		goto fail;
	*out = r;
	return 0;
fail:
	pthread_mutex_destroy(&r->lock);
out:
	free(r->index);
	free(r->path);
	free(r);
	if (ret == -ENOMEM && !err[0])
		snprintf(err, errlen, "out of memory");
	return ret;
}

void sl_producers_close(struct sl_producers *r)
{
	if (!r)
		return;
	OPENSSL_cleanse(r->key, sizeof(r->key));
	for (size_t i = 0; i < r->nchunks; i++)
		free(r->chunks[i]);
	free(r->chunks);
	free(r->index);
	free(r->path);
	pthread_mutex_destroy(&r->lock);
	free(r);
}

int sl_producers_seed(struct sl_producers *r, uint64_t id, uint32_t epoch, uint64_t last)
{
	struct sl_producer *p;
	int ret = 0;

	/* A pipeline stage (dedup.h): not a session, nothing to remember. */
	if (id >= SL_PRODUCERS_PIPE_ID_BASE && id < SL_PRODUCERS_PIPE_ID_END &&
	    last < SL_DEDUP_SEQ_LIMIT)
		return 0;
	if (!id || id >= SL_PRODUCERS_ID_LIMIT || last >= SL_DEDUP_SEQ_LIMIT)
		return -EINVAL;
	pthread_mutex_lock(&r->lock);
	p = sl__reg_find(r, id);
	if (!p && (ret = sl__reg_add(r, id, &p)) < 0)
		goto out;
	if (epoch > atomic_load_explicit(&p->epoch, memory_order_relaxed))
		atomic_store_explicit(&p->epoch, epoch, memory_order_release);
	sl_producer_accepted(p, last + 1);
	if (atomic_load_explicit(&p->next_seq, memory_order_relaxed) == last + 1)
		atomic_store_explicit(&p->seeded, last + 1, memory_order_relaxed);
	/* Not made durable here: the next fresh id reserves a block from
	 * next_id on, which covers this one. A name's id is nobody's fresh
	 * id: it must not drag numbering up to 2^61. */
	if (id >= r->next_id && sl__own_id(r, id) && !sl__named_id(id))
		r->next_id = id + 1;
out:
	pthread_mutex_unlock(&r->lock);
	return ret;
}

/* A new session of p (under the lock): the next epoch, which fences every
 * older one, and one more session holding p. -EOVERFLOW at the last epoch. */
static int sl__reg_session(struct sl_producer *p, struct sl_producer **out, uint32_t *epoch,
                           uint64_t *next_seq)
{
	uint32_t e = atomic_load_explicit(&p->epoch, memory_order_relaxed);

	if (e == UINT32_MAX)
		return -EOVERFLOW;
	/* Release: a reactor that sees the new epoch (acquire) sees a fenced
	 * old session from then on. */
	atomic_store_explicit(&p->epoch, e + 1, memory_order_release);
	atomic_fetch_add_explicit(&p->sessions, 1, memory_order_relaxed);
	*out = p;
	*epoch = e + 1;
	*next_seq = atomic_load_explicit(&p->next_seq, memory_order_relaxed);
	return 0;
}

int sl_producers_hello(struct sl_producers *r, uint64_t want_id, const uint8_t *proof,
                       size_t proof_len, struct sl_producer **out, uint32_t *epoch,
                       uint64_t *next_seq)
{
	struct sl_producer *p = NULL;
	uint64_t id = want_id;
	int ret = 0;

	/* The named range only by name: otherwise a numbered Hello could
	 * take a name's session (no proof is needed for an unknown id). */
	if (want_id >= SL_PRODUCERS_ID_LIMIT || sl__named_id(want_id))
		return -EINVAL;
	pthread_mutex_lock(&r->lock);
	/* Cluster mode: neither the range of fresh ids nor the proofs' key
	 * (the cluster's) is known before set_base. */
	if (r->need_base) {
		ret = -EAGAIN;
		goto out;
	}
	/* Before the lookup: the sweep may forget the id asked for. */
	sl__reg_expire(r, sl_wall_ms());
	if (id)
		p = sl__reg_find(r, id);
	/* Under the lock: the id cannot become known between the check and
	 * the new epoch. */
	if (p && !sl_producers_proof_ok(r, id, proof, proof_len)) {
		ret = -EACCES;
		goto out;
	}
	if (!p) {
		if (!id)
			id = r->next_id;
		if (id >= SL_PRODUCERS_NAMED_BASE) {
			ret = -ENOSPC; /* 2^61 ids handed out: not in this universe */
			goto out;
		}
		/* A fresh id, or a client's id not covered by the mark:
		 * either way no later fresh id may equal it, even after a
		 * crash, so the mark covers it before it is used. */
		if (sl__own_id(r, id)) {
			if ((ret = sl__reg_reserve(r, id + 1)) < 0)
				goto out;
			if (id >= r->next_id)
				r->next_id = id + 1;
		}
		if ((ret = sl__reg_add(r, id, &p)) < 0)
			goto out;
		/* An id brought back may be one the registry forgot while a
		 * partition still holds it with its epoch: above all those. */
		if (want_id)
			atomic_store_explicit(&p->epoch, r->epoch_floor, memory_order_relaxed);
	}
	ret = sl__reg_session(p, out, epoch, next_seq);
out:
	pthread_mutex_unlock(&r->lock);
	return ret;
}

const char *sl_producers_name_ok(const char *name, size_t len)
{
	if (!len)
		return "empty";
	if (len > SL_PRODUCER_NAME_MAX)
		return "longer than 255 bytes";
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)name[i] < 0x21 || (unsigned char)name[i] > 0x7e)
			return "not printable ASCII without spaces (0x21..0x7e)";
	return NULL;
}

uint64_t sl_producers_named_id(const char *name, size_t len)
{
	/* 61 bits of the hash in the range's low bits: dedup.h states the
	 * collision odds. */
	return SL_PRODUCERS_NAMED_BASE | (XXH3_64bits_withSeed(name, len, SL_PRODUCERS_NAME_SEED) &
	                                  (SL_PRODUCERS_NAMED_BASE - 1));
}

int sl_producers_hello_named(struct sl_producers *r, const char *name, size_t len,
                             struct sl_producer **out, uint32_t *epoch, uint64_t *next_seq)
{
	struct sl_producer *p;
	int ret = 0;

	if (sl_producers_name_ok(name, len))
		return -EINVAL;
	uint64_t id = sl_producers_named_id(name, len);
	pthread_mutex_lock(&r->lock);
	/* need_base or a range: a cluster node (dedup.h). */
	if (r->need_base || r->base_end) {
		ret = -EOPNOTSUPP;
		goto out;
	}
	/* Unknown: added, with no mark to write, since fresh ids never reach
	 * the range. Under the lock, so two first hellos of one name make one
	 * entry and two epochs. */
	sl__reg_expire(r, sl_wall_ms());
	p = sl__reg_find(r, id);
	if (!p) {
		if ((ret = sl__reg_add(r, id, &p)) < 0)
			goto out;
		/* Forgotten before, perhaps: above every epoch it had. */
		atomic_store_explicit(&p->epoch, r->epoch_floor, memory_order_relaxed);
	}
	ret = sl__reg_session(p, out, epoch, next_seq);
out:
	pthread_mutex_unlock(&r->lock);
	return ret;
}

int sl_producers_resume(struct sl_producers *r, uint64_t id, const uint8_t *proof, size_t proof_len,
                        uint32_t epoch, struct sl_producer **out, uint64_t *next_seq)
{
	struct sl_producer *p;
	int ret = 0;

	if (!id || id >= SL_PRODUCERS_ID_LIMIT || sl__named_id(id) || !epoch)
		return -EINVAL;
	pthread_mutex_lock(&r->lock);
	/* The key is the cluster's only once set_key ran (with set_base). */
	if (r->need_base) {
		ret = -EAGAIN;
		goto out;
	}
	/* Always the proof, known id or not: the id was issued by a node of
	 * this cluster, under the key they share. */
	if (!sl_producers_proof_ok(r, id, proof, proof_len)) {
		ret = -EACCES;
		goto out;
	}
	p = sl__reg_find(r, id);
	if (!p && (ret = sl__reg_add(r, id, &p)) < 0)
		goto out;
	/* Raised, never bumped: a later hello of this id here goes above
	 * the resumed epoch, and no session is fenced by this one. */
	if (epoch > atomic_load_explicit(&p->epoch, memory_order_relaxed))
		atomic_store_explicit(&p->epoch, epoch, memory_order_release);
	atomic_fetch_add_explicit(&p->sessions, 1, memory_order_relaxed);
	*out = p;
	*next_seq = atomic_load_explicit(&p->next_seq, memory_order_relaxed);
out:
	pthread_mutex_unlock(&r->lock);
	return ret;
}

void sl_producers_set_key(struct sl_producers *r, const uint8_t *key, size_t len)
{
	pthread_mutex_lock(&r->lock);
	memset(r->key, 0, sizeof(r->key));
	memcpy(r->key, key, len < sizeof(r->key) ? len : sizeof(r->key));
	pthread_mutex_unlock(&r->lock);
}

void sl_producers_release(struct sl_producer *p)
{
	/* The idle time first, then the count (release): the sweep that sees
	 * no session (acquire) sees when it ended. */
	atomic_store_explicit(&p->idle_since_ms, sl_wall_ms(), memory_order_relaxed);
	atomic_fetch_sub_explicit(&p->sessions, 1, memory_order_release);
}

void sl_producers_set_expiry(struct sl_producers *r, uint64_t idle_ms)
{
	pthread_mutex_lock(&r->lock);
	r->expiry_ms = idle_ms;
	r->swept_ms = 0; /* a new expiry applies from the next hello */
	pthread_mutex_unlock(&r->lock);
}

void sl_producers_set_limit(struct sl_producers *r, uint32_t max)
{
	pthread_mutex_lock(&r->lock);
	r->max = max ? max : SL_PRODUCERS_MAX_DEFAULT;
	pthread_mutex_unlock(&r->lock);
}

uint64_t sl_producers_forgotten(struct sl_producers *r)
{
	uint64_t n;

	pthread_mutex_lock(&r->lock);
	n = r->forgotten;
	pthread_mutex_unlock(&r->lock);
	return n;
}

uint32_t sl_producers_count(struct sl_producers *r)
{
	uint32_t n;

	pthread_mutex_lock(&r->lock);
	n = r->count;
	pthread_mutex_unlock(&r->lock);
	return n;
}

void sl_producers_require_base(struct sl_producers *r)
{
	pthread_mutex_lock(&r->lock);
	r->need_base = true;
	pthread_mutex_unlock(&r->lock);
}

void sl_producers_set_base(struct sl_producers *r, uint64_t base)
{
	pthread_mutex_lock(&r->lock);
	r->base = base;
	r->base_end = base + (UINT64_C(1) << SL_PRODUCERS_NODE_BITS);
	r->need_base = false;
	/* From this range alone: the mark, if it is one of its ids (a data
	 * folder of a node alone has its ids below every range), and the ids
	 * the partitions seeded. */
	if (r->id_end <= base || r->id_end > r->base_end)
		r->id_end = base;
	r->next_id = r->id_end;
	for (size_t c = 0; c < r->nchunks; c++)
		for (uint32_t i = 0; i < SL__CHUNK && c * SL__CHUNK + i < r->used; i++) {
			uint64_t id = r->chunks[c][i].id; /* 0: a free slot */
			if (id >= r->next_id && id < r->base_end && id >= base)
				r->next_id = id + 1;
		}
	pthread_mutex_unlock(&r->lock);
}
