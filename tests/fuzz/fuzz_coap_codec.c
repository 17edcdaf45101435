/* libFuzzer harness for the CoAP codec (src/codec/coap*.c).
 *
 * Input layout: data[0] % FUZZ_NTARGETS picks the entry point; the rest is
 * its input.  Every decoder gets an exact-size heap copy so that ASan sees
 * any over-read.
 *
 * Properties checked beyond "no crash" (abort when one fails):
 *  - a datagram coap_parse() accepts re-encodes (coap_encode, option by
 *    option through the writer) to the identical bytes, and parses again
 *    to the same header, token, option count and payload; every option
 *    value lies inside the datagram; the iterator yields n_opts options
 *    in non-decreasing order;
 *  - a URI coap_uri_parse() accepts always yields options that fit a
 *    buffer of its length plus the header, and whose Uri-Path, formatted
 *    by coap_path_format() and parsed again, gives the same options;
 *  - coap_pct_decode(coap_pct_encode(x)) == x;
 *  - messages built by the writer from fuzzed options parse back to the
 *    same options;
 *  - coap_observe_newer() never calls both of two notifications newer. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec/coap.h"
#include "codec/coap_uri.h"
#include "fuzz_util.h"


enum target {
	T_PARSE,
	T_URI,
	T_PCT,
	T_BUILD,
	T_OBSERVE,
	FUZZ_NTARGETS,
};

static void fuzz_parse(const uint8_t *p, size_t n)
{
	struct coap_msg m;
	if (coap_parse(p, n, &m) != MOAT_OK)
		return;
	struct coap_opt_iter it;
	struct coap_opt o;
	size_t count = 0;
	uint32_t last = 0;
	coap_opt_iter_init(&it, &m);
	while (coap_opt_next(&it, &o)) {
		CHECK(o.num >= last);
		CHECK(o.len == 0 || (o.val >= p && o.val + o.len <= p + n));
		last = o.num;
		count++;
	}
	CHECK(count == m.n_opts);
	CHECK(!m.payload || (m.payload_len > 0 &&
			     m.payload + m.payload_len == p + n));
	uint8_t *out = malloc(n);
	if (!out)
		abort();
	size_t len = 0;
	CHECK(coap_encode(&m, out, n, &len) == MOAT_OK);
	CHECK(len == n && memcmp(out, p, n) == 0);
	if (n > 0) /* one byte short must not fit */
		CHECK(coap_encode(&m, out, n - 1, &len) == MOAT_ELIMIT);
	free(out);
	/* Lookups and checks on whatever parsed. */
	uint16_t bad;
	(void)coap_opts_check(&m, &bad);
	struct coap_block b;
	if (coap_opt_block(&m, COAP_OPT_BLOCK2, &b) == MOAT_OK)
		CHECK(b.szx <= COAP_BLOCK_SZX_MAX && b.num <= 0xFFFFF);
	uint32_t v;
	(void)coap_opt_uint(&m, COAP_OPT_OBSERVE, 3, &v);
	/* No-Response never suppresses a class the option does not name. */
	if (coap_opt_uint(&m, COAP_OPT_NO_RESPONSE, 1, &v) != MOAT_OK)
		v = 0;
	CHECK(coap_no_response(&m, COAP_CHANGED) == ((v & 2) != 0));
	CHECK(coap_no_response(&m, COAP_NOT_FOUND) == ((v & 8) != 0));
	CHECK(coap_no_response(&m, COAP_SERVICE_UNAVAILABLE) ==
	      ((v & 16) != 0));
	CHECK(!coap_no_response(&m, COAP_EMPTY));
	char path[300];
	(void)coap_path_format(&m, path, sizeof(path));
	char *big = malloc(3 * n + 2);
	if (!big)
		abort();
	CHECK(coap_path_format(&m, big, 3 * n + 2) == MOAT_OK);
	CHECK(big[0] == '/');
	free(big);
}

/* The Uri-Path options of m as (len, bytes) pairs into out; its length. */
static size_t path_opts(const struct coap_msg *m, uint8_t *out, size_t cap)
{
	struct coap_opt_iter it;
	struct coap_opt o;
	size_t k = 0;
	coap_opt_iter_init(&it, m);
	while (coap_opt_next(&it, &o)) {
		if (o.num != COAP_OPT_URI_PATH)
			continue;
		CHECK(k + 1 + o.len <= cap);
		out[k++] = (uint8_t)o.len;
		memcpy(out + k, o.val, o.len);
		k += o.len;
	}
	return k;
}

static void fuzz_uri(const uint8_t *p, size_t n)
{
	char *s = malloc(n + 1);
	if (!s)
		abort();
	memcpy(s, p, n);
	s[n] = 0;
	struct coap_uri u;
	const char *why;
	if (coap_uri_parse(s, &u, &why) != MOAT_OK) {
		CHECK(why != NULL);
		free(s);
		return;
	}
	size_t cap = 2 * n + 32;
	uint8_t *buf = malloc(cap);
	struct coap_wr w;
	size_t len;
	coap_wr_init(&w, buf, cap);
	coap_wr_header(&w, COAP_CON, COAP_GET, 1, NULL, 0);
	coap_wr_uri_host(&w, &u);
	coap_wr_uri_path(&w, &u);
	coap_wr_uri_query(&w, &u);
	CHECK(coap_wr_finish(&w, &len) == MOAT_OK);
	struct coap_msg m;
	CHECK(coap_parse(buf, len, &m) == MOAT_OK);
	/* format the path, parse it again: same Uri-Path options */
	size_t pcap = 3 * n + 16;
	char *uri2 = malloc(pcap + 16);
	memcpy(uri2, "coap://h", 8);
	CHECK(coap_path_format(&m, uri2 + 8, pcap) == MOAT_OK);
	struct coap_uri u2;
	CHECK(coap_uri_parse(uri2, &u2, &why) == MOAT_OK);
	uint8_t *buf2 = malloc(pcap + 16);
	coap_wr_init(&w, buf2, pcap + 16);
	coap_wr_header(&w, COAP_CON, COAP_GET, 1, NULL, 0);
	coap_wr_uri_path(&w, &u2);
	CHECK(coap_wr_finish(&w, &len) == MOAT_OK);
	struct coap_msg m2;
	CHECK(coap_parse(buf2, len, &m2) == MOAT_OK);
	uint8_t *a = malloc(2 * n + 16), *b = malloc(2 * n + 16);
	size_t na = path_opts(&m, a, 2 * n + 16);
	size_t nb = path_opts(&m2, b, 2 * n + 16);
	CHECK(na == nb && memcmp(a, b, na) == 0);
	free(a);
	free(b);
	free(buf2);
	free(uri2);
	free(buf);
	free(s);
}

static void fuzz_pct(const uint8_t *p, size_t n)
{
	size_t cap = 3 * n + 1;
	char *enc = malloc(cap);
	uint8_t *dec = malloc(n ? n : 1);
	size_t pos = 0, len = 0;
	CHECK(coap_pct_encode(p, n, "&", enc, cap, &pos) == MOAT_OK);
	CHECK(coap_pct_decode(enc, pos, dec, n, &len) == MOAT_OK);
	CHECK(len == n && (n == 0 || memcmp(dec, p, n) == 0));
	/* and decoding the raw input never overflows */
	(void)coap_pct_decode((const char *)p, n, dec, n, &len);
	free(enc);
	free(dec);
}

/* Input: header bytes, then (delta, len, bytes...) triples. */
static void fuzz_build(const uint8_t *p, size_t n)
{
	if (n < 4)
		return;
	uint8_t buf[4096];
	struct coap_wr w;
	uint16_t nums[512];
	const uint8_t *vals[512];
	size_t lens[512], k = 0;
	uint32_t num = 0;
	coap_wr_init(&w, buf, sizeof(buf));
	coap_wr_header(&w, p[0] & 3u, p[1] ? p[1] : 1, (uint16_t)(p[2] << 8),
		       p + 3, 0);
	size_t i = 4;
	while (i + 2 <= n && k < 512) {
		uint32_t delta = p[i] & 0x80u ? (uint32_t)p[i] << 4 : p[i];
		size_t len = p[i + 1];
		i += 2;
		if (len > n - i || num + delta > COAP_OPTNUM_MAX)
			break;
		num += delta;
		nums[k] = (uint16_t)num;
		vals[k] = p + i;
		lens[k++] = len;
		coap_wr_opt(&w, (uint16_t)num, p + i, len);
		i += len;
	}
	coap_wr_payload(&w, p + i, n - i);
	size_t len;
	if (coap_wr_finish(&w, &len) != MOAT_OK)
		return;
	struct coap_msg m;
	CHECK(coap_parse(buf, len, &m) == MOAT_OK);
	CHECK(m.n_opts == k);
	struct coap_opt_iter it;
	struct coap_opt o;
	size_t j = 0;
	coap_opt_iter_init(&it, &m);
	while (coap_opt_next(&it, &o)) {
		CHECK(o.num == nums[j] && o.len == lens[j]);
		CHECK(o.len == 0 || memcmp(o.val, vals[j], o.len) == 0);
		j++;
	}
	CHECK(m.payload_len == n - i);
}

static void fuzz_observe(const uint8_t *p, size_t n)
{
	if (n < 10)
		return;
	uint32_t v1 = (uint32_t)p[0] << 16 | (uint32_t)p[1] << 8 | p[2];
	uint32_t v2 = (uint32_t)p[3] << 16 | (uint32_t)p[4] << 8 | p[5];
	uint64_t t = (uint64_t)p[6] << 8 | p[7];
	CHECK(!(coap_observe_newer(v1, t, v2, t) &&
		coap_observe_newer(v2, t, v1, t)));
	struct coap_block b;
	uint32_t v = (uint32_t)p[7] << 16 | (uint32_t)p[8] << 8 | p[9];
	if (coap_block_decode(v, &b) == MOAT_OK)
		CHECK(coap_block_encode(&b) == v);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	uint8_t *p = fuzz_copy_exact(data + 1, size - 1);
	size_t n = size - 1;
	switch (data[0] % FUZZ_NTARGETS) {
	case T_PARSE:
		fuzz_parse(p, n);
		break;
	case T_URI:
		fuzz_uri(p, n);
		break;
	case T_PCT:
		fuzz_pct(p, n);
		break;
	case T_BUILD:
		fuzz_build(p, n);
		break;
	case T_OBSERVE:
		fuzz_observe(p, n);
		break;
	}
	free(p);
	return 0;
}
