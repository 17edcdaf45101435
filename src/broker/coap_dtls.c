/* DTLS 1.2 for coaps listeners (OpenSSL 3).
 *
 * No per-peer state before the cookie round trip: a datagram from an
 * unknown address goes through one listening SSL per endpoint
 * (DTLSv1_listen) whose cookie is an HMAC of the peer's address under a
 * random key; only a ClientHello that returns a valid cookie creates a
 * peer (within the handshake and peer limits).  Each peer then has its
 * own SSL reading from a memory BIO (fed one datagram at a time) and
 * writing through a BIO that sends each record with sendto().
 *
 * Identity: the PSK identity (psk_file), or the client certificate's
 * (use_identity_as_username), is the user name for the ACL.
 *
 * Memory: OpenSSL's allocations for the sessions are counted byte for
 * byte (net/ossl_mem.h): every OpenSSL call on a session's SSL runs with
 * the DTLS account current (DTLS_ON ... DTLS_OFF), and memory_limit
 * includes that account.  The handshake's large buffer (OpenSSL 3.0
 * keeps its 21 KB handshake message buffer for the whole DTLS session,
 * "in case there are any unexpected retransmits") is captured on pages of
 * its own (hs_buf) and its pages are given back whenever the session goes
 * idle: after the handshake it is scratch that OpenSSL writes before it
 * reads, so it costs RAM only while handshake messages pass. */

#define DTLS_ON() enum moat_ossl_account acc_prev_ = moat_ossl_account_set(MOAT_OSSL_DTLS)
#define DTLS_OFF() \
	((void)moat_ossl_account_set(acc_prev_), moat_ossl_capture(NULL))
#include <errno.h>
#include <malloc.h>
#include <string.h>
#include <sys/socket.h>

#include <openssl/err.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include "auth/pskfile.h"
#include "coap_int.h"
#include "net/dtls.h"
#include "net/ossl_mem.h"
#include "net/tls.h"

#define COOKIE_LEN 16

static struct moat_coap_peer *peer_of(SSL *ssl)
{
	return SSL_get_app_data(ssl);
}

/* ---- cookies (RFC 6347 §4.2.1) -------------------------------------- */

static int cookie_make(SSL *ssl, unsigned char *cookie, unsigned int *len)
{
	struct moat_coap_peer *p = peer_of(ssl);
	uint8_t k[COAP_ADDR_KEY_MAX];
	size_t kl = coap_addr_key(&p->addr.sa, k);
	unsigned char mac[EVP_MAX_MD_SIZE];
	unsigned int ml = 0;
	const struct moat_security *sec = p->ep->w->sec;
	if (!kl || !HMAC(EVP_sha256(), sec->cookie_key,
			 sizeof(sec->cookie_key), k, kl, mac, &ml))
		return 0;
	memcpy(cookie, mac, COOKIE_LEN);
	*len = COOKIE_LEN;
	return 1;
}

static int cookie_check(SSL *ssl, const unsigned char *cookie,
			unsigned int len)
{
	unsigned char want[DTLS1_COOKIE_LENGTH];
	unsigned int wl = 0;
	return len == COOKIE_LEN && cookie_make(ssl, want, &wl) &&
	       CRYPTO_memcmp(want, cookie, COOKIE_LEN) == 0;
}

static unsigned int psk_cb(SSL *ssl, const char *identity,
			   unsigned char *psk, unsigned int max)
{
	struct moat_coap_peer *p = peer_of(ssl);
	const struct moat_pskfile *f = p->ep->w->sec->psk;
	uint8_t key[MOAT_PSK_MAX];
	size_t n = identity && f ? moat_pskfile_find(f, identity,
						     strlen(identity), key)
				 : 0;
	if (!n || n > max) {
		MOAT_WSTAT_ADD(p->ep->w, auth[MOAT_AUTH_FAIL], 1);
		moat_info("security: auth failure coap peer %s: PSK identity "
			  "not in psk_file",
			  p->name);
		return 0;
	}
	memcpy(psk, key, n);
	OPENSSL_cleanse(key, sizeof(key));
	return (unsigned int)n;
}

SSL_CTX *moat__coap_dtls_ctx(struct moat_security *sec,
			     const struct moat_listener_cfg *lc, char *err,
			     size_t errsz)
{
	ERR_clear_error();
	if (RAND_bytes(sec->cookie_key, sizeof(sec->cookie_key)) != 1) {
		snprintf(err, errsz, "DTLS: no random cookie key");
		return NULL;
	}
	SSL_CTX *ctx = SSL_CTX_new(DTLS_server_method());
	if (!ctx) {
		snprintf(err, errsz, "DTLS: cannot create a context");
		return NULL;
	}
	SSL_CTX_set_min_proto_version(ctx, DTLS1_2_VERSION);
	SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION |
					 SSL_OP_NO_RENEGOTIATION |
					 SSL_OP_NO_QUERY_MTU |
					 SSL_OP_COOKIE_EXCHANGE |
					 SSL_OP_CIPHER_SERVER_PREFERENCE);
	/* Idle sessions give their record buffers back; a write buffer
	 * holds one datagram, not a 16 KiB TLS record. */
	SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
	SSL_CTX_set_max_send_fragment(ctx, MOAT_COAP_DGRAM_MAX);
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	SSL_CTX_set_cookie_generate_cb(ctx, cookie_make);
	SSL_CTX_set_cookie_verify_cb(ctx, cookie_check);
	char list[1024];
	bool certs = lc->certfile[0] != '\0';
	snprintf(list, sizeof(list), "%s%s%s",
		 sec->cfg.psk_file[0] ? MOAT_DTLS_PSK_CIPHERS : "",
		 sec->cfg.psk_file[0] && certs ? ":" : "",
		 certs ? lc->ciphers : "");
	if (SSL_CTX_set_cipher_list(ctx, list) != 1) {
		snprintf(err, errsz, "DTLS: no usable cipher suite in %s", list);
		SSL_CTX_free(ctx);
		return NULL;
	}
	if (sec->cfg.psk_file[0])
		SSL_CTX_set_psk_server_callback(ctx, psk_cb);
	if (certs && moat_tls_server_certs(ctx, lc, err, errsz) != MOAT_OK)
		return NULL;
	return ctx;
}

/* ---- the output BIO: each record is one datagram --------------------- */

static int out_write(BIO *b, const char *d, int n)
{
	struct moat_coap_peer *p = BIO_get_data(b);
	if (n <= 0)
		return 0;
	if (sendto(p->ep->fd, d, (size_t)n, MSG_DONTWAIT, &p->addr.sa,
		   p->alen) > 0)
		MOAT_WSTAT_ADD(p->ep->w, bytes_out[MOAT_PROTO_COAPS],
			       (uint64_t)n);
	return n; /* a lost datagram is DTLS's to retransmit */
}

static long out_ctrl(BIO *b, int cmd, long num, void *ptr)
{
	(void)b;
	(void)num;
	(void)ptr;
	switch (cmd) {
	case BIO_CTRL_FLUSH: return 1;
	case BIO_CTRL_DGRAM_QUERY_MTU:
	case BIO_CTRL_DGRAM_GET_FALLBACK_MTU: return MOAT_DTLS_MTU - 48;
	default: return 0;
	}
}

static int out_create(BIO *b)
{
	BIO_set_init(b, 1);
	return 1;
}

/* Immutable once made; shared by every worker. */
static BIO_METHOD *out_meth;
static pthread_once_t out_once = PTHREAD_ONCE_INIT;

static void out_init(void)
{
	out_meth = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK,
				"moat coaps datagrams");
	if (out_meth && (!BIO_meth_set_write(out_meth, out_write) ||
			 !BIO_meth_set_ctrl(out_meth, out_ctrl) ||
			 !BIO_meth_set_create(out_meth, out_create))) {
		BIO_meth_free(out_meth);
		out_meth = NULL;
	}
}

/* An SSL for ep with a memory BIO for input and the datagram BIO for
 * output, both pointing at p; NULL when out of memory. */
static SSL *ssl_new(struct moat_coap_ep *ep, struct moat_coap_peer *p)
{
	pthread_once(&out_once, out_init);
	SSL_CTX *ctx = ep->w->sec->tls[ep->listener];
	SSL *ssl = ctx && out_meth ? SSL_new(ctx) : NULL;
	BIO *rb = ssl ? BIO_new(BIO_s_mem()) : NULL;
	BIO *wb = rb ? BIO_new(out_meth) : NULL;
	if (!wb) {
		BIO_free(rb);
		SSL_free(ssl);
		return NULL;
	}
	BIO_set_mem_eof_return(rb, -1);
	BIO_set_data(wb, p);
	SSL_set_bio(ssl, rb, wb);
	SSL_set_app_data(ssl, p);
	DTLS_set_link_mtu(ssl, MOAT_DTLS_MTU);
	return ssl;
}

static void repoint(SSL *ssl, struct moat_coap_peer *p)
{
	SSL_set_app_data(ssl, p);
	BIO_set_data(SSL_get_wbio(ssl), p);
}

void moat__coap_dtls_free(struct moat_coap_peer *p)
{
	if (!p->ssl)
		return;
	DTLS_ON();
	if (!p->hs_done) {
		p->ep->w->coap->nhandshakes--;
	} else {
		(void)SSL_shutdown(p->ssl); /* close_notify */
		MOAT_STAT_SUB(p->ep->w->b, coap_dtls_sessions, 1);
	}
	SSL_free(p->ssl);
	DTLS_OFF();
	p->ssl = NULL;
	moat_free(p->user);
	p->user = NULL;
}

/* The handshake finished: who is it? */
static bool identify(struct moat_coap_peer *p)
{
	struct moat_worker *w = p->ep->w;
	const struct moat_listener_cfg *lc = &w->cfg->listeners[p->ep->listener];
	const char *psk_id = SSL_get_psk_identity(p->ssl);
	char name[256];
	if (psk_id) {
		p->user = moat_strdup(psk_id);
	} else if (lc->use_identity_as_username &&
		   moat_tls_peer_identity(p->ssl,
					  lc->use_identity_as_username ==
						  MOAT_IDENTITY_SAN,
					  name, sizeof(name)) == MOAT_OK) {
		p->user = moat_strdup(name);
	} else if (!moat_cfg_listener_anonymous(w->cfg, p->ep->listener)) {
		moat_info("security: auth failure coap peer %s: no identity "
			  "(anonymous access is off on this listener)",
			  p->name);
		return false;
	}
	if ((psk_id || lc->use_identity_as_username) && !p->user)
		return false;
	moat_info("coaps peer %s: DTLS session, user %s", p->name,
		  p->user ? p->user : "(anonymous)");
	return true;
}

/* A datagram from a peer that has no state: the stateless cookie
 * exchange.  A ClientHello with a valid cookie creates the peer. */
static void listen_input(struct moat_coap_ep *ep, const uint8_t *d, size_t n,
			 const union moat_sockaddr *a, socklen_t alen)
{
	struct moat_worker *w = ep->w;
	struct moat_coap *c = w->coap;
	struct moat_coap_peer tmp;
	memset(&tmp, 0, sizeof(tmp));
	tmp.addr = *a;
	tmp.alen = alen;
	tmp.ep = ep;
	snprintf(tmp.name, sizeof(tmp.name), "-");
	/* After a reload (new certificates, keys or cookie key) the
	 * listening SSL is made again from the current context. */
	if (ep->lssl &&
	    SSL_get_SSL_CTX(ep->lssl) != w->sec->tls[ep->listener]) {
		SSL_free(ep->lssl);
		ep->lssl = NULL;
	}
	if (!ep->lssl && !(ep->lssl = ssl_new(ep, &tmp)))
		return;
	SSL *ls = ep->lssl;
	repoint(ls, &tmp);
	BIO *rb = SSL_get_rbio(ls);
	(void)BIO_reset(rb);
	BIO_write(rb, d, (int)n);
	BIO_ADDR *ba = BIO_ADDR_new();
	moat_ossl_capture(&ep->hs_buf);
	int rc = ba ? DTLSv1_listen(ls, ba) : -1;
	moat_ossl_capture(NULL);
	BIO_ADDR_free(ba);
	ERR_clear_error();
	if (rc <= 0) {
		/* A HelloVerifyRequest went out (or the datagram was not a
		 * ClientHello): nothing is kept. */
		if (rc < 0) {
			SSL_free(ep->lssl);
			ep->lssl = NULL;
		}
		return;
	}
	if (c->nhandshakes >= MOAT_COAP_HANDSHAKES_MAX) {
		moat__coap_limit(w, NULL, "DTLS handshakes in progress at the "
					  "limit; ClientHello ignored");
		SSL_free(ep->lssl);
		ep->lssl = NULL;
		return;
	}
	struct moat_coap_peer *p = moat__coap_peer_new(ep, a, alen);
	if (!p) {
		moat__coap_limit(w, NULL, "too many CoAP peers or memory_limit; "
					  "DTLS ClientHello ignored");
		SSL_free(ep->lssl);
		ep->lssl = NULL;
		return;
	}
	/* The listening SSL becomes the peer's; the ClientHello it
	 * verified is read again by the handshake. */
	p->ssl = ls;
	ep->lssl = NULL;
	moat_ossl_capture_move(ep->hs_buf, &p->hs_buf);
	repoint(p->ssl, p);
	c->nhandshakes++;
	p->hs_start_ms = w->now_ms;
	(void)BIO_reset(rb);
	BIO_write(rb, d, (int)n);
	moat__coap_dtls_input(p, NULL, 0);
}

void moat__coap_dtls_datagram(struct moat_coap_ep *ep,
			      struct moat_coap_peer *p, const uint8_t *d,
			      size_t n, const union moat_sockaddr *a,
			      socklen_t alen)
{
	if (!p || !p->ssl) {
		DTLS_ON();
		listen_input(ep, d, n, a, alen);
		DTLS_OFF();
		return;
	}
	moat__coap_dtls_input(p, d, n);
}

void moat__coap_dtls_input(struct moat_coap_peer *p, const uint8_t *d,
			   size_t n)
{
	struct moat_worker *w = p->ep->w;
	DTLS_ON();
	if (!p->hs_done)
		moat_ossl_capture(&p->hs_buf);
	if (n)
		BIO_write(SSL_get_rbio(p->ssl), d, (int)n);
	if (!p->hs_done) {
		int rc = SSL_do_handshake(p->ssl);
		moat_ossl_capture(NULL);
		if (rc != 1) {
			int e = SSL_get_error(p->ssl, rc);
			ERR_clear_error();
			if (e != SSL_ERROR_WANT_READ &&
			    e != SSL_ERROR_WANT_WRITE) {
				moat_info("coaps peer %s: DTLS handshake "
					  "failed",
					  p->name);
				moat__coap_peer_close(p);
			}
			DTLS_OFF();
			return;
		}
		p->hs_done = true;
		w->coap->nhandshakes--;
		MOAT_STAT_ADD(w->b, coap_dtls_sessions, 1);
		if (!identify(p)) {
			moat__coap_peer_close(p);
			DTLS_OFF();
			return;
		}
	}
	uint8_t *buf = w->coap->dbuf;
	for (;;) {
		int r = SSL_read(p->ssl, buf, MOAT_COAP_RX_MAX);
		if (r <= 0) {
			int e = SSL_get_error(p->ssl, r);
			ERR_clear_error();
			if (e == SSL_ERROR_ZERO_RETURN || e == SSL_ERROR_SSL ||
			    e == SSL_ERROR_SYSCALL)
				moat__coap_peer_close(p);
			DTLS_OFF();
			return;
		}
		/* The broker's work is not the session's: outside the
		 * account.  The handler may close the peer (a limit): stop
		 * then. */
		DTLS_OFF();
		if (!moat__coap_message(p, buf, (size_t)r))
			return;
		(void)moat_ossl_account_set(MOAT_OSSL_DTLS);
	}
}

int moat__coap_dtls_send(struct moat_coap_peer *p, const uint8_t *pkt,
			 size_t len)
{
	if (!p->hs_done)
		return MOAT_EAGAIN;
	DTLS_ON();
	if (p->bufs_freed) {
		/* OpenSSL 3.0's DTLS write path does not set up the record
		 * buffers that SSL_free_buffers() released (it writes into a
		 * NULL buffer); its read path sets up both.  A read with no
		 * datagram pending (moat__coap_dtls_input drains the input
		 * BIO) brings them back. */
		(void)SSL_read(p->ssl, p->ep->w->coap->dbuf, MOAT_COAP_RX_MAX);
		ERR_clear_error();
		p->bufs_freed = false;
	}
	int r = SSL_write(p->ssl, pkt, (int)len);
	ERR_clear_error();
	DTLS_OFF();
	return r == (int)len ? MOAT_OK : MOAT_EIO;
}

/* Record buffers given back (true when there were any): when a good deal
 * was (sessions going idle together), glibc is asked to return the free
 * pages to the system now and then, else the holes they leave between
 * long-lived allocations stay resident. */
static bool released(struct moat_coap *c, uint64_t before, uint64_t now)
{
	uint64_t after = moat_ossl_bytes(MOAT_OSSL_DTLS);
	if (before <= after)
		return false; /* nothing was held (still idle) */
	c->dtls_released += before - after;
#ifdef __GLIBC__
	if (c->dtls_released >= MOAT_COAP_TRIM_BYTES &&
	    now - c->trim_ms >= MOAT_COAP_TRIM_MS) {
		(void)malloc_trim(0);
		c->dtls_released = 0;
		c->trim_ms = now;
	}
#else
	(void)now;
#endif
	return true;
}

void moat__coap_dtls_tick(struct moat_coap_peer *p, uint64_t now)
{
	if (!p->ssl)
		return;
	if (p->hs_done) {
		/* An idle session gives its record buffers back (~35 KB;
		 * SSL_MODE_RELEASE_BUFFERS does not apply to DTLS); they
		 * come back with the next record. */
		if (now - p->last_ms > 1000) {
			DTLS_ON();
			uint64_t before = moat_ossl_bytes(MOAT_OSSL_DTLS);
			if (SSL_free_buffers(p->ssl) == 1 &&
			    released(p->ep->w->coap, before, now)) {
				p->bufs_freed = true;
				moat_ossl_discard(p->hs_buf);
			}
			DTLS_OFF();
		}
		return;
	}
	if (now - p->hs_start_ms > MOAT_COAP_HANDSHAKE_MS) {
		moat_info("coaps peer %s: DTLS handshake timed out", p->name);
		moat__coap_peer_close(p);
		return;
	}
	DTLS_ON();
	(void)DTLSv1_handle_timeout(p->ssl);
	ERR_clear_error();
	DTLS_OFF();
}

void moat__coap_dtls_ep_free(struct moat_coap_ep *ep)
{
	DTLS_ON();
	SSL_free(ep->lssl);
	DTLS_OFF();
	ep->lssl = NULL;
}
