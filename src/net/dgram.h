/* A connected datagram socket for a CoAP client: plain UDP, or DTLS over
 * it (dtls.h).  Connected, so the kernel drops datagrams from any other
 * source address.  Blocking waits are bounded and can be woken by a file
 * descriptor (a signal pipe). */
#ifndef MOAT_NET_DGRAM_H
#define MOAT_NET_DGRAM_H

#include <openssl/ssl.h>
#include <stddef.h>
#include <stdint.h>

struct moat_dgram {
	int fd;
	SSL *ssl;    /* NULL: plain UDP */
	int wake_fd; /* -1, or readable when the caller wants to stop */
};

/* Resolve host (a name or an address) and connect a non-blocking UDP
 * socket to port.  MOAT_OK, or MOAT_EIO with err set. */
int moat_dgram_open(struct moat_dgram *d, const char *host, uint16_t port,
		    char *err, size_t errsz);
/* One datagram (one DTLS record).  MOAT_OK, MOAT_EIO (errno) or
 * MOAT_ETLS. */
int moat_dgram_send(struct moat_dgram *d, const uint8_t *p, size_t n);
/* Wait up to wait_ms for one datagram into buf[0..cap).  MOAT_OK with *n;
 * MOAT_EAGAIN when the time ran out; MOAT_ECLOSED when wake_fd became
 * readable; MOAT_EIO (errno; ECONNREFUSED: nothing listens there);
 * MOAT_ETLS (the DTLS session failed or was closed by the peer).
 * Datagrams longer than cap are dropped, not truncated. */
int moat_dgram_recv(struct moat_dgram *d, uint8_t *buf, size_t cap,
		    uint32_t wait_ms, size_t *n);
/* Send close_notify on DTLS, close the socket. */
void moat_dgram_close(struct moat_dgram *d);

#endif
