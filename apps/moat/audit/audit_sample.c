/* moat audit --sample-payloads: subscribe as the user's own account for a
 * bounded time and pass each message to the leak detector (AUD-LK-01).
 *
 * Bounds: at most AUDIT_SAMPLE_MAX_S seconds and AUDIT_SAMPLE_MAX_MSGS
 * messages; nothing is stored: each message (at most AUDIT_MAX_PACKET
 * bytes, the transport's bound) is scanned inside the receive callback and
 * forgotten.  Findings carry no payload text: the category, the topic
 * (redacted where it leaks itself), the JSON path, the detector's redacted
 * preview and a keyed hash (THREATS.md section 4). */
#include <stdio.h>
#include <string.h>

#include "audit.h"
#include "leak/leak.h"

#define SAMPLE_MAX_FINDINGS 20 /* AUD-LK-01 findings per identity */

struct audit_sampler {
	const struct audit_ident *id;
	struct moat_findings *f;
	struct moat_leak_db *db;
	struct moat_leak_scratch *scratch;
	size_t msgs;
	size_t bytes;
	size_t reported;          /* AUD-LK-01 findings added */
	size_t lesser[MOAT_LEAK_CATEGORY_COUNT]; /* below high, by category */
	size_t dropped;           /* high ones past SAMPLE_MAX_FINDINGS */
	uint64_t seen[64];        /* (category, topic) already reported */
	size_t nseen;
};

static uint64_t key_of(enum moat_leak_category c, struct moat_bytes t)
{
	uint64_t h = 1469598103934665603ull ^ (uint64_t)c;
	for (size_t i = 0; i < t.len; i++) {
		h ^= t.p[i];
		h *= 1099511628211ull;
	}
	return h;
}

/* One finding: AUD-LK-01 for high and critical ones, once per category
 * and topic; the rest is counted for a note. */
static void note_finding(struct audit_sampler *s, const struct moat_leak_finding *fd,
			 struct moat_bytes topic, const char *shown_topic,
			 const char *part)
{
	if (fd->severity < MOAT_LEAK_SEV_HIGH) {
		s->lesser[fd->category]++;
		return;
	}
	uint64_t k = key_of(fd->category, topic);
	for (size_t i = 0; i < s->nseen; i++)
		if (s->seen[i] == k)
			return;
	if (s->reported >= SAMPLE_MAX_FINDINGS) {
		s->dropped++;
		return;
	}
	if (s->nseen < MOAT_ARRAY_LEN(s->seen))
		s->seen[s->nseen++] = k;
	s->reported++;
	moat_findings_add_sev(
		s->f, "AUD-LK-01",
		fd->severity == MOAT_LEAK_SEV_CRITICAL ? MOAT_SEV_CRITICAL
						       : MOAT_SEV_HIGH,
		"as %s: %s (%s) in the %s of a message on %s%s%s: %s "
		"(hmac %s)",
		s->id->label, moat_leak_category_name(fd->category),
		moat_leak_severity_name(fd->severity), part, shown_topic,
		fd->path[0] ? " at " : "", fd->path, fd->preview, fd->hmac);
}

/* The findings of one scan; a JSON path can hold private data itself (a
 * map keyed by e-mail or MAC address): shown redacted. */
static void note_all(struct audit_sampler *s, const struct moat_leak_result *r,
		     struct moat_bytes topic, const char *shown,
		     const char *part)
{
	struct moat_leak_finding fs[MOAT_LEAK_MAX_FINDINGS];
	size_t n = r->n;
	memcpy(fs, r->findings, n * sizeof(fs[0])); /* the scratch is reused */
	for (size_t i = 0; i < n; i++) {
		struct moat_leak_result pr;
		size_t pl = strlen(fs[i].path);
		if (pl && moat_leak_scan(s->db, s->scratch,
					 (const uint8_t *)fs[i].path, pl,
					 &pr) != 0)
			moat_leak_redact_inplace((uint8_t *)fs[i].path, pl, &pr);
		note_finding(s, &fs[i], topic, shown, part);
	}
}

static void scan_sample(struct audit_sampler *s, const struct audit_sample_msg *m)
{
	struct moat_leak_result r;
	char shown[200];
	/* The topic as shown: escaped, and redacted where it leaks. */
	uint8_t tb[sizeof(shown)];
	size_t tl = MOAT_MIN(m->topic.len, sizeof(tb));
	memcpy(tb, m->topic.p, tl);
	if (moat_leak_scan(s->db, s->scratch, m->topic.p, m->topic.len, &r) >
	    0) {
		if (tl == m->topic.len)
			moat_leak_redact_inplace(tb, tl, &r);
		else
			tl = 0; /* too long to show redacted: withheld */
	}
	moat_log_escape(tb, tl, shown, sizeof(shown));
	if (!tl)
		snprintf(shown, sizeof(shown), "(a long topic, withheld)");
	note_all(s, &r, m->topic, shown, "topic");
	if (m->payload.len &&
	    moat_leak_scan(s->db, s->scratch, m->payload.p, m->payload.len,
			   &r) > 0)
		note_all(s, &r, m->topic, shown,
			 m->retained ? "retained payload" : "payload");
}

int audit_scan_sample(const struct audit_sample_msg *m,
		      const struct audit_ident *id, struct moat_findings *f)
{
	/* One-off use (tests, other callers): its own detector. */
	struct audit_sampler s = {.id = id, .f = f};
	char err[256];
	if (moat_leak_db_new(NULL, &s.db, err, sizeof(err)) != MOAT_OK)
		return MOAT_ENOTFOUND;
	if (moat_leak_scratch_new(s.db, &s.scratch) != MOAT_OK) {
		moat_leak_db_free(s.db);
		return MOAT_ENOTFOUND;
	}
	scan_sample(&s, m);
	moat_leak_scratch_free(s.scratch);
	moat_leak_db_free(s.db);
	return MOAT_OK;
}

int audit_sampler_new(struct audit_sampler **out,
		      const struct audit_ident *id, struct moat_findings *f,
		      char *err, size_t errsz)
{
	struct audit_sampler *s = moat_calloc(1, sizeof(*s));
	*out = NULL;
	snprintf(err, errsz, "out of memory for the leak detector");
	if (!s)
		return MOAT_ENOMEM;
	s->id = id;
	s->f = f;
	if (moat_leak_db_new(NULL, &s->db, err, errsz) != MOAT_OK ||
	    moat_leak_scratch_new(s->db, &s->scratch) != MOAT_OK) {
		moat_leak_db_free(s->db);
		moat_free(s);
		return MOAT_ENOMEM;
	}
	*out = s;
	return MOAT_OK;
}

static void sampler_free(struct audit_sampler *s)
{
	moat_leak_scratch_free(s->scratch);
	moat_leak_db_free(s->db);
	moat_free(s);
}

bool audit_sampler_feed(struct audit_sampler *s,
			const struct audit_sample_msg *m)
{
	if (s->msgs >= AUDIT_SAMPLE_MAX_MSGS)
		return false;
	s->msgs++;
	s->bytes += m->payload.len;
	scan_sample(s, m);
	return s->msgs < AUDIT_SAMPLE_MAX_MSGS;
}

void audit_sampler_finish(struct audit_ctx *x, struct audit_sampler *s,
			  const char *what)
{
	if (!s)
		return;
	audit_note(x->t, "sampled %zu %s%s (%zu bytes) as %s; findings "
			 "are redacted",
		   s->msgs, what, s->msgs == 1 ? "" : "s", s->bytes,
		   s->id->label);
	for (int k = 0; k < MOAT_LEAK_CATEGORY_COUNT; k++)
		if (s->lesser[k])
			audit_note(x->t, "sampled payloads: %zu finding%s of %s "
					 "below high severity (not reported as "
					 "AUD-LK-01)",
				   s->lesser[k], s->lesser[k] == 1 ? "" : "s",
				   moat_leak_category_name(
					   (enum moat_leak_category)k));
	if (s->dropped)
		audit_note(x->t, "sampled payloads: %zu more high findings not "
				 "listed (at most %d)",
			   s->dropped, SAMPLE_MAX_FINDINGS);
	sampler_free(s);
}

static void on_msg(void *arg, struct moat_bytes topic,
		   struct moat_bytes payload, bool retained)
{
	struct audit_sample_msg m = {.topic = topic,
				     .payload = payload,
				     .retained = retained};
	(void)audit_sampler_feed(arg, &m);
}

void audit_sample_payloads(struct audit_ctx *x, const struct audit_ident *id,
			   unsigned seconds)
{
	struct audit_conn c;
	struct audit_connack ca;
	struct audit_sampler *s;
	char err[256];
	if (audit_sampler_new(&s, id, &x->t->findings, err, sizeof(err)) !=
	    MOAT_OK) {
		audit_note(x->t, "payload sampling not run: %s", err);
		return;
	}
	struct audit_harvest h = {.on_msg = on_msg, .arg = s};
	char cid[64];
	const char *f[1] = {"#"};
	uint8_t code = 0x80;
	seconds = MOAT_MIN(seconds, (unsigned)AUDIT_SAMPLE_MAX_S);
	audit_progress(x, "sampling payloads as %s for %u s", id->label,
		       seconds);
	audit_conn_init(&c);
	audit_client_id(x, id, cid, sizeof(cid));
	struct audit_connect_req r = {.id = id, .client_id = cid,
				      .keepalive = 60, .clean = true};
	if (audit_mqtt_connect_any(x, &c, &r, &ca) != MOAT_OK ||
	    !ca.accepted ||
	    audit_mqtt_subscribe(x, &c, f, 1, &code, &h) != MOAT_OK ||
	    !audit_granted(code)) {
		audit_note(x->t, "payload sampling not run: %s could not "
				 "subscribe to #", id->label);
		audit_mqtt_disconnect(x, &c);
		sampler_free(s);
		return;
	}
	uint64_t until = moat_now_ms() + (uint64_t)seconds * 1000u;
	while (moat_now_ms() < until && s->msgs < AUDIT_SAMPLE_MAX_MSGS &&
	       !h.closed && !audit_out_of_time(x)) {
		uint64_t left = until - moat_now_ms();
		if (audit_mqtt_collect(x, &c, (unsigned)MOAT_MIN(left, 1000u),
				       &h) != MOAT_OK)
			break;
	}
	audit_mqtt_disconnect(x, &c);
	audit_sampler_finish(x, s, "message");
}
