/* CoAP client exchanges: requests with retransmission, piggybacked and
 * separate responses, Echo, Block1 uploads, Block2 downloads, Observe.
 * See coap_client.h for the contract. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "coap_client.h"

#define RX_MAX 65536u /* largest UDP payload */
#define ECHO_MAX 40   /* RFC 9175 §2.2.1 */
#define ECHO_TRIES 2  /* 4.01 + Echo answered at most twice in a row */
#define DEREGISTER_WAIT_MS 3000u
#define MAX_AGE_DEFAULT 60u	 /* s, RFC 7252 §5.10.5 */
#define FRESHNESS_SLACK_MS 2000u /* beyond Max-Age before re-registering */

struct client {
	const struct coap_io *io;
	const struct coap_client_cfg *cfg;
	const struct coap_request *rq;
	struct coap_mid_gen mids;
	uint8_t *rx;
	uint8_t *tx;
	size_t tx_cap;
	uint8_t echo[ECHO_MAX];
	size_t echo_len;
	uint8_t obs_token[COAP_TOKEN_MAX];
	bool observing; /* notifications with obs_token are ours */
	size_t rx_len;	/* of the datagram in rx */
	/* While the blocks of a notification are fetched: the newest
	 * notification that came meanwhile (RFC 7959 §2.6: when the ETag
	 * changes, the client restarts with it). */
	bool fetching;
	uint8_t *newer, *cur; /* RX_MAX each, swapped */
	size_t newer_len;
	bool lost;	/* a re-registration got no answer */
	char *err;
	size_t errsz;
};

/* What one request message carries besides the URI options. */
struct req_parts {
	uint8_t type;
	uint16_t mid;
	uint8_t token[COAP_TOKEN_MAX];
	bool keep_token;  /* the Observe token: not renewed */
	int32_t observe;  /* -1: no Observe option */
	bool with_cf;	  /* Content-Format (requests with a body) */
	bool has_block1, has_block2;
	struct coap_block b1, b2;
	uint32_t size1; /* 0: no Size1 option */
	const uint8_t *payload;
	size_t payload_len;
	uint32_t wait_ms; /* 0: MAX_TRANSMIT_WAIT */
	bool plain_only;  /* a separate response with Observe is a
			   * notification, not the answer (deregistration) */
};

__attribute__((format(printf, 3, 4))) static int
fail(struct client *cl, int rc, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(cl->err, cl->errsz, fmt, ap);
	va_end(ap);
	return rc;
}

static int send_raw(struct client *cl, const uint8_t *p, size_t n)
{
	if (cl->cfg->trace)
		cl->cfg->trace(cl->cfg->trace_arg, true, p, n);
	int rc = cl->io->send(cl->io->ctx, p, n);
	return rc == MOAT_OK ? rc : fail(cl, rc, "cannot send a datagram");
}

/* An Empty ACK or RST for message id mid (RFC 7252 §4.2, §4.3). */
static void send_empty(struct client *cl, uint8_t type, uint16_t mid)
{
	uint8_t b[COAP_HEADER_LEN] = {(uint8_t)(COAP_VERSION << 6 | type << 4),
				      COAP_EMPTY, (uint8_t)(mid >> 8),
				      (uint8_t)mid};
	(void)send_raw(cl, b, sizeof(b));
}

static bool token_eq(const struct coap_msg *m, const uint8_t *t)
{
	return m->tkl == COAP_TOKEN_MAX && !memcmp(m->token, t, m->tkl);
}

static bool is_response(const struct coap_msg *m)
{
	unsigned c = COAP_CODE_CLASS(m->code);
	return c == 2 || c == 4 || c == 5;
}

static int build(struct client *cl, const struct req_parts *p, size_t *len)
{
	const struct coap_request *rq = cl->rq;
	struct coap_wr w;
	coap_wr_init(&w, cl->tx, cl->tx_cap);
	coap_wr_header(&w, p->type, rq->method, p->mid, p->token,
		       COAP_TOKEN_MAX);
	coap_wr_uri_host(&w, rq->uri);
	if (p->observe >= 0)
		coap_wr_opt_uint(&w, COAP_OPT_OBSERVE, (uint32_t)p->observe);
	coap_wr_uri_path(&w, rq->uri);
	if (p->with_cf && rq->content_format >= 0)
		coap_wr_opt_uint(&w, COAP_OPT_CONTENT_FORMAT,
				 (uint32_t)rq->content_format);
	coap_wr_uri_query(&w, rq->uri);
	if (p->has_block2)
		coap_wr_opt_uint(&w, COAP_OPT_BLOCK2,
				 coap_block_encode(&p->b2));
	if (p->has_block1)
		coap_wr_opt_uint(&w, COAP_OPT_BLOCK1,
				 coap_block_encode(&p->b1));
	if (p->size1)
		coap_wr_opt_uint(&w, COAP_OPT_SIZE1, p->size1);
	if (cl->echo_len)
		coap_wr_opt(&w, COAP_OPT_ECHO, cl->echo, cl->echo_len);
	coap_wr_payload(&w, p->payload, p->payload_len);
	int rc = coap_wr_finish(&w, len);
	return rc == MOAT_OK ? rc : fail(cl, rc, "the request does not fit "
						 "a datagram");
}

/* A datagram that is not what we wait for.  Responses to nothing of ours
 * are reset (§4.2, §4.3; for a stale Observe token this ends the server's
 * observation), pings answered; notifications of our observation that
 * arrive during a block transfer are acknowledged and dropped (the next
 * one brings the news). */
static void stray(struct client *cl, const struct coap_msg *m)
{
	if (m->type == COAP_ACK || m->type == COAP_RST)
		return;
	if (cl->observing && token_eq(m, cl->obs_token) && is_response(m)) {
		if (m->type == COAP_CON)
			send_empty(cl, COAP_ACK, m->mid);
		if (cl->fetching && COAP_CODE_CLASS(m->code) == 2 &&
		    cl->newer) {
			memcpy(cl->newer, cl->rx, cl->rx_len);
			cl->newer_len = cl->rx_len;
		}
		return;
	}
	if (m->type == COAP_CON || is_response(m))
		send_empty(cl, COAP_RST, m->mid);
}

enum verdict { V_IGNORE, V_MATCH, V_RESET };

static enum verdict classify(struct client *cl, const struct req_parts *p,
			     const struct coap_msg *m, bool *acked)
{
	if (m->type == COAP_ACK || m->type == COAP_RST) {
		if (m->mid != p->mid || p->type != COAP_CON)
			return V_IGNORE;
		if (m->type == COAP_RST)
			return V_RESET;
		*acked = true;
		/* An Empty ACK: the response comes separately. */
		return m->code != COAP_EMPTY && is_response(m) &&
			       token_eq(m, p->token)
			       ? V_MATCH
			       : V_IGNORE;
	}
	struct coap_opt o;
	if (!is_response(m) || !token_eq(m, p->token) ||
	    (p->plain_only && coap_opt_find(m, COAP_OPT_OBSERVE, &o))) {
		stray(cl, m);
		return V_IGNORE;
	}
	if (m->type == COAP_CON)
		send_empty(cl, COAP_ACK, m->mid);
	*acked = true;
	return V_MATCH;
}

/* Wait for a datagram until `until`; MOAT_OK with m parsed, MOAT_EAGAIN
 * at `until`, or the transport's error.  Malformed datagrams are
 * dropped. */
static int receive(struct client *cl, uint64_t until, struct coap_msg *m)
{
	for (;;) {
		uint64_t t = moat_now_ms();
		if (t >= until)
			return MOAT_EAGAIN;
		size_t n = 0;
		uint64_t wait = MOAT_MIN(until - t, UINT32_MAX);
		int rc = cl->io->recv(cl->io->ctx, cl->rx, RX_MAX,
				      (uint32_t)wait, &n);
		if (rc == MOAT_EAGAIN)
			continue;
		if (rc != MOAT_OK)
			return rc;
		if (cl->cfg->trace)
			cl->cfg->trace(cl->cfg->trace_arg, false, cl->rx, n);
		cl->rx_len = n;
		if (coap_parse(cl->rx, n, m) == MOAT_OK)
			return MOAT_OK;
	}
}

/* One request and its response (§4.2 retransmission with back-off). */
static int exchange(struct client *cl, const struct req_parts *p,
		    struct coap_msg *m)
{
	const struct coap_tx_params *tx = &cl->cfg->tx;
	size_t len;
	int rc = build(cl, p, &len);
	if (rc != MOAT_OK)
		return rc;
	uint32_t rnd = 0;
	(void)coap_random(&rnd, sizeof(rnd)); /* 0 is a fine fallback */
	struct coap_retx r;
	coap_retx_start(&r, tx, rnd);
	uint64_t t = moat_now_ms();
	uint64_t resend = t + r.timeout_ms;
	uint64_t give_up = t + (p->wait_ms ? p->wait_ms
					   : coap_max_transmit_wait_ms(tx));
	if (cl->cfg->deadline_ms && cl->cfg->deadline_ms < give_up)
		give_up = cl->cfg->deadline_ms;
	bool acked = p->type != COAP_CON;
	if ((rc = send_raw(cl, cl->tx, len)) != MOAT_OK)
		return rc;
	for (;;) {
		t = moat_now_ms();
		if (!acked && t >= resend && t < give_up) {
			if (!coap_retx_next(&r))
				return fail(cl, MOAT_EAGAIN, "no answer after "
							     "%u transmissions",
					    r.sent);
			if ((rc = send_raw(cl, cl->tx, len)) != MOAT_OK)
				return rc;
			resend = t + r.timeout_ms;
		}
		rc = receive(cl, acked ? give_up : MOAT_MIN(resend, give_up),
			     m);
		if (rc == MOAT_EAGAIN && moat_now_ms() >= give_up)
			return fail(cl, MOAT_EAGAIN, "no response in time");
		if (rc == MOAT_EAGAIN)
			continue;
		if (rc != MOAT_OK)
			return rc;
		enum verdict v = classify(cl, p, m, &acked);
		if (v == V_RESET)
			return fail(cl, MOAT_EPROTO, "the server reset the "
						     "request (RST)");
		if (v != V_MATCH)
			continue;
		uint16_t bad;
		if (coap_opts_check(m, &bad) != MOAT_OK)
			return fail(cl, MOAT_EPROTO, "response with the "
						     "unrecognised critical "
						     "option %u", bad);
		return MOAT_OK;
	}
}

/* exchange() with fresh ids, answering 4.01 + Echo (RFC 9175 §2.4) by
 * repeating the request with the server's Echo value. */
static int request(struct client *cl, struct req_parts *p,
		   struct coap_msg *m)
{
	for (int tries = 0;; tries++) {
		int rc = coap_mid_next(&cl->mids, &p->mid);
		if (rc == MOAT_OK && !p->keep_token)
			rc = coap_token_new(p->token, COAP_TOKEN_MAX);
		if (rc != MOAT_OK)
			return fail(cl, rc, "no random numbers");
		if ((rc = exchange(cl, p, m)) != MOAT_OK)
			return rc;
		struct coap_opt o;
		if (m->code != COAP_UNAUTHORIZED ||
		    !coap_opt_find(m, COAP_OPT_ECHO, &o) || o.len == 0 ||
		    o.len > ECHO_MAX || tries >= ECHO_TRIES)
			return MOAT_OK;
		memcpy(cl->echo, o.val, o.len);
		cl->echo_len = o.len;
	}
}

static void parts_init(struct client *cl, struct req_parts *p)
{
	memset(p, 0, sizeof(*p));
	p->type = cl->cfg->non ? COAP_NON : COAP_CON;
	p->observe = -1;
}

/* m carries Block2: fetch the remaining blocks into ra (§2.4).  MOAT_OK
 * with the whole body in ra; MOAT_DECLINED when the server answered a
 * block request with an error (m is that final answer). */
static int fetch_rest(struct client *cl, struct coap_msg *m,
		      struct coap_reasm *ra)
{
	for (;;) {
		struct coap_block b;
		uint32_t size2;
		struct coap_opt etag = {0, 0, NULL};
		if (coap_opt_block(m, COAP_OPT_BLOCK2, &b) != MOAT_OK)
			return fail(cl, MOAT_EPROTO, "a block without a valid "
						     "Block2 option");
		if (coap_opt_uint(m, COAP_OPT_SIZE2, 4, &size2) == MOAT_OK &&
		    coap_reasm_declared(ra, size2) != MOAT_OK)
			return fail(cl, MOAT_ELIMIT, "the server announces "
						     "%u bytes, above the "
						     "limit of %zu",
				    size2, ra->max);
		(void)coap_opt_find(m, COAP_OPT_ETAG, &etag);
		if (coap_reasm_etag(ra, etag.val, etag.len) != MOAT_OK)
			return cl->fetching ? MOAT_EAGAIN
					    : fail(cl, MOAT_EPROTO,
						   "the resource changed "
						   "during the transfer "
						   "(ETag)");
		int rc = coap_reasm_add(ra, &b, m->payload, m->payload_len);
		if (rc == MOAT_ELIMIT)
			return fail(cl, rc, "response body above the limit of "
					    "%zu bytes", ra->max);
		if (rc != MOAT_OK)
			return fail(cl, rc == MOAT_ENOMEM ? rc : MOAT_EPROTO,
				    "bad block %u from the server", b.num);
		if (ra->complete)
			return MOAT_OK;
		struct req_parts q;
		parts_init(cl, &q);
		q.has_block2 = true;
		q.b2.szx = MOAT_MIN(b.szx, cl->cfg->block_szx);
		q.b2.num = coap_reasm_next_num(ra, q.b2.szx);
		if ((rc = request(cl, &q, m)) != MOAT_OK)
			return rc;
		if (COAP_CODE_CLASS(m->code) != 2)
			return MOAT_DECLINED;
	}
}

/* A notification's later blocks changed ETag (a newer one superseded
 * it): m becomes the newest notification that came meanwhile; false when
 * none did (it is still on its way: this one is skipped). */
static bool restart_newer(struct client *cl, struct coap_msg *m)
{
	if (!cl->newer_len)
		return false;
	uint8_t *t = cl->cur;
	cl->cur = cl->newer;
	cl->newer = t;
	size_t n = cl->newer_len;
	cl->newer_len = 0;
	return coap_parse(cl->cur, n, m) == MOAT_OK;
}

/* Deliver response m (fetching its remaining blocks first) to cb. */
static int deliver(struct client *cl, struct coap_msg *m,
		   coap_response_cb cb, void *arg)
{
	/* A notification's later blocks come from GETs without Observe
	 * (RFC 7959 §2.6, RFC 7641 §3.4); an answer to them is not a
	 * notification: an error or another ETag (a newer notification
	 * superseded this one on the server) restarts with the newer
	 * notification, or skips this one when none came yet. */
	cl->fetching = cl->observing && token_eq(m, cl->obs_token);
	cl->newer_len = 0;
	for (;;) {
		struct coap_block b;
		if (COAP_CODE_CLASS(m->code) != 2 ||
		    coap_opt_block(m, COAP_OPT_BLOCK2, &b) != MOAT_OK ||
		    (!b.more && b.num == 0)) {
			cl->fetching = false;
			return cb(arg, m, m->payload, m->payload_len);
		}
		struct coap_reasm ra;
		coap_reasm_init(&ra, cl->cfg->max_body);
		int rc = fetch_rest(cl, m, &ra);
		if (cl->fetching && (rc == MOAT_EAGAIN || rc == MOAT_DECLINED)) {
			coap_reasm_cleanup(&ra);
			if (restart_newer(cl, m))
				continue;
			cl->fetching = false;
			return MOAT_OK;
		}
		cl->fetching = false;
		if (rc == MOAT_OK)
			rc = cb(arg, m, ra.body.data, moat_buf_used(&ra.body));
		else if (rc == MOAT_DECLINED)
			rc = cb(arg, m, m->payload, m->payload_len);
		coap_reasm_cleanup(&ra);
		return rc;
	}
}

/* A request body larger than one block goes in Block1 blocks (§2.5),
 * following the server's block size when it asks for smaller ones. */
static int upload(struct client *cl, struct coap_msg *m)
{
	const struct coap_request *rq = cl->rq;
	uint8_t szx = cl->cfg->block_szx;
	size_t off = 0;
	bool resized = false;
	for (;;) {
		size_t size = coap_block_size(szx);
		size_t chunk = MOAT_MIN(size, rq->payload_len - off);
		struct req_parts p;
		parts_init(cl, &p);
		p.with_cf = true;
		p.has_block1 = true;
		p.b1 = (struct coap_block){(uint32_t)(off / size),
					   off + chunk < rq->payload_len, szx};
		p.size1 = off == 0 ? (uint32_t)rq->payload_len : 0;
		p.payload = rq->payload + off;
		p.payload_len = chunk;
		int rc = request(cl, &p, m);
		if (rc != MOAT_OK)
			return rc;
		struct coap_block rb;
		bool has = coap_opt_block(m, COAP_OPT_BLOCK1, &rb) == MOAT_OK;
		/* §2.9.3: 4.13 with a smaller Block1 size: start over. */
		if (m->code == COAP_REQUEST_ENTITY_TOO_LARGE && has &&
		    rb.szx < szx && off == 0 && !resized) {
			szx = rb.szx;
			resized = true;
			continue;
		}
		if (!p.b1.more || m->code != COAP_CONTINUE)
			return MOAT_OK; /* the final response */
		off += chunk;
		if (has && rb.szx < szx)
			szx = rb.szx; /* off stays a multiple of the size */
	}
}

/* GET with Observe: value and the observation's token (RFC 7641 §3.1,
 * §3.3.1, §3.6: the same options as the registration). */
static void observe_parts(struct client *cl, struct req_parts *p,
			  int32_t value)
{
	parts_init(cl, p);
	p->observe = value;
	p->keep_token = true;
	memcpy(p->token, cl->obs_token, COAP_TOKEN_MAX);
	/* Early negotiation of a smaller block size (RFC 7959 §2.4). */
	if (cl->cfg->block_szx < COAP_BLOCK_SZX_MAX) {
		p->has_block2 = true;
		p->b2 = (struct coap_block){0, false, cl->cfg->block_szx};
	}
}

/* The first response to the request (after an upload, if any). */
static int first_response(struct client *cl, struct req_parts *p,
			  struct coap_msg *m)
{
	const struct coap_request *rq = cl->rq;
	if (rq->payload_len > coap_block_size(cl->cfg->block_szx))
		return upload(cl, m);
	if (rq->observe) {
		if (coap_token_new(cl->obs_token, COAP_TOKEN_MAX) != MOAT_OK)
			return fail(cl, MOAT_EIO, "no random numbers");
		observe_parts(cl, p, COAP_OBSERVE_REGISTER);
		return request(cl, p, m);
	}
	parts_init(cl, p);
	p->with_cf = rq->payload_len > 0;
	p->payload = rq->payload;
	p->payload_len = rq->payload_len;
	/* Early negotiation of a smaller block size (§2.4). */
	if (cl->cfg->block_szx < COAP_BLOCK_SZX_MAX &&
	    rq->method == COAP_GET) {
		p->has_block2 = true;
		p->b2 = (struct coap_block){0, false, cl->cfg->block_szx};
	}
	return request(cl, p, m);
}

/* When the data of m stops being fresh: its Max-Age (60 s when absent)
 * and some slack from now. */
static uint64_t fresh_until(const struct coap_msg *m)
{
	uint32_t max_age = MAX_AGE_DEFAULT;
	(void)coap_opt_uint(m, COAP_OPT_MAX_AGE, 4, &max_age);
	return moat_now_ms() + (uint64_t)max_age * 1000u + FRESHNESS_SLACK_MS;
}

/* The next notification into m: MOAT_OK; MOAT_DECLINED when m is the
 * answer to a re-registration (§3.3.1: the Max-Age of the last one ran
 * out and nothing new came); else the end (deadline, stop, no answer). */
static int next_notification(struct client *cl, uint64_t fresh,
			     struct coap_msg *m)
{
	for (;;) {
		uint64_t deadline = cl->cfg->deadline_ms ? cl->cfg->deadline_ms
							 : UINT64_MAX;
		int rc = receive(cl, MOAT_MIN(deadline, fresh), m);
		if (rc == MOAT_EAGAIN && moat_now_ms() < deadline) {
			struct req_parts p;
			observe_parts(cl, &p, COAP_OBSERVE_REGISTER);
			rc = request(cl, &p, m);
			cl->lost = rc == MOAT_EAGAIN &&
				   moat_now_ms() < deadline;
			return rc == MOAT_OK ? MOAT_DECLINED : rc;
		}
		if (rc != MOAT_OK)
			return rc;
		if (m->type == COAP_ACK || m->type == COAP_RST ||
		    !is_response(m) || !token_eq(m, cl->obs_token)) {
			stray(cl, m);
			continue;
		}
		uint16_t bad;
		if (coap_opts_check(m, &bad) != MOAT_OK) {
			send_empty(cl, COAP_RST, m->mid);
			continue;
		}
		if (m->type == COAP_CON)
			send_empty(cl, COAP_ACK, m->mid);
		return MOAT_OK;
	}
}

/* Notifications until cb says stop, the server ends the observation, the
 * deadline or the transport's stop (RFC 7641 §3.3, §3.4). */
static int observe_loop(struct client *cl, uint32_t seq, uint64_t fresh,
			coap_response_cb cb, void *arg)
{
	uint64_t seq_t = moat_now_ms();
	cl->observing = true;
	for (;;) {
		struct coap_msg m;
		int rc = next_notification(cl, fresh, &m);
		bool reregistered = rc == MOAT_DECLINED;
		if (rc != MOAT_OK && !reregistered)
			return rc;
		uint32_t v;
		bool has_obs = coap_opt_uint(&m, COAP_OPT_OBSERVE, 3, &v) ==
			       MOAT_OK;
		uint64_t t = moat_now_ms();
		/* A re-registration starts the order afresh. */
		if (has_obs && !reregistered &&
		    !coap_observe_newer(seq, seq_t, v, t))
			continue; /* reordered: older than what we showed */
		if (has_obs) {
			seq = v;
			seq_t = t;
		}
		fresh = fresh_until(&m);
		rc = deliver(cl, &m, cb, arg);
		/* A notification without Observe or with an error code
		 * ends the observation (§3.2, §4.2). */
		if (rc != MOAT_OK || !has_obs ||
		    COAP_CODE_CLASS(m.code) != 2)
			return rc == MOAT_DECLINED ? MOAT_OK : rc;
	}
}

/* GET with Observe: 1 and the registration's token (§3.6); bounded. */
static void deregister(struct client *cl)
{
	struct req_parts p;
	struct coap_msg m;
	observe_parts(cl, &p, COAP_OBSERVE_DEREGISTER);
	/* stray() acknowledges the notifications that still come */
	p.wait_ms = DEREGISTER_WAIT_MS;
	p.plain_only = true; /* notifications still come meanwhile */
	struct coap_client_cfg cfg = *cl->cfg;
	cfg.deadline_ms = 0; /* its own bound, even after -W */
	const struct coap_client_cfg *saved = cl->cfg;
	cl->cfg = &cfg;
	(void)request(cl, &p, &m);
	cl->cfg = saved;
}

int coap_client_run(const struct coap_io *io,
		    const struct coap_client_cfg *cfg,
		    const struct coap_request *rq, coap_response_cb cb,
		    void *arg, char *err, size_t errsz)
{
	struct client cl;
	memset(&cl, 0, sizeof(cl));
	cl.io = io;
	cl.cfg = cfg;
	cl.rq = rq;
	cl.err = err;
	cl.errsz = errsz;
	err[0] = 0;
	coap_mid_init(&cl.mids);
	if (rq->payload_len > cfg->max_body)
		return fail(&cl, MOAT_ELIMIT, "the request body is above the "
					      "limit of %zu bytes",
			    cfg->max_body);
	/* Options: at most 3 header bytes per (decoded) URI byte; then the
	 * fixed options, Echo, a block or a small body. */
	cl.tx_cap = 3 * (strlen(rq->uri->host) + rq->uri->path_len +
			 rq->uri->query_len) +
		    128 + ECHO_MAX + coap_block_size(cfg->block_szx);
	cl.tx = moat_malloc(cl.tx_cap);
	cl.rx = moat_malloc(RX_MAX);
	if (rq->observe) {
		cl.newer = moat_malloc(RX_MAX);
		cl.cur = moat_malloc(RX_MAX);
	}
	int rc = MOAT_ENOMEM;
	if (!cl.tx || !cl.rx || (rq->observe && (!cl.newer || !cl.cur))) {
		fail(&cl, rc, "out of memory");
		goto out;
	}
	struct req_parts p;
	struct coap_msg m;
	if ((rc = first_response(&cl, &p, &m)) != MOAT_OK)
		goto out;
	uint32_t seq = 0;
	bool registered = rq->observe && COAP_CODE_CLASS(m.code) == 2 &&
			  coap_opt_uint(&m, COAP_OPT_OBSERVE, 3, &seq) ==
				  MOAT_OK;
	cl.observing = registered;
	uint64_t fresh = fresh_until(&m);
	rc = deliver(&cl, &m, cb, arg);
	if (rc == MOAT_OK && registered)
		rc = observe_loop(&cl, seq, fresh, cb, arg);
	if (registered) {
		/* -W and Ctrl-C end an observation normally; a server that
		 * stopped answering does not. */
		if (rc == MOAT_ECLOSED || rc == MOAT_DECLINED ||
		    (rc == MOAT_EAGAIN && !cl.lost))
			rc = MOAT_OK;
		deregister(&cl);
	}
out:
	moat_free(cl.tx);
	moat_free(cl.rx);
	moat_free(cl.newer);
	moat_free(cl.cur);
	return rc;
}
