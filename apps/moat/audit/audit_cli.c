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
#include "cli_opt.h"
#include "commands.h"
#include "common/moat_common.h"

#define TARGETS_FILE_MAX (64u * 1024u)

enum aopt {
	A_TARGETS, A_CAFILE, A_INSECURE, A_AS, A_INTRUSIVE, A_TEST_TOPIC,
	A_CREDS, A_SAMPLE, A_VERSION, A_WAIT, A_TIMEOUT, A_DELAY, A_IDLE,
	A_MAX_TIME, A_FORMAT, A_FAIL_ON, A_QUIET, A_PROGRESS, A_CONFIG,
	A_HELP,
};

static const struct cli_opt opts[] = {
	{0, "targets", 0, CLI_OPT_CALL, 0, 0, 0, "FILE",
	 "read targets from FILE, one per line (# starts a comment)", A_TARGETS},
	{0, "cafile", 0, CLI_OPT_CALL, 0, 0, 0, "FILE",
	 "CA certificates to verify mqtts:// servers with (default: the "
	 "system's)", A_CAFILE},
	{0, "insecure", 0, CLI_OPT_CALL, 0, 0, 0, NULL,
	 "go on when the certificate cannot be verified (self-signed "
	 "set-ups); it is still reported", A_INSECURE},
	{0, "as", 0, CLI_OPT_CALL, 0, 0, 0, "USER:PASS",
	 "also audit as this test account of yours (at most twice); prefer "
	 "MOAT_AUDIT_AS=USER:PASS in the environment", A_AS},
	{0, "intrusive", 0, CLI_OPT_CALL, 0, 0, 0, NULL,
	 "also: will authorisation, client-id takeover, invalid UTF-8 "
	 "(publishes test messages under --test-topic); CoAP: PUT to a new "
	 "resource, then DELETE it", A_INTRUSIVE},
	{0, "test-topic", 0, CLI_OPT_CALL, 0, 0, 0, "PREFIX",
	 "topic subtree of the --intrusive test messages (default: "
	 "moat-audit)", A_TEST_TOPIC},
	{0, "try-default-creds", 0, CLI_OPT_CALL, 0, 0, 0, NULL,
	 "try up to 10 well-known user name/password pairs (stops at the "
	 "first success) and measure login throttling", A_CREDS},
	{0, "sample-payloads", 0, CLI_OPT_CALL, 0, 1, AUDIT_SAMPLE_MAX_S, "SECONDS",
	 "subscribe to # as each identity (CoAP: read and observe the listed "
	 "resources) for SECONDS (at most 60) and run the leak detector over "
	 "what arrives (AUD-LK-01; findings redacted)", A_SAMPLE},
	{0, "broker-version", 0, CLI_OPT_CALL, 0, 0, 0, "VERSION",
	 "look VERSION (\"mosquitto 2.0.11\") up for known vulnerabilities "
	 "when $SYS does not show it", A_VERSION},
	{0, "wait", 0, CLI_OPT_CALL, 0, 100, 60000, "MS",
	 "length of each collection window (default: 3000)", A_WAIT},
	{0, "timeout", 0, CLI_OPT_CALL, 0, 100, 60000, "MS",
	 "limit of each step: connect, TLS handshake, CONNACK, SUBACK, "
	 "PUBACK (default: 5000)", A_TIMEOUT},
	{0, "delay", 0, CLI_OPT_CALL, 0, 10, 10000, "MS",
	 "pause between two connections (default: 200)", A_DELAY},
	{0, "idle-limit", 0, CLI_OPT_CALL, 0, 1, 120, "SECONDS",
	 "report sockets kept open longer without CONNECT (default: 30)", A_IDLE},
	{0, "max-time", 0, CLI_OPT_CALL, 0, 10, 3600, "SECONDS",
	 "bound on the whole run (default: 300)", A_MAX_TIME},
	{0, "format", 0, CLI_OPT_CALL, 0, 0, 0, "FORMAT",
	 "text (default), json or sarif", A_FORMAT},
	{0, "fail-on", 0, CLI_OPT_CALL, 0, 0, 0, "SEVERITY",
	 "exit 1 for findings at or above: info, low, medium, high "
	 "(default) or critical", A_FAIL_ON},
	{'q', "quiet", 0, CLI_OPT_CALL, 0, 0, 0, NULL, "no progress lines on stderr", A_QUIET},
	{0, "progress", 0, CLI_OPT_CALL, 0, 0, 0, NULL,
	 "progress lines on stderr even when it is not a terminal", A_PROGRESS},
	{0, "config", 0, CLI_OPT_CALL, 0, 0, 0, "FILE",
	 "lint a moatd or mosquitto configuration file instead (the checks "
	 "of moatd --check)", A_CONFIG},
	{'h', "help", 0, CLI_OPT_HELP, 0, 0, 0, NULL, "show this help", A_HELP},
};

static int on_call(void *cfg, const struct cli_opt *o, char *v,
		   struct cli_pos *p);
static int on_arg(void *cfg, char *a);

static const struct cli_cmd command = {
	.name = "audit",
	.opts = opts,
	.nopts = MOAT_ARRAY_LEN(opts),
	.call = on_call,
	.arg = on_arg,
	.usage = moat_audit_usage,
};

void moat_audit_usage(FILE *f)
{
	fprintf(f,
		"Usage: moat audit [OPTION]... TARGET...\n"
		"       moat audit --config FILE [--format FORMAT] "
		"[--fail-on SEVERITY]\n"
		"\n"
		"Probe your own MQTT brokers and CoAP servers for security "
		"weaknesses\n(docs/audit.md).\n"
		"TARGET is mqtt://HOST[:PORT] (default port 1883), "
		"mqtts://HOST[:PORT] (TLS,\n"
		"8883), coap://HOST[:PORT] (UDP, 5683) or coaps://HOST[:PORT] "
		"(DTLS, 5684);\n"
		"IPv6 addresses go in brackets. Only the targets given are "
		"contacted, one\n"
		"connection or socket at a time; no multicast; nothing is "
		"written but the\nreport (on stdout).\n\n"
		"Options:\n");
	cli_opt_print(f, &command, 26);
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

#define usage(...) cli_opt_usage("audit", __VA_ARGS__)

static int parse_num(const struct cli_opt *d, const char *v, unsigned *out)
{
	char *end;
	errno = 0;
	long n = strtol(v, &end, 10);
	if (errno || end == v || *end || n < (long)d->min ||
	    n > (long)d->max)
		return usage("--%s: expected a number from %ld to %ld, got '%s'",
			     d->long_name, (long)d->min, (long)d->max, v);
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

static int apply(struct audit_opts *o, const struct cli_opt *d, char *v)
{
	switch ((enum aopt)d->code) {
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
	case A_HELP: break; /* CLI_OPT_HELP */
	}
	return MOAT_OK;
}

/* What the parser fills: the options and the targets (borrowed). */
struct audit_args {
	struct audit_opts *o;
	const char **targets;
	size_t n;
};

static int on_call(void *cfg, const struct cli_opt *o, char *v,
		   struct cli_pos *p)
{
	struct audit_args *x = cfg;
	(void)p;
	int rc = apply(x->o, o, v);
	return rc == MOAT_OK ? CLI_CONTINUE : rc;
}

static int on_arg(void *cfg, char *a)
{
	struct audit_args *x = cfg;
	if (x->n == AUDIT_MAX_TARGETS)
		return usage("at most %d targets", AUDIT_MAX_TARGETS);
	x->targets[x->n++] = a;
	return CLI_CONTINUE;
}

/* Parse argv (argv[0] is "audit"); targets (borrowed) into *targets.
 * CLI_CONTINUE, or an exit status. */
static int parse_args(struct audit_opts *o, int argc, char **argv,
		      const char **targets, size_t *ntargets)
{
	struct audit_args x = {.o = o, .targets = targets};
	struct cli_cmd c = command;
	c.cfg = &x;
	int rc = cli_opt_parse(&c, argc, argv);
	*ntargets = x.n;
	return rc;
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

static const struct {
	const char *prefix;
	enum audit_scheme scheme;
	long port;
} schemes[] = {
	{"mqtt", AUDIT_MQTT, 1883},
	{"mqtts", AUDIT_MQTTS, 8883},
	{"coap", AUDIT_COAP, 5683},
	{"coaps", AUDIT_COAPS, 5684},
};

/* "SCHEME://HOST[:PORT]" into t; err says why not. */
static int parse_target(const char *s, struct audit_target *t, char *err,
			size_t errsz)
{
	const char *p = NULL;
	size_t k;
	memset(t, 0, sizeof(*t));
	for (k = 0; k < MOAT_ARRAY_LEN(schemes) && !p; k++) {
		size_t n = strlen(schemes[k].prefix);
		if (!strncmp(s, schemes[k].prefix, n) &&
		    !strncmp(s + n, "://", 3)) {
			t->scheme = schemes[k].scheme;
			p = s + n + 3;
			break;
		}
	}
	if (!p) {
		snprintf(err, errsz, "expected mqtt://, mqtts://, coap:// or "
				     "coaps://HOST[:PORT]");
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
		n = schemes[k].port;
	snprintf(t->port, sizeof(t->port), "%ld", n);
	snprintf(t->spec, sizeof(t->spec), "%s://%s%s%s:%ld",
		 schemes[k].prefix, v6 ? "[" : "", t->host, v6 ? "]" : "", n);
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
		return usage("no target (mqtt://, mqtts://, coap:// or "
			     "coaps://HOST[:PORT])");
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
	if (rc != CLI_CONTINUE)
		goto out;
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
