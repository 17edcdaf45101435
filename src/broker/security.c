/* Security state (reloadable), authentication, ACL checks, the security
 * event log and the memory budget.  See docs/security.md. */
#include <arpa/inet.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "auth/acl.h"
#include "auth/passwd.h"
#include "net/ossl_mem.h"
#include "auth/pskfile.h"
#include "broker_int.h"
#include "codec/mqtt5.h"
#include "coap_int.h"
#include "net/tls.h"

/* Security log lines per connection before it is only counted. */
#define SEC_EVENTS_LOGGED 10

/* ---- the reloadable state ------------------------------------------------- */

struct moat_security *moat_security_ref(struct moat_security *s)
{
	atomic_fetch_add(&s->refs, 1);
	return s;
}

void moat_security_unref(struct moat_security **sp)
{
	struct moat_security *s = *sp;
	*sp = NULL;
	if (!s || atomic_fetch_sub(&s->refs, 1) != 1)
		return;
	moat_pwfile_free(s->pw);
	moat_pskfile_free(s->psk);
	moat_acl_free(s->acl);
	for (size_t i = 0; i < MOAT_CFG_MAX_LISTENERS; i++)
		SSL_CTX_free(s->tls[i]);
	moat__leak_cleanup(s);
	moat_free(s);
}

int moat_security_new(const struct moat_config *cfg,
		      struct moat_security **out, char *err, size_t errsz)
{
	struct moat_security *s = moat_calloc(1, sizeof(*s));
	*out = NULL;
	if (!s) {
		snprintf(err, errsz, "out of memory");
		return MOAT_ENOMEM;
	}
	atomic_init(&s->refs, 1);
	s->cfg = *cfg;
	int rc = MOAT_OK;
	char e[700] = "";
	if (cfg->password_file[0] &&
	    (rc = moat_pwfile_load(cfg->password_file, &s->pw, e, sizeof(e)))) {
		snprintf(err, errsz, "password_file %s", e);
		goto fail;
	}
	if (cfg->acl_file[0] &&
	    (rc = moat_acl_load(cfg->acl_file, &s->acl, e, sizeof(e)))) {
		snprintf(err, errsz, "acl_file %s", e);
		goto fail;
	}
	if (cfg->psk_file[0] &&
	    (rc = moat_pskfile_load(cfg->psk_file, &s->psk, e, sizeof(e)))) {
		snprintf(err, errsz, "psk_file %s", e);
		goto fail;
	}
	for (size_t i = 0; i < cfg->nlisteners; i++) {
		const struct moat_listener_cfg *lc = &cfg->listeners[i];
		bool dtls = lc->protocol == MOAT_PROTO_COAPS;
		if (!moat_listener_tls(lc) && !dtls)
			continue;
		e[0] = '\0';
		s->tls[i] = dtls ? moat__coap_dtls_ctx(s, lc, e, sizeof(e))
			       : moat_tls_server_ctx(lc, e, sizeof(e));
		if (!s->tls[i]) {
			snprintf(err, errsz, "listener %u: %s",
				 (unsigned)lc->port, e);
			rc = MOAT_ETLS;
			goto fail;
		}
	}
	e[0] = '\0';
	if ((rc = moat__leak_setup(s, e, sizeof(e)))) {
		snprintf(err, errsz, "%s", e);
		goto fail;
	}
	*out = s;
	return MOAT_OK;
fail:
	moat_security_unref(&s);
	return rc ? rc : MOAT_EINVAL;
}

/* After a reload: a user no longer in the password file loses its
 * connections now (a changed password applies at the next login). */
static void drop_removed_users(struct moat_worker *w)
{
	struct moat_conn *next;
	for (struct moat_conn *c = w->conns; c; c = next) {
		next = c->next;
		if (c->state != CONN_ACTIVE || !c->authenticated ||
		    c->auth_by_cert)
			continue;
		if (w->sec->pw && moat_pwfile_has_user(w->sec->pw, c->username,
							strlen(c->username)))
			continue;
		moat__security_event(c, "auth revoked",
				     "user no longer in the password file");
		moat_conn_disconnect(c, RC_NOT_AUTHORIZED,
				     "user removed from the password file");
	}
}

void moat__worker_sync_security(struct moat_worker *w)
{
	struct moat_broker *b = w->b;
	uint64_t gen = atomic_load_explicit(&b->sec_gen, memory_order_acquire);
	if (gen == w->sec_gen)
		return;
	pthread_mutex_lock(&b->sec_lock);
	struct moat_security *old = w->sec;
	w->sec = moat_security_ref(b->sec);
	w->sec_gen = atomic_load(&b->sec_gen);
	pthread_mutex_unlock(&b->sec_lock);
	w->cfg = &w->sec->cfg;
	moat__leak_worker_reset(w);
	if (old)
		drop_removed_users(w);
	if (old) {
		/* Rights may have shrunk: check what is delivered from now
		 * on, for every session of this worker. */
		for (size_t i = 0; i < w->nbuckets; i++)
			for (struct moat_session *s = w->sessions[i]; s;
			     s = s->hnext)
				s->acl_each = w->sec->acl != NULL;
		moat_security_unref(&old);
	}
}

/* ---- the event log ------------------------------------------------------------ */

/* Names in security lines are quoted, with spaces, quotes, backslashes,
 * control characters and non-ASCII as \xNN: a crafted user name cannot
 * pose as another field to a log parser (fail2ban and the like). */
static const char *sec_escape(const char *p, size_t len, char *out,
			      size_t outsz)
{
	size_t o = 0;
	for (size_t i = 0; i < len && o + 5 < outsz; i++) {
		unsigned char ch = (unsigned char)p[i];
		if (ch > 0x20 && ch < 0x7f && ch != '"' && ch != '\\') {
			out[o++] = (char)ch;
		} else {
			snprintf(out + o, outsz - o, "\\x%02x", ch);
			o += 4;
		}
	}
	out[o] = '\0';
	return out;
}

/* A worker logs at most SEC_LOG_RATE security lines a second (bursts of
 * twice that); what is over is counted and reported by the tick. */
#define SEC_LOG_RATE 50.0

static bool sec_log_budget(struct moat_worker *w)
{
	uint64_t now = moat_now_ms();
	if (now > w->sec_log_refill_ms) {
		w->sec_log_tokens += (double)(now - w->sec_log_refill_ms) *
				     SEC_LOG_RATE / 1000.0;
		if (w->sec_log_tokens > 2 * SEC_LOG_RATE)
			w->sec_log_tokens = 2 * SEC_LOG_RATE;
		w->sec_log_refill_ms = now;
	}
	if (w->sec_log_tokens < 1.0) {
		w->sec_log_suppressed++;
		return false;
	}
	w->sec_log_tokens -= 1.0;
	return true;
}

void moat__security_log_flush(struct moat_worker *w)
{
	if (!w->sec_log_suppressed)
		return;
	moat_notice("security: %llu further events not logged (more than "
		    "%.0f a second)",
		    (unsigned long long)w->sec_log_suppressed, SEC_LOG_RATE);
	w->sec_log_suppressed = 0;
}

void moat__security_event(struct moat_conn *c, const char *event,
			  const char *fmt, ...)
{
	char detail[300], user[200], id[200], e[180];
	if (c->sec_events++ >= SEC_EVENTS_LOGGED) {
		if (c->sec_events == SEC_EVENTS_LOGGED + 1)
			moat_notice("security: further events from %s are "
				    "counted, not logged",
				    moat_conn_peer(c, user));
		return;
	}
	if (!sec_log_budget(c->w))
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(detail, sizeof(detail), fmt, ap);
	va_end(ap);
	const char *cid = c->session ? c->session->client_id : c->connect_id;
	if (c->username)
		snprintf(user, sizeof(user), "\"%s\"",
			 sec_escape(c->username, strlen(c->username), e,
				    sizeof(e)));
	else
		snprintf(user, sizeof(user), "(anonymous)");
	if (cid) {
		snprintf(id, sizeof(id), "\"%s\"",
			 sec_escape(cid, strlen(cid), e, sizeof(e)));
	} else {
		snprintf(id, sizeof(id), "(none yet)");
	}
	char pb[MOAT_PEER_STRLEN], fb[MOAT_FWD_STRLEN], name[32], ecid[180],
		euser[200];
	moat__event_name(event, name, sizeof(name));
	const struct moat_log_field f[] = {
		MOAT_LF_STR("client_id", cid ? sec_escape(cid, strlen(cid), ecid,
							  sizeof(ecid))
					     : NULL),
		MOAT_LF_STR("user", c->username
					    ? sec_escape(c->username,
							 strlen(c->username),
							 euser, sizeof(euser))
					    : NULL),
		MOAT_LF_STR("peer", moat_conn_peer(c, pb)),
		MOAT_LF_STR("detail", detail),
	};
	moat_log_event(MOAT_LOG_NOTICE, name, f, MOAT_ARRAY_LEN(f),
		       "security: %s: client %s user %s from %s%s: %s", event,
		       id, user, pb, moat_conn_forwarded(c, fb), detail);
}

void moat__event_name(const char *event, char *out, size_t outsz)
{
	size_t i = 0;
	for (; event[i] && i + 1 < outsz; i++)
		out[i] = event[i] == ' ' ? '_' : event[i];
	out[i] = '\0';
}

/* ---- authentication -------------------------------------------------------------- */

/* Characters that would widen a pattern after substitution; a leading
 * '$' would reach into the broker's $ topics. */
static bool has_special(const char *s, size_t len)
{
	if (len && s[0] == '$')
		return true;
	for (size_t i = 0; i < len; i++)
		if (s[i] == '+' || s[i] == '#' || s[i] == '/')
			return true;
	return false;
}

static int deny(uint8_t *v3rc, uint8_t *v5rc, const char **why, uint8_t v3,
		uint8_t v5, const char *text)
{
	*v3rc = v3;
	*v5rc = v5;
	*why = text;
	return MOAT_EDENIED;
}

/* The user name from a verified client certificate. */
static int cert_identity(struct moat_conn *c, const struct moat_listener_cfg *lc,
			 uint8_t *v3rc, uint8_t *v5rc, const char **why)
{
	char name[256];
	if (moat_net_peer_identity(c->net,
				   lc->use_identity_as_username ==
					   MOAT_IDENTITY_SAN,
				   name, sizeof(name)) != MOAT_OK)
		return deny(v3rc, v5rc, why, MQTT_CONNACK_NOT_AUTHORIZED,
			    RC_NOT_AUTHORIZED,
			    "client certificate has no usable identity");
	c->username = moat_strdup(name);
	if (!c->username)
		return MOAT_ENOMEM;
	c->authenticated = true;
	c->auth_by_cert = true;
	MOAT_WSTAT_ADD(c->w, auth[MOAT_AUTH_OK], 1);
	return MOAT_OK;
}

/* The address key for login back-off: IPv6 peers by /64, since one
 * machine usually has a whole /64 to pick addresses from. */
static const char *guard_ip(const struct moat_conn *c, char *buf, size_t sz)
{
	if (c->addr.sa.sa_family != AF_INET6) {
		char ip[MOAT_PEER_STRLEN];
		snprintf(buf, sz, "%s", moat_conn_ip(c, ip));
		return buf;
	}
	struct in6_addr a = c->addr.v6.sin6_addr;
	memset(a.s6_addr + 8, 0, 8);
	char s[INET6_ADDRSTRLEN];
	inet_ntop(AF_INET6, &a, s, sizeof(s));
	snprintf(buf, sz, "%s/64", s);
	return buf;
}

static int bad_password(struct moat_conn *c, const struct moat_mqtt_connect *cn,
			uint8_t *v3rc, uint8_t *v5rc, const char **why)
{
	struct moat_worker *w = c->w;
	char *user = moat_strndup((const char *)cn->username.p,
				  cn->username.len);
	if (!user)
		return MOAT_ENOMEM;
	char ipbuf[64];
	uint32_t n = moat_guard_failure(&w->b->guard,
					guard_ip(c, ipbuf, sizeof(ipbuf)), user,
					moat_now_ms(),
					w->cfg->auth_backoff_initial_ms,
					w->cfg->auth_backoff_max_ms);
	moat_free(user);
	MOAT_WSTAT_ADD(w, auth[MOAT_AUTH_FAIL], 1);
	char esc[300];
	sec_escape((const char *)cn->username.p,
		   MOAT_MIN(cn->username.len, (size_t)64), esc, sizeof(esc));
	moat__security_event(c, "auth failure",
			     "bad user name or password for user \"%s\" "
			     "(failure %u in a row for it)",
			     esc, n);
	return deny(v3rc, v5rc, why, MQTT_CONNACK_BAD_CREDENTIALS,
		    RC_BAD_USER_PASS, "bad user name or password");
}

/* A password check has three steps, each a pass through CONNECT: the
 * back-off may hold it (auth_wait_until), then the auth threads verify it
 * (AUTH_VERIFYING), then the verdict is applied (AUTH_DONE). */
static int check_password(struct moat_conn *c,
			  const struct moat_mqtt_connect *cn, uint8_t *v3rc,
			  uint8_t *v5rc, const char **why)
{
	struct moat_worker *w = c->w;
	const struct moat_config *cfg = w->cfg;
	if (c->auth_phase == AUTH_DONE) {
		c->auth_phase = AUTH_NONE;
		if (!c->auth_ok)
			return bad_password(c, cn, v3rc, v5rc, why);
		c->username = moat_strndup((const char *)cn->username.p,
					   cn->username.len);
		if (!c->username)
			return MOAT_ENOMEM;
		c->authenticated = true;
		MOAT_WSTAT_ADD(w, auth[MOAT_AUTH_OK], 1);
		char ipbuf[64];
		moat_guard_success(&w->b->guard,
				   guard_ip(c, ipbuf, sizeof(ipbuf)),
				   c->username);
		return MOAT_OK;
	}
	char *user = moat_strndup((const char *)cn->username.p,
				  cn->username.len);
	if (!user)
		return MOAT_ENOMEM;
	char ipbuf[64];
	const char *gip = guard_ip(c, ipbuf, sizeof(ipbuf));
	uint64_t now = moat_now_ms();
	uint64_t wait = moat_guard_admit(&w->b->guard, gip, user, now,
					 cfg->auth_backoff_initial_ms,
					 cfg->auth_backoff_max_ms);
	bool nul = memchr(user, '\0', cn->username.len) != NULL;
	/* Hold the CONNECT for the back-off, but never past connect_timeout:
	 * beyond it, refuse, so that held connections stay bounded in time. */
	uint64_t deadline = c->created_ms + cfg->connect_timeout * 1000u;
	if (wait && now + wait > deadline) {
		moat__limit_hit(w, MOAT_LIMIT_AUTH_BACKOFF);
		MOAT_WSTAT_ADD(w, auth[MOAT_AUTH_THROTTLED], 1);
		moat__security_event(c, "auth throttled",
				     "login back-off: next attempt in %llu ms",
				     (unsigned long long)wait);
		moat_free(user);
		return deny(v3rc, v5rc, why, MQTT_CONNACK_UNAVAILABLE,
			    RC_CONNECTION_RATE_EXCEEDED,
			    "too many failed logins: try again later");
	}
	if (wait) {
		moat_free(user);
		c->auth_wait_until = now + wait;
		return MOAT_EAGAIN;
	}
	c->auth_wait_until = 0;
	if (!cn->has_password || nul) {
		moat_free(user);
		return bad_password(c, cn, v3rc, v5rc, why);
	}
	int rc = moat_authq_submit(&w->b->authq, c, gip, cn->username.p,
				   cn->username.len, cn->password.p,
				   cn->password.len);
	if (rc != MOAT_OK)
		moat_guard_release(&w->b->guard, gip, user);
	moat_free(user);
	if (rc == MOAT_ELIMIT) {
		moat__limit_hit(w, MOAT_LIMIT_LOGIN_QUEUE);
		moat__security_event(c, "limit", "too many logins waiting "
						 "for a password check");
		return deny(v3rc, v5rc, why, MQTT_CONNACK_UNAVAILABLE,
			    RC_SERVER_BUSY, "server busy: too many logins");
	}
	if (rc != MOAT_OK)
		return rc;
	c->auth_phase = AUTH_VERIFYING;
	return MOAT_EAGAIN;
}

static int authenticate(struct moat_conn *c, const struct moat_mqtt_connect *cn,
			const uint8_t *id, size_t idlen, uint8_t *v3rc,
			uint8_t *v5rc, const char **why)
{
	struct moat_worker *w = c->w;
	const struct moat_config *cfg = w->cfg;
	const struct moat_listener_cfg *lc = &cfg->listeners[c->listener];
	int rc;
	MOAT_FREE(c->username);
	c->authenticated = false;
	c->auth_by_cert = false;
	if (lc->use_identity_as_username)
		rc = cert_identity(c, lc, v3rc, v5rc, why);
	else if (cn->has_username && w->sec->pw)
		rc = check_password(c, cn, v3rc, v5rc, why);
	else if (moat_cfg_listener_anonymous(cfg, c->listener))
		rc = MOAT_OK; /* anonymous; an unverifiable name is ignored */
	else {
		MOAT_WSTAT_ADD(w, auth[MOAT_AUTH_FAIL], 1);
		moat__security_event(c, "auth failure",
				     cn->has_username
					     ? "user names cannot be verified "
					       "(no password_file)"
					     : "anonymous access refused");
		rc = deny(v3rc, v5rc, why,
			  cn->has_username ? MQTT_CONNACK_BAD_CREDENTIALS
					   : MQTT_CONNACK_NOT_AUTHORIZED,
			  cn->has_username ? RC_BAD_USER_PASS
					   : RC_NOT_AUTHORIZED,
			  cn->has_username ? "user name cannot be verified"
					   : "anonymous access refused");
	}
	if (rc != MOAT_OK)
		return rc;
	const struct moat_acl *acl = w->sec->acl;
	if (!acl)
		return MOAT_OK;
	/* Values an ACL pattern substitutes must not widen it (T-09). */
	if (c->username && moat_acl_uses_user_pattern(acl) &&
	    has_special(c->username, strlen(c->username))) {
		moat__security_event(c, "auth refused",
				     "user name contains +, # or / (or starts "
				     "with $) and the "
				     "ACL substitutes %%u");
		return deny(v3rc, v5rc, why, MQTT_CONNACK_NOT_AUTHORIZED,
			    RC_NOT_AUTHORIZED,
			    "user name with +, # or / refused");
	}
	if (moat_acl_uses_clientid_pattern(acl) &&
	    has_special((const char *)id, idlen)) {
		moat__security_event(c, "auth refused",
				     "client id contains +, # or / (or starts "
				     "with $) and the "
				     "ACL substitutes %%c");
		return deny(v3rc, v5rc, why, MQTT_CONNACK_ID_REJECTED,
			    RC_CLIENT_ID_INVALID,
			    "client id with +, # or / refused");
	}
	char cid[65536];
	memcpy(cid, id, idlen);
	cid[idlen] = '\0';
	if (memchr(id, '\0', idlen) ||
	    !moat_acl_clientid_allowed(acl, c->username, cid)) {
		MOAT_STAT_ADD(w->b, acl_denials, 1);
		moat__security_event(c, "acl denial",
				     "client id not bound to this user");
		return deny(v3rc, v5rc, why, MQTT_CONNACK_NOT_AUTHORIZED,
			    RC_NOT_AUTHORIZED,
			    "client id not allowed for this user");
	}
	return MOAT_OK;
}

/* The per-user table's key: user names can be longer than its keys. */
static const char *user_key(const char *user, char *buf, size_t sz)
{
	uint64_t h = 1469598103934665603ull;
	size_t n = strlen(user);
	for (size_t i = 0; i < n; i++)
		h = (h ^ (uint8_t)user[i]) * 1099511628211ull;
	snprintf(buf, sz, "%016llx:%zu", (unsigned long long)h, n);
	return buf;
}

/* An authenticated connection moves from the per-address count (what an
 * address may hold before authentication) to the per-user one: devices
 * behind one NAT address are bounded by their users and the global
 * limits, not by their neighbours. */
static int count_authenticated(struct moat_conn *c, uint8_t *v3rc,
			       uint8_t *v5rc, const char **why)
{
	struct moat_worker *w = c->w;
	const struct moat_config *cfg = w->cfg;
	char kb[48], ib[MOAT_PEER_STRLEN];
	uint64_t now = moat_now_ms();
	if (!c->authenticated || !c->username)
		return MOAT_OK; /* anonymous: stays counted per address */
	if (!c->user_counted && cfg->max_connections_per_user) {
		if (moat_iptab_admit(&w->b->usertab,
				     user_key(c->username, kb, sizeof(kb)),
				     now, cfg->max_connections_per_user,
				     0, false) != MOAT_IP_OK) {
			moat__limit_hit(w, MOAT_LIMIT_CONNS_PER_USER);
			moat__security_event(c, "limit",
					     "max_connections_per_user reached");
			return deny(v3rc, v5rc, why, MQTT_CONNACK_UNAVAILABLE,
				    RC_QUOTA_EXCEEDED,
				    "too many connections for this user");
		}
		c->user_counted = true;
	}
	if (c->ip_counted) {
		moat_iptab_authenticated(&w->b->iptab, moat_conn_ip(c, ib), now,
					 cfg->max_accept_rate_per_ip);
		c->ip_counted = false;
	}
	return MOAT_OK;
}

int moat__authenticate(struct moat_conn *c, const struct moat_mqtt_connect *cn,
		       const uint8_t *id, size_t idlen, uint8_t *v3rc,
		       uint8_t *v5rc, const char **why)
{
	int rc = authenticate(c, cn, id, idlen, v3rc, v5rc, why);
	return rc == MOAT_OK ? count_authenticated(c, v3rc, v5rc, why) : rc;
}

void moat__uncount_user(struct moat_conn *c)
{
	char kb[48];
	if (!c->user_counted)
		return;
	c->user_counted = false;
	moat_iptab_release(&c->w->b->usertab,
			   user_key(c->username, kb, sizeof(kb)), c->w->now_ms);
}

/* ---- authorisation ------------------------------------------------------------------ */

static const char *client_id_of(const struct moat_conn *c)
{
	if (c->session)
		return c->session->client_id;
	return c->connect_id ? c->connect_id : "";
}

bool moat__acl_allows(struct moat_conn *c, const char *topic, size_t len,
		      int access)
{
	const struct moat_security *sec = c->w->sec;
	/* $SYS tells versions and load: only to authenticated users the ACL
	 * grants it to, never to anonymous peers (T-05). */
	if (access != MOAT_ACL_WRITE && len >= 4 && !memcmp(topic, "$SYS", 4) &&
	    (!c->authenticated || !sec->acl))
		return false;
	if (!sec->acl)
		return true;
	return moat_acl_allows(sec->acl, c->username, client_id_of(c), topic,
			       len, (enum moat_acl_access)access);
}

bool moat__acl_check_each(struct moat_conn *c, const char *filter, size_t len)
{
	const struct moat_security *sec = c->w->sec;
	if (!sec->acl)
		return false;
	return !moat_acl_filter_fully_readable(sec->acl, c->username,
					       client_id_of(c), filter, len);
}

bool moat__source_may_publish(struct moat_worker *w, const struct moat_msg *m)
{
	if (!m->has_src || !w->sec->acl)
		return true;
	return moat_acl_allows(w->sec->acl, m->src_user, m->src_cid, m->topic,
			       m->topic_len, MOAT_ACL_WRITE);
}

/* ---- memory budget ------------------------------------------------------------------ */

uint64_t moat__memory_auto(void)
{
	long pages = sysconf(_SC_PHYS_PAGES);
	long psize = sysconf(_SC_PAGESIZE);
	if (pages <= 0 || psize <= 0)
		return UINT64_MAX;
	return (uint64_t)pages * (uint64_t)psize / 4 * 3;
}

bool moat__memory_exhausted(struct moat_worker *w)
{
	uint64_t budget = w->cfg->memory_limit ? w->cfg->memory_limit
					       : w->b->memory_auto;
	/* OpenSSL's memory for DTLS sessions, counted byte for byte when
	 * moatd installed the counting allocator (net/ossl_mem.h; otherwise,
	 * as in the fuzz harness, each session counts its measured size). */
	uint64_t dtls = moat_ossl_mem_installed()
				? moat_ossl_bytes(MOAT_OSSL_DTLS)
				: MOAT_STAT_GET(w->b, coap_dtls_sessions) *
					  MOAT_COAP_DTLS_SESSION_BYTES;
	return moat_alloc_live_bytes() + dtls >= budget;
}
