/* Cluster mode, the NATS side (docs/cluster.md): the connection and its
 * options (TLS, credentials), its lifecycle, and libnats's callbacks,
 * which only decode and post to the workers' inboxes.  The stream and
 * the node's subscriptions are the control thread's (cluster_ctl.c).
 *
 * libnats's delivery runs on one thread (the global delivery pool of
 * size 1), so messages reach the inboxes in the order NATS delivered
 * them; a topic always goes to the same worker, so the order per
 * publisher and topic holds on every node. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/rand.h>

#include "broker/broker_int.h"
#include "cluster/cluster_int.h"
#include "cluster/subject.h"

/* Messages (and their bytes) received and not yet routed by a worker,
 * beyond which QoS 0 is dropped and the stream's consumers wait (flow
 * control holds the rest in JetStream); the same while memory_limit is
 * reached. */
#define MAX_INBOUND 100000
#define MAX_INBOUND_BYTES (64u * 1024 * 1024)

/* libnats's callbacks reach the broker through this (one per process,
 * as libnats's own state is). */
static struct moat_cluster *the_cluster;

struct moat_cluster *moat__cluster_of(const struct moat_broker *b)
{
	return b->cluster;
}


/* ---- inbound ------------------------------------------------------------------ */

static void post(struct moat_cluster *cl, struct moat_msg *m, uint64_t only)
{
	struct moat_broker *b = cl->b;
	unsigned i = (unsigned)(moat__cluster_fnv(m->topic, m->topic_len, MOAT_CLUSTER_FNV0) % b->nworkers);
	size_t size = moat_msg_size(m);
	/* did: the bytes counted in inbound_bytes, taken off by the worker
	 * (0 for items posted without counting them). */
	struct moat_inbox_item it = {.kind = INBOX_CLUSTER_MSG,
				     .msg = m,
				     .share = only,
				     .did = size};
	atomic_fetch_add(&cl->inbound, 1);
	atomic_fetch_add(&cl->inbound_bytes, size);
	if (moat_worker_post(&b->workers[i], &it) != MOAT_OK) {
		/* released and counted as dropped */
		atomic_fetch_sub(&cl->inbound, 1);
		atomic_fetch_sub(&cl->inbound_bytes, size);
	}
}

/* May another message be handed to the workers now? */
static bool inbound_room(struct moat_cluster *cl)
{
	const struct moat_broker *b = cl->b;
	uint64_t budget = b->cfg.memory_limit ? b->cfg.memory_limit
					      : b->memory_auto;
	return atomic_load(&cl->inbound) < MAX_INBOUND &&
	       atomic_load(&cl->inbound_bytes) < MAX_INBOUND_BYTES &&
	       moat_alloc_live_bytes() < budget;
}

/* A message from NATS that cannot be delivered: counted, and logged at
 * most every 10 s. */
static void refuse(struct moat_cluster *cl, natsMsg *msg, const char *why)
{
	static _Atomic uint64_t logged_ms;
	uint64_t now = moat_now_ms(), last = atomic_load(&logged_ms);
	atomic_fetch_add(&cl->dropped, 1);
	if (now - last < 10000 ||
	    !atomic_compare_exchange_strong(&logged_ms, &last, now))
		return;
	char t[96];
	const char *s = natsMsg_GetSubject(msg);
	moat_warn("cluster: message on NATS subject %s dropped: %s (such "
		  "drops are logged at most every 10 s)",
		  moat__log_topic(s, strlen(s), t, sizeof(t)), why);
}

/* A message from NATS under prefix pfx; only: the subscriptions it is
 * for (struct moat_matches.only). */
static void receive(struct moat_cluster *cl, natsMsg *msg, const char *pfx,
		    uint64_t only, bool js)
{
	static _Thread_local uint8_t topic[65536];
	const char *subj = natsMsg_GetSubject(msg);
	int tlen = moat_subject_to_topic(pfx, subj, strlen(subj), topic,
					 sizeof(topic));
	uint64_t nonce;
	bool groups_done;
	struct moat_msg *m = NULL;
	if (tlen <= 0) {
		refuse(cl, msg, "not a topic's subject");
		return;
	}
	int rc = moat__cluster_env_decode(
		(const uint8_t *)natsMsg_GetData(msg),
		(size_t)natsMsg_GetDataLength(msg), topic, (size_t)tlen, &nonce,
		&groups_done, &m);
	if (rc) {
		refuse(cl, msg, rc == MOAT_ENOMEM ? "out of memory"
						  : "malformed envelope");
		return;
	}
	/* This node's own: its subscribers had it when it was published;
	 * only a shared group served through NATS takes it back, unless
	 * the node served its groups itself (no NATS then). */
	bool group = only != MOAT_MATCH_NO_GROUPS;
	if ((nonce == cl->nonce && !group) || (group && groups_done)) {
		moat_msg_unref(&m);
		return;
	}
	while (!inbound_room(cl)) {
		if (!js || atomic_load(&cl->stopping)) {
			refuse(cl, msg, "inbound queue full or memory_limit "
					"reached");
			moat_msg_unref(&m);
			return;
		}
		nanosleep(&(struct timespec){0, 1000000}, NULL);
	}
	post(cl, m, only);
}

void moat__cluster_on_core(natsConnection *nc, natsSubscription *sub, natsMsg *msg,
		    void *closure)
{
	(void)nc;
	(void)sub;
	uint64_t group = (uint64_t)(uintptr_t)closure;
	receive(the_cluster, msg, MOAT_CLUSTER_PFX_CORE,
		group ? group : MOAT_MATCH_NO_GROUPS, false);
	natsMsg_Destroy(msg);
}

void moat__cluster_on_js(natsConnection *nc, natsSubscription *sub, natsMsg *msg,
		  void *closure)
{
	(void)nc;
	(void)sub;
	receive(closure, msg, MOAT_CLUSTER_PFX_JS, MOAT_MATCH_NO_GROUPS, true);
	natsMsg_Destroy(msg);
}

/* A shared group's consumer: acknowledged (by libnats) once handed to a
 * worker. */
void moat__cluster_on_js_share(natsConnection *nc, natsSubscription *sub,
			natsMsg *msg, void *closure)
{
	(void)nc;
	(void)sub;
	receive(the_cluster, msg, MOAT_CLUSTER_PFX_JS,
		(uint64_t)(uintptr_t)closure, true);
	natsMsg_Destroy(msg);
}

/* JetStream's answer to a publication "NONCE-WORKER-TOKEN". */
static void on_pub_ack(jsCtx *js, natsMsg *msg, jsPubAck *pa,
		       jsPubAckErr *pae, void *closure)
{
	(void)js;
	struct moat_cluster *cl = closure;
	const char *id = NULL;
	unsigned widx;
	uint64_t tok;
	bool ok = pa && !pae;
	/* The message is ours to destroy. */
	if (natsMsgHeader_Get(msg, "Nats-Msg-Id", &id) != NATS_OK || !id ||
	    sscanf(id, "%*16[0-9a-f]-%u-%" SCNu64, &widx, &tok) != 2 ||
	    widx >= cl->b->nworkers) {
		natsMsg_Destroy(msg);
		return;
	}
	if (!ok) {
		atomic_fetch_add(&cl->js_errors, 1);
		moat_debug("cluster: JetStream publish failed (%s): retried",
			   pae && pae->ErrText ? pae->ErrText
					       : natsStatus_GetText(pae ? pae->Err
									: NATS_ERR));
	}
	natsMsg_Destroy(msg);
	struct moat_inbox_item it = {
		.kind = INBOX_CLUSTER_ACK, .qos = ok, .did = tok};
	(void)moat_worker_post(&cl->b->workers[widx], &it);
}

/* ---- connection events ------------------------------------------------------ */

static void on_connected(natsConnection *nc, void *closure)
{
	struct moat_cluster *cl = closure;
	char url[256] = "";
	natsConnection_GetConnectedUrl(nc, url, sizeof(url));
	atomic_store(&cl->connected, true);
	moat_notice("cluster: node %s connected to NATS %s", cl->node_id, url);
	moat__cluster_ctl_wake(cl);
}

static void on_disconnected(natsConnection *nc, void *closure)
{
	(void)nc;
	struct moat_cluster *cl = closure;
	if (atomic_exchange(&cl->connected, false)) {
		atomic_fetch_add(&cl->disconnects, 1);
		if (!atomic_load(&cl->stopping))
			moat_warn("cluster: lost NATS; serving local traffic, "
				  "reconnecting");
	}
}

static void on_reconnected(natsConnection *nc, void *closure)
{
	struct moat_cluster *cl = closure;
	atomic_fetch_add(&cl->reconnects, 1);
	on_connected(nc, closure);
}

static void on_error(natsConnection *nc, natsSubscription *sub,
		     natsStatus err, void *closure)
{
	(void)nc;
	(void)sub;
	struct moat_cluster *cl = closure;
	if (err == NATS_SLOW_CONSUMER)
		atomic_fetch_add(&cl->dropped, 1);
	moat_debug("cluster: NATS: %s", natsStatus_GetText(err));
}

/* ---- lifecycle ------------------------------------------------------------------ */

/* Password file: its first line. */
static int read_password(const char *path, char *out, size_t cap, char *err,
			 size_t errsz)
{
	FILE *f = fopen(path, "re");
	if (!f) {
		snprintf(err, errsz, "cluster_nats_password_file %s: %s", path,
			 strerror(errno));
		return MOAT_EIO;
	}
	bool ok = fgets(out, (int)cap, f) != NULL;
	fclose(f);
	if (!ok) {
		snprintf(err, errsz, "cluster_nats_password_file %s: empty",
			 path);
		return MOAT_EINVAL;
	}
	out[strcspn(out, "\r\n")] = 0;
	return MOAT_OK;
}

static int set_servers(natsOptions *o, const char *urls)
{
	char buf[sizeof(((struct moat_config *)0)->cluster_nats_url)];
	const char *v[32];
	int n = 0;
	snprintf(buf, sizeof(buf), "%s", urls);
	for (char *save, *t = strtok_r(buf, ",", &save); t && n < 32;
	     t = strtok_r(NULL, ",", &save))
		v[n++] = t;
	return natsOptions_SetServers(o, v, n) == NATS_OK ? MOAT_OK
							  : MOAT_EINVAL;
}

static int make_options(struct moat_cluster *cl, char *err, size_t errsz)
{
	const struct moat_config *cfg = &cl->b->cfg;
	natsOptions *o = NULL;
	char name[128], pw[256];
	if (natsOptions_Create(&o) != NATS_OK)
		return MOAT_ENOMEM;
	cl->opts = o;
	snprintf(name, sizeof(name), "moatd %s", cl->node_id);
	bool tls = cfg->cluster_nats_cafile[0] || cfg->cluster_nats_certfile[0];
	natsStatus s = NATS_OK;
	const char *what = "cluster_nats_url";
	if (set_servers(o, cfg->cluster_nats_url) != MOAT_OK)
		s = NATS_INVALID_ARG;
	if (s == NATS_OK) {
		what = "NATS options";
		s = natsOptions_SetName(o, name);
	}
	if (s == NATS_OK)
		s = natsOptions_SetMaxReconnect(o, -1);
	if (s == NATS_OK)
		s = natsOptions_SetReconnectWait(o, 250);
	if (s == NATS_OK)
		s = natsOptions_SetReconnectBufSize(o, 8 * 1024 * 1024);
	if (s == NATS_OK)
		s = natsOptions_SetPingInterval(o, 2000);
	if (s == NATS_OK)
		s = natsOptions_SetRetryOnFailedConnect(o, true, on_connected,
							cl);
	if (s == NATS_OK)
		s = natsOptions_SetDisconnectedCB(o, on_disconnected, cl);
	if (s == NATS_OK)
		s = natsOptions_SetReconnectedCB(o, on_reconnected, cl);
	if (s == NATS_OK)
		s = natsOptions_SetErrorHandler(o, on_error, cl);
	if (s == NATS_OK)
		s = natsOptions_UseGlobalMessageDelivery(o, true);
	if (s == NATS_OK && tls) {
		what = "cluster_nats_cafile";
		s = natsOptions_SetSecure(o, true);
		if (s == NATS_OK && cfg->cluster_nats_cafile[0])
			s = natsOptions_LoadCATrustedCertificates(
				o, cfg->cluster_nats_cafile);
	}
	if (s == NATS_OK && cfg->cluster_nats_certfile[0]) {
		what = "cluster_nats_certfile/keyfile";
		s = natsOptions_LoadCertificatesChain(
			o, cfg->cluster_nats_certfile,
			cfg->cluster_nats_keyfile);
	}
	if (s == NATS_OK && cfg->cluster_nats_creds[0]) {
		what = "cluster_nats_creds";
		s = natsOptions_SetUserCredentialsFromFiles(
			o, cfg->cluster_nats_creds, NULL);
	}
	if (s == NATS_OK && cfg->cluster_nats_user[0]) {
		int rc = MOAT_OK;
		pw[0] = 0;
		if (cfg->cluster_nats_password_file[0] &&
		    (rc = read_password(cfg->cluster_nats_password_file, pw,
					sizeof(pw), err, errsz)))
			return rc;
		what = "cluster_nats_user";
		s = natsOptions_SetUserInfo(o, cfg->cluster_nats_user, pw);
		OPENSSL_cleanse(pw, sizeof(pw));
	}
	if (s != NATS_OK) {
		snprintf(err, errsz, "%s: %s", what, nats_GetLastError(NULL));
		return MOAT_EINVAL;
	}
	return MOAT_OK;
}

static bool node_id_valid(const char *s)
{
	if (!*s)
		return false;
	for (; *s; s++)
		if (!(*s >= 'a' && *s <= 'z') && !(*s >= 'A' && *s <= 'Z') &&
		    !(*s >= '0' && *s <= '9') && *s != '-' && *s != '_')
			return false;
	return true;
}

static void cluster_free(struct moat_cluster *cl)
{
	if (!cl)
		return;
	moat__cluster_ctl_free(cl);
	moat_free(cl);
}

int moat_cluster_new(struct moat_broker *b, char *err, size_t errsz)
{
	const struct moat_config *cfg = &b->cfg;
	if (!cfg->cluster_nats_url[0])
		return MOAT_OK;
	if (the_cluster) {
		snprintf(err, errsz, "cluster: one cluster node per process");
		return MOAT_EINVAL;
	}
	struct moat_cluster *cl = moat_calloc(1, sizeof(*cl));
	if (!cl || moat__cluster_ctl_new(cl) != MOAT_OK) {
		moat_free(cl);
		return MOAT_ENOMEM;
	}
	cl->b = b;
	if (cfg->cluster_node_id[0])
		snprintf(cl->node_id, sizeof(cl->node_id), "%s",
			 cfg->cluster_node_id);
	else if (gethostname(cl->node_id, sizeof(cl->node_id) - 1) != 0)
		cl->node_id[0] = 0;
	if (!node_id_valid(cl->node_id)) {
		snprintf(err, errsz,
			 "cluster_node_id '%s': use letters, digits, '-' and "
			 "'_' (set it when the host name has others)",
			 cl->node_id);
		cluster_free(cl);
		return MOAT_EINVAL;
	}
	if (RAND_bytes((unsigned char *)&cl->nonce, sizeof(cl->nonce)) != 1) {
		snprintf(err, errsz, "cluster: no random bytes");
		cluster_free(cl);
		return MOAT_EIO;
	}
	snprintf(cl->nonce_hex, sizeof(cl->nonce_hex), "%016" PRIx64,
		 cl->nonce);
	if (nats_Open(-1) != NATS_OK ||
	    nats_SetMessageDeliveryPoolSize(1) != NATS_OK) {
		snprintf(err, errsz, "cluster: cannot start libnats");
		cluster_free(cl);
		return MOAT_EIO;
	}
	int rc = make_options(cl, err, errsz);
	if (rc) {
		natsOptions_Destroy(cl->opts);
		cluster_free(cl);
		return rc;
	}
	the_cluster = cl;
	b->cluster = cl;
	b->tree.cluster = cl;
	return MOAT_OK;
}

int moat_cluster_start(struct moat_broker *b)
{
	struct moat_cluster *cl = b->cluster;
	if (!cl)
		return MOAT_OK;
	natsStatus s = natsConnection_Connect(&cl->nc, cl->opts);
	if (s == NATS_OK) {
		on_connected(cl->nc, cl);
	} else if (s == NATS_NOT_YET_CONNECTED) {
		moat_warn("cluster: NATS %s not reachable yet; serving local "
			  "traffic and retrying",
			  b->cfg.cluster_nats_url);
	} else {
		moat_err_log("cluster: NATS: %s", nats_GetLastError(NULL));
		return MOAT_EIO;
	}
	jsOptions jo;
	jsOptions_Init(&jo);
	jo.Wait = 5000;
	jo.PublishAsync.AckHandler = on_pub_ack;
	jo.PublishAsync.AckHandlerClosure = cl;
	/* Never reached: cluster_max_pending bounds the publications. */
	jo.PublishAsync.MaxPending =
		(int64_t)b->cfg.cluster_max_pending + (int64_t)b->nworkers * 16;
	if (natsConnection_JetStream(&cl->js, cl->nc, &jo) != NATS_OK) {
		moat_err_log("cluster: JetStream: %s", nats_GetLastError(NULL));
		return MOAT_EIO;
	}
	if (moat__cluster_ctl_start(cl) != MOAT_OK) {
		moat_err_log("cluster: cannot start the control thread");
		return MOAT_EIO;
	}
	moat_notice("cluster: node %s, NATS %s", cl->node_id,
		    b->cfg.cluster_nats_url);
	return MOAT_OK;
}

void moat_cluster_stop(struct moat_broker *b)
{
	struct moat_cluster *cl = b->cluster;
	if (!cl)
		return;
	atomic_store(&cl->stopping, true);
	moat__cluster_ctl_stop(cl);
	if (cl->nc)
		natsConnection_Close(cl->nc);
	jsCtx_Destroy(cl->js);
	natsConnection_Destroy(cl->nc);
	natsOptions_Destroy(cl->opts);
	/* No callback runs after this. */
	nats_CloseAndWait(5000);
}

void moat_cluster_free(struct moat_broker *b)
{
	struct moat_cluster *cl = b->cluster;
	if (!cl)
		return;
	b->cluster = NULL;
	b->tree.cluster = NULL;
	the_cluster = NULL;
	cluster_free(cl);
}

void moat_cluster_get_stats(const struct moat_broker *b,
			    struct moat_cluster_stats *o)
{
	const struct moat_cluster *cl = b->cluster;
	memset(o, 0, sizeof(*o));
	if (!cl)
		return;
	o->connected = atomic_load(&cl->connected);
	o->stream_ready = atomic_load(&cl->stream_ready);
	o->reconnects = atomic_load(&cl->reconnects);
	o->disconnects = atomic_load(&cl->disconnects);
	for (int i = 0; i < 3; i++)
		o->forwarded[i] = atomic_load(&cl->forwarded[i]);
	o->received = atomic_load(&cl->received);
	o->pending = atomic_load(&cl->pending);
	o->inbound = atomic_load(&cl->inbound);
	o->js_errors = atomic_load(&cl->js_errors);
	o->dropped = atomic_load(&cl->dropped);
	o->refused = atomic_load(&cl->refused);
	o->interest = atomic_load(&cl->interest);
	o->sessions_ended = atomic_load(&cl->sessions_ended);
	o->sessions_moved_in = atomic_load(&cl->sessions_moved_in);
}
