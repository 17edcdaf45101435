/* MQTT wire primitives: the cursor reader (integers, length-prefixed
 * binary and UTF-8 strings, variable byte integers), the variable byte
 * integer writer. */
#include <assert.h>

#include "mqtt_prim.h"

int moat_rd_u8(struct moat_rd *rd, uint8_t *v)
{
	if (moat_rd_left(rd) < 1)
		return MOAT_EMALFORMED;
	*v = rd->p[rd->pos++];
	return MOAT_OK;
}

int moat_rd_u16(struct moat_rd *rd, uint16_t *v)
{
	if (moat_rd_left(rd) < 2)
		return MOAT_EMALFORMED;
	*v = (uint16_t)((rd->p[rd->pos] << 8) | rd->p[rd->pos + 1]);
	rd->pos += 2;
	return MOAT_OK;
}

int moat_rd_binary(struct moat_rd *rd, struct moat_bytes *out)
{
	uint16_t n;
	if (moat_rd_u16(rd, &n) != MOAT_OK || moat_rd_left(rd) < n)
		return MOAT_EMALFORMED;
	out->p = rd->p + rd->pos;
	out->len = n;
	rd->pos += n;
	return MOAT_OK;
}

int moat_rd_string(struct moat_rd *rd, struct moat_bytes *out)
{
	int rc = moat_rd_binary(rd, out);
	if (rc != MOAT_OK)
		return rc;
	if (!moat_utf8_valid(out->p, out->len))
		return MOAT_EUTF8;
	return MOAT_OK;
}

int moat_rd_varint(struct moat_rd *rd, uint32_t *v)
{
	uint32_t value = 0;
	for (unsigned i = 0; i < 4; i++) {
		uint8_t b;
		if (moat_rd_u8(rd, &b) != MOAT_OK)
			return MOAT_EMALFORMED;
		value |= (uint32_t)(b & 0x7F) << (7 * i);
		if (!(b & 0x80)) {
			*v = value;
			return MOAT_OK;
		}
	}
	return MOAT_EMALFORMED;
}

size_t moat_mqtt_varint_size(uint32_t v)
{
	if (v < 128u)
		return 1;
	if (v < 16384u)
		return 2;
	if (v < 2097152u)
		return 3;
	return 4;
}

size_t moat_mqtt_varint_write(uint8_t *out, uint32_t v)
{
	assert(v <= MQTT_MAX_REMAINING_LENGTH);
	size_t n = 0;
	do {
		uint8_t b = (uint8_t)(v & 0x7F);
		v >>= 7;
		if (v)
			b |= 0x80;
		out[n++] = b;
	} while (v);
	return n;
}
