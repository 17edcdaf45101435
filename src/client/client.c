/* Blocking MQTT 3.1.1 client: socket I/O, packet dispatch and the QoS
 * flows.  Encoding and decoding are the codec's (codec/mqtt_codec.h); this
 * file only moves bytes and keeps the protocol state.
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

#include "client.h"

#define READ_CHUNK ((size_t)65536)
#define ERR_LEN 256
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
	uint8_t connack_rc;   /* CONNACK */
};

struct moat_client {
	int fd;
	struct moat_buf in;  /* received bytes; max = max_packet + 5 */
	struct moat_buf out; /* the packet being written */
	uint32_t max_packet; /* limit on a packet's remaining length */
	uint32_t timeout_ms; /* connect, acknowledgement and write timeout */
	uint16_t keepalive;  /* seconds; 0 = no PINGREQ */
	uint16_t next_id;    /* last packet id used */
	uint64_t last_tx_ms; /* when we last sent a packet */
	uint64_t ping_ms;    /* when the outstanding PINGREQ went; 0 = none */
	/* Bit n set: QoS 2 message n was delivered and PUBREC sent; PUBREL
	 * not yet seen.  A PUBLISH with that id is a resend, not new. */
	uint8_t *qos2_in;
	struct ack_wait *wait; /* what the current call waits for, or NULL */
	moat_client_msg_cb *msg_cb;
	void *msg_arg;
	bool connected; /* CONNACK accepted */
	bool stopped;   /* moat_client_stop() called */
	char *id;       /* client id, for debug lines */
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

const char *moat_client_connack_str(uint8_t rc)
{
	switch (rc) {
	case MQTT_CONNACK_ACCEPTED:
		return "connection accepted";
	case MQTT_CONNACK_BAD_PROTOCOL:
		return "connection refused: unacceptable protocol version";
	case MQTT_CONNACK_ID_REJECTED:
		return "connection refused: identifier rejected";
	case MQTT_CONNACK_UNAVAILABLE:
		return "connection refused: server unavailable";
	case MQTT_CONNACK_BAD_CREDENTIALS:
		return "connection refused: bad user name or password";
	case MQTT_CONNACK_NOT_AUTHORIZED:
		return "connection refused: not authorised";
	default:
		return "connection refused: unknown reason";
	}
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
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	c->connected = false;
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

static int ms_left(uint64_t deadline)
{
	uint64_t now = moat_now_ms();
	if (now >= deadline)
		return 0;
	uint64_t left = deadline - now;
	return left > 1000000000u ? 1000000000 : (int)left;
}

/* Write all of p[0..len).  The timeout bounds a stall, not the whole
 * write: a big message on a slow link may take longer. */
static int write_all(struct moat_client *c, const uint8_t *p, size_t len)
{
	uint64_t deadline = moat_now_ms() + c->timeout_ms;
	while (len > 0) {
		ssize_t n = send(c->fd, p, len, MSG_NOSIGNAL);
		if (n > 0) {
			p += n;
			len -= (size_t)n;
			deadline = moat_now_ms() + c->timeout_ms;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
			return set_err(c, MOAT_EIO, "write to server failed: %s",
				       strerror(errno));
		struct pollfd pfd = {.fd = c->fd, .events = POLLOUT};
		int left = ms_left(deadline);
		if (left == 0)
			return set_err(c, MOAT_EIO,
				       "timed out writing to the server");
		if (poll(&pfd, 1, left) < 0 && errno != EINTR)
			return set_err(c, MOAT_EIO, "poll failed: %s",
				       strerror(errno));
	}
	c->last_tx_ms = moat_now_ms();
	return MOAT_OK;
}

/* Send the packet encoded in c->out and empty the buffer. */
static int flush_out(struct moat_client *c, const char *what)
{
	int rc = MOAT_OK;
	if (c->fd < 0) {
		rc = set_err(c, MOAT_ECLOSED, "not connected");
		goto out;
	}
	moat_debug("client %s sending %s", c->id ? c->id : "?", what);
	rc = write_all(c, c->out.data + c->out.off, moat_buf_used(&c->out));
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
	ssize_t n = recv(c->fd, dst, want, 0);
	if (n > 0) {
		moat_buf_commit(&c->in, (size_t)n);
		return MOAT_OK;
	}
	if (n == 0)
		return set_err(c, MOAT_ECLOSED,
			       "connection closed by the server");
	if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK)
		return MOAT_OK;
	return set_err(c, MOAT_EIO, "read from server failed: %s",
		       strerror(errno));
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
			int n = poll(&pfd, 1, ms_left(deadline));
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

static void deliver(struct moat_client *c, const struct moat_mqtt_publish *p)
{
	struct moat_client_msg m = {.topic = p->topic,
				    .payload = p->payload,
				    .qos = p->qos,
				    .retain = p->retain,
				    .dup = p->dup,
				    .packet_id = p->packet_id};
	if (c->msg_cb)
		c->msg_cb(c->msg_arg, &m);
}

static int on_publish(struct moat_client *c, uint8_t flags,
		      const uint8_t *body, size_t len)
{
	struct moat_mqtt_publish p;
	int rc = moat_mqtt_decode_publish(flags, body, len, &p);
	if (rc != MOAT_OK)
		return set_err(c, rc, "invalid PUBLISH from server: %s",
			       moat_strerror(rc));
	char topic[128];
	moat_debug("client %s received PUBLISH (d%d, q%u, r%d, m%u, '%s', "
		   "... (%zu bytes))",
		   c->id, p.dup, p.qos, p.retain, p.packet_id,
		   moat_log_escape(p.topic.p, p.topic.len, topic,
				   sizeof(topic)),
		   p.payload.len);
	/* After stop: neither deliver nor acknowledge, so that a persistent
	 * session keeps the message for the next connection. */
	if (c->stopped)
		return MOAT_OK;
	if (p.qos == 2 && qos2_test(c, p.packet_id)) {
		/* A resend of a message we already delivered. */
		moat_debug("client %s: duplicate QoS 2 message %u not "
			   "delivered again", c->id, p.packet_id);
		return send_ack(c, MQTT_PUBREC, p.packet_id);
	}
	deliver(c, &p); /* deliver first, then acknowledge */
	if (p.qos == 1)
		return send_ack(c, MQTT_PUBACK, p.packet_id);
	if (p.qos == 2) {
		qos2_set(c, p.packet_id, true);
		return send_ack(c, MQTT_PUBREC, p.packet_id);
	}
	return MOAT_OK;
}

static int on_pubrel(struct moat_client *c, const uint8_t *body, size_t len)
{
	uint16_t id;
	if (moat_mqtt_decode_ack(body, len, &id) != MOAT_OK)
		return set_err(c, MOAT_EMALFORMED, "invalid PUBREL from server");
	moat_debug("client %s received PUBREL (m%u)", c->id, id);
	qos2_set(c, id, false);
	/* Answer even an unknown id: the server may be finishing a flow of
	 * an earlier connection of this session. */
	return send_ack(c, MQTT_PUBCOMP, id);
}

/* PUBACK, PUBREC, PUBCOMP, UNSUBACK: match the call that waits for it. */
static int on_ack(struct moat_client *c, uint8_t type, const uint8_t *body,
		  size_t len)
{
	uint16_t id;
	if (moat_mqtt_decode_ack(body, len, &id) != MOAT_OK)
		return set_err(c, MOAT_EMALFORMED, "invalid %s from server",
			       type_name(type));
	moat_debug("client %s received %s (m%u)", c->id, type_name(type), id);
	struct ack_wait *w = c->wait;
	if (w && !w->done && w->type == type && w->id == id)
		w->done = true;
	else
		moat_debug("client %s: ignoring unexpected %s (m%u)", c->id,
			   type_name(type), id);
	return MOAT_OK;
}

static int on_suback(struct moat_client *c, const uint8_t *body, size_t len)
{
	struct moat_rd rd;
	uint16_t id;
	moat_rd_init(&rd, body, len);
	if (moat_rd_u16(&rd, &id) != MOAT_OK || id == 0 ||
	    moat_rd_left(&rd) == 0)
		return set_err(c, MOAT_EMALFORMED, "invalid SUBACK from server");
	const uint8_t *codes = body + 2;
	size_t n = len - 2;
	for (size_t i = 0; i < n; i++)
		if (codes[i] > 2 && codes[i] != MQTT_SUBACK_FAILURE)
			return set_err(c, MOAT_EMALFORMED,
				       "invalid SUBACK return code 0x%02x",
				       codes[i]);
	moat_debug("client %s received SUBACK (m%u, %zu codes)", c->id, id, n);
	struct ack_wait *w = c->wait;
	if (!w || w->done || w->type != MQTT_SUBACK || w->id != id) {
		moat_debug("client %s: ignoring unexpected SUBACK", c->id);
		return MOAT_OK;
	}
	if (n != w->ncodes) /* [MQTT-3.8.4-5] one code per filter */
		return set_err(c, MOAT_EPROTO,
			       "SUBACK has %zu return codes for %zu filters",
			       n, w->ncodes);
	memcpy(w->codes, codes, n);
	w->done = true;
	return MOAT_OK;
}

static int on_connack(struct moat_client *c, const uint8_t *body,
		      size_t len)
{
	struct ack_wait *w = c->wait;
	if (c->connected || !w || w->type != MQTT_CONNACK)
		return set_err(c, MOAT_EPROTO, "unexpected CONNACK from server");
	if (moat_mqtt_decode_connack(body, len, &w->session_present,
				     &w->connack_rc) != MOAT_OK)
		return set_err(c, MOAT_EMALFORMED, "invalid CONNACK from server");
	moat_debug("client %s received CONNACK (%u, session present %d)",
		   c->id, w->connack_rc, w->session_present);
	w->done = true;
	return MOAT_OK;
}

static int handle_packet(struct moat_client *c, uint8_t type_flags,
			 const uint8_t *body, size_t len)
{
	uint8_t type = type_flags >> 4;
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
	case MQTT_UNSUBACK:
		return on_ack(c, type, body, len);
	case MQTT_PUBREL:
		return on_pubrel(c, body, len);
	case MQTT_SUBACK:
		return on_suback(c, body, len);
	case MQTT_PINGRESP:
		if (len != 0)
			return set_err(c, MOAT_EMALFORMED,
				       "invalid PINGRESP from server");
		moat_debug("client %s received PINGRESP", c->id);
		c->ping_ms = 0;
		return MOAT_OK;
	default:
		return set_err(c, MOAT_EPROTO,
			       "protocol error: server sent %s",
			       type_name(type));
	}
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
		if (rl > c->max_packet)
			return set_err(c, MOAT_ELIMIT,
				       "packet from server too large (%u "
				       "bytes, limit %u)", rl, c->max_packet);
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

/* Keep-alive [MQTT-3.1.2-23]: PINGREQ once nothing was sent for keepalive
 * seconds; give up when its PINGRESP is keepalive seconds late.  *next_ms
 * is the time until the next check, -1 for none. */
static int keep_alive(struct moat_client *c, int *next_ms)
{
	*next_ms = -1;
	if (!c->keepalive || !c->connected)
		return MOAT_OK;
	uint64_t ka = (uint64_t)c->keepalive * 1000u;
	uint64_t now = moat_now_ms();
	if (c->ping_ms) {
		if (now - c->ping_ms >= ka)
			return set_err(c, MOAT_EIO,
				       "no PINGRESP from the server within %u s",
				       c->keepalive);
		*next_ms = (int)(c->ping_ms + ka - now);
		return MOAT_OK;
	}
	if (now - c->last_tx_ms < ka) {
		*next_ms = (int)(c->last_tx_ms + ka - now);
		return MOAT_OK;
	}
	int rc = send_simple(c, MQTT_PINGREQ);
	if (rc == MOAT_OK) {
		c->ping_ms = moat_now_ms();
		*next_ms = (int)ka;
	}
	return rc;
}

struct pump_result {
	bool extra_ready; /* extra_fd is readable */
	bool interrupted; /* poll() returned EINTR (a signal) */
};

static int pump_poll(struct moat_client *c, int timeout, int extra_fd,
		     struct pump_result *res)
{
	struct pollfd pfd[2] = {{.fd = c->fd, .events = POLLIN},
				{.fd = extra_fd, .events = POLLIN}};
	int n = poll(pfd, extra_fd >= 0 ? 2 : 1, timeout);
	if (n < 0 && errno == EINTR) {
		res->interrupted = true;
		return MOAT_OK;
	}
	if (n < 0)
		return set_err(c, MOAT_EIO, "poll failed: %s", strerror(errno));
	if (extra_fd >= 0 && pfd[1].revents)
		res->extra_ready = true;
	if (!pfd[0].revents)
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
	int timeout = deadline == NO_DEADLINE ? -1 : ms_left(deadline);
	if (ka_ms >= 0 && (timeout < 0 || ka_ms < timeout))
		timeout = ka_ms;
	rc = pump_poll(c, timeout, extra_fd, res);
out:
	if (rc != MOAT_OK)
		close_fd(c);
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
		if (ms_left(deadline) == 0) {
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
		if (deadline != NO_DEADLINE && ms_left(deadline) == 0)
			break;
	}
	if (extra_ready)
		*extra_ready = res.extra_ready;
	return rc;
}

/* ---- the calls ------------------------------------------------------- */

static uint16_t next_packet_id(struct moat_client *c)
{
	c->next_id = (uint16_t)(c->next_id + 1);
	if (c->next_id == 0) /* 0 is not a packet id [MQTT-2.3.1-1] */
		c->next_id = 1;
	return c->next_id;
}

static int apply_opts(struct moat_client *c, const struct moat_client_opts *o)
{
	if (c->fd >= 0 || c->connected || c->id)
		return set_err(c, MOAT_EINVAL, "client already connected");
	if (!o->host || !o->port || !o->connect.client_id)
		return set_err(c, MOAT_EINVAL, "host, port and client id "
					       "are required");
	if (o->max_packet)
		c->max_packet = MOAT_MIN(o->max_packet,
					 MQTT_MAX_REMAINING_LENGTH);
	if (o->timeout_ms)
		c->timeout_ms = o->timeout_ms;
	c->keepalive = o->connect.keepalive;
	c->in.max = (size_t)c->max_packet + 5;
	c->id = moat_strdup(o->connect.client_id);
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
	rc = moat_mqtt_connect_encode(&c->out, &o->connect);
	if (rc != MOAT_OK) {
		rc = set_err(c, MOAT_EINVAL,
			     "CONNECT does not encode (a field is longer "
			     "than 65535 bytes?)");
		goto out;
	}
	if ((rc = tcp_connect(c, o->host, o->port)) != MOAT_OK ||
	    (rc = flush_out(c, "CONNECT")) != MOAT_OK ||
	    (rc = wait_ack(c, &w)) != MOAT_OK)
		goto out;
	if (w.connack_rc != MQTT_CONNACK_ACCEPTED) {
		rc = set_err(c, MOAT_EDENIED, "%s (CONNACK code %u)",
			     moat_client_connack_str(w.connack_rc),
			     w.connack_rc);
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
			 size_t tlen, size_t len, uint8_t qos)
{
	if (qos > 2)
		return set_err(c, MOAT_EINVAL, "invalid QoS %u", qos);
	if (tlen > 65535 || !moat_utf8_valid((const uint8_t *)topic, tlen) ||
	    !moat_topic_name_valid((const uint8_t *)topic, tlen))
		return set_err(c, MOAT_EINVAL, "invalid topic name");
	if (len > MQTT_MAX_REMAINING_LENGTH - 4 - tlen)
		return set_err(c, MOAT_ELIMIT,
			       "message too large: %zu bytes (MQTT allows at "
			       "most %zu with this topic)", len,
			       (size_t)MQTT_MAX_REMAINING_LENGTH - 4 - tlen);
	return check_conn(c);
}

/* Wait for the acknowledgements of an outgoing QoS 1 or 2 message. */
static int publish_flow(struct moat_client *c, uint8_t qos, uint16_t id)
{
	struct ack_wait w = {.type = qos == 1 ? MQTT_PUBACK : MQTT_PUBREC,
			     .id = id};
	int rc = wait_ack(c, &w);
	if (rc != MOAT_OK || qos == 1)
		return rc;
	rc = send_ack(c, MQTT_PUBREL, id);
	if (rc != MOAT_OK)
		return rc;
	w = (struct ack_wait){.type = MQTT_PUBCOMP, .id = id};
	return wait_ack(c, &w);
}

int moat_client_publish(struct moat_client *c, const char *topic,
			const void *payload, size_t len, uint8_t qos,
			bool retain)
{
	size_t tlen = strlen(topic);
	int rc = check_publish(c, topic, tlen, len, qos);
	if (rc != MOAT_OK)
		return rc;
	uint16_t id = qos ? next_packet_id(c) : 0;
	size_t size = moat_mqtt_publish_size(tlen, len, qos);
	uint8_t *dst = size ? moat_buf_reserve(&c->out, size) : NULL;
	if (!dst)
		return set_err(c, MOAT_ENOMEM, "out of memory");
	moat_mqtt_publish_encode(dst, (const uint8_t *)topic, tlen, payload,
				 len, qos, retain, false, id);
	moat_buf_commit(&c->out, size);
	char what[200], esc[128];
	snprintf(what, sizeof(what),
		 "PUBLISH (d0, q%u, r%d, m%u, '%s', ... (%zu bytes))", qos,
		 retain, id,
		 moat_log_escape((const uint8_t *)topic, tlen, esc,
				 sizeof(esc)),
		 len);
	rc = flush_out(c, what);
	if (rc != MOAT_OK || qos == 0)
		return rc;
	return publish_flow(c, qos, id);
}

static int check_filters(struct moat_client *c, const char *const *filters,
			 const uint8_t *qos, size_t count)
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
		if (qos && qos[i] > 2)
			return set_err(c, MOAT_EINVAL, "invalid QoS %u",
				       qos[i]);
	}
	return check_conn(c);
}

int moat_client_subscribe(struct moat_client *c, const char *const *filters,
			  const uint8_t *qos, size_t count, uint8_t *granted)
{
	uint8_t *codes = NULL;
	int rc = check_filters(c, filters, qos, count);
	if (rc != MOAT_OK)
		goto out;
	codes = moat_malloc(count);
	if (!codes) {
		rc = set_err(c, MOAT_ENOMEM, "out of memory");
		goto out;
	}
	uint16_t id = next_packet_id(c);
	rc = moat_mqtt_subscribe_encode(&c->out, id, filters, qos, count);
	if (rc != MOAT_OK) {
		moat_buf_consume(&c->out, moat_buf_used(&c->out));
		rc = set_err(c, MOAT_EINVAL, "SUBSCRIBE does not encode");
		goto out;
	}
	struct ack_wait w = {
		.type = MQTT_SUBACK, .id = id, .codes = codes, .ncodes = count};
	if ((rc = flush_out(c, "SUBSCRIBE")) != MOAT_OK ||
	    (rc = wait_ack(c, &w)) != MOAT_OK)
		goto out;
	if (granted)
		memcpy(granted, codes, count);
out:
	moat_free(codes);
	return rc;
}

int moat_client_unsubscribe(struct moat_client *c,
			    const char *const *filters, size_t count)
{
	int rc = check_filters(c, filters, NULL, count);
	if (rc != MOAT_OK)
		return rc;
	uint16_t id = next_packet_id(c);
	rc = moat_mqtt_unsubscribe_encode(&c->out, id, filters, count);
	if (rc != MOAT_OK) {
		moat_buf_consume(&c->out, moat_buf_used(&c->out));
		return set_err(c, MOAT_EINVAL, "UNSUBSCRIBE does not encode");
	}
	struct ack_wait w = {.type = MQTT_UNSUBACK, .id = id};
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
	for (;;) {
		struct pollfd pfd = {.fd = c->fd, .events = POLLIN};
		int left = ms_left(deadline);
		if (left == 0)
			break;
		int n = poll(&pfd, 1, left);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		ssize_t r = recv(c->fd, scratch, sizeof(scratch), 0);
		if (r == 0 || (r < 0 && errno != EINTR && errno != EAGAIN))
			break;
	}
}

int moat_client_disconnect(struct moat_client *c)
{
	int rc = check_conn(c);
	if (rc == MOAT_OK)
		rc = send_simple(c, MQTT_DISCONNECT);
	if (rc == MOAT_OK && shutdown(c->fd, SHUT_WR) == 0)
		linger_close(c);
	close_fd(c);
	return rc;
}
