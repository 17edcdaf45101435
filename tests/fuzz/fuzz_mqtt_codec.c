/* libFuzzer harness for the MQTT codec (3.1, 3.1.1 and 5.0) and the
 * topic/UTF-8 helpers.
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
 *    every valid filter / topic name pair;
 *  - MQTT 5: moat_mqtt_props_read() agrees, in every context, with a
 *    reference reader built on an independent copy of the §2.2.2.2 table;
 *    a block it accepts is walked by moat_mqtt_props_next() in exactly
 *    raw.len bytes, every property re-encodes through the moat_pw writers
 *    to its own bytes and agrees with the decoded fields and counters;
 *    an accepted v5 CONNECT/PUBLISH/ack/SUBSCRIBE/DISCONNECT/AUTH is
 *    rebuilt (by hand or with the v5 encoders) to the input bytes when
 *    its varints were minimal, and decodes back to the same otherwise;
 *    the v3/v4 paths of the version-aware decoders agree with the 3.1.1
 *    decoders. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec/mqtt5.h"
#include "fuzz_util.h"


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
		/* a bridge's level carries 0x80 on the wire (try_private) */
		.proto_level = (uint8_t)(c.proto_level | (c.bridge ? 0x80 : 0)),
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
	uint8_t *f = fuzz_copy_exact(rest, split);
	uint8_t *t = fuzz_copy_exact(rest + split, n - split);
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
		uint8_t *body = fuzz_copy_exact(data + off + hl, rem);
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

/* ==== MQTT 5 ============================================================ */

/* The property table of MQTT 5.0 §2.2.2.2, written out here independently
 * of the codec's: type and the contexts (enum moat_mqtt_prop_ctx bits)
 * where each identifier is allowed. */
enum rtype { R_NONE, R_BYTE, R_U16, R_U32, R_VARINT, R_UTF8, R_BIN, R_PAIR };
#define K(c) (1u << (c))
#define K_PUBWILL (K(PCTX_PUBLISH) | K(PCTX_WILL))
#define N_PCTX 11

struct rdef {
	uint8_t type;
	uint16_t ctx;
};

static struct rdef ref_def(uint32_t id)
{
	struct rdef d = {R_NONE, 0};
	switch (id) {
	case 0x01: d = (struct rdef){R_BYTE, K_PUBWILL}; break;
	case 0x02: d = (struct rdef){R_U32, K_PUBWILL}; break;
	case 0x03: d = (struct rdef){R_UTF8, K_PUBWILL}; break;
	case 0x08: d = (struct rdef){R_UTF8, K_PUBWILL}; break;
	case 0x09: d = (struct rdef){R_BIN, K_PUBWILL}; break;
	case 0x0B:
		d = (struct rdef){R_VARINT, K(PCTX_PUBLISH) | K(PCTX_SUBSCRIBE)};
		break;
	case 0x11:
		d = (struct rdef){R_U32, K(PCTX_CONNECT) | K(PCTX_CONNACK) |
						 K(PCTX_DISCONNECT)};
		break;
	case 0x12: d = (struct rdef){R_UTF8, K(PCTX_CONNACK)}; break;
	case 0x13: d = (struct rdef){R_U16, K(PCTX_CONNACK)}; break;
	case 0x15:
		d = (struct rdef){R_UTF8, K(PCTX_CONNECT) | K(PCTX_CONNACK) |
						  K(PCTX_AUTH)};
		break;
	case 0x16:
		d = (struct rdef){R_BIN, K(PCTX_CONNECT) | K(PCTX_CONNACK) |
						 K(PCTX_AUTH)};
		break;
	case 0x17: d = (struct rdef){R_BYTE, K(PCTX_CONNECT)}; break;
	case 0x18: d = (struct rdef){R_U32, K(PCTX_WILL)}; break;
	case 0x19: d = (struct rdef){R_BYTE, K(PCTX_CONNECT)}; break;
	case 0x1A: d = (struct rdef){R_UTF8, K(PCTX_CONNACK)}; break;
	case 0x1C:
		d = (struct rdef){R_UTF8, K(PCTX_CONNACK) | K(PCTX_DISCONNECT)};
		break;
	case 0x1F:
		d = (struct rdef){R_UTF8, K(PCTX_CONNACK) | K(PCTX_ACK) |
						  K(PCTX_SUBACK) | K(PCTX_UNSUBACK) |
						  K(PCTX_DISCONNECT) | K(PCTX_AUTH)};
		break;
	case 0x21:
	case 0x22:
	case 0x27:
		d = (struct rdef){(uint8_t)(id == 0x27 ? R_U32 : R_U16),
				  K(PCTX_CONNECT) | K(PCTX_CONNACK)};
		break;
	case 0x23: d = (struct rdef){R_U16, K(PCTX_PUBLISH)}; break;
	case 0x24:
	case 0x25:
	case 0x28:
	case 0x29:
	case 0x2A: d = (struct rdef){R_BYTE, K(PCTX_CONNACK)}; break;
	case 0x26: d = (struct rdef){R_PAIR, (1u << N_PCTX) - 1}; break;
	default: break;
	}
	return d;
}

static bool ref_multi(uint32_t id, unsigned ctx)
{
	return id == 0x26 || (id == 0x0B && ctx != PCTX_SUBSCRIBE);
}

/* Values the spec calls a Protocol Error. */
static bool ref_value_ok(uint32_t id, uint32_t v)
{
	switch (id) {
	case 0x01: case 0x17: case 0x19: case 0x24: case 0x25: case 0x28:
	case 0x29: case 0x2A:
		return v <= 1;
	case 0x21: case 0x27: case 0x23: case 0x0B:
		return v != 0;
	default:
		return true;
	}
}

struct ref_rd {
	const uint8_t *p;
	size_t len, pos;
};

static bool ref_varint(struct ref_rd *r, uint32_t *v)
{
	*v = 0;
	for (unsigned i = 0; i < 4; i++) {
		if (r->pos >= r->len)
			return false;
		uint8_t b = r->p[r->pos++];
		*v |= (uint32_t)(b & 0x7F) << (7 * i);
		if (!(b & 0x80))
			return true;
	}
	return false;
}

/* 0 ok, 1 truncated, 2 bad UTF-8 */
static int ref_string(struct ref_rd *r, bool utf8)
{
	if (r->len - r->pos < 2)
		return 1;
	size_t n = (size_t)r->p[r->pos] << 8 | r->p[r->pos + 1];
	r->pos += 2;
	if (r->len - r->pos < n)
		return 1;
	const uint8_t *s = r->p + r->pos;
	r->pos += n;
	return utf8 && !ref_utf8(s, n) ? 2 : 0;
}

/* Reference property-block reader: same contract as moat_mqtt_props_read
 * (first Malformed/UTF-8 error in reading order wins; Protocol Errors are
 * reported only if the whole block parses). *consumed on success. */
static int ref_props_read(const uint8_t *p, size_t len, unsigned ctx,
			  size_t *consumed)
{
	struct ref_rd r = {p, len, 0};
	uint32_t blen;
	if (!ref_varint(&r, &blen) || len - r.pos < blen)
		return MOAT_EMALFORMED;
	*consumed = r.pos + blen;
	struct ref_rd b = {p + r.pos, blen, 0};
	uint64_t seen = 0;
	int proto = MOAT_OK;
	while (b.pos < b.len) {
		uint32_t id, v = 0;
		if (!ref_varint(&b, &id))
			return MOAT_EMALFORMED;
		struct rdef d = ref_def(id);
		if (d.type == R_NONE || !(d.ctx & K(ctx)))
			return MOAT_EMALFORMED;
		size_t need = d.type == R_BYTE ? 1 : d.type == R_U16 ? 2 : 4;
		int s;
		switch (d.type) {
		case R_BYTE:
		case R_U16:
		case R_U32:
			if (b.len - b.pos < need)
				return MOAT_EMALFORMED;
			for (size_t i = 0; i < need; i++)
				v = v << 8 | b.p[b.pos + i];
			b.pos += need;
			break;
		case R_VARINT:
			if (!ref_varint(&b, &v))
				return MOAT_EMALFORMED;
			break;
		case R_UTF8:
		case R_BIN:
			s = ref_string(&b, d.type == R_UTF8);
			if (s)
				return s == 1 ? MOAT_EMALFORMED : MOAT_EUTF8;
			break;
		case R_PAIR:
			s = ref_string(&b, true);
			if (!s)
				s = ref_string(&b, true);
			if (s)
				return s == 1 ? MOAT_EMALFORMED : MOAT_EUTF8;
			break;
		default:
			abort();
		}
		if (!ref_multi(id, ctx)) {
			if (seen >> id & 1)
				proto = MOAT_EPROTO;
			seen |= 1ull << id;
		}
		if (!ref_value_ok(id, v))
			proto = MOAT_EPROTO;
	}
	return proto;
}

static uint32_t num_field(const struct moat_mqtt_props *p, uint8_t id)
{
	switch (id) {
	case 0x01: return p->payload_format;
	case 0x02: return p->message_expiry;
	case 0x0B: return p->subscription_id;
	case 0x11: return p->session_expiry;
	case 0x13: return p->server_keepalive;
	case 0x17: return p->request_problem_info;
	case 0x18: return p->will_delay;
	case 0x19: return p->request_response_info;
	case 0x21: return p->receive_maximum;
	case 0x22: return p->topic_alias_maximum;
	case 0x23: return p->topic_alias;
	case 0x24: return p->maximum_qos;
	case 0x25: return p->retain_available;
	case 0x27: return p->maximum_packet_size;
	case 0x28: return p->wildcard_available;
	case 0x29: return p->subid_available;
	case 0x2A: return p->shared_available;
	default: abort();
	}
}

static struct moat_bytes bytes_field(const struct moat_mqtt_props *p,
				     uint8_t id)
{
	switch (id) {
	case 0x03: return p->content_type;
	case 0x08: return p->response_topic;
	case 0x09: return p->correlation_data;
	case 0x12: return p->assigned_client_id;
	case 0x15: return p->auth_method;
	case 0x16: return p->auth_data;
	case 0x1A: return p->response_info;
	case 0x1C: return p->server_reference;
	case 0x1F: return p->reason_string;
	default: abort();
	}
}

/* A block that props_read accepted (rc OK) or found only Protocol Errors
 * in (rc EPROTO): props_next walks exactly raw.len bytes, in contiguous
 * wire slices; on OK every field agrees with the last item of its id, the
 * counters and the `has` set agree with the items, and each item
 * re-encodes through the moat_pw writers to its own wire bytes. */
static void check_props(const struct moat_mqtt_props *p, unsigned ctx, int rc,
			const uint8_t *base, size_t len)
{
	CHECK(slice_in(p->raw, base, len));
	size_t pos = 0, n_user = 0, n_sid = 0;
	uint64_t has = 0;
	struct moat_mqtt_prop_item it;
	while (moat_mqtt_props_next(&p->raw, &pos, &it)) {
		CHECK(it.wire.p == p->raw.p + (pos - it.wire.len));
		CHECK(it.wire.len >= 2);
		struct rdef d = ref_def(it.id);
		CHECK(d.type != R_NONE && (d.ctx & K(ctx)));
		n_user += it.id == 0x26;
		n_sid += it.id == 0x0B;
		if (!ref_multi(it.id, ctx))
			has |= 1ull << it.id;
		if (rc != MOAT_OK)
			continue;
		CHECK(ref_value_ok(it.id, it.num));
		if (d.type == R_UTF8 || d.type == R_BIN) {
			struct moat_bytes f = bytes_field(p, it.id);
			CHECK(f.p == it.a.p && f.len == it.a.len);
		} else if (d.type != R_PAIR && !ref_multi(it.id, ctx)) {
			CHECK(num_field(p, it.id) == it.num);
		}
		/* re-encode */
		uint8_t tmp[8 + 2 * 65537];
		struct moat_pw w;
		moat_pw_init(&w, tmp, sizeof(tmp));
		switch (d.type) {
		case R_BYTE: moat_pw_u8(&w, it.id, (uint8_t)it.num); break;
		case R_U16: moat_pw_u16(&w, it.id, (uint16_t)it.num); break;
		case R_U32: moat_pw_u32(&w, it.id, it.num); break;
		case R_VARINT: moat_pw_varint(&w, it.id, it.num); break;
		case R_UTF8:
		case R_BIN: moat_pw_bytes(&w, it.id, it.a.p, it.a.len); break;
		case R_PAIR: {
			moat_pw_bytes(&w, it.id, it.a.p, it.a.len);
			uint8_t l[2] = {(uint8_t)(it.b.len >> 8),
					(uint8_t)it.b.len};
			moat_pw_raw(&w, l, 2);
			moat_pw_raw(&w, it.b.p, it.b.len);
			break;
		}
		default: abort();
		}
		CHECK(!w.overflow);
		/* equal, unless the input used a non-minimal varint for the
		 * identifier or a Subscription Identifier */
		if (w.len == it.wire.len)
			CHECK(memcmp(tmp, it.wire.p, w.len) == 0);
		else
			CHECK(w.len < it.wire.len &&
			      (it.wire.p[0] != it.id || d.type == R_VARINT));
	}
	CHECK(pos == p->raw.len);
	if (rc == MOAT_OK) {
		CHECK(n_user == p->n_user);
		CHECK(n_sid == p->n_subscription_ids);
		CHECK(has == p->has);
	}
}

/* Length of the varint that precedes a property block. */
static size_t block_hdr(const struct moat_mqtt_props *p, const uint8_t *at)
{
	CHECK(p->raw.p >= at && p->raw.p - at <= 4);
	return (size_t)(p->raw.p - at);
}

static void fuzz_props(unsigned ctx, const uint8_t *buf, size_t len)
{
	struct moat_rd rd;
	struct moat_mqtt_props p;
	moat_rd_init(&rd, buf, len);
	int rc = moat_mqtt_props_read(&rd, (enum moat_mqtt_prop_ctx)ctx, &p);
	size_t consumed = 0;
	int want = ref_props_read(buf, len, ctx, &consumed);
	if (rc != want) {
		fprintf(stderr, "props ctx %u: rc %d, reference %d\n", ctx, rc,
			want);
		abort();
	}
	CHECK(rc == MOAT_OK || rc == MOAT_EPROTO || rc == MOAT_EMALFORMED ||
	      rc == MOAT_EUTF8);
	if (rc != MOAT_OK && rc != MOAT_EPROTO)
		return;
	CHECK(rd.pos == consumed);
	CHECK(consumed == block_hdr(&p, buf) + p.raw.len);
	check_props(&p, ctx, rc, buf, len);
}

/* ---- CONNECT (3.1, 3.1.1, 5) ---- */

static void put(uint8_t **o, const void *p, size_t n)
{
	if (n)
		memcpy(*o, p, n);
	*o += n;
}

static void put_str(uint8_t **o, struct moat_bytes s)
{
	uint8_t l[2] = {(uint8_t)(s.len >> 8), (uint8_t)s.len};
	put(o, l, 2);
	put(o, s.p, s.len);
}

/* "MQTT" level 5: where the two CONNECT entry points differ. */
static bool is_mqtt5(const uint8_t *body, size_t len)
{
	return len >= 7 && memcmp(body, "\x00\x04MQTT\x05", 7) == 0;
}

static void fuzz_connect_v(bool allow_v5, const uint8_t *body, size_t len)
{
	struct moat_mqtt_connect5 c5;
	uint8_t crc = 0x55;
	int rc = moat_mqtt_decode_connect_v(body, len, allow_v5, &c5, &crc);
	/* A Protocol Error inside an accepted v5 CONNECT (its properties)
	 * leaves connack_rc 0: the broker answers CONNACK 0x82. */
	if (rc == MOAT_EPROTO)
		CHECK(crc == MQTT_CONNACK_BAD_PROTOCOL || crc == 0xFF ||
		      (crc == 0 && allow_v5 && is_mqtt5(body, len)));
	if (rc != MOAT_OK) {
		CHECK(rc == MOAT_EPROTO || rc == MOAT_EMALFORMED ||
		      rc == MOAT_EUTF8);
		if (!allow_v5 || !is_mqtt5(body, len)) {
			/* same as the 3.1.1 entry point */
			struct moat_mqtt_connect c3;
			uint8_t crc3 = 0x55;
			int rc3 = moat_mqtt_decode_connect(body, len, &c3,
							   &crc3);
			CHECK(rc3 == rc && (rc != MOAT_EPROTO || crc3 == crc));
		}
		return;
	}
	const struct moat_mqtt_connect *c = &c5.c;
	bool v5 = c->proto_level == MQTT_PROTO_V5;
	CHECK(crc == MQTT_CONNACK_ACCEPTED);
	CHECK(!v5 || allow_v5);
	CHECK(c->has_username || !c->has_password || v5);
	CHECK(c->will_flag || (c->will_qos == 0 && !c->will_retain));
	CHECK(c->will_qos <= 2);
	if (!v5) {
		CHECK(c5.props.raw.len == 0 && c5.will_props.raw.len == 0);
		struct moat_mqtt_connect c3;
		uint8_t crc3;
		memset(&c3, 0, sizeof(c3)); /* padding, for the memcmp */
		CHECK(moat_mqtt_decode_connect(body, len, &c3, &crc3) ==
		      MOAT_OK);
		CHECK(memcmp(&c3, c, sizeof(c3)) == 0);
		return;
	}
	if (!c->will_flag)
		CHECK(c5.will_props.raw.len == 0 && c5.will_props.has == 0);
	check_props(&c5.props, PCTX_CONNECT, MOAT_OK, body, len);
	if (c->will_flag)
		check_props(&c5.will_props, PCTX_WILL, MOAT_OK, body, len);
	/* rebuild the body from what was decoded: must be the input */
	uint8_t *out = malloc(len + 1), *o = out;
	if (!out)
		abort();
	put_str(&o, c->proto_name);
	uint8_t f = (uint8_t)((c->has_username ? 0x80 : 0) |
			      (c->has_password ? 0x40 : 0) |
			      (c->will_retain ? 0x20 : 0) | (c->will_qos << 3) |
			      (c->will_flag ? 0x04 : 0) |
			      (c->clean_session ? 0x02 : 0));
	uint8_t hdr[4] = {c->proto_level, f, (uint8_t)(c->keepalive >> 8),
			  (uint8_t)c->keepalive};
	put(&o, hdr, 4);
	const uint8_t *at = body + (o - out);
	put(&o, at, block_hdr(&c5.props, at)); /* the length as sent */
	put(&o, c5.props.raw.p, c5.props.raw.len);
	put_str(&o, c->client_id);
	if (c->will_flag) {
		at = body + (o - out);
		put(&o, at, block_hdr(&c5.will_props, at));
		put(&o, c5.will_props.raw.p, c5.will_props.raw.len);
		put_str(&o, c->will_topic);
		put_str(&o, c->will_payload);
	}
	if (c->has_username)
		put_str(&o, c->username);
	if (c->has_password)
		put_str(&o, c->password);
	CHECK((size_t)(o - out) == len && memcmp(out, body, len) == 0);
	free(out);
}

/* ---- PUBLISH (3, 4, 5) ---- */

static void fuzz_publish_v(uint8_t flags, uint8_t version, const uint8_t *body,
			   size_t len)
{
	struct moat_mqtt_publish5 m;
	int rc = moat_mqtt_decode_publish_v(flags, body, len, version, &m);
	if (version != MQTT_PROTO_V5) {
		struct moat_mqtt_publish p3;
		CHECK(moat_mqtt_decode_publish(flags, body, len, &p3) == rc);
		if (rc == MOAT_OK)
			CHECK(memcmp(&p3, &m.p, sizeof(p3)) == 0);
		CHECK(m.props.raw.len == 0 && m.props.has == 0);
		return;
	}
	if (rc != MOAT_OK) {
		CHECK(rc == MOAT_EPROTO || rc == MOAT_EMALFORMED ||
		      rc == MOAT_EUTF8);
		return;
	}
	const struct moat_mqtt_publish *p = &m.p;
	CHECK(p->qos <= 2 && (p->qos > 0 || !p->dup));
	CHECK((p->qos == 0) == (p->packet_id == 0));
	CHECK(p->topic.len ? moat_topic_name_valid(p->topic.p, p->topic.len)
			   : moat_props_has(&m.props, PROP_TOPIC_ALIAS));
	CHECK(m.props.n_subscription_ids == 0);
	CHECK(!moat_props_has(&m.props, PROP_TOPIC_ALIAS) ||
	      m.props.topic_alias != 0);
	CHECK(slice_in(p->topic, body, len) && slice_in(p->payload, body, len));
	check_props(&m.props, PCTX_PUBLISH, MOAT_OK, body, len);
	CHECK(p->payload.p + p->payload.len == body + len);

	/* re-encode with the properties as the "message's own" */
	size_t n = moat_mqtt5_publish_size(p->topic.len, m.props.raw.len,
					   p->payload.len, p->qos);
	CHECK(n > 0);
	uint8_t *out = malloc(n);
	if (!out)
		abort();
	CHECK(moat_mqtt5_publish_encode(out, p->topic.p, p->topic.len, NULL, 0,
					m.props.raw.p, m.props.raw.len,
					p->payload.p, p->payload.len, p->qos,
					p->retain, p->dup,
					p->packet_id) == n);
	uint8_t tf;
	uint32_t rem;
	size_t hl;
	CHECK(moat_mqtt_fixed_header(out, n, &tf, &rem, &hl) == MOAT_OK);
	CHECK(tf == (uint8_t)((MQTT_PUBLISH << 4) | (flags & 0x0F)));
	CHECK(hl + rem == n);
	/* identical when the property length was minimally encoded */
	size_t at = 2 + p->topic.len + (p->qos ? 2u : 0u);
	size_t vl = block_hdr(&m.props, body + at);
	size_t minvl = moat_mqtt_varint_size((uint32_t)m.props.raw.len);
	CHECK(rem + vl == len + minvl);
	if (vl == minvl)
		CHECK(memcmp(out + hl, body, len) == 0);
	/* and decodes back to the same */
	struct moat_mqtt_publish5 m2;
	uint8_t *b2 = fuzz_copy_exact(out + hl, rem);
	CHECK(moat_mqtt_decode_publish_v(tf & 0x0F, b2, rem, 5, &m2) ==
	      MOAT_OK);
	CHECK(m2.p.packet_id == p->packet_id && m2.p.qos == p->qos);
	CHECK(m2.p.topic.len == p->topic.len &&
	      memcmp(m2.p.topic.p, p->topic.p, p->topic.len) == 0);
	CHECK(m2.p.payload.len == p->payload.len &&
	      (p->payload.len == 0 ||
	       memcmp(m2.p.payload.p, p->payload.p, p->payload.len) == 0));
	CHECK(m2.props.raw.len == m.props.raw.len &&
	      m2.props.has == m.props.has && m2.props.n_user == m.props.n_user);
	free(b2);
	free(out);
}

/* ---- PUBACK/PUBREC/PUBREL/PUBCOMP (v5) ---- */

/* Property block raw bytes as a writer, for the encoders. */
static uint8_t *pw_from(struct moat_pw *w, struct moat_bytes raw)
{
	uint8_t *buf = malloc(raw.len ? raw.len : 1);
	if (!buf)
		abort();
	moat_pw_init(w, buf, raw.len);
	moat_pw_raw(w, raw.p, raw.len);
	CHECK(!w->overflow && w->len == raw.len);
	return buf;
}

static void fuzz_ack_v(uint8_t sel, const uint8_t *body, size_t len)
{
	static const enum moat_mqtt_type types[4] = {MQTT_PUBACK, MQTT_PUBREC,
						     MQTT_PUBREL, MQTT_PUBCOMP};
	enum moat_mqtt_type type = types[sel & 3];
	uint8_t version = (sel & 4) ? MQTT_PROTO_V311 : MQTT_PROTO_V5;
	uint16_t id = 0;
	uint8_t reason = 0x55;
	struct moat_mqtt_props props;
	int rc = moat_mqtt_decode_ack_v(body, len, version, &id, &reason,
					&props);
	if (version != MQTT_PROTO_V5) {
		uint16_t id3;
		CHECK(moat_mqtt_decode_ack(body, len, &id3) == rc);
		CHECK(reason == 0 && props.raw.len == 0);
		return;
	}
	if (rc != MOAT_OK) {
		CHECK(rc == MOAT_EPROTO || rc == MOAT_EMALFORMED ||
		      rc == MOAT_EUTF8);
		return;
	}
	CHECK(len >= 2 && id != 0);
	CHECK(len > 2 || reason == 0);
	CHECK(len > 3 || props.raw.len == 0);
	if (len > 3) {
		check_props(&props, PCTX_ACK, MOAT_OK, body, len);
		CHECK(3 + block_hdr(&props, body + 3) + props.raw.len == len);
	}
	struct moat_pw w;
	uint8_t *pb = pw_from(&w, props.raw);
	struct moat_buf b;
	moat_buf_init(&b, (size_t)1 << 20);
	CHECK(moat_mqtt5_ack(&b, type, id, reason, &w) == MOAT_OK);
	const uint8_t *pkt = b.data + b.off;
	size_t n = moat_buf_used(&b);
	uint8_t tf;
	uint32_t rem;
	size_t hl;
	CHECK(moat_mqtt_fixed_header(pkt, n, &tf, &rem, &hl) == MOAT_OK);
	CHECK(hl + rem == n && moat_mqtt_check_flags(tf) == MOAT_OK);
	CHECK(tf >> 4 == type);
	bool short_form = reason == 0 && props.raw.len == 0;
	CHECK(short_form ? rem == 2 : rem >= 4);
	/* identical to the input in the canonical forms */
	if ((short_form && len == 2) ||
	    (!short_form && len >= 4 &&
	     block_hdr(&props, body + 3) ==
		     moat_mqtt_varint_size((uint32_t)props.raw.len)))
		CHECK(rem == len && memcmp(pkt + hl, body, len) == 0);
	uint8_t *b2 = fuzz_copy_exact(pkt + hl, rem);
	uint16_t id2;
	uint8_t reason2;
	struct moat_mqtt_props p2;
	CHECK(moat_mqtt_decode_ack_v(b2, rem, 5, &id2, &reason2, &p2) ==
	      MOAT_OK);
	CHECK(id2 == id && reason2 == reason && p2.raw.len == props.raw.len &&
	      (p2.raw.len == 0 ||
	       memcmp(p2.raw.p, props.raw.p, p2.raw.len) == 0));
	free(b2);
	moat_buf_cleanup(&b);
	free(pb);
}

/* ---- SUBSCRIBE / UNSUBSCRIBE (3, 4, 5) ---- */

static void fuzz_sub_v(uint8_t sel, const uint8_t *body, size_t len)
{
	bool subscribe = !(sel & 1);
	uint8_t version = (sel & 2) ? MQTT_PROTO_V311 : MQTT_PROTO_V5;
	struct moat_rd rd;
	uint16_t id = 0;
	struct moat_mqtt_props props;
	int rc = moat_mqtt_decode_sub_start_v(body, len, version, subscribe,
					      &rd, &id, &props);
	if (version != MQTT_PROTO_V5) {
		struct moat_rd rd3;
		uint16_t id3;
		CHECK(moat_mqtt_decode_sub_start(body, len, &rd3, &id3) == rc);
		CHECK(props.raw.len == 0);
		if (rc != MOAT_OK)
			return;
		CHECK(rd3.pos == rd.pos && id3 == id);
	} else if (rc != MOAT_OK) {
		CHECK(rc == MOAT_EPROTO || rc == MOAT_EMALFORMED ||
		      rc == MOAT_EUTF8);
		return;
	} else {
		CHECK(id != 0 && moat_rd_left(&rd) > 0);
		check_props(&props,
			    subscribe ? PCTX_SUBSCRIBE : PCTX_UNSUBSCRIBE,
			    MOAT_OK, body, len);
		CHECK(rd.pos == 2 + block_hdr(&props, body + 2) +
					props.raw.len);
	}
	size_t count = 0;
	for (;;) {
		struct moat_bytes f;
		struct moat_sub_opts o;
		size_t before = rd.pos;
		if (subscribe)
			rc = moat_mqtt_decode_sub_next_v(&rd, version, &f, &o);
		else
			rc = moat_mqtt_decode_unsub_next(&rd, &f);
		if (rc != MOAT_OK)
			break;
		count++;
		CHECK(slice_in(f, body, len));
		CHECK(f.p == body + before + 2);
		if (!subscribe) {
			CHECK(rd.pos == before + 2 + f.len);
			continue;
		}
		CHECK(rd.pos == before + 3 + f.len);
		CHECK(o.qos <= 2 && o.retain_handling <= 2);
		/* the options byte rebuilt from the decoded fields */
		uint8_t ob = (uint8_t)(o.qos | (o.no_local ? 0x04 : 0) |
				       (o.retain_as_published ? 0x08 : 0) |
				       (o.retain_handling << 4));
		CHECK(ob == body[rd.pos - 1]);
		if (version != MQTT_PROTO_V5)
			CHECK(ob <= 2);
	}
	if (rc == MOAT_EPROTO) {
		/* v5 only: an options byte with Maximum QoS 3 or Retain
		 * Handling 3 (§3.8.3.1), reserved bits clear (else it is
		 * Malformed); the cursor is just past it */
		uint8_t ob = body[rd.pos - 1];
		CHECK(subscribe && version == MQTT_PROTO_V5);
		CHECK(!(ob & 0xC0) && ((ob & 3) == 3 || (ob >> 4 & 3) == 3));
		return;
	}
	CHECK(rc == MOAT_ENOTFOUND || rc == MOAT_EMALFORMED ||
	      rc == MOAT_EUTF8);
	if (rc == MOAT_ENOTFOUND)
		CHECK(count > 0 && rd.pos == len);
}

/* ---- DISCONNECT / AUTH ---- */

static void fuzz_reason_props(bool auth, uint8_t version, const uint8_t *body,
			      size_t len)
{
	uint8_t reason = 0x55;
	struct moat_mqtt_props props;
	int rc = auth ? moat_mqtt_decode_auth(body, len, &reason, &props)
		      : moat_mqtt_decode_disconnect_v(body, len, version,
						       &reason, &props);
	if (!auth && version != MQTT_PROTO_V5) {
		CHECK(rc == (len ? MOAT_EMALFORMED : MOAT_OK));
		return;
	}
	if (rc != MOAT_OK) {
		CHECK(rc == MOAT_EPROTO || rc == MOAT_EMALFORMED ||
		      rc == MOAT_EUTF8);
		CHECK(len >= 2);
		return;
	}
	CHECK(len > 0 || reason == 0);
	CHECK(len > 1 || props.raw.len == 0);
	if (len > 1) {
		check_props(&props, auth ? PCTX_AUTH : PCTX_DISCONNECT, MOAT_OK,
			    body, len);
		CHECK(1 + block_hdr(&props, body + 1) + props.raw.len == len);
	}
	struct moat_pw w;
	uint8_t *pb = pw_from(&w, props.raw);
	struct moat_buf b;
	moat_buf_init(&b, (size_t)1 << 20);
	CHECK((auth ? moat_mqtt5_auth(&b, reason, &w)
		    : moat_mqtt5_disconnect(&b, reason, &w)) == MOAT_OK);
	const uint8_t *pkt = b.data + b.off;
	size_t n = moat_buf_used(&b);
	uint8_t tf;
	uint32_t rem;
	size_t hl;
	CHECK(moat_mqtt_fixed_header(pkt, n, &tf, &rem, &hl) == MOAT_OK);
	CHECK(hl + rem == n && tf == (auth ? 0xF0 : 0xE0));
	if (len >= 2 && block_hdr(&props, body + 1) ==
				moat_mqtt_varint_size((uint32_t)props.raw.len))
		CHECK(rem == len && memcmp(pkt + hl, body, len) == 0);
	uint8_t *b2 = fuzz_copy_exact(pkt + hl, rem);
	uint8_t reason2;
	struct moat_mqtt_props p2;
	CHECK((auth ? moat_mqtt_decode_auth(b2, rem, &reason2, &p2)
		    : moat_mqtt_decode_disconnect_v(b2, rem, 5, &reason2,
						     &p2)) == MOAT_OK);
	CHECK(reason2 == reason && p2.raw.len == props.raw.len &&
	      (p2.raw.len == 0 ||
	       memcmp(p2.raw.p, props.raw.p, p2.raw.len) == 0));
	free(b2);
	moat_buf_cleanup(&b);
	free(pb);
}

/* ---- an MQTT 5 packet stream ---- */

static void fuzz_stream5(const uint8_t *data, size_t size)
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
			return;
		uint8_t *body = fuzz_copy_exact(data + off + hl, rem);
		off += hl + rem;
		if (tf != 0xF0 && moat_mqtt_check_flags(tf) != MOAT_OK) {
			free(body);
			return;
		}
		switch (tf >> 4) {
		case MQTT_CONNECT: fuzz_connect_v(true, body, rem); break;
		case MQTT_PUBLISH:
			fuzz_publish_v(tf & 0x0F, MQTT_PROTO_V5, body, rem);
			break;
		case MQTT_PUBACK:
		case MQTT_PUBREC:
		case MQTT_PUBREL:
		case MQTT_PUBCOMP:
			fuzz_ack_v((uint8_t)((tf >> 4) - MQTT_PUBACK), body,
				   rem);
			break;
		case MQTT_SUBSCRIBE: fuzz_sub_v(0, body, rem); break;
		case MQTT_UNSUBSCRIBE: fuzz_sub_v(1, body, rem); break;
		case MQTT_DISCONNECT:
			fuzz_reason_props(false, MQTT_PROTO_V5, body, rem);
			break;
		case 15: fuzz_reason_props(true, MQTT_PROTO_V5, body, rem); break;
		default: break;
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
	/* MQTT 5: the first input byte (after the selector) picks the
	 * variant where the entry point has one, see below */
	F_PROPS,
	F_CONNECT_V,
	F_PUBLISH_V,
	F_ACK_V,
	F_SUB_V,
	F_DISCONNECT_V,
	F_AUTH,
	F_STREAM5,
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
		uint8_t *body = fuzz_copy_exact(in + 1, n - 1);
		fuzz_publish(in[0] & 0x0F, body, n - 1);
		free(body);
		return 0;
	}
	if (target >= F_PROPS && target <= F_DISCONNECT_V) {
		/* in[0] picks the variant; the rest is the input */
		if (n < 1)
			return 0;
		uint8_t v = in[0];
		uint8_t *body = fuzz_copy_exact(in + 1, n - 1);
		static const uint8_t versions[3] = {MQTT_PROTO_V5,
						    MQTT_PROTO_V311,
						    MQTT_PROTO_V31};
		switch (target) {
		case F_PROPS: fuzz_props(v % N_PCTX, body, n - 1); break;
		case F_CONNECT_V: fuzz_connect_v(v & 1, body, n - 1); break;
		case F_PUBLISH_V:
			fuzz_publish_v(v & 0x0F, versions[(v >> 4) % 3], body,
				       n - 1);
			break;
		case F_ACK_V: fuzz_ack_v(v, body, n - 1); break;
		case F_SUB_V: fuzz_sub_v(v, body, n - 1); break;
		case F_DISCONNECT_V:
			fuzz_reason_props(false,
					  (v & 1) ? MQTT_PROTO_V311
						  : MQTT_PROTO_V5,
					  body, n - 1);
			break;
		default: break;
		}
		free(body);
		return 0;
	}
	if (target == F_TOPIC) {
		fuzz_topic(in, n); /* makes its own exact copies */
		return 0;
	}
	uint8_t *buf = fuzz_copy_exact(in, n);
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
	case F_AUTH:
		fuzz_reason_props(true, MQTT_PROTO_V5, buf, n);
		break;
	case F_STREAM5:
		fuzz_stream5(buf, n);
		break;
	default:
		break;
	}
	free(buf);
	return 0;
}
