/* CoAP message parse and encode (RFC 7252 §3): the bounded reader, the
 * option iterator and the writer.  See coap.h for the contract. */
#include <string.h>

#include "coap.h"

#define OPT_LEN_MAX (269u + 65535u) /* 14-nibble extended length */

/* The delta or length of nibble nib, reading its extended bytes at *p.
 * 0, or -1 for nibble 15 (reserved outside the payload marker) or
 * missing extended bytes. */
static int ext_value(unsigned nib, const uint8_t **p, const uint8_t *end,
		     uint32_t *out)
{
	const uint8_t *q = *p;
	if (nib < 13) {
		*out = nib;
		return 0;
	}
	if (nib == 13) {
		if (end - q < 1)
			return -1;
		*out = 13u + q[0];
		*p = q + 1;
		return 0;
	}
	if (nib == 14) {
		if (end - q < 2)
			return -1;
		*out = 269u + ((uint32_t)q[0] << 8 | q[1]);
		*p = q + 2;
		return 0;
	}
	return -1;
}

/* One option at *pp; *num is the previous option's number.  1 with *o
 * set and *pp advanced; 0 at the end or at the payload marker (*pp left
 * on it); -1 for a format error. */
static int opt_read(const uint8_t **pp, const uint8_t *end, uint32_t *num,
		    struct coap_opt *o)
{
	const uint8_t *p = *pp;
	if (p >= end || *p == COAP_PAYLOAD_MARKER)
		return 0;
	uint8_t b = *p++;
	uint32_t delta, len;
	if (ext_value(b >> 4, &p, end, &delta) ||
	    ext_value(b & 15u, &p, end, &len))
		return -1;
	if ((size_t)(end - p) < len || delta > COAP_OPTNUM_MAX - *num)
		return -1;
	*num += delta;
	o->num = (uint16_t)*num;
	o->len = len;
	o->val = p;
	*pp = p + len;
	return 1;
}

int coap_parse(const uint8_t *p, size_t n, struct coap_msg *m)
{
	memset(m, 0, sizeof(*m));
	if (n < COAP_HEADER_LEN)
		return MOAT_EMALFORMED;
	m->type = (uint8_t)((p[0] >> 4) & 3u);
	m->code = p[1];
	m->mid = (uint16_t)(p[2] << 8 | p[3]);
	size_t tkl = p[0] & 15u;
	if ((p[0] >> 6) != COAP_VERSION || tkl > COAP_TOKEN_MAX ||
	    n - COAP_HEADER_LEN < tkl)
		return MOAT_EMALFORMED;
	/* §4.1: an Empty message is the header alone. */
	if (m->code == COAP_EMPTY && n != COAP_HEADER_LEN)
		return MOAT_EMALFORMED;
	m->tkl = (uint8_t)tkl;
	if (tkl)
		memcpy(m->token, p + COAP_HEADER_LEN, tkl);
	const uint8_t *q = p + COAP_HEADER_LEN + tkl, *end = p + n;
	m->opts = q;
	uint32_t num = 0;
	struct coap_opt o;
	int r;
	while ((r = opt_read(&q, end, &num, &o)) == 1)
		m->n_opts++;
	if (r < 0)
		return MOAT_EMALFORMED;
	m->opts_len = (size_t)(q - m->opts);
	if (q < end) { /* the payload marker */
		q++;
		/* §3: a marker followed by a zero-length payload is an
		 * error. */
		if (q == end)
			return MOAT_EMALFORMED;
		m->payload = q;
		m->payload_len = (size_t)(end - q);
	}
	return MOAT_OK;
}

void coap_opt_iter_init(struct coap_opt_iter *it, const struct coap_msg *m)
{
	it->p = m->opts;
	it->end = m->opts ? m->opts + m->opts_len : NULL;
	it->num = 0;
}

bool coap_opt_next(struct coap_opt_iter *it, struct coap_opt *o)
{
	if (!it->p)
		return false;
	return opt_read(&it->p, it->end, &it->num, o) == 1;
}

bool coap_opt_find(const struct coap_msg *m, uint16_t num,
		   struct coap_opt *o)
{
	struct coap_opt_iter it;
	struct coap_opt x;
	coap_opt_iter_init(&it, m);
	while (coap_opt_next(&it, &x)) {
		if (x.num == num) {
			*o = x;
			return true;
		}
		if (x.num > num)
			break;
	}
	return false;
}

size_t coap_opt_count(const struct coap_msg *m, uint16_t num)
{
	struct coap_opt_iter it;
	struct coap_opt o;
	size_t n = 0;
	coap_opt_iter_init(&it, m);
	while (coap_opt_next(&it, &o) && o.num <= num)
		n += o.num == num;
	return n;
}

int coap_uint_decode(const uint8_t *p, size_t n, uint32_t *v)
{
	if (n > 4)
		return MOAT_EMALFORMED;
	uint32_t x = 0;
	for (size_t i = 0; i < n; i++)
		x = x << 8 | p[i];
	*v = x;
	return MOAT_OK;
}

size_t coap_uint_encode(uint32_t v, uint8_t out[4])
{
	size_t n = v > 0xFFFFFFu ? 4 : v > 0xFFFFu ? 3 : v > 0xFFu ? 2 : v ? 1 : 0;
	for (size_t i = 0; i < n; i++)
		out[i] = (uint8_t)(v >> (8 * (n - 1 - i)));
	return n;
}

int coap_opt_uint(const struct coap_msg *m, uint16_t num, size_t maxlen,
		  uint32_t *v)
{
	struct coap_opt o;
	if (!coap_opt_find(m, num, &o))
		return MOAT_ENOTFOUND;
	if (o.len > maxlen)
		return MOAT_EMALFORMED;
	return coap_uint_decode(o.val, o.len, v);
}

int coap_block_decode(uint32_t v, struct coap_block *b)
{
	if ((v & 7u) == 7u || v > 0xFFFFFFu)
		return MOAT_EMALFORMED;
	b->num = v >> 4;
	b->more = (v & 8u) != 0;
	b->szx = (uint8_t)(v & 7u);
	return MOAT_OK;
}

uint32_t coap_block_encode(const struct coap_block *b)
{
	return b->num << 4 | (b->more ? 8u : 0u) | (b->szx & 7u);
}

int coap_opt_block(const struct coap_msg *m, uint16_t num,
		   struct coap_block *b)
{
	uint32_t v;
	int rc = coap_opt_uint(m, num, 3, &v);
	return rc == MOAT_OK ? coap_block_decode(v, b) : rc;
}

uint8_t coap_block_szx_for(size_t n)
{
	uint8_t szx = 0;
	while (szx < COAP_BLOCK_SZX_MAX && coap_block_size(szx) < n)
		szx++;
	return szx;
}

bool coap_observe_newer(uint32_t v1, uint64_t t1_ms, uint32_t v2,
			uint64_t t2_ms)
{
	const uint32_t half = 1u << 23;
	v1 &= COAP_OBSERVE_SEQ_MASK;
	v2 &= COAP_OBSERVE_SEQ_MASK;
	if ((v1 < v2 && v2 - v1 < half) || (v1 > v2 && v1 - v2 > half))
		return true;
	return t2_ms > t1_ms + 128000u;
}

bool coap_no_response(const struct coap_msg *m, uint8_t code)
{
	uint32_t v;
	if (coap_opt_uint(m, COAP_OPT_NO_RESPONSE, 1, &v) != MOAT_OK)
		return false;
	switch (COAP_CODE_CLASS(code)) {
	case 2: return (v & COAP_NO_RESPONSE_2XX) != 0;
	case 4: return (v & COAP_NO_RESPONSE_4XX) != 0;
	case 5: return (v & COAP_NO_RESPONSE_5XX) != 0;
	default: return false;
	}
}

/* ---- writer ------------------------------------------------------------ */

void coap_wr_init(struct coap_wr *w, uint8_t *buf, size_t cap)
{
	memset(w, 0, sizeof(*w));
	w->buf = buf;
	w->cap = cap;
}

static void put(struct coap_wr *w, const void *p, size_t n)
{
	if (w->err || n == 0)
		return;
	if (w->cap - w->len < n) {
		w->err = MOAT_ELIMIT;
		return;
	}
	memcpy(w->buf + w->len, p, n);
	w->len += n;
}

void coap_wr_header(struct coap_wr *w, uint8_t type, uint8_t code,
		    uint16_t mid, const uint8_t *token, size_t tkl)
{
	if (!w->err && (w->len != 0 || tkl > COAP_TOKEN_MAX || type > 3)) {
		w->err = MOAT_EINVAL;
		return;
	}
	uint8_t h[4] = {(uint8_t)(COAP_VERSION << 6 | (unsigned)type << 4 | tkl), code,
			(uint8_t)(mid >> 8), (uint8_t)mid};
	put(w, h, sizeof(h));
	put(w, token, tkl);
}

/* The nibble for v and its extended bytes in ext[*extn]. */
static unsigned nibble(uint32_t v, uint8_t ext[2], size_t *extn)
{
	if (v < 13) {
		*extn = 0;
		return v;
	}
	if (v < 269) {
		ext[0] = (uint8_t)(v - 13);
		*extn = 1;
		return 13;
	}
	ext[0] = (uint8_t)((v - 269) >> 8);
	ext[1] = (uint8_t)(v - 269);
	*extn = 2;
	return 14;
}

void coap_wr_opt(struct coap_wr *w, uint16_t num, const void *val,
		 size_t len)
{
	if (!w->err && (w->len < COAP_HEADER_LEN || w->payload ||
			num < w->last || len > OPT_LEN_MAX)) {
		w->err = MOAT_EINVAL;
		return;
	}
	uint8_t dext[2], lext[2];
	size_t dn, ln;
	unsigned dnib = nibble(num - w->last, dext, &dn);
	unsigned lnib = nibble((uint32_t)len, lext, &ln);
	uint8_t first = (uint8_t)(dnib << 4 | lnib);
	put(w, &first, 1);
	put(w, dext, dn);
	put(w, lext, ln);
	put(w, val, len);
	w->last = num;
}

void coap_wr_opt_uint(struct coap_wr *w, uint16_t num, uint32_t v)
{
	uint8_t b[4];
	size_t n = coap_uint_encode(v, b);
	coap_wr_opt(w, num, b, n);
}

void coap_wr_payload(struct coap_wr *w, const void *p, size_t n)
{
	if (n == 0)
		return;
	if (!w->err && (w->len < COAP_HEADER_LEN || w->payload)) {
		w->err = MOAT_EINVAL;
		return;
	}
	uint8_t marker = COAP_PAYLOAD_MARKER;
	put(w, &marker, 1);
	put(w, p, n);
	w->payload = true;
}

int coap_wr_finish(const struct coap_wr *w, size_t *len)
{
	if (w->err)
		return w->err;
	if (w->len < COAP_HEADER_LEN)
		return MOAT_EINVAL;
	*len = w->len;
	return MOAT_OK;
}

int coap_encode(const struct coap_msg *m, uint8_t *buf, size_t cap,
		size_t *len)
{
	struct coap_wr w;
	struct coap_opt_iter it;
	struct coap_opt o;
	coap_wr_init(&w, buf, cap);
	coap_wr_header(&w, m->type, m->code, m->mid, m->token, m->tkl);
	coap_opt_iter_init(&it, m);
	while (coap_opt_next(&it, &o))
		coap_wr_opt(&w, o.num, o.val, o.len);
	coap_wr_payload(&w, m->payload, m->payload_len);
	return coap_wr_finish(&w, len);
}
