/* Configuration lint: reading the file, choosing the dialect, helpers
 * shared by the dialect readers and the rules. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check/lint_int.h"
#include "common/moat_common.h"
#include "config/cfg.h"

const char *moat_lint_dialect_name(enum moat_lint_dialect d)
{
	switch (d) {
	case MOAT_LINT_MOATD: return "moatd";
	case MOAT_LINT_MOSQUITTO: return "mosquitto";
	case MOAT_LINT_AUTO: break;
	}
	return "auto";
}

void lint_where(char *buf, size_t bufsz, const char *name, size_t line)
{
	snprintf(buf, bufsz, "%s:%zu", name, line);
}

void lint_str_set(struct lint_str *s, const char *val, const char *where)
{
	snprintf(s->v, sizeof(s->v), "%s", val);
	snprintf(s->where, sizeof(s->where), "%s", where);
}

bool lint_addr_is_loopback(const char *addr)
{
	return addr[0] && moat_cfg_addr_is_loopback(addr);
}

const char *lint_listener_desc(const struct lint_listener *l, char *buf,
			       size_t bufsz)
{
	const char *kind = l->websockets ? "websockets listener" : "listener";
	if (l->unix_socket)
		snprintf(buf, bufsz, "%s on unix socket %s", kind, l->addr);
	else if (!l->addr[0])
		snprintf(buf, bufsz, "%s %u on all addresses", kind, l->port);
	else
		snprintf(buf, bufsz, "%s %u on %s", kind, l->port, l->addr);
	return buf;
}

void lint_resolve(const struct lint_model *m, const char *val, char *out,
		  size_t outsz)
{
	const char *slash = strrchr(m->path, '/');
	if (val[0] == '/' || !slash)
		snprintf(out, outsz, "%s", val);
	else
		snprintf(out, outsz, "%.*s/%s", (int)(slash - m->path),
			 m->path, val);
}

void lint_limit_add(struct lint_model *m, const char *name, uint64_t value,
		    bool unlimited, bool bytes, const char *where,
		    uint64_t safe_max, enum moat_severity sev)
{
	if (m->nlim == LINT_MAX_LIMITS)
		return;
	struct lint_limit *x = &m->lim[m->nlim++];
	x->name = name;
	x->value = value;
	x->unlimited = unlimited;
	x->bytes = bytes;
	snprintf(x->where, sizeof(x->where), "%s", where ? where : "");
	x->safe_max = safe_max;
	x->sev = sev;
}

void lint_each_line(char *text, size_t len, lint_line_fn fn, void *arg)
{
	size_t lineno = 0;
	char *p = text, *end = text + len;
	while (p < end) {
		char *nl = memchr(p, '\n', (size_t)(end - p));
		char *eol = nl ? nl : end;
		*eol = '\0';
		if (eol > p && eol[-1] == '\r')
			eol[-1] = '\0';
		if (!fn(arg, p, ++lineno))
			return;
		p = eol + 1;
	}
}

int lint_read_file(const char *path, bool nofollow, char **out, size_t *len,
		   char *err, size_t errsz)
{
	/* O_NONBLOCK: a FIFO in a file's place must not hang the lint. */
	int flags = O_RDONLY | O_CLOEXEC | O_NONBLOCK |
		    (nofollow ? O_NOFOLLOW : 0);
	struct stat st;
	*out = NULL;
	*len = 0;
	int fd = open(path, flags);
	if (fd < 0) {
		snprintf(err, errsz, "%s: cannot open: %s", path,
			 strerror(errno));
		return MOAT_EIO;
	}
	int rc = MOAT_EIO;
	char *buf = NULL;
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		snprintf(err, errsz, "%s: not a regular file", path);
		goto out;
	}
	if ((uint64_t)st.st_size > LINT_MAX_FILE) {
		snprintf(err, errsz, "%s: larger than %u bytes", path,
			 LINT_MAX_FILE);
		goto out;
	}
	size_t size = (size_t)st.st_size, got = 0;
	if (!(buf = moat_malloc(size + 1))) {
		snprintf(err, errsz, "%s: out of memory", path);
		rc = MOAT_ENOMEM;
		goto out;
	}
	while (got < size) {
		ssize_t n = read(fd, buf + got, size - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) /* an error, or the file shrank under us */
			break;
		got += (size_t)n;
	}
	buf[got] = '\0';
	*out = buf;
	*len = got;
	buf = NULL;
	rc = MOAT_OK;
out:
	moat_free(buf);
	close(fd);
	return rc;
}

/* ---- choosing the dialect ------------------------------------------------ */

struct word_count {
	size_t moatd_only, mosq_only;
};

static bool count_line(void *arg, char *line, size_t lineno)
{
	struct word_count *c = arg;
	(void)lineno;
	line += strspn(line, " \t");
	if (*line == '#' || !*line)
		return true;
	line[strcspn(line, " \t")] = '\0';
	bool a = lint_moatd_knows(line), b = lint_mosq_knows(line);
	c->moatd_only += a && !b;
	c->mosq_only += b && !a;
	return true;
}

static enum moat_lint_dialect choose(const char *path, const char *text,
				     size_t len, size_t moatd_errors)
{
	const char *base = strrchr(path, '/');
	base = base ? base + 1 : path;
	if (strstr(base, "mosquitto"))
		return MOAT_LINT_MOSQUITTO;
	if (!moatd_errors)
		return MOAT_LINT_MOATD;
	struct word_count c = {0, 0};
	char *copy = moat_strndup(text, len);
	if (!copy)
		return MOAT_LINT_MOATD;
	lint_each_line(copy, len, count_line, &c);
	moat_free(copy);
	return c.mosq_only > c.moatd_only ? MOAT_LINT_MOSQUITTO
					  : MOAT_LINT_MOATD;
}

/* ---- the configuration file itself --------------------------------------- */

static void check_config_file(const struct lint_model *m,
			      struct moat_findings *f)
{
	struct stat st;
	if (stat(m->path, &st) != 0)
		return;
	unsigned mode = (unsigned)(st.st_mode & 07777);
	if (st.st_mode & S_IWOTH)
		moat_findings_add(f, "AUD-CFG-04",
				  "configuration file %s is writable by other "
				  "users (mode %04o): they can give themselves "
				  "access",
				  m->path, mode);
	else if (m->secret_in_config[0] && (st.st_mode & S_IROTH))
		moat_findings_add(f, "AUD-CFG-04",
				  "configuration file %s holds a password (%s) "
				  "and is readable by other users (mode %04o)",
				  m->path, m->secret_in_config, mode);
}

/* ---- entry point --------------------------------------------------------- */

struct lint_model *lint_model_new(const char *path)
{
	struct lint_model *m = moat_calloc(1, sizeof(*m));
	if (!m)
		return NULL;
	m->l = moat_calloc(LINT_MAX_LISTENERS, sizeof(*m->l));
	m->br = moat_calloc(LINT_MAX_BRIDGES, sizeof(*m->br));
	if (!m->l || !m->br) {
		moat_free(m->l);
		moat_free(m->br);
		moat_free(m);
		return NULL;
	}
	m->path = path;
	const char *base = strrchr(path, '/');
	snprintf(m->name, sizeof(m->name), "%s", base ? base + 1 : path);
	m->global.anon = -1;
	return m;
}

void lint_model_free(struct lint_model *m)
{
	if (!m)
		return;
	moat_free(m->l);
	moat_free(m->br);
	moat_free(m);
}

/* Parse text as dialect d (AUTO: choose) into m; findings to f. */
static int build_model(struct lint_model *m, enum moat_lint_dialect d,
		       char *text, size_t len, struct moat_findings *f)
{
	struct moat_findings errs;
	struct lint_moatd *st = NULL;
	size_t nerr = 0;
	moat_findings_init(&errs);
	if (d != MOAT_LINT_MOSQUITTO &&
	    lint_moatd_parse(m, text, len, &errs, &nerr, &st) != MOAT_OK) {
		moat_findings_free(&errs);
		return MOAT_ENOMEM;
	}
	if (d == MOAT_LINT_AUTO)
		d = choose(m->path, text, len, nerr);
	m->dialect = d;
	if (d == MOAT_LINT_MOATD) {
		moat_findings_move(f, &errs);
		lint_moatd_finish(m, st, f);
	} else {
		lint_mosq_parse(m, text, len, f);
	}
	moat_findings_free(&errs);
	lint_moatd_free(st);
	return MOAT_OK;
}

int moat_lint_file(const char *path, enum moat_lint_dialect dialect,
		   struct moat_lint_report *out)
{
	char *text = NULL;
	size_t len = 0;
	memset(out, 0, sizeof(*out));
	moat_findings_init(&out->findings);
	int rc = lint_read_file(path, false, &text, &len, out->error,
				sizeof(out->error));
	if (rc != MOAT_OK)
		return rc;
	struct lint_model *m = lint_model_new(path);
	if (!m) {
		moat_free(text);
		snprintf(out->error, sizeof(out->error), "out of memory");
		return MOAT_ENOMEM;
	}
	rc = build_model(m, dialect, text, len, &out->findings);
	if (rc == MOAT_OK) {
		out->dialect = m->dialect;
		check_config_file(m, &out->findings);
		lint_check_files(m, &out->findings);
		lint_run_rules(m, &out->findings);
		moat_findings_sort(&out->findings);
		if (out->findings.oom)
			rc = MOAT_ENOMEM;
	}
	if (rc == MOAT_ENOMEM)
		snprintf(out->error, sizeof(out->error), "out of memory");
	lint_model_free(m);
	moat_free(text);
	return rc;
}

void moat_lint_report_free(struct moat_lint_report *r)
{
	moat_findings_free(&r->findings);
}
