/* net/ossl_mem.c: OpenSSL's allocations counted per account, captured
 * blocks on pages of their own, kept true when freed or moved. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/crypto.h>

#include "net/ossl_mem.h"

#define T(f) cmocka_unit_test(f)

static void test_counts_per_account(void **state)
{
	(void)state;
	assert_true(moat_ossl_mem_installed());
	uint64_t base = moat_ossl_bytes(MOAT_OSSL_DTLS);
	void *outside = OPENSSL_malloc(100); /* no account: not counted */
	assert_int_equal(moat_ossl_bytes(MOAT_OSSL_DTLS), base);
	enum moat_ossl_account prev = moat_ossl_account_set(MOAT_OSSL_DTLS);
	assert_int_equal(prev, MOAT_OSSL_NONE);
	void *a = OPENSSL_malloc(1000);
	assert_int_equal(moat_ossl_bytes(MOAT_OSSL_DTLS), base + 1000);
	a = OPENSSL_realloc(a, 3000);
	assert_non_null(a);
	assert_int_equal(moat_ossl_bytes(MOAT_OSSL_DTLS), base + 3000);
	(void)moat_ossl_account_set(MOAT_OSSL_NONE);
	/* Freed outside the account: still taken off the owner's total. */
	a = OPENSSL_realloc(a, 500); /* the block stays with its owner */
	assert_int_equal(moat_ossl_bytes(MOAT_OSSL_DTLS), base + 500);
	OPENSSL_free(a);
	assert_int_equal(moat_ossl_bytes(MOAT_OSSL_DTLS), base);
	OPENSSL_free(outside);
	OPENSSL_free(NULL);
}

static void test_capture_discard_move(void **state)
{
	(void)state;
	void *slot = NULL, *other = NULL;
	uint64_t base = moat_ossl_bytes(MOAT_OSSL_DTLS);
	(void)moat_ossl_account_set(MOAT_OSSL_DTLS);
	moat_ossl_capture(&slot);
	uint8_t *small = OPENSSL_malloc(100); /* below MOAT_OSSL_BIG */
	uint8_t *b1 = OPENSSL_malloc(MOAT_OSSL_BIG);
	uint8_t *b2 = OPENSSL_malloc(MOAT_OSSL_BIG + 5000);
	moat_ossl_capture(NULL);
	assert_ptr_equal(slot, b2); /* the largest */
	assert_int_equal((uintptr_t)b2 % 4096, 0); /* pages of its own */
	assert_int_equal(moat_ossl_bytes(MOAT_OSSL_DTLS),
			 base + 100 + 2 * MOAT_OSSL_BIG + 5000);
	memset(b2, 0xAB, MOAT_OSSL_BIG + 5000);
	moat_ossl_discard(b2); /* whole pages become zeros */
	assert_int_equal(b2[0], 0);
	assert_int_equal(b2[MOAT_OSSL_BIG + 4999], 0xAB); /* a partial page */
	b2[0] = 1;					   /* usable again */
	moat_ossl_capture_move(b2, &other);
	assert_null(slot);
	assert_ptr_equal(other, b2);
	/* Grown (as BUF_MEM_grow does): a new block, the slot let go. */
	b2 = OPENSSL_realloc(b2, 3 * MOAT_OSSL_BIG);
	assert_null(other);
	assert_int_equal(b2[0], 1);
	OPENSSL_free(b2);
	OPENSSL_free(b1);
	OPENSSL_free(small);
	(void)moat_ossl_account_set(MOAT_OSSL_NONE);
	assert_int_equal(moat_ossl_bytes(MOAT_OSSL_DTLS), base);
}

int main(void)
{
	/* Before OpenSSL's first allocation, as moatd's main does. */
	if (!moat_ossl_mem_install())
		return 1;
	const struct CMUnitTest tests[] = {
		T(test_counts_per_account),
		T(test_capture_discard_move),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
