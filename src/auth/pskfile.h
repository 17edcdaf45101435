/* Pre-shared keys for DTLS (CoAP over DTLS): mosquitto's psk_file format,
 * one "identity:hexkey" per line; '#' comments and blank lines ignored.
 * The identity is the client's user name for the ACL. */
#ifndef MOAT_PSKFILE_H
#define MOAT_PSKFILE_H

#include <stddef.h>
#include <stdint.h>

#define MOAT_PSK_MAX 64		 /* key bytes */
#define MOAT_PSK_IDENTITY_MAX 128 /* identity bytes */
#define MOAT_PSKFILE_MAX_BYTES ((size_t)16 * 1024 * 1024)

struct moat_pskfile;

/* Load a private file (refused when a symlink or open to other users);
 * a malformed line is an error naming it.  MOAT_OK or an error with err
 * set. */
int moat_pskfile_load(const char *path, struct moat_pskfile **out, char *err,
		      size_t errsz);
int moat_pskfile_parse(const char *text, size_t len, struct moat_pskfile **out,
		       char *err, size_t errsz);
void moat_pskfile_free(struct moat_pskfile *f);
/* The key of identity id (len bytes): its length (> 0) copied into
 * key[0..MOAT_PSK_MAX), or 0 when the identity is unknown. */
size_t moat_pskfile_find(const struct moat_pskfile *f, const char *id,
			 size_t len, uint8_t key[MOAT_PSK_MAX]);

#endif
