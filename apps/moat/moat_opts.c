/* Command-line options of `moat pub` and `moat sub`: one table drives the
 * parser and the --help text, so the two cannot drift apart.  Option names
 * follow mosquitto_pub/mosquitto_sub. */
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "codec/mqtt_codec.h"
#include "moat_cli.h"

enum opt_kind {
	OPT_FLAG,   /* bool field = true */
	OPT_STR,    /* const char * field = argument */
	OPT_INT,    /* long field = argument within [min, max] */
	OPT_LIST,   /* struct cli_list field += argument (repeatable) */
	OPT_SOURCE, /* pub message source; min = enum cli_source */
	OPT_SECRET, /* char * field = copy of the argument; argv wiped */
	OPT_PROTO,  /* -V protocol version */
	OPT_PROPERTY, /* -D COMMAND PROPERTY VALUE... (moat_props.c) */
	OPT_HELP,
};

#define BOTH (CLI_PUB | CLI_SUB)
#define F(field) offsetof(struct cli_cfg, field)

struct cli_opt {
	char short_name;       /* 0: none */
	const char *long_name; /* without "--"; NULL: none */
	unsigned tools;        /* CLI_PUB | CLI_SUB */
	enum opt_kind kind;
	size_t offset; /* field in struct cli_cfg */
	long min, max; /* OPT_INT range; OPT_SOURCE: min = the source */
	const char *arg;  /* argument name in --help; NULL: takes none */
	const char *help; /* one line */
};

static const struct cli_opt options[] = {
	{'h', "host", BOTH, OPT_STR, F(host), 0, 0, "HOST",
	 "broker host name or address (default: localhost)"},
	{'p', "port", BOTH, OPT_INT, F(port), 1, 65535, "PORT",
	 "broker port (default: 1883)"},
	{'i', "id", BOTH, OPT_STR, F(id), 0, 0, "ID",
	 "client id (default: moat-pub-PID / moat-sub-PID)"},
	{'I', "id-prefix", BOTH, OPT_STR, F(id_prefix), 0, 0, "PREFIX",
	 "client id is PREFIX followed by the process id"},
	{'u', "username", BOTH, OPT_STR, F(username), 0, 0, "USER",
	 "user name for authentication"},
	{'P', "pw", BOTH, OPT_SECRET, F(password), 0, 0, "PASSWORD",
	 "password (needs -u); safer: MOAT_PASSWORD in the environment"},
	{0, "password", BOTH, OPT_SECRET, F(password), 0, 0, "PASSWORD",
	 "same as -P"},
	{'k', "keepalive", BOTH, OPT_INT, F(keepalive), 0, 65535, "SECONDS",
	 "keep-alive interval, 0 disables (default: 60)"},
	{'q', "qos", CLI_PUB, OPT_INT, F(qos), 0, 2, "QOS",
	 "QoS of the messages: 0, 1 or 2 (default: 0)"},
	{'q', "qos", CLI_SUB, OPT_INT, F(qos), 0, 2, "QOS",
	 "QoS of the subscriptions: 0, 1 or 2 (default: 0)"},
	{'c', "disable-clean-session", BOTH, OPT_FLAG, F(no_clean), 0, 0, NULL,
	 "keep a persistent session (needs -i)"},
	{'V', "protocol-version", BOTH, OPT_PROTO, 0, 0, 0, "VERSION",
	 "5 or mqttv5, 311 or mqttv311 (default), 31 or mqttv31"},
	{'x', "session-expiry-interval", BOTH, OPT_STR, F(session_expiry_arg),
	 0, 0, "SECONDS",
	 "MQTT 5 session expiry, -1 = never (default: never with -c, else 0)"},
	{'D', "property", BOTH, OPT_PROPERTY, 0, 0, 0, "CMD PROP VALUE",
	 "add an MQTT 5 property to a packet (repeatable; list below)"},
	{'t', "topic", CLI_PUB, OPT_STR, F(topic), 0, 0, "TOPIC",
	 "topic to publish to (required)"},
	{'t', "topic", CLI_SUB, OPT_LIST, F(filters), 0, 0, "FILTER",
	 "topic filter to subscribe to (required, repeatable)"},
	{'m', "message", CLI_PUB | CLI_COAP, OPT_SOURCE, F(source_arg), CLI_SRC_MESSAGE, 0,
	 "MESSAGE", "send MESSAGE"},
	{'f', "file", CLI_PUB | CLI_COAP, OPT_SOURCE, F(source_arg), CLI_SRC_FILE, 0,
	 "FILE", "send the contents of FILE as one message"},
	{'s', "stdin-file", CLI_PUB | CLI_COAP, OPT_SOURCE, 0, CLI_SRC_STDIN, 0, NULL,
	 "send all of stdin as one message"},
	{'l', "stdin-line", CLI_PUB, OPT_SOURCE, 0, CLI_SRC_LINES, 0, NULL,
	 "send each line of stdin as a message, as it is read"},
	{'n', "null-message", CLI_PUB, OPT_SOURCE, 0, CLI_SRC_NULL, 0, NULL,
	 "send an empty message"},
	{'r', "retain", CLI_PUB, OPT_FLAG, F(retain), 0, 0, NULL,
	 "ask the broker to retain the message"},
	{'T', "filter-out", CLI_SUB, OPT_LIST, F(filter_out), 0, 0, "FILTER",
	 "do not print messages matching FILTER (repeatable)"},
	{'v', "verbose", CLI_SUB, OPT_FLAG, F(verbose), 0, 0, NULL,
	 "print \"topic payload\" instead of the payload"},
	{'C', "count", CLI_SUB, OPT_INT, F(count), 1, INT_MAX, "COUNT",
	 "exit after COUNT messages"},
	{'W', "timeout", CLI_SUB, OPT_INT, F(timeout), 1, INT_MAX / 1000,
	 "SECONDS", "exit after SECONDS (exit code 27)"},
	{'N', "no-eol", CLI_SUB, OPT_FLAG, F(no_eol), 0, 0, NULL,
	 "do not print a newline after each message"},
	{'R', "no-retained", CLI_SUB, OPT_FLAG, F(no_retained), 0, 0, NULL,
	 "skip retained (stale) messages"},
	{0, "retained-only", CLI_SUB, OPT_FLAG, F(retained_only), 0, 0, NULL,
	 "print only retained messages; exit at the first new one"},
	{'F', "format", CLI_SUB, OPT_STR, F(format), 0, 0, "FORMAT",
	 "print each message in FORMAT (sequences below)"},
	{0, "json", CLI_SUB, OPT_FLAG, F(json), 0, 0, NULL,
	 "print each message as one JSON object (same as -F %j)"},
	{0, "nl", CLI_SUB, OPT_FLAG, F(no_local), 0, 0, NULL,
	 "MQTT 5 No Local: not what this client id publishes itself"},
	{0, "no-local", CLI_SUB, OPT_FLAG, F(no_local), 0, 0, NULL,
	 "same as --nl"},
	{0, "rap", CLI_SUB, OPT_FLAG, F(retain_as_published), 0, 0, NULL,
	 "MQTT 5 Retain As Published: keep the publisher's retain flag"},
	{0, "retain-as-published", CLI_SUB, OPT_FLAG, F(retain_as_published),
	 0, 0, NULL, "same as --rap"},
	{0, "rh", CLI_SUB, OPT_INT, F(retain_handling), 0, 2, "0|1|2",
	 "MQTT 5 Retain Handling: retained messages 0 always, 1 if new, "
	 "2 never"},
	{0, "retain-handling", CLI_SUB, OPT_INT, F(retain_handling), 0, 2,
	 "0|1|2", "same as --rh"},
	{0, "will-topic", BOTH, OPT_STR, F(will_topic), 0, 0, "TOPIC",
	 "topic of the will (published if we vanish)"},
	{0, "will-payload", BOTH, OPT_STR, F(will_payload), 0, 0, "PAYLOAD",
	 "payload of the will (default: empty)"},
	{0, "will-qos", BOTH, OPT_INT, F(will_qos), 0, 2, "QOS",
	 "QoS of the will (default: 0)"},
	{0, "will-retain", BOTH, OPT_FLAG, F(will_retain), 0, 0, NULL,
	 "retain the will"},
	{'d', "debug", BOTH, OPT_FLAG, F(debug), 0, 0, NULL,
	 "print the packets sent and received on stderr"},
	{0, "quiet", BOTH, OPT_FLAG, F(quiet), 0, 0, NULL,
	 "do not print error messages"},
	{0, "help", BOTH, OPT_HELP, 0, 0, 0, NULL, "show this help"},
	/* moat coap (coap_cmd.c) */
	{0, "con", CLI_COAP, OPT_FLAG, F(coap.con), 0, 0, NULL,
	 "Confirmable requests (default)"},
	{0, "non", CLI_COAP, OPT_FLAG, F(coap.non), 0, 0, NULL,
	 "Non-confirmable requests"},
	{0, "content-format", CLI_COAP, OPT_STR, F(coap.content_format), 0, 0,
	 "FORMAT", "payload's Content-Format: a number, json, text, cbor..."},
	{'b', "block-size", CLI_COAP, OPT_INT, F(coap.block_size), 16, 1024,
	 "BYTES", "block size: 16, 32, ... 1024 (default 1024)"},
	{0, "max-body", CLI_COAP, OPT_INT, F(coap.max_body), 1, 1L << 30,
	 "BYTES", "largest body sent or received (default 8 MiB)"},
	{'C', "count", CLI_COAP, OPT_INT, F(count), 1, INT_MAX, "COUNT",
	 "observe: stop after COUNT responses"},
	{'W', "timeout", CLI_COAP, OPT_INT, F(timeout), 1, INT_MAX / 1000,
	 "SECONDS", "give up after SECONDS; observe: stop then"},
	{0, "psk-identity", CLI_COAP, OPT_STR, F(coap.psk_identity), 0, 0,
	 "ID", "coaps: pre-shared key with identity ID"},
	{0, "psk-file", CLI_COAP, OPT_STR, F(coap.psk_file), 0, 0, "FILE",
	 "the PSK: FILE's first line (hex:HEX); default: ask"},
	{0, "cafile", CLI_COAP, OPT_STR, F(coap.cafile), 0, 0, "FILE",
	 "coaps: CAs that verify the server (default: system)"},
	{0, "cert", CLI_COAP, OPT_STR, F(coap.cert), 0, 0, "FILE",
	 "coaps: client certificate (PEM)"},
	{0, "key", CLI_COAP, OPT_STR, F(coap.key), 0, 0, "FILE",
	 "coaps: its key (PEM, a private file)"},
	{'v', "verbose", CLI_COAP, OPT_FLAG, F(verbose), 0, 0, NULL,
	 "print each response's header and options"},
	{0, "json", CLI_COAP, OPT_FLAG, F(json), 0, 0, NULL,
	 "one JSON object per response (moat scan --jsonl)"},
	{'d', "debug", CLI_COAP, OPT_FLAG, F(debug), 0, 0, NULL,
	 "print each datagram sent and received on stderr"},
	{0, "quiet", CLI_COAP, OPT_FLAG, F(quiet), 0, 0, NULL,
	 "do not print error messages"},
	{0, "help", CLI_COAP, OPT_HELP, 0, 0, 0, NULL, "show this help"},
};

static const char *tool_name(enum cli_tool tool)
{
	return tool == CLI_PUB ? "pub" : tool == CLI_SUB ? "sub" : "coap";
}

void cli_error(const struct cli_cfg *cfg, const char *fmt, ...)
{
	if (cfg->quiet)
		return;
	va_list ap;
	va_start(ap, fmt);
	fprintf(stderr, "moat %s: ", cfg->name);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
}

/* Usage errors are printed even with --quiet: nothing ran yet. */
__attribute__((format(printf, 2, 0))) static int
vusage_error(const struct cli_cfg *cfg, const char *fmt, va_list ap)
{
	fprintf(stderr, "moat %s: ", cfg->name);
	vfprintf(stderr, fmt, ap);
	fprintf(stderr, "\nTry 'moat %s --help' for more information.\n",
		cfg->name);
	return CLI_EXIT_USAGE;
}

__attribute__((format(printf, 2, 3))) static int
usage_error(const struct cli_cfg *cfg, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int rc = vusage_error(cfg, fmt, ap);
	va_end(ap);
	return rc;
}

int cli_usage_error(const struct cli_cfg *cfg, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int rc = vusage_error(cfg, fmt, ap);
	va_end(ap);
	return rc;
}

void cli_print_usage(FILE *f, enum cli_tool tool)
{
	fprintf(f, "Usage: moat %s %s[OPTION]...\n\n", tool_name(tool),
		tool == CLI_COAP ? "METHOD URI " : "");
	for (size_t i = 0; i < MOAT_ARRAY_LEN(options); i++) {
		const struct cli_opt *o = &options[i];
		if (!(o->tools & tool))
			continue;
		char lhs[64];
		snprintf(lhs, sizeof(lhs), "%c%c%s%s%s%s%s",
			 o->short_name ? '-' : ' ',
			 o->short_name ? o->short_name : ' ',
			 o->short_name && o->long_name ? ", " : "  ",
			 o->long_name ? "--" : "",
			 o->long_name ? o->long_name : "", o->arg ? " " : "",
			 o->arg ? o->arg : "");
		if (strlen(lhs) > 32)
			fprintf(f, "  %s\n  %-32s %s\n", lhs, "", o->help);
		else
			fprintf(f, "  %-32s %s\n", lhs, o->help);
	}
	if (tool == CLI_COAP)
		return; /* the rest: moat_coap_usage() */
	cli_props_usage(f, tool);
	if (tool == CLI_SUB)
		fputs("\n-F FORMAT sequences: %t topic, %p payload, %q QoS, "
		      "%r retain, %m message id,\n"
		      "  %l payload length, %x/%X payload in hex, %j JSON "
		      "(as --json),\n"
		      "  %I ISO 8601 time, %U Unix time; MQTT 5: %P user "
		      "properties (name:value),\n"
		      "  %C content type, %E message expiry, %R response "
		      "topic, %D correlation data,\n"
		      "  %F payload format, %S subscription identifiers, %A "
		      "topic alias; %% for %,\n"
		      "  @@ for @; \\n \\t \\r \\0 \\a \\e \\v "
		      "\\\\ escapes.  Flags, width and precision as\n"
		      "  in %-10.5t.  A newline follows each message unless "
		      "-N.\n",
		      f);
	fprintf(f, "\nExit status: 0 success, 1 connection or protocol "
		   "error, 2 usage error%s.\n",
		tool == CLI_SUB ? ", 27 -W timeout expired" : "");
}

/* Find the option for argument a; *value is set to the part after '=' in
 * "--name=value". */
static const struct cli_opt *find_opt(enum cli_tool tool, char *a,
				      char **value)
{
	*value = NULL;
	size_t n = 0;
	bool is_long = a[0] == '-' && a[1] == '-' && a[2];
	if (is_long) {
		a += 2;
		char *eq = strchr(a, '=');
		n = eq ? (size_t)(eq - a) : strlen(a);
		if (eq)
			*value = eq + 1;
	} else if (a[0] != '-' || !a[1] || a[2]) {
		return NULL;
	}
	for (size_t i = 0; i < MOAT_ARRAY_LEN(options); i++) {
		const struct cli_opt *o = &options[i];
		if (!(o->tools & tool))
			continue;
		if (is_long ? (o->long_name && strlen(o->long_name) == n &&
			       strncmp(o->long_name, a, n) == 0)
			    : o->short_name == a[1])
			return o;
	}
	return NULL;
}

static int parse_long(const char *s, long min, long max, long *out)
{
	char *end;
	errno = 0;
	long v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < min || v > max)
		return MOAT_EINVAL;
	*out = v;
	return MOAT_OK;
}

static int parse_proto(struct cli_cfg *cfg, const char *v)
{
	if (!strcmp(v, "311") || !strcmp(v, "mqttv311")) {
		cfg->proto_level = MQTT_PROTO_V311;
	} else if (!strcmp(v, "31") || !strcmp(v, "mqttv31")) {
		cfg->proto_level = MQTT_PROTO_V31;
	} else if (!strcmp(v, "5") || !strcmp(v, "mqttv5")) {
		cfg->proto_level = MQTT_PROTO_V5;
	} else {
		return usage_error(cfg, "unknown protocol version '%s' "
					"(use 5, 311 or 31)", v);
	}
	return MOAT_OK;
}

static int add_list(struct cli_list *l, const char *v)
{
	const char **nv = moat_realloc(l->v, (l->n + 1) * sizeof(*nv));
	if (!nv)
		return MOAT_ENOMEM;
	nv[l->n++] = v;
	l->v = nv;
	return MOAT_OK;
}

static int set_secret(char **field, char *v)
{
	moat_free(*field);
	*field = moat_strdup(v);
	/* Wipe argv's copy so that ps and /proc/PID/cmdline do not show it. */
	memset(v, '*', strlen(v));
	return *field ? MOAT_OK : MOAT_ENOMEM;
}

static int set_source(struct cli_cfg *cfg, const struct cli_opt *o,
		      const char *v, const char *a)
{
	if (cfg->source != CLI_SRC_NONE)
		return usage_error(cfg, "only one of -m, -f, -s, -l and -n "
					"may be given (%s)", a);
	cfg->source = (enum cli_source)o->min;
	cfg->source_arg = v;
	return MOAT_OK;
}

/* Apply option o with argument v (NULL when it takes none); a is the
 * option as written, for messages.  Returns MOAT_OK or an exit code. */
static int apply_opt(struct cli_cfg *cfg, const struct cli_opt *o, char *v,
		     const char *a)
{
	void *field = (char *)cfg + o->offset;
	int rc = MOAT_OK;
	switch (o->kind) {
	case OPT_FLAG:
		*(bool *)field = true;
		break;
	case OPT_STR:
		*(const char **)field = v;
		break;
	case OPT_INT:
		if (parse_long(v, o->min, o->max, field) != MOAT_OK)
			return usage_error(cfg, "%s needs a number from %ld "
						"to %ld, not '%s'", a, o->min,
					   o->max, v);
		break;
	case OPT_LIST:
		rc = add_list(field, v);
		break;
	case OPT_SECRET:
		rc = set_secret(field, v);
		break;
	case OPT_SOURCE:
		return set_source(cfg, o, v, a);
	case OPT_PROTO:
		return parse_proto(cfg, v);
	case OPT_PROPERTY: /* handled by parse_args */
	case OPT_HELP:
		cfg->help = true;
		break;
	}
	if (rc != MOAT_OK)
		return usage_error(cfg, "out of memory");
	return MOAT_OK;
}

static int parse_args(struct cli_cfg *cfg, int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		char *a = argv[i];
		char *v;
		const struct cli_opt *o = find_opt(cfg->tool, a, &v);
		if (!o && a[0] != '-' && cfg->tool == CLI_COAP) {
			if (add_list(&cfg->coap.args, a) != MOAT_OK)
				return usage_error(cfg, "out of memory");
			continue;
		}
		if (!o && a[0] == '-')
			return usage_error(cfg, "unknown option '%s'", a);
		if (!o)
			return usage_error(cfg, "unexpected argument '%s'", a);
		if (o->kind == OPT_PROPERTY) {
			if (v)
				return usage_error(cfg, "--property takes "
							"COMMAND PROPERTY VALUE "
							"as separate arguments");
			int rc = cli_prop_parse(cfg, argc, argv, &i);
			if (rc != MOAT_OK)
				return rc;
			continue;
		}
		if (o->arg && !v) {
			if (i + 1 >= argc)
				return usage_error(cfg, "option '%s' needs an "
							"argument", a);
			v = argv[++i];
		} else if (!o->arg && v) {
			return usage_error(cfg, "option '--%s' takes no "
						"argument", o->long_name);
		}
		int rc = apply_opt(cfg, o, v, a);
		if (rc != MOAT_OK)
			return rc;
	}
	return MOAT_OK;
}

static bool utf8_ok(const char *s)
{
	return moat_utf8_valid((const uint8_t *)s, strlen(s));
}

static bool topic_ok(const char *s)
{
	size_t n = strlen(s);
	return n <= 65535 && utf8_ok(s) &&
	       moat_topic_name_valid((const uint8_t *)s, n);
}

static bool filter_ok(const char *s)
{
	size_t n = strlen(s);
	return n <= 65535 && utf8_ok(s) &&
	       moat_topic_filter_valid((const uint8_t *)s, n);
}

/* The client id: -i, or -I PREFIX + pid, or moat-TOOL-pid. */
static int make_client_id(struct cli_cfg *cfg)
{
	if (cfg->id && cfg->id_prefix)
		return usage_error(cfg, "-i and -I cannot be used together");
	if (cfg->no_clean && !cfg->id)
		return usage_error(cfg, "-c (persistent session) needs a "
					"client id: use -i");
	const char *prefix = cfg->id_prefix ? cfg->id_prefix : "moat-";
	size_t n = cfg->id ? strlen(cfg->id) : strlen(prefix) + 32;
	cfg->client_id = moat_malloc(n + 1);
	if (!cfg->client_id)
		return usage_error(cfg, "out of memory");
	if (cfg->id)
		memcpy(cfg->client_id, cfg->id, n + 1);
	else
		snprintf(cfg->client_id, n + 1, "%s%s%ld", prefix,
			 cfg->id_prefix ? "" : (cfg->tool == CLI_PUB ? "pub-"
								     : "sub-"),
			 (long)getpid());
	size_t len = strlen(cfg->client_id);
	if (len > 65535 || !utf8_ok(cfg->client_id))
		return usage_error(cfg, "invalid client id");
	if (cfg->proto_level == MQTT_PROTO_V31 && (len < 1 || len > 23))
		return usage_error(cfg, "MQTT 3.1 client ids must be 1 to 23 "
					"characters long (-i)");
	return MOAT_OK;
}

static int check_auth_will(struct cli_cfg *cfg)
{
	const char *env = getenv("MOAT_PASSWORD");
	if (cfg->username && !cfg->password && env) {
		cfg->password = moat_strdup(env);
		if (!cfg->password)
			return usage_error(cfg, "out of memory");
	}
	if (cfg->password && !cfg->username &&
	    cfg->proto_level != MQTT_PROTO_V5) /* MQTT 5 allows it */
		return usage_error(cfg, "a password (-P) needs a user name "
					"(-u) before MQTT 5");
	if (cfg->username && !utf8_ok(cfg->username))
		return usage_error(cfg, "the user name is not valid UTF-8");
	if (!cfg->will_topic && (cfg->will_payload || cfg->will_qos >= 0 ||
				 cfg->will_retain))
		return usage_error(cfg, "--will-payload, --will-qos and "
					"--will-retain need --will-topic");
	if (cfg->will_topic && !topic_ok(cfg->will_topic))
		return usage_error(cfg, "invalid will topic '%s'",
				   cfg->will_topic);
	return MOAT_OK;
}

static int check_pub(struct cli_cfg *cfg)
{
	if (!cfg->topic)
		return usage_error(cfg, "a topic is required: -t TOPIC");
	if (!topic_ok(cfg->topic))
		return usage_error(cfg, "invalid topic '%s': a topic name is "
					"not empty and has no + or #",
				   cfg->topic);
	if (cfg->source == CLI_SRC_NONE)
		return usage_error(cfg, "a message is required: one of -m, -f, "
					"-s, -l or -n");
	return MOAT_OK;
}

static int check_sub(struct cli_cfg *cfg)
{
	if (cfg->filters.n == 0)
		return usage_error(cfg, "a topic filter is required: -t FILTER");
	for (size_t i = 0; i < cfg->filters.n; i++)
		if (!filter_ok(cfg->filters.v[i]))
			return usage_error(cfg, "invalid topic filter '%s'",
					   cfg->filters.v[i]);
	for (size_t i = 0; i < cfg->filter_out.n; i++)
		if (!filter_ok(cfg->filter_out.v[i]))
			return usage_error(cfg, "invalid topic filter '%s' "
						"(-T)", cfg->filter_out.v[i]);
	if (cfg->no_retained && cfg->retained_only)
		return usage_error(cfg, "-R and --retained-only exclude each "
					"other");
	if (cfg->proto_level != MQTT_PROTO_V5 &&
	    (cfg->no_local || cfg->retain_as_published ||
	     cfg->retain_handling >= 0))
		return usage_error(cfg, "--nl, --rap and --rh need MQTT 5: "
					"add -V 5");
	if (cfg->json && cfg->format)
		return usage_error(cfg, "--json and -F exclude each other");
	if (cfg->json)
		cfg->format = "%j";
	return cfg->format ? cli_format_check(cfg) : MOAT_OK;
}

int cli_setup(struct cli_cfg *cfg, enum cli_tool tool, int argc, char **argv)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->tool = tool;
	cfg->name = tool_name(tool);
	cfg->host = "localhost";
	cfg->port = 1883;
	cfg->keepalive = 60;
	cfg->will_qos = -1;
	cfg->retain_handling = -1;
	cfg->proto_level = MQTT_PROTO_V311;
	int rc = parse_args(cfg, argc, argv);
	if (rc != MOAT_OK)
		return rc;
	if (cfg->help) {
		if (tool != CLI_COAP) /* coap_cmd.c prints its own */
			cli_print_usage(stdout, tool);
		return CLI_EXIT_OK;
	}
	if (tool == CLI_COAP) /* checked by coap_cmd.c */
		return CLI_CONTINUE;
	if ((rc = make_client_id(cfg)) != MOAT_OK ||
	    (rc = check_auth_will(cfg)) != MOAT_OK ||
	    (rc = cli_props_encode(cfg)) != MOAT_OK)
		return rc;
	rc = tool == CLI_PUB ? check_pub(cfg) : check_sub(cfg);
	return rc == MOAT_OK ? CLI_CONTINUE : rc;
}

void cli_cleanup(struct cli_cfg *cfg)
{
	if (cfg->password) {
		explicit_bzero(cfg->password, strlen(cfg->password));
		MOAT_FREE(cfg->password);
	}
	MOAT_FREE(cfg->client_id);
	MOAT_FREE(cfg->filters.v);
	MOAT_FREE(cfg->filter_out.v);
	MOAT_FREE(cfg->coap.args.v);
	cli_props_cleanup(cfg);
}
