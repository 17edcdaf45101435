/* Configuration lint: reads a moatd.conf or a mosquitto.conf, and the
 * files it names (password, ACL, key, certificate, persistence), and
 * reports security findings from the shared catalogue (findings.h).
 *
 * Both dialects are read into one model (listeners with address, TLS,
 * anonymous access, ACL; $SYS; limits; run-as user; bridges) and one rule
 * set runs on it.  The linter only reads: it prints nothing, writes
 * nothing and changes no file, so `moatd --check` and `moat audit
 * --config` share it. */
#ifndef MOAT_CHECK_LINT_H
#define MOAT_CHECK_LINT_H

#include "check/findings.h"

enum moat_lint_dialect {
	MOAT_LINT_AUTO = 0, /* decide from the file (see moat_lint_file) */
	MOAT_LINT_MOATD = 1,
	MOAT_LINT_MOSQUITTO = 2,
};

struct moat_lint_report {
	enum moat_lint_dialect dialect; /* the one used */
	struct moat_findings findings;  /* sorted, most severe first */
	char error[512];                /* why the file was not linted */
};

/* Lint the configuration file at path.
 *
 * With MOAT_LINT_AUTO the dialect is mosquitto when the file name
 * contains "mosquitto"; otherwise moatd when moatd reads every line; else
 * whichever dialect knows more of the file's directives (ties: moatd).
 *
 * Returns MOAT_OK with out->findings filled (possibly empty), MOAT_EIO
 * when path cannot be read as a regular file (out->error says why), or
 * MOAT_ENOMEM.  Release out with moat_lint_report_free in every case. */
int moat_lint_file(const char *path, enum moat_lint_dialect dialect,
		   struct moat_lint_report *out);
void moat_lint_report_free(struct moat_lint_report *r);
/* "moatd", "mosquitto" or "auto". */
const char *moat_lint_dialect_name(enum moat_lint_dialect d);

#endif
