/* Password checks off the event loops.  An argon2id verification costs
 * tens of milliseconds: run on a worker, a stream of bad logins would stall
 * every client of that worker.  Workers queue the check here instead; auth
 * threads run it and post the verdict back to the worker's inbox, where the
 * held CONNECT continues (moat__authenticate).  The queue is bounded: when
 * it is full the CONNECT is refused as "server busy".
 *
 * Fair queueing: checks wait in flows, one per (address, user name), served
 * round robin, so a flood of wrong passwords for many user names from one
 * address (one bad device behind a carrier NAT) puts each of its attempts
 * in line once per round, not ahead of a neighbour's correct login.  An
 * address with many failed logins on record is paced (moat_guard_pace):
 * its checks start at most auth_rate_per_ip a second, which bounds its
 * share of the auth threads and what it can guess, without refusing
 * anyone.  A correct login from such an address waits at most about
 * (its address's waiting flows) / auth_rate_per_ip seconds. */
#include <errno.h>
#include <string.h>
#include <time.h>
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

/* The checks waiting for one (address, user name). */
struct moat_auth_flow {
	struct moat_auth_flow *next;
	struct moat_auth_job *head, *tail;
	char ip[64];
	char *user; /* the first job's */
	size_t ulen;
};

static struct moat_auth_flow *flow_find(struct moat_authq *q, const char *ip,
					const char *user, size_t ulen)
{
	for (struct moat_auth_flow *f = q->flows; f; f = f->next)
		if (f->ulen == ulen && !memcmp(f->user, user, ulen) &&
		    !strcmp(f->ip, ip))
			return f;
	return NULL;
}

static void flow_unlink(struct moat_authq *q, struct moat_auth_flow *f,
			struct moat_auth_flow *prev)
{
	if (prev)
		prev->next = f->next;
	else
		q->flows = f->next;
	if (q->flows_tail == f)
		q->flows_tail = prev;
	f->next = NULL;
}

static void flow_append(struct moat_authq *q, struct moat_auth_flow *f)
{
	f->next = NULL;
	if (q->flows_tail)
		q->flows_tail->next = f;
	else
		q->flows = f;
	q->flows_tail = f;
}

/* The next check to run, or NULL with *wait_ms set to when one of the
 * paced addresses may start one (0: nothing waits).  Under q->lock. */
static struct moat_auth_job *next_job(struct moat_authq *q, uint64_t now,
				      uint64_t *wait_ms)
{
	struct moat_auth_flow *prev = NULL;
	*wait_ms = 0;
	for (struct moat_auth_flow *f = q->flows; f; prev = f, f = f->next) {
		struct moat_auth_job *j = f->head;
		uint64_t w = moat_guard_pace(&j->w->b->guard, f->ip, now,
					     j->sec->cfg.auth_rate_per_ip);
		if (w) {
			if (!*wait_ms || w < *wait_ms)
				*wait_ms = w;
			continue;
		}
		f->head = j->next;
		if (!f->head)
			f->tail = NULL;
		flow_unlink(q, f, prev);
		if (f->head) {
			flow_append(q, f); /* served: to the back of the line */
		} else {
			moat_free(f->user);
			moat_free(f);
		}
		q->len--;
		j->next = NULL;
		return j;
	}
	return NULL;
}

static void job_free(struct moat_auth_job *j)
{
	if (j->pw)
		OPENSSL_cleanse(j->pw, j->pwlen);
	moat_free(j->pw);
	moat_free(j->user);
	moat_security_unref(&j->sec);
	moat_free(j);
}

static void wait_until(struct moat_authq *q, uint64_t ms)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	ts.tv_sec += (time_t)(ms / 1000u);
	ts.tv_nsec += (long)(ms % 1000u) * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	(void)pthread_cond_timedwait(&q->cond, &q->lock, &ts);
}

static void *auth_thread(void *arg)
{
	struct moat_authq *q = arg;
	pthread_mutex_lock(&q->lock);
	for (;;) {
		struct moat_auth_job *j = NULL;
		uint64_t wait = 0;
		while (!q->stopping &&
		       !(j = next_job(q, moat_now_ms(), &wait))) {
			if (wait)
				wait_until(q, wait);
			else
				pthread_cond_wait(&q->cond, &q->lock);
		}
		if (q->stopping)
			break;
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
	pthread_condattr_t ca;
	if (pthread_condattr_init(&ca) != 0 ||
	    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC) != 0 ||
	    pthread_cond_init(&q->cond, &ca) != 0) {
		pthread_mutex_destroy(&q->lock);
		return MOAT_ENOMEM;
	}
	pthread_condattr_destroy(&ca);
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
	while (q->flows) {
		struct moat_auth_flow *f = q->flows;
		q->flows = f->next;
		while (f->head) {
			struct moat_auth_job *j = f->head;
			f->head = j->next;
			j->conn->auth_phase = AUTH_NONE;
			job_free(j);
		}
		moat_free(f->user);
		moat_free(f);
	}
	q->flows_tail = NULL;
	q->len = 0;
	MOAT_FREE(q->threads);
	q->nthreads = 0;
	pthread_cond_destroy(&q->cond);
	pthread_mutex_destroy(&q->lock);
	q->initialised = false;
}

int moat_authq_submit(struct moat_authq *q, struct moat_conn *c,
		      const char *ip, const uint8_t *user, size_t ulen,
		      const uint8_t *pw, size_t pwlen)
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
	struct moat_auth_flow *f = flow_find(q, ip, j->user, ulen);
	if (!f) {
		f = moat_calloc(1, sizeof(*f));
		if (f)
			f->user = moat_malloc(ulen ? ulen : 1);
		if (!f || !f->user) {
			pthread_mutex_unlock(&q->lock);
			if (f)
				moat_free(f);
			job_free(j);
			return MOAT_ENOMEM;
		}
		if (ulen)
			memcpy(f->user, user, ulen);
		f->ulen = ulen;
		snprintf(f->ip, sizeof(f->ip), "%s", ip);
		flow_append(q, f);
	}
	if (f->tail)
		f->tail->next = j;
	else
		f->head = j;
	f->tail = j;
	q->len++;
	pthread_cond_signal(&q->cond);
	pthread_mutex_unlock(&q->lock);
	return MOAT_OK;
}
