/* Persistence: one store thread owns an SQLite database (WAL) and commits
 * the workers' record batches in groups; docs/persistence.md has the
 * guarantees of each persistence_sync mode and docs/architecture.md the
 * ordering rules.  The restore at start-up is in store_load.c. */
#include <errno.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "store_int.h"

/* ---- messages as blobs -------------------------------------------------- */

uint64_t moat__wall_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static void put32(uint8_t *p, uint32_t v)
{
	put16(p, (uint16_t)(v >> 16));
	put16(p + 2, (uint16_t)v);
}

static void put64(uint8_t *p, uint64_t v)
{
	put32(p, (uint32_t)(v >> 32));
	put32(p + 4, (uint32_t)v);
}

static uint16_t get16(const uint8_t *p)
{
	return (uint16_t)((p[0] << 8) | p[1]);
}

static uint32_t get32(const uint8_t *p)
{
	return ((uint32_t)get16(p) << 16) | get16(p + 2);
}

static uint64_t get64(const uint8_t *p)
{
	return ((uint64_t)get32(p) << 32) | get32(p + 4);
}

enum {
	BLOB_RETAIN = 1,
	BLOB_SRC = 2,
	BLOB_SRC_USER = 4,
	BLOB_EXPIRY_PENDING = 8,
	BLOB_EXPIRY = 16,
	BLOB_HEADER = 1 + 1 + 1 + 4 + 8 + 8 + 2 + 4 + 4 + 2 + 2,
};

/* version, qos, flags, expiry_s, expiry (wall ms), origin, topic length,
 * payload length, properties length, user length, client id length,
 * then the bytes. */
size_t moat__msg_blob_size(const struct moat_msg *m)
{
	size_t ul = m->src_user ? strlen(m->src_user) : 0;
	size_t cl = m->has_src && m->src_cid ? strlen(m->src_cid) : 0;
	return BLOB_HEADER + moat_msg_size(m) + ul + cl;
}

void moat__msg_blob(const struct moat_msg *m, uint8_t *p, uint64_t now_mono,
		    uint64_t now_wall)
{
	size_t ul = m->src_user ? strlen(m->src_user) : 0;
	size_t cl = m->has_src && m->src_cid ? strlen(m->src_cid) : 0;
	uint8_t flags = (uint8_t)((m->retain ? BLOB_RETAIN : 0) |
				  (m->has_src ? BLOB_SRC : 0) |
				  (m->src_user ? BLOB_SRC_USER : 0) |
				  (m->expiry_pending ? BLOB_EXPIRY_PENDING : 0) |
				  (m->expiry_ms ? BLOB_EXPIRY : 0));
	uint64_t exp = 0;
	if (m->expiry_ms)
		exp = m->expiry_ms > now_mono
			      ? now_wall + (m->expiry_ms - now_mono)
			      : now_wall; /* already due: dropped at restore */
	p[0] = 1;
	p[1] = m->qos;
	p[2] = flags;
	put32(p + 3, m->expiry_s);
	put64(p + 7, exp);
	put64(p + 15, m->origin);
	put16(p + 23, m->topic_len);
	put32(p + 25, m->payload_len);
	put32(p + 29, m->props_len);
	put16(p + 33, (uint16_t)ul);
	put16(p + 35, (uint16_t)cl);
	p += BLOB_HEADER;
	memcpy(p, m->topic, m->topic_len);
	p += m->topic_len;
	if (m->payload_len)
		memcpy(p, m->payload, m->payload_len);
	p += m->payload_len;
	if (m->props_len)
		memcpy(p, m->props, m->props_len);
	p += m->props_len;
	if (ul)
		memcpy(p, m->src_user, ul);
	if (cl)
		memcpy(p + ul, m->src_cid, cl);
}

int moat__msg_unblob(const uint8_t *p, size_t n, uint64_t now_mono,
		     uint64_t now_wall, struct moat_msg **out)
{
	*out = NULL;
	if (n < BLOB_HEADER || p[0] != 1 || p[1] > 2)
		return MOAT_EPROTO;
	uint8_t flags = p[2];
	uint32_t expiry_s = get32(p + 3);
	uint64_t exp = get64(p + 7);
	size_t tl = get16(p + 23), pl = get32(p + 25), xl = get32(p + 29);
	size_t ul = get16(p + 33), cl = get16(p + 35);
	if (n != BLOB_HEADER + tl + pl + xl + ul + cl || tl == 0)
		return MOAT_EPROTO;
	const uint8_t *t = p + BLOB_HEADER;
	char user[65536], cid[65536];
	memcpy(user, t + tl + pl + xl, ul);
	user[ul] = '\0';
	memcpy(cid, t + tl + pl + xl + ul, cl);
	cid[cl] = '\0';
	struct moat_msg_extra x = {
		.props = t + tl + pl,
		.props_len = xl,
		.has_expiry = (flags & BLOB_EXPIRY_PENDING) != 0,
		.expiry_on_publish = (flags & BLOB_EXPIRY_PENDING) != 0,
		.expiry_s = expiry_s,
		.origin = get64(p + 15),
		.has_src = (flags & BLOB_SRC) != 0,
		.src_user = (flags & BLOB_SRC_USER) ? user : NULL,
		.src_cid = cid,
	};
	struct moat_msg *m = moat_msg_new5(t, tl, t + tl, pl, p[1],
					   (flags & BLOB_RETAIN) != 0, &x);
	if (!m)
		return MOAT_ENOMEM;
	if (flags & BLOB_EXPIRY) {
		if (exp <= now_wall) {
			moat_msg_unref(&m);
			return MOAT_ENOTFOUND; /* expired while we were down */
		}
		m->expiry_ms = now_mono + (exp - now_wall);
	}
	*out = m;
	return MOAT_OK;
}

/* ---- worker side: records ------------------------------------------------ */

static struct store_op *new_op(struct moat_worker *w, uint8_t kind)
{
	struct moat_store_batch *sb = w->sbatch;
	if (!sb) {
		sb = moat_calloc(1, sizeof(*sb));
		if (!sb)
			return NULL;
		w->sbatch = sb;
	}
	if (sb->n == sb->cap) {
		size_t cap = sb->cap ? sb->cap * 2 : 64;
		struct store_op *v = moat_realloc(sb->v, cap * sizeof(*v));
		if (!v)
			return NULL;
		sb->v = v;
		sb->cap = cap;
	}
	struct store_op *op = &sb->v[sb->n++];
	memset(op, 0, sizeof(*op));
	op->kind = kind;
	w->store_nrec++;
	return op;
}

/* A record could not be made: the store no longer matches memory.  Rare
 * (out of memory); said loudly, once per second at most. */
static void lost_record(struct moat_worker *w, const char *what)
{
	struct moat_store *st = w->b->store;
	atomic_fetch_add(&st->lost, 1);
	w->store_lost++; /* the packet that needed it is not acknowledged */
	uint64_t now = moat_now_ms();
	if (now - w->limit_log_ms >= 1000) {
		w->limit_log_ms = now;
		moat_err_log("persistence: out of memory: %s not recorded", what);
	}
}

static char *dup_bytes(const char *p, size_t n)
{
	return moat_strndup(p ? p : "", p ? n : 0);
}

bool moat__store_failing(const struct moat_broker *b)
{
	return b->store && atomic_load(&b->store->failing);
}

uint64_t moat__store_msg_id(struct moat_broker *b)
{
	if (!b->store)
		return 0;
	return atomic_fetch_add(&b->store->next_msg_id, 1);
}

void moat__store_session(struct moat_worker *w, struct moat_session *s)
{
	struct moat_store *st = w->b->store;
	if (!st)
		return;
	bool keep = s->expiry_s != 0 && !s->dead;
	bool was = atomic_load(&s->stored);
	atomic_store(&s->stored, keep);
	if (!keep) {
		if (was)
			moat__store_session_del(w, s);
		return;
	}
	struct store_op *op = new_op(w, SOP_SESSION);
	if (!op)
		return lost_record(w, "a session");
	op->sid = s->serial;
	op->u32 = s->expiry_s;
	op->s1 = dup_bytes(s->client_id, s->client_id_len);
	op->l1 = s->client_id_len;
	if (s->owner) {
		op->s2 = moat_strdup(s->owner);
		op->l2 = strlen(s->owner);
	}
	uint64_t mono = moat_now_ms(), wall = moat__wall_ms();
	/* offline since (wall ms); 0 while connected */
	op->t = s->conn ? 0 : wall - MOAT_MIN(wall, mono - MOAT_MIN(mono, s->offline_since_ms));
	/* The will: a connection's (fires after its delay from the crash
	 * or disconnection) or one already waiting in the session.  Copied
	 * now: a will's expiry starts when it is published, which changes
	 * the message. */
	const struct moat_msg *will = NULL;
	if (s->conn && s->conn->will && !s->conn->will_discard) {
		will = s->conn->will;
		op->u32b = s->conn->will_delay_s;
	} else if (s->will) {
		will = s->will;
		op->t2 = s->will_at_ms > mono ? wall + (s->will_at_ms - mono)
					      : wall;
	}
	if (will) {
		op->blob_len = moat__msg_blob_size(will);
		op->blob = moat_malloc(op->blob_len);
		if (op->blob)
			moat__msg_blob(will, op->blob, mono, wall);
	}
	if (!op->s1 || (s->owner && !op->s2) || (will && !op->blob)) {
		moat_free(op->s1);
		moat_free(op->s2);
		moat_free(op->blob);
		w->sbatch->n--;
		return lost_record(w, "a session");
	}
}

void moat__store_session_del(struct moat_worker *w, struct moat_session *s)
{
	if (!w->b->store || w->b->shutting_down)
		return;
	atomic_store(&s->stored, false);
	struct store_op *op = new_op(w, SOP_SESSION_DEL);
	if (!op)
		return lost_record(w, "the end of a session");
	op->sid = s->serial;
}

void moat__store_sub(struct moat_worker *w, struct moat_session *s,
		     const struct moat_sub_entry *e)
{
	if (!atomic_load(&s->stored))
		return;
	struct store_op *op = new_op(w, SOP_SUB);
	if (!op)
		return lost_record(w, "a subscription");
	op->sid = s->serial;
	op->qos = e->qos;
	op->flags = (uint8_t)((e->no_local ? 1 : 0) |
			      (e->retain_as_published ? 2 : 0));
	op->u32 = e->sub_id;
	op->s1 = dup_bytes(e->filter, e->len);
	op->l1 = e->len;
	op->s2 = dup_bytes(e->share, e->share_len);
	op->l2 = e->share ? e->share_len : 0;
	if (!op->s1 || !op->s2) {
		moat_free(op->s1);
		moat_free(op->s2);
		w->sbatch->n--;
		lost_record(w, "a subscription");
	}
}

void moat__store_unsub(struct moat_worker *w, struct moat_session *s,
		       const char *filter, size_t flen, const char *share,
		       size_t slen)
{
	if (!atomic_load(&s->stored))
		return;
	struct store_op *op = new_op(w, SOP_UNSUB);
	if (!op)
		return lost_record(w, "an unsubscription");
	op->sid = s->serial;
	op->s1 = dup_bytes(filter, flen);
	op->l1 = flen;
	op->s2 = dup_bytes(share, slen);
	op->l2 = share ? slen : 0;
	if (!op->s1 || !op->s2) {
		moat_free(op->s1);
		moat_free(op->s2);
		w->sbatch->n--;
		lost_record(w, "an unsubscription");
	}
}

uint64_t moat__store_delivery(struct moat_worker *w, struct moat_session *s,
			      struct moat_msg *m, uint8_t qos, bool retain)
{
	struct moat_store *st = w->b->store;
	/* At shutdown sessions end without leaving the store: nothing is
	 * handed from one to another then. */
	if (!st || !qos || !m->store_id || !atomic_load(&s->stored) ||
	    w->b->shutting_down)
		return 0;
	struct store_op *op = new_op(w, SOP_DELIVERY);
	if (!op) {
		lost_record(w, "a queued message");
		return 0;
	}
	op->id = atomic_fetch_add(&st->next_did, 1);
	op->sid = s->serial;
	op->qos = qos;
	op->flags = retain ? 1 : 0;
	op->msg = moat_msg_ref(m);
	return op->id;
}

void moat__store_delivery_state(struct moat_worker *w, uint64_t did,
				uint16_t packet_id, uint8_t state, bool retain)
{
	if (!did || !w->b->store)
		return;
	struct store_op *op = new_op(w, SOP_DELIVERY_STATE);
	if (!op)
		return lost_record(w, "an in-flight message");
	op->id = did;
	op->packet_id = packet_id;
	op->qos = state;
	op->flags = retain ? 1 : 0;
}

void moat__store_delivery_share(struct moat_worker *w, uint64_t did,
				const char *share, size_t slen,
				const char *filter, size_t flen)
{
	if (!did || !w->b->store)
		return;
	struct store_op *op = new_op(w, SOP_DELIVERY_SHARE);
	if (!op)
		return lost_record(w, "a shared delivery");
	op->id = did;
	op->s1 = dup_bytes(filter, flen);
	op->l1 = flen;
	op->s2 = dup_bytes(share, slen);
	op->l2 = slen;
	if (!op->s1 || !op->s2) {
		moat_free(op->s1);
		moat_free(op->s2);
		w->sbatch->n--;
		lost_record(w, "a shared delivery");
	}
}

void moat__store_delivery_del(struct moat_worker *w, uint64_t did,
			      uint64_t msg_id)
{
	if (!did || !w->b->store || w->b->shutting_down)
		return;
	struct store_op *op = new_op(w, SOP_DELIVERY_DEL);
	if (!op)
		return lost_record(w, "an acknowledgement");
	op->id = did;
	op->sid = msg_id;
}

void moat__store_retain(struct moat_worker *w, struct moat_msg *m,
			uint64_t seq)
{
	if (!w->b->store || moat_topic_is_sys((const uint8_t *)m->topic,
					      m->topic_len))
		return;
	struct store_op *op = new_op(w, SOP_RETAIN);
	if (!op)
		return lost_record(w, "a retained message");
	op->msg = moat_msg_ref(m);
	op->id = seq;
}

void moat__store_qos2(struct moat_worker *w, struct moat_session *s,
		      uint16_t id, bool set)
{
	if (!atomic_load(&s->stored) || !w->b->store)
		return;
	struct store_op *op = new_op(w, set ? SOP_QOS2_SET : SOP_QOS2_CLR);
	if (!op)
		return lost_record(w, "a QoS 2 packet id");
	op->sid = s->serial;
	op->packet_id = id;
}

void moat__store_flush(struct moat_worker *w)
{
	struct moat_store *st = w->b->store;
	struct moat_store_batch *sb = w->sbatch;
	if (!st || ((!sb || !sb->n) && !w->store_gate_pending))
		return;
	/* A gate may wait for a batch without records (one could not be
	 * made): it is handed over all the same, so the gate opens. */
	if (!sb && !(sb = moat_calloc(1, sizeof(*sb))))
		return; /* tried again at the end of the next turn */
	w->sbatch = NULL;
	w->store_gate_pending = false;
	sb->worker = w->idx;
	sb->seq = ++w->store_seq;
	pthread_mutex_lock(&st->lock);
	if (st->tail)
		st->tail->next = sb;
	else
		st->head = sb;
	st->tail = sb;
	st->queued += sb->n;
	atomic_fetch_add_explicit(&st->backlog, sb->n, memory_order_relaxed);
	pthread_cond_signal(&st->cond);
	pthread_mutex_unlock(&st->lock);
}

bool moat__store_backlogged(const struct moat_broker *b)
{
	return b->store && atomic_load_explicit(&b->store->backlog,
						memory_order_relaxed) >
				   MOAT_STORE_BACKLOG_MAX;
}

/* ---- worker side: gates -------------------------------------------------- */

/* persistence_sync off gates nothing, except while the store is far
 * behind: then the connections that add to it wait (and stop being read,
 * see moat_conn_can_send) until it catches up. */
static bool gates_on(const struct moat_broker *b)
{
	return b->store && (b->store->sync != MOAT_PSYNC_OFF ||
			    moat__store_backlogged(b));
}

void moat__store_gate(struct moat_conn *c)
{
	struct moat_worker *w = c->w;
	struct moat_gates *g = c->gates;
	if (!g || !gates_on(w->b) || c->state == CONN_CLOSED)
		return;
	uint64_t seq = w->store_seq + 1; /* the batch being filled */
	uint64_t off = c->out_done + moat_buf_used(&c->out);
	if (g->n && g->gate[g->n - 1].seq == seq)
		return; /* already behind this batch, from an earlier byte */
	if (g->n == MOAT_ARRAY_LEN(g->gate)) {
		g->gate[g->n - 1].seq = seq; /* wait a little longer */
	} else {
		g->gate[g->n].off = off;
		g->gate[g->n].seq = seq;
		g->n++;
	}
	w->store_gate_pending = true;
	if (!g->listed) {
		g->listed = true;
		g->prev = NULL;
		g->next = w->gated;
		if (w->gated)
			w->gated->gates->prev = c;
		w->gated = c;
	}
}

void moat__store_ungate(struct moat_conn *c)
{
	struct moat_gates *g = c->gates;
	if (!g || !g->listed)
		return;
	if (g->prev)
		g->prev->gates->next = g->next;
	else
		c->w->gated = g->next;
	if (g->next)
		g->next->gates->prev = g->prev;
	g->next = g->prev = NULL;
	g->listed = false;
	g->n = 0;
}

size_t moat__store_writable(const struct moat_conn *c, size_t used)
{
	if (!moat__store_gated(c))
		return used;
	uint64_t limit = c->gates->gate[0].off - c->out_done;
	return limit < used ? (size_t)limit : used;
}

uint64_t moat__store_gate_seq(struct moat_worker *w)
{
	if (!gates_on(w->b))
		return 0;
	w->store_gate_pending = true;
	return w->store_seq + 1; /* the batch being filled */
}

void moat__store_release(struct moat_worker *w)
{
	struct moat_store *st = w->b->store;
	if (!st)
		return;
	uint64_t done = atomic_load_explicit(&st->committed[w->idx],
					     memory_order_acquire);
	moat__coap_store_release(w, done);
	if (!w->gated)
		return;
	struct moat_conn *next;
	for (struct moat_conn *c = w->gated; c; c = next) {
		struct moat_gates *g = c->gates;
		next = g->next;
		size_t k = 0;
		while (k < g->n && g->gate[k].seq <= done)
			k++;
		if (!k)
			continue;
		memmove(g->gate, g->gate + k, (g->n - k) * sizeof(g->gate[0]));
		g->n = (uint8_t)(g->n - k);
		if (!g->n)
			moat__store_ungate(c);
		if (c->state != CONN_CLOSED)
			moat_worker_mark_dirty(w, c);
	}
}
