/* Unit tests for src/auth/passwd.c: password file syntax (every malformed
 * line fails the load, with its line number, never quoting the hash),
 * duplicate users, the hash formats (argon2id, mosquitto $6$ and $7$)
 * against known vectors, moat_pwfile_check including the success cache
 * and concurrent use, weak-password reasons, and the refusal of files
 * that are symlinks or open to other users.
 *
 * passwd.c is included (not only linked) so that the cache tests can look
 * inside the opaque struct moat_pwfile: the cache is invisible through the
 * API by design, and timing-based checks would be flaky.
 *
 * Known vectors, made once with the tools named next to each:
 *   mosquitto_passwd 2.0.11 (Debian 12):
 *     mosquitto_passwd -c -b pwt alice 'S3cure-Pass!'          ($7$)
 *     mosquitto_passwd -H sha512 -c -b pw6 bob 'An0ther-Pass'  ($6$)
 *   /usr/bin/python3 hashlib, password "correct horse battery":
 *     salt = bytes(range(20)); hashlib.pbkdf2_hmac('sha512', pw, salt,
 *       1000), both base64-encoded with padding                 ($7$)
 *     salt = b'saltsalt'; hashlib.sha512(pw + salt).digest()    ($6$)
 *   phc-winner-argon2 src/test.c: password "password", salt "somesalt",
 *     argon2id m=256 t=2 p=1                                  ($argon2id$)
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "../../src/auth/passwd.c"

#include "test_util.h"

#define MOSQ7_USER "alice"
#define MOSQ7_PW "S3cure-Pass!"
#define MOSQ7                                                                 \
	"$7$101$V+Dxi/YldQnoe6Ws$9G+TAuMgYzVsbARCFeDuzFZBSEc2rHrkqvzaZXhXW/"  \
	"U0tw1NWxFhjPzV7l6jzw3FTUHJkpQVXkpVCNtOJCxQ+Q=="
#define MOSQ6_USER "bob"
#define MOSQ6_PW "An0ther-Pass"
#define MOSQ6                                                                 \
	"$6$eo9YzXrYRGKWBINv$LRQaiLs4U4qkQhgdw6+vJHLEKDwK7DIetuwykDCutGdAkY4E" \
	"p7N7tX5qroSpl4hSmj1YfWpuqNN48WuVxAlciQ=="
#define PY_PW "correct horse battery"
#define PY7                                                                   \
	"$7$1000$AAECAwQFBgcICQoLDA0ODxAREhM=$sOumKRu0SQ0n33xpFhBel7xnhL4Dk9L" \
	"JSJQqHaApBthv0fGDCOVmZ4VcKq4LhhCBhxb1XgwyoTWvVPXlegiEmA=="
#define PY6                                                                   \
	"$6$c2FsdHNhbHQ=$QOZ0WJFlSsWxwsBsupmlywYHsTXLksvamFsJJ+kcy5d3+UwtZHlz" \
	"rNVNkgUEahEnTPkf4ckoCn+PJZ9WOKzalw=="
#define ARGON_REF                                                             \
	"$argon2id$v=19$m=256,t=2,p=1$c29tZXNhbHQ$nf65EOgLrQMR/uIPnA4rEsF5h7T" \
	"KyQwu9U1bMCHGi/4"

static const uint8_t *u8(const char *s)
{
	return (const uint8_t *)s;
}

static struct moat_pwfile *parse_ok(const char *text)
{
	struct moat_pwfile *f = NULL;
	char err[256] = "";
	int rc = moat_pwfile_parse(text, strlen(text), "pw", &f, err,
				   sizeof(err));
	if (rc != MOAT_OK)
		fail_msg("parse failed: %s", err);
	assert_non_null(f);
	return f;
}

static bool has(const struct moat_pwfile *f, const char *user)
{
	return moat_pwfile_has_user(f, user, strlen(user));
}

static int check(struct moat_pwfile *f, const char *user, const char *pw)
{
	return moat_pwfile_check(f, user, strlen(user), u8(pw), strlen(pw));
}

/* ---- file syntax ------------------------------------------------------ */

static void test_parse_valid(void **state)
{
	(void)state;
	struct moat_pwfile *f = parse_ok(
		"# mosquitto and moat users\r\n"
		"\n"
		"   \t\n"
		MOSQ7_USER ":" MOSQ7 "\r\n"
		"#bob:nothing\n"
		MOSQ6_USER ":" MOSQ6 "\n"
		"\r\n"
		"d\xC3\xA9vice+1/#:" ARGON_REF); /* no final newline */
	assert_int_equal(moat_pwfile_count(f), 3);
	assert_true(has(f, "alice"));
	assert_true(has(f, "bob"));
	assert_true(has(f, "d\xC3\xA9vice+1/#"));
	assert_false(has(f, "alic"));
	assert_false(has(f, "alicee"));
	assert_false(has(f, "#bob"));
	assert_false(has(f, ""));
	assert_false(moat_pwfile_has_user(f, NULL, 0));
	assert_false(moat_pwfile_has_user(NULL, "bob", 3));
	moat_pwfile_free(f);
}

static void test_parse_empty(void **state)
{
	(void)state;
	static const char *const texts[] = {"", "\n", "# only\n", "\r\n\r\n"};
	for (size_t i = 0; i < MOAT_ARRAY_LEN(texts); i++) {
		struct moat_pwfile *f = parse_ok(texts[i]);
		assert_int_equal(moat_pwfile_count(f), 0);
		assert_int_equal(check(f, "alice", MOSQ7_PW), MOAT_EDENIED);
		moat_pwfile_free(f);
	}
	moat_pwfile_free(NULL);
	assert_int_equal(moat_pwfile_count(NULL), 0);
}

struct bad_case {
	const char *name;
	const char *text;
	size_t len; /* 0: strlen(text) */
	const char *err; /* the whole expected message */
};

/* "c2VjcmV0" (base64 "secret") marks the hash bytes that must never show
 * up in an error. */
#define GOOD6 MOSQ6
static const struct bad_case bad_cases[] = {
	{"no colon", "# c\n\nalice\n", 0,
	 "pw:3: no ':' between user name and password hash"},
	{"no colon, not even a hash", "alice c2VjcmV0\n", 0,
	 "pw:1: no ':' between user name and password hash"},
	{"empty user", ":" GOOD6 "\n", 0, "pw:1: empty user name"},
	{"empty hash", "alice:\n", 0, "pw:1: empty password hash"},
	{"empty hash, CRLF", "alice:\r\n", 0, "pw:1: empty password hash"},
	{"plain-text password", "bob:" GOOD6 "\nalice:c2VjcmV0\n", 0,
	 "pw:2: unknown password hash format (expected $argon2id$, $7$ or "
	 "$6$)"},
	{"md5crypt", "alice:$1$c2VjcmV0$c2VjcmV0\n", 0,
	 "pw:1: unknown password hash format (expected $argon2id$, $7$ or "
	 "$6$)"},
	{"argon2i", "alice:$argon2i$v=19$m=256,t=2,p=1$c29tZXNhbHQ$c2VjcmV0"
		    "c2VjcmV0c2VjcmV0\n", 0,
	 "pw:1: unknown password hash format (expected $argon2id$, $7$ or "
	 "$6$)"},
	{"tab in user", "al\tice:" GOOD6 "\n", 0,
	 "pw:1: control character in user name"},
	{"DEL in user", "al\x7f" "ice:" GOOD6 "\n", 0,
	 "pw:1: control character in user name"},
	{"NUL in user", "al\0ice:" GOOD6 "\n", sizeof("al\0ice:" GOOD6 "\n") - 1,
	 "pw:1: control character in user name"},
	{"CR inside user", "al\rice:" GOOD6 "\n", 0,
	 "pw:1: control character in user name"},
	{"user not UTF-8", "al\xC0\x80ice:" GOOD6 "\n", 0,
	 "pw:1: user name is not valid UTF-8"},
	{"NUL in hash", "alice:$6$\0c2VjcmV0\n", sizeof("alice:$6$\0c2VjcmV0\n") - 1,
	 "pw:1: malformed $6$ hash"},
	{"$6$ hash too short", "alice:$6$c2FsdA==$c2VjcmV0\n", 0,
	 "pw:1: malformed $6$ hash"},
	{"$6$ unpadded", "alice:$6$c2FsdA$c2VjcmV0c2VjcmV0\n", 0,
	 "pw:1: malformed $6$ hash"},
	{"$6$ empty salt", "alice:$6$$c2VjcmV0\n", 0,
	 "pw:1: malformed $6$ hash"},
	{"$6$ no hash", "alice:$6$c2VjcmV0\n", 0,
	 "pw:1: malformed $6$ hash"},
	{"$6$ bad base64", "alice:$6$c2Vj*mV0$c2VjcmV0\n", 0,
	 "pw:1: malformed $6$ hash"},
	{"$6$ trailing space", "bob:" GOOD6 " \n", 0,
	 "pw:1: malformed $6$ hash"},
	{"$6$ extra field", "bob:" GOOD6 "$\n", 0, "pw:1: malformed $6$ hash"},
	{"$7$ zero iterations", "alice:$7$0$c2VjcmV0$c2VjcmV0\n", 0,
	 "pw:1: $7$ hash: iteration count not in 1..10000000"},
	{"$7$ too many iterations", "alice:$7$10000001$c2VjcmV0$c2VjcmV0\n", 0,
	 "pw:1: $7$ hash: iteration count not in 1..10000000"},
	{"$7$ huge iterations",
	 "alice:$7$99999999999999999999999$c2VjcmV0$c2VjcmV0\n", 0,
	 "pw:1: $7$ hash: iteration count not in 1..10000000"},
	{"$7$ leading zero", "alice:$7$0101$c2VjcmV0$c2VjcmV0\n", 0,
	 "pw:1: $7$ hash: iteration count not in 1..10000000"},
	{"$7$ negative", "alice:$7$-1$c2VjcmV0$c2VjcmV0\n", 0,
	 "pw:1: $7$ hash: iteration count not in 1..10000000"},
	{"$7$ short hash", "alice:$7$101$c2VjcmV0$c2VjcmV0\n", 0,
	 "pw:1: malformed $7$ hash"},
	{"argon2id v=16", "alice:$argon2id$v=16$m=256,t=2,p=1$c29tZXNhbHQ$"
			  "c2VjcmV0c2VjcmV0c2VjcmV0\n", 0,
	 "pw:1: malformed $argon2id$ hash"},
	{"argon2id no version", "alice:$argon2id$m=256,t=2,p=1$c29tZXNhbHQ$"
				"c2VjcmV0c2VjcmV0c2VjcmV0\n", 0,
	 "pw:1: malformed $argon2id$ hash"},
	{"argon2id 1 TiB", "alice:$argon2id$v=19$m=1073741824,t=2,p=1$"
			   "c29tZXNhbHQ$c2VjcmV0c2VjcmV0c2VjcmV0\n", 0,
	 "pw:1: malformed $argon2id$ hash"},
	{"argon2id t=1000", "alice:$argon2id$v=19$m=256,t=1000,p=1$"
			    "c29tZXNhbHQ$c2VjcmV0c2VjcmV0c2VjcmV0\n", 0,
	 "pw:1: malformed $argon2id$ hash"},
	{"argon2id t=0", "alice:$argon2id$v=19$m=256,t=0,p=1$"
			 "c29tZXNhbHQ$c2VjcmV0c2VjcmV0c2VjcmV0\n", 0,
	 "pw:1: malformed $argon2id$ hash"},
	{"argon2id m<8p", "alice:$argon2id$v=19$m=64,t=2,p=16$"
			  "c29tZXNhbHQ$c2VjcmV0c2VjcmV0c2VjcmV0\n", 0,
	 "pw:1: $argon2id$ hash: memory below 8 KiB per lane"},
	{"argon2id padded", "alice:$argon2id$v=19$m=256,t=2,p=1$c29tZXNhbHQ=$"
			    "c2VjcmV0c2VjcmV0c2VjcmV0\n", 0,
	 "pw:1: malformed $argon2id$ hash"},
	{"argon2id short salt", "alice:$argon2id$v=19$m=256,t=2,p=1$c2FsdA$"
				"c2VjcmV0c2VjcmV0c2VjcmV0\n", 0,
	 "pw:1: malformed $argon2id$ hash"},
	{"argon2id short hash", "alice:$argon2id$v=19$m=256,t=2,p=1$"
				"c29tZXNhbHQ$c2VjcmV0\n", 0,
	 "pw:1: malformed $argon2id$ hash"},
	{"argon2id non-canonical base64", "alice:$argon2id$v=19$m=256,t=2,p=1$"
					  "c29tZXNhbHR$nf65EOgLrQMR/uIPnA4rEsF5"
					  "h7TKyQwu9U1bMCHGi/4\n", 0,
	 "pw:1: malformed $argon2id$ hash"},
	{"$6$ non-canonical base64", "alice:$6$c2FsdB==$c2VjcmV0\n", 0,
	 "pw:1: malformed $6$ hash"},
	{"argon2id trailing", "alice:" ARGON_REF "$x\n", 0,
	 "pw:1: malformed $argon2id$ hash"},
	{"argon2id truncated", "alice:$argon2id$v=19$m=256,t=2,p=1\n", 0,
	 "pw:1: malformed $argon2id$ hash"},
	{"error after good lines", "# x\n" MOSQ7_USER ":" MOSQ7 "\r\n\n"
				   "bob:$6$\n", 0,
	 "pw:4: malformed $6$ hash"},
	{"indented comment", "  # not a comment\n", 0,
	 "pw:1: no ':' between user name and password hash"},
};

static void test_parse_malformed(void **state)
{
	(void)state;
	for (size_t i = 0; i < MOAT_ARRAY_LEN(bad_cases); i++) {
		const struct bad_case *c = &bad_cases[i];
		size_t len = c->len ? c->len : strlen(c->text);
		static struct moat_pwfile poison;
		struct moat_pwfile *f = &poison;
		char err[256] = "";
		int rc = moat_pwfile_parse(c->text, len, "pw", &f, err,
					   sizeof(err));
		if (rc == MOAT_OK || f != NULL)
			fail_msg("'%s': loaded", c->name);
		if (strcmp(err, c->err) != 0)
			fail_msg("'%s': got '%s', want '%s'", c->name, err,
				 c->err);
		if (strstr(err, "c2VjcmV0") || strstr(err, "nf65EO"))
			fail_msg("'%s': hash in error '%s'", c->name, err);
	}
}

static char *repeat_line(const char *head, char fill, size_t n,
			 const char *tail)
{
	size_t hl = strlen(head), tl = strlen(tail);
	char *s = moat_malloc(hl + n + tl + 1);
	assert_non_null(s);
	memcpy(s, head, hl);
	memset(s + hl, fill, n);
	memcpy(s + hl + n, tail, tl + 1);
	return s;
}

static void test_parse_line_length(void **state)
{
	(void)state;
	struct moat_pwfile *f;
	char err[256];
	/* 65536 bytes of line (the "#" included), CRLF not counted */
	char *s = repeat_line("#", 'x', 65535, "\r\nbob:" MOSQ6 "\n");
	assert_int_equal(moat_pwfile_parse(s, strlen(s), "pw", &f, err,
					   sizeof(err)),
			 MOAT_OK);
	assert_int_equal(moat_pwfile_count(f), 1);
	moat_pwfile_free(f);
	moat_free(s);

	s = repeat_line("bob:" MOSQ6 "\n#", 'x', 65536, "\n");
	assert_int_equal(moat_pwfile_parse(s, strlen(s), "pw", &f, err,
					   sizeof(err)),
			 MOAT_ELIMIT);
	assert_null(f);
	assert_string_equal(err, "pw:2: line longer than 65536 bytes");
	moat_free(s);

	/* the longest user name fits no line with its hash */
	s = repeat_line("", 'u', 65535, ":" MOSQ6);
	assert_int_equal(moat_pwfile_parse(s, strlen(s), "pw", &f, err,
					   sizeof(err)),
			 MOAT_ELIMIT);
	assert_string_equal(err, "pw:1: line longer than 65536 bytes");
	moat_free(s);

	/* but a long one does */
	s = repeat_line("", 'u', 60000, ":" MOSQ6);
	f = parse_ok(s);
	s[60000] = '\0';
	assert_true(has(f, s));
	s[59999] = '\0';
	assert_false(has(f, s));
	moat_pwfile_free(f);
	moat_free(s);
}

static void test_parse_duplicates(void **state)
{
	(void)state;
	struct moat_pwfile *f;
	char err[256];
	static const struct {
		const char *text, *err;
	} cases[] = {
		{"alice:" MOSQ6 "\nbob:" MOSQ6 "\nalice:" MOSQ7 "\n",
		 "pw:3: duplicate user (first on line 1)"},
		/* the first duplicate in file order wins */
		{"z:" MOSQ6 "\na:" MOSQ6 "\n#\nz:" MOSQ6 "\na:" MOSQ6 "\n",
		 "pw:4: duplicate user (first on line 1)"},
		{"b:" MOSQ6 "\na:" MOSQ6 "\nz:" MOSQ6 "\na:" MOSQ6 "\nb:" MOSQ6
		 "\n",
		 "pw:4: duplicate user (first on line 2)"},
		{"x:" MOSQ6 "\nx:" MOSQ6 "\nx:" MOSQ6 "\n",
		 "pw:2: duplicate user (first on line 1)"},
		/* CRLF and LF spellings of one name */
		{"x:" MOSQ6 "\r\nx:" MOSQ6 "\n",
		 "pw:2: duplicate user (first on line 1)"},
	};
	for (size_t i = 0; i < MOAT_ARRAY_LEN(cases); i++) {
		int rc = moat_pwfile_parse(cases[i].text, strlen(cases[i].text),
					   "pw", &f, err, sizeof(err));
		assert_int_equal(rc, MOAT_EMALFORMED);
		assert_null(f);
		assert_string_equal(err, cases[i].err);
	}
	/* names differing only in case or by a prefix are distinct */
	f = parse_ok("x:" MOSQ6 "\nX:" MOSQ6 "\nxx:" MOSQ6 "\n");
	assert_int_equal(moat_pwfile_count(f), 3);
	moat_pwfile_free(f);
}

/* 1,000,000 users load; one more does not. */
static void test_parse_user_limit(void **state)
{
	(void)state;
	/* ":$6$" + 1-byte salt + 64 zero bytes, base64 */
	char hash[4 + 5 + 88 + 2];
	snprintf(hash, sizeof(hash), ":$6$AA==$%.86s==\n",
		 "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
		 "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA");
	const size_t users = PW_MAX_USERS + 1, line = 8 + strlen(hash);
	char *text = moat_malloc(users * line + 1);
	assert_non_null(text);
	char *p = text;
	for (size_t i = 0; i < users; i++) {
		snprintf(p, 9, "u%07zu", i);
		memcpy(p + 8, hash, strlen(hash) + 1);
		p += line;
	}
	struct moat_pwfile *f;
	char err[256];
	int rc = moat_pwfile_parse(text, (users - 1) * line, "pw", &f, err,
				   sizeof(err));
	assert_int_equal(rc, MOAT_OK);
	assert_int_equal(moat_pwfile_count(f), PW_MAX_USERS);
	assert_true(has(f, "u0000000"));
	assert_true(has(f, "u0999999"));
	assert_false(has(f, "u1000000"));
	moat_pwfile_free(f);
	rc = moat_pwfile_parse(text, users * line, "pw", &f, err, sizeof(err));
	assert_int_equal(rc, MOAT_ELIMIT);
	assert_string_equal(err, "pw:1000001: more than 1000000 users");
	moat_free(text);
}

/* Every allocation failure is reported and frees everything. */
static void test_parse_out_of_memory(void **state)
{
	(void)state;
	const char *text = "a:" MOSQ6 "\nb:" MOSQ7 "\n";
	for (long n = 1;; n++) {
		struct moat_pwfile *f;
		char err[256];
		moat_alloc_fail_at(n);
		int rc = moat_pwfile_parse(text, strlen(text), "pw", &f, err,
					   sizeof(err));
		moat_alloc_fail_at(0);
		if (rc == MOAT_OK) {
			assert_true(n > 2);
			moat_pwfile_free(f);
			break;
		}
		assert_int_equal(rc, MOAT_ENOMEM);
		assert_null(f);
		assert_non_null(strstr(err, "out of memory"));
	}
}

/* ---- hash formats -------------------------------------------------------- */

static void test_verify_known_vectors(void **state)
{
	(void)state;
	static const struct {
		const char *hash, *pw;
	} v[] = {
		{MOSQ7, MOSQ7_PW},
		{MOSQ6, MOSQ6_PW},
		{PY7, PY_PW},
		{PY6, PY_PW},
		{ARGON_REF, "password"},
	};
	for (size_t i = 0; i < MOAT_ARRAY_LEN(v); i++) {
		size_t n = strlen(v[i].pw);
		assert_int_equal(moat_passwd_verify(v[i].hash, u8(v[i].pw), n),
				 MOAT_OK);
		/* one byte less, one byte more, one byte changed, empty */
		assert_int_equal(moat_passwd_verify(v[i].hash, u8(v[i].pw),
						    n - 1),
				 MOAT_EDENIED);
		char longer[64];
		snprintf(longer, sizeof(longer), "%sx", v[i].pw);
		assert_int_equal(moat_passwd_verify(v[i].hash, u8(longer),
						    n + 1),
				 MOAT_EDENIED);
		longer[0] ^= 0x20;
		assert_int_equal(moat_passwd_verify(v[i].hash, u8(longer), n),
				 MOAT_EDENIED);
		assert_int_equal(moat_passwd_verify(v[i].hash, NULL, 0),
				 MOAT_EDENIED);
	}
}

static void test_verify_malformed(void **state)
{
	(void)state;
	static const char *const bad[] = {
		"", "plain", "$6$", "$7$101$", "$argon2id$", MOSQ6 "x",
		"$7$0$c2FsdA==$c2VjcmV0c2VjcmV0c2VjcmV0",
	};
	for (size_t i = 0; i < MOAT_ARRAY_LEN(bad); i++)
		assert_int_equal(moat_passwd_verify(bad[i], u8("x"), 1),
				 MOAT_EINVAL);
	assert_int_equal(moat_passwd_verify(NULL, u8("x"), 1), MOAT_EINVAL);
	assert_int_equal(moat_passwd_verify(MOSQ6, NULL, 3), MOAT_EINVAL);
}

static void test_hash_argon2id_round_trip(void **state)
{
	(void)state;
	char a[MOAT_PASSWD_HASH_MAX], b[MOAT_PASSWD_HASH_MAX];
	const char *pw = "tr0ub4dor&3-Horse";
	assert_int_equal(moat_passwd_hash(u8(pw), strlen(pw), a, sizeof(a)),
			 MOAT_OK);
	assert_int_equal(strncmp(a, "$argon2id$v=19$m=19456,t=2,p=1$", 31), 0);
	/* a 16-byte salt and a 32-byte hash, unpadded base64 */
	const char *salt = a + 31, *dollar = strchr(salt, '$');
	assert_non_null(dollar);
	assert_int_equal(dollar - salt, 22);
	assert_int_equal(strlen(dollar + 1), 43);
	assert_int_equal(moat_passwd_verify(a, u8(pw), strlen(pw)), MOAT_OK);
	assert_int_equal(moat_passwd_verify(a, u8(pw), strlen(pw) - 1),
			 MOAT_EDENIED);
	/* a fresh salt every time */
	assert_int_equal(moat_passwd_hash(u8(pw), strlen(pw), b, sizeof(b)),
			 MOAT_OK);
	assert_string_not_equal(a, b);
	assert_int_equal(moat_passwd_verify(b, u8(pw), strlen(pw)), MOAT_OK);
	/* binary passwords with NULs are hashed whole */
	static const uint8_t bin[] = {0, 1, 0, 2};
	assert_int_equal(moat_passwd_hash(bin, sizeof(bin), a, sizeof(a)),
			 MOAT_OK);
	assert_int_equal(moat_passwd_verify(a, bin, sizeof(bin)), MOAT_OK);
	assert_int_equal(moat_passwd_verify(a, bin, 1), MOAT_EDENIED);
	/* the empty password, and a buffer too small */
	assert_int_equal(moat_passwd_hash(NULL, 0, a, sizeof(a)), MOAT_OK);
	assert_int_equal(moat_passwd_verify(a, NULL, 0), MOAT_OK);
	assert_int_equal(moat_passwd_hash(u8(pw), strlen(pw), a, 60),
			 MOAT_EINVAL);
	assert_int_equal(moat_passwd_hash(NULL, 3, a, sizeof(a)), MOAT_EINVAL);
	/* what moat_passwd_hash writes, a file accepts */
	assert_int_equal(moat_passwd_hash(u8(pw), strlen(pw), a, sizeof(a)),
			 MOAT_OK);
	char text[256];
	snprintf(text, sizeof(text), "carol:%s\n", a);
	struct moat_pwfile *f = parse_ok(text);
	assert_int_equal(check(f, "carol", pw), MOAT_OK);
	moat_pwfile_free(f);
}

/* ---- moat_pwfile_check ------------------------------------------------- */

static struct moat_pwfile *sample_file(void)
{
	return parse_ok(MOSQ7_USER ":" MOSQ7 "\n" MOSQ6_USER ":" MOSQ6 "\n"
		       "py7:" PY7 "\npy6:" PY6 "\nref:" ARGON_REF "\n");
}

static void test_check(void **state)
{
	(void)state;
	struct moat_pwfile *f = sample_file();
	assert_int_equal(check(f, "alice", MOSQ7_PW), MOAT_OK);
	assert_int_equal(check(f, "bob", MOSQ6_PW), MOAT_OK);
	assert_int_equal(check(f, "py7", PY_PW), MOAT_OK);
	assert_int_equal(check(f, "py6", PY_PW), MOAT_OK);
	assert_int_equal(check(f, "ref", "password"), MOAT_OK);
	/* wrong passwords, including another user's */
	assert_int_equal(check(f, "alice", "S3cure-Pass"), MOAT_EDENIED);
	assert_int_equal(check(f, "alice", MOSQ6_PW), MOAT_EDENIED);
	assert_int_equal(check(f, "bob", ""), MOAT_EDENIED);
	assert_int_equal(moat_pwfile_check(f, "bob", 3, NULL, 0),
			 MOAT_EDENIED);
	/* unknown users, even with a valid password of someone */
	assert_int_equal(check(f, "mallory", MOSQ7_PW), MOAT_EDENIED);
	assert_int_equal(check(f, "alic", MOSQ7_PW), MOAT_EDENIED);
	assert_int_equal(check(f, "Alice", MOSQ7_PW), MOAT_EDENIED);
	assert_int_equal(check(f, "", MOSQ7_PW), MOAT_EDENIED);
	assert_int_equal(moat_pwfile_check(f, "alice\0", 6, u8(MOSQ7_PW),
					   strlen(MOSQ7_PW)),
			 MOAT_EDENIED);
	/* nonsense arguments */
	assert_int_equal(moat_pwfile_check(NULL, "alice", 5, u8(MOSQ7_PW),
					   strlen(MOSQ7_PW)),
			 MOAT_EDENIED);
	assert_int_equal(moat_pwfile_check(f, NULL, 5, u8("x"), 1),
			 MOAT_EDENIED);
	assert_int_equal(moat_pwfile_check(f, "alice", 5, NULL, 3),
			 MOAT_EDENIED);
	moat_pwfile_free(f);
}

static struct pw_entry *entry_of(struct moat_pwfile *f, const char *user)
{
	const struct pw_entry *e = find_user(f, user, strlen(user));
	assert_non_null(e);
	return &f->e[e - f->e]; /* the same entry, writable */
}

static bool cached(struct moat_pwfile *f, const char *user, const char *pw)
{
	uint8_t mac[PW_MAC_LEN];
	assert_true(cache_mac(f, user, strlen(user), u8(pw), strlen(pw), mac));
	return cache_lookup(f, mac);
}

static void test_check_cache(void **state)
{
	(void)state;
	struct moat_pwfile *f = sample_file();
	/* nothing allocated until the first success */
	assert_false(cached(f, "alice", MOSQ7_PW));
	assert_int_equal(check(f, "alice", "wrong"), MOAT_EDENIED);
	assert_null(f->cache);
	assert_int_equal(check(f, "mallory", "wrong"), MOAT_EDENIED);
	assert_null(f->cache);

	assert_int_equal(check(f, "alice", MOSQ7_PW), MOAT_OK);
	assert_non_null(f->cache);
	assert_true(cached(f, "alice", MOSQ7_PW));
	/* the MAC binds user and password together */
	assert_false(cached(f, "alice", "S3cure-Pass"));
	assert_false(cached(f, "bob", MOSQ7_PW));
	assert_int_equal(check(f, "alice", "wrong"), MOAT_EDENIED);
	assert_false(cached(f, "alice", "wrong"));

	/* Prove the hit path: point alice at a hash her password does not
	 * match; the cached success still lets her in, and only her. */
	struct pw_entry *e = entry_of(f, "alice");
	assert_non_null(e);
	const char *real = e->hash;
	e->hash = MOSQ6;
	assert_int_equal(check(f, "alice", MOSQ7_PW), MOAT_OK);
	assert_int_equal(check(f, "alice", MOSQ6_PW), MOAT_OK); /* verified */
	assert_int_equal(check(f, "alice", "S3cure-Pass!!"), MOAT_EDENIED);
	e->hash = real;

	/* a file loaded again has a new key: nothing carries over */
	struct moat_pwfile *g = sample_file();
	assert_false(cached(g, "alice", MOSQ7_PW));
	moat_pwfile_free(g);
	moat_pwfile_free(f);
}

/* A set holds PW_CACHE_WAYS MACs and evicts round-robin, so the whole
 * cache is bounded by PW_CACHE_SETS * PW_CACHE_WAYS. */
static void test_cache_bounded(void **state)
{
	(void)state;
	assert_int_equal(PW_CACHE_SETS * PW_CACHE_WAYS, 4096);
	struct moat_pwfile *f = parse_ok("");
	uint8_t mac[PW_CACHE_WAYS + 1][PW_MAC_LEN];
	for (unsigned i = 0; i <= PW_CACHE_WAYS; i++) {
		memset(mac[i], (int)i + 1, PW_MAC_LEN);
		mac[i][0] = 7; /* all in set 7 */
		mac[i][1] = 0;
		cache_insert(f, mac[i]);
		cache_insert(f, mac[i]); /* again: no second copy */
	}
	assert_false(cache_lookup(f, mac[0])); /* the oldest went */
	for (unsigned i = 1; i <= PW_CACHE_WAYS; i++)
		assert_true(cache_lookup(f, mac[i]));
	mac[1][PW_MAC_LEN - 1] ^= 1;
	assert_false(cache_lookup(f, mac[1]));
	moat_pwfile_free(f);
}

struct race {
	struct moat_pwfile *f;
	int errors;
};

static void *race_thread(void *arg)
{
	struct race *r = arg;
	for (int i = 0; i < 40; i++) {
		bool good = i % 3 != 0;
		const char *user = i % 2 ? "alice" : "bob";
		const char *pw = good ? (i % 2 ? MOSQ7_PW : MOSQ6_PW) : "nope";
		if ((check(r->f, user, pw) == MOAT_OK) != good)
			r->errors++;
	}
	return NULL;
}

/* Many workers check at once (run it under TSan too). */
static void test_check_concurrent(void **state)
{
	(void)state;
	struct moat_pwfile *f = sample_file();
	pthread_t t[8];
	struct race r[8];
	for (int i = 0; i < 8; i++) {
		r[i] = (struct race){f, 0};
		assert_int_equal(pthread_create(&t[i], NULL, race_thread, &r[i]),
				 0);
	}
	for (int i = 0; i < 8; i++) {
		pthread_join(t[i], NULL);
		assert_int_equal(r[i].errors, 0);
	}
	moat_pwfile_free(f);
}

/* ---- weak passwords ------------------------------------------------------ */

static void expect_weak(const char *user, const char *pw, const char *why)
{
	char reason[256] = "x";
	const char *shown = pw ? pw : "(null)";
	if (!moat_passwd_weak(user, pw, reason, sizeof(reason)))
		fail_msg("'%s' accepted", shown);
	if (why && strcmp(reason, why) != 0)
		fail_msg("'%s': reason '%s', want '%s'", shown, reason, why);
	if (!why && reason[0] == '\0')
		fail_msg("'%s': no reason", shown);
	/* our own reasons are fixed texts; libpwquality's must not quote */
	if (!why && pw && strstr(reason, pw))
		fail_msg("'%s': the password is in the reason '%s'", pw,
			 reason);
}

static void test_weak(void **state)
{
	(void)state;
	const char *shortw = "too short: at least 8 characters";
	const char *common = "in the list of common passwords";
	const char *hasuser = "contains the user name";
	expect_weak("u", "12345", shortw);
	expect_weak("u", "admin", shortw);
	expect_weak("u", "", shortw);
	expect_weak("u", "Xq9#vL2", shortw);
	expect_weak("u", "\xC3\xA9\xC3\xA9\xC3\xA9\xC3\xA9\xC3\xA9\xC3\xA9"
			 "\xC3\xA9", shortw); /* 7 characters in 14 bytes */
	expect_weak("u", NULL, shortw);
	expect_weak("u", "password", common);
	expect_weak("u", "PassWord", common);
	expect_weak("u", "123456789", common);
	expect_weak("u", "12345678", common);
	expect_weak("u", "changeme", common);
	expect_weak("u", "mosquitto", common);
	expect_weak("u", "raspberry", common);
	expect_weak("u", "7ujMko0admin", common);
	expect_weak("u", "P@ssw0rd", common);
	expect_weak("sensor42", "Xq9#sensor42!", hasuser);
	expect_weak("sensor42", "Xq9#SENSOR42!", hasuser);
	expect_weak("Sensor42", "Xq9#sensor42!", hasuser);
	/* libpwquality's own verdicts */
	expect_weak("u", "aaaaaaaaaaaa", NULL);
	expect_weak("u", "abcdefghijkl", NULL);

	char reason[256] = "x";
	assert_false(moat_passwd_weak("sensor42", "vT7#qL9!mZ2@wR4k", reason,
				      sizeof(reason)));
	assert_string_equal(reason, "");
	/* a user name of two characters is not looked for */
	assert_false(moat_passwd_weak("wR", "vT7#qL9!mZ2@wR4k", reason,
				      sizeof(reason)));
	assert_false(moat_passwd_weak(NULL, "vT7#qL9!mZ2@wR4k", NULL, 0));
	/* a small reason buffer truncates safely */
	char tiny[6];
	assert_true(moat_passwd_weak("u", "password", tiny, sizeof(tiny)));
	assert_string_equal(tiny, "in th");
}

/* ---- files ----------------------------------------------------------------- */

static void write_file(const char *path, const char *text, mode_t mode)
{
	FILE *fp = fopen(path, "w");
	assert_non_null(fp);
	assert_int_equal(fputs(text, fp) >= 0, 1);
	assert_int_equal(fclose(fp), 0);
	assert_int_equal(chmod(path, mode), 0);
}

static void test_load_private_file(void **state)
{
	(void)state;
	char dir[] = "/tmp/moat-pw-XXXXXX";
	assert_non_null(mkdtemp(dir));
	char path[128], link[128], err[512];
	snprintf(path, sizeof(path), "%s/pw", dir);
	snprintf(link, sizeof(link), "%s/link", dir);
	struct moat_pwfile *f;

	write_file(path, "# users\nbob:" MOSQ6 "\n", 0600);
	if (moat_pwfile_load(path, &f, err, sizeof(err)) != MOAT_OK)
		fail_msg("load: %s", err);
	assert_int_equal(moat_pwfile_count(f), 1);
	assert_int_equal(check(f, "bob", MOSQ6_PW), MOAT_OK);
	moat_pwfile_free(f);

	/* group access is the administrator's choice */
	assert_int_equal(chmod(path, 0640), 0);
	assert_int_equal(moat_pwfile_load(path, &f, err, sizeof(err)),
			 MOAT_OK);
	moat_pwfile_free(f);

	assert_int_equal(chmod(path, 0644), 0);
	assert_int_equal(moat_pwfile_load(path, &f, err, sizeof(err)),
			 MOAT_EDENIED);
	assert_null(f);
	assert_non_null(strstr(err, "readable or writable by other users"));
	assert_int_equal(chmod(path, 0602), 0);
	assert_int_equal(moat_pwfile_load(path, &f, err, sizeof(err)),
			 MOAT_EDENIED);

	assert_int_equal(chmod(path, 0600), 0);
	assert_int_equal(symlink(path, link), 0);
	assert_int_equal(moat_pwfile_load(link, &f, err, sizeof(err)),
			 MOAT_EDENIED);
	assert_null(f);
	assert_non_null(strstr(err, "symbolic link"));

	/* errors name the file and the line */
	write_file(path, "bob:" MOSQ6 "\nalice:c2VjcmV0\n", 0600);
	assert_int_equal(moat_pwfile_load(path, &f, err, sizeof(err)),
			 MOAT_EMALFORMED);
	char want[256];
	snprintf(want, sizeof(want), "%s:2: unknown password hash format", path);
	assert_int_equal(strncmp(err, want, strlen(want)), 0);

	assert_int_equal(unlink(link), 0);
	assert_int_equal(unlink(path), 0);
	assert_int_equal(moat_pwfile_load(path, &f, err, sizeof(err)),
			 MOAT_EIO);
	assert_null(f);
	assert_int_equal(rmdir(dir), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_parse_valid),
		T(test_parse_empty),
		T(test_parse_malformed),
		T(test_parse_line_length),
		T(test_parse_duplicates),
		T(test_parse_user_limit),
		T(test_parse_out_of_memory),
		T(test_verify_known_vectors),
		T(test_verify_malformed),
		T(test_hash_argon2id_round_trip),
		T(test_check),
		T(test_check_cache),
		T(test_cache_bounded),
		T(test_check_concurrent),
		T(test_weak),
		T(test_load_private_file),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
