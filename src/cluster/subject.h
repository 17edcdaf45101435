/* MQTT topics and filters as NATS subjects (docs/cluster.md, "Subject
 * mapping").  Pure functions: no I/O, no allocation, no globals.
 *
 * A topic becomes   PREFIX . CLASS . TOKEN . TOKEN ...
 *   PREFIX  the caller's own tokens (e.g. "moat.m"); may be empty, then
 *           the subject starts with CLASS (retained-message KV keys).
 *   CLASS   "t" for a topic whose first level does not start with '$',
 *           "d" for one that does: a filter whose first level is '+' or
 *           '#' maps under "t" only, so it never matches a '$' topic
 *           [MQTT-4.7.2-1], although NATS wildcards match any token.
 *   TOKEN   one per topic level, escaped byte by byte:
 *             A-Z a-z 0-9 '_' '-'  stay as they are;
 *             every other byte b   becomes "=HH" (two upper-case hex
 *                                  digits): '.', '*', '>', '$', '=',
 *                                  whitespace, '/'-free bytes of UTF-8 ...
 *             the empty level      becomes the token "=" alone.
 *   The escaping is canonical (one subject per topic) and reversible;
 *   its alphabet [A-Za-z0-9_=-] and '.' is also valid in JetStream
 *   key-value keys.
 *
 * A filter maps the same way, with '+' -> "*" and a trailing '#' -> ">".
 * MQTT's "a/#" also matches "a" itself; NATS's "a.>" does not, so such a
 * filter needs a second subscription to its parent subject, which is the
 * filter subject without its last two bytes (".>"): see parent_len.
 *
 * Bounds: NATS carries the subject in a protocol control line (PUB, HPUB,
 * MSG, HMSG), limited by the server's max_control_line (4096 bytes by
 * default) together with the reply subject, sid and sizes (JetStream ack
 * replies run to ~100 bytes).  Subjects are therefore limited to
 * MOAT_SUBJECT_MAX bytes; a longer topic cannot cross nodes (MOAT_ELIMIT).
 * Escaping grows a level by up to 3x, so an ASCII topic of ~1 KB of
 * punctuation or UTF-8 still fits, and plain [A-Za-z0-9_-] topics up to
 * ~3.5 KB do. */
#ifndef MOAT_CLUSTER_SUBJECT_H
#define MOAT_CLUSTER_SUBJECT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Longest subject (prefix included) built or accepted, in bytes. */
#define MOAT_SUBJECT_MAX 3584
/* A buffer that holds any subject and its NUL. */
#define MOAT_SUBJECT_BUF (MOAT_SUBJECT_MAX + 1)
/* The escape byte. */
#define MOAT_SUBJECT_ESC '='

/* Is prefix a usable subject prefix: "" or dot-separated non-empty tokens
 * of [A-Za-z0-9_-] only (no wildcards, no escapes)? */
bool moat_subject_prefix_valid(const char *prefix);

/* Escape the bytes s[0..len) as ONE token (any bytes, including none):
 * for share group names, client ids, node ids in subjects and KV keys.
 * Writes a NUL-terminated token to out[0..cap).  Returns its length, or
 * MOAT_ELIMIT if it does not fit in cap-1 bytes or MOAT_SUBJECT_MAX. */
int moat_subject_token(const uint8_t *s, size_t len, char *out, size_t cap);

/* Inverse of moat_subject_token: unescape the token tok[0..len) into
 * out[0..cap) (not NUL-terminated).  Returns the byte count, or
 * MOAT_EMALFORMED if tok is not a canonical token (the exact image of
 * moat_subject_token), or MOAT_ELIMIT if out is too small. */
int moat_subject_untoken(const char *tok, size_t len, uint8_t *out,
			 size_t cap);

/* The subject of a topic name (non-empty, no wildcards, valid UTF-8
 * without U+0000).  prefix: see moat_subject_prefix_valid.  Writes a
 * NUL-terminated subject to out[0..cap); returns its length, or
 * MOAT_EINVAL (bad topic or prefix) or MOAT_ELIMIT (too long). */
int moat_subject_from_topic(const char *prefix, const uint8_t *topic,
			    size_t len, char *out, size_t cap);

/* Inverse of moat_subject_from_topic: the topic of subject s[0..slen),
 * which must start with prefix (and '.', unless prefix is "").  Writes
 * the topic to out[0..cap) (not NUL-terminated); returns its length, or
 * MOAT_EMALFORMED if s is not the exact image of a valid topic under
 * prefix (a peer on NATS cannot make a node deliver a topic it could not
 * have published), or MOAT_ELIMIT if out is too small. */
int moat_subject_to_topic(const char *prefix, const char *s, size_t slen,
			  uint8_t *out, size_t cap);

/* The subject of a topic filter (valid per moat_topic_filter_valid, valid
 * UTF-8; no "$share/group/" in front: strip it first).  Writes a
 * NUL-terminated subject to out[0..cap) and returns its length, or
 * MOAT_EINVAL / MOAT_ELIMIT as moat_subject_from_topic.  *parent_len is
 * set to the length of the parent subject (out[0..*parent_len), the same
 * bytes without the final ".>") when the filter ends in "/#" and must also
 * match its parent level, else to 0.  The union of the one or two
 * subjects matches exactly the subjects of the topics the filter
 * matches. */
int moat_subject_from_filter(const char *prefix, const uint8_t *filter,
			     size_t len, char *out, size_t cap,
			     size_t *parent_len);

/* NATS's own matching of a literal subject against a subscription
 * subject ('*' one token, '>' one or more trailing tokens), for tests and
 * for checking what a node receives against what it asked for. */
bool moat_subject_matches(const char *sub, size_t sublen, const char *s,
			  size_t slen);

#endif
