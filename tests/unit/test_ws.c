/* Unit tests: the WebSocket codec (src/codec/ws_*.c, RFC 6455) and the
 * WebSocket layer of the transport stack over an in-memory socket. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "codec/ws.h"
#include "net/net_ws.h"
#include "../net_mem.h"
#include "test_util.h"

static const struct moat_ws_policy POL = {"/mqtt",
					  "https://app.example,http://b:8080"};

/* §1.3's example key and its accept value. */
#define RFC_KEY "dGhlIHNhbXBsZSBub25jZQ=="
#define RFC_ACCEPT "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="

static const char *request(const char *extra)
{
	static char buf[MOAT_WS_MAX_REQUEST + 1024];
	snprintf(buf, sizeof(buf),
		 "GET /mqtt?x=1 HTTP/1.1\r\nHost: b:8080\r\n"
		 "Upgrade: WebSocket\r\nConnection: keep-alive, Upgrade\r\n"
		 "Sec-WebSocket-Version: 13\r\n"
		 "Sec-WebSocket-Key: " RFC_KEY "\r\n"
		 "Sec-WebSocket-Protocol: chat, mqtt\r\n%s\r\n",
		 extra);
	return buf;
}

static int parse(const char *req, struct moat_ws_request *r)
{
	const char *why;
	return moat_ws_parse_request(req, strlen(req), &POL, r, &why);
}

static void test_ws_handshake_accepts(void **state)
{
	(void)state;
	struct moat_ws_request r;
	const char *req = request("Origin: https://APP.example\r\n");
	assert_int_equal(parse(req, &r), MOAT_OK);
	assert_int_equal(r.len, strlen(req));
	assert_string_equal(r.protocol, "mqtt");
	char ans[256];
	assert_true(moat_ws_response_101(ans, sizeof(ans), &r) > 0);
	assert_non_null(strstr(ans, "Sec-WebSocket-Accept: " RFC_ACCEPT "\r\n"));
	assert_non_null(strstr(ans, "Sec-WebSocket-Protocol: mqtt\r\n"));
	/* Same origin (scheme://Host), and mqttv3.1. */
	assert_int_equal(parse(request("Origin: http://b:8080\r\n"), &r),
			 MOAT_OK);
	const char *v31 = "GET /mqtt HTTP/1.1\r\nHost: h\r\nUpgrade: websocket"
			  "\r\nConnection: Upgrade\r\nSec-WebSocket-Version: "
			  "13\r\nSec-WebSocket-Key: " RFC_KEY "\r\n"
			  "Sec-WebSocket-Protocol: mqttv3.1\r\n\r\n";
	assert_int_equal(parse(v31, &r), MOAT_OK);
	assert_string_equal(r.protocol, "mqttv3.1");
	/* X-Forwarded-For: the last entry. */
	assert_int_equal(parse(request("X-Forwarded-For: 1.2.3.4, 5.6.7.8\r\n"),
			       &r),
			 MOAT_OK);
	assert_int_equal(r.forwarded.n, 7);
	assert_memory_equal(r.forwarded.p, "5.6.7.8", 7);
}

static void test_ws_handshake_refuses(void **state)
{
	(void)state;
	struct moat_ws_request r;
	char big[MOAT_WS_MAX_REQUEST + 100];
	const char *req = request("");
	/* Incomplete: more is needed; garbage: refused at once. */
	assert_int_equal(moat_ws_parse_request(req, 30, &POL, &r,
					       &(const char *){0}),
			 MOAT_EAGAIN);
	assert_int_equal(parse("\x10\x0c\x00\x04MQTT", &r), 405);
	assert_int_equal(parse("POST /mqtt HTTP/1.1\r\n\r\n", &r), 405);
	assert_int_equal(parse(request("Origin: https://evil.example\r\n"), &r),
			 403);
	assert_int_equal(parse(request("Origin: https://app.example.evil\r\n"),
			       &r),
			 403);
	assert_int_equal(parse(request("Origin: https://app.example\r\n"
				       "Origin: https://app.example\r\n"),
			       &r),
			 403);
	assert_int_equal(parse(request("Sec-WebSocket-Key: " RFC_KEY "\r\n"),
			       &r),
			 400);
	assert_int_equal(parse(request(" folded\r\n"), &r), 400);
	assert_int_equal(parse(request("Bad Name: x\r\n"), &r), 400);
	assert_int_equal(parse(request("X: a\x01z\r\n"), &r), 400);
	/* Too many header lines; too large. */
	size_t n = 0;
	for (int i = 0; i < 70; i++)
		n += (size_t)snprintf(big + n, sizeof(big) - n, "X-%d: 1\r\n",
				      i);
	assert_int_equal(parse(request(big), &r), 431);
	memset(big, 'a', sizeof(big));
	memcpy(big, "GET / HTTP/1.1\r\nX: ", 19);
	assert_int_equal(moat_ws_parse_request(big, sizeof(big), &POL, &r,
					       &(const char *){0}),
			 431);
	char ans[256];
	assert_true(moat_ws_response_error(ans, sizeof(ans), 426) > 0);
	assert_non_null(strstr(ans, "Sec-WebSocket-Version: 13"));
}

static void test_ws_handshake_path_version_protocol(void **state)
{
	(void)state;
	struct moat_ws_request r;
	char req[2048];
	const char *base = request("");
	size_t len = strlen(base) + 1;
	assert_true(len <= sizeof(req));
	memcpy(req, base, len);
	memcpy(strstr(req, "/mqtt"), "/mqtx", 5);
	assert_int_equal(parse(req, &r), 404);
	memcpy(req, base, len);
	memcpy(strstr(req, "Version: 13"), "Version: 12", 11);
	assert_int_equal(parse(req, &r), 426);
	memcpy(req, base, len);
	memcpy(strstr(req, "chat, mqtt"), "chat, mqtx", 10);
	assert_int_equal(parse(req, &r), 400);
}

static void test_ws_frame_header(void **state)
{
	(void)state;
	struct moat_ws_frame f;
	uint8_t b[MOAT_WS_MAX_HEADER];
	const uint8_t mask[4] = {1, 2, 3, 4};
	uint64_t lens[] = {0, 125, 126, 65535, 65536, (1ull << 63) - 1};
	for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
		size_t h = moat_ws_frame_encode(b, WS_OP_BINARY, true, lens[i],
						mask);
		assert_int_equal(moat_ws_frame_header(b, h - 1, &f),
				 MOAT_EAGAIN);
		assert_int_equal(moat_ws_frame_header(b, h, &f), MOAT_OK);
		assert_int_equal(f.hlen, h);
		assert_true(f.len == lens[i] && f.fin && f.masked);
		assert_int_equal(f.opcode, WS_OP_BINARY);
		assert_memory_equal(f.mask, mask, 4);
	}
	const uint8_t huge[] = {0x82, 0xFF, 0x80, 0, 0, 0, 0, 0, 0, 0,
				1, 2, 3, 4};
	assert_int_equal(moat_ws_frame_header(huge, sizeof(huge), &f),
			 MOAT_EPROTO);
}

static void test_ws_frame_check(void **state)
{
	(void)state;
	struct moat_ws_frame f = {.fin = true, .opcode = WS_OP_BINARY,
				  .masked = true, .len = 10};
	assert_int_equal(moat_ws_frame_check(&f, false, 10, true), 0);
	f.len = 11;
	assert_int_equal(moat_ws_frame_check(&f, false, 10, true), WS_CLOSE_TOO_BIG);
	f.len = 1;
	assert_int_equal(moat_ws_frame_check(&f, true, 10, true), WS_CLOSE_PROTOCOL);
	f.masked = false;
	assert_int_equal(moat_ws_frame_check(&f, false, 10, true), WS_CLOSE_PROTOCOL);
	f.masked = true;
	f.rsv = 4;
	assert_int_equal(moat_ws_frame_check(&f, false, 10, true), WS_CLOSE_PROTOCOL);
	f.rsv = 0;
	f.opcode = WS_OP_TEXT;
	assert_int_equal(moat_ws_frame_check(&f, false, 10, true),
			 WS_CLOSE_UNSUPPORTED);
	f.opcode = WS_OP_CONT;
	assert_int_equal(moat_ws_frame_check(&f, false, 10, true), WS_CLOSE_PROTOCOL);
	assert_int_equal(moat_ws_frame_check(&f, true, 10, true), 0);
	for (uint8_t op = 3; op < 16; op++) {
		f.opcode = op;
		f.len = 1;
		if (op == WS_OP_CLOSE || op == WS_OP_PING || op == WS_OP_PONG) {
			assert_int_equal(moat_ws_frame_check(&f, true, 0, true), 0);
			f.len = 126;
			assert_int_equal(moat_ws_frame_check(&f, false, 1000, true),
					 WS_CLOSE_PROTOCOL);
			f.len = 1;
			f.fin = false;
			assert_int_equal(moat_ws_frame_check(&f, false, 1000, true),
					 WS_CLOSE_PROTOCOL);
			f.fin = true;
		} else {
			assert_int_equal(moat_ws_frame_check(&f, false, 10, true),
					 WS_CLOSE_PROTOCOL);
		}
	}
}

static void test_ws_close_payload(void **state)
{
	(void)state;
	uint16_t code;
	assert_int_equal(moat_ws_close_parse(NULL, 0, &code), 0);
	assert_int_equal(code, 1005);
	assert_int_equal(moat_ws_close_parse((const uint8_t *)"\x03", 1, &code),
			 WS_CLOSE_PROTOCOL);
	assert_int_equal(moat_ws_close_parse((const uint8_t *)"\x03\xe8ok", 4,
					     &code),
			 0);
	assert_int_equal(code, 1000);
	assert_int_equal(moat_ws_close_parse((const uint8_t *)"\x03\xed", 2,
					     &code),
			 WS_CLOSE_PROTOCOL); /* 1005 is never sent */
	assert_int_equal(moat_ws_close_parse((const uint8_t *)"\x0f\xa0\xff", 3,
					     &code),
			 WS_CLOSE_BAD_DATA); /* 4000, reason not UTF-8 */
}

/* ---- the layer over an in-memory socket ---------------------------------- */

static size_t masked(uint8_t *dst, uint8_t op, bool fin, const void *p,
		     size_t n)
{
	const uint8_t mask[4] = {0x11, 0x22, 0x33, 0x44};
	size_t h = moat_ws_frame_encode(dst, op, fin, n, mask);
	memcpy(dst + h, p, n);
	moat_ws_unmask(dst + h, n, mask, 0);
	return h + n;
}

static void test_ws_layer_stream(void **state)
{
	(void)state;
	uint8_t in[1024];
	size_t n = strlen(request(""));
	memcpy(in, request(""), n);
	n += masked(in + n, WS_OP_BINARY, false, "\x10\x02", 2);
	n += masked(in + n, WS_OP_PING, true, "hi", 2);
	n += masked(in + n, WS_OP_CONT, true, "\x00\x00", 2);
	n += masked(in + n, WS_OP_BINARY, true, "\xc0\x00\xc0\x00", 4);
	struct net_mem m;
	net_mem_init(&m, in, n, false, 0);
	struct moat_net *ws = moat_net_ws_new(&m.base, &POL, 100);
	assert_non_null(ws);
	uint8_t got[64];
	size_t total = 0;
	char why[200];
	for (int i = 0; i < 10; i++) {
		ssize_t r = moat_net_read(ws, got + total, sizeof(got) - total,
					  why, sizeof(why));
		assert_true(r >= 0);
		total += (size_t)r;
	}
	assert_int_equal(total, 8);
	assert_memory_equal(got, "\x10\x02\x00\x00\xc0\x00\xc0\x00", 8);
	/* The answer, then the pong, then our data as a binary frame. */
	assert_int_equal(moat_net_write(ws, (const uint8_t *)"\xd0\x00", 2,
					why, sizeof(why)),
			 2);
	m.out[m.outlen] = 0;
	assert_non_null(strstr((char *)m.out, RFC_ACCEPT));
	const uint8_t *tail = m.out + m.outlen - 8;
	assert_memory_equal(tail, "\x8a\x02hi\x82\x02\xd0\x00", 8);
	/* Closing sends a close frame. */
	moat_net_shutdown(ws);
	assert_memory_equal(m.out + m.outlen - 4, "\x88\x02\x03\xe8", 4);
	moat_net_close(ws);
}

static void test_ws_layer_refusals(void **state)
{
	(void)state;
	struct {
		uint8_t op;
		bool mask;
		size_t len;
		uint16_t code;
	} cases[] = {
		{WS_OP_TEXT, true, 1, WS_CLOSE_UNSUPPORTED},
		{WS_OP_BINARY, false, 1, WS_CLOSE_PROTOCOL},
		{WS_OP_BINARY, true, 101, WS_CLOSE_TOO_BIG},
		{0x3, true, 1, WS_CLOSE_PROTOCOL},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		uint8_t in[1024], pay[128] = {0};
		size_t n = strlen(request(""));
		memcpy(in, request(""), n);
		if (cases[i].mask) {
			n += masked(in + n, cases[i].op, true, pay,
				    cases[i].len);
		} else {
			n += moat_ws_frame_encode(in + n, cases[i].op, true,
						  cases[i].len, NULL);
			memcpy(in + n, pay, cases[i].len);
			n += cases[i].len;
		}
		struct net_mem m;
		net_mem_init(&m, in, n, false, 0);
		struct moat_net *ws = moat_net_ws_new(&m.base, &POL, 100);
		uint8_t got[64];
		char why[200];
		assert_int_equal(moat_net_read(ws, got, sizeof(got), why,
					       sizeof(why)),
				 MOAT_NET_REFUSED);
		moat_net_shutdown(ws);
		uint8_t want[4] = {0x88, 0x02, (uint8_t)(cases[i].code >> 8),
				   (uint8_t)cases[i].code};
		assert_memory_equal(m.out + m.outlen - 4, want, 4);
		moat_net_close(ws);
	}
}

/* Writes through a socket that takes a few bytes at a time (and now and
 * then none): the frames on the wire carry exactly the bytes accepted. */
static void test_ws_layer_partial_writes(void **state)
{
	(void)state;
	const char *req = request("");
	struct net_mem m;
	net_mem_init(&m, (const uint8_t *)req, strlen(req), false, 0);
	struct moat_net *ws = moat_net_ws_new(&m.base, &POL, 100);
	uint8_t dst[16], data[3000];
	char why[200];
	assert_int_equal(moat_net_read(ws, dst, sizeof(dst), why, sizeof(why)),
			 MOAT_NET_AGAIN);
	size_t answer = m.outlen;
	m.chunky = true;
	for (size_t i = 0; i < sizeof(data); i++)
		data[i] = (uint8_t)(i * 7);
	size_t done = 0;
	for (int round = 0; round < 10000 && done < sizeof(data); round++) {
		/* The caller offers everything it holds, as moatd does. */
		ssize_t r = moat_net_write(ws, data + done, sizeof(data) - done,
					   why, sizeof(why));
		assert_true(r >= 0);
		done += (size_t)r;
	}
	assert_int_equal(done, sizeof(data));
	/* Decode the frames written after the 101 answer. */
	uint8_t got[sizeof(data)];
	size_t ngot = 0, off = answer;
	while (off < m.outlen) {
		assert_true(m.outlen - off >= 2);
		uint64_t len = m.out[off + 1] & 0x7F;
		size_t h = 2;
		if (len == 126) {
			len = (uint64_t)m.out[off + 2] << 8 | m.out[off + 3];
			h = 4;
		}
		assert_int_equal(m.out[off], 0x82);
		assert_true(off + h + len <= m.outlen && ngot + len <= sizeof(got));
		memcpy(got + ngot, m.out + off + h, (size_t)len);
		ngot += (size_t)len;
		off += h + (size_t)len;
	}
	assert_int_equal(ngot, sizeof(data));
	assert_memory_equal(got, data, sizeof(data));
	moat_net_close(ws);
}

/* Two in-memory layers joined back to back: what one writes, the other
 * reads (at most 64 KiB in flight each way). */
struct pipe_end {
	struct moat_net base;
	uint8_t buf[65536]; /* bytes written to the other end */
	size_t len, off;
	struct pipe_end *peer;
};

static ssize_t pipe_read(struct moat_net *n, uint8_t *dst, size_t len,
			 char *why, size_t whysz)
{
	struct pipe_end *in = ((struct pipe_end *)n)->peer;
	(void)why;
	(void)whysz;
	size_t k = MOAT_MIN(len, in->len - in->off);
	if (!k)
		return MOAT_NET_AGAIN;
	memcpy(dst, in->buf + in->off, k);
	in->off += k;
	return (ssize_t)k;
}

static ssize_t pipe_write(struct moat_net *n, const uint8_t *p, size_t len,
			  char *why, size_t whysz)
{
	struct pipe_end *e = (struct pipe_end *)n;
	(void)why;
	(void)whysz;
	/* A small socket buffer: partial writes happen. */
	size_t k = MOAT_MIN(MOAT_MIN(len, (size_t)777), sizeof(e->buf) - e->len);
	if (!k)
		return MOAT_NET_AGAIN;
	memcpy(e->buf + e->len, p, k);
	e->len += k;
	return (ssize_t)k;
}

static const struct moat_net_ops pipe_ops = {
	.name = "pipe", .read = pipe_read, .write = pipe_write,
	.close = net_mem_close,
};

/* Move size bytes from one layer to the other, both driven by turns. */
static void pump(struct moat_net *from, struct moat_net *to,
		 const uint8_t *data, uint8_t *got, size_t size)
{
	size_t sent = 0, recvd = 0;
	char why[200];
	for (int turn = 0; turn < 100000 && recvd < size; turn++) {
		if (sent < size) {
			ssize_t r = moat_net_write(from, data + sent,
						   size - sent, why,
						   sizeof(why));
			assert_true(r >= 0);
			sent += (size_t)r;
		}
		(void)moat_net_flush(to, why, sizeof(why));
		ssize_t r = moat_net_read(to, got + recvd, size - recvd, why,
					  sizeof(why));
		assert_true(r >= 0);
		recvd += (size_t)r;
	}
	assert_int_equal(recvd, size);
	assert_memory_equal(got, data, size);
}

/* Our client role against our server role: the handshake, masked frames
 * one way and plain ones the other, then a close from the client. */
static void test_ws_client_and_server(void **state)
{
	(void)state;
	static struct pipe_end c, s;
	memset(&c, 0, sizeof(c));
	memset(&s, 0, sizeof(s));
	c.base.ops = s.base.ops = &pipe_ops;
	c.base.fd = s.base.fd = -1;
	c.peer = &s;
	s.peer = &c;
	const struct moat_ws_policy pol = {"/mqtt", ""};
	struct moat_net *cl = moat_net_ws_client_new(&c.base, "broker:8080",
						     "/mqtt", 1 << 20);
	struct moat_net *sv = moat_net_ws_new(&s.base, &pol, 1 << 20);
	assert_non_null(cl);
	assert_non_null(sv);
	static uint8_t data[20000], got[20000];
	for (size_t i = 0; i < sizeof(data); i++)
		data[i] = (uint8_t)(i * 13 + 1);
	pump(cl, sv, data, got, sizeof(data));
	/* The client's frames were masked on the wire. */
	assert_null(memmem(c.buf, c.len, data + 100, 64));
	memset(got, 0, sizeof(got));
	pump(sv, cl, data, got, 5000);
	/* The client closes: the server reads the close (1000). */
	char why[200];
	moat_net_shutdown(cl);
	assert_int_equal(moat_net_read(sv, got, 10, why, sizeof(why)),
			 MOAT_NET_CLOSED);
	assert_non_null(strstr(why, "close 1000"));
	moat_net_close(cl);
	moat_net_close(sv);
}

/* A client refuses an answer that is not a WebSocket switch to mqtt. */
static void test_ws_client_refuses_bad_answers(void **state)
{
	(void)state;
	const char *answers[] = {
		"HTTP/1.1 200 OK\r\n\r\n",
		"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
		"Connection: Upgrade\r\nSec-WebSocket-Accept: "
		"s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
		"Sec-WebSocket-Protocol: mqtt\r\n\r\n", /* another key's */
	};
	for (size_t i = 0; i < 2; i++) {
		struct net_mem m;
		net_mem_init(&m, (const uint8_t *)answers[i],
			     strlen(answers[i]), false, 0);
		struct moat_net *cl = moat_net_ws_client_new(&m.base, "h",
							     "/mqtt", 100);
		uint8_t b[8];
		char why[200];
		assert_int_equal(moat_net_read(cl, b, sizeof(b), why,
					       sizeof(why)),
				 MOAT_NET_REFUSED);
		assert_non_null(strstr((char *)m.out, "GET /mqtt HTTP/1.1\r\n"));
		moat_net_close(cl);
	}
	/* Frames from a server must not be masked. */
	struct moat_ws_frame f = {.fin = true, .opcode = WS_OP_BINARY,
				  .masked = true, .len = 1};
	assert_int_equal(moat_ws_frame_check(&f, false, 10, false),
			 WS_CLOSE_PROTOCOL);
	f.masked = false;
	assert_int_equal(moat_ws_frame_check(&f, false, 10, false), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_ws_handshake_accepts),
		T(test_ws_handshake_refuses),
		T(test_ws_handshake_path_version_protocol),
		T(test_ws_frame_header),
		T(test_ws_frame_check),
		T(test_ws_close_payload),
		T(test_ws_layer_stream),
		T(test_ws_layer_refusals),
		T(test_ws_layer_partial_writes),
		T(test_ws_client_and_server),
		T(test_ws_client_refuses_bad_answers),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
