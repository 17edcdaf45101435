/* PUBLISH and PUBREL from clients. */
#include <string.h>

#include "broker_int.h"

int moat__handle_publish(struct moat_conn *c, uint8_t flags,
			 const uint8_t *body, size_t len)
{
	struct moat_worker *w = c->w;
	const struct moat_config *cfg = &w->b->cfg;
	struct moat_session *s = c->session;
	struct moat_mqtt_publish p;
	uint8_t pkt[4];

	int rc = moat_mqtt_decode_publish(flags, body, len, &p);
	if (rc)
		return rc;
	if (p.topic.len > cfg->max_topic_length ||
	    moat_topic_levels(p.topic.p, p.topic.len) > cfg->max_topic_levels)
		return MOAT_ELIMIT;
	MOAT_STAT_ADD(w->b, msgs_received, 1);
	/* QoS 2 arriving again before PUBREL: acknowledge, do not deliver
	 * twice [MQTT-4.3.3-2]. */
	bool duplicate = p.qos == 2 && moat_session_qos2_test(s, p.packet_id);
	/* "$SYS" belongs to the broker: clients cannot publish there (that
	 * would let anyone forge broker statistics). */
	bool sys = moat_topic_is_sys(p.topic.p, p.topic.len);
	if (!duplicate && !sys) {
		bool retain = p.retain && cfg->retain_available;
		struct moat_msg *m =
			moat_msg_new(p.topic.p, p.topic.len, p.payload.p,
				     p.payload.len, p.qos, retain);
		if (!m)
			return MOAT_ENOMEM;
		moat_worker_route(w, m);
		moat_msg_unref(&m);
		/* Routing can deliver to this very client and, if its output
		 * overflows, close it and end its clean session. */
		if (c->state == CONN_CLOSED)
			return MOAT_OK;
		s = c->session;
	} else if (!duplicate) {
		char t[96];
		moat_debug("client %s: publish to %s ignored ($SYS is the "
			   "broker's)",
			   s->log_id,
			   moat__log_topic((const char *)p.topic.p, p.topic.len,
					   t, sizeof(t)));
	}
	if (p.qos == 1) {
		moat_mqtt_ack_encode(pkt, MQTT_PUBACK, p.packet_id);
		return moat_conn_send(c, pkt, sizeof(pkt));
	}
	if (p.qos == 2) {
		if ((rc = moat_session_qos2_set(s, p.packet_id)) != MOAT_OK)
			return rc;
		moat_mqtt_ack_encode(pkt, MQTT_PUBREC, p.packet_id);
		return moat_conn_send(c, pkt, sizeof(pkt));
	}
	return MOAT_OK;
}

int moat__handle_pubrel(struct moat_conn *c, const uint8_t *body, size_t len)
{
	uint16_t id;
	uint8_t pkt[4];
	int rc = moat_mqtt_decode_ack(body, len, &id);
	if (rc)
		return rc;
	moat_session_qos2_clear(c->session, id);
	/* Always answered, even for an unknown id [MQTT-4.3.3-2]. */
	moat_mqtt_ack_encode(pkt, MQTT_PUBCOMP, id);
	return moat_conn_send(c, pkt, sizeof(pkt));
}
