/* moatd — the moat MQTT broker. */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "broker/broker.h"
#include "config/cfg.h"
#include "check.h"
#include "moatd_cmds.h"
#include "net/ossl_mem.h"
#include "runas.h"

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: moatd [-c FILE] [-p PORT] [-v] [--test-config]\n"
		"       moatd init DIR [--san NAME]... [--force]\n"
		"       moatd --check -c FILE [--format text|json]\n"
		"       moatd migrate [--force] MOSQUITTO_CONF OUTDIR\n"
		"       moatd migrate --retained FROM_HOST:PORT --to HOST:PORT\n"
		"\n"
		"moat MQTT broker (MQTT 5.0, 3.1.1 and 3.1 over TCP, TLS and\n"
		"WebSockets; CoAP over UDP and DTLS; metrics and an API over HTTP).\n"
		"With no configuration file it listens on 127.0.0.1:1883 "
		"only.\n"
		"\n"
		"  -c, --config FILE   read the configuration from FILE\n"
		"  -p, --port PORT     listen on 127.0.0.1:PORT (in addition "
		"to\n"
		"                      the file's listeners; replaces the "
		"default)\n"
		"  -v, --verbose       log at level info (-vv: debug)\n"
		"  -t, --test-config   check the configuration (and the files it names:\n"
		"                      password file, ACL, certificates, keys) and exit\n"
		"      --help-config   list every configuration directive\n"
		"      --check         lint FILE (moatd.conf or mosquitto.conf) "
		"and the\n"
		"                      files it names for security problems, "
		"then exit\n"
		"                      (finding ids: docs/security-checks.md)\n"
		"      --format FMT    --check output: text (default) or json\n"
		"  -h, --help          this help\n"
		"  -V, --version       print the version\n"
		"\n"
		"moatd init DIR writes a production-ready set-up into DIR: a "
		"CA, a TLS\n"
		"server certificate, an admin password, an ACL and moatd.conf "
		"(moatd init\n"
		"--help).\n"
		"moatd migrate writes a moatd set-up equivalent to a mosquitto "
		"one, with a\nreport of what was and was not carried over "
		"(moatd migrate --help).\n"
		"\n"
		"Signals: SIGINT or SIGTERM stop the broker cleanly; SIGHUP "
		"reloads the\nconfiguration, password file, ACL and "
		"certificates (docs/security.md), and\nopens the log_dest "
		"file again (docs/logging.md).\n"
		"Metrics and health: a 'protocol http' listener "
		"(docs/metrics.md).\n"
		"Exit status: 0 after a clean stop, 1 on a configuration or "
		"start-up error,\n"
		"2 on a usage error.\n"
		"--check exits with 0 when no finding is high or critical, 1 "
		"when one is,\n"
		"2 on a usage error or an unreadable file.\n");
}

static int add_port(struct moat_config *cfg, const char *arg)
{
	char *end;
	long port = strtol(arg, &end, 10);
	if (*end || port < 0 || port > 65535 ||
	    cfg->nlisteners == MOAT_CFG_MAX_LISTENERS) {
		fprintf(stderr, "moatd: invalid port '%s'\n", arg);
		return -1;
	}
	struct moat_listener_cfg *l = &cfg->listeners[cfg->nlisteners++];
	snprintf(l->addr, sizeof(l->addr), "127.0.0.1");
	l->port = (uint16_t)port;
	return 0;
}

struct start_args;
static void reload_config(struct moat_broker *b, const struct start_args *a);

struct start_args {
	const char *file;
	const struct moat_config *ports; /* -p listeners */
	int verbose;
};

/* Read the configuration as at start: file, then -p listeners, then the
 * whole-file checks.  MOAT_OK or an error in err. */
static int read_config(const struct start_args *a, struct moat_config *cfg,
		       struct moat_cfg_err *err)
{
	moat_cfg_defaults(cfg);
	if (a->file && moat_cfg_load_file(cfg, a->file, err) != MOAT_OK)
		return MOAT_EINVAL;
	for (size_t i = 0; i < a->ports->nlisteners; i++) {
		if (cfg->nlisteners == MOAT_CFG_MAX_LISTENERS) {
			snprintf(err->msg, sizeof(err->msg),
				 "too many listeners");
			return MOAT_EINVAL;
		}
		cfg->listeners[cfg->nlisteners++] = a->ports->listeners[i];
	}
	if (moat_cfg_finish(cfg, err) != MOAT_OK)
		return MOAT_EINVAL;
	if (a->verbose)
		cfg->log_level = a->verbose > 1 ? MOAT_LOG_DEBUG : MOAT_LOG_INFO;
	return MOAT_OK;
}

static void warn_insecure(const struct moat_config *cfg)
{
	for (size_t i = 0; i < cfg->nlisteners; i++) {
		char risks[400];
		moat_cfg_listener_risks(cfg, i, risks, sizeof(risks));
		if (risks[0])
			moat_warn("INSECURE: listener %u on %s is reachable "
				  "from the network %s "
				  "(allow_insecure_listener true)",
				  (unsigned)cfg->listeners[i].port,
				  cfg->listeners[i].addr[0]
					  ? cfg->listeners[i].addr
					  : "all addresses",
				  risks);
	}
}

/* log_format and log_dest of cfg, in force from now on. */
static int apply_log(const struct moat_config *cfg)
{
	char err[600];
	moat_log_set_level(cfg->log_level);
	if (moat_log_open((enum moat_log_format)cfg->log_format,
			  (enum moat_log_dest)cfg->log_dest, cfg->log_file, err,
			  sizeof(err)) != MOAT_OK) {
		moat_err_log("log_dest: %s", err);
		return -1;
	}
	return 0;
}

static void reload(struct moat_broker *b, const struct start_args *a)
{
	char note[64];
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	snprintf(note, sizeof(note), "RELOADING=1\nMONOTONIC_USEC=%llu",
		 (unsigned long long)ts.tv_sec * 1000000ull +
			 (unsigned long long)ts.tv_nsec / 1000ull);
	moatd_notify(note);
	reload_config(b, a);
	moatd_notify("READY=1");
}

static void reload_config(struct moat_broker *b, const struct start_args *a)
{
	struct moat_config *cfg = malloc(sizeof(*cfg));
	struct moat_cfg_err err;
	char why[800];
	if (!cfg) {
		moat_err_log("reload failed: out of memory; keeping the "
			     "current configuration");
		return;
	}
	if (read_config(a, cfg, &err) != MOAT_OK) {
		moat_err_log("reload failed: %s; keeping the current "
			     "configuration", err.msg);
	} else if (moat_broker_reload(b, cfg, why, sizeof(why)) != MOAT_OK) {
		moat_err_log("reload failed: %s; keeping the current "
			     "configuration", why);
	} else {
		/* (A log_dest that cannot be opened keeps the current one.) */
		(void)apply_log(cfg);
		warn_insecure(cfg);
		moat_notice("configuration reloaded from %s",
			    a->file ? a->file : "(defaults)");
	}
	free(cfg);
}

/* Allocation torture for tests (docs/testing.md): with
 * MOAT_ALLOC_FAIL_EVERY=N in the environment, every N-th allocation after
 * start-up fails, to exercise the error paths under real traffic. */
static void torture_mode(void)
{
	const char *v = getenv("MOAT_ALLOC_FAIL_EVERY");
	long n = v ? strtol(v, NULL, 10) : 0;
	if (n > 0) {
		moat_warn("MOAT_ALLOC_FAIL_EVERY=%ld: every %ld-th allocation "
			  "fails (testing only)",
			  n, n);
		moat_alloc_fail_every(n);
	}
}

struct drop_args {
	const struct moat_config *cfg;
	const struct moatd_runas *ra;
};

/* The broker's before_store hook: drop root (runas.c). */
static int drop_root(void *arg)
{
	const struct drop_args *d = arg;
	char err[300];
	moatd_runas_own_store(d->cfg, d->ra);
	if (moatd_runas_drop(d->ra, err, sizeof(err)) != MOAT_OK) {
		moat_err_log("%s", err);
		return MOAT_EDENIED;
	}
	return MOAT_OK;
}

/* Tell the systemd watchdog we are alive, unless a worker's loop has
 * not come round for a whole watchdog interval: then say nothing, and
 * systemd restarts the service when the interval ends. */
static void watchdog_ping(struct moat_broker *b, uint64_t watchdog_us)
{
	/* Idle workers wake every 500 ms: under 5 s is never a hang. */
	uint64_t max_ms = watchdog_us / 1000u > 5000 ? watchdog_us / 1000u
						     : 5000;
	int w = moat_broker_stalled(b, max_ms);
	if (w < 0) {
		moatd_notify("WATCHDOG=1");
		return;
	}
	moat_err_log("worker %d has not come round its event loop for over "
		     "%llu ms: not answering the watchdog", w,
		     (unsigned long long)max_ms);
}

/* Wait for a signal; with a systemd watchdog, answer it at half its
 * interval meanwhile.  Returns the signal. */
static int wait_signal(struct moat_broker *b, const sigset_t *set,
		       uint64_t watchdog_us)
{
	for (;;) {
		int sig;
		if (!watchdog_us) {
			if (sigwait(set, &sig) == 0)
				return sig;
			continue;
		}
		/* Half the interval, as sd_watchdog_enabled(3) advises; never
		 * a busy loop. */
		uint64_t half = watchdog_us / 2 > 10000 ? watchdog_us / 2 : 10000;
		struct timespec ts = {.tv_sec = (time_t)(half / 1000000u),
				      .tv_nsec = (long)(half % 1000000u) * 1000};
		sig = sigtimedwait(set, NULL, &ts);
		if (sig > 0)
			return sig;
		if (errno == EAGAIN)
			watchdog_ping(b, watchdog_us);
	}
}

static int serve(const struct moat_config *cfg, const struct start_args *a)
{
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGHUP);
	/* Workers inherit the mask; only this thread takes signals. */
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);
	/* A file-size limit makes a database write fail (reported, retried)
	 * instead of killing the broker. */
	signal(SIGXFSZ, SIG_IGN);

	struct moatd_runas ra;
	char err[300];
	if (moatd_runas_resolve(cfg, &ra, err, sizeof(err)) != MOAT_OK) {
		moat_err_log("%s", err);
		return 1;
	}
	if (ra.as_root)
		moat_warn("running as root ('user root'): a flaw in moatd "
			  "would be a flaw with root's rights");
	struct moat_broker *b;
	struct drop_args d = {.cfg = cfg, .ra = &ra};
	if (moat_broker_new_hook(cfg, drop_root, &d, &b) != MOAT_OK)
		return 1;
	moat_broker_set_check(b, moatd_check_json);
	if (moat_broker_start(b) != MOAT_OK) {
		moat_broker_free(b);
		return 1;
	}
	torture_mode();
	moatd_notify("READY=1\nSTATUS=serving");
	uint64_t watchdog_us = moatd_watchdog_usec();
	for (;;) {
		int sig = wait_signal(b, &set, watchdog_us);
		if (sig == SIGHUP) {
			/* logrotate: the file first, whatever the reload's
			 * verdict. */
			char lerr[600];
			if (moat_log_reopen(lerr, sizeof(lerr)) != MOAT_OK)
				moat_err_log("log file: %s; still writing to the "
					     "old one",
					     lerr);
			reload(b, a);
			continue;
		}
		moat_notice("signal %d: shutting down", sig);
		break;
	}
	moatd_notify("STOPPING=1");
	moat_alloc_fail_every(0); /* a clean teardown, also under torture */
	moat_broker_free(b);
	moat_notice("stopped");
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"config", required_argument, 0, 'c'},
		{"port", required_argument, 0, 'p'},
		{"verbose", no_argument, 0, 'v'},
		{"test-config", no_argument, 0, 't'},
		{"help-config", no_argument, 0, 'C'},
		{"help", no_argument, 0, 'h'},
		{"version", no_argument, 0, 'V'},
		{"check", no_argument, 0, 'K'},
		{"format", required_argument, 0, 'F'},
		{0, 0, 0, 0},
	};
	struct moat_config cfg;
	struct moat_cfg_err err;
	const char *file = NULL;
	bool test_only = false, check = false;
	const char *format = NULL; /* --check output */
	int verbose = 0, opt;
	struct moat_config ports; /* -p listeners, applied after the file */
	memset(&ports, 0, sizeof(ports));

	/* Before OpenSSL allocates anything: its allocations for DTLS
	 * sessions are then counted in memory_limit byte for byte. */
	(void)moat_ossl_mem_install();
	/* Sub-commands come first, before the broker's own options. */
	if (argc > 1 && strcmp(argv[1], "init") == 0)
		return moatd_init_main(argc - 1, argv + 1);
	if (argc > 1 && strcmp(argv[1], "migrate") == 0)
		return moatd_migrate_main(argc - 1, argv + 1);

	while ((opt = getopt_long(argc, argv, "c:p:vthV", opts, NULL)) != -1) {
		switch (opt) {
		case 'c': file = optarg; break;
		case 'p':
			if (add_port(&ports, optarg))
				return 2;
			break;
		case 'v': verbose++; break;
		case 't': test_only = true; break;
		case 'K': check = true; break;
		case 'F': format = optarg; break;
		case 'C': moat_cfg_print_reference(stdout); return 0;
		case 'h': usage(stdout); return 0;
		case 'V': printf("moatd %s\n", MOAT_VERSION); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "moatd: unexpected argument '%s'\n",
			argv[optind]);
		usage(stderr);
		return 2;
	}
	if (check && (test_only || ports.nlisteners)) {
		fprintf(stderr, "moatd: --check takes only -c FILE and "
				"--format\n");
		return 2;
	}
	if (check)
		return moatd_check(file, format);
	if (format) {
		fprintf(stderr, "moatd: --format goes with --check\n");
		return 2;
	}
	struct start_args a = {.file = file, .ports = &ports, .verbose = verbose};
	if (read_config(&a, &cfg, &err) != MOAT_OK) {
		fprintf(stderr, "moatd: %s\n", err.msg);
		return 1;
	}
	bool defaulted = !file && !ports.nlisteners;
	moat_log_set_level(cfg.log_level);
	if (!test_only && apply_log(&cfg) != 0)
		return 1;
	if (test_only) {
		/* The files it names too: password file, ACL, certificates,
		 * keys (as a start would load them). */
		char ferr[800];
		struct moatd_runas ra;
		if (moatd_runas_resolve(&cfg, &ra, ferr, sizeof(ferr)) ||
		    moat_broker_check_files(&cfg, ferr, sizeof(ferr))) {
			fprintf(stderr, "moatd: %s: %s\n",
				file ? file : "(defaults)", ferr);
			return 1;
		}
		printf("moatd: configuration %s is valid\n",
		       file ? file : "(defaults)");
		return 0;
	}
	moat_notice("moat %s starting", MOAT_VERSION);
	if (defaulted)
		moat_notice("no listener configured: local development mode, "
			    "listening on 127.0.0.1:1883 only (loopback). Use "
			    "-c FILE to configure listeners.");
	warn_insecure(&cfg);
	return serve(&cfg, &a);
}
