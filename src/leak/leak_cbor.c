/* CBOR (RFC 8949) to JSON text, for the leak detector: a binary payload
 * that is one well-formed CBOR map or array (CoAP Content-Format 60, many
 * LoRaWAN payloads, SenML CBOR) is transcoded into the scratch's decode
 * buffer and scanned as JSON.  A segment map ties each string and number
 * of the JSON back to the CBOR bytes it came from, so findings point
 * into (and redaction overwrites) the original message: text bytes of
 * strings, argument bytes of numbers (the header byte stays, so the CBOR
 * stays well-formed).
 *
 * Bounded and allocation-free: nesting at most LK_CBOR_DEPTH, output at
 * most the buffer (cut short: the caller scans what fits and says so),
 * at most LK_SEG_MAX segments (later ones share the last).  Not handled
 * (the payload is then not taken for CBOR): indefinite-length strings,
 * map keys other than text and integers, text that is not printable
 * UTF-8, trailing bytes. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "leak/leak_int.h"

#define LK_CBOR_DEPTH 16

/* SenML CBOR labels (RFC 8428 section 6): -5..8. */
static const char *const senml[] = {"bv", "bu", "bt", "bn", "bver", "n",
				    "u",  "v",  "vs", "vb", "s",    "t",
				    "ut", "vd"};

struct cb {
	const uint8_t *p;
	size_t n, i;
	struct lk_decode *dc;
	bool senml;
};

static void out(struct cb *c, const void *s, size_t n)
{
	struct lk_decode *dc = c->dc;
	if (dc->len + n > dc->cap) {
		n = dc->cap - dc->len;
		dc->cut = true;
	}
	memcpy(dc->buf + dc->len, s, n);
	dc->len += n;
}

static void seg(struct cb *c, size_t os, size_t is, size_t ie)
{
	struct lk_decode *dc = c->dc;
	if (dc->nseg == LK_SEG_MAX)
		return;
	struct lk_seg *g = &dc->seg[dc->nseg++];
	g->os = (uint32_t)os;
	g->is = (uint32_t)is;
	g->ie = (uint32_t)ie;
}

/* The head of the item at c->i: major type, additional info, argument;
 * false when the input ends or the encoding is reserved. */
static bool head(struct cb *c, unsigned *mt, unsigned *ai, uint64_t *arg)
{
	if (c->i >= c->n)
		return false;
	uint8_t b = c->p[c->i++];
	*mt = b >> 5;
	*ai = b & 31u;
	*arg = *ai;
	if (*ai < 24 || *ai == 31)
		return *ai != 31 || *mt >= 2;
	if (*ai > 27)
		return false;
	size_t k = (size_t)1 << (*ai - 24);
	if (c->n - c->i < k)
		return false;
	*arg = 0;
	for (size_t j = 0; j < k; j++)
		*arg = *arg << 8 | c->p[c->i++];
	return true;
}

/* Printable UTF-8 text (tabs and line ends allowed). */
static bool text_ok(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		uint8_t b = p[i];
		if (b < 0x20 && b != '\t' && b != '\n' && b != '\r')
			return false;
		if (b == 0x7f)
			return false;
		if (b < 0x80)
			continue;
		size_t k = b >= 0xf0 ? 3 : b >= 0xe0 ? 2 : b >= 0xc2 ? 1 : 9;
		if (k == 9 || b > 0xf4 || n - i - 1 < k)
			return false;
		for (size_t j = 1; j <= k; j++)
			if ((p[i + j] & 0xc0) != 0x80)
				return false;
		i += k;
	}
	return true;
}

static void out_string(struct cb *c, const uint8_t *s, size_t n, size_t is)
{
	out(c, "\"", 1);
	size_t os = c->dc->len;
	seg(c, os, is, is + n);
	size_t from = 0;
	for (size_t i = 0; i < n; i++) {
		const char *esc = s[i] == '"'    ? "\\\""
				  : s[i] == '\\' ? "\\\\"
				  : s[i] == '\n' ? "\\n"
				  : s[i] == '\r' ? "\\r"
				  : s[i] == '\t' ? "\\t"
						 : NULL;
		if (!esc)
			continue;
		out(c, s + from, i - from);
		out(c, esc, 2);
		from = i + 1;
	}
	out(c, s + from, n - from);
	out(c, "\"", 1);
}

static void out_number(struct cb *c, const char *txt, size_t is, size_t ie)
{
	seg(c, c->dc->len, is, ie);
	out(c, txt, strlen(txt));
}

/* Shortest decimal that reads back as v (as a float when single). */
static void fmt_double(char *b, size_t bn, double v, bool single)
{
	for (int prec = single ? 6 : 15; prec <= 17; prec++) {
		snprintf(b, bn, "%.*g", prec, v);
		double r = strtod(b, NULL);
		if (single ? (float)r == (float)v : r == v)
			return;
	}
}

static double half(uint16_t h)
{
	int e = (h >> 10) & 0x1f, m = h & 0x3ff;
	double v = e == 0    ? ldexp(m, -24)
		   : e == 31 ? (m ? NAN : INFINITY)
			     : ldexp(m + 1024, e - 25);
	return h & 0x8000 ? -v : v;
}

static bool item(struct cb *c, unsigned depth);

static bool simple(struct cb *c, unsigned ai, uint64_t arg, size_t start)
{
	char b[40];
	double v;
	if (ai < 24 || ai == 24) {
		out(c, arg == 20 ? "false" : arg == 21 ? "true" : "null",
		    arg == 20 ? 5 : arg == 21 ? 4 : 4);
		return true;
	}
	if (ai == 25)
		v = half((uint16_t)arg);
	else if (ai == 26) {
		uint32_t u = (uint32_t)arg;
		float f;
		memcpy(&f, &u, 4);
		v = f;
	} else {
		memcpy(&v, &arg, 8);
	}
	if (!isfinite(v)) {
		out(c, "null", 4);
		return true;
	}
	fmt_double(b, sizeof(b), v, ai == 26);
	out_number(c, b, start + 1, c->i);
	return true;
}

static bool map_key(struct cb *c, unsigned depth)
{
	size_t start = c->i;
	unsigned mt, ai;
	uint64_t arg;
	if (!head(c, &mt, &ai, &arg))
		return false;
	if (mt == 3 && ai != 31) {
		if (arg > c->n - c->i || !text_ok(c->p + c->i, (size_t)arg))
			return false;
		out_string(c, c->p + c->i, (size_t)arg, c->i);
		c->i += (size_t)arg;
		return true;
	}
	if (mt > 1)
		return false;
	int64_t k = mt == 0 ? (int64_t)MOAT_MIN(arg, (uint64_t)INT64_MAX)
			    : -1 - (int64_t)MOAT_MIN(arg, (uint64_t)INT64_MAX - 1);
	char b[32];
	if (c->senml && depth == 2 && k >= -5 && k <= 8)
		snprintf(b, sizeof(b), "\"%s\"", senml[k + 5]);
	else
		snprintf(b, sizeof(b), "\"%lld\"", (long long)k);
	seg(c, c->dc->len, start, c->i);
	out(c, b, strlen(b));
	return true;
}

static bool container(struct cb *c, bool map, uint64_t arg, bool indef,
		      unsigned depth)
{
	out(c, map ? "{" : "[", 1);
	for (uint64_t k = 0;; k++) {
		if (indef) {
			if (c->i >= c->n)
				return false;
			if (c->p[c->i] == 0xff) {
				c->i++;
				break;
			}
		} else if (k == arg) {
			break;
		}
		if (k)
			out(c, ",", 1);
		if (map) {
			if (!map_key(c, depth + 1))
				return false;
			out(c, ":", 1);
		}
		if (!item(c, depth + 1))
			return false;
	}
	out(c, map ? "}" : "]", 1);
	return true;
}

static bool item(struct cb *c, unsigned depth)
{
	if (depth > LK_CBOR_DEPTH)
		return false;
	size_t start = c->i;
	unsigned mt, ai;
	uint64_t arg;
	char b[32];
	if (!head(c, &mt, &ai, &arg))
		return false;
	switch (mt) {
	case 0:
	case 1:
		if (mt == 0)
			snprintf(b, sizeof(b), "%llu", (unsigned long long)arg);
		else
			snprintf(b, sizeof(b), "-%llu",
				 (unsigned long long)arg + (arg < UINT64_MAX));
		out_number(c, b, c->i > start + 1 ? start + 1 : start, c->i);
		return true;
	case 2:
	case 3:
		if (ai == 31 || arg > c->n - c->i)
			return false;
		if (text_ok(c->p + c->i, (size_t)arg))
			out_string(c, c->p + c->i, (size_t)arg, c->i);
		else if (mt == 3)
			return false;
		else
			out(c, "\"\"", 2); /* binary bytes: nothing to read */
		c->i += (size_t)arg;
		return true;
	case 4:
	case 5:
		/* an item takes at least one byte: a count larger than the
		 * rest of the input is malformed */
		if (ai != 31 && arg > c->n - c->i)
			return false;
		return container(c, mt == 5, arg, ai == 31, depth);
	case 6:
		return item(c, depth + 1); /* tag: its content */
	default:
		if (ai == 31)
			return false; /* a break outside a container */
		return simple(c, ai, arg, start);
	}
}

bool moat__leak_cbor_json(const uint8_t *p, size_t n, struct lk_decode *dc)
{
	dc->len = 0;
	dc->nseg = 0;
	dc->cut = false;
	if (n < 2 || (p[0] & 0xe0) < 0x80 || (p[0] & 0xe0) > 0xa0)
		return false; /* a map or an array only */
	struct cb c = {p, n, 0, dc, false};
	/* SenML: an array of maps keyed by small integers */
	c.senml = (p[0] & 0xe0) == 0x80 && (p[1] & 0xe0) == 0xa0;
	if (!item(&c, 0) || c.i != n)
		return false;
	return true;
}
