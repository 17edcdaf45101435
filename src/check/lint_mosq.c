/* mosquitto.conf -> lint model.  A tolerant reader of mosquitto 2.x
 * syntax (mosquitto.conf(5)): it models what matters for security,
 * knows every other directive by name, and reports what mosquitto would
 * refuse (unknown directive, bad boolean or number) without stopping.
 *
 * Semantics followed: options apply to the latest `listener`; listener
 * options before any listener (and `port`, `bind_address`) configure the
 * default listener on all addresses; security options are global unless
 * per_listener_settings is true; with no listener at all mosquitto
 * listens on loopback only and allows anonymous clients; otherwise
 * allow_anonymous defaults to false.  include_dir files are read in name
 * order, each starting with no current listener, as mosquitto does. */
#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "check/lint_int.h"
#include "common/moat_common.h"

#define MQ_MAX_INCLUDES 256

/* Limits are collected by name; lint_mosq_parse adds the defaults of
 * those never set once the whole file has been read. */
static const char *const limit_names[] = {
	"max_packet_size", "max_keepalive", "max_queued_bytes",
	"max_queued_messages", "memory_limit"};
#define MQ_NLIMITS MOAT_ARRAY_LEN(limit_names)

struct mq_limit {
	long long v;
	char where[LINT_WHERE]; /* "" = not set */
};

struct mq_parse {
	struct lint_model *m;
	struct mq_limit limits[MQ_NLIMITS];
	struct moat_findings *f;
	const char *file; /* base name of the file being read */
	int level;        /* 0 = main file, 1 = from include_dir */
	struct lint_listener *cur, *def;
	struct lint_bridge *br;
	char where[LINT_WHERE]; /* of the current line */
	bool sec_seen;          /* a security option was set globally */
	bool local_only;
	/* Options of listeners beyond LINT_MAX_LISTENERS land here, not on
	 * a listener they do not belong to. */
	struct lint_listener overflow;
	lint_mosq_visit_fn visit; /* lint_mosq_parse_visit */
	void *visit_arg;
};

struct mq_dir;
typedef void (*mq_fn)(struct mq_parse *p, const struct mq_dir *d, char *val);

struct mq_dir {
	const char *name;
	mq_fn fn;   /* NULL: known, nothing to model */
	size_t off; /* for the generic setters */
};

static void bad(struct mq_parse *p, const char *name, const char *why)
{
	moat_findings_add(p->f, "AUD-CFG-03",
			  "%s: %s: %s; mosquitto refuses it", p->where, name,
			  why);
}

/* mosquitto accepts exactly true, false, 1 and 0. */
static int mq_bool(struct mq_parse *p, const struct mq_dir *d,
		   const char *val)
{
	char w[16];
	size_t n = strcspn(val, " \t");
	if (n < sizeof(w)) {
		memcpy(w, val, n);
		w[n] = '\0';
		if (!strcmp(w, "true") || !strcmp(w, "1"))
			return 1;
		if (!strcmp(w, "false") || !strcmp(w, "0"))
			return 0;
	}
	bad(p, d->name, "expected true, false, 1 or 0");
	return -1;
}

/* A decimal (or 0x) integer, first word of val; false after reporting. */
static bool mq_int(struct mq_parse *p, const char *name, const char *val,
		   long long *out)
{
	/* Read as mosquitto does (atoi): base 10, leading zeros allowed,
	 * anything after the digits ignored -- or "listener 01883" would be
	 * missed while mosquitto listens on 1883. */
	char *end;
	errno = 0;
	long long v = strtoll(val, &end, 10);
	if (end == val || errno) {
		bad(p, name, "value is not a number");
		return false;
	}
	*out = v;
	return true;
}

/* ---- listeners ----------------------------------------------------------- */

static struct lint_listener *new_listener(struct mq_parse *p)
{
	struct lint_model *m = p->m;
	if (m->nl == LINT_MAX_LISTENERS) {
		m->nl_dropped++;
		memset(&p->overflow, 0, sizeof(p->overflow));
		return &p->overflow;
	}
	struct lint_listener *l = &m->l[m->nl++];
	memset(l, 0, sizeof(*l));
	l->sec.anon = -1;
	l->port = 1883;
	snprintf(l->where, sizeof(l->where), "%s", p->where);
	return l;
}

/* The listener a listener option applies to (creating the default). */
static struct lint_listener *cur_listener(struct mq_parse *p)
{
	if (p->cur)
		return p->cur;
	if (!p->def)
		p->def = new_listener(p);
	return p->cur = p->def;
}

static void do_listener(struct mq_parse *p, const struct mq_dir *d,
			char *val)
{
	long long port;
	if (!mq_int(p, d->name, val, &port))
		return;
	char *addr = val + strcspn(val, " \t");
	addr += strspn(addr, " \t");
	addr[strcspn(addr, " \t")] = '\0';
	if (addr[0] == '#')
		addr[0] = '\0';
	if (port < 0 || port > 65535 || (port == 0 && !addr[0])) {
		bad(p, d->name,
		    "invalid port (1-65535, or 0 with a socket path)");
		return;
	}
	p->local_only = false;
	struct lint_listener *l = new_listener(p);
	p->cur = l;
	if (!l)
		return;
	l->port = (unsigned)port;
	l->unix_socket = port == 0; /* then addr is the socket's path */
	snprintf(l->addr, sizeof(l->addr), "%s", addr);
}

static void do_port(struct mq_parse *p, const struct mq_dir *d, char *val)
{
	long long port;
	if (!mq_int(p, d->name, val, &port))
		return;
	if (port < 1 || port > 65535) {
		bad(p, d->name, "invalid port");
		return;
	}
	p->local_only = false;
	p->cur = NULL;
	struct lint_listener *l = cur_listener(p);
	if (l) {
		l->port = (unsigned)port;
		snprintf(l->where, sizeof(l->where), "%s", p->where);
	}
}

static void do_bind_address(struct mq_parse *p, const struct mq_dir *d,
			    char *val)
{
	(void)d;
	p->local_only = false;
	p->cur = NULL;
	struct lint_listener *l = cur_listener(p);
	if (l)
		snprintf(l->addr, sizeof(l->addr), "%s", val);
}

static void do_bind_interface(struct mq_parse *p, const struct mq_dir *d,
			      char *val)
{
	(void)d;
	struct lint_listener *l = cur_listener(p);
	if (l)
		l->loopback_iface = !strcmp(val, "lo");
}

static void do_protocol(struct mq_parse *p, const struct mq_dir *d,
			char *val)
{
	struct lint_listener *l = cur_listener(p);
	val[strcspn(val, " \t")] = '\0';
	if (strcmp(val, "mqtt") && strcmp(val, "websockets") &&
	    strcmp(val, "http_api"))
		bad(p, d->name, "expected mqtt or websockets");
	else if (l)
		l->websockets = !strcmp(val, "websockets");
}

static void do_ws_origin(struct mq_parse *p, const struct mq_dir *d,
			 char *val)
{
	(void)d;
	(void)val;
	struct lint_listener *l = cur_listener(p);
	if (l)
		l->ws_origin = true;
}

/* A listener string option stored at d->off in struct lint_listener;
 * file names are resolved like moatd's, from the config's directory. */
static void do_lstr(struct mq_parse *p, const struct mq_dir *d, char *val)
{
	struct lint_listener *l = cur_listener(p);
	if (!l)
		return;
	struct lint_str *s = (struct lint_str *)(void *)((char *)l + d->off);
	char path[LINT_VAL];
	bool is_file = strstr(d->name, "file") || !strcmp(d->name, "capath");
	if (is_file)
		lint_resolve(p->m, val, path, sizeof(path));
	lint_str_set(s, is_file ? path : val, p->where);
}

/* require_certificate, use_identity_as_username, use_subject_as_... */
static void do_lbool(struct mq_parse *p, const struct mq_dir *d, char *val)
{
	int b = mq_bool(p, d, val);
	struct lint_listener *l = cur_listener(p);
	if (b < 0 || !l)
		return;
	struct lint_str *s = (struct lint_str *)(void *)((char *)l + d->off);
	if (b)
		lint_str_set(s, "true", p->where);
	else
		s->v[0] = '\0';
}

static void do_psk_hint(struct mq_parse *p, const struct mq_dir *d,
			char *val)
{
	(void)d;
	(void)val;
	struct lint_listener *l = cur_listener(p);
	if (l)
		l->psk = true;
}

/* ---- security options (global, or per listener) -------------------------- */

static struct lint_sec *cur_sec(struct mq_parse *p)
{
	if (!p->m->per_listener) {
		p->sec_seen = true;
		return &p->m->global;
	}
	struct lint_listener *l = cur_listener(p);
	return l ? &l->sec : NULL;
}

static void set_anon(struct mq_parse *p, struct lint_sec *s, int b)
{
	if (!s || b < 0)
		return;
	s->anon = b;
	snprintf(s->anon_where, sizeof(s->anon_where), "%s", p->where);
}

static void do_anon(struct mq_parse *p, const struct mq_dir *d, char *val)
{
	set_anon(p, cur_sec(p), mq_bool(p, d, val));
}

static void do_listener_anon(struct mq_parse *p, const struct mq_dir *d,
			     char *val)
{
	struct lint_listener *l = cur_listener(p);
	set_anon(p, l ? &l->sec : NULL, mq_bool(p, d, val));
}

static void do_sec_file(struct mq_parse *p, const struct mq_dir *d,
			char *val)
{
	struct lint_sec *s = cur_sec(p);
	char path[LINT_VAL];
	if (!s)
		return;
	lint_resolve(p->m, val, path, sizeof(path));
	lint_str_set((struct lint_str *)(void *)((char *)s + d->off), path,
		     p->where);
}

static void do_plugin(struct mq_parse *p, const struct mq_dir *d, char *val)
{
	(void)val;
	struct lint_sec *s = strcmp(d->name, "global_plugin") ? cur_sec(p)
							       : &p->m->global;
	if (s && !s->plugin[0])
		snprintf(s->plugin, sizeof(s->plugin), "%s", p->where);
}

static void do_per_listener(struct mq_parse *p, const struct mq_dir *d,
			    char *val)
{
	int b = mq_bool(p, d, val);
	if (b == 1 && !p->m->per_listener && p->sec_seen)
		bad(p, d->name,
		    "must come before any other security setting");
	if (b == 1)
		p->m->per_listener = true; /* once set, never unset */
}

/* ---- global values ------------------------------------------------------- */

static void do_sys(struct mq_parse *p, const struct mq_dir *d, char *val)
{
	long long v;
	if (!mq_int(p, d->name, val, &v))
		return;
	if (v < 0 || v > 65535) {
		bad(p, d->name, "out of range (0-65535)");
		return;
	}
	p->m->sys_interval = (uint64_t)v;
	snprintf(p->m->sys_where, sizeof(p->m->sys_where), "%s", p->where);
}

static void do_limit(struct mq_parse *p, const struct mq_dir *d, char *val)
{
	long long v;
	if (!mq_int(p, d->name, val, &v))
		return;
	for (size_t i = 0; i < MQ_NLIMITS; i++)
		if (!strcmp(limit_names[i], d->name)) {
			p->limits[i].v = v < 0 ? 0 : v;
			snprintf(p->limits[i].where,
				 sizeof(p->limits[i].where), "%s", p->where);
		}
}

static void do_user(struct mq_parse *p, const struct mq_dir *d, char *val)
{
	(void)d;
	lint_str_set(&p->m->user, val, p->where);
}

static void do_log_type(struct mq_parse *p, const struct mq_dir *d,
			char *val)
{
	(void)d;
	val[strcspn(val, " \t")] = '\0';
	if (!strcmp(val, "debug") || !strcmp(val, "all"))
		snprintf(p->m->log_debug, sizeof(p->m->log_debug), "%s",
			 p->where);
	else if (!strcmp(val, "none"))
		p->m->log_debug[0] = '\0';
}

static void do_log_dest(struct mq_parse *p, const struct mq_dir *d,
			char *val)
{
	(void)d;
	val[strcspn(val, " \t")] = '\0';
	if (!strcmp(val, "topic"))
		snprintf(p->m->log_topic, sizeof(p->m->log_topic), "%s",
			 p->where);
	else if (!strcmp(val, "none"))
		p->m->log_topic[0] = '\0';
}

static void do_persistence(struct mq_parse *p, const struct mq_dir *d,
			   char *val)
{
	int b = mq_bool(p, d, val);
	if (b >= 0)
		lint_str_set(&p->m->persistence, b ? "true" : "", p->where);
}

static void do_gstr(struct mq_parse *p, const struct mq_dir *d, char *val)
{
	struct lint_str *s =
		(struct lint_str *)(void *)((char *)p->m + d->off);
	char path[LINT_VAL];
	lint_resolve(p->m, val, path, sizeof(path));
	/* persistence_file is a name inside persistence_location. */
	lint_str_set(s, strcmp(d->name, "persistence_file") ? path : val,
		     p->where);
}

/* ---- bridges ------------------------------------------------------------- */

static void do_connection(struct mq_parse *p, const struct mq_dir *d,
			  char *val)
{
	(void)d;
	struct lint_model *m = p->m;
	if (m->nbr == LINT_MAX_BRIDGES) {
		p->br = NULL;
		return;
	}
	p->br = &m->br[m->nbr++];
	val[strcspn(val, " \t")] = '\0';
	snprintf(p->br->name, sizeof(p->br->name), "%s", val);
	snprintf(p->br->where, sizeof(p->br->where), "%s", p->where);
}

static void do_bridge_tls(struct mq_parse *p, const struct mq_dir *d,
			  char *val)
{
	bool on = true;
	if (!strcmp(d->name, "bridge_tls_use_os_certs"))
		on = mq_bool(p, d, val) == 1;
	if (p->br && on)
		p->br->tls = true;
	if (!strcmp(d->name, "bridge_psk"))
		snprintf(p->m->secret_in_config,
			 sizeof(p->m->secret_in_config), "%s", p->where);
}

static void do_bridge_str(struct mq_parse *p, const struct mq_dir *d,
			  char *val)
{
	if (!p->br)
		return;
	struct lint_str *s =
		(struct lint_str *)(void *)((char *)p->br + d->off);
	char path[LINT_VAL];
	bool is_file = strstr(d->name, "file") != NULL;
	if (is_file)
		lint_resolve(p->m, val, path, sizeof(path));
	lint_str_set(s, is_file ? path : val, p->where);
}

static void do_bridge_insecure(struct mq_parse *p, const struct mq_dir *d,
			       char *val)
{
	int b = mq_bool(p, d, val);
	if (p->br && b >= 0)
		lint_str_set(&p->br->insecure, b ? "true" : "", p->where);
}

static void do_secret(struct mq_parse *p, const struct mq_dir *d, char *val)
{
	(void)d;
	(void)val;
	snprintf(p->m->secret_in_config, sizeof(p->m->secret_in_config),
		 "%s", p->where);
}

static void parse_text(struct mq_parse *p, char *text, size_t len);
static void do_include_dir(struct mq_parse *p, const struct mq_dir *d,
			   char *val);

#define LOFF(f) offsetof(struct lint_listener, f)
#define SOFF(f) offsetof(struct lint_sec, f)
#define MOFF(f) offsetof(struct lint_model, f)
#define BOFF(f) offsetof(struct lint_bridge, f)

/* Every directive of mosquitto 1.6 to 2.1 (src/conf.c). */
static const struct mq_dir mq_dirs[] = {
	{"accept_protocol_versions", NULL, 0},
	{"acl_file", do_sec_file, SOFF(acl_file)},
	{"address", NULL, 0},
	{"addresses", NULL, 0},
	{"allow_anonymous", do_anon, 0},
	{"allow_duplicate_messages", NULL, 0},
	{"allow_zero_length_clientid", NULL, 0},
	{"auth_plugin", do_plugin, 0},
	{"auth_plugin_deny_special_chars", NULL, 0},
	{"auto_id_prefix", NULL, 0},
	{"autosave_interval", NULL, 0},
	{"autosave_on_changes", NULL, 0},
	{"bind_address", do_bind_address, 0},
	{"bind_interface", do_bind_interface, 0},
	{"bridge_alpn", NULL, 0},
	{"bridge_attempt_unsubscribe", NULL, 0},
	{"bridge_bind_address", NULL, 0},
	{"bridge_cafile", do_bridge_tls, 0},
	{"bridge_capath", do_bridge_tls, 0},
	{"bridge_certfile", NULL, 0},
	{"bridge_ciphers", do_bridge_str, BOFF(ciphers)},
	{"bridge_ciphers_tls1.3", NULL, 0},
	{"bridge_identity", do_bridge_tls, 0},
	{"bridge_insecure", do_bridge_insecure, 0},
	{"bridge_keyfile", do_bridge_str, BOFF(keyfile)},
	{"bridge_max_packet_size", NULL, 0},
	{"bridge_max_topic_alias", NULL, 0},
	{"bridge_outgoing_retain", NULL, 0},
	{"bridge_protocol_version", NULL, 0},
	{"bridge_psk", do_bridge_tls, 0},
	{"bridge_receive_maximum", NULL, 0},
	{"bridge_reload_type", NULL, 0},
	{"bridge_require_ocsp", NULL, 0},
	{"bridge_session_expiry_interval", NULL, 0},
	{"bridge_tcp_keepalive", NULL, 0},
	{"bridge_tcp_user_timeout", NULL, 0},
	{"bridge_tls_use_os_certs", do_bridge_tls, 0},
	{"bridge_tls_version", do_bridge_str, BOFF(tls_version)},
	{"cafile", do_lstr, LOFF(cafile)},
	{"capath", do_lstr, LOFF(capath)},
	{"certfile", do_lstr, LOFF(certfile)},
	{"check_retain_source", NULL, 0},
	{"ciphers", do_lstr, LOFF(ciphers)},
	{"ciphers_tls1.3", do_lstr, LOFF(ciphers13)},
	{"cleansession", NULL, 0},
	{"clientid", NULL, 0},
	{"clientid_prefixes", NULL, 0},
	{"connection", do_connection, 0},
	{"connection_messages", NULL, 0},
	{"crlfile", do_lstr, LOFF(crlfile)},
	{"dhparamfile", NULL, 0},
	{"disable_client_cert_date_checks", NULL, 0},
	{"enable_control_api", NULL, 0},
	{"enable_proxy_protocol", NULL, 0},
	{"global_max_clients", NULL, 0},
	{"global_max_connections", NULL, 0},
	{"global_plugin", do_plugin, 0},
	{"http_dir", NULL, 0},
	{"idle_timeout", NULL, 0},
	{"include_dir", do_include_dir, 0},
	{"keepalive_interval", NULL, 0},
	{"keyfile", do_lstr, LOFF(keyfile)},
	{"listener", do_listener, 0},
	{"listener_allow_anonymous", do_listener_anon, 0},
	{"listener_auto_id_prefix", NULL, 0},
	{"local_cleansession", NULL, 0},
	{"local_clientid", NULL, 0},
	{"local_password", do_secret, 0},
	{"local_username", NULL, 0},
	{"log_dest", do_log_dest, 0},
	{"log_facility", NULL, 0},
	{"log_timestamp", NULL, 0},
	{"log_timestamp_format", NULL, 0},
	{"log_type", do_log_type, 0},
	{"max_connections", NULL, 0},
	{"max_inflight_bytes", NULL, 0},
	{"max_inflight_messages", NULL, 0},
	{"max_keepalive", do_limit, 0},
	{"max_packet_size", do_limit, 0},
	{"max_qos", NULL, 0},
	{"max_queued_bytes", do_limit, 0},
	{"max_queued_messages", do_limit, 0},
	{"max_topic_alias", NULL, 0},
	{"max_topic_alias_broker", NULL, 0},
	{"maximum_qos", NULL, 0},
	{"memory_limit", do_limit, 0},
	{"message_size_limit", NULL, 0},
	{"mount_point", NULL, 0},
	{"notification_topic", NULL, 0},
	{"notifications", NULL, 0},
	{"notifications_local_only", NULL, 0},
	{"packet_buffer_size", NULL, 0},
	{"password", do_secret, 0},
	{"password_file", do_sec_file, SOFF(password_file)},
	{"per_listener_settings", do_per_listener, 0},
	{"persistence", do_persistence, 0},
	{"persistence_file", do_gstr, MOFF(persist_file)},
	{"persistence_location", do_gstr, MOFF(persist_location)},
	{"persistent_client_expiration", NULL, 0},
	{"pid_file", NULL, 0},
	{"plugin", do_plugin, 0},
	{"plugin_load", do_plugin, 0},
	{"plugin_use", do_plugin, 0},
	{"port", do_port, 0},
	{"protocol", do_protocol, 0},
	{"proxy_protocol_v2_require_tls", NULL, 0},
	{"psk_file", do_sec_file, SOFF(psk_file)},
	{"psk_hint", do_psk_hint, 0},
	{"queue_qos0_messages", NULL, 0},
	{"remote_clientid", NULL, 0},
	{"remote_password", do_secret, 0},
	{"remote_username", NULL, 0},
	{"require_certificate", do_lbool, LOFF(require_cert)},
	{"restart_timeout", NULL, 0},
	{"retain_available", NULL, 0},
	{"retain_expiry_interval", NULL, 0},
	{"retained_persistence", do_persistence, 0},
	{"retry_interval", NULL, 0},
	{"round_robin", NULL, 0},
	{"set_tcp_nodelay", NULL, 0},
	{"socket_domain", NULL, 0},
	{"start_type", NULL, 0},
	{"store_clean_interval", NULL, 0},
	{"sys_interval", do_sys, 0},
	{"threshold", NULL, 0},
	{"tls_engine", NULL, 0},
	{"tls_engine_kpass_sha1", NULL, 0},
	{"tls_keyform", NULL, 0},
	{"tls_version", do_lstr, LOFF(tls_version)},
	{"topic", NULL, 0},
	{"try_private", NULL, 0},
	{"upgrade_outgoing_qos", NULL, 0},
	{"use_identity_as_username", do_lbool, LOFF(identity)},
	{"use_subject_as_username", do_lbool, LOFF(identity)},
	{"use_username_as_clientid", NULL, 0},
	{"user", do_user, 0},
	{"username", NULL, 0},
	{"websockets_headers_size", NULL, 0},
	{"websockets_log_level", NULL, 0},
	{"websockets_origin", do_ws_origin, 0},
};

static const struct mq_dir *find_dir(const char *name)
{
	for (size_t i = 0; i < MOAT_ARRAY_LEN(mq_dirs); i++)
		if (!strcmp(mq_dirs[i].name, name))
			return &mq_dirs[i];
	return NULL;
}

/* Plugin options are free-form: auth_opt_NAME, plugin_opt_NAME. */
static bool plugin_option(const char *name)
{
	return !strncmp(name, "auth_opt_", 9) ||
	       !strncmp(name, "plugin_opt_", 11);
}

bool lint_mosq_knows(const char *name)
{
	return find_dir(name) || plugin_option(name);
}

/* ---- lines and files ----------------------------------------------------- */

/* Tell lint_mosq_parse_visit's caller about a line. */
static void visit(struct mq_parse *p, const char *name, const char *val,
		  bool known)
{
	if (!p->visit)
		return;
	struct lint_model *m = p->m;
	struct lint_mosq_line l = {
		.where = p->where, .name = name, .value = val, .known = known,
		.listener = p->cur && p->cur != &p->overflow
				    ? (int)(p->cur - m->l) : -1,
		.bridge = p->br ? (int)(p->br - m->br) : -1,
	};
	p->visit(p->visit_arg, &l);
}

static bool mq_line(void *arg, char *line, size_t lineno)
{
	struct mq_parse *p = arg;
	/* mosquitto only knows '#' in column 1; indented comments are
	 * accepted here too, rather than reported as unknown '#'. */
	line += strspn(line, " \t");
	if (!*line || *line == '#')
		return true;
	lint_where(p->where, sizeof(p->where), p->file, lineno);
	char *val = line + strcspn(line, " \t");
	if (*val)
		*val++ = '\0';
	val += strspn(val, " \t");
	size_t n = strlen(val);
	while (n && (val[n - 1] == ' ' || val[n - 1] == '\t'))
		val[--n] = '\0';
	const struct mq_dir *d = find_dir(line);
	char copy[LINT_VAL];
	snprintf(copy, sizeof(copy), "%s", val); /* handlers cut val */
	bool include = d && d->fn == do_include_dir;
	if (include)
		visit(p, line, copy, true);
	if (!d && !plugin_option(line)) {
		moat_findings_add(p->f, "AUD-CFG-03",
				  "%s: unknown directive '%s'; mosquitto "
				  "refuses the file",
				  p->where, line);
		visit(p, line, copy, false);
		return true;
	}
	if (d && d->fn && !*val)
		bad(p, d->name, "no value");
	else if (d && d->fn)
		d->fn(p, d, val);
	if (!include) {
		lint_where(p->where, sizeof(p->where), p->file, lineno);
		visit(p, line, copy, true);
	}
	return true;
}

static void parse_text(struct mq_parse *p, char *text, size_t len)
{
	lint_each_line(text, len, mq_line, p);
}

static int conf_only(const struct dirent *e)
{
	size_t n = strlen(e->d_name);
	return e->d_name[0] != '.' && n > 5 &&
	       !strcmp(e->d_name + n - 5, ".conf");
}

static void include_file(struct mq_parse *p, const char *dir,
			 const char *name)
{
	char path[LINT_VAL + 256], err[600];
	char *text;
	size_t len;
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	if (lint_read_file(path, false, &text, &len, err, sizeof(err))) {
		bad(p, "include_dir", err);
		return;
	}
	struct mq_parse saved = *p;
	p->file = name;
	p->level = 1;
	p->cur = NULL; /* each file starts with no current listener */
	p->br = NULL;
	parse_text(p, text, len);
	moat_free(text);
	p->file = saved.file;
	p->level = 0;
	p->cur = saved.cur;
	p->br = saved.br;
	snprintf(p->where, sizeof(p->where), "%s", saved.where);
}

static void do_include_dir(struct mq_parse *p, const struct mq_dir *d,
			   char *val)
{
	char dir[LINT_VAL];
	struct dirent **list = NULL;
	if (p->level) {
		bad(p, d->name, "only allowed in the main configuration file");
		return;
	}
	lint_resolve(p->m, val, dir, sizeof(dir));
	int n = scandir(dir, &list, conf_only, alphasort);
	if (n < 0) {
		char why[LINT_VAL + 64];
		snprintf(why, sizeof(why), "cannot read %s: %s", dir,
			 strerror(errno));
		bad(p, d->name, why);
		return;
	}
	for (int i = 0; i < n; i++) {
		if (i < MQ_MAX_INCLUDES)
			include_file(p, dir, list[i]->d_name);
		free(list[i]); /* scandir allocates with malloc */
	}
	free(list);
}

/* ---- the effective picture ----------------------------------------------- */

#define MIB (1024ull * 1024ull)

/* Unset limits get mosquitto 2.0's defaults: no packet, byte or memory
 * limit, keep-alive up to 65535 s, 1000 queued messages. */
static void add_limits(struct lint_model *m, const struct mq_limit *ls)
{
	static const struct {
		long long def;
		bool bytes;
		uint64_t safe;
		enum moat_severity sev;
	} spec[] = {
		{0, true, 16 * MIB, MOAT_SEV_MEDIUM}, /* max_packet_size */
		{65535, false, 300, MOAT_SEV_LOW},    /* max_keepalive */
		{0, true, 256 * MIB, MOAT_SEV_LOW},   /* max_queued_bytes */
		{1000, false, 100000, MOAT_SEV_LOW},  /* max_queued_messages */
		{0, true, UINT64_MAX, MOAT_SEV_LOW},  /* memory_limit */
	};
	for (size_t i = 0; i < MOAT_ARRAY_LEN(spec); i++) {
		const struct mq_limit *l = &ls[i];
		long long v = l->where[0] ? l->v : spec[i].def;
		lint_limit_add(m, limit_names[i], (uint64_t)v, v == 0,
			       spec[i].bytes, l->where, spec[i].safe,
			       spec[i].sev);
	}
}

static void effective_listener(struct lint_model *m, struct lint_listener *l)
{
	const struct lint_sec *s = m->per_listener ? &l->sec : &m->global;
	int anon = s->anon >= 0 ? s->anon : m->local_only;
	bool cert_user = l->identity.v[0] && l->require_cert.v[0];
	l->network = !l->unix_socket && !l->loopback_iface &&
		     !lint_addr_is_loopback(l->addr);
	l->tls = l->certfile.v[0] || l->psk;
	l->anonymous = anon == 1 && !cert_user;
	l->plugin = s->plugin[0] || m->global.plugin[0];
	l->acl = s->acl_file.v[0] ? &s->acl_file : NULL;
	l->password_file = s->password_file.v[0] ? &s->password_file : NULL;
	l->anon_where = s->anon_where;
}

/* With no listener mosquitto 2 listens on 127.0.0.1 and ::1, port 1883,
 * and lets anonymous clients in. */
static void local_only_listener(struct lint_model *m)
{
	struct lint_listener *l = &m->l[m->nl++];
	memset(l, 0, sizeof(*l));
	snprintf(l->addr, sizeof(l->addr), "127.0.0.1");
	l->port = 1883;
	l->sec.anon = -1;
}

void lint_mosq_parse(struct lint_model *m, char *text, size_t len,
		     struct moat_findings *f)
{
	lint_mosq_parse_visit(m, text, len, f, NULL, NULL);
}

void lint_mosq_parse_visit(struct lint_model *m, char *text, size_t len,
			   struct moat_findings *f, lint_mosq_visit_fn fn,
			   void *arg)
{
	struct mq_parse *p = moat_calloc(1, sizeof(*p));
	if (!p) {
		f->oom = true;
		return;
	}
	p->visit = fn;
	p->visit_arg = arg;
	p->m = m;
	p->f = f;
	p->file = m->name;
	p->local_only = true;
	m->sys_interval = 10; /* mosquitto's default */
	parse_text(p, text, len);
	m->local_only = p->local_only;
	if (!m->nl)
		local_only_listener(m);
	for (size_t i = 0; i < m->nl; i++)
		effective_listener(m, &m->l[i]);
	add_limits(m, p->limits);
	moat_free(p);
}
