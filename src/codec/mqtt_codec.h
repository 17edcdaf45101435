/* MQTT 3.1.1 wire codec: pure functions, no I/O, no globals.
 *
 * Decoders take a packet body (the bytes after the fixed header) and fill a
 * struct whose moat_bytes fields point INTO that body (borrowed: valid only
 * while the body is).  Every read is bounds-checked; untrusted input never
 * trips an assert.  Encoders write into caller-sized buffers; they assert
 * because we sized those buffers ourselves. */
#ifndef MOAT_MQTT_CODEC_H
#define MOAT_MQTT_CODEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../common/moat_common.h"
#include "mqtt_prim.h"

enum moat_mqtt_type {
	MQTT_CONNECT = 1,
	MQTT_CONNACK = 2,
	MQTT_PUBLISH = 3,
	MQTT_PUBACK = 4,
	MQTT_PUBREC = 5,
	MQTT_PUBREL = 6,
	MQTT_PUBCOMP = 7,
	MQTT_SUBSCRIBE = 8,
	MQTT_SUBACK = 9,
	MQTT_UNSUBSCRIBE = 10,
	MQTT_UNSUBACK = 11,
	MQTT_PINGREQ = 12,
	MQTT_PINGRESP = 13,
	MQTT_DISCONNECT = 14,
	MQTT_AUTH = 15, /* MQTT 5 */
};

/* CONNACK return codes, MQTT 3.1.1 §3.2.2.3 */
enum moat_mqtt_connack_rc {
	MQTT_CONNACK_ACCEPTED = 0,
	MQTT_CONNACK_BAD_PROTOCOL = 1,
	MQTT_CONNACK_ID_REJECTED = 2,
	MQTT_CONNACK_UNAVAILABLE = 3,
	MQTT_CONNACK_BAD_CREDENTIALS = 4,
	MQTT_CONNACK_NOT_AUTHORIZED = 5,
};

#define MQTT_SUBACK_FAILURE 0x80
#define MQTT_PROTO_V31 3
#define MQTT_PROTO_V311 4
#define MQTT_PROTO_V5 5

/* Parse a fixed header at buf[0..len).
 * Returns MOAT_OK with *type_flags (first byte), *remaining and *hdr_len
 * set; MOAT_EAGAIN when more bytes are needed; MOAT_EMALFORMED for a
 * varint longer than 4 bytes. */
int moat_mqtt_fixed_header(const uint8_t *buf, size_t len,
			   uint8_t *type_flags, uint32_t *remaining,
			   size_t *hdr_len);

/* Check the reserved flag bits of the fixed header for a packet type
 * [MQTT-2.2.2-1] [MQTT-2.2.2-2].  Returns MOAT_OK or MOAT_EMALFORMED. */
int moat_mqtt_check_flags(uint8_t type_flags);

/* ---- CONNECT ---- */
struct moat_mqtt_connect {
	struct moat_bytes proto_name;
	uint8_t proto_level;
	bool bridge; /* 0x80 was set in the level: a bridge (try_private) */
	bool clean_session;
	bool will_flag;
	uint8_t will_qos;
	bool will_retain;
	bool has_username;
	bool has_password;
	uint16_t keepalive;
	struct moat_bytes client_id;
	struct moat_bytes will_topic;
	struct moat_bytes will_payload;
	struct moat_bytes username;
	struct moat_bytes password;
};

/* Decode a CONNECT body.  Returns:
 *  MOAT_OK         — all fields valid for 3.1 / 3.1.1;
 *  MOAT_EPROTO     — unknown protocol name/level: *connack_rc is set to
 *                    MQTT_CONNACK_BAD_PROTOCOL when the name is "MQTT" or
 *                    "MQIsdp" (reply then close), or 0xFF for a name that
 *                    is not MQTT at all (close without CONNACK)
 *                    [MQTT-3.1.2-1] [MQTT-3.1.2-2];
 *  MOAT_EMALFORMED / MOAT_EUTF8 — close without CONNACK.
 *  An invalid will topic is MOAT_EPROTO with *connack_rc 0xFF. */
int moat_mqtt_decode_connect(const uint8_t *body, size_t len,
			     struct moat_mqtt_connect *c, uint8_t *connack_rc);

/* ---- PUBLISH ---- */
struct moat_mqtt_publish {
	bool dup;
	uint8_t qos;
	bool retain;
	struct moat_bytes topic;
	uint16_t packet_id; /* 0 for QoS 0 */
	struct moat_bytes payload;
};

/* Decode a PUBLISH (flags from the fixed header).  Checks QoS 3
 * [MQTT-3.3.1-4], DUP with QoS 0 [MQTT-3.3.1-2], UTF-8 topic, wildcards in
 * the topic name [MQTT-3.3.2-2], empty topic, packet id 0 for QoS>0
 * [MQTT-2.3.1-1]. */
int moat_mqtt_decode_publish(uint8_t flags, const uint8_t *body, size_t len,
			     struct moat_mqtt_publish *p);

/* The part of PUBLISH before its properties or payload (flags, topic,
 * packet id), shared by the 3.1.1 and 5.0 decoders. */
int moat__mqtt_publish_head(uint8_t flags, struct moat_rd *rd,
			    bool empty_topic_ok, struct moat_mqtt_publish *p);

/* PUBACK/PUBREC/PUBREL/PUBCOMP/UNSUBACK: a body of exactly a packet id. */
int moat_mqtt_decode_ack(const uint8_t *body, size_t len, uint16_t *packet_id);

/* ---- SUBSCRIBE / UNSUBSCRIBE ----
 * Iterate the topic filters: call with *rd positioned after the packet id.
 * Returns MOAT_OK with *filter (and *qos for SUBSCRIBE), MOAT_ENOTFOUND at
 * the end, or an error.  Filters are UTF-8 validated here; their wildcard
 * syntax is checked by moat_topic_filter_valid(). */
int moat_mqtt_decode_sub_start(const uint8_t *body, size_t len,
			       struct moat_rd *rd, uint16_t *packet_id);
int moat_mqtt_decode_sub_next(struct moat_rd *rd, struct moat_bytes *filter,
			      uint8_t *qos);
int moat_mqtt_decode_unsub_next(struct moat_rd *rd,
				struct moat_bytes *filter);

/* ---- CONNACK / SUBACK (for clients) ---- */
int moat_mqtt_decode_connack(const uint8_t *body, size_t len,
			     bool *session_present, uint8_t *rc);

/* ---- encoders ----
 * Each *_size() gives the exact packet size, or 0 when the packet cannot
 * be represented (remaining length above 268435455); each encoder writes
 * exactly that many bytes to out and returns the count.  The buffer-based
 * encoders append a whole packet or nothing. */
size_t moat_mqtt_connack_encode(uint8_t out[4], bool session_present,
				uint8_t rc);
/* PUBACK, PUBREC, PUBREL (flags 0x2 set automatically), PUBCOMP, UNSUBACK */
size_t moat_mqtt_ack_encode(uint8_t out[4], enum moat_mqtt_type type,
			    uint16_t packet_id);
size_t moat_mqtt_simple_encode(uint8_t out[2], enum moat_mqtt_type type);

size_t moat_mqtt_publish_size(size_t topic_len, size_t payload_len,
			      uint8_t qos);
size_t moat_mqtt_publish_encode(uint8_t *out, const uint8_t *topic,
				size_t topic_len, const uint8_t *payload,
				size_t payload_len, uint8_t qos, bool retain,
				bool dup, uint16_t packet_id);

size_t moat_mqtt_suback_size(size_t count);
size_t moat_mqtt_suback_encode(uint8_t *out, uint16_t packet_id,
			       const uint8_t *codes, size_t count);

/* Client-side encoders (used by moat pub/sub and tests). */
struct moat_mqtt_connect_opts {
	uint8_t proto_level; /* 4 = 3.1.1 */
	bool clean_session;
	uint16_t keepalive;
	const char *client_id; /* may be "" */
	const char *username;  /* NULL = none */
	const uint8_t *password;
	size_t password_len;
	bool has_password;
	const char *will_topic; /* NULL = no will */
	const uint8_t *will_payload;
	size_t will_payload_len;
	uint8_t will_qos;
	bool will_retain;
	/* MQTT 5 (proto_level 5) only: wire-encoded property blocks without
	 * their length; NULL = empty. */
	const struct moat_bytes *props;
	const struct moat_bytes *will_props;
};
/* Encodes into b.  Returns MOAT_OK, MOAT_EINVAL for fields too long. */
int moat_mqtt_connect_encode(struct moat_buf *b,
			     const struct moat_mqtt_connect_opts *o);
int moat_mqtt_subscribe_encode(struct moat_buf *b, uint16_t packet_id,
			       const char *const *filters, const uint8_t *qos,
			       size_t count);
int moat_mqtt_unsubscribe_encode(struct moat_buf *b, uint16_t packet_id,
				 const char *const *filters, size_t count);
/* Length of a property block's properties (props NULL = empty), and its
 * size on the wire with the length varint in front. */
static inline size_t moat_props_len(const struct moat_bytes *props)
{
	return props ? props->len : 0;
}

static inline size_t moat_props_wire_size(const struct moat_bytes *props)
{
	size_t n = moat_props_len(props);
	return moat_mqtt_varint_size((uint32_t)n) + n;
}

/* MQTT 5 SUBSCRIBE (options: one byte per filter) or UNSUBSCRIBE (options
 * NULL), with a property block (props NULL = empty). */
int moat_mqtt5_sub_encode(struct moat_buf *b, enum moat_mqtt_type type,
			  uint16_t packet_id, const char *const *filters,
			  const uint8_t *options, size_t count,
			  const struct moat_bytes *props);
/* MQTT 5 DISCONNECT with a reason code and a property block. */
int moat_mqtt5_disconnect_encode(struct moat_buf *b, uint8_t reason,
				 const struct moat_bytes *props);

/* ---- topics (mqtt_topic.c) ---- */
/* Topic name for PUBLISH: non-empty, no '+' or '#' [MQTT-4.7.3-1]
 * [MQTT-3.3.2-2].  UTF-8 is checked by the decoder. */
bool moat_topic_name_valid(const uint8_t *t, size_t len);
/* Topic filter: non-empty; '#' only last and alone in its level
 * [MQTT-4.7.1-2]; '+' alone in its level [MQTT-4.7.1-3]. */
bool moat_topic_filter_valid(const uint8_t *f, size_t len);
/* "$SYS" or "$SYS/..." (the broker's own topics). */
bool moat_topic_is_sys(const uint8_t *t, size_t len);
/* Number of levels ('/' count + 1). */
size_t moat_topic_levels(const uint8_t *t, size_t len);
/* Does filter match topic name?  A filter starting with a wildcard does not
 * match a name starting with '$' [MQTT-4.7.2-1].  Never allocates. */
bool moat_topic_matches(const uint8_t *filter, size_t flen,
			const uint8_t *topic, size_t tlen);

#endif
