/* TLS server contexts and client-certificate identities (OpenSSL 3). */
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <string.h>

#include "common/moat_common.h"
#include "net/tls.h"

/* Append OpenSSL's queued errors to buf, whole ("error:0A000086:SSL
 * routines::certificate verify failed") or reasons only ("certificate
 * verify failed"); the queue is cleared. */
static void append_errors(char *buf, size_t sz, bool reasons)
{
	size_t n = strlen(buf);
	unsigned long e;
	while ((e = ERR_get_error()) != 0) {
		char one[256];
		ERR_error_string_n(e, one, sizeof(one));
		const char *r = reasons ? strrchr(one, ':') : NULL;
		int w = snprintf(buf + n, sz > n ? sz - n : 0, "%s%s",
				 n ? "; " : "", r ? r + 1 : one);
		if (w > 0)
			n = MOAT_MIN(n + (size_t)w, sz ? sz - 1 : 0);
	}
}

const char *moat_tls_error_string(char *buf, size_t sz)
{
	append_errors(buf, sz, false);
	return buf;
}

const char *moat_tls_error_reasons(char *buf, size_t sz)
{
	append_errors(buf, sz, true);
	return buf;
}

SSL_CTX *moat_tls_ctx_fail(SSL_CTX *ctx, char *err, size_t errsz,
			   const char *what, const char *path, bool reasons)
{
	char detail[400] = "";
	append_errors(detail, sizeof(detail), reasons);
	snprintf(err, errsz, "%s%s%s: %s", what, path ? " " : "",
		 path ? path : "", detail[0] ? detail : "failed");
	SSL_CTX_free(ctx);
	return NULL;
}

static SSL_CTX *ctx_fail(SSL_CTX *ctx, char *err, size_t errsz,
			 const char *what, const char *path)
{
	return moat_tls_ctx_fail(ctx, err, errsz, what, path, false);
}

static int load_crl(SSL_CTX *ctx, const char *path)
{
	X509_STORE *store = SSL_CTX_get_cert_store(ctx);
	X509_LOOKUP *lk = X509_STORE_add_lookup(store, X509_LOOKUP_file());
	if (!lk || X509_load_crl_file(lk, path, X509_FILETYPE_PEM) <= 0)
		return -1;
	X509_STORE_set_flags(store,
			     X509_V_FLAG_CRL_CHECK | X509_V_FLAG_CRL_CHECK_ALL);
	return 0;
}

/* Encrypted keys are not supported: without this, OpenSSL would ask for
 * a passphrase on the terminal and the broker would hang there. */
static int no_passphrase(char *buf, int size, int rwflag, void *u)
{
	(void)buf;
	(void)size;
	(void)rwflag;
	(void)u;
	return -1;
}

/* The private key is read through moat_file_read, so that the checks
 * (not a symlink, not open to others) apply to the very file parsed. */
static bool load_key(SSL_CTX *ctx, const char *path, char *err, size_t errsz)
{
	char *pem, perr[600];
	size_t len;
	if (moat_file_read(path, 1024 * 1024, true, &pem, &len, perr,
			   sizeof(perr)) != MOAT_OK) {
		snprintf(err, errsz, "keyfile %s", perr);
		return false;
	}
	BIO *bio = BIO_new_mem_buf(pem, (int)len);
	EVP_PKEY *key = bio ? PEM_read_bio_PrivateKey(bio, NULL, no_passphrase,
						      NULL)
			    : NULL;
	bool ok = key && SSL_CTX_use_PrivateKey(ctx, key) == 1;
	EVP_PKEY_free(key);
	BIO_free(bio);
	OPENSSL_cleanse(pem, len);
	moat_free(pem);
	if (!ok) {
		char detail[400] = "";
		moat_tls_error_string(detail, sizeof(detail));
		snprintf(err, errsz, "keyfile %s: %s", path,
			 detail[0] ? detail
				   : "no unencrypted PEM private key");
	}
	return ok;
}

int moat_tls_server_certs(SSL_CTX *ctx, const struct moat_listener_cfg *lc,
			  char *err, size_t errsz)
{
	if (SSL_CTX_use_certificate_chain_file(ctx, lc->certfile) != 1)
		return ctx_fail(ctx, err, errsz, "certfile", lc->certfile),
		       MOAT_ETLS;
	if (!load_key(ctx, lc->keyfile, err, errsz)) {
		SSL_CTX_free(ctx);
		return MOAT_ETLS;
	}
	if (SSL_CTX_check_private_key(ctx) != 1)
		return ctx_fail(ctx, err, errsz,
				"keyfile does not match certfile", lc->keyfile),
		       MOAT_ETLS;
	if (lc->cafile[0]) {
		if (SSL_CTX_load_verify_locations(ctx, lc->cafile, NULL) != 1)
			return ctx_fail(ctx, err, errsz, "cafile", lc->cafile),
			       MOAT_ETLS;
		STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(lc->cafile);
		if (names)
			SSL_CTX_set_client_CA_list(ctx, names);
		int mode = SSL_VERIFY_PEER;
		if (lc->require_certificate)
			mode |= SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
		SSL_CTX_set_verify(ctx, mode, NULL);
		SSL_CTX_set_verify_depth(ctx, 8);
	}
	if (lc->crlfile[0] && load_crl(ctx, lc->crlfile) != 0)
		return ctx_fail(ctx, err, errsz, "crlfile", lc->crlfile),
		       MOAT_ETLS;
	return MOAT_OK;
}

SSL_CTX *moat_tls_server_ctx(const struct moat_listener_cfg *lc, char *err,
			     size_t errsz)
{
	ERR_clear_error();
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
	if (!ctx)
		return ctx_fail(NULL, err, errsz, "TLS context", NULL);
	int min = lc->tls_version == MOAT_TLS_13 ? TLS1_3_VERSION
						 : TLS1_2_VERSION;
	SSL_CTX_set_min_proto_version(ctx, min);
	SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION |
					 SSL_OP_NO_RENEGOTIATION |
					 SSL_OP_CIPHER_SERVER_PREFERENCE);
	/* The output buffer may move between retries of a partial write;
	 * idle connections give their record buffers back. */
	SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE |
				      SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
				      SSL_MODE_RELEASE_BUFFERS);
	if (lc->ciphers[0] && SSL_CTX_set_cipher_list(ctx, lc->ciphers) != 1)
		return ctx_fail(ctx, err, errsz, "ciphers", lc->ciphers);
	if (lc->ciphersuites[0] &&
	    SSL_CTX_set_ciphersuites(ctx, lc->ciphersuites) != 1)
		return ctx_fail(ctx, err, errsz, "ciphersuites",
				lc->ciphersuites);
	if (moat_tls_server_certs(ctx, lc, err, errsz) != MOAT_OK)
		return NULL;
	/* Resumption by tickets only (no server-side cache to share
	 * between workers); the id context is required for resuming
	 * sessions that were verified with a client certificate. */
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	static const unsigned char sid_ctx[] = "moatd";
	SSL_CTX_set_session_id_context(ctx, sid_ctx, sizeof(sid_ctx) - 1);
	return ctx;
}

static int copy_identity(const unsigned char *p, int len, char *out,
			 size_t outsz)
{
	if (len <= 0 || (size_t)len >= outsz)
		return MOAT_EINVAL;
	if (!moat_utf8_valid(p, (size_t)len))
		return MOAT_EINVAL;
	for (int i = 0; i < len; i++)
		if (p[i] < 0x20 || p[i] == 0x7f)
			return MOAT_EINVAL;
	memcpy(out, p, (size_t)len);
	out[len] = '\0';
	return MOAT_OK;
}

static int san_identity(X509 *cert, char *out, size_t outsz)
{
	GENERAL_NAMES *names = X509_get_ext_d2i(cert, NID_subject_alt_name,
						 NULL, NULL);
	int rc = MOAT_ENOTFOUND;
	for (int i = 0; names && i < sk_GENERAL_NAME_num(names); i++) {
		const GENERAL_NAME *g = sk_GENERAL_NAME_value(names, i);
		const ASN1_IA5STRING *s = NULL;
		if (g->type == GEN_DNS)
			s = g->d.dNSName;
		else if (g->type == GEN_EMAIL)
			s = g->d.rfc822Name;
		else if (g->type == GEN_URI)
			s = g->d.uniformResourceIdentifier;
		if (!s)
			continue;
		rc = copy_identity(ASN1_STRING_get0_data(s),
				   ASN1_STRING_length(s), out, outsz);
		break;
	}
	GENERAL_NAMES_free(names);
	return rc;
}

static int cn_identity(X509 *cert, char *out, size_t outsz)
{
	X509_NAME *subj = X509_get_subject_name(cert);
	int idx = X509_NAME_get_index_by_NID(subj, NID_commonName, -1);
	if (idx < 0)
		return MOAT_ENOTFOUND;
	/* Two CNs are ambiguous: refuse rather than pick one. */
	if (X509_NAME_get_index_by_NID(subj, NID_commonName, idx) >= 0)
		return MOAT_EINVAL;
	ASN1_STRING *d = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subj, idx));
	unsigned char *utf8 = NULL;
	int len = ASN1_STRING_to_UTF8(&utf8, d);
	int rc = len < 0 ? MOAT_EINVAL : copy_identity(utf8, len, out, outsz);
	OPENSSL_free(utf8);
	return rc;
}

int moat_tls_peer_identity(SSL *ssl, bool san, char *out, size_t outsz)
{
	X509 *cert = SSL_get0_peer_certificate(ssl);
	if (!cert || SSL_get_verify_result(ssl) != X509_V_OK)
		return MOAT_ENOTFOUND;
	return san ? san_identity(cert, out, outsz)
		   : cn_identity(cert, out, outsz);
}
