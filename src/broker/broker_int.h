/* moatd internals.  See docs/architecture.md for the threading model.
 *
 * Ownership in one paragraph: a worker thread owns its connections and the
 * sessions whose client id hashes to it (a session's "home"), and is the
 * only thread that touches their fields.  Other threads reach a session only
 * through (a) the subscription tree, which holds a counted reference and is
 * guarded by the tree's rwlock, and (b) the home worker's inbox.  Messages
 * are immutable once built and shared by atomic reference counts. */
#ifndef MOAT_BROKER_INT_H
#define MOAT_BROKER_INT_H

#include <pthread.h>
#include <stddef.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include <netinet/in.h>
#include <openssl/ssl.h>

#include "broker.h"
#include "broker/guard.h"
#include "codec/mqtt_codec.h"
#include "common/moat_common.h"
#include "common/moat_histo.h"
#include "net/net.h"
#include "cluster/cluster.h"

struct moat_pwfile;
struct moat_pskfile;
struct moat_acl;
struct moat_leak_db;
struct moat_leak_scratch;

struct moat_worker;
struct moat_session;

/* ---- messages (msg.c) ---------------------------------------------------
 * Immutable after moat_msg_new; topic and payload live in the same block. */
struct moat_msg {
	atomic_uint refs;
	uint8_t qos;    /* QoS it was published with */
	bool retain;    /* retain flag as published */
	uint16_t topic_len;
	uint32_t payload_len;
	uint32_t props_len;     /* MQTT 5 properties forwarded as they came */
	uint64_t expiry_ms;     /* monotonic deadline; 0 = never expires */
	/* A will's Message Expiry Interval counts from its publication
	 * [§3.1.3.2.4]: kept here until moat_msg_start_expiry. */
	bool expiry_pending;
	uint32_t expiry_s;
	uint64_t origin;        /* publishing session's serial; 0 = broker */
	/* From another cluster node: routed here only, never forwarded. */
	bool remote;
	/* Who published it, for wills and retained messages: their rights
	 * are checked again when the will fires or the retained message is
	 * sent to a new subscriber (T-06, T-07).  src_user NULL = anonymous;
	 * both point into this block. */
	bool has_src;
	const char *src_user;
	const char *src_cid;
	/* Identity in the persistent store (0 = not stored); set by its
	 * creator before the message is shared. */
	uint64_t store_id;
	const uint8_t *payload; /* points after topic */
	const uint8_t *props;   /* wire-encoded, without length */
	char topic[];           /* NUL-terminated */
};

/* What moat_msg_new5 takes beyond a 3.1.1 message. */
struct moat_msg_extra {
	const uint8_t *props; /* forwarded properties, wire-encoded */
	size_t props_len;
	bool has_expiry;
	bool expiry_on_publish; /* a will: start counting when published */
	uint32_t expiry_s; /* Message Expiry Interval */
	uint64_t origin;
	bool has_src; /* record the publisher (src_user may be NULL) */
	const char *src_user;
	const char *src_cid;
};

/* New message with one reference (caller's); NULL on OOM. */
struct moat_msg *moat_msg_new(const uint8_t *topic, size_t topic_len,
			      const uint8_t *payload, size_t payload_len,
			      uint8_t qos, bool retain);
struct moat_msg *moat_msg_new5(const uint8_t *topic, size_t topic_len,
			       const uint8_t *payload, size_t payload_len,
			       uint8_t qos, bool retain,
			       const struct moat_msg_extra *x);
/* Bytes a message holds: topic, payload and properties (what the byte
 * limits count, so that properties cannot be used to get around them). */
static inline size_t moat_msg_size(const struct moat_msg *m)
{
	return (size_t)m->topic_len + m->payload_len + m->props_len;
}

/* The Message Expiry Interval to send at now [MQTT-3.3.2-6]: the seconds
 * left, rounded up, never above what the publisher gave (now may be a
 * worker's cached clock, a little behind the one that stamped m). */
static inline uint32_t moat_msg_expiry_left(const struct moat_msg *m,
					    uint64_t now)
{
	uint64_t left = m->expiry_ms > now ? m->expiry_ms - now : 0;
	uint64_t s = (left + 999u) / 1000u;
	return (uint32_t)(s < m->expiry_s || !m->expiry_s ? s : m->expiry_s);
}

/* Has the message expired at now_ms?  */
static inline bool moat_msg_expired(const struct moat_msg *m, uint64_t now)
{
	return m->expiry_ms && now >= m->expiry_ms;
}
struct moat_msg *moat_msg_ref(struct moat_msg *m);
/* Start a pending expiry now (a will being published; the caller holds
 * the only reference, so the message may still be changed). */
void moat_msg_start_expiry(struct moat_msg *m);
/* Drop a reference; frees on the last one and NULLs *m. */
void moat_msg_unref(struct moat_msg **m);

/* ---- topic tree (sub_tree.c): subscriptions and retained messages -------
 * One tree of topic levels, guarded by one rwlock.  Subscription filters
 * hang subscribers on their node ('+' and '#' are separate child links);
 * retained messages hang on the node of their topic name. */
struct moat_subscriber {
	struct moat_session *session; /* counted reference */
	uint8_t qos;
};

struct moat_tnode;
struct moat_share; /* a shared-subscription group on a filter's node */

struct moat_tree {
	pthread_rwlock_t lock;
	struct moat_tnode *root;
	size_t nsubs;     /* subscriptions in the tree */
	size_t nretained; /* retained messages in the tree */
	size_t nretained_user; /* of those, not $SYS (the limited ones) */
	size_t retained_bytes; /* payload bytes of those */
	size_t max_retained, max_retained_bytes; /* 0 = no limit */
	uint64_t share_seq; /* shared groups' ids (0 = not shared) */
	uint64_t retain_seq; /* order of retained changes (persistence) */
	bool retain_full_logged;
	/* Retained messages with a Message Expiry, soonest first (sub_tree.c),
	 * and the soonest deadline (UINT64_MAX: none), read without the lock. */
	struct moat_tnode **xheap;
	size_t nx, xcap;
	_Atomic uint64_t next_retained_expiry;
	/* Cluster mode: told when a filter's interest starts or ends. */
	struct moat_cluster *cluster;
};

/* One match result: a session reference (caller unrefs), the QoS, and the
 * id of the shared-subscription group it was chosen from (0 for a normal
 * subscription; ids are never reused, so they can outlive the group). */
struct moat_match {
	struct moat_session *session;
	uint64_t share;
	uint8_t qos;
};

/* A growable array of matches, owned by a worker and reused. */
struct moat_matches {
	struct moat_match *v;
	size_t n, cap;
	/* Which subscriptions a match looks at (cluster mode): 0 all,
	 * MOAT_MATCH_NO_GROUPS the normal ones only, else the shared group
	 * with this id only.  Set by the caller before matching. */
	uint64_t only;
};
#define MOAT_MATCH_NO_GROUPS UINT64_MAX

int moat_tree_init(struct moat_tree *t);
void moat_tree_cleanup(struct moat_tree *t);
/* Add or replace (same session) a subscription; share names a shared
 * subscription group ($share/NAME/filter), or is NULL.  Takes the write
 * lock.  *added is true when it is new (the tree then holds a new session
 * ref); *group receives the group's identity for shared ones. */
int moat_tree_subscribe(struct moat_tree *t, const uint8_t *filter,
			size_t flen, const struct moat_bytes *share,
			struct moat_session *s, uint8_t qos, bool *added,
			uint64_t *group);
/* Remove; MOAT_ENOTFOUND when the session had no such subscription. */
int moat_tree_unsubscribe(struct moat_tree *t, const uint8_t *filter,
			  size_t flen, const struct moat_bytes *share,
			  struct moat_session *s);
/* Append every subscription matching topic to out (each session ref'd):
 * at most one per session for normal subscriptions, with the highest QoS
 * [MQTT-3.3.5-1], plus one member of each matching shared group, chosen
 * round-robin. */
int moat_tree_match(struct moat_tree *t, const uint8_t *topic, size_t tlen,
		    struct moat_matches *out);
/* Store (payload non-empty) or delete (empty payload) a retained message
 * [MQTT-3.3.1-5] [MQTT-3.3.1-10] [MQTT-3.3.1-11].  MOAT_ELIMIT when a new
 * topic would exceed max_retained / max_retained_bytes.  *seq (may be
 * NULL) gets the change's place in the order of all retained changes, so
 * that the store keeps the newest whichever worker records it last. */
int moat_tree_retain(struct moat_tree *t, struct moat_msg *m, uint64_t *seq);
/* Another member of shared group g (matching topic), not exclude: a
 * session reference and its QoS, or NULL when there is none. */
struct moat_session *moat_tree_share_pick(struct moat_tree *t,
					  const uint8_t *topic, size_t tlen,
					  uint64_t g,
					  const struct moat_session *exclude,
					  uint8_t *qos);
/* Collect references to at most max retained messages matching filter;
 * caller unrefs each and frees *out with moat_free. */
int moat_tree_retained(struct moat_tree *t, const uint8_t *filter,
		       size_t flen, size_t max, struct moat_msg ***out,
		       size_t *n);
/* The same for every retained message, topics starting with '$'
 * included (the leak sweep at start). */
int moat_tree_retained_all(struct moat_tree *t, size_t max,
			   struct moat_msg ***out, size_t *n);
/* Remove retained messages whose Message Expiry has passed at now (a few
 * dozen per call; cheap when none is due).  Returns how many.  The store
 * drops them when it loads them next. */
size_t moat_tree_expire_retained(struct moat_tree *t, uint64_t now);

/* ---- sessions (session.c) ----------------------------------------------- */
enum moat_inflight_state {
	INFLIGHT_WAIT_ACK,  /* PUBLISH sent, waiting for PUBACK or PUBREC */
	INFLIGHT_WAIT_COMP, /* PUBREL sent, waiting for PUBCOMP */
};

struct moat_inflight {
	struct moat_msg *msg;
	uint64_t share; /* shared group it came through */
	uint64_t issue; /* session's id_issue when its packet id was taken */
	uint16_t packet_id;
	uint8_t qos;
	uint8_t state;
	bool retain; /* retain flag for this delivery */
	bool sent;   /* sent (or re-sent) on the current connection */
	uint64_t did; /* its row in the persistent store, 0 = none */
	uint64_t mid; /* the message's store id (msg is gone after PUBREC) */
};

struct moat_qitem {
	struct moat_msg *msg;
	uint64_t share;
	uint64_t did; /* its row in the persistent store, 0 = none */
	uint8_t qos;
	bool retain;
};

/* A session queue's deadlines: a min-heap by at_ms (session_queue.c). */
struct moat_qexp_entry {
	uint64_t at_ms; /* moat_msg.expiry_ms */
	uint64_t seq;	/* the sequence number of its slot */
};

struct moat_qexp {
	uint64_t seq;  /* the number of the queue's head slot */
	uint32_t n, cap;
	uint32_t live; /* entries whose message is still queued */
	struct moat_qexp_entry e[];
};

struct moat_sub_entry {
	char *filter; /* without any $share/NAME/ prefix */
	uint16_t len;
	uint8_t qos;
	bool no_local;            /* MQTT 5 subscription options */
	bool retain_as_published;
	uint32_t sub_id;          /* Subscription Identifier, 0 = none */
	char *share;              /* shared group name, NULL if not shared */
	uint16_t share_len;
	uint64_t group;
};

#define MOAT_EXPIRY_NEVER UINT32_MAX

struct moat_session {
	atomic_uint refs;
	/* Session Expiry Interval in seconds: 0 ends the session with its
	 * connection (3.1.1 clean session), MOAT_EXPIRY_NEVER keeps it. */
	uint32_t expiry_s;
	struct moat_worker *home; /* fixed: chosen by client id hash */
	uint64_t serial;          /* unique per session (No Local) */
	struct moat_msg *will; /* delayed will waiting for will_at_ms */
	uint64_t will_at_ms;
	char *client_id; /* in the same block as the session */
	size_t client_id_len;
	/* Who owns it: the verified user name that created it (NULL =
	 * anonymous).  Only the same identity may resume or take it over. */
	char *owner;
	struct moat_conn *conn; /* NULL while offline */
	struct moat_session *hnext; /* home worker's hash chain */

	struct moat_sub_entry *subs; /* this session's subscriptions */
	uint32_t nsubs, subs_cap;

	/* Outgoing QoS 1/2 window: a ring in send order (acks normally
	 * come in that order, so the head goes first), allocated when the
	 * first entry comes and grown up to max_inflight_messages; an
	 * empty one is freed by the worker's tick. */
	struct moat_inflight *inflight;
	uint32_t ihead, ninflight, icap;
	uint32_t nsent; /* of those, sent on the current connection */
	/* Packet ids taken so far: an entry taken fewer than 65535 ids ago
	 * cannot hold the next id, so next_id searches the window only
	 * when the head is that old. */
	uint64_t id_issue;

	/* Messages waiting for the window (session_queue.c): a ring of
	 * qcap slots, qused of them from qhead in use, qlen of those holding
	 * a message (the others are holes left by expired ones); qexp: the
	 * deadlines of those that can expire (NULL when none). */
	struct moat_qitem *queue;
	uint32_t qhead, qused, qlen, qcap;
	struct moat_qexp *qexp;
	size_t queued_bytes;
	uint64_t dropped;     /* messages dropped for limits */

	/* QoS 2 packet ids awaiting PUBREL: up to 8 in qos2_small, more in
	 * the bitmap qos2_in (then all of them are there). */
	uint8_t *qos2_in;
	uint16_t qos2_small[8];
	uint32_t qos2_pending; /* how many are pending */
	uint64_t offline_since_ms; /* for persistent_client_expiration */
	uint16_t next_packet_id;
	bool dead;            /* destroyed; deliveries are dropped */
	bool has_sub_options; /* some subscription uses NL/RAP/an id */
	/* Check every outgoing message against the ACL (some subscription
	 * is not fully readable, or the ACL was reloaded). */
	bool acl_each;
	bool drop_logged;
	atomic_bool online;     /* conn != NULL, readable by other threads */
	/* Kept in the persistent store (persistence on and expiry_s > 0);
	 * readable by other workers, which record deliveries to it. */
	atomic_bool stored;
	/* A CoAP peer's observations (coap_int.h): deliveries go to
	 * moat__coap_deliver, not to a connection.  NULL for MQTT. */
	struct moat_coap_peer *coap;
};

/* Hand m to the CoAP observer session s (coap_ps.c). */
void moat__coap_deliver(struct moat_session *s, struct moat_msg *m);

/* The queue (session_queue.c).  Append a message (MOAT_OK, or
 * MOAT_ENOMEM); the limits are the caller's. */
int moat__squeue_push(struct moat_session *s, struct moat_msg *m, uint8_t qos,
		      bool retain, uint64_t share, uint64_t did);
/* The first message waiting, NULL when none. */
const struct moat_qitem *moat__squeue_head(struct moat_session *s);
/* Take the first message out (the caller owns its reference); false when
 * the queue is empty. */
bool moat__squeue_pop(struct moat_session *s, struct moat_qitem *out);
/* Drop the messages expired by now (and their stored deliveries);
 * O(log n) per message dropped.  Returns how many. */
size_t moat__squeue_purge(struct moat_session *s, uint64_t now);
/* Forget the slots of an empty queue. */
void moat__squeue_reset(struct moat_session *s);
/* Free the memory of an empty queue. */
void moat__squeue_free(struct moat_session *s);

/* A new session owned by owner (a verified user name, NULL = anonymous),
 * with the worker table's reference; NULL when out of memory. */
/* Are messages waiting for the session's in-flight window (and nothing
 * else)? */
bool moat_session_window_starved(const struct moat_session *s);
struct moat_session *moat_session_new(struct moat_worker *w,
				      const uint8_t *client_id, size_t len,
				      uint32_t expiry_s, const char *owner);
/* The client id escaped for logs, in buf (MOAT_LOG_ID_LEN bytes). */
#define MOAT_LOG_ID_LEN 72
const char *moat_session_log_id(const struct moat_session *s, char *buf);
/* Free a new session that was never added to its worker's table. */
void moat_session_discard(struct moat_session *s);
void moat_session_ref(struct moat_session *s);
void moat_session_unref(struct moat_session **s);
/* End a session: drop subscriptions, queues and in-flight state, remove it
 * from its worker's table, and release the table's reference. */
void moat_session_destroy(struct moat_session *s);
/* Hand m to another member of shared group g than from. */
void moat__share_redeliver(struct moat_session *from, struct moat_msg *m,
			   uint64_t g);
/* Deliver m at qos (already min(sub, msg)) with the given retain flag:
 * send now, queue, or drop by the limits.  Home worker only. */
void moat_session_deliver(struct moat_session *s, struct moat_msg *m,
			  uint8_t qos, bool retain);
/* A live delivery routed by the tree (qos = the tree's granted QoS, share
 * = the shared group or NULL): applies the session's subscription options
 * (No Local, Retain As Published) and the message expiry, then delivers. */
void moat_session_route(struct moat_session *s, struct moat_msg *m,
			uint8_t qos, uint64_t share, uint64_t did);
/* Subscription Identifiers of the subscriptions this copy of m is for
 * (the normal ones, or those of shared group share), written as
 * properties into w [MQTT-3.3.4-3] [MQTT-3.3.4-5]. */
struct moat_pw;
void moat_session_sub_ids(const struct moat_session *s,
			  const struct moat_msg *m,
			  uint64_t share, struct moat_pw *w);
/* Publish the delayed will now (session ending, or its time came). */
void moat_session_fire_will(struct moat_session *s);
/* Free the in-flight window's and the queue's memory when they are empty
 * (idle sessions). */
void moat_session_trim(struct moat_session *s);
/* Send what the queue and window allow (after acks and drained writes). */
void moat_session_pump(struct moat_session *s);
/* On resume: resend unacknowledged PUBLISH (DUP) and PUBREL, then pump. */
void moat_session_resume(struct moat_session *s);
/* Outgoing acks from the client.  MOAT_EPROTO for an unknown id in a
 * state where that is a violation. */
int moat_session_on_puback(struct moat_session *s, uint16_t id);
int moat_session_on_pubrec(struct moat_session *s, uint16_t id);
int moat_session_on_pubcomp(struct moat_session *s, uint16_t id);
/* MQTT 5 PUBREC with an error reason: the exchange ends there. */
int moat_session_on_pubrec_failed(struct moat_session *s, uint16_t id);
/* Restore (store_load.c, before the workers run): a stored delivery into
 * the in-flight window (packet_id != 0) or the queue; a subscription. */
int moat__session_restore_delivery(struct moat_session *s, struct moat_msg *m,
				   uint8_t qos, bool retain, uint64_t share,
				   uint64_t did, uint16_t packet_id,
				   uint8_t state);
int moat__session_restore_sub(struct moat_session *s, const char *filter,
			      size_t flen, const char *share, size_t slen,
			      uint8_t qos, uint8_t options, uint32_t sub_id);
/* Incoming QoS 2 id bookkeeping. */
bool moat_session_qos2_test(struct moat_session *s, uint16_t id);
int moat_session_qos2_set(struct moat_session *s, uint16_t id);
void moat_session_qos2_clear(struct moat_session *s, uint16_t id);

/* ---- connections (conn.c) ----------------------------------------------- */
enum moat_conn_state {
	CONN_NEW,       /* waiting for CONNECT */
	CONN_ACTIVE,    /* CONNECT accepted */
	CONN_CLOSED,    /* closed, freed at the end of the loop turn */
};

/* First member of everything registered in a worker's epoll set, so an
 * event's data.ptr tells what it is. */
enum moat_ev_kind {
	EV_CONN = 1,
	EV_LISTENER = 2,
	EV_INBOX = 3,
	EV_LINGER = 4,
	EV_COAP = 5, /* a CoAP listener's UDP socket (coap_int.h) */
};

/* Where a CONNECT is in its password check (authq.c). */
enum moat_auth_phase {
	AUTH_NONE = 0,
	AUTH_VERIFYING, /* queued to the auth threads; c must not be freed */
	AUTH_DONE,      /* verdict in auth_ok, CONNECT to be run again */
};

/* A peer's address as accepted. */
union moat_sockaddr {
	struct sockaddr sa;
	struct sockaddr_in v4;
	struct sockaddr_in6 v6;
};

/* Persistence: output past gate[0].off (in bytes ever queued) waits
 * until the worker's store batch gate[0].seq is durable (store.c).  Only
 * connections of a broker with persistence have one. */
struct moat_gates {
	struct {
		uint64_t off, seq;
	} gate[4];
	uint8_t n;
	bool listed; /* on the worker's list of gated connections */
	struct moat_conn *next, *prev;
};

struct moat_conn {
	uint8_t ev_kind; /* EV_CONN; must stay first */
	uint8_t auth_phase;        /* enum moat_auth_phase */
	uint8_t proto_level;
	int fd;
	struct moat_worker *w;
	/* The peer: formatted on demand by moat_conn_peer, moat_conn_ip. */
	union moat_sockaddr addr;
	enum moat_conn_state state;
	size_t listener; /* index into the broker's listeners */
	/* The transport stack's top layer (tcp, or tls, ws over it); NULL
	 * once closed.  The bottom layer lives here. */
	struct moat_net *net;
	struct moat_net_tcp tcp;
	uint64_t auth_wait_until;  /* parked by login back-off until then */
	double pub_tokens;         /* max_publish_rate bucket */
	uint64_t pub_refill_ms;
	const char *connect_id;    /* client id while CONNECT is handled */
	struct moat_buf in;
	struct moat_buf out;
	uint64_t created_ms;
	uint64_t last_rx_ms;
	uint64_t last_tx_ms; /* last time the peer took bytes (or none were
			      * waiting) */
	uint64_t last_acked;  /* bytes the peer had acknowledged at the last
			       * tick (write-stall detection) */
	struct moat_msg *will;
	uint32_t will_delay_s; /* MQTT 5 Will Delay Interval */
	uint32_t sec_events;       /* security log lines from this connection */
	/* MQTT 5 state of this connection */
	uint32_t client_max_packet;  /* its Maximum Packet Size, 0 = none */
	uint16_t client_receive_max; /* its Receive Maximum (65535 in v3) */
	uint16_t client_alias_max;   /* its Topic Alias Maximum */
	char **alias_in;   /* [1..topic_alias_maximum] topics it set */
	char **alias_out;  /* [1..n_alias_out] topics we assigned */
	uint16_t n_alias_out;
	uint16_t keepalive; /* seconds; 0 = none */
	bool ip_counted;           /* counted in the broker's iptab */
	bool user_counted;         /* counted in the broker's usertab */
	bool authenticated;        /* username is verified (else anonymous) */
	bool auth_by_cert;         /* ... by its client certificate */
	bool auth_ok;              /* the auth thread's verdict (AUTH_DONE) */
	bool epollout;    /* EPOLLOUT armed */
	bool reading;     /* EPOLLIN armed (off under back-pressure) */
	bool dirty;       /* on the worker's flush list */
	bool starved;     /* on the worker's starved list (worker.c) */
	bool will_discard; /* DISCONNECT received */
	bool problem_info;          /* client wants reason strings */
	struct moat_session *session;
	char *username; /* verified user name, NULL = anonymous */
	/* A bridge's connection to its remote broker (bridge.c): we are the
	 * client; NULL for clients that connected to us. */
	struct moat_bridge *bridge;
	bool peer_bridge; /* the client is a bridge (try_private bit) */
	struct moat_conn *next, *prev; /* worker's list */
	struct moat_conn *dirty_next;
	uint64_t out_done; /* bytes consumed from out so far */
	struct moat_gates *gates; /* NULL without persistence */
	/* Cluster: acknowledgements waiting for JetStream (cluster.c). */
	struct moat_cluster_acks *cacks;
};

/* Bytes read from a socket at once. */
#define MOAT_READ_CHUNK ((size_t)65536)

struct moat_conn *moat_conn_new(struct moat_worker *w, int fd,
				const union moat_sockaddr *addr);
/* An address as "addr:port" (peer, for logs) and "addr" (ip, for the
 * per-address tables), each MOAT_PEER_STRLEN bytes; true for loopback. */
#define MOAT_PEER_STRLEN 64
/* Window-starved subscribers a worker reads between events, and after
 * how many events or messages routed (worker.c). */
#define MOAT_STARVED_MAX 8
#define MOAT_STARVED_EVERY 32
bool moat__format_addr(const union moat_sockaddr *a, char *peer, char *ip);
/* c's peer "addr:port" / "addr", formatted into buf (MOAT_PEER_STRLEN). */
const char *moat_conn_peer(const struct moat_conn *c, char *buf);
const char *moat_conn_ip(const struct moat_conn *c, char *buf);
/* " (X-Forwarded-For ADDR)" when c came through a trusted proxy
 * (websockets_trusted_proxy) that said so, else ""; buf has
 * MOAT_FWD_STRLEN bytes. */
#define MOAT_FWD_STRLEN 80
const char *moat_conn_forwarded(const struct moat_conn *c, char *buf);
/* " over TLS", " over WebSocket", " over WebSocket/TLS" or "" (for logs). */
const char *moat_conn_transport(const struct moat_conn *c);
/* Attach to w's epoll and list (new or handed-over connection). */
int moat_conn_attach(struct moat_worker *w, struct moat_conn *c);
/* Remove from its worker's epoll and list without closing (hand-over). */
void moat_conn_detach(struct moat_conn *c);
/* Close: publish the will unless discarded, detach the session, end a
 * clean session.  Memory is released later by the worker. */
void moat_conn_close(struct moat_conn *c, const char *why);
/* Server-initiated close: to an MQTT 5 client, first a DISCONNECT with
 * the reason code (and the reason string if it asked for them). */
void moat_conn_disconnect(struct moat_conn *c, uint8_t reason,
			  const char *why);
void moat_conn_free(struct moat_conn *c);

/* Lingering close (linger.c): takes the transport stack net (whose
 * bottom layer *tcp is moved into the linger; the per-address count when
 * ip_counted, and one from the connection count) and ends it after
 * writing rest through it, the layers' shutdown, a FIN, and a bounded
 * wait for the peer's.  false when it cannot (limits): the caller closes
 * as before. */
struct moat_linger;
bool moat__linger_start(struct moat_worker *w, struct moat_net *net,
			struct moat_net_tcp *tcp,
			const union moat_sockaddr *addr, bool ip_counted,
			const uint8_t *rest, size_t restlen);
void moat__linger_event(struct moat_linger *l, uint32_t events);
void moat__linger_tick(struct moat_worker *w, uint64_t now);
void moat__linger_teardown(struct moat_worker *w);
void moat_conn_on_readable(struct moat_conn *c);
void moat_conn_on_writable(struct moat_conn *c);
/* Queue bytes for sending.  MOAT_ELIMIT when the output buffer is at its
 * hard limit (the caller closes the connection). */
int moat_conn_send(struct moat_conn *c, const uint8_t *p, size_t n);
/* Reserve n bytes in the output buffer; commit with moat_conn_commit. */
uint8_t *moat_conn_reserve(struct moat_conn *c, size_t n);
void moat_conn_commit(struct moat_conn *c, size_t n);
/* Can more messages go to the output buffer (below the soft limit)? */
bool moat_conn_can_send(const struct moat_conn *c);
/* Write out a PUBLISH for m (v5: with properties, topic alias and
 * subscription ids).  MOAT_DECLINED when it exceeds the client's Maximum
 * Packet Size (the caller drops it [MQTT-3.1.2-25]). */
int moat_conn_send_publish(struct moat_conn *c, const struct moat_msg *m,
			   uint8_t qos, bool retain, bool dup, uint16_t id,
			   uint64_t share);
/* Free what an idle connection does not need: an empty output buffer,
 * an empty in-flight window (the worker's tick). */
void moat_conn_trim(struct moat_conn *c);
/* Process every complete packet in the input buffer.  False when c is
 * closed or was handed over to another worker (touch it no more). */
bool moat_conn_process_input(struct moat_conn *c);
/* Start reading again (after a hand-over or login back-off) and process
 * what is already buffered. */
void moat_conn_resume_input(struct moat_conn *c);
void moat_conn_flush(struct moat_conn *c);

/* Packet handlers (handle_*.c).  Return MOAT_OK, or an error after which
 * the caller closes the connection, or MOAT_CONN_HANDED_OVER when the
 * connection now belongs to another worker (touch it no more). */
#define MOAT_CONN_HANDED_OVER MOAT_DECLINED
int moat__handle_connect(struct moat_conn *c, const uint8_t *body,
			 size_t len);
int moat__handle_publish(struct moat_conn *c, uint8_t flags,
			 const uint8_t *body, size_t len);
int moat__handle_pubrel(struct moat_conn *c, const uint8_t *body, size_t len);
/* Send PUBACK, PUBREC, PUBREL or PUBCOMP (type) for packet id with a
 * reason (MQTT 5; why: its reason string or NULL).  MOAT_ELIMIT when the
 * output is full. */
int moat__publish_ack(struct moat_conn *c, uint8_t type, uint16_t id,
		      uint8_t reason, const char *why);
int moat__handle_subscribe(struct moat_conn *c, const uint8_t *body,
			   size_t len);
int moat__handle_unsubscribe(struct moat_conn *c, const uint8_t *body,
			     size_t len);

/* ---- workers (worker.c) ------------------------------------------------- */
enum moat_inbox_kind {
	INBOX_DELIVER, /* session, msg, qos */
	INBOX_ADOPT,   /* conn handed over after CONNECT */
	INBOX_AUTH,    /* conn's password check finished; qos = verdict */
	INBOX_CLUSTER_MSG, /* msg from another node; share = which subs
			    * (moat_matches.only), did = bytes counted */
	INBOX_CLUSTER_ACK, /* JetStream's answer: did = token, qos = ok */
	INBOX_CLUSTER_CTL, /* a client id taken elsewhere (cluster_sess.c) */
};

struct moat_inbox_item {
	uint8_t kind;
	uint8_t qos;
	struct moat_session *session; /* counted reference */
	struct moat_msg *msg;         /* counted reference */
	struct moat_conn *conn;
	uint64_t share; /* shared group delivered through */
	uint64_t did;   /* its row in the persistent store, 0 = none */
};

struct moat_inbox_batch {
	struct moat_inbox_item *v;
	size_t n, cap;
};

/* What a configuration reload replaces (security.c): limits, password
 * file, ACL, TLS contexts.  Immutable and reference-counted; each worker
 * holds the one it uses and swaps it between loop turns. */
struct moat_security {
	atomic_uint refs;
	struct moat_config cfg;
	struct moat_pwfile *pw;
	struct moat_acl *acl;
	SSL_CTX *tls[MOAT_CFG_MAX_LISTENERS]; /* TLS, or DTLS for coaps */
	struct moat_pskfile *psk; /* psk_file, NULL when none */
	uint8_t cookie_key[32];	  /* DTLS cookies (coap_dtls.c) */
	struct moat_leak_db *leak_db; /* NULL when leak_detection is off */
	atomic_uint_fast64_t leak_policy_hits[MOAT_CFG_MAX_LEAK_POLICIES];
};

int moat_security_new(const struct moat_config *cfg,
		      struct moat_security **out, char *err, size_t errsz);
struct moat_security *moat_security_ref(struct moat_security *s);
void moat_security_unref(struct moat_security **s);

/* ---- per-worker statistics (metrics.c sums them at scrape time) -------
 * Written only by the owning worker with MOAT_SW_ADD (no read-modify-write,
 * no shared cache line), read by any thread. */
#define MOAT_PROTO_N 5 /* room for the listener protocols (cfg.h) */

/* Why a connection was refused at accept; names in metrics.c. */
enum moat_refusal {
	MOAT_REFUSE_MEMORY,     /* memory_limit */
	MOAT_REFUSE_PER_IP,     /* max_connections_per_ip */
	MOAT_REFUSE_RATE,       /* max_accept_rate_per_ip */
	MOAT_REFUSE_MAX_CONN,   /* max_connections */
	MOAT_REFUSE_NO_FD,      /* out of file descriptors */
	MOAT_REFUSE_NO_MEMORY,  /* an allocation failed */
	MOAT_REFUSE_N
};

/* Limits that were hit; names (the directive) in metrics.c. */
enum moat_limit_kind {
	MOAT_LIMIT_MEMORY,          /* memory_limit (connection or publish) */
	MOAT_LIMIT_CONNS_PER_IP,    /* max_connections_per_ip */
	MOAT_LIMIT_ACCEPT_RATE,     /* max_accept_rate_per_ip */
	MOAT_LIMIT_CONNECTIONS,     /* max_connections */
	MOAT_LIMIT_PUBLISH_RATE,    /* max_publish_rate */
	MOAT_LIMIT_AUTH_BACKOFF,    /* auth_backoff_*: a login refused */
	MOAT_LIMIT_LOGIN_QUEUE,     /* too many logins waiting for a check */
	MOAT_LIMIT_CONNS_PER_USER,  /* max_connections_per_user */
	MOAT_LIMIT_COAP,            /* CoAP peers, rate, observers, DTLS */
	MOAT_LIMIT_N
};

enum moat_auth_result { MOAT_AUTH_OK, MOAT_AUTH_FAIL, MOAT_AUTH_THROTTLED };

struct moat_wstats {
	atomic_uint_fast64_t msgs_in[MOAT_PROTO_N][3];  /* by QoS */
	atomic_uint_fast64_t msgs_out[MOAT_PROTO_N][3];
	atomic_uint_fast64_t bytes_in[MOAT_PROTO_N];
	atomic_uint_fast64_t bytes_out[MOAT_PROTO_N];
	atomic_uint_fast64_t accepted[MOAT_PROTO_N];
	atomic_uint_fast64_t refused[MOAT_REFUSE_N];
	atomic_uint_fast64_t limits[MOAT_LIMIT_N];
	atomic_uint_fast64_t auth[3]; /* enum moat_auth_result */
	atomic_uint_fast64_t expired; /* messages expired before delivery */
	atomic_uint_fast64_t leaks[32][4]; /* findings: category, action */
	/* Gauges, refreshed by the worker's once-a-second session walk. */
	atomic_uint_fast64_t queued, queued_bytes, inflight;
	struct moat_histo loop; /* time to handle one loop turn */
};

#define MOAT_WSTAT_ADD(w, field, v) MOAT_SW_ADD((w)->st.field, (v))

/* ---- administrators' requests (admin.c) -----------------------------------
 * Carried out by the worker that owns what they touch (docs/api.md). */
enum moat_admin_kind {
	MOAT_ADMIN_CLIENTS,        /* list connected clients (every worker) */
	MOAT_ADMIN_SESSIONS,       /* list sessions (every worker) */
	MOAT_ADMIN_DISCONNECT,     /* a client id's connection */
	MOAT_ADMIN_DELETE_SESSION, /* a client id's session (and connection) */
	MOAT_ADMIN_CLEAR_RETAINED, /* a topic's retained message */
};
#define MOAT_ADMIN_ARG_MAX 65535

struct moat_admin_node;
struct moat_admin_result {
	struct json_t *items; /* lists: entries (caller json_decref) */
	size_t total;         /* lists: entries there were in all */
	bool found;           /* actions: the client or session existed */
};
/* From a thread that is no worker: run a request and wait for it (a few
 * seconds at most).  MOAT_OK, MOAT_EAGAIN when the workers did not answer
 * in time, MOAT_ENOMEM, MOAT_EINVAL (arg too long). */
int moat__admin_request(struct moat_broker *b, enum moat_admin_kind kind,
			const char *arg, size_t limit,
			struct moat_admin_result *out);
/* Worker side: carry out the requests taken from w->admin. */
void moat__admin_run(struct moat_worker *w, struct moat_admin_node *list);
/* Teardown (workers stopped): answer what is left unanswered. */
void moat__admin_cancel(struct moat_worker *w);

struct moat_worker {
	uint8_t ev_kind; /* EV_INBOX (the eventfd); must stay first */
	struct moat_broker *b;
	struct moat_security *sec;     /* this worker's current one */
	const struct moat_config *cfg; /* &sec->cfg */
	uint64_t sec_gen;
	uint64_t limit_log_ms; /* rate limit for refused-connection lines */
	double sec_log_tokens;   /* security log budget (security.c) */
	uint64_t sec_log_refill_ms;
	uint64_t sec_log_suppressed;
	unsigned idx;
	pthread_t thread;
	/* When the loop last came round (moat_now_ms), for moatd's
	 * watchdog; the worker writes it, the main thread reads it. */
	_Atomic uint64_t turn_ms;
	int epfd;
	int evfd;

	pthread_mutex_t inbox_lock;
	struct moat_inbox_batch inbox;   /* filled by other threads */
	struct moat_inbox_batch draining; /* swapped in by the owner */
	struct moat_admin_node *admin;    /* requests (admin.c), inbox_lock */

	/* Per-destination batches built while routing, flushed after. */
	struct moat_inbox_batch *outbox;

	struct moat_conn *conns; /* list of live connections */
	size_t nconns;
	struct moat_conn *dirty; /* connections with output to flush */
	struct moat_conn *closed; /* to free at the end of the loop turn */
	struct moat_linger *lingering; /* closing sockets (linger.c) */
	struct moat_conn *held, *held_tail; /* waiting for an accept token */
	size_t nheld;
	size_t nlingering;
	/* Subscribers whose messages wait for their in-flight window
	 * (worker.c): read between events, not once per loop turn. */
	struct moat_conn *starved[MOAT_STARVED_MAX];
	uint32_t nstarved;
	uint32_t starved_events, starved_routed; /* since they were read */
	struct moat_msg **wills;  /* wills to publish at a safe point */
	size_t nwills, wills_cap;

	struct moat_session **sessions; /* hash table by client id */
	size_t nbuckets, nsessions;

	struct moat_matches matches; /* routing scratch */
	/* Reads of connections with nothing buffered go here (conn.c);
	 * rbuf_busy while its packets are being handled. */
	struct moat_buf rbuf;
	bool rbuf_busy;
	int spare_fd;          /* released to shed connections on EMFILE */
	uint64_t fd_warned_ms; /* rate limit for EMFILE warnings */
	bool listeners_paused; /* out of descriptors: not polling listeners */
	/* The clock, read once per loop turn after epoll_wait: what the
	 * handlers use for keep-alive, message expiry and rate limits. */
	uint64_t now_ms;
	uint64_t next_expiry_ms;
	uint64_t next_tick_ms;
	uint64_t next_sys_ms;

	/* Persistence (store.c): records made in this loop turn, the
	 * number of batches handed to the store so far, and the
	 * connections whose output waits for one of them. */
	/* Leak detector (leak_inline.c): scratch for sec->leak_db, and the
	 * budget of log lines and events. */
	struct moat_leak_scratch *leak_scratch;
	const struct moat_leak_db *leak_scratch_db;
	double leak_tokens;
	uint64_t leak_refill_ms;
	uint64_t leak_suppressed;
	uint8_t *leak_buf; /* "name=value" of a user property */
	size_t leak_bufcap;
	struct moat_leak_tracks *leak_tracks; /* leak_track.c */
	/* Restore at start: events of the queued messages' sweep wait
	 * until the sessions are whole (moat__leak_route_held). */
	bool leak_hold;
	unsigned nleak_held;
	struct moat_msg *leak_held[64];

	struct moat_store_batch *sbatch;
	uint64_t store_seq;
	uint64_t store_nrec; /* records made so far (a packet made some?) */
	uint64_t store_lost; /* records that could not be made (no memory) */
	bool store_gate_pending; /* a gate waits for the batch being filled */
	struct moat_conn *gated;
	struct moat_coap *coap; /* CoAP sockets and peers, NULL when none */
	/* Cluster mode (cluster.c), NULL when off; the token of the QoS 1/2
	 * publication the last route made (0: none). */
	struct moat_cluster_w *cw;
	uint64_t cluster_tok;

	struct moat_wstats st; /* last: its own cache lines */
};

/* The protocol of c's listener, as an index into the per-protocol
 * statistics. */
static inline unsigned moat__conn_proto(const struct moat_conn *c)
{
	uint32_t p = c->w->cfg->listeners[c->listener].protocol;
	return p < MOAT_PROTO_N ? (unsigned)p : 0;
}
/* A limit was hit (counted; the caller logs). */
static inline void moat__limit_hit(struct moat_worker *w,
				   enum moat_limit_kind k)
{
	MOAT_WSTAT_ADD(w, limits[k], 1);
}

/* Publish m (a will) at the next safe point of the loop (takes m). */
void moat_worker_defer_will(struct moat_worker *w, struct moat_msg *m);
/* Route a message from this worker to every matching session (and the
 * retained store when m->retain). */
void moat_worker_route(struct moat_worker *w, struct moat_msg *m);
/* The same, to some subscriptions only (struct moat_matches.only). */
void moat__worker_route_sel(struct moat_worker *w, struct moat_msg *m,
			    uint64_t only);
/* c's session has messages waiting for its in-flight window: read c
 * every few events of a loop turn (its acknowledgements open the window)
 * rather than once per turn.  A few connections at a time. */
void moat__worker_watch_starved(struct moat_worker *w, struct moat_conn *c);
void moat_worker_mark_dirty(struct moat_worker *w, struct moat_conn *c);
/* Inbox batches (inbox.c): append an item (MOAT_ENOMEM when it cannot
 * grow); drop an item's references; move a whole batch into to's inbox
 * with one lock round trip and wake it (MOAT_ENOMEM: the rest was
 * dropped, counted and released). */
int moat__inbox_push(struct moat_inbox_batch *bt,
		     const struct moat_inbox_item *it);
void moat__inbox_release(struct moat_inbox_item *it);
int moat__inbox_post(struct moat_worker *to, struct moat_inbox_batch *bt);
/* Publish the wills deferred this loop turn (route.c). */
void moat__worker_publish_wills(struct moat_worker *w);
/* Post an item to another worker's inbox (takes the item's references).
 * MOAT_ENOMEM when the inbox could not grow: the item was released (an
 * adopted connection closed; an INBOX_AUTH must be posted again). */
int moat_worker_post(struct moat_worker *to,
		     const struct moat_inbox_item *item);
struct moat_session *moat_worker_find_session(struct moat_worker *w,
					      const uint8_t *id, size_t len);
/* MOAT_ENOMEM when the table cannot be created (s is not added). */
int moat_worker_add_session(struct moat_worker *w, struct moat_session *s);
void moat_worker_remove_session(struct moat_worker *w,
				struct moat_session *s);
/* The worker that owns the sessions of a client id. */
struct moat_worker *moat_worker_home(struct moat_broker *b, const uint8_t *id,
				     size_t len);
void *moat_worker_main(void *arg);

/* ---- the broker (broker.c) ---------------------------------------------- */
struct moat_stats {
	atomic_uint_fast64_t msgs_dropped;
	atomic_uint_fast64_t clients_connected;
	atomic_uint_fast64_t clients_maximum;
	atomic_uint_fast64_t sessions;
	atomic_uint_fast64_t connections; /* open sockets, any state */
	atomic_uint_fast64_t acl_denials;
	atomic_uint_fast64_t leaks_blocked;  /* messages */
	atomic_uint_fast64_t leaks_redacted; /* messages */
	/* CoAP ($SYS/broker/coap/...) */
	atomic_uint_fast64_t coap_requests;
	atomic_uint_fast64_t coap_publishes;
	atomic_uint_fast64_t coap_notifications;
	atomic_uint_fast64_t coap_echo;    /* 4.01 + Echo sent */
	atomic_uint_fast64_t coap_dropped; /* datagrams ignored */
	atomic_uint_fast64_t coap_separate; /* separate responses sent */
	atomic_uint_fast64_t coap_suppressed; /* by No-Response (RFC 7967) */
	atomic_uint_fast64_t coap_observers;
	atomic_uint_fast64_t coap_dtls_sessions; /* handshaken */
};

struct moat_listener {
	uint8_t ev_kind; /* EV_LISTENER; must stay first */
	int fd;
	size_t idx;
	bool loopback;
	char name[80]; /* "addr:port" as bound */
};

/* Password checks run by auth threads (authq.c). */
struct moat_auth_flow;
struct moat_authq {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct moat_auth_flow *flows, *flows_tail; /* round robin */
	size_t len; /* checks waiting */
	bool stopping, initialised;
	pthread_t *threads;
	unsigned nthreads;
};

int moat_authq_start(struct moat_authq *q, unsigned nthreads);
void moat_authq_stop(struct moat_authq *q);
/* Queue a check of user/pw for c (on c's worker, with its security
 * state); ip is its address as the login back-off keys it.  MOAT_ELIMIT
 * when the queue is full. */
int moat_authq_submit(struct moat_authq *q, struct moat_conn *c,
		      const char *ip, const uint8_t *user, size_t ulen,
		      const uint8_t *pw, size_t pwlen);

struct moat_broker {
	struct moat_authq authq;
	struct moat_config cfg; /* as started; workers use w->cfg */
	pthread_mutex_t sec_lock;
	struct moat_security *sec; /* the newest; guarded by sec_lock */
	atomic_uint_fast64_t sec_gen;
	struct moat_guard guard;
	struct moat_iptab iptab;   /* connections not yet authenticated */
	struct moat_iptab usertab; /* authenticated connections per user */
	struct moat_iptab coaptab; /* CoAP requests per IP (coap_srv.c) */
	uint64_t memory_auto; /* the budget when memory_limit is 0 */
	struct moat_listener *listeners;
	size_t nlisteners;
	struct moat_worker *workers;
	unsigned nworkers;
	struct moat_tree tree;
	struct moat_stats stats;
	atomic_bool stopping;
	atomic_uint_fast64_t client_seq; /* for assigned client ids */
	atomic_uint_fast64_t session_seq; /* session serials */
	uint64_t start_ms;
	bool started;
	struct moat_store *store; /* NULL when persistence is off */
	bool shutting_down; /* teardown: sessions end without store rows */
	struct moat_http *http; /* HTTP listeners (http.c), NULL = none */
	moat_check_fn check;    /* the API's configuration check */
	struct moat_bridge *bridges; /* bridge.c; nbridges of them */
	size_t nbridges;
	struct moat_cluster *cluster; /* cluster mode, NULL when off */
};

/* ---- HTTP listeners (http.c) and metrics (metrics.c) ----------------------
 * protocol http listeners run on libmicrohttpd's own threads, never on the
 * workers' loops.  Started after the workers, stopped before them. */
/* Bind the http listeners' sockets (at creation, with the others). */
int moat__http_bind(struct moat_broker *b);
/* Serve them (after the workers started).  MOAT_OK or logged error. */
int moat__http_start(struct moat_broker *b);
void moat__http_stop(struct moat_broker *b);
/* Free them (after the workers stopped: they log into the API's recent
 * events). */
void moat__http_free(struct moat_broker *b);
/* Worker 0's tick: the leak timeline's minute samples (events.c). */
void moat__events_tick(struct moat_broker *b, uint64_t now_ms);
/* The Prometheus text exposition of b into out (moat_free).  MOAT_OK or
 * MOAT_ENOMEM. */
int moat__metrics_render(struct moat_broker *b, char **out, size_t *len);
/* The http listeners' logins by result (enum moat_auth_result), and
 * their responses by status code (each(arg, code, count)). */
uint64_t moat__http_auth(const struct moat_broker *b, unsigned result);
void moat__http_codes(const struct moat_broker *b,
		      void (*each)(void *, unsigned, uint64_t), void *arg);
/* Totals over workers, protocols and QoS levels (any thread). */
enum moat_traffic {
	MOAT_TRAFFIC_MSGS_IN,
	MOAT_TRAFFIC_MSGS_OUT,
	MOAT_TRAFFIC_BYTES_IN,
	MOAT_TRAFFIC_BYTES_OUT,
};
uint64_t moat__traffic(const struct moat_broker *b, enum moat_traffic t);
/* Leak findings of a category, whatever the action. */
uint64_t moat__leak_findings(const struct moat_broker *b, unsigned cat);
/* Sum of a per-worker counter over the workers (any thread). */
uint64_t moat__wstat_sum(const struct moat_broker *b, size_t offset);
#define MOAT_WSTAT_SUM(b, field)                                              \
	moat__wstat_sum((b), offsetof(struct moat_wstats, field))

/* The forwardable MQTT 5 properties of a will or PUBLISH, re-encoded in
 * order into a new buffer (caller moat_frees *out). */
struct moat_mqtt_props;
int moat__forward_props(const struct moat_mqtt_props *p, uint8_t **out,
			size_t *len);

/* A topic for log lines: escaped and truncated into buf. */
const char *moat__log_topic(const char *topic, size_t len, char *buf,
			    size_t bufsz);

/* ---- security (security.c) ----------------------------------------------- */
/* Take up the broker's newest security state if it changed. */
void moat__worker_sync_security(struct moat_worker *w);
/* Authenticate a CONNECT (after the hand-over to the home worker):
 * MOAT_OK (c->username set when verified), MOAT_EAGAIN when back-off
 * parked the connection (the CONNECT stays buffered), or MOAT_EDENIED
 * with *v3rc, *v5rc and *why for the refusal. */
/* Close the connections still held for an accept token (teardown). */
void moat__worker_drop_held(struct moat_worker *w);
/* An authenticated connection leaves the per-user count (at close). */
void moat__uncount_user(struct moat_conn *c);
int moat__authenticate(struct moat_conn *c, const struct moat_mqtt_connect *cn,
		       const uint8_t *id, size_t idlen, uint8_t *v3rc,
		       uint8_t *v5rc, const char **why);
/* ACL: may the connection's client access topic (a name for READ/WRITE,
 * a filter without "$share/G/" for SUBSCRIBE)?  access is an enum
 * moat_acl_access. */
bool moat__acl_allows(struct moat_conn *c, const char *topic, size_t len,
		      int access);
/* Must each message for this subscription be checked at delivery? */
bool moat__acl_check_each(struct moat_conn *c, const char *filter,
			  size_t len);
/* Security event log line: "security: EVENT client ID user U from ADDR:
 * detail" with untrusted parts escaped; bounded per connection. */
void moat__security_event(struct moat_conn *c, const char *event,
			  const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* The log's event name of a security event ("auth failure" ->
 * "auth_failure"; docs/logging.md lists them). */
void moat__event_name(const char *event, char *out, size_t outsz);
/* May the publisher recorded in m (wills, retained) still publish on its
 * topic under the current ACL?  True when none is recorded. */
bool moat__source_may_publish(struct moat_worker *w, const struct moat_msg *m);
/* Report security lines the per-worker rate limit held back (tick). */
void moat__security_log_flush(struct moat_worker *w);
/* Is the memory budget spent? */
bool moat__memory_exhausted(struct moat_worker *w);
/* memory_limit 0: three quarters of physical memory. */
uint64_t moat__memory_auto(void);

/* ---- persistence (store.c) ------------------------------------------------
 * One store thread owns the SQLite database.  Workers append records to
 * their batch during a loop turn and hand it over (moat__store_flush) at
 * the end of the turn, and before posting deliveries to other workers, so
 * the store sees every record after those it depends on.  With
 * persistence_sync full or normal, output that acknowledges a record (a
 * PUBACK, PUBREC, SUBACK, CONNACK, an outgoing QoS 2 PUBLISH or PUBREL) is
 * gated until the store reports the batch committed. */
struct moat_store;
struct moat_store_batch;

/* Open (or create) the database and restore sessions, subscriptions,
 * queues, in-flight state and retained messages into b (single-threaded,
 * before the workers run). */
int moat_store_open(struct moat_broker *b, char *err, size_t errsz);
int moat_store_start(struct moat_broker *b);
/* After the workers stopped: commit what is left, close. */
void moat_store_close(struct moat_broker *b);

/* Worker side (home worker of the session / the connection's worker). */
static inline bool moat__store_on(const struct moat_broker *b)
{
	return b->store != NULL;
}
/* Records handed over and not committed beyond which the connections
 * adding to them stop being read until the store catches up. */
#define MOAT_STORE_BACKLOG_MAX 100000u
bool moat__store_backlogged(const struct moat_broker *b);
/* Is the store failing to commit (disk full, I/O error)? */
bool moat__store_failing(const struct moat_broker *b);
/* A fresh message id, for a message that may be stored. */
uint64_t moat__store_msg_id(struct moat_broker *b);
void moat__store_session(struct moat_worker *w, struct moat_session *s);
void moat__store_session_del(struct moat_worker *w, struct moat_session *s);
void moat__store_sub(struct moat_worker *w, struct moat_session *s,
		     const struct moat_sub_entry *e);
void moat__store_unsub(struct moat_worker *w, struct moat_session *s,
		       const char *filter, size_t flen, const char *share,
		       size_t slen);
/* A new delivery row of m to s; returns its id (0 when not stored). */
uint64_t moat__store_delivery(struct moat_worker *w, struct moat_session *s,
			      struct moat_msg *m, uint8_t qos, bool retain);
void moat__store_delivery_state(struct moat_worker *w, uint64_t did,
				uint16_t packet_id, uint8_t state,
				bool retain);
void moat__store_delivery_share(struct moat_worker *w, uint64_t did,
				const char *share, size_t slen,
				const char *filter, size_t flen);
void moat__store_delivery_del(struct moat_worker *w, uint64_t did,
			      uint64_t msg_id);
void moat__store_retain(struct moat_worker *w, struct moat_msg *m,
			uint64_t seq);
void moat__store_qos2(struct moat_worker *w, struct moat_session *s,
		      uint16_t id, bool set);
/* Records made so far: compare before and after handling a packet. */
static inline uint64_t moat__store_nrec(const struct moat_worker *w)
{
	return w->store_nrec;
}
/* Hand this turn's batch to the store thread. */
void moat__store_flush(struct moat_worker *w);
/* Gate c's output queued from now on behind the current batch. */
void moat__store_gate(struct moat_conn *c);
/* Output waiting for the store that is not a connection's (CoAP
 * responses): the batch to wait for (the one being filled), or 0 when
 * nothing needs to wait (persistence off, persistence_sync off). */
uint64_t moat__store_gate_seq(struct moat_worker *w);
/* CoAP responses held for batches up to done go out (coap_srv.c). */
void moat__coap_store_release(struct moat_worker *w, uint64_t done);
/* Release gates whose batches were committed (the store wakes us). */
void moat__store_release(struct moat_worker *w);
/* May bytes at the head of c->out be written now?  How many. */
size_t moat__store_writable(const struct moat_conn *c, size_t used);
/* c is going away: off the worker's gated list. */
void moat__store_ungate(struct moat_conn *c);
/* Does output of c wait for the store? */
static inline bool moat__store_gated(const struct moat_conn *c)
{
	return c->gates && c->gates->n;
}

/* ---- leak detection (leak_inline.c) ---------------------------------------- */
/* One leak finding of client id now, for the API's per-client counts
 * (events.c; nothing, not even a clock reading, without an http
 * listener). */
void moat__events_client_finding(struct moat_broker *b, const char *id);
/* The findings of their own kind (leak_inline.c, leak_track.c): counted
 * after the detector's categories, at MOAT_LEAK_CATEGORY_COUNT + k. */
#define MOAT_LEAK_TRACKS 2
const char *moat__leak_track_name(unsigned k);
/* Build the detector of a security state (leak_detection). */
int moat__leak_setup(struct moat_security *s, char *err, size_t errsz);
void moat__leak_cleanup(struct moat_security *s);
void moat__leak_worker_free(struct moat_worker *w);
/* The security state changed: the scratch is made again when needed. */
void moat__leak_worker_reset(struct moat_worker *w);
/* Scan a message not yet shared (topic, payload, user properties) and act
 * on the findings by leak_policy: log, alert, redact in place.  Returns
 * the strongest action (enum moat_leak_action), or -1 when nothing was
 * found; MOAT_LEAK_BLOCK means the caller drops the message. */
int moat__leak_inspect(struct moat_worker *w, struct moat_msg *m,
		       const char *origin, const char *cid, const char *user);
/* At start (worker 0): scan the retained store, apply the policies. */
void moat__leak_sweep_retained(struct moat_worker *w);
/* Restore (store_load.c, before the workers run): a message of sessions'
 * queues, scanned once (worker 0's detector, origin "queued"); its
 * events are held for moat__leak_route_held.  Returns what
 * moat__leak_inspect returns. */
int moat__leak_restored(struct moat_broker *b, struct moat_msg *m);
/* Route the held events (once the sessions are restored). */
void moat__leak_route_held(struct moat_worker *w);
/* Report what the log rate limit held back (tick). */
void moat__leak_log_flush(struct moat_worker *w);
/* Tracks (leak_track.c): note what one message of client cid on topic
 * held (its finding categories, whether a precise position); returns the
 * MOAT_LEAK_TRACK_* to report now (each once per window or client
 * slot).  Bounded per worker; nothing allocated after the first call. */
#define MOAT_LEAK_TRACK_LOCATION 0x1u /* "location_track" */
#define MOAT_LEAK_TRACK_LINKED 0x2u   /* "linked_health" */
unsigned moat__leak_track(struct moat_worker *w, const char *cid,
			  const uint8_t *topic, size_t tlen,
			  uint32_t categories, bool precise, uint64_t now_ms);
void moat__leak_tracks_free(struct moat_worker *w);
void moat__leak_sys_publish(struct moat_worker *w,
			    void (*put)(struct moat_worker *, const char *,
					const char *));

/* ---- bridges (bridge.c, bridge_topic.c; docs/bridges.md) ----------------
 * Each bridge lives on one worker: its connection to the remote is a
 * moat_conn of that worker in the client role (c->bridge), its local side
 * a session of that worker that is in no client-id table, whose
 * subscriptions are the out topics (No Local: nothing the bridge
 * published here goes back). */
struct moat_bridge;
/* Set up every configured bridge (TLS contexts, local sessions) before
 * the workers run and before root is dropped; then, after the store's
 * restore, their local subscriptions (with the retained messages they
 * match).  MOAT_OK or an error in err. */
int moat__bridges_start(struct moat_broker *b, char *err, size_t errsz);
int moat__bridges_subscribe(struct moat_broker *b, char *err, size_t errsz);
/* Before the teardown of the workers: connections closed, sessions
 * ended, memory freed. */
void moat__bridges_free(struct moat_broker *b);
/* Can the bridges' TLS files be loaded (moatd --test-config)? */
int moat__bridges_check(const struct moat_config *cfg, char *err,
			size_t errsz);
/* The worker's tick: connect when due, keep-alive, state topics. */
void moat__bridge_tick(struct moat_worker *w, uint64_t now);
/* A packet from a bridge's remote: handled (a result), or MOAT_DECLINED
 * for the ordinary handlers (PUBLISH, acknowledgements). */
int moat__bridge_packet(struct moat_conn *c, uint8_t tf, const uint8_t *body,
			size_t len);
/* c, a bridge's connection, is closing (from moat_conn_close). */
void moat__bridge_closed(struct moat_conn *c, const char *why);
/* PUBLISH m to the remote with its topic mapped (an out topic).  Same
 * results as moat_conn_send_publish. */
int moat__bridge_send_publish(struct moat_conn *c, const struct moat_msg *m,
			      uint8_t qos, bool retain, bool dup, uint16_t id);
/* The local topic of a PUBLISH from the remote (an in topic), in place
 * of *topic (pointing into the bridge's scratch until the next call);
 * false when no in topic covers it. */
bool moat__bridge_map_in(struct moat_conn *c, struct moat_bytes *topic);
/* Is t $SYS/broker/connection/X/state, a remote bridge's notification
 * (the one $SYS topic clients may publish to, when the ACL lets them),
 * X not the name of one of b's own bridges (whose state b publishes)? */
bool moat__bridge_state_topic(const struct moat_broker *b, const uint8_t *t,
			      size_t len);
/* Figures of bridge i for /metrics and $SYS (any thread). */
struct moat_bridge_stat {
	const char *name;
	bool up;
	uint64_t connects, failures, msgs_in, msgs_out, dropped, queued;
};
void moat__bridge_stat(const struct moat_broker *b, size_t i,
		       struct moat_bridge_stat *out);
/* A fresh packet id of session s, free in its in-flight window (for a
 * bridge's SUBSCRIBE). */
uint16_t moat__session_take_id(struct moat_session *s);

/* $SYS topics (sys_topics.c): publish the current values. */
void moat__sys_publish(struct moat_worker *w);

#define MOAT_STAT_ADD(b, field, v)                                            \
	atomic_fetch_add_explicit(&(b)->stats.field, (v), memory_order_relaxed)
#define MOAT_STAT_SUB(b, field, v)                                            \
	atomic_fetch_sub_explicit(&(b)->stats.field, (v), memory_order_relaxed)
#define MOAT_STAT_GET(b, field)                                               \
	atomic_load_explicit(&(b)->stats.field, memory_order_relaxed)

#endif
