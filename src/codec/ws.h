/* WebSocket (RFC 6455) codec for MQTT over WebSockets (MQTT 5.0 §6,
 * 3.1.1 §6): frame headers, masking, close payloads, and the opening
 * handshake (the client's HTTP/1.1 Upgrade request and the server's
 * answer).  Pure functions, no I/O, no globals; every read is bounds-
 * checked (fuzzed by tests/fuzz/fuzz_ws.c). */
#ifndef MOAT_WS_H
#define MOAT_WS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../common/moat_common.h"

enum moat_ws_opcode {
	WS_OP_CONT = 0x0,
	WS_OP_TEXT = 0x1,
	WS_OP_BINARY = 0x2,
	WS_OP_CLOSE = 0x8,
	WS_OP_PING = 0x9,
	WS_OP_PONG = 0xA,
};

/* Close status codes (RFC 6455 §7.4.1). */
enum moat_ws_close {
	WS_CLOSE_NORMAL = 1000,
	WS_CLOSE_GOING_AWAY = 1001,
	WS_CLOSE_PROTOCOL = 1002,
	WS_CLOSE_UNSUPPORTED = 1003, /* a text frame [MQTT-6.0.0-1] */
	WS_CLOSE_BAD_DATA = 1007,    /* a close reason that is not UTF-8 */
	WS_CLOSE_POLICY = 1008,
	WS_CLOSE_TOO_BIG = 1009,
	WS_CLOSE_INTERNAL = 1011,
};

/* The longest frame header: 2 + 8 (length) + 4 (mask). */
#define MOAT_WS_MAX_HEADER 14
/* Control frames carry at most 125 bytes (RFC 6455 §5.5). */
#define MOAT_WS_MAX_CONTROL 125

struct moat_ws_frame {
	bool fin;
	uint8_t rsv;    /* RSV1-3 (must be 0: no extension is negotiated) */
	uint8_t opcode;
	bool masked;
	uint8_t mask[4];
	uint64_t len;   /* payload length */
	size_t hlen;    /* header length */
};

/* Decode the frame header at p[0..n).  MOAT_OK, MOAT_EAGAIN (more bytes
 * needed), or MOAT_EPROTO (a 64-bit length with its top bit set). */
int moat_ws_frame_header(const uint8_t *p, size_t n, struct moat_ws_frame *f);

/* The rules for a frame from the peer (from_client: we are the server,
 * and its frames must be masked; else they must not be), given whether a
 * fragmented message is open and the largest payload accepted: 0 when
 * acceptable, else the close code to answer with (1002 protocol error:
 * reserved bits or opcodes, wrong masking, a long or fragmented control
 * frame, a stray or missing continuation; 1003 a text frame; 1009 too
 * big). */
uint16_t moat_ws_frame_check(const struct moat_ws_frame *f, bool fragmented,
			     uint64_t max_len, bool from_client);

/* Encode a frame header into dst (MOAT_WS_MAX_HEADER bytes); mask NULL =
 * unmasked (server to client).  Returns its length. */
size_t moat_ws_frame_encode(uint8_t *dst, uint8_t opcode, bool fin,
			    uint64_t len, const uint8_t *mask);

/* XOR p[0..n) with mask, starting at payload offset off. */
void moat_ws_unmask(uint8_t *p, size_t n, const uint8_t mask[4], uint64_t off);

/* A close frame's payload (unmasked): *code = the status, or 1005 when
 * there is none.  0 when valid, else the close code to answer with. */
uint16_t moat_ws_close_parse(const uint8_t *p, size_t n, uint16_t *code);

/* ---- opening handshake -------------------------------------------------- */

/* Limits on the client's request (documented in docs/websockets.md). */
#define MOAT_WS_MAX_REQUEST 8192 /* bytes, request line and headers */
#define MOAT_WS_MAX_HEADERS 64   /* header lines */

struct moat_ws_span {
	const char *p; /* into the request; NULL = absent */
	size_t n;
};

/* What the server needs from the client's request. */
struct moat_ws_request {
	struct moat_ws_span path;     /* without a query string */
	struct moat_ws_span key;      /* Sec-WebSocket-Key */
	struct moat_ws_span origin;   /* Origin */
	struct moat_ws_span forwarded; /* X-Forwarded-For (last one) */
	const char *protocol;         /* "mqtt" or "mqttv3.1"; NULL = none */
	size_t len;                   /* bytes of the request, blank line
				       * included */
};

/* What the server is configured to accept. */
struct moat_ws_policy {
	const char *path;    /* e.g. "/mqtt" */
	const char *origins; /* comma-separated allowlist; "" = none */
};

/* Parse and judge the request in buf[0..n).  MOAT_OK with *req filled;
 * MOAT_EAGAIN when the blank line has not come yet (and fewer than
 * MOAT_WS_MAX_REQUEST bytes came); otherwise an HTTP status (400, 403,
 * 404, 405, 426, 431) and *why, a static text for logs. */
int moat_ws_parse_request(const char *buf, size_t n,
			  const struct moat_ws_policy *pol,
			  struct moat_ws_request *req, const char **why);

/* The server's answers: 101 with Sec-WebSocket-Accept computed from key
 * (SHA-1 and base64 by OpenSSL), or an error status that closes.  They
 * return the length written to dst (at most dstsz - 1; 0 if it did not
 * fit). */
size_t moat_ws_response_101(char *dst, size_t dstsz,
			    const struct moat_ws_request *req);
size_t moat_ws_response_error(char *dst, size_t dstsz, int status);

/* Sec-WebSocket-Accept for key[0..n): base64 of SHA-1 (28 characters and
 * a NUL in out). */
void moat_ws_accept_of(const char *key, size_t n, char out[29]);

/* ---- client side ---------------------------------------------------------- */

/* A client's opening request for path on host (Host header as given, e.g.
 * "broker:8080") with key (24 base64 characters), offering "mqtt".  The
 * length written (0 if it did not fit dstsz - 1). */
size_t moat_ws_request_build(char *dst, size_t dstsz, const char *host,
			     const char *path, const char *key);

/* Judge the server's answer in buf[0..n) to a request made with the key
 * whose accept value is accept: MOAT_OK with *len = the answer's length,
 * MOAT_EAGAIN (more needed), or MOAT_EPROTO with *why (not 101, a
 * missing or wrong Upgrade, Connection, Sec-WebSocket-Accept or
 * sub-protocol, over MOAT_WS_MAX_REQUEST bytes). */
int moat_ws_parse_response(const char *buf, size_t n, const char *accept,
			   size_t *len, const char **why);

#endif
