/* What a moatd node's NATS interest costs (docs/cluster.md, "Limits"):
 * a benchmark, not a test.  It speaks NATS directly with the subjects of
 * src/cluster/subject.c, the way a node does:
 *
 *   filters   N distinct filters "bench/<i>/+/temp" subscribed on one
 *             connection (one node's interest) at the sub server: the
 *             time to subscribe them, the time until another server's
 *             publisher reaches the last one (route interest
 *             propagation), the sub server's memory, then cross-server
 *             throughput and latency of messages that each match one
 *             filter;
 *   fanout    K distinct filters that all match one topic (wildcards at
 *             different levels) on one connection: NATS sends a node one
 *             copy per matching subscription, so the node receives K
 *             copies of every message; in the node's queue group (as
 *             moatd subscribes) one.
 *
 * Usage: nats_interest --sub URL --pub URL [--user U --password-file F]
 *          [--monitor http://HOST:PORT] [--filters 1,1000,...]
 *          [--fanout 1,4,...] [--messages M]
 * Every wait is bounded (30 s). */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <nats/nats.h>

#include "cluster/subject.h"

#define WAIT_NS (30ll * 1000 * 1000 * 1000)
#define LAT_MAX 2000

static const char *sub_url, *pub_url, *user, *pwfile, *monitor;
static bool global_delivery = true;
static char password[256];

struct sink {
	volatile int64_t got;
	int64_t want_lat; /* record latencies while got < this */
	int64_t *lat;
};

static void on_msg(natsConnection *nc, natsSubscription *sub, natsMsg *msg,
		   void *arg)
{
	struct sink *s = arg;
	(void)nc;
	(void)sub;
	int64_t sent;
	if (natsMsg_GetDataLength(msg) >= (int)sizeof(sent)) {
		memcpy(&sent, natsMsg_GetData(msg), sizeof(sent));
		int64_t i = __atomic_fetch_add(&s->got, 1, __ATOMIC_RELAXED);
		if (s->lat && i < s->want_lat)
			s->lat[i] = nats_NowInNanoSeconds() - sent;
	} else {
		__atomic_fetch_add(&s->got, 1, __ATOMIC_RELAXED);
	}
	natsMsg_Destroy(msg);
}

static natsConnection *connect_to(const char *url)
{
	natsOptions *o = NULL;
	natsConnection *nc = NULL;
	natsStatus s = natsOptions_Create(&o);
	if (s == NATS_OK)
		s = natsOptions_SetURL(o, url);
	if (s == NATS_OK && user)
		s = natsOptions_SetUserInfo(o, user, password);
	if (s == NATS_OK)
		s = natsOptions_SetMaxPendingMsgs(o, 10 * 1000 * 1000);
	/* libnats gives every asynchronous subscription a thread of its own
	 * unless told to share one per connection */
	if (s == NATS_OK)
		s = natsOptions_UseGlobalMessageDelivery(o, global_delivery);
	if (s == NATS_OK)
		s = natsConnection_Connect(&nc, o);
	natsOptions_Destroy(o);
	if (s != NATS_OK) {
		fprintf(stderr, "nats_interest: %s: %s\n", url,
			natsStatus_GetText(s));
		exit(1);
	}
	return nc;
}

/* The sub server's resident memory in bytes (/varz "mem"), or -1. */
static int64_t server_mem(void)
{
	char cmd[512], buf[1 << 16];
	int64_t mem = -1;
	if (!monitor)
		return -1;
	snprintf(cmd, sizeof(cmd), "curl -fs --max-time 5 %s/varz", monitor);
	FILE *p = popen(cmd, "r");
	if (!p)
		return -1;
	size_t n = fread(buf, 1, sizeof(buf) - 1, p);
	pclose(p);
	buf[n] = '\0';
	char *m = strstr(buf, "\"mem\":");
	if (m)
		mem = strtoll(m + 6, NULL, 10);
	return mem;
}

static int cmp64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return (x > y) - (x < y);
}

static void subject_of(const char *topic, char *out)
{
	if (moat_subject_from_topic("moat.m", (const uint8_t *)topic,
				    strlen(topic), out, MOAT_SUBJECT_BUF) < 0) {
		fprintf(stderr, "nats_interest: cannot map %s\n", topic);
		exit(1);
	}
}

/* NULL: plain subscriptions; else every filter of the connection in this
 * queue group, as moatd subscribes (one copy per node). */
static const char *queue;

static natsStatus sub_one(natsConnection *nc, const char *s,
			  struct sink *sk, natsSubscription **out)
{
	if (queue)
		return natsConnection_QueueSubscribe(out, nc, s, queue, on_msg,
						     sk);
	return natsConnection_Subscribe(out, nc, s, on_msg, sk);
}

static int subscribe_filter(natsConnection *nc, const char *filter,
			    struct sink *sk, natsSubscription **subs, int n)
{
	char s[MOAT_SUBJECT_BUF];
	size_t parent;
	int k = 0;
	if (moat_subject_from_filter("moat.m", (const uint8_t *)filter,
				     strlen(filter), s, sizeof(s),
				     &parent) < 0) {
		fprintf(stderr, "nats_interest: cannot map %s\n", filter);
		exit(1);
	}
	if (sub_one(nc, s, sk, &subs[n + k++]) != NATS_OK)
		exit(1);
	if (parent) {
		s[parent] = '\0';
		if (sub_one(nc, s, sk, &subs[n + k++]) != NATS_OK)
			exit(1);
	}
	for (int i = n; i < n + k; i++)
		natsSubscription_SetPendingLimits(subs[i], -1, -1);
	return k;
}

static void unsubscribe_all(natsSubscription **subs, int n)
{
	for (int i = 0; i < n; i++)
		natsSubscription_Destroy(subs[i]);
}

/* Publish m messages on subjects subj(i), wait for want deliveries.
 * Returns the seconds it took, or -1 on a timeout. */
static double pump(natsConnection *pc, struct sink *sk, int m, int64_t want,
		   void (*subj)(int, char *))
{
	char s[MOAT_SUBJECT_BUF];
	int64_t t0 = nats_NowInNanoSeconds();
	for (int i = 0; i < m; i++) {
		int64_t now = nats_NowInNanoSeconds();
		subj(i, s);
		natsConnection_Publish(pc, s, &now, sizeof(now));
	}
	natsConnection_FlushTimeout(pc, 30000);
	while (sk->got < want && nats_NowInNanoSeconds() - t0 < WAIT_NS)
		nats_Sleep(1);
	if (sk->got < want)
		return -1;
	return (double)(nats_NowInNanoSeconds() - t0) / 1e9;
}

static int nfilters_cur;
static void filter_subject(int i, char *s)
{
	char t[64];
	snprintf(t, sizeof(t), "bench/%d/x/temp",
		 (int)((uint32_t)i * 2654435761u % (uint32_t)nfilters_cur));
	subject_of(t, s);
}

/* One message at a time, each after the previous one arrived: the
 * one-way latency from the publisher's server to the subscriber's. */
static int64_t ping(natsConnection *pc, struct sink *sk, int n)
{
	char s[MOAT_SUBJECT_BUF];
	int64_t i;
	sk->got = 0;
	sk->want_lat = n;
	for (i = 0; i < n; i++) {
		int64_t now = nats_NowInNanoSeconds();
		filter_subject((int)i, s);
		natsConnection_Publish(pc, s, &now, sizeof(now));
		natsConnection_Flush(pc);
		while (sk->got <= i && nats_NowInNanoSeconds() - now < WAIT_NS)
			;
		if (sk->got <= i)
			break;
	}
	return i;
}

static void print_latency(struct sink *sk, int64_t n)
{
	if (n <= 0) {
		printf(" | - | -");
		return;
	}
	qsort(sk->lat, (size_t)n, sizeof(int64_t), cmp64);
	printf(" | %.0f | %.0f", (double)sk->lat[n / 2] / 1e3,
	       (double)sk->lat[n * 99 / 100] / 1e3);
}

static void run_filters(int n, int m)
{
	natsConnection *sc = connect_to(sub_url), *pc = connect_to(pub_url);
	natsSubscription **subs = calloc((size_t)n * 2 + 1, sizeof(*subs));
	struct sink sk = {0, 0, calloc(LAT_MAX, sizeof(int64_t))};
	char f[64], s[MOAT_SUBJECT_BUF];
	int nsubs = 0;
	if (!subs || !sk.lat)
		exit(1);
	nfilters_cur = n;
	int64_t mem0 = server_mem();
	int64_t t0 = nats_NowInNanoSeconds();
	for (int i = 0; i < n; i++) {
		snprintf(f, sizeof(f), "bench/%d/+/temp", i);
		nsubs += subscribe_filter(sc, f, &sk, subs, nsubs);
	}
	natsConnection_FlushTimeout(sc, 60000);
	double t_sub = (double)(nats_NowInNanoSeconds() - t0) / 1e9;
	/* until a publisher on the other server reaches the last filter */
	snprintf(f, sizeof(f), "bench/%d/x/temp", n - 1);
	subject_of(f, s);
	t0 = nats_NowInNanoSeconds();
	while (sk.got == 0 && nats_NowInNanoSeconds() - t0 < WAIT_NS) {
		int64_t now = nats_NowInNanoSeconds();
		natsConnection_Publish(pc, s, &now, sizeof(now));
		natsConnection_Flush(pc);
		nats_Sleep(1);
	}
	double t_prop = (double)(nats_NowInNanoSeconds() - t0) / 1e9;
	nats_Sleep(200); /* late probes */
	int64_t mem1 = server_mem();
	sk.got = 0;
	sk.want_lat = 0;
	double t = pump(pc, &sk, m, m, filter_subject);
	printf("| %d | %.3f | %.3f | %s", n, t_sub, t_prop,
	       mem0 >= 0 && mem1 >= 0 ? "" : "-");
	if (mem0 >= 0 && mem1 >= 0)
		printf("%.1f", (double)(mem1 - mem0) / (1024.0 * 1024.0));
	if (t > 0)
		printf(" | %.0f", m / t);
	else
		printf(" | timeout (%" PRId64 " of %d)", sk.got, m);
	print_latency(&sk, ping(pc, &sk, 2000));
	printf(" |\n");
	fflush(stdout);
	unsubscribe_all(subs, nsubs);
	free(subs);
	free(sk.lat);
	natsConnection_Destroy(sc);
	natsConnection_Destroy(pc);
}

/* K distinct filters matching "f/1/2/3/4/5/6/7": each level after the
 * first literal or '+' (bit l of i), every 4th one cut short by '#'. */
static void fan_filter(int i, char *out, size_t cap)
{
	int hash = i % 4 == 3;
	int keep = hash ? 7 - (i / 4) % 7 : 7;
	size_t n = (size_t)snprintf(out, cap, "f");
	for (int l = 0; l < keep; l++) {
		if ((i >> l) & 1)
			n += (size_t)snprintf(out + n, cap - n, "/+");
		else
			n += (size_t)snprintf(out + n, cap - n, "/%d", l + 1);
	}
	if (hash)
		snprintf(out + n, cap - n, "/#");
}

static void fan_subject(int i, char *s)
{
	(void)i;
	subject_of("f/1/2/3/4/5/6/7", s);
}

static void run_fanout(int k, int m)
{
	natsConnection *sc = connect_to(sub_url), *pc = connect_to(pub_url);
	natsSubscription **subs = calloc((size_t)k * 2 + 1, sizeof(*subs));
	struct sink sk = {0, 0, NULL};
	char f[128], seen[512][128];
	int nsubs = 0, nf = 0;
	if (!subs)
		exit(1);
	for (int i = 0; nf < k && i < 4096; i++) {
		fan_filter(i, f, sizeof(f));
		int dup = 0;
		for (int j = 0; j < nf && !dup; j++)
			dup = !strcmp(seen[j], f);
		if (dup)
			continue;
		snprintf(seen[nf++], sizeof(seen[0]), "%s", f);
		nsubs += subscribe_filter(sc, f, &sk, subs, nsubs);
	}
	natsConnection_FlushTimeout(sc, 30000);
	nats_Sleep(500); /* route interest */
	double t = pump(pc, &sk, m, queue ? m : (int64_t)m * nf, fan_subject);
	printf("| %d | %s | %d | %" PRId64 " | ", nf,
	       queue ? "node queue group" : "plain", m, sk.got);
	if (t > 0)
		printf("%.0f | %.0f |\n", (double)sk.got / t, m / t);
	else
		printf("timeout | |\n");
	fflush(stdout);
	unsubscribe_all(subs, nsubs);
	free(subs);
	natsConnection_Destroy(sc);
	natsConnection_Destroy(pc);
}

int main(int argc, char **argv)
{
	const char *filters = "1,1000,10000,100000", *fanout = "1,4,16,64,256";
	int m = 100000;
	for (int i = 1; i + 1 < argc; i += 2) {
		if (!strcmp(argv[i], "--sub"))
			sub_url = argv[i + 1];
		else if (!strcmp(argv[i], "--pub"))
			pub_url = argv[i + 1];
		else if (!strcmp(argv[i], "--user"))
			user = argv[i + 1];
		else if (!strcmp(argv[i], "--password-file"))
			pwfile = argv[i + 1];
		else if (!strcmp(argv[i], "--monitor"))
			monitor = argv[i + 1];
		else if (!strcmp(argv[i], "--filters"))
			filters = argv[i + 1];
		else if (!strcmp(argv[i], "--fanout"))
			fanout = argv[i + 1];
		else if (!strcmp(argv[i], "--thread-per-sub"))
			global_delivery = atoi(argv[i + 1]) == 0;
		else if (!strcmp(argv[i], "--messages"))
			m = atoi(argv[i + 1]);
		else
			sub_url = NULL;
	}
	if (!sub_url || !pub_url || m <= 0) {
		fprintf(stderr, "usage: nats_interest --sub URL --pub URL "
				"[--user U --password-file F] [--monitor URL] "
				"[--filters N,...] [--fanout K,...] "
				"[--messages M]\n");
		return 2;
	}
	if (pwfile) {
		FILE *f = fopen(pwfile, "r");
		if (!f || !fgets(password, sizeof(password), f)) {
			fprintf(stderr, "nats_interest: cannot read %s\n",
				pwfile);
			return 1;
		}
		fclose(f);
		password[strcspn(password, "\r\n")] = '\0';
	}
	queue = "moat-n-bench";
	printf("| filters | subscribe s | propagation s | server MiB | "
	       "msgs/s | p50 us | p99 us |\n|---|---|---|---|---|---|---|\n");
	for (const char *p = filters; *p; p += strcspn(p, ","),
			p += *p == ',')
		run_filters(atoi(p), m);
	printf("\n| matching filters | subscriptions | published | copies "
	       "received | copies/s | messages/s |\n"
	       "|---|---|---|---|---|---|\n");
	for (const char *p = fanout; *p; p += strcspn(p, ","),
			p += *p == ',') {
		queue = NULL;
		run_fanout(atoi(p), m / 10);
		queue = "moat-n-bench";
		run_fanout(atoi(p), m / 10);
	}
	nats_Close();
	return 0;
}
