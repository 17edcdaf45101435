#include <time.h>

#include "moat_common.h"

uint64_t moat_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
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
