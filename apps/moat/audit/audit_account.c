/* moat audit: the checks that need the user's own test accounts (--as),
 * the opt-in intrusive ones (--intrusive) and the credential checks
 * (--try-default-creds).  Each check first establishes that it can say
 * something (the observer can read the test topic, the account may not
 * publish there, the broker keeps sessions, ...) and otherwise leaves a
 * note saying why it is inconclusive, never a guess. */
#include <stdio.h>
#include <string.h>

#include "audit.h"
#include "codec/mqtt5.h"

/* 3.1.1 CONNACK codes and MQTT 5 reasons that mean "slow down". */
#define THROTTLE_GAP_MS 500u
#define BAD_LOGINS 5

/* ---- helpers ---------------------------------------------------------- */

/* Connect id (client id cid, or a fresh one) with MQTT 5 if possible.
 * true when accepted; otherwise a note "what: why" is left. */
static bool login(struct audit_ctx *x, struct audit_conn *c,
		  const struct audit_ident *id, const char *cid,
		  struct audit_connack *ca, const char *what)
{
	char own[64], why[200];
	if (!cid) {
		audit_client_id(x, id, own, sizeof(own));
		cid = own;
	}
	struct audit_connect_req r = {.id = id, .client_id = cid,
				      .keepalive = 60, .clean = true};
	int rc = audit_mqtt_connect_any(x, c, &r, ca);
	if (rc == MOAT_OK && ca->accepted)
		return true;
	if (what)
		audit_note(x->t, "%s: %s", what,
			   rc == MOAT_OK ? audit_connack_str(ca, why,
							     sizeof(why))
					 : c->err);
	return false;
}

/* Log in, subscribe to one filter; true when granted. */
static bool observe(struct audit_ctx *x, struct audit_conn *c,
		    const struct audit_ident *id, const char *filter,
		    struct audit_harvest *h, const char *what)
{
	struct audit_connack ca;
	uint8_t code = 0x80;
	if (!login(x, c, id, NULL, &ca, what))
		return false;
	const char *f[1] = {filter};
	if (audit_mqtt_subscribe(x, c, f, 1, &code, h) != MOAT_OK ||
	    !audit_granted(code)) {
		audit_note(x->t, "%s: %s may not subscribe to %s", what,
			   id->label, filter);
		return false;
	}
	return true;
}

static bool ident_same(const struct audit_ident *a,
		       const struct audit_ident *b)
{
	if (!a->user || !b->user)
		return !a->user && !b->user;
	return !strcmp(a->user, b->user);
}

/* ---- --as: $share, special characters ---------------------------------- */

static void check_share(struct audit_ctx *x, const struct audit_ident *id,
			const uint8_t *codes)
{
	static const char *const plain[] = {"#", "$SYS/#"};
	static const char *const shared[] = {"$share/moat-audit/#",
					     "$share/moat-audit/$SYS/#"};
	const size_t idx[] = {AUDIT_W_HASH, AUDIT_W_SYS};
	const char *f[2];
	size_t map[2], n = 0;
	for (size_t i = 0; i < 2; i++)
		if (!audit_granted(codes[idx[i]])) {
			map[n] = i;
			f[n++] = shared[i];
		}
	if (!n) {
		audit_note(x->t, "%s: $share bypass not tested: # and $SYS/# "
				 "were granted plainly", id->label);
		return;
	}
	struct audit_conn c;
	struct audit_connack ca;
	struct audit_harvest h = {0};
	uint8_t got[2];
	audit_progress(x, "$share bypass as %s", id->label);
	audit_conn_init(&c);
	if (login(x, &c, id, NULL, &ca, "$share check not run") &&
	    audit_mqtt_subscribe(x, &c, f, n, got, &h) == MOAT_OK) {
		(void)audit_mqtt_collect(x, &c, x->run->o->wait_ms, &h);
		for (size_t i = 0; i < n; i++) {
			if (!audit_granted(got[i])) {
				audit_note(x->t, "%s: %s refused as well",
					   id->label, f[i]);
				continue;
			}
			moat_findings_add(&x->t->findings, "AUD-MQ-10",
					  "%s: %s was granted although %s was "
					  "refused (%zu messages arrived in "
					  "the window)",
					  id->label, f[i], plain[map[i]],
					  h.msgs + h.sys_msgs);
		}
	}
	audit_mqtt_disconnect(x, &c);
}

/* Client ids "+" and "#": a broker that substitutes them into ACL
 * patterns (%c) hands out wildcards (CVE-2017-7650). */
static void check_special_ids(struct audit_ctx *x, const struct audit_ident *id,
			      const struct audit_harvest *base)
{
	static const char *const ids[] = {"+", "#"};
	static const char *const f[] = {"#", "+/#"};
	if (id->user && strpbrk(id->user, "+#/"))
		audit_note(x->t, "%s: the user name contains +, # or /; "
				 "compare its rights with a plain account's",
			   id->label);
	for (size_t i = 0; i < MOAT_ARRAY_LEN(ids); i++) {
		struct audit_conn c;
		struct audit_connack ca;
		struct audit_harvest h = {0};
		uint8_t codes[2];
		char what[400];
		audit_conn_init(&c);
		snprintf(what, sizeof(what), "%s: client id \"%s\"", id->label,
			 ids[i]);
		audit_progress(x, "%s", what);
		if (login(x, &c, id, ids[i], &ca, what) &&
		    audit_mqtt_subscribe(x, &c, f, 2, codes, &h) == MOAT_OK &&
		    audit_mqtt_collect(x, &c, x->run->o->wait_ms, &h) ==
			    MOAT_OK) {
			size_t extra = 0;
			for (size_t k = 0; k < h.ntopics; k++)
				extra += !audit_harvest_has(base, h.topics[k]);
			if (extra || (h.msgs && !base->msgs))
				moat_findings_add(
					&x->t->findings, "AUD-MQ-09",
					"%s with client id \"%s\" read %zu "
					"topic%s that the same account with a "
					"plain client id could not",
					id->label, ids[i], extra ? extra : 1,
					extra == 1 ? "" : "s");
			else
				audit_note(x->t, "%s accepted; no broader "
						 "access seen", what);
		}
		audit_mqtt_disconnect(x, &c);
	}
}

void audit_check_account(struct audit_ctx *x, const struct audit_account *a)
{
	struct audit_ident id;
	struct audit_conn c;
	struct audit_connack ca;
	struct audit_harvest h = {0};
	uint8_t codes[AUDIT_W_ALL];
	char cid[64], why[200];
	audit_ident_account(&id, a);
	audit_progress(x, "logging in as %s", id.label);
	audit_conn_init(&c);
	audit_client_id(x, &id, cid, sizeof(cid));
	struct audit_connect_req r = {.id = &id, .client_id = cid,
				      .keepalive = 3600, .clean = true};
	int rc = audit_mqtt_connect_any(x, &c, &r, &ca);
	audit_mqtt_disconnect(x, &c);
	if (rc != MOAT_OK || !ca.accepted) {
		audit_note(x->t, "%s could not log in (%s): its checks were "
				 "not run",
			   id.label,
			   rc == MOAT_OK ? audit_connack_str(&ca, why,
							     sizeof(why))
					 : c.err);
		return;
	}
	if (!x->limits_read && ca.version == MQTT_PROTO_V5)
		audit_check_limits(x, &ca);
	audit_check_window(x, &id, &h, codes, true);
	if (audit_out_of_time(x))
		return;
	check_share(x, &id, codes);
	check_special_ids(x, &id, &h);
}

/* ---- --intrusive -------------------------------------------------------- */

struct pair {
	struct audit_ident a, b; /* the actor and the other identity */
	bool has_b;		 /* b is a different identity */
};

/* A: the first account, else anonymous when allowed.  B: the second
 * account, else anonymous when allowed and A is an account. */
static bool pick_pair(struct audit_ctx *x, struct pair *p)
{
	const struct audit_opts *o = x->run->o;
	memset(p, 0, sizeof(*p));
	if (o->nacct)
		audit_ident_account(&p->a, &o->acct[0]);
	else if (x->anon_ok)
		audit_ident_anon(&p->a);
	else
		return false;
	if (o->nacct > 1)
		audit_ident_account(&p->b, &o->acct[1]);
	else if (o->nacct && x->anon_ok)
		audit_ident_anon(&p->b);
	else
		p->b = p->a;
	p->has_b = !ident_same(&p->a, &p->b);
	return true;
}

static void test_topic(struct audit_ctx *x, const char *what, char *out,
		       size_t outsz)
{
	snprintf(out, outsz, "%s/%s/%u-%u", x->run->o->test_topic, what,
		 x->run->pid, ++x->run->seq);
}

/* May id publish on topic?  Published at QoS 1 while obs (subscribed)
 * watches; true when it arrived. */
static bool can_publish(struct audit_ctx *x, const struct audit_ident *id,
			const char *topic, struct audit_conn *obs,
			struct audit_harvest *h)
{
	struct audit_conn c;
	struct audit_connack ca;
	uint8_t reason = 0;
	static const char msg[] = "moat audit: publish test";
	audit_conn_init(&c);
	if (login(x, &c, id, NULL, &ca, NULL))
		(void)audit_mqtt_publish(x, &c, (const uint8_t *)topic,
					 strlen(topic), msg, sizeof(msg) - 1,
					 1, &reason);
	audit_mqtt_disconnect(x, &c);
	size_t before = h->msgs;
	(void)audit_mqtt_collect(x, obs, x->run->o->wait_ms, h);
	return h->msgs > before;
}

/* AUD-MQ-07: a will on a topic the account may not publish on. */
static void check_will(struct audit_ctx *x, const struct pair *p)
{
	char topic[300], cid[64], why[200];
	struct audit_conn obs, c;
	struct audit_connack ca;
	struct audit_harvest h = {0};
	const struct audit_ident *ob = p->has_b ? &p->b : &p->a;
	test_topic(x, "will", topic, sizeof(topic));
	audit_progress(x, "will authorisation (%s, observed by %s)",
		       p->a.label, ob->label);
	audit_conn_init(&obs);
	audit_conn_init(&c);
	if (!observe(x, &obs, ob, topic, &h, "will check inconclusive"))
		goto out;
	if (can_publish(x, &p->a, topic, &obs, &h)) {
		audit_note(x->t, "will check inconclusive: %s may publish on "
				 "%s (use --test-topic with a subtree it may "
				 "not publish on but the observer may read)",
			   p->a.label, topic);
		goto out;
	}
	audit_client_id(x, &p->a, cid, sizeof(cid));
	struct audit_connect_req r = {.id = &p->a, .client_id = cid,
				      .keepalive = 60, .clean = true,
				      .will_topic = topic};
	int rc = audit_mqtt_connect_any(x, &c, &r, &ca);
	if (rc != MOAT_OK || !ca.accepted) {
		audit_note(x->t, "will on %s refused at CONNECT (%s)", topic,
			   rc == MOAT_OK ? audit_connack_str(&ca, why,
							     sizeof(why))
					 : c.err);
		goto out;
	}
	audit_conn_close(&c); /* no DISCONNECT: the will must fire */
	(void)audit_mqtt_collect(x, &obs, x->run->o->wait_ms, &h);
	if (h.msgs)
		moat_findings_add(&x->t->findings, "AUD-MQ-07",
				  "%s may not publish on %s, but its will "
				  "there was delivered to %s",
				  p->a.label, topic, ob->label);
	else
		audit_note(x->t, "will on %s accepted at CONNECT but not "
				 "delivered (dropped when it fired)", topic);
out:
	audit_conn_close(&c);
	audit_mqtt_disconnect(x, &obs);
}

/* AUD-MQ-08, part 1: B logs in with A's client id. */
static void check_takeover(struct audit_ctx *x, const struct pair *p)
{
	char cid[64], why[200];
	struct audit_conn a, b;
	struct audit_connack ca;
	struct audit_harvest h = {0};
	if (!p->has_b) {
		audit_note(x->t, "client-id takeover not tested: it needs two "
				 "identities (--as twice, or --as once on a "
				 "broker that accepts anonymous clients)");
		return;
	}
	audit_progress(x, "client-id takeover (%s -> %s)", p->b.label,
		       p->a.label);
	audit_conn_init(&a);
	audit_conn_init(&b);
	audit_client_id(x, &p->a, cid, sizeof(cid));
	if (!login(x, &a, &p->a, cid, &ca, "takeover check not run"))
		goto out;
	struct audit_connect_req r = {.id = &p->b, .client_id = cid,
				      .keepalive = 60, .clean = true};
	int rc = audit_mqtt_connect_any(x, &b, &r, &ca);
	if (rc == MOAT_OK && ca.accepted) {
		(void)audit_mqtt_collect(x, &a, 500, &h);
		moat_findings_add(&x->t->findings, "AUD-MQ-08",
				  "%s logged in with %s's client id \"%s\": "
				  "accepted%s",
				  p->b.label, p->a.label, cid,
				  h.closed ? ", and the first connection was "
					     "closed (taken over)"
					   : "");
	} else {
		audit_note(x->t, "%s with %s's client id: %s", p->b.label,
			   p->a.label,
			   rc == MOAT_OK ? audit_connack_str(&ca, why,
							     sizeof(why))
					 : b.err);
	}
out:
	audit_mqtt_disconnect(x, &b);
	audit_mqtt_disconnect(x, &a);
}

/* Log in as id with client id cid and an MQTT 5 session that outlives
 * the connection (300 s); with state, subscribe so that the session has
 * something in it.  Returns 1 or 0 (session present) when accepted, -1
 * when refused or failed. */
static int session_login(struct audit_ctx *x, const struct audit_ident *id,
			 const char *cid, bool clean, bool wrong, bool state)
{
	struct audit_conn c;
	struct audit_connack ca;
	audit_conn_init(&c);
	struct audit_connect_req r = {.id = id, .client_id = cid,
				      .version = MQTT_PROTO_V5,
				      .keepalive = 60, .clean = clean,
				      .session_expiry = 300,
				      .wrong_password = wrong};
	int rc = audit_mqtt_connect(x, &c, &r, &ca);
	int present = rc == MOAT_OK && ca.accepted ? ca.session_present : -1;
	if (present >= 0 && state) {
		const char *f[1] = {x->run->o->test_topic};
		uint8_t code;
		(void)audit_mqtt_subscribe(x, &c, f, 1, &code, NULL);
	}
	audit_mqtt_disconnect(x, &c);
	return present;
}

/* Leave nothing behind: a clean session that ends with the connection. */
static void session_forget(struct audit_ctx *x, const struct audit_ident *id,
			   const char *cid)
{
	struct audit_conn c;
	struct audit_connack ca;
	audit_conn_init(&c);
	struct audit_connect_req r = {.id = id, .client_id = cid,
				      .version = MQTT_PROTO_V5,
				      .keepalive = 60, .clean = true};
	(void)audit_mqtt_connect(x, &c, &r, &ca);
	audit_mqtt_disconnect(x, &c);
}

/* AUD-MQ-08, part 2: a failed login must not delete A's session. */
static void check_session_delete(struct audit_ctx *x, const struct pair *p)
{
	char cid[64];
	if (!p->a.user)
		return;
	audit_progress(x, "session deletion by a failed login (%s)",
		       p->a.label);
	audit_client_id(x, &p->a, cid, sizeof(cid));
	if (session_login(x, &p->a, cid, true, false, true) < 0 ||
	    session_login(x, &p->a, cid, false, false, false) != 1) {
		audit_note(x->t, "session-deletion check inconclusive: the "
				 "broker did not resume %s's MQTT 5 session",
			   p->a.label);
		goto out;
	}
	if (session_login(x, &p->a, cid, true, true, false) >= 0) {
		moat_findings_add_sev(&x->t->findings, "AUD-MQ-02",
				      x->loopback ? MOAT_SEV_MEDIUM
						  : MOAT_SEV_HIGH,
				      "%s logged in with a wrong password: the "
				      "broker does not check passwords",
				      p->a.label);
		goto out;
	}
	int present = session_login(x, &p->a, cid, false, false, false);
	if (present == 0)
		moat_findings_add(&x->t->findings, "AUD-MQ-08",
				  "a refused login (wrong password) with %s's "
				  "client id \"%s\" and Clean Start deleted "
				  "its persistent session",
				  p->a.label, cid);
	else if (present == 1)
		audit_note(x->t, "a refused login did not touch %s's session",
			   p->a.label);
out:
	session_forget(x, &p->a, cid);
}

/* AUD-MQ-13: one PUBLISH with an invalid topic from pub, watched by ob.
 * Returns true when the check could be made. */
static bool utf8_try(struct audit_ctx *x, const struct audit_ident *pub,
		     const struct audit_ident *ob)
{
	char base[300], filter[310], ok[320];
	struct audit_conn o, c;
	struct audit_connack ca;
	struct audit_harvest h = {0};
	bool done = false;
	test_topic(x, "utf8", base, sizeof(base));
	snprintf(filter, sizeof(filter), "%s/#", base);
	snprintf(ok, sizeof(ok), "%s/valid", base);
	audit_conn_init(&o);
	audit_conn_init(&c);
	if (!observe(x, &o, ob, filter, &h, "UTF-8 check") ||
	    !can_publish(x, pub, ok, &o, &h))
		goto out;
	done = true;
	/* "<base>/" + an overlong encoding of '/' [MQTT-1.5.4-1] */
	uint8_t bad[320];
	size_t n = strlen(base);
	memcpy(bad, base, n);
	memcpy(bad + n, "/\xC0\xAF", 3);
	static const char msg[] = "moat audit: invalid UTF-8 test";
	struct audit_harvest ph = {0};
	if (!login(x, &c, pub, NULL, &ca, "UTF-8 check")) {
		done = false;
		goto out;
	}
	(void)audit_mqtt_publish(x, &c, bad, n + 3, msg, sizeof(msg) - 1, 0,
				 NULL);
	(void)audit_mqtt_collect(x, &c, 500, &ph);
	(void)audit_mqtt_collect(x, &o, x->run->o->wait_ms, &h);
	if (h.bad_utf8)
		moat_findings_add(&x->t->findings, "AUD-MQ-13",
				  "a PUBLISH from %s with the invalid UTF-8 "
				  "topic %s was forwarded to %s%s",
				  pub->label, h.bad_topic, ob->label,
				  ph.closed ? "" : " (and the publisher was "
						   "not disconnected)");
	else
		audit_note(x->t, "invalid UTF-8 topic from %s not forwarded%s",
			   pub->label,
			   ph.closed ? "; the publisher was disconnected" : "");
out:
	audit_mqtt_disconnect(x, &c);
	audit_mqtt_disconnect(x, &o);
	return done;
}

static void check_utf8(struct audit_ctx *x, const struct pair *p)
{
	audit_progress(x, "invalid UTF-8 topic handling");
	if (utf8_try(x, &p->a, p->has_b ? &p->b : &p->a))
		return;
	if (p->has_b && utf8_try(x, &p->b, &p->a))
		return;
	audit_note(x->t, "UTF-8 check inconclusive: no test identity could "
			 "publish on %s/utf8/... and have it read (see "
			 "--test-topic)", x->run->o->test_topic);
}

void audit_check_intrusive(struct audit_ctx *x)
{
	struct pair p;
	if (!pick_pair(x, &p)) {
		audit_note(x->t, "intrusive checks not run: no identity could "
				 "log in (give test accounts with --as)");
		return;
	}
	check_will(x, &p);
	if (!audit_out_of_time(x))
		check_takeover(x, &p);
	if (!audit_out_of_time(x))
		check_session_delete(x, &p);
	if (!audit_out_of_time(x))
		check_utf8(x, &p);
}

/* ---- --try-default-creds ------------------------------------------------ */

struct cred {
	const char *user, *pass;
};

/* Ten pairs at most (THREATS.md section 9): vendor defaults and the
 * passwords the 2018 scans found most. */
static const struct cred default_creds[] = {
	{"admin", "admin"},	{"admin", "password"}, {"admin", "public"},
	{"admin", "12345"},	{"user", "12345"},     {"guest", "guest"},
	{"mosquitto", "mosquitto"}, {"root", "root"},  {"test", "test"},
	{"user", "user"},
};

struct attempt {
	int rc;
	struct audit_connack ca;
};

static void try_login(struct audit_ctx *x, const char *user, const char *pass,
		      struct attempt *at)
{
	struct audit_conn c;
	struct audit_ident id = {.user = user,
				 .pass = (const uint8_t *)pass,
				 .passlen = strlen(pass)};
	char cid[64];
	snprintf(id.label, sizeof(id.label), "user \"%s\"", user);
	audit_conn_init(&c);
	audit_client_id(x, &id, cid, sizeof(cid));
	struct audit_connect_req r = {.id = &id, .client_id = cid,
				      .version = MQTT_PROTO_V311,
				      .keepalive = 60, .clean = true};
	at->rc = audit_mqtt_connect(x, &c, &r, &at->ca);
	audit_mqtt_disconnect(x, &c);
}

/* Signs of throttling: no CONNACK, "server unavailable/busy/rate", or
 * an answer clearly slower than the first refusal. */
static bool throttled(const struct attempt *at, uint64_t first_ms)
{
	if (at->rc != MOAT_OK)
		return true;
	uint8_t rc = at->ca.rc;
	if (rc == MQTT_CONNACK_UNAVAILABLE || rc == RC_SERVER_UNAVAILABLE ||
	    rc == RC_SERVER_BUSY || rc == RC_CONNECTION_RATE_EXCEEDED ||
	    rc == RC_QUOTA_EXCEEDED || rc == RC_BANNED)
		return true;
	return at->ca.latency_ms >= first_ms + THROTTLE_GAP_MS;
}

struct creds_state {
	size_t fails;
	uint64_t first_ms;
	char times[120];
	bool slowed;
};

/* One refused login: record its time; true when throttling shows. */
static bool count_failure(struct creds_state *s, const struct attempt *at)
{
	if (!s->fails)
		s->first_ms = at->ca.latency_ms;
	if (throttled(at, s->first_ms))
		return s->slowed = true;
	size_t o = strlen(s->times);
	snprintf(s->times + o, sizeof(s->times) - o, "%s%llu", o ? ", " : "",
		 (unsigned long long)at->ca.latency_ms);
	s->fails++;
	return false;
}

static void default_pairs(struct audit_ctx *x, struct creds_state *s)
{
	size_t tried = 0;
	for (size_t i = 0; i < MOAT_ARRAY_LEN(default_creds); i++) {
		struct attempt at;
		if (audit_out_of_time(x))
			break;
		try_login(x, default_creds[i].user, default_creds[i].pass, &at);
		tried++;
		if (at.rc == MOAT_OK && at.ca.accepted) {
			moat_findings_add(&x->t->findings, "AUD-MQ-03",
					  "user \"%s\" with the password "
					  "\"%s\" was accepted (pair %zu of "
					  "%zu tried)",
					  default_creds[i].user,
					  default_creds[i].pass, tried,
					  MOAT_ARRAY_LEN(default_creds));
			return;
		}
		if (count_failure(s, &at)) {
			audit_note(x->t, "default credentials: stopped after "
					 "%zu of %zu pairs: the broker slowed "
					 "down or refused further logins",
				   tried, MOAT_ARRAY_LEN(default_creds));
			return;
		}
	}
	audit_note(x->t, "default credentials: none of %zu pairs accepted",
		   tried);
}

void audit_check_creds(struct audit_ctx *x)
{
	char user[64], pass[64];
	struct attempt at;
	struct creds_state s = {0};
	audit_progress(x, "default credentials and login throttling");
	snprintf(user, sizeof(user), "moat-audit-%u-nobody", x->run->pid);
	snprintf(pass, sizeof(pass), "moat-audit-%u-wrong", x->run->pid);
	try_login(x, user, pass, &at);
	if (at.rc == MOAT_OK && at.ca.accepted) {
		x->any_creds = true;
		moat_findings_add_sev(&x->t->findings, "AUD-MQ-02",
				      x->loopback ? MOAT_SEV_MEDIUM
						  : MOAT_SEV_HIGH,
				      "a made-up user name and password were "
				      "accepted: the broker does not check "
				      "credentials");
		audit_note(x->t, "default credentials and throttling not "
				 "tested: any login is accepted");
		return;
	}
	if (!count_failure(&s, &at))
		default_pairs(x, &s);
	while (!s.slowed && s.fails < BAD_LOGINS && !audit_out_of_time(x)) {
		try_login(x, user, pass, &at);
		count_failure(&s, &at);
	}
	if (s.slowed)
		audit_note(x->t, "failed logins are throttled (after %zu "
				 "refusal%s)", s.fails, s.fails == 1 ? "" : "s");
	else if (s.fails >= BAD_LOGINS)
		moat_findings_add(&x->t->findings, "AUD-MQ-03b",
				  "%zu failed logins in a row were all "
				  "answered at once (%s ms): no back-off or "
				  "lock-out",
				  s.fails, s.times);
}
