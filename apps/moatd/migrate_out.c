/* moatd migrate: the files it writes and the report (MIGRATION.md). */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "broker/broker.h"
#include "check/lint.h"
#include "migrate.h"

void mg_diff(struct mg *g, const char *fmt, ...)
{
	va_list ap;
	if (g->quiet || !g->diff)
		return;
	fputs("- ", g->diff);
	va_start(ap, fmt);
	vfprintf(g->diff, fmt, ap);
	va_end(ap);
	fputc('\n', g->diff);
}

int mg_write_file(const struct mg *g, const char *name, const char *text,
		  size_t len, char *err, size_t errsz)
{
	char path[LINT_VAL + 64];
	snprintf(path, sizeof(path), "%s/%s", g->outdir, name);
	/* Never through a link someone left there; 0600 from the start. */
	if (unlink(path) != 0 && errno != ENOENT)
		goto fail;
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW |
				    O_CLOEXEC, 0600);
	if (fd < 0)
		goto fail;
	size_t off = 0;
	while (off < len) {
		ssize_t w = write(fd, text + off, len - off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			close(fd);
			goto fail;
		}
		off += (size_t)w;
	}
	if (fsync(fd) != 0 || close(fd) != 0)
		goto fail;
	return MOAT_OK;
fail:
	snprintf(err, errsz, "cannot write %s: %s", path, strerror(errno));
	return MOAT_EIO;
}

/* ---- password file and ACL ----------------------------------------------- */

/* Append the user:hash lines of text to o, skipping users already seen
 * (the first file wins; a different hash is a difference). */
static void merge_passwd(struct mg *g, FILE *o, char *text, size_t len,
			 const char *src, char **seen, size_t *nseen)
{
	char *save = NULL;
	text[len] = '\0';
	for (char *line = strtok_r(text, "\r\n", &save); line;
	     line = strtok_r(NULL, "\r\n", &save)) {
		char *colon = strchr(line, ':');
		if (line[0] == '#' || !colon)
			continue;
		size_t ulen = (size_t)(colon - line);
		bool dup = false;
		for (size_t i = 0; i < *nseen && !dup; i++) {
			if (strncmp(seen[i], line, ulen + 1))
				continue;
			dup = true;
			if (strcmp(seen[i], line))
				mg_diff(g, "user '%.*s' has different "
					"passwords in the listeners' password "
					"files: the one in %s is kept",
					(int)ulen, line, g->pw_src[0]);
		}
		if (dup)
			continue;
		fprintf(o, "%s\n", line);
		if (*nseen < 100000)
			seen[(*nseen)++] = line;
	}
	(void)src;
}

static int write_passwd(struct mg *g, char *err, size_t errsz)
{
	char *texts[LINT_MAX_LISTENERS + 1] = {0}, *out = NULL;
	char **seen = calloc(100000, sizeof(*seen));
	size_t olen = 0, nseen = 0, n = 0;
	int rc = MOAT_ENOMEM;
	FILE *o = open_memstream(&out, &olen);
	if (!o || !seen) {
		snprintf(err, errsz, "out of memory");
		goto out;
	}
	for (; n < g->npw; n++) {
		size_t len;
		char *t;
		if ((rc = lint_read_file(g->pw_src[n], false, &t, &len, err,
					 errsz)))
			goto out;
		texts[n] = moat_realloc(t, len + 1);
		if (!texts[n]) {
			moat_free(t);
			snprintf(err, errsz, "out of memory");
			rc = MOAT_ENOMEM;
			goto out;
		}
		merge_passwd(g, o, texts[n], len, g->pw_src[n], seen, &nseen);
	}
	fclose(o);
	o = NULL;
	rc = mg_write_file(g, "passwd", out, olen, err, errsz);
out:
	if (o)
		fclose(o);
	for (size_t i = 0; i < n; i++)
		moat_free(texts[i]);
	free(seen);
	free(out);
	return rc;
}

/* ACL files: each file's lines before its first "user" line apply to
 * anonymous clients; merged, those parts come first, then the user
 * blocks, so that no anonymous rule ends up under another file's user. */
static int write_acl(struct mg *g, char *err, size_t errsz)
{
	char *head = NULL, *tail = NULL;
	size_t hlen = 0, tlen = 0;
	FILE *h = open_memstream(&head, &hlen), *t = open_memstream(&tail, &tlen);
	int rc = MOAT_ENOMEM;
	if (!h || !t) {
		snprintf(err, errsz, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < g->nacl; i++) {
		char *text;
		size_t len;
		if ((rc = lint_read_file(g->acl_src[i], false, &text, &len,
					 err, errsz)))
			goto out;
		bool user = false;
		fprintf(h, "# from %s\n", g->acl_src[i]);
		for (size_t k = 0; k < len;) {
			size_t e = k;
			while (e < len && text[e] != '\n')
				e++;
			const char *l = text + k;
			l += strspn(l, " \t");
			if (!strncmp(l, "user ", 5) || !strncmp(l, "user\t", 5))
				user = true;
			fwrite(text + k, 1, e - k, user ? t : h);
			fputc('\n', user ? t : h);
			k = e + 1;
		}
		moat_free(text);
	}
	mg_bridge_acl(t, g);
	fclose(h);
	fclose(t);
	h = t = NULL;
	char *all = malloc(hlen + tlen + 1);
	if (!all) {
		snprintf(err, errsz, "out of memory");
		rc = MOAT_ENOMEM;
		goto out;
	}
	memcpy(all, head, hlen);
	memcpy(all + hlen, tail, tlen);
	rc = mg_write_file(g, "acl", all, hlen + tlen, err, errsz);
	free(all);
out:
	if (h)
		fclose(h);
	if (t)
		fclose(t);
	free(head);
	free(tail);
	return rc;
}

int mg_write_auth(struct mg *g, char *err, size_t errsz)
{
	if (g->npw && write_passwd(g, err, errsz))
		return MOAT_EIO;
	if (g->nacl && write_acl(g, err, errsz))
		return MOAT_EIO;
	return mg_write_bridge_secrets(g, err, errsz);
}

/* ---- the report ---------------------------------------------------------- */

static bool secret_line(const struct mg_line *x)
{
	return (strstr(x->name, "password") &&
		!strstr(x->name, "password_file")) ||
	       !strcmp(x->name, "bridge_psk") || strstr(x->name, "secret");
}

static void put_lines(FILE *o, const struct mg *g, enum mg_status st)
{
	size_t n = 0;
	for (size_t i = 0; i < g->n; i++) {
		const struct mg_line *x = &g->v[i];
		if (x->status != st)
			continue;
		fprintf(o, "- `%s` `%s %s`: %s\n", x->where, x->name,
			secret_line(x) ? "(removed)" : x->value, x->note);
		n++;
	}
	if (!n)
		fprintf(o, "(none)\n");
}

static void put_findings(FILE *o, const char *path,
			 enum moat_lint_dialect d)
{
	struct moat_lint_report r;
	if (moat_lint_file(path, d, &r) != MOAT_OK) {
		fprintf(o, "Not linted: %s\n", r.error);
	} else if (!r.findings.n) {
		fprintf(o, "No findings.\n");
	} else {
		for (size_t i = 0; i < r.findings.n; i++) {
			const struct moat_finding *f = &r.findings.v[i];
			fprintf(o, "- %s (%s) %s: %s\n", f->def->id,
				moat_severity_name(f->sev), f->def->title,
				f->evidence);
		}
	}
	moat_lint_report_free(&r);
}

/* Does moatd start on it?  "" when it would, else why not. */
static void check_start(const char *path, char *why, size_t whysz)
{
	struct moat_config *cfg = malloc(sizeof(*cfg));
	struct moat_cfg_err err;
	why[0] = '\0';
	if (!cfg) {
		snprintf(why, whysz, "out of memory");
		return;
	}
	moat_cfg_defaults(cfg);
	if (moat_cfg_load_file(cfg, path, &err) ||
	    moat_cfg_finish(cfg, &err))
		snprintf(why, whysz, "%s", err.msg);
	else
		moat_broker_check_files(cfg, why, whysz);
	free(cfg);
}

static size_t count(const struct mg *g, enum mg_status st)
{
	size_t n = 0;
	for (size_t i = 0; i < g->n; i++)
		n += g->v[i].status == st;
	return n;
}

int mg_write_report(struct mg *g, const char *newconf, char *err,
		    size_t errsz)
{
	char path[LINT_VAL + 64], why[800], *text = NULL;
	size_t len = 0;
	snprintf(path, sizeof(path), "%s/%s", g->outdir, newconf);
	check_start(path, why, sizeof(why));
	FILE *o = open_memstream(&text, &len);
	if (!o) {
		snprintf(err, errsz, "out of memory");
		return MOAT_ENOMEM;
	}
	fprintf(o, "# Migration of %s to moatd\n\n", g->src);
	fprintf(o, "Written by `moatd migrate` (moat %s) into %s: moatd.conf"
		   "%s%s, this report.\n\n", MOAT_VERSION, g->outdir,
		g->npw ? ", passwd" : "", g->nacl ? ", acl" : "");
	fprintf(o, "moatd --test-config: %s\n\n",
		why[0] ? why : "the configuration and its files load");
	fprintf(o, "## Listeners\n\n");
	for (size_t i = 0; i < g->m->nl; i++) {
		const struct lint_listener *l = &g->m->l[i];
		const struct mg_listener *x = &g->l[i];
		char desc[300];
		lint_listener_desc(l, desc, sizeof(desc));
		fprintf(o, "- %s (%s): %s%s%s\n", desc,
			l->where[0] ? l->where : "default",
			!x->carried  ? "not carried over: "
			: x->rebound ? "moved to 127.0.0.1: reachable from "
				       "the network "
				     : "carried over",
			x->carried && !x->rebound ? "" : x->why,
			l->tls ? " (TLS)" : "");
	}
	fprintf(o, "\n## Carried over (%zu)\n\n", count(g, MG_CARRIED));
	put_lines(o, g, MG_CARRIED);
	fprintf(o, "\n## Not carried over (%zu)\n\n", count(g, MG_DROPPED));
	put_lines(o, g, MG_DROPPED);
	if (g->lines_dropped)
		fprintf(o, "- %zu more lines beyond %d were not read\n",
			g->lines_dropped, MG_MAX_LINES);
	fprintf(o, "\n## Bridges (%zu)\n\nEach bridge is a connection "
		   "section of moatd.conf (docs/bridges.md); its remote "
		   "password, if any, is in bridge-NAME.pw (0600).%s Lines "
		   "moatd has no use for are under Not carried over.\n\n",
		g->m->nbr,
		g->nacl && g->m->nbr
			? " In moatd a bridge is a user of the local ACL: the "
			  "acl grants each bridge (its local_username, or its "
			  "connection name) its topics."
			: "");
	put_lines(o, g, MG_BRIDGE);
	fprintf(o, "\n## Security differences\n\n");
	if (g->diffs_len)
		fwrite(g->diffs, 1, g->diffs_len, o);
	else
		fprintf(o, "(none found while translating)\n");
	fprintf(o, "- moatd refuses password, ACL and key files that other "
		   "users can read, and a network listener without TLS, "
		   "authentication and an ACL\n");
	fprintf(o, "\n## moatd --check %s (mosquitto)\n\n", g->src);
	put_findings(o, g->src, MOAT_LINT_MOSQUITTO);
	fprintf(o, "\n## moatd --check %s (moatd)\n\n", path);
	put_findings(o, path, MOAT_LINT_MOATD);
	fprintf(o, "\n## Retained messages\n\nmosquitto.db is not read. Copy "
		   "the retained messages of the running mosquitto into the "
		   "running moatd with\n`moatd migrate --retained "
		   "OLD_HOST:PORT --to NEW_HOST:PORT` (docs/migrate.md).\n");
	if (fclose(o) != 0) {
		free(text);
		snprintf(err, errsz, "out of memory");
		return MOAT_ENOMEM;
	}
	int rc = mg_write_file(g, "MIGRATION.md", text, len, err, errsz);
	free(text);
	if (rc == MOAT_OK) {
		printf("moatd migrate: wrote %s/moatd.conf%s%s and "
		       "MIGRATION.md: %zu directives carried over, %zu not, "
		       "%zu bridge lines carried over\n",
		       g->outdir, g->npw ? ", passwd" : "",
		       g->nacl ? ", acl" : "", count(g, MG_CARRIED),
		       count(g, MG_DROPPED), count(g, MG_BRIDGE));
		if (why[0])
			printf("moatd migrate: moatd would not start on it "
			       "yet: %s\n", why);
	}
	return rc;
}
