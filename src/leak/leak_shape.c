/* The structure cache: telemetry repeats its JSON message after message
 * with only the readings changed.  When a topic's payload was clean and
 * its scan made no rule look at anything (no pattern matched, no shape
 * was handed to an extractor, no key named anything, nothing was
 * decoded), the scratch keeps it with its slots: the member values that
 * may change without any rule noticing.  The next payload on that topic
 * that equals it outside the slots, with slot values of the same
 * harmless kind, is clean without a scan.
 *
 * Why that loses no finding: findings come only from rules that look at
 * something.  Outside the slots the bytes are the same as in a message
 * that made no rule look (so they make none look again: the shifts of a
 * value's length move no context window, as no rule reads one).  A slot
 * is a value under a key of no class and no flag, directly in an object
 * (an array's numbers pair up as coordinates), and the new value is one
 * of:
 *  - a JSON number (no exponent) right after ':' and before ',' or '}',
 *    whose digit runs the shape pass would not hand to an extractor
 *    (run_safe: not 9 digits, not a card, IMEI or ICCID length and
 *    prefix), and in which no pattern can match (digits and one '.');
 *  - a string of lower-case hex digits (hashes, ids, counters): no
 *    pattern matches inside [0-9a-f]*, the shape pass looks only at
 *    digit runs not touching a letter, and base64 decoding skips hex;
 *  - an ISO 8601 time (2024-05-17T10:21:07.123+02:00): its digit groups
 *    are no card, SSN or coordinate pair, its ':' follow digits (no
 *    key=value pair) and it is no base64.
 * Anything else - another key, a string that became an e-mail, a number
 * that grew to 16 digits, a value moved into an array - misses the cache
 * and is scanned whole.  Keyed members (lat, hr, name, password...)
 * make their message's scan look, so such messages are never cached:
 * the field rules and the tracks see every one.  The shape pass
 * (leak_lex.c) and this file's run_safe() must agree: a change to one
 * needs the other (tests/unit/test_leak_shape.c compares the two). */
#include <string.h>

#include "leak/leak_int.h"

uint32_t moat__leak_topic_hash(const uint8_t *t, size_t n)
{
	uint64_t h = UINT64_C(0x9e3779b97f4a7c15) ^ n;
	while (n >= 8) {
		uint64_t w;
		memcpy(&w, t, 8);
		h = (h ^ w) * UINT64_C(0xff51afd7ed558ccd);
		h ^= h >> 32;
		t += 8;
		n -= 8;
	}
	uint64_t w = 0;
	for (size_t i = 0; i < n; i++)
		w |= (uint64_t)t[i] << (8 * i);
	h = (h ^ w) * UINT64_C(0xc4ceb9fe1a85ec53);
	h ^= h >> 29;
	return (uint32_t)(h ^ h >> 32);
}

/* a[0..n) == b[0..n), for the short runs between slots. */
static inline bool same(const uint8_t *a, const uint8_t *b, size_t n)
{
	uint64_t x, y;
	if (n >= 8) {
		for (size_t i = 0; i + 8 < n; i += 8) {
			memcpy(&x, a + i, 8);
			memcpy(&y, b + i, 8);
			if (x != y)
				return false;
		}
		memcpy(&x, a + n - 8, 8); /* the last 8, overlapping */
		memcpy(&y, b + n - 8, 8);
		return x == y;
	}
	for (size_t i = 0; i < n; i++)
		if (a[i] != b[i])
			return false;
	return true;
}

/* ---- harmless values -------------------------------------------------- */

/* A whole run of L digits r[0..L) (no digit, separator or upper-case
 * letter around it) that the shape pass hands to no extractor: see
 * digits_word() in leak_lex.c. */
static inline bool run_safe(const uint8_t *r, size_t L)
{
	if (L == 9)
		return false; /* SSN without dashes */
	if (L < 13)
		return true;
	if (L >= 14 && L <= 16)
		return false; /* IMEI */
	if (L <= 24 && r[0] >= '2' && r[0] <= '6')
		return false; /* payment card */
	if (L >= 19 && r[0] == '8' && r[1] == '9')
		return false; /* ICCID */
	return true;
}

/* A JSON number at p[0..n) (RFC 8259, no exponent) whose integer digits
 * are a safe run: its length, or 0. */
static size_t number_len(const uint8_t *p, size_t n)
{
	size_t i = 0;
	if (i < n && p[i] == '-')
		i++;
	size_t d = i;
	if (i < n && p[i] == '0')
		i++;
	else
		while (i < n && lk_digit(p[i]))
			i++;
	if (i == d || !run_safe(p + d, i - d))
		return 0;
	if (i < n && p[i] == '.') {
		size_t f = ++i;
		while (i < n && lk_digit(p[i]))
			i++;
		if (i == f)
			return 0;
		/* a fraction's digits are never looked at on their own */
	}
	return i;
}

/* Bytes of w (8 of them, all < 0x80) in (m, n): their high bits. */
#define LK_ONES UINT64_C(0x0101010101010101)
#define LK_HIGH UINT64_C(0x8080808080808080)
static inline uint64_t between(uint64_t w, unsigned m, unsigned n)
{
	uint64_t x = w & ~LK_HIGH;
	return (LK_ONES * (127 + n) - x) & ~w & (x + LK_ONES * (127 - m)) &
	       LK_HIGH;
}

/* Lower-case hex digits at p[0..n), up to the closing quote: their
 * length, or SIZE_MAX when something else comes first or the string is
 * all digits that are not a safe run. */
static size_t hex_len(const uint8_t *p, size_t n)
{
	size_t i = 0;
	bool letter = false;
	for (; i + 8 <= n; i += 8) { /* 8 bytes at a time */
		uint64_t w;
		memcpy(&w, p + i, 8);
		uint64_t dig = between(w, '0' - 1, '9' + 1);
		uint64_t af = between(w, 'a' - 1, 'f' + 1);
		if ((w & LK_HIGH) || (dig | af) != LK_HIGH)
			break;
		letter |= af != 0;
	}
	for (; i < n && p[i] != '"'; i++) {
		if (lk_digit(p[i]))
			continue;
		if (p[i] < 'a' || p[i] > 'f')
			return SIZE_MAX;
		letter = true;
	}
	if (i == n)
		return SIZE_MAX;
	/* a digit run touching a letter is part of a word: not looked at */
	if (!letter && i && !run_safe(p, i))
		return SIZE_MAX;
	return i;
}

static size_t digits(const uint8_t *p, size_t n, size_t i, size_t k)
{
	for (size_t j = 0; j < k; j++)
		if (i + j >= n || !lk_digit(p[i + j]))
			return 0;
	return i + k;
}

/* An ISO 8601 date or time at p[0..n), ending at a quote:
 * YYYY-MM-DD[(T| )hh:mm[:ss[.f{1,9}]]][Z|(+|-)hh[:]mm].  Its length, or
 * SIZE_MAX. */
static size_t time_len(const uint8_t *p, size_t n)
{
	size_t i = digits(p, n, 0, 4);
	if (!i || i >= n || p[i] != '-' || !(i = digits(p, n, i + 1, 2)) ||
	    i >= n || p[i] != '-' || !(i = digits(p, n, i + 1, 2)))
		return SIZE_MAX;
	if (i < n && (p[i] == 'T' || p[i] == ' ')) {
		if (!(i = digits(p, n, i + 1, 2)) || i >= n || p[i] != ':' ||
		    !(i = digits(p, n, i + 1, 2)))
			return SIZE_MAX;
		if (i < n && p[i] == ':' && !(i = digits(p, n, i + 1, 2)))
			return SIZE_MAX;
		if (i < n && p[i] == '.') {
			size_t f = ++i;
			while (i < n && lk_digit(p[i]) && i - f < 9)
				i++;
			if (i == f)
				return SIZE_MAX;
		}
		if (i < n && p[i] == 'Z') {
			i++;
		} else if (i < n && (p[i] == '+' || p[i] == '-')) {
			if (!(i = digits(p, n, i + 1, 2)))
				return SIZE_MAX;
			if (i < n && p[i] == ':')
				i++;
			if (!(i = digits(p, n, i, 2)))
				return SIZE_MAX;
		}
	}
	return i < n && p[i] == '"' ? i : SIZE_MAX;
}

/* The length of a harmless value of kind k at p[0..n), or SIZE_MAX. */
static size_t slot_len(uint8_t k, const uint8_t *p, size_t n)
{
	switch (k) {
	case LS_NUMBER: {
		size_t l = number_len(p, n);
		return l ? l : SIZE_MAX;
	}
	case LS_HEX:
		return hex_len(p, n);
	default:
		return time_len(p, n);
	}
}

/* ---- recording --------------------------------------------------------- */

void moat__leak_shape_value(struct lk_scan *sc, size_t s, size_t e,
			    enum lk_vtype vt)
{
	const uint8_t *d = sc->d;
	uint8_t kind;
	if (sc->nslot == LK_SHAPE_SLOTS || e - s > UINT8_MAX ||
	    e > LK_SHAPE_PAYLOAD)
		return;
	if (vt == LV_NUMBER) {
		/* "k":1, or "k": 1} - not "1 2" (the shape pass would join
		 * such numbers into one) */
		bool before = s > 1 && (d[s - 1] == ':' ||
					(d[s - 1] == ' ' && d[s - 2] == ':'));
		if (!before || e >= sc->n || (d[e] != ',' && d[e] != '}') ||
		    number_len(d + s, e - s) != e - s)
			return;
		kind = LS_NUMBER;
	} else if (vt == LV_STRING) {
		if (e >= sc->n || d[e] != '"')
			return;
		if (hex_len(d + s, sc->n - s) == e - s)
			kind = LS_HEX;
		else if (time_len(d + s, sc->n - s) == e - s)
			kind = LS_TIME;
		else
			return;
	} else {
		return;
	}
	struct lk_slot *sl = &sc->slot[sc->nslot++];
	sl->off = (uint16_t)s;
	sl->len = (uint8_t)(e - s); /* e <= LK_SHAPE_PAYLOAD */
	sl->kind = kind;
}

/* The index of topic t's entry in its set (from set, the set's first),
 * or -1. */
static int lookup(const struct moat_leak_scratch *s, size_t set,
		  const uint8_t *t, size_t tn)
{
	for (int w = 0; w < 2; w++) {
		const struct lk_shape_ent *en = &s->shapes[set + (size_t)w];
		if (en->plen && en->tlen == tn && same(en->topic, t, tn))
			return w;
	}
	return -1;
}

void moat__leak_shape_store(struct moat_leak_scratch *s, uint32_t h,
			    const uint8_t *t, size_t tn, const uint8_t *p,
			    size_t pn)
{
	const struct lk_scan *sc = &s->sc;
	if (tn == 0 || tn > LK_SHAPE_TOPIC || pn == 0 ||
	    pn > LK_SHAPE_PAYLOAD || sc->touched || sc->total || !sc->json ||
	    sc->binary || sc->n != pn ||
	    (sc->rflags & (MOAT_LEAK_R_JSON_ERROR | MOAT_LEAK_R_BUDGET)))
		return;
	size_t set = (h * 2) & (LK_SHAPES - 1);
	int w = lookup(s, set, t, tn);
	if (w < 0)
		w = s->shape_victim[set / 2];
	s->shape_victim[set / 2] = (uint8_t)!w;
	struct lk_shape_ent *en = &s->shapes[set + (size_t)w];
	en->plen = (uint16_t)pn;
	en->tlen = (uint8_t)tn;
	en->nslot = (uint8_t)sc->nslot;
	memcpy(en->topic, t, tn);
	memcpy(en->payload, p, pn);
	memcpy(en->slot, sc->slot, sc->nslot * sizeof(sc->slot[0]));
}

/* ---- matching ----------------------------------------------------------- */


bool moat__leak_shape_hit(struct moat_leak_scratch *s, uint32_t h,
			  const uint8_t *t, size_t tn, const uint8_t *p,
			  size_t pn)
{
	size_t set = (h * 2) & (LK_SHAPES - 1);
	int w = lookup(s, set, t, tn);
	if (w < 0 || pn > s->db->budget)
		return false;
	s->shape_victim[set / 2] = (uint8_t)!w;
	const struct lk_shape_ent *en = &s->shapes[set + (size_t)w];
	const uint8_t *c = en->payload;
	size_t i = 0, j = 0;
	for (unsigned k = 0; k < en->nslot; k++) {
		const struct lk_slot *sl = &en->slot[k];
		size_t seg = sl->off - j;
		if (seg > pn - i || !same(p + i, c + j, seg))
			return false;
		i += seg;
		size_t l = slot_len(sl->kind, p + i, pn - i);
		if (l == SIZE_MAX)
			return false;
		i += l;
		j = (size_t)sl->off + sl->len;
	}
	size_t tail = en->plen - j;
	return tail == pn - i && same(p + i, c + j, tail);
}
