/* moat audit: the checks of a coap:// target, and the resource checks of a
 * coaps:// target that completes an anonymous DTLS handshake.
 *
 *   1. GET /.well-known/core from a fresh address (audit_coap_amp.c): is
 *      it CoAP at all, and what does an unvalidated address get
 *      (AUD-CO-01, first half of AUD-CO-02);
 *   2. the resource list an anonymous client reads there (AUD-CO-08);
 *   3. an anonymous GET of each listed resource (at most CO_READ_MAX,
 *      bodies up to CO_BODY_MAX; AUD-CO-09), scanned by the leak detector
 *      with --sample-payloads (AUD-LK-01);
 *   4. the largest resource from a fresh address (AUD-CO-02, AUD-CO-03);
 *   5. message ids of NON responses (AUD-CO-04);
 *   6. Observe registrations without credentials (AUD-CO-05), each ended
 *      by a deregistration; with --sample-payloads the notifications of
 *      the window are scanned too;
 *   7. with --intrusive, PUT to a new resource the audit names itself,
 *      then DELETE it (AUD-CO-09).
 *
 * Only paths the server lists are requested (links to other hosts are
 * never followed); no multicast. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "audit_coap.h"
#include "net/dtls.h"

int co_uri(const struct co_state *s, const char *path, struct coap_uri *u,
	   char *buf, size_t bufsz)
{
	const struct audit_target *t = s->x->t;
	bool v6 = strchr(t->host, ':') != NULL;
	const char *why;
	int n = snprintf(buf, bufsz, "coap%s://%s%s%s:%s%s",
			 s->dtls ? "s" : "", v6 ? "[" : "", t->host,
			 v6 ? "]" : "", t->port, path);
	if (n < 0 || (size_t)n >= bufsz)
		return MOAT_EINVAL;
	return coap_uri_parse(buf, u, &why);
}

static bool loopback(const struct co_state *s)
{
	return s->x->loopback;
}

/* A probe socket: UDP, and the DTLS handshake on coaps targets. */
static int open_sock(struct co_state *s, struct audit_udp *u)
{
	int rc = audit_udp_open(s->x, u);
	if (rc != MOAT_OK || !s->dtls)
		return rc;
	struct moat_dtls_client_cfg cfg = {0};
	rc = moat_dtls_connect(s->dtls, u->d.fd, &cfg,
			       audit_step_deadline(s->x), &u->d.ssl, u->err,
			       sizeof(u->err));
	if (rc != MOAT_OK)
		audit_udp_close(u);
	return rc;
}

/* ---- one exchange through the shared CoAP client ----------------------- */

struct co_call {
	struct co_state *s;
	const char *path;
	uint8_t code;
	bool answered;
	bool observed;	     /* the first response carried Observe */
	size_t notifications; /* responses after the first */
	size_t len;	     /* body bytes of the last response */
	struct moat_buf *keep; /* the body, when wanted */
	bool sample;	     /* pass bodies to the sampler */
};

static int on_response(void *arg, const struct coap_msg *m,
		       const uint8_t *body, size_t len)
{
	struct co_call *c = arg;
	struct coap_opt o;
	if (!c->answered) {
		c->answered = true;
		c->code = m->code;
		c->observed = COAP_CODE_CLASS(m->code) == 2 &&
			      coap_opt_find(m, COAP_OPT_OBSERVE, &o);
	} else {
		c->notifications++;
	}
	c->len = len;
	if (c->keep && COAP_CODE_CLASS(m->code) == 2) {
		moat_buf_consume(c->keep, moat_buf_used(c->keep));
		(void)moat_buf_append(c->keep, body, len);
	}
	if (c->sample && c->s->sampler && len &&
	    COAP_CODE_CLASS(m->code) == 2) {
		struct audit_sample_msg sm = {
			.topic = {(const uint8_t *)c->path, strlen(c->path)},
			.payload = {body, len},
			.retained = false};
		if (!audit_sampler_feed(c->s->sampler, &sm))
			return MOAT_ELIMIT;
	}
	if (c->notifications >= CO_NOTIFY_MAX)
		return MOAT_DECLINED; /* stop: deregistration follows */
	return MOAT_OK;
}

/* One request on u: MOAT_OK with c filled, or an error with err set. */
static int call(struct co_state *s, struct audit_udp *u, uint8_t method,
		bool observe, uint64_t until, const uint8_t *payload,
		size_t plen, struct co_call *c, char *err, size_t errsz)
{
	struct coap_uri uri;
	char ubuf[400];
	struct coap_io io;
	if (co_uri(s, c->path, &uri, ubuf, sizeof(ubuf)) != MOAT_OK) {
		snprintf(err, errsz, "not a usable path");
		return MOAT_EINVAL;
	}
	struct coap_client_cfg cfg = {
		.tx = COAP_TX_PARAMS_DEFAULT,
		.block_szx = COAP_BLOCK_SZX_MAX,
		.max_body = CO_BODY_MAX,
		.deadline_ms = MOAT_MIN(until, s->x->run->deadline)};
	cfg.tx.ack_timeout_ms = 1000;
	cfg.tx.processing_delay_ms = 1000;
	struct coap_request rq = {.method = method,
				  .uri = &uri,
				  .payload = payload,
				  .payload_len = plen,
				  .content_format = plen ? 0 : -1,
				  .observe = observe};
	audit_udp_io(u, &io);
	c->s = s;
	u->err[0] = 0;
	int rc = coap_client_run(&io, &cfg, &rq, on_response, c, err, errsz);
	if (rc == MOAT_DECLINED && c->answered)
		rc = MOAT_OK;
	if (rc != MOAT_OK && u->err[0] && rc != MOAT_EAGAIN)
		snprintf(err, errsz, "%s", u->err);
	return rc;
}

/* ---- /.well-known/core (RFC 6690 link format) --------------------------- */

static long attr_sz(const char *a, size_t n)
{
	for (size_t i = 0; i + 4 <= n; i++)
		if (a[i] == ';' && !strncmp(a + i + 1, "sz=", 3)) {
			char num[16];
			size_t k = 0;
			for (size_t j = i + 4; j < n && k < 15 &&
					       a[j] >= '0' && a[j] <= '9'; j++)
				num[k++] = a[j];
			num[k] = 0;
			return k ? strtol(num, NULL, 10) : -1;
		}
	return -1;
}

static bool attr_obs(const char *a, size_t n)
{
	for (size_t i = 0; i + 4 <= n; i++)
		if (a[i] == ';' && !strncmp(a + i + 1, "obs", 3) &&
		    (i + 4 == n || a[i + 4] == ';'))
			return true;
	return false;
}

static void add_res(struct co_state *s, const char *p, size_t n,
		    const char *a, size_t an)
{
	struct coap_uri u;
	char ubuf[400], path[256];
	if (n == 0 || n >= sizeof(path) || p[0] != '/' ||
	    (n > 1 && p[1] == '/')) {
		s->foreign++; /* another host, or not a path: not followed */
		return;
	}
	memcpy(path, p, n);
	path[n] = 0;
	if (co_uri(s, path, &u, ubuf, sizeof(ubuf)) != MOAT_OK) {
		s->foreign++;
		return;
	}
	if (!strcmp(path, "/ps"))
		s->has_ps = true;
	for (size_t i = 0; i < s->nres; i++)
		if (!strcmp(s->res[i].path, path))
			return;
	if (s->nres == CO_RES_MAX) {
		s->more_res++;
		return;
	}
	struct co_res *r = &s->res[s->nres++];
	memcpy(r->path, path, n + 1);
	r->obs = attr_obs(a, an);
	r->sz = attr_sz(a, an);
}

static void parse_links(struct co_state *s, const char *p, size_t n)
{
	size_t i = 0;
	while (i < n) {
		while (i < n && p[i] != '<')
			i++;
		size_t start = ++i;
		while (i < n && p[i] != '>')
			i++;
		if (i >= n)
			break;
		size_t plen = i++ - start;
		size_t astart = i;
		bool quoted = false;
		while (i < n && (quoted || p[i] != ',')) {
			quoted ^= p[i] == '"';
			i++;
		}
		add_res(s, p + start, plen, p + astart, i - astart);
	}
}

static void list_paths(const struct co_state *s, char *out, size_t sz)
{
	out[0] = 0;
	for (size_t i = 0; i < s->nres && i < 8; i++) {
		size_t o = strlen(out);
		snprintf(out + o, sz - o, "%s%s", i ? ", " : "", s->res[i].path);
	}
	if (s->nres > 8) {
		size_t o = strlen(out);
		snprintf(out + o, sz - o, ", ...");
	}
}

/* MOAT_OK when the list was read (possibly empty). */
static int discover(struct co_state *s)
{
	struct audit_udp u;
	struct moat_buf body;
	char err[AUDIT_ERR_LEN], paths[600];
	moat_buf_init(&body, CO_LINKS_MAX);
	struct co_call c = {.path = "/.well-known/core", .keep = &body};
	int rc = open_sock(s, &u);
	if (rc == MOAT_OK) {
		rc = call(s, &u, COAP_GET, false, audit_step_deadline(s->x),
			  NULL, 0, &c, err, sizeof(err));
		audit_udp_close(&u);
	} else {
		snprintf(err, sizeof(err), "%s", u.err);
	}
	if (rc != MOAT_OK || COAP_CODE_CLASS(c.code) != 2) {
		char code[5];
		coap_code_str(c.code, code);
		audit_note(s->x->t, "resource discovery: GET /.well-known/core "
				    "%s%s", rc != MOAT_OK ? "failed: " : "answered ",
			   rc != MOAT_OK ? err : code);
		moat_buf_cleanup(&body);
		return MOAT_ENOTFOUND;
	}
	parse_links(s, (const char *)body.data, moat_buf_used(&body));
	moat_buf_cleanup(&body);
	list_paths(s, paths, sizeof(paths));
	if (s->foreign)
		audit_note(s->x->t, "/.well-known/core: %zu link%s to other "
				    "hosts or unusable paths, not followed",
			   s->foreign, s->foreign == 1 ? "" : "s");
	if (!s->nres) {
		audit_note(s->x->t, "/.well-known/core lists no resource to an "
				    "anonymous client");
		return MOAT_OK;
	}
	moat_findings_add_sev(&s->x->t->findings, "AUD-CO-08",
			      loopback(s) ? MOAT_SEV_INFO : MOAT_SEV_LOW,
			      "/.well-known/core lists %zu resource%s to an "
			      "anonymous client: %s%s",
			      s->nres + s->more_res,
			      s->nres + s->more_res == 1 ? "" : "s", paths,
			      loopback(s) ? " (a loopback address)" : "");
	return MOAT_OK;
}

/* ---- anonymous read --------------------------------------------------- */

/* Add item to a ", "-separated list in out. */
static void append(char *out, size_t sz, const char *item)
{
	size_t o = strlen(out);
	if (o + 1 < sz)
		snprintf(out + o, sz - o, "%s%s", o ? ", " : "", item);
}

static void read_all(struct co_state *s)
{
	struct audit_udp u;
	char err[AUDIT_ERR_LEN], ok[500] = "", failed[500] = "";
	size_t nok = 0, nfail = 0, tried = 0;
	bool have_sock = false;
	for (size_t i = 0; i < s->nres && tried < CO_READ_MAX &&
			   !audit_out_of_time(s->x); i++) {
		struct co_res *r = &s->res[i];
		if (!strcmp(r->path, "/.well-known/core"))
			continue;
		if (!have_sock && open_sock(s, &u) != MOAT_OK) {
			audit_note(s->x->t, "anonymous reads not run: %s", u.err);
			return;
		}
		have_sock = true;
		tried++;
		struct co_call c = {.path = r->path, .sample = true};
		int rc = call(s, &u, COAP_GET, false, audit_step_deadline(s->x),
			      NULL, 0, &c, err, sizeof(err));
		r->code = c.code;
		if (rc == MOAT_OK && COAP_CODE_CLASS(c.code) == 2) {
			char what[300];
			r->got = c.len;
			nok++;
			snprintf(what, sizeof(what), "%s (%zu bytes)", r->path,
				 c.len);
			append(ok, sizeof(ok), what);
		} else if (rc != MOAT_OK) {
			nfail++;
			char what[300];
			snprintf(what, sizeof(what), "%s: %.40s", r->path, err);
			append(failed, sizeof(failed), what);
			/* a broken exchange may leave datagrams behind */
			audit_udp_close(&u);
			have_sock = false;
		}
	}
	if (have_sock)
		audit_udp_close(&u);
	if (nfail)
		audit_note(s->x->t, "anonymous GET failed for %zu resource%s: %s",
			   nfail, nfail == 1 ? "" : "s", failed);
	if (nok)
		moat_findings_add_sev(&s->x->t->findings, "AUD-CO-09",
				      loopback(s) ? MOAT_SEV_LOW
						  : MOAT_SEV_MEDIUM,
				      "anonymous GET answered with content for "
				      "%zu of %zu listed resources: %s%s",
				      nok, tried, ok,
				      loopback(s) ? " (a loopback address)"
						  : "");
	else if (tried)
		audit_note(s->x->t, "no listed resource answered an anonymous "
				    "GET with content (%zu tried)", tried);
}

/* The largest resource: by its sz attribute or the body read. */
static const struct co_res *largest(const struct co_state *s)
{
	const struct co_res *best = NULL;
	size_t bsz = 0;
	for (size_t i = 0; i < s->nres; i++) {
		const struct co_res *r = &s->res[i];
		size_t sz = MOAT_MAX(r->got, r->sz > 0 ? (size_t)r->sz : 0);
		if (strcmp(r->path, "/.well-known/core") && sz > bsz) {
			best = r;
			bsz = sz;
		}
	}
	return best;
}

/* ---- Observe (AUD-CO-05) ------------------------------------------------- */

/* Resources that say obs; without any, those read anonymously. */
static bool observable(const struct co_res *r, bool any_obs)
{
	return any_obs ? r->obs : COAP_CODE_CLASS(r->code) == 2;
}

/* Each observation lasts --wait; with --sample-payloads, the observations
 * share the sampling window (--sample-payloads SECONDS in all). */
static void observe_all(struct co_state *s)
{
	const struct audit_opts *o = s->x->run->o;
	char acc[500] = "", err[AUDIT_ERR_LEN];
	size_t tried = 0, accepted = 0, todo = 0;
	bool any_obs = false;
	for (size_t i = 0; i < s->nres; i++)
		any_obs = any_obs || s->res[i].obs;
	for (size_t i = 0; i < s->nres; i++)
		todo += observable(&s->res[i], any_obs);
	todo = MOAT_MIN(todo, (size_t)CO_OBSERVE_MAX);
	uint64_t sample_end = moat_now_ms() + (uint64_t)o->sample_s * 1000u;
	for (size_t i = 0; i < s->nres && tried < CO_OBSERVE_MAX &&
			   !audit_out_of_time(s->x); i++) {
		struct co_res *r = &s->res[i];
		if (!observable(r, any_obs))
			continue;
		unsigned window = o->wait_ms;
		if (o->sample_s) {
			uint64_t left = sample_end > moat_now_ms()
						? sample_end - moat_now_ms()
						: 0;
			window = (unsigned)MOAT_MAX(left / (todo - tried),
						    1000u);
		}
		struct audit_udp u;
		if (open_sock(s, &u) != MOAT_OK) {
			audit_note(s->x->t, "Observe not checked: %s", u.err);
			return;
		}
		tried++;
		audit_progress(s->x, "observing %s for %u ms", r->path, window);
		struct co_call c = {.path = r->path, .sample = true};
		int rc = call(s, &u, COAP_GET, true, moat_now_ms() + window,
			      NULL, 0, &c, err, sizeof(err));
		audit_udp_close(&u);
		if (c.observed) {
			accepted++;
			char what[300];
			snprintf(what, sizeof(what), "%s (%zu notification%s "
				 "in %u ms)", r->path, c.notifications,
				 c.notifications == 1 ? "" : "s", window);
			append(acc, sizeof(acc), what);
		} else if (rc != MOAT_OK) {
			audit_note(s->x->t, "Observe %s: %s", r->path, err);
		}
	}
	if (accepted)
		moat_findings_add_sev(&s->x->t->findings, "AUD-CO-05",
				      loopback(s) ? MOAT_SEV_MEDIUM
						  : MOAT_SEV_HIGH,
				      "Observe registrations accepted from an "
				      "anonymous client: %s%s",
				      acc, loopback(s) ? " (a loopback address)"
						       : "");
	else
		audit_note(s->x->t, "Observe: %s", tried
			   ? "no registration accepted without credentials"
			   : "no resource to observe (none listed with obs "
			     "or readable)");
}

/* ---- --intrusive: anonymous write (AUD-CO-09) ---------------------------- */

/* PUT to path, which must not exist (GET: 4.04), then DELETE it. */
static void try_write(struct co_state *s, const char *path)
{
	static const uint8_t body[] = "moat audit write test";
	struct audit_udp u;
	char err[AUDIT_ERR_LEN], code[5];
	if (open_sock(s, &u) != MOAT_OK) {
		audit_note(s->x->t, "write test not run: %s", u.err);
		return;
	}
	struct co_call get = {.path = path}, put = {.path = path},
		       del = {.path = path};
	int rc = call(s, &u, COAP_GET, false, audit_step_deadline(s->x), NULL,
		      0, &get, err, sizeof(err));
	if (rc != MOAT_OK || get.code != COAP_NOT_FOUND) {
		coap_code_str(get.code, code);
		if (rc != MOAT_OK)
			audit_note(s->x->t, "write test on %s not run: GET "
					    "failed: %s", path, err);
		else
			audit_note(s->x->t, "write test on %s not run: GET "
					    "answered %s, not 4.04, so it may "
					    "exist (the audit writes only where "
					    "nothing is)", path, code);
		audit_udp_close(&u);
		return;
	}
	rc = call(s, &u, COAP_PUT, false, audit_step_deadline(s->x), body,
		  sizeof(body) - 1, &put, err, sizeof(err));
	coap_code_str(put.code, code);
	if (rc != MOAT_OK || COAP_CODE_CLASS(put.code) != 2) {
		audit_note(s->x->t, "anonymous PUT %s refused (%s)", path,
			   rc != MOAT_OK ? err : code);
		audit_udp_close(&u);
		return;
	}
	rc = call(s, &u, COAP_DELETE, false, audit_step_deadline(s->x), NULL,
		  0, &del, err, sizeof(err));
	char dcode[5];
	coap_code_str(del.code, dcode);
	moat_findings_add_sev(&s->x->t->findings, "AUD-CO-09",
			      loopback(s) ? MOAT_SEV_MEDIUM : MOAT_SEV_HIGH,
			      "an anonymous client created %s with PUT (%s); "
			      "%s%s)",
			      path, code,
			      rc == MOAT_OK && COAP_CODE_CLASS(del.code) == 2
				      ? "the audit deleted it again ("
				      : "the audit could NOT delete it (",
			      rc == MOAT_OK ? dcode : err);
	audit_udp_close(&u);
}

static void write_checks(struct co_state *s)
{
	char path[300];
	uint32_t r = 0;
	(void)coap_random(&r, sizeof(r));
	snprintf(path, sizeof(path), "/moat-audit-%u-%08x", s->x->run->pid,
		 r);
	try_write(s, path);
	if (s->has_ps && !audit_out_of_time(s->x)) {
		snprintf(path, sizeof(path), "/ps/%s/audit-%u-%08x",
			 s->x->run->o->test_topic, s->x->run->pid, r);
		try_write(s, path);
	}
}

/* ---- the run ------------------------------------------------------------- */

static void resource_checks(struct co_state *s)
{
	const struct audit_opts *o = s->x->run->o;
	char err[256];
	if (o->sample_s) {
		struct audit_ident *id = moat_calloc(1, sizeof(*id));
		if (id)
			audit_ident_anon(id);
		if (!id || audit_sampler_new(&s->sampler, id,
					     &s->x->t->findings, err,
					     sizeof(err)) != MOAT_OK) {
			audit_note(s->x->t, "payload sampling not run: %s",
				   id ? err : "out of memory");
			moat_free(id);
			id = NULL;
		}
		s->sampler_id = id;
	}
	audit_progress(s->x, "CoAP resources");
	if (discover(s) == MOAT_OK) {
		read_all(s);
	}
	if (!s->dtls && !audit_out_of_time(s->x)) {
		const struct co_res *big = largest(s);
		char err2[AUDIT_ERR_LEN];
		if (big && co_measure(s, big->path, &s->amp[s->namp], err2,
				      sizeof(err2)) == MOAT_OK)
			s->namp++;
		else if (big)
			audit_note(s->x->t, "amplification of %s not measured: "
					    "%s", big->path, err2);
		co_check_amplification(s);
		if (!audit_out_of_time(s->x))
			co_check_ids(s, "/.well-known/core");
	}
	if (!audit_out_of_time(s->x))
		observe_all(s);
	if (o->intrusive && !audit_out_of_time(s->x))
		write_checks(s);
	if (s->sampler)
		audit_sampler_finish(s->x, s->sampler, "CoAP response");
	moat_free(s->sampler_id);
}

void audit_coap_run(struct audit_ctx *x)
{
	struct co_state *s = moat_calloc(1, sizeof(*s));
	char err[AUDIT_ERR_LEN];
	if (!s || !(s->rx = moat_malloc(CO_RX_MAX))) {
		audit_fail(x->t, "out of memory");
		moat_free(s);
		return;
	}
	s->x = x;
	audit_progress(x, "GET /.well-known/core from a fresh address");
	struct co_amp *a = &s->amp[0];
	if (co_measure(s, "/.well-known/core", a, err, sizeof(err)) !=
	    MOAT_OK) {
		audit_fail(x->t, "%s", err);
	} else if (!a->answered && a->dgrams) {
		audit_fail(x->t, "not CoAP: %zu datagram%s (%zu bytes) came "
				 "back, none a CoAP response to our GET",
			   a->dgrams, a->dgrams == 1 ? "" : "s", a->resp);
	} else if (!a->answered) {
		audit_fail(x->t, "no answer to a CoAP GET /.well-known/core "
				 "within --timeout (%u ms): nothing speaks "
				 "CoAP there, or it drops our requests",
			   x->run->o->timeout_ms);
	} else {
		s->namp = 1;
		char code[5];
		coap_code_str(a->code, code);
		if (x->loopback)
			audit_note(x->t, "plain CoAP (no DTLS) answers on a "
					 "loopback address (%s): AUD-CO-01 is "
					 "about network addresses; audit the "
					 "server's network address to see "
					 "whether it is exposed", code);
		else
			moat_findings_add(&x->t->findings, "AUD-CO-01",
					  "%s:%s answers CoAP without DTLS "
					  "(GET /.well-known/core: %s)",
					  x->t->host, x->t->port, code);
		resource_checks(s);
	}
	moat_free(s->rx);
	moat_free(s);
}

void audit_coap_run_dtls(struct audit_ctx *x, SSL_CTX *ctx)
{
	struct co_state *s = moat_calloc(1, sizeof(*s));
	if (!s || !(s->rx = moat_malloc(CO_RX_MAX))) {
		audit_fail(x->t, "out of memory");
		moat_free(s);
		return;
	}
	s->x = x;
	s->dtls = ctx;
	audit_note(x->t, "the CoAP checks ran over DTLS as an anonymous "
			 "client (no client certificate or PSK; the server's "
			 "certificate not verified)");
	resource_checks(s);
	moat_free(s->rx);
	moat_free(s);
}
