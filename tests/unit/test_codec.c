/* Unit tests for the MQTT 3.1.1 wire codec (src/codec).
 *
 * Decoders are always fed exact-size heap copies of the input so that
 * AddressSanitizer reports any read past the end.  Test names carry the
 * spec conformance statement they check where there is one. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "codec/mqtt_codec.h"

#include "test_util.h"

/* ---- byte builder ------------------------------------------------------ */

struct bb {
	uint8_t d[1024];
	size_t n;
};

static void bb_raw(struct bb *b, const void *p, size_t n)
{
	assert_true(b->n + n <= sizeof(b->d));
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

static void bb_bin(struct bb *b, const void *p, size_t n)
{
	bb_u16(b, (uint16_t)n);
	bb_raw(b, p, n);
}

static void bb_str(struct bb *b, const char *s)
{
	bb_bin(b, s, strlen(s));
}

static void assert_bytes(struct moat_bytes got, const void *want, size_t n)
{
	assert_int_equal(got.len, n);
	if (n)
		assert_memory_equal(got.p, want, n);
}

#define assert_bytes_str(got, s) assert_bytes((got), (s), strlen(s))

/* ---- fixed header / varint ------------------------------------------- */

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
	{321, {0xC1, 0x02}, 2},
	{16383, {0xFF, 0x7F}, 2},
	{16384, {0x80, 0x80, 0x01}, 3},
	{2097151, {0xFF, 0xFF, 0x7F}, 3},
	{2097152, {0x80, 0x80, 0x80, 0x01}, 4},
	{268435455, {0xFF, 0xFF, 0xFF, 0x7F}, 4},
};

static void test_varint_encode(void **state)
{
	(void)state;
	for (size_t i = 0; i < MOAT_ARRAY_LEN(varints); i++) {
		const struct varint_case *c = &varints[i];
		uint8_t out[8];
		memset(out, 0xAA, sizeof(out));
		assert_int_equal(moat_mqtt_varint_size(c->value), c->n);
		assert_int_equal(moat_mqtt_varint_write(out, c->value), c->n);
		assert_memory_equal(out, c->enc, c->n);
		assert_int_equal(out[c->n], 0xAA); /* no over-write */
	}
}

static void test_fixed_header_boundaries(void **state)
{
	(void)state;
	for (size_t i = 0; i < MOAT_ARRAY_LEN(varints); i++) {
		const struct varint_case *c = &varints[i];
		struct bb b = {.n = 0};
		bb_u8(&b, 0x32);
		bb_raw(&b, c->enc, c->n);
		for (int extra = 0; extra < 2; extra++) {
			if (extra)
				bb_raw(&b, "\x00\x01xyz", 5); /* body bytes */
			uint8_t *h = heap(b.d, b.n);
			uint8_t tf = 0;
			uint32_t rem = 0;
			size_t hl = 0;
			assert_int_equal(
				moat_mqtt_fixed_header(h, b.n, &tf, &rem, &hl),
				MOAT_OK);
			assert_int_equal(tf, 0x32);
			assert_int_equal(rem, c->value);
			assert_int_equal(hl, 1 + c->n);
			moat_free(h);
		}
	}
}

static void test_fixed_header_truncated_eagain(void **state)
{
	(void)state;
	for (size_t i = 0; i < MOAT_ARRAY_LEN(varints); i++) {
		const struct varint_case *c = &varints[i];
		uint8_t full[5] = {0x10};
		memcpy(full + 1, c->enc, c->n);
		for (size_t len = 0; len < 1 + c->n; len++) {
			uint8_t *h = heap(full, len);
			uint8_t tf = 0x77;
			uint32_t rem = 0x7777;
			size_t hl = 0x77;
			assert_int_equal(
				moat_mqtt_fixed_header(h, len, &tf, &rem, &hl),
				MOAT_EAGAIN);
			/* outputs untouched on EAGAIN */
			assert_int_equal(tf, 0x77);
			assert_int_equal(rem, 0x7777);
			assert_int_equal(hl, 0x77);
			moat_free(h);
		}
	}
}

static void test_fixed_header_five_byte_varint_malformed(void **state)
{
	(void)state;
	uint8_t tf;
	uint32_t rem;
	size_t hl;
	static const uint8_t five[] = {0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F};
	static const uint8_t four_cont[] = {0x30, 0x80, 0x80, 0x80, 0x80};
	static const uint8_t three_cont[] = {0x30, 0x80, 0x80, 0x80};
	uint8_t *h = heap(five, sizeof(five));
	assert_int_equal(moat_mqtt_fixed_header(h, sizeof(five), &tf, &rem, &hl),
			 MOAT_EMALFORMED);
	moat_free(h);
	/* the fifth byte need not even have arrived */
	h = heap(four_cont, sizeof(four_cont));
	assert_int_equal(
		moat_mqtt_fixed_header(h, sizeof(four_cont), &tf, &rem, &hl),
		MOAT_EMALFORMED);
	moat_free(h);
	/* three continuation bytes: a fourth may still come */
	h = heap(three_cont, sizeof(three_cont));
	assert_int_equal(
		moat_mqtt_fixed_header(h, sizeof(three_cont), &tf, &rem, &hl),
		MOAT_EAGAIN);
	moat_free(h);
}

/* ---- fixed header flags [MQTT-2.2.2-1] [MQTT-2.2.2-2] ----------------- */

static void test_check_flags_every_type(void **state)
{
	(void)state;
	/* required flags per type; -1 = reserved type, -2 = any (PUBLISH) */
	static const int required[16] = {
		-1, /* 0 reserved */
		0,  /* CONNECT */
		0,  /* CONNACK */
		-2, /* PUBLISH: checked by its decoder */
		0,  /* PUBACK */
		0,  /* PUBREC */
		2,  /* PUBREL */
		0,  /* PUBCOMP */
		2,  /* SUBSCRIBE */
		0,  /* SUBACK */
		2,  /* UNSUBSCRIBE */
		0,  /* UNSUBACK */
		0,  /* PINGREQ */
		0,  /* PINGRESP */
		0,  /* DISCONNECT */
		-1, /* 15 reserved (AUTH in MQTT 5) */
	};
	size_t ok = 0;
	for (unsigned type = 0; type < 16; type++) {
		for (unsigned flags = 0; flags < 16; flags++) {
			int want;
			if (required[type] == -1)
				want = MOAT_EMALFORMED;
			else if (required[type] == -2)
				want = MOAT_OK;
			else
				want = (int)flags == required[type]
					       ? MOAT_OK
					       : MOAT_EMALFORMED;
			int got = moat_mqtt_check_flags(
				(uint8_t)((type << 4) | flags));
			if (got != want)
				fail_msg("type %u flags 0x%x: got %d want %d",
					 type, flags, got, want);
			ok += got == MOAT_OK;
		}
	}
	/* 16 PUBLISH + 13 other types with exactly one valid flag value */
	assert_int_equal(ok, 16 + 13);
	/* a few spelled out */
	assert_int_equal(moat_mqtt_check_flags(0x10), MOAT_OK);
	assert_int_equal(moat_mqtt_check_flags(0x11), MOAT_EMALFORMED);
	assert_int_equal(moat_mqtt_check_flags(0x62), MOAT_OK);
	assert_int_equal(moat_mqtt_check_flags(0x60), MOAT_EMALFORMED);
	assert_int_equal(moat_mqtt_check_flags(0x82), MOAT_OK);
	assert_int_equal(moat_mqtt_check_flags(0x80), MOAT_EMALFORMED);
	assert_int_equal(moat_mqtt_check_flags(0xA2), MOAT_OK);
	assert_int_equal(moat_mqtt_check_flags(0xA3), MOAT_EMALFORMED);
	assert_int_equal(moat_mqtt_check_flags(0xC0), MOAT_OK);
	assert_int_equal(moat_mqtt_check_flags(0xE0), MOAT_OK);
	assert_int_equal(moat_mqtt_check_flags(0xE8), MOAT_EMALFORMED);
	assert_int_equal(moat_mqtt_check_flags(0x00), MOAT_EMALFORMED);
	assert_int_equal(moat_mqtt_check_flags(0xF0), MOAT_EMALFORMED);
	assert_int_equal(moat_mqtt_check_flags(0x3F), MOAT_OK);
}

/* ---- CONNECT -------------------------------------------------------------- */

struct conn_spec {
	const char *name;
	uint8_t level;
	uint8_t flags;
	uint16_t keepalive;
	const char *client_id;    /* NULL: omit */
	const char *will_topic;   /* NULL: omit */
	const char *will_payload; /* with will_payload_len */
	size_t will_payload_len;
	const char *username; /* NULL: omit */
	const char *password; /* NULL: omit */
	size_t password_len;
};

static void build_connect(struct bb *b, const struct conn_spec *s)
{
	b->n = 0;
	bb_str(b, s->name);
	bb_u8(b, s->level);
	bb_u8(b, s->flags);
	bb_u16(b, s->keepalive);
	if (s->client_id)
		bb_str(b, s->client_id);
	if (s->will_topic) {
		bb_str(b, s->will_topic);
		bb_bin(b, s->will_payload, s->will_payload_len);
	}
	if (s->username)
		bb_str(b, s->username);
	if (s->password)
		bb_bin(b, s->password, s->password_len);
}

/* user | pass | will retain | will qos 2 | will | clean session */
#define FULL_FLAGS 0xF6

static const struct conn_spec full_connect = {
	"MQTT", 4, FULL_FLAGS, 60, "client-1", "will/topic",
	"\x00\xff" "bye", 5, "alice", "s3cr\x00t", 6,
};

static int decode_connect_bb(const struct bb *b, struct moat_mqtt_connect *c,
			     uint8_t *crc)
{
	uint8_t *h = heap(b->d, b->n);
	int rc = moat_mqtt_decode_connect(h, b->n, c, crc);
	moat_free(h);
	return rc; /* fields of *c must not be dereferenced after this */
}

static void test_connect_valid_311_minimal(void **state)
{
	(void)state;
	static const uint8_t body[] = {0x00, 0x04, 'M', 'Q', 'T', 'T', 0x04,
				       0x02, 0x00, 0x3C, 0x00, 0x03, 'a', 'b',
				       'c'};
	uint8_t *h = heap(body, sizeof(body));
	struct moat_mqtt_connect c;
	uint8_t crc = 0x55;
	assert_int_equal(moat_mqtt_decode_connect(h, sizeof(body), &c, &crc),
			 MOAT_OK);
	assert_int_equal(crc, MQTT_CONNACK_ACCEPTED);
	assert_bytes_str(c.proto_name, "MQTT");
	assert_int_equal(c.proto_level, 4);
	assert_true(c.clean_session);
	assert_false(c.will_flag);
	assert_int_equal(c.will_qos, 0);
	assert_false(c.will_retain);
	assert_false(c.has_username);
	assert_false(c.has_password);
	assert_int_equal(c.keepalive, 60);
	assert_bytes_str(c.client_id, "abc");
	assert_int_equal(c.will_topic.len, 0);
	assert_int_equal(c.username.len, 0);
	assert_int_equal(c.password.len, 0);
	moat_free(h);
}

static void test_connect_valid_31_mqisdp(void **state)
{
	(void)state;
	struct conn_spec s = {.name = "MQIsdp",
			      .level = 3,
			      .flags = 0x00,
			      .keepalive = 0xFFFF,
			      .client_id = "legacy"};
	struct bb b;
	build_connect(&b, &s);
	uint8_t *h = heap(b.d, b.n);
	struct moat_mqtt_connect c;
	uint8_t crc;
	assert_int_equal(moat_mqtt_decode_connect(h, b.n, &c, &crc), MOAT_OK);
	assert_bytes_str(c.proto_name, "MQIsdp");
	assert_int_equal(c.proto_level, MQTT_PROTO_V31);
	assert_false(c.clean_session);
	assert_int_equal(c.keepalive, 0xFFFF);
	assert_bytes_str(c.client_id, "legacy");
	moat_free(h);
}

static void test_connect_full_will_user_pass(void **state)
{
	(void)state;
	struct bb b;
	build_connect(&b, &full_connect);
	uint8_t *h = heap(b.d, b.n);
	struct moat_mqtt_connect c;
	uint8_t crc;
	assert_int_equal(moat_mqtt_decode_connect(h, b.n, &c, &crc), MOAT_OK);
	assert_int_equal(crc, 0);
	assert_true(c.clean_session);
	assert_true(c.will_flag);
	assert_int_equal(c.will_qos, 2);
	assert_true(c.will_retain);
	assert_true(c.has_username);
	assert_true(c.has_password);
	assert_bytes_str(c.client_id, "client-1");
	assert_bytes_str(c.will_topic, "will/topic");
	assert_bytes(c.will_payload, "\x00\xff" "bye", 5);
	assert_bytes_str(c.username, "alice");
	assert_bytes(c.password, "s3cr\x00t", 6); /* binary, not UTF-8 */
	/* the borrowed slices point into the body */
	assert_true(c.client_id.p > h && c.password.p + 6 == h + b.n);
	moat_free(h);
}

static void test_connect_empty_client_id_accepted_by_codec(void **state)
{
	(void)state;
	/* [MQTT-3.1.3-6]/[MQTT-3.1.3-8] are the broker's decision */
	struct conn_spec s = {"MQTT", 4, 0x02, 0, "", NULL, NULL, 0,
			      NULL, NULL, 0};
	struct bb b;
	build_connect(&b, &s);
	struct moat_mqtt_connect c;
	uint8_t crc;
	assert_int_equal(decode_connect_bb(&b, &c, &crc), MOAT_OK);
	assert_int_equal(c.client_id.len, 0);
}

/* [MQTT-3.1.2-1]: not MQTT at all -> close without CONNACK (rc 0xFF) */
static void test_connect_bad_protocol_name(void **state)
{
	(void)state;
	static const char *const names[] = {"MQTX", "mqtt", "MQT", "MQTTT",
					    "", "MQIsdp\x00", "HTTP"};
	for (size_t i = 0; i < MOAT_ARRAY_LEN(names); i++) {
		struct conn_spec s = {names[i], 4, 0x02, 60, "c",  NULL,
				      NULL,     0, NULL, NULL, 0};
		struct bb b;
		build_connect(&b, &s);
		if (i == 5) { /* embedded NUL: length 7 */
			b.n = 0;
			bb_bin(&b, "MQIsdp\x00", 7);
			bb_raw(&b, "\x03\x02\x00\x3c\x00\x01" "c", 7);
		}
		struct moat_mqtt_connect c;
		uint8_t crc = 0;
		assert_int_equal(decode_connect_bb(&b, &c, &crc), MOAT_EPROTO);
		assert_int_equal(crc, 0xFF);
	}
}

/* [MQTT-3.1.2-2]: right name, unsupported level -> CONNACK 0x01 */
static void test_connect_unacceptable_level(void **state)
{
	(void)state;
	static const struct {
		const char *name;
		uint8_t level;
	} t[] = {{"MQTT", 5}, {"MQTT", 3}, {"MQTT", 0}, {"MQTT", 255},
		 {"MQIsdp", 4}, {"MQIsdp", 5}};
	for (size_t i = 0; i < MOAT_ARRAY_LEN(t); i++) {
		struct conn_spec s = {t[i].name, t[i].level, 0x02, 60, "c",
				      NULL,      NULL,       0,    NULL, NULL,
				      0};
		struct bb b;
		build_connect(&b, &s);
		struct moat_mqtt_connect c;
		uint8_t crc = 0;
		assert_int_equal(decode_connect_bb(&b, &c, &crc), MOAT_EPROTO);
		assert_int_equal(crc, MQTT_CONNACK_BAD_PROTOCOL);
	}
	/* MQTT 5 CONNECT (with properties) is refused before it is parsed */
	static const uint8_t v5[] = {0, 4, 'M', 'Q', 'T', 'T', 5, 0x02, 0, 60,
				     0x05, 0x11, 0, 0, 0, 10, 0, 0};
	uint8_t *h = heap(v5, sizeof(v5));
	struct moat_mqtt_connect c;
	uint8_t crc = 0;
	assert_int_equal(moat_mqtt_decode_connect(h, sizeof(v5), &c, &crc),
			 MOAT_EPROTO);
	assert_int_equal(crc, MQTT_CONNACK_BAD_PROTOCOL);
	moat_free(h);
}

/* [MQTT-3.1.2-3] */
static void test_connect_reserved_flag_mqtt_3_1_2_3(void **state)
{
	(void)state;
	struct conn_spec s = full_connect;
	s.flags = FULL_FLAGS | 0x01;
	struct bb b;
	build_connect(&b, &s);
	struct moat_mqtt_connect c;
	uint8_t crc;
	assert_int_equal(decode_connect_bb(&b, &c, &crc), MOAT_EMALFORMED);
	s = (struct conn_spec){"MQTT", 4, 0x01, 0, "x", NULL, NULL, 0,
			       NULL,   NULL, 0};
	build_connect(&b, &s);
	assert_int_equal(decode_connect_bb(&b, &c, &crc), MOAT_EMALFORMED);
}

/* [MQTT-3.1.2-14] */
static void test_connect_will_qos3_mqtt_3_1_2_14(void **state)
{
	(void)state;
	struct conn_spec s = full_connect;
	s.flags = 0x80 | 0x40 | 0x18 | 0x04 | 0x02;
	struct bb b;
	build_connect(&b, &s);
	struct moat_mqtt_connect c;
	uint8_t crc;
	assert_int_equal(decode_connect_bb(&b, &c, &crc), MOAT_EMALFORMED);
}

/* [MQTT-3.1.2-11] [MQTT-3.1.2-13] [MQTT-3.1.2-15] */
static void test_connect_will_flag0_with_qos_or_retain(void **state)
{
	(void)state;
	static const uint8_t bad[] = {0x08, 0x10, 0x18, 0x20, 0x28, 0x38};
	for (size_t i = 0; i < MOAT_ARRAY_LEN(bad); i++) {
		struct conn_spec s = {"MQTT", 4, (uint8_t)(bad[i] | 0x02), 0,
				      "x",    NULL, NULL, 0, NULL, NULL, 0};
		struct bb b;
		build_connect(&b, &s);
		struct moat_mqtt_connect c;
		uint8_t crc;
		assert_int_equal(decode_connect_bb(&b, &c, &crc),
				 MOAT_EMALFORMED);
	}
	/* with the will flag, qos 1 + retain is fine */
	struct conn_spec s = {"MQTT", 4, 0x2E, 0, "x", "w", "p", 1,
			      NULL,   NULL, 0};
	struct bb b;
	build_connect(&b, &s);
	uint8_t *h = heap(b.d, b.n);
	struct moat_mqtt_connect c;
	uint8_t crc;
	assert_int_equal(moat_mqtt_decode_connect(h, b.n, &c, &crc), MOAT_OK);
	assert_int_equal(c.will_qos, 1);
	assert_true(c.will_retain);
	assert_bytes_str(c.will_topic, "w");
	assert_bytes_str(c.will_payload, "p");
	moat_free(h);
}

/* [MQTT-3.1.2-22] */
static void test_connect_password_without_username(void **state)
{
	(void)state;
	struct conn_spec s = {"MQTT", 4, 0x42, 0, "x", NULL, NULL, 0,
			      NULL,   "pw", 2};
	struct bb b;
	build_connect(&b, &s);
	struct moat_mqtt_connect c;
	uint8_t crc;
	assert_int_equal(decode_connect_bb(&b, &c, &crc), MOAT_EMALFORMED);
	/* username without password is fine */
	s = (struct conn_spec){"MQTT", 4, 0x82, 0, "x", NULL, NULL, 0,
			       "u",    NULL, 0};
	build_connect(&b, &s);
	assert_int_equal(decode_connect_bb(&b, &c, &crc), MOAT_OK);
	assert_true(c.has_username);
	assert_false(c.has_password);
}

/* A will topic is a topic name: no wildcards, not empty [MQTT-3.1.2-9]
 * [MQTT-3.3.2-2].  The connection is closed without a CONNACK, so
 * *connack_rc must not say "accepted". */
static void test_connect_will_topic_wildcard(void **state)
{
	(void)state;
	static const char *const topics[] = {"a/+", "#", "a/#", "+", ""};
	for (size_t i = 0; i < MOAT_ARRAY_LEN(topics); i++) {
		struct conn_spec s = {"MQTT", 4,         0x06, 0, "x", topics[i],
				      "p",    1,         NULL, NULL, 0};
		struct bb b;
		build_connect(&b, &s);
		struct moat_mqtt_connect c;
		uint8_t crc = 0x55;
		int rc = decode_connect_bb(&b, &c, &crc);
		assert_int_equal(rc, MOAT_EPROTO);
		/* EPROTO promises a CONNACK code or 0xFF (no CONNACK) */
		if (crc != 0xFF)
			fail_msg("will topic '%s': EPROTO with connack_rc "
				 "0x%02x (would send CONNACK 'accepted')",
				 topics[i], crc);
	}
}

static void test_connect_invalid_utf8_fields(void **state)
{
	(void)state;
	struct conn_spec s = {"MQTT", 4, 0x02, 0, "a\xC0\x80", NULL, NULL, 0,
			      NULL,   NULL, 0};
	struct bb b;
	build_connect(&b, &s);
	struct moat_mqtt_connect c;
	uint8_t crc;
	assert_int_equal(decode_connect_bb(&b, &c, &crc), MOAT_EUTF8);
	s = (struct conn_spec){"MQTT", 4, 0x06, 0, "x", "w\xED\xA0\x80", "p",
			       1,      NULL, NULL, 0};
	build_connect(&b, &s);
	assert_int_equal(decode_connect_bb(&b, &c, &crc), MOAT_EUTF8);
	s = (struct conn_spec){"MQTT", 4, 0x82, 0, "x", NULL, NULL, 0,
			       "\xFF", NULL, 0};
	build_connect(&b, &s);
	assert_int_equal(decode_connect_bb(&b, &c, &crc), MOAT_EUTF8);
	/* client id with U+0000 */
	b.n = 0;
	bb_str(&b, "MQTT");
	bb_raw(&b, "\x04\x02\x00\x00", 4);
	bb_bin(&b, "a\x00", 2);
	assert_int_equal(decode_connect_bb(&b, &c, &crc), MOAT_EUTF8);
}

static void test_connect_trailing_bytes(void **state)
{
	(void)state;
	struct bb b;
	build_connect(&b, &full_connect);
	bb_u8(&b, 0);
	struct moat_mqtt_connect c;
	uint8_t crc;
	assert_int_equal(decode_connect_bb(&b, &c, &crc), MOAT_EMALFORMED);
	/* flags say no password but one is present */
	struct conn_spec s = full_connect;
	s.flags = FULL_FLAGS & (uint8_t)~0x40;
	build_connect(&b, &s);
	assert_int_equal(decode_connect_bb(&b, &c, &crc), MOAT_EMALFORMED);
}

static void test_connect_truncated_every_offset(void **state)
{
	(void)state;
	struct bb b;
	build_connect(&b, &full_connect);
	struct moat_mqtt_connect c;
	uint8_t crc;
	assert_int_equal(decode_connect_bb(&b, &c, &crc), MOAT_OK);
	for (size_t len = 0; len < b.n; len++) {
		/* heap copy of exactly len bytes */
		uint8_t *h = heap(b.d, len);
		crc = 0x55;
		int rc = moat_mqtt_decode_connect(h, len, &c, &crc);
		moat_free(h);
		if (rc != MOAT_EMALFORMED)
			fail_msg("truncated at %zu of %zu: rc %s", len, b.n,
				 moat_err_name(rc));
	}
	/* truncation works the same for 3.1 */
	struct conn_spec s = full_connect;
	s.name = "MQIsdp";
	s.level = 3;
	build_connect(&b, &s);
	for (size_t len = 0; len < b.n; len++) {
		uint8_t *h = heap(b.d, len);
		int rc = moat_mqtt_decode_connect(h, len, &c, &crc);
		moat_free(h);
		assert_int_equal(rc, MOAT_EMALFORMED);
	}
}

/* ---- PUBLISH -------------------------------------------------------------- */

static int decode_pub(uint8_t flags, const struct bb *b,
		      struct moat_mqtt_publish *p, uint8_t **keep)
{
	*keep = heap(b->d, b->n);
	return moat_mqtt_decode_publish(flags, *keep, b->n, p);
}

static void test_publish_qos0(void **state)
{
	(void)state;
	struct bb b = {.n = 0};
	bb_str(&b, "a/b");
	bb_raw(&b, "hi", 2);
	struct moat_mqtt_publish p;
	uint8_t *h;
	assert_int_equal(decode_pub(0x00, &b, &p, &h), MOAT_OK);
	assert_false(p.dup);
	assert_int_equal(p.qos, 0);
	assert_false(p.retain);
	assert_bytes_str(p.topic, "a/b");
	assert_int_equal(p.packet_id, 0);
	assert_bytes_str(p.payload, "hi");
	moat_free(h);
	/* a QoS 0 payload that looks like a packet id is still payload */
	b.n = 0;
	bb_str(&b, "t");
	bb_raw(&b, "\x00\x01", 2);
	assert_int_equal(decode_pub(0x01, &b, &p, &h), MOAT_OK);
	assert_true(p.retain);
	assert_int_equal(p.packet_id, 0);
	assert_bytes(p.payload, "\x00\x01", 2);
	moat_free(h);
}

static void test_publish_qos1_qos2(void **state)
{
	(void)state;
	struct bb b = {.n = 0};
	bb_str(&b, "sport/tennis");
	bb_u16(&b, 0xBEEF);
	bb_raw(&b, "\x00payload\xff", 9);
	struct moat_mqtt_publish p;
	uint8_t *h;
	assert_int_equal(decode_pub(0x0B, &b, &p, &h), MOAT_OK); /* dup q1 r */
	assert_true(p.dup);
	assert_int_equal(p.qos, 1);
	assert_true(p.retain);
	assert_bytes_str(p.topic, "sport/tennis");
	assert_int_equal(p.packet_id, 0xBEEF);
	assert_bytes(p.payload, "\x00payload\xff", 9);
	moat_free(h);
	assert_int_equal(decode_pub(0x04, &b, &p, &h), MOAT_OK); /* q2 */
	assert_false(p.dup);
	assert_int_equal(p.qos, 2);
	assert_false(p.retain);
	assert_int_equal(p.packet_id, 0xBEEF);
	moat_free(h);
}

/* [MQTT-3.3.1-4] */
static void test_publish_qos3_malformed(void **state)
{
	(void)state;
	struct bb b = {.n = 0};
	bb_str(&b, "t");
	bb_u16(&b, 1);
	struct moat_mqtt_publish p;
	uint8_t *h;
	assert_int_equal(decode_pub(0x06, &b, &p, &h), MOAT_EMALFORMED);
	moat_free(h);
	assert_int_equal(decode_pub(0x0F, &b, &p, &h), MOAT_EMALFORMED);
	moat_free(h);
}

/* [MQTT-3.3.1-2] */
static void test_publish_dup_with_qos0_malformed(void **state)
{
	(void)state;
	struct bb b = {.n = 0};
	bb_str(&b, "t");
	struct moat_mqtt_publish p;
	uint8_t *h;
	assert_int_equal(decode_pub(0x08, &b, &p, &h), MOAT_EMALFORMED);
	moat_free(h);
	assert_int_equal(decode_pub(0x09, &b, &p, &h), MOAT_EMALFORMED);
	moat_free(h);
}

/* [MQTT-3.3.2-2] [MQTT-4.7.3-1] */
static void test_publish_bad_topic_names(void **state)
{
	(void)state;
	static const char *const bad[] = {"a/+", "a/#", "+", "#", "sport+",
					  ""};
	for (size_t i = 0; i < MOAT_ARRAY_LEN(bad); i++) {
		for (uint8_t qos = 0; qos <= 1; qos++) {
			struct bb b = {.n = 0};
			bb_str(&b, bad[i]);
			if (qos)
				bb_u16(&b, 7);
			bb_raw(&b, "x", 1);
			struct moat_mqtt_publish p;
			uint8_t *h;
			int rc = decode_pub((uint8_t)(qos << 1), &b, &p, &h);
			moat_free(h);
			if (rc != MOAT_EPROTO)
				fail_msg("topic '%s' qos %u: %s", bad[i], qos,
					 moat_err_name(rc));
		}
	}
}

/* [MQTT-1.5.3-1] [MQTT-1.5.3-2] */
static void test_publish_invalid_utf8_topic(void **state)
{
	(void)state;
	static const struct {
		const char *t;
		size_t n;
	} bad[] = {{"a\xC0\x80", 3}, {"\xED\xA0\x80", 3}, {"a\x00" "b", 3},
		   {"\xFF", 1},      {"a/\xE2\x82", 4}};
	for (size_t i = 0; i < MOAT_ARRAY_LEN(bad); i++) {
		struct bb b = {.n = 0};
		bb_bin(&b, bad[i].t, bad[i].n);
		bb_raw(&b, "x", 1);
		struct moat_mqtt_publish p;
		uint8_t *h;
		assert_int_equal(decode_pub(0x00, &b, &p, &h), MOAT_EUTF8);
		moat_free(h);
	}
	/* payload is binary: anything goes */
	struct bb b = {.n = 0};
	bb_str(&b, "t/\xC3\xA9");
	bb_raw(&b, "\xC0\x80\x00\xFF", 4);
	struct moat_mqtt_publish p;
	uint8_t *h;
	assert_int_equal(decode_pub(0x00, &b, &p, &h), MOAT_OK);
	assert_bytes(p.payload, "\xC0\x80\x00\xFF", 4);
	moat_free(h);
}

/* [MQTT-2.3.1-1] */
static void test_publish_packet_id_zero(void **state)
{
	(void)state;
	struct bb b = {.n = 0};
	bb_str(&b, "t");
	bb_u16(&b, 0);
	bb_raw(&b, "x", 1);
	struct moat_mqtt_publish p;
	uint8_t *h;
	assert_int_equal(decode_pub(0x02, &b, &p, &h), MOAT_EMALFORMED);
	moat_free(h);
	assert_int_equal(decode_pub(0x04, &b, &p, &h), MOAT_EMALFORMED);
	moat_free(h);
}

static void test_publish_zero_length_payload(void **state)
{
	(void)state;
	struct bb b = {.n = 0};
	bb_str(&b, "t");
	struct moat_mqtt_publish p;
	uint8_t *h;
	assert_int_equal(decode_pub(0x01, &b, &p, &h), MOAT_OK);
	assert_int_equal(p.payload.len, 0);
	assert_true(p.retain); /* empty retained = clear retained message */
	moat_free(h);
	bb_u16(&b, 9);
	assert_int_equal(decode_pub(0x02, &b, &p, &h), MOAT_OK);
	assert_int_equal(p.packet_id, 9);
	assert_int_equal(p.payload.len, 0);
	moat_free(h);
}

static void test_publish_truncated(void **state)
{
	(void)state;
	struct bb b = {.n = 0};
	bb_str(&b, "a/b");
	bb_u16(&b, 5);
	bb_raw(&b, "data", 4);
	/* topic (2+3) + id (2) = 7 bytes are mandatory for QoS 1 */
	for (size_t len = 0; len <= b.n; len++) {
		uint8_t *h = heap(b.d, len);
		struct moat_mqtt_publish p;
		int rc = moat_mqtt_decode_publish(0x02, h, len, &p);
		if (len < 7) {
			assert_int_equal(rc, MOAT_EMALFORMED);
		} else {
			assert_int_equal(rc, MOAT_OK);
			assert_int_equal(p.payload.len, len - 7);
		}
		moat_free(h);
	}
	/* QoS 0: topic alone is enough */
	for (size_t len = 0; len < 5; len++) {
		uint8_t *h = heap(b.d, len);
		struct moat_mqtt_publish p;
		assert_int_equal(moat_mqtt_decode_publish(0x00, h, len, &p),
				 MOAT_EMALFORMED);
		moat_free(h);
	}
	/* topic length larger than the body */
	static const uint8_t over[] = {0xFF, 0xFF, 'a'};
	uint8_t *h = heap(over, sizeof(over));
	struct moat_mqtt_publish p;
	assert_int_equal(moat_mqtt_decode_publish(0x00, h, sizeof(over), &p),
			 MOAT_EMALFORMED);
	moat_free(h);
}

/* ---- acks --------------------------------------------------------------- */

static void test_ack_decode(void **state)
{
	(void)state;
	uint16_t id = 0;
	uint8_t *h = heap("\x12\x34", 2);
	assert_int_equal(moat_mqtt_decode_ack(h, 2, &id), MOAT_OK);
	assert_int_equal(id, 0x1234);
	moat_free(h);
	h = heap("\xFF\xFF", 2);
	assert_int_equal(moat_mqtt_decode_ack(h, 2, &id), MOAT_OK);
	assert_int_equal(id, 65535);
	moat_free(h);
	/* [MQTT-2.3.1-1] */
	h = heap("\x00\x00", 2);
	assert_int_equal(moat_mqtt_decode_ack(h, 2, &id), MOAT_EMALFORMED);
	moat_free(h);
	/* remaining length must be exactly 2 */
	static const size_t lens[] = {0, 1, 3, 4};
	for (size_t i = 0; i < MOAT_ARRAY_LEN(lens); i++) {
		h = heap("\x00\x01\x00\x00", lens[i]);
		assert_int_equal(moat_mqtt_decode_ack(h, lens[i], &id),
				 MOAT_EMALFORMED);
		moat_free(h);
	}
}

/* ---- SUBSCRIBE / UNSUBSCRIBE ------------------------------------------- */

static void test_subscribe_iteration(void **state)
{
	(void)state;
	struct bb b = {.n = 0};
	bb_u16(&b, 10);
	bb_str(&b, "a/b");
	bb_u8(&b, 0);
	bb_str(&b, "c/#");
	bb_u8(&b, 1);
	bb_str(&b, "+");
	bb_u8(&b, 2);
	uint8_t *h = heap(b.d, b.n);
	struct moat_rd rd;
	uint16_t id = 0;
	assert_int_equal(moat_mqtt_decode_sub_start(h, b.n, &rd, &id), MOAT_OK);
	assert_int_equal(id, 10);
	static const char *const want_f[] = {"a/b", "c/#", "+"};
	for (size_t i = 0; i < 3; i++) {
		struct moat_bytes f;
		uint8_t qos = 0xEE;
		assert_int_equal(moat_mqtt_decode_sub_next(&rd, &f, &qos),
				 MOAT_OK);
		assert_bytes_str(f, want_f[i]);
		assert_int_equal(qos, i);
	}
	struct moat_bytes f;
	uint8_t qos;
	assert_int_equal(moat_mqtt_decode_sub_next(&rd, &f, &qos),
			 MOAT_ENOTFOUND);
	assert_int_equal(moat_mqtt_decode_sub_next(&rd, &f, &qos),
			 MOAT_ENOTFOUND);
	moat_free(h);
}

/* [MQTT-3.8.3-3] [MQTT-2.3.1-1] */
static void test_subscribe_start_errors(void **state)
{
	(void)state;
	struct moat_rd rd;
	uint16_t id;
	uint8_t *h = heap("\x00\x05", 2);
	assert_int_equal(moat_mqtt_decode_sub_start(h, 2, &rd, &id),
			 MOAT_EPROTO); /* no filters */
	moat_free(h);
	h = heap("\x00\x00\x00\x01" "a\x00", 6);
	assert_int_equal(moat_mqtt_decode_sub_start(h, 6, &rd, &id),
			 MOAT_EMALFORMED); /* packet id 0 */
	moat_free(h);
	h = heap("\x00", 1);
	assert_int_equal(moat_mqtt_decode_sub_start(h, 1, &rd, &id),
			 MOAT_EMALFORMED);
	moat_free(h);
	h = heap("", 0);
	assert_int_equal(moat_mqtt_decode_sub_start(h, 0, &rd, &id),
			 MOAT_EMALFORMED);
	moat_free(h);
}

static int sub_one(uint8_t qos_byte, uint8_t *qos_out)
{
	struct bb b = {.n = 0};
	bb_u16(&b, 1);
	bb_str(&b, "a");
	bb_u8(&b, qos_byte);
	uint8_t *h = heap(b.d, b.n);
	struct moat_rd rd;
	uint16_t id;
	struct moat_bytes f;
	int rc = moat_mqtt_decode_sub_start(h, b.n, &rd, &id);
	assert_int_equal(rc, MOAT_OK);
	rc = moat_mqtt_decode_sub_next(&rd, &f, qos_out);
	moat_free(h);
	return rc;
}

/* Requested QoS 3 is malformed [MQTT-3.8.3-4]. */
static void test_subscribe_qos3_mqtt_3_8_3_4(void **state)
{
	(void)state;
	uint8_t qos = 0;
	assert_int_equal(sub_one(0x03, &qos), MOAT_EMALFORMED);
	for (uint8_t q = 0; q <= 2; q++) {
		assert_int_equal(sub_one(q, &qos), MOAT_OK);
		assert_int_equal(qos, q);
	}
}

/* Reserved bits of the requested-QoS byte [MQTT-3.8.3-4]. */
static void test_subscribe_reserved_qos_bits(void **state)
{
	(void)state;
	static const uint8_t bad[] = {0x04, 0x08, 0x10, 0x40, 0x80,
				      0xFC, 0xFF, 0x81, 0x07};
	for (size_t i = 0; i < MOAT_ARRAY_LEN(bad); i++) {
		struct bb b = {.n = 0};
		bb_u16(&b, 1);
		bb_str(&b, "a");
		bb_u8(&b, bad[i]);
		uint8_t *h = heap(b.d, b.n);
		struct moat_rd rd;
		uint16_t id;
		struct moat_bytes f;
		uint8_t qos;
		assert_int_equal(moat_mqtt_decode_sub_start(h, b.n, &rd, &id),
				 MOAT_OK);
		assert_int_equal(moat_mqtt_decode_sub_next(&rd, &f, &qos),
				 MOAT_EMALFORMED);
		moat_free(h);
	}
}

static void test_subscribe_truncated(void **state)
{
	(void)state;
	struct bb b = {.n = 0};
	bb_u16(&b, 1);
	bb_str(&b, "abc");
	bb_u8(&b, 1);
	/* every cut inside the (filter, qos) pair is malformed */
	for (size_t len = 3; len < b.n; len++) {
		uint8_t *h = heap(b.d, len);
		struct moat_rd rd;
		uint16_t id;
		struct moat_bytes f;
		uint8_t qos;
		assert_int_equal(moat_mqtt_decode_sub_start(h, len, &rd, &id),
				 MOAT_OK);
		assert_int_equal(moat_mqtt_decode_sub_next(&rd, &f, &qos),
				 MOAT_EMALFORMED);
		moat_free(h);
	}
	/* a second pair cut short after a good first one */
	bb_u8(&b, 0);
	uint8_t *h = heap(b.d, b.n);
	struct moat_rd rd;
	uint16_t id;
	struct moat_bytes f;
	uint8_t qos;
	assert_int_equal(moat_mqtt_decode_sub_start(h, b.n, &rd, &id), MOAT_OK);
	assert_int_equal(moat_mqtt_decode_sub_next(&rd, &f, &qos), MOAT_OK);
	assert_bytes_str(f, "abc");
	assert_int_equal(moat_mqtt_decode_sub_next(&rd, &f, &qos),
			 MOAT_EMALFORMED);
	moat_free(h);
}

static void test_subscribe_invalid_utf8_filter(void **state)
{
	(void)state;
	struct bb b = {.n = 0};
	bb_u16(&b, 1);
	bb_bin(&b, "a/\xED\xBF\xBF", 5);
	bb_u8(&b, 0);
	uint8_t *h = heap(b.d, b.n);
	struct moat_rd rd;
	uint16_t id;
	struct moat_bytes f;
	uint8_t qos;
	assert_int_equal(moat_mqtt_decode_sub_start(h, b.n, &rd, &id), MOAT_OK);
	assert_int_equal(moat_mqtt_decode_sub_next(&rd, &f, &qos), MOAT_EUTF8);
	moat_free(h);
}

static void test_unsubscribe_iteration(void **state)
{
	(void)state;
	struct bb b = {.n = 0};
	bb_u16(&b, 0x0102);
	bb_str(&b, "sport/#");
	bb_str(&b, "");
	bb_str(&b, "$SYS/+");
	uint8_t *h = heap(b.d, b.n);
	struct moat_rd rd;
	uint16_t id;
	assert_int_equal(moat_mqtt_decode_sub_start(h, b.n, &rd, &id), MOAT_OK);
	assert_int_equal(id, 0x0102);
	struct moat_bytes f;
	assert_int_equal(moat_mqtt_decode_unsub_next(&rd, &f), MOAT_OK);
	assert_bytes_str(f, "sport/#");
	/* empty filter decodes; moat_topic_filter_valid() rejects it */
	assert_int_equal(moat_mqtt_decode_unsub_next(&rd, &f), MOAT_OK);
	assert_int_equal(f.len, 0);
	assert_false(moat_topic_filter_valid(f.p, f.len));
	assert_int_equal(moat_mqtt_decode_unsub_next(&rd, &f), MOAT_OK);
	assert_bytes_str(f, "$SYS/+");
	assert_int_equal(moat_mqtt_decode_unsub_next(&rd, &f), MOAT_ENOTFOUND);
	moat_free(h);
}

/* [MQTT-3.10.3-2] */
static void test_unsubscribe_errors(void **state)
{
	(void)state;
	struct moat_rd rd;
	uint16_t id;
	struct moat_bytes f;
	uint8_t *h = heap("\x00\x07", 2);
	assert_int_equal(moat_mqtt_decode_sub_start(h, 2, &rd, &id),
			 MOAT_EPROTO);
	moat_free(h);
	/* truncated filter */
	static const uint8_t trunc[] = {0x00, 0x07, 0x00, 0x05, 'a', 'b'};
	for (size_t len = 3; len <= sizeof(trunc); len++) {
		h = heap(trunc, len);
		assert_int_equal(moat_mqtt_decode_sub_start(h, len, &rd, &id),
				 MOAT_OK);
		assert_int_equal(moat_mqtt_decode_unsub_next(&rd, &f),
				 MOAT_EMALFORMED);
		moat_free(h);
	}
	static const uint8_t bad8[] = {0x00, 0x07, 0x00, 0x01, 0x80};
	h = heap(bad8, sizeof(bad8));
	assert_int_equal(moat_mqtt_decode_sub_start(h, sizeof(bad8), &rd, &id),
			 MOAT_OK);
	assert_int_equal(moat_mqtt_decode_unsub_next(&rd, &f), MOAT_EUTF8);
	moat_free(h);
}

/* ---- CONNACK decode ------------------------------------------------------ */

static void test_connack_decode(void **state)
{
	(void)state;
	bool sp = true;
	uint8_t rc = 0xEE;
	uint8_t *h = heap("\x00\x00", 2);
	assert_int_equal(moat_mqtt_decode_connack(h, 2, &sp, &rc), MOAT_OK);
	assert_false(sp);
	assert_int_equal(rc, 0);
	moat_free(h);
	h = heap("\x01\x05", 2);
	assert_int_equal(moat_mqtt_decode_connack(h, 2, &sp, &rc), MOAT_OK);
	assert_true(sp);
	assert_int_equal(rc, MQTT_CONNACK_NOT_AUTHORIZED);
	moat_free(h);
	/* reserved bits of the acknowledge flags [MQTT-3.2.2-1] */
	static const uint8_t bad_flags[] = {0x02, 0x80, 0xFF, 0x03};
	for (size_t i = 0; i < MOAT_ARRAY_LEN(bad_flags); i++) {
		uint8_t body[2] = {bad_flags[i], 0};
		h = heap(body, 2);
		assert_int_equal(moat_mqtt_decode_connack(h, 2, &sp, &rc),
				 MOAT_EMALFORMED);
		moat_free(h);
	}
	static const size_t lens[] = {0, 1, 3};
	for (size_t i = 0; i < MOAT_ARRAY_LEN(lens); i++) {
		h = heap("\x00\x00\x00", lens[i]);
		assert_int_equal(moat_mqtt_decode_connack(h, lens[i], &sp, &rc),
				 MOAT_EMALFORMED);
		moat_free(h);
	}
}

/* ---- encoders ------------------------------------------------------------- */

/* Parse the fixed header of a whole encoded packet and check that it spans
 * exactly n bytes; returns the body. */
static const uint8_t *split_packet(const uint8_t *pkt, size_t n,
				   uint8_t *type_flags, size_t *body_len)
{
	uint32_t rem;
	size_t hl;
	assert_int_equal(moat_mqtt_fixed_header(pkt, n, type_flags, &rem, &hl),
			 MOAT_OK);
	assert_int_equal(hl + rem, n);
	assert_int_equal(moat_mqtt_check_flags(*type_flags), MOAT_OK);
	*body_len = rem;
	return pkt + hl;
}

static void test_connack_encode(void **state)
{
	(void)state;
	uint8_t out[4];
	assert_int_equal(moat_mqtt_connack_encode(out, true, 5), 4);
	assert_memory_equal(out, "\x20\x02\x01\x05", 4);
	assert_int_equal(moat_mqtt_connack_encode(out, false, 0), 4);
	assert_memory_equal(out, "\x20\x02\x00\x00", 4);
	uint8_t tf;
	size_t bl;
	const uint8_t *body = split_packet(out, 4, &tf, &bl);
	bool sp;
	uint8_t rc;
	assert_int_equal(moat_mqtt_decode_connack(body, bl, &sp, &rc), MOAT_OK);
	assert_false(sp);
	assert_int_equal(rc, 0);
}

static void test_ack_encode(void **state)
{
	(void)state;
	static const struct {
		enum moat_mqtt_type type;
		uint8_t first;
	} t[] = {{MQTT_PUBACK, 0x40},  {MQTT_PUBREC, 0x50},
		 {MQTT_PUBREL, 0x62},  /* [MQTT-3.6.1-1] */
		 {MQTT_PUBCOMP, 0x70}, {MQTT_UNSUBACK, 0xB0}};
	for (size_t i = 0; i < MOAT_ARRAY_LEN(t); i++) {
		uint8_t out[4];
		assert_int_equal(moat_mqtt_ack_encode(out, t[i].type, 0xA1B2),
				 4);
		uint8_t want[4] = {t[i].first, 0x02, 0xA1, 0xB2};
		assert_memory_equal(out, want, 4);
		uint8_t tf;
		size_t bl;
		const uint8_t *body = split_packet(out, 4, &tf, &bl);
		assert_int_equal(tf >> 4, t[i].type);
		uint16_t id;
		assert_int_equal(moat_mqtt_decode_ack(body, bl, &id), MOAT_OK);
		assert_int_equal(id, 0xA1B2);
	}
}

static void test_simple_encode(void **state)
{
	(void)state;
	uint8_t out[2];
	assert_int_equal(moat_mqtt_simple_encode(out, MQTT_PINGREQ), 2);
	assert_memory_equal(out, "\xC0\x00", 2);
	assert_int_equal(moat_mqtt_simple_encode(out, MQTT_PINGRESP), 2);
	assert_memory_equal(out, "\xD0\x00", 2);
	assert_int_equal(moat_mqtt_simple_encode(out, MQTT_DISCONNECT), 2);
	assert_memory_equal(out, "\xE0\x00", 2);
}

static void test_publish_encode_exact_bytes(void **state)
{
	(void)state;
	uint8_t out[16];
	size_t n = moat_mqtt_publish_size(3, 2, 1);
	assert_int_equal(n, 11);
	assert_int_equal(moat_mqtt_publish_encode(out, (const uint8_t *)"a/b",
						  3, (const uint8_t *)"hi", 2,
						  1, true, false, 7),
			 11);
	assert_memory_equal(out, "\x33\x09\x00\x03" "a/b\x00\x07" "hi", 11);
	n = moat_mqtt_publish_size(1, 0, 0);
	assert_int_equal(n, 5);
	assert_int_equal(moat_mqtt_publish_encode(out, (const uint8_t *)"t", 1,
						  NULL, 0, 0, false, false, 0),
			 5);
	assert_memory_equal(out, "\x30\x03\x00\x01t", 5);
}

static void test_publish_roundtrip(void **state)
{
	(void)state;
	static const char topic[] = "sensors/\xC3\xA9t\xC3\xA9/temp";
	const size_t tlen = sizeof(topic) - 1;
	static const size_t payload_lens[] = {0, 1, 70000};
	uint8_t *payload = moat_malloc(70000);
	assert_non_null(payload);
	for (size_t i = 0; i < 70000; i++)
		payload[i] = (uint8_t)(i * 31u + 7u);
	for (uint8_t qos = 0; qos <= 2; qos++) {
		for (size_t pi = 0; pi < MOAT_ARRAY_LEN(payload_lens); pi++) {
			for (int variant = 0; variant < 4; variant++) {
				bool retain = variant & 1;
				bool dup = (variant & 2) && qos > 0;
				size_t plen = payload_lens[pi];
				uint16_t id = qos ? (uint16_t)(1000 + variant)
						  : 0;
				size_t n = moat_mqtt_publish_size(tlen, plen,
								  qos);
				uint8_t *pkt = moat_malloc(n);
				assert_non_null(pkt);
				assert_int_equal(
					moat_mqtt_publish_encode(
						pkt, (const uint8_t *)topic,
						tlen, payload, plen, qos,
						retain, dup, id),
					n);
				uint8_t tf;
				size_t bl;
				const uint8_t *body =
					split_packet(pkt, n, &tf, &bl);
				assert_int_equal(tf >> 4, MQTT_PUBLISH);
				/* 70000 + header fields needs a 3-byte
				 * remaining length */
				assert_int_equal(n - bl,
						 plen == 70000 ? 4u : 2u);
				struct moat_mqtt_publish p;
				assert_int_equal(moat_mqtt_decode_publish(
							 tf & 0x0F, body, bl,
							 &p),
						 MOAT_OK);
				assert_int_equal(p.qos, qos);
				assert_int_equal(p.retain, retain);
				assert_int_equal(p.dup, dup);
				assert_int_equal(p.packet_id, id);
				assert_bytes(p.topic, topic, tlen);
				assert_bytes(p.payload, payload, plen);
				moat_free(pkt);
			}
		}
	}
	moat_free(payload);
}

static void test_suback_encode(void **state)
{
	(void)state;
	static const uint8_t codes[] = {0, 1, 2, MQTT_SUBACK_FAILURE};
	uint8_t out[16];
	size_t n = moat_mqtt_suback_size(4);
	assert_int_equal(n, 8);
	assert_int_equal(moat_mqtt_suback_encode(out, 42, codes, 4), 8);
	assert_memory_equal(out, "\x90\x06\x00\x2A\x00\x01\x02\x80", 8);
	uint8_t tf;
	size_t bl;
	const uint8_t *body = split_packet(out, n, &tf, &bl);
	assert_int_equal(tf, 0x90);
	assert_int_equal(bl, 6);
	assert_int_equal((body[0] << 8) | body[1], 42);

	/* 200 codes: 2-byte remaining length */
	uint8_t many[200];
	memset(many, 1, sizeof(many));
	n = moat_mqtt_suback_size(200);
	assert_int_equal(n, 1 + 2 + 202);
	uint8_t *big = moat_malloc(n);
	assert_non_null(big);
	assert_int_equal(moat_mqtt_suback_encode(big, 7, many, 200), n);
	body = split_packet(big, n, &tf, &bl);
	assert_int_equal(bl, 202);
	assert_memory_equal(body + 2, many, 200);
	moat_free(big);
}

static void test_connect_encode_minimal_exact_bytes(void **state)
{
	(void)state;
	struct moat_mqtt_connect_opts o = {.proto_level = 4,
					   .clean_session = true,
					   .keepalive = 60,
					   .client_id = ""};
	struct moat_buf b;
	moat_buf_init(&b, 1024);
	assert_int_equal(moat_mqtt_connect_encode(&b, &o), MOAT_OK);
	static const uint8_t want[] = {0x10, 0x0C, 0x00, 0x04, 'M',  'Q', 'T',
				       'T',  0x04, 0x02, 0x00, 0x3C, 0x00, 0x00};
	assert_int_equal(moat_buf_used(&b), sizeof(want));
	assert_memory_equal(b.data + b.off, want, sizeof(want));
	moat_buf_cleanup(&b);
}

static void test_connect_encode_roundtrip_all_options(void **state)
{
	(void)state;
	static const uint8_t pw[] = {'p', 0x00, 0xFF, 'w'};
	static const uint8_t wp[] = {0x00, 'b', 'y', 'e', 0xC0};
	struct moat_mqtt_connect_opts o = {
		.proto_level = 4,
		.clean_session = false,
		.keepalive = 0x1234,
		.client_id = "client-\xC3\xA9",
		.username = "user",
		.password = pw,
		.password_len = sizeof(pw),
		.has_password = true,
		.will_topic = "clients/gone",
		.will_payload = wp,
		.will_payload_len = sizeof(wp),
		.will_qos = 1,
		.will_retain = true,
	};
	for (int v = 0; v < 2; v++) {
		if (v == 1)
			o.proto_level = MQTT_PROTO_V31;
		struct moat_buf b;
		moat_buf_init(&b, 1024);
		assert_int_equal(moat_mqtt_connect_encode(&b, &o), MOAT_OK);
		uint8_t *pkt = heap(b.data + b.off, moat_buf_used(&b));
		size_t n = moat_buf_used(&b);
		moat_buf_cleanup(&b);
		uint8_t tf;
		size_t bl;
		const uint8_t *body = split_packet(pkt, n, &tf, &bl);
		assert_int_equal(tf, 0x10);
		struct moat_mqtt_connect c;
		uint8_t crc = 0x55;
		assert_int_equal(moat_mqtt_decode_connect(body, bl, &c, &crc),
				 MOAT_OK);
		assert_int_equal(crc, 0);
		assert_bytes_str(c.proto_name, v ? "MQIsdp" : "MQTT");
		assert_int_equal(c.proto_level, v ? 3 : 4);
		assert_false(c.clean_session);
		assert_int_equal(c.keepalive, 0x1234);
		assert_bytes_str(c.client_id, o.client_id);
		assert_true(c.will_flag);
		assert_int_equal(c.will_qos, 1);
		assert_true(c.will_retain);
		assert_bytes_str(c.will_topic, "clients/gone");
		assert_bytes(c.will_payload, wp, sizeof(wp));
		assert_true(c.has_username);
		assert_bytes_str(c.username, "user");
		assert_true(c.has_password);
		assert_bytes(c.password, pw, sizeof(pw));
		moat_free(pkt);
	}
}

static void test_connect_encode_empty_will_and_password(void **state)
{
	(void)state;
	struct moat_mqtt_connect_opts o = {
		.proto_level = 4,
		.clean_session = true,
		.client_id = "c",
		.username = "",
		.password = NULL,
		.password_len = 0,
		.has_password = true,
		.will_topic = "w",
		.will_payload = NULL,
		.will_payload_len = 0,
	};
	struct moat_buf b;
	moat_buf_init(&b, 1024);
	assert_int_equal(moat_mqtt_connect_encode(&b, &o), MOAT_OK);
	uint8_t tf;
	size_t bl;
	const uint8_t *body =
		split_packet(b.data + b.off, moat_buf_used(&b), &tf, &bl);
	struct moat_mqtt_connect c;
	uint8_t crc;
	assert_int_equal(moat_mqtt_decode_connect(body, bl, &c, &crc), MOAT_OK);
	assert_true(c.will_flag);
	assert_int_equal(c.will_qos, 0);
	assert_int_equal(c.will_payload.len, 0);
	assert_true(c.has_username);
	assert_int_equal(c.username.len, 0);
	assert_true(c.has_password);
	assert_int_equal(c.password.len, 0);
	moat_buf_cleanup(&b);
}

static void test_connect_encode_field_too_long(void **state)
{
	(void)state;
	char *id = moat_malloc(65537);
	assert_non_null(id);
	memset(id, 'x', 65536);
	id[65536] = '\0';
	struct moat_mqtt_connect_opts o = {.proto_level = 4, .client_id = id};
	struct moat_buf b;
	moat_buf_init(&b, 1u << 20);
	assert_int_equal(moat_mqtt_connect_encode(&b, &o), MOAT_EINVAL);
	moat_buf_cleanup(&b);
	/* 65535 is the largest allowed */
	id[65535] = '\0';
	moat_buf_init(&b, 1u << 20);
	assert_int_equal(moat_mqtt_connect_encode(&b, &o), MOAT_OK);
	/* type + 3-byte remaining length + 12 fixed bytes + id */
	assert_int_equal(moat_buf_used(&b), 1 + 3 + 12 + 65535);
	moat_buf_cleanup(&b);
	moat_free(id);
}

/* The remaining length is checked before anything is written (and before
 * the will payload is read). */
static void test_connect_encode_remaining_length_too_big(void **state)
{
	(void)state;
	static const uint8_t tiny[1] = {0};
	struct moat_mqtt_connect_opts o = {
		.proto_level = 4,
		.client_id = "c",
		.will_topic = "w",
		.will_payload = tiny,
		.will_payload_len = MQTT_MAX_REMAINING_LENGTH,
	};
	struct moat_buf b;
	moat_buf_init(&b, 1024);
	assert_int_equal(moat_mqtt_connect_encode(&b, &o), MOAT_EINVAL);
	assert_int_equal(moat_buf_used(&b), 0);
	moat_buf_cleanup(&b);
}

static void test_connect_encode_enomem(void **state)
{
	(void)state;
	struct moat_mqtt_connect_opts o = {.proto_level = 4, .client_id = "c"};
	struct moat_buf b;
	moat_buf_init(&b, 1024);
	moat_alloc_fail_at(1);
	assert_int_equal(moat_mqtt_connect_encode(&b, &o), MOAT_ENOMEM);
	moat_buf_cleanup(&b);
	/* buffer limit too small for the packet */
	moat_buf_init(&b, 8);
	assert_int_equal(moat_mqtt_connect_encode(&b, &o), MOAT_ENOMEM);
	moat_buf_cleanup(&b);
}

static void test_subscribe_encode_roundtrip(void **state)
{
	(void)state;
	static const char *const filters[] = {"a/b", "sport/#", "+/x"};
	static const uint8_t qos[] = {0, 1, 2};
	struct moat_buf b;
	moat_buf_init(&b, 1024);
	assert_int_equal(moat_mqtt_subscribe_encode(&b, 77, filters, qos, 3),
			 MOAT_OK);
	uint8_t tf;
	size_t bl;
	const uint8_t *body =
		split_packet(b.data + b.off, moat_buf_used(&b), &tf, &bl);
	assert_int_equal(tf, 0x82); /* [MQTT-3.8.1-1] */
	assert_int_equal(bl, 2 + (2 + 3 + 1) + (2 + 7 + 1) + (2 + 3 + 1));
	struct moat_rd rd;
	uint16_t id;
	assert_int_equal(moat_mqtt_decode_sub_start(body, bl, &rd, &id),
			 MOAT_OK);
	assert_int_equal(id, 77);
	for (size_t i = 0; i < 3; i++) {
		struct moat_bytes f;
		uint8_t q;
		assert_int_equal(moat_mqtt_decode_sub_next(&rd, &f, &q),
				 MOAT_OK);
		assert_bytes_str(f, filters[i]);
		assert_int_equal(q, qos[i]);
	}
	struct moat_bytes f;
	uint8_t q;
	assert_int_equal(moat_mqtt_decode_sub_next(&rd, &f, &q),
			 MOAT_ENOTFOUND);
	moat_buf_cleanup(&b);
}

static void test_unsubscribe_encode_roundtrip(void **state)
{
	(void)state;
	static const char *const filters[] = {"a/b", "#"};
	struct moat_buf b;
	moat_buf_init(&b, 1024);
	assert_int_equal(moat_mqtt_unsubscribe_encode(&b, 65535, filters, 2),
			 MOAT_OK);
	static const uint8_t want[] = {0xA2, 0x0A, 0xFF, 0xFF, 0x00, 0x03,
				       'a',  '/',  'b',  0x00, 0x01, '#'};
	assert_int_equal(moat_buf_used(&b), sizeof(want));
	assert_memory_equal(b.data + b.off, want, sizeof(want));
	uint8_t tf;
	size_t bl;
	const uint8_t *body =
		split_packet(b.data + b.off, moat_buf_used(&b), &tf, &bl);
	struct moat_rd rd;
	uint16_t id;
	assert_int_equal(moat_mqtt_decode_sub_start(body, bl, &rd, &id),
			 MOAT_OK);
	assert_int_equal(id, 65535);
	struct moat_bytes f;
	assert_int_equal(moat_mqtt_decode_unsub_next(&rd, &f), MOAT_OK);
	assert_bytes_str(f, "a/b");
	assert_int_equal(moat_mqtt_decode_unsub_next(&rd, &f), MOAT_OK);
	assert_bytes_str(f, "#");
	assert_int_equal(moat_mqtt_decode_unsub_next(&rd, &f), MOAT_ENOTFOUND);
	moat_buf_cleanup(&b);
}

/* ---- cursor reader --------------------------------------------------------- */

static void test_rd_primitives(void **state)
{
	(void)state;
	static const uint8_t d[] = {0x01, 0x02, 0x03, 0x00, 0x02, 'h', 'i',
				    0x00, 0x01};
	uint8_t *h = heap(d, sizeof(d));
	struct moat_rd rd;
	moat_rd_init(&rd, h, sizeof(d));
	uint8_t u8;
	uint16_t u16;
	struct moat_bytes s;
	assert_int_equal(moat_rd_u8(&rd, &u8), MOAT_OK);
	assert_int_equal(u8, 1);
	assert_int_equal(moat_rd_u16(&rd, &u16), MOAT_OK);
	assert_int_equal(u16, 0x0203);
	assert_int_equal(moat_rd_string(&rd, &s), MOAT_OK);
	assert_bytes_str(s, "hi");
	assert_int_equal(moat_rd_left(&rd), 2);
	/* declared length 1, nothing follows */
	assert_int_equal(moat_rd_binary(&rd, &s), MOAT_EMALFORMED);
	moat_rd_init(&rd, h, 1);
	assert_int_equal(moat_rd_u16(&rd, &u16), MOAT_EMALFORMED);
	moat_rd_init(&rd, h, 0);
	assert_int_equal(moat_rd_u8(&rd, &u8), MOAT_EMALFORMED);
	moat_free(h);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_varint_encode),
		T(test_fixed_header_boundaries),
		T(test_fixed_header_truncated_eagain),
		T(test_fixed_header_five_byte_varint_malformed),
		T(test_check_flags_every_type),
		T(test_connect_valid_311_minimal),
		T(test_connect_valid_31_mqisdp),
		T(test_connect_full_will_user_pass),
		T(test_connect_empty_client_id_accepted_by_codec),
		T(test_connect_bad_protocol_name),
		T(test_connect_unacceptable_level),
		T(test_connect_reserved_flag_mqtt_3_1_2_3),
		T(test_connect_will_qos3_mqtt_3_1_2_14),
		T(test_connect_will_flag0_with_qos_or_retain),
		T(test_connect_password_without_username),
		T(test_connect_will_topic_wildcard),
		T(test_connect_invalid_utf8_fields),
		T(test_connect_trailing_bytes),
		T(test_connect_truncated_every_offset),
		T(test_publish_qos0),
		T(test_publish_qos1_qos2),
		T(test_publish_qos3_malformed),
		T(test_publish_dup_with_qos0_malformed),
		T(test_publish_bad_topic_names),
		T(test_publish_invalid_utf8_topic),
		T(test_publish_packet_id_zero),
		T(test_publish_zero_length_payload),
		T(test_publish_truncated),
		T(test_ack_decode),
		T(test_subscribe_iteration),
		T(test_subscribe_start_errors),
		T(test_subscribe_qos3_mqtt_3_8_3_4),
		T(test_subscribe_reserved_qos_bits),
		T(test_subscribe_truncated),
		T(test_subscribe_invalid_utf8_filter),
		T(test_unsubscribe_iteration),
		T(test_unsubscribe_errors),
		T(test_connack_decode),
		T(test_connack_encode),
		T(test_ack_encode),
		T(test_simple_encode),
		T(test_publish_encode_exact_bytes),
		T(test_publish_roundtrip),
		T(test_suback_encode),
		T(test_connect_encode_minimal_exact_bytes),
		T(test_connect_encode_roundtrip_all_options),
		T(test_connect_encode_empty_will_and_password),
		T(test_connect_encode_field_too_long),
		T(test_connect_encode_remaining_length_too_big),
		T(test_connect_encode_enomem),
		T(test_subscribe_encode_roundtrip),
		T(test_unsubscribe_encode_roundtrip),
		T(test_rd_primitives),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
