/* moat audit: the report.  Text for a terminal (severity, what was seen,
 * why it matters, how to fix), JSON (one object per target with the
 * findings catalogue's field names) and SARIF 2.1.0 (one run; every
 * catalogue id is a rule; each finding a result located at its target).
 * Everything printed from the network or a file was escaped when the
 * finding or note was recorded. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "audit.h"

#define WRAP 78

/* ---- recording notes, failures and progress ----------------------------- */

void audit_note(struct audit_target *t, const char *fmt, ...)
{
	char raw[AUDIT_NOTE_LEN];
	va_list ap;
	if (t->notes.n == AUDIT_MAX_NOTES)
		return;
	va_start(ap, fmt);
	vsnprintf(raw, sizeof(raw), fmt, ap);
	va_end(ap);
	moat_log_escape((const uint8_t *)raw, strlen(raw),
			t->notes.v[t->notes.n++], AUDIT_NOTE_LEN);
}

void audit_fail(struct audit_target *t, const char *fmt, ...)
{
	char raw[AUDIT_ERR_LEN];
	va_list ap;
	if (t->error[0])
		return;
	va_start(ap, fmt);
	vsnprintf(raw, sizeof(raw), fmt, ap);
	va_end(ap);
	moat_log_escape((const uint8_t *)raw, strlen(raw), t->error,
			sizeof(t->error));
}

void audit_progress(const struct audit_ctx *x, const char *fmt, ...)
{
	if (!x->run->o->progress)
		return;
	char line[400];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	fprintf(stderr, "moat audit: %s: %s\n", x->t->spec, line);
}

static const char *status_of(const struct audit_target *t)
{
	if (t->incomplete)
		return "incomplete";
	return t->error[0] ? "error" : "audited";
}

/* ---- text --------------------------------------------------------------- */

/* Print text wrapped at WRAP columns, each line after the first indented
 * by indent spaces (the first continues the current line at col). */
static void print_wrapped(FILE *out, const char *text, size_t col,
			  size_t indent)
{
	const char *p = text;
	while (*p) {
		size_t room = col < WRAP ? WRAP - col : 20;
		size_t n = strlen(p);
		if (n > room) {
			size_t cut = room;
			while (cut > 0 && p[cut] != ' ')
				cut--;
			if (cut == 0) /* one long word: break it */
				cut = room;
			n = cut;
		}
		fprintf(out, "%.*s\n", (int)n, p);
		p += n;
		while (*p == ' ')
			p++;
		if (*p)
			fprintf(out, "%*s", (int)indent, "");
		col = indent;
	}
	if (!*text)
		fputc('\n', out);
}

/* why and fix are printed with the first finding of an id only. */
static void text_finding(FILE *out, const struct moat_findings *f, size_t i)
{
	const struct moat_finding *x = &f->v[i];
	bool again = false;
	for (size_t k = 0; k < i && !again; k++)
		again = f->v[k].def == x->def;
	fprintf(out, "  %-8s  %-10s  ", moat_severity_label(x->sev),
		x->def->id);
	print_wrapped(out, x->def->title, 24, 24);
	fputs("    seen: ", out);
	print_wrapped(out, x->evidence, 10, 10);
	if (again) {
		fputs("    (why and fix: as above)\n\n", out);
		return;
	}
	fputs("    why:  ", out);
	print_wrapped(out, x->def->why, 10, 10);
	fputs("    fix:  ", out);
	print_wrapped(out, x->def->fix, 10, 10);
	fputc('\n', out);
}

static void text_target(FILE *out, const struct audit_target *t)
{
	fprintf(out, "== %s ==\n", t->spec);
	if (t->error[0]) {
		fputs(t->incomplete ? "INCOMPLETE: " : "ERROR: ", out);
		print_wrapped(out, t->error, 7, 2);
	}
	if (t->findings.n)
		fputc('\n', out);
	for (size_t i = 0; i < t->findings.n; i++)
		text_finding(out, &t->findings, i);
	if (t->notes.n) {
		fputs(t->findings.n ? "  notes:\n" : "\n  notes:\n", out);
		for (size_t i = 0; i < t->notes.n; i++) {
			fputs("    - ", out);
			print_wrapped(out, t->notes.v[i], 6, 6);
		}
	}
	if (!t->error[0] || t->findings.n) {
		fputs(t->notes.n ? "\n  " : "  ", out);
		moat_findings_print_summary(out, &t->findings);
	}
	fputc('\n', out);
}

/* Datagrams and bytes sent to every CoAP target; false when none. */
static bool coap_totals(const struct audit_target *t, size_t n, size_t *dg,
			size_t *bytes)
{
	bool any = false;
	*dg = *bytes = 0;
	for (size_t i = 0; i < n; i++)
		if (audit_is_coap(&t[i])) {
			any = true;
			*dg += t[i].dg_sent;
			*bytes += t[i].bytes_sent;
		}
	return any;
}

static void print_text(FILE *out, const struct audit_opts *o,
		       const struct audit_target *t, size_t n)
{
	size_t dg, bytes;
	size_t errors = 0;
	fprintf(out, "moat audit %s: %zu target%s (exit status 1 for "
		     "findings at or above %s)\n\n",
		MOAT_VERSION, n, n == 1 ? "" : "s",
		moat_severity_name(o->fail_on));
	for (size_t i = 0; i < n; i++) {
		text_target(out, &t[i]);
		errors += t[i].error[0] != '\0';
	}
	if (n > 1 && errors)
		fprintf(out, "%zu of %zu targets could not be fully audited.\n",
			errors, n);
	if (coap_totals(t, n, &dg, &bytes))
		fprintf(out, "CoAP: the audit sent %zu datagram%s (%zu bytes) in "
			     "all.\n", dg, dg == 1 ? "" : "s", bytes);
}

/* ---- JSON --------------------------------------------------------------- */

static void json_target(FILE *out, const struct audit_target *t, bool last)
{
	fputs("    {\"target\": ", out);
	moat_json_print_string(out, t->spec);
	fputs(", \"status\": ", out);
	moat_json_print_string(out, status_of(t));
	fputs(", \"error\": ", out);
	if (t->error[0])
		moat_json_print_string(out, t->error);
	else
		fputs("null", out);
	fputs(",\n     \"summary\": ", out);
	moat_findings_print_json_summary(out, &t->findings);
	if (audit_is_coap(t))
		fprintf(out, ",\n     \"traffic\": {\"datagrams_sent\": %zu, "
			     "\"bytes_sent\": %zu, \"datagrams_received\": %zu, "
			     "\"bytes_received\": %zu}",
			t->dg_sent, t->bytes_sent, t->dg_recv, t->bytes_recv);
	fputs(",\n     \"findings\": ", out);
	moat_findings_print_json_array(out, &t->findings);
	fputs(",\n     \"notes\": [", out);
	for (size_t i = 0; i < t->notes.n; i++) {
		fputs(i ? ", " : "", out);
		moat_json_print_string(out, t->notes.v[i]);
	}
	fprintf(out, "]}%s\n", last ? "" : ",");
}

static void print_json(FILE *out, const struct audit_opts *o,
		       const struct audit_target *t, size_t n)
{
	fprintf(out, "{\n  \"tool\": \"moat audit\",\n  \"version\": \"%s\",\n"
		     "  \"fail_on\": \"%s\",\n  \"targets\": [\n",
		MOAT_VERSION, moat_severity_name(o->fail_on));
	for (size_t i = 0; i < n; i++)
		json_target(out, &t[i], i + 1 == n);
	fputs("  ]\n}\n", out);
}

/* ---- SARIF 2.1.0 ---------------------------------------------------- */

static const char *sarif_level(enum moat_severity s)
{
	if (s >= MOAT_SEV_HIGH)
		return "error";
	return s == MOAT_SEV_MEDIUM ? "warning" : "note";
}

/* GitHub code scanning reads this property (0.0 - 10.0). */
static const char *security_severity(enum moat_severity s)
{
	static const char *const v[MOAT_SEV_COUNT] = {"0.0", "3.0", "5.5",
						      "8.0", "9.5"};
	return (unsigned)s < MOAT_SEV_COUNT ? v[s] : "0.0";
}

/* A target as a URI: mqtt:// targets are URIs already; a configuration
 * file becomes a relative reference (or file:// when absolute), with
 * everything but unreserved characters and '/' percent-encoded. */
static void print_uri(FILE *out, const char *s)
{
	bool url = !strncmp(s, "mqtt://", 7) || !strncmp(s, "mqtts://", 8) ||
		   !strncmp(s, "coap://", 7) || !strncmp(s, "coaps://", 8);
	fputc('"', out);
	if (!url && s[0] == '/')
		fputs("file://", out);
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		bool plain = (*p >= 'a' && *p <= 'z') ||
			     (*p >= 'A' && *p <= 'Z') ||
			     (*p >= '0' && *p <= '9') ||
			     strchr("-._~/", *p) ||
			     (url && strchr(":[]", *p));
		if (plain)
			fputc(*p, out);
		else
			fprintf(out, "%%%02X", *p);
	}
	fputc('"', out);
}

static void sarif_rules(FILE *out)
{
	size_t n;
	const struct moat_finding_def *d = moat_finding_table(&n);
	fputs("          \"rules\": [", out);
	for (size_t i = 0; i < n; i++) {
		fputs(i ? ",\n            {" : "\n            {", out);
		fputs("\"id\": ", out);
		moat_json_print_string(out, d[i].id);
		fputs(", \"shortDescription\": {\"text\": ", out);
		moat_json_print_string(out, d[i].title);
		fputs("}, \"fullDescription\": {\"text\": ", out);
		moat_json_print_string(out, d[i].why);
		fputs("}, \"help\": {\"text\": ", out);
		moat_json_print_string(out, d[i].fix);
		fprintf(out,
			"}, \"defaultConfiguration\": {\"level\": \"%s\"}, "
			"\"properties\": {\"security-severity\": \"%s\", "
			"\"tags\": [\"security\"]}}",
			sarif_level(d[i].sev), security_severity(d[i].sev));
	}
	fputs("\n          ]", out);
}

static size_t rule_index(const struct moat_finding_def *def)
{
	size_t n;
	const struct moat_finding_def *d = moat_finding_table(&n);
	return (size_t)(def - d);
}

static void sarif_result(FILE *out, const struct audit_target *t,
			 const struct moat_finding *x, bool first)
{
	fputs(first ? "\n        {" : ",\n        {", out);
	fputs("\"ruleId\": ", out);
	moat_json_print_string(out, x->def->id);
	fprintf(out, ", \"ruleIndex\": %zu, \"level\": \"%s\", ",
		rule_index(x->def), sarif_level(x->sev));
	fputs("\"message\": {\"text\": ", out);
	moat_json_print_string(out, x->evidence);
	fputs("}, \"locations\": [{\"physicalLocation\": "
	      "{\"artifactLocation\": {\"uri\": ", out);
	print_uri(out, t->spec);
	fprintf(out, "}}}], \"properties\": {\"severity\": \"%s\", "
		     "\"security-severity\": \"%s\"}}",
		moat_severity_name(x->sev), security_severity(x->sev));
}

static void sarif_invocation(FILE *out, const struct audit_target *t,
			     size_t n)
{
	bool ok = true, first = true;
	for (size_t i = 0; i < n; i++)
		ok = ok && !t[i].error[0];
	size_t dg, bytes;
	fprintf(out, "      \"invocations\": [{\"executionSuccessful\": %s, ",
		ok ? "true" : "false");
	if (coap_totals(t, n, &dg, &bytes))
		fprintf(out, "\"properties\": {\"coap_datagrams_sent\": %zu, "
			     "\"coap_bytes_sent\": %zu}, ", dg, bytes);
	fputs("\"toolExecutionNotifications\": [", out);
	for (size_t i = 0; i < n; i++) {
		if (!t[i].error[0])
			continue;
		fputs(first ? "\n        {" : ",\n        {", out);
		first = false;
		fputs("\"level\": \"error\", \"message\": {\"text\": ", out);
		char msg[AUDIT_ERR_LEN + 320];
		snprintf(msg, sizeof(msg), "%s: %s", t[i].spec, t[i].error);
		moat_json_print_string(out, msg);
		fputs("}, \"locations\": [{\"physicalLocation\": "
		      "{\"artifactLocation\": {\"uri\": ", out);
		print_uri(out, t[i].spec);
		fputs("}}}]}", out);
	}
	fputs(first ? "]}],\n" : "\n      ]}],\n", out);
}

static void print_sarif(FILE *out, const struct audit_target *t, size_t n)
{
	fputs("{\n  \"$schema\": "
	      "\"https://json.schemastore.org/sarif-2.1.0.json\",\n"
	      "  \"version\": \"2.1.0\",\n  \"runs\": [\n    {\n"
	      "      \"tool\": {\n        \"driver\": {\n"
	      "          \"name\": \"moat audit\",\n",
	      out);
	fprintf(out, "          \"version\": \"%s\",\n", MOAT_VERSION);
	sarif_rules(out);
	fputs("\n        }\n      },\n", out);
	sarif_invocation(out, t, n);
	fputs("      \"results\": [", out);
	bool first = true;
	for (size_t i = 0; i < n; i++)
		for (size_t k = 0; k < t[i].findings.n; k++) {
			sarif_result(out, &t[i], &t[i].findings.v[k], first);
			first = false;
		}
	fputs(first ? "]\n" : "\n      ]\n", out);
	fputs("    }\n  ]\n}\n", out);
}

void audit_report(FILE *out, const struct audit_opts *o,
		  struct audit_target *t, size_t n)
{
	switch (o->format) {
	case AUDIT_JSON:
		print_json(out, o, t, n);
		break;
	case AUDIT_SARIF:
		print_sarif(out, t, n);
		break;
	case AUDIT_TEXT:
		print_text(out, o, t, n);
		break;
	}
}
