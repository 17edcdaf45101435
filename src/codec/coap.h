/* CoAP wire codec (RFC 7252 messages; option values of RFC 7641 Observe,
 * RFC 7959 Block1/Block2/Size1/Size2, RFC 9175 Echo/Request-Tag): pure
 * functions, no I/O, no globals, no allocation.
 *
 * coap_parse() checks the whole datagram once and fills a struct coap_msg
 * whose option and payload fields point INTO the datagram (borrowed: valid
 * only while the datagram is).  Options are then walked with an iterator;
 * lookups never allocate.  Encoding goes through struct coap_wr, a writer
 * into a caller-sized buffer with a sticky error: a message that does not
 * fit is MOAT_ELIMIT, options out of order are MOAT_EINVAL, never a crash.
 *
 * What the codec does not judge: which options a message may carry and
 * whether their values are in range (coap_opts_check(), coap_opts.c), and
 * everything about exchanges (message ids, tokens, retransmission:
 * src/coap). */
#ifndef MOAT_COAP_H
#define MOAT_COAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../common/moat_common.h"

#define COAP_VERSION 1
#define COAP_HEADER_LEN 4
#define COAP_TOKEN_MAX 8
#define COAP_PAYLOAD_MARKER 0xFF
#define COAP_PORT 5683
#define COAP_PORT_SECURE 5684
/* Largest option number: the deltas add up in 16 bits (RFC 7252 §3.1). */
#define COAP_OPTNUM_MAX 65535u

enum coap_type {
	COAP_CON = 0,
	COAP_NON = 1,
	COAP_ACK = 2,
	COAP_RST = 3,
};

/* Codes are c.dd: class in the top 3 bits, detail in the low 5. */
#define COAP_CODE(c, dd) ((uint8_t)(((c) << 5) | (dd)))
#define COAP_CODE_CLASS(code) ((unsigned)(code) >> 5)
#define COAP_CODE_DETAIL(code) ((unsigned)(code)&31u)

enum coap_code {
	COAP_EMPTY = 0,
	COAP_GET = 1,
	COAP_POST = 2,
	COAP_PUT = 3,
	COAP_DELETE = 4,
	COAP_FETCH = 5,
	COAP_CREATED = COAP_CODE(2, 1),
	COAP_DELETED = COAP_CODE(2, 2),
	COAP_VALID = COAP_CODE(2, 3),
	COAP_CHANGED = COAP_CODE(2, 4),
	COAP_CONTENT = COAP_CODE(2, 5),
	COAP_CONTINUE = COAP_CODE(2, 31),
	COAP_BAD_REQUEST = COAP_CODE(4, 0),
	COAP_UNAUTHORIZED = COAP_CODE(4, 1),
	COAP_BAD_OPTION = COAP_CODE(4, 2),
	COAP_FORBIDDEN = COAP_CODE(4, 3),
	COAP_NOT_FOUND = COAP_CODE(4, 4),
	COAP_METHOD_NOT_ALLOWED = COAP_CODE(4, 5),
	COAP_NOT_ACCEPTABLE = COAP_CODE(4, 6),
	COAP_REQUEST_ENTITY_INCOMPLETE = COAP_CODE(4, 8),
	COAP_PRECONDITION_FAILED = COAP_CODE(4, 12),
	COAP_REQUEST_ENTITY_TOO_LARGE = COAP_CODE(4, 13),
	COAP_UNSUPPORTED_CONTENT_FORMAT = COAP_CODE(4, 15),
	COAP_INTERNAL_SERVER_ERROR = COAP_CODE(5, 0),
	COAP_NOT_IMPLEMENTED = COAP_CODE(5, 1),
	COAP_BAD_GATEWAY = COAP_CODE(5, 2),
	COAP_SERVICE_UNAVAILABLE = COAP_CODE(5, 3),
	COAP_GATEWAY_TIMEOUT = COAP_CODE(5, 4),
	COAP_PROXYING_NOT_SUPPORTED = COAP_CODE(5, 5),
};

/* Option numbers (IANA CoAP Option Numbers registry). */
enum coap_optnum {
	COAP_OPT_IF_MATCH = 1,
	COAP_OPT_URI_HOST = 3,
	COAP_OPT_ETAG = 4,
	COAP_OPT_IF_NONE_MATCH = 5,
	COAP_OPT_OBSERVE = 6, /* RFC 7641 */
	COAP_OPT_URI_PORT = 7,
	COAP_OPT_LOCATION_PATH = 8,
	COAP_OPT_URI_PATH = 11,
	COAP_OPT_CONTENT_FORMAT = 12,
	COAP_OPT_MAX_AGE = 14,
	COAP_OPT_URI_QUERY = 15,
	COAP_OPT_ACCEPT = 17,
	COAP_OPT_LOCATION_QUERY = 20,
	COAP_OPT_BLOCK2 = 23, /* RFC 7959 */
	COAP_OPT_BLOCK1 = 27,
	COAP_OPT_SIZE2 = 28,
	COAP_OPT_PROXY_URI = 35,
	COAP_OPT_PROXY_SCHEME = 39,
	COAP_OPT_SIZE1 = 60,
	COAP_OPT_ECHO = 252, /* RFC 9175 */
	COAP_OPT_NO_RESPONSE = 258, /* RFC 7967 */
	COAP_OPT_REQUEST_TAG = 292, /* RFC 9175 */
};

/* RFC 7252 §5.4.6: the option number's bits say how to treat it. */
static inline bool coap_opt_critical(uint32_t num)
{
	return (num & 1u) != 0;
}
static inline bool coap_opt_unsafe(uint32_t num)
{
	return (num & 2u) != 0;
}
static inline bool coap_opt_nocachekey(uint32_t num)
{
	return (num & 0x1Eu) == 0x1Cu;
}

/* A parsed message.  opts/payload point into the parsed datagram. */
struct coap_msg {
	uint8_t type; /* enum coap_type */
	uint8_t code;
	uint16_t mid;
	uint8_t tkl; /* token length, 0..8 */
	uint8_t token[COAP_TOKEN_MAX];
	const uint8_t *opts; /* the option bytes (may be NULL when none) */
	size_t opts_len;
	size_t n_opts;
	const uint8_t *payload; /* NULL when there is no payload */
	size_t payload_len;
};

/* One option; val points into the datagram (or the caller's message). */
struct coap_opt {
	uint16_t num;
	size_t len;
	const uint8_t *val;
};

/* Parse the datagram p[0..n) into *m.
 * MOAT_OK, or MOAT_EMALFORMED for a message format error (RFC 7252 §3,
 * §4.2, §4.3): shorter than 4 bytes, version not 1, token length 9..15,
 * an Empty message (0.00) with anything after the message id, option
 * delta or length nibble 15 outside the payload marker, an option that
 * runs past the end, option numbers above 65535, a payload marker with no
 * payload.  On MOAT_EMALFORMED, m->type, m->code and m->mid are still set
 * when n >= 4 (a CON with a format error is answered with RST). */
int coap_parse(const uint8_t *p, size_t n, struct coap_msg *m);

/* Iterate over the options of a message that coap_parse() accepted (or
 * that coap_wr built): in order, repeated options one by one. */
struct coap_opt_iter {
	const uint8_t *p, *end;
	uint32_t num;
};
void coap_opt_iter_init(struct coap_opt_iter *it, const struct coap_msg *m);
/* true with *o set, or false at the end. */
bool coap_opt_next(struct coap_opt_iter *it, struct coap_opt *o);
/* The first option num of m: true with *o set, false when absent (*o
 * untouched). */
bool coap_opt_find(const struct coap_msg *m, uint16_t num,
		   struct coap_opt *o);
/* Number of occurrences of option num in m. */
size_t coap_opt_count(const struct coap_msg *m, uint16_t num);

/* An unsigned integer option value (RFC 7252 §3.2: 0 to 4 bytes, leading
 * zero bytes allowed on receipt).  MOAT_OK, MOAT_EMALFORMED when longer
 * than 4 bytes. */
int coap_uint_decode(const uint8_t *p, size_t n, uint32_t *v);
/* The minimal encoding of v into out[4]; returns its length (0 for 0). */
size_t coap_uint_encode(uint32_t v, uint8_t out[4]);
/* The first option num of m as an integer: MOAT_OK, MOAT_ENOTFOUND when
 * absent, MOAT_EMALFORMED when longer than maxlen bytes (<= 4). */
int coap_opt_uint(const struct coap_msg *m, uint16_t num, size_t maxlen,
		  uint32_t *v);

/* ---- Block1/Block2 (RFC 7959 §2.2) ------------------------------------ */
#define COAP_BLOCK_SZX_MAX 6 /* 1024 bytes; 7 is reserved (BERT, TCP) */
#define COAP_BLOCK_NUM_MAX 0xFFFFFu /* 20 bits in a 3-byte option */

struct coap_block {
	uint32_t num;
	bool more;
	uint8_t szx; /* block size is 16 << szx */
};

static inline size_t coap_block_size(uint8_t szx)
{
	return (size_t)16 << szx;
}
/* Decode a block option value.  MOAT_OK, or MOAT_EMALFORMED for SZX 7. */
int coap_block_decode(uint32_t v, struct coap_block *b);
/* Encode b (num <= COAP_BLOCK_NUM_MAX, szx <= 6: caller's duty). */
uint32_t coap_block_encode(const struct coap_block *b);
/* Block1 or Block2 of m: MOAT_OK, MOAT_ENOTFOUND, or MOAT_EMALFORMED
 * (longer than 3 bytes, SZX 7). */
int coap_opt_block(const struct coap_msg *m, uint16_t num,
		   struct coap_block *b);
/* The smallest SZX whose block size is >= n bytes, capped at 6. */
uint8_t coap_block_szx_for(size_t n);

/* ---- Observe (RFC 7641) ------------------------------------------------ */
#define COAP_OBSERVE_REGISTER 0
#define COAP_OBSERVE_DEREGISTER 1
#define COAP_OBSERVE_SEQ_MASK 0xFFFFFFu /* 24-bit sequence numbers */

/* RFC 7641 §3.4: is a notification with sequence v2, received at t2_ms,
 * newer than the one with v1 received at t1_ms?  (Sequence numbers wrap
 * at 2^24; after 128 s any notification counts as newer.) */
bool coap_observe_newer(uint32_t v1, uint64_t t1_ms, uint32_t v2,
			uint64_t t2_ms);

/* ---- No-Response (RFC 7967) -------------------------------------------- */
#define COAP_NO_RESPONSE_2XX 0x02u /* not interested in 2.xx */
#define COAP_NO_RESPONSE_4XX 0x08u /* ... in 4.xx */
#define COAP_NO_RESPONSE_5XX 0x10u /* ... in 5.xx */

/* Does request m's No-Response option suppress a response with code?
 * Only the classes whose bits are set are suppressed: an error class the
 * client did not name is always sent.  No option, an empty one (0: all
 * responses wanted) or a malformed one (longer than 1 byte: an elective
 * option that is ignored, RFC 7252 §5.4.1) suppresses nothing. */
bool coap_no_response(const struct coap_msg *m, uint8_t code);

/* ---- writer ------------------------------------------------------------ */
struct coap_wr {
	uint8_t *buf;
	size_t cap;
	size_t len;
	uint32_t last; /* number of the last option written */
	bool payload;  /* payload written: nothing may follow */
	int err;       /* sticky: first error (MOAT_ELIMIT, MOAT_EINVAL) */
};

void coap_wr_init(struct coap_wr *w, uint8_t *buf, size_t cap);
/* The 4-byte header and the token (tkl <= 8, else MOAT_EINVAL). */
void coap_wr_header(struct coap_wr *w, uint8_t type, uint8_t code,
		    uint16_t mid, const uint8_t *token, size_t tkl);
/* One option; options must come in non-decreasing number order (else
 * MOAT_EINVAL).  val may be NULL when len is 0. */
void coap_wr_opt(struct coap_wr *w, uint16_t num, const void *val,
		 size_t len);
/* One option with the minimal encoding of v. */
void coap_wr_opt_uint(struct coap_wr *w, uint16_t num, uint32_t v);
/* The payload marker and n bytes (nothing when n is 0). */
void coap_wr_payload(struct coap_wr *w, const void *p, size_t n);
/* MOAT_OK with *len the message length, or the first error. */
int coap_wr_finish(const struct coap_wr *w, size_t *len);

/* Re-encode a parsed message into buf[0..cap): the same bytes as the
 * datagram it was parsed from.  MOAT_OK with *len set, or MOAT_ELIMIT. */
int coap_encode(const struct coap_msg *m, uint8_t *buf, size_t cap,
		size_t *len);

/* ---- option definitions (coap_opts.c) ----------------------------------- */
enum coap_fmt {
	COAP_FMT_EMPTY,
	COAP_FMT_OPAQUE,
	COAP_FMT_UINT,
	COAP_FMT_STRING, /* UTF-8 */
};

struct coap_optdef {
	uint16_t num;
	const char *name; /* as in the IANA registry: "Uri-Path" */
	uint8_t fmt;	  /* enum coap_fmt */
	bool repeatable;
	uint16_t min, max; /* value length range */
};

/* The definition of option num, or NULL when moat does not know it. */
const struct coap_optdef *coap_optdef(uint16_t num);
/* RFC 7252 §5.4.1, §5.4.3, §5.4.5: the first option of m that must be
 * treated as an unrecognised critical option: unknown to moat, a value
 * length outside its range, or a second occurrence of a non-repeatable
 * option.  MOAT_OK when there is none; MOAT_EPROTO with *bad set (the
 * caller answers 4.02 Bad Option to a CON request, rejects a response).
 * Unrecognised elective options are ignored, as the RFC says. */
int coap_opts_check(const struct coap_msg *m, uint16_t *bad);

/* Content-Format: the registered name of number cf ("application/json"),
 * or NULL. */
const char *coap_cf_name(uint32_t cf);
/* Parse a Content-Format given as a number (0..65535), a registered name
 * or a short alias (text, json, cbor, octet, link, xml, senml+json, ...).
 * MOAT_OK or MOAT_EINVAL. */
int coap_cf_parse(const char *s, uint32_t *cf);

/* ---- names ------------------------------------------------------------- */
/* "2.05" into out[5]. */
void coap_code_str(uint8_t code, char out[5]);
/* "Content", "GET", ...; NULL for unassigned codes. */
const char *coap_code_name(uint8_t code);
const char *coap_type_name(uint8_t type); /* "CON", "NON", "ACK", "RST" */

#endif
