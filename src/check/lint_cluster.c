/* Cluster mode (docs/cluster.md): how a moatd node talks to NATS.  The
 * NATS connection carries every message that crosses nodes, and whoever
 * can publish on it reaches every node's subscribers past their ACLs, so
 * it needs TLS and credentials like a network listener (AUD-CL-*). */
#include <string.h>

#include "check/lint_int.h"
#include "common/moat_common.h"

/* One server of cluster_nats_url: "[scheme://][userinfo@]host[:port]". */
struct nats_url {
	char text[LINT_VAL]; /* as written, with any password masked */
	char host[LINT_VAL];
	bool tls;      /* tls:// */
	bool userinfo; /* user:password@ or token@ in the URL */
};

static void parse_url(const char *s, size_t n, struct nats_url *u)
{
	const char *end = s + n, *p = s, *at, *hs, *he;
	size_t k;

	memset(u, 0, sizeof(*u));
	const char *sep = NULL;
	for (const char *q = s; q + 3 <= end; q++)
		if (!memcmp(q, "://", 3)) {
			sep = q;
			break;
		}
	if (sep) {
		k = (size_t)(sep - s);
		u->tls = k == 3 && !memcmp(s, "tls", 3);
		p = sep + 3;
	}
	at = NULL;
	for (const char *q = p; q < end && *q != '/'; q++)
		if (*q == '@')
			at = q;
	u->userinfo = at != NULL;
	hs = at ? at + 1 : p;
	if (hs < end && *hs == '[') { /* [v6]:port */
		he = memchr(hs, ']', (size_t)(end - hs));
		hs++;
		if (!he)
			he = end;
	} else {
		he = hs;
		while (he < end && *he != ':' && *he != '/')
			he++;
	}
	snprintf(u->host, sizeof(u->host), "%.*s", (int)(he - hs), hs);
	if (at)
		snprintf(u->text, sizeof(u->text), "%.*s***@%.*s",
			 (int)(p - s), s, (int)(end - at - 1), at + 1);
	else
		snprintf(u->text, sizeof(u->text), "%.*s", (int)n, s);
}

/* Every server of the comma-separated list, in turn. */
static size_t next_url(const char *list, size_t *pos, struct nats_url *u)
{
	while (list[*pos] == ',' || list[*pos] == ' ' || list[*pos] == '\t')
		(*pos)++;
	size_t start = *pos;
	while (list[*pos] && list[*pos] != ',')
		(*pos)++;
	size_t n = *pos - start;
	while (n && (list[start + n - 1] == ' ' || list[start + n - 1] == '\t'))
		n--;
	if (n)
		parse_url(list + start, n, u);
	return n;
}

static const char *where_of(const struct lint_str *s)
{
	return s->where[0] ? s->where : "default";
}

void lint_cluster_rules(struct lint_model *m, struct moat_findings *f)
{
	const struct lint_cluster *c = &m->cluster;
	struct nats_url u;
	size_t pos = 0, plain_net = 0, plain_lo = 0, servers = 0;
	bool network = false, userinfo = false;
	char first_plain[LINT_VAL] = "";

	if (!c->url.v[0])
		return; /* cluster mode off */
	while (next_url(c->url.v, &pos, &u)) {
		bool lo = lint_addr_is_loopback(u.host);
		servers++;
		network |= !lo;
		if (u.userinfo)
			userinfo = true;
		if (!u.tls && !c->cafile.v[0]) {
			if (!first_plain[0] || (!lo && !plain_net))
				snprintf(first_plain, sizeof(first_plain),
					 "%s", u.text);
			lo ? plain_lo++ : plain_net++;
		}
	}
	if (!servers)
		return; /* moatd refuses an empty list (AUD-CFG-03) */
	if (plain_net || plain_lo)
		moat_findings_add_sev(
			f, "AUD-CL-01", plain_net ? MOAT_SEV_HIGH : MOAT_SEV_LOW,
			"cluster_nats_url (%s): %zu of %zu NATS server%s "
			"without TLS (e.g. %s)%s; no cluster_nats_cafile",
			where_of(&c->url), plain_net + plain_lo, servers,
			servers == 1 ? "" : "s", first_plain,
			plain_net ? "" : ", on loopback only");
	bool creds = c->creds.v[0] || c->certfile.v[0] ||
		     (c->user.v[0] && c->password_file.v[0]) || userinfo;
	if (!creds)
		moat_findings_add_sev(
			f, "AUD-CL-02", network ? MOAT_SEV_HIGH : MOAT_SEV_MEDIUM,
			"cluster_nats_url (%s): the node presents no NATS "
			"credentials (no cluster_nats_creds, "
			"cluster_nats_user with cluster_nats_password_file, or "
			"cluster_nats_certfile), so its NATS servers accept "
			"clients without any%s",
			where_of(&c->url),
			network ? "" : " (loopback servers: local users)");
	if (userinfo) {
		moat_findings_add(f, "AUD-CL-03",
				  "cluster_nats_url (%s) holds NATS "
				  "credentials (user:password@ or token@)",
				  where_of(&c->url));
		if (!m->secret_in_config[0])
			snprintf(m->secret_in_config,
				 sizeof(m->secret_in_config), "%s",
				 c->url.where);
	}
}
