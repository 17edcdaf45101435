/* moat: the command-line tool.  One table names every command, its main
 * and its help; this file only dispatches.  Each command parses its own
 * options with the one engine (cli_opt.h). */
#include <stdio.h>
#include <string.h>

#include "cli_opt.h"
#include "commands.h"
#include "common/moat_common.h"

struct moat_command {
	const char *name;
	int (*main)(int argc, char **argv); /* argv[0] is the name */
	void (*usage)(FILE *f);		    /* the command's --help */
	const char *summary;		    /* for `moat --help` */
};

static const struct moat_command commands[] = {
	{"pub", moat_pub_main, moat_pub_usage,
	 "publish messages (like mosquitto_pub)"},
	{"sub", moat_sub_main, moat_sub_usage,
	 "subscribe and print messages (like mosquitto_sub)"},
	{"passwd", moat_passwd_main, moat_passwd_usage,
	 "add, change or delete a user in a password file (like "
	 "mosquitto_passwd)"},
	{"audit", moat_audit_main, moat_audit_usage,
	 "probe your own brokers for security weaknesses, or lint a moatd or "
	 "mosquitto configuration (--config)"},
	{"scan", moat_scan_main, moat_scan_usage,
	 "scan message payloads for leaked secrets and personal data"},
	{"coap", moat_coap_main, moat_coap_usage,
	 "a CoAP client: get, put, post, delete, observe (coap://, coaps:// "
	 "with DTLS)"},
	{"bench", moat_bench_main, moat_bench_usage,
	 "generate load against a broker and measure it (fan-in, fan-out, "
	 "pairs, latency, conn)"},
};

static const struct moat_command *find_command(const char *name)
{
	for (size_t i = 0; i < MOAT_ARRAY_LEN(commands); i++)
		if (strcmp(commands[i].name, name) == 0)
			return &commands[i];
	return NULL;
}

static void print_help(FILE *f)
{
	fputs("Usage: moat COMMAND [OPTION]...\n"
	      "\n"
	      "An MQTT 5.0, 3.1.1 and 3.1 command-line client (-V 5 for "
	      "MQTT 5).\n"
	      "\n"
	      "Commands:\n",
	      f);
	for (size_t i = 0; i < MOAT_ARRAY_LEN(commands); i++) {
		int at = fprintf(f, "  %s", commands[i].name);
		cli_opt_wrap(f, commands[i].summary, 13, at);
	}
	fputs("  help [COMMAND]\n"
	      "             show this help, or the options of COMMAND\n"
	      "\n"
	      "Options:\n"
	      "  --help     show this help\n"
	      "  --version  show the version\n"
	      "\n"
	      "Exit status:\n"
	      "  0   success (pub: every message acknowledged at its QoS)\n"
	      "  1   connection, protocol or I/O error (connection "
	      "refused,\n"
	      "      subscription or message refused, broker gone, ...)\n"
	      "  2   usage error (unknown command or option, bad value)\n"
	      "  27  moat sub: the -W timeout expired\n"
	      "  moat audit: 0 no finding at or above --fail-on, 1 such "
	      "findings,\n"
	      "  2 usage error or a target that could not be audited\n"
	      "  moat scan: 0 no findings, 1 findings, 2 error\n"
	      "  moat coap: 0 a 2.xx answer, 1 a 4.xx or 5.xx answer, 2 "
	      "error or\n"
	      "  timeout\n"
	      "\n"
	      "Run 'moat COMMAND --help' for the options of a command.\n",
	      f);
}

static int usage_hint(const char *what, const char *arg)
{
	fprintf(stderr, "moat: %s '%s'\n", what, arg);
	fprintf(stderr, "Try 'moat --help' for more information.\n");
	return CLI_EXIT_USAGE;
}

static int help_command(int argc, char **argv)
{
	if (argc < 2) {
		print_help(stdout);
		return CLI_EXIT_OK;
	}
	const struct moat_command *c = find_command(argv[1]);
	if (!c)
		return usage_hint("unknown command", argv[1]);
	c->usage(stdout);
	return CLI_EXIT_OK;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		print_help(stderr);
		return CLI_EXIT_USAGE;
	}
	const char *name = argv[1];
	const struct moat_command *c = find_command(name);
	if (c)
		return c->main(argc - 1, argv + 1);
	if (strcmp(name, "help") == 0)
		return help_command(argc - 1, argv + 1);
	if (strcmp(name, "--help") == 0 || strcmp(name, "-h") == 0) {
		print_help(stdout);
		return CLI_EXIT_OK;
	}
	if (strcmp(name, "--version") == 0) {
		printf("moat %s\n", MOAT_VERSION);
		return CLI_EXIT_OK;
	}
	if (name[0] == '-')
		return usage_hint("unknown option", name);
	return usage_hint("unknown command", name);
}
