/* Unit tests for a session's queue (src/broker/session_queue.c): order,
 * byte counts, expiry without scanning (holes, the heap of deadlines, its
 * stale entries), compaction and growth of the ring, out of memory.  A
 * random sequence of operations is checked against a plain array model.
 *
 * No broker is started: the session is a zeroed struct (the queue uses
 * the worker only for stored deliveries, and these have none). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "broker/broker_int.h"

#include "test_util.h"

static struct moat_msg *msg(const char *topic, uint64_t expiry_ms)
{
	struct moat_msg *m = moat_msg_new((const uint8_t *)topic,
					  strlen(topic), (const uint8_t *)"p",
					  1, 1, false);
	assert_non_null(m);
	m->expiry_ms = expiry_ms;
	return m;
}

/* Push a new message (the queue keeps the only reference). */
static void push(struct moat_session *s, const char *topic, uint64_t exp)
{
	struct moat_msg *m = msg(topic, exp);
	assert_int_equal(moat__squeue_push(s, m, 1, false, 0, 0), MOAT_OK);
	moat_msg_unref(&m);
}

/* Pop one and check its topic. */
static void pop_is(struct moat_session *s, const char *topic)
{
	struct moat_qitem it;
	assert_true(moat__squeue_pop(s, &it));
	assert_string_equal(it.msg->topic, topic);
	moat_msg_unref(&it.msg);
}

static void drain(struct moat_session *s)
{
	struct moat_qitem it;
	while (moat__squeue_pop(s, &it))
		moat_msg_unref(&it.msg);
	assert_int_equal(s->qlen, 0);
	assert_int_equal(s->queued_bytes, 0);
	assert_null(s->qexp);
	moat__squeue_free(s);
}

static void test_fifo_without_expiry(void **state)
{
	(void)state;
	struct moat_session s = {0};
	char t[16];
	for (int i = 0; i < 100; i++) {
		snprintf(t, sizeof(t), "t%d", i);
		push(&s, t, 0);
	}
	assert_int_equal(s.qlen, 100);
	assert_int_equal(s.queued_bytes, 100 * 1 + 10 * 2 + 90 * 3);
	assert_null(s.qexp); /* nothing can expire: no heap */
	assert_int_equal(moat__squeue_purge(&s, UINT64_MAX), 0);
	assert_int_equal(s.qlen, 100);
	for (int i = 0; i < 100; i++) {
		snprintf(t, sizeof(t), "t%d", i);
		assert_string_equal(moat__squeue_head(&s)->msg->topic, t);
		pop_is(&s, t);
	}
	assert_null(moat__squeue_head(&s));
	/* The worker's tick gives an empty queue's ring back. */
	assert_non_null(s.queue);
	moat_session_trim(&s);
	assert_null(s.queue);
	drain(&s);
}

static void test_purge_drops_expired_keeps_order(void **state)
{
	(void)state;
	struct moat_session s = {0};
	push(&s, "a", 0);
	push(&s, "b", 100);
	push(&s, "c", 300);
	push(&s, "d", 0);
	push(&s, "e", 200);
	push(&s, "f", 100);
	assert_int_equal(moat__squeue_purge(&s, 99), 0);
	assert_int_equal(moat__squeue_purge(&s, 100), 2); /* b, f */
	assert_int_equal(s.qlen, 4);
	assert_int_equal(s.queued_bytes, 4 * 2);
	assert_int_equal(moat__squeue_purge(&s, 100), 0);
	pop_is(&s, "a");
	assert_int_equal(moat__squeue_purge(&s, 250), 1); /* e */
	pop_is(&s, "c");
	pop_is(&s, "d");
	assert_null(moat__squeue_head(&s));
	drain(&s);
}

static void test_stale_deadline_is_not_applied_to_another(void **state)
{
	(void)state;
	/* "x" leaves by the head; its deadline must not remove the message
	 * that comes to sit where it was. */
	struct moat_session s = {0};
	push(&s, "x", 10);
	pop_is(&s, "x");
	push(&s, "y", 0);
	push(&s, "z", 50);
	pop_is(&s, "y");
	push(&s, "w", 0);
	assert_int_equal(moat__squeue_purge(&s, 20), 0);
	assert_int_equal(moat__squeue_purge(&s, 60), 1); /* z */
	pop_is(&s, "w");
	drain(&s);
}

static void test_full_of_holes_is_compacted(void **state)
{
	(void)state;
	struct moat_session s = {0};
	char t[16];
	/* 1000 messages, all but every tenth expire: the ring is compacted
	 * (no more holes than messages), the rest keep their order. */
	for (int i = 0; i < 1000; i++) {
		snprintf(t, sizeof(t), "m%d", i);
		push(&s, t, i % 10 ? 5 : 0);
	}
	assert_int_equal(moat__squeue_purge(&s, 5), 900);
	assert_int_equal(s.qlen, 100);
	assert_true(s.qused - s.qlen <= s.qlen);
	for (int i = 0; i < 1000; i += 10) {
		snprintf(t, sizeof(t), "m%d", i);
		pop_is(&s, t);
	}
	drain(&s);
}

static void test_out_of_memory_leaves_queue_intact(void **state)
{
	(void)state;
	struct moat_session s = {0};
	for (int i = 0; i < 16; i++)
		push(&s, "q", 0); /* the ring is full: the next one grows it */
	struct moat_msg *m = msg("late", 7);
	for (int k = 1; k <= 3; k++) {
		moat_alloc_fail_at(k);
		int rc = moat__squeue_push(&s, m, 1, false, 0, 0);
		moat_alloc_fail_at(0);
		if (rc == MOAT_OK)
			break;
		assert_int_equal(rc, MOAT_ENOMEM);
		assert_int_equal(s.qlen, 16);
		assert_int_equal(s.queued_bytes, 16 * 2);
	}
	moat_msg_unref(&m);
	assert_int_equal(moat__squeue_purge(&s, 7), 1);
	assert_int_equal(s.qlen, 16);
	drain(&s);
}

/* ---- random operations against a model -------------------------------- */

struct model {
	uint32_t id[4096];
	uint64_t exp[4096];
	size_t n;
};

static void model_purge(struct model *md, uint64_t now)
{
	size_t k = 0;
	for (size_t i = 0; i < md->n; i++)
		if (!md->exp[i] || md->exp[i] > now) {
			md->id[k] = md->id[i];
			md->exp[k++] = md->exp[i];
		}
	md->n = k;
}

static void test_random_against_model(void **state)
{
	(void)state;
	static struct model md;
	struct moat_session s = {0};
	uint64_t now = 1000;
	uint32_t next = 0, peak = 0;
	md.n = 0;
	srand(14);
	for (int op = 0; op < 200000; op++) {
		int r = rand() % 100;
		if (r < 55 && md.n < 4096) {
			char t[16];
			uint64_t exp = rand() % 3 ? now + (uint64_t)(rand() % 200)
						  : 0;
			snprintf(t, sizeof(t), "%u", next);
			push(&s, t, exp);
			md.id[md.n] = next++;
			md.exp[md.n++] = exp;
		} else if (r < 90) {
			/* What is delivered is checked as on delivery. */
			struct moat_qitem it;
			bool got = moat__squeue_pop(&s, &it);
			assert_int_equal(got, md.n > 0);
			if (!got)
				continue;
			char t[16];
			snprintf(t, sizeof(t), "%u", md.id[0]);
			assert_string_equal(it.msg->topic, t);
			moat_msg_unref(&it.msg);
			memmove(md.id, md.id + 1, --md.n * sizeof(md.id[0]));
			memmove(md.exp, md.exp + 1, md.n * sizeof(md.exp[0]));
		} else {
			now += (uint64_t)(rand() % 20);
			size_t before = md.n;
			model_purge(&md, now);
			assert_int_equal(moat__squeue_purge(&s, now),
					 before - md.n);
		}
		assert_int_equal(s.qlen, md.n);
		peak = s.qlen > peak ? s.qlen : peak;
		/* Bounded memory: slots within 4 x the most messages, heap
		 * entries within the slots + stale ones (at most the live
		 * ones, or a quarter of the slots). */
		assert_true(s.qcap <= 4 * peak + 16);
		if (s.qexp)
			assert_true(s.qexp->n <= 2 * s.qused + 1);
	}
	drain(&s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_fifo_without_expiry,
						setup_baseline,
						teardown_no_leaks),
		cmocka_unit_test_setup_teardown(
			test_purge_drops_expired_keeps_order, setup_baseline,
			teardown_no_leaks),
		cmocka_unit_test_setup_teardown(
			test_stale_deadline_is_not_applied_to_another,
			setup_baseline, teardown_no_leaks),
		cmocka_unit_test_setup_teardown(test_full_of_holes_is_compacted,
						setup_baseline,
						teardown_no_leaks),
		cmocka_unit_test_setup_teardown(
			test_out_of_memory_leaves_queue_intact, setup_baseline,
			teardown_no_leaks),
		cmocka_unit_test_setup_teardown(test_random_against_model,
						setup_baseline,
						teardown_no_leaks),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
