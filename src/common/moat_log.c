#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "moat_common.h"

static atomic_int log_level = MOAT_LOG_NOTICE;

static const char *const level_names[] = {"error", "warning", "notice",
					  "info", "debug"};

void moat_log_set_level(enum moat_log_level lvl)
{
	atomic_store(&log_level, (int)lvl);
}

enum moat_log_level moat_log_get_level(void)
{
	return (enum moat_log_level)atomic_load_explicit(&log_level,
							 memory_order_relaxed);
}

int moat_log_level_parse(const char *s, enum moat_log_level *out)
{
	for (size_t i = 0; i < MOAT_ARRAY_LEN(level_names); i++) {
		if (strcasecmp(s, level_names[i]) == 0) {
			*out = (enum moat_log_level)i;
			return MOAT_OK;
		}
	}
	if (strcasecmp(s, "warn") == 0) {
		*out = MOAT_LOG_WARN;
		return MOAT_OK;
	}
	return MOAT_EINVAL;
}

void moat_log(enum moat_log_level lvl, const char *fmt, ...)
{
	if ((int)lvl > atomic_load_explicit(&log_level, memory_order_relaxed))
		return;
	char line[2048];
	struct timespec ts;
	struct tm tm;
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	int n = snprintf(line, sizeof(line),
			 "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %s: ",
			 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
			 tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000,
			 level_names[lvl]);
	if (n < 0)
		return;
	va_list ap;
	va_start(ap, fmt);
	int m = vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
	va_end(ap);
	if (m < 0)
		return;
	size_t len = strlen(line);
	line[len++] = '\n';
	/* One fwrite per line keeps lines whole across threads. */
	fwrite(line, 1, len, stderr);
	fflush(stderr);
}

const char *moat_log_escape(const uint8_t *p, size_t len, char *out,
			    size_t outsz)
{
	static const char hex[] = "0123456789abcdef";
	size_t o = 0;
	if (outsz == 0)
		return out;
	for (size_t i = 0; i < len; i++) {
		uint8_t c = p[i];
		bool plain = c >= 0x20 && c < 0x7f && c != '\\';
		size_t need = plain ? 1 : 4;
		if (o + need + 4 > outsz) {
			if (o + 4 <= outsz) {
				memcpy(out + o, "...", 3);
				o += 3;
			}
			break;
		}
		if (plain) {
			out[o++] = (char)c;
		} else {
			out[o++] = '\\';
			out[o++] = 'x';
			out[o++] = hex[c >> 4];
			out[o++] = hex[c & 15];
		}
	}
	out[o] = '\0';
	return out;
}
