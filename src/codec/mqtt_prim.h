/* MQTT wire primitives (mqtt_prim.c): a bounds-checked cursor reader over
 * untrusted bytes and the variable byte integer.  No I/O, no allocation. */
#ifndef MOAT_MQTT_PRIM_H
#define MOAT_MQTT_PRIM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../common/moat_common.h"

#define MQTT_MAX_REMAINING_LENGTH 268435455u /* 4-byte varint maximum */

/* Varint: writes 1..4 bytes, returns the count. */
size_t moat_mqtt_varint_size(uint32_t v);
size_t moat_mqtt_varint_write(uint8_t *out, uint32_t v);

/* ---- cursor reader ---- */
struct moat_rd {
	const uint8_t *p;
	size_t len;
	size_t pos;
};

static inline void moat_rd_init(struct moat_rd *rd, const uint8_t *p,
				size_t len)
{
	rd->p = p;
	rd->len = len;
	rd->pos = 0;
}

static inline size_t moat_rd_left(const struct moat_rd *rd)
{
	return rd->len - rd->pos;
}

int moat_rd_u8(struct moat_rd *rd, uint8_t *v);
int moat_rd_u16(struct moat_rd *rd, uint16_t *v);
/* Length-prefixed binary; out points into the buffer. */
int moat_rd_binary(struct moat_rd *rd, struct moat_bytes *out);
/* Length-prefixed UTF-8 string, validated [MQTT-1.5.3-*].
 * MOAT_EUTF8 when the bytes are present but not valid UTF-8. */
int moat_rd_string(struct moat_rd *rd, struct moat_bytes *out);
/* Variable byte integer at the cursor (1..4 bytes, minimal or not). */
int moat_rd_varint(struct moat_rd *rd, uint32_t *v);

#endif
