/* libFuzzer harness for the payload leak detector (src/leak).
 *
 * Input: one mode byte, then the message.  The mode byte picks the
 * detector: bits 0-1 choose one of four dbs (all categories with the
 * default budget; a 300-byte budget; JSON depth 2; a subset of
 * categories), bit 2 scans only a prefix (the first half) of the
 * message.  The message gets an exact-size heap copy so that ASan sees
 * any read past its end.
 *
 * Beyond "no crash", the harness aborts when a property fails:
 *  - the result is consistent: the return value is out.n, n <= 64,
 *    total >= n, truncation flagged iff total > n, scanned =
 *    min(len, budget), findings sorted, inside the scanned bytes,
 *    categories of the db only, severity and confidence in range, the
 *    category set and maximum severity match the findings;
 *  - previews are printable ASCII and do not contain the matched bytes
 *    (when those are 8 bytes or more); HMACs are 32 lower-case hex
 *    digits and equal for equal matched bytes; paths are "" or "$...";
 *  - scanning is deterministic and stateless: the same message gives the
 *    same findings again after an unrelated message was scanned with
 *    the same scratch;
 *  - the structure cache of moat_leak_scan_msg hides nothing: after the
 *    message was scanned on a topic (the topic's entry set to it when it
 *    qualifies), the message with its digits and hex letters changed
 *    (the same structure, other readings) gives the payload findings
 *    moat_leak_scan gives;
 *  - redaction: in place keeps the length and changes nothing outside
 *    the (escape-widened) ranges; a message that was walked as JSON
 *    without error is still walked without error after redaction (JSON
 *    stays valid); the copy form reports the size it needs and then
 *    fits, and equals the input when there is nothing to redact. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "leak/leak.h"
#include "fuzz_util.h"


#define NDB 4

static struct moat_leak_db *dbs[NDB];
static struct moat_leak_scratch *scratch[NDB];
static struct moat_leak_finding saved[MOAT_LEAK_MAX_FINDINGS];

static void setup(void)
{
	static const uint8_t key[MOAT_LEAK_KEY_LEN] = "fuzz-install-key-0123456789abcd";
	struct moat_leak_opts o[NDB] = {
		{0, 0, 0, key},
		{0, 300, 0, key},
		{0, 0, 2, key},
		{MOAT_LEAK_BIT(MOAT_LEAK_CREDENTIAL) |
			 MOAT_LEAK_BIT(MOAT_LEAK_GEOLOCATION) |
			 MOAT_LEAK_BIT(MOAT_LEAK_PAYMENT_CARD) |
			 MOAT_LEAK_BIT(MOAT_LEAK_WIFI_CREDENTIALS) |
			 MOAT_LEAK_BIT(MOAT_LEAK_PERSON),
		 0, 0, key},
	};
	char err[256];
	for (int i = 0; i < NDB; i++) {
		if (moat_leak_db_new(&o[i], &dbs[i], err, sizeof(err)) ||
		    moat_leak_scratch_new(dbs[i], &scratch[i])) {
			fprintf(stderr, "setup: %s\n", err);
			abort();
		}
	}
}

static bool printable(const char *s, size_t max)
{
	size_t n = strnlen(s, max);
	if (n == max)
		return false;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] >= 0x7f)
			return false;
	return true;
}

static void check_result(const struct moat_leak_db *db, const uint8_t *m,
			 size_t len, int rc, const struct moat_leak_result *r)
{
	uint32_t cats = 0;
	enum moat_leak_severity max = MOAT_LEAK_SEV_INFO;
	CHECK(rc >= 0 && (size_t)rc == r->n);
	CHECK(r->n <= MOAT_LEAK_MAX_FINDINGS && r->total >= r->n);
	CHECK(!(r->total > r->n) || (r->flags & MOAT_LEAK_R_TRUNCATED));
	size_t budget = moat_leak_db_budget(db);
	CHECK(r->scanned == (len < budget ? len : budget));
	CHECK(!!(r->flags & MOAT_LEAK_R_BUDGET) == (len > budget));
	for (size_t i = 0; i < r->n; i++) {
		const struct moat_leak_finding *f = &r->findings[i];
		CHECK(f->start < f->end && f->end <= r->scanned);
		CHECK(i == 0 || r->findings[i - 1].start <= f->start);
		CHECK((unsigned)f->category < MOAT_LEAK_CATEGORY_COUNT);
		CHECK(moat_leak_db_categories(db) & MOAT_LEAK_BIT(f->category));
		CHECK(f->severity <= MOAT_LEAK_SEV_CRITICAL);
		CHECK(f->confidence <= 100);
		CHECK(printable(f->preview, sizeof(f->preview)));
		CHECK(printable(f->path, sizeof(f->path)));
		CHECK(f->path[0] == '\0' || f->path[0] == '$');
		CHECK(strlen(f->hmac) == MOAT_LEAK_HMAC_HEX &&
		      strspn(f->hmac, "0123456789abcdef") == MOAT_LEAK_HMAC_HEX);
		size_t mn = f->end - f->start;
		if (mn >= 8 && mn < sizeof(f->preview))
			CHECK(!memmem(f->preview, strlen(f->preview),
				      m + f->start, mn));
		for (size_t j = 0; j < i; j++) {
			const struct moat_leak_finding *g = &r->findings[j];
			if (g->end - g->start == mn &&
			    !memcmp(m + g->start, m + f->start, mn))
				CHECK(!strcmp(g->hmac, f->hmac));
		}
		cats |= MOAT_LEAK_BIT(f->category);
		if (f->severity > max)
			max = f->severity;
	}
	CHECK(cats == r->categories && max == r->max_severity);
}

static bool same(const struct moat_leak_finding *a, const struct moat_leak_result *r,
		 size_t n)
{
	if (r->n != n)
		return false;
	for (size_t i = 0; i < n; i++) {
		const struct moat_leak_finding *b = &r->findings[i];
		if (a[i].category != b->category || a[i].start != b->start ||
		    a[i].end != b->end || a[i].flags != b->flags ||
		    a[i].severity != b->severity || strcmp(a[i].hmac, b->hmac) ||
		    strcmp(a[i].path, b->path) ||
		    strcmp(a[i].preview, b->preview))
			return false;
	}
	return true;
}

/* In-place redaction keeps everything outside the findings' ranges
 * (widened by at most 8 bytes for escapes and UTF-8 sequences). */
static void check_redaction(struct moat_leak_db *db,
			    struct moat_leak_scratch *s, const uint8_t *m,
			    size_t len, const struct moat_leak_result *r)
{
	uint8_t *red = malloc(len ? len : 1);
	CHECK(red);
	memcpy(red, m, len);
	size_t n = r->n;
	uint32_t flags = r->flags;
	size_t changed = moat_leak_redact_inplace(red, len, r);
	for (size_t i = 0; i < len; i++) {
		if (red[i] == m[i])
			continue;
		bool inside = false;
		for (size_t k = 0; k < n && !inside; k++)
			inside = i + 8 >= saved[k].start && i < saved[k].end + 8;
		CHECK(inside);
	}
	CHECK(n > 0 || changed == 0);
	size_t need = 0;
	int rc = moat_leak_redact_copy(m, len, r, NULL, 0, &need);
	CHECK(rc == MOAT_OK ? need == 0 : rc == MOAT_ELIMIT);
	uint8_t *cp = malloc(need ? need : 1);
	CHECK(cp);
	size_t got = 0;
	CHECK(moat_leak_redact_copy(m, len, r, cp, need, &got) == MOAT_OK);
	CHECK(got == need);
	if (n == 0)
		CHECK(got == len && !memcmp(cp, m, len));
	free(cp);
	if ((flags & MOAT_LEAK_R_JSON) && !(flags & MOAT_LEAK_R_JSON_ERROR) &&
	    !(flags & MOAT_LEAK_R_BUDGET) && n > 0) {
		struct moat_leak_result r2;
		moat_leak_scan(db, s, red, len, &r2);
		CHECK((r2.flags & MOAT_LEAK_R_JSON) &&
		      !(r2.flags & MOAT_LEAK_R_JSON_ERROR));
	}
	free(red);
}

/* The structure cache property (see the top).  The topic's entry is set
 * to "{}" first, so that the outcome depends on this input only. */
static void check_cache(struct moat_leak_db *db, struct moat_leak_scratch *s,
			const uint8_t *m, size_t len)
{
	static const uint8_t t[] = "fuzz/shape/topic";
	struct moat_leak_result r;
	moat_leak_scan_msg(db, s, t, sizeof(t) - 1, (const uint8_t *)"{}", 2,
			   &r);
	moat_leak_scan_msg(db, s, t, sizeof(t) - 1, m, len, &r);
	uint8_t *v = malloc(len ? len : 1);
	CHECK(v);
	for (size_t i = 0; i < len; i++) {
		uint8_t c = m[i];
		v[i] = c >= '0' && c <= '9'   ? (uint8_t)('0' + (c - '0' + 7) % 10)
		       : c >= 'a' && c <= 'f' ? (uint8_t)('a' + (c - 'a' + 1) % 6)
					      : c;
	}
	moat_leak_scan(db, s, v, len, &r);
	size_t n = r.n;
	memcpy(saved, r.findings, n * sizeof(saved[0]));
	moat_leak_scan_msg(db, s, t, sizeof(t) - 1, v, len, &r);
	size_t k = 0;
	while (k < r.n && r.findings[k].part == MOAT_LEAK_PART_TOPIC)
		k++;
	CHECK(r.n - k == n);
	for (size_t i = 0; i < n; i++)
		CHECK(saved[i].category == r.findings[k + i].category &&
		      saved[i].start == r.findings[k + i].start &&
		      saved[i].end == r.findings[k + i].end);
	free(v);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!dbs[0])
		setup();
	if (size == 0)
		return 0;
	unsigned mode = data[0];
	int which = (int)(mode & 3u);
	size_t len = size - 1;
	if (mode & 4u)
		len /= 2;
	uint8_t *m = malloc(len ? len : 1);
	CHECK(m);
	memcpy(m, data + 1, len);
	struct moat_leak_db *db = dbs[which];
	struct moat_leak_scratch *s = scratch[which];
	struct moat_leak_result r;
	int rc = moat_leak_scan(db, s, m, len, &r);
	check_result(db, m, len, rc, &r);
	size_t n = r.n;
	memcpy(saved, r.findings, n * sizeof(saved[0]));
	/* stateless: an unrelated scan in between changes nothing */
	static const char other[] = "{\"ssid\":\"x\",\"lat\":1.5,\"password\":\"p\"}";
	moat_leak_scan(db, s, (const uint8_t *)other, sizeof(other) - 1, &r);
	rc = moat_leak_scan(db, s, m, len, &r);
	CHECK(same(saved, &r, n));
	check_redaction(db, s, m, len, &r);
	check_cache(db, s, m, len);
	free(m);
	return 0;
}
