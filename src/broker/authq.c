/* Password checks off the event loops.  An argon2id verification costs
 * tens of milliseconds: run on a worker, a stream of bad logins would stall
 * every client of that worker.  Workers queue the check here instead; auth
 * threads run it and post the verdict back to the worker's inbox, where the
 * held CONNECT continues (moat__authenticate).  The queue is bounded: when
 * it is full the CONNECT is refused as "server busy". */
#include <string.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "auth/passwd.h"
#include "broker_int.h"

#define AUTHQ_MAX 1024

struct moat_auth_job {
	struct moat_auth_job *next;
	struct moat_conn *conn;
	struct moat_worker *w;
	struct moat_security *sec; /* keeps the password file alive */
	char *user;
	uint8_t *pw;
	size_t ulen, pwlen;
};

static void job_free(struct moat_auth_job *j)
{
	if (j->pw)
		OPENSSL_cleanse(j->pw, j->pwlen);
	moat_free(j->pw);
	moat_free(j->user);
	moat_security_unref(&j->sec);
	moat_free(j);
}

static void *auth_thread(void *arg)
{
	struct moat_authq *q = arg;
	pthread_mutex_lock(&q->lock);
	for (;;) {
		while (!q->head && !q->stopping)
			pthread_cond_wait(&q->cond, &q->lock);
		if (q->stopping)
			break;
		struct moat_auth_job *j = q->head;
		q->head = j->next;
		if (!q->head)
			q->tail = NULL;
		q->len--;
		pthread_mutex_unlock(&q->lock);
		int rc = moat_pwfile_check(j->sec->pw, j->user, j->ulen, j->pw,
					   j->pwlen);
		struct moat_inbox_item it = {.kind = INBOX_AUTH,
					     .conn = j->conn,
					     .qos = rc == MOAT_OK};
		/* The connection waits for this verdict and is kept until
		 * it arrives: it must not be lost to a full inbox. */
		while (moat_worker_post(j->w, &it) != MOAT_OK &&
		       !atomic_load(&j->w->b->stopping))
			usleep(10000);
		job_free(j);
		pthread_mutex_lock(&q->lock);
	}
	pthread_mutex_unlock(&q->lock);
	return NULL;
}

int moat_authq_start(struct moat_authq *q, unsigned nthreads)
{
	memset(q, 0, sizeof(*q));
	if (pthread_mutex_init(&q->lock, NULL) != 0)
		return MOAT_ENOMEM;
	if (pthread_cond_init(&q->cond, NULL) != 0) {
		pthread_mutex_destroy(&q->lock);
		return MOAT_ENOMEM;
	}
	q->threads = moat_calloc(nthreads, sizeof(*q->threads));
	if (!q->threads)
		return MOAT_ENOMEM;
	q->initialised = true;
	for (unsigned i = 0; i < nthreads; i++) {
		if (pthread_create(&q->threads[i], NULL, auth_thread, q) != 0)
			return MOAT_EIO;
		q->nthreads++;
	}
	return MOAT_OK;
}

/* Stop and join the threads; jobs still queued are dropped, and the
 * connections they held are released (the caller tears workers down). */
void moat_authq_stop(struct moat_authq *q)
{
	if (!q->initialised)
		return;
	pthread_mutex_lock(&q->lock);
	q->stopping = true;
	pthread_cond_broadcast(&q->cond);
	pthread_mutex_unlock(&q->lock);
	for (unsigned i = 0; i < q->nthreads; i++)
		pthread_join(q->threads[i], NULL);
	while (q->head) {
		struct moat_auth_job *j = q->head;
		q->head = j->next;
		j->conn->auth_phase = AUTH_NONE;
		job_free(j);
	}
	q->tail = NULL;
	q->len = 0;
	MOAT_FREE(q->threads);
	q->nthreads = 0;
	pthread_cond_destroy(&q->cond);
	pthread_mutex_destroy(&q->lock);
	q->initialised = false;
}

int moat_authq_submit(struct moat_authq *q, struct moat_conn *c,
		      const uint8_t *user, size_t ulen, const uint8_t *pw,
		      size_t pwlen)
{
	struct moat_auth_job *j = moat_calloc(1, sizeof(*j));
	if (!j)
		return MOAT_ENOMEM;
	j->conn = c;
	j->w = c->w;
	j->sec = moat_security_ref(c->w->sec);
	j->ulen = ulen;
	j->pwlen = pwlen;
	j->user = moat_strndup((const char *)user, ulen);
	j->pw = moat_malloc(pwlen ? pwlen : 1);
	if (!j->user || !j->pw) {
		job_free(j);
		return MOAT_ENOMEM;
	}
	if (pwlen)
		memcpy(j->pw, pw, pwlen);
	pthread_mutex_lock(&q->lock);
	if (q->len >= AUTHQ_MAX || q->stopping) {
		pthread_mutex_unlock(&q->lock);
		job_free(j);
		return MOAT_ELIMIT;
	}
	if (q->tail)
		q->tail->next = j;
	else
		q->head = j;
	q->tail = j;
	q->len++;
	pthread_cond_signal(&q->cond);
	pthread_mutex_unlock(&q->lock);
	return MOAT_OK;
}
