/* -L / --url for `moat pub` and `moat sub`, as mosquitto_pub's -L:
 *
 *     mqtt://[USER[:PASSWORD]@]HOST[:PORT]/TOPIC
 *     mqtts://[USER[:PASSWORD]@]HOST[:PORT]/TOPIC    (TLS)
 *     ws://[USER[:PASSWORD]@]HOST[:PORT]/TOPIC       (MQTT over WebSockets)
 *     wss://[USER[:PASSWORD]@]HOST[:PORT]/TOPIC      (WebSockets over TLS)
 *
 * HOST may be an IPv6 literal in brackets.  The port defaults to 1883
 * (mqtt), 8883 (mqtts), 80 (ws) or 443 (wss); the WebSocket path is
 * --ws-path's (/mqtt by default).  Nothing is percent-decoded, as in mosquitto.
 * A password in the URL is wiped from argv (like -P) and never printed:
 * messages about a URL never repeat it. */
#include <stdlib.h>
#include <string.h>

#include "moat_cli.h"

/* Wipe the password part of the argument in argv (ps, /proc/PID/cmdline). */
static void wipe(char *p, size_t n)
{
	memset(p, '*', n);
}

static int url_error(const struct cli_cfg *cfg, const char *why)
{
	return cli_usage_error(cfg, "invalid -L URL: %s (the form is "
				    "mqtt[s]|ws[s]://[USER[:PASSWORD]@]HOST"
				    "[:PORT]/TOPIC)", why);
}

/* Split "HOST[:PORT]" or "[V6]:PORT" in place. */
static int split_host(struct cli_cfg *cfg, char *hp)
{
	char *port = NULL;
	if (hp[0] == '[') {
		char *end = strchr(hp, ']');
		if (!end || end == hp + 1)
			return url_error(cfg, "bad [IPv6] address");
		*end = '\0';
		cfg->url_host = hp + 1;
		if (end[1] == ':')
			port = end + 2;
		else if (end[1])
			return url_error(cfg, "unexpected text after ']'");
	} else {
		cfg->url_host = hp;
		char *colon = strchr(hp, ':');
		if (colon) {
			*colon = '\0';
			port = colon + 1;
		}
	}
	if (!cfg->url_host[0])
		return url_error(cfg, "no host");
	if (port) {
		char *end;
		long v = strtol(port, &end, 10);
		if (!port[0] || *end || v < 1 || v > 65535)
			return url_error(cfg, "the port must be a number from "
					      "1 to 65535");
		cfg->url_port = v;
	}
	return MOAT_OK;
}

/* USER[:PASSWORD] in place; orig is the same text in argv, wiped. */
static int split_user(struct cli_cfg *cfg, char *ui, char *orig)
{
	char *colon = strchr(ui, ':');
	if (colon) {
		size_t off = (size_t)(colon - ui) + 1;
		size_t n = strlen(colon + 1);
		cfg->url_password = moat_strdup(colon + 1);
		explicit_bzero(colon + 1, n);
		wipe(orig + off, n);
		*colon = '\0';
		if (!cfg->url_password)
			return cli_usage_error(cfg, "out of memory");
	}
	if (!ui[0])
		return url_error(cfg, "empty user name before '@'");
	cfg->url_user = ui;
	return MOAT_OK;
}

int cli_url_parse(struct cli_cfg *cfg, char *arg)
{
	if (cfg->url)
		return cli_usage_error(cfg, "-L may be given once");
	cfg->url = moat_strdup(arg);
	if (!cfg->url)
		return cli_usage_error(cfg, "out of memory");
	char *s = cfg->url;
	char *sep = strstr(s, "://");
	if (!sep)
		return url_error(cfg, "no scheme");
	*sep = '\0';
	cfg->url_tls = strcmp(s, "mqtts") == 0 || strcmp(s, "wss") == 0;
	cfg->url_ws = strcmp(s, "ws") == 0 || strcmp(s, "wss") == 0;
	if (!cfg->url_tls && !cfg->url_ws && strcmp(s, "mqtt") != 0)
		return cli_usage_error(cfg, "unsupported -L URL scheme '%.16s': "
					    "use mqtt://, mqtts://, ws:// or "
					    "wss://", s);
	char *auth = sep + 3;
	char *slash = strchr(auth, '/');
	if (!slash || !slash[1])
		return url_error(cfg, "no topic after the host");
	*slash = '\0';
	cfg->url_topic = slash + 1;
	char *at = strrchr(auth, '@');
	if (at) {
		*at = '\0';
		int rc = split_user(cfg, auth, arg + (auth - cfg->url));
		if (rc != MOAT_OK)
			return rc;
		auth = at + 1;
	}
	return split_host(cfg, auth);
}

/* One thing given twice: by -L and by its own option. */
static int twice(const struct cli_cfg *cfg, const char *what,
		 const char *opt)
{
	return cli_usage_error(cfg, "-L gives the %s: drop %s", what, opt);
}

int cli_url_merge(struct cli_cfg *cfg)
{
	if (!cfg->url)
		return MOAT_OK;
	if (cfg->host)
		return twice(cfg, "host", "-h");
	cfg->host = cfg->url_host;
	if (cfg->url_port && cfg->port)
		return twice(cfg, "port", "-p");
	if (cfg->url_port)
		cfg->port = cfg->url_port;
	if (cfg->url_user && cfg->username)
		return twice(cfg, "user name", "-u");
	if (cfg->url_user)
		cfg->username = cfg->url_user;
	if (cfg->url_password && cfg->password)
		return twice(cfg, "password", "-P");
	if (cfg->url_password) {
		cfg->password = cfg->url_password;
		cfg->url_password = NULL;
	}
	if (!cfg->url_tls && cfg->tls)
		return cli_usage_error(cfg, "TLS options with %s:// URL: "
					    "use %s://",
				       cfg->url_ws ? "a ws" : "an mqtt",
				       cfg->url_ws ? "wss" : "mqtts");
	if (!cfg->url_ws && cfg->ws)
		return cli_usage_error(cfg, "--ws with an mqtt[s]:// URL: use "
					    "ws:// or wss://");
	cfg->tls = cfg->tls || cfg->url_tls;
	cfg->ws = cfg->ws || cfg->url_ws;
	if (cfg->tool == CLI_SUB)
		return cli_list_add(cfg, &cfg->filters, cfg->url_topic);
	if (cfg->topic)
		return twice(cfg, "topic", "-t");
	cfg->topic = cfg->url_topic;
	return MOAT_OK;
}
