/* Block-wise reassembly (RFC 7959 §2.3, §2.4): blocks are appended in
 * order into a bounded buffer that grows as data arrives.  A peer that
 * declares a 1 GiB Size2 gets nothing allocated for it: the declaration
 * is only compared with the bound, and the buffer holds what was really
 * received. */
#include <string.h>

#include "coap_layer.h"

void coap_reasm_init(struct coap_reasm *r, size_t max)
{
	memset(r, 0, sizeof(*r));
	r->max = max;
	moat_buf_init(&r->body, max);
}

void coap_reasm_cleanup(struct coap_reasm *r)
{
	moat_buf_cleanup(&r->body);
}

void coap_reasm_reset(struct coap_reasm *r)
{
	size_t max = r->max;
	coap_reasm_cleanup(r);
	coap_reasm_init(r, max);
}

int coap_reasm_declared(const struct coap_reasm *r, uint32_t size)
{
	return size > r->max ? MOAT_ELIMIT : MOAT_OK;
}

int coap_reasm_etag(struct coap_reasm *r, const uint8_t *etag, size_t len)
{
	if (len > sizeof(r->etag))
		return MOAT_EPROTO;
	if (!r->etag_set) {
		if (len)
			memcpy(r->etag, etag, len);
		r->etag_len = (uint8_t)len;
		r->etag_set = true;
		return MOAT_OK;
	}
	if (len != r->etag_len || (len && memcmp(etag, r->etag, len)))
		return MOAT_EPROTO;
	return MOAT_OK;
}

int coap_reasm_add(struct coap_reasm *r, const struct coap_block *b,
		   const uint8_t *data, size_t n)
{
	size_t size = coap_block_size(b->szx);
	size_t have = moat_buf_used(&r->body);
	/* num < 2^20 and size <= 1024: the offset fits easily. */
	size_t off = (size_t)b->num * size;
	if (n > size || (b->more && n != size))
		return MOAT_EPROTO;
	/* A retransmitted block we hold already (a lost ACK, a duplicate
	 * response) is harmless; a gap, an overlap or anything after the
	 * last block is not. */
	if (off + n <= have && (off < have || r->complete))
		return MOAT_EAGAIN;
	if (off != have || r->complete)
		return MOAT_EPROTO;
	if (n > r->max - have)
		return MOAT_ELIMIT;
	if (moat_buf_append(&r->body, data, n) != MOAT_OK)
		return MOAT_ENOMEM;
	r->complete = !b->more;
	return MOAT_OK;
}

uint32_t coap_reasm_next_num(const struct coap_reasm *r, uint8_t szx)
{
	return (uint32_t)(moat_buf_used(&r->body) / coap_block_size(szx));
}
