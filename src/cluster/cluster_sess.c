/* Client ids across the nodes of a cluster (cluster_state.h,
 * docs/cluster.md "Client ids across nodes").
 *
 * A node that accepts a CONNECT with a client id of the client's own
 * (not one the node assigned) publishes on moat.c.connect:
 *
 *   bytes 0-7   the node's nonce (big-endian)
 *   bytes 8-15  when the CONNECT was accepted: wall clock, milliseconds
 *   byte 16     1: a user name follows, 0: anonymous
 *   u16         user name length, then the user name (when byte 8 is 1)
 *   the rest    the client id
 *
 * Every node listens.  The announcement goes to the worker that is the
 * client id's home (as on one node), on the worker's own loop, carried
 * by a message whose topic is the client id and whose payload is the
 * owner (its references keep it safe in an inbox at teardown).  There a
 * session of that client id owned by the same identity (T-08: no other
 * identity takes a session over) loses its connection (MQTT 5: DISCONNECT
 * 0x8E, session taken over) and ends: the client carries on at the other
 * node.  Two connections made at nearly the same moment on two nodes
 * announce each other; the later one (by the time in the announcements,
 * then by nonce) stays on both sides, so exactly one remains.  Its delayed will is cancelled, as a client's return cancels it. */
#include <string.h>
#include <time.h>

#include "broker/broker_int.h"
#include "cluster/cluster_int.h"
#include "cluster/cluster_state.h"
#include "codec/mqtt5.h"

#define SESS_SUBJECT "moat.c.connect"
#define MAX_USER 1024

#define HEAD 17 /* nonce, time, user flag */

static natsSubscription *sess_sub;

static uint64_t wall_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void put64(uint8_t *p, uint64_t v)
{
	for (int i = 7; i >= 0; i--, v >>= 8)
		p[i] = (uint8_t)v;
}

static uint64_t get64(const uint8_t *p)
{
	uint64_t v = 0;
	for (int i = 0; i < 8; i++)
		v = v << 8 | p[i];
	return v;
}

void moat__cluster_sess_connected(struct moat_conn *c, const uint8_t *id,
				  size_t len)
{
	struct moat_cluster *cl = moat__cluster_of(c->w->b);
	const char *user = c->username;
	size_t ulen = user ? strlen(user) : 0;
	uint8_t head[HEAD + 2 + MAX_USER];
	size_t hl = HEAD;
	if (!cl || !cl->nc || ulen > MAX_USER)
		return;
	put64(head, cl->nonce);
	put64(head + 8, wall_ms());
	head[16] = user != NULL;
	if (user) {
		head[HEAD] = (uint8_t)(ulen >> 8);
		head[HEAD + 1] = (uint8_t)ulen;
		memcpy(head + HEAD + 2, user, ulen);
		hl = HEAD + 2 + ulen;
	}
	uint8_t *buf = moat_malloc(hl + len);
	if (!buf) {
		atomic_fetch_add(&cl->dropped, 1);
		return;
	}
	memcpy(buf, head, hl);
	memcpy(buf + hl, id, len);
	if (natsConnection_Publish(cl->nc, SESS_SUBJECT, buf,
				   (int)(hl + len)) != NATS_OK)
		atomic_fetch_add(&cl->dropped, 1);
	moat_free(buf);
}

/* libnats's delivery thread: decode, hand to the client id's home. */
static void on_connect_msg(natsConnection *nc, natsSubscription *sub,
			   natsMsg *msg, void *closure)
{
	(void)nc;
	(void)sub;
	struct moat_cluster *cl = closure;
	const uint8_t *d = (const uint8_t *)natsMsg_GetData(msg);
	size_t n = (size_t)natsMsg_GetDataLength(msg), hl = HEAD, ulen = 0;
	if (n < HEAD || get64(d) == cl->nonce || d[16] > 1)
		goto out; /* ours, or not one */
	if (d[16]) {
		if (n < HEAD + 2)
			goto out;
		ulen = (size_t)d[HEAD] << 8 | d[HEAD + 1];
		hl = HEAD + 2 + ulen;
		if (n < hl || ulen > MAX_USER)
			goto out;
	}
	size_t idlen = n - hl;
	if (idlen > UINT16_MAX)
		goto out;
	/* payload: the announcing nonce and time, 1 byte anonymous or
	 * not, then the user name */
	uint8_t owner[HEAD + MAX_USER];
	memcpy(owner, d, HEAD);
	if (ulen)
		memcpy(owner + HEAD, d + HEAD + 2, ulen);
	struct moat_msg *m =
		moat_msg_new(d + hl, idlen, owner, HEAD + ulen, 0, false);
	if (!m)
		goto out;
	struct moat_broker *b = cl->b;
	struct moat_inbox_item it = {.kind = INBOX_CLUSTER_CTL, .msg = m};
	if (moat_worker_post(moat_worker_home(b, d + hl, idlen), &it) !=
	    MOAT_OK)
		moat_msg_unref(&m);
out:
	natsMsg_Destroy(msg);
}

static bool same_owner(const struct moat_session *s, const struct moat_msg *m)
{
	size_t ulen = m->payload_len - HEAD;
	if (!m->payload[16])
		return s->owner == NULL;
	return s->owner && strlen(s->owner) == ulen &&
	       !memcmp(s->owner, m->payload + HEAD, ulen);
}

/* Is the local connection c newer than the one announced in m (it stays,
 * and the other node closes the announced one when ours reaches it)? */
static bool local_is_newer(const struct moat_cluster *cl,
			   const struct moat_conn *c, const struct moat_msg *m)
{
	uint64_t mono = moat_now_ms(), wall = wall_ms();
	uint64_t ours = wall - (mono - MOAT_MIN(c->created_ms, mono));
	uint64_t theirs = get64(m->payload + 8);
	if (ours != theirs)
		return ours > theirs;
	return cl->nonce > get64(m->payload);
}

void moat__cluster_sess_inbox(struct moat_worker *w,
			      struct moat_inbox_item *it)
{
	struct moat_msg *m = it->msg;
	const uint8_t *id = (const uint8_t *)m->topic;
	struct moat_session *s = moat_worker_find_session(w, id, m->topic_len);
	char lid[MOAT_LOG_ID_LEN];
	if (!s || !same_owner(s, m) ||
	    (s->conn && local_is_newer(moat__cluster_of(w->b), s->conn, m)))
		goto out;
	moat_info("client %s connected to another cluster node: its session "
		  "here ends",
		  moat_session_log_id(s, lid));
	if (s->conn) /* [MQTT-3.1.4-2], across nodes */
		moat_conn_disconnect(s->conn, RC_SESSION_TAKEN_OVER,
				     "session taken over by a connection on "
				     "another cluster node");
	/* A session that ended with its connection is gone; look again. */
	s = moat_worker_find_session(w, id, m->topic_len);
	if (s) {
		moat_msg_unref(&s->will); /* the client is back [MQTT-3.1.3-9] */
		moat_session_destroy(s);
	}
out:
	moat_msg_unref(&it->msg);
}

int moat_cluster_state_start(struct moat_broker *b)
{
	struct moat_cluster *cl = b->cluster;
	if (!cl)
		return MOAT_OK;
	if (natsConnection_Subscribe(&sess_sub, cl->nc, SESS_SUBJECT,
				     on_connect_msg, cl) != NATS_OK) {
		moat_err_log("cluster: cannot subscribe to %s: %s",
			     SESS_SUBJECT, nats_GetLastError(NULL));
		sess_sub = NULL;
		return MOAT_EIO;
	}
	natsSubscription_SetPendingLimits(sess_sub, 65536, 64 * 1024 * 1024);
	return moat__cluster_kv_start(b);
}

void moat_cluster_state_stop(struct moat_broker *b)
{
	if (!b->cluster)
		return;
	moat__cluster_kv_stop(b);
	if (sess_sub) {
		natsSubscription_Unsubscribe(sess_sub);
		natsSubscription_Destroy(sess_sub);
		sess_sub = NULL;
	}
}
