/* State the nodes of a cluster share (docs/cluster.md): retained
 * messages and client ids.  What the broker calls; cluster_kv.c and
 * cluster_sess.c implement it.
 *
 * Retained messages ("Retained messages"): the bucket MOAT_RETAINED holds one entry per retained topic (key: the
 * topic's subject without prefix, subject.h; value: the message's
 * envelope; a delete marker for a cleared one).  Every node writes the
 * retained messages its clients publish and mirrors the whole bucket into
 * its own topic tree, in the bucket's order, so a subscriber on any node
 * gets every retained message its filter matches, wildcards included,
 * from its own node's tree.  Messages from other nodes never change the
 * tree's retained messages directly: only the bucket does, so that every
 * node ends with the bucket's last value.
 *
 * Client ids ("Client ids across nodes"): a node that accepts a CONNECT
 * tells the others (core NATS, moat.c.connect); a node with a session of
 * that client id and the same owner disconnects its connection (MQTT 5:
 * 0x8E, session taken over) and ends the session there, sending its
 * subscriptions and waiting messages to the new node first (unless the
 * client asked for a clean start). */
#ifndef MOAT_CLUSTER_STATE_H
#define MOAT_CLUSTER_STATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <nats/nats.h>

struct moat_broker;
struct moat_worker;
struct moat_msg;
struct moat_conn;
struct moat_inbox_item;

/* struct moat_matches.only of a bucket entry being applied: it matches
 * no subscription (a group id the tree never hands out), so routing it
 * only stores or deletes the retained message. */
#define MOAT_CLUSTER_KV_APPLY (UINT64_MAX - 1)

/* Start sharing (after moat_cluster_start): the bucket's thread, which
 * makes the bucket once NATS is connected, and the client-id
 * subscription.  MOAT_OK when cluster mode is off. */
int moat_cluster_state_start(struct moat_broker *b);
/* Stop (workers joined, before moat_cluster_stop). */
void moat_cluster_state_stop(struct moat_broker *b);

/* The bucket's part of the above (cluster_kv.c). */
int moat__cluster_kv_start(struct moat_broker *b);
void moat__cluster_kv_stop(struct moat_broker *b);

/* A client with the client id id (not one the node assigned) was
 * accepted on c (clean: it asked for a clean start): the other nodes end
 * their sessions of it, and send their state here unless clean. */
void moat__cluster_sess_connected(struct moat_conn *c, const uint8_t *id,
				  size_t len, bool clean);
/* An INBOX_CLUSTER_CTL item (moat__cluster_inbox): another node
 * accepted a client id whose home worker is w. */
void moat__cluster_sess_inbox(struct moat_worker *w,
			      struct moat_inbox_item *it);

/* A worker routes m, published on this node: a retained message (or its
 * deletion) is written to the bucket, asynchronously. */
void moat__cluster_kv_publish(struct moat_worker *w,
			      const struct moat_msg *m);

/* ---- between the cluster's own files ---------------------------------- */

/* Wall-clock microseconds (what nodes compare: announcements). */
static inline uint64_t moat__wall_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* Wall-clock milliseconds (records, bucket entries). */
static inline uint64_t moat__wall_ms(void)
{
	return moat__wall_us() / 1000u;
}

/* A growing byte buffer bounded by max (over: something did not fit). */
struct wbuf {
	uint8_t *p;
	size_t n, cap, max;
	bool over;
};
void moat__wb_put(struct wbuf *b, const void *p, size_t n);
void moat__wb_u16(struct wbuf *b, uint16_t v);
void moat__wb_u32(struct wbuf *b, uint32_t v);
struct moat_session;
struct moat_cluster;
/* A session's subscriptions as a snapshot carries them (cluster_sess.c). */
void moat__snap_put_subs(struct wbuf *b, const struct moat_session *s);
/* Hand the snapshot d[0..n) to its client id's home worker. */
void moat__snap_post(struct moat_cluster *cl, const uint8_t *d, size_t n);
/* Did a snapshot for this client id arrive at or after ms (moat_now_ms)? */
bool moat__snap_applied_since(const uint8_t *id, size_t len, uint64_t ms);

/* A JetStream context for asynchronous writes that never hold a worker
 * (ack: called with closure for each answer; may be NULL), or NULL; and
 * its end, once the answers in flight arrived (at most 2 s), with the
 * bucket it served (may be NULL).  cluster_kv.c. */
jsCtx *moat__cluster_js_async(struct moat_cluster *cl, jsPubAckHandler ack,
			      void *closure);
void moat__cluster_js_close(jsCtx *js, kvStore *kv);

/* The session registry (cluster_sreg.c; cluster_session_recovery). */
int moat__cluster_sreg_start(struct moat_broker *b);
void moat__cluster_sreg_stop(struct moat_broker *b);
/* A worker's tick: its persistent sessions' records. */
void moat__cluster_sreg_tick(struct moat_worker *w, uint64_t now);
/* A client asked for its session (not a clean start) on this node. */
void moat__cluster_sreg_connected(struct moat_broker *b, const uint8_t *id,
				  size_t len);

/* May routing a message (remote: from another node) with this `only`
 * change the tree's retained message?  In cluster mode only messages of
 * this node and bucket entries do. */
static inline bool moat__cluster_kv_retains(bool remote, uint64_t only)
{
	return !remote || only == MOAT_CLUSTER_KV_APPLY;
}

#endif
