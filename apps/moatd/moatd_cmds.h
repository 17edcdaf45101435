/* Sub-commands of moatd (moatd CMD ...), dispatched by main before it
 * parses the broker's own options. */
#ifndef MOATD_CMDS_H
#define MOATD_CMDS_H

#include <stdio.h>

/* moatd init DIR [--san NAME]... [--force]: write a CA, a server
 * certificate, an admin password, an ACL and moatd.conf into DIR.
 * argv[0] is "init".  Returns the process exit status: 0 done, 1 failed
 * (nothing half-written is left behind), 2 usage error. */
int moatd_init_main(int argc, char **argv);
/* The usage text of moatd init. */
void moatd_init_usage(FILE *f);

/* moatd migrate MOSQUITTO_CONF OUTDIR, or moatd migrate --retained FROM
 * --to TO (migrate.c).  argv[0] is "migrate".  Returns the exit status:
 * 0 done, 1 failed, 2 usage error. */
int moatd_migrate_main(int argc, char **argv);

#endif
