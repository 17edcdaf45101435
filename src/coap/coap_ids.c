/* Message ids and tokens from OpenSSL's CSPRNG.  RFC 7252 §11.4 and
 * RFC 9175 §4: a random, non-trivial token is what keeps off-path
 * attackers from spoofing responses; random message ids make RST/ACK
 * spoofing a guess too (AUD-CO-04 checks both). */
#include <openssl/rand.h>
#include <string.h>

#include "coap_layer.h"

int coap_random(void *buf, size_t n)
{
	if (n > INT32_MAX)
		return MOAT_EINVAL;
	return RAND_bytes(buf, (int)n) == 1 ? MOAT_OK : MOAT_EIO;
}

void coap_mid_init(struct coap_mid_gen *g)
{
	memset(g, 0, sizeof(*g));
}

static bool recent(const struct coap_mid_gen *g, uint16_t mid)
{
	for (size_t i = 0; i < g->n; i++)
		if (g->recent[i] == mid)
			return true;
	return false;
}

int coap_mid_pick(struct coap_mid_gen *g, const uint16_t *rnd, size_t n,
		  uint16_t *mid)
{
	for (size_t i = 0; i < n; i++) {
		if (recent(g, rnd[i]))
			continue;
		g->recent[g->next] = rnd[i];
		g->next = (g->next + 1) % COAP_MID_RECENT;
		if (g->n < COAP_MID_RECENT)
			g->n++;
		*mid = rnd[i];
		return MOAT_OK;
	}
	return MOAT_EAGAIN;
}

int coap_mid_next(struct coap_mid_gen *g, uint16_t *mid)
{
	/* 64 of 65536 ids are excluded: 8 candidates all being recent has
	 * probability (1/1024)^8; draw again then. */
	for (;;) {
		uint16_t rnd[8];
		if (coap_random(rnd, sizeof(rnd)) != MOAT_OK)
			return MOAT_EIO;
		if (coap_mid_pick(g, rnd, MOAT_ARRAY_LEN(rnd), mid) == MOAT_OK)
			return MOAT_OK;
	}
}

int coap_token_new(uint8_t *tok, size_t len)
{
	if (len < 1 || len > COAP_TOKEN_MAX)
		return MOAT_EINVAL;
	return coap_random(tok, len);
}
