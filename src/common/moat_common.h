/* moat — small shared helpers: allocation, logging, time, UTF-8, buffers.
 * Internal to moat; not a public API. */
#ifndef MOAT_COMMON_H
#define MOAT_COMMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "moat/errors.h"

#define MOAT_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* FNV-1a (64 bits) of p[0..n), continuing from h: MOAT_FNV1A_INIT to
 * start.  For hash tables, never against an adversary's choice of keys
 * where that matters. */
#define MOAT_FNV1A_INIT 1469598103934665603ull
static inline uint64_t moat_fnv1a(const void *p, size_t n, uint64_t h)
{
	const uint8_t *s = (const uint8_t *)p;
	for (size_t i = 0; i < n; i++) {
		h ^= s[i];
		h *= 1099511628211ull;
	}
	return h;
}
#define MOAT_MIN(a, b) ((a) < (b) ? (a) : (b))
#define MOAT_MAX(a, b) ((a) > (b) ? (a) : (b))

/* ---- allocation -------------------------------------------------------
 * Every heap allocation goes through these.  They count live bytes (for
 * $SYS and the memory budget) and support fault injection for tests:
 * moat_alloc_fail_at(n) makes the n-th allocation from now fail. */
void *moat_malloc(size_t n);
void *moat_calloc(size_t count, size_t n);
void *moat_realloc(void *p, size_t n);
void moat_free(void *p);
/* New NUL-terminated copy of len bytes of s; caller frees with moat_free. */
char *moat_strndup(const char *s, size_t len);
char *moat_strdup(const char *s);
/* Bytes currently allocated through moat_malloc & co. */
size_t moat_alloc_live_bytes(void);
/* Fault injection: 0 disables; n > 0 fails the n-th next allocation. */
void moat_alloc_fail_at(long n);
/* Torture mode: 0 disables; n > 0 fails every n-th allocation from now. */
void moat_alloc_fail_every(long n);

#define MOAT_FREE(p)                                                          \
	do {                                                                  \
		moat_free(p);                                                 \
		(p) = NULL;                                                   \
	} while (0)

/* ---- byte slices ------------------------------------------------------ */
struct moat_bytes {
	const uint8_t *p;
	size_t len;
};

bool moat_bytes_eq(struct moat_bytes a, struct moat_bytes b);
bool moat_bytes_eq_str(struct moat_bytes a, const char *s);

/* ---- growable bounded buffer -----------------------------------------
 * data[0..len) holds bytes; grows on demand up to max.  Reading consumes
 * from `off` (moat_buf_consume) so that partial writes need no memmove
 * until the buffer is compacted. */
struct moat_buf {
	uint8_t *data;
	size_t off; /* first unconsumed byte */
	size_t len; /* end of valid bytes */
	size_t cap;
	size_t max; /* hard limit on cap */
};

void moat_buf_init(struct moat_buf *b, size_t max);
void moat_buf_cleanup(struct moat_buf *b);
static inline size_t moat_buf_used(const struct moat_buf *b)
{
	return b->len - b->off;
}
/* Space for n more bytes at data+len; returns the pointer or NULL when the
 * limit or memory would be exceeded.  Call moat_buf_commit(b, n) after
 * writing. */
uint8_t *moat_buf_reserve(struct moat_buf *b, size_t n);
static inline void moat_buf_commit(struct moat_buf *b, size_t n)
{
	b->len += n;
}
int moat_buf_append(struct moat_buf *b, const void *p, size_t n);
void moat_buf_consume(struct moat_buf *b, size_t n);
/* Release memory when the buffer is empty and large (idle connections). */
void moat_buf_shrink(struct moat_buf *b);

/* ---- UTF-8 ---------------------------------------------------------------
 * True when p[0..len) is well-formed UTF-8 with no U+0000 and no
 * surrogates [MQTT-1.5.3-1] [MQTT-1.5.3-2]. */
bool moat_utf8_valid(const uint8_t *p, size_t len);

/* ---- time ---------------------------------------------------------------- */
/* Monotonic milliseconds. */
uint64_t moat_now_ms(void);
/* Monotonic nanoseconds (the same clock). */
uint64_t moat_now_ns(void);
/* Milliseconds from now until deadline (a moat_now_ms() time) for poll():
 * 0 once it has passed, at most 10^9. */
int moat_ms_left(uint64_t deadline);
/* Wall clock seconds since the epoch. */
int64_t moat_wall_s(void);

/* ---- files (moat_file.c) ------------------------------------------------
 * Files holding secrets or policy are refused when they are symlinks,
 * writable by their group (g+w) or open to other users (o+r or o+w).
 * MOAT_OK, or an error with err set to "PATH: reason". */
int moat_file_check_private(const char *path, char *err, size_t errsz);
/* Read a whole regular file of at most max bytes into a NUL-terminated
 * buffer (*out, moat_free); private_file applies the check above. */
int moat_file_read(const char *path, size_t max, bool private_file,
		   char **out, size_t *len, char *err, size_t errsz);

/* ---- logging -------------------------------------------------------------- */
enum moat_log_level {
	MOAT_LOG_ERROR = 0,
	MOAT_LOG_WARN = 1,
	MOAT_LOG_NOTICE = 2,
	MOAT_LOG_INFO = 3,
	MOAT_LOG_DEBUG = 4,
};

void moat_log_set_level(enum moat_log_level lvl);
enum moat_log_level moat_log_get_level(void);
int moat_log_level_parse(const char *s, enum moat_log_level *out);
void moat_log(enum moat_log_level lvl, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Where log lines go and in which form (log_format, log_dest).  Until
 * moat_log_open is called: text on stderr. */
enum moat_log_format { MOAT_LOG_TEXT = 0, MOAT_LOG_JSON = 1 };
enum moat_log_dest {
	MOAT_LOG_STDERR = 0,
	MOAT_LOG_SYSLOG = 1,
	MOAT_LOG_FILE = 2,
};
/* Switch to format and dest (path: the file for MOAT_LOG_FILE, opened
 * append-only, created 0600, never through a symbolic link).  On an
 * error nothing changes and err says why. */
int moat_log_open(enum moat_log_format format, enum moat_log_dest dest,
		  const char *path, char *err, size_t errsz);
/* Open the log file again by its name (after logrotate moved it: SIGHUP).
 * Nothing to do for stderr and syslog.  On an error the old file stays. */
int moat_log_reopen(char *err, size_t errsz);

/* A line with a stable event name (security and leak events: see
 * docs/logging.md) and fields: in JSON each field is a member; in text
 * the line is the message alone, as moat_log writes it.  A field with
 * str NULL is a number (num), or null when null is set. */
struct moat_log_field {
	const char *key;
	const char *str;
	long long num;
	bool null;
};
#define MOAT_LF_STR(k, v) {.key = (k), .str = (v), .null = (v) == NULL}
#define MOAT_LF_NUM(k, v) {.key = (k), .num = (long long)(v)}
void moat_log_event(enum moat_log_level lvl, const char *event,
		    const struct moat_log_field *f, size_t nf,
		    const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/* Also hand every event line (moat_log_event, at or above the log level)
 * as its JSON text to hook(arg, event, json), whatever the format and
 * destination; NULL removes it.  The hook runs on the logging thread and
 * must not log. */
typedef void (*moat_log_hook_fn)(void *arg, const char *event,
				 const char *json);
void moat_log_set_hook(moat_log_hook_fn hook, void *arg);

/* Copy untrusted bytes into out (size outsz) with control characters and
 * non-ASCII escaped as \xNN, truncated with "..." if needed.  Returns out. */
const char *moat_log_escape(const uint8_t *p, size_t len, char *out,
			    size_t outsz);

#define moat_err_log(...) moat_log(MOAT_LOG_ERROR, __VA_ARGS__)
#define moat_warn(...) moat_log(MOAT_LOG_WARN, __VA_ARGS__)
#define moat_notice(...) moat_log(MOAT_LOG_NOTICE, __VA_ARGS__)
#define moat_info(...) moat_log(MOAT_LOG_INFO, __VA_ARGS__)
#define moat_debug(...)                                                       \
	do {                                                                  \
		if (moat_log_get_level() >= MOAT_LOG_DEBUG)                   \
			moat_log(MOAT_LOG_DEBUG, __VA_ARGS__);                \
	} while (0)

#endif
