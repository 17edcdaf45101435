/* moat audit: the run of one target: resolve it, the first probe, then
 * the checks (audit_checks.c), TLS (audit_tls.c), the test accounts
 * (audit_account.c) and payload sampling (audit_sample.c) in turn. */
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "audit.h"

/* ---- the run of one target --------------------------------------------- */

static bool is_loopback(const struct sockaddr *sa)
{
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *s = (const struct sockaddr_in *)
			(const void *)sa;
		return (ntohl(s->sin_addr.s_addr) >> 24) == 127;
	}
	if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *s = (const struct sockaddr_in6 *)
			(const void *)sa;
		const uint8_t *a = s->sin6_addr.s6_addr;
		static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0,
						   0, 0, 0, 0, 0xff, 0xff};
		if (IN6_IS_ADDR_LOOPBACK(&s->sin6_addr))
			return true;
		return !memcmp(a, mapped, 12) && a[12] == 127;
	}
	return false;
}

static int resolve(struct audit_ctx *x)
{
	struct addrinfo hints = {.ai_family = AF_UNSPEC,
				 .ai_socktype = audit_is_coap(x->t)
							? SOCK_DGRAM
							: SOCK_STREAM};
	int gai = getaddrinfo(x->t->host, x->t->port, &hints, &x->addrs);
	if (gai != 0) {
		audit_fail(x->t, "cannot resolve the host name: %s",
			   gai_strerror(gai));
		x->addrs = NULL;
		return MOAT_EIO;
	}
	x->loopback = true;
	for (const struct addrinfo *ai = x->addrs; ai; ai = ai->ai_next)
		x->loopback = x->loopback && is_loopback(ai->ai_addr);
	return MOAT_OK;
}

static void plaintext_finding(struct audit_ctx *x)
{
	moat_findings_add_sev(
		&x->t->findings, "AUD-MQ-01",
		x->loopback ? MOAT_SEV_LOW : MOAT_SEV_HIGH,
		"%s:%s answers MQTT CONNECT without TLS%s", x->t->host,
		x->t->port,
		x->loopback ? " (a loopback address: only local users and "
			      "programs can reach it; audit the broker's "
			      "network address to see whether it is exposed)"
			    : "");
}

static void run_accounts(struct audit_ctx *x)
{
	const struct audit_opts *o = x->run->o;
	if (x->anon_ok) {
		struct audit_ident anon;
		uint8_t codes[AUDIT_W_ALL];
		audit_ident_anon(&anon);
		audit_check_window(x, &anon, &x->anon_h, codes, false);
	}
	for (size_t i = 0; i < o->nacct && !audit_out_of_time(x); i++)
		audit_check_account(x, &o->acct[i]);
}

/* coap:// and coaps:// targets (audit_coap.c, audit_dtls.c). */
static void run_coap(struct audit_ctx *x)
{
	struct audit_target *t = x->t;
	if (t->scheme == AUDIT_COAP) {
		audit_coap_run(x);
	} else {
		SSL_CTX *ctx = audit_dtls_run(x);
		if (ctx && !audit_out_of_time(x))
			audit_coap_run_dtls(x, ctx);
		SSL_CTX_free(ctx);
	}
	audit_note(t, "the audit sent %zu datagram%s (%zu bytes) to this "
		      "target and received %zu (%zu bytes)%s",
		   t->dg_sent, t->dg_sent == 1 ? "" : "s", t->bytes_sent,
		   t->dg_recv, t->bytes_recv,
		   t->scheme == AUDIT_COAPS ? "; DTLS counted in records"
					    : "");
}

void audit_target_run(struct audit_run *run, struct audit_target *t)
{
	struct audit_ctx x = {.run = run, .t = t};
	const struct audit_opts *o = run->o;
	audit_progress(&x, "starting");
	if (resolve(&x) != MOAT_OK)
		goto out;
	if (audit_is_coap(t)) {
		run_coap(&x);
		goto out;
	}
	if (t->scheme == AUDIT_MQTTS && audit_tls_run(&x) != MOAT_OK)
		goto out;
	if (audit_first_probe(&x) != MOAT_OK)
		goto out;
	if (t->scheme == AUDIT_MQTT)
		plaintext_finding(&x);
	audit_check_anonymous(&x);
	audit_check_idle(&x);
	run_accounts(&x);
	if (!x.limits_read)
		audit_note(t, "limits (AUD-MQ-12) not read: no identity could "
			      "log in with MQTT 5");
	audit_check_version(&x);
	if (o->intrusive && !audit_out_of_time(&x))
		audit_check_intrusive(&x);
	if (o->sample_s && !audit_out_of_time(&x)) {
		struct audit_ident id;
		if (o->nacct)
			audit_ident_account(&id, &o->acct[0]);
		else
			audit_ident_anon(&id);
		audit_sample_payloads(&x, &id, o->sample_s);
	}
	if (o->try_creds && !audit_out_of_time(&x))
		audit_check_creds(&x);
out:
	if (audit_out_of_time(&x) && !t->error[0]) {
		t->incomplete = true;
		audit_fail(t, "the time budget (--max-time %u s) ran out "
			      "before every check had run",
			   o->max_time_s);
	}
	if (x.addrs)
		freeaddrinfo(x.addrs);
	if (x.tls)
		SSL_CTX_free(x.tls);
	moat_findings_sort(&t->findings);
	audit_progress(&x, "done");
}
