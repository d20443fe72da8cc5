/*
 * The producer registry: fresh ids never reused across restarts (the
 * durable mark), epochs bump and fence, seeding merges maxima, a bad
 * registry file is refused, limits, and hellos from two threads at once
 * (labelled `threads`: the TSan build runs this file); named producers
 * (issue 20): one id per name across reopens, the range only by name.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/base.h"
#include "dedup/dedup.h"

struct dir {
	char path[64];
	char file[96];
};

static void dir_make(struct dir *d)
{
	snprintf(d->path, sizeof(d->path), "/tmp/sl_producers_XXXXXX");
	cr_assert_not_null(mkdtemp(d->path));
	snprintf(d->file, sizeof(d->file), "%s/producers", d->path);
}

static void dir_remove(struct dir *d)
{
	char tmp[128];
	snprintf(tmp, sizeof(tmp), "%s.tmp", d->file);
	unlink(tmp);
	snprintf(tmp, sizeof(tmp), "%s.key", d->file);
	unlink(tmp);
	unlink(d->file);
	cr_assert_eq(rmdir(d->path), 0, "%s left files behind", d->path);
}

static struct sl_producers *open_ok(const struct dir *d)
{
	struct sl_producers *r = NULL;
	char err[256] = "";
	int ret = sl_producers_open(d->file, &r, err, sizeof(err));
	cr_assert_eq(ret, 0, "open: %d %s", ret, err);
	return r;
}

/* sl_producers_hello with the id's own proof, as its client would. */
static int hello(struct sl_producers *r, uint64_t id, struct sl_producer **p, uint32_t *ep,
                 uint64_t *next_seq)
{
	uint8_t proof[SL_PRODUCER_PROOF_LEN];
	sl_producers_proof(r, id, proof);
	return sl_producers_hello(r, id, proof, sizeof(proof), p, ep, next_seq);
}

static void write_file(const char *path, const void *b, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	cr_assert_geq(fd, 0);
	cr_assert_eq(write(fd, b, len), (ssize_t)len);
	close(fd);
}

Test(producers, ids_unique_across_restarts)
{
	/* More than one block, so the mark is moved while running too. */
	const uint32_t n = (uint32_t)SL_PRODUCERS_ID_BLOCK + 100;
	struct dir d;
	struct sl_producers *r;
	struct sl_producer *p;
	uint64_t max_id = 0, next_seq, prev = 0;
	uint32_t ep;

	dir_make(&d);
	r = open_ok(&d);
	/* Nothing written before the first id is needed. */
	cr_assert_neq(access(d.file, F_OK), 0);
	for (uint32_t i = 0; i < n; i++) {
		cr_assert_eq(hello(r, 0, &p, &ep, &next_seq), 0);
		cr_assert_gt(p->id, prev, "ids increase, so they are unique");
		cr_assert_eq(ep, 1);
		cr_assert_eq(next_seq, 0);
		prev = p->id;
	}
	max_id = prev;
	cr_assert_eq(sl_producers_count(r), n);
	cr_assert_eq(access(d.file, F_OK), 0);
	sl_producers_close(r);

	/* A restart without seeding (a crash before any of them wrote): new
	 * ids are above every id handed out before. */
	for (int round = 0; round < 3; round++) {
		r = open_ok(&d);
		cr_assert_eq(sl_producers_count(r), 0);
		for (int i = 0; i < 10; i++) {
			cr_assert_eq(hello(r, 0, &p, &ep, &next_seq), 0);
			cr_assert_gt(p->id, max_id);
			cr_assert_eq(ep, 1);
		}
		max_id = p->id;
		sl_producers_close(r);
	}
	dir_remove(&d);
}

Test(producers, epochs_bump_and_fence)
{
	struct dir d;
	struct sl_producers *r;
	struct sl_producer *p1, *p2, *p3;
	uint64_t next_seq;
	uint32_t e1, e2, e3;

	dir_make(&d);
	r = open_ok(&d);
	cr_assert_eq(hello(r, 0, &p1, &e1, &next_seq), 0);
	cr_assert(sl_producer_is_current(p1, e1));
	sl_producer_accepted(p1, 10);
	sl_producer_accepted(p1, 7); /* a lower one loses */
	cr_assert_eq(hello(r, p1->id, &p2, &e2, &next_seq), 0);
	cr_assert_eq(p2, p1, "same entry, same address");
	cr_assert_eq(e2, e1 + 1);
	cr_assert_eq(next_seq, 10);
	cr_assert_not(sl_producer_is_current(p1, e1));
	cr_assert(sl_producer_is_current(p1, e2));
	/* A client's own id that nobody knows: kept, epoch 1. */
	cr_assert_eq(hello(r, 777, &p3, &e3, &next_seq), 0);
	cr_assert_eq(p3->id, 777);
	cr_assert_eq(e3, 1);
	cr_assert_eq(next_seq, 0);
	cr_assert_eq(hello(r, SL_PRODUCERS_ID_LIMIT, &p3, &e3, &next_seq), -EINVAL);
	cr_assert_eq(sl_producers_count(r), 2);
	sl_producers_close(r);
	dir_remove(&d);
}

Test(producers, seed_merges_maxima)
{
	struct dir d;
	struct sl_producers *r;
	struct sl_producer *p;
	uint64_t next_seq;
	uint32_t ep;

	dir_make(&d);
	r = open_ok(&d);
	/* Three partitions know producer 500 differently. */
	cr_assert_eq(sl_producers_seed(r, 500, 3, 10), 0);
	cr_assert_eq(sl_producers_seed(r, 500, 2, 20), 0);
	cr_assert_eq(sl_producers_seed(r, 500, 3, 15), 0);
	cr_assert_eq(sl_producers_seed(r, 40, 1, 0), 0);
	cr_assert_eq(sl_producers_seed(r, 0, 1, 0), -EINVAL);
	cr_assert_eq(sl_producers_seed(r, 1, 1, SL_DEDUP_SEQ_LIMIT), -EINVAL);
	cr_assert_eq(sl_producers_count(r), 2);
	cr_assert_eq(hello(r, 500, &p, &ep, &next_seq), 0);
	cr_assert_eq(ep, 4);
	cr_assert_eq(next_seq, 21);
	/* Known from the logs only (refused events used up sequences that
	 * were never stored): not exact, until a session of this run moves
	 * it. */
	cr_assert_not(sl_producer_seq_exact(p, next_seq));
	sl_producer_accepted(p, 25);
	cr_assert_eq(hello(r, 500, &p, &ep, &next_seq), 0);
	cr_assert_eq(next_seq, 25);
	cr_assert(sl_producer_seq_exact(p, next_seq));
	cr_assert_eq(hello(r, 40, &p, &ep, &next_seq), 0);
	cr_assert_eq(ep, 2);
	cr_assert_eq(next_seq, 1);
	/* Fresh ids stay above every seeded one. */
	cr_assert_eq(hello(r, 0, &p, &ep, &next_seq), 0);
	cr_assert_gt(p->id, 500);
	cr_assert_eq(ep, 1);
	/* A client's id far above the mark is reserved durably: after a
	 * restart (nothing seeded) fresh ids are above it. */
	const uint64_t far = UINT64_C(1) << 40;
	cr_assert_eq(hello(r, far, &p, &ep, &next_seq), 0);
	sl_producers_close(r);
	r = open_ok(&d);
	cr_assert_eq(hello(r, 0, &p, &ep, &next_seq), 0);
	cr_assert_gt(p->id, far);
	/* An epoch at its end cannot be bumped. */
	cr_assert_eq(sl_producers_seed(r, 900, UINT32_MAX, 5), 0);
	cr_assert_eq(hello(r, 900, &p, &ep, &next_seq), -EOVERFLOW);
	sl_producers_close(r);
	dir_remove(&d);
}

Test(producers, limit)
{
	struct dir d;
	struct sl_producers *r;
	struct sl_producer *p;
	uint64_t next_seq;
	uint32_t ep;

	dir_make(&d);
	r = open_ok(&d);
	for (uint32_t i = 0; i < SL_PRODUCERS_MAX_DEFAULT; i++)
		cr_assert_eq(hello(r, 0, &p, &ep, &next_seq), 0);
	cr_assert_eq(hello(r, 0, &p, &ep, &next_seq), -ENOSPC);
	cr_assert_eq(hello(r, 3u * SL_PRODUCERS_MAX_DEFAULT, &p, &ep, &next_seq), -ENOSPC);
	cr_assert_eq(sl_producers_seed(r, 3u * SL_PRODUCERS_MAX_DEFAULT, 1, 1), -ENOSPC);
	/* A known one still says hello. */
	cr_assert_eq(hello(r, 1, &p, &ep, &next_seq), 0);
	cr_assert_eq(ep, 2);
	sl_producers_close(r);
	dir_remove(&d);
}

/* Issue 20: ids that come and go do not fill the registry. */
Test(producers, idle_ids_are_forgotten_at_the_bound_live_ones_never)
{
	struct dir d;
	struct sl_producers *r;
	struct sl_producer *p[17];
	uint64_t next_seq, ids[17];
	uint32_t ep;

	dir_make(&d);
	r = open_ok(&d);
	sl_producers_set_limit(r, 16);
	for (int i = 0; i < 16; i++) {
		cr_assert_eq(hello(r, 0, &p[i], &ep, &next_seq), 0);
		ids[i] = p[i]->id;
	}
	/* Every entry has a live session: nothing can go. */
	cr_assert_eq(hello(r, 0, &p[16], &ep, &next_seq), -ENOSPC);
	/* Sessions end, 0 the longest ago; 5 says hello again (epoch 2). */
	for (int i = 0; i < 16; i++) {
		sl_producers_release(p[i]);
		atomic_store(&p[i]->idle_since_ms, 1000 + (uint64_t)i);
	}
	cr_assert_eq(hello(r, ids[5], &p[5], &ep, &next_seq), 0);
	cr_assert_eq(ep, 2);
	/* A new one: the least recently idle eighth (0 and 1) goes. */
	cr_assert_eq(hello(r, 0, &p[16], &ep, &next_seq), 0);
	cr_assert_eq(sl_producers_forgotten(r), 2);
	cr_assert_eq(sl_producers_count(r), 15);
	/* 5 holds a session and is not among them; 0 comes back with its
	 * proof as an unknown id, above every forgotten epoch. */
	cr_assert_eq(hello(r, ids[5], &p[5], &ep, &next_seq), 0);
	cr_assert_eq(ep, 3);
	cr_assert_eq(hello(r, ids[0], &p[0], &ep, &next_seq), 0);
	cr_assert_eq(ep, 2, "a forgotten id's epoch restarts above the floor (1)");
	sl_producers_close(r);
	dir_remove(&d);
}

Test(producers, ids_idle_past_the_expiry_are_forgotten)
{
	struct dir d;
	struct sl_producers *r;
	struct sl_producer *a, *b, *c;
	uint64_t next_seq, now = sl_wall_ms();
	uint32_t ep;

	dir_make(&d);
	r = open_ok(&d);
	cr_assert_eq(hello(r, 0, &a, &ep, &next_seq), 0);
	cr_assert_eq(hello(r, 0, &b, &ep, &next_seq), 0);
	sl_producers_release(a);
	sl_producers_release(b);
	/* a idle for two minutes, b for thirty seconds. */
	atomic_store(&a->idle_since_ms, now - 120000);
	atomic_store(&b->idle_since_ms, now - 30000);
	sl_producers_set_expiry(r, 60000);
	cr_assert_eq(hello(r, 0, &c, &ep, &next_seq), 0);
	cr_assert_eq(sl_producers_forgotten(r), 1);
	cr_assert_eq(sl_producers_count(r), 2);
	sl_producers_close(r);
	dir_remove(&d);
}

Test(producers, bad_file_refused)
{
	struct dir d;
	struct sl_producers *r = NULL;
	struct sl_producer *p;
	uint8_t good[20], bad[32];
	uint64_t next_seq;
	uint32_t ep;
	char err[256];

	dir_make(&d);
	r = open_ok(&d);
	cr_assert_eq(hello(r, 0, &p, &ep, &next_seq), 0);
	sl_producers_close(r);
	int fd = open(d.file, O_RDONLY);
	cr_assert_geq(fd, 0);
	cr_assert_eq(read(fd, good, sizeof(good)), (ssize_t)sizeof(good));
	cr_assert_eq(read(fd, bad, 1), 0, "the file is exactly 20 bytes");
	close(fd);

	struct {
		size_t len;
		int flip; /* byte to flip, -1 none */
		const char *says;
	} cases[] = {
	    {0, -1, "truncated"}, {19, -1, "truncated"}, {21, -1, "too long"}, {20, 0, "magic"},
	    {20, 5, "version"},   {20, 9, "checksum"},   {20, 17, "checksum"},
	};
	for (size_t i = 0; i < SL_ARRAY_LEN(cases); i++) {
		memset(bad, 0, sizeof(bad));
		memcpy(bad, good, sizeof(good));
		if (cases[i].flip >= 0)
			bad[cases[i].flip] ^= 0x40;
		write_file(d.file, bad, cases[i].len);
		err[0] = '\0';
		r = NULL;
		int ret = sl_producers_open(d.file, &r, err, sizeof(err));
		cr_assert_eq(ret, -SL_ECORRUPT, "case %zu: %d", i, ret);
		cr_assert_null(r);
		cr_assert_not_null(strstr(err, cases[i].says), "case %zu: \"%s\"", i, err);
		cr_assert_not_null(strstr(err, d.file), "case %zu names the file: \"%s\"", i, err);
	}
	write_file(d.file, good, sizeof(good));
	r = open_ok(&d);
	sl_producers_close(r);
	dir_remove(&d);

	/* No such folder: the proofs' key cannot be made, so the registry
	 * is refused at open, naming the key file. */
	cr_assert_lt(sl_producers_open("/nonexistent-sluice-dir/producers", &r, err, sizeof(err)),
	             0);
	cr_assert_not_null(strstr(err, "producers.key"), "%s", err);
}

/* ---- two threads ---------------------------------------------------------- */

#define PER_THREAD 3000

struct worker {
	struct sl_producers *r;
	uint64_t shared;
	uint64_t fresh[PER_THREAD];
	uint32_t shared_epochs[PER_THREAD];
	int failures;
};

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	for (int i = 0; i < PER_THREAD; i++) {
		struct sl_producer *p;
		uint64_t next_seq;
		uint32_t ep;
		if (hello(w->r, 0, &p, &ep, &next_seq) != 0 || ep != 1) {
			w->failures++;
			continue;
		}
		w->fresh[i] = p->id;
		/* The event path on entries the other thread also touches. */
		sl_producer_accepted(p, (uint64_t)i + 1);
		if (hello(w->r, w->shared, &p, &ep, &next_seq) != 0) {
			w->failures++;
			continue;
		}
		w->shared_epochs[i] = ep;
		sl_producer_accepted(p, (uint64_t)i + 1);
		(void)sl_producer_is_current(p, ep);
	}
	return NULL;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

Test(producers, hello_from_two_threads)
{
	struct dir d;
	struct sl_producers *r;
	struct sl_producer *p;
	struct worker *w = calloc(2, sizeof(*w));
	pthread_t th[2];
	uint64_t *all = calloc(2 * PER_THREAD, sizeof(*all)), next_seq;
	uint32_t ep, *eps = calloc(2 * PER_THREAD, sizeof(*eps));

	dir_make(&d);
	r = open_ok(&d);
	cr_assert_eq(hello(r, 0, &p, &ep, &next_seq), 0);
	for (int i = 0; i < 2; i++) {
		w[i].r = r;
		w[i].shared = p->id;
		cr_assert_eq(pthread_create(&th[i], NULL, worker_main, &w[i]), 0);
	}
	for (int i = 0; i < 2; i++)
		cr_assert_eq(pthread_join(th[i], NULL), 0);
	for (int i = 0; i < 2; i++) {
		cr_assert_eq(w[i].failures, 0);
		memcpy(all + i * PER_THREAD, w[i].fresh, sizeof(w[i].fresh));
		memcpy(eps + i * PER_THREAD, w[i].shared_epochs, sizeof(w[i].shared_epochs));
	}
	/* Every fresh id once; every epoch of the shared id once. */
	qsort(all, 2 * PER_THREAD, sizeof(*all), cmp_u64);
	for (int i = 1; i < 2 * PER_THREAD; i++)
		cr_assert_lt(all[i - 1], all[i], "id %lu handed out twice", all[i]);
	cr_assert_neq(all[0], p->id);
	for (int i = 0; i < 2 * PER_THREAD; i++)
		cr_assert_neq(all[i], p->id);
	uint64_t *e64 = calloc(2 * PER_THREAD, sizeof(*e64));
	for (int i = 0; i < 2 * PER_THREAD; i++)
		e64[i] = eps[i];
	qsort(e64, 2 * PER_THREAD, sizeof(*e64), cmp_u64);
	for (int i = 0; i < 2 * PER_THREAD; i++)
		cr_assert_eq(e64[i], (uint64_t)i + 2, "epochs 2..N+1, each once");
	cr_assert(sl_producer_is_current(p, 2 * PER_THREAD + 1));
	cr_assert_eq(hello(r, p->id, &p, &ep, &next_seq), 0);
	cr_assert_eq(next_seq, PER_THREAD);
	cr_assert_eq(sl_producers_count(r), 2 * PER_THREAD + 1);
	free(e64);
	free(all);
	free(eps);
	free(w);
	sl_producers_close(r);
	dir_remove(&d);
}

/* Proofs (issue 23): one per id, kept across a reopen through the key file
 * (0600), refused when wrong, short or another id's; a key file of the wrong
 * size refuses the registry. */
Test(producers, proofs_bind_ids_across_reopen)
{
	struct dir d;
	uint8_t p1[SL_PRODUCER_PROOF_LEN], p2[SL_PRODUCER_PROOF_LEN], again[SL_PRODUCER_PROOF_LEN];
	char key[128], err[256];
	struct stat st;

	dir_make(&d);
	struct sl_producers *r = open_ok(&d);
	snprintf(key, sizeof(key), "%s.key", d.file);
	cr_assert_eq(stat(key, &st), 0, "no key file");
	cr_assert_eq(st.st_size, 32);
	cr_assert_eq(st.st_mode & 077, 0, "the key is readable by others: %o", st.st_mode);
	sl_producers_proof(r, 1, p1);
	sl_producers_proof(r, 2, p2);
	cr_assert(memcmp(p1, p2, sizeof(p1)) != 0);
	cr_assert(sl_producers_proof_ok(r, 1, p1, sizeof(p1)));
	cr_assert_not(sl_producers_proof_ok(r, 1, p2, sizeof(p2)), "another id's proof");
	cr_assert_not(sl_producers_proof_ok(r, 1, p1, sizeof(p1) - 1), "a short proof");
	cr_assert_not(sl_producers_proof_ok(r, 1, NULL, 0), "no proof");
	p1[0] ^= 0x80;
	cr_assert_not(sl_producers_proof_ok(r, 1, p1, sizeof(p1)), "one bit off");
	p1[0] ^= 0x80;
	/* A known id takes its proof; an unknown one is nobody's. */
	struct sl_producer *p;
	uint32_t ep;
	uint64_t next_seq;
	cr_assert_eq(sl_producers_hello(r, 0, NULL, 0, &p, &ep, &next_seq), 0);
	uint64_t id = p->id;
	cr_assert_eq(sl_producers_hello(r, id, NULL, 0, &p, &ep, &next_seq), -EACCES);
	cr_assert_eq(sl_producers_hello(r, id, p2, sizeof(p2), &p, &ep, &next_seq), -EACCES);
	cr_assert_eq(hello(r, id, &p, &ep, &next_seq), 0);
	cr_assert_eq(ep, 2, "a refused hello must not fence: epoch %u", ep);
	cr_assert_eq(sl_producers_hello(r, 4242, NULL, 0, &p, &ep, &next_seq), 0);
	sl_producers_close(r);

	r = open_ok(&d);
	sl_producers_proof(r, 1, again);
	cr_assert(memcmp(p1, again, sizeof(p1)) == 0, "the proof changed across a reopen");
	sl_producers_close(r);

	write_file(key, "short", 5);
	r = NULL;
	cr_assert_eq(sl_producers_open(d.file, &r, err, sizeof(err)), -SL_ECORRUPT);
	cr_assert_not_null(strstr(err, ".key"), "%s", err);
	cr_assert_null(r);
	dir_remove(&d);
}

/*
 * Cluster mode: fresh ids come from this node's range only. A node restarted
 * with replicated partitions seeds ids of every node's range (before it
 * knows its own); neither those nor a resumed id of another node move its
 * next fresh id or its durable mark.
 */
Test(producers, fresh_ids_stay_in_the_nodes_range)
{
	const uint64_t mine = SL_PRODUCERS_NODE_BASE(0), later = SL_PRODUCERS_NODE_BASE(2);
	struct dir d;
	struct sl_producer *p;
	uint64_t next_seq;
	uint32_t ep;

	dir_make(&d);
	struct sl_producers *r = open_ok(&d);
	cr_assert_eq(sl_producers_seed(r, 5, 1, 0), 0);         /* from when it ran alone */
	cr_assert_eq(sl_producers_seed(r, mine + 10, 1, 3), 0); /* its own */
	cr_assert_eq(sl_producers_seed(r, later + 7, 1, 9), 0); /* replicated from another */
	sl_producers_require_base(r);
	cr_assert_eq(hello(r, 0, &p, &ep, &next_seq), -EAGAIN, "no fresh id before the range");
	sl_producers_set_base(r, mine);
	cr_assert_eq(hello(r, 0, &p, &ep, &next_seq), 0);
	cr_assert_eq(p->id, mine + 11, "fresh id %#llx", (unsigned long long)p->id);
	/* Another node's producer resumed here: accepted, not counted. */
	cr_assert_eq(hello(r, SL_PRODUCERS_NODE_BASE(1) + 3, &p, &ep, &next_seq), 0);
	cr_assert_eq(hello(r, 0, &p, &ep, &next_seq), 0);
	cr_assert_eq(p->id, mine + 12);
	sl_producers_close(r);

	/* After a restart: the same again from the mark and the seeds. */
	r = open_ok(&d);
	cr_assert_eq(sl_producers_seed(r, later + 7, 1, 9), 0);
	sl_producers_require_base(r);
	sl_producers_set_base(r, mine);
	cr_assert_eq(hello(r, 0, &p, &ep, &next_seq), 0);
	cr_assert_gt(p->id, mine + 12);
	cr_assert_lt(p->id, SL_PRODUCERS_NODE_BASE(1));
	sl_producers_close(r);
	dir_remove(&d);
}

/*
 * Cluster mode, exactly once across a failover: two nodes share the
 * cluster's key, so an id issued on one is resumed on the other with its
 * proof. A resume keeps the earlier session's epoch (it fences nobody), is
 * refused without the proof even for an id this node never saw, and waits
 * for the key (set_base) like every hello; a later hello goes above it.
 */
Test(producers, resume_on_another_node)
{
	const uint8_t key[32] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};
	struct dir d1, d2;
	struct sl_producer *p, *q;
	uint8_t proof[SL_PRODUCER_PROOF_LEN];
	uint64_t next_seq;
	uint32_t ep;

	dir_make(&d1);
	dir_make(&d2);
	struct sl_producers *n1 = open_ok(&d1), *n2 = open_ok(&d2);
	sl_producers_require_base(n2);
	cr_assert_eq(sl_producers_resume(n2, 7, proof, sizeof(proof), 1, &q, &next_seq), -EAGAIN,
	             "a resume before the cluster's key");
	sl_producers_set_key(n1, key, sizeof(key));
	sl_producers_set_key(n2, key, sizeof(key));
	sl_producers_set_base(n1, SL_PRODUCERS_NODE_BASE(0));
	sl_producers_set_base(n2, SL_PRODUCERS_NODE_BASE(1));

	/* Issued on n1, which fences its first session with a second. */
	cr_assert_eq(sl_producers_hello(n1, 0, NULL, 0, &p, &ep, &next_seq), 0);
	cr_assert_eq(hello(n1, p->id, &p, &ep, &next_seq), 0);
	cr_assert_eq(ep, 2);
	sl_producers_proof(n1, p->id, proof);
	uint8_t other[SL_PRODUCER_PROOF_LEN];
	sl_producers_proof(n2, p->id, other);
	cr_assert(memcmp(proof, other, sizeof(proof)) == 0, "the nodes' proofs differ");

	/* On n2, which never saw it: the proof is still asked. */
	cr_assert_eq(sl_producers_resume(n2, p->id, NULL, 0, 2, &q, &next_seq), -EACCES);
	other[3] ^= 1;
	cr_assert_eq(sl_producers_resume(n2, p->id, other, sizeof(other), 2, &q, &next_seq),
	             -EACCES);
	cr_assert_eq(sl_producers_resume(n2, p->id, proof, sizeof(proof), 0, &q, &next_seq),
	             -EINVAL, "epoch 0");
	cr_assert_eq(sl_producers_resume(n2, p->id, proof, sizeof(proof), 2, &q, &next_seq), 0);
	cr_assert_eq(q->id, p->id);
	/* Two resend sessions of the same epoch: neither fences the other. */
	cr_assert_eq(sl_producers_resume(n2, p->id, proof, sizeof(proof), 2, &q, &next_seq), 0);
	cr_assert(sl_producer_is_current(q, 2), "a resume bumped the epoch");
	/* An older epoch never lowers it; a hello goes above. */
	cr_assert_eq(sl_producers_resume(n2, p->id, proof, sizeof(proof), 1, &q, &next_seq), 0);
	cr_assert(sl_producer_is_current(q, 2), "a resume lowered the epoch");
	cr_assert_eq(sl_producers_hello(n2, p->id, proof, sizeof(proof), &q, &ep, &next_seq), 0);
	cr_assert_eq(ep, 3, "a hello after a resume of epoch 2 took %u", ep);
	/* n1's session is untouched by anything n2 did. */
	cr_assert(sl_producer_is_current(p, 2));
	sl_producers_close(n1);
	sl_producers_close(n2);
	dir_remove(&d1);
	dir_remove(&d2);
}

/* Issue 20: a name's id is derived, so the same name is the same producer
 * after the registry is closed and opened again (seeded from the logs, as
 * a restarted server does), each hello a new epoch; and a name's id never
 * moves the fresh ids, which stay small. */
Test(producers, named_same_id_across_reopen)
{
	struct dir d;
	struct sl_producers *r;
	struct sl_producer *p, *q, *fresh;
	uint64_t next_seq;
	uint32_t e1, e2, e3, ef;

	dir_make(&d);
	r = open_ok(&d);
	cr_assert_eq(sl_producers_hello_named(r, "orders-1", 8, &p, &e1, &next_seq), 0);
	uint64_t id = p->id;
	cr_assert_eq(id, sl_producers_named_id("orders-1", 8));
	cr_assert_geq(id, SL_PRODUCERS_NAMED_BASE);
	cr_assert_lt(id, SL_PRODUCERS_NAMED_END);
	cr_assert_eq(e1, 1);
	cr_assert_eq(next_seq, 0, "a new name starts at sequence 0");
	sl_producer_accepted(p, 42);
	cr_assert_eq(sl_producers_hello_named(r, "orders-1", 8, &q, &e2, &next_seq), 0);
	cr_assert_eq(q, p, "same name, same entry");
	cr_assert_eq(e2, e1 + 1);
	cr_assert_eq(next_seq, 42);
	cr_assert(sl_producer_seq_exact(q, next_seq), "accepted here: known exactly");
	cr_assert_not(sl_producer_is_current(p, e1), "the older session is fenced");
	cr_assert_neq(sl_producers_named_id("orders-2", 8), id);
	sl_producers_close(r);

	/* A restart: what the partitions' logs hold of it (epoch 2, sequences
	 * up to 41) seeds it again; the name finds it. */
	r = open_ok(&d);
	cr_assert_eq(sl_producers_seed(r, id, e2, 41), 0);
	cr_assert_eq(sl_producers_hello_named(r, "orders-1", 8, &p, &e3, &next_seq), 0);
	cr_assert_eq(p->id, id);
	cr_assert_eq(e3, e2 + 1, "above every epoch that wrote");
	cr_assert_eq(next_seq, 42);
	cr_assert_not(sl_producer_seq_exact(p, next_seq), "only what the logs hold");
	/* Seeding a name's id did not drag numbering up to 2^61. */
	cr_assert_eq(hello(r, 0, &fresh, &ef, &next_seq), 0);
	cr_assert_lt(fresh->id, SL_PRODUCERS_ID_BLOCK, "fresh id %llu",
	             (unsigned long long)fresh->id);
	sl_producers_close(r);
	dir_remove(&d);
}

/* The named range is reached by name only, and names reach nothing else:
 * no Hello by number takes a name's id (no proof is needed for an unknown
 * id, so it would take the session), no name lands on a fresh, node or
 * stage id; bad names and cluster mode are refused. */
Test(producers, named_range_only_by_name)
{
	struct dir d;
	struct sl_producers *r;
	struct sl_producer *p;
	uint64_t next_seq;
	uint32_t e;
	char name[SL_PRODUCER_NAME_MAX + 2];

	dir_make(&d);
	r = open_ok(&d);
	uint64_t id = sl_producers_named_id("svc-a", 5);
	cr_assert_eq(hello(r, id, &p, &e, &next_seq), -EINVAL);
	cr_assert_eq(hello(r, SL_PRODUCERS_NAMED_BASE, &p, &e, &next_seq), -EINVAL);
	cr_assert_eq(hello(r, SL_PRODUCERS_NAMED_END - 1, &p, &e, &next_seq), -EINVAL);
	uint8_t proof[SL_PRODUCER_PROOF_LEN];
	sl_producers_proof(r, id, proof);
	cr_assert_eq(sl_producers_resume(r, id, proof, sizeof(proof), 1, &p, &next_seq), -EINVAL,
	             "a resume leg by number either");
	cr_assert_eq(sl_producers_count(r), 0);
	/* Just below the range is an ordinary numbered id. */
	cr_assert_eq(hello(r, SL_PRODUCERS_NAMED_BASE - 1, &p, &e, &next_seq), 0);

	/* Names: every id in the range, none below (fresh and node ids) or
	 * above (pipeline stages). */
	for (int i = 0; i < 100000; i++) {
		int n = snprintf(name, sizeof(name), "n%d", i);
		uint64_t x = sl_producers_named_id(name, (size_t)n);
		cr_assert(x >= SL_PRODUCERS_NAMED_BASE && x < SL_PRODUCERS_NAMED_END, "%s -> %llx",
		          name, (unsigned long long)x);
	}
	cr_assert_eq(SL_PRODUCERS_NODE_BASE(((uint64_t)1 << 21) - 2) + (UINT64_C(1) << 40),
	             SL_PRODUCERS_NAMED_BASE, "the last node range ends where names begin");

	/* Bad names. */
	cr_assert_eq(sl_producers_hello_named(r, "", 0, &p, &e, &next_seq), -EINVAL);
	cr_assert_eq(sl_producers_hello_named(r, "a b", 3, &p, &e, &next_seq), -EINVAL);
	cr_assert_eq(sl_producers_hello_named(r, "a\n", 2, &p, &e, &next_seq), -EINVAL);
	cr_assert_eq(sl_producers_hello_named(r, "\xc3\xa9", 2, &p, &e, &next_seq), -EINVAL);
	memset(name, 'x', sizeof(name));
	cr_assert_eq(sl_producers_hello_named(r, name, SL_PRODUCER_NAME_MAX + 1, &p, &e, &next_seq),
	             -EINVAL);
	cr_assert_eq(sl_producers_hello_named(r, name, SL_PRODUCER_NAME_MAX, &p, &e, &next_seq), 0);
	cr_assert_not_null(sl_producers_name_ok("a b", 3));
	cr_assert_null(sl_producers_name_ok("~!x", 3));

	/* Cluster mode: refused before and after the node's range is known. */
	sl_producers_require_base(r);
	cr_assert_eq(sl_producers_hello_named(r, "svc-a", 5, &p, &e, &next_seq), -EOPNOTSUPP);
	sl_producers_set_base(r, SL_PRODUCERS_NODE_BASE(0));
	cr_assert_eq(sl_producers_hello_named(r, "svc-a", 5, &p, &e, &next_seq), -EOPNOTSUPP);
	sl_producers_close(r);
	dir_remove(&d);
}
