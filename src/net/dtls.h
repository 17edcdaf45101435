/* DTLS 1.2 (OpenSSL 3) for CoAP over UDP: the client side that `moat coap`
 * uses today.  Written for reuse: moatd's coaps listener will add its
 * server side (stateless cookies) next to it, with the same cipher policy.
 *
 * Policy: DTLS 1.2 minimum; PSK suites (TLS_PSK_WITH_AES_128_CCM_8, the
 * CoAP mandatory suite, first) only when a PSK is configured; otherwise
 * certificate suites with forward secrecy and AEAD first, the server
 * certificate verified against cafile (or the system store) and its name
 * or address checked. */
#ifndef MOAT_NET_DTLS_H
#define MOAT_NET_DTLS_H

#include <openssl/ssl.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* RFC 7252 §9.1.3.1 makes TLS_PSK_WITH_AES_128_CCM_8 mandatory. */
#define MOAT_DTLS_PSK_CIPHERS                                                 \
	"PSK-AES128-CCM8:ECDHE-PSK-CHACHA20-POLY1305:PSK-AES128-GCM-SHA256:" \
	"PSK-AES256-GCM-SHA384:PSK-CHACHA20-POLY1305:PSK-AES128-CCM:"         \
	"ECDHE-PSK-AES128-CBC-SHA256:PSK-AES128-CBC-SHA256"
/* Records must fit a datagram on any path (IPv6 minimum MTU). */
#define MOAT_DTLS_MTU 1280

struct moat_dtls_client_cfg {
	const char *psk_identity; /* PSK mode when set */
	const uint8_t *psk;	  /* the key (borrowed; outlives the ctx) */
	size_t psk_len;
	const char *cafile;   /* CAs to verify the server; NULL: system */
	const char *certfile; /* client certificate (optional) */
	const char *keyfile;  /* its key: a private file (not o+r, ...) */
	const char *host;     /* server name or address to verify */
	bool host_is_ip;      /* host is an IP literal (no SNI) */
};

/* A client context for cfg (which must outlive it).  NULL with err set. */
SSL_CTX *moat_dtls_client_ctx(const struct moat_dtls_client_cfg *cfg,
			      char *err, size_t errsz);
/* A DTLS connection over the connected, non-blocking UDP socket fd,
 * handshaken before deadline_ms (moat_now_ms() clock; the DTLS
 * retransmission timer is driven here).  MOAT_OK with *out set; else
 * MOAT_EAGAIN (timed out) or MOAT_ETLS, with err set. */
int moat_dtls_connect(SSL_CTX *ctx, int fd,
		      const struct moat_dtls_client_cfg *cfg,
		      uint64_t deadline_ms, SSL **out, char *err,
		      size_t errsz);

#endif
