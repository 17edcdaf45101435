/* What every part of `moat pub` / `moat sub` uses: their messages and
 * the repeatable option lists.  (Kept apart from the parser so that the
 * files it calls need not call back into it.) */
#include <stdarg.h>

#include "moat_cli.h"

void cli_error(const struct cli_cfg *cfg, const char *fmt, ...)
{
	if (cfg->quiet)
		return;
	va_list ap;
	va_start(ap, fmt);
	fprintf(stderr, "moat %s: ", cfg->name);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
}

/* Usage errors are printed even with --quiet: nothing ran yet. */
int cli_usage_error(const struct cli_cfg *cfg, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int rc = cli_opt_vusage(cfg->name, fmt, ap);
	va_end(ap);
	return rc;
}

int cli_list_add(const struct cli_cfg *cfg, struct cli_list *l,
		 const char *v)
{
	const char **nv = moat_realloc(l->v, (l->n + 1) * sizeof(*nv));
	if (!nv)
		return cli_usage_error(cfg, "out of memory");
	nv[l->n++] = v;
	l->v = nv;
	return MOAT_OK;
}
