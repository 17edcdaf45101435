#include <string.h>

#include "broker_int.h"

struct moat_msg *moat_msg_new5(const uint8_t *topic, size_t topic_len,
			       const uint8_t *payload, size_t payload_len,
			       uint8_t qos, bool retain,
			       const struct moat_msg_extra *x)
{
	size_t plen = x ? x->props_len : 0;
	bool src = x && x->has_src;
	size_t ulen = src && x->src_user ? strlen(x->src_user) + 1 : 0;
	size_t clen = src && x->src_cid ? strlen(x->src_cid) + 1 : 0;
	if (topic_len > UINT16_MAX || payload_len > UINT32_MAX ||
	    plen > UINT32_MAX)
		return NULL;
	struct moat_msg *m = moat_malloc(sizeof(*m) + topic_len + 1 +
					 payload_len + plen + ulen + clen);
	if (!m)
		return NULL;
	atomic_init(&m->refs, 1);
	m->qos = qos;
	m->retain = retain;
	m->topic_len = (uint16_t)topic_len;
	m->payload_len = (uint32_t)payload_len;
	m->props_len = (uint32_t)plen;
	m->expiry_ms = 0;
	m->origin = x ? x->origin : 0;
	m->remote = false;
	m->expiry_pending = x && x->has_expiry && x->expiry_on_publish;
	m->expiry_s = x ? x->expiry_s : 0;
	if (x && x->has_expiry && !x->expiry_on_publish)
		m->expiry_ms = moat_now_ms() + (uint64_t)x->expiry_s * 1000u;
	memcpy(m->topic, topic, topic_len);
	m->topic[topic_len] = '\0';
	uint8_t *pl = (uint8_t *)m->topic + topic_len + 1;
	if (payload_len)
		memcpy(pl, payload, payload_len);
	m->payload = pl;
	m->props = pl + payload_len;
	if (plen)
		memcpy(pl + payload_len, x->props, plen);
	char *tail = (char *)pl + payload_len + plen;
	m->has_src = src;
	m->src_user = ulen ? memcpy(tail, x->src_user, ulen) : NULL;
	m->src_cid = clen ? memcpy(tail + ulen, x->src_cid, clen) : "";
	return m;
}

struct moat_msg *moat_msg_new(const uint8_t *topic, size_t topic_len,
			      const uint8_t *payload, size_t payload_len,
			      uint8_t qos, bool retain)
{
	return moat_msg_new5(topic, topic_len, payload, payload_len, qos,
			     retain, NULL);
}

const char *moat__log_topic(const char *topic, size_t len, char *buf,
			    size_t bufsz)
{
	return moat_log_escape((const uint8_t *)topic, len, buf, bufsz);
}

void moat_msg_start_expiry(struct moat_msg *m)
{
	if (m->expiry_pending) {
		m->expiry_pending = false;
		m->expiry_ms = moat_now_ms() + (uint64_t)m->expiry_s * 1000u;
	}
}

struct moat_msg *moat_msg_ref(struct moat_msg *m)
{
	atomic_fetch_add_explicit(&m->refs, 1, memory_order_relaxed);
	return m;
}

void moat_msg_unref(struct moat_msg **mp)
{
	struct moat_msg *m = *mp;
	if (!m)
		return;
	*mp = NULL;
	if (atomic_fetch_sub_explicit(&m->refs, 1, memory_order_acq_rel) == 1)
		moat_free(m);
}
