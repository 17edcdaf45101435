/* moatd configuration: one directive table (cfg_schema.c) drives parsing,
 * validation, defaults and the generated reference (moatd --help-config). */
#ifndef MOAT_CFG_H
#define MOAT_CFG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/moat_common.h"

#define MOAT_CFG_MAX_LISTENERS 16
#define MOAT_CFG_PATH_MAX 512

/* allow_anonymous */
enum moat_anon { MOAT_ANON_FALSE = 0, MOAT_ANON_TRUE = 1, MOAT_ANON_LOOPBACK = 2 };
/* use_identity_as_username */
enum moat_identity {
	MOAT_IDENTITY_NONE = 0,
	MOAT_IDENTITY_CN = 1, /* "true" and "cn" */
	MOAT_IDENTITY_CN2 = 2,
	MOAT_IDENTITY_SAN = 3,
};
/* leak_policy actions, weakest to strongest */
enum moat_leak_action {
	MOAT_LEAK_LOG = 0,
	MOAT_LEAK_ALERT = 1,
	MOAT_LEAK_REDACT = 2,
	MOAT_LEAK_BLOCK = 3,
};
#define MOAT_CFG_MAX_LEAK_POLICIES 64

/* leak_policy FILTER CATEGORY ACTION */
struct moat_leak_policy_cfg {
	char filter[256];  /* topic filter */
	char category[32]; /* a category name, or "all" */
	uint32_t categories; /* as a set (MOAT_LEAK_BIT) */
	uint8_t action;    /* enum moat_leak_action */
	unsigned line;     /* where it was written, for messages */
};

/* persistence_sync */
enum moat_psync { MOAT_PSYNC_FULL = 0, MOAT_PSYNC_NORMAL = 1, MOAT_PSYNC_OFF = 2 };
/* tls_version (a minimum) */
enum moat_tls_min { MOAT_TLS_12 = 0, MOAT_TLS_13 = 1 };
/* protocol (what a listener speaks; values are added as transports land) */
enum moat_listener_proto {
	MOAT_PROTO_MQTT = 0,
	MOAT_PROTO_WEBSOCKETS = 1,
	MOAT_PROTO_HTTP = 2,
	MOAT_PROTO_COAP = 3,  /* CoAP over UDP (RFC 7252) */
	MOAT_PROTO_COAPS = 4, /* CoAP over DTLS 1.2 */
};

struct moat_listener_cfg {
	char addr[64]; /* numeric IPv4/IPv6 address, "" = all */
	uint16_t port; /* 0 = ephemeral (tests) */
	/* TLS: on when certfile is set. */
	char certfile[MOAT_CFG_PATH_MAX];
	char keyfile[MOAT_CFG_PATH_MAX];
	char cafile[MOAT_CFG_PATH_MAX]; /* CAs for client certificates */
	char crlfile[MOAT_CFG_PATH_MAX];
	char ciphers[512];      /* TLS 1.2 cipher list */
	char ciphersuites[256]; /* TLS 1.3 suites */
	bool require_certificate;
	uint32_t use_identity_as_username; /* enum moat_identity */
	uint32_t tls_version;              /* enum moat_tls_min */
	uint32_t protocol;                 /* enum moat_listener_proto */
	char ws_path[256];     /* websockets_path */
	char ws_origins[1024]; /* websockets_origin: comma-separated */
	char ws_proxies[512];  /* websockets_trusted_proxy: comma-separated */
};

static inline bool moat_listener_tls(const struct moat_listener_cfg *lc)
{
	return lc->certfile[0] != '\0';
}

/* Does the listener speak CoAP (over UDP or DTLS)? */
static inline bool moat_listener_coap(const struct moat_listener_cfg *lc)
{
	return lc->protocol == MOAT_PROTO_COAP ||
	       lc->protocol == MOAT_PROTO_COAPS;
}

struct moat_config {
	struct moat_listener_cfg listeners[MOAT_CFG_MAX_LISTENERS];
	size_t nlisteners;
	bool allow_insecure_listener;
	uint32_t allow_anonymous; /* enum moat_anon */
	char password_file[MOAT_CFG_PATH_MAX];
	char acl_file[MOAT_CFG_PATH_MAX];
	char psk_file[MOAT_CFG_PATH_MAX]; /* DTLS keys of coaps clients */
	uint64_t auth_backoff_initial_ms;
	uint64_t auth_backoff_max_ms;
	uint64_t max_connections_per_ip;
	uint64_t max_connections_per_user;
	uint64_t auth_rate_per_ip;       /* checks/s of a failing address */
	uint64_t max_accept_rate_per_ip; /* per second, 0 = no limit */
	bool limit_loopback;             /* per-IP limits for loopback too */
	uint64_t coap_request_rate_per_ip; /* unvalidated CoAP, per second */
	bool coap_rate_per_ip_strict;    /* ... for validated peers too */
	uint64_t max_publish_rate;       /* per client per second, 0 = none */
	uint64_t memory_limit;           /* bytes, 0 = automatic */
	uint32_t workers; /* 0 = number of online CPUs */
	uint64_t max_packet_size;
	uint64_t max_connect_packet_size;
	uint64_t max_sessions;
	uint64_t persistent_client_expiration; /* seconds, 0 = never */
	uint64_t max_retained_messages;
	uint64_t max_retained_bytes;
	uint64_t max_inflight_messages;
	uint64_t max_queued_messages;
	uint64_t max_queued_bytes;
	uint64_t max_connections;
	uint64_t max_subscriptions;
	uint64_t max_topic_length;
	uint64_t max_topic_levels;
	uint64_t max_keepalive;       /* seconds */
	bool strict_keepalive;        /* refuse 3.x keep-alive 0 / > max */
	uint64_t connect_timeout;     /* seconds */
	uint64_t output_buffer_size;  /* per connection, soft limit */
	uint64_t sys_interval;        /* seconds, 0 = $SYS off */
	bool leak_detection;
	char leak_key_file[MOAT_CFG_PATH_MAX];
	struct moat_leak_policy_cfg leak_policies[MOAT_CFG_MAX_LEAK_POLICIES];
	size_t nleak_policies;
	bool persistence;
	char persistence_location[MOAT_CFG_PATH_MAX];
	uint32_t persistence_sync; /* enum moat_psync */
	bool retain_available;
	bool mqtt5;
	uint64_t topic_alias_maximum;
	uint64_t max_qos;
	bool wildcard_subscriptions;
	bool shared_subscriptions;
	bool subscription_identifiers;
	bool allow_zero_length_clientid;
	enum moat_log_level log_level;
	char user[64]; /* run as this user when started as root */
	uint32_t log_format; /* enum moat_log_format */
	uint32_t log_dest;   /* enum moat_log_dest */
	char log_file[MOAT_CFG_PATH_MAX]; /* log_dest file PATH */
	/* Cluster mode (docs/cluster.md); off while cluster_nats_url is "". */
	char cluster_nats_url[1024];  /* comma-separated nats:// / tls:// */
	char cluster_node_id[64];
	char cluster_nats_cafile[MOAT_CFG_PATH_MAX];
	char cluster_nats_certfile[MOAT_CFG_PATH_MAX];
	char cluster_nats_keyfile[MOAT_CFG_PATH_MAX];
	char cluster_nats_creds[MOAT_CFG_PATH_MAX];
	char cluster_nats_user[128];
	char cluster_nats_password_file[MOAT_CFG_PATH_MAX];
	uint64_t cluster_replicas;
	uint64_t cluster_max_pending;
	uint64_t cluster_stream_max_age; /* seconds */
	uint64_t cluster_stream_max_bytes;
	bool cluster_session_recovery; /* cluster_sreg.c */
	char source[256]; /* file the config came from, "" = defaults */
};

/* Error text, "file:line: directive: message". */
struct moat_cfg_err {
	char msg[512];
};

/* Fill cfg with defaults (no listener yet: see moat_cfg_finish). */
void moat_cfg_defaults(struct moat_config *cfg);
/* Parse a file into cfg (on top of defaults).  MOAT_OK or an error with
 * err->msg set. */
int moat_cfg_load_file(struct moat_config *cfg, const char *path,
		       struct moat_cfg_err *err);
/* Parse text (for tests and fuzzing); name is used in messages. */
int moat_cfg_load_string(struct moat_config *cfg, const char *name,
			 const char *text, size_t len,
			 struct moat_cfg_err *err);
/* Apply what depends on the whole file: default listener, cross-checks
 * (TLS options that go together; a listener reachable from the network
 * must have TLS, authentication, no anonymous access and an ACL, unless
 * allow_insecure_listener is set). */
int moat_cfg_finish(struct moat_config *cfg, struct moat_cfg_err *err);
/* What makes listener i unsafe on a network ("without TLS, ..."), "" when
 * nothing does or it is bound to loopback.  Returns out. */
const char *moat_cfg_listener_risks(const struct moat_config *cfg, size_t i,
				    char *out, size_t outsz);
/* Does listener i accept clients without credentials? */
bool moat_cfg_listener_anonymous(const struct moat_config *cfg, size_t i);
/* The name of a protocol value ("mqtt", "http", ...), "?" if unknown. */
const char *moat_cfg_protocol_name(uint32_t proto);
/* True when addr is a loopback address ("127.x", "::1", "localhost"). */
bool moat_cfg_addr_is_loopback(const char *addr);
/* Print every directive with type, default and description. */
void moat_cfg_print_reference(void *stream);

#endif
