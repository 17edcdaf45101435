/* Extractors for locations (L5: coordinate pairs in text, NMEA sentences,
 * degree/hemisphere notation) and health data in text (L18: HL7 v2, FHIR
 * resources, values with medical units). */
#include <string.h>
#include <strings.h>

#include "leak/leak_int.h"

static const char *const ctx_geo[] = {
	"gps", "gnss", "loc", "location", "pos", "position", "coord",
	"coords", "coordinates", "lat", "lon", "lng", "latitude",
	"longitude", "latlng", "latlon", "geo", "fix", "track", "wgs84",
	"map", "maps", "waypoint", "place", "where", "ll", "at", "near",
	"located", "parked", "tracker", "vehicle", "truck", NULL};
/* Measurements that come in pairs of decimals too. */
static const char *const ctx_measure[] = {
	"temp", "temperature", "hum", "humidity", "pressure", "voltage",
	"volt", "current", "ph", "ratio", "reading", "readings", "value",
	"values", "accel", "gyro", "mag", "power", "energy", "flow",
	"level", "speed", "rpm", "co2", NULL};

/* Number ending at `end` (exclusive): its start (sign included). */
static size_t number_start(const uint8_t *d, size_t end)
{
	size_t i = end;
	while (i > 0 && lk_digit(d[i - 1]))
		i--;
	if (i > 1 && d[i - 1] == '.' && lk_digit(d[i - 2])) {
		i--;
		while (i > 0 && lk_digit(d[i - 1]))
			i--;
	}
	if (i > 0 && d[i - 1] == '-')
		i--;
	return i;
}

void moat__leak_geo_pair_emit(struct lk_scan *sc, size_t s, size_t e,
			      double lat, double lon, bool precise,
			      unsigned conf, uint32_t fl)
{
	struct lk_cand *c = moat__leak_add(
		sc, MOAT_LEAK_GEOLOCATION, s, e,
		precise ? MOAT_LEAK_SEV_HIGH : MOAT_LEAK_SEV_MEDIUM, conf,
		fl | (precise ? MOAT_LEAK_F_PRECISE : 0));
	if (c)
		moat__leak_prev_fmt(c, "%d.*,%d.*", (int)lat, (int)lon);
}

void moat__leak_x_geo_pair(struct lk_scan *sc, unsigned rule, size_t end)
{
	const uint8_t *d = sc->d;
	size_t e2 = moat__leak_span(sc, end, LK_CS_DIGIT);
	size_t s2 = number_start(d, end);
	size_t j = s2;
	while (j > 0 && lk_space(d[j - 1]))
		j--;
	if (j == 0 || (d[j - 1] != ',' && d[j - 1] != ';'))
		return;
	j--;
	while (j > 0 && lk_space(d[j - 1]))
		j--;
	size_t e1 = j, s1 = number_start(d, e1);
	if (s1 < sc->tok_end[rule])
		return;
	sc->tok_end[rule] = e2;
	if (s1 > 0 && (lk_alnum(d[s1 - 1]) || d[s1 - 1] == '.' ||
		       d[s1 - 1] == '_'))
		return;
	if (e2 < sc->n && (lk_alnum(d[e2]) || d[e2] == '_' ||
			   (d[e2] == '.' && e2 + 1 < sc->n && lk_digit(d[e2 + 1]))))
		return;
	double v1, v2;
	int dec1, dec2;
	if (!moat__leak_parse_decimal(d + s1, e1 - s1, &v1, &dec1) ||
	    !moat__leak_parse_decimal(d + s2, e2 - s2, &v2, &dec2))
		return;
	double lat = v1, lon = v2; /* text gives latitude first */
	if (lat > 90 || lat < -90 || lon > 180 || lon < -180)
		return;
	if (lat > -1 && lat < 1 && lon > -1 && lon < 1)
		return; /* (0, 0) and random fractions */
	if (moat__leak_ctx_before(sc, s1, 16, ctx_measure))
		return;
	bool ctx = moat__leak_ctx_before(sc, s1, 48, ctx_geo) ||
		   (s1 > 0 && d[s1 - 1] == '@');
	int need = ctx ? 4 : 5;
	if (dec1 < need || dec2 < need)
		return;
	moat__leak_geo_pair_emit(sc, s1, e2, lat, lon, true, ctx ? 95 : 85,
				 ctx ? MOAT_LEAK_F_CONTEXT : 0);
}

/* "lat 45.4642 lon 9.1900", "Latitude 45.46 Longitude 9.19". */
void moat__leak_x_geo_words(struct lk_scan *sc, unsigned rule, size_t end)
{
	static const char *const lonw[] = {"lon", "lng", "long", "longitude",
					   NULL};
	const uint8_t *d = sc->d;
	size_t s1 = end - 1;
	while (s1 > 0 && (lk_digit(d[s1 - 1]) || d[s1 - 1] == '.' ||
			  d[s1 - 1] == '-'))
		s1--;
	if (s1 < sc->tok_end[rule])
		return;
	size_t e1 = moat__leak_span(sc, end, LK_CS_DIGIT);
	sc->tok_end[rule] = e1;
	size_t w = s1; /* the word "lat" or "latitude" must stand alone */
	while (w > 0 && lk_space(d[w - 1]))
		w--;
	while (w > 0 && lk_alpha(d[w - 1]))
		w--;
	if (w > 0 && (lk_alnum(d[w - 1]) || d[w - 1] == '_'))
		return;
	size_t k = e1;
	while (k < sc->n && k - e1 < 4 && (d[k] == ',' || d[k] == ';' ||
					   lk_space(d[k])))
		k++;
	size_t ws = k;
	while (k < sc->n && lk_alpha(d[k]) && k - ws < 10)
		k++;
	bool word = false;
	for (const char *const *lw = lonw; *lw; lw++) {
		size_t n = strlen(*lw);
		if (k - ws == n && !strncasecmp((const char *)d + ws, *lw, n))
			word = true;
	}
	while (k < sc->n && (lk_space(d[k]) || d[k] == ':' || d[k] == '='))
		k++;
	size_t s2 = k, e2 = s2;
	if (e2 < sc->n && d[e2] == '-')
		e2++;
	while (e2 < sc->n && (lk_digit(d[e2]) || d[e2] == '.'))
		e2++;
	double lat, lon;
	int d1, d2;
	if (!word ||
	    !moat__leak_parse_decimal(d + s1, e1 - s1, &lat, &d1) ||
	    !moat__leak_parse_decimal(d + s2, e2 - s2, &lon, &d2) ||
	    lat > 90 || lat < -90 || lon > 180 || lon < -180 ||
	    (lat == 0 && lon == 0) || d2 < 2)
		return;
	if (e2 < sc->n && (lk_alnum(d[e2]) || d[e2] == '_'))
		return;
	sc->tok_end[rule] = e2;
	moat__leak_geo_pair_emit(sc, s1, e2, lat, lon, d1 >= 4 && d2 >= 4, 90,
				 MOAT_LEAK_F_CONTEXT);
}

/* ---- NMEA 0183 ------------------------------------------------------------ */

/* ddmm.mmmm (lat, dd = 2) or dddmm.mmmm (lon, dd = 3) into degrees. */
static bool nmea_coord(const uint8_t *p, size_t n, size_t dd, double *deg,
		       int *mindec)
{
	if (n < dd + 2)
		return false;
	double m;
	int dec;
	for (size_t i = 0; i < dd; i++)
		if (!lk_digit(p[i]))
			return false;
	if (!moat__leak_parse_decimal(p + dd, n - dd, &m, &dec) || m >= 60.0 ||
	    p[dd] == '-')
		return false;
	double v = 0;
	for (size_t i = 0; i < dd; i++)
		v = v * 10 + (p[i] - '0');
	*deg = v + m / 60.0;
	*mindec = dec;
	return true;
}

void moat__leak_x_nmea(struct lk_scan *sc, unsigned rule, size_t end)
{
	const uint8_t *d = sc->d;
	size_t s = end - 7;
	if (s < sc->tok_end[rule])
		return;
	size_t star = end;
	while (star < sc->n && star - end < 120 && d[star] != '*') {
		if (d[star] == '$' || d[star] == '"' || d[star] < 0x20)
			return;
		star++;
	}
	if (star + 2 >= sc->n || d[star] != '*' ||
	    !lk_hex(d[star + 1]) || !lk_hex(d[star + 2]))
		return;
	sc->tok_end[rule] = star + 3;
	uint8_t x = 0;
	for (size_t i = s + 1; i < star; i++)
		x ^= d[i];
	if (x != (uint8_t)(lk_hexval(d[star + 1]) << 4 | lk_hexval(d[star + 2])))
		return;
	/* fields after "$GPxxx," */
	size_t fs[12], fe[12], nf = 0, i = end;
	while (nf < 12) {
		fs[nf] = i;
		while (i < star && d[i] != ',')
			i++;
		fe[nf++] = i;
		if (i >= star)
			break;
		i++;
	}
	size_t lat_f = 1; /* GGA, GNS: time,lat,N,lon,E */
	if (!memcmp(d + s + 3, "RMC", 3))
		lat_f = 2; /* time,status,lat,... */
	else if (!memcmp(d + s + 3, "GLL", 3))
		lat_f = 0;
	if (nf < lat_f + 4)
		return;
	double lat, lon;
	int md1, md2;
	size_t a = lat_f;
	if (!nmea_coord(d + fs[a], fe[a] - fs[a], 2, &lat, &md1) ||
	    !nmea_coord(d + fs[a + 2], fe[a + 2] - fs[a + 2], 3, &lon, &md2) ||
	    fe[a + 1] - fs[a + 1] != 1 || fe[a + 3] - fs[a + 3] != 1)
		return;
	uint8_t ns = d[fs[a + 1]], ew = d[fs[a + 3]];
	if ((ns != 'N' && ns != 'S') || (ew != 'E' && ew != 'W') || lat > 90 ||
	    lon > 180 || (lat == 0 && lon == 0))
		return;
	if (ns == 'S')
		lat = -lat;
	if (ew == 'W')
		lon = -lon;
	moat__leak_geo_pair_emit(sc, s, star + 3, lat, lon,
				 md1 >= 3 && md2 >= 3, 98, 0);
}

/* ---- degrees with ° and/or hemisphere letters ------------------------------ */

struct comp {
	double v;
	bool deg;
	uint8_t hemi;
	bool precise;
};

static bool is_seq(const uint8_t *d, size_t n, size_t i, const char *s)
{
	size_t k = strlen(s);
	return i + k <= n && !memcmp(d + i, s, k);
}

/* A number at i: value, decimals, end. */
static size_t read_num(const uint8_t *d, size_t n, size_t i, double *v,
		       int *dec)
{
	size_t j = i;
	if (j < n && d[j] == '-')
		j++;
	while (j < n && lk_digit(d[j]))
		j++;
	if (j + 1 < n && d[j] == '.' && lk_digit(d[j + 1])) {
		j++;
		while (j < n && lk_digit(d[j]))
			j++;
	}
	if (j == i || !moat__leak_parse_decimal(d + i, j - i, v, dec))
		return 0;
	return j;
}

static size_t skip_sp(const uint8_t *d, size_t n, size_t i)
{
	if (i < n && d[i] == ' ')
		i++;
	return i;
}

/* The length of a degree (0), minute (1) or second (2) sign at i: UTF-8,
 * ASCII or the JSON escapes of both (DMS inside a JSON string); 0 when
 * there is none. */
static size_t dms_mark(const uint8_t *d, size_t n, size_t i, unsigned kind)
{
	static const char *const marks[3][6] = {
		{"\xc2\xb0", "\xc2\xba", "\\u00b0", "\\u00B0", "\\u00ba", NULL},
		{"'", "\xe2\x80\xb2", "\\u2032", NULL},
		{"\"", "\\\"", "''", "\xe2\x80\xb3", "\\u2033", NULL},
	};
	for (const char *const *m = marks[kind]; *m; m++)
		if (is_seq(d, n, i, *m))
			return strlen(*m);
	return 0;
}

/* deg[° [min[' ′] [sec[" ″]]]] [N|S|E|W] */
static size_t parse_comp(const struct lk_scan *sc, size_t i, struct comp *c)
{
	const uint8_t *d = sc->d;
	size_t n = sc->n;
	int dec;
	memset(c, 0, sizeof(*c));
	size_t j = read_num(d, n, i, &c->v, &dec);
	if (!j)
		return 0;
	bool neg = c->v < 0;
	c->precise = dec >= 4;
	j = skip_sp(d, n, j);
	size_t ml = dms_mark(d, n, j, 0);
	if (ml) {
		c->deg = true;
		j = skip_sp(d, n, j + ml);
		double m, s;
		int md, sd;
		size_t k = read_num(d, n, j, &m, &md);
		size_t ml1 = k ? dms_mark(d, n, k, 1) : 0;
		if (k && m >= 0 && m < 60 && dec == 0 && ml1 &&
		    !(ml1 == 1 && dms_mark(d, n, k, 2) == 2)) {
			j = skip_sp(d, n, k + ml1);
			c->v += (neg ? -m : m) / 60.0;
			c->precise = md >= 2;
			size_t q = read_num(d, n, j, &s, &sd);
			size_t ml2 = q ? dms_mark(d, n, q, 2) : 0;
			if (q && s >= 0 && s < 60 && ml2) {
				j = skip_sp(d, n, q + ml2);
				c->v += (neg ? -s : s) / 3600.0;
				c->precise = true;
			}
		}
	}
	if (j < n && (d[j] == 'N' || d[j] == 'S' || d[j] == 'E' || d[j] == 'W') &&
	    !(j + 1 < n && lk_alpha(d[j + 1]))) {
		c->hemi = d[j];
		j++;
	} else if (c->deg && j < n && lk_alpha(d[j])) {
		return 0; /* 23.5°C */
	}
	return (c->deg || c->hemi) ? j : 0;
}

static bool d_is_sep(uint8_t c)
{
	return c == ' ' || c == ',' || c == ';' || c == '/';
}

static bool pair_at(const struct lk_scan *sc, size_t p, size_t *e,
		    double *lat, double *lon, bool *precise)
{
	struct comp a, b;
	size_t j = parse_comp(sc, p, &a);
	if (!j)
		return false;
	size_t k = j;
	while (k < sc->n && k - j < 4 &&
	       (d_is_sep(sc->d[k]))) /* separators between the two */
		k++;
	size_t q = parse_comp(sc, k, &b);
	if (!q || (a.hemi == 0) != (b.hemi == 0))
		return false;
	if (!a.hemi && !(a.deg && b.deg))
		return false;
	if (a.hemi == 'E' || a.hemi == 'W') { /* lon first */
		struct comp t = a;
		a = b;
		b = t;
	}
	if (a.hemi && !((a.hemi == 'N' || a.hemi == 'S') &&
			(b.hemi == 'E' || b.hemi == 'W')))
		return false;
	if (a.hemi && (a.v < 0 || b.v < 0))
		return false;
	*lat = a.hemi == 'S' ? -a.v : a.v;
	*lon = b.hemi == 'W' ? -b.v : b.v;
	if (*lat > 90 || *lat < -90 || *lon > 180 || *lon < -180 ||
	    (*lat == 0 && *lon == 0))
		return false;
	if (q < sc->n && (lk_alnum(sc->d[q]) || sc->d[q] == '_'))
		return false;
	*e = q;
	*precise = a.precise && b.precise;
	return true;
}

void moat__leak_x_geo_hemi(struct lk_scan *sc, unsigned rule, size_t end)
{
	const uint8_t *d = sc->d;
	if (end <= sc->tok_end[rule])
		return;
	size_t lo = end > 72 ? end - 72 : 0;
	lo = MOAT_MAX(lo, sc->tok_end[rule]);
	for (size_t p = lo; p < end; p++) {
		if (!lk_digit(d[p]) && d[p] != '-')
			continue;
		if (p > 0 && (lk_alnum(d[p - 1]) || d[p - 1] == '.' ||
			      d[p - 1] == '-' || d[p - 1] == '_'))
			continue;
		size_t e;
		double lat, lon;
		bool precise;
		if (!pair_at(sc, p, &e, &lat, &lon, &precise) || e < end)
			continue;
		sc->tok_end[rule] = e;
		moat__leak_geo_pair_emit(sc, p, e, lat, lon, precise, 95, 0);
		return;
	}
}

/* ---- health in text ----------------------------------------------------------- */

/* HL7 v2 segments end at a carriage return or a line feed, raw or as a
 * JSON escape (an HL7 message inside a JSON string). */
static bool hl7_break(const uint8_t *d, size_t k, size_t me)
{
	return d[k] == '\r' || d[k] == '\n' ||
	       (d[k] == '"' && (k == 0 || d[k - 1] != '\\')) ||
	       (d[k] == '\\' && k + 1 < me && (d[k + 1] == 'r' || d[k + 1] == 'n'));
}

/* A segment may start at s: after a break or a non-word byte. */
static bool hl7_seg_start(const uint8_t *d, size_t s)
{
	if (s >= 2 && d[s - 2] == '\\' && (d[s - 1] == 'r' || d[s - 1] == 'n'))
		return true;
	return s == 0 || (!lk_alnum(d[s - 1]) && d[s - 1] != '_' &&
			  d[s - 1] != '|' && d[s - 1] != '^');
}

static size_t hl7_seg_end(const uint8_t *d, size_t i, size_t me)
{
	size_t k = i;
	while (k < me && k - i < 2048 && !hl7_break(d, k, me))
		k++;
	return k;
}

/* Field f (1-based, after the segment name) of the segment d[i..se). */
static bool hl7_field(const uint8_t *d, size_t i, size_t se, unsigned f,
		      size_t *fs, size_t *fe)
{
	unsigned n = 0;
	size_t k = i;
	while (k < se && n < f) {
		if (d[k] == '|')
			n++;
		k++;
	}
	if (n < f)
		return false;
	*fs = k;
	while (k < se && d[k] != '|')
		k++;
	*fe = k;
	return true;
}

/* PID-5 (patient name, "Doe^John") is a person. */
static void hl7_pid(struct lk_scan *sc, size_t i, size_t se)
{
	const uint8_t *d = sc->d;
	size_t fs, fe;
	if (!hl7_field(d, i, se, 5, &fs, &fe))
		return;
	bool letters = false;
	for (size_t k = fs; k < fe; k++)
		letters |= lk_alpha(d[k]);
	if (!letters)
		return;
	struct lk_cand *c = moat__leak_add(sc, MOAT_LEAK_PERSON, fs, fe,
					   MOAT_LEAK_SEV_MEDIUM, 95, 0);
	if (c)
		moat__leak_prev_fmt(c, "PID-5 %c***", d[fs]);
}

/* HL7 v2: the message is health data; the PID segment's name (PID-5) is
 * a person.  The match ends after "MSH|^~\&" (or its JSON form with the
 * backslash escaped). */
void moat__leak_x_hl7(struct lk_scan *sc, unsigned rule, size_t end)
{
	const uint8_t *d = sc->d;
	size_t s = d[end - 3] == '\\' ? end - 9 : end - 8;
	if (s < sc->tok_end[rule])
		return;
	/* the message runs to the end of the line or of a JSON string */
	size_t me = end;
	while (me < sc->n && d[me] != '\n' &&
	       !(d[me] == '"' && d[me - 1] != '\\'))
		me++;
	sc->tok_end[rule] = me;
	struct lk_cand *c = moat__leak_add(sc, MOAT_LEAK_HEALTH, s, me,
					   MOAT_LEAK_SEV_HIGH, 95, 0);
	if (c)
		moat__leak_prev_set(c, "HL7 message ***");
	for (size_t i = end; i + 4 <= me; i++) {
		if (memcmp(d + i, "PID|", 4) || !hl7_seg_start(d, i))
			continue;
		hl7_pid(sc, i, hl7_seg_end(d, i, me));
		break;
	}
}

/* A PID or OBX segment without its MSH header (a message cut into
 * segments, one per JSON string or line).  OBX is an observation when its
 * identifier is coded (OBX-3 "8867-4^Heart rate^LN") and it has a value
 * (OBX-5): health data. */
void moat__leak_x_hl7_seg(struct lk_scan *sc, unsigned rule, size_t end)
{
	const uint8_t *d = sc->d;
	/* the match is "PID|" or "OBX|", up to 4 digits and '|' */
	size_t s = end - 5;
	while (s + 9 > end && s > 0 && memcmp(d + s, "PID|", 4) &&
	       memcmp(d + s, "OBX|", 4))
		s--;
	if ((memcmp(d + s, "PID|", 4) && memcmp(d + s, "OBX|", 4)) ||
	    s < sc->tok_end[rule])
		return;
	if (!hl7_seg_start(d, s))
		return;
	size_t se = hl7_seg_end(d, s, sc->n);
	sc->tok_end[rule] = se;
	if (d[s] == 'P') {
		hl7_pid(sc, s, se);
		return;
	}
	size_t is, ie, vs, ve;
	if (!hl7_field(d, s, se, 3, &is, &ie) ||
	    !memchr(d + is, '^', ie - is) ||
	    !hl7_field(d, s, se, 5, &vs, &ve) || ve == vs)
		return;
	struct lk_cand *c = moat__leak_add(sc, MOAT_LEAK_HEALTH, s, se,
					   MOAT_LEAK_SEV_HIGH, 90, 0);
	if (c)
		moat__leak_prev_set(c, "HL7 OBX ***");
}

void moat__leak_x_fhir(struct lk_scan *sc, unsigned rule, size_t end)
{
	const uint8_t *d = sc->d;
	size_t q = end - 1, s = q; /* the closing quote of the type */
	while (s > 0 && d[s - 1] != '"')
		s--;
	if (s < sc->tok_end[rule])
		return;
	sc->tok_end[rule] = end;
	struct lk_cand *c = moat__leak_add(sc, MOAT_LEAK_HEALTH, s, q,
					   MOAT_LEAK_SEV_HIGH, 90, 0);
	if (c)
		moat__leak_prev_set(c, "FHIR resource ***");
}

static const char *const ctx_heart[] = {"heart", "hr", "pulse", "patient",
					"ecg", "ekg", "cardiac", "resting",
					NULL};

/* The name of the measure when v (and v2, systolic) are plausible for
 * unit hu; NULL otherwise. */
static const char *unit_value(const struct lk_scan *sc, enum lk_hunit hu,
			      double v, double v2, size_t ns)
{
	switch (hu) {
	case HU_BP: /* v2 systolic, v diastolic */
		return v2 >= 50 && v2 <= 260 && v >= 30 && v <= 160 && v < v2
			       ? "BP"
			       : NULL;
	case HU_GLUCOSE_MG:
		return v >= 20 && v <= 600 ? "glucose" : NULL;
	case HU_GLUCOSE_MMOL:
		return v >= 1 && v <= 33 ? "glucose" : NULL;
	case HU_SPO2:
		return v >= 50 && v <= 100 ? "SpO2" : NULL;
	default:
		return v >= 20 && v <= 250 &&
			       moat__leak_ctx_before(sc, ns, 40, ctx_heart)
			       ? "heart rate"
			       : NULL;
	}
}

void moat__leak_x_health_unit(struct lk_scan *sc, unsigned rule, size_t end)
{
	const enum lk_hunit *hu = moat__leak_rules[rule].param;
	const uint8_t *d = sc->d;
	if (end <= sc->tok_end[rule])
		return;
	/* back over the unit to the last digit, then over the value(s) */
	size_t i = end;
	while (i > 0 && !lk_digit(d[i - 1]))
		i--;
	size_t ve = i;
	size_t s = number_start(d, ve);
	double v, v2 = 0;
	int dec;
	if (*hu == HU_BP) {
		size_t k = s;
		while (k > 0 && (d[k - 1] == ' ' || d[k - 1] == '/'))
			k--;
		size_t s1 = number_start(d, k);
		if (!moat__leak_parse_decimal(d + s1, k - s1, &v2, &dec))
			return;
		s = s1;
	}
	if (*hu == HU_SPO2) { /* "SpO2: 97%": the label comes first */
		size_t k = s;
		while (k > 0 && end - k < 16 && !(lk_alpha(d[k - 1]) &&
						  (d[k - 1] | 0x20) == 's'))
			k--;
		s = k ? k - 1 : 0;
	}
	sc->tok_end[rule] = end;
	if (s > 0 && (lk_alnum(d[s - 1]) || d[s - 1] == '.'))
		return;
	size_t ns = number_start(d, ve);
	if (!moat__leak_parse_decimal(d + ns, ve - ns, &v, &dec))
		return;
	const char *what = unit_value(sc, *hu, v, v2, ns);
	if (!what)
		return;
	struct lk_cand *c = moat__leak_add(sc, MOAT_LEAK_HEALTH, s, end,
					   MOAT_LEAK_SEV_HIGH, 85, 0);
	if (c)
		moat__leak_prev_fmt(c, "%s ***", what);
}

/* The words before a value at ns (up to 20 bytes, separators skipped),
 * lower case without spaces into w (24 bytes): their length. */
static size_t phrase_before(const uint8_t *d, size_t ns, char *w, size_t *ws,
			    size_t *we)
{
	size_t e = ns;
	while (e > 0 && (d[e - 1] == ' ' || d[e - 1] == ':' || d[e - 1] == '='))
		e--;
	size_t s = e, n = 0;
	while (s > 0 && e - s < 20 && (lk_alnum(d[s - 1]) || d[s - 1] == ' '))
		s--;
	for (size_t i = s; i < e && n + 1 < 24; i++)
		if (d[i] != ' ')
			w[n++] = (char)lk_tolower(d[i]);
	w[n] = '\0';
	*ws = s;
	*we = e;
	return n;
}

/* "heart rate 72", "BP 120/80", "glucose 105": a measure named in words
 * and a plausible value right after it. */
void moat__leak_x_health_words(struct lk_scan *sc, unsigned rule, size_t end)
{
	static const struct {
		const char *w;
		double lo, hi;
		bool bp; /* the value is systolic/diastolic */
	} m[] = {
		{"heartrate", 20, 250, false}, {"pulse", 20, 250, false},
		{"spo2", 50, 100, false},      {"glucose", 20, 600, false},
		{"bloodsugar", 20, 600, false}, {"resprate", 4, 60, false},
		{"respiratoryrate", 4, 60, false}, {"bodytemp", 30, 45, false},
		{"bodytemperature", 30, 45, false}, {"bp", 50, 260, true},
		{"bloodpressure", 50, 260, true},
	};
	const uint8_t *d = sc->d;
	if (end <= sc->tok_end[rule])
		return;
	size_t ns = end;
	while (ns > 0 && lk_digit(d[ns - 1]))
		ns--;
	char w[24];
	size_t ws, we, wn = phrase_before(d, ns, w, &ws, &we);
	/* the phrase may have words before it: match its end */
	size_t ne = moat__leak_span(sc, ns, LK_CS_DIGIT);
	bool bp = ne + 1 < sc->n && d[ne] == '/' && lk_digit(d[ne + 1]);
	size_t ve = ne;
	if (bp)
		ve = moat__leak_span(sc, ne + 1, LK_CS_DIGIT);
	else if (ne + 1 < sc->n && d[ne] == '.' && lk_digit(d[ne + 1]))
		ve = moat__leak_span(sc, ne + 1, LK_CS_DIGIT);
	sc->tok_end[rule] = ve;
	if (ve < sc->n && (lk_alpha(d[ve]) && !(d[ve] == 'm' || d[ve] == 'b' ||
						d[ve] == 'C' || d[ve] == 'F')))
		return;
	double v;
	int dec;
	if (!moat__leak_parse_decimal(d + ns, ne - ns, &v, &dec))
		return;
	for (size_t i = 0; i < MOAT_ARRAY_LEN(m); i++) {
		size_t k = strlen(m[i].w);
		if (k > wn || memcmp(w + wn - k, m[i].w, k))
			continue;
		size_t at = we; /* the phrase must start a word */
		for (size_t j = 0, seen = 0; at > ws && seen < k; j++) {
			at--;
			if (d[at] != ' ')
				seen++;
		}
		if (at > 0 && (lk_alnum(d[at - 1]) || d[at - 1] == '_'))
			return;
		if (m[i].bp != bp || v < m[i].lo || v > m[i].hi)
			return;
		struct lk_cand *c = moat__leak_add(sc, MOAT_LEAK_HEALTH, ns, ve,
						   MOAT_LEAK_SEV_HIGH, 85,
						   MOAT_LEAK_F_CONTEXT);
		if (c)
			moat__leak_prev_fmt(c, "%s ***", m[i].w);
		return;
	}
}
