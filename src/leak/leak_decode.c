/* Decoded content, one level deep: base64 blobs (24+ characters in a
 * JSON string, or a whole text message: LoRaWAN "frm_payload" and "data"
 * often carry base64 JSON) and CBOR messages.  The decoded bytes are
 * scanned with the scratch's second scan state (which decodes nothing
 * further) when they are text or CBOR (other bytes, such as keys, hashes
 * and ciphertext, are what base64 usually carries: not scanned); its
 * findings become findings of the message: on the whole
 * blob for base64 (redacting the blob removes what it held), on the CBOR
 * bytes a value came from for CBOR.  Allocation-free: the scratch holds
 * the buffers; bounded: LK_DECODES_MAX blobs a message, LK_B64_MAX
 * decoded bytes, LK_DECODE_MAX bytes of transcoded CBOR. */
#include <string.h>

#include "leak/leak_int.h"

static bool b64_char(uint8_t c)
{
	return lk_alnum(c) || c == '+' || c == '/' || c == '-' || c == '_';
}

/* d[s..e) is one base64 token (padding only at the end) that is not just
 * hex digits or digits (hashes, ids and numbers decode to noise). */
static bool b64_blob(const uint8_t *d, size_t s, size_t e)
{
	while (e > s && d[e - 1] == '=' && e - s > 0)
		e--;
	if (e - s < LK_B64_MIN || (e - s) % 4 == 1)
		return false;
	bool nonhex = false, lower = false, upper = false;
	size_t slash = 0;
	for (size_t i = s; i < e; i++) {
		uint8_t c = d[i];
		if (!b64_char(c))
			return false;
		nonhex |= !lk_hex(c);
		lower |= lk_lower(c);
		upper |= lk_upper(c);
		slash += c == '/';
	}
	/* '/' is one character in 64 of base64, one in a few of a topic or
	 * a path */
	return nonhex && lower && upper && slash <= (e - s) / 16 + 1;
}

/* Findings of the sub-scan on the bytes [s, e) of sc, one per category
 * (they all cover the same bytes). */
static void lift_whole(struct lk_scan *sc, const struct lk_scan *sub,
		       size_t s, size_t e)
{
	uint32_t seen = 0;
	char path[MOAT_LEAK_PATH_MAX] = "";
	if (sc->json)
		moat__leak_json_path(sc, path, sizeof(path));
	for (size_t i = 0; i < sub->ncand; i++) {
		const struct lk_cand *k = &sub->cand[i];
		if (k->dead || (seen & MOAT_LEAK_BIT(k->f.category)))
			continue;
		seen |= MOAT_LEAK_BIT(k->f.category);
		uint32_t fl = (k->f.flags & ~(MOAT_LEAK_F_JSON_STRING |
					      MOAT_LEAK_F_JSON_SCALAR |
					      MOAT_LEAK_F_TRUNCATED)) |
			      MOAT_LEAK_F_DECODED |
			      (sc->json ? MOAT_LEAK_F_JSON_STRING : 0);
		struct lk_cand *c = moat__leak_add(sc, k->f.category, s, e,
						   k->f.severity,
						   k->f.confidence, fl);
		if (!c)
			return;
		memcpy(c->f.preview, k->f.preview, sizeof(c->f.preview));
		memcpy(c->f.path, path, sizeof(c->f.path));
		c->has_path = sc->json;
	}
}

void moat__leak_decode_b64(struct lk_scan *sc, size_t s, size_t e)
{
	struct moat_leak_scratch *o = sc->owner;
	const uint8_t *d = sc->d;
	if (sc->nested || sc->ndecoded >= LK_DECODES_MAX || sc->stop)
		return;
	while (s < e && lk_space(d[s]))
		s++;
	while (e > s && lk_space(d[e - 1]))
		e--;
	if (e - s > (LK_B64_MAX / 3) * 4 || !b64_blob(d, s, e))
		return;
	sc->touched++;
	long n = moat__leak_b64_decode(d + s, e - s, o->raw, sizeof(o->raw));
	if (n <= 0)
		return;
	sc->ndecoded++;
	const uint8_t *p = o->raw;
	size_t pn = (size_t)n;
	if (moat__leak_cbor_json(p, pn, &o->dec)) {
		p = o->dec.buf;
		pn = o->dec.len;
	} else if (!moat__leak_is_text(p, pn)) {
		return; /* key material, hashes, encrypted bytes: noise */
	}
	moat__leak_scan_core(o, &o->sub, p, pn);
	lift_whole(sc, &o->sub, s, e);
}

/* The CBOR bytes a JSON offset of the transcoding came from: the
 * segment holding it (the last one starting at or before it). */
static const struct lk_seg *seg_at(const struct lk_decode *dc, size_t off)
{
	size_t lo = 0, hi = dc->nseg;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (dc->seg[mid].os <= off)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo ? &dc->seg[lo - 1] : NULL;
}

static size_t map_off(const struct lk_seg *g, size_t off)
{
	size_t k = g->is + (off - g->os);
	return MOAT_MIN(k, (size_t)g->ie);
}

void moat__leak_decode_cbor(struct lk_scan *sc)
{
	struct moat_leak_scratch *o = sc->owner;
	if (sc->nested || sc->stop ||
	    !moat__leak_cbor_json(sc->d, sc->n, &o->dec))
		return;
	/* (cut short: the text that fit is scanned; the CBOR bytes were
	 * scanned as a binary message anyway) */
	struct lk_scan *sub = &o->sub;
	moat__leak_scan_core(o, sub, o->dec.buf, o->dec.len);
	for (size_t i = 0; i < sub->ncand; i++) {
		const struct lk_cand *k = &sub->cand[i];
		const struct lk_seg *a = seg_at(&o->dec, k->f.start);
		const struct lk_seg *b = seg_at(&o->dec, k->f.end - 1);
		if (k->dead || !a || !b)
			continue;
		size_t s = map_off(a, k->f.start);
		size_t e = MOAT_MAX(map_off(b, k->f.end), s + 1);
		if (s >= a->ie) /* starts after the segment: its last byte */
			s = a->ie > a->is ? a->ie - 1 : a->is;
		e = MOAT_MIN(MOAT_MAX(e, s + 1), sc->n);
		uint32_t fl = (k->f.flags & ~(MOAT_LEAK_F_JSON_STRING |
					      MOAT_LEAK_F_JSON_SCALAR)) |
			      MOAT_LEAK_F_DECODED;
		struct lk_cand *c = moat__leak_add(sc, k->f.category, s, e,
						   k->f.severity,
						   k->f.confidence, fl);
		if (!c)
			return;
		memcpy(c->f.preview, k->f.preview, sizeof(c->f.preview));
		memcpy(c->f.path, k->f.path, sizeof(c->f.path));
		c->has_path = k->has_path;
	}
}
