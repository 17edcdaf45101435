/* Listening sockets. */
#ifndef MOAT_NET_SOCKET_H
#define MOAT_NET_SOCKET_H

#include <stddef.h>
#include <stdint.h>

/* Create a non-blocking listening TCP socket on addr ("" = all addresses,
 * dual-stack) and port (0 = ephemeral).  Returns the fd, or -1 with errno
 * set and a message in err.  *bound_port receives the actual port. */
int moat_net_listen(const char *addr, uint16_t port, uint16_t *bound_port,
		    char *err, size_t errsz);

/* Turn on TCP keep-alive probes on a connected socket so that a peer that
 * vanished without a FIN is noticed within bound_s seconds: the first
 * probe after two thirds of bound_s of silence, then five more, one every
 * bound_s / 15 seconds (rounded up), and unacknowledged data given up on
 * after bound_s (TCP_USER_TIMEOUT).  0, or -1 with errno set. */
int moat_net_tcp_keepalive(int fd, unsigned bound_s);

#endif
