/* $SYS/broker/... topics, named like mosquitto's so that existing
 * dashboards work.  Published retained by worker 0 every sys_interval. */
#include <stdio.h>
#include <string.h>

#include "broker_int.h"
#include "net/ossl_mem.h"

static void put(struct moat_worker *w, const char *topic, const char *value)
{
	struct moat_msg *m =
		moat_msg_new((const uint8_t *)topic, strlen(topic),
			     (const uint8_t *)value, strlen(value), 0, true);
	if (!m)
		return;
	moat_worker_route(w, m);
	moat_msg_unref(&m);
}

static void put_u64(struct moat_worker *w, const char *topic, uint64_t v)
{
	char buf[32];
	snprintf(buf, sizeof(buf), "%llu", (unsigned long long)v);
	put(w, topic, buf);
}

void moat__sys_publish(struct moat_worker *w)
{
	struct moat_broker *b = w->b;
	char buf[64];
	size_t nsubs, nretained;

	pthread_rwlock_rdlock(&b->tree.lock);
	nsubs = b->tree.nsubs;
	nretained = b->tree.nretained;
	pthread_rwlock_unlock(&b->tree.lock);

	uint64_t connected = MOAT_STAT_GET(b, clients_connected);
	uint64_t sessions = MOAT_STAT_GET(b, sessions);
	put(w, "$SYS/broker/version", "moat " MOAT_VERSION);
	snprintf(buf, sizeof(buf), "%llu seconds",
		 (unsigned long long)((moat_now_ms() - b->start_ms) / 1000u));
	put(w, "$SYS/broker/uptime", buf);
	put_u64(w, "$SYS/broker/clients/connected", connected);
	put_u64(w, "$SYS/broker/clients/total", sessions);
	put_u64(w, "$SYS/broker/clients/disconnected",
		sessions > connected ? sessions - connected : 0);
	put_u64(w, "$SYS/broker/clients/maximum",
		MOAT_STAT_GET(b, clients_maximum));
	put_u64(w, "$SYS/broker/messages/received",
		moat__traffic(b, MOAT_TRAFFIC_MSGS_IN));
	put_u64(w, "$SYS/broker/messages/sent", moat__traffic(b, MOAT_TRAFFIC_MSGS_OUT));
	put_u64(w, "$SYS/broker/publish/messages/dropped",
		MOAT_STAT_GET(b, msgs_dropped));
	put_u64(w, "$SYS/broker/bytes/received",
		moat__traffic(b, MOAT_TRAFFIC_BYTES_IN));
	put_u64(w, "$SYS/broker/bytes/sent", moat__traffic(b, MOAT_TRAFFIC_BYTES_OUT));
	put_u64(w, "$SYS/broker/subscriptions/count", nsubs);
	put_u64(w, "$SYS/broker/retained messages/count", nretained);
	put_u64(w, "$SYS/broker/heap/current", moat_alloc_live_bytes());
	put_u64(w, "$SYS/broker/coap/requests", MOAT_STAT_GET(b, coap_requests));
	put_u64(w, "$SYS/broker/coap/publishes",
		MOAT_STAT_GET(b, coap_publishes));
	put_u64(w, "$SYS/broker/coap/notifications",
		MOAT_STAT_GET(b, coap_notifications));
	put_u64(w, "$SYS/broker/coap/observers",
		MOAT_STAT_GET(b, coap_observers));
	put_u64(w, "$SYS/broker/coap/echo", MOAT_STAT_GET(b, coap_echo));
	put_u64(w, "$SYS/broker/coap/dropped", MOAT_STAT_GET(b, coap_dropped));
	put_u64(w, "$SYS/broker/coap/separate",
		MOAT_STAT_GET(b, coap_separate));
	put_u64(w, "$SYS/broker/coap/suppressed",
		MOAT_STAT_GET(b, coap_suppressed));
	put_u64(w, "$SYS/broker/coap/dtls sessions",
		MOAT_STAT_GET(b, coap_dtls_sessions));
	put_u64(w, "$SYS/broker/coap/dtls bytes",
		moat_ossl_bytes(MOAT_OSSL_DTLS));
	moat__leak_sys_publish(w, put);
	if (b->cluster) {
		/* Cluster mode: this node's view (docs/cluster.md). */
		struct moat_cluster_stats cs;
		moat_cluster_get_stats(b, &cs);
		put(w, "$SYS/broker/cluster/connected",
		    cs.connected ? "1" : "0");
		put(w, "$SYS/broker/cluster/stream ready",
		    cs.stream_ready ? "1" : "0");
		put_u64(w, "$SYS/broker/cluster/reconnects", cs.reconnects);
		put_u64(w, "$SYS/broker/cluster/forwarded",
			cs.forwarded[0] + cs.forwarded[1] + cs.forwarded[2]);
		put_u64(w, "$SYS/broker/cluster/received", cs.received);
		put_u64(w, "$SYS/broker/cluster/lag/out", cs.pending);
		put_u64(w, "$SYS/broker/cluster/lag/in", cs.inbound);
		put_u64(w, "$SYS/broker/cluster/jetstream errors",
			cs.js_errors);
		put_u64(w, "$SYS/broker/cluster/dropped", cs.dropped);
		put_u64(w, "$SYS/broker/cluster/refused", cs.refused);
		put_u64(w, "$SYS/broker/cluster/subscriptions", cs.interest);
	}
}
