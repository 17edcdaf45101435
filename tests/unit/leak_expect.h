/* Shared helpers of the leak detector's unit tests (test_leak.c,
 * test_leak_formats.c): one db and scratch per test program, scanning from
 * an exact-size heap copy (ASan sees any read past the end), and the
 * YES / NO / CLEAN expectations.  Include after <cmocka.h>. */
#ifndef MOAT_LEAK_EXPECT_H
#define MOAT_LEAK_EXPECT_H

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "leak/leak.h"

static struct moat_leak_db *db;
static struct moat_leak_scratch *scr;
static const uint8_t test_key[MOAT_LEAK_KEY_LEN] = "unit-test-install-key-0123456789";

static inline int group_setup(void **state)
{
	(void)state;
	struct moat_leak_opts o = {0, 0, 0, test_key};
	char err[256];
	if (moat_leak_db_new(&o, &db, err, sizeof(err)) != MOAT_OK) {
		fprintf(stderr, "db: %s\n", err);
		return -1;
	}
	return moat_leak_scratch_new(db, &scr) == MOAT_OK ? 0 : -1;
}

static inline int group_teardown(void **state)
{
	(void)state;
	moat_leak_scratch_free(scr);
	moat_leak_db_free(db);
	return 0;
}

/* ---- helpers ------------------------------------------------------------- */

static struct moat_leak_result res;
static uint8_t *copy; /* the last message scanned (exact size) */
static size_t copy_len;

static inline void scan_with(struct moat_leak_db *d, struct moat_leak_scratch *s,
		      const char *msg, size_t len)
{
	free(copy);
	copy = malloc(len ? len : 1);
	assert_non_null(copy);
	memcpy(copy, msg, len);
	copy_len = len;
	int rc = moat_leak_scan(d, s, copy, len, &res);
	assert_int_equal(rc, (int)res.n);
}

static inline void scan(const char *msg)
{
	scan_with(db, scr, msg, strlen(msg));
}

static inline const struct moat_leak_finding *first(enum moat_leak_category c)
{
	for (size_t i = 0; i < res.n; i++)
		if (res.findings[i].category == c)
			return &res.findings[i];
	return NULL;
}

static inline void dump(const char *msg)
{
	print_error("message: %s\n", msg);
	for (size_t i = 0; i < res.n; i++) {
		const struct moat_leak_finding *f = &res.findings[i];
		print_error("  %s [%zu,%zu) %s path=%s preview=%s\n",
			    moat_leak_category_name(f->category), f->start,
			    f->end, moat_leak_severity_name(f->severity),
			    f->path, f->preview);
	}
}

static inline void expect(enum moat_leak_category c, const char *msg, bool want,
		   const char *file, int line)
{
	scan(msg);
	bool got = first(c) != NULL;
	if (got != want) {
		dump(msg);
		fail_msg("%s:%d: %s expected %s", file, line,
			 moat_leak_category_name(c), want ? "found" : "absent");
	}
}

#define YES(c, msg) expect(MOAT_LEAK_##c, msg, true, __FILE__, __LINE__)
#define NO(c, msg) expect(MOAT_LEAK_##c, msg, false, __FILE__, __LINE__)
/* The message has no finding at all. */
#define CLEAN(msg)                                                            \
	do {                                                                  \
		scan(msg);                                                    \
		if (res.n) {                                                  \
			dump(msg);                                            \
			fail_msg("%s:%d: expected no finding", __FILE__,      \
				 __LINE__);                                   \
		}                                                             \
	} while (0)

/* The matched bytes of f. */
static inline void assert_match(const struct moat_leak_finding *f, const char *want)
{
	assert_non_null(f);
	size_t n = strlen(want);
	if (f->end - f->start != n || memcmp(copy + f->start, want, n))
		fail_msg("match is '%.*s', expected '%s'",
			 (int)(f->end - f->start), copy + f->start, want);
}

static inline int cleanup_copy(void **state)
{
	(void)state;
	free(copy);
	copy = NULL;
	return 0;
}

#endif
