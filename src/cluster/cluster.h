/* moatd cluster mode over NATS JetStream (docs/cluster.md): what the
 * broker calls.  Compiled in always; with cluster_nats_url unset
 * b->cluster is NULL and every hook is a NULL test.
 *
 * Threads: libnats runs its own threads (socket reader, message
 * delivery, timers).  Nothing here touches a worker's state from them:
 * inbound messages and JetStream acknowledgements are posted to the
 * workers' inboxes (INBOX_CLUSTER_MSG, INBOX_CLUSTER_ACK) and handled by
 * the worker (moat__cluster_inbox).  Subscription changes are queued to
 * the cluster's own control thread, which makes the NATS calls (some of
 * them wait for the server).
 *
 * Lifecycle (main thread): moat_cluster_new after the tree is made and
 * before the store restores subscriptions (they become interest);
 * moat_cluster_start before the workers run (they only read what it set
 * up; messages that come meanwhile wait in their inboxes);
 * moat_cluster_stop after the workers were joined (no callback runs after
 * it returns). */
#ifndef MOAT_CLUSTER_H
#define MOAT_CLUSTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct moat_broker;
struct moat_worker;
struct moat_conn;
struct moat_msg;
struct moat_inbox_item;
struct moat_cluster;
struct moat_cluster_w;

/* ---- lifecycle (main thread) -------------------------------------------- */
/* Cluster mode on when cfg->cluster_nats_url is set: b->cluster and
 * b->tree.cluster are set (nothing connects yet).  MOAT_OK (also when
 * off), or an error with err filled. */
int moat_cluster_new(struct moat_broker *b, char *err, size_t errsz);
/* Connect (in the background: an unreachable NATS does not stop moatd),
 * make the stream, subscribe.  MOAT_OK when off. */
int moat_cluster_start(struct moat_broker *b);
/* Close the NATS connection and wait for libnats's threads (after the
 * workers were joined: no callback runs after it returns). */
void moat_cluster_stop(struct moat_broker *b);
/* Free what is left (after the workers' teardown). */
void moat_cluster_free(struct moat_broker *b);

/* ---- hooks (worker threads) ----------------------------------------------- */
/* A message accepted on this node (MQTT PUBLISH, CoAP, will) is being
 * routed: forward it.  QoS 0 goes over core NATS; QoS 1/2 into the
 * stream, and w->cluster_tok is set to the publication's token until
 * JetStream acknowledges it (0: nothing to wait for).  Only called for
 * local messages (m->remote false); $SYS stays local.  Returns true when
 * m's shared-subscription groups are served through NATS (balanced over
 * the nodes), so that routing here must skip them; false when this node
 * serves them itself (no NATS now), which it tells the others. */
bool moat__cluster_publish(struct moat_worker *w, struct moat_msg *m);
/* w->cluster_tok after a QoS 1/2 message could not be kept for
 * JetStream (out of memory): it must not be acknowledged. */
#define MOAT_CLUSTER_TOK_LOST UINT64_MAX
/* May a QoS 1/2 message be accepted now?  False when this worker's
 * publications waiting for JetStream reached their bound
 * (cluster_max_pending / workers): the PUBLISH is refused. */
bool moat__cluster_may_accept(struct moat_worker *w);
/* The acknowledgement (PUBACK/PUBREC, packet id) of the message whose
 * publication is tok waits for JetStream; gate: it must also wait for
 * the store (persistence_sync).  MOAT_OK, or MOAT_ENOMEM. */
int moat__cluster_defer_ack(struct moat_conn *c, uint64_t tok, uint8_t type,
			    uint16_t id, bool gate);
/* Must an acknowledgement of c go behind deferred ones (order)?  Then it
 * is queued (MOAT_OK, *queued true). */
int moat__cluster_queue_ack(struct moat_conn *c, uint8_t type, uint16_t id,
			    uint8_t reason, bool *queued);
/* c is freed: its deferred acknowledgements go. */
void moat__cluster_conn_free(struct moat_conn *c);
/* An INBOX_CLUSTER_* item (the worker's drain_inbox). */
void moat__cluster_inbox(struct moat_worker *w, struct moat_inbox_item *it);
/* The worker's tick: publications JetStream refused or did not answer
 * are sent again. */
void moat__cluster_tick(struct moat_worker *w, uint64_t now);
/* Teardown (workers joined): drop w's pending publications. */
void moat__cluster_worker_free(struct moat_worker *w);

/* ---- interest (any thread holding the tree's write lock) ------------------
 * The tree calls these when a filter gets its first subscriber or loses
 * its last (share NULL), and when a shared group (share, slen) on a
 * filter is made or removed (group: its id in the tree).  The change is
 * queued to the control thread: the union of the node's filters is its
 * NATS interest, counted by the tree itself. */
void moat__cluster_interest(struct moat_cluster *cl, const uint8_t *filter,
			    size_t flen, const uint8_t *share, size_t slen,
			    uint64_t group, bool add);

/* ---- state, for $SYS and /metrics (any thread) --------------------------- */
struct moat_cluster_stats {
	bool connected;        /* to a NATS server now */
	bool stream_ready;     /* the stream exists and is consumed */
	uint64_t reconnects;   /* NATS reconnections */
	uint64_t disconnects;
	uint64_t forwarded[3]; /* messages sent to NATS by QoS */
	uint64_t received;     /* messages from other nodes routed here */
	uint64_t pending;      /* QoS 1/2 publications awaiting JetStream */
	uint64_t inbound;      /* received, not yet routed by a worker */
	uint64_t js_errors;    /* JetStream publish failures (retried) */
	uint64_t dropped;      /* QoS 0 not forwarded / not delivered */
	uint64_t refused;      /* QoS 1/2 refused: pending bound reached */
	uint64_t interest;     /* NATS subscriptions for local filters */
	/* sessions ended here: their client id connected at another node */
	uint64_t sessions_ended;
	uint64_t sessions_moved_in; /* session states received */
};
void moat_cluster_get_stats(const struct moat_broker *b,
			    struct moat_cluster_stats *out);

#endif
