/* /metrics: the Prometheus text exposition format (version 0.0.4) of the
 * broker's counters.  Every family is listed in docs/metrics.md.
 *
 * Nothing here takes a lock the hot path takes, except the topic tree's
 * read lock for three sizes (as $SYS does): counters are per worker
 * (struct moat_wstats, one writer each) and summed here, or broker-wide
 * atomics.  No label carries a client id, user or topic. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "broker_int.h"
#include "leak/leak.h"
#include "net/ossl_mem.h"
#include "store_int.h"

/* Rendered text is bounded: the families are fixed, the labels too. */
#define METRICS_MAX (1024u * 1024u)

struct out {
	struct moat_buf buf;
	bool failed;
};

static void put(struct out *o, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void put(struct out *o, const char *fmt, ...)
{
	char line[512];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(line) ||
	    moat_buf_append(&o->buf, line, (size_t)n) != MOAT_OK)
		o->failed = true;
}

static void family(struct out *o, const char *name, const char *type,
		   const char *help)
{
	put(o, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void one(struct out *o, const char *name, const char *type,
		const char *help, uint64_t v)
{
	family(o, name, type, help);
	put(o, "%s %llu\n", name, (unsigned long long)v);
}

static uint64_t ld(const atomic_uint_fast64_t *a)
{
	return atomic_load_explicit(a, memory_order_relaxed);
}

/* Protocols that carry MQTT traffic on some listener: the label values
 * of the traffic families (all of them, even at 0, so that rates work
 * from the first scrape). */
static bool proto_used(const struct moat_broker *b, unsigned p)
{
	if (p == MOAT_PROTO_HTTP)
		return false;
	for (size_t i = 0; i < b->cfg.nlisteners; i++)
		if (b->cfg.listeners[i].protocol == p)
			return true;
	return false;
}

static void traffic(struct out *o, struct moat_broker *b)
{
	family(o, "moat_connections_accepted_total", "counter",
	       "Connections accepted, by listener protocol.");
	for (unsigned p = 0; p < MOAT_PROTO_N; p++)
		if (proto_used(b, p) && p != MOAT_PROTO_COAP &&
		    p != MOAT_PROTO_COAPS) /* datagrams: no connections */
			put(o, "moat_connections_accepted_total{protocol=\"%s\"} "
			       "%llu\n",
			    moat_cfg_protocol_name(p),
			    (unsigned long long)MOAT_WSTAT_SUM(b, accepted[p]));
	static const char *const msg_fam[2][2] = {
		{"moat_messages_received_total",
		 "PUBLISH packets received from clients, by protocol and QoS."},
		{"moat_messages_sent_total",
		 "PUBLISH packets sent to clients, by protocol and QoS."},
	};
	for (int dir = 0; dir < 2; dir++) {
		family(o, msg_fam[dir][0], "counter", msg_fam[dir][1]);
		for (unsigned p = 0; p < MOAT_PROTO_N; p++)
			for (unsigned q = 0; q < 3 && proto_used(b, p); q++)
				put(o, "%s{protocol=\"%s\",qos=\"%u\"} %llu\n",
				    msg_fam[dir][0], moat_cfg_protocol_name(p),
				    q,
				    (unsigned long long)(
					    dir ? MOAT_WSTAT_SUM(b, msgs_out[p][q])
						: MOAT_WSTAT_SUM(b, msgs_in[p][q])));
	}
	static const char *const byte_fam[2][2] = {
		{"moat_received_bytes_total",
		 "Bytes read from client connections (after TLS), by protocol."},
		{"moat_sent_bytes_total",
		 "Bytes written to client connections (before TLS), by "
		 "protocol."},
	};
	for (int dir = 0; dir < 2; dir++) {
		family(o, byte_fam[dir][0], "counter", byte_fam[dir][1]);
		for (unsigned p = 0; p < MOAT_PROTO_N; p++)
			if (proto_used(b, p))
				put(o, "%s{protocol=\"%s\"} %llu\n",
				    byte_fam[dir][0], moat_cfg_protocol_name(p),
				    (unsigned long long)(
					    dir ? MOAT_WSTAT_SUM(b, bytes_out[p])
						: MOAT_WSTAT_SUM(b, bytes_in[p])));
	}
}

static void refusals_and_limits(struct out *o, struct moat_broker *b)
{
	static const char *const refusal[MOAT_REFUSE_N] = {
		"memory_limit",       "max_connections_per_ip",
		"max_accept_rate_per_ip", "max_connections",
		"out_of_descriptors", "out_of_memory",
	};
	static const char *const limit[MOAT_LIMIT_N] = {
		"memory_limit",       "max_connections_per_ip",
		"max_accept_rate_per_ip", "max_connections",
		"max_publish_rate",   "auth_backoff",
		"login_queue",        "max_connections_per_user",
		"coap",
	};
	static const char *const auth[3] = {"success", "failure",
					    "throttled"};
	family(o, "moat_connections_refused_total", "counter",
	       "Connections closed at accept, by reason.");
	for (unsigned r = 0; r < MOAT_REFUSE_N; r++)
		put(o, "moat_connections_refused_total{reason=\"%s\"} %llu\n",
		    refusal[r],
		    (unsigned long long)MOAT_WSTAT_SUM(b, refused[r]));
	family(o, "moat_limit_hits_total", "counter",
	       "Times a configured limit refused something, by limit.");
	for (unsigned k = 0; k < MOAT_LIMIT_N; k++)
		put(o, "moat_limit_hits_total{limit=\"%s\"} %llu\n", limit[k],
		    (unsigned long long)MOAT_WSTAT_SUM(b, limits[k]));
	family(o, "moat_authentications_total", "counter",
	       "Logins (MQTT password or certificate, HTTP Basic), by "
	       "result; throttled: refused by the login back-off.");
	for (unsigned r = 0; r < 3; r++)
		put(o, "moat_authentications_total{result=\"%s\"} %llu\n",
		    auth[r],
		    (unsigned long long)(MOAT_WSTAT_SUM(b, auth[r]) +
					 moat__http_auth(b, r)));
	one(o, "moat_acl_denials_total", "counter",
	    "Operations the ACL refused (publish, subscribe, delivery, "
	    "client id, will).",
	    MOAT_STAT_GET(b, acl_denials));
}

static void http_code(void *arg, unsigned code, uint64_t n)
{
	put(arg, "moat_http_responses_total{code=\"%u\"} %llu\n", code,
	    (unsigned long long)n);
}

/* CoAP listeners (docs/coap.md): requests, publishes, notifications,
 * address validations, dropped datagrams; observers and DTLS sessions. */
static void coap(struct out *o, struct moat_broker *b)
{
	static const struct {
		const char *name, *type, *help;
		size_t off;
	} f[] = {
		{"moat_coap_requests_total", "counter",
		 "CoAP requests handled.",
		 offsetof(struct moat_stats, coap_requests)},
		{"moat_coap_publishes_total", "counter",
		 "CoAP PUT/POST requests published to the topic tree.",
		 offsetof(struct moat_stats, coap_publishes)},
		{"moat_coap_notifications_total", "counter",
		 "Observe notifications sent.",
		 offsetof(struct moat_stats, coap_notifications)},
		{"moat_coap_echo_total", "counter",
		 "4.01 answers with an Echo option (address validation).",
		 offsetof(struct moat_stats, coap_echo)},
		{"moat_coap_dropped_total", "counter",
		 "Datagrams ignored (malformed, duplicate, over a limit).",
		 offsetof(struct moat_stats, coap_dropped)},
		{"moat_coap_separate_total", "counter",
		 "Separate responses sent (an Empty ACK first).",
		 offsetof(struct moat_stats, coap_separate)},
		{"moat_coap_suppressed_total", "counter",
		 "Responses not sent because of a No-Response option.",
		 offsetof(struct moat_stats, coap_suppressed)},
		{"moat_coap_observers", "gauge", "Observe registrations.",
		 offsetof(struct moat_stats, coap_observers)},
		{"moat_coap_dtls_sessions", "gauge",
		 "DTLS sessions that completed their handshake.",
		 offsetof(struct moat_stats, coap_dtls_sessions)},
	};
	for (size_t i = 0; i < MOAT_ARRAY_LEN(f); i++) {
		const atomic_uint_fast64_t *v =
			(const atomic_uint_fast64_t *)(const void *)((const char
								   *)&b->stats +
								  f[i].off);
		family(o, f[i].name, f[i].type, f[i].help);
		put(o, "%s %llu\n", f[i].name,
		    (unsigned long long)atomic_load_explicit(
			    v, memory_order_relaxed));
	}
}

static void leaks(struct out *o, struct moat_broker *b)
{
	static const char *const action[4] = {"log", "alert", "redact",
					      "block"};
	family(o, "moat_leak_findings_total", "counter",
	       "Private data found in messages, by category and the "
	       "leak_policy action that applied.");
	for (unsigned c = 0; c < MOAT_LEAK_CATEGORY_COUNT; c++)
		for (unsigned a = 0; a < 4; a++)
			put(o, "moat_leak_findings_total{category=\"%s\","
			       "action=\"%s\"} %llu\n",
			    moat_leak_category_name((enum moat_leak_category)c),
			    action[a],
			    (unsigned long long)MOAT_WSTAT_SUM(b, leaks[c][a]));
	for (unsigned k = 0; k < MOAT_LEAK_TRACKS; k++) /* always alerts */
		put(o, "moat_leak_findings_total{category=\"%s\","
		       "action=\"alert\"} %llu\n",
		    moat__leak_track_name(k),
		    (unsigned long long)MOAT_WSTAT_SUM(
			    b, leaks[MOAT_LEAK_CATEGORY_COUNT + k][1]));
	family(o, "moat_leak_messages_total", "counter",
	       "Messages changed by the leak detector, by what was done.");
	put(o, "moat_leak_messages_total{action=\"redact\"} %llu\n",
	    (unsigned long long)MOAT_STAT_GET(b, leaks_redacted));
	put(o, "moat_leak_messages_total{action=\"block\"} %llu\n",
	    (unsigned long long)MOAT_STAT_GET(b, leaks_blocked));
}

/* A histogram from per-thread parts (n of them, each a struct moat_histo
 * stride bytes apart). */
static void histogram(struct out *o, const char *name, const char *help,
		      const struct moat_histo *h, size_t n, size_t stride)
{
	uint64_t bucket[MOAT_HISTO_NBOUNDS + 1] = {0}, count = 0, sum = 0;
	for (size_t i = 0; i < n; i++) {
		const struct moat_histo *p =
			(const void *)((const char *)h + i * stride);
		for (unsigned k = 0; k <= MOAT_HISTO_NBOUNDS; k++)
			bucket[k] += ld(&p->bucket[k]);
		count += ld(&p->count);
		sum += ld(&p->sum_ns);
	}
	family(o, name, "histogram", help);
	uint64_t cum = 0;
	for (unsigned k = 0; k < MOAT_HISTO_NBOUNDS; k++) {
		cum += bucket[k];
		put(o, "%s_bucket{le=\"%g\"} %llu\n", name,
		    (double)moat_histo_bounds_ns[k] / 1e9,
		    (unsigned long long)cum);
	}
	cum += bucket[MOAT_HISTO_NBOUNDS];
	/* A reader may see count ahead of the buckets: +Inf is the larger
	 * of the two, so the exposition stays consistent. */
	if (count < cum)
		count = cum;
	put(o, "%s_bucket{le=\"+Inf\"} %llu\n", name, (unsigned long long)count);
	put(o, "%s_sum %.9f\n", name, (double)sum / 1e9);
	put(o, "%s_count %llu\n", name, (unsigned long long)count);
}

/* A family with one unlabelled sample. */
struct single {
	const char *name, *type, *help;
	uint64_t value;
};

static void state(struct out *o, struct moat_broker *b)
{
	size_t nsubs, nretained, rbytes;
	pthread_rwlock_rdlock(&b->tree.lock);
	nsubs = b->tree.nsubs;
	nretained = b->tree.nretained;
	rbytes = b->tree.retained_bytes;
	pthread_rwlock_unlock(&b->tree.lock);
	const struct single v[] = {
		{"moat_connections", "gauge",
		 "Open client connections, in any state.",
		 MOAT_STAT_GET(b, connections)},
		{"moat_clients_connected", "gauge",
		 "Clients whose CONNECT was accepted.",
		 MOAT_STAT_GET(b, clients_connected)},
		{"moat_sessions", "gauge", "Sessions kept, connected or not.",
		 MOAT_STAT_GET(b, sessions)},
		{"moat_subscriptions", "gauge", "Subscriptions in the tree.",
		 nsubs},
		{"moat_retained_messages", "gauge",
		 "Retained messages (including the broker's $SYS ones).",
		 nretained},
		{"moat_retained_bytes", "gauge",
		 "Payload bytes of the retained messages the limits count.",
		 rbytes},
		{"moat_queued_messages", "gauge",
		 "Messages waiting in session queues (refreshed every second).",
		 MOAT_WSTAT_SUM(b, queued)},
		{"moat_queued_bytes", "gauge",
		 "Bytes of the messages waiting in session queues (refreshed "
		 "every second).",
		 MOAT_WSTAT_SUM(b, queued_bytes)},
		{"moat_inflight_messages", "gauge",
		 "QoS 1 and 2 messages sent and not yet acknowledged "
		 "(refreshed every second).",
		 MOAT_WSTAT_SUM(b, inflight)},
		{"moat_messages_dropped_total", "counter",
		 "Messages dropped for a limit (queue full, inbox full, too "
		 "large for the client).",
		 MOAT_STAT_GET(b, msgs_dropped)},
		{"moat_messages_expired_total", "counter",
		 "Messages whose Message Expiry Interval ran out before "
		 "delivery.",
		 MOAT_WSTAT_SUM(b, expired)},
		{"moat_memory_bytes", "gauge",
		 "Memory the broker holds through its allocator (what "
		 "memory_limit counts).",
		 moat_alloc_live_bytes()},
		{"moat_coap_dtls_bytes", "gauge",
		 "OpenSSL memory of the CoAP DTLS sessions, counted byte for "
		 "byte (part of what memory_limit counts).",
		 moat_ossl_bytes(MOAT_OSSL_DTLS)},
		{"moat_memory_limit_bytes", "gauge",
		 "memory_limit in force (the automatic one when it is 0).",
		 b->cfg.memory_limit ? b->cfg.memory_limit : b->memory_auto},
	};
	for (size_t i = 0; i < MOAT_ARRAY_LEN(v); i++)
		one(o, v[i].name, v[i].type, v[i].help, v[i].value);
}

static void store(struct out *o, struct moat_broker *b)
{
	struct moat_store *st = b->store;
	if (!st)
		return;
	one(o, "moat_store_backlog_records", "gauge",
	    "Records handed to the store thread and not yet committed.",
	    atomic_load_explicit(&st->backlog, memory_order_relaxed));
	one(o, "moat_store_failing", "gauge",
	    "1 while the store cannot commit (disk full, I/O error).",
	    atomic_load(&st->failing) ? 1 : 0);
	histogram(o, "moat_store_commit_duration_seconds",
		  "Time of one store transaction (one or more batches).",
		  &st->commit_hist, 1, 0);
}

/* Bridges (docs/bridges.md): one series per connection, labelled with
 * its configured name. */
static void bridges(struct out *o, struct moat_broker *b)
{
	static const struct {
		const char *name, *type, *help;
		size_t off;
	} fam[] = {
		{"moat_bridge_up", "gauge",
		 "1 while the bridge is connected to its remote (CONNACK).",
		 0},
		{"moat_bridge_connects_total", "counter",
		 "Connections to the remote that were accepted.",
		 offsetof(struct moat_bridge_stat, connects)},
		{"moat_bridge_connect_failures_total", "counter",
		 "Attempts that ended before CONNACK (refused, unreachable, "
		 "TLS, timeout, protocol).",
		 offsetof(struct moat_bridge_stat, failures)},
		{"moat_bridge_messages_received_total", "counter",
		 "PUBLISH packets received from the remote (in topics).",
		 offsetof(struct moat_bridge_stat, msgs_in)},
		{"moat_bridge_messages_sent_total", "counter",
		 "PUBLISH packets sent to the remote (out topics; resent "
		 "ones too).",
		 offsetof(struct moat_bridge_stat, msgs_out)},
		{"moat_bridge_queued_messages", "gauge",
		 "Messages waiting for the remote (bounded by "
		 "max_queued_messages and max_queued_bytes).",
		 offsetof(struct moat_bridge_stat, queued)},
		{"moat_bridge_dropped_messages_total", "counter",
		 "Messages for the remote dropped by the queue limits.",
		 offsetof(struct moat_bridge_stat, dropped)},
	};
	if (!b->nbridges)
		return;
	for (size_t f = 0; f < sizeof(fam) / sizeof(fam[0]); f++) {
		family(o, fam[f].name, fam[f].type, fam[f].help);
		for (size_t i = 0; i < b->nbridges; i++) {
			struct moat_bridge_stat st;
			moat__bridge_stat(b, i, &st);
			uint64_t v = f == 0 ? (uint64_t)st.up
					    : *(const uint64_t *)(const void *)(
						      (const char *)&st +
						      fam[f].off);
			put(o, "%s{bridge=\"%s\"} %llu\n", fam[f].name, st.name,
			    (unsigned long long)v);
		}
	}
}

/* Cluster mode (docs/cluster.md): only when it is on. */
static void cluster(struct out *o, struct moat_broker *b)
{
	struct moat_cluster_stats cs;
	if (!b->cluster)
		return;
	moat_cluster_get_stats(b, &cs);
	family(o, "moat_cluster_forwarded_total", "counter",
	       "Messages this node's clients published, sent to NATS, by "
	       "QoS.");
	for (unsigned q = 0; q < 3; q++)
		put(o, "moat_cluster_forwarded_total{qos=\"%u\"} %llu\n", q,
		    (unsigned long long)cs.forwarded[q]);
	const struct {
		const char *name, *type, *help;
		uint64_t value;
	} v[] = {
		{"moat_cluster_connected", "gauge",
		 "1 while connected to a NATS server.", cs.connected},
		{"moat_cluster_stream_ready", "gauge",
		 "1 once the JetStream stream exists and is consumed.",
		 cs.stream_ready},
		{"moat_cluster_disconnects_total", "counter",
		 "Times the NATS connection was lost.", cs.disconnects},
		{"moat_cluster_reconnects_total", "counter",
		 "Times it was made again.", cs.reconnects},
		{"moat_cluster_received_total", "counter",
		 "Messages from other nodes routed here.", cs.received},
		{"moat_cluster_pending_messages", "gauge",
		 "Lag out: QoS 1/2 messages waiting for JetStream to store "
		 "them (their PUBACK/PUBREC waits too).",
		 cs.pending},
		{"moat_cluster_inbound_messages", "gauge",
		 "Lag in: messages received from NATS not yet routed.",
		 cs.inbound},
		{"moat_cluster_jetstream_errors_total", "counter",
		 "JetStream publications refused or unanswered (retried), "
		 "stream and subscription failures.",
		 cs.js_errors},
		{"moat_cluster_dropped_total", "counter",
		 "QoS 0 messages not forwarded or not delivered (NATS away "
		 "and its buffer full, slow consumer, malformed).",
		 cs.dropped},
		{"moat_cluster_refused_total", "counter",
		 "QoS 1/2 publishes refused: cluster_max_pending reached.",
		 cs.refused},
		{"moat_cluster_subscriptions", "gauge",
		 "NATS subscriptions for this node's filters (its interest).",
		 cs.interest},
		{"moat_cluster_sessions_ended_total", "counter",
		 "Sessions ended here because their client id connected at "
		 "another node.",
		 cs.sessions_ended},
		{"moat_cluster_sessions_moved_in_total", "counter",
		 "Session states received from another node (the client "
		 "moved here).",
		 cs.sessions_moved_in},
	};
	for (size_t i = 0; i < MOAT_ARRAY_LEN(v); i++)
		one(o, v[i].name, v[i].type, v[i].help, v[i].value);
}

int moat__metrics_render(struct moat_broker *b, char **text, size_t *len)
{
	struct out o = {.failed = false};
	moat_buf_init(&o.buf, METRICS_MAX);
	family(&o, "moat_build_info", "gauge",
	       "Always 1; the version is in the label.");
	put(&o, "moat_build_info{version=\"%s\"} 1\n", MOAT_VERSION);
	one(&o, "moat_start_time_seconds", "gauge",
	    "When moatd started, in seconds since the epoch.",
	    (uint64_t)(moat_wall_s() -
		       (int64_t)((moat_now_ms() - b->start_ms) / 1000u)));
	one(&o, "moat_workers", "gauge", "Worker threads.", b->nworkers);
	state(&o, b);
	traffic(&o, b);
	refusals_and_limits(&o, b);
	leaks(&o, b);
	coap(&o, b);
	bridges(&o, b);
	histogram(&o, "moat_worker_loop_duration_seconds",
		  "Time a worker spent handling the events of one loop turn.",
		  &b->workers[0].st.loop, b->nworkers,
		  sizeof(struct moat_worker));
	store(&o, b);
	cluster(&o, b);
	if (b->http) {
		family(&o, "moat_http_responses_total", "counter",
		       "Responses of the http listeners, by status code.");
		moat__http_codes(b, http_code, &o);
	}
	if (o.failed) {
		moat_buf_cleanup(&o.buf);
		return MOAT_ENOMEM;
	}
	/* The buffer's bytes start at off (0: nothing was consumed). */
	*len = moat_buf_used(&o.buf);
	*text = (char *)o.buf.data;
	return MOAT_OK;
}
