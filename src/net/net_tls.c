/* The TLS layer of the transport stack (OpenSSL 3), over the socket of
 * the layer below: the records go to the socket directly. */
#include <errno.h>
#include <openssl/err.h>
#include <stdio.h>
#include <string.h>

#include "common/moat_common.h"
#include "net/net_tls.h"
#include "net/tls.h"

struct net_tls {
	struct moat_net base;
	SSL *ssl;
	unsigned long err; /* OpenSSL's error of the last failure, 0: none */
};

/* Finished: closed by the peer, an I/O error, or a TLS failure.  A
 * failure before the handshake completed is REFUSED (a security event). */
static int tls_failure(struct net_tls *t, int err, const char *op, char *why,
		       size_t whysz)
{
	char detail[300] = "";
	if (err == SSL_ERROR_ZERO_RETURN) {
		snprintf(why, whysz, "connection closed by peer");
		return MOAT_NET_CLOSED;
	}
	t->err = ERR_peek_last_error();
	moat_tls_error_string(detail, sizeof(detail));
	if (err == SSL_ERROR_SYSCALL && !detail[0]) {
		snprintf(why, whysz, "%s", errno ? strerror(errno)
					   : "connection closed by peer");
		return MOAT_NET_CLOSED;
	}
	snprintf(why, whysz, "TLS %s failed: %s", op,
		 detail[0] ? detail : "protocol error");
	return SSL_is_init_finished(t->ssl) ? MOAT_NET_CLOSED
					    : MOAT_NET_REFUSED;
}

/* What SSL_read (reading) or SSL_write returned, as a layer result: a
 * wait for the other direction sets the matching want flag. */
static ssize_t tls_result(struct net_tls *t, int r, bool reading, char *why,
			  size_t whysz)
{
	if (r > 0)
		return r;
	int err = SSL_get_error(t->ssl, r);
	int same = reading ? SSL_ERROR_WANT_READ : SSL_ERROR_WANT_WRITE;
	int other = reading ? SSL_ERROR_WANT_WRITE : SSL_ERROR_WANT_READ;
	if (err == same)
		return MOAT_NET_AGAIN;
	if (err == other) {
		t->base.want |= reading ? MOAT_NET_READ_WANTS_WRITE
					: MOAT_NET_WRITE_WANTS_READ;
		return MOAT_NET_AGAIN;
	}
	const char *op = !reading ? "write"
			 : SSL_is_init_finished(t->ssl) ? "read"
							: "handshake";
	return tls_failure(t, err, op, why, whysz);
}

static ssize_t tls_read(struct moat_net *n, uint8_t *dst, size_t len,
			char *why, size_t whysz)
{
	struct net_tls *t = (struct net_tls *)n;
	ERR_clear_error();
	errno = 0;
	int r = SSL_read(t->ssl, dst, (int)MOAT_MIN(len, (size_t)INT32_MAX));
	return tls_result(t, r, true, why, whysz);
}

static ssize_t tls_write(struct moat_net *n, const uint8_t *p, size_t len,
			 char *why, size_t whysz)
{
	struct net_tls *t = (struct net_tls *)n;
	ERR_clear_error();
	errno = 0;
	int r = SSL_write(t->ssl, p, (int)MOAT_MIN(len, (size_t)INT32_MAX));
	return tls_result(t, r, false, why, whysz);
}

static size_t tls_pending(const struct moat_net *n)
{
	int p = SSL_pending(((const struct net_tls *)n)->ssl);
	return p > 0 ? (size_t)p : 0;
}

static void tls_shutdown(struct moat_net *n)
{
	struct net_tls *t = (struct net_tls *)n;
	if (SSL_is_init_finished(t->ssl))
		(void)SSL_shutdown(t->ssl);
	ERR_clear_error();
}

static void tls_close(struct moat_net *n)
{
	SSL_free(((struct net_tls *)n)->ssl);
	moat_free(n);
}

static int tls_identity(struct moat_net *n, bool san, char *out, size_t outsz)
{
	return moat_tls_peer_identity(((struct net_tls *)n)->ssl, san, out,
				      outsz);
}

static uint64_t tls_wire_sent(const struct moat_net *n)
{
	return (uint64_t)BIO_number_written(
		SSL_get_wbio(((const struct net_tls *)n)->ssl));
}

static const struct moat_net_ops tls_ops = {
	.name = "tls",
	.read = tls_read,
	.write = tls_write,
	.pending = tls_pending,
	.shutdown = tls_shutdown,
	.close = tls_close,
	.peer_identity = tls_identity,
	.wire_sent = tls_wire_sent,
};

struct moat_net *moat_net_tls_adopt(struct moat_net *lower, SSL *ssl)
{
	struct net_tls *t = moat_calloc(1, sizeof(*t));
	if (!t)
		return NULL;
	t->ssl = ssl;
	t->base.ops = &tls_ops;
	t->base.lower = lower;
	t->base.fd = lower->fd;
	t->base.secure = true;
	return &t->base;
}

struct moat_net *moat_net_tls_new(struct moat_net *lower, SSL_CTX *ctx,
				  bool server)
{
	SSL *ssl = SSL_new(ctx);
	if (!ssl || SSL_set_fd(ssl, lower->fd) != 1) {
		SSL_free(ssl);
		return NULL;
	}
	if (server)
		SSL_set_accept_state(ssl);
	else
		SSL_set_connect_state(ssl);
	struct moat_net *n = moat_net_tls_adopt(lower, ssl);
	if (!n)
		SSL_free(ssl);
	return n;
}

SSL *moat_net_tls_ssl(struct moat_net *n)
{
	n = moat_net_find(n, "tls");
	return n ? ((struct net_tls *)n)->ssl : NULL;
}

bool moat_net_tls_established(struct moat_net *n)
{
	SSL *ssl = moat_net_tls_ssl(n);
	return !ssl || SSL_is_init_finished(ssl);
}

unsigned long moat_net_tls_error(struct moat_net *n)
{
	n = moat_net_find(n, "tls");
	return n ? ((struct net_tls *)n)->err : 0;
}
