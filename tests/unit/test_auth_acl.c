/* Unit tests for the ACL engine (src/auth/acl.c).
 *
 * Parsing (every error with its line number), anonymous / user / pattern
 * rules, deny precedence, subscription containment, fully-readable
 * filters and client-id binding, then model checks: "covers" and
 * "overlaps" agree with brute force over every topic name of a universe
 * chosen so that a counterexample or witness, if one exists, is in it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <pthread.h>
#include <sys/stat.h>
#include <unistd.h>

#include "auth/acl.h"
#include "codec/mqtt_codec.h"

#include "test_util.h"

#define RD MOAT_ACL_READ
#define WR MOAT_ACL_WRITE
#define SUB MOAT_ACL_SUBSCRIBE

/* ---- helpers ----------------------------------------------------------- */

static struct moat_acl *parse_ok(const char *text)
{
	char err[256];
	struct moat_acl *acl = NULL;
	int rc = moat_acl_parse(text, strlen(text), "t", &acl, err,
				sizeof(err));
	if (rc != MOAT_OK)
		fail_msg("parse failed (%d): %s\n--- text ---\n%s", rc, err,
			 text);
	assert_non_null(acl);
	return acl;
}

/* The load fails with rc and an error message containing want. */
static void parse_fails_n(const char *text, size_t len, int rc,
			  const char *want)
{
	char err[256];
	static char dummy;
	struct moat_acl *acl = (void *)&dummy; /* must be reset */
	int got = moat_acl_parse(text, len, "t", &acl, err, sizeof(err));
	if (got != rc || !strstr(err, want))
		fail_msg("expected %d '%s', got %d '%s'", rc, want, got, err);
	assert_null(acl);
}

static void parse_fails(const char *text, const char *want)
{
	parse_fails_n(text, strlen(text), MOAT_EINVAL, want);
}

/* Query with an exact-size heap copy of the topic, so that ASan sees any
 * read past len (the API does not need a NUL). */
static bool can(const struct moat_acl *acl, const char *user, const char *cid,
		const char *topic, enum moat_acl_access access)
{
	size_t n = strlen(topic);
	char *t = moat_malloc(n ? n : 1);
	assert_non_null(t);
	memcpy(t, topic, n);
	bool r = moat_acl_allows(acl, user, cid, t, n, access);
	moat_free(t);
	return r;
}

static bool fully(const struct moat_acl *acl, const char *user,
		  const char *cid, const char *filter)
{
	size_t n = strlen(filter);
	char *f = moat_malloc(n ? n : 1);
	assert_non_null(f);
	memcpy(f, filter, n);
	bool r = moat_acl_filter_fully_readable(acl, user, cid, f, n);
	moat_free(f);
	return r;
}

#define EXPECT(cond)                                                          \
	do {                                                                  \
		if (!(cond))                                                  \
			fail_msg("line %d: expected %s", __LINE__, #cond);    \
	} while (0)

/* ---- parsing ------------------------------------------------------------- */

static void test_parse_errors(void **state)
{
	(void)state;
	static const struct {
		const char *text, *want;
	} t[] = {
		{"bogus a/b", "t:1: unknown keyword 'bogus'"},
		{"Topic a", "t:1: unknown keyword 'Topic'"},
		{"topics a", "t:1: unknown keyword 'topics'"},
		{"# c\n\n  topic raed a/b", "t:3: unknown access 'raed'"},
		{"topic READ a", "t:1: unknown access 'READ'"},
		{"topic", "t:1: missing topic"},
		{"topic    \t", "t:1: missing topic"},
		{"topic read", "t:1: missing topic after 'read'"},
		{"topic deny   ", "t:1: missing topic after 'deny'"},
		{"pattern", "t:1: missing topic"},
		{"pattern write", "t:1: missing topic after 'write'"},
		{"topic a/#/b", "t:1: invalid topic filter 'a/#/b'"},
		{"topic read a+", "t:1: invalid topic filter 'a+'"},
		{"topic a#", "t:1: invalid topic filter 'a#'"},
		{"topic read #/a", "t:1: invalid topic filter '#/a'"},
		{"pattern read %u/+x", "t:1: invalid topic filter '%u/+x'"},
		{"pattern read ++", "t:1: invalid topic filter"},
		{"topic read a/\xff", "t:1: invalid UTF-8"},
		{"topic read a/\xed\xa0\x80", "t:1: invalid UTF-8"},
		{"user \xc3", "t:1: invalid UTF-8"},
		{"clientid x", "t:1: clientid outside a user section"},
		{"topic a\nclientid x", "t:2: clientid outside a user section"},
		{"user", "t:1: missing user name"},
		{"user   \r\n", "t:1: missing user name"},
		{"user bob\nclientid", "t:2: missing client id"},
		{"user bob\nclientid *", "t:2: client id '*' would claim"},
		{"user a\ntopic read a\r\nfoo", "t:3: unknown keyword 'foo'"},
		{"\n\n\n\ntopic read a\n\ttopic x y", "t:6: unknown access 'x'"},
		{"topic read a\r\r\nuser\r\n", "t:2: missing user name"},
		{"topicread a", "t:1: unknown keyword 'topicread'"},
		{"#ok\n;comment", "t:2: unknown keyword ';comment'"},
	};
	for (size_t i = 0; i < MOAT_ARRAY_LEN(t); i++)
		parse_fails(t[i].text, t[i].want);

	/* a NUL byte inside a line */
	static const char nul[] = "topic read a\0b\n";
	parse_fails_n(nul, sizeof(nul) - 1, MOAT_EINVAL, "t:1: invalid UTF-8");
	/* NULL name and no error buffer are fine */
	struct moat_acl *acl;
	assert_int_equal(moat_acl_parse("x", 1, NULL, &acl, NULL, 0),
			 MOAT_EINVAL);
	assert_null(acl);
	char err[64];
	assert_int_equal(moat_acl_parse("x", 1, NULL, &acl, err, sizeof(err)),
			 MOAT_EINVAL);
	assert_non_null(strstr(err, ":1: unknown keyword 'x'"));
}

static char *repeat_line(const char *line, size_t count, size_t *len)
{
	size_t n = strlen(line);
	char *s = moat_malloc(n * count + 1);
	assert_non_null(s);
	for (size_t i = 0; i < count; i++)
		memcpy(s + i * n, line, n);
	s[n * count] = '\0';
	*len = n * count;
	return s;
}

static void test_parse_limits(void **state)
{
	(void)state;
	/* a line of exactly 64 KiB is fine, one byte more is not */
	const size_t max_line = 64 * 1024;
	char *line = moat_malloc(max_line + 3);
	assert_non_null(line);
	memcpy(line, "topic ", 6);
	memset(line + 6, 'a', max_line - 6);
	memcpy(line + max_line, "\n", 2);
	struct moat_acl *acl = parse_ok(line);
	moat_acl_free(acl);
	memcpy(line + max_line, "b\n", 3);
	parse_fails_n(line, max_line + 2, MOAT_ELIMIT,
		      "t:1: line longer than 65536 bytes");
	moat_free(line);

	/* 1,000,000 rules are fine, one more is not */
	size_t len;
	char *many = repeat_line("topic a\n", 1000001, &len);
	char err[128];
	assert_int_equal(moat_acl_parse(many, len - 8, "t", &acl, err,
					sizeof(err)),
			 MOAT_OK);
	assert_int_equal(moat_acl_rule_count(acl), 1000000);
	EXPECT(can(acl, NULL, NULL, "a", RD));
	moat_acl_free(acl);
	parse_fails_n(many, len, MOAT_ELIMIT,
		      "t:1000001: more than 1000000 rules");
	moat_free(many);
	/* user lines count too: each one costs memory */
	many = repeat_line("user u\n", 1000001, &len);
	parse_fails_n(many, len, MOAT_ELIMIT,
		      "t:1000001: more than 1000000 rules");
	moat_free(many);

	/* the whole file */
	size_t big = MOAT_ACL_MAX_BYTES + 1;
	char *huge = moat_malloc(big);
	assert_non_null(huge);
	memset(huge, '\n', big);
	parse_fails_n(huge, big, MOAT_ELIMIT, "t: larger than 67108864 bytes");
	acl = NULL;
	assert_int_equal(moat_acl_parse(huge, big - 1, "t", &acl, err,
					sizeof(err)),
			 MOAT_OK);
	assert_int_equal(moat_acl_rule_count(acl), 0);
	moat_acl_free(acl);
	moat_free(huge);

	/* %u expansion in client ids is bounded (64 KiB MQTT strings) */
	char *text = moat_malloc(3000);
	assert_non_null(text);
	int n = snprintf(text, 3000, "user %01000d\nclientid ", 0);
	for (int i = 0; i < 66; i++)
		n += snprintf(text + n, (size_t)(3000 - n), "%%u");
	parse_fails_n(text, strlen(text), MOAT_ELIMIT,
		      "t:2: client id longer than 65535 bytes");
	text[strlen(text) - 2] = '\0'; /* 65 * 1000 bytes: fits */
	acl = parse_ok(text);
	moat_acl_free(acl);
	moat_free(text);
}

static void test_parse_forms(void **state)
{
	(void)state;
	struct moat_acl *acl = parse_ok(
		"# a comment\n"
		"\n"
		"   # an indented comment\r\n"
		"\t\n"
		"  topic   read   a/b  \r\n"
		"topic\twrite\tw/x\t\r\n"
		"topic readwrite my topic/with spaces   \n"
		"topic plain\n"
		"user   John Smith  \r\n"
		"topic read john/#\r\n"
		"user bob\n"
		"topic deny bob/x\n"
		"pattern read p/%u\n"
		"topic read no/newline/at/end");
	assert_int_equal(moat_acl_rule_count(acl), 8);
	EXPECT(moat_acl_uses_user_pattern(acl));
	EXPECT(!moat_acl_uses_clientid_pattern(acl));
	EXPECT(can(acl, NULL, NULL, "a/b", RD));
	EXPECT(!can(acl, NULL, NULL, "a/b", WR));
	EXPECT(can(acl, NULL, NULL, "w/x", WR));
	EXPECT(!can(acl, NULL, NULL, "w/x", RD));
	EXPECT(can(acl, NULL, NULL, "my topic/with spaces", RD));
	EXPECT(can(acl, NULL, NULL, "my topic/with spaces", WR));
	EXPECT(!can(acl, NULL, NULL, "my topic/with spaces   ", RD));
	EXPECT(can(acl, NULL, NULL, "plain", WR));
	EXPECT(can(acl, "John Smith", NULL, "john/x", RD));
	EXPECT(!can(acl, "John", NULL, "john/x", RD));
	EXPECT(!can(acl, "John Smith ", NULL, "john/x", RD));
	EXPECT(can(acl, "bob", NULL, "no/newline/at/end", RD));
	EXPECT(can(acl, "John Smith", NULL, "p/John Smith", RD));
	moat_acl_free(acl);

	acl = parse_ok("pattern read %c/#\n");
	EXPECT(!moat_acl_uses_user_pattern(acl));
	EXPECT(moat_acl_uses_clientid_pattern(acl));
	moat_acl_free(acl);
}

static void test_empty_denies_all(void **state)
{
	(void)state;
	static const char *texts[] = {"", "\n\n", "# only\n  # comments\r\n",
				      "user alice\nuser bob\n"};
	for (size_t i = 0; i < MOAT_ARRAY_LEN(texts); i++) {
		struct moat_acl *acl = parse_ok(texts[i]);
		assert_int_equal(moat_acl_rule_count(acl), 0);
		EXPECT(!moat_acl_uses_user_pattern(acl));
		EXPECT(!moat_acl_uses_clientid_pattern(acl));
		static const char *users[] = {NULL, "alice", "bob", ""};
		for (size_t u = 0; u < MOAT_ARRAY_LEN(users); u++) {
			const char *user = users[u];
			EXPECT(!can(acl, user, "c", "a", RD));
			EXPECT(!can(acl, user, "c", "a", WR));
			EXPECT(!can(acl, user, "c", "#", SUB));
			EXPECT(!can(acl, user, "c", "$SYS/x", RD));
			EXPECT(!fully(acl, user, "c", "a"));
			EXPECT(moat_acl_clientid_allowed(acl, user, "c"));
		}
		moat_acl_free(acl);
	}
	/* NULL text with no length is an empty file */
	struct moat_acl *acl;
	assert_int_equal(moat_acl_parse(NULL, 0, "t", &acl, NULL, 0), MOAT_OK);
	EXPECT(!can(acl, NULL, NULL, "a", RD));
	moat_acl_free(acl);
	/* and no ACL at all allows nothing */
	EXPECT(!can(NULL, NULL, NULL, "a", RD));
	EXPECT(!fully(NULL, NULL, NULL, "a"));
	EXPECT(!moat_acl_clientid_allowed(NULL, NULL, "a"));
	assert_int_equal(moat_acl_rule_count(NULL), 0);
	moat_acl_free(NULL);
}

/* ---- rules --------------------------------------------------------------- */

static void test_anonymous_and_users(void **state)
{
	(void)state;
	struct moat_acl *acl = parse_ok("topic read public/#\n"
					"user alice\n"
					"topic readwrite alice/#\n"
					"user bob\n"
					"topic read bob/#\n"
					"user alice\n" /* a second section */
					"topic write shared/in\n");
	/* anonymous: the rules before the first user line, only */
	EXPECT(can(acl, NULL, NULL, "public/x", RD));
	EXPECT(!can(acl, NULL, NULL, "public/x", WR));
	EXPECT(!can(acl, NULL, NULL, "alice/x", RD));
	/* users: their own sections, not the anonymous rules */
	EXPECT(!can(acl, "alice", NULL, "public/x", RD));
	EXPECT(can(acl, "alice", NULL, "alice/x", RD));
	EXPECT(can(acl, "alice", NULL, "alice", WR));
	EXPECT(can(acl, "alice", NULL, "shared/in", WR));
	EXPECT(!can(acl, "alice", NULL, "shared/in", RD));
	EXPECT(!can(acl, "alice", NULL, "bob/x", RD));
	EXPECT(can(acl, "bob", NULL, "bob/x", RD));
	EXPECT(!can(acl, "bob", NULL, "bob/x", WR));
	EXPECT(!can(acl, "bob", NULL, "shared/in", WR));
	/* no section: nothing; names are exact and case sensitive */
	EXPECT(!can(acl, "carol", NULL, "public/x", RD));
	EXPECT(!can(acl, "Alice", NULL, "alice/x", RD));
	EXPECT(!can(acl, "alic", NULL, "alice/x", RD));
	EXPECT(!can(acl, "alicex", NULL, "alice/x", RD));
	EXPECT(!can(acl, "", NULL, "public/x", RD));
	moat_acl_free(acl);
}

static void test_access_words(void **state)
{
	(void)state;
	struct moat_acl *acl = parse_ok("topic read r\n"
					"topic write w\n"
					"topic readwrite rw\n"
					"topic both\n"
					"topic deny d\n"
					"topic read read\n"
					"topic readwrite deny\n");
	EXPECT(can(acl, NULL, NULL, "r", RD) && !can(acl, NULL, NULL, "r", WR));
	EXPECT(!can(acl, NULL, NULL, "w", RD) && can(acl, NULL, NULL, "w", WR));
	EXPECT(can(acl, NULL, NULL, "rw", RD) && can(acl, NULL, NULL, "rw", WR));
	EXPECT(can(acl, NULL, NULL, "both", RD) &&
	       can(acl, NULL, NULL, "both", WR));
	EXPECT(!can(acl, NULL, NULL, "d", RD) && !can(acl, NULL, NULL, "d", WR));
	EXPECT(can(acl, NULL, NULL, "read", RD));
	EXPECT(can(acl, NULL, NULL, "deny", WR));
	/* subscribing needs read */
	EXPECT(can(acl, NULL, NULL, "r", SUB));
	EXPECT(!can(acl, NULL, NULL, "w", SUB));
	EXPECT(can(acl, NULL, NULL, "rw", SUB));
	/* invalid names and filters, and unknown access values, are refused */
	EXPECT(!can(acl, NULL, NULL, "", RD));
	EXPECT(!moat_acl_allows(acl, NULL, NULL, NULL, 0, RD));
	EXPECT(!moat_acl_allows(acl, NULL, NULL, "rw", 2,
				(enum moat_acl_access)(RD | WR)));
	EXPECT(!moat_acl_allows(acl, NULL, NULL, "rw", 2,
				(enum moat_acl_access)0));
	moat_acl_free(acl);

	acl = parse_ok("topic #\ntopic $SYS/#");
	EXPECT(!can(acl, NULL, NULL, "a/+", RD));
	EXPECT(!can(acl, NULL, NULL, "a/#", WR));
	EXPECT(!can(acl, NULL, NULL, "a/#/b", SUB));
	EXPECT(!can(acl, NULL, NULL, "a+", SUB));
	EXPECT(can(acl, NULL, NULL, "a/b", RD));
	/* "#" does not reach '$' topics; "$SYS/#" does */
	EXPECT(can(acl, NULL, NULL, "$SYS/x", RD));
	moat_acl_free(acl);
	acl = parse_ok("topic #\ntopic +/x");
	EXPECT(!can(acl, NULL, NULL, "$SYS/x", RD));
	EXPECT(!can(acl, NULL, NULL, "$SYS", WR));
	EXPECT(!can(acl, NULL, NULL, "$x", RD));
	EXPECT(can(acl, NULL, NULL, "a/$x", RD));
	moat_acl_free(acl);
}

static void test_deny_precedence(void **state)
{
	(void)state;
	static const char *texts[] = {
		"topic #\ntopic deny secret/#\ntopic deny +/private\n",
		"topic deny secret/#\ntopic deny +/private\ntopic #\n",
	};
	for (size_t i = 0; i < MOAT_ARRAY_LEN(texts); i++) {
		struct moat_acl *acl = parse_ok(texts[i]);
		EXPECT(can(acl, NULL, NULL, "a", RD));
		EXPECT(!can(acl, NULL, NULL, "secret", RD));
		EXPECT(!can(acl, NULL, NULL, "secret/x", WR));
		EXPECT(!can(acl, NULL, NULL, "a/private", RD));
		EXPECT(can(acl, NULL, NULL, "a/private/x", RD));
		/* a subscription is refused only when a deny covers it; the
		 * rest is checked per message */
		EXPECT(can(acl, NULL, NULL, "#", SUB));
		EXPECT(can(acl, NULL, NULL, "a/#", SUB));
		EXPECT(!can(acl, NULL, NULL, "secret/#", SUB));
		EXPECT(!can(acl, NULL, NULL, "secret/+/x", SUB));
		EXPECT(!can(acl, NULL, NULL, "b/private", SUB));
		EXPECT(can(acl, NULL, NULL, "+/+", SUB));
		moat_acl_free(acl);
	}
	/* deny patterns apply to every client, also in user sections */
	struct moat_acl *acl = parse_ok("topic #\n"
					"pattern deny %u/secret\n"
					"user alice\n"
					"topic readwrite #\n"
					"topic deny x\n");
	EXPECT(!can(acl, "alice", NULL, "alice/secret", RD));
	EXPECT(can(acl, "alice", NULL, "bob/secret", RD));
	EXPECT(!can(acl, "alice", NULL, "x", WR));
	EXPECT(can(acl, NULL, NULL, "x", WR)); /* alice's deny is hers */
	EXPECT(can(acl, NULL, NULL, "alice/secret", RD));
	moat_acl_free(acl);
}

static void test_patterns(void **state)
{
	(void)state;
	struct moat_acl *acl = parse_ok("pattern readwrite users/%u/#\n"
					"pattern read devices/%c/in\n"
					"pattern write devices/%c/out\n"
					"pattern read both/%u/%c\n"
					"pattern read mixed/x%uy/z%c\n"
					"pattern read pct/%%u/%x/%\n"
					"topic read literal/%u\n"
					"pattern read %u\n"
					"user alice\n"
					"topic read own\n");
	const char *A = "alice", *C = "dev1";
	EXPECT(can(acl, A, C, "users/alice", RD));
	EXPECT(can(acl, A, C, "users/alice/x/y", WR));
	EXPECT(!can(acl, A, C, "users/bob/x", RD));
	EXPECT(!can(acl, A, C, "users/alicex/x", RD));
	EXPECT(!can(acl, A, C, "users/%u/x", RD));
	EXPECT(can(acl, A, C, "devices/dev1/in", RD));
	EXPECT(!can(acl, A, C, "devices/dev1/in", WR));
	EXPECT(can(acl, A, C, "devices/dev1/out", WR));
	EXPECT(!can(acl, A, C, "devices/dev2/in", RD));
	EXPECT(can(acl, A, C, "both/alice/dev1", RD));
	EXPECT(!can(acl, A, C, "both/dev1/alice", RD));
	EXPECT(can(acl, A, C, "mixed/xalicey/zdev1", RD));
	EXPECT(!can(acl, A, C, "mixed/xalice/zdev1", RD));
	EXPECT(can(acl, A, C, "pct/%alice/%x/%", RD));
	EXPECT(can(acl, A, C, "alice", RD));
	EXPECT(can(acl, A, C, "own", RD)); /* the section still applies */
	/* topic lines never substitute */
	EXPECT(can(acl, NULL, C, "literal/%u", RD));
	EXPECT(!can(acl, A, C, "literal/alice", RD));
	/* patterns apply to anonymous clients too, but %u does not */
	EXPECT(can(acl, NULL, C, "devices/dev1/in", RD));
	EXPECT(!can(acl, NULL, C, "both/(null)/dev1", RD));
	EXPECT(!can(acl, NULL, C, "users//x", RD));
	/* no client id, or an empty one: no %c */
	EXPECT(!can(acl, A, NULL, "devices//in", RD));
	EXPECT(!can(acl, A, "", "devices//in", RD));
	EXPECT(!can(acl, A, "", "devices//in", SUB));
	EXPECT(can(acl, A, NULL, "users/alice/x", RD));
	/* an empty user name: no %u */
	EXPECT(!can(acl, "", C, "users//x", RD));
	EXPECT(!can(acl, "", C, "users/+/x", SUB));
	/* subscriptions under one's own tree */
	EXPECT(can(acl, A, C, "users/alice/#", SUB));
	EXPECT(can(acl, A, C, "users/alice/+/x", SUB));
	EXPECT(!can(acl, A, C, "users/+/#", SUB));
	EXPECT(!can(acl, A, C, "users/#", SUB));
	moat_acl_free(acl);
}

/* CVE-2017-7650: a user or client id with '+', '#' or '/' must not widen a
 * pattern. */
static void test_patterns_special_characters(void **state)
{
	(void)state;
	struct moat_acl *acl = parse_ok("pattern readwrite users/%u/#\n"
					"pattern readwrite dev/%c/#\n"
					"pattern deny %u/deny\n"
					"topic read any\n");
	static const char *bad[] = {"a/#", "#", "+", "a/b", "/", "a+", "x#y",
				    "a/+/b"};
	for (size_t i = 0; i < MOAT_ARRAY_LEN(bad); i++) {
		const char *v = bad[i];
		char topic[64];
		snprintf(topic, sizeof(topic), "users/%s", v);
		if (moat_topic_name_valid((const uint8_t *)topic,
					  strlen(topic)))
			EXPECT(!can(acl, v, "ok", topic, RD));
		EXPECT(!can(acl, v, "ok", "users/a/#/x", RD));
		EXPECT(!can(acl, v, "ok", "users/a/b/x", WR));
		EXPECT(!can(acl, v, "ok", "users/+/x", SUB));
		EXPECT(!can(acl, v, "ok", "users/#", SUB));
		EXPECT(!can(acl, v, "ok", "users/a/#", SUB));
		EXPECT(!can(acl, "ok", v, "dev/a/b/x", RD));
		EXPECT(!can(acl, "ok", v, "dev/#", SUB));
		EXPECT(!can(acl, "ok", v, "dev/+/+", SUB));
		/* the client keeps the rules that do not use the value */
		EXPECT(can(acl, "ok", v, "users/ok/x", RD));
		EXPECT(can(acl, v, "ok", "dev/ok/x", WR));
	}
	/* a deny pattern that cannot apply denies nothing (and grants
	 * nothing): the user's other rules decide */
	moat_acl_free(acl);
	acl = parse_ok("pattern deny %u/x\npattern read #\n");
	EXPECT(can(acl, "#", NULL, "a/x", RD));
	EXPECT(!can(acl, "a", NULL, "a/x", RD));
	moat_acl_free(acl);
}

/* grant filter, subscription filter, granted? */
static const struct {
	const char *grant, *filter;
	bool expect;
} sub_cases[] = {
	{"#", "#", true},
	{"#", "+/#", true},
	{"#", "a/#", true},
	{"#", "a", true},
	{"#", "+", true},
	{"#", "/", true},
	{"#", "a/+/b/#", true},
	{"#", "$SYS/#", false}, /* '#' never matches '$' topics */
	{"#", "$SYS", false},
	{"#", "$SYS/broker/+", false},
	{"+/#", "#", true}, /* the same names: a top-level '#' has no parent */
	{"+/#", "+/#", true},
	{"+/#", "a", true},
	{"+/#", "/", true},
	{"+/#", "a/b/c", true},
	{"+/#", "$SYS/#", false},
	{"+", "+", true},
	{"+", "a", true},
	{"+", "$x", false},
	{"+", "a/b", false},
	{"+", "#", false},
	{"+", "+/#", false},
	{"+/+", "+/#", false},
	{"+/#", "+/+", true},
	{"+/+", "a/b", true},
	{"+/+", "a", false},
	{"+/+", "/", true},
	{"a/#", "a", true}, /* "a/#" matches "a" [MQTT-4.7.1-2] */
	{"a/#", "a/#", true},
	{"a/#", "a/+", true},
	{"a/#", "a/+/b", true},
	{"a/#", "a/b/c", true},
	{"a/#", "b", false},
	{"a/#", "#", false},
	{"a/#", "+/#", false},
	{"a/+", "a/b", true},
	{"a/+", "a/+", true},
	{"a/+", "a/b/c", false},
	{"a/+", "a/#", false},
	{"a/+", "a", false},
	{"a/+/#", "a/#", false}, /* "a/#" also matches "a" */
	{"a/+/#", "a/b/#", true},
	{"a/+/#", "a/+", true},
	{"$SYS/#", "$SYS/#", true},
	{"$SYS/#", "$SYS", true},
	{"$SYS/#", "$SYS/broker/+", true},
	{"$SYS/#", "$SYSX/#", false},
	{"$SYS/broker/+", "$SYS/broker/load", true},
	{"$SYS/broker/+", "$SYS/broker/+", true},
	{"$SYS/broker/+", "$SYS/#", false},
	{"$SYS/broker/+", "$SYS/broker/#", false},
	{"$SYS/+", "$SYS/broker/+", false},
	{"+/broker/+", "$SYS/broker/+", false},
	{"a/b", "a/b", true},
	{"a/b", "a/+", false},
	{"a/b", "a/b/#", false},
	{"a/b/#", "a/b", true},
	{"a//b", "a/+/b", false},
	{"a/+/b", "a//b", true},
	{"/#", "/", true},
	{"/#", "/+", true},
	{"/#", "+", false},
	{"/#", "+/#", false},
	{"+/+/+", "+/+/#", false},
	{"+/+/#", "+/+/+", true},
};

static void test_subscribe_table(void **state)
{
	(void)state;
	for (size_t i = 0; i < MOAT_ARRAY_LEN(sub_cases); i++) {
		char text[128];
		snprintf(text, sizeof(text), "topic read %s\n",
			 sub_cases[i].grant);
		struct moat_acl *acl = parse_ok(text);
		bool got = can(acl, NULL, NULL, sub_cases[i].filter, SUB);
		moat_acl_free(acl);
		if (got != sub_cases[i].expect)
			fail_msg("grant '%s' filter '%s': expected %d",
				 sub_cases[i].grant, sub_cases[i].filter,
				 sub_cases[i].expect);
		/* the same as a user's rule and as a pattern */
		snprintf(text, sizeof(text), "user u\ntopic %s\n",
			 sub_cases[i].grant);
		acl = parse_ok(text);
		EXPECT(can(acl, "u", NULL, sub_cases[i].filter, SUB) == got);
		moat_acl_free(acl);
		snprintf(text, sizeof(text), "pattern read %s\n",
			 sub_cases[i].grant);
		acl = parse_ok(text);
		EXPECT(can(acl, "u", "c", sub_cases[i].filter, SUB) == got);
		moat_acl_free(acl);
	}
}

static void test_fully_readable(void **state)
{
	(void)state;
	struct moat_acl *acl = parse_ok("topic read #\n"
					"topic read $SYS/#\n"
					"topic deny a/secret\n"
					"topic deny $SYS/broker/x\n"
					"topic deny +/hidden/#\n");
	EXPECT(!fully(acl, NULL, NULL, "a/#"));
	EXPECT(!fully(acl, NULL, NULL, "a/+"));
	EXPECT(!fully(acl, NULL, NULL, "+/secret"));
	EXPECT(!fully(acl, NULL, NULL, "#"));
	EXPECT(!fully(acl, NULL, NULL, "x/hidden"));
	EXPECT(!fully(acl, NULL, NULL, "x/+/y"));
	EXPECT(fully(acl, NULL, NULL, "a/public"));
	EXPECT(fully(acl, NULL, NULL, "a/secret/x"));
	EXPECT(!fully(acl, NULL, NULL, "b/#")); /* "b/hidden" */
	EXPECT(fully(acl, NULL, NULL, "b/c/#"));
	EXPECT(fully(acl, NULL, NULL, "x/visible/#"));
	EXPECT(!fully(acl, NULL, NULL, "hidden/#")); /* "hidden/hidden" */
	EXPECT(fully(acl, NULL, NULL, "hidden/x"));
	EXPECT(!fully(acl, NULL, NULL, "$SYS/#"));
	EXPECT(fully(acl, NULL, NULL, "$SYS/broker/y"));
	EXPECT(fully(acl, NULL, NULL, "$SYS/clients/#"));
	moat_acl_free(acl);

	/* a '$' deny does not touch wildcard-first filters */
	acl = parse_ok("topic read #\ntopic deny $SYS/#\n");
	EXPECT(fully(acl, NULL, NULL, "#"));
	EXPECT(fully(acl, NULL, NULL, "+/x"));
	moat_acl_free(acl);

	/* not granted at all: never fully readable */
	acl = parse_ok("topic read a/#\ntopic write b\n");
	EXPECT(fully(acl, NULL, NULL, "a/x"));
	EXPECT(!fully(acl, NULL, NULL, "b"));
	EXPECT(!fully(acl, NULL, NULL, "c"));
	EXPECT(!fully(acl, NULL, NULL, "#"));
	moat_acl_free(acl);

	/* deny patterns, with their client's values */
	acl = parse_ok("pattern read #\n"
		       "pattern deny %u/private\n"
		       "pattern deny %c/#\n"
		       "pattern read $%u/#\n"
		       "pattern read %u/#\n");
	EXPECT(!fully(acl, "alice", "c1", "alice/#"));
	EXPECT(!fully(acl, "alice", "c1", "+/private"));
	EXPECT(fully(acl, "alice", "c1", "bob/#"));
	EXPECT(!fully(acl, "alice", "c1", "c1"));
	EXPECT(!fully(acl, "alice", "c1", "#"));
	EXPECT(fully(acl, "alice", "c1", "$alice/#"));
	/* a user whose name starts with '$': "%u/private" is then a '$'
	 * topic that wildcard-first filters never match */
	EXPECT(fully(acl, "$x", "$c1", "+/private"));
	EXPECT(!fully(acl, "$x", "$c1", "$x/private"));
	EXPECT(fully(acl, "$x", "$c1", "$x/public"));
	EXPECT(!fully(acl, "$x", "c1", "+/private")); /* "c1/private" */
	moat_acl_free(acl);
}

/* ---- client ids ---------------------------------------------------------- */

static void test_clientid_binding(void **state)
{
	(void)state;
	struct moat_acl *acl = parse_ok("user alice\n"
					"clientid alice-phone\n"
					"clientid alice-*\n"
					"user bob\n"
					"clientid %u-box\n"
					"clientid exact\n"
					"clientid id-%u-%u*\n"
					"user carol\n"
					"topic read c\n"
					"user dave\n"
					"clientid d*\n"
					"user star*\n"
					"clientid %u\n");
	/* own ids */
	EXPECT(moat_acl_clientid_allowed(acl, "alice", "alice-phone"));
	EXPECT(moat_acl_clientid_allowed(acl, "alice", "alice-x"));
	EXPECT(moat_acl_clientid_allowed(acl, "alice", "alice-"));
	EXPECT(!moat_acl_clientid_allowed(acl, "alice", "alice"));
	EXPECT(!moat_acl_clientid_allowed(acl, "alice", "bob-box"));
	EXPECT(!moat_acl_clientid_allowed(acl, "alice", "free"));
	EXPECT(!moat_acl_clientid_allowed(acl, "alice", ""));
	EXPECT(!moat_acl_clientid_allowed(acl, "alice", NULL));
	EXPECT(moat_acl_clientid_allowed(acl, "bob", "bob-box"));
	EXPECT(moat_acl_clientid_allowed(acl, "bob", "exact"));
	EXPECT(!moat_acl_clientid_allowed(acl, "bob", "exactly"));
	EXPECT(moat_acl_clientid_allowed(acl, "bob", "id-bob-bob"));
	EXPECT(moat_acl_clientid_allowed(acl, "bob", "id-bob-bob-2"));
	EXPECT(!moat_acl_clientid_allowed(acl, "bob", "id-%u-%u"));
	EXPECT(!moat_acl_clientid_allowed(acl, "bob", "%u-box"));
	EXPECT(moat_acl_clientid_allowed(acl, "dave", "dave-1"));
	EXPECT(moat_acl_clientid_allowed(acl, "dave", "d"));
	/* a '*' from %u is literal, not a prefix */
	EXPECT(moat_acl_clientid_allowed(acl, "star*", "star*"));
	EXPECT(!moat_acl_clientid_allowed(acl, "star*", "starx"));
	/* users without ids, anonymous and unknown users: anything not
	 * claimed by someone else */
	static const char *others[] = {"carol", NULL, "eve", ""};
	for (size_t i = 0; i < MOAT_ARRAY_LEN(others); i++) {
		const char *u = others[i];
		EXPECT(moat_acl_clientid_allowed(acl, u, "carol-1"));
		EXPECT(moat_acl_clientid_allowed(acl, u, "exactly"));
		EXPECT(moat_acl_clientid_allowed(acl, u, "alice"));
		EXPECT(moat_acl_clientid_allowed(acl, u, "bob"));
		EXPECT(moat_acl_clientid_allowed(acl, u, ""));
		EXPECT(moat_acl_clientid_allowed(acl, u, NULL));
		EXPECT(moat_acl_clientid_allowed(acl, u, "starx"));
		EXPECT(!moat_acl_clientid_allowed(acl, u, "alice-phone"));
		EXPECT(!moat_acl_clientid_allowed(acl, u, "alice-1"));
		EXPECT(!moat_acl_clientid_allowed(acl, u, "bob-box"));
		EXPECT(!moat_acl_clientid_allowed(acl, u, "exact"));
		EXPECT(!moat_acl_clientid_allowed(acl, u, "id-bob-bob!"));
		EXPECT(!moat_acl_clientid_allowed(acl, u, "d"));
		EXPECT(!moat_acl_clientid_allowed(acl, u, "dx"));
		EXPECT(!moat_acl_clientid_allowed(acl, u, "star*"));
	}
	moat_acl_free(acl);
}

/* Overlapping claims: the most specific one decides who owns an id, so
 * "sensor" (sensor-*) cannot take "sensor-1-x" from "sensor-1"
 * (sensor-1-*), nor an exact claim of a third user. */
static void test_clientid_most_specific_claim_wins(void **state)
{
	(void)state;
	struct moat_acl *acl = parse_ok("user sensor\n"
					"clientid %u-*\n"
					"user sensor-1\n"
					"clientid %u-*\n"
					"user boss\n"
					"clientid sensor-1-boss\n");
	EXPECT(moat_acl_clientid_allowed(acl, "sensor", "sensor-2"));
	EXPECT(!moat_acl_clientid_allowed(acl, "sensor", "sensor-1-x"));
	EXPECT(moat_acl_clientid_allowed(acl, "sensor-1", "sensor-1-x"));
	EXPECT(!moat_acl_clientid_allowed(acl, "sensor-1", "sensor-2"));
	EXPECT(!moat_acl_clientid_allowed(acl, "sensor-1", "sensor-1-boss"));
	EXPECT(!moat_acl_clientid_allowed(acl, "sensor", "sensor-1-boss"));
	EXPECT(moat_acl_clientid_allowed(acl, "boss", "sensor-1-boss"));
	EXPECT(!moat_acl_clientid_allowed(acl, "boss", "sensor-1-x"));
	EXPECT(!moat_acl_clientid_allowed(acl, NULL, "sensor-1-x"));
	moat_acl_free(acl);
}

/* Small deterministic PRNG (xorshift64*), so that failures reproduce. */
static uint64_t rng_state = 0x9E3779B97F4A7C15ull;

static uint32_t rnd(uint32_t n)
{
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return (uint32_t)((rng_state * 0x2545F4914F6CDD1Dull) >> 33) % n;
}

static void rand_word(char *out, size_t minlen, size_t maxlen,
		      const char *alpha)
{
	size_t n = minlen + rnd((uint32_t)(maxlen - minlen + 1));
	size_t na = strlen(alpha);
	for (size_t i = 0; i < n; i++)
		out[i] = alpha[rnd((uint32_t)na)];
	out[n] = '\0';
}

/* "Claimed by some user" agrees with a linear scan over random sets of
 * exact and prefix ids, which exercises the sorted-prefix search. */
static void test_clientid_prefix_model(void **state)
{
	(void)state;
	enum { ROUNDS = 200, IDS = 12, KEYS = 200 };
	for (int round = 0; round < ROUNDS; round++) {
		char ids[IDS][8], text[IDS * 32];
		bool prefix[IDS];
		size_t n = 0;
		for (int i = 0; i < IDS; i++) {
			rand_word(ids[i], 1, 4, "ab");
			prefix[i] = rnd(2);
			n += (size_t)snprintf(text + n, sizeof(text) - n,
					      "user u%d\nclientid %s%s\n", i,
					      ids[i], prefix[i] ? "*" : "");
		}
		struct moat_acl *acl = parse_ok(text);
		for (int k = 0; k < KEYS; k++) {
			char key[8];
			rand_word(key, 0, 6, "ab");
			bool claimed = false;
			for (int i = 0; i < IDS; i++) {
				size_t l = strlen(ids[i]);
				claimed |= prefix[i] ? !strncmp(key, ids[i], l)
						     : !strcmp(key, ids[i]);
			}
			if (moat_acl_clientid_allowed(acl, NULL, key) ==
			    claimed)
				fail_msg("key '%s' claimed %d\n%s", key,
					 claimed, text);
		}
		moat_acl_free(acl);
	}
}

/* ---- model checks: matching, covering, overlapping ----------------------
 *
 * Soundness of the brute force: a counterexample to "R covers F" (a name
 * that F matches and R does not) or a witness of "R overlaps F" (a name
 * both match), if one exists, also exists with
 *  - as many levels as the longer filter has, plus one (deeper names
 *    behave like this one under both filters), and
 *  - each level a literal level of R or F, or a fresh value that neither
 *    filter names: at a level where F (or both) has '+', a value that R
 *    does not name keeps R failing or keeps both matching.
 * The fresh value does not start with '$', as F's wildcards never stand
 * for '$' names at the first level. */

#define MAX_LEVELS 8

struct filter_levels {
	size_t n;
	char lv[MAX_LEVELS][8];
};

static void join_levels(const struct filter_levels *f, char *out, size_t cap)
{
	size_t o = 0;
	for (size_t i = 0; i < f->n; i++)
		o += (size_t)snprintf(out + o, cap - o, "%s%s", i ? "/" : "",
				      f->lv[i]);
}

static bool names_match(const char *f, const char *t)
{
	return moat_topic_matches((const uint8_t *)f, strlen(f),
				  (const uint8_t *)t, strlen(t));
}

struct universe {
	char (*names)[64];
	size_t count, cap;
};

/* Every name of 1..depth levels over values[0..nv). */
static void universe_build(struct universe *u, const char *const *values,
			   size_t nv, size_t depth)
{
	u->count = 0;
	size_t idx[MAX_LEVELS + 1];
	for (size_t d = 1; d <= depth; d++) {
		memset(idx, 0, sizeof(idx));
		for (;;) {
			char name[64];
			size_t o = 0;
			for (size_t i = 0; i < d; i++)
				o += (size_t)snprintf(name + o,
						      sizeof(name) - o, "%s%s",
						      i ? "/" : "",
						      values[idx[i]]);
			if (o > 0) { /* "" is not a topic name */
				if (u->count == u->cap) {
					u->cap = u->cap ? u->cap * 2 : 1024;
					u->names = moat_realloc(
						u->names,
						u->cap * sizeof(*u->names));
					assert_non_null(u->names);
				}
				memcpy(u->names[u->count++], name, o + 1);
			}
			size_t i = 0;
			while (i < d && ++idx[i] == nv)
				idx[i++] = 0;
			if (i == d)
				break;
		}
	}
}

/* Brute force over the universe. */
static void brute(const struct universe *u, const char *r, const char *f,
		  bool *covers, bool *overlaps)
{
	*covers = true;
	*overlaps = false;
	for (size_t i = 0; i < u->count; i++) {
		bool mf = names_match(f, u->names[i]);
		bool mr = names_match(r, u->names[i]);
		if (mf && !mr)
			*covers = false;
		if (mf && mr)
			*overlaps = true;
	}
}

static bool acl_covers(const char *r, const char *f)
{
	char text[256];
	snprintf(text, sizeof(text), "topic read %s\n", r);
	struct moat_acl *acl = parse_ok(text);
	bool got = can(acl, NULL, NULL, f, SUB);
	moat_acl_free(acl);
	return got;
}

/* f is granted by itself, so fully-readable is exactly "no deny rule
 * overlaps f". */
static bool acl_overlaps(const char *r, const char *f)
{
	char text[256];
	snprintf(text, sizeof(text), "topic read %s\ntopic deny %s\n", f, r);
	struct moat_acl *acl = parse_ok(text);
	bool got = !fully(acl, NULL, NULL, f);
	moat_acl_free(acl);
	return got;
}

/* The same decisions through a pattern with %u = "a" and %c = "b" in
 * place of those literal levels. */
static void check_as_pattern(const struct filter_levels *rl, const char *f,
			     bool covers, bool overlaps)
{
	struct filter_levels p = *rl;
	for (size_t i = 0; i < p.n; i++) {
		if (!strcmp(p.lv[i], "a"))
			strcpy(p.lv[i], "%u");
		else if (!strcmp(p.lv[i], "b"))
			strcpy(p.lv[i], "%c");
		else if (!strcmp(p.lv[i], "$a"))
			strcpy(p.lv[i], "$%u");
	}
	char pf[128], text[320];
	join_levels(&p, pf, sizeof(pf));
	snprintf(text, sizeof(text), "pattern read %s\n", pf);
	struct moat_acl *acl = parse_ok(text);
	if (can(acl, "a", "b", f, SUB) != covers)
		fail_msg("pattern '%s' covers '%s': expected %d", pf, f, covers);
	moat_acl_free(acl);
	snprintf(text, sizeof(text), "pattern read %s\npattern deny %s\n", f,
		 pf);
	acl = parse_ok(text);
	if (fully(acl, "a", "b", f) == overlaps)
		fail_msg("pattern '%s' overlaps '%s': expected %d", pf, f,
			 overlaps);
	moat_acl_free(acl);
}

/* Every filter of 1..3 levels over {a, b, "", $a, +, #}, against every
 * other, with names of 1..4 levels over {a, b, "", $a, c}.  Which names
 * each filter matches is computed once, as a bit set. */
#define UNIVERSE_WORDS 16 /* 64-bit words: room for 1024 names */

static size_t all_filters(struct filter_levels *fs, size_t cap)
{
	static const char *const flv[] = {"a", "b", "", "$a", "+", "#"};
	const size_t nl = MOAT_ARRAY_LEN(flv);
	size_t nf = 0;
	for (size_t d = 1, total = nl; d <= 3; d++, total *= nl) {
		for (size_t c = 0; c < total; c++) {
			struct filter_levels f = {.n = d};
			for (size_t i = 0, v = c; i < d; i++, v /= nl)
				strcpy(f.lv[i], flv[v % nl]);
			char s[64];
			join_levels(&f, s, sizeof(s));
			if (moat_topic_filter_valid((const uint8_t *)s,
						    strlen(s))) {
				assert_true(nf < cap);
				fs[nf++] = f;
			}
		}
	}
	return nf;
}

static void test_model_exhaustive(void **state)
{
	(void)state;
	static const char *const tlv[] = {"a", "b", "", "$a", "c"};
	enum { CAP = 256 };
	struct filter_levels *fs = moat_calloc(CAP, sizeof(*fs));
	uint64_t(*bits)[UNIVERSE_WORDS] = moat_calloc(CAP, sizeof(*bits));
	assert_non_null(fs);
	assert_non_null(bits);
	size_t nf = all_filters(fs, CAP);
	struct universe u = {0};
	universe_build(&u, tlv, MOAT_ARRAY_LEN(tlv), 4);
	assert_true(u.count <= 64 * UNIVERSE_WORDS);
	for (size_t i = 0; i < nf; i++) {
		char r[64];
		join_levels(&fs[i], r, sizeof(r));
		for (size_t k = 0; k < u.count; k++)
			if (names_match(r, u.names[k]))
				bits[i][k / 64] |= (uint64_t)1 << (k % 64);
	}
	size_t ncovers = 0, noverlaps = 0;
	for (size_t i = 0; i < nf; i++) {
		char r[64];
		join_levels(&fs[i], r, sizeof(r));
		for (size_t j = 0; j < nf; j++) {
			char f[64];
			join_levels(&fs[j], f, sizeof(f));
			bool cov = true, ovl = false;
			for (size_t w = 0; w < UNIVERSE_WORDS; w++) {
				cov &= (bits[j][w] & ~bits[i][w]) == 0;
				ovl |= (bits[j][w] & bits[i][w]) != 0;
			}
			if (acl_covers(r, f) != cov)
				fail_msg("'%s' covers '%s': expected %d", r, f,
					 cov);
			if (acl_overlaps(r, f) != ovl)
				fail_msg("'%s' overlaps '%s': expected %d", r,
					 f, ovl);
			check_as_pattern(&fs[i], f, cov, ovl);
			ncovers += cov;
			noverlaps += ovl;
		}
		/* and READ / WRITE agree with the codec's matcher */
		char text[128];
		snprintf(text, sizeof(text), "topic %s\n", r);
		struct moat_acl *acl = parse_ok(text);
		for (size_t k = 0; k < u.count; k++) {
			bool want = bits[i][k / 64] >> (k % 64) & 1;
			if (can(acl, NULL, NULL, u.names[k], RD) != want ||
			    can(acl, NULL, NULL, u.names[k], WR) != want)
				fail_msg("'%s' matches '%s': expected %d", r,
					 u.names[k], want);
		}
		moat_acl_free(acl);
	}
	/* both outcomes were exercised */
	print_message("%zu filters, %zu names: %zu covers, %zu overlaps\n", nf,
		      u.count, ncovers, noverlaps);
	assert_true(nf > 150);
	assert_true(ncovers > 1000 && ncovers < nf * nf / 2);
	assert_true(noverlaps > 4000 && noverlaps < nf * nf);
	moat_free(u.names);
	moat_free(bits);
	moat_free(fs);
}

static void rand_filter(struct filter_levels *f)
{
	f->n = 1 + rnd(3);
	for (size_t i = 0; i < f->n; i++) {
		uint32_t k = rnd(6);
		if (k == 0)
			strcpy(f->lv[i], "+");
		else if (k == 1 && i + 1 == f->n)
			strcpy(f->lv[i], "#");
		else
			rand_word(f->lv[i], 0, 2, "ab$");
	}
}

/* A random narrowing of r, so that "covers" holds often enough: '+'
 * becomes a literal, '#' becomes more levels. */
static void narrow_filter(const struct filter_levels *r, struct filter_levels *f)
{
	*f = *r;
	for (size_t i = 0; i < f->n; i++) {
		if (!strcmp(f->lv[i], "+") && rnd(2))
			rand_word(f->lv[i], 0, 2, "ab$");
		if (!strcmp(f->lv[i], "#") && rnd(2)) {
			size_t extra = rnd(3);
			for (size_t k = 0; k < extra && f->n < 4; k++) {
				if (rnd(2))
					strcpy(f->lv[f->n - 1], "+");
				else
					rand_word(f->lv[f->n - 1], 0, 2, "ab");
				strcpy(f->lv[f->n++], "#");
			}
			if (rnd(2))
				strcpy(f->lv[f->n - 1], "+");
		}
	}
}

static void collect_values(const struct filter_levels *f,
			   const char **values, size_t *nv)
{
	for (size_t i = 0; i < f->n; i++) {
		const char *v = f->lv[i];
		bool wild = !strcmp(v, "+") || !strcmp(v, "#");
		bool seen = false;
		for (size_t k = 0; k < *nv; k++)
			seen |= !strcmp(values[k], v);
		if (!wild && !seen)
			values[(*nv)++] = v;
	}
}

/* Random level words over "ab$" (so "$", "a$", "$$" ...), against names
 * built from the two filters' own literal levels plus a fresh one. */
static void test_model_random(void **state)
{
	(void)state;
	enum { PAIRS = 3000 };
	struct universe u = {0};
	size_t ncovers = 0, noverlaps = 0, checked = 0;
	for (int p = 0; p < PAIRS; p++) {
		struct filter_levels r, f;
		rand_filter(&r);
		if (rnd(2))
			narrow_filter(&r, &f);
		else
			rand_filter(&f);
		char rs[64], fs[64];
		join_levels(&r, rs, sizeof(rs));
		join_levels(&f, fs, sizeof(fs));
		if (!moat_topic_filter_valid((const uint8_t *)rs, strlen(rs)) ||
		    !moat_topic_filter_valid((const uint8_t *)fs, strlen(fs)))
			continue;
		const char *values[2 * MAX_LEVELS + 1];
		size_t nv = 0;
		collect_values(&r, values, &nv);
		collect_values(&f, values, &nv);
		values[nv++] = "z"; /* fresh: in no filter, no '$' */
		universe_build(&u, values, nv, MOAT_MAX(r.n, f.n) + 1);
		bool cov, ovl;
		brute(&u, rs, fs, &cov, &ovl);
		if (acl_covers(rs, fs) != cov)
			fail_msg("'%s' covers '%s': expected %d", rs, fs, cov);
		if (acl_overlaps(rs, fs) != ovl)
			fail_msg("'%s' overlaps '%s': expected %d", rs, fs,
				 ovl);
		ncovers += cov;
		noverlaps += ovl;
		checked++;
	}
	print_message("%zu pairs: %zu covers, %zu overlaps\n", checked,
		      ncovers, noverlaps);
	assert_true(checked > PAIRS / 2);
	assert_true(ncovers > checked / 10 && ncovers < checked);
	assert_true(noverlaps > checked / 4 && noverlaps < checked);
	moat_free(u.names);
}

/* ---- size, files, memory, threads ---------------------------------------- */

/* Thousands of levels: no recursion, no stack buffers. */
static void test_deep_topics(void **state)
{
	(void)state;
	enum { LEVELS = 20000 };
	size_t n = 2 * LEVELS - 1;
	char *topic = moat_malloc(n + 1), *plus = moat_malloc(n + 1);
	assert_non_null(topic);
	assert_non_null(plus);
	for (size_t i = 0; i < n; i++) {
		topic[i] = i % 2 ? '/' : 'a';
		plus[i] = i % 2 ? '/' : '+';
	}
	topic[n] = plus[n] = '\0';
	char *text = moat_malloc(n + 64);
	assert_non_null(text);
	snprintf(text, n + 64, "topic read %s\npattern read %%u/#\n", plus);
	struct moat_acl *acl = parse_ok(text);
	EXPECT(can(acl, NULL, NULL, topic, RD));
	EXPECT(can(acl, NULL, NULL, topic, SUB));
	EXPECT(can(acl, NULL, NULL, plus, SUB));
	EXPECT(fully(acl, NULL, NULL, plus));
	topic[n - 2] = '\0'; /* one level fewer */
	EXPECT(!can(acl, NULL, NULL, topic, RD));
	EXPECT(can(acl, "a", NULL, topic, RD)); /* "%u/#" */
	moat_acl_free(acl);

	/* a 60000-byte user name in a pattern */
	char *user = moat_malloc(60001);
	assert_non_null(user);
	memset(user, 'u', 60000);
	user[60000] = '\0';
	acl = parse_ok("pattern read x/%u/%u/#\n");
	char *t = moat_malloc(120010);
	assert_non_null(t);
	snprintf(t, 120010, "x/%s/%s/y", user, user);
	EXPECT(can(acl, user, NULL, t, RD));
	t[strlen(t) - 5] = 'v';
	EXPECT(!can(acl, user, NULL, t, RD));
	moat_acl_free(acl);
	moat_free(t);
	moat_free(user);
	moat_free(text);
	moat_free(topic);
	moat_free(plus);
}

static void write_file(const char *path, const char *text, mode_t mode)
{
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
	assert_int_equal(chmod(path, mode), 0);
}

static void test_load_file(void **state)
{
	(void)state;
	char dir[] = "/tmp/moat-acl-XXXXXX";
	assert_non_null(mkdtemp(dir));
	char path[128], link[128], err[256];
	snprintf(path, sizeof(path), "%s/acl", dir);
	snprintf(link, sizeof(link), "%s/acl-link", dir);
	struct moat_acl *acl;

	write_file(path, "user alice\ntopic read a/#\n", 0600);
	assert_int_equal(moat_acl_load(path, &acl, err, sizeof(err)), MOAT_OK);
	EXPECT(can(acl, "alice", NULL, "a/b", RD));
	moat_acl_free(acl);

	/* a syntax error names the file and the line */
	write_file(path, "user alice\ntopic raed a b\n", 0600);
	assert_int_equal(moat_acl_load(path, &acl, err, sizeof(err)),
			 MOAT_EINVAL);
	assert_null(acl);
	char want[160];
	snprintf(want, sizeof(want), "%s:2: unknown access 'raed'", path);
	assert_non_null(strstr(err, want));

	/* open to other users, a symlink, missing: refused */
	write_file(path, "topic read a\n", 0644);
	assert_int_equal(moat_acl_load(path, &acl, err, sizeof(err)),
			 MOAT_EDENIED);
	assert_null(acl);
	assert_int_equal(chmod(path, 0600), 0);
	assert_int_equal(symlink(path, link), 0);
	assert_int_equal(moat_acl_load(link, &acl, err, sizeof(err)),
			 MOAT_EDENIED);
	assert_non_null(strstr(err, "symbolic link"));
	assert_null(acl);
	unlink(link);
	unlink(path);
	assert_int_equal(moat_acl_load(path, &acl, err, sizeof(err)),
			 MOAT_EIO);
	assert_null(acl);
	rmdir(dir);
}

/* Every allocation failure is reported as MOAT_ENOMEM, with nothing
 * leaked (the fixture checks live bytes). */
static void test_alloc_failures(void **state)
{
	(void)state;
	const char *text = "topic read a/#\n"
			   "pattern read %u/%c\n"
			   "user alice\n"
			   "clientid a-*\n"
			   "clientid %u\n"
			   "topic write b\n"
			   "user bob\n"
			   "topic deny c\n"
			   "user alice\n"
			   "topic read d\n";
	/* past the last allocation every parse succeeds; a failure the
	 * parser can absorb (shrinking the pool) also succeeds */
	int failures = 0;
	for (long n = 1; n < 200; n++) {
		struct moat_acl *acl = NULL;
		char err[128] = "";
		moat_alloc_fail_at(n);
		int rc = moat_acl_parse(text, strlen(text), "t", &acl, err,
					sizeof(err));
		moat_alloc_fail_at(0);
		if (rc == MOAT_OK) {
			EXPECT(can(acl, "alice", NULL, "d", RD));
			EXPECT(moat_acl_clientid_allowed(acl, "alice", "a-1"));
			moat_acl_free(acl);
			continue;
		}
		assert_int_equal(rc, MOAT_ENOMEM);
		assert_null(acl);
		assert_non_null(strstr(err, "out of memory"));
		failures++;
	}
	assert_true(failures >= 12);
}

struct thread_arg {
	const struct moat_acl *acl;
	int errors;
};

static void *query_thread(void *p)
{
	struct thread_arg *a = p;
	for (int i = 0; i < 20000; i++) {
		char cid[16];
		snprintf(cid, sizeof(cid), "c%d", i % 7);
		char t[32];
		snprintf(t, sizeof(t), "dev/%s/in", cid);
		a->errors += !moat_acl_allows(a->acl, "alice", cid, t,
					      strlen(t), RD);
		a->errors += moat_acl_allows(a->acl, "alice", cid, "dev/x/in",
					     8, RD);
		a->errors += !moat_acl_allows(a->acl, "alice", cid, "a/#", 3,
					      SUB);
		a->errors += !moat_acl_clientid_allowed(a->acl, "alice", cid);
	}
	return NULL;
}

/* Read-only after load: concurrent queries need no locks (meaningful
 * under -DMOAT_TSAN=ON). */
static void test_concurrent_queries(void **state)
{
	(void)state;
	struct moat_acl *acl = parse_ok("pattern read dev/%c/in\n"
					"user alice\n"
					"topic read a/#\n"
					"clientid c*\n");
	enum { THREADS = 4 };
	pthread_t th[THREADS];
	struct thread_arg args[THREADS];
	for (int i = 0; i < THREADS; i++) {
		args[i] = (struct thread_arg){acl, 0};
		assert_int_equal(
			pthread_create(&th[i], NULL, query_thread, &args[i]),
			0);
	}
	for (int i = 0; i < THREADS; i++) {
		pthread_join(th[i], NULL);
		assert_int_equal(args[i].errors, 0);
	}
	moat_acl_free(acl);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_parse_errors),
		T(test_parse_limits),
		T(test_parse_forms),
		T(test_empty_denies_all),
		T(test_anonymous_and_users),
		T(test_access_words),
		T(test_deny_precedence),
		T(test_patterns),
		T(test_patterns_special_characters),
		T(test_subscribe_table),
		T(test_fully_readable),
		T(test_clientid_binding),
		T(test_clientid_most_specific_claim_wins),
		T(test_clientid_prefix_model),
		T(test_model_exhaustive),
		T(test_model_random),
		T(test_deep_topics),
		T(test_load_file),
		T(test_alloc_failures),
		T(test_concurrent_queries),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
