/* libFuzzer harness for moatd's CoAP message layer through the real broker
 * (coap_srv.c, coap_ps.c: deduplication, Echo, the /ps/ resources,
 * Block1/Block2, Observe and notifications, the topic tree, retained
 * messages, observer sessions), as fuzz_broker does for MQTT: one worker,
 * no threads, datagrams handed to moat__coap_datagram directly.
 *
 * Input layout:
 *   data[0] bit 0     peer B first observes "#" (GET /ps/%23, Observe 0),
 *                     so that publishes produce notifications
 *           bit 1     the listener is a "network" one (answers to
 *                     unvalidated addresses are bounded, Echo)
 *           bit 2     limit_loopback and coap_request_rate_per_ip 3: the
 *                     per-peer and per-IP request rates apply (both
 *                     peers are loopback addresses)
 *   data[1..]         datagrams: a 2-byte header (bit 15: from peer B
 *                     instead of A; bits 0-14: length), then the bytes
 * At the end the clock jumps ahead and the tick runs (retransmissions of
 * Confirmable notifications, dropped observers, idle peers), then
 * everything is freed: LeakSanitizer checks the teardown.  Seeds in
 * corpus/coap_broker were made with the same layout. */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker/coap_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct moat_config cfg;

static void setup(void)
{
	struct moat_cfg_err err;
	moat_log_set_level(MOAT_LOG_ERROR);
	moat_cfg_defaults(&cfg);
	static const char text[] = "listener 0 127.0.0.1\nworkers 1\n"
				   "listener 0 127.0.0.1\nprotocol coap\n"
				   "sys_interval 0\nlog_level error\n"
				   "leak_detection false\n"
				   "max_packet_size 8192\n";
	if (moat_cfg_load_string(&cfg, "fuzz", text, sizeof(text) - 1, &err) ||
	    moat_cfg_finish(&cfg, &err)) {
		fprintf(stderr, "fuzz_coap_broker: %s\n", err.msg);
		abort();
	}
}

/* GET /ps/%23 with Observe 0, token "ob". */
static const uint8_t observe_all[] = {0x42, 0x01, 0x12, 0x34, 'o', 'b',
				      0x60, 0x52, 'p',	's',  0x01, '#'};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static bool ready;
	if (!ready) {
		setup();
		ready = true;
	}
	if (size < 1)
		return 0;
	uint8_t mode = data[0];
	data++;
	size--;
	struct moat_broker *b;
	cfg.limit_loopback = (mode & 4) != 0;
	cfg.coap_request_rate_per_ip = mode & 4 ? 3 : 200;
	if (moat_broker_new(&cfg, &b) != MOAT_OK)
		return 0;
	struct moat_worker *w = &b->workers[0];
	struct moat_coap_ep *ep = &w->coap->eps[0];
	ep->loopback = !(mode & 2);
	/* Port 9 (discard) on loopback: what the broker sends goes nowhere. */
	union moat_sockaddr pa = {.v4 = {.sin_family = AF_INET,
					 .sin_port = htons(9),
					 .sin_addr.s_addr =
						 htonl(INADDR_LOOPBACK)}};
	union moat_sockaddr pb = pa;
	pb.v4.sin_addr.s_addr = htonl(INADDR_LOOPBACK + 1);
	if (mode & 1)
		moat__coap_datagram(ep, observe_all, sizeof(observe_all), &pb,
				    sizeof(pb.v4));
	while (size >= 2) {
		unsigned hdr = (unsigned)data[0] << 8 | data[1];
		size_t n = MOAT_MIN((size_t)(hdr & 0x7fff), size - 2);
		const union moat_sockaddr *from = hdr & 0x8000 ? &pb : &pa;
		moat__coap_datagram(ep, data + 2, n, from, sizeof(from->v4));
		w->now_ms += 7;
		data += 2 + n;
		size -= 2 + n;
	}
	for (int i = 0; i < 8; i++) {
		w->now_ms += 60000;
		moat__coap_tick(w, w->now_ms);
	}
	moat_broker_free(b);
	return 0;
}
