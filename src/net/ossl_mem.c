/* OpenSSL's allocations counted per account: see ossl_mem.h. */
#include "net/ossl_mem.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

/* 16 bytes: the block after it keeps malloc's alignment. */
struct hdr {
	uint64_t size;
	uint64_t acc;
};

static atomic_uint_fast64_t totals[MOAT_OSSL_NACCOUNTS];
static _Thread_local enum moat_ossl_account current;
static bool installed;

static void count(uint64_t acc, uint64_t add, uint64_t sub)
{
	if (acc == MOAT_OSSL_NONE || acc >= MOAT_OSSL_NACCOUNTS)
		return;
	if (add)
		atomic_fetch_add_explicit(&totals[acc], add,
					  memory_order_relaxed);
	if (sub)
		atomic_fetch_sub_explicit(&totals[acc], sub,
					  memory_order_relaxed);
}

static void *m_alloc(size_t n, const char *file, int line)
{
	(void)file;
	(void)line;
	if (n > SIZE_MAX - sizeof(struct hdr))
		return NULL;
	struct hdr *h = malloc(sizeof(*h) + n);
	if (!h)
		return NULL;
	h->size = n;
	h->acc = (uint64_t)current;
	count(h->acc, n, 0);
	return h + 1;
}

static void m_free(void *p, const char *file, int line)
{
	(void)file;
	(void)line;
	if (!p)
		return;
	struct hdr *h = (struct hdr *)p - 1;
	count(h->acc, 0, h->size);
	free(h);
}

static void *m_realloc(void *p, size_t n, const char *file, int line)
{
	if (!p)
		return m_alloc(n, file, line);
	if (!n) {
		m_free(p, file, line);
		return NULL;
	}
	if (n > SIZE_MAX - sizeof(struct hdr))
		return NULL;
	struct hdr *h = (struct hdr *)p - 1;
	uint64_t old = h->size;
	uint64_t acc = h->acc; /* the block stays with its owner */
	struct hdr *nh = realloc(h, sizeof(*nh) + n);
	if (!nh)
		return NULL;
	nh->size = n;
	count(acc, n > old ? n - old : 0, old > n ? old - n : 0);
	return nh + 1;
}

bool moat_ossl_mem_install(void)
{
	if (!installed)
		installed = CRYPTO_set_mem_functions(m_alloc, m_realloc,
						     m_free) == 1;
	return installed;
}

bool moat_ossl_mem_installed(void)
{
	return installed;
}

enum moat_ossl_account moat_ossl_account_set(enum moat_ossl_account acc)
{
	enum moat_ossl_account prev = current;
	current = acc;
	return prev;
}

uint64_t moat_ossl_bytes(enum moat_ossl_account acc)
{
	return acc < MOAT_OSSL_NACCOUNTS
		       ? atomic_load_explicit(&totals[acc],
					      memory_order_relaxed)
		       : 0;
}
