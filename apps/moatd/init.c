/* moatd init DIR: a production-ready set-up in one command.
 *
 * Writes a private CA (EC P-256), a server certificate it signs, an admin
 * user with a random password (stored only as an argon2id hash), a
 * deny-by-default ACL and a moatd.conf that uses them.  Every file is
 * first written under a temporary name and renamed into place only once
 * all of them exist, moatd.conf last: a failure leaves either the old
 * set-up untouched or no set-up at all, never one that looks complete. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "auth/passwd.h"
#include "common/moat_common.h"
#include "moatd_cmds.h"

#define INIT_MAX_SANS 32
#define INIT_PW_LEN 24       /* 24 x 6 random bits = 144 bits */
#define INIT_CA_DAYS 3650    /* the CA outlives many server certificates */
#define INIT_SERVER_DAYS 825 /* the longest most TLS clients accept */
/* Certificates start a little in the past so that a client whose clock
 * is slightly behind does not reject them as not yet valid. */
#define INIT_BACKDATE_S (60L * 60L)
#define INIT_CN_MAX ((size_t)64) /* X.520 upper bound of a common name */
#define INIT_ADMIN "admin"

enum init_file {
	F_CA_KEY,
	F_CA_CRT,
	F_SRV_KEY,
	F_SRV_CRT,
	F_PASSWD,
	F_ACL,
	F_LEAK_KEY,
	F_CONF, /* last: its presence marks a complete set-up */
	F_COUNT
};

static const struct {
	const char *name;
	mode_t mode;
} init_files[F_COUNT] = {
	[F_CA_KEY] = {"ca.key", 0600},
	[F_CA_CRT] = {"ca.crt", 0644}, /* clients need it: not a secret */
	[F_SRV_KEY] = {"server.key", 0600},
	[F_SRV_CRT] = {"server.crt", 0644},
	[F_PASSWD] = {"passwd", 0600},
	[F_ACL] = {"acl", 0600},
	[F_LEAK_KEY] = {"leak.key", 0600},
	[F_CONF] = {"moatd.conf", 0600},
};

struct init_opts {
	const char *dir;
	const char *sans[INIT_MAX_SANS];
	size_t nsans;
	bool force;
};

struct init_state {
	const struct init_opts *o;
	int dirfd;
	bool made_dir;
	char path[PATH_MAX]; /* DIR, absolute */
	char host[256];
	/* Every subjectAltName of the server, without duplicates. */
	const char *names[INIT_MAX_SANS + 4];
	size_t nnames;
	EVP_PKEY *ca_key, *srv_key;
	X509 *ca, *srv;
	char pw[INIT_PW_LEN + 1];
	char hash[MOAT_PASSWD_HASH_MAX]; /* of pw, for the passwd file */
	bool staged[F_COUNT];    /* a temporary file exists */
	bool committed[F_COUNT]; /* renamed into place */
};

void moatd_init_usage(FILE *f)
{
	fprintf(f,
		"Usage: moatd init DIR [--san NAME]... [--force]\n"
		"\n"
		"Create a production-ready set-up in DIR (made with mode 0700 "
		"if missing):\n"
		"a private CA, a TLS server certificate it signs, an admin "
		"user with a\n"
		"random password, a deny-by-default ACL and moatd.conf (MQTT "
		"over TLS on\n"
		"port 8883 only, every client must log in).  The admin "
		"password is printed\n"
		"once and stored only as a hash.\n"
		"\n"
		"  --san NAME   also name the server certificate NAME, a DNS "
		"name or an IP\n"
		"               address (repeatable).  Always included: this "
		"host's name,\n"
		"               localhost, 127.0.0.1 and ::1\n"
		"  --force      replace an existing set-up in DIR, one with a "
		"moatd.conf\n"
		"               (its keys and passwords are lost)\n"
		"  -h, --help   this help\n"
		"\n"
		"Exit status: 0 done, 1 failed (nothing half-written is left "
		"behind),\n"
		"2 usage error.\n");
}

static int usage_error(const char *fmt, ...)
	__attribute__((format(printf, 1, 2)));

static int usage_error(const char *fmt, ...)
{
	va_list ap;
	fputs("moatd init: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputs("\nTry 'moatd init --help' for more information.\n", stderr);
	return 2;
}

/* Print "moatd init: MESSAGE[: OpenSSL's queued errors]"; returns -1. */
static int fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int fail(const char *fmt, ...)
{
	va_list ap;
	unsigned long e;
	const char *sep = ": ";
	fputs("moatd init: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	while ((e = ERR_get_error()) != 0) {
		char buf[256];
		ERR_error_string_n(e, buf, sizeof(buf));
		fprintf(stderr, "%s%s", sep, buf);
		sep = "; ";
	}
	fputc('\n', stderr);
	return -1;
}

/* ---- names ---------------------------------------------------------- */

static bool ascii_alnum(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c >= '0' && c <= '9');
}

/* A host name as certificates carry it: letters, digits and inner '-' in
 * dot-separated labels of 1-63, at most 253 in all, and an optional
 * leading "*." wildcard label. */
static bool dns_name_ok(const char *s)
{
	size_t label = 0;
	if (!s[0] || strlen(s) > 253)
		return false;
	if (strncmp(s, "*.", 2) == 0)
		s += 2;
	for (const char *p = s;; p++) {
		if (*p == '.' || *p == '\0') {
			if (label == 0 || label > 63 || p[-1] == '-')
				return false;
			if (*p == '\0')
				return true;
			label = 0;
		} else if (ascii_alnum(*p) || (*p == '-' && label > 0)) {
			label++;
		} else {
			return false;
		}
	}
}

enum san_kind { SAN_BAD, SAN_DNS, SAN_IP4, SAN_IP6 };

static enum san_kind san_kind(const char *name, unsigned char ip[16])
{
	unsigned char scratch[16];
	if (!ip)
		ip = scratch;
	if (inet_pton(AF_INET, name, ip) == 1)
		return SAN_IP4;
	if (inet_pton(AF_INET6, name, ip) == 1)
		return SAN_IP6;
	return dns_name_ok(name) ? SAN_DNS : SAN_BAD;
}

static void add_name(struct init_state *s, const char *name)
{
	for (size_t i = 0; i < s->nnames; i++)
		if (strcasecmp(s->names[i], name) == 0)
			return;
	s->names[s->nnames++] = name;
}

/* The server is named after this host; a host name that is not a valid
 * DNS name (or none) falls back to localhost, which is named anyway. */
static void pick_names(struct init_state *s)
{
	char h[256];
	if (gethostname(h, sizeof(h)) != 0)
		h[0] = '\0';
	h[sizeof(h) - 1] = '\0';
	snprintf(s->host, sizeof(s->host), "%s",
		 san_kind(h, NULL) == SAN_DNS ? h : "localhost");
	add_name(s, s->host);
	add_name(s, "localhost");
	add_name(s, "127.0.0.1");
	add_name(s, "::1");
	for (size_t i = 0; i < s->o->nsans; i++)
		add_name(s, s->o->sans[i]);
}

/* ---- arguments -------------------------------------------------------- */

static int add_san(struct init_opts *o, const char *name)
{
	if (san_kind(name, NULL) == SAN_BAD)
		return usage_error("--san '%s': neither an IP address nor a "
				   "DNS name",
				   name);
	if (o->nsans == INIT_MAX_SANS)
		return usage_error("at most %d --san names", INIT_MAX_SANS);
	o->sans[o->nsans++] = name;
	return 0;
}

/* Returns -1 to go on, else the exit status. */
static int parse_args(int argc, char **argv, struct init_opts *o)
{
	static const struct option opts[] = {
		{"san", required_argument, 0, 's'},
		{"force", no_argument, 0, 'f'},
		{"help", no_argument, 0, 'h'},
		{0, 0, 0, 0},
	};
	static char prog[] = "moatd init"; /* getopt's messages name it */
	int opt, rc;
	memset(o, 0, sizeof(*o));
	argv[0] = prog;
	while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (opt) {
		case 's':
			if ((rc = add_san(o, optarg)) != 0)
				return rc;
			break;
		case 'f': o->force = true; break;
		case 'h': moatd_init_usage(stdout); return 0;
		default:
			fputs("Try 'moatd init --help' for more information.\n",
			      stderr);
			return 2;
		}
	}
	if (argc - optind > 1)
		return usage_error("one directory only, not also '%s'",
				   argv[optind + 1]);
	if (argc == optind || !argv[optind][0])
		return usage_error("which directory?");
	o->dir = argv[optind];
	return -1;
}

/* ---- the directory ---------------------------------------------------- */

/* DIR must be ours alone: whoever else can write to it could swap the
 * keys or the ACL for their own. */
static int check_dir(struct init_state *s)
{
	struct stat st;
	if (fstat(s->dirfd, &st) != 0)
		return fail("%s: %s", s->o->dir, strerror(errno));
	if (st.st_uid != geteuid())
		return fail("%s belongs to another user (uid %u), who could "
			    "replace the keys; use a directory of your own",
			    s->o->dir, (unsigned)st.st_uid);
	if (st.st_mode & (S_IWGRP | S_IWOTH))
		return fail("%s is writable by other users, who could replace "
			    "the keys; chmod go-w it or use another directory",
			    s->o->dir);
	return 0;
}

static int open_dir(struct init_state *s)
{
	const char *dir = s->o->dir;
	if (mkdir(dir, 0700) == 0)
		s->made_dir = true;
	else if (errno != EEXIST)
		return fail("cannot create %s: %s%s", dir, strerror(errno),
			    errno == ENOENT ? " (its parent must exist)" : "");
	/* Not through a symlink: with --force it could aim the set-up
	 * (and its overwrites) at any directory, say /etc. */
	s->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
	struct stat lst;
	if (s->dirfd < 0 && (errno == ELOOP || errno == ENOTDIR) &&
	    lstat(dir, &lst) == 0 && S_ISLNK(lst.st_mode))
		return fail("%s is a symbolic link; give the directory itself",
			    dir);
	if (s->dirfd < 0)
		return fail("cannot open %s: %s", dir, strerror(errno));
	/* The umask may have taken bits we need (u+rwx). */
	if (s->made_dir && fchmod(s->dirfd, 0700) != 0)
		return fail("cannot chmod %s: %s", dir, strerror(errno));
	if (check_dir(s))
		return -1;
	if (!realpath(dir, s->path))
		return fail("%s: %s", dir, strerror(errno));
	return 0;
}

/* Without --force, any file we would write (not only moatd.conf) stops
 * us: keys are never replaced silently. */
static int check_existing(struct init_state *s)
{
	char found[256] = "";
	size_t n = 0;
	for (int f = 0; f < F_COUNT; f++) {
		struct stat st;
		if (fstatat(s->dirfd, init_files[f].name, &st,
			    AT_SYMLINK_NOFOLLOW) == 0) {
			int w = snprintf(found + n, sizeof(found) - n, "%s%s",
					 n ? ", " : "", init_files[f].name);
			n += w > 0 ? (size_t)w : 0;
		} else if (errno != ENOENT) {
			return fail("%s/%s: %s", s->o->dir, init_files[f].name,
				    strerror(errno));
		}
	}
	if (!n)
		return 0;
	/* --force replaces a set-up, recognised by its moatd.conf; files of
	 * the same names in any other directory are never overwritten. */
	struct stat st;
	bool setup = fstatat(s->dirfd, "moatd.conf", &st,
			     AT_SYMLINK_NOFOLLOW) == 0;
	if (s->o->force && setup)
		return 0;
	if (s->o->force)
		return fail("%s holds %s but no moatd.conf: it does not look "
			    "like a moat set-up, so --force will not overwrite "
			    "them; use an empty or new directory",
			    s->o->dir, found);
	return fail("%s already holds a set-up (%s); use --force to replace "
		    "it (its keys and passwords are then lost)",
		    s->o->dir, found);
}

/* ---- certificates ----------------------------------------------------- */

/* 128 random bits: serials must be unpredictable (RFC 5280 4.1.2.2
 * allows up to 20 octets; a set top bit costs a leading zero). */
static int set_serial(X509 *x)
{
	unsigned char r[16];
	int ok = RAND_bytes(r, (int)sizeof(r)) == 1;
	BIGNUM *bn = ok ? BN_bin2bn(r, (int)sizeof(r), NULL) : NULL;
	ok = bn && BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x));
	BN_free(bn);
	return ok ? 0 : -1;
}

/* A certificate for key named cn, issued by issuer (NULL: self-signed),
 * valid for days.  Extensions and the signature come later. */
static X509 *new_cert(EVP_PKEY *key, const char *cn, X509 *issuer,
		      int days)
{
	X509 *x = X509_new();
	X509_NAME *subj = x ? X509_get_subject_name(x) : NULL;
	time_t now = time(NULL);
	if (!x || !X509_set_version(x, X509_VERSION_3) || set_serial(x) ||
	    !X509_time_adj(X509_getm_notBefore(x), -INIT_BACKDATE_S, &now) ||
	    /* Counted from notBefore: clients that cap the validity period
	     * (825 days) measure it from there. */
	    !X509_time_adj_ex(X509_getm_notAfter(x), days, -INIT_BACKDATE_S,
			      &now) ||
	    !X509_set_pubkey(x, key) ||
	    !X509_NAME_add_entry_by_txt(subj, "CN", MBSTRING_ASC,
					(const unsigned char *)cn, -1, -1,
					0) ||
	    !X509_set_issuer_name(x, issuer ? X509_get_subject_name(issuer)
					    : subj)) {
		X509_free(x);
		return NULL;
	}
	return x;
}

/* One extension in OpenSSL's config syntax (constant values only). */
static int add_ext(X509 *x, X509 *issuer, int nid, const char *value)
{
	X509V3_CTX ctx;
	X509V3_set_ctx(&ctx, issuer ? issuer : x, x, NULL, NULL, 0);
	X509_EXTENSION *e = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
	int ok = e && X509_add_ext(x, e, -1);
	X509_EXTENSION_free(e);
	return ok ? 0 : -1;
}

static GENERAL_NAME *general_name(const char *name)
{
	unsigned char ip[16];
	enum san_kind k = san_kind(name, ip);
	GENERAL_NAME *g = GENERAL_NAME_new();
	ASN1_STRING *v = k == SAN_DNS ? ASN1_IA5STRING_new()
				      : ASN1_OCTET_STRING_new();
	int ok = g && v;
	if (ok && k == SAN_DNS)
		ok = ASN1_STRING_set(v, name, -1);
	else if (ok)
		ok = ASN1_OCTET_STRING_set(v, ip, k == SAN_IP4 ? 4 : 16);
	if (!ok) {
		GENERAL_NAME_free(g);
		ASN1_STRING_free(v);
		return NULL;
	}
	GENERAL_NAME_set0_value(g, k == SAN_DNS ? GEN_DNS : GEN_IPADD, v);
	return g;
}

/* Built from structures rather than a "DNS:a,IP:b" string, so that no
 * --san value can smuggle in extra names. */
static int add_sans(struct init_state *s, X509 *x)
{
	GENERAL_NAMES *gens = GENERAL_NAMES_new();
	int ok = gens != NULL;
	for (size_t i = 0; ok && i < s->nnames; i++) {
		GENERAL_NAME *g = general_name(s->names[i]);
		ok = g && sk_GENERAL_NAME_push(gens, g) > 0;
		if (!ok)
			GENERAL_NAME_free(g);
	}
	ok = ok && X509_add1_ext_i2d(x, NID_subject_alt_name, gens, 0,
				     X509V3_ADD_DEFAULT) == 1;
	GENERAL_NAMES_free(gens);
	return ok ? 0 : -1;
}

/* prefix + host, cut to the 64 characters a CN may have (OpenSSL refuses
 * more).  The SANs carry the full name, and clients match those. */
static void cn_of(char out[INIT_CN_MAX + 1], const char *prefix,
		  const char *host)
{
	size_t plen = strlen(prefix);
	size_t hlen = MOAT_MIN(strlen(host), INIT_CN_MAX - plen);
	memcpy(out, prefix, plen);
	memcpy(out + plen, host, hlen);
	out[plen + hlen] = '\0';
}

static int make_ca(struct init_state *s)
{
	char cn[INIT_CN_MAX + 1];
	cn_of(cn, "moat CA ", s->host);
	s->ca_key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	if (!s->ca_key)
		return fail("cannot generate the CA key");
	s->ca = new_cert(s->ca_key, cn, NULL, INIT_CA_DAYS);
	if (!s->ca ||
	    add_ext(s->ca, NULL, NID_basic_constraints, "critical,CA:TRUE") ||
	    add_ext(s->ca, NULL, NID_key_usage,
		    "critical,keyCertSign,cRLSign") ||
	    add_ext(s->ca, NULL, NID_subject_key_identifier, "hash") ||
	    !X509_sign(s->ca, s->ca_key, EVP_sha256()))
		return fail("cannot make the CA certificate");
	return 0;
}

static int make_server(struct init_state *s)
{
	char cn[INIT_CN_MAX + 1];
	cn_of(cn, "", s->host);
	s->srv_key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	if (!s->srv_key)
		return fail("cannot generate the server key");
	X509 *x = s->srv = new_cert(s->srv_key, cn, s->ca, INIT_SERVER_DAYS);
	if (!x ||
	    add_ext(x, s->ca, NID_basic_constraints, "critical,CA:FALSE") ||
	    add_ext(x, s->ca, NID_key_usage, "critical,digitalSignature") ||
	    add_ext(x, s->ca, NID_ext_key_usage, "serverAuth") ||
	    add_ext(x, s->ca, NID_subject_key_identifier, "hash") ||
	    add_ext(x, s->ca, NID_authority_key_identifier, "keyid:always") ||
	    add_sans(s, x) || !X509_sign(x, s->ca_key, EVP_sha256()))
		return fail("cannot make the server certificate");
	return 0;
}

/* ---- the admin password ------------------------------------------------ */

/* base64url characters: safe inside shell quotes, URLs and config files. */
static int make_password(struct init_state *s)
{
	char *pw = s->pw;
	static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
				       "abcdefghijklmnopqrstuvwxyz"
				       "0123456789-_";
	unsigned char r[INIT_PW_LEN];
	/* A leading '-' would read as an option to some tools. */
	do {
		if (RAND_bytes(r, (int)sizeof(r)) != 1)
			return fail("no random bytes for the password");
		/* 64 divides 256: every character equally likely. */
		for (size_t i = 0; i < INIT_PW_LEN; i++)
			pw[i] = alphabet[r[i] & 63];
	} while (pw[0] == '-');
	pw[INIT_PW_LEN] = '\0';
	OPENSSL_cleanse(r, sizeof(r));
	int rc = moat_passwd_hash((const uint8_t *)pw, INIT_PW_LEN, s->hash,
				  sizeof(s->hash));
	if (rc != MOAT_OK)
		return fail("cannot hash the password: %s", moat_strerror(rc));
	return 0;
}

/* ---- file contents ---------------------------------------------------- */

static const char acl_text[] =
	"# moatd ACL, written by moatd init.  Deny by default: a client may\n"
	"# use only the topics a line below grants it, and clients without a\n"
	"# user name get nothing.\n"
	"#   user NAME           starts NAME's section\n"
	"#   topic [read|write|readwrite|deny] FILTER\n"
	"#                       grants (or denies) in that section\n"
	"#   pattern [...] FILTER\n"
	"#                       the same for every logged-in client,\n"
	"#                       wherever it stands; %u = its user name,\n"
	"#                       %c = its client id\n"
	"#   clientid ID         the client ids NAME may use (a trailing *\n"
	"#                       matches any rest; %u = NAME)\n"
	"# A deny rule always wins.  kill -HUP $(pidof moatd) reloads this.\n"
	"\n"
	"# The administrator: every topic, and the broker's statistics ('#'\n"
	"# never matches topics that start with '$').\n"
	"user " INIT_ADMIN "\n"
	"topic readwrite #\n"
	"topic read $SYS/#\n"
	"\n"
	"# A device, added with: moat passwd passwd sensor-1\n"
	"# It may connect only with client ids that start with \"sensor-1-\",\n"
	"# so that no other user can take its session over.\n"
	"#user sensor-1\n"
	"#clientid %u-*\n"
	"\n"
	"# Every device: publish under its own devices/<user>/ subtree and\n"
	"# read its own commands, nothing else.\n"
	"#pattern write devices/%u/#\n"
	"#pattern read commands/%u/#\n";

/* Everything in moatd.conf after its first line. */
static const char conf_text[] =
	"# Relative paths are taken from this file's directory, so the\n"
	"# directory can be moved as a whole.  Check a change with\n"
	"# moatd -t -c FILE; every directive: moatd --help-config.\n"
	"\n"
	"# Clients on the network: MQTT over TLS (1.2 or newer), all\n"
	"# addresses.  They trust ca.crt; server.crt names this host,\n"
	"# localhost, 127.0.0.1, ::1 and any --san names.\n"
	"listener 8883\n"
	"certfile server.crt\n"
	"keyfile server.key\n"
	"# Client certificates as well (mutual TLS):\n"
	"#cafile ca.crt\n"
	"#require_certificate true\n"
	"\n"
	"# Local tools use port 8883 as well, e.g. moat pub --cafile ca.crt\n"
	"# -h localhost -u USER -t TOPIC -m MESSAGE: there is no plaintext\n"
	"# port.\n"
	"\n"
	"# CoAP devices over DTLS 1.2 (docs/coap.md): uncomment, and write\n"
	"# coap.psk (mode 0600) with one identity:hexkey line per device,\n"
	"# the key from openssl rand -hex 16, e.g.\n"
	"#   sensor1:00112233445566778899aabbccddeeff\n"
	"# The identity is the device's user name in the acl file; it\n"
	"# publishes with PUT coaps://HOST/ps/TOPIC.\n"
	"#listener 5684\n"
	"#protocol coaps\n"
	"#psk_file coap.psk\n"
	"\n"
	"# Who may log in (add a user: moat passwd passwd USER, in this\n"
	"# directory) and what each may do (deny by default).\n"
	"# kill -HUP $(pidof moatd) reloads both.\n"
	"password_file passwd\n"
	"acl_file acl\n"
	"allow_anonymous false\n"
	"\n"
	"# Private data in messages (docs/leaks.md): found and alerted on\n"
	"# $SYS/moat/leaks/... by default; leak.key keeps the HMACs that\n"
	"# identify findings stable.  Stricter, for example:\n"
	"#   leak_policy # credential block\n"
	"#   leak_policy # private_key block\n"
	"#   leak_policy sensors/# all redact\n"
	"leak_detection true\n"
	"leak_key_file leak.key\n"
	"\n"
	"# Retained messages and persistent sessions survive restarts and\n"
	"# crashes; a message is acknowledged once it is on disk\n"
	"# (docs/persistence.md).  The database: data/moat.db.\n"
	"persistence true\n"
	"persistence_location data\n"
	"\n"
	"# PUBLISH packets per second per client (bursts of twice that);\n"
	"# more disconnects it.\n"
	"max_publish_rate 1000\n"
	"\n"
	"# Left at their secure defaults: max_packet_size 1m,\n"
	"# max_connect_packet_size 16k, max_connections 100000,\n"
	"# max_connections_per_ip 32, max_accept_rate_per_ip 20,\n"
	"# auth_backoff_initial 1s, auth_backoff_max 5m, connect_timeout 10,\n"
	"# max_keepalive 300, max_inflight_messages 20,\n"
	"# max_queued_messages 1000, max_queued_bytes 16m,\n"
	"# max_subscriptions 100, max_retained_messages 100000,\n"
	"# memory_limit 0 (three quarters of RAM), tls_version tlsv1.2,\n"
	"# allow_insecure_listener false.\n";

static int render_conf(struct init_state *s, BIO *b)
{
	char when[32];
	time_t now = time(NULL);
	struct tm tm;
	strftime(when, sizeof(when), "%Y-%m-%d", gmtime_r(&now, &tm));
	if (BIO_printf(b,
		       "# moatd configuration, written by moatd init on %s "
		       "for %s.\n",
		       when, s->host) < 0)
		return -1;
	return BIO_puts(b, conf_text);
}

/* Append the contents of file f to b; < 0 on failure. */
/* 32 random bytes as 64 hex digits: the leak detector's install key. */
static int render_leak_key(BIO *b)
{
	unsigned char k[32];
	if (RAND_bytes(k, (int)sizeof(k)) != 1)
		return -1;
	int rc = 0;
	for (size_t i = 0; i < sizeof(k) && rc >= 0; i++)
		rc = BIO_printf(b, "%02x", k[i]);
	OPENSSL_cleanse(k, sizeof(k));
	return rc < 0 ? -1 : BIO_puts(b, "\n");
}

static int render(struct init_state *s, enum init_file f, BIO *b)
{
	switch (f) {
	case F_CA_KEY:
		return PEM_write_bio_PrivateKey(b, s->ca_key, NULL, NULL, 0,
						NULL, NULL) ? 0 : -1;
	case F_CA_CRT: return PEM_write_bio_X509(b, s->ca) ? 0 : -1;
	case F_SRV_KEY:
		return PEM_write_bio_PrivateKey(b, s->srv_key, NULL, NULL, 0,
						NULL, NULL) ? 0 : -1;
	case F_SRV_CRT: return PEM_write_bio_X509(b, s->srv) ? 0 : -1;
	case F_PASSWD: return BIO_printf(b, "%s:%s\n", INIT_ADMIN, s->hash);
	case F_ACL: return BIO_puts(b, acl_text);
	case F_LEAK_KEY: return render_leak_key(b);
	case F_CONF: return render_conf(s, b);
	case F_COUNT: break;
	}
	return -1;
}

/* ---- staging and committing ------------------------------------------ */

static void tmp_name(enum init_file f, char *out, size_t outsz)
{
	snprintf(out, outsz, ".%s.init-tmp", init_files[f].name);
}

static int write_all(int fd, const char *p, size_t len)
{
	while (len) {
		ssize_t w = write(fd, p, len);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		p += w;
		len -= (size_t)w;
	}
	return 0;
}

/* Write data to f's temporary name, with f's mode, and sync it. */
static int stage(struct init_state *s, enum init_file f, const char *data,
		 size_t len)
{
	char tmp[64];
	tmp_name(f, tmp, sizeof(tmp));
	/* A left-over from an interrupted run: removing it (rather than
	 * opening it) also never follows a symlink planted in its place. */
	if (unlinkat(s->dirfd, tmp, 0) != 0 && errno != ENOENT)
		return fail("%s/%s: %s", s->path, tmp, strerror(errno));
	int fd = openat(s->dirfd, tmp,
			O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
			init_files[f].mode);
	if (fd < 0)
		return fail("cannot create %s/%s: %s", s->path, tmp,
			    strerror(errno));
	s->staged[f] = true;
	/* fchmod: the umask may have removed bits (ca.crt is meant to be
	 * world-readable). */
	int ok = fchmod(fd, init_files[f].mode) == 0 &&
		 write_all(fd, data, len) == 0 && fsync(fd) == 0;
	int e = errno;
	if (close(fd) != 0 && ok) {
		ok = 0;
		e = errno;
	}
	if (!ok)
		return fail("cannot write %s/%s: %s", s->path, tmp,
			    strerror(e));
	return 0;
}

static int stage_all(struct init_state *s)
{
	for (int f = 0; f < F_COUNT; f++) {
		/* Keys go through secure-heap memory that is wiped when
		 * freed; the rest may as well. */
		BIO *b = BIO_new(BIO_s_secmem());
		char *data = NULL;
		long len = -1;
		if (b && render(s, (enum init_file)f, b) >= 0)
			len = BIO_get_mem_data(b, &data);
		int rc = len < 0 ? fail("cannot encode %s", init_files[f].name)
				 : stage(s, (enum init_file)f, data,
					 (size_t)len);
		BIO_free(b);
		if (rc)
			return -1;
	}
	return 0;
}

static int commit(struct init_state *s)
{
	for (int f = 0; f < F_COUNT; f++) {
		char tmp[64];
		tmp_name((enum init_file)f, tmp, sizeof(tmp));
		if (renameat(s->dirfd, tmp, s->dirfd, init_files[f].name) != 0)
			return fail("cannot rename %s/%s: %s%s", s->path, tmp,
				    strerror(errno),
				    f ? "; the half-replaced set-up is removed"
				      : "");
		s->staged[f] = false;
		s->committed[f] = true;
	}
	/* The renames themselves must survive a crash too. */
	if (fsync(s->dirfd) != 0)
		return fail("cannot sync %s: %s; the set-up is removed",
			    s->path, strerror(errno));
	return 0;
}

/* ---- the report -------------------------------------------------------- */

/* s as one shell word: bare when it is plain, else in single quotes. */
static void put_word(const char *s)
{
	if (strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
		      "0123456789_./@%+=:,-") == strlen(s) && s[0]) {
		fputs(s, stdout);
		return;
	}
	putchar('\'');
	for (; *s; s++) {
		if (*s == '\'')
			fputs("'\\''", stdout);
		else
			putchar(*s);
	}
	putchar('\'');
}

static void put_path(const struct init_state *s, enum init_file f)
{
	char p[PATH_MAX + 32];
	snprintf(p, sizeof(p), "%s/%s", s->path, init_files[f].name);
	put_word(p);
}

static void put_client(const struct init_state *s, const char *tool,
		       const char *rest)
{
	printf("  %s --cafile ", tool);
	put_path(s, F_CA_CRT);
	printf(" -h localhost -p 8883 -u %s -P '%s' %s\n", INIT_ADMIN, s->pw,
	       rest);
}

static void put_files(const struct init_state *s)
{
	static const char *const what[F_COUNT] = {
		[F_CA_KEY] = "CA private key: signs certificates; keep it "
			     "offline once done",
		[F_CA_CRT] = "CA certificate: clients trust this (--cafile)",
		[F_SRV_KEY] = "server private key",
		[F_SRV_CRT] = "server certificate (825 days) for",
		[F_PASSWD] = "password file: user " INIT_ADMIN
			     " (argon2id hash)",
		[F_ACL] = "ACL: deny by default; " INIT_ADMIN " may use "
			  "every topic",
		[F_LEAK_KEY] = "install key of the leak detector (HMACs in "
			       "logs)",
		[F_CONF] = "configuration: TLS on port 8883, all addresses",
	};
	printf("moatd init: a new set-up in %s\n\n", s->path);
	for (int f = 0; f < F_COUNT; f++) {
		printf("  %-11s %s", init_files[f].name, what[f]);
		for (size_t i = 0; f == F_SRV_CRT && i < s->nnames; i++)
			printf("%s%s", i ? ", " : " ", s->names[i]);
		putchar('\n');
	}
}

/* Everything the user needs, once; the password is not kept anywhere
 * else, so a failure to print it fails the whole run. */
static int report(const struct init_state *s)
{
	put_files(s);
	printf("\nAdmin user:     %s\nAdmin password: %s\n", INIT_ADMIN,
	       s->pw);
	printf("This password is shown only once: moatd stores only its "
	       "hash.  Keep it\nsomewhere safe now; to change it: moat "
	       "passwd ");
	put_path(s, F_PASSWD);
	printf(" %s\n\nStart the broker:\n  moatd -c ", INIT_ADMIN);
	put_path(s, F_CONF);
	printf("\n\nThen, from another terminal:\n");
	put_client(s, "moat sub", "-t '#' -v");
	put_client(s, "moat pub", "-t test -m hello");
	if (fflush(stdout) != 0 || ferror(stdout))
		return fail("cannot print the admin password (%s); the set-up "
			    "is removed, run moatd init again",
			    strerror(errno));
	return 0;
}

/* ---- main -------------------------------------------------------------- */

static void cleanup(struct init_state *s, bool ok)
{
	bool any_committed = false;
	for (int f = 0; f < F_COUNT; f++) {
		char tmp[64];
		tmp_name((enum init_file)f, tmp, sizeof(tmp));
		if (s->staged[f])
			(void)unlinkat(s->dirfd, tmp, 0);
		any_committed |= s->committed[f];
	}
	/* Half-replaced, or the password never shown: remove every file
	 * of the set-up, so that none of it passes for a working one. */
	for (int f = 0; !ok && any_committed && f < F_COUNT; f++)
		(void)unlinkat(s->dirfd, init_files[f].name, 0);
	if (!ok && s->made_dir)
		(void)rmdir(s->o->dir);
	if (s->dirfd >= 0)
		close(s->dirfd);
	EVP_PKEY_free(s->ca_key);
	EVP_PKEY_free(s->srv_key);
	X509_free(s->ca);
	X509_free(s->srv);
	OPENSSL_cleanse(s->pw, sizeof(s->pw));
	OPENSSL_cleanse(s->hash, sizeof(s->hash));
}

int moatd_init_main(int argc, char **argv)
{
	struct init_opts o;
	int rc = parse_args(argc, argv, &o);
	if (rc >= 0)
		return rc;
	struct init_state s = {.o = &o, .dirfd = -1};
	/* A closed stdout must fail report(), which then removes the set-up,
	 * rather than kill us with its password never shown. */
	signal(SIGPIPE, SIG_IGN);
	ERR_clear_error();
	pick_names(&s);
	bool ok = !open_dir(&s) && !check_existing(&s) && !make_ca(&s) &&
		  !make_server(&s) && !make_password(&s) && !stage_all(&s) &&
		  !commit(&s) && !report(&s);
	cleanup(&s, ok);
	return ok ? 0 : 1;
}
