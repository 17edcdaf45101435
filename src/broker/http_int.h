/* Internal to the http listeners: http.c (daemons, routing, /metrics and
 * the probes), http_common.c (responses, logins, events), http_api.c (the
 * JSON API) and events.c (recent events). */
#ifndef MOAT_HTTP_INT_H
#define MOAT_HTTP_INT_H

#include <microhttpd.h>

#include "broker_int.h"

/* ---- recent events (events.c) ------------------------------------------ */
#define MOAT_EVENT_RING 256

struct moat_event_ring {
	pthread_mutex_t lock;
	char *v[MOAT_EVENT_RING]; /* JSON lines, oldest overwritten */
	uint64_t seq;             /* events pushed so far */
};

/* Leak findings per category, sampled every minute (exact: from the
 * counters, not the rate-limited log). */
#define MOAT_TIMELINE 60 /* minutes kept */
struct moat_leak_timeline {
	pthread_mutex_t lock;
	uint64_t next_ms;                    /* monotonic: next sample */
	int64_t wall[MOAT_TIMELINE + 1];     /* seconds since the epoch */
	uint64_t tot[MOAT_TIMELINE + 1][32]; /* totals per category then */
	uint64_t n;                          /* samples taken */
};

/* Leak findings per client over the last hour: the MOAT_LEAK_CLIENTS
 * clients with the most findings since start, kept by the space-saving
 * algorithm (a newcomer to a full table takes the place of the client
 * with the fewest and inherits that count as its possible error), each
 * with a count per minute (a ring of MOAT_TIMELINE minutes).  Bounded
 * whatever the number of clients. */
#define MOAT_LEAK_CLIENTS 128
#define MOAT_LEAK_CLIENT_ID 128 /* bytes of a client id kept */
struct moat_leak_client {
	uint64_t hash;  /* of the whole client id; 0 = free slot */
	uint64_t total; /* findings counted since it entered (with err) */
	uint64_t err;   /* how many of total may belong to others */
	int64_t minute[MOAT_TIMELINE]; /* the minute each count is for */
	uint32_t count[MOAT_TIMELINE];
	char id[MOAT_LEAK_CLIENT_ID]; /* cut at a UTF-8 boundary */
	bool cut;
};

struct moat_leak_clients {
	pthread_mutex_t lock;
	struct moat_leak_client v[MOAT_LEAK_CLIENTS];
};

struct moat_events {
	struct moat_event_ring leaks;    /* event leak, leak_unscanned */
	struct moat_event_ring security; /* every other event */
	struct moat_leak_timeline timeline;
	struct moat_leak_clients clients;
};

/* The totals per category now (sums of the workers' counters). */
void moat__events_totals(const struct moat_broker *b, uint64_t tot[32]);
/* Newest sample first: each(arg, wall, tot) for every sample kept, then
 * (wall = now) the totals now. */
void moat__events_timeline(struct moat_broker *b,
			   void (*each)(void *, int64_t, const uint64_t *),
			   void *arg);

/* Copy out the per-client table (under its lock) for the API. */
void moat__events_clients(struct moat_broker *b,
			  struct moat_leak_client out[MOAT_LEAK_CLIENTS]);

/* Create the rings and hook them to the log (moat_log_set_hook). */
int moat__events_new(struct moat_events **out);
/* Unhook and free (after every thread that logs events has stopped). */
void moat__events_free(struct moat_events **e);
/* Newest first: each(arg, json) for the stored events until it has
 * accepted (returned true for) max of them.  Returns how many. */
size_t moat__events_recent(struct moat_event_ring *r, size_t max,
			   bool (*each)(void *, const char *), void *arg);

/* ---- the listeners (http.c, http_common.c) ------------------------------------------- */
struct http_listener {
	struct moat_broker *b;
	size_t idx; /* in the configuration */
	int fd;     /* until the daemon owns it */
	uint16_t port;
	bool anonymous;
	bool tls;
	char name[96];
	char *cert, *key; /* PEM, alive as long as the daemon */
	struct MHD_Daemon *d;
};

#define HTTP_NCODES 11
#define HTTP_API_SESSIONS 64

/* A login to the JSON API (http_api.c). */
struct api_session {
	char token[65]; /* 32 random bytes, hex; "" = free slot */
	char csrf[65];
	char user[257];
	uint64_t created_ms, used_ms;
};

struct moat_http {
	size_t n;
	atomic_uint_fast64_t auth[3]; /* enum moat_auth_result */
	atomic_uint_fast64_t codes[HTTP_NCODES];
	struct moat_events *events; /* recent events, for the API */
	pthread_mutex_t api_lock; /* guards sessions */
	struct api_session sessions[HTTP_API_SESSIONS];
	struct http_listener l[];
};

/* Count a response by status (moat_http_responses_total). */
void moat__http_count(struct moat_http *h, unsigned code);
/* Queue a response.  owned: body is moat_malloc'd and handed over;
 * otherwise it is copied. */
enum MHD_Result moat__http_respond(struct http_listener *l,
				   struct MHD_Connection *c, unsigned code,
				   const char *type, char *body, size_t len,
				   bool owned);
/* The same with a Set-Cookie header (cookie NULL: none). */
enum MHD_Result moat__http_respond_cookie(struct http_listener *l,
					  struct MHD_Connection *c,
					  unsigned code, const char *type,
					  char *body, size_t len, bool owned,
					  const char *cookie);
enum MHD_Result moat__http_text(struct http_listener *l,
				struct MHD_Connection *c, unsigned code,
				const char *msg);
/* The peer as "addr:port" into peer (MOAT_PEER_STRLEN). */
const char *moat__http_peer(struct MHD_Connection *c, char *peer);
/* Check a login of user/pw from c's peer with the MQTT login back-off:
 * 0 for an administrator (the ACL grants $SYS/#), else 401 (wrong), 403
 * (not an administrator) or 429 (back-off).  Logged and counted. */
unsigned moat__http_login(struct http_listener *l, struct MHD_Connection *c,
			  const char *user, const char *pw);
/* A security event line of an http listener (protocol "http"). */
void moat__http_event(const char *event, const char *user, const char *peer,
		      const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* ---- the leak console (console.c) ------------------------------------- */
bool moat__console_path(const char *url);
enum MHD_Result moat__console_serve(struct http_listener *l,
				    struct MHD_Connection *c, const char *url);

/* ---- the JSON API (http_api.c) ---------------------------------------- */
#define HTTP_API_BODY_MAX 1024 /* a login is all that has a body */

/* Answer a request under /api/v1/ (body: what came with a POST). */
enum MHD_Result moat__api_handle(struct http_listener *l,
				 struct MHD_Connection *c, const char *url,
				 const char *method, const char *body,
				 size_t len);

#endif
