/* Blocking MQTT 3.1.1 / 5.0 client: socket I/O, packet dispatch and the
 * QoS flows.  Encoding is the codec's (codec/mqtt_codec.h, codec/mqtt5.h);
 * decoding what a server sends, refusal messages and keep-alive timing are
 * the client core's (client_proto.h), which moat bench and moat audit use
 * too.
 *
 * MQTT 5 state: the server's CONNACK limits (struct moat_client_server),
 * both topic alias tables, and the last Reason String.  A malformed packet
 * or protocol error from an MQTT 5 server is answered with DISCONNECT and
 * the matching reason code before the connection is closed.
 *
 * Reading: bytes go into a bounded buffer (max packet + 5 header bytes);
 * complete packets are dispatched in place and consumed.  Writing: one
 * packet at a time is encoded into a scratch buffer and written in full
 * (poll() for POLLOUT with a timeout), so the socket never holds a
 * half-written packet when a call returns. */
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>

#include "client.h"
#include "client_proto.h"
#include "net/net.h"
#include "net/net_tls.h"
#include "net/net_ws.h"
#include "net/tls_client.h"

#define READ_CHUNK ((size_t)65536)
#define ERR_LEN 512
#define REASON_LEN 256
#define QOS2_BITMAP_BYTES (65536 / 8)
/* Upper bound on the wait for the server's close after DISCONNECT. */
#define LINGER_MS 2000u

/* The acknowledgement a blocking call is waiting for. */
struct ack_wait {
	uint8_t type; /* MQTT_CONNACK, MQTT_PUBACK, ... */
	uint16_t id;  /* packet id; 0 for CONNACK */
	bool done;
	uint8_t *codes; /* SUBACK: receives ncodes return codes */
	size_t ncodes;
	bool session_present; /* CONNACK */
	uint8_t connack_rc;   /* CONNACK (v3 return code or v5 reason) */
	uint8_t reason;	      /* MQTT 5 PUBACK/PUBREC/PUBCOMP reason code */
};

/* One topic alias: the topic it stands for (owned; NULL = unset). */
struct alias {
	uint8_t *p;
	size_t len;
};

struct moat_client {
	int fd;
	/* The transport stack on fd (net.h): TCP, then TLS and WebSocket
	 * layers when asked for; NULL while not connected. */
	struct moat_net_tcp tcp;
	struct moat_net *net;
	struct moat_buf in;  /* received bytes; max = max_packet + 5 */
	struct moat_buf out; /* the packet being written */
	uint32_t max_packet; /* limit on a packet's remaining length */
	uint32_t timeout_ms; /* connect, acknowledgement and write timeout */
	uint16_t keepalive;  /* seconds; 0 = no PINGREQ */
	uint16_t next_id;    /* last packet id used */
	struct moat_client_keepalive ka; /* last send, outstanding PINGREQ */
	/* Bit n set: QoS 2 message n was delivered and PUBREC sent; PUBREL
	 * not yet seen.  A PUBLISH with that id is a resend, not new. */
	uint8_t *qos2_in;
	struct ack_wait *wait; /* what the current call waits for, or NULL */
	moat_client_msg_cb *msg_cb;
	void *msg_arg;
	bool connected; /* CONNACK accepted */
	bool stopped;   /* moat_client_stop() called */
	char *id;       /* client id (escaped), for debug lines */
	uint8_t version;	 /* protocol level; 0 before connect */
	uint32_t in_max_total;	 /* v5: our Maximum Packet Size; 0 = none */
	uint32_t session_expiry; /* v5: as sent in CONNECT */
	struct moat_client_server srv;
	/* v5 topic aliases: set by the server (at most alias_in_max, our
	 * Topic Alias Maximum) and by us (at most srv.topic_alias_maximum;
	 * allocated on first use). */
	struct alias *alias_in;
	uint16_t alias_in_max;
	struct alias *alias_out;
	/* v5: the DISCONNECT reason for the error being raised; 0 = derive it
	 * from the error code. */
	uint8_t fail_reason;
	char reason[REASON_LEN]; /* last Reason String, escaped */
	char err[ERR_LEN];
};

static const char *const type_names[16] = {
	"RESERVED",  "CONNECT",	  "CONNACK",	 "PUBLISH",
	"PUBACK",    "PUBREC",	  "PUBREL",	 "PUBCOMP",
	"SUBSCRIBE", "SUBACK",	  "UNSUBSCRIBE", "UNSUBACK",
	"PINGREQ",   "PINGRESP", "DISCONNECT",	 "AUTH"};

static const char *type_name(unsigned type)
{
	return type_names[type & 15];
}

__attribute__((format(printf, 3, 4))) static int
set_err(struct moat_client *c, int rc, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(c->err, sizeof(c->err), fmt, ap);
	va_end(ap);
	return rc;
}

const char *moat_client_errmsg(const struct moat_client *c)
{
	return c->err;
}

const char *moat_client_reason_string(const struct moat_client *c)
{
	return c->reason;
}

const char *moat_client_id(const struct moat_client *c)
{
	return c->id ? c->id : "";
}

uint8_t moat_client_version(const struct moat_client *c)
{
	return c->version;
}

const struct moat_client_server *moat_client_server(const struct moat_client *c)
{
	return &c->srv;
}

/* Escape untrusted bytes from the server for a message or debug line. */
static const char *esc(struct moat_bytes b, char *out, size_t outsz)
{
	return moat_log_escape(b.p, b.len, out, outsz);
}

/* The name of a reason code in a DISCONNECT (0 is not "Success" there). */
static const char *disconnect_name(uint8_t rc)
{
	return rc == RC_SUCCESS ? "Normal disconnection" : moat_mqtt_rc_name(rc);
}

/* An error for a packet that does not decode: EPROTO stays a protocol
 * error, everything else is malformed. */
static int bad_packet(struct moat_client *c, int rc, const char *what)
{
	if (rc == MOAT_EPROTO)
		return set_err(c, MOAT_EPROTO,
			       "protocol error in %s from server", what);
	return set_err(c, MOAT_EMALFORMED, "invalid %s from server: %s", what,
		       moat_strerror(rc));
}

/* Keep the Reason String of an acknowledgement we were waiting for. */
static void keep_reason(struct moat_client *c, const struct moat_mqtt_props *p)
{
	c->reason[0] = '\0';
	if (moat_props_has(p, PROP_REASON_STRING))
		esc(p->reason_string, c->reason, sizeof(c->reason));
}

static void free_aliases(struct alias *a, size_t n)
{
	if (!a)
		return;
	for (size_t i = 0; i < n; i++)
		moat_free(a[i].p);
	moat_free(a);
}

/* Set alias slot a to topic; MOAT_ENOMEM when the copy fails. */
/* Set alias slot a to topic.  On MOAT_ENOMEM the slot is left empty,
 * never with its old topic. */
static int alias_set(struct alias *a, struct moat_bytes topic)
{
	MOAT_FREE(a->p);
	a->len = 0;
	uint8_t *copy = moat_malloc(topic.len ? topic.len : 1);
	if (!copy)
		return MOAT_ENOMEM;
	memcpy(copy, topic.p, topic.len);
	a->p = copy;
	a->len = topic.len;
	return MOAT_OK;
}

struct moat_client *moat_client_new(void)
{
	struct moat_client *c = moat_calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	c->qos2_in = moat_calloc(1, QOS2_BITMAP_BYTES);
	if (!c->qos2_in) {
		moat_free(c);
		return NULL;
	}
	c->fd = -1;
	c->max_packet = MOAT_CLIENT_DEFAULT_MAX_PACKET;
	c->timeout_ms = MOAT_CLIENT_DEFAULT_TIMEOUT_MS;
	moat_buf_init(&c->in, (size_t)c->max_packet + 5);
	moat_buf_init(&c->out, (size_t)MQTT_MAX_REMAINING_LENGTH + 5);
	return c;
}

static void close_fd(struct moat_client *c)
{
	if (c->net)
		moat_net_close(c->net); /* closes the socket */
	else if (c->fd >= 0)
		close(c->fd);
	c->net = NULL;
	c->fd = -1;
	c->connected = false;
}

/* A layer's finishing result as the client's error (with a hint when
 * TLS closed before it could tell why). */
static ssize_t net_error(struct moat_client *c, ssize_t r, const char *why,
			 bool reading)
{
	SSL *ssl = moat_net_tls_ssl(c->net);
	if (reading && r == MOAT_NET_CLOSED &&
	    !strcmp(why, "connection closed by peer"))
		return set_err(c, MOAT_ECLOSED,
			       "connection closed by the server%s",
			       ssl ? moat_tls_client_hint(ssl) : "");
	return set_err(c, MOAT_EIO, "%s the server failed: %s%s",
		       reading ? "read from" : "write to", why,
		       ssl ? moat_tls_client_hint(ssl) : "");
}

void moat_client_free(struct moat_client *c)
{
	if (!c)
		return;
	close_fd(c);
	moat_buf_cleanup(&c->in);
	moat_buf_cleanup(&c->out);
	moat_free(c->qos2_in);
	moat_free(c->id);
	free_aliases(c->alias_in, c->alias_in_max);
	free_aliases(c->alias_out, c->srv.topic_alias_maximum);
	moat_free(c);
}

void moat_client_set_msg_cb(struct moat_client *c, moat_client_msg_cb *cb,
			    void *arg)
{
	c->msg_cb = cb;
	c->msg_arg = arg;
}

void moat_client_stop(struct moat_client *c)
{
	c->stopped = true;
}

bool moat_client_stopped(const struct moat_client *c)
{
	return c->stopped;
}

/* ---- socket I/O ------------------------------------------------------ */

/* One write to the transport: the bytes written (> 0), 0 when the socket
 * would block (*ev: what to wait for), or an error (message set). */
static ssize_t io_write(struct moat_client *c, const uint8_t *p, size_t len,
			short *ev)
{
	char why[300];
	*ev = POLLOUT;
	ssize_t n = moat_net_write(c->net, p, len, why, sizeof(why));
	if (n > 0)
		return n;
	if (n == MOAT_NET_AGAIN) {
		if (moat_net_wants(c->net) & MOAT_NET_WRITE_WANTS_READ)
			*ev = POLLIN;
		moat_net_clear_want(c->net, MOAT_NET_WRITE_WANTS_READ);
		return 0;
	}
	return net_error(c, n, why, false);
}

/* Write all of p[0..len).  The timeout bounds a stall, not the whole
 * write: a big message on a slow link may take longer. */
static int write_all(struct moat_client *c, const uint8_t *p, size_t len)
{
	uint64_t deadline = moat_now_ms() + c->timeout_ms;
	while (len > 0) {
		short ev;
		ssize_t n = io_write(c, p, len, &ev);
		if (n > 0) {
			p += n;
			len -= (size_t)n;
			deadline = moat_now_ms() + c->timeout_ms;
			continue;
		}
		if (n < 0)
			return (int)n;
		struct pollfd pfd = {.fd = c->fd, .events = ev};
		int left = moat_ms_left(deadline);
		if (left == 0)
			return set_err(c, MOAT_EIO,
				       "timed out writing to the server");
		if (poll(&pfd, 1, left) < 0 && errno != EINTR)
			return set_err(c, MOAT_EIO, "poll failed: %s",
				       strerror(errno));
	}
	c->ka.last_tx_ms = moat_now_ms();
	return MOAT_OK;
}

/* Send the packet encoded in c->out and empty the buffer.  A packet
 * above the server's Maximum Packet Size is not sent [MQTT-3.1.2-24]; the
 * connection stays usable. */
static int flush_out(struct moat_client *c, const char *what)
{
	int rc = MOAT_OK;
	size_t used = moat_buf_used(&c->out);
	if (c->fd < 0) {
		rc = set_err(c, MOAT_ECLOSED, "not connected");
		goto out;
	}
	if (c->srv.maximum_packet_size && used > c->srv.maximum_packet_size) {
		rc = set_err(c, MOAT_ELIMIT,
			     "%s of %zu bytes not sent: the server's Maximum "
			     "Packet Size is %u bytes",
			     type_name(c->out.data[c->out.off] >> 4), used,
			     c->srv.maximum_packet_size);
		goto out;
	}
	moat_debug("client %s sending %s", c->id ? c->id : "?", what);
	rc = write_all(c, c->out.data + c->out.off, used);
	if (rc != MOAT_OK)
		close_fd(c);
out:
	moat_buf_consume(&c->out, moat_buf_used(&c->out));
	moat_buf_shrink(&c->out);
	return rc;
}

static int send_small(struct moat_client *c, const uint8_t *p, size_t len,
		      const char *what)
{
	int rc = moat_buf_append(&c->out, p, len);
	if (rc != MOAT_OK)
		return set_err(c, rc, "out of memory");
	return flush_out(c, what);
}

static int send_ack(struct moat_client *c, enum moat_mqtt_type type,
		    uint16_t id)
{
	uint8_t pkt[4];
	char what[32];
	size_t n = moat_mqtt_ack_encode(pkt, type, id);
	snprintf(what, sizeof(what), "%s (m%u)", type_name(type), id);
	return send_small(c, pkt, n, what);
}

static int send_simple(struct moat_client *c, enum moat_mqtt_type type)
{
	uint8_t pkt[2];
	size_t n = moat_mqtt_simple_encode(pkt, type);
	return send_small(c, pkt, n, type_name(type));
}

/* One read from the transport into dst: the bytes read (> 0), 0 when
 * nothing is there yet, MOAT_ECLOSED at end of stream, or an error. */
static ssize_t io_read(struct moat_client *c, uint8_t *dst, size_t want)
{
	char why[300];
	ssize_t n = moat_net_read(c->net, dst, want, why, sizeof(why));
	if (n > 0)
		return n;
	if (n == MOAT_NET_AGAIN) {
		/* A layer's own bytes (a WebSocket pong, a close answer). */
		if (moat_net_wants(c->net) & MOAT_NET_HAS_OUTPUT &&
		    moat_net_flush(c->net, why, sizeof(why)) < 0)
			return net_error(c, MOAT_NET_CLOSED, why, false);
		return 0;
	}
	return net_error(c, n, why, true);
}

/* Bytes a layer holds (decrypted TLS records, decoded WebSocket frames)
 * that poll() cannot see. */
static bool io_pending(const struct moat_client *c)
{
	return c->net && moat_net_pending(c->net) > 0;
}

/* A read that waits for the socket to be writable (TLS). */
static bool io_read_wants_write(const struct moat_client *c)
{
	return c->net &&
	       (moat_net_wants(c->net) & MOAT_NET_READ_WANTS_WRITE) != 0;
}

/* Read what is available into c->in.  MOAT_ECLOSED at end of stream. */
static int read_some(struct moat_client *c)
{
	size_t room = c->in.max - moat_buf_used(&c->in);
	size_t want = MOAT_MIN(READ_CHUNK, room);
	if (want == 0)
		return set_err(c, MOAT_ELIMIT, "input buffer full");
	uint8_t *dst = moat_buf_reserve(&c->in, want);
	if (!dst)
		return set_err(c, MOAT_ENOMEM, "out of memory");
	ssize_t n = io_read(c, dst, want);
	if (n < 0)
		return (int)n;
	moat_buf_commit(&c->in, (size_t)n);
	return MOAT_OK;
}

/* Non-blocking connect to one address, bounded by deadline.  Returns the
 * socket, or -1 with errno set. */
static int connect_addr(const struct addrinfo *ai, uint64_t deadline)
{
	int fd = socket(ai->ai_family,
			ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
			ai->ai_protocol);
	if (fd < 0)
		return -1;
	int err = 0;
	if (connect(fd, ai->ai_addr, ai->ai_addrlen) < 0) {
		err = errno;
		while (err == EINPROGRESS || err == EINTR) {
			struct pollfd pfd = {.fd = fd, .events = POLLOUT};
			int n = poll(&pfd, 1, moat_ms_left(deadline));
			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0) {
				err = n == 0 ? ETIMEDOUT : errno;
				break;
			}
			socklen_t len = sizeof(err);
			if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
				err = errno;
		}
	}
	if (err) {
		close(fd);
		errno = err;
		return -1;
	}
	int one = 1; /* small packets, one at a time: do not delay them */
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	return fd;
}

/* Resolve and connect, trying every address of the host in turn. */
static int tcp_connect(struct moat_client *c, const char *host,
		       const char *port)
{
	struct addrinfo hints = {.ai_family = AF_UNSPEC,
				 .ai_socktype = SOCK_STREAM};
	struct addrinfo *res = NULL;
	int rc = MOAT_OK;
	int gai = getaddrinfo(host, port, &hints, &res);
	if (gai != 0) {
		rc = set_err(c, MOAT_EIO, "cannot resolve %s:%s: %s", host,
			     port, gai == EAI_SYSTEM ? strerror(errno)
						     : gai_strerror(gai));
		goto out;
	}
	uint64_t deadline = moat_now_ms() + c->timeout_ms;
	int err = ENOENT;
	for (struct addrinfo *ai = res; ai && c->fd < 0; ai = ai->ai_next) {
		c->fd = connect_addr(ai, deadline);
		if (c->fd < 0)
			err = errno;
	}
	if (c->fd < 0)
		rc = set_err(c, MOAT_EIO, "cannot connect to %s port %s: %s",
			     host, port, strerror(err));
out:
	if (res)
		freeaddrinfo(res);
	return rc;
}

/* The transport stack over the connected socket: TCP, then TLS (the
 * handshake, with the server's certificate checked against host unless
 * the context is insecure), then WebSocket (its opening handshake runs in
 * the first write and read). */
static int stack_connect(struct moat_client *c, const struct moat_client_opts *o)
{
	moat_net_tcp_init(&c->tcp, c->fd);
	c->net = &c->tcp.base;
	if (o->tls) {
		SSL *ssl = moat_tls_client_new(o->tls, c->fd, o->host);
		if (!ssl)
			return set_err(c, MOAT_ENOMEM, "out of memory");
		char why[ERR_LEN - 64];
		int rc = moat_tls_client_handshake(
			ssl, moat_now_ms() + c->timeout_ms, why, sizeof(why),
			NULL);
		struct moat_net *t = rc == MOAT_OK
					     ? moat_net_tls_adopt(c->net, ssl)
					     : NULL;
		if (!t) {
			SSL_free(ssl);
			if (rc == MOAT_OK)
				return set_err(c, MOAT_ENOMEM, "out of memory");
			return set_err(c, rc == MOAT_ETLS ? MOAT_ETLS : MOAT_EIO,
				       "%s port %s: %s", o->host, o->port, why);
		}
		c->net = t;
		moat_debug("client %s: TLS connection (%s, %s)", c->id,
			   SSL_get_version(ssl), SSL_get_cipher_name(ssl));
	}
	if (o->ws_path) {
		char host[300];
		snprintf(host, sizeof(host), "%s:%s", o->host, o->port);
		struct moat_net *w = moat_net_ws_client_new(
			c->net, host, o->ws_path, (uint64_t)c->max_packet + 5);
		if (!w)
			return set_err(c, MOAT_ENOMEM, "out of memory");
		c->net = w;
	}
	return MOAT_OK;
}

/* ---- incoming packets ------------------------------------------------ */

static bool qos2_test(const struct moat_client *c, uint16_t id)
{
	return (c->qos2_in[id >> 3] >> (id & 7)) & 1;
}

static void qos2_set(struct moat_client *c, uint16_t id, bool on)
{
	uint8_t bit = (uint8_t)(1u << (id & 7));
	if (on)
		c->qos2_in[id >> 3] |= bit;
	else
		c->qos2_in[id >> 3] &= (uint8_t)~bit;
}

static void deliver(struct moat_client *c, const struct moat_mqtt_publish5 *p5)
{
	const struct moat_mqtt_publish *p = &p5->p;
	struct moat_client_msg m = {.topic = p->topic,
				    .payload = p->payload,
				    .qos = p->qos,
				    .retain = p->retain,
				    .dup = p->dup,
				    .packet_id = p->packet_id,
				    .props = c->version == MQTT_PROTO_V5
						     ? &p5->props
						     : NULL};
	if (c->msg_cb)
		c->msg_cb(c->msg_arg, &m);
}

/* Topic Alias from the server [MQTT-3.3.2-8..10]: a topic with an alias
 * sets it, an empty topic uses it. */
static int resolve_alias(struct moat_client *c, struct moat_mqtt_publish5 *p5)
{
	if (!moat_props_has(&p5->props, PROP_TOPIC_ALIAS))
		return MOAT_OK;
	uint16_t a = p5->props.topic_alias; /* 0 was refused by the decoder */
	if (a > c->alias_in_max) {
		c->fail_reason = RC_TOPIC_ALIAS_INVALID;
		return set_err(c, MOAT_EPROTO,
			       "protocol error: topic alias %u from the server "
			       "is above our Topic Alias Maximum (%u)",
			       a, c->alias_in_max);
	}
	struct alias *e = &c->alias_in[a - 1];
	if (p5->p.topic.len) {
		if (alias_set(e, p5->p.topic) != MOAT_OK)
			return set_err(c, MOAT_ENOMEM, "out of memory");
		return MOAT_OK;
	}
	if (!e->p)
		return set_err(c, MOAT_EPROTO,
			       "protocol error: the server used topic alias %u "
			       "before setting it", a);
	p5->p.topic = (struct moat_bytes){e->p, e->len};
	return MOAT_OK;
}

static int on_publish(struct moat_client *c, uint8_t flags,
		      const uint8_t *body, size_t len)
{
	struct moat_mqtt_publish5 p5;
	struct moat_mqtt_publish *p = &p5.p;
	int rc = moat_client_publish_decode(flags, body, len, c->version, &p5);
	if (rc != MOAT_OK)
		return bad_packet(c, rc, "PUBLISH");
	if ((rc = resolve_alias(c, &p5)) != MOAT_OK)
		return rc;
	char topic[128], alias[32] = "";
	if (moat_props_has(&p5.props, PROP_TOPIC_ALIAS))
		snprintf(alias, sizeof(alias), " (topic alias %u)",
			 p5.props.topic_alias);
	moat_debug("client %s received PUBLISH (d%d, q%u, r%d, m%u, '%s', "
		   "... (%zu bytes))%s",
		   c->id, p->dup, p->qos, p->retain, p->packet_id,
		   esc(p->topic, topic, sizeof(topic)), p->payload.len, alias);
	/* After stop: neither deliver nor acknowledge, so that a persistent
	 * session keeps the message for the next connection. */
	if (c->stopped)
		return MOAT_OK;
	if (p->qos == 2 && qos2_test(c, p->packet_id)) {
		/* A resend of a message we already delivered. */
		moat_debug("client %s: duplicate QoS 2 message %u not "
			   "delivered again", c->id, p->packet_id);
		return send_ack(c, MQTT_PUBREC, p->packet_id);
	}
	deliver(c, &p5); /* deliver first, then acknowledge */
	if (p->qos == 1)
		return send_ack(c, MQTT_PUBACK, p->packet_id);
	if (p->qos == 2) {
		qos2_set(c, p->packet_id, true);
		return send_ack(c, MQTT_PUBREC, p->packet_id);
	}
	return MOAT_OK;
}

static int on_pubrel(struct moat_client *c, const uint8_t *body, size_t len)
{
	uint16_t id;
	uint8_t reason;
	struct moat_mqtt_props props;
	int rc = moat_mqtt_decode_ack_v(body, len, c->version, &id, &reason,
					&props);
	if (rc != MOAT_OK)
		return bad_packet(c, rc, "PUBREL");
	moat_debug("client %s received PUBREL (m%u)", c->id, id);
	qos2_set(c, id, false);
	/* Answer even an unknown id: the server may be finishing a flow of
	 * an earlier connection of this session. */
	return send_ack(c, MQTT_PUBCOMP, id);
}

/* PUBACK, PUBREC, PUBCOMP: match the call that waits for it. */
static int on_ack(struct moat_client *c, uint8_t type, const uint8_t *body,
		  size_t len)
{
	uint16_t id;
	uint8_t reason;
	struct moat_mqtt_props props;
	int rc = moat_mqtt_decode_ack_v(body, len, c->version, &id, &reason,
					&props);
	if (rc != MOAT_OK)
		return bad_packet(c, rc, type_name(type));
	if (reason)
		moat_debug("client %s received %s (m%u, rc 0x%02x %s)", c->id,
			   type_name(type), id, reason,
			   moat_mqtt_rc_name(reason));
	else
		moat_debug("client %s received %s (m%u)", c->id,
			   type_name(type), id);
	struct ack_wait *w = c->wait;
	if (w && !w->done && w->type == type && w->id == id) {
		w->done = true;
		w->reason = reason;
		keep_reason(c, &props);
	} else {
		moat_debug("client %s: ignoring unexpected %s (m%u)", c->id,
			   type_name(type), id);
	}
	return MOAT_OK;
}

/* SUBACK and UNSUBACK: packet id, (v5) properties, one code per filter
 * [MQTT-3.8.4-5] [MQTT-3.11.3-1]. */
static int on_sub_ack(struct moat_client *c, uint8_t type, const uint8_t *body,
		      size_t len)
{
	const char *what = type_name(type);
	struct moat_client_suback sa;
	int rc = moat_client_suback_decode(type, body, len, c->version, &sa);
	if (rc == MOAT_EPROTO)
		return set_err(c, MOAT_EPROTO, "invalid %s return code from "
					       "server", what);
	if (rc != MOAT_OK)
		return bad_packet(c, rc, what);
	moat_debug("client %s received %s (m%u, %zu codes)", c->id, what,
		   sa.packet_id, sa.ncodes);
	struct ack_wait *w = c->wait;
	if (!w || w->done || w->type != type || w->id != sa.packet_id) {
		moat_debug("client %s: ignoring unexpected %s", c->id, what);
		return MOAT_OK;
	}
	if (type == MQTT_SUBACK && sa.ncodes != w->ncodes)
		return set_err(c, MOAT_EPROTO,
			       "SUBACK has %zu return codes for %zu filters",
			       sa.ncodes, w->ncodes);
	if (w->codes)
		memcpy(w->codes, sa.codes, MOAT_MIN(sa.ncodes, w->ncodes));
	keep_reason(c, &sa.props);
	w->done = true;
	return MOAT_OK;
}

/* Apply an accepted MQTT 5 CONNACK's properties. */
static int take_server_limits(struct moat_client *c,
			      const struct moat_mqtt_props *p)
{
	struct moat_client_server *s = &c->srv;
	if (moat_props_has(p, PROP_SESSION_EXPIRY))
		s->session_expiry = p->session_expiry;
	if (moat_props_has(p, PROP_RECEIVE_MAXIMUM))
		s->receive_maximum = p->receive_maximum;
	if (moat_props_has(p, PROP_MAXIMUM_PACKET_SIZE))
		s->maximum_packet_size = p->maximum_packet_size;
	if (moat_props_has(p, PROP_TOPIC_ALIAS_MAXIMUM))
		s->topic_alias_maximum = p->topic_alias_maximum;
	if (moat_props_has(p, PROP_MAXIMUM_QOS))
		s->maximum_qos = p->maximum_qos;
	if (moat_props_has(p, PROP_RETAIN_AVAILABLE))
		s->retain_available = p->retain_available;
	if (moat_props_has(p, PROP_WILDCARD_SUB_AVAILABLE))
		s->wildcard_available = p->wildcard_available;
	if (moat_props_has(p, PROP_SUB_ID_AVAILABLE))
		s->subid_available = p->subid_available;
	if (moat_props_has(p, PROP_SHARED_SUB_AVAILABLE))
		s->shared_available = p->shared_available;
	if (moat_props_has(p, PROP_SERVER_KEEPALIVE)) {
		/* [MQTT-3.2.2-21]: the server's keep-alive replaces ours. */
		s->server_keepalive = p->server_keepalive;
		c->keepalive = p->server_keepalive;
	}
	if (moat_props_has(p, PROP_ASSIGNED_CLIENT_ID)) {
		char buf[256];
		char *id = moat_strdup(esc(p->assigned_client_id, buf,
					   sizeof(buf)));
		if (!id)
			return set_err(c, MOAT_ENOMEM, "out of memory");
		moat_debug("client %s: the server assigned the client id %s",
			   c->id, id);
		moat_free(c->id);
		c->id = id;
	}
	moat_debug("client %s: server limits: receive maximum %u, maximum "
		   "packet size %u, topic alias maximum %u, maximum QoS %u, "
		   "retain %savailable, keep-alive %u, session expiry %u",
		   c->id, s->receive_maximum, s->maximum_packet_size,
		   s->topic_alias_maximum, s->maximum_qos,
		   s->retain_available ? "" : "not ", c->keepalive,
		   s->session_expiry);
	return MOAT_OK;
}

static int on_connack(struct moat_client *c, const uint8_t *body,
		      size_t len)
{
	struct ack_wait *w = c->wait;
	struct moat_client_connack ca;
	if (c->connected || !w || w->type != MQTT_CONNACK)
		return set_err(c, MOAT_EPROTO, "unexpected CONNACK from server");
	int rc = moat_client_connack_decode(body, len, c->version, &ca);
	if (rc != MOAT_OK)
		return bad_packet(c, rc, "CONNACK");
	moat_debug("client %s received CONNACK (0x%02x, session present %d)",
		   c->id, ca.rc, ca.session_present);
	w->session_present = ca.session_present;
	w->connack_rc = ca.rc;
	w->done = true;
	if (ca.rc) {
		char why[ERR_LEN];
		set_err(c, MOAT_EDENIED, "%s",
			moat_client_connack_refusal(&ca, why, sizeof(why)));
		return MOAT_OK;
	}
	return ca.version == MQTT_PROTO_V5 ? take_server_limits(c, &ca.props)
					   : MOAT_OK;
}

/* DISCONNECT from an MQTT 5 server: print why it closes. */
static int on_disconnect(struct moat_client *c, const uint8_t *body,
			 size_t len)
{
	uint8_t reason;
	struct moat_mqtt_props p;
	int rc = moat_mqtt_decode_disconnect_v(body, len, c->version, &reason,
					       &p);
	if (rc != MOAT_OK)
		return bad_packet(c, rc, "DISCONNECT");
	char why[REASON_LEN], ref[REASON_LEN];
	bool has_why = moat_props_has(&p, PROP_REASON_STRING);
	bool has_ref = moat_props_has(&p, PROP_SERVER_REFERENCE);
	if (has_why)
		esc(p.reason_string, why, sizeof(why));
	if (has_ref)
		esc(p.server_reference, ref, sizeof(ref));
	moat_debug("client %s received DISCONNECT (0x%02x)", c->id, reason);
	return set_err(c, MOAT_ECLOSED,
		       "disconnected by the server: %s (0x%02X)%s%s%s%s%s",
		       disconnect_name(reason), reason, has_why ? ": " : "",
		       has_why ? why : "",
		       has_ref ? " (server reference: " : "",
		       has_ref ? ref : "", has_ref ? ")" : "");
}

static int handle_packet(struct moat_client *c, uint8_t type_flags,
			 const uint8_t *body, size_t len)
{
	uint8_t type = type_flags >> 4;
	bool v5 = c->version == MQTT_PROTO_V5;
	if (v5 && type_flags == 0xF0) /* AUTH [MQTT-3.15] */
		return set_err(c, MOAT_EPROTO,
			       "the server asked for enhanced authentication "
			       "(AUTH), which moat does not support");
	if (moat_mqtt_check_flags(type_flags) != MOAT_OK)
		return set_err(c, MOAT_EMALFORMED,
			       "malformed packet from server (first byte "
			       "0x%02x)", type_flags);
	if (!c->connected && type != MQTT_CONNACK) /* [MQTT-3.2.0-1] */
		return set_err(c, MOAT_EPROTO,
			       "protocol error: expected CONNACK, got %s",
			       type_name(type));
	switch (type) {
	case MQTT_CONNACK:
		return on_connack(c, body, len);
	case MQTT_PUBLISH:
		return on_publish(c, type_flags & 0x0F, body, len);
	case MQTT_PUBACK:
	case MQTT_PUBREC:
	case MQTT_PUBCOMP:
		return on_ack(c, type, body, len);
	case MQTT_PUBREL:
		return on_pubrel(c, body, len);
	case MQTT_SUBACK:
	case MQTT_UNSUBACK:
		return on_sub_ack(c, type, body, len);
	case MQTT_PINGRESP:
		if (len != 0)
			return set_err(c, MOAT_EMALFORMED,
				       "invalid PINGRESP from server");
		moat_debug("client %s received PINGRESP", c->id);
		moat_client_ka_pong(&c->ka);
		return MOAT_OK;
	case MQTT_DISCONNECT:
		if (v5)
			return on_disconnect(c, body, len);
		break; /* a 3.1.1 server never sends DISCONNECT */
	default:
		break;
	}
	return set_err(c, MOAT_EPROTO, "protocol error: server sent %s",
		       type_name(type));
}

/* Dispatch every complete packet in c->in.  Stops early once the awaited
 * acknowledgement has arrived, leaving later packets for the next call. */
static int process_input(struct moat_client *c)
{
	int rc = MOAT_OK;
	while (!(c->wait && c->wait->done) && moat_buf_used(&c->in) > 0) {
		const uint8_t *p = c->in.data + c->in.off;
		size_t avail = moat_buf_used(&c->in);
		uint8_t tf;
		uint32_t rl;
		size_t hl;
		rc = moat_mqtt_fixed_header(p, avail, &tf, &rl, &hl);
		if (rc == MOAT_EAGAIN) {
			rc = MOAT_OK;
			break;
		}
		if (rc != MOAT_OK)
			return set_err(c, rc, "malformed packet from server "
					      "(bad remaining length)");
		if (rl > c->max_packet ||
		    (c->in_max_total && hl + rl > c->in_max_total)) {
			c->fail_reason = RC_PACKET_TOO_LARGE;
			return set_err(c, MOAT_ELIMIT,
				       "packet from server too large (%zu "
				       "bytes, limit %u)", hl + rl,
				       c->in_max_total ? c->in_max_total
						       : c->max_packet);
		}
		if (avail - hl < rl)
			break;
		rc = handle_packet(c, tf, p + hl, rl);
		if (rc != MOAT_OK)
			return rc;
		moat_buf_consume(&c->in, hl + rl);
	}
	moat_buf_shrink(&c->in);
	return rc;
}

/* ---- the wait loop ----------------------------------------------------- */

#define NO_DEADLINE UINT64_MAX

/* Keep-alive (client_proto.h): PINGREQ when due; give up when its
 * PINGRESP is late.  *next_ms is the time until the next check, -1 for
 * none. */
static int keep_alive(struct moat_client *c, int *next_ms)
{
	c->ka.interval_ms = c->connected ? c->keepalive * 1000u : 0;
	switch (moat_client_ka_check(&c->ka, moat_now_ms(), next_ms)) {
	case MOAT_KA_TIMEOUT:
		return set_err(c, MOAT_EIO,
			       "no PINGRESP from the server within %u s",
			       c->keepalive);
	case MOAT_KA_PING: {
		int rc = send_simple(c, MQTT_PINGREQ);
		if (rc == MOAT_OK) {
			moat_client_ka_pinged(&c->ka, moat_now_ms());
			*next_ms = (int)c->ka.interval_ms;
		}
		return rc;
	}
	default:
		return MOAT_OK;
	}
}

/* MQTT 5 [MQTT-4.13.1]: tell the server why we close on its malformed
 * packet or protocol error.  One non-blocking send, best effort; it never
 * changes the error message. */
static void send_fail_disconnect(struct moat_client *c, int rc)
{
	uint8_t reason = c->fail_reason;
	c->fail_reason = 0;
	if (c->version != MQTT_PROTO_V5 || !c->connected || c->fd < 0)
		return;
	if (!reason && (rc == MOAT_EMALFORMED || rc == MOAT_EUTF8))
		reason = RC_MALFORMED;
	else if (!reason && rc == MOAT_EPROTO)
		reason = RC_PROTOCOL_ERROR;
	if (!reason)
		return;
	uint8_t pkt[4] = {MQTT_DISCONNECT << 4, 2, reason, 0};
	moat_debug("client %s sending DISCONNECT (0x%02x %s)", c->id, reason,
		   moat_mqtt_rc_name(reason));
	char keep[ERR_LEN]; /* a failed send must not replace the message */
	memcpy(keep, c->err, sizeof(keep));
	short ev;
	(void)io_write(c, pkt, sizeof(pkt), &ev); /* the socket is
						   * non-blocking */
	memcpy(c->err, keep, sizeof(keep));
}

struct pump_result {
	bool extra_ready; /* extra_fd is readable */
	bool interrupted; /* poll() returned EINTR (a signal) */
};

static int pump_poll(struct moat_client *c, int timeout, int extra_fd,
		     struct pump_result *res)
{
	short ev = (short)(POLLIN | (io_read_wants_write(c) ? POLLOUT : 0));
	struct pollfd pfd[2] = {{.fd = c->fd, .events = ev},
				{.fd = extra_fd, .events = POLLIN}};
	bool pending = io_pending(c);
	int n = poll(pfd, extra_fd >= 0 ? 2 : 1, pending ? 0 : timeout);
	if (n < 0 && errno == EINTR) {
		res->interrupted = true;
		return MOAT_OK;
	}
	if (n < 0)
		return set_err(c, MOAT_EIO, "poll failed: %s", strerror(errno));
	if (extra_fd >= 0 && pfd[1].revents)
		res->extra_ready = true;
	if (!pfd[0].revents && !pending)
		return MOAT_OK;
	int rc = read_some(c);
	return rc == MOAT_OK ? process_input(c) : rc;
}

/* One round: dispatch buffered packets, keep alive, wait (at most until
 * deadline) for input, read and dispatch it.  On error the connection is
 * closed. */
static int pump(struct moat_client *c, uint64_t deadline, int extra_fd,
		struct pump_result *res)
{
	int rc = process_input(c);
	if (rc != MOAT_OK)
		goto out;
	if (c->wait ? c->wait->done : c->stopped)
		goto out;
	int ka_ms;
	rc = keep_alive(c, &ka_ms);
	if (rc != MOAT_OK)
		goto out;
	int timeout = deadline == NO_DEADLINE ? -1 : moat_ms_left(deadline);
	if (ka_ms >= 0 && (timeout < 0 || ka_ms < timeout))
		timeout = ka_ms;
	rc = pump_poll(c, timeout, extra_fd, res);
out:
	if (rc != MOAT_OK) {
		send_fail_disconnect(c, rc);
		close_fd(c);
	}
	return rc;
}

static int check_conn(struct moat_client *c)
{
	if (c->fd >= 0 && c->connected)
		return MOAT_OK;
	if (c->err[0]) /* keep the message of the error that closed it */
		return MOAT_ECLOSED;
	return set_err(c, MOAT_ECLOSED, "not connected");
}

/* Run until w is done or the timeout expires.  Signals do not interrupt
 * it: a flow, once started, is either completed or timed out. */
static int wait_ack(struct moat_client *c, struct ack_wait *w)
{
	uint64_t deadline = moat_now_ms() + c->timeout_ms;
	int rc = MOAT_OK;
	c->wait = w;
	while (!w->done) {
		if (moat_ms_left(deadline) == 0) {
			rc = set_err(c, MOAT_EIO,
				     "timed out waiting for %s from the server",
				     type_name(w->type));
			close_fd(c);
			break;
		}
		struct pump_result res = {0};
		rc = pump(c, deadline, -1, &res);
		if (rc != MOAT_OK)
			break;
	}
	c->wait = NULL;
	return rc;
}

int moat_client_loop(struct moat_client *c, int timeout_ms, int extra_fd,
		     bool *extra_ready)
{
	uint64_t deadline = timeout_ms < 0
				    ? NO_DEADLINE
				    : moat_now_ms() + (uint64_t)timeout_ms;
	struct pump_result res = {0};
	int rc = check_conn(c);
	while (rc == MOAT_OK && !c->stopped && !res.extra_ready &&
	       !res.interrupted) {
		rc = pump(c, deadline, extra_fd, &res);
		if (deadline != NO_DEADLINE && moat_ms_left(deadline) == 0)
			break;
	}
	if (extra_ready)
		*extra_ready = res.extra_ready;
	return rc;
}


/* Validate properties the caller gives (wire-encoded, without their
 * length) for ctx.  *out receives the numeric values; its byte fields are
 * cleared, as they would point into a scratch copy. */
static int check_props(struct moat_client *c, const struct moat_bytes *raw,
		       enum moat_mqtt_prop_ctx ctx, const char *what,
		       struct moat_mqtt_props *out)
{
	memset(out, 0, sizeof(*out));
	if (!raw || !raw->len)
		return MOAT_OK;
	if (c->version != MQTT_PROTO_V5)
		return set_err(c, MOAT_EINVAL, "%s properties need MQTT 5",
			       what);
	if (raw->len > MQTT_MAX_REMAINING_LENGTH)
		return set_err(c, MOAT_ELIMIT, "%s properties too large",
			       what);
	uint8_t *tmp = moat_malloc(raw->len + 4);
	if (!tmp)
		return set_err(c, MOAT_ENOMEM, "out of memory");
	size_t n = moat_mqtt_varint_write(tmp, (uint32_t)raw->len);
	memcpy(tmp + n, raw->p, raw->len);
	struct moat_rd rd;
	moat_rd_init(&rd, tmp, n + raw->len);
	int rc = moat_mqtt_props_read(&rd, ctx, out);
	moat_free(tmp);
	out->content_type = out->response_topic = out->correlation_data =
		out->assigned_client_id = out->auth_method = out->auth_data =
			out->response_info = out->server_reference =
				out->reason_string = (struct moat_bytes){0};
	out->raw = *raw;
	if (rc != MOAT_OK)
		return set_err(c, MOAT_EINVAL, "invalid %s properties: %s",
			       what, moat_strerror(rc));
	return MOAT_OK;
}

/* ---- the calls ------------------------------------------------------- */

static uint16_t next_packet_id(struct moat_client *c)
{
	c->next_id = (uint16_t)(c->next_id + 1);
	if (c->next_id == 0) /* 0 is not a packet id [MQTT-2.3.1-1] */
		c->next_id = 1;
	return c->next_id;
}

/* Our own MQTT 5 limits, from the CONNECT properties. */
static int take_own_limits(struct moat_client *c,
			   const struct moat_client_opts *o)
{
	struct moat_mqtt_props p, wp;
	int rc = check_props(c, &o->props, PCTX_CONNECT, "CONNECT", &p);
	if (rc == MOAT_OK)
		rc = check_props(c, &o->will_props, PCTX_WILL, "will", &wp);
	if (rc != MOAT_OK)
		return rc;
	if (o->will_props.len && !o->connect.will_topic)
		return set_err(c, MOAT_EINVAL, "will properties without a will");
	c->session_expiry = p.session_expiry;
	c->srv.session_expiry = p.session_expiry;
	if (moat_props_has(&p, PROP_MAXIMUM_PACKET_SIZE)) {
		c->in_max_total = p.maximum_packet_size;
		c->max_packet = MOAT_MIN(c->max_packet, c->in_max_total);
	}
	if (p.topic_alias_maximum) {
		c->alias_in = moat_calloc(p.topic_alias_maximum,
					  sizeof(*c->alias_in));
		if (!c->alias_in)
			return set_err(c, MOAT_ENOMEM, "out of memory");
		c->alias_in_max = p.topic_alias_maximum;
	}
	return MOAT_OK;
}

static int apply_opts(struct moat_client *c, const struct moat_client_opts *o)
{
	if (c->fd >= 0 || c->connected || c->id)
		return set_err(c, MOAT_EINVAL, "client already connected");
	if (!o->host || !o->port || !o->connect.client_id)
		return set_err(c, MOAT_EINVAL, "host, port and client id "
					       "are required");
	uint8_t v = o->connect.proto_level;
	if (v != MQTT_PROTO_V31 && v != MQTT_PROTO_V311 && v != MQTT_PROTO_V5)
		return set_err(c, MOAT_EINVAL, "unknown protocol level %u", v);
	c->version = v;
	c->srv = (struct moat_client_server){.receive_maximum = 65535,
					     .maximum_qos = 2,
					     .retain_available = true,
					     .wildcard_available = true,
					     .subid_available = true,
					     .shared_available = true};
	if (o->max_packet)
		c->max_packet = MOAT_MIN(o->max_packet,
					 MQTT_MAX_REMAINING_LENGTH);
	if (o->timeout_ms)
		c->timeout_ms = o->timeout_ms;
	c->keepalive = o->connect.keepalive;
	int rc = take_own_limits(c, o);
	if (rc != MOAT_OK)
		return rc;
	c->in.max = (size_t)c->max_packet + 5;
	/* For messages only: escaped, and "(empty)" until the server
	 * assigns one. */
	char idbuf[256];
	const char *cid = o->connect.client_id;
	c->id = moat_strdup(cid[0] ? moat_log_escape((const uint8_t *)cid,
						      strlen(cid), idbuf,
						      sizeof(idbuf))
				   : "(empty)");
	return c->id ? MOAT_OK : set_err(c, MOAT_ENOMEM, "out of memory");
}

int moat_client_connect(struct moat_client *c,
			const struct moat_client_opts *o,
			bool *session_present)
{
	struct ack_wait w = {.type = MQTT_CONNACK};
	int rc = apply_opts(c, o);
	if (rc != MOAT_OK)
		return rc;
	/* Encode first: options that do not fit fail before any I/O. */
	struct moat_mqtt_connect_opts co = o->connect;
	co.props = &o->props;
	co.will_props = &o->will_props;
	rc = moat_mqtt_connect_encode(&c->out, &co);
	if (rc != MOAT_OK) {
		rc = set_err(c, MOAT_EINVAL,
			     "CONNECT does not encode (a field is longer "
			     "than 65535 bytes?)");
		goto out;
	}
	if ((rc = tcp_connect(c, o->host, o->port)) != MOAT_OK ||
	    (rc = stack_connect(c, o)) != MOAT_OK ||
	    (rc = flush_out(c, "CONNECT")) != MOAT_OK ||
	    (rc = wait_ack(c, &w)) != MOAT_OK)
		goto out;
	if (w.connack_rc != 0) { /* the message was set from the CONNACK */
		rc = MOAT_EDENIED;
		goto out;
	}
	c->connected = true;
	if (session_present)
		*session_present = w.session_present;
out:
	if (rc != MOAT_OK) {
		moat_buf_consume(&c->out, moat_buf_used(&c->out));
		close_fd(c);
	}
	return rc;
}

static int check_publish(struct moat_client *c, const char *topic,
			 size_t tlen, uint8_t qos, bool retain)
{
	if (qos > 2)
		return set_err(c, MOAT_EINVAL, "invalid QoS %u", qos);
	if (tlen > 65535 || !moat_utf8_valid((const uint8_t *)topic, tlen) ||
	    !moat_topic_name_valid((const uint8_t *)topic, tlen))
		return set_err(c, MOAT_EINVAL, "invalid topic name");
	int rc = check_conn(c);
	if (rc != MOAT_OK)
		return rc;
	/* What the server said it does not accept [MQTT-3.2.2-11,14]. */
	if (qos > c->srv.maximum_qos)
		return set_err(c, MOAT_EINVAL, "QoS %u is above the server's "
					       "Maximum QoS (%u)", qos,
			       c->srv.maximum_qos);
	if (retain && !c->srv.retain_available)
		return set_err(c, MOAT_EINVAL, "the server does not support "
					       "retained messages (Retain "
					       "Available 0)");
	return MOAT_OK;
}

/* Topic Alias of an outgoing PUBLISH [MQTT-3.3.2-7..12].  *slot is the
 * alias entry; *omit_topic when the server already knows the topic. */
static int out_alias(struct moat_client *c, const struct moat_mqtt_props *p,
		     const char *topic, size_t tlen, struct alias **slot,
		     bool *omit_topic)
{
	*slot = NULL;
	*omit_topic = false;
	if (!moat_props_has(p, PROP_TOPIC_ALIAS))
		return MOAT_OK;
	uint16_t a = p->topic_alias;
	if (a > c->srv.topic_alias_maximum)
		return set_err(c, MOAT_EINVAL, "topic alias %u is above the "
					       "server's Topic Alias Maximum "
					       "(%u)", a,
			       c->srv.topic_alias_maximum);
	if (!c->alias_out) {
		c->alias_out = moat_calloc(c->srv.topic_alias_maximum,
					   sizeof(*c->alias_out));
		if (!c->alias_out)
			return set_err(c, MOAT_ENOMEM, "out of memory");
	}
	*slot = &c->alias_out[a - 1];
	*omit_topic = (*slot)->p && (*slot)->len == tlen &&
		      memcmp((*slot)->p, topic, tlen) == 0;
	return MOAT_OK;
}

static int publish_refused(struct moat_client *c, const struct ack_wait *w)
{
	return set_err(c, MOAT_EDENIED,
		       "publish refused by the server: %s (0x%02X)%s%s",
		       moat_mqtt_rc_name(w->reason), w->reason,
		       c->reason[0] ? ": " : "", c->reason);
}

/* Wait for the acknowledgements of an outgoing QoS 1 or 2 message.  An
 * MQTT 5 reason code >= 0x80 ends the flow (MQTT 5 §4.3.2, §4.3.3). */
static int publish_flow(struct moat_client *c, uint8_t qos, uint16_t id)
{
	struct ack_wait w = {.type = qos == 1 ? MQTT_PUBACK : MQTT_PUBREC,
			     .id = id};
	int rc = wait_ack(c, &w);
	if (rc != MOAT_OK)
		return rc;
	if (w.reason >= 0x80)
		return publish_refused(c, &w);
	if (qos == 1)
		return MOAT_OK;
	rc = send_ack(c, MQTT_PUBREL, id);
	if (rc != MOAT_OK)
		return rc;
	w = (struct ack_wait){.type = MQTT_PUBCOMP, .id = id};
	rc = wait_ack(c, &w);
	if (rc == MOAT_OK && w.reason >= 0x80)
		rc = publish_refused(c, &w);
	return rc;
}

/* Encode a PUBLISH into c->out; stlen is the topic length as sent (0 when
 * a topic alias stands for it). */
static int encode_publish(struct moat_client *c, const char *topic,
			  size_t stlen, const void *payload, size_t len,
			  uint8_t qos, bool retain, uint16_t id,
			  const struct moat_bytes *props)
{
	bool v5 = c->version == MQTT_PROTO_V5;
	size_t fixed = 2 + stlen + (qos ? 2u : 0u) + (v5 ? moat_props_wire_size(props) : 0);
	if (fixed > MQTT_MAX_REMAINING_LENGTH ||
	    len > MQTT_MAX_REMAINING_LENGTH - fixed)
		return set_err(c, MOAT_ELIMIT,
			       "message too large: %zu bytes (MQTT allows at "
			       "most %zu with this topic)", len,
			       fixed > MQTT_MAX_REMAINING_LENGTH
				       ? (size_t)0
				       : MQTT_MAX_REMAINING_LENGTH - fixed);
	size_t size = v5 ? moat_mqtt5_publish_size(stlen, moat_props_len(props),
						   len, qos)
			 : moat_mqtt_publish_size(stlen, len, qos);
	uint8_t *dst = size ? moat_buf_reserve(&c->out, size) : NULL;
	if (!dst)
		return set_err(c, MOAT_ENOMEM, "out of memory");
	if (v5)
		moat_mqtt5_publish_encode(dst, (const uint8_t *)topic, stlen,
					  props ? props->p : NULL,
					  moat_props_len(props), NULL, 0, payload,
					  len, qos, retain, false, id);
	else
		moat_mqtt_publish_encode(dst, (const uint8_t *)topic, stlen,
					 payload, len, qos, retain, false, id);
	moat_buf_commit(&c->out, size);
	return MOAT_OK;
}

int moat_client_publish(struct moat_client *c, const char *topic,
			const void *payload, size_t len, uint8_t qos,
			bool retain)
{
	return moat_client_publish_props(c, topic, payload, len, qos, retain,
					 NULL);
}

int moat_client_publish_props(struct moat_client *c, const char *topic,
			      const void *payload, size_t len, uint8_t qos,
			      bool retain, const struct moat_bytes *props)
{
	size_t tlen = strlen(topic);
	struct moat_mqtt_props p;
	struct alias *slot;
	bool omit;
	int rc = check_publish(c, topic, tlen, qos, retain);
	if (rc == MOAT_OK)
		rc = check_props(c, props, PCTX_PUBLISH, "PUBLISH", &p);
	if (rc == MOAT_OK && p.n_subscription_ids)
		rc = set_err(c, MOAT_EINVAL, "a client cannot send "
					     "Subscription Identifiers");
	if (rc == MOAT_OK)
		rc = out_alias(c, &p, topic, tlen, &slot, &omit);
	if (rc != MOAT_OK)
		return rc;
	uint16_t id = qos ? next_packet_id(c) : 0;
	rc = encode_publish(c, topic, omit ? 0 : tlen, payload, len, qos,
			    retain, id, props);
	if (rc != MOAT_OK)
		return rc;
	char what[240], topic_esc[128];
	snprintf(what, sizeof(what),
		 "PUBLISH (d0, q%u, r%d, m%u, '%s', ... (%zu bytes))%s", qos,
		 retain, id,
		 moat_log_escape((const uint8_t *)topic, tlen, topic_esc,
				 sizeof(topic_esc)),
		 len, omit ? " by topic alias" : "");
	rc = flush_out(c, what);
	/* The server maps the alias once the PUBLISH is out; a failed copy
	 * leaves the slot empty, so the topic is simply sent again. */
	if (rc == MOAT_OK && slot && !omit &&
	    alias_set(slot, (struct moat_bytes){(const uint8_t *)topic, tlen}))
		moat_debug("client %s: out of memory for a topic alias", c->id);
	if (rc != MOAT_OK || qos == 0)
		return rc;
	return publish_flow(c, qos, id);
}

/* Subscription options: 3.1.1 only has the QoS; MQTT 5 adds No Local,
 * Retain As Published and Retain Handling 0..2 [MQTT-3.8.3-5]. */
static bool options_ok(const struct moat_client *c, uint8_t o)
{
	if (c->version != MQTT_PROTO_V5)
		return o <= 2;
	return (o & 3) <= 2 && ((o >> 4) & 3) <= 2 && !(o & 0xC0);
}

static int check_filters(struct moat_client *c, const char *const *filters,
			 const uint8_t *options, size_t count)
{
	if (count == 0)
		return set_err(c, MOAT_EINVAL, "no topic filter");
	for (size_t i = 0; i < count; i++) {
		const uint8_t *f = (const uint8_t *)filters[i];
		size_t n = strlen(filters[i]);
		if (n > 65535 || !moat_utf8_valid(f, n) ||
		    !moat_topic_filter_valid(f, n))
			return set_err(c, MOAT_EINVAL,
				       "invalid topic filter '%s'", filters[i]);
		if (options && !options_ok(c, options[i]))
			return set_err(c, MOAT_EINVAL,
				       "invalid subscription options 0x%02x",
				       options[i]);
	}
	return check_conn(c);
}

int moat_client_subscribe(struct moat_client *c, const char *const *filters,
			  const uint8_t *qos, size_t count, uint8_t *granted)
{
	return moat_client_subscribe_props(c, filters, qos, count, NULL,
					   granted);
}

int moat_client_subscribe_props(struct moat_client *c,
				const char *const *filters,
				const uint8_t *options, size_t count,
				const struct moat_bytes *props, uint8_t *codes)
{
	uint8_t *got = NULL;
	struct moat_mqtt_props p;
	int rc = check_filters(c, filters, options, count);
	if (rc == MOAT_OK)
		rc = check_props(c, props, PCTX_SUBSCRIBE, "SUBSCRIBE", &p);
	if (rc != MOAT_OK)
		goto out;
	got = moat_malloc(count);
	if (!got) {
		rc = set_err(c, MOAT_ENOMEM, "out of memory");
		goto out;
	}
	uint16_t id = next_packet_id(c);
	rc = c->version == MQTT_PROTO_V5
		     ? moat_mqtt5_sub_encode(&c->out, MQTT_SUBSCRIBE, id,
					     filters, options, count, props)
		     : moat_mqtt_subscribe_encode(&c->out, id, filters,
						  options, count);
	if (rc != MOAT_OK) {
		moat_buf_consume(&c->out, moat_buf_used(&c->out));
		rc = set_err(c, MOAT_EINVAL, "SUBSCRIBE does not encode");
		goto out;
	}
	struct ack_wait w = {
		.type = MQTT_SUBACK, .id = id, .codes = got, .ncodes = count};
	if ((rc = flush_out(c, "SUBSCRIBE")) != MOAT_OK ||
	    (rc = wait_ack(c, &w)) != MOAT_OK)
		goto out;
	if (codes)
		memcpy(codes, got, count);
out:
	moat_free(got);
	return rc;
}

int moat_client_unsubscribe(struct moat_client *c,
			    const char *const *filters, size_t count)
{
	int rc = check_filters(c, filters, NULL, count);
	if (rc != MOAT_OK)
		return rc;
	uint16_t id = next_packet_id(c);
	rc = c->version == MQTT_PROTO_V5
		     ? moat_mqtt5_sub_encode(&c->out, MQTT_UNSUBSCRIBE, id,
					     filters, NULL, count, NULL)
		     : moat_mqtt_unsubscribe_encode(&c->out, id, filters,
						    count);
	if (rc != MOAT_OK) {
		moat_buf_consume(&c->out, moat_buf_used(&c->out));
		return set_err(c, MOAT_EINVAL, "UNSUBSCRIBE does not encode");
	}
	struct ack_wait w = {.type = MQTT_UNSUBACK, .id = id, .ncodes = count};
	rc = flush_out(c, "UNSUBSCRIBE");
	return rc == MOAT_OK ? wait_ack(c, &w) : rc;
}

/* After DISCONNECT and shutdown(SHUT_WR): read and drop until the server
 * closes, so that closing our socket with unread input (which sends a
 * reset) cannot destroy data the server has not read yet. */
static void linger_close(struct moat_client *c)
{
	uint64_t deadline = moat_now_ms() + MOAT_MIN(LINGER_MS, c->timeout_ms);
	uint8_t scratch[4096];
	char keep[ERR_LEN]; /* the server's close is no error here */
	memcpy(keep, c->err, sizeof(keep));
	for (;;) {
		if (!io_pending(c)) {
			struct pollfd pfd = {.fd = c->fd, .events = POLLIN};
			int left = moat_ms_left(deadline);
			if (left == 0)
				break;
			int n = poll(&pfd, 1, left);
			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0)
				break;
		}
		if (io_read(c, scratch, sizeof(scratch)) < 0)
			break;
	}
	memcpy(c->err, keep, sizeof(keep));
}

/* End our side: TLS close_notify (best effort: the socket is
 * non-blocking), then the TCP FIN. */
static int shutdown_write(struct moat_client *c)
{
	moat_net_shutdown(c->net); /* WebSocket close, TLS close_notify */
	return shutdown(c->fd, SHUT_WR);
}

int moat_client_disconnect(struct moat_client *c)
{
	return moat_client_disconnect_props(c, RC_SUCCESS, NULL);
}

static int send_disconnect(struct moat_client *c, uint8_t reason,
			   const struct moat_bytes *props)
{
	struct moat_mqtt_props p;
	int rc = check_props(c, props, PCTX_DISCONNECT, "DISCONNECT", &p);
	if (rc != MOAT_OK)
		return rc;
	if (reason && c->version != MQTT_PROTO_V5)
		return set_err(c, MOAT_EINVAL,
			       "a DISCONNECT reason code needs MQTT 5");
	if (p.session_expiry && !c->session_expiry) /* [MQTT-3.14.2-2] */
		return set_err(c, MOAT_EINVAL,
			       "a session expiry interval in DISCONNECT needs "
			       "a non-zero one in CONNECT");
	if (!reason && !moat_props_len(props)) /* also the v5 short form */
		return send_simple(c, MQTT_DISCONNECT);
	if (moat_mqtt5_disconnect_encode(&c->out, reason, props) != MOAT_OK) {
		moat_buf_consume(&c->out, moat_buf_used(&c->out));
		return set_err(c, MOAT_EINVAL, "DISCONNECT does not encode");
	}
	char what[96];
	snprintf(what, sizeof(what), "DISCONNECT (0x%02x %s)", reason,
		 disconnect_name(reason));
	return flush_out(c, what);
}

int moat_client_disconnect_props(struct moat_client *c, uint8_t reason,
				 const struct moat_bytes *props)
{
	int rc = check_conn(c);
	if (rc == MOAT_OK)
		rc = send_disconnect(c, reason, props);
	if (rc == MOAT_OK && shutdown_write(c) == 0)
		linger_close(c);
	close_fd(c);
	return rc;
}
