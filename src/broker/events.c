/* The most recent security and leak events, for the JSON API: the log's
 * event lines (moat_log_event) kept as their JSON text in two bounded
 * rings.  Fed by the log hook on whichever thread logs; read by the HTTP
 * threads.  What the log's rate limit held back is not here either. */
#include <string.h>

#include "http_int.h"
#include "leak/leak.h"

static void ring_push(struct moat_event_ring *r, const char *json)
{
	char *copy = moat_strdup(json);
	if (!copy)
		return; /* short of memory: the event is only in the log */
	pthread_mutex_lock(&r->lock);
	size_t i = (size_t)(r->seq % MOAT_EVENT_RING);
	moat_free(r->v[i]);
	r->v[i] = copy;
	r->seq++;
	pthread_mutex_unlock(&r->lock);
}

static void hook(void *arg, const char *event, const char *json)
{
	struct moat_events *e = arg;
	bool leak = !strncmp(event, "leak", 4);
	ring_push(leak ? &e->leaks : &e->security, json);
}

int moat__events_new(struct moat_events **out)
{
	struct moat_events *e = moat_calloc(1, sizeof(*e));
	if (!e)
		return MOAT_ENOMEM;
	pthread_mutex_init(&e->leaks.lock, NULL);
	pthread_mutex_init(&e->security.lock, NULL);
	pthread_mutex_init(&e->timeline.lock, NULL);
	pthread_mutex_init(&e->clients.lock, NULL);
	/* The first sample: nothing found yet, at start (the counters
	 * begin at zero); worker 0 takes the next ones. */
	e->timeline.wall[0] = moat_wall_s();
	e->timeline.n = 1;
	e->timeline.next_ms = moat_now_ms() + 60000u;
	moat_log_set_hook(hook, e);
	*out = e;
	return MOAT_OK;
}

void moat__events_free(struct moat_events **ep)
{
	struct moat_events *e = *ep;
	if (!e)
		return;
	moat_log_set_hook(NULL, NULL);
	for (size_t i = 0; i < MOAT_EVENT_RING; i++) {
		moat_free(e->leaks.v[i]);
		moat_free(e->security.v[i]);
	}
	pthread_mutex_destroy(&e->leaks.lock);
	pthread_mutex_destroy(&e->security.lock);
	pthread_mutex_destroy(&e->timeline.lock);
	pthread_mutex_destroy(&e->clients.lock);
	MOAT_FREE(*ep);
}

size_t moat__events_recent(struct moat_event_ring *r, size_t max,
			   bool (*each)(void *, const char *), void *arg)
{
	size_t n = 0;
	pthread_mutex_lock(&r->lock);
	uint64_t seq = r->seq;
	for (uint64_t k = 0; k < MOAT_EVENT_RING && k < seq && n < max; k++) {
		const char *j = r->v[(size_t)((seq - 1 - k) % MOAT_EVENT_RING)];
		if (j && each(arg, j))
			n++;
	}
	pthread_mutex_unlock(&r->lock);
	return n;
}

/* ---- the leak timeline -------------------------------------------------- */

void moat__events_totals(const struct moat_broker *b, uint64_t tot[32])
{
	memset(tot, 0, 32 * sizeof(tot[0]));
	for (unsigned c = 0; c < MOAT_LEAK_CATEGORY_COUNT; c++)
		tot[c] = moat__leak_findings(b, c);
}

void moat__events_tick(struct moat_broker *b, uint64_t now_ms)
{
	struct moat_leak_timeline *t = &b->http->events->timeline;
	if (now_ms < t->next_ms) /* only this thread writes next_ms */
		return;
	t->next_ms = now_ms + 60000u;
	uint64_t tot[32];
	moat__events_totals(b, tot);
	pthread_mutex_lock(&t->lock);
	size_t i = (size_t)(t->n % (MOAT_TIMELINE + 1));
	t->wall[i] = moat_wall_s();
	memcpy(t->tot[i], tot, sizeof(tot));
	t->n++;
	pthread_mutex_unlock(&t->lock);
}

void moat__events_timeline(struct moat_broker *b,
			   void (*each)(void *, int64_t, const uint64_t *),
			   void *arg)
{
	struct moat_leak_timeline *t = &b->http->events->timeline;
	uint64_t now[32];
	moat__events_totals(b, now);
	each(arg, moat_wall_s(), now);
	pthread_mutex_lock(&t->lock);
	for (uint64_t k = 0; k < t->n && k <= MOAT_TIMELINE; k++) {
		size_t i = (size_t)((t->n - 1 - k) % (MOAT_TIMELINE + 1));
		each(arg, t->wall[i], t->tot[i]);
	}
	pthread_mutex_unlock(&t->lock);
}

/* ---- findings per client ------------------------------------------------ */

static uint64_t id_hash(const char *id, size_t len)
{
	uint64_t h = 1469598103934665603ull; /* FNV-1a */
	for (size_t i = 0; i < len; i++)
		h = (h ^ (uint8_t)id[i]) * 1099511628211ull;
	return h ? h : 1;
}

static void keep_id(struct moat_leak_client *c, const char *id, size_t len)
{
	size_t n = len < sizeof(c->id) - 1 ? len : sizeof(c->id) - 1;
	while (n < len && n > 0 && ((uint8_t)id[n] & 0xC0) == 0x80)
		n--; /* not inside a UTF-8 sequence */
	memcpy(c->id, id, n);
	c->id[n] = '\0';
	c->cut = n < len;
}

void moat__events_client_finding(struct moat_broker *b, const char *id)
{
	if (!b->http || !b->http->events)
		return; /* no http listener: nothing to count for */
	size_t len = strlen(id);
	int64_t minute = moat_wall_s() / 60;
	struct moat_leak_clients *t = &b->http->events->clients;
	uint64_t h = id_hash(id, len);
	pthread_mutex_lock(&t->lock);
	struct moat_leak_client *c = NULL, *least = &t->v[0];
	for (size_t i = 0; i < MOAT_LEAK_CLIENTS; i++) {
		struct moat_leak_client *e = &t->v[i];
		if (e->hash == h) {
			c = e;
			break;
		}
		if (!e->hash || (least->hash && e->total < least->total))
			least = e;
	}
	if (!c) { /* a free slot, or the one with the fewest */
		uint64_t inherit = least->hash ? least->total : 0;
		memset(least, 0, sizeof(*least));
		least->hash = h;
		least->total = least->err = inherit;
		keep_id(least, id, len);
		c = least;
	}
	size_t slot = (size_t)((uint64_t)minute % MOAT_TIMELINE);
	if (c->minute[slot] != minute) {
		c->minute[slot] = minute;
		c->count[slot] = 0;
	}
	c->count[slot]++;
	c->total++;
	pthread_mutex_unlock(&t->lock);
}

void moat__events_clients(struct moat_broker *b,
			  struct moat_leak_client out[MOAT_LEAK_CLIENTS])
{
	struct moat_leak_clients *t = &b->http->events->clients;
	pthread_mutex_lock(&t->lock);
	memcpy(out, t->v, sizeof(t->v));
	pthread_mutex_unlock(&t->lock);
}
