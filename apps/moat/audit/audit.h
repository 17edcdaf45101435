/* `moat audit`: security probes of the user's own MQTT brokers and CoAP
 * servers (THREATS.md
 * section 9, docs/audit.md).  Internal to apps/moat/audit.
 *
 * Files:
 *   audit_cli.c      options, targets, the run, exit status
 *   audit_run.c      the run of one target (calls the files below)
 *   audit_conn.c     the probe transport: TCP (+TLS), bounded reads, pacing
 *   audit_session.c  MQTT on a probe connection: CONNECT, SUBSCRIBE,
 *                    PUBLISH, collection windows
 *   audit_checks.c   the checks every target gets (plaintext, anonymous,
 *                    limits, $SYS, wildcards, retained, version)
 *   audit_account.c  the checks with --as accounts, --intrusive and
 *                    --try-default-creds
 *   audit_tls.c      TLS versions, ciphers, certificate, client certificates
 *   audit_cve.c      broker version -> known CVEs
 *   audit_report.c   notes, failures and progress; text, JSON and SARIF
 *                    output
 *   audit_sample.c   --sample-payloads (the leak detector hook)
 *   audit_udp.c      the CoAP probe transport: connected UDP (or DTLS)
 *                    sockets, datagrams and bytes counted, bounded waits
 *   audit_coap.c     the checks of coap:// targets (AUD-CO-01..05, 08, 09,
 *                    AUD-LK-01 over CoAP)
 *   audit_dtls.c     the DTLS checks of coaps:// targets (AUD-CO-06, 07)
 *
 * Guardrails (every file keeps them): only the targets given are contacted;
 * connections are opened one at a time, at least --delay apart; every step
 * (connect, handshake, CONNACK, SUBACK, PUBACK) waits at most --timeout, every
 * collection window at most --wait, and nothing runs past the run's
 * deadline (--max-time); nothing is written except the report on stdout. */
#ifndef MOAT_AUDIT_H
#define MOAT_AUDIT_H

#include <openssl/ssl.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "check/findings.h"
#include "common/moat_common.h"
#include "coap/coap_client.h"
#include "net/dgram.h"
#include "net/net.h"

#define AUDIT_MAX_TARGETS 64
#define AUDIT_MAX_ACCOUNTS 2
#define AUDIT_MAX_NOTES 32
#define AUDIT_NOTE_LEN 320
#define AUDIT_ERR_LEN 512
/* Largest packet a probe keeps in memory; the rest of a bigger one is read
 * and dropped (its topic, at the start, is still seen). */
#define AUDIT_MAX_PACKET (256u * 1024u)
/* Distinct topics remembered per collection window. */
#define AUDIT_MAX_TOPICS 64
#define AUDIT_TOPIC_LEN 96
/* --sample-payloads: at most this long, this many messages. */
#define AUDIT_SAMPLE_MAX_S 60
#define AUDIT_SAMPLE_MAX_MSGS 10000

/* 0 until the leak detector (src/leak, moat_leak) is linked in: then
 * --sample-payloads is accepted and audit_scan_sample() calls it. */
#ifndef MOAT_AUDIT_HAVE_LEAK
#define MOAT_AUDIT_HAVE_LEAK 0
#endif

enum audit_format { AUDIT_TEXT = 0, AUDIT_JSON, AUDIT_SARIF };
enum audit_scheme { AUDIT_MQTT = 0, AUDIT_MQTTS, AUDIT_COAP, AUDIT_COAPS };

/* A --as account.  The password is an owned copy (argv's is wiped). */
struct audit_account {
	char user[256];
	uint8_t *pass;
	size_t passlen;
};

struct audit_opts {
	const char *cafile;
	bool insecure;
	struct audit_account acct[AUDIT_MAX_ACCOUNTS];
	size_t nacct;
	bool intrusive;
	bool try_creds;
	unsigned sample_s; /* --sample-payloads; 0 = off */
	const char *config;
	const char *targets_file;
	enum audit_format format;
	enum moat_severity fail_on;
	unsigned wait_ms;    /* collection window */
	unsigned timeout_ms; /* one step */
	unsigned delay_ms;   /* between two connections */
	unsigned idle_s;     /* how long an idle, CONNECT-less socket may live */
	unsigned max_time_s; /* the whole run */
	const char *broker_version; /* --broker-version */
	const char *test_topic;     /* --test-topic prefix */
	bool quiet;
	bool progress;
};

/* Informational lines of a target's report: checks skipped or
 * inconclusive, what was tested.  Escaped when added. */
struct audit_notes {
	char v[AUDIT_MAX_NOTES][AUDIT_NOTE_LEN];
	size_t n;
};

struct audit_target {
	char spec[300]; /* normalised: mqtt://host:port (host escaped) */
	enum audit_scheme scheme;
	char host[256]; /* without brackets */
	char port[8];
	struct moat_findings findings;
	struct audit_notes notes;
	char error[AUDIT_ERR_LEN]; /* "" when the target was audited */
	bool incomplete; /* the time budget ran out before every check */
	/* CoAP targets: the datagrams and bytes the audit sent and got. */
	size_t dg_sent, bytes_sent, dg_recv, bytes_recv;
};

static inline bool audit_is_coap(const struct audit_target *t)
{
	return t->scheme == AUDIT_COAP || t->scheme == AUDIT_COAPS;
}

/* State of one run, shared by every probe. */
struct audit_run {
	const struct audit_opts *o;
	uint64_t deadline;	/* moat_now_ms() value; nothing runs past it */
	uint64_t last_open_ms;	/* when the last connection was opened */
	unsigned seq;		/* client id counter */
	unsigned pid;
};

/* Who a probe logs in as. */
struct audit_ident {
	const char *user; /* NULL: anonymous */
	const uint8_t *pass;
	size_t passlen;
	char label[300]; /* "anonymous" or "user \"alice\"" (escaped) */
};

/* What one collection window saw. */
struct audit_harvest {
	size_t msgs;     /* application messages (not $ topics) */
	size_t retained; /* ... of which retained */
	size_t sys_msgs; /* $SYS/... */
	size_t control_msgs;
	size_t bytes;
	size_t oversized; /* bigger than AUDIT_MAX_PACKET */
	size_t ntopics;
	size_t more_topics; /* distinct topics beyond AUDIT_MAX_TOPICS (new
			     * ones not remembered: an upper bound) */
	size_t more_retained; /* retained messages on topics not remembered */
	char topics[AUDIT_MAX_TOPICS][AUDIT_TOPIC_LEN]; /* escaped */
	bool topic_retained[AUDIT_MAX_TOPICS]; /* a retained message came */
	char version[160];	 /* a $SYS version payload, escaped */
	char version_topic[96];	 /* where it came from */
	char control_reply[200]; /* first $CONTROL reply payload, escaped */
	bool bad_utf8;		 /* a topic that is not valid UTF-8 arrived */
	char bad_topic[AUDIT_TOPIC_LEN];
	bool closed;		 /* the server ended the connection */
	/* Optional: every message (not only counted), e.g. for sampling. */
	void (*on_msg)(void *arg, struct moat_bytes topic,
		       struct moat_bytes payload, bool retained);
	void *arg;
};

/* Per-target context of the probes. */
struct audit_ctx {
	struct audit_run *run;
	struct audit_target *t;
	struct addrinfo *addrs; /* resolved once */
	bool loopback;		/* every address is a loopback one */
	SSL_CTX *tls;		/* mqtts: context of the MQTT probes */
	bool tls_verified;	/* the server's certificate verified */
	bool cert_required;	/* the server insists on a client cert */
	/* Learned along the way. */
	bool anon_ok;	       /* anonymous CONNECT accepted */
	bool limits_read;      /* AUD-MQ-12 from a v5 CONNACK done */
	bool any_creds;	       /* a made-up user name and password worked */
	struct audit_harvest anon_h; /* the anonymous window */
	char version[160];	     /* broker version string, escaped */
	char version_src[96];
};

/* ---- audit_conn.c ---------------------------------------------------- */

struct audit_conn {
	int fd;
	/* The transport stack on fd (src/net/net.h): TCP, and TLS once its
	 * handshake is done; NULL while there is no connection. */
	struct moat_net_tcp tcp;
	struct moat_net *net;
	SSL *ssl; /* the TLS session (the stack's once adopted), for the
		   * checks that look at it */
	struct moat_buf in;
	size_t skip; /* bytes of an oversized packet still to drop */
	size_t pending, pending_skip; /* the last packet read: consumed at
				       * the next read */
	uint8_t version;
	bool cert_requested; /* the server sent a CertificateRequest */
	bool tls_alert_cert_required;
	int tls_reason; /* OpenSSL reason code of a failed handshake */
	uint16_t next_id;
	uint64_t cap; /* the run's deadline: no wait on this connection
		       * goes past it */
	char err[AUDIT_ERR_LEN];
};

struct audit_pkt {
	uint8_t first;
	const uint8_t *body; /* valid until the next read */
	size_t len;	     /* bytes in body */
	uint32_t full_len;   /* remaining length on the wire */
	bool truncated;	     /* len < full_len */
};

/* Deadline of one step: now + --timeout, never past the run's. */
uint64_t audit_step_deadline(const struct audit_ctx *x);
/* The run's time is up. */
bool audit_out_of_time(const struct audit_ctx *x);
/* Sleep ms (bounded by the run's deadline). */
void audit_sleep(const struct audit_ctx *x, unsigned ms);
/* Wait until --delay has passed since the last connection (or socket) the
 * run opened; then count this one as opened now. */
void audit_pace(struct audit_ctx *x);

void audit_conn_init(struct audit_conn *c);
/* Wait for the pacing delay, connect (trying each address), then the TLS
 * handshake with ctx (NULL: plain TCP).  MOAT_OK; MOAT_EIO (connect),
 * MOAT_ETLS (handshake), MOAT_ELIMIT (time budget used up); c->err says
 * why.  audit_conn_close() in every case. */
int audit_conn_open(struct audit_ctx *x, struct audit_conn *c, SSL_CTX *ctx);
void audit_conn_close(struct audit_conn *c);
int audit_conn_send(struct audit_conn *c, const uint8_t *p, size_t n,
		    uint64_t deadline);
/* Raw bytes, at most n, until deadline: > 0 bytes, 0 closed, or
 * MOAT_EAGAIN (deadline), MOAT_EIO/MOAT_ETLS. */
int audit_conn_recv(struct audit_conn *c, uint8_t *p, size_t n,
		    uint64_t deadline);
/* One MQTT packet: MOAT_OK, MOAT_EAGAIN (deadline), MOAT_ECLOSED,
 * MOAT_EMALFORMED (bad fixed header), MOAT_EIO/MOAT_ETLS. */
int audit_conn_read(struct audit_conn *c, uint64_t deadline,
		    struct audit_pkt *pk);

/* ---- audit_session.c ----------------------------------------------- */

struct audit_connect_req {
	const struct audit_ident *id;
	const char *client_id;
	uint8_t version; /* 4 or 5 */
	uint16_t keepalive;
	bool clean;
	uint32_t session_expiry; /* v5 */
	const char *will_topic;	 /* NULL: none */
	bool wrong_password;	 /* send the user name with a wrong password */
};

struct audit_connack {
	uint8_t version;
	uint8_t rc; /* 3.1.1 return code or MQTT 5 reason code */
	bool accepted;
	bool session_present;
	uint64_t latency_ms;
	/* MQTT 5 properties (has_*: announced). */
	bool has_max_packet, has_keepalive, has_recv_max, has_alias_max;
	bool has_max_qos, has_retain, has_wildcard, has_shared;
	uint32_t max_packet;
	uint16_t server_keepalive, recv_max, alias_max;
	uint8_t max_qos, retain, wildcard, shared;
	char reason[160]; /* Reason String, escaped */
};

/* A client id for the next probe: "<user>-audit-<pid>-<n>" or
 * "moat-audit-<pid>-<n>". */
void audit_client_id(struct audit_ctx *x, const struct audit_ident *id,
		     char *out, size_t outsz);
void audit_ident_anon(struct audit_ident *id);
void audit_ident_account(struct audit_ident *id,
			 const struct audit_account *a);
/* Open a connection and CONNECT.  MOAT_OK when a CONNACK arrived (ca
 * filled; the connection stays open only when it was accepted); otherwise
 * an error with c->err set and the connection closed. */
int audit_mqtt_connect(struct audit_ctx *x, struct audit_conn *c,
		       const struct audit_connect_req *r,
		       struct audit_connack *ca);
/* The same, MQTT 5 first, 3.1.1 when the server does not speak 5. */
int audit_mqtt_connect_any(struct audit_ctx *x, struct audit_conn *c,
			   struct audit_connect_req *r,
			   struct audit_connack *ca);
/* SUBSCRIBE (QoS 0; MQTT 5: Retain Handling 0) and wait for SUBACK;
 * codes[i] receives each return code.  Messages that arrive first go to
 * h (may be NULL). */
int audit_mqtt_subscribe(struct audit_ctx *x, struct audit_conn *c,
			 const char *const *filters, size_t n, uint8_t *codes,
			 struct audit_harvest *h);
/* PUBLISH; QoS 1 waits for PUBACK (*reason: its MQTT 5 reason code, 0 for
 * 3.1.1).  The topic is raw bytes (the UTF-8 check sends invalid ones). */
int audit_mqtt_publish(struct audit_ctx *x, struct audit_conn *c,
		       const uint8_t *topic, size_t tlen, const void *payload,
		       size_t len, uint8_t qos, uint8_t *reason);
/* Collect messages into h until ms have passed (bounded by the run's
 * deadline) or the server closes.  MOAT_OK, or an I/O error. */
int audit_mqtt_collect(struct audit_ctx *x, struct audit_conn *c,
		       unsigned ms, struct audit_harvest *h);
/* DISCONNECT (best effort) and close. */
void audit_mqtt_disconnect(struct audit_ctx *x, struct audit_conn *c);
/* "accepted" / "refused: not authorised (0x87)" ... */
const char *audit_connack_str(const struct audit_connack *ca, char *buf,
			      size_t bufsz);
/* True when the SUBACK code grants the subscription. */
static inline bool audit_granted(uint8_t code)
{
	return code < 0x80;
}
const char *audit_suback_str(uint8_t code, uint8_t version);
/* "5 messages on 3 topics (e.g. a/b, c, ...)"; retained: "2 retained
 * messages on 2 topics (...)" (distinct topics with a retained message). */
const char *audit_harvest_str(const struct audit_harvest *h, bool retained,
			      char *buf, size_t bufsz);
/* Is this topic (escaped form) among h's topics? */
bool audit_harvest_has(const struct audit_harvest *h, const char *topic);

/* ---- checks ------------------------------------------------------------ */

/* Every check of one target, in order; fills t->findings, notes, error. */
void audit_target_run(struct audit_run *run, struct audit_target *t);
/* audit_checks.c */
int audit_first_probe(struct audit_ctx *x);
void audit_check_anonymous(struct audit_ctx *x);
void audit_check_idle(struct audit_ctx *x);
void audit_check_limits(struct audit_ctx *x, const struct audit_connack *ca);
/* The filters of a collection window, in this order: codes[] indexes. */
#define AUDIT_W_HASH 0	/* # */
#define AUDIT_W_PLUS 1	/* +/# */
#define AUDIT_W_SYS 2	/* $SYS/# */
#define AUDIT_W_BASIC 3 /* count without the two $CONTROL replies */
#define AUDIT_W_ALL 5
void audit_check_window(struct audit_ctx *x, const struct audit_ident *id,
			struct audit_harvest *h, uint8_t *codes,
			bool with_control);
void audit_check_version(struct audit_ctx *x);
/* audit_account.c */
void audit_check_account(struct audit_ctx *x, const struct audit_account *a);
void audit_check_intrusive(struct audit_ctx *x);
void audit_check_creds(struct audit_ctx *x);
/* audit_tls.c: the TLS checks; sets x->tls (owned by x) unless the
 * target's certificate cannot be trusted.  MOAT_OK when the MQTT checks
 * can go on over TLS; otherwise t->error or a note says why. */
int audit_tls_run(struct audit_ctx *x);
/* Classes of weak cipher suites, offered one at a time (TLS and DTLS). */
struct audit_weak_class {
	const char *name; /* "NULL (no encryption)" */
	const char *list; /* OpenSSL cipher string: "eNULL" */
};
extern const struct audit_weak_class audit_weak[];
extern const size_t audit_weak_count;

void audit_note(struct audit_target *t, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
void audit_progress(const struct audit_ctx *x, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Set t->error (escaped) unless one is set. */
void audit_fail(struct audit_target *t, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* ---- audit_cve.c ------------------------------------------------------ */

/* Look the version string up ("mosquitto version 2.0.11", "emqx 4.2.7",
 * ...) and add AUD-VER-01 to f when it has known CVEs.  src names where
 * the string came from.  Returns true when the product and version were
 * recognised (with or without CVEs). */
bool audit_cve_check(const char *version, const char *src,
		     struct moat_findings *f);
/* The table, for docs and tests: n entries of "product first last id". */
size_t audit_cve_count(void);

/* ---- audit_report.c ----------------------------------------------------- */

void audit_report(FILE *out, const struct audit_opts *o,
		  struct audit_target *t, size_t n);

/* ---- audit_sample.c ------------------------------------------------------ */

/* One sampled message, borrowed for the call. */
struct audit_sample_msg {
	struct moat_bytes topic;
	struct moat_bytes payload;
	bool retained;
};
/* The leak-detector hook (AUD-LK-01): scan one sampled message and add
 * findings (redacted: category, topic, keyed hash, never the match) to f.
 * Returns MOAT_OK, or MOAT_ENOTFOUND when this build has no detector. */
int audit_scan_sample(const struct audit_sample_msg *m,
		      const struct audit_ident *id, struct moat_findings *f);
/* A leak-detector scanner for one identity's sampled messages (MQTT
 * messages or CoAP responses and notifications; the "topic" is then the
 * resource path).  new: MOAT_OK, or an error with err set. */
struct audit_sampler;
int audit_sampler_new(struct audit_sampler **s, const struct audit_ident *id,
		      struct moat_findings *f, char *err, size_t errsz);
/* Scan one message; false once AUDIT_SAMPLE_MAX_MSGS were scanned. */
bool audit_sampler_feed(struct audit_sampler *s,
			const struct audit_sample_msg *m);
/* Notes (counts, findings below high, what was dropped); frees s.  what
 * names a sample ("message", "CoAP response"). */
void audit_sampler_finish(struct audit_ctx *x, struct audit_sampler *s,
			  const char *what);
/* Subscribe as id for at most seconds (<= AUDIT_SAMPLE_MAX_S) and at most
 * AUDIT_SAMPLE_MAX_MSGS messages, passing each to audit_scan_sample(). */
void audit_sample_payloads(struct audit_ctx *x, const struct audit_ident *id,
			   unsigned seconds);

/* ---- CoAP (audit_udp.c, audit_coap.c, audit_dtls.c) --------------------- */

/* A probe socket: connected UDP to the target (or DTLS over it).  Every
 * datagram is counted in the target's totals. */
struct audit_udp {
	struct moat_dgram d;
	struct audit_ctx *x;
	char err[AUDIT_ERR_LEN];
};

/* A connected UDP socket to the target's address (paced like a
 * connection).  MOAT_OK, MOAT_EIO or MOAT_ELIMIT (time budget), with
 * u->err set. */
int audit_udp_open(struct audit_ctx *x, struct audit_udp *u);
void audit_udp_close(struct audit_udp *u);
int audit_udp_send(struct audit_udp *u, const uint8_t *p, size_t n);
/* One datagram until deadline (never past the run's): MOAT_OK, MOAT_EAGAIN,
 * MOAT_EIO (ICMP: nothing listens), MOAT_ETLS. */
int audit_udp_recv(struct audit_udp *u, uint8_t *buf, size_t cap,
		   uint64_t deadline, size_t *n);
/* The coap_client transport on u. */
void audit_udp_io(struct audit_udp *u, struct coap_io *io);

/* Every check of a coap:// target (after resolving). */
void audit_coap_run(struct audit_ctx *x);
/* The DTLS checks of a coaps:// target; returns an SSL_CTX (owned by the
 * caller) with which an anonymous DTLS handshake completed, or NULL. */
SSL_CTX *audit_dtls_run(struct audit_ctx *x);
/* The CoAP checks over DTLS with ctx (anonymous, certificate not
 * verified). */
void audit_coap_run_dtls(struct audit_ctx *x, SSL_CTX *ctx);

#endif
