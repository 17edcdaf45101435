/* Tracks (docs/leaks.md, "Tracks"): what no single message shows.  A
 * client that publishes precise positions again and again is tracked
 * (`location_track`); a client whose messages carry health readings on
 * one topic and a person identifier on another links them
 * (`linked_health`).  Each worker keeps a small table of clients (its
 * own: a client's messages are inspected by the worker serving it),
 * direct-mapped by a hash of the client id, so the state is bounded
 * whatever the number of clients; a slot taken by another client starts
 * over. */
#include <string.h>

#include "broker_int.h"
#include "leak/leak.h"

#define TRACK_SLOTS 1024
#define TRACK_POSITIONS 5          /* precise positions ... */
#define TRACK_WINDOW_MS 600000u    /* ... within 10 minutes */

struct track {
	uint64_t id;       /* hash of the client id; 0: empty */
	uint64_t win_ms;   /* start of the position window */
	uint32_t positions;
	uint32_t health_topic, person_topic; /* topic hashes; 0: none */
	bool track_reported, linked_reported;
};

struct moat_leak_tracks {
	struct track t[TRACK_SLOTS];
};

static uint64_t hash(const uint8_t *p, size_t n, uint64_t h)
{
	for (size_t i = 0; i < n; i++)
		h = (h ^ p[i]) * UINT64_C(1099511628211); /* FNV-1a */
	return h ? h : 1;
}

void moat__leak_tracks_free(struct moat_worker *w)
{
	moat_free(w->leak_tracks);
	w->leak_tracks = NULL;
}

unsigned moat__leak_track(struct moat_worker *w, const char *cid,
			  const uint8_t *topic, size_t tlen,
			  uint32_t categories, bool precise, uint64_t now_ms)
{
	const uint32_t person = MOAT_LEAK_BIT(MOAT_LEAK_PERSON) |
				MOAT_LEAK_BIT(MOAT_LEAK_EMAIL) |
				MOAT_LEAK_BIT(MOAT_LEAK_NATIONAL_ID);
	bool health = categories & MOAT_LEAK_BIT(MOAT_LEAK_HEALTH);
	bool who = (categories & person) != 0;
	if (!precise && !health && !who)
		return 0;
	if (!w->leak_tracks) {
		w->leak_tracks = moat_calloc(1, sizeof(*w->leak_tracks));
		if (!w->leak_tracks)
			return 0;
	}
	uint64_t id = hash((const uint8_t *)cid, strlen(cid),
			   UINT64_C(14695981039346656037));
	struct track *t = &w->leak_tracks->t[id % TRACK_SLOTS];
	if (t->id != id) {
		memset(t, 0, sizeof(*t));
		t->id = id;
	}
	unsigned out = 0;
	uint32_t th = (uint32_t)hash(topic, tlen, 2166136261u);
	if (precise) {
		if (!t->positions || now_ms - t->win_ms > TRACK_WINDOW_MS) {
			t->win_ms = now_ms;
			t->positions = 0;
			t->track_reported = false;
		}
		if (++t->positions >= TRACK_POSITIONS && !t->track_reported) {
			t->track_reported = true;
			out |= MOAT_LEAK_TRACK_LOCATION;
		}
	}
	if (health)
		t->health_topic = th;
	if (who)
		t->person_topic = th;
	if (t->health_topic && t->person_topic &&
	    t->health_topic != t->person_topic && !t->linked_reported) {
		t->linked_reported = true;
		out |= MOAT_LEAK_TRACK_LINKED;
	}
	return out;
}
