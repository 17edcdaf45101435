/* `moat bench` connections: non-blocking transport stacks (src/net: TCP,
 * TLS, WebSocket) under one epoll set, and the buffers behind them.
 * Knows bytes, not MQTT. */
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "bench.h"
#include "net/net_tls.h"
#include "net/net_ws.h"
#include "net/tls_client.h"

/* ---- buffers ---------------------------------------------------------- */

uint8_t *bench_buf_reserve(struct bench_buf *b, size_t n, size_t max)
{
	if (b->off == b->len)
		b->off = b->len = 0;
	if (b->cap - b->len >= n && b->p)
		return b->p + b->len;
	size_t used = b->len - b->off;
	if (b->off && b->cap - used >= n) {
		memmove(b->p, b->p + b->off, used);
		b->off = 0;
		b->len = used;
		return b->p + b->len;
	}
	if (n > max || used > max - n)
		return NULL;
	size_t want = b->cap ? b->cap : 256;
	while (want < used + n)
		want *= 2;
	if (want > max)
		want = max;
	if (b->off) {
		memmove(b->p, b->p + b->off, used);
		b->off = 0;
		b->len = used;
	}
	uint8_t *p = moat_realloc(b->p, want);
	if (!p)
		return NULL;
	b->p = p;
	b->cap = want;
	return b->p + b->len;
}

void bench_buf_consume(struct bench_buf *b, size_t n)
{
	b->off += n;
	if (b->off >= b->len)
		b->off = b->len = 0;
}

/* ---- set-up ---------------------------------------------------------- */

static int tls_context(struct bench_net *n, const struct bench_cfg *cfg,
		       char *err, size_t errsz)
{
	struct moat_tls_client_opts o = {.cafile = cfg->cafile,
					 .insecure = cfg->insecure};
	SSL_CTX *ctx = moat_tls_client_ctx(&o, err, errsz);
	if (!ctx)
		return MOAT_ETLS;
	n->ctx = ctx;
	SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE |
				      SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	return MOAT_OK;
}

int bench_net_init(struct bench_net *n, const struct bench_cfg *cfg,
		   char *err, size_t errsz)
{
	memset(n, 0, sizeof(*n));
	n->ep = -1;
	n->host = cfg->host;
	char port[16];
	snprintf(port, sizeof(port), "%ld", cfg->port);
	if (cfg->ws) {
		n->ws_path = cfg->ws_path ? cfg->ws_path : "/mqtt";
		snprintf(n->ws_host, sizeof(n->ws_host), "%s:%s", cfg->host,
			 port);
	}
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM,
				 .ai_family = AF_UNSPEC};
	struct addrinfo *ai = NULL;
	int g = getaddrinfo(cfg->host, port, &hints, &ai);
	if (g != 0 || !ai) {
		snprintf(err, errsz, "cannot resolve %s: %s", cfg->host,
			 gai_strerror(g));
		return MOAT_EIO;
	}
	/* The first address only: every connection goes to the same place. */
	memcpy(&n->addr, ai->ai_addr, ai->ai_addrlen);
	n->addrlen = ai->ai_addrlen;
	freeaddrinfo(ai);
	/* --sub-port: the same address, another port. */
	n->sub_addr = n->addr;
	if (cfg->sub_port) {
		in_port_t p = htons((in_port_t)cfg->sub_port);
		if (n->sub_addr.ss_family == AF_INET6)
			((struct sockaddr_in6 *)&n->sub_addr)->sin6_port = p;
		else
			((struct sockaddr_in *)&n->sub_addr)->sin_port = p;
	}
	n->ep = epoll_create1(EPOLL_CLOEXEC);
	if (n->ep < 0) {
		snprintf(err, errsz, "epoll_create1: %s", strerror(errno));
		return MOAT_EIO;
	}
	if (cfg->tls)
		return tls_context(n, cfg, err, errsz);
	return MOAT_OK;
}

void bench_net_cleanup(struct bench_net *n)
{
	if (n->ep >= 0)
		close(n->ep);
	n->ep = -1;
	SSL_CTX_free(n->ctx);
	n->ctx = NULL;
}

/* ---- connecting ------------------------------------------------------- */

bool bench_conn_read_wants_write(const struct bench_conn *c)
{
	return c->net &&
	       (moat_net_wants(c->net) & MOAT_NET_READ_WANTS_WRITE) != 0;
}

bool bench_conn_write_wants_read(const struct bench_conn *c)
{
	return c->net &&
	       (moat_net_wants(c->net) & MOAT_NET_WRITE_WANTS_READ) != 0;
}

void bench_conn_update_events(struct bench_net *n, struct bench_conn *c)
{
	if (c->fd < 0)
		return;
	uint32_t want = EPOLLIN;
	/* A write that waits for input is retried when readable. */
	bool out = bench_buf_used(&c->out) && !bench_conn_write_wants_read(c);
	if (c->state == BC_CONNECTING || c->tls_handshake_wants_write ||
	    bench_conn_read_wants_write(c) || out)
		want |= EPOLLOUT;
	if (want == c->events)
		return;
	struct epoll_event ev = {.events = want, .data.ptr = c};
	int op = c->events ? EPOLL_CTL_MOD : EPOLL_CTL_ADD;
	if (epoll_ctl(n->ep, op, c->fd, &ev) == 0)
		c->events = want;
}

int bench_conn_start(struct bench_net *n, struct bench_conn *c, char *why,
		     size_t whysz)
{
	int fd = socket(n->addr.ss_family,
			SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		snprintf(why, whysz, "socket: %s", strerror(errno));
		return MOAT_EIO;
	}
	int one = 1;
	/* We batch our own writes: never wait for Nagle. */
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	c->fd = fd;
	c->net = NULL;
	c->events = 0;
	c->state = BC_CONNECTING;
	const struct sockaddr_storage *to = c->sub ? &n->sub_addr : &n->addr;
	if (connect(fd, (const struct sockaddr *)to, n->addrlen) != 0 &&
	    errno != EINPROGRESS) {
		snprintf(why, whysz, "connect: %s", strerror(errno));
		return MOAT_EIO;
	}
	bench_conn_update_events(n, c);
	if (!c->events) {
		snprintf(why, whysz, "epoll_ctl: %s", strerror(errno));
		return MOAT_EIO;
	}
	return MOAT_OK;
}

/* TLS: a session that checks the broker's name, in the stack; its
 * handshake is driven here (BC_TLS) so that failures read well. */
static int tls_start(struct bench_net *n, struct bench_conn *c, char *why,
		     size_t whysz)
{
	SSL *ssl = moat_tls_client_new(n->ctx, c->fd, n->host);
	struct moat_net *t = ssl ? moat_net_tls_adopt(c->net, ssl) : NULL;
	if (!t) {
		SSL_free(ssl);
		snprintf(why, whysz, "cannot create a TLS session");
		return -1;
	}
	c->net = t;
	c->state = BC_TLS;
	return 0;
}

static int tls_handshake(struct bench_net *n, struct bench_conn *c, char *why,
			 size_t whysz)
{
	SSL *ssl = moat_net_tls_ssl(c->net);
	ERR_clear_error();
	errno = 0;
	int r = SSL_do_handshake(ssl);
	if (r == 1) {
		c->tls_handshake_wants_write = false;
		bench_conn_update_events(n, c);
		return 1;
	}
	int err = SSL_get_error(ssl, r);
	if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
		c->tls_handshake_wants_write = err == SSL_ERROR_WANT_WRITE;
		bench_conn_update_events(n, c);
		return 0;
	}
	moat_tls_client_error(ssl, r, "TLS handshake failed", why, whysz);
	return -1;
}

/* The layers above TLS: WebSocket when asked for (its handshake runs in
 * the first write and read, the CONNECT waiting behind it). */
static int upper_layers(struct bench_net *n, struct bench_conn *c, char *why,
			size_t whysz)
{
	if (!n->ws_path)
		return 1;
	struct moat_net *w = moat_net_ws_client_new(
		c->net, n->ws_host, n->ws_path, MOAT_WS_CLIENT_MAX_FRAME);
	if (!w) {
		snprintf(why, whysz, "out of memory");
		return -1;
	}
	c->net = w;
	return 1;
}

int bench_conn_establish(struct bench_net *n, struct bench_conn *c,
			 uint32_t events, char *why, size_t whysz)
{
	if (c->state == BC_CONNECTING) {
		if (!(events & (EPOLLOUT | EPOLLERR | EPOLLHUP)))
			return 0;
		int err = 0;
		socklen_t sl = sizeof(err);
		if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &sl) != 0)
			err = errno;
		if (err) {
			snprintf(why, whysz, "connect: %s", strerror(err));
			return -1;
		}
		moat_net_tcp_init(&c->tcp, c->fd);
		c->net = &c->tcp.base;
		if (n->ctx && tls_start(n, c, why, whysz) != 0)
			return -1;
	}
	int r = n->ctx ? tls_handshake(n, c, why, whysz) : 1;
	if (r == 1 && (r = upper_layers(n, c, why, whysz)) == 1)
		c->state = BC_CONNACK; /* the caller sends CONNECT */
	return r;
}

/* ---- reading and writing ------------------------------------------------ */

long bench_conn_read(struct bench_net *n, struct bench_conn *c, uint8_t *dst,
		     size_t len, char *why, size_t whysz)
{
	bool rww = bench_conn_read_wants_write(c);
	/* A write that waited for input (a WebSocket client waiting for the
	 * server's answer behind TLS) may be satisfied by this read, which
	 * can take the answer itself: let the write try again (EPOLLOUT). */
	bool wwr = bench_conn_write_wants_read(c);
	moat_net_clear_want(c->net, MOAT_NET_READ_WANTS_WRITE |
					    MOAT_NET_WRITE_WANTS_READ);
	ssize_t r = moat_net_read(c->net, dst, len, why, whysz);
	if (r == MOAT_NET_AGAIN && (moat_net_wants(c->net) &
				    MOAT_NET_HAS_OUTPUT) &&
	    moat_net_flush(c->net, why, whysz) < 0) /* a pong, a close */
		return -1;
	if (wwr || rww != bench_conn_read_wants_write(c))
		bench_conn_update_events(n, c);
	if (r > 0)
		return (long)r;
	if (r == MOAT_NET_AGAIN)
		return 0;
	if (!strcmp(why, "connection closed by peer"))
		snprintf(why, whysz, "connection closed by the broker");
	return -1;
}

bool bench_conn_pending(const struct bench_conn *c)
{
	return c->net && moat_net_pending(c->net) > 0;
}

static long conn_write(struct bench_conn *c, const uint8_t *p, size_t len,
		       char *why, size_t whysz)
{
	moat_net_clear_want(c->net, MOAT_NET_WRITE_WANTS_READ);
	ssize_t r = moat_net_write(c->net, p, len, why, whysz);
	if (r > 0)
		return (long)r;
	return r == MOAT_NET_AGAIN ? 0 : -1; /* retried when the stack
					       * says (wants) */
}

int bench_conn_flush(struct bench_net *n, struct bench_conn *c, char *why,
		     size_t whysz)
{
	int rc = 1;
	while (bench_buf_used(&c->out)) {
		long w = conn_write(c, c->out.p + c->out.off,
				    bench_buf_used(&c->out), why, whysz);
		if (w < 0)
			return -1;
		if (w == 0) {
			rc = 0;
			break;
		}
		bench_buf_consume(&c->out, (size_t)w);
	}
	bench_conn_update_events(n, c);
	return rc;
}

void bench_conn_close(struct bench_net *n, struct bench_conn *c)
{
	if (c->fd < 0) {
		c->state = BC_CLOSED;
		return;
	}
	char why[64];
	if (c->net && bench_buf_used(&c->out) &&
	    (c->state == BC_READY || c->state == BC_SUBACK ||
	     c->state == BC_CONNACK))
		(void)conn_write(c, c->out.p + c->out.off,
				 bench_buf_used(&c->out), why, sizeof(why));
	if (c->events)
		epoll_ctl(n->ep, EPOLL_CTL_DEL, c->fd, NULL);
	if (c->net) {
		moat_net_shutdown(c->net); /* WebSocket close, close_notify */
		ERR_clear_error();
		moat_net_close(c->net); /* closes the socket */
	} else {
		close(c->fd);
	}
	c->net = NULL;
	c->fd = -1;
	c->events = 0;
	c->state = BC_CLOSED;
}

void bench_conn_free(struct bench_conn *c)
{
	moat_free(c->in.p);
	moat_free(c->out.p);
	memset(&c->in, 0, sizeof(c->in));
	memset(&c->out, 0, sizeof(c->out));
}
