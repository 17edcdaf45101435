/* coap:// URIs and Uri-* options (RFC 7252 §6.4, §6.5; RFC 3986 syntax).
 *
 * The parser is strict on purpose (RFC 7252 §11.1: URI processing is a
 * classic source of bugs): it accepts what RFC 3986 allows in each part
 * and nothing else, and checks up front everything the option writers
 * need, so that they cannot fail on a parsed URI except for lack of room
 * in the message. */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "coap_uri.h"

static bool unreserved(int c)
{
	return isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~';
}

static bool sub_delim(int c)
{
	return c && strchr("!$&'()*+,;=", c) != NULL;
}

static bool pchar(int c)
{
	return unreserved(c) || sub_delim(c) || c == ':' || c == '@';
}

static int hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = tolower(c);
	return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

int coap_pct_decode(const char *s, size_t n, uint8_t *out, size_t cap,
		    size_t *outlen)
{
	size_t o = 0;
	for (size_t i = 0; i < n; i++) {
		int c = (unsigned char)s[i];
		if (c == '%') {
			if (n - i < 3)
				return MOAT_EINVAL;
			int hi = hexval((unsigned char)s[i + 1]);
			int lo = hexval((unsigned char)s[i + 2]);
			if (hi < 0 || lo < 0)
				return MOAT_EINVAL;
			c = hi << 4 | lo;
			i += 2;
		}
		if (o == cap)
			return MOAT_ELIMIT;
		out[o++] = (uint8_t)c;
	}
	*outlen = o;
	return MOAT_OK;
}

int coap_pct_encode(const uint8_t *p, size_t n, const char *also_escape,
		    char *out, size_t cap, size_t *pos)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t o = *pos;
	for (size_t i = 0; i < n; i++) {
		int c = p[i];
		bool esc = !pchar(c) ||
			   (also_escape && strchr(also_escape, c) != NULL);
		size_t need = esc ? 3 : 1;
		if (cap - o <= need) /* and the NUL */
			return MOAT_ELIMIT;
		if (esc) {
			out[o++] = '%';
			out[o++] = hex[c >> 4];
			out[o++] = hex[c & 15];
		} else {
			out[o++] = (char)c;
		}
	}
	if (o >= cap)
		return MOAT_ELIMIT;
	out[o] = 0;
	*pos = o;
	return MOAT_OK;
}

/* Each sep-separated piece of s[0..n) must be chars allowed by ok (or a
 * %HH escape) and decode to at most 255 bytes. */
static int check_pieces(const char *s, size_t n, char sep, bool path,
			const char **why)
{
	size_t start = 0;
	for (size_t i = 0; i <= n; i++) {
		if (i < n && s[i] != sep) {
			int c = (unsigned char)s[i];
			bool ok = pchar(c) || c == '%' ||
				  (!path && (c == '/' || c == '?'));
			if (!ok) {
				*why = "a character that a URI may not hold "
				       "(percent-encode it)";
				return MOAT_EINVAL;
			}
			continue;
		}
		uint8_t buf[COAP_SEGMENT_MAX];
		size_t len, plen = i - start;
		int rc = coap_pct_decode(s + start, plen, buf, sizeof(buf),
					 &len);
		if (rc == MOAT_EINVAL)
			*why = "a bad percent-encoding (%HH)";
		else if (rc != MOAT_OK)
			*why = "a path segment or query argument longer than "
			       "255 bytes";
		if (rc != MOAT_OK)
			return MOAT_EINVAL;
		if (path && ((plen == 1 && s[start] == '.') ||
			     (plen == 2 && !memcmp(s + start, "..", 2)))) {
			*why = "a \".\" or \"..\" path segment";
			return MOAT_EINVAL;
		}
		start = i + 1;
	}
	return MOAT_OK;
}

static int parse_port(const char *s, size_t n, uint16_t *port,
		      const char **why)
{
	if (n == 0)
		return MOAT_OK; /* "host:" is the default port */
	unsigned long v = 0;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9' || i >= 5) {
			*why = "a bad port";
			return MOAT_EINVAL;
		}
		v = v * 10 + (unsigned long)(s[i] - '0');
	}
	if (v == 0 || v > 65535) {
		*why = "a port outside 1..65535";
		return MOAT_EINVAL;
	}
	*port = (uint16_t)v;
	return MOAT_OK;
}

/* host[:port] or [v6]:port in s[0..n). */
static int parse_authority(const char *s, size_t n, struct coap_uri *u,
			   const char **why)
{
	if (memchr(s, '@', n)) {
		*why = "user information: credentials never go in a URI";
		return MOAT_EINVAL;
	}
	const char *h = s, *colon;
	size_t hn;
	if (n && s[0] == '[') {
		const char *rb = memchr(s, ']', n);
		if (!rb) {
			*why = "an IPv6 address without ']'";
			return MOAT_EINVAL;
		}
		h = s + 1;
		hn = (size_t)(rb - h);
		colon = rb + 1 < s + n ? rb + 1 : NULL;
		if (colon && *colon != ':') {
			*why = "characters after the IPv6 address";
			return MOAT_EINVAL;
		}
	} else {
		colon = memchr(s, ':', n);
		hn = colon ? (size_t)(colon - s) : n;
	}
	if (hn == 0 || hn > COAP_URI_HOST_MAX) {
		*why = "no host, or a host name longer than 255 bytes";
		return MOAT_EINVAL;
	}
	memcpy(u->host, h, hn);
	u->host[hn] = 0;
	uint8_t addr[16];
	if (h != s) { /* bracketed: must be an IPv6 address */
		if (inet_pton(AF_INET6, u->host, addr) != 1) {
			*why = "a bad IPv6 address";
			return MOAT_EINVAL;
		}
		u->host_literal = true;
	} else if (inet_pton(AF_INET, u->host, addr) == 1) {
		u->host_literal = true;
	} else {
		for (size_t i = 0; i < hn; i++) {
			int c = (unsigned char)u->host[i];
			if (!unreserved(c) && !sub_delim(c)) {
				*why = "a bad host name";
				return MOAT_EINVAL;
			}
		}
	}
	if (!colon)
		return MOAT_OK;
	return parse_port(colon + 1, (size_t)(s + n - colon - 1), &u->port,
			  why);
}

int coap_uri_parse(const char *s, struct coap_uri *u, const char **why)
{
	memset(u, 0, sizeof(*u));
	*why = NULL;
	size_t skip;
	if (!strncasecmp(s, "coap://", 7)) {
		skip = 7;
	} else if (!strncasecmp(s, "coaps://", 8)) {
		skip = 8;
		u->secure = true;
	} else {
		*why = "not a coap:// or coaps:// URI";
		return MOAT_EINVAL;
	}
	u->port = u->secure ? COAP_PORT_SECURE : COAP_PORT;
	s += skip;
	if (strchr(s, '#')) {
		*why = "a fragment (#...)";
		return MOAT_EINVAL;
	}
	size_t an = strcspn(s, "/?");
	int rc = parse_authority(s, an, u, why);
	if (rc != MOAT_OK)
		return rc;
	u->path = s + an;
	u->path_len = strcspn(u->path, "?");
	if (u->path[u->path_len] == '?') {
		u->query = u->path + u->path_len + 1;
		u->query_len = strlen(u->query);
	}
	/* The path after its leading '/', segment by segment. */
	if (u->path_len > 1 &&
	    check_pieces(u->path + 1, u->path_len - 1, '/', true, why))
		return MOAT_EINVAL;
	if (u->query &&
	    check_pieces(u->query, u->query_len, '&', false, why))
		return MOAT_EINVAL;
	return MOAT_OK;
}

void coap_wr_uri_host(struct coap_wr *w, const struct coap_uri *u)
{
	if (u->host_literal)
		return;
	char lower[COAP_URI_HOST_MAX + 1];
	size_t n = strlen(u->host);
	for (size_t i = 0; i < n; i++)
		lower[i] = (char)tolower((unsigned char)u->host[i]);
	coap_wr_opt(w, COAP_OPT_URI_HOST, lower, n);
}

/* One option num per sep-separated piece of s[0..n), decoded. */
static void wr_pieces(struct coap_wr *w, uint16_t num, const char *s,
		      size_t n, char sep)
{
	size_t start = 0;
	for (size_t i = 0; i <= n; i++) {
		if (i < n && s[i] != sep)
			continue;
		uint8_t buf[COAP_SEGMENT_MAX];
		size_t len = 0;
		if (coap_pct_decode(s + start, i - start, buf, sizeof(buf),
				    &len) != MOAT_OK && !w->err)
			w->err = MOAT_EINVAL; /* not from coap_uri_parse */
		coap_wr_opt(w, num, buf, len);
		start = i + 1;
	}
}

void coap_wr_uri_path(struct coap_wr *w, const struct coap_uri *u)
{
	if (u->path_len > 1)
		wr_pieces(w, COAP_OPT_URI_PATH, u->path + 1, u->path_len - 1,
			  '/');
}

void coap_wr_uri_query(struct coap_wr *w, const struct coap_uri *u)
{
	if (u->query)
		wr_pieces(w, COAP_OPT_URI_QUERY, u->query, u->query_len, '&');
}

int coap_path_format(const struct coap_msg *m, char *out, size_t cap)
{
	struct coap_opt_iter it;
	struct coap_opt o;
	size_t pos = 0;
	if (cap < 2)
		return MOAT_ELIMIT;
	out[0] = 0;
	coap_opt_iter_init(&it, m);
	while (coap_opt_next(&it, &o) && o.num <= COAP_OPT_URI_PATH) {
		if (o.num != COAP_OPT_URI_PATH)
			continue;
		if (cap - pos < 2)
			return MOAT_ELIMIT;
		out[pos++] = '/';
		out[pos] = 0;
		/* A segment "." or ".." is data here: escape it so that
		 * the path does not read as a dot segment. */
		bool dots = (o.len == 1 || o.len == 2) && o.val[0] == '.' &&
			    o.val[o.len - 1] == '.';
		int rc = coap_pct_encode(o.val, o.len, dots ? "." : NULL, out,
					 cap, &pos);
		if (rc != MOAT_OK)
			return rc;
	}
	if (pos == 0) {
		out[0] = '/';
		out[1] = 0;
	}
	return MOAT_OK;
}
