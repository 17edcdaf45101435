/* The most recent security and leak events, for the JSON API: the log's
 * event lines (moat_log_event) kept as their JSON text in two bounded
 * rings.  Fed by the log hook on whichever thread logs; read by the HTTP
 * threads.  What the log's rate limit held back is not here either. */
#include <string.h>

#include "http_int.h"

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
