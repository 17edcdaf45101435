/* Shared, bounded tables that defend logins and accepts (guard.c):
 *
 * moat_guard  - login back-off per IP address (IPv6: per /64) and per user
 *               name: after a failure the next attempt for either key
 *               waits initial ms, doubling per further failure up to max; a
 *               success clears the user's record (an address's fades after
 *               a quiet spell).  At most 4 attempts per key are checked at
 *               once and, once failures are on record, admitting one
 *               reserves the next slot, so parallel connections gain
 *               little.  A fixed number of slots bounds memory (an idle or
 *               the least recently used one in a probe window is reused).
 * moat_iptab  - connections and accept rate per IP address (exact counts;
 *               an entry lives while it has connections or tokens to
 *               refill). */
#ifndef MOAT_BROKER_GUARD_H
#define MOAT_BROKER_GUARD_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct moat_guard_slot;

struct moat_guard {
	pthread_mutex_t lock;
	struct moat_guard_slot *slots;
	size_t nslots; /* a power of two */
	uint64_t seed;
	uint64_t failures; /* total, for $SYS */
};

int moat_guard_init(struct moat_guard *g, size_t nslots);
void moat_guard_cleanup(struct moat_guard *g);
/* 0 when an attempt for (ip, user) may run now (the next one is then held
 * back while failures are on record); otherwise the ms to wait first.
 * user may be NULL. */
uint64_t moat_guard_admit(struct moat_guard *g, const char *ip,
			  const char *user, uint64_t now, uint64_t initial,
			  uint64_t max);
/* Record a failed login; returns the failure count now on record for the
 * user (or the address when there is no user). */
uint32_t moat_guard_failure(struct moat_guard *g, const char *ip,
			    const char *user, uint64_t now, uint64_t initial,
			    uint64_t max);
void moat_guard_success(struct moat_guard *g, const char *ip,
			const char *user);
/* An admitted attempt ended undecided (refused for another reason). */
void moat_guard_release(struct moat_guard *g, const char *ip,
			const char *user);

struct moat_ipent;

struct moat_iptab {
	pthread_mutex_t lock;
	struct moat_ipent **buckets;
	size_t nbuckets; /* a power of two */
	size_t nentries;
	uint64_t seed;
};

enum moat_ip_verdict { MOAT_IP_OK = 0, MOAT_IP_TOO_MANY, MOAT_IP_TOO_FAST };

int moat_iptab_init(struct moat_iptab *t, size_t nbuckets);
void moat_iptab_cleanup(struct moat_iptab *t);
/* A new connection from ip: counts it unless a limit refuses it (0 = no
 * limit).  Rate: tokens refill at rate per second, up to 2 * rate. */
enum moat_ip_verdict moat_iptab_admit(struct moat_iptab *t, const char *ip,
				      uint64_t now, uint64_t max_conns,
				      uint64_t rate);
/* A counted connection from ip closed. */
void moat_iptab_release(struct moat_iptab *t, const char *ip, uint64_t now);

#endif
