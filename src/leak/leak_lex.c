/* The shape pass: one loop over the message that finds the candidates
 * whose only anchor is their shape (runs of digits and letters), and
 * hands them to the same extractors the Vectorscan rules use.
 *
 * Why not Vectorscan: these patterns have no literal to anchor on
 * ([0-9]{13}, [A-Z]{2}[0-9]{2}..., 17 VIN characters), and telemetry is
 * full of digits, so Vectorscan runs its automata over nearly every byte
 * (measured: the nine numeric patterns cost 85 ms per 16 MB of telemetry,
 * three times everything else together).  Here each alphanumeric word is
 * looked at once, with cheap tests on its length and character classes
 * before any extractor runs.
 *
 * Candidates: payment cards, SSNs, IMEI/IMSI, ICCIDs, IBANs, UK NINOs,
 * VINs, MAC addresses, decimal coordinate pairs ("48.85,2.29" and
 * "48.85N 2.29E"). */
#include <string.h>

#include "leak/leak_int.h"

#define C_DIG 0x01u
#define C_UP 0x02u
#define C_LO 0x04u
#define C_HEX 0x08u    /* a-f A-F */
#define C_NOTVIN 0x10u /* lower case, I, O, Q */
#define C_ALNUM (C_DIG | C_UP | C_LO)

static uint8_t cls[256];

void moat__leak_lex_init(void)
{
	for (unsigned c = '0'; c <= '9'; c++)
		cls[c] = C_DIG;
	for (unsigned c = 'A'; c <= 'Z'; c++)
		cls[c] = C_UP;
	for (unsigned c = 'a'; c <= 'z'; c++)
		cls[c] = C_LO | C_NOTVIN;
	for (unsigned c = 'a'; c <= 'f'; c++) {
		cls[c] |= C_HEX;
		cls[c - 32] |= C_HEX;
	}
	cls['I'] |= C_NOTVIN;
	cls['O'] |= C_NOTVIN;
	cls['Q'] |= C_NOTVIN;
}

static bool on(const struct lk_scan *sc, unsigned rule)
{
	return lk_enabled(sc, (enum moat_leak_category)
				      moat__leak_rules[rule].category);
}

static void call(struct lk_scan *sc, unsigned rule, size_t end)
{
	if (end <= sc->n && on(sc, rule)) {
		sc->touched++;
		moat__leak_rules[rule].fn(sc, rule, end);
	}
}

/* Digits joined by single ' ' or '-' from s: total digits, groups. */
static size_t chain(const struct lk_scan *sc, size_t s, size_t *groups,
		    size_t *first)
{
	const uint8_t *d = sc->d;
	size_t i = s, nd = 0, g = 0;
	*first = 0;
	while (i < sc->n && nd < 24) {
		size_t gs = i;
		while (i < sc->n && lk_digit(d[i]))
			i++;
		if (i == gs)
			break;
		if (!g)
			*first = i - gs;
		g++;
		nd += i - gs;
		if (i + 1 < sc->n && (d[i] == ' ' || d[i] == '-') &&
		    lk_digit(d[i + 1]))
			i++;
		else
			break;
	}
	*groups = g;
	return nd;
}

/* A decimal number starting at s (its integer part is d[s..e)): a
 * coordinate pair candidate when it has 4+ decimals and is followed by
 * [,;] and another such number, or by a hemisphere letter. */
static void decimal(struct lk_scan *sc, size_t s, size_t e)
{
	const uint8_t *d = sc->d;
	if (e - s > 3 || e + 1 >= sc->n || d[e] != '.' || !lk_digit(d[e + 1]))
		return;
	size_t f = e + 1;
	while (f < sc->n && lk_digit(d[f]))
		f++;
	if (f - e - 1 < 3)
		return;
	size_t k = f;
	while (k < sc->n && k - f < 3 && d[k] == ' ')
		k++;
	if (k < sc->n && (d[k] == 'N' || d[k] == 'S')) {
		call(sc, LX_GEO_HEMI, k + 1);
		return;
	}
	if (f - e - 1 < 4 || k >= sc->n || (d[k] != ',' && d[k] != ';'))
		return;
	k++;
	while (k < sc->n && k - f < 8 && lk_space(d[k]))
		k++;
	if (k < sc->n && d[k] == '-')
		k++;
	size_t i2 = k;
	while (k < sc->n && lk_digit(d[k]) && k - i2 < 4)
		k++;
	if (k == i2 || k + 5 > sc->n || d[k] != '.')
		return;
	for (size_t q = k + 1; q < k + 5; q++)
		if (!lk_digit(d[q]))
			return;
	call(sc, LX_GEO_PAIR, k + 5);
}

/* A run of digits: the structure cache (leak_shape.c, run_safe) knows
 * which of them get here and call an extractor; keep the two in step. */
static void digits_word(struct lk_scan *sc, size_t s, size_t e)
{
	const uint8_t *d = sc->d;
	size_t len = e - s;
	if (s > 0 && d[s - 1] == '.' && s > 1 && lk_digit(d[s - 2]))
		return; /* the fraction of a decimal number */
	if (e < sc->n && d[e] == '.') {
		decimal(sc, s, e);
		return;
	}
	if (len >= 19 && d[s] == '8' && d[s + 1] == '9')
		call(sc, LX_ICCID, s + 19);
	if (len == 9)
		call(sc, LX_SSN9, e);
	size_t groups, first;
	if (len < 13) {
		/* a card, IMEI or SSN written in groups: the first groups
		 * are 4+4/6, 2+6 or 3+2 digits (not a date: 2024-01-01) */
		if (len < 2 || len > 4 || e + 1 >= sc->n ||
		    (d[e] != ' ' && d[e] != '-' && d[e] != '.'))
			return;
		size_t g2 = e + 1;
		while (g2 < sc->n && lk_digit(d[g2]) && g2 - e <= 7)
			g2++;
		size_t n2 = g2 - e - 1;
		if (!((len == 4 && (n2 == 4 || n2 == 6)) ||
		      (len == 2 && n2 == 6) || (len == 3 && n2 == 2)))
			return;
	}
	size_t nd = chain(sc, s, &groups, &first);
	if (nd >= 13 && nd <= 24 && d[s] >= '2' && d[s] <= '6')
		call(sc, LX_PAN, s + MOAT_MIN(first, (size_t)4));
	if (nd >= 14 && nd <= 16)
		call(sc, LX_IMEI, s + first);
	/* SSN: 3-2-4 with one kind of separator */
	if (len == 3 && s + 11 <= sc->n && lk_digit(d[s + 4]) &&
	    lk_digit(d[s + 5]) && d[s + 6] == d[s + 3] &&
	    (d[s + 3] == '-' || d[s + 3] == ' ' || d[s + 3] == '.'))
		call(sc, LX_SSN, s + 11);
}

static void alnum_word(struct lk_scan *sc, size_t s, size_t e, unsigned m)
{
	const uint8_t *d = sc->d;
	size_t len = e - s;
	if (len == 17 && !(m & C_NOTVIN))
		call(sc, LX_VIN, e);
	if (len >= 4 && lk_upper(d[s]) && lk_upper(d[s + 1]) &&
	    lk_digit(d[s + 2]) && lk_digit(d[s + 3])) {
		if (len == 4 && e + 5 <= sc->n && d[e] == ' ')
			call(sc, LX_IBAN, s + 9);
		else if (len >= 8)
			call(sc, LX_IBAN, s + 8);
	}
	if (lk_upper(d[s]) && lk_upper(d[s + 1]) &&
	    ((len == 9 && lk_upper(d[e - 1])) || (len == 2 && e + 11 <= sc->n &&
						    d[e] == ' ')))
		call(sc, LX_NINO, len == 9 ? e : s + 13);
}

#if defined(__SSE2__)
#include <emmintrin.h>

#define OWN 48 /* window start step, bytes */

static inline __m128i load16(const uint8_t *p)
{
	return _mm_loadu_si128((const __m128i *)(const void *)p);
}

/* Bit i set when p[i] is in [lo, hi], for 64 bytes. */
static inline uint64_t in_range64(const uint8_t *p, uint8_t lo, uint8_t hi)
{
	const __m128i vlo = _mm_set1_epi8((char)lo);
	const __m128i span = _mm_set1_epi8((char)(hi - lo));
	uint64_t m = 0;
	for (int k = 0; k < 4; k++) {
		__m128i x = _mm_sub_epi8(load16(p + 16 * k), vlo);
		__m128i in = _mm_cmpeq_epi8(_mm_min_epu8(x, span), x);
		m |= (uint64_t)(uint16_t)_mm_movemask_epi8(in) << (16 * k);
	}
	return m;
}

/* Bit i set when p[i] == c, for 64 bytes. */
static inline uint64_t eq64(const uint8_t *p, uint8_t c)
{
	const __m128i v = _mm_set1_epi8((char)c);
	uint64_t m = 0;
	for (int k = 0; k < 4; k++)
		m |= (uint64_t)(uint16_t)_mm_movemask_epi8(
			     _mm_cmpeq_epi8(load16(p + 16 * k), v))
		     << (16 * k);
	return m;
}

/* A whole word made of digits and capitals, d[s..e).  Cheap filters
 * first: a number matters when it is long, or followed by a group
 * separator or a decimal point; a word with capitals when it is 17 long
 * (VIN) or starts with two capitals (IBAN, NINO). */
static inline void run(struct lk_scan *sc, size_t s, size_t e, bool upper)
{
	const uint8_t *d = sc->d;
	size_t len = e - s;
	uint8_t nx = e < sc->n ? d[e] : 0;
	if (!upper) {
		if (len >= 13 || len == 9 ||
		    (len <= 4 && (nx == ' ' || nx == '-' || nx == '.')))
			digits_word(sc, s, e);
		return;
	}
	if (len == 17 || (len >= 2 && lk_upper(d[s]) && lk_upper(d[s + 1]))) {
		unsigned m = 0;
		for (size_t i = s; i < e; i++)
			m |= cls[d[i]];
		alnum_word(sc, s, e, m);
	}
}

/* MAC addresses starting in the first OWN bytes of the window at b: five ':'
 * or '-' three apart (c, h), or two '.' five apart (t: xxxx.xxxx.xxxx). */
static inline void macs(struct lk_scan *sc, size_t b, uint64_t c, uint64_t h,
			uint64_t t)
{
	const uint64_t own2 = (((uint64_t)1 << OWN) - 1) << 2;
	const uint64_t own4 = (((uint64_t)1 << OWN) - 1) << 4;
	uint64_t m = ((c & c >> 3 & c >> 6 & c >> 9 & c >> 12) |
		      (h & h >> 3 & h >> 6 & h >> 9 & h >> 12)) & own2;
	while (m) {
		unsigned at = (unsigned)__builtin_ctzll(m);
		m &= m - 1;
		call(sc, LX_MAC, b + at - 2 + 17);
	}
	m = (t & t >> 5) & own4;
	while (m) {
		unsigned at = (unsigned)__builtin_ctzll(m);
		m &= m - 1;
		call(sc, LX_MAC, b + at - 4 + 14);
	}
}

/* Starts of runs of digits and capitals (x) worth a look: with a group
 * separator or decimal point within 4 bytes (sep), 9 long or more, two
 * capitals first, or running to the end of the window (unknown length). */
static inline uint64_t worth_starts(uint64_t x, uint64_t up, uint64_t sep,
				    uint64_t starts)
{
	uint64_t near = sep >> 1 | sep >> 2 | sep >> 3 | sep >> 4;
	uint64_t x2 = x & x >> 1, x4 = x2 & x2 >> 2, x8 = x4 & x4 >> 4;
	uint64_t longer = x8 & x >> 8; /* 9 in a row start here */
	uint64_t top = x >> 63 ? (uint64_t)1 << (63 - __builtin_clzll(starts))
			       : 0;
	return starts & (near | longer | (up & up >> 1) | top);
}

/* Windows of 64 bytes every OWN (48: a MAC address, 17 bytes, that starts
 * in the first 48 ends in the window): masks of digits and capitals;
 * each run of them that starts in the first OWN bytes, is a whole word
 * (no lower-case neighbour) and passes worth_starts() is looked at once.
 * No branch per byte. */
void moat__leak_lex(struct lk_scan *sc)
{
	const uint8_t *d = sc->d;
	size_t n = sc->n;
	uint8_t pad[64];
	bool macs_on = lk_enabled(sc, MOAT_LEAK_MAC_ADDRESS);
	for (size_t b = 0; b < n && !sc->stop; b += OWN) {
		const uint8_t *p = d + b;
		if (n - b < 64) {
			memset(pad, 0, sizeof(pad));
			memcpy(pad, p, n - b);
			p = pad;
		}
		uint64_t dig = in_range64(p, '0', '9');
		uint64_t up = in_range64(p, 'A', 'Z');
		uint64_t h = eq64(p, '-'), t = eq64(p, '.');
		uint64_t x = dig | up;
		uint64_t carry = b > 0 && (cls[d[b - 1]] & (C_DIG | C_UP));
		uint64_t starts = x & ~(x << 1 | carry);
		if (macs_on)
			macs(sc, b, eq64(p, ':'), h, t);
		if (!starts)
			continue;
		/* a '.' matters before 3 decimals (coordinates) or in
		 * 123.45.6789 (SSN) */
		uint64_t dots = t & dig >> 1 & dig >> 2 & (dig >> 3 | t >> 3);
		starts = worth_starts(x, up, h | dots | eq64(p, ' '), starts) &
			 (((uint64_t)1 << OWN) - 1);
		while (starts && !sc->stop) {
			unsigned st = (unsigned)__builtin_ctzll(starts);
			starts &= starts - 1;
			uint64_t from = x >> st;
			unsigned len = ~from ? (unsigned)__builtin_ctzll(~from)
					     : 64;
			size_t s = b + st, e = s + len;
			bool upper;
			if (st + len < 64) {
				upper = (up >> st) & ((((uint64_t)1) << len) - 1);
			} else { /* runs to the window's end, maybe past it
				  * (an ICCID starting at its 48th byte) */
				while (e < n && (cls[d[e]] & (C_DIG | C_UP)))
					e++;
				upper = false;
				for (size_t i = s; i < e && !upper; i++)
					upper = lk_upper(d[i]);
			}
			if ((s > 0 && lk_lower(d[s - 1])) ||
			    (e < n && lk_lower(d[e])))
				continue; /* part of a longer word */
			run(sc, s, e, upper);
		}
	}
}
#else
/* A hex word of 2 or 4 characters may start a MAC address. */
static void mac_word(struct lk_scan *sc, size_t s, size_t e)
{
	const uint8_t *d = sc->d;
	if (e >= sc->n)
		return;
	if (e - s == 2 && (d[e] == ':' || d[e] == '-') && s + 17 <= sc->n &&
	    d[s + 5] == d[e] && d[s + 14] == d[e])
		call(sc, LX_MAC, s + 17);
	else if (e - s == 4 && d[e] == '.' && s + 14 <= sc->n &&
		 d[s + 9] == '.')
		call(sc, LX_MAC, s + 14);
}

/* One alphanumeric word d[s..e) with the OR of its character classes. */
static inline void word(struct lk_scan *sc, size_t s, size_t e, unsigned m)
{
	const uint8_t *d = sc->d;
	size_t len = e - s;
	if ((m & C_ALNUM) == C_DIG) {
		digits_word(sc, s, e);
		if (len == 2 || len == 4)
			mac_word(sc, s, e);
		return;
	}
	if (m & C_UP)
		alnum_word(sc, s, e, m);
	if ((len == 2 || len == 4) && (m & C_HEX) && e < sc->n &&
	    (d[e] == ':' || d[e] == '-' || d[e] == '.') && lk_hex(d[s]) &&
	    lk_hex(d[s + 1]) && (len == 2 || (lk_hex(d[s + 2]) &&
					     lk_hex(d[s + 3]))))
		mac_word(sc, s, e);
}

static void lex_scalar(struct lk_scan *sc, size_t i)
{
	const uint8_t *d = sc->d;
	size_t n = sc->n;
	while (i < n && !sc->stop) {
		while (i < n && !(cls[d[i]] & C_ALNUM))
			i++;
		if (i >= n)
			break;
		size_t s = i;
		unsigned m = 0;
		while (i < n && (cls[d[i]] & C_ALNUM))
			m |= cls[d[i++]];
		word(sc, s, i, m);
	}
}

void moat__leak_lex(struct lk_scan *sc)
{
	lex_scalar(sc, 0);
}
#endif
