/* libFuzzer harness for the broker's packet handling: every packet type in
 * every connection state and protocol version, through the real code
 * (moat_conn_process_input and the handlers, sessions, routing, the topic
 * tree, retained messages, wills), without threads or the network.
 *
 * Input layout:
 *   data[0] bits 0-1  what precedes the input: nothing (the connection is
 *                     still new), or a valid CONNECT for MQTT 3.1.1, 5.0
 *                     or 3.1 (so the input lands on an active connection)
 *           bit 2     a second client (MQTT 5) subscribed to "#" and
 *                     "$share/g/#" watches, so deliveries are exercised
 *           bit 3     the CONNECT asks for a persistent session
 *   data[1]           feed size: the input arrives in chunks of this many
 *                     bytes (0 = 1), as a TCP stream would split it
 *   data[2..]         the bytes the client sends
 * Each run builds a fresh broker (one worker, no threads started), feeds
 * the bytes through a socketpair-backed connection, flushes and drains
 * what the broker writes, closes, and frees everything: LeakSanitizer
 * checks the teardown of whatever state the input created. */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "broker/broker_int.h"
#include "fuzz_conn.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const uint8_t connect311[] = {0x10, 0x0d, 0x00, 0x04, 'M', 'Q', 'T',
				     'T', 0x04, 0x02, 0x00, 0x3c, 0x00, 0x01,
				     'f'};
static const uint8_t connect5[] = {0x10, 0x0e, 0x00, 0x04, 'M', 'Q',
				   'T', 'T', 0x05, 0x02, 0x00, 0x3c,
				   0x00, 0x00, 0x01, 'f'};
static const uint8_t connect31[] = {0x10, 0x0f, 0x00, 0x06, 'M', 'Q',
				    'I', 's', 'd', 'p', 0x03, 0x02,
				    0x00, 0x3c, 0x00, 0x01, 'f'};
/* The watcher: MQTT 5 CONNECT "w", then SUBSCRIBE "#" and "$share/g/#"
 * at QoS 2. */
static const uint8_t watcher[] = {
	0x10, 0x0e, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x05, 0x02, 0x00, 0x3c,
	0x00, 0x00, 0x01, 'w',
	0x82, 0x14, 0x00, 0x01, 0x00, 0x00, 0x01, '#', 0x02, 0x00, 0x0a, '$',
	's', 'h', 'a', 'r', 'e', '/', 'g', '/', '#', 0x02};

static struct moat_config cfg;

static void setup(void)
{
	struct moat_cfg_err err;
	moat_log_set_level(MOAT_LOG_ERROR);
	moat_cfg_defaults(&cfg);
	/* No leak detection: building its detector takes ~0.1 s, once per
	 * input here; fuzz_leak fuzzes the detector on its own. */
	static const char text[] = "listener 0 127.0.0.1\nworkers 1\n"
				   "sys_interval 0\nlog_level error\n"
				   "leak_detection false\n";
	if (moat_cfg_load_string(&cfg, "fuzz", text, sizeof(text) - 1, &err) ||
	    moat_cfg_finish(&cfg, &err)) {
		fprintf(stderr, "fuzz_broker: %s\n", err.msg);
		abort();
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
	if (moat_broker_new(&cfg, &b) != MOAT_OK)
		return 0;
	struct moat_worker *w = &b->workers[0];
	int wfd[2] = {-1, -1}, fd[2] = {-1, -1};
	struct moat_conn *wc = NULL, *c;
	if (mode & 4) {
		wc = fuzz_open_conn(w, wfd);
		if (wc)
			fuzz_feed(wc, wfd[1], watcher, sizeof(watcher),
				  sizeof(watcher));
	}
	if ((c = fuzz_open_conn(w, fd)) != NULL) {
		static const uint8_t *pre[] = {NULL, connect311, connect5,
					       connect31};
		static const size_t prelen[] = {0, sizeof(connect311),
						sizeof(connect5),
						sizeof(connect31)};
		static const size_t flags_at[] = {0, 9, 9, 11};
		uint8_t first[32];
		size_t k = mode & 3;
		bool ok = true;
		if (pre[k]) {
			memcpy(first, pre[k], prelen[k]);
			if (mode & 8) /* clean session / clean start off */
				first[flags_at[k]] &= (uint8_t)~0x02;
			ok = fuzz_feed(c, fd[1], first, prelen[k], prelen[k]);
		}
		if (ok)
			fuzz_feed(c, fd[1], data, size, chunk);
		if (c->state != CONN_CLOSED)
			moat_conn_close(c, "fuzz input ended");
		close(fd[1]);
	}
	if (wc) {
		moat_conn_flush(wc);
		fuzz_drain(wfd[1]);
		close(wfd[1]);
	}
	moat_broker_free(b);
	return 0;
}
