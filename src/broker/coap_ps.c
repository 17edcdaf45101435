/* CoAP resources of moatd (docs/coap.md "CoAP in moatd"): /ps/<topic
 * levels> maps to the MQTT topic tree (PUT publish + retain, POST
 * publish, GET the retained value, GET + Observe subscribe, DELETE clear
 * the retained value), and /.well-known/core.  Observations are a peer's
 * moat_session's subscriptions (coap_int.h). */
#include <string.h>

#include "auth/acl.h"
#include "codec/coap_uri.h"
#include "codec/mqtt5.h"
#include "coap_int.h"

#define PS "ps"

static void fail(struct moat_coap_resp *r, uint8_t code, const char *diag)
{
	r->code = code;
	r->diag = diag;
}

/* ---- Content-Format <-> MQTT 5 Content Type / Payload Format ------------ */

static bool cf_is_text(uint32_t cf)
{
	/* text/plain;charset=utf-8, link-format, xml, json, senml+json,
	 * sensml+json, json-patch+json, merge-patch+json */
	return cf == 0 || cf == 40 || cf == 41 || cf == 50 || cf == 51 ||
	       cf == 52 || cf == 110 || cf == 111 || cf == 320;
}

/* The Content-Format of m from its Content Type (a registered name or a
 * number) or, failing that, its Payload Format Indicator. */
static bool msg_cf(const struct moat_msg *m, uint32_t *cf)
{
	struct moat_bytes raw = {m->props, m->props_len};
	struct moat_mqtt_prop_item it;
	size_t pos = 0;
	bool text = false;
	while (m->props_len && moat_mqtt_props_next(&raw, &pos, &it)) {
		if (it.id == PROP_PAYLOAD_FORMAT && it.num == 1)
			text = true;
		if (it.id == PROP_CONTENT_TYPE && it.a.len < 128) {
			char s[128];
			memcpy(s, it.a.p, it.a.len);
			s[it.a.len] = '\0';
			if (coap_cf_parse(s, cf) == MOAT_OK)
				return true;
		}
	}
	*cf = 0;
	return text;
}

/* MQTT 5 properties for a CoAP Content-Format. */
static size_t cf_props(uint32_t cf, uint8_t *buf, size_t cap)
{
	struct moat_pw pw;
	moat_pw_init(&pw, buf, cap);
	if (cf_is_text(cf))
		moat_pw_u8(&pw, PROP_PAYLOAD_FORMAT, 1);
	char num[12];
	const char *name = coap_cf_name(cf);
	if (!name) {
		snprintf(num, sizeof(num), "%u", (unsigned)cf);
		name = num;
	}
	moat_pw_bytes(&pw, PROP_CONTENT_TYPE, name, strlen(name));
	return pw.overflow ? 0 : pw.len;
}

static void etag_of(const struct moat_msg *m, uint8_t out[8])
{
	uint64_t h = 1469598103934665603ull;
	for (size_t i = 0; i < m->topic_len; i++)
		h = (h ^ (uint8_t)m->topic[i]) * 1099511628211ull;
	for (size_t i = 0; i < m->payload_len; i++)
		h = (h ^ m->payload[i]) * 1099511628211ull;
	memcpy(out, &h, 8);
}

/* ---- paths --------------------------------------------------------------- */

struct path {
	char topic[1024];
	size_t len;
	size_t nseg;
	bool wildcard;
	bool wellknown;
	bool ps;
};

/* The topic of /ps/<levels>: each Uri-Path segment is one level. */
static const char *read_path(const struct coap_msg *m, struct path *pp,
			     size_t max_len)
{
	struct coap_opt_iter it;
	struct coap_opt o;
	size_t i = 0;
	bool hash_seen = false;
	const char *first = NULL;
	size_t flen = 0;
	memset(pp, 0, sizeof(*pp));
	coap_opt_iter_init(&it, m);
	while (coap_opt_next(&it, &o)) {
		if (o.num != COAP_OPT_URI_PATH)
			continue;
		if (i == 0) {
			first = (const char *)o.val;
			flen = o.len;
		} else if (i == 1 && flen == 11 &&
			   !memcmp(first, ".well-known", 11)) {
			pp->wellknown = o.len == 4 && !memcmp(o.val, "core", 4);
		}
		if (i++ == 0 || !(flen == 2 && !memcmp(first, PS, 2)))
			continue;
		if (hash_seen)
			return "'#' must be the last level";
		if (memchr(o.val, '/', o.len) || memchr(o.val, '\0', o.len))
			return "a topic level holds '/' or NUL";
		bool plus = memchr(o.val, '+', o.len) != NULL;
		bool hash = memchr(o.val, '#', o.len) != NULL;
		if ((plus || hash) && o.len != 1)
			return "'+' and '#' must be whole levels";
		hash_seen = hash;
		pp->wildcard = pp->wildcard || plus || hash;
		if (pp->len + (pp->nseg ? 1 : 0) + o.len >= sizeof(pp->topic) ||
		    pp->len + o.len + 1 > max_len + 1)
			return "topic too long (max_topic_length)";
		if (pp->nseg)
			pp->topic[pp->len++] = '/';
		memcpy(pp->topic + pp->len, o.val, o.len);
		pp->len += o.len;
		pp->nseg++;
	}
	pp->topic[pp->len] = '\0';
	pp->ps = i >= 1 && flen == 2 && !memcmp(first, PS, 2);
	if (i > 2 && pp->wellknown)
		pp->wellknown = false;
	if (pp->ps && !pp->nseg)
		return "no topic after /ps/";
	if (pp->ps && !moat_utf8_valid((const uint8_t *)pp->topic, pp->len))
		return "topic is not UTF-8";
	return NULL;
}

/* ---- retained values --------------------------------------------------- */

static struct moat_msg *retained_of(struct moat_worker *w, const char *topic,
				    size_t len)
{
	struct moat_msg **v = NULL;
	size_t n = 0;
	if (moat_tree_retained(&w->b->tree, (const uint8_t *)topic, len, 1,
			       &v, &n) != MOAT_OK)
		return NULL;
	struct moat_msg *m = n ? v[0] : NULL;
	moat_free(v);
	if (m && moat_msg_expired(m, w->now_ms))
		moat_msg_unref(&m);
	return m;
}

/* Fill r with m's payload or the block of it the request asked for. */
static void content(struct moat_coap_resp *r, const struct moat_msg *m,
		    const struct coap_block *want, uint64_t now)
{
	r->code = COAP_CONTENT;
	r->has_cf = msg_cf(m, &r->cf);
	etag_of(m, r->etag);
	r->etag_len = 8;
	if (m->expiry_ms) {
		r->has_max_age = true;
		r->max_age = m->expiry_ms > now
				     ? (uint32_t)((m->expiry_ms - now) / 1000)
				     : 0;
	}
	uint8_t szx = want ? MOAT_MIN(want->szx, 6) : 6;
	size_t bs = coap_block_size(szx);
	if (m->payload_len <= bs && !(want && want->num)) {
		r->payload = m->payload;
		r->plen = m->payload_len;
		return;
	}
	uint32_t num = want ? want->num : 0;
	size_t off = (size_t)num * bs;
	if (off >= m->payload_len) {
		fail(r, COAP_BAD_REQUEST, "block beyond the end");
		r->has_cf = false;
		r->etag_len = 0;
		return;
	}
	r->has_block2 = true;
	r->block2.num = num;
	r->block2.szx = szx;
	r->block2.more = off + bs < m->payload_len;
	r->payload = m->payload + off;
	r->plen = MOAT_MIN(bs, m->payload_len - off);
	if (num == 0) {
		r->has_size2 = true;
		r->size2 = m->payload_len;
	}
}

/* ---- publishing --------------------------------------------------------- */

void moat__coap_rx_free(struct moat_coap_peer *p)
{
	struct moat_coap_rx *rx = p->rx;
	if (!rx)
		return;
	p->ep->w->coap->reasm_bytes -= rx->counted;
	coap_reasm_cleanup(&rx->r);
	moat_free(rx->topic);
	moat_free(rx);
	p->rx = NULL;
}

static void publish(struct moat_coap_peer *p, const struct coap_msg *req,
		    const struct path *pp, const uint8_t *body, size_t blen,
		    struct moat_coap_resp *r)
{
	struct moat_worker *w = p->ep->w;
	const struct moat_config *cfg = w->cfg;
	uint32_t cf = 0;
	bool has_cf = coap_opt_uint(req, COAP_OPT_CONTENT_FORMAT, 2, &cf) ==
		      MOAT_OK;
	if (has_cf && cf_is_text(cf) && !moat_utf8_valid(body, blen))
		return fail(r, COAP_BAD_REQUEST,
			    "payload is not UTF-8 as its Content-Format says");
	if (moat__store_failing(w->b))
		return fail(r, COAP_SERVICE_UNAVAILABLE,
			    "persistence unavailable");
	uint8_t props[160];
	size_t plen = has_cf ? cf_props(cf, props, sizeof(props)) : 0;
	struct moat_msg_extra x = {.props = props,
				   .props_len = plen,
				   .has_src = true,
				   .src_user = moat__coap_user(p),
				   .src_cid = p->name};
	bool retain = req->code == COAP_PUT && cfg->retain_available;
	uint8_t qos = req->type == COAP_CON ? 1 : 0;
	struct moat_msg *m = moat_msg_new5((const uint8_t *)pp->topic, pp->len,
					   body, blen, qos, retain, &x);
	if (!m)
		return fail(r, COAP_SERVICE_UNAVAILABLE, "out of memory");
	if (moat__store_on(w->b) && (qos || retain))
		m->store_id = moat__store_msg_id(w->b);
	int leak = w->sec->leak_db
			   ? moat__leak_inspect(w, m, "coap publish", p->name,
						moat__coap_user(p))
			   : -1;
	if (leak == MOAT_LEAK_BLOCK) {
		moat_msg_unref(&m);
		return fail(r, COAP_FORBIDDEN, "refused by leak_policy");
	}
	uint64_t records = moat__store_nrec(w), lost = w->store_lost;
	MOAT_WSTAT_ADD(w, msgs_in[moat__coap_proto(p->ep)][qos], 1);
	MOAT_STAT_ADD(w->b, coap_publishes, 1);
	moat_worker_route(w, m);
	moat_msg_unref(&m);
	if (qos && w->store_lost != lost)
		return fail(r, COAP_SERVICE_UNAVAILABLE, "out of memory");
	r->code = COAP_CHANGED;
	/* A Confirmable request is acknowledged once what it published is
	 * durable, as a QoS 1 PUBACK is (persistence_sync). */
	r->hold = moat__store_nrec(w) != records;
}

/* Block1 (RFC 7959 §2.5): the body comes in blocks, appended as they
 * arrive; a declared Size1 is compared, never allocated. */
static void publish_blocks(struct moat_coap_peer *p,
			   const struct coap_msg *req, const struct path *pp,
			   struct moat_coap_resp *r)
{
	struct moat_worker *w = p->ep->w;
	size_t max = (size_t)w->cfg->max_packet_size;
	struct coap_block b;
	uint32_t size1;
	int rc = coap_opt_block(req, COAP_OPT_BLOCK1, &b);
	if (rc == MOAT_EMALFORMED)
		return fail(r, COAP_BAD_REQUEST, "bad Block1");
	if (coap_opt_uint(req, COAP_OPT_SIZE1, 4, &size1) == MOAT_OK &&
	    size1 > max)
		return fail(r, COAP_REQUEST_ENTITY_TOO_LARGE,
			    "Size1 above max_packet_size");
	if (rc == MOAT_ENOTFOUND) {
		if (req->payload_len > max)
			return fail(r, COAP_REQUEST_ENTITY_TOO_LARGE,
				    "payload above max_packet_size");
		return publish(p, req, pp, req->payload, req->payload_len, r);
	}
	if (b.num == 0) {
		moat__coap_rx_free(p);
		if (!(p->rx = moat_calloc(1, sizeof(*p->rx))) ||
		    !(p->rx->topic = moat_strndup(pp->topic, pp->len))) {
			moat__coap_rx_free(p);
			return fail(r, COAP_SERVICE_UNAVAILABLE, "out of memory");
		}
		coap_reasm_init(&p->rx->r, max);
		p->rx->code = req->code;
	}
	struct moat_coap_rx *rx = p->rx;
	if (!rx || rx->code != req->code || strcmp(rx->topic, pp->topic))
		return fail(r, COAP_REQUEST_ENTITY_INCOMPLETE,
			    "block out of sequence");
	struct moat_coap *c = w->coap;
	if (c->reasm_bytes + req->payload_len > MOAT_COAP_REASM_TOTAL ||
	    moat__memory_exhausted(w)) {
		moat__coap_limit(w, p, "block-wise reassembly memory full");
		moat__coap_rx_free(p);
		return fail(r, COAP_SERVICE_UNAVAILABLE,
			    "reassembly memory full");
	}
	rx->last_ms = w->now_ms;
	rc = coap_reasm_add(&rx->r, &b, req->payload, req->payload_len);
	size_t used = moat_buf_used(&rx->r.body);
	c->reasm_bytes += used - rx->counted;
	rx->counted = used;
	if (rc == MOAT_ELIMIT || rc == MOAT_EPROTO || rc == MOAT_ENOMEM) {
		moat__coap_rx_free(p);
		return fail(r,
			    rc == MOAT_ELIMIT ? COAP_REQUEST_ENTITY_TOO_LARGE
			    : rc == MOAT_EPROTO
				    ? COAP_REQUEST_ENTITY_INCOMPLETE
				    : COAP_SERVICE_UNAVAILABLE,
			    rc == MOAT_ELIMIT ? "body above max_packet_size"
			    : rc == MOAT_EPROTO ? "block out of sequence"
						: "out of memory");
	}
	r->has_block1 = true;
	r->block1 = b;
	if (!rx->r.complete) {
		r->code = COAP_CONTINUE;
		return;
	}
	publish(p, req, pp, rx->r.body.data + rx->r.body.off, used, r);
	moat__coap_rx_free(p);
}

static void delete_retained(struct moat_coap_peer *p, const struct path *pp,
			    struct moat_coap_resp *r)
{
	struct moat_worker *w = p->ep->w;
	struct moat_msg *m = moat_msg_new((const uint8_t *)pp->topic, pp->len,
					  NULL, 0, 0, true);
	if (!m)
		return fail(r, COAP_SERVICE_UNAVAILABLE, "out of memory");
	uint64_t seq = 0, records = moat__store_nrec(w);
	if (moat_tree_retain(&w->b->tree, m, &seq) == MOAT_OK)
		moat__store_retain(w, m, seq);
	moat_msg_unref(&m);
	r->code = COAP_DELETED;
	r->hold = moat__store_nrec(w) != records;
}

/* ---- observations -------------------------------------------------------- */

static struct moat_coap_obs *obs_by_token(struct moat_coap_peer *p,
					  const struct coap_msg *m)
{
	for (uint32_t i = 0; i < p->nobs; i++)
		if (p->obs[i].tkl == m->tkl &&
		    !memcmp(p->obs[i].token, m->token, m->tkl))
			return &p->obs[i];
	return NULL;
}

static void obs_remove(struct moat_coap_peer *p, struct moat_coap_obs *o)
{
	struct moat_worker *w = p->ep->w;
	bool shared = false;
	for (uint32_t i = 0; i < p->nobs; i++)
		if (&p->obs[i] != o && p->obs[i].flen == o->flen &&
		    !memcmp(p->obs[i].filter, o->filter, o->flen))
			shared = true;
	if (!shared)
		(void)moat_tree_unsubscribe(&w->b->tree,
					    (const uint8_t *)o->filter, o->flen,
					    NULL, p->session);
	moat_free(o->filter);
	moat_msg_unref(&o->body);
	*o = p->obs[--p->nobs];
	w->coap->nobs--;
	MOAT_STAT_SUB(w->b, coap_observers, 1);
}

void moat__coap_peer_drop_obs(struct moat_coap_peer *p)
{
	while (p->nobs)
		obs_remove(p, &p->obs[p->nobs - 1]);
	moat_free(p->obs);
	p->obs = NULL;
	if (p->session) {
		p->session->coap = NULL;
		moat_session_destroy(p->session);
		p->session = NULL;
	}
}

static bool observer_session(struct moat_coap_peer *p)
{
	struct moat_worker *w = p->ep->w;
	if (p->session)
		return true;
	/* A name no MQTT client id can be (NUL first), never in the
	 * client-id table: nothing can take it over. */
	char id[MOAT_PEER_STRLEN + 8];
	int n = snprintf(id, sizeof(id), "%ccoap/%s", 0, p->name);
	p->session = moat_session_new(w, (const uint8_t *)id, (size_t)n, 0,
				      NULL);
	if (!p->session)
		return false;
	p->session->coap = p;
	MOAT_STAT_ADD(w->b, sessions, 1);
	return true;
}

static bool observe(struct moat_coap_peer *p, const struct coap_msg *req,
		    const struct path *pp, uint8_t szx)
{
	struct moat_worker *w = p->ep->w;
	struct moat_coap_obs *o = obs_by_token(p, req);
	if (o) /* re-registration with the same token replaces it */
		obs_remove(p, o);
	if (p->nobs >= MOAT_COAP_OBS_PER_PEER ||
	    w->coap->nobs >= MOAT_COAP_OBS_MAX || moat__memory_exhausted(w)) {
		moat__coap_limit(w, p, "observation limit; answered without "
				       "Observe");
		return false;
	}
	if (!observer_session(p))
		return false;
	if (!p->obs) {
		p->obs = moat_calloc(MOAT_COAP_OBS_PER_PEER, sizeof(*p->obs));
		if (!p->obs)
			return false;
	}
	char *f = moat_strndup(pp->topic, pp->len);
	bool added;
	uint64_t group;
	if (!f || moat_tree_subscribe(&w->b->tree, (const uint8_t *)f, pp->len,
				      NULL, p->session, 1, &added,
				      &group) != MOAT_OK) {
		moat_free(f);
		return false;
	}
	o = &p->obs[p->nobs++];
	memset(o, 0, sizeof(*o));
	o->filter = f;
	o->flen = (uint16_t)pp->len;
	o->tkl = req->tkl;
	memcpy(o->token, req->token, req->tkl);
	o->last_con_ms = w->now_ms;
	o->seq = 1;
	o->szx = szx;
	const struct moat_acl *acl = w->sec->acl;
	o->wildcard = pp->wildcard;
	o->acl_each = acl && !moat_acl_filter_fully_readable(
				     acl, moat__coap_user(p), p->name, f,
				     pp->len);
	w->coap->nobs++;
	MOAT_STAT_ADD(w->b, coap_observers, 1);
	return true;
}

/* A wildcard observation's notification names its topic: Location-Path
 * "ps" and one per topic level (a topic longer than 255 bytes goes
 * without: it would not fit beside a block). */
static void location(struct coap_wr *wr, const struct moat_msg *m)
{
	if (m->topic_len > 255)
		return;
	coap_wr_opt(wr, COAP_OPT_LOCATION_PATH, PS, 2);
	const char *t = m->topic, *end = t + m->topic_len;
	for (;;) {
		const char *slash = memchr(t, '/', (size_t)(end - t));
		const char *e = slash ? slash : end;
		coap_wr_opt(wr, COAP_OPT_LOCATION_PATH, t, (size_t)(e - t));
		if (!slash)
			return;
		t = slash + 1;
	}
}

/* A notification larger than one block: keep m for its later blocks
 * (one body per observation, the latest; a reference to the message, so
 * counted in memory_limit like the message itself). */
static void keep_body(struct moat_coap_peer *p, struct moat_coap_obs *o,
		      struct moat_msg *m, bool blocks)
{
	struct moat_worker *w = p->ep->w;
	moat_msg_unref(&o->body); /* superseded */
	if (!blocks)
		return;
	if (moat__memory_exhausted(w)) {
		moat__coap_limit(w, p, "memory_limit reached: a notification's "
				       "later blocks are not kept");
		return;
	}
	o->body = moat_msg_ref(m);
	o->body_ms = w->now_ms;
}

void moat__coap_obs_tick(struct moat_coap_peer *p, uint64_t now)
{
	for (uint32_t i = 0; i < p->nobs; i++)
		if (p->obs[i].body &&
		    now - p->obs[i].body_ms > MOAT_COAP_BODY_MS)
			moat_msg_unref(&p->obs[i].body);
}

/* The notification body a later-block GET (RFC 7959 §2.6: without
 * Observe, any token) asks for: the observation with req's token, else
 * the newest body of an observation of the same URI. */
static struct moat_msg *obs_body(struct moat_coap_peer *p,
				 const struct coap_msg *req,
				 const struct path *pp)
{
	struct moat_coap_obs *o = obs_by_token(p, req), *best = NULL;
	if (o && o->body && o->flen == pp->len &&
	    !memcmp(o->filter, pp->topic, pp->len))
		return o->body;
	for (uint32_t i = 0; i < p->nobs; i++) {
		o = &p->obs[i];
		if (o->body && o->flen == pp->len &&
		    !memcmp(o->filter, pp->topic, pp->len) &&
		    (!best || o->body_ms >= best->body_ms))
			best = o;
	}
	return best ? best->body : NULL;
}

/* Send m to observation o of p. */
static void notify(struct moat_coap_peer *p, struct moat_coap_obs *o,
		   struct moat_msg *m)
{
	struct moat_worker *w = p->ep->w;
	struct moat_coap_resp r;
	memset(&r, 0, sizeof(r));
	struct coap_block first = {0, false, o->szx};
	content(&r, m, &first, w->now_ms);
	keep_body(p, o, m, r.has_block2 && r.block2.more);
	bool con = m->qos > 0 || ++o->since_con >= MOAT_COAP_CON_EVERY ||
		   w->now_ms - o->last_con_ms >= MOAT_COAP_CON_MAX_MS;
	uint16_t mid;
	if (coap_mid_next(&p->mids, &mid) != MOAT_OK)
		return;
	o->seq = (o->seq + 1) & COAP_OBSERVE_SEQ_MASK;
	uint8_t pkt[MOAT_COAP_DGRAM_MAX];
	struct coap_wr wr;
	size_t len;
	coap_wr_init(&wr, pkt, sizeof(pkt));
	coap_wr_header(&wr, con ? COAP_CON : COAP_NON, r.code, mid, o->token,
		       o->tkl);
	coap_wr_opt(&wr, COAP_OPT_ETAG, r.etag, r.etag_len);
	coap_wr_opt_uint(&wr, COAP_OPT_OBSERVE, o->seq);
	if (o->wildcard)
		location(&wr, m);
	if (r.has_cf)
		coap_wr_opt_uint(&wr, COAP_OPT_CONTENT_FORMAT, r.cf);
	if (r.has_max_age)
		coap_wr_opt_uint(&wr, COAP_OPT_MAX_AGE, r.max_age);
	if (r.has_block2)
		coap_wr_opt_uint(&wr, COAP_OPT_BLOCK2,
				 coap_block_encode(&r.block2));
	if (r.has_size2)
		coap_wr_opt_uint(&wr, COAP_OPT_SIZE2, r.size2);
	coap_wr_payload(&wr, r.payload, r.plen);
	if (coap_wr_finish(&wr, &len) != MOAT_OK)
		return;
	o->last_mid = mid;
	MOAT_STAT_ADD(w->b, coap_notifications, 1);
	MOAT_WSTAT_ADD(w, msgs_out[moat__coap_proto(p->ep)][con ? 1 : 0], 1);
	if (con) {
		/* One Confirmable notification outstanding per peer; a newer
		 * one takes its place (RFC 7641 §4.5.2) and keeps its
		 * retransmission count. */
		struct moat_coap_pending *pd = &p->pend;
		uint8_t *np = moat_realloc(pd->pkt, len);
		if (!np)
			return;
		pd->pkt = np;
		memcpy(pd->pkt, pkt, len);
		pd->len = (uint16_t)len;
		pd->mid = mid;
		if (!pd->active) {
			struct coap_tx_params tp = COAP_TX_PARAMS_DEFAULT;
			uint32_t rnd = 0;
			(void)coap_random(&rnd, sizeof(rnd));
			coap_retx_start(&pd->retx, &tp, rnd);
			pd->active = true;
		}
		pd->due_ms = w->now_ms + pd->retx.timeout_ms;
		o->since_con = 0;
		o->last_con_ms = w->now_ms;
	}
	(void)moat__coap_sendto(p, pkt, len);
}

void moat__coap_deliver(struct moat_session *s, struct moat_msg *m)
{
	struct moat_coap_peer *p = s->coap;
	if (!p || moat_msg_expired(m, s->home->now_ms))
		return;
	for (uint32_t i = 0; i < p->nobs; i++) {
		struct moat_coap_obs *o = &p->obs[i];
		if (!moat_topic_matches((const uint8_t *)o->filter, o->flen,
					(const uint8_t *)m->topic,
					m->topic_len))
			continue;
		if (o->acl_each &&
		    !moat__coap_acl(p, m->topic, m->topic_len, MOAT_ACL_READ))
			continue;
		notify(p, o, m);
	}
}

void moat__coap_obs_retained(struct moat_coap_peer *p,
			     const struct coap_msg *req)
{
	struct moat_worker *w = p->ep->w;
	struct moat_coap_obs *o = obs_by_token(p, req);
	struct moat_msg **v = NULL;
	size_t n = 0;
	if (!o || !o->wildcard ||
	    moat_tree_retained(&w->b->tree, (const uint8_t *)o->filter,
			       o->flen, MOAT_COAP_RETAINED_MAX, &v,
			       &n) != MOAT_OK)
		return;
	for (size_t i = 0; i < n; i++) {
		struct moat_msg *m = v[i];
		/* notify() may end o (a failed send does not; nothing here
		 * frees it), so it stays valid through the loop. */
		if (!moat_msg_expired(m, w->now_ms) &&
		    (!m->has_src || moat__source_may_publish(w, m)) &&
		    (!o->acl_each || moat__coap_acl(p, m->topic, m->topic_len,
						    MOAT_ACL_READ)))
			notify(p, o, m);
		moat_msg_unref(&v[i]);
	}
	moat_free(v);
}

void moat__coap_on_ack(struct moat_coap_peer *p, uint16_t mid, bool rst)
{
	if (p->pend.active && p->pend.mid == mid)
		p->pend.active = false;
	if (!rst)
		return;
	/* RST to a notification: the client forgot the observation
	 * (RFC 7641 §3.6). */
	for (uint32_t i = 0; i < p->nobs; i++) {
		if (p->obs[i].last_mid == mid) {
			obs_remove(p, &p->obs[i]);
			break;
		}
	}
	if (!p->nobs && p->session)
		moat__coap_peer_drop_obs(p);
}

/* ---- /.well-known/core --------------------------------------------------- */

static char *link_buf(void)
{
	static _Thread_local char buf[MOAT_COAP_BLOCK];
	return buf;
}

/* The topic's levels, each percent-encoded, joined with '/'. */
static bool link_path(const struct moat_msg *m, char *out, size_t *pos)
{
	const char *t = m->topic, *end = t + m->topic_len;
	for (;;) {
		const char *slash = memchr(t, '/', (size_t)(end - t));
		const char *e = slash ? slash : end;
		if (coap_pct_encode((const uint8_t *)t, (size_t)(e - t), "/",
				    out, MOAT_COAP_BLOCK, pos) != MOAT_OK)
			return false;
		if (!slash)
			return true;
		if (*pos + 2 >= MOAT_COAP_BLOCK)
			return false;
		out[(*pos)++] = '/';
		out[*pos] = '\0';
		t = slash + 1;
	}
}

static void wellknown(struct moat_coap_peer *p, struct moat_coap_resp *r)
{
	struct moat_worker *w = p->ep->w;
	char *out = link_buf();
	size_t pos = 0;
	out[0] = '\0';
	int n = snprintf(out, MOAT_COAP_BLOCK, "</ps>;rt=\"core.ps\";ct=40");
	pos = (size_t)n;
	struct moat_msg **v = NULL;
	size_t nv = 0;
	if (moat_tree_retained(&w->b->tree, (const uint8_t *)"#", 1, 64, &v,
			       &nv) == MOAT_OK) {
		for (size_t i = 0; i < nv; i++) {
			struct moat_msg *m = v[i];
			size_t save = pos;
			bool ok = !moat_topic_is_sys((const uint8_t *)m->topic,
						     m->topic_len) &&
				  moat__coap_acl(p, m->topic, m->topic_len,
						 MOAT_ACL_READ) &&
				  pos + 8 < MOAT_COAP_BLOCK;
			if (ok) {
				memcpy(out + pos, ",</ps/", 6);
				pos += 6;
				out[pos] = '\0';
				ok = link_path(m, out, &pos) &&
				     pos + 24 < MOAT_COAP_BLOCK;
				if (ok)
					pos += (size_t)snprintf(
						out + pos,
						MOAT_COAP_BLOCK - pos,
						">;rt=\"core.ps.data\";obs");
			}
			if (!ok) {
				pos = save;
				out[pos] = '\0';
			}
			moat_msg_unref(&v[i]);
		}
		moat_free(v);
	}
	r->code = COAP_CONTENT;
	r->has_cf = true;
	r->cf = 40; /* application/link-format */
	r->payload = (const uint8_t *)out;
	r->plen = pos;
}

/* ---- requests -------------------------------------------------------------- */

/* The response is built: the message its payload points into is
 * referenced no more after. */
static void keep_payload(struct moat_coap_resp *r)
{
	static _Thread_local uint8_t copy[MOAT_COAP_BLOCK];
	if (!r->plen)
		return;
	memcpy(copy, r->payload, r->plen);
	r->payload = copy;
}

/* A later block of a notification (RFC 7959 §2.6, RFC 7641 §3.4): from
 * the body kept for it, with its ETag; a newer notification's when one
 * superseded it (its ETag tells the client to restart).  Its topic was
 * checked against the ACL when it was sent.  False: not one (an exact
 * path without a body: the retained value's block). */
static bool notification_block(struct moat_coap_peer *p,
			       const struct coap_msg *req,
			       const struct path *pp, struct moat_coap_resp *r)
{
	struct coap_block want;
	if (coap_opt_block(req, COAP_OPT_BLOCK2, &want) != MOAT_OK ||
	    !want.num)
		return false;
	struct moat_msg *body = obs_body(p, req, pp);
	if (body) {
		content(r, body, &want, p->ep->w->now_ms);
		keep_payload(r);
		return true;
	}
	if (!pp->wildcard)
		return false;
	fail(r, COAP_NOT_FOUND, "no notification body to fetch (expired "
				"or never sent)");
	return true;
}

static void ps_get(struct moat_coap_peer *p, const struct coap_msg *req,
		   const struct path *pp, struct moat_coap_resp *r)
{
	struct moat_worker *w = p->ep->w;
	uint32_t ob;
	bool has_ob = coap_opt_uint(req, COAP_OPT_OBSERVE, 3, &ob) == MOAT_OK;
	if (has_ob && ob == COAP_OBSERVE_DEREGISTER) {
		struct moat_coap_obs *o = obs_by_token(p, req);
		if (o)
			obs_remove(p, o);
		has_ob = false;
	}
	if (notification_block(p, req, pp, r))
		return;
	bool reg = has_ob && ob == COAP_OBSERVE_REGISTER;
	if (pp->wildcard && !reg)
		return fail(r, COAP_BAD_REQUEST,
			    "wildcards only with Observe");
	if (pp->wildcard && !w->cfg->wildcard_subscriptions)
		return fail(r, COAP_FORBIDDEN, "wildcard_subscriptions false");
	int access = reg ? MOAT_ACL_SUBSCRIBE : MOAT_ACL_READ;
	if (!moat__coap_acl(p, pp->topic, pp->len, access)) {
		MOAT_STAT_ADD(w->b, acl_denials, 1);
		return fail(r, COAP_FORBIDDEN, "not allowed by the ACL");
	}
	struct coap_block want;
	bool has_b2 = coap_opt_block(req, COAP_OPT_BLOCK2, &want) == MOAT_OK;
	/* A later block of a registration is a plain GET (RFC 7959 §2.6). */
	if (reg && (!has_b2 || want.num == 0) &&
	    observe(p, req, pp, has_b2 ? MOAT_MIN(want.szx, 6) : 6)) {
		r->has_observe = true;
		r->observe = 1;
		/* A wildcard's retained values follow the response, as
		 * notifications (as an MQTT SUBSCRIBE gets them). */
		r->retained_after = pp->wildcard;
	}
	struct moat_msg *m = pp->wildcard ? NULL
					  : retained_of(w, pp->topic, pp->len);
	if (m && (!m->has_src || moat__source_may_publish(w, m))) {
		struct coap_opt et;
		uint32_t acc;
		content(r, m, has_b2 ? &want : NULL, w->now_ms);
		/* RFC 7252 §5.10.4: a known format other than the one asked
		 * for.  (A value without a known format is sent.) */
		if (coap_opt_uint(req, COAP_OPT_ACCEPT, 2, &acc) == MOAT_OK &&
		    r->has_cf && r->cf != acc && !r->has_observe) {
			moat_msg_unref(&m);
			memset(r, 0, sizeof(*r));
			return fail(r, COAP_NOT_ACCEPTABLE, NULL);
		}
		if (coap_opt_find(req, COAP_OPT_ETAG, &et) && et.len == 8 &&
		    !memcmp(et.val, r->etag, 8) && !r->has_block2) {
			r->code = COAP_VALID; /* RFC 7252 §5.10.6 */
			r->plen = 0;
		}
		/* The registration's own later blocks are served like a
		 * notification's (a newer notification supersedes it). */
		if (r->has_observe && r->has_block2 && r->block2.more)
			keep_body(p, obs_by_token(p, req), m, true);
		keep_payload(r);
		moat_msg_unref(&m);
		return;
	}
	moat_msg_unref(&m);
	if (r->has_observe) {
		r->code = COAP_CONTENT; /* registered; nothing retained yet */
		return;
	}
	fail(r, COAP_NOT_FOUND, "no retained value");
}

static void ps_request(struct moat_coap_peer *p, const struct coap_msg *req,
		       const struct path *pp, struct moat_coap_resp *r)
{
	struct moat_worker *w = p->ep->w;
	if (req->code == COAP_GET)
		return ps_get(p, req, pp, r);
	if (req->code != COAP_PUT && req->code != COAP_POST &&
	    req->code != COAP_DELETE)
		return fail(r, COAP_METHOD_NOT_ALLOWED, NULL);
	if (pp->wildcard)
		return fail(r, COAP_BAD_REQUEST, "'+' and '#' only in GET "
						 "with Observe");
	if (moat_topic_is_sys((const uint8_t *)pp->topic, pp->len))
		return fail(r, COAP_FORBIDDEN, "$SYS topics are the broker's");
	if (!moat__coap_acl(p, pp->topic, pp->len, MOAT_ACL_WRITE)) {
		char t[96];
		MOAT_STAT_ADD(w->b, acl_denials, 1);
		moat_info("security: acl denial coap peer %s: %s to %s",
			  p->name, coap_code_name(req->code),
			  moat__log_topic(pp->topic, pp->len, t, sizeof(t)));
		return fail(r, COAP_FORBIDDEN, "not allowed by the ACL");
	}
	if (req->code == COAP_DELETE)
		return delete_retained(p, pp, r);
	if (moat__memory_exhausted(w)) {
		moat__coap_limit(w, p, "memory_limit reached: publish refused");
		return fail(r, COAP_SERVICE_UNAVAILABLE, "memory_limit");
	}
	publish_blocks(p, req, pp, r);
}

void moat__coap_request(struct moat_coap_peer *p, const struct coap_msg *req,
			struct moat_coap_resp *r)
{
	struct moat_worker *w = p->ep->w;
	uint16_t bad;
	struct coap_opt o;
	struct path pp;
	if (coap_opts_check(req, &bad) != MOAT_OK) {
		/* RFC 7252 §5.4.1: an unrecognised critical option. */
		if (req->type == COAP_NON) {
			r->no_response = true;
			return;
		}
		return fail(r, COAP_BAD_OPTION, "unrecognised critical option");
	}
	if (coap_opt_find(req, COAP_OPT_PROXY_URI, &o) ||
	    coap_opt_find(req, COAP_OPT_PROXY_SCHEME, &o))
		return fail(r, COAP_PROXYING_NOT_SUPPORTED, NULL);
	const char *why = read_path(req, &pp, (size_t)w->cfg->max_topic_length);
	if (why)
		return fail(r, COAP_BAD_REQUEST, why);
	if (pp.wellknown) {
		if (req->code != COAP_GET)
			return fail(r, COAP_METHOD_NOT_ALLOWED, NULL);
		/* Only to a peer whose address answered an Echo (or on a
		 * loopback listener): the listing is the classic reflection
		 * payload (T-23). */
		if (!p->validated && !p->ep->loopback) {
			r->code = COAP_UNAUTHORIZED;
			r->need_echo = true;
			return;
		}
		return wellknown(p, r);
	}
	if (!pp.ps)
		return fail(r, COAP_NOT_FOUND, NULL);
	if (coap_opt_find(req, COAP_OPT_URI_QUERY, &o))
		return fail(r, COAP_BAD_REQUEST, "no query on /ps/ resources");
	if (pp.nseg > w->cfg->max_topic_levels)
		return fail(r, COAP_BAD_REQUEST, "too many topic levels");
	ps_request(p, req, &pp, r);
}
