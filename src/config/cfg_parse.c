/* Line-based config parser driven by the directive table. */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "codec/mqtt_codec.h"
#include "leak/leak.h"
#include <unistd.h>

#include "cfg_int.h"

#define CFG_MAX_FILE (4u * 1024u * 1024u)
#define CFG_MAX_ARGS 8 /* topic PATTERN DIR QOS LOCAL REMOTE; address x4 */

struct cfg_line {
	const char *file;
	size_t lineno;
	char *argv[CFG_MAX_ARGS];
	size_t argc;
};

static int fail(struct moat_cfg_err *err, const struct cfg_line *l,
		const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static int fail(struct moat_cfg_err *err, const struct cfg_line *l,
		const char *fmt, ...)
{
	int n = 0;
	if (l && l->argc)
		n = snprintf(err->msg, sizeof(err->msg), "%s:%zu: %s: ", l->file,
			     l->lineno, l->argv[0]);
	else if (l)
		n = snprintf(err->msg, sizeof(err->msg), "%s:%zu: ", l->file,
			     l->lineno);
	if (n < 0 || (size_t)n >= sizeof(err->msg))
		n = 0;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err->msg + n, sizeof(err->msg) - (size_t)n, fmt, ap);
	va_end(ap);
	return MOAT_EINVAL;
}

/* Parse an unsigned number with an optional unit suffix. */
static int parse_number(const char *s, enum moat_cfg_type type, uint64_t *out)
{
	if (!isdigit((unsigned char)s[0]))
		return MOAT_EINVAL;
	errno = 0;
	char *end;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno)
		return MOAT_EINVAL;
	uint64_t mult = 1;
	if (*end && type == CFG_SIZE) {
		switch (tolower((unsigned char)*end)) {
		case 'k': mult = 1024ull; break;
		case 'm': mult = 1024ull * 1024ull; break;
		case 'g': mult = 1024ull * 1024ull * 1024ull; break;
		case 'b': mult = 1; break;
		default: return MOAT_EINVAL;
		}
		end++;
		if (mult > 1 && (*end == 'b' || *end == 'B'))
			end++;
	} else if (*end && type == CFG_MSEC) {
		if (!strcmp(end, "ms"))
			mult = 1;
		else if (!strcmp(end, "s"))
			mult = 1000;
		else if (!strcmp(end, "m"))
			mult = 60000;
		else if (!strcmp(end, "h"))
			mult = 3600000;
		else
			return MOAT_EINVAL;
		end += strlen(end);
	} else if (type == CFG_MSEC) {
		mult = 1000; /* a plain number is seconds, like durations */
	} else if (*end && type == CFG_DURATION) {
		switch (*end) {
		case 's': mult = 1; break;
		case 'm': mult = 60; break;
		case 'h': mult = 3600; break;
		case 'd': mult = 86400; break;
		default: return MOAT_EINVAL;
		}
		end++;
	}
	if (*end)
		return MOAT_EINVAL;
	if (v > UINT64_MAX / mult)
		return MOAT_EINVAL;
	*out = (uint64_t)v * mult;
	return MOAT_OK;
}

static int parse_bool(const char *s, bool *out)
{
	if (!strcasecmp(s, "true") || !strcmp(s, "1") || !strcasecmp(s, "yes") ||
	    !strcasecmp(s, "on"))
		*out = true;
	else if (!strcasecmp(s, "false") || !strcmp(s, "0") ||
		 !strcasecmp(s, "no") || !strcasecmp(s, "off"))
		*out = false;
	else
		return MOAT_EINVAL;
	return MOAT_OK;
}

bool moat_cfg_addr_is_loopback(const char *addr)
{
	struct in_addr a4;
	struct in6_addr a6;
	if (!strcmp(addr, "localhost"))
		return true;
	if (inet_pton(AF_INET, addr, &a4) == 1)
		return (ntohl(a4.s_addr) >> 24) == 127;
	if (inet_pton(AF_INET6, addr, &a6) == 1)
		return IN6_IS_ADDR_LOOPBACK(&a6);
	return false;
}

static void listener_defaults(struct moat_config *cfg);

/* Append a listener (defaults applied); MOAT_ELIMIT when full. */
static int set_listener_at(struct moat_config *cfg, const char *addr,
			   uint16_t port)
{
	if (cfg->nlisteners == MOAT_CFG_MAX_LISTENERS)
		return MOAT_ELIMIT;
	struct moat_listener_cfg *lc = &cfg->listeners[cfg->nlisteners++];
	memset(lc, 0, sizeof(*lc));
	lc->port = port;
	snprintf(lc->addr, sizeof(lc->addr), "%s", addr);
	listener_defaults(cfg);
	return MOAT_OK;
}

static int set_listener(struct moat_config *cfg, const struct cfg_line *l,
			struct moat_cfg_err *err)
{
	uint64_t port;
	if (l->argc < 2 || l->argc > 3)
		return fail(err, l, "expected: listener PORT [ADDRESS]");
	if (parse_number(l->argv[1], CFG_U32, &port) || port > 65535)
		return fail(err, l, "invalid port '%s' (0-65535)", l->argv[1]);
	if (cfg->nlisteners == MOAT_CFG_MAX_LISTENERS)
		return fail(err, l, "too many listeners (at most %d)",
			    MOAT_CFG_MAX_LISTENERS);
	struct moat_listener_cfg *lc = &cfg->listeners[cfg->nlisteners];
	memset(lc, 0, sizeof(*lc));
	lc->port = (uint16_t)port;
	if (l->argc == 3) {
		const char *a = l->argv[2];
		unsigned char tmp[sizeof(struct in6_addr)];
		if (!strcmp(a, "localhost"))
			a = "127.0.0.1";
		if (inet_pton(AF_INET, a, tmp) != 1 &&
		    inet_pton(AF_INET6, a, tmp) != 1)
			return fail(err, l,
				    "'%s' is not a numeric IPv4 or IPv6 address",
				    l->argv[2]);
		snprintf(lc->addr, sizeof(lc->addr), "%s", a);
	}
	for (size_t i = 0; i < cfg->nlisteners; i++)
		if (cfg->listeners[i].port == lc->port && lc->port &&
		    !strcmp(cfg->listeners[i].addr, lc->addr))
			return fail(err, l, "duplicate listener %u %s",
				    (unsigned)lc->port, lc->addr);
	cfg->nlisteners++;
	listener_defaults(cfg);
	return MOAT_OK;
}

static int set_path(const struct moat_config *cfg, char *dst, size_t dstsz,
		    const char *val);

static int set_log_dest(struct moat_config *cfg, const struct cfg_line *l,
			struct moat_cfg_err *err)
{
	static const char *const dests[] = {"stderr", "syslog", "file"};
	int d = -1;
	for (int i = 0; i < 3; i++)
		if (l->argc >= 2 && !strcmp(l->argv[1], dests[i]))
			d = i;
	if (d < 0 || (d == MOAT_LOG_FILE) != (l->argc == 3) || l->argc > 3)
		return fail(err, l, "expected: log_dest stderr|syslog|file PATH");
	cfg->log_dest = (uint32_t)d;
	cfg->log_file[0] = '\0';
	if (d == MOAT_LOG_FILE &&
	    set_path(cfg, cfg->log_file, sizeof(cfg->log_file), l->argv[2]))
		return fail(err, l, "path longer than %zu bytes",
			    sizeof(cfg->log_file) - 1);
	return MOAT_OK;
}

static int set_leak_policy(struct moat_config *cfg, const struct cfg_line *l,
			   struct moat_cfg_err *err)
{
	static const char *const actions[] = {"log", "alert", "redact",
					      "block"};
	if (l->argc != 4)
		return fail(err, l, "expected: leak_policy TOPIC-FILTER "
			    "CATEGORY|all log|alert|redact|block");
	if (cfg->nleak_policies == MOAT_CFG_MAX_LEAK_POLICIES)
		return fail(err, l, "too many leak_policy lines (at most %d)",
			    MOAT_CFG_MAX_LEAK_POLICIES);
	struct moat_leak_policy_cfg *p =
		&cfg->leak_policies[cfg->nleak_policies];
	const char *f = l->argv[1], *c = l->argv[2];
	if (strlen(f) >= sizeof(p->filter) ||
	    !moat_topic_filter_valid((const uint8_t *)f, strlen(f)))
		return fail(err, l, "'%s' is not a valid topic filter", f);
	enum moat_leak_category cat;
	if (!strcmp(c, "all"))
		p->categories = MOAT_LEAK_ALL;
	else if (strlen(c) < sizeof(p->category) &&
		 moat_leak_category_parse(c, strlen(c), &cat) == MOAT_OK)
		p->categories = MOAT_LEAK_BIT(cat);
	else
		return fail(err, l, "unknown category '%s' (moat scan "
			    "--list-categories lists them)", c);
	int a = -1;
	for (int i = 0; i < 4; i++)
		if (!strcmp(l->argv[3], actions[i]))
			a = i;
	if (a < 0)
		return fail(err, l, "unknown action '%s' (log, alert, redact "
			    "or block)", l->argv[3]);
	snprintf(p->filter, sizeof(p->filter), "%s", f);
	snprintf(p->category, sizeof(p->category), "%s", c);
	p->action = (uint8_t)a;
	p->line = (unsigned)l->lineno;
	cfg->nleak_policies++;
	return MOAT_OK;
}

/* Index of val in "a|b|c", or -1. */
static int enum_index(const char *values, const char *val)
{
	size_t vl = strlen(val);
	int i = 0;
	for (const char *p = values; *p; i++) {
		const char *bar = strchr(p, '|');
		size_t n = bar ? (size_t)(bar - p) : strlen(p);
		if (n == vl && !strncasecmp(p, val, n))
			return i;
		if (!bar)
			break;
		p = bar + 1;
	}
	return -1;
}

/* A relative path is taken from the config file's directory, so that a
 * set-up directory (moatd init) can be moved as a whole. */
static int set_path(const struct moat_config *cfg, char *dst, size_t dstsz,
		    const char *val)
{
	int n;
	const char *slash = strrchr(cfg->source, '/');
	if (val[0] == '/' || !slash)
		n = snprintf(dst, dstsz, "%s", val);
	else
		n = snprintf(dst, dstsz, "%.*s/%s",
			     (int)(slash - cfg->source), cfg->source, val);
	return n < 0 || (size_t)n >= dstsz ? MOAT_ELIMIT : MOAT_OK;
}

static int set_value(struct moat_config *cfg,
		     const struct moat_cfg_directive *d, const char *val,
		     const struct cfg_line *l, struct moat_cfg_err *err)
{
	char *base = (char *)cfg;
	uint64_t v;
	int idx;
	if (d->per_listener) {
		if (!cfg->nlisteners)
			return fail(err, l,
				    "applies to a listener: put it after a "
				    "'listener' line");
		base = (char *)&cfg->listeners[cfg->nlisteners - 1];
	} else if (d->per_bridge) {
		if (!cfg->nbridges)
			return fail(err, l,
				    "applies to a bridge: put it after a "
				    "'connection' line");
		base = (char *)&cfg->bridges[cfg->nbridges - 1];
	}
	switch (d->type) {
	case CFG_STRING:
		if (strlen(val) >= d->max)
			return fail(err, l, "value longer than %llu bytes",
				    (unsigned long long)d->max - 1);
		snprintf(base + d->offset, (size_t)d->max, "%s", val);
		return MOAT_OK;
	case CFG_PATH:
		if (set_path(cfg, base + d->offset, (size_t)d->max, val))
			return fail(err, l, "path longer than %llu bytes",
				    (unsigned long long)d->max - 1);
		return MOAT_OK;
	case CFG_ENUM:
		if ((idx = enum_index(d->values, val)) < 0)
			return fail(err, l, "expected one of %s, got '%s'",
				    d->values, val);
		*(uint32_t *)(void *)(base + d->offset) = (uint32_t)idx;
		return MOAT_OK;
	case CFG_BOOL:
		if (parse_bool(val, (bool *)(void *)(base + d->offset)))
			return fail(err, l, "expected true or false, got '%s'",
				    val);
		return MOAT_OK;
	case CFG_LOGLEVEL:
		if (moat_log_level_parse(
			    val, (enum moat_log_level *)(void *)(base +
								 d->offset)))
			return fail(err, l,
				    "expected error, warning, notice, info or "
				    "debug, got '%s'",
				    val);
		return MOAT_OK;
	case CFG_U32:
	case CFG_U64:
	case CFG_SIZE:
	case CFG_DURATION:
	case CFG_MSEC:
		if (parse_number(val, d->type, &v))
			return fail(err, l, "invalid value '%s'", val);
		if (v < d->min || v > d->max)
			return fail(err, l,
				    "%llu is out of range (%llu to %llu)",
				    (unsigned long long)v,
				    (unsigned long long)d->min,
				    (unsigned long long)d->max);
		if (d->type == CFG_U32)
			*(uint32_t *)(void *)(base + d->offset) = (uint32_t)v;
		else
			*(uint64_t *)(void *)(base + d->offset) = v;
		return MOAT_OK;
	case CFG_LOG_DEST:
		return MOAT_OK; /* default: stderr (zero) */
	case CFG_LISTENER:
	case CFG_LEAK_POLICY:
	case CFG_BRIDGE:
	case CFG_BRIDGE_ADDRESS:
	case CFG_BRIDGE_TOPIC:
	case CFG_BRIDGE_RESTART:
	case CFG_BRIDGE_SECRET:
		break;
	}
	return fail(err, l, "internal: bad directive type");
}

static const struct moat_cfg_directive *find_directive(const char *name)
{
	for (size_t i = 0; i < moat__cfg_ndirectives; i++)
		if (!strcmp(moat__cfg_directives[i].name, name))
			return &moat__cfg_directives[i];
	return NULL;
}

void moat_cfg_defaults(struct moat_config *cfg)
{
	struct moat_cfg_err err;
	memset(cfg, 0, sizeof(*cfg));
	for (size_t i = 0; i < moat__cfg_ndirectives; i++) {
		const struct moat_cfg_directive *d = &moat__cfg_directives[i];
		if (d->def && !d->per_listener && !d->per_bridge)
			(void)set_value(cfg, d, d->def, NULL, &err);
	}
}

/* Defaults of the per-listener directives for the newest listener. */
static void listener_defaults(struct moat_config *cfg)
{
	struct moat_cfg_err err;
	for (size_t i = 0; i < moat__cfg_ndirectives; i++) {
		const struct moat_cfg_directive *d = &moat__cfg_directives[i];
		if (d->def && d->per_listener)
			(void)set_value(cfg, d, d->def, NULL, &err);
	}
}

/* Defaults of the per-connection directives for the newest bridge. */
static void bridge_defaults(struct moat_config *cfg)
{
	struct moat_cfg_err err;
	for (size_t i = 0; i < moat__cfg_ndirectives; i++) {
		const struct moat_cfg_directive *d = &moat__cfg_directives[i];
		/* (connection sets the others' defaults itself) */
		if (d->per_bridge && d->def && d->type < CFG_BRIDGE)
			(void)set_value(cfg, d, d->def, NULL, &err);
	}
}

/* Split a line into whitespace-separated words in place.  '#' starts a
 * comment only at the start of a line (as in mosquitto.conf), so values
 * may contain it. */
static int split_line(char *s, struct cfg_line *l, struct moat_cfg_err *err)
{
	l->argc = 0;
	while (*s == ' ' || *s == '\t')
		s++;
	if (*s == '#' || *s == '\0')
		return MOAT_OK;
	while (*s) {
		if (l->argc == CFG_MAX_ARGS)
			return fail(err, l, "too many arguments");
		l->argv[l->argc++] = s;
		while (*s && *s != ' ' && *s != '\t')
			s++;
		if (*s)
			*s++ = '\0';
		while (*s == ' ' || *s == '\t')
			s++;
	}
	return MOAT_OK;
}

static int check_line_bytes(const char *s, const struct cfg_line *l,
			    struct moat_cfg_err *err)
{
	for (const char *p = s; *p; p++) {
		unsigned char c = (unsigned char)*p;
		if (c < 0x20 && c != '\t')
			return fail(err, l, "control character 0x%02x in line",
				    c);
	}
	if (!moat_utf8_valid((const uint8_t *)s, strlen(s)))
		return fail(err, l, "line is not valid UTF-8");
	return MOAT_OK;
}

static int apply_line(struct moat_config *cfg, struct cfg_line *l,
		      struct moat_cfg_err *err)
{
	const struct moat_cfg_directive *d = find_directive(l->argv[0]);
	if (!d)
		return fail(err, l, "unknown directive");
	if (d->type == CFG_LISTENER)
		return set_listener(cfg, l, err);
	if (d->type == CFG_LEAK_POLICY)
		return set_leak_policy(cfg, l, err);
	if (d->type == CFG_LOG_DEST)
		return set_log_dest(cfg, l, err);
	if (d->type >= CFG_BRIDGE) {
		char msg[256];
		size_t before = cfg->nbridges;
		const char *e = d->type != CFG_BRIDGE && !cfg->nbridges
					? "applies to a bridge: put it after a "
					  "'connection' line"
					: moat__cfg_bridge_apply(cfg, d, l->argv,
								 l->argc, msg,
								 sizeof(msg));
		if (e)
			return fail(err, l, "%s", e);
		if (cfg->nbridges > before) {
			cfg->bridges[cfg->nbridges - 1].line =
				(unsigned)l->lineno;
			bridge_defaults(cfg);
		}
		return MOAT_OK;
	}
	if (l->argc != 2)
		return fail(err, l, "expected exactly one value");
	return set_value(cfg, d, l->argv[1], l, err);
}

int moat_cfg_load_string(struct moat_config *cfg, const char *name,
			 const char *text, size_t len,
			 struct moat_cfg_err *err)
{
	struct cfg_line l = {.file = name, .lineno = 0};
	int rc = MOAT_OK;
	char *buf = moat_strndup(text, len);
	if (!buf)
		return fail(err, NULL, "%s: out of memory", name);
	if (memchr(text, '\0', len)) {
		rc = fail(err, NULL, "%s: file contains a NUL byte", name);
		goto out;
	}
	char *s = buf;
	for (;;) {
		char *nl = strchr(s, '\n');
		if (nl)
			*nl = '\0';
		l.lineno++;
		size_t n = strlen(s);
		if (n && s[n - 1] == '\r')
			s[n - 1] = '\0';
		l.argc = 0;
		if ((rc = check_line_bytes(s, &l, err)) != MOAT_OK ||
		    (rc = split_line(s, &l, err)) != MOAT_OK)
			goto out;
		if (l.argc && (rc = apply_line(cfg, &l, err)) != MOAT_OK)
			goto out;
		if (!nl)
			break;
		s = nl + 1;
	}
out:
	moat_free(buf);
	return rc;
}

int moat_cfg_load_file(struct moat_config *cfg, const char *path,
		       struct moat_cfg_err *err)
{
	int rc = MOAT_OK;
	char *text = NULL;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return fail(err, NULL, "%s: cannot open: %s", path,
			    strerror(errno));
	struct stat st;
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		rc = fail(err, NULL, "%s: not a regular file", path);
		goto out;
	}
	if ((uint64_t)st.st_size > CFG_MAX_FILE) {
		rc = fail(err, NULL, "%s: larger than %u bytes", path,
			  CFG_MAX_FILE);
		goto out;
	}
	size_t size = (size_t)st.st_size;
	text = moat_malloc(size + 1);
	if (!text) {
		rc = fail(err, NULL, "%s: out of memory", path);
		goto out;
	}
	size_t got = 0;
	while (got < size) {
		ssize_t n = read(fd, text + got, size - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			rc = fail(err, NULL, "%s: read error", path);
			goto out;
		}
		got += (size_t)n;
	}
	snprintf(cfg->source, sizeof(cfg->source), "%s", path);
	cfg->source_mode = (uint32_t)(st.st_mode & 07777);
	rc = moat_cfg_load_string(cfg, path, text, got, err);
out:
	moat_free(text);
	close(fd);
	return rc;
}

bool moat_cfg_listener_anonymous(const struct moat_config *cfg, size_t i)
{
	const struct moat_listener_cfg *lc = &cfg->listeners[i];
	if (lc->use_identity_as_username)
		return false; /* every client is its certificate */
	if (lc->protocol == MOAT_PROTO_COAPS && !lc->certfile[0])
		return false; /* every client is its pre-shared key */
	switch ((enum moat_anon)cfg->allow_anonymous) {
	case MOAT_ANON_TRUE: return true;
	case MOAT_ANON_LOOPBACK: return moat_cfg_addr_is_loopback(lc->addr);
	case MOAT_ANON_FALSE: break;
	}
	return false;
}

const char *moat_cfg_listener_risks(const struct moat_config *cfg, size_t i,
				    char *out, size_t outsz)
{
	const struct moat_listener_cfg *lc = &cfg->listeners[i];
	size_t n = 0;
	out[0] = '\0';
	if (moat_cfg_addr_is_loopback(lc->addr))
		return out;
	const char *risk[4];
	size_t nr = 0;
	if (lc->protocol == MOAT_PROTO_COAP) {
		/* Plain CoAP has no credentials: every client is anonymous. */
		risk[nr++] = "as plaintext CoAP over UDP (no DTLS, no "
			     "authentication: every client is anonymous)";
	} else if (lc->protocol == MOAT_PROTO_COAPS) {
		if (!cfg->psk_file[0] && !lc->use_identity_as_username)
			risk[nr++] = "without authentication (no psk_file, no "
				     "use_identity_as_username)";
	} else if (!moat_listener_tls(lc)) {
		risk[nr++] = "without TLS";
	}
	if (!moat_listener_coap(lc) && !cfg->password_file[0] &&
	    !lc->use_identity_as_username)
		risk[nr++] = "without authentication (no password_file, no "
			     "use_identity_as_username)";
	if (moat_cfg_listener_anonymous(cfg, i))
		risk[nr++] = "with anonymous access (allow_anonymous true)";
	if (!cfg->acl_file[0])
		risk[nr++] = "without an acl_file (every client could read "
			     "every topic)";
	for (size_t k = 0; k < nr && n < outsz; k++) {
		int w = snprintf(out + n, outsz - n, "%s%s", k ? ", " : "",
				 risk[k]);
		if (w < 0)
			break;
		n += (size_t)w;
	}
	return out;
}

/* "" or comma-separated numeric addresses. */
static bool addr_list_valid(const char *list)
{
	while (*list) {
		char one[INET6_ADDRSTRLEN];
		struct in6_addr a;
		size_t n = strcspn(list, ",");
		if (n == 0 || n >= sizeof(one))
			return false;
		memcpy(one, list, n);
		one[n] = '\0';
		if (inet_pton(AF_INET, one, &a) != 1 &&
		    inet_pton(AF_INET6, one, &a) != 1)
			return false;
		list += n + (list[n] == ',');
	}
	return true;
}

/* TLS directives that only make sense together. */
static int check_tls(const struct moat_config *cfg,
		     const struct moat_listener_cfg *lc,
		     struct moat_cfg_err *err)
{
	const char *src = cfg->source[0] ? cfg->source : "config";
	const char *why = NULL;
	if (lc->protocol == MOAT_PROTO_COAPS && !cfg->psk_file[0] &&
	    !lc->certfile[0])
		why = "protocol coaps needs psk_file (pre-shared keys) or "
		      "certfile and keyfile (certificates)";
	else if (lc->protocol == MOAT_PROTO_COAP &&
		 (lc->certfile[0] || lc->keyfile[0] || lc->cafile[0]))
		why = "protocol coap is plaintext UDP: certfile, keyfile and "
		      "cafile do not apply to it";
	else if (!lc->certfile[0] != !lc->keyfile[0])
		why = "certfile and keyfile go together";
	else if (!moat_listener_tls(lc) &&
		 (lc->cafile[0] || lc->crlfile[0] || lc->require_certificate ||
		  lc->use_identity_as_username))
		why = "cafile, crlfile, require_certificate and "
		      "use_identity_as_username need TLS (certfile and "
		      "keyfile)";
	else if (lc->require_certificate && !lc->cafile[0])
		why = "require_certificate needs cafile (the CAs that sign "
		      "client certificates)";
	else if (lc->use_identity_as_username && !lc->require_certificate)
		why = "use_identity_as_username needs require_certificate true";
	else if (lc->crlfile[0] && !lc->cafile[0])
		why = "crlfile needs cafile";
	else if (lc->protocol == MOAT_PROTO_WEBSOCKETS && lc->ws_path[0] != '/')
		why = "websockets_path must start with '/'";
	else if (!addr_list_valid(lc->ws_proxies))
		why = "websockets_trusted_proxy takes numeric IPv4 or IPv6 "
		      "addresses separated by commas";
	else if (lc->protocol == MOAT_PROTO_HTTP &&
		 (lc->cafile[0] || lc->require_certificate))
		why = "client certificates (cafile, crlfile, "
		      "require_certificate, use_identity_as_username) are not "
		      "available on protocol http listeners; they use HTTP "
		      "Basic authentication";
	if (!why)
		return MOAT_OK;
	return fail(err, NULL, "%s: listener %u: %s", src, (unsigned)lc->port,
		    why);
}

int moat_cfg_finish(struct moat_config *cfg, struct moat_cfg_err *err)
{
	if (cfg->nlisteners == 0) {
		(void)set_listener_at(cfg, "127.0.0.1", 1883);
	}
	for (size_t i = 0; i < cfg->nlisteners; i++) {
		const struct moat_listener_cfg *lc = &cfg->listeners[i];
		char risks[400];
		int rc = check_tls(cfg, lc, err);
		if (rc)
			return rc;
		moat_cfg_listener_risks(cfg, i, risks, sizeof(risks));
		if (risks[0] && !cfg->allow_insecure_listener)
			return fail(err, NULL,
				    "%s: listener %u%s%s is reachable from the "
				    "network %s; fix that, bind it to "
				    "127.0.0.1, or set "
				    "'allow_insecure_listener true' to accept "
				    "the risk",
				    cfg->source[0] ? cfg->source : "config",
				    (unsigned)lc->port, lc->addr[0] ? " " : "",
				    lc->addr[0] ? lc->addr : " (all addresses)",
				    risks);
		if (lc->protocol == MOAT_PROTO_COAP &&
		    !moat_cfg_listener_anonymous(cfg, i))
			return fail(err, NULL,
				    "%s: listener %u: no client could use it: "
				    "plaintext CoAP has no credentials, and "
				    "allow_anonymous does not allow anonymous "
				    "clients on this listener",
				    cfg->source[0] ? cfg->source : "config",
				    (unsigned)lc->port);
		if (!moat_cfg_listener_anonymous(cfg, i) &&
		    !(lc->protocol == MOAT_PROTO_COAPS ? cfg->psk_file[0]
						      : cfg->password_file[0]) &&
		    !lc->use_identity_as_username)
			return fail(err, NULL,
				    "%s: listener %u: no client could connect: "
				    "anonymous access is off (allow_anonymous) "
				    "and there is no password_file (psk_file "
				    "for coaps) or use_identity_as_username",
				    cfg->source[0] ? cfg->source : "config",
				    (unsigned)lc->port);
	}
	char bmsg[400];
	const char *be = moat__cfg_bridge_finish(cfg, bmsg, sizeof(bmsg));
	if (be)
		return fail(err, NULL, "%s: %s",
			    cfg->source[0] ? cfg->source : "config", be);
	if (cfg->auth_backoff_max_ms < cfg->auth_backoff_initial_ms)
		cfg->auth_backoff_max_ms = cfg->auth_backoff_initial_ms;
	if (cfg->max_topic_length > cfg->max_packet_size)
		cfg->max_topic_length = cfg->max_packet_size;
	if (cfg->max_connect_packet_size > cfg->max_packet_size)
		cfg->max_connect_packet_size = cfg->max_packet_size;
	return MOAT_OK;
}

static const char *type_name(enum moat_cfg_type t)
{
	switch (t) {
	case CFG_BOOL: return "boolean";
	case CFG_U32:
	case CFG_U64: return "count";
	case CFG_SIZE: return "size (bytes; k, m, g suffixes)";
	case CFG_DURATION: return "duration (seconds; s, m, h, d suffixes)";
	case CFG_LOGLEVEL: return "log level";
	case CFG_LISTENER: return "PORT [ADDRESS]";
	case CFG_LEAK_POLICY: return "TOPIC-FILTER CATEGORY|all ACTION";
	case CFG_LOG_DEST: return "stderr|syslog|file PATH";
	case CFG_STRING: return "string";
	case CFG_PATH: return "file path";
	case CFG_MSEC: return "duration (seconds; ms, s, m, h suffixes)";
	case CFG_ENUM: return "one of";
	case CFG_BRIDGE: return "NAME";
	case CFG_BRIDGE_ADDRESS: return "HOST[:PORT] [HOST[:PORT] ...]";
	case CFG_BRIDGE_TOPIC:
		return "PATTERN [in|out|both [QOS [LOCAL_PREFIX "
		       "[REMOTE_PREFIX]]]]";
	case CFG_BRIDGE_RESTART: return "BASE [CAP] (seconds)";
	case CFG_BRIDGE_SECRET: return "string";
	}
	return "?";
}

void moat_cfg_print_reference(void *stream)
{
	FILE *f = stream;
	for (size_t i = 0; i < moat__cfg_ndirectives; i++) {
		const struct moat_cfg_directive *d = &moat__cfg_directives[i];
		fprintf(f, "%s  (%s", d->name, type_name(d->type));
		if (d->type == CFG_ENUM)
			fprintf(f, " %s", d->values);
		if (d->type == CFG_MSEC)
			fprintf(f, ", %llums to %llums",
				(unsigned long long)d->min,
				(unsigned long long)d->max);
		else if (d->type != CFG_BOOL && d->type != CFG_LOGLEVEL &&
			 d->type != CFG_LISTENER && d->type != CFG_ENUM &&
			 d->type != CFG_LEAK_POLICY && d->type != CFG_LOG_DEST &&
			 d->type != CFG_STRING && d->type != CFG_PATH &&
			 d->type < CFG_BRIDGE)
			fprintf(f, ", %llu to %llu",
				(unsigned long long)d->min,
				(unsigned long long)d->max);
		if (d->def)
			fprintf(f, "; default %s", d->def);
		fprintf(f, ")\n    %s\n", d->help);
	}
}
