/* moatd broker: public entry points used by apps/moatd. */
#ifndef MOAT_BROKER_H
#define MOAT_BROKER_H

#include "config/cfg.h"

struct moat_broker;

/* Create the broker: bind listeners, create workers (not started).
 * cfg is copied.  Returns MOAT_OK and *out, or an error (logged). */
int moat_broker_new(const struct moat_config *cfg, struct moat_broker **out);
/* As moat_broker_new, and calls before_store(arg) (when not NULL) once
 * the listeners are bound and the password file, ACL, certificates and
 * keys are loaded, before the persistence store is opened and before any
 * thread starts: moatd drops root there.  A non-MOAT_OK return fails the
 * start with that code. */
int moat_broker_new_hook(const struct moat_config *cfg,
			 int (*before_store)(void *arg), void *arg,
			 struct moat_broker **out);
/* Start worker threads. */
int moat_broker_start(struct moat_broker *b);
/* The index of a worker whose event loop has not come round for more
 * than max_ms (hung), or -1 when all are turning (they wake at least
 * every 500 ms).  For moatd's systemd watchdog; any thread. */
int moat_broker_stalled(struct moat_broker *b, uint64_t max_ms);
/* Ask every worker to stop (async-signal-unsafe; call from a thread). */
void moat_broker_stop(struct moat_broker *b);
/* Apply a new configuration (SIGHUP): password file, ACL, certificates and
 * limits, without dropping connections.  On any error nothing changes and
 * err says why.  Listener addresses and the settings that size existing
 * structures (logged) need a restart. */
int moat_broker_reload(struct moat_broker *b, const struct moat_config *cfg,
		       char *err, size_t errsz);
/* Load what the configuration names (password file, ACL, certificates
 * and keys, the leak detector) as a start would, without binding or
 * starting anything: moatd -t.  MOAT_OK, or an error with err set. */
int moat_broker_check_files(const struct moat_config *cfg, char *err,
			    size_t errsz);
/* Join workers and free everything. */
void moat_broker_free(struct moat_broker *b);

#endif
