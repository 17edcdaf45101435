/* moat audit: the DTLS checks of a coaps:// target (AUD-CO-06, AUD-CO-07).
 *
 * Each probe is one DTLS handshake from a fresh socket, watched with
 * OpenSSL's message callback: which handshake messages came, in which
 * order, and how many bytes each side sent (record headers: 13 bytes plus
 * the record length, i.e. the UDP payload).
 *
 *   - cookie (AUD-CO-06): is the first answer to a ClientHello a
 *     HelloVerifyRequest?  Bytes the server sent ÷ bytes we sent until
 *     then; a Certificate before any cookie round trip;
 *   - PSK: offering only PSK suites, the identity hint the server sends
 *     (AUD-CO-07); we have no key, so the handshake ends there;
 *   - versions: DTLS 1.0 only, DTLS 1.2 only; weak suite classes, one at a
 *     time (AUD-CO-07).  "Accepted" means the server answered with a
 *     ServerHello choosing what we offered, whether or not the handshake
 *     could finish (no PSK, no client certificate on our side).
 *
 * When an anonymous handshake (no PSK, no client certificate, the server's
 * certificate not verified) completes, the caller runs the CoAP checks
 * over DTLS. */
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <string.h>

#include "audit.h"
#include "net/dtls.h"

#define CERT_SUITES "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-" \
		    "SHA256:ECDHE-ECDSA-AES128-CCM8:HIGH:!aNULL:!eNULL:!PSK"
#define DTLS_HS_HVR 3 /* HelloVerifyRequest (RFC 6347) */

struct dtls_probe {
	struct audit_target *t;
	bool wrote_hello;
	bool answered;	/* a record came from the server */
	bool pre_done;	/* we wrote again after that answer */
	size_t in_pre;	/* our bytes before the server's first record */
	size_t out_pre;	/* the server's bytes from then until we wrote
			 * again: its answer to our first ClientHello */
	unsigned nin;		/* handshake messages received */
	uint8_t first_in;	/* type of the first one */
	bool hvr;		/* a HelloVerifyRequest came */
	bool cert_pre;		/* a Certificate came before any cookie */
	bool server_hello;	/* one that chose what we offered */
	uint16_t want;		/* the version offered (0: any) */
	uint16_t version;	/* the ServerHello's */
	char cipher[64];	/* the suite it chose */
	bool psk_asked;		/* the PSK callback ran (PSK suite chosen) */
	char hint[160];		/* the identity hint, escaped */
	size_t records_in;
};

static void count(struct audit_target *t, int write_p, const uint8_t *b,
		  size_t len, size_t *rec)
{
	*rec = len >= 13 ? 13 + ((size_t)b[11] << 8 | b[12]) : 0;
	if (write_p) {
		t->dg_sent++;
		t->bytes_sent += *rec;
	} else {
		t->dg_recv++;
		t->bytes_recv += *rec;
	}
}

/* Counting only (the CoAP checks over DTLS); arg is the target. */
static void count_cb(int write_p, int version, int type, const void *buf,
		     size_t len, SSL *ssl, void *arg)
{
	size_t rec;
	(void)version;
	(void)ssl;
	if (type == SSL3_RT_HEADER)
		count(arg, write_p, buf, len, &rec);
}

/* A ServerHello counts only when it chose a version and a suite that we
 * offered (OpenSSL then aborts the handshake, but we look first). */
static void server_hello(struct dtls_probe *p, SSL *ssl, const uint8_t *b,
			 size_t len)
{
	/* DTLS handshake header (12), version (2), random (32), session
	 * id (1 + n), cipher suite (2). */
	if (len < 12 + 2 + 32 + 1)
		return;
	p->version = (uint16_t)(b[12] << 8 | b[13]);
	size_t sid = b[46];
	if (len < 47 + sid + 2)
		return;
	const SSL_CIPHER *c = SSL_CIPHER_find(ssl, b + 47 + sid);
	snprintf(p->cipher, sizeof(p->cipher), "%s",
		 c ? SSL_CIPHER_get_name(c) : "an unknown suite");
	bool version_ok = p->want ? p->version == p->want
				  : p->version == 0xfefd || p->version == 0xfeff;
	p->server_hello = c && version_ok &&
			  sk_SSL_CIPHER_find(SSL_get_ciphers(ssl), c) >= 0;
}

static void probe_cb(int write_p, int version, int type, const void *buf,
		     size_t len, SSL *ssl, void *arg)
{
	struct dtls_probe *p = arg;
	const uint8_t *b = buf;
	(void)version;
	if (type == SSL3_RT_HEADER) {
		size_t rec;
		count(p->t, write_p, b, len, &rec);
		if (write_p && !p->answered)
			p->in_pre += rec;
		else if (write_p)
			p->pre_done = true;
		else
			p->records_in++;
		if (!write_p && !p->pre_done) {
			p->answered = true;
			p->out_pre += rec;
		}
		return;
	}
	if (type != SSL3_RT_HANDSHAKE || len < 1)
		return;
	if (write_p) {
		p->wrote_hello = p->wrote_hello || b[0] == SSL3_MT_CLIENT_HELLO;
		return;
	}
	if (!p->nin++)
		p->first_in = b[0];
	if (b[0] == DTLS_HS_HVR)
		p->hvr = true;
	else if (b[0] == SSL3_MT_CERTIFICATE && !p->hvr)
		p->cert_pre = true;
	else if (b[0] == SSL3_MT_SERVER_HELLO)
		server_hello(p, ssl, b, len);
}

static unsigned int psk_cb(SSL *ssl, const char *hint, char *identity,
			   unsigned int max_identity_len, unsigned char *psk,
			   unsigned int max_psk_len)
{
	struct dtls_probe *p = SSL_CTX_get_app_data(SSL_get_SSL_CTX(ssl));
	(void)identity;
	(void)max_identity_len;
	(void)psk;
	(void)max_psk_len;
	if (p) {
		p->psk_asked = true;
		if (hint && hint[0])
			moat_log_escape((const uint8_t *)hint, strlen(hint),
					p->hint, sizeof(p->hint));
	}
	return 0; /* no key: the handshake ends here */
}

/* A client context offering versions min..max and suites; NULL when this
 * OpenSSL cannot offer them. */
static SSL_CTX *dctx(int min, int max, const char *suites, bool psk)
{
	SSL_CTX *c = SSL_CTX_new(DTLS_client_method());
	if (!c)
		return NULL;
	SSL_CTX_set_security_level(c, 0);
	SSL_CTX_set_verify(c, SSL_VERIFY_NONE, NULL);
	SSL_CTX_set_options(c, SSL_OP_NO_COMPRESSION |
				       SSL_OP_NO_RENEGOTIATION |
				       SSL_OP_NO_QUERY_MTU);
	if (!SSL_CTX_set_min_proto_version(c, min) ||
	    !SSL_CTX_set_max_proto_version(c, max) ||
	    !SSL_CTX_set_cipher_list(c, suites)) {
		SSL_CTX_free(c);
		ERR_clear_error();
		return NULL;
	}
	if (psk)
		SSL_CTX_set_psk_client_callback(c, psk_cb);
	return c;
}

enum dres { D_HELLO, D_REFUSED, D_SILENT, D_UNTESTABLE, D_ERROR };

/* One handshake with ctx (NULL: untestable).  *done: it completed. */
static enum dres probe(struct audit_ctx *x, SSL_CTX *ctx, uint16_t want,
		       struct dtls_probe *p, bool *done, char *err,
		       size_t errsz)
{
	struct audit_udp u;
	memset(p, 0, sizeof(*p));
	p->t = x->t;
	p->want = want;
	*done = false;
	err[0] = 0;
	if (!ctx)
		return D_UNTESTABLE;
	SSL_CTX_set_app_data(ctx, p);
	SSL_CTX_set_msg_callback(ctx, probe_cb);
	SSL_CTX_set_msg_callback_arg(ctx, p);
	if (audit_udp_open(x, &u) != MOAT_OK) {
		snprintf(err, errsz, "%s", u.err);
		return D_ERROR;
	}
	struct moat_dtls_client_cfg cfg = {0};
	int rc = moat_dtls_connect(ctx, u.d.fd, &cfg, audit_step_deadline(x),
				   &u.d.ssl, err, errsz);
	*done = rc == MOAT_OK;
	audit_udp_close(&u);
	SSL_CTX_set_msg_callback(ctx, NULL);
	SSL_CTX_set_app_data(ctx, NULL);
	if (!p->wrote_hello)
		return D_UNTESTABLE;
	if (p->server_hello)
		return D_HELLO;
	return p->nin || p->records_in ? D_REFUSED : D_SILENT;
}

static const char *vname(uint16_t v)
{
	return v == 0xfeff ? "DTLS 1.0" : v == 0xfefd ? "DTLS 1.2" : "DTLS ?";
}

/* ---- AUD-CO-06 ---------------------------------------------------------- */

/* The first probe; false when the target does not answer DTLS. */
static bool check_cookie(struct audit_ctx *x)
{
	struct dtls_probe p;
	char err[AUDIT_ERR_LEN];
	bool done;
	SSL_CTX *c = dctx(DTLS1_2_VERSION, DTLS1_2_VERSION,
			  MOAT_DTLS_PSK_CIPHERS ":" CERT_SUITES, true);
	enum dres r = probe(x, c, 0, &p, &done, err, sizeof(err));
	SSL_CTX_free(c);
	if (r == D_SILENT || r == D_ERROR || r == D_UNTESTABLE) {
		audit_fail(x->t, "no DTLS answer to a ClientHello%s%s (is "
				 "this a coaps port? for plain CoAP use "
				 "coap://)",
			   err[0] ? ": " : "", err);
		return false;
	}
	double ratio = p.in_pre ? (double)p.out_pre / (double)p.in_pre : 0;
	char seen[300];
	snprintf(seen, sizeof(seen), "in answer to our first ClientHello "
		 "(%zu bytes) the server sent %zu bytes (factor %.1f)",
		 p.in_pre, p.out_pre, ratio);
	if (p.cert_pre)
		moat_findings_add(&x->t->findings, "AUD-CO-06",
				  "the server sent its Certificate flight to a "
				  "ClientHello without a cookie round trip "
				  "(no HelloVerifyRequest); %s", seen);
	else if (!p.hvr && ratio > 3.0)
		moat_findings_add(&x->t->findings, "AUD-CO-06",
				  "no HelloVerifyRequest, and %s", seen);
	else if (ratio > 3.0)
		moat_findings_add(&x->t->findings, "AUD-CO-06",
				  "%s", seen);
	else
		audit_note(x->t, "DTLS: %s to an unvalidated address; %s",
			   p.hvr ? "HelloVerifyRequest with a cookie first"
				 : "no HelloVerifyRequest (but no certificate "
				   "before the client's second flight)",
			   seen);
	if (p.server_hello)
		audit_note(x->t, "DTLS: the server chose %s with %s for a "
				 "client offering moat's suites",
			   p.cipher, vname(p.version));
	return true;
}

/* ---- AUD-CO-07 ------------------------------------------------------------ */

static void check_psk(struct audit_ctx *x)
{
	struct dtls_probe p;
	char err[AUDIT_ERR_LEN];
	bool done;
	SSL_CTX *c = dctx(DTLS1_2_VERSION, DTLS1_2_VERSION,
			  "PSK:@SECLEVEL=0", true);
	enum dres r = probe(x, c, 0, &p, &done, err, sizeof(err));
	SSL_CTX_free(c);
	if (r != D_HELLO) {
		audit_note(x->t, "DTLS: PSK suites %s",
			   r == D_UNTESTABLE ? "not testable with this OpenSSL"
					     : "refused");
		return;
	}
	if (p.hint[0])
		moat_findings_add_sev(&x->t->findings, "AUD-CO-07",
				      MOAT_SEV_LOW,
				      "the server sends the PSK identity hint "
				      "\"%s\" to anyone who starts a handshake "
				      "(%s)",
				      p.hint, p.cipher);
	else
		audit_note(x->t, "DTLS: PSK suites accepted (%s), no identity "
				 "hint sent%s",
			   p.cipher, p.psk_asked ? "" : " (not reached)");
}

/* One version: PSK suites, then certificate suites (offered apart: a
 * GnuTLS server refuses some ClientHellos that offer every suite at once).
 * D_HELLO when either got a ServerHello. */
static enum dres try_version(struct audit_ctx *x, int v, struct dtls_probe *p)
{
	static const char *const lists[] = {"PSK:@SECLEVEL=0",
					    "ALL:!PSK:!SRP:@SECLEVEL=0"};
	enum dres best = D_UNTESTABLE;
	char err[AUDIT_ERR_LEN];
	uint16_t wire = v == DTLS1_VERSION ? 0xfeff : 0xfefd;
	for (size_t i = 0; i < MOAT_ARRAY_LEN(lists); i++) {
		bool done;
		SSL_CTX *c = dctx(v, v, lists[i], true);
		enum dres r = probe(x, c, wire, p, &done, err, sizeof(err));
		SSL_CTX_free(c);
		if (r == D_HELLO)
			return r;
		if (r != D_UNTESTABLE)
			best = r;
	}
	return best;
}

static void check_versions(struct audit_ctx *x)
{
	static const struct {
		int v;
		const char *name;
	} vs[] = {{DTLS1_VERSION, "DTLS 1.0"}, {DTLS1_2_VERSION, "DTLS 1.2"}};
	char ok[64] = "", untested[64] = "";
	for (size_t i = 0; i < MOAT_ARRAY_LEN(vs); i++) {
		struct dtls_probe p;
		enum dres r = try_version(x, vs[i].v, &p);
		char *l = r == D_HELLO ? ok : r == D_UNTESTABLE ? untested
								: NULL;
		if (l) {
			size_t o = strlen(l);
			snprintf(l + o, 64 - o, "%s%s", o ? ", " : "",
				 vs[i].name);
		}
		if (r == D_HELLO && vs[i].v == DTLS1_VERSION)
			moat_findings_add(&x->t->findings, "AUD-CO-07",
					  "the server accepts DTLS 1.0 (its "
					  "ServerHello: %s, %s)",
					  vname(p.version), p.cipher);
	}
	audit_note(x->t, "DTLS versions accepted: %s%s%s", ok[0] ? ok : "none",
		   untested[0] ? "; not testable with this OpenSSL: " : "",
		   untested);
}

static void check_suites(struct audit_ctx *x)
{
	char tested[160] = "", untested[160] = "", err[AUDIT_ERR_LEN];
	for (size_t i = 0; i < audit_weak_count; i++) {
		struct dtls_probe p;
		bool done;
		char list[64];
		snprintf(list, sizeof(list), "%s:@SECLEVEL=0",
			 audit_weak[i].list);
		SSL_CTX *c = dctx(DTLS1_VERSION, DTLS1_2_VERSION, list, true);
		enum dres r = probe(x, c, 0, &p, &done, err, sizeof(err));
		SSL_CTX_free(c);
		char *l = r == D_UNTESTABLE ? untested : tested;
		size_t o = strlen(l);
		snprintf(l + o, sizeof(tested) - o, "%s%s", o ? ", " : "",
			 audit_weak[i].list);
		if (r == D_HELLO)
			moat_findings_add(&x->t->findings, "AUD-CO-07",
					  "the server accepted the %s cipher "
					  "suite %s (%s)",
					  audit_weak[i].name, p.cipher,
					  vname(p.version));
	}
	audit_note(x->t, "weak DTLS suite classes offered one at a time: %s%s%s",
		   tested[0] ? tested : "none",
		   untested[0] ? "; not testable with this OpenSSL: " : "",
		   untested);
}

/* ---- the run ---------------------------------------------------------------- */

/* An anonymous certificate-mode handshake: the context when it completes
 * (its records counted in the target's totals). */
static SSL_CTX *anonymous_ctx(struct audit_ctx *x)
{
	struct dtls_probe p;
	char err[AUDIT_ERR_LEN];
	bool done;
	SSL_CTX *c = dctx(DTLS1_2_VERSION, DTLS1_2_VERSION, CERT_SUITES,
			  false);
	enum dres r = probe(x, c, 0, &p, &done, err, sizeof(err));
	if (done) {
		SSL_CTX_set_msg_callback(c, count_cb);
		SSL_CTX_set_msg_callback_arg(c, x->t);
		return c;
	}
	SSL_CTX_free(c);
	audit_note(x->t, "CoAP checks over DTLS not run: %s",
		   r == D_HELLO ? "an anonymous client cannot complete the "
				  "handshake (PSK or a client certificate "
				  "required)"
				: "the server refuses certificate suites "
				  "without a PSK");
	return NULL;
}

SSL_CTX *audit_dtls_run(struct audit_ctx *x)
{
	audit_progress(x, "DTLS cookie exchange");
	if (!check_cookie(x))
		return NULL;
	audit_progress(x, "DTLS PSK hint, versions and weak suites");
	check_psk(x);
	if (!audit_out_of_time(x))
		check_versions(x);
	if (!audit_out_of_time(x))
		check_suites(x);
	return audit_out_of_time(x) ? NULL : anonymous_ctx(x);
}
