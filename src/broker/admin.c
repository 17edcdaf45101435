/* Administrators' requests (the JSON API) carried out by the workers that
 * own what they touch: lists of clients and sessions, disconnecting a
 * client, deleting a session, clearing a retained message.
 *
 * A request is posted to one worker (an action: the client id's home
 * worker; clearing a retained message: worker 0) or to every worker (a
 * list), through a queue under the worker's inbox lock and a wake-up of
 * its eventfd.  The HTTP thread waits at most ADMIN_WAIT_MS for the
 * answers; the request is reference-counted, so a worker that answers
 * late writes into a request that still exists. */
#include <errno.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "broker_int.h"
#include "codec/mqtt5.h"

#define ADMIN_WAIT_MS 3000u

struct moat_admin_req {
	atomic_uint refs;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	unsigned pending; /* workers that have not answered */
	enum moat_admin_kind kind;
	char arg[MOAT_ADMIN_ARG_MAX + 1]; /* client id or topic */
	size_t arglen;
	size_t limit; /* list entries wanted in all */
	json_t *items; /* the lists' entries (under lock; NULL once taken) */
	size_t total;  /* entries there were (beyond limit too) */
	bool found;
};

/* One posting of a request to one worker. */
struct moat_admin_node {
	struct moat_admin_req *req;
	struct moat_admin_node *next;
};

static void req_unref(struct moat_admin_req *r)
{
	if (atomic_fetch_sub(&r->refs, 1) != 1)
		return;
	json_decref(r->items);
	pthread_mutex_destroy(&r->lock);
	pthread_cond_destroy(&r->cond);
	moat_free(r);
}

/* ---- worker side ---------------------------------------------------------- */

/* An ISO 8601 UTC time of a monotonic ms reading (now: the worker's). */
static json_t *wall_time(const struct moat_worker *w, uint64_t mono_ms)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	uint64_t ago = w->now_ms > mono_ms ? w->now_ms - mono_ms : 0;
	time_t t = ts.tv_sec - (time_t)(ago / 1000u);
	struct tm tm;
	char buf[32];
	gmtime_r(&t, &tm);
	strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
	return json_string(buf);
}

static json_t *id_json(const struct moat_session *s)
{
	json_t *j = json_stringn(s->client_id, s->client_id_len);
	if (j)
		return j;
	char buf[MOAT_LOG_ID_LEN];
	return json_string(moat_session_log_id(s, buf));
}

static const char *version_name(uint8_t level)
{
	return level == MQTT_PROTO_V5	   ? "5.0"
	       : level == MQTT_PROTO_V311 ? "3.1.1"
					  : "3.1";
}

static json_t *client_json(struct moat_worker *w, struct moat_conn *c)
{
	struct moat_session *s = c->session;
	char peer[MOAT_PEER_STRLEN];
	return json_pack("{s:o, s:s?, s:s, s:s, s:s, s:o, s:i, s:i, s:i, s:i}",
			 "client_id", id_json(s), "user", c->username,
			 "address", moat_conn_peer(c, peer), "protocol",
			 moat_cfg_protocol_name(
				 w->cfg->listeners[c->listener].protocol),
			 "version", version_name(c->proto_level),
			 "connected_since", wall_time(w, c->created_ms),
			 "subscriptions", (int)s->nsubs, "queued",
			 (int)s->qlen, "inflight", (int)s->ninflight,
			 "worker", (int)w->idx);
}

static json_t *session_json(struct moat_worker *w, struct moat_session *s)
{
	return json_pack(
		"{s:o, s:s?, s:b, s:o, s:i, s:i, s:I, s:i, s:o}", "client_id",
		id_json(s), "owner", s->owner, "connected", s->conn != NULL,
		"expiry_interval",
		s->expiry_s == MOAT_EXPIRY_NEVER
			? json_null()
			: json_integer((json_int_t)s->expiry_s),
		"subscriptions", (int)s->nsubs, "queued", (int)s->qlen,
		"queued_bytes", (json_int_t)s->queued_bytes, "inflight",
		(int)s->ninflight, "offline_since",
		s->conn ? json_null() : wall_time(w, s->offline_since_ms));
}

/* Entries of this worker, at most limit, counted all. */
static void list(struct moat_worker *w, struct moat_admin_req *r,
		 json_t *out, size_t *total)
{
	if (r->kind == MOAT_ADMIN_CLIENTS) {
		for (struct moat_conn *c = w->conns; c; c = c->next) {
			if (c->state != CONN_ACTIVE || !c->session)
				continue;
			if ((*total)++ < r->limit)
				json_array_append_new(out, client_json(w, c));
		}
		return;
	}
	for (size_t i = 0; i < w->nbuckets; i++)
		for (struct moat_session *s = w->sessions[i]; s; s = s->hnext)
			if ((*total)++ < r->limit)
				json_array_append_new(out,
						      session_json(w, s));
}

static bool act(struct moat_worker *w, struct moat_admin_req *r)
{
	if (r->kind == MOAT_ADMIN_CLEAR_RETAINED) {
		struct moat_msg *m = moat_msg_new((const uint8_t *)r->arg,
						  r->arglen,
						  (const uint8_t *)"", 0, 0,
						  true);
		uint64_t seq = 0;
		bool ok = m && moat_tree_retain(&w->b->tree, m, &seq) ==
				       MOAT_OK;
		if (ok)
			moat__store_retain(w, m, seq);
		moat_msg_unref(&m);
		return ok;
	}
	struct moat_session *s = moat_worker_find_session(
		w, (const uint8_t *)r->arg, r->arglen);
	if (!s || (r->kind == MOAT_ADMIN_DISCONNECT && !s->conn))
		return false;
	moat_session_ref(s);
	if (s->conn)
		moat_conn_disconnect(s->conn, RC_ADMIN_ACTION,
				     r->kind == MOAT_ADMIN_DISCONNECT
					     ? "disconnected by an administrator"
					     : "session deleted by an "
					       "administrator");
	if (r->kind == MOAT_ADMIN_DELETE_SESSION && !s->dead)
		moat_session_destroy(s);
	moat_session_unref(&s);
	return true;
}

static void answer(struct moat_worker *w, struct moat_admin_req *r)
{
	json_t *mine = NULL;
	size_t total = 0;
	bool found = false;
	if (w && (r->kind == MOAT_ADMIN_CLIENTS ||
		  r->kind == MOAT_ADMIN_SESSIONS)) {
		if ((mine = json_array()) != NULL)
			list(w, r, mine, &total);
	} else if (w) {
		found = act(w, r);
	}
	/* JSON values are not shared between threads: the entries change
	 * hands under the lock (their reference counts too), and the HTTP
	 * thread takes r->items away under it when it stops waiting. */
	pthread_mutex_lock(&r->lock);
	if (mine && r->items)
		json_array_extend(r->items, mine);
	json_decref(mine);
	r->total += total;
	r->found |= found;
	r->pending--;
	pthread_cond_signal(&r->cond);
	pthread_mutex_unlock(&r->lock);
	req_unref(r);
}

void moat__admin_run(struct moat_worker *w, struct moat_admin_node *list)
{
	while (list) {
		struct moat_admin_node *n = list;
		list = n->next;
		answer(w, n->req);
		moat_free(n);
	}
}

/* ---- HTTP side ------------------------------------------------------------ */

static bool post(struct moat_worker *w, struct moat_admin_req *r)
{
	struct moat_admin_node *n = moat_malloc(sizeof(*n));
	if (!n)
		return false;
	n->req = r;
	atomic_fetch_add(&r->refs, 1);
	pthread_mutex_lock(&w->inbox_lock);
	n->next = w->admin;
	w->admin = n;
	pthread_mutex_unlock(&w->inbox_lock);
	uint64_t one = 1;
	(void)!write(w->evfd, &one, sizeof(one));
	return true;
}

int moat__admin_request(struct moat_broker *b, enum moat_admin_kind kind,
			const char *arg, size_t limit,
			struct moat_admin_result *out)
{
	memset(out, 0, sizeof(*out));
	size_t arglen = arg ? strlen(arg) : 0;
	if (arglen > MOAT_ADMIN_ARG_MAX)
		return MOAT_EINVAL;
	struct moat_admin_req *r = moat_calloc(1, sizeof(*r));
	if (!r)
		return MOAT_ENOMEM;
	atomic_init(&r->refs, 1);
	pthread_mutex_init(&r->lock, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&r->cond, &ca);
	pthread_condattr_destroy(&ca);
	r->kind = kind;
	memcpy(r->arg, arg ? arg : "", arglen);
	r->arglen = arglen;
	r->limit = limit;
	r->items = json_array();
	bool all = kind == MOAT_ADMIN_CLIENTS || kind == MOAT_ADMIN_SESSIONS;
	struct moat_worker *to =
		kind == MOAT_ADMIN_CLEAR_RETAINED
			? &b->workers[0]
			: moat_worker_home(b, (const uint8_t *)r->arg, arglen);
	/* Counted before posting: a worker may answer at once. */
	r->pending = all ? b->nworkers : 1;
	unsigned posted = 0;
	for (unsigned i = 0; i < (all ? b->nworkers : 1); i++) {
		if (post(all ? &b->workers[i] : to, r))
			posted++;
	}
	struct timespec dl;
	clock_gettime(CLOCK_MONOTONIC, &dl);
	dl.tv_sec += ADMIN_WAIT_MS / 1000u;
	int rc = MOAT_OK;
	pthread_mutex_lock(&r->lock);
	r->pending -= (all ? b->nworkers : 1) - posted; /* not posted */
	while (r->pending && rc == MOAT_OK)
		if (pthread_cond_timedwait(&r->cond, &r->lock, &dl) ==
		    ETIMEDOUT)
			rc = MOAT_EAGAIN; /* not answered in time */
	if (rc == MOAT_OK && (!r->items || posted < (all ? b->nworkers : 1)))
		rc = MOAT_ENOMEM;
	out->items = r->items; /* ours now; late answers find none */
	r->items = NULL;
	out->total = r->total;
	out->found = r->found;
	pthread_mutex_unlock(&r->lock);
	req_unref(r);
	return rc;
}

void moat__admin_cancel(struct moat_worker *w)
{
	struct moat_admin_node *list = w->admin;
	w->admin = NULL;
	while (list) {
		struct moat_admin_node *n = list;
		list = n->next;
		answer(NULL, n->req);
		moat_free(n);
	}
}
