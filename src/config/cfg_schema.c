/* The directive table: the single source for parsing, defaults and docs.
 * Keep docs/configuration.md in step (it lists the same rows). */
#include <stddef.h>

#include "cfg_int.h"

#define OFF(f) offsetof(struct moat_config, f)
#define KIB 1024ull
#define MIB (1024ull * 1024ull)
#define GIB (1024ull * 1024ull * 1024ull)

const struct moat_cfg_directive moat__cfg_directives[] = {
	{"listener", CFG_LISTENER, 0, 0, 65535, NULL,
	 "listener PORT [ADDRESS]: accept MQTT on TCP PORT (0 = any free "
	 "port) at a numeric address (default: all addresses). Repeatable. "
	 "With no listener, moatd listens on 127.0.0.1:1883 only."},
	{"allow_insecure_listener", CFG_BOOL, OFF(allow_insecure_listener), 0,
	 1, "false",
	 "Permit a listener on a non-loopback address without TLS and "
	 "authentication. Logged as a warning at every start."},
	{"workers", CFG_U32, OFF(workers), 0, 256, "0",
	 "Number of worker threads, each with its own event loop. 0 = one per "
	 "online CPU."},
	{"max_packet_size", CFG_SIZE, OFF(max_packet_size), 64, 256 * MIB,
	 "1m", "Largest MQTT packet accepted or sent, including its header."},
	{"max_connect_packet_size", CFG_SIZE, OFF(max_connect_packet_size), 64,
	 256 * MIB, "16k",
	 "Largest packet accepted before CONNECT has been accepted (the "
	 "CONNECT itself, with its will). Keeps unauthenticated peers from "
	 "making the broker buffer max_packet_size each."},
	{"max_inflight_messages", CFG_U64, OFF(max_inflight_messages), 1,
	 65535, "20",
	 "QoS 1 and 2 messages per client sent but not yet acknowledged."},
	{"max_queued_messages", CFG_U64, OFF(max_queued_messages), 0, 10000000,
	 "1000",
	 "Messages queued per session beyond the in-flight window (offline "
	 "or slow clients). Further messages are dropped and counted."},
	{"max_queued_bytes", CFG_SIZE, OFF(max_queued_bytes), 0, 64 * GIB,
	 "16m", "Bytes queued per session (topic, payload and MQTT 5 "
		"properties of each message). 0 = no byte limit."},
	{"max_connections", CFG_U64, OFF(max_connections), 1, 10000000,
	 "100000", "Connections accepted in total; more are closed at once."},
	{"max_sessions", CFG_U64, OFF(max_sessions), 1, 100000000, "100000",
	 "Sessions kept in total, connected or not. A CONNECT that needs a "
	 "new session beyond it gets CONNACK 0x03 (server unavailable)."},
	{"persistent_client_expiration", CFG_DURATION,
	 OFF(persistent_client_expiration), 0, 3650ull * 86400ull, "0",
	 "Discard a clean-session-0 session after it has been disconnected "
	 "this long. 0 = keep it until max_sessions forces a choice (never "
	 "expire)."},
	{"max_retained_messages", CFG_U64, OFF(max_retained_messages), 0,
	 100000000, "100000",
	 "Retained messages kept in total. A retained PUBLISH to a new topic "
	 "beyond it is delivered but not retained (logged once)."},
	{"max_retained_bytes", CFG_SIZE, OFF(max_retained_bytes), 0, 64 * GIB,
	 "256m", "Bytes of all retained messages together (topic, payload and "
		"properties); as above."},
	{"max_subscriptions", CFG_U64, OFF(max_subscriptions), 1, 1000000,
	 "100",
	 "Subscriptions per client, and filters per SUBSCRIBE packet. "
	 "Filters beyond it get 0x80 in the SUBACK."},
	{"max_topic_length", CFG_SIZE, OFF(max_topic_length), 1, 65535, "1k",
	 "Longest topic name or filter, in bytes."},
	{"max_topic_levels", CFG_U64, OFF(max_topic_levels), 1, 1024, "32",
	 "Most '/'-separated levels in a topic name or filter."},
	{"max_keepalive", CFG_DURATION, OFF(max_keepalive), 10, 65535, "300",
	 "Largest keep-alive, in seconds, a client may ask for. MQTT 3.1.1 "
	 "cannot tell a client to use less, so a CONNECT asking for more, or "
	 "for 0 (no keep-alive at all), is refused with CONNACK 0x02."},
	{"connect_timeout", CFG_DURATION, OFF(connect_timeout), 1, 3600, "10",
	 "Seconds a new connection has to send CONNECT before it is closed."},
	{"output_buffer_size", CFG_SIZE, OFF(output_buffer_size), 4 * KIB,
	 1 * GIB, "1m",
	 "Bytes waiting to be written to one client before new messages go "
	 "to its session queue instead (slow consumers)."},
	{"sys_interval", CFG_DURATION, OFF(sys_interval), 0, 86400, "10",
	 "Seconds between $SYS/broker/... updates. 0 disables $SYS."},
	{"retain_available", CFG_BOOL, OFF(retain_available), 0, 1, "true",
	 "Keep retained messages. When false, the retain flag is ignored."},
	{"mqtt5", CFG_BOOL, OFF(mqtt5), 0, 1, "true",
	 "Accept MQTT 5.0 clients. When false, a v5 CONNECT gets CONNACK "
	 "0x01 (unacceptable protocol version), as from a 3.1.1 broker."},
	{"topic_alias_maximum", CFG_U64, OFF(topic_alias_maximum), 0, 65535,
	 "10",
	 "MQTT 5: topic aliases a client may set (advertised in CONNACK). "
	 "0 = none."},
	{"max_qos", CFG_U64, OFF(max_qos), 0, 2, "2",
	 "Highest QoS accepted from and granted to clients. MQTT 5 clients "
	 "are told in CONNACK; a 3.1.1 subscription is granted at most this."},
	{"wildcard_subscriptions", CFG_BOOL, OFF(wildcard_subscriptions), 0, 1,
	 "true", "Allow '+' and '#' in subscriptions (advertised to MQTT 5 "
		 "clients; refused with 0xA2 or 0x80 when false)."},
	{"shared_subscriptions", CFG_BOOL, OFF(shared_subscriptions), 0, 1,
	 "true", "Allow $share/GROUP/filter subscriptions (advertised; refused "
		 "with 0x9E or 0x80 when false)."},
	{"subscription_identifiers", CFG_BOOL, OFF(subscription_identifiers),
	 0, 1, "true",
	 "MQTT 5: allow Subscription Identifiers (advertised; a SUBSCRIBE "
	 "carrying one is a protocol error 0xA1 when false)."},
	{"allow_zero_length_clientid", CFG_BOOL,
	 OFF(allow_zero_length_clientid), 0, 1, "true",
	 "Accept an empty client id with clean session and assign one."},
	{"log_level", CFG_LOGLEVEL, OFF(log_level), 0, 4, "notice",
	 "error, warning, notice, info or debug."},
};

const size_t moat__cfg_ndirectives =
	sizeof(moat__cfg_directives) / sizeof(moat__cfg_directives[0]);
