/* Client ids across the nodes of a cluster (cluster_state.h,
 * docs/cluster.md "Client ids across nodes").
 *
 * A node that accepts a CONNECT with a client id of the client's own
 * (not one the node assigned) publishes on moat.c.connect:
 *
 *   bytes 0-7   the node's nonce (big-endian)
 *   bytes 8-15  when the CONNECT was accepted: wall clock, microseconds
 *   byte 16     bit 0: a user name follows (else anonymous); bit 1: the
 *               client asked for a clean start
 *   u16         user name length, then the user name (when byte 8 is 1)
 *   the rest    the client id
 *
 * Every node listens.  The announcement goes to the worker that is the
 * client id's home (as on one node), on the worker's own loop, carried
 * by a message whose topic is the client id and whose payload is the
 * owner (its references keep it safe in an inbox at teardown).  There a
 * session of that client id owned by the same identity (T-08: no other
 * identity takes a session over) loses its connection (MQTT 5: DISCONNECT
 * 0x8E, session taken over) and ends: the client carries on at the other
 * node, and, unless the client asked for a clean start there, its state
 * goes with it: the session's subscriptions and the messages waiting for
 * it (queued, and sent but not acknowledged) are sent to the announcing
 * node (moat.c.sess.<its nonce>), which adds them to the client's new
 * session (see snapshot format below).  Two connections made at nearly the same moment on two nodes
 * announce each other; the later one (by the time in the announcements,
 * then by nonce) stays on both sides, so exactly one remains.
 *
 * Wills (as on one node): the ended connection's will goes out at once
 * unless it has a Will Delay (MQTT 5 takeover, [MQTT-3.1.4-3]); a delayed
 * will waiting in the session is cancelled when the session moves (the
 * client is back) and published, once, by this node when the new
 * connection asked for a clean start (the session ends). */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "broker/broker_int.h"
#include "cluster/cluster_int.h"
#include "cluster/cluster_state.h"
#include "codec/mqtt5.h"

#define SESS_SUBJECT "moat.c.connect"
#define SNAP_PREFIX "moat.c.sess."
#define F_USER 1u
#define F_CLEAN 2u
#define SNAP_VERSION 1
/* What a snapshot may take beyond the subscriptions: room left in NATS's
 * max_payload for the messages (the rest stay behind, counted). */
#define SNAP_SLACK 1024
#define MAX_USER 1024

#define HEAD 17 /* nonce, time, user flag */

static natsSubscription *sess_sub, *snap_sub;

/* When this node last announced each client id (by hash; a collision
 * forgets the older one, which then loses a tie it should have won):
 * the time compared with another node's announcement. */
#define ANNOUNCED 4096
static struct {
	pthread_mutex_t lock;
	uint64_t id[ANNOUNCED], at_ms[ANNOUNCED];
} announced = {.lock = PTHREAD_MUTEX_INITIALIZER};

static void note_announced(const uint8_t *id, size_t len, uint64_t at)
{
	uint64_t h = moat_fnv1a(id, len, MOAT_FNV1A_INIT);
	pthread_mutex_lock(&announced.lock);
	announced.id[h % ANNOUNCED] = h;
	announced.at_ms[h % ANNOUNCED] = at;
	pthread_mutex_unlock(&announced.lock);
}

static uint64_t announced_at(const uint8_t *id, size_t len)
{
	uint64_t h = moat_fnv1a(id, len, MOAT_FNV1A_INIT), at = 0;
	pthread_mutex_lock(&announced.lock);
	if (announced.id[h % ANNOUNCED] == h)
		at = announced.at_ms[h % ANNOUNCED];
	pthread_mutex_unlock(&announced.lock);
	return at;
}



static void put64(uint8_t *p, uint64_t v)
{
	for (int i = 7; i >= 0; i--, v >>= 8)
		p[i] = (uint8_t)v;
}

static uint64_t get64(const uint8_t *p)
{
	uint64_t v = 0;
	for (int i = 0; i < 8; i++)
		v = v << 8 | p[i];
	return v;
}

void moat__cluster_sess_connected(struct moat_conn *c, const uint8_t *id,
				  size_t len, bool clean)
{
	struct moat_cluster *cl = moat__cluster_of(c->w->b);
	const char *user = c->username;
	size_t ulen = user ? strlen(user) : 0;
	uint8_t head[HEAD + 2 + MAX_USER];
	size_t hl = HEAD;
	if (!cl || !cl->nc || ulen > MAX_USER)
		return;
	uint64_t now = moat__wall_us(); /* ms would tie too often */
	note_announced(id, len, now);
	put64(head, cl->nonce);
	put64(head + 8, now);
	head[16] = (uint8_t)((user ? F_USER : 0u) | (clean ? F_CLEAN : 0u));
	if (user) {
		head[HEAD] = (uint8_t)(ulen >> 8);
		head[HEAD + 1] = (uint8_t)ulen;
		memcpy(head + HEAD + 2, user, ulen);
		hl = HEAD + 2 + ulen;
	}
	uint8_t *buf = moat_malloc(hl + len);
	if (!buf) {
		atomic_fetch_add(&cl->dropped, 1);
		return;
	}
	memcpy(buf, head, hl);
	memcpy(buf + hl, id, len);
	if (!clean)
		moat__cluster_sreg_connected(c->w->b, id, len);
	if (natsConnection_Publish(cl->nc, SESS_SUBJECT, buf,
				   (int)(hl + len)) != NATS_OK)
		atomic_fetch_add(&cl->dropped, 1);
	moat_free(buf);
}

/* libnats's delivery thread: decode, hand to the client id's home. */
static void on_connect_msg(natsConnection *nc, natsSubscription *sub,
			   natsMsg *msg, void *closure)
{
	(void)nc;
	(void)sub;
	struct moat_cluster *cl = closure;
	const uint8_t *d = (const uint8_t *)natsMsg_GetData(msg);
	size_t n = (size_t)natsMsg_GetDataLength(msg), hl = HEAD, ulen = 0;
	if (n < HEAD || get64(d) == cl->nonce || d[16] > 3)
		goto out; /* ours, or not one */
	if (d[16] & F_USER) {
		if (n < HEAD + 2)
			goto out;
		ulen = (size_t)d[HEAD] << 8 | d[HEAD + 1];
		hl = HEAD + 2 + ulen;
		if (n < hl || ulen > MAX_USER)
			goto out;
	}
	size_t idlen = n - hl;
	if (idlen > UINT16_MAX)
		goto out;
	/* payload: the announcing nonce and time, 1 byte anonymous or
	 * not, then the user name */
	uint8_t owner[HEAD + MAX_USER];
	memcpy(owner, d, HEAD);
	if (ulen)
		memcpy(owner + HEAD, d + HEAD + 2, ulen);
	struct moat_msg *m =
		moat_msg_new(d + hl, idlen, owner, HEAD + ulen, 0, false);
	if (!m)
		goto out;
	struct moat_broker *b = cl->b;
	struct moat_inbox_item it = {.kind = INBOX_CLUSTER_CTL, .msg = m};
	if (moat_worker_post(moat_worker_home(b, d + hl, idlen), &it) !=
	    MOAT_OK)
		moat_msg_unref(&m);
out:
	natsMsg_Destroy(msg);
}

static bool same_owner(const struct moat_session *s, const struct moat_msg *m)
{
	size_t ulen = m->payload_len - HEAD;
	if (!(m->payload[16] & F_USER))
		return s->owner == NULL;
	return s->owner && strlen(s->owner) == ulen &&
	       !memcmp(s->owner, m->payload + HEAD, ulen);
}

/* Is this node's connection of the client id newer than the one
 * announced in m (it stays, and the other node closes the announced one
 * when ours reaches it)?  Both times are the announcing nodes' wall
 * clocks at their CONNECTs. */
static bool local_is_newer(const struct moat_cluster *cl,
			   const struct moat_msg *m)
{
	uint64_t ours = announced_at((const uint8_t *)m->topic, m->topic_len);
	uint64_t theirs = get64(m->payload + 8);
	if (!ours)
		return false; /* not announced (or forgotten): theirs wins */
	if (ours != theirs)
		return ours > theirs;
	return cl->nonce > get64(m->payload);
}

/* ---- moving a session ----------------------------------------------------
 * A snapshot (moat.c.sess.<nonce of the new node>), all integers
 * big-endian:
 *   u8 version (1), u16 client id length, client id,
 *   u32 subscriptions, each: u16 filter length, filter, u16 share
 *       length (0xffff: not shared), share, u8 QoS, u8 options (bit 0 No
 *       Local, bit 1 Retain As Published), u32 Subscription Identifier
 *   u32 messages, in the order they were to be sent, each: u8 QoS, u8
 *       retain, u16 topic length, topic, u32 envelope length, envelope
 *       (cluster_env.c)
 * The receiver trusts nothing: every length is checked. */

void moat__wb_put(struct wbuf *b, const void *p, size_t n)
{
	if (b->over || b->max - b->n < n) {
		b->over = true;
		return;
	}
	if (b->cap - b->n < n) {
		size_t cap = MOAT_MAX(b->cap * 2, b->n + n + 256);
		uint8_t *v = moat_realloc(b->p, cap);
		if (!v) {
			b->over = true;
			return;
		}
		b->p = v;
		b->cap = cap;
	}
	memcpy(b->p + b->n, p, n);
	b->n += n;
}

void moat__wb_u16(struct wbuf *b, uint16_t v)
{
	uint8_t x[2] = {(uint8_t)(v >> 8), (uint8_t)v};
	moat__wb_put(b, x, 2);
}

void moat__wb_u32(struct wbuf *b, uint32_t v)
{
	uint8_t x[4] = {(uint8_t)(v >> 24), (uint8_t)(v >> 16),
			(uint8_t)(v >> 8), (uint8_t)v};
	moat__wb_put(b, x, 4);
}

/* s's subscriptions in the snapshot's form. */
void moat__snap_put_subs(struct wbuf *b, const struct moat_session *s)
{
	moat__wb_u32(b, s->nsubs);
	for (uint32_t i = 0; i < s->nsubs; i++) {
		const struct moat_sub_entry *e = &s->subs[i];
		moat__wb_u16(b, e->len);
		moat__wb_put(b, e->filter, e->len);
		moat__wb_u16(b, e->share ? e->share_len : 0xffffu);
		if (e->share)
			moat__wb_put(b, e->share, e->share_len);
		uint8_t o[2] = {e->qos, (uint8_t)((e->no_local ? 1u : 0u) |
						  (e->retain_as_published ? 2u
									  : 0u))};
		moat__wb_put(b, o, 2);
		moat__wb_u32(b, e->sub_id);
	}
}

/* One message; false (and b as it was) when it does not fit. */
static bool wb_msg(struct wbuf *b, struct moat_cluster *cl,
		   const struct moat_msg *m, uint8_t qos, bool retain,
		   uint64_t now_ms)
{
	size_t at = b->n, el = moat__cluster_env_size(m);
	uint8_t *env = moat_malloc(el);
	if (!env)
		return false;
	el = moat__cluster_env_encode(m, cl->nonce, true, now_ms, env);
	uint8_t h[2] = {qos, retain};
	moat__wb_put(b, h, 2);
	moat__wb_u16(b, m->topic_len);
	moat__wb_put(b, m->topic, m->topic_len);
	moat__wb_u32(b, (uint32_t)el);
	moat__wb_put(b, env, el);
	moat_free(env);
	if (b->over && b->p) {
		b->n = at; /* the room is gone: the rest stays behind */
		return false;
	}
	return !b->over;
}

/* Send s's subscriptions and waiting messages to the node with nonce
 * `to`. */
static void send_snapshot(struct moat_worker *w, struct moat_session *s,
			  uint64_t to)
{
	struct moat_cluster *cl = moat__cluster_of(w->b);
	int64_t maxp = natsConnection_GetMaxPayload(cl->nc);
	struct wbuf b = {.max = maxp > SNAP_SLACK ? (size_t)maxp : 1u << 20};
	uint32_t nmsg = 0, left = 0;
	uint8_t v = SNAP_VERSION;
	moat__wb_put(&b, &v, 1);
	moat__wb_u16(&b, (uint16_t)s->client_id_len);
	moat__wb_put(&b, s->client_id, s->client_id_len);
	moat__snap_put_subs(&b, s);
	size_t count_at = b.n;
	moat__wb_u32(&b, 0); /* the message count, filled in below */
	if (b.over)
		goto out; /* not even the subscriptions fit */
	b.max -= SNAP_SLACK;
	for (uint32_t i = 0; i < s->ninflight; i++) {
		const struct moat_inflight *f =
			&s->inflight[(s->ihead + i) % s->icap];
		if (f->state != INFLIGHT_WAIT_ACK || !f->msg)
			continue; /* QoS 2 past PUBREC: delivered */
		if (wb_msg(&b, cl, f->msg, f->qos, f->retain, w->now_ms))
			nmsg++;
		else
			left++;
	}
	for (uint32_t i = 0; i < s->qused; i++) {
		const struct moat_qitem *q = &s->queue[(s->qhead + i) % s->qcap];
		if (!q->msg)
			continue; /* a hole */
		if (wb_msg(&b, cl, q->msg, q->qos, q->retain, w->now_ms))
			nmsg++;
		else
			left++;
	}
	b.p[count_at] = (uint8_t)(nmsg >> 24);
	b.p[count_at + 1] = (uint8_t)(nmsg >> 16);
	b.p[count_at + 2] = (uint8_t)(nmsg >> 8);
	b.p[count_at + 3] = (uint8_t)nmsg;
	char subj[sizeof(SNAP_PREFIX) + 16];
	snprintf(subj, sizeof(subj), SNAP_PREFIX "%016" PRIx64, to);
	b.over = natsConnection_Publish(cl->nc, subj, b.p, (int)b.n) !=
		 NATS_OK;
	if (left)
		moat_warn("cluster: session moving to another node: %u "
			  "message%s did not fit NATS's max_payload and stay "
			  "behind",
			  left, left == 1 ? "" : "s");
out:
	if (b.over && !left) {
		atomic_fetch_add(&cl->dropped, 1);
		moat_warn("cluster: a session's state could not be sent to "
			  "the node its client moved to");
	}
	moat_free(b.p);
}

/* Reading a snapshot: a bounded cursor. */
struct rd {
	const uint8_t *p, *end;
	bool bad;
};

static const uint8_t *rd_take(struct rd *r, size_t n)
{
	if (r->bad || (size_t)(r->end - r->p) < n) {
		r->bad = true;
		return NULL;
	}
	const uint8_t *at = r->p;
	r->p += n;
	return at;
}

static uint32_t rd_uint(struct rd *r, size_t n)
{
	const uint8_t *p = rd_take(r, n);
	uint32_t v = 0;
	for (size_t i = 0; p && i < n; i++)
		v = v << 8 | p[i];
	return v;
}

/* The subscriptions of a snapshot into s (filters checked again). */
static void apply_subs(struct moat_worker *w, struct moat_session *s,
		       struct rd *r)
{
	uint32_t n = rd_uint(r, 4);
	for (uint32_t i = 0; i < n && !r->bad; i++) {
		size_t fl = rd_uint(r, 2);
		const uint8_t *f = rd_take(r, fl);
		size_t sl = rd_uint(r, 2);
		const uint8_t *sh = sl == 0xffff ? NULL : rd_take(r, sl);
		const uint8_t *o = rd_take(r, 2);
		uint32_t sub_id = rd_uint(r, 4);
		if (r->bad || !moat_topic_filter_valid(f, fl) ||
		    !moat_utf8_valid(f, fl) || (sl != 0xffff && !sh) ||
		    o[0] > 2)
			continue;
		if (moat__session_restore_sub(
			    s, (const char *)f, fl, (const char *)sh,
			    sh ? sl : 0, (uint8_t)MOAT_MIN(o[0], w->cfg->max_qos),
			    o[1], sub_id) != MOAT_OK)
			continue;
		for (uint32_t k = 0; k < s->nsubs; k++) {
			struct moat_sub_entry *e = &s->subs[k];
			if (e->len == fl && !memcmp(e->filter, f, fl) &&
			    (e->share != NULL) == (sh != NULL) &&
			    (!sh || (e->share_len == sl &&
				     !memcmp(e->share, sh, sl)))) {
				moat__store_sub(w, s, e);
				break;
			}
		}
	}
}

/* The messages of a snapshot, delivered to s in their order. */
static size_t apply_msgs(struct moat_session *s, struct rd *r)
{
	uint32_t n = rd_uint(r, 4);
	size_t done = 0;
	for (uint32_t i = 0; i < n && !r->bad; i++) {
		const uint8_t *h = rd_take(r, 2);
		size_t tl = rd_uint(r, 2);
		const uint8_t *t = rd_take(r, tl);
		size_t el = rd_uint(r, 4);
		const uint8_t *env = rd_take(r, el);
		struct moat_msg *m = NULL;
		uint64_t nonce;
		bool groups_done;
		if (r->bad || h[0] > 2 || !moat_topic_name_valid(t, tl) ||
		    !moat_utf8_valid(t, tl) ||
		    moat__cluster_env_decode(env, el, t, tl, &nonce,
					     &groups_done, &m) != MOAT_OK)
			continue;
		moat_session_deliver(s, m, (uint8_t)MOAT_MIN(h[0], m->qos),
				     h[1] != 0);
		moat_msg_unref(&m);
		done++;
	}
	return done;
}

/* Client ids whose session state arrived lately (hashes, with when):
 * recovery from the registry is not needed for them. */
#define APPLIED_RING 256
static struct {
	pthread_mutex_t lock;
	uint64_t id[APPLIED_RING], at_ms[APPLIED_RING];
	unsigned next;
} applied = {.lock = PTHREAD_MUTEX_INITIALIZER};

bool moat__snap_applied_since(const uint8_t *id, size_t len, uint64_t ms)
{
	uint64_t h = moat_fnv1a(id, len, MOAT_FNV1A_INIT);
	bool yes = false;
	pthread_mutex_lock(&applied.lock);
	for (unsigned i = 0; i < APPLIED_RING && !yes; i++)
		yes = applied.id[i] == h && applied.at_ms[i] >= ms;
	pthread_mutex_unlock(&applied.lock);
	return yes;
}

static void note_applied(const uint8_t *id, size_t len)
{
	pthread_mutex_lock(&applied.lock);
	applied.id[applied.next] = moat_fnv1a(id, len, MOAT_FNV1A_INIT);
	applied.at_ms[applied.next] = moat_now_ms();
	applied.next = (applied.next + 1) % APPLIED_RING;
	pthread_mutex_unlock(&applied.lock);
}

static void apply_snapshot(struct moat_worker *w, struct moat_msg *carrier)
{
	struct rd r = {carrier->payload,
		       carrier->payload + carrier->payload_len, false};
	const uint8_t *id = (const uint8_t *)carrier->topic;
	struct moat_session *s =
		moat_worker_find_session(w, id, carrier->topic_len);
	char lid[MOAT_LOG_ID_LEN];
	if (!s || s->dead || rd_uint(&r, 1) != SNAP_VERSION)
		return; /* the client left again meanwhile */
	size_t il = rd_uint(&r, 2);
	rd_take(&r, il);
	note_applied(id, carrier->topic_len);
	atomic_fetch_add(&moat__cluster_of(w->b)->sessions_moved_in, 1);
	apply_subs(w, s, &r);
	size_t n = apply_msgs(s, &r);
	if (r.bad)
		moat_warn("cluster: a moved session's state was cut short");
	moat_info("client %s: session moved from another cluster node "
		  "(%u subscriptions, %zu messages)",
		  moat_session_log_id(s, lid), s->nsubs, n);
}

void moat__cluster_sess_inbox(struct moat_worker *w,
			      struct moat_inbox_item *it)
{
	struct moat_msg *m = it->msg;
	if (it->qos == 1) { /* a snapshot */
		apply_snapshot(w, m);
		moat_msg_unref(&it->msg);
		return;
	}
	const uint8_t *id = (const uint8_t *)m->topic;
	struct moat_session *s = moat_worker_find_session(w, id, m->topic_len);
	char lid[MOAT_LOG_ID_LEN];
	if (!s || !same_owner(s, m) ||
	    (s->conn && local_is_newer(moat__cluster_of(w->b), m)))
		goto out;
	moat_info("client %s connected to another cluster node: its session "
		  "here ends",
		  moat_session_log_id(s, lid));
	atomic_fetch_add(&moat__cluster_of(w->b)->sessions_ended, 1);
	if (s->conn) /* [MQTT-3.1.4-2], across nodes */
		moat_conn_disconnect(s->conn, RC_SESSION_TAKEN_OVER,
				     "session taken over by a connection on "
				     "another cluster node");
	/* A session that ended with its connection is gone; look again. */
	s = moat_worker_find_session(w, id, m->topic_len);
	if (s && (m->payload[16] & F_CLEAN)) {
		/* A clean start ends the session: a delayed will goes out
		 * now, once, from here [MQTT-3.1.3-9] (as on one node). */
		moat_session_destroy(s);
	} else if (s) {
		/* The session goes on at the other node: the client is back
		 * before its delayed will was due, which is cancelled. */
		moat_msg_unref(&s->will);
		send_snapshot(w, s, get64(m->payload));
		moat_session_destroy(s);
	}
out:
	moat_msg_unref(&it->msg);
}

void moat__snap_post(struct moat_cluster *cl, const uint8_t *d, size_t n)
{
	if (n < 3 || d[0] != SNAP_VERSION)
		return;
	size_t il = (size_t)d[1] << 8 | d[2];
	if (n - 3 < il)
		return;
	struct moat_msg *m = moat_msg_new(d + 3, il, d, n, 0, false);
	if (!m)
		return;
	struct moat_inbox_item it = {
		.kind = INBOX_CLUSTER_CTL, .qos = 1, .msg = m};
	if (moat_worker_post(moat_worker_home(cl->b, d + 3, il), &it) !=
	    MOAT_OK)
		moat_msg_unref(&m);
}

/* libnats's delivery thread: a session sent here, to its home worker. */
static void on_snapshot(natsConnection *nc, natsSubscription *sub,
			natsMsg *msg, void *closure)
{
	(void)nc;
	(void)sub;
	moat__snap_post(closure, (const uint8_t *)natsMsg_GetData(msg),
			(size_t)natsMsg_GetDataLength(msg));
	natsMsg_Destroy(msg);
}

int moat_cluster_state_start(struct moat_broker *b)
{
	struct moat_cluster *cl = b->cluster;
	if (!cl)
		return MOAT_OK;
	if (natsConnection_Subscribe(&sess_sub, cl->nc, SESS_SUBJECT,
				     on_connect_msg, cl) != NATS_OK) {
		moat_err_log("cluster: cannot subscribe to %s: %s",
			     SESS_SUBJECT, nats_GetLastError(NULL));
		sess_sub = NULL;
		return MOAT_EIO;
	}
	natsSubscription_SetPendingLimits(sess_sub, 65536, 64 * 1024 * 1024);
	char subj[sizeof(SNAP_PREFIX) + 16];
	snprintf(subj, sizeof(subj), SNAP_PREFIX "%016" PRIx64, cl->nonce);
	if (natsConnection_Subscribe(&snap_sub, cl->nc, subj, on_snapshot,
				     cl) != NATS_OK) {
		moat_err_log("cluster: cannot subscribe to %s: %s", subj,
			     nats_GetLastError(NULL));
		snap_sub = NULL;
		return MOAT_EIO;
	}
	natsSubscription_SetPendingLimits(snap_sub, 65536, 256 * 1024 * 1024);
	/* Our NATS server has both subscriptions before the node says it is
	 * ready (announcements sent to us before that are lost: core NATS).
	 * Its routes pass them on to the other servers just after. */
	if (natsConnection_FlushTimeout(cl->nc, 5000) != NATS_OK)
		moat_warn("cluster: NATS did not confirm the session "
			  "subscriptions: %s", nats_GetLastError(NULL));
	int rc = moat__cluster_kv_start(b);
	return rc ? rc : moat__cluster_sreg_start(b);
}

void moat_cluster_state_stop(struct moat_broker *b)
{
	if (!b->cluster)
		return;
	moat__cluster_sreg_stop(b);
	moat__cluster_kv_stop(b);
	natsSubscription *subs[2] = {sess_sub, snap_sub};
	for (int i = 0; i < 2; i++) {
		if (!subs[i])
			continue;
		natsSubscription_Unsubscribe(subs[i]);
		natsSubscription_Destroy(subs[i]);
	}
	sess_sub = snap_sub = NULL;
}
