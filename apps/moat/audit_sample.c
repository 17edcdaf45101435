/* moat audit --sample-payloads: subscribe as the user's own account for a
 * bounded time and pass each message to the leak detector (AUD-LK-01).
 *
 * Bounds: at most AUDIT_SAMPLE_MAX_S seconds and AUDIT_SAMPLE_MAX_MSGS
 * messages; nothing is stored: each message (at most AUDIT_MAX_PACKET
 * bytes, the transport's bound) is scanned inside the receive callback and
 * forgotten.  Findings carry no payload text: the detector reports the
 * category, the topic and a keyed hash (THREATS.md section 4).
 *
 * Until the detector (src/leak, library moat_leak) is linked in,
 * MOAT_AUDIT_HAVE_LEAK is 0, `moat audit` refuses --sample-payloads, and
 * audit_scan_sample() reports that it has no detector. */
#include <stdio.h>
#include <string.h>

#include "audit.h"

int audit_scan_sample(const struct audit_sample_msg *m,
		      const struct audit_ident *id, struct moat_findings *f)
{
#if MOAT_AUDIT_HAVE_LEAK
	/* To be wired by the lead: run moat_leak's per-payload scan over
	 * m->topic and m->payload and, for each High or Critical hit, add
	 *     moat_findings_add(f, "AUD-LK-01", "%s: <category> in a "
	 *                       "message on %s (hash %s)", id->label, topic,
	 *                       hmac);
	 * with the topic escaped and never the matched text. */
#error "wire the leak detector into audit_scan_sample()"
#else
	(void)m;
	(void)id;
	(void)f;
	return MOAT_ENOTFOUND;
#endif
}

struct sampler {
	const struct audit_ident *id;
	struct moat_findings *f;
	size_t msgs;
	size_t bytes;
	bool unavailable; /* the hook said: no detector */
};

static void on_msg(void *arg, struct moat_bytes topic,
		   struct moat_bytes payload, bool retained)
{
	struct sampler *s = arg;
	if (s->msgs >= AUDIT_SAMPLE_MAX_MSGS || s->unavailable)
		return;
	s->msgs++;
	s->bytes += payload.len;
	struct audit_sample_msg m = {.topic = topic,
				     .payload = payload,
				     .retained = retained};
	if (audit_scan_sample(&m, s->id, s->f) == MOAT_ENOTFOUND)
		s->unavailable = true;
}

void audit_sample_payloads(struct audit_ctx *x, const struct audit_ident *id,
			   unsigned seconds)
{
	struct audit_conn c;
	struct audit_connack ca;
	struct sampler s = {.id = id, .f = &x->t->findings};
	struct audit_harvest h = {.on_msg = on_msg, .arg = &s};
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
		goto out;
	}
	uint64_t until = moat_now_ms() + (uint64_t)seconds * 1000u;
	while (moat_now_ms() < until && s.msgs < AUDIT_SAMPLE_MAX_MSGS &&
	       !h.closed && !s.unavailable && !audit_out_of_time(x)) {
		uint64_t left = until - moat_now_ms();
		if (audit_mqtt_collect(x, &c, (unsigned)MOAT_MIN(left, 1000u),
				       &h) != MOAT_OK)
			break;
	}
	if (s.unavailable)
		audit_note(x->t, "payload sampling not run: this build has no "
				 "leak detector");
	else
		audit_note(x->t, "sampled %zu message%s (%zu bytes) as %s; "
				 "findings are redacted",
			   s.msgs, s.msgs == 1 ? "" : "s", s.bytes, id->label);
out:
	audit_mqtt_disconnect(x, &c);
}
