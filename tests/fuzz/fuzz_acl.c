/* libFuzzer harness for the ACL engine (src/auth/acl.c).
 *
 * Input layout, three header lines and then the ACL text:
 *   line 1  a query: topic name or subscription filter
 *   line 2  user name (empty line = anonymous)
 *   line 3  client id (empty line = none)
 *   rest    ACL file text
 * Every query gets an exact-size heap copy so ASan sees any over-read.
 *
 * Beyond "no crash", the harness aborts when a property fails:
 *  - a failed load returns no ACL and an error "fuzz:LINE: ..." (or
 *    "fuzz: ..." for the size limit);
 *  - for a query that is both a topic name and a filter (no wildcards),
 *    SUBSCRIBE and READ agree;
 *  - fully-readable implies SUBSCRIBE, and READ of names the filter
 *    matches (sampled: '+' and '#' replaced by levels);
 *  - without deny rules in the text, SUBSCRIBE implies READ of those
 *    sampled names;
 *  - answers do not depend on the query buffer being NUL-terminated or on
 *    earlier queries (asked twice). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/acl.h"
#include "codec/mqtt_codec.h"
#include "fuzz_util.h"


#define SAMPLE_MAX 256 /* longest filter expanded into sample names */

static char *copy_exact(const char *p, size_t n)
{
	char *h = malloc(n ? n : 1);
	if (!h)
		abort();
	if (n)
		memcpy(h, p, n);
	return h;
}

/* NUL-terminated copy for the user / client id (NULL when empty or when
 * it contains a NUL, which no MQTT string can). */
static char *cstr_or_null(const char *p, size_t n)
{
	if (n == 0 || memchr(p, 0, n))
		return NULL;
	char *s = malloc(n + 1);
	if (!s)
		abort();
	memcpy(s, p, n);
	s[n] = '\0';
	return s;
}

/* The next line of data[*pos..size), without its '\n'. */
static size_t next_line(const uint8_t *data, size_t size, size_t *pos,
			const char **line)
{
	const uint8_t *start = data + *pos;
	const uint8_t *nl = memchr(start, '\n', size - *pos);
	size_t n = nl ? (size_t)(nl - start) : size - *pos;
	*line = (const char *)start;
	*pos += n + (nl ? 1 : 0);
	return n;
}

/* A name that filter f matches, with '+' and '#' replaced as `variant`
 * says; 0 when there is none of that shape. */
static size_t sample_name(const char *f, size_t fn, int variant, char *out)
{
	static const char *const plus[] = {"x", "", "x$"};
	static const char *const hash[] = {"x", NULL, "x/y"}; /* NULL: parent */
	size_t o = 0;
	for (size_t i = 0; i < fn; i++) {
		bool start = i == 0 || f[i - 1] == '/';
		const char *rep = NULL;
		if (start && f[i] == '+')
			rep = plus[variant];
		else if (start && f[i] == '#') {
			if (!hash[variant]) { /* drop "/#" (or "#") */
				o = o ? o - 1 : 0;
				break;
			}
			rep = hash[variant];
		}
		size_t rn = rep ? strlen(rep) : 1;
		if (o + rn > SAMPLE_MAX)
			return 0;
		memcpy(out + o, rep ? rep : &f[i], rn);
		o += rn;
	}
	if (!moat_topic_name_valid((const uint8_t *)out, o))
		return 0;
	CHECK(moat_topic_matches((const uint8_t *)f, fn, (const uint8_t *)out,
				 o));
	return o;
}

static bool ask(const struct moat_acl *acl, const char *user,
		const char *cid, const char *t, size_t n,
		enum moat_acl_access access)
{
	char *h = copy_exact(t, n);
	bool r = moat_acl_allows(acl, user, cid, h, n, access);
	free(h);
	return r;
}

static void query(const struct moat_acl *acl, const char *user,
		  const char *cid, const char *q, size_t qn, bool has_deny)
{
	char *h = copy_exact(q, qn);
	bool rd = moat_acl_allows(acl, user, cid, h, qn, MOAT_ACL_READ);
	bool wr = moat_acl_allows(acl, user, cid, h, qn, MOAT_ACL_WRITE);
	bool sub = moat_acl_allows(acl, user, cid, h, qn, MOAT_ACL_SUBSCRIBE);
	bool full = moat_acl_filter_fully_readable(acl, user, cid, h, qn);
	/* the same answers a second time */
	CHECK(rd == moat_acl_allows(acl, user, cid, h, qn, MOAT_ACL_READ));
	CHECK(sub == moat_acl_allows(acl, user, cid, h, qn,
				     MOAT_ACL_SUBSCRIBE));
	free(h);

	const uint8_t *u8 = (const uint8_t *)q;
	bool name = moat_topic_name_valid(u8, qn);
	bool filter = moat_topic_filter_valid(u8, qn);
	if (!name)
		CHECK(!rd && !wr);
	if (!filter)
		CHECK(!sub && !full);
	if (name && filter)
		CHECK(sub == rd);
	if (full)
		CHECK(sub);
	if (!filter || qn > SAMPLE_MAX)
		return;
	for (int v = 0; v < 3; v++) {
		char t[SAMPLE_MAX];
		size_t tn = sample_name(q, qn, v, t);
		if (!tn)
			continue;
		bool r = ask(acl, user, cid, t, tn, MOAT_ACL_READ);
		if (full || (sub && !has_deny))
			CHECK(r);
	}
}

static bool contains(const char *p, size_t n, const char *word)
{
	size_t wn = strlen(word);
	for (size_t i = 0; i + wn <= n; i++)
		if (!memcmp(p + i, word, wn))
			return true;
	return false;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t pos = 0;
	const char *q, *u, *c;
	size_t qn = next_line(data, size, &pos, &q);
	size_t un = next_line(data, size, &pos, &u);
	size_t cn = next_line(data, size, &pos, &c);
	const char *text = (const char *)data + pos;
	size_t tn = size - pos;

	char *acl_text = copy_exact(text, tn);
	char err[256];
	struct moat_acl *acl = NULL;
	int rc = moat_acl_parse(acl_text, tn, "fuzz", &acl, err, sizeof(err));
	free(acl_text);
	if (rc != MOAT_OK) {
		CHECK(acl == NULL);
		CHECK(!strncmp(err, "fuzz:", 5));
		return 0;
	}
	CHECK(acl != NULL);
	size_t lines = 1;
	for (size_t i = 0; i < tn; i++)
		lines += text[i] == '\n';
	CHECK(moat_acl_rule_count(acl) <= lines);

	char *user = cstr_or_null(u, un);
	char *cid = cstr_or_null(c, cn);
	bool has_deny = contains(text, tn, "deny");
	query(acl, user, cid, q, qn, has_deny);
	query(acl, NULL, cid, q, qn, has_deny);
	query(acl, user, NULL, q, qn, has_deny);
	(void)moat_acl_clientid_allowed(acl, user, cid);
	(void)moat_acl_clientid_allowed(acl, NULL, cid);
	char *qs = cstr_or_null(q, qn);
	if (qs) { /* the query as a client id too */
		(void)moat_acl_clientid_allowed(acl, user, qs);
		(void)moat_acl_clientid_allowed(acl, NULL, qs);
		free(qs);
	}
	(void)moat_acl_uses_user_pattern(acl);
	(void)moat_acl_uses_clientid_pattern(acl);
	free(user);
	free(cid);
	moat_acl_free(acl);
	return 0;
}
