/* moat sub -F FORMAT and --json: mosquitto_sub's output format sequences
 * (%t topic, %p payload, %P user properties, ..., \n escapes, flags, width
 * and precision), and one JSON object per message.
 *
 * Everything printed comes from the network.  Raw sequences (%t, %p, %D,
 * ...) print the bytes as received, as mosquitto_sub does; JSON output is
 * always valid JSON: strings are escaped, and a payload or correlation
 * data that is not UTF-8 is given in base64 under a *-base64 key. */
#include <inttypes.h>
#include <stdarg.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include "client/client.h"
#include "moat_cli.h"

#define MAX_WIDTH 4096
#define RENDER_MAX (SIZE_MAX / 2) /* bound on one rendered sequence */

/* One parsed %-sequence. */
struct spec {
	bool left;  /* '-' flag */
	bool zero;  /* '0' flag */
	long width; /* minimum width; 0 = none */
	long prec;  /* maximum width; -1 = none */
	char conv;
};

/* Sequences that take width; precision; the 0 flag (man mosquitto_sub). */
static const char WIDTH_CONV[] = "ACEFIlmpRStxX";
static const char PREC_CONV[] = "CIRt";
static const char ZERO_CONV[] = "AEFlmSxX";
static const char ALL_CONV[] = "%ACDEFIjlmPpqRrStUxX";

/* ---- a growable output buffer ------------------------------------------ */

static int put(struct moat_buf *b, const void *p, size_t n)
{
	return moat_buf_append(b, p, n);
}

static int puts_b(struct moat_buf *b, const char *s)
{
	return put(b, s, strlen(s));
}

__attribute__((format(printf, 2, 3))) static int
printf_b(struct moat_buf *b, const char *fmt, ...)
{
	char tmp[64];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(tmp))
		return MOAT_EINVAL;
	return put(b, tmp, (size_t)n);
}

/* ---- time ------------------------------------------------------------ */

/* ISO 8601: UTC with microseconds for JSON ("...:38.123456Z"), local time
 * with its offset for %I ("2016-08-10T09:47:38+0100"). */
static int put_time(struct moat_buf *b, bool utc_us)
{
	struct timespec ts;
	struct tm tm;
	char s[64];
	clock_gettime(CLOCK_REALTIME, &ts);
	bool ok = utc_us ? gmtime_r(&ts.tv_sec, &tm) != NULL
			 : localtime_r(&ts.tv_sec, &tm) != NULL;
	size_t n = !ok ? 0
		 : utc_us ? strftime(s, sizeof(s), "%Y-%m-%dT%H:%M:%S", &tm)
			  : strftime(s, sizeof(s), "%Y-%m-%dT%H:%M:%S%z", &tm);
	if (n == 0)
		return MOAT_EINVAL;
	int rc = put(b, s, n);
	if (rc == MOAT_OK && utc_us)
		rc = printf_b(b, ".%06ldZ", (long)(ts.tv_nsec / 1000));
	return rc;
}

static int put_unix_time(struct moat_buf *b)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return printf_b(b, "%" PRId64 ".%09ld", (int64_t)ts.tv_sec,
			(long)ts.tv_nsec);
}

/* ---- JSON ------------------------------------------------------------ */

/* UTF-8 as JSON can carry it: moat_utf8_valid() without its MQTT ban on
 * U+0000 (JSON escapes it). */
static bool json_utf8(struct moat_bytes v)
{
	if (v.len == 0)
		return true;
	size_t start = 0;
	for (size_t i = 0; i <= v.len; i++) {
		if (i < v.len && v.p[i] != 0)
			continue;
		if (!moat_utf8_valid(v.p + start, i - start))
			return false;
		start = i + 1;
	}
	return true;
}

/* A JSON string of UTF-8 bytes v. */
static int json_str(struct moat_buf *b, struct moat_bytes v)
{
	static const char hex[] = "0123456789abcdef";
	if (v.len == 0)
		return put(b, "\"\"", 2);
	int rc = put(b, "\"", 1);
	size_t run = 0; /* bytes that need no escape, not yet copied */
	for (size_t i = 0; rc == MOAT_OK && i <= v.len; i++) {
		uint8_t c = i < v.len ? v.p[i] : 0;
		if (i < v.len && c >= 0x20 && c != '"' && c != '\\') {
			run++;
			continue;
		}
		rc = put(b, v.p + i - run, run);
		run = 0;
		if (rc != MOAT_OK || i == v.len)
			break;
		char e[7] = {'\\', (char)c, 0};
		if (c == '\n')
			e[1] = 'n';
		else if (c == '\r')
			e[1] = 'r';
		else if (c == '\t')
			e[1] = 't';
		else if (c < 0x20)
			snprintf(e, sizeof(e), "\\u00%c%c", hex[c >> 4],
				 hex[c & 15]);
		rc = puts_b(b, e);
	}
	return rc == MOAT_OK ? put(b, "\"", 1) : rc;
}

static int json_b64(struct moat_buf *b, struct moat_bytes v)
{
	static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnop"
				  "qrstuvwxyz0123456789+/";
	int rc = put(b, "\"", 1);
	for (size_t i = 0; rc == MOAT_OK && i < v.len; i += 3) {
		uint32_t n = (uint32_t)v.p[i] << 16;
		if (i + 1 < v.len)
			n |= (uint32_t)v.p[i + 1] << 8;
		if (i + 2 < v.len)
			n |= v.p[i + 2];
		char q[4] = {tab[n >> 18], tab[(n >> 12) & 63],
			     i + 1 < v.len ? tab[(n >> 6) & 63] : '=',
			     i + 2 < v.len ? tab[n & 63] : '='};
		rc = put(b, q, 4);
	}
	return rc == MOAT_OK ? put(b, "\"", 1) : rc;
}

/* "key":"text" when v is UTF-8, else "key-base64":"...". */
static int json_data(struct moat_buf *b, const char *key, struct moat_bytes v,
		     const char *b64_suffix)
{
	bool text = json_utf8(v);
	int rc = printf_b(b, "\"%s%s\":", key, text ? "" : b64_suffix);
	if (rc == MOAT_OK)
		rc = text ? json_str(b, v) : json_b64(b, v);
	return rc;
}

/* ,"key": (the first member without the comma). */
static int json_key(struct moat_buf *b, const char **sep, const char *key)
{
	int rc = printf_b(b, "%s\"%s\":", *sep, key);
	*sep = ",";
	return rc;
}

/* "subscription-identifiers":[...] or "user-properties":[[k,v],...], in
 * the order they came. */
static int json_list(struct moat_buf *b, const char **sep,
		     const struct moat_mqtt_props *p, uint8_t id)
{
	bool user = id == PROP_USER_PROPERTY;
	int rc = json_key(b, sep, user ? "user-properties"
				      : "subscription-identifiers");
	const char *item_sep = "[";
	size_t pos = 0;
	struct moat_mqtt_prop_item it;
	while (rc == MOAT_OK && moat_mqtt_props_next(&p->raw, &pos, &it)) {
		if (it.id != id)
			continue;
		rc = puts_b(b, item_sep);
		item_sep = ",";
		if (rc == MOAT_OK && !user)
			rc = printf_b(b, "%" PRIu32, it.num);
		if (rc == MOAT_OK && user)
			rc = put(b, "[", 1);
		if (rc == MOAT_OK && user)
			rc = json_str(b, it.a);
		if (rc == MOAT_OK && user)
			rc = put(b, ",", 1);
		if (rc == MOAT_OK && user)
			rc = json_str(b, it.b);
		if (rc == MOAT_OK && user)
			rc = put(b, "]", 1);
	}
	return rc == MOAT_OK ? put(b, "]", 1) : rc;
}

static int json_props(struct moat_buf *b, const struct moat_mqtt_props *p)
{
	const char *sep = "";
	int rc = puts_b(b, ",\"properties\":{");
	if (rc == MOAT_OK && moat_props_has(p, PROP_PAYLOAD_FORMAT) &&
	    (rc = json_key(b, &sep, "payload-format-indicator")) == MOAT_OK)
		rc = printf_b(b, "%u", p->payload_format);
	if (rc == MOAT_OK && moat_props_has(p, PROP_MESSAGE_EXPIRY) &&
	    (rc = json_key(b, &sep, "message-expiry-interval")) == MOAT_OK)
		rc = printf_b(b, "%" PRIu32, p->message_expiry);
	if (rc == MOAT_OK && moat_props_has(p, PROP_CONTENT_TYPE) &&
	    (rc = json_key(b, &sep, "content-type")) == MOAT_OK)
		rc = json_str(b, p->content_type);
	if (rc == MOAT_OK && moat_props_has(p, PROP_RESPONSE_TOPIC) &&
	    (rc = json_key(b, &sep, "response-topic")) == MOAT_OK)
		rc = json_str(b, p->response_topic);
	if (rc == MOAT_OK && moat_props_has(p, PROP_CORRELATION_DATA)) {
		rc = puts_b(b, sep);
		sep = ",";
		if (rc == MOAT_OK)
			rc = json_data(b, "correlation-data",
				       p->correlation_data, "-base64");
	}
	if (rc == MOAT_OK && moat_props_has(p, PROP_TOPIC_ALIAS) &&
	    (rc = json_key(b, &sep, "topic-alias")) == MOAT_OK)
		rc = printf_b(b, "%u", p->topic_alias);
	if (rc == MOAT_OK && p->n_subscription_ids)
		rc = json_list(b, &sep, p, PROP_SUBSCRIPTION_ID);
	if (rc == MOAT_OK && p->n_user)
		rc = json_list(b, &sep, p, PROP_USER_PROPERTY);
	return rc == MOAT_OK ? puts_b(b, "}") : rc;
}

/* Does the message carry a property that JSON shows? */
static bool has_json_props(const struct moat_mqtt_props *p)
{
	return p && (p->n_user || p->n_subscription_ids ||
		     moat_props_has(p, PROP_PAYLOAD_FORMAT) ||
		     moat_props_has(p, PROP_MESSAGE_EXPIRY) ||
		     moat_props_has(p, PROP_CONTENT_TYPE) ||
		     moat_props_has(p, PROP_RESPONSE_TOPIC) ||
		     moat_props_has(p, PROP_CORRELATION_DATA) ||
		     moat_props_has(p, PROP_TOPIC_ALIAS));
}

/* {"tst":...,"topic":...,"qos":...,"retain":...,"payloadlen":...,
 *  "mid":... (QoS > 0),"properties":{...} (MQTT 5),"payload":...} */
static int json_message(struct moat_buf *b, const struct moat_client_msg *m)
{
	int rc = puts_b(b, "{\"tst\":\"");
	if (rc == MOAT_OK)
		rc = put_time(b, true);
	if (rc == MOAT_OK)
		rc = puts_b(b, "\",\"topic\":");
	if (rc == MOAT_OK)
		rc = json_str(b, m->topic);
	if (rc == MOAT_OK)
		rc = printf_b(b, ",\"qos\":%u,\"retain\":%d,\"payloadlen\":%zu",
			      m->qos, m->retain, m->payload.len);
	if (rc == MOAT_OK && m->qos)
		rc = printf_b(b, ",\"mid\":%u", m->packet_id);
	if (rc == MOAT_OK && has_json_props(m->props))
		rc = json_props(b, m->props);
	if (rc == MOAT_OK)
		rc = put(b, ",", 1);
	if (rc == MOAT_OK)
		rc = json_data(b, "payload", m->payload, "_base64");
	return rc == MOAT_OK ? put(b, "}", 1) : rc;
}

/* ---- the sequences ----------------------------------------------------- */

static int put_hex(struct moat_buf *b, struct moat_bytes v, bool upper)
{
	const char *hex = upper ? "0123456789ABCDEF" : "0123456789abcdef";
	int rc = MOAT_OK;
	for (size_t i = 0; rc == MOAT_OK && i < v.len; i++) {
		char h[2] = {hex[v.p[i] >> 4], hex[v.p[i] & 15]};
		rc = put(b, h, 2);
	}
	return rc;
}

/* Every property with identifier id, space separated (user properties as
 * name:value). */
static int put_repeated(struct moat_buf *b, const struct moat_mqtt_props *p,
			uint8_t id)
{
	size_t pos = 0;
	struct moat_mqtt_prop_item it;
	const char *sep = "";
	int rc = MOAT_OK;
	while (rc == MOAT_OK && moat_mqtt_props_next(&p->raw, &pos, &it)) {
		if (it.id != id)
			continue;
		rc = puts_b(b, sep);
		sep = " ";
		if (rc == MOAT_OK && id == PROP_USER_PROPERTY) {
			rc = put(b, it.a.p, it.a.len);
			if (rc == MOAT_OK)
				rc = put(b, ":", 1);
			if (rc == MOAT_OK)
				rc = put(b, it.b.p, it.b.len);
		} else if (rc == MOAT_OK) {
			rc = printf_b(b, "%" PRIu32, it.num);
		}
	}
	return rc;
}

static int put_opt_num(struct moat_buf *b, const struct moat_mqtt_props *p,
		       enum moat_mqtt_prop id, uint32_t v)
{
	if (!p || !moat_props_has(p, id))
		return MOAT_OK;
	return printf_b(b, "%" PRIu32, v);
}

static int put_opt_bytes(struct moat_buf *b, const struct moat_mqtt_props *p,
			 enum moat_mqtt_prop id, struct moat_bytes v)
{
	if (!p || !moat_props_has(p, id))
		return MOAT_OK;
	return put(b, v.p, v.len);
}

/* Render sequence conv of message m into b. */
static int render(struct moat_buf *b, char conv, const struct moat_client_msg *m)
{
	static const struct moat_bytes none;
	const struct moat_mqtt_props *p = m->props;
	switch (conv) {
	case '%': return put(b, "%", 1);
	case 't': return put(b, m->topic.p, m->topic.len);
	case 'p': return put(b, m->payload.p, m->payload.len);
	case 'q': return printf_b(b, "%u", m->qos);
	case 'r': return printf_b(b, "%d", m->retain);
	case 'm': return printf_b(b, "%u", m->packet_id);
	case 'l': return printf_b(b, "%zu", m->payload.len);
	case 'x': return put_hex(b, m->payload, false);
	case 'X': return put_hex(b, m->payload, true);
	case 'I': return put_time(b, false);
	case 'U': return put_unix_time(b);
	case 'j': return json_message(b, m);
	case 'P': return p ? put_repeated(b, p, PROP_USER_PROPERTY) : MOAT_OK;
	case 'S': return p ? put_repeated(b, p, PROP_SUBSCRIPTION_ID) : MOAT_OK;
	case 'C': return put_opt_bytes(b, p, PROP_CONTENT_TYPE,
				       p ? p->content_type : none);
	case 'R': return put_opt_bytes(b, p, PROP_RESPONSE_TOPIC,
				       p ? p->response_topic : none);
	case 'D': return put_opt_bytes(b, p, PROP_CORRELATION_DATA,
				       p ? p->correlation_data : none);
	case 'E': return put_opt_num(b, p, PROP_MESSAGE_EXPIRY,
				     p ? p->message_expiry : 0);
	case 'F': return put_opt_num(b, p, PROP_PAYLOAD_FORMAT,
				     p ? p->payload_format : 0);
	case 'A': return put_opt_num(b, p, PROP_TOPIC_ALIAS,
				     p ? p->topic_alias : 0);
	default: return MOAT_EINVAL;
	}
}

/* Write b to f with the width, precision and flags of s. */
static int emit(FILE *f, const struct spec *s, const struct moat_buf *b)
{
	const uint8_t *v = b->data + b->off;
	size_t n = moat_buf_used(b);
	if (s->prec >= 0 && strchr(PREC_CONV, s->conv))
		n = MOAT_MIN(n, (size_t)s->prec);
	size_t pad = s->width > 0 && (size_t)s->width > n
			     ? (size_t)s->width - n
			     : 0;
	int fill = s->zero && !s->left && strchr(ZERO_CONV, s->conv) ? '0'
								     : ' ';
	for (size_t i = 0; !s->left && i < pad; i++)
		fputc(fill, f);
	if (n)
		fwrite(v, 1, n, f);
	for (size_t i = 0; s->left && i < pad; i++)
		fputc(' ', f);
	return ferror(f) ? MOAT_EIO : MOAT_OK;
}

/* Parse the %-sequence at *fmt (just after the '%') into s and advance
 * *fmt.  Returns MOAT_EINVAL with why set for a bad sequence. */
static int parse_spec(const char **fmt, struct spec *s, const char **why)
{
	const char *q = *fmt;
	*s = (struct spec){.prec = -1};
	for (; *q == '-' || *q == '0'; q++)
		*(*q == '-' ? &s->left : &s->zero) = true;
	for (; *q >= '0' && *q <= '9'; q++) /* saturates above the limit */
		if (s->width <= MAX_WIDTH)
			s->width = s->width * 10 + (*q - '0');
	if (*q == '.') {
		s->prec = 0;
		for (q++; *q >= '0' && *q <= '9'; q++)
			if (s->prec <= MAX_WIDTH)
				s->prec = s->prec * 10 + (*q - '0');
	}
	s->conv = *q;
	*why = NULL;
	if (!*q)
		*why = "a % at the end";
	else if (*q == 'J')
		*why = "%J is not supported (use %j)";
	else if (!strchr(ALL_CONV, *q))
		*why = "an unknown % sequence";
	else if (s->width > MAX_WIDTH || s->prec > MAX_WIDTH)
		*why = "a field width above 4096";
	else if ((s->width || s->left || s->zero) && !strchr(WIDTH_CONV, *q))
		*why = "a field width for a sequence that takes none";
	else if (s->prec >= 0 && !strchr(PREC_CONV, *q))
		*why = "a precision for a sequence that takes none";
	if (*why)
		return MOAT_EINVAL;
	*fmt = q + 1;
	return MOAT_OK;
}

/* The character for \c, or -1. */
static int escape_char(char c)
{
	switch (c) {
	case '\\': return '\\';
	case '0': return 0;
	case 'a': return '\a';
	case 'e': return 0x1b;
	case 'n': return '\n';
	case 'r': return '\r';
	case 't': return '\t';
	case 'v': return '\v';
	default: return -1;
	}
}

/* Walk fmt: with m == NULL only check it (*why and *at describe the first
 * error); else print m to f. */
static int walk(const char *fmt, FILE *f, const struct moat_client_msg *m,
		const char **why, const char **at)
{
	struct moat_buf tmp;
	int rc = MOAT_OK;
	moat_buf_init(&tmp, RENDER_MAX);
	*why = NULL;
	while (rc == MOAT_OK && *fmt) {
		const char *start = fmt;
		char c = *fmt++;
		if (c == '%') {
			struct spec s;
			rc = parse_spec(&fmt, &s, why);
			if (rc == MOAT_OK && m) {
				moat_buf_consume(&tmp, moat_buf_used(&tmp));
				rc = render(&tmp, s.conv, m);
				if (rc == MOAT_OK)
					rc = emit(f, &s, &tmp);
			}
		} else if (c == '\\' || c == '@') {
			int e = c == '@' ? (*fmt == '@' ? '@' : -1)
					 : escape_char(*fmt);
			if (e < 0) {
				*why = c == '@' ? "an @ time sequence (not "
						  "supported; use %I or %U, "
						  "and @@ for @)"
						: "an unknown \\ escape";
				rc = MOAT_EINVAL;
			} else {
				fmt++;
				if (m)
					fputc(e, f);
			}
		} else if (m) {
			fputc(c, f);
		}
		if (rc != MOAT_OK && *why)
			*at = start;
	}
	moat_buf_cleanup(&tmp);
	if (rc == MOAT_OK && m && ferror(f))
		rc = MOAT_EIO;
	return rc;
}

int cli_format_check(const struct cli_cfg *cfg)
{
	const char *why, *at = cfg->format;
	if (walk(cfg->format, NULL, NULL, &why, &at) != MOAT_OK)
		return cli_usage_error(cfg, "-F: %s at '%.12s'", why, at);
	return MOAT_OK;
}

int cli_format_print(const struct cli_cfg *cfg, FILE *f,
		     const struct moat_client_msg *m)
{
	const char *why, *at;
	return walk(cfg->format, f, m, &why, &at);
}

/* ---- for other commands' JSON output ------------------------------------ */

int cli_json_str(struct moat_buf *b, struct moat_bytes v)
{
	return json_str(b, v);
}

int cli_json_data(struct moat_buf *b, const char *key, struct moat_bytes v)
{
	return json_data(b, key, v, "-base64");
}
