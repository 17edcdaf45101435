/* psk_file: "identity:hexkey" lines, kept sorted for lookups. */
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "common/moat_common.h"
#include "pskfile.h"

struct psk_entry {
	char *id;
	size_t idlen;
	uint8_t key[MOAT_PSK_MAX];
	size_t keylen;
};

struct moat_pskfile {
	struct psk_entry *v;
	size_t n;
};

static int cmp(const void *a, const void *b)
{
	const struct psk_entry *x = a, *y = b;
	size_t n = MOAT_MIN(x->idlen, y->idlen);
	int c = memcmp(x->id, y->id, n);
	return c ? c : (x->idlen > y->idlen) - (x->idlen < y->idlen);
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* One line: MOAT_OK (e filled), MOAT_ENOTFOUND (blank or comment), or
 * MOAT_EINVAL with *why. */
static int parse_line(const char *s, size_t len, struct psk_entry *e,
		      const char **why)
{
	while (len && (s[len - 1] == '\r' || s[len - 1] == ' '))
		len--;
	if (!len || s[0] == '#')
		return MOAT_ENOTFOUND;
	const char *colon = memchr(s, ':', len);
	if (!colon || colon == s) {
		*why = "expected identity:hexkey";
		return MOAT_EINVAL;
	}
	size_t idlen = (size_t)(colon - s), hl = len - idlen - 1;
	const char *hex = colon + 1;
	if (idlen > MOAT_PSK_IDENTITY_MAX ||
	    !moat_utf8_valid((const uint8_t *)s, idlen)) {
		*why = "identity longer than 128 bytes or not UTF-8";
		return MOAT_EINVAL;
	}
	if (!hl || hl % 2 || hl / 2 > MOAT_PSK_MAX) {
		*why = "key must be 1 to 64 bytes in hex";
		return MOAT_EINVAL;
	}
	for (size_t i = 0; i < hl; i += 2) {
		int hi = hexval(hex[i]), lo = hexval(hex[i + 1]);
		if (hi < 0 || lo < 0) {
			*why = "key is not hexadecimal";
			return MOAT_EINVAL;
		}
		e->key[i / 2] = (uint8_t)(hi << 4 | lo);
	}
	e->keylen = hl / 2;
	e->idlen = idlen;
	e->id = moat_strndup(s, idlen);
	return e->id ? MOAT_OK : MOAT_ENOMEM;
}

int moat_pskfile_parse(const char *text, size_t len, struct moat_pskfile **out,
		       char *err, size_t errsz)
{
	struct moat_pskfile *f = moat_calloc(1, sizeof(*f));
	size_t cap = 0, lineno = 0;
	*out = NULL;
	if (!f)
		return MOAT_ENOMEM;
	for (size_t off = 0; off < len;) {
		const char *nl = memchr(text + off, '\n', len - off);
		size_t ll = nl ? (size_t)(nl - (text + off)) : len - off;
		const char *why = NULL;
		struct psk_entry e = {0};
		lineno++;
		int rc = parse_line(text + off, ll, &e, &why);
		off += ll + 1;
		if (rc == MOAT_ENOTFOUND)
			continue;
		if (rc == MOAT_OK && f->n == cap) {
			size_t nc = cap ? cap * 2 : 8;
			struct psk_entry *v = moat_realloc(f->v, nc * sizeof(*v));
			if (!v) {
				moat_free(e.id);
				rc = MOAT_ENOMEM;
			} else {
				f->v = v;
				cap = nc;
			}
		}
		if (rc != MOAT_OK) {
			snprintf(err, errsz, "line %zu: %s", lineno,
				 why ? why : "out of memory");
			moat_pskfile_free(f);
			return rc;
		}
		f->v[f->n++] = e;
	}
	if (f->n)
		qsort(f->v, f->n, sizeof(*f->v), cmp);
	for (size_t i = 1; i < f->n; i++) {
		if (!cmp(&f->v[i - 1], &f->v[i])) {
			snprintf(err, errsz, "identity listed twice");
			moat_pskfile_free(f);
			return MOAT_EINVAL;
		}
	}
	*out = f;
	return MOAT_OK;
}

int moat_pskfile_load(const char *path, struct moat_pskfile **out, char *err,
		      size_t errsz)
{
	char *text = NULL, e[400];
	size_t len = 0;
	int rc = moat_file_read(path, MOAT_PSKFILE_MAX_BYTES, true, &text, &len,
				err, errsz);
	if (rc)
		return rc;
	rc = moat_pskfile_parse(text, len, out, e, sizeof(e));
	if (rc)
		snprintf(err, errsz, "%s: %s", path, e);
	OPENSSL_cleanse(text, len);
	moat_free(text);
	return rc;
}

void moat_pskfile_free(struct moat_pskfile *f)
{
	if (!f)
		return;
	for (size_t i = 0; i < f->n; i++) {
		moat_free(f->v[i].id);
		OPENSSL_cleanse(f->v[i].key, sizeof(f->v[i].key));
	}
	moat_free(f->v);
	moat_free(f);
}

size_t moat_pskfile_find(const struct moat_pskfile *f, const char *id,
			 size_t len, uint8_t key[MOAT_PSK_MAX])
{
	struct psk_entry k = {.id = (char *)(uintptr_t)id, .idlen = len};
	const struct psk_entry *e =
		f ? bsearch(&k, f->v, f->n, sizeof(*f->v), cmp) : NULL;
	if (!e)
		return 0;
	memcpy(key, e->key, e->keylen);
	return e->keylen;
}
