/* moat audit: what a CoAP server sends to an address it has not validated
 * (AUD-CO-01 first contact, AUD-CO-02 amplification, AUD-CO-03 Echo) and
 * how it numbers its messages (AUD-CO-04).
 *
 * A measurement is one Confirmable GET from a fresh socket (a new source
 * port: an address the server has not seen), sent once, never
 * acknowledged or continued: what comes back within --timeout, and then
 * for CO_COLLECT_MS after the first answer (blocks or retransmissions the
 * server sends unasked), is what a spoofed request would have made it
 * send to a victim.  The factor is bytes of every datagram received ÷
 * bytes of the request (THREATS.md §9). */
#include <stdio.h>
#include <string.h>

#include "audit_coap.h"

static bool loopback(const struct co_state *s)
{
	return s->x->loopback;
}

/* A GET for path with a 4-byte token (what a spoofer would send is as
 * small: the factor is measured on a request of ordinary size). */
static int build_get(const struct co_state *s, const char *path,
		     uint8_t type, uint8_t *buf, size_t cap, size_t *len,
		     uint16_t *mid, uint8_t tok[4])
{
	struct coap_uri u;
	char ubuf[400];
	struct coap_wr w;
	if (co_uri(s, path, &u, ubuf, sizeof(ubuf)) != MOAT_OK ||
	    coap_random(mid, sizeof(*mid)) != MOAT_OK ||
	    coap_random(tok, 4) != MOAT_OK)
		return MOAT_EINVAL;
	coap_wr_init(&w, buf, cap);
	coap_wr_header(&w, type, COAP_GET, *mid, tok, 4);
	coap_wr_uri_host(&w, &u);
	coap_wr_uri_path(&w, &u);
	coap_wr_uri_query(&w, &u);
	return coap_wr_finish(&w, len);
}

int co_measure(struct co_state *s, const char *path, struct co_amp *a,
	       char *err, size_t errsz)
{
	struct audit_udp u;
	uint8_t req[600], tok[4];
	uint16_t mid;
	memset(a, 0, sizeof(*a));
	snprintf(a->path, sizeof(a->path), "%s", path);
	if (build_get(s, path, COAP_CON, req, sizeof(req), &a->req, &mid,
		      tok) != MOAT_OK) {
		snprintf(err, errsz, "cannot build a GET for %s", path);
		return MOAT_EINVAL;
	}
	int rc = audit_udp_open(s->x, &u);
	if (rc == MOAT_OK)
		rc = audit_udp_send(&u, req, a->req);
	uint64_t until = audit_step_deadline(s->x);
	while (rc == MOAT_OK && a->dgrams < CO_COLLECT_DGRAMS) {
		size_t n = 0;
		struct coap_msg m;
		rc = audit_udp_recv(&u, s->rx, CO_RX_MAX, until, &n);
		if (rc != MOAT_OK)
			break;
		a->dgrams++;
		a->resp += n;
		if (a->dgrams == 1)
			a->first = n;
		if (coap_parse(s->rx, n, &m) != MOAT_OK) {
			a->garbage++;
			continue;
		}
		bool ours = (m.type == COAP_ACK && m.mid == mid) ||
			    (m.tkl == 4 && !memcmp(m.token, tok, 4));
		if (!ours || m.code == COAP_EMPTY || a->answered)
			continue;
		a->answered = true;
		a->code = m.code;
		struct coap_opt o;
		a->echo = m.code == COAP_UNAUTHORIZED &&
			  coap_opt_find(&m, COAP_OPT_ECHO, &o);
		until = moat_now_ms() + CO_COLLECT_MS;
	}
	if (rc == MOAT_EAGAIN)
		rc = MOAT_OK;
	if (rc != MOAT_OK)
		snprintf(err, errsz, "%s", u.err);
	audit_udp_close(&u);
	if (a->echo)
		s->echo_seen = true;
	return rc;
}

/* ---- AUD-CO-02, AUD-CO-03 ------------------------------------------------ */

static double factor(const struct co_amp *a)
{
	return a->req ? (double)a->resp / (double)a->req : 0.0;
}

static bool too_much(const struct co_amp *a)
{
	return a->answered &&
	       (a->resp > CO_AMP_LIMIT * a->req || a->first > CO_FIRST_MAX);
}

static void describe(const struct co_amp *a, char *out, size_t sz)
{
	char code[5];
	coap_code_str(a->code, code);
	snprintf(out, sz,
		 "GET %s: a %zu-byte request got %zu datagram%s, %zu bytes "
		 "(factor %.1f; first response %zu bytes, %s%s)",
		 a->path, a->req, a->dgrams, a->dgrams == 1 ? "" : "s",
		 a->resp, factor(a), a->first, code,
		 a->echo ? " with Echo" : "");
}

void co_check_amplification(struct co_state *s)
{
	char what[2][400] = {"", ""};
	bool over = false;
	double worst = 0;
	for (size_t i = 0; i < s->namp; i++) {
		describe(&s->amp[i], what[i], sizeof(what[i]));
		over = over || too_much(&s->amp[i]);
		if (s->amp[i].answered && factor(&s->amp[i]) > worst)
			worst = factor(&s->amp[i]);
	}
	const char *where = loopback(s) ? " (a loopback address: only "
					  "local programs can reach it)"
					: "";
	enum moat_severity sev = loopback(s) ? MOAT_SEV_LOW : MOAT_SEV_HIGH;
	if (!over) {
		for (size_t i = 0; i < s->namp; i++)
			audit_note(s->x->t, "amplification within %dx and %d "
					    "bytes: %s",
				   CO_AMP_LIMIT, CO_FIRST_MAX, what[i]);
		if (s->echo_seen)
			audit_note(s->x->t, "unvalidated addresses get 4.01 "
					    "with an Echo option (RFC 9175 "
					    "address validation)");
		return;
	}
	moat_findings_add_sev(&s->x->t->findings, "AUD-CO-02", sev,
			      "to an unvalidated address, up to %.1fx the "
			      "request: %s%s%s%s",
			      worst, what[0], what[1][0] ? "; " : "", what[1],
			      where);
	if (!s->echo_seen)
		moat_findings_add_sev(
			&s->x->t->findings, "AUD-CO-03", sev,
			"no 4.01 + Echo (RFC 9175) before content larger than "
			"3x the request: the server answered unvalidated "
			"addresses with up to %.1fx the request's bytes%s",
			worst, where);
	else
		audit_note(s->x->t, "the server uses Echo for some requests "
				    "but still sent more than 3x to an "
				    "unvalidated address");
}

/* ---- AUD-CO-04 ------------------------------------------------------------ */

/* Sequential or repeated: most steps between successive ids are 0..16. */
static bool predictable(const uint16_t *v, size_t n)
{
	size_t small = 0;
	for (size_t i = 1; i < n; i++)
		small += (uint16_t)(v[i] - v[i - 1]) <= 16;
	return n > 1 && small * 10 >= (n - 1) * 9;
}

void co_check_ids(struct co_state *s, const char *path)
{
	struct audit_udp u;
	uint16_t mids[CO_MID_SAMPLES];
	size_t n = 0, missed = 0;
	uint8_t req[600];
	if (audit_udp_open(s->x, &u) != MOAT_OK) {
		audit_note(s->x->t, "message ids (AUD-CO-04) not checked: %s",
			   u.err);
		return;
	}
	audit_progress(s->x, "CoAP message ids of %d NON responses",
		       CO_MID_SAMPLES);
	/* Three unanswered in a row: the server does not answer NON. */
	for (int i = 0; i < CO_MID_SAMPLES && missed < 3 &&
			!audit_out_of_time(s->x); i++) {
		size_t len;
		uint16_t mid;
		uint8_t tok[4];
		if (build_get(s, path, COAP_NON, req, sizeof(req), &len, &mid,
			      tok) != MOAT_OK ||
		    audit_udp_send(&u, req, len) != MOAT_OK)
			break;
		/* Wait for the answer to this one (NON: no retransmission). */
		uint64_t until = MOAT_MIN(audit_step_deadline(s->x),
					  moat_now_ms() + 1000u);
		missed++;
		for (;;) {
			size_t got;
			struct coap_msg m;
			if (audit_udp_recv(&u, s->rx, CO_RX_MAX, until, &got) !=
			    MOAT_OK)
				break;
			if (coap_parse(s->rx, got, &m) != MOAT_OK ||
			    m.tkl != 4 || memcmp(m.token, tok, 4) ||
			    m.type == COAP_ACK || m.type == COAP_RST)
				continue;
			mids[n++] = m.mid;
			missed = 0;
			break;
		}
		audit_sleep(s->x, CO_MID_PACE_MS);
	}
	audit_udp_close(&u);
	if (n < 8) {
		audit_note(s->x->t, "message ids (AUD-CO-04) not checked: %zu "
				    "of %d NON requests got a NON or CON "
				    "answer",
			   n, CO_MID_SAMPLES);
		return;
	}
	char list[120] = "";
	for (size_t i = 0; i < n && i < 6; i++) {
		size_t o = strlen(list);
		snprintf(list + o, sizeof(list) - o, "%s%04x", i ? " " : "",
			 mids[i]);
	}
	if (predictable(mids, n))
		moat_findings_add(&s->x->t->findings, "AUD-CO-04",
				  "the message ids of %zu successive responses "
				  "are sequential or repeated: %s ...",
				  n, list);
	else
		audit_note(s->x->t, "message ids of %zu NON responses look "
				    "random (%s ...); tokens are chosen by "
				    "clients",
			   n, list);
}
