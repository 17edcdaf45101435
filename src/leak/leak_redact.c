/* What the leak detector shows instead of a secret: redacted previews,
 * the keyed hash (HMAC-SHA-256 under the install key) that lets logs
 * correlate a leak without storing it, and redaction of a buffer.
 *
 * The HMAC is the RFC 2104 construction over OpenSSL's SHA-256, with the
 * padded key's inner and outer states computed once per db: hashing a
 * finding then costs a state copy and a few blocks, and never allocates
 * (OpenSSL's EVP/HMAC contexts allocate per use). */
#define OPENSSL_SUPPRESS_DEPRECATED /* SHA256_Init & co: no allocation */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <openssl/sha.h>

#include "leak/leak_int.h"

/* ---- previews --------------------------------------------------------------- */

static void printable(char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || (unsigned char)*s >= 0x7f)
			*s = '?';
}

void moat__leak_prev_set(struct lk_cand *c, const char *s)
{
	snprintf(c->f.preview, sizeof(c->f.preview), "%s", s);
	printable(c->f.preview);
}

void moat__leak_prev_fmt(struct lk_cand *c, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(c->f.preview, sizeof(c->f.preview), fmt, ap);
	va_end(ap);
	printable(c->f.preview);
}

void moat__leak_prev_mask(struct lk_cand *c, const uint8_t *d, size_t s,
			  size_t e, size_t head, size_t tail)
{
	size_t n = e - s;
	if (n < 4 * (head + tail)) {
		moat__leak_prev_fmt(c, "**** (%zu chars)", n);
		return;
	}
	moat__leak_prev_fmt(c, "%.*s...%.*s (%zu chars)", (int)head,
			    (const char *)d + s, (int)tail,
			    (const char *)d + e - tail, n);
}

/* ---- HMAC ------------------------------------------------------------------------ */

int moat__leak_hmac_setup(struct moat_leak_db *db, const uint8_t *key)
{
	uint8_t pad[64];
	memset(pad, 0, sizeof(pad));
	memcpy(pad, key, MOAT_LEAK_KEY_LEN);
	for (size_t i = 0; i < sizeof(pad); i++)
		pad[i] ^= 0x36;
	if (!SHA256_Init(&db->hmac_inner) ||
	    !SHA256_Update(&db->hmac_inner, pad, sizeof(pad)))
		return MOAT_EIO;
	for (size_t i = 0; i < sizeof(pad); i++)
		pad[i] ^= 0x36 ^ 0x5c;
	int ok = SHA256_Init(&db->hmac_outer) &&
		 SHA256_Update(&db->hmac_outer, pad, sizeof(pad));
	memset(pad, 0, sizeof(pad));
	return ok ? MOAT_OK : MOAT_EIO;
}

void moat__leak_hmac(const struct moat_leak_db *db, const uint8_t *d,
		     size_t s, size_t e, char *out)
{
	static const char hex[] = "0123456789abcdef";
	uint8_t ih[SHA256_DIGEST_LENGTH], mac[SHA256_DIGEST_LENGTH];
	SHA256_CTX c = db->hmac_inner;
	SHA256_Update(&c, d + s, e - s);
	SHA256_Final(ih, &c);
	c = db->hmac_outer;
	SHA256_Update(&c, ih, sizeof(ih));
	SHA256_Final(mac, &c);
	for (size_t i = 0; i < MOAT_LEAK_HMAC_HEX / 2; i++) {
		out[2 * i] = hex[mac[i] >> 4];
		out[2 * i + 1] = hex[mac[i] & 15];
	}
	out[MOAT_LEAK_HMAC_HEX] = '\0';
	memset(ih, 0, sizeof(ih));
	memset(&c, 0, sizeof(c));
}

/* ---- redaction ---------------------------------------------------------------- */

/* Length of the JSON escape starting with the backslash at k: 6 for
 * \uXXXX, else 2. */
static size_t esc_len(const uint8_t *b, size_t len, size_t k)
{
	if (k + 6 > len || b[k + 1] != 'u')
		return 2;
	for (size_t i = k + 2; i < k + 6; i++)
		if (!lk_hex(b[i]))
			return 2;
	return 6;
}

/* Length of the UTF-8 sequence led by byte c (1 for anything else). */
static size_t utf8_len(uint8_t c)
{
	return c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : c >= 0xc0 ? 2 : 1;
}

/* The start of the UTF-8 character that byte i is in: i, or the lead byte
 * up to 3 bytes before it when i is one of its continuation bytes. */
static size_t utf8_start(const uint8_t *b, size_t i)
{
	for (size_t k = 0; k < 3 && k < i && (b[i - k] & 0xc0) == 0x80; k++) {
		uint8_t c = b[i - k - 1];
		if ((c & 0xc0) == 0xc0)
			return utf8_len(c) > k + 1 ? i - k - 1 : i;
		if ((c & 0xc0) != 0x80)
			return i;
	}
	return i;
}

/* The range to overwrite for finding f: whole UTF-8 characters, and,
 * inside a JSON string, whole escape sequences (a lone backslash left
 * before a '*' would make the JSON invalid). */
static bool widen(const uint8_t *b, size_t len,
		  const struct moat_leak_finding *f, size_t *ps, size_t *pe)
{
	size_t s = f->start, e = MOAT_MIN(f->end, len);
	if (s >= e)
		return false;
	if (f->flags & MOAT_LEAK_F_JSON_STRING) {
		/* start: inside \X or \uXXXX?  The nearest backslash
		 * that starts an escape (odd run) decides. */
		for (size_t back = 1; back <= 5 && back <= s; back++) {
			size_t k = s - back, run = 0;
			if (b[k] != '\\')
				continue;
			while (run <= k && b[k - run] == '\\')
				run++;
			if (!(run & 1u))
				continue;
			size_t esc = esc_len(b, len, k);
			if (k + esc > s)
				s = k;
			break;
		}
		/* end: inside an escape that starts before it? */
		for (size_t k = s; k < e;) {
			if (b[k] != '\\') {
				k++;
				continue;
			}
			size_t el = esc_len(b, len, k);
			if (k + el > e)
				e = MOAT_MIN(k + el, len);
			k += el;
		}
	}
	s = utf8_start(b, s);
	if (e < len) { /* finish a UTF-8 character that e cuts */
		size_t c = utf8_start(b, e);
		size_t stop = MOAT_MIN(c + utf8_len(b[c]), len);
		while (c < e && e < stop && (b[e] & 0xc0) == 0x80)
			e++;
	}
	*ps = s;
	*pe = e;
	return true;
}

size_t moat_leak_redact_inplace(uint8_t *buf, size_t len,
				const struct moat_leak_result *r)
{
	size_t changed = 0;
	if (!buf || !r)
		return 0;
	for (size_t i = 0; i < r->n; i++) {
		const struct moat_leak_finding *f = &r->findings[i];
		size_t s, e;
		if (!widen(buf, len, f, &s, &e))
			continue;
		bool scalar = (f->flags & MOAT_LEAK_F_JSON_SCALAR) &&
			      !(f->flags & MOAT_LEAK_F_JSON_STRING);
		for (size_t k = s; k < e; k++) {
			uint8_t v = '*';
			if (scalar && e - s == 1)
				v = '0';
			else if (scalar && (k == s || k == e - 1))
				v = '"';
			if (buf[k] != v) {
				buf[k] = v;
				changed++;
			}
		}
	}
	return changed;
}

int moat_leak_redact_copy(const uint8_t *in, size_t len,
			  const struct moat_leak_result *r, uint8_t *out,
			  size_t outsz, size_t *outlen)
{
	size_t o = 0, pos = 0;
	bool fits = true;
#define EMIT(p, n)                                                            \
	do {                                                                  \
		size_t n_ = (n);                                              \
		if (fits && o + n_ <= outsz && out)                           \
			memcpy(out + o, (p), n_);                             \
		else                                                          \
			fits = false;                                         \
		o += n_;                                                      \
	} while (0)
	for (size_t i = 0; r && i < r->n; i++) {
		const struct moat_leak_finding *f = &r->findings[i];
		size_t s, e;
		if (!widen(in, len, f, &s, &e))
			continue;
		if (s < pos) { /* overlaps the previous one: merge */
			if (e > pos)
				pos = e;
			continue;
		}
		EMIT(in + pos, s - pos);
		bool scalar = (f->flags & MOAT_LEAK_F_JSON_SCALAR) &&
			      !(f->flags & MOAT_LEAK_F_JSON_STRING);
		char m[48];
		int mn = snprintf(m, sizeof(m), "%s[REDACTED:%s]%s",
				  scalar ? "\"" : "",
				  moat_leak_category_name(f->category),
				  scalar ? "\"" : "");
		EMIT(m, (size_t)mn);
		pos = e;
	}
	EMIT(in + pos, len - pos);
#undef EMIT
	*outlen = o;
	return fits ? MOAT_OK : MOAT_ELIMIT;
}
