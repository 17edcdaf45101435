/* The WebSocket layer: the opening handshake, then binary frames in both
 * directions.  Server role (moatd): reads unmask payload bytes straight
 * into the caller's buffer; writes send a frame header with the first
 * bytes, then the caller's bytes as they are (no copy).  Client role
 * (the command-line clients): the request goes out first and the answer
 * is checked; frames are masked, so every write copies (at most
 * WS_STAGE bytes at a time).  The layer's own output (the handshake
 * answer, a pong, a close frame) waits in a small buffer and goes out
 * between data frames. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <string.h>

#include "common/moat_common.h"
#include "net/net_ws.h"

/* Raw input held: the whole request during the handshake, then at most
 * frame headers and control frames (payload goes to the caller).  It
 * starts small (most requests are a few hundred bytes) and doubles up to
 * the request limit. */
#define WS_IN_FIRST ((size_t)1024)
#define WS_IN_CAP ((size_t)MOAT_WS_MAX_REQUEST)
/* Largest data frame we send (the peer takes any size). */
#define WS_OUT_FRAME ((uint64_t)256 * 1024)
/* Data frames without payload in a row before it is abuse. */
#define WS_MAX_EMPTY_FRAMES 64

enum ws_state { WS_HANDSHAKE, WS_OPEN, WS_CLOSING };

struct net_ws {
	struct moat_net base;
	uint8_t state;       /* enum ws_state */
	bool fragmented;     /* a data message is open (continuations due) */
	bool pong_due;       /* answer the last ping when the wire is free */
	uint8_t pong_len;
	uint8_t empty_frames;
	bool client;         /* client role: mask what we send */
	uint8_t hdr_len, hdr_off; /* header of the data frame being sent */
	uint16_t close_code; /* sent by shutdown */
	uint16_t ctl_len, ctl_off;
	uint64_t max_frame;
	uint64_t out_left;     /* payload of the data frame being sent */
	uint64_t payload_left; /* payload of the data frame being read */
	uint64_t mask_off;
	uint64_t out_off;      /* client: payload of that frame sent so far */
	uint8_t mask[4];
	uint8_t out_mask[4];   /* client: the mask of the frame being sent */
	uint8_t hdr[MOAT_WS_MAX_HEADER];
	uint8_t *in; /* raw bytes read, NULL when empty */
	size_t in_len, in_cap;
	char *path, *origins; /* server: the policy, until the handshake */
	char *hello;          /* client: accept value (29), then the request */
	size_t hello_len, hello_off;
	char forwarded[INET6_ADDRSTRLEN]; /* X-Forwarded-For, "" = none */
	uint8_t pong[MOAT_WS_MAX_CONTROL];
	uint8_t ctl[256];
};

static bool frame_in_progress(const struct net_ws *ws)
{
	return ws->out_left > 0 || ws->hdr_off < ws->hdr_len;
}

static void set_output_flag(struct net_ws *ws)
{
	if (ws->ctl_off < ws->ctl_len || ws->pong_due ||
	    ws->hello_off < ws->hello_len)
		ws->base.want |= MOAT_NET_HAS_OUTPUT;
	else
		ws->base.want &= (uint8_t)~MOAT_NET_HAS_OUTPUT;
}

/* A control frame of ours into dst (MOAT_WS_MAX_HEADER + n bytes):
 * masked with a fresh random mask in the client role (RFC 6455 §5.3). */
static size_t control_encode(const struct net_ws *ws, uint8_t *dst,
			     uint8_t op, const uint8_t *p, size_t n)
{
	uint8_t mask[4] = {0};
	if (ws->client && RAND_bytes(mask, 4) != 1)
		mask[0] = 0x5a; /* (a predictable mask only weakens §10.3) */
	size_t h = moat_ws_frame_encode(dst, op, true, n, ws->client ? mask
								     : NULL);
	memcpy(dst + h, p, n);
	moat_ws_unmask(dst + h, n, mask, 0);
	return h + n;
}

/* The client's request, before anything else. */
static int flush_hello(struct net_ws *ws, char *why, size_t whysz)
{
	while (ws->hello_off < ws->hello_len) {
		ssize_t r = moat_net_write(ws->base.lower,
					   (const uint8_t *)ws->hello +
						   ws->hello_off,
					   ws->hello_len - ws->hello_off, why,
					   whysz);
		if (r <= 0) {
			set_output_flag(ws);
			return (int)r;
		}
		ws->hello_off += (size_t)r;
	}
	return 1;
}

static int ws_flush(struct moat_net *n, char *why, size_t whysz)
{
	struct net_ws *ws = (struct net_ws *)n;
	int hr = flush_hello(ws, why, whysz);
	if (hr != 1)
		return hr;
	for (;;) {
		while (ws->ctl_off < ws->ctl_len) {
			ssize_t r = moat_net_write(n->lower,
						   ws->ctl + ws->ctl_off,
						   ws->ctl_len - ws->ctl_off,
						   why, whysz);
			if (r <= 0) {
				set_output_flag(ws);
				return (int)r;
			}
			ws->ctl_off = (uint16_t)(ws->ctl_off + r);
		}
		ws->ctl_len = ws->ctl_off = 0;
		/* A pong waits for the data frame being sent to end (the
		 * caller still holds its bytes and will write them). */
		if (!ws->pong_due || frame_in_progress(ws))
			break;
		ws->ctl_len = (uint16_t)control_encode(ws, ws->ctl, WS_OP_PONG,
						       ws->pong, ws->pong_len);
		ws->pong_due = false;
	}
	set_output_flag(ws);
	return 1;
}

/* Queue bytes of our own (the caller checked they fit) and try them. */
static void ctl_queue(struct net_ws *ws, const void *p, size_t len)
{
	memcpy(ws->ctl + ws->ctl_len, p, len);
	ws->ctl_len = (uint16_t)(ws->ctl_len + len);
	ws->base.want |= MOAT_NET_HAS_OUTPUT;
}

static void queue_close(struct net_ws *ws, uint16_t code)
{
	uint8_t f[MOAT_WS_MAX_HEADER + 2];
	const uint8_t st[2] = {(uint8_t)(code >> 8), (uint8_t)code};
	size_t len = control_encode(ws, f, WS_OP_CLOSE, st, 2);
	if (ws->ctl_len + len <= sizeof(ws->ctl))
		ctl_queue(ws, f, len);
}

/* Refuse: the close frame with code goes out at shutdown. */
static ssize_t fail(struct net_ws *ws, uint16_t code, char *why, size_t whysz,
		    const char *what)
{
	ws->close_code = code;
	snprintf(why, whysz, "WebSocket %s (close %u)", what, (unsigned)code);
	return MOAT_NET_REFUSED;
}

static void consume(struct net_ws *ws, size_t k)
{
	memmove(ws->in, ws->in + k, ws->in_len - k);
	ws->in_len -= k;
}

static ssize_t read_lower(struct net_ws *ws, char *why, size_t whysz)
{
	if (!ws->in)
		ws->in_cap = 0;
	if (ws->in_len == ws->in_cap) {
		size_t cap = ws->in_cap ? MOAT_MIN(2 * ws->in_cap, WS_IN_CAP)
					: WS_IN_FIRST;
		/* (Full cannot happen: a full buffer starts with a whole
		 * request, frame header or control frame, taken first.) */
		uint8_t *in = cap > ws->in_cap ? moat_realloc(ws->in, cap) : NULL;
		if (!in) {
			snprintf(why, whysz, "%s",
				 cap > ws->in_cap
					 ? "out of memory for WebSocket input"
					 : "WebSocket input buffer full");
			return MOAT_NET_CLOSED;
		}
		ws->in = in;
		ws->in_cap = cap;
	}
	ssize_t r = moat_net_read(ws->base.lower, ws->in + ws->in_len,
				  ws->in_cap - ws->in_len, why, whysz);
	if (r > 0)
		ws->in_len += (size_t)r;
	return r;
}

static void keep_forwarded(struct net_ws *ws, struct moat_ws_span f)
{
	struct in6_addr a;
	if (!f.p || f.n >= sizeof(ws->forwarded))
		return;
	memcpy(ws->forwarded, f.p, f.n);
	ws->forwarded[f.n] = '\0';
	if (inet_pton(AF_INET, ws->forwarded, &a) != 1 &&
	    inet_pton(AF_INET6, ws->forwarded, &a) != 1)
		ws->forwarded[0] = '\0';
}

const char *moat_net_ws_forwarded(struct moat_net *n)
{
	struct net_ws *ws = (struct net_ws *)moat_net_find(n, "ws");
	return ws && ws->forwarded[0] ? ws->forwarded : NULL;
}

static ssize_t handshake(struct net_ws *ws, char *why, size_t whysz)
{
	struct moat_ws_policy pol = {ws->path, ws->origins};
	for (;;) {
		ssize_t r = read_lower(ws, why, whysz);
		if (r <= 0)
			return r;
		struct moat_ws_request req;
		const char *hwhy;
		int st = moat_ws_parse_request((const char *)ws->in, ws->in_len,
					       &pol, &req, &hwhy);
		if (st == MOAT_EAGAIN)
			continue;
		char ans[sizeof(ws->ctl)];
		if (st != MOAT_OK) {
			size_t len = moat_ws_response_error(ans, sizeof(ans),
							    st);
			ctl_queue(ws, ans, len);
			ws->state = WS_CLOSING;
			snprintf(why, whysz,
				 "WebSocket handshake refused (HTTP %d): %s",
				 st, hwhy);
			return MOAT_NET_REFUSED;
		}
		ctl_queue(ws, ans, moat_ws_response_101(ans, sizeof(ans), &req));
		keep_forwarded(ws, req.forwarded);
		consume(ws, req.len);
		MOAT_FREE(ws->path); /* origins share the allocation */
		ws->origins = NULL;
		ws->state = WS_OPEN;
		int f = ws_flush(&ws->base, why, whysz);
		return f < 0 ? f : 1;
	}
}

/* Client role: send the request, then read and check the answer: 1 once
 * open, MOAT_NET_AGAIN, or a finishing code. */
static ssize_t client_handshake(struct net_ws *ws, char *why, size_t whysz)
{
	int f = flush_hello(ws, why, whysz);
	if (f != 1)
		return f;
	for (;;) {
		size_t len = 0;
		const char *hwhy = NULL;
		int st = ws->in_len ? moat_ws_parse_response(
					      (const char *)ws->in, ws->in_len,
					      ws->hello, &len, &hwhy)
				    : MOAT_EAGAIN;
		if (st == MOAT_OK) {
			consume(ws, len);
			MOAT_FREE(ws->hello);
			ws->hello_len = ws->hello_off = 0;
			ws->state = WS_OPEN;
			set_output_flag(ws);
			return 1;
		}
		if (st != MOAT_EAGAIN) {
			ws->state = WS_CLOSING;
			snprintf(why, whysz, "WebSocket handshake failed: %s",
				 hwhy);
			return MOAT_NET_REFUSED;
		}
		ssize_t r = read_lower(ws, why, whysz);
		if (r <= 0)
			return r;
	}
}

static ssize_t control_frame(struct net_ws *ws, const struct moat_ws_frame *f,
			     uint8_t *p, char *why, size_t whysz)
{
	moat_ws_unmask(p, (size_t)f->len, f->mask, 0);
	if (f->opcode == WS_OP_PING) {
		/* Only the latest ping is answered (§5.5.3): a flood costs
		 * one pending pong. */
		memcpy(ws->pong, p, (size_t)f->len);
		ws->pong_len = (uint8_t)f->len;
		ws->pong_due = true;
		int r = ws_flush(&ws->base, why, whysz);
		return r < 0 ? r : 1;
	}
	if (f->opcode == WS_OP_CLOSE) {
		uint16_t code, bad = moat_ws_close_parse(p, (size_t)f->len,
							 &code);
		if (bad)
			return fail(ws, bad, why, whysz, "bad close frame");
		/* Echo the status (§5.5.1); none given is a normal close. */
		ws->close_code = code == 1005 ? WS_CLOSE_NORMAL : code;
		snprintf(why, whysz, "WebSocket closed by peer (close %u)",
			 (unsigned)code);
		return MOAT_NET_CLOSED;
	}
	return 1; /* a pong: nothing to do */
}

/* Take the next frame header (and a whole control frame) from the input:
 * 1 = progress, 0 = more input needed, or a finishing code. */
static ssize_t next_frame(struct net_ws *ws, char *why, size_t whysz)
{
	struct moat_ws_frame f;
	int rc = moat_ws_frame_header(ws->in, ws->in_len, &f);
	if (rc == MOAT_EAGAIN)
		return 0;
	if (rc)
		return fail(ws, WS_CLOSE_PROTOCOL, why, whysz,
			    "frame length over 2^63");
	uint16_t bad = moat_ws_frame_check(&f, ws->fragmented, ws->max_frame,
					   !ws->client);
	if (bad == WS_CLOSE_UNSUPPORTED)
		return fail(ws, bad, why, whysz, "text frame (MQTT is binary)");
	if (bad == WS_CLOSE_TOO_BIG)
		return fail(ws, bad, why, whysz,
			    "frame larger than max_packet_size");
	if (bad)
		return fail(ws, bad, why, whysz, "protocol error");
	if (f.opcode & 0x08) {
		if (ws->in_len < f.hlen + f.len)
			return 0;
		ssize_t r = control_frame(ws, &f, ws->in + f.hlen, why, whysz);
		if (r > 0)
			consume(ws, f.hlen + (size_t)f.len);
		return r;
	}
	ws->empty_frames = f.len ? 0 : (uint8_t)(ws->empty_frames + 1);
	if (ws->empty_frames > WS_MAX_EMPTY_FRAMES)
		return fail(ws, WS_CLOSE_POLICY, why, whysz,
			    "flood of empty frames");
	ws->fragmented = !f.fin;
	ws->payload_left = f.len;
	ws->mask_off = 0;
	memcpy(ws->mask, f.mask, 4);
	consume(ws, f.hlen);
	return 1;
}

static size_t take_payload(struct net_ws *ws, uint8_t *dst, size_t room)
{
	size_t k = (size_t)MOAT_MIN((uint64_t)MOAT_MIN(room, ws->in_len),
				    ws->payload_left);
	memcpy(dst, ws->in, k);
	moat_ws_unmask(dst, k, ws->mask, ws->mask_off);
	ws->mask_off += k;
	ws->payload_left -= k;
	consume(ws, k);
	return k;
}

/* Payload straight from the layer below into dst, when nothing waits. */
static ssize_t read_direct(struct net_ws *ws, uint8_t *dst, size_t room,
			   char *why, size_t whysz)
{
	size_t want = (size_t)MOAT_MIN((uint64_t)room, ws->payload_left);
	ssize_t r = moat_net_read(ws->base.lower, dst, want, why, whysz);
	if (r > 0) {
		moat_ws_unmask(dst, (size_t)r, ws->mask, ws->mask_off);
		ws->mask_off += (uint64_t)r;
		ws->payload_left -= (uint64_t)r;
	}
	return r;
}

static ssize_t ws_read(struct moat_net *n, uint8_t *dst, size_t len,
		       char *why, size_t whysz)
{
	struct net_ws *ws = (struct net_ws *)n;
	if (ws->state == WS_CLOSING) {
		snprintf(why, whysz, "WebSocket closing");
		return MOAT_NET_CLOSED;
	}
	if (ws->state == WS_HANDSHAKE) {
		ssize_t r = ws->client ? client_handshake(ws, why, whysz)
				       : handshake(ws, why, whysz);
		if (r <= 0)
			return r;
	}
	size_t got = 0;
	ssize_t r = 0;
	while (got < len) {
		if (ws->payload_left && ws->in_len) {
			got += take_payload(ws, dst + got, len - got);
			continue;
		}
		if (!ws->payload_left && ws->in_len) {
			r = next_frame(ws, why, whysz);
			if (r < 0)
				break;
			if (r > 0)
				continue;
		}
		if (got)
			break; /* hand over what came; read more next time */
		if (ws->payload_left) {
			r = read_direct(ws, dst, len, why, whysz);
			if (r <= 0)
				break;
			got = (size_t)r;
			continue;
		}
		r = read_lower(ws, why, whysz);
		if (r <= 0)
			break;
	}
	if (!ws->in_len)
		MOAT_FREE(ws->in); /* an idle connection keeps no buffer */
	if (got)
		return (ssize_t)got; /* an error comes again on the next call */
	return r;
}

/* Bytes (or a verdict) the next read gets without the socket. */
static size_t ws_pending(const struct moat_net *n)
{
	const struct net_ws *ws = (const struct net_ws *)n;
	if (ws->state != WS_OPEN || !ws->in_len)
		return 0;
	if (ws->payload_left)
		return ws->in_len;
	struct moat_ws_frame f;
	int rc = moat_ws_frame_header(ws->in, ws->in_len, &f);
	if (rc == MOAT_EAGAIN)
		return 0;
	if (rc || !(f.opcode & 0x08) || f.len > MOAT_WS_MAX_CONTROL)
		return 1;
	return ws->in_len >= f.hlen + f.len ? 1 : 0;
}

/* A frame's header (what is left of it) goes out together with the next
 * payload bytes (up to WS_STAGE, copied, and masked in the client role):
 * one TCP segment or TLS record for a small message, not two.  Payload
 * bytes accepted (>= 0: the header alone may have gone out), or a
 * finishing code.  The same frame state gives the same bytes if the
 * write must be retried (TLS requires it). */
#define WS_STAGE ((size_t)2048)

static ssize_t write_staged(struct net_ws *ws, const uint8_t *p, size_t len,
			    char *why, size_t whysz)
{
	uint8_t buf[MOAT_WS_MAX_HEADER + WS_STAGE];
	size_t h = (size_t)(ws->hdr_len - ws->hdr_off);
	size_t m = (size_t)MOAT_MIN(MOAT_MIN(ws->out_left, (uint64_t)WS_STAGE),
				    (uint64_t)len);
	memcpy(buf, ws->hdr + ws->hdr_off, h);
	memcpy(buf + h, p, m);
	if (ws->client)
		moat_ws_unmask(buf + h, m, ws->out_mask, ws->out_off);
	ssize_t r = moat_net_write(ws->base.lower, buf, h + m, why, whysz);
	if (r <= 0)
		return r;
	if ((size_t)r < h) {
		ws->hdr_off = (uint8_t)(ws->hdr_off + r);
		return 0;
	}
	ws->hdr_off = ws->hdr_len;
	ws->out_off += (uint64_t)r - h;
	return r - (ssize_t)h;
}

/* A new frame for up to len bytes; false when no mask could be drawn. */
static bool frame_start(struct net_ws *ws, size_t len)
{
	ws->out_left = MOAT_MIN((uint64_t)len, WS_OUT_FRAME);
	ws->out_off = 0;
	if (ws->client && RAND_bytes(ws->out_mask, 4) != 1)
		return false;
	ws->hdr_len = (uint8_t)moat_ws_frame_encode(
		ws->hdr, WS_OP_BINARY, true, ws->out_left,
		ws->client ? ws->out_mask : NULL);
	ws->hdr_off = 0;
	return true;
}

/* Not open yet: a client finishes its handshake first (and waits for the
 * answer: the write wants the socket readable); a server has nothing to
 * send before its answer. */
static ssize_t write_not_open(struct net_ws *ws, char *why, size_t whysz)
{
	if (ws->state != WS_HANDSHAKE) {
		snprintf(why, whysz, "WebSocket closing");
		return MOAT_NET_CLOSED;
	}
	if (!ws->client)
		return MOAT_NET_AGAIN;
	ssize_t r = client_handshake(ws, why, whysz);
	if (r == MOAT_NET_AGAIN && ws->hello_off == ws->hello_len)
		ws->base.want |= MOAT_NET_WRITE_WANTS_READ;
	return r;
}

static ssize_t ws_write(struct moat_net *n, const uint8_t *p, size_t len,
			char *why, size_t whysz)
{
	struct net_ws *ws = (struct net_ws *)n;
	ssize_t r;
	if (ws->state != WS_OPEN && (r = write_not_open(ws, why, whysz)) != 1)
		return r;
	if (!frame_in_progress(ws)) {
		if (n->want & MOAT_NET_HAS_OUTPUT) {
			int f = ws_flush(n, why, whysz);
			if (f != 1)
				return f;
		}
		if (!frame_start(ws, len)) {
			snprintf(why, whysz, "no random bytes for a mask");
			return MOAT_NET_CLOSED;
		}
	}
	if (ws->client || ws->hdr_off == 0) {
		r = write_staged(ws, p, len, why, whysz);
		if (r < 0 || (r == 0 && ws->hdr_off < ws->hdr_len))
			return r < 0 ? r : MOAT_NET_AGAIN;
	} else {
		/* Server, header out: the rest of the payload as it is. */
		while (ws->hdr_off < ws->hdr_len) {
			r = moat_net_write(n->lower, ws->hdr + ws->hdr_off,
					   ws->hdr_len - ws->hdr_off, why,
					   whysz);
			if (r <= 0)
				return r;
			ws->hdr_off = (uint8_t)(ws->hdr_off + r);
		}
		r = moat_net_write(n->lower, p,
				   (size_t)MOAT_MIN((uint64_t)len, ws->out_left),
				   why, whysz);
	}
	if (r > 0) {
		ws->out_left -= (uint64_t)r;
		if (!ws->out_left)
			ws->hdr_len = ws->hdr_off = 0;
	}
	return r; /* (0 is MOAT_NET_AGAIN) */
}

static void ws_shutdown(struct moat_net *n)
{
	struct net_ws *ws = (struct net_ws *)n;
	char why[128];
	/* A close frame cannot cut into a data frame half sent. */
	if (ws->state == WS_OPEN && !frame_in_progress(ws))
		queue_close(ws, ws->close_code ? ws->close_code
					       : WS_CLOSE_NORMAL);
	ws->state = WS_CLOSING;
	ws->pong_due = false;
	(void)ws_flush(n, why, sizeof(why));
}

static void ws_close(struct moat_net *n)
{
	struct net_ws *ws = (struct net_ws *)n;
	moat_free(ws->in);
	moat_free(ws->path);
	moat_free(ws->hello);
	moat_free(ws);
}

static const struct moat_net_ops ws_ops = {
	.name = "ws",
	.read = ws_read,
	.write = ws_write,
	.flush = ws_flush,
	.pending = ws_pending,
	.shutdown = ws_shutdown,
	.close = ws_close,
};

struct moat_net *moat_net_ws_new(struct moat_net *lower,
				 const struct moat_ws_policy *pol,
				 uint64_t max_frame)
{
	struct net_ws *ws = moat_calloc(1, sizeof(*ws));
	size_t lp = strlen(pol->path) + 1, lo = strlen(pol->origins) + 1;
	char *copy = ws ? moat_malloc(lp + lo) : NULL;
	if (!copy) {
		moat_free(ws);
		return NULL;
	}
	memcpy(copy, pol->path, lp);
	memcpy(copy + lp, pol->origins, lo);
	ws->path = copy;
	ws->origins = copy + lp;
	ws->base.ops = &ws_ops;
	ws->base.lower = lower;
	ws->base.fd = lower->fd;
	ws->base.secure = lower->secure;
	ws->max_frame = max_frame;
	return &ws->base;
}

struct moat_net *moat_net_ws_client_new(struct moat_net *lower,
					const char *host, const char *path,
					uint64_t max_frame)
{
	unsigned char raw[16];
	char key[25];
	if (RAND_bytes(raw, sizeof(raw)) != 1)
		return NULL;
	EVP_EncodeBlock((unsigned char *)key, raw, sizeof(raw));
	size_t cap = 29 + 256 + strlen(host) + strlen(path);
	struct net_ws *ws = moat_calloc(1, sizeof(*ws));
	char *hello = ws ? moat_malloc(cap) : NULL;
	size_t n = hello ? moat_ws_request_build(hello + 29, cap - 29, host,
						 path, key)
			 : 0;
	if (!n) {
		moat_free(hello);
		moat_free(ws);
		return NULL;
	}
	moat_ws_accept_of(key, 24, hello);
	ws->hello = hello;
	ws->hello_off = 29;
	ws->hello_len = 29 + n;
	ws->client = true;
	ws->base.ops = &ws_ops;
	ws->base.lower = lower;
	ws->base.fd = lower->fd;
	ws->base.secure = lower->secure;
	ws->base.want = MOAT_NET_HAS_OUTPUT;
	ws->max_frame = max_frame;
	return &ws->base;
}
