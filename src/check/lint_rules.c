/* The rules both dialects share, run on the model. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "check/lint_int.h"
#include "common/moat_common.h"

static const char *or_default(const char *w)
{
	return w && w[0] ? w : "default";
}

/* ---- listeners ----------------------------------------------------------- */

/* Can anyone at all get in (so that missing authorisation matters)? */
static bool someone_logs_in(const struct lint_listener *l)
{
	return l->anonymous || l->password_file || l->identity.v[0] ||
	       l->plugin;
}

static void rule_network(const struct lint_listener *l,
			 struct moat_findings *f)
{
	char d[300];
	const char *w = or_default(l->where);
	lint_listener_desc(l, d, sizeof(d));
	bool no_acl = !l->acl && !l->plugin;
	if (!l->tls && !l->coap) /* plain CoAP is AUD-CO-01 */
		moat_findings_add(f, "AUD-MQ-01", "%s has no TLS (%s)", d, w);
	if (l->anonymous)
		moat_findings_add_sev(
			f, "AUD-CFG-01",
			!l->tls && no_acl ? MOAT_SEV_CRITICAL : MOAT_SEV_HIGH,
			"%s accepts clients without credentials "
			"(allow_anonymous true: %s)",
			d, or_default(l->anon_where));
	if (no_acl && someone_logs_in(l))
		moat_findings_add(f, "AUD-CFG-02",
				  "%s has no acl_file: every client that gets "
				  "in may read and write every topic (%s)",
				  d, w);
	if (l->websockets && !l->ws_origin)
		moat_findings_add(f, "AUD-WS-01",
				  "%s has no websockets_origin (%s)", d, w);
}

static bool old_tls(const char *v)
{
	return !strcasecmp(v, "tlsv1") || !strcasecmp(v, "tlsv1.0") ||
	       !strcasecmp(v, "tlsv1.1");
}

/* Weak entries of an OpenSSL cipher list (exclusions skipped), into out
 * as "A, B"; empty when none. */
static void weak_ciphers(const char *list, char *out, size_t outsz)
{
	static const char *const bad_part[] = {"NULL", "EXP", "RC4", "DES",
					       "MD5",  "ADH", "AECDH", "IDEA",
					       "anon"};
	static const char *const bad_word[] = {
		"ALL", "LOW", "COMPLEMENTOFALL", "COMPLEMENTOFDEFAULT",
		"@SECLEVEL=0", "TLS_SHA256_SHA256", "TLS_SHA384_SHA384"};
	char tok[128];
	size_t o = 0;
	out[0] = '\0';
	for (const char *p = list; *p;) {
		size_t n = strcspn(p, ":, ");
		snprintf(tok, sizeof(tok), "%.*s", (int)n, p);
		p += n + (p[n] != '\0');
		if (!tok[0] || tok[0] == '!' || tok[0] == '-')
			continue;
		bool weak = false;
		for (size_t i = 0; i < MOAT_ARRAY_LEN(bad_part); i++)
			weak |= strcasestr(tok, bad_part[i]) != NULL;
		for (size_t i = 0; i < MOAT_ARRAY_LEN(bad_word); i++)
			weak |= !strcasecmp(tok + (tok[0] == '+'), bad_word[i]);
		/* ALL includes the anonymous suites unless !aNULL follows. */
		if (!strcasecmp(tok, "ALL") && strstr(list, "!aNULL"))
			weak = false;
		if (weak && o + strlen(tok) + 3 < outsz)
			o += (size_t)snprintf(out + o, outsz - o, "%s%s",
					      o ? ", " : "", tok);
	}
}

static void rule_cipher_list(const char *who, const struct lint_str *s,
			     struct moat_findings *f)
{
	char weak[300];
	if (!s->v[0])
		return;
	weak_ciphers(s->v, weak, sizeof(weak));
	if (weak[0])
		moat_findings_add(f, "AUD-TLS-02",
				  "%s: the cipher list enables weak suites: %s "
				  "(%s)",
				  who, weak, or_default(s->where));
}

static void rule_tls(const struct lint_listener *l, struct moat_findings *f)
{
	char d[300];
	lint_listener_desc(l, d, sizeof(d));
	if (old_tls(l->tls_version.v))
		moat_findings_add(f, "AUD-TLS-01",
				  "%s: tls_version %s accepts TLS older than "
				  "1.2 (%s)",
				  d, l->tls_version.v,
				  or_default(l->tls_version.where));
	rule_cipher_list(d, &l->ciphers, f);
	rule_cipher_list(d, &l->ciphers13, f);
	if (l->identity.v[0] && !l->require_cert.v[0])
		moat_findings_add(f, "AUD-TLS-04",
				  "%s: use_identity_as_username without "
				  "require_certificate true (%s)",
				  d, l->identity.where);
	if (l->require_cert.v[0] && !l->cafile.v[0] && !l->capath.v[0])
		moat_findings_add(f, "AUD-TLS-04",
				  "%s: require_certificate true without cafile "
				  "or capath, so no CA to verify client "
				  "certificates against (%s)",
				  d, l->require_cert.where);
}

/* ---- ACL grants and $SYS ------------------------------------------------- */

static bool any_network(const struct lint_model *m)
{
	for (size_t i = 0; i < m->nl; i++)
		if (m->l[i].network)
			return true;
	return false;
}

static bool any_anonymous(const struct lint_model *m)
{
	for (size_t i = 0; i < m->nl; i++)
		if (m->l[i].anonymous)
			return true;
	return false;
}

static void rule_acl(const struct lint_model *m, const struct lint_acl_info *a,
		     struct moat_findings *f)
{
	bool anon = any_anonymous(m);
	if (a->readable && !a->rules)
		moat_findings_add_sev(
			f, "AUD-CFG-02",
			m->dialect == MOAT_LINT_MOATD ? MOAT_SEV_LOW
						      : MOAT_SEV_MEDIUM,
			"acl_file %s has no rules: it denies every topic to "
			"every client (mosquitto before 1.5 allowed "
			"everything instead)",
			a->path);
	if (a->wild_anon[0])
		moat_findings_add_sev(f, "AUD-MQ-05",
				      anon ? MOAT_SEV_HIGH : MOAT_SEV_MEDIUM,
				      "acl_file grants read on every topic to "
				      "anonymous clients (%s)%s",
				      a->wild_anon,
				      anon ? "" : "; no listener accepts "
						  "anonymous clients now");
	if (a->wild_pattern[0])
		moat_findings_add(f, "AUD-MQ-05",
				  "acl_file pattern grants read on every topic "
				  "to every client (%s)",
				  a->wild_pattern);
}

static void rule_sys(const struct lint_model *m, struct moat_findings *f)
{
	char iv[LINT_WHERE + 64];
	if (!m->sys_interval || !any_network(m))
		return;
	snprintf(iv, sizeof(iv), "sys_interval %" PRIu64 " (%s)",
		 m->sys_interval, or_default(m->sys_where));
	for (size_t i = 0; i < m->nl; i++) {
		const struct lint_listener *l = &m->l[i];
		const struct lint_acl_info *a =
			l->acl ? lint_acl_find(m, l->acl->v) : NULL;
		char d[300];
		lint_listener_desc(l, d, sizeof(d));
		/* moatd never shows $SYS without an ACL, nor to anonymous
		 * clients: only mosquitto has these two cases. */
		bool mosq = m->dialect == MOAT_LINT_MOSQUITTO;
		if (mosq && l->network && !l->acl && !l->plugin &&
		    someone_logs_in(l))
			moat_findings_add(f, "AUD-MQ-04",
					  "%s and %s has no acl_file: every "
					  "client can read $SYS/#",
					  iv, d);
		if (mosq && a && a->sys_anon[0] && l->anonymous)
			moat_findings_add(f, "AUD-MQ-04",
					  "%s and acl_file grants $SYS to "
					  "anonymous clients (%s)",
					  iv, a->sys_anon);
		if (a && a->sys_pattern[0])
			moat_findings_add(f, "AUD-MQ-04",
					  "%s and an acl_file pattern grants "
					  "$SYS to every client (%s)",
					  iv, a->sys_pattern);
	}
}

/* ---- process, logging, bridges, plugins ---------------------------------- */

static void rule_process(const struct lint_model *m, struct moat_findings *f)
{
	if (!strcmp(m->user.v, "root"))
		moat_findings_add(f, "AUD-CFG-05",
				  "user root (%s): mosquitto keeps root "
				  "privileges after start-up",
				  m->user.where);
	if (m->log_debug[0])
		moat_findings_add(f, "AUD-CFG-06",
				  "debug logging is on (%s): client ids, user "
				  "names, addresses and topics go to the log",
				  m->log_debug);
	if (m->log_topic[0])
		moat_findings_add_sev(f, "AUD-CFG-06", MOAT_SEV_MEDIUM,
				      "log_dest topic (%s): log lines are "
				      "published on $SYS/broker/log/#",
				      m->log_topic);
}

static void rule_bridges(const struct lint_model *m, struct moat_findings *f)
{
	for (size_t i = 0; i < m->nbr; i++) {
		const struct lint_bridge *b = &m->br[i];
		char who[200];
		snprintf(who, sizeof(who), "bridge %s", b->name);
		if (!b->tls)
			moat_findings_add(f, "AUD-BR-01",
					  "%s has no bridge_cafile, "
					  "bridge_capath or PSK: it connects "
					  "without verified TLS (%s)",
					  who, b->where);
		if (b->insecure.v[0])
			moat_findings_add(f, "AUD-BR-01",
					  "%s: bridge_insecure true skips the "
					  "remote certificate's host name "
					  "check (%s)",
					  who, b->insecure.where);
		if (old_tls(b->tls_version.v))
			moat_findings_add(f, "AUD-TLS-01",
					  "%s: bridge_tls_version %s (%s)", who,
					  b->tls_version.v,
					  b->tls_version.where);
		rule_cipher_list(who, &b->ciphers, f);
	}
}

static void rule_plugins(const struct lint_model *m, struct moat_findings *f)
{
	if (m->global.plugin[0])
		moat_findings_add(f, "AUD-CFG-09", "plugin loaded (%s)",
				  m->global.plugin);
	for (size_t i = 0; i < m->nl; i++)
		if (m->l[i].sec.plugin[0])
			moat_findings_add(f, "AUD-CFG-09", "plugin loaded (%s)",
					  m->l[i].sec.plugin);
}

/* ---- limits -------------------------------------------------------------- */

static const char *limit_value(const struct lint_limit *l, char *buf,
			       size_t bufsz)
{
	if (l->unlimited)
		snprintf(buf, bufsz, "no limit");
	else if (l->bytes && l->value >= 1024 * 1024 &&
		 l->value % (1024 * 1024) == 0)
		snprintf(buf, bufsz, "%" PRIu64 " MiB", l->value >> 20);
	else
		snprintf(buf, bufsz, "%" PRIu64 "%s", l->value,
			 l->bytes ? " bytes" : "");
	return buf;
}

/* Explicit values get a finding each; defaults that are unsafe (only
 * mosquitto has those) are summed up in one, for networked brokers. */
static void rule_limits(const struct lint_model *m, struct moat_findings *f)
{
	char defaults[LINT_WHERE * 2] = "", v[64];
	size_t o = 0;
	enum moat_severity worst = MOAT_SEV_LOW;
	for (size_t i = 0; i < m->nlim; i++) {
		const struct lint_limit *l = &m->lim[i];
		if (!l->unlimited && l->value <= l->safe_max)
			continue;
		limit_value(l, v, sizeof(v));
		if (l->where[0]) {
			moat_findings_add_sev(f, "AUD-MQ-12", l->sev,
					      "%s %s (%s)", l->name, v,
					      l->where);
			continue;
		}
		if (l->sev > worst)
			worst = l->sev;
		if (o + strlen(l->name) + strlen(v) + 8 < sizeof(defaults))
			o += (size_t)snprintf(defaults + o,
					      sizeof(defaults) - o, "%s%s: %s",
					      o ? ", " : "", l->name, v);
	}
	/* Defaults are a choice the user did not make: worth a finding
	 * when strangers can reach the broker. */
	if (o && any_network(m))
		moat_findings_add_sev(f, "AUD-MQ-12", worst,
				      "not set, so the defaults apply: %s",
				      defaults);
}

void lint_run_rules(const struct lint_model *m, struct moat_findings *f)
{
	for (size_t i = 0; i < m->nl; i++) {
		if (m->l[i].network)
			rule_network(&m->l[i], f);
		rule_tls(&m->l[i], f);
	}
	if (m->nl_dropped) /* a limit of the lint, not of the broker */
		moat_findings_add_sev(f, "AUD-CFG-03", MOAT_SEV_INFO,
				      "more than %d listeners: %zu not "
				      "checked",
				      LINT_MAX_LISTENERS, m->nl_dropped);
	for (size_t i = 0; i < m->nacl; i++)
		rule_acl(m, &m->acl[i], f);
	rule_sys(m, f);
	rule_process(m, f);
	rule_bridges(m, f);
	rule_plugins(m, f);
	rule_limits(m, f);
}
