/* The bridge directives with a syntax of their own (mosquitto's
 * connection, address, topic, restart_timeout, remote_password) and the
 * checks on each connection once the file is read.  The plain ones
 * (remote_username, bridge_cafile, ...) are ordinary rows of the table
 * (cfg_schema.c) that write into the newest connection. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "codec/mqtt_codec.h"
#include "cfg_int.h"

#define DEFAULT_PORT 1883

static const char *err_at(char *buf, size_t bufsz, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static const char *err_at(char *buf, size_t bufsz, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, bufsz, fmt, ap);
	va_end(ap);
	return buf;
}

static bool name_valid(const char *s)
{
	if (!*s || strlen(s) >= sizeof(((struct moat_bridge_cfg *)0)->name))
		return false;
	for (; *s; s++)
		if (!(*s >= 'a' && *s <= 'z') && !(*s >= 'A' && *s <= 'Z') &&
		    !(*s >= '0' && *s <= '9') && !strchr("._-", *s))
			return false;
	return true;
}

static const char *new_bridge(struct moat_config *cfg, char *const *argv,
			      size_t argc, char *buf, size_t bufsz)
{
	if (argc != 2 || !name_valid(argv[1]))
		return "expected: connection NAME (letters, digits, '.', "
		       "'_', '-'; at most 63)";
	if (cfg->nbridges == MOAT_CFG_MAX_BRIDGES)
		return "too many connections (at most 8)";
	for (size_t i = 0; i < cfg->nbridges; i++)
		if (!strcmp(cfg->bridges[i].name, argv[1]))
			return err_at(buf, bufsz, "duplicate connection %s",
				      argv[1]);
	struct moat_bridge_cfg *bc = &cfg->bridges[cfg->nbridges++];
	memset(bc, 0, sizeof(*bc));
	snprintf(bc->name, sizeof(bc->name), "%s", argv[1]);
	bc->restart_base_ms = 5000; /* mosquitto's default: 5 30 */
	bc->restart_cap_ms = 30000;
	return NULL;
}

/* HOST, HOST:PORT, [V6] or [V6]:PORT (a bare IPv6 address has no port). */
static const char *parse_addr(const char *s, struct moat_bridge_addr *a,
			      char *buf, size_t bufsz)
{
	const char *host = s, *port = NULL;
	size_t hlen;
	if (s[0] == '[') {
		const char *e = strchr(s, ']');
		if (!e || (e[1] && e[1] != ':'))
			return err_at(buf, bufsz, "bad address '%s'", s);
		host = s + 1;
		hlen = (size_t)(e - host);
		port = e[1] ? e + 2 : NULL;
	} else {
		const char *c = strchr(s, ':');
		if (c && strchr(c + 1, ':'))
			c = NULL; /* an IPv6 address without a port */
		hlen = c ? (size_t)(c - s) : strlen(s);
		port = c ? c + 1 : NULL;
	}
	if (!hlen || hlen >= sizeof(a->host))
		return err_at(buf, bufsz, "bad address '%s'", s);
	memcpy(a->host, host, hlen);
	a->host[hlen] = '\0';
	a->port = DEFAULT_PORT;
	if (port) {
		char *end;
		unsigned long p = strtoul(port, &end, 10);
		if (!*port || *end || p == 0 || p > 65535)
			return err_at(buf, bufsz, "bad port in '%s'", s);
		a->port = (uint16_t)p;
	}
	return NULL;
}

static const char *set_addresses(struct moat_bridge_cfg *bc,
				 char *const *argv, size_t argc, char *buf,
				 size_t bufsz)
{
	if (argc < 2)
		return "expected: address HOST[:PORT] [HOST[:PORT] ...]";
	if (argc - 1 > MOAT_CFG_MAX_BRIDGE_ADDRS)
		return "too many addresses (at most 4)";
	for (size_t i = 1; i < argc; i++) {
		const char *e = parse_addr(argv[i], &bc->addrs[i - 1], buf,
					   bufsz);
		if (e)
			return e;
	}
	bc->naddrs = argc - 1;
	return NULL;
}

/* mosquitto writes an empty pattern or prefix as "". */
static const char *word(const char *s)
{
	return strcmp(s, "\"\"") ? s : "";
}

static bool copy_prefix(char *dst, size_t dstsz, const char *s)
{
	size_t n = strlen(s);
	if (n >= dstsz || strpbrk(s, "+#"))
		return false;
	memcpy(dst, s, n + 1);
	return n == 0 || moat_topic_name_valid((const uint8_t *)s, n);
}

static const char *set_topic(struct moat_bridge_cfg *bc, char *const *argv,
			     size_t argc, char *buf, size_t bufsz)
{
	static const char *const dirs[] = {"out", "in", "both"};
	if (argc < 2 || argc > 6)
		return "expected: topic PATTERN [in|out|both [QOS "
		       "[LOCAL_PREFIX [REMOTE_PREFIX]]]]";
	if (bc->ntopics == MOAT_CFG_MAX_BRIDGE_TOPICS)
		return "too many topic lines in this connection (at most 16)";
	struct moat_bridge_topic t = {.dir = MOAT_BRIDGE_OUT, .qos = 0};
	const char *pat = word(argv[1]);
	if (strlen(pat) >= sizeof(t.pattern))
		return "pattern too long";
	snprintf(t.pattern, sizeof(t.pattern), "%s", pat);
	if (argc > 2) {
		int d = -1;
		for (int i = 0; i < 3; i++)
			if (!strcmp(argv[2], dirs[i]))
				d = i;
		if (d < 0)
			return err_at(buf, bufsz,
				      "direction '%s': expected in, out or "
				      "both", argv[2]);
		t.dir = (uint8_t)d;
	}
	if (argc > 3) {
		if (strlen(argv[3]) != 1 || argv[3][0] < '0' || argv[3][0] > '2')
			return err_at(buf, bufsz, "QoS '%s': expected 0, 1 or 2",
				      argv[3]);
		t.qos = (uint8_t)(argv[3][0] - '0');
	}
	if ((argc > 4 && !copy_prefix(t.local_prefix, sizeof(t.local_prefix),
				      word(argv[4]))) ||
	    (argc > 5 && !copy_prefix(t.remote_prefix,
				      sizeof(t.remote_prefix), word(argv[5]))))
		return "a prefix is a topic name start: no '+' or '#', at "
		       "most 127 bytes";
	if (!t.pattern[0] && (!t.local_prefix[0] || !t.remote_prefix[0]))
		return "an empty pattern (\"\") needs both prefixes: they are "
		       "then the local and remote topics";
	/* Both sides must be valid filters. */
	char f[sizeof(t.pattern) + sizeof(t.local_prefix)];
	const char *pre[2] = {t.local_prefix, t.remote_prefix};
	for (int i = 0; i < 2; i++) {
		int n = snprintf(f, sizeof(f), "%s%s", pre[i], t.pattern);
		if (!moat_topic_filter_valid((const uint8_t *)f, (size_t)n))
			return err_at(buf, bufsz,
				      "'%s' (prefix and pattern) is not a "
				      "valid topic filter", f);
	}
	bc->topics[bc->ntopics++] = t;
	return NULL;
}

static const char *set_restart(struct moat_bridge_cfg *bc, char *const *argv,
			       size_t argc)
{
	const char *usage = "expected: restart_timeout BASE [CAP] (seconds, "
			    "1 to 86400, CAP >= BASE)";
	unsigned long v[2] = {0, 0};
	if (argc < 2 || argc > 3)
		return usage;
	for (size_t i = 1; i < argc; i++) {
		char *end;
		v[i - 1] = strtoul(argv[i], &end, 10);
		if (!*argv[i] || *end || v[i - 1] < 1 || v[i - 1] > 86400)
			return usage;
	}
	if (argc == 3 && v[1] < v[0])
		return usage;
	bc->restart_base_ms = (uint64_t)v[0] * 1000u;
	bc->restart_cap_ms = (uint64_t)v[1] * 1000u;
	return NULL;
}

const char *moat__cfg_bridge_apply(struct moat_config *cfg,
				   const struct moat_cfg_directive *d,
				   char *const *argv, size_t argc, char *buf,
				   size_t bufsz)
{
	if (d->type == CFG_BRIDGE)
		return new_bridge(cfg, argv, argc, buf, bufsz);
	struct moat_bridge_cfg *bc = &cfg->bridges[cfg->nbridges - 1];
	switch (d->type) {
	case CFG_BRIDGE_ADDRESS:
		return set_addresses(bc, argv, argc, buf, bufsz);
	case CFG_BRIDGE_TOPIC:
		return set_topic(bc, argv, argc, buf, bufsz);
	case CFG_BRIDGE_RESTART:
		return set_restart(bc, argv, argc);
	case CFG_BRIDGE_SECRET:
		if (argc != 2)
			return "expected exactly one value";
		if (strlen(argv[1]) >= sizeof(bc->remote_password))
			return "longer than 127 bytes";
		snprintf(bc->remote_password, sizeof(bc->remote_password),
			 "%s", argv[1]);
		bc->password_inline = true;
		return NULL;
	default:
		return "internal: not a bridge directive";
	}
}

/* remote_password_file: the first line of a private file. */
static const char *read_password(struct moat_bridge_cfg *bc, char *buf,
				 size_t bufsz)
{
	char *text, err[400];
	size_t len;
	if (moat_file_read(bc->remote_password_file, 4096, true, &text, &len,
			   err, sizeof(err)) != MOAT_OK)
		return err_at(buf, bufsz, "remote_password_file %s", err);
	size_t n = strcspn(text, "\r\n");
	bool ok = n > 0 && n < sizeof(bc->remote_password);
	if (ok) {
		memcpy(bc->remote_password, text, n);
		bc->remote_password[n] = '\0';
	}
	OPENSSL_cleanse(text, len);
	moat_free(text);
	return ok ? NULL
		  : err_at(buf, bufsz,
			   "remote_password_file %s: the first line must hold "
			   "the password (1 to 127 bytes)",
			   bc->remote_password_file);
}

static const char *check_secret(const struct moat_config *cfg,
				struct moat_bridge_cfg *bc, char *buf,
				size_t bufsz)
{
	if (bc->password_inline && bc->remote_password_file[0])
		return "remote_password and remote_password_file exclude each "
		       "other";
	/* A password in the config is refused unless only the owner (and
	 * a group that cannot write) may read it: the same rule as for
	 * password and key files. */
	if (bc->password_inline && cfg->source_mode & (S_IWGRP | S_IRWXO)) {
		snprintf(buf, bufsz,
			 "connection %s: remote_password is written in a file "
			 "other users can read or its group can write (mode "
			 "%04o); refused: chmod o-rwx,g-w the file, or put the "
			 "password in remote_password_file",
			 bc->name, (unsigned)cfg->source_mode);
		return buf;
	}
	if (bc->remote_password_file[0]) {
		const char *e = read_password(bc, buf, bufsz);
		if (e)
			return e;
	}
	if (bc->remote_password[0] && !bc->remote_username[0])
		return "remote_password needs remote_username";
	return NULL;
}

static const char *check_bridge(const struct moat_config *cfg,
				struct moat_bridge_cfg *bc, char *buf,
				size_t bufsz)
{
	if (!bc->naddrs)
		return "needs an address line";
	if (!bc->ntopics)
		return "needs at least one topic line";
	if (!bc->certfile[0] != !bc->keyfile[0])
		return "bridge_certfile and bridge_keyfile go together";
	if (bc->insecure && !moat_bridge_tls(bc))
		return "bridge_insecure applies to TLS bridges (bridge_cafile, "
		       "bridge_capath or bridge_tls_use_os_certs)";
	if (bc->start_type != 0)
		return "start_type: only automatic is supported";
	const char *e = check_secret(cfg, bc, buf, bufsz);
	if (e)
		return e;
	char host[64] = "moat";
	if (gethostname(host, sizeof(host) - 1) != 0 || !host[0])
		snprintf(host, sizeof(host), "moat");
	host[sizeof(host) - 1] = '\0';
	/* mosquitto's defaults: HOSTNAME.NAME and local.HOSTNAME.NAME */
	if (!bc->remote_clientid[0])
		snprintf(bc->remote_clientid, sizeof(bc->remote_clientid),
			 "%.60s.%s", host, bc->name);
	if (!bc->local_clientid[0])
		snprintf(bc->local_clientid, sizeof(bc->local_clientid),
			 "local.%.120s", bc->remote_clientid);
	if (!bc->local_username[0])
		snprintf(bc->local_username, sizeof(bc->local_username), "%s",
			 bc->name);
	if (!bc->notification_topic[0])
		snprintf(bc->notification_topic,
			 sizeof(bc->notification_topic),
			 "$SYS/broker/connection/%.200s/state",
			 bc->remote_clientid);
	return NULL;
}

const char *moat__cfg_bridge_finish(struct moat_config *cfg, char *buf,
				    size_t bufsz)
{
	for (size_t i = 0; i < cfg->nbridges; i++) {
		struct moat_bridge_cfg *bc = &cfg->bridges[i];
		char msg[300];
		const char *e = check_bridge(cfg, bc, msg, sizeof(msg));
		if (e) {
			/* (a message may already name the connection) */
			if (!strncmp(e, "connection ", 11))
				snprintf(buf, bufsz, "%s", e);
			else
				snprintf(buf, bufsz, "connection %s (line %u): %s",
					 bc->name, bc->line, e);
			return buf;
		}
	}
	return NULL;
}
