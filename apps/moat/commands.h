/* The commands of `moat`, as main.c's table lists them: each one's main
 * (argv[0] is the command's name; returns the exit status) and its --help
 * text.  Every command lives in its own folder:
 *
 *   pubsub/  pub and sub (mosquitto_pub/_sub's options), on src/client
 *   passwd/  the password file tool (mosquitto_passwd's counterpart)
 *   audit/   the security prober and configuration linter
 *   scan/    the payload leak scanner
 *   coap/    the CoAP client (shares pub's option table and helpers)
 *   bench/   the load generator
 *
 * They share cli_opt.h, the option engine. */
#ifndef MOAT_COMMANDS_H
#define MOAT_COMMANDS_H

#include <stddef.h>
#include <stdio.h>

int moat_pub_main(int argc, char **argv);
void moat_pub_usage(FILE *f);
int moat_sub_main(int argc, char **argv);
void moat_sub_usage(FILE *f);
int moat_passwd_main(int argc, char **argv);
void moat_passwd_usage(FILE *f);
int moat_audit_main(int argc, char **argv);
void moat_audit_usage(FILE *f);
int moat_scan_main(int argc, char **argv);
void moat_scan_usage(FILE *f);
int moat_coap_main(int argc, char **argv);
void moat_coap_usage(FILE *f);
int moat_bench_main(int argc, char **argv);
void moat_bench_usage(FILE *f);
/* moat bench --coap (bench/bench_coap.c). */
int moat_bench_coap_main(int argc, char **argv);
void moat_bench_coap_usage(FILE *f);

/* Helpers one command lends another. */
/* Prompt on /dev/tty with echo off and read one line (at most
 * CLI_SECRET_MAX bytes, NUL-terminated, without the newline) into buf,
 * which holds CLI_SECRET_MAX + 1 (passwd_cmd.c).  MOAT_OK, MOAT_ELIMIT,
 * MOAT_EINVAL (a NUL byte), MOAT_ECLOSED (no input), MOAT_EIO. */
#define CLI_SECRET_MAX 65535
int cli_tty_secret(const char *prompt, char *buf, size_t *len);

#endif
