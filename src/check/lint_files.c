/* The files a configuration names: permissions and links (secrets and
 * policy), existence (certificates, CAs), the ACL's broad grants, the
 * password file's hash formats and the server certificate.  Only reads. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "auth/acl.h"
#include "auth/passwd.h"
#include "check/lint_int.h"
#include "common/moat_common.h"

#define MAX_SEEN 256

struct files {
	struct lint_model *m;
	struct moat_findings *f;
	const char *seen[MAX_SEEN]; /* paths already checked */
	size_t nseen;
	struct lint_str db; /* the persistence file's path */
};

/* First visit of path?  (A file named by several listeners is checked
 * once.) */
static bool first_visit(struct files *x, const char *path)
{
	for (size_t i = 0; i < x->nseen; i++)
		if (!strcmp(x->seen[i], path))
			return false;
	if (x->nseen < MAX_SEEN)
		x->seen[x->nseen++] = path;
	return true;
}

static const char *where_or_default(const char *w)
{
	return w && w[0] ? w : "default";
}

/* A link in a moatd configuration is refused at start; mosquitto follows
 * it, so there the question is who can read the target. */
static void check_link(struct files *x, const char *what,
		       const struct lint_str *s)
{
	struct stat st;
	const char *w = where_or_default(s->where);
	if (x->m->dialect == MOAT_LINT_MOATD) {
		moat_findings_add(x->f, "AUD-CFG-04",
				  "%s %s is a symbolic link; moatd refuses it "
				  "(%s)",
				  what, s->v, w);
	} else if (stat(s->v, &st) == 0 &&
		   (st.st_mode & (S_IROTH | S_IWOTH))) {
		moat_findings_add(x->f, "AUD-CFG-04",
				  "%s %s is a symbolic link to a file other "
				  "users can read or write (mode %04o) (%s)",
				  what, s->v, (unsigned)(st.st_mode & 07777),
				  w);
	} else {
		moat_findings_add_sev(x->f, "AUD-CFG-04", MOAT_SEV_LOW,
				      "%s %s is a symbolic link: whoever can "
				      "change the link can point the broker "
				      "elsewhere (%s)",
				      what, s->v, w);
	}
}

/* A file holding secrets or policy: present, a regular file, not a
 * link, closed to other users.  False when s is unset or was checked
 * already. */
static bool check_private(struct files *x, const char *what,
			  const struct lint_str *s)
{
	struct stat st;
	const char *w = where_or_default(s->where);
	if (!s->v[0] || !first_visit(x, s->v))
		return false;
	if (lstat(s->v, &st) != 0) {
		moat_findings_add(x->f, "AUD-CFG-03",
				  "%s %s: %s; the broker will not start (%s)",
				  what, s->v, strerror(errno), w);
		return true;
	}
	unsigned mode = (unsigned)(st.st_mode & 07777);
	if (S_ISLNK(st.st_mode))
		check_link(x, what, s);
	else if (!S_ISREG(st.st_mode))
		moat_findings_add(x->f, "AUD-CFG-03",
				  "%s %s is not a regular file (%s)", what,
				  s->v, w);
	else if (st.st_mode & S_IWOTH)
		moat_findings_add(x->f, "AUD-CFG-04",
				  "%s %s is writable by other users (mode "
				  "%04o) (%s)",
				  what, s->v, mode, w);
	else if (st.st_mode & S_IROTH)
		moat_findings_add(x->f, "AUD-CFG-04",
				  "%s %s is readable by other users (mode "
				  "%04o) (%s)",
				  what, s->v, mode, w);
	else if (st.st_mode & S_IWGRP)
		moat_findings_add(x->f, "AUD-CFG-04",
				  "%s %s is writable by its group (mode "
				  "%04o) (%s)",
				  what, s->v, mode, w);
	/* Only regular files (or links, judged by check_link) are read. */
	return S_ISREG(st.st_mode) || S_ISLNK(st.st_mode);
}

/* A public file (certificate, CA, CRL) or directory (capath) must
 * exist.  False when s is unset or was checked already. */
static bool check_exists(struct files *x, const char *what,
			 const struct lint_str *s, bool dir)
{
	struct stat st;
	if (!s->v[0] || !first_visit(x, s->v))
		return false;
	const char *w = where_or_default(s->where);
	if (stat(s->v, &st) != 0)
		moat_findings_add(x->f, "AUD-CFG-03",
				  "%s %s: %s; the broker will not start (%s)",
				  what, s->v, strerror(errno), w);
	else if (dir ? !S_ISDIR(st.st_mode) : !S_ISREG(st.st_mode))
		moat_findings_add(x->f, "AUD-CFG-03", "%s %s is not a %s (%s)",
				  what, s->v, dir ? "directory" : "file", w);
	else if (st.st_mode & S_IWOTH)
		moat_findings_add(x->f, "AUD-CFG-04",
				  "%s %s is writable by other users (mode "
				  "%04o) (%s)",
				  what, s->v, (unsigned)(st.st_mode & 07777),
				  w);
	return true;
}

/* ---- ACL ----------------------------------------------------------------- */

struct acl_scan {
	struct files *x;
	struct lint_acl_info *info;
	const char *name; /* base name of the ACL file */
	bool in_user;     /* after a "user" line */
};

/* Does filter match every topic (#, +/#, +/+/#...)? */
static bool matches_everything(const char *t)
{
	while (t[0] == '+' && t[1] == '/')
		t += 2;
	return !strcmp(t, "#");
}

static void note_grant(char *slot, const char *name, size_t lineno)
{
	if (!slot[0])
		lint_where(slot, LINT_WHERE, name, lineno);
}

/* "topic|pattern [read|write|readwrite|deny] TOPIC" */
static void acl_rule(struct acl_scan *s, bool pattern, char *rest,
		     size_t lineno)
{
	static const char *const access[] = {"read", "write", "readwrite",
					     "deny"};
	const char *mode = "readwrite";
	size_t n = strcspn(rest, " \t");
	for (size_t i = 0; i < MOAT_ARRAY_LEN(access); i++)
		if (n == strlen(access[i]) && !strncmp(rest, access[i], n)) {
			mode = access[i];
			rest += n;
			rest += strspn(rest, " \t");
			break;
		}
	s->info->rules++;
	if (strcmp(mode, "read") && strcmp(mode, "readwrite"))
		return;
	if (pattern || !s->in_user) {
		struct lint_acl_info *i = s->info;
		if (matches_everything(rest))
			note_grant(pattern ? i->wild_pattern : i->wild_anon,
				   s->name, lineno);
		if (!strncmp(rest, "$SYS", 4))
			note_grant(pattern ? i->sys_pattern : i->sys_anon,
				   s->name, lineno);
	}
}

static bool acl_line(void *arg, char *line, size_t lineno)
{
	struct acl_scan *s = arg;
	line += strspn(line, " \t");
	if (!*line || *line == '#')
		return true;
	char *rest = line + strcspn(line, " \t");
	if (*rest)
		*rest++ = '\0';
	rest += strspn(rest, " \t");
	size_t n = strlen(rest);
	while (n && (rest[n - 1] == ' ' || rest[n - 1] == '\t'))
		rest[--n] = '\0';
	if (!strcmp(line, "user"))
		s->in_user = true;
	else if (!strcmp(line, "topic") || !strcmp(line, "pattern"))
		acl_rule(s, !strcmp(line, "pattern"), rest, lineno);
	else if (s->x->m->dialect == MOAT_LINT_MOSQUITTO)
		/* (moatd's own ACL parser reports errors for moatd) */
		moat_findings_add(s->x->f, "AUD-CFG-03",
				  "%s:%zu: unknown ACL keyword '%s'; "
				  "mosquitto refuses the file",
				  s->name, lineno, line);
	return true;
}

/* moatd fails the whole load on one bad line: say which. */
static void acl_moatd_parse(struct files *x, const struct lint_str *s,
			    const char *text, size_t len)
{
	struct moat_acl *acl = NULL;
	char err[512];
	if (moat_acl_parse(text, len, s->v, &acl, err, sizeof(err)) !=
	    MOAT_OK)
		moat_findings_add(x->f, "AUD-CFG-03",
				  "acl_file: %s; moatd will not start (%s)",
				  err, where_or_default(s->where));
	moat_acl_free(acl);
}

static void scan_acl(struct files *x, const struct lint_str *s)
{
	struct lint_model *m = x->m;
	char *text, err[600];
	size_t len;
	if (lint_acl_find(m, s->v) || m->nacl == LINT_MAX_ACLS)
		return;
	struct lint_acl_info *info = &m->acl[m->nacl++];
	memset(info, 0, sizeof(*info));
	info->path = s->v;
	if (lint_read_file(s->v, false, &text, &len, err, sizeof(err)))
		return; /* check_private reported why */
	info->readable = true;
	if (m->dialect == MOAT_LINT_MOATD)
		acl_moatd_parse(x, s, text, len);
	const char *base = strrchr(s->v, '/');
	struct acl_scan scan = {x, info, base ? base + 1 : s->v, false};
	lint_each_line(text, len, acl_line, &scan);
	moat_free(text);
}

const struct lint_acl_info *lint_acl_find(const struct lint_model *m,
					  const char *path)
{
	for (size_t i = 0; i < m->nacl; i++)
		if (!strcmp(m->acl[i].path, path))
			return &m->acl[i];
	return NULL;
}

/* ---- password file ------------------------------------------------------- */

enum pw_kind { PW_SHA512, PW_PBKDF2_FEW, PW_CLEAR, PW_BAD, PW_NKINDS };

struct pw_scan {
	size_t n[PW_NKINDS];
	char users[PW_NKINDS][160]; /* the first few names */
	size_t first_bad;           /* line */
	unsigned long min_iter;
};

static void pw_note(struct pw_scan *s, enum pw_kind k, const char *user,
		    size_t ulen)
{
	size_t used = strlen(s->users[k]);
	if (s->n[k]++ < 3 && used + ulen + 3 < sizeof(s->users[k]))
		snprintf(s->users[k] + used, sizeof(s->users[k]) - used,
			 "%s%.*s", used ? ", " : "", (int)ulen, user);
}

static bool pw_line(void *arg, char *line, size_t lineno)
{
	struct pw_scan *s = arg;
	line += strspn(line, " \t");
	if (!*line || *line == '#')
		return true;
	char *colon = strchr(line, ':');
	if (!colon || colon == line || !colon[1]) {
		if (!s->n[PW_BAD]++)
			s->first_bad = lineno;
		return true;
	}
	const char *hash = colon + 1;
	size_t ulen = (size_t)(colon - line);
	if (!strncmp(hash, "$6$", 3)) {
		pw_note(s, PW_SHA512, line, ulen);
	} else if (!strncmp(hash, "$7$", 3)) {
		unsigned long it = strtoul(hash + 3, NULL, 10);
		if (it < 210000) {
			pw_note(s, PW_PBKDF2_FEW, line, ulen);
			if (!s->min_iter || it < s->min_iter)
				s->min_iter = it;
		}
	} else if (hash[0] != '$') {
		pw_note(s, PW_CLEAR, line, ulen);
	} else if (strncmp(hash, "$argon2", 7)) {
		if (!s->n[PW_BAD]++)
			s->first_bad = lineno;
	}
	return true;
}

static void pw_report(struct files *x, const struct lint_str *f,
		      const struct pw_scan *s)
{
	const char *w = where_or_default(f->where);
	const size_t *n = s->n;
	if (n[PW_CLEAR])
		moat_findings_add_sev(x->f, "AUD-CFG-08", MOAT_SEV_HIGH,
				      "%zu password%s in %s stored without a "
				      "hash (%s%s) (%s)",
				      n[PW_CLEAR], n[PW_CLEAR] == 1 ? "" : "s",
				      f->v, s->users[PW_CLEAR],
				      n[PW_CLEAR] > 3 ? ", ..." : "", w);
	if (n[PW_SHA512])
		moat_findings_add(x->f, "AUD-CFG-08",
				  "%zu user%s in %s ha%s a $6$ (one round of "
				  "SHA-512) hash (%s%s) (%s)",
				  n[PW_SHA512], n[PW_SHA512] == 1 ? "" : "s",
				  f->v, n[PW_SHA512] == 1 ? "s" : "ve",
				  s->users[PW_SHA512],
				  n[PW_SHA512] > 3 ? ", ..." : "", w);
	if (n[PW_PBKDF2_FEW])
		moat_findings_add_sev(
			x->f, "AUD-CFG-08", MOAT_SEV_LOW,
			"%zu user%s in %s ha%s a $7$ (PBKDF2) hash with as "
			"few as %lu iterations (%s%s) (%s)",
			n[PW_PBKDF2_FEW], n[PW_PBKDF2_FEW] == 1 ? "" : "s",
			f->v, n[PW_PBKDF2_FEW] == 1 ? "s" : "ve", s->min_iter,
			s->users[PW_PBKDF2_FEW],
			n[PW_PBKDF2_FEW] > 3 ? ", ..." : "", w);
	if (n[PW_BAD] && x->m->dialect == MOAT_LINT_MOSQUITTO)
		moat_findings_add(x->f, "AUD-CFG-03",
				  "%s:%zu: not a user:hash line with a known "
				  "hash (%zu such line%s) (%s)",
				  f->v, s->first_bad, n[PW_BAD],
				  n[PW_BAD] == 1 ? "" : "s", w);
}

static void scan_passwords(struct files *x, const struct lint_str *f)
{
	char *text, err[600];
	size_t len;
	struct pw_scan s;
	if (lint_read_file(f->v, false, &text, &len, err, sizeof(err)))
		return; /* check_private reported why */
	if (x->m->dialect == MOAT_LINT_MOATD) {
		struct moat_pwfile *pw = NULL;
		if (moat_pwfile_parse(text, len, f->v, &pw, err, sizeof(err)))
			moat_findings_add(x->f, "AUD-CFG-03",
					  "password_file: %s; moatd will not "
					  "start (%s)",
					  err, where_or_default(f->where));
		moat_pwfile_free(pw);
	}
	memset(&s, 0, sizeof(s));
	lint_each_line(text, len, pw_line, &s);
	moat_free(text);
	pw_report(x, f, &s);
}

/* ---- server certificate -------------------------------------------------- */

static const char *asn1_date(const ASN1_TIME *t, char *buf, size_t bufsz)
{
	struct tm tm;
	if (ASN1_TIME_to_tm(t, &tm) != 1 ||
	    !strftime(buf, bufsz, "%Y-%m-%d", &tm))
		snprintf(buf, bufsz, "?");
	return buf;
}

static void cert_dates(struct files *x, X509 *c, const struct lint_str *s)
{
	const ASN1_TIME *na = X509_get0_notAfter(c);
	const ASN1_TIME *nb = X509_get0_notBefore(c);
	time_t soon = time(NULL) + 30 * 86400;
	char d[32];
	const char *w = where_or_default(s->where);
	if (X509_cmp_current_time(na) < 0)
		moat_findings_add(x->f, "AUD-TLS-03",
				  "certificate %s expired on %s (%s)", s->v,
				  asn1_date(na, d, sizeof(d)), w);
	else if (X509_cmp_time(na, &soon) < 0)
		moat_findings_add_sev(x->f, "AUD-TLS-03", MOAT_SEV_MEDIUM,
				      "certificate %s expires on %s, within "
				      "30 days (%s)",
				      s->v, asn1_date(na, d, sizeof(d)), w);
	if (X509_cmp_current_time(nb) > 0)
		moat_findings_add_sev(x->f, "AUD-TLS-03", MOAT_SEV_MEDIUM,
				      "certificate %s is not valid before %s "
				      "(%s)",
				      s->v, asn1_date(nb, d, sizeof(d)), w);
}

static void cert_key(struct files *x, X509 *c, const struct lint_str *s)
{
	EVP_PKEY *pk = X509_get0_pubkey(c);
	if (!pk)
		return;
	int id = EVP_PKEY_get_base_id(pk), bits = EVP_PKEY_get_bits(pk);
	bool weak = ((id == EVP_PKEY_RSA || id == EVP_PKEY_DSA) &&
		     bits < 2048) ||
		    (id == EVP_PKEY_EC && bits < 224);
	if (weak)
		moat_findings_add(x->f, "AUD-TLS-03",
				  "certificate %s has a %d-bit %s key (%s)",
				  s->v, bits,
				  id == EVP_PKEY_EC ? "EC" : "RSA/DSA",
				  where_or_default(s->where));
}

static void check_cert(struct files *x, const struct lint_str *s)
{
	BIO *b = BIO_new_file(s->v, "r");
	if (!b)
		return; /* check_exists reported why */
	X509 *c = PEM_read_bio_X509(b, NULL, NULL, NULL);
	BIO_free(b);
	if (!c) {
		moat_findings_add(x->f, "AUD-CFG-03",
				  "certfile %s holds no PEM certificate (%s)",
				  s->v, where_or_default(s->where));
		return;
	}
	cert_dates(x, c, s);
	cert_key(x, c, s);
	if (X509_check_issued(c, c) == X509_V_OK)
		moat_findings_add_sev(x->f, "AUD-TLS-03", MOAT_SEV_INFO,
				      "certificate %s is self-signed: every "
				      "client must be given it to verify the "
				      "server (%s)",
				      s->v, where_or_default(s->where));
	X509_free(c);
}

/* ---- walking the model --------------------------------------------------- */

static void check_sec(struct files *x, const struct lint_sec *s)
{
	if (check_private(x, "password_file", &s->password_file))
		scan_passwords(x, &s->password_file);
	if (check_private(x, "acl_file", &s->acl_file))
		scan_acl(x, &s->acl_file);
	check_private(x, "psk_file", &s->psk_file);
}

static void check_listener(struct files *x, const struct lint_listener *l)
{
	check_private(x, "keyfile", &l->keyfile);
	if (check_exists(x, "certfile", &l->certfile, false))
		check_cert(x, &l->certfile);
	check_exists(x, "cafile", &l->cafile, false);
	check_exists(x, "capath", &l->capath, true);
	check_exists(x, "crlfile", &l->crlfile, false);
	check_sec(x, &l->sec);
}

/* mosquitto's database holds retained messages and sessions. */
static void check_persistence(struct files *x)
{
	const struct lint_model *m = x->m;
	struct lint_str *db = &x->db;
	struct stat st;
	if (!m->persistence.v[0] || !m->persist_location.v[0])
		return;
	snprintf(db->v, sizeof(db->v), "%.*s/%.*s", LINT_VAL / 2 - 1,
		 m->persist_location.v, LINT_VAL / 2 - 1,
		 m->persist_file.v[0] ? m->persist_file.v : "mosquitto.db");
	snprintf(db->where, sizeof(db->where), "%s",
		 m->persist_location.where);
	if (lstat(db->v, &st) == 0) /* absent until the first save */
		check_private(x, "persistence file", db);
}

void lint_check_files(struct lint_model *m, struct moat_findings *f)
{
	struct files *x = moat_calloc(1, sizeof(*x));
	if (!x) {
		f->oom = true;
		return;
	}
	x->m = m;
	x->f = f;
	check_sec(x, &m->global);
	for (size_t i = 0; i < m->nl; i++)
		check_listener(x, &m->l[i]);
	for (size_t i = 0; i < m->nbr; i++)
		check_private(x, "bridge_keyfile", &m->br[i].keyfile);
	check_persistence(x);
	check_private(x, "cluster_nats_keyfile", &m->cluster.keyfile);
	check_private(x, "cluster_nats_creds", &m->cluster.creds);
	check_private(x, "cluster_nats_password_file",
		      &m->cluster.password_file);
	check_exists(x, "cluster_nats_cafile", &m->cluster.cafile, false);
	check_exists(x, "cluster_nats_certfile", &m->cluster.certfile, false);
	moat_free(x);
}
