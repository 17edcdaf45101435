/* Sessions: subscriptions, the outgoing QoS 1/2 window, the queue of
 * messages waiting for it, and incoming QoS 2 ids.  Home worker only. */
#include <string.h>

#include "auth/acl.h"
#include "broker_int.h"
#include "codec/mqtt5.h"

struct moat_session *moat_session_new(struct moat_worker *w,
				      const uint8_t *client_id, size_t len,
				      uint32_t expiry_s, const char *owner)
{
	/* The client id follows the struct in the same block. */
	struct moat_session *s = moat_calloc(1, sizeof(*s) + len + 1);
	if (!s)
		return NULL;
	s->client_id = (char *)(s + 1);
	memcpy(s->client_id, client_id, len);
	s->owner = owner ? moat_strdup(owner) : NULL;
	if (owner && !s->owner) {
		moat_session_discard(s);
		return NULL;
	}
	atomic_init(&s->refs, 1); /* the worker's table */
	s->client_id_len = len;
	s->home = w;
	s->expiry_s = expiry_s;
	s->serial = atomic_fetch_add(&w->b->session_seq, 1) + 1;
	s->next_packet_id = 1;
	return s;
}

const char *moat_session_log_id(const struct moat_session *s, char *buf)
{
	moat_log_escape((const uint8_t *)s->client_id, s->client_id_len, buf,
			MOAT_LOG_ID_LEN);
	return buf;
}

void moat_session_discard(struct moat_session *s)
{
	moat_free(s->inflight);
	moat_free(s->owner);
	moat_free(s);
}

void moat_session_ref(struct moat_session *s)
{
	atomic_fetch_add_explicit(&s->refs, 1, memory_order_relaxed);
}

void moat_session_unref(struct moat_session **sp)
{
	struct moat_session *s = *sp;
	if (!s)
		return;
	*sp = NULL;
	if (atomic_fetch_sub_explicit(&s->refs, 1, memory_order_acq_rel) != 1)
		return;
	/* Last reference: state was already released by destroy. */
	moat_free(s->owner);
	moat_free(s);
}

/* ---- the outgoing in-flight window: a ring in send order ---- */

static struct moat_inflight *inflight_at(struct moat_session *s, size_t i)
{
	size_t k = s->ihead + i;
	return &s->inflight[k < s->icap ? k : k - s->icap];
}

/* Room for one more entry: the ring grows by doubling, up to
 * max_inflight_messages.  False when full or out of memory. */
static bool inflight_reserve(struct moat_session *s)
{
	if (s->ninflight < s->icap)
		return true;
	size_t max = (size_t)s->home->cfg->max_inflight_messages;
	size_t cap = MOAT_MIN(MOAT_MAX(2 * s->icap, (size_t)8), max);
	if (cap <= s->icap)
		return false;
	struct moat_inflight *v = moat_malloc(cap * sizeof(*v));
	if (!v)
		return false;
	for (size_t i = 0; i < s->ninflight; i++)
		v[i] = *inflight_at(s, i);
	moat_free(s->inflight);
	s->inflight = v;
	s->icap = (uint32_t)cap; /* <= max_inflight_messages */
	s->ihead = 0;
	return true;
}

/* A new zeroed entry at the tail (after inflight_reserve). */
static struct moat_inflight *inflight_push(struct moat_session *s)
{
	struct moat_inflight *f = inflight_at(s, s->ninflight++);
	memset(f, 0, sizeof(*f));
	return f;
}

/* Take entry idx out: the head (acks in order) in O(1), another one by
 * moving those after it up. */
static void inflight_remove_at(struct moat_session *s, size_t idx)
{
	if (idx == 0)
		s->ihead = s->ihead + 1 < s->icap ? s->ihead + 1 : 0;
	for (size_t i = idx; idx && i + 1 < s->ninflight; i++)
		*inflight_at(s, i) = *inflight_at(s, i + 1);
	s->ninflight--;
}

void moat_session_trim(struct moat_session *s)
{
	if (!s->ninflight && s->inflight) {
		MOAT_FREE(s->inflight);
		s->icap = s->ihead = 0;
	}
	if (!s->qlen && s->queue)
		moat__squeue_free(s); /* a ring once grown by a burst */
}

/* A stored delivery that will not happen: its row goes. */
static void forget_did(struct moat_session *s, uint64_t did,
		       const struct moat_msg *m)
{
	if (did)
		moat__store_delivery_del(s->home, did, m ? m->store_id : 0);
}

static void note_drop(struct moat_session *s, const char *why)
{
	s->dropped++;
	MOAT_STAT_ADD(s->home->b, msgs_dropped, 1);
	if (!s->drop_logged) {
		s->drop_logged = true;
		char id[MOAT_LOG_ID_LEN];
		moat_warn("client %s: %s; dropping messages (logged once per "
			  "session)",
			  moat_session_log_id(s, id), why);
	}
}

void moat__share_redeliver(struct moat_session *from, struct moat_msg *m,
			   uint64_t g)
{
	struct moat_worker *w = from->home;
	uint8_t qos;
	struct moat_session *to = moat_tree_share_pick(
		&w->b->tree, (const uint8_t *)m->topic, m->topic_len, g, from,
		&qos);
	if (!to) {
		note_drop(from, "no other member of its shared subscription");
		return;
	}
	if (to->home == w) {
		moat_session_route(to, m, qos, g, 0);
		moat_session_unref(&to);
		return;
	}
	struct moat_inbox_item it = {.kind = INBOX_DELIVER,
				     .qos = qos,
				     .session = to,
				     .msg = moat_msg_ref(m),
				     .share = g};
	moat_worker_post(to->home, &it);
}

void moat_session_destroy(struct moat_session *s)
{
	struct moat_broker *b = s->home->b;
	/* A delayed will goes out when the session ends [MQTT-3.1.3-9];
	 * at shutdown it stays in the store for after the restart. */
	if (b->shutting_down)
		moat_msg_unref(&s->will);
	else
		moat_session_fire_will(s);
	for (size_t i = 0; i < s->nsubs; i++) {
		struct moat_sub_entry *e = &s->subs[i];
		struct moat_bytes share = {(const uint8_t *)e->share,
					   e->share_len};
		moat_tree_unsubscribe(&b->tree, (const uint8_t *)e->filter,
				      e->len, e->share ? &share : NULL, s);
		moat_free(e->filter);
		moat_free(e->share);
	}
	MOAT_FREE(s->subs);
	s->nsubs = s->subs_cap = 0;
	s->dead = true; /* no more deliveries to it from here on */
	if (atomic_load(&s->stored))
		moat__store_session_del(s->home, s);
	/* A member of a shared group goes away: what it had not
	 * acknowledged of QoS 1, and had not started of any QoS, goes to
	 * another member [MQTT-4.8.2-?]; a QoS 2 message already sent must
	 * not be sent to anyone else [MQTT-4.8.2-5]. */
	/* (At shutdown nothing is handed over: the session stays in the
	 * store with its messages and comes back at the next start.) */
	bool hand_over = !b->shutting_down;
	for (size_t i = 0; i < s->ninflight; i++) {
		struct moat_inflight *f = inflight_at(s, i);
		if (hand_over && f->share && f->msg && f->qos == 1)
			moat__share_redeliver(s, f->msg, f->share);
		moat_msg_unref(&f->msg);
	}
	s->ninflight = 0;
	moat_session_trim(s);
	struct moat_qitem it;
	while (moat__squeue_pop(s, &it)) {
		if (hand_over && it.share)
			moat__share_redeliver(s, it.msg, it.share);
		moat_msg_unref(&it.msg);
	}
	moat__squeue_free(s);
	MOAT_FREE(s->qos2_in);
	moat_worker_remove_session(s->home, s);
	MOAT_STAT_SUB(b, sessions, 1);
	moat_session_unref(&s);
}

/* Could an entry of the window hold the id just taken?  Ids are taken in
 * turn from 1 to 65535, so one taken fewer than 65535 ids ago cannot;
 * the head is the oldest.  A restored entry (issue 0) may hold any id. */
static bool id_may_be_used(struct moat_session *s)
{
	if (!s->ninflight)
		return false;
	uint64_t head = inflight_at(s, 0)->issue;
	return head == 0 || s->id_issue - head >= 65535u;
}

static uint16_t next_id(struct moat_session *s)
{
	for (;;) {
		uint16_t id = s->next_packet_id++;
		if (s->next_packet_id == 0)
			s->next_packet_id = 1;
		s->id_issue++;
		bool used = false;
		for (size_t i = 0; id_may_be_used(s) && i < s->ninflight &&
				   !used; i++)
			used = inflight_at(s, i)->packet_id == id;
		if (!used)
			return id;
	}
}

uint16_t moat__session_take_id(struct moat_session *s)
{
	return next_id(s);
}

/* Put a message on the wire as a new in-flight (QoS>0) or plain QoS 0. */
static int send_now(struct moat_session *s, struct moat_msg *m, uint8_t qos,
		    bool retain, uint64_t share, uint64_t did)
{
	uint16_t id = 0;
	/* Expired while it waited: not sent [MQTT-3.3.2-5]. */
	if (moat_msg_expired(m, s->home->now_ms)) {
		MOAT_WSTAT_ADD(s->home, expired, 1);
		forget_did(s, did, m);
		return MOAT_OK;
	}
	/* Rights are checked when a message goes out, not only when the
	 * subscription was made: queued and retained messages too (T-11). */
	if (s->acl_each &&
	    !moat__acl_allows(s->conn, m->topic, m->topic_len, MOAT_ACL_READ)) {
		MOAT_STAT_ADD(s->home->b, acl_denials, 1);
		char t[96], lid[MOAT_LOG_ID_LEN];
		moat_debug("client %s: message on %s not delivered: not "
			   "readable by its user",
			   moat_session_log_id(s, lid),
			   moat__log_topic(m->topic, m->topic_len, t, sizeof(t)));
		forget_did(s, did, m);
		return MOAT_OK;
	}
	if (qos && !inflight_reserve(s)) {
		note_drop(s, "out of memory for the in-flight window");
		forget_did(s, did, m);
		return MOAT_OK;
	}
	if (qos) {
		id = next_id(s);
		moat__store_delivery_state(s->home, did, id, INFLIGHT_WAIT_ACK,
					   retain);
		/* A QoS 2 PUBLISH goes out only once its packet id is
		 * durable: after a crash it must be re-sent with the same
		 * id, or the client would take it for a new message. */
		if (did && qos == 2)
			moat__store_gate(s->conn);
	}
	int rc = moat_conn_send_publish(s->conn, m, qos, retain, false, id,
					share);
	if (rc == MOAT_DECLINED) { /* above the client's Maximum Packet Size */
		note_drop(s, "message larger than the client's Maximum Packet "
			     "Size");
		forget_did(s, did, m);
		return MOAT_OK;
	}
	if (rc != MOAT_OK) {
		forget_did(s, did, m); /* the connection closes; queued no more */
		return rc;
	}
	if (qos) {
		struct moat_inflight *f = inflight_push(s);
		f->msg = moat_msg_ref(m);
		f->issue = s->id_issue;
		f->packet_id = id;
		f->qos = qos;
		f->state = INFLIGHT_WAIT_ACK;
		f->retain = retain;
		f->share = share;
		f->sent = true;
		f->did = did;
		f->mid = m->store_id;
		s->nsent++;
	}
	return MOAT_OK;
}

/* The outgoing window: ours, and the client's Receive Maximum (v5), which
 * counts what is outstanding on this connection [MQTT-3.3.4-9]. */
static size_t window_size(const struct moat_session *s)
{
	size_t max = (size_t)s->home->cfg->max_inflight_messages;
	if (s->conn && s->conn->client_receive_max < max)
		max = s->conn->client_receive_max;
	return max;
}

static bool window_open(const struct moat_session *s)
{
	/* ninflight is also bounded by the array (max_inflight_messages);
	 * entries not yet re-sent after a resume go first. */
	return s->nsent < window_size(s) &&
	       s->ninflight < s->home->cfg->max_inflight_messages &&
	       s->nsent == s->ninflight;
}

/* Is there room in the queue for m?  Else it is dropped and counted
 * (with its stored delivery, if any).  Expired messages make room
 * [MQTT-3.3.2-5]; that costs O(1) while none has expired: a full queue
 * is not scanned for every message. */
static bool queue_room(struct moat_session *s, struct moat_msg *m,
		       uint64_t did)
{
	const struct moat_config *cfg = s->home->cfg;
	size_t size = moat_msg_size(m);
	bool bytes_full = cfg->max_queued_bytes &&
			  s->queued_bytes + size > cfg->max_queued_bytes;
	if (s->qlen >= cfg->max_queued_messages || bytes_full) {
		MOAT_WSTAT_ADD(s->home, expired,
			       moat__squeue_purge(s, s->home->now_ms));
		bytes_full = cfg->max_queued_bytes &&
			     s->queued_bytes + size > cfg->max_queued_bytes;
	}
	const char *why = s->qlen >= cfg->max_queued_messages
				  ? "queue full (max_queued_messages)"
			  : bytes_full ? "queue full (max_queued_bytes)"
				       : NULL;
	if (!why)
		return true;
	note_drop(s, why);
	forget_did(s, did, m);
	return false;
}

bool moat_session_window_starved(const struct moat_session *s)
{
	return s->conn && s->qlen && s->nsent == s->ninflight &&
	       !window_open(s);
}

/* Queue m (queue_room said yes). */
static void enqueue(struct moat_session *s, struct moat_msg *m, uint8_t qos,
		    bool retain, uint64_t share, uint64_t did)
{
	/* Waiting for acknowledgements of a connected client: those are
	 * read between the worker's events, so that a full window does not
	 * wait for a whole loop turn to open again. */
	if (s->conn && !s->conn->starved && qos && !window_open(s))
		moat__worker_watch_starved(s->home, s->conn);
	if (moat__squeue_push(s, m, qos, retain, share, did) != MOAT_OK) {
		note_drop(s, "out of memory for the queue");
		forget_did(s, did, m);
	}
}

/* The shared group of a stored delivery, by name and filter (group ids
 * do not survive a restart). */
static void note_share(struct moat_session *s, uint64_t did, uint64_t share)
{
	for (size_t i = 0; i < s->nsubs; i++) {
		const struct moat_sub_entry *e = &s->subs[i];
		if (e->group == share && e->share) {
			moat__store_delivery_share(s->home, did, e->share,
						   e->share_len, e->filter,
						   e->len);
			return;
		}
	}
}

/* did: the delivery's row when the routing worker recorded it, else 0
 * (recorded here for a stored session). */
static void deliver(struct moat_session *s, struct moat_msg *m, uint8_t qos,
		    bool retain, uint64_t share, uint64_t did)
{
	if (s->coap) { /* a CoAP peer's observations (coap_ps.c) */
		forget_did(s, did, m);
		if (!s->dead)
			moat__coap_deliver(s, m);
		return;
	}
	if (s->dead || !qos) {
		forget_did(s, did, m);
		did = 0;
		if (s->dead)
			return;
	}
	/* Offline, or behind others: queued.  A message the full queue
	 * drops is dropped now, before anything is recorded for it. */
	bool direct = s->conn && !s->qlen && moat_conn_can_send(s->conn) &&
		      (qos == 0 || window_open(s));
	if (!direct && (qos || s->conn) && !queue_room(s, m, did))
		return;
	if (qos && !did)
		did = moat__store_delivery(s->home, s, m, qos, retain);
	else if (did && retain) /* recorded by the router without it (RAP) */
		moat__store_delivery_state(s->home, did, 0, INFLIGHT_WAIT_ACK,
					   true);
	if (did && share)
		note_share(s, did, share);
	if (!s->conn) {
		/* Offline: QoS 0 is not kept, QoS 1/2 are queued. */
		if (qos)
			enqueue(s, m, qos, retain, share, did);
		return;
	}
	/* Keep order: nothing overtakes what is already queued. */
	if (direct) {
		if (send_now(s, m, qos, retain, share, did) != MOAT_OK)
			moat_conn_close(s->conn, "output buffer overflow");
		return;
	}
	enqueue(s, m, qos, retain, share, did);
}

void moat_session_deliver(struct moat_session *s, struct moat_msg *m,
			  uint8_t qos, bool retain)
{
	deliver(s, m, qos, retain, 0, 0);
}

static bool sub_applies(const struct moat_sub_entry *e,
			const struct moat_session *s, const struct moat_msg *m,
			uint64_t share)
{
	if (e->group != share)
		return false;
	if (!moat_topic_matches((const uint8_t *)e->filter, e->len,
				(const uint8_t *)m->topic, m->topic_len))
		return false;
	/* No Local: not back to the publisher's own session
	 * [MQTT-3.8.3-3]. */
	return !(e->no_local && m->origin == s->serial);
}

void moat_session_route(struct moat_session *s, struct moat_msg *m,
			uint8_t qos, uint64_t share, uint64_t did)
{
	bool retain = false;
	if (s->dead) {
		forget_did(s, did, m);
		return;
	}
	if (s->has_sub_options) {
		/* Re-evaluate with the options only the home worker knows. */
		bool any = false;
		qos = 0;
		for (size_t i = 0; i < s->nsubs; i++) {
			const struct moat_sub_entry *e = &s->subs[i];
			if (!sub_applies(e, s, m, share))
				continue;
			any = true;
			qos = MOAT_MAX(qos, MOAT_MIN(e->qos, m->qos));
			retain = retain || (e->retain_as_published && m->retain);
		}
		if (!any) {
			forget_did(s, did, m);
			return;
		}
	}
	if (moat_msg_expired(m, s->home->now_ms)) {
		MOAT_WSTAT_ADD(s->home, expired, 1);
		forget_did(s, did, m);
		return;
	}
	deliver(s, m, MOAT_MIN(qos, m->qos), retain, share, did);
}

void moat_session_sub_ids(const struct moat_session *s,
			  const struct moat_msg *m,
			  uint64_t share, struct moat_pw *w)
{
	for (size_t i = 0; i < s->nsubs; i++) {
		const struct moat_sub_entry *e = &s->subs[i];
		if (e->sub_id && sub_applies(e, s, m, share))
			moat_pw_varint(w, PROP_SUBSCRIPTION_ID, e->sub_id);
	}
}

void moat_session_fire_will(struct moat_session *s)
{
	if (!s->will)
		return;
	moat_worker_defer_will(s->home, s->will);
	s->will = NULL;
	if (atomic_load(&s->stored) && !s->dead)
		moat__store_session(s->home, s); /* without the will now */
}

/* Re-send the next in-flight message not yet sent on this connection:
 * PUBLISH with DUP [MQTT-4.4.0-1] [MQTT-3.3.1-1], or PUBREL.  Returns
 * MOAT_OK, MOAT_ENOTFOUND when none is left, or an error.  The entries
 * sent on this connection are the first nsent (resends go in order, new
 * ones only when all are sent, and removal keeps the order): the search
 * starts there, so a resume costs O(window), not O(window^2). */
static int resend_next(struct moat_session *s)
{
	for (size_t i = s->nsent; i < s->ninflight; i++) {
		struct moat_inflight *f = inflight_at(s, i);
		int rc;
		if (f->sent)
			continue;
		if (f->state == INFLIGHT_WAIT_ACK) {
			/* Rights may have been revoked since it was sent. */
			bool denied = s->acl_each &&
				      !moat__acl_allows(s->conn, f->msg->topic,
							f->msg->topic_len,
							MOAT_ACL_READ);
			rc = denied ? MOAT_DECLINED
				    : moat_conn_send_publish(
					      s->conn, f->msg, f->qos, f->retain,
					      true, f->packet_id, f->share);
			if (rc == MOAT_DECLINED && denied) {
				MOAT_STAT_ADD(s->home->b, acl_denials, 1);
				forget_did(s, f->did, f->msg);
				moat_msg_unref(&f->msg);
				inflight_remove_at(s, i);
				return MOAT_OK;
			}
			if (rc == MOAT_DECLINED) {
				/* Too big for the new Maximum Packet Size:
				 * discarded as if sent [MQTT-3.1.2-25]. */
				note_drop(s, "message larger than the client's "
					     "Maximum Packet Size");
				forget_did(s, f->did, f->msg);
				moat_msg_unref(&f->msg);
				inflight_remove_at(s, i);
				return MOAT_OK;
			}
		} else {
			uint8_t pkt[4];
			moat_mqtt_ack_encode(pkt, MQTT_PUBREL, f->packet_id);
			rc = moat_conn_send(s->conn, pkt, sizeof(pkt));
		}
		if (rc == MOAT_OK) {
			f->sent = true;
			s->nsent++;
		}
		return rc;
	}
	return MOAT_ENOTFOUND;
}

void moat_session_pump(struct moat_session *s)
{
	/* First what a resume could not re-send within the window. */
	while (s->conn && s->nsent < s->ninflight &&
	       s->nsent < window_size(s)) {
		int rc = resend_next(s);
		if (rc == MOAT_ENOTFOUND)
			break;
		if (rc != MOAT_OK) {
			moat_conn_close(s->conn, "output buffer overflow");
			return;
		}
	}
	const struct moat_qitem *head;
	while (s->conn && moat_conn_can_send(s->conn) &&
	       (head = moat__squeue_head(s))) {
		if (head->qos && !window_open(s))
			break;
		struct moat_qitem it;
		moat__squeue_pop(s, &it);
		int rc = send_now(s, it.msg, it.qos, it.retain, it.share,
				  it.did);
		moat_msg_unref(&it.msg);
		if (rc != MOAT_OK) {
			moat_conn_close(s->conn, "output buffer overflow");
			return;
		}
	}
}

void moat_session_resume(struct moat_session *s)
{
	/* Nothing has been sent on the new connection yet; pump re-sends
	 * in order, as far as the client's Receive Maximum allows. */
	for (size_t i = 0; i < s->ninflight; i++)
		inflight_at(s, i)->sent = false;
	s->nsent = 0;
	moat_session_pump(s);
}

/* Acks normally come in send order: the head is looked at first. */
static struct moat_inflight *find_inflight(struct moat_session *s,
					   uint16_t id, size_t *idx)
{
	for (size_t i = 0; i < s->ninflight; i++) {
		struct moat_inflight *f = inflight_at(s, i);
		if (f->packet_id == id) {
			*idx = i;
			return f;
		}
	}
	return NULL;
}

static void remove_inflight(struct moat_session *s, size_t idx)
{
	struct moat_inflight *f = inflight_at(s, idx);
	if (f->did)
		moat__store_delivery_del(s->home, f->did, f->mid);
	if (f->sent)
		s->nsent--;
	moat_msg_unref(&f->msg);
	inflight_remove_at(s, idx);
}

int moat_session_on_puback(struct moat_session *s, uint16_t id)
{
	size_t idx;
	struct moat_inflight *f = find_inflight(s, id, &idx);
	/* An unknown id is tolerated: it may be an ack for a message sent
	 * before a reconnect that the client already had acknowledged. */
	if (!f || f->qos != 1)
		return MOAT_OK;
	remove_inflight(s, idx);
	moat_session_pump(s);
	return MOAT_OK;
}

int moat_session_on_pubrec(struct moat_session *s, uint16_t id)
{
	size_t idx;
	struct moat_inflight *f = find_inflight(s, id, &idx);
	uint8_t pkt[4];
	if (f && f->qos != 2)
		return MOAT_EPROTO; /* PUBREC answers QoS 2 only */
	if (f) {
		f->state = INFLIGHT_WAIT_COMP;
		/* Only the id is needed from now on [MQTT-4.3.3-1]. */
		moat_msg_unref(&f->msg);
		/* PUBREL only once that is durable: after a crash the
		 * PUBLISH must not be sent again (the client may have
		 * delivered it on PUBREL). */
		if (f->did) {
			moat__store_delivery_state(s->home, f->did, id,
						   INFLIGHT_WAIT_COMP, f->retain);
			moat__store_gate(s->conn);
		}
	}
	/* Answer PUBREL even for an unknown id, so the client can finish
	 * its flow; MQTT 5 says it was unknown (0x92 Packet Identifier not
	 * found). */
	if (!f && s->conn->proto_level == MQTT_PROTO_V5) {
		if (moat_mqtt5_ack(&s->conn->out, MQTT_PUBREL, id,
				   RC_PACKET_ID_NOT_FOUND, NULL) != MOAT_OK)
			return MOAT_ELIMIT;
		moat_worker_mark_dirty(s->conn->w, s->conn);
		return MOAT_OK;
	}
	moat_mqtt_ack_encode(pkt, MQTT_PUBREL, id);
	return moat_conn_send(s->conn, pkt, sizeof(pkt));
}

int moat_session_on_pubcomp(struct moat_session *s, uint16_t id)
{
	size_t idx;
	struct moat_inflight *f = find_inflight(s, id, &idx);
	if (!f || f->state != INFLIGHT_WAIT_COMP)
		return MOAT_OK;
	remove_inflight(s, idx);
	moat_session_pump(s);
	return MOAT_OK;
}

int moat_session_on_pubrec_failed(struct moat_session *s, uint16_t id)
{
	size_t idx;
	struct moat_inflight *f = find_inflight(s, id, &idx);
	if (!f || f->qos != 2 || f->state != INFLIGHT_WAIT_ACK)
		return MOAT_OK;
	remove_inflight(s, idx);
	moat_session_pump(s);
	return MOAT_OK;
}

/* QoS 2 packet ids received and not yet released: a few live in the
 * session itself; a bitmap of all 65536 ids (8 KiB) is allocated only
 * when more are pending at once, and freed when none are. */
bool moat_session_qos2_test(struct moat_session *s, uint16_t id)
{
	if (s->qos2_in)
		return s->qos2_in[id >> 3] & (1u << (id & 7));
	for (uint32_t i = 0; i < s->qos2_pending; i++)
		if (s->qos2_small[i] == id)
			return true;
	return false;
}

int moat_session_qos2_set(struct moat_session *s, uint16_t id)
{
	if (moat_session_qos2_test(s, id))
		return MOAT_OK;
	if (!s->qos2_in && s->qos2_pending < MOAT_ARRAY_LEN(s->qos2_small)) {
		s->qos2_small[s->qos2_pending++] = id;
		return MOAT_OK;
	}
	if (!s->qos2_in) {
		s->qos2_in = moat_calloc(65536 / 8, 1);
		if (!s->qos2_in)
			return MOAT_ENOMEM;
		for (uint32_t i = 0; i < s->qos2_pending; i++) {
			uint16_t k = s->qos2_small[i];
			s->qos2_in[k >> 3] =
				(uint8_t)(s->qos2_in[k >> 3] | (1u << (k & 7)));
		}
	}
	s->qos2_pending++;
	s->qos2_in[id >> 3] = (uint8_t)(s->qos2_in[id >> 3] | (1u << (id & 7)));
	return MOAT_OK;
}

void moat_session_qos2_clear(struct moat_session *s, uint16_t id)
{
	if (!moat_session_qos2_test(s, id))
		return;
	s->qos2_pending--;
	if (s->qos2_in) {
		s->qos2_in[id >> 3] =
			(uint8_t)(s->qos2_in[id >> 3] & ~(1u << (id & 7)));
		if (!s->qos2_pending)
			MOAT_FREE(s->qos2_in);
		return;
	}
	for (uint32_t i = 0; i <= s->qos2_pending; i++)
		if (s->qos2_small[i] == id) {
			s->qos2_small[i] = s->qos2_small[s->qos2_pending];
			return;
		}
}

int moat__session_restore_delivery(struct moat_session *s, struct moat_msg *m,
				   uint8_t qos, bool retain, uint64_t share,
				   uint64_t did, uint16_t packet_id,
				   uint8_t state)
{
	if (packet_id && !inflight_reserve(s) &&
	    s->ninflight < (size_t)s->home->cfg->max_inflight_messages)
		return MOAT_ENOMEM;
	if (packet_id && s->ninflight < s->icap) {
		/* Sent before the restart: re-sent with the same id (DUP),
		 * or its PUBREL, when the client returns [MQTT-4.4.0-1].
		 * (issue 0: its id was not taken by next_id.) */
		struct moat_inflight *f = inflight_push(s);
		f->msg = state == INFLIGHT_WAIT_COMP || !m ? NULL
							    : moat_msg_ref(m);
		f->packet_id = packet_id;
		f->qos = qos;
		f->state = state;
		f->retain = retain;
		f->share = share;
		f->did = did;
		f->mid = m ? m->store_id : 0;
		if ((uint16_t)(packet_id + 1) >= s->next_packet_id)
			s->next_packet_id = (uint16_t)(packet_id + 1)
						    ? (uint16_t)(packet_id + 1)
						    : 1;
		return MOAT_OK;
	}
	if (!m)
		/* Only its PUBREL was left, and the window (made smaller
		 * since?) has no room: the row goes. */
		return MOAT_ENOTFOUND;
	return moat__squeue_push(s, m, qos, retain, share, did);
}
