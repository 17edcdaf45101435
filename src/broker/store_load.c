/* Restore at start-up, before the workers run: sessions (with their
 * subscriptions, queued and in-flight messages, incoming QoS 2 ids and
 * wills) and retained messages.  Message expiry and session expiry count
 * the time moatd was down. */
#include <stdlib.h>
#include <string.h>

#include "store_int.h"

struct loaded {
	uint64_t sid;
	struct moat_session *s;
};

/* Messages by store id while loading: a message queued for many sessions
 * is one message in memory again, as before the restart. */
struct msg_slot {
	uint64_t id;
	struct moat_msg *m; /* counted reference */
	bool blocked;       /* by a leak_policy: its deliveries go */
};

struct load_ctx {
	struct moat_store *st;
	struct moat_broker *b;
	uint64_t now_mono, now_wall, last_alive;
	struct loaded *v; /* sorted by sid; s NULL when replaced */
	size_t n, cap;
	struct msg_slot *msgs; /* open addressing, power-of-two size */
	size_t nmsgs, msgcap;
	size_t nsubs, nqueued, ninflight, nretained, nexpired, nwills;
	size_t nscanned, nredacted, nblocked; /* leak sweep of the queues */
	char *err;
	size_t errsz;
};

static int load_error(struct load_ctx *x, int rc, const char *what)
{
	snprintf(x->err, x->errsz, "persistence: %s: %s: %s", x->st->path, what,
		 rc == SQLITE_NOMEM ? "out of memory"
				    : sqlite3_errmsg(x->st->db));
	return rc == SQLITE_NOMEM ? MOAT_ENOMEM : MOAT_EIO;
}

static int sweep(struct load_ctx *x)
{
	/* Rows of sessions that are gone (a record made while the session
	 * ended), messages nobody refers to. */
	static const char q[] =
		"BEGIN IMMEDIATE;"
		"DELETE FROM deliveries WHERE sid NOT IN (SELECT sid FROM "
		"sessions);"
		"DELETE FROM subs WHERE sid NOT IN (SELECT sid FROM sessions);"
		"DELETE FROM qos2_in WHERE sid NOT IN (SELECT sid FROM "
		"sessions);"
		"DELETE FROM msgs WHERE NOT EXISTS (SELECT 1 FROM deliveries "
		"WHERE msg_id = msgs.id);"
		"COMMIT;";
	int rc = sqlite3_exec(x->st->db, q, NULL, NULL, NULL);
	if (rc != SQLITE_OK) {
		int e = load_error(x, rc, "cleaning up");
		sqlite3_exec(x->st->db, "ROLLBACK", NULL, NULL, NULL);
		return e;
	}
	return MOAT_OK;
}

static int scalar(struct load_ctx *x, const char *q, uint64_t *out)
{
	sqlite3_stmt *s;
	int rc = sqlite3_prepare_v2(x->st->db, q, -1, &s, NULL);
	if (rc != SQLITE_OK)
		return load_error(x, rc, q);
	*out = 0;
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW)
		*out = (uint64_t)sqlite3_column_int64(s, 0);
	sqlite3_finalize(s);
	return rc == SQLITE_ROW || rc == SQLITE_DONE ? MOAT_OK
						     : load_error(x, rc, q);
}

static uint64_t slot_of(uint64_t id, size_t cap)
{
	return (id * 0x9E3779B97F4A7C15ull) & (cap - 1);
}

static struct msg_slot *cached_msg(struct load_ctx *x, uint64_t id)
{
	if (!x->msgcap)
		return NULL;
	for (size_t i = slot_of(id, x->msgcap);; i = (i + 1) & (x->msgcap - 1)) {
		if (!x->msgs[i].m)
			return NULL;
		if (x->msgs[i].id == id)
			return &x->msgs[i];
	}
}

static int cache_msg(struct load_ctx *x, uint64_t id, struct moat_msg *m)
{
	if (2 * (x->nmsgs + 1) > x->msgcap) {
		size_t cap = x->msgcap ? x->msgcap * 2 : 1024;
		struct msg_slot *v = moat_calloc(cap, sizeof(*v));
		if (!v)
			return MOAT_ENOMEM;
		for (size_t k = 0; k < x->msgcap; k++) {
			if (!x->msgs[k].m)
				continue;
			size_t i = slot_of(x->msgs[k].id, cap);
			while (v[i].m)
				i = (i + 1) & (cap - 1);
			v[i] = x->msgs[k];
		}
		moat_free(x->msgs);
		x->msgs = v;
		x->msgcap = cap;
	}
	size_t i = slot_of(id, x->msgcap);
	while (x->msgs[i].m)
		i = (i + 1) & (x->msgcap - 1);
	x->msgs[i].id = id;
	x->msgs[i].m = moat_msg_ref(m);
	x->msgs[i].blocked = false;
	x->nmsgs++;
	return MOAT_OK;
}

static void free_cache(struct load_ctx *x)
{
	for (size_t i = 0; i < x->msgcap; i++)
		moat_msg_unref(&x->msgs[i].m);
	MOAT_FREE(x->msgs);
}

static struct moat_session *find_loaded(struct load_ctx *x, uint64_t sid)
{
	size_t lo = 0, hi = x->n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (x->v[mid].sid == sid)
			return x->v[mid].s;
		if (x->v[mid].sid < sid)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

/* Prepare q, run each row through fn. */
static int each_row(struct load_ctx *x, const char *q,
		    int (*fn)(struct load_ctx *, sqlite3_stmt *))
{
	sqlite3_stmt *s;
	int rc = sqlite3_prepare_v2(x->st->db, q, -1, &s, NULL);
	if (rc != SQLITE_OK)
		return load_error(x, rc, q);
	int mrc = MOAT_OK;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW && !mrc)
		mrc = fn(x, s);
	sqlite3_finalize(s);
	if (mrc)
		return mrc;
	return rc == SQLITE_DONE ? MOAT_OK : load_error(x, rc, q);
}

static int bad_row(struct load_ctx *x, const char *what)
{
	snprintf(x->err, x->errsz, "persistence: %s: a malformed %s row: the "
		 "database is damaged (move it away to start with an empty "
		 "one, or restore a backup)", x->st->path, what);
	return MOAT_EIO;
}

static int delete_session(struct load_ctx *x, uint64_t sid)
{
	static const char *const q[] = {
		"DELETE FROM sessions WHERE sid = ?1",
		"DELETE FROM subs WHERE sid = ?1",
		"DELETE FROM deliveries WHERE sid = ?1",
		"DELETE FROM qos2_in WHERE sid = ?1"};
	for (size_t i = 0; i < MOAT_ARRAY_LEN(q); i++) {
		sqlite3_stmt *s;
		int rc = sqlite3_prepare_v2(x->st->db, q[i], -1, &s, NULL);
		if (rc == SQLITE_OK) {
			sqlite3_bind_int64(s, 1, (sqlite3_int64)sid);
			rc = sqlite3_step(s);
			sqlite3_finalize(s);
		}
		if (rc != SQLITE_DONE && rc != SQLITE_OK)
			return load_error(x, rc, "removing an expired session");
	}
	return MOAT_OK;
}

static uint64_t lifetime_ms(const struct moat_config *cfg, uint32_t expiry_s)
{
	uint64_t cap = cfg->persistent_client_expiration;
	uint64_t life = expiry_s == MOAT_EXPIRY_NEVER ? UINT64_MAX : expiry_s;
	if (cap && cap < life)
		life = cap;
	return life == UINT64_MAX ? UINT64_MAX : life * 1000u;
}

/* A will to publish as soon as the workers run. */
static void publish_will_at_start(struct load_ctx *x, struct moat_msg *m)
{
	moat_worker_defer_will(&x->b->workers[0], m);
	x->nwills++;
}

static int add_loaded(struct load_ctx *x, uint64_t sid, struct moat_session *s)
{
	if (x->n == x->cap) {
		size_t cap = x->cap ? x->cap * 2 : 64;
		struct loaded *v = moat_realloc(x->v, cap * sizeof(*v));
		if (!v)
			return MOAT_ENOMEM;
		x->v = v;
		x->cap = cap;
	}
	x->v[x->n].sid = sid; /* rows come ordered by sid */
	x->v[x->n].s = s;
	x->n++;
	return MOAT_OK;
}

static int load_will(struct load_ctx *x, sqlite3_stmt *q,
		     struct moat_msg **will)
{
	*will = NULL;
	const void *p = sqlite3_column_blob(q, 5);
	if (!p)
		return MOAT_OK;
	int rc = moat__msg_unblob(p, (size_t)sqlite3_column_bytes(q, 5),
				  x->now_mono, x->now_wall, will);
	if (rc == MOAT_ENOTFOUND)
		return MOAT_OK; /* expired */
	if (rc == MOAT_EPROTO)
		return bad_row(x, "will");
	if (rc == MOAT_OK)
		(*will)->store_id = moat__store_msg_id(x->b);
	return rc;
}

static int session_row(struct load_ctx *x, sqlite3_stmt *q)
{
	const struct moat_config *cfg = &x->b->cfg;
	uint64_t sid = (uint64_t)sqlite3_column_int64(q, 0);
	const uint8_t *id = sqlite3_column_blob(q, 1);
	size_t idlen = (size_t)sqlite3_column_bytes(q, 1);
	const char *owner = (const char *)sqlite3_column_text(q, 2);
	uint32_t expiry = (uint32_t)sqlite3_column_int64(q, 3);
	uint64_t off = (uint64_t)sqlite3_column_int64(q, 4);
	uint32_t delay = (uint32_t)sqlite3_column_int64(q, 6);
	uint64_t will_at = (uint64_t)sqlite3_column_int64(q, 7);
	if (!id && idlen)
		return MOAT_ENOMEM;
	if (idlen > 65535)
		return bad_row(x, "session");
	/* Connected when moatd stopped: offline since it last wrote. */
	if (!off)
		off = x->last_alive ? x->last_alive : x->now_wall;
	uint64_t away = x->now_wall > off ? x->now_wall - off : 0;
	struct moat_msg *will;
	int rc = load_will(x, q, &will);
	if (rc)
		return rc;
	uint64_t life = lifetime_ms(cfg, expiry);
	if (expiry == 0 || (life != UINT64_MAX && away >= life)) {
		/* Expired while moatd was down: its will goes out now
		 * [MQTT-3.1.3-9]. */
		x->nexpired++;
		if (will)
			publish_will_at_start(x, will);
		return delete_session(x, sid);
	}
	const uint8_t *cid = id ? id : (const uint8_t *)"";
	struct moat_worker *w = moat_worker_home(x->b, cid, idlen);
	/* Two rows for one client id (cannot happen unless the file was
	 * edited): the newer session wins, the older goes. */
	struct moat_session *dup = moat_worker_find_session(w, cid, idlen);
	if (dup) {
		for (size_t i = 0; i < x->n; i++)
			if (x->v[i].s == dup) {
				x->v[i].s = NULL;
				if ((rc = delete_session(x, x->v[i].sid))) {
					moat_msg_unref(&will);
					return rc;
				}
			}
		moat_session_destroy(dup);
	}
	struct moat_session *s = moat_session_new(w, cid, idlen, expiry, owner);
	if (!s) {
		moat_msg_unref(&will);
		return MOAT_ENOMEM;
	}
	if (moat_worker_add_session(w, s) != MOAT_OK) {
		moat_session_discard(s);
		moat_msg_unref(&will);
		return MOAT_ENOMEM;
	}
	s->serial = sid;
	/* From here the worker's table owns s (teardown ends it). */
	if (add_loaded(x, sid, s) != MOAT_OK) {
		moat_msg_unref(&will);
		return MOAT_ENOMEM;
	}
	atomic_store(&s->stored, true);
	/* Rights are checked again for each message: the ACL may have
	 * changed while moatd was down. */
	s->acl_each = true;
	if (away <= x->now_mono) {
		s->offline_since_ms = x->now_mono - away;
	} else {
		/* Down longer than this machine has been up (a reboot): the
		 * monotonic clock cannot go back that far, so the rest of its
		 * life is what it keeps. */
		s->offline_since_ms = x->now_mono;
		if (life != UINT64_MAX)
			s->expiry_s = (uint32_t)((life - away + 999) / 1000);
	}
	if (will) {
		/* A will whose connection died with moatd waits its delay
		 * from now; one that was already waiting keeps its time. */
		uint64_t at = will_at ? (will_at > x->now_wall
						 ? will_at - x->now_wall
						 : 0)
				      : (uint64_t)delay * 1000u;
		s->will = will;
		s->will_at_ms = x->now_mono + at;
	}
	return MOAT_OK;
}

static int sub_row(struct load_ctx *x, sqlite3_stmt *q)
{
	struct moat_session *s =
		find_loaded(x, (uint64_t)sqlite3_column_int64(q, 0));
	if (!s)
		return MOAT_OK;
	const char *share = sqlite3_column_blob(q, 1);
	size_t slen = (size_t)sqlite3_column_bytes(q, 1);
	const char *filter = sqlite3_column_blob(q, 2);
	size_t flen = (size_t)sqlite3_column_bytes(q, 2);
	int qos = sqlite3_column_int(q, 3);
	if (!filter || flen > 65535 || slen > 65535 || qos < 0 || qos > 2 ||
	    !moat_topic_filter_valid((const uint8_t *)filter, flen))
		return bad_row(x, "subscription");
	int rc = moat__session_restore_sub(
		s, filter, flen, slen ? share : NULL, slen, (uint8_t)qos,
		(uint8_t)sqlite3_column_int(q, 4),
		(uint32_t)sqlite3_column_int64(q, 5));
	if (rc == MOAT_OK)
		x->nsubs++;
	return rc;
}

/* The shared group of a restored delivery: that of the session's
 * subscription with the same group name and filter. */
static uint64_t group_of(struct moat_session *s, sqlite3_stmt *q)
{
	const char *share = sqlite3_column_blob(q, 6);
	size_t slen = (size_t)sqlite3_column_bytes(q, 6);
	const char *filter = sqlite3_column_blob(q, 7);
	size_t flen = (size_t)sqlite3_column_bytes(q, 7);
	if (!share || !slen)
		return 0;
	for (size_t i = 0; i < s->nsubs; i++) {
		const struct moat_sub_entry *e = &s->subs[i];
		if (e->share && e->share_len == slen && e->len == flen &&
		    !memcmp(e->share, share, slen) &&
		    !memcmp(e->filter, filter, flen))
			return e->group;
	}
	return 0;
}

static int delete_delivery(struct load_ctx *x, uint64_t did)
{
	sqlite3_stmt *s;
	int rc = sqlite3_prepare_v2(x->st->db,
				    "DELETE FROM deliveries WHERE did = ?1", -1,
				    &s, NULL);
	if (rc == SQLITE_OK) {
		sqlite3_bind_int64(s, 1, (sqlite3_int64)did);
		rc = sqlite3_step(s);
		sqlite3_finalize(s);
	}
	return rc == SQLITE_DONE ? MOAT_OK
				 : load_error(x, rc, "removing an expired message");
}

/* A queued message as leak_policy wants it now (it was published before
 * the current policies): scanned once, however many sessions queue it;
 * redacted in memory and in the store, or blocked (cached as such: its
 * deliveries go, then the message itself, drop_blocked). */
static int sweep_msg(struct load_ctx *x, struct msg_slot *ms)
{
	struct moat_msg *m = ms->m;
	const struct moat_worker *w0 = &x->b->workers[0];
	if (!w0->sec || !w0->sec->leak_db)
		return MOAT_OK;
	int a = moat__leak_restored(x->b, m);
	x->nscanned++;
	if (a == MOAT_LEAK_BLOCK) {
		ms->blocked = true;
		x->nblocked++;
		return MOAT_OK;
	}
	if (a != MOAT_LEAK_REDACT)
		return MOAT_OK;
	x->nredacted++;
	size_t n = moat__msg_blob_size(m);
	uint8_t *blob = moat_malloc(n);
	if (!blob)
		return MOAT_ENOMEM;
	moat__msg_blob(m, blob, x->now_mono, x->now_wall);
	sqlite3_stmt *s;
	int rc = sqlite3_prepare_v2(x->st->db,
				    "UPDATE msgs SET data = ?2 WHERE id = ?1",
				    -1, &s, NULL);
	if (rc == SQLITE_OK) {
		sqlite3_bind_int64(s, 1, (sqlite3_int64)ms->id);
		sqlite3_bind_blob64(s, 2, blob, (sqlite3_uint64)n,
				    SQLITE_STATIC);
		rc = sqlite3_step(s);
		sqlite3_finalize(s);
	}
	moat_free(blob);
	return rc == SQLITE_DONE ? MOAT_OK
				 : load_error(x, rc, "redacting a message");
}

/* The blocked messages' rows, once none of their deliveries is left. */
static int drop_blocked(struct load_ctx *x)
{
	for (size_t i = 0; i < x->msgcap; i++) {
		if (!x->msgs[i].m || !x->msgs[i].blocked)
			continue;
		sqlite3_stmt *s;
		int rc = sqlite3_prepare_v2(x->st->db,
					    "DELETE FROM msgs WHERE id = ?1", -1,
					    &s, NULL);
		if (rc == SQLITE_OK) {
			sqlite3_bind_int64(s, 1, (sqlite3_int64)x->msgs[i].id);
			rc = sqlite3_step(s);
			sqlite3_finalize(s);
		}
		if (rc != SQLITE_DONE)
			return load_error(x, rc, "removing a blocked message");
	}
	return MOAT_OK;
}

static int delivery_row(struct load_ctx *x, sqlite3_stmt *q)
{
	uint64_t did = (uint64_t)sqlite3_column_int64(q, 0);
	struct moat_session *s =
		find_loaded(x, (uint64_t)sqlite3_column_int64(q, 1));
	int qos = sqlite3_column_int(q, 2);
	int pid = sqlite3_column_int(q, 4), state = sqlite3_column_int(q, 5);
	const void *data = sqlite3_column_blob(q, 9);
	if (!s)
		return MOAT_OK;
	if (qos < 1 || qos > 2 || pid < 0 || pid > 65535 || state < 0 ||
	    state > INFLIGHT_WAIT_COMP || (!data && state != INFLIGHT_WAIT_COMP))
		return bad_row(x, "queued message");
	struct moat_msg *m = NULL;
	uint64_t mid = (uint64_t)sqlite3_column_int64(q, 8);
	struct msg_slot *ms = data ? cached_msg(x, mid) : NULL;
	if (ms && ms->blocked) {
		return delete_delivery(x, did);
	} else if (ms) {
		m = moat_msg_ref(ms->m);
	} else if (data) {
		int rc = moat__msg_unblob(data,
					  (size_t)sqlite3_column_bytes(q, 9),
					  x->now_mono, x->now_wall, &m);
		if (rc == MOAT_EPROTO)
			return bad_row(x, "message");
		if (rc == MOAT_ENOTFOUND && state != INFLIGHT_WAIT_COMP) {
			x->nexpired++;
			return delete_delivery(x, did); /* [MQTT-3.3.2-5] */
		}
		if (rc == MOAT_ENOMEM)
			return MOAT_ENOMEM;
		if (m) {
			m->store_id = mid;
			if (cache_msg(x, mid, m) != MOAT_OK) {
				moat_msg_unref(&m);
				return MOAT_ENOMEM;
			}
			ms = cached_msg(x, mid);
			rc = sweep_msg(x, ms);
			if (rc == MOAT_OK && ms->blocked)
				rc = delete_delivery(x, did);
			if (rc != MOAT_OK || ms->blocked) {
				moat_msg_unref(&m);
				return rc;
			}
		}
	}
	bool retain = sqlite3_column_int(q, 3) != 0;
	int rc = moat__session_restore_delivery(s, m, (uint8_t)qos, retain,
						group_of(s, q), did,
						(uint16_t)pid, (uint8_t)state);
	moat_msg_unref(&m);
	if (rc == MOAT_ENOTFOUND) /* nothing left to send (see there) */
		return delete_delivery(x, did);
	if (rc == MOAT_OK) {
		if (pid)
			x->ninflight++;
		else
			x->nqueued++;
	}
	return rc;
}

static int qos2_row(struct load_ctx *x, sqlite3_stmt *q)
{
	struct moat_session *s =
		find_loaded(x, (uint64_t)sqlite3_column_int64(q, 0));
	int id = sqlite3_column_int(q, 1);
	if (!s)
		return MOAT_OK;
	if (id < 1 || id > 65535)
		return bad_row(x, "QoS 2 id");
	return moat_session_qos2_set(s, (uint16_t)id);
}

static int delete_retained(struct load_ctx *x, sqlite3_stmt *row)
{
	sqlite3_stmt *s;
	int rc = sqlite3_prepare_v2(x->st->db,
				    "DELETE FROM retained WHERE topic = ?1", -1,
				    &s, NULL);
	if (rc == SQLITE_OK) {
		sqlite3_bind_blob64(s, 1, sqlite3_column_blob(row, 0),
				    (sqlite3_uint64)sqlite3_column_bytes(row, 0),
				    SQLITE_TRANSIENT);
		rc = sqlite3_step(s);
		sqlite3_finalize(s);
	}
	return rc == SQLITE_DONE ? MOAT_OK
				 : load_error(x, rc, "removing an expired "
						     "retained message");
}

static int retained_row(struct load_ctx *x, sqlite3_stmt *q)
{
	const void *data = sqlite3_column_blob(q, 1);
	struct moat_msg *m;
	if (!data)
		return bad_row(x, "retained message");
	int rc = moat__msg_unblob(data, (size_t)sqlite3_column_bytes(q, 1),
				  x->now_mono, x->now_wall, &m);
	if (rc == MOAT_ENOTFOUND) {
		x->nexpired++;
		return delete_retained(x, q);
	}
	if (rc == MOAT_EPROTO)
		return bad_row(x, "retained message");
	if (rc)
		return rc;
	m->store_id = moat__store_msg_id(x->b);
	rc = moat_tree_retain(&x->b->tree, m, NULL);
	moat_msg_unref(&m);
	if (rc == MOAT_OK)
		x->nretained++;
	else if (rc == MOAT_ELIMIT)
		rc = MOAT_OK; /* max_retained_* lowered: logged by the tree */
	return rc;
}

static int drop_tombstones(struct load_ctx *x)
{
	int rc = sqlite3_exec(x->st->db, "DELETE FROM retained WHERE data IS "
				  "NULL", NULL, NULL, NULL);
	return rc == SQLITE_OK ? MOAT_OK
			       : load_error(x, rc, "removing deleted retained "
						   "messages");
}

int moat__store_load(struct moat_store *st, char *err, size_t errsz)
{
	struct moat_broker *b = st->b;
	struct load_ctx x = {.st = st,
			     .b = b,
			     .now_mono = moat_now_ms(),
			     .now_wall = moat__wall_ms(),
			     .err = err,
			     .errsz = errsz};
	uint64_t v;
	int rc;
	if ((rc = sweep(&x)) ||
	    (rc = scalar(&x, "SELECT value FROM meta WHERE key = 'last_alive'",
			 &x.last_alive)) ||
	    (rc = scalar(&x, "SELECT max(id) FROM msgs", &v)))
		goto out;
	atomic_store(&st->next_msg_id, v + 1);
	if ((rc = scalar(&x, "SELECT max(did) FROM deliveries", &v)))
		goto out;
	atomic_store(&st->next_did, v + 1);
	if ((rc = scalar(&x, "SELECT max(sid) FROM sessions", &v)))
		goto out;
	if (v > atomic_load(&b->session_seq))
		atomic_store(&b->session_seq, v);
	/* Retained changes go on from the newest stored; deleted topics
	 * (kept until now to order the changes) go. */
	if ((rc = scalar(&x, "SELECT max(seq) FROM retained", &v)))
		goto out;
	b->tree.retain_seq = v;
	if ((rc = sqlite3_exec(st->db, "BEGIN IMMEDIATE", NULL, NULL, NULL))) {
		rc = load_error(&x, rc, "begin");
		goto out;
	}
	if ((rc = each_row(&x,
			   "SELECT sid, client_id, owner, expiry_s, "
			   "offline_since, will, will_delay, will_at FROM "
			   "sessions ORDER BY sid",
			   session_row)) ||
	    (rc = each_row(&x,
			   "SELECT sid, share, filter, qos, options, sub_id "
			   "FROM subs ORDER BY rowid",
			   sub_row)) ||
	    (rc = each_row(&x,
			   "SELECT d.did, d.sid, d.qos, d.retain, "
			   "d.packet_id, d.state, d.share, d.filter, m.id, "
			   "m.data FROM deliveries d LEFT JOIN msgs m ON m.id "
			   "= d.msg_id ORDER BY d.did",
			   delivery_row)) ||
	    (rc = drop_blocked(&x)) ||
	    (rc = each_row(&x, "SELECT sid, packet_id FROM qos2_in",
			   qos2_row)) ||
	    (rc = drop_tombstones(&x)) ||
	    (rc = each_row(&x, "SELECT topic, data FROM retained",
			   retained_row))) {
		sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
		goto out;
	}
	if ((rc = sqlite3_exec(st->db, "COMMIT", NULL, NULL, NULL))) {
		rc = load_error(&x, rc, "commit");
		sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
		goto out;
	}
	moat_notice("persistence: %s: restored %zu sessions, %zu "
		    "subscriptions, %zu queued and %zu in-flight messages, "
		    "%zu retained messages (%zu expired while down%s)",
		    st->path, x.n, x.nsubs, x.nqueued, x.ninflight,
		    x.nretained, x.nexpired,
		    x.nwills ? "; their wills are published" : "");
	if (b->workers[0].sec && b->workers[0].sec->leak_db)
		moat_notice("leak: restored queues swept: %zu messages scanned, "
			    "%zu redacted, %zu blocked by leak_policy",
			    x.nscanned, x.nredacted, x.nblocked);
out:
	if (rc == MOAT_ENOMEM && !err[0])
		snprintf(err, errsz, "persistence: out of memory restoring %s",
			 st->path);
	moat_free(x.v);
	free_cache(&x);
	return rc;
}
