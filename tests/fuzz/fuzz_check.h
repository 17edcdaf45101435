/* What every fuzz harness shares: CHECK(cond) aborts (a finding for
 * libFuzzer) with the property that failed. */
#ifndef MOAT_FUZZ_CHECK_H
#define MOAT_FUZZ_CHECK_H

#include <stdio.h>
#include <stdlib.h>

#define CHECK(cond)                                                           \
	do {                                                                  \
		if (!(cond)) {                                                \
			fprintf(stderr, "%s:%d: property failed: %s\n",       \
				__FILE__, __LINE__, #cond);                   \
			abort();                                              \
		}                                                             \
	} while (0)

#endif
