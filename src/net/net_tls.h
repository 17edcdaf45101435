/* The TLS layer of the transport stack (net.h). */
#ifndef MOAT_NET_NET_TLS_H
#define MOAT_NET_NET_TLS_H

#include <openssl/ssl.h>
#include <stdbool.h>

#include "net/net.h"

/* A TLS layer over lower's socket with a new SSL from ctx, in the server
 * (accept) or client (connect) role; the handshake runs in the first
 * reads and writes.  NULL when out of memory. */
struct moat_net *moat_net_tls_new(struct moat_net *lower, SSL_CTX *ctx,
				  bool server);
/* A TLS layer over lower's socket around ssl, which is set up on that
 * socket already (a client's blocking handshake may be done); the layer
 * owns it from now on.  NULL when out of memory (ssl is then still the
 * caller's). */
struct moat_net *moat_net_tls_adopt(struct moat_net *lower, SSL *ssl);
/* The SSL of the TLS layer in the stack n (for SNI, certificates), or
 * NULL when there is none. */
SSL *moat_net_tls_ssl(struct moat_net *n);
/* OpenSSL's error code (ERR_GET_LIB/ERR_GET_REASON) behind the TLS
 * layer's last failure in the stack n, 0 when there was none (or no TLS
 * layer): what a caller needs to tell an alert from a plain close. */
unsigned long moat_net_tls_error(struct moat_net *n);
/* True without TLS in the stack, or once its handshake is complete. */
bool moat_net_tls_established(struct moat_net *n);

#endif
