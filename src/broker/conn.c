/* Connections: socket I/O, framing, the packet dispatcher and closing.
 * A connection is touched only by the worker that owns it. */
#include <arpa/inet.h>
#include <errno.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "broker_int.h"
#include "codec/mqtt5.h"
#include "net/net_tls.h"
#include "net/net_ws.h"

/* An empty output buffer up to this size is freed at once (getting it
 * again is cheap); a bigger one, grown by a busy connection, is kept
 * until the tick finds it empty (moat_conn_trim). */
#define OUT_FREE_AT_ONCE ((size_t)4096)

bool moat__format_addr(const union moat_sockaddr *a, char *peer, char *ip)
{
	char host[INET6_ADDRSTRLEN] = "?";
	bool loopback = false;
	if (a->sa.sa_family == AF_INET) {
		inet_ntop(AF_INET, &a->v4.sin_addr, host, sizeof(host));
		snprintf(peer, MOAT_PEER_STRLEN, "%s:%u", host,
			 (unsigned)ntohs(a->v4.sin_port));
		loopback = (ntohl(a->v4.sin_addr.s_addr) >> 24) == 127;
	} else if (a->sa.sa_family == AF_INET6) {
		inet_ntop(AF_INET6, &a->v6.sin6_addr, host, sizeof(host));
		snprintf(peer, MOAT_PEER_STRLEN, "[%s]:%u", host,
			 (unsigned)ntohs(a->v6.sin6_port));
		loopback = IN6_IS_ADDR_LOOPBACK(&a->v6.sin6_addr);
	} else {
		snprintf(peer, MOAT_PEER_STRLEN, "unknown");
	}
	snprintf(ip, MOAT_PEER_STRLEN, "%s", host);
	return loopback;
}

const char *moat_conn_peer(const struct moat_conn *c, char *buf)
{
	char ip[MOAT_PEER_STRLEN];
	moat__format_addr(&c->addr, buf, ip);
	return buf;
}

const char *moat_conn_transport(const struct moat_conn *c)
{
	if (!c->net)
		return "";
	if (moat_net_find(c->net, "ws"))
		return c->net->secure ? " over WebSocket/TLS" : " over WebSocket";
	return c->net->secure ? " over TLS" : "";
}

/* Is ip one of the comma-separated addresses in list? */
static bool in_list(const char *list, const char *ip)
{
	size_t n = strlen(ip);
	for (const char *p = list; *p;) {
		const char *e = strchr(p, ',');
		size_t len = e ? (size_t)(e - p) : strlen(p);
		if (len == n && !memcmp(p, ip, n))
			return true;
		p += len + (e ? 1 : 0);
	}
	return false;
}

const char *moat_conn_forwarded(const struct moat_conn *c, char *buf)
{
	const char *proxies = c->w->cfg->listeners[c->listener].ws_proxies;
	const char *fwd = proxies[0] && c->net ? moat_net_ws_forwarded(c->net)
					       : NULL;
	char ip[MOAT_PEER_STRLEN];
	buf[0] = '\0';
	if (fwd && in_list(proxies, moat_conn_ip(c, ip)))
		snprintf(buf, MOAT_FWD_STRLEN, " (X-Forwarded-For %s)", fwd);
	return buf;
}

const char *moat_conn_ip(const struct moat_conn *c, char *buf)
{
	char peer[MOAT_PEER_STRLEN];
	moat__format_addr(&c->addr, peer, buf);
	return buf;
}

struct moat_conn *moat_conn_new(struct moat_worker *w, int fd,
				const union moat_sockaddr *addr)
{
	struct moat_conn *c = moat_calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	const struct moat_config *cfg = w->cfg;
	c->ev_kind = EV_CONN;
	c->fd = fd;
	c->w = w;
	c->state = CONN_NEW;
	c->addr = *addr;
	moat_net_tcp_init(&c->tcp, fd);
	c->net = &c->tcp.base;
	if (moat__store_on(w->b) &&
	    !(c->gates = moat_calloc(1, sizeof(*c->gates)))) {
		moat_free(c);
		return NULL;
	}
	/* A whole packet must fit in the input buffer. */
	moat_buf_init(&c->in, (size_t)cfg->max_packet_size);
	/* Soft limit for new messages, plus room for the in-flight window
	 * resent on resume and for acks. */
	moat_buf_init(&c->out, (size_t)(cfg->output_buffer_size +
					 (cfg->max_inflight_messages + 2) *
						 cfg->max_packet_size));
	c->created_ms = c->last_rx_ms = moat_now_ms();
	c->client_receive_max = 65535;
	c->problem_info = true;
	return c;
}

static int update_events(struct moat_conn *c)
{
	struct epoll_event ev = {0};
	/* TLS may need the other direction to make progress. */
	unsigned want = c->net ? moat_net_wants(c->net) : 0;
	ev.events = (c->reading || (want & MOAT_NET_WRITE_WANTS_READ)
			     ? EPOLLIN
			     : 0u) |
		    (c->epollout || (want & (MOAT_NET_READ_WANTS_WRITE |
					     MOAT_NET_HAS_OUTPUT))
			     ? EPOLLOUT
			     : 0u);
	ev.data.ptr = c;
	return epoll_ctl(c->w->epfd, EPOLL_CTL_MOD, c->fd, &ev);
}

int moat_conn_attach(struct moat_worker *w, struct moat_conn *c)
{
	struct epoll_event ev = {0};
	c->w = w;
	c->reading = true;
	c->epollout = false;
	ev.events = EPOLLIN;
	ev.data.ptr = c;
	if (epoll_ctl(w->epfd, EPOLL_CTL_ADD, c->fd, &ev) != 0)
		return MOAT_EIO;
	c->prev = NULL;
	c->next = w->conns;
	if (w->conns)
		w->conns->prev = c;
	w->conns = c;
	w->nconns++;
	return MOAT_OK;
}

static void unlink_conn(struct moat_conn *c)
{
	struct moat_worker *w = c->w;
	if (c->prev)
		c->prev->next = c->next;
	else
		w->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	c->next = c->prev = NULL;
	w->nconns--;
}

void moat_conn_detach(struct moat_conn *c)
{
	epoll_ctl(c->w->epfd, EPOLL_CTL_DEL, c->fd, NULL);
	unlink_conn(c);
}

static void free_aliases(char **v, size_t n)
{
	for (size_t i = 0; v && i <= n; i++)
		moat_free(v[i]);
	moat_free(v);
}

void moat_conn_free(struct moat_conn *c)
{
	moat__store_ungate(c);
	free_aliases(c->alias_in, (size_t)c->w->cfg->topic_alias_maximum);
	free_aliases(c->alias_out, c->n_alias_out);
	moat_buf_cleanup(&c->in);
	moat_buf_cleanup(&c->out);
	moat_msg_unref(&c->will);
	moat_free(c->username);
	moat_free(c->gates);
	moat__cluster_conn_free(c);
	if (c->net) /* never opened for business (refused, not adopted) */
		moat_net_close(c->net);
	moat_free(c);
}

/* ---- transport ------------------------------------------------------------
 * Through the stack's top layer (net.h): bytes moved (> 0), 0 when the
 * socket would block (the events follow what the layers wait for), or -1
 * when the connection is finished (why says how).
 *
 * TCP and TLS change what they wait for only when they would block; a
 * layer with output of its own (WebSocket, on top when present) may also
 * queue some (a pong) in a call that moved bytes: only then are the
 * flags compared before and after. */

static bool has_own_output(const struct moat_conn *c)
{
	return c->net->ops->flush != NULL;
}

static ssize_t transport_result(struct moat_conn *c, ssize_t r,
				unsigned want_before, const char *why)
{
	if (r >= 0) {
		if (moat_net_wants(c->net) != want_before)
			update_events(c);
		return r;
	}
	/* TLS refuses only during its handshake; above it, WebSocket. */
	if (r == MOAT_NET_REFUSED)
		moat__security_event(c,
				     moat_net_tls_established(c->net)
					     ? "websocket refused"
					     : "tls failure",
				     "%s", why);
	return -1;
}

static ssize_t transport_read(struct moat_conn *c, uint8_t *dst, size_t n,
			      char *why, size_t whysz)
{
	bool own = has_own_output(c);
	unsigned before = own ? moat_net_wants(c->net) : 0;
	ssize_t r = moat_net_read(c->net, dst, n, why, whysz);
	if (r > 0 && !own)
		return r; /* the hot path */
	return transport_result(c, r, before, why);
}

static ssize_t transport_write(struct moat_conn *c, const uint8_t *p, size_t n,
			       char *why, size_t whysz)
{
	bool own = has_own_output(c);
	unsigned before = own ? moat_net_wants(c->net) : 0;
	ssize_t r = moat_net_write(c->net, p, n, why, whysz);
	if (r > 0 && !own)
		return r; /* the hot path */
	return transport_result(c, r, before, why);
}

/* Push out what is buffered (a CONNACK with an error code, a
 * DISCONNECT) before the socket goes away.  Returns how many bytes of it
 * could not be written yet (they stay in c->out), or -1 when the socket
 * is finished. */
static ssize_t write_last_words(struct moat_conn *c)
{
	char why[128];
	/* Not what waits for the store: it was never acknowledged. */
	size_t used = moat__store_writable(c, moat_buf_used(&c->out));
	if (!moat_net_tls_established(c->net))
		return -1;
	while (used) {
		ssize_t n = moat_net_write(c->net, c->out.data + c->out.off,
					   used, why, sizeof(why));
		if (n <= 0)
			return n < 0 ? -1 : (ssize_t)used;
		moat_buf_consume(&c->out, (size_t)n);
		used -= (size_t)n;
	}
	return 0;
}

/* Close c's socket, lingering (linger.c) when it was told why: the peer
 * may still be sending, and closing now would reset the connection and
 * lose the reason code.  A WebSocket always says why (its close frame,
 * or an HTTP status for a refused handshake). */
static void close_socket(struct moat_conn *c)
{
	struct moat_worker *w = c->w;
	bool told = moat__store_writable(c, moat_buf_used(&c->out)) != 0 ||
		    moat_net_find(c->net, "ws") != NULL;
	ssize_t rest = write_last_words(c);
	if (told && rest >= 0 &&
	    moat__linger_start(w, c->net, &c->tcp, &c->addr, c->ip_counted,
			       c->out.data + c->out.off, (size_t)rest)) {
		c->net = NULL; /* the linger owns the stack now */
	} else {
		char ib[MOAT_PEER_STRLEN];
		moat_net_shutdown(c->net);
		moat_net_close(c->net);
		c->net = NULL;
		if (c->ip_counted)
			moat_iptab_release(&w->b->iptab, moat_conn_ip(c, ib),
					   moat_now_ms());
		MOAT_STAT_SUB(w->b, connections, 1);
	}
	c->fd = -1;
	c->ip_counted = false;
}

void moat_conn_close(struct moat_conn *c, const char *why)
{
	if (c->state == CONN_CLOSED)
		return;
	struct moat_worker *w = c->w;
	struct moat_broker *b = w->b;
	struct moat_session *s = c->session;
	char pb[MOAT_PEER_STRLEN], id[MOAT_LOG_ID_LEN];
	if (s)
		moat_info("client %s (%s) disconnected: %s",
			  moat_session_log_id(s, id), moat_conn_peer(c, pb), why);
	else
		moat_info("connection from %s closed: %s",
			  moat_conn_peer(c, pb), why);
	bool was_active = c->state == CONN_ACTIVE;
	c->state = CONN_CLOSED;
	moat_conn_detach(c);
	close_socket(c);
	moat__uncount_user(c);
	moat__store_ungate(c);
	c->next = w->closed;
	w->closed = c;
	if (was_active)
		MOAT_STAT_SUB(b, clients_connected, 1);
	if (s) {
		c->session = NULL;
		s->conn = NULL;
		atomic_store_explicit(&s->online, false, memory_order_relaxed);
		s->offline_since_ms = moat_now_ms();
	}
	if (c->will && !c->will_discard) {
		/* [MQTT-3.1.2-8]: published when the connection is lost
		 * without DISCONNECT.  Deferred: routing here could close
		 * other connections recursively.  An MQTT 5 Will Delay
		 * waits in a session that outlives the connection. */
		if (s && c->will_delay_s && s->expiry_s) {
			uint32_t d = MOAT_MIN(c->will_delay_s, s->expiry_s);
			moat_msg_unref(&s->will);
			s->will = c->will;
			s->will_at_ms = s->offline_since_ms + (uint64_t)d * 1000u;
		} else {
			moat_worker_defer_will(w, c->will);
		}
		c->will = NULL;
	}
	if (c->bridge) /* its session stays: it is the bridge's, not c's */
		moat__bridge_closed(c, why);
	else if (s && s->expiry_s == 0)
		moat_session_destroy(s); /* [MQTT-3.1.2-6] */
	else if (s)
		moat__store_session(w, s); /* offline now; its will, if any */
}

void moat_conn_disconnect(struct moat_conn *c, uint8_t reason,
			  const char *why)
{
	/* Only after CONNACK, and only to MQTT 5 clients [MQTT-3.14.0-1]. */
	/* (4 bytes at least: not to a client that allows less.) */
	if (c->state == CONN_ACTIVE && c->proto_level == MQTT_PROTO_V5 &&
	    (!c->client_max_packet || c->client_max_packet >= 4)) {
		uint8_t pb[160];
		struct moat_pw pw;
		moat_pw_init(&pw, pb, sizeof(pb));
		size_t n = MOAT_MIN(strlen(why), (size_t)120);
		/* The reason string is dropped when the client did not ask
		 * for it or it would exceed the client's Maximum Packet Size
		 * [MQTT-3.14.2-3]: 2 + 1 + 1 + (3 + n) bytes. */
		if (c->problem_info &&
		    (!c->client_max_packet || 7 + n <= c->client_max_packet))
			moat_pw_bytes(&pw, PROP_REASON_STRING, why, n);
		(void)moat_mqtt5_disconnect(&c->out, reason, &pw);
	}
	moat_conn_close(c, why);
}

bool moat_conn_can_send(const struct moat_conn *c)
{
	/* A connection waiting for a store that is far behind is not read
	 * (nor sent more) until its gates open: the store's backlog is
	 * bounded by what the connections had in flight. */
	return c->state == CONN_ACTIVE &&
	       moat_buf_used(&c->out) < c->w->cfg->output_buffer_size &&
	       !(moat__store_gated(c) && moat__store_backlogged(c->w->b));
}

uint8_t *moat_conn_reserve(struct moat_conn *c, size_t n)
{
	if (c->state == CONN_CLOSED)
		return NULL;
	return moat_buf_reserve(&c->out, n);
}

void moat_conn_commit(struct moat_conn *c, size_t n)
{
	moat_buf_commit(&c->out, n);
	moat_worker_mark_dirty(c->w, c);
}

int moat_conn_send(struct moat_conn *c, const uint8_t *p, size_t n)
{
	uint8_t *dst = moat_conn_reserve(c, n);
	if (!dst)
		return MOAT_ELIMIT;
	memcpy(dst, p, n);
	moat_conn_commit(c, n);
	return MOAT_OK;
}

/* Outgoing topic alias [MQTT-3.3.2-?]: the alias already given to this
 * topic, or a new one while the client's Topic Alias Maximum allows
 * (*fresh: the topic must be sent with it this time); 0 = none. */
static uint16_t alias_for(struct moat_conn *c, const struct moat_msg *m,
			  bool *fresh)
{
	*fresh = false;
	for (uint16_t i = 1; i <= c->n_alias_out; i++)
		if (!strcmp(c->alias_out[i], m->topic))
			return i;
	uint16_t max = MOAT_MIN(c->client_alias_max, (uint16_t)64);
	if (c->n_alias_out >= max)
		return 0;
	*fresh = true;
	return (uint16_t)(c->n_alias_out + 1);
}

static bool alias_commit(struct moat_conn *c, uint16_t alias,
			 const struct moat_msg *m)
{
	if (!c->alias_out) {
		uint16_t max = MOAT_MIN(c->client_alias_max, (uint16_t)64);
		c->alias_out = moat_calloc((size_t)max + 1, sizeof(char *));
		if (!c->alias_out)
			return false;
	}
	c->alias_out[alias] = moat_strndup(m->topic, m->topic_len);
	if (!c->alias_out[alias])
		return false;
	c->n_alias_out = alias;
	return true;
}

static int send_publish5_with(struct moat_conn *c, const struct moat_msg *m,
			      uint8_t qos, bool retain, bool dup, uint16_t id,
			      uint64_t share, uint8_t *pb, size_t pbsize);

static int send_publish5(struct moat_conn *c, const struct moat_msg *m,
			 uint8_t qos, bool retain, bool dup, uint16_t id,
			 uint64_t share)
{
	/* Expiry and alias take at most 8 bytes; each subscription id at
	 * most 5: room for all of this session's [MQTT-3.3.4-3]. */
	uint8_t stack[512], *pb = stack;
	size_t need = 16 + (c->session ? 5 * c->session->nsubs : 0);
	if (need > sizeof(stack) && !(pb = moat_malloc(need)))
		return MOAT_ENOMEM;
	int rc = send_publish5_with(c, m, qos, retain, dup, id, share, pb,
				    MOAT_MAX(need, sizeof(stack)));
	if (pb != stack)
		moat_free(pb);
	return rc;
}

static int send_publish5_with(struct moat_conn *c, const struct moat_msg *m,
			      uint8_t qos, bool retain, bool dup, uint16_t id,
			      uint64_t share, uint8_t *pb, size_t pbsize)
{
	struct moat_pw pw;
	bool fresh = false;
	moat_pw_init(&pw, pb, pbsize);
	if (m->expiry_ms) { /* remaining time [MQTT-3.3.2-6] */
		moat_pw_u32(&pw, PROP_MESSAGE_EXPIRY,
			    moat_msg_expiry_left(m, c->w->now_ms));
	}
	/* The alias goes before the subscription ids. */
	uint16_t alias = c->client_alias_max ? alias_for(c, m, &fresh) : 0;
	if (alias)
		moat_pw_u16(&pw, PROP_TOPIC_ALIAS, alias);
	if (c->session && c->session->has_sub_options)
		moat_session_sub_ids(c->session, m, share, &pw);
	size_t tlen = alias && !fresh ? 0 : m->topic_len;
	size_t n = moat_mqtt5_publish_size(tlen, pw.len + m->props_len,
					   m->payload_len, qos);
	if (!n || (c->client_max_packet && n > c->client_max_packet))
		return MOAT_DECLINED;
	uint8_t *dst = moat_conn_reserve(c, n);
	if (!dst)
		return MOAT_ELIMIT;
	if (fresh && !alias_commit(c, alias, m)) {
		/* Out of memory: send it without an alias. */
		return MOAT_ENOMEM;
	}
	moat_mqtt5_publish_encode(dst, (const uint8_t *)m->topic, tlen, pw.p,
				  pw.len, m->props, m->props_len, m->payload,
				  m->payload_len, qos, retain, dup, id);
	moat_conn_commit(c, n);
	MOAT_WSTAT_ADD(c->w, msgs_out[moat__conn_proto(c)][qos], 1);
	return MOAT_OK;
}

int moat_conn_send_publish(struct moat_conn *c, const struct moat_msg *m,
			   uint8_t qos, bool retain, bool dup, uint16_t id,
			   uint64_t share)
{
	if (c->bridge) /* to a remote broker: topic mapped (bridge.c) */
		return moat__bridge_send_publish(c, m, qos, retain, dup, id);
	if (c->proto_level == MQTT_PROTO_V5)
		return send_publish5(c, m, qos, retain, dup, id, share);
	size_t n = moat_mqtt_publish_size(m->topic_len, m->payload_len, qos);
	uint8_t *dst = n ? moat_conn_reserve(c, n) : NULL;
	if (!dst)
		return MOAT_ELIMIT;
	moat_mqtt_publish_encode(dst, (const uint8_t *)m->topic, m->topic_len,
				 m->payload, m->payload_len, qos, retain, dup,
				 id);
	moat_conn_commit(c, n);
	MOAT_WSTAT_ADD(c->w, msgs_out[moat__conn_proto(c)][qos], 1);
	return MOAT_OK;
}

static int handle_ack(struct moat_conn *c, uint8_t type, const uint8_t *body,
		      size_t len)
{
	uint16_t id;
	uint8_t reason;
	struct moat_mqtt_props props;
	int rc = moat_mqtt_decode_ack_v(body, len, c->proto_level, &id, &reason,
					&props);
	if (rc)
		return rc;
	switch (type) {
	case MQTT_PUBACK:
		return moat_session_on_puback(c->session, id);
	case MQTT_PUBREC:
		/* A PUBREC with an error reason ends the exchange
		 * [MQTT-4.3.3-4]: treat it like the PUBCOMP. */
		if (reason >= 0x80)
			return moat_session_on_pubrec_failed(c->session, id);
		return moat_session_on_pubrec(c->session, id);
	case MQTT_PUBCOMP:
		return moat_session_on_pubcomp(c->session, id);
	default:
		return MOAT_EPROTO;
	}
}

static int handle_disconnect(struct moat_conn *c, const uint8_t *body,
			     size_t len)
{
	uint8_t reason;
	struct moat_mqtt_props props;
	int rc = moat_mqtt_decode_disconnect_v(body, len, c->proto_level,
					       &reason, &props);
	if (rc)
		return rc;
	struct moat_session *s = c->session;
	if (moat_props_has(&props, PROP_SESSION_EXPIRY)) {
		/* 0 at CONNECT cannot become non-zero [MQTT-3.14.2-2] */
		if (s->expiry_s == 0 && props.session_expiry != 0)
			return MOAT_EPROTO;
		s->expiry_s = props.session_expiry;
	}
	/* Only a normal disconnection (0x00) deletes the will
	 * [MQTT-3.14.4-3]; 0x04 and the error reasons publish it. */
	c->will_discard = reason == RC_SUCCESS;
	char why[64];
	snprintf(why, sizeof(why), "client sent DISCONNECT (0x%02x)", reason);
	moat_conn_close(c, why);
	return MOAT_OK;
}

static int dispatch(struct moat_conn *c, uint8_t tf, const uint8_t *body,
		    size_t len)
{
	uint8_t type = tf >> 4;
	uint8_t pkt[2];
	/* Flags and "CONNECT first" [MQTT-3.1.0-1] were checked on the
	 * fixed header in moat_conn_process_input. */
	if (c->bridge) { /* we are the client: bridge.c answers the rest */
		int rc = moat__bridge_packet(c, tf, body, len);
		if (rc != MOAT_DECLINED)
			return rc;
	}
	switch (type) {
	case MQTT_CONNECT:
		if (c->state != CONN_NEW)
			return MOAT_EPROTO; /* [MQTT-3.1.0-2] */
		return moat__handle_connect(c, body, len);
	case MQTT_PUBLISH:
		return moat__handle_publish(c, tf & 0x0F, body, len);
	case MQTT_PUBACK:
	case MQTT_PUBREC:
	case MQTT_PUBCOMP:
		return handle_ack(c, type, body, len);
	case MQTT_PUBREL:
		return moat__handle_pubrel(c, body, len);
	case MQTT_SUBSCRIBE:
		return moat__handle_subscribe(c, body, len);
	case MQTT_UNSUBSCRIBE:
		return moat__handle_unsubscribe(c, body, len);
	case MQTT_PINGREQ:
		if (len)
			return MOAT_EMALFORMED;
		moat_mqtt_simple_encode(pkt, MQTT_PINGRESP);
		return moat_conn_send(c, pkt, 2);
	case MQTT_DISCONNECT:
		return handle_disconnect(c, body, len);
	case MQTT_AUTH: /* no enhanced authentication was started */
	default:
		return MOAT_EPROTO; /* server-to-client packet types */
	}
}

/* The one place where a handler's error becomes a close and a log line
 * (and, for MQTT 5, a DISCONNECT with the matching reason code). */
static void close_for(struct moat_conn *c, int rc, uint8_t type)
{
	char why[96];
	const char *what;
	uint8_t reason;
	switch (rc) {
	case MOAT_EMALFORMED: what = "malformed packet"; reason = RC_MALFORMED; break;
	case MOAT_EUTF8: what = "invalid UTF-8 in a string"; reason = RC_MALFORMED; break;
	case MOAT_EPROTO: what = "protocol violation"; reason = RC_PROTOCOL_ERROR; break;
	case MOAT_ELIMIT: what = "limit exceeded"; reason = RC_QUOTA_EXCEEDED; break;
	case MOAT_EDENIED: what = "not authorised"; reason = RC_NOT_AUTHORIZED; break;
	case MOAT_ENOMEM: what = "out of memory"; reason = RC_SERVER_BUSY; break;
	default: what = moat_strerror(rc); reason = RC_UNSPECIFIED; break;
	}
	snprintf(why, sizeof(why), "%s (packet type %u)", what, type);
	moat_conn_disconnect(c, reason, why);
}

/* Handle every complete packet in `in` (c->in or the worker's rbuf). */
static bool process_packets(struct moat_conn *c, struct moat_buf *in)
{
	const struct moat_config *cfg = c->w->cfg;
	while (c->state != CONN_CLOSED && c->reading) {
		/* Tighter before CONNECT is accepted. */
		size_t limit = (size_t)(c->state == CONN_NEW
						? cfg->max_connect_packet_size
						: cfg->max_packet_size);
		size_t used = moat_buf_used(in);
		const uint8_t *p = in->data + in->off;
		uint8_t tf;
		uint32_t rl;
		size_t hl;
		int rc = moat_mqtt_fixed_header(p, used, &tf, &rl, &hl);
		if (rc == MOAT_EAGAIN)
			break;
		if (rc) {
			close_for(c, rc, (uint8_t)(p[0] >> 4));
			return false;
		}
		/* Judge the header before waiting for the body, so garbage
		 * (say, an HTTP request) is refused at once. */
		bool auth5 = tf == 0xF0 && c->proto_level == MQTT_PROTO_V5;
		if ((!auth5 && (rc = moat_mqtt_check_flags(tf)) != MOAT_OK) ||
		    (c->state == CONN_NEW &&
		     (tf >> 4) != (c->bridge ? MQTT_CONNACK : MQTT_CONNECT))) {
			close_for(c, rc ? rc : MOAT_EPROTO, (uint8_t)(tf >> 4));
			return false;
		}
		if (hl + rl > limit) {
			char why[96];
			snprintf(why, sizeof(why), "packet of %zu bytes exceeds %s",
				 hl + (size_t)rl,
				 c->state == CONN_NEW ? "max_connect_packet_size"
						      : "max_packet_size");
			/* [MQTT-3.2.2-15] 0x95 Packet too large */
			moat_conn_disconnect(c, RC_PACKET_TOO_LARGE, why);
			return false;
		}
		if (used < hl + rl)
			break;
		rc = dispatch(c, tf, p + hl, rl);
		if (rc == MOAT_CONN_HANDED_OVER)
			return false; /* another worker owns c now */
		if (rc == MOAT_EAGAIN) {
			/* Login back-off: the CONNECT stays buffered and
			 * reading stops until the worker's tick resumes it. */
			c->reading = false;
			update_events(c);
			return true;
		}
		if (rc) {
			close_for(c, rc, (uint8_t)(tf >> 4));
			return false;
		}
		if (c->state == CONN_CLOSED)
			return false;
		moat_buf_consume(in, hl + rl);
		c->last_rx_ms = c->w->now_ms;
		if (!moat_conn_can_send(c) && c->state == CONN_ACTIVE) {
			/* Back-pressure: stop reading from a peer that does
			 * not read what we send it. */
			c->reading = false;
			update_events(c);
		}
	}
	return c->state != CONN_CLOSED;
}

bool moat_conn_process_input(struct moat_conn *c)
{
	if (!process_packets(c, &c->in))
		return false;
	/* Only an incomplete packet is kept between reads. */
	if (!moat_buf_used(&c->in))
		moat_buf_cleanup(&c->in);
	return true;
}

/* Read once into the worker's rbuf and handle what came; the bytes left
 * (an incomplete packet, or packets left while reading paused) move to
 * c->in.  Before CONNECT is accepted every byte read moves to c->in
 * first: the CONNECT may hand c over to another worker with them.
 * Returns bytes read (0: would block), or -1 when c is closed or was
 * handed over. */
static ssize_t read_via_worker(struct moat_conn *c, uint8_t *dst,
			       size_t want)
{
	struct moat_worker *w = c->w;
	struct moat_buf *in = &w->rbuf;
	char why[400];
	ssize_t n = transport_read(c, dst, want, why, sizeof(why));
	if (n < 0) {
		moat_conn_close(c, why);
		return -1;
	}
	if (n == 0)
		return 0;
	moat_buf_commit(in, (size_t)n);
	MOAT_WSTAT_ADD(w, bytes_in[moat__conn_proto(c)], (uint64_t)n);
	bool open = true;
	if (c->state == CONN_ACTIVE) {
		w->rbuf_busy = true;
		open = process_packets(c, in);
		w->rbuf_busy = false;
	}
	if (open && moat_buf_used(in) &&
	    moat_buf_append(&c->in, in->data + in->off,
			    moat_buf_used(in)) != MOAT_OK) {
		moat_conn_close(c, "out of memory for input");
		open = false;
	}
	moat_buf_consume(in, moat_buf_used(in));
	if (open && c->state == CONN_NEW)
		open = moat_conn_process_input(c);
	return open ? n : -1;
}

/* Read once and handle what came: into the worker's rbuf when c has
 * nothing buffered, so that connections hold no input buffer between
 * packets (not when rbuf is in use further up the stack).  Returns bytes
 * read (0: would block), or -1 when c is closed or was handed over. */
static ssize_t read_some(struct moat_conn *c)
{
	size_t room = c->in.max - moat_buf_used(&c->in);
	size_t want = MOAT_MIN(MOAT_READ_CHUNK, room);
	uint8_t *dst;
	if (!moat_buf_used(&c->in) && !c->w->rbuf_busy && want &&
	    (dst = moat_buf_reserve(&c->w->rbuf, want)) != NULL)
		return read_via_worker(c, dst, want);
	dst = want ? moat_buf_reserve(&c->in, want) : NULL;
	if (!dst) {
		moat_conn_close(c, "out of memory for input");
		return -1;
	}
	char why[400];
	ssize_t n = transport_read(c, dst, want, why, sizeof(why));
	if (n < 0) {
		moat_conn_close(c, why);
		return -1;
	}
	if (n == 0)
		return 0;
	moat_buf_commit(&c->in, (size_t)n);
	MOAT_WSTAT_ADD(c->w, bytes_in[moat__conn_proto(c)], (uint64_t)n);
	return moat_conn_process_input(c) ? n : -1;
}

void moat_conn_on_readable(struct moat_conn *c)
{
	unsigned want = moat_net_wants(c->net);
	if (want & MOAT_NET_READ_WANTS_WRITE) { /* the retry it waited for */
		moat_net_clear_want(c->net, MOAT_NET_READ_WANTS_WRITE);
		update_events(c); /* else EPOLLOUT stays armed: a busy loop */
	}
	if (want & MOAT_NET_WRITE_WANTS_READ) { /* a write waited for input */
		moat_net_clear_want(c->net, MOAT_NET_WRITE_WANTS_READ);
		update_events(c);
		moat_conn_flush(c);
		if (c->state == CONN_CLOSED)
			return;
	}
	/* TLS and WebSocket keep bytes they could not hand over yet: go on
	 * while they have some, since the socket will not signal them
	 * again. */
	do {
		if (read_some(c) <= 0)
			return;
	} while (c->reading && moat_net_pending(c->net) > 0);
}

/* Write what is buffered and not waiting for the store.  Returns true
 * when all of that went out. */
static bool write_out(struct moat_conn *c)
{
	size_t can;
	if (c->net->want & MOAT_NET_HAS_OUTPUT) { /* (only a top layer) */
		/* The layers' own bytes first (a handshake answer, a pong). */
		char why[400];
		int r = moat_net_flush(c->net, why, sizeof(why));
		if (r < 0) {
			moat_conn_close(c, why);
			return false;
		}
		if (r == MOAT_NET_AGAIN)
			return false;
		update_events(c);
	}
	while ((can = moat__store_writable(c, moat_buf_used(&c->out))) != 0) {
		char why[400];
		ssize_t n = transport_write(c, c->out.data + c->out.off, can,
					    why, sizeof(why));
		if (n > 0) {
			c->out_done += (uint64_t)n;
			moat_buf_consume(&c->out, (size_t)n);
			MOAT_WSTAT_ADD(c->w, bytes_out[moat__conn_proto(c)],
				       (uint64_t)n);
			continue;
		}
		if (n == 0)
			return false;
		moat_conn_close(c, why);
		return false;
	}
	return true;
}

void moat_conn_flush(struct moat_conn *c)
{
	/* Bounded: each round either blocks or empties the buffer. */
	for (int round = 0; round < 8 && c->state != CONN_CLOSED; round++) {
		if (!write_out(c)) {
			if (c->state != CONN_CLOSED && !c->epollout) {
				c->epollout = true;
				update_events(c);
			}
			return;
		}
		size_t before = moat_buf_used(&c->out);
		if (c->session)
			moat_session_pump(c->session);
		if (c->state == CONN_CLOSED || moat_buf_used(&c->out) == before)
			break;
	}
	if (c->state == CONN_CLOSED)
		return;
	/* Round limit reached (bytes behind a store gate are not pending
	 * on the socket: the store's commit wakes us for them). */
	bool pending = moat__store_writable(c, moat_buf_used(&c->out)) != 0;
	bool change = c->epollout != pending;
	c->epollout = pending;
	/* Resume reading as soon as the output is below the soft limit, not
	 * only when it is empty: a subscriber kept busy by a steady stream
	 * must still have its PINGREQs read.  (moat_conn_can_send implies
	 * CONN_ACTIVE: a CONNECT held by login back-off stays held.) */
	if (!c->reading && moat_conn_can_send(c)) {
		c->reading = true;
		change = true;
	}
	if (change)
		update_events(c);
	if (!moat_buf_used(&c->out) && c->out.cap <= OUT_FREE_AT_ONCE)
		moat_buf_cleanup(&c->out);
	/* Packets may have waited in the input buffer (or inside TLS) while
	 * paused. */
	if (c->reading && c->state == CONN_ACTIVE) {
		if (moat_buf_used(&c->in) && !moat_conn_process_input(c))
			return;
		if (c->reading && moat_net_pending(c->net) > 0)
			moat_conn_on_readable(c);
	}
}

void moat_conn_trim(struct moat_conn *c)
{
	if (!moat_buf_used(&c->out))
		moat_buf_cleanup(&c->out);
	if (c->session)
		moat_session_trim(c->session);
}

void moat_conn_resume_input(struct moat_conn *c)
{
	c->reading = true;
	update_events(c);
	if (moat_buf_used(&c->in) && !moat_conn_process_input(c))
		return;
	/* TLS may hold decrypted bytes the socket will not signal again. */
	if (c->reading && c->state != CONN_CLOSED &&
	    moat_net_pending(c->net) > 0)
		moat_conn_on_readable(c);
}

void moat_conn_on_writable(struct moat_conn *c)
{
	moat_conn_flush(c);
}
