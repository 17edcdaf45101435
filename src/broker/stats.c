/* Sums of the per-worker counters (struct moat_wstats): for $SYS, the
 * metrics and the API.  Any thread; no lock (each counter has one writer,
 * see common/moat_histo.h). */
#include "broker_int.h"

static uint64_t ld(const atomic_uint_fast64_t *a)
{
	return atomic_load_explicit(a, memory_order_relaxed);
}

uint64_t moat__wstat_sum(const struct moat_broker *b, size_t offset)
{
	uint64_t sum = 0;
	for (unsigned i = 0; i < b->nworkers; i++)
		sum += ld((const atomic_uint_fast64_t *)(const void *)((
			const char *)&b->workers[i].st + offset));
	return sum;
}

uint64_t moat__traffic(const struct moat_broker *b, enum moat_traffic t)
{
	uint64_t sum = 0;
	for (unsigned p = 0; p < MOAT_PROTO_N; p++) {
		for (unsigned q = 0; q < 3; q++) {
			if (t == MOAT_TRAFFIC_MSGS_IN)
				sum += MOAT_WSTAT_SUM(b, msgs_in[p][q]);
			else if (t == MOAT_TRAFFIC_MSGS_OUT)
				sum += MOAT_WSTAT_SUM(b, msgs_out[p][q]);
		}
		if (t == MOAT_TRAFFIC_BYTES_IN)
			sum += MOAT_WSTAT_SUM(b, bytes_in[p]);
		else if (t == MOAT_TRAFFIC_BYTES_OUT)
			sum += MOAT_WSTAT_SUM(b, bytes_out[p]);
	}
	return sum;
}

uint64_t moat__leak_findings(const struct moat_broker *b, unsigned cat)
{
	uint64_t sum = 0;
	for (unsigned a = 0; a < 4; a++)
		sum += MOAT_WSTAT_SUM(b, leaks[cat][a]);
	return sum;
}
