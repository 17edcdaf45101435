/* Unit tests for psk_file parsing and lookup (src/auth/pskfile.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "auth/pskfile.h"
#include "common/moat_common.h"

#include "test_util.h"

static struct moat_pskfile *parse(const char *text, int want, char *err,
				  size_t errsz)
{
	struct moat_pskfile *f = NULL;
	int rc = moat_pskfile_parse(text, strlen(text), &f, err, errsz);
	assert_int_equal(rc, want);
	return f;
}

static void test_lookup(void **st)
{
	(void)st;
	char err[128];
	struct moat_pskfile *f = parse(
		"# comment\n\ndev1:00112233\r\nsensor-7:DEADbeef00\nb:ff\n",
		MOAT_OK, err, sizeof(err));
	uint8_t key[MOAT_PSK_MAX];
	assert_int_equal(moat_pskfile_find(f, "dev1", 4, key), 4);
	assert_memory_equal(key, "\x00\x11\x22\x33", 4);
	assert_int_equal(moat_pskfile_find(f, "sensor-7", 8, key), 5);
	assert_memory_equal(key, "\xde\xad\xbe\xef\x00", 5);
	assert_int_equal(moat_pskfile_find(f, "b", 1, key), 1);
	assert_int_equal(moat_pskfile_find(f, "dev", 3, key), 0);
	assert_int_equal(moat_pskfile_find(f, "dev10", 5, key), 0);
	assert_int_equal(moat_pskfile_find(f, "nobody", 6, key), 0);
	moat_pskfile_free(f);
	assert_int_equal(moat_pskfile_find(NULL, "dev1", 4, key), 0);
}

static void test_errors(void **st)
{
	(void)st;
	static const struct {
		const char *text, *msg;
	} bad[] = {
		{"dev1\n", "line 1: expected identity:hexkey"},
		{":0011\n", "line 1: expected identity:hexkey"},
		{"ok:00\ndev1:\n", "line 2: key must be"},
		{"dev1:001\n", "line 1: key must be"},
		{"dev1:00zz\n", "line 1: key is not hexadecimal"},
		{"a:00\na:11\n", "identity listed twice"},
	};
	for (size_t i = 0; i < MOAT_ARRAY_LEN(bad); i++) {
		char err[128] = "";
		assert_null(parse(bad[i].text, MOAT_EINVAL, err, sizeof(err)));
		if (!strstr(err, bad[i].msg))
			fail_msg("%s: got '%s'", bad[i].text, err);
	}
	char big[400];
	memset(big, 'a', 129);
	strcpy(big + 129, ":00\n");
	char err[128];
	assert_null(parse(big, MOAT_EINVAL, err, sizeof(err)));
	/* 64 key bytes are the most */
	char k64[200] = "x:", k65[200] = "x:";
	for (int i = 0; i < 64; i++)
		strcat(k64, "ab");
	strcpy(k65, k64);
	strcat(k65, "ab");
	struct moat_pskfile *f = parse(k64, MOAT_OK, err, sizeof(err));
	moat_pskfile_free(f);
	assert_null(parse(k65, MOAT_EINVAL, err, sizeof(err)));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_lookup),
		T(test_errors),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
