/* An in-memory bottom layer for the transport stack (src/net/net.h), for
 * unit tests and fuzz harnesses: reads come from a buffer (then "would
 * block"), writes go to a capture buffer.  With `chunky`, read and write
 * sizes vary with a counter and every 8th write would block, as a busy
 * socket does.  Header-only: include it in one test file. */
#ifndef MOAT_TESTS_NET_MEM_H
#define MOAT_TESTS_NET_MEM_H

#include <string.h>

#include "net/net.h"

struct net_mem {
	struct moat_net base;
	const uint8_t *in;
	size_t len, off;
	bool chunky;
	uint8_t step;
	uint8_t out[4096]; /* what was written (the first bytes) */
	size_t outlen;
	uint64_t wrote;
};

static ssize_t net_mem_read(struct moat_net *n, uint8_t *dst, size_t len,
			    char *why, size_t whysz)
{
	struct net_mem *m = (struct net_mem *)n;
	(void)why;
	(void)whysz;
	size_t k = MOAT_MIN(len, m->len - m->off);
	if (m->chunky) {
		size_t chunk = 1 + (size_t)(m->step++ * 37u) % 700u;
		k = MOAT_MIN(k, chunk); /* (a macro: no side effects in it) */
	}
	if (!k)
		return MOAT_NET_AGAIN;
	memcpy(dst, m->in + m->off, k);
	m->off += k;
	return (ssize_t)k;
}

static ssize_t net_mem_write(struct moat_net *n, const uint8_t *p, size_t len,
			     char *why, size_t whysz)
{
	struct net_mem *m = (struct net_mem *)n;
	(void)why;
	(void)whysz;
	if (m->chunky && (m->step++ & 7) == 0)
		return MOAT_NET_AGAIN;
	size_t k = m->chunky ? MOAT_MIN(len, (size_t)1 + m->step % 300u) : len;
	size_t keep = MOAT_MIN(k, sizeof(m->out) - m->outlen);
	memcpy(m->out + m->outlen, p, keep);
	m->outlen += keep;
	m->wrote += k;
	return (ssize_t)k;
}

static void net_mem_close(struct moat_net *n)
{
	(void)n;
}

static const struct moat_net_ops net_mem_ops = {
	.name = "mem",
	.read = net_mem_read,
	.write = net_mem_write,
	.close = net_mem_close,
};

static void net_mem_init(struct net_mem *m, const uint8_t *in, size_t len,
			 bool chunky, uint8_t step)
{
	memset(m, 0, sizeof(*m));
	m->base.ops = &net_mem_ops;
	m->base.fd = -1;
	m->in = in;
	m->len = len;
	m->chunky = chunky;
	m->step = step;
}

#endif
