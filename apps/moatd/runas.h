/* The process side of running as a service: the user moatd drops to when
 * started as root (runas.c) and systemd's readiness and watchdog
 * notifications (sdnotify.c). */
#ifndef MOATD_RUNAS_H
#define MOATD_RUNAS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "config/cfg.h"

/* Who start-up becomes once the listeners are bound and the files open. */
struct moatd_runas {
	bool drop;     /* started as root and going to a non-root user */
	bool as_root;  /* started as root and staying: "user root" */
	uid_t uid;
	gid_t gid;
	char name[64];
};

/* Decide from cfg->user and the effective uid, before anything is bound,
 * so that a wrong user fails early.  Not root: nothing to do.  Root: the
 * user's uid and primary group; the default user "moat" falls back to
 * "nobody" when it does not exist (a warning), any other missing user is
 * an error; "root" stays root.  MOAT_OK, or MOAT_EINVAL with err set. */
int moatd_runas_resolve(const struct moat_config *cfg, struct moatd_runas *ra,
			char *err, size_t errsz);
/* Become ra's user: supplementary groups cleared, then gid, then uid; and
 * check that root cannot be regained.  Call before any thread starts.
 * No-op unless ra->drop.  MOAT_OK, or MOAT_EDENIED with err set. */
int moatd_runas_drop(const struct moatd_runas *ra, char *err, size_t errsz);

/* Before the drop, with persistence on: create persistence_location
 * (0700) for ra's user when it is missing, and give it the database files
 * an earlier start as root left there (root-owned files in a directory
 * the user owns).  An existing directory is never given away. */
void moatd_runas_own_store(const struct moat_config *cfg,
			   const struct moatd_runas *ra);

/* sd_notify(3)'s datagram protocol: send state ("READY=1", ...) to the
 * socket in $NOTIFY_SOCKET.  No-op (0) without it; -1 when sending
 * failed. */
int moatd_notify(const char *state);
/* The watchdog interval systemd asked for ($WATCHDOG_USEC, when
 * $WATCHDOG_PID is unset or ours), in microseconds; 0 = none. */
uint64_t moatd_watchdog_usec(void);

#endif
