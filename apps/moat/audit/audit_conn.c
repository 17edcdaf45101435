/* moat audit: the probe transport.  One TCP connection (optionally TLS)
 * at a time, opened at least --delay after the previous one; every
 * blocking step waits on poll() until a deadline that never passes the
 * run's; received packets are bounded (AUDIT_MAX_PACKET) and the rest of a
 * larger one is read and dropped. */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <poll.h>
#include <stdio.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "audit.h"
#include "codec/mqtt_codec.h"
#include "net/net_tls.h"
#include "net/tls_client.h"

#define READ_CHUNK ((size_t)16384)

uint64_t audit_step_deadline(const struct audit_ctx *x)
{
	uint64_t d = moat_now_ms() + x->run->o->timeout_ms;
	return MOAT_MIN(d, x->run->deadline);
}

bool audit_out_of_time(const struct audit_ctx *x)
{
	return moat_now_ms() >= x->run->deadline;
}

void audit_sleep(const struct audit_ctx *x, unsigned ms)
{
	uint64_t until = MOAT_MIN(moat_now_ms() + ms, x->run->deadline);
	int left;
	while ((left = moat_ms_left(until)) > 0) {
		struct timespec ts = {.tv_sec = left / 1000,
				      .tv_nsec = (long)(left % 1000) * 1000000L};
		nanosleep(&ts, NULL); /* EINTR: the loop sleeps the rest */
	}
}

void audit_conn_init(struct audit_conn *c)
{
	memset(c, 0, sizeof(*c));
	c->fd = -1;
	moat_buf_init(&c->in, (size_t)AUDIT_MAX_PACKET + 5);
}

void audit_conn_close(struct audit_conn *c)
{
	if (c->ssl && (!c->net || moat_net_tls_ssl(c->net) != c->ssl))
		SSL_free(c->ssl); /* a handshake that failed: not adopted */
	if (c->net)
		moat_net_close(c->net); /* the socket (and an adopted SSL) */
	else if (c->fd >= 0)
		close(c->fd);
	c->net = NULL;
	c->ssl = NULL;
	c->fd = -1;
	moat_buf_cleanup(&c->in);
	moat_buf_init(&c->in, (size_t)AUDIT_MAX_PACKET + 5);
	c->skip = c->pending = c->pending_skip = 0;
}

/* poll() one event until deadline: 1 ready, 0 timed out, -1 error. */
static int wait_fd(int fd, short events, uint64_t deadline)
{
	for (;;) {
		struct pollfd pfd = {.fd = fd, .events = events};
		int left = moat_ms_left(deadline);
		if (left == 0)
			return 0;
		int n = poll(&pfd, 1, left);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		return n > 0 ? 1 : 0;
	}
}

static int connect_one(const struct addrinfo *ai, uint64_t deadline, int *err)
{
	int fd = socket(ai->ai_family,
			ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
			ai->ai_protocol);
	if (fd < 0) {
		*err = errno;
		return -1;
	}
	int e = 0;
	if (connect(fd, ai->ai_addr, ai->ai_addrlen) < 0) {
		e = errno;
		if (e == EINPROGRESS || e == EINTR) {
			int w = wait_fd(fd, POLLOUT, deadline);
			socklen_t len = sizeof(e);
			if (w == 0)
				e = ETIMEDOUT;
			else if (w < 0)
				e = errno;
			else if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &len))
				e = errno;
		}
	}
	if (e) {
		close(fd);
		*err = e;
		return -1;
	}
	int one = 1;
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	return fd;
}

/* Pacing: at least --delay between two connections of the run. */
void audit_pace(struct audit_ctx *x)
{
	struct audit_run *r = x->run;
	uint64_t now = moat_now_ms();
	if (r->last_open_ms && now < r->last_open_ms + r->o->delay_ms)
		audit_sleep(x, (unsigned)(r->last_open_ms + r->o->delay_ms -
					  now));
	r->last_open_ms = moat_now_ms();
}

static int tcp_open(struct audit_ctx *x, struct audit_conn *c)
{
	uint64_t deadline = audit_step_deadline(x);
	int err = ENOENT;
	for (const struct addrinfo *ai = x->addrs; ai && c->fd < 0;
	     ai = ai->ai_next)
		c->fd = connect_one(ai, deadline, &err);
	if (c->fd >= 0) {
		moat_net_tcp_init(&c->tcp, c->fd);
		c->net = &c->tcp.base;
		return MOAT_OK;
	}
	snprintf(c->err, sizeof(c->err), "cannot connect: %s%s",
		 err == ETIMEDOUT ? "no answer within the timeout"
				  : strerror(err),
		 err == ECONNREFUSED ? " (nothing listens on that port)" : "");
	return MOAT_EIO;
}

/* OpenSSL's queued errors as one line (the queue is cleared). */
/* A finishing result of the stack (why says what): MOAT_ECLOSED for a
 * clean or unclean end of stream, MOAT_ETLS for a TLS failure (an alert:
 * its OpenSSL reason kept), MOAT_EIO otherwise (message in c->err). */
static int net_fail(struct audit_conn *c, const char *why, const char *what)
{
	unsigned long e = moat_net_tls_error(c->net);
	if (!e) {
		if (strstr(why, "closed by peer") ||
		    strstr(why, strerror(ECONNRESET)) ||
		    strstr(why, strerror(EPIPE)))
			return MOAT_ECLOSED;
		snprintf(c->err, sizeof(c->err), "%s: %s", what, why);
		return MOAT_EIO;
	}
	if (ERR_GET_LIB(e) == ERR_LIB_SSL &&
	    ERR_GET_REASON(e) == SSL_R_TLSV13_ALERT_CERTIFICATE_REQUIRED)
		c->tls_alert_cert_required = true;
	c->tls_reason = ERR_GET_REASON(e);
	snprintf(c->err, sizeof(c->err), "%s", why);
	return MOAT_ETLS;
}

static void on_cert_request(SSL *ssl)
{
	struct audit_conn *c = SSL_get_app_data(ssl);
	if (c)
		c->cert_requested = true;
}

/* client_cert_cb: the server sent a CertificateRequest; we have no
 * certificate to give (0). */
static int cert_cb(SSL *ssl, X509 **x509, EVP_PKEY **pkey)
{
	(void)x509;
	(void)pkey;
	on_cert_request(ssl);
	return 0;
}

static int tls_open(struct audit_ctx *x, struct audit_conn *c, SSL_CTX *ctx)
{
	SSL_CTX_set_client_cert_cb(ctx, cert_cb);
	c->ssl = SSL_new(ctx);
	if (!c->ssl || !SSL_set_fd(c->ssl, c->fd)) {
		snprintf(c->err, sizeof(c->err), "TLS: out of memory");
		return MOAT_ENOMEM;
	}
	SSL_set_app_data(c->ssl, c);
	/* SNI and the name check (ignored under VERIFY_NONE, but
	 * SSL_get_verify_result() still reports it). */
	if (moat_tls_client_name(c->ssl, x->t->host) != MOAT_OK) {
		snprintf(c->err, sizeof(c->err), "TLS: out of memory");
		return MOAT_ENOMEM;
	}
	SSL_set_connect_state(c->ssl);
	unsigned long e = 0;
	int rc = moat_tls_client_handshake(c->ssl, audit_step_deadline(x),
					   c->err, sizeof(c->err), &e);
	if (rc == MOAT_OK) {
		struct moat_net *t = moat_net_tls_adopt(c->net, c->ssl);
		if (!t) {
			snprintf(c->err, sizeof(c->err), "TLS: out of memory");
			return MOAT_ENOMEM;
		}
		c->net = t; /* owns c->ssl from now on */
		return MOAT_OK;
	}
	c->tls_reason = ERR_GET_REASON(e);
	if (ERR_GET_LIB(e) == ERR_LIB_SSL &&
	    ERR_GET_REASON(e) == SSL_R_TLSV13_ALERT_CERTIFICATE_REQUIRED)
		c->tls_alert_cert_required = true;
	return MOAT_ETLS;
}

int audit_conn_open(struct audit_ctx *x, struct audit_conn *c, SSL_CTX *ctx)
{
	audit_conn_close(c);
	c->err[0] = '\0';
	c->cert_requested = c->tls_alert_cert_required = false;
	c->tls_reason = 0;
	c->next_id = 0;
	c->cap = x->run->deadline;
	if (audit_out_of_time(x)) {
		snprintf(c->err, sizeof(c->err), "time budget (--max-time) "
						 "used up");
		return MOAT_ELIMIT;
	}
	audit_pace(x);
	int rc = tcp_open(x, c);
	if (rc == MOAT_OK && ctx)
		rc = tls_open(x, c, ctx);
	return rc;
}

int audit_conn_send(struct audit_conn *c, const uint8_t *p, size_t n,
		    uint64_t deadline)
{
	if (c->cap)
		deadline = MOAT_MIN(deadline, c->cap);
	while (n > 0) {
		char why[300];
		moat_net_clear_want(c->net, MOAT_NET_WRITE_WANTS_READ);
		ssize_t r = moat_net_write(c->net, p, MOAT_MIN(n, 65536u), why,
					   sizeof(why));
		if (r > 0) {
			p += r;
			n -= (size_t)r;
			continue;
		}
		if (r != MOAT_NET_AGAIN)
			return net_fail(c, why, c->ssl ? "TLS write failed"
						       : "write failed");
		short ev = moat_net_wants(c->net) & MOAT_NET_WRITE_WANTS_READ
				   ? POLLIN
				   : POLLOUT;
		if (wait_fd(c->fd, ev, deadline) <= 0) {
			snprintf(c->err, sizeof(c->err),
				 "write timed out (the server reads nothing)");
			return MOAT_EIO;
		}
	}
	return MOAT_OK;
}

int audit_conn_recv(struct audit_conn *c, uint8_t *p, size_t n,
		    uint64_t deadline)
{
	if (n > 65536)
		n = 65536;
	if (c->cap)
		deadline = MOAT_MIN(deadline, c->cap);
	for (;;) {
		char why[300];
		moat_net_clear_want(c->net, MOAT_NET_READ_WANTS_WRITE);
		ssize_t r = moat_net_read(c->net, p, n, why, sizeof(why));
		if (r > 0)
			return (int)r;
		if (r != MOAT_NET_AGAIN) {
			int rc = net_fail(c, why, c->ssl ? "TLS read failed"
							 : "read failed");
			return rc == MOAT_ECLOSED ? 0 : rc;
		}
		short ev = moat_net_wants(c->net) & MOAT_NET_READ_WANTS_WRITE
				   ? POLLOUT
				   : POLLIN;
		int w = wait_fd(c->fd, ev, deadline);
		if (w == 0)
			return MOAT_EAGAIN;
		if (w < 0) {
			snprintf(c->err, sizeof(c->err), "poll failed: %s",
				 strerror(errno));
			return MOAT_EIO;
		}
	}
}

/* Drop the rest of an oversized packet as it arrives. */
static int drop_skipped(struct audit_conn *c)
{
	size_t used = moat_buf_used(&c->in);
	size_t n = MOAT_MIN(used, c->skip);
	moat_buf_consume(&c->in, n);
	c->skip -= n;
	return c->skip ? MOAT_EAGAIN : MOAT_OK;
}

/* A complete (or, when oversized, truncated) packet at the start of the
 * buffer?  MOAT_OK with pk set; MOAT_EAGAIN for more bytes. */
static int parse_buffered(struct audit_conn *c, struct audit_pkt *pk)
{
	const uint8_t *p = c->in.data + c->in.off;
	size_t avail = moat_buf_used(&c->in);
	uint8_t tf;
	uint32_t rl;
	size_t hl;
	int rc = moat_mqtt_fixed_header(p, avail, &tf, &rl, &hl);
	if (rc != MOAT_OK)
		return rc;
	size_t keep = MOAT_MIN((size_t)rl, (size_t)AUDIT_MAX_PACKET);
	if (avail - hl < keep)
		return MOAT_EAGAIN;
	c->pending = hl + keep;
	c->pending_skip = rl - keep;
	*pk = (struct audit_pkt){.first = tf,
				 .body = p + hl,
				 .len = keep,
				 .full_len = rl,
				 .truncated = keep < rl};
	return MOAT_OK;
}

/* The packet returned by the previous read is consumed only now, so that
 * its body stays valid until the next read. */
static void consume_previous(struct audit_conn *c)
{
	if (!c->pending)
		return;
	moat_buf_consume(&c->in, c->pending);
	c->skip = c->pending_skip;
	c->pending = c->pending_skip = 0;
	moat_buf_shrink(&c->in);
}

int audit_conn_read(struct audit_conn *c, uint64_t deadline,
		    struct audit_pkt *pk)
{
	consume_previous(c);
	for (;;) {
		int rc = c->skip ? drop_skipped(c) : MOAT_OK;
		if (rc == MOAT_OK) {
			rc = parse_buffered(c, pk);
			if (rc == MOAT_OK)
				return MOAT_OK;
			if (rc != MOAT_EAGAIN) {
				snprintf(c->err, sizeof(c->err),
					 "malformed packet from the server "
					 "(bad remaining length)");
				return MOAT_EMALFORMED;
			}
		}
		uint8_t *dst = moat_buf_reserve(&c->in, READ_CHUNK);
		if (!dst) {
			snprintf(c->err, sizeof(c->err), "out of memory");
			return MOAT_ENOMEM;
		}
		int n = audit_conn_recv(c, dst, READ_CHUNK, deadline);
		if (n == 0) {
			snprintf(c->err, sizeof(c->err),
				 "the server closed the connection");
			return MOAT_ECLOSED;
		}
		if (n < 0)
			return n;
		moat_buf_commit(&c->in, (size_t)n);
	}
}
