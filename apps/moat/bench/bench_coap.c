/* `moat bench --coap SCENARIO`: CoAP load against moatd's /ps/ resources
 * (docs/coap.md), plain or over DTLS-PSK, with an MQTT client on the other
 * side:
 *   publish  C CoAP clients send CON POSTs (a window of W each) into an
 *            MQTT subscriber: acknowledged publishes/s, deliveries/s;
 *   observe  C CoAP observers of one topic, an MQTT publisher (QoS 0)
 *            kept a bounded number of messages ahead: notifications/s;
 *   idle     C DTLS sessions (or plain peers) opened and left idle:
 *            moatd's RSS per session (--pid: read from /proc).
 * One thread, one epoll loop; every phase is bounded in time.  A
 * benchmark reports figures: it fails only when it cannot run at all. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>

#include "cli_opt.h"
#include "codec/coap.h"
#include "commands.h"
#include "coap/coap_layer.h"
#include "common/moat_common.h"
#include "net/dgram.h"
#include "net/dtls.h"

struct cb_cfg {
	const char *host;
	long port, mqtt_port, clients, window, size, pid;
	double duration, hold;
	bool dtls, json, help;
	const char *psk_identity, *psk_file, *topic;
};

#define F(field) offsetof(struct cb_cfg, field)

static const struct cli_opt options[] = {
	{'h', "host", 0, CLI_OPT_STR, F(host), 0, 0, "HOST",
	 "broker address (default: 127.0.0.1)", 0},
	{'p', "port", 0, CLI_OPT_LONG, F(port), 1, 65535, "PORT",
	 "CoAP port (default: 5683, with --dtls 5684)", 0},
	{0, "mqtt-port", 0, CLI_OPT_LONG, F(mqtt_port), 1, 65535, "PORT",
	 "the broker's plain MQTT port for the other side (default: 1883)",
	 0},
	{0, "dtls", 0, CLI_OPT_FLAG, F(dtls), 0, 0, NULL,
	 "CoAP over DTLS 1.2 with a PSK (needs --psk-identity, --psk-file)",
	 0},
	{0, "psk-identity", 0, CLI_OPT_STR, F(psk_identity), 0, 0, "ID",
	 "PSK identity", 0},
	{0, "psk-file", 0, CLI_OPT_STR, F(psk_file), 0, 0, "FILE",
	 "the key: FILE's first line (hex:... for a hex key)", 0},
	{'c', "clients", 0, CLI_OPT_LONG, F(clients), 1, 10000, "N",
	 "CoAP clients (default: 50)", 0},
	{0, "window", 0, CLI_OPT_LONG, F(window), 1, 8, "N",
	 "publish: CON requests outstanding per client (default: 4)", 0},
	{'s', "size", 0, CLI_OPT_LONG, F(size), 8, 1024, "BYTES",
	 "payload size (default: 32)", 0},
	{'d', "duration", 0, CLI_OPT_DOUBLE, F(duration), 0.1, 3600,
	 "SECONDS", "measuring time (default: 5)", 0},
	{0, "hold", 0, CLI_OPT_DOUBLE, F(hold), 0, 3600, "SECONDS",
	 "idle: wait this long before reading RSS (default: 3)", 0},
	{0, "pid", 0, CLI_OPT_LONG, F(pid), 1, 4194304, "PID",
	 "idle: moatd's process id (RSS from /proc/PID/status)", 0},
	{'t', "topic", 0, CLI_OPT_STR, F(topic), 0, 0, "PREFIX",
	 "topic prefix (default: bench/coap)", 0},
	{0, "json", 0, CLI_OPT_FLAG, F(json), 0, 0, NULL,
	 "print the result as one JSON object", 0},
	{0, "help", 0, CLI_OPT_HELP, 0, 0, 0, NULL, "show this help", 0},
};

static const struct cli_cmd command = {
	.name = "bench --coap",
	.opts = options,
	.nopts = MOAT_ARRAY_LEN(options),
	.usage = moat_bench_coap_usage,
};

void moat_bench_coap_usage(FILE *f)
{
	fputs("Usage: moat bench --coap SCENARIO [OPTION]...\n\n"
	      "CoAP load against moatd's /ps/ resources, plain or DTLS-PSK.\n\n"
	      "Scenarios:\n"
	      "  publish  CoAP CON POSTs into an MQTT subscriber\n"
	      "  observe  MQTT QoS 0 publishes to CoAP observers\n"
	      "  idle     idle sessions: moatd's RSS per session (--pid)\n\n"
	      "Options:\n",
	      f);
	cli_opt_print(f, &command, 29);
	fputs("\nExit status: 0 done (figures printed), 1 cannot connect, 2 "
	      "usage error.\n",
	      f);
}

/* ---- the clients ---------------------------------------------------- */

struct cb_client {
	struct moat_dgram d;
	uint16_t mid;
	uint32_t outstanding;
	uint64_t last_rx_ms;
	bool ready; /* observe: registered */
};

struct cb_run {
	const struct cb_cfg *cfg;
	int ep;
	struct cb_client *cl;
	SSL_CTX *ctx;
	struct moat_dtls_client_cfg dcfg;
	uint8_t psk[64];
	int mqtt;
	uint8_t min[65536];
	size_t min_len;
	uint64_t acked, delivered, notified, timeouts, errors;
	uint8_t payload[1024];
};

static int load_psk(struct cb_run *r)
{
	FILE *f = fopen(r->cfg->psk_file, "re");
	char line[300];
	if (!f || !fgets(line, sizeof(line), f)) {
		if (f)
			fclose(f);
		fprintf(stderr, "moat bench: cannot read %s\n",
			r->cfg->psk_file);
		return MOAT_EIO;
	}
	fclose(f);
	line[strcspn(line, "\r\n")] = '\0';
	size_t n = 0;
	if (!strncmp(line, "hex:", 4)) {
		for (const char *h = line + 4; h[0] && h[1] && n < sizeof(r->psk);
		     h += 2) {
			char b[3] = {h[0], h[1], 0};
			r->psk[n++] = (uint8_t)strtoul(b, NULL, 16);
		}
	} else {
		n = MOAT_MIN(strlen(line), sizeof(r->psk));
		memcpy(r->psk, line, n);
	}
	OPENSSL_cleanse(line, sizeof(line));
	r->dcfg.psk_identity = r->cfg->psk_identity;
	r->dcfg.psk = r->psk;
	r->dcfg.psk_len = n;
	r->dcfg.host = r->cfg->host;
	r->dcfg.host_is_ip = true;
	return n ? MOAT_OK : MOAT_EINVAL;
}

static int client_open(struct cb_run *r, struct cb_client *c)
{
	char err[256];
	if (moat_dgram_open(&c->d, r->cfg->host, (uint16_t)r->cfg->port, err,
			    sizeof(err)) != MOAT_OK) {
		fprintf(stderr, "moat bench: %s\n", err);
		return MOAT_EIO;
	}
	if (r->cfg->dtls &&
	    moat_dtls_connect(r->ctx, c->d.fd, &r->dcfg, moat_now_ms() + 10000,
			      &c->d.ssl, err, sizeof(err)) != MOAT_OK) {
		fprintf(stderr, "moat bench: DTLS: %s\n", err);
		return MOAT_ETLS;
	}
	uint16_t rnd;
	(void)coap_random(&rnd, sizeof(rnd));
	c->mid = rnd;
	struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
	return epoll_ctl(r->ep, EPOLL_CTL_ADD, c->d.fd, &ev) ? MOAT_EIO
							    : MOAT_OK;
}

/* A request on /ps/PREFIX[/leaf] from c. */
static void request(struct cb_run *r, struct cb_client *c, uint8_t type,
		    uint8_t code, const char *leaf, bool observe,
		    const uint8_t *body, size_t blen)
{
	uint8_t pkt[1400];
	struct coap_wr w;
	size_t len;
	uint8_t tok[4] = {'b', 'n', 'c', (uint8_t)(c - r->cl)};
	coap_wr_init(&w, pkt, sizeof(pkt));
	coap_wr_header(&w, type, code, ++c->mid, tok, sizeof(tok));
	if (observe)
		coap_wr_opt(&w, COAP_OPT_OBSERVE, NULL, 0);
	coap_wr_opt(&w, COAP_OPT_URI_PATH, "ps", 2);
	const char *t = r->cfg->topic;
	for (;;) {
		const char *s = strchr(t, '/');
		size_t n = s ? (size_t)(s - t) : strlen(t);
		coap_wr_opt(&w, COAP_OPT_URI_PATH, t, n);
		if (!s)
			break;
		t = s + 1;
	}
	if (leaf)
		coap_wr_opt(&w, COAP_OPT_URI_PATH, leaf, strlen(leaf));
	if (blen)
		coap_wr_payload(&w, body, blen);
	if (coap_wr_finish(&w, &len) == MOAT_OK &&
	    moat_dgram_send(&c->d, pkt, len) == MOAT_OK)
		c->outstanding++;
	else
		r->errors++;
}

static void empty_ack(struct cb_client *c, uint16_t mid)
{
	uint8_t pkt[4] = {0x60, 0, (uint8_t)(mid >> 8), (uint8_t)mid};
	(void)moat_dgram_send(&c->d, pkt, sizeof(pkt));
}

/* One datagram for c. */
static void on_coap(struct cb_run *r, struct cb_client *c, const uint8_t *d,
		    size_t n)
{
	struct coap_msg m;
	if (coap_parse(d, n, &m) != MOAT_OK)
		return;
	c->last_rx_ms = moat_now_ms();
	if (m.type == COAP_CON)
		empty_ack(c, m.mid); /* a notification or separate response */
	if (m.code == COAP_EMPTY)
		return;
	if (coap_opt_find(&m, COAP_OPT_OBSERVE, &(struct coap_opt){0})) {
		if (m.type == COAP_ACK)
			c->ready = true; /* the registration's response */
		else
			r->notified++;
		return;
	}
	if (c->outstanding)
		c->outstanding--;
	if (m.code == COAP_CHANGED)
		r->acked++;
	else
		r->errors++;
}

static void read_client(struct cb_run *r, struct cb_client *c)
{
	uint8_t buf[2048];
	for (int i = 0; i < 256; i++) {
		int n;
		if (c->d.ssl) {
			n = SSL_read(c->d.ssl, buf, sizeof(buf));
			if (n <= 0) {
				ERR_clear_error();
				return;
			}
		} else {
			n = (int)recv(c->d.fd, buf, sizeof(buf), MSG_DONTWAIT);
			if (n < 0)
				return;
		}
		on_coap(r, c, buf, (size_t)n);
	}
}

/* ---- the MQTT side (3.1.1, QoS 0, one connection) -------------------- */

static size_t mqtt_str(uint8_t *p, const char *s, size_t n)
{
	p[0] = (uint8_t)(n >> 8);
	p[1] = (uint8_t)n;
	memcpy(p + 2, s, n);
	return 2 + n;
}

static size_t mqtt_hdr(uint8_t *p, uint8_t type, size_t rem)
{
	size_t i = 0;
	p[i++] = type;
	do {
		uint8_t b = rem & 127;
		rem >>= 7;
		p[i++] = (uint8_t)(b | (rem ? 128 : 0));
	} while (rem);
	return i;
}

static int send_all(int fd, const uint8_t *p, size_t n)
{
	while (n) {
		ssize_t k = send(fd, p, n, MSG_NOSIGNAL);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			return MOAT_EIO;
		p += k;
		n -= (size_t)k;
	}
	return MOAT_OK;
}

static int mqtt_open(struct cb_run *r, const char *sub)
{
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM,
				 .ai_flags = AI_NUMERICSERV};
	struct addrinfo *ai = NULL;
	char ps[8];
	snprintf(ps, sizeof(ps), "%ld", r->cfg->mqtt_port);
	if (getaddrinfo(r->cfg->host, ps, &hints, &ai))
		return MOAT_EIO;
	r->mqtt = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	int one = 1;
	if (r->mqtt < 0 || connect(r->mqtt, ai->ai_addr, ai->ai_addrlen)) {
		freeaddrinfo(ai);
		fprintf(stderr, "moat bench: MQTT port %ld: %s\n",
			r->cfg->mqtt_port, strerror(errno));
		return MOAT_EIO;
	}
	freeaddrinfo(ai);
	(void)setsockopt(r->mqtt, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	uint8_t pkt[600], body[512];
	char id[32];
	int idn = snprintf(id, sizeof(id), "moat-bench-coap-%d", (int)getpid());
	size_t b = mqtt_str(body, "MQTT", 4);
	body[b++] = 4;	  /* 3.1.1 */
	body[b++] = 0x02; /* clean session */
	body[b++] = 0;
	body[b++] = 60;
	b += mqtt_str(body + b, id, (size_t)idn);
	size_t h = mqtt_hdr(pkt, 0x10, b);
	memcpy(pkt + h, body, b);
	uint8_t ca[4];
	if (send_all(r->mqtt, pkt, h + b) ||
	    recv(r->mqtt, ca, 4, MSG_WAITALL) != 4 || ca[0] != 0x20 || ca[3]) {
		fprintf(stderr, "moat bench: MQTT CONNECT refused\n");
		return MOAT_EIO;
	}
	if (sub) {
		size_t sl = strlen(sub);
		b = 0;
		body[b++] = 0;
		body[b++] = 1;
		b += mqtt_str(body + b, sub, sl);
		body[b++] = 0; /* QoS 0 */
		h = mqtt_hdr(pkt, 0x82, b);
		memcpy(pkt + h, body, b);
		uint8_t sa[5];
		if (send_all(r->mqtt, pkt, h + b) ||
		    recv(r->mqtt, sa, 5, MSG_WAITALL) != 5 || sa[0] != 0x90 ||
		    sa[4] > 2) {
			fprintf(stderr, "moat bench: MQTT SUBSCRIBE refused\n");
			return MOAT_EIO;
		}
	}
	struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
	return epoll_ctl(r->ep, EPOLL_CTL_ADD, r->mqtt, &ev) ? MOAT_EIO
							    : MOAT_OK;
}

/* Count the PUBLISH packets received. */
static void read_mqtt(struct cb_run *r)
{
	for (;;) {
		ssize_t k = recv(r->mqtt, r->min + r->min_len,
				 sizeof(r->min) - r->min_len, MSG_DONTWAIT);
		if (k <= 0)
			return;
		r->min_len += (size_t)k;
		size_t off = 0;
		while (r->min_len - off >= 2) {
			size_t rem = 0, i = 1;
			unsigned shift = 0;
			while (i < r->min_len - off && i < 5) {
				uint8_t b = r->min[off + i++];
				rem |= (size_t)(b & 127) << shift;
				shift += 7;
				if (!(b & 128))
					goto have;
			}
			break;
		have:
			if (r->min_len - off < i + rem)
				break;
			if ((r->min[off] & 0xF0) == 0x30)
				r->delivered++;
			off += i + rem;
		}
		memmove(r->min, r->min + off, r->min_len - off);
		r->min_len -= off;
	}
}

static void mqtt_publish(struct cb_run *r, const char *topic)
{
	uint8_t pkt[1400];
	size_t tl = strlen(topic);
	size_t h = mqtt_hdr(pkt, 0x30, 2 + tl + (size_t)r->cfg->size);
	h += mqtt_str(pkt + h, topic, tl);
	memcpy(pkt + h, r->payload, (size_t)r->cfg->size);
	if (send_all(r->mqtt, pkt, h + (size_t)r->cfg->size))
		r->errors++;
}

/* ---- the loop ---------------------------------------------------------- */

static void poll_once(struct cb_run *r, int wait_ms)
{
	struct epoll_event ev[64];
	int n = epoll_wait(r->ep, ev, 64, wait_ms);
	for (int i = 0; i < n; i++) {
		if (ev[i].data.ptr)
			read_client(r, ev[i].data.ptr);
		else
			read_mqtt(r);
	}
}

static double run_publish(struct cb_run *r)
{
	const struct cb_cfg *cfg = r->cfg;
	uint64_t start = moat_now_ms(), end = start + (uint64_t)(cfg->duration * 1000);
	while (moat_now_ms() < end) {
		uint64_t now = moat_now_ms();
		for (long i = 0; i < cfg->clients; i++) {
			struct cb_client *c = &r->cl[i];
			if (c->outstanding && now - c->last_rx_ms > 2000) {
				r->timeouts += c->outstanding; /* lost */
				c->outstanding = 0;
			}
			while (c->outstanding < (uint32_t)cfg->window) {
				if (!c->outstanding)
					c->last_rx_ms = now;
				request(r, c, COAP_CON, COAP_POST, "p", false,
					r->payload, (size_t)cfg->size);
			}
		}
		poll_once(r, 5);
	}
	double secs = (double)(moat_now_ms() - start) / 1000.0;
	for (uint64_t t = moat_now_ms() + 2000; moat_now_ms() < t;)
		poll_once(r, 20); /* the last answers and deliveries */
	return secs;
}

static double run_observe(struct cb_run *r)
{
	const struct cb_cfg *cfg = r->cfg;
	for (long i = 0; i < cfg->clients; i++)
		request(r, &r->cl[i], COAP_CON, COAP_GET, "o", true, NULL, 0);
	for (uint64_t t = moat_now_ms() + 5000; moat_now_ms() < t;) {
		long ready = 0;
		for (long i = 0; i < cfg->clients; i++)
			ready += r->cl[i].ready;
		if (ready == cfg->clients)
			break;
		poll_once(r, 20);
	}
	char topic[300];
	snprintf(topic, sizeof(topic), "%s/o", cfg->topic);
	/* The publisher stays at most 64 messages per observer ahead of
	 * what arrived; a stall of 200 ms (lost NON notifications) lets it
	 * go on. */
	uint64_t published = 0, stall = moat_now_ms();
	uint64_t start = moat_now_ms(), end = start + (uint64_t)(cfg->duration * 1000);
	uint64_t base = 0;
	while (moat_now_ms() < end) {
		uint64_t now = moat_now_ms(), seen = r->notified - base;
		if (published * (uint64_t)cfg->clients < seen + 64 * (uint64_t)cfg->clients) {
			for (int k = 0; k < 16; k++, published++)
				mqtt_publish(r, topic);
			stall = now;
		} else if (now - stall > 200) {
			base = r->notified - published * (uint64_t)cfg->clients;
			stall = now;
		}
		poll_once(r, 1);
	}
	double secs = (double)(moat_now_ms() - start) / 1000.0;
	for (uint64_t t = moat_now_ms() + 1000; moat_now_ms() < t;)
		poll_once(r, 20);
	r->delivered = published; /* what was offered */
	return secs;
}

static long rss_kib(long pid)
{
	char path[64], line[256];
	long kib = -1;
	snprintf(path, sizeof(path), "/proc/%ld/status", pid);
	FILE *f = fopen(path, "re");
	while (f && fgets(line, sizeof(line), f))
		if (!strncmp(line, "VmRSS:", 6))
			kib = strtol(line + 6, NULL, 10);
	if (f)
		fclose(f);
	return kib;
}

static int run(struct cb_run *r, const char *scenario)
{
	const struct cb_cfg *cfg = r->cfg;
	bool idle = !strcmp(scenario, "idle");
	long before = idle && cfg->pid ? rss_kib(cfg->pid) : -1;
	for (long i = 0; i < cfg->clients; i++)
		if (client_open(r, &r->cl[i]) != MOAT_OK)
			return CLI_EXIT_FAIL;
	const char *mode = cfg->dtls ? "DTLS-PSK" : "UDP";
	if (idle) {
		/* One request each (a peer exists once it sent one). */
		for (long i = 0; i < cfg->clients; i++)
			request(r, &r->cl[i], COAP_CON, COAP_GET, "idle",
				false, NULL, 0);
		for (uint64_t t = moat_now_ms() + (uint64_t)(cfg->hold * 1000);
		     moat_now_ms() < t;)
			poll_once(r, 50);
		long after = cfg->pid ? rss_kib(cfg->pid) : -1;
		double per = before >= 0 && after >= 0
				     ? (double)(after - before) / (double)cfg->clients
				     : -1;
		if (cfg->json)
			printf("{\"scenario\":\"idle\",\"transport\":\"%s\","
			       "\"sessions\":%ld,\"rss_before_kib\":%ld,"
			       "\"rss_after_kib\":%ld,\"kib_per_session\":%.1f}\n",
			       mode, cfg->clients, before, after, per);
		else
			printf("CoAP %s: %ld idle sessions, moatd RSS %ld KiB -> "
			       "%ld KiB: %.1f KiB per session\n",
			       mode, cfg->clients, before, after, per);
		return CLI_EXIT_OK;
	}
	char sub[300];
	snprintf(sub, sizeof(sub), "%s/#", cfg->topic);
	bool pub = !strcmp(scenario, "publish");
	if (mqtt_open(r, pub ? sub : NULL) != MOAT_OK)
		return CLI_EXIT_FAIL;
	double secs = pub ? run_publish(r) : run_observe(r);
	if (pub) {
		if (cfg->json)
			printf("{\"scenario\":\"publish\",\"transport\":\"%s\","
			       "\"clients\":%ld,\"seconds\":%.2f,\"acked\":%llu,"
			       "\"delivered\":%llu,\"publishes_per_s\":%.0f,"
			       "\"lost\":%llu,\"errors\":%llu}\n",
			       mode, cfg->clients, secs,
			       (unsigned long long)r->acked,
			       (unsigned long long)r->delivered,
			       (double)r->acked / secs,
			       (unsigned long long)r->timeouts,
			       (unsigned long long)r->errors);
		else
			printf("CoAP %s CON POST -> MQTT subscriber: %ld clients, "
			       "%.0f publishes/s acknowledged (%llu in %.1f s), "
			       "%llu delivered, %llu lost, %llu errors\n",
			       mode, cfg->clients, (double)r->acked / secs,
			       (unsigned long long)r->acked, secs,
			       (unsigned long long)r->delivered,
			       (unsigned long long)r->timeouts,
			       (unsigned long long)r->errors);
	} else {
		if (cfg->json)
			printf("{\"scenario\":\"observe\",\"transport\":\"%s\","
			       "\"observers\":%ld,\"seconds\":%.2f,"
			       "\"published\":%llu,\"notifications\":%llu,"
			       "\"notifications_per_s\":%.0f}\n",
			       mode, cfg->clients, secs,
			       (unsigned long long)r->delivered,
			       (unsigned long long)r->notified,
			       (double)r->notified / secs);
		else
			printf("MQTT QoS 0 -> CoAP %s observers: %ld observers, "
			       "%.0f notifications/s (%llu of %llu offered in "
			       "%.1f s)\n",
			       mode, cfg->clients, (double)r->notified / secs,
			       (unsigned long long)r->notified,
			       (unsigned long long)r->delivered *
				       (unsigned long long)cfg->clients,
			       secs);
	}
	return CLI_EXIT_OK;
}

int moat_bench_coap_main(int argc, char **argv)
{
	struct cb_cfg cfg = {.host = "127.0.0.1",
			     .mqtt_port = 1883,
			     .clients = 50,
			     .window = 4,
			     .size = 32,
			     .duration = 5,
			     .hold = 3,
			     .topic = "bench/coap"};
	if (argc < 2) {
		moat_bench_coap_usage(stderr);
		return CLI_EXIT_USAGE;
	}
	const char *scenario = argv[1];
	if (!strcmp(scenario, "--help") || !strcmp(scenario, "help")) {
		moat_bench_coap_usage(stdout);
		return CLI_EXIT_OK;
	}
	if (strcmp(scenario, "publish") && strcmp(scenario, "observe") &&
	    strcmp(scenario, "idle"))
		return cli_opt_usage("bench", "unknown CoAP scenario '%s' (use "
					      "publish, observe or idle)",
				     scenario);
	struct cli_cmd cmd = command;
	cmd.cfg = &cfg;
	int rc = cli_opt_parse(&cmd, argc - 1, argv + 1);
	if (rc != CLI_CONTINUE)
		return rc;
	if (!cfg.port)
		cfg.port = cfg.dtls ? 5684 : 5683;
	if (cfg.dtls && (!cfg.psk_identity || !cfg.psk_file))
		return cli_opt_usage("bench", "--dtls needs --psk-identity and "
					      "--psk-file");
	struct cb_run r;
	memset(&r, 0, sizeof(r));
	r.cfg = &cfg;
	r.mqtt = -1;
	memset(r.payload, 'x', sizeof(r.payload));
	r.ep = epoll_create1(EPOLL_CLOEXEC);
	r.cl = moat_calloc((size_t)cfg.clients, sizeof(*r.cl));
	if (r.ep < 0 || !r.cl)
		return CLI_EXIT_FAIL;
	for (long i = 0; i < cfg.clients; i++)
		r.cl[i].d.fd = -1;
	char err[256];
	rc = MOAT_OK;
	if (cfg.dtls) {
		rc = load_psk(&r);
		if (rc == MOAT_OK &&
		    !(r.ctx = moat_dtls_client_ctx(&r.dcfg, err, sizeof(err)))) {
			fprintf(stderr, "moat bench: %s\n", err);
			rc = MOAT_ETLS;
		}
	}
	rc = rc == MOAT_OK ? run(&r, scenario) : CLI_EXIT_FAIL;
	for (long i = 0; i < cfg.clients; i++)
		if (r.cl[i].d.fd >= 0)
			moat_dgram_close(&r.cl[i].d);
	if (r.mqtt >= 0)
		close(r.mqtt);
	SSL_CTX_free(r.ctx);
	OPENSSL_cleanse(r.psk, sizeof(r.psk));
	moat_free(r.cl);
	close(r.ep);
	return rc;
}
