/* `moat bench` statistics: a latency histogram and per-stream sequence
 * accounting.  Both are fixed-size and never allocate per message. */
#include <string.h>
#include <time.h>

#include "bench.h"

uint64_t bench_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* ---- histogram ------------------------------------------------------------
 * Values below 32 have a bucket each; above, each power of two [2^e,
 * 2^(e+1)) is cut into 32 equal buckets. */

static unsigned log2_floor(uint64_t v)
{
	return 63u - (unsigned)__builtin_clzll(v);
}

static size_t bucket_of(uint64_t v)
{
	if (v < BENCH_HIST_SUB)
		return (size_t)v;
	unsigned e = log2_floor(v); /* >= 5 */
	uint64_t m = v >> (e - 5u); /* 32 .. 63 */
	size_t i = (size_t)(e - 4u) * BENCH_HIST_SUB + (size_t)(m - 32u);
	return i < BENCH_HIST_N ? i : BENCH_HIST_N - 1;
}

/* The middle of bucket i. */
static uint64_t bucket_value(size_t i)
{
	if (i < BENCH_HIST_SUB)
		return i;
	unsigned e = (unsigned)(i / BENCH_HIST_SUB) + 4u;
	uint64_t m = (uint64_t)(i % BENCH_HIST_SUB) + 32u;
	uint64_t lo = m << (e - 5u);
	uint64_t width = (uint64_t)1 << (e - 5u);
	return lo + width / 2u;
}

void bench_hist_add(struct bench_hist *h, uint64_t v)
{
	if (h->count == 0 || v < h->min)
		h->min = v;
	if (v > h->max)
		h->max = v;
	h->count++;
	h->sum += (double)v;
	h->b[bucket_of(v)]++;
}

uint64_t bench_hist_quantile(const struct bench_hist *h, double q)
{
	if (!h->count)
		return 0;
	if (q >= 1.0)
		return h->max;
	/* The smallest value with at least q of the samples at or below. */
	uint64_t rank = (uint64_t)(q * (double)h->count);
	if ((double)rank < q * (double)h->count)
		rank++;
	if (rank == 0)
		rank = 1;
	uint64_t seen = 0;
	for (size_t i = 0; i < BENCH_HIST_N; i++) {
		seen += h->b[i];
		if (seen >= rank) {
			uint64_t v = bucket_value(i);
			/* Never outside what was actually seen. */
			if (v > h->max)
				v = h->max;
			if (v < h->min)
				v = h->min;
			return v;
		}
	}
	return h->max;
}

/* ---- sequence accounting ------------------------------------------------ */

static bool bit_get(const struct bench_stream *s, uint64_t seq)
{
	uint64_t i = seq % BENCH_SEQ_WIN;
	return (s->bits[i / 64u] >> (i % 64u)) & 1u;
}

static void bit_set(struct bench_stream *s, uint64_t seq)
{
	uint64_t i = seq % BENCH_SEQ_WIN;
	s->bits[i / 64u] |= (uint64_t)1 << (i % 64u);
}

/* Numbers [from, to) enter the window: not received (yet). */
static void bits_clear(struct bench_stream *s, uint64_t from, uint64_t to)
{
	if (to - from >= BENCH_SEQ_WIN) {
		memset(s->bits, 0, sizeof(s->bits));
		return;
	}
	for (uint64_t q = from; q < to; q++) {
		uint64_t i = q % BENCH_SEQ_WIN;
		s->bits[i / 64u] &= ~((uint64_t)1 << (i % 64u));
	}
}

uint64_t bench_stream_add(struct bench_stream *s, uint64_t seq)
{
	if (seq >= s->next) {
		uint64_t settled = seq + 1u - s->next;
		bits_clear(s, s->next, seq + 1u);
		bit_set(s, seq);
		s->next = seq + 1u;
		s->got++;
		return settled;
	}
	/* Below the newest: too old to tell, seen already, or late. */
	if (s->next - seq > BENCH_SEQ_WIN || bit_get(s, seq)) {
		s->dup++;
		return 0;
	}
	bit_set(s, seq);
	s->ooo++;
	s->got++;
	return 0;
}
