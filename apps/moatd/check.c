/* moatd --check -c FILE [--format text|json]: the command's output. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "check/lint.h"
#include "common/moat_common.h"

static void print_text(const char *file, const struct moat_lint_report *r)
{
	char esc[600];
	moat_log_escape((const uint8_t *)file, strlen(file), esc, sizeof(esc));
	printf("%s: %s configuration\n\n", esc,
	       moat_lint_dialect_name(r->dialect));
	moat_findings_print_text(stdout, &r->findings);
	moat_findings_print_summary(stdout, &r->findings);
}

static void print_json(FILE *out, const char *file,
		       const struct moat_lint_report *r)
{
	fputs("{\n  \"file\": ", out);
	moat_json_print_string(out, file);
	fputs(",\n  \"dialect\": ", out);
	moat_json_print_string(out, moat_lint_dialect_name(r->dialect));
	fputs(",\n  \"summary\": ", out);
	moat_findings_print_json_summary(out, &r->findings);
	fputs(",\n  \"findings\": ", out);
	moat_findings_print_json_array(out, &r->findings);
	fputs("\n}\n", out);
}

int moatd_check_json(const char *file, char **json, size_t *len)
{
	struct moat_lint_report r;
	char *buf = NULL;
	size_t n = 0;
	int rc = moat_lint_file(file, MOAT_LINT_AUTO, &r);
	FILE *f = rc == MOAT_OK ? open_memstream(&buf, &n) : NULL;
	if (f) {
		print_json(f, file, &r);
		rc = fclose(f) == 0 && buf ? MOAT_OK : MOAT_ENOMEM;
	} else if (rc == MOAT_OK) {
		rc = MOAT_ENOMEM;
	}
	moat_lint_report_free(&r);
	/* Handed over in moatd's allocator (open_memstream used malloc). */
	*json = rc == MOAT_OK ? moat_strndup(buf, n) : NULL;
	*len = n;
	free(buf);
	return *json ? MOAT_OK : rc == MOAT_OK ? MOAT_ENOMEM : rc;
}

int moatd_check(const char *file, const char *format)
{
	struct moat_lint_report r;
	bool json = format && !strcmp(format, "json");
	if (format && !json && strcmp(format, "text")) {
		fprintf(stderr, "moatd: --format must be text or json\n");
		return 2;
	}
	if (!file) {
		fprintf(stderr, "moatd: --check needs -c FILE\n");
		return 2;
	}
	if (moat_lint_file(file, MOAT_LINT_AUTO, &r) != MOAT_OK) {
		char esc[600];
		moat_log_escape((const uint8_t *)r.error, strlen(r.error), esc,
				sizeof(esc));
		fprintf(stderr, "moatd: %s\n", esc);
		moat_lint_report_free(&r);
		return 2;
	}
	if (json)
		print_json(stdout, file, &r);
	else
		print_text(file, &r);
	enum moat_severity worst;
	int rc = moat_findings_max(&r.findings, &worst) &&
				 worst >= MOAT_SEV_HIGH
			 ? 1
			 : 0;
	moat_lint_report_free(&r);
	if (fflush(stdout) != 0) {
		fprintf(stderr, "moatd: cannot write the report\n");
		return 2;
	}
	return rc;
}
