/* The JSON API under /api/v1/ (docs/api.md): logins of administrators,
 * recent leak findings and security events, leak counts.
 *
 * Every endpoint but login needs a session: the token from a login, sent
 * back as the moat_session cookie (HttpOnly, SameSite=Strict, Secure on
 * HTTPS) or as "Authorization: Bearer TOKEN".  A POST authenticated by
 * the cookie must carry the session's CSRF token in X-CSRF-Token (a
 * browser sends cookies by itself, never that header).  The administrator
 * right is checked again on every request against the current ACL, so a
 * reload that withdraws it ends the sessions' use at once. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "auth/acl.h"
#include "http_int.h"
#include "codec/mqtt_codec.h"
#include "leak/leak.h"

#define SESSION_IDLE_MS (30u * 60u * 1000u)
#define SESSION_MAX_MS (8u * 3600u * 1000u)
#define API_LIST_MAX 256

struct api_ctx {
	struct http_listener *l;
	struct MHD_Connection *c;
	struct api_session s; /* a copy of the caller's session */
	bool by_cookie;
};

static enum MHD_Result send_json(struct api_ctx *x, unsigned code, json_t *o,
				 const char *cookie)
{
	char *text = o ? json_dumps(o, JSON_COMPACT | JSON_ENSURE_ASCII) : NULL;
	json_decref(o);
	if (!text)
		return moat__http_text(x->l, x->c, 500, "out of memory\n");
	return moat__http_respond_cookie(x->l, x->c, code, "application/json",
					 text, strlen(text), true, cookie);
}

static enum MHD_Result error(struct api_ctx *x, unsigned code,
			     const char *why)
{
	return send_json(x, code, json_pack("{s:s}", "error", why), NULL);
}

static void random_hex(char *out, size_t nbytes)
{
	unsigned char r[32];
	static const char hex[] = "0123456789abcdef";
	if (RAND_bytes(r, (int)nbytes) != 1)
		abort(); /* no randomness: no safe token can be made */
	for (size_t i = 0; i < nbytes; i++) {
		out[2 * i] = hex[r[i] >> 4];
		out[2 * i + 1] = hex[r[i] & 15];
	}
	out[2 * nbytes] = '\0';
	OPENSSL_cleanse(r, sizeof(r));
}

static bool expired(const struct api_session *s, uint64_t now)
{
	return now - s->used_ms > SESSION_IDLE_MS ||
	       now - s->created_ms > SESSION_MAX_MS;
}

/* A new session for user (the oldest is replaced when all are taken). */
static void session_new(struct moat_http *h, const char *user,
			struct api_session *out)
{
	uint64_t now = moat_now_ms();
	pthread_mutex_lock(&h->api_lock);
	struct api_session *pick = &h->sessions[0];
	for (size_t i = 0; i < HTTP_API_SESSIONS; i++) {
		struct api_session *s = &h->sessions[i];
		if (!s->token[0] || expired(s, now)) {
			pick = s;
			break;
		}
		if (s->used_ms < pick->used_ms)
			pick = s;
	}
	random_hex(pick->token, 32);
	random_hex(pick->csrf, 32);
	snprintf(pick->user, sizeof(pick->user), "%s", user);
	pick->created_ms = pick->used_ms = now;
	*out = *pick;
	pthread_mutex_unlock(&h->api_lock);
}

/* Find the session of token (constant time per slot); refreshes it. */
static bool session_find(struct moat_http *h, const char *token,
			 struct api_session *out)
{
	bool found = false;
	uint64_t now = moat_now_ms();
	if (strlen(token) != 64)
		return false;
	pthread_mutex_lock(&h->api_lock);
	for (size_t i = 0; i < HTTP_API_SESSIONS; i++) {
		struct api_session *s = &h->sessions[i];
		if (s->token[0] && !CRYPTO_memcmp(s->token, token, 64) &&
		    !expired(s, now)) {
			s->used_ms = now;
			*out = *s;
			found = true;
		}
	}
	pthread_mutex_unlock(&h->api_lock);
	return found;
}

static void session_end(struct moat_http *h, const char *token)
{
	pthread_mutex_lock(&h->api_lock);
	for (size_t i = 0; i < HTTP_API_SESSIONS; i++)
		if (!CRYPTO_memcmp(h->sessions[i].token, token, 65))
			OPENSSL_cleanse(&h->sessions[i],
					sizeof(h->sessions[i]));
	pthread_mutex_unlock(&h->api_lock);
}

/* Is user still an administrator under the current ACL? */
static bool still_admin(struct moat_broker *b, const char *user)
{
	pthread_mutex_lock(&b->sec_lock);
	struct moat_security *sec = moat_security_ref(b->sec);
	pthread_mutex_unlock(&b->sec_lock);
	bool ok = sec->acl && moat_acl_allows(sec->acl, user, "", "$SYS/#", 6,
					      MOAT_ACL_SUBSCRIBE);
	moat_security_unref(&sec);
	return ok;
}

/* The caller's session from the cookie or the bearer token. */
static unsigned authenticate(struct api_ctx *x)
{
	const char *auth = MHD_lookup_connection_value(
		x->c, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
	const char *cookie = MHD_lookup_connection_value(x->c, MHD_COOKIE_KIND,
							 "moat_session");
	const char *token = NULL;
	if (auth && !strncmp(auth, "Bearer ", 7))
		token = auth + 7;
	else if (cookie)
		token = cookie;
	x->by_cookie = token == cookie;
	if (!token || !session_find(x->l->b->http, token, &x->s))
		return 401;
	if (!still_admin(x->l->b, x->s.user))
		return 403;
	return 0;
}

/* The JSON object of a POST body: 0, or the status to answer (415: not
 * application/json, which a cross-site form cannot send without a
 * preflight; 400: not a JSON object). */
static unsigned body_json(struct api_ctx *x, const char *body, size_t len,
			  json_t **out)
{
	const char *type = MHD_lookup_connection_value(
		x->c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE);
	json_error_t jerr;
	*out = NULL;
	if (!type || strncmp(type, "application/json", 16))
		return 415;
	*out = json_loadb(body ? body : "", len, JSON_REJECT_DUPLICATES,
			  &jerr);
	return *out && json_is_object(*out) ? 0 : 400;
}

static enum MHD_Result login(struct api_ctx *x, const char *body, size_t len)
{
	json_t *o;
	const char *user = NULL, *pw = NULL;
	unsigned bad = body_json(x, body, len, &o);
	if (bad == 415) {
		json_decref(o);
		return error(x, 415, "send the login as application/json");
	}
	if (bad || json_unpack(o, "{s:s, s:s}", "user", &user, "password",
			       &pw) || strlen(user) > 256 || strlen(pw) > 256) {
		json_decref(o);
		return error(x, 400, "expected {\"user\": ..., \"password\": "
				     "...}");
	}
	unsigned code = moat__http_login(x->l, x->c, user, pw);
	if (code) {
		json_decref(o);
		return error(x, code, code == 403 ? "not an administrator"
				      : code == 429 ? "too many failed logins: "
						      "try again later"
						    : "bad user name or "
						      "password");
	}
	struct api_session s;
	session_new(x->l->b->http, user, &s);
	char peer[MOAT_PEER_STRLEN], esc[300], cookie[200];
	moat_log_escape((const uint8_t *)user, strlen(user), esc, sizeof(esc));
	moat__http_event("api_login", esc, moat__http_peer(x->c, peer),
			 "security: api login: http user \"%s\" from %s",
			 esc, peer);
	snprintf(cookie, sizeof(cookie),
		 "moat_session=%s; Path=/api/v1/; Max-Age=%u; HttpOnly; "
		 "SameSite=Strict%s",
		 s.token, SESSION_MAX_MS / 1000u, x->l->tls ? "; Secure" : "");
	json_t *r = json_pack("{s:s, s:s, s:s, s:i}", "user", user, "token",
			      s.token, "csrf_token", s.csrf, "idle_timeout",
			      (int)(SESSION_IDLE_MS / 1000u));
	json_decref(o);
	OPENSSL_cleanse(&s, sizeof(s));
	return send_json(x, 200, r, cookie);
}

static enum MHD_Result logout(struct api_ctx *x)
{
	char peer[MOAT_PEER_STRLEN], esc[300];
	session_end(x->l->b->http, x->s.token);
	moat_log_escape((const uint8_t *)x->s.user, strlen(x->s.user), esc,
			sizeof(esc));
	moat__http_event("api_logout", esc, moat__http_peer(x->c, peer),
			 "security: api logout: http user \"%s\" from %s", esc,
			 peer);
	return send_json(x, 200, json_pack("{s:b}", "ok", 1),
			 "moat_session=; Path=/api/v1/; Max-Age=0; HttpOnly; "
			 "SameSite=Strict");
}

/* ---- lists of recent events ------------------------------------------- */

struct filter {
	json_t *out;
	const char *key[3];
	const char *want[3];
};

static bool take_event(void *arg, const char *json)
{
	struct filter *f = arg;
	json_t *o = json_loads(json, 0, NULL);
	if (!o)
		return false;
	for (int i = 0; i < 3; i++) {
		if (!f->want[i])
			continue;
		const char *v = json_string_value(json_object_get(o, f->key[i]));
		if (!v || strcmp(v, f->want[i])) {
			json_decref(o);
			return false;
		}
	}
	json_array_append_new(f->out, o);
	return true;
}

/* A query argument, %-decoded into buf (the URL itself is never
 * decoded: see path_ok in http.c); NULL when absent or too long. */
static const char *arg(struct api_ctx *x, const char *name, char *buf,
		       size_t sz)
{
	const char *v = MHD_lookup_connection_value(x->c,
						    MHD_GET_ARGUMENT_KIND, name);
	if (!v || strlen(v) >= sz)
		return NULL;
	snprintf(buf, sz, "%s", v);
	MHD_http_unescape(buf);
	return buf;
}

static size_t limit_arg(struct api_ctx *x)
{
	char buf[16];
	const char *v = arg(x, "limit", buf, sizeof(buf));
	long n = v ? strtol(v, NULL, 10) : 50;
	return n < 1 ? 1 : n > API_LIST_MAX ? API_LIST_MAX : (size_t)n;
}

static enum MHD_Result list(struct api_ctx *x, struct moat_event_ring *r,
			    const char *name, const char *const keys[3])
{
	char bufs[3][300];
	struct filter f = {.out = json_array()};
	for (int i = 0; i < 3 && keys[i]; i++) {
		f.key[i] = keys[i];
		f.want[i] = arg(x, keys[i], bufs[i], sizeof(bufs[i]));
	}
	if (!f.out)
		return error(x, 500, "out of memory");
	moat__events_recent(r, limit_arg(x), take_event, &f);
	return send_json(x, 200, json_pack("{s:o}", name, f.out), NULL);
}

static enum MHD_Result leak_counts(struct api_ctx *x)
{
	static const char *const action[4] = {"log", "alert", "redact",
					      "block"};
	struct moat_broker *b = x->l->b;
	json_t *cats = json_object();
	for (unsigned c = 0; cats && c < MOAT_LEAK_CATEGORY_COUNT; c++) {
		json_t *one = json_object();
		for (unsigned a = 0; one && a < 4; a++)
			json_object_set_new(
				one, action[a],
				json_integer((json_int_t)MOAT_WSTAT_SUM(
					b, leaks[c][a])));
		json_object_set_new(
			cats, moat_leak_category_name((enum moat_leak_category)c),
			one);
	}
	return send_json(
		x, 200,
		json_pack("{s:o, s:{s:I, s:I}}", "categories", cats, "messages",
			  "redacted",
			  (json_int_t)MOAT_STAT_GET(b, leaks_redacted), "blocked",
			  (json_int_t)MOAT_STAT_GET(b, leaks_blocked)),
		NULL);
}

/* ---- the leak timeline (events.c) --------------------------------------- */

struct points {
	size_t n;
	int64_t wall[MOAT_TIMELINE + 2];
	uint64_t tot[MOAT_TIMELINE + 2][32];
};

static void take_point(void *arg, int64_t wall, const uint64_t *tot)
{
	struct points *p = arg;
	if (p->n == MOAT_TIMELINE + 2)
		return;
	p->wall[p->n] = wall;
	memcpy(p->tot[p->n], tot, sizeof(p->tot[0]));
	p->n++;
}

static json_t *iso(int64_t wall)
{
	char buf[32];
	struct tm tm;
	time_t t = (time_t)wall;
	gmtime_r(&t, &tm);
	strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
	return json_string(buf);
}

/* Findings per category in each interval between samples (a minute; the
 * newest runs from the last sample to now), oldest first. */
static enum MHD_Result leak_timeline(struct api_ctx *x)
{
	struct points *p = moat_calloc(1, sizeof(*p));
	json_t *list = json_array();
	if (!p || !list) {
		moat_free(p);
		json_decref(list);
		return error(x, 500, "out of memory");
	}
	moat__events_timeline(x->l->b, take_point, p);
	for (size_t k = p->n; k-- > 1;) { /* k: older, k-1: newer */
		json_t *counts = json_object();
		uint64_t total = 0;
		for (unsigned c = 0; counts && c < MOAT_LEAK_CATEGORY_COUNT;
		     c++) {
			uint64_t d = p->tot[k - 1][c] - p->tot[k][c];
			total += d;
			if (d)
				json_object_set_new(
					counts,
					moat_leak_category_name(
						(enum moat_leak_category)c),
					json_integer((json_int_t)d));
		}
		json_array_append_new(
			list, json_pack("{s:o, s:o, s:I, s:o}", "start",
					iso(p->wall[k]), "end",
					iso(p->wall[k - 1]), "total",
					(json_int_t)total, "counts", counts));
	}
	moat_free(p);
	return send_json(x, 200,
			 json_pack("{s:i, s:o}", "interval_seconds", 60,
				   "intervals", list),
			 NULL);
}

/* ---- findings per client (events.c) ------------------------------------ */

static int by_total(const void *a, const void *b)
{
	const struct moat_leak_client *x = a, *y = b;
	return (x->total < y->total) - (x->total > y->total);
}

/* The clients with the most findings, each with its findings per minute
 * of the last hour (minutes with none left out), most first. */
static enum MHD_Result leak_clients(struct api_ctx *x)
{
	struct moat_leak_client *v =
		moat_calloc(MOAT_LEAK_CLIENTS, sizeof(*v));
	json_t *list = json_array();
	if (!v || !list) {
		moat_free(v);
		json_decref(list);
		return error(x, 500, "out of memory");
	}
	moat__events_clients(x->l->b, v);
	qsort(v, MOAT_LEAK_CLIENTS, sizeof(*v), by_total);
	int64_t now = moat_wall_s() / 60;
	for (size_t i = 0; i < MOAT_LEAK_CLIENTS && v[i].hash; i++) {
		json_t *mins = json_array();
		for (int64_t m = now - MOAT_TIMELINE + 1; mins && m <= now;
		     m++) {
			size_t slot = (size_t)((uint64_t)m % MOAT_TIMELINE);
			if (v[i].minute[slot] == m && v[i].count[slot])
				json_array_append_new(
					mins, json_pack("{s:o, s:I}", "start",
							iso(m * 60), "count",
							(json_int_t)v[i]
								.count[slot]));
		}
		json_array_append_new(
			list,
			json_pack("{s:s, s:b, s:I, s:I, s:o}", "client_id",
				  v[i].id, "client_id_cut", v[i].cut, "total",
				  (json_int_t)v[i].total, "total_error",
				  (json_int_t)v[i].err, "minutes", mins));
	}
	moat_free(v);
	return send_json(x, 200,
			 json_pack("{s:i, s:i, s:o}", "interval_seconds", 60,
				   "max_clients", MOAT_LEAK_CLIENTS, "clients",
				   list),
			 NULL);
}

/* ---- clients, sessions, admin actions (admin.c) ------------------------- */

static enum MHD_Result admin_list(struct api_ctx *x, enum moat_admin_kind k,
				  const char *name)
{
	char buf[16];
	const char *v = arg(x, "limit", buf, sizeof(buf));
	long n = v ? strtol(v, NULL, 10) : 100;
	size_t limit = n < 1 ? 1 : n > 1000 ? 1000 : (size_t)n;
	struct moat_admin_result res;
	int rc = moat__admin_request(x->l->b, k, NULL, limit, &res);
	if (rc != MOAT_OK) {
		json_decref(res.items);
		return error(x, rc == MOAT_EAGAIN ? 503 : 500,
			     rc == MOAT_EAGAIN ? "the workers did not answer "
						 "in time"
					       : "out of memory");
	}
	return send_json(x, 200,
			 json_pack("{s:o, s:I, s:b}", name, res.items, "total",
				   (json_int_t)res.total, "truncated",
				   res.total > limit),
			 NULL);
}

/* An admin action: {"client_id": ...} or {"topic": ...}; logged. */
static enum MHD_Result admin_action(struct api_ctx *x, enum moat_admin_kind k,
				    const char *body, size_t len)
{
	static const char *const names[] = {
		[MOAT_ADMIN_DISCONNECT] = "disconnect client",
		[MOAT_ADMIN_DELETE_SESSION] = "delete session",
		[MOAT_ADMIN_CLEAR_RETAINED] = "clear retained message",
	};
	const char *key = k == MOAT_ADMIN_CLEAR_RETAINED ? "topic"
							 : "client_id";
	json_t *o;
	const char *val = NULL;
	unsigned bad = body_json(x, body, len, &o);
	if (!bad && (json_unpack(o, "{s:s}", key, &val) || !val[0]))
		bad = 400;
	if (!bad && k == MOAT_ADMIN_CLEAR_RETAINED &&
	    (!moat_topic_name_valid((const uint8_t *)val, strlen(val)) ||
	     moat_topic_is_sys((const uint8_t *)val, strlen(val))))
		bad = 400;
	if (bad) {
		json_decref(o);
		return error(x, bad, bad == 415 ? "send application/json"
						: k == MOAT_ADMIN_CLEAR_RETAINED
						? "expected {\"topic\": a topic "
						  "name, not $SYS}"
						: "expected {\"client_id\": ...}");
	}
	struct moat_admin_result res;
	int rc = moat__admin_request(x->l->b, k, val, 0, &res);
	json_decref(res.items);
	char peer[MOAT_PEER_STRLEN], esc[300], what[200];
	moat_log_escape((const uint8_t *)x->s.user, strlen(x->s.user), esc,
			sizeof(esc));
	moat_log_escape((const uint8_t *)val, strlen(val), what, sizeof(what));
	const char *result = rc != MOAT_OK ? "failed"
			     : res.found  ? "done"
					  : "not found";
	const struct moat_log_field f[] = {
		MOAT_LF_STR("protocol", "http"),
		MOAT_LF_STR("user", esc),
		MOAT_LF_STR("peer", moat__http_peer(x->c, peer)),
		MOAT_LF_STR("action", names[k]),
		MOAT_LF_STR(key, what),
		MOAT_LF_STR("result", result),
	};
	moat_log_event(MOAT_LOG_NOTICE, "admin_action", f, MOAT_ARRAY_LEN(f),
		       "security: admin action: http user \"%s\" from %s: %s "
		       "%s \"%s\": %s",
		       esc, peer, names[k], key, what, result);
	json_decref(o);
	if (rc != MOAT_OK)
		return error(x, rc == MOAT_EAGAIN ? 503 : 500,
			     "not carried out");
	if (!res.found)
		return error(x, 404, k == MOAT_ADMIN_DISCONNECT
					     ? "no such client connected"
					     : "no such session");
	return send_json(x, 200, json_pack("{s:b}", "ok", 1), NULL);
}

/* The moatd --check report of the file moatd was started with, as that
 * file is now. */
static enum MHD_Result config_check(struct api_ctx *x)
{
	struct moat_broker *b = x->l->b;
	char *json;
	size_t len;
	if (!b->check || !b->cfg.source[0])
		return error(x, 404, "moatd runs without a configuration file");
	if (b->check(b->cfg.source, &json, &len) != MOAT_OK)
		return error(x, 500, "the configuration could not be checked");
	return moat__http_respond(x->l, x->c, 200, "application/json", json,
				  len, true);
}

enum MHD_Result moat__api_handle(struct http_listener *l,
				 struct MHD_Connection *c, const char *url,
				 const char *method, const char *body,
				 size_t len)
{
	static const char *const leak_keys[3] = {"category", "client_id",
						 "topic"};
	static const char *const sec_keys[3] = {"event", NULL, NULL};
	struct api_ctx x = {.l = l, .c = c};
	const char *path = url + strlen("/api/v1");
	bool post = !strcmp(method, "POST");
	if (!strcmp(path, "/login"))
		return post ? login(&x, body, len)
			    : error(&x, 405, "log in with POST");
	unsigned code = authenticate(&x);
	if (code)
		return error(&x, code, code == 401 ? "log in first"
						   : "not an administrator");
	enum MHD_Result rc;
	if (post && x.by_cookie) {
		const char *t = MHD_lookup_connection_value(c, MHD_HEADER_KIND,
							    "X-CSRF-Token");
		if (!t || strlen(t) != 64 || CRYPTO_memcmp(t, x.s.csrf, 64)) {
			rc = error(&x, 403, "missing or wrong X-CSRF-Token");
			goto out;
		}
	}
	if (!strcmp(path, "/logout") && post)
		rc = logout(&x);
	else if (!strcmp(path, "/clients/disconnect") && post)
		rc = admin_action(&x, MOAT_ADMIN_DISCONNECT, body, len);
	else if (!strcmp(path, "/sessions/delete") && post)
		rc = admin_action(&x, MOAT_ADMIN_DELETE_SESSION, body, len);
	else if (!strcmp(path, "/retained/clear") && post)
		rc = admin_action(&x, MOAT_ADMIN_CLEAR_RETAINED, body, len);
	else if (post)
		rc = error(&x, 405, "not a POST endpoint");
	else if (!strcmp(path, "/whoami"))
		rc = send_json(&x, 200,
			       json_pack("{s:s, s:s, s:s}", "user", x.s.user,
					 "auth", x.by_cookie ? "cookie"
							     : "bearer",
					 "csrf_token", x.s.csrf),
			       NULL);
	else if (!strcmp(path, "/leaks"))
		rc = list(&x, &l->b->http->events->leaks, "findings",
			  leak_keys);
	else if (!strcmp(path, "/leaks/counts"))
		rc = leak_counts(&x);
	else if (!strcmp(path, "/leaks/timeline"))
		rc = leak_timeline(&x);
	else if (!strcmp(path, "/leaks/clients"))
		rc = leak_clients(&x);
	else if (!strcmp(path, "/check"))
		rc = config_check(&x);
	else if (!strcmp(path, "/clients"))
		rc = admin_list(&x, MOAT_ADMIN_CLIENTS, "clients");
	else if (!strcmp(path, "/sessions"))
		rc = admin_list(&x, MOAT_ADMIN_SESSIONS, "sessions");
	else if (!strcmp(path, "/security-events"))
		rc = list(&x, &l->b->http->events->security, "events",
			  sec_keys);
	else
		rc = error(&x, 404, "no such endpoint");
out:
	OPENSSL_cleanse(&x.s, sizeof(x.s));
	return rc;
}
