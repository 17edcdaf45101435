/* Persistence internals shared by store.c (records, gates), store_db.c
 * (the store thread and its SQL) and store_load.c (restore at start). */
#ifndef MOAT_STORE_INT_H
#define MOAT_STORE_INT_H

#include <sqlite3.h>

#include "broker_int.h"

enum store_op_kind {
	SOP_SESSION,        /* sid, s1 client id, s2 owner, u32 expiry, t
			     * offline since, blob will, u32b delay, t2 at */
	SOP_SESSION_DEL,    /* sid: the session and everything of it */
	SOP_SUB,            /* sid, s1 filter, s2 share, qos, flags, u32 id */
	SOP_UNSUB,          /* sid, s1 filter, s2 share */
	SOP_DELIVERY,       /* id did, sid, msg, qos, flags retain */
	SOP_DELIVERY_STATE, /* id did, packet_id, qos = state */
	SOP_DELIVERY_SHARE, /* id did, s1 filter, s2 share */
	SOP_DELIVERY_DEL,   /* id did, sid = message id */
	SOP_RETAIN,         /* msg (empty payload: delete) */
	SOP_QOS2_SET,       /* sid, packet_id */
	SOP_QOS2_CLR,       /* sid, packet_id */
};

struct store_op {
	uint8_t kind;
	uint8_t qos;
	uint8_t flags;
	uint16_t packet_id;
	uint32_t u32, u32b;
	uint64_t sid, id, t, t2;
	struct moat_msg *msg; /* counted reference */
	char *s1, *s2;
	size_t l1, l2;
	uint8_t *blob;
	size_t blob_len;
};

struct moat_store_batch {
	struct store_op *v;
	size_t n, cap;
	unsigned worker;
	uint64_t seq;
	struct moat_store_batch *next;
};

enum store_stmt {
	ST_SESSION,
	ST_SESSION_DEL,
	ST_SESSION_DEL_SUBS,
	ST_SESSION_DEL_DELIV,
	ST_SESSION_DEL_QOS2,
	ST_SUB,
	ST_UNSUB,
	ST_MSG,
	ST_DELIVERY,
	ST_DELIVERY_STATE,
	ST_DELIVERY_SHARE,
	ST_DELIVERY_DEL,
	ST_MSG_GC,
	ST_RETAIN,
	ST_RETAIN_DEL,
	ST_QOS2_SET,
	ST_QOS2_CLR,
	ST_ALIVE,
	ST_COUNT
};

struct moat_store {
	struct moat_broker *b;
	sqlite3 *db;
	char path[MOAT_CFG_PATH_MAX + 16];
	uint32_t sync; /* enum moat_psync */
	sqlite3_stmt *st[ST_COUNT];

	pthread_t thread;
	bool running;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct moat_store_batch *head, *tail; /* handed over, not committed */
	size_t queued;                         /* records in those */
	bool stopping;

	atomic_bool failing;
	atomic_uint_fast64_t *committed; /* per worker: last batch durable */
	atomic_uint_fast64_t next_msg_id;
	atomic_uint_fast64_t next_did;
	atomic_uint_fast64_t lost; /* records that could not be made */
	atomic_size_t backlog; /* records handed over, not yet committed */
	struct moat_histo commit_hist; /* written by the store thread */

	/* store thread only */
	uint8_t *buf; /* message blobs */
	size_t bufcap;
	bool gc_due; /* sessions were deleted: sweep unreferenced messages */
	uint64_t gc_at_ms;
	uint64_t commits, records;
};

uint64_t moat__wall_ms(void);
size_t moat__msg_blob_size(const struct moat_msg *m);
void moat__msg_blob(const struct moat_msg *m, uint8_t *p, uint64_t now_mono,
		    uint64_t now_wall);
/* MOAT_ENOTFOUND when it expired (*out NULL), MOAT_EPROTO when malformed. */
int moat__msg_unblob(const uint8_t *p, size_t n, uint64_t now_mono,
		     uint64_t now_wall, struct moat_msg **out);
void moat__store_op_release(struct store_op *op);
void moat__store_batch_free(struct moat_store_batch *sb);

/* store_load.c */
int moat__store_load(struct moat_store *st, char *err, size_t errsz);

#endif
