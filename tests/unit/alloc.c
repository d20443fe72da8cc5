/*
 * jemalloc must be the allocator of every binary we ship. This program is
 * linked the way those binaries are (sl_link_allocator), so if malloc here is
 * jemalloc's, theirs is too.
 */
#include <criterion/criterion.h>
#include <jemalloc/jemalloc.h>
#include <stdlib.h>

Test(alloc, malloc_is_jemalloc)
{
	const char *version = NULL;
	size_t len = sizeof(version);

	cr_assert_eq(mallctl("version", &version, &len, NULL, 0), 0);
	cr_assert_not_null(version);

	/* thread.allocated counts bytes this thread got from jemalloc: a plain
	 * malloc() must move it, which only happens if malloc *is* jemalloc. */
	uint64_t before = 0, after = 0;
	len = sizeof(before);
	cr_assert_eq(mallctl("thread.allocated", &before, &len, NULL, 0), 0);
	void *volatile p = malloc(1 << 20);
	cr_assert_not_null(p);
	len = sizeof(after);
	cr_assert_eq(mallctl("thread.allocated", &after, &len, NULL, 0), 0);
	cr_assert_geq(after - before, (uint64_t)1 << 20,
	              "malloc did not go through jemalloc (jemalloc %s)", version);
	free(p);
}
