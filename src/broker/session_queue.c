/* A session's queue: messages waiting for the outgoing window, in order.
 *
 * A ring of slots.  A message that expires while it waits leaves a hole
 * (msg NULL) where it was, so nothing moves; the head skips holes, and the
 * ring is compacted when there are more holes than messages.
 *
 * Expired messages make room in a full queue [MQTT-3.3.2-5] without
 * scanning it: the deadlines of the messages that can expire are kept in a
 * min-heap with the sequence number of their slot (slot k from the head
 * has number qexp->seq + k; the numbers exist only with the heap).  A full queue looks at the heap's top only; each
 * message that expires costs O(log n) once.  Entries of messages that left
 * by the head stay in the heap (they are recognised by their number and
 * skipped); the heap is rebuilt from the ring when they outnumber the rest.
 * Every operation is O(1) amortised, O(log n) for an expiring message.
 * Home worker only. */
#include <string.h>

#include "broker_int.h"

static struct moat_qitem *slot(struct moat_session *s, size_t i)
{
	size_t k = s->qhead + i;
	return &s->queue[k < s->qcap ? k : k - s->qcap];
}

/* ---- the heap of deadlines ---- */

static bool heap_less(const struct moat_qexp_entry *a,
		      const struct moat_qexp_entry *b)
{
	return a->at_ms < b->at_ms;
}

static void heap_up(struct moat_qexp *h, size_t i)
{
	struct moat_qexp_entry x = h->e[i];
	while (i > 0) {
		size_t p = (i - 1) / 2;
		if (!heap_less(&x, &h->e[p]))
			break;
		h->e[i] = h->e[p];
		i = p;
	}
	h->e[i] = x;
}

static void heap_down(struct moat_qexp *h, size_t i)
{
	struct moat_qexp_entry x = h->e[i];
	for (;;) {
		size_t c = 2 * i + 1;
		if (c >= h->n)
			break;
		if (c + 1 < h->n && heap_less(&h->e[c + 1], &h->e[c]))
			c++;
		if (!heap_less(&h->e[c], &x))
			break;
		h->e[i] = h->e[c];
		i = c;
	}
	h->e[i] = x;
}

static void heap_pop(struct moat_qexp *h)
{
	h->e[0] = h->e[--h->n];
	if (h->n)
		heap_down(h, 0);
}

/* Room for one more entry; false when out of memory. */
static bool heap_reserve(struct moat_session *s)
{
	struct moat_qexp *h = s->qexp;
	if (h && h->n < h->cap)
		return true;
	uint32_t cap = h ? 2 * h->cap : 8;
	struct moat_qexp *v =
		moat_realloc(h, sizeof(*v) + (size_t)cap * sizeof(v->e[0]));
	if (!v)
		return false;
	if (!h) {
		v->n = v->live = 0;
		v->seq = 0; /* the head slot; no entry refers to any yet */
	}
	v->cap = cap;
	s->qexp = v;
	return true;
}

/* The heap again from the ring (every entry live); O(slots). */
static void heap_rebuild(struct moat_session *s)
{
	struct moat_qexp *h = s->qexp;
	h->n = 0;
	for (uint32_t i = 0; i < s->qused; i++) {
		const struct moat_qitem *it = slot(s, i);
		if (it->msg && it->msg->expiry_ms)
			h->e[h->n++] = (struct moat_qexp_entry){
				it->msg->expiry_ms, h->seq + i};
	}
	h->live = h->n;
	for (size_t i = h->n / 2; i-- > 0;)
		heap_down(h, i);
	if (!h->n)
		MOAT_FREE(s->qexp);
}

/* A message with a deadline left by the head: its entry is stale now.
 * The heap is rebuilt when stale entries are more than the live ones and
 * a quarter of the ring, so that costs O(1) per stale entry. */
static void heap_forget_one(struct moat_session *s)
{
	struct moat_qexp *h = s->qexp;
	h->live--;
	uint32_t stale = h->n - h->live;
	if (stale > h->live && stale > s->qused / 4)
		heap_rebuild(s);
}

/* ---- the ring ---- */

/* Close the holes: the messages move up to the head, in order (in place:
 * a message only ever moves towards the head).  The slots are numbered
 * again, so the heap is rebuilt.  O(slots). */
static void ring_compact(struct moat_session *s)
{
	uint32_t n = 0;
	for (uint32_t i = 0; i < s->qused; i++) {
		struct moat_qitem *it = slot(s, i);
		if (it->msg)
			*slot(s, n++) = *it;
	}
	s->qused = n;
	if (s->qexp) {
		s->qexp->seq += n; /* fresh numbers, for clarity */
		heap_rebuild(s);
	}
}

/* A ring twice as large, the messages at its start. */
static bool ring_grow(struct moat_session *s)
{
	size_t cap = s->qcap ? 2 * (size_t)s->qcap : 16;
	struct moat_qitem *v = moat_malloc(cap * sizeof(*v));
	if (!v)
		return false;
	for (uint32_t i = 0; i < s->qused; i++)
		v[i] = *slot(s, i);
	moat_free(s->queue);
	s->queue = v;
	s->qcap = (uint32_t)cap; /* < 3 x max_queued_messages */
	s->qhead = 0;
	return true;
}

/* Drop the holes at the head (each hole is passed once). */
static void skip_holes(struct moat_session *s)
{
	while (s->qused && !s->queue[s->qhead].msg) {
		s->qhead = s->qhead + 1 < s->qcap ? s->qhead + 1 : 0;
		s->qused--;
		if (s->qexp)
			s->qexp->seq++;
	}
}

int moat__squeue_push(struct moat_session *s, struct moat_msg *m, uint8_t qos,
		      bool retain, uint64_t share, uint64_t did)
{
	/* A full ring loses its holes when they are a quarter of it (O(1)
	 * per hole), else it doubles. */
	if (s->qused == s->qcap && s->qused - s->qlen >= s->qcap / 4 &&
	    s->qcap)
		ring_compact(s);
	if (s->qused == s->qcap && !ring_grow(s))
		return MOAT_ENOMEM;
	if (m->expiry_ms && !heap_reserve(s))
		return MOAT_ENOMEM;
	struct moat_qitem *it = slot(s, s->qused);
	it->msg = moat_msg_ref(m);
	it->qos = qos;
	it->retain = retain;
	it->share = share;
	it->did = did;
	s->qused++;
	s->qlen++;
	s->queued_bytes += moat_msg_size(m);
	if (m->expiry_ms) {
		struct moat_qexp *h = s->qexp;
		h->e[h->n] = (struct moat_qexp_entry){m->expiry_ms,
						      h->seq + s->qused - 1};
		heap_up(h, h->n++);
		h->live++;
	}
	return MOAT_OK;
}

const struct moat_qitem *moat__squeue_head(struct moat_session *s)
{
	skip_holes(s);
	return s->qlen ? &s->queue[s->qhead] : NULL;
}

bool moat__squeue_pop(struct moat_session *s, struct moat_qitem *out)
{
	skip_holes(s);
	if (!s->qlen)
		return false;
	*out = s->queue[s->qhead];
	s->queue[s->qhead].msg = NULL;
	skip_holes(s); /* this one, and any holes after it */
	s->qlen--;
	s->queued_bytes -= moat_msg_size(out->msg);
	if (out->msg->expiry_ms)
		heap_forget_one(s);
	if (!s->qlen)
		moat__squeue_reset(s);
	return true;
}

void moat__squeue_reset(struct moat_session *s)
{
	/* Empty: the heap holds stale entries only. */
	MOAT_FREE(s->qexp);
	s->qhead = 0;
	s->qused = 0;
}

size_t moat__squeue_purge(struct moat_session *s, uint64_t now)
{
	size_t n = 0;
	struct moat_qexp *h;
	while ((h = s->qexp) && h->n && h->e[0].at_ms <= now) {
		uint64_t k = h->e[0].seq - h->seq; /* huge when below */
		heap_pop(h);
		struct moat_qitem *it = k < s->qused ? slot(s, (size_t)k)
						     : NULL;
		if (!it || !it->msg)
			continue; /* stale: it left by the head */
		/* A stored delivery that will not happen: its row goes. */
		if (it->did)
			moat__store_delivery_del(s->home, it->did,
						 it->msg->store_id);
		s->queued_bytes -= moat_msg_size(it->msg);
		moat_msg_unref(&it->msg); /* a hole now */
		s->qlen--;
		h->live--;
		n++;
	}
	if (!s->qlen)
		moat__squeue_reset(s);
	else if (s->qused - s->qlen > s->qlen)
		ring_compact(s);
	return n;
}

void moat__squeue_free(struct moat_session *s)
{
	MOAT_FREE(s->qexp);
	MOAT_FREE(s->queue);
	s->qcap = s->qhead = s->qused = s->qlen = 0;
	s->queued_bytes = 0;
}
