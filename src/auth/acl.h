/* ACL files in mosquitto's acl_file syntax, deny by default.
 *
 *   # comment
 *   topic [read|write|readwrite|deny] TOPIC   before any "user": anonymous
 *   user NAME                                 starts NAME's section
 *   topic [read|write|readwrite|deny] TOPIC   in a section: that user
 *   pattern [read|write|readwrite|deny] TOPIC every client; %u = user name,
 *                                             %c = client id
 *   clientid ID                               (moat) in a user section: the
 *                                             client ids NAME may use; a
 *                                             trailing '*' matches any rest;
 *                                             %u = NAME
 *
 * NAME and TOPIC are the rest of the line (they may contain spaces); a
 * TOPIC with spaces needs its access word, so that a misspelt one is an
 * error rather than part of the topic.  No access word means readwrite.
 * A section may be reopened by a later "user" line with the same NAME.
 *
 * A subscription filter is granted only when one read grant covers every
 * topic it can match (so "#" needs "#" or the equivalent "+/#", and
 * "$SYS/#" needs "$SYS/#": a leading wildcard never matches '$' topics)
 * and no deny rule covers it; each message is checked again at delivery,
 * where a deny rule that matches its topic wins.  A deny rule always
 * wins, wherever it is in the file.  A pattern whose %u or %c would
 * substitute a value containing '+', '#' or '/', or an absent or empty
 * one, does not apply to that client (CVE-2017-7650).
 *
 * A malformed line (unknown keyword or access word, missing or invalid
 * topic filter, invalid UTF-8, "clientid" outside a section or "clientid
 * *" alone, a line over 64 KiB, more than 1000000 topic/pattern/user/
 * clientid lines) fails the whole load.  An empty file denies all. */
#ifndef MOAT_AUTH_ACL_H
#define MOAT_AUTH_ACL_H

#include <stdbool.h>
#include <stddef.h>

#define MOAT_ACL_MAX_BYTES ((size_t)64 * 1024 * 1024)

enum moat_acl_access {
	MOAT_ACL_READ = 1,      /* receive a message published on a topic */
	MOAT_ACL_WRITE = 2,     /* publish on a topic (also a will topic) */
	MOAT_ACL_SUBSCRIBE = 4, /* subscribe with a filter */
};

struct moat_acl; /* immutable once loaded; safe to share between threads */

/* Load an ACL file (refused when a symlink or open to other users).  A
 * malformed line fails the whole load with err = "PATH:LINE: reason". */
int moat_acl_load(const char *path, struct moat_acl **out, char *err,
		  size_t errsz);
int moat_acl_parse(const char *text, size_t len, const char *name,
		   struct moat_acl **out, char *err, size_t errsz);
void moat_acl_free(struct moat_acl *acl);

/* May the client (user NULL = anonymous) access topic (a name for READ and
 * WRITE; a filter for SUBSCRIBE, with any "$share/GROUP/" prefix already
 * removed)?  topic need not be NUL-terminated. */
bool moat_acl_allows(const struct moat_acl *acl, const char *user,
		     const char *clientid, const char *topic, size_t len,
		     enum moat_acl_access access);
/* After moat_acl_allows(SUBSCRIBE) granted filter: true when every message
 * the filter can match is also readable (no applicable deny rule matches
 * any of them), so that delivery needs no per-message check.  False, too,
 * for a filter no read grant covers. */
bool moat_acl_filter_fully_readable(const struct moat_acl *acl,
				    const char *user, const char *clientid,
				    const char *filter, size_t len);
/* May user (NULL = anonymous) use clientid?  Claims (clientid lines) can
 * overlap; the most specific one matching the id decides (an exact id over
 * any prefix, a longer prefix over a shorter).  False when that claim is
 * another user's, or when the user's section lists client ids and none
 * matches; a user without clientid lines may use ids nobody claims. */
bool moat_acl_clientid_allowed(const struct moat_acl *acl, const char *user,
			       const char *clientid);
/* Do any pattern rules substitute %u / %c?  (Then a client's answers depend
 * on its user name / client id, not only on its section.) */
bool moat_acl_uses_user_pattern(const struct moat_acl *acl);
bool moat_acl_uses_clientid_pattern(const struct moat_acl *acl);
/* Number of topic and pattern rules. */
size_t moat_acl_rule_count(const struct moat_acl *acl);

#endif
