/* CoAP listener: UDP sockets in the workers, peers, the RFC 7252 message
 * layer (CON/NON/ACK/RST, message-id deduplication, retransmission of
 * Confirmable notifications) and address validation with Echo (RFC 9175).
 * The resources are coap_ps.c's.  See coap_int.h. */
#include <errno.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>
#include <netdb.h>

#include "auth/acl.h"
#include "coap_int.h"

/* ---- sockets --------------------------------------------------------- */

static int udp_socket(const char *addr, uint16_t port, uint16_t *bound,
		      char *err, size_t errsz)
{
	struct addrinfo hints = {.ai_family = AF_UNSPEC,
				 .ai_socktype = SOCK_DGRAM,
				 .ai_flags = AI_PASSIVE | AI_NUMERICHOST |
					     AI_NUMERICSERV};
	struct addrinfo *ai = NULL;
	char ps[8];
	snprintf(ps, sizeof(ps), "%u", (unsigned)port);
	int rc = getaddrinfo(addr[0] ? addr : "::", ps, &hints, &ai);
	if (rc) {
		snprintf(err, errsz, "address %s: %s", addr, gai_strerror(rc));
		return -1;
	}
	int fd = socket(ai->ai_family,
			SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	int one = 1, zero = 0;
	if (fd >= 0 && ai->ai_family == AF_INET6 && !addr[0])
		(void)setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero,
				 sizeof(zero));
	if (fd < 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) ||
	    bind(fd, ai->ai_addr, ai->ai_addrlen)) {
		snprintf(err, errsz, "UDP %s port %u: %s",
			 addr[0] ? addr : "::", (unsigned)port,
			 strerror(errno));
		if (fd >= 0)
			close(fd);
		freeaddrinfo(ai);
		return -1;
	}
	freeaddrinfo(ai);
	union moat_sockaddr sa;
	socklen_t sl = sizeof(sa);
	if (getsockname(fd, &sa.sa, &sl) == 0)
		*bound = ntohs(sa.sa.sa_family == AF_INET6 ? sa.v6.sin6_port
							   : sa.v4.sin_port);
	return fd;
}

static int worker_setup(struct moat_worker *w)
{
	struct moat_coap *c = moat_calloc(1, sizeof(*c));
	if (!c)
		return MOAT_ENOMEM;
	w->coap = c;
	c->eps = moat_calloc(w->b->cfg.nlisteners, sizeof(*c->eps));
	c->rbuf = moat_malloc(MOAT_COAP_RX_MAX + 1);
	c->dbuf = moat_malloc(MOAT_COAP_RX_MAX);
	c->nbuckets = 256;
	c->buckets = moat_calloc(c->nbuckets, sizeof(*c->buckets));
	if (!c->eps || !c->rbuf || !c->dbuf || !c->buckets)
		return MOAT_ENOMEM;
	return coap_echo_key_init(&c->echo);
}

/* One socket per worker and CoAP listener, all on the same port
 * (SO_REUSEPORT): the kernel keeps each peer on one of them. */
int moat__coap_open(struct moat_broker *b, char *err, size_t errsz)
{
	for (size_t i = 0; i < b->cfg.nlisteners; i++) {
		const struct moat_listener_cfg *lc = &b->cfg.listeners[i];
		if (!moat_listener_coap(lc))
			continue;
		uint16_t port = lc->port;
		for (unsigned k = 0; k < b->nworkers; k++) {
			struct moat_worker *w = &b->workers[k];
			if (!w->coap && worker_setup(w) != MOAT_OK) {
				snprintf(err, errsz, "out of memory");
				return MOAT_ENOMEM;
			}
			struct moat_coap_ep *ep = &w->coap->eps[w->coap->neps];
			ep->ev_kind = EV_COAP;
			ep->w = w;
			ep->listener = i;
			ep->loopback = moat_cfg_addr_is_loopback(lc->addr);
			ep->dtls = lc->protocol == MOAT_PROTO_COAPS;
			ep->fd = udp_socket(lc->addr, port, &port, err, errsz);
			if (ep->fd < 0)
				return MOAT_EIO;
			w->coap->neps++;
			struct epoll_event ev = {.events = EPOLLIN,
						 .data.ptr = ep};
			if (epoll_ctl(w->epfd, EPOLL_CTL_ADD, ep->fd, &ev)) {
				snprintf(err, errsz, "epoll: %s",
					 strerror(errno));
				return MOAT_EIO;
			}
		}
		b->workers[0].coap->eps[b->workers[0].coap->neps - 1].port =
			port;
	}
	return MOAT_OK;
}

void moat__coap_log_listeners(const struct moat_broker *b)
{
	const struct moat_coap *c = b->nworkers ? b->workers[0].coap : NULL;
	for (size_t i = 0; c && i < c->neps; i++) {
		const char *a = b->cfg.listeners[c->eps[i].listener].addr;
		bool v6 = strchr(a, ':') != NULL || !a[0];
		moat_notice("listening on %s%s%s:%u (CoAP, %s)", v6 ? "[" : "",
			    a[0] ? a : "::", v6 ? "]" : "",
			    (unsigned)c->eps[i].port,
			    c->eps[i].dtls ? "DTLS" : "UDP");
	}
}

/* ---- peers ------------------------------------------------------------ */

static uint64_t addr_hash(const union moat_sockaddr *a)
{
	uint8_t k[COAP_ADDR_KEY_MAX];
	size_t n = coap_addr_key(&a->sa, k);
	uint64_t h = 1469598103934665603ull;
	for (size_t i = 0; i < n; i++)
		h = (h ^ k[i]) * 1099511628211ull;
	return h;
}

static bool same_addr(const union moat_sockaddr *a,
		      const union moat_sockaddr *b)
{
	uint8_t ka[COAP_ADDR_KEY_MAX], kb[COAP_ADDR_KEY_MAX];
	size_t na = coap_addr_key(&a->sa, ka), nb = coap_addr_key(&b->sa, kb);
	return na && na == nb && !memcmp(ka, kb, na);
}

static struct moat_coap_peer *peer_find(struct moat_coap_ep *ep,
					const union moat_sockaddr *a)
{
	struct moat_coap *c = ep->w->coap;
	size_t bk = addr_hash(a) % c->nbuckets;
	for (struct moat_coap_peer *p = c->buckets[bk]; p; p = p->hnext)
		if (p->ep == ep && same_addr(&p->addr, a))
			return p;
	return NULL;
}

static void drop_held_of(struct moat_coap_peer *p);

static void peer_free(struct moat_coap_peer *p)
{
	struct moat_coap *c = p->ep->w->coap;
	size_t bk = addr_hash(&p->addr) % c->nbuckets;
	for (struct moat_coap_peer **pp = &c->buckets[bk]; *pp;
	     pp = &(*pp)->hnext) {
		if (*pp == p) {
			*pp = p->hnext;
			break;
		}
	}
	if (p->prev)
		p->prev->next = p->next;
	else
		c->peers = p->next;
	if (p->next)
		p->next->prev = p->prev;
	c->npeers--;
	moat__coap_peer_drop_obs(p);
	moat__coap_rx_free(p);
	moat__coap_dtls_free(p);
	drop_held_of(p);
	for (size_t i = 0; i < MOAT_COAP_DEDUP; i++)
		moat_free(p->dd[i].resp);
	moat_free(p->pend.pkt);
	moat_free(p);
}

void moat__coap_peer_close(struct moat_coap_peer *p)
{
	peer_free(p);
}

struct moat_coap_peer *moat__coap_peer_new(struct moat_coap_ep *ep,
					   const union moat_sockaddr *a,
					   socklen_t alen)
{
	struct moat_worker *w = ep->w;
	struct moat_coap *c = w->coap;
	if (c->npeers >= MOAT_COAP_PEERS_MAX || moat__memory_exhausted(w))
		return NULL;
	struct moat_coap_peer *p = moat_calloc(1, sizeof(*p));
	if (!p)
		return NULL;
	p->addr = *a;
	p->alen = alen;
	p->ep = ep;
	p->last_ms = p->refill_ms = w->now_ms;
	p->tokens = 2.0 * MOAT_COAP_RATE;
	p->validated = ep->dtls; /* the handshake proves the address */
	coap_mid_init(&p->mids);
	p->lo_addr = moat__format_addr(a, p->name, p->ip);
	size_t bk = addr_hash(a) % c->nbuckets;
	p->hnext = c->buckets[bk];
	c->buckets[bk] = p;
	p->next = c->peers;
	if (c->peers)
		c->peers->prev = p;
	c->peers = p;
	c->npeers++;
	return p;
}

const char *moat__coap_user(const struct moat_coap_peer *p)
{
	return p->user; /* NULL on plain CoAP: no credentials */
}

bool moat__coap_acl(struct moat_coap_peer *p, const char *topic, size_t len,
		    int access)
{
	const struct moat_security *sec = p->ep->w->sec;
	const char *user = moat__coap_user(p);
	/* $SYS only to authenticated users the ACL grants it to (T-05). */
	if (access != MOAT_ACL_WRITE && len >= 4 && !memcmp(topic, "$SYS", 4) &&
	    (!user || !sec->acl))
		return false;
	if (!sec->acl)
		return true;
	return moat_acl_allows(sec->acl, user, p->name, topic, len,
			       (enum moat_acl_access)access);
}

void moat__coap_limit(struct moat_worker *w, const struct moat_coap_peer *p,
		      const char *what)
{
	moat__limit_hit(w, MOAT_LIMIT_COAP);
	if (w->now_ms - w->coap->limit_log_ms < 1000)
		return;
	w->coap->limit_log_ms = w->now_ms;
	moat_notice("security: limit coap peer %s: %s", p ? p->name : "-",
		    what);
}

/* ---- sending -------------------------------------------------------- */

int moat__coap_sendto(struct moat_coap_peer *p, const uint8_t *pkt,
		      size_t len)
{
	if (p->ssl)
		return moat__coap_dtls_send(p, pkt, len);
	ssize_t n = sendto(p->ep->fd, pkt, len, MSG_DONTWAIT, &p->addr.sa,
			   p->alen);
	if (n < 0)
		return MOAT_EIO;
	MOAT_WSTAT_ADD(p->ep->w, bytes_out[moat__coap_proto(p->ep)], (uint64_t)n);
	return MOAT_OK;
}

/* An Empty message (ACK or RST) into pkt: its length (4), 0 on error. */
static size_t empty_msg(uint8_t pkt[4], uint8_t type, uint16_t mid)
{
	struct coap_wr wr;
	size_t len;
	coap_wr_init(&wr, pkt, 4);
	coap_wr_header(&wr, type, COAP_EMPTY, mid, NULL, 0);
	return coap_wr_finish(&wr, &len) == MOAT_OK ? len : 0;
}

/* An Empty message (RST) to p, or to an address without a peer. */
static void send_raw(struct moat_coap_ep *ep, struct moat_coap_peer *p,
		     const union moat_sockaddr *a, socklen_t alen,
		     uint8_t type, uint16_t mid)
{
	uint8_t pkt[4];
	size_t len = empty_msg(pkt, type, mid);
	if (!len)
		return;
	if (p)
		(void)moat__coap_sendto(p, pkt, len);
	else
		(void)sendto(ep->fd, pkt, len, MSG_DONTWAIT, &a->sa, alen);
}

/* Encode r as the response to req. */
static int encode(const struct coap_msg *req, const struct moat_coap_resp *r,
		  const uint8_t *echo, uint8_t *buf, size_t cap, size_t *len)
{
	struct coap_wr wr;
	coap_wr_init(&wr, buf, cap);
	/* Piggybacked on the ACK of a CON; a NON request gets a NON. */
	uint8_t type = req->type == COAP_CON ? COAP_ACK : COAP_NON;
	uint16_t mid = req->mid;
	if (type == COAP_NON && coap_random(&mid, sizeof(mid)) != MOAT_OK)
		return MOAT_EIO;
	coap_wr_header(&wr, type, r->code, mid, req->token, req->tkl);
	if (r->etag_len)
		coap_wr_opt(&wr, COAP_OPT_ETAG, r->etag, r->etag_len);
	if (r->has_observe)
		coap_wr_opt_uint(&wr, COAP_OPT_OBSERVE, r->observe);
	if (r->has_cf)
		coap_wr_opt_uint(&wr, COAP_OPT_CONTENT_FORMAT, r->cf);
	if (r->has_max_age)
		coap_wr_opt_uint(&wr, COAP_OPT_MAX_AGE, r->max_age);
	if (r->has_block2)
		coap_wr_opt_uint(&wr, COAP_OPT_BLOCK2,
				 coap_block_encode(&r->block2));
	if (r->has_block1)
		coap_wr_opt_uint(&wr, COAP_OPT_BLOCK1,
				 coap_block_encode(&r->block1));
	if (r->has_size2)
		coap_wr_opt_uint(&wr, COAP_OPT_SIZE2, r->size2);
	if (echo)
		coap_wr_opt(&wr, COAP_OPT_ECHO, echo, COAP_ECHO_LEN);
	if (r->plen)
		coap_wr_payload(&wr, r->payload, r->plen);
	else if (r->diag)
		coap_wr_payload(&wr, r->diag, strlen(r->diag));
	return coap_wr_finish(&wr, len);
}

/* Responses waiting until the store has made the request durable.  One
 * not ready within MOAT_COAP_SEPARATE_MS gets an Empty ACK at once (the
 * client stops retransmitting) and goes later as a separate response
 * (RFC 7252 §5.2.2): a CON with the request's token and a new message id,
 * retransmitted until its ACK or RST. */
struct moat_coap_held {
	struct moat_coap_held *next;
	struct moat_coap_peer *peer;
	uint64_t seq;	  /* store batch; 0 once released */
	uint64_t at_ms;	  /* held since */
	uint64_t due_ms;  /* separate response: next retransmission */
	struct coap_retx retx;
	uint16_t mid;	  /* the request's */
	uint16_t sep_mid; /* the separate response's */
	bool acked;	  /* Empty ACK sent */
	bool sent;	  /* separate response sent, waiting for its ACK */
	uint16_t len;
	uint8_t pkt[];
};

static void remember(struct moat_coap_peer *p, uint16_t mid,
		     const uint8_t *pkt, size_t len, uint64_t now)
{
	struct moat_coap_cached *d = &p->dd[p->dd_next];
	p->dd_next = (uint8_t)((p->dd_next + 1) % MOAT_COAP_DEDUP);
	moat_free(d->resp);
	d->resp = NULL;
	d->used = true;
	d->mid = mid;
	d->at_ms = now;
	d->len = 0;
	if (pkt && (d->resp = moat_malloc(len)) != NULL) {
		memcpy(d->resp, pkt, len);
		d->len = (uint16_t)len;
	}
}

static struct moat_coap_cached *recall(struct moat_coap_peer *p,
				       uint16_t mid, uint64_t now,
				       uint64_t lifetime)
{
	for (size_t i = 0; i < MOAT_COAP_DEDUP; i++) {
		struct moat_coap_cached *d = &p->dd[i];
		if (d->used && d->mid == mid && now - d->at_ms < lifetime)
			return d;
	}
	return NULL;
}

/* Hold the response pkt to request mid until the store has committed what
 * the request recorded: false when nothing waits (persistence_sync off:
 * the caller sends it now). */
static bool hold(struct moat_coap_peer *p, uint16_t mid, const uint8_t *pkt,
		 size_t len)
{
	struct moat_worker *w = p->ep->w;
	uint64_t seq = moat__store_gate_seq(w);
	if (!seq)
		return false;
	struct moat_coap_held *h = moat_malloc(sizeof(*h) + len);
	if (!h) /* not acknowledged: the client sends it again */
		return true;
	memset(h, 0, sizeof(*h));
	h->peer = p;
	h->seq = seq;
	h->at_ms = w->now_ms;
	h->mid = mid;
	h->len = (uint16_t)len;
	memcpy(h->pkt, pkt, len);
	h->next = w->coap->held;
	w->coap->held = h;
	return true;
}

static void held_unlink(struct moat_coap_held **hp)
{
	struct moat_coap_held *h = *hp;
	*hp = h->next;
	if (h->sent)
		h->peer->nsep--;
	moat_free(h);
}

/* The response of h, now durable, as a separate CON response (a NON when
 * the peer already has MOAT_COAP_SEP_MAX of them unacknowledged):
 * true when it stays listed for its ACK. */
static bool separate(struct moat_coap_held *h, uint64_t now)
{
	struct moat_coap_peer *p = h->peer;
	bool con = p->nsep < MOAT_COAP_SEP_MAX;
	if (coap_mid_next(&p->mids, &h->sep_mid) != MOAT_OK)
		return false;
	h->pkt[0] = (uint8_t)((h->pkt[0] & 0xCF) |
			      ((con ? COAP_CON : COAP_NON) << 4));
	h->pkt[2] = (uint8_t)(h->sep_mid >> 8);
	h->pkt[3] = (uint8_t)h->sep_mid;
	MOAT_STAT_ADD(p->ep->w->b, coap_separate, 1);
	(void)moat__coap_sendto(p, h->pkt, h->len);
	if (!con)
		return false;
	struct coap_tx_params tp = COAP_TX_PARAMS_DEFAULT;
	uint32_t rnd = 0;
	(void)coap_random(&rnd, sizeof(rnd));
	coap_retx_start(&h->retx, &tp, rnd);
	h->due_ms = now + h->retx.timeout_ms;
	h->sent = true;
	p->nsep++;
	return true;
}

void moat__coap_store_release(struct moat_worker *w, uint64_t done)
{
	if (!w->coap)
		return;
	for (struct moat_coap_held **hp = &w->coap->held; *hp;) {
		struct moat_coap_held *h = *hp;
		if (!h->seq || h->seq > done) {
			hp = &h->next;
			continue;
		}
		h->seq = 0;
		if (h->acked) {
			if (h->pkt[1] != COAP_EMPTY && separate(h, w->now_ms))
				hp = &h->next;
			else
				held_unlink(hp);
			continue;
		}
		/* Now durable: the response goes out and is what a
		 * retransmission of the request gets. */
		struct moat_coap_cached *d =
			recall(h->peer, h->mid, w->now_ms, UINT64_MAX);
		if (d && !d->resp && (d->resp = moat_malloc(h->len))) {
			memcpy(d->resp, h->pkt, h->len);
			d->len = h->len;
		}
		(void)moat__coap_sendto(h->peer, h->pkt, h->len);
		held_unlink(hp);
	}
}

/* Each tick: an Empty ACK for what waits too long, retransmissions of
 * separate responses. */
static void held_tick(struct moat_coap *c, uint64_t now)
{
	for (struct moat_coap_held **hp = &c->held; *hp;) {
		struct moat_coap_held *h = *hp;
		struct moat_coap_peer *p = h->peer;
		/* (An Empty ACK held itself, No-Response, waits: it is all
		 * the client gets to know that the request is durable.) */
		if (h->seq && !h->acked && h->pkt[1] != COAP_EMPTY &&
		    now - h->at_ms >= MOAT_COAP_SEPARATE_MS) {
			uint8_t ack[4];
			size_t len = empty_msg(ack, COAP_ACK, h->mid);
			if (len) {
				/* A retransmitted request gets it again. */
				struct moat_coap_cached *d =
					recall(p, h->mid, now, UINT64_MAX);
				if (d && !d->resp &&
				    (d->resp = moat_malloc(len))) {
					memcpy(d->resp, ack, len);
					d->len = (uint16_t)len;
				}
				(void)moat__coap_sendto(p, ack, len);
				h->acked = true;
				moat_debug("coap peer %s: response waits for "
					   "the store: Empty ACK sent, a "
					   "separate response follows",
					   p->name);
			}
		}
		if (h->sent && now >= h->due_ms) {
			if (!coap_retx_next(&h->retx)) {
				moat_info("coap peer %s: separate response "
					  "not acknowledged; given up",
					  p->name);
				held_unlink(hp);
				continue;
			}
			h->due_ms = now + h->retx.timeout_ms;
			(void)moat__coap_sendto(p, h->pkt, h->len);
		}
		hp = &h->next;
	}
}

/* An ACK or RST for a separate response of p: true when it was one. */
static bool held_ack(struct moat_coap_peer *p, uint16_t mid)
{
	if (!p->nsep)
		return false;
	for (struct moat_coap_held **hp = &p->ep->w->coap->held; *hp;
	     hp = &(*hp)->next) {
		struct moat_coap_held *h = *hp;
		if (h->peer == p && h->sent && h->sep_mid == mid) {
			held_unlink(hp);
			return true;
		}
	}
	return false;
}

static void drop_held_of(struct moat_coap_peer *p)
{
	for (struct moat_coap_held **hp = &p->ep->w->coap->held; *hp;) {
		struct moat_coap_held *h = *hp;
		if (h->peer == p) {
			held_unlink(hp);
		} else {
			hp = &h->next;
		}
	}
}

/* ---- receiving --------------------------------------------------------- */

static bool within_rate(struct moat_coap_peer *p, uint64_t now)
{
	double add = (double)(now - p->refill_ms) * MOAT_COAP_RATE / 1000.0;
	p->refill_ms = now;
	p->tokens = MOAT_MIN(p->tokens + add, 2.0 * MOAT_COAP_RATE);
	if (p->tokens < 1.0)
		return false;
	p->tokens -= 1.0;
	return true;
}

/* RFC 9175 §2.4: a peer whose address was not validated gets at most
 * three times the request's bytes, and no more than 136. */
static bool amplification_ok(const struct moat_coap_peer *p, size_t reqlen,
			     size_t resplen)
{
	if (p->validated || p->ep->loopback)
		return true;
	return resplen <= 3 * reqlen && resplen <= MOAT_COAP_UNVALIDATED_MAX;
}

static void check_echo(struct moat_coap_peer *p, const struct coap_msg *m)
{
	struct coap_opt o;
	if (p->validated || !coap_opt_find(m, COAP_OPT_ECHO, &o))
		return;
	uint8_t k[COAP_ADDR_KEY_MAX];
	size_t kl = coap_addr_key(&p->addr.sa, k);
	uint32_t now_s = (uint32_t)(p->ep->w->now_ms / 1000);
	if (coap_echo_check(&p->ep->w->coap->echo, now_s,
			    MOAT_COAP_ECHO_VALID_S, k, kl, o.val,
			    o.len) == MOAT_OK)
		p->validated = true;
}

/* 4.01 with an Echo value for p to repeat (RFC 9175 §2.4), into pkt:
 * false when even that would be more than 3x the request (then nothing is
 * sent). */
static bool echo_reply(struct moat_coap_peer *p, const struct coap_msg *m,
		       size_t reqlen, uint8_t *pkt, size_t *len)
{
	struct moat_worker *w = p->ep->w;
	uint8_t echo[COAP_ECHO_LEN], k[COAP_ADDR_KEY_MAX];
	size_t kl = coap_addr_key(&p->addr.sa, k);
	struct moat_coap_resp e = {.code = COAP_UNAUTHORIZED};
	if (coap_echo_make(&w->coap->echo, (uint32_t)(w->now_ms / 1000), k, kl,
			   echo) != MOAT_OK ||
	    encode(m, &e, echo, pkt, MOAT_COAP_DGRAM_MAX, len) != MOAT_OK)
		return false;
	MOAT_STAT_ADD(w->b, coap_echo, 1);
	if (*len > 3 * reqlen) {
		MOAT_STAT_ADD(w->b, coap_dropped, 1);
		return false;
	}
	return true;
}

static void answer(struct moat_coap_peer *p, const struct coap_msg *m,
		   size_t reqlen)
{
	struct moat_worker *w = p->ep->w;
	struct moat_coap_resp r;
	uint8_t pkt[MOAT_COAP_DGRAM_MAX];
	size_t len = 0;
	memset(&r, 0, sizeof(r));
	moat__coap_request(p, m, &r);
	if (r.no_response) {
		remember(p, m->mid, NULL, 0, w->now_ms);
		return;
	}
	if (encode(m, &r, NULL, pkt, sizeof(pkt), &len) != MOAT_OK) {
		memset(&r, 0, sizeof(r));
		r.code = COAP_INTERNAL_SERVER_ERROR;
		if (encode(m, &r, NULL, pkt, sizeof(pkt), &len) != MOAT_OK)
			return;
	}
	/* Too large for an address we have not seen answer: 4.01 with an
	 * Echo the client repeats.  What the request did (a publish) is
	 * done; the repeated request is a new one. */
	if ((r.need_echo || !amplification_ok(p, reqlen, len)) &&
	    !echo_reply(p, m, reqlen, pkt, &len))
		return;
	if (coap_no_response(m, pkt[1])) { /* the code sent */
		/* RFC 7967: the client does not want this class of response.
		 * A CON request still gets its (Empty) ACK, held like the
		 * response until the store has what it acknowledges. */
		MOAT_STAT_ADD(w->b, coap_suppressed, 1);
		if (m->type != COAP_CON) {
			remember(p, m->mid, NULL, 0, w->now_ms);
			return;
		}
		if (!(len = empty_msg(pkt, COAP_ACK, m->mid)))
			return;
	}
	if (r.hold && m->type == COAP_CON && hold(p, m->mid, pkt, len)) {
		remember(p, m->mid, NULL, 0, w->now_ms);
		return;
	}
	remember(p, m->mid, pkt, len, w->now_ms);
	(void)moat__coap_sendto(p, pkt, len);
	if (r.retained_after)
		moat__coap_obs_retained(p, m);
}

/* The request rate per IP address (coap_request_rate_per_ip): a host
 * cannot multiply its budget by using many ports.  Only for peers whose
 * address is not validated (unless coap_rate_per_ip_strict): a device
 * behind a busy NAT address gets 4.01 + Echo, validates, and goes on
 * under its per-peer limit.  false: the request is not handled. */
static bool ip_rate_ok(struct moat_coap_peer *p, const struct coap_msg *m,
		       size_t reqlen)
{
	struct moat_worker *w = p->ep->w;
	const struct moat_config *cfg = w->cfg;
	uint64_t rate = cfg->coap_request_rate_per_ip;
	if (!rate || (p->lo_addr && !cfg->limit_loopback))
		return true;
	check_echo(p, m); /* a valid Echo validates before anything counts */
	if (p->validated && !cfg->coap_rate_per_ip_strict)
		return true;
	if (moat_iptab_rate(&w->b->coaptab, p->ip, w->now_ms, rate))
		return true;
	char key[MOAT_PEER_STRLEN + 8];
	uint8_t pkt[MOAT_COAP_DGRAM_MAX];
	size_t len;
	snprintf(key, sizeof(key), "echo %s", p->ip);
	if (!p->validated && m->type == COAP_CON &&
	    moat_iptab_rate(&w->b->coaptab, key, w->now_ms, rate) &&
	    echo_reply(p, m, reqlen, pkt, &len)) {
		remember(p, m->mid, pkt, len, w->now_ms);
		(void)moat__coap_sendto(p, pkt, len);
		return false;
	}
	moat__coap_limit(w, p, "request rate above coap_request_rate_per_ip; "
			       "ignored");
	MOAT_STAT_ADD(w->b, coap_dropped, 1);
	return false;
}

/* A parsed message from the address a (p: its peer, NULL when none yet;
 * only plain CoAP creates one here). */
static void dispatch(struct moat_coap_ep *ep, struct moat_coap_peer *p,
		     const struct coap_msg *m, size_t n,
		     const union moat_sockaddr *a, socklen_t alen)
{
	struct moat_worker *w = ep->w;
	if (m->type == COAP_ACK || m->type == COAP_RST) {
		if (p && !held_ack(p, m->mid))
			moat__coap_on_ack(p, m->mid, m->type == COAP_RST);
		return;
	}
	if (m->code == COAP_EMPTY || COAP_CODE_CLASS(m->code) != 0) {
		/* A CoAP ping (Empty CON, §4.3), or a response to nothing
		 * of ours: RST. */
		if (m->type == COAP_CON)
			send_raw(ep, p, a, alen, COAP_RST, m->mid);
		return;
	}
	if (!p && !(p = moat__coap_peer_new(ep, a, alen))) {
		moat__coap_limit(w, NULL, "too many CoAP peers or "
					  "memory_limit; request ignored");
		MOAT_STAT_ADD(w->b, coap_dropped, 1);
		return;
	}
	p->last_ms = w->now_ms;
	/* (Local tools are not throttled unless limit_loopback, as for
	 * MQTT's per-address limits.) */
	if ((!p->lo_addr || w->cfg->limit_loopback) &&
	    !within_rate(p, w->now_ms)) {
		moat__coap_limit(w, p, "request rate above the per-peer "
				       "limit; ignored");
		MOAT_STAT_ADD(w->b, coap_dropped, 1);
		return;
	}
	if (!ip_rate_ok(p, m, n))
		return;
	MOAT_STAT_ADD(w->b, coap_requests, 1);
	/* A duplicate (§4.5) gets the same response again, and nothing is
	 * done twice (a publish stays one publish). */
	struct coap_tx_params tp = COAP_TX_PARAMS_DEFAULT;
	struct moat_coap_cached *dup = recall(
		p, m->mid, w->now_ms,
		m->type == COAP_CON ? coap_exchange_lifetime_ms(&tp)
				    : coap_non_lifetime_ms(&tp));
	if (dup) {
		if (dup->resp)
			(void)moat__coap_sendto(p, dup->resp, dup->len);
		return;
	}
	check_echo(p, m);
	answer(p, m, n);
}

bool moat__coap_message(struct moat_coap_peer *p, const uint8_t *d, size_t n)
{
	struct coap_msg m;
	if (coap_parse(d, n, &m) != MOAT_OK) {
		if (n >= 4 && m.type == COAP_CON)
			send_raw(p->ep, p, NULL, 0, COAP_RST, m.mid);
		MOAT_STAT_ADD(p->ep->w->b, coap_dropped, 1);
		return true;
	}
	dispatch(p->ep, p, &m, n, &p->addr, p->alen);
	return true;
}

void moat__coap_datagram(struct moat_coap_ep *ep, const uint8_t *d, size_t n,
			 const union moat_sockaddr *a, socklen_t alen)
{
	struct moat_worker *w = ep->w;
	struct coap_msg m;
	MOAT_WSTAT_ADD(w, bytes_in[moat__coap_proto(ep)], n);
	if (ep->dtls) {
		moat__coap_dtls_datagram(ep, peer_find(ep, a), d, n, a, alen);
		return;
	}
	if (coap_parse(d, n, &m) != MOAT_OK) {
		/* A Confirmable message with a format error is rejected
		 * with RST (RFC 7252 §4.2); other ones are ignored. */
		if (n >= 4 && m.type == COAP_CON)
			send_raw(ep, NULL, a, alen, COAP_RST, m.mid);
		MOAT_STAT_ADD(w->b, coap_dropped, 1);
		return;
	}
	dispatch(ep, peer_find(ep, a), &m, n, a, alen);
}

void moat__coap_on_readable(struct moat_coap_ep *ep)
{
	struct moat_coap *c = ep->w->coap;
	/* A bounded number per event: the other sockets get their turn. */
	for (int i = 0; i < 64; i++) {
		union moat_sockaddr a;
		socklen_t alen = sizeof(a);
		ssize_t n = recvfrom(ep->fd, c->rbuf, MOAT_COAP_RX_MAX + 1,
				     MSG_TRUNC, &a.sa, &alen);
		if (n < 0)
			return; /* EAGAIN, or an ICMP error report */
		if ((size_t)n > MOAT_COAP_RX_MAX) {
			MOAT_STAT_ADD(ep->w->b, coap_dropped, 1);
			continue;
		}
		moat__coap_datagram(ep, c->rbuf, (size_t)n, &a, alen);
	}
}

/* ---- time ------------------------------------------------------------ */

static void peer_tick(struct moat_coap_peer *p, uint64_t now)
{
	struct moat_coap_pending *pd = &p->pend;
	if (pd->active && now >= pd->due_ms) {
		if (coap_retx_next(&pd->retx)) {
			pd->due_ms = now + pd->retx.timeout_ms;
			(void)moat__coap_sendto(p, pd->pkt, pd->len);
		} else {
			/* An observer that stops acknowledging is gone
			 * (RFC 7641 §4.5). */
			moat_info("coap peer %s: notification not "
				  "acknowledged; observations dropped",
				  p->name);
			pd->active = false;
			moat__coap_peer_drop_obs(p);
		}
	}
	if (p->rx && now - p->rx->last_ms > MOAT_COAP_REASM_IDLE_MS)
		moat__coap_rx_free(p);
	moat__coap_obs_tick(p, now);
}

void moat__coap_tick(struct moat_worker *w, uint64_t now)
{
	if (!w->coap)
		return;
	held_tick(w->coap, now);
	struct moat_coap_peer *next;
	for (struct moat_coap_peer *p = w->coap->peers; p; p = next) {
		next = p->next;
		if (p->ssl && !p->hs_done) {
			moat__coap_dtls_tick(p, now); /* may close p */
			continue;
		}
		moat__coap_dtls_tick(p, now);
		peer_tick(p, now);
		if (!p->nobs && !p->rx && !p->pend.active && !p->nsep &&
		    now - p->last_ms > MOAT_COAP_PEER_IDLE_MS)
			peer_free(p);
	}
}

void moat__coap_worker_free(struct moat_worker *w)
{
	struct moat_coap *c = w->coap;
	if (!c)
		return;
	while (c->held) {
		struct moat_coap_held *h = c->held;
		c->held = h->next;
		moat_free(h);
	}
	while (c->peers)
		peer_free(c->peers);
	for (size_t i = 0; i < c->neps; i++) {
		moat__coap_dtls_ep_free(&c->eps[i]);
		if (c->eps[i].fd >= 0)
			close(c->eps[i].fd);
	}
	moat_free(c->eps);
	moat_free(c->buckets);
	moat_free(c->rbuf);
	moat_free(c->dbuf);
	moat_free(c);
	w->coap = NULL;
}
