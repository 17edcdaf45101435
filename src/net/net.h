/* The transport stack: one byte stream to a peer, built from layers that
 * each wrap the one below (TCP -> TLS -> WebSocket; for datagrams,
 * UDP -> DTLS in the same shape).  Code above the top layer (the MQTT
 * connection, a client) sees bytes only and never branches on the
 * transport: like nginx's c->recv / c->send, swapped per layer.
 *
 * Calls never block on a non-blocking socket; on a blocking socket (the
 * command-line clients) they block like recv/send would. */
#ifndef MOAT_NET_H
#define MOAT_NET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Results of read and write besides a byte count (> 0). */
#define MOAT_NET_AGAIN 0     /* would block: wait for the socket */
#define MOAT_NET_CLOSED (-1) /* finished: closed, I/O error (why says) */
#define MOAT_NET_REFUSED (-2) /* finished: the peer broke the protocol of
			       * a layer (a handshake, a frame): worth a line
			       * in the security log */

/* What the last call of a layer waits for (struct moat_net.want). */
#define MOAT_NET_READ_WANTS_WRITE 0x01u /* a read needs the socket writable */
#define MOAT_NET_WRITE_WANTS_READ 0x02u /* a write needs it readable */
#define MOAT_NET_HAS_OUTPUT 0x04u       /* bytes of the layer's own (a
					 * handshake answer, a pong) wait
					 * for moat_net_flush */

struct moat_net;

/* One layer.  read/write return bytes moved (> 0), MOAT_NET_AGAIN or a
 * finishing code with a reason in why (whysz bytes).  A write that
 * returned MOAT_NET_AGAIN must be retried with the same bytes (they may
 * sit at another address).  Optional entries may be NULL: the stack
 * asks the layer below instead (or does nothing at the bottom). */
struct moat_net_ops {
	const char *name; /* "tcp", "tls", "ws" */
	ssize_t (*read)(struct moat_net *n, uint8_t *dst, size_t len,
			char *why, size_t whysz);
	ssize_t (*write)(struct moat_net *n, const uint8_t *p, size_t len,
			 char *why, size_t whysz);
	/* Send the layer's own pending bytes: 1 = none left, MOAT_NET_AGAIN,
	 * or a finishing code. */
	int (*flush)(struct moat_net *n, char *why, size_t whysz);
	/* Bytes the layer holds for reading that the socket will not signal
	 * again (decrypted TLS records, decoded WebSocket frames). */
	size_t (*pending)(const struct moat_net *n);
	/* End this layer's protocol, best effort and without blocking (TLS
	 * close_notify, WebSocket close frame): before the socket goes. */
	void (*shutdown)(struct moat_net *n);
	/* Release the layer (the bottom one closes the socket). */
	void (*close)(struct moat_net *n);
	/* The user name a verified client certificate stands for
	 * (moat_tls_peer_identity's rules). */
	int (*peer_identity)(struct moat_net *n, bool san, char *out,
			     size_t outsz);
	/* Bytes handed to the socket so far (progress detection). */
	uint64_t (*wire_sent)(const struct moat_net *n);
};

struct moat_net {
	const struct moat_net_ops *ops;
	struct moat_net *lower; /* NULL at the bottom */
	int fd;                 /* the socket under the whole stack */
	uint8_t want;           /* MOAT_NET_* flags of this layer */
	bool secure;            /* this layer or one below encrypts */
};

/* The bottom layer of a stream socket, kept inside its owner (no
 * allocation): plain recv/send, bytes counted for wire_sent. */
struct moat_net_tcp {
	struct moat_net base;
	uint64_t sent;
};

void moat_net_tcp_init(struct moat_net_tcp *t, int fd);

static inline ssize_t moat_net_read(struct moat_net *n, uint8_t *dst,
				    size_t len, char *why, size_t whysz)
{
	return n->ops->read(n, dst, len, why, whysz);
}

static inline ssize_t moat_net_write(struct moat_net *n, const uint8_t *p,
				     size_t len, char *why, size_t whysz)
{
	return n->ops->write(n, p, len, why, whysz);
}

/* The MOAT_NET_* flags of every layer of the stack. */
static inline unsigned moat_net_wants(const struct moat_net *n)
{
	unsigned w = 0;
	for (; n; n = n->lower)
		w |= n->want;
	return w;
}

void moat_net_clear_want(struct moat_net *n, unsigned flags);
size_t moat_net_pending(const struct moat_net *n);
/* Flush every layer's own bytes, top down: 1 when none are left. */
int moat_net_flush(struct moat_net *n, char *why, size_t whysz);
void moat_net_shutdown(struct moat_net *n);
/* Release the whole stack and close the socket.  n itself may be the
 * caller's embedded bottom layer. */
void moat_net_close(struct moat_net *n);
/* MOAT_OK, MOAT_ENOTFOUND (no verified certificate / field) or
 * MOAT_EINVAL. */
int moat_net_peer_identity(struct moat_net *n, bool san, char *out,
			   size_t outsz);
uint64_t moat_net_wire_sent(const struct moat_net *n);
/* Move the bottom layer of the stack top from *from to *to (its owner
 * is going away: a connection handing its socket to a lingering close);
 * returns the stack's new top. */
struct moat_net *moat_net_move_tcp(struct moat_net *top,
				   struct moat_net_tcp *from,
				   struct moat_net_tcp *to);
/* The layer called name ("tls", "ws") in the stack, or NULL. */
struct moat_net *moat_net_find(struct moat_net *n, const char *name);

#endif
