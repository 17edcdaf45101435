/* The findings catalogue (one row per id) and the finding list.
 * docs/security-checks.md repeats this table for readers: change both. */
#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "check/findings.h"
#include "common/moat_common.h"

static const struct moat_finding_def catalogue[] = {
	{"AUD-CFG-01", MOAT_SEV_HIGH, "Anonymous access on a network listener",
	 "Clients that send no user name are accepted on a listener that is "
	 "reachable from the network, so anyone who can reach the port can "
	 "connect. This is how most exposed brokers found by internet scans "
	 "leak their data (T-01). Critical when the listener also has no TLS "
	 "and no ACL.",
	 "Set allow_anonymous false (moatd: or loopback) and give every client "
	 "a user name and password (password_file, made with `moat passwd`) "
	 "or a client certificate (require_certificate and "
	 "use_identity_as_username). If anonymous access is really wanted, "
	 "bind the listener to 127.0.0.1."},
	{"AUD-CFG-02", MOAT_SEV_HIGH,
	 "No ACL: every client may read every topic",
	 "Without an acl_file (or an authorisation plugin), every client that "
	 "can log in may subscribe to # and publish anywhere, so one stolen "
	 "device credential exposes all data and can command every actuator "
	 "(T-04, T-12). An empty ACL file denies everything in moatd and in "
	 "mosquitto 1.5 and later, but allowed everything in older mosquitto "
	 "(CVE-2018-12550); it is reported as medium (mosquitto) or low "
	 "(moatd).",
	 "Add an acl_file with one section per user that grants only the "
	 "topics it needs (`user NAME`, then `topic read|write|readwrite "
	 "TOPIC`); use `pattern` with %u or %c for per-device trees. Test it "
	 "with a low-privilege account."},
	{"AUD-CFG-03", MOAT_SEV_HIGH,
	 "Configuration the broker refuses or misreads",
	 "An unknown or misspelt directive, an invalid value, a missing file "
	 "or options that contradict each other make the broker refuse to "
	 "start or to reload (moatd and mosquitto 2 fail closed). With older "
	 "or more tolerant brokers a misspelt security directive silently "
	 "leaves the insecure default in place (T-12).",
	 "Correct or remove the line named in the finding (see `moatd "
	 "--help-config` or mosquitto.conf(5)) and run the check again; "
	 "confirm with `moatd --test-config` before deploying."},
	{"AUD-CFG-04", MOAT_SEV_HIGH,
	 "Secret or policy file open to other users, or a symbolic link",
	 "Password hashes, private keys, ACLs and the persistence database "
	 "must be readable only by the broker's user. A file other local "
	 "users can read leaks credentials and messages (CVE-2017-9868); one "
	 "they can write lets them grant themselves access; a symbolic link "
	 "can be re-pointed by whoever controls the directory it is in. moatd "
	 "refuses such files (T-21). A link to a private file is reported as "
	 "low for mosquitto, which follows links.",
	 "chown the file to the broker's user, `chmod 0600` it (0640 with a "
	 "dedicated group if a deployment tool must read it), and point the "
	 "directive at the file itself instead of a link."},
	{"AUD-CFG-05", MOAT_SEV_HIGH, "Broker runs as root",
	 "A memory-safety bug in the broker (the threat model lists many in "
	 "MQTT brokers) then gives an attacker the whole host instead of an "
	 "unprivileged account (T-22).",
	 "Remove `user root`, so that mosquitto drops to the `mosquitto` user "
	 "after reading its files, or name another unprivileged account; give "
	 "that account read access to the key through a group or a "
	 "certificate deploy hook."},
	{"AUD-CFG-06", MOAT_SEV_LOW,
	 "Logs record topics, identities or connection details",
	 "Debug logging writes every client id, user name, peer address and "
	 "topic name (topics often carry device ids, names or places) into "
	 "log files that are kept longer and read by more people than the "
	 "broker's data (T-29). mosquitto's `log_dest topic` even publishes "
	 "log lines on $SYS/broker/log/# (medium).",
	 "Log at notice or information level in production (moatd: log_level "
	 "notice; mosquitto: log_type error, warning, notice, information); "
	 "turn debug on only briefly while troubleshooting; do not use "
	 "`log_dest topic`."},
	{"AUD-CFG-07", MOAT_SEV_MEDIUM,
	 "Network safety interlock disabled (allow_insecure_listener)",
	 "moatd refuses to start a listener that is reachable from the network "
	 "without TLS, authentication or an ACL, unless "
	 "allow_insecure_listener is true. With it set such a listener starts "
	 "with only a warning, and later edits that weaken a listener are no "
	 "longer caught. Low when no listener currently needs it.",
	 "Fix the listener findings (TLS, password_file, acl_file) or bind the "
	 "listener to 127.0.0.1, then remove allow_insecure_listener."},
	{"AUD-CFG-08", MOAT_SEV_MEDIUM, "Weak or legacy password hashes",
	 "`$6$` hashes are one round of salted SHA-512: if the password file "
	 "leaks, a GPU tests billions of guesses per second. Low for `$7$` "
	 "(PBKDF2-SHA512) with fewer than 210000 iterations (mosquitto 2.0 "
	 "uses 101); high for a password stored without any hash, which "
	 "anyone who sees the file can read (T-03).",
	 "Re-hash with `moat passwd FILE USER` (argon2id) for each listed "
	 "user; clients keep their passwords and need no change. Prefer new, "
	 "random passwords if the file may have leaked."},
	{"AUD-CFG-09", MOAT_SEV_INFO,
	 "Authentication or authorisation delegated to a plugin",
	 "A mosquitto plugin (auth_plugin, plugin, e.g. dynamic security) "
	 "decides who may connect and what they may read; its rules are not "
	 "in this file, so the lint cannot check them.",
	 "Review the plugin's own configuration (for dynamic security: no "
	 "role may grant # to the anonymous group or to every client) and run "
	 "`moat audit` against the running broker."},
	{"AUD-MQ-01", MOAT_SEV_HIGH,
	 "Plaintext MQTT listener reachable from the network",
	 "Without TLS, user names, passwords and every payload cross the "
	 "network in clear text and can be read or changed by anyone on the "
	 "path: Wi-Fi, LAN, provider (T-02, MQTT 5.0 section 5.4.5).",
	 "Add certfile and keyfile to the listener (TLS, port 8883), or bind "
	 "it to 127.0.0.1 for local clients only."},
	{"AUD-MQ-02", MOAT_SEV_HIGH, "Anonymous access accepted",
	 "The running broker accepted a CONNECT without user name and "
	 "password (or with a made-up one), so anyone who can reach the port "
	 "can read and publish whatever anonymous clients may (T-01). Most "
	 "brokers found by internet scans leak data this way. Medium on a "
	 "loopback address (only local users and programs reach it).",
	 "Refuse anonymous clients (moatd: allow_anonymous false; mosquitto: "
	 "allow_anonymous false, the 2.x default on configured listeners) and "
	 "give every client its own user name and password (`moat passwd`) "
	 "or client certificate."},
	{"AUD-MQ-03", MOAT_SEV_HIGH,
	 "Default or well-known credentials accepted",
	 "A user name and password from the short list of vendor defaults "
	 "and passwords seen in internet scans (admin/admin, user/12345, ...) "
	 "logged in. Attackers try exactly these first (T-03, ETSI EN 303 645 "
	 "provision 5.1-1).",
	 "Change that account's password to a long random one (`moat passwd "
	 "FILE USER`) or remove the account; never ship or keep a default "
	 "password."},
	{"AUD-MQ-03b", MOAT_SEV_MEDIUM, "Login throttling disabled",
	 "Failed logins are not delayed (moatd: auth_backoff_initial 0; "
	 "mosquitto has no login back-off at all), so passwords can be "
	 "guessed as fast as the network allows (T-03).",
	 "moatd: remove auth_backoff_initial (default 1s, doubling up to "
	 "auth_backoff_max, 5m). Brokers without a back-off: use long random "
	 "passwords or client certificates, and rate-limit new connections "
	 "in front of the broker (firewall, fail2ban on its log)."},
	{"AUD-MQ-04", MOAT_SEV_MEDIUM,
	 "$SYS broker statistics readable by any client",
	 "$SYS/# tells the broker version (to look up its CVEs), client "
	 "counts and load, which helps an attacker fingerprint and time "
	 "attacks (T-05). mosquitto publishes it every sys_interval (10 s by "
	 "default) to every client unless an ACL restricts it.",
	 "Set sys_interval 0, or restrict $SYS with the ACL: grant `topic "
	 "read $SYS/#` only in an administrator's `user` section, never before "
	 "the first `user` line nor in a `pattern`."},
	{"AUD-MQ-05", MOAT_SEV_HIGH,
	 "ACL grants every topic (#) to anonymous clients or to everyone",
	 "A `topic read #` line before the first `user` line applies to "
	 "anonymous clients; `pattern read #` (or +/#) applies to every "
	 "client. Either lets one client harvest all traffic (T-04). Medium "
	 "when no listener currently accepts anonymous clients.",
	 "Replace the grant with the narrow topics clients need (e.g. `pattern "
	 "read devices/%u/#`) and grant # only inside an administrator's "
	 "`user` section."},
	{"AUD-MQ-06", MOAT_SEV_MEDIUM, "Retained messages readable",
	 "Retained messages are the last value of each topic, handed to every "
	 "new subscriber at once: whoever may subscribe gets the current state "
	 "of every device without waiting (T-06). High for anonymous clients; "
	 "low for a test account (check that it should read them).",
	 "Restrict reading with the ACL (deny by default, narrow grants per "
	 "account), clear stale retained topics (publish an empty retained "
	 "message), and set a message expiry on retained data where it ages."},
	{"AUD-MQ-07", MOAT_SEV_HIGH,
	 "Will delivered on a topic the client may not publish on",
	 "A client registers a will on a topic it is not allowed to publish "
	 "on, then drops its connection: the broker publishes the will for it, "
	 "so the ACL can be bypassed to fake device status or inject commands "
	 "(T-07).",
	 "Authorise the will topic at CONNECT and again when the will fires "
	 "(moatd does both); with other brokers, upgrade, or use a plugin that "
	 "checks wills."},
	{"AUD-MQ-08", MOAT_SEV_HIGH,
	 "Client id taken over or session deleted by another identity",
	 "Another account (or an anonymous client) could log in with a test "
	 "account's client id, which disconnects the device and takes or "
	 "resets its session; or a failed login with the device's client id "
	 "deleted its persistent session (T-08).",
	 "Bind client ids to identities (moatd: `clientid` lines, e.g. "
	 "`clientid %u-*`; mosquitto dynamic security: client id binding) and "
	 "make sure authentication happens before any session is touched."},
	{"AUD-MQ-09", MOAT_SEV_HIGH,
	 "Special characters in a client id widen access",
	 "With client id + or #, a test account read topics it could not read "
	 "with a plain client id: an ACL pattern substitutes the id (%c) "
	 "into a topic filter, where it acts as a wildcard (T-09, "
	 "CVE-2017-7650).",
	 "Refuse +, # and / in client ids and user names used in ACL patterns "
	 "(moatd does; mosquitto: auth_plugin_deny_special_chars true), or "
	 "avoid %c/%u patterns."},
	{"AUD-MQ-10", MOAT_SEV_HIGH, "Shared subscription bypasses the ACL",
	 "A test account was refused a subscription (# or $SYS/#) but granted "
	 "the same filter as $share/GROUP/...: the broker authorises shared "
	 "subscriptions differently (T-10).",
	 "Authorise $share/GROUP/FILTER on FILTER exactly like a plain "
	 "subscription (moatd does); upgrade the broker or disable shared "
	 "subscriptions."},
	{"AUD-MQ-11", MOAT_SEV_HIGH, "Revoked rights still honoured",
	 "After an administrator revokes a grant, messages are still "
	 "delivered on the old subscription (T-11). Not probed by moat audit "
	 "yet: it needs an administrator's cooperation during the run.",
	 "Re-evaluate existing subscriptions, queued and retained messages "
	 "when the ACL changes (moatd checks every delivery after a reload)."},
	{"AUD-MQ-12", MOAT_SEV_LOW,
	 "Resource limits missing or raised beyond the safe range",
	 "Unlimited packet sizes, queues, memory and keep-alives let one "
	 "client, often before it has authenticated, exhaust the broker's "
	 "memory or hold idle connections open (T-13, T-17, T-19). Medium when "
	 "the packet size (or the size before CONNECT) is unbounded or large.",
	 "Use bounded values: max_packet_size at most 16 MB (moatd default "
	 "1m), max_keepalive at most 300, and set max_queued_bytes and "
	 "memory_limit. moatd's defaults are safe: remove the overrides."},
	{"AUD-MQ-13", MOAT_SEV_HIGH, "Invalid UTF-8 topic forwarded",
	 "A PUBLISH whose topic is not valid UTF-8 (an overlong encoding) was "
	 "forwarded to a subscriber instead of the publisher being "
	 "disconnected; strict clients then drop their connection, again on "
	 "every redelivery or retained copy (T-15, CVE-2017-7653).",
	 "Upgrade the broker (mosquitto 1.5+ validates UTF-8); moatd refuses "
	 "such topics and disconnects the publisher."},
	{"AUD-MQ-14", MOAT_SEV_HIGH, "Control API answers a test account",
	 "A read-only request (listClients, listListeners) published to "
	 "$CONTROL/... by a test account was answered: whoever can do that "
	 "can probably also add clients, change roles and grant themselves "
	 "everything (T-31).",
	 "Grant $CONTROL/# only to an administrator's role (mosquitto "
	 "dynamic security: the admin role from `mosquitto_ctrl dynsec "
	 "init`), never to devices or the anonymous group."},
	{"AUD-VER-01", MOAT_SEV_HIGH, "Broker version with known vulnerabilities",
	 "The version the broker shows (or --broker-version) is in the range "
	 "of published vulnerabilities: crashes, memory exhaustion, ACL or "
	 "authentication bypasses (T-14, T-32). Medium when all of them are "
	 "denial of service. A distribution may have backported fixes that "
	 "the version string does not show.",
	 "Upgrade to a release that fixes them (check the vendor's or "
	 "distribution's advisories), and hide the version from clients "
	 "($SYS off or admin-only)."},
	{"AUD-LK-01", MOAT_SEV_HIGH, "Sensitive data in sampled payloads",
	 "The leak detector found credentials, personal or location data in "
	 "messages a test account received during --sample-payloads (T-28). "
	 "The finding names the category and topic, never the data.",
	 "Stop publishing the data, or encrypt it end to end, and restrict "
	 "who may read those topics; rotate leaked credentials."},
	{"AUD-TLS-01", MOAT_SEV_HIGH, "TLS versions older than 1.2 allowed",
	 "TLS 1.0 and 1.1 are deprecated (RFC 8996) and lack modern AEAD "
	 "cipher suites; accepting them exposes clients to downgrade attacks "
	 "and weak ciphers (T-02).",
	 "Remove tls_version, or set it to tlsv1.2 or tlsv1.3 (a minimum); "
	 "moatd accepts only those two."},
	{"AUD-TLS-02", MOAT_SEV_HIGH, "Weak TLS cipher suites enabled",
	 "NULL (no encryption), aNULL or anonymous (no authentication), "
	 "EXPORT, RC4, DES, 3DES and MD5 suites are broken or protect "
	 "nothing, and a client or an attacker on the path can make the "
	 "server negotiate them (T-02).",
	 "Remove the ciphers line to get the default (moatd: forward-secret "
	 "AEAD suites only) or list only ECDHE suites with AES-GCM or "
	 "CHACHA20-POLY1305."},
	{"AUD-TLS-03", MOAT_SEV_HIGH, "Server certificate problem",
	 "An expired certificate, one that does not name the host or that no "
	 "trusted CA vouches for, or a key shorter than 2048 bits (RSA) or 224 "
	 "bits (EC), makes clients fail or accept an identity that can be "
	 "forged (T-27). Medium when it expires within 30 days or is not yet "
	 "valid; info when self-signed (every client must pin it).",
	 "Renew the certificate well before it expires (automate it), use an "
	 "RSA 2048+ or EC P-256 key, and have it signed by a CA the clients "
	 "trust (or give a self-signed one to every client deliberately)."},
	{"AUD-TLS-04", MOAT_SEV_MEDIUM,
	 "Client-certificate settings that do not enforce what they suggest",
	 "use_identity_as_username without require_certificate, "
	 "require_certificate without a CA, or a CA for client certificates "
	 "that are then optional, look like mutual TLS but do not enforce it "
	 "(T-27); seen from the network, the server asks for a client "
	 "certificate but serves clients that send none. Low when client "
	 "certificates are merely optional.",
	 "For mutual TLS set cafile (the CA that signs client certificates) "
	 "and require_certificate true on the listener, then "
	 "use_identity_as_username true if certificates name the clients."},
	{"AUD-WS-01", MOAT_SEV_MEDIUM,
	 "WebSocket listener without an Origin allowlist",
	 "Any web page a user visits can open a WebSocket from the browser to "
	 "a broker it can reach (cross-site WebSocket hijacking), using the "
	 "browser's position inside the network (T-30).",
	 "Set websockets_origin (mosquitto 2.1+) to the allowed origins, or "
	 "bind the WebSocket listener to loopback behind a reverse proxy that "
	 "checks Origin."},
	{"AUD-CO-01", MOAT_SEV_HIGH, "Plaintext CoAP on a network address",
	 "CoAP over UDP without DTLS (NoSec) reachable from the network has "
	 "no authentication and no confidentiality, and UDP lets anyone "
	 "spoof a victim's address: an open CoAP endpoint is a reflection "
	 "and amplification source (T-23). moatd --check reports a "
	 "protocol coap listener on a network address; moat audit reports a "
	 "server that answers a GET of /.well-known/core without DTLS on a "
	 "non-loopback address.",
	 "moatd: use protocol coaps (DTLS with psk_file or client "
	 "certificates) on network addresses, or bind the plain coap "
	 "listener to 127.0.0.1. libcoap coap-server: serve coaps only (-k "
	 "key or -c/-j/-C certificates) and bind the plain port to loopback "
	 "(-A 127.0.0.1), or filter UDP 5683 at the firewall."},
	{"AUD-CO-02", MOAT_SEV_HIGH,
	 "CoAP responses amplify requests from unvalidated addresses",
	 "A spoofed request makes the server send more than 3 times its "
	 "bytes (counting every datagram it sends unasked: blocks, "
	 "retransmissions), or a first response above 136 bytes, to an "
	 "address that never proved it asked: a reflection amplifier for "
	 "DDoS (T-23, RFC 9175 section 2.4). Low on a loopback address.",
	 "moatd: nothing to set, plain coap listeners answer unvalidated "
	 "addresses with at most 3x and 136 bytes (4.01 + Echo); use coaps "
	 "on network addresses. libcoap coap-server: do not expose the plain "
	 "port (-A 127.0.0.1 or a firewall), keep /.well-known/core and "
	 "resources small, or put an Echo-validating proxy in front."},
	{"AUD-CO-03", MOAT_SEV_HIGH,
	 "No Echo address validation before large CoAP responses",
	 "The server sends large content to an address it has not validated "
	 "instead of answering 4.01 Unauthorized with an Echo option (RFC "
	 "9175 section 2.4) that a spoofed victim cannot return: nothing "
	 "limits the reflection (T-23). Low on a loopback address.",
	 "moatd validates with Echo on plain network listeners by default. "
	 "libcoap 4.3.1's coap-server has no Echo-based validation: serve "
	 "coaps (the DTLS cookie validates the address) and keep the plain "
	 "port off the network."},
	{"AUD-CO-04", MOAT_SEV_MEDIUM,
	 "Predictable CoAP message ids or tokens",
	 "Sequential message ids (or tokens) let an off-path attacker guess "
	 "the next one and inject an ACK, RST or response that a client or "
	 "the server accepts: cancelled observations, forged answers "
	 "(T-24, RFC 7252 section 11.4, RFC 9175 section 4).",
	 "moatd draws ids and tokens from a CSPRNG. For other servers, "
	 "update to a release that draws them at random, and rely on DTLS "
	 "(coaps) on untrusted networks rather than on id randomness."},
	{"AUD-CO-05", MOAT_SEV_HIGH,
	 "CoAP requests and observations accepted without authentication",
	 "Clients without credentials may publish, read and observe "
	 "(register for notifications) on a CoAP listener reachable from the "
	 "network: every observation makes the server send data to an "
	 "address for as long as it lasts, multiplying what one spoofed "
	 "registration sends (T-25). moatd --check reports anonymous CoAP on "
	 "a network listener; moat audit reports Observe registrations an "
	 "anonymous client got. Medium on a loopback address.",
	 "moatd: require DTLS identities (psk_file, or require_certificate "
	 "with use_identity_as_username) on network CoAP listeners, keep "
	 "allow_anonymous false there, and deny anonymous reads in the "
	 "acl_file. libcoap coap-server: serve coaps with PSK (-k, -i) or "
	 "client certificates (-C without -n) and keep the plain port on "
	 "loopback."},
	{"AUD-CO-06", MOAT_SEV_HIGH,
	 "DTLS handshake without a cookie round trip",
	 "The server answers a ClientHello with its ServerHello and "
	 "Certificate flight (or more than 3 times the ClientHello's bytes) "
	 "before the client has returned a cookie (HelloVerifyRequest, RFC "
	 "6347 section 4.2.1): a spoofed ClientHello makes it send kilobytes "
	 "to a victim and keep handshake state (T-26).",
	 "moatd's coaps listener always sends a stateless cookie first. "
	 "libcoap's servers do too (OpenSSL DTLSv1_listen, GnuTLS "
	 "gnutls_dtls_cookie_send); elsewhere enable the DTLS cookie "
	 "exchange."},
	{"AUD-CO-07", MOAT_SEV_HIGH,
	 "Weak DTLS versions or suites, or a PSK identity hint",
	 "DTLS 1.0 (RFC 8996) and NULL, anonymous, EXPORT, DES, 3DES or MD5 "
	 "suites let an attacker on the path read or change the traffic "
	 "(T-26). A PSK identity hint is sent in clear to anyone who starts "
	 "a handshake and can name the key or identities to try (low).",
	 "moatd's coaps offers DTLS 1.2 with AEAD suites only and sends no "
	 "hint. libcoap coap-server: use a current TLS library build (DTLS "
	 "1.2, AEAD suites) and give -h with an empty argument (\"\") so that "
	 "no identity hint is sent."},
	{"AUD-CO-08", MOAT_SEV_LOW,
	 "CoAP resources listed to anonymous clients",
	 "/.well-known/core (RFC 6690) tells anyone who asks which resources "
	 "exist, with their types and which ones can be observed: a map for "
	 "the next steps of an attacker, and the largest resources for "
	 "amplification (T-23). Info on a loopback address.",
	 "moatd lists /ps and only the retained topics the peer may read: "
	 "deny anonymous reads in the acl_file. libcoap coap-server: serve "
	 "coaps only, or keep sensitive resources out of the listing."},
	{"AUD-CO-09", MOAT_SEV_MEDIUM,
	 "CoAP resources readable or writable anonymously",
	 "Listed resources answered an anonymous GET with their content "
	 "(medium), or, with --intrusive, an anonymous client created a "
	 "resource with PUT (high): anyone who reaches the port can read "
	 "the data or change what the device serves (T-01 for CoAP). Lower "
	 "on a loopback address.",
	 "moatd: deny anonymous clients in the acl_file (a CoAP request "
	 "without a DTLS identity is anonymous) and use coaps with "
	 "psk_file. libcoap coap-server: serve coaps with PSK or client "
	 "certificates and do not allow dynamic resources (-d) on a port "
	 "anyone reaches."},
	{"AUD-BR-01", MOAT_SEV_HIGH, "Bridge connection without verified TLS",
	 "A bridge forwards topics to another broker. Without bridge_cafile, "
	 "bridge_capath, bridge_tls_use_os_certs or a PSK, or with "
	 "bridge_insecure true, its credentials and traffic can be read and "
	 "the remote broker impersonated (T-20).",
	 "Set bridge_cafile (or bridge_tls_use_os_certs true), remove "
	 "bridge_insecure, and connect to the remote broker's TLS port."},
	{"AUD-CL-01", MOAT_SEV_HIGH, "Cluster traffic to NATS without TLS",
	 "In cluster mode every message that crosses nodes, with its topic, "
	 "payload and the publishing client's identity, travels over the "
	 "NATS connection. Without TLS anyone on the path reads it, and can "
	 "change it or inject messages that every node delivers to its "
	 "subscribers (T-02, T-20). Low when every NATS server is on a "
	 "loopback address.",
	 "Use tls:// URLs in cluster_nats_url and set cluster_nats_cafile to "
	 "the CA of the NATS servers' certificates (nats-server: a tls block "
	 "with cert_file and key_file; see docs/cluster.md)."},
	{"AUD-CL-02", MOAT_SEV_HIGH,
	 "Cluster NATS connection without authentication",
	 "The node presents no credentials to NATS, so the NATS servers "
	 "accept clients without any: whoever reaches them can read every "
	 "message of the cluster and publish into it past every node's ACL "
	 "and leak detection, or delete the stream and the retained "
	 "messages (T-01, T-04). Medium when every NATS server is on a "
	 "loopback address (local users and programs).",
	 "Require authentication on the NATS servers (authorization with "
	 "users, accounts with JWTs, or verify: true with client "
	 "certificates) and give each node its own: cluster_nats_creds, "
	 "cluster_nats_user with cluster_nats_password_file, or "
	 "cluster_nats_certfile and cluster_nats_keyfile."},
	{"AUD-CL-03", MOAT_SEV_MEDIUM,
	 "NATS credentials written into the configuration",
	 "A user:password@ or token@ in cluster_nats_url puts the secret "
	 "into moatd.conf, which is read by more people and tools than a "
	 "private file (backups, configuration management, support "
	 "bundles), and into every place the URL is logged or shown (T-21).",
	 "Remove the credentials from the URL; use cluster_nats_user with "
	 "cluster_nats_password_file (mode 0600), or cluster_nats_creds."},
};

const struct moat_finding_def *moat_finding_table(size_t *n)
{
	*n = MOAT_ARRAY_LEN(catalogue);
	return catalogue;
}

const struct moat_finding_def *moat_finding_lookup(const char *id)
{
	for (size_t i = 0; i < MOAT_ARRAY_LEN(catalogue); i++)
		if (!strcmp(catalogue[i].id, id))
			return &catalogue[i];
	return NULL;
}

static const char *const sev_names[MOAT_SEV_COUNT] = {
	"info", "low", "medium", "high", "critical"};
static const char *const sev_labels[MOAT_SEV_COUNT] = {
	"INFO", "LOW", "MEDIUM", "HIGH", "CRITICAL"};

const char *moat_severity_name(enum moat_severity sev)
{
	return (unsigned)sev < MOAT_SEV_COUNT ? sev_names[sev] : "?";
}

const char *moat_severity_label(enum moat_severity sev)
{
	return (unsigned)sev < MOAT_SEV_COUNT ? sev_labels[sev] : "?";
}

/* ---- the list ------------------------------------------------------------ */

void moat_findings_init(struct moat_findings *f)
{
	memset(f, 0, sizeof(*f));
}

void moat_findings_free(struct moat_findings *f)
{
	moat_free(f->v);
	memset(f, 0, sizeof(*f));
}

static bool duplicate(const struct moat_findings *f,
		      const struct moat_finding_def *def, const char *ev)
{
	for (size_t i = 0; i < f->n; i++)
		if (f->v[i].def == def && !strcmp(f->v[i].evidence, ev))
			return true;
	return false;
}

static struct moat_finding *grow(struct moat_findings *f)
{
	if (f->n == f->cap) {
		size_t cap = f->cap ? f->cap * 2 : 16;
		struct moat_finding *v =
			moat_realloc(f->v, cap * sizeof(*v));
		if (!v) {
			f->oom = true;
			return NULL;
		}
		f->v = v;
		f->cap = cap;
	}
	return &f->v[f->n];
}

/* The last-found finding of the lowest severity. */
static struct moat_finding *least_severe(struct moat_findings *f)
{
	struct moat_finding *low = NULL;
	for (size_t i = 0; i < f->n; i++)
		if (!low || f->v[i].sev <= low->sev)
			low = &f->v[i];
	return low;
}

/* Add evidence that is already escaped. */
static void add_escaped(struct moat_findings *f,
			const struct moat_finding_def *def,
			enum moat_severity sev, const char *ev)
{
	if (duplicate(f, def, ev))
		return;
	struct moat_finding *x;
	if (f->n >= MOAT_FINDINGS_MAX) {
		/* Full: keep the most severe, so that the exit status and
		 * the top of the report stay right. */
		f->dropped++;
		if (!(x = least_severe(f)) || x->sev >= sev)
			return;
		x->def = def;
		x->sev = sev;
		snprintf(x->evidence, sizeof(x->evidence), "%s", ev);
		return;
	}
	if (!(x = grow(f)))
		return;
	x->def = def;
	x->sev = sev;
	x->seq = f->n;
	snprintf(x->evidence, sizeof(x->evidence), "%s", ev);
	f->n++;
}

void moat_findings_addv(struct moat_findings *f, const char *id,
			enum moat_severity sev, const char *fmt, va_list ap)
{
	const struct moat_finding_def *def = moat_finding_lookup(id);
	char raw[MOAT_FINDING_EVIDENCE_MAX];
	char ev[MOAT_FINDING_EVIDENCE_MAX];
	assert(def != NULL);
	if (!def)
		return;
	vsnprintf(raw, sizeof(raw), fmt, ap);
	/* Evidence quotes file contents: escape once here so that no report
	 * writer can forget (terminal escapes, fake lines, bad JSON). */
	moat_log_escape((const uint8_t *)raw, strlen(raw), ev, sizeof(ev));
	add_escaped(f, def, sev, ev);
}

void moat_findings_add(struct moat_findings *f, const char *id,
		       const char *fmt, ...)
{
	const struct moat_finding_def *def = moat_finding_lookup(id);
	va_list ap;
	va_start(ap, fmt);
	moat_findings_addv(f, id, def ? def->sev : MOAT_SEV_INFO, fmt, ap);
	va_end(ap);
}

void moat_findings_add_sev(struct moat_findings *f, const char *id,
			   enum moat_severity sev, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	moat_findings_addv(f, id, sev, fmt, ap);
	va_end(ap);
}

void moat_findings_move(struct moat_findings *dst, struct moat_findings *src)
{
	for (size_t i = 0; i < src->n; i++)
		add_escaped(dst, src->v[i].def, src->v[i].sev,
			    src->v[i].evidence);
	dst->dropped += src->dropped;
	dst->oom |= src->oom;
	moat_findings_free(src);
}

bool moat_findings_has(const struct moat_findings *f, const char *id)
{
	for (size_t i = 0; i < f->n; i++)
		if (!strcmp(f->v[i].def->id, id))
			return true;
	return false;
}

static int by_severity(const void *a, const void *b)
{
	const struct moat_finding *x = a, *y = b;
	if (x->sev != y->sev)
		return x->sev > y->sev ? -1 : 1;
	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

void moat_findings_sort(struct moat_findings *f)
{
	if (f->n > 1)
		qsort(f->v, f->n, sizeof(f->v[0]), by_severity);
}

size_t moat_findings_count(const struct moat_findings *f,
			   enum moat_severity sev)
{
	size_t n = 0;
	for (size_t i = 0; i < f->n; i++)
		n += f->v[i].sev == sev;
	return n;
}

bool moat_findings_max(const struct moat_findings *f,
		       enum moat_severity *out)
{
	if (!f->n)
		return false;
	enum moat_severity m = MOAT_SEV_INFO;
	for (size_t i = 0; i < f->n; i++)
		if (f->v[i].sev > m)
			m = f->v[i].sev;
	*out = m;
	return true;
}
