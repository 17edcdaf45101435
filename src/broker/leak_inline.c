/* The leak detector inside moatd (docs/leaks.md, "In moatd"): every
 * PUBLISH (topic, payload, MQTT 5 user properties) and every will is
 * scanned before anyone receives it; leak_policy decides per finding:
 * log, alert (log + an event on $SYS/moat/leaks/CATEGORY), redact (the
 * matched bytes become '*' before fan-out) or block (dropped).  The
 * detector is part of the security state (rebuilt on reload); each worker
 * scans with its own scratch, allocating nothing per message except a
 * copy of a retained message being redacted at start. */
#include <malloc.h>
#include <stdio.h>
#include <string.h>

#include <stddef.h>

#include <openssl/crypto.h>

#include "broker_int.h"
#include "codec/mqtt5.h"
#include "leak/leak.h"

#define LOG_PER_SECOND 50.0 /* leak log lines and events per worker */

static const char *const action_names[] = {"log", "alert", "redact",
					   "block"};

/* ---- set-up (security state) --------------------------------------------- */

static int load_key(const char *path, uint8_t key[MOAT_LEAK_KEY_LEN],
		    char *err, size_t errsz)
{
	char *buf = NULL;
	size_t len = 0;
	char e[512];
	int rc = moat_file_read(path, 256, true, &buf, &len, e, sizeof(e));
	if (rc != MOAT_OK) {
		snprintf(err, errsz, "leak_key_file %s", e);
		return rc;
	}
	size_t n = len;
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
		n--;
	rc = MOAT_OK;
	if (len == MOAT_LEAK_KEY_LEN) {
		memcpy(key, buf, MOAT_LEAK_KEY_LEN);
	} else if (n == 2 * MOAT_LEAK_KEY_LEN) {
		for (size_t i = 0; i < MOAT_LEAK_KEY_LEN && !rc; i++) {
			char hex[3] = {buf[2 * i], buf[2 * i + 1], 0};
			char *end;
			unsigned long v = strtoul(hex, &end, 16);
			if (*end || !hex[0] || !hex[1] || hex[0] == '+' ||
			    hex[0] == '-' || hex[0] == ' ')
				rc = MOAT_EINVAL;
			key[i] = (uint8_t)v;
		}
	} else {
		rc = MOAT_EINVAL;
	}
	if (rc)
		snprintf(err, errsz, "leak_key_file %s: expected 32 bytes or "
			 "64 hex digits", path);
	memset(buf, 0, len);
	moat_free(buf);
	return rc;
}

int moat__leak_setup(struct moat_security *s, char *err, size_t errsz)
{
	const struct moat_config *cfg = &s->cfg;
	if (!cfg->leak_detection)
		return MOAT_OK;
	uint8_t key[MOAT_LEAK_KEY_LEN] = {0};
	struct moat_leak_opts o = {0};
	if (cfg->leak_key_file[0]) {
		int rc = load_key(cfg->leak_key_file, key, err, errsz);
		if (rc)
			return rc;
		o.hmac_key = key;
	}
	char e[256] = "";
	int rc = moat_leak_db_new(&o, &s->leak_db, e, sizeof(e));
	OPENSSL_cleanse(key, sizeof(key));
	/* Compiling the patterns leaves megabytes of freed memory behind:
	 * give them back rather than keep them for the broker's life. */
	malloc_trim(0);
	if (rc)
		snprintf(err, errsz, "leak_detection: %s", e);
	return rc;
}

void moat__leak_cleanup(struct moat_security *s)
{
	moat_leak_db_free(s->leak_db);
	s->leak_db = NULL;
}

/* The worker's scratch for its security state's detector. */
static struct moat_leak_scratch *scratch(struct moat_worker *w)
{
	const struct moat_leak_db *db = w->sec->leak_db;
	if (!db)
		return NULL;
	if (w->leak_scratch && w->leak_scratch_db == db)
		return w->leak_scratch;
	moat_leak_scratch_free(w->leak_scratch);
	w->leak_scratch = NULL;
	w->leak_scratch_db = NULL;
	if (moat_leak_scratch_new(db, &w->leak_scratch) != MOAT_OK) {
		w->leak_scratch = NULL;
		return NULL;
	}
	w->leak_scratch_db = db;
	return w->leak_scratch;
}

void moat__leak_worker_free(struct moat_worker *w)
{
	for (unsigned i = 0; i < w->nleak_held; i++)
		moat_msg_unref(&w->leak_held[i]);
	w->nleak_held = 0;
	MOAT_FREE(w->leak_buf);
	w->leak_bufcap = 0;
	moat_leak_scratch_free(w->leak_scratch);
	w->leak_scratch = NULL;
	w->leak_scratch_db = NULL;
	moat__leak_tracks_free(w);
}

/* ---- policy ------------------------------------------------------------------- */

/* Does a leak_policy filter match topic?  As MQTT matching, except that
 * a filter starting with a wildcard also covers topics starting with '$'
 * ("leak_policy # credential block" means every topic). */
static bool policy_matches(const char *filter, const struct moat_msg *m)
{
	const uint8_t *t = (const uint8_t *)m->topic;
	size_t tl = m->topic_len;
	if (tl && t[0] == '$' && (filter[0] == '#' || filter[0] == '+')) {
		char buf[1024];
		if (tl > sizeof(buf))
			return filter[0] == '#' && !filter[1];
		memcpy(buf, t, tl);
		buf[0] = '_'; /* any plain first character */
		return moat_topic_matches((const uint8_t *)filter,
					  strlen(filter), (const uint8_t *)buf,
					  tl);
	}
	return moat_topic_matches((const uint8_t *)filter, strlen(filter), t,
				  tl);
}

/* The first leak_policy matching (topic, category), or -1: alert. */
static int policy_for(const struct moat_config *cfg, const struct moat_msg *m,
		      enum moat_leak_category cat)
{
	for (size_t i = 0; i < cfg->nleak_policies; i++) {
		const struct moat_leak_policy_cfg *p = &cfg->leak_policies[i];
		if ((p->categories & MOAT_LEAK_BIT(cat)) &&
		    policy_matches(p->filter, m))
			return (int)i;
	}
	return -1;
}

/* The strongest action any finding in a message on this topic could
 * get: what an incomplete scan must assume. */
static int strongest_for(const struct moat_config *cfg,
			 const struct moat_msg *m)
{
	int worst = -1;
	for (int c = 0; c < MOAT_LEAK_CATEGORY_COUNT; c++) {
		int p = policy_for(cfg, m, (enum moat_leak_category)c);
		worst = MOAT_MAX(worst, p >= 0 ? cfg->leak_policies[p].action
					       : MOAT_LEAK_ALERT);
	}
	return worst;
}

/* ---- reporting ---------------------------------------------------------------- */

static bool may_report(struct moat_worker *w)
{
	uint64_t now = moat_now_ms();
	if (!w->leak_refill_ms)
		w->leak_tokens = LOG_PER_SECOND;
	else if (now > w->leak_refill_ms)
		w->leak_tokens += (double)(now - w->leak_refill_ms) *
				  LOG_PER_SECOND / 1000.0;
	if (w->leak_tokens > LOG_PER_SECOND)
		w->leak_tokens = LOG_PER_SECOND;
	w->leak_refill_ms = now;
	if (w->leak_tokens < 1.0) {
		w->leak_suppressed++;
		return false;
	}
	w->leak_tokens -= 1.0;
	return true;
}

void moat__leak_log_flush(struct moat_worker *w)
{
	if (!w->leak_suppressed)
		return;
	moat_warn("leak: %llu more findings not logged (at most %.0f a second "
		  "per worker); $SYS/moat/leaks/count/... counts them all",
		  (unsigned long long)w->leak_suppressed, LOG_PER_SECOND);
	w->leak_suppressed = 0;
}

/* JSON string body of p[0..n) into out (escaped; cut at a character
 * boundary to fit). */
static void json_str(char *out, size_t outsz, const char *p, size_t n)
{
	size_t o = 0, i = 0;
	for (; i < n && o + 8 < outsz; i++) {
		unsigned char ch = (unsigned char)p[i];
		if (ch == '"' || ch == '\\') {
			out[o++] = '\\';
			out[o++] = (char)ch;
		} else if (ch < 0x20 || ch == 0x7F) {
			o += (size_t)snprintf(out + o, outsz - o, "\\u%04x", ch);
		} else {
			out[o++] = (char)ch; /* UTF-8 was validated */
		}
	}
	/* Cut short inside a multi-byte character: drop its start. */
	if (i < n)
		while (o > 0 && ((unsigned char)out[o - 1] & 0xC0) == 0x80)
			o--;
	if (i < n && o > 0 && ((unsigned char)out[o - 1] & 0xC0) == 0xC0)
		o--;
	out[o] = '\0';
}

/* One category's first finding in a message, reported once the message's
 * fate is known. */
struct pending_report {
	struct moat_leak_finding f;
	const char *part;
	int action; /* its own policy's action */
	int policy;
};

/* Who and where, and what the whole message's inspection found. */
struct inspect {
	struct moat_worker *w;
	struct moat_msg *m;
	const char *cid;
	const char *user;    /* NULL = anonymous */
	const char *origin;  /* "publish", "will", "retained" */
	const char *topic;   /* the topic, redacted where it leaked */
	size_t topic_len;
	int action;          /* strongest so far, -1 = nothing found */
	bool incomplete;     /* a part could not be scanned to its end */
	uint32_t cats;       /* categories of all findings (tracks) */
	bool precise;        /* a precise geolocation among them */
	uint32_t seen;       /* categories with a pending report */
	size_t nrep;
	/* Not cleared (written before read): keep last. */
	struct pending_report rep[MOAT_LEAK_CATEGORY_COUNT];
	char tbuf[1024];
};

static const char *fate_name(int action)
{
	return action == MOAT_LEAK_BLOCK    ? "blocked"
	       : action == MOAT_LEAK_REDACT ? "redacted"
					    : "delivered";
}

/* The log line and (unless the action is log) the event of finding f,
 * of kind cat, in part of the message x. */
static void emit(struct inspect *x, const char *cat,
		 const struct moat_leak_finding *f, const char *part,
		 int action)
{
	struct moat_worker *w = x->w;
	if (!may_report(w))
		return;
	char t[160], id[80], u[80];
	moat_log_escape((const uint8_t *)x->topic, x->topic_len, t, sizeof(t));
	moat_log_escape((const uint8_t *)x->cid, strlen(x->cid), id,
			sizeof(id));
	if (x->user)
		moat_log_escape((const uint8_t *)x->user, strlen(x->user), u,
				sizeof(u));
	/* The same fields as the $SYS event below (docs/logging.md). */
	const struct moat_log_field lf[] = {
		MOAT_LF_STR("category", cat),
		MOAT_LF_STR("severity", moat_leak_severity_name(f->severity)),
		MOAT_LF_NUM("confidence", f->confidence),
		MOAT_LF_STR("action", action_names[action]),
		MOAT_LF_STR("message", fate_name(x->action)),
		MOAT_LF_STR("origin", x->origin),
		MOAT_LF_STR("part", part),
		MOAT_LF_STR("topic", t),
		MOAT_LF_STR("client_id", id),
		MOAT_LF_STR("user", x->user ? u : NULL),
		MOAT_LF_STR("path", f->path[0] ? f->path : NULL),
		MOAT_LF_NUM("start", f->start),
		MOAT_LF_NUM("end", f->end),
		MOAT_LF_STR("preview", f->preview),
		MOAT_LF_STR("hmac", f->hmac),
	};
	moat_log_event(MOAT_LOG_NOTICE, "leak", lf, MOAT_ARRAY_LEN(lf),
		       "leak: %s (%s, confidence %u%%) in the %s of a %s by "
		       "client \"%s\" user %s%s%s on %s%s%s, bytes %zu-%zu: %s "
		       "(hmac %s); policy %s, message %s",
		       cat, moat_leak_severity_name(f->severity),
		       (unsigned)f->confidence, part, x->origin, id,
		       x->user ? "\"" : "", x->user ? u : "(anonymous)",
		       x->user ? "\"" : "", t, f->path[0] ? " at " : "",
		       f->path, f->start, f->end, f->preview, f->hmac,
		       action_names[action], fate_name(x->action));
	if (action == MOAT_LEAK_LOG)
		return;
	/* The event: what an operator needs, never the data itself. */
	char jt[512], jc[160], ju[160], jp[2 * MOAT_LEAK_PATH_MAX],
		jv[2 * MOAT_LEAK_PREVIEW_MAX];
	json_str(jt, sizeof(jt), x->topic, x->topic_len);
	json_str(jc, sizeof(jc), x->cid, strlen(x->cid));
	if (x->user)
		json_str(ju, sizeof(ju), x->user, strlen(x->user));
	json_str(jp, sizeof(jp), f->path, strlen(f->path));
	json_str(jv, sizeof(jv), f->preview, strlen(f->preview));
	char ev[1500];
	int n = snprintf(
		ev, sizeof(ev),
		"{\"category\":\"%s\",\"severity\":\"%s\",\"confidence\":%u,"
		"\"action\":\"%s\",\"message\":\"%s\",\"origin\":\"%s\","
		"\"part\":\"%s\",\"topic\":\"%s\",\"client_id\":\"%s\","
		"\"user\":%s%s%s,\"path\":%s%s%s,\"start\":%zu,\"end\":%zu,"
		"\"preview\":\"%s\",\"hmac\":\"%s\"}",
		cat, moat_leak_severity_name(f->severity),
		(unsigned)f->confidence, action_names[action],
		fate_name(x->action), x->origin, part, jt, jc,
		x->user ? "\"" : "", x->user ? ju : "null", x->user ? "\"" : "",
		f->path[0] ? "\"" : "", f->path[0] ? jp : "null",
		f->path[0] ? "\"" : "", f->start, f->end, jv, f->hmac);
	if (n < 0 || (size_t)n >= sizeof(ev))
		return;
	char topic[64];
	snprintf(topic, sizeof(topic), "$SYS/moat/leaks/%s", cat);
	struct moat_msg *ev_msg = moat_msg_new((const uint8_t *)topic,
					       strlen(topic),
					       (const uint8_t *)ev, (size_t)n,
					       0, false);
	if (!ev_msg)
		return;
	if (w->leak_hold) { /* restoring: routed once sessions are whole */
		if (w->nleak_held < MOAT_ARRAY_LEN(w->leak_held))
			w->leak_held[w->nleak_held++] = ev_msg;
		else
			moat_msg_unref(&ev_msg);
		return;
	}
	moat_worker_route(w, ev_msg);
	moat_msg_unref(&ev_msg);
}

static void report(struct inspect *x, const struct pending_report *pr)
{
	emit(x, moat_leak_category_name(pr->f.category), &pr->f, pr->part,
	     pr->action);
}

/* Tracks: findings of their own kind over a client's messages (always
 * alerts: the earlier messages are gone), counted after the categories
 * ($SYS/moat/leaks/count/location_track, .../linked_health). */
static const char *const track_names[] = {"location_track",
					  "linked_health"};

const char *moat__leak_track_name(unsigned k)
{
	return k < MOAT_ARRAY_LEN(track_names) ? track_names[k] : "?";
}
_Static_assert(MOAT_LEAK_CATEGORY_COUNT + 2 <= 32, "stats.leaks too small");

static void report_tracks(struct inspect *x)
{
	if (!x->cats || strcmp(x->origin, "publish"))
		return;
	unsigned k = moat__leak_track(x->w, x->cid,
				      (const uint8_t *)x->m->topic,
				      x->m->topic_len, x->cats, x->precise,
				      moat_now_ms());
	static const char *const previews[] = {
		"5+ precise positions in 10 minutes",
		"health and a person id on 2 topics"};
	for (unsigned i = 0; i < 2; i++) {
		if (!(k & (1u << i)))
			continue;
		struct moat_leak_finding f;
		memset(&f, 0, sizeof(f));
		f.severity = MOAT_LEAK_SEV_HIGH;
		f.confidence = 90;
		snprintf(f.preview, sizeof(f.preview), "%s", previews[i]);
		MOAT_WSTAT_ADD(x->w,
			       leaks[MOAT_LEAK_CATEGORY_COUNT + i][MOAT_LEAK_ALERT],
			       1);
		emit(x, track_names[i], &f, "messages", MOAT_LEAK_ALERT);
	}
}

/* ---- inspection --------------------------------------------------------------- */

/* A JSON path can hold private data itself (a map keyed by e-mail or MAC
 * address): it is shown redacted wherever the detector finds some. */
static void sanitize_path(struct inspect *x, struct moat_leak_scratch *s,
			  char *path)
{
	struct moat_leak_result r;
	size_t n = strlen(path);
	if (n && moat_leak_scan(x->w->sec->leak_db, s, (uint8_t *)path, n,
				&r) != 0)
		moat_leak_redact_inplace((uint8_t *)path, n, &r);
}

/* The findings fs[0..nf) of one part: decide each finding's action;
 * redact in buf what a redact policy asks for.  Returns the strongest
 * action (-1: none). */
static int apply(struct inspect *x, struct moat_leak_scratch *s,
		 const char *part, uint8_t *buf, size_t len,
		 const struct moat_leak_finding *fs, size_t nf)
{
	const struct moat_config *cfg = x->w->cfg;
	struct moat_leak_finding red[MOAT_LEAK_MAX_FINDINGS];
	size_t nred = 0;
	int action = -1;
	for (size_t i = 0; i < nf; i++) {
		const struct moat_leak_finding *f = &fs[i];
		int p = policy_for(cfg, x->m, f->category);
		int a = p >= 0 ? cfg->leak_policies[p].action : MOAT_LEAK_ALERT;
		MOAT_WSTAT_ADD(x->w, leaks[f->category][a], 1);
		moat__events_client_finding(x->w->b, x->cid);
		if (p >= 0)
			atomic_fetch_add_explicit(
				&x->w->sec->leak_policy_hits[p], 1,
				memory_order_relaxed);
		x->cats |= MOAT_LEAK_BIT(f->category);
		x->precise |= f->category == MOAT_LEAK_GEOLOCATION &&
			      (f->flags & MOAT_LEAK_F_PRECISE);
		if (a == MOAT_LEAK_REDACT)
			red[nred++] = *f;
		action = MOAT_MAX(action, a);
		/* One line and event per category and message. */
		if (!(x->seen & MOAT_LEAK_BIT(f->category))) {
			struct pending_report *pr = &x->rep[x->nrep++];
			x->seen |= MOAT_LEAK_BIT(f->category);
			pr->f = *f;
			pr->part = part;
			pr->action = a;
			pr->policy = p;
			sanitize_path(x, s, pr->f.path);
		}
	}
	struct moat_leak_result rr = {.findings = red, .n = nred,
				      .total = nred};
	if (nred)
		moat_leak_redact_inplace(buf, len, &rr);
	return action;
}

/* Beyond the budget or the findings cap: the rest is unknown. */
static void note_incomplete(struct inspect *x, const struct moat_leak_result *r)
{
	if (r->total > r->n || (r->flags & MOAT_LEAK_R_BUDGET))
		x->incomplete = true;
}

/* Scan one part (a property text, correlation data) and apply its
 * findings. */
static int scan_part(struct inspect *x, struct moat_leak_scratch *s,
		     const char *part, uint8_t *buf, size_t len)
{
	struct moat_leak_result r;
	struct moat_leak_finding fs[MOAT_LEAK_MAX_FINDINGS];
	if (moat_leak_scan(x->w->sec->leak_db, s, buf, len, &r) < 0) {
		x->incomplete = true;
		return -1;
	}
	note_incomplete(x, &r);
	memcpy(fs, r.findings, r.n * sizeof(fs[0])); /* scratch is reused */
	return apply(x, s, part, buf, len, fs, r.n);
}

/* The topic and the payload, in one scan (the scratch caches clean
 * topics).  The message is not shared yet: the payload is redacted in
 * place.  Topic findings are shown redacted (in x->tbuf) in every line
 * and event about this message; a topic cannot be rewritten (it decides
 * who gets the message): there, redact means block. */
static void scan_message(struct inspect *x, struct moat_leak_scratch *s)
{
	struct moat_msg *m = x->m;
	bool tfits = m->topic_len < sizeof(x->tbuf);
	struct moat_leak_result r;
	struct moat_leak_finding fs[MOAT_LEAK_MAX_FINDINGS];
	uint8_t *pl = (uint8_t *)(uintptr_t)m->payload;
	if (!tfits)
		x->incomplete = true; /* over what a topic may show */
	if (moat_leak_scan_msg(x->w->sec->leak_db, s,
			       (const uint8_t *)m->topic,
			       tfits ? m->topic_len : 0, pl, m->payload_len,
			       &r) < 0) {
		x->incomplete = true;
		return;
	}
	note_incomplete(x, &r);
	size_t nf = r.n, nt = 0;
	memcpy(fs, r.findings, nf * sizeof(fs[0])); /* scratch is reused */
	while (nt < nf && fs[nt].part == MOAT_LEAK_PART_TOPIC)
		nt++;
	if (nt) {
		memcpy(x->tbuf, m->topic, m->topic_len);
		int a = apply(x, s, "topic", (uint8_t *)x->tbuf, m->topic_len,
			      fs, nt);
		x->topic = x->tbuf;
		x->action = a == MOAT_LEAK_REDACT ? MOAT_LEAK_BLOCK : a;
	}
	/* the topic may leak where it was not looked at */
	if (!tfits || m->topic_len > moat_leak_db_budget(x->w->sec->leak_db) ||
	    (r.total > r.n && nt == nf)) {
		x->topic = "(topic withheld)";
		x->topic_len = strlen(x->topic);
	}
	int a = apply(x, s, "payload", pl, m->payload_len, fs + nt, nf - nt);
	x->action = MOAT_MAX(x->action, a);
}

/* The MQTT 5 properties whose values are scanned as text lines: user
 * properties ("name=value") and the response topic and content type
 * ("response_topic=...", "content_type=...").  Their name part (for
 * a user property, its name) and value. */
static bool text_prop(const struct moat_mqtt_prop_item *it,
		      struct moat_bytes *name, struct moat_bytes *val,
		      bool *fixed)
{
	*fixed = true;
	switch (it->id) {
	case PROP_USER_PROPERTY:
		*name = it->a;
		*val = it->b;
		*fixed = false;
		return true;
	case PROP_RESPONSE_TOPIC:
		*name = (struct moat_bytes){(const uint8_t *)"response_topic",
					    14};
		*val = it->a;
		return true;
	case PROP_CONTENT_TYPE:
		*name = (struct moat_bytes){(const uint8_t *)"content_type", 12};
		*val = it->a;
		return true;
	default:
		return false;
	}
}

/* MQTT 5 properties, scanned as one text "name=value\n..." (one budget
 * for all of them; its part keeps the name "user properties"), so that
 * key-based rules see password=12345; redactions are copied back into the
 * message's properties (never into the fixed names).  Correlation data
 * (binary or text) is a part of its own, "correlation data". */
static int scan_props(struct inspect *x, struct moat_leak_scratch *s)
{
	struct moat_worker *w = x->w;
	struct moat_msg *m = x->m;
	struct moat_bytes raw = {m->props, m->props_len};
	struct moat_mqtt_prop_item it;
	struct moat_bytes name, val;
	bool fixed;
	size_t pos = 0, n = 0;
	int action = -1;
	while (moat_mqtt_props_next(&raw, &pos, &it)) {
		if (it.id == PROP_CORRELATION_DATA && it.a.len) {
			int a = scan_part(x, s, "correlation data",
					  (uint8_t *)(uintptr_t)it.a.p,
					  it.a.len);
			action = MOAT_MAX(action, a);
		}
		if (text_prop(&it, &name, &val, &fixed))
			n += name.len + val.len + 2;
	}
	if (!n)
		return action;
	if (n > w->leak_bufcap) {
		uint8_t *nb = moat_realloc(w->leak_buf, n);
		if (!nb) {
			x->incomplete = true;
			return action;
		}
		w->leak_buf = nb;
		w->leak_bufcap = n;
	}
	size_t o = 0;
	for (pos = 0; moat_mqtt_props_next(&raw, &pos, &it);) {
		if (!text_prop(&it, &name, &val, &fixed))
			continue;
		memcpy(w->leak_buf + o, name.p, name.len);
		o += name.len;
		w->leak_buf[o++] = '=';
		memcpy(w->leak_buf + o, val.p, val.len);
		o += val.len;
		w->leak_buf[o++] = '\n';
	}
	int a = scan_part(x, s, "user properties", w->leak_buf, n);
	action = MOAT_MAX(action, a);
	if (a != MOAT_LEAK_REDACT && a != MOAT_LEAK_BLOCK)
		return action;
	for (pos = 0, o = 0; moat_mqtt_props_next(&raw, &pos, &it);) {
		if (!text_prop(&it, &name, &val, &fixed))
			continue;
		if (!fixed)
			memcpy((uint8_t *)(uintptr_t)name.p, w->leak_buf + o,
			       name.len);
		o += name.len + 1;
		memcpy((uint8_t *)(uintptr_t)val.p, w->leak_buf + o, val.len);
		o += val.len + 1;
	}
	return action;
}

int moat__leak_inspect(struct moat_worker *w, struct moat_msg *m,
		       const char *origin, const char *cid, const char *user)
{
	struct moat_leak_scratch *s = scratch(w);
	struct inspect xi, *x = &xi; /* about 8 KiB of stack */
	memset(x, 0, offsetof(struct inspect, rep));
	x->w = w;
	x->m = m;
	x->cid = cid ? cid : "";
	x->user = user;
	x->origin = origin;
	x->topic = m->topic;
	x->topic_len = m->topic_len;
	x->action = -1;
	if (!s) {
		x->incomplete = true; /* no scratch: nothing could be looked at */
	} else {
		scan_message(x, s);
		int a = m->props_len ? scan_props(x, s) : -1;
		x->action = MOAT_MAX(x->action, a);
	}
	/* What could not be scanned to its end is assumed to hold what the
	 * strictest policy for this topic acts on. */
	if (x->incomplete &&
	    strongest_for(w->cfg, m) >= MOAT_LEAK_REDACT) {
		char t[160];
		x->action = MOAT_LEAK_BLOCK;
		if (may_report(w)) {
			const char *topic = x->topic_len && x->topic != m->topic
						    ? x->topic
						    : "(topic withheld)";
			moat_log_escape((const uint8_t *)x->cid,
					strlen(x->cid), t, sizeof(t));
			const struct moat_log_field lf[] = {
				MOAT_LF_STR("origin", origin),
				MOAT_LF_STR("client_id", t),
				MOAT_LF_STR("topic", topic),
				MOAT_LF_STR("message", "blocked"),
			};
			moat_log_event(MOAT_LOG_NOTICE, "leak_unscanned", lf,
				       MOAT_ARRAY_LEN(lf),
				       "leak: a %s by client \"%s\" on %s could "
				       "not be scanned to its end (larger than "
				       "the budget, or too many findings): "
				       "blocked, as a leak_policy for its topic "
				       "redacts or blocks",
				       origin, t, topic);
		}
	}
	for (size_t i = 0; i < x->nrep; i++)
		report(x, &x->rep[i]);
	report_tracks(x);
	if (x->action == MOAT_LEAK_BLOCK)
		MOAT_STAT_ADD(w->b, leaks_blocked, 1);
	else if (x->action == MOAT_LEAK_REDACT)
		MOAT_STAT_ADD(w->b, leaks_redacted, 1);
	return x->action;
}

void moat__leak_worker_reset(struct moat_worker *w)
{
	/* A new security state may have a new detector (possibly at the
	 * address of the old one): the scratch is made again on first use. */
	moat_leak_scratch_free(w->leak_scratch);
	w->leak_scratch = NULL;
	w->leak_scratch_db = NULL;
}

/* ---- the retained store at start ---------------------------------------------- */

static struct moat_msg *clone_msg(const struct moat_msg *m)
{
	struct moat_msg_extra x = {
		.props = m->props,
		.props_len = m->props_len,
		.origin = m->origin,
		.has_src = m->has_src,
		.src_user = m->src_user,
		.src_cid = m->src_cid,
	};
	struct moat_msg *c = moat_msg_new5((const uint8_t *)m->topic,
					   m->topic_len, m->payload,
					   m->payload_len, m->qos, m->retain,
					   &x);
	if (c)
		c->expiry_ms = m->expiry_ms;
	return c;
}

void moat__leak_sweep_retained(struct moat_worker *w)
{
	struct moat_broker *b = w->b;
	struct moat_msg **v;
	size_t n, scanned = 0, changed = 0;
	if (!w->sec->leak_db)
		return;
	pthread_rwlock_rdlock(&b->tree.lock);
	size_t max = b->tree.nretained;
	pthread_rwlock_unlock(&b->tree.lock);
	/* '$' topics too: "#" would leave them out */
	if (!max || moat_tree_retained_all(&b->tree, max, &v, &n) != MOAT_OK)
		return;
	for (size_t i = 0; i < n; i++) {
		struct moat_msg *c = clone_msg(v[i]);
		if (!c)
			break;
		c->store_id = v[i]->store_id ? moat__store_msg_id(b) : 0;
		scanned++;
		int a = moat__leak_inspect(w, c, "retained", v[i]->src_cid,
					   v[i]->src_user);
		if (a == MOAT_LEAK_BLOCK || a == MOAT_LEAK_REDACT) {
			/* blocked: deleted; redacted: replaced */
			struct moat_msg *r =
				a == MOAT_LEAK_REDACT
					? moat_msg_ref(c)
					: moat_msg_new((const uint8_t *)c->topic,
						       c->topic_len, NULL, 0, 0,
						       true);
			uint64_t seq;
			if (r && moat_tree_retain(&b->tree, r, &seq) ==
					 MOAT_OK) {
				moat__store_retain(w, r, seq);
				changed++;
			}
			moat_msg_unref(&r);
		}
		moat_msg_unref(&c);
	}
	for (size_t i = 0; i < n; i++)
		moat_msg_unref(&v[i]);
	moat_free(v);
	moat_notice("leak: retained store swept: %zu messages scanned, %zu "
		    "redacted or deleted by leak_policy",
		    scanned, changed);
}

/* ---- restored queues ------------------------------------------------------------ */

int moat__leak_restored(struct moat_broker *b, struct moat_msg *m)
{
	struct moat_worker *w = &b->workers[0];
	if (!w->sec || !w->sec->leak_db)
		return -1;
	w->now_ms = moat_now_ms();
	w->leak_hold = true;
	int a = moat__leak_inspect(w, m, "queued", m->src_cid, m->src_user);
	w->leak_hold = false;
	return a;
}

void moat__leak_route_held(struct moat_worker *w)
{
	for (unsigned i = 0; i < w->nleak_held; i++) {
		moat_worker_route(w, w->leak_held[i]);
		moat_msg_unref(&w->leak_held[i]);
	}
	w->nleak_held = 0;
}

/* ---- $SYS ---------------------------------------------------------------------- */

void moat__leak_sys_publish(struct moat_worker *w,
			    void (*put)(struct moat_worker *, const char *,
					const char *))
{
	const struct moat_config *cfg = w->cfg;
	struct moat_broker *b = w->b;
	char topic[96], val[400];
	if (!w->sec->leak_db)
		return;
	for (int c = 0; c < MOAT_LEAK_CATEGORY_COUNT; c++) {
		snprintf(topic, sizeof(topic), "$SYS/moat/leaks/count/%s",
			 moat_leak_category_name((enum moat_leak_category)c));
		snprintf(val, sizeof(val), "%llu",
			 (unsigned long long)moat__leak_findings(b,
								 (unsigned)c));
		put(w, topic, val);
	}
	for (int k = 0; k < 2; k++) {
		snprintf(topic, sizeof(topic), "$SYS/moat/leaks/count/%s",
			 track_names[k]);
		snprintf(val, sizeof(val), "%llu",
			 (unsigned long long)moat__leak_findings(
				 b, MOAT_LEAK_CATEGORY_COUNT + (unsigned)k));
		put(w, topic, val);
	}
	snprintf(val, sizeof(val), "%llu",
		 (unsigned long long)MOAT_STAT_GET(b, leaks_blocked));
	put(w, "$SYS/moat/leaks/messages/blocked", val);
	snprintf(val, sizeof(val), "%llu",
		 (unsigned long long)MOAT_STAT_GET(b, leaks_redacted));
	put(w, "$SYS/moat/leaks/messages/redacted", val);
	for (size_t i = 0; i < cfg->nleak_policies; i++) {
		const struct moat_leak_policy_cfg *p = &cfg->leak_policies[i];
		snprintf(topic, sizeof(topic), "$SYS/moat/leaks/policy/%zu",
			 i + 1);
		snprintf(val, sizeof(val), "%s %s %s: %llu", p->filter,
			 p->category, action_names[p->action],
			 (unsigned long long)atomic_load_explicit(
				 &w->sec->leak_policy_hits[i],
				 memory_order_relaxed));
		put(w, topic, val);
	}
}
