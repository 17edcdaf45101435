/* Retained messages of a cluster in a JetStream key-value bucket
 * (docs/cluster.md, "Retained messages"): what the broker calls.
 *
 * The bucket MOAT_RETAINED holds one entry per retained topic (key: the
 * topic's subject without prefix, subject.h; value: the message's
 * envelope; a delete marker for a cleared one).  Every node writes the
 * retained messages its clients publish and mirrors the whole bucket into
 * its own topic tree, in the bucket's order, so a subscriber on any node
 * gets every retained message its filter matches, wildcards included,
 * from its own node's tree.  Messages from other nodes never change the
 * tree's retained messages directly: only the bucket does, so that every
 * node ends with the bucket's last value. */
#ifndef MOAT_CLUSTER_KV_H
#define MOAT_CLUSTER_KV_H

#include <stdbool.h>
#include <stdint.h>

struct moat_broker;
struct moat_worker;
struct moat_msg;

/* struct moat_matches.only of a bucket entry being applied: it matches
 * no subscription (a group id the tree never hands out), so routing it
 * only stores or deletes the retained message. */
#define MOAT_CLUSTER_KV_APPLY (UINT64_MAX - 1)

/* Start mirroring the bucket (after moat_cluster_start; its own thread,
 * which makes the bucket once NATS is connected).  MOAT_OK when cluster
 * mode is off. */
int moat_cluster_kv_start(struct moat_broker *b);
/* Stop the thread (before moat_cluster_stop). */
void moat_cluster_kv_stop(struct moat_broker *b);

/* A worker routes m, published on this node: a retained message (or its
 * deletion) is written to the bucket, asynchronously. */
void moat__cluster_kv_publish(struct moat_worker *w,
			      const struct moat_msg *m);

/* May routing a message (remote: from another node) with this `only`
 * change the tree's retained message?  In cluster mode only messages of
 * this node and bucket entries do. */
static inline bool moat__cluster_kv_retains(bool remote, uint64_t only)
{
	return !remote || only == MOAT_CLUSTER_KV_APPLY;
}

#endif
