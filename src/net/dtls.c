/* DTLS client contexts and the handshake over a connected UDP socket. */
#include <errno.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "common/moat_common.h"
#include "dtls.h"
#include "tls.h"

#define PSK_CIPHERS MOAT_DTLS_PSK_CIPHERS
#define CERT_CIPHERS                                                          \
	"ECDHE-ECDSA-AES128-CCM8:ECDHE-ECDSA-AES128-GCM-SHA256:"             \
	"ECDHE-RSA-AES128-GCM-SHA256:HIGH:!aNULL:!eNULL:!kRSA:!PSK:!SRP:"     \
	"!MD5:!RC4:!3DES"
#define DTLS_MTU MOAT_DTLS_MTU

static SSL_CTX *fail(SSL_CTX *ctx, char *err, size_t errsz, const char *what)
{
	char detail[512] = "";
	moat_tls_error_string(detail, sizeof(detail));
	snprintf(err, errsz, "%s%s%s", what, detail[0] ? ": " : "", detail);
	SSL_CTX_free(ctx);
	return NULL;
}

static unsigned int psk_cb(SSL *ssl, const char *hint, char *identity,
			   unsigned int max_identity_len, unsigned char *psk,
			   unsigned int max_psk_len)
{
	(void)hint; /* never trusted to pick a key */
	const struct moat_dtls_client_cfg *cfg =
		SSL_CTX_get_app_data(SSL_get_SSL_CTX(ssl));
	size_t idlen = strlen(cfg->psk_identity);
	if (idlen + 1 > max_identity_len || cfg->psk_len > max_psk_len)
		return 0;
	memcpy(identity, cfg->psk_identity, idlen + 1);
	memcpy(psk, cfg->psk, cfg->psk_len);
	return (unsigned int)cfg->psk_len;
}

SSL_CTX *moat_dtls_client_ctx(const struct moat_dtls_client_cfg *cfg,
			      char *err, size_t errsz)
{
	SSL_CTX *ctx = SSL_CTX_new(DTLS_client_method());
	if (!ctx)
		return fail(NULL, err, errsz, "cannot create a DTLS context");
	/* The callback only reads cfg; OpenSSL's slot is not const. */
	void *app;
	memcpy(&app, &cfg, sizeof(app));
	SSL_CTX_set_app_data(ctx, app);
	if (!SSL_CTX_set_min_proto_version(ctx, DTLS1_2_VERSION))
		return fail(ctx, err, errsz, "cannot require DTLS 1.2");
	SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION |
					 SSL_OP_NO_RENEGOTIATION |
					 SSL_OP_NO_QUERY_MTU);
	if (cfg->psk_identity) {
		if (!SSL_CTX_set_cipher_list(ctx, PSK_CIPHERS))
			return fail(ctx, err, errsz, "no PSK cipher suite");
		SSL_CTX_set_psk_client_callback(ctx, psk_cb);
		return ctx;
	}
	if (!SSL_CTX_set_cipher_list(ctx, CERT_CIPHERS))
		return fail(ctx, err, errsz, "no certificate cipher suite");
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	if (cfg->cafile ? !SSL_CTX_load_verify_locations(ctx, cfg->cafile, NULL)
			: !SSL_CTX_set_default_verify_paths(ctx))
		return fail(ctx, err, errsz, "cannot load the CA certificates");
	if (cfg->certfile &&
	    (!SSL_CTX_use_certificate_chain_file(ctx, cfg->certfile) ||
	     !SSL_CTX_use_PrivateKey_file(ctx,
					  cfg->keyfile ? cfg->keyfile
						       : cfg->certfile,
					  SSL_FILETYPE_PEM) ||
	     !SSL_CTX_check_private_key(ctx)))
		return fail(ctx, err, errsz,
			    "cannot load the client certificate and key");
	return ctx;
}

/* Name or address checks and SNI for cfg->host. */
static int set_peer(SSL *ssl, const struct moat_dtls_client_cfg *cfg)
{
	if (!cfg->host || cfg->psk_identity)
		return 1;
	if (cfg->host_is_ip)
		return X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl),
						     cfg->host);
	/* SSL_set_tlsext_host_name without its const-dropping cast
	 * (OpenSSL copies the name). */
	return SSL_set1_host(ssl, cfg->host) &&
	       SSL_ctrl(ssl, SSL_CTRL_SET_TLSEXT_HOSTNAME,
			TLSEXT_NAMETYPE_host_name,
			(void *)(uintptr_t)cfg->host);
}

static int handshake(SSL *ssl, int fd, uint64_t deadline_ms, char *err,
		     size_t errsz)
{
	for (;;) {
		ERR_clear_error();
		int r = SSL_do_handshake(ssl);
		if (r == 1)
			return MOAT_OK;
		int e = SSL_get_error(ssl, r);
		if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) {
			char detail[512] = "";
			moat_tls_error_string(detail, sizeof(detail));
			long v = SSL_get_verify_result(ssl);
			snprintf(err, errsz, "DTLS handshake failed: %s",
				 v != X509_V_OK
					 ? X509_verify_cert_error_string(v)
				 : detail[0] ? detail
				 : e == SSL_ERROR_SYSCALL ? strerror(errno)
							  : "peer refused");
			return MOAT_ETLS;
		}
		uint64_t now = moat_now_ms();
		if (now >= deadline_ms) {
			snprintf(err, errsz, "DTLS handshake timed out");
			return MOAT_EAGAIN;
		}
		uint64_t wait = deadline_ms - now;
		struct timeval tv;
		if (DTLSv1_get_timeout(ssl, &tv) == 1) {
			uint64_t t = (uint64_t)tv.tv_sec * 1000u +
				     (uint64_t)tv.tv_usec / 1000u;
			wait = MOAT_MIN(wait, t);
		}
		struct pollfd p = {.fd = fd, .events = POLLIN};
		int n = poll(&p, 1, (int)wait);
		if (n < 0 && errno != EINTR) {
			snprintf(err, errsz, "poll: %s", strerror(errno));
			return MOAT_ETLS;
		}
		if (n == 0 && DTLSv1_handle_timeout(ssl) < 0) {
			snprintf(err, errsz, "DTLS retransmission failed");
			return MOAT_ETLS;
		}
	}
}

int moat_dtls_connect(SSL_CTX *ctx, int fd,
		      const struct moat_dtls_client_cfg *cfg,
		      uint64_t deadline_ms, SSL **out, char *err,
		      size_t errsz)
{
	SSL *ssl = SSL_new(ctx);
	BIO *bio = BIO_new_dgram(fd, BIO_NOCLOSE);
	struct sockaddr_storage peer;
	socklen_t plen = sizeof(peer);
	int rc = MOAT_ETLS;
	if (!ssl || !bio || getpeername(fd, (struct sockaddr *)&peer, &plen)) {
		snprintf(err, errsz, "cannot set up DTLS");
		BIO_free(bio);
		goto out;
	}
	BIO_ctrl(bio, BIO_CTRL_DGRAM_SET_CONNECTED, 0, &peer);
	SSL_set_bio(ssl, bio, bio);
	SSL_set_connect_state(ssl);
	DTLS_set_link_mtu(ssl, DTLS_MTU);
	if (!set_peer(ssl, cfg)) {
		snprintf(err, errsz, "cannot set the server name to verify");
		goto out;
	}
	rc = handshake(ssl, fd, deadline_ms, err, errsz);
out:
	if (rc == MOAT_OK)
		*out = ssl;
	else
		SSL_free(ssl);
	return rc;
}
