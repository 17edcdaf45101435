/* The option engine of every moat command (cli_opt.h). */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "cli_opt.h"
#include "common/moat_common.h"

#define WIDTH 79

int cli_opt_vusage(const char *cmd, const char *fmt, va_list ap)
{
	fprintf(stderr, "moat %s: ", cmd);
	vfprintf(stderr, fmt, ap);
	fprintf(stderr, "\nTry 'moat %s --help' for more information.\n", cmd);
	return CLI_EXIT_USAGE;
}

int cli_opt_usage(const char *cmd, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int rc = cli_opt_vusage(cmd, fmt, ap);
	va_end(ap);
	return rc;
}

int cli_opt_long(const char *cmd, const char *as, const char *v, long min,
		 long max, long *out)
{
	char *end;
	errno = 0;
	long x = strtol(v, &end, 10);
	if (errno || end == v || *end || x < min || x > max)
		return cli_opt_usage(cmd, "option '%s' needs a number from %ld "
					  "to %ld, not '%s'", as, min, max, v);
	*out = x;
	return CLI_CONTINUE;
}

static int parse_double(const struct cli_cmd *c, const struct cli_opt *o,
			const char *as, const char *v, double *out)
{
	char *end;
	errno = 0;
	double x = strtod(v, &end);
	if (errno || end == v || *end || !isfinite(x) || x < o->min ||
	    x > o->max)
		return cli_opt_usage(c->name, "option '%s' needs a number from "
					      "%g to %g, not '%s'",
				     as, o->min, o->max, v);
	*out = x;
	return CLI_CONTINUE;
}

static bool applies(const struct cli_cmd *c, const struct cli_opt *o)
{
	return !o->variants || (o->variants & c->variant);
}

/* The option argument a names; *value is the text after '=' of
 * "--name=value".  NULL when there is none. */
static const struct cli_opt *find(const struct cli_cmd *c, char *a,
				  char **value)
{
	*value = NULL;
	bool is_long = a[1] == '-';
	size_t n = 0;
	if (is_long) {
		a += 2;
		char *eq = strchr(a, '=');
		n = eq ? (size_t)(eq - a) : strlen(a);
		if (eq)
			*value = eq + 1;
	} else if (a[2]) {
		return NULL; /* a bundle: see bundle() */
	}
	for (size_t i = 0; i < c->nopts; i++) {
		const struct cli_opt *o = &c->opts[i];
		if (!applies(c, o))
			continue;
		if (is_long ? o->long_name && strlen(o->long_name) == n &&
				      strncmp(o->long_name, a, n) == 0
			    : o->short_name == a[1])
			return o;
	}
	return NULL;
}

static int apply(const struct cli_cmd *c, const struct cli_opt *o, char *v,
		 struct cli_pos *p)
{
	void *field = (char *)c->cfg + o->offset;
	switch (o->kind) {
	case CLI_OPT_FLAG:
		*(bool *)field = true;
		return CLI_CONTINUE;
	case CLI_OPT_STR:
		*(const char **)field = v;
		return CLI_CONTINUE;
	case CLI_OPT_LONG:
		return cli_opt_long(c->name, p->as, v, (long)o->min,
				    (long)o->max, field);
	case CLI_OPT_DOUBLE:
		return parse_double(c, o, p->as, v, field);
	case CLI_OPT_SECRET: {
		char **s = field;
		if (*s) {
			explicit_bzero(*s, strlen(*s));
			moat_free(*s);
		}
		*s = moat_strdup(v);
		memset(v, '*', strlen(v));
		if (!*s)
			return cli_opt_usage(c->name, "out of memory");
		return CLI_CONTINUE;
	}
	case CLI_OPT_CALL:
		return c->call(c->cfg, o, v, p);
	case CLI_OPT_HELP:
		c->usage(stdout);
		return CLI_EXIT_OK;
	}
	return CLI_CONTINUE;
}

static int argument(const struct cli_cmd *c, char *a)
{
	if (!c->arg)
		return cli_opt_usage(c->name, "unexpected argument '%s'", a);
	return c->arg(c->cfg, a);
}

static const struct cli_opt *find_short(const struct cli_cmd *c, char ch)
{
	for (size_t i = 0; i < c->nopts; i++)
		if (applies(c, &c->opts[i]) && c->opts[i].short_name == ch)
			return &c->opts[i];
	return NULL;
}

/* "-rd": short options without a value, one after the other. */
static int bundle(const struct cli_cmd *c, struct cli_pos *p)
{
	const char *a = p->as;
	for (const char *ch = a + 1; *ch; ch++) {
		const struct cli_opt *o = find_short(c, *ch);
		if (!o)
			return cli_opt_usage(c->name, "unknown option '-%c' in "
						      "'%s'", *ch, a);
		if (o->arg)
			return cli_opt_usage(c->name, "option '-%c' needs a "
						      "value: give it on its "
						      "own, '-%c %s'",
					     *ch, *ch, o->arg);
		int rc = apply(c, o, NULL, p);
		if (rc != CLI_CONTINUE)
			return rc;
	}
	return CLI_CONTINUE;
}

int cli_opt_parse(const struct cli_cmd *c, int argc, char **argv)
{
	bool only_args = false;
	for (int i = 1; i < argc; i++) {
		char *a = argv[i];
		int rc;
		if (only_args || a[0] != '-' || !a[1]) {
			if ((rc = argument(c, a)) != CLI_CONTINUE)
				return rc;
			continue;
		}
		if (strcmp(a, "--") == 0) {
			only_args = true;
			continue;
		}
		struct cli_pos p = {
			.argc = argc, .argv = argv, .i = i, .as = a};
		if (a[1] != '-' && a[2]) {
			if ((rc = bundle(c, &p)) != CLI_CONTINUE)
				return rc;
			continue;
		}
		char *v;
		const struct cli_opt *o = find(c, a, &v);
		if (!o)
			return cli_opt_usage(c->name, "unknown option '%s'", a);
		char as[80];
		if (v) { /* --name=value: messages name --name */
			snprintf(as, sizeof(as), "--%s", o->long_name);
			p.as = as;
		}
		if (!o->arg && v)
			return cli_opt_usage(c->name,
					     "option '--%s' takes no value",
					     o->long_name);
		if (o->arg && !v) {
			if (i + 1 >= argc)
				return cli_opt_usage(c->name,
						     "option '%s' needs %s", a,
						     o->arg);
			v = argv[i + 1];
			p.i = i + 1;
		}
		if ((rc = apply(c, o, v, &p)) != CLI_CONTINUE)
			return rc;
		i = p.i;
	}
	return CLI_CONTINUE;
}

void cli_opt_wrap(FILE *f, const char *help, int col, int at)
{
	const char *p = help;
	size_t room = (size_t)(WIDTH - col);
	do {
		fprintf(f, "%*s", col - at, "");
		size_t n = strlen(p);
		if (n > room) {
			n = room;
			while (n > 0 && p[n] != ' ')
				n--;
			if (!n)
				n = room;
		}
		fprintf(f, "%.*s\n", (int)n, p);
		p += n;
		while (*p == ' ')
			p++;
		at = 0;
	} while (*p);
}

void cli_opt_print(FILE *f, const struct cli_cmd *c, int col)
{
	for (size_t i = 0; i < c->nopts; i++) {
		const struct cli_opt *o = &c->opts[i];
		if (!applies(c, o))
			continue;
		char lhs[80];
		snprintf(lhs, sizeof(lhs), "  %c%c%s%s%s%s%s",
			 o->short_name ? '-' : ' ',
			 o->short_name ? o->short_name : ' ',
			 o->short_name && o->long_name ? ", " : "  ",
			 o->long_name ? "--" : "",
			 o->long_name ? o->long_name : "", o->arg ? " " : "",
			 o->arg ? o->arg : "");
		int at = (int)strlen(lhs);
		fputs(lhs, f);
		if (at > col - 1) {
			fputc('\n', f);
			at = 0;
		}
		cli_opt_wrap(f, o->help, col, at);
	}
}
