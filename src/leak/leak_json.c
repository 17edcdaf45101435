/* The JSON walker of the leak detector: a single pass over the message
 * with a fixed stack (no allocation, depth-limited), lenient about what
 * it does not need (it is not a validator) and stopping at the first
 * byte it cannot place.  For each member it classifies the key and hands
 * (key, value) to the field rules; it gives regex candidates found inside
 * values their JSON path; it looks for key=value pairs inside string
 * values; and it pairs coordinates in small numeric arrays. */
#include <stdio.h>
#include <string.h>

#include "leak/leak_int.h"

static inline size_t skip_ws(const uint8_t *d, size_t n, size_t i)
{
	while (i < n && lk_space(d[i]))
		i++;
	return i;
}

/* Index of the closing quote of the string whose content starts at i, or
 * n when it is not closed. */
static size_t str_end(const uint8_t *d, size_t n, size_t i)
{
	while (i < n) {
		const uint8_t *q = memchr(d + i, '"', n - i);
		if (!q)
			return n;
		size_t k = (size_t)(q - d), b = k;
		while (b > i && d[b - 1] == '\\')
			b--;
		if (((k - b) & 1u) == 0)
			return k;
		i = k + 1;
	}
	return n;
}

/* ---- paths ------------------------------------------------------------------- */

static bool plain_key(const uint8_t *k, size_t n)
{
	if (n == 0 || lk_digit(k[0]))
		return false;
	for (size_t i = 0; i < n; i++)
		if (!lk_alnum(k[i]) && k[i] != '_' && k[i] != '-')
			return false;
	return true;
}

struct pbuf {
	char *p;
	size_t cap, len;
	bool full;
};

static void put(struct pbuf *b, const char *s, size_t n)
{
	if (b->full)
		return;
	if (b->len + n + 1 > b->cap) {
		b->full = true;
		return;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

void moat__leak_json_path(const struct lk_scan *sc, char *out, size_t outsz)
{
	if (outsz < 8) {
		if (outsz)
			out[0] = '\0';
		return;
	}
	struct pbuf b = {out, outsz - 3, 0, false}; /* room for "..." */
	out[0] = '\0';
	put(&b, "$", 1);
	for (unsigned i = 0; i < sc->depth && !b.full; i++) {
		const struct lk_frame *f = &sc->stack[i];
		char tmp[24];
		if (!f->obj) {
			int n = snprintf(tmp, sizeof(tmp), "[%u]", f->index);
			put(&b, tmp, (size_t)n);
			continue;
		}
		if (f->want_key && f->key_n == 0)
			break; /* inside the object, before any member */
		const uint8_t *k = sc->d + f->key_s;
		size_t kn = f->key_n;
		if (plain_key(k, kn)) {
			put(&b, ".", 1);
			put(&b, (const char *)k, kn);
			continue;
		}
		put(&b, "[\"", 2);
		for (size_t j = 0; j < kn && !b.full; j++) {
			char c = (char)k[j];
			if (k[j] < 0x20 || k[j] >= 0x7f || c == '"' || c == '\\')
				c = '?';
			put(&b, &c, 1);
		}
		put(&b, "\"]", 2);
	}
	if (b.full) {
		size_t l = strlen(out);
		memcpy(out + l, "...", 4);
	}
}

/* ---- candidates inside values --------------------------------------------- */

/* Regex candidates that lie within d[s..e): give them the current path;
 * a dotted quad under a version key is a version, not an address. */
static void assign(struct lk_scan *sc, size_t s, size_t e, uint32_t vflags,
		   struct lk_keyinfo ki)
{
	while (sc->jci < sc->jnregex && sc->cand[sc->jci].f.start < s)
		sc->jci++;
	while (sc->jci < sc->jnregex && sc->cand[sc->jci].f.start < e) {
		struct lk_cand *c = &sc->cand[sc->jci++];
		if (c->f.end > e)
			continue; /* crosses values */
		moat__leak_json_path(sc, c->f.path, sizeof(c->f.path));
		c->has_path = true;
		c->f.flags |= vflags;
		if (vflags & MOAT_LEAK_F_JSON_SCALAR) {
			/* a number is redacted whole ("-4111..." too) */
			c->f.start = s;
			c->f.end = e;
		}
		if ((ki.flags & KF_VERSION) &&
		    (c->f.category == MOAT_LEAK_PRIVATE_IPV4 ||
		     c->f.category == MOAT_LEAK_PRIVATE_IPV6))
			c->dead = true;
	}
}

/* ---- the walk ------------------------------------------------------------------- */

static struct lk_frame *top(struct lk_scan *sc)
{
	return sc->depth ? &sc->stack[sc->depth - 1] : NULL;
}

static void push(struct lk_scan *sc, bool obj, size_t at)
{
	struct lk_frame *parent = top(sc);
	struct lk_frame *f = &sc->stack[sc->depth++];
	memset(f, 0, sizeof(*f));
	f->obj = obj;
	f->start = at;
	f->want_key = obj;
	if (parent)
		f->in = parent->obj ? parent->ki : parent->in;
}

/* A string that may hold key=value or "key: value" pairs. */
static bool has_sep(const uint8_t *p, size_t n)
{
	/* "10:00:00" in a time stamp is not a key=value pair: skip
	 * separators after a digit (keys ending in one are rare in text
	 * inside JSON strings) */
	for (size_t i = 1; i < n; i++)
		if ((p[i] == '=' || p[i] == ':') && !lk_digit(p[i - 1]))
			return true;
	return false;
}

/* ---- records: name-value metrics, Home Assistant, music --------------------- */

/* A member name: its part in a name-value record, and what it says about
 * the object (music, a Home Assistant person).  The flags come with the
 * key's (cached) class. */
static void member_key(struct lk_scan *sc, struct lk_frame *f)
{
	uint16_t kf = f->ki.flags;
	f->role = (kf & KF_NV_NAME)    ? NV_NAME
		  : (kf & KF_NV_VALUE) ? NV_VALUE
				       : NV_NONE;
	f->music |= (kf & KF_MUSIC) != 0;
	if (kf & KF_FRIENDLY) {
		for (unsigned i = 0; i < sc->depth; i++)
			if (sc->stack[i].person_ent) {
				f->ki.kind = KK_PERSON;
				f->ki.sub = KP_NAME;
			}
	}
}

/* A string value of the current member of object f. */
static void member_string(struct lk_scan *sc, struct lk_frame *f, size_t s,
			  size_t e)
{
	if (e - s > 7 && (f->ki.flags & KF_ENTITY) &&
	    !memcmp(sc->d + s, "person.", 7))
		f->person_ent = true;
}

/* The name of a record (the last part of "GPS/Latitude", "Node/hr")
 * names its value: the field rules see them as one member. */
static void nv_record(struct lk_scan *sc, struct lk_frame *f)
{
	const uint8_t *d = sc->d;
	size_t ks = f->nv_ns, ke = f->nv_ne;
	for (size_t i = ke; i > ks; i--)
		if (d[i - 1] == '/' || d[i - 1] == ':') {
			ks = i;
			break;
		}
	if (ke == ks)
		return;
	struct lk_keyinfo ki = moat__leak_key_class(sc, d + ks, ke - ks);
	if (ki.kind == KK_NONE && !(ki.flags & KF_SECRET_WORD))
		return;
	if (ki.kind == KK_HEALTH && f->music)
		return;
	struct lk_frame *p = sc->depth > 1 ? &sc->stack[sc->depth - 2] : NULL;
	struct lk_field fl;
	memset(&fl, 0, sizeof(fl));
	fl.key = d + ks;
	fl.klen = ke - ks;
	fl.ki = ki;
	fl.parent = f->in;
	fl.s = f->nv_vs;
	fl.e = f->nv_ve;
	fl.vt = (enum lk_vtype)f->nv_vt;
	fl.json = true;
	fl.idx = -1;
	/* records in an array pair up there (latitude and longitude are
	 * two records) */
	fl.obj = p && !p->obj ? p : f;
	moat__leak_field(sc, &fl);
}

/* A health value keyed "bpm" next to a song or a tempo is music. */
static void music_veto(struct lk_scan *sc, const struct lk_frame *f)
{
	for (size_t i = 0; i < sc->ncand; i++) {
		struct lk_cand *c = &sc->cand[i];
		if (c->f.category == MOAT_LEAK_HEALTH && c->f.start > f->start &&
		    (c->rule == 300 + KH_HR || c->rule == 300 + KH_HR_AMBIG))
			c->dead = true;
	}
}

static void field(struct lk_scan *sc, struct lk_frame *f, size_t s, size_t e,
		  enum lk_vtype vt, struct lk_keyinfo ki)
{
	struct lk_field fl;
	memset(&fl, 0, sizeof(fl));
	fl.s = s;
	fl.e = e;
	fl.vt = vt;
	fl.json = true;
	fl.idx = -1;
	fl.ki = ki;
	if (f->obj) {
		fl.key = sc->d + f->key_s;
		fl.klen = f->key_n;
		fl.parent = f->in;
		fl.obj = f;
	} else {
		struct lk_frame *p = sc->depth > 1 ? &sc->stack[sc->depth - 2]
						   : NULL;
		fl.idx = f->index;
		if (p && p->obj) {
			fl.key = sc->d + p->key_s;
			fl.klen = p->key_n;
			fl.parent = p->in;
		}
	}
	moat__leak_field(sc, &fl);
}

static void value(struct lk_scan *sc, size_t s, size_t e, enum lk_vtype vt)
{
	struct lk_frame *f = top(sc);
	struct lk_keyinfo ki = f->obj ? f->ki : f->in;
	if (!f->obj) { /* numbers are parsed when the array closes */
		if (vt != LV_NUMBER)
			f->nonnum = true;
		else if (f->nnum < 3) {
			f->num_s[f->nnum] = s;
			f->num_e[f->nnum] = e;
		}
		f->nnum++;
	}
	if (sc->jci < sc->jnregex)
		assign(sc, s, e,
		       vt == LV_STRING ? MOAT_LEAK_F_JSON_STRING
				       : MOAT_LEAK_F_JSON_SCALAR,
		       ki);
	if (f->obj && f->role == NV_NAME && vt == LV_STRING) {
		f->nv_name = true;
		f->nv_ns = (uint32_t)s;
		f->nv_ne = (uint32_t)e;
	} else if (f->obj && f->role == NV_VALUE && vt != LV_LITERAL) {
		f->nv_val = true;
		f->nv_vt = (uint8_t)vt;
		f->nv_vs = (uint32_t)s;
		f->nv_ve = (uint32_t)e;
	}
	if (f->obj && vt == LV_STRING)
		member_string(sc, f, s, e);
	if (vt == LV_STRING && has_sep(sc->d + s, e - s))
		moat__leak_kv_scan(sc, s, e, true);
	if (vt == LV_STRING && e - s > 8 && memchr(sc->d + s, ',', e - s))
		moat__leak_csv_scan(sc, s, e, true);
	if (vt == LV_STRING && e - s >= LK_B64_MIN && !sc->nested)
		moat__leak_decode_b64(sc, s, e);
	if (ki.kind != KK_NONE || (ki.flags & KF_SECRET_WORD))
		field(sc, f, s, e, vt, ki);
	else if (sc->shape_rec && f->obj &&
		 !(ki.flags & ~(KF_VETO | KF_VERSION))) /* vetoes only */
		moat__leak_shape_value(sc, s, e, vt);
}

/* [a, b] or [a, b, c] of numbers: coordinates under a location key, or
 * two high-precision numbers in range anywhere. */
static void array_end(struct lk_scan *sc, struct lk_frame *f)
{
	moat__leak_geo_fields(sc, &f->lat, &f->lon, true);
	if (f->nonnum || f->nnum < 2 || f->nnum > 3 ||
	    !lk_enabled(sc, MOAT_LEAK_GEOLOCATION))
		return;
	for (uint32_t i = 0; i < f->nnum; i++)
		if (!moat__leak_parse_decimal(sc->d + f->num_s[i],
					      f->num_e[i] - f->num_s[i],
					      &f->num[i], &f->num_dec[i]))
			return;
	bool keyed = f->in.kind == KK_GEO;
	if (!keyed && (f->nnum != 2 || f->num_dec[0] < 5 || f->num_dec[1] < 5))
		return;
	struct lk_coord a, o;
	memset(&a, 0, sizeof(a));
	memset(&o, 0, sizeof(o));
	/* GeoJSON is [lon, lat]; others usually [lat, lon] */
	int li = 0, oi = 1;
	if (f->num[0] > 90 || f->num[0] < -90) {
		li = 1;
		oi = 0;
	}
	a.set = o.set = true;
	a.v = f->num[li];
	o.v = f->num[oi];
	a.decimals = f->num_dec[li];
	o.decimals = f->num_dec[oi];
	a.s = f->num_s[li];
	a.e = f->num_e[li];
	o.s = f->num_s[oi];
	o.e = f->num_e[oi];
	a.vflags = o.vflags = MOAT_LEAK_F_JSON_SCALAR;
	if (!keyed && a.v > -1 && a.v < 1 && o.v > -1 && o.v < 1)
		return;
	moat__leak_json_path(sc, a.path, sizeof(a.path));
	memcpy(o.path, a.path, sizeof(o.path));
	moat__leak_geo_fields(sc, &a, &o, true);
}

static void close_frame(struct lk_scan *sc)
{
	struct lk_frame *f = top(sc);
	if (f->obj) {
		if (f->nv_name && f->nv_val)
			nv_record(sc, f);
		if (f->music)
			music_veto(sc, f);
		moat__leak_object_end(sc, f);
	} else
		array_end(sc, f);
	sc->depth--;
}

/* The end of the JSON number at i (RFC 8259 syntax), or 0. */
static size_t number_end(const uint8_t *d, size_t n, size_t i)
{
	if (i < n && d[i] == '-')
		i++;
	if (i >= n || !lk_digit(d[i]))
		return 0;
	if (d[i] == '0')
		i++;
	else
		while (i < n && lk_digit(d[i]))
			i++;
	if (i < n && d[i] == '.') {
		if (++i >= n || !lk_digit(d[i]))
			return 0;
		while (i < n && lk_digit(d[i]))
			i++;
	}
	if (i < n && (d[i] == 'e' || d[i] == 'E')) {
		if (++i < n && (d[i] == '+' || d[i] == '-'))
			i++;
		if (i >= n || !lk_digit(d[i]))
			return 0;
		while (i < n && lk_digit(d[i]))
			i++;
	}
	return i;
}

/* A number or literal at i, followed by a delimiter: its end, or 0 (the
 * walk stops: "192.168.1.1." is not a JSON value). */
static size_t scalar(struct lk_scan *sc, size_t i)
{
	const uint8_t *d = sc->d;
	size_t n = sc->n, e = i;
	enum lk_vtype vt = LV_NUMBER;
	if (d[i] == '-' || lk_digit(d[i])) {
		e = number_end(d, n, i);
	} else {
		while (e < n && lk_lower(d[e]) && e - i < 6)
			e++;
		if (!((e - i == 4 && (!memcmp(d + i, "true", 4) ||
				      !memcmp(d + i, "null", 4))) ||
		      (e - i == 5 && !memcmp(d + i, "false", 5))))
			return 0;
		vt = LV_LITERAL;
	}
	if (!e || (e < n && !lk_space(d[e]) && d[e] != ',' && d[e] != ']' &&
		   d[e] != '}'))
		return 0;
	value(sc, i, e, vt);
	return e;
}

/* One token at i; returns the next offset, or SIZE_MAX to stop at i. */
static size_t step(struct lk_scan *sc, size_t i)
{
	const uint8_t *d = sc->d;
	struct lk_frame *f = top(sc);
	uint8_t c = d[i];
	if (!f && c != '{' && c != '[')
		return SIZE_MAX; /* text after the top-level value */
	switch (c) {
	case '{':
	case '[':
		if (f && f->obj && f->want_key)
			return SIZE_MAX;
		if (sc->depth >= sc->max_depth) {
			sc->rflags |= MOAT_LEAK_R_JSON_ERROR;
			return SIZE_MAX;
		}
		push(sc, c == '{', i);
		return i + 1;
	case '}':
	case ']':
		if (f->obj != (c == '}'))
			return SIZE_MAX;
		close_frame(sc);
		return i + 1;
	case '"': {
		size_t e = str_end(d, sc->n, i + 1);
		if (e >= sc->n)
			return SIZE_MAX;
		if (f->obj && f->want_key) {
			f->key_s = (uint32_t)(i + 1);
			f->key_n = (uint32_t)(e - i - 1);
			f->ki = moat__leak_key_class(sc, d + i + 1, e - i - 1);
			member_key(sc, f);
			f->want_key = false;
			assign(sc, i + 1, e, MOAT_LEAK_F_JSON_STRING, f->in);
		} else {
			value(sc, i + 1, e, LV_STRING);
		}
		return e + 1;
	}
	case ':':
		return f->obj ? i + 1 : SIZE_MAX;
	case ',':
		if (f->obj)
			f->want_key = true;
		else
			f->index++;
		return i + 1;
	default: {
		if (f->obj && f->want_key)
			return SIZE_MAX;
		size_t e = scalar(sc, i);
		return e ? e : SIZE_MAX;
	}
	}
}

size_t moat__leak_json_walk(struct lk_scan *sc)
{
	size_t i = 0, stop = sc->n;
	sc->depth = 0;
	sc->jci = 0;
	for (;;) {
		i = skip_ws(sc->d, sc->n, i);
		if (i >= sc->n)
			break;
		size_t next = step(sc, i);
		if (next == SIZE_MAX) {
			stop = i;
			break;
		}
		i = next;
	}
	if (sc->depth > 0 && stop == sc->n)
		sc->rflags |= MOAT_LEAK_R_JSON_ERROR; /* cut short */
	while (sc->depth > 0) /* what was open still pairs up */
		close_frame(sc);
	return stop;
}

/* ---- small lookups (JWT headers) ---------------------------------------------- */

bool moat__leak_json_get(const uint8_t *p, size_t n, const char *key,
			 size_t *vs, size_t *ve, enum lk_vtype *vt)
{
	size_t kl = strlen(key), i = skip_ws(p, n, 0);
	if (i >= n || p[i] != '{')
		return false;
	i++;
	unsigned depth = 1;
	bool want_key = true, match = false;
	while (i < n && depth > 0) {
		i = skip_ws(p, n, i);
		if (i >= n)
			return false;
		uint8_t c = p[i];
		if (c == '"') {
			size_t e = str_end(p, n, i + 1);
			if (e >= n)
				return false;
			if (depth == 1 && want_key) {
				match = e - i - 1 == kl && !memcmp(p + i + 1, key, kl);
				want_key = false;
			} else if (depth == 1 && match) {
				*vs = i + 1;
				*ve = e;
				*vt = LV_STRING;
				return true;
			}
			i = e + 1;
		} else if (c == '{' || c == '[') {
			if (depth == 1 && match)
				return false;
			if (++depth > 32)
				return false;
			i++;
		} else if (c == '}' || c == ']') {
			depth--;
			i++;
		} else if (c == ',') {
			if (depth == 1) {
				want_key = true;
				match = false;
			}
			i++;
		} else if (c == ':') {
			i++;
		} else {
			size_t e = i;
			while (e < n && !lk_space(p[e]) && p[e] != ',' &&
			       p[e] != '}' && p[e] != ']')
				e++;
			if (e == i)
				return false;
			if (depth == 1 && match) {
				*vs = i;
				*ve = e;
				*vt = lk_digit(p[i]) || p[i] == '-' ? LV_NUMBER
								    : LV_LITERAL;
				return true;
			}
			i = e;
		}
	}
	return false;
}
