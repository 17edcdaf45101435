/* WebSocket frames (RFC 6455 §5). */
#include <string.h>

#include "codec/ws.h"

int moat_ws_frame_header(const uint8_t *p, size_t n, struct moat_ws_frame *f)
{
	if (n < 2)
		return MOAT_EAGAIN;
	f->fin = (p[0] & 0x80) != 0;
	f->rsv = (uint8_t)((p[0] >> 4) & 0x07);
	f->opcode = p[0] & 0x0F;
	f->masked = (p[1] & 0x80) != 0;
	uint64_t len = p[1] & 0x7F;
	size_t h = 2;
	if (len == 126 || len == 127) {
		size_t ext = len == 126 ? 2 : 8;
		if (n < h + ext)
			return MOAT_EAGAIN;
		len = 0;
		for (size_t i = 0; i < ext; i++)
			len = (len << 8) | p[h + i];
		h += ext;
		/* §5.2: the most significant bit must be 0. */
		if (ext == 8 && (len >> 63))
			return MOAT_EPROTO;
	}
	memset(f->mask, 0, 4); /* unmasked: unmasking changes nothing */
	if (f->masked) {
		if (n < h + 4)
			return MOAT_EAGAIN;
		memcpy(f->mask, p + h, 4);
		h += 4;
	}
	f->len = len;
	f->hlen = h;
	return MOAT_OK;
}

uint16_t moat_ws_frame_check(const struct moat_ws_frame *f, bool fragmented,
			     uint64_t max_len, bool from_client)
{
	/* §5.1: clients mask every frame, servers none. */
	if (f->rsv || f->masked != from_client)
		return WS_CLOSE_PROTOCOL;
	switch (f->opcode) {
	case WS_OP_CLOSE:
	case WS_OP_PING:
	case WS_OP_PONG: /* §5.5: short and not fragmented */
		return f->len > MOAT_WS_MAX_CONTROL || !f->fin
			       ? WS_CLOSE_PROTOCOL
			       : 0;
	case WS_OP_CONT:
		if (!fragmented)
			return WS_CLOSE_PROTOCOL;
		break;
	case WS_OP_BINARY:
		if (fragmented) /* §5.4: the open message comes first */
			return WS_CLOSE_PROTOCOL;
		break;
	case WS_OP_TEXT: /* [MQTT-6.0.0-1]: binary only */
		return fragmented ? WS_CLOSE_PROTOCOL : WS_CLOSE_UNSUPPORTED;
	default:
		return WS_CLOSE_PROTOCOL; /* reserved opcodes */
	}
	return f->len > max_len ? WS_CLOSE_TOO_BIG : 0;
}

size_t moat_ws_frame_encode(uint8_t *dst, uint8_t opcode, bool fin,
			    uint64_t len, const uint8_t *mask)
{
	size_t h = 2;
	dst[0] = (uint8_t)((fin ? 0x80 : 0) | (opcode & 0x0F));
	uint8_t m = mask ? 0x80 : 0;
	if (len < 126) {
		dst[1] = (uint8_t)(m | len);
	} else if (len <= 0xFFFF) {
		dst[1] = (uint8_t)(m | 126);
		dst[2] = (uint8_t)(len >> 8);
		dst[3] = (uint8_t)len;
		h = 4;
	} else {
		dst[1] = (uint8_t)(m | 127);
		for (int i = 0; i < 8; i++)
			dst[2 + i] = (uint8_t)(len >> (56 - 8 * i));
		h = 10;
	}
	if (mask) {
		memcpy(dst + h, mask, 4);
		h += 4;
	}
	return h;
}

void moat_ws_unmask(uint8_t *p, size_t n, const uint8_t mask[4], uint64_t off)
{
	for (size_t i = 0; i < n; i++)
		p[i] ^= mask[(off + i) & 3];
}

static bool close_code_valid(uint16_t c)
{
	/* §7.4: 1004-1006 and 1015 are never sent; 1012-2999 unassigned. */
	return (c >= 1000 && c <= 1003) || (c >= 1007 && c <= 1011) ||
	       (c >= 3000 && c <= 4999);
}

uint16_t moat_ws_close_parse(const uint8_t *p, size_t n, uint16_t *code)
{
	*code = 1005; /* "no status received" */
	if (n == 0)
		return 0;
	if (n == 1)
		return WS_CLOSE_PROTOCOL;
	*code = (uint16_t)((p[0] << 8) | p[1]);
	if (!close_code_valid(*code))
		return WS_CLOSE_PROTOCOL;
	if (!moat_utf8_valid(p + 2, n - 2))
		return WS_CLOSE_BAD_DATA;
	return 0;
}
