/* moatd migrate --retained FROM --to TO: copy the retained messages of a
 * running broker (mosquitto) into another (moatd), with a bounded read of
 * "#" (docs/migrate.md#retained-messages).
 *
 * Bounds: at most --max-messages messages and --max-bytes bytes (topics
 * and payloads) are held; the read ends when nothing has arrived for
 * --idle-ms after the last message (retained messages come right after
 * SUBACK) or after --timeout seconds in all.  Only messages that arrive
 * with the retain flag are copied (live traffic on the old broker is
 * not).  Plain MQTT 3.1.1 over TCP: run it on the brokers' host against
 * loopback listeners. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "client/client.h"
#include "migrate.h"

struct rmsg {
	char *topic;
	void *payload;
	size_t len;
	uint8_t qos;
};

struct rread {
	struct rmsg *v;
	size_t n, cap;
	size_t bytes, max_messages, max_bytes;
	size_t skipped_live, over_limit;
	bool oom;
};

static void on_msg(void *arg, const struct moat_client_msg *m)
{
	struct rread *r = arg;
	if (!m->retain) {
		r->skipped_live++;
		return;
	}
	if (r->n == r->max_messages ||
	    r->bytes + m->topic.len + m->payload.len > r->max_bytes) {
		r->over_limit++;
		return;
	}
	if (r->n == r->cap) {
		size_t cap = r->cap ? r->cap * 2 : 256;
		struct rmsg *v = realloc(r->v, cap * sizeof(*v));
		if (!v) {
			r->oom = true;
			return;
		}
		r->v = v;
		r->cap = cap;
	}
	struct rmsg *x = &r->v[r->n];
	x->topic = strndup((const char *)m->topic.p, m->topic.len);
	x->payload = malloc(m->payload.len ? m->payload.len : 1);
	if (!x->topic || !x->payload) {
		free(x->topic);
		free(x->payload);
		r->oom = true;
		return;
	}
	memcpy(x->payload, m->payload.p, m->payload.len);
	x->len = m->payload.len;
	x->qos = m->qos;
	r->bytes += m->topic.len + m->payload.len;
	r->n++;
}

struct ropts {
	char from_host[256], from_port[16], to_host[256], to_port[16];
	const char *from_user, *to_user;
	unsigned long long max_messages, max_bytes, idle_ms, timeout_s;
};

static int split_hostport(const char *arg, char *host, size_t hsz,
			  char *port, size_t psz)
{
	const char *colon = strrchr(arg, ':');
	if (!colon || colon == arg || !colon[1] ||
	    (size_t)(colon - arg) >= hsz || strlen(colon + 1) >= psz)
		return -1;
	snprintf(host, hsz, "%.*s", (int)(colon - arg), arg);
	snprintf(port, psz, "%s", colon + 1);
	return 0;
}

static struct moat_client *open_client(const char *host, const char *port,
				       const char *user, const char *pwenv,
				       const char *id)
{
	struct moat_client *c = moat_client_new();
	const char *pw = getenv(pwenv);
	struct moat_client_opts o = {.host = host, .port = port};
	if (!c)
		return NULL;
	o.connect.proto_level = 4;
	o.connect.clean_session = true;
	o.connect.keepalive = 60;
	o.connect.client_id = id;
	o.connect.username = user;
	if (pw) {
		o.connect.password = (const uint8_t *)pw;
		o.connect.password_len = strlen(pw);
		o.connect.has_password = true;
	}
	o.timeout_ms = 10000;
	if (moat_client_connect(c, &o, NULL) != MOAT_OK) {
		fprintf(stderr, "moatd migrate: %s:%s: %s\n", host, port,
			moat_client_errmsg(c));
		moat_client_free(c);
		return NULL;
	}
	return c;
}

static uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* Subscribe to "#" and read until idle, a bound, or the deadline. */
static int read_retained(const struct ropts *o, struct rread *r)
{
	struct moat_client *c = open_client(o->from_host, o->from_port,
					    o->from_user, "MOAT_FROM_PASSWORD",
					    "moatd-migrate-read");
	const char *filter = "#";
	uint8_t qos = 2, granted = 0;
	int rc = MOAT_EIO;
	if (!c)
		return MOAT_EIO;
	moat_client_set_msg_cb(c, on_msg, r);
	if (moat_client_subscribe(c, &filter, &qos, 1, &granted) != MOAT_OK ||
	    granted > 2) {
		fprintf(stderr, "moatd migrate: %s:%s: subscribing to #: %s\n",
			o->from_host, o->from_port,
			granted > 2 ? "refused" : moat_client_errmsg(c));
		goto out;
	}
	uint64_t deadline = now_ms() + o->timeout_s * 1000u;
	for (;;) {
		size_t before = r->n + r->over_limit + r->skipped_live;
		if (moat_client_loop(c, (int)o->idle_ms, -1, NULL) != MOAT_OK) {
			fprintf(stderr, "moatd migrate: %s:%s: %s\n",
				o->from_host, o->from_port,
				moat_client_errmsg(c));
			goto out;
		}
		if (r->oom) {
			fprintf(stderr, "moatd migrate: out of memory\n");
			goto out;
		}
		bool idle = r->n + r->over_limit + r->skipped_live == before;
		if (idle || now_ms() >= deadline)
			break;
	}
	moat_client_disconnect(c);
	rc = MOAT_OK;
out:
	moat_client_free(c);
	return rc;
}

static int write_retained(const struct ropts *o, const struct rread *r)
{
	struct moat_client *c = open_client(o->to_host, o->to_port, o->to_user,
					    "MOAT_TO_PASSWORD",
					    "moatd-migrate-write");
	if (!c)
		return MOAT_EIO;
	for (size_t i = 0; i < r->n; i++) {
		const struct rmsg *x = &r->v[i];
		/* QoS 1 at least: each copy is acknowledged. */
		uint8_t qos = x->qos ? x->qos : 1;
		if (moat_client_publish(c, x->topic, x->payload, x->len, qos,
					true) != MOAT_OK) {
			fprintf(stderr, "moatd migrate: %s:%s: %s: %s (%zu of "
				"%zu copied)\n", o->to_host, o->to_port,
				x->topic, moat_client_errmsg(c), i, r->n);
			moat_client_free(c);
			return MOAT_EIO;
		}
	}
	moat_client_disconnect(c);
	moat_client_free(c);
	return MOAT_OK;
}

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: moatd migrate --retained FROM_HOST:PORT --to "
		"HOST:PORT [OPTION]...\n"
		"\n"
		"Copy the retained messages of a running broker (FROM, e.g. "
		"mosquitto) into\nanother (moatd), keeping topic, payload "
		"and QoS (QoS 0 is copied at QoS 1).\nMQTT 3.1.1 over plain "
		"TCP: use loopback listeners. Passwords come from the\n"
		"environment: MOAT_FROM_PASSWORD and MOAT_TO_PASSWORD.\n"
		"\n"
		"  --from-user USER     user name on FROM (it must be allowed "
		"to read #)\n"
		"  --to-user USER       user name on TO (it must be allowed to "
		"write the topics)\n"
		"  --max-messages N     keep at most N messages (default "
		"100000)\n"
		"  --max-bytes N        keep at most N bytes of topics and "
		"payloads (default\n"
		"                       268435456)\n"
		"  --idle-ms N          the read ends N ms after the last "
		"message (default 2000)\n"
		"  --timeout S          and after S seconds in all (default "
		"60)\n"
		"\n"
		"Exit status: 0 copied (a count of what was left out is "
		"printed), 1 failed,\n2 usage error.\n");
}

static bool num(const char *s, unsigned long long min,
		unsigned long long max, unsigned long long *out)
{
	char *end;
	unsigned long long v = strtoull(s, &end, 10);
	if (*end || end == s || s[0] == '-' || v < min || v > max)
		return false;
	*out = v;
	return true;
}

int mg_retained_main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"retained", required_argument, 0, 'r'},
		{"to", required_argument, 0, 't'},
		{"from-user", required_argument, 0, 'U'},
		{"to-user", required_argument, 0, 'u'},
		{"max-messages", required_argument, 0, 'm'},
		{"max-bytes", required_argument, 0, 'b'},
		{"idle-ms", required_argument, 0, 'i'},
		{"timeout", required_argument, 0, 'T'},
		{"help", no_argument, 0, 'h'},
		{0, 0, 0, 0},
	};
	struct ropts o = {.max_messages = 100000,
			  .max_bytes = 256ull << 20,
			  .idle_ms = 2000,
			  .timeout_s = 60};
	bool from = false, to = false, ok = true;
	int opt;
	optind = 1;
	while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (opt) {
		case 'r':
			from = !split_hostport(optarg, o.from_host,
					       sizeof(o.from_host), o.from_port,
					       sizeof(o.from_port));
			ok &= from;
			break;
		case 't':
			to = !split_hostport(optarg, o.to_host,
					     sizeof(o.to_host), o.to_port,
					     sizeof(o.to_port));
			ok &= to;
			break;
		case 'U': o.from_user = optarg; break;
		case 'u': o.to_user = optarg; break;
		case 'm': ok &= num(optarg, 1, 10000000, &o.max_messages); break;
		case 'b': ok &= num(optarg, 1, 64ull << 30, &o.max_bytes); break;
		case 'i': ok &= num(optarg, 100, 600000, &o.idle_ms); break;
		case 'T': ok &= num(optarg, 1, 86400, &o.timeout_s); break;
		case 'h': usage(stdout); return 0;
		default: ok = false; break;
		}
	}
	if (!ok || !from || !to || optind != argc) {
		usage(stderr);
		return 2;
	}
	struct rread r = {.max_messages = (size_t)o.max_messages,
			  .max_bytes = (size_t)o.max_bytes};
	int rc = read_retained(&o, &r);
	if (rc == MOAT_OK)
		rc = write_retained(&o, &r);
	if (rc == MOAT_OK)
		printf("moatd migrate: copied %zu retained messages (%zu "
		       "bytes) from %s:%s to %s:%s; %zu left out by "
		       "--max-messages/--max-bytes\n",
		       r.n, r.bytes, o.from_host, o.from_port, o.to_host,
		       o.to_port, r.over_limit);
	for (size_t i = 0; i < r.n; i++) {
		free(r.v[i].topic);
		free(r.v[i].payload);
	}
	free(r.v);
	return rc == MOAT_OK ? 0 : 1;
}
