#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "net_socket.h"

#define LISTEN_BACKLOG 1024

int moat_net_listen(const char *addr, uint16_t port, uint16_t *bound_port,
		    char *err, size_t errsz)
{
	struct sockaddr_storage ss;
	socklen_t sl;
	memset(&ss, 0, sizeof(ss));
	struct sockaddr_in *a4 = (struct sockaddr_in *)&ss;
	struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&ss;
	if (addr[0] && inet_pton(AF_INET, addr, &a4->sin_addr) == 1) {
		a4->sin_family = AF_INET;
		a4->sin_port = htons(port);
		sl = sizeof(*a4);
	} else {
		a6->sin6_family = AF_INET6;
		a6->sin6_port = htons(port);
		a6->sin6_addr = in6addr_any;
		if (addr[0] && inet_pton(AF_INET6, addr, &a6->sin6_addr) != 1) {
			snprintf(err, errsz, "invalid address '%s'", addr);
			errno = EINVAL;
			return -1;
		}
		sl = sizeof(*a6);
	}
	int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
			0);
	if (fd < 0) {
		snprintf(err, errsz, "socket: %s", strerror(errno));
		return -1;
	}
	int one = 1, zero = 0;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (ss.ss_family == AF_INET6 && !addr[0])
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero));
	if (bind(fd, (struct sockaddr *)&ss, sl) != 0 ||
	    listen(fd, LISTEN_BACKLOG) != 0) {
		int e = errno;
		snprintf(err, errsz, "cannot listen on %s%s%s:%u: %s",
			 ss.ss_family == AF_INET6 ? "[" : "",
			 addr[0] ? addr : "::",
			 ss.ss_family == AF_INET6 ? "]" : "", (unsigned)port,
			 strerror(e));
		close(fd);
		errno = e;
		return -1;
	}
	sl = sizeof(ss);
	getsockname(fd, (struct sockaddr *)&ss, &sl);
	*bound_port = ntohs(ss.ss_family == AF_INET ? a4->sin_port
						    : a6->sin6_port);
	return fd;
}

int moat_net_tcp_keepalive(int fd, unsigned bound_s)
{
	int on = 1;
	int idle = (int)(bound_s * 2u / 3u);
	int intvl = (int)((bound_s + 14u) / 15u);
	int cnt = 5;
	unsigned user_timeout = bound_s * 1000u;
	if (idle < 1)
		idle = 1;
	if (intvl < 1)
		intvl = 1;
	if (setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof(on)) != 0 ||
	    setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof(idle)) !=
		    0 ||
	    setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl,
		       sizeof(intvl)) != 0 ||
	    setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof(cnt)) != 0 ||
	    setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &user_timeout,
		       sizeof(user_timeout)) != 0)
		return -1;
	return 0;
}
