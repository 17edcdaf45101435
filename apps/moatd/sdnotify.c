/* systemd notifications without libsystemd: the sd_notify(3) datagram
 * protocol (one AF_UNIX datagram of "KEY=VALUE\n" lines to the socket
 * named by $NOTIFY_SOCKET; a leading '@' names an abstract socket).  It is
 * a documented, stable interface; writing it here keeps libsystemd and its
 * compression and crypto libraries out of the broker's address space. */
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "runas.h"

int moatd_notify(const char *state)
{
	const char *path = getenv("NOTIFY_SOCKET");
	if (!path || !path[0])
		return 0;
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	size_t n = strlen(path);
	/* Absolute paths and abstract names only; the name must fit. */
	if ((path[0] != '/' && path[0] != '@') || n >= sizeof(sa.sun_path))
		return -1;
	memcpy(sa.sun_path, path, n);
	if (path[0] == '@')
		sa.sun_path[0] = '\0';
	socklen_t len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n);
	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	/* Never wait: a reader that has stopped reading must not stall the
	 * thread that handles signals. */
	ssize_t w = sendto(fd, state, strlen(state), MSG_NOSIGNAL | MSG_DONTWAIT,
			   (const struct sockaddr *)&sa, len);
	int saved = errno;
	close(fd);
	errno = saved;
	return w == (ssize_t)strlen(state) ? 1 : -1;
}

uint64_t moatd_watchdog_usec(void)
{
	const char *pid = getenv("WATCHDOG_PID");
	const char *usec = getenv("WATCHDOG_USEC");
	char *end;
	if (!usec)
		return 0;
	if (pid) {
		long p = strtol(pid, &end, 10);
		if (*end || p != (long)getpid())
			return 0;
	}
	unsigned long long v = strtoull(usec, &end, 10);
	return *end || usec[0] == '-' ? 0 : (uint64_t)v;
}
