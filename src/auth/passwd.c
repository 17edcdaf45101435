/* Password files and hashing: see passwd.h.
 *
 * A loaded file is one copy of its text, cut in place into NUL-terminated
 * user names and hashes, plus an array of entries sorted by user name for
 * binary search.  Hashes are only syntax-checked at load; they are decoded
 * again at each verification (cheap next to the hash itself).
 *
 * The success cache is 4-way set-associative: the set comes from the MAC
 * itself, which is keyed with a random per-file key, so an outsider can
 * neither predict nor aim at a set.  Eviction is round-robin within a
 * set.  Reloading the file (new object, new key) forgets everything. */
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <argon2.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <openssl/rand.h>
#include <pwquality.h>

#include "auth/passwd.h"
#include "common/moat_common.h"

/* ---- limits -------------------------------------------------------------
 * What a file may contain.  The hash cost bounds keep a hostile or
 * mistaken file from stalling the broker's workers or exhausting memory. */
#define PW_MAX_LINE 65536      /* bytes, without the line ending */
#define PW_MAX_USERS 1000000
#define PW_MAX_USER 65535      /* an MQTT string */
#define PW_SALT_MAX 64         /* decoded bytes, every format */
#define PW_HASH_MAX 64         /* decoded bytes, every format */
#define PW_HASH_MIN 16         /* shorter outputs are guessable */
#define PW_PBKDF2_ITER_MAX 10000000UL
#define PW_ARGON2_M_MAX (256UL * 1024) /* KiB: 256 MiB */
#define PW_ARGON2_T_MAX 16UL
#define PW_ARGON2_P_MAX 16UL

/* New hashes: OWASP's argon2id recommendation (19 MiB, 2 passes, 1 lane). */
#define PW_NEW_M 19456u
#define PW_NEW_T 2u
#define PW_NEW_P 1u
#define PW_NEW_SALT 16u
#define PW_NEW_HASH 32u

/* Success cache: PW_CACHE_SETS * PW_CACHE_WAYS = 4096 entries. */
#define PW_MAC_LEN 32
#define PW_CACHE_SETS 1024u
#define PW_CACHE_WAYS 4u
#define PW_KEY_LEN 32

/* Shortest acceptable password, in characters (UTF-8 code points). */
#define PW_MIN_CHARS 8

enum pw_kind {
	PW_ARGON2ID,
	PW_SHA512, /* mosquitto $6$: SHA-512(password || salt) */
	PW_PBKDF2, /* mosquitto $7$: PBKDF2-HMAC-SHA512 */
};

/* A decoded hash. */
struct pw_hash {
	enum pw_kind kind;
	unsigned long iter; /* $7$ only */
	uint8_t salt[PW_SALT_MAX];
	size_t saltlen;
	uint8_t hash[PW_HASH_MAX];
	size_t hashlen;
};

struct pw_entry {
	const char *user; /* into moat_pwfile.text, NUL-terminated */
	const char *hash; /* likewise */
	size_t ulen;
	uint32_t line;
};

struct pw_cache_set {
	uint8_t mac[PW_CACHE_WAYS][PW_MAC_LEN];
	uint8_t used; /* bit w: way w holds a MAC */
	uint8_t next; /* the way to evict next */
};

struct moat_pwfile {
	char *text; /* the file, cut into user and hash strings */
	struct pw_entry *e;
	size_t n, cap;
	EVP_MAC *hmac;
	uint8_t key[PW_KEY_LEN];
	pthread_mutex_t lock;	    /* guards cache */
	struct pw_cache_set *cache; /* PW_CACHE_SETS; NULL until first use */
};

/* ---- base64 --------------------------------------------------------------
 * Standard alphabet.  mosquitto pads ("=="), argon2's PHC strings do not;
 * each format gets exactly its own form so that a file has one spelling. */
static int b64_val(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

static bool b64_decode(const char *s, size_t len, bool padded, uint8_t *out,
		       size_t outmax, size_t *outlen)
{
	size_t n = len;
	if (padded) {
		if (len % 4 != 0)
			return false;
		for (int i = 0; i < 2 && n > 0 && s[n - 1] == '='; i++)
			n--;
	}
	if (n % 4 == 1)
		return false;
	size_t need = n / 4 * 3 + (n % 4 ? n % 4 - 1 : 0);
	if (need > outmax)
		return false;
	uint32_t acc = 0;
	unsigned bits = 0;
	size_t o = 0;
	for (size_t i = 0; i < n; i++) {
		int v = b64_val((unsigned char)s[i]);
		if (v < 0)
			return false;
		acc = (acc << 6) | (uint32_t)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			out[o++] = (uint8_t)(acc >> bits);
		}
	}
	/* Canonical only: the unused low bits of the last character must be
	 * zero.  libargon2 refuses anything else at verification, and no
	 * encoder writes it. */
	if (acc & ((1u << bits) - 1))
		return false;
	*outlen = o;
	return true;
}

/* ---- hash syntax ---------------------------------------------------------
 * A cursor over the encoded hash; every step checks the bounds. */
struct pw_cur {
	const char *p, *end;
};

static bool cur_lit(struct pw_cur *c, const char *lit)
{
	size_t n = strlen(lit);
	if ((size_t)(c->end - c->p) < n || memcmp(c->p, lit, n) != 0)
		return false;
	c->p += n;
	return true;
}

/* A decimal in 1..max without leading zeros. */
static bool cur_uint(struct pw_cur *c, unsigned long max, unsigned long *v)
{
	unsigned long x = 0;
	const char *start = c->p;
	while (c->p < c->end && *c->p >= '0' && *c->p <= '9') {
		x = x * 10 + (unsigned long)(*c->p - '0');
		if (x > max)
			return false;
		c->p++;
	}
	if (c->p == start || *start == '0')
		return false;
	*v = x;
	return true;
}

/* The field up to the next '$' (or the end), base64-decoded. */
static bool cur_b64(struct pw_cur *c, bool padded, uint8_t *out,
		    size_t outmax, size_t *outlen)
{
	const char *d = memchr(c->p, '$', (size_t)(c->end - c->p));
	const char *stop = d ? d : c->end;
	if (!b64_decode(c->p, (size_t)(stop - c->p), padded, out, outmax,
			outlen))
		return false;
	c->p = stop;
	return true;
}

/* $argon2id$v=19$m=M,t=T,p=P$SALT$HASH.  Stricter than libargon2 (v=19
 * only, bounded cost, no leading zeros) so that a hash accepted here is
 * never refused by argon2id_verify for its syntax. */
static bool parse_argon2id(struct pw_cur *c, struct pw_hash *h,
			   const char **why)
{
	unsigned long m, t, p;
	*why = "malformed $argon2id$ hash";
	if (!cur_lit(c, "v=19$m=") || !cur_uint(c, PW_ARGON2_M_MAX, &m) ||
	    !cur_lit(c, ",t=") || !cur_uint(c, PW_ARGON2_T_MAX, &t) ||
	    !cur_lit(c, ",p=") || !cur_uint(c, PW_ARGON2_P_MAX, &p) ||
	    !cur_lit(c, "$"))
		return false;
	if (m < 8 * p) {
		*why = "$argon2id$ hash: memory below 8 KiB per lane";
		return false;
	}
	if (!cur_b64(c, false, h->salt, sizeof(h->salt), &h->saltlen) ||
	    h->saltlen < 8 || !cur_lit(c, "$") ||
	    !cur_b64(c, false, h->hash, sizeof(h->hash), &h->hashlen) ||
	    h->hashlen < PW_HASH_MIN || c->p != c->end)
		return false;
	h->kind = PW_ARGON2ID;
	return true;
}

/* mosquitto: $6$SALT$HASH and $7$ITERATIONS$SALT$HASH, padded base64. */
static bool parse_mosq(struct pw_cur *c, struct pw_hash *h, bool pbkdf2,
		       const char **why)
{
	*why = pbkdf2 ? "malformed $7$ hash" : "malformed $6$ hash";
	h->iter = 0;
	if (pbkdf2 && (!cur_uint(c, PW_PBKDF2_ITER_MAX, &h->iter) ||
		       !cur_lit(c, "$"))) {
		*why = "$7$ hash: iteration count not in 1..10000000";
		return false;
	}
	if (!cur_b64(c, true, h->salt, sizeof(h->salt), &h->saltlen) ||
	    h->saltlen == 0 || !cur_lit(c, "$") ||
	    !cur_b64(c, true, h->hash, sizeof(h->hash), &h->hashlen) ||
	    c->p != c->end)
		return false;
	/* $6$ is a bare SHA-512; $7$ may ask PBKDF2 for any output length,
	 * mosquitto writes 64 bytes. */
	if (pbkdf2 ? h->hashlen < PW_HASH_MIN : h->hashlen != 64)
		return false;
	h->kind = pbkdf2 ? PW_PBKDF2 : PW_SHA512;
	return true;
}

/* Decode s[0..len); false with a reason that never quotes the hash. */
static bool pw_hash_parse(const char *s, size_t len, struct pw_hash *h,
			  const char **why)
{
	struct pw_cur c = {s, s + len};
	if (len == 0) {
		*why = "empty password hash";
		return false;
	}
	if (cur_lit(&c, "$argon2id$"))
		return parse_argon2id(&c, h, why);
	if (cur_lit(&c, "$7$"))
		return parse_mosq(&c, h, true, why);
	if (cur_lit(&c, "$6$"))
		return parse_mosq(&c, h, false, why);
	*why = "unknown password hash format (expected $argon2id$, $7$ or "
	       "$6$)";
	return false;
}

/* ---- verification --------------------------------------------------------- */
static const uint8_t pw_empty[1];

static int verify_argon2id(const char *encoded, const uint8_t *pw,
			   size_t len)
{
	if (len > UINT32_MAX)
		return MOAT_EDENIED;
	int rc = argon2id_verify(encoded, pw, len);
	if (rc == ARGON2_OK)
		return MOAT_OK;
	if (rc == ARGON2_VERIFY_MISMATCH)
		return MOAT_EDENIED;
	if (rc == ARGON2_MEMORY_ALLOCATION_ERROR)
		return MOAT_ENOMEM;
	return MOAT_EINVAL;
}

static int verify_sha512(const struct pw_hash *h, const uint8_t *pw,
			 size_t len)
{
	uint8_t out[EVP_MAX_MD_SIZE];
	unsigned outlen = 0;
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	if (!ctx)
		return MOAT_ENOMEM;
	int ok = EVP_DigestInit_ex(ctx, EVP_sha512(), NULL) == 1 &&
		 EVP_DigestUpdate(ctx, pw, len) == 1 &&
		 EVP_DigestUpdate(ctx, h->salt, h->saltlen) == 1 &&
		 EVP_DigestFinal_ex(ctx, out, &outlen) == 1;
	EVP_MD_CTX_free(ctx);
	int rc = MOAT_EINVAL;
	if (ok && outlen == h->hashlen)
		rc = CRYPTO_memcmp(out, h->hash, h->hashlen) == 0
			     ? MOAT_OK
			     : MOAT_EDENIED;
	OPENSSL_cleanse(out, sizeof(out));
	return rc;
}

static int verify_pbkdf2(const struct pw_hash *h, const uint8_t *pw,
			 size_t len)
{
	uint8_t out[PW_HASH_MAX];
	if (len > INT_MAX)
		return MOAT_EDENIED;
	/* Bounded by the parser: iter <= 10^7, salt and hash <= 64 bytes. */
	if (PKCS5_PBKDF2_HMAC((const char *)pw, (int)len, h->salt,
			      (int)h->saltlen, (int)h->iter, EVP_sha512(),
			      (int)h->hashlen, out) != 1)
		return MOAT_ENOMEM;
	int rc = CRYPTO_memcmp(out, h->hash, h->hashlen) == 0 ? MOAT_OK
							      : MOAT_EDENIED;
	OPENSSL_cleanse(out, sizeof(out));
	return rc;
}

int moat_passwd_verify(const char *encoded, const uint8_t *pw, size_t len)
{
	struct pw_hash h;
	const char *why;
	if (!encoded || (!pw && len))
		return MOAT_EINVAL;
	if (!pw)
		pw = pw_empty;
	if (!pw_hash_parse(encoded, strnlen(encoded, PW_MAX_LINE + 1), &h,
			   &why))
		return MOAT_EINVAL;
	switch (h.kind) {
	case PW_ARGON2ID:
		return verify_argon2id(encoded, pw, len);
	case PW_SHA512:
		return verify_sha512(&h, pw, len);
	case PW_PBKDF2:
		return verify_pbkdf2(&h, pw, len);
	}
	return MOAT_EINVAL;
}

int moat_passwd_hash(const uint8_t *pw, size_t len, char *out, size_t outsz)
{
	uint8_t salt[PW_NEW_SALT];
	if (!out || (!pw && len) || len > UINT32_MAX)
		return MOAT_EINVAL;
	if (outsz < argon2_encodedlen(PW_NEW_T, PW_NEW_M, PW_NEW_P,
				      PW_NEW_SALT, PW_NEW_HASH, Argon2_id))
		return MOAT_EINVAL;
	if (RAND_bytes(salt, (int)sizeof(salt)) != 1)
		return MOAT_EIO;
	int rc = argon2id_hash_encoded(PW_NEW_T, PW_NEW_M, PW_NEW_P,
				       pw ? (const void *)pw : pw_empty, len,
				       salt, sizeof(salt), PW_NEW_HASH, out,
				       outsz);
	if (rc == ARGON2_MEMORY_ALLOCATION_ERROR)
		return MOAT_ENOMEM;
	return rc == ARGON2_OK ? MOAT_OK : MOAT_EINVAL;
}

/* ---- loading -------------------------------------------------------------- */
static int entry_cmp_key(const char *a, size_t alen, const char *b,
			 size_t blen)
{
	int c = memcmp(a, b, MOAT_MIN(alen, blen));
	if (c)
		return c;
	return alen < blen ? -1 : alen > blen;
}

/* By user, then by line so that a run of duplicates is in file order. */
static int entry_cmp(const void *pa, const void *pb)
{
	const struct pw_entry *a = pa, *b = pb;
	int c = entry_cmp_key(a->user, a->ulen, b->user, b->ulen);
	if (c)
		return c;
	return a->line < b->line ? -1 : a->line > b->line;
}

static bool user_has_control(const char *u, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		unsigned char ch = (unsigned char)u[i];
		if (ch < 0x20 || ch == 0x7f)
			return true;
	}
	return false;
}

static bool line_blank(const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (s[i] != ' ' && s[i] != '\t')
			return false;
	return true;
}

static int add_entry(struct moat_pwfile *f, const struct pw_entry *e)
{
	if (f->n == f->cap) {
		size_t cap = f->cap ? f->cap * 2 : 64;
		struct pw_entry *ne = moat_realloc(f->e, cap * sizeof(*ne));
		if (!ne)
			return MOAT_ENOMEM;
		f->e = ne;
		f->cap = cap;
	}
	f->e[f->n++] = *e;
	return MOAT_OK;
}

/* One user line (not blank, not a comment): check it, cut it into user and
 * hash strings in place, add the entry.  *why explains a refusal. */
static int parse_user_line(struct moat_pwfile *f, char *s, size_t len,
			   uint32_t lineno, const char **why)
{
	struct pw_hash h;
	char *colon = memchr(s, ':', len);
	if (!colon) {
		*why = "no ':' between user name and password hash";
		return MOAT_EMALFORMED;
	}
	size_t ulen = (size_t)(colon - s);
	if (f->n >= PW_MAX_USERS) {
		*why = "more than 1000000 users";
		return MOAT_ELIMIT;
	}
	*why = NULL;
	if (ulen == 0)
		*why = "empty user name";
	else if (ulen > PW_MAX_USER)
		*why = "user name longer than 65535 bytes";
	else if (user_has_control(s, ulen))
		*why = "control character in user name";
	else if (!moat_utf8_valid((const uint8_t *)s, ulen))
		*why = "user name is not valid UTF-8";
	if (*why)
		return MOAT_EMALFORMED;
	if (!pw_hash_parse(colon + 1, len - ulen - 1, &h, why))
		return MOAT_EMALFORMED;
	*colon = '\0';
	s[len] = '\0';
	struct pw_entry e = {s, colon + 1, ulen, lineno};
	int rc = add_entry(f, &e);
	if (rc)
		*why = "out of memory";
	return rc;
}

/* Cut text (NUL-terminated at text[len]) into lines.  On failure *line is
 * the offending line. */
static int parse_lines(struct moat_pwfile *f, char *text, size_t len,
		       uint32_t *line, const char **why)
{
	char *p = text, *end = text + len;
	*line = 0;
	while (p < end) {
		char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t n = (size_t)((nl ? nl : end) - p);
		(*line)++;
		if (n > 0 && p[n - 1] == '\r')
			n--;
		if (n > PW_MAX_LINE) {
			*why = "line longer than 65536 bytes";
			return MOAT_ELIMIT;
		}
		if (!line_blank(p, n) && p[0] != '#') {
			int rc = parse_user_line(f, p, n, *line, why);
			if (rc)
				return rc;
		}
		p = nl ? nl + 1 : end;
	}
	return MOAT_OK;
}

/* After sorting: the first duplicate in file order, or NULL. */
static const struct pw_entry *find_duplicate(const struct moat_pwfile *f,
					     const struct pw_entry **first)
{
	const struct pw_entry *best = NULL;
	for (size_t i = 1; i < f->n; i++) {
		const struct pw_entry *a = &f->e[i - 1], *b = &f->e[i];
		if (entry_cmp_key(a->user, a->ulen, b->user, b->ulen) != 0)
			continue;
		/* a is the earliest of its run only if it starts the run */
		if (i >= 2 && entry_cmp_key(f->e[i - 2].user,
					    f->e[i - 2].ulen, a->user,
					    a->ulen) == 0)
			continue;
		if (!best || b->line < best->line) {
			best = b;
			*first = a;
		}
	}
	return best;
}

static int pwfile_init_crypto(struct moat_pwfile *f)
{
	if (RAND_bytes(f->key, (int)sizeof(f->key)) != 1)
		return MOAT_EIO;
	f->hmac = EVP_MAC_fetch(NULL, "HMAC", NULL);
	if (!f->hmac)
		return MOAT_EIO;
	if (pthread_mutex_init(&f->lock, NULL) != 0) {
		EVP_MAC_free(f->hmac);
		f->hmac = NULL;
		return MOAT_ENOMEM;
	}
	return MOAT_OK;
}

/* Takes ownership of text (moat_malloc'd, NUL at text[len]). */
static int pwfile_parse_owned(char *text, size_t len, const char *name,
			      struct moat_pwfile **out, char *err,
			      size_t errsz)
{
	*out = NULL;
	struct moat_pwfile *f = moat_calloc(1, sizeof(*f));
	if (!f) {
		moat_free(text);
		snprintf(err, errsz, "%s: out of memory", name);
		return MOAT_ENOMEM;
	}
	f->text = text;
	uint32_t line;
	const char *why = NULL;
	int rc = parse_lines(f, text, len, &line, &why);
	if (rc) {
		snprintf(err, errsz, "%s:%u: %s", name, (unsigned)line, why);
		goto fail;
	}
	if (f->n > 1) /* f->e is NULL for an empty file */
		qsort(f->e, f->n, sizeof(*f->e), entry_cmp);
	const struct pw_entry *first = NULL;
	const struct pw_entry *dup = find_duplicate(f, &first);
	if (dup) {
		snprintf(err, errsz, "%s:%u: duplicate user (first on line %u)",
			 name, (unsigned)dup->line, (unsigned)first->line);
		rc = MOAT_EMALFORMED;
		goto fail;
	}
	rc = pwfile_init_crypto(f);
	if (rc) {
		snprintf(err, errsz, "%s: cannot set up the password cache",
			 name);
		goto fail;
	}
	*out = f;
	return MOAT_OK;
fail:
	moat_free(f->e);
	moat_free(f->text);
	moat_free(f);
	return rc;
}

int moat_pwfile_parse(const char *text, size_t len, const char *name,
		      struct moat_pwfile **out, char *err, size_t errsz)
{
	*out = NULL;
	if (!text && len) {
		snprintf(err, errsz, "%s: no text", name);
		return MOAT_EINVAL;
	}
	char *copy = moat_malloc(len + 1);
	if (!copy) {
		snprintf(err, errsz, "%s: out of memory", name);
		return MOAT_ENOMEM;
	}
	if (len)
		memcpy(copy, text, len);
	copy[len] = '\0';
	return pwfile_parse_owned(copy, len, name, out, err, errsz);
}

int moat_pwfile_load(const char *path, struct moat_pwfile **out, char *err,
		     size_t errsz)
{
	char *text;
	size_t len;
	*out = NULL;
	int rc = moat_file_read(path, MOAT_PWFILE_MAX_BYTES, true, &text,
				&len, err, errsz);
	if (rc)
		return rc;
	return pwfile_parse_owned(text, len, path, out, err, errsz);
}

void moat_pwfile_free(struct moat_pwfile *f)
{
	if (!f)
		return;
	if (f->hmac) { /* set up last: the lock exists too */
		EVP_MAC_free(f->hmac);
		pthread_mutex_destroy(&f->lock);
	}
	if (f->cache) {
		OPENSSL_cleanse(f->cache, PW_CACHE_SETS * sizeof(*f->cache));
		moat_free(f->cache);
	}
	OPENSSL_cleanse(f->key, sizeof(f->key));
	moat_free(f->e);
	moat_free(f->text);
	moat_free(f);
}

size_t moat_pwfile_count(const struct moat_pwfile *f)
{
	return f ? f->n : 0;
}

static const struct pw_entry *find_user(const struct moat_pwfile *f,
					const char *user, size_t ulen)
{
	size_t lo = 0, hi = f->n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		const struct pw_entry *e = &f->e[mid];
		int c = entry_cmp_key(user, ulen, e->user, e->ulen);
		if (c == 0)
			return e;
		if (c < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return NULL;
}

bool moat_pwfile_has_user(const struct moat_pwfile *f, const char *user,
			  size_t ulen)
{
	if (!f || (!user && ulen))
		return false;
	return find_user(f, user ? user : "", ulen) != NULL;
}

/* ---- checking ------------------------------------------------------------- */

/* The stand-in for unknown users: an argon2id hash of a random password
 * that nobody knows, made once per process, so that "no such user" costs
 * what "wrong password" costs. */
static pthread_once_t dummy_once = PTHREAD_ONCE_INIT;
static char dummy_hash[MOAT_PASSWD_HASH_MAX];
static bool dummy_ok;

static void dummy_init(void)
{
	uint8_t pw[32];
	if (RAND_bytes(pw, (int)sizeof(pw)) == 1)
		dummy_ok = moat_passwd_hash(pw, sizeof(pw), dummy_hash,
					    sizeof(dummy_hash)) == MOAT_OK;
	OPENSSL_cleanse(pw, sizeof(pw));
}

static void dummy_verify(const uint8_t *pw, size_t len)
{
	pthread_once(&dummy_once, dummy_init);
	if (dummy_ok)
		(void)verify_argon2id(dummy_hash, pw, len);
}

/* HMAC-SHA256(key, user || 0x00 || password).  User names in the file
 * hold no NUL, so the encoding is unambiguous. */
static bool cache_mac(struct moat_pwfile *f, const char *user, size_t ulen,
		      const uint8_t *pw, size_t pwlen, uint8_t mac[PW_MAC_LEN])
{
	static char digest[] = "SHA256";
	static const uint8_t zero = 0;
	OSSL_PARAM params[] = {
		OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST,
						 digest, 0),
		OSSL_PARAM_construct_end(),
	};
	size_t outlen = 0;
	EVP_MAC_CTX *ctx = EVP_MAC_CTX_new(f->hmac);
	if (!ctx)
		return false;
	bool ok = EVP_MAC_init(ctx, f->key, sizeof(f->key), params) == 1 &&
		  EVP_MAC_update(ctx, (const uint8_t *)user, ulen) == 1 &&
		  EVP_MAC_update(ctx, &zero, 1) == 1 &&
		  EVP_MAC_update(ctx, pw, pwlen) == 1 &&
		  EVP_MAC_final(ctx, mac, &outlen, PW_MAC_LEN) == 1 &&
		  outlen == PW_MAC_LEN;
	EVP_MAC_CTX_free(ctx);
	return ok;
}

static struct pw_cache_set *cache_set(struct moat_pwfile *f,
				      const uint8_t mac[PW_MAC_LEN])
{
	size_t i = ((size_t)mac[0] | (size_t)mac[1] << 8) % PW_CACHE_SETS;
	return &f->cache[i];
}

/* Compares every way of the set constant-time, hit or not. */
static bool cache_has_locked(struct moat_pwfile *f,
			     const uint8_t mac[PW_MAC_LEN])
{
	if (!f->cache)
		return false;
	const struct pw_cache_set *s = cache_set(f, mac);
	int hit = 0;
	for (unsigned w = 0; w < PW_CACHE_WAYS; w++) {
		int eq = CRYPTO_memcmp(s->mac[w], mac, PW_MAC_LEN) == 0;
		hit |= eq & (s->used >> w & 1);
	}
	return hit != 0;
}

static bool cache_lookup(struct moat_pwfile *f, const uint8_t mac[PW_MAC_LEN])
{
	pthread_mutex_lock(&f->lock);
	bool hit = cache_has_locked(f, mac);
	pthread_mutex_unlock(&f->lock);
	return hit;
}

static void cache_insert(struct moat_pwfile *f, const uint8_t mac[PW_MAC_LEN])
{
	pthread_mutex_lock(&f->lock);
	if (!f->cache) /* many files are never checked (tests, fuzzing) */
		f->cache = moat_calloc(PW_CACHE_SETS, sizeof(*f->cache));
	/* a concurrent check may have added it meanwhile */
	if (f->cache && !cache_has_locked(f, mac)) {
		struct pw_cache_set *s = cache_set(f, mac);
		memcpy(s->mac[s->next], mac, PW_MAC_LEN);
		s->used = (uint8_t)(s->used | 1u << s->next);
		s->next = (uint8_t)((s->next + 1) % PW_CACHE_WAYS);
	}
	pthread_mutex_unlock(&f->lock);
}

int moat_pwfile_check(struct moat_pwfile *f, const char *user, size_t ulen,
		      const uint8_t *pw, size_t pwlen)
{
	if (!f || (!user && ulen) || (!pw && pwlen))
		return MOAT_EDENIED;
	if (!pw)
		pw = pw_empty;
	const struct pw_entry *e = find_user(f, user ? user : "", ulen);
	if (!e) {
		dummy_verify(pw, pwlen);
		return MOAT_EDENIED;
	}
	uint8_t mac[PW_MAC_LEN];
	bool have_mac = cache_mac(f, e->user, e->ulen, pw, pwlen, mac);
	int rc;
	if (have_mac && cache_lookup(f, mac)) {
		rc = MOAT_OK;
	} else {
		rc = moat_passwd_verify(e->hash, pw, pwlen);
		if (rc == MOAT_OK && have_mac)
			cache_insert(f, mac);
		/* A mosquitto hash ($6$, $7$ with few rounds) is checked in
		 * microseconds: pay the unknown user's argon2id as well, so
		 * that timing does not tell which user names exist. */
		if (strncmp(e->hash, "$argon2id$", 10) != 0)
			dummy_verify(pw, pwlen);
	}
	OPENSSL_cleanse(mac, sizeof(mac));
	return rc == MOAT_OK ? MOAT_OK : MOAT_EDENIED;
}

/* ---- password strength ---------------------------------------------------- */

/* Common passwords and IoT factory defaults (Mirai's list among them);
 * compared case-insensitively.  Entries shorter than PW_MIN_CHARS are
 * caught by the length rule first but stay listed in case it changes. */
static const char *const common_pw[] = {
	"12345", "123456", "1234567", "12345678", "123456789", "1234567890",
	"password", "password1", "password123", "admin", "admin123",
	"admin1234", "administrator", "root", "toor", "guest", "user",
	"default", "changeme", "letmein", "qwerty", "qwerty123",
	"qwertyuiop", "abc123", "abcd1234", "iloveyou", "welcome",
	"welcome1", "mosquitto", "mqtt", "mqttpassword", "raspberry", "pi",
	"ubnt", "support", "test", "test123", "test1234", "111111",
	"000000", "888888", "666666", "654321", "11111111", "00000000",
	"12341234", "87654321", "1q2w3e4r", "1q2w3e4r5t", "1qaz2wsx",
	"passw0rd", "p@ssw0rd", "p@ssword", "secret", "master", "dragon",
	"monkey", "football", "baseball", "sunshine", "princess", "shadow",
	"superman", "trustno1", "starwars", "whatever", "7ujmko0admin",
	"7ujmko0vizxv", "vizxv", "xc3511", "xmhdipc", "juantech", "klv123",
	"klv1234", "zlxx.", "hi3518", "jvbzd", "anko", "hikvision",
	"dreambox", "realtek", "smcadmin", "meinsm", "ikwb", "system",
	"service", "supervisor", "tech", "operator", "1111", "0000", "1234",
	"54321", "123123", "123321", "internet", "homeassistant", "openhab",
	"broker",
};

static void set_reason(char *reason, size_t rsz, const char *text)
{
	if (reason && rsz)
		snprintf(reason, rsz, "%s", text);
}

static size_t utf8_chars(const char *s)
{
	size_t n = 0;
	for (; *s; s++)
		n += ((unsigned char)*s & 0xC0) != 0x80;
	return n;
}

static bool is_common(const char *pw)
{
	for (size_t i = 0; i < MOAT_ARRAY_LEN(common_pw); i++)
		if (strcasecmp(pw, common_pw[i]) == 0)
			return true;
	return false;
}

/* libpwquality with the system's pwquality.conf when there is one; our
 * own minimum length so that its verdict agrees with ours by default. */
static bool pwquality_weak(const char *user, const char *pw, char *reason,
			   size_t rsz)
{
	pwquality_settings_t *s = pwquality_default_settings();
	if (!s) {
		set_reason(reason, rsz, "cannot check the password quality");
		return true;
	}
	(void)pwquality_set_int_value(s, PWQ_SETTING_MIN_LENGTH, PW_MIN_CHARS);
	(void)pwquality_read_config(s, NULL, NULL); /* absent is fine */
	void *aux = NULL;
	int score = pwquality_check(s, pw, NULL, user, &aux);
	bool weak = score < 0;
	if (weak) {
		char buf[PWQ_MAX_ERROR_MESSAGE_LEN];
		/* frees aux when it is an allocated string */
		set_reason(reason, rsz,
			   pwquality_strerror(buf, sizeof(buf), score, aux));
	}
	pwquality_free_settings(s);
	return weak;
}

bool moat_passwd_weak(const char *user, const char *pw, char *reason,
		      size_t rsz)
{
	set_reason(reason, rsz, "");
	if (!pw || utf8_chars(pw) < PW_MIN_CHARS) {
		set_reason(reason, rsz, "too short: at least 8 characters");
		return true;
	}
	if (is_common(pw)) {
		set_reason(reason, rsz, "in the list of common passwords");
		return true;
	}
	if (user && strlen(user) >= 3 && strcasestr(pw, user)) {
		set_reason(reason, rsz, "contains the user name");
		return true;
	}
	return pwquality_weak(user, pw, reason, rsz);
}
