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
#include "net/tls_client.h"

/* The options the table cannot fill by itself (struct cli_opt.code). */
enum {
	P_LIST = 1, /* struct cli_list field += the value (repeatable) */
	P_SOURCE,   /* pub's message source; min = enum cli_source */
	P_PROTO,    /* -V */
	P_PROPERTY, /* -D COMMAND PROPERTY VALUE... (moat_props.c) */
	P_URL,	    /* -L (moat_url.c) */
};

#define F(field) offsetof(struct cli_cfg, field)
#define BOTH (CLI_PUB | CLI_SUB)

static const struct cli_opt options[] = {
	{'h', "host", BOTH, CLI_OPT_STR, F(host), 0, 0, "HOST",
	 "broker host name or address (default: localhost)", 0},
	{'p', "port", BOTH, CLI_OPT_LONG, F(port), 1, 65535, "PORT",
	 "broker port (default: 1883, with TLS 8883; --ws: 80, 443)", 0},
	{'L', "url", BOTH, CLI_OPT_CALL, 0, 0, 0, "URL",
	 "mqtt[s]://[USER[:PASSWORD]@]HOST[:PORT]/TOPIC (or ws[s]:// for "
	 "WebSockets) instead of -h, -p, -u, -t", P_URL},
	{0, "cafile", BOTH, CLI_OPT_STR, F(cafile), 0, 0, "FILE",
	 "TLS: verify the broker with the CA certificates in FILE (PEM)", 0},
	{0, "capath", BOTH, CLI_OPT_STR, F(capath), 0, 0, "DIR",
	 "TLS: verify the broker with the CA certificates in DIR (hashed)", 0},
	{0, "cert", BOTH, CLI_OPT_STR, F(certfile), 0, 0, "FILE",
	 "TLS: client certificate (PEM, needs --key)", 0},
	{0, "key", BOTH, CLI_OPT_STR, F(keyfile), 0, 0, "FILE",
	 "TLS: private key of --cert (PEM)", 0},
	{0, "ws", BOTH, CLI_OPT_FLAG, F(ws), 0, 0, NULL,
	 "MQTT over WebSockets (default port 80, with TLS 443)", 0},
	{0, "ws-path", BOTH, CLI_OPT_STR, F(ws_path), 0, 0, "PATH",
	 "WebSocket path of the broker's listener (default: /mqtt)", 0},
	{0, "insecure", BOTH, CLI_OPT_FLAG, F(insecure), 0, 0, NULL,
	 "TLS: do not check that the certificate names the host", 0},
	{0, "tls-version", BOTH, CLI_OPT_STR, F(tls_version), 0, 0, "VERSION",
	 "TLS: lowest version, tlsv1.2 (default) or tlsv1.3", 0},
	{'i', "id", BOTH, CLI_OPT_STR, F(id), 0, 0, "ID",
	 "client id (default: moat-pub-PID / moat-sub-PID)", 0},
	{'I', "id-prefix", BOTH, CLI_OPT_STR, F(id_prefix), 0, 0, "PREFIX",
	 "client id is PREFIX followed by the process id", 0},
	{'u', "username", BOTH, CLI_OPT_STR, F(username), 0, 0, "USER",
	 "user name for authentication", 0},
	{'P', "pw", BOTH, CLI_OPT_SECRET, F(password), 0, 0, "PASSWORD",
	 "password (needs -u); safer: MOAT_PASSWORD in the environment", 0},
	{0, "password", BOTH, CLI_OPT_SECRET, F(password), 0, 0, "PASSWORD",
	 "same as -P", 0},
	{'k', "keepalive", BOTH, CLI_OPT_LONG, F(keepalive), 0, 65535, "SECONDS",
	 "keep-alive interval, 0 disables (default: 60)", 0},
	{'q', "qos", CLI_PUB, CLI_OPT_LONG, F(qos), 0, 2, "QOS",
	 "QoS of the messages: 0, 1 or 2 (default: 0)", 0},
	{'q', "qos", CLI_SUB, CLI_OPT_LONG, F(qos), 0, 2, "QOS",
	 "QoS of the subscriptions: 0, 1 or 2 (default: 0)", 0},
	{'c', "disable-clean-session", BOTH, CLI_OPT_FLAG, F(no_clean), 0, 0, NULL,
	 "keep a persistent session (needs -i)", 0},
	{'V', "protocol-version", BOTH, CLI_OPT_CALL, 0, 0, 0, "VERSION",
	 "5 or mqttv5, 311 or mqttv311 (default), 31 or mqttv31", P_PROTO},
	{'x', "session-expiry-interval", BOTH, CLI_OPT_STR, F(session_expiry_arg),
	 0, 0, "SECONDS",
	 "MQTT 5 session expiry, -1 = never (default: never with -c, else 0)", 0},
	{'D', "property", BOTH, CLI_OPT_CALL, 0, 0, 0, "CMD PROP VALUE",
	 "add an MQTT 5 property to a packet (repeatable; list below)", P_PROPERTY},
	{'t', "topic", CLI_PUB, CLI_OPT_STR, F(topic), 0, 0, "TOPIC",
	 "topic to publish to (required)", 0},
	{'t', "topic", CLI_SUB, CLI_OPT_CALL, F(filters), 0, 0, "FILTER",
	 "topic filter to subscribe to (required, repeatable)", P_LIST},
	{'m', "message", CLI_PUB | CLI_COAP, CLI_OPT_CALL, F(source_arg), CLI_SRC_MESSAGE, 0,
	 "MESSAGE", "send MESSAGE", P_SOURCE},
	{'f', "file", CLI_PUB | CLI_COAP, CLI_OPT_CALL, F(source_arg), CLI_SRC_FILE, 0,
	 "FILE", "send the contents of FILE as one message", P_SOURCE},
	{'s', "stdin-file", CLI_PUB | CLI_COAP, CLI_OPT_CALL, 0, CLI_SRC_STDIN, 0, NULL,
	 "send all of stdin as one message", P_SOURCE},
	{'l', "stdin-line", CLI_PUB, CLI_OPT_CALL, 0, CLI_SRC_LINES, 0, NULL,
	 "send each line of stdin as a message, as it is read", P_SOURCE},
	{'n', "null-message", CLI_PUB, CLI_OPT_CALL, 0, CLI_SRC_NULL, 0, NULL,
	 "send an empty message", P_SOURCE},
	{'r', "retain", CLI_PUB, CLI_OPT_FLAG, F(retain), 0, 0, NULL,
	 "ask the broker to retain the message", 0},
	{'T', "filter-out", CLI_SUB, CLI_OPT_CALL, F(filter_out), 0, 0, "FILTER",
	 "do not print messages matching FILTER (repeatable)", P_LIST},
	{'v', "verbose", CLI_SUB, CLI_OPT_FLAG, F(verbose), 0, 0, NULL,
	 "print \"topic payload\" instead of the payload", 0},
	{'C', "count", CLI_SUB, CLI_OPT_LONG, F(count), 1, INT_MAX, "COUNT",
	 "exit after COUNT messages", 0},
	{'W', "timeout", CLI_SUB, CLI_OPT_LONG, F(timeout), 1, INT_MAX / 1000,
	 "SECONDS", "exit after SECONDS (exit code 27)", 0},
	{'N', "no-eol", CLI_SUB, CLI_OPT_FLAG, F(no_eol), 0, 0, NULL,
	 "do not print a newline after each message", 0},
	{'R', "no-retained", CLI_SUB, CLI_OPT_FLAG, F(no_retained), 0, 0, NULL,
	 "skip retained (stale) messages", 0},
	{0, "retained-only", CLI_SUB, CLI_OPT_FLAG, F(retained_only), 0, 0, NULL,
	 "print only retained messages; exit at the first new one", 0},
	{'F', "format", CLI_SUB, CLI_OPT_STR, F(format), 0, 0, "FORMAT",
	 "print each message in FORMAT (sequences below)", 0},
	{0, "json", CLI_SUB, CLI_OPT_FLAG, F(json), 0, 0, NULL,
	 "print each message as one JSON object (same as -F %j)", 0},
	{0, "nl", CLI_SUB, CLI_OPT_FLAG, F(no_local), 0, 0, NULL,
	 "MQTT 5 No Local: not what this client id publishes itself", 0},
	{0, "no-local", CLI_SUB, CLI_OPT_FLAG, F(no_local), 0, 0, NULL,
	 "same as --nl", 0},
	{0, "rap", CLI_SUB, CLI_OPT_FLAG, F(retain_as_published), 0, 0, NULL,
	 "MQTT 5 Retain As Published: keep the publisher's retain flag", 0},
	{0, "retain-as-published", CLI_SUB, CLI_OPT_FLAG, F(retain_as_published),
	 0, 0, NULL, "same as --rap", 0},
	{0, "rh", CLI_SUB, CLI_OPT_LONG, F(retain_handling), 0, 2, "0|1|2",
	 "MQTT 5 Retain Handling: retained messages 0 always, 1 if new, "
	 "2 never", 0},
	{0, "retain-handling", CLI_SUB, CLI_OPT_LONG, F(retain_handling), 0, 2,
	 "0|1|2", "same as --rh", 0},
	{0, "will-topic", BOTH, CLI_OPT_STR, F(will_topic), 0, 0, "TOPIC",
	 "topic of the will (published if we vanish)", 0},
	{0, "will-payload", BOTH, CLI_OPT_STR, F(will_payload), 0, 0, "PAYLOAD",
	 "payload of the will (default: empty)", 0},
	{0, "will-qos", BOTH, CLI_OPT_LONG, F(will_qos), 0, 2, "QOS",
	 "QoS of the will (default: 0)", 0},
	{0, "will-retain", BOTH, CLI_OPT_FLAG, F(will_retain), 0, 0, NULL,
	 "retain the will", 0},
	{'d', "debug", BOTH, CLI_OPT_FLAG, F(debug), 0, 0, NULL,
	 "print the packets sent and received on stderr", 0},
	{0, "quiet", BOTH, CLI_OPT_FLAG, F(quiet), 0, 0, NULL,
	 "do not print error messages", 0},
	{0, "help", BOTH, CLI_OPT_HELP, 0, 0, 0, NULL, "show this help", 0},
	/* moat coap (coap/coap_cmd.c) */
	{0, "con", CLI_COAP, CLI_OPT_FLAG, F(coap.con), 0, 0, NULL,
	 "Confirmable requests (default)", 0},
	{0, "non", CLI_COAP, CLI_OPT_FLAG, F(coap.non), 0, 0, NULL,
	 "Non-confirmable requests", 0},
	{0, "content-format", CLI_COAP, CLI_OPT_STR, F(coap.content_format), 0,
	 0, "FORMAT", "payload's Content-Format: a number, json, text, cbor...",
	 0},
	{'b', "block-size", CLI_COAP, CLI_OPT_LONG, F(coap.block_size), 16, 1024,
	 "BYTES", "block size: 16, 32, ... 1024 (default 1024)", 0},
	{0, "max-body", CLI_COAP, CLI_OPT_LONG, F(coap.max_body), 1, 1L << 30,
	 "BYTES", "largest body sent or received (default 8 MiB)", 0},
	{'C', "count", CLI_COAP, CLI_OPT_LONG, F(count), 1, INT_MAX, "COUNT",
	 "observe: stop after COUNT responses", 0},
	{'W', "timeout", CLI_COAP, CLI_OPT_LONG, F(timeout), 1, INT_MAX / 1000,
	 "SECONDS", "give up after SECONDS; observe: stop then", 0},
	{0, "psk-identity", CLI_COAP, CLI_OPT_STR, F(coap.psk_identity), 0, 0,
	 "ID", "coaps: pre-shared key with identity ID", 0},
	{0, "psk-file", CLI_COAP, CLI_OPT_STR, F(coap.psk_file), 0, 0, "FILE",
	 "the PSK: FILE's first line (hex:HEX); default: ask", 0},
	{0, "cafile", CLI_COAP, CLI_OPT_STR, F(coap.cafile), 0, 0, "FILE",
	 "coaps: CAs that verify the server (default: system)", 0},
	{0, "cert", CLI_COAP, CLI_OPT_STR, F(coap.cert), 0, 0, "FILE",
	 "coaps: client certificate (PEM)", 0},
	{0, "key", CLI_COAP, CLI_OPT_STR, F(coap.key), 0, 0, "FILE",
	 "coaps: its key (PEM, a private file)", 0},
	{'v', "verbose", CLI_COAP, CLI_OPT_FLAG, F(verbose), 0, 0, NULL,
	 "print each response's header and options", 0},
	{0, "json", CLI_COAP, CLI_OPT_FLAG, F(json), 0, 0, NULL,
	 "one JSON object per response (moat scan --jsonl)", 0},
	{'d', "debug", CLI_COAP, CLI_OPT_FLAG, F(debug), 0, 0, NULL,
	 "print each datagram sent and received on stderr", 0},
	{0, "quiet", CLI_COAP, CLI_OPT_FLAG, F(quiet), 0, 0, NULL,
	 "do not print error messages", 0},
	{0, "help", CLI_COAP, CLI_OPT_HELP, 0, 0, 0, NULL, "show this help", 0},
};

static const char *tool_name(enum cli_tool tool)
{
	return tool == CLI_PUB ? "pub" : tool == CLI_SUB ? "sub" : "coap";
}

#define usage_error cli_usage_error

void moat_pub_usage(FILE *f)
{
	cli_print_usage(f, CLI_PUB);
}

void moat_sub_usage(FILE *f)
{
	cli_print_usage(f, CLI_SUB);
}

static int on_call(void *cfg, const struct cli_opt *o, char *v,
		   struct cli_pos *p);

static int on_arg(void *cfg, char *a);

static const struct cli_cmd commands[3] = {
	{.name = "pub", .opts = options, .nopts = MOAT_ARRAY_LEN(options),
	 .variant = CLI_PUB, .call = on_call, .usage = moat_pub_usage},
	{.name = "sub", .opts = options, .nopts = MOAT_ARRAY_LEN(options),
	 .variant = CLI_SUB, .call = on_call, .usage = moat_sub_usage},
	{.name = "coap", .opts = options, .nopts = MOAT_ARRAY_LEN(options),
	 .variant = CLI_COAP, .call = on_call, .arg = on_arg,
	 .usage = moat_coap_usage},
};

static const struct cli_cmd *command_of(enum cli_tool tool)
{
	return &commands[tool == CLI_PUB ? 0 : tool == CLI_SUB ? 1 : 2];
}

/* moat coap's METHOD and URI. */
static int on_arg(void *c, char *a)
{
	struct cli_cfg *cfg = c;
	int rc = cli_list_add(cfg, &cfg->coap.args, a);
	return rc == MOAT_OK ? CLI_CONTINUE : rc;
}

void cli_print_usage(FILE *f, enum cli_tool tool)
{
	fprintf(f, "Usage: moat %s %s[OPTION]...\n\n", tool_name(tool),
		tool == CLI_COAP ? "METHOD URI " : "");
	cli_opt_print(f, command_of(tool), 30);
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
	return CLI_CONTINUE;
}

static int set_source(struct cli_cfg *cfg, const struct cli_opt *o,
		      const char *v, const char *a)
{
	if (cfg->source != CLI_SRC_NONE)
		return usage_error(cfg, "only one of -m, -f, -s, -l and -n "
					"may be given (%s)", a);
	cfg->source = (enum cli_source)o->min;
	cfg->source_arg = v;
	return CLI_CONTINUE;
}

/* -D: cli_prop_parse() reads COMMAND PROPERTY VALUE... itself, from
 * the argument after the option on. */
static int property(struct cli_cfg *cfg, char *v, struct cli_pos *p)
{
	if (v != p->argv[p->i]) /* --property=... */
		return usage_error(cfg, "--property takes COMMAND PROPERTY VALUE "
					"as separate arguments");
	int i = p->i - 1;
	int rc = cli_prop_parse(cfg, p->argc, p->argv, &i);
	p->i = i;
	return rc == MOAT_OK ? CLI_CONTINUE : rc;
}

static int on_call(void *c, const struct cli_opt *o, char *v,
		   struct cli_pos *p)
{
	struct cli_cfg *cfg = c;
	switch (o->code) {
	case P_LIST: {
		int rc = cli_list_add(cfg, (void *)((char *)cfg + o->offset),
				      v);
		return rc == MOAT_OK ? CLI_CONTINUE : rc;
	}
	case P_SOURCE:
		return set_source(cfg, o, v, p->as);
	case P_PROTO:
		return parse_proto(cfg, v);
	case P_PROPERTY:
		return property(cfg, v, p);
	default: { /* P_URL */
		int rc = cli_url_parse(cfg, v);
		return rc == MOAT_OK ? CLI_CONTINUE : rc;
	}
	}
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

/* TLS is on with any TLS option (and with mqtts://, cli_url_merge()). */
static int check_tls(struct cli_cfg *cfg)
{
	cfg->tls = cfg->cafile || cfg->capath || cfg->certfile ||
		   cfg->keyfile || cfg->insecure || cfg->tls_version;
	if (cfg->certfile && !cfg->keyfile)
		return usage_error(cfg, "--cert needs --key");
	if (cfg->keyfile && !cfg->certfile)
		return usage_error(cfg, "--key needs --cert");
	if (cfg->tls_version &&
	    moat_tls_client_version(cfg->tls_version, &cfg->tls_min) !=
		    MOAT_OK)
		return usage_error(cfg, "unsupported TLS version '%s': use "
					"tlsv1.2 or tlsv1.3 (TLS 1.2 is the "
					"minimum)", cfg->tls_version);
	int rc = cli_url_merge(cfg);
	if (rc != MOAT_OK)
		return rc;
	if (!cfg->host)
		cfg->host = "localhost";
	if (cfg->ws_path && !cfg->ws)
		return usage_error(cfg, "--ws-path needs --ws (or a ws:// or "
					"wss:// URL)");
	if (cfg->ws_path && cfg->ws_path[0] != '/')
		return usage_error(cfg, "--ws-path must start with '/'");
	if (cfg->ws && !cfg->ws_path)
		cfg->ws_path = "/mqtt";
	if (!cfg->port)
		cfg->port = cfg->ws ? (cfg->tls ? 443 : 80)
				    : (cfg->tls ? 8883 : 1883);
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
	cfg->keepalive = 60;
	cfg->will_qos = -1;
	cfg->retain_handling = -1;
	cfg->proto_level = MQTT_PROTO_V311;
	struct cli_cmd c = *command_of(tool);
	c.cfg = cfg;
	int rc = cli_opt_parse(&c, argc, argv);
	if (rc != CLI_CONTINUE || tool == CLI_COAP) /* coap_cmd.c checks */
		return rc;
	if ((rc = check_tls(cfg)) != MOAT_OK ||
	    (rc = make_client_id(cfg)) != MOAT_OK ||
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
	if (cfg->url_password) {
		explicit_bzero(cfg->url_password, strlen(cfg->url_password));
		MOAT_FREE(cfg->url_password);
	}
	MOAT_FREE(cfg->url);
	MOAT_FREE(cfg->filters.v);
	MOAT_FREE(cfg->filter_out.v);
	MOAT_FREE(cfg->coap.args.v);
	cli_props_cleanup(cfg);
}
