/* The WebSocket opening handshake (RFC 6455 §4.2), server side: the
 * client's HTTP/1.1 Upgrade request, judged against the listener's path
 * and Origin allowlist, and the answer. */
#include <ctype.h>
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "codec/ws.h"

static const char WS_GUID[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

struct hdrs {
	struct moat_ws_span host, upgrade, connection, version;
	bool upgrade_ok, connection_ok;
	int nkeys, norigins;
	const char *protocol;
};

static bool span_ieq(const char *p, size_t n, const char *lit)
{
	return strlen(lit) == n && !strncasecmp(p, lit, n);
}

static bool is_tchar(unsigned char ch)
{
	return isalnum(ch) || (ch && strchr("!#$%&'*+-.^_`|~", ch));
}

/* Calls visit on each comma-separated element of v (trimmed); stops and
 * returns true when visit does. */
static bool each_token(const char *v, size_t n,
		       bool (*visit)(const char *t, size_t tn, void *arg),
		       void *arg)
{
	size_t i = 0;
	while (i <= n) {
		size_t j = i;
		while (j < n && v[j] != ',')
			j++;
		size_t a = i, b = j;
		while (a < b && (v[a] == ' ' || v[a] == '\t'))
			a++;
		while (b > a && (v[b - 1] == ' ' || v[b - 1] == '\t'))
			b--;
		if (b > a && visit(v + a, b - a, arg))
			return true;
		i = j + 1;
	}
	return false;
}

/* Case-insensitive equality with the span arg points to. */
static bool is_word(const char *t, size_t tn, void *arg)
{
	const struct moat_ws_span *w = arg;
	return tn == w->n && !strncasecmp(t, w->p, tn);
}

static bool has_word(const char *v, size_t n, const char *word)
{
	struct moat_ws_span w = {word, strlen(word)};
	return each_token(v, n, is_word, &w);
}

static bool pick_protocol(const char *t, size_t tn, void *arg)
{
	/* MQTT 5.0 §6 / 3.1.1 §6: "mqtt"; "mqttv3.1" for 3.1 clients. */
	const char **proto = arg;
	if (tn == 4 && !memcmp(t, "mqtt", 4))
		*proto = "mqtt";
	else if (tn == 8 && !memcmp(t, "mqttv3.1", 8))
		*proto = "mqttv3.1";
	return *proto != NULL;
}

static bool key_valid(struct moat_ws_span k)
{
	/* base64 of 16 bytes: 22 characters and "==" (§4.1). */
	if (k.n != 24 || k.p[22] != '=' || k.p[23] != '=')
		return false;
	for (size_t i = 0; i < 22; i++)
		if (!isalnum((unsigned char)k.p[i]) && k.p[i] != '+' &&
		    k.p[i] != '/')
			return false;
	return true;
}

/* Origins compare case-insensitively (browsers send them lowercase). */
static bool origin_allowed(struct moat_ws_span o, const char *list)
{
	return each_token(list, strlen(list), is_word, &o);
}

/* An Origin naming the broker itself (scheme://Host): moatd serves no
 * pages, so no other site's script can run there.  Non-browser clients
 * such as paho-mqtt send this. */
static bool same_origin(struct moat_ws_span o, struct moat_ws_span host)
{
	const char *sep = o.n > 3 ? memmem(o.p, o.n, "://", 3) : NULL;
	if (!sep)
		return false;
	size_t off = (size_t)(sep - o.p) + 3;
	return o.n - off == host.n && host.n &&
	       !strncasecmp(o.p + off, host.p, host.n);
}

/* One header line (name, value trimmed); 0 or an HTTP status. */
static int header(struct hdrs *h, struct moat_ws_request *req,
		  const char *name, size_t nn, const char *v, size_t vn)
{
	struct moat_ws_span val = {v, vn};
	if (span_ieq(name, nn, "host")) {
		if (h->host.p)
			return 400;
		h->host = val;
	} else if (span_ieq(name, nn, "upgrade")) {
		h->upgrade_ok |= has_word(v, vn, "websocket");
	} else if (span_ieq(name, nn, "connection")) {
		h->connection_ok |= has_word(v, vn, "upgrade");
	} else if (span_ieq(name, nn, "sec-websocket-key")) {
		h->nkeys++;
		req->key = val;
	} else if (span_ieq(name, nn, "sec-websocket-version")) {
		if (h->version.p)
			return 400;
		h->version = val;
	} else if (span_ieq(name, nn, "sec-websocket-protocol")) {
		if (!h->protocol)
			each_token(v, vn, pick_protocol, &h->protocol);
	} else if (span_ieq(name, nn, "origin")) {
		h->norigins++;
		req->origin = val;
	} else if (span_ieq(name, nn, "x-forwarded-for")) {
		/* The last address is the one the nearest proxy saw. */
		const char *c = memchr(v, ',', vn), *last = v;
		while (c) {
			last = c + 1;
			c = memchr(last, ',', vn - (size_t)(last - v));
		}
		while (last < v + vn && (*last == ' ' || *last == '\t'))
			last++;
		req->forwarded.p = last;
		req->forwarded.n = vn - (size_t)(last - v);
	}
	return 0;
}

/* Split "name: value" at line[0..n): 0 or 400. */
static int header_line(struct hdrs *h, struct moat_ws_request *req,
		       const char *line, size_t n)
{
	size_t i = 0;
	while (i < n && is_tchar((unsigned char)line[i]))
		i++;
	if (i == 0 || i >= n || line[i] != ':')
		return 400; /* no name, folded line, or space before ':' */
	size_t a = i + 1, b = n;
	for (size_t k = a; k < n; k++) {
		unsigned char ch = (unsigned char)line[k];
		if ((ch < 0x20 && ch != '\t') || ch == 0x7f)
			return 400;
	}
	while (a < b && (line[a] == ' ' || line[a] == '\t'))
		a++;
	while (b > a && (line[b - 1] == ' ' || line[b - 1] == '\t'))
		b--;
	return header(h, req, line, i, line + a, b - a);
}

/* "GET /path?query HTTP/1.1": 0 or a status. */
static int request_line(struct moat_ws_request *req, const char *l, size_t n)
{
	if (n < 4 || memcmp(l, "GET ", 4))
		return 405;
	const char *t = l + 4, *end = l + n;
	const char *sp = memchr(t, ' ', (size_t)(end - t));
	if (!sp || *t != '/' || (size_t)(end - sp - 1) != 8 ||
	    memcmp(sp + 1, "HTTP/1.1", 8))
		return 400;
	for (const char *q = t; q < sp; q++)
		if ((unsigned char)*q <= 0x20 || (unsigned char)*q >= 0x7f)
			return 400;
	const char *qm = memchr(t, '?', (size_t)(sp - t));
	req->path.p = t;
	req->path.n = (size_t)((qm ? qm : sp) - t);
	return 0;
}

static const char *status_why(int status)
{
	switch (status) {
	case 403: return "Origin not allowed (websockets_origin)";
	case 404: return "path not served (websockets_path)";
	case 405: return "not an HTTP GET request";
	case 426: return "unsupported Sec-WebSocket-Version (13 only)";
	case 431: return "request headers too large or too many";
	default: return "bad WebSocket upgrade request";
	}
}

static int judge(const struct hdrs *h, const struct moat_ws_request *req,
		 const struct moat_ws_policy *pol, const char **why)
{
	if (!h->host.p || !h->upgrade_ok || !h->connection_ok) {
		*why = "not a WebSocket upgrade (Host, Upgrade: websocket, "
		       "Connection: Upgrade)";
		return 400;
	}
	if (!h->version.p || !span_ieq(h->version.p, h->version.n, "13"))
		return 426;
	if (h->nkeys != 1 || !key_valid(req->key)) {
		*why = "missing, repeated or malformed Sec-WebSocket-Key";
		return 400;
	}
	if (req->path.n != strlen(pol->path) ||
	    memcmp(req->path.p, pol->path, req->path.n))
		return 404;
	if (h->norigins > 1 ||
	    (h->norigins == 1 && !same_origin(req->origin, h->host) &&
	     !origin_allowed(req->origin, pol->origins)))
		return 403;
	if (!h->protocol) {
		*why = "no Sec-WebSocket-Protocol mqtt (or mqttv3.1) offered";
		return 400;
	}
	return 0;
}

int moat_ws_parse_request(const char *buf, size_t n,
			  const struct moat_ws_policy *pol,
			  struct moat_ws_request *req, const char **why)
{
	memset(req, 0, sizeof(*req));
	*why = NULL;
	int st = 0;
	/* Refuse what is not a GET at once (say, MQTT bytes). */
	if (n >= 1 && memcmp(buf, "GET ", MOAT_MIN(n, (size_t)4)))
		st = 405;
	const char *end = st ? NULL : memmem(buf, n, "\r\n\r\n", 4);
	if (!st && !end)
		st = n >= MOAT_WS_MAX_REQUEST ? 431 : MOAT_EAGAIN;
	if (!st && (size_t)(end - buf) + 4 > MOAT_WS_MAX_REQUEST)
		st = 431;
	if (st)
		goto out;
	req->len = (size_t)(end - buf) + 4;
	struct hdrs h = {0};
	const char *line = buf;
	int nlines = 0;
	while (!st && line < end + 2) {
		const char *eol = memmem(line, (size_t)(end + 2 - line), "\r\n", 2);
		size_t ln = (size_t)(eol - line);
		if (nlines == 0)
			st = request_line(req, line, ln);
		else if (nlines > MOAT_WS_MAX_HEADERS)
			st = 431;
		else
			st = header_line(&h, req, line, ln);
		nlines++;
		line = eol + 2;
	}
	if (!st)
		st = judge(&h, req, pol, why);
	req->protocol = h.protocol;
out:
	if (st && st != MOAT_EAGAIN && !*why)
		*why = status_why(st);
	return st ? st : MOAT_OK;
}

void moat_ws_accept_of(const char *key, size_t n, char out[29])
{
	unsigned char sha[SHA_DIGEST_LENGTH], in[64 + sizeof(WS_GUID)];
	n = MOAT_MIN(n, (size_t)64); /* keys are 24 characters */
	memcpy(in, key, n);
	memcpy(in + n, WS_GUID, sizeof(WS_GUID) - 1);
	SHA1(in, n + sizeof(WS_GUID) - 1, sha);
	EVP_EncodeBlock((unsigned char *)out, sha, sizeof(sha));
}

size_t moat_ws_response_101(char *dst, size_t dstsz,
			    const struct moat_ws_request *req)
{
	char accept[29];
	moat_ws_accept_of(req->key.p, req->key.n, accept);
	int w = snprintf(dst, dstsz,
			 "HTTP/1.1 101 Switching Protocols\r\n"
			 "Upgrade: websocket\r\n"
			 "Connection: Upgrade\r\n"
			 "Sec-WebSocket-Accept: %s\r\n"
			 "Sec-WebSocket-Protocol: %s\r\n\r\n",
			 accept, req->protocol);
	return w > 0 && (size_t)w < dstsz ? (size_t)w : 0;
}

size_t moat_ws_response_error(char *dst, size_t dstsz, int status)
{
	const char *text;
	switch (status) {
	case 403: text = "Forbidden"; break;
	case 404: text = "Not Found"; break;
	case 405: text = "Method Not Allowed"; break;
	case 426: text = "Upgrade Required"; break;
	case 431: text = "Request Header Fields Too Large"; break;
	default: status = 400; text = "Bad Request"; break;
	}
	int w = snprintf(dst, dstsz,
			 "HTTP/1.1 %d %s\r\n%s"
			 "Connection: close\r\nContent-Length: 0\r\n\r\n",
			 status, text,
			 status == 426 ? "Sec-WebSocket-Version: 13\r\n" : "");
	return w > 0 && (size_t)w < dstsz ? (size_t)w : 0;
}

/* ---- client side ---------------------------------------------------------- */

size_t moat_ws_request_build(char *dst, size_t dstsz, const char *host,
			     const char *path, const char *key)
{
	int w = snprintf(dst, dstsz,
			 "GET %s HTTP/1.1\r\n"
			 "Host: %s\r\n"
			 "Upgrade: websocket\r\n"
			 "Connection: Upgrade\r\n"
			 "Sec-WebSocket-Key: %s\r\n"
			 "Sec-WebSocket-Version: 13\r\n"
			 "Sec-WebSocket-Protocol: mqtt\r\n\r\n",
			 path, host, key);
	return w > 0 && (size_t)w < dstsz ? (size_t)w : 0;
}

struct answer {
	bool upgrade, connection, accept, protocol;
};

static void answer_header(struct answer *a, const char *accept,
			  const char *name, size_t nn, const char *v,
			  size_t vn)
{
	if (span_ieq(name, nn, "upgrade"))
		a->upgrade |= has_word(v, vn, "websocket");
	else if (span_ieq(name, nn, "connection"))
		a->connection |= has_word(v, vn, "upgrade");
	else if (span_ieq(name, nn, "sec-websocket-accept"))
		a->accept = vn == strlen(accept) && !memcmp(v, accept, vn);
	else if (span_ieq(name, nn, "sec-websocket-protocol"))
		a->protocol = vn == 4 && !memcmp(v, "mqtt", 4);
}

int moat_ws_parse_response(const char *buf, size_t n, const char *accept,
			   size_t *len, const char **why)
{
	const char *end = memmem(buf, n, "\r\n\r\n", 4);
	*why = "WebSocket answer too long";
	if (!end)
		return n >= MOAT_WS_MAX_REQUEST ? MOAT_EPROTO : MOAT_EAGAIN;
	*len = (size_t)(end - buf) + 4;
	if (*len > MOAT_WS_MAX_REQUEST)
		return MOAT_EPROTO;
	*why = "the server did not switch to WebSocket (no HTTP 101)";
	if (*len < 13 || memcmp(buf, "HTTP/1.1 101", 12) ||
	    (buf[12] != ' ' && buf[12] != '\r'))
		return MOAT_EPROTO;
	struct answer a = {0};
	const char *line = (const char *)memmem(buf, *len, "\r\n", 2) + 2;
	while (line < end + 2) {
		const char *eol = memmem(line, (size_t)(end + 2 - line), "\r\n", 2);
		const char *colon = memchr(line, ':', (size_t)(eol - line));
		if (colon) {
			const char *v = colon + 1, *ve = eol;
			while (v < ve && (*v == ' ' || *v == '\t'))
				v++;
			while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
				ve--;
			answer_header(&a, accept, line, (size_t)(colon - line), v,
				      (size_t)(ve - v));
		}
		line = eol + 2;
	}
	*why = !a.upgrade || !a.connection
		       ? "WebSocket answer without Upgrade/Connection"
	       : !a.accept   ? "wrong Sec-WebSocket-Accept"
	       : !a.protocol ? "the server did not select sub-protocol mqtt"
			     : NULL;
	return *why ? MOAT_EPROTO : MOAT_OK;
}
