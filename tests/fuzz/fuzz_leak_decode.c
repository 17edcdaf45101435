/* libFuzzer harness for the leak detector's decoders (src/leak
 * leak_cbor.c, leak_decode.c).
 *
 * Input: one mode byte, then bytes.  Mode bit 0 clear: the bytes are
 * transcoded as CBOR directly (the segment map must stay inside input
 * and output, the output inside its buffer) and then scanned as a
 * message (CBOR and binary handling).  Bit 0 set: the bytes are base64-
 * encoded into {"data":"..."} and scanned (the blob decoder): a decoded
 * finding covers exactly the blob.  Both: findings lie inside the
 * message, and a second scan gives the same findings (the nested scan
 * state leaves nothing behind). */
#include "fuzz_util.h"
#include "leak/leak_int.h"

static struct moat_leak_db *db;
static struct moat_leak_scratch *scr;
static struct lk_decode dc;
static uint8_t text[LK_DECODE_MAX];
static struct moat_leak_finding saved[MOAT_LEAK_MAX_FINDINGS];

static void setup(void)
{
	static const uint8_t key[MOAT_LEAK_KEY_LEN] = "fuzz-install-key-0123456789abcd";
	struct moat_leak_opts o = {0, 0, 0, key};
	char err[256];
	if (moat_leak_db_new(&o, &db, err, sizeof(err)) ||
	    moat_leak_scratch_new(db, &scr)) {
		fprintf(stderr, "setup: %s\n", err);
		abort();
	}
	dc.buf = text;
	dc.cap = sizeof(text);
}

static void check_map(size_t n)
{
	CHECK(dc.len <= dc.cap && dc.nseg <= LK_SEG_MAX);
	for (size_t i = 0; i < dc.nseg; i++) {
		const struct lk_seg *g = &dc.seg[i];
		CHECK(g->is <= g->ie && g->ie <= n && g->os <= dc.len);
		CHECK(i == 0 || dc.seg[i - 1].os <= g->os);
	}
}

static size_t b64(const uint8_t *in, size_t n, char *out)
{
	static const char a[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	size_t o = 0;
	for (size_t i = 0; i < n; i += 3) {
		uint32_t v = (uint32_t)in[i] << 16;
		if (i + 1 < n)
			v |= (uint32_t)in[i + 1] << 8;
		if (i + 2 < n)
			v |= in[i + 2];
		out[o++] = a[v >> 18 & 63];
		out[o++] = a[v >> 12 & 63];
		out[o++] = i + 1 < n ? a[v >> 6 & 63] : '=';
		out[o++] = i + 2 < n ? a[v & 63] : '=';
	}
	return o;
}

static void scan_twice(const uint8_t *m, size_t n, size_t bs, size_t be)
{
	struct moat_leak_result r;
	int rc = moat_leak_scan(db, scr, m, n, &r);
	CHECK(rc >= 0 && (size_t)rc == r.n);
	for (size_t i = 0; i < r.n; i++) {
		const struct moat_leak_finding *f = &r.findings[i];
		CHECK(f->start < f->end && f->end <= n);
		if (be && (f->flags & MOAT_LEAK_F_DECODED))
			CHECK(f->start == bs && f->end == be);
	}
	size_t k = r.n;
	memcpy(saved, r.findings, k * sizeof(saved[0]));
	rc = moat_leak_scan(db, scr, m, n, &r);
	CHECK((size_t)rc == k);
	for (size_t i = 0; i < k; i++)
		CHECK(saved[i].start == r.findings[i].start &&
		      saved[i].end == r.findings[i].end &&
		      saved[i].category == r.findings[i].category);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!db)
		setup();
	if (size < 1 || size > 4097)
		return 0;
	uint8_t mode = data[0];
	size_t n = size - 1;
	uint8_t *m = malloc(2 * n + 64); /* base64 and the JSON around */
	if (!m)
		return 0;
	if (!(mode & 1)) {
		memcpy(m, data + 1, n);
		if (moat__leak_cbor_json(m, n, &dc))
			check_map(n);
		scan_twice(m, n, 0, 0);
	} else {
		size_t o = 0;
		memcpy(m, "{\"data\":\"", 9);
		o = 9;
		size_t bl = b64(data + 1, n, (char *)m + o);
		memcpy(m + o + bl, "\"}", 2);
		scan_twice(m, o + bl + 2, o, o + bl);
	}
	free(m);
	return 0;
}
