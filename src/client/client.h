/* moat client library: a small blocking MQTT 3.1.1 and 5.0 client over
 * TCP.
 *
 * One connection per struct moat_client, driven by the caller's thread:
 * every call blocks (poll()-based, with timeouts) until its protocol flow
 * is complete.  While a call waits it also answers the server: incoming
 * PUBLISH packets are delivered to the message callback and acknowledged
 * (PUBACK for QoS 1; PUBREC, then PUBCOMP on PUBREL for QoS 2, delivering
 * a QoS 2 message once even when the server sends it again), and PINGREQ
 * keeps an idle connection alive.
 *
 * It is not thread-safe, does not reconnect and keeps one outgoing message
 * in flight at a time.  The connection is TCP, or TLS with a context from
 * net/tls_client.h.  Everything from the network is
 * untrusted: malformed or oversized packets end the connection with an
 * error, never a crash.
 *
 * Errors are the negative MOAT_E* codes from moat/errors.h; after any error
 * moat_client_errmsg() describes it in one line for the user. */
#ifndef MOAT_CLIENT_H
#define MOAT_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "codec/mqtt5.h"

/* Default limit on the size (remaining length) of a packet from the server.
 * Bigger packets end the connection with MOAT_ELIMIT. */
#define MOAT_CLIENT_DEFAULT_MAX_PACKET (256u * 1024u * 1024u)
/* Default time to wait for a connection, CONNACK, an acknowledgement or a
 * blocked write. */
#define MOAT_CLIENT_DEFAULT_TIMEOUT_MS 30000u

struct moat_client;

/* A message from the server.  Every pointer is borrowed: valid only during
 * the callback. */
struct moat_client_msg {
	struct moat_bytes topic; /* MQTT 5: a topic alias already resolved */
	struct moat_bytes payload;
	uint8_t qos;
	bool retain;
	bool dup;
	uint16_t packet_id; /* 0 for QoS 0 */
	/* MQTT 5: the PUBLISH properties, validated (iterate props->raw with
	 * moat_mqtt_props_next() for user properties and every subscription
	 * identifier, in order).  NULL for 3.1 and 3.1.1. */
	const struct moat_mqtt_props *props;
};

/* What the server announced in its MQTT 5 CONNACK, or the values that
 * hold without an announcement (and for 3.1.1). */
struct moat_client_server {
	uint32_t session_expiry;      /* the one in force (ours or the server's) */
	uint32_t maximum_packet_size; /* 0: no limit beyond MQTT's */
	uint16_t receive_maximum;     /* 65535 when not announced */
	uint16_t topic_alias_maximum; /* aliases we may use; 0: none */
	uint16_t server_keepalive;    /* 0: not announced */
	uint8_t maximum_qos;	      /* 2 when not announced */
	bool retain_available;
	bool wildcard_available;
	bool subid_available;
	bool shared_available;
};

/* Called once per incoming message, from inside whichever moat_client_*
 * call is waiting.  It must not call moat_client_* functions other than
 * moat_client_stop(). */
typedef void moat_client_msg_cb(void *arg, const struct moat_client_msg *msg);

struct ssl_ctx_st; /* OpenSSL's SSL_CTX */

struct moat_client_opts {
	const char *host; /* name or address; borrowed for the call */
	const char *port; /* number or service name; borrowed */
	/* TLS: a client context (moat_tls_client_ctx()), borrowed for the
	 * call (the session takes its own reference); the server's
	 * certificate is checked against host as the context says.  NULL:
	 * plain TCP. */
	struct ssl_ctx_st *tls;
	/* MQTT over WebSockets: the path of the opening request ("/mqtt");
	 * NULL: plain MQTT.  The Host header is host:port. */
	const char *ws_path;
	/* CONNECT fields: protocol level (3, 4 or 5), clean session (MQTT 5:
	 * Clean Start), keepalive (seconds, 0 = off), client id, credentials
	 * and will.  Borrowed for the call.  MQTT 5 allows a password without
	 * a user name. */
	struct moat_mqtt_connect_opts connect;
	/* MQTT 5 only: the CONNECT and will properties, wire-encoded without
	 * their length (as moat_pw writes them); borrowed for the call.  They
	 * are validated before anything is sent.  The client takes its own
	 * limits from them: Maximum Packet Size (bigger packets from the
	 * server are an error), Topic Alias Maximum (aliases the server may
	 * use towards us) and Session Expiry Interval. */
	struct moat_bytes props;
	struct moat_bytes will_props;
	uint32_t max_packet; /* 0 = MOAT_CLIENT_DEFAULT_MAX_PACKET */
	uint32_t timeout_ms; /* 0 = MOAT_CLIENT_DEFAULT_TIMEOUT_MS */
};

/* New unconnected client; NULL when out of memory.  Free with
 * moat_client_free(). */
struct moat_client *moat_client_new(void);
/* Close the socket (without DISCONNECT: the server then publishes the will)
 * and free everything.  NULL is a no-op. */
void moat_client_free(struct moat_client *c);

/* Set the incoming message callback (NULL: messages are acknowledged and
 * dropped).  Set it before moat_client_connect(): a persistent session may
 * deliver queued messages right after CONNACK. */
void moat_client_set_msg_cb(struct moat_client *c, moat_client_msg_cb *cb,
			    void *arg);

/* Connect over TCP (IPv4 or IPv6, every address of the host in turn), send
 * CONNECT and wait for CONNACK.  *session_present (may be NULL) tells
 * whether the server resumed a session.  MQTT 5: the server's CONNACK
 * properties are applied (Server Keep Alive replaces ours, an Assigned
 * Client Identifier becomes the id) and kept for moat_client_server().
 * With o->tls the TLS handshake comes first; a failed one is MOAT_ETLS
 * (the message names a failed certificate check) or MOAT_EIO.
 * Returns MOAT_OK; MOAT_EIO (resolve/connect/timeout), MOAT_ECLOSED,
 * MOAT_EDENIED (CONNACK refused; the message gives the reason, by name for
 * MQTT 5), MOAT_EMALFORMED/MOAT_EPROTO (bad server), MOAT_EINVAL (options
 * or properties do not encode), MOAT_ENOMEM.  Call once per client. */
int moat_client_connect(struct moat_client *c,
			const struct moat_client_opts *o,
			bool *session_present);

/* Publish and wait until the QoS flow is complete: QoS 0 when written to
 * the socket, QoS 1 on PUBACK, QoS 2 on PUBCOMP (after PUBREC/PUBREL).
 * topic is a NUL-terminated topic name; payload may be NULL when len is 0.
 * Returns MOAT_OK; MOAT_ELIMIT (too big for MQTT, or for the server's
 * Maximum Packet Size); MOAT_EINVAL (bad topic/QoS, or a QoS, retain flag
 * or topic alias the server said it does not accept); MOAT_EDENIED (MQTT
 * 5: PUBACK, PUBREC or PUBCOMP with a reason code >= 0x80; the message
 * names it); or a connection error as for moat_client_connect(). */
int moat_client_publish(struct moat_client *c, const char *topic,
			const void *payload, size_t len, uint8_t qos,
			bool retain);
/* The same with MQTT 5 PUBLISH properties (wire-encoded, without their
 * length; NULL or empty: none), validated first.  With a Topic Alias the
 * topic is sent with the alias the first time and left out afterwards,
 * as long as the alias stands for the same topic. */
int moat_client_publish_props(struct moat_client *c, const char *topic,
			      const void *payload, size_t len, uint8_t qos,
			      bool retain, const struct moat_bytes *props);

/* Subscribe to count (>= 1) NUL-terminated topic filters at qos[i] and
 * wait for SUBACK.  granted[i] (count entries, may be NULL) receives each
 * return code: the granted QoS or MQTT_SUBACK_FAILURE.  A refused filter
 * is NOT an error here: the caller decides.  Returns as publish. */
int moat_client_subscribe(struct moat_client *c, const char *const *filters,
			  const uint8_t *qos, size_t count, uint8_t *granted);
/* The same with a full subscription options byte per filter (MQTT 5: QoS,
 * No Local 0x04, Retain As Published 0x08, Retain Handling << 4; 3.1.1:
 * only the QoS) and MQTT 5 SUBSCRIBE properties (wire-encoded without
 * their length; NULL or empty: none).  codes receives the SUBACK reason
 * codes: 0..2 granted, >= 0x80 refused (moat_mqtt_rc_name() names them;
 * moat_client_reason_string() has the SUBACK's Reason String). */
int moat_client_subscribe_props(struct moat_client *c,
				const char *const *filters,
				const uint8_t *options, size_t count,
				const struct moat_bytes *props, uint8_t *codes);

/* Unsubscribe and wait for UNSUBACK. */
int moat_client_unsubscribe(struct moat_client *c,
			    const char *const *filters, size_t count);

/* Process the connection for up to timeout_ms (< 0: no limit): deliver
 * messages, answer acknowledgements, keep alive.  Also returns early when
 * moat_client_stop() was called, when a signal interrupts poll(), or, if
 * extra_fd >= 0, when extra_fd becomes readable (then *extra_ready is set).
 * Returns MOAT_OK in all those cases, or a connection error. */
int moat_client_loop(struct moat_client *c, int timeout_ms, int extra_fd,
		     bool *extra_ready);

/* Ask moat_client_loop() to return.  From then on incoming PUBLISH packets
 * are neither delivered nor acknowledged, so that a persistent session
 * keeps them for the next connection.  Safe inside the message callback
 * (not in a signal handler). */
void moat_client_stop(struct moat_client *c);
bool moat_client_stopped(const struct moat_client *c);

/* Send DISCONNECT and close the connection gracefully (waits a short,
 * bounded time for the server to close its side, so that nothing we sent
 * is lost to a reset).  The will is discarded by the server. */
int moat_client_disconnect(struct moat_client *c);
/* MQTT 5: DISCONNECT with a reason code and properties (wire-encoded
 * without their length; NULL or empty: none).  A non-zero Session Expiry
 * Interval after a CONNECT with 0 is refused (MOAT_EINVAL)
 * [MQTT-3.14.2-2]. */
int moat_client_disconnect_props(struct moat_client *c, uint8_t reason,
				 const struct moat_bytes *props);

/* One line describing the last error (static storage in c; "" if none). */
const char *moat_client_errmsg(const struct moat_client *c);
/* The Reason String of the last acknowledgement that carried one, with
 * control and non-ASCII characters escaped ("" if none). */
const char *moat_client_reason_string(const struct moat_client *c);
/* The client id in use, for messages (escaped like the debug lines):
 * the server's Assigned Client Identifier when it sent one, else ours
 * ("(empty)" for an empty one).  "" before moat_client_connect(). */
const char *moat_client_id(const struct moat_client *c);
/* The protocol level of the connection (3, 4 or 5; 0 before connect). */
uint8_t moat_client_version(const struct moat_client *c);
/* The server's announced limits (after a successful connect). */
const struct moat_client_server *moat_client_server(const struct moat_client *c);

/* moat_client_connack_str(): client_proto.h. */

#endif
