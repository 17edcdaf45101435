/* moat audit: MQTT on a probe connection.  Only what the checks need:
 * CONNECT (3.1.1 or 5, with or without credentials and will), SUBSCRIBE at
 * QoS 0, PUBLISH at QoS 0 or 1, and collection windows that count what
 * arrives.  Everything from the server is untrusted: topics and payloads
 * are escaped before they reach a report, and a PUBLISH whose topic is not
 * valid UTF-8 is recorded, not refused (the UTF-8 check looks for it). */
#include <stdio.h>
#include <string.h>

#include "audit.h"
#include "client/client_proto.h"
#include "codec/mqtt5.h"

#define WILL_PAYLOAD "moat audit: will test"

void audit_ident_anon(struct audit_ident *id)
{
	memset(id, 0, sizeof(*id));
	snprintf(id->label, sizeof(id->label), "anonymous");
}

void audit_ident_account(struct audit_ident *id,
			 const struct audit_account *a)
{
	char esc[260];
	memset(id, 0, sizeof(*id));
	id->user = a->user;
	id->pass = a->pass;
	id->passlen = a->passlen;
	moat_log_escape((const uint8_t *)a->user, strlen(a->user), esc,
			sizeof(esc));
	snprintf(id->label, sizeof(id->label), "user \"%s\"", esc);
}

/* Plain enough to start a client id with: brokers often bind ids to
 * user names with a "<user>-" prefix (moatd's `clientid %u-*`). */
static bool id_safe(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > 40)
		return false;
	for (size_t i = 0; i < n; i++) {
		char ch = s[i];
		bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
			  (ch >= '0' && ch <= '9') || ch == '-' || ch == '_' ||
			  ch == '.';
		if (!ok)
			return false;
	}
	return true;
}

void audit_client_id(struct audit_ctx *x, const struct audit_ident *id,
		     char *out, size_t outsz)
{
	const char *prefix = id->user && id_safe(id->user) ? id->user
							     : "moat";
	snprintf(out, outsz, "%s-audit-%u-%u", prefix, x->run->pid,
		 ++x->run->seq);
}

const char *audit_connack_str(const struct audit_connack *ca, char *buf,
			      size_t bufsz)
{
	static const char *const v3[] = {
		"accepted", "unacceptable protocol version",
		"identifier rejected", "server unavailable",
		"bad user name or password", "not authorised"};
	if (ca->accepted)
		snprintf(buf, bufsz, "accepted");
	else if (ca->version == MQTT_PROTO_V5)
		snprintf(buf, bufsz, "refused: %s (0x%02X)%s%s",
			 moat_mqtt_rc_name(ca->rc), ca->rc,
			 ca->reason[0] ? ": " : "", ca->reason);
	else
		snprintf(buf, bufsz, "refused: %s (%u)",
			 ca->rc < MOAT_ARRAY_LEN(v3) ? v3[ca->rc] : "unknown",
			 ca->rc);
	return buf;
}

const char *audit_suback_str(uint8_t code, uint8_t version)
{
	if (code < 0x80)
		return "granted";
	if (version == MQTT_PROTO_V5)
		return moat_mqtt_rc_name(code);
	return "refused";
}

/* ---- CONNECT ------------------------------------------------------------- */

static int send_buf(struct audit_conn *c, struct moat_buf *b)
{
	int rc = audit_conn_send(c, b->data + b->off, moat_buf_used(b),
				 moat_now_ms() + 5000);
	moat_buf_cleanup(b);
	return rc;
}

static int send_connect(struct audit_ctx *x, struct audit_conn *c,
			const struct audit_connect_req *r)
{
	static const uint8_t wrong[] = "moat-audit-wrong-password";
	uint8_t pbuf[16];
	struct moat_pw pw;
	moat_pw_init(&pw, pbuf, sizeof(pbuf));
	if (r->version == MQTT_PROTO_V5 && r->session_expiry)
		moat_pw_u32(&pw, PROP_SESSION_EXPIRY, r->session_expiry);
	struct moat_bytes props = {pbuf, pw.len};
	struct moat_mqtt_connect_opts o = {
		.proto_level = r->version,
		.clean_session = r->clean,
		.keepalive = r->keepalive,
		.client_id = r->client_id,
		.username = r->id->user,
		.password = r->wrong_password ? wrong : r->id->pass,
		.password_len = r->wrong_password ? sizeof(wrong) - 1
						  : r->id->passlen,
		.has_password = r->id->user != NULL,
		.will_topic = r->will_topic,
		.will_payload = (const uint8_t *)WILL_PAYLOAD,
		.will_payload_len = r->will_topic ? strlen(WILL_PAYLOAD) : 0,
		.props = &props,
	};
	struct moat_buf b;
	moat_buf_init(&b, 70000);
	if (moat_mqtt_connect_encode(&b, &o) != MOAT_OK) {
		moat_buf_cleanup(&b);
		snprintf(c->err, sizeof(c->err), "CONNECT does not encode");
		return MOAT_EINVAL;
	}
	(void)x;
	c->version = r->version;
	return send_buf(c, &b);
}

static void connack_props(struct audit_connack *ca,
			  const struct moat_mqtt_props *p)
{
#define TAKE(prop, flag, field, value)                                        \
	do {                                                                  \
		if (moat_props_has(p, prop)) {                                \
			ca->flag = true;                                      \
			ca->field = p->value;                                 \
		}                                                             \
	} while (0)
	TAKE(PROP_MAXIMUM_PACKET_SIZE, has_max_packet, max_packet,
	     maximum_packet_size);
	TAKE(PROP_SERVER_KEEPALIVE, has_keepalive, server_keepalive,
	     server_keepalive);
	TAKE(PROP_RECEIVE_MAXIMUM, has_recv_max, recv_max, receive_maximum);
	TAKE(PROP_TOPIC_ALIAS_MAXIMUM, has_alias_max, alias_max,
	     topic_alias_maximum);
	TAKE(PROP_MAXIMUM_QOS, has_max_qos, max_qos, maximum_qos);
	TAKE(PROP_RETAIN_AVAILABLE, has_retain, retain, retain_available);
	TAKE(PROP_WILDCARD_SUB_AVAILABLE, has_wildcard, wildcard,
	     wildcard_available);
	TAKE(PROP_SHARED_SUB_AVAILABLE, has_shared, shared, shared_available);
#undef TAKE
	if (moat_props_has(p, PROP_REASON_STRING))
		moat_log_escape(p->reason_string.p, p->reason_string.len,
				ca->reason, sizeof(ca->reason));
}

static int parse_connack(struct audit_conn *c, const struct audit_pkt *pk,
			 struct audit_connack *ca)
{
	struct moat_client_connack k;
	if (pk->first != (MQTT_CONNACK << 4)) {
		snprintf(c->err, sizeof(c->err),
			 "expected CONNACK, got a packet starting 0x%02X "
			 "(not an MQTT server?)", pk->first);
		return MOAT_EPROTO;
	}
	int rc = moat_client_connack_decode(pk->body, pk->len, c->version, &k);
	if (rc != MOAT_OK) {
		snprintf(c->err, sizeof(c->err),
			 "invalid CONNACK from the server: %s",
			 moat_strerror(rc));
		return rc;
	}
	ca->session_present = k.session_present;
	ca->rc = k.rc;
	ca->version = k.version;
	if (k.version == MQTT_PROTO_V5)
		connack_props(ca, &k.props);
	ca->accepted = ca->rc == 0;
	return MOAT_OK;
}

int audit_mqtt_connect(struct audit_ctx *x, struct audit_conn *c,
		       const struct audit_connect_req *r,
		       struct audit_connack *ca)
{
	memset(ca, 0, sizeof(*ca));
	int rc = audit_conn_open(x, c, x->tls);
	if (rc != MOAT_OK)
		goto out;
	uint64_t t0 = moat_now_ms();
	if ((rc = send_connect(x, c, r)) != MOAT_OK) {
		if (rc == MOAT_ECLOSED)
			snprintf(c->err, sizeof(c->err),
				 "the server closed the connection");
		goto out;
	}
	struct audit_pkt pk = {0};
	rc = audit_conn_read(c, audit_step_deadline(x), &pk);
	if (rc == MOAT_EAGAIN)
		snprintf(c->err, sizeof(c->err), "no CONNACK within %u ms",
			 x->run->o->timeout_ms);
	if (rc == MOAT_ECLOSED && c->tls_alert_cert_required)
		snprintf(c->err, sizeof(c->err),
			 "the server requires a client certificate");
	else if (rc == MOAT_ECLOSED)
		snprintf(c->err, sizeof(c->err),
			 "the server closed the connection without a CONNACK");
	if (rc == MOAT_OK)
		rc = parse_connack(c, &pk, ca);
	ca->latency_ms = moat_now_ms() - t0;
out:
	if (rc != MOAT_OK || !ca->accepted)
		audit_conn_close(c);
	return rc == MOAT_EAGAIN ? MOAT_EIO : rc;
}

int audit_mqtt_connect_any(struct audit_ctx *x, struct audit_conn *c,
			   struct audit_connect_req *r,
			   struct audit_connack *ca)
{
	r->version = MQTT_PROTO_V5;
	int rc = audit_mqtt_connect(x, c, r, ca);
	bool no_v5 = (rc == MOAT_OK && !ca->accepted &&
		      (ca->version != MQTT_PROTO_V5 ||
		       ca->rc == RC_UNSUPPORTED_VERSION));
	if (!no_v5)
		return rc;
	r->version = MQTT_PROTO_V311;
	return audit_mqtt_connect(x, c, r, ca);
}

/* ---- incoming PUBLISH -------------------------------------------------- */

/* Index of topic t among h's topics, added if new; -1 when the list is
 * full (then counted in more_topics). */
static long harvest_topic(struct audit_harvest *h, const char *t)
{
	for (size_t i = 0; i < h->ntopics; i++)
		if (!strcmp(h->topics[i], t))
			return (long)i;
	if (h->ntopics < AUDIT_MAX_TOPICS) {
		snprintf(h->topics[h->ntopics], AUDIT_TOPIC_LEN, "%s", t);
		return (long)h->ntopics++;
	}
	h->more_topics++;
	return -1;
}

bool audit_harvest_has(const struct audit_harvest *h, const char *topic)
{
	for (size_t i = 0; i < h->ntopics; i++)
		if (!strcmp(h->topics[i], topic))
			return true;
	return false;
}

static bool is_version_topic(struct moat_bytes t)
{
	/* mosquitto: $SYS/broker/version; EMQX: $SYS/brokers/NODE/version */
	static const char a[] = "$SYS/broker/version", b[] = "$SYS/brokers/",
			  s[] = "/version";
	if (moat_bytes_eq_str(t, a))
		return true;
	size_t nb = sizeof(b) - 1, ns = sizeof(s) - 1;
	return t.len > nb + ns && !memcmp(t.p, b, nb) &&
	       !memcmp(t.p + t.len - ns, s, ns) &&
	       !memchr(t.p + nb, '/', t.len - nb - ns);
}

static void harvest(struct audit_harvest *h, struct moat_bytes topic,
		    struct moat_bytes payload, bool retain)
{
	char t[AUDIT_TOPIC_LEN];
	moat_log_escape(topic.p, topic.len, t, sizeof(t));
	if (!moat_utf8_valid(topic.p, topic.len)) {
		h->bad_utf8 = true;
		snprintf(h->bad_topic, sizeof(h->bad_topic), "%s", t);
		return;
	}
	if (topic.len >= 4 && !memcmp(topic.p, "$SYS", 4)) {
		h->sys_msgs++;
		if (is_version_topic(topic) && !h->version[0]) {
			moat_log_escape(payload.p, payload.len, h->version,
					sizeof(h->version));
			snprintf(h->version_topic, sizeof(h->version_topic),
				 "%s", t);
		}
		return;
	}
	if (topic.len >= 9 && !memcmp(topic.p, "$CONTROL/", 9)) {
		if (!h->control_msgs++)
			moat_log_escape(payload.p, payload.len,
					h->control_reply,
					sizeof(h->control_reply));
		return;
	}
	h->msgs++;
	h->bytes += payload.len;
	h->retained += retain;
	long i = harvest_topic(h, t);
	if (retain && i >= 0)
		h->topic_retained[i] = true;
	else if (retain)
		h->more_retained++;
}

/* Decode a PUBLISH leniently (the topic need not be valid UTF-8; a
 * truncated body still has its topic). */
static int on_publish(struct audit_conn *c, const struct audit_pkt *pk,
		      struct audit_harvest *h)
{
	uint8_t qos = (uint8_t)((pk->first >> 1) & 3);
	struct moat_rd rd;
	struct moat_bytes topic;
	uint16_t id = 0;
	moat_rd_init(&rd, pk->body, pk->len);
	if (qos == 3 || moat_rd_binary(&rd, &topic) != MOAT_OK ||
	    (qos && moat_rd_u16(&rd, &id) != MOAT_OK))
		return MOAT_EMALFORMED;
	if (c->version == MQTT_PROTO_V5 && !pk->truncated) {
		uint32_t plen;
		if (moat_rd_varint(&rd, &plen) != MOAT_OK ||
		    plen > moat_rd_left(&rd))
			return MOAT_EMALFORMED;
		rd.pos += plen;
	}
	struct moat_bytes payload = {rd.p + rd.pos, moat_rd_left(&rd)};
	if (h) {
		if (pk->truncated)
			h->oversized++;
		harvest(h, topic, payload, pk->first & 1);
		if (h->on_msg)
			h->on_msg(h->arg, topic, payload, pk->first & 1);
	}
	uint8_t ack[4];
	size_t n = moat_client_ack_for(MQTT_PUBLISH, qos, id, ack);
	return n ? audit_conn_send(c, ack, n, moat_now_ms() + 5000) : MOAT_OK;
}

/* Handle what is not the packet a call waits for: messages, PUBREL,
 * DISCONNECT.  MOAT_ECLOSED after a DISCONNECT. */
static int on_other(struct audit_conn *c, const struct audit_pkt *pk,
		    struct audit_harvest *h)
{
	uint8_t type = pk->first >> 4;
	if (type == MQTT_PUBLISH)
		return on_publish(c, pk, h);
	if (type == MQTT_PUBREL && pk->len >= 2) {
		uint8_t ack[4];
		uint16_t id = (uint16_t)(pk->body[0] << 8 | pk->body[1]);
		size_t n = moat_client_ack_for(MQTT_PUBREL, 0, id, ack);
		return audit_conn_send(c, ack, n, moat_now_ms() + 5000);
	}
	if (type == MQTT_DISCONNECT) {
		snprintf(c->err, sizeof(c->err),
			 "the server sent DISCONNECT%s%s",
			 pk->len ? ": " : "",
			 pk->len ? moat_mqtt_rc_name(pk->body[0]) : "");
		return MOAT_ECLOSED;
	}
	return MOAT_OK; /* PINGRESP and anything else: ignored */
}

/* ---- SUBSCRIBE / PUBLISH / collect ------------------------------------ */

static uint16_t next_id(struct audit_conn *c)
{
	if (++c->next_id == 0)
		c->next_id = 1;
	return c->next_id;
}

/* Wait for the ack of type with packet id; SUBACK codes into codes[n]. */
static int wait_ack(struct audit_ctx *x, struct audit_conn *c, uint8_t type,
		    uint16_t id, uint8_t *codes, size_t n, uint8_t *reason,
		    struct audit_harvest *h)
{
	uint64_t deadline = audit_step_deadline(x);
	struct audit_pkt pk = {0};
	for (;;) {
		int rc = audit_conn_read(c, deadline, &pk);
		if (rc == MOAT_EAGAIN)
			snprintf(c->err, sizeof(c->err),
				 "no %s within %u ms",
				 type == MQTT_SUBACK ? "SUBACK" : "PUBACK",
				 x->run->o->timeout_ms);
		if (rc != MOAT_OK)
			return rc == MOAT_EAGAIN ? MOAT_EIO : rc;
		if (pk.first >> 4 != type) {
			if ((rc = on_other(c, &pk, h)) != MOAT_OK)
				return rc;
			continue;
		}
		if (type == MQTT_PUBACK) {
			uint16_t got;
			uint8_t r;
			struct moat_mqtt_props p;
			if (moat_mqtt_decode_ack_v(pk.body, pk.len, c->version,
						   &got, &r, &p) != MOAT_OK) {
				snprintf(c->err, sizeof(c->err),
					 "invalid PUBACK from the server");
				return MOAT_EMALFORMED;
			}
			if (got != id)
				continue;
			*reason = r;
			return MOAT_OK;
		}
		struct moat_client_suback sa;
		rc = moat_client_suback_decode(MQTT_SUBACK, pk.body, pk.len,
					       c->version, &sa);
		if (rc != MOAT_OK) {
			snprintf(c->err, sizeof(c->err),
				 "invalid SUBACK from the server");
			return rc;
		}
		if (sa.packet_id != id)
			continue;
		if (sa.ncodes != n) {
			snprintf(c->err, sizeof(c->err),
				 "SUBACK with %zu codes for %zu filters",
				 sa.ncodes, n);
			return MOAT_EPROTO;
		}
		memcpy(codes, sa.codes, n);
		return MOAT_OK;
	}
}

int audit_mqtt_subscribe(struct audit_ctx *x, struct audit_conn *c,
			 const char *const *filters, size_t n, uint8_t *codes,
			 struct audit_harvest *h)
{
	uint8_t opts[16] = {0}; /* QoS 0, Retain Handling 0 */
	struct moat_buf b;
	uint16_t id = next_id(c);
	if (n > sizeof(opts))
		return MOAT_EINVAL;
	moat_buf_init(&b, 70000);
	int rc = c->version == MQTT_PROTO_V5
			 ? moat_mqtt5_sub_encode(&b, MQTT_SUBSCRIBE, id,
						 filters, opts, n, NULL)
			 : moat_mqtt_subscribe_encode(&b, id, filters, opts, n);
	if (rc != MOAT_OK) {
		moat_buf_cleanup(&b);
		snprintf(c->err, sizeof(c->err), "SUBSCRIBE does not encode");
		return MOAT_EINVAL;
	}
	if ((rc = send_buf(c, &b)) != MOAT_OK)
		return rc;
	return wait_ack(x, c, MQTT_SUBACK, id, codes, n, NULL, h);
}

int audit_mqtt_publish(struct audit_ctx *x, struct audit_conn *c,
		       const uint8_t *topic, size_t tlen, const void *payload,
		       size_t len, uint8_t qos, uint8_t *reason)
{
	bool v5 = c->version == MQTT_PROTO_V5;
	uint16_t id = qos ? next_id(c) : 0;
	size_t size = v5 ? moat_mqtt5_publish_size(tlen, 0, len, qos)
			 : moat_mqtt_publish_size(tlen, len, qos);
	struct moat_buf b;
	moat_buf_init(&b, 70000);
	uint8_t *dst = size && size < 70000 ? moat_buf_reserve(&b, size) : NULL;
	if (!dst) {
		moat_buf_cleanup(&b);
		return MOAT_ENOMEM;
	}
	if (v5)
		moat_mqtt5_publish_encode(dst, topic, tlen, NULL, 0, NULL, 0,
					  payload, len, qos, false, false, id);
	else
		moat_mqtt_publish_encode(dst, topic, tlen, payload, len, qos,
					 false, false, id);
	moat_buf_commit(&b, size);
	int rc = send_buf(c, &b);
	if (rc != MOAT_OK || qos == 0)
		return rc;
	return wait_ack(x, c, MQTT_PUBACK, id, NULL, 0, reason, NULL);
}

int audit_mqtt_collect(struct audit_ctx *x, struct audit_conn *c,
		       unsigned ms, struct audit_harvest *h)
{
	uint64_t until = MOAT_MIN(moat_now_ms() + ms, x->run->deadline);
	struct audit_pkt pk = {0};
	for (;;) {
		int rc = audit_conn_read(c, until, &pk);
		if (rc == MOAT_EAGAIN)
			return MOAT_OK;
		if (rc == MOAT_OK)
			rc = on_other(c, &pk, h);
		if (rc == MOAT_ECLOSED) {
			h->closed = true;
			return MOAT_OK;
		}
		if (rc != MOAT_OK)
			return rc;
	}
}

void audit_mqtt_disconnect(struct audit_ctx *x, struct audit_conn *c)
{
	(void)x;
	if (c->fd >= 0) {
		uint8_t pkt[2];
		size_t n = moat_mqtt_simple_encode(pkt, MQTT_DISCONNECT);
		(void)audit_conn_send(c, pkt, n, moat_now_ms() + 1000);
		if (c->net)
			moat_net_shutdown(c->net); /* TLS close_notify */
	}
	audit_conn_close(c);
}

static size_t retained_topics(const struct audit_harvest *h)
{
	size_t n = h->more_retained;
	for (size_t i = 0; i < h->ntopics; i++)
		n += h->topic_retained[i];
	return n;
}

const char *audit_harvest_str(const struct audit_harvest *h, bool retained,
			      char *buf, size_t bufsz)
{
	size_t topics = retained ? retained_topics(h)
				 : h->ntopics + h->more_topics;
	bool more = retained ? h->more_retained : h->more_topics;
	int o = retained ? snprintf(buf, bufsz, "retained messages on ")
			 : snprintf(buf, bufsz, "%zu message%s on ", h->msgs,
				    h->msgs == 1 ? "" : "s");
	if (o > 0 && (size_t)o < bufsz)
		o += more ? snprintf(buf + o, bufsz - (size_t)o,
				     "more than %d topics", AUDIT_MAX_TOPICS)
			  : snprintf(buf + o, bufsz - (size_t)o, "%zu topic%s",
				     topics, topics == 1 ? "" : "s");
	size_t shown = 0;
	for (size_t i = 0; i < h->ntopics && o > 0 && (size_t)o < bufsz; i++) {
		if (retained && !h->topic_retained[i])
			continue;
		if (shown == 4) {
			o += snprintf(buf + o, bufsz - (size_t)o, ", ...");
			break;
		}
		o += snprintf(buf + o, bufsz - (size_t)o, "%s%s",
			      shown++ ? ", " : " (e.g. ", h->topics[i]);
	}
	if (shown && o > 0 && (size_t)o < bufsz)
		snprintf(buf + o, bufsz - (size_t)o, ")");
	return buf;
}
