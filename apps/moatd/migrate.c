/* moatd migrate MOSQUITTO_CONF OUTDIR: read a mosquitto configuration with
 * the linter's parser (src/check/lint_mosq.c), decide what each directive
 * becomes in moatd, and write moatd.conf, the password file and ACL, and
 * MIGRATION.md (docs/migrate.md). */
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "config/cfg.h"
#include "migrate.h"
#include "moatd_cmds.h"

/* ---- collecting the lines ------------------------------------------------ */

static void collect(void *arg, const struct lint_mosq_line *l)
{
	struct mg *g = arg;
	if (g->n == MG_MAX_LINES) {
		g->lines_dropped++;
		return;
	}
	if (g->n == g->cap) {
		size_t cap = g->cap ? g->cap * 2 : 256;
		struct mg_line *v = realloc(g->v, cap * sizeof(*v));
		if (!v) {
			g->lines_dropped++;
			return;
		}
		g->v = v;
		g->cap = cap;
	}
	struct mg_line *x = &g->v[g->n++];
	memset(x, 0, sizeof(*x));
	snprintf(x->where, sizeof(x->where), "%s", l->where);
	snprintf(x->name, sizeof(x->name), "%s", l->name);
	snprintf(x->value, sizeof(x->value), "%s", l->value);
	x->listener = l->listener;
	x->bridge = l->bridge;
	x->known = l->known;
}

static void set(struct mg_line *x, enum mg_status st, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void set(struct mg_line *x, enum mg_status st, const char *fmt, ...)
{
	va_list ap;
	x->status = st;
	va_start(ap, fmt);
	vsnprintf(x->note, sizeof(x->note), fmt, ap);
	va_end(ap);
}

/* ---- what each mosquitto directive becomes -------------------------------- */

enum mg_kind {
	K_SAME,      /* same name and meaning in moatd */
	K_RENAME,    /* same meaning, moatd's name in to */
	K_ZERO,      /* 0 means "no limit" in mosquitto: to = moatd's value */
	K_EXPIRY,    /* persistent_client_expiration: h d w m y units */
	K_LISTENER,  /* a listener's own option: with its listener */
	K_SECURITY,  /* merged into the broker-wide password file/ACL */
	K_LOG,       /* log_type -> log_level */
	K_DROP,      /* no moatd equivalent; to = why */
};

struct mg_map {
	const char *name;
	enum mg_kind kind;
	const char *to;
};

#define NO_PLUGINS "moatd loads no plugins"
#define NO_WS "moatd has no WebSockets listener yet"
#define NO_PSK "moatd has no TLS-PSK; use certificates"
#define SNAPSHOT "moatd commits to its database as messages arrive " \
		 "(persistence_sync); there is no snapshot file"

static const struct mg_map mg_maps[] = {
	{"listener", K_LISTENER, NULL},
	{"port", K_LISTENER, NULL},
	{"bind_address", K_LISTENER, NULL},
	{"certfile", K_LISTENER, NULL},
	{"keyfile", K_LISTENER, NULL},
	{"cafile", K_LISTENER, NULL},
	{"crlfile", K_LISTENER, NULL},
	{"require_certificate", K_LISTENER, NULL},
	{"use_identity_as_username", K_LISTENER, NULL},
	{"tls_version", K_LISTENER, NULL},
	{"ciphers", K_LISTENER, NULL},
	{"ciphers_tls1.3", K_LISTENER, NULL},
	{"protocol", K_LISTENER, NULL},
	{"allow_anonymous", K_SECURITY, NULL},
	{"listener_allow_anonymous", K_SECURITY, NULL},
	{"password_file", K_SECURITY, NULL},
	{"acl_file", K_SECURITY, NULL},
	{"per_listener_settings", K_SECURITY, NULL},
	{"retain_available", K_SAME, NULL},
	{"max_qos", K_SAME, NULL},
	{"allow_zero_length_clientid", K_SAME, NULL},
	{"max_queued_bytes", K_SAME, NULL},
	{"sys_interval", K_SAME, NULL},
	{"persistence", K_SAME, NULL},
	{"persistence_location", K_SAME, NULL},
	{"user", K_SAME, NULL},
	{"max_keepalive", K_SAME, NULL},
	{"max_inflight_messages", K_ZERO, "65535"},
	{"max_queued_messages", K_ZERO, "10000000"},
	{"max_packet_size", K_ZERO, NULL},
	{"memory_limit", K_ZERO, NULL},
	{"max_topic_alias", K_RENAME, "topic_alias_maximum"},
	{"persistent_client_expiration", K_EXPIRY, NULL},
	{"log_type", K_LOG, NULL},
	{"log_dest", K_DROP, "moatd logs to standard error (the journal under "
			     "systemd)"},
	{"log_timestamp", K_DROP, "moatd's log lines always start with a UTC "
				  "timestamp"},
	{"log_timestamp_format", K_DROP, "moatd's timestamps are ISO 8601 UTC"},
	{"log_facility", K_DROP, "moatd does not log to syslog directly"},
	{"connection_messages", K_DROP, "moatd logs connections at level info"},
	{"include_dir", K_DROP, "folded in: the directives of its files are "
				"listed (and carried over) one by one"},
	{"autosave_interval", K_DROP, SNAPSHOT},
	{"autosave_on_changes", K_DROP, SNAPSHOT},
	{"persistence_file", K_DROP, SNAPSHOT "; moatd's database is moat.db "
					     "(mosquitto.db is not read: see "
					     "--retained)"},
	{"pid_file", K_DROP, "moatd writes no pid file: systemd tracks it "
			     "(Type=notify)"},
	{"auth_plugin", K_DROP, NO_PLUGINS},
	{"plugin", K_DROP, NO_PLUGINS},
	{"plugin_load", K_DROP, NO_PLUGINS},
	{"plugin_use", K_DROP, NO_PLUGINS},
	{"global_plugin", K_DROP, NO_PLUGINS},
	{"auth_plugin_deny_special_chars", K_DROP, NO_PLUGINS},
	{"psk_file", K_DROP, NO_PSK},
	{"psk_hint", K_DROP, NO_PSK},
	{"capath", K_DROP, "moatd takes CA certificates from cafile only: "
			   "concatenate the directory's certificates into one "
			   "file"},
	{"use_subject_as_username", K_DROP,
	 "moatd names certificate users by CN or SAN "
	 "(use_identity_as_username cn|san), not by the whole subject: the "
	 "ACL's user names would not match"},
	{"websockets_log_level", K_DROP, NO_WS},
	{"websockets_headers_size", K_DROP, NO_WS},
	{"websockets_origin", K_DROP, NO_WS},
	{"http_dir", K_DROP, NO_WS},
	{"bind_interface", K_DROP, "moatd binds addresses, not interfaces "
				   "(bind_interface lo became 127.0.0.1)"},
	{"max_connections", K_DROP, "moatd's max_connections is broker-wide "
				    "(default 100000), not per listener: set "
				    "it if you need a lower bound"},
	{"message_size_limit", K_DROP, "deprecated in mosquitto; moatd uses "
				       "max_packet_size"},
	{"queue_qos0_messages", K_DROP, "moatd does not queue QoS 0 messages "
					"for offline clients"},
	{"retry_interval", K_DROP, "moatd re-sends unacknowledged messages "
				   "when the client reconnects (MQTT 3.1.1 "
				   "and 5)"},
};

static const struct mg_map *find_map(const char *name)
{
	for (size_t i = 0; i < sizeof(mg_maps) / sizeof(mg_maps[0]); i++)
		if (!strcmp(mg_maps[i].name, name))
			return &mg_maps[i];
	return NULL;
}

/* ---- listeners ----------------------------------------------------------- */

static void decide_listeners(struct mg *g)
{
	for (size_t i = 0; i < g->m->nl; i++) {
		const struct lint_listener *l = &g->m->l[i];
		struct mg_listener *x = &g->l[i];
		x->carried = true;
		snprintf(x->addr, sizeof(x->addr), "%s",
			 l->loopback_iface ? "127.0.0.1" : l->addr);
		if (!strcmp(x->addr, "localhost"))
			snprintf(x->addr, sizeof(x->addr), "127.0.0.1");
		if (l->unix_socket)
			snprintf(x->why, sizeof(x->why),
				 "moatd has no Unix-socket listeners");
		else if (l->websockets)
			snprintf(x->why, sizeof(x->why), NO_WS);
		else if (l->psk && !l->certfile.v[0])
			snprintf(x->why, sizeof(x->why), NO_PSK);
		if (x->why[0])
			x->carried = false;
	}
}

/* A listener and its TLS options as moatd lines. */
static void put_listener(FILE *o, const struct mg *g, size_t i)
{
	const struct lint_listener *l = &g->m->l[i];
	const struct mg_listener *x = &g->l[i];
	fprintf(o, "\n# %s\n", l->where[0] ? l->where
					    : "mosquitto's default listener");
	fprintf(o, "listener %u%s%s\n", l->port, x->addr[0] ? " " : "",
		x->addr);
	if (l->certfile.v[0])
		fprintf(o, "certfile %s\n", l->certfile.v);
	if (l->keyfile.v[0])
		fprintf(o, "keyfile %s\n", l->keyfile.v);
	if (l->cafile.v[0])
		fprintf(o, "cafile %s\n", l->cafile.v);
	if (l->crlfile.v[0])
		fprintf(o, "crlfile %s\n", l->crlfile.v);
	if (l->require_cert.v[0])
		fprintf(o, "require_certificate true\n");
	if (l->identity.v[0] && !strstr(l->identity.where, "subject"))
		fprintf(o, "use_identity_as_username true\n");
	if (l->tls_version.v[0] && l->certfile.v[0])
		fprintf(o, "tls_version %s\n",
			!strcmp(l->tls_version.v, "tlsv1.3") ? "tlsv1.3"
							     : "tlsv1.2");
	if (l->ciphers.v[0] && l->certfile.v[0])
		fprintf(o, "ciphers %s\n", l->ciphers.v);
	if (l->ciphers13.v[0] && l->certfile.v[0])
		fprintf(o, "ciphersuites %s\n", l->ciphers13.v);
}

/* The listener lines' fate, once listeners are decided. */
static void mark_listener_line(struct mg *g, struct mg_line *x)
{
	const struct mg_listener *ml = x->listener >= 0 ? &g->l[x->listener]
							: NULL;
	if (!ml || !ml->carried) {
		set(x, MG_DROPPED, "its listener is not carried over: %s",
		    ml ? ml->why : "no listener");
		return;
	}
	if (!strcmp(x->name, "tls_version") &&
	    strcmp(x->value, "tlsv1.2") && strcmp(x->value, "tlsv1.3")) {
		set(x, MG_CARRIED, "tls_version tlsv1.2 (moatd's oldest)");
		mg_diff(g, "%s: tls_version %s became tlsv1.2: older TLS "
			"versions are refused", x->where, x->value);
	} else if (!strcmp(x->name, "ciphers_tls1.3")) {
		set(x, MG_CARRIED, "ciphersuites");
	} else if (!strcmp(x->name, "protocol")) {
		set(x, MG_CARRIED, "the listener (MQTT)");
	} else if (!strcmp(x->name, "listener") || !strcmp(x->name, "port") ||
		   !strcmp(x->name, "bind_address")) {
		set(x, MG_CARRIED, "listener %d%s", x->listener + 1,
		    ml->rebound ? ", moved to 127.0.0.1" : "");
	} else {
		set(x, MG_CARRIED, "%s (listener %d)", x->name,
		    x->listener + 1);
	}
}

/* ---- security ------------------------------------------------------------ */

static void add_src(const char **v, size_t *n, const char *path)
{
	for (size_t i = 0; i < *n; i++)
		if (!strcmp(v[i], path))
			return;
	v[(*n)++] = path;
}

static void decide_security(struct mg *g)
{
	const struct lint_model *m = g->m;
	bool anon = false, anon_net = false;
	for (size_t i = 0; i < m->nl; i++) {
		const struct lint_listener *l = &m->l[i];
		if (!g->l[i].carried)
			continue;
		const struct lint_sec *s = m->per_listener ? &l->sec
							   : &m->global;
		if (s->password_file.v[0])
			add_src(g->pw_src, &g->npw, s->password_file.v);
		if (s->acl_file.v[0])
			add_src(g->acl_src, &g->nacl, s->acl_file.v);
		if (l->anonymous) {
			anon = true;
			anon_net |= l->network;
		}
	}
	g->anon = anon ? "loopback" : "false";
	if (anon_net)
		mg_diff(g, "anonymous clients were allowed on a network "
			"listener: moatd allows them on loopback listeners "
			"only (allow_anonymous loopback)");
	if (m->per_listener && (g->npw > 1 || g->nacl > 1))
		mg_diff(g, "per_listener_settings true with different files "
			"per listener: moatd has one password file and one "
			"ACL, merged from them, so a user of one listener may "
			"now log in on the others with the same rights");
	if (m->per_listener && anon) {
		for (size_t i = 0; i < m->nl; i++)
			if (g->l[i].carried && !m->l[i].anonymous &&
			    lint_addr_is_loopback(g->l[i].addr))
				mg_diff(g, "listener %zu (loopback) did not "
					"allow anonymous clients; with "
					"allow_anonymous loopback it does",
					i + 1);
	}
}

/* ---- global directives --------------------------------------------------- */

/* mosquitto's persistent_client_expiration: N[h|d|w|m|y] -> seconds. */
static bool expiry_seconds(const char *v, unsigned long long *out)
{
	char *end;
	errno = 0;
	unsigned long long n = strtoull(v, &end, 10);
	unsigned long long unit;
	switch (*end) {
	case 'h': unit = 3600; break;
	case 'd': unit = 86400; break;
	case 'w': unit = 7 * 86400ull; break;
	case 'm': unit = 30 * 86400ull; break;
	case 'y': unit = 365 * 86400ull; break;
	default: return false;
	}
	if (errno || end == v || end[1] || n > 3650ull * 86400ull / unit)
		return false;
	*out = n * unit;
	return true;
}

static int log_rank(const char *t)
{
	static const char *const order[] = {"error", "warning", "notice",
					    "information", "debug"};
	if (!strcmp(t, "all"))
		return 4;
	if (!strcmp(t, "subscribe") || !strcmp(t, "unsubscribe") ||
	    !strcmp(t, "websockets"))
		return 3;
	for (int i = 0; i < 5; i++)
		if (!strcmp(t, order[i]))
			return i;
	return -1;
}

/* Does moatd accept "name value" as a global line?  why on refusal. */
static bool moatd_accepts(const char *name, const char *value, char *why,
			  size_t whysz)
{
	struct moat_config *cfg = malloc(sizeof(*cfg));
	struct moat_cfg_err err;
	char text[LINT_VAL + 128];
	if (!cfg) {
		snprintf(why, whysz, "out of memory");
		return false;
	}
	int n = snprintf(text, sizeof(text), "%s %s\n", name, value);
	moat_cfg_defaults(cfg);
	int rc = moat_cfg_load_string(cfg, "check", text, (size_t)n, &err);
	free(cfg);
	if (rc != MOAT_OK) {
		const char *msg = strstr(err.msg, ": ");
		snprintf(why, whysz, "moatd refuses the value: %.240s",
			 msg ? msg + 2 : err.msg);
		return false;
	}
	return true;
}

/* Write "name value" (last occurrence wins, as in mosquitto). */
static void put_global(FILE *o, struct mg *g, struct mg_line *x,
		       const char *name, const char *value)
{
	char why[300];
	for (size_t k = (size_t)(x - g->v) + 1; k < g->n; k++)
		if (!strcmp(g->v[k].name, x->name) && g->v[k].bridge < 0) {
			set(x, MG_DROPPED, "overridden by %s", g->v[k].where);
			return;
		}
	if (!moatd_accepts(name, value, why, sizeof(why))) {
		set(x, MG_DROPPED, "%s", why);
		return;
	}
	fprintf(o, "# %s\n%s %s\n", x->where, name, value);
	set(x, MG_CARRIED, "%s %s", name, value);
}

static void global_line(FILE *o, struct mg *g, struct mg_line *x,
			const struct mg_map *mp, int *log_level)
{
	unsigned long long secs;
	char buf[64];
	switch (mp->kind) {
	case K_SAME:
		put_global(o, g, x, x->name, x->value);
		break;
	case K_RENAME:
		put_global(o, g, x, mp->to, x->value);
		break;
	case K_ZERO:
		if (strtoll(x->value, NULL, 10) > 0)
			put_global(o, g, x, x->name, x->value);
		else if (mp->to)
			put_global(o, g, x, x->name, mp->to);
		else
			set(x, MG_DROPPED, "0 (no limit) has no moatd "
			    "equivalent: moatd's default applies");
		if (x->status == MG_DROPPED && !mp->to)
			mg_diff(g, "%s: %s %s (no limit) became moatd's "
				"default limit", x->where, x->name, x->value);
		break;
	case K_EXPIRY:
		if (!expiry_seconds(x->value, &secs)) {
			set(x, MG_DROPPED, "not a mosquitto duration");
			break;
		}
		snprintf(buf, sizeof(buf), "%llu", secs);
		put_global(o, g, x, x->name, buf);
		break;
	case K_LOG: {
		int r = log_rank(x->value);
		if (r > *log_level)
			*log_level = r;
		set(x, MG_CARRIED, "log_level (the most verbose log_type)");
		break;
	}
	case K_SECURITY:
		set(x, MG_CARRIED, "%s", !strcmp(x->name, "password_file")
					 ? "password_file passwd"
				 : !strcmp(x->name, "acl_file")
					 ? "acl_file acl"
				 : !strcmp(x->name, "per_listener_settings")
					 ? "one password file and ACL for all "
					   "listeners"
					 : g->anon[0] == 'f'
						   ? "allow_anonymous false"
						   : "allow_anonymous loopback");
		break;
	case K_LISTENER:
		mark_listener_line(g, x);
		break;
	case K_DROP:
		set(x, MG_DROPPED, "%s", mp->to);
		break;
	}
}

/* Directives that belong to the bridge section they follow. */
static bool bridge_directive(const char *name)
{
	static const char *const names[] = {
		"address", "addresses", "topic", "cleansession", "clientid",
		"keepalive_interval", "restart_timeout", "notifications",
		"notification_topic", "notifications_local_only",
		"try_private", "start_type", "threshold", "idle_timeout",
		"round_robin", "username", "password", "connection"};
	if (!strncmp(name, "bridge_", 7) || !strncmp(name, "remote_", 7) ||
	    !strncmp(name, "local_", 6))
		return true;
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (!strcmp(name, names[i]))
			return true;
	return false;
}

static bool is_plugin_option(const char *name)
{
	return !strncmp(name, "auth_opt_", 9) ||
	       !strncmp(name, "plugin_opt_", 11);
}

/* Every line's fate; global values written to o. */
static void translate_lines(FILE *o, struct mg *g)
{
	static const char *const levels[] = {"error", "warning", "notice",
					     "info", "debug"};
	int log_level = -1;
	for (size_t i = 0; i < g->n; i++) {
		struct mg_line *x = &g->v[i];
		const struct mg_map *mp = find_map(x->name);
		if (!x->known)
			set(x, MG_DROPPED, "not a mosquitto directive "
			    "(mosquitto refuses the file)");
		else if (x->bridge >= 0 && bridge_directive(x->name))
			set(x, MG_BRIDGE, "bridge %s",
			    g->m->br[x->bridge >= 0 ? x->bridge : 0].name);
		else if (is_plugin_option(x->name))
			set(x, MG_DROPPED, NO_PLUGINS);
		else if (mp)
			global_line(o, g, x, mp, &log_level);
		else
			set(x, MG_DROPPED, "no moatd equivalent");
		if (x->status == MG_DROPPED &&
		    (strstr(x->value, "dynamic-security") ||
		     strstr(x->value, "dynamic_security") ||
		     strstr(x->value, "dynsec")))
			snprintf(x->note, sizeof(x->note),
				 NO_PLUGINS ": the dynamic-security plugin's "
				 "clients, groups and roles are not converted "
				 "(recreate them with moat passwd and the "
				 "ACL)");
	}
	if (log_level >= 0)
		fprintf(o, "# from log_type\nlog_level %s\n",
			levels[log_level]);
}

/* ---- the configuration text ---------------------------------------------- */

static char *build_conf(struct mg *g, size_t *len)
{
	char *text = NULL;
	FILE *o = open_memstream(&text, len);
	if (!o)
		return NULL;
	fprintf(o, "# moatd.conf written by moatd migrate from %s\n"
		   "# What was carried over, what was not and why: "
		   "MIGRATION.md\n\n", g->src);
	for (size_t i = 0; i < g->n; i++)
		g->v[i].status = MG_PENDING;
	translate_lines(o, g);
	fprintf(o, "\n# Authentication and authorisation\n");
	fprintf(o, "allow_anonymous %s\n", g->anon);
	if (g->npw)
		fprintf(o, "password_file passwd\n");
	if (g->nacl)
		fprintf(o, "acl_file acl\n");
	for (size_t i = 0; i < g->m->nl; i++)
		if (g->l[i].carried)
			put_listener(o, g, i);
	mg_put_bridges(o, g);
	if (fclose(o) != 0) {
		free(text);
		return NULL;
	}
	return text;
}

/* Listeners moatd would refuse (on the network without TLS, an ACL, ...)
 * move to 127.0.0.1, as moat_cfg_finish judges them. */
static int rebind_risky(struct mg *g, const char *text, size_t len)
{
	struct moat_config *cfg = malloc(sizeof(*cfg));
	struct moat_cfg_err err;
	if (!cfg)
		return MOAT_ENOMEM;
	moat_cfg_defaults(cfg);
	if (moat_cfg_load_string(cfg, "moatd.conf", text, len, &err)) {
		free(cfg);
		return MOAT_OK; /* reported by the final check */
	}
	size_t k = 0;
	for (size_t i = 0; i < g->m->nl && k < cfg->nlisteners; i++) {
		if (!g->l[i].carried)
			continue;
		char risks[400];
		moat_cfg_listener_risks(cfg, k++, risks, sizeof(risks));
		if (!risks[0])
			continue;
		g->l[i].rebound = true;
		snprintf(g->l[i].why, sizeof(g->l[i].why), "%s", risks);
		mg_diff(g, "listener %zu (port %u on %s) would be reachable "
			"from the network %s: moved to 127.0.0.1; fix that "
			"and set its address back", i + 1, g->m->l[i].port,
			g->l[i].addr[0] ? g->l[i].addr : "all addresses",
			risks);
		snprintf(g->l[i].addr, sizeof(g->l[i].addr), "127.0.0.1");
	}
	free(cfg);
	return MOAT_OK;
}

/* ---- the command --------------------------------------------------------- */

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: moatd migrate [--force] MOSQUITTO_CONF OUTDIR\n"
		"       moatd migrate --retained FROM_HOST:PORT --to "
		"HOST:PORT [OPTION]...\n"
		"\n"
		"Write a moatd set-up equivalent to a mosquitto one into "
		"OUTDIR (made 0700):\n"
		"moatd.conf, passwd and acl (copied, or merged when "
		"per_listener_settings\n"
		"gives listeners different files), and MIGRATION.md: every "
		"directive carried\n"
		"over, every one that was not and why, the security "
		"differences, and what\n"
		"moatd --check finds in the old and the new configuration. "
		"TLS files are\n"
		"used where they are.\n"
		"\n"
		"  --force   write into an OUTDIR that is not empty "
		"(replacing those files)\n"
		"  -h, --help  this help\n"
		"\n"
		"moatd migrate --retained copies the retained messages of a "
		"running broker\n"
		"into another (moatd migrate --retained --help; "
		"docs/migrate.md).\n"
		"\n"
		"Exit status: 0 written, 1 failed (nothing usable written), "
		"2 usage error.\n");
}

static int prepare_outdir(const char *dir, bool force, char *err,
			  size_t errsz)
{
	struct stat st;
	if (mkdir(dir, 0700) == 0)
		return MOAT_OK;
	if (errno != EEXIST || lstat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
		snprintf(err, errsz, "cannot create %s: %s", dir,
			 errno == EEXIST ? "not a directory" : strerror(errno));
		return MOAT_EIO;
	}
	char probe[LINT_VAL + 32];
	snprintf(probe, sizeof(probe), "%s/moatd.conf", dir);
	if (!force && lstat(probe, &st) == 0) {
		snprintf(err, errsz, "%s already has a moatd.conf (--force "
			 "replaces it)", dir);
		return MOAT_EINVAL;
	}
	return MOAT_OK;
}

static int run(struct mg *g, bool force)
{
	char err[700], *text = NULL, *conf = NULL;
	size_t len = 0, clen = 0;
	int rc = MOAT_EIO;
	if (lint_read_file(g->src, false, &text, &len, err, sizeof(err)))
		goto fail;
	if (!(g->m = lint_model_new(g->src)) ||
	    !(g->diff = open_memstream(&g->diffs, &g->diffs_len))) {
		snprintf(err, sizeof(err), "out of memory");
		goto fail;
	}
	g->m->dialect = MOAT_LINT_MOSQUITTO;
	lint_mosq_parse_visit(g->m, text, len, &g->parse_findings, collect,
			      g);
	decide_listeners(g);
	decide_security(g);
	g->quiet = true;
	conf = build_conf(g, &clen);
	g->quiet = false;
	if (!conf || rebind_risky(g, conf, clen)) {
		snprintf(err, sizeof(err), "out of memory");
		goto fail;
	}
	free(conf);
	if (!(conf = build_conf(g, &clen))) {
		snprintf(err, sizeof(err), "out of memory");
		goto fail;
	}
	fflush(g->diff);
	if (prepare_outdir(g->outdir, force, err, sizeof(err)) ||
	    mg_write_auth(g, err, sizeof(err)) ||
	    mg_write_file(g, "moatd.conf", conf, clen, err, sizeof(err)) ||
	    mg_write_report(g, "moatd.conf", err, sizeof(err)))
		goto fail;
	rc = MOAT_OK;
	goto out;
fail:
	fprintf(stderr, "moatd migrate: %s\n", err);
out:
	free(conf);
	moat_free(text);
	return rc;
}

int moatd_migrate_main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"force", no_argument, 0, 'f'},
		{"help", no_argument, 0, 'h'},
		{0, 0, 0, 0},
	};
	bool force = false;
	int opt;
	for (int i = 1; i < argc; i++)
		if (!strcmp(argv[i], "--retained"))
			return mg_retained_main(argc, argv);
	optind = 1;
	while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (opt) {
		case 'f': force = true; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (argc - optind != 2) {
		usage(stderr);
		return 2;
	}
	struct mg g;
	memset(&g, 0, sizeof(g));
	g.src = argv[optind];
	g.outdir = argv[optind + 1];
	moat_findings_init(&g.parse_findings);
	int rc = run(&g, force);
	if (g.diff)
		fclose(g.diff);
	free(g.diffs);
	free(g.v);
	lint_model_free(g.m);
	moat_findings_free(&g.parse_findings);
	return rc == MOAT_OK ? 0 : 1;
}
