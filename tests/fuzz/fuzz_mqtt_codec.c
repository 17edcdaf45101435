/* libFuzzer harness for the MQTT 3.1.1 codec and the topic/UTF-8 helpers.
 *
 * Input layout: data[0] % FUZZ_NTARGETS picks the entry point; the rest is
 * that entry point's input (see the table in LLVMFuzzerTestOneInput).
 * Every decoder gets an exact-size heap copy so ASan sees any over-read.
 *
 * Beyond "no crash", the harness checks properties and aborts when one
 * fails:
 *  - whatever a decoder accepts re-encodes to the identical bytes;
 *  - MOAT_EPROTO from the CONNECT decoder always comes with a CONNACK code
 *    (1) or 0xFF, never "accepted";
 *  - moat_utf8_valid() agrees with a table-driven reference (Unicode 3-7);
 *  - moat_topic_matches() agrees with a split-into-levels reference for
 *    every valid filter / topic name pair. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec/mqtt_codec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                           \
	do {                                                                  \
		if (!(cond)) {                                                \
			fprintf(stderr, "%s:%d: property failed: %s\n",       \
				__FILE__, __LINE__, #cond);                   \
			abort();                                              \
		}                                                             \
	} while (0)

static uint8_t *copy_exact(const uint8_t *p, size_t n)
{
	uint8_t *h = malloc(n ? n : 1);
	if (!h)
		abort();
	if (n)
		memcpy(h, p, n);
	return h;
}

static bool slice_in(struct moat_bytes s, const uint8_t *base, size_t len)
{
	return s.len == 0 || (s.p >= base && s.p + s.len <= base + len);
}

/* Encoded packet in b must be a fixed header followed by exactly body. */
static void check_reencoded(const struct moat_buf *b, uint8_t first,
			    const uint8_t *body, size_t len)
{
	const uint8_t *pkt = b->data + b->off;
	size_t n = moat_buf_used(b);
	uint8_t tf;
	uint32_t rem;
	size_t hl;
	CHECK(moat_mqtt_fixed_header(pkt, n, &tf, &rem, &hl) == MOAT_OK);
	CHECK(tf == first);
	CHECK(rem == len && hl + rem == n);
	CHECK(len == 0 || memcmp(pkt + hl, body, len) == 0);
}

static char *cstr(struct moat_bytes s)
{
	/* decoded strings are valid UTF-8, hence contain no NUL */
	CHECK(s.len == 0 || memchr(s.p, 0, s.len) == NULL);
	char *p = moat_strndup((const char *)s.p, s.len);
	if (!p)
		abort();
	return p;
}

/* ---- CONNECT ---- */

static void fuzz_connect(const uint8_t *body, size_t len)
{
	struct moat_mqtt_connect c;
	uint8_t crc = 0x55;
	int rc = moat_mqtt_decode_connect(body, len, &c, &crc);
	if (rc == MOAT_EPROTO)
		CHECK(crc == MQTT_CONNACK_BAD_PROTOCOL || crc == 0xFF);
	if (rc != MOAT_OK) {
		CHECK(rc == MOAT_EPROTO || rc == MOAT_EMALFORMED ||
		      rc == MOAT_EUTF8);
		return;
	}
	CHECK(crc == MQTT_CONNACK_ACCEPTED);
	CHECK(slice_in(c.client_id, body, len));
	CHECK(slice_in(c.will_topic, body, len));
	CHECK(slice_in(c.will_payload, body, len));
	CHECK(slice_in(c.username, body, len));
	CHECK(slice_in(c.password, body, len));
	CHECK(c.will_qos <= 2);
	CHECK(c.will_flag || (c.will_qos == 0 && !c.will_retain));
	CHECK(c.has_username || !c.has_password);
	CHECK(!c.will_flag ||
	      moat_topic_name_valid(c.will_topic.p, c.will_topic.len));

	char *cid = cstr(c.client_id);
	char *wt = c.will_flag ? cstr(c.will_topic) : NULL;
	char *user = c.has_username ? cstr(c.username) : NULL;
	struct moat_mqtt_connect_opts o = {
		.proto_level = c.proto_level,
		.clean_session = c.clean_session,
		.keepalive = c.keepalive,
		.client_id = cid,
		.username = user,
		.password = c.password.p,
		.password_len = c.password.len,
		.has_password = c.has_password,
		.will_topic = wt,
		.will_payload = c.will_payload.p,
		.will_payload_len = c.will_payload.len,
		.will_qos = c.will_qos,
		.will_retain = c.will_retain,
	};
	struct moat_buf b;
	moat_buf_init(&b, (size_t)1 << 20);
	CHECK(moat_mqtt_connect_encode(&b, &o) == MOAT_OK);
	check_reencoded(&b, MQTT_CONNECT << 4, body, len);
	moat_buf_cleanup(&b);
	moat_free(cid);
	moat_free(wt);
	moat_free(user);
}

/* ---- PUBLISH ---- */

static void fuzz_publish(uint8_t flags, const uint8_t *body, size_t len)
{
	struct moat_mqtt_publish p;
	int rc = moat_mqtt_decode_publish(flags, body, len, &p);
	if (rc != MOAT_OK) {
		CHECK(rc == MOAT_EPROTO || rc == MOAT_EMALFORMED ||
		      rc == MOAT_EUTF8);
		return;
	}
	CHECK(p.qos <= 2);
	CHECK(p.qos > 0 || !p.dup);
	CHECK((p.qos == 0) == (p.packet_id == 0));
	CHECK(moat_topic_name_valid(p.topic.p, p.topic.len));
	CHECK(moat_utf8_valid(p.topic.p, p.topic.len));
	CHECK(slice_in(p.topic, body, len) && slice_in(p.payload, body, len));

	size_t n = moat_mqtt_publish_size(p.topic.len, p.payload.len, p.qos);
	uint8_t *out = malloc(n);
	if (!out)
		abort();
	CHECK(moat_mqtt_publish_encode(out, p.topic.p, p.topic.len,
				       p.payload.p, p.payload.len, p.qos,
				       p.retain, p.dup, p.packet_id) == n);
	uint8_t tf;
	uint32_t rem;
	size_t hl;
	CHECK(moat_mqtt_fixed_header(out, n, &tf, &rem, &hl) == MOAT_OK);
	CHECK(tf == (uint8_t)((MQTT_PUBLISH << 4) | (flags & 0x0F)));
	CHECK(rem == len && hl + len == n);
	CHECK(len == 0 || memcmp(out + hl, body, len) == 0);
	free(out);
}

/* ---- acks, CONNACK ---- */

static void fuzz_ack(const uint8_t *body, size_t len)
{
	uint16_t id = 0;
	if (moat_mqtt_decode_ack(body, len, &id) != MOAT_OK)
		return;
	CHECK(len == 2 && id != 0);
	uint8_t out[4];
	CHECK(moat_mqtt_ack_encode(out, MQTT_PUBREL, id) == 4);
	CHECK(out[0] == 0x62 && out[1] == 2 && memcmp(out + 2, body, 2) == 0);
}

static void fuzz_connack(const uint8_t *body, size_t len)
{
	bool sp;
	uint8_t rc;
	if (moat_mqtt_decode_connack(body, len, &sp, &rc) != MOAT_OK)
		return;
	uint8_t out[4];
	CHECK(moat_mqtt_connack_encode(out, sp, rc) == 4);
	CHECK(len == 2 && memcmp(out + 2, body, 2) == 0);
}

/* ---- SUBSCRIBE / UNSUBSCRIBE ---- */

static void fuzz_sub(const uint8_t *body, size_t len, bool unsub)
{
	struct moat_rd rd;
	uint16_t id;
	int rc = moat_mqtt_decode_sub_start(body, len, &rd, &id);
	if (rc != MOAT_OK) {
		CHECK(rc == MOAT_EPROTO || rc == MOAT_EMALFORMED);
		return;
	}
	CHECK(id != 0);
	/* each entry takes at least 2 bytes, so this bound cannot be hit */
	size_t max = len / 2 + 1;
	char **filters = malloc(max * sizeof(*filters));
	uint8_t *qos = malloc(max);
	if (!filters || !qos)
		abort();
	size_t count = 0;
	for (;;) {
		struct moat_bytes f;
		uint8_t q = 0;
		rc = unsub ? moat_mqtt_decode_unsub_next(&rd, &f)
			   : moat_mqtt_decode_sub_next(&rd, &f, &q);
		if (rc != MOAT_OK)
			break;
		CHECK(slice_in(f, body, len));
		CHECK(q <= 2);
		(void)moat_topic_filter_valid(f.p, f.len);
		CHECK(count < max);
		filters[count] = cstr(f);
		qos[count] = q;
		count++;
	}
	CHECK(rc == MOAT_ENOTFOUND || rc == MOAT_EMALFORMED ||
	      rc == MOAT_EUTF8);
	if (rc == MOAT_ENOTFOUND) {
		CHECK(count > 0);
		struct moat_buf b;
		moat_buf_init(&b, (size_t)1 << 20);
		if (unsub)
			rc = moat_mqtt_unsubscribe_encode(
				&b, id, (const char *const *)filters, count);
		else
			rc = moat_mqtt_subscribe_encode(
				&b, id, (const char *const *)filters, qos,
				count);
		CHECK(rc == MOAT_OK);
		check_reencoded(&b,
				(uint8_t)(((unsub ? MQTT_UNSUBSCRIBE
						  : MQTT_SUBSCRIBE)
					   << 4) |
					  0x02),
				body, len);
		moat_buf_cleanup(&b);
	}
	for (size_t i = 0; i < count; i++)
		moat_free(filters[i]);
	free(filters);
	free(qos);
}

/* ---- fixed header ---- */

static void fuzz_fixed_header(const uint8_t *buf, size_t len)
{
	uint8_t tf;
	uint32_t rem;
	size_t hl;
	int rc = moat_mqtt_fixed_header(buf, len, &tf, &rem, &hl);
	if (len)
		(void)moat_mqtt_check_flags(buf[0]);
	if (rc == MOAT_EAGAIN) {
		CHECK(len < 5);
		return;
	}
	if (rc != MOAT_OK) {
		CHECK(rc == MOAT_EMALFORMED && len >= 5);
		return;
	}
	CHECK(hl >= 2 && hl <= 5 && hl <= len);
	CHECK(tf == buf[0]);
	CHECK(rem <= MQTT_MAX_REMAINING_LENGTH);
	CHECK(moat_mqtt_varint_size(rem) <= hl - 1);
	if (moat_mqtt_varint_size(rem) == hl - 1) {
		/* minimal encoding: must be reproduced exactly */
		uint8_t out[4];
		CHECK(moat_mqtt_varint_write(out, rem) == hl - 1);
		CHECK(memcmp(out, buf + 1, hl - 1) == 0);
	}
}

/* ---- UTF-8 reference: Unicode Table 3-7, plus no U+0000 ---- */

static bool ref_utf8(const uint8_t *p, size_t len)
{
	size_t i = 0;
	while (i < len) {
		uint8_t c = p[i];
		size_t n;
		uint8_t lo = 0x80, hi = 0xBF;
		if (c == 0)
			return false;
		if (c < 0x80) {
			i++;
			continue;
		}
		if (c >= 0xC2 && c <= 0xDF) {
			n = 1;
		} else if (c >= 0xE0 && c <= 0xEF) {
			n = 2;
			if (c == 0xE0)
				lo = 0xA0;
			if (c == 0xED)
				hi = 0x9F;
		} else if (c >= 0xF0 && c <= 0xF4) {
			n = 3;
			if (c == 0xF0)
				lo = 0x90;
			if (c == 0xF4)
				hi = 0x8F;
		} else {
			return false;
		}
		if (len - i - 1 < n)
			return false;
		if (p[i + 1] < lo || p[i + 1] > hi)
			return false;
		for (size_t k = 2; k <= n; k++)
			if (p[i + k] < 0x80 || p[i + k] > 0xBF)
				return false;
		i += n + 1;
	}
	return true;
}

static void fuzz_utf8(const uint8_t *p, size_t len)
{
	CHECK(moat_utf8_valid(p, len) == ref_utf8(p, len));
}

/* ---- topics: reference matcher ---- */

static size_t level_count(const uint8_t *s, size_t len)
{
	size_t n = 1;
	for (size_t i = 0; i < len; i++)
		n += s[i] == '/';
	return n;
}

/* Level idx of s as [*off, *off + *n). */
static void level_at(const uint8_t *s, size_t len, size_t idx, size_t *off,
		     size_t *n)
{
	size_t start = 0, k = 0;
	*off = *n = 0;
	for (size_t i = 0; i <= len; i++) {
		if (i == len || s[i] == '/') {
			if (k++ == idx) {
				*off = start;
				*n = i - start;
				return;
			}
			start = i + 1;
		}
	}
}

static bool ref_match(const uint8_t *f, size_t fl, const uint8_t *t,
		      size_t tl)
{
	if (tl && t[0] == '$' && fl && (f[0] == '+' || f[0] == '#'))
		return false;
	size_t fn = level_count(f, fl), tn = level_count(t, tl);
	/* walk both level lists in step (quadratic is fine at fuzz sizes) */
	for (size_t i = 0; i < fn; i++) {
		size_t fo, fll, to, tll;
		level_at(f, fl, i, &fo, &fll);
		if (fll == 1 && f[fo] == '#')
			return true;
		if (i >= tn)
			return false;
		if (fll == 1 && f[fo] == '+')
			continue;
		level_at(t, tl, i, &to, &tll);
		if (fll != tll || (fll && memcmp(f + fo, t + to, fll) != 0))
			return false;
	}
	return fn == tn;
}

static void fuzz_topic(const uint8_t *data, size_t size)
{
	if (size < 1)
		return;
	size_t split = data[0];
	const uint8_t *rest = data + 1;
	size_t n = size - 1;
	if (split > n)
		split = n;
	uint8_t *f = copy_exact(rest, split);
	uint8_t *t = copy_exact(rest + split, n - split);
	size_t fl = split, tl = n - split;

	bool fv = moat_topic_filter_valid(f, fl);
	bool tv = moat_topic_name_valid(t, tl);
	CHECK(moat_topic_levels(f, fl) == level_count(f, fl));
	/* memory safety on any input, valid or not */
	bool m = moat_topic_matches(f, fl, t, tl);
	(void)moat_topic_matches(t, tl, f, fl);
	if (fv && tv && fl < 512 && tl < 512)
		CHECK(m == ref_match(f, fl, t, tl));
	if (tv) {
		/* a topic name is also a valid filter that matches itself */
		CHECK(moat_topic_filter_valid(t, tl));
		CHECK(moat_topic_matches(t, tl, t, tl));
	}
	free(f);
	free(t);
}

/* ---- a stream of packets, dispatched like a broker would ---- */

static void fuzz_stream(const uint8_t *data, size_t size)
{
	size_t off = 0;
	while (off < size) {
		uint8_t tf;
		uint32_t rem;
		size_t hl;
		if (moat_mqtt_fixed_header(data + off, size - off, &tf, &rem,
					   &hl) != MOAT_OK)
			return;
		if (rem > size - off - hl)
			return; /* EAGAIN at stream level */
		uint8_t *body = copy_exact(data + off + hl, rem);
		off += hl + rem;
		if (moat_mqtt_check_flags(tf) != MOAT_OK) {
			free(body);
			return;
		}
		switch (tf >> 4) {
		case MQTT_CONNECT:
			fuzz_connect(body, rem);
			break;
		case MQTT_PUBLISH:
			fuzz_publish(tf & 0x0F, body, rem);
			break;
		case MQTT_CONNACK:
			fuzz_connack(body, rem);
			break;
		case MQTT_SUBSCRIBE:
			fuzz_sub(body, rem, false);
			break;
		case MQTT_UNSUBSCRIBE:
			fuzz_sub(body, rem, true);
			break;
		case MQTT_PUBACK:
		case MQTT_PUBREC:
		case MQTT_PUBREL:
		case MQTT_PUBCOMP:
		case MQTT_UNSUBACK:
			fuzz_ack(body, rem);
			break;
		default:
			break;
		}
		free(body);
	}
}

enum {
	F_CONNECT,
	F_PUBLISH,
	F_ACK,
	F_SUBSCRIBE,
	F_UNSUBSCRIBE,
	F_CONNACK,
	F_FIXED_HEADER,
	F_UTF8,
	F_TOPIC,
	F_STREAM,
	FUZZ_NTARGETS
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	unsigned target = data[0] % FUZZ_NTARGETS;
	const uint8_t *in = data + 1;
	size_t n = size - 1;

	if (target == F_PUBLISH) {
		/* byte 2 holds the fixed-header flags */
		if (n < 1)
			return 0;
		uint8_t *body = copy_exact(in + 1, n - 1);
		fuzz_publish(in[0] & 0x0F, body, n - 1);
		free(body);
		return 0;
	}
	if (target == F_TOPIC) {
		fuzz_topic(in, n); /* makes its own exact copies */
		return 0;
	}
	uint8_t *buf = copy_exact(in, n);
	switch (target) {
	case F_CONNECT:
		fuzz_connect(buf, n);
		break;
	case F_ACK:
		fuzz_ack(buf, n);
		break;
	case F_SUBSCRIBE:
		fuzz_sub(buf, n, false);
		break;
	case F_UNSUBSCRIBE:
		fuzz_sub(buf, n, true);
		break;
	case F_CONNACK:
		fuzz_connack(buf, n);
		break;
	case F_FIXED_HEADER:
		fuzz_fixed_header(buf, n);
		break;
	case F_UTF8:
		fuzz_utf8(buf, n);
		break;
	case F_STREAM:
		fuzz_stream(buf, n);
		break;
	default:
		break;
	}
	free(buf);
	return 0;
}
