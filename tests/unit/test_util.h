/* Shared cmocka fixture for moat's unit tests: every test must free what
 * it allocates.  The baseline is taken per test so that one failing test
 * (which may leak) does not fail the rest.  Include after <cmocka.h>. */
#ifndef MOAT_TEST_UTIL_H
#define MOAT_TEST_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "common/moat_common.h"

static size_t live_at_setup;

static int setup_baseline(void **state)
{
	(void)state;
	moat_alloc_fail_at(0);
	live_at_setup = moat_alloc_live_bytes();
	return 0;
}

static int teardown_no_leaks(void **state)
{
	(void)state;
	moat_alloc_fail_at(0);
	size_t live = moat_alloc_live_bytes();
	if (live != live_at_setup) {
		print_error("leak: %zu live bytes after test (%zu before)\n",
			    live, live_at_setup);
		return -1;
	}
	return 0;
}

/* Exact-size heap copy of p[0..n) (moat_free it): decoders fed with it
 * let ASan catch any read past the end. */
static inline uint8_t *heap(const void *p, size_t n)
{
	uint8_t *h = moat_malloc(n ? n : 1);
	assert_non_null(h);
	if (n)
		memcpy(h, p, n);
	return h;
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup_baseline, teardown_no_leaks)

#endif
