/* MQTT 5.0 additions to the codec: properties, reason codes, and the
 * version-aware decoders and encoders.  Pure functions, no I/O. */
#ifndef MOAT_MQTT5_H
#define MOAT_MQTT5_H

#include "mqtt_codec.h"

/* Property identifiers, MQTT 5.0 §2.2.2.2 */
enum moat_mqtt_prop {
	PROP_PAYLOAD_FORMAT = 0x01,
	PROP_MESSAGE_EXPIRY = 0x02,
	PROP_CONTENT_TYPE = 0x03,
	PROP_RESPONSE_TOPIC = 0x08,
	PROP_CORRELATION_DATA = 0x09,
	PROP_SUBSCRIPTION_ID = 0x0B,
	PROP_SESSION_EXPIRY = 0x11,
	PROP_ASSIGNED_CLIENT_ID = 0x12,
	PROP_SERVER_KEEPALIVE = 0x13,
	PROP_AUTH_METHOD = 0x15,
	PROP_AUTH_DATA = 0x16,
	PROP_REQUEST_PROBLEM_INFO = 0x17,
	PROP_WILL_DELAY = 0x18,
	PROP_REQUEST_RESPONSE_INFO = 0x19,
	PROP_RESPONSE_INFO = 0x1A,
	PROP_SERVER_REFERENCE = 0x1C,
	PROP_REASON_STRING = 0x1F,
	PROP_RECEIVE_MAXIMUM = 0x21,
	PROP_TOPIC_ALIAS_MAXIMUM = 0x22,
	PROP_TOPIC_ALIAS = 0x23,
	PROP_MAXIMUM_QOS = 0x24,
	PROP_RETAIN_AVAILABLE = 0x25,
	PROP_USER_PROPERTY = 0x26,
	PROP_MAXIMUM_PACKET_SIZE = 0x27,
	PROP_WILDCARD_SUB_AVAILABLE = 0x28,
	PROP_SUB_ID_AVAILABLE = 0x29,
	PROP_SHARED_SUB_AVAILABLE = 0x2A,
};

/* Reason codes, MQTT 5.0 §2.4 */
enum moat_mqtt_rc {
	RC_SUCCESS = 0x00,
	RC_GRANTED_QOS1 = 0x01,
	RC_GRANTED_QOS2 = 0x02,
	RC_DISCONNECT_WITH_WILL = 0x04,
	RC_NO_MATCHING_SUBSCRIBERS = 0x10,
	RC_NO_SUBSCRIPTION_EXISTED = 0x11,
	RC_CONTINUE_AUTH = 0x18,
	RC_REAUTHENTICATE = 0x19,
	RC_UNSPECIFIED = 0x80,
	RC_MALFORMED = 0x81,
	RC_PROTOCOL_ERROR = 0x82,
	RC_IMPL_SPECIFIC = 0x83,
	RC_UNSUPPORTED_VERSION = 0x84,
	RC_CLIENT_ID_INVALID = 0x85,
	RC_BAD_USER_PASS = 0x86,
	RC_NOT_AUTHORIZED = 0x87,
	RC_SERVER_UNAVAILABLE = 0x88,
	RC_SERVER_BUSY = 0x89,
	RC_BANNED = 0x8A,
	RC_SERVER_SHUTTING_DOWN = 0x8B,
	RC_BAD_AUTH_METHOD = 0x8C,
	RC_KEEPALIVE_TIMEOUT = 0x8D,
	RC_SESSION_TAKEN_OVER = 0x8E,
	RC_TOPIC_FILTER_INVALID = 0x8F,
	RC_TOPIC_NAME_INVALID = 0x90,
	RC_PACKET_ID_IN_USE = 0x91,
	RC_PACKET_ID_NOT_FOUND = 0x92,
	RC_RECEIVE_MAX_EXCEEDED = 0x93,
	RC_TOPIC_ALIAS_INVALID = 0x94,
	RC_PACKET_TOO_LARGE = 0x95,
	RC_MESSAGE_RATE_TOO_HIGH = 0x96,
	RC_QUOTA_EXCEEDED = 0x97,
	RC_ADMIN_ACTION = 0x98,
	RC_PAYLOAD_FORMAT_INVALID = 0x99,
	RC_RETAIN_NOT_SUPPORTED = 0x9A,
	RC_QOS_NOT_SUPPORTED = 0x9B,
	RC_USE_ANOTHER_SERVER = 0x9C,
	RC_SERVER_MOVED = 0x9D,
	RC_SHARED_SUBS_NOT_SUPPORTED = 0x9E,
	RC_CONNECTION_RATE_EXCEEDED = 0x9F,
	RC_MAX_CONNECT_TIME = 0xA0,
	RC_SUB_IDS_NOT_SUPPORTED = 0xA1,
	RC_WILDCARD_SUBS_NOT_SUPPORTED = 0xA2,
};

/* Where a property block sits; decides which identifiers are allowed. */
enum moat_mqtt_prop_ctx {
	PCTX_CONNECT,
	PCTX_WILL,
	PCTX_CONNACK,
	PCTX_PUBLISH,
	PCTX_ACK, /* PUBACK, PUBREC, PUBREL, PUBCOMP */
	PCTX_SUBSCRIBE,
	PCTX_SUBACK,
	PCTX_UNSUBSCRIBE,
	PCTX_UNSUBACK,
	PCTX_DISCONNECT,
	PCTX_AUTH,
};

/* Decoded properties.  Bytes fields point into the packet (borrowed).
 * `has` is a bit set of the single-valued identifiers seen (bit = id). */
struct moat_mqtt_props {
	uint64_t has;
	uint8_t payload_format;
	uint32_t message_expiry;
	struct moat_bytes content_type;
	struct moat_bytes response_topic;
	struct moat_bytes correlation_data;
	uint32_t subscription_id; /* SUBSCRIBE: the one allowed */
	size_t n_subscription_ids; /* PUBLISH (client side): how many */
	uint32_t session_expiry;
	struct moat_bytes assigned_client_id;
	uint16_t server_keepalive;
	struct moat_bytes auth_method;
	struct moat_bytes auth_data;
	uint8_t request_problem_info;
	uint32_t will_delay;
	uint8_t request_response_info;
	struct moat_bytes response_info;
	struct moat_bytes server_reference;
	struct moat_bytes reason_string;
	uint16_t receive_maximum;
	uint16_t topic_alias_maximum;
	uint16_t topic_alias;
	uint8_t maximum_qos;
	uint8_t retain_available;
	uint32_t maximum_packet_size;
	uint8_t wildcard_available, subid_available, shared_available;
	size_t n_user;         /* user properties, in order, inside raw */
	struct moat_bytes raw; /* the whole block, without its length */
};

static inline bool moat_props_has(const struct moat_mqtt_props *p,
				  enum moat_mqtt_prop id)
{
	return (p->has >> (unsigned)id) & 1u;
}

/* Read a property block (length + properties) at the cursor.
 * MOAT_EMALFORMED: bad length, unknown identifier, identifier not allowed
 * in ctx, bad type or truncated value (Malformed Packet, 0x81).
 * MOAT_EPROTO: a single-valued property twice, or a value the spec calls a
 * Protocol Error (0x82): payload format > 1, receive maximum 0, maximum
 * packet size 0, topic alias 0, subscription id 0, request flags > 1.
 * MOAT_EUTF8: a string property that is not valid UTF-8. */
int moat_mqtt_props_read(struct moat_rd *rd, enum moat_mqtt_prop_ctx ctx,
			 struct moat_mqtt_props *out);

/* Iterate properties of a block decoded by moat_mqtt_props_read (already
 * validated).  *pos starts at 0.  Returns false at the end. */
struct moat_mqtt_prop_item {
	uint8_t id;
	uint32_t num;           /* numeric value */
	struct moat_bytes a, b; /* string/binary; b = user property value */
	struct moat_bytes wire; /* the whole property as on the wire */
};
bool moat_mqtt_props_next(const struct moat_bytes *raw, size_t *pos,
			  struct moat_mqtt_prop_item *it);

/* ---- version-aware decoders ---- */
/* CONNECT for 3.1, 3.1.1 and, when allow_v5, 5.0 (properties, will
 * properties).  Same return contract as moat_mqtt_decode_connect, with
 * connack_rc in the 3.1.1 code space; a Protocol Error in the v5
 * properties is MOAT_EPROTO with connack_rc 0 (the caller answers 0x82). */
struct moat_mqtt_connect5 {
	struct moat_mqtt_connect c;
	struct moat_mqtt_props props;
	struct moat_mqtt_props will_props;
};
int moat_mqtt_decode_connect_v(const uint8_t *body, size_t len, bool allow_v5,
			       struct moat_mqtt_connect5 *c,
			       uint8_t *connack_rc);

/* PUBLISH for version 3/4/5.  For 5 the properties are read; an empty topic
 * is accepted only with a Topic Alias (the caller resolves it). */
struct moat_mqtt_publish5 {
	struct moat_mqtt_publish p;
	struct moat_mqtt_props props;
};
int moat_mqtt_decode_publish_v(uint8_t flags, const uint8_t *body,
			       size_t len, uint8_t version,
			       struct moat_mqtt_publish5 *p);

/* PUBACK/PUBREC/PUBREL/PUBCOMP (v5: reason code and properties are
 * optional; absent means 0x00). */
int moat_mqtt_decode_ack_v(const uint8_t *body, size_t len, uint8_t version,
			   uint16_t *packet_id, uint8_t *reason,
			   struct moat_mqtt_props *props);

/* SUBSCRIBE/UNSUBSCRIBE header (v5: properties after the packet id). */
int moat_mqtt_decode_sub_start_v(const uint8_t *body, size_t len,
				 uint8_t version, bool subscribe,
				 struct moat_rd *rd, uint16_t *packet_id,
				 struct moat_mqtt_props *props);
/* One SUBSCRIBE filter with its options byte.  v3: only QoS bits allowed
 * (anything above 2 is MOAT_EMALFORMED); v5: QoS, No Local (bit 2), Retain
 * As Published (bit 3), Retain Handling (bits 4-5); bits 6-7 reserved:
 * MOAT_EMALFORMED [MQTT-3.8.3-5]; QoS 3 or Retain Handling 3: MOAT_EPROTO
 * (§3.8.3.1 calls both a Protocol Error). */
struct moat_sub_opts {
	uint8_t qos;
	bool no_local;
	bool retain_as_published;
	uint8_t retain_handling;
};
int moat_mqtt_decode_sub_next_v(struct moat_rd *rd, uint8_t version,
				struct moat_bytes *filter,
				struct moat_sub_opts *opts);

/* DISCONNECT (v3: empty; v5: optional reason and properties). */
int moat_mqtt_decode_disconnect_v(const uint8_t *body, size_t len,
				  uint8_t version, uint8_t *reason,
				  struct moat_mqtt_props *props);
/* AUTH (v5 only). */
int moat_mqtt_decode_auth(const uint8_t *body, size_t len, uint8_t *reason,
			  struct moat_mqtt_props *props);

/* ---- property writer ---- */
/* A bounded scratch for server-built property blocks (CONNACK, acks,
 * DISCONNECT).  Writes that do not fit are dropped and set overflow. */
struct moat_pw {
	uint8_t *p;
	size_t len, cap;
	bool overflow;
};
void moat_pw_init(struct moat_pw *w, uint8_t *buf, size_t cap);
void moat_pw_u8(struct moat_pw *w, uint8_t id, uint8_t v);
void moat_pw_u16(struct moat_pw *w, uint8_t id, uint16_t v);
void moat_pw_u32(struct moat_pw *w, uint8_t id, uint32_t v);
void moat_pw_varint(struct moat_pw *w, uint8_t id, uint32_t v);
void moat_pw_bytes(struct moat_pw *w, uint8_t id, const void *p, size_t n);
void moat_pw_raw(struct moat_pw *w, const void *p, size_t n);

/* ---- v5 encoders (server side) ----
 * Each writes into b a whole packet, or nothing (MOAT_ENOMEM/EINVAL). */
int moat_mqtt5_connack(struct moat_buf *b, bool session_present,
		       uint8_t reason, const struct moat_pw *props);
/* PUBACK/PUBREC/PUBREL/PUBCOMP; reason 0 with no properties is the short
 * 2-byte form [MQTT-3.4.2.1]. */
int moat_mqtt5_ack(struct moat_buf *b, enum moat_mqtt_type type,
		   uint16_t packet_id, uint8_t reason,
		   const struct moat_pw *props);
int moat_mqtt5_suback(struct moat_buf *b, enum moat_mqtt_type type,
		      uint16_t packet_id, const uint8_t *codes, size_t n,
		      const struct moat_pw *props);
int moat_mqtt5_disconnect(struct moat_buf *b, uint8_t reason,
			  const struct moat_pw *props);
int moat_mqtt5_auth(struct moat_buf *b, uint8_t reason,
		    const struct moat_pw *props);
/* PUBLISH v5: props_pre (message expiry, topic alias, subscription ids,
 * built per delivery) then props_msg (the message's own forwarded
 * properties, already wire-encoded).  Returns the packet size via *size;
 * out must have moat_mqtt5_publish_size() bytes. */
size_t moat_mqtt5_publish_size(size_t topic_len, size_t props_len,
			       size_t payload_len, uint8_t qos);
size_t moat_mqtt5_publish_encode(uint8_t *out, const uint8_t *topic,
				 size_t topic_len, const uint8_t *pre,
				 size_t pre_len, const uint8_t *msgp,
				 size_t msgp_len, const uint8_t *payload,
				 size_t payload_len, uint8_t qos, bool retain,
				 bool dup, uint16_t packet_id);

/* Human name of a reason code ("Malformed Packet"), for logs and tools. */
const char *moat_mqtt_rc_name(uint8_t rc);

#endif
