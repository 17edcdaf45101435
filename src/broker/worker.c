/* Worker threads: one epoll loop each, owning connections and the
 * sessions homed on it: accepting, the loop turn (events, inbox, output,
 * timers).  Routing and wills are in route.c, the inboxes in inbox.c,
 * the session table in session_table.c. */
#include <arpa/inet.h>
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <linux/sockios.h>
#include <sys/socket.h>
#include <unistd.h>

#include "broker_int.h"
#include "coap_int.h"
#include "codec/mqtt5.h"
#include "net/net_tls.h"
#include "net/net_ws.h"

#define MAX_EVENTS 256
#define ACCEPT_BURST 64
#define TICK_MS 500u

static void adopt(struct moat_worker *w, struct moat_conn *c)
{
	if (moat_conn_attach(w, c) != MOAT_OK) {
		char pb[MOAT_PEER_STRLEN], ib[MOAT_PEER_STRLEN];
		moat_warn("%s: cannot adopt connection: %s",
			  moat_conn_peer(c, pb), strerror(errno));
		if (c->ip_counted)
			moat_iptab_release(&w->b->iptab, moat_conn_ip(c, ib),
					   moat_now_ms());
		MOAT_STAT_SUB(w->b, connections, 1);
		moat_conn_free(c);
		return;
	}
	moat_conn_resume_input(c);
}

/* The auth threads' verdict on a held CONNECT: run it again. */
static void auth_done(struct moat_conn *c, bool ok)
{
	if (c->state == CONN_CLOSED) { /* gone meanwhile: may be freed now */
		c->auth_phase = AUTH_NONE;
		return;
	}
	c->auth_phase = AUTH_DONE;
	c->auth_ok = ok;
	moat_conn_resume_input(c);
}

static void drain_inbox(struct moat_worker *w)
{
	uint64_t v;
	/* Read the eventfd before taking the batch: a post that lands after
	 * the swap finds the inbox empty and wakes us again. */
	(void)!read(w->evfd, &v, sizeof(v));
	pthread_mutex_lock(&w->inbox_lock);
	struct moat_inbox_batch tmp = w->inbox;
	w->inbox = w->draining;
	w->draining = tmp;
	struct moat_admin_node *admin = w->admin;
	w->admin = NULL;
	pthread_mutex_unlock(&w->inbox_lock);
	/* The store may have woken us: output waiting for it can go. */
	moat__store_release(w);
	moat__admin_run(w, admin);
	for (size_t i = 0; i < w->draining.n; i++) {
		struct moat_inbox_item *it = &w->draining.v[i];
		if (it->kind == INBOX_ADOPT)
			adopt(w, it->conn);
		else if (it->kind == INBOX_AUTH)
			auth_done(it->conn, it->qos != 0);
		else if (it->kind >= INBOX_CLUSTER_MSG)
			moat__cluster_inbox(w, it);
		else
			moat_session_route(it->session, it->msg, it->qos,
					   it->share, it->did);
		moat__inbox_release(it);
	}
	w->draining.n = 0;
}

void moat_worker_mark_dirty(struct moat_worker *w, struct moat_conn *c)
{
	if (c->dirty)
		return;
	c->dirty = true;
	c->dirty_next = w->dirty;
	w->dirty = c;
}

static void flush_dirty(struct moat_worker *w)
{
	while (w->dirty) {
		struct moat_conn *c = w->dirty;
		w->dirty = c->dirty_next;
		c->dirty_next = NULL;
		c->dirty = false;
		if (c->state != CONN_CLOSED)
			moat_conn_flush(c);
		if (w->nwills)
			moat__worker_publish_wills(w);
	}
}

/* ---- window-starved subscribers ------------------------------------------
 * A subscriber whose messages wait for its in-flight window takes one
 * window's worth per loop turn if it is read once per turn -- and a turn
 * with hundreds of busy publishers is long: each delivered message would
 * cost O(publishers) events (issue 14).  So a few such connections are
 * read after every MOAT_STARVED_EVERY events or messages routed, whichever
 * comes first (under overload one read brings many messages); their
 * acknowledgements open the window and the next messages go out at once.  Reading a socket with
 * nothing in it costs one system call, so the list is short. */

void moat__worker_watch_starved(struct moat_worker *w, struct moat_conn *c)
{
	if (c->starved || w->nstarved == MOAT_STARVED_MAX)
		return;
	c->starved = true;
	w->starved[w->nstarved++] = c;
}

static void unwatch_starved(struct moat_worker *w, uint32_t i)
{
	w->starved[i]->starved = false;
	w->starved[i] = w->starved[--w->nstarved];
}

/* Read the starved connections (serve) or only drop those that are no
 * longer starved or closed (before closed connections are freed). */
static void visit_starved(struct moat_worker *w, bool serve)
{
	w->starved_events = w->starved_routed = 0;
	for (uint32_t i = 0; i < w->nstarved;) {
		struct moat_conn *c = w->starved[i];
		if (c->state != CONN_ACTIVE || !c->session ||
		    !moat_session_window_starved(c->session)) {
			unwatch_starved(w, i);
			continue;
		}
		if (serve && c->reading) {
			moat_conn_on_readable(c);
			if (c->state == CONN_ACTIVE && c->dirty)
				moat_conn_flush(c); /* the next ones go now */
		}
		i++;
	}
}

static void free_closed(struct moat_worker *w)
{
	struct moat_conn *keep = NULL;
	while (w->closed) {
		struct moat_conn *c = w->closed;
		w->closed = c->next;
		/* flush_dirty ran first and closed connections never get
		 * new output, so none is still on the dirty list. */
		assert(!c->dirty);
		if (c->auth_phase == AUTH_VERIFYING) {
			/* An auth thread will still post its verdict for c. */
			c->next = keep;
			keep = c;
			continue;
		}
		moat_conn_free(c);
	}
	w->closed = keep;
}

/* ---- accepting ------------------------------------------------------------ */

/* A refused connection is logged at most once a second per worker. */
static void refuse_log(struct moat_worker *w, const char *peer,
		       enum moat_refusal r, enum moat_limit_kind k,
		       const char *why)
{
	uint64_t now = moat_now_ms();
	moat__limit_hit(w, k);
	MOAT_WSTAT_ADD(w, refused[r], 1);
	if (now - w->limit_log_ms < 1000)
		return;
	w->limit_log_ms = now;
	const struct moat_log_field f[] = {
		MOAT_LF_STR("peer", peer),
		MOAT_LF_STR("detail", why),
	};
	moat_log_event(MOAT_LOG_NOTICE, "limit", f, MOAT_ARRAY_LEN(f),
		       "security: limit: connection from %s refused: %s (such "
		       "refusals are logged at most once a second)",
		       peer, why);
}

/* Per-address and memory limits at accept: MOAT_IP_OK, MOAT_IP_HELD (to
 * wait in w->held for an accept token) or a refusal. */
static enum moat_ip_verdict admit(struct moat_worker *w, const char *peer,
				  const char *ip, bool loopback)
{
	const struct moat_config *cfg = w->cfg;
	if (moat__memory_exhausted(w)) {
		refuse_log(w, peer, MOAT_REFUSE_MEMORY, MOAT_LIMIT_MEMORY,
			   "memory_limit reached");
		return MOAT_IP_TOO_MANY;
	}
	if (loopback && !cfg->limit_loopback)
		return MOAT_IP_OK; /* local tools are not throttled by default */
	/* Beyond the accept rate a connection waits for a token (within
	 * max_connections_per_ip) rather than being refused: a device
	 * behind a busy NAT address is delayed, not turned away. */
	enum moat_ip_verdict v =
		moat_iptab_admit(&w->b->iptab, ip, w->now_ms,
				 cfg->max_connections_per_ip,
				 cfg->max_accept_rate_per_ip,
				 cfg->max_connections_per_ip != 0);
	if (v == MOAT_IP_TOO_MANY)
		refuse_log(w, peer, MOAT_REFUSE_PER_IP,
			   MOAT_LIMIT_CONNS_PER_IP,
			   "max_connections_per_ip reached");
	else if (v == MOAT_IP_TOO_FAST)
		refuse_log(w, peer, MOAT_REFUSE_RATE, MOAT_LIMIT_ACCEPT_RATE,
			   "max_accept_rate_per_ip exceeded");
	return v;
}

/* Connections held for an accept token (w->held, oldest first, linked
 * through next/prev; not in the epoll set): on each tick the oldest that
 * get a token start, those past connect_timeout are closed. */
static void held_unlink(struct moat_worker *w, struct moat_conn *c)
{
	if (c->prev)
		c->prev->next = c->next;
	else
		w->held = c->next;
	if (c->next)
		c->next->prev = c->prev;
	else
		w->held_tail = c->prev;
	c->next = c->prev = NULL;
	w->nheld--;
}

static void held_append(struct moat_worker *w, struct moat_conn *c)
{
	c->next = NULL;
	c->prev = w->held_tail;
	if (w->held_tail)
		w->held_tail->next = c;
	else
		w->held = c;
	w->held_tail = c;
	w->nheld++;
}

/* Close a held connection already taken off the list. */
static void held_close(struct moat_worker *w, struct moat_conn *c,
		       const char *why)
{
	char pb[MOAT_PEER_STRLEN], ib[MOAT_PEER_STRLEN];
	moat_info("connection from %s closed: %s", moat_conn_peer(c, pb), why);
	moat_iptab_release(&w->b->iptab, moat_conn_ip(c, ib), w->now_ms);
	MOAT_STAT_SUB(w->b, connections, 1);
	moat_conn_free(c); /* closes the socket */
}

static void held_drop(struct moat_worker *w, struct moat_conn *c,
		      const char *why)
{
	held_unlink(w, c);
	held_close(w, c, why);
}

static void release_held(struct moat_worker *w, uint64_t now)
{
	const struct moat_config *cfg = w->cfg;
	struct moat_conn *next;
	for (struct moat_conn *c = w->held; c; c = next) {
		char ib[MOAT_PEER_STRLEN];
		next = c->next;
		if (now - c->created_ms > cfg->connect_timeout * 1000u) {
			held_drop(w, c, "no accept token within "
					"connect_timeout");
			continue;
		}
		if (!moat_iptab_take(&w->b->iptab, moat_conn_ip(c, ib), now,
				     cfg->max_accept_rate_per_ip))
			continue;
		held_unlink(w, c);
		if (moat_conn_attach(w, c) != MOAT_OK)
			held_close(w, c, "cannot watch the connection");
	}
}

void moat__worker_drop_held(struct moat_worker *w)
{
	while (w->held)
		held_drop(w, w->held, "broker shutting down");
}

/* The transport stack of a new connection: TCP (in c), then TLS and
 * WebSocket as its listener says. */
static int start_transport(struct moat_worker *w, struct moat_conn *c)
{
	SSL_CTX *ctx = w->sec->tls[c->listener];
	const struct moat_listener_cfg *lc = &w->cfg->listeners[c->listener];
	struct moat_net *top;
	if (ctx) {
		if (!(top = moat_net_tls_new(c->net, ctx, true)))
			return MOAT_ENOMEM;
		c->net = top;
	}
	if (lc->protocol == MOAT_PROTO_WEBSOCKETS) {
		struct moat_ws_policy pol = {lc->ws_path, lc->ws_origins};
		if (!(top = moat_net_ws_new(c->net, &pol,
					    w->cfg->max_packet_size)))
			return MOAT_ENOMEM;
		c->net = top;
	}
	return MOAT_OK;
}

/* Out of file descriptors: the pending connection would keep the
 * level-triggered listener firing.  Use the spare descriptor to accept it
 * and close it at once, and warn at most once a second. */
static void shed_connection(struct moat_worker *w, struct moat_listener *l,
			    int err)
{
	uint64_t now = moat_now_ms();
	/* Stop polling the listeners until the next tick: a level-triggered
	 * listener would otherwise wake us in a loop [while descriptors are
	 * short, other workers may take the one freed below]. */
	if (!w->listeners_paused) {
		w->listeners_paused = true;
		for (size_t i = 0; i < w->b->nlisteners; i++)
			epoll_ctl(w->epfd, EPOLL_CTL_DEL,
				  w->b->listeners[i].fd, NULL);
	}
	if (now - w->fd_warned_ms >= 1000u) {
		w->fd_warned_ms = now;
		moat_warn("accept on %s: %s; refusing connections until "
			  "descriptors are free (raise the open files limit, "
			  "or lower max_connections)",
			  l->name, strerror(err));
	}
	if (w->spare_fd >= 0) {
		close(w->spare_fd);
		int fd = accept(l->fd, NULL, NULL);
		if (fd >= 0) {
			close(fd);
			MOAT_WSTAT_ADD(w, refused[MOAT_REFUSE_NO_FD], 1);
		}
		w->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	}
}

static void accept_all(struct moat_worker *w, struct moat_listener *l)
{
	struct moat_broker *b = w->b;
	for (int i = 0; i < ACCEPT_BURST; i++) {
		union moat_sockaddr addr;
		socklen_t sl = sizeof(addr);
		int fd = accept4(l->fd, &addr.sa, &sl,
				 SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			int e = errno;
			if (e == EMFILE || e == ENFILE || e == ENOBUFS ||
			    e == ENOMEM)
				shed_connection(w, l, e);
			else if (e != EAGAIN && e != EWOULDBLOCK &&
				 e != EINTR && e != ECONNABORTED)
				moat_warn("accept on %s: %s", l->name,
					  strerror(e));
			return;
		}
		char peer[MOAT_PEER_STRLEN], ip[MOAT_PEER_STRLEN];
		bool loopback = moat__format_addr(&addr, peer, ip);
		/* Counted in the per-address table, to be released at close. */
		bool counted = (!loopback || w->cfg->limit_loopback) &&
			       (w->cfg->max_connections_per_ip ||
				w->cfg->max_accept_rate_per_ip);
		enum moat_ip_verdict v = admit(w, peer, ip, loopback);
		if (v != MOAT_IP_OK && v != MOAT_IP_HELD) {
			close(fd);
			continue;
		}
		if (MOAT_STAT_GET(b, connections) >= w->cfg->max_connections) {
			refuse_log(w, peer, MOAT_REFUSE_MAX_CONN,
				   MOAT_LIMIT_CONNECTIONS,
				   "max_connections reached");
			if (counted)
				moat_iptab_release(&b->iptab, ip, moat_now_ms());
			close(fd);
			continue;
		}
		int one = 1;
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		struct moat_conn *c = moat_conn_new(w, fd, &addr);
		if (c) {
			c->listener = l->idx;
			c->ip_counted = counted;
		}
		if (c && v == MOAT_IP_HELD &&
		    start_transport(w, c) == MOAT_OK) {
			held_append(w, c);
			MOAT_STAT_ADD(b, connections, 1);
			MOAT_WSTAT_ADD(w, accepted[moat__conn_proto(c)], 1);
			continue;
		}
		if (!c || v == MOAT_IP_HELD || start_transport(w, c) != MOAT_OK ||
		    moat_conn_attach(w, c) != MOAT_OK) {
			moat_warn("connection from %s refused: out of memory",
				  peer);
			MOAT_WSTAT_ADD(w, refused[MOAT_REFUSE_NO_MEMORY], 1);
			if (counted)
				moat_iptab_release(&b->iptab, ip, moat_now_ms());
			if (c)
				moat_conn_free(c); /* closes fd */
			else
				close(fd);
			continue;
		}
		MOAT_STAT_ADD(b, connections, 1);
		MOAT_WSTAT_ADD(w, accepted[moat__conn_proto(c)], 1);
		moat_debug("new connection from %s on %s", peer, l->name);
	}
}

/* ---- timers --------------------------------------------------------------- */

/* How long an offline session lives, in ms; UINT64_MAX = forever. */
static uint64_t session_lifetime_ms(const struct moat_worker *w,
				    const struct moat_session *s)
{
	uint64_t cap = w->cfg->persistent_client_expiration;
	uint64_t life = s->expiry_s == MOAT_EXPIRY_NEVER ? UINT64_MAX
							 : s->expiry_s;
	if (cap && cap < life)
		life = cap;
	return life == UINT64_MAX ? UINT64_MAX : life * 1000u;
}

/* Session Expiry Interval / persistent_client_expiration, and delayed
 * wills [MQTT-3.1.3-9]. */
static void expire_sessions(struct moat_worker *w, uint64_t now)
{
	/* Collect first: ending one session can end another (shared
	 * redelivery overflowing a clean session's connection). */
	struct moat_session *expired[256];
	size_t n = 0;
	/* The same walk refreshes the queue gauges of the metrics. */
	uint64_t queued = 0, qbytes = 0, inflight = 0;
	for (size_t i = 0; i < w->nbuckets; i++) {
		for (struct moat_session *s = w->sessions[i]; s; s = s->hnext) {
			queued += s->qlen;
			qbytes += s->queued_bytes;
			inflight += s->ninflight;
			if (!s->conn && s->will && now >= s->will_at_ms)
				moat_session_fire_will(s);
			uint64_t life = session_lifetime_ms(w, s);
			if (!s->conn && life != UINT64_MAX &&
			    now - s->offline_since_ms >= life &&
			    n < MOAT_ARRAY_LEN(expired)) {
				moat_session_ref(s);
				expired[n++] = s;
			}
		}
	}
	atomic_store_explicit(&w->st.queued, queued, memory_order_relaxed);
	atomic_store_explicit(&w->st.queued_bytes, qbytes,
			      memory_order_relaxed);
	atomic_store_explicit(&w->st.inflight, inflight, memory_order_relaxed);
	/* At most 256 a second per worker; the rest go next second. */
	for (size_t i = 0; i < n; i++) {
		if (!expired[i]->dead) {
			char id[MOAT_LOG_ID_LEN];
			moat_info("client %s: session expired",
				  moat_session_log_id(expired[i], id));
			moat_session_destroy(expired[i]);
		}
		moat_session_unref(&expired[i]);
	}
}

/* Does the peer take what we send?  Progress is the kernel accepting
 * bytes from us, or its send queue shrinking (the peer acknowledged
 * bytes; EPOLLOUT may not have fired yet).  Our own appends are not
 * progress; nothing waiting to go out is. */
static bool write_stalled(struct moat_conn *c, uint64_t now)
{
	uint64_t written = moat_net_wire_sent(c->net);
	/* The kernel's send queue grows only by our writes: when all that
	 * was written had been acknowledged at the last tick and nothing
	 * was written since, it is still empty (an idle connection costs
	 * no system call). */
	int outq = 0;
	if (written != c->last_acked && ioctl(c->fd, SIOCOUTQ, &outq) != 0)
		outq = 0;
	/* Output held for the store waits on us, not on the peer. */
	bool waiting = moat__store_writable(c, moat_buf_used(&c->out)) ||
		       outq > 0 || (!c->reading && !moat__store_gated(c)) ||
		       (c->session && c->session->qlen && !moat__store_gated(c));
	/* Progress is what the peer acknowledged: bytes written to the
	 * socket minus what still sits unacknowledged in the kernel.  The
	 * kernel taking a PINGRESP into a send queue the peer never drains
	 * is not progress. */
	uint64_t acked = written > (uint64_t)outq ? written - (uint64_t)outq
						  : 0;
	if (!waiting || acked > c->last_acked)
		c->last_tx_ms = now;
	c->last_acked = acked;
	return now - c->last_tx_ms > (uint64_t)c->keepalive * 1500u;
}

/* Out of descriptors: stop polling the listeners until the next tick,
 * and make sure the spare descriptor exists again. */
static void resume_listeners(struct moat_worker *w)
{
	if (w->spare_fd < 0)
		w->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (!w->listeners_paused)
		return;
	w->listeners_paused = false;
	for (size_t i = 0; i < w->b->nlisteners; i++) {
		struct epoll_event ev = {.events = EPOLLIN | EPOLLEXCLUSIVE,
					 .data.ptr = &w->b->listeners[i]};
		epoll_ctl(w->epfd, EPOLL_CTL_ADD, w->b->listeners[i].fd, &ev);
	}
}

static void tick(struct moat_worker *w, uint64_t now)
{
	const struct moat_config *cfg = w->cfg;
	struct moat_conn *next;
	resume_listeners(w);
	moat__linger_tick(w, now);
	moat__coap_tick(w, now);
	release_held(w, now);
	if (w->b->cluster) /* cluster_fwd.c: nothing to do without w->cw */
		moat__cluster_tick(w, now);
	for (struct moat_conn *c = w->conns; c; c = next) {
		next = c->next;
		if (c->state == CONN_NEW && c->auth_phase == AUTH_VERIFYING)
			continue; /* the auth threads have it */
		if (c->state == CONN_NEW && c->auth_wait_until) {
			/* Held by login back-off: try its CONNECT again. */
			if (now >= c->auth_wait_until)
				moat_conn_resume_input(c);
			continue;
		}
		if (c->state == CONN_NEW &&
		    now - c->created_ms > cfg->connect_timeout * 1000u) {
			moat_conn_close(c, "no CONNECT within connect_timeout");
			continue;
		}
		if (c->state != CONN_ACTIVE)
			continue;
		moat_conn_trim(c);
		if (write_stalled(c, now)) {
			/* A peer that takes nothing for 1.5 keep-alives while
			 * messages wait is gone or hostile, pings or not. */
			moat_conn_disconnect(c, RC_QUOTA_EXCEEDED,
					     "client stopped reading (no write "
					     "progress for 1.5 x keep-alive)");
		} else if (!c->reading) {
			/* Paused by back-pressure: its packets wait unread
			 * because of us, so its silence proves nothing. */
			c->last_rx_ms = now;
		} else if (c->keepalive &&
			   now - c->last_rx_ms >
				   (uint64_t)c->keepalive * 1500u) {
			/* [MQTT-3.1.2-24]: one and a half keep-alives */
			moat_conn_disconnect(c, RC_KEEPALIVE_TIMEOUT,
					     "keep-alive timeout");
		}
	}
	if (now >= w->next_expiry_ms) {
		w->next_expiry_ms = now + 1000u;
		expire_sessions(w, now);
		if (w->idx == 0)
			(void)moat_tree_expire_retained(&w->b->tree, now);
		moat__security_log_flush(w);
		moat__leak_log_flush(w);
	}
	if (w->idx == 0 && cfg->sys_interval && now >= w->next_sys_ms) {
		w->next_sys_ms = now + cfg->sys_interval * 1000u;
		moat__sys_publish(w);
	}
	if (w->idx == 0 && w->b->http)
		moat__events_tick(w->b, now);
}

static void handle_event(struct moat_worker *w, struct epoll_event *ev)
{
	uint8_t kind = *(uint8_t *)ev->data.ptr;
	if (kind == EV_INBOX) {
		drain_inbox(w);
	} else if (kind == EV_LISTENER) {
		accept_all(w, ev->data.ptr);
	} else if (kind == EV_LINGER) {
		moat__linger_event(ev->data.ptr, ev->events);
	} else if (kind == EV_COAP) {
		moat__coap_on_readable(ev->data.ptr);
	} else {
		struct moat_conn *c = ev->data.ptr;
		bool rd = ev->events & (EPOLLIN | EPOLLHUP | EPOLLERR);
		/* A TLS read that waited for the socket to be writable is
		 * retried (moat_conn_on_readable clears the flag). */
		if ((ev->events & EPOLLOUT) && c->state != CONN_CLOSED &&
		    (moat_net_wants(c->net) & MOAT_NET_READ_WANTS_WRITE))
			rd = true;
		if (c->state != CONN_CLOSED && (ev->events & EPOLLOUT))
			moat_conn_on_writable(c);
		/* Reading comes last: a CONNECT may hand c over to another
		 * worker, after which this thread must not touch it. */
		if (c->state != CONN_CLOSED && rd)
			moat_conn_on_readable(c);
	}
}

void *moat_worker_main(void *arg)
{
	struct moat_worker *w = arg;
	struct epoll_event evs[MAX_EVENTS];
	w->now_ms = moat_now_ms();
	w->next_tick_ms = w->now_ms + TICK_MS;
	w->next_sys_ms = w->now_ms;
	while (!atomic_load(&w->b->stopping)) {
		/* (now_ms is the start of the previous turn: the tick may
		 * come that turn's length late.) */
		int timeout = w->now_ms >= w->next_tick_ms
				      ? 0
				      : (int)(w->next_tick_ms - w->now_ms);
		int n = epoll_wait(w->epfd, evs, MAX_EVENTS, timeout);
		/* The one clock reading of this turn (and, for the loop time
		 * histogram, one more at its end). */
		uint64_t t0 = moat_now_ns();
		uint64_t now = w->now_ms = t0 / 1000000u;
		atomic_store_explicit(&w->turn_ms, now, memory_order_relaxed);
		moat__worker_sync_security(w);
		if (n < 0 && errno != EINTR) {
			moat_err_log("worker %u: epoll_wait: %s", w->idx,
				     strerror(errno));
			break;
		}
		for (int i = 0; i < n; i++) {
			/* A connection closed earlier in this batch is still
			 * allocated (freed below), so its events are safe to
			 * look at; handle_event skips closed ones. */
			handle_event(w, &evs[i]);
			if (w->nstarved &&
			    (++w->starved_events >= MOAT_STARVED_EVERY ||
			     w->starved_routed >= MOAT_STARVED_EVERY))
				visit_starved(w, true);
		}
		moat__worker_publish_wills(w);
		flush_dirty(w);
		if (now >= w->next_tick_ms) {
			w->next_tick_ms = now + TICK_MS;
			tick(w, now);
			moat__worker_publish_wills(w);
			flush_dirty(w);
		}
		/* What this turn recorded goes to the store in one batch. */
		moat__store_flush(w);
		visit_starved(w, false);
		free_closed(w);
		if (n > 0)
			moat_histo_observe(&w->st.loop, moat_now_ns() - t0);
	}
	return NULL;
}
