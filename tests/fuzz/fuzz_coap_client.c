/* libFuzzer harness for the CoAP client exchanges (src/coap/coap_client.c)
 * against a hostile server: the fuzzer writes the server's datagrams.
 *
 * Input: one byte choosing the request (method, observe, block size,
 * CON/NON, request body size), then datagrams, each as a 2-byte length, a
 * flag byte and the bytes.  Flag bit 0 copies the message id and token of
 * the last request into the datagram (so that the fuzzer reaches matched
 * responses, Block2 fetches, Echo retries and notifications without
 * guessing random ids); bit 1 makes it an ACK of that request.  When the
 * datagrams run out, the transport reports "stop" (as Ctrl-C does).
 *
 * Checks beyond "no crash, no leak": the run ends; every body handed to
 * the callback is within max_body; every datagram sent is a valid CoAP
 * message; the client sends at most 3 datagrams per datagram received,
 * plus a constant (no amplification loop driven by the server). */
#include "coap/coap_client.h"
#include "fuzz_util.h"

#define MAX_BODY 4096

struct fake {
	const uint8_t *p;
	size_t n;
	size_t sent, received;
	uint8_t last[64]; /* header and token of the last request */
	size_t last_len;
};

static int fake_send(void *ctx, const uint8_t *p, size_t n)
{
	struct fake *f = ctx;
	struct coap_msg m;
	CHECK(coap_parse(p, n, &m) == MOAT_OK);
	f->sent++;
	if (COAP_CODE_CLASS(m.code) == 0 && m.code != COAP_EMPTY) {
		f->last_len = MOAT_MIN(n, (size_t)(4 + m.tkl));
		memcpy(f->last, p, f->last_len);
	}
	return MOAT_OK;
}

static int fake_recv(void *ctx, uint8_t *buf, size_t cap, uint32_t wait_ms,
		     size_t *n)
{
	struct fake *f = ctx;
	(void)wait_ms;
	if (f->n < 3)
		return MOAT_ECLOSED;
	size_t len = (size_t)f->p[0] << 8 | f->p[1];
	uint8_t flags = f->p[2];
	f->p += 3;
	f->n -= 3;
	len = MOAT_MIN(len, f->n);
	len = MOAT_MIN(len, cap);
	memcpy(buf, f->p, len);
	f->p += len;
	f->n -= len;
	f->received++;
	/* the request's message id and token, for a matching answer */
	if ((flags & 1) && f->last_len >= 4 && len >= f->last_len) {
		buf[0] = (uint8_t)((buf[0] & 0xF0) | (f->last[0] & 0x0F));
		memcpy(buf + 2, f->last + 2, f->last_len - 2);
	}
	if ((flags & 2) && len >= 1)
		buf[0] = (uint8_t)((buf[0] & 0xCF) | COAP_ACK << 4);
	*n = len;
	return MOAT_OK;
}

static int on_response(void *arg, const struct coap_msg *m,
		       const uint8_t *body, size_t len)
{
	(void)arg;
	(void)m;
	CHECK(len <= MAX_BODY);
	CHECK(len == 0 || body != NULL);
	return MOAT_OK;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	static const uint8_t methods[] = {COAP_GET, COAP_PUT, COAP_POST,
					  COAP_DELETE};
	static const size_t bodies[] = {0, 5, 100, 3000};
	static uint8_t body[3000];
	uint8_t sel = data[0];
	struct coap_uri uri;
	const char *why;
	CHECK(coap_uri_parse("coap://h.example/a/b?q=1", &uri, &why) ==
	      MOAT_OK);
	struct coap_request rq = {
		.method = methods[sel & 3],
		.uri = &uri,
		.payload = body,
		.payload_len = (sel & 3) == 1 || (sel & 3) == 2
				       ? bodies[(sel >> 2) & 3]
				       : 0,
		.content_format = sel & 16 ? 50 : -1,
		.observe = (sel & 3) == 0 && (sel & 32),
	};
	struct coap_client_cfg cfg = {.tx = COAP_TX_PARAMS_DEFAULT};
	cfg.non = sel & 64;
	cfg.block_szx = sel & 128 ? 2 : 6;
	cfg.max_body = MAX_BODY;
	struct fake f = {.p = data + 1, .n = size - 1};
	struct coap_io io = {&f, fake_send, fake_recv};
	char err[256];
	(void)coap_client_run(&io, &cfg, &rq, on_response, NULL, err,
			      sizeof(err));
	CHECK(f.sent <= 3 * f.received + 4);
	return 0;
}
