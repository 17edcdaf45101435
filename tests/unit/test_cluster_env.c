/* Unit tests for the envelope of messages between cluster nodes
 * (src/cluster/cluster_env.c, docs/cluster.md "Wire format"): every field
 * survives the round trip; truncated, oversized and random input is
 * refused without reading out of bounds. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "broker/broker_int.h"
#include "cluster/cluster_int.h"

static const uint8_t props[] = {0x01, 0x01, 0x03, 0x00, 0x04, 't', 'e',
				'x', 't'}; /* format 1, content type */

static struct moat_msg *sample(bool retain, bool expiry, bool src)
{
	struct moat_msg_extra x = {
		.props = props,
		.props_len = sizeof(props),
		.has_expiry = expiry,
		.expiry_s = 60,
		.has_src = src,
		.src_user = "alice",
		.src_cid = "dev-1",
	};
	return moat_msg_new5((const uint8_t *)"a/b", 3,
			     (const uint8_t *)"payload\0bytes", 13, 2, retain,
			     &x);
}

static uint8_t *encode(const struct moat_msg *m, bool groups, size_t *len)
{
	uint8_t *buf = malloc(moat__cluster_env_size(m));
	assert_non_null(buf);
	*len = moat__cluster_env_encode(m, 0x0123456789abcdefull, groups,
					moat_now_ms(), buf);
	assert_true(*len <= moat__cluster_env_size(m));
	return buf;
}

static void test_round_trip(void **state)
{
	(void)state;
	for (int f = 0; f < 16; f++) {
		struct moat_msg *m = sample(f & 1, f & 2, f & 4);
		size_t len;
		uint8_t *buf = encode(m, f & 8, &len);
		uint64_t nonce = 0;
		bool groups = false;
		struct moat_msg *r = NULL;
		assert_int_equal(moat__cluster_env_decode(buf, len,
							  (const uint8_t *)"a/b",
							  3, &nonce, &groups,
							  &r),
				 MOAT_OK);
		assert_int_equal(nonce, 0x0123456789abcdefull);
		assert_int_equal(groups, (f & 8) != 0);
		assert_true(r->remote);
		assert_int_equal(r->qos, 2);
		assert_int_equal(r->retain, (f & 1) != 0);
		assert_int_equal(r->payload_len, 13);
		assert_memory_equal(r->payload, "payload\0bytes", 13);
		assert_int_equal(r->props_len, sizeof(props));
		assert_memory_equal(r->props, props, sizeof(props));
		assert_string_equal(r->topic, "a/b");
		assert_int_equal(r->expiry_ms != 0, (f & 2) != 0);
		assert_int_equal(r->has_src, (f & 4) != 0);
		if (f & 4) {
			assert_string_equal(r->src_user, "alice");
			assert_string_equal(r->src_cid, "dev-1");
		}
		assert_int_equal(r->origin, 0); /* never a local session */
		moat_msg_unref(&r);
		moat_msg_unref(&m);
		free(buf);
	}
}

static void test_anonymous_source(void **state)
{
	(void)state;
	struct moat_msg_extra x = {.has_src = true, .src_cid = "c"};
	struct moat_msg *m = moat_msg_new5((const uint8_t *)"t", 1, NULL, 0, 1,
					   true, &x);
	size_t len;
	uint8_t *buf = encode(m, false, &len);
	uint64_t nonce;
	bool groups;
	struct moat_msg *r = NULL;
	assert_int_equal(moat__cluster_env_decode(buf, len,
						  (const uint8_t *)"t", 1,
						  &nonce, &groups, &r),
			 MOAT_OK);
	assert_true(r->has_src);
	assert_null(r->src_user);
	assert_string_equal(r->src_cid, "c");
	assert_int_equal(r->payload_len, 0);
	moat_msg_unref(&r);
	moat_msg_unref(&m);
	free(buf);
}

/* The smallest: no properties, no payload, nothing optional (11 bytes). */
static void test_smallest(void **state)
{
	(void)state;
	for (size_t plen = 0; plen < 4; plen++) {
		struct moat_msg *m = moat_msg_new((const uint8_t *)"t", 1,
						  (const uint8_t *)"abc", plen,
						  1, false);
		size_t len;
		uint8_t *buf = encode(m, false, &len);
		assert_int_equal(len, 11 + plen);
		uint64_t nonce;
		bool groups;
		struct moat_msg *r = NULL;
		assert_int_equal(moat__cluster_env_decode(buf, len,
							  (const uint8_t *)"t",
							  1, &nonce, &groups,
							  &r),
				 MOAT_OK);
		assert_int_equal(r->payload_len, plen);
		assert_int_equal(r->qos, 1);
		moat_msg_unref(&r);
		moat_msg_unref(&m);
		free(buf);
	}
}

/* Every truncation is refused or decodes a shorter payload; nothing reads
 * past the end (ASan builds check that). */
static void test_truncated(void **state)
{
	(void)state;
	struct moat_msg *m = sample(true, true, true);
	size_t len;
	uint8_t *buf = encode(m, false, &len);
	size_t head = len - 13; /* everything before the payload */
	for (size_t n = 0; n < len; n++) {
		uint8_t *cut = malloc(n ? n : 1);
		memcpy(cut, buf, n);
		uint64_t nonce;
		bool groups;
		struct moat_msg *r = NULL;
		int rc = moat__cluster_env_decode(cut, n, (const uint8_t *)"a", 1,
						  &nonce, &groups, &r);
		if (n < head) {
			assert_int_equal(rc, MOAT_EMALFORMED);
			assert_null(r);
		} else {
			assert_int_equal(rc, MOAT_OK);
			assert_int_equal(r->payload_len, n - head);
			moat_msg_unref(&r);
		}
		free(cut);
	}
	moat_msg_unref(&m);
	free(buf);
}

static void test_bad_header(void **state)
{
	(void)state;
	struct moat_msg *m = sample(false, false, false);
	size_t len;
	uint8_t *buf = encode(m, false, &len);
	uint64_t nonce;
	bool groups;
	struct moat_msg *r = NULL;
	buf[0] = 2; /* unknown version */
	assert_int_equal(moat__cluster_env_decode(buf, len, (const uint8_t *)"a",
						  1, &nonce, &groups, &r),
			 MOAT_EMALFORMED);
	buf[0] = 1;
	buf[1] = 3; /* QoS 3 */
	assert_int_equal(moat__cluster_env_decode(buf, len, (const uint8_t *)"a",
						  1, &nonce, &groups, &r),
			 MOAT_EMALFORMED);
	buf[1] = 0x40; /* unknown flag */
	assert_int_equal(moat__cluster_env_decode(buf, len, (const uint8_t *)"a",
						  1, &nonce, &groups, &r),
			 MOAT_EMALFORMED);
	buf[1] = 0;
	buf[10] = 0xff; /* properties longer than the message */
	assert_int_equal(moat__cluster_env_decode(buf, len, (const uint8_t *)"a",
						  1, &nonce, &groups, &r),
			 MOAT_EMALFORMED);
	assert_null(r);
	moat_msg_unref(&m);
	free(buf);
}

/* Random bytes (fixed seed, bounded count): refused or decoded, never a
 * crash. */
static void test_random(void **state)
{
	(void)state;
	srand(21);
	uint8_t buf[64];
	for (int i = 0; i < 20000; i++) {
		size_t n = (size_t)rand() % sizeof(buf);
		for (size_t k = 0; k < n; k++)
			buf[k] = (uint8_t)rand();
		if (n > 1 && (i & 1)) {
			buf[0] = 1;
			buf[1] &= 0x3f;
		}
		uint64_t nonce;
		bool groups;
		struct moat_msg *r = NULL;
		if (moat__cluster_env_decode(buf, n, (const uint8_t *)"t", 1,
					     &nonce, &groups, &r) == MOAT_OK) {
			assert_true(r->qos <= 2);
			moat_msg_unref(&r);
		}
	}
}

/* Every test gives back what it allocated. */
static size_t live_at_start;

static int setup(void **state)
{
	(void)state;
	live_at_start = moat_alloc_live_bytes();
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	assert_int_equal(moat_alloc_live_bytes(), live_at_start);
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_round_trip, setup, teardown),
		cmocka_unit_test_setup_teardown(test_anonymous_source, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_smallest, setup, teardown),
		cmocka_unit_test_setup_teardown(test_truncated, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_header, setup, teardown),
		cmocka_unit_test_setup_teardown(test_random, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
