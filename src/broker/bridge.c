/* Bridges to remote brokers (docs/bridges.md), in the worker's own event
 * loop.  The connection to the remote is an ordinary moat_conn in the
 * client role (c->bridge): the transport stack, framing, output buffer,
 * keep-alive timeout and the PUBLISH/acknowledgement handlers are the
 * broker's own; this file adds what a client does (CONNECT, CONNACK,
 * SUBSCRIBE, PINGREQ, reconnecting) with the client protocol of
 * client/client_proto.c and the codec.  The local side is a session that
 * lives as long as the broker: its subscriptions are the out topics, so
 * while the remote is away QoS 1/2 messages wait in its queue within
 * max_queued_messages / max_queued_bytes (beyond: dropped and counted),
 * and its in-flight window is resent on every new connection. */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/rand.h>

#include "bridge_int.h"
#include "client/client_proto.h"
#include "codec/mqtt5.h"
#include "net/net_tls.h"
#include "net/tls_client.h"

#define MAX_FILTER 400 /* prefix + pattern (cfg.h sizes) */

static void add(atomic_uint_fast64_t *a, uint64_t v)
{
	/* One writer (the home worker): no read-modify-write needed. */
	atomic_store_explicit(a,
			      atomic_load_explicit(a, memory_order_relaxed) + v,
			      memory_order_relaxed);
}

static const char *where(const struct moat_bridge *br, char *buf, size_t sz)
{
	const struct moat_bridge_addr *a = &br->cfg->addrs[br->addr];
	snprintf(buf, sz, strchr(a->host, ':') ? "[%s]:%u" : "%s:%u", a->host,
		 (unsigned)a->port);
	return buf;
}

/* ---- back-off ---------------------------------------------------------- */

/* mosquitto's restart_timeout: a constant BASE, or jitter between BASE
 * and three times the last wait, capped ("decorrelated jitter"). */
static uint64_t next_wait(struct moat_bridge *br)
{
	uint64_t base = br->cfg->restart_base_ms, cap = br->cfg->restart_cap_ms;
	if (!cap)
		return base;
	if (!br->wait_ms)
		return br->wait_ms = base;
	uint64_t hi = MOAT_MIN(cap, br->wait_ms * 3u);
	uint32_t r = 0;
	if (hi < base)
		hi = base;
	if (RAND_bytes((unsigned char *)&r, sizeof(r)) != 1)
		r = (uint32_t)moat_now_ms();
	br->wait_ms = MOAT_MIN(cap, base + (uint64_t)r % (hi - base + 1));
	return br->wait_ms;
}

/* A connection this long proves the remote good: the back-off starts over
 * (one that breaks at once, however often accepted, keeps backing off). */
#define BRIDGE_GOOD_MS 60000u

/* The attempt failed or the connection ended: wait, then the next
 * address (or the first one again, round_robin false, after a
 * connection that worked). */
static void schedule(struct moat_bridge *br, bool was_up, const char *why)
{
	char at[300];
	if (was_up && br->w->now_ms - br->up_ms >= BRIDGE_GOOD_MS)
		br->wait_ms = 0;
	where(br, at, sizeof(at));
	size_t n = br->cfg->naddrs;
	if (was_up)
		br->addr = br->cfg->round_robin ? (br->addr + 1) % n : 0;
	else
		br->addr = (br->addr + 1) % n;
	uint64_t wait = next_wait(br);
	br->phase = BRIDGE_WAIT;
	br->next_ms = br->w->now_ms + wait;
	if (was_up)
		moat_warn("bridge %s: connection to %s lost: %s; reconnecting "
			  "in %.1f s",
			  br->cfg->name, at, why, (double)wait / 1000.0);
	else
		moat_warn("bridge %s: cannot connect to %s: %s; next attempt "
			  "in %.1f s",
			  br->cfg->name, at, why, (double)wait / 1000.0);
	if (!was_up)
		add(&br->failures, 1);
}

/* ---- connecting --------------------------------------------------------- */

static int send_connect(struct moat_bridge *br)
{
	const struct moat_bridge_cfg *bc = br->cfg;
	struct moat_conn *c = br->c;
	bool v5 = br->version == MQTT_PROTO_V5;
	bool remote_note = bc->notifications && !bc->notifications_local_only;
	uint8_t pb[32];
	struct moat_pw pw;
	moat_pw_init(&pw, pb, sizeof(pb));
	if (v5) {
		/* cleansession false: the remote keeps our subscriptions
		 * and queues for us however long we are away. */
		moat_pw_u32(&pw, PROP_SESSION_EXPIRY,
			    bc->cleansession ? 0 : UINT32_MAX);
		moat_pw_u32(&pw, PROP_MAXIMUM_PACKET_SIZE,
			    (uint32_t)MOAT_MIN(c->w->cfg->max_packet_size,
					       (uint64_t)268435460u));
	}
	struct moat_bytes props = {pw.p, pw.len}, none = {NULL, 0};
	struct moat_mqtt_connect_opts co = {
		/* try_private: the bridge bit in a 3.1.1 level (mosquitto) */
		.proto_level = v5 ? MQTT_PROTO_V5
			     : bc->try_private
				     ? (uint8_t)(0x80 | MQTT_PROTO_V311)
				     : MQTT_PROTO_V311,
		.clean_session = bc->cleansession,
		.keepalive = (uint16_t)bc->keepalive,
		.client_id = bc->remote_clientid,
		.username = bc->remote_username[0] ? bc->remote_username : NULL,
		.password = (const uint8_t *)bc->remote_password,
		.password_len = strlen(bc->remote_password),
		.has_password = bc->remote_password[0] != '\0',
		.will_topic = remote_note ? bc->notification_topic : NULL,
		.will_payload = (const uint8_t *)"0",
		.will_payload_len = 1,
		.will_qos = 1,
		.will_retain = true,
		.props = &props,
		.will_props = &none,
	};
	int rc = moat_mqtt_connect_encode(&c->out, &co);
	if (rc == MOAT_OK)
		moat_worker_mark_dirty(c->w, c);
	return rc;
}

static void connect_to(struct moat_bridge *br, const struct addrinfo *ai)
{
	struct moat_worker *w = br->w;
	char why[128];
	int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
			0);
	if (fd < 0) {
		snprintf(why, sizeof(why), "socket: %s", strerror(errno));
		schedule(br, false, why);
		return;
	}
	int one = 1;
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (connect(fd, ai->ai_addr, ai->ai_addrlen) != 0 &&
	    errno != EINPROGRESS) {
		snprintf(why, sizeof(why), "%s", strerror(errno));
		close(fd);
		schedule(br, false, why);
		return;
	}
	union moat_sockaddr sa;
	memset(&sa, 0, sizeof(sa));
	memcpy(&sa, ai->ai_addr, MOAT_MIN((size_t)ai->ai_addrlen, sizeof(sa)));
	struct moat_conn *c = moat_conn_new(w, fd, &sa);
	if (!c || moat_conn_attach(w, c) != MOAT_OK) {
		if (c)
			moat_conn_free(c); /* closes fd */
		else
			close(fd);
		schedule(br, false, "out of memory");
		return;
	}
	MOAT_STAT_ADD(w->b, connections, 1);
	c->bridge = br;
	c->proto_level = br->version;
	c->keepalive = (uint16_t)br->cfg->keepalive;
	c->authenticated = true; /* it is moatd's own configuration */
	c->username = moat_strdup(br->cfg->local_username);
	br->c = c;
	br->phase = BRIDGE_CONNECTING;
	if (!c->username) {
		moat_conn_close(c, "out of memory");
		return;
	}
	if (br->tls) {
		const char *host = br->cfg->addrs[br->addr].host;
		SSL *ssl = moat_tls_client_new(br->tls, fd, host);
		struct moat_net *n = ssl ? moat_net_tls_adopt(c->net, ssl) : NULL;
		if (!n) {
			SSL_free(ssl);
			moat_conn_close(c, "out of memory for TLS");
			return;
		}
		c->net = n;
	}
	if (send_connect(br) != MOAT_OK)
		moat_conn_close(c, "CONNECT does not encode (a field too long)");
}

static void attempt(struct moat_bridge *br)
{
	const struct moat_bridge_addr *a = &br->cfg->addrs[br->addr];
	snprintf(br->port, sizeof(br->port), "%u", (unsigned)a->port);
	struct addrinfo hints = {.ai_family = AF_UNSPEC,
				 .ai_socktype = SOCK_STREAM,
				 .ai_flags = AI_NUMERICHOST | AI_NUMERICSERV};
	struct addrinfo *ai = NULL;
	if (getaddrinfo(a->host, br->port, &hints, &ai) == 0) {
		connect_to(br, ai);
		freeaddrinfo(ai);
		return;
	}
	/* A name: resolved by glibc's own thread, never blocking the
	 * worker; the tick looks for the answer. */
	memset(&br->gai, 0, sizeof(br->gai));
	br->hints = hints;
	br->hints.ai_flags = AI_NUMERICSERV;
	br->gai.ar_name = a->host;
	br->gai.ar_service = br->port;
	br->gai.ar_request = &br->hints;
	struct gaicb *list[1] = {&br->gai};
	struct sigevent sev;
	memset(&sev, 0, sizeof(sev));
	sev.sigev_notify = SIGEV_NONE;
	if (getaddrinfo_a(GAI_NOWAIT, list, 1, &sev) != 0) {
		schedule(br, false, "cannot start resolving its name");
		return;
	}
	br->phase = BRIDGE_RESOLVING;
}

static void resolved(struct moat_bridge *br)
{
	int e = gai_error(&br->gai);
	if (e == EAI_INPROGRESS)
		return;
	if (e) {
		char why[400];
		snprintf(why, sizeof(why), "cannot resolve %s: %s",
			 br->cfg->addrs[br->addr].host, gai_strerror(e));
		schedule(br, false, why);
		return;
	}
	struct addrinfo *ai = br->gai.ar_result;
	br->gai.ar_result = NULL;
	connect_to(br, ai);
	freeaddrinfo(ai);
}

/* ---- the remote's packets ------------------------------------------------ */

/* The in and both lines, as SUBSCRIBE filters (remote side). */
static size_t in_filters(const struct moat_bridge *br,
			 char f[][MAX_FILTER], const char **v, uint8_t *qos)
{
	size_t n = 0;
	for (size_t i = 0; i < br->cfg->ntopics; i++) {
		const struct moat_bridge_topic *t = &br->cfg->topics[i];
		if (t->dir == MOAT_BRIDGE_OUT ||
		    !moat__bridge_filter(t, true, f[n], MAX_FILTER))
			continue;
		v[n] = f[n];
		qos[n++] = t->qos;
	}
	return n;
}

static int send_subscribe(struct moat_bridge *br)
{
	char f[MOAT_CFG_MAX_BRIDGE_TOPICS][MAX_FILTER];
	const char *v[MOAT_CFG_MAX_BRIDGE_TOPICS];
	uint8_t o[MOAT_CFG_MAX_BRIDGE_TOPICS];
	size_t n = in_filters(br, f, v, o);
	if (!n)
		return MOAT_OK;
	br->sub_id = moat__session_take_id(br->s);
	int rc;
	if (br->version == MQTT_PROTO_V5) {
		/* No Local: nothing we publish there comes back; Retain As
		 * Published: retained stays retained here. */
		for (size_t i = 0; i < n; i++)
			o[i] |= 0x04 | 0x08;
		rc = moat_mqtt5_sub_encode(&br->c->out, MQTT_SUBSCRIBE,
					   br->sub_id, v, o, n, NULL);
	} else {
		rc = moat_mqtt_subscribe_encode(&br->c->out, br->sub_id, v, o,
						n);
	}
	if (rc == MOAT_OK)
		moat_worker_mark_dirty(br->w, br->c);
	return rc;
}

/* "1" retained on the remote's notification topic (its will says 0). */
static int send_notification(struct moat_bridge *br)
{
	const struct moat_bridge_cfg *bc = br->cfg;
	if (!bc->notifications || bc->notifications_local_only)
		return MOAT_OK;
	size_t tl = strlen(bc->notification_topic);
	bool v5 = br->version == MQTT_PROTO_V5;
	size_t n = v5 ? moat_mqtt5_publish_size(tl, 0, 1, 0)
		      : moat_mqtt_publish_size(tl, 1, 0);
	uint8_t *dst = n ? moat_conn_reserve(br->c, n) : NULL;
	if (!dst)
		return MOAT_ELIMIT;
	if (v5)
		moat_mqtt5_publish_encode(dst, (const uint8_t *)bc->notification_topic,
					  tl, NULL, 0, NULL, 0,
					  (const uint8_t *)"1", 1, 0, true,
					  false, 0);
	else
		moat_mqtt_publish_encode(dst, (const uint8_t *)bc->notification_topic,
					 tl, (const uint8_t *)"1", 1, 0, true,
					 false, 0);
	moat_conn_commit(br->c, n);
	return MOAT_OK;
}

/* A remote's MQTT 5 Maximum QoS below an out line's QoS: messages at that
 * QoS are a protocol error there (moatd does not downgrade in flight). */
static void check_max_qos(const struct moat_bridge *br,
			  const struct moat_client_connack *ca)
{
	if (!moat_props_has(&ca->props, PROP_MAXIMUM_QOS))
		return;
	for (size_t i = 0; i < br->cfg->ntopics; i++) {
		const struct moat_bridge_topic *t = &br->cfg->topics[i];
		if (t->dir != MOAT_BRIDGE_IN && t->qos > ca->props.maximum_qos)
			moat_warn("bridge %s: the remote accepts QoS %u at "
				  "most, but topic %s sends at QoS %u: lower "
				  "it to %u",
				  br->cfg->name, ca->props.maximum_qos,
				  t->pattern[0] ? t->pattern : t->local_prefix,
				  t->qos, ca->props.maximum_qos);
	}
}

static int on_connack(struct moat_bridge *br, const uint8_t *body, size_t len)
{
	struct moat_conn *c = br->c;
	struct moat_client_connack ca;
	if (c->state != CONN_NEW)
		return MOAT_EPROTO;
	int rc = moat_client_connack_decode(body, len, br->version, &ca);
	if (rc)
		return rc;
	if (ca.downgraded || ca.rc) {
		char r[300], why[400];
		moat_client_connack_refusal(&ca, r, sizeof(r));
		snprintf(why, sizeof(why), "the remote refused: %s%s", r,
			 ca.downgraded ? " (it speaks 3.1.1 only: set "
					 "bridge_protocol_version mqttv311)"
				       : "");
		moat_conn_close(c, why);
		return MOAT_OK;
	}
	c->state = CONN_ACTIVE;
	MOAT_STAT_ADD(br->b, clients_connected, 1);
	if (moat_props_has(&ca.props, PROP_RECEIVE_MAXIMUM))
		c->client_receive_max = ca.props.receive_maximum;
	if (moat_props_has(&ca.props, PROP_MAXIMUM_PACKET_SIZE))
		c->client_max_packet = ca.props.maximum_packet_size;
	if (moat_props_has(&ca.props, PROP_SERVER_KEEPALIVE))
		c->keepalive = ca.props.server_keepalive;
	check_max_qos(br, &ca);
	struct moat_session *s = br->s;
	if (!ca.session_present) {
		/* A new session there: its QoS 2 packet ids start over, and
		 * one still pending here would swallow a new message. */
		MOAT_FREE(s->qos2_in);
		s->qos2_pending = 0;
	}
	s->conn = c;
	c->session = s;
	atomic_store_explicit(&s->online, true, memory_order_relaxed);
	if ((rc = send_subscribe(br)) != MOAT_OK ||
	    (rc = send_notification(br)) != MOAT_OK)
		return rc;
	br->phase = BRIDGE_UP;
	s->drop_logged = false; /* one line per outage that drops */
	br->ping_ms = br->up_ms = c->w->now_ms;
	br->state_dirty = true;
	atomic_store(&br->up, true);
	add(&br->connects, 1);
	char at[300];
	moat_notice("bridge %s: connected to %s (MQTT %s%s%s)", br->cfg->name,
		    where(br, at, sizeof(at)),
		    br->version == MQTT_PROTO_V5 ? "5.0" : "3.1.1",
		    moat_conn_transport(c),
		    ca.session_present ? ", session resumed" : "");
	/* What waited while the remote was away goes now: the unacknowledged
	 * window again (DUP), then the queue. */
	moat_session_resume(s);
	return MOAT_OK;
}

static int on_suback(struct moat_bridge *br, const uint8_t *body, size_t len)
{
	struct moat_client_suback sa;
	int rc = moat_client_suback_decode(MQTT_SUBACK, body, len,
					   br->version, &sa);
	if (rc)
		return rc;
	char f[MOAT_CFG_MAX_BRIDGE_TOPICS][MAX_FILTER];
	const char *v[MOAT_CFG_MAX_BRIDGE_TOPICS];
	uint8_t o[MOAT_CFG_MAX_BRIDGE_TOPICS];
	size_t n = in_filters(br, f, v, o);
	if (sa.packet_id != br->sub_id || sa.ncodes != n)
		return MOAT_EPROTO;
	for (size_t i = 0; i < n; i++)
		if (sa.codes[i] >= 0x80)
			moat_warn("bridge %s: the remote refused the "
				  "subscription to %s (code 0x%02x): nothing "
				  "comes in on it",
				  br->cfg->name, v[i], sa.codes[i]);
	return MOAT_OK;
}

static int on_disconnect(struct moat_bridge *br, const uint8_t *body,
			 size_t len)
{
	uint8_t reason;
	struct moat_mqtt_props props;
	if (br->version != MQTT_PROTO_V5)
		return MOAT_EPROTO; /* a 3.1.1 server never sends one */
	int rc = moat_mqtt_decode_disconnect_v(body, len, br->version, &reason,
					       &props);
	if (rc)
		return rc;
	char why[96];
	snprintf(why, sizeof(why), "the remote sent DISCONNECT (0x%02x %s)",
		 reason, moat_mqtt_rc_name(reason));
	moat_conn_close(br->c, why);
	return MOAT_OK;
}

int moat__bridge_packet(struct moat_conn *c, uint8_t tf, const uint8_t *body,
			size_t len)
{
	struct moat_bridge *br = c->bridge;
	switch (tf >> 4) {
	case MQTT_CONNACK:
		return on_connack(br, body, len);
	case MQTT_SUBACK:
		return on_suback(br, body, len);
	case MQTT_PINGRESP:
		return len ? MOAT_EMALFORMED : MOAT_OK;
	case MQTT_DISCONNECT:
		return on_disconnect(br, body, len);
	case MQTT_PUBLISH:
	case MQTT_PUBACK:
	case MQTT_PUBREC:
	case MQTT_PUBREL:
	case MQTT_PUBCOMP:
		return MOAT_DECLINED; /* the broker's own handlers */
	default:
		return MOAT_EPROTO; /* a client's packets, or UNSUBACK */
	}
}

void moat__bridge_closed(struct moat_conn *c, const char *why)
{
	struct moat_bridge *br = c->bridge;
	bool was_up = br->phase == BRIDGE_UP;
	br->c = NULL;
	atomic_store(&br->up, false);
	if (was_up)
		br->state_dirty = true;
	if (br->b->shutting_down || atomic_load(&br->b->stopping))
		return;
	schedule(br, was_up, why);
}

/* ---- messages both ways ------------------------------------------------- */

int moat__bridge_send_publish(struct moat_conn *c, const struct moat_msg *m,
			      uint8_t qos, bool retain, bool dup, uint16_t id)
{
	struct moat_bridge *br = c->bridge;
	char stack[512], *t = stack;
	size_t cap = (size_t)m->topic_len + 130, tl, n;
	if (cap > sizeof(stack) && !(t = moat_malloc(cap)))
		return MOAT_ENOMEM;
	int rc = moat__bridge_map(br->cfg, false, (const uint8_t *)m->topic,
				  m->topic_len, t, cap, &tl);
	if (rc) {
		rc = MOAT_DECLINED; /* no out line (cannot happen: dropped) */
		goto out;
	}
	bool v5 = c->proto_level == MQTT_PROTO_V5;
	uint8_t pb[8];
	struct moat_pw pw;
	moat_pw_init(&pw, pb, sizeof(pb));
	if (v5 && m->expiry_ms) { /* the time left [MQTT-3.3.2-6] */
		moat_pw_u32(&pw, PROP_MESSAGE_EXPIRY,
			    moat_msg_expiry_left(m, c->w->now_ms));
	}
	n = v5 ? moat_mqtt5_publish_size(tl, pw.len + m->props_len,
					 m->payload_len, qos)
	       : moat_mqtt_publish_size(tl, m->payload_len, qos);
	if (!n || (c->client_max_packet && n > c->client_max_packet)) {
		rc = MOAT_DECLINED;
		goto out;
	}
	uint8_t *dst = moat_conn_reserve(c, n);
	if (!dst) {
		rc = MOAT_ELIMIT;
		goto out;
	}
	if (v5)
		moat_mqtt5_publish_encode(dst, (const uint8_t *)t, tl, pw.p,
					  pw.len, m->props, m->props_len,
					  m->payload, m->payload_len, qos,
					  retain, dup, id);
	else
		moat_mqtt_publish_encode(dst, (const uint8_t *)t, tl,
					 m->payload, m->payload_len, qos,
					 retain, dup, id);
	moat_conn_commit(c, n);
	MOAT_WSTAT_ADD(c->w, msgs_out[moat__conn_proto(c)][qos], 1);
	add(&br->msgs_out, 1);
out:
	if (t != stack)
		moat_free(t);
	return rc;
}

bool moat__bridge_map_in(struct moat_conn *c, struct moat_bytes *topic)
{
	struct moat_bridge *br = c->bridge;
	size_t need = topic->len + 130, n;
	if (br->tcap < need) {
		char *p = moat_realloc(br->tbuf, need);
		if (!p)
			return false;
		br->tbuf = p;
		br->tcap = need;
	}
	if (moat__bridge_map(br->cfg, true, topic->p, topic->len, br->tbuf,
			     br->tcap, &n) != MOAT_OK)
		return false;
	topic->p = (const uint8_t *)br->tbuf;
	topic->len = n;
	add(&br->msgs_in, 1);
	return true;
}

/* ---- back to the first address ------------------------------------------ */

/* While connected to a fail-over address (round_robin false), a TCP
 * connection to the first one is tried now and then, as mosquitto does;
 * once it is accepted the bridge moves back.  Numeric first addresses
 * only (a name would need resolving each time). */
#define PROBE_EVERY_MS 5000u

static void stop_probe(struct moat_bridge *br)
{
	if (br->probe_fd >= 0)
		close(br->probe_fd);
	br->probe_fd = -1;
}

static void start_probe(struct moat_bridge *br, uint64_t now)
{
	const struct moat_bridge_addr *a = &br->cfg->addrs[0];
	char port[8];
	struct addrinfo hints = {.ai_family = AF_UNSPEC,
				 .ai_socktype = SOCK_STREAM,
				 .ai_flags = AI_NUMERICHOST | AI_NUMERICSERV};
	struct addrinfo *ai = NULL;
	br->probe_ms = now + MOAT_MAX(br->cfg->restart_base_ms,
				      (uint64_t)PROBE_EVERY_MS);
	snprintf(port, sizeof(port), "%u", (unsigned)a->port);
	if (getaddrinfo(a->host, port, &hints, &ai) != 0)
		return;
	int fd = socket(ai->ai_family,
			SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd >= 0 && connect(fd, ai->ai_addr, ai->ai_addrlen) != 0 &&
	    errno != EINPROGRESS) {
		close(fd);
		fd = -1;
	}
	freeaddrinfo(ai);
	br->probe_fd = fd;
}

static void probe_primary(struct moat_bridge *br, uint64_t now)
{
	if (br->probe_fd < 0) {
		if (now >= br->probe_ms)
			start_probe(br, now);
		return;
	}
	struct pollfd p = {.fd = br->probe_fd, .events = POLLOUT};
	int err = 0;
	socklen_t len = sizeof(err);
	if (poll(&p, 1, 0) <= 0) {
		if (now >= br->probe_ms) /* no answer until the next try */
			stop_probe(br);
		return;
	}
	if (getsockopt(br->probe_fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
		err = errno;
	stop_probe(br);
	if (err)
		return;
	char at[300], first[300];
	const struct moat_bridge_addr *a = &br->cfg->addrs[0];
	snprintf(first, sizeof(first),
		 strchr(a->host, ':') ? "[%s]:%u" : "%s:%u", a->host,
		 (unsigned)a->port);
	moat_notice("bridge %s: the first address %s answers again; moving "
		    "back from %s",
		    br->cfg->name, first, where(br, at, sizeof(at)));
	/* (schedule, round_robin false: the first address next) */
	moat_conn_close(br->c, "moving back to the first address");
}

/* ---- the tick ----------------------------------------------------------- */

/* $SYS/broker/connection/NAME/state: 1 up, 0 not (retained, as
 * mosquitto's notifications). */
static void publish_state(struct moat_bridge *br)
{
	char topic[128];
	int n = snprintf(topic, sizeof(topic), "$SYS/broker/connection/%s/state",
			 br->cfg->name);
	const char *v = atomic_load(&br->up) ? "1" : "0";
	struct moat_msg *m = moat_msg_new((const uint8_t *)topic, (size_t)n,
					  (const uint8_t *)v, 1, 0, true);
	br->state_dirty = false;
	if (!m)
		return;
	moat_worker_route(br->w, m);
	moat_msg_unref(&m);
}

static void keepalive(struct moat_bridge *br, uint64_t now)
{
	uint64_t ka = (uint64_t)br->c->keepalive * 1000u;
	if (!ka || now - br->ping_ms < ka)
		return;
	uint8_t pkt[2];
	moat_mqtt_simple_encode(pkt, MQTT_PINGREQ);
	br->ping_ms = now;
	if (moat_conn_send(br->c, pkt, sizeof(pkt)) != MOAT_OK)
		moat_conn_close(br->c, "output buffer overflow");
}

void moat__bridge_tick(struct moat_worker *w, uint64_t now)
{
	struct moat_broker *b = w->b;
	for (size_t i = 0; i < b->nbridges; i++) {
		struct moat_bridge *br = &b->bridges[i];
		if (br->w != w)
			continue;
		if (br->phase == BRIDGE_WAIT && now >= br->next_ms)
			attempt(br);
		else if (br->phase == BRIDGE_RESOLVING)
			resolved(br);
		else if (br->phase == BRIDGE_UP && br->c)
			keepalive(br, now);
		if (br->phase == BRIDGE_UP && br->c && br->addr != 0 &&
		    !br->cfg->round_robin)
			probe_primary(br, now);
		else if (br->probe_fd >= 0)
			stop_probe(br);
		if (br->state_dirty)
			publish_state(br);
		atomic_store_explicit(&br->queued, br->s->qlen,
				      memory_order_relaxed);
		atomic_store_explicit(&br->dropped, br->s->dropped,
				      memory_order_relaxed);
	}
}

/* ---- start and stop ----------------------------------------------------- */

/* The client TLS context of bc in *out (NULL without TLS). */
static int make_tls(const struct moat_bridge_cfg *bc, SSL_CTX **out,
		    char *err, size_t errsz)
{
	char e[400];
	*out = NULL;
	if (!moat_bridge_tls(bc))
		return MOAT_OK;
	if (bc->keyfile[0] &&
	    moat_file_check_private(bc->keyfile, e, sizeof(e)) != MOAT_OK) {
		snprintf(err, errsz, "bridge %s: bridge_keyfile %s", bc->name,
			 e);
		return MOAT_EDENIED;
	}
	struct moat_tls_client_opts o = {
		.cafile = bc->cafile[0] ? bc->cafile : NULL,
		.capath = bc->capath[0] ? bc->capath : NULL,
		.certfile = bc->certfile[0] ? bc->certfile : NULL,
		.keyfile = bc->keyfile[0] ? bc->keyfile : NULL,
		.no_name_check = bc->insecure,
		.min_version = bc->tls_version == MOAT_TLS_13 ? TLS1_3_VERSION
							     : 0,
	};
	*out = moat_tls_client_ctx(&o, e, sizeof(e));
	if (!*out) {
		snprintf(err, errsz, "bridge %s: %s", bc->name, e);
		return MOAT_ETLS;
	}
	return MOAT_OK;
}

int moat__bridges_check(const struct moat_config *cfg, char *err,
			size_t errsz)
{
	for (size_t i = 0; i < cfg->nbridges; i++) {
		SSL_CTX *ctx;
		int rc = make_tls(&cfg->bridges[i], &ctx, err, errsz);
		if (rc)
			return rc;
		SSL_CTX_free(ctx);
	}
	return MOAT_OK;
}

/* The out lines as the local session's subscriptions (No Local, Retain
 * As Published), and the retained messages they match, queued for the
 * remote as a new subscriber gets them. */
static int subscribe_local(struct moat_bridge *br)
{
	struct moat_broker *b = br->b;
	size_t budget = (size_t)br->w->cfg->max_queued_messages;
	for (size_t i = 0; i < br->cfg->ntopics; i++) {
		const struct moat_bridge_topic *t = &br->cfg->topics[i];
		char f[MAX_FILTER];
		size_t n = moat__bridge_filter(t, false, f, sizeof(f));
		if (t->dir == MOAT_BRIDGE_IN || !n)
			continue;
		if (moat__session_restore_sub(br->s, f, n, NULL, 0, t->qos, 3,
					      0) != MOAT_OK)
			return MOAT_ENOMEM;
		struct moat_msg **v;
		size_t nr;
		if (!budget || moat_tree_retained(&b->tree, (const uint8_t *)f,
						  n, budget, &v,
						  &nr) != MOAT_OK)
			continue;
		budget -= nr;
		for (size_t k = 0; k < nr; k++) {
			moat_session_deliver(br->s, v[k],
					     MOAT_MIN(t->qos, v[k]->qos), true);
			moat_msg_unref(&v[k]);
		}
		moat_free(v);
	}
	return MOAT_OK;
}

static int start_one(struct moat_broker *b, size_t i, char *err,
		     size_t errsz)
{
	struct moat_bridge *br = &b->bridges[i];
	const struct moat_bridge_cfg *bc = &b->cfg.bridges[i];
	br->b = b;
	br->cfg = bc;
	br->w = &b->workers[i % b->nworkers];
	br->version = bc->protocol_version ? MQTT_PROTO_V5 : MQTT_PROTO_V311;
	br->state_dirty = true;
	br->probe_fd = -1;
	int rc = make_tls(bc, &br->tls, err, errsz);
	if (rc)
		return rc;
	br->s = moat_session_new(br->w, (const uint8_t *)bc->local_clientid,
				 strlen(bc->local_clientid), MOAT_EXPIRY_NEVER,
				 bc->local_username);
	if (!br->s) {
		snprintf(err, errsz, "bridge %s: out of memory", bc->name);
		return MOAT_ENOMEM;
	}
	MOAT_STAT_ADD(b, sessions, 1);
	/* Every message out is checked against the ACL as the bridge's
	 * user when it leaves (queued ones too). */
	br->s->acl_each = true;
	return MOAT_OK;
}

int moat__bridges_start(struct moat_broker *b, char *err, size_t errsz)
{
	if (!b->cfg.nbridges)
		return MOAT_OK;
	b->bridges = moat_calloc(b->cfg.nbridges, sizeof(*b->bridges));
	if (!b->bridges) {
		snprintf(err, errsz, "bridges: out of memory");
		return MOAT_ENOMEM;
	}
	b->nbridges = b->cfg.nbridges;
	for (size_t i = 0; i < b->nbridges; i++) {
		int rc = start_one(b, i, err, errsz);
		if (rc)
			return rc;
	}
	return MOAT_OK;
}

int moat__bridges_subscribe(struct moat_broker *b, char *err, size_t errsz)
{
	for (size_t i = 0; i < b->nbridges; i++) {
		struct moat_bridge *br = &b->bridges[i];
		const struct moat_bridge_cfg *bc = br->cfg;
		br->w->now_ms = moat_now_ms();
		/* A serial after every restored session's (No Local tells
		 * the bridge's own messages by it). */
		br->s->serial = atomic_fetch_add(&b->session_seq, 1) + 1;
		if (subscribe_local(br) != MOAT_OK) {
			snprintf(err, errsz, "bridge %s: out of memory",
				 bc->name);
			return MOAT_ENOMEM;
		}
		char at[300];
		moat_notice("bridge %s: to %s%s%s (MQTT %s%s), %zu topic "
			    "line%s, local user %s",
			    bc->name, where(br, at, sizeof(at)),
			    bc->naddrs > 1 ? " and fail-over addresses" : "",
			    moat_bridge_tls(bc) ? " over TLS" : "",
			    br->version == MQTT_PROTO_V5 ? "5.0" : "3.1.1",
			    br->version != MQTT_PROTO_V5 && bc->try_private
				    ? ", bridge bit"
				    : "",
			    bc->ntopics, bc->ntopics == 1 ? "" : "s",
			    bc->local_username);
	}
	return MOAT_OK;
}

/* A name still being resolved at shutdown: cancelled, or waited for (the
 * resolver's own timeouts bound it) so that its memory can go. */
static void stop_resolving(struct moat_bridge *br)
{
	if (gai_cancel(&br->gai) == EAI_NOTCANCELED) {
		const struct gaicb *list[1] = {&br->gai};
		struct timespec ts = {.tv_sec = 10};
		(void)gai_suspend(list, 1, &ts);
	}
	if (gai_error(&br->gai) == 0 && br->gai.ar_result)
		freeaddrinfo(br->gai.ar_result);
}

void moat__bridges_free(struct moat_broker *b)
{
	for (size_t i = 0; b->bridges && i < b->nbridges; i++) {
		struct moat_bridge *br = &b->bridges[i];
		if (br->phase == BRIDGE_RESOLVING)
			stop_resolving(br);
		if (br->cfg)
			stop_probe(br);
		if (br->c) {
			/* A normal DISCONNECT: the remote drops our will. */
			static const uint8_t disc[2] = {MQTT_DISCONNECT << 4,
							0};
			(void)moat_conn_send(br->c, disc, sizeof(disc));
			moat_conn_close(br->c, "broker shutting down");
		}
		if (br->s)
			moat_session_destroy(br->s);
		SSL_CTX_free(br->tls);
		moat_free(br->tbuf);
	}
	MOAT_FREE(b->bridges);
	b->nbridges = 0;
}

void moat__bridge_stat(const struct moat_broker *b, size_t i,
		       struct moat_bridge_stat *out)
{
	const struct moat_bridge *br = &b->bridges[i];
	out->name = br->cfg->name;
	out->up = atomic_load(&br->up);
	out->connects = atomic_load(&br->connects);
	out->failures = atomic_load(&br->failures);
	out->msgs_in = atomic_load(&br->msgs_in);
	out->msgs_out = atomic_load(&br->msgs_out);
	out->dropped = atomic_load(&br->dropped);
	out->queued = atomic_load(&br->queued);
}
