/* Internal to the linter: the dialect-neutral model of a broker
 * configuration that the rules run on.
 *
 *   lint.c        entry point, reading the file, choosing the dialect
 *   lint_moatd.c  moatd.conf   -> model (+ checks only moatd has)
 *   lint_mosq.c   mosquitto.conf -> model
 *   lint_files.c  the files the configuration names (perms, ACL, hashes,
 *                 certificate)
 *   lint_rules.c  the rules shared by both dialects */
#ifndef MOAT_CHECK_LINT_INT_H
#define MOAT_CHECK_LINT_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "check/lint.h"

#define LINT_VAL 512   /* longest value kept (paths, cipher lists) */
#define LINT_WHERE 192 /* "file:line" */
#define LINT_MAX_LISTENERS 64
#define LINT_MAX_BRIDGES 32
#define LINT_MAX_LIMITS 16
#define LINT_MAX_ACLS 16
#define LINT_MAX_FILE (4u * 1024u * 1024u) /* config, ACL, password files */

/* A value and the place that set it; v[0] == '\0' means unset. */
struct lint_str {
	char v[LINT_VAL];
	char where[LINT_WHERE];
};

/* Security settings: global, or per listener with mosquitto's
 * per_listener_settings true. */
struct lint_sec {
	int anon; /* allow_anonymous: -1 not set, 0 false, 1 true */
	char anon_where[LINT_WHERE];
	struct lint_str password_file, acl_file, psk_file;
	char plugin[LINT_WHERE]; /* where a plugin was loaded; "" = none */
};

struct lint_listener {
	char where[LINT_WHERE]; /* its listener line; "" = implicit */
	char addr[LINT_VAL];    /* "" = all addresses */
	unsigned port;
	bool unix_socket;    /* mosquitto "listener 0 /path" */
	bool loopback_iface; /* bind_interface lo */
	bool websockets, ws_origin;
	bool coap; /* moatd protocol coap/coaps (UDP; AUD-CO-*) */
	struct lint_str certfile, keyfile, cafile, capath, crlfile;
	struct lint_str tls_version, ciphers, ciphers13;
	bool psk; /* TLS-PSK (psk_hint) counts as TLS */
	struct lint_str require_cert; /* v "true" when required */
	struct lint_str identity;     /* use_identity/subject_as_username */
	struct lint_sec sec;          /* per_listener_settings true */

	/* The effective picture, filled by the dialect before the rules. */
	bool network;   /* reachable from other hosts */
	bool tls;       /* TLS or TLS-PSK on */
	bool anonymous; /* accepts clients without credentials */
	bool plugin;    /* a plugin decides authentication/authorisation */
	const struct lint_str *acl;           /* NULL: no acl_file */
	const struct lint_str *password_file; /* NULL: none */
	const char *anon_where; /* allow_anonymous's line, "" = default */
};

struct lint_bridge {
	char name[128];
	char where[LINT_WHERE]; /* its connection line */
	bool tls;               /* a CA, OS CAs or a PSK configured */
	struct lint_str insecure; /* bridge_insecure true */
	struct lint_str tls_version, ciphers, keyfile;
};

/* moatd cluster mode: the NATS connection's settings (lint_cluster.c). */
struct lint_cluster {
	struct lint_str url; /* cluster_nats_url; "" = cluster mode off */
	struct lint_str cafile, certfile, keyfile, creds, user, password_file;
};

/* A resource limit and where its value came from. */
struct lint_limit {
	const char *name;
	uint64_t value;
	bool unlimited;     /* value means "no limit" */
	bool bytes;         /* print as a size */
	char where[LINT_WHERE]; /* "" = the dialect's default */
	uint64_t safe_max;  /* above this is a finding */
	enum moat_severity sev;
};

/* What the scan of one ACL file found (lint_files.c). */
struct lint_acl_info {
	const char *path; /* in the model */
	bool readable;
	size_t rules; /* topic and pattern lines */
	/* "file:line" of the first such grant, "" = none */
	char wild_anon[LINT_WHERE], wild_pattern[LINT_WHERE];
	char sys_anon[LINT_WHERE], sys_pattern[LINT_WHERE];
};

struct lint_model {
	enum moat_lint_dialect dialect;
	const char *path; /* the configuration file, as given */
	char name[256];   /* its base name, for "name:line" */
	struct lint_listener *l; /* LINT_MAX_LISTENERS entries */
	size_t nl;
	size_t nl_dropped; /* listeners beyond LINT_MAX_LISTENERS */
	struct lint_sec global;
	bool per_listener; /* mosquitto per_listener_settings */
	bool local_only;   /* mosquitto: no listener, port or bind_address */
	uint64_t sys_interval; /* 0 = $SYS off */
	char sys_where[LINT_WHERE];
	struct lint_limit lim[LINT_MAX_LIMITS];
	size_t nlim;
	struct lint_str user;        /* mosquitto run-as user */
	char log_debug[LINT_WHERE];  /* where debug logging is on */
	char log_topic[LINT_WHERE];  /* mosquitto log_dest topic */
	struct lint_str persistence; /* v "true" when on */
	struct lint_str persist_location, persist_file;
	struct lint_bridge *br; /* LINT_MAX_BRIDGES entries */
	size_t nbr;
	char secret_in_config[LINT_WHERE]; /* e.g. a bridge password */
	struct lint_acl_info acl[LINT_MAX_ACLS];
	size_t nacl;
	struct lint_cluster cluster; /* moatd only */
};

/* An empty model of the configuration at path (borrowed); NULL when out
 * of memory.  Free with lint_model_free. */
struct lint_model *lint_model_new(const char *path);
void lint_model_free(struct lint_model *m);
/* "name:line" into buf. */
void lint_where(char *buf, size_t bufsz, const char *name, size_t line);
/* Set s to val (truncated to LINT_VAL) with where. */
void lint_str_set(struct lint_str *s, const char *val, const char *where);
/* "listener 1883 on all addresses" and the like, for evidence. */
const char *lint_listener_desc(const struct lint_listener *l, char *buf,
			       size_t bufsz);
/* Loopback address or name ("127.x", "::1", "localhost")? */
bool lint_addr_is_loopback(const char *addr);
/* Resolve a path from the configuration relative to its directory. */
void lint_resolve(const struct lint_model *m, const char *val, char *out,
		  size_t outsz);
/* Append a limit to the model (ignored when the table is full). */
void lint_limit_add(struct lint_model *m, const char *name, uint64_t value,
		    bool unlimited, bool bytes, const char *where,
		    uint64_t safe_max, enum moat_severity sev);

/* Each line of text[0..len), NUL-terminated, without "\r\n"; text is
 * modified in place.  fn returns false to stop. */
typedef bool (*lint_line_fn)(void *arg, char *line, size_t lineno);
void lint_each_line(char *text, size_t len, lint_line_fn fn, void *arg);

/* Does the directive name belong to the moatd / mosquitto dialect? */
bool lint_moatd_knows(const char *name);
bool lint_mosq_knows(const char *name);

/* moatd: parse text (per line, continuing after errors, which become
 * AUD-CFG-03 in errs) into a model.  *nerr = lines moatd would refuse.
 * Then lint_moatd_finish adds the effective picture and the checks that
 * only moatd has (refusal at start, interlock, limits).  The state is
 * opaque and freed by lint_moatd_free. */
struct lint_moatd;
int lint_moatd_parse(struct lint_model *m, const char *text, size_t len,
		     struct moat_findings *errs, size_t *nerr,
		     struct lint_moatd **out);
void lint_moatd_finish(struct lint_model *m, struct lint_moatd *st,
		       struct moat_findings *f);
void lint_moatd_free(struct lint_moatd *st);

/* mosquitto: parse text (and include_dir files) into the model. */
void lint_mosq_parse(struct lint_model *m, char *text, size_t len,
		     struct moat_findings *f);

/* One directive line as lint_mosq_parse_visit read it. */
struct lint_mosq_line {
	const char *where;  /* "file:line" (include_dir files by name) */
	const char *name;   /* the directive */
	const char *value;  /* its value, as written (trimmed) */
	bool known;         /* a mosquitto directive (or plugin option) */
	int listener;       /* index into m->l it applied to; -1 none */
	int bridge;         /* index into m->br of the open connection; -1 */
};
typedef void (*lint_mosq_visit_fn)(void *arg, const struct lint_mosq_line *l);
/* lint_mosq_parse, and fn(arg, line) for every directive line read
 * (include_dir's line before its files' lines), once the model has taken
 * it: moatd migrate carries the configuration over line by line. */
void lint_mosq_parse_visit(struct lint_model *m, char *text, size_t len,
			   struct moat_findings *f, lint_mosq_visit_fn fn,
			   void *arg);

/* Read a whole regular file (at most LINT_MAX_FILE bytes) without
 * following a final symbolic link when nofollow.  MOAT_OK or an error
 * with err set. */
int lint_read_file(const char *path, bool nofollow, char **out, size_t *len,
		   char *err, size_t errsz);

/* The files the configuration names (lint_files.c). */
void lint_check_files(struct lint_model *m, struct moat_findings *f);
/* The scan result for an ACL path, or NULL. */
const struct lint_acl_info *lint_acl_find(const struct lint_model *m,
					  const char *path);

/* moatd's cluster settings: AUD-CL-* (lint_cluster.c).  Run while the
 * model is built (it may note a secret in the configuration). */
void lint_cluster_rules(struct lint_model *m, struct moat_findings *f);

/* The shared rules (lint_rules.c). */
void lint_run_rules(const struct lint_model *m, struct moat_findings *f);

#endif
