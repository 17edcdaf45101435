/* moat audit: broker version -> known vulnerabilities (AUD-VER-01).
 *
 * The table holds only what THREATS.md section 6.1 supports, with the
 * affected range as stated there (inclusive).  Entries whose details were
 * not read (CVE-2017-7655, CVE-2019-11778) are left out.  A version string
 * says nothing about fixes a distribution backported: the finding says so.
 * docs/audit.md repeats this table; change both. */
#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "audit.h"

struct ver {
	unsigned v[3];
};

struct cve {
	const char *product; /* lower case, as matched in the string */
	struct ver first, last;
	const char *id;
	enum moat_severity sev;
	const char *what;
};

#define V(a, b, c)                                                            \
	{                                                                     \
		{ a, b, c }                                                   \
	}
#define HI MOAT_SEV_HIGH
#define ME MOAT_SEV_MEDIUM

static const struct cve table[] = {
	{"mosquitto", V(0, 0, 0), V(1, 4, 11), "CVE-2017-7650", HI,
	 "ACL bypass with + or # in user name or client id"},
	{"mosquitto", V(0, 0, 0), V(1, 4, 12), "CVE-2017-9868", ME,
	 "persistence file readable by local users"},
	{"mosquitto", V(0, 0, 0), V(1, 4, 14), "CVE-2017-7651", HI,
	 "memory exhaustion from a huge remaining length, before auth"},
	{"mosquitto", V(0, 0, 0), V(1, 4, 14), "CVE-2017-7652", HI,
	 "security settings lost on a failed reload (SIGHUP)"},
	{"mosquitto", V(0, 0, 0), V(1, 4, 15), "CVE-2017-7653", ME,
	 "invalid UTF-8 topics forwarded (subscriber denial of service)"},
	{"mosquitto", V(0, 0, 0), V(1, 4, 15), "CVE-2017-7654", ME,
	 "memory leak on a malicious CONNECT"},
	{"mosquitto", V(1, 5, 0), V(1, 5, 2), "CVE-2018-12543", ME,
	 "assertion failure (exit) on a $ topic other than $SYS"},
	{"mosquitto", V(1, 4, 0), V(1, 5, 3), "mosquitto 1.5.4 fix", HI,
	 "TLS WebSocket listeners did not verify client certificates"},
	{"mosquitto", V(1, 5, 0), V(1, 5, 4), "CVE-2018-20145", HI,
	 "acl_file ignored for the default listener (per_listener_settings)"},
	{"mosquitto", V(0, 0, 0), V(1, 5, 5), "CVE-2018-12546", ME,
	 "retained messages delivered after the publisher lost access"},
	{"mosquitto", V(1, 0, 0), V(1, 5, 5), "CVE-2018-12550", HI,
	 "an empty ACL file allowed everything"},
	{"mosquitto", V(1, 0, 0), V(1, 5, 5), "CVE-2018-12551", HI,
	 "a malformed password-file line became a valid empty user"},
	{"mosquitto", V(1, 5, 0), V(1, 6, 5), "mosquitto 1.6.6 fix", HI,
	 "stack overflow with very deep topic hierarchies"},
	{"mosquitto", V(2, 0, 0), V(2, 0, 9), "CVE-2021-28166", ME,
	 "NULL dereference on a crafted packet from an MQTT 5 client"},
	{"mosquitto", V(0, 0, 0), V(2, 0, 7), "CVE-2021-34432", ME,
	 "crash on a PUBLISH with an empty topic"},
	{"mosquitto", V(0, 0, 0), V(2, 0, 5), "CVE-2023-5632", ME,
	 "100% CPU from connections that send nothing"},
	{"mosquitto", V(2, 0, 0), V(2, 0, 11), "CVE-2021-34434", HI,
	 "subscriptions revoked by a plugin kept by durable clients"},
	{"mosquitto", V(0, 0, 0), V(2, 0, 11), "CVE-2020-13849", ME,
	 "SlowITe: max_keepalive not applied to MQTT 3.x (fixed 2.0.12)"},
	{"mosquitto", V(2, 0, 0), V(2, 0, 14), "mosquitto 2.0.15 fix", ME,
	 "crash when the dynamic-security anonymous group is deleted"},
	{"mosquitto", V(1, 5, 0), V(2, 0, 15), "CVE-2023-0809", ME,
	 "excessive allocation from initial non-CONNECT packets, before "
	 "auth"},
	{"mosquitto", V(1, 6, 0), V(2, 0, 15), "CVE-2023-3592", ME,
	 "memory leak from an MQTT 5 will with invalid properties"},
	{"mosquitto", V(1, 3, 2), V(2, 0, 15), "CVE-2023-28366", ME,
	 "memory leak from repeated QoS 2 packet ids"},
	{"mosquitto", V(0, 0, 0), V(2, 0, 18), "CVE-2024-8376", HI,
	 "use-after-free with mixed $share and normal subscriptions"},
	{"mosquitto", V(0, 0, 0), V(2, 0, 18), "CVE-2024-3935", HI,
	 "double free in bridges with topic remapping"},
	{"mosquitto", V(1, 3, 2), V(2, 0, 18), "CVE-2024-10525", HI,
	 "out-of-bounds access on a SUBACK without reason codes (client "
	 "library, bridges)"},
	{"emqx", V(0, 0, 0), V(4, 2, 7), "CVE-2021-33175", ME,
	 "memory exhaustion from crafted packets"},
	{"emqx", V(5, 0, 12), V(5, 0, 13), "EMQX issue 9693", HI,
	 "authentication bypass when ExHook gRPC is configured"},
	{"vernemq", V(0, 0, 0), V(1, 11, 9999), "CVE-2021-33176", ME,
	 "memory exhaustion from deep topics (topic_max_depth, 1.12.0)"},
	{"nanomq", V(0, 0, 0), V(0, 24, 1), "CVE-2025-59946", HI,
	 "use-after-free race on the subscription list (secondary report)"},
	{"nanomq", V(0, 0, 0), V(0, 24, 6), "CVE-2026-21888", HI,
	 "5-byte variable-length integer accepted: out-of-bounds read "
	 "(secondary report)"},
	{"mosca", V(0, 0, 0), V(2, 8, 1), "CVE-2018-11615", HI,
	 "crash from a crafted topic (regular-expression denial of service)"},
};

size_t audit_cve_count(void)
{
	return MOAT_ARRAY_LEN(table);
}

static int ver_cmp(const struct ver *a, const struct ver *b)
{
	for (int i = 0; i < 3; i++)
		if (a->v[i] != b->v[i])
			return a->v[i] < b->v[i] ? -1 : 1;
	return 0;
}

/* The first "N.N[.N]" in s (leading 'v' allowed). */
static bool parse_version(const char *s, struct ver *out)
{
	for (; *s; s++) {
		if (!isdigit((unsigned char)*s))
			continue;
		memset(out, 0, sizeof(*out));
		int i = 0;
		const char *p = s;
		while (i < 3 && isdigit((unsigned char)*p)) {
			unsigned long n = 0;
			while (isdigit((unsigned char)*p) && n < 100000)
				n = n * 10 + (unsigned long)(*p++ - '0');
			out->v[i++] = (unsigned)n;
			if (*p != '.' || !isdigit((unsigned char)p[1]))
				break;
			p++;
		}
		if (i >= 2)
			return true;
		s = p;
		if (!*s)
			break;
	}
	return false;
}

/* The product named in the string, or (EMQX publishes a bare version on
 * $SYS/brokers/NODE/version) in the topic it came from. */
static const char *product_of(const char *version, const char *src)
{
	static const char *const names[] = {"mosquitto", "emqx", "vernemq",
					    "nanomq", "mosca"};
	char low[200];
	size_t n = 0;
	for (; version[n] && n + 1 < sizeof(low); n++)
		low[n] = (char)tolower((unsigned char)version[n]);
	low[n] = '\0';
	for (size_t i = 0; i < MOAT_ARRAY_LEN(names); i++)
		if (strstr(low, names[i]))
			return names[i];
	if (!strncmp(src, "$SYS/brokers/", 13))
		return "emqx";
	return NULL;
}

bool audit_cve_check(const char *version, const char *src,
		     struct moat_findings *f)
{
	struct ver v;
	const char *prod = product_of(version, src);
	if (!prod || !parse_version(version, &v))
		return false;
	char ids[400] = "";
	size_t n = 0, o = 0;
	enum moat_severity worst = MOAT_SEV_MEDIUM;
	const char *first = NULL;
	for (size_t i = 0; i < MOAT_ARRAY_LEN(table); i++) {
		const struct cve *e = &table[i];
		if (strcmp(e->product, prod) || ver_cmp(&v, &e->first) < 0 ||
		    ver_cmp(&v, &e->last) > 0)
			continue;
		if (!first || e->sev > worst)
			first = e->what;
		worst = MOAT_MAX(worst, e->sev);
		if (o + 32 < sizeof(ids))
			o += (size_t)snprintf(ids + o, sizeof(ids) - o, "%s%s",
					      n ? ", " : "", e->id);
		n++;
	}
	if (!n)
		return true;
	moat_findings_add_sev(f, "AUD-VER-01", worst,
			      "%s %u.%u.%u (\"%s\", from %s) is in the range "
			      "of %zu known issue%s: %s (e.g. %s). A "
			      "distribution package may carry backported "
			      "fixes the version string does not show",
			      prod, v.v[0], v.v[1], v.v[2], version, src, n,
			      n == 1 ? "" : "s", ids, first);
	return true;
}
