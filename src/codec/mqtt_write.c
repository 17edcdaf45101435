/* MQTT encoders, 3.1.1 and 5.0.  Buffers are sized by the *_size()
 * functions, so writes assert instead of checking. */
#include <assert.h>
#include <string.h>

#include "mqtt5.h"

static size_t put_u16(uint8_t *out, uint16_t v)
{
	out[0] = (uint8_t)(v >> 8);
	out[1] = (uint8_t)(v & 0xFF);
	return 2;
}

size_t moat_mqtt_connack_encode(uint8_t out[4], bool session_present,
				uint8_t rc)
{
	out[0] = MQTT_CONNACK << 4;
	out[1] = 2;
	out[2] = session_present ? 1 : 0;
	out[3] = rc;
	return 4;
}

size_t moat_mqtt_ack_encode(uint8_t out[4], enum moat_mqtt_type type,
			    uint16_t packet_id)
{
	out[0] = (uint8_t)((unsigned)type << 4);
	if (type == MQTT_PUBREL)
		out[0] |= 0x02; /* [MQTT-3.6.1-1] */
	out[1] = 2;
	put_u16(out + 2, packet_id);
	return 4;
}

size_t moat_mqtt_simple_encode(uint8_t out[2], enum moat_mqtt_type type)
{
	out[0] = (uint8_t)((unsigned)type << 4);
	out[1] = 0;
	return 2;
}

/* Remaining length of a PUBLISH, or 0 when it cannot be represented. */
static uint32_t publish_remaining(size_t topic_len, size_t payload_len,
				  uint8_t qos)
{
	size_t fixed = 2 + (size_t)(qos ? 2 : 0);
	if (topic_len > 65535 ||
	    payload_len > MQTT_MAX_REMAINING_LENGTH - fixed - topic_len)
		return 0;
	return (uint32_t)(fixed + topic_len + payload_len);
}

size_t moat_mqtt_publish_size(size_t topic_len, size_t payload_len,
			      uint8_t qos)
{
	uint32_t rl = publish_remaining(topic_len, payload_len, qos);
	if (!rl)
		return 0;
	return 1 + moat_mqtt_varint_size(rl) + rl;
}

size_t moat_mqtt_publish_encode(uint8_t *out, const uint8_t *topic,
				size_t topic_len, const uint8_t *payload,
				size_t payload_len, uint8_t qos, bool retain,
				bool dup, uint16_t packet_id)
{
	uint32_t rl = publish_remaining(topic_len, payload_len, qos);
	assert(rl && qos <= 2);
	size_t n = 0;
	out[n++] = (uint8_t)((MQTT_PUBLISH << 4) | (dup ? 0x08 : 0) |
			     (qos << 1) | (retain ? 1 : 0));
	n += moat_mqtt_varint_write(out + n, rl);
	n += put_u16(out + n, (uint16_t)topic_len);
	memcpy(out + n, topic, topic_len);
	n += topic_len;
	if (qos)
		n += put_u16(out + n, packet_id);
	if (payload_len)
		memcpy(out + n, payload, payload_len);
	return n + payload_len;
}

size_t moat_mqtt_suback_size(size_t count)
{
	if (count > MQTT_MAX_REMAINING_LENGTH - 2)
		return 0;
	uint32_t rl = (uint32_t)(2 + count);
	return 1 + moat_mqtt_varint_size(rl) + rl;
}

size_t moat_mqtt_suback_encode(uint8_t *out, uint16_t packet_id,
			       const uint8_t *codes, size_t count)
{
	uint32_t rl = (uint32_t)(2 + count);
	size_t n = 0;
	out[n++] = MQTT_SUBACK << 4;
	n += moat_mqtt_varint_write(out + n, rl);
	n += put_u16(out + n, packet_id);
	memcpy(out + n, codes, count);
	return n + count;
}

/* ---- client-side encoders: variable-length packets built in a buf ---- */

static int put_header(struct moat_buf *b, uint8_t first, size_t rl)
{
	if (rl > MQTT_MAX_REMAINING_LENGTH)
		return MOAT_EINVAL;
	uint8_t h[5];
	h[0] = first;
	size_t n = 1 + moat_mqtt_varint_write(h + 1, (uint32_t)rl);
	return moat_buf_append(b, h, n);
}

static int put_bin(struct moat_buf *b, const void *p, size_t len)
{
	if (len > 65535)
		return MOAT_EINVAL;
	uint8_t h[2];
	put_u16(h, (uint16_t)len);
	int rc = moat_buf_append(b, h, 2);
	return rc ? rc : moat_buf_append(b, p, len);
}

/* On failure, drop whatever part of the packet was appended. */
static int rollback(struct moat_buf *b, size_t used0, int rc)
{
	if (rc)
		b->len = b->off + used0;
	return rc;
}

static int put_props(struct moat_buf *b, const struct moat_bytes *props)
{
	uint8_t v[4];
	size_t n = moat_props_len(props);
	if (n > MQTT_MAX_REMAINING_LENGTH)
		return MOAT_EINVAL;
	int rc = moat_buf_append(b, v, moat_mqtt_varint_write(v, (uint32_t)n));
	return rc || !n ? rc : moat_buf_append(b, props->p, n);
}

int moat_mqtt_connect_encode(struct moat_buf *b,
			     const struct moat_mqtt_connect_opts *o)
{
	size_t used0 = moat_buf_used(b);
	bool v5 = o->proto_level == MQTT_PROTO_V5;
	const char *name = o->proto_level == MQTT_PROTO_V31 ? "MQIsdp" : "MQTT";
	size_t cid = strlen(o->client_id);
	size_t rl = 2 + strlen(name) + 1 + 1 + 2 + 2 + cid +
		    (v5 ? moat_props_wire_size(o->props) : 0);
	uint8_t flags = o->clean_session ? 0x02 : 0;
	if (o->will_topic) {
		rl += 2 + strlen(o->will_topic) + 2 + o->will_payload_len +
		      (v5 ? moat_props_wire_size(o->will_props) : 0);
		flags |= (uint8_t)(0x04 | (o->will_qos << 3) |
				   (o->will_retain ? 0x20 : 0));
	}
	if (o->username) {
		rl += 2 + strlen(o->username);
		flags |= 0x80;
	}
	if (o->has_password) {
		rl += 2 + o->password_len;
		flags |= 0x40;
	}
	uint8_t fixed[4] = {o->proto_level, flags,
			    (uint8_t)(o->keepalive >> 8),
			    (uint8_t)(o->keepalive & 0xFF)};
	int rc = put_header(b, MQTT_CONNECT << 4, rl);
	if (!rc)
		rc = put_bin(b, name, strlen(name));
	if (!rc)
		rc = moat_buf_append(b, fixed, sizeof(fixed));
	if (!rc && v5)
		rc = put_props(b, o->props);
	if (!rc)
		rc = put_bin(b, o->client_id, cid);
	if (!rc && o->will_topic) {
		if (v5)
			rc = put_props(b, o->will_props);
		if (!rc)
			rc = put_bin(b, o->will_topic, strlen(o->will_topic));
		if (!rc)
			rc = put_bin(b, o->will_payload, o->will_payload_len);
	}
	if (!rc && o->username)
		rc = put_bin(b, o->username, strlen(o->username));
	if (!rc && o->has_password)
		rc = put_bin(b, o->password, o->password_len);
	return rollback(b, used0, rc);
}

/* SUBSCRIBE/UNSUBSCRIBE; v5 adds a property block after the packet id. */
static int sub_encode(struct moat_buf *b, uint8_t type, uint16_t packet_id,
		      const char *const *filters, const uint8_t *options,
		      size_t count, bool v5, const struct moat_bytes *props)
{
	size_t used0 = moat_buf_used(b);
	size_t rl = 2 + (v5 ? moat_props_wire_size(props) : 0);
	for (size_t i = 0; i < count; i++)
		rl += 2 + strlen(filters[i]) + (options ? 1 : 0);
	uint8_t id[2];
	put_u16(id, packet_id);
	int rc = put_header(b, (uint8_t)((type << 4) | 0x02), rl);
	if (!rc)
		rc = moat_buf_append(b, id, 2);
	if (!rc && v5)
		rc = put_props(b, props);
	for (size_t i = 0; !rc && i < count; i++) {
		rc = put_bin(b, filters[i], strlen(filters[i]));
		if (!rc && options)
			rc = moat_buf_append(b, &options[i], 1);
	}
	return rollback(b, used0, rc);
}

int moat_mqtt5_sub_encode(struct moat_buf *b, enum moat_mqtt_type type,
			  uint16_t packet_id, const char *const *filters,
			  const uint8_t *options, size_t count,
			  const struct moat_bytes *props)
{
	return sub_encode(b, (uint8_t)type, packet_id, filters, options, count,
			  true, props);
}

int moat_mqtt5_disconnect_encode(struct moat_buf *b, uint8_t reason,
				 const struct moat_bytes *props)
{
	size_t used0 = moat_buf_used(b);
	int rc = put_header(b, MQTT_DISCONNECT << 4, 1 + moat_props_wire_size(props));
	if (!rc)
		rc = moat_buf_append(b, &reason, 1);
	if (!rc)
		rc = put_props(b, props);
	return rollback(b, used0, rc);
}

int moat_mqtt_subscribe_encode(struct moat_buf *b, uint16_t packet_id,
			       const char *const *filters, const uint8_t *qos,
			       size_t count)
{
	return sub_encode(b, MQTT_SUBSCRIBE, packet_id, filters, qos, count,
			  false, NULL);
}

int moat_mqtt_unsubscribe_encode(struct moat_buf *b, uint16_t packet_id,
				 const char *const *filters, size_t count)
{
	return sub_encode(b, MQTT_UNSUBSCRIBE, packet_id, filters, NULL, count,
			  false, NULL);
}

/* ---- v5 encoders ----------------------------------------------------------- */

static size_t props_size(const struct moat_pw *props)
{
	size_t n = props ? props->len : 0;
	return moat_mqtt_varint_size((uint32_t)n) + n;
}

/* header + fixed part + property block, appended as one packet */
static int put_packet(struct moat_buf *b, uint8_t first, const uint8_t *fix,
		      size_t fixlen, const struct moat_pw *props,
		      const uint8_t *tail, size_t taillen)
{
	size_t plen = props ? props->len : 0;
	size_t rl = fixlen + props_size(props) + taillen;
	if (rl > MQTT_MAX_REMAINING_LENGTH || (props && props->overflow))
		return MOAT_EINVAL;
	size_t total = 1 + moat_mqtt_varint_size((uint32_t)rl) + rl;
	uint8_t *o = moat_buf_reserve(b, total);
	if (!o)
		return MOAT_ENOMEM;
	size_t n = 0;
	o[n++] = first;
	n += moat_mqtt_varint_write(o + n, (uint32_t)rl);
	memcpy(o + n, fix, fixlen);
	n += fixlen;
	n += moat_mqtt_varint_write(o + n, (uint32_t)plen);
	if (plen)
		memcpy(o + n, props->p, plen);
	n += plen;
	if (taillen)
		memcpy(o + n, tail, taillen);
	n += taillen;
	assert(n == total);
	moat_buf_commit(b, total);
	return MOAT_OK;
}

int moat_mqtt5_connack(struct moat_buf *b, bool session_present,
		       uint8_t reason, const struct moat_pw *props)
{
	uint8_t fix[2] = {session_present ? 1 : 0, reason};
	return put_packet(b, MQTT_CONNACK << 4, fix, 2, props, NULL, 0);
}

int moat_mqtt5_ack(struct moat_buf *b, enum moat_mqtt_type type,
		   uint16_t packet_id, uint8_t reason,
		   const struct moat_pw *props)
{
	uint8_t first = (uint8_t)((unsigned)type << 4);
	if (type == MQTT_PUBREL)
		first |= 0x02;
	if (reason == RC_SUCCESS && (!props || !props->len)) {
		uint8_t pkt[4];
		moat_mqtt_ack_encode(pkt, type, packet_id);
		return moat_buf_append(b, pkt, 4);
	}
	uint8_t fix[3] = {(uint8_t)(packet_id >> 8), (uint8_t)packet_id,
			  reason};
	return put_packet(b, first, fix, 3, props, NULL, 0);
}

int moat_mqtt5_suback(struct moat_buf *b, enum moat_mqtt_type type,
		      uint16_t packet_id, const uint8_t *codes, size_t n,
		      const struct moat_pw *props)
{
	uint8_t fix[2] = {(uint8_t)(packet_id >> 8), (uint8_t)packet_id};
	return put_packet(b, (uint8_t)((unsigned)type << 4), fix, 2, props,
			  codes, n);
}

int moat_mqtt5_disconnect(struct moat_buf *b, uint8_t reason,
			  const struct moat_pw *props)
{
	uint8_t fix[1] = {reason};
	return put_packet(b, MQTT_DISCONNECT << 4, fix, 1, props, NULL, 0);
}

int moat_mqtt5_auth(struct moat_buf *b, uint8_t reason,
		    const struct moat_pw *props)
{
	uint8_t fix[1] = {reason};
	return put_packet(b, 0xF0, fix, 1, props, NULL, 0);
}

size_t moat_mqtt5_publish_size(size_t topic_len, size_t props_len,
			       size_t payload_len, uint8_t qos)
{
	size_t fixed = 2 + topic_len + (qos ? 2u : 0u);
	if (topic_len > 65535 || props_len > MQTT_MAX_REMAINING_LENGTH)
		return 0;
	size_t pl = moat_mqtt_varint_size((uint32_t)props_len) + props_len;
	if (payload_len > MQTT_MAX_REMAINING_LENGTH - fixed ||
	    pl > MQTT_MAX_REMAINING_LENGTH - fixed - payload_len)
		return 0;
	size_t rl = fixed + pl + payload_len;
	return 1 + moat_mqtt_varint_size((uint32_t)rl) + rl;
}

size_t moat_mqtt5_publish_encode(uint8_t *out, const uint8_t *topic,
				 size_t topic_len, const uint8_t *pre,
				 size_t pre_len, const uint8_t *msgp,
				 size_t msgp_len, const uint8_t *payload,
				 size_t payload_len, uint8_t qos, bool retain,
				 bool dup, uint16_t packet_id)
{
	size_t plen = pre_len + msgp_len;
	size_t total = moat_mqtt5_publish_size(topic_len, plen, payload_len,
					       qos);
	assert(total);
	size_t rl = 2 + topic_len + (qos ? 2u : 0u) +
		    moat_mqtt_varint_size((uint32_t)plen) + plen + payload_len;
	size_t n = 0;
	out[n++] = (uint8_t)((MQTT_PUBLISH << 4) | (dup ? 0x08 : 0) |
			     (qos << 1) | (retain ? 1 : 0));
	n += moat_mqtt_varint_write(out + n, (uint32_t)rl);
	out[n++] = (uint8_t)(topic_len >> 8);
	out[n++] = (uint8_t)topic_len;
	if (topic_len)
		memcpy(out + n, topic, topic_len);
	n += topic_len;
	if (qos) {
		out[n++] = (uint8_t)(packet_id >> 8);
		out[n++] = (uint8_t)packet_id;
	}
	n += moat_mqtt_varint_write(out + n, (uint32_t)plen);
	if (pre_len)
		memcpy(out + n, pre, pre_len);
	n += pre_len;
	if (msgp_len)
		memcpy(out + n, msgp, msgp_len);
	n += msgp_len;
	if (payload_len)
		memcpy(out + n, payload, payload_len);
	n += payload_len;
	assert(n == total);
	(void)total;
	return n;
}
