/* MQTT encoders.  Buffers are sized by the *_size() functions, so writes
 * assert instead of checking. */
#include <assert.h>
#include <string.h>

#include "mqtt_codec.h"

size_t moat_mqtt_varint_size(uint32_t v)
{
	if (v < 128u)
		return 1;
	if (v < 16384u)
		return 2;
	if (v < 2097152u)
		return 3;
	return 4;
}

size_t moat_mqtt_varint_write(uint8_t *out, uint32_t v)
{
	assert(v <= MQTT_MAX_REMAINING_LENGTH);
	size_t n = 0;
	do {
		uint8_t b = (uint8_t)(v & 0x7F);
		v >>= 7;
		if (v)
			b |= 0x80;
		out[n++] = b;
	} while (v);
	return n;
}

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
