/* moatd's CoAP listener (docs/coap.md "CoAP in moatd").
 *
 * Each worker owns one UDP socket per CoAP listener (SO_REUSEPORT: the
 * kernel hashes a peer's address and port to one socket, so a peer's
 * state lives in one worker and needs no lock) and a table of peers.  A
 * peer is an address and port that sent a valid request: its recent
 * responses (message-id deduplication), its rate budget, whether its
 * address was validated with Echo (RFC 9175), and its observations.
 *
 * Observations reuse the broker's sessions: a peer that observes gets one
 * moat_session (never in the client-id table, never stored) whose
 * subscriptions are the observed filters; the topic tree routes to it like
 * to any MQTT session, and moat_session's delivery hands the message to
 * moat__coap_deliver() instead of a connection.
 *
 * coap_srv.c: sockets, peers, message layer, Echo; coap_ps.c: the /ps/
 * resources and Observe. */
#ifndef MOAT_COAP_INT_H
#define MOAT_COAP_INT_H

#include "broker_int.h"
#include "coap/coap_layer.h"

#define MOAT_COAP_DEDUP 8	     /* responses remembered per peer */
#define MOAT_COAP_PEERS_MAX 4096     /* peers per worker */
#define MOAT_COAP_OBS_PER_PEER 16    /* observations per peer */
#define MOAT_COAP_OBS_MAX 8192	     /* observations per worker */
#define MOAT_COAP_RATE 200	     /* requests/s per peer (burst 2x) */
#define MOAT_COAP_RETAINED_MAX 16   /* retained values for a wildcard */
#define MOAT_COAP_CON_EVERY 16	     /* a CON notification every N */
#define MOAT_COAP_CON_MAX_MS (24ull * 3600 * 1000) /* ... and every 24 h */
#define MOAT_COAP_UNVALIDATED_MAX 136 /* RFC 9175 §2.4 bound */
#define MOAT_COAP_ECHO_VALID_S 60
#define MOAT_COAP_PEER_IDLE_MS 300000 /* a peer without observations */
#define MOAT_COAP_REASM_TOTAL ((size_t)32 << 20) /* per worker */
#define MOAT_COAP_REASM_IDLE_MS 60000
#define MOAT_COAP_BLOCK 1024 /* largest block, and our preferred one */
#define MOAT_COAP_BODY_MS 247000 /* EXCHANGE_LIFETIME: a notification's
				   * body kept for its later blocks */
#define MOAT_COAP_DGRAM_MAX 1500 /* largest datagram we answer with */
#define MOAT_COAP_RX_MAX 65536	/* largest datagram we read */
#define MOAT_COAP_SEPARATE_MS 500 /* an answer later than this: Empty ACK */
#define MOAT_COAP_SEP_MAX 64 /* separate CON responses unacknowledged, per peer */
#define MOAT_COAP_HANDSHAKES_MAX 256 /* DTLS handshakes per worker */
#define MOAT_COAP_HANDSHAKE_MS 30000 /* to finish one */
#define MOAT_COAP_TRIM_BYTES ((uint64_t)4 << 20) /* released DTLS buffers */
#define MOAT_COAP_TRIM_MS 10000 /* ... then malloc_trim, at most this often */
/* What an idle DTLS session costs in OpenSSL, counted in memory_limit only
 * where OpenSSL's allocations are not counted byte for byte
 * (net/ossl_mem.h: moatd counts them; a fuzz harness may not). */
#define MOAT_COAP_DTLS_SESSION_BYTES ((uint64_t)40 * 1024)

struct moat_coap_ep {
	uint8_t ev_kind; /* EV_COAP; must stay first */
	int fd;
	size_t listener;
	bool loopback;
	uint16_t port; /* as bound (worker 0's, for the log) */
	bool dtls;     /* coaps */
	SSL *lssl;     /* coaps: the listening SSL (cookies), no peer */
	void *hs_buf;  /* its handshake buffer (net/ossl_mem.h capture) */
	struct moat_worker *w;
};

/* The protocol of an endpoint, as an index into the per-protocol
 * statistics (struct moat_wstats). */
static inline unsigned moat__coap_proto(const struct moat_coap_ep *ep)
{
	return ep->dtls ? MOAT_PROTO_COAPS : MOAT_PROTO_COAP;
}

struct moat_coap_cached {
	uint64_t at_ms;
	uint8_t *resp; /* NULL: seen, no response kept (held or none) */
	uint16_t len;
	uint16_t mid;
	bool used;
};

struct moat_coap_obs {
	uint8_t token[COAP_TOKEN_MAX];
	uint8_t tkl;
	bool acl_each; /* check each notification against the ACL */
	bool wildcard; /* a filter with + or #: notifications name the topic */
	uint16_t last_mid; /* of the last notification (RST matches it) */
	uint16_t flen;
	char *filter;
	uint32_t seq;	    /* Observe sequence number (24 bits) */
	uint32_t since_con; /* NON notifications since the last CON */
	uint64_t last_con_ms;
	uint8_t szx; /* block size the registration asked for (Block2) */
	/* The last notification, when it did not fit one block: its later
	 * blocks are served from it (RFC 7959 §2.6) until a newer one
	 * supersedes it, the observation ends or MOAT_COAP_BODY_MS pass. */
	struct moat_msg *body;
	uint64_t body_ms;
};

/* The one Confirmable notification a peer may have outstanding. */
struct moat_coap_pending {
	uint8_t *pkt;
	uint16_t len;
	uint16_t mid;
	bool active;
	uint64_t due_ms;
	struct coap_retx retx;
};

/* A Block1 request body being received (one per peer). */
struct moat_coap_rx {
	struct coap_reasm r;
	char *topic;
	uint8_t code; /* PUT or POST */
	uint64_t last_ms;
	size_t counted; /* bytes counted in the worker's reassembly total */
};

struct moat_coap_peer {
	union moat_sockaddr addr;
	socklen_t alen;
	struct moat_coap_ep *ep;
	struct moat_coap_peer *hnext, *next, *prev;
	uint64_t last_ms;
	double tokens;
	uint64_t refill_ms;
	bool validated; /* Echo round trip done (RFC 9175) */
	uint8_t dd_next;
	struct moat_coap_cached dd[MOAT_COAP_DEDUP];
	struct moat_coap_obs *obs;
	uint32_t nobs;
	struct moat_session *session; /* observer session, NULL when none */
	struct moat_coap_pending pend;
	uint32_t nsep; /* separate CON responses waiting for their ACK */
	struct coap_mid_gen mids;
	struct moat_coap_rx *rx;
	SSL *ssl;	  /* coaps: the DTLS session */
	bool hs_done;	  /* its handshake finished */
	void *hs_buf;	  /* OpenSSL's handshake buffer (coap_dtls.c) */
	bool bufs_freed;  /* its record buffers were given back */
	uint64_t hs_start_ms;
	char *user;	  /* coaps: PSK or certificate identity */
	bool lo_addr;	  /* a loopback address */
	char name[MOAT_PEER_STRLEN]; /* "addr:port" for logs, ACL %c */
	char ip[MOAT_PEER_STRLEN];   /* "addr", the per-IP rate's key */
};

/* Per worker. */
struct moat_coap {
	struct moat_coap_ep *eps;
	size_t neps;
	struct moat_coap_peer **buckets;
	size_t nbuckets, npeers, nobs;
	struct moat_coap_peer *peers; /* list, for the tick */
	size_t reasm_bytes;
	size_t nhandshakes; /* DTLS handshakes in progress */
	uint8_t *dbuf;	    /* MOAT_COAP_RX_MAX: decrypted records */
	struct coap_echo_key echo;
	uint64_t limit_log_ms;
	uint8_t *rbuf; /* MOAT_COAP_RX_MAX + 1 */
	uint64_t dtls_released; /* OpenSSL bytes freed since the last trim */
	uint64_t trim_ms;	/* malloc_trim() last called */
	struct moat_coap_held *held; /* responses waiting for the store */
};

/* A request's response, built by coap_ps.c and encoded by coap_srv.c. */
struct moat_coap_resp {
	uint8_t code;
	bool has_cf, has_max_age, has_observe, has_block1, has_block2,
		has_size2;
	uint8_t etag_len;
	uint8_t etag[8];
	uint32_t cf, max_age, observe, size2;
	struct coap_block block1, block2;
	const uint8_t *payload;
	size_t plen;
	const char *diag; /* diagnostic payload of an error */
	bool hold;	  /* wait for the store before sending (persistence) */
	bool need_echo;	  /* answer 4.01 + Echo (an unvalidated address) */
	bool no_response; /* nothing to send (an RST-worthy NON) */
	bool retained_after; /* send a wildcard's retained values after it */
};

/* coap_srv.c */
int moat__coap_open(struct moat_broker *b, char *err, size_t errsz);
/* "listening on ADDR:PORT (CoAP, UDP)" for each CoAP listener. */
void moat__coap_log_listeners(const struct moat_broker *b);
void moat__coap_on_readable(struct moat_coap_ep *ep);
/* One datagram received on ep from a (what on_readable does for each;
 * the fuzz harness calls it directly). */
void moat__coap_datagram(struct moat_coap_ep *ep, const uint8_t *d, size_t n,
			 const union moat_sockaddr *a, socklen_t alen);
void moat__coap_tick(struct moat_worker *w, uint64_t now);
void moat__coap_worker_free(struct moat_worker *w);
void moat__coap_store_release(struct moat_worker *w, uint64_t done);
/* Send a notification datagram (type CON or NON) to p. */
int moat__coap_sendto(struct moat_coap_peer *p, const uint8_t *pkt,
		      size_t len);
/* Is the listener's traffic anonymous-only (plain CoAP)?  The user of
 * p's requests for the ACL (NULL = anonymous). */
const char *moat__coap_user(const struct moat_coap_peer *p);
/* Limit hit: counted, logged at most once a second per worker. */
void moat__coap_limit(struct moat_worker *w, const struct moat_coap_peer *p,
		      const char *what);
bool moat__coap_acl(struct moat_coap_peer *p, const char *topic, size_t len,
		    int access);

struct moat_coap_peer *moat__coap_peer_new(struct moat_coap_ep *ep,
					   const union moat_sockaddr *a,
					   socklen_t alen);
/* Forget p (its observations, its DTLS session): p is freed. */
void moat__coap_peer_close(struct moat_coap_peer *p);
/* A CoAP message from p (decrypted DTLS record): false when p was
 * closed meanwhile. */
bool moat__coap_message(struct moat_coap_peer *p, const uint8_t *d, size_t n);

/* coap_dtls.c */
SSL_CTX *moat__coap_dtls_ctx(struct moat_security *sec,
			     const struct moat_listener_cfg *lc, char *err,
			     size_t errsz);
/* A datagram on a coaps endpoint from p (NULL: unknown address). */
void moat__coap_dtls_datagram(struct moat_coap_ep *ep,
			      struct moat_coap_peer *p, const uint8_t *d,
			      size_t n, const union moat_sockaddr *a,
			      socklen_t alen);
void moat__coap_dtls_input(struct moat_coap_peer *p, const uint8_t *d,
			   size_t n);
int moat__coap_dtls_send(struct moat_coap_peer *p, const uint8_t *pkt,
			 size_t len);
void moat__coap_dtls_tick(struct moat_coap_peer *p, uint64_t now);
void moat__coap_dtls_free(struct moat_coap_peer *p);
void moat__coap_dtls_ep_free(struct moat_coap_ep *ep);

/* coap_ps.c */
void moat__coap_request(struct moat_coap_peer *p, const struct coap_msg *req,
			struct moat_coap_resp *r);
/* An ACK or RST from p for message id mid. */
void moat__coap_on_ack(struct moat_coap_peer *p, uint16_t mid, bool rst);
void moat__coap_peer_drop_obs(struct moat_coap_peer *p);
/* Release notification bodies older than MOAT_COAP_BODY_MS. */
void moat__coap_obs_tick(struct moat_coap_peer *p, uint64_t now);
/* After the response to a wildcard registration req: the retained values
 * matching its filter (at most MOAT_COAP_RETAINED_MAX), as notifications. */
void moat__coap_obs_retained(struct moat_coap_peer *p,
			     const struct coap_msg *req);
void moat__coap_rx_free(struct moat_coap_peer *p);

#endif
