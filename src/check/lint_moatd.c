/* moatd.conf -> lint model, with moatd's own parser (so the lint reads
 * exactly what moatd reads), plus the checks only moatd has. */
#include <string.h>
#include <sys/stat.h>

#include "check/lint_int.h"
#include "common/moat_common.h"
#include "config/cfg.h"
#include "config/cfg_int.h"

#define MOATD_MAX_DIRS 128

/* The parsed configuration and, for evidence, the line that last set
 * each directive (0 = never), globally and per listener. */
struct lint_moatd {
	struct moat_config cfg;
	size_t gline[MOATD_MAX_DIRS];
	size_t lline[MOAT_CFG_MAX_LISTENERS][MOATD_MAX_DIRS];
	size_t listener_line[MOAT_CFG_MAX_LISTENERS];
	size_t bridge_line[MOAT_CFG_MAX_BRIDGES]; /* connection lines */
};

struct moatd_parse {
	struct lint_model *m;
	struct lint_moatd *st;
	struct moat_findings *errs;
	size_t nerr;
};

static int dir_index(const char *name)
{
	for (size_t i = 0; i < moat__cfg_ndirectives && i < MOATD_MAX_DIRS;
	     i++)
		if (!strcmp(moat__cfg_directives[i].name, name))
			return (int)i;
	return -1;
}

bool lint_moatd_knows(const char *name)
{
	return dir_index(name) >= 0;
}

/* Remember which line set the directive that line holds. */
static void note_line(struct lint_moatd *st, const char *line, size_t lineno,
		      size_t listeners_before)
{
	char name[64];
	line += strspn(line, " \t");
	size_t n = strcspn(line, " \t");
	if (n >= sizeof(name))
		return;
	memcpy(name, line, n);
	name[n] = '\0';
	int i = dir_index(name);
	size_t nl = st->cfg.nlisteners;
	if (i < 0)
		return;
	if (moat__cfg_directives[i].type == CFG_BRIDGE && st->cfg.nbridges) {
		st->bridge_line[st->cfg.nbridges - 1] = lineno;
	} else if (moat__cfg_directives[i].type == CFG_LISTENER) {
		if (nl > listeners_before)
			st->listener_line[nl - 1] = lineno;
	} else if (moat__cfg_directives[i].per_listener && nl) {
		st->lline[nl - 1][i] = lineno;
	} else {
		st->gline[i] = lineno;
	}
}

/* One line at a time, so that an error does not hide the rest of the
 * file: moatd stops at the first, the lint reports them all. */
static bool moatd_line(void *arg, char *line, size_t lineno)
{
	struct moatd_parse *p = arg;
	struct moat_cfg_err err;
	size_t before = p->st->cfg.nlisteners;
	static const char prefix[] = "L:1: ";
	if (moat_cfg_load_string(&p->st->cfg, "L", line, strlen(line),
				 &err) == MOAT_OK) {
		note_line(p->st, line, lineno, before);
		return true;
	}
	const char *msg = err.msg;
	if (!strncmp(msg, prefix, sizeof(prefix) - 1))
		msg += sizeof(prefix) - 1;
	p->nerr++;
	moat_findings_add(p->errs, "AUD-CFG-03", "%s:%zu: %s", p->m->name,
			  lineno, msg);
	return true;
}

int lint_moatd_parse(struct lint_model *m, const char *text, size_t len,
		     struct moat_findings *errs, size_t *nerr,
		     struct lint_moatd **out)
{
	struct lint_moatd *st = moat_calloc(1, sizeof(*st));
	char *copy = moat_strndup(text, len);
	*out = st;
	*nerr = 0;
	if (!st || !copy) {
		moat_free(copy);
		return MOAT_ENOMEM;
	}
	moat_cfg_defaults(&st->cfg);
	snprintf(st->cfg.source, sizeof(st->cfg.source), "%s", m->path);
	struct stat sb; /* (moatd refuses a remote_password in a file
			 * others can read: the same check) */
	if (stat(m->path, &sb) == 0)
		st->cfg.source_mode = (uint32_t)(sb.st_mode & 07777);
	struct moatd_parse p = {m, st, errs, 0};
	if (memchr(text, '\0', len)) {
		p.nerr++;
		moat_findings_add(errs, "AUD-CFG-03",
				  "%s: contains a NUL byte; moatd refuses the "
				  "file",
				  m->name);
	}
	lint_each_line(copy, len, moatd_line, &p);
	moat_free(copy);
	*nerr = p.nerr;
	return MOAT_OK;
}

void lint_moatd_free(struct lint_moatd *st)
{
	moat_free(st);
}

/* "moatd.conf:12" for a line number, "" for 0 (the default). */
static void where_of(const struct lint_model *m, size_t line, char *buf,
		     size_t bufsz)
{
	if (line)
		lint_where(buf, bufsz, m->name, line);
	else
		buf[0] = '\0';
}

static size_t gline(const struct lint_moatd *st, const char *name)
{
	int i = dir_index(name);
	return i < 0 ? 0 : st->gline[i];
}

static size_t lline(const struct lint_moatd *st, size_t l, const char *name)
{
	int i = dir_index(name);
	return i < 0 ? 0 : st->lline[l][i];
}

/* A listener value with the line that set it ("" when defaulted). */
static void set_lstr(const struct lint_model *m, const struct lint_moatd *st,
		     size_t i, const char *name, const char *val,
		     struct lint_str *s)
{
	char w[LINT_WHERE];
	where_of(m, lline(st, i, name), w, sizeof(w));
	lint_str_set(s, val, w);
}

static void set_gstr(const struct lint_model *m, const struct lint_moatd *st,
		     const char *name, const char *val, struct lint_str *s)
{
	char w[LINT_WHERE];
	where_of(m, gline(st, name), w, sizeof(w));
	lint_str_set(s, val, w);
}

static void listener_tls(struct lint_model *m, const struct lint_moatd *st,
			 size_t i, struct lint_listener *l)
{
	const struct moat_listener_cfg *lc = &st->cfg.listeners[i];
	set_lstr(m, st, i, "certfile", lc->certfile, &l->certfile);
	set_lstr(m, st, i, "keyfile", lc->keyfile, &l->keyfile);
	set_lstr(m, st, i, "cafile", lc->cafile, &l->cafile);
	set_lstr(m, st, i, "crlfile", lc->crlfile, &l->crlfile);
	set_lstr(m, st, i, "ciphers", lc->ciphers, &l->ciphers);
	set_lstr(m, st, i, "ciphersuites", lc->ciphersuites, &l->ciphers13);
	set_lstr(m, st, i, "tls_version",
		 lc->tls_version == MOAT_TLS_13 ? "tlsv1.3" : "tlsv1.2",
		 &l->tls_version);
	set_lstr(m, st, i, "require_certificate",
		 lc->require_certificate ? "true" : "", &l->require_cert);
	set_lstr(m, st, i, "use_identity_as_username",
		 lc->use_identity_as_username ? "true" : "", &l->identity);
	l->tls = moat_listener_tls(lc);
}

static void build_listener(struct lint_model *m, const struct lint_moatd *st,
			   size_t i)
{
	const struct moat_config *cfg = &st->cfg;
	const struct moat_listener_cfg *lc = &cfg->listeners[i];
	struct lint_listener *l = &m->l[m->nl++];
	where_of(m, st->listener_line[i], l->where, sizeof(l->where));
	snprintf(l->addr, sizeof(l->addr), "%s", lc->addr);
	l->port = lc->port;
	l->sec.anon = -1;
	listener_tls(m, st, i, l);
	l->coap = moat_listener_coap(lc);
	if (lc->protocol == MOAT_PROTO_COAPS)
		l->tls = true; /* DTLS */
	l->network = !moat_cfg_addr_is_loopback(lc->addr);
	l->anonymous = moat_cfg_listener_anonymous(cfg, i);
	l->acl = m->global.acl_file.v[0] ? &m->global.acl_file : NULL;
	l->password_file =
		m->global.password_file.v[0] ? &m->global.password_file : NULL;
	l->anon_where = m->global.anon_where;
}

/* moatd listens on 127.0.0.1:1883 when no listener is configured. */
static void build_listeners(struct lint_model *m, const struct lint_moatd *st)
{
	for (size_t i = 0; i < st->cfg.nlisteners; i++)
		build_listener(m, st, i);
	if (m->nl)
		return;
	struct lint_listener *l = &m->l[m->nl++];
	snprintf(l->addr, sizeof(l->addr), "127.0.0.1");
	l->port = 1883;
	l->sec.anon = -1;
	snprintf(l->tls_version.v, sizeof(l->tls_version.v), "tlsv1.2");
	l->anonymous = st->cfg.allow_anonymous != MOAT_ANON_FALSE;
	l->anon_where = m->global.anon_where;
}

static void build_global(struct lint_model *m, const struct lint_moatd *st)
{
	const struct moat_config *cfg = &st->cfg;
	static const char *const anon[] = {"false", "true", "loopback"};
	set_gstr(m, st, "password_file", cfg->password_file,
		 &m->global.password_file);
	set_gstr(m, st, "acl_file", cfg->acl_file, &m->global.acl_file);
	m->global.anon = cfg->allow_anonymous == MOAT_ANON_TRUE;
	where_of(m, gline(st, "allow_anonymous"), m->global.anon_where,
		 sizeof(m->global.anon_where));
	if (!m->global.anon_where[0])
		snprintf(m->global.anon_where, sizeof(m->global.anon_where),
			 "default allow_anonymous %s",
			 anon[cfg->allow_anonymous % 3]);
	m->sys_interval = cfg->sys_interval;
	where_of(m, gline(st, "sys_interval"), m->sys_where,
		 sizeof(m->sys_where));
	if (cfg->log_level >= MOAT_LOG_DEBUG) {
		where_of(m, gline(st, "log_level"), m->log_debug,
			 sizeof(m->log_debug));
		if (!m->log_debug[0])
			snprintf(m->log_debug, sizeof(m->log_debug),
				 "log_level debug");
	}
}

static void build_cluster(struct lint_model *m, const struct lint_moatd *st)
{
	const struct moat_config *cfg = &st->cfg;
	struct lint_cluster *c = &m->cluster;
	set_gstr(m, st, "cluster_nats_url", cfg->cluster_nats_url, &c->url);
	set_gstr(m, st, "cluster_nats_cafile", cfg->cluster_nats_cafile,
		 &c->cafile);
	set_gstr(m, st, "cluster_nats_certfile", cfg->cluster_nats_certfile,
		 &c->certfile);
	set_gstr(m, st, "cluster_nats_keyfile", cfg->cluster_nats_keyfile,
		 &c->keyfile);
	set_gstr(m, st, "cluster_nats_creds", cfg->cluster_nats_creds,
		 &c->creds);
	set_gstr(m, st, "cluster_nats_user", cfg->cluster_nats_user, &c->user);
	set_gstr(m, st, "cluster_nats_password_file",
		 cfg->cluster_nats_password_file, &c->password_file);
}

#define KIB 1024ull
#define MIB (1024ull * 1024ull)

/* moatd's defaults are inside the safe range: only values the user
 * raised (or set to "no limit") are findings. */
static void build_limits(struct lint_model *m, const struct lint_moatd *st)
{
	const struct moat_config *c = &st->cfg;
	char w[LINT_WHERE];
#define LIMIT(name, val, unl, bytes, safe, sev)                               \
	do {                                                                  \
		where_of(m, gline(st, name), w, sizeof(w));                   \
		lint_limit_add(m, name, val, unl, bytes, w, safe, sev);       \
	} while (0)
	LIMIT("max_packet_size", c->max_packet_size, false, true, 16 * MIB,
	      MOAT_SEV_MEDIUM);
	LIMIT("max_connect_packet_size", c->max_connect_packet_size, false,
	      true, 64 * KIB, MOAT_SEV_MEDIUM);
	LIMIT("max_keepalive", c->max_keepalive, false, false, 300,
	      MOAT_SEV_LOW);
	LIMIT("max_queued_bytes", c->max_queued_bytes, !c->max_queued_bytes,
	      true, 256 * MIB, MOAT_SEV_LOW);
	LIMIT("max_queued_messages", c->max_queued_messages, false, false,
	      100000, MOAT_SEV_LOW);
	LIMIT("connect_timeout", c->connect_timeout, false, false, 60,
	      MOAT_SEV_LOW);
	LIMIT("max_connections_per_ip", c->max_connections_per_ip,
	      !c->max_connections_per_ip, false, 1000, MOAT_SEV_LOW);
	LIMIT("max_accept_rate_per_ip", c->max_accept_rate_per_ip,
	      !c->max_accept_rate_per_ip, false, 1000, MOAT_SEV_LOW);
	LIMIT("max_topic_levels", c->max_topic_levels, false, false, 128,
	      MOAT_SEV_LOW);
#undef LIMIT
}

/* The listeners that make allow_insecure_listener matter. */
static size_t risky_listeners(const struct moat_config *cfg)
{
	size_t n = 0;
	char risks[400];
	for (size_t i = 0; i < cfg->nlisteners; i++)
		n += moat_cfg_listener_risks(cfg, i, risks, sizeof(risks))[0] !=
		     '\0';
	return n;
}

/* Would moatd start?  moat_cfg_finish applies the same cross-checks as
 * at start; it changes its argument, so it runs on a copy. */
static void check_refusal(const struct lint_model *m,
			  const struct lint_moatd *st,
			  struct moat_findings *f)
{
	struct moat_config *copy = moat_malloc(sizeof(*copy));
	struct moat_cfg_err err;
	if (!copy) {
		f->oom = true;
		return;
	}
	*copy = st->cfg;
	if (moat_cfg_finish(copy, &err) != MOAT_OK) {
		/* The message starts with the path: do not repeat it. */
		const char *msg = err.msg;
		size_t n = strlen(m->path);
		if (!strncmp(msg, m->path, n) && !strncmp(msg + n, ": ", 2))
			msg += n + 2;
		moat_findings_add(f, "AUD-CFG-03",
				  "moatd refuses to start with %s: %s",
				  m->name, msg);
	}
	moat_free(copy);
}

static void moatd_only_checks(const struct lint_model *m,
			      const struct lint_moatd *st,
			      struct moat_findings *f)
{
	const struct moat_config *cfg = &st->cfg;
	char w[LINT_WHERE];
	check_refusal(m, st, f);
	if (cfg->allow_insecure_listener) {
		size_t n = risky_listeners(cfg);
		where_of(m, gline(st, "allow_insecure_listener"), w, sizeof(w));
		moat_findings_add_sev(
			f, "AUD-CFG-07", n ? MOAT_SEV_MEDIUM : MOAT_SEV_LOW,
			"allow_insecure_listener true (%s): %zu listener%s "
			"start%s despite the network checks",
			w, n, n == 1 ? "" : "s", n == 1 ? "s" : "");
	}
	if (cfg->auth_backoff_initial_ms == 0) {
		where_of(m, gline(st, "auth_backoff_initial"), w, sizeof(w));
		moat_findings_add(f, "AUD-MQ-03b",
				  "auth_backoff_initial 0 (%s): failed logins "
				  "are not delayed",
				  w);
	}
	for (size_t i = 0; i < cfg->nlisteners && i < m->nl; i++) {
		const struct moat_listener_cfg *lc = &cfg->listeners[i];
		char d[300];
		if (!moat_listener_coap(lc) ||
		    moat_cfg_addr_is_loopback(lc->addr))
			continue;
		lint_listener_desc(&m->l[i], d, sizeof(d));
		if (lc->protocol == MOAT_PROTO_COAP)
			moat_findings_add(f, "AUD-CO-01",
					  "%s: protocol coap (no DTLS) on a "
					  "network address",
					  d);
		if (moat_cfg_listener_anonymous(cfg, i))
			moat_findings_add(f, "AUD-CO-05",
					  "%s: CoAP clients without credentials "
					  "are accepted (%s)",
					  d, lc->protocol == MOAT_PROTO_COAP
						     ? "plain CoAP has none"
						     : "allow_anonymous");
	}
	for (size_t i = 0; i < m->nl; i++) {
		const struct lint_listener *l = &m->l[i];
		char d[300];
		/* moatd's cafile is only for client certificates. */
		if (l->tls && l->cafile.v[0] && !l->require_cert.v[0])
			moat_findings_add_sev(
				f, "AUD-TLS-04", MOAT_SEV_LOW,
				"%s: cafile is set (%s) but "
				"require_certificate is false: client "
				"certificates are checked when offered, not "
				"required",
				lint_listener_desc(l, d, sizeof(d)),
				l->cafile.where);
	}
}

/* Bridges, for the shared rule (AUD-BR-01): one to addresses all on
 * loopback needs no TLS; bridge_insecure is reported wherever. */
static void build_bridges(struct lint_model *m, const struct lint_moatd *st)
{
	for (size_t i = 0; i < st->cfg.nbridges && m->nbr < LINT_MAX_BRIDGES;
	     i++) {
		const struct moat_bridge_cfg *bc = &st->cfg.bridges[i];
		struct lint_bridge *b = &m->br[m->nbr++];
		bool loopback = true;
		for (size_t k = 0; k < bc->naddrs; k++)
			loopback = loopback &&
				   moat_cfg_addr_is_loopback(bc->addrs[k].host);
		snprintf(b->name, sizeof(b->name), "%s", bc->name);
		where_of(m, st->bridge_line[i], b->where, sizeof(b->where));
		b->tls = moat_bridge_tls(bc) || loopback;
		lint_str_set(&b->insecure, bc->insecure ? "true" : "", b->where);
		lint_str_set(&b->tls_version,
			     bc->tls_version == MOAT_TLS_13 ? "tlsv1.3"
							    : "tlsv1.2",
			     b->where);
		lint_str_set(&b->keyfile, bc->keyfile, b->where);
		if (bc->password_inline)
			snprintf(m->secret_in_config,
				 sizeof(m->secret_in_config), "%s", b->where);
	}
}

void lint_moatd_finish(struct lint_model *m, struct lint_moatd *st,
		       struct moat_findings *f)
{
	build_global(m, st);
	build_listeners(m, st);
	build_bridges(m, st);
	build_limits(m, st);
	build_cluster(m, st);
	moatd_only_checks(m, st, f);
	lint_cluster_rules(m, f);
}
