/* Shared by the harnesses that drive the broker's connections
 * (fuzz_broker, fuzz_bridge): a connection on one end of a socketpair,
 * fed like a TCP stream, and what the broker writes read and dropped. */
#ifndef MOAT_FUZZ_CONN_H
#define MOAT_FUZZ_CONN_H

#include <arpa/inet.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "broker/broker_int.h"

/* Read and drop what the broker wrote to the other end. */
static inline void fuzz_drain(int fd)
{
	uint8_t sink[65536];
	while (read(fd, sink, sizeof(sink)) > 0)
		;
}

/* A connection of w on fds[0] (the peer writes to fds[1]), from a
 * loopback address as the tests' clients are; NULL on failure. */
static inline struct moat_conn *fuzz_open_conn(struct moat_worker *w,
					       int fds[2])
{
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0,
		       fds) != 0)
		return NULL;
	union moat_sockaddr peer = {.v4 = {.sin_family = AF_INET,
					   .sin_addr.s_addr =
						   htonl(INADDR_LOOPBACK)}};
	struct moat_conn *c = moat_conn_new(w, fds[0], &peer);
	if (!c || moat_conn_attach(w, c) != MOAT_OK) {
		if (c)
			moat_conn_free(c); /* closes fds[0] */
		else
			close(fds[0]);
		close(fds[1]);
		return NULL;
	}
	MOAT_STAT_ADD(w->b, connections, 1);
	return c;
}

/* Feed bytes in chunks like a TCP stream; false once c is closed. */
static inline bool fuzz_feed(struct moat_conn *c, int peer, const uint8_t *p,
			     size_t n, size_t chunk)
{
	while (n && c->state != CONN_CLOSED) {
		size_t room = c->in.max - moat_buf_used(&c->in);
		size_t k = MOAT_MIN(MOAT_MIN(n, chunk), room);
		uint8_t *dst = k ? moat_buf_reserve(&c->in, k) : NULL;
		if (!dst)
			return false; /* input buffer full: the peer waits */
		memcpy(dst, p, k);
		moat_buf_commit(&c->in, k);
		p += k;
		n -= k;
		if (!moat_conn_process_input(c))
			return false;
		moat_conn_flush(c);
		fuzz_drain(peer);
	}
	return c->state != CONN_CLOSED;
}

#endif
