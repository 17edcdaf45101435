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

#endif
