/* Connected UDP sockets, with or without DTLS. */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <openssl/err.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/moat_common.h"
#include "dgram.h"

int moat_dgram_open(struct moat_dgram *d, const char *host, uint16_t port,
		    char *err, size_t errsz)
{
	struct addrinfo hints, *res = NULL;
	char ps[8];
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_DGRAM;
	d->fd = -1;
	d->ssl = NULL;
	d->wake_fd = -1;
	err[0] = 0;
	snprintf(ps, sizeof(ps), "%u", port);
	int g = getaddrinfo(host, ps, &hints, &res);
	if (g != 0) {
		snprintf(err, errsz, "cannot resolve %s: %s", host,
			 gai_strerror(g));
		return MOAT_EIO;
	}
	int rc = MOAT_EIO;
	for (struct addrinfo *a = res; a && d->fd < 0; a = a->ai_next) {
		d->fd = socket(a->ai_family,
			       a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
			       a->ai_protocol);
		if (d->fd >= 0 && connect(d->fd, a->ai_addr, a->ai_addrlen)) {
			snprintf(err, errsz, "cannot connect to %s:%u: %s",
				 host, port, strerror(errno));
			close(d->fd);
			d->fd = -1;
		}
	}
	if (d->fd >= 0)
		rc = MOAT_OK;
	else if (!err[0])
		snprintf(err, errsz, "socket: %s", strerror(errno));
	freeaddrinfo(res);
	return rc;
}

int moat_dgram_send(struct moat_dgram *d, const uint8_t *p, size_t n)
{
	if (d->ssl) {
		ERR_clear_error();
		return SSL_write(d->ssl, p, (int)n) == (int)n ? MOAT_OK
							      : MOAT_ETLS;
	}
	ssize_t w;
	do
		w = send(d->fd, p, n, 0);
	while (w < 0 && errno == EINTR);
	return w == (ssize_t)n ? MOAT_OK : MOAT_EIO;
}

/* One read attempt: MOAT_OK, MOAT_EAGAIN (nothing yet), or an error. */
static int read_once(struct moat_dgram *d, uint8_t *buf, size_t cap,
		     size_t *n)
{
	if (d->ssl) {
		ERR_clear_error();
		int r = SSL_read(d->ssl, buf, (int)MOAT_MIN(cap, INT32_MAX));
		if (r > 0) {
			*n = (size_t)r;
			return MOAT_OK;
		}
		int e = SSL_get_error(d->ssl, r);
		return e == SSL_ERROR_WANT_READ ? MOAT_EAGAIN : MOAT_ETLS;
	}
	ssize_t r = recv(d->fd, buf, cap, MSG_TRUNC);
	if (r < 0)
		return errno == EAGAIN || errno == EWOULDBLOCK ||
				       errno == EINTR
			       ? MOAT_EAGAIN
			       : MOAT_EIO;
	if ((size_t)r > cap)
		return MOAT_EAGAIN; /* too long for us: dropped */
	*n = (size_t)r;
	return MOAT_OK;
}

int moat_dgram_recv(struct moat_dgram *d, uint8_t *buf, size_t cap,
		    uint32_t wait_ms, size_t *n)
{
	uint64_t deadline = moat_now_ms() + wait_ms;
	for (;;) {
		int rc = read_once(d, buf, cap, n);
		if (rc != MOAT_EAGAIN)
			return rc;
		uint64_t now = moat_now_ms();
		if (now >= deadline)
			return MOAT_EAGAIN;
		struct pollfd p[2] = {{.fd = d->fd, .events = POLLIN},
				      {.fd = d->wake_fd, .events = POLLIN}};
		int k = poll(p, d->wake_fd >= 0 ? 2 : 1,
			     (int)MOAT_MIN(deadline - now, INT32_MAX));
		if (k < 0 && errno != EINTR)
			return MOAT_EIO;
		if (k > 0 && d->wake_fd >= 0 && (p[1].revents & POLLIN))
			return MOAT_ECLOSED;
	}
}

void moat_dgram_close(struct moat_dgram *d)
{
	if (d->ssl) {
		(void)SSL_shutdown(d->ssl);
		SSL_free(d->ssl);
		d->ssl = NULL;
	}
	if (d->fd >= 0)
		close(d->fd);
	d->fd = -1;
}
