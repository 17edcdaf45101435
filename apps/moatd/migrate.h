/* moatd migrate: a mosquitto set-up carried over to moatd
 * (docs/migrate.md).  migrate.c reads and decides, migrate_out.c writes
 * the files and the report, migrate_retained.c copies retained
 * messages between two running brokers. */
#ifndef MOATD_MIGRATE_H
#define MOATD_MIGRATE_H

#include <stdbool.h>
#include <stdio.h>

#include "check/lint_int.h"

#define MG_MAX_LINES 20000

enum mg_status { MG_PENDING, MG_CARRIED, MG_DROPPED, MG_BRIDGE };

/* A directive line of the mosquitto configuration and what became of it. */
struct mg_line {
	char where[LINT_WHERE];
	char name[64];
	char value[LINT_VAL];
	int listener, bridge; /* as lint_mosq_line */
	bool known;
	enum mg_status status;
	char note[320]; /* carried: as what; dropped: why */
};

struct mg_listener {
	bool carried;
	bool rebound; /* moved to 127.0.0.1 (moatd would refuse it) */
	char addr[LINT_VAL];
	char why[400]; /* dropped or rebound: why */
};

struct mg {
	const char *src, *outdir;
	struct lint_model *m;
	struct moat_findings parse_findings;
	struct mg_line *v;
	size_t n, cap;
	size_t lines_dropped; /* beyond MG_MAX_LINES */
	struct mg_listener l[LINT_MAX_LISTENERS];
	/* Security, decided once for the whole broker. */
	const char *pw_src[LINT_MAX_LISTENERS + 1];
	size_t npw;
	const char *acl_src[LINT_MAX_LISTENERS + 1];
	size_t nacl;
	const char *anon; /* "false" or "loopback" */
	/* Security differences found while translating (text lines). */
	char *diffs;
	size_t diffs_len;
	FILE *diff;
	bool quiet; /* a trial translation: no differences recorded */
};

/* migrate_out.c */
/* Record a security difference (a line of the report). */
void mg_diff(struct mg *g, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Write OUTDIR/passwd and OUTDIR/acl from the sources (merged when there
 * are several), 0600.  MOAT_OK or an error message in err. */
int mg_write_auth(struct mg *g, char *err, size_t errsz);
/* Write text to OUTDIR/name, 0600, replacing nothing unless force. */
int mg_write_file(const struct mg *g, const char *name, const char *text,
		  size_t len, char *err, size_t errsz);
/* OUTDIR/MIGRATION.md: the lines, the listeners, the security
 * differences and what moatd --check finds in the old and new files. */
int mg_write_report(struct mg *g, const char *newconf, char *err,
		    size_t errsz);

/* migrate_bridge.c: the bridge lines (status MG_BRIDGE from
 * translate_lines) as connection sections into o, each line's fate set
 * (MG_BRIDGE carried, MG_DROPPED with why); the remote passwords into
 * OUTDIR/bridge-NAME.pw (0600); a user block per bridge granting its
 * topics, for an ACL. */
void mg_put_bridges(FILE *o, struct mg *g);
int mg_write_bridge_secrets(const struct mg *g, char *err, size_t errsz);
void mg_bridge_acl(FILE *t, const struct mg *g);

/* migrate_retained.c: moatd migrate --retained ... */
int mg_retained_main(int argc, char **argv);

#endif
