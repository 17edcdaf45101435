/* SUBSCRIBE and UNSUBSCRIBE. */
#include <string.h>

#include "broker_int.h"

static struct moat_sub_entry *find_sub(struct moat_session *s,
				       const struct moat_bytes *f)
{
	for (size_t i = 0; i < s->nsubs; i++)
		if (s->subs[i].len == f->len &&
		    !memcmp(s->subs[i].filter, f->p, f->len))
			return &s->subs[i];
	return NULL;
}

static int remember_sub(struct moat_session *s, const struct moat_bytes *f,
			uint8_t qos)
{
	if (s->nsubs == s->subs_cap) {
		size_t cap = s->subs_cap ? s->subs_cap * 2 : 4;
		struct moat_sub_entry *v =
			moat_realloc(s->subs, cap * sizeof(*v));
		if (!v)
			return MOAT_ENOMEM;
		s->subs = v;
		s->subs_cap = cap;
	}
	char *copy = moat_strndup((const char *)f->p, f->len);
	if (!copy)
		return MOAT_ENOMEM;
	s->subs[s->nsubs].filter = copy;
	s->subs[s->nsubs].len = (uint16_t)f->len;
	s->subs[s->nsubs].qos = qos;
	s->nsubs++;
	return MOAT_OK;
}

/* Subscribe one filter; returns the SUBACK code. */
static uint8_t subscribe_one(struct moat_conn *c, const struct moat_bytes *f,
			     uint8_t qos)
{
	struct moat_session *s = c->session;
	struct moat_broker *b = c->w->b;
	const struct moat_config *cfg = &b->cfg;
	if (f->len > cfg->max_topic_length ||
	    moat_topic_levels(f->p, f->len) > cfg->max_topic_levels)
		return MQTT_SUBACK_FAILURE;
	struct moat_sub_entry *e = find_sub(s, f);
	if (!e && s->nsubs >= cfg->max_subscriptions) {
		moat_warn("client %s: max_subscriptions (%llu) reached",
			  s->client_id,
			  (unsigned long long)cfg->max_subscriptions);
		return MQTT_SUBACK_FAILURE;
	}
	if (!e && remember_sub(s, f, qos) != MOAT_OK)
		return MQTT_SUBACK_FAILURE;
	bool added;
	if (moat_tree_subscribe(&b->tree, f->p, f->len, s, qos, &added) !=
	    MOAT_OK) {
		if (!e) /* undo remember_sub */
			moat_free(s->subs[--s->nsubs].filter);
		return MQTT_SUBACK_FAILURE;
	}
	if (e)
		e->qos = qos;
	return qos; /* granted as asked [MQTT-3.9.3-2] */
}

/* Send retained messages for a filter just granted [MQTT-3.3.1-6]. */
static void send_retained(struct moat_conn *c, const struct moat_bytes *f,
			  uint8_t granted)
{
	struct moat_msg **v;
	size_t n;
	if (moat_tree_retained(&c->w->b->tree, f->p, f->len, &v, &n) !=
	    MOAT_OK) {
		moat_warn("client %s: out of memory sending retained messages",
			  c->session->client_id);
		return;
	}
	for (size_t i = 0; i < n; i++) {
		/* retain flag set for a new subscription [MQTT-3.3.1-8] */
		if (c->session)
			moat_session_deliver(c->session, v[i],
					     MOAT_MIN(granted, v[i]->qos),
					     true);
		moat_msg_unref(&v[i]);
	}
	moat_free(v);
}

int moat__handle_subscribe(struct moat_conn *c, const uint8_t *body,
			   size_t len)
{
	struct moat_rd rd;
	uint16_t id;
	struct moat_bytes f;
	uint8_t qos;
	int rc = moat_mqtt_decode_sub_start(body, len, &rd, &id);
	if (rc)
		return rc;
	/* Each filter takes at least 3 bytes, which bounds the count. */
	size_t max = len / 3 + 1;
	uint8_t *codes = moat_malloc(max);
	uint8_t *pkt = NULL;
	size_t n = 0;
	if (!codes)
		return MOAT_ENOMEM;
	/* Validate the whole packet before acting on any of it. */
	while ((rc = moat_mqtt_decode_sub_next(&rd, &f, &qos)) == MOAT_OK) {
		if (!moat_topic_filter_valid(f.p, f.len)) {
			rc = MOAT_EPROTO; /* [MQTT-4.7.1-1] */
			goto out;
		}
		n++;
	}
	if (rc != MOAT_ENOTFOUND)
		goto out;
	moat_rd_init(&rd, body, len);
	rd.pos = 2;
	for (size_t i = 0; i < n; i++) {
		(void)moat_mqtt_decode_sub_next(&rd, &f, &qos);
		codes[i] = subscribe_one(c, &f, qos);
	}
	size_t size = moat_mqtt_suback_size(n); /* n < len: representable */
	pkt = moat_malloc(size);
	if (!pkt) {
		rc = MOAT_ENOMEM;
		goto out;
	}
	moat_mqtt_suback_encode(pkt, id, codes, n); /* [MQTT-3.8.4-5] */
	if ((rc = moat_conn_send(c, pkt, size)) != MOAT_OK)
		goto out;
	rd.pos = 2;
	for (size_t i = 0; i < n && c->state == CONN_ACTIVE; i++) {
		(void)moat_mqtt_decode_sub_next(&rd, &f, &qos);
		if (codes[i] != MQTT_SUBACK_FAILURE)
			send_retained(c, &f, codes[i]);
	}
	rc = MOAT_OK;
out:
	moat_free(pkt);
	moat_free(codes);
	return rc;
}

int moat__handle_unsubscribe(struct moat_conn *c, const uint8_t *body,
			     size_t len)
{
	struct moat_session *s = c->session;
	struct moat_rd rd;
	uint16_t id;
	struct moat_bytes f;
	int rc = moat_mqtt_decode_sub_start(body, len, &rd, &id);
	if (rc)
		return rc;
	size_t start = rd.pos;
	while ((rc = moat_mqtt_decode_unsub_next(&rd, &f)) == MOAT_OK)
		;
	if (rc != MOAT_ENOTFOUND)
		return rc;
	rd.pos = start;
	while (moat_mqtt_decode_unsub_next(&rd, &f) == MOAT_OK) {
		struct moat_sub_entry *e = find_sub(s, &f);
		if (!e)
			continue;
		moat_tree_unsubscribe(&c->w->b->tree, f.p, f.len, s);
		moat_free(e->filter);
		*e = s->subs[--s->nsubs];
	}
	uint8_t pkt[4];
	moat_mqtt_ack_encode(pkt, MQTT_UNSUBACK, id); /* [MQTT-3.10.4-4] */
	return moat_conn_send(c, pkt, sizeof(pkt));
}
