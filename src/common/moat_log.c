#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/uio.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

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

/* The sink.  Lines are written under the read lock, a reopen or a switch
 * takes the write lock: a line never goes to a descriptor being closed
 * (or, worse, to whatever file reuses its number).  Logging is never on
 * the message path (lines are rate-limited), so the lock costs nothing
 * that matters. */
static pthread_rwlock_t sink_lock = PTHREAD_RWLOCK_INITIALIZER;
static enum moat_log_format sink_format = MOAT_LOG_TEXT;
static enum moat_log_dest sink_dest = MOAT_LOG_STDERR;
static int sink_fd = -1;
static char sink_path[512];
static moat_log_hook_fn sink_hook; /* under sink_lock */
static void *sink_hook_arg;

void moat_log_set_hook(moat_log_hook_fn hook, void *arg)
{
	pthread_rwlock_wrlock(&sink_lock);
	sink_hook = hook;
	sink_hook_arg = arg;
	pthread_rwlock_unlock(&sink_lock);
}

static const int syslog_prio[] = {LOG_ERR, LOG_WARNING, LOG_NOTICE, LOG_INFO,
				  LOG_DEBUG};

static int open_file(const char *path, char *err, size_t errsz)
{
	int fd = open(path,
		      O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW,
		      0600);
	if (fd < 0)
		snprintf(err, errsz, "%s: cannot open: %s", path,
			 strerror(errno));
	return fd;
}

static pthread_once_t json_alloc_once = PTHREAD_ONCE_INIT;

static void json_alloc_setup(void)
{
	json_set_alloc_funcs(moat_malloc, moat_free);
}

int moat_log_open(enum moat_log_format format, enum moat_log_dest dest,
		  const char *path, char *err, size_t errsz)
{
	int fd = -1;
	if (dest == MOAT_LOG_FILE) {
		if (strlen(path) >= sizeof(sink_path)) {
			snprintf(err, errsz, "log file path too long");
			return MOAT_EINVAL;
		}
		if ((fd = open_file(path, err, errsz)) < 0)
			return MOAT_EIO;
	}
	/* JSON values are built with moatd's allocator (counted), set
	 * once, before any thread uses jansson. */
	pthread_once(&json_alloc_once, json_alloc_setup);
	pthread_rwlock_wrlock(&sink_lock);
	if (sink_fd >= 0)
		close(sink_fd);
	sink_fd = fd;
	snprintf(sink_path, sizeof(sink_path), "%s",
		 dest == MOAT_LOG_FILE ? path : "");
	if (dest == MOAT_LOG_SYSLOG && sink_dest != MOAT_LOG_SYSLOG)
		openlog("moatd", LOG_PID | LOG_NDELAY, LOG_DAEMON);
	else if (dest != MOAT_LOG_SYSLOG && sink_dest == MOAT_LOG_SYSLOG)
		closelog();
	sink_format = format;
	sink_dest = dest;
	pthread_rwlock_unlock(&sink_lock);
	return MOAT_OK;
}

int moat_log_reopen(char *err, size_t errsz)
{
	int rc = MOAT_OK;
	pthread_rwlock_wrlock(&sink_lock);
	if (sink_dest == MOAT_LOG_FILE) {
		int fd = open_file(sink_path, err, errsz);
		if (fd < 0) {
			rc = MOAT_EIO;
		} else {
			close(sink_fd);
			sink_fd = fd;
		}
	}
	pthread_rwlock_unlock(&sink_lock);
	return rc;
}

/* "2026-01-02T03:04:05.678Z" */
static void timestamp(char *buf, size_t sz)
{
	struct timespec ts;
	struct tm tm;
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	snprintf(buf, sz, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ",
		 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
		 tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000);
}

/* A JSON string of s; bytes that are not UTF-8 are escaped first. */
static json_t *jstr(const char *s)
{
	if (moat_utf8_valid((const uint8_t *)s, strlen(s)))
		return json_string(s);
	char esc[2048];
	moat_log_escape((const uint8_t *)s, strlen(s), esc, sizeof(esc));
	return json_string(esc);
}

/* The JSON object of a line as one line of text (caller frees with
 * moat_free), or NULL when memory is short. */
static char *json_line(const char *ts, enum moat_log_level lvl,
		       const char *event, const struct moat_log_field *f,
		       size_t nf, const char *msg)
{
	json_t *o = json_object();
	if (!o)
		return NULL;
	json_object_set_new(o, "ts", json_string(ts));
	json_object_set_new(o, "level", json_string(level_names[lvl]));
	if (event)
		json_object_set_new(o, "event", json_string(event));
	for (size_t i = 0; i < nf; i++)
		json_object_set_new(o, f[i].key,
				    f[i].str    ? jstr(f[i].str)
				    : f[i].null ? json_null()
						: json_integer(f[i].num));
	json_object_set_new(o, "msg", jstr(msg));
	char *line = json_dumps(o, JSON_COMPACT | JSON_ENSURE_ASCII);
	json_decref(o);
	return line;
}

/* One system call per line keeps lines whole across threads (and with
 * O_APPEND, across processes). */
static void write_line(int fd, const char *p, size_t n, bool newline)
{
	struct iovec iov[2] = {{(void *)(uintptr_t)p, n},
			       {(void *)(uintptr_t) "\n", 1}};
	ssize_t w;
	do
		w = writev(fd, iov, newline ? 2 : 1);
	while (w < 0 && errno == EINTR);
	/* A short write or an error: nowhere to report it. */
}

static void emit(enum moat_log_level lvl, const char *event,
		 const struct moat_log_field *f, size_t nf, const char *msg)
{
	char ts[64], line[2048];
	timestamp(ts, sizeof(ts));
	pthread_rwlock_rdlock(&sink_lock);
	char *json = sink_format == MOAT_LOG_JSON || (event && sink_hook)
			     ? json_line(ts, lvl, event, f, nf, msg)
			     : NULL;
	if (event && sink_hook && json)
		sink_hook(sink_hook_arg, event, json);
	if (sink_format != MOAT_LOG_JSON)
		MOAT_FREE(json);
	int fd = sink_dest == MOAT_LOG_FILE ? sink_fd : STDERR_FILENO;
	if (sink_dest == MOAT_LOG_SYSLOG) {
		syslog(syslog_prio[lvl], "%s", json ? json : msg);
	} else if (json) {
		write_line(fd, json, strlen(json), true);
	} else {
		/* Text (or JSON without memory): at most 2047 bytes, cut
		 * lines still end with a newline. */
		int n = snprintf(line, sizeof(line), "%s %s: %s\n", ts,
				 level_names[lvl], msg);
		size_t len = n < 0 ? 0 : MOAT_MIN((size_t)n, sizeof(line) - 1);
		if (len && line[len - 1] != '\n')
			line[len - 1] = '\n';
		write_line(fd, line, len, false);
	}
	pthread_rwlock_unlock(&sink_lock);
	moat_free(json);
}

void moat_log(enum moat_log_level lvl, const char *fmt, ...)
{
	if ((int)lvl > atomic_load_explicit(&log_level, memory_order_relaxed))
		return;
	char msg[2048];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	emit(lvl, NULL, NULL, 0, msg);
}

void moat_log_event(enum moat_log_level lvl, const char *event,
		    const struct moat_log_field *f, size_t nf,
		    const char *fmt, ...)
{
	if ((int)lvl > atomic_load_explicit(&log_level, memory_order_relaxed))
		return;
	char msg[2048];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	emit(lvl, event, f, nf, msg);
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
