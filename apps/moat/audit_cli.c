/* `moat audit`: the command line, the targets, the run and the exit
 * status.  One table drives the option parser and the --help text. */
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "audit.h"
#include "check/lint.h"
#include "moat_cli.h"

#define TARGETS_FILE_MAX (64u * 1024u)

enum aopt {
	A_TARGETS, A_CAFILE, A_INSECURE, A_AS, A_INTRUSIVE, A_TEST_TOPIC,
	A_CREDS, A_SAMPLE, A_VERSION, A_WAIT, A_TIMEOUT, A_DELAY, A_IDLE,
	A_MAX_TIME, A_FORMAT, A_FAIL_ON, A_QUIET, A_PROGRESS, A_CONFIG,
	A_HELP,
};

struct aopt_def {
	char short_name;
	const char *name;
	enum aopt id;
	const char *arg; /* NULL: takes none */
	long min, max;	 /* numeric arguments */
	const char *help;
	bool hidden; /* parsed, not listed (not available yet) */
};

static const struct aopt_def opts[] = {
	{0, "targets", A_TARGETS, "FILE", 0, 0,
	 "read targets from FILE, one per line (# starts a comment)", false},
	{0, "cafile", A_CAFILE, "FILE", 0, 0,
	 "CA certificates to verify mqtts:// servers with (default: the "
	 "system's)", false},
	{0, "insecure", A_INSECURE, NULL, 0, 0,
	 "go on when the certificate cannot be verified (self-signed "
	 "set-ups); it is still reported", false},
	{0, "as", A_AS, "USER:PASS", 0, 0,
	 "also audit as this test account of yours (at most twice); prefer "
	 "MOAT_AUDIT_AS=USER:PASS in the environment", false},
	{0, "intrusive", A_INTRUSIVE, NULL, 0, 0,
	 "also: will authorisation, client-id takeover, invalid UTF-8 "
	 "(publishes test messages under --test-topic)", false},
	{0, "test-topic", A_TEST_TOPIC, "PREFIX", 0, 0,
	 "topic subtree of the --intrusive test messages (default: "
	 "moat-audit)", false},
	{0, "try-default-creds", A_CREDS, NULL, 0, 0,
	 "try up to 10 well-known user name/password pairs (stops at the "
	 "first success) and measure login throttling", false},
	{0, "sample-payloads", A_SAMPLE, "SECONDS", 1, AUDIT_SAMPLE_MAX_S,
	 "subscribe to # as each identity for SECONDS (at most 60) and run "
	 "the leak detector over what arrives (AUD-LK-01; findings "
	 "redacted)", false},
	{0, "broker-version", A_VERSION, "VERSION", 0, 0,
	 "look VERSION (\"mosquitto 2.0.11\") up for known vulnerabilities "
	 "when $SYS does not show it", false},
	{0, "wait", A_WAIT, "MS", 100, 60000,
	 "length of each collection window (default: 3000)", false},
	{0, "timeout", A_TIMEOUT, "MS", 100, 60000,
	 "limit of each step: connect, TLS handshake, CONNACK, SUBACK, "
	 "PUBACK (default: 5000)", false},
	{0, "delay", A_DELAY, "MS", 10, 10000,
	 "pause between two connections (default: 200)", false},
	{0, "idle-limit", A_IDLE, "SECONDS", 1, 120,
	 "report sockets kept open longer without CONNECT (default: 30)",
	 false},
	{0, "max-time", A_MAX_TIME, "SECONDS", 10, 3600,
	 "bound on the whole run (default: 300)", false},
	{0, "format", A_FORMAT, "FORMAT", 0, 0,
	 "text (default), json or sarif", false},
	{0, "fail-on", A_FAIL_ON, "SEVERITY", 0, 0,
	 "exit 1 for findings at or above: info, low, medium, high "
	 "(default) or critical", false},
	{'q', "quiet", A_QUIET, NULL, 0, 0, "no progress lines on stderr",
	 false},
	{0, "progress", A_PROGRESS, NULL, 0, 0,
	 "progress lines on stderr even when it is not a terminal", false},
	{0, "config", A_CONFIG, "FILE", 0, 0,
	 "lint a moatd or mosquitto configuration file instead (the checks "
	 "of moatd --check)", false},
	{'h', "help", A_HELP, NULL, 0, 0, "show this help", false},
};

/* "  LEFT   help..." with the help wrapped at 79 columns. */
static void print_opt(FILE *f, const char *left, const char *help)
{
	enum { COL = 26, WIDTH = 79 };
	size_t col;
	fprintf(f, "  %s", left);
	col = 2 + strlen(left);
	if (col > COL - 2) {
		fputc('\n', f);
		col = 0;
	}
	const char *p = help;
	while (*p) {
		fprintf(f, "%*s", (int)(COL - col), "");
		size_t n = strlen(p), room = WIDTH - COL;
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
		col = 0;
	}
}

void moat_audit_usage(FILE *f)
{
	fprintf(f,
		"Usage: moat audit [OPTION]... TARGET...\n"
		"       moat audit --config FILE [--format FORMAT] "
		"[--fail-on SEVERITY]\n"
		"\n"
		"Probe your own MQTT brokers for security weaknesses "
		"(docs/audit.md).\n"
		"TARGET is mqtt://HOST[:PORT] (default port 1883) or "
		"mqtts://HOST[:PORT]\n"
		"(TLS, default port 8883); IPv6 addresses go in brackets. "
		"Only the targets\n"
		"given are contacted, one connection at a time; nothing is "
		"written but the\nreport (on stdout).\n\n"
		"Options:\n");
	for (size_t i = 0; i < MOAT_ARRAY_LEN(opts); i++) {
		const struct aopt_def *d = &opts[i];
		char left[64];
		if (d->hidden)
			continue;
		snprintf(left, sizeof(left), "%c%c%s--%s%s%s",
			 d->short_name ? '-' : ' ',
			 d->short_name ? d->short_name : ' ',
			 d->short_name ? ", " : "  ", d->name,
			 d->arg ? " " : "", d->arg ? d->arg : "");
		print_opt(f, left, d->help);
	}
	fprintf(f,
		"\nEvery step waits at most --timeout, every collection "
		"window --wait; the run\nstops after --max-time (the "
		"remaining checks are reported as not run).\n"
		"\nExit status:\n"
		"  0  no finding at or above --fail-on\n"
		"  1  at least one finding at or above --fail-on\n"
		"  2  usage error, or a target could not be (fully) audited\n");
}

/* ---- option parsing --------------------------------------------------- */

__attribute__((format(printf, 1, 2))) static int usage(const char *fmt, ...)
{
	va_list ap;
	fputs("moat audit: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputs("\nTry 'moat audit --help' for more information.\n", stderr);
	return CLI_EXIT_USAGE;
}

static const struct aopt_def *find_opt(const char *arg, const char **val)
{
	*val = NULL;
	if (arg[0] == '-' && arg[1] && arg[1] != '-' && !arg[2]) {
		for (size_t i = 0; i < MOAT_ARRAY_LEN(opts); i++)
			if (opts[i].short_name == arg[1])
				return &opts[i];
		return NULL;
	}
	if (strncmp(arg, "--", 2))
		return NULL;
	const char *name = arg + 2, *eq = strchr(name, '=');
	size_t n = eq ? (size_t)(eq - name) : strlen(name);
	for (size_t i = 0; i < MOAT_ARRAY_LEN(opts); i++)
		if (strlen(opts[i].name) == n && !strncmp(opts[i].name, name, n)) {
			*val = eq ? eq + 1 : NULL;
			return &opts[i];
		}
	return NULL;
}

static int parse_num(const struct aopt_def *d, const char *v, unsigned *out)
{
	char *end;
	errno = 0;
	long n = strtol(v, &end, 10);
	if (errno || end == v || *end || n < d->min || n > d->max)
		return usage("--%s: expected a number from %ld to %ld, got '%s'",
			     d->name, d->min, d->max, v);
	*out = (unsigned)n;
	return MOAT_OK;
}

static int parse_severity(const char *v, enum moat_severity *out)
{
	for (int s = MOAT_SEV_INFO; s < MOAT_SEV_COUNT; s++)
		if (!strcmp(v, moat_severity_name((enum moat_severity)s))) {
			*out = (enum moat_severity)s;
			return MOAT_OK;
		}
	return usage("--fail-on: expected info, low, medium, high or "
		     "critical, got '%s'", v);
}

/* USER:PASS into an account; the password is copied and v's copy wiped
 * (so that ps shows it only briefly). */
static int parse_account(struct audit_opts *o, char *v, const char *from)
{
	char *colon = strchr(v, ':');
	if (o->nacct == AUDIT_MAX_ACCOUNTS)
		return usage("at most %d test accounts (--as)",
			     AUDIT_MAX_ACCOUNTS);
	if (!colon || colon == v || (size_t)(colon - v) >= 256)
		return usage("%s: expected USER:PASS", from);
	struct audit_account *a = &o->acct[o->nacct];
	size_t plen = strlen(colon + 1);
	memcpy(a->user, v, (size_t)(colon - v));
	a->user[colon - v] = '\0';
	a->pass = moat_malloc(plen ? plen : 1);
	if (!a->pass) {
		fprintf(stderr, "moat audit: out of memory\n");
		return CLI_EXIT_USAGE;
	}
	memcpy(a->pass, colon + 1, plen);
	a->passlen = plen;
	OPENSSL_cleanse(colon + 1, plen);
	o->nacct++;
	return MOAT_OK;
}

static int set_format(struct audit_opts *o, const char *v)
{
	if (!strcmp(v, "text"))
		o->format = AUDIT_TEXT;
	else if (!strcmp(v, "json"))
		o->format = AUDIT_JSON;
	else if (!strcmp(v, "sarif"))
		o->format = AUDIT_SARIF;
	else
		return usage("--format: expected text, json or sarif, got '%s'",
			     v);
	return MOAT_OK;
}

static int apply(struct audit_opts *o, const struct aopt_def *d, char *v)
{
	switch (d->id) {
	case A_TARGETS: o->targets_file = v; break;
	case A_CAFILE: o->cafile = v; break;
	case A_INSECURE: o->insecure = true; break;
	case A_AS: return parse_account(o, v, "--as");
	case A_INTRUSIVE: o->intrusive = true; break;
	case A_TEST_TOPIC: o->test_topic = v; break;
	case A_CREDS: o->try_creds = true; break;
	case A_SAMPLE: return parse_num(d, v, &o->sample_s);
	case A_VERSION: o->broker_version = v; break;
	case A_WAIT: return parse_num(d, v, &o->wait_ms);
	case A_TIMEOUT: return parse_num(d, v, &o->timeout_ms);
	case A_DELAY: return parse_num(d, v, &o->delay_ms);
	case A_IDLE: return parse_num(d, v, &o->idle_s);
	case A_MAX_TIME: return parse_num(d, v, &o->max_time_s);
	case A_FORMAT: return set_format(o, v);
	case A_FAIL_ON: return parse_severity(v, &o->fail_on);
	case A_QUIET: o->quiet = true; break;
	case A_PROGRESS: o->progress = true; break;
	case A_CONFIG: o->config = v; break;
	case A_HELP: o->help = true; break;
	}
	return MOAT_OK;
}

/* Parse argv (argv[0] is "audit"); targets (borrowed) into *targets.
 * MOAT_OK, or an exit status. */
static int parse_args(struct audit_opts *o, int argc, char **argv,
		      const char **targets, size_t *ntargets)
{
	bool only_targets = false;
	*ntargets = 0;
	for (int i = 1; i < argc; i++) {
		char *a = argv[i];
		if (only_targets || a[0] != '-' || !a[1]) {
			if (*ntargets == AUDIT_MAX_TARGETS)
				return usage("at most %d targets",
					     AUDIT_MAX_TARGETS);
			targets[(*ntargets)++] = a;
			continue;
		}
		if (!strcmp(a, "--")) {
			only_targets = true;
			continue;
		}
		const char *inl;
		const struct aopt_def *d = find_opt(a, &inl);
		if (!d)
			return usage("unknown option '%s'", a);
		char *v = (char *)(uintptr_t)inl;
		if (d->arg && !v) {
			if (i + 1 >= argc)
				return usage("--%s needs %s", d->name, d->arg);
			v = argv[++i];
		} else if (!d->arg && v) {
			return usage("--%s takes no value", d->name);
		}
		int rc = apply(o, d, v);
		if (rc != MOAT_OK)
			return rc;
	}
	return MOAT_OK;
}

/* ---- targets ---------------------------------------------------------- */

static bool host_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c >= '0' && c <= '9') || c == '.' || c == '-' || c == '_';
}

static bool v6_char(char c)
{
	return (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F') ||
	       (c >= '0' && c <= '9') || c == ':' || c == '.';
}

/* "mqtt[s]://HOST[:PORT]" into t; err says why not. */
static int parse_target(const char *s, struct audit_target *t, char *err,
			size_t errsz)
{
	const char *p;
	memset(t, 0, sizeof(*t));
	if (!strncmp(s, "mqtt://", 7)) {
		t->scheme = AUDIT_MQTT;
		p = s + 7;
	} else if (!strncmp(s, "mqtts://", 8)) {
		t->scheme = AUDIT_MQTTS;
		p = s + 8;
	} else {
		snprintf(err, errsz, "expected mqtt://HOST[:PORT] or "
				     "mqtts://HOST[:PORT]");
		return MOAT_EINVAL;
	}
	bool v6 = *p == '[';
	const char *h = p + v6, *e = h;
	while (*e && (v6 ? v6_char(*e) : host_char(*e)))
		e++;
	size_t hl = (size_t)(e - h);
	if (v6 && *e != ']')
		hl = 0;
	else if (v6)
		e++;
	if (hl == 0 || hl >= sizeof(t->host) || (*e && *e != ':')) {
		snprintf(err, errsz, "%s", *e == '/' || *e == '@'
					 ? "only a host and a port: no path, "
					   "user name or address range"
					 : "invalid host");
		return MOAT_EINVAL;
	}
	memcpy(t->host, h, hl);
	const char *port = *e == ':' ? e + 1 : NULL;
	char *end;
	long n = port ? strtol(port, &end, 10) : 0;
	if (port && (!*port || *end || n < 1 || n > 65535 || *port == '+' ||
		     *port == '-')) {
		snprintf(err, errsz, "%s", port[0] && *end == '/'
						   ? "only a host and a port: "
						     "no path"
						   : "invalid port (1-65535)");
		return MOAT_EINVAL;
	}
	if (!port)
		n = t->scheme == AUDIT_MQTTS ? 8883 : 1883;
	snprintf(t->port, sizeof(t->port), "%ld", n);
	snprintf(t->spec, sizeof(t->spec), "%s://%s%s%s:%ld",
		 t->scheme == AUDIT_MQTTS ? "mqtts" : "mqtt", v6 ? "[" : "",
		 t->host, v6 ? "]" : "", n);
	moat_findings_init(&t->findings);
	return MOAT_OK;
}

struct tlist {
	struct audit_target *v;
	size_t n;
};

static int add_target(struct tlist *l, const char *s, const char *where)
{
	char err[200], esc[120];
	if (l->n == AUDIT_MAX_TARGETS)
		return usage("at most %d targets", AUDIT_MAX_TARGETS);
	struct audit_target *t = &l->v[l->n];
	if (parse_target(s, t, err, sizeof(err)) != MOAT_OK) {
		moat_log_escape((const uint8_t *)s, strlen(s), esc, sizeof(esc));
		return usage("%s'%s': %s", where, esc, err);
	}
	for (size_t i = 0; i < l->n; i++)
		if (!strcmp(l->v[i].spec, t->spec))
			return MOAT_OK; /* given twice: audited once */
	l->n++;
	return MOAT_OK;
}

static int read_targets_file(struct tlist *l, const char *path)
{
	char *text = NULL, err[300], where[300];
	size_t len;
	int rc = moat_file_read(path, TARGETS_FILE_MAX, false, &text, &len,
				err, sizeof(err));
	if (rc != MOAT_OK)
		return usage("--targets: %s", err);
	size_t line = 0;
	for (char *p = text, *next; p && rc == MOAT_OK; p = next) {
		next = strchr(p, '\n');
		if (next)
			*next++ = '\0';
		line++;
		char *hash = strchr(p, '#');
		if (hash)
			*hash = '\0';
		while (*p == ' ' || *p == '\t')
			p++;
		size_t n = strlen(p);
		while (n && (p[n - 1] == ' ' || p[n - 1] == '\t' ||
			     p[n - 1] == '\r'))
			p[--n] = '\0';
		if (!n)
			continue;
		snprintf(where, sizeof(where), "%.200s:%zu: ", path, line);
		rc = add_target(l, p, where);
	}
	moat_free(text);
	return rc;
}

/* ---- --config ------------------------------------------------------------ */

static int run_lint(const struct audit_opts *o, struct audit_target *t)
{
	struct moat_lint_report r;
	memset(t, 0, sizeof(*t));
	moat_log_escape((const uint8_t *)o->config, strlen(o->config), t->spec,
			sizeof(t->spec));
	moat_findings_init(&t->findings);
	if (moat_lint_file(o->config, MOAT_LINT_AUTO, &r) != MOAT_OK) {
		char esc[600];
		moat_log_escape((const uint8_t *)r.error, strlen(r.error), esc,
				sizeof(esc));
		fprintf(stderr, "moat audit: %s\n", esc);
		moat_lint_report_free(&r);
		return CLI_EXIT_USAGE;
	}
	audit_note(t, "read as a %s configuration",
		   moat_lint_dialect_name(r.dialect));
	moat_findings_move(&t->findings, &r.findings);
	moat_lint_report_free(&r);
	return MOAT_OK;
}

/* ---- the run ----------------------------------------------------------- */

static void defaults(struct audit_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->fail_on = MOAT_SEV_HIGH;
	o->wait_ms = 3000;
	o->timeout_ms = 5000;
	o->delay_ms = 200;
	o->idle_s = 30;
	o->max_time_s = 300;
	o->test_topic = "moat-audit";
}

static int check_combination(struct audit_opts *o, size_t ntargets)
{
	const char *env = getenv("MOAT_AUDIT_AS");
	if (env && env[0]) {
		char *copy = moat_strdup(env);
		int rc = copy ? parse_account(o, copy, "MOAT_AUDIT_AS")
			      : CLI_EXIT_USAGE;
		moat_free(copy);
		if (rc != MOAT_OK)
			return rc;
	}
	if (o->config && (ntargets || o->targets_file))
		return usage("--config lints a file: it takes no targets");
	if (!o->config && !ntargets && !o->targets_file)
		return usage("no target (mqtt://HOST[:PORT] or "
			     "mqtts://HOST[:PORT])");
	if (!o->test_topic[0] || strpbrk(o->test_topic, "+#") ||
	    o->test_topic[0] == '$' || strlen(o->test_topic) > 200)
		return usage("--test-topic: a plain topic prefix (no +, # or "
			     "leading $)");
	return MOAT_OK;
}

static int exit_status(const struct audit_opts *o,
		       const struct audit_target *t, size_t n)
{
	int rc = CLI_EXIT_OK;
	for (size_t i = 0; i < n; i++) {
		enum moat_severity worst;
		if (t[i].error[0])
			return CLI_EXIT_USAGE;
		if (moat_findings_max(&t[i].findings, &worst) &&
		    worst >= o->fail_on)
			rc = CLI_EXIT_FAIL;
	}
	return rc;
}

static void run_targets(const struct audit_opts *o, struct tlist *l)
{
	struct audit_run run = {.o = o,
				.deadline = moat_now_ms() +
					    (uint64_t)o->max_time_s * 1000u,
				.pid = (unsigned)getpid()};
	for (size_t i = 0; i < l->n; i++)
		audit_target_run(&run, &l->v[i]);
}

static void cleanup(struct audit_opts *o, struct tlist *l)
{
	for (size_t i = 0; i < o->nacct; i++) {
		if (o->acct[i].pass)
			OPENSSL_cleanse(o->acct[i].pass, o->acct[i].passlen);
		moat_free(o->acct[i].pass);
	}
	for (size_t i = 0; l->v && i < AUDIT_MAX_TARGETS; i++)
		moat_findings_free(&l->v[i].findings);
	moat_free(l->v);
}

int moat_audit_main(int argc, char **argv)
{
	struct audit_opts o;
	struct tlist l = {0};
	const char *given[AUDIT_MAX_TARGETS];
	size_t ngiven;
	defaults(&o);
	int rc = parse_args(&o, argc, argv, given, &ngiven);
	if (rc == MOAT_OK && o.help) {
		moat_audit_usage(stdout);
		goto out;
	}
	if (rc == MOAT_OK)
		rc = check_combination(&o, ngiven);
	if (rc != MOAT_OK)
		goto out;
	l.v = moat_calloc(AUDIT_MAX_TARGETS, sizeof(*l.v));
	if (!l.v) {
		fprintf(stderr, "moat audit: out of memory\n");
		rc = CLI_EXIT_USAGE;
		goto out;
	}
	if (o.config) {
		if ((rc = run_lint(&o, &l.v[0])) != MOAT_OK)
			goto out;
		l.n = 1;
	} else {
		for (size_t i = 0; i < ngiven && rc == MOAT_OK; i++)
			rc = add_target(&l, given[i], "");
		if (rc == MOAT_OK && o.targets_file)
			rc = read_targets_file(&l, o.targets_file);
		if (rc != MOAT_OK)
			goto out;
		if (!l.n) {
			rc = usage("--targets: the file names no target");
			goto out;
		}
		o.progress = !o.quiet && (o.progress || isatty(2));
		signal(SIGPIPE, SIG_IGN);
		run_targets(&o, &l);
	}
	audit_report(stdout, &o, l.v, l.n);
	rc = exit_status(&o, l.v, l.n);
	if (fflush(stdout) != 0 || ferror(stdout)) {
		fprintf(stderr, "moat audit: cannot write the report\n");
		rc = CLI_EXIT_USAGE;
	}
out:
	cleanup(&o, &l);
	return rc;
}
