/* Extractors for secrets: HTTP Basic/Bearer (L7), JWT (L8), private keys
 * (L9), AWS keys (L11), vendor tokens (L12). */
#include <string.h>

#include "leak/leak_int.h"

static bool has_prefix(const uint8_t *p, size_t n, const char *s)
{
	size_t sn = strlen(s);
	return n >= sn && memcmp(p, s, sn) == 0;
}

static void prev_prefix(struct lk_cand *c, const uint8_t *d, size_t s,
			size_t e, size_t keep)
{
	keep = MOAT_MIN(keep, (e - s) / 4);
	moat__leak_prev_fmt(c, "%.*s****", (int)keep, (const char *)d + s);
}

/* ---- HTTP authorization (L7) ---------------------------------------------- */

void moat__leak_x_basic(struct lk_scan *sc, unsigned rule, size_t end)
{
	const uint8_t *d = sc->d;
	if (end <= sc->tok_end[rule])
		return;
	size_t s = moat__leak_rspan(sc, end, LK_CS_B64);
	size_t e = moat__leak_span(sc, end, LK_CS_B64);
	while (e < sc->n && d[e] == '=' && e - s < 2048)
		e++;
	sc->tok_end[rule] = e;
	if (e < sc->n && (lk_alnum(d[e]) || d[e] == '_' || d[e] == '-'))
		return;
	uint8_t buf[256];
	long n = moat__leak_b64_decode(d + s, e - s, buf, sizeof(buf));
	if (n < 3 || (size_t)n == sizeof(buf))
		return;
	size_t colon = 0;
	for (long i = 0; i < n; i++) {
		if (buf[i] < 0x20 || buf[i] == 0x7f)
			return; /* not printable text */
		if (buf[i] == ':' && !colon)
			colon = (size_t)i + 1;
	}
	if (!colon || colon == 1 || colon == (size_t)n)
		return; /* user:password, both present */
	const uint8_t *pw = buf + colon;
	size_t pwn = (size_t)n - colon;
	if (moat__leak_placeholder(pw, pwn))
		return;
	uint32_t fl = moat__leak_weak_password(pw, pwn)
			      ? MOAT_LEAK_F_WEAK_PASSWORD
			      : 0;
	struct lk_cand *c = moat__leak_add(sc, MOAT_LEAK_HTTP_AUTH, s, e,
					   MOAT_LEAK_SEV_HIGH, 95, fl);
	if (c)
		moat__leak_prev_set(c, "Basic ****");
}

void moat__leak_x_bearer(struct lk_scan *sc, unsigned rule, size_t end)
{
	const uint8_t *d = sc->d;
	if (end <= sc->tok_end[rule])
		return;
	size_t s = moat__leak_rspan(sc, end, LK_CS_TOKEN);
	size_t e = moat__leak_span(sc, end, LK_CS_TOKEN);
	sc->tok_end[rule] = e;
	if (e - s > 4096 || moat__leak_placeholder(d + s, e - s))
		return;
	if (moat__leak_entropy(d + s, e - s) < 3.0)
		return;
	unsigned classes = 0;
	bool lo = false, up = false, dig = false;
	for (size_t i = s; i < e; i++) {
		lo |= lk_lower(d[i]);
		up |= lk_upper(d[i]);
		dig |= lk_digit(d[i]);
	}
	classes = (unsigned)lo + (unsigned)up + (unsigned)dig;
	if (classes < 2)
		return;
	struct lk_cand *c = moat__leak_add(sc, MOAT_LEAK_HTTP_AUTH, s, e,
					   MOAT_LEAK_SEV_HIGH, 90, 0);
	if (c)
		moat__leak_prev_set(c, "Bearer ****");
}

/* ---- JWT (L8) ----------------------------------------------------------------- */

static size_t seg_end(const struct lk_scan *sc, size_t from)
{
	return moat__leak_span(sc, from, LK_CS_B64URL);
}

/* Decoded segment d[s..e) starts a JSON object. */
static bool json_object_prefix(const uint8_t *p, long n)
{
	long i = 0;
	while (i < n && lk_space(p[i]))
		i++;
	return i < n && p[i] == '{';
}

static bool jwt_exp_past(const uint8_t *pl, long pn)
{
	size_t vs, ve;
	enum lk_vtype vt;
	if (!moat__leak_json_get(pl, (size_t)pn, "exp", &vs, &ve, &vt) ||
	    vt != LV_NUMBER)
		return false;
	double v;
	int dec;
	if (!moat__leak_parse_decimal(pl + vs, ve - vs, &v, &dec))
		return false;
	return v < (double)moat_wall_s();
}

/* The header segment d[hs..dot) decodes to a JSON object with a string
 * "alg": its printable form into alg (16 bytes), and whether it is
 * "none". */
static bool jwt_alg(const uint8_t *d, size_t hs, size_t dot, char *alg,
		    bool *none)
{
	uint8_t hdr[512];
	long hn = moat__leak_b64_decode(d + hs, dot - hs, hdr, sizeof(hdr));
	size_t as, ae;
	enum lk_vtype avt;
	if (hn < 2 || !json_object_prefix(hdr, hn) ||
	    !moat__leak_json_get(hdr, (size_t)hn, "alg", &as, &ae, &avt) ||
	    avt != LV_STRING || ae == as)
		return false;
	size_t an = MOAT_MIN(ae - as, (size_t)15);
	for (size_t i = 0; i < an; i++)
		alg[i] = lk_alnum(hdr[as + i]) || hdr[as + i] == '-'
				 ? (char)hdr[as + i]
				 : '?';
	alg[an] = '\0';
	*none = ae - as == 4 && lk_tolower(hdr[as]) == 'n' &&
		lk_tolower(hdr[as + 1]) == 'o' &&
		lk_tolower(hdr[as + 2]) == 'n' &&
		lk_tolower(hdr[as + 3]) == 'e';
	return true;
}

/* A JWS payload segment that decodes to a JSON object; sets EXPIRED. */
static bool jwt_payload(const uint8_t *d, size_t s, size_t e, uint32_t *fl)
{
	uint8_t pl[2048];
	long pn = moat__leak_b64_decode(d + s, e - s, pl, sizeof(pl));
	if (pn < 2 || !json_object_prefix(pl, pn))
		return false;
	if (jwt_exp_past(pl, pn))
		*fl |= MOAT_LEAK_F_EXPIRED;
	return true;
}

/* The token whose header segment ends at dot: header [hs, dot), payload
 * (dot, pe), signature (pe, se), and for a JWE two more up to te.  JWE
 * only: just tokens of 5 segments (the JWE anchor also matches JWS). */
static void jwt_at(struct lk_scan *sc, unsigned rule, size_t dot,
		   bool jwe_only)
{
	const uint8_t *d = sc->d;
	if (dot < sc->tok_end[rule])
		return;
	size_t hs = moat__leak_rspan(sc, dot, LK_CS_B64URL);
	size_t pe = seg_end(sc, dot + 1);
	sc->tok_end[rule] = pe;
	if (!has_prefix(d + hs, dot - hs, "ey") || pe >= sc->n || d[pe] != '.')
		return;
	size_t se = seg_end(sc, pe + 1), te = se;
	bool jwe = false;
	if (te + 1 < sc->n && d[te] == '.') { /* JWE: 5 segments */
		size_t e4 = seg_end(sc, te + 1);
		if (e4 < sc->n && d[e4] == '.') {
			te = seg_end(sc, e4 + 1);
			jwe = true;
		}
	}
	sc->tok_end[rule] = te;
	char alg[16];
	bool none;
	uint32_t fl = jwe ? MOAT_LEAK_F_ENCRYPTED : 0;
	if ((jwe_only && !jwe) ||
	    (te < sc->n && (d[te] == '.' || d[te] == '=')) ||
	    !jwt_alg(d, hs, dot, alg, &none))
		return;
	if (!jwe && (!jwt_payload(d, dot + 1, pe, &fl) ||
		     (!none && se - pe - 1 < 16)))
		return; /* a signed token has a signature */
	if (jwe && (se - pe - 1 < 16 || te - se - 1 < 8))
		return; /* a JWE has an IV, a ciphertext and a tag */
	if (none)
		fl |= MOAT_LEAK_F_ALG_NONE;
	struct lk_cand *c = moat__leak_add(
		sc, MOAT_LEAK_JWT, hs, te,
		none ? MOAT_LEAK_SEV_CRITICAL : MOAT_LEAK_SEV_HIGH, 98, fl);
	if (c)
		moat__leak_prev_fmt(c, "%s alg=%s%s", jwe ? "JWE" : "JWT", alg,
				    (fl & MOAT_LEAK_F_EXPIRED) ? " expired" : "");
}

/* JWS (and JWE whose encrypted key happens to start "ey"): the match
 * ends at ".eyX" after the header. */
void moat__leak_x_jwt(struct lk_scan *sc, unsigned rule, size_t end)
{
	jwt_at(sc, rule, end - 4, false);
}

/* JWE: the match ends just after the header's dot. */
void moat__leak_x_jwe(struct lk_scan *sc, unsigned rule, size_t end)
{
	jwt_at(sc, rule, end - 1, true);
}

/* ---- private keys (L9) ------------------------------------------------------- */

/* First "-----END" at or after from, or SIZE_MAX.  Cached: the anchors
 * of one message come in order, so a message full of BEGIN lines is still
 * searched once. */
static size_t find_end_marker(struct lk_scan *sc, size_t from)
{
	if (sc->pk_from <= from && (sc->pk_end == SIZE_MAX || sc->pk_end >= from))
		return sc->pk_end;
	size_t r = SIZE_MAX, i = from;
	while (i + 8 <= sc->n) {
		const uint8_t *p = memchr(sc->d + i, '-', sc->n - i);
		if (!p)
			break;
		i = (size_t)(p - sc->d);
		if (i + 8 <= sc->n && !memcmp(sc->d + i, "-----END", 8)) {
			r = i;
			break;
		}
		i++;
	}
	sc->pk_from = from;
	sc->pk_end = r;
	return r;
}

/* Base64 characters of the key body in d[s..e): whitespace, JSON "\n"
 * escapes and PEM header lines ("Proc-Type: ...") do not count. */
static size_t body_b64(const uint8_t *d, size_t s, size_t e, size_t *stop)
{
	size_t cnt = 0, i = s;
	while (i < e) {
		uint8_t c = d[i];
		if (lk_alnum(c) || c == '+' || c == '/' || c == '=') {
			cnt++;
			i++;
		} else if (lk_space(c)) {
			i++;
		} else if (c == '\\' && i + 1 < e &&
			   (d[i + 1] == 'n' || d[i + 1] == 'r')) {
			i += 2;
		} else if (c == ':' || c == ',' || c == '-') {
			i++; /* header lines of encrypted PEM */
		} else {
			break;
		}
	}
	*stop = i;
	return cnt;
}

void moat__leak_x_privkey(struct lk_scan *sc, unsigned rule, size_t end)
{
	const uint8_t *d = sc->d;
	if (end <= sc->tok_end[rule])
		return;
	size_t s = end - 15; /* "PRIVATE KEY-----" is at least this long */
	while (s > 0 && end - s < 140 && memcmp(d + s, "-----BEGIN", 10))
		s--;
	if (memcmp(d + s, "-----BEGIN", 10))
		return;
	size_t em = find_end_marker(sc, end);
	size_t stop, fe;
	uint32_t fl = 0;
	size_t b64 = body_b64(d, end, em == SIZE_MAX ? sc->n : em, &stop);
	if (em != SIZE_MAX && stop == em) {
		fe = em + 8; /* through "-----END ... KEY-----" */
		while (fe < sc->n && fe - em < 120 &&
		       (lk_upper(d[fe]) || lk_digit(d[fe]) || d[fe] == ' ' ||
			d[fe] == '_'))
			fe++;
		while (fe < sc->n && d[fe] == '-' && fe - em < 130)
			fe++;
	} else {
		fe = stop; /* cut short: the key as far as it goes */
		fl |= MOAT_LEAK_F_TRUNCATED;
	}
	sc->tok_end[rule] = fe;
	if (b64 < (fl ? 40u : 64u))
		return;
	bool enc = false;
	for (size_t i = s; i + 9 <= end; i++)
		if (!memcmp(d + i, "ENCRYPTED", 9))
			enc = true;
	struct lk_cand *c = moat__leak_add(
		sc, MOAT_LEAK_PRIVATE_KEY, s, fe,
		enc ? MOAT_LEAK_SEV_HIGH : MOAT_LEAK_SEV_CRITICAL, 99, fl);
	if (c)
		moat__leak_prev_fmt(c, "%.*s ***",
				    (int)MOAT_MIN(end - s, (size_t)40),
				    (const char *)d + s);
}

/* ---- AWS (L11) ---------------------------------------------------------------- */

/* A 40-character secret access key near an access key id. */
static void aws_secret_near(struct lk_scan *sc, size_t lo, size_t hi)
{
	const uint8_t *d = sc->d;
	size_t i = lo;
	while (i < hi) {
		if (!moat__leak_in_class(d[i], LK_CS_B64)) {
			i++;
			continue;
		}
		size_t e = moat__leak_span(sc, i, LK_CS_B64);
		bool lo_c = false, up_c = false, dg = false;
		for (size_t k = i; k < e; k++) {
			lo_c |= lk_lower(d[k]);
			up_c |= lk_upper(d[k]);
			dg |= lk_digit(d[k]);
		}
		if (e - i == 40 && (i == 0 || !lk_alnum(d[i - 1])) && lo_c &&
		    up_c && moat__leak_entropy(d + i, 40) >= 4.0) {
			uint32_t fl = memcmp(d + e - 7, "EXAMPLE", 7) == 0 ||
						      memcmp(d + e - 10,
							     "EXAMPLEKEY", 10) == 0
					      ? MOAT_LEAK_F_TEST_VALUE
					      : 0;
			struct lk_cand *c = moat__leak_add(
				sc, MOAT_LEAK_AWS_KEY, i, e,
				MOAT_LEAK_SEV_CRITICAL, 90,
				fl | MOAT_LEAK_F_CONTEXT);
			if (c)
				moat__leak_prev_set(c, "aws secret ****");
		}
		(void)dg;
		i = e;
	}
}

void moat__leak_x_aws(struct lk_scan *sc, unsigned rule, size_t end)
{
	const uint8_t *d = sc->d;
	size_t s = end - 20;
	if (s < sc->tok_end[rule])
		return;
	sc->tok_end[rule] = end;
	if ((s > 0 && (lk_alnum(d[s - 1]) || d[s - 1] == '/' ||
		       d[s - 1] == '+')) ||
	    (end < sc->n && (lk_alnum(d[end]) || d[end] == '/' ||
			     d[end] == '+')))
		return;
	if (moat__leak_entropy(d + s, 20) < 3.0)
		return;
	uint32_t fl = memcmp(d + end - 7, "EXAMPLE", 7) == 0
			      ? MOAT_LEAK_F_TEST_VALUE
			      : 0;
	struct lk_cand *c = moat__leak_add(sc, MOAT_LEAK_AWS_KEY, s, end,
					   MOAT_LEAK_SEV_CRITICAL, 95, fl);
	if (c)
		prev_prefix(c, d, s, end, 4);
	size_t lo = s > 160 ? s - 160 : 0;
	size_t hi = MOAT_MIN(sc->n, end + 160);
	aws_secret_near(sc, lo, s);
	aws_secret_near(sc, end, hi);
}

/* ---- vendor tokens (L12) ----------------------------------------------------- */

void moat__leak_x_vendor(struct lk_scan *sc, unsigned rule, size_t end)
{
	const struct lk_vendor *v = moat__leak_rules[rule].param;
	const uint8_t *d = sc->d;
	if (end < v->anchor_len)
		return;
	size_t s = end - v->anchor_len;
	if (s < sc->tok_end[rule])
		return;
	size_t e = moat__leak_span(sc, end, v->cs);
	sc->tok_end[rule] = e;
	if (v->anchor_len > 1 && s > 0 && (lk_alnum(d[s - 1]) || d[s - 1] == '_'))
		return;
	if (e < sc->n && lk_alnum(d[e]))
		return;
	if (e - s < v->min || e - s > v->max)
		return;
	if (moat__leak_entropy(d + s, e - s) * 10.0 < (double)v->ent10)
		return;
	bool ctx = false;
	if (v->ctx) {
		ctx = moat__leak_ctx_before(sc, s, 96, v->ctx);
		if (!ctx)
			return;
	}
	uint32_t fl = ctx ? MOAT_LEAK_F_CONTEXT : 0;
	enum moat_leak_severity sev = (enum moat_leak_severity)v->sev;
	if (has_prefix(d + s, e - s, "sk_test_") ||
	    has_prefix(d + s, e - s, "rk_test_")) {
		fl |= MOAT_LEAK_F_TEST_VALUE;
		sev = MOAT_LEAK_SEV_HIGH;
	}
	struct lk_cand *c = moat__leak_add(
		sc, (enum moat_leak_category)moat__leak_rules[rule].category, s,
		e, sev, 95, fl);
	if (!c)
		return;
	if (v->anchor_len > 8)
		prev_prefix(c, d, s, e, 4);
	else
		moat__leak_prev_set(c, "****");
}

/* Telegram bot token: digits ':' "AA" + 33. */
void moat__leak_x_telegram(struct lk_scan *sc, unsigned rule, size_t end)
{
	const uint8_t *d = sc->d;
	size_t colon = end - 36;
	size_t s = moat__leak_rspan(sc, colon, LK_CS_DIGIT);
	if (s < sc->tok_end[rule])
		return;
	sc->tok_end[rule] = end;
	if (colon - s < 8 || colon - s > 10 || (s > 0 && lk_alnum(d[s - 1])))
		return;
	if (end < sc->n && moat__leak_in_class(d[end], LK_CS_B64URL))
		return;
	if (moat__leak_entropy(d + colon + 1, 35) < 3.0)
		return;
	struct lk_cand *c = moat__leak_add(sc, MOAT_LEAK_VENDOR_TOKEN, s, end,
					   MOAT_LEAK_SEV_HIGH, 90, 0);
	if (c)
		moat__leak_prev_fmt(c, "%.*s:****", (int)(colon - s),
				    (const char *)d + s);
}

/* OpenAI (sk-proj-..., legacy sk-...T3BlbkFJ...) and Anthropic keys. */
void moat__leak_x_openai(struct lk_scan *sc, unsigned rule, size_t end)
{
	const uint8_t *d = sc->d;
	size_t s = moat__leak_rspan(sc, end, LK_CS_B64URL);
	size_t e = moat__leak_span(sc, end, LK_CS_B64URL);
	if (s < sc->tok_end[rule])
		return;
	sc->tok_end[rule] = e;
	if (!has_prefix(d + s, e - s, "sk-") || e - s < 40 || e - s > 400)
		return;
	if (s > 0 && (lk_alnum(d[s - 1]) || d[s - 1] == '_'))
		return;
	if (moat__leak_entropy(d + s, e - s) < 3.5)
		return;
	struct lk_cand *c = moat__leak_add(sc, MOAT_LEAK_VENDOR_TOKEN, s, e,
					   MOAT_LEAK_SEV_CRITICAL, 95, 0);
	if (c)
		prev_prefix(c, d, s, e, 7);
}
