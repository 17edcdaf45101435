/* moat audit: the CoAP probe transport.  A connected UDP socket to the
 * target's resolved address (the kernel drops datagrams from anyone else),
 * opened at least --delay after the previous socket or connection, plain
 * or with DTLS (src/net/dgram.h).  Every datagram sent and received is
 * counted in the target's totals (printed in the report); every wait ends
 * at a deadline that never passes the run's. */
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "audit.h"

int audit_udp_open(struct audit_ctx *x, struct audit_udp *u)
{
	memset(u, 0, sizeof(*u));
	u->x = x;
	u->d.fd = -1;
	u->d.wake_fd = -1;
	audit_pace(x);
	if (audit_out_of_time(x)) {
		snprintf(u->err, sizeof(u->err), "the time budget ran out");
		return MOAT_ELIMIT;
	}
	int err = ENOENT;
	for (const struct addrinfo *ai = x->addrs; ai && u->d.fd < 0;
	     ai = ai->ai_next) {
		int fd = socket(ai->ai_family,
				SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		if (fd >= 0 && connect(fd, ai->ai_addr, ai->ai_addrlen) == 0) {
			u->d.fd = fd;
			break;
		}
		err = errno;
		if (fd >= 0)
			close(fd);
	}
	if (u->d.fd >= 0)
		return MOAT_OK;
	snprintf(u->err, sizeof(u->err), "cannot open a UDP socket to the "
		 "target: %s", strerror(err));
	return MOAT_EIO;
}

void audit_udp_close(struct audit_udp *u)
{
	if (u->d.fd >= 0 || u->d.ssl)
		moat_dgram_close(&u->d);
	u->d.fd = -1;
}

int audit_udp_send(struct audit_udp *u, const uint8_t *p, size_t n)
{
	struct audit_target *t = u->x->t;
	int rc = moat_dgram_send(&u->d, p, n);
	if (rc != MOAT_OK) {
		snprintf(u->err, sizeof(u->err), "cannot send a datagram: %s",
			 rc == MOAT_ETLS ? "DTLS error" : strerror(errno));
		return rc;
	}
	t->dg_sent++;
	t->bytes_sent += n;
	return MOAT_OK;
}

int audit_udp_recv(struct audit_udp *u, uint8_t *buf, size_t cap,
		   uint64_t deadline, size_t *n)
{
	deadline = MOAT_MIN(deadline, u->x->run->deadline);
	int left = moat_ms_left(deadline);
	if (left <= 0)
		return MOAT_EAGAIN;
	int rc = moat_dgram_recv(&u->d, buf, cap, (uint32_t)left, n);
	if (rc == MOAT_OK) {
		u->x->t->dg_recv++;
		u->x->t->bytes_recv += *n;
	} else if (rc == MOAT_EIO) {
		snprintf(u->err, sizeof(u->err), "%s",
			 errno == ECONNREFUSED
				 ? "nothing listens on that UDP port (ICMP "
				   "port unreachable)"
				 : strerror(errno));
	} else if (rc == MOAT_ETLS) {
		snprintf(u->err, sizeof(u->err), "the DTLS session failed");
	}
	return rc;
}

/* ---- the coap_client transport ------------------------------------------ */

static int io_send(void *ctx, const uint8_t *p, size_t n)
{
	return audit_udp_send(ctx, p, n);
}

static int io_recv(void *ctx, uint8_t *buf, size_t cap, uint32_t wait_ms,
		   size_t *n)
{
	return audit_udp_recv(ctx, buf, cap, moat_now_ms() + wait_ms, n);
}

void audit_udp_io(struct audit_udp *u, struct coap_io *io)
{
	io->ctx = u;
	io->send = io_send;
	io->recv = io_recv;
}
