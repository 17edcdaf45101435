/* TLS for moat's clients (OpenSSL 3): the client context with moat's
 * defaults, the per-connection name checks, a blocking handshake and the
 * messages for a failed one.  Shared by `moat pub`/`sub` (client/client.c),
 * `moat bench` and `moat audit`.
 *
 * Defaults: the server's certificate is verified (against --cafile /
 * --capath, or the system's trust store when neither is given) and must
 * name the host we connect to (DNS name, or the IP address for an address
 * literal); SNI carries the host name; TLS 1.2 is the minimum.  Only
 * `insecure` turns verification off, `no_name_check` the name check. */
#ifndef MOAT_NET_TLS_CLIENT_H
#define MOAT_NET_TLS_CLIENT_H

#include <openssl/ssl.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct moat_tls_client_opts {
	const char *cafile;   /* PEM CA certificates; NULL: none */
	const char *capath;   /* directory of hashed CA certificates */
	const char *certfile; /* our certificate chain (PEM); needs keyfile */
	const char *keyfile;  /* its private key (PEM) */
	bool insecure;	      /* do not verify the server at all */
	bool no_name_check;   /* verify the chain, not the host name
			       * (mosquitto's --insecure) */
	int min_version;      /* 0: TLS1_2_VERSION; or TLS1_3_VERSION */
};

/* A client context: verification as above (with neither cafile nor capath
 * the system's default paths), our certificate and key when given (they
 * must match), the minimum version.  NULL with a one-line message in err
 * on failure (unreadable file, bad PEM, key that does not match). */
SSL_CTX *moat_tls_client_ctx(const struct moat_tls_client_opts *o, char *err,
			     size_t errsz);

/* "tlsv1.2" or "tlsv1.3" (mosquitto's --tls-version names) to *version.
 * MOAT_OK, or MOAT_EINVAL for anything else (older versions included). */
int moat_tls_client_version(const char *name, int *version);

/* Prepare ssl for a connection to host: SNI (names only, not address
 * literals) and the name or address the certificate must carry.  The
 * name is checked whenever the context verifies; under SSL_VERIFY_NONE
 * SSL_get_verify_result() still reports it.  MOAT_OK or MOAT_ENOMEM. */
int moat_tls_client_name(SSL *ssl, const char *host);

/* A new TLS session on the connected socket fd for host (the two calls
 * above), in client mode.  NULL when out of memory. */
SSL *moat_tls_client_new(SSL_CTX *ctx, int fd, const char *host);

/* Complete the handshake on a non-blocking socket, waiting with poll()
 * until deadline (moat_now_ms() time).  MOAT_OK, MOAT_ETLS (message in
 * err: names a failed certificate check and how to fix it), MOAT_ECLOSED
 * (the server closed the connection; message in err) or MOAT_EIO
 * ("no answer within the timeout", or a poll error).  *last_err (may be
 * NULL) receives OpenSSL's last error code of a failed handshake, 0 if
 * there was none. */
int moat_tls_client_handshake(SSL *ssl, uint64_t deadline, char *err,
			      size_t errsz, unsigned long *last_err);

/* Describe the failure of SSL call ret on ssl ("certificate verify
 * failed: hostname mismatch", OpenSSL's reasons, or errno) after what:
 * "WHAT: DETAIL".  Clears OpenSSL's error queue. */
void moat_tls_client_error(SSL *ssl, int ret, const char *what, char *err,
			   size_t errsz);

/* " (the server asked for a client certificate and none was given)"
 * when it did, else "": for the message when the server closes. */
const char *moat_tls_client_hint(SSL *ssl);

#endif
