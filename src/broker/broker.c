/* Broker lifetime: listeners, workers, start, stop, teardown. */
#include <errno.h>
#include <string.h>
#include <sys/epoll.h>
#include <fcntl.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <unistd.h>

#include "broker_int.h"
#include "cluster/cluster_state.h"
#include "coap_int.h"
#include "codec/mqtt5.h"
#include "net/net_socket.h"

static int open_listeners(struct moat_broker *b)
{
	const struct moat_config *cfg = &b->cfg;
	b->listeners = moat_calloc(cfg->nlisteners, sizeof(*b->listeners));
	if (!b->listeners)
		return MOAT_ENOMEM;
	for (size_t i = 0; i < cfg->nlisteners; i++) {
		const struct moat_listener_cfg *lc = &cfg->listeners[i];
		struct moat_listener *l = &b->listeners[b->nlisteners];
		char err[160];
		if (lc->protocol == MOAT_PROTO_HTTP)
			continue; /* http.c binds its own */
		if (moat_listener_coap(lc))
			continue; /* UDP, one socket per worker (coap_srv.c) */
		uint16_t port;
		l->ev_kind = EV_LISTENER;
		l->idx = i;
		l->loopback = moat_cfg_addr_is_loopback(lc->addr);
		l->fd = moat_net_listen(lc->addr, lc->port, &port, err,
					sizeof(err));
		if (l->fd < 0) {
			moat_err_log("listener %zu: %s", i + 1, err);
			return MOAT_EIO;
		}
		b->nlisteners++;
		bool v6 = strchr(lc->addr, ':') != NULL || !lc->addr[0];
		bool ws = lc->protocol == MOAT_PROTO_WEBSOCKETS;
		snprintf(l->name, sizeof(l->name), "%s%s%s:%u%s%s%s%s",
			 v6 ? "[" : "", lc->addr[0] ? lc->addr : "::",
			 v6 ? "]" : "", (unsigned)port,
			 ws || moat_listener_tls(lc) ? " (" : "",
			 ws ? "WebSocket" : "",
			 ws && moat_listener_tls(lc) ? ", " : "",
			 moat_listener_tls(lc) ? "TLS)" : ws ? ")" : "");
	}
	return MOAT_OK;
}

/* Raise the open-files limit as far as allowed and keep max_connections
 * below it, so that running out of descriptors is not how the limit is
 * found. */
static void fit_connections_to_fd_limit(struct moat_config *cfg, bool quiet)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
		return;
	if (rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		(void)setrlimit(RLIMIT_NOFILE, &rl);
		(void)getrlimit(RLIMIT_NOFILE, &rl);
	}
	const uint64_t reserve = 64; /* listeners, epoll, logs, spares */
	if (rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur <= reserve)
		return;
	uint64_t room = (uint64_t)rl.rlim_cur - reserve;
	if (cfg->max_connections > room) {
		if (!quiet)
			moat_notice("max_connections %llu is above what the "
				    "open files limit (%llu) allows; using %llu",
				    (unsigned long long)cfg->max_connections,
				    (unsigned long long)rl.rlim_cur,
				    (unsigned long long)room);
		cfg->max_connections = room;
	}
}

static int init_worker(struct moat_broker *b, unsigned idx)
{
	struct moat_worker *w = &b->workers[idx];
	w->ev_kind = EV_INBOX;
	w->b = b;
	w->idx = idx;
	w->epfd = -1;
	w->evfd = -1;
	w->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	moat_buf_init(&w->rbuf, MOAT_READ_CHUNK);
	w->now_ms = moat_now_ms();
	w->sec = moat_security_ref(b->sec);
	w->cfg = &w->sec->cfg;
	w->sec_gen = atomic_load(&b->sec_gen);
	if (pthread_mutex_init(&w->inbox_lock, NULL) != 0)
		return MOAT_ENOMEM;
	w->outbox = moat_calloc(b->nworkers, sizeof(*w->outbox));
	if (!w->outbox)
		return MOAT_ENOMEM;
	w->epfd = epoll_create1(EPOLL_CLOEXEC);
	w->evfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (w->epfd < 0 || w->evfd < 0)
		return MOAT_EIO;
	struct epoll_event ev = {.events = EPOLLIN, .data.ptr = w};
	if (epoll_ctl(w->epfd, EPOLL_CTL_ADD, w->evfd, &ev) != 0)
		return MOAT_EIO;
	for (size_t i = 0; i < b->nlisteners; i++) {
		/* Every worker waits on every listener; EPOLLEXCLUSIVE wakes
		 * one of them per connection. */
		struct epoll_event lev = {.events = EPOLLIN | EPOLLEXCLUSIVE,
					  .data.ptr = &b->listeners[i]};
		if (epoll_ctl(w->epfd, EPOLL_CTL_ADD, b->listeners[i].fd,
			      &lev) != 0)
			return MOAT_EIO;
	}
	return MOAT_OK;
}

int moat_broker_new(const struct moat_config *cfg, struct moat_broker **out)
{
	return moat_broker_new_hook(cfg, NULL, NULL, out);
}

int moat_broker_new_hook(const struct moat_config *cfg,
			 int (*before_store)(void *arg), void *arg,
			 struct moat_broker **out)
{
	int rc;
	struct moat_broker *b = moat_calloc(1, sizeof(*b));
	*out = NULL;
	if (!b)
		return MOAT_ENOMEM;
	b->cfg = *cfg;
	b->nworkers = cfg->workers;
	if (!b->nworkers) {
		long n = sysconf(_SC_NPROCESSORS_ONLN);
		b->nworkers = n > 0 && n <= 256 ? (unsigned)n : 1;
	}
	b->start_ms = moat_now_ms();
	b->memory_auto = moat__memory_auto();
	fit_connections_to_fd_limit(&b->cfg, false);
	if (pthread_mutex_init(&b->sec_lock, NULL) != 0 ||
	    moat_guard_init(&b->guard, 8192) != MOAT_OK ||
	    moat_iptab_init(&b->iptab, 4096) != MOAT_OK ||
	    moat_iptab_init(&b->usertab, 4096) != MOAT_OK ||
	    moat_iptab_init(&b->coaptab, 4096) != MOAT_OK) {
		rc = MOAT_ENOMEM;
		goto fail;
	}
	char err[800];
	if ((rc = moat_security_new(&b->cfg, &b->sec, err, sizeof(err)))) {
		moat_err_log("%s", err);
		goto fail;
	}
	if ((rc = moat_tree_init(&b->tree)) != MOAT_OK)
		goto fail;
	/* Before the store restores subscriptions: they are interest. */
	if ((rc = moat_cluster_new(b, err, sizeof(err))) != MOAT_OK) {
		moat_err_log("%s", err);
		goto fail;
	}
	b->tree.max_retained = (size_t)cfg->max_retained_messages;
	b->tree.max_retained_bytes = (size_t)cfg->max_retained_bytes;
	if ((rc = open_listeners(b)) != MOAT_OK ||
	    (rc = moat__http_bind(b)) != MOAT_OK)
		goto fail;
	b->workers = moat_calloc(b->nworkers, sizeof(*b->workers));
	if (!b->workers) {
		rc = MOAT_ENOMEM;
		goto fail;
	}
	for (unsigned i = 0; i < b->nworkers; i++) {
		if ((rc = init_worker(b, i)) != MOAT_OK) {
			moat_err_log("worker %u: cannot initialise: %s", i,
				     strerror(errno));
			goto fail;
		}
	}
	if ((rc = moat__coap_open(b, err, sizeof(err))) != MOAT_OK) {
		moat_err_log("CoAP listener: %s", err);
		goto fail;
	}
	/* The bridges' certificates and keys are files too. */
	if ((rc = moat__bridges_start(b, err, sizeof(err))) != MOAT_OK) {
		moat_err_log("%s", err);
		goto fail;
	}
	/* moatd drops root here: listeners bound, files loaded; the
	 * database belongs to the user it runs as. */
	if (before_store && (rc = before_store(arg)) != MOAT_OK)
		goto fail;
	/* Restored into the workers' tables and the tree, before any
	 * thread runs. */
	if ((rc = moat_store_open(b, err, sizeof(err))) != MOAT_OK) {
		moat_err_log("%s", err);
		goto fail;
	}
	/* After the restore: the bridges' local subscriptions take the
	 * retained messages they match. */
	if ((rc = moat__bridges_subscribe(b, err, sizeof(err))) != MOAT_OK) {
		moat_err_log("%s", err);
		goto fail;
	}
	for (size_t i = 0; i < b->nlisteners; i++)
		moat_notice("listening on %s", b->listeners[i].name);
	moat__coap_log_listeners(b);
	*out = b;
	return MOAT_OK;
fail:
	moat_broker_free(b);
	return rc;
}

int moat_broker_start(struct moat_broker *b)
{
	/* Password checks get their own threads: half the workers, at
	 * least one. */
	unsigned nauth = b->nworkers / 2 ? b->nworkers / 2 : 1;
	if (moat_authq_start(&b->authq, nauth) != MOAT_OK) {
		moat_err_log("cannot start the password-check threads");
		moat_authq_stop(&b->authq);
		return MOAT_EIO;
	}
	if (moat_store_start(b) != MOAT_OK) {
		moat_authq_stop(&b->authq);
		return MOAT_EIO;
	}
	/* What the store restored was published before the current leak
	 * policies: scanned before any client is served (worker 0's state,
	 * from this thread: the workers do not run yet). */
	b->workers[0].now_ms = moat_now_ms();
	moat__leak_route_held(&b->workers[0]); /* of the queues' sweep */
	moat__leak_sweep_retained(&b->workers[0]);
	moat__store_flush(&b->workers[0]);
	/* Cluster mode: connected (or connecting) before the workers run,
	 * which then only read what it set up; what NATS brings meanwhile
	 * waits in their inboxes. */
	if (moat_cluster_start(b) != MOAT_OK ||
	    moat_cluster_state_start(b) != MOAT_OK) {
		moat_authq_stop(&b->authq);
		return MOAT_EIO; /* logged; moat_broker_free stops the rest */
	}
	for (unsigned i = 0; i < b->nworkers; i++) {
		atomic_store(&b->workers[i].turn_ms, moat_now_ms());
		int e = pthread_create(&b->workers[i].thread, NULL,
				       moat_worker_main, &b->workers[i]);
		if (e) {
			moat_err_log("cannot start worker %u: %s", i,
				     strerror(e));
			moat_broker_stop(b);
			for (unsigned k = 0; k < i; k++)
				pthread_join(b->workers[k].thread, NULL);
			return MOAT_EIO;
		}
	}
	b->started = true;
	if (moat__http_start(b) != MOAT_OK)
		return MOAT_EIO; /* logged; moat_broker_free stops the rest */
	moat_notice("moat %s running with %u worker thread%s", MOAT_VERSION,
		    b->nworkers, b->nworkers == 1 ? "" : "s");
	return MOAT_OK;
}

int moat_broker_stalled(struct moat_broker *b, uint64_t max_ms)
{
	uint64_t now = moat_now_ms();
	for (unsigned i = 0; i < b->nworkers; i++) {
		uint64_t t = atomic_load_explicit(&b->workers[i].turn_ms,
						  memory_order_relaxed);
		/* A loop turn is at most TICK_MS plus its work. */
		if (t && now > t && now - t > max_ms)
			return (int)i;
	}
	return -1;
}

void moat_broker_stop(struct moat_broker *b)
{
	atomic_store(&b->stopping, true);
	for (unsigned i = 0; i < b->nworkers; i++) {
		uint64_t one = 1;
		if (b->workers[i].evfd >= 0)
			(void)!write(b->workers[i].evfd, &one, sizeof(one));
	}
}

static void release_batch(struct moat_inbox_batch *bt)
{
	for (size_t i = 0; i < bt->n; i++) {
		struct moat_inbox_item *it = &bt->v[i];
		if (it->kind == INBOX_ADOPT) {
			moat_conn_free(it->conn); /* closes the socket */
		}
		moat_msg_unref(&it->msg);
		moat_session_unref(&it->session);
	}
	MOAT_FREE(bt->v);
	bt->n = bt->cap = 0;
}

/* Single-threaded teardown after the workers have stopped. */
static void teardown_worker(struct moat_worker *w)
{
	moat__coap_worker_free(w);
	while (w->conns) {
		w->conns->will_discard = true; /* shutdown is not a failure */
		moat_conn_disconnect(w->conns, RC_SERVER_SHUTTING_DOWN,
				     "broker shutting down");
	}
	while (w->closed) {
		struct moat_conn *c = w->closed;
		w->closed = c->next;
		moat_conn_free(c);
	}
	moat__linger_teardown(w);
	moat__worker_drop_held(w);
	for (size_t i = 0; i < w->nbuckets; i++)
		while (w->sessions[i])
			moat_session_destroy(w->sessions[i]);
	for (size_t i = 0; i < w->nwills; i++)
		moat_msg_unref(&w->wills[i]);
	MOAT_FREE(w->wills);
	MOAT_FREE(w->sessions);
}

void moat_broker_free(struct moat_broker *b)
{
	if (!b)
		return;
	/* First: scrapes read the workers' state. */
	moat__http_stop(b);
	if (b->started) {
		moat_broker_stop(b);
		for (unsigned i = 0; i < b->nworkers; i++)
			pthread_join(b->workers[i].thread, NULL);
	}
	/* No NATS callback posts to an inbox after this. */
	moat_cluster_state_stop(b);
	moat_cluster_stop(b);
	/* Before the workers' state goes: queued checks refer to
	 * connections. */
	moat_authq_stop(&b->authq);
	for (unsigned i = 0; b->workers && i < b->nworkers; i++) {
		release_batch(&b->workers[i].inbox);
		release_batch(&b->workers[i].draining);
		moat__admin_cancel(&b->workers[i]);
	}
	/* Sessions end here without leaving the store: they are restored
	 * at the next start. */
	b->shutting_down = true;
	moat__bridges_free(b); /* their connections close with the rest */
	for (unsigned i = 0; b->workers && i < b->nworkers; i++)
		if (b->workers[i].b)
			teardown_worker(&b->workers[i]);
	moat_store_close(b);
	for (unsigned i = 0; b->workers && i < b->nworkers; i++)
		moat__cluster_worker_free(&b->workers[i]);
	moat_cluster_free(b);
	for (unsigned i = 0; b->workers && i < b->nworkers; i++) {
		struct moat_worker *w = &b->workers[i];
		if (!w->b)
			continue;
		release_batch(&w->inbox);
		for (unsigned k = 0; k < b->nworkers && w->outbox; k++)
			release_batch(&w->outbox[k]);
		moat_free(w->outbox);
		moat_free(w->matches.v);
		moat_buf_cleanup(&w->rbuf);
		if (w->epfd >= 0)
			close(w->epfd);
		if (w->evfd >= 0)
			close(w->evfd);
		if (w->spare_fd >= 0)
			close(w->spare_fd);
		moat__leak_worker_free(w);
		moat_security_unref(&w->sec);
		pthread_mutex_destroy(&w->inbox_lock);
	}
	moat_free(b->workers);
	for (size_t i = 0; i < b->nlisteners; i++)
		close(b->listeners[i].fd);
	moat_free(b->listeners);
	moat__http_free(b);
	moat_tree_cleanup(&b->tree);
	moat_security_unref(&b->sec);
	moat_guard_cleanup(&b->guard);
	moat_iptab_cleanup(&b->iptab);
	moat_iptab_cleanup(&b->usertab);
	moat_iptab_cleanup(&b->coaptab);
	pthread_mutex_destroy(&b->sec_lock);
	moat_free(b);
}

void moat_broker_set_check(struct moat_broker *b, moat_check_fn fn)
{
	b->check = fn;
}

int moat_broker_check_files(const struct moat_config *cfg, char *err,
			    size_t errsz)
{
	struct moat_security *s;
	int rc = moat_security_new(cfg, &s, err, errsz);
	if (rc == MOAT_OK)
		moat_security_unref(&s);
	return rc ? rc : moat__bridges_check(cfg, err, errsz);
}

/* Settings that size per-connection or per-session structures, or the
 * set of sockets and threads: they keep their start-up values. */
static void keep_restart_only(const struct moat_config *old,
			      struct moat_config *cfg)
{
#define KEEP(f)                                                               \
	do {                                                                  \
		if (cfg->f != old->f)                                         \
			moat_warn("reload: " #f " changed; it takes effect "  \
				  "at the next restart");                     \
		cfg->f = old->f;                                              \
	} while (0)
	KEEP(workers);
	KEEP(max_packet_size);
	KEEP(max_inflight_messages);
	KEEP(output_buffer_size);
	KEEP(topic_alias_maximum);
	KEEP(mqtt5);
	KEEP(max_connections);
	KEEP(persistence);
	KEEP(persistence_sync);
	if (strcmp(cfg->user, old->user))
		moat_warn("reload: user changed; it takes effect at the next "
			  "restart");
	memcpy(cfg->user, old->user, sizeof(cfg->user));
	if (cfg->nbridges != old->nbridges ||
	    memcmp(cfg->bridges, old->bridges, sizeof(cfg->bridges)))
		moat_warn("reload: the bridges (connection sections) changed; "
			  "that takes effect at the next restart");
	cfg->nbridges = old->nbridges;
	memcpy(cfg->bridges, old->bridges, sizeof(cfg->bridges));
	/* Cluster mode: the NATS connection is made once (b->cfg). */
	if (strcmp(cfg->cluster_nats_url, old->cluster_nats_url) ||
	    strcmp(cfg->cluster_node_id, old->cluster_node_id))
		moat_warn("reload: cluster_nats_url or cluster_node_id "
			  "changed; it takes effect at the next restart");
	KEEP(cluster_max_pending);
	if (strcmp(cfg->persistence_location, old->persistence_location)) {
		moat_warn("reload: persistence_location changed; it takes "
			  "effect at the next restart");
		memcpy(cfg->persistence_location, old->persistence_location,
		       sizeof(cfg->persistence_location));
	}
#undef KEEP
}

int moat_broker_reload(struct moat_broker *b, const struct moat_config *in,
		       char *err, size_t errsz)
{
	struct moat_config *cfg = moat_malloc(sizeof(*cfg));
	if (!cfg) {
		snprintf(err, errsz, "out of memory");
		return MOAT_ENOMEM;
	}
	*cfg = *in;
	int rc = MOAT_OK;
	/* Listeners are sockets shared by every worker: not swapped live. */
	bool same = cfg->nlisteners == b->cfg.nlisteners;
	for (size_t i = 0; same && i < cfg->nlisteners; i++)
		same = cfg->listeners[i].port == b->cfg.listeners[i].port &&
		       cfg->listeners[i].protocol ==
			       b->cfg.listeners[i].protocol &&
		       !strcmp(cfg->listeners[i].addr, b->cfg.listeners[i].addr);
	if (!same) {
		snprintf(err, errsz, "the listeners changed; restart moatd to "
				     "apply that");
		rc = MOAT_EINVAL;
		goto out;
	}
	/* Compared with what start-up made of the file, not the file. */
	fit_connections_to_fd_limit(cfg, true);
	keep_restart_only(&b->cfg, cfg);
	struct moat_security *sec;
	if ((rc = moat_security_new(cfg, &sec, err, errsz)) != MOAT_OK)
		goto out;
	pthread_rwlock_wrlock(&b->tree.lock);
	b->tree.max_retained = (size_t)cfg->max_retained_messages;
	b->tree.max_retained_bytes = (size_t)cfg->max_retained_bytes;
	pthread_rwlock_unlock(&b->tree.lock);
	pthread_mutex_lock(&b->sec_lock);
	struct moat_security *old = b->sec;
	b->sec = sec;
	atomic_fetch_add_explicit(&b->sec_gen, 1, memory_order_release);
	pthread_mutex_unlock(&b->sec_lock);
	moat_security_unref(&old);
	moat_log_set_level(cfg->log_level);
	/* Wake every worker so that it takes the new state up now. */
	for (unsigned i = 0; i < b->nworkers; i++) {
		uint64_t one = 1;
		(void)!write(b->workers[i].evfd, &one, sizeof(one));
	}
out:
	moat_free(cfg);
	return rc;
}
