/* MQTT topics <-> NATS subjects: the escaping described in subject.h. */
#include <string.h>

#include "subject.h"

#include "codec/mqtt_codec.h"
#include "common/moat_common.h"

static const char hexd[] = "0123456789ABCDEF";

static bool plain_byte(uint8_t c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
	       (c >= '0' && c <= '9') || c == '_' || c == '-';
}

static int hex_val(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1; /* lower case is not canonical */
}

/* Output cursor: out[0..cap) with room kept for the NUL, and never more
 * than MOAT_SUBJECT_MAX bytes of subject. */
struct sw {
	char *out;
	size_t len;
	size_t lim;
	bool over;
};

static void sw_init(struct sw *w, char *out, size_t cap)
{
	w->out = out;
	w->len = 0;
	w->lim = cap ? MOAT_MIN(cap - 1, (size_t)MOAT_SUBJECT_MAX) : 0;
	w->over = cap == 0;
}

static void sw_put(struct sw *w, const char *p, size_t n)
{
	if (w->over || w->lim - w->len < n) {
		w->over = true;
		return;
	}
	memcpy(w->out + w->len, p, n);
	w->len += n;
}

static void sw_token(struct sw *w, const uint8_t *s, size_t len)
{
	if (len == 0) {
		sw_put(w, "=", 1);
		return;
	}
	for (size_t i = 0; i < len && !w->over; i++) {
		if (plain_byte(s[i])) {
			sw_put(w, (const char *)&s[i], 1);
		} else {
			char e[3] = {MOAT_SUBJECT_ESC, hexd[s[i] >> 4],
				     hexd[s[i] & 15]};
			sw_put(w, e, 3);
		}
	}
}

static int sw_end(struct sw *w)
{
	if (w->over)
		return MOAT_ELIMIT;
	w->out[w->len] = '\0';
	return (int)w->len;
}

bool moat_subject_prefix_valid(const char *prefix)
{
	size_t tok = 0;

	if (!prefix)
		return false;
	for (const char *p = prefix; *p; p++) {
		if (*p == '.') {
			if (tok == 0)
				return false;
			tok = 0;
		} else if (plain_byte((uint8_t)*p)) {
			tok++;
		} else {
			return false;
		}
	}
	return prefix[0] == '\0' || tok > 0;
}

int moat_subject_token(const uint8_t *s, size_t len, char *out, size_t cap)
{
	struct sw w;

	sw_init(&w, out, cap);
	sw_token(&w, s, len);
	return sw_end(&w);
}

int moat_subject_untoken(const char *tok, size_t len, uint8_t *out,
			 size_t cap)
{
	size_t n = 0;

	if (len == 1 && tok[0] == MOAT_SUBJECT_ESC)
		return 0; /* the empty string */
	if (len == 0)
		return MOAT_EMALFORMED;
	for (size_t i = 0; i < len; n++) {
		uint8_t b;
		if (tok[i] == MOAT_SUBJECT_ESC) {
			int hi, lo;
			if (len - i < 3 || (hi = hex_val(tok[i + 1])) < 0 ||
			    (lo = hex_val(tok[i + 2])) < 0)
				return MOAT_EMALFORMED;
			b = (uint8_t)(hi << 4 | lo);
			if (plain_byte(b))
				return MOAT_EMALFORMED; /* not canonical */
			i += 3;
		} else if (plain_byte((uint8_t)tok[i])) {
			b = (uint8_t)tok[i++];
		} else {
			return MOAT_EMALFORMED;
		}
		if (n == cap)
			return MOAT_ELIMIT;
		out[n] = b;
	}
	return (int)n;
}

/* PREFIX "." CLASS, the start of every subject. */
static void sw_head(struct sw *w, const char *prefix, bool dollar)
{
	size_t pl = strlen(prefix);
	if (pl) {
		sw_put(w, prefix, pl);
		sw_put(w, ".", 1);
	}
	sw_put(w, dollar ? "d" : "t", 1);
}

int moat_subject_from_topic(const char *prefix, const uint8_t *topic,
			    size_t len, char *out, size_t cap)
{
	struct sw w;
	size_t start = 0;

	if (!moat_subject_prefix_valid(prefix) ||
	    !moat_topic_name_valid(topic, len) || !moat_utf8_valid(topic, len))
		return MOAT_EINVAL;
	sw_init(&w, out, cap);
	sw_head(&w, prefix, topic[0] == '$');
	for (size_t i = 0; i <= len && !w.over; i++) {
		if (i == len || topic[i] == '/') {
			sw_put(&w, ".", 1);
			sw_token(&w, topic + start, i - start);
			start = i + 1;
		}
	}
	return sw_end(&w);
}

int moat_subject_from_filter(const char *prefix, const uint8_t *filter,
			     size_t len, char *out, size_t cap,
			     size_t *parent_len)
{
	struct sw w;
	size_t start = 0, levels = 0;
	bool multi = false;
	int rc;

	*parent_len = 0;
	if (!moat_subject_prefix_valid(prefix) ||
	    !moat_topic_filter_valid(filter, len) ||
	    !moat_utf8_valid(filter, len))
		return MOAT_EINVAL;
	sw_init(&w, out, cap);
	/* A wildcard first level is a non-'$' first level. */
	sw_head(&w, prefix, filter[0] == '$');
	for (size_t i = 0; i <= len && !w.over; i++) {
		if (i < len && filter[i] != '/')
			continue;
		const uint8_t *lv = filter + start;
		size_t n = i - start;
		sw_put(&w, ".", 1);
		if (n == 1 && lv[0] == '+') {
			sw_put(&w, "*", 1);
		} else if (n == 1 && lv[0] == '#') {
			sw_put(&w, ">", 1); /* valid: '#' is last */
			multi = true;
		} else {
			sw_token(&w, lv, n);
		}
		levels++;
		start = i + 1;
	}
	rc = sw_end(&w);
	/* "a/#" also matches "a"; "#" alone has no parent topic. */
	if (rc > 0 && multi && levels > 1)
		*parent_len = (size_t)rc - 2;
	return rc;
}

int moat_subject_to_topic(const char *prefix, const char *s, size_t slen,
			  uint8_t *out, size_t cap)
{
	size_t pl = strlen(prefix), i, n = 0;
	bool dollar;

	if (slen > MOAT_SUBJECT_MAX || !moat_subject_prefix_valid(prefix))
		return MOAT_EMALFORMED;
	if (pl && (slen <= pl || memcmp(s, prefix, pl) || s[pl] != '.'))
		return MOAT_EMALFORMED;
	i = pl ? pl + 1 : 0;
	/* CLASS ".", then at least one token */
	if (slen - i < 3 || (s[i] != 't' && s[i] != 'd') || s[i + 1] != '.')
		return MOAT_EMALFORMED;
	dollar = s[i] == 'd';
	i += 2;
	for (;;) {
		const char *dot = memchr(s + i, '.', slen - i);
		size_t tl = dot ? (size_t)(dot - (s + i)) : slen - i;
		int r = moat_subject_untoken(s + i, tl, out + n, cap - n);
		if (r < 0)
			return r;
		if (memchr(out + n, '/', (size_t)r))
			return MOAT_EMALFORMED; /* would split the level */
		n += (size_t)r;
		if (!dot)
			break;
		if (n == cap)
			return MOAT_ELIMIT;
		out[n++] = '/';
		i += tl + 1;
	}
	/* Only the image of a valid topic, with the class it implies. */
	if (!moat_topic_name_valid(out, n) || !moat_utf8_valid(out, n) ||
	    (out[0] == '$') != dollar)
		return MOAT_EMALFORMED;
	return (int)n;
}

/* The next dot-separated token of p[0..len) at *pos; false past the end. */
static bool next_tok(const char *p, size_t len, size_t *pos, const char **t,
		     size_t *tl)
{
	const char *dot;
	size_t end;

	if (len == 0 || *pos > len)
		return false;
	dot = memchr(p + *pos, '.', len - *pos);
	end = dot ? (size_t)(dot - p) : len;
	*t = p + *pos;
	*tl = end - *pos;
	*pos = end + 1;
	return true;
}

bool moat_subject_matches(const char *sub, size_t sublen, const char *s,
			  size_t slen)
{
	size_t i = 0, j = 0;

	for (;;) {
		const char *a, *b;
		size_t al, bl;
		bool ha = next_tok(sub, sublen, &i, &a, &al);
		bool hb = next_tok(s, slen, &j, &b, &bl);
		if (!ha)
			return !hb;
		if (al == 1 && a[0] == '>')
			return hb; /* one or more tokens */
		if (!hb)
			return false;
		if (!(al == 1 && a[0] == '*') &&
		    (al != bl || memcmp(a, b, al)))
			return false;
	}
}
