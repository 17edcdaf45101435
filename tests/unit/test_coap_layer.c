/* Unit tests for the CoAP message-layer helpers (src/coap/coap_layer.h):
 * retransmission timing (RFC 7252 §4.2, §4.8), message ids and tokens,
 * block-wise reassembly (RFC 7959), Echo values (RFC 9175 §2.4). */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "coap/coap_layer.h"

#include "test_util.h"

/* ---- RFC 7252 §4.8 ------------------------------------------------------ */

static void test_rfc7252_4_8_2_derived_times(void **state)
{
	(void)state;
	const struct coap_tx_params p = COAP_TX_PARAMS_DEFAULT;
	assert_int_equal(coap_max_transmit_span_ms(&p), 45000);
	assert_int_equal(coap_max_transmit_wait_ms(&p), 93000);
	assert_int_equal(coap_exchange_lifetime_ms(&p), 247000);
	assert_int_equal(coap_non_lifetime_ms(&p), 145000);
}

static void test_rfc7252_4_2_backoff(void **state)
{
	(void)state;
	const struct coap_tx_params p = COAP_TX_PARAMS_DEFAULT;
	struct coap_retx r;
	/* the initial timeout lies in [ACK_TIMEOUT, ACK_TIMEOUT * 1.5) */
	coap_retx_start(&r, &p, 0);
	assert_int_equal(r.timeout_ms, 2000);
	coap_retx_start(&r, &p, UINT32_MAX);
	assert_int_equal(r.timeout_ms, 2999);
	coap_retx_start(&r, &p, UINT32_MAX / 2);
	assert_int_equal(r.timeout_ms, 2499);
	/* 4 retransmissions, each doubling; then give up */
	coap_retx_start(&r, &p, 0);
	uint32_t want[] = {4000, 8000, 16000, 32000};
	uint64_t total = r.timeout_ms;
	for (size_t i = 0; i < MOAT_ARRAY_LEN(want); i++) {
		assert_true(coap_retx_next(&r));
		assert_int_equal(r.timeout_ms, want[i]);
		total += r.timeout_ms;
	}
	assert_int_equal(r.sent, 5);
	assert_false(coap_retx_next(&r));
	/* the whole wait is MAX_TRANSMIT_WAIT at most */
	assert_true(total <= coap_max_transmit_wait_ms(&p));
	/* MAX_RETRANSMIT 0: no retransmission at all */
	struct coap_tx_params p0 = p;
	p0.max_retransmit = 0;
	coap_retx_start(&r, &p0, 0);
	assert_false(coap_retx_next(&r));
}

/* ---- ids ----------------------------------------------------------------- */

static void test_mid_pick_skips_recent(void **state)
{
	(void)state;
	struct coap_mid_gen g;
	coap_mid_init(&g);
	uint16_t mid;
	uint16_t a[] = {7};
	assert_int_equal(coap_mid_pick(&g, a, 1, &mid), MOAT_OK);
	assert_int_equal(mid, 7);
	uint16_t b[] = {7, 7, 9};
	assert_int_equal(coap_mid_pick(&g, b, 3, &mid), MOAT_OK);
	assert_int_equal(mid, 9);
	assert_int_equal(coap_mid_pick(&g, b, 2, &mid), MOAT_EAGAIN);
	/* after COAP_MID_RECENT others, 7 is usable again */
	for (uint16_t i = 100; i < 100 + COAP_MID_RECENT; i++)
		assert_int_equal(coap_mid_pick(&g, &i, 1, &mid), MOAT_OK);
	assert_int_equal(coap_mid_pick(&g, a, 1, &mid), MOAT_OK);
}

/* AUD-CO-04: ids and tokens must not be sequential or repeat. */
static void test_ids_unpredictable(void **state)
{
	(void)state;
	struct coap_mid_gen g;
	coap_mid_init(&g);
	uint16_t prev = 0, mids[COAP_MID_RECENT];
	int sequential = 0;
	for (int i = 0; i < 2000; i++) {
		uint16_t mid;
		assert_int_equal(coap_mid_next(&g, &mid), MOAT_OK);
		if (i && (uint16_t)(mid - prev) == 1)
			sequential++;
		for (int j = 0; j < COAP_MID_RECENT && j < i; j++)
			assert_int_not_equal(mid, mids[j]);
		mids[i % COAP_MID_RECENT] = mid;
		prev = mid;
	}
	assert_true(sequential < 3); /* 2000/65536 expected */
	uint8_t t1[8], t2[8];
	assert_int_equal(coap_token_new(t1, 8), MOAT_OK);
	assert_int_equal(coap_token_new(t2, 8), MOAT_OK);
	assert_memory_not_equal(t1, t2, 8);
	assert_int_equal(coap_token_new(t1, 0), MOAT_EINVAL);
	assert_int_equal(coap_token_new(t1, 9), MOAT_EINVAL);
}

/* ---- RFC 7959 reassembly ------------------------------------------------ */

static void test_rfc7959_reasm_in_order(void **state)
{
	(void)state;
	uint8_t data[64];
	memset(data, 'a', sizeof(data));
	struct coap_reasm r;
	coap_reasm_init(&r, 1000);
	struct coap_block b = {0, true, 2}; /* 64-byte blocks */
	assert_int_equal(coap_reasm_add(&r, &b, data, 64), MOAT_OK);
	assert_int_equal(coap_reasm_next_num(&r, 2), 1);
	/* the same block again: ignored */
	assert_int_equal(coap_reasm_add(&r, &b, data, 64), MOAT_EAGAIN);
	/* late negotiation: the next block in 32-byte blocks is num 2 */
	assert_int_equal(coap_reasm_next_num(&r, 1), 2);
	b = (struct coap_block){2, true, 1};
	assert_int_equal(coap_reasm_add(&r, &b, data, 32), MOAT_OK);
	b = (struct coap_block){3, false, 1};
	assert_int_equal(coap_reasm_add(&r, &b, data, 5), MOAT_OK);
	assert_true(r.complete);
	assert_int_equal(moat_buf_used(&r.body), 101);
	/* after the last block: duplicate ignored, more refused */
	assert_int_equal(coap_reasm_add(&r, &b, data, 5), MOAT_EAGAIN);
	b = (struct coap_block){4, false, 1};
	assert_int_equal(coap_reasm_add(&r, &b, data, 5), MOAT_EPROTO);
	coap_reasm_cleanup(&r);
}

static void test_rfc7959_reasm_errors(void **state)
{
	(void)state;
	uint8_t data[1024] = {0};
	struct coap_reasm r;
	coap_reasm_init(&r, 100);
	/* a gap */
	struct coap_block b = {1, true, 0};
	assert_int_equal(coap_reasm_add(&r, &b, data, 16), MOAT_EPROTO);
	/* a non-last block shorter than the block size */
	b = (struct coap_block){0, true, 0};
	assert_int_equal(coap_reasm_add(&r, &b, data, 15), MOAT_EPROTO);
	/* a block longer than its size */
	b = (struct coap_block){0, false, 0};
	assert_int_equal(coap_reasm_add(&r, &b, data, 17), MOAT_EPROTO);
	/* beyond the bound: 7 * 16 = 112 > 100 */
	b = (struct coap_block){0, true, 0};
	for (uint32_t i = 0; i < 6; i++) {
		b.num = i;
		assert_int_equal(coap_reasm_add(&r, &b, data, 16), MOAT_OK);
	}
	b.num = 6;
	assert_int_equal(coap_reasm_add(&r, &b, data, 16), MOAT_ELIMIT);
	/* the buffer never grew past the bound */
	assert_true(r.body.cap <= 100);
	/* overlap: 64-byte block 1 covers 64..128 while we hold 96 */
	b = (struct coap_block){1, true, 2};
	assert_int_equal(coap_reasm_add(&r, &b, data, 64), MOAT_EPROTO);
	/* 32-byte block 2 (64..96) is held already */
	b = (struct coap_block){2, true, 1};
	assert_int_equal(coap_reasm_add(&r, &b, data, 32), MOAT_EAGAIN);
	coap_reasm_cleanup(&r);
}

/* A declared 1 GiB Size2 allocates nothing. */
static void test_rfc7959_size2_not_preallocated(void **state)
{
	(void)state;
	struct coap_reasm r;
	size_t before = moat_alloc_live_bytes();
	coap_reasm_init(&r, 16384);
	assert_int_equal(coap_reasm_declared(&r, 1u << 30), MOAT_ELIMIT);
	assert_int_equal(coap_reasm_declared(&r, 16384), MOAT_OK);
	assert_int_equal(moat_alloc_live_bytes(), before);
	uint8_t data[16] = {0};
	struct coap_block b = {0, true, 0};
	assert_int_equal(coap_reasm_add(&r, &b, data, 16), MOAT_OK);
	assert_true(moat_alloc_live_bytes() - before <= 256);
	coap_reasm_cleanup(&r);
}

static void test_rfc7959_2_4_etag(void **state)
{
	(void)state;
	struct coap_reasm r;
	coap_reasm_init(&r, 100);
	assert_int_equal(coap_reasm_etag(&r, (const uint8_t *)"ab", 2),
			 MOAT_OK);
	assert_int_equal(coap_reasm_etag(&r, (const uint8_t *)"ab", 2),
			 MOAT_OK);
	assert_int_equal(coap_reasm_etag(&r, (const uint8_t *)"ac", 2),
			 MOAT_EPROTO);
	assert_int_equal(coap_reasm_etag(&r, NULL, 0), MOAT_EPROTO);
	coap_reasm_reset(&r);
	assert_int_equal(coap_reasm_etag(&r, NULL, 0), MOAT_OK);
	assert_int_equal(coap_reasm_etag(&r, (const uint8_t *)"a", 1),
			 MOAT_EPROTO);
	coap_reasm_cleanup(&r);
}

/* ---- RFC 9175 Echo ------------------------------------------------------- */

static size_t addr4(const char *ip, uint16_t port,
		    uint8_t out[COAP_ADDR_KEY_MAX])
{
	struct sockaddr_in sa;
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_port = htons(port);
	assert_int_equal(inet_pton(AF_INET, ip, &sa.sin_addr), 1);
	return coap_addr_key((const struct sockaddr *)&sa, out);
}

static void test_rfc9175_echo(void **state)
{
	(void)state;
	struct coap_echo_key k, k2;
	assert_int_equal(coap_echo_key_init(&k), MOAT_OK);
	assert_int_equal(coap_echo_key_init(&k2), MOAT_OK);
	uint8_t a[COAP_ADDR_KEY_MAX], b[COAP_ADDR_KEY_MAX];
	size_t na = addr4("192.0.2.1", 5683, a);
	size_t nb = addr4("192.0.2.1", 5684, b);
	assert_int_equal(na, 7);
	uint8_t e[COAP_ECHO_LEN];
	assert_int_equal(coap_echo_make(&k, 1000, a, na, e), MOAT_OK);
	assert_int_equal(coap_echo_check(&k, 1000, 60, a, na, e, sizeof(e)),
			 MOAT_OK);
	assert_int_equal(coap_echo_check(&k, 1060, 60, a, na, e, sizeof(e)),
			 MOAT_OK);
	/* expired, from the future, another port, another key */
	assert_int_equal(coap_echo_check(&k, 1061, 60, a, na, e, sizeof(e)),
			 MOAT_EDENIED);
	assert_int_equal(coap_echo_check(&k, 999, 60, a, na, e, sizeof(e)),
			 MOAT_EDENIED);
	assert_int_equal(coap_echo_check(&k, 1000, 60, b, nb, e, sizeof(e)),
			 MOAT_EDENIED);
	assert_int_equal(coap_echo_check(&k2, 1000, 60, a, na, e, sizeof(e)),
			 MOAT_EDENIED);
	/* tampered time or MAC, wrong length */
	e[3] ^= 1;
	assert_int_equal(coap_echo_check(&k, 1000, 60, a, na, e, sizeof(e)),
			 MOAT_EDENIED);
	e[3] ^= 1;
	e[15] ^= 0x80;
	assert_int_equal(coap_echo_check(&k, 1000, 60, a, na, e, sizeof(e)),
			 MOAT_EDENIED);
	assert_int_equal(coap_echo_check(&k, 1000, 60, a, na, e, 8),
			 MOAT_EDENIED);
	/* IPv6 keys, other families */
	struct sockaddr_in6 s6;
	memset(&s6, 0, sizeof(s6));
	s6.sin6_family = AF_INET6;
	assert_int_equal(coap_addr_key((const struct sockaddr *)&s6, a), 19);
	struct sockaddr su = {.sa_family = AF_UNIX};
	assert_int_equal(coap_addr_key(&su, a), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_rfc7252_4_8_2_derived_times),
		T(test_rfc7252_4_2_backoff),
		T(test_mid_pick_skips_recent),
		T(test_ids_unpredictable),
		T(test_rfc7959_reasm_in_order),
		T(test_rfc7959_reasm_errors),
		T(test_rfc7959_size2_not_preallocated),
		T(test_rfc7959_2_4_etag),
		T(test_rfc9175_echo),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
