/* libFuzzer harness for password files (src/auth/passwd.c).
 *
 * The input is the file text.  moat_pwfile_parse() gets an exact-size heap
 * copy so that ASan sees any over-read.  Beyond "no crash", the harness
 * checks, and aborts when one fails:
 *  - a failed load has an error "fuzz:LINE: ..." (or "fuzz: ..."), and
 *    no file object;
 *  - a loaded file has as many users as the input has user lines (an
 *    independent line splitter), and every one of them is found;
 *  - for users whose hash is cheap (mosquitto $6$, $7$ with at most
 *    FUZZ_MAX_ITER iterations, argon2id with at most 64 KiB and 2
 *    passes), every hash the parser accepted is verifiable (a match or a
 *    mismatch, never "malformed"), and moat_pwfile_check() agrees with
 *    moat_passwd_verify() on it, twice (the second time through the
 *    success cache when it matched).
 * Costlier argon2id hashes are not verified (up to 256 MiB and 16 passes
 * by design), and an unknown user costs one OWASP-sized argon2id
 * verification, so only users known to be in the file are checked. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/passwd.h"
#include "common/moat_common.h"
#include "fuzz_util.h"


#define FUZZ_MAX_ITER 1000UL
#define FUZZ_MAX_CHECKS 4
/* The seed corpus has $6$/$7$ hashes of this password. */
static const char fuzz_pw[] = "fuzz-password";

/* One user line as the reference splitter sees it. */
struct ref_line {
	const char *user, *hash;
	size_t ulen, hlen;
};

/* The decimal at s[0..len), if it is at most max. */
static bool small_number(const char *s, size_t len, unsigned long max)
{
	unsigned long v = 0;
	for (size_t i = 0; i < len && s[i] >= '0' && s[i] <= '9'; i++) {
		v = v * 10 + (unsigned long)(s[i] - '0');
		if (v > max)
			return false;
	}
	return true;
}

/* The value after "key" in an argon2id hash, if it is small. */
static bool small_param(const char *h, size_t len, const char *key,
			unsigned long max)
{
	const char *k = memmem(h, len, key, strlen(key));
	if (!k)
		return false;
	size_t off = (size_t)(k - h) + strlen(key);
	return small_number(h + off, len - off, max);
}

/* Is hash[0..len) cheap enough to verify in a fuzzer?  argon2id only
 * with the smallest memory and time costs (8..64 KiB, 1..2 passes). */
static bool cheap_hash(const char *hash, size_t len)
{
	if (len >= 3 && memcmp(hash, "$6$", 3) == 0)
		return true;
	if (len >= 4 && memcmp(hash, "$7$", 3) == 0)
		return small_number(hash + 3, len - 3, FUZZ_MAX_ITER);
	if (len >= 10 && memcmp(hash, "$argon2id$", 10) == 0)
		return small_param(hash, len, "$m=", 64) &&
		       small_param(hash, len, ",t=", 2) &&
		       small_param(hash, len, ",p=", 2);
	return false;
}

static bool blank(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (s[i] != ' ' && s[i] != '\t')
			return false;
	return true;
}

/* Calls fn for every user line of an accepted file (all of them have a
 * colon, or the load would have failed). */
static void each_user_line(const char *text, size_t len,
			   void (*fn)(const struct ref_line *, void *),
			   void *arg)
{
	const char *p = text, *end = text + len;
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t n = (size_t)((nl ? nl : end) - p);
		if (n && p[n - 1] == '\r')
			n--;
		if (!blank(p, n) && p[0] != '#') {
			const char *colon = memchr(p, ':', n);
			CHECK(colon != NULL);
			struct ref_line l = {p, colon + 1, (size_t)(colon - p),
					     n - (size_t)(colon - p) - 1};
			fn(&l, arg);
		}
		p = nl ? nl + 1 : end;
	}
}

struct ctx {
	struct moat_pwfile *f;
	size_t users;
	int checks;
};

static void check_line(const struct ref_line *l, void *arg)
{
	struct ctx *c = arg;
	c->users++;
	CHECK(moat_pwfile_has_user(c->f, l->user, l->ulen));
	if (c->checks >= FUZZ_MAX_CHECKS || !cheap_hash(l->hash, l->hlen))
		return;
	c->checks++;
	char *hash = moat_strndup(l->hash, l->hlen);
	if (!hash)
		return;
	const uint8_t *pw = (const uint8_t *)fuzz_pw;
	size_t pwlen = sizeof(fuzz_pw) - 1;
	/* a hash the file accepted is always verifiable */
	int verdict = moat_passwd_verify(hash, pw, pwlen);
	CHECK(verdict == MOAT_OK || verdict == MOAT_EDENIED);
	int want = verdict;
	CHECK(moat_pwfile_check(c->f, l->user, l->ulen, pw, pwlen) == want);
	CHECK(moat_pwfile_check(c->f, l->user, l->ulen, pw, pwlen) == want);
	CHECK(moat_pwfile_check(c->f, l->user, l->ulen, pw, pwlen - 1) ==
	      MOAT_EDENIED);
	moat_free(hash);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = moat_malloc(size ? size : 1);
	if (!text)
		return 0;
	if (size)
		memcpy(text, data, size);
	/* not NULL: a failed parse must reset it */
	struct moat_pwfile *f = (struct moat_pwfile *)(uintptr_t)1;
	char err[256];
	int rc = moat_pwfile_parse(text, size, "fuzz", &f, err, sizeof(err));
	if (rc != MOAT_OK) {
		CHECK(f == NULL);
		CHECK(strncmp(err, "fuzz:", 5) == 0);
		CHECK(memchr(err, '\0', sizeof(err)) != NULL);
	} else {
		struct ctx c = {f, 0, 0};
		each_user_line(text, size, check_line, &c);
		CHECK(c.users == moat_pwfile_count(f));
		moat_pwfile_free(f);
	}
	moat_free(text);
	return 0;
}
