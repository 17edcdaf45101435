/* Unit tests for src/common: UTF-8 validation, bounded buffers, log
 * escaping, allocation accounting and fault injection, error names.
 *
 * Every test runs with a teardown that checks the allocator reports zero
 * live bytes and that fault injection is disarmed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/moat_common.h"

#include "test_util.h"

/* ---- UTF-8 ---------------------------------------------------------- */

struct utf8_case {
	const char *name;
	const char *bytes;
	size_t len;
	bool valid;
};

#define U(name, lit, valid) {name, lit, sizeof(lit) - 1, valid}

static const struct utf8_case utf8_cases[] = {
	U("empty", "", true),
	U("ascii", "hello/world 123", true),
	U("ascii DEL and controls (allowed, SHOULD NOT)", "\x01\x1f\x7f", true),
	/* 2-byte */
	U("U+0080 lowest 2-byte", "\xC2\x80", true),
	U("U+00E9", "\xC3\xA9", true),
	U("U+07FF highest 2-byte", "\xDF\xBF", true),
	/* 3-byte */
	U("U+0800 lowest 3-byte", "\xE0\xA0\x80", true),
	U("U+20AC euro", "\xE2\x82\xAC", true),
	U("U+D7FF before surrogates", "\xED\x9F\xBF", true),
	U("U+E000 after surrogates", "\xEE\x80\x80", true),
	U("U+FEFF BOM is a valid char [MQTT-1.5.3-3]", "\xEF\xBB\xBF", true),
	U("U+FFFF", "\xEF\xBF\xBF", true),
	/* 4-byte */
	U("U+10000 lowest 4-byte", "\xF0\x90\x80\x80", true),
	U("U+1F600", "\xF0\x9F\x98\x80", true),
	U("U+10FFFF highest", "\xF4\x8F\xBF\xBF", true),
	U("mixed", "h\xC3\xA9llo \xE2\x82\xAC \xF0\x9F\x98\x80!", true),
	/* overlongs */
	U("overlong NUL C0 80", "\xC0\x80", false),
	U("overlong C1 BF", "\xC1\xBF", false),
	U("overlong E0 80 80", "\xE0\x80\x80", false),
	U("overlong E0 9F BF", "\xE0\x9F\xBF", false),
	U("overlong F0 80 80 80", "\xF0\x80\x80\x80", false),
	U("overlong F0 8F BF BF", "\xF0\x8F\xBF\xBF", false),
	/* surrogates [MQTT-1.5.3-1] */
	U("surrogate D800", "\xED\xA0\x80", false),
	U("surrogate DBFF", "\xED\xAF\xBF", false),
	U("surrogate DC00", "\xED\xB0\x80", false),
	U("surrogate DFFF", "\xED\xBF\xBF", false),
	U("surrogate pair CESU", "\xED\xA0\xBD\xED\xB8\x80", false),
	/* beyond U+10FFFF */
	U("U+110000 F4 90 80 80", "\xF4\x90\x80\x80", false),
	U("F5 lead", "\xF5\x80\x80\x80", false),
	U("F7 BF BF BF", "\xF7\xBF\xBF\xBF", false),
	U("5-byte F8", "\xF8\x88\x80\x80\x80", false),
	U("6-byte FC", "\xFC\x84\x80\x80\x80\x80", false),
	U("FE", "\xFE", false),
	U("FF", "\xFF", false),
	/* U+0000 [MQTT-1.5.3-2] */
	U("NUL alone", "\x00", false),
	U("NUL inside", "a\x00" "b", false),
	U("NUL at end", "ab\x00", false),
	/* truncated sequences */
	U("truncated 2-byte", "\xC3", false),
	U("truncated 3-byte (1 of 2)", "\xE2", false),
	U("truncated 3-byte (2 of 3)", "\xE2\x82", false),
	U("truncated 4-byte (3 of 4)", "\xF0\x9F\x98", false),
	U("truncated after ascii", "abc\xE2\x82", false),
	/* lone / bad continuation bytes */
	U("lone 80", "\x80", false),
	U("lone BF", "\xBF", false),
	U("continuation inside ascii", "a\x80" "b", false),
	U("two continuations after 2-byte", "\xC3\xA9\xA9", false),
	U("2-byte, bad continuation", "\xC3\x28", false),
	U("3-byte, bad 2nd", "\xE2\x28\xA1", false),
	U("3-byte, bad 3rd", "\xE2\x82\x28", false),
	U("4-byte, bad 3rd", "\xF0\x9F\x28\x80", false),
	U("lead followed by lead", "\xC3\xC3\xA9", false),
};

static void test_utf8_table(void **state)
{
	(void)state;
	for (size_t i = 0; i < MOAT_ARRAY_LEN(utf8_cases); i++) {
		const struct utf8_case *c = &utf8_cases[i];
		/* Exact-size heap copy so ASan catches any over-read. */
		uint8_t *p = moat_malloc(c->len ? c->len : 1);
		assert_non_null(p);
		memcpy(p, c->bytes, c->len);
		bool got = moat_utf8_valid(p, c->len);
		moat_free(p);
		if (got != c->valid)
			fail_msg("utf8 case '%s': expected %s", c->name,
				 c->valid ? "valid" : "invalid");
	}
}

/* Every prefix of a valid multi-byte string that cuts a character is
 * invalid; every prefix that ends on a boundary is valid. */
static void test_utf8_every_prefix(void **state)
{
	(void)state;
	static const uint8_t s[] = "a\xC3\xA9" "b\xE2\x82\xAC" "c\xF0\x9F\x98\x80";
	/* character boundaries (exclusive ends): a|é|b|€|c|😀 */
	static const size_t ends[] = {0, 1, 3, 4, 7, 8, 12};
	size_t len = sizeof(s) - 1;
	for (size_t n = 0; n <= len; n++) {
		bool boundary = false;
		for (size_t k = 0; k < MOAT_ARRAY_LEN(ends); k++)
			boundary = boundary || ends[k] == n;
		uint8_t *p = moat_malloc(n ? n : 1);
		assert_non_null(p);
		memcpy(p, s, n);
		bool got = moat_utf8_valid(p, n);
		moat_free(p);
		if (got != boundary)
			fail_msg("prefix %zu: expected %d got %d", n, boundary,
				 got);
	}
}

/* Exhaustive over every code point: the canonical encoding is valid
 * except for U+0000 and surrogates. */
static size_t encode_cp(uint32_t cp, uint8_t out[4])
{
	if (cp < 0x80) {
		out[0] = (uint8_t)cp;
		return 1;
	}
	if (cp < 0x800) {
		out[0] = (uint8_t)(0xC0 | (cp >> 6));
		out[1] = (uint8_t)(0x80 | (cp & 0x3F));
		return 2;
	}
	if (cp < 0x10000) {
		out[0] = (uint8_t)(0xE0 | (cp >> 12));
		out[1] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
		out[2] = (uint8_t)(0x80 | (cp & 0x3F));
		return 3;
	}
	out[0] = (uint8_t)(0xF0 | (cp >> 18));
	out[1] = (uint8_t)(0x80 | ((cp >> 12) & 0x3F));
	out[2] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
	out[3] = (uint8_t)(0x80 | (cp & 0x3F));
	return 4;
}

static void test_utf8_all_code_points(void **state)
{
	(void)state;
	size_t n_valid = 0;
	for (uint32_t cp = 0; cp <= 0x10FFFF; cp++) {
		uint8_t b[4];
		size_t n = encode_cp(cp, b);
		bool expect = cp != 0 && !(cp >= 0xD800 && cp <= 0xDFFF);
		bool got = moat_utf8_valid(b, n);
		if (got != expect)
			fail_msg("U+%04X: expected %d got %d", (unsigned)cp,
				 expect, got);
		n_valid += got;
	}
	/* 0x110000 code points minus U+0000 minus 2048 surrogates */
	assert_int_equal(n_valid, 0x110000 - 1 - 2048);
}

/* ---- moat_buf ------------------------------------------------------- */

static void test_buf_init_cleanup(void **state)
{
	(void)state;
	struct moat_buf b;
	memset(&b, 0xAB, sizeof(b));
	moat_buf_init(&b, 1000);
	assert_null(b.data);
	assert_int_equal(b.off, 0);
	assert_int_equal(b.len, 0);
	assert_int_equal(b.cap, 0);
	assert_int_equal(b.max, 1000);
	assert_int_equal(moat_buf_used(&b), 0);
	assert_int_equal(moat_buf_append(&b, "abc", 3), MOAT_OK);
	assert_non_null(b.data);
	moat_buf_cleanup(&b);
	assert_null(b.data);
	assert_int_equal(b.cap, 0);
	assert_int_equal(b.len, 0);
	assert_int_equal(b.off, 0);
	/* cleanup twice is harmless */
	moat_buf_cleanup(&b);
}

static void test_buf_reserve_commit_consume(void **state)
{
	(void)state;
	struct moat_buf b;
	moat_buf_init(&b, 4096);
	uint8_t *w = moat_buf_reserve(&b, 10);
	assert_non_null(w);
	assert_true(b.cap >= 10 && b.cap <= 4096);
	/* reserve alone does not change the content */
	assert_int_equal(moat_buf_used(&b), 0);
	memcpy(w, "0123456789", 10);
	moat_buf_commit(&b, 10);
	assert_int_equal(moat_buf_used(&b), 10);
	assert_int_equal(b.len, 10);
	assert_memory_equal(b.data + b.off, "0123456789", 10);

	moat_buf_consume(&b, 4);
	assert_int_equal(b.off, 4);
	assert_int_equal(moat_buf_used(&b), 6);
	assert_memory_equal(b.data + b.off, "456789", 6);

	assert_int_equal(moat_buf_append(&b, "ab", 2), MOAT_OK);
	assert_int_equal(moat_buf_used(&b), 8);
	assert_memory_equal(b.data + b.off, "456789ab", 8);

	/* consuming everything rewinds to the start */
	moat_buf_consume(&b, 8);
	assert_int_equal(b.off, 0);
	assert_int_equal(b.len, 0);
	assert_int_equal(moat_buf_used(&b), 0);
	/* over-consuming clamps to empty */
	assert_int_equal(moat_buf_append(&b, "xyz", 3), MOAT_OK);
	moat_buf_consume(&b, 100);
	assert_int_equal(b.off, 0);
	assert_int_equal(b.len, 0);

	/* a reserve on a drained buffer starts at data[0] */
	assert_int_equal(moat_buf_append(&b, "12345", 5), MOAT_OK);
	moat_buf_consume(&b, 2);
	moat_buf_consume(&b, 3);
	w = moat_buf_reserve(&b, 1);
	assert_ptr_equal(w, b.data);
	moat_buf_cleanup(&b);
}

static void test_buf_growth_to_max_and_refusal(void **state)
{
	(void)state;
	struct moat_buf b;
	uint8_t chunk[600];
	for (size_t i = 0; i < sizeof(chunk); i++)
		chunk[i] = (uint8_t)i;
	moat_buf_init(&b, 1000);
	assert_int_equal(moat_buf_append(&b, chunk, 600), MOAT_OK);
	assert_true(b.cap >= 600 && b.cap <= 1000);
	assert_int_equal(moat_buf_append(&b, chunk, 400), MOAT_OK);
	assert_int_equal(moat_buf_used(&b), 1000);
	assert_int_equal(b.cap, 1000); /* growth is clamped to max */
	/* full: one more byte is refused and nothing changes */
	assert_int_equal(moat_buf_append(&b, chunk, 1), MOAT_ENOMEM);
	assert_null(moat_buf_reserve(&b, 1));
	assert_int_equal(moat_buf_used(&b), 1000);
	assert_memory_equal(b.data, chunk, 600);
	assert_memory_equal(b.data + 600, chunk, 400);
	/* consuming makes room again (via compaction) */
	moat_buf_consume(&b, 1);
	assert_int_equal(moat_buf_append(&b, chunk, 1), MOAT_OK);
	assert_int_equal(moat_buf_used(&b), 1000);
	assert_int_equal(b.off, 0);
	assert_int_equal(b.data[0], 1);
	assert_int_equal(b.data[999], 0);
	moat_buf_cleanup(&b);

	/* a single request larger than max is refused without allocating */
	moat_buf_init(&b, 100);
	assert_int_equal(moat_buf_append(&b, chunk, 101), MOAT_ENOMEM);
	assert_null(b.data);
	assert_int_equal(moat_buf_used(&b), 0);
	assert_null(moat_buf_reserve(&b, SIZE_MAX));
	assert_int_equal(moat_buf_append(&b, chunk, 100), MOAT_OK);
	assert_int_equal(b.cap, 100);
	moat_buf_cleanup(&b);

	/* max 0 accepts nothing */
	moat_buf_init(&b, 0);
	assert_int_equal(moat_buf_append(&b, chunk, 1), MOAT_ENOMEM);
	moat_buf_cleanup(&b);
}

static void test_buf_large_growth_keeps_content(void **state)
{
	(void)state;
	struct moat_buf b;
	moat_buf_init(&b, 1u << 20);
	for (uint32_t i = 0; i < 100000; i++) {
		uint8_t v = (uint8_t)(i * 7u);
		assert_int_equal(moat_buf_append(&b, &v, 1), MOAT_OK);
	}
	assert_int_equal(moat_buf_used(&b), 100000);
	for (uint32_t i = 0; i < 100000; i++)
		if (b.data[i] != (uint8_t)(i * 7u))
			fail_msg("byte %u corrupted", (unsigned)i);
	moat_buf_cleanup(&b);
}

static void test_buf_compaction(void **state)
{
	(void)state;
	struct moat_buf b;
	uint8_t src[400];
	for (size_t i = 0; i < sizeof(src); i++)
		src[i] = (uint8_t)(i & 0xFF);
	moat_buf_init(&b, 512);
	assert_int_equal(moat_buf_append(&b, src, 400), MOAT_OK);
	size_t cap = b.cap;
	assert_true(cap >= 400 && cap <= 512);
	moat_buf_consume(&b, 300);
	assert_int_equal(b.off, 300);
	assert_int_equal(moat_buf_used(&b), 100);
	/* 100 used + 300 new <= max: must succeed by compacting (the
	 * unconsumed tail moves to the front) */
	uint8_t more[300];
	memset(more, 0xEE, sizeof(more));
	assert_int_equal(moat_buf_append(&b, more, 300), MOAT_OK);
	assert_int_equal(b.off, 0);
	assert_int_equal(b.len, 400);
	assert_int_equal(moat_buf_used(&b), 400);
	assert_true(b.cap >= 400 && b.cap <= 512);
	assert_memory_equal(b.data, src + 300, 100);
	assert_memory_equal(b.data + 100, more, 300);
	/* 400 used + 113 > max 512: refused, content intact */
	assert_int_equal(moat_buf_append(&b, more, 113), MOAT_ENOMEM);
	assert_int_equal(moat_buf_used(&b), 400);
	assert_memory_equal(b.data, src + 300, 100);
	/* exactly up to max is fine */
	assert_int_equal(moat_buf_append(&b, more, 112), MOAT_OK);
	assert_int_equal(moat_buf_used(&b), 512);
	moat_buf_cleanup(&b);

	/* consumed space at the front is not enough: compact and grow */
	moat_buf_init(&b, 4096);
	assert_int_equal(moat_buf_append(&b, src, 200), MOAT_OK);
	moat_buf_consume(&b, 100);
	assert_int_equal(moat_buf_append(&b, more, 300), MOAT_OK);
	assert_int_equal(b.off, 0);
	assert_int_equal(moat_buf_used(&b), 400);
	assert_true(b.cap >= 400 && b.cap <= 4096);
	assert_memory_equal(b.data, src + 100, 100);
	assert_memory_equal(b.data + 100, more, 300);
	moat_buf_cleanup(&b);
}

static void test_buf_shrink(void **state)
{
	(void)state;
	struct moat_buf b;
	static uint8_t big[8192];
	moat_buf_init(&b, 1u << 20);
	assert_int_equal(moat_buf_append(&b, big, sizeof(big)), MOAT_OK);
	/* not empty: shrink keeps everything */
	moat_buf_shrink(&b);
	assert_non_null(b.data);
	assert_int_equal(moat_buf_used(&b), sizeof(big));
	moat_buf_consume(&b, sizeof(big));
	/* empty and large: memory released */
	moat_buf_shrink(&b);
	assert_null(b.data);
	assert_int_equal(b.cap, 0);
	assert_int_equal(moat_alloc_live_bytes(), 0);
	/* still usable */
	assert_int_equal(moat_buf_append(&b, "x", 1), MOAT_OK);
	moat_buf_consume(&b, 1);
	/* empty but small: kept (avoids churn on idle connections) */
	uint8_t *keep = b.data;
	moat_buf_shrink(&b);
	assert_ptr_equal(b.data, keep);
	moat_buf_cleanup(&b);
}

/* Appending nothing must always succeed, even to a buffer that has not
 * allocated yet (e.g. an empty will payload or password). */
static void test_buf_append_zero_bytes(void **state)
{
	(void)state;
	struct moat_buf b;
	moat_buf_init(&b, 100);
	assert_int_equal(moat_buf_append(&b, "", 0), MOAT_OK);
	assert_int_equal(moat_buf_used(&b), 0);
	assert_int_equal(moat_buf_append(&b, "ab", 2), MOAT_OK);
	assert_int_equal(moat_buf_append(&b, NULL, 0), MOAT_OK);
	assert_int_equal(moat_buf_used(&b), 2);
	moat_buf_cleanup(&b);
	/* reserving nothing on a fresh buffer is not a failure (and must not
	 * compute NULL + 0, which UBSan reports) */
	moat_buf_init(&b, 100);
	uint8_t *w = moat_buf_reserve(&b, 0);
	assert_non_null(w);
	assert_ptr_equal(w, b.data);
	assert_int_equal(moat_buf_used(&b), 0);
	moat_buf_cleanup(&b);
}

static void test_bytes_eq(void **state)
{
	(void)state;
	struct moat_bytes a = {(const uint8_t *)"abc", 3};
	struct moat_bytes a2 = {(const uint8_t *)"abcd", 3};
	struct moat_bytes c = {(const uint8_t *)"abd", 3};
	struct moat_bytes e = {NULL, 0};
	assert_true(moat_bytes_eq(a, a2));
	assert_false(moat_bytes_eq(a, c));
	assert_false(moat_bytes_eq(a, e));
	assert_true(moat_bytes_eq(e, e));
	assert_true(moat_bytes_eq_str(a, "abc"));
	assert_false(moat_bytes_eq_str(a, "ab"));
	assert_false(moat_bytes_eq_str(a, "abcd"));
	assert_true(moat_bytes_eq_str(e, ""));
}

/* ---- allocation ------------------------------------------------------- */

static void test_alloc_accounting(void **state)
{
	(void)state;
	assert_int_equal(moat_alloc_live_bytes(), 0);
	uint8_t *p = moat_malloc(100);
	assert_non_null(p);
	assert_int_equal((uintptr_t)p % 16, 0);
	assert_int_equal(moat_alloc_live_bytes(), 100);
	memset(p, 1, 100);
	p = moat_realloc(p, 300);
	assert_non_null(p);
	assert_int_equal(p[99], 1);
	assert_int_equal(moat_alloc_live_bytes(), 300);
	p = moat_realloc(p, 50);
	assert_non_null(p);
	assert_int_equal(p[49], 1);
	assert_int_equal(moat_alloc_live_bytes(), 50);
	uint32_t *z = moat_calloc(10, sizeof(uint32_t));
	assert_non_null(z);
	for (size_t i = 0; i < 10; i++)
		assert_int_equal(z[i], 0);
	assert_int_equal(moat_alloc_live_bytes(), 50 + 40);
	moat_free(z);
	moat_free(p);
	moat_free(NULL);
	assert_int_equal(moat_alloc_live_bytes(), 0);

	/* realloc(NULL) behaves like malloc */
	p = moat_realloc(NULL, 8);
	assert_non_null(p);
	assert_int_equal(moat_alloc_live_bytes(), 8);
	MOAT_FREE(p);
	assert_null(p);

	/* overflowing sizes are refused, not wrapped */
	assert_null(moat_calloc(SIZE_MAX / 2, 4));
	assert_null(moat_malloc(SIZE_MAX));
	assert_null(moat_malloc(SIZE_MAX - 8));
	assert_int_equal(moat_alloc_live_bytes(), 0);
}

static void test_strdup(void **state)
{
	(void)state;
	char *s = moat_strdup("hello");
	assert_non_null(s);
	assert_string_equal(s, "hello");
	assert_int_equal(moat_alloc_live_bytes(), 6);
	moat_free(s);
	s = moat_strndup("abcdef", 3);
	assert_string_equal(s, "abc");
	moat_free(s);
	s = moat_strndup(NULL, 0);
	assert_non_null(s);
	assert_string_equal(s, "");
	moat_free(s);
}

static void test_alloc_fault_injection(void **state)
{
	(void)state;
	/* fail_at(1): the very next allocation fails, later ones succeed */
	moat_alloc_fail_at(1);
	assert_null(moat_malloc(16));
	void *p = moat_malloc(16);
	assert_non_null(p);
	moat_free(p);

	/* fail_at(3): two succeed, the third fails, the fourth succeeds */
	moat_alloc_fail_at(3);
	void *a = moat_malloc(1);
	void *b = moat_calloc(1, 1);
	void *c = moat_strdup("x");
	void *d = moat_malloc(1);
	assert_non_null(a);
	assert_non_null(b);
	assert_null(c);
	assert_non_null(d);
	moat_free(a);
	moat_free(b);
	moat_free(d);

	/* realloc failure keeps the old block valid */
	uint8_t *r = moat_malloc(4);
	assert_non_null(r);
	memcpy(r, "abcd", 4);
	moat_alloc_fail_at(1);
	assert_null(moat_realloc(r, 4096));
	assert_memory_equal(r, "abcd", 4);
	assert_int_equal(moat_alloc_live_bytes(), 4);
	moat_free(r);

	/* fail_at(0) disarms */
	moat_alloc_fail_at(1);
	moat_alloc_fail_at(0);
	p = moat_malloc(1);
	assert_non_null(p);
	moat_free(p);
	assert_int_equal(moat_alloc_live_bytes(), 0);
}

static void test_buf_append_enomem_on_alloc_failure(void **state)
{
	(void)state;
	struct moat_buf b;
	moat_buf_init(&b, 1u << 16);
	moat_alloc_fail_at(1);
	assert_int_equal(moat_buf_append(&b, "hello", 5), MOAT_ENOMEM);
	assert_null(b.data);
	assert_int_equal(moat_buf_used(&b), 0);
	/* injection was one-shot: the retry works */
	assert_int_equal(moat_buf_append(&b, "hello", 5), MOAT_OK);
	assert_int_equal(moat_buf_used(&b), 5);

	/* a growth (realloc) failure leaves the old content intact */
	static uint8_t big[10000];
	moat_alloc_fail_at(1);
	assert_int_equal(moat_buf_append(&b, big, sizeof(big)), MOAT_ENOMEM);
	assert_int_equal(moat_buf_used(&b), 5);
	assert_memory_equal(b.data + b.off, "hello", 5);
	assert_int_equal(moat_buf_append(&b, big, sizeof(big)), MOAT_OK);
	assert_int_equal(moat_buf_used(&b), 5 + sizeof(big));
	moat_buf_cleanup(&b);
}

/* ---- log escaping ----------------------------------------------------- */

static const char *esc(const char *in, size_t len, char *out, size_t outsz)
{
	return moat_log_escape((const uint8_t *)in, len, out, outsz);
}

static void test_log_escape_plain_and_controls(void **state)
{
	(void)state;
	char out[128];
	assert_ptr_equal(esc("abc", 3, out, sizeof(out)), out);
	assert_string_equal(out, "abc");
	esc("", 0, out, sizeof(out));
	assert_string_equal(out, "");
	esc("a\nb\tc\r", 6, out, sizeof(out));
	assert_string_equal(out, "a\\x0ab\\x09c\\x0d");
	esc("\x00\x1b[31m\x7f", 7, out, sizeof(out));
	assert_string_equal(out, "\\x00\\x1b[31m\\x7f");
	/* backslash is escaped so output is unambiguous */
	esc("a\\x41", 5, out, sizeof(out));
	assert_string_equal(out, "a\\x5cx41");
	/* non-ASCII bytes are escaped too */
	esc("\xC3\xA9\xFF", 3, out, sizeof(out));
	assert_string_equal(out, "\\xc3\\xa9\\xff");
	/* printable edge characters stay */
	esc(" ~", 2, out, sizeof(out));
	assert_string_equal(out, " ~");
}

static void test_log_escape_truncation(void **state)
{
	(void)state;
	char in[100];
	memset(in, 'a', sizeof(in));
	char out[32];

	/* canary after the allowed size: never written */
	memset(out, '#', sizeof(out));
	esc(in, sizeof(in), out, 16);
	assert_string_equal(out, "aaaaaaaaaaaa...");
	assert_int_equal(strlen(out), 15);
	for (size_t i = 16; i < sizeof(out); i++)
		assert_int_equal(out[i], '#');

	/* escapes are never split: 4-byte units then "..." */
	char ctl[10];
	memset(ctl, 0x01, sizeof(ctl));
	memset(out, '#', sizeof(out));
	esc(ctl, sizeof(ctl), out, 16);
	assert_string_equal(out, "\\x01\\x01\\x01...");
	for (size_t i = 16; i < sizeof(out); i++)
		assert_int_equal(out[i], '#');

	/* tiny outputs */
	memset(out, '#', sizeof(out));
	esc(in, sizeof(in), out, 4);
	assert_string_equal(out, "...");
	assert_int_equal(out[4], '#');
	memset(out, '#', sizeof(out));
	esc(in, sizeof(in), out, 3);
	assert_string_equal(out, "");
	assert_int_equal(out[3], '#');
	memset(out, '#', sizeof(out));
	esc(in, sizeof(in), out, 1);
	assert_string_equal(out, "");
	assert_int_equal(out[1], '#');
	/* outsz 0: nothing written at all */
	memset(out, '#', sizeof(out));
	assert_ptr_equal(esc(in, sizeof(in), out, 0), out);
	assert_int_equal(out[0], '#');
}

static void test_log_escape_never_overflows(void **state)
{
	(void)state;
	uint8_t in[64];
	for (size_t i = 0; i < sizeof(in); i++)
		in[i] = (uint8_t)(i * 37u);
	for (size_t outsz = 1; outsz <= 300; outsz++) {
		char *out = moat_malloc(outsz); /* exact size: ASan checks */
		assert_non_null(out);
		moat_log_escape(in, sizeof(in), out, outsz);
		size_t n = strlen(out);
		assert_true(n < outsz);
		for (size_t i = 0; i < n; i++)
			assert_true(out[i] >= 0x20 && out[i] < 0x7f);
		moat_free(out);
	}
}

/* Run moat_log with stderr redirected to a temporary file; returns the
 * number of bytes logged, copied into out. */
static size_t capture_log(enum moat_log_level lvl, const char *msg, char *out,
			  size_t outsz)
{
	fflush(stderr);
	FILE *tmp = tmpfile();
	assert_non_null(tmp);
	int saved = dup(2);
	assert_true(saved >= 0);
	assert_true(dup2(fileno(tmp), 2) >= 0);
	moat_log(lvl, "%s", msg);
	fflush(stderr);
	assert_true(dup2(saved, 2) >= 0);
	close(saved);
	rewind(tmp);
	size_t n = fread(out, 1, outsz - 1, tmp);
	out[n] = '\0';
	fclose(tmp);
	return n;
}

static void test_log_output(void **state)
{
	(void)state;
	static char out[8192];
	enum moat_log_level old = moat_log_get_level();
	moat_log_set_level(MOAT_LOG_NOTICE);

	size_t n = capture_log(MOAT_LOG_NOTICE, "hello 42", out, sizeof(out));
	/* 2024-01-02T03:04:05.678Z notice: hello 42\n */
	assert_int_equal(n, 24 + 1 + strlen("notice: hello 42\n"));
	assert_int_equal(out[4], '-');
	assert_int_equal(out[10], 'T');
	assert_int_equal(out[19], '.');
	assert_int_equal(out[23], 'Z');
	assert_string_equal(out + 25, "notice: hello 42\n");

	n = capture_log(MOAT_LOG_ERROR, "bad", out, sizeof(out));
	assert_string_equal(out + 25, "error: bad\n");
	/* above the threshold: nothing at all */
	n = capture_log(MOAT_LOG_INFO, "quiet", out, sizeof(out));
	assert_int_equal(n, 0);
	n = capture_log(MOAT_LOG_DEBUG, "quiet", out, sizeof(out));
	assert_int_equal(n, 0);

	/* an over-long message is cut, but still one whole line */
	static char big[5000];
	memset(big, 'x', sizeof(big) - 1);
	n = capture_log(MOAT_LOG_WARN, big, out, sizeof(out));
	assert_int_equal(n, 2047);
	assert_int_equal(out[n - 1], '\n');
	assert_null(memchr(out, '\n', n - 1));
	assert_memory_equal(out + 25, "warning: xxx", 12);
	moat_log_set_level(old);
}

static void test_log_level_parse(void **state)
{
	(void)state;
	enum moat_log_level l = MOAT_LOG_ERROR;
	assert_int_equal(moat_log_level_parse("debug", &l), MOAT_OK);
	assert_int_equal(l, MOAT_LOG_DEBUG);
	assert_int_equal(moat_log_level_parse("WARN", &l), MOAT_OK);
	assert_int_equal(l, MOAT_LOG_WARN);
	assert_int_equal(moat_log_level_parse("warning", &l), MOAT_OK);
	assert_int_equal(l, MOAT_LOG_WARN);
	assert_int_equal(moat_log_level_parse("Error", &l), MOAT_OK);
	assert_int_equal(l, MOAT_LOG_ERROR);
	assert_int_equal(moat_log_level_parse("verbose", &l), MOAT_EINVAL);
	assert_int_equal(l, MOAT_LOG_ERROR);
	enum moat_log_level old = moat_log_get_level();
	moat_log_set_level(MOAT_LOG_INFO);
	assert_int_equal(moat_log_get_level(), MOAT_LOG_INFO);
	moat_log_set_level(old);
}

/* ---- errors ------------------------------------------------------------ */

static void test_err_names(void **state)
{
	(void)state;
	static const struct {
		int code;
		const char *name;
		const char *text;
	} t[] = {
		{MOAT_OK, "MOAT_OK", "success"},
		{MOAT_ENOMEM, "MOAT_ENOMEM", "out of memory"},
		{MOAT_EINVAL, "MOAT_EINVAL", "invalid argument"},
		{MOAT_EMALFORMED, "MOAT_EMALFORMED", "malformed packet"},
		{MOAT_EPROTO, "MOAT_EPROTO", "protocol error"},
		{MOAT_ELIMIT, "MOAT_ELIMIT", "limit exceeded"},
		{MOAT_EDENIED, "MOAT_EDENIED", "not authorised"},
		{MOAT_EIO, "MOAT_EIO", "I/O error"},
		{MOAT_ETLS, "MOAT_ETLS", "TLS error"},
		{MOAT_EAGAIN, "MOAT_EAGAIN", "try again"},
		{MOAT_DECLINED, "MOAT_DECLINED", "declined"},
		{MOAT_ECLOSED, "MOAT_ECLOSED", "connection closed"},
		{MOAT_ENOTFOUND, "MOAT_ENOTFOUND", "not found"},
		{MOAT_EUTF8, "MOAT_EUTF8", "invalid UTF-8"},
	};
	for (size_t i = 0; i < MOAT_ARRAY_LEN(t); i++) {
		assert_string_equal(moat_err_name(t[i].code), t[i].name);
		assert_string_equal(moat_strerror(t[i].code), t[i].text);
	}
	/* numbers are part of the ABI: never renumbered */
	assert_int_equal(MOAT_ENOMEM, -1);
	assert_int_equal(MOAT_EMALFORMED, -3);
	assert_int_equal(MOAT_EAGAIN, -9);
	assert_int_equal(MOAT_EUTF8, -13);
	/* unknown codes */
	assert_string_equal(moat_err_name(1), "MOAT_E?");
	assert_string_equal(moat_err_name(-14), "MOAT_E?");
	assert_string_equal(moat_strerror(-1000), "unknown error");
	assert_string_equal(moat_strerror(42), "unknown error");
}

static void test_time_monotonic(void **state)
{
	(void)state;
	uint64_t a = moat_now_ms();
	uint64_t b = moat_now_ms();
	assert_true(b >= a);
	/* sanity: wall clock after 2020-01-01 */
	assert_true(moat_wall_s() > 1577836800);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_utf8_table),
		T(test_utf8_every_prefix),
		T(test_utf8_all_code_points),
		T(test_buf_init_cleanup),
		T(test_buf_reserve_commit_consume),
		T(test_buf_growth_to_max_and_refusal),
		T(test_buf_large_growth_keeps_content),
		T(test_buf_compaction),
		T(test_buf_shrink),
		T(test_buf_append_zero_bytes),
		T(test_bytes_eq),
		T(test_alloc_accounting),
		T(test_strdup),
		T(test_alloc_fault_injection),
		T(test_buf_append_enomem_on_alloc_failure),
		T(test_log_escape_plain_and_controls),
		T(test_log_escape_truncation),
		T(test_log_escape_never_overflows),
		T(test_log_output),
		T(test_log_level_parse),
		T(test_err_names),
		T(test_time_monotonic),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
