/* The transport stack's generic walks and its bottom layer (TCP). */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/moat_common.h"
#include "net/net.h"

void moat_net_clear_want(struct moat_net *n, unsigned flags)
{
	for (; n; n = n->lower)
		n->want = (uint8_t)(n->want & ~flags);
}

size_t moat_net_pending(const struct moat_net *n)
{
	size_t sum = 0;
	for (; n; n = n->lower)
		if (n->ops->pending)
			sum += n->ops->pending(n);
	return sum;
}

int moat_net_flush(struct moat_net *n, char *why, size_t whysz)
{
	for (; n; n = n->lower) {
		if (!n->ops->flush || !(n->want & MOAT_NET_HAS_OUTPUT))
			continue;
		int r = n->ops->flush(n, why, whysz);
		if (r != 1)
			return r;
	}
	return 1;
}

void moat_net_shutdown(struct moat_net *n)
{
	for (; n; n = n->lower)
		if (n->ops->shutdown)
			n->ops->shutdown(n);
}

void moat_net_close(struct moat_net *n)
{
	while (n) {
		struct moat_net *lower = n->lower;
		n->ops->close(n);
		n = lower;
	}
}

int moat_net_peer_identity(struct moat_net *n, bool san, char *out,
			   size_t outsz)
{
	for (; n; n = n->lower)
		if (n->ops->peer_identity)
			return n->ops->peer_identity(n, san, out, outsz);
	return MOAT_ENOTFOUND;
}

uint64_t moat_net_wire_sent(const struct moat_net *n)
{
	for (; n; n = n->lower)
		if (n->ops->wire_sent)
			return n->ops->wire_sent(n);
	return 0;
}

struct moat_net *moat_net_move_tcp(struct moat_net *top,
				   struct moat_net_tcp *from,
				   struct moat_net_tcp *to)
{
	*to = *from;
	if (top == &from->base)
		return &to->base;
	for (struct moat_net *n = top; n; n = n->lower)
		if (n->lower == &from->base)
			n->lower = &to->base;
	return top;
}

struct moat_net *moat_net_find(struct moat_net *n, const char *name)
{
	for (; n; n = n->lower)
		if (!strcmp(n->ops->name, name))
			return n;
	return NULL;
}

/* ---- TCP ----------------------------------------------------------------- */

static bool would_block(void)
{
	return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR;
}

static ssize_t tcp_read(struct moat_net *n, uint8_t *dst, size_t len,
			char *why, size_t whysz)
{
	ssize_t r = recv(n->fd, dst, len, 0);
	if (r > 0)
		return r;
	if (r < 0 && would_block())
		return MOAT_NET_AGAIN;
	snprintf(why, whysz, "%s",
		 r == 0 ? "connection closed by peer" : strerror(errno));
	return MOAT_NET_CLOSED;
}

static ssize_t tcp_write(struct moat_net *n, const uint8_t *p, size_t len,
			 char *why, size_t whysz)
{
	ssize_t r = send(n->fd, p, len, MSG_NOSIGNAL);
	if (r > 0) {
		((struct moat_net_tcp *)n)->sent += (uint64_t)r;
		return r;
	}
	if (r < 0 && would_block())
		return MOAT_NET_AGAIN;
	snprintf(why, whysz, "write error: %s",
		 r < 0 ? strerror(errno) : "no progress");
	return MOAT_NET_CLOSED;
}

static void tcp_close(struct moat_net *n)
{
	if (n->fd >= 0)
		close(n->fd);
	n->fd = -1;
}

static uint64_t tcp_wire_sent(const struct moat_net *n)
{
	return ((const struct moat_net_tcp *)n)->sent;
}

static const struct moat_net_ops tcp_ops = {
	.name = "tcp",
	.read = tcp_read,
	.write = tcp_write,
	.close = tcp_close,
	.wire_sent = tcp_wire_sent,
};

void moat_net_tcp_init(struct moat_net_tcp *t, int fd)
{
	memset(t, 0, sizeof(*t));
	t->base.ops = &tcp_ops;
	t->base.fd = fd;
}
