#include <string.h>

#include "moat_common.h"

#define BUF_MIN_CAP ((size_t)256)
#define BUF_IDLE_KEEP ((size_t)4096)

void moat_buf_init(struct moat_buf *b, size_t max)
{
	memset(b, 0, sizeof(*b));
	b->max = max;
}

void moat_buf_cleanup(struct moat_buf *b)
{
	MOAT_FREE(b->data);
	b->off = b->len = b->cap = 0;
}

uint8_t *moat_buf_reserve(struct moat_buf *b, size_t n)
{
	if (b->off == b->len)
		b->off = b->len = 0;
	if (b->data && b->cap - b->len >= n) /* never NULL + 0 */
		return b->data + b->len;
	size_t used = b->len - b->off;
	if (n > b->max || used > b->max - n)
		return NULL;
	/* Compact first: consumed bytes at the front are free space. */
	if (b->off && b->cap - used >= n) {
		memmove(b->data, b->data + b->off, used);
		b->off = 0;
		b->len = used;
		return b->data + b->len;
	}
	size_t want = MOAT_MAX(b->cap ? b->cap : BUF_MIN_CAP, BUF_MIN_CAP);
	while (want < used + n)
		want = want > SIZE_MAX / 2 ? SIZE_MAX : want * 2;
	if (want > b->max)
		want = b->max;
	if (b->off) {
		memmove(b->data, b->data + b->off, used);
		b->off = 0;
		b->len = used;
	}
	uint8_t *p = moat_realloc(b->data, want);
	if (!p)
		return NULL;
	b->data = p;
	b->cap = want;
	return b->data + b->len;
}

int moat_buf_append(struct moat_buf *b, const void *p, size_t n)
{
	if (n == 0) /* nothing to do, even before the first allocation */
		return MOAT_OK;
	uint8_t *dst = moat_buf_reserve(b, n);
	if (!dst)
		return MOAT_ENOMEM;
	if (n)
		memcpy(dst, p, n);
	b->len += n;
	return MOAT_OK;
}

void moat_buf_consume(struct moat_buf *b, size_t n)
{
	b->off += n;
	if (b->off >= b->len)
		b->off = b->len = 0;
}

void moat_buf_shrink(struct moat_buf *b)
{
	if (b->off == b->len && b->cap > BUF_IDLE_KEEP) {
		MOAT_FREE(b->data);
		b->off = b->len = b->cap = 0;
	}
}

bool moat_bytes_eq(struct moat_bytes a, struct moat_bytes b)
{
	return a.len == b.len && (a.len == 0 || memcmp(a.p, b.p, a.len) == 0);
}

bool moat_bytes_eq_str(struct moat_bytes a, const char *s)
{
	size_t n = strlen(s);
	return a.len == n && (n == 0 || memcmp(a.p, s, n) == 0);
}
