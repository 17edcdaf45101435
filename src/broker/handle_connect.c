/* CONNECT: validation, hand-over to the session's home worker, session
 * create/resume/takeover, CONNACK (3.1, 3.1.1 and 5.0). */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "auth/acl.h"
#include "broker_int.h"
#include "cluster/cluster_state.h"
#include "codec/mqtt5.h"
#include "net/net_socket.h"

/* Refuse a CONNECT: CONNACK with rc (v3 code space) or reason (v5), then
 * close [MQTT-3.2.2-4] [MQTT-3.2.2-6]. */
static int refuse(struct moat_conn *c, bool v5, uint8_t rc, uint8_t reason,
		  const char *why)
{
	if (v5) {
		uint8_t pb[160];
		struct moat_pw pw;
		size_t n = MOAT_MIN(strlen(why), (size_t)120);
		uint32_t max = c->client_max_packet;
		moat_pw_init(&pw, pb, sizeof(pb));
		/* Within the client's Maximum Packet Size [MQTT-3.1.2-24]:
		 * 2 + 3 bytes bare, 8 + n with the Reason String (dropped
		 * first [MQTT-3.2.2-19]); nothing at all below 5. */
		if (!max || 8 + n <= max)
			moat_pw_bytes(&pw, PROP_REASON_STRING, why, n);
		if (!max || max >= 5)
			(void)moat_mqtt5_connack(&c->out, false, reason, &pw);
	} else {
		uint8_t pkt[4];
		moat_mqtt_connack_encode(pkt, false, rc);
		(void)moat_conn_send(c, pkt, sizeof(pkt));
	}
	moat_conn_close(c, why);
	return MOAT_OK;
}

/* A unique id for a client that sent none [MQTT-3.1.3-6], homed on w so
 * that the connection needs no hand-over, and not the id of any session
 * on w (a client may have picked such an id itself). */
static void assign_id(struct moat_worker *w, char *out, size_t outsz)
{
	struct moat_broker *b = w->b;
	for (;;) {
		uint64_t seq = atomic_fetch_add(&b->client_seq, 1);
		snprintf(out, outsz, "auto-%016llx", (unsigned long long)seq);
		size_t len = strlen(out);
		if (moat_worker_home(b, (const uint8_t *)out, len) == w &&
		    !moat_worker_find_session(w, (const uint8_t *)out, len))
			return;
	}
}

/* The forwardable properties of a will or PUBLISH, in their order:
 * everything but Topic Alias, Message Expiry (kept as a deadline), Will
 * Delay and Subscription Identifiers.  *out is allocated (moat_free). */
int moat__forward_props(const struct moat_mqtt_props *p, uint8_t **out,
			size_t *len)
{
	*out = NULL;
	*len = 0;
	if (!p->raw.len)
		return MOAT_OK;
	uint8_t *v = moat_malloc(p->raw.len);
	if (!v)
		return MOAT_ENOMEM;
	size_t pos = 0, n = 0;
	struct moat_mqtt_prop_item it;
	while (moat_mqtt_props_next(&p->raw, &pos, &it)) {
		switch (it.id) {
		case PROP_PAYLOAD_FORMAT:
		case PROP_CONTENT_TYPE:
		case PROP_RESPONSE_TOPIC:
		case PROP_CORRELATION_DATA:
		case PROP_USER_PROPERTY:
			memcpy(v + n, it.wire.p, it.wire.len);
			n += it.wire.len;
			break;
		default:
			break;
		}
	}
	*out = v;
	*len = n;
	return MOAT_OK;
}

static int make_will(struct moat_conn *c, const struct moat_mqtt_connect5 *c5)
{
	const struct moat_mqtt_connect *cn = &c5->c;
	const struct moat_config *cfg = c->w->cfg;
	const struct moat_mqtt_props *wp = &c5->will_props;
	if (!cn->will_flag)
		return MOAT_OK;
	if (moat_topic_is_sys(cn->will_topic.p, cn->will_topic.len))
		return MOAT_EDENIED; /* $SYS is the broker's */
	/* A will is a publication: the ACL must allow it now (T-07). */
	if (!moat__acl_allows(c, (const char *)cn->will_topic.p,
			      cn->will_topic.len, MOAT_ACL_WRITE)) {
		char t[100];
		MOAT_STAT_ADD(c->w->b, acl_denials, 1);
		moat__security_event(c, "acl denial", "will topic %s",
				     moat_log_escape(cn->will_topic.p,
						     cn->will_topic.len, t,
						     sizeof(t)));
		return MOAT_EDENIED;
	}
	if (cn->will_topic.len > cfg->max_topic_length ||
	    moat_topic_levels(cn->will_topic.p, cn->will_topic.len) >
		    cfg->max_topic_levels)
		return MOAT_ELIMIT;
	if (wp->payload_format == 1 &&
	    !moat_utf8_valid(cn->will_payload.p, cn->will_payload.len))
		return MOAT_EUTF8; /* [MQTT-3.1.3-?] payload format invalid */
	struct moat_msg_extra x = {
		.has_expiry = moat_props_has(wp, PROP_MESSAGE_EXPIRY),
		.expiry_on_publish = true,
		.expiry_s = wp->message_expiry,
		.has_src = true,
		.src_user = c->username,
		.src_cid = c->connect_id,
	};
	uint8_t *props = NULL;
	if (moat__forward_props(wp, &props, &x.props_len) != MOAT_OK)
		return MOAT_ENOMEM;
	x.props = props;
	/* 3.1.1 cannot be told the limits: its will is held to them. */
	c->will = moat_msg_new5(cn->will_topic.p, cn->will_topic.len,
				cn->will_payload.p, cn->will_payload.len,
				(uint8_t)MOAT_MIN(cn->will_qos, cfg->max_qos),
				cn->will_retain && cfg->retain_available, &x);
	moat_free(props);
	if (!c->will)
		return MOAT_ENOMEM;
	c->will->store_id = moat__store_msg_id(c->w->b);
	c->will_delay_s = wp->will_delay;
	/* A will is a message like any other (docs/leaks.md): a blocked one
	 * is dropped, the connection goes on without it. */
	if (c->w->sec->leak_db &&
	    moat__leak_inspect(c->w, c->will, "will", c->connect_id,
			       c->username) == MOAT_LEAK_BLOCK) {
		char pb[MOAT_PEER_STRLEN];
		moat_info("%s: will dropped by leak_policy",
			  moat_conn_peer(c, pb));
		moat_msg_unref(&c->will);
	}
	return MOAT_OK;
}

/* Find, replace or create the session; returns it with session_present.
 * clean is Clean Session (3.1.1) or Clean Start (5.0). */
static bool same_owner(const char *a, const char *b)
{
	if (!a || !b)
		return a == b;
	return !strcmp(a, b);
}

static struct moat_session *open_session(struct moat_conn *c,
					 const uint8_t *id, size_t len,
					 bool clean, uint32_t expiry,
					 bool *present, bool *foreign)
{
	struct moat_worker *w = c->w;
	struct moat_session *s = moat_worker_find_session(w, id, len);
	*present = false;
	*foreign = false;
	/* A session belongs to the identity that made it: another user may
	 * neither take it over nor delete it (T-08). */
	if (s && !same_owner(s->owner, c->username)) {
		*foreign = true;
		return NULL;
	}
	if (s && s->conn) /* takeover [MQTT-3.1.4-2] */
		moat_conn_disconnect(s->conn, RC_SESSION_TAKEN_OVER,
				     "session taken over by a new connection "
				     "with the same client id");
	/* A session that ended with its connection is gone; look again. */
	s = moat_worker_find_session(w, id, len);
	if (s && clean) {
		moat_session_destroy(s); /* [MQTT-3.1.2-6] [MQTT-3.1.2-4] */
		s = NULL;
	}
	if (s) {
		*present = true; /* [MQTT-3.2.2-2] */
		/* A delayed will is cancelled by the return [MQTT-3.1.3-9]. */
		moat_msg_unref(&s->will);
		s->expiry_s = expiry;
		return s;
	}
	if (MOAT_STAT_GET(w->b, sessions) >= w->cfg->max_sessions)
		return NULL;
	s = moat_session_new(w, id, len, expiry, c->username);
	if (s && moat_worker_add_session(w, s) != MOAT_OK) {
		moat_session_discard(s);
		return NULL;
	}
	return s;
}

/* MQTT 5 CONNACK properties: the limits this broker enforces. */
static void connack_props(struct moat_conn *c, struct moat_pw *pw,
			  const char *assigned, uint16_t server_keepalive)
{
	const struct moat_config *cfg = c->w->cfg;
	uint64_t cap = cfg->persistent_client_expiration;
	struct moat_session *s = c->session;
	if (cap && s->expiry_s > cap) { /* [MQTT-3.2.2-?]: tell the client */
		s->expiry_s = (uint32_t)cap;
		moat_pw_u32(pw, PROP_SESSION_EXPIRY, s->expiry_s);
	}
	if (assigned)
		moat_pw_bytes(pw, PROP_ASSIGNED_CLIENT_ID, assigned,
			      strlen(assigned));
	if (server_keepalive)
		moat_pw_u16(pw, PROP_SERVER_KEEPALIVE, server_keepalive);
	if (cfg->max_inflight_messages < 65535)
		moat_pw_u16(pw, PROP_RECEIVE_MAXIMUM,
			    (uint16_t)cfg->max_inflight_messages);
	if (cfg->max_qos < 2)
		moat_pw_u8(pw, PROP_MAXIMUM_QOS, (uint8_t)cfg->max_qos);
	if (!cfg->retain_available)
		moat_pw_u8(pw, PROP_RETAIN_AVAILABLE, 0);
	moat_pw_u32(pw, PROP_MAXIMUM_PACKET_SIZE,
		    (uint32_t)cfg->max_packet_size);
	if (cfg->topic_alias_maximum)
		moat_pw_u16(pw, PROP_TOPIC_ALIAS_MAXIMUM,
			    (uint16_t)cfg->topic_alias_maximum);
	if (!cfg->wildcard_subscriptions)
		moat_pw_u8(pw, PROP_WILDCARD_SUB_AVAILABLE, 0);
	if (!cfg->subscription_identifiers)
		moat_pw_u8(pw, PROP_SUB_ID_AVAILABLE, 0);
	if (!cfg->shared_subscriptions)
		moat_pw_u8(pw, PROP_SHARED_SUB_AVAILABLE, 0);
}

/* Take the client's MQTT 5 limits [MQTT-3.1.2-*]. */
static void take_client_limits(struct moat_conn *c,
			       const struct moat_mqtt_props *p)
{
	if (moat_props_has(p, PROP_RECEIVE_MAXIMUM))
		c->client_receive_max = p->receive_maximum;
	if (moat_props_has(p, PROP_MAXIMUM_PACKET_SIZE))
		c->client_max_packet = p->maximum_packet_size;
	c->client_alias_max = p->topic_alias_maximum;
	if (moat_props_has(p, PROP_REQUEST_PROBLEM_INFO))
		c->problem_info = p->request_problem_info != 0;
}

static int send_connack(struct moat_conn *c, bool v5, bool present,
			const char *assigned, uint16_t server_keepalive)
{
	if (!v5) {
		uint8_t pkt[4];
		moat_mqtt_connack_encode(pkt, present, MQTT_CONNACK_ACCEPTED);
		return moat_conn_send(c, pkt, sizeof(pkt));
	}
	uint8_t pb[256];
	struct moat_pw pw;
	moat_pw_init(&pw, pb, sizeof(pb));
	connack_props(c, &pw, assigned, server_keepalive);
	int rc = moat_mqtt5_connack(&c->out, present, RC_SUCCESS, &pw);
	if (!rc)
		moat_worker_mark_dirty(c->w, c);
	return rc;
}

/* Decoding failures: v5 gets a CONNACK with the reason, v3 just a close
 * (or CONNACK 0x01 for an unsupported level). */
static int connect_failed(struct moat_conn *c, int rc, uint8_t crc,
			  uint8_t level)
{
	if (rc == MOAT_EPROTO && crc == MQTT_CONNACK_BAD_PROTOCOL)
		return refuse(c, false, crc, 0, "unsupported protocol level");
	if (level != MQTT_PROTO_V5 || crc == 0xFF)
		return rc;
	return refuse(c, true, 0,
		      rc == MOAT_EPROTO ? RC_PROTOCOL_ERROR : RC_MALFORMED,
		      rc == MOAT_EPROTO ? "protocol error in CONNECT"
					: "malformed CONNECT");
}

/* The part of CONNECT after the hand-over and authentication. */
static int connect_session(struct moat_conn *c,
			   const struct moat_mqtt_connect5 *c5, const uint8_t *id,
			   size_t idlen, const char *assigned, uint16_t keepalive,
			   uint16_t server_keepalive)
{
	struct moat_worker *w = c->w;
	struct moat_broker *b = w->b;
	const struct moat_config *cfg = w->cfg;
	const struct moat_mqtt_connect *cn = &c5->c;
	bool v5 = cn->proto_level == MQTT_PROTO_V5;
	int rc;
	if ((rc = make_will(c, c5)) == MOAT_EDENIED)
		return refuse(c, v5, MQTT_CONNACK_NOT_AUTHORIZED,
			      RC_NOT_AUTHORIZED, "will topic not authorised");
	if (rc == MOAT_EUTF8 && v5)
		return refuse(c, true, 0, RC_PAYLOAD_FORMAT_INVALID,
			      "will payload is not UTF-8 as its format says");
	if (rc == MOAT_ELIMIT && v5)
		return refuse(c, true, 0, RC_TOPIC_NAME_INVALID,
			      "will topic above max_topic_length or levels");
	if (rc != MOAT_OK)
		return rc;
	uint32_t expiry = v5 ? c5->props.session_expiry
			     : (cn->clean_session ? 0 : MOAT_EXPIRY_NEVER);
	if (expiry && moat__store_failing(b)) {
		/* A session that would not be kept is not promised. */
		moat_msg_unref(&c->will);
		return refuse(c, v5, MQTT_CONNACK_UNAVAILABLE,
			      RC_SERVER_UNAVAILABLE,
			      "persistence unavailable (store failing)");
	}
	bool present, foreign;
	/* Records from here on (a stored session ended by clean start, the
	 * new one) are durable before the CONNACK says so. */
	uint64_t records = moat__store_nrec(w), lost = w->store_lost;
	struct moat_session *s = open_session(c, id, idlen, cn->clean_session,
					      expiry, &present, &foreign);
	if (foreign) {
		moat_msg_unref(&c->will);
		MOAT_STAT_ADD(b, acl_denials, 1);
		moat__security_event(c, "acl denial",
				     "client id belongs to a session of "
				     "another user");
		return refuse(c, v5, MQTT_CONNACK_NOT_AUTHORIZED,
			      RC_NOT_AUTHORIZED,
			      "client id in use by another user");
	}
	if (!s) {
		moat_msg_unref(&c->will); /* never accepted: no will */
		return refuse(c, v5, MQTT_CONNACK_UNAVAILABLE,
			      MOAT_STAT_GET(b, sessions) >= cfg->max_sessions
				      ? RC_QUOTA_EXCEEDED
				      : RC_SERVER_UNAVAILABLE,
			      MOAT_STAT_GET(b, sessions) >= cfg->max_sessions
				      ? "max_sessions reached"
				      : "out of memory for a session");
	}
	s->conn = c;
	atomic_store_explicit(&s->online, true, memory_order_relaxed);
	s->drop_logged = false;
	c->session = s;
	c->state = CONN_ACTIVE;
	c->keepalive = keepalive;
	if (v5)
		take_client_limits(c, &c5->props);
	uint64_t now = MOAT_STAT_ADD(b, clients_connected, 1) + 1;
	uint64_t max = MOAT_STAT_GET(b, clients_maximum);
	while (now > max && !atomic_compare_exchange_weak(
				    &b->stats.clients_maximum, &max, now))
		;
	/* Cluster mode: the other nodes end their sessions of this id. */
	if (b->cluster && !assigned)
		moat__cluster_sess_connected(c, id, idlen, cn->clean_session);
	/* A stored session is acknowledged once it is on disk. */
	moat__store_session(w, s);
	if (w->store_lost != lost)
		return MOAT_ENOMEM; /* could not be recorded: not promised */
	if (moat__store_nrec(w) != records)
		moat__store_gate(c);
	if ((rc = send_connack(c, v5, present, assigned, server_keepalive)) !=
	    MOAT_OK)
		return rc;
	char user[80];
	if (c->username)
		moat_log_escape((const uint8_t *)c->username,
				strlen(c->username), user, sizeof(user));
	char pb[MOAT_PEER_STRLEN], lid[MOAT_LOG_ID_LEN], fb[MOAT_FWD_STRLEN];
	moat_info("client %s connected from %s%s%s (protocol %u, clean %d, "
		  "keep-alive %u, session present %d, user %s)",
		  moat_session_log_id(s, lid), moat_conn_peer(c, pb),
		  moat_conn_forwarded(c, fb), moat_conn_transport(c),
		  cn->proto_level, cn->clean_session, keepalive, present,
		  c->username ? user : "(anonymous)");
	if (present)
		moat_session_resume(s);
	return MOAT_OK;
}

int moat__handle_connect(struct moat_conn *c, const uint8_t *body, size_t len)
{
	struct moat_worker *w = c->w;
	struct moat_broker *b = w->b;
	const struct moat_config *cfg = w->cfg;
	struct moat_mqtt_connect5 c5;
	struct moat_mqtt_connect *cn = &c5.c;
	uint8_t crc;
	char idbuf[32];

	int rc = moat_mqtt_decode_connect_v(body, len, cfg->mqtt5, &c5, &crc);
	if (rc)
		return connect_failed(c, rc, crc, cn->proto_level);
	bool v5 = cn->proto_level == MQTT_PROTO_V5;
	c->proto_level = cn->proto_level; /* for DISCONNECT encoding */
	if (v5 && moat_props_has(&c5.props, PROP_MAXIMUM_PACKET_SIZE))
		c->client_max_packet = c5.props.maximum_packet_size; /* refuse */
	if (v5 && moat_props_has(&c5.props, PROP_AUTH_DATA) &&
	    !moat_props_has(&c5.props, PROP_AUTH_METHOD))
		return refuse(c, true, 0, RC_PROTOCOL_ERROR,
			      "Authentication Data without a Method");
	if (v5 && moat_props_has(&c5.props, PROP_AUTH_METHOD))
		return refuse(c, true, 0, RC_BAD_AUTH_METHOD,
			      "no enhanced authentication method is "
			      "supported");
	if (v5 && cn->will_flag && cn->will_qos > cfg->max_qos)
		return refuse(c, true, 0, RC_QOS_NOT_SUPPORTED,
			      "will QoS above max_qos"); /* [MQTT-3.2.2-12] */
	if (v5 && cn->will_retain && !cfg->retain_available)
		return refuse(c, true, 0, RC_RETAIN_NOT_SUPPORTED,
			      "retained will while retain is not available");
	/* Keep-alive.  MQTT 5 is told the one to use [MQTT-3.2.2-21].  3.1.1
	 * and 3.1 cannot be: 0 (none, a legal choice) and long keep-alives
	 * are accepted as mosquitto does, and TCP keep-alive probes notice
	 * a vanished peer within 1.5 x max_keepalive instead; the old
	 * refusal is strict_keepalive's. */
	uint16_t keepalive = cn->keepalive, server_keepalive = 0;
	if (keepalive > cfg->max_keepalive || keepalive == 0) {
		if (v5)
			keepalive = server_keepalive =
				(uint16_t)cfg->max_keepalive;
		else if (cfg->strict_keepalive)
			return refuse(c, false, MQTT_CONNACK_ID_REJECTED, 0,
				      keepalive ? "keep-alive above "
						  "max_keepalive"
						: "keep-alive 0 (none) refused");
		else if (moat_net_tcp_keepalive(
				 c->fd, (unsigned)(cfg->max_keepalive * 3u /
						   2u)) != 0)
			moat_warn("cannot turn on TCP keep-alive: %s",
				  strerror(errno));
	}
	const uint8_t *id = cn->client_id.p;
	size_t idlen = cn->client_id.len;
	bool assigned = false;
	if (idlen == 0) {
		if (!v5 && (!cn->clean_session ||
			    cn->proto_level == MQTT_PROTO_V31)) /* [MQTT-3.1.3-8] */
			return refuse(c, false, MQTT_CONNACK_ID_REJECTED, 0,
				      "empty client id refused");
		if (!cfg->allow_zero_length_clientid)
			return refuse(c, v5, MQTT_CONNACK_ID_REJECTED,
				      RC_CLIENT_ID_INVALID,
				      "empty client id refused");
		assign_id(w, idbuf, sizeof(idbuf));
		id = (const uint8_t *)idbuf;
		idlen = strlen(idbuf);
		assigned = true;
	}
	struct moat_worker *home = moat_worker_home(b, id, idlen);
	if (home != w) {
		/* The session lives on its home worker: move the connection
		 * there; it parses this CONNECT again from its buffer. */
		moat_conn_detach(c);
		struct moat_inbox_item it = {.kind = INBOX_ADOPT, .conn = c};
		moat_worker_post(home, &it);
		return MOAT_CONN_HANDED_OVER;
	}
	/* Authenticate before anything can change: no session is taken
	 * over, deleted or created for a client that is not who it says. */
	char *cid = moat_strndup((const char *)id, idlen);
	if (!cid)
		return MOAT_ENOMEM;
	c->connect_id = cid; /* for %c in ACL patterns until the session */
	uint8_t v3rc, v5rc;
	const char *why = NULL;
	rc = moat__authenticate(c, cn, id, idlen, &v3rc, &v5rc, &why);
	if (rc == MOAT_OK)
		rc = connect_session(c, &c5, id, idlen, assigned ? idbuf : NULL,
				     keepalive, server_keepalive);
	else if (rc == MOAT_EDENIED)
		rc = refuse(c, v5, v3rc, v5rc, why);
	c->connect_id = NULL;
	moat_free(cid);
	return rc; /* MOAT_EAGAIN: held back by login back-off */
}
