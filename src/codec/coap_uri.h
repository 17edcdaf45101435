/* coap:// and coaps:// URIs (RFC 7252 §6) and their Uri-* options (§6.4,
 * §6.5), percent-encoding of path segments and query arguments.  Pure
 * functions; the parsed URI points into the caller's string. */
#ifndef MOAT_COAP_URI_H
#define MOAT_COAP_URI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "coap.h"

#define COAP_URI_HOST_MAX 255
#define COAP_SEGMENT_MAX 255 /* Uri-Path and Uri-Query values (Table 4) */

struct coap_uri {
	bool secure;			  /* coaps:// */
	char host[COAP_URI_HOST_MAX + 1]; /* without [ ]; NUL-terminated */
	bool host_literal;		  /* IPv4 or IPv6 address */
	uint16_t port;			  /* 5683 / 5684 when not given */
	const char *path;		  /* percent-encoded, "" or "/..." */
	size_t path_len;
	const char *query; /* percent-encoded, without the '?' */
	size_t query_len;
};

/* Parse an absolute coap or coaps URI.  MOAT_OK, or MOAT_EINVAL with *why
 * (static text) set: another scheme, user information (credentials never
 * go in a URI), a fragment, a bad host or port, characters a URI may not
 * hold, a bad percent-encoding, "." or ".." segments, a segment or query
 * argument longer than 255 bytes once decoded. */
int coap_uri_parse(const char *s, struct coap_uri *u, const char **why);

/* The Uri-Host option (only for a host name, §6.4 step 5), the Uri-Path
 * options (one per segment, none for "" or "/") and the Uri-Query options
 * (one per &-separated argument) of u, percent-decoded.  Call them in this
 * order, with options numbered in between written between them. */
void coap_wr_uri_host(struct coap_wr *w, const struct coap_uri *u);
void coap_wr_uri_path(struct coap_wr *w, const struct coap_uri *u);
void coap_wr_uri_query(struct coap_wr *w, const struct coap_uri *u);

/* Decode %HH escapes of s[0..n) into out[0..cap).  MOAT_OK with *outlen,
 * MOAT_EINVAL for a bad escape, MOAT_ELIMIT when out is too small. */
int coap_pct_decode(const char *s, size_t n, uint8_t *out, size_t cap,
		    size_t *outlen);
/* Append p[0..n) to out (NUL-terminated, size cap, holding *pos bytes),
 * escaping every byte that is not unreserved, a sub-delim, ':' or '@'
 * (RFC 3986 pchar) or that is in also_escape.  MOAT_OK or MOAT_ELIMIT. */
int coap_pct_encode(const uint8_t *p, size_t n, const char *also_escape,
		    char *out, size_t cap, size_t *pos);
/* The request path of m from its Uri-Path options, percent-encoded:
 * "/a/b%2Fc"; "/" when there are none; a segment "." or ".." is written
 * %2E or %2E%2E.  MOAT_OK or MOAT_ELIMIT. */
int coap_path_format(const struct coap_msg *m, char *out, size_t cap);

#endif
