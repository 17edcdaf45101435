/* Unit tests for the leak detector's structure cache (leak_shape.c): a
 * topic's clean payload structure is reused only when it proves the new
 * payload clean.  Same shape with a changed value that leaks: found.
 * Keyed members (coordinates, health readings, names, passwords) are
 * never cached, so every message reaches the field rules and the tracks.
 * Shape collisions (same topic set, same length, same layout) hide
 * nothing.  And a differential test: thousands of messages on a few
 * topics, values drawn from harmless and harmful pools, scanned with the
 * cache (moat_leak_scan_msg, one scratch) and without it (moat_leak_scan,
 * another scratch) must give the same findings. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "leak/leak_int.h"

#include "test_util.h"

static struct moat_leak_db *db;
static struct moat_leak_scratch *cached, *plain;
static const uint8_t key[MOAT_LEAK_KEY_LEN] = "unit-test-install-key-0123456789";

static int setup(void **state)
{
	(void)state;
	struct moat_leak_opts o = {0, 0, 0, key};
	char err[256];
	if (moat_leak_db_new(&o, &db, err, sizeof(err)) != MOAT_OK)
		return -1;
	return moat_leak_scratch_new(db, &cached) == MOAT_OK &&
			       moat_leak_scratch_new(db, &plain) == MOAT_OK
		       ? 0
		       : -1;
}

static int teardown(void **state)
{
	(void)state;
	moat_leak_scratch_free(cached);
	moat_leak_scratch_free(plain);
	moat_leak_db_free(db);
	return 0;
}

/* The payload findings of msg on topic t, through the cache; *hit: the
 * cache answered (looked at before the scan). */
static struct moat_leak_result rc_res;
static size_t with_cache(const char *t, const char *msg, bool *hit)
{
	size_t tn = strlen(t), pn = strlen(msg);
	uint8_t *p = malloc(pn ? pn : 1); /* exact size: ASan sees overreads */
	assert_non_null(p);
	memcpy(p, msg, pn);
	uint32_t h = moat__leak_topic_hash((const uint8_t *)t, tn);
	bool was = moat__leak_shape_hit(cached, h, (const uint8_t *)t, tn, p,
					pn);
	if (hit)
		*hit = was;
	int n = moat_leak_scan_msg(db, cached, (const uint8_t *)t, tn, p, pn,
				   &rc_res);
	assert_true(n >= 0);
	free(p);
	return rc_res.total;
}

static bool found(enum moat_leak_category c)
{
	return (rc_res.categories & MOAT_LEAK_BIT(c)) != 0;
}

/* ---- a cached shape, then a value that leaks ------------------------------ */

static void test_changed_values(void **state)
{
	(void)state;
	const char *t = "tele/plant-3/sensor-0042/SENSOR";
	bool hit;
	assert_int_equal(with_cache(t, "{\"a\":12,\"b\":\"ok\",\"id\":\"00ab\","
				       "\"Time\":\"2024-05-17T10:21:07\"}",
				    &hit), 0);
	assert_false(hit);
	/* harmless changes: answered by the cache */
	assert_int_equal(with_cache(t, "{\"a\":-7.25,\"b\":\"ok\",\"id\":"
				       "\"ffe0913\",\"Time\":\"2025-01-02T03:"
				       "04:05.123Z\"}",
				    &hit), 0);
	assert_true(hit);
	/* a number that became an e-mail, a card, an SSN-long number */
	with_cache(t, "{\"a\":\"jane.doe@example.com\",\"b\":\"ok\",\"id\":"
		      "\"00ab\",\"Time\":\"2024-05-17T10:21:07\"}", &hit);
	assert_false(hit);
	assert_true(found(MOAT_LEAK_EMAIL));
	with_cache(t, "{\"a\":4111111111111111,\"b\":\"ok\",\"id\":\"00ab\","
		      "\"Time\":\"2024-05-17T10:21:07\"}", &hit);
	assert_false(hit);
	assert_true(found(MOAT_LEAK_PAYMENT_CARD));
	/* a hex id that is all digits: a card */
	with_cache(t, "{\"a\":12,\"b\":\"ok\",\"id\":\"4111111111111111\","
		      "\"Time\":\"2024-05-17T10:21:07\"}", &hit);
	assert_false(hit);
	assert_true(found(MOAT_LEAK_PAYMENT_CARD));
	/* a time that became an address; a fixed string that changed */
	with_cache(t, "{\"a\":12,\"b\":\"ok\",\"id\":\"00ab\",\"Time\":"
		      "\"10.0.0.1\"}", &hit);
	assert_false(hit);
	assert_true(found(MOAT_LEAK_PRIVATE_IPV4));
	with_cache(t, "{\"a\":12,\"b\":\"10.1.2.3\",\"id\":\"00ab\","
		      "\"Time\":\"2024-05-17T10:21:07\"}", &hit);
	assert_false(hit);
	assert_true(found(MOAT_LEAK_PRIVATE_IPV4));
	/* other keys (the same length): scanned */
	with_cache(t, "{\"a\":12,\"b\":\"ok\",\"id\":\"00ab\",\"pass\":"
		      "\"Tr0ub4dor&3xyz\"}", &hit);
	assert_false(hit);
	assert_true(found(MOAT_LEAK_CREDENTIAL));
	/* and the clean shape still answers afterwards */
	assert_int_equal(with_cache(t, "{\"a\":13,\"b\":\"ok\",\"id\":\"00ab\","
				       "\"Time\":\"2024-05-17T10:21:08\"}",
				    &hit), 0);
	assert_true(hit); /* the leaking messages were not stored */
	assert_int_equal(with_cache(t, "{\"a\":14,\"b\":\"ok\",\"id\":\"00ac\","
				       "\"Time\":\"2024-05-17T10:21:09\"}",
				    &hit), 0);
	assert_true(hit);
}

/* Numbers the shape pass hands to extractors never pass as slots. */
static void test_number_shapes(void **state)
{
	(void)state;
	const char *t = "dt/lab/meter-7/up";
	bool hit;
	assert_int_equal(with_cache(t, "{\"u\":1,\"w\":2}", &hit), 0);
	static const char *const nums[] = {
		"490154203237518",       /* IMEI, Luhn */
		"89014103211118510720",  /* ICCID */
		"5555555555554444",      /* card */
		"078051120",             /* 9 digits (SSN shape) */
		"1.5e10",                /* exponent */
		"007",                   /* not JSON */
	};
	for (size_t i = 0; i < MOAT_ARRAY_LEN(nums); i++) {
		char m[128];
		snprintf(m, sizeof(m), "{\"u\":%s,\"w\":2}", nums[i]);
		with_cache(t, m, &hit);
		assert_false(hit);
	}
	/* long harmless numbers do: epoch seconds and milliseconds */
	with_cache(t, "{\"u\":1,\"w\":2}", &hit);
	assert_int_equal(with_cache(t, "{\"u\":1700000000,\"w\":1700000000123}",
				    &hit), 0);
	assert_true(hit);
}

/* ---- what is never cached ----------------------------------------------- */

static void test_keyed_never_cached(void **state)
{
	(void)state;
	const char *t = "owntracks/jane/phone";
	bool hit;
	/* imprecise coordinates: clean, but the keys made rules look */
	with_cache(t, "{\"lat\":52.5,\"lon\":13.4}", &hit);
	with_cache(t, "{\"lat\":52.6,\"lon\":13.5}", &hit);
	assert_false(hit);
	/* a track: every precise position reaches the rules */
	for (int i = 0; i < 6; i++) {
		char m[96];
		snprintf(m, sizeof(m), "{\"lat\":52.52%04d,\"lon\":13.40%04d,"
				       "\"acc\":5}", 11 * i, 7 * i);
		with_cache(t, m, &hit);
		assert_false(hit);
		assert_true(found(MOAT_LEAK_GEOLOCATION));
		assert_true(rc_res.findings[0].flags & MOAT_LEAK_F_PRECISE);
	}
	/* a heart rate of 0 is no reading; 72 is */
	t = "ward/7/bed/3";
	with_cache(t, "{\"hr\":0,\"seq\":1}", &hit);
	with_cache(t, "{\"hr\":72,\"seq\":2}", &hit);
	assert_false(hit);
	assert_true(found(MOAT_LEAK_HEALTH));
	/* a name under a person key, a record naming its value */
	t = "home/ha/state";
	with_cache(t, "{\"name\":\"x\",\"v\":1}", &hit);
	with_cache(t, "{\"name\":\"Jane Doe\",\"v\":1}", &hit);
	assert_false(hit);
	with_cache(t, "[{\"n\":\"hr\",\"v\":0}]", &hit);
	with_cache(t, "[{\"n\":\"hr\",\"v\":71}]", &hit);
	assert_false(hit);
	assert_true(found(MOAT_LEAK_HEALTH));
	/* numbers in arrays pair up as coordinates */
	t = "geo/x";
	with_cache(t, "{\"p\":[1,2]}", &hit);
	with_cache(t, "{\"p\":[52.520008,13.404954]}", &hit);
	assert_false(hit);
	assert_true(found(MOAT_LEAK_GEOLOCATION));
}

/* ---- collisions ---------------------------------------------------------- */

/* Topics of one set, messages of one length and layout: nothing crosses
 * from one to another, and a full set only evicts. */
static void test_collisions(void **state)
{
	(void)state;
	char topics[4][32];
	uint32_t want = 0;
	int n = 0;
	for (unsigned i = 0; n < 4 && i < 1000000; i++) {
		char t[32];
		snprintf(t, sizeof(t), "c/%u", i);
		uint32_t h = moat__leak_topic_hash((const uint8_t *)t,
						   strlen(t));
		uint32_t set = (h * 2) & (LK_SHAPES - 1);
		if (n == 0)
			want = set;
		if (set == want)
			memcpy(topics[n++], t, sizeof(t));
	}
	assert_int_equal(n, 4);
	bool hit;
	/* two topics in the set, the same clean layout */
	assert_int_equal(with_cache(topics[0], "{\"a\":1,\"b\":\"00\"}", &hit),
			 0);
	assert_int_equal(with_cache(topics[1], "{\"a\":1,\"b\":\"00\"}", &hit),
			 0);
	assert_int_equal(with_cache(topics[0], "{\"a\":2,\"b\":\"01\"}", &hit),
			 0);
	assert_true(hit);
	/* the same length and layout, another value kind: found */
	with_cache(topics[1], "{\"a\":1,\"b\":\"10.0.0.9\"}", &hit);
	assert_false(hit);
	assert_true(found(MOAT_LEAK_PRIVATE_IPV4));
	/* a third and fourth topic evict; each still scans its own */
	with_cache(topics[2], "{\"a\":1,\"b\":\"00\"}", &hit);
	with_cache(topics[3], "{\"a\":1,\"b\":\"00\"}", &hit);
	with_cache(topics[0], "{\"a\":\"x@example.org\",\"b\":\"00\"}", &hit);
	assert_false(hit);
	assert_true(found(MOAT_LEAK_EMAIL));
	/* a prefix or an extension of a cached payload is no hit */
	with_cache(topics[3], "{\"a\":1,\"b\":\"00\"}", &hit);
	with_cache(topics[3], "{\"a\":1,\"b\":\"00\"},\"c\":\"10.0.0.9\"}",
		   &hit);
	assert_false(hit);
	with_cache(topics[3], "{\"a\":1,\"b\":\"00", &hit);
	assert_false(hit);
}

/* Found by the differential test below: a run of digits that starts in
 * the last bytes a window of the shape pass looks at and goes past the
 * window was cut at its end (an ICCID became 17 digits, no ICCID). */
static void test_run_across_windows(void **state)
{
	(void)state;
	for (size_t pad = 0; pad < 140; pad++) {
		char m[256];
		snprintf(m, sizeof(m), "{\"a\":%*s89391618931090415651}",
			 (int)pad, "");
		struct moat_leak_result r;
		uint8_t *p = malloc(strlen(m));
		assert_non_null(p);
		memcpy(p, m, strlen(m));
		moat_leak_scan(db, plain, p, strlen(m), &r);
		free(p);
		if (!(r.categories & MOAT_LEAK_BIT(MOAT_LEAK_DEVICE_ID)))
			fail_msg("no ICCID with %zu spaces before it", pad);
	}
}

/* ---- with and without the cache, the same findings --------------------- */

static uint64_t rng = 0x2545f4914f6cdd1dULL;
static unsigned rnd(unsigned n)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return (unsigned)(rng % n);
}

static void digits_into(char *o, size_t n, unsigned first)
{
	o[0] = (char)('0' + first);
	for (size_t i = 1; i < n; i++)
		o[i] = (char)('0' + rnd(10));
	o[n] = '\0';
}

/* A value: mostly the harmless kinds the cache lets through, with every
 * kind of length and prefix the shape pass cares about, and leaks. */
enum { KINDS = 16 };

/* A kind for a member: mostly ones the cache lets through. */
static unsigned some_kind(void)
{
	static const unsigned harmless[] = {0, 1, 3, 6, 7, 8, 12, 13};
	return rnd(8) ? harmless[rnd(8)] : rnd(KINDS);
}

static void value(char *o, size_t osz, unsigned kind)
{
	char d[40];
	switch (kind) {
	case 0:
	case 1: /* readings */
		digits_into(d, 1 + rnd(6), 1 + rnd(9));
		snprintf(o, osz, "%s%s", rnd(4) ? "" : "-", d);
		break;
	case 2: /* numbers of 1..24 digits, any first digit */
		digits_into(d, 1 + rnd(24), 1 + rnd(9));
		snprintf(o, osz, "%s%s", rnd(4) ? "" : "-", d);
		break;
	case 3: /* decimals */
		snprintf(o, osz, "%u.%0*u", rnd(1000), 1 + (int)rnd(8),
			 rnd(100000000));
		break;
	case 4: /* numbers that look like cards, IMEIs, ICCIDs */
		digits_into(d, 13 + rnd(8), rnd(10));
		if (rnd(3) == 0)
			memcpy(d, "89", 2);
		snprintf(o, osz, "%s", d);
		break;
	case 5: /* Luhn-valid 16 digits */
		snprintf(o, osz, "%s",
			 rnd(2) ? "4111111111111111" : "5105105105105100");
		break;
	case 6:
	case 7: { /* hex, sometimes all digits */
		size_t n = rnd(40);
		for (size_t i = 0; i < n; i++)
			d[i] = "0123456789abcdef"[rnd(rnd(3) ? 16 : 10)];
		d[n] = '\0';
		snprintf(o, osz, "\"%s\"", d);
		break;
	}
	case 8:
		snprintf(o, osz, "\"20%02u-%02u-%02uT%02u:%02u:%02u%s\"", rnd(100),
			 rnd(13), rnd(32), rnd(24), rnd(60), rnd(60),
			 rnd(2) ? "Z" : ".123+02:00");
		break;
	case 9: /* a digit string of a hex id, 9 or 15 long */
		digits_into(d, rnd(2) ? 9 : 15, rnd(10));
		snprintf(o, osz, "\"%s\"", d);
		break;
	case 10:
		snprintf(o, osz, "\"10.%u.%u.%u\"", rnd(256), rnd(256),
			 rnd(256));
		break;
	case 11:
		snprintf(o, osz, "\"user%u@example.com\"", rnd(100));
		break;
	case 12:
		snprintf(o, osz, "\"%s\"", rnd(2) ? "ok" : "idle");
		break;
	case 13:
		snprintf(o, osz, "%s", rnd(2) ? "true" : "null");
		break;
	case 14:
		snprintf(o, osz, "\"%u bpm\"", 40 + rnd(100));
		break;
	default:
		snprintf(o, osz, "[%u.%06u,%u.%06u]", rnd(90), rnd(1000000),
			 rnd(180), rnd(1000000));
		break;
	}
}

/* New readings of the same width: every digit (and hex letter) of v
 * drawn again. */
static void jitter(char *v)
{
	for (; *v; v++) {
		if (*v >= '0' && *v <= '9')
			*v = (char)('0' + rnd(10));
		else if (*v >= 'a' && *v <= 'f')
			*v = "0123456789abcdef"[rnd(16)];
	}
}

/* Keys: mostly naming nothing; some that name something. */
static const char *const keys[] = {
	"a",    "val",  "id",   "Time", "seq",  "temp", "x1",  "_b",
	"node", "fw",   "lat",  "lon",  "hr",   "pin",  "ssn", "card",
	"name", "email", "imei", "token",
};

static unsigned hits;

static void compare(const char *t, const char *m)
{
	size_t pn = strlen(m), tn = strlen(t);
	uint8_t *p = malloc(pn);
	assert_non_null(p);
	memcpy(p, m, pn);
	bool hit = moat__leak_shape_hit(
		cached, moat__leak_topic_hash((const uint8_t *)t, tn),
		(const uint8_t *)t, tn, p, pn);
	hits += hit;
	struct moat_leak_result a, b;
	moat_leak_scan_msg(db, cached, (const uint8_t *)t, strlen(t), p, pn,
			   &a);
	struct moat_leak_finding fa[MOAT_LEAK_MAX_FINDINGS];
	memcpy(fa, a.findings, a.n * sizeof(fa[0]));
	moat_leak_scan(db, plain, p, pn, &b);
	if (a.n != b.n || a.total != b.total)
		fail_msg("%s: %zu findings with the cache%s, %zu without", m,
			 a.n, hit ? " (a hit)" : "", b.n);
	for (size_t i = 0; i < a.n; i++)
		if (fa[i].category != b.findings[i].category ||
		    fa[i].start != b.findings[i].start ||
		    fa[i].end != b.findings[i].end)
			fail_msg("%s: finding %zu differs", m, i);
	free(p);
}

static void test_differential(void **state)
{
	(void)state;
	enum { TOPICS = 12, MEMBERS = 6 };
	/* LEAK_SHAPE_MSGS=N LEAK_SHAPE_SEED=S for a longer run by hand */
	const char *e = getenv("LEAK_SHAPE_MSGS");
	unsigned MSGS = e ? (unsigned)strtoul(e, NULL, 10) : 30000;
	if ((e = getenv("LEAK_SHAPE_SEED")))
		rng ^= strtoull(e, NULL, 10) * 0x9e3779b97f4a7c15ULL;
	unsigned layout[TOPICS][MEMBERS], kind[TOPICS][MEMBERS];
	char vals[TOPICS][MEMBERS][64];
	for (unsigned t = 0; t < TOPICS; t++)
		for (unsigned k = 0; k < MEMBERS; k++) {
			/* most topics use keys that name nothing */
			layout[t][k] = t < 8 ? rnd(10) : rnd(20);
			kind[t][k] = some_kind();
			value(vals[t][k], sizeof(vals[t][k]), kind[t][k]);
		}
	for (unsigned i = 0; i < MSGS; i++) {
		unsigned t = rnd(TOPICS);
		/* new readings of the same kinds; sometimes another kind
		 * of value, sometimes another key */
		for (unsigned k = 0; k < MEMBERS; k++) {
			if (rnd(100) == 0)
				kind[t][k] = some_kind();
			/* states and flags change now and then */
			bool st = kind[t][k] == 12 || kind[t][k] == 13;
			if (st ? rnd(40) == 0 : rnd(2) != 0)
				value(vals[t][k], sizeof(vals[t][k]),
				      kind[t][k]);
			else if (!st && rnd(2))
				jitter(vals[t][k]);
		}
		if (rnd(50) == 0)
			layout[t][rnd(MEMBERS)] = t < 8 ? rnd(10) : rnd(20);
		const char *sep = t % 3 == 0 ? ": " : ":";
		char m[1024];
		size_t o = (size_t)snprintf(m, sizeof(m), "{");
		for (unsigned k = 0; k < MEMBERS; k++)
			o += (size_t)snprintf(m + o, sizeof(m) - o,
					      "%s\"%s\"%s%s", k ? "," : "",
					      keys[layout[t][k]], sep,
					      vals[t][k]);
		snprintf(m + o, sizeof(m) - o, "}");
		char topic[32];
		snprintf(topic, sizeof(topic), "dev/%u/up", t);
		compare(topic, m);
	}
	/* the cache answered a good part of them */
	printf("differential: %u messages, %u answered by the cache\n", MSGS,
	       hits);
	assert_true(hits > MSGS / 10);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_changed_values),
		T(test_number_shapes),
		T(test_keyed_never_cached),
		T(test_collisions),
		T(test_run_across_windows),
		T(test_differential),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
