/* The protocol side of an MQTT client, without I/O: decoding what a server
 * sends (CONNACK, SUBACK/UNSUBACK, PUBLISH), the answers the QoS flows
 * owe it, the messages for a refusal, and keep-alive timing.  One copy,
 * shared by the blocking client (client.c: moat pub/sub), moat bench's
 * non-blocking event loop and moat audit.  Encoding is the codec's
 * (codec/mqtt_codec.h, codec/mqtt5.h).
 *
 * Everything here is untrusted input: a packet that does not decode is
 * MOAT_EMALFORMED (or MOAT_EPROTO for a well-formed packet that breaks a
 * rule), never a crash. */
#ifndef MOAT_CLIENT_PROTO_H
#define MOAT_CLIENT_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "codec/mqtt5.h"

struct moat_client_connack {
	bool session_present;
	uint8_t rc;	 /* 3.1.1 return code, or MQTT 5 reason code */
	uint8_t version; /* the version the server answered in */
	/* A 3.1.1 server answered our MQTT 5 CONNECT with its own CONNACK
	 * [MQTT-3.1.2-2]: then version is 4 and rc its return code. */
	bool downgraded;
	struct moat_mqtt_props props; /* MQTT 5, validated; points into body */
};

/* CONNACK body for a CONNECT of protocol level version.  MOAT_OK (ca
 * filled; ca->rc says accepted or refused), MOAT_EMALFORMED, or
 * MOAT_EPROTO (MQTT 5: a reason code below 0x80 other than 0, or a
 * refusal with session present). */
int moat_client_connack_decode(const uint8_t *body, size_t len,
			       uint8_t version,
			       struct moat_client_connack *ca);

/* One line for a refused CONNACK, e.g. "connection refused: not
 * authorised (CONNACK code 5)" or "connection refused: Bad user name or
 * password (0x86): REASON (server reference: ...)" with the server's text
 * escaped.  Returns buf. */
const char *moat_client_connack_refusal(const struct moat_client_connack *ca,
					char *buf, size_t sz);

/* Text for a 3.1.1 CONNACK return code ("connection refused: not
 * authorised", ...). */
const char *moat_client_connack_str(uint8_t rc);

struct moat_client_suback {
	uint16_t packet_id;
	struct moat_mqtt_props props; /* MQTT 5 */
	const uint8_t *codes;	      /* into body: one per filter */
	size_t ncodes;
};

/* SUBACK or UNSUBACK (type) body [MQTT-3.9.3] [MQTT-3.11.3]: packet id,
 * MQTT 5 properties, the return/reason codes, each checked for the packet
 * and version.  MOAT_OK, MOAT_EMALFORMED or MOAT_EPROTO (a code that is
 * not one). */
int moat_client_suback_decode(uint8_t type, const uint8_t *body, size_t len,
			      uint8_t version, struct moat_client_suback *out);

/* PUBLISH from a server (flags: the low nibble of the first byte).  The
 * codec's MQTT 5 decoder is the server's view (it refuses Subscription
 * Identifiers, which only a server may send); this is the client's, with
 * the same checks otherwise.  A topic alias is not resolved here. */
int moat_client_publish_decode(uint8_t flags, const uint8_t *body,
			       size_t len, uint8_t version,
			       struct moat_mqtt_publish5 *p5);

/* The acknowledgement a QoS flow owes the server for an incoming packet:
 * PUBLISH QoS 1 -> PUBACK, QoS 2 -> PUBREC; PUBREC -> PUBREL; PUBREL ->
 * PUBCOMP.  Written to out (4 bytes); the length, or 0 when none is due
 * (QoS 0, PUBACK, PUBCOMP). */
size_t moat_client_ack_for(uint8_t type, uint8_t qos, uint16_t id,
			   uint8_t out[4]);

/* Keep-alive [MQTT-3.1.2-23]: a PINGREQ once nothing was sent for the
 * interval; the connection is dead when its PINGRESP is an interval
 * late.  Times in ms (moat_now_ms()). */
struct moat_client_keepalive {
	uint32_t interval_ms; /* 0: off */
	uint64_t last_tx_ms;  /* when we last sent anything */
	uint64_t ping_ms;     /* when the outstanding PINGREQ went; 0: none */
};

enum moat_client_ka_action {
	MOAT_KA_WAIT,	 /* nothing to do before *next_ms */
	MOAT_KA_PING,	 /* send PINGREQ now, then moat_client_ka_pinged() */
	MOAT_KA_TIMEOUT, /* no PINGRESP in time: the connection is dead */
};

/* What keep-alive wants at now; *next_ms: when to ask again (-1: never). */
enum moat_client_ka_action
moat_client_ka_check(const struct moat_client_keepalive *k, uint64_t now,
		     int *next_ms);
void moat_client_ka_pinged(struct moat_client_keepalive *k, uint64_t now);
/* Any packet from the server that answers the ping (PINGRESP). */
void moat_client_ka_pong(struct moat_client_keepalive *k);

#endif
