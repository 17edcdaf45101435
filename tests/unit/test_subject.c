/* Unit tests for the MQTT topic <-> NATS subject mapping
 * (src/cluster/subject.c, docs/cluster.md "Subject mapping").
 *
 * Table cases pin the documented escaping; property tests over random
 * topics and filters (fixed seed) check that it is lossless (decode(encode
 * (t)) == t), canonical (only encode's image decodes) and that NATS
 * matching of the one or two filter subjects agrees with MQTT matching
 * (moat_topic_matches) on every pair. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "cluster/subject.h"
#include "codec/mqtt_codec.h"

#include "test_util.h"

static char sbuf[MOAT_SUBJECT_BUF];

static const char *subj(const char *prefix, const char *topic)
{
	int n = moat_subject_from_topic(prefix, (const uint8_t *)topic,
					strlen(topic), sbuf, sizeof(sbuf));
	return n < 0 ? moat_err_name(n) : sbuf;
}

static const char *fsubj(const char *filter, size_t *parent)
{
	int n = moat_subject_from_filter("m", (const uint8_t *)filter,
					 strlen(filter), sbuf, sizeof(sbuf),
					 parent);
	return n < 0 ? moat_err_name(n) : sbuf;
}

/* The topic of subject s under prefix, as a string, or the error name. */
static const char *topic_of(const char *prefix, const char *s)
{
	static char out[512];
	int n = moat_subject_to_topic(prefix, s, strlen(s), (uint8_t *)out,
				      sizeof(out) - 1);
	if (n < 0)
		return moat_err_name(n);
	out[n] = '\0';
	return out;
}

static void test_topic_table(void **state)
{
	(void)state;
	static const char *cases[][2] = {
		{"a/b", "m.t.a.b"},
		{"sensors/t-1/temp_c", "m.t.sensors.t-1.temp_c"},
		{"a.b/c*d/e>f", "m.t.a=2Eb.c=2Ad.e=3Ef"},
		{"with space/tab\t", "m.t.with=20space.tab=09"},
		{"/", "m.t.=.="},
		{"a//b/", "m.t.a.=.b.="},
		{"$SYS/broker", "m.d.=24SYS.broker"},
		{"a/$b", "m.t.a.=24b"},
		{"=/==", "m.t.=3D.=3D=3D"},
		{"caf\xc3\xa9", "m.t.caf=C3=A9"},
		{"\xe2\x82\xac/\xf0\x9f\x98\x80", "m.t.=E2=82=AC.=F0=9F=98=80"},
		{"*/>", "m.t.=2A.=3E"},
	};
	for (size_t i = 0; i < MOAT_ARRAY_LEN(cases); i++) {
		assert_string_equal(subj("m", cases[i][0]), cases[i][1]);
		assert_string_equal(topic_of("m", cases[i][1]), cases[i][0]);
	}
	/* other prefixes, and none (KV keys) */
	assert_string_equal(subj("moat.q1", "a/b"), "moat.q1.t.a.b");
	assert_string_equal(topic_of("moat.q1", "moat.q1.t.a.b"), "a/b");
	assert_string_equal(subj("", "a/b"), "t.a.b");
	assert_string_equal(topic_of("", "t.a.b"), "a/b");
	assert_string_equal(subj("", "$x"), "d.=24x");
}

static void test_filter_table(void **state)
{
	(void)state;
	size_t p;
	assert_string_equal(fsubj("#", &p), "m.t.>");
	assert_int_equal(p, 0); /* no parent topic under "#" */
	assert_string_equal(fsubj("a/#", &p), "m.t.a.>");
	assert_int_equal(p, strlen("m.t.a"));
	assert_string_equal(fsubj("+", &p), "m.t.*");
	assert_int_equal(p, 0);
	assert_string_equal(fsubj("+/+/#", &p), "m.t.*.*.>");
	assert_int_equal(p, strlen("m.t.*.*"));
	assert_string_equal(fsubj("$SYS/#", &p), "m.d.=24SYS.>");
	assert_int_equal(p, strlen("m.d.=24SYS"));
	assert_string_equal(fsubj("a//+", &p), "m.t.a.=.*");
	assert_string_equal(fsubj("a.b/c d", &p), "m.t.a=2Eb.c=20d");
	assert_int_equal(p, 0);
	/* invalid filters */
	assert_string_equal(fsubj("a/#/b", &p), "MOAT_EINVAL");
	assert_string_equal(fsubj("a+", &p), "MOAT_EINVAL");
	assert_string_equal(fsubj("", &p), "MOAT_EINVAL");
	assert_string_equal(fsubj("\xff", &p), "MOAT_EINVAL");
}

static void test_invalid_input(void **state)
{
	(void)state;
	char out[64];
	/* not topic names */
	assert_string_equal(subj("m", ""), "MOAT_EINVAL");
	assert_string_equal(subj("m", "a/+"), "MOAT_EINVAL");
	assert_string_equal(subj("m", "#"), "MOAT_EINVAL");
	assert_string_equal(subj("m", "\xc3"), "MOAT_EINVAL");
	assert_string_equal(subj("m", "\xc0\x80"), "MOAT_EINVAL");
	assert_int_equal(moat_subject_from_topic("m", (const uint8_t *)"a\0b",
						 3, out, sizeof(out)),
			 MOAT_EINVAL);
	/* bad prefixes */
	static const char *bad[] = {".a", "a.", "a..b", "a.*", "a.>", "a b",
				    "a=b", "a.$b"};
	for (size_t i = 0; i < MOAT_ARRAY_LEN(bad); i++) {
		assert_false(moat_subject_prefix_valid(bad[i]));
		assert_string_equal(subj(bad[i], "a"), "MOAT_EINVAL");
	}
	assert_true(moat_subject_prefix_valid(""));
	assert_true(moat_subject_prefix_valid("moat.m-1.x_y"));
}

/* Decoding accepts exactly encode's image: anything a peer on NATS could
 * send that no node would have built is MOAT_EMALFORMED. */
static void test_decode_strict(void **state)
{
	(void)state;
	static const char *bad[] = {
		"m",	      "m.",	    "m.t",	 "m.t.",      "m.x.a",
		"m.tt.a",     "n.t.a",	    "mm.t.a",	 "m.t.a.",    "m.t..a",
		"m.t.a=41",   "m.t.=2e",    "m.t.=2",	 "m.t.a=",    "m.t.==",
		"m.t.=3",     "m.t.*",	    "m.t.>",	 "m.t.a b",   "m.t.a$",
		"m.t.=2B",    "m.t.=23",    "m.t.=00",	 "m.t.=FF",   "m.t.=C3",
		"m.t.=C0=80", "m.t.=24SYS", "m.d.SYS",	 "m.d.=",     "m.t.=2F",
		"m.t.=ED=A0=80",
	};
	for (size_t i = 0; i < MOAT_ARRAY_LEN(bad); i++) {
		const char *r = topic_of("m", bad[i]);
		if (strcmp(r, "MOAT_EMALFORMED"))
			fail_msg("'%s' decoded to '%s'", bad[i], r);
	}
	/* a "/" inside a level would split it */
	assert_string_equal(topic_of("m", "m.t.a.b"), "a/b");
	/* room for the topic */
	uint8_t small[3];
	assert_int_equal(moat_subject_to_topic("m", "m.t.a.b", 7, small, 2),
			 MOAT_ELIMIT);
	assert_int_equal(moat_subject_to_topic("m", "m.t.a.b", 7, small, 3), 3);
}

static void test_tokens(void **state)
{
	(void)state;
	char out[32];
	uint8_t back[16];
	assert_int_equal(moat_subject_token(NULL, 0, out, sizeof(out)), 1);
	assert_string_equal(out, "=");
	assert_int_equal(moat_subject_untoken("=", 1, back, sizeof(back)), 0);
	assert_int_equal(moat_subject_token((const uint8_t *)"g/1", 3, out,
					    sizeof(out)),
			 5);
	assert_string_equal(out, "g=2F1");
	assert_int_equal(moat_subject_untoken(out, 5, back, sizeof(back)), 3);
	assert_memory_equal(back, "g/1", 3);
	/* client ids may hold NUL-free anything; tokens hold any byte */
	assert_int_equal(moat_subject_token((const uint8_t *)"\0.", 2, out,
					    sizeof(out)),
			 6);
	assert_string_equal(out, "=00=2E");
	assert_int_equal(moat_subject_untoken("", 0, back, 16),
			 MOAT_EMALFORMED);
	assert_int_equal(moat_subject_untoken("a.b", 3, back, 16),
			 MOAT_EMALFORMED);
	/* cap: the token and its NUL */
	assert_int_equal(moat_subject_token((const uint8_t *)"abc", 3, out, 3),
			 MOAT_ELIMIT);
	assert_int_equal(moat_subject_token((const uint8_t *)"abc", 3, out, 4),
			 3);
	assert_int_equal(moat_subject_token((const uint8_t *)".", 1, out, 0),
			 MOAT_ELIMIT);
}

/* MOAT_SUBJECT_MAX holds whatever cap the caller gives. */
static void test_length_bounds(void **state)
{
	(void)state;
	static uint8_t topic[MOAT_SUBJECT_MAX];
	static char big[MOAT_SUBJECT_MAX + 64];
	size_t head = strlen("m.t.");
	size_t fit = MOAT_SUBJECT_MAX - head;

	memset(topic, 'x', sizeof(topic));
	assert_int_equal(moat_subject_from_topic("m", topic, fit, big,
						 sizeof(big)),
			 MOAT_SUBJECT_MAX);
	assert_int_equal(moat_subject_from_topic("m", topic, fit + 1, big,
						 sizeof(big)),
			 MOAT_ELIMIT);
	/* escaped bytes count three times */
	memset(topic, '.', sizeof(topic));
	assert_int_equal(moat_subject_from_topic("m", topic, fit / 3, big,
						 sizeof(big)),
			 (int)(head + fit / 3 * 3));
	assert_int_equal(moat_subject_from_topic("m", topic, fit / 3 + 1, big,
						 sizeof(big)),
			 MOAT_ELIMIT);
	/* the caller's buffer */
	assert_int_equal(moat_subject_from_topic("m", topic, 2, big, 10),
			 MOAT_ELIMIT);
	assert_int_equal(moat_subject_from_topic("m", topic, 2, big, 11), 10);
	/* decoding refuses what no node would have sent */
	memset(big, 'x', sizeof(big));
	memcpy(big, "m.t.", 4);
	uint8_t *out = moat_malloc(sizeof(big));
	assert_non_null(out);
	assert_int_equal(moat_subject_to_topic("m", big, MOAT_SUBJECT_MAX, out,
					       sizeof(big)),
			 (int)fit);
	assert_int_equal(moat_subject_to_topic("m", big, MOAT_SUBJECT_MAX + 1,
					       out, sizeof(big)),
			 MOAT_EMALFORMED);
	moat_free(out);
}

static void test_nats_matching(void **state)
{
	(void)state;
	static const struct {
		const char *sub, *s;
		bool m;
	} cases[] = {
		{"a.b", "a.b", true},	  {"a.b", "a.c", false},
		{"a.*", "a.b", true},	  {"a.*", "a", false},
		{"a.*", "a.b.c", false},  {"a.>", "a.b.c", true},
		{"a.>", "a", false},	  {">", "a", true},
		{"*.*", "a.b", true},	  {"a", "a.b", false},
		{"a.b.c", "a.b", false},  {"ab", "a", false},
	};
	for (size_t i = 0; i < MOAT_ARRAY_LEN(cases); i++)
		assert_int_equal(moat_subject_matches(cases[i].sub,
						      strlen(cases[i].sub),
						      cases[i].s,
						      strlen(cases[i].s)),
				 cases[i].m);
}

/* ---- property tests over random topics and filters ---- */

static uint64_t rng = 0x9E3779B97F4A7C15u;

static uint32_t rnd(uint32_t n)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return (uint32_t)(rng % n);
}

/* Level pieces: plain, every escaped class, UTF-8, '$' and '='. */
static const char *const pieces[] = {
	"a", "b", "Z9", "_-", ".", "*", ">", " ", "\t", "$", "=", "=41",
	"\xc3\xa9", "\xe2\x82\xac", "\xf0\x9f\x98\x80", "\x01", "\x7f", "",
};

static size_t random_level(char *out)
{
	size_t n = 0, k = rnd(4);
	for (size_t i = 0; i < k; i++) {
		const char *p = pieces[rnd(MOAT_ARRAY_LEN(pieces))];
		memcpy(out + n, p, strlen(p));
		n += strlen(p);
	}
	return n;
}

/* A random topic (filter: with '+' and a final '#') of 1..5 levels. */
static size_t random_name(char *out, bool filter)
{
	size_t n = 0, levels = 1 + rnd(5);
	for (size_t l = 0; l < levels; l++) {
		if (l)
			out[n++] = '/';
		if (filter && rnd(4) == 0)
			out[n++] = '+';
		else if (filter && l + 1 == levels && rnd(3) == 0)
			out[n++] = '#';
		else
			n += random_level(out + n);
	}
	if (n == 0) /* the empty topic is not one */
		out[n++] = 'a';
	return n;
}

static void test_roundtrip_random(void **state)
{
	(void)state;
	char t[256], s[MOAT_SUBJECT_BUF];
	uint8_t back[256];

	for (int i = 0; i < 20000; i++) {
		size_t n = random_name(t, false);
		int sl = moat_subject_from_topic("moat.m", (const uint8_t *)t,
						 n, s, sizeof(s));
		assert_true(sl > 0);
		assert_int_equal(strlen(s), (size_t)sl);
		/* only [A-Za-z0-9_=-] and '.': a valid NATS subject and KV key */
		assert_int_equal(strspn(s, "abcdefghijklmnopqrstuvwxyz"
					   "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
					   "0123456789_=-."),
				 (size_t)sl);
		int bl = moat_subject_to_topic("moat.m", s, (size_t)sl, back,
					       sizeof(back));
		assert_int_equal(bl, (int)n);
		assert_memory_equal(back, t, n);
	}
}

/* The subject(s) of filter f match the subject of topic t exactly when
 * MQTT says f matches t. */
static void test_matching_random(void **state)
{
	(void)state;
	char f[256], t[256], fs[MOAT_SUBJECT_BUF], ts[MOAT_SUBJECT_BUF];
	int matched = 0;

	for (int i = 0; i < 50000; i++) {
		size_t fl = random_name(f, true);
		size_t tl;
		size_t parent;
		/* Half the topics are built from the filter, so that many
		 * match. */
		if (rnd(2)) {
			tl = 0;
			for (size_t k = 0; k < fl; k++) {
				if (f[k] == '+')
					tl += random_level(t + tl);
				else if (f[k] == '#') {
					if (tl && rnd(3) == 0)
						tl--; /* "a/#" vs "a" */
					else
						tl += random_level(t + tl);
				} else
					t[tl++] = f[k];
			}
			if (tl == 0)
				t[tl++] = 'a';
		} else {
			tl = random_name(t, false);
		}
		if (!moat_topic_name_valid((const uint8_t *)t, tl))
			continue;
		int fsl = moat_subject_from_filter("m", (const uint8_t *)f, fl,
						   fs, sizeof(fs), &parent);
		int tsl = moat_subject_from_topic("m", (const uint8_t *)t, tl,
						  ts, sizeof(ts));
		assert_true(fsl > 0 && tsl > 0);
		bool nats = moat_subject_matches(fs, (size_t)fsl, ts,
						 (size_t)tsl) ||
			    (parent && moat_subject_matches(fs, parent, ts,
							    (size_t)tsl));
		bool mqtt = moat_topic_matches((const uint8_t *)f, fl,
					       (const uint8_t *)t, tl);
		if (nats != mqtt)
			fail_msg("filter '%.*s' topic '%.*s': nats %d mqtt %d",
				 (int)fl, f, (int)tl, t, nats, mqtt);
		matched += mqtt;
	}
	/* the generator exercises both outcomes */
	assert_true(matched > 5000);
}

/* Random subjects: whatever decodes re-encodes to the same bytes. */
static void test_decode_random(void **state)
{
	(void)state;
	static const char alpha[] = "ab.=*>24AF0tde";
	char s[40], again[MOAT_SUBJECT_BUF];
	uint8_t t[64];
	int ok = 0;

	for (int i = 0; i < 100000; i++) {
		size_t n = 2 + rnd(20);
		memcpy(s, rnd(2) ? "t." : "d.", 2);
		for (size_t k = 2; k < n; k++)
			s[k] = alpha[rnd(sizeof(alpha) - 1)];
		int tl = moat_subject_to_topic("", s, n, t, sizeof(t));
		if (tl < 0) {
			assert_int_equal(tl, MOAT_EMALFORMED);
			continue;
		}
		ok++;
		int sl = moat_subject_from_topic("", t, (size_t)tl, again,
						 sizeof(again));
		assert_int_equal(sl, (int)n);
		assert_memory_equal(again, s, n);
	}
	assert_true(ok > 1000);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_topic_table),	   T(test_filter_table),
		T(test_invalid_input),	   T(test_decode_strict),
		T(test_tokens),		   T(test_length_bounds),
		T(test_nats_matching),	   T(test_roundtrip_random),
		T(test_matching_random),   T(test_decode_random),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
