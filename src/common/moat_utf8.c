#include "moat_common.h"

/* Well-formed UTF-8 per RFC 3629 (no overlongs, no surrogates, nothing
 * above U+10FFFF), and additionally no U+0000 as MQTT requires. */
bool moat_utf8_valid(const uint8_t *p, size_t len)
{
	size_t i = 0;
	while (i < len) {
		uint8_t c = p[i];
		if (c < 0x80) {
			if (c == 0) /* [MQTT-1.5.3-2] */
				return false;
			i++;
			continue;
		}
		size_t n;
		uint32_t cp;
		uint32_t min;
		if ((c & 0xE0) == 0xC0) {
			n = 1;
			cp = c & 0x1Fu;
			min = 0x80;
		} else if ((c & 0xF0) == 0xE0) {
			n = 2;
			cp = c & 0x0Fu;
			min = 0x800;
		} else if ((c & 0xF8) == 0xF0) {
			n = 3;
			cp = c & 0x07u;
			min = 0x10000;
		} else {
			return false;
		}
		if (len - i <= n)
			return false;
		for (size_t k = 1; k <= n; k++) {
			uint8_t cc = p[i + k];
			if ((cc & 0xC0) != 0x80)
				return false;
			cp = (cp << 6) | (cc & 0x3Fu);
		}
		if (cp < min || cp > 0x10FFFF)
			return false;
		if (cp >= 0xD800 && cp <= 0xDFFF) /* [MQTT-1.5.3-1] */
			return false;
		i += n + 1;
	}
	return true;
}
