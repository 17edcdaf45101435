/* Bridges (bridge.c, bridge_topic.c): what the two files share. */
#ifndef MOAT_BRIDGE_INT_H
#define MOAT_BRIDGE_INT_H

#include <netdb.h>
#include <stdatomic.h>

#include "broker_int.h"

enum moat_bridge_phase {
	BRIDGE_WAIT,      /* until next_ms, then the next attempt */
	BRIDGE_RESOLVING, /* a host name being resolved (getaddrinfo_a) */
	BRIDGE_CONNECTING, /* TCP/TLS and CONNECT sent: waiting for CONNACK */
	BRIDGE_UP,        /* CONNACK accepted */
};

struct moat_bridge {
	struct moat_broker *b;
	struct moat_worker *w;            /* its home: every field is its */
	const struct moat_bridge_cfg *cfg; /* in b->cfg (restart-only) */
	struct moat_session *s; /* the local side: never in a client table */
	struct moat_conn *c;    /* to the remote; NULL between attempts */
	SSL_CTX *tls;           /* NULL: plain TCP */
	uint8_t version;        /* MQTT_PROTO_V311 or MQTT_PROTO_V5 */
	enum moat_bridge_phase phase;
	size_t addr;       /* index of the address tried or in use */
	uint64_t next_ms;  /* BRIDGE_WAIT: when to try again */
	uint64_t wait_ms;  /* the last back-off wait, 0 after a success */
	uint64_t up_ms;    /* when the current connection's CONNACK came */
	uint64_t ping_ms;  /* when the last PINGREQ went */
	uint16_t sub_id;   /* packet id of our SUBSCRIBE */
	/* round_robin false, connected to a fail-over address: a TCP
	 * connection being tried to the first one (-1: none), and when the
	 * next try is due. */
	int probe_fd;
	uint64_t probe_ms;
	bool state_dirty;  /* the local state topic is to be published */
	bool failed_logged; /* one warning per run of failures */
	struct gaicb gai;  /* BRIDGE_RESOLVING */
	struct addrinfo hints;
	char port[8];
	char *tbuf;        /* a mapped topic (bridge_map_in) */
	size_t tcap;
	/* Figures read by /metrics and $SYS from other threads. */
	atomic_bool up;
	atomic_uint_fast64_t connects, failures, msgs_in, msgs_out, dropped;
	atomic_uint_fast64_t queued;
};

/* Map topic through the topics of bc: in = remote to local (in/both
 * lines), else local to remote (out/both).  MOAT_OK with the topic in out
 * (NUL-terminated, *outlen bytes), MOAT_ENOTFOUND when no line covers it,
 * MOAT_ELIMIT when out is too small. */
int moat__bridge_map(const struct moat_bridge_cfg *bc, bool in,
		     const uint8_t *topic, size_t len, char *out,
		     size_t outsz, size_t *outlen);
/* The filter of topic line t on one side (prefix + pattern) into out;
 * its length, 0 when it does not fit. */
size_t moat__bridge_filter(const struct moat_bridge_topic *t, bool remote,
			   char *out, size_t outsz);

#endif
