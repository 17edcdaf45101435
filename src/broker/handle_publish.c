/* PUBLISH and PUBREL from clients (3.1.1 and 5.0). */
#include <string.h>

#include "auth/acl.h"
#include "broker_int.h"
#include "codec/mqtt5.h"

int moat__publish_ack(struct moat_conn *c, uint8_t type, uint16_t id,
		      uint8_t reason, const char *why)
{
	if (c->proto_level != MQTT_PROTO_V5) {
		uint8_t pkt[4];
		moat_mqtt_ack_encode(pkt, type, id);
		return moat_conn_send(c, pkt, sizeof(pkt));
	}
	uint8_t pb[160];
	struct moat_pw pw;
	moat_pw_init(&pw, pb, sizeof(pb));
	/* Reason string only when wanted and within the client's Maximum
	 * Packet Size [MQTT-3.4.2-2]: 2 + 2 + 1 + 1 + (3 + n) bytes. */
	size_t n = why ? MOAT_MIN(strlen(why), (size_t)120) : 0;
	if (why && c->problem_info &&
	    (!c->client_max_packet || 9 + n <= c->client_max_packet))
		moat_pw_bytes(&pw, PROP_REASON_STRING, why, n);
	int rc = moat_mqtt5_ack(&c->out, type, id, reason, &pw);
	if (!rc)
		moat_worker_mark_dirty(c->w, c);
	return rc ? MOAT_ELIMIT : MOAT_OK;
}

/* An acknowledgement, behind those that wait for JetStream (cluster
 * mode: they leave in the order the PUBLISH packets came). */
static int ack(struct moat_conn *c, uint8_t type, uint16_t id,
	       uint8_t reason, const char *why)
{
	bool queued = false;
	if (c->cacks) {
		int rc = moat__cluster_queue_ack(c, type, id, reason, &queued);
		if (rc || queued)
			return rc;
	}
	return moat__publish_ack(c, type, id, reason, why);
}

/* Topic Alias from the client [MQTT-3.3.2-7..12]: set it with a topic,
 * look it up without one.  Returns a reason code, 0 when fine. */
static uint8_t resolve_alias(struct moat_conn *c, struct moat_mqtt_publish5 *p)
{
	const struct moat_config *cfg = c->w->cfg;
	if (!moat_props_has(&p->props, PROP_TOPIC_ALIAS))
		return 0;
	uint16_t a = p->props.topic_alias;
	if (a == 0 || a > cfg->topic_alias_maximum)
		return RC_TOPIC_ALIAS_INVALID;
	if (!c->alias_in) {
		c->alias_in = moat_calloc((size_t)cfg->topic_alias_maximum + 1,
					  sizeof(char *));
		if (!c->alias_in)
			return RC_SERVER_BUSY;
	}
	if (p->p.topic.len) {
		char *t = moat_strndup((const char *)p->p.topic.p,
				       p->p.topic.len);
		if (!t)
			return RC_SERVER_BUSY;
		moat_free(c->alias_in[a]);
		c->alias_in[a] = t;
		return 0;
	}
	if (!c->alias_in[a])
		return RC_PROTOCOL_ERROR; /* unknown alias [MQTT-3.3.4-?] */
	p->p.topic.p = (const uint8_t *)c->alias_in[a];
	p->p.topic.len = strlen(c->alias_in[a]);
	return 0;
}

/* v5 checks that end the connection with a specific reason code. */
static uint8_t check_publish5(struct moat_conn *c,
			      struct moat_mqtt_publish5 *p)
{
	const struct moat_config *cfg = c->w->cfg;
	if (p->p.qos > cfg->max_qos)
		return RC_QOS_NOT_SUPPORTED; /* [MQTT-3.2.2-11] */
	if (p->p.retain && !cfg->retain_available)
		return RC_RETAIN_NOT_SUPPORTED; /* [MQTT-3.2.2-14] */
	if (p->p.qos == 2 &&
	    c->session->qos2_pending >= cfg->max_inflight_messages &&
	    !moat_session_qos2_test(c->session, p->p.packet_id))
		return RC_RECEIVE_MAX_EXCEEDED; /* [MQTT-3.3.4-9] */
	return resolve_alias(c, p);
}

/* The acknowledgement of a QoS 1/2 message a leak_policy blocked (MQTT
 * 5; the detector has logged it, with the topic redacted). */
static int ack_blocked(struct moat_conn *c, uint8_t qos, uint16_t id)
{
	if (!qos)
		return MOAT_OK;
	return ack(c, qos == 1 ? MQTT_PUBACK : MQTT_PUBREC, id,
		   RC_IMPL_SPECIFIC, "blocked by leak_policy: private data");
}

static struct moat_msg *build_msg(struct moat_conn *c,
				  const struct moat_mqtt_publish5 *p5,
				  bool retain)
{
	const struct moat_mqtt_publish *p = &p5->p;
	struct moat_msg_extra x = {
		.has_expiry = moat_props_has(&p5->props, PROP_MESSAGE_EXPIRY),
		.expiry_s = p5->props.message_expiry,
		.origin = c->session->serial,
		/* a retained message outlives this publish: remember who */
		.has_src = retain,
		.src_user = c->username,
		.src_cid = c->session->client_id,
	};
	uint8_t *props = NULL;
	if (moat__forward_props(&p5->props, &props, &x.props_len) != MOAT_OK)
		return NULL;
	x.props = props;
	struct moat_msg *m = moat_msg_new5(p->topic.p, p->topic.len,
					   p->payload.p, p->payload.len, p->qos,
					   retain, &x);
	moat_free(props);
	if (m && (p->qos || retain))
		m->store_id = moat__store_msg_id(c->w->b);
	return m;
}

/* max_publish_rate: a token bucket per connection, bursts of twice the
 * rate.  False when this PUBLISH is one too many. */
static bool within_rate(struct moat_conn *c, uint64_t rate)
{
	if (!rate)
		return true;
	uint64_t now = c->w->now_ms;
	double cap = 2.0 * (double)rate;
	if (!c->pub_refill_ms)
		c->pub_tokens = cap;
	else if (now > c->pub_refill_ms)
		c->pub_tokens += (double)(now - c->pub_refill_ms) *
				 (double)rate / 1000.0;
	if (c->pub_tokens > cap)
		c->pub_tokens = cap;
	c->pub_refill_ms = now;
	if (c->pub_tokens < 1.0)
		return false;
	c->pub_tokens -= 1.0;
	return true;
}

/* Why an otherwise valid PUBLISH is refused (its reason code, with why
 * for the log and the v5 reason string), RC_SUCCESS when it may be
 * routed.  *close: a 3.1.1 QoS 1/2 message that cannot be kept ends the
 * connection instead (it has no negative acknowledgement). */
static uint8_t refusal(struct moat_conn *c, const struct moat_mqtt_publish5 *p5,
		       const char **why, bool *close)
{
	struct moat_worker *w = c->w;
	const struct moat_mqtt_publish *p = &p5->p;
	*why = NULL;
	*close = false;
	if (moat_topic_is_sys(p->topic.p, p->topic.len) &&
	    !moat__bridge_state_topic(w->b, p->topic.p, p->topic.len)) {
		/* $SYS is the broker's: nobody may forge its statistics. */
		*why = "$SYS topics are the broker's";
		return RC_NOT_AUTHORIZED;
	}
	if (!moat__acl_allows(c, (const char *)p->topic.p, p->topic.len,
			      MOAT_ACL_WRITE)) {
		char t[96];
		MOAT_STAT_ADD(w->b, acl_denials, 1);
		moat__security_event(c, "acl denial", "publish to %s",
				     moat__log_topic((const char *)p->topic.p,
						     p->topic.len, t,
						     sizeof(t)));
		return RC_NOT_AUTHORIZED;
	}
	if (moat__memory_exhausted(w)) {
		moat__limit_hit(w, MOAT_LIMIT_MEMORY);
		moat__security_event(c, "limit",
				     "memory_limit reached: publish refused");
		return RC_QUOTA_EXCEEDED;
	}
	if ((p->qos || p->retain) && moat__store_failing(w->b)) {
		/* Nothing is acknowledged that could not be kept: v5 is
		 * told, a 3.1.1 client is disconnected and sends it again
		 * later. */
		*close = c->proto_level != MQTT_PROTO_V5 && p->qos;
		*why = "persistence unavailable (store failing)";
		return RC_UNSPECIFIED;
	}
	if (p->qos && w->b->cluster && !moat__cluster_may_accept(w)) {
		/* Nothing is acknowledged that could not be forwarded. */
		*close = c->proto_level != MQTT_PROTO_V5;
		*why = "cluster backlog full (NATS unavailable)";
		return RC_QUOTA_EXCEEDED;
	}
	if (p5->props.payload_format == 1 &&
	    !moat_utf8_valid(p->payload.p, p->payload.len)) {
		*why = "payload is not UTF-8 as its format indicator says";
		return RC_PAYLOAD_FORMAT_INVALID; /* [MQTT-3.3.2-4] */
	}
	return RC_SUCCESS;
}

/* What accepting a message came to. */
enum accepted { ROUTED, BLOCKED, CLOSED };

/* Build, inspect (leak_policy) and route an accepted message.  MOAT_OK
 * with *out set, or an error that closes the connection. */
static int accept_publish(struct moat_conn *c,
			  const struct moat_mqtt_publish5 *p5,
			  enum accepted *out)
{
	struct moat_worker *w = c->w;
	const struct moat_mqtt_publish *p = &p5->p;
	struct moat_msg *m =
		build_msg(c, p5, p->retain && w->cfg->retain_available);
	if (!m)
		return MOAT_ENOMEM;
	/* Private data: logged, alerted, redacted in m, or the message
	 * dropped, by leak_policy (docs/leaks.md). */
	int leak = w->sec->leak_db
			   ? moat__leak_inspect(w, m, "publish",
						c->session->client_id,
						c->username)
			   : -1;
	/* (Its alert events may have gone to this very client.) */
	*out = c->state == CONN_CLOSED ? CLOSED
	       : leak == MOAT_LEAK_BLOCK ? BLOCKED
					 : ROUTED;
	if (*out != ROUTED) {
		moat_msg_unref(&m);
		return MOAT_OK;
	}
	if (p->qos == 2) {
		/* The id is pending before the message is routed, and
		 * recorded in the same batch as its deliveries (or an earlier
		 * one): after a crash, a resent PUBLISH is recognised if and
		 * only if it was routed. */
		int rc = moat_session_qos2_set(c->session, p->packet_id);
		if (rc) {
			moat_msg_unref(&m);
			return rc;
		}
		moat__store_qos2(w, c->session, p->packet_id, true);
	}
	moat_worker_route(w, m);
	moat_msg_unref(&m);
	/* Routing can deliver to this very client and, if its output
	 * overflows, close it and end its clean session. */
	if (c->state == CONN_CLOSED)
		*out = CLOSED;
	return MOAT_OK;
}

/* PUBACK / PUBREC for a QoS 1/2 message (refused with reason, or
 * accepted), once what it caused is recorded: records and lost are the
 * store's counts from before. */
static int acknowledge(struct moat_conn *c, const struct moat_mqtt_publish *p,
		       uint8_t reason, const char *why, uint64_t records,
		       uint64_t lost)
{
	struct moat_worker *w = c->w;
	if (why) {
		char t[96], id[MOAT_LOG_ID_LEN];
		moat_info("client %s: publish to %s refused: %s",
			  moat_session_log_id(c->session, id),
			  moat__log_topic((const char *)p->topic.p,
					  p->topic.len, t, sizeof(t)),
			  why);
	}
	if (!p->qos)
		return MOAT_OK;
	/* Out of memory for a record: not acknowledged; the connection
	 * closes and the client sends it again. */
	if (w->store_lost != lost)
		return MOAT_ENOMEM;
	/* Acknowledged once durable for every stored session it was queued
	 * to and the retained store (persistence_sync).  A refused QoS 2
	 * ends with the PUBREC [MQTT-4.3.3-4]; an accepted one was made
	 * pending before it was routed. */
	bool gate = moat__store_nrec(w) != records;
	uint8_t type = p->qos == 1 ? MQTT_PUBACK : MQTT_PUBREC;
	/* Cluster mode: once JetStream stored it too. */
	if (w->cluster_tok == MOAT_CLUSTER_TOK_LOST)
		return MOAT_ENOMEM;
	if (w->cluster_tok && reason == RC_SUCCESS)
		return moat__cluster_defer_ack(c, w->cluster_tok, type,
					       p->packet_id, gate);
	if (gate)
		moat__store_gate(c);
	return ack(c, type, p->packet_id, reason, why);
}

int moat__handle_publish(struct moat_conn *c, uint8_t flags,
			 const uint8_t *body, size_t len)
{
	struct moat_worker *w = c->w;
	const struct moat_config *cfg = w->cfg;
	struct moat_mqtt_publish5 p5;
	struct moat_mqtt_publish *p = &p5.p;
	bool v5 = c->proto_level == MQTT_PROTO_V5;

	int rc = moat_mqtt_decode_publish_v(flags, body, len, c->proto_level,
					    &p5);
	if (rc)
		return rc;
	if (!within_rate(c, cfg->max_publish_rate)) {
		moat__limit_hit(w, MOAT_LIMIT_PUBLISH_RATE);
		moat__security_event(c, "limit", "max_publish_rate (%llu/s) "
				     "exceeded; disconnected",
				     (unsigned long long)cfg->max_publish_rate);
		moat_conn_disconnect(c, RC_MESSAGE_RATE_TOO_HIGH,
				     "max_publish_rate exceeded");
		return MOAT_OK;
	}
	if (v5) {
		uint8_t reason = check_publish5(c, &p5);
		if (reason) {
			moat_conn_disconnect(c, reason, moat_mqtt_rc_name(reason));
			return MOAT_OK;
		}
	} else if (p->qos > cfg->max_qos) {
		return MOAT_ELIMIT;
	}
	/* From a bridge's remote: the local topic its in topics map it to
	 * (bridge.c); then the ACL, limits and leak policy as for a
	 * client's PUBLISH. */
	if (c->bridge && !moat__bridge_map_in(c, &p->topic))
		return acknowledge(c, p, RC_NO_MATCHING_SUBSCRIBERS,
				   "not covered by an in topic of the bridge",
				   moat__store_nrec(w), w->store_lost);
	if (p->topic.len > cfg->max_topic_length ||
	    moat_topic_levels(p->topic.p, p->topic.len) > cfg->max_topic_levels)
		return MOAT_ELIMIT;
	MOAT_WSTAT_ADD(w, msgs_in[moat__conn_proto(c)][p->qos], 1);
	w->cluster_tok = 0;
	uint64_t records = moat__store_nrec(w), lost = w->store_lost;
	/* QoS 2 arriving again before PUBREL: acknowledge, do not deliver
	 * twice [MQTT-4.3.3-2]. */
	if (p->qos == 2 && moat_session_qos2_test(c->session, p->packet_id))
		return acknowledge(c, p, RC_SUCCESS, NULL, records, lost);
	const char *why;
	bool close;
	uint8_t reason = refusal(c, &p5, &why, &close);
	if (close)
		return MOAT_EIO;
	if (reason != RC_SUCCESS)
		return acknowledge(c, p, reason, why, records, lost);
	enum accepted a;
	if ((rc = accept_publish(c, &p5, &a)) != MOAT_OK)
		return rc;
	if (a == CLOSED)
		return MOAT_OK;
	/* Blocked by leak_policy: MQTT 5 is told (0x83: valid, but not
	 * accepted); 3.1.1 has no way to say it: acknowledged, dropped and
	 * logged (by the detector, topic redacted). */
	if (a == BLOCKED && v5)
		return ack_blocked(c, p->qos, p->packet_id);
	return acknowledge(c, p, RC_SUCCESS, NULL, records, lost);
}

int moat__handle_pubrel(struct moat_conn *c, const uint8_t *body, size_t len)
{
	uint16_t id;
	uint8_t reason;
	struct moat_mqtt_props props;
	int rc = moat_mqtt_decode_ack_v(body, len, c->proto_level, &id, &reason,
					&props);
	if (rc)
		return rc;
	bool known = moat_session_qos2_test(c->session, id);
	if (known) {
		moat_session_qos2_clear(c->session, id);
		/* PUBCOMP once the id is free on disk too: the client may
		 * reuse it at once. */
		uint64_t records = moat__store_nrec(c->w);
		moat__store_qos2(c->w, c->session, id, false);
		if (moat__store_nrec(c->w) != records)
			moat__store_gate(c);
	}
	/* Always answered, even for an unknown id [MQTT-4.3.3-11]; v5 says
	 * which (0x92 Packet Identifier not found). */
	return ack(c, MQTT_PUBCOMP, id,
		   known ? RC_SUCCESS : RC_PACKET_ID_NOT_FOUND, NULL);
}
