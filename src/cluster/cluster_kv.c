/* Retained messages in the JetStream key-value bucket MOAT_RETAINED
 * (cluster_state.h, docs/cluster.md "Retained messages").
 *
 * Writes: a worker routing a retained message of its own clients
 * publishes its envelope to $KV.MOAT_RETAINED.<key> (an empty one: a
 * delete marker, KV-Operation DEL) asynchronously on a JetStream context
 * of its own; nothing waits on a worker.  A write the bucket does not
 * take (no bucket yet, NATS away) is kept (at most KV_MAX_DIRTY) and made
 * again by the watcher thread once connected, unless the bucket got a
 * newer value for that topic meanwhile.
 *
 * Reads: one thread watches the whole bucket.  Every entry, the initial
 * values at start and then each change, is posted to worker 0 as a
 * message routed with only = MOAT_CLUSTER_KV_APPLY: it changes the tree's
 * retained message and reaches no subscriber (the live copy travelled as
 * a normal message).  One worker applies them all, in the bucket's order,
 * so every node converges on the bucket's last value per topic.  After
 * the initial values, retained messages the node has that the bucket
 * has never seen (kept from before cluster mode, or written while the
 * bucket could not be) are written to it; a topic cleared while the node
 * was away comes as a delete marker and is cleared here too. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "broker/broker_int.h"
#include "cluster/cluster_int.h"
#include "cluster/cluster_state.h"
#include "cluster/subject.h"

#define KV_BUCKET "MOAT_RETAINED"
#define KV_SUBJECT_PREFIX "$KV." KV_BUCKET "."
/* Messages from NATS not yet routed by a worker (the cluster's count,
 * bucket entries included), beyond which the watcher waits (the bucket
 * keeps the rest). */
#define KV_MAX_INBOUND 10000
/* Keys remembered from the initial values (hashes, 8 bytes each). */
#define KV_MAX_SEEN (16u * 1024u * 1024u)
/* Writes that failed, kept to be made again (the oldest go first). */
#define KV_MAX_DIRTY 1024

/* A write the bucket did not take: made again once it can, unless the
 * bucket got a newer value meanwhile. */
struct kv_dirty {
	char *subj;
	uint8_t *data; /* NULL: a delete marker */
	size_t len;
	int64_t at_ns; /* wall clock of the first attempt */
};

struct kv_state {
	struct moat_cluster *cl;
	jsCtx *js; /* writes, with kv_ack */
	kvStore *kv;
	kvWatcher *watch;
	pthread_t thread;
	bool started;
	atomic_bool stopping;
	/* initial values: the keys seen (FNV-1a hashes), sorted at the end */
	uint64_t *seen;
	size_t nseen, capseen;
	bool initial;
	uint64_t last_warn_ms;
	pthread_mutex_t lock; /* dirty */
	struct kv_dirty dirty[KV_MAX_DIRTY];
	size_t ndirty;
	uint64_t dirty_dropped;
	uint64_t last_retry_ms;
};

/* One cluster per process (as cluster.c); NULL when off. */
static struct kv_state *the_kv;

static void warn_some(struct kv_state *kv, const char *what, const char *why)
{
	uint64_t now = moat_now_ms();
	if (now - kv->last_warn_ms < 10000)
		return;
	kv->last_warn_ms = now;
	moat_warn("cluster: retained messages bucket: %s: %s", what, why);
}

/* ---- writes (worker threads) ------------------------------------------------ */

static int64_t wall_ns(void)
{
	return (int64_t)moat__wall_ms() * 1000000;
}

/* Keep a write that failed (any thread). */
static void remember(struct kv_state *kv, const char *subj,
		     const void *data, size_t len, int64_t at_ns)
{
	char *sc = moat_strdup(subj);
	uint8_t *dc = len ? moat_malloc(len) : NULL;
	if (!sc || (len && !dc)) {
		moat_free(sc);
		moat_free(dc);
		return;
	}
	if (len)
		memcpy(dc, data, len);
	pthread_mutex_lock(&kv->lock);
	if (kv->ndirty == KV_MAX_DIRTY) { /* the oldest goes */
		moat_free(kv->dirty[0].subj);
		moat_free(kv->dirty[0].data);
		memmove(kv->dirty, kv->dirty + 1,
			(KV_MAX_DIRTY - 1) * sizeof(kv->dirty[0]));
		kv->ndirty--;
		kv->dirty_dropped++;
	}
	kv->dirty[kv->ndirty++] = (struct kv_dirty){sc, dc, len, at_ns};
	pthread_mutex_unlock(&kv->lock);
}

static void kv_ack(jsCtx *js, natsMsg *msg, jsPubAck *pa, jsPubAckErr *pae,
		   void *closure)
{
	(void)js;
	(void)pa;
	struct kv_state *kv = closure;
	if (!pae) {
		natsMsg_Destroy(msg); /* the handler owns it (nats.h) */
		return;
	}
	atomic_fetch_add(&kv->cl->js_errors, 1);
	warn_some(kv, "a write failed; made again later",
		  pae->ErrText ? pae->ErrText : natsStatus_GetText(pae->Err));
	const char *at = NULL;
	int64_t at_ns = wall_ns();
	if (natsMsgHeader_Get(msg, "Moat-At", &at) == NATS_OK && at)
		at_ns = strtoll(at, NULL, 10);
	remember(kv, natsMsg_GetSubject(msg), natsMsg_GetData(msg),
		 (size_t)natsMsg_GetDataLength(msg), at_ns);
	natsMsg_Destroy(msg);
}

/* Publish one write; false when it could not even be sent. */
static bool kv_send(struct kv_state *kv, const char *subj, const void *data,
		    size_t len, int64_t at_ns)
{
	natsMsg *nm = NULL;
	char at[24];
	snprintf(at, sizeof(at), "%" PRId64, at_ns);
	natsStatus s = natsMsg_Create(&nm, subj, NULL, data, (int)len);
	if (s == NATS_OK && !len)
		s = natsMsgHeader_Set(nm, "KV-Operation", "DEL");
	if (s == NATS_OK) /* when it was written first (kv_ack) */
		s = natsMsgHeader_Set(nm, "Moat-At", at);
	if (s == NATS_OK)
		s = js_PublishMsgAsync(kv->js, &nm, NULL);
	natsMsg_Destroy(nm); /* no effect when libnats took it */
	if (s != NATS_OK) {
		atomic_fetch_add(&kv->cl->js_errors, 1);
		warn_some(kv, "a write was not sent; made again later",
			  natsStatus_GetText(s));
		remember(kv, subj, data, len, at_ns);
	}
	return s == NATS_OK;
}

/* Write m (a retained message, or its deletion when empty) to the
 * bucket. */
static void kv_write(struct kv_state *kv, const struct moat_msg *m,
		     uint64_t now_ms)
{
	char subj[sizeof(KV_SUBJECT_PREFIX) + MOAT_SUBJECT_BUF];
	size_t pl = sizeof(KV_SUBJECT_PREFIX) - 1;
	uint8_t *buf = NULL;
	size_t len = 0;

	memcpy(subj, KV_SUBJECT_PREFIX, pl);
	if (moat_subject_from_topic("", (const uint8_t *)m->topic, m->topic_len,
				    subj + pl, sizeof(subj) - pl) < 0) {
		atomic_fetch_add(&kv->cl->dropped, 1);
		return; /* longer than a subject: this node's only */
	}
	if (m->payload_len) {
		buf = moat_malloc(moat__cluster_env_size(m));
		if (!buf) {
			atomic_fetch_add(&kv->cl->dropped, 1);
			return;
		}
		len = moat__cluster_env_encode(m, kv->cl->nonce, true, now_ms,
					       buf);
	}
	kv_send(kv, subj, buf, len, wall_ns());
	moat_free(buf);
}

void moat__cluster_kv_publish(struct moat_worker *w, const struct moat_msg *m)
{
	struct kv_state *kv = the_kv;
	if (!kv || !m->retain || m->remote || !m->topic_len ||
	    m->topic[0] == '$')
		return; /* $SYS and other '$' topics: every node has its own */
	kv_write(kv, m, w->now_ms);
}

/* ---- reads (the watcher thread) --------------------------------------------- */

static void note_seen(struct kv_state *kv, const char *key, size_t n)
{
	if (kv->nseen == kv->capseen) {
		size_t cap = kv->capseen ? kv->capseen * 2 : 1024;
		uint64_t *v;
		if (cap > KV_MAX_SEEN ||
		    !(v = moat_realloc(kv->seen, cap * sizeof(*v))))
			return; /* then written again: harmless */
		kv->seen = v;
		kv->capseen = cap;
	}
	kv->seen[kv->nseen++] = moat_fnv1a(key, n, MOAT_FNV1A_INIT);
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return (x > y) - (x < y);
}

/* Post the bucket's entry m to worker 0 (waits while too many are in
 * flight: the bucket keeps the rest). */
static void post_apply(struct kv_state *kv, struct moat_msg *m)
{
	struct moat_broker *b = kv->cl->b;
	while (atomic_load(&kv->cl->inbound) >= KV_MAX_INBOUND &&
	       !atomic_load(&kv->stopping))
		nanosleep(&(struct timespec){0, 1000000}, NULL);
	struct moat_inbox_item it = {.kind = INBOX_CLUSTER_MSG,
				     .msg = m,
				     .share = MOAT_CLUSTER_KV_APPLY};
	atomic_fetch_add(&kv->cl->inbound, 1); /* the worker takes it off */
	if (moat_worker_post(&b->workers[0], &it) != MOAT_OK) {
		atomic_fetch_sub(&kv->cl->inbound, 1);
		atomic_fetch_add(&kv->cl->dropped, 1);
	}
}

/* The message a bucket entry stands for (an empty retained message for
 * a delete marker or an expired one), or NULL when it is not one of
 * ours. */
static struct moat_msg *entry_msg(struct kv_state *kv, kvEntry *e,
				  const uint8_t *topic, size_t tlen)
{
	kvOperation op = kvEntry_Operation(e);
	struct moat_msg *m = NULL;
	uint64_t nonce;
	bool groups_done;
	if (op == kvOp_Put &&
	    moat__cluster_env_decode(kvEntry_Value(e),
				     (size_t)kvEntry_ValueLen(e), topic, tlen,
				     &nonce, &groups_done, &m) == MOAT_OK &&
	    m->retain && m->payload_len) {
		/* The expiry left when it was written, less its age. */
		struct timespec now;
		clock_gettime(CLOCK_REALTIME, &now);
		int64_t age_ms = ((int64_t)now.tv_sec * 1000000000 +
				  now.tv_nsec - kvEntry_Created(e)) /
				 1000000;
		if (!m->expiry_ms || age_ms <= 0)
			return m;
		if (m->expiry_ms > moat_now_ms() + (uint64_t)age_ms) {
			m->expiry_ms -= (uint64_t)age_ms; /* only reference */
			return m;
		}
		moat_msg_unref(&m); /* expired: as deleted */
		op = kvOp_Delete;
	} else if (op == kvOp_Put) {
		moat_msg_unref(&m);
		atomic_fetch_add(&kv->cl->dropped, 1);
		return NULL;
	}
	if (op != kvOp_Delete && op != kvOp_Purge)
		return NULL;
	m = moat_msg_new(topic, tlen, NULL, 0, 0, true);
	if (m)
		m->remote = true;
	return m;
}

static void apply_entry(struct kv_state *kv, kvEntry *e)
{
	static uint8_t topic[65536]; /* the watcher thread's */
	const char *key = kvEntry_Key(e);
	size_t klen = strlen(key);
	int tlen = moat_subject_to_topic("", key, klen, topic, sizeof(topic));
	if (tlen <= 0) {
		atomic_fetch_add(&kv->cl->dropped, 1);
		return; /* not a topic any node writes */
	}
	if (kv->initial)
		note_seen(kv, key, klen);
	struct moat_msg *m = entry_msg(kv, e, topic, (size_t)tlen);
	if (m)
		post_apply(kv, m);
}

/* After the initial values: what this node retains and the bucket has
 * never seen goes into the bucket. */
static void push_local_only(struct kv_state *kv)
{
	struct moat_msg **v = NULL;
	size_t n = 0, pushed = 0;
	char key[MOAT_SUBJECT_BUF];
	if (kv->nseen)
		qsort(kv->seen, kv->nseen, sizeof(*kv->seen), cmp_u64);
	if (moat_tree_retained_all(&kv->cl->b->tree, SIZE_MAX, &v, &n) !=
	    MOAT_OK)
		return;
	for (size_t i = 0; i < n; i++) {
		struct moat_msg *m = v[i];
		int kl = m->topic[0] == '$'
				 ? -1
				 : moat_subject_from_topic(
					   "", (const uint8_t *)m->topic,
					   m->topic_len, key, sizeof(key));
		uint64_t h = kl > 0 ? moat_fnv1a(key, (size_t)kl, MOAT_FNV1A_INIT) : 0;
		if (kl > 0 && (!kv->nseen ||
			       !bsearch(&h, kv->seen, kv->nseen,
					sizeof(*kv->seen), cmp_u64))) {
			kv_write(kv, m, moat_now_ms());
			pushed++;
		}
		moat_msg_unref(&v[i]);
	}
	moat_free(v);
	MOAT_FREE(kv->seen);
	kv->nseen = kv->capseen = 0;
	if (pushed)
		moat_notice("cluster: %zu retained message%s of this node "
			    "written to the bucket %s",
			    pushed, pushed == 1 ? "" : "s", KV_BUCKET);
}

/* The writes that failed, again, unless the bucket has a newer value
 * (the watcher thread, connected). */
static void retry_dirty(struct kv_state *kv)
{
	struct kv_dirty v[KV_MAX_DIRTY];
	size_t n, pl = sizeof(KV_SUBJECT_PREFIX) - 1;
	pthread_mutex_lock(&kv->lock);
	n = kv->ndirty;
	memcpy(v, kv->dirty, n * sizeof(v[0]));
	kv->ndirty = 0;
	if (kv->dirty_dropped) {
		moat_warn("cluster: %" PRIu64 " failed writes to the retained "
			  "messages bucket were forgotten (more than %u)",
			  kv->dirty_dropped, KV_MAX_DIRTY);
		kv->dirty_dropped = 0;
	}
	pthread_mutex_unlock(&kv->lock);
	for (size_t i = 0; i < n; i++) {
		kvEntry *e = NULL;
		natsStatus s = kvStore_Get(&e, kv->kv, v[i].subj + pl);
		if (s == NATS_NOT_FOUND ||
		    (s == NATS_OK && kvEntry_Created(e) < v[i].at_ns))
			kv_send(kv, v[i].subj, v[i].data, v[i].len, v[i].at_ns);
		else if (s != NATS_OK)
			remember(kv, v[i].subj, v[i].data, v[i].len,
				 v[i].at_ns);
		kvEntry_Destroy(e);
		moat_free(v[i].subj);
		moat_free(v[i].data);
	}
}

/* Make or bind the bucket and start watching it. */
static bool kv_open(struct kv_state *kv)
{
	const struct moat_config *cfg = &kv->cl->b->cfg;
	kvConfig kc;
	natsStatus s;
	if (!kv->kv) {
		kvConfig_Init(&kc);
		kc.Bucket = KV_BUCKET;
		kc.History = 1;
		kc.StorageType = js_FileStorage;
		kc.Replicas = (int)cfg->cluster_replicas;
		if (js_CreateKeyValue(&kv->kv, kv->js, &kc) != NATS_OK &&
		    (s = js_KeyValue(&kv->kv, kv->js, KV_BUCKET)) != NATS_OK) {
			kv->kv = NULL;
			warn_some(kv, "cannot make or bind it",
				  nats_GetLastError(NULL));
			return false;
		}
	}
	if (kvStore_WatchAll(&kv->watch, kv->kv, NULL) != NATS_OK) {
		kv->watch = NULL;
		warn_some(kv, "cannot watch it", nats_GetLastError(NULL));
		return false;
	}
	kv->initial = true;
	kv->nseen = 0;
	return true;
}

static void *kv_main(void *arg)
{
	struct kv_state *kv = arg;
	while (!atomic_load(&kv->stopping)) {
		if (!kv->watch) {
			if (!atomic_load(&kv->cl->connected) || !kv_open(kv)) {
				nanosleep(&(struct timespec){0, 250000000},
					  NULL);
				continue;
			}
		}
		if (!kv->initial && atomic_load(&kv->cl->connected)) {
			uint64_t now = moat_now_ms();
			pthread_mutex_lock(&kv->lock);
			bool due = kv->ndirty && now - kv->last_retry_ms >= 1000;
			pthread_mutex_unlock(&kv->lock);
			if (due) {
				kv->last_retry_ms = now;
				retry_dirty(kv);
			}
		}
		kvEntry *e = NULL;
		natsStatus s = kvWatcher_Next(&e, kv->watch, 500);
		if (s == NATS_TIMEOUT)
			continue;
		if (s != NATS_OK) {
			warn_some(kv, "watch ended", natsStatus_GetText(s));
			kvWatcher_Destroy(kv->watch);
			kv->watch = NULL;
			continue;
		}
		if (!e) { /* the end of the initial values */
			if (kv->initial) {
				kv->initial = false;
				push_local_only(kv);
				moat_notice("cluster: retained messages bucket "
					    "%s mirrored",
					    KV_BUCKET);
			}
			continue;
		}
		apply_entry(kv, e);
		kvEntry_Destroy(e);
	}
	return NULL;
}

/* ---- lifecycle --------------------------------------------------------------- */

jsCtx *moat__cluster_js_async(struct moat_cluster *cl, jsPubAckHandler ack,
			      void *closure)
{
	jsCtx *js = NULL;
	jsOptions jo;
	jsOptions_Init(&jo);
	jo.Wait = 5000;
	jo.PublishAsync.AckHandler = ack;
	jo.PublishAsync.AckHandlerClosure = closure;
	jo.PublishAsync.MaxPending = 65536;
	jo.PublishAsync.StallWait = 1; /* never hold a worker long */
	if (natsConnection_JetStream(&js, cl->nc, &jo) != NATS_OK)
		return NULL;
	return js;
}

void moat__cluster_js_close(jsCtx *js, kvStore *kv)
{
	jsPubOptions po;
	jsPubOptions_Init(&po);
	po.MaxWait = 2000;
	if (js) /* ack handlers' closures: let the answers arrive first */
		(void)js_PublishAsyncComplete(js, &po);
	kvStore_Destroy(kv);
	jsCtx_Destroy(js);
}

int moat__cluster_kv_start(struct moat_broker *b)
{
	struct moat_cluster *cl = b->cluster;
	if (!cl)
		return MOAT_OK;
	struct kv_state *kv = moat_calloc(1, sizeof(*kv));
	if (!kv)
		return MOAT_ENOMEM;
	kv->cl = cl;
	pthread_mutex_init(&kv->lock, NULL);
	if (!(kv->js = moat__cluster_js_async(cl, kv_ack, kv))) {
		moat_err_log("cluster: JetStream for the retained messages "
			     "bucket: %s",
			     nats_GetLastError(NULL));
		pthread_mutex_destroy(&kv->lock);
		moat_free(kv);
		return MOAT_EIO;
	}
	if (pthread_create(&kv->thread, NULL, kv_main, kv) != 0) {
		moat_err_log("cluster: cannot start the retained messages "
			     "thread");
		jsCtx_Destroy(kv->js);
		pthread_mutex_destroy(&kv->lock);
		moat_free(kv);
		return MOAT_EIO;
	}
	kv->started = true;
	the_kv = kv;
	return MOAT_OK;
}

void moat__cluster_kv_stop(struct moat_broker *b)
{
	struct kv_state *kv = the_kv;
	(void)b;
	if (!kv)
		return;
	the_kv = NULL; /* workers are joined: no more writes */
	atomic_store(&kv->stopping, true);
	if (kv->started)
		pthread_join(kv->thread, NULL);
	if (kv->watch) {
		kvWatcher_Stop(kv->watch);
		kvWatcher_Destroy(kv->watch);
	}
	moat__cluster_js_close(kv->js, kv->kv); /* kv_ack's closure is kv */
	moat_free(kv->seen);
	for (size_t i = 0; i < kv->ndirty; i++) {
		moat_free(kv->dirty[i].subj);
		moat_free(kv->dirty[i].data);
	}
	pthread_mutex_destroy(&kv->lock);
	moat_free(kv);
}
