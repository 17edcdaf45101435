/* Extractors for numbers that identify money, people, devices and
 * vehicles: payment cards (L14), IBANs (L15), national ids (L16), device
 * and subscriber ids (L17), VINs (L22). */
#include <string.h>

#include "leak/leak_int.h"

/* Digits of a token with optional single separators between groups. */
struct digit_groups {
	uint8_t dig[40];
	size_t nd;
	uint8_t glen[12]; /* digits per group */
	size_t ng;
	uint8_t sep;      /* 0: none; ' ' or '-' */
	bool mixed;       /* different separators */
	size_t gend[12];  /* offset just past each group */
};

/* Read groups of digits starting at s: d, d, sep, d, ... (at most 40
 * digits / 12 groups). */
static void read_groups(const struct lk_scan *sc, size_t s,
			struct digit_groups *g)
{
	const uint8_t *d = sc->d;
	memset(g, 0, sizeof(*g));
	size_t i = s;
	while (i < sc->n && g->ng < 12) {
		size_t gs = i;
		while (i < sc->n && lk_digit(d[i]) && g->nd < 40)
			g->dig[g->nd++] = d[i++];
		if (i == gs)
			break;
		g->glen[g->ng] = (uint8_t)(i - gs);
		g->gend[g->ng++] = i;
		if (i + 1 < sc->n && (d[i] == ' ' || d[i] == '-') &&
		    lk_digit(d[i + 1])) {
			if (g->sep && g->sep != d[i])
				g->mixed = true;
			g->sep = d[i];
			i++;
			continue;
		}
		break;
	}
}

static size_t group_start(const struct lk_scan *sc, size_t end)
{
	const uint8_t *d = sc->d;
	size_t s = end;
	while (s > 0 && end - s < 48) {
		uint8_t c = d[s - 1];
		if (lk_digit(c))
			s--;
		else if ((c == ' ' || c == '-') && s >= 2 && lk_digit(d[s - 2]) &&
			 lk_digit(d[s]))
			s--;
		else
			break;
	}
	return s;
}

/* ---- payment cards (L14) -------------------------------------------------- */

static unsigned iin(const uint8_t *g, unsigned k)
{
	unsigned v = 0;
	for (unsigned i = 0; i < k; i++)
		v = v * 10 + (unsigned)(g[i] - '0');
	return v;
}

/* IIN ranges and lengths of the major schemes. */
static bool pan_scheme_ok(const uint8_t *g, size_t n)
{
	unsigned i1 = iin(g, 1), i2 = iin(g, 2), i3 = iin(g, 3),
		 i4 = iin(g, 4);
	if (i1 == 4) /* Visa */
		return n == 13 || n == 16 || n == 19;
	if ((i2 >= 51 && i2 <= 55) || (i4 >= 2221 && i4 <= 2720))
		return n == 16; /* Mastercard */
	if (i2 == 34 || i2 == 37)
		return n == 15; /* Amex */
	if (i4 == 6011 || (i3 >= 644 && i3 <= 649) || i2 == 65)
		return n >= 16 && n <= 19; /* Discover */
	if (i4 >= 3528 && i4 <= 3589)
		return n >= 16 && n <= 19; /* JCB */
	if ((i3 >= 300 && i3 <= 305) || i2 == 36 || i2 == 38 || i2 == 39)
		return n >= 14 && n <= 19; /* Diners */
	if (i2 == 62)
		return n >= 16 && n <= 19; /* UnionPay */
	if (i4 >= 2200 && i4 <= 2204)
		return n >= 16 && n <= 19; /* Mir */
	if (i4 == 5018 || i4 == 5020 || i4 == 5038 || i4 == 5893 ||
	    i4 == 6304 || i4 == 6759 || (i4 >= 6761 && i4 <= 6763))
		return n >= 13 && n <= 19; /* Maestro */
	return false;
}

static bool boring_digits(const uint8_t *g, size_t n)
{
	bool same = true, up = true, down = true;
	for (size_t i = 1; i < n; i++) {
		same &= g[i] == g[0];
		up &= (g[i] - '0') == ((g[i - 1] - '0') + 1) % 10;
		down &= (g[i - 1] - '0') == ((g[i] - '0') + 1) % 10;
	}
	return same || up || down;
}

static bool test_pan(const uint8_t *g, size_t n)
{
	static const char *const tests[] = {
		"4111111111111111", "4242424242424242", "4012888888881881",
		"4000056655665556", "4222222222222", "5555555555554444",
		"5105105105105100", "5200828282828210", "2223003122003222",
		"378282246310005", "371449635398431", "378734493671000",
		"6011111111111117", "6011000990139424", "3530111333300000",
		"3566002020360505", "30569309025904", "38520000023237",
		"6200000000000005", NULL};
	for (const char *const *t = tests; *t; t++)
		if (strlen(*t) == n && !memcmp(*t, g, n))
			return true;
	return false;
}

/* Group layouts cards are printed in. */
static bool pan_layout(const uint8_t *glen, size_t ng)
{
	if (ng == 1)
		return true;
	if (ng == 3 && glen[0] == 4 && glen[1] == 6 &&
	    (glen[2] == 5 || glen[2] == 4))
		return true; /* Amex 4-6-5, Diners 4-6-4 */
	for (size_t i = 0; i + 1 < ng; i++)
		if (glen[i] != 4)
			return false;
	return glen[ng - 1] >= 1 && glen[ng - 1] <= 4;
}

static const char *const ctx_card[] = {
	"card", "pan", "cc", "visa", "mastercard", "amex", "payment",
	"credit", "debit", "cardnumber", "ccnum", "kreditkarte", NULL};
static const char *const ctx_not_card[] = {
	"imei", "iccid", "imsi", "msisdn", "phone", "tel", "serial",
	"tracking", "order", "invoice", "isbn", "ean", "gtin", "upc",
	"barcode", "timestamp", "ts", "nonce", "seq", NULL};

void moat__leak_x_pan(struct lk_scan *sc, unsigned rule, size_t end)
{
	const uint8_t *d = sc->d;
	size_t s = group_start(sc, end);
	if (s < sc->tok_end[rule])
		return;
	struct digit_groups g;
	read_groups(sc, s, &g);
	sc->tok_end[rule] = g.ng ? g.gend[g.ng - 1] : end;
	if (g.mixed || !g.ng)
		return;
	if (s > 0 && (lk_alnum(d[s - 1]) || d[s - 1] == '.' ||
		      d[s - 1] == '+' || d[s - 1] == '_' ||
		      (d[s - 1] == '-' && s > 1 && lk_digit(d[s - 2]))))
		return;
	/* The longest leading run of groups that is a valid card: a card
	 * may be followed by other numbers ("4111 1111 1111 1111 12/25"). */
	for (size_t k = g.ng; k >= 1; k--) {
		size_t n = 0;
		for (size_t i = 0; i < k; i++)
			n += g.glen[i];
		if (n < 13 || n > 19 || !pan_layout(g.glen, k))
			continue;
		size_t e = g.gend[k - 1];
		if (k == g.ng && e < sc->n &&
		    (lk_alnum(d[e]) || d[e] == '_' ||
		     (d[e] == '.' && e + 1 < sc->n && lk_digit(d[e + 1]))))
			return;
		if (k < g.ng && g.ng > 1 && g.glen[0] != 4)
			return;
		if (!pan_scheme_ok(g.dig, n) || !moat__leak_luhn(g.dig, n) ||
		    boring_digits(g.dig, n))
			continue;
		if (moat__leak_ctx_before(sc, s, 24, ctx_not_card))
			return;
		bool ctx = moat__leak_ctx_before(sc, s, 40, ctx_card);
		uint32_t fl = (ctx ? MOAT_LEAK_F_CONTEXT : 0) |
			      (test_pan(g.dig, n) ? MOAT_LEAK_F_TEST_VALUE : 0);
		struct lk_cand *c = moat__leak_add(sc, MOAT_LEAK_PAYMENT_CARD, s,
						   e, MOAT_LEAK_SEV_CRITICAL,
						   ctx ? 98 : 90, fl);
		if (c)
			moat__leak_prev_fmt(c, "****%.4s",
					    (const char *)g.dig + n - 4);
		return;
	}
}

/* ---- IBAN (L15) -------------------------------------------------------------- */

static bool iban_mod97(const uint8_t *b, size_t n)
{
	unsigned r = 0;
	for (size_t k = 0; k < n; k++) {
		uint8_t c = b[(k + 4) % n];
		if (lk_digit(c))
			r = (r * 10 + (unsigned)(c - '0')) % 97;
		else
			r = (r * 100 + (unsigned)(c - 'A' + 10)) % 97;
	}
	return r == 1;
}

void moat__leak_x_iban(struct lk_scan *sc, unsigned rule, size_t end)
{
	const uint8_t *d = sc->d;
	size_t s = end - 8;
	if (end >= 9 && d[end - 5] == ' ' && lk_upper(d[end - 9]))
		s = end - 9;
	if (s < sc->tok_end[rule])
		return;
	if (s > 0 && (lk_alnum(d[s - 1]) || d[s - 1] == '_'))
		return;
	unsigned want = moat__leak_iban_len(d + s);
	if (!want || !lk_digit(d[s + 2]) || !lk_digit(d[s + 3]))
		return;
	uint8_t b[40];
	size_t n = 0, i = s;
	bool spaced = d[s + 4] == ' ';
	while (i < sc->n && n < want) {
		uint8_t c = d[i];
		if (c == ' ' && spaced && n % 4 == 0 && n > 0 && i + 1 < sc->n &&
		    lk_alnum(d[i + 1])) {
			i++;
			continue;
		}
		if (!lk_digit(c) && !lk_upper(c))
			break;
		b[n++] = c;
		i++;
	}
	sc->tok_end[rule] = i;
	if (n != want || (i < sc->n && (lk_alnum(d[i]) || d[i] == '_')))
		return;
	if (!iban_mod97(b, n))
		return;
	static const char *const tests[] = {"DE89370400440532013000",
					    "GB82WEST12345698765432",
					    "GB29NWBK60161331926819", NULL};
	uint32_t fl = 0;
	for (const char *const *t = tests; *t; t++)
		if (strlen(*t) == n && !memcmp(*t, b, n))
			fl |= MOAT_LEAK_F_TEST_VALUE;
	struct lk_cand *c = moat__leak_add(sc, MOAT_LEAK_IBAN, s, i,
					   MOAT_LEAK_SEV_HIGH, 97, fl);
	if (c)
		moat__leak_prev_fmt(c, "%.4s ****%.4s", (const char *)b,
				    (const char *)b + n - 4);
}

/* ---- national ids (L16) ------------------------------------------------------ */

static const char *const ctx_ssn[] = {"ssn", "social", "security",
				      "ss#", "sozialversicherung", NULL};

/* US SSN rules (Presidio's invalidation plus the SSA's never-issued
 * areas).  digits: 9 ASCII digits. */
bool moat__leak_ssn_valid(const uint8_t *g)
{
	unsigned area = iin(g, 3), grp = iin(g + 3, 2), ser = iin(g + 5, 4);
	if (area == 0 || area == 666 || area >= 900 || grp == 0 || ser == 0)
		return false;
	static const char *const samples[] = {"078051120", "219099999",
					      "123456789", "987654320", NULL};
	for (const char *const *t = samples; *t; t++)
		if (!memcmp(*t, g, 9))
			return false;
	return !boring_digits(g, 9);
}

void moat__leak_x_ssn(struct lk_scan *sc, unsigned rule, size_t end)
{
	const uint8_t *d = sc->d;
	size_t s = end - 11;
	if (s < sc->tok_end[rule])
		return;
	uint8_t sep = d[s + 3];
	if (d[s + 6] != sep)
		return;
	for (size_t i = 0; i < 11; i++)
		if (i != 3 && i != 6 && !lk_digit(d[s + i]))
			return;
	sc->tok_end[rule] = end;
	if (s > 0 && (lk_alnum(d[s - 1]) || d[s - 1] == '_' ||
		      d[s - 1] == '+' ||
		      ((d[s - 1] == sep || d[s - 1] == '.' || d[s - 1] == '/') &&
		       s > 1 && lk_digit(d[s - 2]))))
		return;
	if (end < sc->n && (lk_alnum(d[end]) || d[end] == '_' ||
			    ((d[end] == sep || d[end] == '.' || d[end] == '/') &&
			     end + 1 < sc->n && lk_digit(d[end + 1]))))
		return;
	uint8_t g[9] = {d[s],     d[s + 1], d[s + 2], d[s + 4], d[s + 5],
			d[s + 7], d[s + 8], d[s + 9], d[s + 10]};
	if (!moat__leak_ssn_valid(g))
		return;
	bool ctx = moat__leak_ctx_before(sc, s, 48, ctx_ssn);
	if (sep != '-' && !ctx)
		return; /* 123 45 6789 and 123.45.6789 need "ssn" nearby */
	struct lk_cand *c = moat__leak_add(sc, MOAT_LEAK_NATIONAL_ID, s, end,
					   MOAT_LEAK_SEV_CRITICAL,
					   ctx ? 97 : 85,
					   ctx ? MOAT_LEAK_F_CONTEXT : 0);
	if (c)
		moat__leak_prev_fmt(c, "***-**-%.4s", (const char *)g + 5);
}

/* AB123456C or AB 12 34 56 C: prefix letters as HMRC allocates them
 * (not D F I Q U V, second not O), six digits, suffix A-D. */
static bool nino_shape(const uint8_t *p, bool spaced)
{
	static const char bad1[] = "DFIQUV", bad2[] = "DFIQUVO";
	size_t k = 2, digits = 0;
	if (!lk_upper(p[0]) || !lk_upper(p[1]) || strchr(bad1, p[0]) ||
	    strchr(bad2, p[1]))
		return false;
	for (int g = 0; g < 3; g++) {
		if (spaced && p[k++] != ' ')
			return false;
		digits += lk_digit(p[k]) && lk_digit(p[k + 1]);
		k += 2;
	}
	if (spaced && p[k++] != ' ')
		return false;
	return digits == 3 && p[k] >= 'A' && p[k] <= 'D';
}

/* "SSN 536221234": nine digits after an SSN word. */
void moat__leak_x_ssn9(struct lk_scan *sc, unsigned rule, size_t end)
{
	const uint8_t *d = sc->d;
	size_t s = end - 9;
	if (s < sc->tok_end[rule])
		return;
	sc->tok_end[rule] = end;
	for (size_t i = s; i < end; i++)
		if (!lk_digit(d[i]))
			return;
	if ((s > 0 && (lk_alnum(d[s - 1]) || d[s - 1] == '.' ||
		       d[s - 1] == '-' || d[s - 1] == '+')) ||
	    (end < sc->n && (lk_alnum(d[end]) || d[end] == '.' ||
			     d[end] == '-')))
		return;
	if (!moat__leak_ssn_valid(d + s) ||
	    !moat__leak_ctx_before(sc, s, 32, ctx_ssn))
		return;
	struct lk_cand *c = moat__leak_add(sc, MOAT_LEAK_NATIONAL_ID, s, end,
					   MOAT_LEAK_SEV_CRITICAL, 90,
					   MOAT_LEAK_F_CONTEXT);
	if (c)
		moat__leak_prev_fmt(c, "*****%.4s", (const char *)d + s + 5);
}

/* UK National Insurance number: needs context (the shape alone is common
 * in part numbers). */
void moat__leak_x_nino(struct lk_scan *sc, unsigned rule, size_t end)
{
	static const char *const ctx_nino[] = {"nino", "nin", "insurance",
					       "ni", NULL};
	static const char *const bad[] = {"BG", "GB", "NK", "KN", "TN",
					  "NT", "ZZ", NULL};
	const uint8_t *d = sc->d;
	bool spaced = end >= 13 && d[end - 2] == ' ';
	size_t s = spaced ? end - 13 : end - 9;
	if (s < sc->tok_end[rule] || !nino_shape(d + s, spaced))
		return;
	sc->tok_end[rule] = end;
	if ((s > 0 && (lk_alnum(d[s - 1]) || d[s - 1] == '_')) ||
	    (end < sc->n && (lk_alnum(d[end]) || d[end] == '_')))
		return;
	for (const char *const *b = bad; *b; b++)
		if (d[s] == (uint8_t)(*b)[0] && d[s + 1] == (uint8_t)(*b)[1])
			return;
	if (!moat__leak_ctx_before(sc, s, 48, ctx_nino))
		return;
	struct lk_cand *c = moat__leak_add(sc, MOAT_LEAK_NATIONAL_ID, s, end,
					   MOAT_LEAK_SEV_CRITICAL, 90,
					   MOAT_LEAK_F_CONTEXT);
	if (c)
		moat__leak_prev_fmt(c, "%c*******%c", d[s], d[end - 1]);
}

/* ---- device and subscriber ids (L17) ------------------------------------- */

static const char *const ctx_imei[] = {"imei", "imeisv", "meid", NULL};
static const char *const ctx_imsi[] = {"imsi", NULL};
static const char *const ctx_iccid[] = {"iccid", "sim", NULL};

void moat__leak_x_imei(struct lk_scan *sc, unsigned rule, size_t end)
{
	const uint8_t *d = sc->d;
	size_t s = group_start(sc, end);
	if (s < sc->tok_end[rule])
		return;
	struct digit_groups g;
	read_groups(sc, s, &g);
	size_t e = g.ng ? g.gend[g.ng - 1] : end;
	sc->tok_end[rule] = e;
	if (g.mixed || (s > 0 && (lk_alnum(d[s - 1]) || d[s - 1] == '.' ||
				  d[s - 1] == '+')) ||
	    (e < sc->n && (lk_alnum(d[e]) || d[e] == '.')))
		return;
	if (boring_digits(g.dig, g.nd))
		return;
	bool imsi = moat__leak_ctx_before(sc, s, 40, ctx_imsi);
	bool imei = moat__leak_ctx_before(sc, s, 40, ctx_imei);
	const char *what;
	if (imei && g.nd == 15 && moat__leak_luhn(g.dig, 15))
		what = "imei";
	else if (imei && g.nd == 16 && g.sep == 0)
		what = "imeisv";
	else if (imsi && (g.nd == 15 || g.nd == 14) && g.sep == 0 &&
		 g.dig[0] >= '2' && g.dig[0] <= '7')
		what = "imsi";
	else
		return;
	struct lk_cand *c = moat__leak_add(sc, MOAT_LEAK_DEVICE_ID, s, e,
					   MOAT_LEAK_SEV_MEDIUM, 95,
					   MOAT_LEAK_F_CONTEXT);
	if (c)
		moat__leak_prev_fmt(c, "%s:****%.4s", what,
				    (const char *)g.dig + g.nd - 4);
}

void moat__leak_x_iccid(struct lk_scan *sc, unsigned rule, size_t end)
{
	const uint8_t *d = sc->d;
	size_t s = end - 19;
	if (s < sc->tok_end[rule] || d[s] != '8' || d[s + 1] != '9')
		return;
	size_t e = moat__leak_span(sc, s, LK_CS_DIGIT);
	sc->tok_end[rule] = e;
	size_t nd = e - s;
	if (e < sc->n && (d[e] == 'F' || d[e] == 'f'))
		e++;
	if ((s > 0 && (lk_alnum(d[s - 1]) || d[s - 1] == '.' ||
		       d[s - 1] == '+' || d[s - 1] == '-')) ||
	    (e < sc->n && (lk_alnum(d[e]) || d[e] == '.')))
		return;
	if ((nd != 19 && nd != 20) || !moat__leak_luhn(d + s, nd) ||
	    boring_digits(d + s + 2, nd - 2))
		return;
	bool ctx = moat__leak_ctx_before(sc, s, 40, ctx_iccid);
	struct lk_cand *c = moat__leak_add(sc, MOAT_LEAK_DEVICE_ID, s, e,
					   MOAT_LEAK_SEV_MEDIUM,
					   ctx ? 97 : 85,
					   ctx ? MOAT_LEAK_F_CONTEXT : 0);
	if (c)
		moat__leak_prev_fmt(c, "iccid:89****%.4s",
				    (const char *)d + s + nd - 4);
}

/* ---- VIN (L22) ------------------------------------------------------------------- */

static unsigned vin_value(uint8_t c)
{
	if (lk_digit(c))
		return (unsigned)(c - '0');
	static const char map[] = "12345678.12345.7.923456789";
	return (unsigned)(map[c - 'A'] - '0');
}

bool moat__leak_vin_check(const uint8_t *v)
{
	static const unsigned w[17] = {8, 7, 6, 5, 4, 3, 2, 10, 0,
				       9, 8, 7, 6, 5, 4, 3, 2};
	unsigned sum = 0;
	for (unsigned i = 0; i < 17; i++)
		sum += vin_value(v[i]) * w[i];
	unsigned r = sum % 11;
	return v[8] == (r == 10 ? 'X' : (uint8_t)('0' + r));
}

/* 17 characters of the VIN alphabet that look like a VIN; ctx says
 * whether a "vin" word or key vouches for it.  Returns the confidence, or
 * 0 when it is not accepted. */
unsigned moat__leak_vin_ok(const uint8_t *v, bool ctx)
{
	unsigned digits = 0, letters = 0, nonhex = 0;
	for (unsigned i = 0; i < 17; i++) {
		if (!moat__leak_in_class(v[i], LK_CS_VIN))
			return 0;
		if (lk_digit(v[i]))
			digits++;
		else {
			letters++;
			nonhex += v[i] > 'F';
		}
	}
	if (digits < 3 || letters < 2 || boring_digits(v, 17))
		return 0;
	if (v[9] == 'U' || v[9] == 'Z' || v[9] == '0')
		return 0; /* not a model-year code */
	if (moat__leak_vin_check(v))
		return ctx || nonhex ? 95 : 0;
	if (!ctx)
		return 0;
	for (unsigned i = 13; i < 17; i++) /* serial: digits at the end */
		if (!lk_digit(v[i]))
			return 0;
	return 85;
}

void moat__leak_x_vin(struct lk_scan *sc, unsigned rule, size_t end)
{
	static const char *const ctx_vin[] = {"vin", "chassis", "vehicle",
					      "fahrgestellnummer", NULL};
	const uint8_t *d = sc->d;
	size_t s = end - 17;
	if (s < sc->tok_end[rule])
		return;
	sc->tok_end[rule] = end;
	if (end < sc->n && (lk_alnum(d[end]) || d[end] == '_'))
		return;
	bool ctx = moat__leak_ctx_before(sc, s, 40, ctx_vin);
	unsigned conf = moat__leak_vin_ok(d + s, ctx);
	if (!conf)
		return;
	struct lk_cand *c = moat__leak_add(sc, MOAT_LEAK_VEHICLE_ID, s, end,
					   MOAT_LEAK_SEV_LOW, conf,
					   ctx ? MOAT_LEAK_F_CONTEXT : 0);
	if (c)
		moat__leak_prev_fmt(c, "%.3s**************",
				    (const char *)d + s);
}
