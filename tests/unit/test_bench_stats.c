/* Unit tests for `moat bench` statistics (apps/moat/bench/bench_stats.c): the
 * sequence accounting that counts lost, duplicated and out-of-order
 * messages, and the latency histogram's quantiles.  These cases cannot be
 * provoked on demand through a real broker, so they are checked here. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "bench.h"

static void test_stream_in_order(void **state)
{
	(void)state;
	struct bench_stream s;
	memset(&s, 0, sizeof(s));
	for (uint64_t i = 0; i < 5000; i++)
		assert_int_equal(bench_stream_add(&s, i), 1);
	assert_int_equal(s.next, 5000);
	assert_int_equal(s.got, 5000);
	assert_int_equal(s.dup, 0);
	assert_int_equal(s.ooo, 0);
}

static void test_stream_gap_then_late(void **state)
{
	(void)state;
	struct bench_stream s;
	memset(&s, 0, sizeof(s));
	assert_int_equal(bench_stream_add(&s, 0), 1);
	/* 1..3 passed over: settled for the window, missing for now. */
	assert_int_equal(bench_stream_add(&s, 4), 4);
	assert_int_equal(s.got, 2);
	/* 2 arrives late: out of order, and no longer missing. */
	assert_int_equal(bench_stream_add(&s, 2), 0);
	assert_int_equal(s.ooo, 1);
	assert_int_equal(s.got, 3);
	assert_int_equal(s.dup, 0);
	/* Again: now a duplicate. */
	assert_int_equal(bench_stream_add(&s, 2), 0);
	assert_int_equal(s.dup, 1);
	assert_int_equal(s.got, 3);
	/* Sent 5, got 3 distinct: 1 and 3 are lost. */
}

static void test_stream_duplicates(void **state)
{
	(void)state;
	struct bench_stream s;
	memset(&s, 0, sizeof(s));
	assert_int_equal(bench_stream_add(&s, 0), 1);
	assert_int_equal(bench_stream_add(&s, 0), 0);
	assert_int_equal(bench_stream_add(&s, 1), 1);
	assert_int_equal(bench_stream_add(&s, 0), 0);
	assert_int_equal(s.dup, 2);
	assert_int_equal(s.got, 2);
}

static void test_stream_window_wraps(void **state)
{
	(void)state;
	struct bench_stream s;
	memset(&s, 0, sizeof(s));
	/* Every other number, far beyond the ring size: the ring must be
	 * cleared as it wraps, so late ones are not taken for duplicates. */
	for (uint64_t i = 0; i < 10 * BENCH_SEQ_WIN; i += 2)
		bench_stream_add(&s, i);
	uint64_t top = 10 * BENCH_SEQ_WIN - 1;
	assert_int_equal(bench_stream_add(&s, top - 2), 0);
	assert_int_equal(s.ooo, 1);
	assert_int_equal(s.dup, 0);
	/* Older than the window: cannot tell, counted as a duplicate. */
	assert_int_equal(bench_stream_add(&s, 1), 0);
	assert_int_equal(s.dup, 1);
	/* A jump larger than the ring clears it whole. */
	assert_int_equal(bench_stream_add(&s, top + 5 * BENCH_SEQ_WIN),
			 5 * BENCH_SEQ_WIN + 1);
	assert_int_equal(bench_stream_add(&s, top + 5 * BENCH_SEQ_WIN - 1), 0);
	assert_int_equal(s.ooo, 2);
}

static void test_hist_quantiles(void **state)
{
	(void)state;
	static struct bench_hist h;
	memset(&h, 0, sizeof(h));
	assert_int_equal(bench_hist_quantile(&h, 0.5), 0);
	for (uint64_t v = 1; v <= 100000; v++)
		bench_hist_add(&h, v * 1000u);
	assert_int_equal(h.count, 100000);
	assert_int_equal(h.min, 1000);
	assert_int_equal(h.max, 100000000u);
	/* Within the 1/32 bucket width of the exact value. */
	uint64_t p50 = bench_hist_quantile(&h, 0.5);
	uint64_t p99 = bench_hist_quantile(&h, 0.99);
	uint64_t p999 = bench_hist_quantile(&h, 0.999);
	assert_in_range(p50, 50000000u - 50000000u / 32, 50000000u + 50000000u / 32);
	assert_in_range(p99, 99000000u - 99000000u / 32, 99000000u + 99000000u / 32);
	assert_in_range(p999, 99900000u - 99900000u / 32, 100000000u);
	assert_true(p50 <= p99 && p99 <= p999);
	assert_int_equal(bench_hist_quantile(&h, 1.0), h.max);
}

static void test_hist_small_and_huge(void **state)
{
	(void)state;
	static struct bench_hist h;
	memset(&h, 0, sizeof(h));
	bench_hist_add(&h, 0);
	bench_hist_add(&h, 7);
	bench_hist_add(&h, UINT64_MAX);
	assert_int_equal(bench_hist_quantile(&h, 0.0), 0);
	assert_int_equal(bench_hist_quantile(&h, 0.5), 7);
	assert_int_equal(bench_hist_quantile(&h, 1.0), UINT64_MAX);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_stream_in_order),
		cmocka_unit_test(test_stream_gap_then_late),
		cmocka_unit_test(test_stream_duplicates),
		cmocka_unit_test(test_stream_window_wraps),
		cmocka_unit_test(test_hist_quantiles),
		cmocka_unit_test(test_hist_small_and_huge),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
