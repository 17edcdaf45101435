/* protocol http listeners: /metrics, /healthz, /readyz, the JSON API
 * (http_api.c) and the leak console (console.c) on libmicrohttpd.
 *
 * Each http listener is one libmicrohttpd daemon with its own small
 * thread pool, polling its own sockets: a slow or hostile HTTP client
 * costs those threads at most, never an MQTT worker's loop.  What a peer
 * controls is bounded in the daemon's options: connections (in total and
 * per address), idle time, and the memory of one request (headers
 * included); only the API's POSTs have a body, of at most 1 KiB.
 *
 * A listener that is not anonymous (moat_cfg_listener_anonymous: off
 * loopback always) answers /metrics only to administrators, checked by
 * HTTP Basic authentication against the password file, with the login
 * back-off shared with MQTT (the broker's guard).  An administrator is a
 * user the ACL lets subscribe to $SYS/# (docs/metrics.md).  /healthz and
 * /readyz say only "ok"/"ready" and need no login, for probes. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "http_int.h"
#include "net/net_socket.h"

#define HTTP_POOL_THREADS 2
#define HTTP_MAX_CONNS 64
#define HTTP_MAX_CONNS_PER_IP 16
#define HTTP_TIMEOUT_S 10
#define HTTP_REQUEST_MEMORY 16384 /* request line and headers */
#define HTTP_MAX_CRED 256         /* user name, password */
#define HTTP_PEM_MAX (1024u * 1024u)

/* Marks a request the handler has seen (its first call decides). */
static int request_seen;

/* Is the request from an administrator (HTTP Basic)?  0 when it may go
 * on, or the status to answer (401, 403, 429). */
static unsigned authorise(struct http_listener *l, struct MHD_Connection *c)
{
	char *pw = NULL;
	char *user = MHD_basic_auth_get_username_password(c, &pw);
	unsigned code = 401; /* no credentials: asked to log in */
	if (user && pw && strlen(user) <= HTTP_MAX_CRED &&
	    strlen(pw) <= HTTP_MAX_CRED)
		code = moat__http_login(l, c, user, pw);
	MHD_free(user);
	MHD_free(pw);
	return code;
}

static enum MHD_Result metrics(struct http_listener *l,
			       struct MHD_Connection *c)
{
	if (!l->anonymous) {
		unsigned code = authorise(l, c);
		if (code == 401) {
			moat__http_count(l->b->http, 401);
			struct MHD_Response *r = MHD_create_response_from_buffer(
				14, (void *)(uintptr_t) "login needed.\n",
				MHD_RESPMEM_PERSISTENT);
			if (!r)
				return MHD_NO;
			enum MHD_Result rc = MHD_queue_basic_auth_fail_response(
				c, "moat", r);
			MHD_destroy_response(r);
			return rc;
		}
		if (code == 403)
			return moat__http_text(l, c, 403, "not an administrator\n");
		if (code)
			return moat__http_text(l, c, code, "too many failed logins: try "
						"again later\n");
	}
	char *body;
	size_t len;
	if (moat__metrics_render(l->b, &body, &len) != MOAT_OK)
		return moat__http_text(l, c, 500, "out of memory\n");
	return moat__http_respond(l, c, 200, "text/plain; version=0.0.4; charset=utf-8",
		    body, len, true);
}

/* A path we will look at: printable ASCII, no "..", no escapes (the
 * unescape callback leaves %XX as it came, so "%00" or "%2e" never turn
 * into something else). */
static bool path_ok(const char *url)
{
	if (url[0] != '/' || strstr(url, "..") || strchr(url, '%'))
		return false;
	for (const char *p = url; *p; p++)
		if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f)
			return false;
	return true;
}

/* The body of a POST to the API, while it comes (bounded). */
struct http_body {
	size_t len;
	char data[HTTP_API_BODY_MAX + 1];
};

static bool is_api(const char *url)
{
	return !strncmp(url, "/api/v1/", 8);
}

static enum MHD_Result route_get(struct http_listener *l,
				 struct MHD_Connection *c, const char *url,
				 const char *method)
{
	if (is_api(url))
		return moat__api_handle(l, c, url, method, NULL, 0);
	if (moat__console_path(url))
		return moat__console_serve(l, c, url);
	if (!strcmp(url, "/metrics"))
		return metrics(l, c);
	if (!strcmp(url, "/healthz"))
		return moat__http_text(l, c, 200, "ok\n");
	if (!strcmp(url, "/readyz")) {
		struct moat_broker *b = l->b;
		bool ready = b->started && !atomic_load(&b->stopping);
		return ready ? moat__http_text(l, c, 200, "ready\n")
			     : moat__http_text(l, c, 503, "not ready\n");
	}
	return moat__http_text(l, c, 404, "not found\n");
}

/* More of an API POST's body; answers once it is complete. */
static enum MHD_Result take_body(struct http_listener *l,
				 struct MHD_Connection *c, const char *url,
				 const char *method, const char *upload,
				 size_t *upload_size, void **state)
{
	struct http_body *hb = *state;
	if (*upload_size) {
		if (*upload_size > HTTP_API_BODY_MAX - hb->len) {
			/* Answer now; the rest is never read. */
			moat_free(hb);
			*state = &request_seen;
			*upload_size = 0;
			return moat__http_text(l, c, 413, "request body too "
							  "large\n");
		}
		memcpy(hb->data + hb->len, upload, *upload_size);
		hb->len += *upload_size;
		*upload_size = 0;
		return MHD_YES;
	}
	hb->data[hb->len] = '\0';
	return moat__api_handle(l, c, url, method, hb->data, hb->len);
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *c,
			      const char *url, const char *method,
			      const char *version, const char *upload,
			      size_t *upload_size, void **state)
{
	struct http_listener *l = cls;
	(void)version;
	/* Answered on the first call: a body that still comes is dropped
	 * (never buffered). */
	if (*state == &request_seen) {
		*upload_size = 0;
		return MHD_YES;
	}
	if (*state)
		return take_body(l, c, url, method, upload, upload_size, state);
	*state = &request_seen;
	bool post = !strcmp(method, "POST");
	if (strcmp(method, "GET") && strcmp(method, "HEAD") &&
	    !(post && is_api(url)))
		return moat__http_text(l, c, 405, "method not allowed\n");
	if (!path_ok(url))
		return moat__http_text(l, c, 400, "bad path\n");
	const char *clen = MHD_lookup_connection_value(
		c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
	const char *te = MHD_lookup_connection_value(
		c, MHD_HEADER_KIND, MHD_HTTP_HEADER_TRANSFER_ENCODING);
	if (post) {
		/* Only the API takes a body, of at most HTTP_API_BODY_MAX
		 * bytes, with its length declared. */
		char *end = NULL;
		unsigned long long n = clen ? strtoull(clen, &end, 10) : 0;
		if (te || !clen || *end || n > HTTP_API_BODY_MAX)
			return moat__http_text(l, c, 413, "request body too "
							  "large or of unknown "
							  "length\n");
		struct http_body *hb = moat_calloc(1, sizeof(*hb));
		if (!hb)
			return moat__http_text(l, c, 500, "out of memory\n");
		*state = hb;
		return MHD_YES;
	}
	if ((clen && strcmp(clen, "0")) || te)
		return moat__http_text(l, c, 413, "request body not accepted\n");
	return route_get(l, c, url, method);
}

static void request_done(void *cls, struct MHD_Connection *c, void **state,
			 enum MHD_RequestTerminationCode toe)
{
	(void)cls;
	(void)c;
	(void)toe;
	if (*state && *state != &request_seen)
		moat_free(*state);
	*state = NULL;
}

/* Leave the URL as it came: no %XX decoding (see path_ok). */
static size_t no_unescape(void *cls, struct MHD_Connection *c, char *s)
{
	(void)cls;
	(void)c;
	return strlen(s);
}

/* libmicrohttpd's messages (its callback type has no format attribute). */
static void mhd_log(void *cls, const char *fmt, va_list ap)
	__attribute__((format(printf, 2, 0)));

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
	struct http_listener *l = cls;
	char msg[300];
	vsnprintf(msg, sizeof(msg), fmt, ap);
	size_t n = strlen(msg);
	while (n && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
		msg[--n] = '\0';
	moat_info("http %s: %s", l->name, msg);
}

static int load_pem(struct http_listener *l, const struct moat_listener_cfg *lc)
{
	char err[300];
	size_t n;
	if (moat_file_read(lc->certfile, HTTP_PEM_MAX, false, &l->cert, &n,
			   err, sizeof(err)) != MOAT_OK ||
	    moat_file_read(lc->keyfile, HTTP_PEM_MAX, true, &l->key, &n, err,
			   sizeof(err)) != MOAT_OK) {
		moat_err_log("http listener %s: %s", l->name, err);
		return MOAT_EIO;
	}
	return MOAT_OK;
}

int moat__http_bind(struct moat_broker *b)
{
	size_t n = 0;
	for (size_t i = 0; i < b->cfg.nlisteners; i++)
		n += b->cfg.listeners[i].protocol == MOAT_PROTO_HTTP;
	if (!n)
		return MOAT_OK;
	b->http = moat_calloc(1, sizeof(*b->http) + n * sizeof(b->http->l[0]));
	if (!b->http)
		return MOAT_ENOMEM;
	pthread_mutex_init(&b->http->api_lock, NULL);
	if (moat__events_new(&b->http->events) != MOAT_OK)
		return MOAT_ENOMEM;
	for (size_t i = 0; i < b->cfg.nlisteners; i++) {
		const struct moat_listener_cfg *lc = &b->cfg.listeners[i];
		if (lc->protocol != MOAT_PROTO_HTTP)
			continue;
		struct http_listener *l = &b->http->l[b->http->n];
		char err[160];
		l->b = b;
		l->idx = i;
		l->tls = moat_listener_tls(lc);
		l->anonymous = moat_cfg_listener_anonymous(&b->cfg, i);
		l->fd = moat_net_listen(lc->addr, lc->port, &l->port, err,
					sizeof(err));
		if (l->fd < 0) {
			moat_err_log("listener %zu: %s", i + 1, err);
			return MOAT_EIO;
		}
		b->http->n++;
		bool v6 = strchr(lc->addr, ':') != NULL || !lc->addr[0];
		snprintf(l->name, sizeof(l->name), "%s%s%s:%u (%s)",
			 v6 ? "[" : "", lc->addr[0] ? lc->addr : "::",
			 v6 ? "]" : "", (unsigned)l->port,
			 l->tls ? "HTTPS" : "HTTP");
		if (l->tls && load_pem(l, lc) != MOAT_OK)
			return MOAT_EIO;
	}
	return MOAT_OK;
}

static int start_one(struct http_listener *l)
{
	const struct moat_listener_cfg *lc = &l->b->cfg.listeners[l->idx];
	unsigned flags = MHD_USE_AUTO_INTERNAL_THREAD | MHD_USE_ERROR_LOG;
	/* GnuTLS priorities: forward-secret AEAD suites, TLS 1.2 or 1.3. */
	const char *prio =
		lc->tls_version == MOAT_TLS_13
			? "SECURE256:+SECURE128:-VERS-ALL:+VERS-TLS1.3:"
			  "%SERVER_PRECEDENCE"
			: "SECURE256:+SECURE128:-VERS-ALL:+VERS-TLS1.3:"
			  "+VERS-TLS1.2:-CIPHER-ALL:+AES-256-GCM:+AES-128-GCM:"
			  "+CHACHA20-POLY1305:-KX-ALL:+ECDHE-ECDSA:+ECDHE-RSA:"
			  "%SERVER_PRECEDENCE";
	struct MHD_OptionItem tls_opts[] = {
		{MHD_OPTION_HTTPS_MEM_CERT, 0, l->cert},
		{MHD_OPTION_HTTPS_MEM_KEY, 0, l->key},
		{MHD_OPTION_HTTPS_PRIORITIES, 0, (void *)(uintptr_t)prio},
		{MHD_OPTION_END, 0, NULL},
	};
	if (l->tls)
		flags |= MHD_USE_TLS;
	else
		tls_opts[0].option = MHD_OPTION_END;
	l->d = MHD_start_daemon(
		flags, 0, NULL, NULL, handle, l, MHD_OPTION_EXTERNAL_LOGGER,
		mhd_log, l, MHD_OPTION_LISTEN_SOCKET, l->fd,
		MHD_OPTION_THREAD_POOL_SIZE, (unsigned)HTTP_POOL_THREADS,
		MHD_OPTION_CONNECTION_LIMIT, (unsigned)HTTP_MAX_CONNS,
		MHD_OPTION_PER_IP_CONNECTION_LIMIT,
		(unsigned)HTTP_MAX_CONNS_PER_IP, MHD_OPTION_CONNECTION_TIMEOUT,
		(unsigned)HTTP_TIMEOUT_S, MHD_OPTION_CONNECTION_MEMORY_LIMIT,
		(size_t)HTTP_REQUEST_MEMORY, MHD_OPTION_STRICT_FOR_CLIENT, 1,
		MHD_OPTION_UNESCAPE_CALLBACK, no_unescape, NULL,
		MHD_OPTION_NOTIFY_COMPLETED, request_done, NULL,
		MHD_OPTION_SIGPIPE_HANDLED_BY_APP, 1, MHD_OPTION_ARRAY,
		tls_opts, MHD_OPTION_END);
	if (!l->d) {
		moat_err_log("http listener %s: cannot start the HTTP server",
			     l->name);
		return MOAT_EIO;
	}
	l->fd = -1; /* the daemon closes it */
	moat_notice("listening on %s: /metrics /healthz /readyz%s", l->name,
		    l->anonymous ? "" : " (/metrics for administrators)");
	return MOAT_OK;
}

int moat__http_start(struct moat_broker *b)
{
	for (size_t i = 0; b->http && i < b->http->n; i++)
		if (start_one(&b->http->l[i]) != MOAT_OK)
			return MOAT_EIO;
	return MOAT_OK;
}

void moat__http_stop(struct moat_broker *b)
{
	for (size_t i = 0; b->http && i < b->http->n; i++) {
		struct http_listener *l = &b->http->l[i];
		if (l->d)
			MHD_stop_daemon(l->d);
		l->d = NULL;
		if (l->fd >= 0)
			close(l->fd);
		l->fd = -1;
	}
}

void moat__http_free(struct moat_broker *b)
{
	if (!b->http)
		return;
	moat__http_stop(b);
	for (size_t i = 0; i < b->http->n; i++) {
		struct http_listener *l = &b->http->l[i];
		if (l->key)
			OPENSSL_cleanse(l->key, strlen(l->key));
		moat_free(l->key);
		moat_free(l->cert);
	}
	moat__events_free(&b->http->events);
	OPENSSL_cleanse(b->http->sessions, sizeof(b->http->sessions));
	pthread_mutex_destroy(&b->http->api_lock);
	MOAT_FREE(b->http);
}
