/* CON retransmission timing (RFC 7252 §4.2) and the derived times of
 * §4.8.2, in integer milliseconds. */
#include "coap_layer.h"

void coap_retx_start(struct coap_retx *r, const struct coap_tx_params *p,
		     uint32_t rnd)
{
	uint64_t base = p->ack_timeout_ms;
	/* ACK_TIMEOUT * (1 + (factor - 1) * rnd / 2^32) */
	uint64_t extra = base * (uint64_t)(p->random_num - p->random_den) /
			 p->random_den;
	r->timeout_ms = (uint32_t)(base + ((extra * rnd) >> 32));
	r->sent = 1;
	r->max = p->max_retransmit;
}

bool coap_retx_next(struct coap_retx *r)
{
	if (r->sent > r->max)
		return false;
	r->sent++;
	r->timeout_ms = r->timeout_ms > UINT32_MAX / 2 ? UINT32_MAX
							: r->timeout_ms * 2;
	return true;
}

/* ACK_TIMEOUT * ACK_RANDOM_FACTOR * k */
static uint64_t scaled(const struct coap_tx_params *p, uint64_t k)
{
	return (uint64_t)p->ack_timeout_ms * k * p->random_num /
	       p->random_den;
}

uint64_t coap_max_transmit_span_ms(const struct coap_tx_params *p)
{
	return scaled(p, (1ull << p->max_retransmit) - 1);
}

uint64_t coap_max_transmit_wait_ms(const struct coap_tx_params *p)
{
	return scaled(p, (1ull << (p->max_retransmit + 1)) - 1);
}

uint64_t coap_exchange_lifetime_ms(const struct coap_tx_params *p)
{
	return coap_max_transmit_span_ms(p) + 2ull * p->max_latency_ms +
	       p->processing_delay_ms;
}

uint64_t coap_non_lifetime_ms(const struct coap_tx_params *p)
{
	return coap_max_transmit_span_ms(p) + p->max_latency_ms;
}
