/* The envelope of a message between nodes (docs/cluster.md, "Wire
 * format"): what MQTT needs beyond topic and payload, in front of the
 * payload, so that one NATS message carries it without headers.
 *
 *   byte 0     version (1)
 *   byte 1     flags: bits 0-1 QoS, 2 retain, 3 expiry, 4 source,
 *              5 the publishing node served the shared groups itself
 *              (it had no NATS then): their consumers skip it
 *   bytes 2-9  the sending process's nonce (big-endian)
 *   [expiry]   u32 Message Expiry Interval left, seconds
 *   the MQTT 5 properties forwarded (payload format, content type,
 *              response topic, correlation data, user properties) as in
 *              a PUBLISH: variable byte integer length, properties
 *   [source]   u16 user length (0xffff: anonymous) + user,
 *              u16 client id length + client id
 *   the payload (the rest)
 *
 * Decoding trusts nothing: every length is checked against what is
 * left, and the properties are parsed as a PUBLISH's and must be ones a
 * node forwards. */
#include <string.h>

#include "broker/broker_int.h"
#include "cluster/cluster_int.h"
#include "codec/mqtt5.h"
#include "codec/mqtt_prim.h"

#define ENV_VERSION 1
#define F_RETAIN 0x04u
#define F_EXPIRY 0x08u
#define F_SOURCE 0x10u
#define F_GROUPS 0x20u
#define NO_USER 0xffffu
/* The properties a node forwards (moat__forward_props). */
#define FORWARDED                                                             \
	((1ull << PROP_PAYLOAD_FORMAT) | (1ull << PROP_CONTENT_TYPE) |         \
	 (1ull << PROP_RESPONSE_TOPIC) | (1ull << PROP_CORRELATION_DATA) |    \
	 (1ull << PROP_USER_PROPERTY))

static uint8_t *put32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
	return p + 4;
}

static uint8_t *put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
	return p + 2;
}

static uint32_t get32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	       (uint32_t)p[2] << 8 | p[3];
}

static uint16_t get16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

size_t moat__cluster_env_size(const struct moat_msg *m)
{
	size_t n = 10 + 4 + 4 + m->props_len + m->payload_len;
	if (m->has_src)
		n += 4 + (m->src_user ? strlen(m->src_user) : 0) +
		     strlen(m->src_cid);
	return n;
}

size_t moat__cluster_env_encode(const struct moat_msg *m, uint64_t nonce,
				bool groups_done, uint64_t now_ms, uint8_t *out)
{
	uint8_t *p = out;
	bool expiry = m->expiry_ms != 0;
	size_t ulen = m->src_user ? strlen(m->src_user) : 0;
	size_t clen = m->has_src ? strlen(m->src_cid) : 0;
	bool src = m->has_src && ulen < NO_USER && clen < NO_USER;
	*p++ = ENV_VERSION;
	*p++ = (uint8_t)((m->qos & 3u) | (m->retain ? F_RETAIN : 0) |
			 (expiry ? F_EXPIRY : 0) | (src ? F_SOURCE : 0) |
			 (groups_done ? F_GROUPS : 0));
	p = put32(p, (uint32_t)(nonce >> 32));
	p = put32(p, (uint32_t)nonce);
	if (expiry) {
		/* What is left, rounded up: never 0 while it has not expired. */
		uint64_t left = m->expiry_ms > now_ms
					? (m->expiry_ms - now_ms + 999) / 1000
					: 1;
		p = put32(p, (uint32_t)MOAT_MIN(left, (uint64_t)UINT32_MAX - 1));
	}
	p += moat_mqtt_varint_write(p, m->props_len);
	if (m->props_len)
		memcpy(p, m->props, m->props_len);
	p += m->props_len;
	if (src) {
		p = put16(p, m->src_user ? (uint16_t)ulen : NO_USER);
		if (ulen)
			memcpy(p, m->src_user, ulen);
		p += ulen;
		p = put16(p, (uint16_t)clen);
		memcpy(p, m->src_cid, clen);
		p += clen;
	}
	if (m->payload_len)
		memcpy(p, m->payload, m->payload_len);
	return (size_t)(p - out) + m->payload_len;
}

/* A bounded string of the envelope into buf (NUL-terminated). */
static bool take_str(const uint8_t **p, const uint8_t *end, size_t len,
		     char *buf, size_t cap)
{
	if ((size_t)(end - *p) < len || len >= cap || memchr(*p, 0, len))
		return false;
	memcpy(buf, *p, len);
	buf[len] = 0;
	*p += len;
	return true;
}

int moat__cluster_env_decode(const uint8_t *d, size_t len,
			     const uint8_t *topic, size_t tlen,
			     uint64_t *nonce, bool *groups_done,
			     struct moat_msg **out)
{
	const uint8_t *p = d, *end = d + len;
	*out = NULL;
	if (len < 11 || p[0] != ENV_VERSION || (p[1] & 3u) == 3u ||
	    (p[1] & ~0x3fu))
		return MOAT_EMALFORMED;
	uint8_t flags = p[1];
	*groups_done = (flags & F_GROUPS) != 0;
	*nonce = (uint64_t)get32(p + 2) << 32 | get32(p + 6);
	p += 10;
	struct moat_msg_extra x = {0};
	if (flags & F_EXPIRY) {
		if (end - p < 4)
			return MOAT_EMALFORMED;
		x.has_expiry = true;
		x.expiry_s = get32(p);
		p += 4;
	}
	struct moat_rd rd;
	struct moat_mqtt_props pr;
	moat_rd_init(&rd, p, (size_t)(end - p));
	if (moat_mqtt_props_read(&rd, PCTX_PUBLISH, &pr) != MOAT_OK ||
	    (pr.has & ~FORWARDED) || pr.n_subscription_ids)
		return MOAT_EMALFORMED;
	x.props = pr.raw.p;
	x.props_len = pr.raw.len;
	p += rd.pos;
	char user[256], cid[65536];
	if (flags & F_SOURCE) {
		if (end - p < 2)
			return MOAT_EMALFORMED;
		uint16_t ulen = get16(p);
		p += 2;
		if (ulen != NO_USER &&
		    !take_str(&p, end, ulen, user, sizeof(user)))
			return MOAT_EMALFORMED;
		if (end - p < 2)
			return MOAT_EMALFORMED;
		uint16_t clen = get16(p);
		p += 2;
		if (!take_str(&p, end, clen, cid, sizeof(cid)))
			return MOAT_EMALFORMED;
		x.has_src = true;
		x.src_user = ulen == NO_USER ? NULL : user;
		x.src_cid = cid;
	}
	struct moat_msg *m = moat_msg_new5(topic, tlen, p, (size_t)(end - p),
					   flags & 3u, (flags & F_RETAIN) != 0,
					   &x);
	if (!m)
		return MOAT_ENOMEM;
	m->remote = true;
	*out = m;
	return MOAT_OK;
}
