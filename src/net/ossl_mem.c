/* OpenSSL's allocations counted per account: see ossl_mem.h. */
#include "net/ossl_mem.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <openssl/crypto.h>

/* 16 bytes: the block after it keeps malloc's alignment. */
struct hdr {
	uint64_t size;
	uint32_t acc;
	uint32_t mapped; /* a captured block on its own pages */
};

/* Before the header of a mapped block (in its first page). */
struct ext {
	void **slot;
	size_t maplen;
};

static atomic_uint_fast64_t totals[MOAT_OSSL_NACCOUNTS];
static _Thread_local enum moat_ossl_account current;
static _Thread_local void **capture;
static bool installed;
/* Giving a captured block's pages back relies on OpenSSL 3.0's DTLS
 * writing its handshake buffer before reading it; other versions keep
 * their pages. */
static bool discard_ok;

static void count(uint32_t acc, uint64_t add, uint64_t sub)
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

/* Set by moat_ossl_mem_install(), before any thread runs. */
static size_t page;

static size_t page_size(void)
{
	return page;
}

static struct hdr *hdr_of(void *p)
{
	return (struct hdr *)p - 1;
}

static struct ext *ext_of(void *p)
{
	return (struct ext *)(void *)((char *)p - sizeof(struct hdr)) - 1;
}

/* A captured block: one page for the header, then the data on pages of
 * its own (so that they can be given back alone). */
static void *map_block(size_t n)
{
	size_t ps = page_size();
	if (n > SIZE_MAX - 2 * ps)
		return NULL;
	size_t len = ps + (n + ps - 1) / ps * ps;
	char *base = mmap(NULL, len, PROT_READ | PROT_WRITE,
			  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (base == MAP_FAILED)
		return NULL;
	void *p = base + ps;
	struct ext *e = ext_of(p);
	e->maplen = len;
	e->slot = capture;
	hdr_of(p)->mapped = 1;
	if (!*capture || hdr_of(*capture)->size < n)
		*capture = p;
	return p;
}

static void unmap_block(void *p)
{
	struct ext *e = ext_of(p);
	if (e->slot && *e->slot == p)
		*e->slot = NULL;
	(void)munmap((char *)p - page_size(), e->maplen);
}

static void *m_alloc(size_t n, const char *file, int line)
{
	(void)file;
	(void)line;
	if (n > SIZE_MAX - sizeof(struct hdr))
		return NULL;
	void *p;
	if (capture && n >= MOAT_OSSL_BIG) {
		if (!(p = map_block(n)))
			return NULL;
	} else {
		struct hdr *h = malloc(sizeof(*h) + n);
		if (!h)
			return NULL;
		h->mapped = 0;
		p = h + 1;
	}
	struct hdr *h = hdr_of(p);
	h->size = n;
	h->acc = (uint32_t)current;
	count(h->acc, n, 0);
	return p;
}

static void m_free(void *p, const char *file, int line)
{
	(void)file;
	(void)line;
	if (!p)
		return;
	struct hdr *h = hdr_of(p);
	count(h->acc, 0, h->size);
	if (h->mapped)
		unmap_block(p);
	else
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
	struct hdr *h = hdr_of(p);
	uint64_t old = h->size;
	uint32_t acc = h->acc; /* the block stays with its owner */
	if (h->mapped || (capture && n >= MOAT_OSSL_BIG)) {
		/* To or from pages of its own: a new block. */
		enum moat_ossl_account cur = current;
		current = (enum moat_ossl_account)acc;
		void *np = m_alloc(n, file, line);
		current = cur;
		if (!np)
			return NULL;
		memcpy(np, p, old < n ? old : n);
		m_free(p, file, line);
		return np;
	}
	struct hdr *nh = realloc(h, sizeof(*nh) + n);
	if (!nh)
		return NULL;
	nh->size = n;
	count(acc, n > old ? n - old : 0, old > n ? old - n : 0);
	return nh + 1;
}

void moat_ossl_capture(void **slot)
{
	capture = slot;
}

void moat_ossl_capture_move(void *block, void **slot)
{
	if (!block || !hdr_of(block)->mapped)
		return;
	struct ext *e = ext_of(block);
	if (e->slot && *e->slot == block)
		*e->slot = NULL;
	e->slot = slot;
	*slot = block;
}

void moat_ossl_discard(void *block)
{
	if (!block || !hdr_of(block)->mapped || !discard_ok)
		return;
	size_t ps = page_size();
	size_t len = (size_t)hdr_of(block)->size / ps * ps;
	if (len)
		(void)madvise(block, len, MADV_DONTNEED);
}

bool moat_ossl_mem_install(void)
{
	long ps = sysconf(_SC_PAGESIZE);
	page = ps > 0 ? (size_t)ps : 4096;
	discard_ok = (OpenSSL_version_num() & 0xFFF00000UL) == 0x30000000UL;
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
