/* SUBSCRIBE and UNSUBSCRIBE (3.1.1 and 5.0, shared subscriptions). */
#include <stdlib.h>
#include <string.h>

#include "auth/acl.h"
#include "broker_int.h"
#include "codec/mqtt5.h"

/* One filter of a SUBSCRIBE or UNSUBSCRIBE. */
struct sub_req {
	struct moat_bytes full;   /* as sent, for repeats */
	struct moat_bytes filter; /* without $share/NAME/ */
	struct moat_bytes share;  /* group name when shared */
	bool shared;
	bool valid;
	struct moat_sub_opts o;
	size_t pos;
};

/* Split "$share/NAME/filter" [MQTT-4.8.2-1] [MQTT-4.8.2-2] and check the
 * filter's syntax [MQTT-4.7.1-*]. */
static void parse_filter(struct sub_req *r)
{
	static const char prefix[] = "$share/";
	const size_t pl = sizeof(prefix) - 1;
	r->filter = r->full;
	r->shared = r->full.len >= pl && !memcmp(r->full.p, prefix, pl);
	if (r->shared) {
		const uint8_t *name = r->full.p + pl;
		size_t left = r->full.len - pl, n = 0;
		while (n < left && name[n] != '/')
			n++;
		r->share = (struct moat_bytes){name, n};
		r->filter = n < left ? (struct moat_bytes){name + n + 1,
							   left - n - 1}
				     : (struct moat_bytes){NULL, 0};
		for (size_t i = 0; i < n; i++)
			if (name[i] == '+' || name[i] == '#')
				n = 0;
		if (n == 0 || n == left) {
			r->valid = false;
			return;
		}
	}
	r->valid = moat_topic_filter_valid(r->filter.p, r->filter.len);
}

static struct moat_sub_entry *find_sub(struct moat_session *s,
				       const struct sub_req *r)
{
	for (size_t i = 0; i < s->nsubs; i++) {
		struct moat_sub_entry *e = &s->subs[i];
		if (e->len != r->filter.len ||
		    memcmp(e->filter, r->filter.p, r->filter.len))
			continue;
		if (!e->share != !r->shared)
			continue;
		if (e->share && (e->share_len != r->share.len ||
				 memcmp(e->share, r->share.p, r->share.len)))
			continue;
		return e;
	}
	return NULL;
}

static void update_options_flag(struct moat_session *s)
{
	s->has_sub_options = false;
	for (size_t i = 0; i < s->nsubs; i++) {
		const struct moat_sub_entry *e = &s->subs[i];
		if (e->no_local || e->retain_as_published || e->sub_id)
			s->has_sub_options = true;
	}
}

static struct moat_sub_entry *remember_sub(struct moat_session *s,
					   const struct sub_req *r)
{
	if (s->nsubs == s->subs_cap) {
		size_t cap = s->subs_cap ? s->subs_cap * 2 : 4;
		struct moat_sub_entry *v =
			moat_realloc(s->subs, cap * sizeof(*v));
		if (!v)
			return NULL;
		s->subs = v;
		s->subs_cap = (uint32_t)cap; /* <= 2 x max_subscriptions */
	}
	struct moat_sub_entry *e = &s->subs[s->nsubs];
	memset(e, 0, sizeof(*e));
	e->filter = moat_strndup((const char *)r->filter.p, r->filter.len);
	if (r->shared)
		e->share = moat_strndup((const char *)r->share.p, r->share.len);
	if (!e->filter || (r->shared && !e->share)) {
		moat_free(e->filter);
		moat_free(e->share);
		return NULL;
	}
	e->len = (uint16_t)r->filter.len;
	e->share_len = (uint16_t)r->share.len;
	s->nsubs++;
	return e;
}

static void forget_sub(struct moat_session *s, struct moat_sub_entry *e)
{
	moat_free(e->filter);
	moat_free(e->share);
	*e = s->subs[--s->nsubs];
	update_options_flag(s);
}

static bool has_wildcard(const struct moat_bytes *f)
{
	return memchr(f->p, '+', f->len) || memchr(f->p, '#', f->len);
}

/* Why a well-formed filter cannot be granted; 0 when it can. */
static uint8_t refusal(struct moat_conn *c, const struct sub_req *r,
		       size_t index)
{
	const struct moat_config *cfg = c->w->cfg;
	struct moat_session *s = c->session;
	if (!r->valid)
		return RC_TOPIC_FILTER_INVALID;
	/* Beyond max_subscriptions in one packet: bounds one SUBSCRIBE. */
	if (index >= cfg->max_subscriptions)
		return RC_QUOTA_EXCEEDED;
	if (r->filter.len > cfg->max_topic_length ||
	    moat_topic_levels(r->filter.p, r->filter.len) >
		    cfg->max_topic_levels)
		return RC_TOPIC_FILTER_INVALID;
	if (!cfg->wildcard_subscriptions && has_wildcard(&r->filter))
		return RC_WILDCARD_SUBS_NOT_SUPPORTED;
	if (!cfg->shared_subscriptions && r->shared)
		return RC_SHARED_SUBS_NOT_SUPPORTED;
	if (!find_sub(s, r) && s->nsubs >= cfg->max_subscriptions) {
		char id[MOAT_LOG_ID_LEN];
		moat_warn("client %s: max_subscriptions (%llu) reached",
			  moat_session_log_id(s, id), (unsigned long long)cfg->max_subscriptions);
		return RC_QUOTA_EXCEEDED;
	}
	/* $share/G/F is authorised on F, like a plain subscription (T-10). */
	if (!moat__acl_allows(c, (const char *)r->filter.p, r->filter.len,
			      MOAT_ACL_SUBSCRIBE)) {
		char t[96];
		MOAT_STAT_ADD(c->w->b, acl_denials, 1);
		moat__security_event(c, "acl denial", "subscribe to %s%s",
				     r->shared ? "$share/.../" : "",
				     moat__log_topic((const char *)r->filter.p,
						     r->filter.len, t,
						     sizeof(t)));
		return RC_NOT_AUTHORIZED;
	}
	if (moat__acl_check_each(c, (const char *)r->filter.p, r->filter.len))
		s->acl_each = true; /* a deny rule may cut into it */
	/* A stored session's subscription must reach the disk first. */
	if (atomic_load(&s->stored) && moat__store_failing(c->w->b))
		return RC_UNSPECIFIED;
	return 0;
}

/* Subscribe one filter; returns the SUBACK code, *existed tells whether
 * it replaced a subscription (Retain Handling 1). */
static uint8_t subscribe_one(struct moat_conn *c, const struct sub_req *r,
			     uint32_t sub_id, bool *existed)
{
	struct moat_session *s = c->session;
	struct moat_broker *b = c->w->b;
	uint8_t qos = (uint8_t)MOAT_MIN(r->o.qos, c->w->cfg->max_qos);
	struct moat_sub_entry *e = find_sub(s, r);
	*existed = e != NULL;
	if (!e && !(e = remember_sub(s, r)))
		return RC_UNSPECIFIED;
	bool added;
	uint64_t group;
	if (moat_tree_subscribe(&b->tree, r->filter.p, r->filter.len,
				r->shared ? &r->share : NULL, s, qos, &added,
				&group) != MOAT_OK) {
		if (!*existed)
			forget_sub(s, e);
		return RC_UNSPECIFIED;
	}
	e->qos = qos;
	/* A bridge (try_private) gets nothing back it published, with the
	 * retain flags as published: as mosquitto does for bridges. */
	e->no_local = r->o.no_local || c->peer_bridge;
	e->retain_as_published = r->o.retain_as_published || c->peer_bridge;
	e->sub_id = sub_id;
	e->group = group;
	update_options_flag(s);
	moat__store_sub(c->w, s, e);
	return qos; /* [MQTT-3.9.3-2] */
}

int moat__session_restore_sub(struct moat_session *s, const char *filter,
			      size_t flen, const char *share, size_t slen,
			      uint8_t qos, uint8_t options, uint32_t sub_id)
{
	struct sub_req r = {
		.filter = {(const uint8_t *)filter, flen},
		.share = {(const uint8_t *)share, slen},
		.shared = share != NULL,
		.valid = true,
	};
	struct moat_sub_entry *e = find_sub(s, &r);
	bool added;
	uint64_t group;
	if (!e && !(e = remember_sub(s, &r)))
		return MOAT_ENOMEM;
	if (moat_tree_subscribe(&s->home->b->tree, r.filter.p, flen,
				share ? &r.share : NULL, s, qos, &added,
				&group) != MOAT_OK) {
		forget_sub(s, e);
		return MOAT_ENOMEM;
	}
	e->qos = qos;
	e->no_local = (options & 1) != 0;
	e->retain_as_published = (options & 2) != 0;
	e->sub_id = sub_id;
	e->group = group;
	update_options_flag(s);
	return MOAT_OK;
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
		char id[MOAT_LOG_ID_LEN] = "?";
		moat_warn("client %s: out of memory sending retained messages",
			  c->session ? moat_session_log_id(c->session, id)
				     : id);
		return;
	}
	*budget -= n;
	uint64_t now = moat_now_ms();
	for (size_t i = 0; i < n; i++) {
		/* retain flag set for a new subscription [MQTT-3.3.1-8];
		 * expired ones are not sent [MQTT-3.3.2-5] */
		/* and only while their publisher may still publish there
		 * (T-06, like mosquitto's check_retain_source) */
		if (c->session && !moat_msg_expired(v[i], now) &&
		    moat__source_may_publish(c->w, v[i]))
			moat_session_deliver(c->session, v[i],
					     MOAT_MIN(granted, v[i]->qos),
					     true);
		moat_msg_unref(&v[i]);
	}
	moat_free(v);
}

static int cmp_req(const void *a, const void *b)
{
	const struct sub_req *x = a, *y = b;
	size_t n = MOAT_MIN(x->full.len, y->full.len);
	int c = n ? memcmp(x->full.p, y->full.p, n) : 0;
	if (c)
		return c;
	if (x->full.len != y->full.len)
		return x->full.len < y->full.len ? -1 : 1;
	return x->pos < y->pos ? -1 : x->pos > y->pos;
}

/* A filter repeated in one SUBSCRIBE counts once (the last occurrence
 * wins, as if the packets came one by one): mark the earlier ones so that
 * their retained messages are not sent again. */
static int mark_repeats(const struct sub_req *reqs, size_t n, bool *repeat)
{
	struct sub_req *sorted = moat_malloc(n * sizeof(*sorted));
	if (!sorted)
		return MOAT_ENOMEM;
	memcpy(sorted, reqs, n * sizeof(*sorted));
	qsort(sorted, n, sizeof(*sorted), cmp_req);
	for (size_t i = 0; i + 1 < n; i++)
		if (moat_bytes_eq(sorted[i].full, sorted[i + 1].full))
			repeat[sorted[i].pos] = true;
	moat_free(sorted);
	return MOAT_OK;
}

static int send_ack(struct moat_conn *c, enum moat_mqtt_type type,
		    uint16_t id, const uint8_t *codes, size_t n)
{
	int rc;
	if (c->proto_level == MQTT_PROTO_V5) {
		/* Nothing in it can be left out (no Reason String is sent):
		 * one larger than the client's Maximum Packet Size cannot be
		 * sent at all [MQTT-3.1.2-24], and the client would wait for
		 * it forever. */
		size_t body = 3 + n; /* id, empty properties, codes */
		size_t size = 1 + moat_mqtt_varint_size((uint32_t)body) + body;
		if (c->client_max_packet && size > c->client_max_packet) {
			moat_conn_disconnect(c, RC_PACKET_TOO_LARGE,
					     type == MQTT_SUBACK
						     ? "SUBACK larger than the "
						       "client's Maximum Packet "
						       "Size"
						     : "UNSUBACK larger than the "
						       "client's Maximum Packet "
						       "Size");
			return MOAT_OK;
		}
		rc = moat_mqtt5_suback(&c->out, type, id, codes, n, NULL);
		if (!rc)
			moat_worker_mark_dirty(c->w, c);
		return rc ? MOAT_ELIMIT : MOAT_OK;
	}
	if (type == MQTT_UNSUBACK) { /* 3.1.1: no codes [MQTT-3.11.3] */
		uint8_t pkt[4];
		moat_mqtt_ack_encode(pkt, MQTT_UNSUBACK, id);
		return moat_conn_send(c, pkt, sizeof(pkt));
	}
	size_t size = moat_mqtt_suback_size(n); /* n < len: representable */
	uint8_t *pkt = moat_malloc(size);
	if (!pkt)
		return MOAT_ENOMEM;
	moat_mqtt_suback_encode(pkt, id, codes, n); /* [MQTT-3.8.4-5] */
	rc = moat_conn_send(c, pkt, size);
	moat_free(pkt);
	return rc;
}

/* Read every filter first: nothing is acted on unless the whole packet is
 * well-formed.  3.1.1 closes on an invalid filter; 5.0 answers 0x8F. */
/* Decode the next filter into r.  MOAT_ENOTFOUND at the end. */
static int next_filter(struct moat_conn *c, struct moat_rd *rd, bool subscribe,
		       struct sub_req *r, size_t pos)
{
	struct moat_bytes f;
	struct moat_sub_opts o;
	int rc = subscribe ? moat_mqtt_decode_sub_next_v(rd, c->proto_level,
							 &f, &o)
			   : moat_mqtt_decode_unsub_next(rd, &f);
	if (rc)
		return rc;
	memset(r, 0, sizeof(*r));
	r->full = f;
	r->pos = pos;
	if (subscribe)
		r->o = o;
	parse_filter(r);
	if (!r->valid && c->proto_level != MQTT_PROTO_V5)
		return MOAT_EPROTO; /* [MQTT-4.7.1-1] */
	if (r->shared && r->o.no_local)
		return MOAT_EPROTO; /* [MQTT-3.8.3-4] */
	return MOAT_OK;
}

/* Read the filters of a SUBSCRIBE: the first cap into reqs (*n of them);
 * the rest are only checked and counted in *extra -- they are refused
 * for max_subscriptions anyway, so a big packet of tiny filters cannot
 * make the broker hold a large request array. */
static int read_filters(struct moat_conn *c, struct moat_rd *rd,
			struct sub_req *reqs, size_t cap, size_t *n,
			size_t *extra)
{
	struct sub_req spare;
	*n = *extra = 0;
	for (;;) {
		struct sub_req *r = *n < cap ? &reqs[*n] : &spare;
		int rc = next_filter(c, rd, true, r, *n + *extra);
		if (rc == MOAT_ENOTFOUND)
			return MOAT_OK;
		if (rc)
			return rc;
		if (r == &spare)
			(*extra)++;
		else
			(*n)++;
	}
}

/* 3.1.1 has one failure code. */
static uint8_t code_for(const struct moat_conn *c, uint8_t code)
{
	if (c->proto_level != MQTT_PROTO_V5 && code >= 0x80)
		return MQTT_SUBACK_FAILURE;
	return code;
}

static int subscribe_all(struct moat_conn *c, uint16_t id, uint32_t sub_id,
			 struct sub_req *reqs, size_t n, size_t extra,
			 uint8_t *codes, bool *flags)
{
	uint64_t before = moat__store_nrec(c->w), lost = c->w->store_lost;
	const struct moat_config *cfg = c->w->cfg;
	bool *repeat = flags, *existed = flags + n;
	int rc = mark_repeats(reqs, n, repeat);
	if (rc)
		return rc;
	for (size_t i = 0; i < n; i++) {
		uint8_t why = refusal(c, &reqs[i], i);
		codes[i] = code_for(c, why ? why
					   : subscribe_one(c, &reqs[i], sub_id,
							   &existed[i]));
	}
	for (size_t i = n; i < n + extra; i++)
		codes[i] = code_for(c, RC_QUOTA_EXCEEDED);
	if (c->w->store_lost != lost)
		return MOAT_ENOMEM; /* not kept: not acknowledged */
	if (moat__store_nrec(c->w) != before)
		moat__store_gate(c); /* SUBACK once the subscriptions are kept */
	if ((rc = send_ack(c, MQTT_SUBACK, id, codes, n + extra)) != MOAT_OK)
		return rc;
	size_t budget = (size_t)(cfg->max_queued_messages +
				 cfg->max_inflight_messages);
	for (size_t i = 0; i < n && c->state == CONN_ACTIVE; i++) {
		const struct sub_req *r = &reqs[i];
		/* Not for shared subscriptions [MQTT-4.8.2-?]; Retain
		 * Handling 1: only when new; 2: never [MQTT-3.3.1-9..11]. */
		if (codes[i] >= 0x80 || repeat[i] || r->shared ||
		    r->o.retain_handling == 2 ||
		    (r->o.retain_handling == 1 && existed[i]))
			continue;
		send_retained(c, &r->filter, codes[i], &budget);
	}
	return MOAT_OK;
}

int moat__handle_subscribe(struct moat_conn *c, const uint8_t *body,
			   size_t len)
{
	const struct moat_config *cfg = c->w->cfg;
	struct moat_mqtt_props props;
	struct moat_rd rd;
	uint16_t id;
	int rc = moat_mqtt_decode_sub_start_v(body, len, c->proto_level, true,
					      &rd, &id, &props);
	if (rc)
		return rc;
	if (moat_props_has(&props, PROP_SUBSCRIPTION_ID) &&
	    !cfg->subscription_identifiers) {
		moat_conn_disconnect(c, RC_SUB_IDS_NOT_SUPPORTED,
				     "subscription identifiers are off");
		return MOAT_OK;
	}
	/* Each filter takes at least 3 bytes, which bounds the count; only
	 * max_subscriptions of them are kept as requests. */
	size_t max = len / 3 + 1, n = 0, extra = 0;
	size_t cap = (size_t)MOAT_MIN((uint64_t)max, cfg->max_subscriptions);
	uint8_t *codes = moat_malloc(max);
	struct sub_req *reqs = moat_malloc(cap * sizeof(*reqs));
	bool *flags = moat_calloc(2 * cap, sizeof(*flags));
	if (!codes || !reqs || !flags) {
		rc = MOAT_ENOMEM;
		goto out;
	}
	if ((rc = read_filters(c, &rd, reqs, cap, &n, &extra)) != MOAT_OK)
		goto out;
	rc = subscribe_all(c, id, props.subscription_id, reqs, n, extra, codes,
			   flags);
out:
	moat_free(flags);
	moat_free(reqs);
	moat_free(codes);
	return rc;
}

int moat__handle_unsubscribe(struct moat_conn *c, const uint8_t *body,
			     size_t len)
{
	struct moat_session *s = c->session;
	struct moat_mqtt_props props;
	struct moat_rd rd;
	uint16_t id;
	int rc = moat_mqtt_decode_sub_start_v(body, len, c->proto_level, false,
					      &rd, &id, &props);
	if (rc)
		return rc;
	/* One code per filter (at least 2 bytes each); the filters are
	 * handled one by one as they are read, without a request array. */
	size_t max = len / 2 + 1, n = 0;
	uint64_t before = moat__store_nrec(c->w), lost = c->w->store_lost;
	uint8_t *codes = moat_malloc(max);
	if (!codes)
		return MOAT_ENOMEM;
	for (;; n++) {
		struct sub_req req, *r = &req;
		rc = next_filter(c, &rd, false, r, n);
		if (rc == MOAT_ENOTFOUND)
			break;
		if (rc)
			goto out;
		size_t i = n;
		struct moat_sub_entry *e = r->valid ? find_sub(s, r) : NULL;
		codes[i] = !r->valid ? RC_TOPIC_FILTER_INVALID
			   : e       ? RC_SUCCESS
				     : RC_NO_SUBSCRIPTION_EXISTED;
		if (!e)
			continue;
		if (atomic_load(&s->stored) && moat__store_failing(c->w->b)) {
			/* Cannot be kept.  3.1.1's UNSUBACK has no codes: it
			 * would say done, so the client is disconnected. */
			if (c->proto_level != MQTT_PROTO_V5) {
				rc = MOAT_EIO;
				goto out;
			}
			codes[i] = RC_UNSPECIFIED;
			continue;
		}
		moat_tree_unsubscribe(&c->w->b->tree, r->filter.p, r->filter.len,
				      r->shared ? &r->share : NULL, s);
		moat__store_unsub(c->w, s, e->filter, e->len, e->share,
				  e->share_len);
		forget_sub(s, e);
	}
	if (c->w->store_lost != lost) {
		rc = MOAT_ENOMEM;
		goto out;
	}
	if (moat__store_nrec(c->w) != before)
		moat__store_gate(c);
	rc = send_ack(c, MQTT_UNSUBACK, id, codes, n); /* [MQTT-3.10.4-4] */
out:
	moat_free(codes);
	return rc;
}
