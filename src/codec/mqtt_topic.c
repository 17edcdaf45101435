/* Topic names and filters, MQTT 3.1.1 §4.7. */
#include <string.h>

#include "mqtt_codec.h"

bool moat_topic_name_valid(const uint8_t *t, size_t len)
{
	if (len == 0) /* [MQTT-4.7.3-1] */
		return false;
	for (size_t i = 0; i < len; i++)
		if (t[i] == '+' || t[i] == '#')
			return false;
	return true;
}

bool moat_topic_filter_valid(const uint8_t *f, size_t len)
{
	if (len == 0)
		return false;
	for (size_t i = 0; i < len; i++) {
		bool level_start = i == 0 || f[i - 1] == '/';
		bool level_end = i + 1 == len || f[i + 1] == '/';
		if (f[i] == '+' && !(level_start && level_end))
			return false; /* [MQTT-4.7.1-3] */
		if (f[i] == '#' && !(level_start && i + 1 == len))
			return false; /* [MQTT-4.7.1-2] */
	}
	return true;
}

bool moat_topic_is_sys(const uint8_t *t, size_t len)
{
	return len >= 4 && !memcmp(t, "$SYS", 4) && (len == 4 || t[4] == '/');
}

size_t moat_topic_levels(const uint8_t *t, size_t len)
{
	size_t n = 1;
	for (size_t i = 0; i < len; i++)
		n += t[i] == '/';
	return n;
}

bool moat_topic_matches(const uint8_t *f, size_t flen, const uint8_t *t,
			size_t tlen)
{
	size_t fi = 0, ti = 0;

	if (tlen && t[0] == '$' && flen && (f[0] == '+' || f[0] == '#'))
		return false; /* [MQTT-4.7.2-1] */
	for (;;) {
		if (fi == flen)
			return ti == tlen;
		if (f[fi] == '#')
			return true; /* also matches the parent level */
		if (f[fi] == '+') {
			while (ti < tlen && t[ti] != '/')
				ti++;
			fi++;
		} else {
			/* compare one literal level */
			while (fi < flen && f[fi] != '/') {
				if (ti == tlen || t[ti] != f[fi])
					return false;
				fi++;
				ti++;
			}
			if (ti < tlen && t[ti] != '/')
				return false;
		}
		/* both at a '/' or at the end */
		if (fi == flen)
			return ti == tlen;
		/* f[fi] == '/' */
		if (ti == tlen) {
			/* "a/#" matches "a": the filter's rest must be "/#" */
			return flen - fi == 2 && f[fi + 1] == '#';
		}
		fi++;
		ti++;
	}
}
