/* Extractors for network identifiers: private IPv4 (L1) and IPv6 (L2)
 * addresses, MAC addresses (L3), e-mail addresses (L4), credentials in
 * URLs (L10), internal host names and paths (L20). */
#include <arpa/inet.h>
#include <string.h>

#include "leak/leak_int.h"

/* Words that, just before a dotted quad, make it a version number. */
static const char *const ctx_version[] = {
	"version", "ver", "firmware", "fw", "sw", "release", "build", "rev",
	"revision", "oid", "snmp", "os", "v", NULL};
static const char *const ctx_ip[] = {
	"ip", "ipv4", "addr", "address", "host", "gw", "gateway", "dns",
	"server", "broker", "router", "subnet", "lan", "peer", "client",
	"src", "dst", "nexthop", "inet", "from", "to", NULL};

static bool dotquad(const uint8_t *p, size_t n, uint8_t out[4])
{
	unsigned part = 0, digits = 0, v = 0;
	for (size_t i = 0; i <= n; i++) {
		if (i == n || p[i] == '.') {
			if (digits == 0 || part > 3 || v > 255)
				return false;
			out[part++] = (uint8_t)v;
			digits = 0;
			v = 0;
			continue;
		}
		if (!lk_digit(p[i]) || digits == 3)
			return false;
		if (digits == 1 && v == 0)
			return false; /* leading zero: octal in some parsers */
		v = v * 10 + (unsigned)(p[i] - '0');
		digits++;
	}
	return part == 4;
}

/* 0: public or special; 1: private/CGNAT/link-local; 2: loopback. */
static int v4_class(const uint8_t a[4])
{
	if (a[0] == 10 || (a[0] == 172 && (a[1] & 0xf0) == 16) ||
	    (a[0] == 192 && a[1] == 168) ||
	    (a[0] == 100 && (a[1] & 0xc0) == 64) ||
	    (a[0] == 169 && a[1] == 254))
		return 1;
	if (a[0] == 127)
		return 2;
	return 0;
}

void moat__leak_x_ipv4(struct lk_scan *sc, unsigned rule, size_t end)
{
	const uint8_t *d = sc->d;
	if (end <= sc->tok_end[rule])
		return;
	size_t s = end, e = end;
	while (s > 0 && (lk_digit(d[s - 1]) || d[s - 1] == '.'))
		s--;
	while (e < sc->n && (lk_digit(d[e]) || d[e] == '.'))
		e++;
	sc->tok_end[rule] = e;
	/* a sentence may end right after the address */
	if (e > s && d[e - 1] == '.')
		e--;
	uint8_t a[4];
	if (!dotquad(d + s, e - s, a))
		return; /* 1.10.0.0.1, OIDs, 10.0.0.256 */
	if (s > 0 && (lk_alnum(d[s - 1]) || d[s - 1] == '_'))
		return; /* v10.0.0.1, build10.0.0.1 */
	size_t t = e; /* past an optional /prefix */
	if (t + 1 < sc->n && d[t] == '/' && lk_digit(d[t + 1])) {
		t++;
		while (t < sc->n && lk_digit(d[t]))
			t++;
	}
	if (t < sc->n && (lk_alpha(d[t]) || d[t] == '_'))
		return;
	if (t + 1 < sc->n && d[t] == '-' && lk_alpha(d[t + 1]))
		return; /* 10.0.0.1-beta */
	int cls = v4_class(a);
	if (cls == 0 || moat__leak_ctx_before(sc, s, 24, ctx_version))
		return;
	bool ctx = moat__leak_ctx_before(sc, s, 32, ctx_ip);
	struct lk_cand *c = moat__leak_add(
		sc, MOAT_LEAK_PRIVATE_IPV4, s, e,
		cls == 2 ? MOAT_LEAK_SEV_LOW : MOAT_LEAK_SEV_MEDIUM,
		ctx ? 95 : 85, ctx ? MOAT_LEAK_F_CONTEXT : 0);
	if (c)
		moat__leak_prev_fmt(c, "%u.*.*.*", a[0]);
}

static bool v6_char(uint8_t c)
{
	return lk_hex(c) || c == ':' || c == '.';
}

static int v6_class(const uint8_t b[16])
{
	if ((b[0] & 0xfe) == 0xfc)
		return 1; /* ULA fc00::/7 */
	if (b[0] == 0xfe && (b[1] & 0xc0) == 0x80)
		return 1; /* link-local fe80::/10 */
	if (b[0] == 0xfe && (b[1] & 0xc0) == 0xc0)
		return 1; /* site-local fec0::/10 (deprecated) */
	static const uint8_t zero[10];
	if (!memcmp(b, zero, 10) && b[10] == 0xff && b[11] == 0xff)
		return v4_class(b + 12) ? 1 : 0; /* ::ffff:a.b.c.d */
	static const uint8_t lo[16] = {[15] = 1};
	if (!memcmp(b, lo, 16))
		return 2;
	return 0;
}

void moat__leak_x_ipv6(struct lk_scan *sc, unsigned rule, size_t end)
{
	const uint8_t *d = sc->d;
	if (end <= sc->tok_end[rule])
		return;
	size_t s = end, e = end;
	while (s > 0 && v6_char(d[s - 1]))
		s--;
	while (e < sc->n && v6_char(d[e]))
		e++;
	sc->tok_end[rule] = e;
	if (s > 0 && (lk_alnum(d[s - 1]) || d[s - 1] == '_'))
		return;
	if (e > s && (d[e - 1] == '.' || (d[e - 1] == ':' && e - s > 2 &&
					   d[e - 2] != ':')))
		e--;
	const uint8_t *dot = memchr(d + s, '.', e - s);
	if (dot) { /* ::ffff:10.0.0.1:51234: the port is not the address */
		size_t q = (size_t)(dot - d) + 1;
		while (q < e && (lk_digit(d[q]) || d[q] == '.'))
			q++;
		if (q < e && d[q] == ':')
			e = q;
	}
	if (e - s < 3 || e - s > 45)
		return;
	if (e < sc->n && (lk_alpha(d[e]) || d[e] == '_'))
		return;
	char buf[48];
	memcpy(buf, d + s, e - s);
	buf[e - s] = '\0';
	uint8_t b[16];
	if (inet_pton(AF_INET6, buf, b) != 1)
		return;
	int cls = v6_class(b);
	if (!cls)
		return;
	size_t fe = e; /* a zone id (%eth0) belongs to the address */
	if (fe < sc->n && d[fe] == '%') {
		size_t z = fe + 1;
		while (z < sc->n && z - fe < 16 &&
		       (lk_alnum(d[z]) || d[z] == '_' || d[z] == '.'))
			z++;
		if (z > fe + 1)
			fe = z;
	}
	struct lk_cand *c = moat__leak_add(
		sc, MOAT_LEAK_PRIVATE_IPV6, s, fe,
		cls == 2 ? MOAT_LEAK_SEV_LOW : MOAT_LEAK_SEV_MEDIUM, 90, 0);
	if (!c)
		return;
	if (cls == 2)
		moat__leak_prev_set(c, "::1");
	else if (b[10] == 0xff && b[0] == 0)
		moat__leak_prev_fmt(c, "::ffff:%u.*.*.*", b[12]);
	else
		moat__leak_prev_fmt(c, "%02x%02x:*", b[0], b[1]);
}

/* ---- MAC addresses ------------------------------------------------------- */

static const char *const ctx_mac[] = {"mac", "bssid", "hw", "hwaddr",
				      "ether", "wifi", "wlan", "ble", "bt",
				      "eth", NULL};

/* xx:xx:xx:xx:xx:xx, xx-xx-..., or xxxx.xxxx.xxxx ending at end. */
static bool mac_shape(const uint8_t *d, size_t s, size_t len, uint8_t *sep)
{
	if (len == 17) {
		*sep = d[s + 2];
		if (*sep != ':' && *sep != '-')
			return false;
		for (size_t i = 0; i < 17; i++)
			if (i % 3 == 2 ? d[s + i] != *sep : !lk_hex(d[s + i]))
				return false;
		return true;
	}
	*sep = '.';
	for (size_t i = 0; i < 14; i++)
		if (i % 5 == 4 ? d[s + i] != '.' : !lk_hex(d[s + i]))
			return false;
	return true;
}

void moat__leak_x_mac(struct lk_scan *sc, unsigned rule, size_t end)
{
	const uint8_t *d = sc->d;
	uint8_t sep;
	size_t len = 17;
	if (end < 17 || !mac_shape(d, end - 17, 17, &sep)) {
		len = 14;
		if (end < 14 || !mac_shape(d, end - 14, 14, &sep))
			return;
	}
	size_t s = end - len;
	if (s < sc->tok_end[rule])
		return;
	sc->tok_end[rule] = end;
	if (s > 0 && (lk_alnum(d[s - 1]) || d[s - 1] == sep || d[s - 1] == '_'))
		return;
	if (end < sc->n && (lk_alnum(d[end]) || d[end] == '_'))
		return;
	if (end + 1 < sc->n && d[end] == sep && lk_hex(d[end + 1]))
		return; /* a longer run of groups */
	unsigned zeros = 0, effs = 0, dec = 0, nib = 0;
	uint8_t oct[6];
	for (size_t i = s; i < end; i++) {
		uint8_t c = d[i];
		if (c == sep)
			continue;
		zeros += c == '0';
		effs += c == 'f' || c == 'F';
		dec += lk_digit(c);
		if (nib % 2 == 0)
			oct[nib / 2] = (uint8_t)(lk_hexval(c) << 4);
		else
			oct[nib / 2] |= (uint8_t)lk_hexval(c);
		nib++;
	}
	if (zeros == 12 || effs == 12)
		return;
	if (sep == '-' && dec == 12)
		return; /* 12-34-56-78-90-12 is more likely a serial number */
	bool ctx = moat__leak_ctx_before(sc, s, 32, ctx_mac);
	struct lk_cand *c = moat__leak_add(sc, MOAT_LEAK_MAC_ADDRESS, s, end,
					   MOAT_LEAK_SEV_LOW, ctx ? 95 : 80,
					   ctx ? MOAT_LEAK_F_CONTEXT : 0);
	if (c)
		moat__leak_prev_fmt(c, "%02x:%02x:%02x:*:*:*", oct[0], oct[1],
				    oct[2]);
}

/* ---- e-mail ----------------------------------------------------------------- */

static bool local_char(uint8_t c)
{
	return lk_alnum(c) || c == '.' || c == '_' || c == '%' || c == '+' ||
	       c == '-';
}

/* The '@' at `at` belongs to the userinfo of a URL (scheme://u@host). */
static bool in_url_userinfo(const struct lk_scan *sc, size_t at)
{
	const uint8_t *d = sc->d;
	size_t lo = at > 512 ? at - 512 : 0;
	for (size_t i = at; i > lo + 2; i--) {
		uint8_t c = d[i - 1];
		if (lk_space(c) || c == '"' || c == '\'' || c == '<' ||
		    c == '/' || c == '?' || c == '#')
			return c == '/' && d[i - 2] == '/' && d[i - 3] == ':';
	}
	return false;
}

/* Domain after '@': labels, the last one a real TLD.  Returns its end or
 * 0. */
static size_t email_domain(const struct lk_scan *sc, size_t from)
{
	const uint8_t *d = sc->d;
	size_t i = from, last = from, labels = 0, end = 0;
	for (;;) {
		size_t ls = i;
		while (i < sc->n && (lk_alnum(d[i]) || d[i] == '-') &&
		       i - ls < 64)
			i++;
		if (i == ls || d[ls] == '-' || d[i - 1] == '-' || i - ls > 63)
			break;
		labels++;
		last = ls;
		end = i;
		if (i + 1 < sc->n && d[i] == '.' && lk_alnum(d[i + 1]))
			i++;
		else
			break;
	}
	if (labels < 2 || end - from > 253)
		return 0;
	if (end < sc->n && (lk_alnum(d[end]) || d[end] == '_' || d[end] == '@'))
		return 0;
	if (!moat__leak_tld(d + last, end - last))
		return 0;
	return end;
}

void moat__leak_x_email(struct lk_scan *sc, unsigned rule, size_t end)
{
	const uint8_t *d = sc->d;
	size_t at = end - 2;
	if (at < sc->tok_end[rule])
		return;
	size_t ls = at;
	while (ls > 0 && local_char(d[ls - 1]) && at - ls < 64)
		ls--;
	sc->tok_end[rule] = at + 1;
	if (ls > 0 && local_char(d[ls - 1]))
		return; /* local part longer than 64 */
	while (ls < at && !lk_alnum(d[ls]))
		ls++; /* ".john" or "-john": the local part starts later */
	if (ls == at || d[at - 1] == '.')
		return;
	bool digits = true;
	for (size_t i = ls; i < at; i++) {
		if (d[i] == '.' && d[i + 1] == '.')
			return;
		digits &= lk_digit(d[i]) != 0;
	}
	if (digits || in_url_userinfo(sc, ls))
		return;
	size_t de = email_domain(sc, at + 1);
	if (!de)
		return;
	sc->tok_end[rule] = de;
	struct lk_cand *c = moat__leak_add(sc, MOAT_LEAK_EMAIL, ls, de,
					   MOAT_LEAK_SEV_MEDIUM, 95, 0);
	if (!c)
		return;
	int dl = (int)MOAT_MIN(de - at - 1, (size_t)36);
	moat__leak_prev_fmt(c, "%c***@%.*s", d[ls], dl,
			    (const char *)d + at + 1);
}

/* ---- URL credentials ----------------------------------------------------- */

static bool url_stop(uint8_t c)
{
	return lk_space(c) || c == '/' || c == '?' || c == '#' || c == '"' ||
	       c == '\'' || c == '<' || c == '>' || c == '\\' || c == '`' ||
	       c < 0x20;
}

void moat__leak_x_url(struct lk_scan *sc, unsigned rule, size_t end)
{
	const uint8_t *d = sc->d;
	size_t ss = end - 3;
	while (ss > 0 && end - 3 - ss < 24 &&
	       (lk_alnum(d[ss - 1]) || d[ss - 1] == '+' || d[ss - 1] == '.' ||
		d[ss - 1] == '-'))
		ss--;
	while (ss < end - 3 && !lk_alpha(d[ss]))
		ss++;
	if (end - 3 - ss < 2 || end - 3 - ss > 20)
		return;
	size_t at = 0, colon = 0;
	for (size_t i = end; i < sc->n && i - end < 512; i++) {
		if (d[i] == '@') {
			at = i;
			break;
		}
		if (url_stop(d[i]))
			return;
		if (d[i] == ':' && !colon)
			colon = i;
	}
	sc->tok_end[rule] = at;
	if (!at || !colon || colon + 1 >= at)
		return;
	if (moat__leak_placeholder(d + colon + 1, at - colon - 1))
		return;
	size_t he = at + 1; /* the host must be there */
	while (he < sc->n && (lk_alnum(d[he]) || d[he] == '.' || d[he] == '-' ||
			      d[he] == '[' || d[he] == ']' || d[he] == ':' ||
			      d[he] == '_'))
		he++;
	if (he == at + 1 || (!lk_alnum(d[at + 1]) && d[at + 1] != '['))
		return;
	uint32_t fl = moat__leak_weak_password(d + colon + 1, at - colon - 1)
			      ? MOAT_LEAK_F_WEAK_PASSWORD
			      : 0;
	struct lk_cand *c = moat__leak_add(sc, MOAT_LEAK_URL_CREDENTIALS,
					   colon + 1, at, MOAT_LEAK_SEV_HIGH,
					   95, fl);
	if (!c)
		return;
	int sl = (int)(end - 3 - ss);
	if (colon > end)
		moat__leak_prev_fmt(c, "%.*s://%c***:****@***", sl,
				    (const char *)d + ss, d[end]);
	else
		moat__leak_prev_fmt(c, "%.*s://:****@***", sl,
				    (const char *)d + ss);
}

/* ---- internal names and paths (L20) ------------------------------------ */

static const char *const code_receivers[] = {
	"self", "this", "window", "document", "obj", "config", "settings",
	"process", "os", "sys", "app", "module", "exports", "cls", "ctx",
	"super", "env", NULL};

static bool eq_word_ci(const uint8_t *p, size_t n, const char *const *list)
{
	for (const char *const *w = list; *w; w++) {
		size_t wn = strlen(*w);
		if (wn != n)
			continue;
		size_t i = 0;
		while (i < n && lk_tolower(p[i]) == (uint8_t)(*w)[i])
			i++;
		if (i == n)
			return true;
	}
	return false;
}

void moat__leak_x_host(struct lk_scan *sc, unsigned rule, size_t end)
{
	const uint8_t *d = sc->d;
	if (end <= sc->tok_end[rule])
		return;
	sc->tok_end[rule] = end;
	if (end < sc->n && (lk_alnum(d[end]) || d[end] == '_' || d[end] == '-'))
		return; /* .localhost, .lanes, .corporate */
	if (end + 1 < sc->n && d[end] == '.' && lk_alnum(d[end + 1]))
		return; /* not the last label: x.local.example.com, a.local.yml */
	size_t s = end; /* labels; mDNS service names have '_' */
	while (s > 0 && (lk_alnum(d[s - 1]) || d[s - 1] == '.' ||
			 d[s - 1] == '-' || d[s - 1] == '_'))
		s--;
	while (s < end && !lk_alnum(d[s]))
		s++;
	size_t first = s; /* first label */
	while (first < end && d[first] != '.')
		first++;
	if (first == end || first == s)
		return;
	if (s > 0 && d[s - 1] == '$')
		return;
	if (eq_word_ci(d + s, first - s, code_receivers) ||
	    (first - s == 9 && !memcmp(d + s, "localhost", 9)))
		return;
	struct lk_cand *c = moat__leak_add(sc, MOAT_LEAK_INTERNAL_HOSTNAME, s,
					   end, MOAT_LEAK_SEV_LOW, 85, 0);
	if (!c)
		return;
	size_t suf = end;
	while (suf > s && d[suf - 1] != '.')
		suf--;
	if (suf >= 5 && !memcmp(d + suf - 5, ".home", 5))
		suf -= 4; /* home.arpa */
	moat__leak_prev_fmt(c, "%c***.%.*s", d[s], (int)(end - suf),
			    (const char *)d + suf);
}

/* \\server\share (or JSON-escaped \\\\server\\share). */
void moat__leak_x_unc(struct lk_scan *sc, unsigned rule, size_t end)
{
	const uint8_t *d = sc->d;
	size_t hs = end - 1; /* d[end - 1] is the backslash after the host */
	while (hs > 0 && d[hs - 1] != '\\')
		hs--;
	size_t s = hs;
	while (s > 0 && d[s - 1] == '\\' && hs - s < 4)
		s--;
	if (hs - s != 2 && hs - s != 4)
		return;
	if (s < sc->tok_end[rule])
		return;
	if (s > 0 && (lk_alnum(d[s - 1]) || d[s - 1] == '\\'))
		return;
	size_t sh = end;
	if (hs - s == 4 && sh < sc->n && d[sh] == '\\')
		sh++;
	size_t se = sh;
	while (se < sc->n && se - sh < 80 &&
	       (lk_alnum(d[se]) || d[se] == '_' || d[se] == '.' ||
		d[se] == '$' || d[se] == '-'))
		se++;
	sc->tok_end[rule] = se;
	if (se == sh || end - 1 - hs < 1)
		return;
	struct lk_cand *c = moat__leak_add(sc, MOAT_LEAK_INTERNAL_HOSTNAME, s,
					   se, MOAT_LEAK_SEV_LOW, 85, 0);
	if (c)
		moat__leak_prev_fmt(c, "\\\\%c***\\...", d[hs]);
}

/* C:\Users\<name> */
void moat__leak_x_winuser(struct lk_scan *sc, unsigned rule, size_t end)
{
	static const char *const generic[] = {"public", "default", "all",
					      "administrator", NULL};
	const uint8_t *d = sc->d;
	size_t us = end - 1, ue = us;
	while (ue < sc->n && ue - us < 64 &&
	       (lk_alnum(d[ue]) || d[ue] == '.' || d[ue] == '_' || d[ue] == '-'))
		ue++;
	size_t s = us;
	while (s > 0 && us - s < 16 && d[s - 1] != ':')
		s--;
	if (s < 2)
		return;
	s -= 2; /* the drive letter and its colon */
	if (s < sc->tok_end[rule] || (s > 0 && lk_alnum(d[s - 1])))
		return;
	sc->tok_end[rule] = ue;
	if (eq_word_ci(d + us, ue - us, generic))
		return;
	struct lk_cand *c = moat__leak_add(sc, MOAT_LEAK_INTERNAL_HOSTNAME, s,
					   ue, MOAT_LEAK_SEV_LOW, 85, 0);
	if (c)
		moat__leak_prev_fmt(c, "%c:\\Users\\***", d[s]);
}

/* A Wi-Fi QR code: WIFI:S:<ssid>;T:<WPA|WEP|nopass>;P:<password>;; */
void moat__leak_x_wifi_qr(struct lk_scan *sc, unsigned rule, size_t end)
{
	const uint8_t *d = sc->d;
	if (end <= sc->tok_end[rule])
		return;
	size_t i = end - 2, ps = 0, pe = 0; /* the first field's letter */
	bool ssid = false;
	while (i + 1 < sc->n && i < end + 512 && d[i] != ';') {
		uint8_t f = d[i];
		if (d[i + 1] != ':')
			return;
		size_t v = i + 2, e = v;
		while (e < sc->n && e - v < 256 && d[e] != ';') {
			if (d[e] == '\\' && e + 1 < sc->n)
				e++; /* escaped ; , : \ */
			e++;
		}
		if (e >= sc->n)
			return;
		if (f == 'S' && e > v)
			ssid = true;
		if (f == 'P') {
			ps = v;
			pe = e;
		}
		i = e + 1;
	}
	sc->tok_end[rule] = i;
	if (!ssid || pe <= ps || moat__leak_placeholder(d + ps, pe - ps))
		return;
	struct lk_cand *c = moat__leak_add(sc, MOAT_LEAK_WIFI_CREDENTIALS, ps,
					   pe, MOAT_LEAK_SEV_HIGH, 95,
					   MOAT_LEAK_F_CONTEXT);
	if (c)
		moat__leak_prev_fmt(c, "WIFI:S:***;P:**** (%zu chars)", pe - ps);
}
