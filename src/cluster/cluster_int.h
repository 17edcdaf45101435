/* Cluster internals shared by the cluster's own files (cluster.c; the
 * retained-message bucket, client-id registry and sessions build on the
 * same NATS connection and JetStream context).  Not for the broker: it
 * uses cluster.h. */
#ifndef MOAT_CLUSTER_INT_H
#define MOAT_CLUSTER_INT_H

#include <pthread.h>
#include <stdatomic.h>

#include <nats/nats.h>

#include "cluster/cluster.h"

/* Subject prefixes (docs/cluster.md): messages of QoS 0 over core NATS,
 * QoS 1/2 in the stream MOAT_CLUSTER_STREAM. */
#define MOAT_CLUSTER_PFX_CORE "moat.m"
#define MOAT_CLUSTER_PFX_JS "moat.q"
#define MOAT_CLUSTER_STREAM "MOAT_MSGS"
/* JetStream's duplicate window: a publication retried within it is
 * stored once (Nats-Msg-Id). */
#define MOAT_CLUSTER_DUP_WINDOW_S 120

struct moat_cluster_ctl; /* the control thread's queue (cluster.c) */

struct moat_cluster {
	struct moat_broker *b;
	char node_id[64];  /* cluster_node_id */
	uint64_t nonce;    /* random per start: this process's messages */
	char nonce_hex[17];
	natsOptions *opts;
	natsConnection *nc; /* NULL until moat_cluster_start */
	jsCtx *js;
	natsSubscription *js_sub; /* the node's consumer of the stream */
	atomic_bool connected;
	atomic_bool stream_ready;
	atomic_bool stopping;
	struct moat_cluster_ctl *ctl;
	/* Counters (moat_cluster_stats). */
	atomic_uint_fast64_t reconnects, disconnects, forwarded[3], received,
		pending, inbound, js_errors, dropped, refused, interest,
		sessions_ended, sessions_moved_in;
	atomic_uint_fast64_t inbound_bytes; /* of the inbound messages */
};

/* The broker's cluster (the NATS connection is process-wide: one per
 * process), or NULL when off. */
struct moat_cluster *moat__cluster_of(const struct moat_broker *b);

/* The envelope between nodes (cluster_env.c): its size for m, and m
 * encoded into out (that many bytes) with this process's nonce. */
size_t moat__cluster_env_size(const struct moat_msg *m);
size_t moat__cluster_env_encode(const struct moat_msg *m, uint64_t nonce,
				bool groups_done, uint64_t now_ms, uint8_t *out);
/* A message received from NATS: *out is a new remote message on topic
 * (validated by the caller), *nonce its sender's, *groups_done whether
 * its node served the shared groups.  MOAT_EMALFORMED or MOAT_ENOMEM. */
int moat__cluster_env_decode(const uint8_t *d, size_t len,
			     const uint8_t *topic, size_t tlen,
			     uint64_t *nonce, bool *groups_done,
			     struct moat_msg **out);

/* FNV-1a, for hashing topics and keys. */
#define MOAT_CLUSTER_FNV0 1469598103934665603ull
static inline uint64_t moat__cluster_fnv(const void *p, size_t n, uint64_t h)
{
	const uint8_t *s = p;
	for (size_t i = 0; i < n; i++) {
		h ^= s[i];
		h *= 1099511628211ull;
	}
	return h;
}

/* libnats's message callbacks (cluster.c): core subscriptions (closure:
 * the shared group, or 0 for the node's own filters), the node's stream
 * consumer (closure: the cluster) and a shared group's (the group). */
void moat__cluster_on_core(natsConnection *nc, natsSubscription *sub,
			   natsMsg *msg, void *closure);
void moat__cluster_on_js(natsConnection *nc, natsSubscription *sub,
			 natsMsg *msg, void *closure);
void moat__cluster_on_js_share(natsConnection *nc, natsSubscription *sub,
			       natsMsg *msg, void *closure);

/* The control thread (cluster_ctl.c): made with the cluster, started
 * once connecting began, woken when there is news (connected), stopped
 * (joined; every subscription and consumer of this node gone) before the
 * NATS connection closes, freed last. */
int moat__cluster_ctl_new(struct moat_cluster *cl);
int moat__cluster_ctl_start(struct moat_cluster *cl);
void moat__cluster_ctl_wake(struct moat_cluster *cl);
void moat__cluster_ctl_stop(struct moat_cluster *cl);
void moat__cluster_ctl_free(struct moat_cluster *cl);

#endif
