/* moat: command-line MQTT client.  `moat pub` publishes, `moat sub`
 * subscribes and prints; both take mosquitto_pub/mosquitto_sub's common
 * options (moat_opts.c) and run on the moat client library
 * (src/client/client.h).  This file only dispatches the subcommand. */
#include <stdio.h>
#include <string.h>

#include "bench.h"
#include "moat_cli.h"

static void print_help(FILE *f)
{
	fprintf(f,
		"Usage: moat COMMAND [OPTION]...\n"
		"\n"
		"An MQTT 5.0, 3.1.1 and 3.1 command-line client (-V 5 for "
		"MQTT 5).\n"
		"\n"
		"Commands:\n"
		"  pub        publish messages (like mosquitto_pub)\n"
		"  sub        subscribe and print messages (like "
		"mosquitto_sub)\n"
		"  passwd     add, change or delete a user in a password file "
		"(like\n"
		"             mosquitto_passwd)\n"
		"  audit      probe your own brokers for security weaknesses, "
		"or lint a\n"
		"             moatd or mosquitto configuration (--config)\n"
		"  scan       scan message payloads for leaked secrets and "
		"personal data\n"
		"  coap       a CoAP client: get, put, post, delete, observe "
		"(coap://,\n"
		"             coaps:// with DTLS)\n"
		"  bench      generate load against a broker and measure it "
		"(fan-in,\n"
		"             fan-out, pairs, latency, conn)\n"
		"  help [COMMAND]\n"
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
		"Run 'moat COMMAND --help' for the options of a command.\n");
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
	if (strcmp(argv[1], "pub") == 0) {
		cli_print_usage(stdout, CLI_PUB);
		return CLI_EXIT_OK;
	}
	if (strcmp(argv[1], "sub") == 0) {
		cli_print_usage(stdout, CLI_SUB);
		return CLI_EXIT_OK;
	}
	if (strcmp(argv[1], "passwd") == 0) {
		moat_passwd_usage(stdout);
		return CLI_EXIT_OK;
	}
	if (strcmp(argv[1], "audit") == 0) {
		moat_audit_usage(stdout);
		return CLI_EXIT_OK;
	}
	if (strcmp(argv[1], "scan") == 0) {
		moat_scan_usage(stdout);
		return CLI_EXIT_OK;
	}
	if (strcmp(argv[1], "coap") == 0) {
		moat_coap_usage(stdout);
		return CLI_EXIT_OK;
	}
	if (strcmp(argv[1], "bench") == 0) {
		moat_bench_usage(stdout);
		return CLI_EXIT_OK;
	}
	return usage_hint("unknown command", argv[1]);
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		print_help(stderr);
		return CLI_EXIT_USAGE;
	}
	const char *cmd = argv[1];
	if (strcmp(cmd, "pub") == 0)
		return moat_pub_main(argc - 1, argv + 1);
	if (strcmp(cmd, "sub") == 0)
		return moat_sub_main(argc - 1, argv + 1);
	if (strcmp(cmd, "passwd") == 0)
		return moat_passwd_main(argc - 1, argv + 1);
	if (strcmp(cmd, "audit") == 0)
		return moat_audit_main(argc - 1, argv + 1);
	if (strcmp(cmd, "scan") == 0)
		return moat_scan_main(argc - 1, argv + 1);
	if (strcmp(cmd, "coap") == 0)
		return moat_coap_main(argc - 1, argv + 1);
	if (strcmp(cmd, "bench") == 0)
		return moat_bench_main(argc - 1, argv + 1);
	if (strcmp(cmd, "help") == 0)
		return help_command(argc - 1, argv + 1);
	if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0) {
		print_help(stdout);
		return CLI_EXIT_OK;
	}
	if (strcmp(cmd, "--version") == 0) {
		printf("moat %s\n", MOAT_VERSION);
		return CLI_EXIT_OK;
	}
	if (cmd[0] == '-')
		return usage_hint("unknown option", cmd);
	return usage_hint("unknown command", cmd);
}
