/* Lingering close (as nginx's lingering_close).
 *
 * When moatd ends a connection after telling the peer why (a refusal
 * CONNACK, a server DISCONNECT), closing the socket at once loses those
 * bytes whenever the peer is still sending: input that arrives after
 * close(), or sits unread in the receive queue at close(), makes the
 * kernel answer with a reset, and the peer's TCP throws away what it had
 * received but not yet handed to the application.  So the socket is kept
 * a little longer: the rest of the last words is written, the write side
 * is shut down (FIN after the reason code), and input is read and thrown
 * away until the peer closes too, LINGER_MS pass or LINGER_BYTES have
 * been discarded.  Then it is closed.
 *
 * The connection's transport stack (net.h) comes along: the rest goes
 * through it (a WebSocket frames it), and its shutdown (a WebSocket close
 * frame, TLS close_notify) comes before the FIN.
 *
 * A lingering socket is a few dozen bytes plus what was left to write
 * (at most LINGER_OUT_MAX); it keeps its place in the per-address table
 * and in the connection count until it is closed, so max_connections and
 * max_connections_per_ip bound it like a live connection, and at most
 * LINGER_MAX_PER_WORKER linger per worker (beyond that: closed at once,
 * as before). */
#include <errno.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "broker_int.h"
#include "common/moat_common.h"

#define LINGER_MS 2000u
#define LINGER_BYTES (64u * 1024u)
#define LINGER_OUT_MAX (64u * 1024u)
#define LINGER_MAX_PER_WORKER 4096u

struct moat_linger {
	uint8_t ev_kind; /* EV_LINGER; must stay first */
	bool ip_counted;
	bool shut;       /* write side shut down: only draining now */
	bool tls;        /* TLS in the stack: its output waits for EPOLLOUT */
	int fd;
	struct moat_net *net; /* the stack, bottom layer in tcp */
	struct moat_net_tcp tcp;
	uint64_t deadline_ms;
	uint32_t drained;
	uint32_t outlen, outoff;
	union moat_sockaddr addr;
	struct moat_worker *w;
	struct moat_linger *next, *prev;
	uint8_t out[]; /* what was left to write */
};

static void linger_end(struct moat_linger *l)
{
	struct moat_worker *w = l->w;
	epoll_ctl(w->epfd, EPOLL_CTL_DEL, l->fd, NULL);
	moat_net_close(l->net); /* and the socket */
	if (l->ip_counted) {
		char pb[MOAT_PEER_STRLEN], ib[MOAT_PEER_STRLEN];
		(void)moat__format_addr(&l->addr, pb, ib);
		moat_iptab_release(&w->b->iptab, ib, w->now_ms);
	}
	MOAT_STAT_SUB(w->b, connections, 1);
	if (l->prev)
		l->prev->next = l->next;
	else
		w->lingering = l->next;
	if (l->next)
		l->next->prev = l->prev;
	w->nlingering--;
	moat_free(l);
}

/* Write what is left; -1 when the socket is finished, 0 when it would
 * block, 1 when all of it is out. */
static int write_rest(struct moat_linger *l)
{
	while (l->outoff < l->outlen) {
		char why[128];
		ssize_t r = moat_net_write(l->net, l->out + l->outoff,
					   l->outlen - l->outoff, why,
					   sizeof(why));
		if (r <= 0)
			return r == MOAT_NET_AGAIN ? 0 : -1;
		l->outoff += (uint32_t)r;
	}
	return 1;
}

/* After the last words: the layers' own ends (WebSocket close frame, TLS
 * close_notify), then FIN. */
static void shut_write(struct moat_linger *l)
{
	moat_net_shutdown(l->net);
	(void)shutdown(l->fd, SHUT_WR);
	l->shut = true;
}

/* Read and discard; false when the socket is finished with. */
static bool drain(struct moat_linger *l)
{
	uint8_t sink[4096];
	for (;;) {
		ssize_t r = recv(l->fd, sink, sizeof(sink), MSG_DONTWAIT);
		if (r > 0) {
			l->drained += (uint32_t)r;
			if (l->drained >= LINGER_BYTES)
				return false;
			continue;
		}
		return r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK ||
				 errno == EINTR);
	}
}

static bool set_events(struct moat_linger *l, int op)
{
	struct epoll_event ev = {0};
	/* TLS output pending: only writability (input waits, see
	 * progress); then only input. */
	ev.events = l->shut ? EPOLLIN
		    : l->tls ? EPOLLOUT
			     : EPOLLIN | EPOLLOUT;
	ev.data.ptr = l;
	return epoll_ctl(l->w->epfd, op, l->fd, &ev) == 0;
}

/* Push the output on; true while the linger goes on. */
static bool progress(struct moat_linger *l)
{
	if (!l->shut) {
		int r = write_rest(l);
		if (r < 0)
			return false;
		if (r > 0) {
			shut_write(l);
			if (!set_events(l, EPOLL_CTL_MOD))
				return false;
		}
	}
	/* Until the output is out, input stays where it is for TLS (it
	 * may be what SSL_write waits for); plain sockets drain at once
	 * so the receive queue never fills. */
	if (l->shut || !l->tls)
		return drain(l);
	return true;
}

bool moat__linger_start(struct moat_worker *w, struct moat_net *net,
			struct moat_net_tcp *tcp,
			const union moat_sockaddr *addr, bool ip_counted,
			const uint8_t *rest, size_t restlen)
{
	if (w->nlingering >= LINGER_MAX_PER_WORKER ||
	    restlen > LINGER_OUT_MAX || atomic_load(&w->b->stopping))
		return false;
	struct moat_linger *l = moat_malloc(sizeof(*l) + restlen);
	if (!l)
		return false;
	memset(l, 0, sizeof(*l));
	l->ev_kind = EV_LINGER;
	l->net = moat_net_move_tcp(net, tcp, &l->tcp);
	l->fd = l->tcp.base.fd;
	l->tls = moat_net_find(l->net, "tls") != NULL;
	l->w = w;
	l->addr = *addr;
	l->ip_counted = ip_counted;
	l->outlen = (uint32_t)restlen;
	if (restlen)
		memcpy(l->out, rest, restlen);
	/* (A TLS write is retried from our copy: the contexts allow a
	 * moving write buffer.) */
	if (!restlen)
		shut_write(l);
	l->deadline_ms = w->now_ms + LINGER_MS;
	l->next = w->lingering;
	if (w->lingering)
		w->lingering->prev = l;
	w->lingering = l;
	w->nlingering++;
	if (!set_events(l, EPOLL_CTL_ADD) || !progress(l))
		linger_end(l);
	return true;
}

void moat__linger_event(struct moat_linger *l, uint32_t events)
{
	if ((events & (EPOLLERR | EPOLLHUP)) || !progress(l))
		linger_end(l);
}

void moat__linger_tick(struct moat_worker *w, uint64_t now)
{
	struct moat_linger *next;
	for (struct moat_linger *l = w->lingering; l; l = next) {
		next = l->next;
		if (now >= l->deadline_ms)
			linger_end(l);
	}
}

void moat__linger_teardown(struct moat_worker *w)
{
	while (w->lingering)
		linger_end(w->lingering);
}
