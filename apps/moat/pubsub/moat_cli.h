/* moat command-line tool: the configuration shared by `moat pub` and
 * `moat sub`, and the option parser that fills it (moat_opts.c).
 * Internal to apps/moat. */
#ifndef MOAT_CLI_H
#define MOAT_CLI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "cli_opt.h"
#include "commands.h"
#include "common/moat_common.h"

enum cli_tool {
	CLI_PUB = 1,
	CLI_SUB = 2,
	CLI_COAP = 4, /* moat coap (coap/coap_cmd.c) */
};

/* Where `moat pub` takes its message from. */
enum cli_source {
	CLI_SRC_NONE = 0,
	CLI_SRC_MESSAGE, /* -m: the argument */
	CLI_SRC_FILE,    /* -f: a whole file */
	CLI_SRC_STDIN,   /* -s: all of stdin, one message */
	CLI_SRC_LINES,   /* -l: one message per stdin line */
	CLI_SRC_NULL,    /* -n: empty message */
};

/* A repeatable option's values; the strings are borrowed from argv. */
struct cli_list {
	const char **v;
	size_t n;
};

/* The packets -D COMMAND can add MQTT 5 properties to (moat_props.c). */
enum cli_pcmd {
	CLI_PCMD_CONNECT,
	CLI_PCMD_PUBLISH,
	CLI_PCMD_SUBSCRIBE,
	CLI_PCMD_WILL,
	CLI_PCMD_DISCONNECT,
	CLI_PCMD_N,
};

/* One -D property as given; strings are borrowed from argv. */
struct cli_prop {
	enum cli_pcmd cmd;
	uint8_t id;	/* PROP_* */
	uint32_t num;	/* numeric value */
	const char *a;	/* string value, or user property name */
	const char *b;	/* user property value */
};

/* The options only `moat coap` has; strings borrowed from argv. */
struct cli_coap {
	struct cli_list args; /* METHOD URI */
	const char *content_format;
	bool con, non;
	const char *psk_identity, *psk_file;
	const char *cafile, *cert, *key;
	long block_size; /* 0: default */
	long max_body;	 /* 0: default */
};

struct cli_cfg {
	enum cli_tool tool;
	const char *name; /* "pub" or "sub", for messages */
	/* Connection (both tools).  Strings are borrowed from argv unless
	 * noted. */
	const char *host;
	long port;
	const char *id;
	const char *id_prefix;
	char *client_id; /* owned: the id actually used */
	const char *username;
	char *password; /* owned copy; argv's copy is wiped */
	long keepalive;
	long qos;
	bool no_clean;
	bool debug;
	bool quiet;
	uint8_t proto_level;
	/* TLS: on with any TLS option or an mqtts:// URL. */
	bool tls;
	const char *cafile;
	const char *capath;
	const char *certfile;
	const char *keyfile;
	bool insecure;		 /* no host name check (as mosquitto) */
	const char *tls_version; /* --tls-version as given */
	int tls_min;		 /* its OpenSSL version; 0: default */
	/* MQTT over WebSockets: --ws or a ws[s]:// URL; ws_path: the
	 * listener's path (/mqtt by default). */
	bool ws;
	const char *ws_path;
	/* -L URL: an owned copy, cut in place into the parts below (all
	 * pointing into it), merged by cli_url_merge(). */
	char *url;
	const char *url_host;
	long url_port; /* 0: not in the URL */
	const char *url_user;
	char *url_password; /* owned until merged */
	const char *url_topic;
	bool url_tls; /* mqtts://, wss:// */
	bool url_ws;  /* ws://, wss:// */
	const char *will_topic;
	const char *will_payload;
	long will_qos; /* -1: not given */
	bool will_retain;
	/* MQTT 5 (both tools) */
	const char *session_expiry_arg; /* -x as given; NULL: not given */
	struct cli_prop *props;		/* -D, in command-line order */
	size_t n_props;
	/* The -D properties of each packet, wire-encoded without their
	 * length (owned; built by cli_props_encode()). */
	struct moat_bytes props_enc[CLI_PCMD_N];
	uint8_t *props_own[CLI_PCMD_N]; /* the buffers behind props_enc */
	/* pub */
	const char *topic;
	enum cli_source source;
	const char *source_arg; /* -m message or -f path */
	bool retain;
	/* sub */
	struct cli_list filters;
	struct cli_list filter_out;
	bool verbose;
	long count;   /* 0: no limit */
	long timeout; /* seconds; 0: none */
	bool no_eol;
	bool no_retained;
	bool retained_only;
	bool no_local;		  /* --nl (MQTT 5) */
	bool retain_as_published; /* --rap (MQTT 5) */
	long retain_handling;	  /* --rh (MQTT 5); -1: not given */
	const char *format;	  /* -F, or "%j" for --json; NULL: plain */
	bool json;
	struct cli_coap coap; /* moat coap */
};

/* Parse argv (argv[0] is the subcommand name) into cfg and check it.
 * Returns CLI_CONTINUE to run the command, or an exit code: CLI_EXIT_OK
 * after printing --help, CLI_EXIT_USAGE after a message on stderr.  Call
 * cli_cleanup() in every case. */
int cli_setup(struct cli_cfg *cfg, enum cli_tool tool, int argc, char **argv);
void cli_cleanup(struct cli_cfg *cfg);

/* Print the option list of tool (generated from the option table). */
void cli_print_usage(FILE *f, enum cli_tool tool);
/* Messages and lists (cli_common.c).  Print "moat NAME: message" on
 * stderr unless --quiet. */
void cli_error(const struct cli_cfg *cfg, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Print a usage error (even with --quiet) and return CLI_EXIT_USAGE. */
int cli_usage_error(const struct cli_cfg *cfg, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* -D / --property (moat_props.c).  cli_prop_parse() consumes COMMAND,
 * PROPERTY and one or two values from argv[*i + 1 ...] and advances *i;
 * cli_props_encode() checks the combination after parsing (MQTT 5 only,
 * a will for will properties, ...) and builds cfg->props_enc.  Both return
 * MOAT_OK or CLI_EXIT_USAGE after printing the error. */
int cli_prop_parse(struct cli_cfg *cfg, int argc, char **argv, int *i);
int cli_props_encode(struct cli_cfg *cfg);
void cli_props_cleanup(struct cli_cfg *cfg);

/* Append v to l; MOAT_OK or CLI_EXIT_USAGE after printing the error. */
int cli_list_add(const struct cli_cfg *cfg, struct cli_list *l,
		 const char *v);

/* -L URL (moat_url.c).  cli_url_parse() copies and splits arg (wiping a
 * password in it from argv); cli_url_merge(), after every option is read
 * and cfg->tls is known, moves host, port, user, password and topic into
 * cfg, refusing what was also given by its own option.  Both return
 * MOAT_OK or CLI_EXIT_USAGE after printing the error. */
int cli_url_parse(struct cli_cfg *cfg, char *arg);
int cli_url_merge(struct cli_cfg *cfg);
/* Print the -D help (commands and properties) for tool. */
void cli_props_usage(FILE *f, enum cli_tool tool);

/* -F output format of moat sub (sub_format.c).  cli_format_check()
 * validates cfg->format (MOAT_OK or CLI_EXIT_USAGE after printing the
 * error).  cli_format_print() writes one message to f (without the
 * newline); MOAT_EIO when f fails, MOAT_ENOMEM when a sequence cannot be
 * rendered. */
struct moat_client_msg;
int cli_format_check(const struct cli_cfg *cfg);
int cli_format_print(const struct cli_cfg *cfg, FILE *f,
		     const struct moat_client_msg *m);

/* -m/-f/-s: read the message from a file or stdin into b (whose max is
 * the limit + 1); MOAT_OK, or an error after a message (pubsub.c). */
int cli_read_source(const struct cli_cfg *cfg, struct moat_buf *b);
/* SIGINT and SIGTERM make cli_signal_fd() readable (pubsub.c), so that a
 * wait can poll it; MOAT_OK or MOAT_EIO. */
int cli_catch_signals(void);
int cli_signal_fd(void);
/* JSON for other commands' output (sub_format.c): a JSON string of
 * UTF-8 v; "key":"text" when v is UTF-8, else "key-base64":"...". */
int cli_json_str(struct moat_buf *b, struct moat_bytes v);
int cli_json_data(struct moat_buf *b, const char *key, struct moat_bytes v);

#endif
