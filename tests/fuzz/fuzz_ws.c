/* libFuzzer harness for WebSocket (RFC 6455): the opening handshake
 * parser, the frame codec, and the server layer of the transport stack
 * (src/net/net_ws.c) driven end to end over an in-memory lower layer.
 *
 * data[0] % 3 picks the target:
 *  0: moat_ws_parse_request on data[1..]; an accepted request has a
 *     24-byte key and a sub-protocol, ends inside the input, and its 101
 *     answer fits; a refusal is one of the documented statuses.  The
 *     same bytes as a server's answer (moat_ws_parse_response) end
 *     inside the input when accepted and say why when refused.
 *  1: a frame header: what parses re-encodes to the same bytes when its
 *     length was minimal; close payloads are judged without crashing.
 *  2: the layer: a valid handshake (or, when data[1] is odd, the input's
 *     own) then data[2..] as the client's bytes, delivered in chunks of
 *     varying size, with writes of our own in between; reads end with
 *     "would block", close or refusal, never more bytes than asked and
 *     never after a finishing result. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec/ws.h"
#include "net/net_ws.h"
#include "../net_mem.h"
#include "fuzz_util.h"

static const struct moat_ws_policy POL = {"/mqtt",
					  "http://a.example,http://b:8080"};

static void fuzz_request(const uint8_t *p, size_t n)
{
	char *copy = malloc(n ? n : 1); /* exact size: ASan sees over-reads */
	memcpy(copy, p, n);
	struct moat_ws_request req;
	const char *why;
	int st = moat_ws_parse_request(copy, n, &POL, &req, &why);
	if (st == MOAT_OK) {
		char ans[256];
		CHECK(req.len <= n && req.key.n == 24 && req.protocol);
		CHECK(moat_ws_response_101(ans, sizeof(ans), &req) > 0);
	} else if (st != MOAT_EAGAIN) {
		CHECK(st == 400 || st == 403 || st == 404 || st == 405 ||
		      st == 426 || st == 431);
		CHECK(why != NULL);
		char ans[256];
		CHECK(moat_ws_response_error(ans, sizeof(ans), st) > 0);
	} else {
		CHECK(n < MOAT_WS_MAX_REQUEST);
	}
	/* The same bytes as a server's answer to a client (the RFC's key). */
	size_t len = 0;
	const char *rwhy = NULL;
	int rc = moat_ws_parse_response(copy, n, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=",
					&len, &rwhy);
	CHECK(rc == MOAT_OK ? len <= n && !rwhy
			    : rc == MOAT_EAGAIN || (rc == MOAT_EPROTO && rwhy));
	free(copy);
}

static void fuzz_frame(const uint8_t *p, size_t n)
{
	uint8_t *copy = malloc(n ? n : 1);
	memcpy(copy, p, n);
	struct moat_ws_frame f;
	int rc = moat_ws_frame_header(copy, n, &f);
	if (rc == MOAT_OK) {
		uint8_t enc[MOAT_WS_MAX_HEADER];
		CHECK(f.hlen <= n && f.hlen <= MOAT_WS_MAX_HEADER);
		size_t h = moat_ws_frame_encode(enc, f.opcode, f.fin, f.len,
						f.masked ? f.mask : NULL);
		bool minimal = (f.len < 126 && (copy[1] & 0x7F) < 126) ||
			       (f.len >= 126 && f.len <= 0xFFFF &&
				(copy[1] & 0x7F) == 126) ||
			       (f.len > 0xFFFF && (copy[1] & 0x7F) == 127);
		if (minimal && !f.rsv)
			CHECK(h == f.hlen && !memcmp(enc, copy, h));
		(void)moat_ws_frame_check(&f, copy[0] & 1, 1000, copy[0] & 2);
		if (f.opcode == WS_OP_CLOSE && n - f.hlen <= 125) {
			uint16_t code;
			(void)moat_ws_close_parse(copy + f.hlen, n - f.hlen,
						  &code);
		}
	} else {
		CHECK(rc == MOAT_EAGAIN || rc == MOAT_EPROTO);
	}
	free(copy);
}

static const char HANDSHAKE[] =
	"GET /mqtt HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\n"
	"Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
	"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
	"Sec-WebSocket-Protocol: mqtt\r\n\r\n";

static void fuzz_layer(const uint8_t *p, size_t n)
{
	if (n < 1)
		return;
	bool own = p[0] & 1;
	size_t hl = own ? 0 : sizeof(HANDSHAKE) - 1;
	uint8_t *buf = malloc(hl + n);
	memcpy(buf, HANDSHAKE, hl);
	memcpy(buf + hl, p + 1, n - 1);
	struct net_mem m;
	net_mem_init(&m, buf, hl + n - 1, true, p[0]);
	struct moat_net *ws = moat_net_ws_new(&m.base, &POL, 4096);
	CHECK(ws);
	uint8_t out[300], dst[512];
	memset(out, 'o', sizeof(out));
	char why[256];
	for (int round = 0; round < 100000; round++) {
		size_t want = 1 + (size_t)round % sizeof(dst);
		ssize_t r = moat_net_read(ws, dst, want, why, sizeof(why));
		CHECK(r <= (ssize_t)want);
		if (r < 0)
			break;
		/* Our own writes, and the layer's output, in between. */
		(void)moat_net_write(ws, out, 1 + (size_t)round % sizeof(out),
				     why, sizeof(why));
		(void)moat_net_flush(ws, why, sizeof(why));
		if (r == 0 && m.off == m.len && !moat_net_pending(ws))
			break;
	}
	moat_net_shutdown(ws);
	moat_net_close(ws);
	free(buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	switch (data[0] % 3) {
	case 0: fuzz_request(data + 1, size - 1); break;
	case 1: fuzz_frame(data + 1, size - 1); break;
	default: fuzz_layer(data + 1, size - 1); break;
	}
	return 0;
}
