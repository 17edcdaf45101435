/* moat audit: TLS checks of an mqtts:// target (AUD-TLS-01..04).
 *
 *   - one handshake that verifies the server (--cafile or the system's
 *     CAs, and the host name); if it fails, one without verification to
 *     read the certificate anyway;
 *   - the certificate: expiry, key size, self-signed, name, chain;
 *   - client certificates: asked for (CertificateRequest) but not
 *     enforced when we send none and still get a CONNACK;
 *   - one handshake per protocol version (1.0 .. 1.3) and one per class
 *     of weak cipher suites (TLS <= 1.2), with OpenSSL's security level 0
 *     so that our side can offer them.  A version or class this OpenSSL
 *     cannot offer at all is reported as not tested, never as refused. */
#include <arpa/inet.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "audit.h"
#include "codec/mqtt_codec.h"
#include "net/tls_client.h"

/* A client context from net/tls_client.h (verifying with --cafile or the
 * system's CAs, or not at all), tolerant of a server that closes without
 * close_notify.  NULL after audit_fail() when the CAs do not load. */
static SSL_CTX *client_ctx(struct audit_ctx *x, bool insecure)
{
	struct moat_tls_client_opts o = {.cafile = x->run->o->cafile,
					 .insecure = insecure};
	char err[400];
	SSL_CTX *ctx = moat_tls_client_ctx(&o, err, sizeof(err));
	if (!ctx) {
		audit_fail(x->t, "%s", err);
		return NULL;
	}
	SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
	return ctx;
}

/* The context of the MQTT probes when the server is verified. */
static SSL_CTX *verify_ctx(struct audit_ctx *x)
{
	return client_ctx(x, false);
}

static SSL_CTX *insecure_ctx(struct audit_ctx *x)
{
	return client_ctx(x, true);
}

/* ---- the certificate --------------------------------------------------- */

static void when(const ASN1_TIME *t, char *buf, size_t sz)
{
	struct tm tm;
	if (ASN1_TIME_to_tm(t, &tm))
		strftime(buf, sz, "%Y-%m-%d", &tm);
	else
		snprintf(buf, sz, "?");
}

static void cert_dates(struct audit_ctx *x, X509 *cert, const char *who)
{
	struct moat_findings *f = &x->t->findings;
	const ASN1_TIME *na = X509_get0_notAfter(cert);
	const ASN1_TIME *nb = X509_get0_notBefore(cert);
	char d[32];
	int days = 0, secs = 0;
	when(na, d, sizeof(d));
	if (X509_cmp_current_time(na) < 0)
		moat_findings_add(f, "AUD-TLS-03", "%s expired on %s", who, d);
	else if (ASN1_TIME_diff(&days, &secs, NULL, na) && days < 30)
		moat_findings_add_sev(f, "AUD-TLS-03", MOAT_SEV_MEDIUM,
				      "%s expires in %d day%s (%s)", who, days,
				      days == 1 ? "" : "s", d);
	if (X509_cmp_current_time(nb) > 0) {
		when(nb, d, sizeof(d));
		moat_findings_add_sev(f, "AUD-TLS-03", MOAT_SEV_MEDIUM,
				      "%s is not valid before %s", who, d);
	}
}

static void cert_key(struct audit_ctx *x, X509 *cert, const char *who)
{
	EVP_PKEY *pk = X509_get0_pubkey(cert);
	if (!pk)
		return;
	int bits = EVP_PKEY_get_bits(pk);
	int id = EVP_PKEY_get_base_id(pk);
	bool rsa_like = id == EVP_PKEY_RSA || id == EVP_PKEY_DSA ||
			id == EVP_PKEY_RSA_PSS;
	const char *kind = id == EVP_PKEY_EC ? "EC"
			   : id == EVP_PKEY_DSA ? "DSA"
						: "RSA";
	if ((rsa_like && bits < 2048) || (id == EVP_PKEY_EC && bits < 224))
		moat_findings_add(&x->t->findings, "AUD-TLS-03",
				  "%s has a weak %s key of %d bits", who, kind,
				  bits);
}

static bool cert_name_ok(X509 *cert, const char *host)
{
	unsigned char ip[16];
	if (inet_pton(AF_INET, host, ip) == 1 ||
	    inet_pton(AF_INET6, host, ip) == 1)
		return X509_check_ip_asc(cert, host, 0) == 1;
	return X509_check_host(cert, host, 0, 0, NULL) == 1;
}

static void inspect_cert(struct audit_ctx *x, X509 *cert, long verify)
{
	struct moat_findings *f = &x->t->findings;
	char subj[200], who[260];
	X509_NAME_oneline(X509_get_subject_name(cert), subj, sizeof(subj));
	snprintf(who, sizeof(who), "the certificate %s", subj);
	cert_dates(x, cert, who);
	cert_key(x, cert, who);
	bool self = X509_check_issued(cert, cert) == X509_V_OK;
	if (self)
		moat_findings_add_sev(f, "AUD-TLS-03", MOAT_SEV_INFO,
				      "%s is self-signed: every client must "
				      "be given it to pin", who);
	if (!cert_name_ok(cert, x->t->host))
		moat_findings_add(f, "AUD-TLS-03",
				  "%s does not name %s (clients that check "
				  "the name refuse it)", who, x->t->host);
	bool reported = verify == X509_V_ERR_CERT_HAS_EXPIRED ||
			verify == X509_V_ERR_HOSTNAME_MISMATCH ||
			verify == X509_V_ERR_IP_ADDRESS_MISMATCH;
	if (verify == X509_V_OK || reported)
		return;
	if (x->run->o->insecure)
		moat_findings_add_sev(f, "AUD-TLS-03", MOAT_SEV_INFO,
				      "%s is not trusted by %s (%s); accepted "
				      "because of --insecure", who,
				      x->run->o->cafile ? x->run->o->cafile
							: "the system's CAs",
				      X509_verify_cert_error_string(verify));
	else
		moat_findings_add(f, "AUD-TLS-03",
				  "%s cannot be verified with %s: %s", who,
				  x->run->o->cafile ? x->run->o->cafile
						    : "the system's CAs",
				  X509_verify_cert_error_string(verify));
}

/* ---- client certificates --------------------------------------------- */

/* The server asked for a certificate and the handshake finished without
 * one: does MQTT still answer?  (TLS 1.3 refuses only after the
 * handshake, with an alert on our first read.) */
static void client_cert_check(struct audit_ctx *x, struct audit_conn *c)
{
	if (!c->cert_requested)
		return;
	static const uint8_t connect[] = {0x10, 0x12, 0, 4, 'M', 'Q', 'T', 'T',
					  4, 2, 0, 60, 0, 6, 'm', 'o', 'a', 't',
					  '-', 'a'};
	uint8_t ans[4];
	/* Even when the write fails (the server may have closed already),
	 * its alert may be waiting to be read. */
	(void)audit_conn_send(c, connect, sizeof(connect),
			      audit_step_deadline(x));
	int n = audit_conn_recv(c, ans, sizeof(ans), audit_step_deadline(x));
	if (n > 0 && ans[0] == (MQTT_CONNACK << 4)) {
		moat_findings_add(&x->t->findings, "AUD-TLS-04",
				  "the server asks for a client certificate "
				  "but answered CONNECT on a connection "
				  "without one");
		return;
	}
	x->cert_required = true;
	audit_note(x->t, "client certificates are required (enforced%s): "
			 "the MQTT checks cannot run without one",
		   c->tls_alert_cert_required ? ", by a TLS alert"
		   : n == MOAT_EAGAIN	       ? ": no answer without one"
					       : "");
}

/* ---- protocol versions and ciphers ------------------------------------ */

enum tls_try { TRY_ACCEPTED, TRY_REFUSED, TRY_UNTESTABLE, TRY_ERROR };

static enum tls_try try_ctx(struct audit_ctx *x, SSL_CTX *ctx, char *cipher,
			    size_t csz)
{
	struct audit_conn c;
	audit_conn_init(&c);
	int rc = audit_conn_open(x, &c, ctx);
	enum tls_try r = TRY_REFUSED;
	if (rc == MOAT_OK) {
		r = TRY_ACCEPTED;
		if (cipher)
			snprintf(cipher, csz, "%s", SSL_get_cipher_name(c.ssl));
	} else if (rc == MOAT_ETLS && c.cert_requested) {
		/* The server chose this version and suite, then wanted a
		 * client certificate: accepted as far as this check goes. */
		r = TRY_ACCEPTED;
		if (cipher)
			snprintf(cipher, csz, "%s", SSL_get_cipher_name(c.ssl));
	} else if (rc != MOAT_ETLS) {
		r = TRY_ERROR;
	} else if (c.tls_reason == SSL_R_NO_PROTOCOLS_AVAILABLE ||
		   c.tls_reason == SSL_R_NO_CIPHERS_AVAILABLE) {
		r = TRY_UNTESTABLE;
	}
	audit_conn_close(&c);
	return r;
}

static SSL_CTX *legacy_ctx(struct audit_ctx *x, int min, int max)
{
	SSL_CTX *ctx = insecure_ctx(x);
	if (!ctx)
		return NULL;
	SSL_CTX_set_security_level(ctx, 0);
	if (!SSL_CTX_set_min_proto_version(ctx, min) ||
	    !SSL_CTX_set_max_proto_version(ctx, max)) {
		SSL_CTX_free(ctx);
		return NULL;
	}
	return ctx;
}

static const struct {
	int v;
	const char *name;
} versions[] = {
	{TLS1_VERSION, "TLS 1.0"},
	{TLS1_1_VERSION, "TLS 1.1"},
	{TLS1_2_VERSION, "TLS 1.2"},
	{TLS1_3_VERSION, "TLS 1.3"},
};

/* Returns whether some version <= 1.2 was accepted. */
static bool check_versions(struct audit_ctx *x)
{
	char ok[64] = "", untested[64] = "";
	bool legacy = false, old = false;
	for (size_t i = 0; i < MOAT_ARRAY_LEN(versions); i++) {
		int v = versions[i].v;
		SSL_CTX *ctx = legacy_ctx(x, v, v);
		if (ctx && v < TLS1_3_VERSION &&
		    !SSL_CTX_set_cipher_list(ctx, "ALL:COMPLEMENTOFALL:"
						  "@SECLEVEL=0")) {
			SSL_CTX_free(ctx);
			ctx = NULL;
		}
		enum tls_try r = ctx ? try_ctx(x, ctx, NULL, 0) : TRY_UNTESTABLE;
		SSL_CTX_free(ctx);
		char *list = r == TRY_ACCEPTED	   ? ok
			     : r == TRY_UNTESTABLE ? untested
						   : NULL;
		if (list) {
			size_t o = strlen(list);
			snprintf(list + o, 64 - o, "%s%s", o ? ", " : "",
				 versions[i].name);
		}
		if (r == TRY_ACCEPTED && v < TLS1_2_VERSION)
			old = true;
		if (r == TRY_ACCEPTED && v <= TLS1_2_VERSION)
			legacy = true;
	}
	audit_note(x->t, "TLS versions accepted: %s%s%s", ok[0] ? ok : "none",
		   untested[0] ? "; not testable with this OpenSSL: " : "",
		   untested);
	if (old)
		moat_findings_add(&x->t->findings, "AUD-TLS-01",
				  "the server completed handshakes with %s",
				  ok);
	return legacy;
}

const struct audit_weak_class audit_weak[] = {
	{"NULL (no encryption)", "eNULL"},
	{"anonymous (no authentication)", "aNULL"},
	{"EXPORT", "EXPORT"},
	{"RC4", "RC4"},
	{"DES", "DES"},
	{"3DES", "3DES"},
	{"MD5", "MD5"},
};
const size_t audit_weak_count = MOAT_ARRAY_LEN(audit_weak);

static void check_ciphers(struct audit_ctx *x)
{
	char tested[160] = "", untested[160] = "";
	for (size_t i = 0; i < audit_weak_count; i++) {
		char list[64], cipher[64] = "";
		snprintf(list, sizeof(list), "%s:@SECLEVEL=0", audit_weak[i].list);
		SSL_CTX *ctx = legacy_ctx(x, TLS1_VERSION, TLS1_2_VERSION);
		if (ctx && !SSL_CTX_set_cipher_list(ctx, list)) {
			SSL_CTX_free(ctx);
			ctx = NULL;
		}
		ERR_clear_error();
		enum tls_try r = ctx ? try_ctx(x, ctx, cipher, sizeof(cipher))
				     : TRY_UNTESTABLE;
		SSL_CTX_free(ctx);
		char *l = r == TRY_UNTESTABLE ? untested : tested;
		size_t o = strlen(l);
		snprintf(l + o, sizeof(tested) - o, "%s%s", o ? ", " : "",
			 audit_weak[i].list);
		if (r == TRY_ACCEPTED)
			moat_findings_add(&x->t->findings, "AUD-TLS-02",
					  "the server accepted the %s cipher "
					  "suite %s", audit_weak[i].name, cipher);
	}
	audit_note(x->t, "weak cipher classes offered one at a time: %s%s%s",
		   tested[0] ? tested : "none",
		   untested[0] ? "; not testable with this OpenSSL: " : "",
		   untested);
}

/* ---- the run --------------------------------------------------------- */

static void handshake_failed(struct audit_ctx *x, struct audit_conn *c)
{
	if (c->cert_requested) {
		x->cert_required = true;
		audit_note(x->t, "the server requires a client certificate "
				 "(enforced during the handshake); moat audit "
				 "offers none, so the MQTT checks were not run");
		return;
	}
	audit_fail(x->t, "%s (is this a TLS port? for plaintext MQTT use "
			 "mqtt://)", c->err);
}

/* Verify, or else connect without verification to see the certificate.
 * Returns the context for the MQTT checks (NULL: stop; the reason is in
 * the report). */
static SSL_CTX *first_handshake(struct audit_ctx *x, struct audit_conn *c)
{
	SSL_CTX *vctx = verify_ctx(x), *ictx = NULL, *use = NULL;
	if (!vctx)
		return NULL;
	int rc = audit_conn_open(x, c, vctx);
	long verify = c->ssl ? SSL_get_verify_result(c->ssl) : X509_V_OK;
	if (rc == MOAT_ETLS && verify != X509_V_OK) {
		if (!(ictx = insecure_ctx(x)))
			goto out;
		rc = audit_conn_open(x, c, ictx);
	}
	if (rc != MOAT_OK) {
		if (rc == MOAT_ETLS)
			handshake_failed(x, c);
		else
			audit_fail(x->t, "%s", c->err);
		goto out;
	}
	X509 *cert = SSL_get1_peer_certificate(c->ssl);
	if (cert) {
		inspect_cert(x, cert, verify);
		X509_free(cert);
	}
	x->tls_verified = verify == X509_V_OK;
	if (x->tls_verified)
		use = vctx;
	else if (x->run->o->insecure)
		use = ictx;
	else
		audit_note(x->t, "MQTT checks not run: the server's "
				 "certificate could not be verified (give its "
				 "CA with --cafile, or --insecure for a "
				 "self-signed set-up)");
out:
	if (vctx != use)
		SSL_CTX_free(vctx);
	if (ictx != use)
		SSL_CTX_free(ictx);
	return use;
}

int audit_tls_run(struct audit_ctx *x)
{
	struct audit_conn c;
	audit_progress(x, "TLS handshake and certificate");
	audit_conn_init(&c);
	SSL_CTX *use = first_handshake(x, &c);
	if (c.ssl)
		client_cert_check(x, &c);
	audit_conn_close(&c);
	if (x->t->error[0]) {
		SSL_CTX_free(use);
		return MOAT_EIO;
	}
	audit_progress(x, "TLS versions and weak cipher suites");
	if (check_versions(x))
		check_ciphers(x);
	else
		audit_note(x->t, "weak cipher suites not tested: the server "
				 "accepts only TLS 1.3");
	x->tls = use;
	if (!use || x->cert_required)
		return MOAT_EDENIED;
	return MOAT_OK;
}
