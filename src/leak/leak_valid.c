/* Validators and small helpers of the leak detector: character classes,
 * context words, entropy, Luhn, base64, numbers, dates, placeholder and
 * weak-password lists, IBAN lengths.  All are pure functions over byte
 * ranges; none allocates. */
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "leak/leak_int.h"

/* ---- character classes ---------------------------------------------------- */

bool moat__leak_in_class(uint8_t c, unsigned cs)
{
	switch (cs) {
	case LK_CS_ALNUM:
		return lk_alnum(c);
	case LK_CS_ALNUM_US:
		return lk_alnum(c) || c == '_';
	case LK_CS_B64URL:
		return lk_alnum(c) || c == '_' || c == '-';
	case LK_CS_B64:
		return lk_alnum(c) || c == '+' || c == '/';
	case LK_CS_B64_ANY:
		return lk_alnum(c) || c == '+' || c == '/' || c == '_' ||
		       c == '-' || c == '=';
	case LK_CS_HEX:
		return lk_hex(c);
	case LK_CS_LHEX:
		return lk_digit(c) || (c >= 'a' && c <= 'f');
	case LK_CS_SLACK:
		return lk_alnum(c) || c == '-';
	case LK_CS_AZURE:
		return lk_alnum(c) || c == '_' || c == '~' || c == '.' ||
		       c == '-';
	case LK_CS_SENDGRID:
		return lk_alnum(c) || c == '_' || c == '.' || c == '=' ||
		       c == '-';
	case LK_CS_JWT:
		return lk_alnum(c) || c == '_' || c == '-' || c == '.' ||
		       c == '=';
	case LK_CS_TOKEN:
		return lk_alnum(c) || c == '.' || c == '_' || c == '~' ||
		       c == '+' || c == '/' || c == '=' || c == '-';
	case LK_CS_HOST:
		return lk_alnum(c) || c == '.' || c == '-';
	case LK_CS_DIGIT:
		return lk_digit(c);
	case LK_CS_VIN:
		return lk_digit(c) ||
		       (lk_upper(c) && c != 'I' && c != 'O' && c != 'Q');
	case LK_CS_ALPHA:
		return lk_alpha(c);
	default:
		return false;
	}
}

size_t moat__leak_span(const struct lk_scan *sc, size_t from, unsigned cs)
{
	size_t i = from;
	while (i < sc->n && moat__leak_in_class(sc->d[i], cs))
		i++;
	return i;
}

size_t moat__leak_rspan(const struct lk_scan *sc, size_t to, unsigned cs)
{
	size_t i = to;
	while (i > 0 && moat__leak_in_class(sc->d[i - 1], cs))
		i--;
	return i;
}

/* ---- context words -------------------------------------------------------- */

/* word (lower case) at d[i..] as a whole word of d[lo..hi). */
static bool word_at(const uint8_t *d, size_t lo, size_t hi, size_t i,
		    const char *word, size_t wn)
{
	if (i + wn > hi)
		return false;
	for (size_t k = 0; k < wn; k++)
		if (lk_tolower(d[i + k]) != (uint8_t)word[k])
			return false;
	if (i > lo) {
		uint8_t p = d[i - 1];
		/* inside a word, unless a camelCase boundary (fooIMEI) */
		if (lk_alpha(p) && !(lk_lower(p) && lk_upper(d[i])))
			return false;
	}
	if (i + wn < hi && lk_lower(d[i + wn]) && lk_alpha(d[i + wn - 1]))
		return false;
	return true;
}

static bool ctx_in(const struct lk_scan *sc, size_t lo, size_t hi,
		   const char *const *words)
{
	for (const char *const *w = words; *w; w++) {
		size_t wn = strlen(*w);
		uint8_t first = (uint8_t)(*w)[0];
		for (size_t i = lo; i + wn <= hi; i++)
			if (lk_tolower(sc->d[i]) == first &&
			    word_at(sc->d, lo, hi, i, *w, wn))
				return true;
	}
	return false;
}

bool moat__leak_ctx_before(const struct lk_scan *sc, size_t s, size_t win,
			   const char *const *words)
{
	if (s > sc->n)
		s = sc->n;
	size_t lo = s > win ? s - win : 0;
	return ctx_in(sc, lo, s, words);
}

bool moat__leak_ctx_after(const struct lk_scan *sc, size_t e, size_t win,
			  const char *const *words)
{
	if (e > sc->n)
		return false;
	size_t hi = sc->n - e > win ? e + win : sc->n;
	return ctx_in(sc, e, hi, words);
}

/* ---- numbers and checksums ------------------------------------------------ */

double moat__leak_entropy(const uint8_t *p, size_t n)
{
	if (n == 0)
		return 0.0;
	unsigned cnt[256];
	memset(cnt, 0, sizeof(cnt));
	for (size_t i = 0; i < n; i++)
		cnt[p[i]]++;
	double h = 0.0, dn = (double)n;
	for (unsigned i = 0; i < 256; i++) {
		if (!cnt[i])
			continue;
		double q = (double)cnt[i] / dn;
		h -= q * log2(q);
	}
	return h;
}

bool moat__leak_luhn(const uint8_t *p, size_t n)
{
	unsigned sum = 0, k = 0;
	for (size_t i = n; i > 0; i--) {
		uint8_t c = p[i - 1];
		if (!lk_digit(c))
			continue;
		unsigned v = (unsigned)(c - '0');
		if (k++ & 1u) {
			v *= 2;
			if (v > 9)
				v -= 9;
		}
		sum += v;
	}
	return k > 1 && sum % 10 == 0;
}

static int b64_val(uint8_t c)
{
	if (lk_upper(c))
		return c - 'A';
	if (lk_lower(c))
		return c - 'a' + 26;
	if (lk_digit(c))
		return c - '0' + 52;
	if (c == '+' || c == '-')
		return 62;
	if (c == '/' || c == '_')
		return 63;
	return -1;
}

long moat__leak_b64_decode(const uint8_t *p, size_t n, uint8_t *out,
			   size_t outsz)
{
	while (n > 0 && p[n - 1] == '=')
		n--;
	if (n % 4 == 1)
		return -1;
	uint32_t acc = 0;
	unsigned bits = 0;
	size_t o = 0;
	for (size_t i = 0; i < n; i++) {
		int v = b64_val(p[i]);
		if (v < 0)
			return -1;
		acc = (acc << 6) | (uint32_t)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			if (o == outsz)
				return (long)o;
			out[o++] = (uint8_t)(acc >> bits);
		}
	}
	return (long)o;
}

bool moat__leak_parse_decimal(const uint8_t *p, size_t n, double *v,
			      int *decimals)
{
	size_t i = 0;
	bool neg = false;
	if (i < n && (p[i] == '-' || p[i] == '+')) {
		neg = p[i] == '-';
		i++;
	}
	double x = 0.0;
	size_t nd = 0;
	while (i < n && lk_digit(p[i])) {
		if (nd < 18)
			x = x * 10.0 + (double)(p[i] - '0');
		else
			x *= 10.0;
		nd++;
		i++;
	}
	if (nd == 0)
		return false;
	int dec = 0;
	if (i < n && p[i] == '.') {
		i++;
		double scale = 0.1;
		while (i < n && lk_digit(p[i])) {
			if (dec < 18)
				x += (double)(p[i] - '0') * scale;
			scale /= 10.0;
			dec++;
			i++;
		}
		if (dec == 0)
			return false;
	}
	if (i != n)
		return false;
	*v = neg ? -x : x;
	*decimals = dec;
	return true;
}

/* ---- dates ------------------------------------------------------------------ */

static bool num_at(const uint8_t *p, size_t n, size_t at, size_t len,
		   int *out)
{
	if (at + len > n)
		return false;
	int v = 0;
	for (size_t i = 0; i < len; i++) {
		if (!lk_digit(p[at + i]))
			return false;
		v = v * 10 + (p[at + i] - '0');
	}
	*out = v;
	return true;
}

static bool real_date(int y, int m, int d)
{
	static const int mdays[] = {31, 29, 31, 30, 31, 30,
				    31, 31, 30, 31, 30, 31};
	if (y < 1900 || m < 1 || m > 12 || d < 1 || d > mdays[m - 1])
		return false;
	if (m == 2 && d == 29 && (y % 4 != 0 || (y % 100 == 0 && y % 400)))
		return false;
	time_t now = (time_t)moat_wall_s();
	struct tm tm;
	if (!gmtime_r(&now, &tm))
		return false;
	int ty = tm.tm_year + 1900, tmo = tm.tm_mon + 1;
	if (y != ty)
		return y < ty;
	if (m != tmo)
		return m < tmo;
	return d <= tm.tm_mday;
}

/* A date followed by nothing, or by a time part ('T' or ' '). */
static bool date_end_ok(const uint8_t *p, size_t n, size_t at)
{
	return at == n || p[at] == 'T' || p[at] == ' ';
}

bool moat__leak_past_date(const uint8_t *p, size_t n)
{
	int a, b, c;
	/* YYYY-MM-DD, YYYY/MM/DD, YYYY.MM.DD */
	if (num_at(p, n, 0, 4, &a) && n >= 10 &&
	    (p[4] == '-' || p[4] == '/' || p[4] == '.') && p[7] == p[4] &&
	    num_at(p, n, 5, 2, &b) && num_at(p, n, 8, 2, &c) &&
	    date_end_ok(p, n, 10))
		return real_date(a, b, c);
	/* YYYYMMDD */
	if (n == 8 && num_at(p, n, 0, 4, &a) && num_at(p, n, 4, 2, &b) &&
	    num_at(p, n, 6, 2, &c))
		return real_date(a, b, c);
	/* DD.MM.YYYY, DD/MM/YYYY or MM/DD/YYYY, DD-MM-YYYY */
	if (n >= 10 && num_at(p, n, 0, 2, &a) &&
	    (p[2] == '.' || p[2] == '/' || p[2] == '-') && p[5] == p[2] &&
	    num_at(p, n, 3, 2, &b) && num_at(p, n, 6, 4, &c) &&
	    date_end_ok(p, n, 10))
		return real_date(c, b, a) || real_date(c, a, b);
	return false;
}

/* ---- word lists ------------------------------------------------------------- */

static bool eq_ci(const uint8_t *p, size_t n, const char *s)
{
	size_t sn = strlen(s);
	if (sn != n)
		return false;
	for (size_t i = 0; i < n; i++)
		if (lk_tolower(p[i]) != (uint8_t)s[i])
			return false;
	return true;
}

static bool prefix_ci(const uint8_t *p, size_t n, const char *s)
{
	size_t sn = strlen(s);
	if (sn > n)
		return false;
	for (size_t i = 0; i < sn; i++)
		if (lk_tolower(p[i]) != (uint8_t)s[i])
			return false;
	return true;
}

static bool contains_ci(const uint8_t *p, size_t n, const char *s)
{
	size_t sn = strlen(s);
	for (size_t i = 0; i + sn <= n; i++)
		if (prefix_ci(p + i, n - i, s))
			return true;
	return false;
}

static bool in_list_ci(const uint8_t *p, size_t n, const char *const *list)
{
	for (const char *const *w = list; *w; w++)
		if (eq_ci(p, n, *w))
			return true;
	return false;
}

/* Only mask characters: ****, xxxx, ----, ####, ...., ••••. */
static bool mask_only(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		uint8_t c = p[i];
		if (c == '*' || c == 'x' || c == 'X' || c == '#' || c == '.' ||
		    c == '-' || c == '_' || c == '?' || c == ' ')
			continue;
		if (c == 0xe2 && i + 2 < n && p[i + 1] == 0x80 &&
		    p[i + 2] == 0xa2) { /* U+2022 bullet */
			i += 2;
			continue;
		}
		return false;
	}
	return true;
}

/* API_KEY, MQTT_PASSWORD: the name of a variable, not its value. */
static bool env_name(const uint8_t *p, size_t n)
{
	bool us = false;
	for (size_t i = 0; i < n; i++) {
		if (p[i] == '_')
			us = true;
		else if (!lk_upper(p[i]) && !lk_digit(p[i]))
			return false;
	}
	return us && (contains_ci(p, n, "key") || contains_ci(p, n, "token") ||
		      contains_ci(p, n, "secret") || contains_ci(p, n, "pass") ||
		      contains_ci(p, n, "pwd"));
}

/* A run of at least 4 mask characters (sk-****abcd, AKIA********WXYZ,
 * ghp_XXXXXXXXXXXX...): a masked or made-up key, never a real one. */
static bool masked_run(const uint8_t *p, size_t n)
{
	size_t run = 0;
	uint8_t prev = 0;
	for (size_t i = 0; i < n; i++) {
		uint8_t c = p[i];
		if (c == 0xe2 && i + 2 < n && p[i + 1] == 0x80 &&
		    p[i + 2] == 0xa2) { /* U+2022 bullet counts as '*' */
			i += 2;
			c = '*';
		}
		if (c != '*' && c != 'X' && c != 'x' && c != '#') {
			run = 0;
			continue;
		}
		run = c == prev && run ? run + 1 : 1;
		prev = c;
		/* xxxx in a real random key is rare, **** in one never */
		if (run >= (c == '*' ? 4u : 8u))
			return true;
	}
	return false;
}

/* A vendor-shaped prefix (xoxb-, ghp_, sk_live_, glpat-): its length, or
 * 0.  Up to three lower-case words of 2..6 letters, each ending in '-'
 * or '_'. */
static size_t vendor_prefix(const uint8_t *p, size_t n)
{
	size_t i = 0, k = 0;
	for (unsigned w = 0; w < 3; w++) {
		size_t j = i;
		while (j < n && j - i <= 6 && (lk_lower(p[j]) || lk_digit(p[j])))
			j++;
		if (j - i < 2 || j - i > 6 || j >= n ||
		    (p[j] != '-' && p[j] != '_'))
			break;
		i = k = j + 1;
	}
	return k < n ? k : 0;
}

bool moat__leak_placeholder(const uint8_t *p, size_t n)
{
	static const char *const words[] = {
		"null", "nil", "none", "undefined", "n/a", "na", "redacted",
		"hidden", "masked", "removed", "omitted", "empty", "unset",
		"not set", "notset", "tbd", "todo", "true", "false", "yes",
		"no", "on", "off", "enabled", "disabled", "required",
		"optional", "unknown", "not_set", "<none>", "nan", "generate",
		"generated", "auto", "random", "token", "apikey", "api_key", "api-key",
		NULL};
	static const char *const prefixes[] = {
		"${", "{{", "%(", "$(", "env:", "vault:", "file:", "ssm:",
		"kms:", "keyvault:", "op://", "secretsmanager:",
		"arn:aws:secretsmanager", "your_", "your-", "your ", "insert_",
		"insert-", "insert ", "enter_", "enter-", "enter ", "replace_",
		"replace-", "replace ", "put_", "put-", "put ", "example_",
		"example-", "sample_", "sample-", "dummy_", "dummy-", "fake_",
		"fake-", "placeholder", NULL};
	while (n && lk_space(p[0])) {
		p++;
		n--;
	}
	while (n && lk_space(p[n - 1]))
		n--;
	if (n == 0 || mask_only(p, n) || in_list_ci(p, n, words) ||
	    masked_run(p, n))
		return true;
	size_t vp = vendor_prefix(p, n); /* xoxb-your-token */
	if (vp && moat__leak_placeholder(p + vp, n - vp))
		return true;
	for (const char *const *w = prefixes; *w; w++)
		if (prefix_ci(p, n, *w))
			return true;
	/* <your key>, [API KEY], also when the value was cut at a space */
	if (p[0] == '<' || (p[0] == '[' && (n == 1 || !lk_digit(p[1]))) ||
	    (p[0] == '{' && p[n - 1] == '}'))
		return true;
	if (eq_ci(p, n, "%s") || eq_ci(p, n, "%d") || eq_ci(p, n, "%v"))
		return true;
	if (p[0] == '$' && n > 1 && env_name(p + 1, n - 1))
		return true;
	if (p[0] == '$' && n > 1 && (lk_upper(p[1]) || p[1] == '_')) {
		size_t i = 1;
		while (i < n && (lk_upper(p[i]) || lk_digit(p[i]) || p[i] == '_'))
			i++;
		if (i == n)
			return true;
	}
	if (contains_ci(p, n, "redacted") || contains_ci(p, n, "_here") ||
	    contains_ci(p, n, "-here") || contains_ci(p, n, " here") ||
	    env_name(p, n))
		return true;
	return false;
}

bool moat__leak_weak_password(const uint8_t *p, size_t n)
{
	/* The most common passwords of public breach lists and the default
	 * credentials of IoT devices (Mirai's list, router and camera
	 * defaults). */
	static const char *const weak[] = {
		"123456", "12345", "1234", "123", "12345678", "123456789",
		"1234567890", "1234567", "111111", "000000", "0000", "00000",
		"1111", "11111", "1111111", "121212", "123123", "654321",
		"666666", "696969", "7777777", "888888", "987654321", "112233",
		"159753", "147258369", "54321", "123321", "password",
		"password1", "password123", "passw0rd", "p@ssw0rd", "p@ssword",
		"pass", "pass123", "pass1234", "passwd", "admin", "admin1",
		"admin123", "admin1234", "administrator", "root", "toor",
		"guest", "user", "test", "test123", "testing", "demo",
		"default", "changeme", "changeit", "letmein", "welcome",
		"welcome1", "welcome123", "qwerty", "qwerty123", "qwertyuiop",
		"asdf", "asdfgh", "asdfghjkl", "zxcvbnm", "abc123", "abcd1234",
		"iloveyou", "monkey", "dragon", "master", "secret", "sunshine",
		"princess", "football", "baseball", "shadow", "superman",
		"trustno1", "hello", "hello123", "login", "access", "1q2w3e4r",
		"1qaz2wsx", "q1w2e3r4", "raspberry", "ubnt", "support",
		"service", "system", "manager", "operator", "private",
		"public", "cisco", "mqtt", "mosquitto", "iot", "vizxv",
		"xc3511", "xmhdipc", "juantech", "7ujmko0admin",
		"7ujmko0vizxv", "klv123", "klv1234", "zlxx.", "hi3518", "jvbzd",
		"anko", "realtek", "smcadmin", "meinsm", "tech", "zte521",
		"ikwb", "dreambox", "alpine", "openelec", "osmc", "libreelec",
		"pi", "hunter2", "password!", "letmein1", "admin@123",
		"root123", "12341234", "88888888", "11111111", "00000000",
		"abcdef", "abc", "qwe123", NULL};
	while (n && lk_space(p[0])) {
		p++;
		n--;
	}
	while (n && lk_space(p[n - 1]))
		n--;
	return n > 0 && in_list_ci(p, n, weak);
}

unsigned moat__leak_iban_len(const uint8_t *cc)
{
	/* ISO 13616 registry: country code and IBAN length. */
	static const char table[] =
		"AD24AE23AL28AT20AZ28BA20BE16BG22BH22BI27BR29BY28CH21CR22"
		"CY28CZ24DE22DJ27DK18DO28EE20EG29ES24FI18FK18FO18FR27GB22"
		"GE22GI23GL18GR27GT28HR21HU28IE22IL23IQ23IS26IT27JO30KW30"
		"KZ20LB28LC32LI21LT20LU20LV21LY25MC27MD24ME22MK19MN20MR27"
		"MT31MU30NI28NL18NO15OM23PK24PL28PS29PT25QA29RO24RS22RU33"
		"SA24SC31SD18SE24SI19SK24SM27SO23ST25SV28TL23TN24TR26UA29"
		"VA22VG24XK20YE30";
	for (size_t i = 0; i + 4 <= sizeof(table) - 1; i += 4)
		if (table[i] == (char)cc[0] && table[i + 1] == (char)cc[1])
			return (unsigned)((table[i + 2] - '0') * 10 +
					  (table[i + 3] - '0'));
	return 0;
}
