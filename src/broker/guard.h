/* Shared, bounded tables that defend logins and accepts (guard.c):
 *
 * moat_guard  - login back-off per (IP address, user name) pair and per
 *               user name (IPv6 addresses: per /64): after a failure the
 *               next attempt for either key waits initial ms, doubling per
 *               further failure up to max; a success clears both.  Failures
 *               are also counted per address, but never hold a login back:
 *               an address with many on record is only paced (its password
 *               checks start at a bounded rate, moat_guard_pace), so one
 *               bad device behind a carrier NAT cannot lock its neighbours
 *               out.  At most 4 attempts per key are checked at once and,
 *               once failures are on record, admitting one reserves the
 *               next slot, so parallel connections gain little.  A fixed
 *               number of slots bounds memory (an idle or the least
 *               recently used one in a probe window is reused).
 * moat_iptab  - connections and accept rate per IP address (exact counts;
 *               an entry lives while it has connections or tokens to
 *               refill); a second table counts authenticated connections
 *               per user name, a third CoAP requests per IP address
 *               (moat_iptab_rate). */
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
/* May a password check for an address start now?  0 (and the start is
 * recorded) unless the address has many failed logins on record and
 * started one less than 1/rate s ago; then the ms to wait.  rate 0 = no
 * pacing. */
uint64_t moat_guard_pace(struct moat_guard *g, const char *ip, uint64_t now,
			 uint64_t rate);

struct moat_ipent;

struct moat_iptab {
	pthread_mutex_t lock;
	struct moat_ipent **buckets;
	size_t nbuckets; /* a power of two */
	size_t nentries;
	uint64_t seed;
};

enum moat_ip_verdict {
	MOAT_IP_OK = 0,
	MOAT_IP_TOO_MANY,
	MOAT_IP_TOO_FAST,
	MOAT_IP_HELD, /* counted, but to wait for a token (moat_iptab_take) */
};

int moat_iptab_init(struct moat_iptab *t, size_t nbuckets);
void moat_iptab_cleanup(struct moat_iptab *t);
/* A new connection from ip: counts it unless a limit refuses it (0 = no
 * limit).  Rate: tokens refill at rate per second, up to 2 * rate; with
 * hold, a connection beyond the rate (but within max_conns) is counted
 * and MOAT_IP_HELD: it waits for a token instead of being refused. */
enum moat_ip_verdict moat_iptab_admit(struct moat_iptab *t, const char *ip,
				      uint64_t now, uint64_t max_conns,
				      uint64_t rate, bool hold);
/* A token for a held connection from ip: true when it may go on now. */
bool moat_iptab_take(struct moat_iptab *t, const char *ip, uint64_t now,
		     uint64_t rate);
/* Rate only (nothing counted): a token of ip's bucket (rate per second,
 * up to 2 * rate) for one more event; false when there is none.  rate 0
 * = no limit. */
bool moat_iptab_rate(struct moat_iptab *t, const char *ip, uint64_t now,
		     uint64_t rate);
/* A counted connection from ip closed. */
void moat_iptab_release(struct moat_iptab *t, const char *ip, uint64_t now);
/* A counted connection from ip authenticated: it no longer counts, and
 * its accept token is given back (up to the bucket's size, 2 * rate). */
void moat_iptab_authenticated(struct moat_iptab *t, const char *ip,
			      uint64_t now, uint64_t rate);

#endif
