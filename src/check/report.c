/* Text and JSON output of a finding list (moatd --check, moat audit). */
#include <stdio.h>

#include "check/findings.h"

void moat_json_print_string(FILE *out, const char *s)
{
	fputc('"', out);
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (*p == '"' || *p == '\\')
			fprintf(out, "\\%c", *p);
		else if (*p == '\n')
			fputs("\\n", out);
		else if (*p < 0x20 || *p >= 0x7f)
			/* Non-ASCII would need valid UTF-8 to be valid JSON;
			 * writing each byte as a code point keeps it parseable
			 * whatever came in. */
			fprintf(out, "\\u%04x", *p);
		else
			fputc(*p, out);
	}
	fputc('"', out);
}

void moat_findings_print_text(FILE *out, const struct moat_findings *f)
{
	for (size_t i = 0; i < f->n; i++) {
		const struct moat_finding *x = &f->v[i];
		fprintf(out, "%-8s  %-10s  %s\n", moat_severity_label(x->sev),
			x->def->id, x->def->title);
		fprintf(out, "  what: %s\n", x->evidence);
		fprintf(out, "  fix:  %s\n\n", x->def->fix);
	}
	if (f->dropped)
		fprintf(out, "(%zu more findings not shown)\n\n", f->dropped);
}

void moat_findings_print_summary(FILE *out, const struct moat_findings *f)
{
	fprintf(out,
		"%zu finding%s: %zu critical, %zu high, %zu medium, %zu low, "
		"%zu info\n",
		f->n, f->n == 1 ? "" : "s",
		moat_findings_count(f, MOAT_SEV_CRITICAL),
		moat_findings_count(f, MOAT_SEV_HIGH),
		moat_findings_count(f, MOAT_SEV_MEDIUM),
		moat_findings_count(f, MOAT_SEV_LOW),
		moat_findings_count(f, MOAT_SEV_INFO));
}

static void print_field(FILE *out, const char *name, const char *value,
			bool last)
{
	fprintf(out, "\"%s\": ", name);
	moat_json_print_string(out, value);
	fputs(last ? "" : ", ", out);
}

void moat_findings_print_json_array(FILE *out, const struct moat_findings *f)
{
	fputc('[', out);
	for (size_t i = 0; i < f->n; i++) {
		const struct moat_finding *x = &f->v[i];
		fputs(i ? ",\n    {" : "\n    {", out);
		print_field(out, "id", x->def->id, false);
		print_field(out, "severity", moat_severity_name(x->sev), false);
		print_field(out, "title", x->def->title, false);
		print_field(out, "evidence", x->evidence, false);
		print_field(out, "remediation", x->def->fix, true);
		fputc('}', out);
	}
	fputs(f->n ? "\n  ]" : "]", out);
}

void moat_findings_print_json_summary(FILE *out,
				      const struct moat_findings *f)
{
	fputc('{', out);
	for (int s = MOAT_SEV_CRITICAL; s >= MOAT_SEV_INFO; s--)
		fprintf(out, "\"%s\": %zu%s",
			moat_severity_name((enum moat_severity)s),
			moat_findings_count(f, (enum moat_severity)s),
			s > MOAT_SEV_INFO ? ", " : "");
	fputc('}', out);
}
