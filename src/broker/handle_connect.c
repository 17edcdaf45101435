/* CONNECT: validation, hand-over to the session's home worker, session
 * create/resume/takeover, CONNACK. */
#include <stdio.h>
#include <string.h>

#include "broker_int.h"

static int refuse(struct moat_conn *c, uint8_t rc, const char *why)
{
	uint8_t pkt[4];
	moat_mqtt_connack_encode(pkt, false, rc); /* [MQTT-3.2.2-4] */
	(void)moat_conn_send(c, pkt, sizeof(pkt));
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

static int make_will(struct moat_conn *c, const struct moat_mqtt_connect *cn)
{
	const struct moat_config *cfg = &c->w->b->cfg;
	if (!cn->will_flag)
		return MOAT_OK;
	if (moat_topic_is_sys(cn->will_topic.p, cn->will_topic.len))
		return MOAT_EDENIED; /* $SYS is the broker's */
	if (cn->will_topic.len > cfg->max_topic_length ||
	    moat_topic_levels(cn->will_topic.p, cn->will_topic.len) >
		    cfg->max_topic_levels)
		return MOAT_ELIMIT;
	c->will = moat_msg_new(cn->will_topic.p, cn->will_topic.len,
			       cn->will_payload.p, cn->will_payload.len,
			       cn->will_qos,
			       cn->will_retain && cfg->retain_available);
	return c->will ? MOAT_OK : MOAT_ENOMEM;
}

/* Find, replace or create the session; returns it with session_present. */
static struct moat_session *open_session(struct moat_conn *c,
					 const uint8_t *id, size_t len,
					 bool clean, bool *present)
{
	struct moat_worker *w = c->w;
	struct moat_session *s = moat_worker_find_session(w, id, len);
	*present = false;
	if (s && s->conn) /* takeover [MQTT-3.1.4-2] */
		moat_conn_close(s->conn, "session taken over by a new "
					 "connection with the same client id");
	/* A clean session ended with its connection; look again. */
	s = moat_worker_find_session(w, id, len);
	if (s && clean) {
		moat_session_destroy(s); /* [MQTT-3.1.2-6] */
		s = NULL;
	}
	if (s) {
		*present = true; /* [MQTT-3.2.2-2] */
		return s;
	}
	if (MOAT_STAT_GET(w->b, sessions) >= w->b->cfg.max_sessions)
		return NULL;
	s = moat_session_new(w, id, len, clean);
	if (s)
		moat_worker_add_session(w, s);
	return s;
}

int moat__handle_connect(struct moat_conn *c, const uint8_t *body, size_t len)
{
	struct moat_worker *w = c->w;
	struct moat_broker *b = w->b;
	const struct moat_config *cfg = &b->cfg;
	struct moat_mqtt_connect cn;
	uint8_t crc;
	char idbuf[32];

	int rc = moat_mqtt_decode_connect(body, len, &cn, &crc);
	if (rc == MOAT_EPROTO && crc == MQTT_CONNACK_BAD_PROTOCOL)
		return refuse(c, crc, "unsupported protocol level");
	if (rc)
		return rc;
	/* 3.1.1 cannot tell the client a lower keep-alive: refuse, as for
	 * 0 (never time out), which would let idle peers stay forever. */
	if (cn.keepalive > cfg->max_keepalive || cn.keepalive == 0)
		return refuse(c, MQTT_CONNACK_ID_REJECTED,
			      cn.keepalive ? "keep-alive above max_keepalive"
					   : "keep-alive 0 (none) refused");
	const uint8_t *id = cn.client_id.p;
	size_t idlen = cn.client_id.len;
	if (idlen == 0) {
		if (!cn.clean_session || cn.proto_level == MQTT_PROTO_V31 ||
		    !cfg->allow_zero_length_clientid) /* [MQTT-3.1.3-8] */
			return refuse(c, MQTT_CONNACK_ID_REJECTED,
				      "empty client id refused");
		assign_id(w, idbuf, sizeof(idbuf));
		id = (const uint8_t *)idbuf;
		idlen = strlen(idbuf);
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
	if ((rc = make_will(c, &cn)) == MOAT_EDENIED)
		return refuse(c, MQTT_CONNACK_NOT_AUTHORIZED,
			      "will topic in $SYS refused");
	if (rc != MOAT_OK)
		return rc;
	if (cn.has_username) {
		c->username = moat_strndup((const char *)cn.username.p,
					   cn.username.len);
		if (!c->username)
			return MOAT_ENOMEM;
	}
	bool present;
	struct moat_session *s =
		open_session(c, id, idlen, cn.clean_session, &present);
	if (!s) {
		moat_msg_unref(&c->will); /* never accepted: no will */
		return refuse(c, MQTT_CONNACK_UNAVAILABLE,
			      MOAT_STAT_GET(b, sessions) >= cfg->max_sessions
				      ? "max_sessions reached"
				      : "out of memory for a session");
	}
	s->clean = cn.clean_session;
	s->conn = c;
	s->drop_logged = false;
	c->session = s;
	c->state = CONN_ACTIVE;
	c->keepalive = cn.keepalive;
	c->proto_level = cn.proto_level;
	uint64_t now = MOAT_STAT_ADD(b, clients_connected, 1) + 1;
	uint64_t max = MOAT_STAT_GET(b, clients_maximum);
	while (now > max && !atomic_compare_exchange_weak(
				    &b->stats.clients_maximum, &max, now))
		;
	uint8_t pkt[4];
	moat_mqtt_connack_encode(pkt, present, MQTT_CONNACK_ACCEPTED);
	if ((rc = moat_conn_send(c, pkt, sizeof(pkt))) != MOAT_OK)
		return rc;
	moat_info("client %s connected from %s (protocol %u, clean %d, "
		  "keep-alive %u, session present %d)",
		  s->log_id, c->peer, cn.proto_level, cn.clean_session,
		  cn.keepalive, present);
	if (present)
		moat_session_resume(s);
	return MOAT_OK;
}
