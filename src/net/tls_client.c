/* TLS client contexts and sessions (OpenSSL 3) for moat's clients. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>

#include "common/moat_common.h"
#include "net/tls.h"
#include "net/tls_client.h"

static SSL_CTX *ctx_fail(SSL_CTX *ctx, char *err, size_t errsz,
			 const char *what, const char *path)
{
	return moat_tls_ctx_fail(ctx, err, errsz, what, path, true);
}

/* no_name_check: a certificate that does not name the host passes; every
 * other check stands. */
static int ignore_name_cb(int ok, X509_STORE_CTX *x)
{
	int e = X509_STORE_CTX_get_error(x);
	if (!ok && (e == X509_V_ERR_HOSTNAME_MISMATCH ||
		    e == X509_V_ERR_IP_ADDRESS_MISMATCH ||
		    e == X509_V_ERR_EMAIL_MISMATCH))
		return 1;
	return ok;
}

static SSL_CTX *load_verify(SSL_CTX *ctx, const struct moat_tls_client_opts *o,
			    char *err, size_t errsz)
{
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER,
			   o->no_name_check ? ignore_name_cb : NULL);
	if (!o->cafile && !o->capath) {
		if (SSL_CTX_set_default_verify_paths(ctx) != 1)
			return ctx_fail(ctx, err, errsz,
					"cannot load the system's CA "
					"certificates", NULL);
		return ctx;
	}
	if (o->cafile && SSL_CTX_load_verify_file(ctx, o->cafile) != 1)
		return ctx_fail(ctx, err, errsz,
				"cannot load CA certificates from", o->cafile);
	if (o->capath && SSL_CTX_load_verify_dir(ctx, o->capath) != 1)
		return ctx_fail(ctx, err, errsz,
				"cannot use the CA directory", o->capath);
	return ctx;
}

/* Whether the server asked for a client certificate we do not have: a
 * flag in the session, for the message when the server then closes. */
static CRYPTO_ONCE cert_req_once = CRYPTO_ONCE_STATIC_INIT;
static int cert_req_idx = -1;

static void cert_req_init(void)
{
	cert_req_idx = SSL_get_ex_new_index(0, NULL, NULL, NULL, NULL);
}

static int no_cert_cb(SSL *ssl, X509 **x509, EVP_PKEY **pkey)
{
	(void)x509;
	(void)pkey;
	if (cert_req_idx >= 0)
		SSL_set_ex_data(ssl, cert_req_idx, (void *)1);
	return 0; /* no certificate to give */
}

static bool cert_requested(SSL *ssl)
{
	return cert_req_idx >= 0 && SSL_get_ex_data(ssl, cert_req_idx);
}

static SSL_CTX *load_identity(SSL_CTX *ctx,
			      const struct moat_tls_client_opts *o, char *err,
			      size_t errsz)
{
	if (!o->certfile && !o->keyfile) {
		if (CRYPTO_THREAD_run_once(&cert_req_once, cert_req_init))
			SSL_CTX_set_client_cert_cb(ctx, no_cert_cb);
		return ctx;
	}
	if (!o->certfile || !o->keyfile) {
		snprintf(err, errsz, "a client certificate needs both a "
				     "certificate and a key file");
		SSL_CTX_free(ctx);
		return NULL;
	}
	if (SSL_CTX_use_certificate_chain_file(ctx, o->certfile) != 1)
		return ctx_fail(ctx, err, errsz,
				"cannot load the client certificate",
				o->certfile);
	if (SSL_CTX_use_PrivateKey_file(ctx, o->keyfile, SSL_FILETYPE_PEM) !=
	    1) {
		unsigned long e = ERR_peek_last_error();
		if (ERR_GET_LIB(e) == ERR_LIB_X509 &&
		    ERR_GET_REASON(e) == X509_R_KEY_VALUES_MISMATCH) {
			ERR_clear_error();
			snprintf(err, errsz, "the client key %s does not match "
					     "the certificate %s",
				 o->keyfile, o->certfile);
			SSL_CTX_free(ctx);
			return NULL;
		}
		return ctx_fail(ctx, err, errsz, "cannot load the client key",
				o->keyfile);
	}
	if (SSL_CTX_check_private_key(ctx) != 1)
		return ctx_fail(ctx, err, errsz,
				"the client key does not match the "
				"certificate: key", o->keyfile);
	return ctx;
}

SSL_CTX *moat_tls_client_ctx(const struct moat_tls_client_opts *o, char *err,
			     size_t errsz)
{
	ERR_clear_error();
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	if (!ctx)
		return ctx_fail(NULL, err, errsz, "cannot create a TLS context",
				NULL);
	int min = o->min_version ? o->min_version : TLS1_2_VERSION;
	if (min < TLS1_2_VERSION || SSL_CTX_set_min_proto_version(ctx, min) != 1)
		return ctx_fail(ctx, err, errsz, "unsupported TLS version",
				NULL);
	if (o->insecure)
		SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
	else if (!(ctx = load_verify(ctx, o, err, errsz)))
		return NULL;
	return load_identity(ctx, o, err, errsz);
}

int moat_tls_client_version(const char *name, int *version)
{
	if (strcmp(name, "tlsv1.2") == 0)
		*version = TLS1_2_VERSION;
	else if (strcmp(name, "tlsv1.3") == 0)
		*version = TLS1_3_VERSION;
	else
		return MOAT_EINVAL;
	return MOAT_OK;
}

static bool is_ip_literal(const char *h)
{
	unsigned char buf[sizeof(struct in6_addr)];
	return inet_pton(AF_INET, h, buf) == 1 ||
	       inet_pton(AF_INET6, h, buf) == 1;
}

int moat_tls_client_name(SSL *ssl, const char *host)
{
	X509_VERIFY_PARAM *vp = SSL_get0_param(ssl);
	if (is_ip_literal(host))
		return X509_VERIFY_PARAM_set1_ip_asc(vp, host) == 1
			       ? MOAT_OK
			       : MOAT_ENOMEM;
	/* SSL_set_tlsext_host_name, without its cast that drops const
	 * (OpenSSL copies the name). */
	if (SSL_ctrl(ssl, SSL_CTRL_SET_TLSEXT_HOSTNAME,
		     TLSEXT_NAMETYPE_host_name, (void *)(uintptr_t)host) != 1 ||
	    X509_VERIFY_PARAM_set1_host(vp, host, 0) != 1)
		return MOAT_ENOMEM;
	return MOAT_OK;
}

SSL *moat_tls_client_new(SSL_CTX *ctx, int fd, const char *host)
{
	SSL *ssl = SSL_new(ctx);
	if (!ssl || SSL_set_fd(ssl, fd) != 1 ||
	    moat_tls_client_name(ssl, host) != MOAT_OK) {
		SSL_free(ssl);
		return NULL;
	}
	SSL_set_connect_state(ssl);
	return ssl;
}

/* What to do about a failed certificate check, for the message. */
static const char *verify_hint(long v)
{
	switch (v) {
	case X509_V_ERR_HOSTNAME_MISMATCH:
	case X509_V_ERR_IP_ADDRESS_MISMATCH:
		return " (the server's certificate does not name the host "
		       "connected to: use the name it was issued for)";
	case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
	case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
	case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
	case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
	case X509_V_ERR_CERT_SIGNATURE_FAILURE:
		return " (give the CA that issued the server's certificate: "
		       "--cafile)";
	default:
		return "";
	}
}

static void describe(SSL *ssl, int ret, const char *what, char *err,
		     size_t errsz)
{
	int saved = errno;
	int e = SSL_get_error(ssl, ret);
	long v = SSL_get_verify_result(ssl);
	unsigned long last = ERR_peek_last_error();
	if (ERR_GET_LIB(last) == ERR_LIB_SSL &&
	    ERR_GET_REASON(last) == SSL_R_CERTIFICATE_VERIFY_FAILED &&
	    v != X509_V_OK) {
		ERR_clear_error();
		snprintf(err, errsz, "%s: certificate verify failed: %s%s",
			 what, X509_verify_cert_error_string(v),
			 verify_hint(v));
		return;
	}
	if (e == SSL_ERROR_ZERO_RETURN ||
	    (e == SSL_ERROR_SYSCALL && last == 0 &&
	     (saved == 0 || saved == ECONNRESET || saved == EPIPE))) {
		snprintf(err, errsz, "%s: the server closed the connection",
			 what);
		return;
	}
	if (e == SSL_ERROR_SYSCALL && last == 0) {
		snprintf(err, errsz, "%s: %s", what, strerror(saved));
		return;
	}
	char detail[400] = "";
	moat_tls_error_reasons(detail, sizeof(detail));
	snprintf(err, errsz, "%s: %s", what,
		 detail[0] ? detail : "unknown TLS error");
}

void moat_tls_client_error(SSL *ssl, int ret, const char *what, char *err,
			   size_t errsz)
{
	describe(ssl, ret, what, err, errsz);
	size_t n = strlen(err);
	snprintf(err + n, errsz > n ? errsz - n : 0, "%s",
		 moat_tls_client_hint(ssl));
}

const char *moat_tls_client_hint(SSL *ssl)
{
	return cert_requested(ssl) ? " (the server asked for a client "
				     "certificate and none was given)"
				   : "";
}

int moat_tls_client_handshake(SSL *ssl, uint64_t deadline, char *err,
			      size_t errsz, unsigned long *last_err)
{
	int fd = SSL_get_fd(ssl);
	ERR_clear_error();
	if (last_err)
		*last_err = 0;
	for (;;) {
		errno = 0;
		int r = SSL_do_handshake(ssl);
		if (r == 1)
			return MOAT_OK;
		int e = SSL_get_error(ssl, r);
		short ev = e == SSL_ERROR_WANT_READ    ? POLLIN
			   : e == SSL_ERROR_WANT_WRITE ? POLLOUT
						       : 0;
		if (!ev) {
			int closed = e == SSL_ERROR_ZERO_RETURN ||
				     (e == SSL_ERROR_SYSCALL &&
				      ERR_peek_error() == 0);
			if (last_err)
				*last_err = ERR_peek_last_error();
			moat_tls_client_error(ssl, r, "TLS handshake failed",
					      err, errsz);
			return closed ? MOAT_ECLOSED : MOAT_ETLS;
		}
		struct pollfd pfd = {.fd = fd, .events = ev};
		int left = moat_ms_left(deadline);
		int n = left ? poll(&pfd, 1, left) : 0;
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			snprintf(err, errsz, "TLS handshake failed: %s",
				 n == 0 ? "no answer within the timeout"
					: strerror(errno));
			return MOAT_EIO;
		}
	}
}
