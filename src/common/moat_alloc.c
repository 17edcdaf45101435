/* Allocation wrappers: a small header in front of each block records its
 * size, so that live bytes can be counted without a global lock. */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "moat_common.h"

/* Keeps the user pointer aligned for any type. */
#define HDR_SIZE ((size_t)16)

static atomic_size_t live_bytes;
static atomic_long fail_countdown;
static atomic_long fail_every;  /* torture mode: every n-th fails */
static atomic_ulong alloc_count;

static bool injected_failure(void)
{
	long every = atomic_load_explicit(&fail_every, memory_order_relaxed);
	if (every > 0) {
		unsigned long k = atomic_fetch_add_explicit(
			&alloc_count, 1, memory_order_relaxed);
		if ((k + 1) % (unsigned long)every == 0)
			return true;
	}
	long n = atomic_load_explicit(&fail_countdown, memory_order_relaxed);
	if (n <= 0)
		return false;
	n = atomic_fetch_sub(&fail_countdown, 1);
	return n == 1;
}

void moat_alloc_fail_at(long n)
{
	atomic_store(&fail_countdown, n);
}

void moat_alloc_fail_every(long n)
{
	atomic_store(&alloc_count, 0);
	atomic_store(&fail_every, n > 0 ? n : 0);
}

size_t moat_alloc_live_bytes(void)
{
	return atomic_load_explicit(&live_bytes, memory_order_relaxed);
}

void *moat_malloc(size_t n)
{
	if (n > SIZE_MAX - HDR_SIZE || injected_failure())
		return NULL;
	unsigned char *p = malloc(n + HDR_SIZE);
	if (!p)
		return NULL;
	memcpy(p, &n, sizeof(n));
	atomic_fetch_add_explicit(&live_bytes, n, memory_order_relaxed);
	return p + HDR_SIZE;
}

void *moat_calloc(size_t count, size_t n)
{
	if (n && count > SIZE_MAX / n)
		return NULL;
	void *p = moat_malloc(count * n);
	if (p)
		memset(p, 0, count * n);
	return p;
}

void *moat_realloc(void *ptr, size_t n)
{
	if (!ptr)
		return moat_malloc(n);
	if (n > SIZE_MAX - HDR_SIZE || injected_failure())
		return NULL;
	unsigned char *base = (unsigned char *)ptr - HDR_SIZE;
	size_t old;
	memcpy(&old, base, sizeof(old));
	unsigned char *p = realloc(base, n + HDR_SIZE);
	if (!p)
		return NULL;
	memcpy(p, &n, sizeof(n));
	if (n >= old)
		atomic_fetch_add_explicit(&live_bytes, n - old,
					  memory_order_relaxed);
	else
		atomic_fetch_sub_explicit(&live_bytes, old - n,
					  memory_order_relaxed);
	return p + HDR_SIZE;
}

void moat_free(void *ptr)
{
	if (!ptr)
		return;
	unsigned char *base = (unsigned char *)ptr - HDR_SIZE;
	size_t n;
	memcpy(&n, base, sizeof(n));
	atomic_fetch_sub_explicit(&live_bytes, n, memory_order_relaxed);
	free(base);
}

char *moat_strndup(const char *s, size_t len)
{
	char *p = moat_malloc(len + 1);
	if (!p)
		return NULL;
	if (len)
		memcpy(p, s, len);
	p[len] = '\0';
	return p;
}

char *moat_strdup(const char *s)
{
	return moat_strndup(s, strlen(s));
}
