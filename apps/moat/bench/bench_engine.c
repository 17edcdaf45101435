/* `moat bench` engine: every connection of a run in one epoll loop.
 *
 * A loop turn: wait for events, read and handle every complete packet
 * (acks are appended to the output buffers), let the publishers that can
 * send fill their output buffers, then write every buffer that has bytes
 * (one write per connection per turn, in the common case).  Nothing is
 * allocated per message: a publisher copies its pre-encoded PUBLISH and
 * patches the packet id, sequence number and time.
 *
 * Phases: SETUP (connect, subscribe), RUN (publish for --duration or -n
 * messages), DRAIN (wait for what is still on its way), HOLD (conn: keep
 * the connections idle), then CLOSE.  Each is bounded in time. */
#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"
#include "client/client_proto.h"
#include "codec/mqtt5.h"

#define MAX_EVENTS 512
#define SETUP_PENDING 128	/* connection attempts at once (not conn) */
#define SETUP_TIMEOUT_NS (30ull * 1000000000u)
#define DRAIN_MAX_NS (5ull * 1000000000u)
#define DRAIN_IDLE_NS (1000000000ull)
#define NS_PER_S 1000000000.0
#define READS_PER_EVENT 4
#define PUB_OUT_BYTES ((size_t)65536)
#define UNBATCHED_SLICE 16 /* --unbatched: publishers per loop turn */
#define UNBATCHED_SUBS 16  /* --unbatched: subscribers read in between */

enum phase { PH_SETUP, PH_RUN, PH_DRAIN, PH_HOLD, PH_DONE };

static const char *const phase_names[] = {"connect", "run", "drain", "hold",
					  "done"};

struct engine {
	struct bench_run *r;
	const struct bench_cfg *cfg;
	struct bench_net net;
	struct bench_conn *conns;
	size_t nconns;
	size_t next_start;   /* next connection to start */
	size_t pending;	     /* attempts in progress */
	size_t nready;	     /* connections ready */
	size_t nsettled;     /* connections ready or failed */
	size_t nlive;	     /* ready and not lost since */
	size_t max_pending;
	struct bench_conn *dirty;
	struct bench_pub *ready_head, *ready_tail;
	enum phase phase;
	uint64_t now;
	uint64_t t_begin, t_run, t_run_end, t_drain, t_last_rx, t_hold_end;
	uint64_t t_last_connack;
	uint64_t sched;	     /* rate mode: messages scheduled so far */
	uint64_t sent, received;
	uint64_t expected, settled; /* deliveries: due and settled */
	uint64_t next_progress, next_ping_check;
	uint64_t window;     /* per publisher; 0 = none */
	uint32_t inflight;   /* per publisher (QoS>0) */
	bool progress;
	bool failed;	     /* set-up failed: stop */
};

static volatile sig_atomic_t interrupted;

static void on_signal(int sig)
{
	(void)sig;
	interrupted = 1;
}

static void note_error(struct engine *e, const struct bench_conn *c,
		       const char *why)
{
	struct bench_result *res = &e->r->res;
	if (!res->errors++)
		snprintf(res->first_error, sizeof(res->first_error), "%s: %s",
			 c->id, why);
}

static void mark_dirty(struct engine *e, struct bench_conn *c)
{
	if (c->dirty)
		return;
	c->dirty = true;
	c->dirty_next = e->dirty;
	e->dirty = c;
}

static void pub_wake(struct engine *e, struct bench_pub *p)
{
	if (p->ready)
		return;
	p->ready = true;
	p->ready_next = NULL;
	if (e->ready_tail)
		e->ready_tail->ready_next = p;
	else
		e->ready_head = p;
	e->ready_tail = p;
}

/* Append n bytes to c's output; false when the buffer is at its limit. */
static bool out_append(struct engine *e, struct bench_conn *c, const void *p,
		       size_t n)
{
	uint8_t *dst = bench_buf_reserve(&c->out, n, c->out_max);
	if (!dst)
		return false;
	memcpy(dst, p, n);
	c->out.len += n;
	c->ka.last_tx_ms = e->now / 1000000u;
	mark_dirty(e, c);
	return true;
}

/* A connection ends during set-up (failed attempt) or later (lost). */
static void conn_fail(struct engine *e, struct bench_conn *c, const char *why)
{
	uint8_t st = c->state;
	if (st == BC_CLOSED)
		return;
	bench_conn_close(&e->net, c);
	if (st == BC_READY) {
		/* Lost after set-up: an error of the run. */
		e->nlive--;
		if (e->phase != PH_DONE)
			note_error(e, c, why);
		return;
	}
	e->pending--;
	e->nsettled++;
	e->r->res.failed++;
	note_error(e, c, why);
	if (e->cfg->scenario != BENCH_CONN)
		e->failed = true; /* a scenario needs all its clients */
}

/* ---- set-up: CONNECT, SUBSCRIBE ----------------------------------------- */

static bool send_built(struct engine *e, struct bench_conn *c,
		       struct moat_buf *b, int rc)
{
	bool ok = rc == MOAT_OK &&
		  out_append(e, c, b->data + b->off, moat_buf_used(b));
	moat_buf_cleanup(b);
	if (!ok)
		conn_fail(e, c, "cannot encode a packet");
	return ok;
}

static void send_connect(struct engine *e, struct bench_conn *c)
{
	const struct bench_cfg *cfg = e->cfg;
	struct moat_buf b;
	moat_buf_init(&b, 65536);
	struct moat_mqtt_connect_opts o = {
		.proto_level = cfg->proto_level,
		.clean_session = true,
		.keepalive = (uint16_t)cfg->keepalive,
		.client_id = c->id,
		.username = cfg->username,
		.password = (const uint8_t *)cfg->password,
		.password_len = cfg->password ? strlen(cfg->password) : 0,
		.has_password = cfg->password != NULL,
	};
	(void)send_built(e, c, &b, moat_mqtt_connect_encode(&b, &o));
}

static void send_subscribe(struct engine *e, struct bench_conn *c)
{
	const char *filters[1] = {c->sub->filter};
	uint8_t qos = (uint8_t)e->cfg->qos;
	struct moat_buf b;
	moat_buf_init(&b, 65536);
	int rc = e->cfg->proto_level == MQTT_PROTO_V5
			 ? moat_mqtt5_sub_encode(&b, MQTT_SUBSCRIBE, 1, filters,
						 &qos, 1, NULL)
			 : moat_mqtt_subscribe_encode(&b, 1, filters, &qos, 1);
	if (send_built(e, c, &b, rc))
		c->state = BC_SUBACK;
}

static void conn_ready(struct engine *e, struct bench_conn *c)
{
	c->state = BC_READY;
	e->pending--;
	e->nready++;
	e->nlive++;
	e->nsettled++;
	e->r->res.connected++;
	e->t_last_connack = e->now;
	bench_hist_add(&e->r->res.connect_ns, e->now - c->t_start);
}

static void on_connack(struct engine *e, struct bench_conn *c,
		       const uint8_t *body, size_t len)
{
	struct moat_client_connack ca;
	char why[300];
	if (c->state != BC_CONNACK) {
		conn_fail(e, c, "unexpected CONNACK");
		return;
	}
	if (moat_client_connack_decode(body, len, e->cfg->proto_level, &ca) !=
	    MOAT_OK) {
		conn_fail(e, c, "malformed CONNACK");
		return;
	}
	if (ca.rc) {
		conn_fail(e, c,
			  moat_client_connack_refusal(&ca, why, sizeof(why)));
		return;
	}
	if (ca.version == MQTT_PROTO_V5 &&
	    moat_props_has(&ca.props, PROP_RECEIVE_MAXIMUM))
		c->server_receive_max = ca.props.receive_maximum;
	if (c->sub)
		send_subscribe(e, c);
	else
		conn_ready(e, c);
}

static void on_suback(struct engine *e, struct bench_conn *c,
		      const uint8_t *body, size_t len)
{
	struct moat_client_suback sa;
	if (c->state != BC_SUBACK ||
	    moat_client_suback_decode(MQTT_SUBACK, body, len,
				      e->cfg->proto_level, &sa) != MOAT_OK ||
	    sa.packet_id != 1 || sa.ncodes != 1) {
		conn_fail(e, c, "unexpected SUBACK");
		return;
	}
	if (sa.codes[0] >= 0x80) {
		char why[96];
		snprintf(why, sizeof(why), "subscription to %s refused (0x%02X)",
			 c->sub->filter, sa.codes[0]);
		conn_fail(e, c, why);
		return;
	}
	conn_ready(e, c);
}

/* ---- messages ------------------------------------------------------------ */

/* The acknowledgement the QoS flow owes for packet type (client_proto.h). */
static void send_ack(struct engine *e, struct bench_conn *c, uint8_t type,
		     uint8_t qos, uint16_t id)
{
	uint8_t pkt[4];
	size_t n = moat_client_ack_for(type, qos, id, pkt);
	if (n && !out_append(e, c, pkt, n))
		conn_fail(e, c, "output buffer full");
}

/* A payload from one of our publishers: account for it. */
static void account(struct engine *e, struct bench_sub *s,
		    const struct moat_bytes *pl)
{
	struct bench_run *r = e->r;
	uint32_t pid;
	uint64_t seq, ts;
	if (!bench_payload_read(pl->p, pl->len, &pid, &seq, &ts)) {
		s->foreign++;
		return;
	}
	if (pid < s->first_pub || pid - s->first_pub >= s->npubs ||
	    pid >= r->npubs) {
		s->foreign++;
		return;
	}
	struct bench_pub *p = &r->pubs[pid];
	uint64_t k = bench_stream_add(&s->streams[pid - s->first_pub], seq);
	if (k) {
		p->settled += k;
		e->settled += k;
		if (e->phase == PH_RUN)
			pub_wake(e, p);
	}
	if (e->now >= ts)
		bench_hist_add(&r->res.latency_ns, e->now - ts);
}

static void on_publish(struct engine *e, struct bench_conn *c, uint8_t flags,
		       const uint8_t *body, size_t len)
{
	struct moat_mqtt_publish5 p5;
	if (!c->sub || c->state != BC_READY ||
	    moat_client_publish_decode(flags, body, len, e->cfg->proto_level,
				       &p5) != MOAT_OK) {
		conn_fail(e, c, "malformed or unexpected PUBLISH");
		return;
	}
	c->sub->received++;
	e->received++;
	e->t_last_rx = e->now;
	account(e, c->sub, &p5.p.payload);
	send_ack(e, c, MQTT_PUBLISH, p5.p.qos, p5.p.packet_id);
}

/* PUBACK, PUBREC, PUBREL, PUBCOMP. */
static void on_ack(struct engine *e, struct bench_conn *c, uint8_t type,
		   const uint8_t *body, size_t len)
{
	uint16_t id;
	uint8_t reason;
	struct moat_mqtt_props props;
	if (moat_mqtt_decode_ack_v(body, len, e->cfg->proto_level, &id,
				   &reason, &props) != MOAT_OK) {
		conn_fail(e, c, "malformed acknowledgement");
		return;
	}
	if (type == MQTT_PUBREL) {
		send_ack(e, c, MQTT_PUBREL, 0, id);
		return;
	}
	struct bench_pub *p = c->pub;
	if (!p || !p->inflight) {
		conn_fail(e, c, "unexpected acknowledgement");
		return;
	}
	if (reason >= 0x80) {
		char why[96];
		snprintf(why, sizeof(why), "message refused: %s (0x%02X)",
			 moat_mqtt_rc_name(reason), reason);
		note_error(e, c, why);
	}
	if (type == MQTT_PUBREC && reason < 0x80) {
		send_ack(e, c, MQTT_PUBREC, 0, id);
		return;
	}
	p->inflight--;
	if (e->phase == PH_RUN)
		pub_wake(e, p);
}

static void on_disconnect(struct engine *e, struct bench_conn *c,
			  const uint8_t *body, size_t len)
{
	char why[128];
	uint8_t reason = len ? body[0] : 0;
	snprintf(why, sizeof(why), "the broker sent DISCONNECT: %s (0x%02X)",
		 moat_mqtt_rc_name(reason), reason);
	conn_fail(e, c, why);
}

static void on_packet(struct engine *e, struct bench_conn *c, uint8_t tf,
		      const uint8_t *body, size_t len)
{
	uint8_t type = (uint8_t)(tf >> 4);
	switch (type) {
	case MQTT_CONNACK:
		on_connack(e, c, body, len);
		break;
	case MQTT_SUBACK:
		on_suback(e, c, body, len);
		break;
	case MQTT_PUBLISH:
		on_publish(e, c, tf & 0x0F, body, len);
		break;
	case MQTT_PUBACK:
	case MQTT_PUBREC:
	case MQTT_PUBREL:
	case MQTT_PUBCOMP:
		on_ack(e, c, type, body, len);
		break;
	case MQTT_PINGRESP:
		moat_client_ka_pong(&c->ka);
		break;
	case MQTT_DISCONNECT:
		on_disconnect(e, c, body, len);
		break;
	default: {
		char why[64];
		snprintf(why, sizeof(why), "unexpected packet type %u", type);
		conn_fail(e, c, why);
	}
	}
}

/* Handle every complete packet in c->in. */
static void parse_input(struct engine *e, struct bench_conn *c)
{
	while (c->state != BC_CLOSED) {
		size_t used = bench_buf_used(&c->in);
		const uint8_t *p = c->in.p + c->in.off;
		uint8_t tf;
		uint32_t rl;
		size_t hl;
		int rc = moat_mqtt_fixed_header(p, used, &tf, &rl, &hl);
		if (rc == MOAT_EAGAIN)
			return;
		if (rc != MOAT_OK) {
			conn_fail(e, c, "malformed packet from the broker");
			return;
		}
		if (hl + rl > c->in_max) {
			conn_fail(e, c, "packet from the broker too large");
			return;
		}
		if (used < hl + rl) {
			/* Make room for the whole packet. */
			if (!bench_buf_reserve(&c->in, hl + rl - used,
					       c->in_max))
				conn_fail(e, c, "out of memory");
			return;
		}
		on_packet(e, c, tf, p + hl, rl);
		bench_buf_consume(&c->in, hl + rl);
	}
}

static void on_readable(struct engine *e, struct bench_conn *c)
{
	for (int i = 0; i < READS_PER_EVENT && c->state != BC_CLOSED; i++) {
		/* Large reads for subscribers; idle connections stay small. */
		size_t chunk = c->sub ? 65536u : c->pub ? 8192u : 64u;
		size_t room = MOAT_MAX(c->in.cap - c->in.len, chunk);
		uint8_t *dst = bench_buf_reserve(&c->in, room, c->in_max);
		if (!dst) {
			conn_fail(e, c, "out of memory");
			return;
		}
		room = c->in.cap - c->in.len;
		char why[200];
		long n = bench_conn_read(&e->net, c, dst, room, why,
					 sizeof(why));
		if (n < 0) {
			conn_fail(e, c, why);
			return;
		}
		if (n == 0)
			return;
		c->in.len += (size_t)n;
		e->now = bench_now_ns(); /* latency: time of the read */
		parse_input(e, c);
		/* A short read emptied the socket; TLS may hold more. */
		if ((size_t)n < room && !bench_conn_pending(c))
			return;
	}
}

static void flush_conn(struct engine *e, struct bench_conn *c)
{
	char why[200];
	int rc = bench_conn_flush(&e->net, c, why, sizeof(why));
	if (rc < 0)
		conn_fail(e, c, why);
	else if (c->pub && e->phase == PH_RUN)
		pub_wake(e, c->pub); /* room again in its buffer */
}

/* --unbatched: the subscribers (a few) are read, and acknowledge, between
 * every few publisher events and writes, as if they ran on their own:
 * otherwise one loop turn over hundreds of publishers would decide how
 * fast they take messages. */
static void read_subscribers(struct engine *e)
{
	struct bench_run *r = e->r;
	for (size_t i = 0; i < r->nsubs && i < UNBATCHED_SUBS; i++) {
		struct bench_conn *c = r->subs[i].conn;
		if (c->state != BC_READY)
			continue;
		on_readable(e, c);
		if (c->state != BC_CLOSED && bench_buf_used(&c->out))
			flush_conn(e, c);
	}
}

static void on_event(struct engine *e, struct bench_conn *c, uint32_t ev)
{
	if (c->state == BC_CLOSED)
		return;
	if (c->state == BC_CONNECTING || c->state == BC_TLS) {
		char why[200];
		int r = bench_conn_establish(&e->net, c, ev, why, sizeof(why));
		if (r < 0)
			conn_fail(e, c, why);
		else if (r > 0)
			send_connect(e, c);
		return;
	}
	if ((ev & EPOLLOUT) && c->tls_read_wants_write)
		ev |= EPOLLIN;
	if ((ev & (EPOLLIN | EPOLLHUP | EPOLLERR)) && c->tls_write_wants_read)
		ev |= EPOLLOUT;
	if (ev & EPOLLOUT)
		flush_conn(e, c);
	if (c->state != BC_CLOSED && (ev & (EPOLLIN | EPOLLHUP | EPOLLERR)))
		on_readable(e, c);
}

/* ---- publishing ------------------------------------------------------------ */

static uint64_t min64(uint64_t a, uint64_t b)
{
	return a < b ? a : b;
}

/* How many messages p may send now, by every limit but buffer space. */
static uint64_t pub_allowed(const struct engine *e, const struct bench_pub *p)
{
	uint64_t n = p->limit - p->seq;
	if (e->cfg->rate)
		n = min64(n, p->budget);
	if (e->cfg->qos) {
		uint32_t max = MOAT_MIN(e->inflight,
					(uint32_t)p->conn->server_receive_max);
		n = min64(n, p->inflight >= max ? 0 : max - p->inflight);
	}
	if (e->window) {
		/* Deliveries not yet settled, in messages (rounded up). */
		uint64_t due = p->seq * p->fanout - p->settled;
		uint64_t open = e->window * p->fanout;
		n = min64(n, due >= open ? 0 : (open - due) / p->fanout);
	}
	return n;
}

static void put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)(v & 0xFF);
}

/* Fill p's output buffer with as many messages as allowed. */
static void publish_some(struct engine *e, struct bench_pub *p)
{
	struct bench_conn *c = p->conn;
	if (c->state != BC_READY)
		return;
	uint64_t n = pub_allowed(e, p);
	if (!n)
		return;
	if (e->cfg->unbatched) {
		/* Whatever is still waiting goes first; then one each. */
		if (bench_buf_used(&c->out))
			return; /* flush_conn wakes p when the socket took it */
		n = 1;
	}
	size_t room = c->out.cap - bench_buf_used(&c->out);
	if (room < p->tmpl_len && !bench_buf_used(&c->out))
		room = p->tmpl_len; /* an empty buffer grows for one */
	n = min64(n, room / p->tmpl_len);
	if (!n)
		return; /* flush_conn wakes p when the socket took bytes */
	uint8_t *dst = bench_buf_reserve(&c->out, (size_t)n * p->tmpl_len,
					 c->out_max);
	if (!dst)
		return;
	uint64_t ts = bench_now_ns();
	for (uint64_t i = 0; i < n; i++, dst += p->tmpl_len) {
		memcpy(dst, p->tmpl, p->tmpl_len);
		if (e->cfg->qos) {
			if (++c->next_pid == 0)
				c->next_pid = 1;
			put16(dst + p->pid_off, c->next_pid);
		}
		bench_payload_stamp(e->cfg, dst + p->payload_off, p->seq + i,
				    ts);
	}
	c->out.len += (size_t)n * p->tmpl_len;
	c->ka.last_tx_ms = e->now / 1000000u;
	p->seq += n;
	e->sent += n;
	e->expected += n * p->fanout;
	if (e->cfg->qos)
		p->inflight += (uint32_t)n;
	if (e->cfg->rate)
		p->budget -= n;
	mark_dirty(e, c);
}

static void flush_dirty(struct engine *e);

/* Rate mode: hand out the messages due by now, round-robin. */
static void schedule(struct engine *e)
{
	struct bench_run *r = e->r;
	double t = (double)(e->now - e->t_run) / NS_PER_S;
	uint64_t due = (uint64_t)(t * (double)e->cfg->rate);
	uint64_t stalled = 0;
	while (e->sched < due && stalled < r->npubs) {
		struct bench_pub *p = &r->pubs[e->sched % r->npubs];
		e->sched++;
		if (p->seq + p->budget >= p->limit) {
			stalled++;
			continue;
		}
		stalled = 0;
		p->budget++;
		pub_wake(e, p);
	}
	if (stalled >= r->npubs)
		e->sched = due; /* every publisher is done */
}

static void run_publishers(struct engine *e)
{
	struct bench_pub *list = e->ready_head;
	struct bench_pub *tail = e->ready_tail;
	e->ready_head = e->ready_tail = NULL;
	/* Unbatched, a few publishers per loop turn, so that the
	 * subscribers are read (and acknowledge) between their writes as
	 * if they ran on their own; the rest stay first in line. */
	size_t slice = e->cfg->unbatched ? UNBATCHED_SLICE : SIZE_MAX;
	while (list && slice--) {
		struct bench_pub *p = list;
		list = p->ready_next;
		p->ready = false;
		publish_some(e, p);
		/* Unbatched: this message is written now, on its own
		 * (flushing wakes p again for the next one). */
		if (e->cfg->unbatched)
			flush_dirty(e);
	}
	if (e->cfg->unbatched)
		read_subscribers(e);
	if (list) {
		tail->ready_next = e->ready_head;
		if (!e->ready_head)
			e->ready_tail = tail;
		e->ready_head = list;
	}
}

static bool publishers_done(const struct engine *e)
{
	for (size_t i = 0; i < e->r->npubs; i++)
		if (e->r->pubs[i].seq < e->r->pubs[i].limit)
			return false;
	return true;
}

static bool acks_done(const struct engine *e)
{
	for (size_t i = 0; i < e->r->npubs; i++)
		if (e->r->pubs[i].inflight &&
		    e->r->pubs[i].conn->state == BC_READY)
			return false;
	return true;
}

/* ---- the loop -------------------------------------------------------------- */

static void start_some(struct engine *e)
{
	const struct bench_cfg *cfg = e->cfg;
	while (e->next_start < e->nconns && e->pending < e->max_pending) {
		if (cfg->scenario == BENCH_CONN && cfg->rate) {
			double t = (double)(e->now - e->t_begin) / NS_PER_S;
			if ((double)e->next_start >= t * (double)cfg->rate)
				break;
		}
		struct bench_conn *c = &e->conns[e->next_start++];
		char why[200];
		c->t_start = e->now;
		e->pending++;
		e->r->res.attempted++;
		if (bench_conn_start(&e->net, c, why, sizeof(why)) != MOAT_OK)
			conn_fail(e, c, why);
		if (e->failed)
			return;
	}
}

static void flush_dirty(struct engine *e)
{
	while (e->dirty) {
		struct bench_conn *c = e->dirty;
		e->dirty = c->dirty_next;
		c->dirty = false;
		if (c->state != BC_CLOSED)
			flush_conn(e, c);
	}
}

/* Keep-alive by the client core's rule (client_proto.h), checked once a
 * second for every ready connection. */
static void keepalive(struct engine *e)
{
	uint32_t interval_ms = (uint32_t)e->cfg->keepalive * 1000u;
	if (!interval_ms || e->now < e->next_ping_check)
		return;
	e->next_ping_check = e->now + 1000000000u;
	static const uint8_t ping[2] = {MQTT_PINGREQ << 4, 0x00};
	uint64_t now_ms = e->now / 1000000u;
	for (size_t i = 0; i < e->nconns; i++) {
		struct bench_conn *c = &e->conns[i];
		int next_ms;
		if (c->state != BC_READY)
			continue;
		c->ka.interval_ms = interval_ms;
		switch (moat_client_ka_check(&c->ka, now_ms, &next_ms)) {
		case MOAT_KA_PING:
			if (out_append(e, c, ping, sizeof(ping)))
				moat_client_ka_pinged(&c->ka, now_ms);
			break;
		case MOAT_KA_TIMEOUT:
			conn_fail(e, c, "no PINGRESP from the broker "
					"within the keep-alive interval");
			break;
		default:
			break;
		}
	}
}

static void show_progress(struct engine *e)
{
	if (!e->progress || e->now < e->next_progress)
		return;
	e->next_progress = e->now + 1000000000u;
	double t = (double)(e->now - e->t_begin) / NS_PER_S;
	bench_progress(e->r, t, phase_names[e->phase], e->sent, e->received,
		       e->r->res.connected);
}

static void enter_run(struct engine *e)
{
	e->phase = PH_RUN;
	e->t_run = e->now;
	e->t_run_end = e->now + (uint64_t)(e->cfg->duration * NS_PER_S);
	e->t_last_rx = e->now;
	for (size_t i = 0; i < e->r->npubs; i++)
		pub_wake(e, &e->r->pubs[i]);
}

static void enter_drain(struct engine *e)
{
	e->phase = PH_DRAIN;
	e->t_drain = e->now;
	e->r->res.publish_s = (double)(e->now - e->t_run) / NS_PER_S;
	e->ready_head = e->ready_tail = NULL;
	for (size_t i = 0; i < e->r->npubs; i++)
		e->r->pubs[i].ready = false;
}

static void enter_hold(struct engine *e)
{
	e->phase = PH_HOLD;
	e->t_hold_end = e->now + (uint64_t)(e->cfg->hold * NS_PER_S);
}

/* Set-up is over when every connection is ready (or failed: conn). */
static void step_setup(struct engine *e)
{
	bool conn = e->cfg->scenario == BENCH_CONN;
	uint64_t limit = conn ? (uint64_t)(e->cfg->duration * NS_PER_S)
			      : SETUP_TIMEOUT_NS;
	if (!e->failed)
		start_some(e);
	if (e->failed) {
		e->phase = PH_DONE;
		return;
	}
	if (e->nsettled == e->nconns) {
		if (conn)
			enter_hold(e);
		else
			enter_run(e);
		return;
	}
	if (e->now - e->t_begin < limit)
		return;
	/* Out of time: whatever is still pending has failed. */
	for (size_t i = 0; i < e->nconns; i++) {
		struct bench_conn *c = &e->conns[i];
		if (c->state != BC_READY && c->state != BC_CLOSED &&
		    c->state != BC_IDLE)
			conn_fail(e, c, conn ? "not connected within "
					       "--duration"
					     : "set-up timed out");
	}
	e->r->res.failed += e->nconns - e->next_start; /* never started */
	e->phase = conn ? PH_HOLD : PH_DONE;
	if (conn)
		enter_hold(e);
}

static void step(struct engine *e)
{
	/* Every connection lost after set-up: nothing left to measure. */
	if (e->phase != PH_SETUP && e->nready && !e->nlive)
		e->phase = PH_DONE;
	switch (e->phase) {
	case PH_SETUP:
		step_setup(e);
		break;
	case PH_RUN:
		if (e->cfg->rate)
			schedule(e);
		run_publishers(e);
		if (e->now >= e->t_run_end || publishers_done(e))
			enter_drain(e);
		break;
	case PH_DRAIN:
		if ((e->settled >= e->expected && acks_done(e)) ||
		    e->now - e->t_drain >= DRAIN_MAX_NS ||
		    e->now - e->t_last_rx >= DRAIN_IDLE_NS)
			e->phase = PH_DONE;
		break;
	case PH_HOLD:
		if (e->now >= e->t_hold_end)
			e->phase = PH_DONE;
		break;
	case PH_DONE:
		break;
	}
}

/* How long epoll may sleep. */
static struct timespec wait_time(const struct engine *e)
{
	uint64_t ns = 100000000u; /* phase checks, signals */
	if (e->ready_head)
		ns = 0;
	else if (e->phase == PH_RUN && e->cfg->rate) {
		uint64_t at = e->t_run + (uint64_t)((double)(e->sched + 1) *
						     NS_PER_S /
						     (double)e->cfg->rate);
		ns = at > e->now ? min64(at - e->now, ns) : 0;
	} else if (e->phase == PH_SETUP && e->next_start < e->nconns &&
		   e->pending < e->max_pending) {
		/* More to start: now, or at the next attempt of a rate. */
		ns = e->cfg->rate && e->cfg->scenario == BENCH_CONN
			     ? min64(ns, 1000000u)
			     : 0;
	}
	if (e->progress && e->next_progress > e->now)
		ns = min64(ns, e->next_progress - e->now);
	struct timespec ts = {.tv_sec = (time_t)(ns / 1000000000u),
			      .tv_nsec = (long)(ns % 1000000000u)};
	return ts;
}

static void loop(struct engine *e)
{
	struct epoll_event evs[MAX_EVENTS];
	while (e->phase != PH_DONE) {
		struct timespec ts = wait_time(e);
		int n = epoll_pwait2(e->net.ep, evs, MAX_EVENTS, &ts, NULL);
		e->now = bench_now_ns();
		if (n < 0 && errno != EINTR) {
			note_error(e, &e->conns[0], strerror(errno));
			break;
		}
		for (int i = 0; i < n; i++) {
			on_event(e, evs[i].data.ptr, evs[i].events);
			if (e->cfg->unbatched && i % UNBATCHED_SLICE == 0)
				read_subscribers(e);
		}
		e->now = bench_now_ns();
		step(e);
		flush_dirty(e);
		keepalive(e);
		show_progress(e);
		if (interrupted) {
			if (!e->r->res.errors)
				snprintf(e->r->res.first_error,
					 sizeof(e->r->res.first_error),
					 "interrupted");
			e->r->res.errors++;
			break;
		}
	}
}

/* ---- the run ------------------------------------------------------------ */

static void close_all(struct engine *e)
{
	static const uint8_t disconnect[2] = {0xE0, 0x00};
	for (size_t i = 0; i < e->nconns; i++) {
		struct bench_conn *c = &e->conns[i];
		if (c->state == BC_READY)
			(void)out_append(e, c, disconnect, sizeof(disconnect));
		bench_conn_close(&e->net, c);
	}
	e->dirty = NULL;
}

static void collect(struct engine *e)
{
	struct bench_run *r = e->r;
	struct bench_result *res = &r->res;
	res->sent = e->sent;
	res->expected = e->expected;
	for (size_t i = 0; i < r->nsubs; i++) {
		struct bench_sub *s = &r->subs[i];
		res->received += s->received;
		res->foreign += s->foreign;
		for (uint32_t k = 0; k < s->npubs; k++) {
			const struct bench_stream *st = &s->streams[k];
			uint64_t sent = r->pubs[s->first_pub + k].seq;
			res->dup += st->dup;
			res->ooo += st->ooo;
			res->lost += sent > st->got ? sent - st->got : 0;
		}
	}
	if (e->t_run && e->phase != PH_SETUP) {
		if (res->publish_s == 0.0)
			res->publish_s = (double)(e->now - e->t_run) / NS_PER_S;
		res->deliver_s = (double)(e->t_last_rx - e->t_run) / NS_PER_S;
		if (e->t_drain)
			res->drain_s = (double)(e->now - e->t_drain) / NS_PER_S;
	}
	if (e->t_last_connack)
		res->connect_s =
			(double)(e->t_last_connack - e->t_begin) / NS_PER_S;
	if (e->t_hold_end)
		res->hold_s = e->cfg->hold;
	res->elapsed_s = (double)(bench_now_ns() - e->t_begin) / NS_PER_S;
}

static size_t conn_count(const struct bench_run *r)
{
	return r->npubs + r->nsubs + r->nidle;
}

/* Wire the connections to their publishers and subscribers. */
static int make_conns(struct engine *e)
{
	struct bench_run *r = e->r;
	const struct bench_cfg *cfg = e->cfg;
	e->nconns = conn_count(r);
	e->conns = moat_calloc(e->nconns, sizeof(*e->conns));
	if (!e->conns)
		return MOAT_ENOMEM;
	for (size_t i = 0; i < e->nconns; i++) {
		struct bench_conn *c = &e->conns[i];
		c->fd = -1;
		c->server_receive_max = 65535;
		c->in_max = (size_t)cfg->size + 65536u * 2u;
		c->out_max = 16384;
		if (i < r->npubs) {
			c->pub = &r->pubs[i];
			c->pub->conn = c;
			c->out_max = PUB_OUT_BYTES + c->pub->tmpl_len;
			snprintf(c->id, sizeof(c->id), "mb-%s-p%zu", cfg->nonce,
				 i);
		} else if (i < r->npubs + r->nsubs) {
			c->sub = &r->subs[i - r->npubs];
			c->sub->conn = c;
			c->out_max = 1u << 20;
			snprintf(c->id, sizeof(c->id), "mb-%s-s%zu", cfg->nonce,
				 i - r->npubs);
		} else {
			snprintf(c->id, sizeof(c->id), "mb-%s-c%zu", cfg->nonce,
				 i - r->npubs - r->nsubs);
		}
		/* Publishers get their whole buffer now: no growth later. */
		size_t first = c->pub ? c->out_max : 256;
		if (!bench_buf_reserve(&c->out, first, c->out_max))
			return MOAT_ENOMEM;
	}
	return MOAT_OK;
}

static void free_conns(struct engine *e)
{
	for (size_t i = 0; e->conns && i < e->nconns; i++)
		bench_conn_free(&e->conns[i]);
	moat_free(e->conns);
	e->conns = NULL;
}

int bench_engine_run(struct bench_run *r)
{
	struct engine e = {.r = r, .cfg = r->cfg};
	const struct bench_cfg *cfg = r->cfg;
	char err[300];
	int rc = bench_net_init(&e.net, cfg, err, sizeof(err));
	if (rc != MOAT_OK) {
		fprintf(stderr, "moat bench: %s\n", err);
		bench_net_cleanup(&e.net);
		return 1;
	}
	if (make_conns(&e) != MOAT_OK) {
		fprintf(stderr, "moat bench: out of memory\n");
		free_conns(&e);
		bench_net_cleanup(&e.net);
		return 1;
	}
	r->res.ran = true;
	e.max_pending = cfg->scenario == BENCH_CONN ? (size_t)cfg->inflight
						    : SETUP_PENDING;
	e.window = (uint64_t)cfg->window;
	e.inflight = (uint32_t)cfg->inflight;
	e.progress = !cfg->quiet && isatty(STDERR_FILENO);
	struct sigaction sa = {.sa_handler = on_signal}, old_int, old_term;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, &old_int);
	sigaction(SIGTERM, &sa, &old_term);
	signal(SIGPIPE, SIG_IGN);
	e.now = e.t_begin = bench_now_ns();
	e.next_progress = e.now + 1000000000u;
	e.next_ping_check = e.now + 1000000000u;
	loop(&e);
	e.now = bench_now_ns();
	collect(&e);
	close_all(&e);
	if (e.progress)
		bench_progress_end();
	sigaction(SIGINT, &old_int, NULL);
	sigaction(SIGTERM, &old_term, NULL);
	free_conns(&e);
	bench_net_cleanup(&e.net);
	return r->res.errors || r->res.failed ? 1 : 0;
}
