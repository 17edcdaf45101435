/* moat audit: state shared by the CoAP checks (audit_coap.c, the
 * resources; audit_coap_amp.c, the measurements of what the server sends
 * to an unvalidated address).  Internal to apps/moat/audit. */
#ifndef MOAT_AUDIT_COAP_H
#define MOAT_AUDIT_COAP_H

#include "audit.h"

/* Bounds of the CoAP probes. */
#define CO_RES_MAX 32	      /* resources kept from /.well-known/core */
#define CO_READ_MAX 16	      /* resources read */
#define CO_OBSERVE_MAX 4      /* resources observed */
#define CO_BODY_MAX (64u * 1024u) /* a body read (block-wise included) */
#define CO_LINKS_MAX (16u * 1024u) /* /.well-known/core */
#define CO_RX_MAX 65536u      /* a datagram */
#define CO_COLLECT_MS 1500u   /* after an answer: datagrams sent unasked */
#define CO_COLLECT_DGRAMS 64  /* ... at most this many */
#define CO_MID_SAMPLES 20     /* NON requests for AUD-CO-04 */
#define CO_MID_PACE_MS 20
#define CO_NOTIFY_MAX 100     /* notifications per observed resource */
#define CO_AMP_LIMIT 3	      /* RFC 9175 §2.4 */
#define CO_FIRST_MAX 136      /* RFC 9175 §2.4 (via RFC 9000 §8) */

struct co_res {
	char path[256];	 /* percent-encoded, from a link "</...>" */
	bool obs;	 /* the "obs" attribute */
	long sz;	 /* the "sz" attribute, -1 when absent */
	size_t got;	 /* bytes of the body an anonymous GET received */
	uint8_t code;	 /* its response code (0: no answer) */
};

/* One request to an unvalidated address and everything that came back
 * within the collection window. */
struct co_amp {
	char path[256];
	size_t req;	  /* bytes of our request */
	size_t dgrams;	  /* datagrams received */
	size_t resp;	  /* their bytes */
	size_t first;	  /* bytes of the first one */
	size_t garbage;	  /* datagrams that are not CoAP */
	uint8_t code;	  /* code of the response (0: none) */
	bool echo;	  /* 4.01 with an Echo option */
	bool answered;
};

struct co_state {
	struct audit_ctx *x;
	SSL_CTX *dtls; /* NULL: plain UDP */
	struct co_res res[CO_RES_MAX];
	size_t nres, more_res, foreign;
	bool has_ps;	/* a moatd-style /ps collection is listed */
	bool echo_seen; /* an unvalidated request got 4.01 + Echo */
	struct co_amp amp[2];
	size_t namp;
	struct audit_sampler *sampler;
	struct audit_ident *sampler_id; /* anonymous, owned */
	uint8_t *rx; /* CO_RX_MAX */
};

/* audit_coap_amp.c */
/* GET path (percent-encoded, "/.well-known/core") once from a fresh
 * socket and collect what comes back.  MOAT_OK when the probe ran (a->
 * answered says whether CoAP came back), else an error with err set. */
int co_measure(struct co_state *s, const char *path, struct co_amp *a,
	       char *err, size_t errsz);
void co_check_amplification(struct co_state *s);
void co_check_ids(struct co_state *s, const char *path);

/* audit_coap.c */
/* coap:// or coaps:// URI of path on the target into u (buf holds the
 * text it points into).  MOAT_OK or MOAT_EINVAL. */
int co_uri(const struct co_state *s, const char *path, struct coap_uri *u,
	   char *buf, size_t bufsz);

#endif
