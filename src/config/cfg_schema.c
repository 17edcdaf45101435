/* The directive table: the single source for parsing, defaults and docs.
 * Keep docs/configuration.md in step (it lists the same rows). */
#include <stddef.h>

#include "cfg_int.h"

/* Rows leave per_listener and values out when they are false and NULL. */
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

#define OFF(f) offsetof(struct moat_config, f)
#define LOFF(f) offsetof(struct moat_listener_cfg, f)
#define LSIZE(f) sizeof(((struct moat_listener_cfg *)0)->f)
#define BOFF(f) offsetof(struct moat_bridge_cfg, f)
#define BSIZE(f) sizeof(((struct moat_bridge_cfg *)0)->f)
#define CSIZE(f) sizeof(((struct moat_config *)0)->f)
#define KIB 1024ull
#define MIB (1024ull * 1024ull)
#define GIB (1024ull * 1024ull * 1024ull)

/* The protocol values, in enum moat_listener_proto order. */
#define PROTOCOLS "mqtt|websockets|http|coap|coaps"
static const char *const protocol_names[] = {"mqtt", "websockets", "http",
					     "coap", "coaps"};

const char *moat_cfg_protocol_name(uint32_t proto)
{
	return proto < sizeof(protocol_names) / sizeof(protocol_names[0])
		       ? protocol_names[proto]
		       : "?";
}

const struct moat_cfg_directive moat__cfg_directives[] = {
	{"listener", CFG_LISTENER, 0, 0, 65535, NULL,
	 "listener PORT [ADDRESS]: accept MQTT on TCP PORT (or CoAP on UDP "
	 "PORT, see protocol; 0 = any free port) at a numeric address "
	 "(default: all addresses). Repeatable. "
	 "With no listener, moatd listens on 127.0.0.1:1883 only."},
	{"protocol", CFG_ENUM, LOFF(protocol), 0, 4, "mqtt",
	 "(listener) What the listener above speaks: mqtt (MQTT over TCP, "
	 "or TLS when certfile is set), websockets (MQTT over WebSockets: "
	 "ws://, or wss:// when certfile is set; see docs/websockets.md), "
	 "http (/metrics, /healthz, /readyz, docs/metrics.md, the JSON "
	 "API and the leak console, docs/api.md; HTTPS when certfile is "
	 "set; served by its own threads, never the MQTT workers). An http "
	 "listener off loopback needs TLS, a password_file and an acl_file "
	 "like any other, and then answers /metrics only to administrators "
	 "(users the ACL lets subscribe to $SYS/#) by HTTP Basic "
	 "authentication; "
	 "coap (CoAP over UDP: the /ps/ topic mapping of docs/coap.md; the "
	 "usual port is 5683; loopback only unless "
	 "allow_insecure_listener) or coaps (CoAP over DTLS 1.2 with "
	 "psk_file keys and/or certfile certificates; usually 5684).",
	 true, PROTOCOLS},
	{"websockets_path", CFG_STRING, LOFF(ws_path), 0, LSIZE(ws_path),
	 "/mqtt",
	 "(listener, websockets) The HTTP path WebSocket clients must ask "
	 "for; other paths get 404.",
	 true, NULL},
	{"websockets_origin", CFG_STRING, LOFF(ws_origins), 0,
	 LSIZE(ws_origins), NULL,
	 "(listener, websockets) Comma-separated Origins that browsers may "
	 "connect from, e.g. https://app.example.com,http://localhost:8080. "
	 "Clients that send no Origin (non-browser clients) are always "
	 "accepted, and so is an Origin naming the listener itself "
	 "(scheme://Host, as paho-mqtt sends); with none configured, every "
	 "browser is refused (403).",
	 true, NULL},
	{"websockets_trusted_proxy", CFG_STRING, LOFF(ws_proxies), 0,
	 LSIZE(ws_proxies), NULL,
	 "(listener, websockets) Comma-separated numeric addresses of "
	 "reverse proxies in front of the listener. Only for connections "
	 "from them do logs also show the client address of the last "
	 "X-Forwarded-For entry; limits per address still apply to the TCP "
	 "peer.",
	 true, NULL},
	{"certfile", CFG_PATH, LOFF(certfile), 0, LSIZE(certfile), NULL,
	 "(listener) PEM certificate chain of the server; turns TLS on for "
	 "the listener above it. Needs keyfile.", true, NULL},
	{"keyfile", CFG_PATH, LOFF(keyfile), 0, LSIZE(keyfile), NULL,
	 "(listener) PEM private key of certfile. Refused when it is a "
	 "symbolic link, writable by its group or readable by other users.",
	 true, NULL},
	{"cafile", CFG_PATH, LOFF(cafile), 0, LSIZE(cafile), NULL,
	 "(listener) PEM CA certificates that client certificates are "
	 "verified against (mutual TLS).", true, NULL},
	{"crlfile", CFG_PATH, LOFF(crlfile), 0, LSIZE(crlfile), NULL,
	 "(listener) PEM certificate revocation list checked for client "
	 "certificates.", true, NULL},
	{"require_certificate", CFG_BOOL, LOFF(require_certificate), 0, 1,
	 "false",
	 "(listener) Refuse TLS clients without a certificate that verifies "
	 "against cafile.", true, NULL},
	{"use_identity_as_username", CFG_ENUM, LOFF(use_identity_as_username),
	 0, 3, "false",
	 "(listener) Authenticate clients by their certificate: the user "
	 "name is its subject CN (true or cn) or its first DNS, e-mail or URI "
	 "subjectAltName (san); any user name or password in CONNECT is "
	 "ignored. Needs require_certificate.",
	 true, "false|true|cn|san"},
	{"tls_version", CFG_ENUM, LOFF(tls_version), 0, 1, "tlsv1.2",
	 "(listener) Oldest TLS version accepted: tlsv1.2 or tlsv1.3. TLS 1.3 "
	 "is preferred whenever the client has it.",
	 true, "tlsv1.2|tlsv1.3"},
	{"ciphers", CFG_STRING, LOFF(ciphers), 0, LSIZE(ciphers),
	 "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
	 "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
	 "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305",
	 "(listener) OpenSSL cipher list for TLS 1.2 (forward-secret AEAD "
	 "suites only by default).", true, NULL},
	{"ciphersuites", CFG_STRING, LOFF(ciphersuites), 0, LSIZE(ciphersuites),
	 "TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256:"
	 "TLS_AES_128_GCM_SHA256",
	 "(listener) OpenSSL TLS 1.3 cipher suites.", true, NULL},
	{"allow_insecure_listener", CFG_BOOL, OFF(allow_insecure_listener), 0,
	 1, "false",
	 "Permit a listener on a non-loopback address without TLS, without "
	 "authentication, with anonymous access or without an acl_file. "
	 "Logged as a warning at every start."},
	{"allow_anonymous", CFG_ENUM, OFF(allow_anonymous), 0, 2, "loopback",
	 "Accept clients that send no user name (and, without a "
	 "password_file, any user name, treated as anonymous): false, true, "
	 "or loopback (only on listeners bound to a loopback address).",
	 false, "false|true|loopback"},
	{"password_file", CFG_PATH, OFF(password_file), 0, CSIZE(password_file),
	 NULL,
	 "mosquitto-format password file (see moat passwd). Clients sending "
	 "a user name must match it. Refused when it is a symbolic link, "
	 "writable by its group or readable by other users.", false, NULL},
	{"acl_file", CFG_PATH, OFF(acl_file), 0, CSIZE(acl_file), NULL,
	 "mosquitto-format ACL file; deny by default (docs/security.md). "
	 "Without one, every client may publish and subscribe to every topic "
	 "but $SYS. Refused like password_file when not private.", false,
	 NULL},
	{"psk_file", CFG_PATH, OFF(psk_file), 0, CSIZE(psk_file), NULL,
	 "Pre-shared keys of CoAP clients over DTLS (protocol coaps), one "
	 "identity:hexkey per line (mosquitto's format); the identity is the "
	 "client's user name for the ACL. Refused like password_file when "
	 "not private.", false, NULL},
	{"auth_backoff_initial", CFG_MSEC, OFF(auth_backoff_initial_ms), 0,
	 3600000, "1s",
	 "Delay before the next login attempt for the same user name from "
	 "the same address, or for the same user name from anywhere, after "
	 "one failure; doubles with each further failure. Failures for other "
	 "user names never delay a login (see auth_rate_per_ip). 0 = no "
	 "delay."},
	{"auth_backoff_max", CFG_MSEC, OFF(auth_backoff_max_ms), 0, 3600000,
	 "5m", "Longest login delay after repeated failures."},
	{"max_connections_per_ip", CFG_U64, OFF(max_connections_per_ip), 0,
	 10000000, "32",
	 "Connections at once from one IP address that have not completed "
	 "authentication (TLS handshake, CONNECT, password check) or are "
	 "anonymous; a connection authenticated by password or certificate "
	 "no longer counts, so any number of devices behind one NAT address "
	 "can be connected (see max_connections_per_user). Loopback "
	 "addresses are exempt. 0 = no limit."},
	{"max_accept_rate_per_ip", CFG_U64, OFF(max_accept_rate_per_ip), 0,
	 1000000, "20",
	 "New connections per second from one IP address, with bursts of "
	 "twice that; a connection that authenticates gives its token back, "
	 "so only connections that fail or stay anonymous use the rate up "
	 "(loopback exempt). 0 = no limit."},
	{"max_connections_per_user", CFG_U64, OFF(max_connections_per_user),
	 0, 10000000, "0",
	 "Authenticated connections at once for one user name; one more is "
	 "refused with CONNACK 0x03 (MQTT 5: 0x97). 0 = no limit."},
	{"auth_rate_per_ip", CFG_U64, OFF(auth_rate_per_ip), 0, 1000000, "20",
	 "Password checks per second started for an IP address that has 10 "
	 "or more failed logins on record (it is paced, never refused: a "
	 "correct login from it waits its turn). Checks wait in a fair queue "
	 "per address and user name. 0 = no pacing."},
	{"limit_loopback", CFG_BOOL, OFF(limit_loopback), 0, 1, "false",
	 "Apply max_connections_per_ip and max_accept_rate_per_ip, and the "
	 "CoAP request rates (per peer and coap_request_rate_per_ip), to "
	 "loopback peers too (by default local tools are exempt)."},
	{"coap_request_rate_per_ip", CFG_U64, OFF(coap_request_rate_per_ip),
	 0, 1000000, "200",
	 "CoAP requests per second from one IP address (any port), with "
	 "bursts of twice that, by peers whose address is not validated "
	 "(plaintext CoAP before an Echo round trip, RFC 9175). Beyond it a "
	 "CON request is answered with 4.01 + Echo (as many again per second), "
	 "so a device behind a shared NAT address validates its address and "
	 "goes on under the per-peer limit; further requests are dropped. "
	 "DTLS peers and validated ones are limited per address and port "
	 "only (200/s), unless coap_rate_per_ip_strict. Loopback addresses "
	 "are exempt unless limit_loopback. 0 = no limit."},
	{"coap_rate_per_ip_strict", CFG_BOOL, OFF(coap_rate_per_ip_strict), 0,
	 1, "false",
	 "Apply coap_request_rate_per_ip to every CoAP peer of an address, "
	 "DTLS and validated peers too (one budget for a whole NAT address: "
	 "strict, may refuse legal fleets)."},
	{"max_publish_rate", CFG_U64, OFF(max_publish_rate), 0, 100000000, "0",
	 "PUBLISH packets per second one client may send, with bursts of "
	 "twice that; more disconnects it (MQTT 5: 0x96 message rate too "
	 "high). 0 = no limit."},
	{"memory_limit", CFG_SIZE, OFF(memory_limit), 0, 1024 * GIB, "0",
	 "Memory the broker may hold for messages, sessions and connections. "
	 "Beyond it new connections and new messages are refused (MQTT 5: "
	 "0x97 quota exceeded) until memory is freed. 0 = three quarters of "
	 "the machine's RAM."},
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
	 "Largest keep-alive, in seconds, a client may use. MQTT 5 clients "
	 "asking for more, or for 0 (none), are told to use max_keepalive "
	 "(Server Keep Alive). MQTT 3.1.1 and 3.1 cannot be told: their "
	 "keep-alive is accepted as asked (0 = none), and TCP keep-alive "
	 "probes drop a peer that vanished within 1.5 x max_keepalive "
	 "(see strict_keepalive)."},
	{"strict_keepalive", CFG_BOOL, OFF(strict_keepalive), 0, 1, "false",
	 "Refuse MQTT 3.1.1 and 3.1 clients that ask for keep-alive 0 or for "
	 "more than max_keepalive (CONNACK 0x02) instead of accepting them "
	 "with TCP keep-alive probes."},
	{"connect_timeout", CFG_DURATION, OFF(connect_timeout), 1, 3600, "10",
	 "Seconds a new connection has to send CONNECT before it is closed "
	 "(and a bridge's remote to answer its CONNECT with CONNACK)."},
	{"output_buffer_size", CFG_SIZE, OFF(output_buffer_size), 4 * KIB,
	 1 * GIB, "1m",
	 "Bytes waiting to be written to one client before new messages go "
	 "to its session queue instead (slow consumers)."},
	{"sys_interval", CFG_DURATION, OFF(sys_interval), 0, 86400, "10",
	 "Seconds between $SYS/broker/... updates. 0 disables $SYS."},
	{"leak_detection", CFG_BOOL, OFF(leak_detection), 0, 1, "true",
	 "Scan PUBLISH topics, payloads and MQTT 5 properties (user "
	 "properties, response topic, content type, correlation data), and "
	 "will payloads, for private data (docs/leaks.md) and act on what is "
	 "found by the first matching leak_policy (default: alert)."},
	{"leak_key_file", CFG_PATH, OFF(leak_key_file), 0,
	 CSIZE(leak_key_file), NULL,
	 "Install key for the HMACs that identify findings in logs and "
	 "events (32 bytes, or 64 hex digits; private like a password "
	 "file). The same key gives the same HMACs in moat scan --key-file. "
	 "Without it, a random key per start."},
	{"leak_policy", CFG_LEAK_POLICY, 0, 0, 0, NULL,
	 "leak_policy TOPIC-FILTER CATEGORY|all log|alert|redact|block: what "
	 "to do with a finding of CATEGORY in a message on a topic matching "
	 "the filter. Repeatable; the first line that matches a finding "
	 "decides. log: a log line; alert: a log line and an event on "
	 "$SYS/moat/leaks/CATEGORY; redact: also replace the matched bytes "
	 "before anyone receives them; block: also drop the message. A "
	 "finding no line matches is alerted."},
	{"persistence", CFG_BOOL, OFF(persistence), 0, 1, "false",
	 "Keep retained messages, persistent sessions (subscriptions, "
	 "queued and in-flight QoS 1/2 messages, incoming QoS 2 ids, wills) "
	 "in an SQLite database in persistence_location, restored at start. "
	 "See docs/persistence.md."},
	{"persistence_location", CFG_PATH, OFF(persistence_location), 0,
	 CSIZE(persistence_location), "/var/lib/moat",
	 "Directory of the database (moat.db, created 0600; the directory is "
	 "created 0700 when missing). Restart-only."},
	{"persistence_sync", CFG_ENUM, OFF(persistence_sync), 0, 2, "full",
	 "full: a PUBACK/PUBREC (and SUBACK, CONNACK, outgoing QoS 2 steps) "
	 "is sent only once what it acknowledges is committed and fsynced: "
	 "survives a crash of moatd and of the machine. normal: committed "
	 "but not fsynced at each commit: survives a crash of moatd, a power "
	 "cut may lose the last commits. off: acknowledgements do not wait; "
	 "a crash loses what was not yet written (about the last 100 ms).",
	 false, "full|normal|off"},
	{"cluster_nats_url", CFG_STRING, OFF(cluster_nats_url), 0,
	 CSIZE(cluster_nats_url), NULL,
	 "Cluster mode (docs/cluster.md): comma-separated NATS servers "
	 "(nats://host:port, tls://host:port) with JetStream, e.g. "
	 "nats://10.0.0.1:4222,nats://10.0.0.2:4222. Unset (the default): "
	 "no cluster. Nodes forward what their clients publish and receive "
	 "what their subscribers need; ACLs, leak detection and limits "
	 "apply at the node a client is connected to. Restart-only."},
	{"cluster_node_id", CFG_STRING, OFF(cluster_node_id), 0,
	 CSIZE(cluster_node_id), NULL,
	 "This node's name in the cluster: letters, digits, '-' and '_' "
	 "(default: the host name). Unique per node. Restart-only."},
	{"cluster_nats_cafile", CFG_PATH, OFF(cluster_nats_cafile), 0,
	 CSIZE(cluster_nats_cafile), NULL,
	 "PEM CA certificates that NATS servers' certificates must chain "
	 "to; turns TLS to NATS on (also implied by tls:// URLs)."},
	{"cluster_nats_certfile", CFG_PATH, OFF(cluster_nats_certfile), 0,
	 CSIZE(cluster_nats_certfile), NULL,
	 "PEM client certificate chain presented to NATS servers (TLS "
	 "client authentication). Needs cluster_nats_keyfile."},
	{"cluster_nats_keyfile", CFG_PATH, OFF(cluster_nats_keyfile), 0,
	 CSIZE(cluster_nats_keyfile), NULL,
	 "PEM private key of cluster_nats_certfile."},
	{"cluster_nats_creds", CFG_PATH, OFF(cluster_nats_creds), 0,
	 CSIZE(cluster_nats_creds), NULL,
	 "NATS credentials file (user JWT and NKey seed, as nsc writes it) "
	 "for decentralised NATS authentication."},
	{"cluster_nats_user", CFG_STRING, OFF(cluster_nats_user), 0,
	 CSIZE(cluster_nats_user), NULL,
	 "NATS user name (with cluster_nats_password_file)."},
	{"cluster_nats_password_file", CFG_PATH,
	 OFF(cluster_nats_password_file), 0,
	 CSIZE(cluster_nats_password_file), NULL,
	 "File whose first line is the NATS password of cluster_nats_user "
	 "(kept out of the configuration file)."},
	{"cluster_replicas", CFG_U64, OFF(cluster_replicas), 1, 5, "3",
	 "Replicas of the cluster's JetStream stream (QoS 1/2 messages): "
	 "3 survives the loss of one NATS server. At most the number of "
	 "NATS servers."},
	{"cluster_max_pending", CFG_U64, OFF(cluster_max_pending), 16,
	 10000000, "10000",
	 "QoS 1/2 messages this node keeps while they wait for JetStream to "
	 "store them (their PUBACK/PUBREC waits too; retried until stored). "
	 "Beyond it new QoS 1/2 publishes are refused until NATS catches "
	 "up (MQTT 5: reason 0x97; 3.1.1: disconnected)."},
	{"cluster_stream_max_age", CFG_DURATION, OFF(cluster_stream_max_age),
	 60, 31536000, "1h",
	 "How long the stream keeps QoS 1/2 messages: a node that lost NATS "
	 "catches up on what was published meanwhile, within this age."},
	{"cluster_stream_max_bytes", CFG_SIZE, OFF(cluster_stream_max_bytes),
	 MIB, 1024 * GIB, "1g",
	 "Size bound of the stream (oldest messages go first)."},
	{"cluster_session_recovery", CFG_BOOL,
	 OFF(cluster_session_recovery), 0, 1, "true",
	 "Cluster mode: keep a record of each persistent "
	 "session (subscriptions, when it last had nothing waiting) in the "
	 "JetStream bucket MOAT_SESSIONS, so that when its node is lost its "
	 "client, connecting to another node, gets its subscriptions back "
	 "and the QoS 1/2 messages of the stream since then "
	 "(docs/cluster.md). Restart-only."},
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
	{"user", CFG_STRING, OFF(user), 0, CSIZE(user), "moat",
	 "Started as root, moatd binds its listeners and opens its files "
	 "(password file, ACL, certificates, keys), then runs as this user: "
	 "its uid and primary group, supplementary groups cleared. When the "
	 "default user moat does not exist it falls back to nobody (a "
	 "warning says so); another user that does not exist is an error. "
	 "user root keeps root (the only way to; warned at every start). "
	 "Ignored when not started as root. Restart-only. See docs/install.md."},
	{"log_level", CFG_LOGLEVEL, OFF(log_level), 0, 4, "notice",
	 "error, warning, notice, info or debug."},
	{"log_format", CFG_ENUM, OFF(log_format), 0, 1, "text",
	 "text: 'TIME level: message' lines; json: one JSON object per line "
	 "with ts, level, msg and, on security and leak lines, event and "
	 "its fields (docs/logging.md).",
	 false, "text|json"},
	{"log_dest", CFG_LOG_DEST, OFF(log_dest), 0, 0, "stderr",
	 "log_dest stderr|syslog|file PATH: where log lines go. syslog: "
	 "the daemon facility, as moatd. file: appended to PATH (created "
	 "0600, never through a symbolic link) and opened again on SIGHUP, "
	 "for logrotate."},
	/* Bridges: docs/bridges.md.  Rows after a connection line apply to
	 * it (per_bridge); the last field of each row. */
	{"connection", CFG_BRIDGE, 0, 0, 0, NULL,
	 "connection NAME: start a bridge to a remote broker (mosquitto's "
	 "syntax; at most 8). The directives below it, up to the next "
	 "connection, configure it. moatd connects out, subscribes there "
	 "to the in topics and here to the out topics, and forwards both "
	 "ways. In the local ACL and leak detector the bridge is the user "
	 "local_username (default: NAME). Restart-only. See "
	 "docs/bridges.md."},
	{"address", CFG_BRIDGE_ADDRESS, 0, 0, 0, NULL,
	 "(connection) HOST[:PORT] [HOST[:PORT] ...] (default port 1883; "
	 "[V6]:PORT for IPv6; up to 4): the remote broker, and fail-over "
	 "addresses tried in turn when a connection fails. Names are "
	 "resolved without blocking the workers.",
	 false, NULL, true},
	{"addresses", CFG_BRIDGE_ADDRESS, 0, 0, 0, NULL,
	 "(connection) Another name for address (as in mosquitto).", false,
	 NULL, true},
	{"topic", CFG_BRIDGE_TOPIC, 0, 0, 0, NULL,
	 "(connection) PATTERN [in|out|both [QOS [LOCAL_PREFIX "
	 "[REMOTE_PREFIX]]]], repeatable (up to 16): out forwards local "
	 "messages matching LOCAL_PREFIX+PATTERN to the remote as "
	 "REMOTE_PREFIX+the rest; in the reverse; both, both. Direction "
	 "defaults to out, QoS (of the subscriptions made for it) to 0; "
	 "\"\" writes an empty pattern or prefix (an empty pattern makes "
	 "the two prefixes one local and one remote topic).",
	 false, NULL, true},
	{"remote_username", CFG_STRING, BOFF(remote_username), 0,
	 BSIZE(remote_username), NULL,
	 "(connection) User name sent to the remote broker.", false, NULL,
	 true},
	{"remote_password", CFG_BRIDGE_SECRET, 0, 0, 0, NULL,
	 "(connection) Password sent to the remote broker. Refused unless "
	 "the config file is private (no access for other users, not "
	 "writable by its group: chmod o-rwx,g-w); or use "
	 "remote_password_file. Never logged.",
	 false, NULL, true},
	{"remote_password_file", CFG_PATH, BOFF(remote_password_file), 0,
	 BSIZE(remote_password_file), NULL,
	 "(connection) A private file (same rules as password_file) whose "
	 "first line is the remote password. Read at start.",
	 false, NULL, true},
	{"remote_clientid", CFG_STRING, BOFF(remote_clientid), 0,
	 BSIZE(remote_clientid), NULL,
	 "(connection) Client id on the remote broker. Default: "
	 "HOSTNAME.NAME (as mosquitto).",
	 false, NULL, true},
	{"local_username", CFG_STRING, BOFF(local_username), 0,
	 BSIZE(local_username), NULL,
	 "(connection) The bridge's user name on this broker: the ACL "
	 "decides with it what the bridge may publish here (in topics) and "
	 "read here (out topics), and the leak detector and its per-client "
	 "counts name it. Default: the connection NAME. No password is "
	 "needed (the bridge is inside moatd).",
	 false, NULL, true},
	{"local_clientid", CFG_STRING, BOFF(local_clientid), 0,
	 BSIZE(local_clientid), NULL,
	 "(connection) The bridge's client id here (logs, %c in ACL "
	 "patterns). Default: local.REMOTE_CLIENTID (as mosquitto). It is "
	 "never in the client id table: no client can take it over.",
	 false, NULL, true},
	{"bridge_cafile", CFG_PATH, BOFF(cafile), 0, BSIZE(cafile), NULL,
	 "(connection) PEM CA certificates the remote's certificate is "
	 "verified against; turns TLS on for the bridge (as do "
	 "bridge_capath, bridge_certfile and bridge_tls_use_os_certs). The certificate must name "
	 "the address's host unless bridge_insecure.",
	 false, NULL, true},
	{"bridge_capath", CFG_PATH, BOFF(capath), 0, BSIZE(capath), NULL,
	 "(connection) Directory of hashed CA certificates (c_rehash), "
	 "instead of or besides bridge_cafile.",
	 false, NULL, true},
	{"bridge_certfile", CFG_PATH, BOFF(certfile), 0, BSIZE(certfile),
	 NULL,
	 "(connection) PEM client certificate for the remote broker (with "
	 "bridge_keyfile). Without bridge_cafile/bridge_capath the system's "
	 "trust store verifies the remote.",
	 false, NULL, true},
	{"bridge_keyfile", CFG_PATH, BOFF(keyfile), 0, BSIZE(keyfile), NULL,
	 "(connection) PEM private key of bridge_certfile.", false, NULL,
	 true},
	{"bridge_tls_use_os_certs", CFG_BOOL, BOFF(tls_os_certs), 0, 1,
	 "false",
	 "(connection) TLS to the remote, verified against the system's "
	 "trust store (/etc/ssl/certs) when neither bridge_cafile nor "
	 "bridge_capath is set.",
	 false, NULL, true},
	{"bridge_insecure", CFG_BOOL, BOFF(insecure), 0, 1, "false",
	 "(connection) Do not check that the remote's certificate names the "
	 "host connected to (the chain is still verified). Reported by "
	 "moatd --check.",
	 false, NULL, true},
	{"bridge_protocol_version", CFG_ENUM, BOFF(protocol_version), 0, 1,
	 "mqttv311",
	 "(connection) MQTT version spoken to the remote: mqttv311 or "
	 "mqttv50 (its subscriptions then use No Local and Retain As "
	 "Published, so nothing comes back that the bridge sent).",
	 false, "mqttv311|mqttv50", true},
	{"bridge_tls_version", CFG_ENUM, BOFF(tls_version), 0, 1, "tlsv1.2",
	 "(connection) Oldest TLS version accepted from the remote.", false,
	 "tlsv1.2|tlsv1.3", true},
	{"cleansession", CFG_BOOL, BOFF(cleansession), 0, 1, "false",
	 "(connection) Ask the remote for a clean session on every connection "
	 "(MQTT 5: session expiry 0; else never expiring). With false the "
	 "remote keeps the bridge's subscriptions and queues for it while "
	 "it is away.",
	 false, NULL, true},
	{"keepalive_interval", CFG_DURATION, BOFF(keepalive), 5, 65535, "60",
	 "(connection) Keep-alive with the remote: a PINGREQ when that long "
	 "passed without one; no answer within 1.5 times it ends the "
	 "connection.",
	 false, NULL, true},
	{"restart_timeout", CFG_BRIDGE_RESTART, 0, 0, 0, "5 30",
	 "(connection) BASE [CAP] seconds: after a failed or lost "
	 "connection, wait BASE, then randomly between BASE and three times "
	 "the last wait, at most CAP (mosquitto's jittered back-off); one "
	 "value: always that long.",
	 false, NULL, true},
	{"try_private", CFG_BOOL, BOFF(try_private), 0, 1, "true",
	 "(connection) MQTT 3.1.1: set the bridge bit in CONNECT's protocol "
	 "level (0x84, as mosquitto): a remote mosquitto or moatd then "
	 "sends the bridge nothing it published itself (no loop) and keeps "
	 "retain flags.",
	 false, NULL, true},
	{"notifications", CFG_BOOL, BOFF(notifications), 0, 1, "true",
	 "(connection) Also publish the bridge's state (retained 1 when up, "
	 "0 as its will) on the remote, to notification_topic. The local "
	 "state is always in $SYS/broker/connection/NAME/state.",
	 false, NULL, true},
	{"notifications_local_only", CFG_BOOL, BOFF(notifications_local_only),
	 0, 1, "false",
	 "(connection) Publish the state only locally (not on the remote).",
	 false, NULL, true},
	{"notification_topic", CFG_STRING, BOFF(notification_topic), 0,
	 BSIZE(notification_topic), NULL,
	 "(connection) Remote topic of the notifications. Default: "
	 "$SYS/broker/connection/REMOTE_CLIENTID/state (as mosquitto; a "
	 "remote moatd accepts it when its ACL lets the bridge's user write "
	 "there).",
	 false, NULL, true},
	{"round_robin", CFG_BOOL, BOFF(round_robin), 0, 1, "false",
	 "(connection) With several addresses: false treats the first as "
	 "the main one: a lost connection starts again there, and while "
	 "connected to another address a TCP connection to the first (a "
	 "numeric address) is tried every restart_timeout BASE (at least "
	 "5 s) and the bridge moves back once it is accepted; true carries "
	 "on with the next address.",
	 false, NULL, true},
	{"start_type", CFG_ENUM, BOFF(start_type), 0, 0, "automatic",
	 "(connection) automatic only: connect at start and reconnect "
	 "after every failure (mosquitto's lazy and once are refused).",
	 false, "automatic", true},
};

const size_t moat__cfg_ndirectives =
	sizeof(moat__cfg_directives) / sizeof(moat__cfg_directives[0]);
