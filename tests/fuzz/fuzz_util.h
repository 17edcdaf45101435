/* Shared by the libFuzzer harnesses: property checks that abort (so that
 * libFuzzer saves the input) and exact-size heap copies (so that ASan
 * reports any read past the end of the input). */
#ifndef MOAT_FUZZ_UTIL_H
#define MOAT_FUZZ_UTIL_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                           \
	do {                                                                  \
		if (!(cond)) {                                                \
			fprintf(stderr, "%s:%d: property failed: %s\n",       \
				__FILE__, __LINE__, #cond);                   \
			abort();                                              \
		}                                                             \
	} while (0)

static inline uint8_t *fuzz_copy_exact(const uint8_t *p, size_t n)
{
	uint8_t *h = malloc(n ? n : 1);
	if (!h)
		abort();
	if (n)
		memcpy(h, p, n);
	return h;
}

#endif
