/* The client side of CoAP exchanges (RFC 7252 message layer, RFC 7959
 * block-wise transfers, RFC 7641 Observe, RFC 9175 Echo), over any
 * datagram transport given as two functions: UDP or DTLS (src/net/dgram.h)
 * in `moat coap`, anything in tests.
 *
 * One request at a time.  Everything is bounded: each Confirmable message
 * is retransmitted at most MAX_RETRANSMIT times, a Non-confirmable one
 * waits at most MAX_TRANSMIT_WAIT, bodies in both directions are capped at
 * max_body, Echo is answered at most twice in a row, and the whole run
 * ends at deadline_ms when one is set. */
#ifndef MOAT_COAP_CLIENT_H
#define MOAT_COAP_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "coap_layer.h"
#include "codec/coap_uri.h"

/* The transport: send one datagram; wait up to wait_ms for one.  recv
 * returns MOAT_OK, MOAT_EAGAIN (time ran out), MOAT_ECLOSED (the user
 * asked to stop) or another error, which ends the run. */
struct coap_io {
	void *ctx;
	int (*send)(void *ctx, const uint8_t *p, size_t n);
	int (*recv)(void *ctx, uint8_t *buf, size_t cap, uint32_t wait_ms,
		    size_t *n);
};

struct coap_client_cfg {
	struct coap_tx_params tx;
	bool non;	    /* send requests as NON instead of CON */
	uint8_t block_szx;  /* preferred block size (6: 1024 bytes) */
	size_t max_body;    /* bound on request and response bodies */
	uint64_t deadline_ms; /* moat_now_ms() time to give up; 0: none */
	/* Each datagram sent (out) or received, for -d; may be NULL. */
	void (*trace)(void *arg, bool out, const uint8_t *p, size_t n);
	void *trace_arg;
};

struct coap_request {
	uint8_t method; /* COAP_GET, ... */
	const struct coap_uri *uri;
	const uint8_t *payload;
	size_t payload_len;
	int32_t content_format; /* -1: none */
	bool observe;		/* GET + Observe: 0, then notifications */
};

/* One response or notification: m is its (last) datagram, body the whole
 * reassembled payload.  Return MOAT_OK to go on, anything else to stop
 * observing (deregistration follows). */
typedef int (*coap_response_cb)(void *arg, const struct coap_msg *m,
				const uint8_t *body, size_t len);

/* Run rq.  cb is called with the response (for Observe, with the first
 * response and then each fresh notification).  Returns MOAT_OK after a
 * response (whatever its code), or: MOAT_EAGAIN timed out (no ACK after
 * MAX_RETRANSMIT retransmissions, no response in time, deadline_ms);
 * MOAT_ECLOSED stopped by the transport (Ctrl-C) — after at least one
 * response this is a normal end of an observation and MOAT_OK is
 * returned; MOAT_EPROTO the server reset the exchange or broke the
 * block-wise rules; MOAT_ELIMIT a body beyond max_body; MOAT_ENOMEM;
 * transport errors as returned by io.  err gets a message. */
int coap_client_run(const struct coap_io *io,
		    const struct coap_client_cfg *cfg,
		    const struct coap_request *rq, coap_response_cb cb,
		    void *arg, char *err, size_t errsz);

#endif
