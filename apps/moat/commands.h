/* The commands of `moat`, as main.c's table lists them: each one's main
 * (argv[0] is the command's name; returns the exit status) and its --help
 * text.  Every command lives in its own folder:
 *
 *   pubsub/  pub and sub (mosquitto_pub/_sub's options), on src/client
 *   passwd/  the password file tool (mosquitto_passwd's counterpart)
 *   audit/   the security prober and configuration linter
 *   scan/    the payload leak scanner
 *   bench/   the load generator
 *
 * They share cli_opt.h, the option engine. */
#ifndef MOAT_COMMANDS_H
#define MOAT_COMMANDS_H

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
int moat_bench_main(int argc, char **argv);
void moat_bench_usage(FILE *f);

#endif
