/* CoAP option definitions (RFC 7252 Table 4, RFC 7641, RFC 7959, RFC 7967,
 * RFC 9175), the unrecognised-critical-option check, Content-Format and
 * code names. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "coap.h"

static const struct coap_optdef optdefs[] = {
	{COAP_OPT_IF_MATCH, "If-Match", COAP_FMT_OPAQUE, true, 0, 8},
	{COAP_OPT_URI_HOST, "Uri-Host", COAP_FMT_STRING, false, 1, 255},
	{COAP_OPT_ETAG, "ETag", COAP_FMT_OPAQUE, true, 1, 8},
	{COAP_OPT_IF_NONE_MATCH, "If-None-Match", COAP_FMT_EMPTY, false, 0, 0},
	{COAP_OPT_OBSERVE, "Observe", COAP_FMT_UINT, false, 0, 3},
	{COAP_OPT_URI_PORT, "Uri-Port", COAP_FMT_UINT, false, 0, 2},
	{COAP_OPT_LOCATION_PATH, "Location-Path", COAP_FMT_STRING, true, 0,
	 255},
	{COAP_OPT_URI_PATH, "Uri-Path", COAP_FMT_STRING, true, 0, 255},
	{COAP_OPT_CONTENT_FORMAT, "Content-Format", COAP_FMT_UINT, false, 0,
	 2},
	{COAP_OPT_MAX_AGE, "Max-Age", COAP_FMT_UINT, false, 0, 4},
	{COAP_OPT_URI_QUERY, "Uri-Query", COAP_FMT_STRING, true, 0, 255},
	{COAP_OPT_ACCEPT, "Accept", COAP_FMT_UINT, false, 0, 2},
	{COAP_OPT_LOCATION_QUERY, "Location-Query", COAP_FMT_STRING, true, 0,
	 255},
	{COAP_OPT_BLOCK2, "Block2", COAP_FMT_UINT, false, 0, 3},
	{COAP_OPT_BLOCK1, "Block1", COAP_FMT_UINT, false, 0, 3},
	{COAP_OPT_SIZE2, "Size2", COAP_FMT_UINT, false, 0, 4},
	{COAP_OPT_PROXY_URI, "Proxy-Uri", COAP_FMT_STRING, false, 1, 1034},
	{COAP_OPT_PROXY_SCHEME, "Proxy-Scheme", COAP_FMT_STRING, false, 1,
	 255},
	{COAP_OPT_SIZE1, "Size1", COAP_FMT_UINT, false, 0, 4},
	{COAP_OPT_ECHO, "Echo", COAP_FMT_OPAQUE, false, 1, 40},
	{COAP_OPT_NO_RESPONSE, "No-Response", COAP_FMT_UINT, false, 0, 1},
	{COAP_OPT_REQUEST_TAG, "Request-Tag", COAP_FMT_OPAQUE, true, 0, 8},
};

const struct coap_optdef *coap_optdef(uint16_t num)
{
	for (size_t i = 0; i < MOAT_ARRAY_LEN(optdefs); i++)
		if (optdefs[i].num == num)
			return &optdefs[i];
	return NULL;
}

int coap_opts_check(const struct coap_msg *m, uint16_t *bad)
{
	struct coap_opt_iter it;
	struct coap_opt o;
	uint32_t prev = COAP_OPTNUM_MAX + 1; /* no option yet */
	coap_opt_iter_init(&it, m);
	while (coap_opt_next(&it, &o)) {
		const struct coap_optdef *d = coap_optdef(o.num);
		bool repeat = o.num == prev;
		prev = o.num;
		/* §5.4.1: elective options we do not understand are
		 * ignored; §5.4.3/§5.4.5 make a bad length or a
		 * supernumerary occurrence "unrecognised". */
		bool unrecognised = !d || o.len < d->min || o.len > d->max ||
				    (repeat && !d->repeatable);
		if (unrecognised && coap_opt_critical(o.num)) {
			*bad = o.num;
			return MOAT_EPROTO;
		}
	}
	return MOAT_OK;
}

/* ---- Content-Format (IANA CoAP Content-Formats registry) ---------------- */

static const struct {
	uint16_t cf;
	const char *name;
	const char *alias; /* short form for the command line; NULL: none */
} cfs[] = {
	{0, "text/plain;charset=utf-8", "text"},
	{16, "application/cose;cose-type=\"cose-encrypt0\"", NULL},
	{40, "application/link-format", "link"},
	{41, "application/xml", "xml"},
	{42, "application/octet-stream", "octet"},
	{47, "application/exi", "exi"},
	{50, "application/json", "json"},
	{51, "application/json-patch+json", NULL},
	{52, "application/merge-patch+json", NULL},
	{60, "application/cbor", "cbor"},
	{61, "application/cwt", "cwt"},
	{110, "application/senml+json", "senml+json"},
	{111, "application/sensml+json", "sensml+json"},
	{112, "application/senml+cbor", "senml+cbor"},
	{113, "application/sensml+cbor", "sensml+cbor"},
	{11542, "application/vnd.oma.lwm2m+tlv", NULL},
	{11543, "application/vnd.oma.lwm2m+json", NULL},
};

const char *coap_cf_name(uint32_t cf)
{
	for (size_t i = 0; i < MOAT_ARRAY_LEN(cfs); i++)
		if (cfs[i].cf == cf)
			return cfs[i].name;
	return NULL;
}

int coap_cf_parse(const char *s, uint32_t *cf)
{
	if (s[0] >= '0' && s[0] <= '9') {
		char *end;
		errno = 0;
		unsigned long v = strtoul(s, &end, 10);
		if (errno || *end || v > 65535)
			return MOAT_EINVAL;
		*cf = (uint32_t)v;
		return MOAT_OK;
	}
	for (size_t i = 0; i < MOAT_ARRAY_LEN(cfs); i++) {
		if (!strcmp(s, cfs[i].name) ||
		    (cfs[i].alias && !strcmp(s, cfs[i].alias))) {
			*cf = cfs[i].cf;
			return MOAT_OK;
		}
	}
	if (!strcmp(s, "text/plain")) {
		*cf = 0;
		return MOAT_OK;
	}
	return MOAT_EINVAL;
}

/* ---- codes -------------------------------------------------------------- */

static const struct {
	uint8_t code;
	const char *name;
} codes[] = {
	{COAP_EMPTY, "Empty"},
	{COAP_GET, "GET"},
	{COAP_POST, "POST"},
	{COAP_PUT, "PUT"},
	{COAP_DELETE, "DELETE"},
	{COAP_FETCH, "FETCH"},
	{COAP_CREATED, "Created"},
	{COAP_DELETED, "Deleted"},
	{COAP_VALID, "Valid"},
	{COAP_CHANGED, "Changed"},
	{COAP_CONTENT, "Content"},
	{COAP_CONTINUE, "Continue"},
	{COAP_BAD_REQUEST, "Bad Request"},
	{COAP_UNAUTHORIZED, "Unauthorized"},
	{COAP_BAD_OPTION, "Bad Option"},
	{COAP_FORBIDDEN, "Forbidden"},
	{COAP_NOT_FOUND, "Not Found"},
	{COAP_METHOD_NOT_ALLOWED, "Method Not Allowed"},
	{COAP_NOT_ACCEPTABLE, "Not Acceptable"},
	{COAP_REQUEST_ENTITY_INCOMPLETE, "Request Entity Incomplete"},
	{COAP_PRECONDITION_FAILED, "Precondition Failed"},
	{COAP_REQUEST_ENTITY_TOO_LARGE, "Request Entity Too Large"},
	{COAP_UNSUPPORTED_CONTENT_FORMAT, "Unsupported Content-Format"},
	{COAP_INTERNAL_SERVER_ERROR, "Internal Server Error"},
	{COAP_NOT_IMPLEMENTED, "Not Implemented"},
	{COAP_BAD_GATEWAY, "Bad Gateway"},
	{COAP_SERVICE_UNAVAILABLE, "Service Unavailable"},
	{COAP_GATEWAY_TIMEOUT, "Gateway Timeout"},
	{COAP_PROXYING_NOT_SUPPORTED, "Proxying Not Supported"},
};

void coap_code_str(uint8_t code, char out[5])
{
	out[0] = (char)('0' + COAP_CODE_CLASS(code));
	out[1] = '.';
	out[2] = (char)('0' + COAP_CODE_DETAIL(code) / 10);
	out[3] = (char)('0' + COAP_CODE_DETAIL(code) % 10);
	out[4] = 0;
}

const char *coap_code_name(uint8_t code)
{
	for (size_t i = 0; i < MOAT_ARRAY_LEN(codes); i++)
		if (codes[i].code == code)
			return codes[i].name;
	return NULL;
}

const char *coap_type_name(uint8_t type)
{
	static const char *const names[] = {"CON", "NON", "ACK", "RST"};
	return names[type & 3u];
}
