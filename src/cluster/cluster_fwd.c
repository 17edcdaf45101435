/* Cluster mode, the workers' side (docs/cluster.md): forwarding what this
 * node's clients publish, the QoS 1/2 publications waiting for JetStream
 * and the acknowledgements waiting for them, and routing what other
 * nodes sent.  Runs on worker threads only; libnats's threads reach it
 * through the inboxes (INBOX_CLUSTER_MSG, INBOX_CLUSTER_ACK).
 *
 * A QoS 1/2 publication has a token, increasing per worker; the worker
 * keeps them in a ring in token order (entry i holds token head_tok + i),
 * bounded by cluster_max_pending / workers.  Its Nats-Msg-Id is
 * "NONCE-WORKER-TOKEN": JetStream's answer finds its way back to the
 * worker, and a retry inside the duplicate window is stored once. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "broker/broker_int.h"
#include "cluster/cluster_int.h"
#include "cluster/cluster_state.h"
#include "cluster/subject.h"
#include "codec/mqtt5.h"

enum pend_state { PEND_SENT, PEND_FAILED, PEND_DONE };

struct pend {
	struct moat_msg *msg;
	struct moat_session *s; /* whose acknowledgement waits, or NULL */
	uint8_t state;
	bool groups_done; /* the shared groups were served here */
};

struct moat_cluster_w {
	struct pend *ring;
	uint32_t head, n, cap, max;
	uint32_t nfailed; /* entries to send (again): new ones wait behind */
	uint64_t head_tok; /* token of ring[head] (tokens start at 1) */
	uint8_t *buf;      /* the envelope being built */
	size_t bufcap;
	char subj[MOAT_SUBJECT_BUF];
	uint64_t warned_ms;
};

/* An acknowledgement a connection owes, in the order owed. */
struct cack {
	uint64_t tok; /* 0: ready */
	uint16_t id;
	uint8_t type;
	uint8_t reason;
	bool gate;
};

struct moat_cluster_acks {
	struct cack *v;
	uint32_t head, n, cap;
};

static struct moat_cluster_w *cw_get(struct moat_worker *w)
{
	if (w->cw)
		return w->cw;
	struct moat_cluster_w *cw = moat_calloc(1, sizeof(*cw));
	if (!cw)
		return NULL;
	uint64_t per = w->cfg->cluster_max_pending / w->b->nworkers;
	cw->max = (uint32_t)MOAT_MIN(MOAT_MAX(per, (uint64_t)16), UINT32_MAX / 2);
	cw->head_tok = 1;
	w->cw = cw;
	return cw;
}

/* A ring's n elements of size sz from head, moved in order into a new
 * array of cap elements (*v freed); false when out of memory. */
static bool ring_regrow(void **v, uint32_t head, uint32_t n, uint32_t oldcap,
			uint32_t cap, size_t sz)
{
	uint8_t *nv = moat_malloc((size_t)cap * sz);
	if (!nv)
		return false;
	for (uint32_t i = 0; i < n; i++)
		memcpy(nv + (size_t)i * sz,
		       (uint8_t *)*v + (size_t)((head + i) % oldcap) * sz, sz);
	moat_free(*v);
	*v = nv;
	return true;
}

/* Every change of an entry's state, to keep nfailed. */
static void pend_set(struct moat_cluster_w *cw, struct pend *p, uint8_t st)
{
	if (p->state == PEND_FAILED)
		cw->nfailed--;
	if (st == PEND_FAILED)
		cw->nfailed++;
	p->state = st;
}

static struct pend *pend_at(struct moat_cluster_w *cw, uint32_t i)
{
	return &cw->ring[(cw->head + i) % cw->cap];
}

/* Room for one more pending publication (the ring grows by doubling up
 * to max). */
static bool pend_room(struct moat_cluster_w *cw)
{
	if (cw->n < cw->cap)
		return true;
	if (cw->n >= cw->max)
		return false;
	uint32_t cap = cw->cap ? MOAT_MIN(cw->cap * 2, cw->max) : 64;
	void *v = cw->ring;
	if (!ring_regrow(&v, cw->head, cw->n, cw->cap, cap, sizeof(struct pend)))
		return false;
	cw->ring = v;
	cw->cap = cap;
	cw->head = 0;
	return true;
}

bool moat__cluster_may_accept(struct moat_worker *w)
{
	struct moat_cluster_w *cw = w->cw;
	if (!cw || cw->n < cw->max)
		return true;
	atomic_fetch_add(&moat__cluster_of(w->b)->refused, 1);
	if (w->now_ms - cw->warned_ms >= 10000) {
		cw->warned_ms = w->now_ms;
		moat_warn("cluster: %u QoS 1/2 messages wait for JetStream on "
			  "worker %u (cluster_max_pending): new ones are "
			  "refused until NATS catches up",
			  cw->n, w->idx);
	}
	return false;
}

/* A message that cannot cross nodes (its subject or size is beyond
 * NATS's limits): served on this node only; counted, and logged at most
 * every 10 s per worker. */
static void local_only(struct moat_worker *w, struct moat_cluster_w *cw,
		       const struct moat_msg *m, const char *why)
{
	atomic_fetch_add(&moat__cluster_of(w->b)->dropped, 1);
	if (w->now_ms - cw->warned_ms < 10000)
		return;
	cw->warned_ms = w->now_ms;
	char t[96];
	moat_warn("cluster: a message on %s stays on this node: %s",
		  moat__log_topic(m->topic, m->topic_len, t, sizeof(t)), why);
}

static bool sys_topic(const struct moat_msg *m)
{
	return m->topic_len >= 4 && !memcmp(m->topic, "$SYS", 4) &&
	       (m->topic_len == 4 || m->topic[4] == '/');
}

/* The envelope of m in cw->buf; its length, 0 when out of memory. */
static size_t envelope(struct moat_worker *w, struct moat_cluster_w *cw,
		       struct moat_cluster *cl, const struct moat_msg *m,
		       bool groups_done)
{
	size_t need = moat__cluster_env_size(m);
	if (need > cw->bufcap) {
		uint8_t *b = moat_realloc(cw->buf, need);
		if (!b)
			return 0;
		cw->buf = b;
		cw->bufcap = need;
	}
	return moat__cluster_env_encode(m, cl->nonce, groups_done, w->now_ms,
					cw->buf);
}

/* Send the publication tok (ring entry p) to JetStream. */
static void js_send(struct moat_worker *w, struct moat_cluster_w *cw,
		    uint64_t tok, struct pend *p)
{
	struct moat_cluster *cl = moat__cluster_of(w->b);
	natsMsg *nm = NULL;
	size_t len = envelope(w, cw, cl, p->msg, p->groups_done);
	pend_set(cw, p, PEND_FAILED); /* until the send below worked */
	if (!len || moat_subject_from_topic(MOAT_CLUSTER_PFX_JS,
					    (const uint8_t *)p->msg->topic,
					    p->msg->topic_len, cw->subj,
					    sizeof(cw->subj)) < 0)
		return;
	if (natsMsg_Create(&nm, cw->subj, NULL, (const char *)cw->buf,
			   (int)len) != NATS_OK)
		return;
	char id[64];
	snprintf(id, sizeof(id), "%s-%u-%" PRIu64, cl->nonce_hex, w->idx, tok);
	jsPubOptions po;
	jsPubOptions_Init(&po);
	po.MsgId = id;
	po.MaxWait = 5000;
	po.ExpectStream = MOAT_CLUSTER_STREAM;
	if (js_PublishMsgAsync(cl->js, &nm, &po) == NATS_OK)
		pend_set(cw, p, PEND_SENT);
	else
		atomic_fetch_add(&cl->js_errors, 1);
	natsMsg_Destroy(nm); /* no effect when libnats took it */
}

/* Are m's groups served through NATS: connected, and for QoS 1/2 the
 * stream ready? */
static bool shares_remote(const struct moat_cluster *cl,
			  const struct moat_msg *m)
{
	return atomic_load_explicit(&cl->connected, memory_order_relaxed) &&
	       (m->qos == 0 ||
		atomic_load_explicit(&cl->stream_ready, memory_order_relaxed));
}

bool moat__cluster_publish(struct moat_worker *w, struct moat_msg *m)
{
	struct moat_cluster *cl = moat__cluster_of(w->b);
	struct moat_cluster_w *cw = cw_get(w);
	if (sys_topic(m))
		return false; /* every node has its own */
	if (!cw) {
		atomic_fetch_add(&cl->dropped, 1);
		return false;
	}
	bool remote = shares_remote(cl, m), groups_done = !remote;
	/* What NATS cannot carry is this node's only.  (cw->subj is then
	 * the QoS 0 subject; a QoS 1/2 one is made when sent.) */
	if (moat_subject_from_topic(MOAT_CLUSTER_PFX_CORE,
				    (const uint8_t *)m->topic, m->topic_len,
				    cw->subj, sizeof(cw->subj)) < 0) {
		local_only(w, cw, m, "its topic is too long for a NATS "
				     "subject");
		return false;
	}
	int64_t max = natsConnection_GetMaxPayload(cl->nc);
	if (max > 0 && moat__cluster_env_size(m) > (uint64_t)max) {
		local_only(w, cw, m, "larger than the NATS servers' "
				     "max_payload");
		return false;
	}
	if (m->qos == 0) {
		size_t len = envelope(w, cw, cl, m, groups_done);
		if (!len ||
		    natsConnection_Publish(cl->nc, cw->subj, cw->buf,
					   (int)len) != NATS_OK) {
			atomic_fetch_add(&cl->dropped, 1);
			return false;
		}
		atomic_fetch_add(&cl->forwarded[0], 1);
		return remote;
	}
	/* A will or a CoAP publish may come past the bound (their senders
	 * are not refused); MQTT publishers were asked first. */
	if (!pend_room(cw)) {
		atomic_fetch_add(&cl->dropped, 1);
		w->cluster_tok = MOAT_CLUSTER_TOK_LOST;
		return false;
	}
	uint64_t tok = cw->head_tok + cw->n;
	struct pend *p = &cw->ring[(cw->head + cw->n) % cw->cap];
	cw->n++;
	p->msg = moat_msg_ref(m);
	p->s = NULL;
	p->groups_done = groups_done;
	p->state = PEND_SENT;
	atomic_fetch_add(&cl->pending, 1);
	atomic_fetch_add(&cl->forwarded[m->qos], 1);
	/* Not ahead of publications waiting to be sent again (order per
	 * publisher: the tick sends them all in order). */
	if (cw->nfailed)
		pend_set(cw, p, PEND_FAILED);
	else
		js_send(w, cw, tok, p);
	w->cluster_tok = tok;
	return remote;
}

/* ---- acknowledgements owed to a connection -------------------------------- */

static struct cack *cack_at(struct moat_cluster_acks *a, uint32_t i)
{
	return &a->v[(a->head + i) % a->cap];
}

static int cack_push(struct moat_conn *c, const struct cack *e)
{
	struct moat_cluster_acks *a = c->cacks;
	if (!a && !(a = c->cacks = moat_calloc(1, sizeof(*a))))
		return MOAT_ENOMEM;
	if (a->n == a->cap) {
		uint32_t cap = a->cap ? a->cap * 2 : 16;
		void *v = a->v;
		if (!ring_regrow(&v, a->head, a->n, a->cap, cap,
				 sizeof(struct cack)))
			return MOAT_ENOMEM;
		a->v = v;
		a->cap = cap;
		a->head = 0;
	}
	a->v[(a->head + a->n) % a->cap] = *e;
	a->n++;
	return MOAT_OK;
}

/* Send the acknowledgements at the head that are ready, in order. */
static void cack_flush(struct moat_conn *c)
{
	struct moat_cluster_acks *a = c->cacks;
	while (a && a->n && !cack_at(a, 0)->tok && c->state == CONN_ACTIVE) {
		struct cack e = *cack_at(a, 0);
		a->head = (a->head + 1) % a->cap;
		a->n--;
		if (e.gate)
			moat__store_gate(c);
		if (moat__publish_ack(c, e.type, e.id, e.reason, NULL)) {
			moat_conn_close(c, "output buffer full");
			return;
		}
	}
}

int moat__cluster_defer_ack(struct moat_conn *c, uint64_t tok, uint8_t type,
			    uint16_t id, bool gate)
{
	struct moat_cluster_w *cw = c->w->cw;
	struct cack e = {.tok = tok, .id = id, .type = type, .gate = gate};
	if (!cw || tok < cw->head_tok || tok - cw->head_tok >= cw->n)
		return MOAT_EINVAL;
	struct pend *p = pend_at(cw, (uint32_t)(tok - cw->head_tok));
	if (p->state == PEND_DONE)
		e.tok = 0; /* already stored (cannot happen before a turn) */
	int rc = cack_push(c, &e);
	if (rc)
		return rc;
	if (!p->s && e.tok) {
		moat_session_ref(c->session);
		p->s = c->session;
	}
	cack_flush(c);
	return MOAT_OK;
}

int moat__cluster_queue_ack(struct moat_conn *c, uint8_t type, uint16_t id,
			    uint8_t reason, bool *queued)
{
	*queued = false;
	if (!c->cacks || !c->cacks->n ||
	    (type != MQTT_PUBACK && type != MQTT_PUBREC))
		return MOAT_OK;
	struct cack e = {.id = id, .type = type, .reason = reason};
	*queued = true;
	return cack_push(c, &e);
}

void moat__cluster_conn_free(struct moat_conn *c)
{
	if (!c->cacks)
		return;
	moat_free(c->cacks->v);
	MOAT_FREE(c->cacks);
}

/* JetStream stored publication tok: its acknowledgement may go. */
static void acked(struct moat_session *s, uint64_t tok)
{
	struct moat_conn *c = s ? s->conn : NULL;
	struct moat_cluster_acks *a = c ? c->cacks : NULL;
	if (!a)
		return; /* the client went: it sends the message again */
	for (uint32_t i = 0; i < a->n; i++) {
		struct cack *e = cack_at(a, i);
		if (e->tok == tok) {
			e->tok = 0;
			if (i == 0) {
				cack_flush(c);
				moat_worker_mark_dirty(c->w, c);
			}
			return;
		}
	}
}

static void pend_release(struct moat_cluster *cl, struct pend *p)
{
	moat_msg_unref(&p->msg);
	moat_session_unref(&p->s);
	atomic_fetch_sub(&cl->pending, 1);
}

static void on_ack(struct moat_worker *w, uint64_t tok, bool ok)
{
	struct moat_cluster_w *cw = w->cw;
	struct moat_cluster *cl = moat__cluster_of(w->b);
	if (!cw || tok < cw->head_tok || tok - cw->head_tok >= cw->n)
		return; /* an answer to a retry already answered */
	struct pend *p = pend_at(cw, (uint32_t)(tok - cw->head_tok));
	if (p->state == PEND_DONE)
		return;
	if (!ok) {
		pend_set(cw, p, PEND_FAILED); /* sent again at the tick */
		return;
	}
	pend_set(cw, p, PEND_DONE);
	acked(p->s, tok);
	pend_release(cl, p);
	while (cw->n && pend_at(cw, 0)->state == PEND_DONE) {
		cw->head = (cw->head + 1) % cw->cap;
		cw->n--;
		cw->head_tok++;
	}
}

void moat__cluster_inbox(struct moat_worker *w, struct moat_inbox_item *it)
{
	struct moat_cluster *cl = moat__cluster_of(w->b);
	if (it->kind == INBOX_CLUSTER_ACK) {
		on_ack(w, it->did, it->qos != 0);
		return;
	}
	if (it->kind == INBOX_CLUSTER_CTL) {
		moat__cluster_sess_inbox(w, it);
		return;
	}
	atomic_fetch_sub(&cl->inbound, 1);
	atomic_fetch_sub(&cl->inbound_bytes, it->did);
	atomic_fetch_add(&cl->received, 1);
	moat__worker_route_sel(w, it->msg, it->share);
}

void moat__cluster_tick(struct moat_worker *w, uint64_t now)
{
	moat__cluster_sreg_tick(w, now);
	struct moat_cluster_w *cw = w->cw;
	(void)now;
	if (!cw || !cw->n)
		return;
	struct moat_cluster *cl = moat__cluster_of(w->b);
	if (!atomic_load(&cl->connected) || !atomic_load(&cl->stream_ready))
		return;
	/* In order, a few thousand a tick (JetStream's answers come back
	 * meanwhile); a send that fails stops the rest from going ahead. */
	unsigned sent = 0;
	for (uint32_t i = 0; i < cw->n && cw->nfailed && sent < 4096; i++) {
		struct pend *p = pend_at(cw, i);
		if (p->state != PEND_FAILED)
			continue;
		js_send(w, cw, cw->head_tok + i, p);
		if (p->state == PEND_FAILED)
			break;
		sent++;
	}
}

void moat__cluster_worker_free(struct moat_worker *w)
{
	struct moat_cluster_w *cw = w->cw;
	if (!cw)
		return;
	struct moat_cluster *cl = moat__cluster_of(w->b);
	for (uint32_t i = 0; i < cw->n; i++) {
		struct pend *p = pend_at(cw, i);
		if (p->state != PEND_DONE)
			pend_release(cl, p);
	}
	moat_free(cw->ring);
	moat_free(cw->buf);
	MOAT_FREE(w->cw);
}
