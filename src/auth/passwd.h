/* Password files (mosquitto-compatible "user:hash" lines) and password
 * hashing.  New hashes are argon2id (libargon2); mosquitto's "$6$" (salted
 * SHA-512) and "$7$" (PBKDF2-SHA512) hashes are verified so that existing
 * files keep working.  All comparisons are constant-time. */
#ifndef MOAT_AUTH_PASSWD_H
#define MOAT_AUTH_PASSWD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct moat_pwfile; /* immutable once loaded; safe to share between threads */

/* Largest password file accepted, in bytes. */
#define MOAT_PWFILE_MAX_BYTES ((size_t)64 * 1024 * 1024)
/* Longest encoded hash moat_passwd_hash writes, with its NUL. */
#define MOAT_PASSWD_HASH_MAX 160

/* Load a password file.  The file must not be a symlink nor open to other
 * users (moat_file_check_private).  Any malformed line fails the whole load
 * (fail closed), with err = "PATH:LINE: reason".  MOAT_OK or an error.
 *
 * Syntax: "user:hash" lines; blank lines (spaces and tabs only) and lines
 * starting with '#' are ignored; "\r\n" is accepted.  Refused: a line over
 * 64 KiB, no ':', an empty user or hash, a user that is not UTF-8 or holds
 * control characters, a duplicate user, more than 1,000,000 users, and any
 * hash that is not well-formed $argon2id$ (v=19, m <= 256 MiB, t <= 16,
 * p <= 16), $7$ (1..10,000,000 iterations) or $6$.  The bounds keep a
 * hostile file from stalling the workers.  Errors never quote a hash. */
int moat_pwfile_load(const char *path, struct moat_pwfile **out, char *err,
		     size_t errsz);
/* The same from text in memory (tests, fuzzing); name is used in errors. */
int moat_pwfile_parse(const char *text, size_t len, const char *name,
		      struct moat_pwfile **out, char *err, size_t errsz);
void moat_pwfile_free(struct moat_pwfile *f);
size_t moat_pwfile_count(const struct moat_pwfile *f);
bool moat_pwfile_has_user(const struct moat_pwfile *f, const char *user,
			  size_t ulen);

/* MOAT_OK when user exists and the password matches its hash, MOAT_EDENIED
 * otherwise (an unknown user costs the same time as a wrong password).
 * Thread-safe.  Successful checks are remembered (keyed MAC of user and
 * password under a random per-file key, bounded) so that reconnect storms
 * do not re-run argon2id. */
int moat_pwfile_check(struct moat_pwfile *f, const char *user, size_t ulen,
		      const uint8_t *pw, size_t pwlen);

/* Encode a new argon2id hash of pw into out ("$argon2id$v=19$m=...").
 * MOAT_OK or an error. */
int moat_passwd_hash(const uint8_t *pw, size_t len, char *out, size_t outsz);
/* Verify pw against an encoded hash ($argon2id$, $6$ or $7$).  MOAT_OK on a
 * match, MOAT_EDENIED on a mismatch, MOAT_EINVAL for an unknown or malformed
 * encoding. */
int moat_passwd_verify(const char *encoded, const uint8_t *pw, size_t len);

/* Is pw too weak to accept for user?  Returns false and leaves reason empty
 * when acceptable; true with a one-line reason ("too short: ...", "in the
 * list of common passwords", "contains the user name", or libpwquality's
 * verdict) otherwise. */
bool moat_passwd_weak(const char *user, const char *pw, char *reason,
		      size_t rsz);

#endif
