/* TLS for listeners (OpenSSL 3): server contexts with moat's defaults and
 * the identity of a client certificate. */
#ifndef MOAT_NET_TLS_H
#define MOAT_NET_TLS_H

#include <openssl/ssl.h>
#include <stdbool.h>
#include <stddef.h>

#include "config/cfg.h"

/* A server context for listener lc: TLS 1.2 minimum (or 1.3), strong
 * ciphers, no compression or renegotiation, certificate chain and key
 * (the key file must be private: not a symlink, not open to others),
 * client CAs and CRL when configured.  NULL with err set on failure. */
SSL_CTX *moat_tls_server_ctx(const struct moat_listener_cfg *lc, char *err,
			     size_t errsz);
/* The user name a verified client certificate stands for: its subject CN,
 * or (san) its first DNS, e-mail or URI subjectAltName.  MOAT_OK, or
 * MOAT_ENOTFOUND when there is no certificate or no such field, or
 * MOAT_EINVAL when the value is not printable UTF-8. */
int moat_tls_peer_identity(SSL *ssl, bool san, char *out, size_t outsz);
/* Load lc's certfile, keyfile, cafile (client verification, required
 * with require_certificate) and crlfile into ctx (a TLS or DTLS server
 * context).  MOAT_OK, or MOAT_ETLS with err set and ctx freed. */
int moat_tls_server_certs(SSL_CTX *ctx, const struct moat_listener_cfg *lc,
			  char *err, size_t errsz);
/* Append OpenSSL's queued errors to buf (and clear the queue): whole, or
 * their reasons only ("certificate verify failed"), for people. */
const char *moat_tls_error_string(char *buf, size_t sz);
const char *moat_tls_error_reasons(char *buf, size_t sz);
/* err = "WHAT [PATH]: queued errors" (or "failed"); frees ctx; NULL. */
SSL_CTX *moat_tls_ctx_fail(SSL_CTX *ctx, char *err, size_t errsz,
			   const char *what, const char *path, bool reasons);

#endif
