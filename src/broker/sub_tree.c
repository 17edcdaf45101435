/* The topic tree: subscriptions and retained messages.
 *
 * Each node is one topic level.  Literal children live in a small
 * open-addressing hash table keyed by the level bytes; '+' and '#' filter
 * levels are separate links, so retained-message walks never see them.
 * Matching a topic walks at most (levels x 3) nodes and never allocates
 * except to grow the caller's reusable result array. */
#include <stdlib.h>
#include <string.h>

#include "broker_int.h"

struct moat_share {
	uint64_t id; /* identity outside the tree (never reused) */
	char *name;
	size_t name_len;
	struct moat_subscriber *m;
	size_t n, cap;
	atomic_size_t next; /* round-robin position; readers bump it */
};

struct moat_tnode {
	struct moat_tnode *parent;
	struct moat_share **shares;
	size_t nshares;
	char *level; /* literal level bytes (not for '+'/'#'/root) */
	size_t level_len;
	struct moat_tnode **slots; /* literal children, open addressing */
	size_t nslots, nchildren;
	struct moat_tnode *plus, *hash;
	struct moat_subscriber *subs;
	size_t nsubs, subs_cap;
	struct moat_msg *retained;
	size_t xidx; /* in t->xheap (1-based) while retained can expire */
};

static uint64_t level_hash(const uint8_t *p, size_t len)
{
	uint64_t h = 1469598103934665603ull; /* FNV-1a */
	for (size_t i = 0; i < len; i++) {
		h ^= p[i];
		h *= 1099511628211ull;
	}
	return h;
}

static struct moat_tnode *child_find(const struct moat_tnode *n,
				     const uint8_t *p, size_t len)
{
	if (!n->nslots)
		return NULL;
	size_t mask = n->nslots - 1;
	for (size_t i = (size_t)level_hash(p, len) & mask;; i = (i + 1) & mask) {
		struct moat_tnode *c = n->slots[i];
		if (!c)
			return NULL;
		if (c->level_len == len && !memcmp(c->level, p, len))
			return c;
	}
}

static void slot_put(struct moat_tnode **slots, size_t nslots,
		     struct moat_tnode *c)
{
	size_t mask = nslots - 1;
	size_t i = (size_t)level_hash((const uint8_t *)c->level, c->level_len) &
		   mask;
	while (slots[i])
		i = (i + 1) & mask;
	slots[i] = c;
}

static int child_insert(struct moat_tnode *n, struct moat_tnode *c)
{
	if ((n->nchildren + 1) * 4 > n->nslots * 3) {
		size_t ns = n->nslots ? n->nslots * 2 : 4;
		struct moat_tnode **s = moat_calloc(ns, sizeof(*s));
		if (!s)
			return MOAT_ENOMEM;
		for (size_t i = 0; i < n->nslots; i++)
			if (n->slots[i])
				slot_put(s, ns, n->slots[i]);
		moat_free(n->slots);
		n->slots = s;
		n->nslots = ns;
	}
	slot_put(n->slots, n->nslots, c);
	n->nchildren++;
	return MOAT_OK;
}

/* Linear-probing delete with backward shift (no tombstones). */
static void child_remove(struct moat_tnode *n, struct moat_tnode *c)
{
	size_t mask = n->nslots - 1;
	size_t i = (size_t)level_hash((const uint8_t *)c->level, c->level_len) &
		   mask;
	while (n->slots[i] != c)
		i = (i + 1) & mask;
	n->slots[i] = NULL;
	n->nchildren--;
	for (size_t j = (i + 1) & mask; n->slots[j]; j = (j + 1) & mask) {
		struct moat_tnode *m = n->slots[j];
		n->slots[j] = NULL;
		slot_put(n->slots, n->nslots, m);
	}
	if (n->nchildren == 0) {
		MOAT_FREE(n->slots);
		n->nslots = 0;
	}
}

static bool node_empty(const struct moat_tnode *n)
{
	return !n->nchildren && !n->plus && !n->hash && !n->nsubs &&
	       !n->retained && !n->nshares;
}

static void share_free(struct moat_share *g)
{
	for (size_t i = 0; i < g->n; i++)
		moat_session_unref(&g->m[i].session);
	moat_free(g->m);
	moat_free(g->name);
	moat_free(g);
}

static void node_free(struct moat_tnode *n)
{
	for (size_t i = 0; i < n->nshares; i++)
		share_free(n->shares[i]);
	moat_free(n->shares);
	moat_free(n->level);
	moat_free(n->slots);
	moat_free(n->subs);
	moat_free(n);
}

/* Remove empty nodes from n up towards the root. */
/* ---- retained messages that can expire ------------------------------------
 * A binary min-heap of the nodes whose retained message has a Message
 * Expiry, by deadline: the sweep (moat_tree_expire_retained) removes
 * what has expired without walking the tree, and keeping it costs
 * O(log n) per change of such a message. */

static uint64_t xkey(const struct moat_tree *t, size_t i)
{
	return t->xheap[i]->retained->expiry_ms;
}

static void xplace(struct moat_tree *t, size_t i, struct moat_tnode *n)
{
	t->xheap[i] = n;
	n->xidx = i + 1;
}

static void xsift(struct moat_tree *t, size_t i)
{
	struct moat_tnode *n = t->xheap[i];
	uint64_t k = n->retained->expiry_ms;
	while (i > 0 && xkey(t, (i - 1) / 2) > k) {
		xplace(t, i, t->xheap[(i - 1) / 2]);
		i = (i - 1) / 2;
	}
	for (;;) {
		size_t c = 2 * i + 1;
		if (c >= t->nx)
			break;
		if (c + 1 < t->nx && xkey(t, c + 1) < xkey(t, c))
			c++;
		if (xkey(t, c) >= k)
			break;
		xplace(t, i, t->xheap[c]);
		i = c;
	}
	xplace(t, i, n);
}

static void xremove(struct moat_tree *t, struct moat_tnode *n)
{
	size_t i = n->xidx - 1;
	n->xidx = 0;
	if (i != --t->nx) {
		xplace(t, i, t->xheap[t->nx]);
		xsift(t, i);
	}
}

/* After n->retained changed (under the write lock).  Out of memory for
 * the heap leaves the message to expire when read, as before. */
static void xupdate(struct moat_tree *t, struct moat_tnode *n)
{
	bool expires = n->retained && n->retained->expiry_ms;
	if (n->xidx && !expires) {
		xremove(t, n);
	} else if (n->xidx) {
		xsift(t, n->xidx - 1);
	} else if (expires) {
		if (t->nx == t->xcap) {
			size_t cap = t->xcap ? t->xcap * 2 : 64;
			struct moat_tnode **v =
				moat_realloc(t->xheap, cap * sizeof(*v));
			if (!v)
				return;
			t->xheap = v;
			t->xcap = cap;
		}
		xplace(t, t->nx++, n);
		xsift(t, t->nx - 1);
	}
	atomic_store_explicit(&t->next_retained_expiry,
			      t->nx ? xkey(t, 0) : UINT64_MAX,
			      memory_order_relaxed);
}

static void prune(struct moat_tree *t, struct moat_tnode *n)
{
	while (n && n != t->root && node_empty(n)) {
		struct moat_tnode *p = n->parent;
		if (p->plus == n)
			p->plus = NULL;
		else if (p->hash == n)
			p->hash = NULL;
		else
			child_remove(p, n);
		node_free(n);
		n = p;
	}
}

static struct moat_tnode *node_new(struct moat_tnode *parent,
				   const uint8_t *level, size_t len)
{
	struct moat_tnode *n = moat_calloc(1, sizeof(*n));
	if (!n)
		return NULL;
	n->parent = parent;
	if (level) {
		n->level = moat_strndup((const char *)level, len);
		if (!n->level) {
			moat_free(n);
			return NULL;
		}
		n->level_len = len;
	}
	return n;
}

int moat_tree_init(struct moat_tree *t)
{
	memset(t, 0, sizeof(*t));
	atomic_init(&t->next_retained_expiry, UINT64_MAX);
	t->root = node_new(NULL, NULL, 0);
	if (!t->root)
		return MOAT_ENOMEM;
	if (pthread_rwlock_init(&t->lock, NULL) != 0) {
		MOAT_FREE(t->root);
		return MOAT_ENOMEM;
	}
	return MOAT_OK;
}

static void free_subtree(struct moat_tnode *n)
{
	if (!n)
		return;
	for (size_t i = 0; i < n->nslots; i++)
		free_subtree(n->slots[i]);
	free_subtree(n->plus);
	free_subtree(n->hash);
	for (size_t i = 0; i < n->nsubs; i++)
		moat_session_unref(&n->subs[i].session);
	moat_msg_unref(&n->retained);
	node_free(n);
}

void moat_tree_cleanup(struct moat_tree *t)
{
	if (!t->root)
		return;
	free_subtree(t->root);
	t->root = NULL;
	MOAT_FREE(t->xheap);
	t->nx = t->xcap = 0;
	pthread_rwlock_destroy(&t->lock);
}

static size_t level_end(const uint8_t *p, size_t len, size_t pos)
{
	while (pos < len && p[pos] != '/')
		pos++;
	return pos;
}

/* Find the node for a filter or name, creating it when create is set. */
static struct moat_tnode *walk(struct moat_tree *t, const uint8_t *f,
			       size_t flen, bool create)
{
	struct moat_tnode *n = t->root;
	size_t pos = 0;
	for (;;) {
		size_t e = level_end(f, flen, pos);
		const uint8_t *lv = f + pos;
		size_t len = e - pos;
		struct moat_tnode **link = NULL;
		struct moat_tnode *c;
		if (len == 1 && lv[0] == '+')
			link = &n->plus;
		else if (len == 1 && lv[0] == '#')
			link = &n->hash;
		c = link ? *link : child_find(n, lv, len);
		if (!c && create) {
			c = node_new(n, link ? NULL : lv, len);
			if (c && link) {
				*link = c;
			} else if (c && child_insert(n, c) != MOAT_OK) {
				node_free(c);
				c = NULL;
			}
			if (!c) {
				prune(t, n);
				return NULL;
			}
		}
		if (!c)
			return NULL;
		n = c;
		if (e == flen)
			return n;
		pos = e + 1;
	}
}

/* Find (or, with create, add) the group NAME on node n. */
static struct moat_share *share_find(struct moat_tree *t,
				     struct moat_tnode *n,
				     const struct moat_bytes *name,
				     bool create)
{
	for (size_t i = 0; i < n->nshares; i++)
		if (moat_bytes_eq((struct moat_bytes){(const uint8_t *)
							       n->shares[i]
								       ->name,
						       n->shares[i]->name_len},
				  *name))
			return n->shares[i];
	if (!create)
		return NULL;
	struct moat_share **v =
		moat_realloc(n->shares, (n->nshares + 1) * sizeof(*v));
	if (!v)
		return NULL;
	n->shares = v;
	struct moat_share *g = moat_calloc(1, sizeof(*g));
	if (!g || !(g->name = moat_strndup((const char *)name->p, name->len))) {
		moat_free(g);
		return NULL;
	}
	g->name_len = name->len;
	g->id = ++t->share_seq; /* under the write lock */
	atomic_init(&g->next, 0);
	n->shares[n->nshares++] = g;
	return g;
}

static void share_remove(struct moat_tnode *n, struct moat_share *g)
{
	for (size_t i = 0; i < n->nshares; i++) {
		if (n->shares[i] == g) {
			n->shares[i] = n->shares[--n->nshares];
			break;
		}
	}
	share_free(g);
	if (!n->nshares)
		MOAT_FREE(n->shares);
}

/* Add s to a subscriber array, or update its QoS. */
static int subs_put(struct moat_subscriber **v, size_t *n, size_t *cap,
		    struct moat_session *s, uint8_t qos, bool *added)
{
	for (size_t i = 0; i < *n; i++) {
		if ((*v)[i].session == s) {
			(*v)[i].qos = qos; /* replace [MQTT-3.8.4-3] */
			return MOAT_OK;
		}
	}
	if (*n == *cap) {
		size_t c = *cap ? *cap * 2 : 2;
		struct moat_subscriber *nv = moat_realloc(*v, c * sizeof(*nv));
		if (!nv)
			return MOAT_ENOMEM;
		*v = nv;
		*cap = c;
	}
	moat_session_ref(s);
	(*v)[*n].session = s;
	(*v)[*n].qos = qos;
	(*n)++;
	*added = true;
	return MOAT_OK;
}

/* Remove s from a subscriber array; true when it was there. */
static bool subs_del(struct moat_subscriber *v, size_t *n,
		     struct moat_session *s)
{
	for (size_t i = 0; i < *n; i++) {
		if (v[i].session == s) {
			v[i] = v[--*n];
			return true;
		}
	}
	return false;
}

int moat_tree_subscribe(struct moat_tree *t, const uint8_t *filter,
			size_t flen, const struct moat_bytes *share,
			struct moat_session *s, uint8_t qos, bool *added,
			uint64_t *group)
{
	int rc = MOAT_OK;
	*added = false;
	*group = 0;
	pthread_rwlock_wrlock(&t->lock);
	struct moat_tnode *n = walk(t, filter, flen, true);
	if (!n) {
		rc = MOAT_ENOMEM;
		goto out;
	}
	if (share) {
		struct moat_share *g = share_find(t, n, share, true);
		if (g) {
			rc = subs_put(&g->m, &g->n, &g->cap, s, qos, added);
			*group = g->id;
			if (*added && g->n == 1 && t->cluster)
				moat__cluster_interest(t->cluster, filter, flen,
						       share->p, share->len,
						       g->id, true);
		} else {
			rc = MOAT_ENOMEM;
		}
	} else {
		rc = subs_put(&n->subs, &n->nsubs, &n->subs_cap, s, qos,
			      added);
		if (*added && n->nsubs == 1 && t->cluster)
			moat__cluster_interest(t->cluster, filter, flen, NULL,
					       0, 0, true);
	}
	if (*added)
		t->nsubs++;
	if (rc)
		prune(t, n);
out:
	pthread_rwlock_unlock(&t->lock);
	return rc;
}

int moat_tree_unsubscribe(struct moat_tree *t, const uint8_t *filter,
			  size_t flen, const struct moat_bytes *share,
			  struct moat_session *s)
{
	bool found = false;
	pthread_rwlock_wrlock(&t->lock);
	struct moat_tnode *n = walk(t, filter, flen, false);
	if (n && share) {
		struct moat_share *g = share_find(t, n, share, false);
		if (g && (found = subs_del(g->m, &g->n, s)) && !g->n) {
			if (t->cluster)
				moat__cluster_interest(t->cluster, filter, flen,
						       share->p, share->len,
						       g->id, false);
			share_remove(n, g);
		}
	} else if (n) {
		found = subs_del(n->subs, &n->nsubs, s);
		if (found && !n->nsubs) {
			if (t->cluster)
				moat__cluster_interest(t->cluster, filter, flen,
						       NULL, 0, 0, false);
			MOAT_FREE(n->subs);
			n->subs_cap = 0;
		}
	}
	if (found) {
		t->nsubs--;
		prune(t, n);
	}
	pthread_rwlock_unlock(&t->lock);
	if (found)
		moat_session_unref(&s);
	return found ? MOAT_OK : MOAT_ENOTFOUND;
}

static int matches_reserve(struct moat_matches *out, size_t more)
{
	if (out->n + more <= out->cap)
		return MOAT_OK;
	size_t cap = MOAT_MAX(out->cap * 2, out->n + more);
	cap = MOAT_MAX(cap, (size_t)16);
	struct moat_match *v = moat_realloc(out->v, cap * sizeof(*v));
	if (!v)
		return MOAT_ENOMEM;
	out->v = v;
	out->cap = cap;
	return MOAT_OK;
}

/* One member of each shared group on n, round-robin. */
static int add_shares(const struct moat_tnode *n, struct moat_matches *out)
{
	if (!n->nshares || out->only == MOAT_MATCH_NO_GROUPS)
		return MOAT_OK;
	if (matches_reserve(out, n->nshares))
		return MOAT_ENOMEM;
	for (size_t i = 0; i < n->nshares; i++) {
		struct moat_share *g = n->shares[i];
		if (out->only && g->id != out->only)
			continue;
		size_t k = atomic_fetch_add_explicit(&g->next, 1,
						     memory_order_relaxed);
		/* Prefer a connected member; an offline one only when all
		 * are (its session then queues the message). */
		const struct moat_subscriber *sub = &g->m[k % g->n];
		for (size_t j = 0; j < g->n; j++) {
			const struct moat_subscriber *c = &g->m[(k + j) % g->n];
			if (atomic_load_explicit(&c->session->online,
						 memory_order_relaxed)) {
				sub = c;
				break;
			}
		}
		out->v[out->n].session = sub->session;
		out->v[out->n].share = g->id;
		out->v[out->n].qos = sub->qos;
		out->n++;
	}
	return MOAT_OK;
}

static int add_subs(const struct moat_tnode *n, struct moat_matches *out)
{
	if (!n)
		return MOAT_OK;
	if (out->only && out->only != MOAT_MATCH_NO_GROUPS)
		return add_shares(n, out); /* one group only */
	if (n->nsubs && matches_reserve(out, n->nsubs))
		return MOAT_ENOMEM;
	for (size_t i = 0; i < n->nsubs; i++) {
		out->v[out->n].session = n->subs[i].session;
		out->v[out->n].share = 0;
		out->v[out->n].qos = n->subs[i].qos;
		out->n++;
	}
	return add_shares(n, out);
}

static int match_level(const struct moat_tnode *n, const uint8_t *t,
		       size_t tlen, size_t pos, struct moat_matches *out);

static int match_child(const struct moat_tnode *c, const uint8_t *t,
		       size_t tlen, size_t e, struct moat_matches *out)
{
	if (!c)
		return MOAT_OK;
	if (e == tlen) {
		int rc = add_subs(c, out);
		/* "a/#" also matches "a" [MQTT-4.7.1-2] */
		return rc ? rc : add_subs(c->hash, out);
	}
	return match_level(c, t, tlen, e + 1, out);
}

/* n's children are candidates for the level of t starting at pos. */
static int match_level(const struct moat_tnode *n, const uint8_t *t,
		       size_t tlen, size_t pos, struct moat_matches *out)
{
	size_t e = level_end(t, tlen, pos);
	/* Wildcards at the first level never match '$' topics
	 * [MQTT-4.7.2-1]. */
	bool wild_ok = !(pos == 0 && tlen && t[0] == '$');
	int rc = MOAT_OK;
	if (wild_ok && n->hash)
		rc = add_subs(n->hash, out);
	if (!rc && wild_ok)
		rc = match_child(n->plus, t, tlen, e, out);
	if (!rc)
		rc = match_child(child_find(n, t + pos, e - pos), t, tlen, e,
				 out);
	return rc;
}

static int cmp_match(const void *a, const void *b)
{
	const struct moat_match *ma = a, *mb = b;
	uintptr_t x = (uintptr_t)ma->session, y = (uintptr_t)mb->session;
	if (x != y)
		return x < y ? -1 : 1;
	x = (uintptr_t)ma->share;
	y = (uintptr_t)mb->share;
	return x < y ? -1 : x > y;
}

/* One entry per session (and per shared group of it), keeping the
 * highest QoS [MQTT-3.3.5-1]. */
static void dedupe(struct moat_matches *out, size_t from)
{
	size_t n = out->n - from;
	if (n < 2)
		return;
	struct moat_match *v = out->v + from;
	qsort(v, n, sizeof(*v), cmp_match);
	size_t w = 0;
	for (size_t i = 1; i < n; i++) {
		if (v[i].session == v[w].session && v[i].share == v[w].share) {
			if (v[i].qos > v[w].qos)
				v[w].qos = v[i].qos;
		} else {
			v[++w] = v[i];
		}
	}
	out->n = from + w + 1;
}

int moat_tree_match(struct moat_tree *t, const uint8_t *topic, size_t tlen,
		    struct moat_matches *out)
{
	size_t from = out->n;
	pthread_rwlock_rdlock(&t->lock);
	int rc = match_level(t->root, topic, tlen, 0, out);
	if (rc) {
		out->n = from;
	} else {
		dedupe(out, from);
		for (size_t i = from; i < out->n; i++)
			moat_session_ref(out->v[i].session);
	}
	pthread_rwlock_unlock(&t->lock);
	return rc;
}

struct moat_session *moat_tree_share_pick(struct moat_tree *t,
					  const uint8_t *topic, size_t tlen,
					  uint64_t g,
					  const struct moat_session *exclude,
					  uint8_t *qos)
{
	struct moat_matches mm = {0};
	struct moat_session *pick = NULL;
	/* Matching picks one member per group round-robin; try as many times
	 * as the group could have members so the excluded one is skipped. */
	for (int tries = 0; tries < 4 && !pick; tries++) {
		mm.n = 0;
		if (moat_tree_match(t, topic, tlen, &mm) != MOAT_OK)
			break;
		for (size_t i = 0; i < mm.n; i++) {
			struct moat_match *x = &mm.v[i];
			if (!pick && x->share == g && x->session != exclude) {
				pick = x->session;
				*qos = x->qos;
				continue;
			}
			moat_session_unref(&x->session);
		}
	}
	moat_free(mm.v);
	return pick;
}

int moat_tree_retain(struct moat_tree *t, struct moat_msg *m, uint64_t *seq)
{
	int rc = MOAT_OK;
	struct moat_msg *old = NULL;
	const uint8_t *topic = (const uint8_t *)m->topic;
	/* The broker's own $SYS topics are a small fixed set: they are
	 * counted in nretained but not against the limits. */
	bool user = !moat_topic_is_sys(topic, m->topic_len);
	pthread_rwlock_wrlock(&t->lock);
	if (seq)
		*seq = ++t->retain_seq;
	struct moat_tnode *n = walk(t, topic, m->topic_len, false);
	size_t old_bytes = n && n->retained ? moat_msg_size(n->retained) : 0;
	bool is_new = !n || !n->retained;
	if (m->payload_len == 0) {
		if (!is_new) {
			old = n->retained;
			n->retained = NULL;
			t->nretained--;
			if (user) {
				t->nretained_user--;
				t->retained_bytes -= old_bytes;
			}
			xupdate(t, n);
			prune(t, n);
		}
		goto out;
	}
	if (user && ((t->max_retained && is_new &&
		      t->nretained_user >= t->max_retained) ||
		     (t->max_retained_bytes &&
		      t->retained_bytes - old_bytes + moat_msg_size(m) >
			      t->max_retained_bytes))) {
		rc = MOAT_ELIMIT;
		goto out;
	}
	if (!n && !(n = walk(t, topic, m->topic_len, true))) {
		rc = MOAT_ENOMEM;
		goto out;
	}
	old = n->retained;
	if (is_new) {
		t->nretained++;
		t->nretained_user += user;
	}
	if (user)
		t->retained_bytes = t->retained_bytes - old_bytes +
				    moat_msg_size(m);
	n->retained = moat_msg_ref(m);
	xupdate(t, n);
out:;
	bool log_full = rc == MOAT_ELIMIT && !t->retain_full_logged;
	if (log_full)
		t->retain_full_logged = true;
	pthread_rwlock_unlock(&t->lock);
	if (log_full)
		moat_warn("retained store full (max_retained_messages or "
			  "max_retained_bytes): new retained messages are "
			  "delivered but not kept (logged once)");
	moat_msg_unref(&old);
	return rc;
}

struct msg_vec {
	struct moat_msg **v;
	size_t n, cap;
	size_t max; /* stop collecting here */
};

/* MOAT_ELIMIT ends the walk early once max messages are collected. */
static int vec_add(struct msg_vec *vec, struct moat_msg *m)
{
	if (!m)
		return MOAT_OK;
	if (vec->n >= vec->max)
		return MOAT_ELIMIT;
	if (vec->n == vec->cap) {
		size_t cap = vec->cap ? vec->cap * 2 : 8;
		struct moat_msg **v = moat_realloc(vec->v, cap * sizeof(*v));
		if (!v)
			return MOAT_ENOMEM;
		vec->v = v;
		vec->cap = cap;
	}
	vec->v[vec->n++] = moat_msg_ref(m);
	return MOAT_OK;
}

static bool is_dollar(const struct moat_tnode *c)
{
	return c->level_len && c->level[0] == '$';
}

static int collect_all(const struct moat_tnode *n, bool root,
		       struct msg_vec *vec)
{
	for (size_t i = 0; i < n->nslots; i++) {
		const struct moat_tnode *c = n->slots[i];
		if (!c || (root && is_dollar(c)))
			continue;
		int rc = vec_add(vec, c->retained);
		if (!rc)
			rc = collect_all(c, false, vec);
		if (rc)
			return rc;
	}
	return MOAT_OK;
}

static int collect(const struct moat_tnode *n, const uint8_t *f, size_t flen,
		   size_t pos, struct msg_vec *vec);

static int collect_child(const struct moat_tnode *c, const uint8_t *f,
			 size_t flen, size_t e, struct msg_vec *vec)
{
	if (!c)
		return MOAT_OK;
	if (e == flen)
		return vec_add(vec, c->retained);
	return collect(c, f, flen, e + 1, vec);
}

static int collect(const struct moat_tnode *n, const uint8_t *f, size_t flen,
		   size_t pos, struct msg_vec *vec)
{
	size_t e = level_end(f, flen, pos);
	bool root = pos == 0;
	if (e - pos == 1 && f[pos] == '#') {
		int rc = root ? MOAT_OK : vec_add(vec, n->retained);
		return rc ? rc : collect_all(n, root, vec);
	}
	if (e - pos == 1 && f[pos] == '+') {
		for (size_t i = 0; i < n->nslots; i++) {
			const struct moat_tnode *c = n->slots[i];
			if (!c || (root && is_dollar(c)))
				continue;
			int rc = collect_child(c, f, flen, e, vec);
			if (rc)
				return rc;
		}
		return MOAT_OK;
	}
	return collect_child(child_find(n, f + pos, e - pos), f, flen, e, vec);
}

/* Hand the collected messages over (none on an error). */
static int vec_done(struct msg_vec *vec, int rc, struct moat_msg ***out,
		    size_t *n)
{
	if (rc == MOAT_ELIMIT)
		rc = MOAT_OK; /* the caller's budget: the rest would be dropped */
	if (rc) {
		for (size_t i = 0; i < vec->n; i++)
			moat_msg_unref(&vec->v[i]);
		MOAT_FREE(vec->v);
		vec->n = 0;
	}
	*out = vec->v;
	*n = vec->n;
	return rc;
}

int moat_tree_retained(struct moat_tree *t, const uint8_t *filter,
		       size_t flen, size_t max, struct moat_msg ***out,
		       size_t *n)
{
	struct msg_vec vec = {0};
	vec.max = max;
	pthread_rwlock_rdlock(&t->lock);
	int rc = collect(t->root, filter, flen, 0, &vec);
	pthread_rwlock_unlock(&t->lock);
	return vec_done(&vec, rc, out, n);
}

int moat_tree_retained_all(struct moat_tree *t, size_t max,
			   struct moat_msg ***out, size_t *n)
{
	struct msg_vec vec = {0};
	vec.max = max;
	pthread_rwlock_rdlock(&t->lock);
	int rc = collect_all(t->root, false, &vec); /* '$' topics too */
	pthread_rwlock_unlock(&t->lock);
	return vec_done(&vec, rc, out, n);
}

size_t moat_tree_expire_retained(struct moat_tree *t, uint64_t now)
{
	enum { BATCH = 256, ROUNDS = 16 };
	struct moat_msg *gone[BATCH];
	size_t total = 0;
	/* In batches, the write lock released between them so that routing
	 * never waits long; what is left waits for the next tick. */
	for (int round = 0; round < ROUNDS; round++) {
		if (atomic_load_explicit(&t->next_retained_expiry,
					 memory_order_relaxed) > now)
			break;
		size_t n = 0;
		pthread_rwlock_wrlock(&t->lock);
		while (t->nx && n < BATCH && xkey(t, 0) <= now) {
			struct moat_tnode *x = t->xheap[0];
			struct moat_msg *m = x->retained;
			gone[n++] = m;
			x->retained = NULL;
			t->nretained--;
			if (!moat_topic_is_sys((const uint8_t *)m->topic,
					       m->topic_len)) {
				t->nretained_user--;
				t->retained_bytes -= moat_msg_size(m);
			}
			xupdate(t, x);
			prune(t, x);
		}
		pthread_rwlock_unlock(&t->lock);
		for (size_t i = 0; i < n; i++)
			moat_msg_unref(&gone[i]);
		total += n;
		if (n < BATCH)
			break;
	}
	return total;
}
