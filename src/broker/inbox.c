/* Worker inboxes: what other threads hand a worker (deliveries to its
 * sessions, connections to adopt, password verdicts), in batches moved
 * under one lock and announced on its eventfd. */
#include <errno.h>
#include <unistd.h>

#include "broker_int.h"

int moat__inbox_push(struct moat_inbox_batch *bt,
		     const struct moat_inbox_item *it)
{
	if (bt->n == bt->cap) {
		size_t cap = bt->cap ? bt->cap * 2 : 64;
		struct moat_inbox_item *v =
			moat_realloc(bt->v, cap * sizeof(*v));
		if (!v)
			return MOAT_ENOMEM;
		bt->v = v;
		bt->cap = cap;
	}
	bt->v[bt->n++] = *it;
	return MOAT_OK;
}

static void wake(struct moat_worker *w)
{
	uint64_t one = 1;
	ssize_t n;
	do {
		n = write(w->evfd, &one, sizeof(one));
	} while (n < 0 && errno == EINTR);
}

void moat__inbox_release(struct moat_inbox_item *it)
{
	moat_msg_unref(&it->msg);
	moat_session_unref(&it->session);
}

int moat__inbox_post(struct moat_worker *to, struct moat_inbox_batch *bt)
{
	int rc = MOAT_OK;
	bool was_empty;
	size_t i = 0;
	pthread_mutex_lock(&to->inbox_lock);
	was_empty = to->inbox.n == 0;
	for (; i < bt->n; i++)
		if (moat__inbox_push(&to->inbox, &bt->v[i]) != MOAT_OK)
			break;
	pthread_mutex_unlock(&to->inbox_lock);
	if (i < bt->n) {
		rc = MOAT_ENOMEM;
		MOAT_STAT_ADD(to->b, msgs_dropped, bt->n - i);
		moat_warn("worker %u: out of memory for its inbox; dropped %zu "
			  "deliveries",
			  to->idx, bt->n - i);
		for (; i < bt->n; i++) {
			struct moat_conn *c = bt->v[i].conn;
			if (bt->v[i].kind == INBOX_ADOPT) {
				/* Detached from every worker: free it here. */
				MOAT_STAT_SUB(to->b, connections, 1);
				moat_conn_free(c);
			}
			moat__inbox_release(&bt->v[i]);
		}
	}
	bt->n = 0;
	if (was_empty)
		wake(to);
	return rc;
}

int moat_worker_post(struct moat_worker *to, const struct moat_inbox_item *item)
{
	struct moat_inbox_item copy = *item;
	struct moat_inbox_batch one = {&copy, 1, 1};
	return moat__inbox_post(to, &one);
}
