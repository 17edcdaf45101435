/* What every http route uses (http.c, http_api.c): responses, counted by
 * status; the peer's address; logins checked against the password file
 * and the ACL with the MQTT login back-off; security events. */
#include <arpa/inet.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "auth/acl.h"
#include "auth/passwd.h"
#include "http_int.h"

/* Responses counted by status (moat_http_responses_total). */
static const unsigned http_codes[HTTP_NCODES] = {
	200, 400, 401, 403, 404, 405, 413, 415, 429, 500, 503};


void moat__http_count(struct moat_http *h, unsigned code)
{
	for (size_t i = 0; i < HTTP_NCODES; i++)
		if (http_codes[i] == code)
			atomic_fetch_add_explicit(&h->codes[i], 1,
						  memory_order_relaxed);
}

enum MHD_Result moat__http_respond(struct http_listener *l,
				   struct MHD_Connection *c, unsigned code,
				   const char *type, char *body, size_t len,
				   bool owned)
{
	return moat__http_respond_cookie(l, c, code, type, body, len, owned,
					 NULL);
}

enum MHD_Result moat__http_respond_cookie(struct http_listener *l,
					  struct MHD_Connection *c,
					  unsigned code, const char *type,
					  char *body, size_t len, bool owned,
					  const char *cookie)
{
	struct MHD_Response *r =
		owned ? MHD_create_response_from_buffer_with_free_callback(
				len, body, moat_free)
		      : MHD_create_response_from_buffer(len, body,
							MHD_RESPMEM_MUST_COPY);
	if (!r) {
		if (owned)
			moat_free(body);
		return MHD_NO;
	}
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
	MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
	MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
	MHD_add_response_header(r, "Content-Security-Policy",
				"default-src 'none'; frame-ancestors 'none'");
	MHD_add_response_header(r, "Referrer-Policy", "no-referrer");
	if (code == 405)
		MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
	if (code == 429)
		MHD_add_response_header(r, MHD_HTTP_HEADER_RETRY_AFTER, "1");
	if (cookie)
		MHD_add_response_header(r, MHD_HTTP_HEADER_SET_COOKIE, cookie);
	moat__http_count(l->b->http, code);
	enum MHD_Result rc = MHD_queue_response(c, code, r);
	MHD_destroy_response(r);
	return rc;
}

enum MHD_Result moat__http_text(struct http_listener *l,
				struct MHD_Connection *c, unsigned code,
				const char *msg)
{
	/* Copied by libmicrohttpd (MHD_RESPMEM_MUST_COPY): never written. */
	return moat__http_respond(l, c, code, "text/plain; charset=utf-8",
		       (char *)(uintptr_t)msg, strlen(msg), false);
}

const char *moat__http_peer(struct MHD_Connection *c, char *peer)
{
	const union MHD_ConnectionInfo *ci =
		MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	union moat_sockaddr a;
	char ip[MOAT_PEER_STRLEN];
	memset(&a, 0, sizeof(a));
	if (ci && ci->client_addr &&
	    ci->client_addr->sa_family == AF_INET6)
		memcpy(&a.v6, ci->client_addr, sizeof(a.v6));
	else if (ci && ci->client_addr)
		memcpy(&a.v4, ci->client_addr, sizeof(a.v4));
	else
		return strcpy(peer, "?");
	moat__format_addr(&a, peer, ip);
	return peer;
}

/* The back-off key of the peer: its address (IPv6 by /64, as MQTT). */
static const char *guard_key(const char *peer, char *buf, size_t sz)
{
	snprintf(buf, sz, "%s", peer);
	char *colon = strrchr(buf, ':'); /* the port */
	if (colon)
		*colon = '\0';
	if (buf[0] == '[') {
		struct in6_addr a;
		size_t n = strlen(buf);
		if (n > 2 && buf[n - 1] == ']') {
			buf[n - 1] = '\0';
			if (inet_pton(AF_INET6, buf + 1, &a) == 1) {
				char s[INET6_ADDRSTRLEN];
				memset(a.s6_addr + 8, 0, 8);
				inet_ntop(AF_INET6, &a, s, sizeof(s));
				snprintf(buf, sz, "%s/64", s);
			}
		}
	}
	return buf;
}

/* A security event of an http listener: the same event names as MQTT's,
 * with protocol "http" (docs/logging.md). */
void moat__http_event(const char *event, const char *user, const char *peer,
		      const char *fmt, ...)
{
	char msg[600];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	const struct moat_log_field f[] = {
		MOAT_LF_STR("protocol", "http"),
		MOAT_LF_STR("user", user),
		MOAT_LF_STR("peer", peer),
	};
	moat_log_event(MOAT_LOG_NOTICE, event, f, MOAT_ARRAY_LEN(f), "%s",
		       msg);
}

unsigned moat__http_login(struct http_listener *l, struct MHD_Connection *c,
			  const char *user, const char *pw)
{
	struct moat_broker *b = l->b;
	struct moat_http *h = b->http;
	char peer[MOAT_PEER_STRLEN], key[MOAT_PEER_STRLEN], esc[300];
	unsigned code = 401;
	moat__http_peer(c, peer);
	pthread_mutex_lock(&b->sec_lock);
	struct moat_security *sec = moat_security_ref(b->sec);
	pthread_mutex_unlock(&b->sec_lock);
	const struct moat_config *cfg = &sec->cfg;
	const char *gk = guard_key(peer, key, sizeof(key));
	moat_log_escape((const uint8_t *)user, strlen(user), esc, sizeof(esc));
	uint64_t wait = moat_guard_admit(&b->guard, gk, user, moat_now_ms(),
					 cfg->auth_backoff_initial_ms,
					 cfg->auth_backoff_max_ms);
	if (wait) {
		atomic_fetch_add(&h->auth[MOAT_AUTH_THROTTLED], 1);
		moat__http_event("auth_throttled", esc, peer,
			   "security: auth throttled: http user \"%s\" from "
			   "%s: login back-off: next attempt in %llu ms",
			   esc, peer, (unsigned long long)wait);
		code = 429;
	} else if (!sec->pw || moat_pwfile_check(sec->pw, user, strlen(user),
						 (const uint8_t *)pw,
						 strlen(pw)) != MOAT_OK) {
		uint32_t n = moat_guard_failure(&b->guard, gk, user,
						moat_now_ms(),
						cfg->auth_backoff_initial_ms,
						cfg->auth_backoff_max_ms);
		atomic_fetch_add(&h->auth[MOAT_AUTH_FAIL], 1);
		moat__http_event("auth_failure", esc, peer,
			   "security: auth failure: http user \"%s\" from %s: "
			   "bad user name or password (failure %u in a row for "
			   "it)",
			   esc, peer, n);
	} else {
		moat_guard_success(&b->guard, gk, user);
		atomic_fetch_add(&h->auth[MOAT_AUTH_OK], 1);
		code = 0;
		if (!sec->acl || !moat_acl_allows(sec->acl, user, "", "$SYS/#",
						  6, MOAT_ACL_SUBSCRIBE)) {
			MOAT_STAT_ADD(b, acl_denials, 1);
			moat__http_event("acl_denial", esc, peer,
				   "security: acl denial: http user \"%s\" from "
				   "%s: not an administrator (the ACL does not "
				   "grant $SYS/#)",
				   esc, peer);
			code = 403;
		}
	}
	moat_security_unref(&sec);
	return code;
}

uint64_t moat__http_auth(const struct moat_broker *b, unsigned result)
{
	return b->http && result < 3
		       ? atomic_load_explicit(&b->http->auth[result],
					      memory_order_relaxed)
		       : 0;
}

void moat__http_codes(const struct moat_broker *b,
		      void (*each)(void *, unsigned, uint64_t), void *arg)
{
	for (size_t i = 0; b->http && i < HTTP_NCODES; i++)
		each(arg, http_codes[i],
		     atomic_load_explicit(&b->http->codes[i],
					  memory_order_relaxed));
}
