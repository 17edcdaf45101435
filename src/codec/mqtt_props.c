/* MQTT 5.0 vocabulary: the property identifier table, the validating
 * property reader and writer (struct moat_pw), and reason code names. */
#include <string.h>

#include "mqtt5.h"

enum ptype { PT_BYTE, PT_U16, PT_U32, PT_VARINT, PT_UTF8, PT_BIN, PT_PAIR };

#define C(x) (1u << (x))
#define C_PUBWILL (C(PCTX_PUBLISH) | C(PCTX_WILL))
#define C_ALL 0xFFFFu

struct pdef {
	uint8_t type;     /* enum ptype; 0xFF = unknown identifier */
	uint16_t ctx;     /* contexts where allowed */
	bool multi;       /* may repeat */
};

static struct pdef pdef_of(uint32_t id)
{
	struct pdef d = {0xFF, 0, false};
	switch (id) {
	case PROP_PAYLOAD_FORMAT: d = (struct pdef){PT_BYTE, C_PUBWILL, 0}; break;
	case PROP_MESSAGE_EXPIRY: d = (struct pdef){PT_U32, C_PUBWILL, 0}; break;
	case PROP_CONTENT_TYPE: d = (struct pdef){PT_UTF8, C_PUBWILL, 0}; break;
	case PROP_RESPONSE_TOPIC: d = (struct pdef){PT_UTF8, C_PUBWILL, 0}; break;
	case PROP_CORRELATION_DATA: d = (struct pdef){PT_BIN, C_PUBWILL, 0}; break;
	case PROP_SUBSCRIPTION_ID:
		d = (struct pdef){PT_VARINT,
				  C(PCTX_PUBLISH) | C(PCTX_SUBSCRIBE), 1};
		break;
	case PROP_SESSION_EXPIRY:
		d = (struct pdef){PT_U32, C(PCTX_CONNECT) | C(PCTX_CONNACK) |
						  C(PCTX_DISCONNECT), 0};
		break;
	case PROP_ASSIGNED_CLIENT_ID: d = (struct pdef){PT_UTF8, C(PCTX_CONNACK), 0}; break;
	case PROP_SERVER_KEEPALIVE: d = (struct pdef){PT_U16, C(PCTX_CONNACK), 0}; break;
	case PROP_AUTH_METHOD:
		d = (struct pdef){PT_UTF8, C(PCTX_CONNECT) | C(PCTX_CONNACK) |
						   C(PCTX_AUTH), 0};
		break;
	case PROP_AUTH_DATA:
		d = (struct pdef){PT_BIN, C(PCTX_CONNECT) | C(PCTX_CONNACK) |
						  C(PCTX_AUTH), 0};
		break;
	case PROP_REQUEST_PROBLEM_INFO: d = (struct pdef){PT_BYTE, C(PCTX_CONNECT), 0}; break;
	case PROP_WILL_DELAY: d = (struct pdef){PT_U32, C(PCTX_WILL), 0}; break;
	case PROP_REQUEST_RESPONSE_INFO: d = (struct pdef){PT_BYTE, C(PCTX_CONNECT), 0}; break;
	case PROP_RESPONSE_INFO: d = (struct pdef){PT_UTF8, C(PCTX_CONNACK), 0}; break;
	case PROP_SERVER_REFERENCE:
		d = (struct pdef){PT_UTF8, C(PCTX_CONNACK) | C(PCTX_DISCONNECT), 0};
		break;
	case PROP_REASON_STRING:
		d = (struct pdef){PT_UTF8, C(PCTX_CONNACK) | C(PCTX_ACK) |
						   C(PCTX_SUBACK) | C(PCTX_UNSUBACK) |
						   C(PCTX_DISCONNECT) | C(PCTX_AUTH), 0};
		break;
	case PROP_RECEIVE_MAXIMUM:
	case PROP_TOPIC_ALIAS_MAXIMUM:
		d = (struct pdef){PT_U16, C(PCTX_CONNECT) | C(PCTX_CONNACK), 0};
		break;
	case PROP_TOPIC_ALIAS: d = (struct pdef){PT_U16, C(PCTX_PUBLISH), 0}; break;
	case PROP_MAXIMUM_QOS:
	case PROP_RETAIN_AVAILABLE:
	case PROP_WILDCARD_SUB_AVAILABLE:
	case PROP_SUB_ID_AVAILABLE:
	case PROP_SHARED_SUB_AVAILABLE:
		d = (struct pdef){PT_BYTE, C(PCTX_CONNACK), 0};
		break;
	case PROP_USER_PROPERTY: d = (struct pdef){PT_PAIR, C_ALL, 1}; break;
	case PROP_MAXIMUM_PACKET_SIZE:
		d = (struct pdef){PT_U32, C(PCTX_CONNECT) | C(PCTX_CONNACK), 0};
		break;
	default: break;
	}
	return d;
}

static int rd_u32(struct moat_rd *rd, uint32_t *v)
{
	if (moat_rd_left(rd) < 4)
		return MOAT_EMALFORMED;
	const uint8_t *p = rd->p + rd->pos;
	*v = (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 |
	     p[3];
	rd->pos += 4;
	return MOAT_OK;
}

/* Read one property value of type t into it (no semantic checks). */
static int read_value(struct moat_rd *rd, uint8_t t,
		      struct moat_mqtt_prop_item *it)
{
	uint8_t b;
	uint16_t s;
	switch (t) {
	case PT_BYTE:
		if (moat_rd_u8(rd, &b))
			return MOAT_EMALFORMED;
		it->num = b;
		return MOAT_OK;
	case PT_U16:
		if (moat_rd_u16(rd, &s))
			return MOAT_EMALFORMED;
		it->num = s;
		return MOAT_OK;
	case PT_U32:
		return rd_u32(rd, &it->num);
	case PT_VARINT:
		return moat_rd_varint(rd, &it->num);
	case PT_UTF8:
		return moat_rd_string(rd, &it->a);
	case PT_BIN:
		return moat_rd_binary(rd, &it->a);
	case PT_PAIR: {
		int rc = moat_rd_string(rd, &it->a);
		return rc ? rc : moat_rd_string(rd, &it->b);
	}
	default:
		return MOAT_EMALFORMED;
	}
}

/* Values the specification calls a Protocol Error. */
static bool value_ok(uint8_t id, uint32_t v)
{
	switch (id) {
	case PROP_PAYLOAD_FORMAT:
	case PROP_REQUEST_PROBLEM_INFO:
	case PROP_REQUEST_RESPONSE_INFO:
	case PROP_MAXIMUM_QOS:
	case PROP_RETAIN_AVAILABLE:
	case PROP_WILDCARD_SUB_AVAILABLE:
	case PROP_SUB_ID_AVAILABLE:
	case PROP_SHARED_SUB_AVAILABLE:
		return v <= 1;
	case PROP_RECEIVE_MAXIMUM:
	case PROP_MAXIMUM_PACKET_SIZE:
	case PROP_TOPIC_ALIAS:
	case PROP_SUBSCRIPTION_ID:
		return v != 0;
	default:
		return true;
	}
}

static void store(struct moat_mqtt_props *o, uint8_t id,
		  const struct moat_mqtt_prop_item *it)
{
	switch (id) {
	case PROP_PAYLOAD_FORMAT: o->payload_format = (uint8_t)it->num; break;
	case PROP_MESSAGE_EXPIRY: o->message_expiry = it->num; break;
	case PROP_CONTENT_TYPE: o->content_type = it->a; break;
	case PROP_RESPONSE_TOPIC: o->response_topic = it->a; break;
	case PROP_CORRELATION_DATA: o->correlation_data = it->a; break;
	case PROP_SUBSCRIPTION_ID:
		o->subscription_id = it->num;
		o->n_subscription_ids++;
		break;
	case PROP_SESSION_EXPIRY: o->session_expiry = it->num; break;
	case PROP_ASSIGNED_CLIENT_ID: o->assigned_client_id = it->a; break;
	case PROP_SERVER_KEEPALIVE: o->server_keepalive = (uint16_t)it->num; break;
	case PROP_AUTH_METHOD: o->auth_method = it->a; break;
	case PROP_AUTH_DATA: o->auth_data = it->a; break;
	case PROP_REQUEST_PROBLEM_INFO: o->request_problem_info = (uint8_t)it->num; break;
	case PROP_WILL_DELAY: o->will_delay = it->num; break;
	case PROP_REQUEST_RESPONSE_INFO: o->request_response_info = (uint8_t)it->num; break;
	case PROP_RESPONSE_INFO: o->response_info = it->a; break;
	case PROP_SERVER_REFERENCE: o->server_reference = it->a; break;
	case PROP_REASON_STRING: o->reason_string = it->a; break;
	case PROP_RECEIVE_MAXIMUM: o->receive_maximum = (uint16_t)it->num; break;
	case PROP_TOPIC_ALIAS_MAXIMUM: o->topic_alias_maximum = (uint16_t)it->num; break;
	case PROP_TOPIC_ALIAS: o->topic_alias = (uint16_t)it->num; break;
	case PROP_MAXIMUM_QOS: o->maximum_qos = (uint8_t)it->num; break;
	case PROP_RETAIN_AVAILABLE: o->retain_available = (uint8_t)it->num; break;
	case PROP_USER_PROPERTY: o->n_user++; break;
	case PROP_MAXIMUM_PACKET_SIZE: o->maximum_packet_size = it->num; break;
	case PROP_WILDCARD_SUB_AVAILABLE: o->wildcard_available = (uint8_t)it->num; break;
	case PROP_SUB_ID_AVAILABLE: o->subid_available = (uint8_t)it->num; break;
	case PROP_SHARED_SUB_AVAILABLE: o->shared_available = (uint8_t)it->num; break;
	default: break;
	}
}

int moat_mqtt_props_read(struct moat_rd *rd, enum moat_mqtt_prop_ctx ctx,
			 struct moat_mqtt_props *out)
{
	uint32_t len;
	memset(out, 0, sizeof(*out));
	if (moat_rd_varint(rd, &len) != MOAT_OK || moat_rd_left(rd) < len)
		return MOAT_EMALFORMED;
	struct moat_rd pr;
	moat_rd_init(&pr, rd->p + rd->pos, len);
	out->raw.p = pr.p;
	out->raw.len = len;
	rd->pos += len;
	int proto_err = MOAT_OK;
	while (moat_rd_left(&pr)) {
		uint32_t id;
		struct moat_mqtt_prop_item it;
		memset(&it, 0, sizeof(it));
		/* Identifiers are varints, though all fit in one byte. */
		if (moat_rd_varint(&pr, &id) != MOAT_OK)
			return MOAT_EMALFORMED;
		struct pdef d = pdef_of(id);
		if (d.type == 0xFF || !(d.ctx & C(ctx)))
			return MOAT_EMALFORMED; /* §2.2.2.2 */
		int rc = read_value(&pr, d.type, &it);
		if (rc)
			return rc;
		uint8_t bid = (uint8_t)id;
		if (!d.multi || (bid == PROP_SUBSCRIPTION_ID &&
				 ctx == PCTX_SUBSCRIBE)) {
			if (moat_props_has(out, (enum moat_mqtt_prop)bid))
				proto_err = MOAT_EPROTO; /* duplicate */
			out->has |= 1ull << bid;
		}
		if (!value_ok(bid, it.num))
			proto_err = MOAT_EPROTO;
		if (bid == PROP_SUBSCRIPTION_ID && it.num > 268435455u)
			return MOAT_EMALFORMED;
		store(out, bid, &it);
	}
	/* Malformed takes precedence: it was checked over the whole block. */
	return proto_err;
}

bool moat_mqtt_props_next(const struct moat_bytes *raw, size_t *pos,
			  struct moat_mqtt_prop_item *it)
{
	struct moat_rd rd;
	uint32_t id;
	if (*pos >= raw->len)
		return false;
	moat_rd_init(&rd, raw->p, raw->len);
	rd.pos = *pos;
	memset(it, 0, sizeof(*it));
	if (moat_rd_varint(&rd, &id) != MOAT_OK)
		return false;
	struct pdef d = pdef_of(id);
	if (d.type == 0xFF || read_value(&rd, d.type, it) != MOAT_OK)
		return false;
	it->id = (uint8_t)id;
	it->wire.p = raw->p + *pos;
	it->wire.len = rd.pos - *pos;
	*pos = rd.pos;
	return true;
}

/* ---- property writer ------------------------------------------------------ */

void moat_pw_init(struct moat_pw *w, uint8_t *buf, size_t cap)
{
	w->p = buf;
	w->len = 0;
	w->cap = cap;
	w->overflow = false;
}

void moat_pw_raw(struct moat_pw *w, const void *p, size_t n)
{
	if (w->overflow || n > w->cap - w->len) {
		w->overflow = true;
		return;
	}
	if (n)
		memcpy(w->p + w->len, p, n);
	w->len += n;
}

void moat_pw_u8(struct moat_pw *w, uint8_t id, uint8_t v)
{
	uint8_t b[2] = {id, v};
	moat_pw_raw(w, b, 2);
}

void moat_pw_u16(struct moat_pw *w, uint8_t id, uint16_t v)
{
	uint8_t b[3] = {id, (uint8_t)(v >> 8), (uint8_t)v};
	moat_pw_raw(w, b, 3);
}

void moat_pw_u32(struct moat_pw *w, uint8_t id, uint32_t v)
{
	uint8_t b[5] = {id, (uint8_t)(v >> 24), (uint8_t)(v >> 16),
			(uint8_t)(v >> 8), (uint8_t)v};
	moat_pw_raw(w, b, 5);
}

void moat_pw_varint(struct moat_pw *w, uint8_t id, uint32_t v)
{
	uint8_t b[5];
	if (v > MQTT_MAX_REMAINING_LENGTH) { /* not representable */
		w->overflow = true;
		return;
	}
	b[0] = id;
	size_t n = 1 + moat_mqtt_varint_write(b + 1, v);
	moat_pw_raw(w, b, n);
}

void moat_pw_bytes(struct moat_pw *w, uint8_t id, const void *p, size_t n)
{
	if (n > 65535) {
		w->overflow = true;
		return;
	}
	uint8_t b[3] = {id, (uint8_t)(n >> 8), (uint8_t)n};
	moat_pw_raw(w, b, 3);
	moat_pw_raw(w, p, n);
}

const char *moat_mqtt_rc_name(uint8_t rc)
{
	switch (rc) {
	case RC_SUCCESS: return "Success";
	case RC_GRANTED_QOS1: return "Granted QoS 1";
	case RC_GRANTED_QOS2: return "Granted QoS 2";
	case RC_DISCONNECT_WITH_WILL: return "Disconnect with Will Message";
	case RC_NO_MATCHING_SUBSCRIBERS: return "No matching subscribers";
	case RC_NO_SUBSCRIPTION_EXISTED: return "No subscription existed";
	case RC_CONTINUE_AUTH: return "Continue authentication";
	case RC_REAUTHENTICATE: return "Re-authenticate";
	case RC_UNSPECIFIED: return "Unspecified error";
	case RC_MALFORMED: return "Malformed Packet";
	case RC_PROTOCOL_ERROR: return "Protocol Error";
	case RC_IMPL_SPECIFIC: return "Implementation specific error";
	case RC_UNSUPPORTED_VERSION: return "Unsupported Protocol Version";
	case RC_CLIENT_ID_INVALID: return "Client Identifier not valid";
	case RC_BAD_USER_PASS: return "Bad User Name or Password";
	case RC_NOT_AUTHORIZED: return "Not authorized";
	case RC_SERVER_UNAVAILABLE: return "Server unavailable";
	case RC_SERVER_BUSY: return "Server busy";
	case RC_BANNED: return "Banned";
	case RC_SERVER_SHUTTING_DOWN: return "Server shutting down";
	case RC_BAD_AUTH_METHOD: return "Bad authentication method";
	case RC_KEEPALIVE_TIMEOUT: return "Keep Alive timeout";
	case RC_SESSION_TAKEN_OVER: return "Session taken over";
	case RC_TOPIC_FILTER_INVALID: return "Topic Filter invalid";
	case RC_TOPIC_NAME_INVALID: return "Topic Name invalid";
	case RC_PACKET_ID_IN_USE: return "Packet Identifier in use";
	case RC_PACKET_ID_NOT_FOUND: return "Packet Identifier not found";
	case RC_RECEIVE_MAX_EXCEEDED: return "Receive Maximum exceeded";
	case RC_TOPIC_ALIAS_INVALID: return "Topic Alias invalid";
	case RC_PACKET_TOO_LARGE: return "Packet too large";
	case RC_MESSAGE_RATE_TOO_HIGH: return "Message rate too high";
	case RC_QUOTA_EXCEEDED: return "Quota exceeded";
	case RC_ADMIN_ACTION: return "Administrative action";
	case RC_PAYLOAD_FORMAT_INVALID: return "Payload format invalid";
	case RC_RETAIN_NOT_SUPPORTED: return "Retain not supported";
	case RC_QOS_NOT_SUPPORTED: return "QoS not supported";
	case RC_USE_ANOTHER_SERVER: return "Use another server";
	case RC_SERVER_MOVED: return "Server moved";
	case RC_SHARED_SUBS_NOT_SUPPORTED: return "Shared Subscriptions not supported";
	case RC_CONNECTION_RATE_EXCEEDED: return "Connection rate exceeded";
	case RC_MAX_CONNECT_TIME: return "Maximum connect time";
	case RC_SUB_IDS_NOT_SUPPORTED: return "Subscription Identifiers not supported";
	case RC_WILDCARD_SUBS_NOT_SUPPORTED: return "Wildcard Subscriptions not supported";
	default: return "unknown reason code";
	}
}
