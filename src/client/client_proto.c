/* The protocol side of an MQTT client, without I/O (client_proto.h). */
#include <stdio.h>
#include <string.h>

#include "client/client_proto.h"
#include "codec/mqtt_codec.h"

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

static int connack5(const uint8_t *body, size_t len,
		    struct moat_client_connack *ca)
{
	struct moat_rd rd;
	uint8_t flags;
	moat_rd_init(&rd, body, len);
	if (moat_rd_u8(&rd, &flags) != MOAT_OK ||
	    moat_rd_u8(&rd, &ca->rc) != MOAT_OK || (flags & 0xFE))
		return MOAT_EMALFORMED;
	ca->session_present = flags & 1;
	int rc = moat_mqtt_props_read(&rd, PCTX_CONNACK, &ca->props);
	if (rc != MOAT_OK)
		return rc;
	if (moat_rd_left(&rd))
		return MOAT_EMALFORMED; /* bytes after the properties */
	if ((ca->rc && ca->rc < 0x80) || (ca->rc && ca->session_present))
		return MOAT_EPROTO;
	return MOAT_OK;
}

int moat_client_connack_decode(const uint8_t *body, size_t len,
			       uint8_t version,
			       struct moat_client_connack *ca)
{
	memset(ca, 0, sizeof(*ca));
	ca->version = version;
	if (version != MQTT_PROTO_V5)
		return moat_mqtt_decode_connack(body, len, &ca->session_present,
						&ca->rc);
	/* A 3.1.1 server answers a v5 CONNECT with its own 2-byte CONNACK
	 * and (usually) code 1, unacceptable protocol version. */
	if (len == 2 && body[0] == 0 && body[1] >= 1 &&
	    body[1] <= MQTT_CONNACK_NOT_AUTHORIZED) {
		ca->version = MQTT_PROTO_V311;
		ca->downgraded = true;
		ca->rc = body[1];
		return MOAT_OK;
	}
	return connack5(body, len, ca);
}

const char *moat_client_connack_refusal(const struct moat_client_connack *ca,
					char *buf, size_t sz)
{
	if (ca->version != MQTT_PROTO_V5) {
		snprintf(buf, sz, "%s (CONNACK code %u)%s",
			 moat_client_connack_str(ca->rc), ca->rc,
			 ca->downgraded && ca->rc == MQTT_CONNACK_BAD_PROTOCOL
				 ? ": the server does not support MQTT 5"
				 : "");
		return buf;
	}
	const struct moat_mqtt_props *p = &ca->props;
	char why[256], ref[256];
	bool has_why = moat_props_has(p, PROP_REASON_STRING);
	bool has_ref = moat_props_has(p, PROP_SERVER_REFERENCE);
	if (has_why)
		moat_log_escape(p->reason_string.p, p->reason_string.len, why,
				sizeof(why));
	if (has_ref)
		moat_log_escape(p->server_reference.p, p->server_reference.len,
				ref, sizeof(ref));
	snprintf(buf, sz, "connection refused: %s (0x%02X)%s%s%s%s%s",
		 moat_mqtt_rc_name(ca->rc), ca->rc, has_why ? ": " : "",
		 has_why ? why : "", has_ref ? " (server reference: " : "",
		 has_ref ? ref : "", has_ref ? ")" : "");
	return buf;
}

static bool code_ok(uint8_t type, uint8_t k, bool v5)
{
	if (type == MQTT_SUBACK)
		return k <= 2 || (k >= 0x80 && (v5 || k == 0x80));
	return k == 0 || k == RC_NO_SUBSCRIPTION_EXISTED || k >= 0x80;
}

int moat_client_suback_decode(uint8_t type, const uint8_t *body, size_t len,
			      uint8_t version, struct moat_client_suback *out)
{
	bool v5 = version == MQTT_PROTO_V5;
	struct moat_rd rd;
	memset(out, 0, sizeof(*out));
	moat_rd_init(&rd, body, len);
	if (moat_rd_u16(&rd, &out->packet_id) != MOAT_OK || !out->packet_id)
		return MOAT_EMALFORMED;
	if (v5) {
		int rc = moat_mqtt_props_read(&rd, type == MQTT_SUBACK
							   ? PCTX_SUBACK
							   : PCTX_UNSUBACK,
					      &out->props);
		if (rc != MOAT_OK)
			return rc;
	}
	out->codes = rd.p + rd.pos;
	out->ncodes = moat_rd_left(&rd);
	if (type == MQTT_UNSUBACK && !v5)
		return out->ncodes ? MOAT_EMALFORMED : MOAT_OK;
	if (out->ncodes == 0)
		return MOAT_EMALFORMED; /* no reason codes */
	for (size_t i = 0; i < out->ncodes; i++)
		if (!code_ok(type, out->codes[i], v5))
			return MOAT_EPROTO;
	return MOAT_OK;
}

/* As the codec's moat_mqtt_decode_publish_v() for MQTT 5, but from the
 * server: Subscription Identifiers are allowed. */
static int publish5(uint8_t flags, const uint8_t *body, size_t len,
		    struct moat_mqtt_publish5 *p5)
{
	struct moat_mqtt_publish *p = &p5->p;
	struct moat_rd rd;
	int rc;
	memset(p5, 0, sizeof(*p5));
	moat_rd_init(&rd, body, len);
	if ((rc = moat__mqtt_publish_head(flags, &rd, true, p)) != MOAT_OK)
		return rc;
	if ((rc = moat_mqtt_props_read(&rd, PCTX_PUBLISH, &p5->props)) != 0)
		return rc;
	if (p->topic.len == 0 && !moat_props_has(&p5->props, PROP_TOPIC_ALIAS))
		return MOAT_EPROTO; /* [MQTT-3.3.2-1] */
	p->payload.p = rd.p + rd.pos;
	p->payload.len = moat_rd_left(&rd);
	return MOAT_OK;
}

int moat_client_publish_decode(uint8_t flags, const uint8_t *body,
			       size_t len, uint8_t version,
			       struct moat_mqtt_publish5 *p5)
{
	if (version == MQTT_PROTO_V5)
		return publish5(flags, body, len, p5);
	return moat_mqtt_decode_publish_v(flags, body, len, version, p5);
}

size_t moat_client_ack_for(uint8_t type, uint8_t qos, uint16_t id,
			   uint8_t out[4])
{
	switch (type) {
	case MQTT_PUBLISH:
		if (qos == 0)
			return 0;
		return moat_mqtt_ack_encode(out, qos == 1 ? MQTT_PUBACK
							  : MQTT_PUBREC, id);
	case MQTT_PUBREC:
		return moat_mqtt_ack_encode(out, MQTT_PUBREL, id);
	case MQTT_PUBREL:
		return moat_mqtt_ack_encode(out, MQTT_PUBCOMP, id);
	default:
		return 0;
	}
}

enum moat_client_ka_action
moat_client_ka_check(const struct moat_client_keepalive *k, uint64_t now,
		     int *next_ms)
{
	*next_ms = -1;
	uint64_t ka = k->interval_ms;
	if (!ka)
		return MOAT_KA_WAIT;
	if (k->ping_ms) {
		if (now - k->ping_ms >= ka)
			return MOAT_KA_TIMEOUT;
		*next_ms = (int)(k->ping_ms + ka - now);
		return MOAT_KA_WAIT;
	}
	if (now - k->last_tx_ms < ka) {
		*next_ms = (int)(k->last_tx_ms + ka - now);
		return MOAT_KA_WAIT;
	}
	return MOAT_KA_PING;
}

void moat_client_ka_pinged(struct moat_client_keepalive *k, uint64_t now)
{
	k->ping_ms = now;
	k->last_tx_ms = now;
}

void moat_client_ka_pong(struct moat_client_keepalive *k)
{
	k->ping_ms = 0;
}
