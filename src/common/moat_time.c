#include <time.h>

#include "moat_common.h"

uint64_t moat_now_ms(void)
{
	return moat_now_ns() / 1000000u;
}

uint64_t moat_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

int moat_ms_left(uint64_t deadline)
{
	uint64_t now = moat_now_ms();
	if (now >= deadline)
		return 0;
	uint64_t left = deadline - now;
	return left > 1000000000u ? 1000000000 : (int)left;
}

int64_t moat_wall_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec;
}
