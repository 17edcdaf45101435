/* Cluster mode, the control thread (docs/cluster.md): it makes the
 * stream and the node's consumer of it, and keeps the node's NATS
 * subscriptions in step with the tree: one per distinct local filter (two
 * for "a/#"), in the node's queue group, and one per shared group on a
 * filter, with its durable JetStream consumer.  The tree only queues the
 * changes (moat__cluster_interest, under its write lock); the NATS calls,
 * some of which wait for the server, run here. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "broker/broker_int.h"
#include "cluster/cluster_int.h"
#include "cluster/subject.h"

#define IBUCKETS 4096

/* A change of interest for the control thread. */
struct iop {
	struct iop *next;
	uint64_t group;
	bool add;
	uint16_t flen, slen;
	bool shared;
	char data[]; /* filter, then share name */
};

/* One NATS interest: a filter, or a shared group on a filter. */
struct ient {
	struct ient *next;
	uint64_t group;
	natsSubscription *sub[2]; /* the filter, its parent ("a/#" -> "a") */
	natsSubscription *jsub[2]; /* a shared group's stream consumers */
	bool shared;
	bool js_wanted; /* a shared group whose consumers are not made yet */
	uint16_t flen, slen;
	char key[]; /* filter, then share name */
};

struct moat_cluster_ctl {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct iop *head, *tail;
	pthread_t thread;
	bool started;
	struct ient *map[IBUCKETS]; /* control thread only */
	size_t js_missing; /* entries with js_wanted */
};


void moat__cluster_interest(struct moat_cluster *cl, const uint8_t *filter,
			    size_t flen, const uint8_t *share, size_t slen,
			    uint64_t group, bool add)
{
	struct iop *op = moat_malloc(sizeof(*op) + flen + slen);
	if (!op) {
		moat_warn("cluster: out of memory: a subscription's interest "
			  "was not sent to NATS");
		return;
	}
	op->next = NULL;
	op->group = group;
	op->add = add;
	op->shared = share != NULL;
	op->flen = (uint16_t)flen;
	op->slen = (uint16_t)slen;
	memcpy(op->data, filter, flen);
	if (slen)
		memcpy(op->data + flen, share, slen);
	struct moat_cluster_ctl *ctl = cl->ctl;
	pthread_mutex_lock(&ctl->lock);
	if (ctl->tail)
		ctl->tail->next = op;
	else
		ctl->head = op;
	ctl->tail = op;
	pthread_cond_signal(&ctl->cond);
	pthread_mutex_unlock(&ctl->lock);
}

static struct ient **ient_find(struct moat_cluster_ctl *ctl,
			       const struct iop *op)
{
	size_t klen = (size_t)op->flen + op->slen;
	uint64_t h = moat__cluster_fnv(op->data, klen, moat__cluster_fnv(&op->shared, 1, MOAT_CLUSTER_FNV0));
	struct ient **e = &ctl->map[h % IBUCKETS];
	for (; *e; e = &(*e)->next)
		if ((*e)->shared == op->shared && (*e)->flen == op->flen &&
		    (*e)->slen == op->slen &&
		    !memcmp((*e)->key, op->data, klen))
			return e;
	return e;
}

static void ient_free(struct moat_cluster *cl, struct ient *e)
{
	if (e->js_wanted)
		cl->ctl->js_missing--;
	for (int i = 0; i < 2; i++) {
		if (e->jsub[i]) {
			/* Bound to the group's durable consumer: the
			 * consumer stays for the group's other members. */
			natsSubscription_Unsubscribe(e->jsub[i]);
			natsSubscription_Destroy(e->jsub[i]);
			atomic_fetch_sub(&cl->interest, 1);
		}
		if (!e->sub[i])
			continue;
		natsSubscription_Unsubscribe(e->sub[i]);
		natsSubscription_Destroy(e->sub[i]);
		atomic_fetch_sub(&cl->interest, 1);
	}
	moat_free(e);
}

/* The group's queue name (the same on every node). */
static void share_queue(const struct ient *e, char *out, size_t cap)
{
	snprintf(out, cap, "moat-s-%016" PRIx64,
		 moat__cluster_fnv(e->key, (size_t)e->flen + e->slen,
		     moat__cluster_fnv(&e->flen, sizeof(e->flen), MOAT_CLUSTER_FNV0)));
}

/* A shared group's QoS 1/2 messages: a durable push consumer of the
 * stream per subject (the filter's, its parent's), delivered to a queue
 * group that every node with members joins, so JetStream hands each
 * message to one node.  Made with js_AddConsumer and bound to, so that
 * a node leaving does not delete it under the others; the server drops
 * it after cluster_stream_max_age without members. */
static bool subscribe_js(struct moat_cluster *cl, struct ient *e)
{
	char subj[MOAT_SUBJECT_BUF], queue[64], name[72], deliver[96];
	size_t plen = 0;
	if (moat_subject_from_filter(MOAT_CLUSTER_PFX_JS,
				     (const uint8_t *)e->key, e->flen, subj,
				     sizeof(subj), &plen) < 0)
		return true; /* logged by subscribe() */
	share_queue(e, queue, sizeof(queue));
	for (int i = 0; i < 2; i++) {
		if (i == 1) {
			if (!plen)
				break;
			subj[plen] = 0;
		}
		if (e->jsub[i])
			continue;
		snprintf(name, sizeof(name), "%s%s", queue, i ? "-p" : "");
		snprintf(deliver, sizeof(deliver), "moat.d.%s", name);
		jsConsumerConfig cc;
		jsConsumerConfig_Init(&cc);
		cc.Durable = name;
		cc.DeliverSubject = deliver;
		cc.DeliverGroup = name;
		cc.FilterSubject = subj;
		cc.AckPolicy = js_AckExplicit;
		cc.DeliverPolicy = js_DeliverNew;
		cc.AckWait = 30 * 1000000000LL;
		cc.MaxAckPending = 10000;
		cc.InactiveThreshold =
			(int64_t)cl->b->cfg.cluster_stream_max_age *
			1000000000LL;
		jsConsumerInfo *ci = NULL;
		jsErrCode jerr = 0;
		natsStatus s = js_AddConsumer(&ci, cl->js, MOAT_CLUSTER_STREAM,
					      &cc, NULL, &jerr);
		jsConsumerInfo_Destroy(ci);
		if (s != NATS_OK && jerr != JSConsumerNameExistErr &&
		    jerr != JSConsumerExistingActiveErr) {
			atomic_fetch_add(&cl->js_errors, 1);
			moat_warn("cluster: shared group consumer %s: %s "
				  "(JetStream error %d); retrying",
				  name, nats_GetLastError(NULL), (int)jerr);
			return false;
		}
		jsSubOptions so;
		jsSubOptions_Init(&so);
		so.Stream = MOAT_CLUSTER_STREAM;
		so.Consumer = name;
		so.Queue = name;
		s = js_Subscribe(&e->jsub[i], cl->js, subj, moat__cluster_on_js_share,
				 (void *)(uintptr_t)e->group, NULL, &so,
				 &jerr);
		if (s != NATS_OK) {
			e->jsub[i] = NULL;
			atomic_fetch_add(&cl->js_errors, 1);
			moat_warn("cluster: cannot join shared group consumer "
				  "%s: %s; retrying",
				  name, nats_GetLastError(NULL));
			return false;
		}
		atomic_fetch_add(&cl->interest, 1);
	}
	return true;
}

/* Shared groups whose consumers could not be made yet (no stream). */
static void retry_js(struct moat_cluster *cl)
{
	struct moat_cluster_ctl *ctl = cl->ctl;
	for (size_t i = 0; i < IBUCKETS && ctl->js_missing; i++)
		for (struct ient *e = ctl->map[i]; e; e = e->next)
			if (e->js_wanted && subscribe_js(cl, e)) {
				e->js_wanted = false;
				ctl->js_missing--;
			}
}

static void subscribe(struct moat_cluster *cl, struct ient *e)
{
	char subj[MOAT_SUBJECT_BUF], queue[64];
	size_t plen = 0;
	int n = moat_subject_from_filter(MOAT_CLUSTER_PFX_CORE,
					 (const uint8_t *)e->key, e->flen,
					 subj, sizeof(subj), &plen);
	if (n < 0) {
		char t[96];
		moat_warn("cluster: filter %s has no NATS subject (%s): it "
			  "gets messages from this node only",
			  moat__log_topic(e->key, e->flen, t, sizeof(t)),
			  moat_strerror(n));
		return;
	}
	if (e->shared)
		share_queue(e, queue, sizeof(queue));
	else /* one copy per node, however many of its filters match */
		snprintf(queue, sizeof(queue), "moat-n-%s", cl->nonce_hex);
	void *closure = (void *)(uintptr_t)e->group;
	for (int i = 0; i < 2; i++) {
		if (i == 1) {
			if (!plen)
				break;
			subj[plen] = 0; /* "a.>" -> "a" */
		}
		if (natsConnection_QueueSubscribe(&e->sub[i], cl->nc, subj,
						  queue, moat__cluster_on_core,
						  closure) != NATS_OK) {
			e->sub[i] = NULL;
			atomic_fetch_add(&cl->js_errors, 1);
			moat_warn("cluster: cannot subscribe to %s: %s", subj,
				  nats_GetLastError(NULL));
			continue;
		}
		natsSubscription_SetPendingLimits(e->sub[i], 65536,
						  64 * 1024 * 1024);
		atomic_fetch_add(&cl->interest, 1);
	}
}

static void apply(struct moat_cluster *cl, struct iop *op)
{
	struct moat_cluster_ctl *ctl = cl->ctl;
	struct ient **pe = ient_find(ctl, op);
	if (!op->add) {
		struct ient *e = *pe;
		if (e && e->group == op->group) {
			*pe = e->next;
			ient_free(cl, e);
		}
		return;
	}
	if (*pe) { /* a group made again: the old one went */
		struct ient *old = *pe;
		*pe = old->next;
		ient_free(cl, old);
	}
	size_t klen = (size_t)op->flen + op->slen;
	struct ient *e = moat_calloc(1, sizeof(*e) + klen);
	if (!e)
		return;
	e->group = op->group;
	e->shared = op->shared;
	e->flen = op->flen;
	e->slen = op->slen;
	memcpy(e->key, op->data, klen);
	subscribe(cl, e);
	if (e->shared && !(atomic_load(&cl->stream_ready) &&
			   subscribe_js(cl, e))) {
		e->js_wanted = true;
		ctl->js_missing++;
	}
	e->next = ctl->map[moat__cluster_fnv(op->data, klen, moat__cluster_fnv(&op->shared, 1, MOAT_CLUSTER_FNV0)) %
			   IBUCKETS];
	ctl->map[moat__cluster_fnv(op->data, klen, moat__cluster_fnv(&op->shared, 1, MOAT_CLUSTER_FNV0)) % IBUCKETS] = e;
}

/* The stream of QoS 1/2 messages, and this node's ordered consumer of
 * it (no redelivery: each message once, in stream order; after a
 * reconnection libnats resumes after the last one received). */
static bool setup_stream(struct moat_cluster *cl)
{
	const struct moat_config *cfg = &cl->b->cfg;
	const char *subjects[] = {MOAT_CLUSTER_PFX_JS ".>"};
	jsStreamConfig sc;
	jsStreamConfig_Init(&sc);
	sc.Name = MOAT_CLUSTER_STREAM;
	sc.Subjects = subjects;
	sc.SubjectsLen = 1;
	sc.Storage = js_FileStorage;
	sc.Replicas = (int64_t)cfg->cluster_replicas;
	sc.MaxAge = (int64_t)cfg->cluster_stream_max_age * 1000000000LL;
	sc.MaxBytes = (int64_t)cfg->cluster_stream_max_bytes;
	sc.Duplicates = MOAT_CLUSTER_DUP_WINDOW_S * 1000000000LL;
	sc.Discard = js_DiscardOld;
	jsErrCode jerr = 0;
	jsStreamInfo *si = NULL;
	natsStatus s = js_AddStream(&si, cl->js, &sc, NULL, &jerr);
	if (s != NATS_OK && jerr == JSStreamNameExistErr)
		s = js_UpdateStream(&si, cl->js, &sc, NULL, &jerr);
	jsStreamInfo_Destroy(si);
	if (s != NATS_OK) {
		atomic_fetch_add(&cl->js_errors, 1);
		moat_warn("cluster: stream %s: %s (JetStream error %d); "
			  "retrying",
			  MOAT_CLUSTER_STREAM, nats_GetLastError(NULL),
			  (int)jerr);
		return false;
	}
	jsSubOptions so;
	jsSubOptions_Init(&so);
	so.Stream = MOAT_CLUSTER_STREAM;
	so.Ordered = true;
	so.Config.DeliverPolicy = js_DeliverNew;
	/* A missed heartbeat makes libnats remake the consumer after the
	 * last message received: after losing its NATS server, a node
	 * catches up within a few seconds (5 s by default: ~20 s). */
	so.Config.Heartbeat = 1000000000LL;
	s = js_Subscribe(&cl->js_sub, cl->js, MOAT_CLUSTER_PFX_JS ".>", moat__cluster_on_js,
			 cl, NULL, &so, &jerr);
	if (s != NATS_OK) {
		atomic_fetch_add(&cl->js_errors, 1);
		moat_warn("cluster: cannot consume stream %s: %s; retrying",
			  MOAT_CLUSTER_STREAM, nats_GetLastError(NULL));
		cl->js_sub = NULL;
		return false;
	}
	natsSubscription_SetPendingLimits(cl->js_sub, 65536, 64 * 1024 * 1024);
	moat_notice("cluster: stream %s ready (%llu replicas)",
		    MOAT_CLUSTER_STREAM,
		    (unsigned long long)cfg->cluster_replicas);
	return true;
}

static void *ctl_main(void *arg)
{
	struct moat_cluster *cl = arg;
	struct moat_cluster_ctl *ctl = cl->ctl;
	pthread_mutex_lock(&ctl->lock);
	while (!atomic_load(&cl->stopping)) {
		struct iop *ops = ctl->head;
		ctl->head = ctl->tail = NULL;
		pthread_mutex_unlock(&ctl->lock);
		while (ops) {
			struct iop *next = ops->next;
			apply(cl, ops);
			moat_free(ops);
			ops = next;
		}
		if (atomic_load(&cl->connected) &&
		    !atomic_load(&cl->stream_ready) && setup_stream(cl))
			atomic_store(&cl->stream_ready, true);
		if (ctl->js_missing && atomic_load(&cl->connected) &&
		    atomic_load(&cl->stream_ready))
			retry_js(cl);
		pthread_mutex_lock(&ctl->lock);
		if (!ctl->head && !atomic_load(&cl->stopping)) {
			struct timespec ts;
			clock_gettime(CLOCK_REALTIME, &ts);
			ts.tv_sec += 1;
			pthread_cond_timedwait(&ctl->cond, &ctl->lock, &ts);
		}
	}
	pthread_mutex_unlock(&ctl->lock);
	return NULL;
}


int moat__cluster_ctl_new(struct moat_cluster *cl)
{
	struct moat_cluster_ctl *ctl = moat_calloc(1, sizeof(*ctl));
	if (!ctl)
		return MOAT_ENOMEM;
	pthread_mutex_init(&ctl->lock, NULL);
	pthread_cond_init(&ctl->cond, NULL);
	cl->ctl = ctl;
	return MOAT_OK;
}

int moat__cluster_ctl_start(struct moat_cluster *cl)
{
	if (pthread_create(&cl->ctl->thread, NULL, ctl_main, cl) != 0)
		return MOAT_EIO;
	cl->ctl->started = true;
	return MOAT_OK;
}

void moat__cluster_ctl_wake(struct moat_cluster *cl)
{
	if (!cl->ctl)
		return;
	pthread_mutex_lock(&cl->ctl->lock);
	pthread_cond_signal(&cl->ctl->cond);
	pthread_mutex_unlock(&cl->ctl->lock);
}

/* Every subscription of the map goes (NATS still connected). */
static void drop_all(struct moat_cluster *cl)
{
	for (size_t i = 0; i < IBUCKETS; i++) {
		while (cl->ctl->map[i]) {
			struct ient *e = cl->ctl->map[i];
			cl->ctl->map[i] = e->next;
			ient_free(cl, e);
		}
	}
}

void moat__cluster_ctl_stop(struct moat_cluster *cl)
{
	if (cl->ctl->started) {
		moat__cluster_ctl_wake(cl); /* cl->stopping is set */
		pthread_join(cl->ctl->thread, NULL);
		cl->ctl->started = false;
	}
	if (cl->js_sub) {
		natsSubscription_Unsubscribe(cl->js_sub);
		natsSubscription_Destroy(cl->js_sub);
		cl->js_sub = NULL;
	}
	drop_all(cl);
}

void moat__cluster_ctl_free(struct moat_cluster *cl)
{
	struct moat_cluster_ctl *ctl = cl->ctl;
	if (!ctl)
		return;
	for (struct iop *op = ctl->head, *next; op; op = next) {
		next = op->next;
		moat_free(op);
	}
	drop_all(cl);
	pthread_mutex_destroy(&ctl->lock);
	pthread_cond_destroy(&ctl->cond);
	MOAT_FREE(cl->ctl);
}
