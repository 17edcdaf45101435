/* SUBSCRIBE and UNSUBSCRIBE. */
#include <stdlib.h>
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
			  s->log_id,
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

/* Send at most *budget retained messages for a filter just granted
 * [MQTT-3.3.1-6]; more would only be dropped by the session's queue. */
static void send_retained(struct moat_conn *c, const struct moat_bytes *f,
			  uint8_t granted, size_t *budget)
{
	struct moat_msg **v;
	size_t n;
	if (!*budget)
		return;
	if (moat_tree_retained(&c->w->b->tree, f->p, f->len, *budget, &v,
			       &n) != MOAT_OK) {
		moat_warn("client %s: out of memory sending retained messages",
			  c->session ? c->session->log_id : "?");
		return;
	}
	*budget -= n;
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

struct filter_ref {
	struct moat_bytes f;
	size_t pos;
};

static int cmp_filter(const void *a, const void *b)
{
	const struct filter_ref *x = a, *y = b;
	size_t n = MOAT_MIN(x->f.len, y->f.len);
	int c = n ? memcmp(x->f.p, y->f.p, n) : 0;
	if (c)
		return c;
	if (x->f.len != y->f.len)
		return x->f.len < y->f.len ? -1 : 1;
	return x->pos < y->pos ? -1 : x->pos > y->pos;
}

/* A filter repeated in one SUBSCRIBE counts once (the last occurrence
 * wins, as if the packets came one by one): mark the earlier ones so that
 * their retained messages are not sent again. */
static int mark_repeats(struct filter_ref *refs, size_t n, bool *repeat)
{
	struct filter_ref *sorted = moat_malloc(n * sizeof(*sorted));
	if (!sorted)
		return MOAT_ENOMEM;
	memcpy(sorted, refs, n * sizeof(*sorted));
	qsort(sorted, n, sizeof(*sorted), cmp_filter);
	for (size_t i = 0; i + 1 < n; i++)
		if (moat_bytes_eq(sorted[i].f, sorted[i + 1].f))
			repeat[sorted[i].pos] = true;
	moat_free(sorted);
	return MOAT_OK;
}

static int send_suback(struct moat_conn *c, uint16_t id,
		       const uint8_t *codes, size_t n)
{
	size_t size = moat_mqtt_suback_size(n); /* n < len: representable */
	uint8_t *pkt = moat_malloc(size);
	if (!pkt)
		return MOAT_ENOMEM;
	moat_mqtt_suback_encode(pkt, id, codes, n); /* [MQTT-3.8.4-5] */
	int rc = moat_conn_send(c, pkt, size);
	moat_free(pkt);
	return rc;
}

int moat__handle_subscribe(struct moat_conn *c, const uint8_t *body,
			   size_t len)
{
	const struct moat_config *cfg = &c->w->b->cfg;
	struct moat_rd rd;
	uint16_t id;
	struct moat_bytes f;
	uint8_t qos;
	int rc = moat_mqtt_decode_sub_start(body, len, &rd, &id);
	if (rc)
		return rc;
	/* Each filter takes at least 3 bytes, which bounds the count. */
	size_t max = len / 3 + 1, n = 0;
	uint8_t *codes = moat_malloc(max);
	struct filter_ref *refs = moat_malloc(max * sizeof(*refs));
	bool *repeat = moat_calloc(max, sizeof(*repeat));
	if (!codes || !refs || !repeat) {
		rc = MOAT_ENOMEM;
		goto out;
	}
	/* Validate the whole packet before acting on any of it. */
	while ((rc = moat_mqtt_decode_sub_next(&rd, &f, &qos)) == MOAT_OK) {
		if (!moat_topic_filter_valid(f.p, f.len)) {
			rc = MOAT_EPROTO; /* [MQTT-4.7.1-1] */
			goto out;
		}
		refs[n].f = f;
		refs[n].pos = n;
		codes[n++] = qos;
	}
	if (rc != MOAT_ENOTFOUND || (rc = mark_repeats(refs, n, repeat)))
		goto out;
	for (size_t i = 0; i < n; i++) {
		/* Filters beyond max_subscriptions in one packet are refused,
		 * which bounds the work one SUBSCRIBE can ask for. */
		codes[i] = i < cfg->max_subscriptions
				   ? subscribe_one(c, &refs[i].f, codes[i])
				   : MQTT_SUBACK_FAILURE;
	}
	if ((rc = send_suback(c, id, codes, n)) != MOAT_OK)
		goto out;
	size_t budget = (size_t)(cfg->max_queued_messages +
				 cfg->max_inflight_messages);
	for (size_t i = 0; i < n && c->state == CONN_ACTIVE; i++)
		if (codes[i] != MQTT_SUBACK_FAILURE && !repeat[i])
			send_retained(c, &refs[i].f, codes[i], &budget);
	rc = MOAT_OK;
out:
	moat_free(repeat);
	moat_free(refs);
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
		if (!moat_topic_filter_valid(f.p, f.len))
			return MOAT_EPROTO; /* [MQTT-4.7.1-1] [MQTT-4.7.3-1] */
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
