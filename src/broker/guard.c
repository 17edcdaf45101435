/* Login back-off and per-address connection limits; see guard.h. */
#include <openssl/rand.h>
#include <string.h>

#include "broker/guard.h"
#include "common/moat_common.h"

#define PROBE 16 /* slots looked at per key */
#define IP_MAX 64
#define IPTAB_MAX_ENTRIES ((size_t)1 << 20)

/* ---- login back-off ------------------------------------------------------ */

struct moat_guard_slot {
	uint64_t key;      /* 0 = free */
	uint64_t next_ms;  /* no attempt before this */
	uint64_t touched;  /* last use, for reuse */
	uint64_t lease_ms; /* last admission: in-flight counts expire */
	uint32_t failures;
	uint32_t inflight; /* admitted attempts not yet decided */
};

/* Checks one key may have running at once: a burst of parallel attempts
 * is admitted a few at a time, so failures register before most run. */
#define MAX_INFLIGHT 4
/* An admission whose outcome was never recorded stops counting then. */
#define LEASE_MS 30000
/* Retry delay for an attempt held back by MAX_INFLIGHT. */
#define BUSY_WAIT_MS 100
/* An address with this many failed logins on record is paced; the
 * record fades after a quiet spell this long. */
#define PACE_AFTER 10
#define PACE_FORGET_MS 600000u

static uint64_t hash_key(uint64_t seed, char kind, const char *s)
{
	uint64_t h = seed ^ 1469598103934665603ull;
	h = (h ^ (uint8_t)kind) * 1099511628211ull;
	for (; *s; s++)
		h = (h ^ (uint8_t)*s) * 1099511628211ull;
	h ^= h >> 29;
	return h ? h : 1;
}

static uint64_t random_seed(void)
{
	uint64_t v = 0;
	if (RAND_bytes((unsigned char *)&v, sizeof(v)) != 1)
		v = moat_now_ms() * 0x9E3779B97F4A7C15ull;
	return v;
}

/* Both tables: a zeroed array of a power of two >= want entries, a random
 * hash seed (so that keys cannot be chosen to collide) and a mutex. */
static void *table_new(size_t want, size_t elem, size_t *n, uint64_t *seed,
		       pthread_mutex_t *lock)
{
	*n = 1;
	while (*n < want)
		*n <<= 1;
	void *v = moat_calloc(*n, elem);
	if (v && pthread_mutex_init(lock, NULL) != 0)
		MOAT_FREE(v);
	*seed = random_seed();
	return v;
}

int moat_guard_init(struct moat_guard *g, size_t nslots)
{
	memset(g, 0, sizeof(*g));
	g->slots = table_new(nslots, sizeof(*g->slots), &g->nslots, &g->seed,
			     &g->lock);
	return g->slots ? MOAT_OK : MOAT_ENOMEM;
}

void moat_guard_cleanup(struct moat_guard *g)
{
	if (!g->slots)
		return;
	pthread_mutex_destroy(&g->lock);
	MOAT_FREE(g->slots);
}

/* The slot of key, or NULL; with create, a free slot of the probe window
 * is taken, else one with nothing on record, else the least recently
 * touched. */
static struct moat_guard_slot *find_slot(struct moat_guard *g, uint64_t key,
					 bool create, uint64_t now)
{
	struct moat_guard_slot *victim = NULL;
	for (size_t i = 0; i < PROBE; i++) {
		struct moat_guard_slot *s = &g->slots[(key + i) & (g->nslots - 1)];
		if (s->key == key)
			return s;
		bool idle = !s->key || (!s->failures && !s->inflight);
		bool vidle = victim && (!victim->key ||
					(!victim->failures && !victim->inflight));
		if (!victim || (idle && !vidle) ||
		    (idle == vidle && s->touched < victim->touched))
			victim = s;
	}
	if (!create)
		return NULL;
	memset(victim, 0, sizeof(*victim));
	victim->key = key;
	victim->touched = now;
	return victim;
}

static uint64_t backoff(uint32_t failures, uint64_t initial, uint64_t max)
{
	if (!failures || !initial)
		return 0;
	uint64_t d = initial;
	for (uint32_t i = 1; i < failures && d < max; i++)
		d *= 2;
	return MOAT_MIN(d, max);
}

/* Forget what is old: failures after a quiet spell of twice the longest
 * delay, in-flight counts after their lease. */
static void age(struct moat_guard_slot *s, uint64_t now, uint64_t max)
{
	if (s->failures && now - s->touched > 2 * max + 1000)
		s->failures = 0;
	if (s->inflight && now - s->lease_ms > LEASE_MS)
		s->inflight = 0;
}

/* The keys of an attempt: [0] the (address, user name) pair - or the
 * address alone for an attempt without a user name - and [1] the user
 * name.  Admission and back-off look at these; the address alone ([2])
 * only records failures, for pacing (moat_guard_pace). */
static void attempt_keys(const struct moat_guard *g, const char *ip,
			 const char *user, uint64_t keys[3])
{
	keys[0] = hash_key(g->seed, 'i', ip);
	keys[1] = user ? hash_key(g->seed, 'u', user) : 0;
	keys[2] = 0;
	if (user) {
		keys[2] = keys[0];
		uint64_t h = hash_key(g->seed, 'p', ip);
		for (const char *p = user; *p; p++)
			h = (h ^ (uint8_t)*p) * 1099511628211ull;
		keys[0] = h ? h : 1;
	}
}

uint64_t moat_guard_admit(struct moat_guard *g, const char *ip,
			  const char *user, uint64_t now, uint64_t initial,
			  uint64_t max)
{
	uint64_t keys[3];
	struct moat_guard_slot *s[2] = {NULL, NULL};
	uint64_t wait = 0;
	attempt_keys(g, ip, user, keys);
	pthread_mutex_lock(&g->lock);
	for (int k = 0; k < 2; k++) {
		if (!keys[k])
			continue;
		s[k] = find_slot(g, keys[k], true, now);
		age(s[k], now, max);
		if (s[k]->next_ms > now)
			wait = MOAT_MAX(wait, s[k]->next_ms - now);
		else if (s[k]->inflight >= MAX_INFLIGHT)
			wait = MOAT_MAX(wait, BUSY_WAIT_MS);
	}
	for (int k = 0; !wait && k < 2; k++) {
		if (!s[k])
			continue;
		s[k]->inflight++;
		s[k]->lease_ms = s[k]->touched = now;
		if (s[k]->failures) /* hold the next one back */
			s[k]->next_ms =
				now + backoff(s[k]->failures, initial, max);
	}
	pthread_mutex_unlock(&g->lock);
	return wait;
}

uint32_t moat_guard_failure(struct moat_guard *g, const char *ip,
			    const char *user, uint64_t now, uint64_t initial,
			    uint64_t max)
{
	uint64_t keys[3];
	uint32_t count = 0;
	attempt_keys(g, ip, user, keys);
	pthread_mutex_lock(&g->lock);
	g->failures++;
	for (int k = 0; k < 3; k++) {
		if (!keys[k])
			continue;
		struct moat_guard_slot *s = find_slot(g, keys[k], true, now);
		if (k < 2 && s->inflight)
			s->inflight--;
		if (s->failures < UINT32_MAX)
			s->failures++;
		if (k < 2) {
			s->next_ms = now + backoff(s->failures, initial, max);
			count = s->failures; /* the user's when there is one */
		}
		s->touched = now;
	}
	pthread_mutex_unlock(&g->lock);
	return count;
}

/* An admitted attempt is over: it no longer counts as in flight.  A
 * success (clear) wipes the pair's and the user's records and takes one
 * failure off the address's: neighbours behind one NAT address are never
 * locked out by one of them, and an address that mostly succeeds heals. */
static void settle(struct moat_guard *g, const char *ip, const char *user,
		   bool clear)
{
	uint64_t keys[3];
	attempt_keys(g, ip, user, keys);
	pthread_mutex_lock(&g->lock);
	for (int k = 0; k < 3; k++) {
		struct moat_guard_slot *s =
			keys[k] ? find_slot(g, keys[k], false, 0) : NULL;
		if (!s)
			continue;
		if (k == 2) {
			if (clear && s->failures)
				s->failures--;
			continue;
		}
		if (s->inflight)
			s->inflight--;
		if (clear) {
			s->failures = 0;
			s->next_ms = 0;
		}
	}
	pthread_mutex_unlock(&g->lock);
}

void moat_guard_success(struct moat_guard *g, const char *ip,
			const char *user)
{
	settle(g, ip, user, true);
}

void moat_guard_release(struct moat_guard *g, const char *ip,
			const char *user)
{
	settle(g, ip, user, false);
}

uint64_t moat_guard_pace(struct moat_guard *g, const char *ip, uint64_t now,
			 uint64_t rate)
{
	if (!rate)
		return 0;
	uint64_t key = hash_key(g->seed, 'i', ip), wait = 0;
	pthread_mutex_lock(&g->lock);
	struct moat_guard_slot *s = find_slot(g, key, false, now);
	if (s && s->failures && now - s->touched > PACE_FORGET_MS)
		s->failures = 0;
	if (s && s->failures >= PACE_AFTER) {
		if (s->next_ms > now)
			wait = s->next_ms - now;
		else
			s->next_ms = now + MOAT_MAX(1000u / rate, 1u);
	}
	pthread_mutex_unlock(&g->lock);
	return wait;
}

/* ---- connections per address ---------------------------------------------- */

struct moat_ipent {
	struct moat_ipent *next;
	uint64_t conns;
	uint64_t refill_ms; /* tokens were last refilled */
	double tokens;
	char ip[IP_MAX];
};

int moat_iptab_init(struct moat_iptab *t, size_t nbuckets)
{
	memset(t, 0, sizeof(*t));
	t->buckets = table_new(nbuckets, sizeof(*t->buckets), &t->nbuckets,
			       &t->seed, &t->lock);
	return t->buckets ? MOAT_OK : MOAT_ENOMEM;
}

void moat_iptab_cleanup(struct moat_iptab *t)
{
	if (!t->buckets)
		return;
	for (size_t i = 0; i < t->nbuckets; i++)
		while (t->buckets[i]) {
			struct moat_ipent *e = t->buckets[i];
			t->buckets[i] = e->next;
			moat_free(e);
		}
	pthread_mutex_destroy(&t->lock);
	MOAT_FREE(t->buckets);
}

static void refill(struct moat_ipent *e, uint64_t now, uint64_t rate)
{
	double cap = 2.0 * (double)rate;
	/* Workers pass their own cached clocks, which may lag one another:
	 * the refill time only moves forward, or the lag between two
	 * workers would be credited again at every alternation. */
	if (now <= e->refill_ms)
		return;
	e->tokens += (double)(now - e->refill_ms) * (double)rate / 1000.0;
	if (e->tokens > cap)
		e->tokens = cap;
	e->refill_ms = now;
}

/* Drop idle entries of a chain: no connections and a full bucket (or no
 * rate limit) means nothing is remembered that matters. */
static void prune(struct moat_iptab *t, struct moat_ipent **pp, uint64_t now)
{
	while (*pp) {
		struct moat_ipent *e = *pp;
		if (!e->conns && now > e->refill_ms &&
		    now - e->refill_ms > 60000) {
			*pp = e->next;
			moat_free(e);
			t->nentries--;
			continue;
		}
		pp = &e->next;
	}
}

static struct moat_ipent *ipent_find(struct moat_iptab *t, const char *ip)
{
	size_t b = (size_t)hash_key(t->seed, 'a', ip) & (t->nbuckets - 1);
	struct moat_ipent *e = t->buckets[b];
	while (e && strcmp(e->ip, ip))
		e = e->next;
	return e;
}

/* ip's entry, made when missing (with a full bucket of tokens); NULL
 * when the table is full or out of memory: then only the global limits
 * hold.  Called with the lock held. */
static struct moat_ipent *ipent_get(struct moat_iptab *t, const char *ip,
				    uint64_t now, uint64_t rate)
{
	size_t b = (size_t)hash_key(t->seed, 'a', ip) & (t->nbuckets - 1);
	prune(t, &t->buckets[b], now);
	struct moat_ipent *e = ipent_find(t, ip);
	if (e || t->nentries >= IPTAB_MAX_ENTRIES ||
	    !(e = moat_calloc(1, sizeof(*e))))
		return e;
	snprintf(e->ip, sizeof(e->ip), "%s", ip);
	e->tokens = 2.0 * (double)rate;
	e->refill_ms = now;
	e->next = t->buckets[b];
	t->buckets[b] = e;
	t->nentries++;
	return e;
}

enum moat_ip_verdict moat_iptab_admit(struct moat_iptab *t, const char *ip,
				      uint64_t now, uint64_t max_conns,
				      uint64_t rate, bool hold)
{
	if (!max_conns && !rate)
		return MOAT_IP_OK;
	enum moat_ip_verdict v = MOAT_IP_OK;
	pthread_mutex_lock(&t->lock);
	struct moat_ipent *e = ipent_get(t, ip, now, rate);
	if (!e) {
		pthread_mutex_unlock(&t->lock);
		return MOAT_IP_OK; /* cannot track: max_connections holds */
	}
	if (max_conns && e->conns >= max_conns) {
		v = MOAT_IP_TOO_MANY;
	} else if (rate) {
		refill(e, now, rate);
		if (e->tokens >= 1.0)
			e->tokens -= 1.0;
		else
			v = hold ? MOAT_IP_HELD : MOAT_IP_TOO_FAST;
	}
	if (v == MOAT_IP_OK || v == MOAT_IP_HELD)
		e->conns++;
	pthread_mutex_unlock(&t->lock);
	return v;
}

bool moat_iptab_rate(struct moat_iptab *t, const char *ip, uint64_t now,
		     uint64_t rate)
{
	if (!rate)
		return true;
	bool ok = true;
	pthread_mutex_lock(&t->lock);
	struct moat_ipent *e = ipent_get(t, ip, now, rate);
	if (e) {
		refill(e, now, rate);
		if (e->tokens >= 1.0)
			e->tokens -= 1.0;
		else
			ok = false;
	}
	pthread_mutex_unlock(&t->lock);
	return ok;
}

bool moat_iptab_take(struct moat_iptab *t, const char *ip, uint64_t now,
		     uint64_t rate)
{
	bool ok = true;
	pthread_mutex_lock(&t->lock);
	struct moat_ipent *e = ipent_find(t, ip);
	if (e && rate) {
		refill(e, now, rate);
		if (e->tokens >= 1.0)
			e->tokens -= 1.0;
		else
			ok = false;
	}
	pthread_mutex_unlock(&t->lock);
	return ok;
}

void moat_iptab_release(struct moat_iptab *t, const char *ip, uint64_t now)
{
	(void)now;
	pthread_mutex_lock(&t->lock);
	struct moat_ipent *e = ipent_find(t, ip);
	if (e && e->conns)
		e->conns--;
	pthread_mutex_unlock(&t->lock);
}

void moat_iptab_authenticated(struct moat_iptab *t, const char *ip,
			      uint64_t now, uint64_t rate)
{
	pthread_mutex_lock(&t->lock);
	struct moat_ipent *e = ipent_find(t, ip);
	if (e) {
		if (e->conns)
			e->conns--;
		if (rate) {
			refill(e, now, rate);
			e->tokens = MOAT_MIN(e->tokens + 1.0, 2.0 * (double)rate);
		}
	}
	pthread_mutex_unlock(&t->lock);
}
