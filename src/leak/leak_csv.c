/* CSV in messages (and inside JSON strings): a header row names the
 * columns, so each cell below is read as the value of its column's key
 * ("time,hr,spo2" / "10:00,72,97"); and in any row, with or without a
 * header, a cell that names a measurement followed by a number is a
 * name-value pair ("2024-01-01T10:00,12,heart_rate,88,bpm").  Rows end
 * at a line feed, raw or escaped inside a JSON string; cells at ',', ';'
 * or a tab (the first row decides). */
#include <string.h>

#include "leak/leak_int.h"

#define CSV_COLS 32

struct csv {
	struct lk_scan *sc;
	size_t lo, hi;
	bool in_str;
	uint8_t sep;
};

struct row {
	size_t n;
	size_t s[CSV_COLS], e[CSV_COLS];
};

/* End of the line starting at i, and where the next one starts. */
static size_t line_end(const struct csv *c, size_t i, size_t *next)
{
	const uint8_t *d = c->sc->d;
	for (size_t k = i; k < c->hi; k++) {
		if (d[k] == '\n' || d[k] == '\r') {
			*next = k + 1;
			return k;
		}
		if (c->in_str && d[k] == '\\' && k + 1 < c->hi &&
		    (d[k + 1] == 'n' || d[k + 1] == 'r')) {
			*next = k + 2;
			return k;
		}
	}
	*next = c->hi;
	return c->hi;
}

static void split(const struct csv *c, size_t s, size_t e, struct row *r)
{
	const uint8_t *d = c->sc->d;
	r->n = 0;
	size_t cs = s;
	for (size_t k = s; k <= e && r->n < CSV_COLS; k++) {
		if (k < e && d[k] != c->sep)
			continue;
		size_t a = cs, b = k;
		while (a < b && d[a] == ' ')
			a++;
		while (b > a && d[b - 1] == ' ')
			b--;
		r->s[r->n] = a;
		r->e[r->n] = b;
		r->n++;
		cs = k + 1;
	}
}

static bool numeric(const uint8_t *p, size_t n)
{
	double v;
	int dec;
	return n && moat__leak_parse_decimal(p, n, &v, &dec);
}

/* A header cell: a name (letters first, no more than a few digits). */
static bool name_cell(const uint8_t *p, size_t n)
{
	if (n == 0 || n > 40 || !lk_alpha(p[0]))
		return false;
	for (size_t i = 0; i < n; i++)
		if (!lk_alnum(p[i]) && p[i] != '_' && p[i] != ' ' &&
		    p[i] != '.' && p[i] != '-' && p[i] != '/' && p[i] != '%')
			return false;
	return true;
}

static void cell_field(struct csv *c, const uint8_t *k, size_t kn,
		       struct lk_keyinfo ki, size_t vs, size_t ve)
{
	struct lk_field f;
	memset(&f, 0, sizeof(f));
	f.key = k;
	f.klen = kn;
	f.ki = ki;
	f.s = vs;
	f.e = ve;
	f.vt = LV_TEXT;
	f.idx = -1;
	f.in_str = c->in_str;
	moat__leak_field(c->sc, &f);
}

/* name,value[,unit] cells: measurements and coordinates only (a bare
 * "password,x" row is too often a word list). */
static void name_value_cells(struct csv *c, const struct row *r)
{
	const uint8_t *d = c->sc->d;
	for (size_t i = 0; i + 1 < r->n; i++) {
		size_t kn = r->e[i] - r->s[i];
		if (!name_cell(d + r->s[i], kn) ||
		    !numeric(d + r->s[i + 1], r->e[i + 1] - r->s[i + 1]))
			continue;
		struct lk_keyinfo ki =
			moat__leak_key_class(c->sc, d + r->s[i], kn);
		if (ki.kind != KK_HEALTH && ki.kind != KK_LAT &&
		    ki.kind != KK_LON)
			continue;
		/* "hr,14": an hour unless a unit follows */
		if (ki.sub == KH_HR_AMBIG &&
		    (i + 2 >= r->n || r->e[i + 2] == r->s[i + 2]))
			continue;
		cell_field(c, d + r->s[i], kn, ki, r->s[i + 1], r->e[i + 1]);
		i++;
	}
}

void moat__leak_csv_scan(struct lk_scan *sc, size_t lo, size_t hi,
			 bool in_str)
{
	struct csv c = {sc, lo, hi, in_str, 0};
	const uint8_t *d = sc->d;
	sc->touched++;
	if (!memchr(d + lo, ',', hi - lo) && !memchr(d + lo, ';', hi - lo) &&
	    !memchr(d + lo, '\t', hi - lo))
		return;
	size_t next, e0 = line_end(&c, lo, &next);
	unsigned nc = 0, ns = 0, nt = 0;
	for (size_t k = lo; k < e0; k++) {
		nc += d[k] == ',';
		ns += d[k] == ';';
		nt += d[k] == '\t';
	}
	c.sep = nc >= ns && nc >= nt ? ',' : ns >= nt ? ';' : '\t';
	if (MOAT_MAX(nc, MOAT_MAX(ns, nt)) < 2)
		return;
	struct row hdr, r;
	split(&c, lo, e0, &hdr);
	bool header = hdr.n >= 3;
	for (size_t i = 0; i < hdr.n && header; i++)
		header = name_cell(d + hdr.s[i], hdr.e[i] - hdr.s[i]);
	struct lk_keyinfo hki[CSV_COLS];
	bool any = false;
	for (size_t i = 0; i < hdr.n && header; i++) {
		hki[i] = moat__leak_key_class(sc, d + hdr.s[i],
					      hdr.e[i] - hdr.s[i]);
		any |= hki[i].kind != KK_NONE;
	}
	size_t i = header ? next : lo;
	while (i < hi && !sc->stop) {
		size_t e = line_end(&c, i, &next);
		split(&c, i, e, &r);
		if (header && any && r.n == hdr.n)
			for (size_t k = 0; k < r.n; k++)
				if (hki[k].kind != KK_NONE &&
				    r.e[k] > r.s[k])
					cell_field(&c, d + hdr.s[k],
						   hdr.e[k] - hdr.s[k], hki[k],
						   r.s[k], r.e[k]);
		if (r.n >= 2)
			name_value_cells(&c, &r);
		i = next;
	}
}
