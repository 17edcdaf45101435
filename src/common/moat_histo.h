/* Fixed-bucket latency histograms with one writer and any readers.
 *
 * The writer (one worker, or the store thread) adds with plain relaxed
 * loads and stores: no read-modify-write instruction, no shared cache
 * line, so recording costs a few cycles.  A reader (the metrics scrape)
 * loads each field relaxed; a scrape may see an observation in count but
 * not yet in its bucket, which the next scrape corrects (Prometheus
 * tolerates that; the totals never go backwards). */
#ifndef MOAT_HISTO_H
#define MOAT_HISTO_H

#include <stdatomic.h>
#include <stdint.h>

/* Upper bounds in nanoseconds: 10us .. 10s, roughly 1-2.5-5 per decade. */
#define MOAT_HISTO_NBOUNDS 16
static const uint64_t moat_histo_bounds_ns[MOAT_HISTO_NBOUNDS] = {
	10000ull,     25000ull,     50000ull,      100000ull,
	250000ull,    500000ull,    1000000ull,    2500000ull,
	5000000ull,   10000000ull,  25000000ull,   50000000ull,
	100000000ull, 250000000ull, 1000000000ull, 10000000000ull,
};

struct moat_histo {
	/* bucket[i]: observations <= bound i and > bound i-1 (not
	 * cumulative; the renderer accumulates); bucket[NBOUNDS]: above
	 * the last bound. */
	atomic_uint_fast64_t bucket[MOAT_HISTO_NBOUNDS + 1];
	atomic_uint_fast64_t count;
	atomic_uint_fast64_t sum_ns;
};

/* Single-writer counter increment (see the comment at the top). */
#define MOAT_SW_ADD(field, v)                                                 \
	atomic_store_explicit(                                                \
		&(field),                                                     \
		atomic_load_explicit(&(field), memory_order_relaxed) + (v),   \
		memory_order_relaxed)

static inline void moat_histo_observe(struct moat_histo *h, uint64_t ns)
{
	unsigned i = 0;
	while (i < MOAT_HISTO_NBOUNDS && ns > moat_histo_bounds_ns[i])
		i++;
	MOAT_SW_ADD(h->bucket[i], 1);
	MOAT_SW_ADD(h->count, 1);
	MOAT_SW_ADD(h->sum_ns, ns);
}

#endif
