/* libFuzzer harness for a bridge's connection (docs/bridges.md): the
 * bytes a remote broker sends, through the real code (moat_conn's framing,
 * moat__bridge_packet for CONNACK, SUBACK, PINGRESP and DISCONNECT, the
 * broker's PUBLISH and acknowledgement handlers with the topic mapped in,
 * the bridge's session and its outgoing window), without threads or the
 * network.  The remote is untrusted (THREATS.md T-20).
 *
 * Input layout:
 *   data[0] bit 0  MQTT 5 (else 3.1.1 with the bridge bit)
 *           bit 1  an accepted CONNACK precedes the input (so it lands on
 *                  an active connection)
 *           bit 2  local QoS 1 messages on an out topic before and after,
 *                  so the window, the queue and resending are exercised
 *   data[1]        feed size (0 = 1), as a TCP stream would split it
 *   data[2..]      the bytes the remote sends
 * Each run builds a fresh broker with one bridge (its own connection
 * replaced by one end of a socketpair), feeds the bytes, closes, and frees
 * everything: LeakSanitizer checks the teardown. */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "broker/bridge_int.h"
#include "fuzz_conn.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct moat_config cfg[2]; /* 3.1.1, 5.0 */

static void setup(void)
{
	static const char *const text[2] = {
		"listener 0 127.0.0.1\nworkers 1\nsys_interval 0\n"
		"log_level error\nleak_detection false\n"
		"max_queued_messages 8\nconnection f\naddress 127.0.0.1:1\n"
		"topic s/# out 1 l/ r/\ntopic # in 2 in/ \"\"\n"
		"topic b/# both 1\n",
		"listener 0 127.0.0.1\nworkers 1\nsys_interval 0\n"
		"log_level error\nleak_detection false\n"
		"max_queued_messages 8\nconnection f\naddress 127.0.0.1:1\n"
		"bridge_protocol_version mqttv50\n"
		"topic s/# out 1 l/ r/\ntopic # in 2 in/ \"\"\n"
		"topic b/# both 1\n"};
	moat_log_set_level(MOAT_LOG_ERROR);
	for (int i = 0; i < 2; i++) {
		struct moat_cfg_err err;
		moat_cfg_defaults(&cfg[i]);
		if (moat_cfg_load_string(&cfg[i], "fuzz", text[i],
					 strlen(text[i]), &err) ||
		    moat_cfg_finish(&cfg[i], &err)) {
			fprintf(stderr, "fuzz_bridge: %s\n", err.msg);
			abort();
		}
	}
}

/* The bridge's connection, as connect_to makes it, on a socketpair. */
static struct moat_conn *open_bridge(struct moat_bridge *br, int fds[2])
{
	struct moat_conn *c = fuzz_open_conn(br->w, fds);
	if (!c)
		return NULL;
	c->bridge = br;
	c->proto_level = br->version;
	c->keepalive = 60;
	c->authenticated = true;
	c->username = moat_strdup(br->cfg->local_username);
	br->c = c;
	br->phase = BRIDGE_CONNECTING;
	return c;
}

static void local_messages(struct moat_worker *w, int n)
{
	for (int i = 0; i < n; i++) {
		struct moat_msg *m = moat_msg_new((const uint8_t *)"l/s/x", 5,
						  (const uint8_t *)"v", 1, 1,
						  false);
		if (!m)
			return;
		moat_worker_route(w, m);
		moat_msg_unref(&m);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static bool ready;
	if (!ready) {
		setup();
		ready = true;
	}
	if (size < 2)
		return 0;
	uint8_t mode = data[0];
	size_t chunk = data[1] ? data[1] : 1;
	data += 2;
	size -= 2;
	struct moat_broker *b;
	if (moat_broker_new(&cfg[mode & 1], &b) != MOAT_OK)
		return 0;
	struct moat_worker *w = &b->workers[0];
	w->now_ms = moat_now_ms();
	int fd[2];
	struct moat_conn *c = open_bridge(&b->bridges[0], fd);
	if (c) {
		static const uint8_t ack3[] = {0x20, 0x02, 0x00, 0x00};
		static const uint8_t ack5[] = {0x20, 0x03, 0x00, 0x00, 0x00};
		bool ok = true;
		if (mode & 4)
			local_messages(w, 12);
		if (mode & 2)
			ok = mode & 1 ? fuzz_feed(c, fd[1], ack5, sizeof(ack5), 5)
				      : fuzz_feed(c, fd[1], ack3, sizeof(ack3), 4);
		if (ok)
			ok = fuzz_feed(c, fd[1], data, size, chunk);
		if (ok && (mode & 4)) {
			local_messages(w, 4);
			moat_conn_flush(c);
			fuzz_drain(fd[1]);
		}
		if (c->state != CONN_CLOSED)
			moat_conn_close(c, "fuzz input ended");
		close(fd[1]);
	}
	moat_broker_free(b);
	return 0;
}
