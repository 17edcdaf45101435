/* MQTT decoders, 3.1, 3.1.1 and 5.0.  Untrusted input: every read is
 * bounds-checked. */
#include <string.h>

#include "mqtt5.h"

int moat_mqtt_fixed_header(const uint8_t *buf, size_t len,
			   uint8_t *type_flags, uint32_t *remaining,
			   size_t *hdr_len)
{
	if (len < 2)
		return MOAT_EAGAIN;
	uint32_t value = 0;
	for (size_t i = 0; i < 4; i++) {
		if (1 + i >= len)
			return MOAT_EAGAIN;
		uint8_t b = buf[1 + i];
		value |= (uint32_t)(b & 0x7F) << (7 * i);
		if (!(b & 0x80)) {
			*type_flags = buf[0];
			*remaining = value;
			*hdr_len = 2 + i;
			return MOAT_OK;
		}
	}
	return MOAT_EMALFORMED; /* a fifth length byte [MQTT-2.2.3] */
}

int moat_mqtt_check_flags(uint8_t type_flags)
{
	uint8_t type = type_flags >> 4;
	uint8_t flags = type_flags & 0x0F;
	switch (type) {
	case MQTT_PUBLISH:
		return MOAT_OK; /* checked by the PUBLISH decoder */
	case MQTT_PUBREL:
	case MQTT_SUBSCRIBE:
	case MQTT_UNSUBSCRIBE:
		return flags == 0x2 ? MOAT_OK : MOAT_EMALFORMED;
	case MQTT_CONNECT:
	case MQTT_CONNACK:
	case MQTT_PUBACK:
	case MQTT_PUBREC:
	case MQTT_PUBCOMP:
	case MQTT_SUBACK:
	case MQTT_UNSUBACK:
	case MQTT_PINGREQ:
	case MQTT_PINGRESP:
	case MQTT_DISCONNECT:
		return flags == 0 ? MOAT_OK : MOAT_EMALFORMED;
	default:
		return MOAT_EMALFORMED; /* types 0 and 15 are reserved in 3.1.1 */
	}
}

static int check_protocol(const struct moat_mqtt_connect *c, bool allow_v5,
			  uint8_t *connack_rc)
{
	bool is_mqtt = moat_bytes_eq_str(c->proto_name, "MQTT");
	bool is_mqisdp = moat_bytes_eq_str(c->proto_name, "MQIsdp");
	if (!is_mqtt && !is_mqisdp) {
		*connack_rc = 0xFF; /* not MQTT: close, no CONNACK */
		return MOAT_EPROTO;
	}
	if ((is_mqtt && c->proto_level == MQTT_PROTO_V311) ||
	    (is_mqtt && allow_v5 && c->proto_level == MQTT_PROTO_V5) ||
	    (is_mqisdp && c->proto_level == MQTT_PROTO_V31))
		return MOAT_OK;
	*connack_rc = MQTT_CONNACK_BAD_PROTOCOL; /* [MQTT-3.1.2-2] */
	return MOAT_EPROTO;
}

static int decode_connect_flags(struct moat_mqtt_connect *c, uint8_t f)
{
	if (f & 0x01) /* reserved [MQTT-3.1.2-3] */
		return MOAT_EMALFORMED;
	c->clean_session = (f & 0x02) != 0;
	c->will_flag = (f & 0x04) != 0;
	c->will_qos = (uint8_t)((f >> 3) & 0x03);
	c->will_retain = (f & 0x20) != 0;
	c->has_password = (f & 0x40) != 0;
	c->has_username = (f & 0x80) != 0;
	if (c->will_qos == 3) /* [MQTT-3.1.2-14] */
		return MOAT_EMALFORMED;
	if (!c->will_flag && (c->will_qos || c->will_retain))
		return MOAT_EMALFORMED; /* [MQTT-3.1.2-13] [MQTT-3.1.2-15] */
	/* [MQTT-3.1.2-22]; MQTT 5 allows a password without a user name */
	if (!c->has_username && c->has_password &&
	    c->proto_level != MQTT_PROTO_V5)
		return MOAT_EMALFORMED;
	return MOAT_OK;
}

static int decode_connect_payload(struct moat_rd *rd,
				  struct moat_mqtt_connect5 *c5,
				  uint8_t *connack_rc)
{
	struct moat_mqtt_connect *c = &c5->c;
	bool v5 = c->proto_level == MQTT_PROTO_V5;
	int rc;
	/* Payload order is fixed [MQTT-3.1.3-1]. */
	if ((rc = moat_rd_string(rd, &c->client_id)) != MOAT_OK)
		return rc;
	if (c->will_flag) {
		if (v5 && (rc = moat_mqtt_props_read(rd, PCTX_WILL,
						     &c5->will_props)) != 0)
			return rc;
		if ((rc = moat_rd_string(rd, &c->will_topic)) != MOAT_OK ||
		    (rc = moat_rd_binary(rd, &c->will_payload)) != MOAT_OK)
			return rc;
		if (!moat_topic_name_valid(c->will_topic.p,
					   c->will_topic.len)) {
			*connack_rc = 0xFF;
			return MOAT_EPROTO;
		}
	}
	if (c->has_username &&
	    (rc = moat_rd_string(rd, &c->username)) != MOAT_OK)
		return rc;
	if (c->has_password &&
	    (rc = moat_rd_binary(rd, &c->password)) != MOAT_OK)
		return rc;
	if (moat_rd_left(rd) != 0)
		return MOAT_EMALFORMED; /* trailing bytes */
	return MOAT_OK;
}

int moat_mqtt_decode_connect_v(const uint8_t *body, size_t len, bool allow_v5,
			       struct moat_mqtt_connect5 *c5,
			       uint8_t *connack_rc)
{
	struct moat_mqtt_connect *c = &c5->c;
	struct moat_rd rd;
	uint8_t flags;
	int rc;

	memset(c5, 0, sizeof(*c5));
	*connack_rc = MQTT_CONNACK_ACCEPTED;
	moat_rd_init(&rd, body, len);
	if ((rc = moat_rd_binary(&rd, &c->proto_name)) != MOAT_OK ||
	    (rc = moat_rd_u8(&rd, &c->proto_level)) != MOAT_OK)
		return rc;
	/* mosquitto's bridges set 0x80 in a 3.x level (try_private). */
	if (c->proto_level == (0x80 | MQTT_PROTO_V311) ||
	    c->proto_level == (0x80 | MQTT_PROTO_V31)) {
		c->bridge = true;
		c->proto_level &= 0x7F;
	}
	if ((rc = check_protocol(c, allow_v5, connack_rc)) != MOAT_OK)
		return rc;
	if ((rc = moat_rd_u8(&rd, &flags)) != MOAT_OK ||
	    (rc = decode_connect_flags(c, flags)) != MOAT_OK ||
	    (rc = moat_rd_u16(&rd, &c->keepalive)) != MOAT_OK)
		return rc;
	if (c->proto_level == MQTT_PROTO_V5 &&
	    (rc = moat_mqtt_props_read(&rd, PCTX_CONNECT, &c5->props)) != 0)
		return rc;
	return decode_connect_payload(&rd, c5, connack_rc);
}

int moat_mqtt_decode_connect(const uint8_t *body, size_t len,
			     struct moat_mqtt_connect *c, uint8_t *connack_rc)
{
	struct moat_mqtt_connect5 c5;
	int rc = moat_mqtt_decode_connect_v(body, len, false, &c5, connack_rc);
	*c = c5.c;
	return rc;
}

int moat__mqtt_publish_head(uint8_t flags, struct moat_rd *rd,
			    bool empty_topic_ok, struct moat_mqtt_publish *p)
{
	int rc;
	memset(p, 0, sizeof(*p));
	p->dup = (flags & 0x08) != 0;
	p->qos = (uint8_t)((flags >> 1) & 0x03);
	p->retain = (flags & 0x01) != 0;
	if (p->qos == 3) /* [MQTT-3.3.1-4] */
		return MOAT_EMALFORMED;
	if (p->qos == 0 && p->dup) /* [MQTT-3.3.1-2] */
		return MOAT_EMALFORMED;
	if ((rc = moat_rd_string(rd, &p->topic)) != MOAT_OK)
		return rc;
	if (!(empty_topic_ok && p->topic.len == 0) &&
	    !moat_topic_name_valid(p->topic.p, p->topic.len))
		return MOAT_EPROTO; /* [MQTT-3.3.2-1] [MQTT-3.3.2-2] */
	if (p->qos > 0) {
		if ((rc = moat_rd_u16(rd, &p->packet_id)) != MOAT_OK)
			return rc;
		if (p->packet_id == 0) /* [MQTT-2.3.1-1] */
			return MOAT_EMALFORMED;
	}
	return MOAT_OK;
}

int moat_mqtt_decode_publish(uint8_t flags, const uint8_t *body, size_t len,
			     struct moat_mqtt_publish *p)
{
	struct moat_rd rd;
	moat_rd_init(&rd, body, len);
	int rc = moat__mqtt_publish_head(flags, &rd, false, p);
	if (rc)
		return rc;
	p->payload.p = rd.p + rd.pos;
	p->payload.len = moat_rd_left(&rd);
	return MOAT_OK;
}

int moat_mqtt_decode_ack(const uint8_t *body, size_t len, uint16_t *packet_id)
{
	if (len != 2)
		return MOAT_EMALFORMED;
	*packet_id = (uint16_t)((body[0] << 8) | body[1]);
	if (*packet_id == 0)
		return MOAT_EMALFORMED;
	return MOAT_OK;
}

int moat_mqtt_decode_sub_start(const uint8_t *body, size_t len,
			       struct moat_rd *rd, uint16_t *packet_id)
{
	moat_rd_init(rd, body, len);
	int rc = moat_rd_u16(rd, packet_id);
	if (rc != MOAT_OK)
		return rc;
	if (*packet_id == 0) /* [MQTT-2.3.1-1] */
		return MOAT_EMALFORMED;
	/* At least one filter [MQTT-3.8.3-3] [MQTT-3.10.3-2]. */
	if (moat_rd_left(rd) == 0)
		return MOAT_EPROTO;
	return MOAT_OK;
}

int moat_mqtt_decode_sub_next(struct moat_rd *rd, struct moat_bytes *filter,
			      uint8_t *qos)
{
	if (moat_rd_left(rd) == 0)
		return MOAT_ENOTFOUND;
	int rc = moat_rd_string(rd, filter);
	if (rc != MOAT_OK)
		return rc;
	if ((rc = moat_rd_u8(rd, qos)) != MOAT_OK)
		return rc;
	if (*qos > 2) /* reserved bits or QoS 3 [MQTT-3.8.3-4] */
		return MOAT_EMALFORMED;
	return MOAT_OK;
}

int moat_mqtt_decode_unsub_next(struct moat_rd *rd, struct moat_bytes *filter)
{
	if (moat_rd_left(rd) == 0)
		return MOAT_ENOTFOUND;
	return moat_rd_string(rd, filter);
}

int moat_mqtt_decode_connack(const uint8_t *body, size_t len,
			     bool *session_present, uint8_t *rc)
{
	if (len != 2 || (body[0] & 0xFE))
		return MOAT_EMALFORMED;
	*session_present = body[0] & 1;
	*rc = body[1];
	return MOAT_OK;
}

/* ---- decoders ------------------------------------------------------------ */

int moat_mqtt_decode_publish_v(uint8_t flags, const uint8_t *body,
			       size_t len, uint8_t version,
			       struct moat_mqtt_publish5 *p5)
{
	struct moat_mqtt_publish *p = &p5->p;
	struct moat_rd rd;
	int rc;
	memset(p5, 0, sizeof(*p5));
	if (version != MQTT_PROTO_V5)
		return moat_mqtt_decode_publish(flags, body, len, p);
	moat_rd_init(&rd, body, len);
	/* An empty topic is allowed here if a Topic Alias follows. */
	if ((rc = moat__mqtt_publish_head(flags, &rd, true, p)) != MOAT_OK)
		return rc;
	if ((rc = moat_mqtt_props_read(&rd, PCTX_PUBLISH, &p5->props)) != 0)
		return rc;
	/* A client never sends Subscription Identifiers [MQTT-3.3.4-6]. */
	if (p5->props.n_subscription_ids)
		return MOAT_EPROTO;
	if (p->topic.len == 0 && !moat_props_has(&p5->props, PROP_TOPIC_ALIAS))
		return MOAT_EPROTO; /* [MQTT-3.3.2-1] */
	p->payload.p = rd.p + rd.pos;
	p->payload.len = moat_rd_left(&rd);
	return MOAT_OK;
}

int moat_mqtt_decode_ack_v(const uint8_t *body, size_t len, uint8_t version,
			   uint16_t *packet_id, uint8_t *reason,
			   struct moat_mqtt_props *props)
{
	struct moat_rd rd;
	memset(props, 0, sizeof(*props));
	*reason = RC_SUCCESS;
	if (version != MQTT_PROTO_V5)
		return moat_mqtt_decode_ack(body, len, packet_id);
	moat_rd_init(&rd, body, len);
	if (moat_rd_u16(&rd, packet_id) != MOAT_OK || *packet_id == 0)
		return MOAT_EMALFORMED;
	if (!moat_rd_left(&rd))
		return MOAT_OK; /* [MQTT-3.4.2-1]: reason 0, no properties */
	if (moat_rd_u8(&rd, reason) != MOAT_OK)
		return MOAT_EMALFORMED;
	if (!moat_rd_left(&rd))
		return MOAT_OK;
	int rc = moat_mqtt_props_read(&rd, PCTX_ACK, props);
	if (rc)
		return rc;
	return moat_rd_left(&rd) ? MOAT_EMALFORMED : MOAT_OK;
}

int moat_mqtt_decode_sub_start_v(const uint8_t *body, size_t len,
				 uint8_t version, bool subscribe,
				 struct moat_rd *rd, uint16_t *packet_id,
				 struct moat_mqtt_props *props)
{
	memset(props, 0, sizeof(*props));
	if (version != MQTT_PROTO_V5)
		return moat_mqtt_decode_sub_start(body, len, rd, packet_id);
	moat_rd_init(rd, body, len);
	if (moat_rd_u16(rd, packet_id) != MOAT_OK || *packet_id == 0)
		return MOAT_EMALFORMED;
	int rc = moat_mqtt_props_read(
		rd, subscribe ? PCTX_SUBSCRIBE : PCTX_UNSUBSCRIBE, props);
	if (rc)
		return rc;
	if (moat_rd_left(rd) == 0) /* [MQTT-3.8.3-2] [MQTT-3.10.3-2] */
		return MOAT_EPROTO;
	return MOAT_OK;
}

int moat_mqtt_decode_sub_next_v(struct moat_rd *rd, uint8_t version,
				struct moat_bytes *filter,
				struct moat_sub_opts *o)
{
	uint8_t b;
	memset(o, 0, sizeof(*o));
	if (moat_rd_left(rd) == 0)
		return MOAT_ENOTFOUND;
	int rc = moat_rd_string(rd, filter);
	if (rc)
		return rc;
	if (moat_rd_u8(rd, &b) != MOAT_OK)
		return MOAT_EMALFORMED;
	o->qos = b & 0x03;
	if (version != MQTT_PROTO_V5) /* QoS 3 or other bits [MQTT-3.8.3-4] */
		return b > 2 ? MOAT_EMALFORMED : MOAT_OK;
	o->no_local = (b & 0x04) != 0;
	o->retain_as_published = (b & 0x08) != 0;
	o->retain_handling = (uint8_t)((b >> 4) & 0x03);
	if (b & 0xC0) /* reserved bits [MQTT-3.8.3-5] */
		return MOAT_EMALFORMED;
	/* Maximum QoS 3 and Retain Handling 3: "a Protocol Error" (§3.8.3.1) */
	if (o->qos == 3 || o->retain_handling == 3)
		return MOAT_EPROTO;
	return MOAT_OK;
}

static int decode_reason_props(const uint8_t *body, size_t len,
			       enum moat_mqtt_prop_ctx ctx, uint8_t *reason,
			       struct moat_mqtt_props *props)
{
	struct moat_rd rd;
	memset(props, 0, sizeof(*props));
	*reason = RC_SUCCESS;
	if (len == 0)
		return MOAT_OK;
	moat_rd_init(&rd, body, len);
	(void)moat_rd_u8(&rd, reason);
	if (!moat_rd_left(&rd))
		return MOAT_OK;
	int rc = moat_mqtt_props_read(&rd, ctx, props);
	if (rc)
		return rc;
	return moat_rd_left(&rd) ? MOAT_EMALFORMED : MOAT_OK;
}

int moat_mqtt_decode_disconnect_v(const uint8_t *body, size_t len,
				  uint8_t version, uint8_t *reason,
				  struct moat_mqtt_props *props)
{
	if (version != MQTT_PROTO_V5) {
		memset(props, 0, sizeof(*props));
		*reason = RC_SUCCESS;
		return len ? MOAT_EMALFORMED : MOAT_OK;
	}
	return decode_reason_props(body, len, PCTX_DISCONNECT, reason, props);
}

int moat_mqtt_decode_auth(const uint8_t *body, size_t len, uint8_t *reason,
			  struct moat_mqtt_props *props)
{
	return decode_reason_props(body, len, PCTX_AUTH, reason, props);
}
