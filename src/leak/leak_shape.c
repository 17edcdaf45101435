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

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "leak/leak_int.h"

uint32_t moat__leak_topic_hash(const uint8_t *t, size_t n)
{
	const uint8_t *start = t;
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
	if (n && t - start >= 8) { /* the last 8 bytes, overlapping */
		memcpy(&w, t + n - 8, 8);
	} else {
		for (size_t i = 0; i < n; i++)
			w |= (uint64_t)t[i] << (8 * i);
	}
	/* every input bit reaches the low bits (MurmurHash3's fmix64) */
	h ^= w;
	h ^= h >> 33;
	h *= UINT64_C(0xff51afd7ed558ccd);
	h ^= h >> 33;
	h *= UINT64_C(0xc4ceb9fe1a85ec53);
	h ^= h >> 33;
	return (uint32_t)h;
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

#define LK_ONES UINT64_C(0x0101010101010101)
#define LK_HIGH UINT64_C(0x8080808080808080)

/* Bit i of diff_at(a, b): a[i] != b[i], for LK_STEP bytes. */
#if defined(__SSE2__)
#define LK_STEP 16
static inline uint64_t diff_at(const uint8_t *a, const uint8_t *b)
{
	__m128i x = _mm_loadu_si128((const __m128i *)(const void *)a);
	__m128i y = _mm_loadu_si128((const __m128i *)(const void *)b);
	return (uint16_t)~_mm_movemask_epi8(_mm_cmpeq_epi8(x, y));
}
/* Bit i: a[i] is a digit, for LK_STEP bytes. */
static inline uint64_t digits_at(const uint8_t *a)
{
	__m128i x = _mm_sub_epi8(_mm_loadu_si128((const __m128i *)(const void *)a),
				 _mm_set1_epi8('0'));
	__m128i nine = _mm_set1_epi8(9);
	return (uint16_t)_mm_movemask_epi8(
		_mm_cmpeq_epi8(_mm_min_epu8(x, nine), x));
}
#else
#define LK_STEP 8
static inline uint64_t diff_at(const uint8_t *a, const uint8_t *b)
{
	uint64_t x, y;
	memcpy(&x, a, 8);
	memcpy(&y, b, 8);
	uint64_t d = x ^ y;
	uint64_t t = (((d & ~LK_HIGH) + ~LK_HIGH) | d) & LK_HIGH;
	return (t * UINT64_C(0x0002040810204081)) >> 56;
}
static inline uint64_t digits_at(const uint8_t *a)
{
	uint64_t m = 0;
	for (unsigned i = 0; i < 8; i++)
		m |= (uint64_t)lk_digit(a[i]) << i;
	return m;
}
#endif

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
#if !defined(__SSE2__)
static inline uint64_t between(uint64_t w, unsigned m, unsigned n)
{
	uint64_t x = w & ~LK_HIGH;
	return (LK_ONES * (127 + n) - x) & ~w & (x + LK_ONES * (127 - m)) &
	       LK_HIGH;
}
#endif

/* Lower-case hex digits at p[0..n), up to the closing quote: their
 * length, or SIZE_MAX when something else comes first or the string is
 * all digits that are not a safe run. */
static size_t hex_len(const uint8_t *p, size_t n)
{
	size_t i = 0;
	bool letter = false;
#if defined(__SSE2__)
	for (; i + 16 <= n; i += 16) { /* 16 bytes at a time */
		__m128i x = _mm_loadu_si128((const __m128i *)(const void *)(p + i));
		__m128i d = _mm_sub_epi8(x, _mm_set1_epi8('0'));
		__m128i l = _mm_sub_epi8(x, _mm_set1_epi8('a'));
		int dig = _mm_movemask_epi8(_mm_cmpeq_epi8(
			_mm_min_epu8(d, _mm_set1_epi8(9)), d));
		int af = _mm_movemask_epi8(_mm_cmpeq_epi8(
			_mm_min_epu8(l, _mm_set1_epi8(5)), l));
		if ((dig | af) != 0xffff) { /* the end, or another byte */
			int q = _mm_movemask_epi8(
				_mm_cmpeq_epi8(x, _mm_set1_epi8('"')));
			unsigned before = q ? ((1u << __builtin_ctz((unsigned)q)) -
					       1)
					    : 0;
			if (q && ((unsigned)(dig | af) & before) == before) {
				letter |= ((unsigned)af & before) != 0;
				i += (size_t)__builtin_ctz((unsigned)q);
				goto end;
			}
			break;
		}
		letter |= af != 0;
	}
#else
	for (; i + 8 <= n; i += 8) { /* 8 bytes at a time */
		uint64_t w;
		memcpy(&w, p + i, 8);
		uint64_t dig = between(w, '0' - 1, '9' + 1);
		uint64_t af = between(w, 'a' - 1, 'f' + 1);
		if ((w & LK_HIGH) || (dig | af) != LK_HIGH)
			break;
		letter |= af != 0;
	}
#endif
	for (; i < n && p[i] != '"'; i++) {
		if (lk_digit(p[i]))
			continue;
		if (p[i] < 'a' || p[i] > 'f')
			return SIZE_MAX;
		letter = true;
	}
	if (i == n)
		return SIZE_MAX;
#if defined(__SSE2__)
end:
#endif
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
	case LS_TIME:
		return time_len(p, n);
	default:
		return SIZE_MAX;
	}
}

/* ---- recording --------------------------------------------------------- */

void moat__leak_shape_value(struct lk_scan *sc, size_t s, size_t e,
			    enum lk_vtype vt)
{
	const uint8_t *d = sc->d;
	uint8_t kind;
	if (sc->nslot == LK_SHAPE_SLOTS || e - s > UINT8_MAX ||
	    e > LK_SHAPE_PAYLOAD || e >= sc->n)
		return;
	/* what the value is, later: most stored payloads are never used */
	if (vt == LV_NUMBER) {
		/* "k":1, or "k": 1} - not "1 2" (the shape pass would join
		 * such numbers into one) */
		bool before = s > 1 && (d[s - 1] == ':' ||
					(d[s - 1] == ' ' && d[s - 2] == ':'));
		if (!before || (d[e] != ',' && d[e] != '}'))
			return;
		kind = LS_NUMBER;
	} else if (vt == LV_STRING && d[e] == '"') {
		kind = LS_STRING;
	} else {
		return;
	}
	struct lk_slot *sl = &sc->slot[sc->nslot++];
	sl->off = (uint16_t)s;
	sl->len = (uint8_t)(e - s); /* e <= LK_SHAPE_PAYLOAD */
	sl->kind = kind;
}

/* Set (or clear) bits [from, from + n) of m. */
static void set_bits(uint64_t *m, size_t from, size_t n, bool on)
{
	if (!n)
		return;
	size_t last = from + n - 1;
	for (size_t w = from / 64; w <= last / 64; w++) {
		uint64_t bits = ~(uint64_t)0;
		if (w == from / 64)
			bits <<= from % 64;
		if (w == last / 64)
			bits &= ~(uint64_t)0 >> (63 - last % 64);
		m[w] = on ? m[w] | bits : m[w] & ~bits;
	}
}

/* Mark in m the bytes of slot sl (of payload p) where any digit may
 * replace a digit keeping the value harmless (m is then limited to the
 * digits): a time's; a number's but for the first of several integer
 * digits (a leading zero is not JSON) and, when they are enough for
 * run_safe to look at them, the first two. */
static void mark_free(uint64_t *m, const struct lk_slot *sl, const uint8_t *p)
{
	if (sl->kind == LS_HEX)
		return;
	set_bits(m, sl->off, sl->len, true);
	if (sl->kind == LS_TIME)
		return;
	size_t s = sl->off, e = s + sl->len, lead = s + (p[s] == '-');
	size_t ilen = 0;
	while (lead + ilen < e && lk_digit(p[lead + ilen]))
		ilen++;
	set_bits(m, lead, ilen >= 13 ? 2 : ilen > 1 ? 1 : 0, false);
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
	en->ready = false;
}

/* At the first use of an entry: which of its candidate slots hold
 * harmless values (the others must stay as they are, like the rest of
 * the payload), and the bit maps same_width() reads. */
static void prepare(struct lk_shape_ent *en)
{
	const uint8_t *p = en->payload;
	size_t pn = en->plen;
	unsigned k = 0;
	for (unsigned i = 0; i < en->nslot; i++) {
		struct lk_slot sl = en->slot[i];
		const uint8_t *v = p + sl.off;
		size_t n = pn - sl.off;
		if (sl.kind == LS_NUMBER) {
			if (number_len(v, n) != sl.len)
				continue;
		} else if ((sl.len == 0 || lk_digit(v[0]) ||
			    (v[0] >= 'a' && v[0] <= 'f')) &&
			   hex_len(v, n) == sl.len) {
			sl.kind = LS_HEX;
		} else if (sl.len >= 10 && lk_digit(v[0]) &&
			   time_len(v, n) == sl.len) {
			sl.kind = LS_TIME;
		} else {
			continue;
		}
		en->slot[k++] = sl;
	}
	en->nslot = (uint8_t)k;
	memset(en->in_slot, 0, sizeof(en->in_slot));
	memset(en->free_dig, 0, sizeof(en->free_dig));
	for (unsigned i = 0; i < k; i++) {
		set_bits(en->in_slot, en->slot[i].off, en->slot[i].len, true);
		mark_free(en->free_dig, &en->slot[i], p);
	}
	/* ... and there, only the digits */
	for (size_t x = 0; x * 64 < pn; x++) {
		uint64_t dig = 0;
		for (unsigned q = 0; en->free_dig[x] && q < 64 / LK_STEP &&
				     64 * x + LK_STEP * q < pn;
		     q++) {
			size_t i = 64 * x + LK_STEP * q;
			if (pn < LK_STEP) { /* short: a byte at a time */
				for (size_t b = i; b < pn; b++)
					dig |= (uint64_t)lk_digit(p[b]) << b;
				break;
			}
			size_t at = MOAT_MIN(i, pn - LK_STEP);
			dig |= (digits_at(p + at) >> (i - at)) << (LK_STEP * q);
		}
		en->free_dig[x] &= dig;
	}
	en->ready = true;
}

/* ---- matching ----------------------------------------------------------- */



/* A payload of the cached one's length (LK_STEP bytes or more) that
 * differs from it only inside slots (the common case: readings of the
 * same width): 1 when each changed slot still holds a harmless value of
 * its kind and length, 0 when one does not, -1 when bytes outside the
 * slots differ (the slots may have moved: see the general walk).  A
 * digit that became another where any digit may stand (free_dig) needs
 * no further look; a slot with any other change is looked at whole. */
static int same_width(const struct lk_shape_ent *en, const uint8_t *p)
{
	const uint8_t *c = en->payload;
	size_t n = en->plen;
	uint64_t look[LK_SHAPE_PAYLOAD / 64] = {0}, outside = 0, any = 0;
	for (size_t w = 0; w * 64 < n; w++) {
		uint64_t bits = 0, dig = 0;
		if (w * 64 + 64 <= n) { /* a whole word: no overlap */
			for (unsigned q = 0; q < 64 / LK_STEP; q++) {
				size_t i = 64 * w + LK_STEP * q;
				bits |= diff_at(p + i, c + i) << (LK_STEP * q);
				dig |= digits_at(p + i) << (LK_STEP * q);
			}
		} else {
			for (unsigned q = 0; 64 * w + LK_STEP * q < n; q++) {
				size_t i = 64 * w + LK_STEP * q;
				size_t at = MOAT_MIN(i, n - LK_STEP); /* the
								       * last
								       * overlaps */
				unsigned sh = (unsigned)(i - at);
				bits |= (diff_at(p + at, c + at) >> sh)
					<< (LK_STEP * q);
				dig |= (digits_at(p + at) >> sh) << (LK_STEP * q);
			}
		}
		/* free_dig marks digits of the cached payload: a digit
		 * there that is a digit now changed harmlessly */
		outside |= bits & ~en->in_slot[w];
		look[w] = bits & ~(dig & en->free_dig[w]);
		any |= look[w];
	}
	if (outside)
		return -1;
	/* each slot with a byte to look at, once: slots are in order */
	unsigned k = 0;
	for (unsigned w = 0; any && w < LK_SHAPE_PAYLOAD / 64; w++) {
		while (look[w]) {
			size_t at = 64 * w + (unsigned)__builtin_ctzll(look[w]);
			while (k < en->nslot &&
			       (size_t)en->slot[k].off + en->slot[k].len <= at)
				k++;
			if (k == en->nslot)
				return 0; /* not reached: look is in slots */
			const struct lk_slot *sl = &en->slot[k];
			if (slot_len(sl->kind, p + sl->off, n - sl->off) !=
			    sl->len)
				return 0;
			/* the rest of this slot needs no other look */
			size_t end = (size_t)sl->off + sl->len;
			for (unsigned x = w; x * 64 < end; x++)
				look[x] &= end >= (x + 1) * 64
						   ? 0
						   : ~(((uint64_t)1 << (end % 64)) - 1);
		}
	}
	return 1;
}

/* The length of a value of an entry not yet prepared at p[0..n): a
 * number's characters, or a string's up to a quote (a miss when it holds
 * an escaped one: the next compare fails). */
static size_t skip_value(uint8_t kind, const uint8_t *p, size_t n)
{
	size_t i = 0;
	if (kind == LS_NUMBER) {
		while (i < n && (lk_digit(p[i]) || p[i] == '-' || p[i] == '.' ||
				 p[i] == 'e' || p[i] == 'E' || p[i] == '+'))
			i++;
		return i;
	}
	const uint8_t *q = memchr(p, '"', n);
	return q ? (size_t)(q - p) : n;
}

/* p[0..pn) has the cached payload's bytes between its candidate slots. */
static bool layout_matches(const struct lk_shape_ent *en, const uint8_t *p,
			   size_t pn)
{
	const uint8_t *c = en->payload;
	size_t i = 0, j = 0;
	for (unsigned k = 0; k < en->nslot; k++) {
		const struct lk_slot *sl = &en->slot[k];
		size_t seg = sl->off - j;
		if (seg > pn - i || !same(p + i, c + j, seg))
			return false;
		i += seg;
		i += skip_value(sl->kind, p + i, pn - i);
		j = (size_t)sl->off + sl->len;
	}
	size_t tail = en->plen - j;
	return tail == pn - i && same(p + i, c + j, tail);
}

bool moat__leak_shape_hit(struct moat_leak_scratch *s, uint32_t h,
			  const uint8_t *t, size_t tn, const uint8_t *p,
			  size_t pn)
{
	size_t set = (h * 2) & (LK_SHAPES - 1);
	int w = lookup(s, set, t, tn);
	if (w < 0 || pn > s->db->budget)
		return false;
	s->shape_victim[set / 2] = (uint8_t)!w;
	struct lk_shape_ent *en = &s->shapes[set + (size_t)w];
	/* what comes before the first slot stays: a cheap first look
	 * (topics whose payload layout changes fail here) */
	size_t head = MOAT_MIN(en->nslot ? (size_t)en->slot[0].off
					 : (size_t)en->plen,
			       (size_t)64);
	if (head > pn || !same(p, en->payload, head))
		return false;
	if (!en->ready) {
		/* the same layout at all (values skipped unchecked), before
		 * the work of prepare(): a topic whose payloads change their
		 * layout stops here */
		if (!layout_matches(en, p, pn))
			return false;
		prepare(en);
	}
	if (pn == en->plen && pn >= LK_STEP) {
		int r = same_width(en, p);
		if (r >= 0)
			return r == 1;
	}
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
