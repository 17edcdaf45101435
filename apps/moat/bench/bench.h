/* `moat bench`: an MQTT load generator (internal to apps/moat).
 *
 * One thread drives every connection through one epoll loop
 * (bench_engine.c); the scenarios only say who publishes what to whom
 * (bench_cli.c).  Each payload carries its publisher, a sequence number
 * and the time it was sent, so the subscribers count loss, duplicates and
 * reordering and measure end-to-end latency (bench_stats.c).  Results are
 * printed as text or JSON (bench_report.c).
 *
 * Not a library: every structure here belongs to the single bench thread. */
#ifndef MOAT_BENCH_H
#define MOAT_BENCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/socket.h>

#include "client/client_proto.h"
#include "common/moat_common.h"
#include "net/net.h"

/* ---- configuration (bench_cli.c) -------------------------------------- */

enum bench_scenario {
	BENCH_FAN_IN,  /* P publishers -> 1 wildcard subscriber */
	BENCH_FAN_OUT, /* 1 publisher -> S subscribers */
	BENCH_PAIRS,   /* N publisher/subscriber pairs, distinct topics */
	BENCH_LATENCY, /* pairs at a fixed offered rate */
	BENCH_CONN,    /* C idle connections */
};

struct bench_cfg {
	enum bench_scenario scenario;
	const char *name; /* scenario name as given */
	const char *host;
	long port;
	long sub_port; /* subscribers' port (a cluster's other node), 0: port */
	bool tls;
	const char *cafile;
	bool insecure; /* TLS without verifying the server */
	bool ws;		/* MQTT over WebSockets */
	const char *ws_path;	/* its path (default /mqtt) */
	const char *username;
	char *password; /* owned copy; argv's copy is wiped */
	uint8_t proto_level; /* 4 (3.1.1) or 5 */
	long qos;
	long size;	/* payload bytes */
	long clients;	/* the scenario's count (-c) */
	long messages;	/* per publisher; 0 = until the duration ends */
	double duration; /* seconds */
	long rate;	/* messages (conn: connection attempts) per second;
			 * 0 = as fast as possible */
	long inflight;	/* QoS>0 window per publisher; conn: attempts at once */
	long window;	/* end-to-end window per publisher; 0 = none */
	bool unbatched;	/* one PUBLISH per write, as client libraries do */
	long keepalive;
	double hold;	/* conn: seconds to keep the connections */
	const char *topic; /* topic prefix */
	char topic_own[64]; /* the default prefix */
	char nonce[16];	/* run id in client ids */
	bool json;
	bool quiet;
	bool help;
	const char *payload; /* --payload FILE or "telemetry"; NULL: binary */
	struct bench_payloads *payloads; /* its templates (bench_payload.c) */
	/* Which fields were given (defaults depend on the scenario). */
	bool given_clients, given_rate, given_inflight;
};

/* Exit codes: those of `moat` (cli_opt.h); moat_bench_main() and
 * moat_bench_usage() are in commands.h. */

/* ---- the payload --------------------------------------------------------
 * Every benchmark payload starts with this header (native byte order: the
 * same process writes and reads it), padded with 'x' to --size. */
#define BENCH_MAGIC 0x6d623031u /* "mb01" */
#define BENCH_HDR_SIZE 24u	 /* magic u32, publisher u32, seq u64, ns u64 */
#define BENCH_OFF_PUB 4u
#define BENCH_OFF_SEQ 8u
#define BENCH_OFF_TIME 16u

/* JSON payloads (bench_payload.c): load the --payload templates (and set
 * cfg->size to their average size); MOAT_OK or a CLI_EXIT_* code after a
 * message.  Build publisher pub's payload (moat_malloc'd), stamp a copy
 * with a sequence number and time, read the header back. */
int bench_payload_load(struct bench_cfg *cfg);
void bench_payload_free(struct bench_cfg *cfg);
int bench_payload_build(const struct bench_cfg *cfg, uint32_t pub,
			uint8_t **out, size_t *len);
void bench_payload_stamp(const struct bench_cfg *cfg, uint8_t *payload,
			 uint64_t seq, uint64_t ts);
bool bench_payload_read(const uint8_t *p, size_t n, uint32_t *pub,
			uint64_t *seq, uint64_t *ts);

/* ---- statistics (bench_stats.c) ---------------------------------------- */

/* Log-linear histogram of nanosecond values: 32 sub-buckets per power of
 * two, so a reported percentile is within about 3 % of the true value. */
#define BENCH_HIST_SUB 32u
#define BENCH_HIST_N (60u * BENCH_HIST_SUB)
struct bench_hist {
	uint64_t count;
	uint64_t min, max;
	double sum;
	uint64_t b[BENCH_HIST_N];
};

void bench_hist_add(struct bench_hist *h, uint64_t v);
/* The value at quantile q (0..1), in the value's unit; 0 when empty. */
uint64_t bench_hist_quantile(const struct bench_hist *h, double q);

/* What one subscriber received from one publisher.  `next` is one past
 * the highest sequence number seen; the ring `bits` remembers which of
 * the last BENCH_SEQ_WIN numbers below it arrived, to tell a late
 * (out-of-order) message from a duplicate. */
#define BENCH_SEQ_WIN 1024u
struct bench_stream {
	uint64_t next;
	uint64_t got; /* distinct messages received */
	uint64_t dup;
	uint64_t ooo; /* arrived after a higher sequence number */
	uint64_t bits[BENCH_SEQ_WIN / 64];
};

/* Account for seq.  Returns how many sequence numbers this settles for
 * the end-to-end window: received now, or passed over by a higher one
 * (then missing, possibly late).  Late and duplicate messages settle
 * nothing. */
uint64_t bench_stream_add(struct bench_stream *s, uint64_t seq);

/* ---- connections (bench_net.c) ----------------------------------------- */

/* A byte buffer: bytes [off, len) are waiting; grows up to a maximum. */
struct bench_buf {
	uint8_t *p;
	size_t off, len, cap;
};

static inline size_t bench_buf_used(const struct bench_buf *b)
{
	return b->len - b->off;
}

/* Room for n more bytes at p + len (compacting or growing up to max);
 * NULL when that would exceed max or memory. */
uint8_t *bench_buf_reserve(struct bench_buf *b, size_t n, size_t max);
void bench_buf_consume(struct bench_buf *b, size_t n);

enum bench_cstate {
	BC_IDLE,       /* not started */
	BC_CONNECTING, /* TCP connect in progress */
	BC_TLS,	       /* TLS handshake */
	BC_CONNACK,    /* CONNECT sent */
	BC_SUBACK,     /* SUBSCRIBE sent */
	BC_READY,
	BC_CLOSED,
};

struct bench_pub;
struct bench_sub;

struct bench_conn {
	int fd;
	/* The transport stack on fd (src/net/net.h): TCP, then TLS and
	 * WebSocket layers as asked for; NULL until connected. */
	struct moat_net_tcp tcp;
	struct moat_net *net;
	uint8_t state; /* enum bench_cstate */
	bool tls_handshake_wants_write;
	bool dirty;	  /* on the engine's flush list */
	uint32_t events;  /* registered with epoll; 0 = not registered */
	struct bench_conn *dirty_next;
	struct bench_pub *pub; /* NULL unless it publishes */
	struct bench_sub *sub; /* NULL unless it subscribes */
	struct bench_buf in, out;
	size_t in_max, out_max;
	uint64_t t_start;  /* attempt started (ns) */
	struct moat_client_keepalive ka; /* client core: last packet queued,
					  * PINGREQ outstanding (ms) */
	uint16_t next_pid;
	uint16_t server_receive_max; /* MQTT 5 CONNACK; 65535 otherwise */
	char id[48];	   /* client id */
};

struct bench_net {
	int ep;
	void *ctx; /* SSL_CTX *, NULL without TLS */
	const char *ws_path; /* MQTT over WebSockets: the path; NULL: no */
	char ws_host[300];   /* the Host header: HOST:PORT */
	struct sockaddr_storage addr;
	socklen_t addrlen;
	struct sockaddr_storage sub_addr; /* where subscribers connect */
	const char *host;
};

/* Resolve the broker, create the epoll set and the TLS context.
 * MOAT_OK, or an error with err set. */
int bench_net_init(struct bench_net *n, const struct bench_cfg *cfg,
		   char *err, size_t errsz);
void bench_net_cleanup(struct bench_net *n);
/* Start connecting c (non-blocking).  MOAT_OK or an error with why. */
int bench_conn_start(struct bench_net *n, struct bench_conn *c, char *why,
		     size_t whysz);
/* Drive the TCP connect and TLS handshake after an event: 1 when the
 * connection is up (send CONNECT), 0 when still in progress, -1 failed. */
int bench_conn_establish(struct bench_net *n, struct bench_conn *c,
			 uint32_t events, char *why, size_t whysz);
/* Read into dst: bytes (> 0), 0 when it would block, -1 when the
 * connection is finished (why says how). */
long bench_conn_read(struct bench_net *n, struct bench_conn *c, uint8_t *dst,
		     size_t len, char *why, size_t whysz);
/* More bytes decrypted and waiting inside TLS? */
bool bench_conn_pending(const struct bench_conn *c);
/* A layer's read waits for the socket to be writable, or its write for
 * it to be readable (TLS renegotiation-like waits, a WebSocket client
 * waiting for the server's handshake answer). */
bool bench_conn_read_wants_write(const struct bench_conn *c);
bool bench_conn_write_wants_read(const struct bench_conn *c);
/* Write what is in c->out: 1 when it is empty, 0 when the socket is
 * full (EPOLLOUT armed), -1 on error. */
int bench_conn_flush(struct bench_net *n, struct bench_conn *c, char *why,
		     size_t whysz);
/* Register the epoll events c needs now (only when they change). */
void bench_conn_update_events(struct bench_net *n, struct bench_conn *c);
/* Close c (best effort: write what is buffered, end TLS). */
void bench_conn_close(struct bench_net *n, struct bench_conn *c);
void bench_conn_free(struct bench_conn *c);

/* ---- the engine (bench_engine.c) --------------------------------------- */

/* One publisher: its pre-encoded PUBLISH and its counters. */
struct bench_pub {
	struct bench_conn *conn;
	uint32_t id;
	uint64_t seq;	   /* next sequence number = messages sent */
	uint64_t limit;	   /* messages to send (UINT64_MAX: no limit) */
	uint64_t budget;   /* rate mode: messages due and not yet sent */
	uint64_t settled;  /* deliveries settled (bench_stream_add) */
	uint32_t inflight; /* QoS>0 not yet acknowledged */
	uint32_t fanout;   /* subscribers each message goes to */
	bool ready;	   /* on the engine's ready list */
	struct bench_pub *ready_next;
	uint8_t *tmpl;	   /* the PUBLISH packet, patched per message */
	size_t tmpl_len;
	size_t pid_off;	   /* packet id offset (QoS>0) */
	size_t payload_off;
};

/* One subscriber: streams for publishers first_pub .. first_pub+npubs-1. */
struct bench_sub {
	struct bench_conn *conn;
	uint32_t id;
	uint32_t first_pub, npubs;
	char *filter;
	struct bench_stream *streams;
	uint64_t received; /* all PUBLISH packets, duplicates included */
	uint64_t foreign;  /* payloads that are not ours */
};

/* Totals the report prints. */
struct bench_result {
	/* connection set-up */
	uint64_t attempted, connected, failed;
	double connect_s;	/* first attempt to last CONNACK */
	struct bench_hist connect_ns;
	/* messages */
	uint64_t sent, expected, received, lost, dup, ooo, foreign;
	double publish_s;	/* publishing phase */
	double deliver_s;	/* publishing start to last message received */
	double drain_s;		/* waiting for the last messages */
	double elapsed_s;	/* the whole run */
	struct bench_hist latency_ns;
	uint64_t errors;	/* connections lost or protocol errors */
	char first_error[160];
	double hold_s;
	bool ran; /* false: nothing was attempted (resolving, memory) */
};

struct bench_run {
	const struct bench_cfg *cfg;
	struct bench_pub *pubs;
	size_t npubs;
	struct bench_sub *subs;
	size_t nsubs;
	size_t nidle; /* conn scenario: plain connections */
	struct bench_result res;
};

/* Run the scenario described by r (publishers and subscribers set up by
 * the caller).  Returns an exit code: 0, or 1 when the set-up failed or
 * connections were lost; the result is in r->res either way. */
int bench_engine_run(struct bench_run *r);

/* ---- output (bench_report.c) -------------------------------------------- */
void bench_report_text(FILE *f, const struct bench_run *r);
void bench_report_json(FILE *f, const struct bench_run *r);
/* One progress line on stderr (a terminal), overwritten each second. */
void bench_progress(const struct bench_run *r, double t, const char *phase,
		    uint64_t sent, uint64_t received, uint64_t connected);
void bench_progress_end(void);

/* Monotonic nanoseconds. */
uint64_t bench_now_ns(void);

#endif
