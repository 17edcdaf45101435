/* The catalogue of security findings, shared by `moatd --check` (config
 * lint) and `moat audit` (probes of a running broker), and the list of
 * findings one run produces, with its text and JSON output.
 *
 * Ids come from THREATS.md section 9 (AUD-<area>-<nn>); docs/
 * security-checks.md documents every row.  An id is never renumbered,
 * reused or given another meaning: scripts filter on them. */
#ifndef MOAT_CHECK_FINDINGS_H
#define MOAT_CHECK_FINDINGS_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

enum moat_severity {
	MOAT_SEV_INFO = 0,
	MOAT_SEV_LOW = 1,
	MOAT_SEV_MEDIUM = 2,
	MOAT_SEV_HIGH = 3,
	MOAT_SEV_CRITICAL = 4,
};
#define MOAT_SEV_COUNT 5

struct moat_finding_def {
	const char *id;         /* "AUD-MQ-01" */
	enum moat_severity sev; /* usual severity; some checks adjust it for
				 * a particular case (documented per id) */
	const char *title;      /* one line */
	const char *why;        /* what the problem lets an attacker do */
	const char *fix;        /* the remediation */
};

/* The entry for id, or NULL. */
const struct moat_finding_def *moat_finding_lookup(const char *id);
/* The whole table (static storage), *n entries. */
const struct moat_finding_def *moat_finding_table(size_t *n);
/* "info", "low", "medium", "high", "critical". */
const char *moat_severity_name(enum moat_severity sev);
/* The same in capitals, for text reports. */
const char *moat_severity_label(enum moat_severity sev);

/* ---- a list of findings -------------------------------------------------- */

#define MOAT_FINDING_EVIDENCE_MAX 640
/* Bound on one report: a hostile file cannot make us allocate without
 * limit; the rest is counted in `dropped`. */
#define MOAT_FINDINGS_MAX 500

struct moat_finding {
	const struct moat_finding_def *def;
	enum moat_severity sev; /* def->sev unless the check adjusted it */
	size_t seq;             /* order found, to keep sorting stable */
	/* What was found and where.  Printable ASCII only: everything that
	 * came from a file was escaped (\xNN) when the finding was added. */
	char evidence[MOAT_FINDING_EVIDENCE_MAX];
};

struct moat_findings {
	struct moat_finding *v;
	size_t n, cap;
	size_t dropped; /* beyond MOAT_FINDINGS_MAX */
	bool oom;       /* an add failed for lack of memory */
};

void moat_findings_init(struct moat_findings *f);
void moat_findings_free(struct moat_findings *f);
/* Add a finding of catalogue id at its usual severity.  The evidence is
 * formatted, then control characters, non-ASCII bytes and backslashes
 * are escaped, so callers may pass text read from files.  A finding
 * equal to one already present (id and evidence) is not added again.
 * An unknown id is a programming error (assert; ignored in release). */
void moat_findings_add(struct moat_findings *f, const char *id,
		       const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* The same at severity sev. */
void moat_findings_add_sev(struct moat_findings *f, const char *id,
			   enum moat_severity sev, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
void moat_findings_addv(struct moat_findings *f, const char *id,
			enum moat_severity sev, const char *fmt, va_list ap)
	__attribute__((format(printf, 4, 0)));
/* Move every finding of src to the end of dst (src is left empty). */
void moat_findings_move(struct moat_findings *dst, struct moat_findings *src);
/* Does any finding have this id? */
bool moat_findings_has(const struct moat_findings *f, const char *id);
/* Most severe first; equal severities in the order found. */
void moat_findings_sort(struct moat_findings *f);
size_t moat_findings_count(const struct moat_findings *f,
			   enum moat_severity sev);
/* The highest severity present; false when the list is empty. */
bool moat_findings_max(const struct moat_findings *f,
		       enum moat_severity *out);

/* ---- output (report.c) -----------------------------------------------------
 * Text: one block per finding,
 *     HIGH      AUD-MQ-01  <title>
 *       what: <evidence>
 *       fix:  <remediation>
 * JSON: an array of {"id","severity","title","evidence","remediation"}.
 * These field names are the interface of `moatd --check --format json`
 * and `moat audit --json`; keep them. */
void moat_findings_print_text(FILE *out, const struct moat_findings *f);
/* "N findings: a critical, b high, c medium, d low, e info\n" */
void moat_findings_print_summary(FILE *out, const struct moat_findings *f);
void moat_findings_print_json_array(FILE *out, const struct moat_findings *f);
/* {"critical":a,"high":b,"medium":c,"low":d,"info":e} */
void moat_findings_print_json_summary(FILE *out,
				      const struct moat_findings *f);
/* s as a JSON string literal, quotes included; bytes that are not
 * printable ASCII are written as \u00XX. */
void moat_json_print_string(FILE *out, const char *s);

#endif
