/* Field rules: what a key says about its value (L5 key pairs, L6, L13,
 * L16, L17, L18, L19, L21 and key forms of L3, L11, L20, L22), for JSON
 * members (leak_json.c) and for key=value / "key: value" pairs in text
 * (moat__leak_kv_scan below, which also runs inside JSON strings).
 *
 * Every rule validates the value: a credential is not empty or a
 * placeholder, a heart rate is physiologically plausible, a date of
 * birth is a real past date, and so on. */
#include <stdio.h>
#include <string.h>

#include "leak/leak_int.h"

/* ---- helpers -------------------------------------------------------------- */

static void trim(const uint8_t *d, size_t *s, size_t *e)
{
	while (*s < *e && lk_space(d[*s]))
		(*s)++;
	while (*e > *s && lk_space(d[*e - 1]))
		(*e)--;
}

static bool is_text(enum lk_vtype vt)
{
	return vt == LV_STRING || vt == LV_TEXT || vt == LV_QTEXT;
}

uint32_t moat__leak_vflags(const struct lk_field *f)
{
	if (f->vt == LV_STRING || f->in_str)
		return MOAT_LEAK_F_JSON_STRING;
	if (f->obj && (f->vt == LV_NUMBER || f->vt == LV_LITERAL))
		return MOAT_LEAK_F_JSON_SCALAR;
	if (f->json && (f->vt == LV_NUMBER || f->vt == LV_LITERAL))
		return MOAT_LEAK_F_JSON_SCALAR;
	return 0;
}

/* The value as a number (JSON number or numeric text). */
static bool value_num(const struct lk_field *f, const uint8_t *d, double *v,
		      int *dec)
{
	size_t s = f->s, e = f->e;
	trim(d, &s, &e);
	if (f->vt == LV_LITERAL || s == e)
		return false;
	if (e - s > 1 && d[s] == '+')
		s++;
	return moat__leak_parse_decimal(d + s, e - s, v, dec);
}

/* Printable, short form of the key for previews: "heart_rate=***".  Not
 * when the key happens to contain the value (the preview must never show
 * what was found). */
static void prev_key(const struct lk_scan *sc, struct lk_cand *c,
		     const struct lk_field *f, const char *suffix)
{
	char k[25];
	size_t n = MOAT_MIN(f->klen, sizeof(k) - 1);
	size_t vn = c->f.end - c->f.start;
	if (vn <= n && memmem(f->key, n, sc->d + c->f.start, vn)) {
		moat__leak_prev_fmt(c, "%s%s",
				    moat_leak_category_name(c->f.category),
				    suffix);
		return;
	}
	for (size_t i = 0; i < n; i++) {
		uint8_t b = f->key[i];
		k[i] = lk_alnum(b) || b == '_' || b == '-' || b == '.' ? (char)b
								       : '_';
	}
	k[n] = '\0';
	moat__leak_prev_fmt(c, "%s%s", k, suffix);
}

static struct lk_cand *add_field(struct lk_scan *sc, const struct lk_field *f,
				 enum moat_leak_category cat, size_t s,
				 size_t e, enum moat_leak_severity sev,
				 unsigned conf, uint32_t fl)
{
	struct lk_cand *c = moat__leak_add(sc, cat, s, e, sev, conf,
					   fl | moat__leak_vflags(f) |
						   MOAT_LEAK_F_CONTEXT);
	if (c && f->json) {
		moat__leak_json_path(sc, c->f.path, sizeof(c->f.path));
		c->has_path = true;
	}
	return c;
}

static size_t count_digits(const uint8_t *p, size_t n)
{
	size_t k = 0;
	for (size_t i = 0; i < n; i++)
		k += lk_digit(p[i]);
	return k;
}

static size_t count_letters(const uint8_t *p, size_t n)
{
	size_t k = 0;
	for (size_t i = 0; i < n; i++)
		k += lk_alpha(p[i]) || p[i] >= 0x80;
	return k;
}

static bool only(const uint8_t *p, size_t n, const char *allowed)
{
	for (size_t i = 0; i < n; i++)
		if (!lk_alnum(p[i]) && !strchr(allowed, p[i]))
			return false;
	return true;
}

/* Digits of p[0..n) into out (skipping ' ', '-', '.'); their count, or 0
 * when other characters appear or there are more than max. */
static size_t digits_of(const uint8_t *p, size_t n, uint8_t *out, size_t max)
{
	size_t k = 0;
	for (size_t i = 0; i < n; i++) {
		if (lk_digit(p[i])) {
			if (k == max)
				return 0;
			out[k++] = p[i];
		} else if (p[i] != ' ' && p[i] != '-' && p[i] != '.') {
			return 0;
		}
	}
	return k;
}

static bool eq_ci(const uint8_t *p, size_t n, const char *s)
{
	if (strlen(s) != n)
		return false;
	for (size_t i = 0; i < n; i++)
		if (lk_tolower(p[i]) != (uint8_t)s[i])
			return false;
	return true;
}

static bool in_ci(const uint8_t *p, size_t n, const char *const *list)
{
	for (const char *const *w = list; *w; w++)
		if (eq_ci(p, n, *w))
			return true;
	return false;
}

static bool contains_ci(const uint8_t *p, size_t n, const char *s)
{
	size_t sn = strlen(s);
	for (size_t i = 0; i + sn <= n; i++) {
		size_t k = 0;
		while (k < sn && lk_tolower(p[i + k]) == (uint8_t)s[k])
			k++;
		if (k == sn)
			return true;
	}
	return false;
}

static bool looks_like_path(const uint8_t *p, size_t n)
{
	if (n > 1 && p[0] == '/' && memchr(p + 1, '/', n - 1))
		return true;
	if (n > 1 && p[0] == '~' && p[1] == '/')
		return true;
	return n > 2 && lk_alpha(p[0]) && p[1] == ':' && p[2] == '\\';
}

/* Every character of p[0..n) that is not a separator is c. */
static bool only_char(const uint8_t *p, size_t n, uint8_t c)
{
	for (size_t i = 0; i < n; i++)
		if (p[i] != c && p[i] != ':' && p[i] != '-')
			return false;
	return true;
}

static bool is_uuid(const uint8_t *p, size_t n)
{
	if (n != 36)
		return false;
	for (size_t i = 0; i < 36; i++) {
		bool dash = i == 8 || i == 13 || i == 18 || i == 23;
		if (dash ? p[i] != '-' : !lk_hex(p[i]))
			return false;
	}
	return true;
}

/* ---- credentials (L6), Wi-Fi (L21), generic secrets (L13) ---------------- */

static void remember_wifi(struct lk_scan *sc, const struct lk_field *f,
			  size_t s, size_t e, bool psk)
{
	if (f->obj && !f->obj->psk_set) {
		f->obj->psk_set = true;
		f->obj->psk_s = s;
		f->obj->psk_e = e;
		f->obj->psk_vflags = (uint8_t)moat__leak_vflags(f);
	}
	if (sc->nwifi < MOAT_ARRAY_LEN(sc->wifi)) {
		struct lk_wifi *w = &sc->wifi[sc->nwifi++];
		w->s = s;
		w->e = e;
		w->vflags = (uint8_t)moat__leak_vflags(f);
		w->psk = psk;
		w->text = !f->json;
		w->done = false;
	}
}

/* A log line's component tag ("auth: client dev1 connected", "token:
 * refreshed for ..."): a key ended by ':' in text whose value starts a
 * sentence (a word of lower-case letters followed by another word). */
static bool log_tag(const struct lk_scan *sc, const struct lk_field *f,
		    size_t s)
{
	const uint8_t *d = sc->d;
	if (f->vt != LV_TEXT || !f->key)
		return false;
	const uint8_t *k = f->key + f->klen;
	if (k >= d + s || *k != ':')
		return false;
	size_t w = s;
	while (w < sc->n && lk_lower(d[w]))
		w++;
	if (w - s < 2 || w + 1 >= sc->n || d[w] != ' ')
		return false;
	return lk_alpha(d[w + 1]) || lk_digit(d[w + 1]);
}

static void cred_field(struct lk_scan *sc, const struct lk_field *f)
{
	static const char *const pass_words[] = {"pass", "fail", "passed",
						 "failed", "ok", "error",
						 NULL};
	const uint8_t *d = sc->d;
	size_t s = f->s, e = f->e;
	trim(d, &s, &e);
	size_t n = e - s;
	uint8_t sub = f->ki.sub;
	if (f->vt == LV_LITERAL || n == 0)
		return;
	if (f->vt == LV_NUMBER &&
	    (sub != KC_PASSWORD && sub != KC_PIN && sub != KC_PSK))
		return;
	if (moat__leak_placeholder(d + s, n) || looks_like_path(d + s, n) ||
	    log_tag(sc, f, s))
		return;
	switch (sub) {
	case KC_PASS:
		if (n < 4 || in_ci(d + s, n, pass_words))
			return;
		break;
	case KC_PIN: {
		uint8_t g[16];
		size_t k = digits_of(d + s, n, g, sizeof(g));
		if (k < 4 || k > 12 || k != n)
			return;
		break;
	}
	case KC_AUTH:
		/* "Basic ..." and "Bearer ..." are http_auth's to judge */
		if (n < 6 || count_letters(d + s, n) == n ||
		    (n > 6 && eq_ci(d + s, 6, "basic ")) ||
		    (n > 7 && eq_ci(d + s, 7, "bearer ")))
			return;
		break;
	case KC_SECRET:
		if (n < 4)
			return;
		break;
	default:
		if (f->vt == LV_NUMBER && n < 3)
			return;
		break;
	}
	uint32_t fl = moat__leak_weak_password(d + s, n)
			      ? MOAT_LEAK_F_WEAK_PASSWORD
			      : 0;
	struct lk_cand *c = add_field(sc, f, MOAT_LEAK_CREDENTIAL, s, e,
				      MOAT_LEAK_SEV_HIGH, 95, fl);
	if (c) {
		c->rule = (uint16_t)(200 + sub);
		moat__leak_prev_fmt(c, "%s (%zu chars)",
				    fl ? "weak ****" : "****", n);
	}
	if (sub == KC_PSK || sub == KC_PASSWORD || sub == KC_PASS)
		remember_wifi(sc, f, s, e, sub == KC_PSK);
}

static void generic_field(struct lk_scan *sc, const struct lk_field *f)
{
	const uint8_t *d = sc->d;
	size_t s = f->s, e = f->e;
	trim(d, &s, &e);
	size_t n = e - s;
	if (!is_text(f->vt) || n < 10 || n > 150)
		return;
	bool lo = false, up = false, dig = false, sym = false;
	for (size_t i = s; i < e; i++) {
		uint8_t c = d[i];
		if (lk_space(c) || c < 0x20)
			return;
		lo |= lk_lower(c);
		up |= lk_upper(c);
		dig |= lk_digit(c);
		sym |= !lk_alnum(c);
	}
	unsigned classes = (unsigned)lo + (unsigned)up + (unsigned)dig +
			   (unsigned)sym;
	if (classes < 2 || !(lo || up) || moat__leak_placeholder(d + s, n) ||
	    is_uuid(d + s, n) || moat__leak_past_date(d + s, n) ||
	    contains_ci(d + s, n, "://") || looks_like_path(d + s, n))
		return;
	double h = moat__leak_entropy(d + s, n);
	if (n >= 16 ? h < 3.5 : (h < 3.0 || classes < 3))
		return;
	struct lk_cand *c = add_field(sc, f, MOAT_LEAK_GENERIC_SECRET, s, e,
				      MOAT_LEAK_SEV_MEDIUM, 70, 0);
	if (c)
		moat__leak_prev_mask(c, d, s, e, 2, 2);
}

static void aws_secret_field(struct lk_scan *sc, const struct lk_field *f)
{
	const uint8_t *d = sc->d;
	size_t s = f->s, e = f->e;
	trim(d, &s, &e);
	if (e - s == 40 && only(d + s, 40, "+/") &&
	    moat__leak_entropy(d + s, 40) >= 4.0) {
		uint32_t fl = memcmp(d + e - 7, "EXAMPLE", 7) == 0 ||
					      memcmp(d + e - 10, "EXAMPLEKEY",
						     10) == 0
				      ? MOAT_LEAK_F_TEST_VALUE
				      : 0;
		struct lk_cand *c = add_field(sc, f, MOAT_LEAK_AWS_KEY, s, e,
					      MOAT_LEAK_SEV_CRITICAL, 97, fl);
		if (c)
			moat__leak_prev_set(c, "aws secret ****");
		return;
	}
	struct lk_field g = *f; /* some other secret under that name */
	g.ki.kind = KK_CRED;
	g.ki.sub = KC_SECRET;
	cred_field(sc, &g);
}

/* ---- geolocation (L5) ---------------------------------------------------------- */

static void geo_emit_one(struct lk_scan *sc, const struct lk_coord *c,
			 bool lat, bool precise, enum moat_leak_severity sev,
			 bool json)
{
	struct lk_cand *k = moat__leak_add(
		sc, MOAT_LEAK_GEOLOCATION, c->s, c->e, sev, 95,
		(uint32_t)c->vflags | MOAT_LEAK_F_CONTEXT |
			(precise ? MOAT_LEAK_F_PRECISE : 0));
	if (!k)
		return;
	moat__leak_prev_fmt(k, "%s %d.*", lat ? "lat" : "lon", (int)c->v);
	if (json && c->path[0]) {
		memcpy(k->f.path, c->path, sizeof(k->f.path));
		k->has_path = true;
	}
}

/* A latitude and a longitude from two fields. */
void moat__leak_geo_fields(struct lk_scan *sc, struct lk_coord *lat,
			   struct lk_coord *lon, bool json)
{
	if (!lat->set || !lon->set)
		return;
	double a = lat->v, o = lon->v;
	lat->set = lon->set = false;
	if (a > 90 || a < -90 || o > 180 || o < -180 || (a == 0 && o == 0))
		return;
	int dec = MOAT_MIN(lat->decimals, lon->decimals);
	enum moat_leak_severity sev = dec >= 4 ? MOAT_LEAK_SEV_HIGH
				      : dec >= 2 ? MOAT_LEAK_SEV_MEDIUM
						 : MOAT_LEAK_SEV_LOW;
	geo_emit_one(sc, lat, true, dec >= 4, sev, json);
	geo_emit_one(sc, lon, false, dec >= 4, sev, json);
}

static void geo_field(struct lk_scan *sc, const struct lk_field *f)
{
	double v;
	int dec;
	if (!value_num(f, sc->d, &v, &dec))
		return;
	if (f->ki.flags & KF_E7) {
		v /= 1e7;
		dec = 7;
	}
	struct lk_coord *slot;
	if (f->obj)
		slot = f->ki.kind == KK_LAT ? &f->obj->lat : &f->obj->lon;
	else
		slot = f->ki.kind == KK_LAT ? &sc->tlat : &sc->tlon;
	if (slot->set && f->obj)
		return; /* the first one counts */
	size_t s = f->s, e = f->e;
	trim(sc->d, &s, &e);
	slot->set = true;
	slot->v = v;
	slot->decimals = dec;
	slot->s = s;
	slot->e = e;
	slot->vflags = (uint8_t)moat__leak_vflags(f);
	slot->path[0] = '\0';
	if (f->json)
		moat__leak_json_path(sc, slot->path, sizeof(slot->path));
	if (!f->obj) { /* text: pair lat= and lon= that are close */
		struct lk_coord *a = &sc->tlat, *o = &sc->tlon;
		if (a->set && o->set) {
			size_t gap = a->s > o->s ? a->s - o->s : o->s - a->s;
			if (gap <= 256)
				moat__leak_geo_fields(sc, a, o, false);
			else if (a->s < o->s)
				a->set = false;
			else
				o->set = false;
		}
	}
}

/* "48.8566,2.3522" under a location key. */
static void geo_string_field(struct lk_scan *sc, const struct lk_field *f)
{
	const uint8_t *d = sc->d;
	size_t s = f->s, e = f->e;
	trim(d, &s, &e);
	if (!is_text(f->vt) || e - s < 3 || e - s > 64)
		return;
	size_t m = s;
	while (m < e && (lk_digit(d[m]) || d[m] == '.' || d[m] == '-'))
		m++;
	size_t m2 = m;
	while (m2 < e && (d[m2] == ',' || d[m2] == ';' || d[m2] == ' '))
		m2++;
	if (m == s || m2 == m || m2 == e)
		return;
	double a, o;
	int da, dob;
	if (!moat__leak_parse_decimal(d + s, m - s, &a, &da) ||
	    !moat__leak_parse_decimal(d + m2, e - m2, &o, &dob))
		return;
	if (a > 90 || a < -90 || o > 180 || o < -180 || (a == 0 && o == 0))
		return;
	int dec = MOAT_MIN(da, dob);
	struct lk_cand *c = add_field(
		sc, f, MOAT_LEAK_GEOLOCATION, s, e,
		dec >= 4 ? MOAT_LEAK_SEV_HIGH : MOAT_LEAK_SEV_MEDIUM, 95,
		dec >= 4 ? MOAT_LEAK_F_PRECISE : 0);
	if (c)
		moat__leak_prev_fmt(c, "%d.*,%d.*", (int)a, (int)o);
}

/* ---- health (L18) ------------------------------------------------------------- */

static bool bp_string(const uint8_t *p, size_t n)
{
	size_t i = 0;
	double sys = 0, dia = 0;
	while (i < n && lk_digit(p[i]))
		sys = sys * 10 + (p[i++] - '0');
	if (i == 0 || i > 3 || i + 1 >= n || p[i] != '/')
		return false;
	size_t j = ++i;
	while (i < n && lk_digit(p[i]))
		dia = dia * 10 + (p[i++] - '0');
	if (i == j || i - j > 3)
		return false;
	while (i < n && (p[i] == ' ' || lk_alpha(p[i])))
		i++; /* "mmHg" */
	return i == n && sys >= 50 && sys <= 260 && dia >= 30 && dia <= 160 &&
	       sys > dia;
}

static void health_field(struct lk_scan *sc, const struct lk_field *f)
{
	const uint8_t *d = sc->d;
	size_t s = f->s, e = f->e;
	trim(d, &s, &e);
	if (s == e || f->vt == LV_LITERAL)
		return;
	double v;
	int dec;
	bool num = value_num(f, d, &v, &dec);
	bool ok;
	switch (f->ki.sub) {
	case KH_HR:
		ok = num && v >= 20 && v <= 250;
		break;
	case KH_HR_AMBIG: /* "hr" may be an hour */
		ok = num && v >= 30 && v <= 250;
		break;
	case KH_SPO2:
		ok = num && v >= 50 && v <= 100;
		break;
	case KH_BP:
		ok = is_text(f->vt) && bp_string(d + s, e - s);
		break;
	case KH_SYS:
		ok = num && v >= 50 && v <= 260;
		break;
	case KH_DIA:
		ok = num && v >= 30 && v <= 160;
		break;
	case KH_GLUCOSE:
		ok = num && v >= 1 && v <= 600;
		break;
	case KH_RESP:
		ok = num && v >= 4 && v <= 60;
		break;
	case KH_TEMP:
		ok = num && ((v >= 30 && v <= 45) || (v >= 86 && v <= 113));
		break;
	default: /* waveforms: any non-empty value, once per array */
		ok = f->idx <= 0;
		break;
	}
	if (!ok || (f->obj && f->obj->music && (f->ki.sub == KH_HR ||
						 f->ki.sub == KH_HR_AMBIG)))
		return; /* beats per minute of a song */
	struct lk_cand *c = add_field(sc, f, MOAT_LEAK_HEALTH, s, e,
				      MOAT_LEAK_SEV_HIGH, 90, 0);
	if (c) {
		c->rule = (uint16_t)(300 + f->ki.sub);
		prev_key(sc, c, f, "=***");
	}
}

/* ---- person (L19) --------------------------------------------------------------- */

static const char *const generic_accounts[] = {
	"admin", "administrator", "root", "guest", "user", "test", "operator",
	"service", "system", "default", "pi", "ubuntu", "anonymous", "nobody",
	"demo", "device", "sensor", "mqtt", "iot", "gateway", "broker",
	"unknown", "none", "null", "support", "manager", "owner", "public",
	"master", "local", "localhost", "tech", "installer", "super",
	"superuser", "sysadmin", NULL};

static bool devicey(const uint8_t *p, size_t n)
{
	static const char *const w[] = {"device", "dev", "sensor", "node",
					"gateway", "gw", "edge", "esp", "client",
					"mqtt", "iot", "svc", "service", "bot",
					"plc", "meter", "station", "unit", "cam",
					"thermostat", "rpi", "robot", NULL};
	for (const char *const *x = w; *x; x++)
		if (contains_ci(p, n, *x))
			return true;
	return false;
}

/* Letters, spaces, apostrophes, dots, hyphens, commas: a human name. */
static bool name_like(const uint8_t *p, size_t n)
{
	if (n < 2 || n > 100 || count_letters(p, n) < 2 ||
	    count_digits(p, n) > 0 || memchr(p, '@', n))
		return false;
	for (size_t i = 0; i < n; i++) {
		uint8_t c = p[i];
		if (!(lk_alpha(c) || c >= 0x80 || c == ' ' || c == '\'' ||
		      c == '.' || c == '-' || c == ',' || c == '^' || c == '_'))
			return false;
	}
	static const char *const no[] = {"unknown", "anonymous", "none",
					 "n/a", "null", "test", "nobody",
					 "redacted", "hidden", NULL};
	return !in_ci(p, n, no);
}

/* "John Smith", "Smith, John", "DOE^JOHN": two or more capitalised words. */
static bool full_name_shape(const uint8_t *p, size_t n)
{
	unsigned words = 0;
	for (size_t i = 0; i < n; i++) {
		bool start = i == 0 || p[i - 1] == ' ' || p[i - 1] == ',' ||
			     p[i - 1] == '^' || p[i - 1] == '_';
		if (start && lk_alpha(p[i])) {
			if (!lk_upper(p[i]))
				return false;
			words++;
		}
	}
	return words >= 2;
}

/* A user name that names a person: first.last, first_last or
 * "First Last" (service and device accounts are not people). */
static bool username_ok(const uint8_t *p, size_t n)
{
	if (n < 5 || n > 64 || memchr(p, '@', n) ||
	    in_ci(p, n, generic_accounts) || devicey(p, n) ||
	    moat__leak_placeholder(p, n))
		return false;
	size_t sep = 0, parts = 0, run = 0;
	for (size_t i = 0; i <= n; i++) {
		if (i < n && lk_alpha(p[i])) {
			run++;
			continue;
		}
		if (i < n && p[i] != '.' && p[i] != '_' && p[i] != ' ')
			return false;
		if (run < 2)
			return false;
		parts++;
		run = 0;
		sep += i < n;
	}
	return parts == 2 && sep == 1;
}

static bool address_ok(const uint8_t *p, size_t n, bool street)
{
	if (n < 4 || n > 200 || contains_ci(p, n, "://"))
		return false;
	size_t run = 0, best = 0;
	bool space = false;
	for (size_t i = 0; i < n; i++) {
		if (lk_alpha(p[i]) || p[i] >= 0x80)
			best = MOAT_MAX(best, ++run);
		else
			run = 0;
		space |= p[i] == ' ';
	}
	if (best < 3 || !space)
		return false;
	return street || count_digits(p, n) > 0;
}

static bool phone_ok(const uint8_t *p, size_t n)
{
	uint8_t g[24];
	size_t k = 0;
	for (size_t i = 0; i < n; i++) {
		if (lk_digit(p[i])) {
			if (k == sizeof(g))
				return false;
			g[k++] = p[i];
		} else if (!strchr(" +()-./", p[i])) {
			return false;
		}
	}
	if (k < 7 || k > 15)
		return false;
	for (size_t i = 1; i < k; i++)
		if (g[i] != g[0])
			return true;
	return false;
}

static bool zip_ok(const uint8_t *p, size_t n)
{
	return n >= 3 && n <= 10 && only(p, n, " -") &&
	       count_digits(p, n) >= 2;
}

static bool person_of(struct lk_keyinfo k)
{
	return k.kind == KK_PERSON_OF ||
	       (k.kind == KK_PERSON &&
		(k.sub == KP_NAME || k.sub == KP_OWNER || k.sub == KP_USER));
}

static void person_emit(struct lk_scan *sc, const struct lk_field *f,
			size_t s, size_t e, bool initials)
{
	const uint8_t *d = sc->d;
	struct lk_cand *c = add_field(sc, f, MOAT_LEAK_PERSON, s, e,
				      MOAT_LEAK_SEV_MEDIUM, 90, 0);
	if (!c)
		return;
	if (!initials) {
		prev_key(sc, c, f, "=***");
		return;
	}
	char buf[MOAT_LEAK_PREVIEW_MAX];
	size_t o = 0;
	for (size_t i = s; i < e && o + 6 < sizeof(buf); i++) {
		bool start = i == s || d[i - 1] == ' ' || d[i - 1] == '^' ||
			     d[i - 1] == ',' || d[i - 1] == '_' || d[i - 1] == '.';
		if (start && lk_alpha(d[i])) {
			if (o)
				buf[o++] = ' ';
			buf[o++] = (char)d[i];
			memcpy(buf + o, "***", 3);
			o += 3;
		}
	}
	buf[o] = '\0';
	moat__leak_prev_set(c, buf);
}

static void person_field(struct lk_scan *sc, const struct lk_field *f)
{
	const uint8_t *d = sc->d;
	size_t s = f->s, e = f->e;
	trim(d, &s, &e);
	const uint8_t *p = d + s;
	size_t n = e - s;
	if (n == 0 || f->vt == LV_LITERAL || moat__leak_placeholder(p, n))
		return;
	bool text = is_text(f->vt);
	switch (f->ki.sub) {
	case KP_NAME:
		if (text && name_like(p, n))
			person_emit(sc, f, s, e, true);
		return;
	case KP_OWNER:
		if (text && name_like(p, n) &&
		    (full_name_shape(p, n) ||
		     (contains_ci(f->key, f->klen, "owner") && lk_upper(p[0]) &&
		      n >= 3 && !in_ci(p, n, generic_accounts))))
			person_emit(sc, f, s, e, true);
		return;
	case KP_USER:
		if (text && username_ok(p, n))
			person_emit(sc, f, s, e, false);
		return;
	case KP_ID:
		if (n >= 3 && n <= 40 && count_digits(p, n) > 0)
			person_emit(sc, f, s, e, false);
		return;
	case KP_DOB:
		if (text ? moat__leak_past_date(p, n)
			 : (n == 8 && moat__leak_past_date(p, n)))
			person_emit(sc, f, s, e, false);
		return;
	case KP_ADDRESS:
		if (text && address_ok(p, n, f->klen >= 6 &&
						     contains_ci(f->key, f->klen,
								 "street")))
			person_emit(sc, f, s, e, false);
		return;
	case KP_ZIP:
		if (zip_ok(p, n))
			person_emit(sc, f, s, e, false);
		return;
	case KP_PHONE:
		if (phone_ok(p, n))
			person_emit(sc, f, s, e, false);
		return;
	default:
		return;
	}
}

static void person_of_field(struct lk_scan *sc, const struct lk_field *f)
{
	struct lk_field g = *f;
	g.ki.kind = KK_PERSON;
	g.ki.sub = KP_OWNER;
	person_field(sc, &g);
}

static void name_part_field(struct lk_scan *sc, const struct lk_field *f)
{
	bool ok = f->ki.sub == 1
			  ? person_of(f->parent)
			  : (f->parent.kind == KK_HUMAN_NAME_PART ||
			     person_of(f->parent));
	if (!ok)
		return;
	struct lk_field g = *f;
	g.ki.kind = KK_PERSON;
	g.ki.sub = KP_NAME;
	person_field(sc, &g);
}

/* ---- national ids (L16) -------------------------------------------------------- */

static const char verhoeff_d[10][10] = {
	{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}, {1, 2, 3, 4, 0, 6, 7, 8, 9, 5},
	{2, 3, 4, 0, 1, 7, 8, 9, 5, 6}, {3, 4, 0, 1, 2, 8, 9, 5, 6, 7},
	{4, 0, 1, 2, 3, 9, 5, 6, 7, 8}, {5, 9, 8, 7, 6, 0, 4, 3, 2, 1},
	{6, 5, 9, 8, 7, 1, 0, 4, 3, 2}, {7, 6, 5, 9, 8, 2, 1, 0, 4, 3},
	{8, 7, 6, 5, 9, 3, 2, 1, 0, 4}, {9, 8, 7, 6, 5, 4, 3, 2, 1, 0}};
static const char verhoeff_p[8][10] = {
	{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}, {1, 5, 7, 6, 2, 8, 3, 0, 9, 4},
	{5, 8, 0, 3, 7, 9, 6, 1, 4, 2}, {8, 9, 1, 6, 0, 4, 3, 5, 2, 7},
	{9, 4, 5, 3, 1, 2, 6, 8, 7, 0}, {4, 2, 8, 6, 5, 7, 3, 9, 0, 1},
	{2, 7, 9, 3, 8, 0, 6, 4, 1, 5}, {7, 0, 4, 6, 9, 1, 3, 2, 5, 8}};

static bool verhoeff(const uint8_t *g, size_t n)
{
	int c = 0;
	for (size_t i = 0; i < n; i++)
		c = verhoeff_d[c][(int)verhoeff_p[i % 8][g[n - 1 - i] - '0']];
	return c == 0;
}

static bool dni_ok(const uint8_t *p, size_t n)
{
	static const char letters[] = "TRWAGMYFPDXBNJZSQVHLCKE";
	if (n != 9 || !lk_alpha(p[8]))
		return false;
	unsigned v = 0;
	size_t i = 0;
	if (p[0] == 'X' || p[0] == 'Y' || p[0] == 'Z') { /* NIE */
		v = (unsigned)(p[0] - 'X');
		i = 1;
	}
	for (; i < 8; i++) {
		if (!lk_digit(p[i]))
			return false;
		v = v * 10 + (unsigned)(p[i] - '0');
	}
	return (uint8_t)letters[v % 23] == (p[8] & 0xdf);
}

static bool bsn_ok(const uint8_t *g)
{
	int sum = 0;
	for (int i = 0; i < 8; i++)
		sum += (9 - i) * (g[i] - '0');
	sum -= g[8] - '0';
	return sum % 11 == 0 && sum != 0;
}

static bool nino_ok(const uint8_t *p, size_t n)
{
	uint8_t c[9];
	size_t k = 0;
	for (size_t i = 0; i < n; i++) {
		if (p[i] == ' ')
			continue;
		if (k == 9)
			return false;
		c[k++] = lk_alpha(p[i]) ? (uint8_t)(p[i] & 0xdf) : p[i];
	}
	if (k != 9 || !lk_upper(c[0]) || !lk_upper(c[1]) || c[8] < 'A' ||
	    c[8] > 'D')
		return false;
	for (int i = 2; i < 8; i++)
		if (!lk_digit(c[i]))
			return false;
	return !strchr("DFIQUV", c[0]) && !strchr("DFIQUVO", c[1]);
}

static void natid_field(struct lk_scan *sc, const struct lk_field *f)
{
	const uint8_t *d = sc->d;
	size_t s = f->s, e = f->e;
	trim(d, &s, &e);
	const uint8_t *p = d + s;
	size_t n = e - s;
	if (n < 5 || n > 24 || f->vt == LV_LITERAL ||
	    moat__leak_placeholder(p, n))
		return;
	uint8_t g[24];
	size_t k = digits_of(p, n, g, sizeof(g));
	bool ok;
	switch (f->ki.sub) {
	case KN_SSN:
		ok = k == 9 && moat__leak_ssn_valid(g);
		break;
	case KN_NINO:
		ok = nino_ok(p, n);
		break;
	case KN_DNI:
		ok = dni_ok(p, n);
		break;
	case KN_AADHAAR:
		ok = k == 12 && g[0] >= '2' && verhoeff(g, 12);
		break;
	case KN_SIN:
		ok = k == 9 && moat__leak_luhn(g, 9);
		break;
	case KN_BSN:
		ok = k == 9 && bsn_ok(g);
		break;
	default: /* national id, passport, driver licence: shape only */
		ok = only(p, n, " -") && count_digits(p, n) >= 2 &&
		     count_digits(p, n) + count_letters(p, n) >= 5;
		break;
	}
	if (!ok)
		return;
	struct lk_cand *c = add_field(sc, f, MOAT_LEAK_NATIONAL_ID, s, e,
				      MOAT_LEAK_SEV_CRITICAL, 95, 0);
	if (c)
		moat__leak_prev_fmt(c, "****%.*s", (int)MOAT_MIN(n, (size_t)2),
				    (const char *)p + n - MOAT_MIN(n, (size_t)2));
}

/* ---- device ids (L17), VIN (L22), MAC (L3), host names (L20) --------------- */

/* Whether p[0..n) (digits g[0..k) once separators are dropped) is a
 * well-formed identifier of kind sub. */
static bool device_value_ok(uint8_t sub, const uint8_t *p, size_t n,
			    uint8_t *g, size_t k)
{
	bool ok = false;
	switch (sub) {
	case KD_IMEI:
		ok = (k == 15 && moat__leak_luhn(g, 15)) || k == 16;
		break;
	case KD_IMEISV:
		ok = k == 16;
		break;
	case KD_ICCID: {
		size_t m = n;
		if (p[m - 1] == 'F' || p[m - 1] == 'f')
			m--;
		k = digits_of(p, m, g, sizeof(g));
		ok = k >= 18 && k <= 22 && g[0] == '8' && g[1] == '9';
		break;
	}
	case KD_IMSI:
		ok = (k == 14 || k == 15) && g[0] >= '2' && g[0] <= '7';
		break;
	case KD_MEID: {
		bool hex = n == 14;
		for (size_t i = 0; hex && i < n; i++)
			hex = lk_hex(p[i]);
		ok = hex || k == 18;
		break;
	}
	case KD_ANDROID_ID: {
		bool hex = n == 16;
		for (size_t i = 0; hex && i < n; i++)
			hex = lk_hex(p[i]);
		ok = hex && !moat__leak_placeholder(p, n) &&
		     memcmp(p, "0000000000000000", 16) != 0;
		break;
	}
	case KD_EUI: { /* LoRaWAN DevEUI / EUI-64: 16 hex digits */
		size_t h = 0;
		bool other = false;
		for (size_t i = 0; i < n; i++) {
			if (lk_hex(p[i]))
				h++;
			else if (p[i] != ':' && p[i] != '-')
				other = true;
		}
		ok = h == 16 && !other && !moat__leak_placeholder(p, n) &&
		     !only_char(p, n, '0') && !only_char(p, n, 'F') &&
		     !only_char(p, n, 'f');
		break;
	}
	case KD_AD_ID:
		ok = is_uuid(p, n) &&
		     memcmp(p, "00000000-0000-0000-0000-000000000000", 36);
		break;
	default:
		break;
	}
	if (ok && k > 1) { /* 000000000000000: a placeholder */
		size_t i = 1;
		while (i < k && g[i] == g[0])
			i++;
		ok = i < k;
	}
	return ok;
}

static void device_field(struct lk_scan *sc, const struct lk_field *f)
{
	static const char *const names[] = {"", "imei", "imeisv", "iccid",
					    "imsi", "meid", "android_id",
					    "ad_id", "eui"};
	const uint8_t *d = sc->d;
	size_t s = f->s, e = f->e;
	trim(d, &s, &e);
	const uint8_t *p = d + s;
	size_t n = e - s;
	if (n < 10 || n > 40 || f->vt == LV_LITERAL)
		return;
	uint8_t g[40];
	size_t k = digits_of(p, n, g, sizeof(g));
	if (!device_value_ok(f->ki.sub, p, n, g, k))
		return;
	struct lk_cand *c = add_field(sc, f, MOAT_LEAK_DEVICE_ID, s, e,
				      MOAT_LEAK_SEV_MEDIUM, 95, 0);
	if (c)
		moat__leak_prev_fmt(c, "%s:****%.4s", names[f->ki.sub],
				    (const char *)p + n - 4);
}

static void vin_field(struct lk_scan *sc, const struct lk_field *f)
{
	const uint8_t *d = sc->d;
	size_t s = f->s, e = f->e;
	trim(d, &s, &e);
	if (e - s != 17 || !is_text(f->vt))
		return;
	unsigned conf = moat__leak_vin_ok(d + s, true);
	if (!conf)
		return;
	struct lk_cand *c = add_field(sc, f, MOAT_LEAK_VEHICLE_ID, s, e,
				      MOAT_LEAK_SEV_LOW, conf, 0);
	if (c)
		moat__leak_prev_fmt(c, "%.3s**************",
				    (const char *)d + s);
}

static void mac_field(struct lk_scan *sc, const struct lk_field *f)
{
	const uint8_t *d = sc->d;
	size_t s = f->s, e = f->e;
	trim(d, &s, &e);
	if (e - s != 12 || !is_text(f->vt))
		return;
	unsigned z = 0, ff = 0;
	for (size_t i = s; i < e; i++) {
		if (!lk_hex(d[i]))
			return;
		z += d[i] == '0';
		ff += (d[i] | 0x20) == 'f';
	}
	if (z == 12 || ff == 12)
		return;
	struct lk_cand *c = add_field(sc, f, MOAT_LEAK_MAC_ADDRESS, s, e,
				      MOAT_LEAK_SEV_LOW, 90, 0);
	if (c)
		moat__leak_prev_fmt(c, "%.6s******", (const char *)d + s);
}

static void host_field(struct lk_scan *sc, const struct lk_field *f)
{
	const uint8_t *d = sc->d;
	size_t s = f->s, e = f->e;
	trim(d, &s, &e);
	size_t n = e - s;
	if (!is_text(f->vt) || n < 2 || n > 63 || !only(d + s, n, "-") ||
	    count_letters(d + s, n) == 0 || d[s] == '-' || d[e - 1] == '-' ||
	    eq_ci(d + s, n, "localhost") || moat__leak_placeholder(d + s, n))
		return;
	struct lk_cand *c = add_field(sc, f, MOAT_LEAK_INTERNAL_HOSTNAME, s, e,
				      MOAT_LEAK_SEV_LOW, 80, 0);
	if (c)
		moat__leak_prev_fmt(c, "%c***", d[s]);
}

/* ---- dispatch --------------------------------------------------------------- */

static void ssid_field(struct lk_scan *sc, const struct lk_field *f)
{
	size_t s = f->s, e = f->e;
	trim(sc->d, &s, &e);
	if (e > s && is_text(f->vt) &&
	    !moat__leak_placeholder(sc->d + s, e - s)) {
		if (f->obj)
			f->obj->ssid = true;
		sc->any_ssid = true;
	}
}

/* A key with a secret-naming word that is not a credential key. */
static void secret_word_field(struct lk_scan *sc, const struct lk_field *f)
{
	if ((f->ki.flags & (KF_SECRET_WORD | KF_VETO)) != KF_SECRET_WORD)
		return;
	if (lk_enabled(sc, MOAT_LEAK_GENERIC_SECRET))
		generic_field(sc, f);
	if (f->obj && is_text(f->vt)) { /* "key" next to an "ssid" */
		size_t s = f->s, e = f->e;
		trim(sc->d, &s, &e);
		if (e > s && !moat__leak_placeholder(sc->d + s, e - s))
			remember_wifi(sc, f, s, e, false);
	}
}

void moat__leak_field(struct lk_scan *sc, const struct lk_field *f)
{
	sc->touched++;
	switch (f->ki.kind) {
	case KK_CRED:
		if (lk_enabled(sc, MOAT_LEAK_CREDENTIAL) ||
		    lk_enabled(sc, MOAT_LEAK_WIFI_CREDENTIALS))
			cred_field(sc, f);
		break;
	case KK_SSID:
		ssid_field(sc, f);
		break;
	case KK_LAT:
	case KK_LON:
		geo_field(sc, f);
		break;
	case KK_GEO:
		geo_string_field(sc, f);
		break;
	case KK_HEALTH:
		health_field(sc, f);
		break;
	case KK_PERSON:
		person_field(sc, f);
		break;
	case KK_HUMAN_NAME_PART:
		name_part_field(sc, f);
		break;
	case KK_PERSON_OF: /* "Contact: Maria Rossi" */
		person_of_field(sc, f);
		break;
	case KK_NATID:
		natid_field(sc, f);
		break;
	case KK_DEVICE:
		device_field(sc, f);
		break;
	case KK_VIN:
		vin_field(sc, f);
		break;
	case KK_MAC:
		mac_field(sc, f);
		break;
	case KK_HOST:
		host_field(sc, f);
		break;
	case KK_AWS_SECRET:
		aws_secret_field(sc, f);
		break;
	default:
		secret_word_field(sc, f);
		break;
	}
}

static void wifi_emit(struct lk_scan *sc, size_t s, size_t e, uint8_t vfl,
		      const char *path)
{
	struct lk_cand *c = moat__leak_add(
		sc, MOAT_LEAK_WIFI_CREDENTIALS, s, e, MOAT_LEAK_SEV_HIGH, 95,
		(uint32_t)vfl | MOAT_LEAK_F_CONTEXT);
	if (!c)
		return;
	moat__leak_prev_fmt(c, "ssid + **** (%zu chars)", e - s);
	if (path && path[0]) {
		snprintf(c->f.path, sizeof(c->f.path), "%s", path);
		c->has_path = true;
	}
}

/* The credential candidate on [s, e), for its path. */
static const char *cred_path(const struct lk_scan *sc, size_t s, size_t e)
{
	for (size_t i = 0; i < sc->ncand; i++) {
		const struct lk_cand *c = &sc->cand[i];
		if (c->f.category == MOAT_LEAK_CREDENTIAL && c->f.start == s &&
		    c->f.end == e)
			return c->f.path;
	}
	return NULL;
}

void moat__leak_object_end(struct lk_scan *sc, struct lk_frame *fr)
{
	moat__leak_geo_fields(sc, &fr->lat, &fr->lon, true);
	if (fr->ssid && fr->psk_set) {
		wifi_emit(sc, fr->psk_s, fr->psk_e, fr->psk_vflags,
			  cred_path(sc, fr->psk_s, fr->psk_e));
		for (size_t i = 0; i < sc->nwifi; i++)
			if (sc->wifi[i].s == fr->psk_s)
				sc->wifi[i].done = true;
	}
}

void moat__leak_text_end(struct lk_scan *sc)
{
	if (!sc->any_ssid)
		return;
	/* an ssid anywhere in the message: explicit Wi-Fi keys (psk,
	 * wpa_key, wifi_password) anywhere, and in text any password */
	for (size_t i = 0; i < sc->nwifi; i++) {
		struct lk_wifi *w = &sc->wifi[i];
		if (w->done || !(w->psk || w->text))
			continue;
		w->done = true;
		wifi_emit(sc, w->s, w->e, w->vflags, cred_path(sc, w->s, w->e));
	}
}

/* ---- key=value pairs in text ---------------------------------------------- */

static bool key_char(uint8_t c)
{
	return lk_alnum(c) || c == '_' || c == '-' || c == '.';
}

static bool value_stop(uint8_t c)
{
	return lk_space(c) || c == ',' || c == ';' || c == '&' || c == '}' ||
	       c == ']' || c == ')' || c == '"' || c == '\'' || c == '<' ||
	       c == '>' || c == '|' || c == '\\' || c == '`' || c < 0x20;
}

/* Unquoted value from v (below hi), read as the key's kind wants. */
static size_t text_value_end(const struct lk_scan *sc, size_t v, size_t hi,
			     struct lk_keyinfo ki)
{
	const uint8_t *d = sc->d;
	size_t e = v;
	if (ki.kind == KK_GEO) {
		while (e < hi && e - v < 48 &&
		       (lk_digit(d[e]) || d[e] == '.' || d[e] == ',' ||
			d[e] == ';' || d[e] == '-' || d[e] == ' '))
			e++;
		return e;
	}
	bool spaces = ki.kind == KK_PERSON || ki.kind == KK_HUMAN_NAME_PART ||
		      ki.kind == KK_PERSON_OF ||
		      (ki.kind == KK_CRED && ki.sub == KC_AUTH);
	while (e < hi && e - v < 512) {
		uint8_t c = d[e];
		if (c == ' ' && spaces && e + 1 < hi && !value_stop(d[e + 1])) {
			/* the next word is a new key: stop */
			size_t w = e + 1;
			while (w < hi && key_char(d[w]))
				w++;
			if (w < hi && (d[w] == '=' || d[w] == ':'))
				break;
			if (ki.kind == KK_CRED && e - v > 16)
				break; /* "Bearer xyz": one space only */
			e++;
			continue;
		}
		if (value_stop(c) || (sc->binary && c >= 0x7f))
			break; /* binary around a text island ends the value */
		e++;
	}
	return e;
}

/* The key before the separator at sep: d[*ks..*ke).  Words separated by
 * single spaces count for ':' ("Heart rate: 72"). */
static bool key_span(const uint8_t *d, size_t lo, size_t sep, size_t *ks,
		     size_t *ke)
{
	size_t k = sep;
	while (k > lo && sep - k < 3 && (d[k - 1] == ' ' || d[k - 1] == '\t'))
		k--;
	if (k > lo && (d[k - 1] == '"' || d[k - 1] == '\'')) {
		k--;
		if (k > lo && d[k - 1] == '\\')
			k--;
	}
	size_t e = k, s = k;
	unsigned words = 0;
	while (s > lo && e - s < 64) {
		uint8_t c = d[s - 1];
		if (key_char(c))
			s--;
		else if (c == ' ' && d[sep] == ':' && words < 3 && s - 1 > lo &&
			 key_char(d[s - 2]))
			s--, words++;
		else
			break;
	}
	while (s < e && !lk_alnum(d[s]))
		s++;
	*ks = s;
	*ke = e;
	return s < e;
}

/* A quoted value at v ('...', "..." or \"...\" inside a JSON string):
 * its content d[*vs..*ve). */
static bool quoted_value(const uint8_t *d, size_t v, size_t hi, size_t *vs,
			 size_t *ve)
{
	bool esc = d[v] == '\\';
	uint8_t q = esc ? '"' : d[v];
	size_t s = v + (esc ? 2 : 1), e = s;
	while (e < hi && e - s < 1024) {
		if (d[e] == q && (esc ? d[e - 1] == '\\' : d[e - 1] != '\\'))
			break;
		e++;
	}
	if (e >= hi || e - s >= 1024)
		return false;
	*vs = s;
	*ve = esc ? e - 1 : e; /* not the backslash of \" */
	return true;
}

static void trigger(struct lk_scan *sc, const struct lk_trig *t, size_t lo,
		    size_t hi, bool in_str)
{
	const uint8_t *d = sc->d;
	size_t sep = t->sep, ks, ke;
	if (!key_span(d, lo, sep, &ks, &ke))
		return;
	struct lk_keyinfo ki = moat__leak_key_class(sc, d + ks, ke - ks);
	if (ki.kind == KK_NONE && !(ki.flags & KF_SECRET_WORD))
		return;
	size_t v = sep + t->seplen;
	while (v < hi && v - sep < 8 && (d[v] == ' ' || d[v] == '\t'))
		v++;
	if (v >= hi)
		return;
	struct lk_field f;
	memset(&f, 0, sizeof(f));
	f.key = d + ks;
	f.klen = ke - ks;
	f.ki = ki;
	f.idx = -1;
	f.in_str = in_str;
	if (d[v] == '"' || d[v] == '\'' ||
	    (d[v] == '\\' && v + 1 < hi && d[v + 1] == '"')) {
		if (!quoted_value(d, v, hi, &f.s, &f.e))
			return;
		f.vt = LV_QTEXT;
	} else {
		f.s = v;
		f.e = text_value_end(sc, v, hi, ki);
		f.vt = LV_TEXT;
	}
	if (f.e > f.s)
		moat__leak_field(sc, &f);
}

/* The key ending before a separator at sep (quotes and spaces skipped)
 * starts with a letter or '_': "10:30" and "a==b" are not pairs. */
static bool key_before(const uint8_t *d, size_t lo, size_t sep)
{
	size_t k = sep;
	while (k > lo && sep - k < 3 && (d[k - 1] == ' ' || d[k - 1] == '\t'))
		k--;
	if (k > lo && (d[k - 1] == '"' || d[k - 1] == '\''))
		k--;
	if (k > lo && d[k - 1] == '\\')
		k--;
	size_t e = k;
	while (k > lo && e - k < 64 && key_char(d[k - 1]))
		k--;
	while (k < e && !lk_alnum(d[k]) && d[k] != '_')
		k++;
	return k < e && (lk_alpha(d[k]) || d[k] == '_');
}

void moat__leak_kv_scan(struct lk_scan *sc, size_t lo, size_t hi,
			bool in_str)
{
	const uint8_t *d = sc->d;
	sc->touched++;
	for (size_t i = lo; i < hi && !sc->stop; i++) {
		uint8_t c = d[i];
		if (c != '=' && c != ':')
			continue;
		if (i > lo && !lk_alpha(d[i - 1]) && d[i - 1] != '_' &&
		    !lk_space(d[i - 1]) && d[i - 1] != '"' && d[i - 1] != '\'' &&
		    !lk_digit(d[i - 1]))
			continue;
		struct lk_trig t = {(uint32_t)i, 1};
		uint8_t nx = i + 1 < hi ? d[i + 1] : 0;
		if (c == '=' && nx == '>')
			t.seplen = 2;
		else if (nx == '=' || (c == ':' && (nx == ':' || nx == '/')))
			continue; /* "==", ":=", "::", "://" */
		if (c == '=' && i > lo && strchr("!<>=:", d[i - 1]))
			continue;
		if (i == lo || !key_before(d, lo, i))
			continue;
		trigger(sc, &t, lo, hi, in_str);
		i += t.seplen - 1;
	}
}

/* ---- key class cache --------------------------------------------------------- */

struct lk_keyinfo moat__leak_key_class(struct lk_scan *sc, const uint8_t *k,
				       size_t n)
{
	if (n == 0 || n > LEAK_KCACHE_KEY)
		return moat__leak_key_classify(k, n);
	/* keys repeat message after message: FNV-1a over the (short) key */
	uint32_t h = 2166136261u;
	for (size_t i = 0; i < n; i++)
		h = (h ^ k[i]) * 16777619u;
	struct lk_kcache_ent *e = &sc->kcache[(h ^ h >> 16) & (LEAK_KCACHE - 1)];
	if (e->len == n) {
		size_t i = 0;
		while (i < n && e->key[i] == k[i])
			i++;
		if (i == n)
			return e->ki;
	}
	e->ki = moat__leak_key_classify(k, n);
	e->len = (uint8_t)n;
	memcpy(e->key, k, n);
	return e->ki;
}

/* ---- passwords on command lines ------------------------------------------ */

/* "--password VALUE", "--pw=VALUE", and mosquitto_pub's "-P VALUE" (only
 * on a mosquitto or MQTT command line: elsewhere -P is often a port). */
void moat__leak_x_cli_pw(struct lk_scan *sc, unsigned rule, size_t end)
{
	static const char *const ctx_mqtt[] = {"mosquitto", "mqtt", "moat",
					       NULL};
	const uint8_t *d = sc->d;
	if (end <= sc->tok_end[rule])
		return;
	sc->tok_end[rule] = end;
	if (d[end - 2] == 'P' && d[end - 3] == '-' &&
	    ((end > 3 && !lk_space(d[end - 4])) ||
	     !moat__leak_ctx_before(sc, end - 3, 200, ctx_mqtt)))
		return;
	size_t v = end;
	while (v < sc->n && v - end < 4 && d[v] == ' ')
		v++;
	size_t s = v, e;
	if (v < sc->n && (d[v] == '"' || d[v] == '\'')) {
		s = v + 1;
		e = s;
		while (e < sc->n && e - s < 256 && d[e] != d[v])
			e++;
		if (e >= sc->n || d[e] != d[v])
			return;
	} else {
		e = v;
		while (e < sc->n && e - v < 256 && !lk_space(d[e]) && d[e] != '"')
			e++;
	}
	sc->tok_end[rule] = e;
	if (e == s || d[s] == '-' || moat__leak_placeholder(d + s, e - s) ||
	    looks_like_path(d + s, e - s))
		return;
	uint32_t fl = moat__leak_weak_password(d + s, e - s)
			      ? MOAT_LEAK_F_WEAK_PASSWORD
			      : 0;
	struct lk_cand *c = moat__leak_add(sc, MOAT_LEAK_CREDENTIAL, s, e,
					   MOAT_LEAK_SEV_HIGH, 90,
					   fl | MOAT_LEAK_F_CONTEXT);
	if (c)
		moat__leak_prev_fmt(c, "%s (%zu chars)",
				    fl ? "weak ****" : "****", e - s);
}
