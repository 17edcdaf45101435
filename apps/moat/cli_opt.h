/* The option engine of every moat command: one syntax, one set of error
 * messages, and --help generated from the same table the parser reads.
 *
 * Syntax (for pub, sub, passwd, audit, scan and bench alike):
 *   --name, --name VALUE, --name=VALUE   long options
 *   -x, -x VALUE                         short options; those without a
 *   -xyz                                 value may be bundled (-x -y -z);
 *                                        a value is never attached (-V5)
 *   --                                   the rest are arguments, even when
 *                                        they start with '-'
 *   -                                    an argument (stdin, by custom)
 * A value is the next argument whatever it looks like (-m -1 works).
 *
 * Errors, each "moat CMD: ..." plus "Try 'moat CMD --help' for more
 * information." on stderr and exit status 2:
 *   unknown option '-x'
 *   unexpected argument 'x'          (a command without arguments)
 *   option '-x' needs VALUE          (the value's name in --help)
 *   option '--name' takes no value
 *   option '-x' needs a number from MIN to MAX, not 'V' */
#ifndef MOAT_CLI_OPT_H
#define MOAT_CLI_OPT_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

/* Exit codes (documented in `moat --help` and docs/cli.md). */
#define CLI_EXIT_OK 0
#define CLI_EXIT_FAIL 1	    /* connection, protocol or I/O error */
#define CLI_EXIT_USAGE 2    /* bad command line */
#define CLI_EXIT_TIMEOUT 27 /* moat sub -W expired (as mosquitto_sub) */
/* Not an exit code: go on (parsing, or running the command). */
#define CLI_CONTINUE (-1)

enum cli_opt_kind {
	CLI_OPT_FLAG,	/* bool field = true */
	CLI_OPT_STR,	/* const char * field = the value (borrowed) */
	CLI_OPT_LONG,	/* long field = the value, within [min, max] */
	CLI_OPT_DOUBLE, /* double field = the value, within [min, max] */
	CLI_OPT_SECRET, /* char * field = an owned copy; argv's copy is
			 * overwritten with '*' (ps shows it briefly only) */
	CLI_OPT_CALL,	/* the command's call() with the option's code */
	CLI_OPT_HELP,	/* print the command's help; exit 0 */
};

struct cli_opt {
	char short_name;       /* 0: none */
	const char *long_name; /* without "--"; NULL: none */
	unsigned variants;     /* of the command (pub/sub); 0: every one */
	enum cli_opt_kind kind;
	size_t offset;	  /* the field in the command's configuration */
	double min, max;  /* CLI_OPT_LONG, CLI_OPT_DOUBLE range (and for
			   * CLI_OPT_CALL, if the command wants one) */
	const char *arg;  /* the value's name in --help; NULL: none taken */
	const char *help; /* one sentence; wrapped by the help printer */
	int code;	  /* CLI_OPT_CALL: the command's code for it */
};

/* Where the parser is, for call()s that take more than one value (moat
 * pub -D): they may consume argv[i + 1 ...] and advance i. */
struct cli_pos {
	int argc;
	char **argv;
	int i;		 /* argv[i] is the option */
	const char *as;	 /* the option as written, for messages */
};

struct cli_cmd {
	const char *name; /* "pub": messages say "moat pub: ..." */
	const struct cli_opt *opts;
	size_t nopts;
	unsigned variant; /* which options apply (struct cli_opt.variants) */
	void *cfg;	  /* the fields the offsets point into */
	/* CLI_OPT_CALL: value is NULL for an option without arg.
	 * CLI_CONTINUE, or an exit code (after printing: cli_opt_usage()
	 * for a usage error). */
	int (*call)(void *cfg, const struct cli_opt *o, char *value,
		    struct cli_pos *p);
	/* A non-option argument (CLI_CONTINUE or an exit code); NULL: the
	 * command takes none. */
	int (*arg)(void *cfg, char *a);
	/* The whole --help text (usually with cli_opt_print() inside). */
	void (*usage)(FILE *f);
};

/* Parse argv[1 ..] (argv[0] is the command name).  CLI_CONTINUE to go
 * on; CLI_EXIT_OK after printing the help; CLI_EXIT_USAGE after printing
 * the error; or the exit code call()/arg() returned. */
int cli_opt_parse(const struct cli_cmd *c, int argc, char **argv);

/* The option list of c's variant, "  -x, --name VALUE  help", the help
 * starting in column col and wrapped at 79 columns. */
void cli_opt_print(FILE *f, const struct cli_cmd *c, int col);

/* text from column col, wrapped at 79 columns; the first line continues
 * a line that already has at columns. */
void cli_opt_wrap(FILE *f, const char *text, int col, int at);

/* "moat CMD: MESSAGE" and the --help hint on stderr; returns
 * CLI_EXIT_USAGE. */
int cli_opt_usage(const char *cmd, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
int cli_opt_vusage(const char *cmd, const char *fmt, va_list ap)
	__attribute__((format(printf, 2, 0)));

/* A whole number within [min, max] into *out: CLI_CONTINUE, or
 * CLI_EXIT_USAGE after the error above. */
int cli_opt_long(const char *cmd, const char *as, const char *v, long min,
		 long max, long *out);

#endif
