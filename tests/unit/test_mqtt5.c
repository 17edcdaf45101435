/* Unit tests for the MQTT 5.0 parts of the codec: properties
 * (src/codec/mqtt_props.c), v5 decoders (mqtt_read.c) and encoders
 * (mqtt_write.c).
 *
 * Same conventions as test_codec.c: decoders are fed exact-size heap copies
 * (ASan reports any read past the end), each test checks that it freed
 * what it allocated, and the expected values are written out independently
 * of the implementation (the property table below is the one of MQTT 5.0
 * §2.2.2.2, not a copy of the codec's). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "codec/mqtt5.h"

#include "test_util.h"

/* ---- byte builder ------------------------------------------------------ */

struct bb {
	uint8_t d[2048];
	size_t n;
};

static void bb_raw(struct bb *b, const void *p, size_t n)
{
	assert_true(b->n + n <= sizeof(b->d));
	if (n)
		memcpy(b->d + b->n, p, n);
	b->n += n;
}

static void bb_u8(struct bb *b, uint8_t v)
{
	bb_raw(b, &v, 1);
}

static void bb_u16(struct bb *b, uint16_t v)
{
	bb_u8(b, (uint8_t)(v >> 8));
	bb_u8(b, (uint8_t)(v & 0xFF));
}

static void bb_u32(struct bb *b, uint32_t v)
{
	bb_u16(b, (uint16_t)(v >> 16));
	bb_u16(b, (uint16_t)(v & 0xFFFF));
}

static void bb_varint(struct bb *b, uint32_t v)
{
	uint8_t t[4];
	size_t n = moat_mqtt_varint_write(t, v);
	bb_raw(b, t, n);
}

static void bb_bin(struct bb *b, const void *p, size_t n)
{
	bb_u16(b, (uint16_t)n);
	bb_raw(b, p, n);
}

static void bb_str(struct bb *b, const char *s)
{
	bb_bin(b, s, strlen(s));
}

/* property helpers: identifier byte + value */
static void pp_u8(struct bb *b, uint8_t id, uint8_t v)
{
	bb_u8(b, id);
	bb_u8(b, v);
}

static void pp_u16(struct bb *b, uint8_t id, uint16_t v)
{
	bb_u8(b, id);
	bb_u16(b, v);
}

static void pp_u32(struct bb *b, uint8_t id, uint32_t v)
{
	bb_u8(b, id);
	bb_u32(b, v);
}

static void pp_varint(struct bb *b, uint8_t id, uint32_t v)
{
	bb_u8(b, id);
	bb_varint(b, v);
}

static void pp_str(struct bb *b, uint8_t id, const char *s)
{
	bb_u8(b, id);
	bb_str(b, s);
}

static void pp_bin(struct bb *b, uint8_t id, const void *p, size_t n)
{
	bb_u8(b, id);
	bb_bin(b, p, n);
}

static void pp_pair(struct bb *b, const char *k, const char *v)
{
	bb_u8(b, PROP_USER_PROPERTY);
	bb_str(b, k);
	bb_str(b, v);
}

/* Append a property block (length + bytes of p) to b. */
static void bb_block(struct bb *b, const struct bb *p)
{
	bb_varint(b, (uint32_t)p->n);
	bb_raw(b, p->d, p->n);
}

static void assert_bytes(struct moat_bytes got, const void *want, size_t n)
{
	assert_int_equal(got.len, n);
	if (n)
		assert_memory_equal(got.p, want, n);
}

#define assert_bytes_str(got, s) assert_bytes((got), (s), strlen(s))

/* Read a property block from an exact heap copy of data[0..n); returns the
 * decoder's result.  On MOAT_OK also checks that the cursor consumed the
 * length and the block, and that the input held nothing else. */
static int props_rc(enum moat_mqtt_prop_ctx ctx, const void *data, size_t n)
{
	uint8_t *h = heap(data, n);
	struct moat_rd rd;
	struct moat_mqtt_props p;
	moat_rd_init(&rd, h, n);
	int rc = moat_mqtt_props_read(&rd, ctx, &p);
	if (rc == MOAT_OK) {
		assert_int_equal(rd.pos, n);
		assert_int_equal(rd.pos,
				 moat_mqtt_varint_size((uint32_t)p.raw.len) +
					 p.raw.len);
	}
	moat_free(h);
	return rc;
}

static int block_rc(enum moat_mqtt_prop_ctx ctx, const struct bb *props)
{
	struct bb b = {.n = 0};
	bb_block(&b, props);
	return props_rc(ctx, b.d, b.n);
}

static const char *const ctx_names[] = {
	"CONNECT", "WILL",	  "CONNACK",	 "PUBLISH",
	"ACK",	   "SUBSCRIBE",	  "SUBACK",	 "UNSUBSCRIBE",
	"UNSUBACK", "DISCONNECT", "AUTH",
};
#define NCTX 11

/* ---- variable byte integer --------------------------------------------- */

struct varint_case {
	uint32_t value;
	uint8_t enc[4];
	size_t n;
};

static const struct varint_case varints[] = {
	{0, {0x00}, 1},
	{1, {0x01}, 1},
	{127, {0x7F}, 1},
	{128, {0x80, 0x01}, 2},
	{16383, {0xFF, 0x7F}, 2},
	{16384, {0x80, 0x80, 0x01}, 3},
	{2097151, {0xFF, 0xFF, 0x7F}, 3},
	{2097152, {0x80, 0x80, 0x80, 0x01}, 4},
	{268435455, {0xFF, 0xFF, 0xFF, 0x7F}, 4},
};

static void test_rd_varint_boundaries(void **state)
{
	(void)state;
	for (size_t i = 0; i < MOAT_ARRAY_LEN(varints); i++) {
		const struct varint_case *c = &varints[i];
		/* alone, and followed by a byte that must not be consumed */
		for (size_t extra = 0; extra < 2; extra++) {
			uint8_t buf[5];
			memcpy(buf, c->enc, c->n);
			buf[c->n] = 0x55;
			uint8_t *h = heap(buf, c->n + extra);
			struct moat_rd rd;
			uint32_t v = 0xDEADBEEF;
			moat_rd_init(&rd, h, c->n + extra);
			assert_int_equal(moat_rd_varint(&rd, &v), MOAT_OK);
			assert_int_equal(v, c->value);
			assert_int_equal(rd.pos, c->n);
			moat_free(h);
		}
		/* every proper prefix is truncated */
		for (size_t len = 0; len < c->n; len++) {
			uint8_t *h = heap(c->enc, len);
			struct moat_rd rd;
			uint32_t v = 0xDEADBEEF;
			moat_rd_init(&rd, h, len);
			assert_int_equal(moat_rd_varint(&rd, &v),
					 MOAT_EMALFORMED);
			assert_int_equal(v, 0xDEADBEEF);
			moat_free(h);
		}
	}
	/* a fifth byte is never allowed [MQTT-1.5.5] */
	static const uint8_t five[] = {0xFF, 0xFF, 0xFF, 0xFF, 0x7F};
	static const uint8_t five0[] = {0x80, 0x80, 0x80, 0x80, 0x00};
	const uint8_t *bad[] = {five, five0};
	for (size_t i = 0; i < 2; i++) {
		uint8_t *h = heap(bad[i], 5);
		struct moat_rd rd;
		uint32_t v;
		moat_rd_init(&rd, h, 5);
		assert_int_equal(moat_rd_varint(&rd, &v), MOAT_EMALFORMED);
		moat_free(h);
	}
	/* four continuation bytes and nothing more: malformed, not "more" */
	uint8_t *h = heap(five, 4);
	struct moat_rd rd;
	uint32_t v;
	moat_rd_init(&rd, h, 4);
	assert_int_equal(moat_rd_varint(&rd, &v), MOAT_EMALFORMED);
	moat_free(h);
	/* non-minimal encodings are accepted (documented: minimal or not) */
	static const uint8_t nonmin[] = {0x80, 0x00};
	h = heap(nonmin, 2);
	moat_rd_init(&rd, h, 2);
	assert_int_equal(moat_rd_varint(&rd, &v), MOAT_OK);
	assert_int_equal(v, 0);
	assert_int_equal(rd.pos, 2);
	moat_free(h);
	/* reading from the middle of a buffer */
	static const uint8_t mid[] = {0xAA, 0xC1, 0x02, 0xBB};
	h = heap(mid, 4);
	moat_rd_init(&rd, h, 4);
	rd.pos = 1;
	assert_int_equal(moat_rd_varint(&rd, &v), MOAT_OK);
	assert_int_equal(v, 321);
	assert_int_equal(rd.pos, 3);
	moat_free(h);
}

/* ---- the property table of MQTT 5.0 §2.2.2.2 --------------------------- */

enum vtype { V_BYTE, V_U16, V_U32, V_VARINT, V_UTF8, V_BIN, V_PAIR };

#define X(c) (1u << (c))
#define X_ALLACKS (X(PCTX_ACK))

struct pcase {
	uint8_t id;
	enum vtype type;
	unsigned ctx; /* where the spec allows it */
};

static const struct pcase pcases[] = {
	{PROP_PAYLOAD_FORMAT, V_BYTE, X(PCTX_PUBLISH) | X(PCTX_WILL)},
	{PROP_MESSAGE_EXPIRY, V_U32, X(PCTX_PUBLISH) | X(PCTX_WILL)},
	{PROP_CONTENT_TYPE, V_UTF8, X(PCTX_PUBLISH) | X(PCTX_WILL)},
	{PROP_RESPONSE_TOPIC, V_UTF8, X(PCTX_PUBLISH) | X(PCTX_WILL)},
	{PROP_CORRELATION_DATA, V_BIN, X(PCTX_PUBLISH) | X(PCTX_WILL)},
	{PROP_SUBSCRIPTION_ID, V_VARINT, X(PCTX_PUBLISH) | X(PCTX_SUBSCRIBE)},
	{PROP_SESSION_EXPIRY, V_U32,
	 X(PCTX_CONNECT) | X(PCTX_CONNACK) | X(PCTX_DISCONNECT)},
	{PROP_ASSIGNED_CLIENT_ID, V_UTF8, X(PCTX_CONNACK)},
	{PROP_SERVER_KEEPALIVE, V_U16, X(PCTX_CONNACK)},
	{PROP_AUTH_METHOD, V_UTF8,
	 X(PCTX_CONNECT) | X(PCTX_CONNACK) | X(PCTX_AUTH)},
	{PROP_AUTH_DATA, V_BIN, X(PCTX_CONNECT) | X(PCTX_CONNACK) | X(PCTX_AUTH)},
	{PROP_REQUEST_PROBLEM_INFO, V_BYTE, X(PCTX_CONNECT)},
	{PROP_WILL_DELAY, V_U32, X(PCTX_WILL)},
	{PROP_REQUEST_RESPONSE_INFO, V_BYTE, X(PCTX_CONNECT)},
	{PROP_RESPONSE_INFO, V_UTF8, X(PCTX_CONNACK)},
	{PROP_SERVER_REFERENCE, V_UTF8, X(PCTX_CONNACK) | X(PCTX_DISCONNECT)},
	{PROP_REASON_STRING, V_UTF8,
	 X(PCTX_CONNACK) | X(PCTX_ACK) | X(PCTX_SUBACK) | X(PCTX_UNSUBACK) |
		 X(PCTX_DISCONNECT) | X(PCTX_AUTH)},
	{PROP_RECEIVE_MAXIMUM, V_U16, X(PCTX_CONNECT) | X(PCTX_CONNACK)},
	{PROP_TOPIC_ALIAS_MAXIMUM, V_U16, X(PCTX_CONNECT) | X(PCTX_CONNACK)},
	{PROP_TOPIC_ALIAS, V_U16, X(PCTX_PUBLISH)},
	{PROP_MAXIMUM_QOS, V_BYTE, X(PCTX_CONNACK)},
	{PROP_RETAIN_AVAILABLE, V_BYTE, X(PCTX_CONNACK)},
	{PROP_USER_PROPERTY, V_PAIR, (1u << NCTX) - 1}, /* everywhere */
	{PROP_MAXIMUM_PACKET_SIZE, V_U32, X(PCTX_CONNECT) | X(PCTX_CONNACK)},
	{PROP_WILDCARD_SUB_AVAILABLE, V_BYTE, X(PCTX_CONNACK)},
	{PROP_SUB_ID_AVAILABLE, V_BYTE, X(PCTX_CONNACK)},
	{PROP_SHARED_SUB_AVAILABLE, V_BYTE, X(PCTX_CONNACK)},
};

/* Sample values, one per type, and what they decode to. */
#define S_BYTE 1u
#define S_U16 0x1234u
#define S_U32 0x12345678u
#define S_VARINT 300u /* two bytes on the wire */
static const char s_utf8[] = "a/\xC3\xA9"; /* "a/é" */
static const uint8_t s_bin[] = {0x00, 0xFF, 0x80};
static const char s_key[] = "k", s_val[] = "vw";

static void put_sample(struct bb *b, const struct pcase *c)
{
	switch (c->type) {
	case V_BYTE: pp_u8(b, c->id, S_BYTE); break;
	case V_U16: pp_u16(b, c->id, S_U16); break;
	case V_U32: pp_u32(b, c->id, S_U32); break;
	case V_VARINT: pp_varint(b, c->id, S_VARINT); break;
	case V_UTF8: pp_str(b, c->id, s_utf8); break;
	case V_BIN: pp_bin(b, c->id, s_bin, sizeof(s_bin)); break;
	case V_PAIR: pp_pair(b, s_key, s_val); break;
	}
}

static struct moat_bytes mb(const void *p, size_t n)
{
	struct moat_bytes r = {(const uint8_t *)p, n};
	return r;
}

/* The props struct that a block holding only c's sample must decode to,
 * written field by field.  raw is filled in by the caller. */
static void expected_props(struct moat_mqtt_props *e, const struct pcase *c,
			   enum moat_mqtt_prop_ctx ctx, const uint8_t *val)
{
	memset(e, 0, sizeof(*e));
	struct moat_bytes str = mb(val, strlen(s_utf8));
	struct moat_bytes bin = mb(val, sizeof(s_bin));
	bool single = c->id != PROP_USER_PROPERTY &&
		      !(c->id == PROP_SUBSCRIPTION_ID && ctx == PCTX_PUBLISH);
	if (single)
		e->has = 1ull << c->id;
	switch (c->id) {
	case PROP_PAYLOAD_FORMAT: e->payload_format = S_BYTE; break;
	case PROP_MESSAGE_EXPIRY: e->message_expiry = S_U32; break;
	case PROP_CONTENT_TYPE: e->content_type = str; break;
	case PROP_RESPONSE_TOPIC: e->response_topic = str; break;
	case PROP_CORRELATION_DATA: e->correlation_data = bin; break;
	case PROP_SUBSCRIPTION_ID:
		e->subscription_id = S_VARINT;
		e->n_subscription_ids = 1;
		break;
	case PROP_SESSION_EXPIRY: e->session_expiry = S_U32; break;
	case PROP_ASSIGNED_CLIENT_ID: e->assigned_client_id = str; break;
	case PROP_SERVER_KEEPALIVE: e->server_keepalive = S_U16; break;
	case PROP_AUTH_METHOD: e->auth_method = str; break;
	case PROP_AUTH_DATA: e->auth_data = bin; break;
	case PROP_REQUEST_PROBLEM_INFO: e->request_problem_info = S_BYTE; break;
	case PROP_WILL_DELAY: e->will_delay = S_U32; break;
	case PROP_REQUEST_RESPONSE_INFO: e->request_response_info = S_BYTE; break;
	case PROP_RESPONSE_INFO: e->response_info = str; break;
	case PROP_SERVER_REFERENCE: e->server_reference = str; break;
	case PROP_REASON_STRING: e->reason_string = str; break;
	case PROP_RECEIVE_MAXIMUM: e->receive_maximum = S_U16; break;
	case PROP_TOPIC_ALIAS_MAXIMUM: e->topic_alias_maximum = S_U16; break;
	case PROP_TOPIC_ALIAS: e->topic_alias = S_U16; break;
	case PROP_MAXIMUM_QOS: e->maximum_qos = S_BYTE; break;
	case PROP_RETAIN_AVAILABLE: e->retain_available = S_BYTE; break;
	case PROP_USER_PROPERTY: e->n_user = 1; break;
	case PROP_MAXIMUM_PACKET_SIZE: e->maximum_packet_size = S_U32; break;
	case PROP_WILDCARD_SUB_AVAILABLE: e->wildcard_available = S_BYTE; break;
	case PROP_SUB_ID_AVAILABLE: e->subid_available = S_BYTE; break;
	case PROP_SHARED_SUB_AVAILABLE: e->shared_available = S_BYTE; break;
	default: fail_msg("no expectation for id 0x%02x", c->id);
	}
}

static void assert_props_equal(const struct moat_mqtt_props *got,
			       const struct moat_mqtt_props *want)
{
#define NUM(f) assert_int_equal(got->f, want->f)
#define BYT(f) assert_bytes(got->f, want->f.p, want->f.len)
	NUM(has);
	NUM(payload_format);
	NUM(message_expiry);
	BYT(content_type);
	BYT(response_topic);
	BYT(correlation_data);
	NUM(subscription_id);
	NUM(n_subscription_ids);
	NUM(session_expiry);
	BYT(assigned_client_id);
	NUM(server_keepalive);
	BYT(auth_method);
	BYT(auth_data);
	NUM(request_problem_info);
	NUM(will_delay);
	NUM(request_response_info);
	BYT(response_info);
	BYT(server_reference);
	BYT(reason_string);
	NUM(receive_maximum);
	NUM(topic_alias_maximum);
	NUM(topic_alias);
	NUM(maximum_qos);
	NUM(retain_available);
	NUM(maximum_packet_size);
	NUM(wildcard_available);
	NUM(subid_available);
	NUM(shared_available);
	NUM(n_user);
	assert_ptr_equal(got->raw.p, want->raw.p);
	NUM(raw.len);
#undef NUM
#undef BYT
}

/* Every property, in every context the spec allows it, decodes to its own
 * field and nothing else; props_next gives it back whole. */
static void test_props_every_id_allowed_context(void **state)
{
	(void)state;
	size_t checked = 0;
	for (size_t i = 0; i < MOAT_ARRAY_LEN(pcases); i++) {
		const struct pcase *c = &pcases[i];
		for (unsigned ctx = 0; ctx < NCTX; ctx++) {
			if (!(c->ctx & X(ctx)))
				continue;
			struct bb p = {.n = 0}, b = {.n = 0};
			put_sample(&p, c);
			bb_block(&b, &p);
			bb_raw(&b, "\xEE", 1); /* next field, not consumed */
			uint8_t *h = heap(b.d, b.n);
			struct moat_rd rd;
			struct moat_mqtt_props got, want;
			moat_rd_init(&rd, h, b.n);
			int rc = moat_mqtt_props_read(
				&rd, (enum moat_mqtt_prop_ctx)ctx, &got);
			if (rc != MOAT_OK)
				fail_msg("id 0x%02x in %s: rc %d", c->id,
					 ctx_names[ctx], rc);
			assert_int_equal(rd.pos, b.n - 1);
			/* string/binary bytes: after the block length, the
			 * identifier and the two-byte length */
			const uint8_t *val = h + 4;
			expected_props(&want, c, (enum moat_mqtt_prop_ctx)ctx,
				       val);
			want.raw = mb(h + 1, p.n);
			assert_props_equal(&got, &want);
			assert_int_equal(
				moat_props_has(&got,
					       (enum moat_mqtt_prop)c->id),
				want.has != 0);

			size_t pos = 0;
			struct moat_mqtt_prop_item it;
			assert_true(moat_mqtt_props_next(&got.raw, &pos, &it));
			assert_int_equal(it.id, c->id);
			assert_ptr_equal(it.wire.p, h + 1);
			assert_int_equal(it.wire.len, p.n);
			assert_int_equal(pos, p.n);
			switch (c->type) {
			case V_BYTE: assert_int_equal(it.num, S_BYTE); break;
			case V_U16: assert_int_equal(it.num, S_U16); break;
			case V_U32: assert_int_equal(it.num, S_U32); break;
			case V_VARINT: assert_int_equal(it.num, S_VARINT); break;
			case V_UTF8: assert_bytes_str(it.a, s_utf8); break;
			case V_BIN:
				assert_bytes(it.a, s_bin, sizeof(s_bin));
				break;
			case V_PAIR:
				assert_bytes_str(it.a, s_key);
				assert_bytes_str(it.b, s_val);
				break;
			}
			assert_false(moat_mqtt_props_next(&got.raw, &pos, &it));
			moat_free(h);
			checked++;
		}
	}
	/* the (identifier, context) pairs that §2.2.2.2 allows */
	assert_int_equal(checked, 58);
}

static void test_props_disallowed_context_malformed(void **state)
{
	(void)state;
	size_t checked = 0;
	for (size_t i = 0; i < MOAT_ARRAY_LEN(pcases); i++) {
		const struct pcase *c = &pcases[i];
		for (unsigned ctx = 0; ctx < NCTX; ctx++) {
			if (c->ctx & X(ctx))
				continue;
			struct bb p = {.n = 0};
			put_sample(&p, c);
			int rc = block_rc((enum moat_mqtt_prop_ctx)ctx, &p);
			if (rc != MOAT_EMALFORMED)
				fail_msg("id 0x%02x in %s: rc %d, want "
					 "malformed",
					 c->id, ctx_names[ctx], rc);
			/* also after a valid User Property */
			struct bb q = {.n = 0};
			pp_pair(&q, "a", "b");
			put_sample(&q, c);
			assert_int_equal(
				block_rc((enum moat_mqtt_prop_ctx)ctx, &q),
				MOAT_EMALFORMED);
			checked++;
		}
	}
	assert_int_equal(checked, 27 * NCTX - 58);
}

static void test_props_unknown_id_malformed(void **state)
{
	(void)state;
	size_t unknown = 0;
	for (unsigned id = 0; id < 256; id++) {
		bool known = false;
		for (size_t i = 0; i < MOAT_ARRAY_LEN(pcases); i++)
			known |= pcases[i].id == id;
		if (known)
			continue;
		if (id >= 0x80)
			continue; /* not a complete varint on its own */
		unknown++;
		for (unsigned ctx = 0; ctx < NCTX; ctx++) {
			struct bb p = {.n = 0};
			bb_u8(&p, (uint8_t)id);
			bb_u8(&p, 0); /* would be a byte value */
			bb_u8(&p, 0);
			if (block_rc((enum moat_mqtt_prop_ctx)ctx, &p) !=
			    MOAT_EMALFORMED)
				fail_msg("unknown id 0x%02x accepted in %s", id,
					 ctx_names[ctx]);
		}
	}
	assert_int_equal(unknown, 128 - 27);
	/* multi-byte identifiers: 0x8B 0x01 is 139, unknown */
	struct bb p = {.n = 0};
	bb_raw(&p, "\x8B\x01\x00", 3);
	assert_int_equal(block_rc(PCTX_PUBLISH, &p), MOAT_EMALFORMED);
	/* an identifier that is a truncated varint */
	p.n = 0;
	bb_u8(&p, 0x80);
	assert_int_equal(block_rc(PCTX_PUBLISH, &p), MOAT_EMALFORMED);
	/* a five-byte identifier */
	p.n = 0;
	bb_raw(&p, "\x81\x80\x80\x80\x00", 5);
	assert_int_equal(block_rc(PCTX_PUBLISH, &p), MOAT_EMALFORMED);
}

/* "It is a Protocol Error to include X more than once" holds for every
 * property but User Property and (outside SUBSCRIBE) Subscription
 * Identifier. */
static void test_props_duplicates_proto_error(void **state)
{
	(void)state;
	size_t checked = 0;
	for (size_t i = 0; i < MOAT_ARRAY_LEN(pcases); i++) {
		const struct pcase *c = &pcases[i];
		for (unsigned ctx = 0; ctx < NCTX; ctx++) {
			if (!(c->ctx & X(ctx)))
				continue;
			bool multi = c->id == PROP_USER_PROPERTY ||
				     (c->id == PROP_SUBSCRIPTION_ID &&
				      ctx == PCTX_PUBLISH);
			struct bb p = {.n = 0};
			put_sample(&p, c);
			pp_pair(&p, "x", "y"); /* something in between */
			put_sample(&p, c);
			int rc = block_rc((enum moat_mqtt_prop_ctx)ctx, &p);
			int want = multi ? MOAT_OK : MOAT_EPROTO;
			if (rc != want)
				fail_msg("id 0x%02x twice in %s: rc %d want %d",
					 c->id, ctx_names[ctx], rc, want);
			checked++;
		}
	}
	assert_int_equal(checked, 58);
}

static void test_props_user_property_repeated_in_order(void **state)
{
	(void)state;
	static const char *const kv[][2] = {
		{"k1", "v1"}, {"k2", ""}, {"k1", "v3"}, {"", "\xE2\x82\xAC"}};
	struct bb p = {.n = 0}, b = {.n = 0};
	pp_pair(&p, kv[0][0], kv[0][1]);
	pp_u32(&p, PROP_SESSION_EXPIRY, 3600);
	pp_pair(&p, kv[1][0], kv[1][1]);
	pp_pair(&p, kv[2][0], kv[2][1]);
	pp_u16(&p, PROP_RECEIVE_MAXIMUM, 5);
	pp_pair(&p, kv[3][0], kv[3][1]);
	bb_block(&b, &p);
	uint8_t *h = heap(b.d, b.n);
	struct moat_rd rd;
	struct moat_mqtt_props got;
	moat_rd_init(&rd, h, b.n);
	assert_int_equal(moat_mqtt_props_read(&rd, PCTX_CONNECT, &got), MOAT_OK);
	assert_int_equal(got.n_user, 4);
	assert_int_equal(got.session_expiry, 3600);
	assert_int_equal(got.receive_maximum, 5);
	assert_false(moat_props_has(&got, PROP_USER_PROPERTY));
	assert_true(moat_props_has(&got, PROP_SESSION_EXPIRY));
	assert_true(moat_props_has(&got, PROP_RECEIVE_MAXIMUM));
	assert_false(moat_props_has(&got, PROP_MAXIMUM_PACKET_SIZE));

	static const uint8_t order[] = {
		PROP_USER_PROPERTY, PROP_SESSION_EXPIRY, PROP_USER_PROPERTY,
		PROP_USER_PROPERTY, PROP_RECEIVE_MAXIMUM, PROP_USER_PROPERTY};
	size_t pos = 0, k = 0, user = 0, wire_total = 0;
	struct moat_mqtt_prop_item it;
	while (moat_mqtt_props_next(&got.raw, &pos, &it)) {
		assert_true(k < sizeof(order));
		assert_int_equal(it.id, order[k]);
		assert_ptr_equal(it.wire.p, got.raw.p + wire_total);
		wire_total += it.wire.len;
		assert_int_equal(pos, wire_total);
		if (it.id == PROP_USER_PROPERTY) {
			assert_bytes_str(it.a, kv[user][0]);
			assert_bytes_str(it.b, kv[user][1]);
			assert_int_equal(it.wire.len, 1 + 2 +
							      strlen(kv[user][0]) +
							      2 +
							      strlen(kv[user][1]));
			user++;
		} else if (it.id == PROP_SESSION_EXPIRY) {
			assert_int_equal(it.num, 3600);
			assert_int_equal(it.wire.len, 5);
		} else {
			assert_int_equal(it.num, 5);
			assert_int_equal(it.wire.len, 3);
		}
		k++;
	}
	assert_int_equal(k, sizeof(order));
	assert_int_equal(user, 4);
	assert_int_equal(wire_total, got.raw.len);
	assert_int_equal(pos, got.raw.len);
	/* past the end: stays false */
	assert_false(moat_mqtt_props_next(&got.raw, &pos, &it));
	moat_free(h);
}

static void test_props_subscription_id(void **state)
{
	(void)state;
	struct bb p = {.n = 0}, b = {.n = 0};
	/* once in SUBSCRIBE: fine */
	pp_varint(&p, PROP_SUBSCRIPTION_ID, 268435455);
	assert_int_equal(block_rc(PCTX_SUBSCRIBE, &p), MOAT_OK);
	/* twice in SUBSCRIBE: Protocol Error [MQTT-3.8.2.1.2] */
	pp_varint(&p, PROP_SUBSCRIPTION_ID, 7);
	assert_int_equal(block_rc(PCTX_SUBSCRIBE, &p), MOAT_EPROTO);
	/* several in PUBLISH (server to client): counted, last kept */
	p.n = 0;
	pp_varint(&p, PROP_SUBSCRIPTION_ID, 1);
	pp_varint(&p, PROP_SUBSCRIPTION_ID, 16384);
	pp_u16(&p, PROP_TOPIC_ALIAS, 2);
	pp_varint(&p, PROP_SUBSCRIPTION_ID, 268435455);
	bb_block(&b, &p);
	uint8_t *h = heap(b.d, b.n);
	struct moat_rd rd;
	struct moat_mqtt_props got;
	moat_rd_init(&rd, h, b.n);
	assert_int_equal(moat_mqtt_props_read(&rd, PCTX_PUBLISH, &got), MOAT_OK);
	assert_int_equal(got.n_subscription_ids, 3);
	assert_int_equal(got.subscription_id, 268435455);
	assert_int_equal(got.topic_alias, 2);
	static const uint32_t ids[] = {1, 16384, 0, 268435455};
	static const size_t wl[] = {2, 4, 3, 5};
	size_t pos = 0, k = 0;
	struct moat_mqtt_prop_item it;
	while (moat_mqtt_props_next(&got.raw, &pos, &it)) {
		assert_int_equal(it.wire.len, wl[k]);
		if (k == 2) {
			assert_int_equal(it.id, PROP_TOPIC_ALIAS);
		} else {
			assert_int_equal(it.id, PROP_SUBSCRIPTION_ID);
			assert_int_equal(it.num, ids[k]);
		}
		k++;
	}
	assert_int_equal(k, 4);
	moat_free(h);

	/* 0 is a Protocol Error, in either context */
	p.n = 0;
	pp_varint(&p, PROP_SUBSCRIPTION_ID, 0);
	assert_int_equal(block_rc(PCTX_SUBSCRIBE, &p), MOAT_EPROTO);
	assert_int_equal(block_rc(PCTX_PUBLISH, &p), MOAT_EPROTO);
	/* above 268435455 needs a fifth byte: Malformed */
	p.n = 0;
	bb_u8(&p, PROP_SUBSCRIPTION_ID);
	bb_raw(&p, "\x80\x80\x80\x80\x01", 5);
	assert_int_equal(block_rc(PCTX_SUBSCRIBE, &p), MOAT_EMALFORMED);
	assert_int_equal(block_rc(PCTX_PUBLISH, &p), MOAT_EMALFORMED);
	/* truncated varint value */
	p.n = 0;
	bb_u8(&p, PROP_SUBSCRIPTION_ID);
	bb_raw(&p, "\xFF\xFF", 2);
	assert_int_equal(block_rc(PCTX_SUBSCRIBE, &p), MOAT_EMALFORMED);
}

struct value_case {
	enum moat_mqtt_prop_ctx ctx;
	uint8_t id;
	enum vtype type;
	uint32_t v;
	int want;
};

static void test_props_protocol_error_values(void **state)
{
	(void)state;
	static const struct value_case vc[] = {
		{PCTX_PUBLISH, PROP_PAYLOAD_FORMAT, V_BYTE, 0, MOAT_OK},
		{PCTX_PUBLISH, PROP_PAYLOAD_FORMAT, V_BYTE, 1, MOAT_OK},
		{PCTX_PUBLISH, PROP_PAYLOAD_FORMAT, V_BYTE, 2, MOAT_EPROTO},
		{PCTX_WILL, PROP_PAYLOAD_FORMAT, V_BYTE, 255, MOAT_EPROTO},
		{PCTX_CONNECT, PROP_RECEIVE_MAXIMUM, V_U16, 0, MOAT_EPROTO},
		{PCTX_CONNECT, PROP_RECEIVE_MAXIMUM, V_U16, 1, MOAT_OK},
		{PCTX_CONNACK, PROP_RECEIVE_MAXIMUM, V_U16, 0, MOAT_EPROTO},
		{PCTX_CONNECT, PROP_MAXIMUM_PACKET_SIZE, V_U32, 0, MOAT_EPROTO},
		{PCTX_CONNECT, PROP_MAXIMUM_PACKET_SIZE, V_U32, 1, MOAT_OK},
		{PCTX_CONNACK, PROP_MAXIMUM_PACKET_SIZE, V_U32, 0, MOAT_EPROTO},
		{PCTX_PUBLISH, PROP_TOPIC_ALIAS, V_U16, 0, MOAT_EPROTO},
		{PCTX_PUBLISH, PROP_TOPIC_ALIAS, V_U16, 65535, MOAT_OK},
		{PCTX_SUBSCRIBE, PROP_SUBSCRIPTION_ID, V_VARINT, 0, MOAT_EPROTO},
		{PCTX_SUBSCRIBE, PROP_SUBSCRIPTION_ID, V_VARINT, 1, MOAT_OK},
		{PCTX_CONNECT, PROP_REQUEST_PROBLEM_INFO, V_BYTE, 0, MOAT_OK},
		{PCTX_CONNECT, PROP_REQUEST_PROBLEM_INFO, V_BYTE, 1, MOAT_OK},
		{PCTX_CONNECT, PROP_REQUEST_PROBLEM_INFO, V_BYTE, 2, MOAT_EPROTO},
		{PCTX_CONNECT, PROP_REQUEST_RESPONSE_INFO, V_BYTE, 2, MOAT_EPROTO},
		{PCTX_CONNECT, PROP_REQUEST_RESPONSE_INFO, V_BYTE, 1, MOAT_OK},
		{PCTX_CONNACK, PROP_MAXIMUM_QOS, V_BYTE, 2, MOAT_EPROTO},
		{PCTX_CONNACK, PROP_MAXIMUM_QOS, V_BYTE, 0, MOAT_OK},
		{PCTX_CONNACK, PROP_RETAIN_AVAILABLE, V_BYTE, 2, MOAT_EPROTO},
		{PCTX_CONNACK, PROP_WILDCARD_SUB_AVAILABLE, V_BYTE, 2, MOAT_EPROTO},
		{PCTX_CONNACK, PROP_SUB_ID_AVAILABLE, V_BYTE, 2, MOAT_EPROTO},
		{PCTX_CONNACK, PROP_SHARED_SUB_AVAILABLE, V_BYTE, 2, MOAT_EPROTO},
		/* values with no restriction */
		{PCTX_CONNECT, PROP_SESSION_EXPIRY, V_U32, 0, MOAT_OK},
		{PCTX_CONNECT, PROP_SESSION_EXPIRY, V_U32, 0xFFFFFFFF, MOAT_OK},
		{PCTX_CONNECT, PROP_TOPIC_ALIAS_MAXIMUM, V_U16, 0, MOAT_OK},
		{PCTX_PUBLISH, PROP_MESSAGE_EXPIRY, V_U32, 0, MOAT_OK},
		{PCTX_WILL, PROP_WILL_DELAY, V_U32, 0, MOAT_OK},
		{PCTX_CONNACK, PROP_SERVER_KEEPALIVE, V_U16, 0, MOAT_OK},
	};
	for (size_t i = 0; i < MOAT_ARRAY_LEN(vc); i++) {
		struct bb p = {.n = 0};
		switch (vc[i].type) {
		case V_BYTE: pp_u8(&p, vc[i].id, (uint8_t)vc[i].v); break;
		case V_U16: pp_u16(&p, vc[i].id, (uint16_t)vc[i].v); break;
		case V_U32: pp_u32(&p, vc[i].id, vc[i].v); break;
		case V_VARINT: pp_varint(&p, vc[i].id, vc[i].v); break;
		default: fail();
		}
		int rc = block_rc(vc[i].ctx, &p);
		if (rc != vc[i].want)
			fail_msg("case %zu (id 0x%02x = %u): rc %d want %d", i,
				 vc[i].id, vc[i].v, rc, vc[i].want);
	}
}

/* Malformed wins over a Protocol Error seen earlier in the block (the
 * whole block is checked before the error is reported). */
static void test_props_malformed_precedence(void **state)
{
	(void)state;
	struct bb p = {.n = 0};
	pp_u8(&p, PROP_PAYLOAD_FORMAT, 7);       /* protocol error */
	pp_u16(&p, PROP_SESSION_EXPIRY, 0);      /* not in PUBLISH */
	assert_int_equal(block_rc(PCTX_PUBLISH, &p), MOAT_EMALFORMED);
	p.n = 0;
	pp_u16(&p, PROP_TOPIC_ALIAS, 1);
	pp_u16(&p, PROP_TOPIC_ALIAS, 2); /* duplicate */
	bb_raw(&p, "\x03\x00\x05" "ab", 5); /* content type, truncated */
	assert_int_equal(block_rc(PCTX_PUBLISH, &p), MOAT_EMALFORMED);
	p.n = 0;
	pp_u16(&p, PROP_TOPIC_ALIAS, 0);
	bb_u8(&p, 0x7F); /* unknown */
	assert_int_equal(block_rc(PCTX_PUBLISH, &p), MOAT_EMALFORMED);
}

static void test_props_invalid_utf8(void **state)
{
	(void)state;
	static const struct {
		enum moat_mqtt_prop_ctx ctx;
		uint8_t id;
	} s[] = {
		{PCTX_PUBLISH, PROP_CONTENT_TYPE},
		{PCTX_WILL, PROP_RESPONSE_TOPIC},
		{PCTX_CONNACK, PROP_ASSIGNED_CLIENT_ID},
		{PCTX_CONNECT, PROP_AUTH_METHOD},
		{PCTX_CONNACK, PROP_RESPONSE_INFO},
		{PCTX_DISCONNECT, PROP_SERVER_REFERENCE},
		{PCTX_ACK, PROP_REASON_STRING},
	};
	static const char *const bad[] = {
		"\xC0\x80",         /* overlong NUL */
		"a\xED\xA0\x80",    /* surrogate */
		"\xF4\x90\x80\x80", /* above U+10FFFF */
		"\xE2\x82",         /* truncated sequence */
	};
	for (size_t i = 0; i < MOAT_ARRAY_LEN(s); i++) {
		for (size_t j = 0; j < MOAT_ARRAY_LEN(bad); j++) {
			struct bb p = {.n = 0};
			pp_str(&p, s[i].id, bad[j]);
			assert_int_equal(block_rc(s[i].ctx, &p), MOAT_EUTF8);
		}
		/* embedded U+0000 [MQTT-1.5.4-2] */
		struct bb p = {.n = 0};
		pp_bin(&p, s[i].id, "a\0b", 3);
		assert_int_equal(block_rc(s[i].ctx, &p), MOAT_EUTF8);
	}
	/* User Property: key or value */
	struct bb p = {.n = 0};
	pp_pair(&p, "\xFF", "v");
	assert_int_equal(block_rc(PCTX_CONNECT, &p), MOAT_EUTF8);
	p.n = 0;
	pp_pair(&p, "k", "\xC3");
	assert_int_equal(block_rc(PCTX_AUTH, &p), MOAT_EUTF8);
	/* binary properties take any bytes */
	p.n = 0;
	pp_bin(&p, PROP_CORRELATION_DATA, "\xFF\x00\xC0\x80", 4);
	assert_int_equal(block_rc(PCTX_PUBLISH, &p), MOAT_OK);
	p.n = 0;
	pp_bin(&p, PROP_AUTH_DATA, "\xFF\x00", 2);
	assert_int_equal(block_rc(PCTX_AUTH, &p), MOAT_OK);
}

static void test_props_length_errors(void **state)
{
	(void)state;
	/* empty input: no length at all */
	assert_int_equal(props_rc(PCTX_CONNECT, "", 0), MOAT_EMALFORMED);
	/* zero-length block */
	uint8_t *h = heap("\x00\x99", 2);
	struct moat_rd rd;
	struct moat_mqtt_props got;
	moat_rd_init(&rd, h, 2);
	assert_int_equal(moat_mqtt_props_read(&rd, PCTX_ACK, &got), MOAT_OK);
	assert_int_equal(rd.pos, 1);
	assert_int_equal(got.raw.len, 0);
	assert_int_equal(got.has, 0);
	assert_int_equal(got.n_user, 0);
	size_t pos = 0;
	struct moat_mqtt_prop_item it;
	assert_false(moat_mqtt_props_next(&got.raw, &pos, &it));
	moat_free(h);
	/* length past the end */
	assert_int_equal(props_rc(PCTX_PUBLISH, "\x05\x01\x01", 3),
			 MOAT_EMALFORMED);
	assert_int_equal(props_rc(PCTX_PUBLISH, "\x01", 1), MOAT_EMALFORMED);
	/* huge length */
	assert_int_equal(props_rc(PCTX_PUBLISH, "\xFF\xFF\xFF\x7F\x01\x01", 6),
			 MOAT_EMALFORMED);
	/* five-byte length */
	assert_int_equal(props_rc(PCTX_PUBLISH, "\x80\x80\x80\x80\x00", 5),
			 MOAT_EMALFORMED);
	/* truncated length varint */
	assert_int_equal(props_rc(PCTX_PUBLISH, "\x80", 1), MOAT_EMALFORMED);
	/* length shorter than the property it holds: value cut */
	assert_int_equal(props_rc(PCTX_PUBLISH, "\x02\x02\x00\x00\x00\x01", 6),
			 MOAT_EMALFORMED);
	/* length that leaves a bare identifier */
	assert_int_equal(props_rc(PCTX_PUBLISH, "\x01\x01", 2), MOAT_EMALFORMED);
	/* the output is reset even when it held garbage, and on error */
	h = heap("\x00", 1);
	memset(&got, 0xA5, sizeof(got));
	moat_rd_init(&rd, h, 1);
	assert_int_equal(moat_mqtt_props_read(&rd, PCTX_PUBLISH, &got), MOAT_OK);
	assert_int_equal(got.has, 0);
	assert_int_equal(got.n_user, 0);
	assert_int_equal(got.n_subscription_ids, 0);
	assert_int_equal(got.content_type.len, 0);
	moat_free(h);
	h = heap("\x03\x23\x00\x00", 4);
	memset(&got, 0xA5, sizeof(got));
	moat_rd_init(&rd, h, 4);
	assert_int_equal(moat_mqtt_props_read(&rd, PCTX_PUBLISH, &got),
			 MOAT_EPROTO);
	assert_int_equal(got.n_user, 0);
	moat_free(h);
}

/* A block with many properties: the block length cut at every offset is
 * OK exactly at property boundaries and Malformed elsewhere; the buffer cut
 * at every offset (length intact) is Malformed. */
static void test_props_truncation_every_offset(void **state)
{
	(void)state;
	struct bb p = {.n = 0};
	size_t bounds[32], nb = 0;
	bounds[nb++] = 0;
	pp_u32(&p, PROP_SESSION_EXPIRY, 60);
	bounds[nb++] = p.n;
	pp_u16(&p, PROP_RECEIVE_MAXIMUM, 10);
	bounds[nb++] = p.n;
	pp_u32(&p, PROP_MAXIMUM_PACKET_SIZE, 70000);
	bounds[nb++] = p.n;
	pp_u16(&p, PROP_TOPIC_ALIAS_MAXIMUM, 4);
	bounds[nb++] = p.n;
	pp_u8(&p, PROP_REQUEST_RESPONSE_INFO, 1);
	bounds[nb++] = p.n;
	pp_u8(&p, PROP_REQUEST_PROBLEM_INFO, 0);
	bounds[nb++] = p.n;
	pp_pair(&p, "key", "value");
	bounds[nb++] = p.n;
	pp_str(&p, PROP_AUTH_METHOD, "SCRAM-SHA-1");
	bounds[nb++] = p.n;
	pp_bin(&p, PROP_AUTH_DATA, "\x00\x01\x02", 3);
	bounds[nb++] = p.n;
	pp_pair(&p, "", "");
	bounds[nb++] = p.n;
	assert_int_equal(block_rc(PCTX_CONNECT, &p), MOAT_OK);

	size_t ok = 0;
	for (size_t k = 0; k <= p.n; k++) {
		struct bb cut = {.n = 0};
		bb_raw(&cut, p.d, k);
		bool boundary = false;
		for (size_t i = 0; i < nb; i++)
			boundary |= bounds[i] == k;
		int rc = block_rc(PCTX_CONNECT, &cut);
		if (rc != (boundary ? MOAT_OK : MOAT_EMALFORMED))
			fail_msg("cut at %zu: rc %d", k, rc);
		ok += rc == MOAT_OK;
	}
	assert_int_equal(ok, nb);

	struct bb full = {.n = 0};
	bb_block(&full, &p);
	for (size_t len = 0; len < full.n; len++)
		assert_int_equal(props_rc(PCTX_CONNECT, full.d, len),
				 MOAT_EMALFORMED);
}

/* ---- CONNECT ----------------------------------------------------------- */

/* A full MQTT 5 CONNECT body: all flags, properties and will properties.
 * The user name is omitted when user is NULL. */
static void build_connect5(struct bb *b, uint8_t flags, const char *user)
{
	struct bb p = {.n = 0}, w = {.n = 0};
	b->n = 0;
	bb_str(b, "MQTT");
	bb_u8(b, 5);
	bb_u8(b, flags);
	bb_u16(b, 30);
	pp_u32(&p, PROP_SESSION_EXPIRY, 3600);
	pp_u16(&p, PROP_RECEIVE_MAXIMUM, 20);
	pp_u32(&p, PROP_MAXIMUM_PACKET_SIZE, 1024);
	pp_u16(&p, PROP_TOPIC_ALIAS_MAXIMUM, 10);
	pp_u8(&p, PROP_REQUEST_RESPONSE_INFO, 1);
	pp_u8(&p, PROP_REQUEST_PROBLEM_INFO, 0);
	pp_pair(&p, "a", "b");
	pp_str(&p, PROP_AUTH_METHOD, "SCRAM");
	pp_bin(&p, PROP_AUTH_DATA, "\x01\x02", 2);
	bb_block(b, &p);
	bb_str(b, "cid");
	if (flags & 0x04) {
		pp_u32(&w, PROP_WILL_DELAY, 5);
		pp_u8(&w, PROP_PAYLOAD_FORMAT, 1);
		pp_u32(&w, PROP_MESSAGE_EXPIRY, 60);
		pp_str(&w, PROP_CONTENT_TYPE, "text/plain");
		pp_str(&w, PROP_RESPONSE_TOPIC, "r/t");
		pp_bin(&w, PROP_CORRELATION_DATA, "\x00\x01", 2);
		pp_pair(&w, "wk", "wv");
		bb_block(b, &w);
		bb_str(b, "w/t");
		bb_bin(b, "bye", 3);
	}
	if (user)
		bb_str(b, user);
	if (flags & 0x40)
		bb_bin(b, "p\0w", 3);
}

static void test_connect_v5_full(void **state)
{
	(void)state;
	struct bb b;
	/* user, password, will retain, will QoS 1, will, clean start */
	build_connect5(&b, 0xEE, "u");
	uint8_t *h = heap(b.d, b.n);
	struct moat_mqtt_connect5 c;
	uint8_t crc = 0x77;
	assert_int_equal(moat_mqtt_decode_connect_v(h, b.n, true, &c, &crc),
			 MOAT_OK);
	assert_int_equal(crc, MQTT_CONNACK_ACCEPTED);
	assert_bytes_str(c.c.proto_name, "MQTT");
	assert_int_equal(c.c.proto_level, 5);
	assert_true(c.c.clean_session);
	assert_true(c.c.will_flag);
	assert_int_equal(c.c.will_qos, 1);
	assert_true(c.c.will_retain);
	assert_true(c.c.has_username);
	assert_true(c.c.has_password);
	assert_int_equal(c.c.keepalive, 30);
	assert_bytes_str(c.c.client_id, "cid");
	assert_bytes_str(c.c.will_topic, "w/t");
	assert_bytes(c.c.will_payload, "bye", 3);
	assert_bytes_str(c.c.username, "u");
	assert_bytes(c.c.password, "p\0w", 3);

	const struct moat_mqtt_props *p = &c.props;
	assert_int_equal(p->session_expiry, 3600);
	assert_int_equal(p->receive_maximum, 20);
	assert_int_equal(p->maximum_packet_size, 1024);
	assert_int_equal(p->topic_alias_maximum, 10);
	assert_int_equal(p->request_response_info, 1);
	assert_int_equal(p->request_problem_info, 0);
	assert_true(moat_props_has(p, PROP_REQUEST_PROBLEM_INFO));
	assert_int_equal(p->n_user, 1);
	assert_bytes_str(p->auth_method, "SCRAM");
	assert_bytes(p->auth_data, "\x01\x02", 2);
	assert_false(moat_props_has(p, PROP_WILL_DELAY));
	assert_int_equal(p->has,
			 (1ull << PROP_SESSION_EXPIRY) |
				 (1ull << PROP_RECEIVE_MAXIMUM) |
				 (1ull << PROP_MAXIMUM_PACKET_SIZE) |
				 (1ull << PROP_TOPIC_ALIAS_MAXIMUM) |
				 (1ull << PROP_REQUEST_RESPONSE_INFO) |
				 (1ull << PROP_REQUEST_PROBLEM_INFO) |
				 (1ull << PROP_AUTH_METHOD) |
				 (1ull << PROP_AUTH_DATA));
	/* raw starts right after the property length (10 + 1 bytes in) */
	assert_ptr_equal(p->raw.p, h + 11);

	const struct moat_mqtt_props *w = &c.will_props;
	assert_int_equal(w->will_delay, 5);
	assert_int_equal(w->payload_format, 1);
	assert_int_equal(w->message_expiry, 60);
	assert_bytes_str(w->content_type, "text/plain");
	assert_bytes_str(w->response_topic, "r/t");
	assert_bytes(w->correlation_data, "\x00\x01", 2);
	assert_int_equal(w->n_user, 1);
	size_t pos = 0;
	struct moat_mqtt_prop_item it;
	uint8_t last = 0;
	while (moat_mqtt_props_next(&w->raw, &pos, &it))
		last = it.id;
	assert_int_equal(last, PROP_USER_PROPERTY);
	assert_int_equal(pos, w->raw.len);
	moat_free(h);

	/* no will: no will properties are read */
	build_connect5(&b, 0x02, NULL);
	h = heap(b.d, b.n);
	assert_int_equal(moat_mqtt_decode_connect_v(h, b.n, true, &c, &crc),
			 MOAT_OK);
	assert_false(c.c.will_flag);
	assert_int_equal(c.will_props.raw.len, 0);
	assert_int_equal(c.will_props.has, 0);
	assert_int_equal(c.props.session_expiry, 3600);
	moat_free(h);
}

static void test_connect_v5_not_allowed(void **state)
{
	(void)state;
	struct bb b;
	build_connect5(&b, 0x02, NULL);
	uint8_t *h = heap(b.d, b.n);
	struct moat_mqtt_connect5 c;
	uint8_t crc = 0x77;
	assert_int_equal(moat_mqtt_decode_connect_v(h, b.n, false, &c, &crc),
			 MOAT_EPROTO);
	assert_int_equal(crc, MQTT_CONNACK_BAD_PROTOCOL);
	/* the 3.1.1 entry point never accepts 5 */
	struct moat_mqtt_connect c3;
	crc = 0x77;
	assert_int_equal(moat_mqtt_decode_connect(h, b.n, &c3, &crc),
			 MOAT_EPROTO);
	assert_int_equal(crc, MQTT_CONNACK_BAD_PROTOCOL);
	moat_free(h);
	/* level 5 under the 3.1 name, or level 6: refused even when allowed */
	struct bb x = {.n = 0};
	bb_str(&x, "MQIsdp");
	bb_u8(&x, 5);
	bb_u8(&x, 0x02);
	bb_u16(&x, 0);
	bb_u8(&x, 0);
	bb_str(&x, "c");
	h = heap(x.d, x.n);
	assert_int_equal(moat_mqtt_decode_connect_v(h, x.n, true, &c, &crc),
			 MOAT_EPROTO);
	assert_int_equal(crc, MQTT_CONNACK_BAD_PROTOCOL);
	moat_free(h);
	x.n = 0;
	bb_str(&x, "MQTT");
	bb_u8(&x, 6);
	bb_u8(&x, 0x02);
	bb_u16(&x, 0);
	bb_u8(&x, 0);
	bb_str(&x, "c");
	h = heap(x.d, x.n);
	assert_int_equal(moat_mqtt_decode_connect_v(h, x.n, true, &c, &crc),
			 MOAT_EPROTO);
	assert_int_equal(crc, MQTT_CONNACK_BAD_PROTOCOL);
	moat_free(h);
}

static void test_connect_v5_password_without_username(void **state)
{
	(void)state;
	struct bb b;
	build_connect5(&b, 0x42, NULL);
	uint8_t *h = heap(b.d, b.n);
	struct moat_mqtt_connect5 c;
	uint8_t crc;
	assert_int_equal(moat_mqtt_decode_connect_v(h, b.n, true, &c, &crc),
			 MOAT_OK);
	assert_false(c.c.has_username);
	assert_true(c.c.has_password);
	assert_int_equal(c.c.username.len, 0);
	assert_bytes(c.c.password, "p\0w", 3);
	moat_free(h);

	/* 3.1.1 still rejects it [MQTT-3.1.2-22] */
	struct bb x = {.n = 0};
	bb_str(&x, "MQTT");
	bb_u8(&x, 4);
	bb_u8(&x, 0x42);
	bb_u16(&x, 0);
	bb_str(&x, "c");
	bb_bin(&x, "pw", 2);
	h = heap(x.d, x.n);
	assert_int_equal(moat_mqtt_decode_connect_v(h, x.n, true, &c, &crc),
			 MOAT_EMALFORMED);
	struct moat_mqtt_connect c3;
	assert_int_equal(moat_mqtt_decode_connect(h, x.n, &c3, &crc),
			 MOAT_EMALFORMED);
	moat_free(h);
	/* and 3.1 too */
	x.n = 0;
	bb_str(&x, "MQIsdp");
	bb_u8(&x, 3);
	bb_u8(&x, 0x42);
	bb_u16(&x, 0);
	bb_str(&x, "c");
	bb_bin(&x, "pw", 2);
	h = heap(x.d, x.n);
	assert_int_equal(moat_mqtt_decode_connect_v(h, x.n, true, &c, &crc),
			 MOAT_EMALFORMED);
	moat_free(h);
}

/* A 3.1.1 CONNECT through the version-aware decoder reads no properties. */
static void test_connect_v_311_unchanged(void **state)
{
	(void)state;
	struct bb x = {.n = 0};
	bb_str(&x, "MQTT");
	bb_u8(&x, 4);
	bb_u8(&x, 0xC6);
	bb_u16(&x, 10);
	bb_str(&x, "c");
	bb_str(&x, "w");
	bb_bin(&x, "m", 1);
	bb_str(&x, "u");
	bb_bin(&x, "p", 1);
	uint8_t *h = heap(x.d, x.n);
	struct moat_mqtt_connect5 c;
	uint8_t crc;
	assert_int_equal(moat_mqtt_decode_connect_v(h, x.n, true, &c, &crc),
			 MOAT_OK);
	assert_int_equal(c.c.proto_level, 4);
	assert_bytes_str(c.c.will_topic, "w");
	assert_bytes_str(c.c.username, "u");
	assert_int_equal(c.props.raw.len, 0);
	assert_int_equal(c.will_props.raw.len, 0);
	assert_null(c.props.raw.p);
	moat_free(h);
}

/* CONNECT 5 with the given property blocks (will: NULL for none). */
static void build_c5(struct bb *b, const struct bb *props,
		     const struct bb *will)
{
	b->n = 0;
	bb_str(b, "MQTT");
	bb_u8(b, 5);
	bb_u8(b, will ? 0x06 : 0x02);
	bb_u16(b, 0);
	bb_block(b, props);
	bb_str(b, "c");
	if (will) {
		bb_block(b, will);
		bb_str(b, "w");
		bb_bin(b, "", 0);
	}
}

static void test_connect_v5_property_errors(void **state)
{
	(void)state;
	struct bb b = {.n = 0}, p = {.n = 0};
	struct moat_mqtt_connect5 c;
	uint8_t crc;
#define EXPECT(want)                                                          \
	do {                                                                  \
		uint8_t *h_ = heap(b.d, b.n);                                 \
		assert_int_equal(                                             \
			moat_mqtt_decode_connect_v(h_, b.n, true, &c, &crc),  \
			(want));                                              \
		moat_free(h_);                                                \
	} while (0)

	struct bb empty = {.n = 0}, w = {.n = 0};
	build_c5(&b, &empty, NULL);
	EXPECT(MOAT_OK);
	build_c5(&b, &empty, &empty);
	EXPECT(MOAT_OK);
	/* Topic Alias is not a CONNECT property */
	p.n = 0;
	pp_u16(&p, PROP_TOPIC_ALIAS, 1);
	build_c5(&b, &p, NULL);
	EXPECT(MOAT_EMALFORMED);
	/* Will Delay belongs in the will properties, not CONNECT's */
	p.n = 0;
	pp_u32(&p, PROP_WILL_DELAY, 1);
	build_c5(&b, &p, NULL);
	EXPECT(MOAT_EMALFORMED);
	build_c5(&b, &empty, &p);
	EXPECT(MOAT_OK);
	/* Session Expiry is not a will property */
	w.n = 0;
	pp_u32(&w, PROP_SESSION_EXPIRY, 1);
	build_c5(&b, &empty, &w);
	EXPECT(MOAT_EMALFORMED);
	/* duplicates and bad values: a Protocol Error in a CONNECT that is
	 * MQTT 5, so connack_rc stays 0 (the broker answers CONNACK 0x82),
	 * unlike the 1 / 0xFF of a refused protocol */
	p.n = 0;
	pp_u32(&p, PROP_SESSION_EXPIRY, 1);
	pp_u32(&p, PROP_SESSION_EXPIRY, 2);
	build_c5(&b, &p, NULL);
	crc = 0x77;
	EXPECT(MOAT_EPROTO);
	assert_int_equal(crc, MQTT_CONNACK_ACCEPTED);
	assert_int_equal(c.c.proto_level, 5);
	p.n = 0;
	pp_u16(&p, PROP_RECEIVE_MAXIMUM, 0);
	build_c5(&b, &p, NULL);
	crc = 0x77;
	EXPECT(MOAT_EPROTO);
	assert_int_equal(crc, MQTT_CONNACK_ACCEPTED);
	w.n = 0;
	pp_u8(&w, PROP_PAYLOAD_FORMAT, 2);
	build_c5(&b, &empty, &w);
	crc = 0x77;
	EXPECT(MOAT_EPROTO);
	assert_int_equal(crc, MQTT_CONNACK_ACCEPTED);
	w.n = 0;
	pp_str(&w, PROP_CONTENT_TYPE, "\xC3\x28");
	build_c5(&b, &empty, &w);
	EXPECT(MOAT_EUTF8);
	/* property length beyond the body */
	b.n = 0;
	bb_str(&b, "MQTT");
	bb_u8(&b, 5);
	bb_u8(&b, 0x02);
	bb_u16(&b, 0);
	bb_u8(&b, 50);
	bb_str(&b, "c");
	EXPECT(MOAT_EMALFORMED);
	/* missing property length entirely */
	b.n = 0;
	bb_str(&b, "MQTT");
	bb_u8(&b, 5);
	bb_u8(&b, 0x02);
	bb_u16(&b, 0);
	EXPECT(MOAT_EMALFORMED);
	/* trailing bytes after the payload */
	build_c5(&b, &empty, NULL);
	bb_u8(&b, 0);
	EXPECT(MOAT_EMALFORMED);
	/* an invalid will topic: close without CONNACK */
	b.n = 0;
	bb_str(&b, "MQTT");
	bb_u8(&b, 5);
	bb_u8(&b, 0x06);
	bb_u16(&b, 0);
	bb_u8(&b, 0);
	bb_str(&b, "c");
	bb_u8(&b, 0);
	bb_str(&b, "w/#");
	bb_bin(&b, "", 0);
	crc = 0x77;
	EXPECT(MOAT_EPROTO);
	assert_int_equal(crc, 0xFF);
#undef EXPECT
}

static void test_connect_v5_truncated_every_offset(void **state)
{
	(void)state;
	struct bb b;
	build_connect5(&b, 0xEE, "u");
	for (size_t len = 0; len < b.n; len++) {
		uint8_t *h = heap(b.d, len);
		struct moat_mqtt_connect5 c;
		uint8_t crc = 0x77;
		int rc = moat_mqtt_decode_connect_v(h, len, true, &c, &crc);
		/* the protocol name cut short is "not MQTT" (EPROTO, 0xFF) */
		if (rc == MOAT_EPROTO)
			assert_int_equal(crc, 0xFF);
		else if (rc != MOAT_EMALFORMED)
			fail_msg("len %zu: rc %d", len, rc);
		moat_free(h);
	}
}

/* ---- PUBLISH ----------------------------------------------------------- */

static void test_publish_v5_properties(void **state)
{
	(void)state;
	struct bb b = {.n = 0}, p = {.n = 0};
	bb_str(&b, "a/b");
	bb_u16(&b, 7);
	pp_u8(&p, PROP_PAYLOAD_FORMAT, 1);
	pp_u32(&p, PROP_MESSAGE_EXPIRY, 10);
	pp_str(&p, PROP_CONTENT_TYPE, "text/plain");
	pp_str(&p, PROP_RESPONSE_TOPIC, "resp/x");
	pp_bin(&p, PROP_CORRELATION_DATA, "\x00\x01\x02", 3);
	pp_u16(&p, PROP_TOPIC_ALIAS, 3);
	pp_pair(&p, "k1", "v1");
	pp_pair(&p, "k2", "v2");
	bb_block(&b, &p);
	size_t props_at = 2 + 3 + 2 + 1;
	bb_raw(&b, "hello", 5);
	uint8_t *h = heap(b.d, b.n);
	struct moat_mqtt_publish5 m;
	assert_int_equal(moat_mqtt_decode_publish_v(0x0B, h, b.n, 5, &m),
			 MOAT_OK);
	assert_true(m.p.dup);
	assert_int_equal(m.p.qos, 1);
	assert_true(m.p.retain);
	assert_bytes_str(m.p.topic, "a/b");
	assert_int_equal(m.p.packet_id, 7);
	assert_bytes(m.p.payload, "hello", 5);
	assert_ptr_equal(m.p.payload.p, h + b.n - 5);
	assert_int_equal(m.props.payload_format, 1);
	assert_int_equal(m.props.message_expiry, 10);
	assert_bytes_str(m.props.content_type, "text/plain");
	assert_bytes_str(m.props.response_topic, "resp/x");
	assert_bytes(m.props.correlation_data, "\x00\x01\x02", 3);
	assert_int_equal(m.props.topic_alias, 3);
	assert_true(moat_props_has(&m.props, PROP_TOPIC_ALIAS));
	assert_int_equal(m.props.n_user, 2);
	assert_int_equal(m.props.n_subscription_ids, 0);
	assert_ptr_equal(m.props.raw.p, h + props_at);
	assert_int_equal(m.props.raw.len, p.n);
	moat_free(h);

	/* QoS 0: no packet id, empty properties, empty payload */
	b.n = 0;
	bb_str(&b, "t");
	bb_u8(&b, 0);
	h = heap(b.d, b.n);
	assert_int_equal(moat_mqtt_decode_publish_v(0x00, h, b.n, 5, &m),
			 MOAT_OK);
	assert_int_equal(m.p.packet_id, 0);
	assert_int_equal(m.p.payload.len, 0);
	assert_int_equal(m.props.raw.len, 0);
	moat_free(h);

	/* the same bytes as 3.1.1: the property length is payload */
	b.n = 0;
	bb_str(&b, "t");
	bb_raw(&b, "\x03\x23\x00\x01", 4);
	h = heap(b.d, b.n);
	assert_int_equal(moat_mqtt_decode_publish_v(0x00, h, b.n, 4, &m),
			 MOAT_OK);
	assert_int_equal(m.p.payload.len, 4);
	assert_int_equal(m.props.raw.len, 0);
	assert_int_equal(m.props.has, 0);
	assert_int_equal(moat_mqtt_decode_publish_v(0x00, h, b.n, 5, &m),
			 MOAT_OK);
	assert_int_equal(m.p.payload.len, 0);
	assert_int_equal(m.props.topic_alias, 1);
	moat_free(h);
}

static int publish5_rc(uint8_t flags, const struct bb *b, uint8_t version)
{
	uint8_t *h = heap(b->d, b->n);
	struct moat_mqtt_publish5 m;
	int rc = moat_mqtt_decode_publish_v(flags, h, b->n, version, &m);
	moat_free(h);
	return rc;
}

static void test_publish_v5_topic_alias_and_errors(void **state)
{
	(void)state;
	struct bb b = {.n = 0}, p = {.n = 0};
	/* empty topic with a Topic Alias: accepted, the caller resolves it */
	bb_str(&b, "");
	pp_u16(&p, PROP_TOPIC_ALIAS, 5);
	bb_block(&b, &p);
	bb_raw(&b, "x", 1);
	uint8_t *h = heap(b.d, b.n);
	struct moat_mqtt_publish5 m;
	assert_int_equal(moat_mqtt_decode_publish_v(0x00, h, b.n, 5, &m),
			 MOAT_OK);
	assert_int_equal(m.p.topic.len, 0);
	assert_int_equal(m.props.topic_alias, 5);
	assert_bytes(m.p.payload, "x", 1);
	moat_free(h);
	/* ...but not in 3.1.1 */
	assert_int_equal(publish5_rc(0x00, &b, 4), MOAT_EPROTO);
	/* empty topic without one [MQTT-3.3.2-1] */
	b.n = 0;
	bb_str(&b, "");
	bb_u8(&b, 0);
	assert_int_equal(publish5_rc(0x00, &b, 5), MOAT_EPROTO);
	b.n = 0;
	p.n = 0;
	bb_str(&b, "");
	bb_u16(&b, 1);
	pp_pair(&p, "k", "v");
	bb_block(&b, &p);
	assert_int_equal(publish5_rc(0x02, &b, 5), MOAT_EPROTO);
	/* Topic Alias 0 [MQTT-3.3.2-8] */
	b.n = 0;
	p.n = 0;
	bb_str(&b, "t");
	pp_u16(&p, PROP_TOPIC_ALIAS, 0);
	bb_block(&b, &p);
	assert_int_equal(publish5_rc(0x00, &b, 5), MOAT_EPROTO);
	/* Subscription Identifier from a client [MQTT-3.3.4-6] */
	b.n = 0;
	p.n = 0;
	bb_str(&b, "t");
	pp_varint(&p, PROP_SUBSCRIPTION_ID, 1);
	bb_block(&b, &p);
	assert_int_equal(publish5_rc(0x00, &b, 5), MOAT_EPROTO);
	/* a property PUBLISH does not carry */
	b.n = 0;
	p.n = 0;
	bb_str(&b, "t");
	pp_str(&p, PROP_REASON_STRING, "r");
	bb_block(&b, &p);
	assert_int_equal(publish5_rc(0x00, &b, 5), MOAT_EMALFORMED);
	/* wildcards in the name [MQTT-3.3.2-2] */
	b.n = 0;
	bb_str(&b, "a/+");
	bb_u8(&b, 0);
	assert_int_equal(publish5_rc(0x00, &b, 5), MOAT_EPROTO);
	b.n = 0;
	bb_str(&b, "#");
	bb_u8(&b, 0);
	assert_int_equal(publish5_rc(0x00, &b, 5), MOAT_EPROTO);
	/* QoS 3, DUP with QoS 0, packet id 0 */
	b.n = 0;
	bb_str(&b, "t");
	bb_u16(&b, 1);
	bb_u8(&b, 0);
	assert_int_equal(publish5_rc(0x06, &b, 5), MOAT_EMALFORMED);
	assert_int_equal(publish5_rc(0x02, &b, 5), MOAT_OK);
	b.n = 0;
	bb_str(&b, "t");
	bb_u8(&b, 0);
	assert_int_equal(publish5_rc(0x08, &b, 5), MOAT_EMALFORMED);
	b.n = 0;
	bb_str(&b, "t");
	bb_u16(&b, 0);
	bb_u8(&b, 0);
	assert_int_equal(publish5_rc(0x04, &b, 5), MOAT_EMALFORMED);
	/* invalid UTF-8 topic */
	b.n = 0;
	bb_str(&b, "\xC0\xAF");
	bb_u8(&b, 0);
	assert_int_equal(publish5_rc(0x00, &b, 5), MOAT_EUTF8);
	/* no property length at all (it is not optional in PUBLISH) */
	b.n = 0;
	bb_str(&b, "t");
	assert_int_equal(publish5_rc(0x00, &b, 5), MOAT_EMALFORMED);
	b.n = 0;
	bb_str(&b, "t");
	bb_u16(&b, 9);
	assert_int_equal(publish5_rc(0x02, &b, 5), MOAT_EMALFORMED);
}

static void test_publish_v5_truncated_every_offset(void **state)
{
	(void)state;
	struct bb b = {.n = 0}, p = {.n = 0};
	bb_str(&b, "a/b");
	bb_u16(&b, 9);
	pp_u32(&p, PROP_MESSAGE_EXPIRY, 1);
	pp_str(&p, PROP_CONTENT_TYPE, "ct");
	pp_pair(&p, "k", "v");
	bb_block(&b, &p);
	size_t props_end = b.n;
	bb_raw(&b, "payload", 7);
	for (size_t len = 0; len <= b.n; len++) {
		uint8_t *h = heap(b.d, len);
		struct moat_mqtt_publish5 m;
		int rc = moat_mqtt_decode_publish_v(0x02, h, len, 5, &m);
		if (len < props_end) {
			if (rc != MOAT_EMALFORMED)
				fail_msg("len %zu: rc %d", len, rc);
		} else {
			assert_int_equal(rc, MOAT_OK);
			assert_int_equal(m.p.payload.len, len - props_end);
			assert_int_equal(m.props.raw.len, p.n);
		}
		moat_free(h);
	}
}

/* ---- PUBACK / PUBREC / PUBREL / PUBCOMP -------------------------------- */

static int ack5(const void *d, size_t n, uint8_t version, uint16_t *id,
		uint8_t *reason, struct moat_mqtt_props *props)
{
	uint8_t *h = heap(d, n);
	int rc = moat_mqtt_decode_ack_v(h, n, version, id, reason, props);
	moat_free(h);
	return rc;
}

static void test_ack_v5_forms(void **state)
{
	(void)state;
	uint16_t id = 0;
	uint8_t reason = 0x77;
	struct moat_mqtt_props props;
	/* 2 bytes: reason 0x00, no properties [MQTT-3.4.2-1] */
	assert_int_equal(ack5("\x12\x34", 2, 5, &id, &reason, &props),
			 MOAT_OK);
	assert_int_equal(id, 0x1234);
	assert_int_equal(reason, 0);
	assert_int_equal(props.raw.len, 0);
	/* 3 bytes: reason only */
	reason = 0x77;
	assert_int_equal(ack5("\x00\x05\x10", 3, 5, &id, &reason, &props),
			 MOAT_OK);
	assert_int_equal(id, 5);
	assert_int_equal(reason, RC_NO_MATCHING_SUBSCRIBERS);
	assert_int_equal(props.has, 0);
	/* 4 bytes: reason and an empty property block */
	assert_int_equal(
		ack5("\x00\x05\x92\x00", 4, 5, &id, &reason, &props),
		MOAT_OK);
	assert_int_equal(reason, RC_PACKET_ID_NOT_FOUND);
	/* with properties */
	struct bb b = {.n = 0}, p = {.n = 0};
	bb_u16(&b, 0xFFFF);
	bb_u8(&b, RC_QUOTA_EXCEEDED);
	pp_str(&p, PROP_REASON_STRING, "too many");
	pp_pair(&p, "k", "v");
	bb_block(&b, &p);
	uint8_t *h = heap(b.d, b.n);
	assert_int_equal(moat_mqtt_decode_ack_v(h, b.n, 5, &id, &reason, &props),
			 MOAT_OK);
	assert_int_equal(id, 0xFFFF);
	assert_int_equal(reason, RC_QUOTA_EXCEEDED);
	assert_bytes_str(props.reason_string, "too many");
	assert_int_equal(props.n_user, 1);
	assert_ptr_equal(props.raw.p, h + 4);
	moat_free(h);
	/* trailing bytes after the properties */
	bb_u8(&b, 0);
	assert_int_equal(ack5(b.d, b.n, 5, &id, &reason, &props),
			 MOAT_EMALFORMED);
	assert_int_equal(
		ack5("\x00\x05\x00\x00\x00", 5, 5, &id, &reason, &props),
		MOAT_EMALFORMED);
	/* errors */
	assert_int_equal(ack5("", 0, 5, &id, &reason, &props),
			 MOAT_EMALFORMED);
	assert_int_equal(ack5("\x01", 1, 5, &id, &reason, &props),
			 MOAT_EMALFORMED);
	assert_int_equal(ack5("\x00\x00", 2, 5, &id, &reason, &props),
			 MOAT_EMALFORMED);
	assert_int_equal(ack5("\x00\x00\x10", 3, 5, &id, &reason, &props),
			 MOAT_EMALFORMED);
	assert_int_equal(
		ack5("\x00\x05\x00\x03\x23\x00\x01", 7, 5, &id, &reason,
		     &props),
		MOAT_EMALFORMED); /* Topic Alias in an ack */
	assert_int_equal(
		ack5("\x00\x05\x00\x05\x1F\x00\x01x", 8, 5, &id, &reason,
		     &props),
		MOAT_EMALFORMED); /* block longer than the packet */
	assert_int_equal(ack5("\x00\x05\x00\x08\x1F\x00\x01x\x1F\x00\x01y",
			      12, 5, &id, &reason, &props),
			 MOAT_EPROTO); /* Reason String twice */
	/* 3.1.1: exactly two bytes, reason reported as 0 */
	reason = 0x77;
	assert_int_equal(ack5("\x00\x05", 2, 4, &id, &reason, &props),
			 MOAT_OK);
	assert_int_equal(reason, 0);
	assert_int_equal(ack5("\x00\x05\x00", 3, 4, &id, &reason, &props),
			 MOAT_EMALFORMED);
	assert_int_equal(ack5("\x00\x05", 2, 3, &id, &reason, &props),
			 MOAT_OK);
}

/* ---- SUBSCRIBE / UNSUBSCRIBE ------------------------------------------- */

static void test_subscribe_v5_options(void **state)
{
	(void)state;
	struct bb b = {.n = 0}, p = {.n = 0};
	bb_u16(&b, 42);
	pp_varint(&p, PROP_SUBSCRIPTION_ID, 1000);
	pp_pair(&p, "k", "v");
	bb_block(&b, &p);
	static const struct {
		const char *f;
		uint8_t opt;
		uint8_t qos;
		bool nl, rap;
		uint8_t rh;
	} want[] = {
		{"a/b", 0x00, 0, false, false, 0},
		{"a/#", 0x01, 1, false, false, 0},
		{"+", 0x02, 2, false, false, 0},
		{"nl", 0x04, 0, true, false, 0},
		{"rap", 0x08, 0, false, true, 0},
		{"rh1", 0x10, 0, false, false, 1},
		{"rh2", 0x20, 0, false, false, 2},
		{"all", 0x2E, 2, true, true, 2},
		{"$share/g/x", 0x15, 1, true, false, 1},
	};
	for (size_t i = 0; i < MOAT_ARRAY_LEN(want); i++) {
		bb_str(&b, want[i].f);
		bb_u8(&b, want[i].opt);
	}
	uint8_t *h = heap(b.d, b.n);
	struct moat_rd rd;
	uint16_t id;
	struct moat_mqtt_props props;
	assert_int_equal(moat_mqtt_decode_sub_start_v(h, b.n, 5, true, &rd, &id,
						      &props),
			 MOAT_OK);
	assert_int_equal(id, 42);
	assert_int_equal(props.subscription_id, 1000);
	assert_true(moat_props_has(&props, PROP_SUBSCRIPTION_ID));
	assert_int_equal(props.n_user, 1);
	assert_int_equal(rd.pos, 2 + 1 + p.n);
	for (size_t i = 0; i < MOAT_ARRAY_LEN(want); i++) {
		struct moat_bytes f;
		struct moat_sub_opts o;
		assert_int_equal(moat_mqtt_decode_sub_next_v(&rd, 5, &f, &o),
				 MOAT_OK);
		assert_bytes_str(f, want[i].f);
		assert_int_equal(o.qos, want[i].qos);
		assert_int_equal(o.no_local, want[i].nl);
		assert_int_equal(o.retain_as_published, want[i].rap);
		assert_int_equal(o.retain_handling, want[i].rh);
	}
	struct moat_bytes f;
	struct moat_sub_opts o;
	assert_int_equal(moat_mqtt_decode_sub_next_v(&rd, 5, &f, &o),
			 MOAT_ENOTFOUND);
	moat_free(h);
}

static int sub_next_rc(uint8_t version, uint8_t opt)
{
	struct bb b = {.n = 0};
	bb_str(&b, "a");
	bb_u8(&b, opt);
	uint8_t *h = heap(b.d, b.n);
	struct moat_rd rd;
	struct moat_bytes f;
	struct moat_sub_opts o;
	moat_rd_init(&rd, h, b.n);
	int rc = moat_mqtt_decode_sub_next_v(&rd, version, &f, &o);
	moat_free(h);
	return rc;
}

/* MQTT 5 §3.8.3.1: "It is a Protocol Error if the Maximum QoS field has
 * the value 3", "It is a Protocol Error to send a Retain Handling value of
 * 3"; non-zero reserved bits 6-7 are Malformed [MQTT-3.8.3-5] and win.
 * 3.1.1: QoS 3 or any other bit set is Malformed [MQTT-3.8.3-4]. */
static void test_subscribe_options_every_byte(void **state)
{
	(void)state;
	size_t ok5 = 0, ok4 = 0, proto5 = 0;
	for (unsigned opt = 0; opt < 256; opt++) {
		bool qos3 = (opt & 3) == 3;
		bool rh3 = ((opt >> 4) & 3) == 3;
		bool reserved = (opt & 0xC0) != 0;
		int want5 = reserved       ? MOAT_EMALFORMED
			    : qos3 || rh3 ? MOAT_EPROTO
					  : MOAT_OK;
		int want4 = opt <= 2 ? MOAT_OK : MOAT_EMALFORMED;
		int rc5 = sub_next_rc(5, (uint8_t)opt);
		int rc4 = sub_next_rc(4, (uint8_t)opt);
		if (rc5 != want5 || rc4 != want4)
			fail_msg("options 0x%02x: v5 %d (want %d), v4 %d "
				 "(want %d)",
				 opt, rc5, want5, rc4, want4);
		ok5 += rc5 == MOAT_OK;
		ok4 += rc4 == MOAT_OK;
		proto5 += rc5 == MOAT_EPROTO;
	}
	/* 3 QoS x NL x RAP x 3 Retain Handling */
	assert_int_equal(ok5, 3 * 2 * 2 * 3);
	/* the other 64 - 36 bytes with bits 6-7 clear */
	assert_int_equal(proto5, 64 - 36);
	assert_int_equal(ok4, 3);
	assert_int_equal(sub_next_rc(3, 0x02), MOAT_OK);
	assert_int_equal(sub_next_rc(3, 0x04), MOAT_EMALFORMED);
	assert_int_equal(sub_next_rc(3, 0x03), MOAT_EMALFORMED);
	/* spelled out: RH 3, QoS 3, bits 6 and 7 */
	assert_int_equal(sub_next_rc(5, 0x30), MOAT_EPROTO);
	assert_int_equal(sub_next_rc(5, 0x03), MOAT_EPROTO);
	assert_int_equal(sub_next_rc(5, 0x33), MOAT_EPROTO);
	assert_int_equal(sub_next_rc(5, 0x40), MOAT_EMALFORMED);
	assert_int_equal(sub_next_rc(5, 0x80), MOAT_EMALFORMED);
	assert_int_equal(sub_next_rc(5, 0x73), MOAT_EMALFORMED);
	assert_int_equal(sub_next_rc(4, 0x03), MOAT_EMALFORMED);
	assert_int_equal(sub_next_rc(4, 0x04), MOAT_EMALFORMED);
	assert_int_equal(sub_next_rc(4, 0x08), MOAT_EMALFORMED);
	assert_int_equal(sub_next_rc(4, 0x10), MOAT_EMALFORMED);
}

static int sub_start_rc(const struct bb *b, uint8_t version, bool subscribe,
			struct moat_mqtt_props *out_copy)
{
	uint8_t *h = heap(b->d, b->n);
	struct moat_rd rd;
	uint16_t id;
	struct moat_mqtt_props props;
	int rc = moat_mqtt_decode_sub_start_v(h, b->n, version, subscribe, &rd,
					      &id, &props);
	if (out_copy) {
		*out_copy = props;
		out_copy->raw.p = NULL; /* points into freed memory */
	}
	moat_free(h);
	return rc;
}

static void test_subscribe_v5_start_errors(void **state)
{
	(void)state;
	struct bb b = {.n = 0}, p = {.n = 0};
	/* no filter after the properties [MQTT-3.8.3-2] */
	bb_u16(&b, 1);
	bb_u8(&b, 0);
	assert_int_equal(sub_start_rc(&b, 5, true, NULL), MOAT_EPROTO);
	assert_int_equal(sub_start_rc(&b, 5, false, NULL), MOAT_EPROTO);
	/* packet id 0 */
	b.n = 0;
	bb_u16(&b, 0);
	bb_u8(&b, 0);
	bb_str(&b, "a");
	bb_u8(&b, 0);
	assert_int_equal(sub_start_rc(&b, 5, true, NULL), MOAT_EMALFORMED);
	/* missing property length */
	b.n = 0;
	bb_u16(&b, 1);
	assert_int_equal(sub_start_rc(&b, 5, true, NULL), MOAT_EMALFORMED);
	assert_int_equal(sub_start_rc(&b, 4, true, NULL), MOAT_EPROTO);
	/* Subscription Identifier twice, or 0 */
	b.n = 0;
	p.n = 0;
	bb_u16(&b, 1);
	pp_varint(&p, PROP_SUBSCRIPTION_ID, 1);
	pp_varint(&p, PROP_SUBSCRIPTION_ID, 2);
	bb_block(&b, &p);
	bb_str(&b, "a");
	bb_u8(&b, 0);
	assert_int_equal(sub_start_rc(&b, 5, true, NULL), MOAT_EPROTO);
	b.n = 0;
	p.n = 0;
	bb_u16(&b, 1);
	pp_varint(&p, PROP_SUBSCRIPTION_ID, 0);
	bb_block(&b, &p);
	bb_str(&b, "a");
	bb_u8(&b, 0);
	assert_int_equal(sub_start_rc(&b, 5, true, NULL), MOAT_EPROTO);
	/* ...and not allowed at all in UNSUBSCRIBE */
	b.n = 0;
	p.n = 0;
	bb_u16(&b, 1);
	pp_varint(&p, PROP_SUBSCRIPTION_ID, 1);
	bb_block(&b, &p);
	bb_str(&b, "a");
	assert_int_equal(sub_start_rc(&b, 5, false, NULL), MOAT_EMALFORMED);
	/* UNSUBSCRIBE: User Property only */
	b.n = 0;
	p.n = 0;
	bb_u16(&b, 9);
	pp_pair(&p, "k", "v");
	bb_block(&b, &p);
	bb_str(&b, "a/b");
	bb_str(&b, "c");
	struct moat_mqtt_props got;
	assert_int_equal(sub_start_rc(&b, 5, false, &got), MOAT_OK);
	assert_int_equal(got.n_user, 1);
	uint8_t *h = heap(b.d, b.n);
	struct moat_rd rd;
	uint16_t id;
	assert_int_equal(moat_mqtt_decode_sub_start_v(h, b.n, 5, false, &rd,
						      &id, &got),
			 MOAT_OK);
	struct moat_bytes f;
	assert_int_equal(moat_mqtt_decode_unsub_next(&rd, &f), MOAT_OK);
	assert_bytes_str(f, "a/b");
	assert_int_equal(moat_mqtt_decode_unsub_next(&rd, &f), MOAT_OK);
	assert_bytes_str(f, "c");
	assert_int_equal(moat_mqtt_decode_unsub_next(&rd, &f), MOAT_ENOTFOUND);
	moat_free(h);
	/* Reason String is not a SUBSCRIBE property */
	b.n = 0;
	p.n = 0;
	bb_u16(&b, 1);
	pp_str(&p, PROP_REASON_STRING, "r");
	bb_block(&b, &p);
	bb_str(&b, "a");
	bb_u8(&b, 0);
	assert_int_equal(sub_start_rc(&b, 5, true, NULL), MOAT_EMALFORMED);
	/* 3.1.1: no properties; the cursor is right after the packet id */
	b.n = 0;
	bb_u16(&b, 3);
	bb_str(&b, "a");
	bb_u8(&b, 1);
	h = heap(b.d, b.n);
	assert_int_equal(moat_mqtt_decode_sub_start_v(h, b.n, 4, true, &rd, &id,
						      &got),
			 MOAT_OK);
	assert_int_equal(id, 3);
	assert_int_equal(rd.pos, 2);
	assert_int_equal(got.raw.len, 0);
	struct moat_sub_opts o;
	assert_int_equal(moat_mqtt_decode_sub_next_v(&rd, 4, &f, &o), MOAT_OK);
	assert_int_equal(o.qos, 1);
	assert_false(o.no_local);
	moat_free(h);
}

static void test_subscribe_v5_truncated(void **state)
{
	(void)state;
	struct bb b = {.n = 0}, p = {.n = 0};
	bb_u16(&b, 1);
	pp_varint(&p, PROP_SUBSCRIPTION_ID, 300);
	bb_block(&b, &p);
	bb_str(&b, "abc");
	bb_u8(&b, 0x2D);
	for (size_t len = 0; len < b.n; len++) {
		uint8_t *h = heap(b.d, len);
		struct moat_rd rd;
		uint16_t id;
		struct moat_mqtt_props props;
		int rc = moat_mqtt_decode_sub_start_v(h, len, 5, true, &rd, &id,
						      &props);
		if (rc == MOAT_OK) {
			struct moat_bytes f;
			struct moat_sub_opts o;
			rc = moat_mqtt_decode_sub_next_v(&rd, 5, &f, &o);
			assert_int_equal(rc, MOAT_EMALFORMED);
		} else {
			/* EPROTO only when cut right after the properties */
			assert_true(rc == MOAT_EMALFORMED ||
				    (rc == MOAT_EPROTO && len == 2 + 1 + p.n));
		}
		moat_free(h);
	}
}

/* ---- DISCONNECT / AUTH ------------------------------------------------- */

static int reason_props_rc(bool auth, const void *d, size_t n,
			   uint8_t version, uint8_t *reason)
{
	uint8_t *h = heap(d, n);
	struct moat_mqtt_props props;
	int rc = auth ? moat_mqtt_decode_auth(h, n, reason, &props)
		      : moat_mqtt_decode_disconnect_v(h, n, version, reason,
						       &props);
	moat_free(h);
	return rc;
}

static void test_disconnect_v5(void **state)
{
	(void)state;
	uint8_t reason = 0x77;
	struct moat_mqtt_props props;
	/* empty: normal disconnection */
	assert_int_equal(moat_mqtt_decode_disconnect_v(NULL, 0, 5, &reason,
						       &props),
			 MOAT_OK);
	assert_int_equal(reason, RC_SUCCESS);
	assert_int_equal(props.raw.len, 0);
	/* reason only */
	assert_int_equal(reason_props_rc(false, "\x04", 1, 5, &reason), MOAT_OK);
	assert_int_equal(reason, RC_DISCONNECT_WITH_WILL);
	assert_int_equal(reason_props_rc(false, "\x8E\x00", 2, 5, &reason),
			 MOAT_OK);
	assert_int_equal(reason, RC_SESSION_TAKEN_OVER);
	/* with the four DISCONNECT properties */
	struct bb b = {.n = 0}, p = {.n = 0};
	bb_u8(&b, RC_SERVER_MOVED);
	pp_u32(&p, PROP_SESSION_EXPIRY, 0);
	pp_str(&p, PROP_REASON_STRING, "moving");
	pp_str(&p, PROP_SERVER_REFERENCE, "other:1883");
	pp_pair(&p, "k", "v");
	bb_block(&b, &p);
	uint8_t *h = heap(b.d, b.n);
	assert_int_equal(moat_mqtt_decode_disconnect_v(h, b.n, 5, &reason,
						       &props),
			 MOAT_OK);
	assert_int_equal(reason, RC_SERVER_MOVED);
	assert_true(moat_props_has(&props, PROP_SESSION_EXPIRY));
	assert_int_equal(props.session_expiry, 0);
	assert_bytes_str(props.reason_string, "moving");
	assert_bytes_str(props.server_reference, "other:1883");
	assert_int_equal(props.n_user, 1);
	moat_free(h);
	/* trailing bytes */
	bb_u8(&b, 0);
	assert_int_equal(reason_props_rc(false, b.d, b.n, 5, &reason),
			 MOAT_EMALFORMED);
	/* every truncation of the full one */
	b.n--;
	for (size_t len = 2; len < b.n; len++)
		assert_int_equal(reason_props_rc(false, b.d, len, 5, &reason),
				 MOAT_EMALFORMED);
	/* not DISCONNECT properties */
	assert_int_equal(reason_props_rc(false, "\x00\x03\x15\x00\x00", 5, 5,
					 &reason),
			 MOAT_EMALFORMED); /* Authentication Method */
	assert_int_equal(reason_props_rc(false, "\x00\x03\x21\x00\x01", 5, 5,
					 &reason),
			 MOAT_EMALFORMED); /* Receive Maximum */
	assert_int_equal(reason_props_rc(false, "\x00\x02\x1F\x00", 4, 5,
					 &reason),
			 MOAT_EMALFORMED); /* Reason String cut */
	/* 3.1.1: empty only */
	assert_int_equal(reason_props_rc(false, "", 0, 4, &reason), MOAT_OK);
	assert_int_equal(reason, 0);
	assert_int_equal(reason_props_rc(false, "\x00", 1, 4, &reason),
			 MOAT_EMALFORMED);
	assert_int_equal(reason_props_rc(false, "\x00", 1, 3, &reason),
			 MOAT_EMALFORMED);
}

static void test_auth(void **state)
{
	(void)state;
	uint8_t reason = 0x77;
	struct moat_mqtt_props props;
	assert_int_equal(moat_mqtt_decode_auth(NULL, 0, &reason, &props),
			 MOAT_OK);
	assert_int_equal(reason, RC_SUCCESS);
	assert_int_equal(reason_props_rc(true, "\x19", 1, 5, &reason), MOAT_OK);
	assert_int_equal(reason, RC_REAUTHENTICATE);
	struct bb b = {.n = 0}, p = {.n = 0};
	bb_u8(&b, RC_CONTINUE_AUTH);
	pp_str(&p, PROP_AUTH_METHOD, "SCRAM-SHA-256");
	pp_bin(&p, PROP_AUTH_DATA, "\x00\xFE", 2);
	pp_str(&p, PROP_REASON_STRING, "step 2");
	pp_pair(&p, "k", "v");
	bb_block(&b, &p);
	uint8_t *h = heap(b.d, b.n);
	assert_int_equal(moat_mqtt_decode_auth(h, b.n, &reason, &props),
			 MOAT_OK);
	assert_int_equal(reason, RC_CONTINUE_AUTH);
	assert_bytes_str(props.auth_method, "SCRAM-SHA-256");
	assert_bytes(props.auth_data, "\x00\xFE", 2);
	assert_bytes_str(props.reason_string, "step 2");
	assert_int_equal(props.n_user, 1);
	moat_free(h);
	bb_u8(&b, 0);
	assert_int_equal(reason_props_rc(true, b.d, b.n, 5, &reason),
			 MOAT_EMALFORMED);
	/* Session Expiry is not an AUTH property */
	assert_int_equal(reason_props_rc(true, "\x18\x05\x11\x00\x00\x00\x01",
					 7, 5, &reason),
			 MOAT_EMALFORMED);
	/* Authentication Method twice */
	assert_int_equal(reason_props_rc(true,
					 "\x18\x08\x15\x00\x01x\x15\x00\x01y",
					 10, 5, &reason),
			 MOAT_EPROTO);
	/* bad UTF-8 in the method */
	assert_int_equal(reason_props_rc(true, "\x18\x04\x15\x00\x01\xFF", 6,
					 5, &reason),
			 MOAT_EUTF8);
}

/* ---- property writer --------------------------------------------------- */

static void test_pw_writers_exact_bytes(void **state)
{
	(void)state;
	uint8_t buf[64];
	struct moat_pw w;
	moat_pw_init(&w, buf, sizeof(buf));
	assert_int_equal(w.len, 0);
	assert_false(w.overflow);
	moat_pw_u8(&w, PROP_MAXIMUM_QOS, 1);
	moat_pw_u16(&w, PROP_RECEIVE_MAXIMUM, 0x0102);
	moat_pw_u32(&w, PROP_SESSION_EXPIRY, 0x01020304);
	moat_pw_varint(&w, PROP_SUBSCRIPTION_ID, 16384);
	moat_pw_bytes(&w, PROP_REASON_STRING, "ok", 2);
	moat_pw_raw(&w, "\x26\x00\x01k\x00\x00", 6);
	static const uint8_t want[] = {
		0x24, 0x01, 0x21, 0x01, 0x02, 0x11, 0x01, 0x02, 0x03,
		0x04, 0x0B, 0x80, 0x80, 0x01, 0x1F, 0x00, 0x02, 'o',
		'k',  0x26, 0x00, 0x01, 'k',  0x00, 0x00};
	assert_int_equal(w.len, sizeof(want));
	assert_memory_equal(buf, want, sizeof(want));
	assert_false(w.overflow);
	/* and it reads back as CONNACK properties, except Subscription
	 * Identifier, which is not one: check the others one by one */
	struct bb b = {.n = 0};
	bb_varint(&b, 10);
	bb_raw(&b, want, 10); /* u8, u16, u32 */
	assert_int_equal(props_rc(PCTX_CONNACK, b.d, b.n), MOAT_OK);
}

static void test_pw_overflow(void **state)
{
	(void)state;
	uint8_t buf[8];
	struct moat_pw w;
	memset(buf, 0xAA, sizeof(buf));
	moat_pw_init(&w, buf, 4);
	moat_pw_u16(&w, PROP_TOPIC_ALIAS, 1); /* 3 bytes: fits */
	assert_int_equal(w.len, 3);
	assert_false(w.overflow);
	moat_pw_u16(&w, PROP_TOPIC_ALIAS, 2); /* would need 6 */
	assert_true(w.overflow);
	assert_int_equal(w.len, 3);
	/* once overflowed, even a write that fits is dropped */
	moat_pw_raw(&w, "x", 1);
	assert_int_equal(w.len, 3);
	assert_true(w.overflow);
	assert_int_equal(buf[3], 0xAA);
	assert_int_equal(buf[4], 0xAA);
	/* exactly full is not overflow */
	moat_pw_init(&w, buf, 5);
	moat_pw_u32(&w, PROP_MESSAGE_EXPIRY, 9);
	assert_int_equal(w.len, 5);
	assert_false(w.overflow);
	moat_pw_raw(&w, NULL, 0);
	assert_false(w.overflow);
	moat_pw_u8(&w, PROP_PAYLOAD_FORMAT, 1);
	assert_true(w.overflow);
	/* a binary/string value longer than 65535 */
	uint8_t big[8];
	moat_pw_init(&w, big, sizeof(big));
	moat_pw_bytes(&w, PROP_CORRELATION_DATA, buf, 65536);
	assert_true(w.overflow);
	assert_int_equal(w.len, 0);
	/* a zero-capacity writer */
	moat_pw_init(&w, NULL, 0);
	moat_pw_raw(&w, NULL, 0);
	assert_false(w.overflow);
	moat_pw_u8(&w, 1, 1);
	assert_true(w.overflow);
	assert_int_equal(w.len, 0);
}

/* A varint value above 268435455 cannot be encoded: it must be refused
 * like any other write that does not fit, not written as five bytes
 * (which, with assertions compiled out, overran the writer's stack
 * scratch and then emitted a Malformed property). */
static void test_pw_varint_out_of_range(void **state)
{
	(void)state;
	uint8_t buf[16];
	struct moat_pw w;
	memset(buf, 0xAA, sizeof(buf));
	moat_pw_init(&w, buf, sizeof(buf));
	moat_pw_varint(&w, PROP_SUBSCRIPTION_ID, 268435455);
	assert_int_equal(w.len, 5);
	assert_memory_equal(buf, "\x0B\xFF\xFF\xFF\x7F", 5);
	assert_false(w.overflow);
	moat_pw_varint(&w, PROP_SUBSCRIPTION_ID, 268435456);
	assert_true(w.overflow);
	assert_int_equal(w.len, 5);
	moat_pw_init(&w, buf, sizeof(buf));
	moat_pw_varint(&w, PROP_SUBSCRIPTION_ID, UINT32_MAX);
	assert_true(w.overflow);
	assert_int_equal(w.len, 0);
	assert_int_equal(buf[6], 0xAA);
	/* an encoder then refuses the block */
	struct moat_buf b;
	moat_buf_init(&b, 64);
	assert_int_equal(moat_mqtt5_disconnect(&b, 0x80, &w), MOAT_EINVAL);
	assert_int_equal(moat_buf_used(&b), 0);
	moat_buf_cleanup(&b);
}

/* ---- v5 encoders ------------------------------------------------------- */

/* The packet in b: checks the fixed header and returns a pointer to the
 * body (inside b). */
static const uint8_t *pkt_body(const struct moat_buf *b, uint8_t first,
			       size_t *body_len)
{
	const uint8_t *pkt = b->data + b->off;
	size_t n = moat_buf_used(b);
	uint8_t tf;
	uint32_t rem;
	size_t hl;
	assert_int_equal(moat_mqtt_fixed_header(pkt, n, &tf, &rem, &hl),
			 MOAT_OK);
	assert_int_equal(tf, first);
	assert_int_equal(hl + rem, n);
	*body_len = rem;
	return pkt + hl;
}

static void assert_buf(const struct moat_buf *b, const void *want, size_t n)
{
	assert_int_equal(moat_buf_used(b), n);
	assert_memory_equal(b->data + b->off, want, n);
}

static void test_connack5_encode(void **state)
{
	(void)state;
	struct moat_buf b;
	moat_buf_init(&b, 1024);
	assert_int_equal(moat_mqtt5_connack(&b, false, RC_SUCCESS, NULL),
			 MOAT_OK);
	assert_buf(&b, "\x20\x03\x00\x00\x00", 5);
	moat_buf_consume(&b, moat_buf_used(&b));

	uint8_t pb[64];
	struct moat_pw w;
	moat_pw_init(&w, pb, sizeof(pb));
	moat_pw_u32(&w, PROP_SESSION_EXPIRY, 3600);
	moat_pw_u16(&w, PROP_RECEIVE_MAXIMUM, 20);
	moat_pw_bytes(&w, PROP_ASSIGNED_CLIENT_ID, "id", 2);
	moat_pw_u8(&w, PROP_MAXIMUM_QOS, 1);
	assert_int_equal(moat_mqtt5_connack(&b, true, RC_SUCCESS, &w), MOAT_OK);
	static const uint8_t want[] = {
		0x20, 0x12, 0x01, 0x00, 0x0F, 0x11, 0x00, 0x00, 0x0E, 0x10,
		0x21, 0x00, 0x14, 0x12, 0x00, 0x02, 'i',  'd',  0x24, 0x01};
	assert_buf(&b, want, sizeof(want));
	size_t bl;
	const uint8_t *body = pkt_body(&b, 0x20, &bl);
	struct moat_rd rd;
	struct moat_mqtt_props p;
	moat_rd_init(&rd, body, bl);
	rd.pos = 2;
	assert_int_equal(moat_mqtt_props_read(&rd, PCTX_CONNACK, &p), MOAT_OK);
	assert_int_equal(rd.pos, bl);
	assert_int_equal(p.session_expiry, 3600);
	assert_int_equal(p.receive_maximum, 20);
	assert_bytes_str(p.assigned_client_id, "id");
	assert_int_equal(p.maximum_qos, 1);
	moat_buf_consume(&b, moat_buf_used(&b));

	/* a refusal */
	assert_int_equal(moat_mqtt5_connack(&b, false, RC_NOT_AUTHORIZED, NULL),
			 MOAT_OK);
	assert_buf(&b, "\x20\x03\x00\x87\x00", 5);
	moat_buf_cleanup(&b);
}

static void test_ack5_encode(void **state)
{
	(void)state;
	struct moat_buf b;
	moat_buf_init(&b, 1024);
	uint8_t pb[32];
	struct moat_pw empty, w;
	moat_pw_init(&empty, pb, sizeof(pb));
	/* short form: reason 0, no properties [MQTT-3.4.2-1] */
	static const struct {
		enum moat_mqtt_type type;
		uint8_t first;
	} t[] = {{MQTT_PUBACK, 0x40},
		 {MQTT_PUBREC, 0x50},
		 {MQTT_PUBREL, 0x62},
		 {MQTT_PUBCOMP, 0x70}};
	for (size_t i = 0; i < MOAT_ARRAY_LEN(t); i++) {
		for (int withpw = 0; withpw < 2; withpw++) {
			assert_int_equal(moat_mqtt5_ack(&b, t[i].type, 0x0107,
							RC_SUCCESS,
							withpw ? &empty : NULL),
					 MOAT_OK);
			uint8_t want[4] = {t[i].first, 0x02, 0x01, 0x07};
			assert_buf(&b, want, 4);
			moat_buf_consume(&b, 4);
		}
		/* reason, no properties: 4-byte body with property length 0 */
		assert_int_equal(moat_mqtt5_ack(&b, t[i].type, 7,
						RC_PACKET_ID_NOT_FOUND, NULL),
				 MOAT_OK);
		uint8_t want[6] = {t[i].first, 0x04, 0x00, 0x07, 0x92, 0x00};
		assert_buf(&b, want, 6);
		size_t bl;
		const uint8_t *body = pkt_body(&b, t[i].first, &bl);
		uint16_t id;
		uint8_t reason;
		struct moat_mqtt_props p;
		assert_int_equal(moat_mqtt_decode_ack_v(body, bl, 5, &id,
							&reason, &p),
				 MOAT_OK);
		assert_int_equal(id, 7);
		assert_int_equal(reason, RC_PACKET_ID_NOT_FOUND);
		moat_buf_consume(&b, 6);
	}
	/* reason 0 with a property: the long form */
	moat_pw_init(&w, pb, sizeof(pb));
	moat_pw_bytes(&w, PROP_REASON_STRING, "x", 1);
	assert_int_equal(moat_mqtt5_ack(&b, MQTT_PUBACK, 7, RC_SUCCESS, &w),
			 MOAT_OK);
	assert_buf(&b, "\x40\x08\x00\x07\x00\x04\x1F\x00\x01x", 10);
	size_t bl;
	const uint8_t *body = pkt_body(&b, 0x40, &bl);
	uint16_t id;
	uint8_t reason = 0x77;
	struct moat_mqtt_props p;
	assert_int_equal(moat_mqtt_decode_ack_v(body, bl, 5, &id, &reason, &p),
			 MOAT_OK);
	assert_int_equal(reason, 0);
	assert_bytes_str(p.reason_string, "x");
	moat_buf_consume(&b, 10);
	assert_int_equal(moat_mqtt5_ack(&b, MQTT_PUBREL, 0xFFFF, 0x92, &w),
			 MOAT_OK);
	assert_buf(&b, "\x62\x08\xFF\xFF\x92\x04\x1F\x00\x01x", 10);
	moat_buf_cleanup(&b);
}

static void test_suback5_encode(void **state)
{
	(void)state;
	struct moat_buf b;
	moat_buf_init(&b, 1024);
	static const uint8_t codes[] = {0x00, 0x01, 0x02, 0x80, 0xA2};
	assert_int_equal(moat_mqtt5_suback(&b, MQTT_SUBACK, 9, codes, 5, NULL),
			 MOAT_OK);
	assert_buf(&b, "\x90\x08\x00\x09\x00\x00\x01\x02\x80\xA2", 10);
	moat_buf_consume(&b, 10);
	static const uint8_t ucodes[] = {0x00, 0x11};
	uint8_t pb[16];
	struct moat_pw w;
	moat_pw_init(&w, pb, sizeof(pb));
	moat_pw_bytes(&w, PROP_REASON_STRING, "r", 1);
	assert_int_equal(moat_mqtt5_suback(&b, MQTT_UNSUBACK, 0x1234, ucodes, 2,
					   &w),
			 MOAT_OK);
	assert_buf(&b, "\xB0\x09\x12\x34\x04\x1F\x00\x01r\x00\x11", 11);
	size_t bl;
	const uint8_t *body = pkt_body(&b, 0xB0, &bl);
	struct moat_rd rd;
	struct moat_mqtt_props p;
	moat_rd_init(&rd, body, bl);
	rd.pos = 2;
	assert_int_equal(moat_mqtt_props_read(&rd, PCTX_UNSUBACK, &p), MOAT_OK);
	assert_bytes_str(p.reason_string, "r");
	assert_int_equal(moat_rd_left(&rd), 2);
	moat_buf_consume(&b, 11);
	/* 200 codes: two-byte remaining length */
	uint8_t many[200];
	memset(many, 1, sizeof(many));
	assert_int_equal(moat_mqtt5_suback(&b, MQTT_SUBACK, 1, many, 200, NULL),
			 MOAT_OK);
	assert_int_equal(moat_buf_used(&b), 1 + 2 + 203);
	assert_memory_equal(b.data + b.off, "\x90\xCB\x01\x00\x01\x00", 6);
	moat_buf_cleanup(&b);
}

static void test_disconnect_auth5_encode(void **state)
{
	(void)state;
	struct moat_buf b;
	moat_buf_init(&b, 1024);
	assert_int_equal(moat_mqtt5_disconnect(&b, RC_SESSION_TAKEN_OVER, NULL),
			 MOAT_OK);
	assert_buf(&b, "\xE0\x02\x8E\x00", 4);
	moat_buf_consume(&b, 4);
	uint8_t pb[64];
	struct moat_pw w;
	moat_pw_init(&w, pb, sizeof(pb));
	moat_pw_bytes(&w, PROP_REASON_STRING, "bye", 3);
	moat_pw_bytes(&w, PROP_SERVER_REFERENCE, "h", 1);
	assert_int_equal(moat_mqtt5_disconnect(&b, RC_SERVER_MOVED, &w),
			 MOAT_OK);
	assert_buf(&b,
		   "\xE0\x0C\x9D\x0A\x1F\x00\x03"
		   "bye\x1C\x00\x01h",
		   14);
	size_t bl;
	const uint8_t *body = pkt_body(&b, 0xE0, &bl);
	uint8_t reason;
	struct moat_mqtt_props p;
	assert_int_equal(moat_mqtt_decode_disconnect_v(body, bl, 5, &reason, &p),
			 MOAT_OK);
	assert_int_equal(reason, RC_SERVER_MOVED);
	assert_bytes_str(p.reason_string, "bye");
	assert_bytes_str(p.server_reference, "h");
	moat_buf_consume(&b, 14);

	assert_int_equal(moat_mqtt5_auth(&b, RC_CONTINUE_AUTH, NULL), MOAT_OK);
	assert_buf(&b, "\xF0\x02\x18\x00", 4);
	moat_buf_consume(&b, 4);
	moat_pw_init(&w, pb, sizeof(pb));
	moat_pw_bytes(&w, PROP_AUTH_METHOD, "SCRAM", 5);
	moat_pw_bytes(&w, PROP_AUTH_DATA, "\x00", 1);
	assert_int_equal(moat_mqtt5_auth(&b, RC_CONTINUE_AUTH, &w), MOAT_OK);
	assert_buf(&b,
		   "\xF0\x0E\x18\x0C\x15\x00\x05"
		   "SCRAM\x16\x00\x01\x00",
		   16);
	body = pkt_body(&b, 0xF0, &bl);
	assert_int_equal(moat_mqtt_decode_auth(body, bl, &reason, &p), MOAT_OK);
	assert_int_equal(reason, RC_CONTINUE_AUTH);
	assert_bytes_str(p.auth_method, "SCRAM");
	assert_bytes(p.auth_data, "\x00", 1);
	moat_buf_cleanup(&b);
}

static void test_encoders_refuse_overflowed_props(void **state)
{
	(void)state;
	struct moat_buf b;
	moat_buf_init(&b, 1024);
	uint8_t pb[4];
	struct moat_pw w;
	moat_pw_init(&w, pb, sizeof(pb));
	moat_pw_u16(&w, PROP_RECEIVE_MAXIMUM, 1);
	moat_pw_u32(&w, PROP_SESSION_EXPIRY, 1); /* does not fit */
	assert_true(w.overflow);
	assert_int_equal(moat_mqtt5_connack(&b, false, 0, &w), MOAT_EINVAL);
	assert_int_equal(moat_mqtt5_ack(&b, MQTT_PUBACK, 1, RC_SUCCESS, &w),
			 MOAT_EINVAL);
	assert_int_equal(moat_mqtt5_ack(&b, MQTT_PUBACK, 1, 0x80, &w),
			 MOAT_EINVAL);
	uint8_t c = 0;
	assert_int_equal(moat_mqtt5_suback(&b, MQTT_SUBACK, 1, &c, 1, &w),
			 MOAT_EINVAL);
	assert_int_equal(moat_mqtt5_disconnect(&b, 0x80, &w), MOAT_EINVAL);
	assert_int_equal(moat_mqtt5_auth(&b, 0x18, &w), MOAT_EINVAL);
	assert_int_equal(moat_buf_used(&b), 0); /* nothing written */
	moat_buf_cleanup(&b);
}

static void test_encoders_enomem(void **state)
{
	(void)state;
	struct moat_buf b;
	moat_buf_init(&b, 1024);
	moat_alloc_fail_at(1);
	assert_int_equal(moat_mqtt5_connack(&b, false, 0, NULL), MOAT_ENOMEM);
	assert_int_equal(moat_buf_used(&b), 0);
	moat_alloc_fail_at(0);
	moat_buf_cleanup(&b);
	/* a buffer limit too small for the packet */
	moat_buf_init(&b, 4);
	assert_int_equal(moat_mqtt5_connack(&b, false, 0, NULL), MOAT_ENOMEM);
	assert_int_equal(moat_mqtt5_disconnect(&b, 0x80, NULL), MOAT_OK);
	assert_int_equal(moat_mqtt5_auth(&b, 0x18, NULL), MOAT_ENOMEM);
	assert_int_equal(moat_mqtt5_ack(&b, MQTT_PUBACK, 1, 0x80, NULL),
			 MOAT_ENOMEM);
	assert_int_equal(moat_buf_used(&b), 4); /* only the DISCONNECT */
	moat_buf_cleanup(&b);
}

static void test_publish5_size(void **state)
{
	(void)state;
	/* "a/b", no properties, 2 bytes, QoS 1: 2+3+2 + 1 + 2 = 10 */
	assert_int_equal(moat_mqtt5_publish_size(3, 0, 2, 1), 12);
	assert_int_equal(moat_mqtt5_publish_size(3, 0, 2, 0), 10);
	assert_int_equal(moat_mqtt5_publish_size(0, 3, 0, 0), 1 + 1 + 6);
	/* 127 vs 128 bytes of remaining length */
	assert_int_equal(moat_mqtt5_publish_size(1, 0, 123, 0), 1 + 1 + 127);
	assert_int_equal(moat_mqtt5_publish_size(1, 0, 124, 0), 1 + 2 + 128);
	/* property length needing 2 bytes */
	assert_int_equal(moat_mqtt5_publish_size(1, 128, 0, 0),
			 1 + 2 + 3 + 2 + 128);
	/* limits */
	assert_int_equal(moat_mqtt5_publish_size(65536, 0, 0, 0), 0);
	assert_int_equal(moat_mqtt5_publish_size(65535, 0, 0, 0),
			 1 + 3 + 2 + 65535 + 1);
	size_t max = MQTT_MAX_REMAINING_LENGTH;
	/* remaining length exactly at the maximum */
	assert_int_equal(moat_mqtt5_publish_size(1, 0, max - 4, 0),
			 1 + 4 + max);
	assert_int_equal(moat_mqtt5_publish_size(1, 0, max - 3, 0), 0);
	assert_int_equal(moat_mqtt5_publish_size(1, 0, max - 6, 1),
			 1 + 4 + max);
	assert_int_equal(moat_mqtt5_publish_size(1, 0, max - 5, 1), 0);
	assert_int_equal(moat_mqtt5_publish_size(1, max, 0, 0), 0);
	assert_int_equal(moat_mqtt5_publish_size(1, max + 1, 0, 0), 0);
	assert_int_equal(moat_mqtt5_publish_size(1, 0, SIZE_MAX, 0), 0);
	assert_int_equal(moat_mqtt5_publish_size(1, SIZE_MAX, 0, 0), 0);
	/* 128 bytes of properties: 2-byte property length */
	assert_int_equal(moat_mqtt5_publish_size(1, 128, max - 3 - 2 - 128, 0),
			 1 + 4 + max);
	assert_int_equal(
		moat_mqtt5_publish_size(1, 128, max - 3 - 2 - 128 + 1, 0), 0);
}

static void test_publish5_roundtrip(void **state)
{
	(void)state;
	static const char topic[] = "sensors/\xC3\xA9t\xC3\xA9";
	const size_t tlen = sizeof(topic) - 1;
	/* per-delivery properties */
	uint8_t pre[32];
	struct moat_pw w;
	moat_pw_init(&w, pre, sizeof(pre));
	moat_pw_u32(&w, PROP_MESSAGE_EXPIRY, 99);
	moat_pw_u16(&w, PROP_TOPIC_ALIAS, 4);
	/* the message's own, as on the wire */
	struct bb msg = {.n = 0};
	pp_u8(&msg, PROP_PAYLOAD_FORMAT, 1);
	pp_pair(&msg, "k", "v");
	pp_str(&msg, PROP_CONTENT_TYPE, "t/p");
	static const size_t payload_lens[] = {0, 1, 90, 200, 20000};
	static uint8_t payload[20000];
	for (size_t i = 0; i < sizeof(payload); i++)
		payload[i] = (uint8_t)(i * 7);
	for (uint8_t qos = 0; qos <= 2; qos++) {
		for (size_t pi = 0; pi < MOAT_ARRAY_LEN(payload_lens); pi++) {
			for (int topic_on = 0; topic_on < 2; topic_on++) {
				size_t tl = topic_on ? tlen : 0;
				size_t pl = payload_lens[pi];
				bool retain = pi & 1, dup = qos && (pi & 2);
				size_t n = moat_mqtt5_publish_size(
					tl, w.len + msg.n, pl, qos);
				assert_true(n > 0);
				uint8_t *out = moat_malloc(n);
				assert_non_null(out);
				assert_int_equal(
					moat_mqtt5_publish_encode(
						out, (const uint8_t *)topic, tl,
						w.p, w.len, msg.d, msg.n,
						payload, pl, qos, retain, dup,
						qos ? 0x0A0B : 0),
					n);
				uint8_t tf;
				uint32_t rem;
				size_t hl;
				assert_int_equal(moat_mqtt_fixed_header(
							 out, n, &tf, &rem, &hl),
						 MOAT_OK);
				assert_int_equal(hl + rem, n);
				assert_int_equal(tf >> 4, MQTT_PUBLISH);
				uint8_t *body = heap(out + hl, rem);
				struct moat_mqtt_publish5 m;
				assert_int_equal(
					moat_mqtt_decode_publish_v(
						tf & 0x0F, body, rem, 5, &m),
					MOAT_OK);
				assert_bytes(m.p.topic, topic, tl);
				assert_int_equal(m.p.qos, qos);
				assert_int_equal(m.p.retain, retain);
				assert_int_equal(m.p.dup, dup);
				assert_int_equal(m.p.packet_id,
						 qos ? 0x0A0B : 0);
				assert_bytes(m.p.payload, payload, pl);
				assert_int_equal(m.props.message_expiry, 99);
				assert_int_equal(m.props.topic_alias, 4);
				assert_int_equal(m.props.payload_format, 1);
				assert_bytes_str(m.props.content_type, "t/p");
				assert_int_equal(m.props.n_user, 1);
				assert_int_equal(m.props.raw.len,
						 w.len + msg.n);
				/* pre first, then the message's own */
				assert_memory_equal(m.props.raw.p, pre, w.len);
				assert_memory_equal(m.props.raw.p + w.len,
						    msg.d, msg.n);
				moat_free(body);
				moat_free(out);
			}
		}
	}
}

/* Subscription Identifiers are for server-to-client PUBLISH only: the
 * encoder writes them, the property reader counts them, and the client-
 * side decoder refuses them. */
static void test_publish5_subscription_ids(void **state)
{
	(void)state;
	uint8_t pre[32];
	struct moat_pw w;
	moat_pw_init(&w, pre, sizeof(pre));
	moat_pw_varint(&w, PROP_SUBSCRIPTION_ID, 1);
	moat_pw_varint(&w, PROP_SUBSCRIPTION_ID, 268435455);
	size_t n = moat_mqtt5_publish_size(1, w.len, 1, 1);
	assert_int_equal(n, 1 + 1 + (2 + 1 + 2 + 1 + 7 + 1));
	uint8_t out[32];
	assert_int_equal(moat_mqtt5_publish_encode(out, (const uint8_t *)"t",
						   1, w.p, w.len, NULL, 0,
						   (const uint8_t *)"x", 1, 1,
						   false, false, 3),
			 n);
	static const uint8_t want[] = {0x32, 0x0E, 0x00, 0x01, 't',  0x00,
				       0x03, 0x07, 0x0B, 0x01, 0x0B, 0xFF,
				       0xFF, 0xFF, 0x7F, 'x'};
	assert_int_equal(n, sizeof(want));
	assert_memory_equal(out, want, n);
	uint8_t *body = heap(out + 2, n - 2);
	struct moat_rd rd;
	struct moat_mqtt_props p;
	moat_rd_init(&rd, body, n - 2);
	rd.pos = 5;
	assert_int_equal(moat_mqtt_props_read(&rd, PCTX_PUBLISH, &p), MOAT_OK);
	assert_int_equal(p.n_subscription_ids, 2);
	assert_int_equal(p.subscription_id, 268435455);
	struct moat_mqtt_publish5 m;
	assert_int_equal(moat_mqtt_decode_publish_v(0x02, body, n - 2, 5, &m),
			 MOAT_EPROTO);
	moat_free(body);
}

static void test_rc_names(void **state)
{
	(void)state;
	assert_string_equal(moat_mqtt_rc_name(0x00), "Success");
	assert_string_equal(moat_mqtt_rc_name(0x04),
			    "Disconnect with Will Message");
	assert_string_equal(moat_mqtt_rc_name(0x81), "Malformed Packet");
	assert_string_equal(moat_mqtt_rc_name(0x82), "Protocol Error");
	assert_string_equal(moat_mqtt_rc_name(0x87), "Not authorized");
	assert_string_equal(moat_mqtt_rc_name(0x8E), "Session taken over");
	assert_string_equal(moat_mqtt_rc_name(0x97), "Quota exceeded");
	assert_string_equal(moat_mqtt_rc_name(0xA2),
			    "Wildcard Subscriptions not supported");
	assert_string_equal(moat_mqtt_rc_name(0x03), "unknown reason code");
	assert_string_equal(moat_mqtt_rc_name(0xA3), "unknown reason code");
	assert_string_equal(moat_mqtt_rc_name(0xFF), "unknown reason code");
	/* every code of §2.4 has a name */
	static const uint8_t all[] = {
		0x00, 0x01, 0x02, 0x04, 0x10, 0x11, 0x18, 0x19, 0x80, 0x81,
		0x82, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89, 0x8A, 0x8B,
		0x8C, 0x8D, 0x8E, 0x8F, 0x90, 0x91, 0x92, 0x93, 0x94, 0x95,
		0x96, 0x97, 0x98, 0x99, 0x9A, 0x9B, 0x9C, 0x9D, 0x9E, 0x9F,
		0xA0, 0xA1, 0xA2};
	size_t named = 0;
	for (unsigned rc = 0; rc < 256; rc++) {
		bool known = memchr(all, (int)rc, sizeof(all)) != NULL;
		bool has = strcmp(moat_mqtt_rc_name((uint8_t)rc),
				  "unknown reason code") != 0;
		if (known != has)
			fail_msg("reason code 0x%02x: named %d", rc, has);
		named += has;
	}
	assert_int_equal(named, sizeof(all));
}

/* Client-side v5 encoders round-trip through the server-side decoders. */
static void test_client_encoders_roundtrip(void **state)
{
	(void)state;
	struct moat_buf b;
	moat_buf_init(&b, 4096);
	/* CONNECT: Session Expiry 60, will with Will Delay 5 */
	const uint8_t cp[] = {PROP_SESSION_EXPIRY, 0, 0, 0, 60};
	const uint8_t wp[] = {PROP_WILL_DELAY, 0, 0, 0, 5};
	struct moat_bytes cpb = {cp, sizeof(cp)}, wpb = {wp, sizeof(wp)};
	struct moat_mqtt_connect_opts o = {
		.proto_level = MQTT_PROTO_V5, .keepalive = 30,
		.client_id = "c5", .will_topic = "w/t",
		.will_payload = (const uint8_t *)"bye", .will_payload_len = 3,
		.will_qos = 1, .props = &cpb, .will_props = &wpb};
	assert_int_equal(moat_mqtt_connect_encode(&b, &o), MOAT_OK);
	uint8_t tf;
	uint32_t rl;
	size_t hl;
	assert_int_equal(moat_mqtt_fixed_header(b.data, b.len, &tf, &rl, &hl),
			 MOAT_OK);
	assert_int_equal(hl + rl, b.len);
	struct moat_mqtt_connect5 c5;
	uint8_t crc;
	assert_int_equal(moat_mqtt_decode_connect_v(b.data + hl, rl, true, &c5,
						    &crc),
			 MOAT_OK);
	assert_int_equal(c5.c.proto_level, 5);
	assert_int_equal(c5.props.session_expiry, 60);
	assert_int_equal(c5.will_props.will_delay, 5);
	assert_true(moat_bytes_eq_str(c5.c.will_topic, "w/t"));
	assert_true(moat_bytes_eq_str(c5.c.client_id, "c5"));
	/* SUBSCRIBE with options and a Subscription Identifier */
	moat_buf_consume(&b, moat_buf_used(&b));
	const char *filters[] = {"a/#", "b"};
	const uint8_t opts[] = {0x2D, 0x00}; /* RH 2, RAP, NL, QoS 1 */
	const uint8_t sp[] = {PROP_SUBSCRIPTION_ID, 9};
	struct moat_bytes spb = {sp, sizeof(sp)};
	assert_int_equal(moat_mqtt5_sub_encode(&b, MQTT_SUBSCRIBE, 7, filters,
					       opts, 2, &spb),
			 MOAT_OK);
	assert_int_equal(moat_mqtt_fixed_header(b.data, b.len, &tf, &rl, &hl),
			 MOAT_OK);
	assert_int_equal(tf, 0x82);
	struct moat_rd rd;
	uint16_t id;
	struct moat_mqtt_props props;
	assert_int_equal(moat_mqtt_decode_sub_start_v(b.data + hl, rl, 5, true,
						      &rd, &id, &props),
			 MOAT_OK);
	assert_int_equal(id, 7);
	assert_int_equal(props.subscription_id, 9);
	struct moat_bytes f;
	struct moat_sub_opts so;
	assert_int_equal(moat_mqtt_decode_sub_next_v(&rd, 5, &f, &so), MOAT_OK);
	assert_true(moat_bytes_eq_str(f, "a/#"));
	assert_true(so.no_local && so.retain_as_published);
	assert_int_equal(so.qos, 1);
	assert_int_equal(so.retain_handling, 2);
	/* DISCONNECT 0x04 with Session Expiry 0 */
	moat_buf_consume(&b, moat_buf_used(&b));
	const uint8_t dp[] = {PROP_SESSION_EXPIRY, 0, 0, 0, 0};
	struct moat_bytes dpb = {dp, sizeof(dp)};
	assert_int_equal(moat_mqtt5_disconnect_encode(&b, 0x04, &dpb), MOAT_OK);
	assert_int_equal(moat_mqtt_fixed_header(b.data, b.len, &tf, &rl, &hl),
			 MOAT_OK);
	uint8_t reason;
	assert_int_equal(moat_mqtt_decode_disconnect_v(b.data + hl, rl, 5,
						       &reason, &props),
			 MOAT_OK);
	assert_int_equal(reason, 0x04);
	assert_true(moat_props_has(&props, PROP_SESSION_EXPIRY));
	moat_buf_cleanup(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_rd_varint_boundaries),
		T(test_props_every_id_allowed_context),
		T(test_props_disallowed_context_malformed),
		T(test_props_unknown_id_malformed),
		T(test_props_duplicates_proto_error),
		T(test_props_user_property_repeated_in_order),
		T(test_props_subscription_id),
		T(test_props_protocol_error_values),
		T(test_props_malformed_precedence),
		T(test_props_invalid_utf8),
		T(test_props_length_errors),
		T(test_props_truncation_every_offset),
		T(test_connect_v5_full),
		T(test_connect_v5_not_allowed),
		T(test_connect_v5_password_without_username),
		T(test_connect_v_311_unchanged),
		T(test_connect_v5_property_errors),
		T(test_connect_v5_truncated_every_offset),
		T(test_publish_v5_properties),
		T(test_publish_v5_topic_alias_and_errors),
		T(test_publish_v5_truncated_every_offset),
		T(test_ack_v5_forms),
		T(test_subscribe_v5_options),
		T(test_subscribe_options_every_byte),
		T(test_subscribe_v5_start_errors),
		T(test_subscribe_v5_truncated),
		T(test_disconnect_v5),
		T(test_auth),
		T(test_pw_writers_exact_bytes),
		T(test_pw_overflow),
		T(test_pw_varint_out_of_range),
		T(test_connack5_encode),
		T(test_ack5_encode),
		T(test_suback5_encode),
		T(test_disconnect_auth5_encode),
		T(test_encoders_refuse_overflowed_props),
		T(test_encoders_enomem),
		T(test_publish5_size),
		T(test_publish5_roundtrip),
		T(test_publish5_subscription_ids),
		T(test_rc_names),
		T(test_client_encoders_roundtrip),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
