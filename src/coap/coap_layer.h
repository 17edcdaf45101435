/* CoAP message-layer helpers shared by the `moat coap` client and moatd's
 * CoAP listener: retransmission timing (RFC 7252 §4.2, §4.8), message ids
 * and tokens from a CSPRNG (RFC 7252 §5.3.1, §11.4; RFC 9175 §4),
 * block-wise reassembly that grows with the data (RFC 7959), and Echo
 * values for address validation (RFC 9175 §2.4).
 *
 * Small pure modules: no sockets, no clocks (times are arguments), no
 * globals.  Only the random sources call OpenSSL's RAND_bytes. */
#ifndef MOAT_COAP_LAYER_H
#define MOAT_COAP_LAYER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "codec/coap.h"
#include "common/moat_common.h"

/* ---- transmission parameters (RFC 7252 §4.8, coap_retx.c) -------------- */
struct coap_tx_params {
	uint32_t ack_timeout_ms;   /* ACK_TIMEOUT, default 2000 */
	uint16_t random_num;	   /* ACK_RANDOM_FACTOR = num / den, */
	uint16_t random_den;	   /*   default 3 / 2 (1.5) */
	uint8_t max_retransmit;	   /* MAX_RETRANSMIT, default 4 */
	uint32_t max_latency_ms;   /* MAX_LATENCY, default 100 s */
	uint32_t processing_delay_ms; /* PROCESSING_DELAY = ACK_TIMEOUT */
};

#define COAP_TX_PARAMS_DEFAULT {2000, 3, 2, 4, 100000, 2000}

/* The state of one Confirmable message's retransmissions. */
struct coap_retx {
	uint32_t timeout_ms; /* wait this long for the ACK */
	uint8_t sent;	     /* transmissions so far (1 after start) */
	uint8_t max;	     /* MAX_RETRANSMIT */
};

/* First transmission: the timeout is a random duration between
 * ACK_TIMEOUT and ACK_TIMEOUT * ACK_RANDOM_FACTOR, chosen by rnd (any
 * 32-bit value, uniformly random in production). */
void coap_retx_start(struct coap_retx *r, const struct coap_tx_params *p,
		     uint32_t rnd);
/* The timeout expired without an ACK: true when the message must be sent
 * again (the timeout doubles), false when MAX_RETRANSMIT retransmissions
 * were already made and the exchange has failed. */
bool coap_retx_next(struct coap_retx *r);
/* The derived times of §4.8.2, in ms: MAX_TRANSMIT_SPAN (45 s by
 * default), MAX_TRANSMIT_WAIT (93 s), EXCHANGE_LIFETIME (247 s),
 * NON_LIFETIME (145 s). */
uint64_t coap_max_transmit_span_ms(const struct coap_tx_params *p);
uint64_t coap_max_transmit_wait_ms(const struct coap_tx_params *p);
uint64_t coap_exchange_lifetime_ms(const struct coap_tx_params *p);
uint64_t coap_non_lifetime_ms(const struct coap_tx_params *p);

/* ---- message ids and tokens (coap_ids.c) ------------------------------- */
/* n random bytes from OpenSSL's CSPRNG: MOAT_OK or MOAT_EIO. */
int coap_random(void *buf, size_t n);

#define COAP_MID_RECENT 64

/* Message ids are drawn at random (not sequential: an off-path attacker
 * cannot guess the next one, AUD-CO-04) and never repeat one of the last
 * COAP_MID_RECENT ids of this generator, so that duplicate detection
 * (§4.5) does not confuse two exchanges in flight. */
struct coap_mid_gen {
	uint16_t recent[COAP_MID_RECENT];
	size_t n;    /* ids held in recent (<= COAP_MID_RECENT) */
	size_t next; /* slot the next id overwrites */
};

void coap_mid_init(struct coap_mid_gen *g);
/* A new id: MOAT_OK, or MOAT_EIO when the CSPRNG fails. */
int coap_mid_next(struct coap_mid_gen *g, uint16_t *mid);
/* The same from caller-supplied random values (pure, for tests): takes
 * candidates from rnd[0..n) until one is not recent; MOAT_EAGAIN when
 * all were recent. */
int coap_mid_pick(struct coap_mid_gen *g, const uint16_t *rnd, size_t n,
		  uint16_t *mid);
/* A token of len (1..8) random bytes: MOAT_OK, MOAT_EINVAL, MOAT_EIO. */
int coap_token_new(uint8_t *tok, size_t len);

/* ---- block-wise reassembly (RFC 7959, coap_reasm.c) --------------------- */

/* A body arriving in blocks, appended in order into a buffer that grows
 * with the data received and never beyond max.  A declared Size1/Size2
 * is only compared with max (coap_reasm_declared), never allocated. */
struct coap_reasm {
	struct moat_buf body;
	size_t max;
	bool complete;	       /* the last block (M=0) arrived */
	uint8_t etag[8];       /* ETag of the first block, if any */
	uint8_t etag_len;
	bool etag_set;
};

void coap_reasm_init(struct coap_reasm *r, size_t max);
void coap_reasm_cleanup(struct coap_reasm *r);
/* Start over (a changed ETag: the resource changed under us). */
void coap_reasm_reset(struct coap_reasm *r);
/* A Size1/Size2 value the peer declared: MOAT_ELIMIT when above max. */
int coap_reasm_declared(const struct coap_reasm *r, uint32_t size);
/* The ETag of a block (NULL/0 when it has none): the first one is kept;
 * MOAT_EPROTO when a later block's differs (RFC 7959 §2.4). */
int coap_reasm_etag(struct coap_reasm *r, const uint8_t *etag, size_t len);
/* Block b carrying data[0..n).  MOAT_OK: appended (r->complete set by the
 * last block); MOAT_EAGAIN: a retransmitted block already held (ignore
 * it); MOAT_EPROTO: a gap, an overlap, a block after the last, or a
 * non-last block whose payload is not exactly the block size; MOAT_ELIMIT:
 * the body would exceed max; MOAT_ENOMEM. */
int coap_reasm_add(struct coap_reasm *r, const struct coap_block *b,
		   const uint8_t *data, size_t n);
/* The number of the next block to ask for, in blocks of size szx. */
uint32_t coap_reasm_next_num(const struct coap_reasm *r, uint8_t szx);

/* ---- Echo for address validation (RFC 9175 §2.4, coap_echo.c) ----------- */
#define COAP_ECHO_KEY_LEN 32
#define COAP_ECHO_MAC_LEN 12
#define COAP_ECHO_LEN (4 + COAP_ECHO_MAC_LEN) /* time || truncated MAC */
#define COAP_ADDR_KEY_MAX 19 /* family, port, IPv6 address */

struct coap_echo_key {
	uint8_t k[COAP_ECHO_KEY_LEN];
};

/* A fresh random key (per process; rotating it invalidates every Echo). */
int coap_echo_key_init(struct coap_echo_key *key);
/* The bytes that identify a peer in an Echo MAC: family, port and
 * address of an AF_INET/AF_INET6 sockaddr.  Their length, or 0 for
 * another family. */
size_t coap_addr_key(const struct sockaddr *sa, uint8_t out[COAP_ADDR_KEY_MAX]);
/* Echo value for the peer addr at time now_s (seconds of any clock that
 * the verifier also uses): now_s (4 bytes) || HMAC-SHA-256(key, now_s ||
 * addr) truncated to 12 bytes.  MOAT_OK or MOAT_EIO. */
int coap_echo_make(const struct coap_echo_key *key, uint32_t now_s,
		   const uint8_t *addr, size_t addrlen,
		   uint8_t out[COAP_ECHO_LEN]);
/* MOAT_OK when val is an Echo this key made for addr at most validity_s
 * seconds before now_s (and not after now_s); MOAT_EDENIED otherwise
 * (wrong length, another address or key, expired, from the future). */
int coap_echo_check(const struct coap_echo_key *key, uint32_t now_s,
		    uint32_t validity_s, const uint8_t *addr, size_t addrlen,
		    const uint8_t *val, size_t len);

#endif
