/* Which worker is a client id's home, and each worker's table of the
 * sessions homed on it (open hashing by client id). */
#include <string.h>

#include "broker_int.h"

static uint64_t id_hash(const uint8_t *p, size_t len)
{
	uint64_t h = 1469598103934665603ull;
	for (size_t i = 0; i < len; i++) {
		h ^= p[i];
		h *= 1099511628211ull;
	}
	return h;
}

struct moat_worker *moat_worker_home(struct moat_broker *b, const uint8_t *id,
				     size_t len)
{
	return &b->workers[id_hash(id, len) % b->nworkers];
}

/* ---- session table ------------------------------------------------------ */

static size_t bucket_of(const struct moat_worker *w, const uint8_t *id,
			size_t len)
{
	/* Different bits from the home choice, which used the low ones. */
	return (size_t)((id_hash(id, len) >> 16) % w->nbuckets);
}

struct moat_session *moat_worker_find_session(struct moat_worker *w,
					      const uint8_t *id, size_t len)
{
	if (!w->nbuckets)
		return NULL;
	for (struct moat_session *s = w->sessions[bucket_of(w, id, len)]; s;
	     s = s->hnext)
		if (s->client_id_len == len && !memcmp(s->client_id, id, len))
			return s;
	return NULL;
}

static void rehash(struct moat_worker *w)
{
	size_t nb = w->nbuckets ? w->nbuckets * 2 : 64;
	struct moat_session **v = moat_calloc(nb, sizeof(*v));
	if (!v)
		return; /* keep the old table: longer chains, still correct */
	struct moat_session **old = w->sessions;
	size_t oldn = w->nbuckets;
	w->sessions = v;
	w->nbuckets = nb;
	for (size_t i = 0; i < oldn; i++) {
		struct moat_session *s = old[i];
		while (s) {
			struct moat_session *next = s->hnext;
			size_t bk = bucket_of(w, (const uint8_t *)s->client_id,
					      s->client_id_len);
			s->hnext = v[bk];
			v[bk] = s;
			s = next;
		}
	}
	moat_free(old);
}

int moat_worker_add_session(struct moat_worker *w, struct moat_session *s)
{
	if (w->nsessions >= w->nbuckets * 2)
		rehash(w);
	if (!w->nbuckets)
		return MOAT_ENOMEM; /* not even a first table */
	size_t bk = bucket_of(w, (const uint8_t *)s->client_id,
			      s->client_id_len);
	s->hnext = w->sessions[bk];
	w->sessions[bk] = s;
	w->nsessions++;
	MOAT_STAT_ADD(w->b, sessions, 1);
	return MOAT_OK;
}

void moat_worker_remove_session(struct moat_worker *w,
				struct moat_session *s)
{
	if (!w->nbuckets)
		return; /* no table yet (a CoAP observer is never in one) */
	size_t bk = bucket_of(w, (const uint8_t *)s->client_id,
			      s->client_id_len);
	for (struct moat_session **pp = &w->sessions[bk]; *pp;
	     pp = &(*pp)->hnext) {
		if (*pp == s) {
			*pp = s->hnext;
			s->hnext = NULL;
			w->nsessions--;
			return;
		}
	}
}
