/* What OpenSSL allocates, counted byte for byte per account (ossl_mem.c).
 *
 * moatd installs these allocation functions into OpenSSL before anything
 * else runs (CRYPTO_set_mem_functions must come before OpenSSL's first
 * allocation).  Each block carries a small header with its size and the
 * account that was current in the allocating thread; code that works on
 * one kind of object (e.g. a DTLS session, coap_dtls.c) sets the thread's
 * current account around its OpenSSL calls, and the account's total then
 * holds exactly what those objects have allocated and not yet freed,
 * whichever thread frees it.  Outside an account nothing is counted. */
#ifndef MOAT_NET_OSSL_MEM_H
#define MOAT_NET_OSSL_MEM_H

#include <stdbool.h>
#include <stdint.h>

enum moat_ossl_account {
	MOAT_OSSL_NONE = 0,
	MOAT_OSSL_DTLS, /* moatd's DTLS sessions (coaps) */
	MOAT_OSSL_NACCOUNTS
};

/* Install the counting allocator: true when it is in place (false when
 * OpenSSL had already allocated something: then nothing is counted). */
bool moat_ossl_mem_install(void);
bool moat_ossl_mem_installed(void);
/* Make acc the calling thread's current account; returns the previous
 * one (to restore it). */
enum moat_ossl_account moat_ossl_account_set(enum moat_ossl_account acc);
/* Bytes allocated under acc and not yet freed. */
uint64_t moat_ossl_bytes(enum moat_ossl_account acc);

/* Large scratch blocks that can give their pages back.
 *
 * While a capture slot is set (by the calling thread), each block of at
 * least MOAT_OSSL_BIG bytes that OpenSSL allocates is mapped on its own
 * pages, and the largest one is recorded in *slot.  The allocator keeps
 * the slot true: freeing or moving the block clears it, so *slot is NULL
 * or a live block.  The slot must stay valid while its block lives (or be
 * moved with moat_ossl_capture_move).  moat_ossl_discard() gives the
 * block's pages back to the system: its contents become zeros, its size
 * and address stay (used for OpenSSL's DTLS handshake buffer, scratch
 * once the handshake is over: coap_dtls.c). */
#define MOAT_OSSL_BIG ((size_t)16 << 10)
void moat_ossl_capture(void **slot);
void moat_ossl_capture_move(void *block, void **slot);
void moat_ossl_discard(void *block);

#endif
