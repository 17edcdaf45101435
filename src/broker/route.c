/* Routing a message: the retained store, the matching sessions on this
 * worker and, batched per worker, on the others; and wills, published at
 * a safe point of the loop. */
#include "broker_int.h"
#include "cluster/cluster_state.h"

void moat_worker_route(struct moat_worker *w, struct moat_msg *m)
{
	moat__worker_route_sel(w, m, 0);
}

void moat__worker_route_sel(struct moat_worker *w, struct moat_msg *m,
			    uint64_t only)
{
	struct moat_broker *b = w->b;
	char t[96];
	uint64_t seq = 0;
	w->cluster_tok = 0;
	/* Cluster mode: forwarded to the other nodes; shared groups are
	 * then served through NATS (balanced over the nodes) while it is
	 * connected. */
	if (b->cluster && !m->remote && moat__cluster_publish(w, m) && !only)
		only = MOAT_MATCH_NO_GROUPS;
	/* Cluster mode: retained messages go through the bucket, which
	 * alone decides what other nodes retain (cluster_state.h). */
	if (b->cluster && !m->remote)
		moat__cluster_kv_publish(w, m);
	bool retain = m->retain &&
		      (!b->cluster || moat__cluster_kv_retains(m->remote, only));
	int rc = retain ? moat_tree_retain(&b->tree, m, &seq) : MOAT_OK;
	if (rc == MOAT_ENOMEM)
		moat_warn("out of memory storing a retained message on %s",
			  moat__log_topic(m->topic, m->topic_len, t, sizeof(t)));
	if (retain && rc == MOAT_OK)
		moat__store_retain(w, m, seq);
	w->starved_routed++;
	w->matches.n = 0;
	w->matches.only = only;
	if (moat_tree_match(&b->tree, (const uint8_t *)m->topic, m->topic_len,
			    &w->matches) != MOAT_OK) {
		MOAT_STAT_ADD(b, msgs_dropped, 1);
		moat_warn("out of memory routing a message on %s",
			  moat__log_topic(m->topic, m->topic_len, t, sizeof(t)));
		return;
	}
	bool recorded = false;
	for (size_t i = 0; i < w->matches.n; i++) {
		struct moat_match *mt = &w->matches.v[i];
		struct moat_worker *home = mt->session->home;
		if (home == w) {
			moat_session_route(mt->session, m, mt->qos, mt->share,
					   0);
			moat_session_unref(&mt->session);
			continue;
		}
		/* A stored session on another worker: recorded here, so
		 * that the publisher's acknowledgement waits for it. */
		uint64_t did = moat__store_delivery(
			w, mt->session, m, MOAT_MIN(mt->qos, m->qos), false);
		recorded = recorded || did;
		struct moat_inbox_item it = {.kind = INBOX_DELIVER,
					     .qos = mt->qos,
					     .session = mt->session,
					     .msg = moat_msg_ref(m),
					     .share = mt->share,
					     .did = did};
		if (moat__inbox_push(&w->outbox[home->idx], &it) != MOAT_OK) {
			MOAT_STAT_ADD(b, msgs_dropped, 1);
			if (did)
				moat__store_delivery_del(w, did, m->store_id);
			moat__inbox_release(&it);
		}
	}
	w->matches.n = 0;
	/* The store sees those records before the other workers can make
	 * theirs about the same deliveries (acks, drops). */
	if (recorded)
		moat__store_flush(w);
	for (unsigned i = 0; i < b->nworkers; i++)
		if (w->outbox[i].n)
			moat__inbox_post(&b->workers[i], &w->outbox[i]);
}

void moat_worker_defer_will(struct moat_worker *w, struct moat_msg *m)
{
	moat_msg_start_expiry(m); /* counted from publication */
	if (w->nwills == w->wills_cap) {
		size_t cap = w->wills_cap ? w->wills_cap * 2 : 8;
		struct moat_msg **v = moat_realloc(w->wills, cap * sizeof(*v));
		if (!v) {
			char t[96];
			moat_warn("out of memory: will on %s not published",
				  moat__log_topic(m->topic, m->topic_len, t,
						  sizeof(t)));
			moat_msg_unref(&m);
			return;
		}
		w->wills = v;
		w->wills_cap = cap;
	}
	w->wills[w->nwills++] = m;
}

void moat__worker_publish_wills(struct moat_worker *w)
{
	/* Routing a will can close connections and add wills: loop. */
	for (size_t i = 0; i < w->nwills; i++) {
		struct moat_msg *m = w->wills[i];
		w->wills[i] = NULL;
		/* Authorised at CONNECT, and again now: rights may have been
		 * revoked since (T-07).  While the store fails, a will that
		 * would have to be stored is not published (it could not be
		 * kept, and would grow the store's backlog without bound). */
		if ((m->qos || m->retain) && moat__store_failing(w->b)) {
			char t[96];
			moat_err_log("persistence unavailable: will of client %s "
				     "on %s not published",
				     m->src_cid,
				     moat__log_topic(m->topic, m->topic_len, t,
						     sizeof(t)));
		} else if (moat__source_may_publish(w, m)) {
			moat_worker_route(w, m);
		} else {
			char t[96];
			MOAT_STAT_ADD(w->b, acl_denials, 1);
			moat__log_topic(m->topic, m->topic_len, t, sizeof(t));
			const struct moat_log_field f[] = {
				MOAT_LF_STR("client_id", m->src_cid),
				MOAT_LF_STR("user", m->src_user),
				MOAT_LF_STR("topic", t),
			};
			moat_log_event(MOAT_LOG_NOTICE, "acl_denial", f,
				       MOAT_ARRAY_LEN(f),
				       "security: acl denial: will of client %s "
				       "on %s not published: its user may no "
				       "longer publish there",
				       m->src_cid, t);
		}
		moat_msg_unref(&m);
	}
	w->nwills = 0;
}
