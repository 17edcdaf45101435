/* moat audit: the checks every target gets: does it speak MQTT (and in
 * clear), anonymous access, the advertised and enforced limits, the
 * idle-socket timeout, what an identity sees through #, +/# and $SYS/#
 * (and retained messages), and the broker version.  The run of a target
 * that calls them is audit_run.c. */
#include <netdb.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "audit.h"
#include "codec/mqtt5.h"

/* Filters of a collection window (the control-API replies only with
 * an account: see audit_account.c). */
static const char *const window_filters[] = {
	"#",
	"+/#",
	"$SYS/#",
	"$CONTROL/dynamic-security/v1/response",
	"$CONTROL/broker/v1/response",
};

/* ---- does it speak MQTT? ----------------------------------------------- */

static bool printable(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if ((p[i] < 0x20 || p[i] >= 0x7f) && p[i] != '\r' &&
		    p[i] != '\n' && p[i] != '\t')
			return false;
	return n > 0;
}

/* Read the first bytes of the answer to CONNECT: stops at 4 bytes that
 * look like a CONNACK, 48 bytes, a close or the deadline.  *closed tells
 * whether the server closed the connection. */
static size_t read_answer(struct audit_ctx *x, struct audit_conn *c,
			  uint8_t *buf, size_t cap, bool *closed, int *err)
{
	uint64_t deadline = audit_step_deadline(x);
	size_t got = 0;
	*closed = false;
	*err = MOAT_OK;
	while (got < cap && !(got >= 4 && buf[0] == (MQTT_CONNACK << 4))) {
		int n = audit_conn_recv(c, buf + got, cap - got,
					got ? MOAT_MIN(deadline,
						       moat_now_ms() + 300)
					    : deadline);
		if (n == 0)
			*closed = true;
		if (n < 0 && n != MOAT_EAGAIN)
			*err = n;
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	return got;
}

static void describe_answer(struct audit_ctx *x, const uint8_t *b, size_t n)
{
	if (n >= 2 && b[0] == 0x15 && b[1] == 0x03) {
		audit_fail(x->t, "this port speaks TLS (it answered CONNECT "
				 "with a TLS alert): audit it as mqtts://");
		return;
	}
	char esc[200];
	if (printable(b, n)) {
		size_t line = 0;
		while (line < n && b[line] != '\r' && b[line] != '\n')
			line++;
		moat_log_escape(b, MOAT_MIN(line, (size_t)60), esc, sizeof(esc));
		audit_fail(x->t, "not an MQTT server: it answered CONNECT "
				 "with \"%s\"", esc);
		return;
	}
	int o = 0;
	for (size_t i = 0; i < n && i < 8; i++)
		o += snprintf(esc + o, sizeof(esc) - (size_t)o, " %02x", b[i]);
	audit_fail(x->t, "not an MQTT server: it answered CONNECT with the "
			 "bytes%s%s", esc, n > 8 ? " ..." : "");
}

/* A plaintext port that closed on CONNECT: is it a TLS port? */
static bool speaks_tls(struct audit_ctx *x)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	if (!ctx)
		return false;
	SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
	struct audit_conn c;
	audit_conn_init(&c);
	bool tls = audit_conn_open(x, &c, ctx) == MOAT_OK;
	audit_conn_close(&c);
	SSL_CTX_free(ctx);
	return tls;
}

static void no_answer(struct audit_ctx *x, struct audit_conn *c, bool closed,
		      int err)
{
	if (c->tls_alert_cert_required) {
		x->cert_required = true;
		audit_note(x->t, "the server requires a client certificate "
				 "(enforced); moat audit offers none, so the "
				 "MQTT checks were not run");
		return;
	}
	if (err != MOAT_OK) {
		audit_fail(x->t, "%s", c->err);
		return;
	}
	if (closed && !x->tls && speaks_tls(x)) {
		audit_fail(x->t, "this port speaks TLS (it closed on a plain "
				 "CONNECT, then completed a TLS handshake): "
				 "audit it as mqtts://");
		return;
	}
	if (closed)
		audit_fail(x->t, "the server closed the connection without "
				 "answering CONNECT (not an MQTT server, or it "
				 "refuses this client)");
	else
		audit_fail(x->t, "the server accepted the connection but did "
				 "not answer CONNECT within %u ms (not an MQTT "
				 "server, or it is stuck)",
			   x->run->o->timeout_ms);
}

/* The first contact: an anonymous MQTT 3.1.1 CONNECT, read as raw bytes
 * so that a server that is not MQTT can be named.  MOAT_OK when a CONNACK
 * came back (x->anon_ok set from it). */
int audit_first_probe(struct audit_ctx *x)
{
	struct audit_conn c;
	struct audit_ident anon;
	char cid[64];
	uint8_t buf[48];
	audit_conn_init(&c);
	audit_ident_anon(&anon);
	audit_client_id(x, &anon, cid, sizeof(cid));
	struct moat_mqtt_connect_opts o = {.proto_level = MQTT_PROTO_V311,
					   .clean_session = true,
					   .keepalive = 60,
					   .client_id = cid};
	struct moat_buf b;
	moat_buf_init(&b, 256);
	int rc = audit_conn_open(x, &c, x->tls);
	if (rc != MOAT_OK) {
		audit_fail(x->t, "%s", c.err);
		goto out;
	}
	if ((rc = moat_mqtt_connect_encode(&b, &o)) == MOAT_OK)
		rc = audit_conn_send(&c, b.data + b.off, moat_buf_used(&b),
				     audit_step_deadline(x));
	bool closed = rc == MOAT_ECLOSED;
	int err = rc == MOAT_ECLOSED ? MOAT_OK : rc;
	size_t n = rc == MOAT_OK ? read_answer(x, &c, buf, sizeof(buf),
					       &closed, &err)
				 : 0;
	if (n >= 4 && buf[0] == (MQTT_CONNACK << 4) && buf[1] == 2 &&
	    !(buf[2] & 0xFE)) {
		x->anon_ok = buf[3] == 0;
		rc = MOAT_OK;
		goto out;
	}
	rc = MOAT_EPROTO;
	if (n)
		describe_answer(x, buf, n);
	else
		no_answer(x, &c, closed, err);
out:
	moat_buf_cleanup(&b);
	audit_conn_close(&c);
	return rc;
}

/* ---- anonymous access, limits, idle sockets ---------------------------- */

void audit_check_limits(struct audit_ctx *x, const struct audit_connack *ca)
{
	char adv[300], mps[16] = "none", ska[16] = "none";
	struct audit_target *t = x->t;
	x->limits_read = true;
	if (ca->has_max_packet)
		snprintf(mps, sizeof(mps), "%u", ca->max_packet);
	if (ca->has_keepalive)
		snprintf(ska, sizeof(ska), "%u", ca->server_keepalive);
	snprintf(adv, sizeof(adv),
		 "MQTT 5 CONNACK (asked for keep-alive 3600): Maximum Packet "
		 "Size %s, Server Keep Alive %s, Receive Maximum %u, Topic "
		 "Alias Maximum %u, Maximum QoS %u, Retain Available %u, "
		 "Wildcard %u, Shared %u",
		 mps, ska, ca->has_recv_max ? ca->recv_max : 65535u,
		 ca->has_alias_max ? ca->alias_max : 0u,
		 ca->has_max_qos ? ca->max_qos : 2u,
		 ca->has_retain ? ca->retain : 1u,
		 ca->has_wildcard ? ca->wildcard : 1u,
		 ca->has_shared ? ca->shared : 1u);
	audit_note(t, "%s", adv);
	if (!ca->has_max_packet)
		moat_findings_add_sev(&t->findings, "AUD-MQ-12", MOAT_SEV_MEDIUM,
				      "no Maximum Packet Size in the MQTT 5 "
				      "CONNACK: the server accepts packets up "
				      "to MQTT's 256 MiB");
	else if (ca->max_packet > 16u * 1024u * 1024u)
		moat_findings_add_sev(&t->findings, "AUD-MQ-12", MOAT_SEV_MEDIUM,
				      "Maximum Packet Size %u bytes (above "
				      "16 MiB)", ca->max_packet);
	if (!ca->has_keepalive || ca->server_keepalive > 300)
		moat_findings_add(&t->findings, "AUD-MQ-12",
				  "a keep-alive of 3600 s was accepted (%s)",
				  ca->has_keepalive
					  ? "Server Keep Alive above 300 s"
					  : "no Server Keep Alive in CONNACK");
}

void audit_check_anonymous(struct audit_ctx *x)
{
	struct audit_ident anon;
	struct audit_conn c;
	struct audit_connack ca;
	char cid[64], why[200];
	bool v3 = x->anon_ok;
	audit_progress(x, "anonymous access");
	audit_ident_anon(&anon);
	audit_conn_init(&c);
	audit_client_id(x, &anon, cid, sizeof(cid));
	struct audit_connect_req r = {.id = &anon, .client_id = cid,
				      .version = MQTT_PROTO_V5,
				      .keepalive = 3600, .clean = true};
	int rc = audit_mqtt_connect(x, &c, &r, &ca);
	bool v5 = rc == MOAT_OK && ca.accepted && ca.version == MQTT_PROTO_V5;
	if (v5)
		audit_check_limits(x, &ca);
	audit_mqtt_disconnect(x, &c);
	x->anon_ok = v3 || v5;
	if (!x->anon_ok) {
		audit_note(x->t, "anonymous CONNECT refused (MQTT 3.1.1 and "
				 "5%s%s)", rc == MOAT_OK ? ": " : "",
			   rc == MOAT_OK ? audit_connack_str(&ca, why,
							     sizeof(why))
					 : "");
		return;
	}
	moat_findings_add_sev(&x->t->findings, "AUD-MQ-02",
			      x->loopback ? MOAT_SEV_MEDIUM : MOAT_SEV_HIGH,
			      "a CONNECT without user name or password was "
			      "accepted (MQTT 3.1.1: %s; MQTT 5: %s)%s",
			      v3 ? "accepted" : "refused",
			      v5 ? "accepted" : "refused",
			      x->loopback ? "; on a loopback address, so "
					    "only local users and programs can "
					    "use it"
					  : "");
}

/* A connection that never sends CONNECT must be closed (connect timeout). */
void audit_check_idle(struct audit_ctx *x)
{
	struct audit_conn c;
	unsigned limit = x->run->o->idle_s;
	audit_progress(x, "idle connection without CONNECT (up to %u s)",
		       limit);
	audit_conn_init(&c);
	if (audit_conn_open(x, &c, x->tls) != MOAT_OK) {
		audit_note(x->t, "idle-socket check not run: %s", c.err);
		audit_conn_close(&c);
		return;
	}
	uint64_t t0 = moat_now_ms();
	uint64_t until = MOAT_MIN(t0 + (uint64_t)limit * 1000u,
				  x->run->deadline);
	uint8_t scratch[256];
	int n;
	do
		n = audit_conn_recv(&c, scratch, sizeof(scratch), until);
	while (n > 0);
	uint64_t held = moat_now_ms() - t0;
	audit_conn_close(&c);
	if (n == MOAT_EAGAIN && moat_now_ms() >= t0 + (uint64_t)limit * 1000u)
		moat_findings_add_sev(&x->t->findings, "AUD-MQ-12",
				      MOAT_SEV_MEDIUM,
				      "a connection that sent nothing (no "
				      "CONNECT) was still open after %u s",
				      limit);
	else if (n == MOAT_EAGAIN)
		audit_note(x->t, "idle-socket check cut short by --max-time");
	else
		audit_note(x->t, "a connection that sent no CONNECT was "
				 "closed after %llu.%llu s",
			   (unsigned long long)(held / 1000),
			   (unsigned long long)(held % 1000 / 100));
}

/* ---- collection windows ------------------------------------------------ */

static void window_findings(struct audit_ctx *x, const struct audit_ident *id,
			    const struct audit_harvest *h,
			    const uint8_t *codes)
{
	struct moat_findings *f = &x->t->findings;
	bool anon = id->user == NULL;
	char seen[400];
	bool hash = audit_granted(codes[AUDIT_W_HASH]);
	bool plus = audit_granted(codes[AUDIT_W_PLUS]);
	if ((hash || plus) && h->msgs)
		moat_findings_add_sev(
			f, "AUD-MQ-05", anon ? MOAT_SEV_HIGH : MOAT_SEV_MEDIUM,
			"%s subscribed to # (%s) and +/# (%s) and received %s",
			id->label, hash ? "granted" : "refused",
			plus ? "granted" : "refused",
			audit_harvest_str(h, false, seen, sizeof(seen)));
	else if (hash || plus)
		audit_note(x->t, "%s: # or +/# granted, but nothing arrived "
				 "in the window (no traffic, or delivery is "
				 "filtered)", id->label);
	if (h->retained)
		moat_findings_add_sev(
			f, "AUD-MQ-06", anon ? MOAT_SEV_HIGH : MOAT_SEV_LOW,
			"%s received %s as soon as it subscribed", id->label,
			audit_harvest_str(h, true, seen, sizeof(seen)));
	if (h->sys_msgs)
		moat_findings_add(f, "AUD-MQ-04",
				  "%s subscribed to $SYS/# and received %zu "
				  "message%s%s%s%s%s",
				  id->label, h->sys_msgs,
				  h->sys_msgs == 1 ? "" : "s",
				  h->version[0] ? ", among them " : "",
				  h->version_topic, h->version[0] ? " = " : "",
				  h->version);
	else if (audit_granted(codes[AUDIT_W_SYS]))
		audit_note(x->t, "%s: $SYS/# granted, nothing arrived in the "
				 "window", id->label);
	if (h->version[0] && !x->version[0]) {
		snprintf(x->version, sizeof(x->version), "%s", h->version);
		snprintf(x->version_src, sizeof(x->version_src), "%s",
			 h->version_topic);
	}
}

static void control_findings(struct audit_ctx *x, const struct audit_ident *id,
			     const struct audit_harvest *h)
{
	if (!h->control_msgs)
		return;
	if (strstr(h->control_reply, "\"error\""))
		audit_note(x->t, "%s: the control API answered with an error "
				 "(%.120s)", id->label, h->control_reply);
	else
		moat_findings_add(&x->t->findings, "AUD-MQ-14",
				  "%s sent a read-only listClients / "
				  "listListeners request to $CONTROL and got "
				  "an answer: %.160s",
				  id->label, h->control_reply);
}

/* Ask the control APIs (mosquitto dynamic security, mosquitto 2.1's
 * broker API) for a harmless list. */
static void ask_control(struct audit_ctx *x, struct audit_conn *c)
{
	static const char dynsec[] =
		"{\"commands\":[{\"command\":\"listClients\"}]}";
	static const char broker[] =
		"{\"commands\":[{\"command\":\"listListeners\"}]}";
	static const char t1[] = "$CONTROL/dynamic-security/v1";
	static const char t2[] = "$CONTROL/broker/v1";
	(void)audit_mqtt_publish(x, c, (const uint8_t *)t1, sizeof(t1) - 1,
				 dynsec, sizeof(dynsec) - 1, 0, NULL);
	(void)audit_mqtt_publish(x, c, (const uint8_t *)t2, sizeof(t2) - 1,
				 broker, sizeof(broker) - 1, 0, NULL);
}

void audit_check_window(struct audit_ctx *x, const struct audit_ident *id,
			struct audit_harvest *h, uint8_t *codes,
			bool with_control)
{
	struct audit_conn c;
	struct audit_connack ca;
	char cid[64], why[200];
	size_t nf = with_control ? AUDIT_W_ALL : AUDIT_W_BASIC;
	memset(codes, 0x80, AUDIT_W_ALL);
	audit_progress(x, "what %s can read (#, +/#, $SYS/#%s; %u ms)",
		       id->label, with_control ? ", $CONTROL" : "",
		       x->run->o->wait_ms);
	audit_conn_init(&c);
	audit_client_id(x, id, cid, sizeof(cid));
	struct audit_connect_req r = {.id = id, .client_id = cid,
				      .keepalive = 60, .clean = true};
	int rc = audit_mqtt_connect_any(x, &c, &r, &ca);
	if (rc != MOAT_OK || !ca.accepted) {
		audit_note(x->t, "%s: subscription checks not run: %s",
			   id->label,
			   rc == MOAT_OK ? audit_connack_str(&ca, why,
							     sizeof(why))
					 : c.err);
		goto out;
	}
	rc = audit_mqtt_subscribe(x, &c, window_filters, nf, codes, h);
	if (rc == MOAT_OK && with_control && audit_granted(codes[AUDIT_W_BASIC]))
		ask_control(x, &c);
	if (rc == MOAT_OK)
		rc = audit_mqtt_collect(x, &c, x->run->o->wait_ms, h);
	if (rc != MOAT_OK) {
		audit_note(x->t, "%s: subscription checks cut short: %s",
			   id->label, c.err);
		goto out;
	}
	audit_note(x->t, "%s: SUBACK # %s, +/# %s, $SYS/# %s", id->label,
		   audit_suback_str(codes[AUDIT_W_HASH], c.version),
		   audit_suback_str(codes[AUDIT_W_PLUS], c.version),
		   audit_suback_str(codes[AUDIT_W_SYS], c.version));
	window_findings(x, id, h, codes);
	if (with_control)
		control_findings(x, id, h);
out:
	audit_mqtt_disconnect(x, &c);
}

/* ---- version ---------------------------------------------------------- */

void audit_check_version(struct audit_ctx *x)
{
	const char *user = x->run->o->broker_version;
	const char *v = user ? user : x->version;
	const char *src = user ? "--broker-version" : x->version_src;
	if (!v[0] && audit_out_of_time(x))
		return;
	if (!v[0]) {
		audit_note(x->t, "broker version not visible ($SYS not "
				 "readable): give it with --broker-version to "
				 "look up known vulnerabilities (AUD-VER-01)");
		return;
	}
	if (!audit_cve_check(v, src, &x->t->findings))
		audit_note(x->t, "broker version \"%s\" (%s): not in moat's "
				 "vulnerability table", v, src);
}
