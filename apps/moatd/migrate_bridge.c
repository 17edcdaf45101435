/* moatd migrate: mosquitto's bridge sections become moatd connection
 * sections (docs/bridges.md): the same directives where moatd has them,
 * the remote password moved into a private file beside moatd.conf, and,
 * when the set-up has an ACL, a user block that grants each bridge its
 * topics (in moatd a bridge is a user of the local ACL). */
#include <stdlib.h>
#include <string.h>

#include "check/lint.h"
#include "common/moat_common.h"
#include "migrate.h"

enum bk {
	B_SAME,   /* same name and meaning */
	B_TO,     /* moatd's name in to */
	B_PATH,   /* a file: made absolute (moatd resolves from its dir) */
	B_SECRET, /* the remote password: into bridge-NAME.pw */
	B_CHOICE, /* a value moatd may not have (see choice()) */
	B_DROP,   /* why in to */
};

static const struct {
	const char *from;
	enum bk kind;
	const char *to;
} bmap[] = {
	{"connection", B_SAME, NULL},
	{"address", B_SAME, NULL},
	{"addresses", B_TO, "address"},
	{"topic", B_SAME, NULL},
	{"remote_username", B_SAME, NULL},
	{"username", B_TO, "remote_username"},
	{"remote_password", B_SECRET, NULL},
	{"password", B_SECRET, NULL},
	{"remote_clientid", B_SAME, NULL},
	{"clientid", B_TO, "remote_clientid"},
	{"local_clientid", B_SAME, NULL},
	{"local_username", B_SAME, NULL},
	{"local_password", B_DROP,
	 "the bridge is inside moatd: its local side needs no password"},
	{"cleansession", B_SAME, NULL},
	{"keepalive_interval", B_SAME, NULL},
	{"restart_timeout", B_SAME, NULL},
	{"try_private", B_SAME, NULL},
	{"notifications", B_SAME, NULL},
	{"notifications_local_only", B_SAME, NULL},
	{"notification_topic", B_SAME, NULL},
	{"round_robin", B_SAME, NULL},
	{"start_type", B_CHOICE, NULL},
	{"bridge_cafile", B_PATH, NULL},
	{"bridge_capath", B_PATH, NULL},
	{"bridge_certfile", B_PATH, NULL},
	{"bridge_keyfile", B_PATH, NULL},
	{"bridge_insecure", B_SAME, NULL},
	{"bridge_tls_use_os_certs", B_SAME, NULL},
	{"bridge_protocol_version", B_CHOICE, NULL},
	{"bridge_tls_version", B_CHOICE, NULL},
	{"threshold", B_DROP, "lazy bridges only: moatd's start at once"},
	{"idle_timeout", B_DROP, "lazy bridges only: moatd's start at once"},
	{"bridge_psk", B_DROP,
	 "moatd's bridges use certificates, not PSK: set bridge_cafile"},
	{"bridge_identity", B_DROP,
	 "moatd's bridges use certificates, not PSK: set bridge_cafile"},
	{"bridge_outgoing_retain", B_DROP,
	 "moatd forwards the retain flag as published"},
};

static const char *choice(const char *name, const char *v)
{
	if (!strcmp(name, "start_type"))
		return strcmp(v, "automatic")
			       ? "moatd's bridges start automatically (lazy "
				 "and once are not available)"
			       : NULL;
	if (!strcmp(name, "bridge_protocol_version"))
		return strcmp(v, "mqttv311") && strcmp(v, "mqttv50")
			       ? "moatd speaks mqttv311 or mqttv50 to a remote: "
				 "mqttv311 is used"
			       : NULL;
	return strcmp(v, "tlsv1.2") && strcmp(v, "tlsv1.3")
		       ? "moatd's bridges accept TLS 1.2 or newer"
		       : NULL;
}

/* A connection name moatd accepts (letters, digits, . _ -). */
static void safe_name(const char *v, char *out, size_t outsz)
{
	size_t n = 0;
	for (; *v && *v != ' ' && *v != '\t' && n + 1 < outsz && n < 63; v++)
		out[n++] = (char)(strchr("._-", *v) ||
					  (*v >= '0' && *v <= '9') ||
					  (*v >= 'a' && *v <= 'z') ||
					  (*v >= 'A' && *v <= 'Z')
				  ? *v
				  : '_');
	out[n] = '\0';
	if (!n)
		snprintf(out, outsz, "bridge");
}

static int find(const char *name)
{
	for (size_t i = 0; i < sizeof(bmap) / sizeof(bmap[0]); i++)
		if (!strcmp(bmap[i].from, name))
			return (int)i;
	return -1;
}

/* The moatd name of bridge b ("" when it has no connection line). */
static void bridge_name(const struct mg *g, int b, char *out, size_t outsz)
{
	safe_name(g->m->br[b].name, out, outsz);
}

static void put_line(FILE *o, struct mg *g, struct mg_line *x)
{
	int k = find(x->name);
	char name[64], path[LINT_VAL + 64];
	const char *why;
	bridge_name(g, x->bridge, name, sizeof(name));
	if (k < 0) {
		x->status = MG_DROPPED;
		snprintf(x->note, sizeof(x->note), "bridge %s: no moatd "
			 "equivalent", name);
		return;
	}
	const char *to = bmap[k].to ? bmap[k].to : x->name;
	x->status = MG_BRIDGE;
	switch (bmap[k].kind) {
	case B_SAME:
	case B_TO:
		if (!strcmp(x->name, "connection")) {
			fprintf(o, "\n# bridge from %s\nconnection %s\n",
				x->where, name);
			break;
		}
		fprintf(o, "%s %s\n", to, x->value);
		break;
	case B_PATH:
		lint_resolve(g->m, x->value, path, sizeof(path));
		fprintf(o, "%s %s\n", x->name, path);
		to = x->name;
		break;
	case B_SECRET:
		fprintf(o, "remote_password_file bridge-%s.pw\n", name);
		snprintf(x->note, sizeof(x->note), "bridge %s: the password "
			 "moved to bridge-%s.pw (0600), named by "
			 "remote_password_file",
			 name, name);
		return;
	case B_CHOICE:
		if ((why = choice(x->name, x->value)) != NULL) {
			x->status = MG_DROPPED;
			snprintf(x->note, sizeof(x->note), "bridge %s: %s",
				 name, why);
			return;
		}
		fprintf(o, "%s %s\n", x->name, x->value);
		break;
	case B_DROP:
		x->status = MG_DROPPED;
		snprintf(x->note, sizeof(x->note), "bridge %s: %s", name, to);
		return;
	}
	snprintf(x->note, sizeof(x->note), "bridge %s: as %s", name, to);
}

void mg_put_bridges(FILE *o, struct mg *g)
{
	for (size_t b = 0; b < g->m->nbr; b++)
		for (size_t i = 0; i < g->n; i++)
			if (g->v[i].bridge == (int)b &&
			    g->v[i].status == MG_BRIDGE)
				put_line(o, g, &g->v[i]);
}

int mg_write_bridge_secrets(const struct mg *g, char *err, size_t errsz)
{
	for (size_t i = 0; i < g->n; i++) {
		const struct mg_line *x = &g->v[i];
		char name[64], file[96], line[LINT_VAL + 2];
		if (x->bridge < 0 || x->status != MG_BRIDGE ||
		    (strcmp(x->name, "remote_password") &&
		     strcmp(x->name, "password")))
			continue;
		bridge_name(g, x->bridge, name, sizeof(name));
		snprintf(file, sizeof(file), "bridge-%s.pw", name);
		int n = snprintf(line, sizeof(line), "%s\n", x->value);
		if (mg_write_file(g, file, line, (size_t)n, err, errsz))
			return MOAT_EIO;
	}
	return MOAT_OK;
}

/* The local side of a topic line: LOCAL_PREFIX + PATTERN, and whether the
 * bridge reads (out), writes (in) or both. */
static bool local_filter(const char *value, char *out, size_t outsz,
			 const char **rights)
{
	char w[6][LINT_VAL];
	size_t n = 0;
	for (const char *p = value; *p && n < 6;) {
		p += strspn(p, " \t");
		size_t len = strcspn(p, " \t");
		if (!len)
			break;
		snprintf(w[n], sizeof(w[n]), "%.*s", (int)len, p);
		if (!strcmp(w[n], "\"\""))
			w[n][0] = '\0';
		n++;
		p += len;
	}
	if (!n)
		return false;
	const char *dir = n > 1 ? w[1] : "out";
	*rights = !strcmp(dir, "in")     ? "write"
		  : !strcmp(dir, "both") ? "readwrite"
					 : "read";
	snprintf(out, outsz, "%s%s", n > 3 ? w[3] : "", w[0]);
	return out[0] != '\0';
}

void mg_bridge_acl(FILE *t, const struct mg *g)
{
	for (size_t b = 0; b < g->m->nbr; b++) {
		char user[LINT_VAL];
		bridge_name(g, (int)b, user, sizeof(user));
		for (size_t i = 0; i < g->n; i++)
			if (g->v[i].bridge == (int)b &&
			    !strcmp(g->v[i].name, "local_username"))
				snprintf(user, sizeof(user), "%s",
					 g->v[i].value);
		fprintf(t, "# bridge %s: in moatd a bridge is a user of this "
			   "ACL (docs/bridges.md)\nuser %s\n",
			g->m->br[b].name, user);
		for (size_t i = 0; i < g->n; i++) {
			const struct mg_line *x = &g->v[i];
			char f[LINT_VAL * 2];
			const char *rights;
			if (x->bridge == (int)b && !strcmp(x->name, "topic") &&
			    local_filter(x->value, f, sizeof(f), &rights))
				fprintf(t, "topic %s %s\n", rights, f);
		}
	}
}
