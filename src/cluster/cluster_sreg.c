/* Persistent sessions surviving the loss of their node
 * (cluster_session_recovery, on by default in cluster mode;
 * docs/cluster.md "Losing a node").
 *
 * Records: every 2 s each worker writes, for each persistent session it
 * homes, a record in the key-value bucket MOAT_SESSIONS under
 * "<client id token>.<node nonce>": the owner, the subscriptions (as a
 * snapshot carries them, cluster_sess.c) and a checkpoint, the wall-clock
 * time 5 s before the session last had nothing waiting (no message in
 * flight or queued): everything the stream got before the checkpoint
 * had reached the client.  A record is written again when the
 * subscriptions change, or when the checkpoint moved by 10 s after the
 * session had QoS 1/2 messages (waiting, or a packet id used) since the
 * last write: an idle session costs no write.  Deleted when the session
 * is gone from the node.
 *
 * Recovery: a client that asks for its session at a node gets it from
 * its old node when that one is alive (cluster_sess.c).  When no state
 * arrived 2 s after the CONNECT, this node's recovery thread reads the
 * client id's records of other nodes, takes the newest, reads the stream
 * MOAT_MSGS from its checkpoint up to now, and hands the subscriptions
 * and the QoS 1/2 messages they match to the session as a snapshot; the
 * old node's record is deleted.  At least once: messages between the
 * checkpoint and the node's loss that had reached the client come again
 * (QoS 2 ones too). */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "broker/broker_int.h"
#include "cluster/cluster_int.h"
#include "cluster/cluster_state.h"
#include "cluster/subject.h"
#include "codec/mqtt_codec.h"

#define REG_BUCKET "MOAT_SESSIONS"
#define REG_PREFIX "$KV." REG_BUCKET "."
#define REG_VERSION 1
#define SCAN_MS 2000
#define MARGIN_MS 5000
#define REWRITE_MS 10000
#define WAIT_STATE_MS 2000
#define MAX_REQ 1024

/* What a worker wrote for one session. */
struct rentry {
	char *key;         /* NULL: a free slot */
	uint64_t fp;       /* fingerprint of the record written */
	uint64_t empty_ms; /* wall clock: last seen with nothing waiting */
	uint64_t ckpt_ms;  /* checkpoint written */
	uint16_t pid;      /* the session's next packet id then */
	bool busy;         /* had messages since the record was written */
	bool seen;
};

struct rworker {
	struct rentry *v;
	size_t n, cap;
	uint64_t next_scan;
};

struct req {
	uint8_t *id;
	size_t len;
	uint64_t at_ms; /* moat_now_ms of the CONNECT */
};

struct sreg {
	struct moat_cluster *cl;
	jsCtx *js;
	kvStore *kv;
	struct rworker *w; /* one per worker */
	unsigned nw;
	pthread_t thread;
	atomic_bool stopping;
	pthread_mutex_t lock;
	struct req q[MAX_REQ];
	size_t nq;
};

static struct sreg *the_reg;


/* "$KV.MOAT_SESSIONS.<token>.<nonce>" for client id id. */
static bool reg_subject(const struct sreg *r, const uint8_t *id, size_t len,
			char *out, size_t cap)
{
	size_t pl = sizeof(REG_PREFIX) - 1;
	if (cap < pl + 18)
		return false;
	memcpy(out, REG_PREFIX, pl);
	int tl = moat_subject_token(id, len, out + pl, cap - pl - 17);
	if (tl < 0)
		return false;
	snprintf(out + pl + (size_t)tl, 18, ".%016" PRIx64, r->cl->nonce);
	return true;
}

static void reg_send(struct sreg *r, const char *subj, const void *d,
		     size_t n)
{
	natsMsg *m = NULL;
	natsStatus s = natsMsg_Create(&m, subj, NULL, d, (int)n);
	if (s == NATS_OK && !n)
		s = natsMsgHeader_Set(m, "KV-Operation", "DEL");
	if (s == NATS_OK)
		s = js_PublishMsgAsync(r->js, &m, NULL);
	natsMsg_Destroy(m);
	if (s != NATS_OK)
		atomic_fetch_add(&r->cl->js_errors, 1);
}

/* ---- records (worker threads) ------------------------------------------------ */

static struct rentry *rentry_get(struct rworker *rw, const char *key)
{
	struct rentry *free_slot = NULL;
	for (size_t i = 0; i < rw->n; i++) {
		if (!rw->v[i].key)
			free_slot = free_slot ? free_slot : &rw->v[i];
		else if (!strcmp(rw->v[i].key, key))
			return &rw->v[i];
	}
	if (!free_slot) {
		if (rw->n == rw->cap) {
			size_t cap = rw->cap ? rw->cap * 2 : 64;
			struct rentry *v =
				moat_realloc(rw->v, cap * sizeof(*v));
			if (!v)
				return NULL;
			rw->v = v;
			rw->cap = cap;
		}
		free_slot = &rw->v[rw->n++];
	}
	memset(free_slot, 0, sizeof(*free_slot));
	free_slot->key = moat_strdup(key);
	return free_slot->key ? free_slot : NULL;
}

static void record(struct sreg *r, struct rworker *rw, struct moat_session *s,
		   uint64_t wall)
{
	char subj[MOAT_SUBJECT_BUF + 64];
	struct wbuf b = {.max = 1u << 20};
	if (!reg_subject(r, (const uint8_t *)s->client_id, s->client_id_len,
			 subj, sizeof(subj)))
		return; /* a client id too long for a key: not recoverable */
	struct rentry *e = rentry_get(rw, subj);
	if (!e)
		return;
	e->seen = true;
	if (s->ninflight || s->qlen || s->next_packet_id != e->pid)
		e->busy = true;
	if (!e->empty_ms || (!s->ninflight && !s->qlen))
		e->empty_ms = wall;
	uint64_t ckpt = e->empty_ms - MARGIN_MS;
	uint8_t v = REG_VERSION, f = s->owner != NULL;
	moat__wb_put(&b, &v, 1);
	moat__wb_u32(&b, (uint32_t)(ckpt >> 32));
	moat__wb_u32(&b, (uint32_t)ckpt);
	moat__wb_put(&b, &f, 1);
	if (s->owner) {
		size_t ul = strlen(s->owner);
		moat__wb_u16(&b, (uint16_t)ul);
		moat__wb_put(&b, s->owner, ul);
	}
	moat__snap_put_subs(&b, s);
	if (b.over) {
		moat_free(b.p);
		return;
	}
	/* the fingerprint leaves the checkpoint out (bytes 1-8) */
	uint64_t fp = moat_fnv1a(b.p + 9, b.n - 9,
				 moat_fnv1a(b.p, 1, MOAT_FNV1A_INIT));
	/* An idle session's checkpoint is not moved: no QoS 1/2 message
	 * reached it since (it would have used a packet id or waited), so
	 * a replay from the old checkpoint finds nothing more for it. */
	if (fp != e->fp || (e->busy && ckpt >= e->ckpt_ms + REWRITE_MS)) {
		reg_send(r, subj, b.p, b.n);
		e->fp = fp;
		e->ckpt_ms = ckpt;
		e->pid = s->next_packet_id;
		e->busy = false;
	}
	moat_free(b.p);
}

void moat__cluster_sreg_tick(struct moat_worker *w, uint64_t now)
{
	struct sreg *r = the_reg;
	if (!r || w->idx >= r->nw || !atomic_load(&r->cl->connected))
		return;
	struct rworker *rw = &r->w[w->idx];
	if (now < rw->next_scan)
		return;
	rw->next_scan = now + SCAN_MS;
	uint64_t wall = moat__wall_ms();
	for (size_t i = 0; i < rw->n; i++)
		rw->v[i].seen = false;
	for (size_t bk = 0; bk < w->nbuckets; bk++)
		for (struct moat_session *s = w->sessions[bk]; s;
		     s = s->hnext)
			if (s->expiry_s && !s->coap && !s->dead)
				record(r, rw, s, wall);
	for (size_t i = 0; i < rw->n; i++) {
		struct rentry *e = &rw->v[i];
		if (e->key && !e->seen) { /* the session is gone */
			reg_send(r, e->key, NULL, 0);
			MOAT_FREE(e->key);
		}
	}
}

/* ---- recovery (its own thread) ------------------------------------------------ */

void moat__cluster_sreg_connected(struct moat_broker *b, const uint8_t *id,
				  size_t len)
{
	struct sreg *r = the_reg;
	(void)b;
	if (!r)
		return;
	uint8_t *copy = moat_malloc(len ? len : 1);
	if (!copy)
		return;
	memcpy(copy, id, len);
	pthread_mutex_lock(&r->lock);
	if (r->nq < MAX_REQ)
		r->q[r->nq++] = (struct req){copy, len, moat_now_ms()};
	else
		MOAT_FREE(copy);
	pthread_mutex_unlock(&r->lock);
}

/* The newest record of id written by another node: its value (caller
 * frees) and key, or NULL. */
static uint8_t *newest_record(struct sreg *r, const uint8_t *id, size_t len,
			      size_t *n, char *key, size_t keycap)
{
	char filt[MOAT_SUBJECT_BUF + 8], own[24];
	int tl = moat_subject_token(id, len, filt, sizeof(filt) - 3);
	uint8_t *best = NULL;
	uint64_t best_ckpt = 0;
	kvWatcher *wt = NULL;
	if (tl < 0)
		return NULL;
	memcpy(filt + tl, ".*", 3);
	snprintf(own, sizeof(own), ".%016" PRIx64, r->cl->nonce);
	if (kvStore_Watch(&wt, r->kv, filt, NULL) != NATS_OK)
		return NULL;
	for (;;) {
		kvEntry *e = NULL;
		if (kvWatcher_Next(&e, wt, 2000) != NATS_OK || !e)
			break; /* the end of the current values */
		const char *k = kvEntry_Key(e);
		const uint8_t *v = kvEntry_Value(e);
		size_t vl = (size_t)kvEntry_ValueLen(e);
		size_t kl = strlen(k);
		bool mine = kl >= 17 && !strcmp(k + kl - 17, own);
		if (kvEntry_Operation(e) == kvOp_Put && !mine && vl > 9 &&
		    v[0] == REG_VERSION) {
			uint64_t ck = 0;
			for (int i = 1; i <= 8; i++)
				ck = ck << 8 | v[i];
			if (!best || ck > best_ckpt) {
				uint8_t *c = moat_malloc(vl);
				if (c) {
					memcpy(c, v, vl);
					moat_free(best);
					best = c;
					best_ckpt = ck;
					*n = vl;
					snprintf(key, keycap, "%s", k);
				}
			}
		}
		kvEntry_Destroy(e);
	}
	kvWatcher_Destroy(wt);
	return best;
}

/* The filters of a record's subscriptions (pointers into it), for
 * matching the stream: at most 64 are used. */
struct rfilters {
	const uint8_t *f[64];
	size_t len[64];
	uint8_t qos[64];
	size_t n;
	const uint8_t *subs; /* the subscriptions, in snapshot form */
	size_t subs_len;
};

static bool parse_record(const uint8_t *v, size_t n, struct rfilters *rf)
{
	size_t p = 10;
	if (n < p)
		return false;
	if (v[9]) { /* owner */
		if (n - p < 2)
			return false;
		size_t ul = (size_t)v[p] << 8 | v[p + 1];
		p += 2;
		if (n - p < ul)
			return false;
		p += ul;
	}
	rf->subs = v + p;
	if (n - p < 4)
		return false;
	uint32_t ns = (uint32_t)v[p] << 24 | (uint32_t)v[p + 1] << 16 |
		      (uint32_t)v[p + 2] << 8 | v[p + 3];
	p += 4;
	rf->n = 0;
	for (uint32_t i = 0; i < ns; i++) {
		if (n - p < 2)
			return false;
		size_t fl = (size_t)v[p] << 8 | v[p + 1];
		p += 2;
		if (n - p < fl + 2)
			return false;
		const uint8_t *f = v + p;
		p += fl;
		size_t sl = (size_t)v[p] << 8 | v[p + 1];
		p += 2;
		if (sl != 0xffff) {
			if (n - p < sl)
				return false;
			p += sl;
		}
		if (n - p < 6)
			return false;
		if (rf->n < 64 && sl == 0xffff) { /* shared: not replayed */
			rf->f[rf->n] = f;
			rf->len[rf->n] = fl;
			rf->qos[rf->n++] = v[p];
		}
		p += 6;
	}
	rf->subs_len = (size_t)(v + p - rf->subs);
	return true;
}

/* The stream from the checkpoint: the messages the filters match, into
 * b (snapshot form); their count. */
static uint32_t replay(struct sreg *r, const struct rfilters *rf,
		       uint64_t ckpt_ms, struct wbuf *b)
{
	static uint8_t topic[65536];
	natsSubscription *sub = NULL;
	jsSubOptions so;
	jsErrCode jerr = 0;
	uint32_t n = 0;
	jsSubOptions_Init(&so);
	so.Stream = "MOAT_MSGS";
	so.Ordered = true;
	so.Config.DeliverPolicy = js_DeliverByStartTime;
	so.Config.OptStartTime = (int64_t)ckpt_ms * 1000000;
	if (js_SubscribeSync(&sub, r->js, "moat.q.>", NULL, &so, &jerr) !=
	    NATS_OK)
		return 0;
	uint64_t deadline = moat_now_ms() + 30000;
	while (moat_now_ms() < deadline && !b->over) {
		natsMsg *m = NULL;
		if (natsSubscription_NextMsg(&m, sub, 2000) != NATS_OK)
			break; /* nothing more for 2 s: caught up */
		const char *subj = natsMsg_GetSubject(m);
		int tl = moat_subject_to_topic("moat.q", subj, strlen(subj),
					       topic, sizeof(topic));
		const uint8_t *d = (const uint8_t *)natsMsg_GetData(m);
		size_t dl = (size_t)natsMsg_GetDataLength(m);
		uint8_t q = 0;
		bool hit = false;
		for (size_t i = 0; tl > 0 && i < rf->n; i++)
			if (moat_topic_matches(rf->f[i], rf->len[i], topic,
					       (size_t)tl)) {
				hit = true;
				q = MOAT_MAX(q, rf->qos[i]);
			}
		if (hit && dl >= 2) {
			uint8_t h[2] = {q, 0};
			moat__wb_put(b, h, 2);
			moat__wb_u16(b, (uint16_t)tl);
			moat__wb_put(b, topic, (size_t)tl);
			moat__wb_u32(b, (uint32_t)dl);
			moat__wb_put(b, d, dl);
			n++;
		}
		jsMsgMetaData *md = NULL;
		bool last = natsMsg_GetMetaData(&md, m) == NATS_OK &&
			    md->NumPending == 0;
		jsMsgMetaData_Destroy(md);
		natsMsg_Destroy(m);
		if (last)
			break;
	}
	natsSubscription_Unsubscribe(sub);
	natsSubscription_Destroy(sub);
	return n;
}

static void recover(struct sreg *r, const struct req *q)
{
	char key[MOAT_SUBJECT_BUF + 32];
	size_t vl = 0;
	uint8_t *v = newest_record(r, q->id, q->len, &vl, key, sizeof(key));
	struct rfilters rf;
	if (!v)
		return;
	if (!parse_record(v, vl, &rf)) {
		moat_free(v);
		return;
	}
	uint64_t ckpt = 0;
	for (int i = 1; i <= 8; i++)
		ckpt = ckpt << 8 | v[i];
	struct wbuf b = {.max = 64u << 20};
	uint8_t ver = 1;
	moat__wb_put(&b, &ver, 1);
	moat__wb_u16(&b, (uint16_t)q->len);
	moat__wb_put(&b, q->id, q->len);
	moat__wb_put(&b, rf.subs, rf.subs_len);
	size_t count_at = b.n;
	moat__wb_u32(&b, 0);
	uint32_t n = b.over ? 0 : replay(r, &rf, ckpt, &b);
	if (!b.over || n) {
		b.p[count_at] = (uint8_t)(n >> 24);
		b.p[count_at + 1] = (uint8_t)(n >> 16);
		b.p[count_at + 2] = (uint8_t)(n >> 8);
		b.p[count_at + 3] = (uint8_t)n;
		moat__snap_post(r->cl, b.p, b.over ? count_at + 4 : b.n);
		moat_notice("cluster: a session whose node was lost recovered "
			    "from %s (%u messages of the stream)",
			    REG_BUCKET, n);
		char subj[sizeof(key) + sizeof(REG_PREFIX)];
		snprintf(subj, sizeof(subj), "$KV." REG_BUCKET ".%s", key);
		reg_send(r, subj, NULL, 0); /* the lost node's record */
	}
	moat_free(b.p);
	moat_free(v);
}

static void *sreg_main(void *arg)
{
	struct sreg *r = arg;
	while (!atomic_load(&r->stopping)) {
		nanosleep(&(struct timespec){0, 200000000}, NULL);
		if (!r->kv) {
			kvConfig kc;
			kvConfig_Init(&kc);
			kc.Bucket = REG_BUCKET;
			kc.History = 1;
			kc.StorageType = js_FileStorage;
			kc.Replicas = (int)r->cl->b->cfg.cluster_replicas;
			if (!atomic_load(&r->cl->connected) ||
			    (js_CreateKeyValue(&r->kv, r->js, &kc) != NATS_OK &&
			     js_KeyValue(&r->kv, r->js, REG_BUCKET) != NATS_OK))
				r->kv = NULL;
			continue;
		}
		struct req q = {0};
		pthread_mutex_lock(&r->lock);
		if (r->nq && moat_now_ms() >= r->q[0].at_ms + WAIT_STATE_MS) {
			q = r->q[0];
			memmove(r->q, r->q + 1, (r->nq - 1) * sizeof(r->q[0]));
			r->nq--;
		}
		pthread_mutex_unlock(&r->lock);
		if (!q.id)
			continue;
		if (!moat__snap_applied_since(q.id, q.len, q.at_ms))
			recover(r, &q);
		moat_free(q.id);
	}
	return NULL;
}

int moat__cluster_sreg_start(struct moat_broker *b)
{
	struct moat_cluster *cl = b->cluster;
	if (!cl || !b->cfg.cluster_session_recovery)
		return MOAT_OK;
	struct sreg *r = moat_calloc(1, sizeof(*r));
	if (!r || !(r->w = moat_calloc(b->nworkers, sizeof(*r->w)))) {
		moat_free(r);
		return MOAT_ENOMEM;
	}
	r->cl = cl;
	r->nw = b->nworkers;
	pthread_mutex_init(&r->lock, NULL);
	if (!(r->js = moat__cluster_js_async(cl, NULL, NULL)) ||
	    pthread_create(&r->thread, NULL, sreg_main, r) != 0) {
		moat_err_log("cluster: cannot start session recovery");
		jsCtx_Destroy(r->js);
		pthread_mutex_destroy(&r->lock);
		moat_free(r->w);
		moat_free(r);
		return MOAT_EIO;
	}
	the_reg = r;
	moat_notice("cluster: session recovery on: records in %s", REG_BUCKET);
	return MOAT_OK;
}

void moat__cluster_sreg_stop(struct moat_broker *b)
{
	struct sreg *r = the_reg;
	(void)b;
	if (!r)
		return;
	the_reg = NULL;
	atomic_store(&r->stopping, true);
	pthread_join(r->thread, NULL);
	moat__cluster_js_close(r->js, r->kv);
	for (unsigned i = 0; i < r->nw; i++) {
		for (size_t k = 0; k < r->w[i].n; k++)
			moat_free(r->w[i].v[k].key);
		moat_free(r->w[i].v);
	}
	for (size_t i = 0; i < r->nq; i++)
		moat_free(r->q[i].id);
	pthread_mutex_destroy(&r->lock);
	moat_free(r->w);
	moat_free(r);
}
