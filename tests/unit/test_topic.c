/* Unit tests for topic names, filters and matching (MQTT 3.1.1 §4.7).
 *
 * Table cases come from the spec's own examples; a brute-force check
 * compares moat_topic_matches() with a simple split-into-levels reference
 * model over every short filter/topic built from a small alphabet. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "codec/mqtt_codec.h"

#include "test_util.h"

/* Exact-size heap copy, so that ASan reports any read past len. */
static uint8_t *dup_exact(const char *s, size_t len)
{
	uint8_t *p = moat_malloc(len ? len : 1);
	assert_non_null(p);
	memcpy(p, s, len);
	return p;
}

static bool name_valid(const char *s)
{
	size_t n = strlen(s);
	uint8_t *p = dup_exact(s, n);
	bool r = moat_topic_name_valid(p, n);
	moat_free(p);
	return r;
}

static bool filter_valid(const char *s)
{
	size_t n = strlen(s);
	uint8_t *p = dup_exact(s, n);
	bool r = moat_topic_filter_valid(p, n);
	moat_free(p);
	return r;
}

static bool matches(const char *f, const char *t)
{
	size_t fl = strlen(f), tl = strlen(t);
	uint8_t *fp = dup_exact(f, fl);
	uint8_t *tp = dup_exact(t, tl);
	bool r = moat_topic_matches(fp, fl, tp, tl);
	moat_free(fp);
	moat_free(tp);
	return r;
}

struct str_case {
	const char *s;
	bool expect;
};

static void test_topic_name_valid(void **state)
{
	(void)state;
	static const struct str_case t[] = {
		{"a", true},
		{"sport/tennis/player1", true},
		{"/", true},
		{"//", true},
		{"/finance", true},
		{"a//b", true},
		{"a/b/", true},
		{" ", true},
		{"$SYS/broker/load", true},
		{"ACCOUNTS", true},
		{"sport/tennis/\xC3\xA9", true}, /* UTF-8 checked elsewhere */
		{"", false},                     /* [MQTT-4.7.3-1] */
		{"+", false},                    /* [MQTT-3.3.2-2] */
		{"#", false},
		{"a/+", false},
		{"a/#", false},
		{"sport+", false},
		{"a#b", false},
		{"+/x", false},
	};
	for (size_t i = 0; i < MOAT_ARRAY_LEN(t); i++)
		if (name_valid(t[i].s) != t[i].expect)
			fail_msg("name '%s': expected %d", t[i].s, t[i].expect);
}

static void test_topic_filter_valid(void **state)
{
	(void)state;
	static const struct str_case t[] = {
		/* §4.7.1.2 multi-level wildcard */
		{"#", true},
		{"sport/#", true},
		{"sport/tennis/#", true},
		{"sport/tennis/player1/#", true},
		{"/#", true},
		{"$SYS/#", true},
		{"sport/tennis#", false},          /* [MQTT-4.7.1-2] */
		{"sport/tennis/#/ranking", false}, /* not last */
		{"#/x", false},
		{"##", false},
		{"a/#/", false},
		{"a#", false},
		{"#a", false},
		/* §4.7.1.3 single-level wildcard */
		{"+", true},
		{"+/+", true},
		{"/+", true},
		{"+/", true},
		{"+/tennis/#", true},
		{"sport/+/player1", true},
		{"sport/+", true},
		{"+/+/+", true},
		{"sport+", false}, /* [MQTT-4.7.1-3] */
		{"+sport", false},
		{"++", false},
		{"a/b+/c", false},
		{"a/+b/c", false},
		{"+#", false},
		{"#+", false},
		/* plain filters, empty levels */
		{"a", true},
		{"/", true},
		{"a//b", true},
		{"/finance", true},
		{"$SYS/monitor/Clients", true},
		{"", false}, /* [MQTT-4.7.3-1] */
	};
	for (size_t i = 0; i < MOAT_ARRAY_LEN(t); i++)
		if (filter_valid(t[i].s) != t[i].expect)
			fail_msg("filter '%s': expected %d", t[i].s,
				 t[i].expect);
}

struct match_case {
	const char *filter;
	const char *topic;
	bool expect;
};

static const struct match_case match_cases[] = {
	/* §4.7.1.2 */
	{"sport/tennis/player1/#", "sport/tennis/player1", true},
	{"sport/tennis/player1/#", "sport/tennis/player1/ranking", true},
	{"sport/tennis/player1/#", "sport/tennis/player1/score/wimbledon", true},
	{"sport/tennis/player1/#", "sport/tennis/player2", false},
	{"sport/tennis/player1/#", "sport/tennis", false},
	{"sport/#", "sport", true}, /* '#' includes the parent level */
	{"sport/#", "sport/", true},
	{"sport/#", "sports", false},
	{"sport/#", "sport/tennis/x", true},
	{"#", "sport", true},
	{"#", "/", true},
	{"#", "a/b/c", true},
	{"/#", "/", true},
	{"/#", "/a", true},
	{"/#", "a", false},
	/* §4.7.1.3 */
	{"sport/tennis/+", "sport/tennis/player1", true},
	{"sport/tennis/+", "sport/tennis/player2", true},
	{"sport/tennis/+", "sport/tennis/player1/ranking", false},
	{"sport/tennis/+", "sport/tennis", false},
	{"sport/+", "sport", false},
	{"sport/+", "sport/", true},
	{"+", "sport", true},
	{"+", "sport/", false},
	{"+", "/finance", false},
	{"+/+", "/finance", true},
	{"/+", "/finance", true},
	{"/+", "finance", false},
	{"+/+", "/", true},
	{"+", "/", false},
	{"+/tennis/#", "sport/tennis/player1", true},
	{"+/tennis/#", "sport/tennis", true},
	{"+/tennis/#", "sport/golf/x", false},
	{"sport/+/player1", "sport/tennis/player1", true},
	{"sport/+/player1", "sport//player1", true},
	{"sport/+/player1", "sport/player1", false},
	{"+/#", "a", true},
	{"+/+/#", "a", false},
	/* §4.7.2 topics beginning with $ [MQTT-4.7.2-1] */
	{"#", "$SYS/monitor/Clients", false},
	{"+/monitor/Clients", "$SYS/monitor/Clients", false},
	{"$SYS/#", "$SYS/monitor/Clients", true},
	{"$SYS/monitor/+", "$SYS/monitor/Clients", true},
	{"$SYS/#", "$SYS", true},
	{"+", "$SYS", false},
	{"#", "$", false},
	{"+/#", "$SYS/x", false},
	{"a/+", "a/$x", true}, /* '$' only matters at the start */
	{"#", "a/$b", true},
	{"$SYS", "$SYS", true},
	/* empty levels */
	{"a//b", "a//b", true},
	{"a/+/b", "a//b", true},
	{"a/+/b", "a/b", false},
	{"+/+/+", "a//b", true},
	{"a/b", "a//b", false},
	{"a//b", "a/b", false},
	{"/", "/", true},
	{"//", "/", false},
	/* literal comparisons: exact, case sensitive [MQTT-4.7.3-4] */
	{"ACCOUNTS", "Accounts", false},
	{"ACCOUNTS", "ACCOUNTS", true},
	{"a/b", "a/bc", false},
	{"a/bc", "a/b", false},
	{"abc", "ab", false},
	{"ab", "abc", false},
	{"a/b", "a/b/", false},
	{"a/b/", "a/b", false},
	{"a/b/", "a/b/", true},
	{"sport/tennis", "sport/tennis", true},
	{"a/b/c", "a/b", false},
	{"a", "a/b", false},
};

static void test_topic_matches_table(void **state)
{
	(void)state;
	for (size_t i = 0; i < MOAT_ARRAY_LEN(match_cases); i++) {
		const struct match_case *c = &match_cases[i];
		/* the table only uses valid filters and names */
		if (!filter_valid(c->filter) || !name_valid(c->topic))
			fail_msg("bad table row %zu", i);
		if (matches(c->filter, c->topic) != c->expect)
			fail_msg("'%s' vs '%s': expected %s", c->filter,
				 c->topic, c->expect ? "match" : "no match");
	}
}

static void test_topic_levels(void **state)
{
	(void)state;
	static const struct {
		const char *s;
		size_t n;
	} t[] = {
		{"", 1},     {"a", 1},     {"a/b", 2},     {"/", 2},
		{"//", 3},   {"/finance", 2}, {"a//b", 3},  {"a/b/", 3},
		{"sport/tennis/player1/#", 4},
	};
	for (size_t i = 0; i < MOAT_ARRAY_LEN(t); i++) {
		size_t n = strlen(t[i].s);
		uint8_t *p = dup_exact(t[i].s, n);
		size_t got = moat_topic_levels(p, n);
		moat_free(p);
		if (got != t[i].n)
			fail_msg("levels('%s') = %zu, expected %zu", t[i].s,
				 got, t[i].n);
	}
}

/* ---- reference model -------------------------------------------------- */

/* Level i of s (0-based): start offset and length; false past the end. */
static bool ref_level(const char *s, size_t len, size_t idx, size_t *off,
		      size_t *n)
{
	size_t start = 0, k = 0;
	*off = *n = 0;
	for (size_t i = 0; i <= len; i++) {
		if (i == len || s[i] == '/') {
			if (k == idx) {
				*off = start;
				*n = i - start;
				return true;
			}
			k++;
			start = i + 1;
		}
	}
	return false;
}

static size_t ref_count(const char *s, size_t len)
{
	size_t n = 1;
	for (size_t i = 0; i < len; i++)
		n += s[i] == '/';
	return n;
}

static bool ref_matches(const char *f, size_t fl, const char *t, size_t tl)
{
	if (tl && t[0] == '$' && fl && (f[0] == '+' || f[0] == '#'))
		return false;
	size_t fn = ref_count(f, fl), tn = ref_count(t, tl);
	for (size_t i = 0; i < fn; i++) {
		size_t fo, fll, to, tll;
		ref_level(f, fl, i, &fo, &fll);
		if (fll == 1 && f[fo] == '#')
			return true;
		if (i >= tn)
			return false;
		ref_level(t, tl, i, &to, &tll);
		if (fll == 1 && f[fo] == '+')
			continue;
		if (fll != tll || memcmp(f + fo, t + to, fll) != 0)
			return false;
	}
	return fn == tn;
}

/* All strings of length 1..maxlen over alphabet, as a flat array of
 * fixed-width slots. */
static char *gen_strings(const char *alpha, size_t maxlen, size_t *count)
{
	size_t na = strlen(alpha), total = 0, pw = 1;
	for (size_t l = 1; l <= maxlen; l++) {
		pw *= na;
		total += pw;
	}
	char *out = moat_calloc(total, maxlen + 1);
	assert_non_null(out);
	size_t k = 0;
	for (size_t l = 1; l <= maxlen; l++) {
		size_t combos = 1;
		for (size_t j = 0; j < l; j++)
			combos *= na;
		for (size_t c = 0; c < combos; c++, k++) {
			size_t v = c;
			for (size_t j = 0; j < l; j++) {
				out[k * (maxlen + 1) + j] = alpha[v % na];
				v /= na;
			}
		}
	}
	*count = total;
	return out;
}

static void test_topic_matches_reference_model(void **state)
{
	(void)state;
	size_t nf, nt;
	const size_t flen = 5, tlen = 5;
	char *filters = gen_strings("a/+#$", flen, &nf);
	char *topics = gen_strings("ab/$", tlen, &nt);
	size_t checked = 0, matched = 0;
	for (size_t i = 0; i < nf; i++) {
		const char *f = filters + i * (flen + 1);
		if (!filter_valid(f))
			continue;
		size_t fl = strlen(f);
		for (size_t j = 0; j < nt; j++) {
			const char *t = topics + j * (tlen + 1);
			size_t tl = strlen(t);
			bool want = ref_matches(f, fl, t, tl);
			bool got = moat_topic_matches((const uint8_t *)f, fl,
						      (const uint8_t *)t, tl);
			if (want != got)
				fail_msg("'%s' vs '%s': model %d, moat %d", f,
					 t, want, got);
			checked++;
			matched += got;
		}
	}
	/* the generator really exercised both outcomes */
	assert_true(checked > 100000);
	assert_true(matched > 1000);
	moat_free(filters);
	moat_free(topics);
}

/* A filter without wildcards matches exactly the identical name. */
static void test_topic_literal_matches_iff_equal(void **state)
{
	(void)state;
	size_t n;
	const size_t len = 4;
	char *s = gen_strings("ab/", len, &n);
	for (size_t i = 0; i < n; i++) {
		const char *f = s + i * (len + 1);
		for (size_t j = 0; j < n; j++) {
			const char *t = s + j * (len + 1);
			bool want = strcmp(f, t) == 0;
			if (matches(f, t) != want)
				fail_msg("'%s' vs '%s'", f, t);
		}
	}
	moat_free(s);
}

/* Filter validity agrees with a level-based definition. */
static void test_topic_filter_valid_model(void **state)
{
	(void)state;
	size_t n;
	const size_t len = 6;
	char *s = gen_strings("a/+#", len, &n);
	for (size_t i = 0; i < n; i++) {
		const char *f = s + i * (len + 1);
		size_t fl = strlen(f);
		size_t levels = ref_count(f, fl);
		bool want = true;
		for (size_t k = 0; k < levels && want; k++) {
			size_t o, l;
			ref_level(f, fl, k, &o, &l);
			for (size_t c = o; c < o + l; c++) {
				if (f[c] == '+' && l != 1)
					want = false;
				if (f[c] == '#' && (l != 1 || k + 1 != levels))
					want = false;
			}
		}
		if (filter_valid(f) != want)
			fail_msg("filter '%s': expected %d", f, want);
	}
	moat_free(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_topic_name_valid),
		T(test_topic_filter_valid),
		T(test_topic_matches_table),
		T(test_topic_levels),
		T(test_topic_matches_reference_model),
		T(test_topic_literal_matches_iff_equal),
		T(test_topic_filter_valid_model),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
