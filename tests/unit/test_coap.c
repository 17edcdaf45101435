/* Unit tests for the CoAP codec (src/codec/coap*.c): RFC 7252 message
 * framing, option values of RFC 7641/7959/9175, URIs and percent-encoding.
 *
 * Decoders are fed exact-size heap copies so that AddressSanitizer reports
 * any read past the end.  Names carry the RFC section they check. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "codec/coap.h"
#include "codec/coap_uri.h"

#include "test_util.h"

/* Parse p[0..n) from an exact heap copy; the result's views are only
 * checked inside the callers while copy is alive, so they get it back. */
static int parse_copy(const void *p, size_t n, struct coap_msg *m,
		      uint8_t **copy)
{
	*copy = heap(p, n);
	return coap_parse(*copy, n, m);
}

static void assert_roundtrip(const struct coap_msg *m, const void *p,
			     size_t n)
{
	uint8_t out[2048];
	size_t len = 0;
	assert_int_equal(coap_encode(m, out, sizeof(out), &len), MOAT_OK);
	assert_int_equal(len, n);
	assert_memory_equal(out, p, n);
}

#define LIT(s) (const uint8_t *)(s), sizeof(s) - 1

/* ---- RFC 7252 §3: framing ---------------------------------------------- */

/* Appendix A, figure "Confirmable request; piggybacked response": CON GET
 * /temperature, MID 0x7d34, and its ACK 2.05 "22.3 C". */
static void test_rfc7252_appendix_a_get(void **state)
{
	(void)state;
	static const uint8_t req[] = "\x40\x01\x7d\x34\xbbtemperature";
	struct coap_msg m;
	uint8_t *h;
	assert_int_equal(parse_copy(LIT(req), &m, &h), MOAT_OK);
	assert_int_equal(m.type, COAP_CON);
	assert_int_equal(m.code, COAP_GET);
	assert_int_equal(m.mid, 0x7d34);
	assert_int_equal(m.tkl, 0);
	assert_int_equal(m.n_opts, 1);
	assert_null(m.payload);
	struct coap_opt o;
	assert_true(coap_opt_find(&m, COAP_OPT_URI_PATH, &o));
	assert_int_equal(o.len, 11);
	assert_memory_equal(o.val, "temperature", 11);
	/* an absent option leaves *o alone */
	o.num = 99;
	assert_false(coap_opt_find(&m, COAP_OPT_ETAG, &o));
	assert_false(coap_opt_find(&m, COAP_OPT_SIZE1, &o));
	assert_int_equal(o.num, 99);
	char path[64];
	assert_int_equal(coap_path_format(&m, path, sizeof(path)), MOAT_OK);
	assert_string_equal(path, "/temperature");
	assert_roundtrip(&m, LIT(req));
	moat_free(h);

	static const uint8_t resp[] = "\x60\x45\x7d\x34\xff"
				      "22.3 C";
	assert_int_equal(parse_copy(LIT(resp), &m, &h), MOAT_OK);
	assert_int_equal(m.type, COAP_ACK);
	assert_int_equal(m.code, COAP_CONTENT);
	assert_int_equal(m.n_opts, 0);
	assert_int_equal(m.payload_len, 6);
	assert_memory_equal(m.payload, "22.3 C", 6);
	assert_roundtrip(&m, LIT(resp));
	moat_free(h);
}

static void test_writer_builds_same_bytes(void **state)
{
	(void)state;
	uint8_t buf[64];
	struct coap_wr w;
	size_t len;
	coap_wr_init(&w, buf, sizeof(buf));
	coap_wr_header(&w, COAP_CON, COAP_GET, 0x7d34, NULL, 0);
	coap_wr_opt(&w, COAP_OPT_URI_PATH, "temperature", 11);
	assert_int_equal(coap_wr_finish(&w, &len), MOAT_OK);
	assert_int_equal(len, 16);
	assert_memory_equal(buf, "\x40\x01\x7d\x34\xbbtemperature", 16);
}

/* §3.1: deltas and lengths 13..268 take one extended byte, 269..65804
 * two; option numbers add up. */
static void test_rfc7252_3_1_extended_forms(void **state)
{
	(void)state;
	uint8_t buf[512], val[300];
	memset(val, 'v', sizeof(val));
	struct coap_wr w;
	size_t len;
	const uint8_t tok[3] = {1, 2, 3};
	coap_wr_init(&w, buf, sizeof(buf));
	coap_wr_header(&w, COAP_NON, COAP_POST, 1, tok, 3);
	coap_wr_opt(&w, COAP_OPT_URI_PATH, val, 12);	 /* 11, 12: plain */
	coap_wr_opt(&w, COAP_OPT_URI_PATH, val, 13);	 /* len 13 */
	coap_wr_opt_uint(&w, COAP_OPT_SIZE1, 1000);	 /* delta 49 */
	coap_wr_opt(&w, COAP_OPT_REQUEST_TAG, val, 4);	 /* delta 232 */
	coap_wr_opt(&w, 600, val, 300);			 /* delta 308 */
	coap_wr_payload(&w, "x", 1);
	assert_int_equal(coap_wr_finish(&w, &len), MOAT_OK);
	const uint8_t *p = buf + 4 + 3;
	assert_int_equal(p[0], 0xBC);
	p += 1 + 12;
	assert_int_equal(p[0], 0x0D);
	assert_int_equal(p[1], 0);
	p += 2 + 13;
	assert_int_equal(p[0], 0xD2);
	assert_int_equal(p[1], 49 - 13);
	p += 2 + 2;
	assert_int_equal(p[0], 0xD4);
	assert_int_equal(p[1], 232 - 13);
	p += 2 + 4;
	assert_int_equal(p[0], 0xEE);
	assert_int_equal(p[1] << 8 | p[2], 308 - 269);
	assert_int_equal(p[3] << 8 | p[4], 300 - 269);

	struct coap_msg m;
	uint8_t *h;
	assert_int_equal(parse_copy(buf, len, &m, &h), MOAT_OK);
	assert_int_equal(m.n_opts, 5);
	assert_int_equal(m.tkl, 3);
	assert_memory_equal(m.token, tok, 3);
	uint32_t v;
	assert_int_equal(coap_opt_uint(&m, COAP_OPT_SIZE1, 4, &v), MOAT_OK);
	assert_int_equal(v, 1000);
	struct coap_opt o;
	assert_true(coap_opt_find(&m, 600, &o));
	assert_int_equal(o.len, 300);
	assert_int_equal(coap_opt_count(&m, COAP_OPT_URI_PATH), 2);
	assert_int_equal(coap_opt_count(&m, COAP_OPT_ETAG), 0);
	assert_roundtrip(&m, buf, len);
	moat_free(h);
}

struct bad_case {
	const char *why;
	const char *bytes;
	size_t n;
};

#define BAD(why, s) {why, s, sizeof(s) - 1}

/* §3, §4.1, §3.1: message format errors. */
static void test_rfc7252_3_format_errors(void **state)
{
	(void)state;
	static const struct bad_case bad[] = {
		BAD("empty", ""),
		BAD("3 bytes", "\x40\x01\x00"),
		BAD("version 0", "\x00\x01\x00\x01"),
		BAD("version 2", "\x80\x01\x00\x01"),
		BAD("version 3", "\xc0\x01\x00\x01"),
		BAD("tkl 9", "\x49\x01\x00\x01\x01\x02\x03\x04\x05\x06\x07"
			     "\x08\x09"),
		BAD("tkl 15", "\x4f\x01\x00\x01"),
		BAD("truncated token", "\x44\x01\x00\x01\x01\x02\x03"),
		BAD("empty message with a byte", "\x40\x00\x00\x01\x00"),
		BAD("empty message with a token", "\x41\x00\x00\x01\x07"),
		BAD("empty message with a marker", "\x40\x00\x00\x01\xff"),
		BAD("delta nibble 15", "\x40\x01\x00\x01\xf0"),
		BAD("length nibble 15", "\x40\x01\x00\x01\x0f"),
		BAD("delta 15 length 0..14", "\x40\x01\x00\x01\xf1x"),
		BAD("value past the end", "\x40\x01\x00\x01\xb5temp"),
		BAD("missing delta ext", "\x40\x01\x00\x01\xd0"),
		BAD("missing 2-byte delta ext", "\x40\x01\x00\x01\xe0\x01"),
		BAD("missing length ext", "\x40\x01\x00\x01\x0d"),
		BAD("missing 2-byte length ext", "\x40\x01\x00\x01\x0e\x00"),
		BAD("marker without payload", "\x40\x01\x00\x01\xff"),
		BAD("marker without payload after opt",
		    "\x40\x01\x00\x01\xb1x\xff"),
		BAD("option number above 65535",
		    "\x40\x01\x00\x01\xe0\xfe\xf2\x10"),
		BAD("single option above 65535", "\x40\x01\x00\x01\xe0\xff\xff"),
	};
	for (size_t i = 0; i < MOAT_ARRAY_LEN(bad); i++) {
		struct coap_msg m;
		uint8_t *h;
		int rc = parse_copy(bad[i].bytes, bad[i].n, &m, &h);
		if (rc != MOAT_EMALFORMED)
			fail_msg("%s: accepted", bad[i].why);
		moat_free(h);
	}
	/* The header is still reported, to answer a CON with RST. */
	struct coap_msg m;
	uint8_t *h;
	assert_int_equal(parse_copy(LIT("\x40\x01\x12\x34\xff"), &m, &h),
			 MOAT_EMALFORMED);
	assert_int_equal(m.type, COAP_CON);
	assert_int_equal(m.mid, 0x1234);
	moat_free(h);
}

static void test_rfc7252_4_1_empty_and_ping(void **state)
{
	(void)state;
	struct coap_msg m;
	uint8_t *h;
	/* CoAP ping: an Empty CON; RST answers it. */
	assert_int_equal(parse_copy(LIT("\x40\x00\xab\xcd"), &m, &h), MOAT_OK);
	assert_int_equal(m.code, COAP_EMPTY);
	assert_int_equal(m.n_opts, 0);
	assert_roundtrip(&m, LIT("\x40\x00\xab\xcd"));
	moat_free(h);
	/* Option 65535 (delta 14 + 65266) is the largest legal number. */
	assert_int_equal(
		parse_copy(LIT("\x40\x01\x00\x01\xe0\xfe\xf2"), &m, &h),
		MOAT_OK);
	struct coap_opt o;
	assert_true(coap_opt_find(&m, 65535, &o));
	moat_free(h);
	/* Reserved code classes and request codes in odd types parse: the
	 * message layer decides (RFC 7252 §4.2, §4.3). */
	assert_int_equal(parse_copy(LIT("\x70\x21\x00\x01"), &m, &h), MOAT_OK);
	moat_free(h);
}

static void test_writer_errors(void **state)
{
	(void)state;
	uint8_t buf[16];
	struct coap_wr w;
	size_t len;
	/* options out of order */
	coap_wr_init(&w, buf, sizeof(buf));
	coap_wr_header(&w, COAP_CON, COAP_GET, 1, NULL, 0);
	coap_wr_opt(&w, COAP_OPT_URI_PATH, "a", 1);
	coap_wr_opt(&w, COAP_OPT_OBSERVE, NULL, 0);
	assert_int_equal(coap_wr_finish(&w, &len), MOAT_EINVAL);
	/* too small */
	coap_wr_init(&w, buf, sizeof(buf));
	coap_wr_header(&w, COAP_CON, COAP_GET, 1, NULL, 0);
	coap_wr_opt(&w, COAP_OPT_URI_PATH, "abcdefghijklmnop", 16);
	assert_int_equal(coap_wr_finish(&w, &len), MOAT_ELIMIT);
	/* token of 9 */
	coap_wr_init(&w, buf, sizeof(buf));
	coap_wr_header(&w, COAP_CON, COAP_GET, 1, buf, 9);
	assert_int_equal(coap_wr_finish(&w, &len), MOAT_EINVAL);
	/* option after payload */
	coap_wr_init(&w, buf, sizeof(buf));
	coap_wr_header(&w, COAP_CON, COAP_GET, 1, NULL, 0);
	coap_wr_payload(&w, "p", 1);
	coap_wr_opt(&w, COAP_OPT_URI_PATH, "a", 1);
	assert_int_equal(coap_wr_finish(&w, &len), MOAT_EINVAL);
	/* nothing written */
	coap_wr_init(&w, buf, sizeof(buf));
	assert_int_equal(coap_wr_finish(&w, &len), MOAT_EINVAL);
	/* an empty payload writes no marker */
	coap_wr_init(&w, buf, sizeof(buf));
	coap_wr_header(&w, COAP_CON, COAP_GET, 1, NULL, 0);
	coap_wr_payload(&w, NULL, 0);
	assert_int_equal(coap_wr_finish(&w, &len), MOAT_OK);
	assert_int_equal(len, 4);
	/* coap_encode into a short buffer */
	struct coap_msg m;
	uint8_t *h;
	assert_int_equal(parse_copy(LIT("\x40\x01\x7d\x34\xbbtemperature"),
				    &m, &h),
			 MOAT_OK);
	assert_int_equal(coap_encode(&m, buf, 10, &len), MOAT_ELIMIT);
	moat_free(h);
}

/* ---- §5.4: options ------------------------------------------------------ */

static void check_opts(const void *bytes, size_t n, int want, uint16_t bad)
{
	struct coap_msg m;
	uint8_t *h;
	assert_int_equal(parse_copy(bytes, n, &m, &h), MOAT_OK);
	uint16_t got = 0;
	int rc = coap_opts_check(&m, &got);
	if (rc != want)
		fail_msg("opts_check %d (bad %u), want %d", rc, got, want);
	if (want != MOAT_OK)
		assert_int_equal(got, bad);
	moat_free(h);
}

static void test_rfc7252_5_4_critical_elective(void **state)
{
	(void)state;
	/* Known options with legal lengths. */
	check_opts(LIT("\x40\x01\x00\x01\x33"
		       "abc\x11x\x01y\x21\x00"),
		   MOAT_OK, 0);
	/* Unknown critical 9 -> 4.02. */
	check_opts(LIT("\x40\x01\x00\x01\x90"), MOAT_EPROTO, 9);
	/* Unknown elective 10 is ignored. */
	check_opts(LIT("\x40\x01\x00\x01\xa1z"), MOAT_OK, 0);
	/* Content-Format (elective) of 3 bytes: ignored. */
	check_opts(LIT("\x40\x01\x00\x01\xc3\x01\x02\x03"), MOAT_OK, 0);
	/* If-None-Match (critical) with a value: unrecognised. */
	check_opts(LIT("\x40\x01\x00\x01\x51x"), MOAT_EPROTO, 5);
	/* Uri-Host (critical) empty: unrecognised. */
	check_opts(LIT("\x40\x01\x00\x01\x30"), MOAT_EPROTO, 3);
	/* Uri-Port (critical) twice: the second is unrecognised. */
	check_opts(LIT("\x40\x01\x00\x01\x71\x01\x01\x02"), MOAT_EPROTO, 7);
	/* Block1 (critical) of 4 bytes. */
	check_opts(LIT("\x40\x02\x00\x01\xd4\x0e\x01\x02\x03\x04"),
		   MOAT_EPROTO, 27);
	/* Echo and Request-Tag (both elective) of 41 and 9 bytes: ignored;
	 * Uri-Path (critical) of 256 bytes: unrecognised. */
	uint8_t buf[400], val[256] = {0};
	struct coap_wr w;
	size_t len;
	coap_wr_init(&w, buf, sizeof(buf));
	coap_wr_header(&w, COAP_CON, COAP_POST, 1, NULL, 0);
	coap_wr_opt(&w, COAP_OPT_ECHO, val, 41);
	assert_int_equal(coap_wr_finish(&w, &len), MOAT_OK);
	check_opts(buf, len, MOAT_OK, 0);
	coap_wr_opt(&w, COAP_OPT_REQUEST_TAG, val, 9);
	assert_int_equal(coap_wr_finish(&w, &len), MOAT_OK);
	check_opts(buf, len, MOAT_OK, 0);
	coap_wr_init(&w, buf, sizeof(buf));
	coap_wr_header(&w, COAP_CON, COAP_POST, 1, NULL, 0);
	coap_wr_opt(&w, COAP_OPT_URI_PATH, val, 255);
	assert_int_equal(coap_wr_finish(&w, &len), MOAT_OK);
	check_opts(buf, len, MOAT_OK, 0);
	coap_wr_init(&w, buf, sizeof(buf));
	coap_wr_header(&w, COAP_CON, COAP_POST, 1, NULL, 0);
	coap_wr_opt(&w, COAP_OPT_URI_PATH, val, 256);
	assert_int_equal(coap_wr_finish(&w, &len), MOAT_OK);
	check_opts(buf, len, MOAT_EPROTO, COAP_OPT_URI_PATH);
	/* ETag repeated (allowed). */
	check_opts(LIT("\x40\x01\x00\x01\x41\x01\x01\x02"), MOAT_OK, 0);
	/* Proxy-Uri (critical, known): checked by length only. */
	check_opts(LIT("\x40\x01\x00\x01\xd1\x16x"), MOAT_OK, 0);
	assert_true(coap_opt_critical(COAP_OPT_URI_PATH));
	assert_false(coap_opt_critical(COAP_OPT_ETAG));
	assert_true(coap_opt_unsafe(COAP_OPT_BLOCK2));
	assert_true(coap_opt_nocachekey(COAP_OPT_SIZE1));
	assert_false(coap_opt_nocachekey(COAP_OPT_URI_PATH));
	assert_string_equal(coap_optdef(COAP_OPT_ECHO)->name, "Echo");
	assert_null(coap_optdef(9));
}

static void test_rfc7252_3_2_uint(void **state)
{
	(void)state;
	static const struct {
		uint32_t v;
		size_t n;
	} cases[] = {{0, 0},	       {1, 1},	       {255, 1},
		     {256, 2},	       {65535, 2},     {65536, 3},
		     {0xFFFFFF, 3},    {0x1000000, 4}, {0xFFFFFFFF, 4}};
	for (size_t i = 0; i < MOAT_ARRAY_LEN(cases); i++) {
		uint8_t b[4];
		uint32_t v = 1;
		size_t n = coap_uint_encode(cases[i].v, b);
		assert_int_equal(n, cases[i].n);
		assert_int_equal(coap_uint_decode(b, n, &v), MOAT_OK);
		assert_int_equal(v, cases[i].v);
	}
	uint32_t v;
	/* leading zeros are accepted on receipt */
	assert_int_equal(coap_uint_decode((const uint8_t *)"\x00\x00\x01", 3,
					  &v),
			 MOAT_OK);
	assert_int_equal(v, 1);
	assert_int_equal(
		coap_uint_decode((const uint8_t *)"\x01\x02\x03\x04\x05", 5,
				 &v),
		MOAT_EMALFORMED);
}

/* ---- RFC 7959 §2.2: block options -------------------------------------- */

static void test_rfc7959_2_2_block(void **state)
{
	(void)state;
	struct coap_block b;
	/* 2:0/1/128 -> NUM 0, M 1, SZX 3 */
	assert_int_equal(coap_block_decode(0x0B, &b), MOAT_OK);
	assert_int_equal(b.num, 0);
	assert_true(b.more);
	assert_int_equal(b.szx, 3);
	assert_int_equal(coap_block_size(b.szx), 128);
	assert_int_equal(coap_block_encode(&b), 0x0B);
	/* NUM 2^20-1, last block, 1024 bytes */
	b = (struct coap_block){COAP_BLOCK_NUM_MAX, false, 6};
	uint32_t v = coap_block_encode(&b);
	assert_int_equal(v, 0xFFFFF6);
	struct coap_block d;
	assert_int_equal(coap_block_decode(v, &d), MOAT_OK);
	assert_int_equal(d.num, COAP_BLOCK_NUM_MAX);
	assert_false(d.more);
	/* SZX 7 is reserved */
	assert_int_equal(coap_block_decode(0x0F, &d), MOAT_EMALFORMED);
	assert_int_equal(coap_block_decode(0x1000000, &d), MOAT_EMALFORMED);
	assert_int_equal(coap_block_szx_for(1), 0);
	assert_int_equal(coap_block_szx_for(16), 0);
	assert_int_equal(coap_block_szx_for(17), 1);
	assert_int_equal(coap_block_szx_for(1024), 6);
	assert_int_equal(coap_block_szx_for(100000), 6);

	struct coap_msg m;
	uint8_t *h;
	/* Block2 of 4 bytes is malformed; absent is ENOTFOUND */
	assert_int_equal(
		parse_copy(LIT("\x40\x01\x00\x01\xd4\x0a\x01\x02\x03\x04"), &m,
			   &h),
		MOAT_OK);
	assert_int_equal(coap_opt_block(&m, COAP_OPT_BLOCK2, &d),
			 MOAT_EMALFORMED);
	assert_int_equal(coap_opt_block(&m, COAP_OPT_BLOCK1, &d),
			 MOAT_ENOTFOUND);
	moat_free(h);
	/* Block2 empty value = 0/0/16 */
	assert_int_equal(parse_copy(LIT("\x40\x01\x00\x01\xd0\x0a"), &m, &h),
			 MOAT_OK);
	assert_int_equal(coap_opt_block(&m, COAP_OPT_BLOCK2, &d), MOAT_OK);
	assert_int_equal(d.num, 0);
	assert_int_equal(d.szx, 0);
	moat_free(h);
}

/* ---- RFC 7641 §3.4: notification order ---------------------------------- */

static void test_rfc7641_3_4_newer(void **state)
{
	(void)state;
	assert_true(coap_observe_newer(1, 0, 2, 0));
	assert_false(coap_observe_newer(2, 0, 1, 0));
	assert_false(coap_observe_newer(5, 0, 5, 0));
	/* wrap-around at 2^24 */
	assert_true(coap_observe_newer(0xFFFFFF, 0, 3, 0));
	assert_false(coap_observe_newer(3, 0, 0xFFFFFF, 0));
	/* more than 2^23 apart counts the other way */
	assert_false(coap_observe_newer(0, 0, (1u << 23) + 1, 0));
	/* after 128 s anything is newer */
	assert_true(coap_observe_newer(10, 0, 5, 128001));
	assert_false(coap_observe_newer(10, 0, 5, 128000));
}

/* ---- names --------------------------------------------------------------- */

static void test_names(void **state)
{
	(void)state;
	char s[5];
	coap_code_str(COAP_CONTENT, s);
	assert_string_equal(s, "2.05");
	coap_code_str(COAP_PROXYING_NOT_SUPPORTED, s);
	assert_string_equal(s, "5.05");
	coap_code_str(COAP_CONTINUE, s);
	assert_string_equal(s, "2.31");
	assert_string_equal(coap_code_name(COAP_UNAUTHORIZED), "Unauthorized");
	assert_null(coap_code_name(COAP_CODE(3, 1)));
	assert_string_equal(coap_type_name(COAP_RST), "RST");
	uint32_t cf;
	assert_int_equal(coap_cf_parse("json", &cf), MOAT_OK);
	assert_int_equal(cf, 50);
	assert_int_equal(coap_cf_parse("application/cbor", &cf), MOAT_OK);
	assert_int_equal(cf, 60);
	assert_int_equal(coap_cf_parse("11542", &cf), MOAT_OK);
	assert_int_equal(cf, 11542);
	assert_int_equal(coap_cf_parse("text/plain", &cf), MOAT_OK);
	assert_int_equal(cf, 0);
	assert_int_equal(coap_cf_parse("65536", &cf), MOAT_EINVAL);
	assert_int_equal(coap_cf_parse("nope", &cf), MOAT_EINVAL);
	assert_int_equal(coap_cf_parse("12x", &cf), MOAT_EINVAL);
	assert_string_equal(coap_cf_name(40), "application/link-format");
	assert_null(coap_cf_name(9999));
}

/* ---- §6: URIs ----------------------------------------------------------- */

/* Build a GET for uri and return its options' bytes after the header. */
static size_t uri_request(const char *uri, uint8_t *buf, size_t cap)
{
	struct coap_uri u;
	const char *why;
	assert_int_equal(coap_uri_parse(uri, &u, &why), MOAT_OK);
	struct coap_wr w;
	size_t len;
	coap_wr_init(&w, buf, cap);
	coap_wr_header(&w, COAP_CON, COAP_GET, 1, NULL, 0);
	coap_wr_uri_host(&w, &u);
	coap_wr_uri_path(&w, &u);
	coap_wr_uri_query(&w, &u);
	assert_int_equal(coap_wr_finish(&w, &len), MOAT_OK);
	return len;
}

/* §6.6: these URIs are equivalent and give the same options. */
static void test_rfc7252_6_6_equivalence(void **state)
{
	(void)state;
	uint8_t a[128], b[128], c[128];
	size_t na = uri_request("coap://example.com:5683/~sensors/temp.xml",
				a, sizeof(a));
	size_t nb = uri_request("coap://EXAMPLE.com/%7Esensors/temp.xml", b,
				sizeof(b));
	size_t nc = uri_request("coap://EXAMPLE.com:/%7esensors/temp.xml", c,
				sizeof(c));
	assert_int_equal(na, nb);
	assert_memory_equal(a, b, na);
	assert_int_equal(na, nc);
	assert_memory_equal(a, c, na);
	struct coap_msg m;
	assert_int_equal(coap_parse(a, na, &m), MOAT_OK);
	struct coap_opt o;
	assert_true(coap_opt_find(&m, COAP_OPT_URI_HOST, &o));
	assert_int_equal(o.len, 11);
	assert_memory_equal(o.val, "example.com", 11);
	assert_int_equal(coap_opt_count(&m, COAP_OPT_URI_PATH), 2);
	char path[64];
	assert_int_equal(coap_path_format(&m, path, sizeof(path)), MOAT_OK);
	assert_string_equal(path, "/~sensors/temp.xml");
}

static void test_rfc7252_6_4_uri_options(void **state)
{
	(void)state;
	struct coap_uri u;
	const char *why;
	assert_int_equal(coap_uri_parse("coaps://[::1]:5999/ps/a%2Fb/%23?x=1"
					"&y&z=%26",
					&u, &why),
			 MOAT_OK);
	assert_true(u.secure);
	assert_string_equal(u.host, "::1");
	assert_true(u.host_literal);
	assert_int_equal(u.port, 5999);
	uint8_t buf[128];
	size_t n = uri_request("coaps://[::1]:5999/ps/a%2Fb/%23?x=1&y&z=%26",
			       buf, sizeof(buf));
	struct coap_msg m;
	assert_int_equal(coap_parse(buf, n, &m), MOAT_OK);
	struct coap_opt o0;
	assert_false(coap_opt_find(&m, COAP_OPT_URI_HOST, &o0));
	assert_int_equal(coap_opt_count(&m, COAP_OPT_URI_PATH), 3);
	assert_int_equal(coap_opt_count(&m, COAP_OPT_URI_QUERY), 3);
	char path[64];
	assert_int_equal(coap_path_format(&m, path, sizeof(path)), MOAT_OK);
	assert_string_equal(path, "/ps/a%2Fb/%23");
	/* the third query argument decodes to "z=&" */
	struct coap_opt_iter it;
	struct coap_opt o;
	const char *want[] = {"x=1", "y", "z=&"};
	size_t k = 0;
	coap_opt_iter_init(&it, &m);
	while (coap_opt_next(&it, &o))
		if (o.num == COAP_OPT_URI_QUERY) {
			assert_int_equal(o.len, strlen(want[k]));
			assert_memory_equal(o.val, want[k], o.len);
			k++;
		}
	/* "" and "/" give no Uri-Path; "/a/" gives "a" and "". */
	n = uri_request("coap://127.0.0.1", buf, sizeof(buf));
	assert_int_equal(n, 4);
	n = uri_request("coap://127.0.0.1/", buf, sizeof(buf));
	assert_int_equal(n, 4);
	n = uri_request("coap://127.0.0.1/a/", buf, sizeof(buf));
	assert_int_equal(coap_parse(buf, n, &m), MOAT_OK);
	assert_int_equal(coap_opt_count(&m, COAP_OPT_URI_PATH), 2);
	assert_int_equal(coap_path_format(&m, path, sizeof(path)), MOAT_OK);
	assert_string_equal(path, "/a/");
	assert_int_equal(coap_uri_parse("coap://h", &u, &why), MOAT_OK);
	assert_int_equal(u.port, 5683);
	assert_int_equal(coap_uri_parse("coaps://h", &u, &why), MOAT_OK);
	assert_int_equal(u.port, 5684);
	/* path_format bounds */
	assert_int_equal(coap_path_format(&m, path, 3), MOAT_ELIMIT);
}

static void test_uri_rejects(void **state)
{
	(void)state;
	static const char *const bad[] = {
		"http://host/",
		"coap:/host",
		"coap://user:secret@host/",
		"coap://host/#frag",
		"coap://host:0/",
		"coap://host:65536/",
		"coap://host:12a/",
		"coap://host:123456/",
		"coap://[::1/",
		"coap://[::1]x/",
		"coap://[nonsense]/",
		"coap:///path",
		"coap://ho st/",
		"coap://host/a b",
		"coap://host/%zz",
		"coap://host/%4",
		"coap://host/./a",
		"coap://host/a/..",
		"coap://host/?q=\"",
		"coap://host/a\x01",
	};
	for (size_t i = 0; i < MOAT_ARRAY_LEN(bad); i++) {
		struct coap_uri u;
		const char *why = NULL;
		if (coap_uri_parse(bad[i], &u, &why) != MOAT_EINVAL)
			fail_msg("accepted %s", bad[i]);
		assert_non_null(why);
	}
	/* 255-byte segments pass, 256 fail */
	char uri[400] = "coap://h/";
	memset(uri + 9, 'a', 255);
	uri[9 + 255] = 0;
	struct coap_uri u;
	const char *why;
	assert_int_equal(coap_uri_parse(uri, &u, &why), MOAT_OK);
	strcat(uri, "a");
	assert_int_equal(coap_uri_parse(uri, &u, &why), MOAT_EINVAL);
	/* "%2E%2E" is data, not a dot segment, and is formatted back so */
	uint8_t buf[64];
	size_t n = uri_request("coap://h/%2E%2E/%2e/.a", buf, sizeof(buf));
	struct coap_msg m;
	assert_int_equal(coap_parse(buf, n, &m), MOAT_OK);
	char path[64];
	assert_int_equal(coap_path_format(&m, path, sizeof(path)), MOAT_OK);
	assert_string_equal(path, "/%2E%2E/%2E/.a");
}

static void test_pct(void **state)
{
	(void)state;
	uint8_t out[8];
	size_t n;
	assert_int_equal(coap_pct_decode("a%41%7e", 7, out, sizeof(out), &n),
			 MOAT_OK);
	assert_int_equal(n, 3);
	assert_memory_equal(out, "aA~", 3);
	assert_int_equal(coap_pct_decode("%4", 2, out, sizeof(out), &n),
			 MOAT_EINVAL);
	assert_int_equal(coap_pct_decode("%g0", 3, out, sizeof(out), &n),
			 MOAT_EINVAL);
	assert_int_equal(coap_pct_decode("abc", 3, out, 2, &n), MOAT_ELIMIT);
	char s[16];
	size_t pos = 0;
	assert_int_equal(coap_pct_encode((const uint8_t *)"a/b c&", 6, "&", s,
					 sizeof(s), &pos),
			 MOAT_OK);
	assert_string_equal(s, "a%2Fb%20c%26");
	pos = 0;
	assert_int_equal(coap_pct_encode((const uint8_t *)"\xff", 1, NULL, s,
					 3, &pos),
			 MOAT_ELIMIT);
}

/* RFC 7967: the bits of No-Response name the classes to suppress. */
static void nr_msg(uint8_t *buf, size_t cap, const uint8_t *val, size_t vl,
		   struct coap_msg *m)
{
	struct coap_wr w;
	size_t len;
	coap_wr_init(&w, buf, cap);
	coap_wr_header(&w, COAP_NON, COAP_POST, 7, NULL, 0);
	if (val)
		coap_wr_opt(&w, COAP_OPT_NO_RESPONSE, val, vl);
	assert_int_equal(coap_wr_finish(&w, &len), MOAT_OK);
	assert_int_equal(coap_parse(buf, len, m), MOAT_OK);
}

static void test_rfc7967_no_response(void **state)
{
	(void)state;
	uint8_t buf[32];
	struct coap_msg m;
	nr_msg(buf, sizeof(buf), NULL, 0, &m); /* no option */
	assert_false(coap_no_response(&m, COAP_CHANGED));
	nr_msg(buf, sizeof(buf), (const uint8_t *)"", 0, &m); /* 0: all */
	assert_false(coap_no_response(&m, COAP_CHANGED));
	assert_false(coap_no_response(&m, COAP_NOT_FOUND));
	uint8_t v = COAP_NO_RESPONSE_2XX;
	nr_msg(buf, sizeof(buf), &v, 1, &m);
	assert_true(coap_no_response(&m, COAP_CHANGED));
	assert_true(coap_no_response(&m, COAP_CONTENT));
	/* errors the client did not name are always sent */
	assert_false(coap_no_response(&m, COAP_FORBIDDEN));
	assert_false(coap_no_response(&m, COAP_SERVICE_UNAVAILABLE));
	v = COAP_NO_RESPONSE_4XX;
	nr_msg(buf, sizeof(buf), &v, 1, &m);
	assert_false(coap_no_response(&m, COAP_CHANGED));
	assert_true(coap_no_response(&m, COAP_FORBIDDEN));
	assert_false(coap_no_response(&m, COAP_SERVICE_UNAVAILABLE));
	v = COAP_NO_RESPONSE_2XX | COAP_NO_RESPONSE_4XX | COAP_NO_RESPONSE_5XX;
	nr_msg(buf, sizeof(buf), &v, 1, &m);
	assert_true(coap_no_response(&m, COAP_CHANGED));
	assert_true(coap_no_response(&m, COAP_BAD_REQUEST));
	assert_true(coap_no_response(&m, COAP_SERVICE_UNAVAILABLE));
	/* longer than 1 byte: malformed, ignored */
	uint8_t two[2] = {0, COAP_NO_RESPONSE_2XX};
	nr_msg(buf, sizeof(buf), two, 2, &m);
	assert_false(coap_no_response(&m, COAP_CHANGED));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_rfc7252_appendix_a_get),
		T(test_writer_builds_same_bytes),
		T(test_rfc7252_3_1_extended_forms),
		T(test_rfc7252_3_format_errors),
		T(test_rfc7252_4_1_empty_and_ping),
		T(test_writer_errors),
		T(test_rfc7252_5_4_critical_elective),
		T(test_rfc7252_3_2_uint),
		T(test_rfc7959_2_2_block),
		T(test_rfc7641_3_4_newer),
		T(test_names),
		T(test_rfc7252_6_6_equivalence),
		T(test_rfc7252_6_4_uri_options),
		T(test_uri_rejects),
		T(test_pct),
		T(test_rfc7967_no_response),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
