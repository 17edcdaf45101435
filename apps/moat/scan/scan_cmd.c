/* `moat scan`: run the payload leak detector (src/leak/leak.h) over
 * messages from files or standard input and report what it finds.
 *
 * Input: one message payload per line, or with --jsonl one JSON object
 * per line with "topic" and "payload" members (both are scanned).  Lines
 * are read in blocks and never held beyond a fixed size: a plain line
 * longer than the scan budget is scanned up to the budget and the rest
 * skipped; a --jsonl line longer than JSONL_MAX is an error.
 *
 * Output never contains what was found, only where, what kind, and the
 * detector's redacted preview and HMAC (a --jsonl topic is printed with
 * its own findings redacted). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "check/findings.h"
#include "leak/leak.h"
#include "cli_opt.h"
#include "commands.h"
#include "common/moat_common.h"

#define usage_error(...) cli_opt_usage("scan", __VA_ARGS__)

#define BLOCK (1u << 20)        /* read size */
#define JSONL_MAX (8u << 20)    /* longest --jsonl line */
#define TOPIC_MAX 65535u        /* an MQTT topic's limit */

/* Exit status (documented in the usage text and docs/cli.md). */
#define SCAN_EXIT_CLEAN 0
#define SCAN_EXIT_FOUND 1
#define SCAN_EXIT_ERROR 2

enum scan_fmt { FMT_TEXT, FMT_JSON };

struct scan_opts {
	bool jsonl;
	bool stats;
	enum scan_fmt fmt;
	uint32_t categories;
	size_t budget;
	const char *key_file;
	const char **files;
	size_t nfiles;
};

struct scan_stats {
	uint64_t messages, bytes, with_findings, over_budget, errors;
	uint64_t per_cat[MOAT_LEAK_CATEGORY_COUNT];
	double scan_s;
};

struct scan_ctx {
	const struct scan_opts *o;
	struct moat_leak_db *db;
	struct moat_leak_scratch *scratch;
	struct scan_stats st;
	uint8_t *payload; /* decoded --jsonl payload (JSONL_MAX) */
	uint8_t *topic;   /* decoded --jsonl topic (TOPIC_MAX) */
	char *topic_out;  /* the topic redacted for output (TOPIC_MAX + 1) */
	bool multi;       /* several inputs: print file names */
	bool found;
};

/* ---- options ---------------------------------------------------------------- */

enum { S_FORMAT = 1, S_CATEGORIES, S_LIST, S_BUDGET };

#define F(field) offsetof(struct scan_opts, field)

static const struct cli_opt options[] = {
	{0, "jsonl", 0, CLI_OPT_FLAG, F(jsonl), 0, 0, NULL,
	 "each line is a JSON object {\"topic\": \"...\", \"payload\": "
	 "\"...\"} (or \"payload-base64\", as moat sub --json writes); both "
	 "are scanned", 0},
	{0, "format", 0, CLI_OPT_CALL, 0, 0, 0, "text|json",
	 "a table (default), or one JSON object per finding per line",
	 S_FORMAT},
	{0, "categories", 0, CLI_OPT_CALL, 0, 0, 0, "LIST",
	 "only these categories (names separated by commas)", S_CATEGORIES},
	{0, "list-categories", 0, CLI_OPT_CALL, 0, 0, 0, NULL,
	 "print the category names and exit", S_LIST},
	{0, "stats", 0, CLI_OPT_FLAG, F(stats), 0, 0, NULL,
	 "print counts per category and the throughput (MB/s) on standard "
	 "error", 0},
	{0, "budget", 0, CLI_OPT_CALL, 0, 0, 0, "BYTES",
	 "bytes scanned per message (default 65536, at most 16777216); the "
	 "rest of a longer line is skipped", S_BUDGET},
	{0, "key-file", 0, CLI_OPT_STR, F(key_file), 0, 0, "FILE",
	 "install key for the findings' HMACs: 32 bytes, or 64 hex digits "
	 "(default: a random key per run)", 0},
	{'h', "help", 0, CLI_OPT_HELP, 0, 0, 0, NULL, "show this help", 0},
};

static int on_call(void *cfg, const struct cli_opt *o, char *v,
		   struct cli_pos *p);
static int on_arg(void *cfg, char *a);

static const struct cli_cmd command = {
	.name = "scan",
	.opts = options,
	.nopts = MOAT_ARRAY_LEN(options),
	.call = on_call,
	.arg = on_arg,
	.usage = moat_scan_usage,
};

void moat_scan_usage(FILE *f)
{
	fprintf(f,
		"Usage: moat scan [OPTION]... [FILE]...\n"
		"\n"
		"Scans message payloads for leaked secrets and personal data: "
		"private\naddresses, credentials, tokens, keys, card numbers, "
		"identifiers, health\ndata, locations (the categories are in "
		"docs/leaks.md).  Each input line is\none message payload; "
		"with no FILE, or when FILE is -, standard input is read.\n"
		"\n");
	cli_opt_print(f, &command, 25);
	fprintf(f,
		"\n"
		"Findings show where (line, byte offsets in the payload, JSON "
		"path), what\n(category, severity) and a redacted preview, "
		"never the matched text.\n"
		"\n"
		"Exit status: 0 no findings, 1 findings, 2 error (usage, "
		"unreadable file,\nmalformed --jsonl line).\n");
}

static void list_categories(void)
{
	for (unsigned i = 0; i < MOAT_LEAK_CATEGORY_COUNT; i++)
		printf("%s\n",
		       moat_leak_category_name((enum moat_leak_category)i));
}

static int parse_budget(const char *v, size_t *out)
{
	char *end;
	errno = 0;
	unsigned long long b = strtoull(v, &end, 10);
	if (errno || end == v || *end || v[0] == '-' || b == 0 ||
	    b > MOAT_LEAK_MAX_BUDGET)
		return usage_error("--budget must be 1 to %u bytes, not '%s'",
				   MOAT_LEAK_MAX_BUDGET, v);
	*out = (size_t)b;
	return CLI_CONTINUE;
}

static int on_call(void *cfg, const struct cli_opt *opt, char *v,
		   struct cli_pos *p)
{
	struct scan_opts *o = cfg;
	(void)p;
	switch (opt->code) {
	case S_FORMAT:
		if (!strcmp(v, "text"))
			o->fmt = FMT_TEXT;
		else if (!strcmp(v, "json"))
			o->fmt = FMT_JSON;
		else
			return usage_error("--format must be text or json, "
					   "not '%s'", v);
		return CLI_CONTINUE;
	case S_CATEGORIES: {
		char err[128];
		if (moat_leak_categories_parse(v, &o->categories, err,
					       sizeof(err)) != MOAT_OK)
			return usage_error("--categories: %s (see "
					   "--list-categories)", err);
		return CLI_CONTINUE;
	}
	case S_LIST:
		list_categories();
		return CLI_EXIT_OK;
	default: /* S_BUDGET */
		return parse_budget(v, &o->budget);
	}
}

static int on_arg(void *cfg, char *a)
{
	struct scan_opts *o = cfg;
	o->files[o->nfiles++] = a;
	return CLI_CONTINUE;
}

/* argv[0] is "scan".  CLI_CONTINUE, or an exit code.  o->files points
 * into a new array (free it). */
static int parse_args(struct scan_opts *o, int argc, char **argv)
{
	o->files = moat_calloc((size_t)argc + 1, sizeof(*o->files));
	if (!o->files)
		return usage_error("%s", "out of memory");
	struct cli_cmd c = command;
	c.cfg = o;
	int rc = cli_opt_parse(&c, argc, argv);
	if (rc != CLI_CONTINUE)
		return rc;
	if (o->nfiles == 0)
		o->files[o->nfiles++] = "-";
	return CLI_CONTINUE;
}

/* 32 raw bytes, or 64 hex digits with an optional newline. */
static int load_key(const char *path, uint8_t key[MOAT_LEAK_KEY_LEN])
{
	char err[512];
	char *buf = NULL;
	size_t len = 0;
	int rc = moat_file_read(path, 256, true, &buf, &len, err, sizeof(err));
	if (rc != MOAT_OK) {
		fprintf(stderr, "moat scan: --key-file: %s\n", err);
		return CLI_EXIT_USAGE;
	}
	size_t n = len;
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
		n--;
	rc = CLI_CONTINUE;
	if (len == MOAT_LEAK_KEY_LEN) {
		memcpy(key, buf, MOAT_LEAK_KEY_LEN);
	} else if (n == 2 * MOAT_LEAK_KEY_LEN) {
		for (size_t i = 0; i < MOAT_LEAK_KEY_LEN && rc == CLI_CONTINUE;
		     i++) {
			unsigned v;
			if (sscanf(buf + 2 * i, "%2x", &v) != 1 ||
			    !strchr("0123456789abcdefABCDEF", buf[2 * i]) ||
			    !strchr("0123456789abcdefABCDEF", buf[2 * i + 1]))
				rc = CLI_EXIT_USAGE;
			key[i] = (uint8_t)v;
		}
	} else {
		rc = CLI_EXIT_USAGE;
	}
	if (rc != CLI_CONTINUE)
		fprintf(stderr, "moat scan: --key-file %s: expected 32 bytes "
				"or 64 hex digits\n", path);
	memset(buf, 0, len);
	moat_free(buf);
	return rc;
}

/* ---- line reader ---------------------------------------------------------------- */

struct lines {
	FILE *f;
	uint8_t *blk;
	size_t blen, bpos;
	bool eof;
	uint8_t *line; /* copy of lines that span blocks */
	size_t cap;    /* bytes of a line kept */
};

static bool refill(struct lines *L)
{
	if (L->eof)
		return false;
	L->blen = fread(L->blk, 1, BLOCK, L->f);
	L->bpos = 0;
	if (L->blen == 0)
		L->eof = true;
	return L->blen > 0;
}

/* Next line (without "\n" or "\r\n"): *p and *len (at most cap bytes
 * kept), *total its real length.  1: a line; 0: end of input. */
static int next_line(struct lines *L, const uint8_t **p, size_t *len,
		     size_t *total)
{
	size_t n = 0, t = 0;
	bool any = false, copied = false;
	for (;;) {
		if (L->bpos == L->blen && !refill(L)) {
			if (!any)
				return 0;
			break;
		}
		any = true;
		uint8_t *s = L->blk + L->bpos;
		size_t avail = L->blen - L->bpos;
		uint8_t *nl = memchr(s, '\n', avail);
		size_t take = nl ? (size_t)(nl - s) : avail;
		L->bpos += take + (nl ? 1 : 0);
		if (nl && !copied) { /* whole line in the block: no copy */
			*p = s;
			n = MOAT_MIN(take, L->cap);
			t = take;
			goto done;
		}
		size_t keep = MOAT_MIN(take, L->cap - n);
		memcpy(L->line + n, s, keep);
		n += keep;
		t += take;
		copied = true;
		if (nl)
			break;
	}
	*p = L->line;
done:
	if (n == t && n > 0 && (*p)[n - 1] == '\r')
		n--, t--;
	*len = n;
	*total = t;
	return 1;
}

/* ---- --jsonl input ------------------------------------------------------------- */

struct jrd {
	const uint8_t *p;
	size_t n, i;
};

static void jws(struct jrd *r)
{
	while (r->i < r->n && (r->p[r->i] == ' ' || r->p[r->i] == '\t' ||
			       r->p[r->i] == '\r' || r->p[r->i] == '\n'))
		r->i++;
}

static int hex4(const uint8_t *p, unsigned *v)
{
	*v = 0;
	for (int k = 0; k < 4; k++) {
		unsigned c = p[k], d;
		if (c >= '0' && c <= '9')
			d = c - '0';
		else if ((c | 0x20) >= 'a' && (c | 0x20) <= 'f')
			d = (c | 0x20) - 'a' + 10;
		else
			return -1;
		*v = *v << 4 | d;
	}
	return 0;
}

static size_t put_utf8(uint8_t *o, unsigned cp)
{
	if (cp < 0x80) {
		o[0] = (uint8_t)cp;
		return 1;
	}
	if (cp < 0x800) {
		o[0] = (uint8_t)(0xc0 | cp >> 6);
		o[1] = (uint8_t)(0x80 | (cp & 0x3f));
		return 2;
	}
	if (cp < 0x10000) {
		o[0] = (uint8_t)(0xe0 | cp >> 12);
		o[1] = (uint8_t)(0x80 | ((cp >> 6) & 0x3f));
		o[2] = (uint8_t)(0x80 | (cp & 0x3f));
		return 3;
	}
	o[0] = (uint8_t)(0xf0 | cp >> 18);
	o[1] = (uint8_t)(0x80 | ((cp >> 12) & 0x3f));
	o[2] = (uint8_t)(0x80 | ((cp >> 6) & 0x3f));
	o[3] = (uint8_t)(0x80 | (cp & 0x3f));
	return 4;
}

/* \uXXXX at r->i (just after "\u"), surrogate pairs joined. */
static int junicode(struct jrd *r, unsigned *cp)
{
	if (r->i + 4 > r->n || hex4(r->p + r->i, cp))
		return -1;
	r->i += 4;
	if (*cp >= 0xdc00 && *cp <= 0xdfff)
		return -1;
	if (*cp < 0xd800 || *cp > 0xdbff)
		return 0;
	unsigned lo;
	if (r->i + 6 > r->n || r->p[r->i] != '\\' || r->p[r->i + 1] != 'u' ||
	    hex4(r->p + r->i + 2, &lo) || lo < 0xdc00 || lo > 0xdfff)
		return -1;
	r->i += 6;
	*cp = 0x10000 + ((*cp - 0xd800) << 10) + (lo - 0xdc00);
	return 0;
}

static int junescape(struct jrd *r, unsigned *cp)
{
	static const char esc[] = "\"\\/bfnrt";
	static const char val[] = "\"\\/\b\f\n\r\t";
	if (r->i >= r->n)
		return -1;
	uint8_t c = r->p[r->i++];
	if (c == 'u')
		return junicode(r, cp);
	const char *m = c ? strchr(esc, c) : NULL;
	if (!m)
		return -1;
	*cp = (unsigned char)val[m - esc];
	return 0;
}

/* The JSON string at r->i (its opening quote), decoded into out (cap
 * bytes; NULL to only skip it).  0, or -1 when malformed or too long. */
static int jstring(struct jrd *r, uint8_t *out, size_t cap, size_t *len)
{
	size_t o = 0;
	r->i++;
	while (r->i < r->n) {
		/* a run of plain bytes at once */
		size_t k = r->i;
		while (k < r->n && r->p[k] != '"' && r->p[k] != '\\' &&
		       r->p[k] >= 0x20)
			k++;
		if (k > r->i && out) {
			if (k - r->i > cap - o)
				return -1;
			memcpy(out + o, r->p + r->i, k - r->i);
			o += k - r->i;
		}
		r->i = k;
		if (r->i >= r->n)
			break;
		uint8_t c = r->p[r->i++];
		if (c == '"') {
			*len = o;
			return 0;
		}
		if (c < 0x20)
			return -1;
		if (c != '\\') {
			if (out) {
				if (o == cap)
					return -1;
				out[o++] = c;
			}
			continue;
		}
		unsigned cp;
		if (junescape(r, &cp))
			return -1;
		if (out) {
			if (o + 4 > cap)
				return -1;
			o += put_utf8(out + o, cp);
		}
	}
	return -1;
}

static bool jdigit(const struct jrd *r)
{
	return r->i < r->n && r->p[r->i] >= '0' && r->p[r->i] <= '9';
}

static int jnumber(struct jrd *r)
{
	if (r->p[r->i] == '-')
		r->i++;
	if (!jdigit(r))
		return -1;
	if (r->p[r->i] == '0')
		r->i++;
	else
		while (jdigit(r))
			r->i++;
	if (r->i < r->n && r->p[r->i] == '.') {
		r->i++;
		if (!jdigit(r))
			return -1;
		while (jdigit(r))
			r->i++;
	}
	if (r->i < r->n && (r->p[r->i] | 0x20) == 'e') {
		r->i++;
		if (r->i < r->n && (r->p[r->i] == '+' || r->p[r->i] == '-'))
			r->i++;
		if (!jdigit(r))
			return -1;
		while (jdigit(r))
			r->i++;
	}
	return 0;
}

static int jliteral(struct jrd *r)
{
	static const char *const lits[] = {"true", "false", "null"};
	for (size_t k = 0; k < 3; k++) {
		size_t n = strlen(lits[k]);
		if (r->i + n <= r->n && !memcmp(r->p + r->i, lits[k], n)) {
			r->i += n;
			return 0;
		}
	}
	return -1;
}

static int jskip(struct jrd *r, unsigned depth);

static int jskip_members(struct jrd *r, uint8_t open, unsigned depth)
{
	uint8_t close = open == '{' ? '}' : ']';
	size_t dummy;
	jws(r);
	if (r->i < r->n && r->p[r->i] == close) {
		r->i++;
		return 0;
	}
	for (;;) {
		if (open == '{') {
			jws(r);
			if (r->i >= r->n || r->p[r->i] != '"' ||
			    jstring(r, NULL, 0, &dummy))
				return -1;
			jws(r);
			if (r->i >= r->n || r->p[r->i++] != ':')
				return -1;
		}
		if (jskip(r, depth + 1))
			return -1;
		jws(r);
		if (r->i >= r->n)
			return -1;
		uint8_t c = r->p[r->i++];
		if (c == close)
			return 0;
		if (c != ',')
			return -1;
	}
}

/* Skip the JSON value at r->i (nesting limited to 64). */
static int jskip(struct jrd *r, unsigned depth)
{
	size_t dummy;
	jws(r);
	if (r->i >= r->n || depth > 64)
		return -1;
	uint8_t c = r->p[r->i];
	if (c == '"')
		return jstring(r, NULL, 0, &dummy);
	if (c == '{' || c == '[') {
		r->i++;
		return jskip_members(r, c, depth);
	}
	if (c == '-' || (c >= '0' && c <= '9'))
		return jnumber(r);
	return jliteral(r);
}

struct jsonl_msg {
	bool has_topic, has_payload;
	size_t topic_len, payload_len;
	const uint8_t *payload; /* decoded string, or the raw JSON value */
};

/* Base64 p[0..n) decoded in place (it only shrinks): 0, or -1 when it
 * is not base64. */
static int b64_decode(uint8_t *p, size_t n, size_t *out)
{
	uint32_t acc = 0;
	unsigned bits = 0;
	size_t o = 0, i = 0;
	for (; i < n && p[i] != '='; i++) {
		uint8_t c = p[i];
		int v = c >= 'A' && c <= 'Z'   ? c - 'A'
			: c >= 'a' && c <= 'z' ? c - 'a' + 26
			: c >= '0' && c <= '9' ? c - '0' + 52
			: c == '+'	       ? 62
			: c == '/'	       ? 63
					       : -1;
		if (v < 0)
			return -1;
		acc = acc << 6 | (uint32_t)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			p[o++] = (uint8_t)(acc >> bits);
		}
	}
	while (i < n && p[i] == '=')
		i++;
	if (i != n)
		return -1;
	*out = o;
	return 0;
}

/* The member "topic", "payload" or "payload-base64" (or another,
 * skipped) at r->i. */
static int jmember(struct scan_ctx *c, struct jrd *r, struct jsonl_msg *m)
{
	uint8_t key[24];
	size_t kn = 0;
	if (r->i >= r->n || r->p[r->i] != '"')
		return -1;
	struct jrd k = *r; /* decode at most 16 bytes of the key */
	if (jstring(&k, key, sizeof(key), &kn))
		kn = sizeof(key) + 1;
	size_t dummy;
	if (jstring(r, NULL, 0, &dummy))
		return -1;
	jws(r);
	if (r->i >= r->n || r->p[r->i++] != ':')
		return -1;
	jws(r);
	bool is_str = r->i < r->n && r->p[r->i] == '"';
	if (kn == 5 && !memcmp(key, "topic", 5)) {
		m->has_topic = true;
		return is_str ? jstring(r, c->topic, TOPIC_MAX, &m->topic_len)
			      : -1;
	}
	if (kn == 14 && !memcmp(key, "payload-base64", 14)) { /* moat sub */
		m->has_payload = true;
		m->payload = c->payload;
		size_t n;
		if (!is_str || jstring(r, c->payload, JSONL_MAX, &n))
			return -1;
		return b64_decode(c->payload, n, &m->payload_len);
	}
	if (kn == 7 && !memcmp(key, "payload", 7)) {
		m->has_payload = true;
		if (is_str) {
			m->payload = c->payload;
			return jstring(r, c->payload, JSONL_MAX,
				       &m->payload_len);
		}
		size_t s = r->i; /* a JSON value as payload: its text */
		if (jskip(r, 1))
			return -1;
		m->payload = r->p + s;
		m->payload_len = r->i - s;
		return 0;
	}
	return jskip(r, 1);
}

static int parse_jsonl(struct scan_ctx *c, const uint8_t *p, size_t n,
		       struct jsonl_msg *m)
{
	struct jrd r = {p, n, 0};
	memset(m, 0, sizeof(*m));
	jws(&r);
	if (r.i >= n || p[r.i++] != '{')
		return -1;
	jws(&r);
	if (r.i < n && p[r.i] == '}') {
		r.i++;
	} else {
		for (;;) {
			jws(&r);
			if (jmember(c, &r, m))
				return -1;
			jws(&r);
			if (r.i >= n)
				return -1;
			uint8_t ch = p[r.i++];
			if (ch == '}')
				break;
			if (ch != ',')
				return -1;
		}
	}
	jws(&r);
	return r.i == n && m->has_payload ? 0 : -1;
}

/* ---- output ------------------------------------------------------------------------ */

static void print_flags(uint32_t flags)
{
	bool first = true;
	putchar('[');
	for (uint32_t b = 1; b; b <<= 1) {
		const char *n = (flags & b) ? moat_leak_flag_name(b) : NULL;
		if (!n)
			continue;
		printf("%s\"%s\"", first ? "" : ",", n);
		first = false;
	}
	putchar(']');
}

static void print_json(const struct scan_ctx *c, const char *file,
		       uint64_t line, const char *field, const char *topic,
		       const struct moat_leak_finding *f)
{
	fputs("{\"file\":", stdout);
	moat_json_print_string(stdout, file);
	printf(",\"line\":%llu,\"field\":\"%s\"", (unsigned long long)line,
	       field);
	if (c->o->jsonl) {
		fputs(",\"topic\":", stdout);
		if (topic)
			moat_json_print_string(stdout, topic);
		else
			fputs("null", stdout);
	}
	printf(",\"category\":\"%s\",\"severity\":\"%s\",\"confidence\":%u,"
	       "\"start\":%zu,\"end\":%zu,\"path\":",
	       moat_leak_category_name(f->category),
	       moat_leak_severity_name(f->severity), f->confidence, f->start,
	       f->end);
	if (f->path[0])
		moat_json_print_string(stdout, f->path);
	else
		fputs("null", stdout);
	fputs(",\"preview\":", stdout);
	moat_json_print_string(stdout, f->preview);
	printf(",\"hmac\":\"%s\",\"flags\":", f->hmac);
	print_flags(f->flags);
	fputs("}\n", stdout);
}

static void print_text(struct scan_ctx *c, const char *file, uint64_t line,
		       const char *field, const struct moat_leak_finding *f)
{
	char loc[64], off[48];
	if (!c->found)
		printf("%-10s %-8s %-17s %-8s %-13s %-22s %s\n", "LINE",
		       "FIELD", "CATEGORY", "SEVERITY", "BYTES", "PATH",
		       "PREVIEW");
	if (c->multi)
		snprintf(loc, sizeof(loc), "%.40s:%llu", file,
			 (unsigned long long)line);
	else
		snprintf(loc, sizeof(loc), "%llu", (unsigned long long)line);
	snprintf(off, sizeof(off), "%zu-%zu", f->start, f->end);
	printf("%-10s %-8s %-17s %-8s %-13s %-22s %s\n", loc, field,
	       moat_leak_category_name(f->category),
	       moat_leak_severity_name(f->severity), off,
	       f->path[0] ? f->path : "-", f->preview);
}

static void report(struct scan_ctx *c, const char *file, uint64_t line,
		   const char *field, const char *topic,
		   const struct moat_leak_result *r)
{
	for (size_t i = 0; i < r->n; i++) {
		const struct moat_leak_finding *f = &r->findings[i];
		c->st.per_cat[f->category]++;
		if (c->o->fmt == FMT_JSON)
			print_json(c, file, line, field, topic, f);
		else
			print_text(c, file, line, field, f);
		c->found = true;
	}
}

/* ---- scanning ------------------------------------------------------------------------ */

static double cpu_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void scan_one(struct scan_ctx *c, const uint8_t *p, size_t n,
		     struct moat_leak_result *r)
{
	double t0 = c->o->stats ? now_s() : 0;
	moat_leak_scan(c->db, c->scratch, p, n, r);
	if (c->o->stats)
		c->st.scan_s += now_s() - t0;
	c->st.bytes += r->scanned;
	if (r->flags & MOAT_LEAK_R_BUDGET)
		c->st.over_budget++;
}

/* A --jsonl line: topic then payload. */
static int scan_jsonl(struct scan_ctx *c, const char *file, uint64_t line,
		      const uint8_t *p, size_t n)
{
	struct jsonl_msg m;
	if (parse_jsonl(c, p, n, &m)) {
		fprintf(stderr, "moat scan: %s:%llu: not a JSON object with a "
				"\"payload\" (and an optional string "
				"\"topic\")\n",
			file, (unsigned long long)line);
		c->st.errors++;
		return -1;
	}
	struct moat_leak_result r;
	char *topic = c->topic_out;
	if (!m.has_topic) {
		scan_one(c, m.payload, m.payload_len, &r);
		report(c, file, line, "payload", NULL, &r);
		c->st.messages++;
		c->st.with_findings += r.n > 0;
		return 0;
	}
	/* one call for the message (the detector caches clean topics) */
	double t0 = c->o->stats ? now_s() : 0;
	moat_leak_scan_msg(c->db, c->scratch, c->topic, m.topic_len,
			   m.payload, m.payload_len, &r);
	if (c->o->stats)
		c->st.scan_s += now_s() - t0;
	c->st.bytes += m.topic_len + r.scanned;
	if (r.flags & MOAT_LEAK_R_BUDGET)
		c->st.over_budget++;
	struct moat_leak_finding tf[MOAT_LEAK_MAX_FINDINGS];
	struct moat_leak_result tr = {.findings = tf};
	size_t k = 0;
	while (k < r.n && r.findings[k].part == MOAT_LEAK_PART_TOPIC)
		tf[tr.n++] = r.findings[k++];
	memcpy(topic, c->topic, m.topic_len);
	moat_leak_redact_inplace((uint8_t *)topic, m.topic_len, &tr);
	for (size_t i = 0; i < m.topic_len; i++)
		if (!topic[i])
			topic[i] = '?';
	topic[m.topic_len] = '\0';
	report(c, file, line, "topic", topic, &tr);
	struct moat_leak_result pr = {.findings = r.findings + k,
				      .n = r.n - k};
	report(c, file, line, "payload", topic, &pr);
	c->st.messages++;
	c->st.with_findings += r.n > 0;
	return 0;
}

static int scan_stream(struct scan_ctx *c, const char *file, FILE *f,
		       struct lines *L)
{
	const uint8_t *p;
	size_t len, total;
	uint64_t line = 0;
	int rc = 0;
	L->f = f;
	L->eof = false;
	L->blen = L->bpos = 0;
	while (next_line(L, &p, &len, &total) == 1) {
		line++;
		if (c->o->jsonl) {
			if (total > len) {
				fprintf(stderr, "moat scan: %s:%llu: line "
						"longer than %u bytes\n",
					file, (unsigned long long)line,
					JSONL_MAX);
				c->st.errors++;
				rc = -1;
				continue;
			}
			if (len == 0)
				continue;
			if (scan_jsonl(c, file, line, p, len))
				rc = -1;
			continue;
		}
		struct moat_leak_result r;
		scan_one(c, p, len, &r);
		if (total > len && !(r.flags & MOAT_LEAK_R_BUDGET))
			c->st.over_budget++;
		c->st.messages++;
		c->st.with_findings += r.n > 0;
		report(c, file, line, "payload", NULL, &r);
	}
	if (ferror(f)) {
		fprintf(stderr, "moat scan: %s: read error: %s\n", file,
			strerror(errno));
		rc = -1;
	}
	return rc;
}

static void print_stats(const struct scan_ctx *c, double wall, double cpu)
{
	const struct scan_stats *s = &c->st;
	double mb = (double)s->bytes / 1e6;
	fprintf(stderr,
		"moat scan: %llu messages, %.3f MB scanned, %llu with "
		"findings\n",
		(unsigned long long)s->messages, mb,
		(unsigned long long)s->with_findings);
	for (unsigned i = 0; i < MOAT_LEAK_CATEGORY_COUNT; i++)
		if (s->per_cat[i])
			fprintf(stderr, "  %-18s %llu\n",
				moat_leak_category_name(
					(enum moat_leak_category)i),
				(unsigned long long)s->per_cat[i]);
	if (s->over_budget)
		fprintf(stderr, "  over budget: %llu messages (only the first "
				"%zu bytes scanned)\n",
			(unsigned long long)s->over_budget,
			moat_leak_db_budget(c->db));
	if (s->errors)
		fprintf(stderr, "  errors: %llu lines\n",
			(unsigned long long)s->errors);
	struct rusage ru;
	if (getrusage(RUSAGE_SELF, &ru) == 0)
		fprintf(stderr, "  memory: %ld KiB peak RSS\n", ru.ru_maxrss);
	fprintf(stderr, "  throughput: %.1f MB/s scanning, %.1f MB/s overall "
			"(%.3f s), %.1f MB per CPU second\n",
		s->scan_s > 0 ? mb / s->scan_s : 0.0, wall > 0 ? mb / wall : 0.0,
		wall, cpu > 0 ? mb / cpu : 0.0);
}

static int scan_files(struct scan_ctx *c)
{
	struct lines L;
	memset(&L, 0, sizeof(L));
	L.cap = c->o->jsonl ? JSONL_MAX : moat_leak_db_budget(c->db);
	L.blk = moat_malloc(BLOCK);
	L.line = moat_malloc(L.cap);
	if (c->o->jsonl) {
		c->payload = moat_malloc(JSONL_MAX);
		c->topic = moat_malloc(TOPIC_MAX);
		c->topic_out = moat_malloc(TOPIC_MAX + 1);
	}
	int rc = 0;
	if (!L.blk || !L.line ||
	    (c->o->jsonl && (!c->payload || !c->topic || !c->topic_out))) {
		fprintf(stderr, "moat scan: out of memory\n");
		rc = -1;
		goto out;
	}
	for (size_t i = 0; i < c->o->nfiles; i++) {
		const char *name = c->o->files[i];
		bool std = !strcmp(name, "-");
		FILE *f = std ? stdin : fopen(name, "rb");
		if (!f) {
			fprintf(stderr, "moat scan: %s: %s\n", name,
				strerror(errno));
			rc = -1;
			continue;
		}
		if (scan_stream(c, std ? "-" : name, f, &L))
			rc = -1;
		if (!std)
			fclose(f);
	}
out:
	moat_free(L.blk);
	moat_free(L.line);
	MOAT_FREE(c->payload);
	MOAT_FREE(c->topic);
	MOAT_FREE(c->topic_out);
	return rc;
}

int moat_scan_main(int argc, char **argv)
{
	struct scan_opts o;
	struct scan_ctx c;
	uint8_t key[MOAT_LEAK_KEY_LEN];
	char err[256];
	memset(&o, 0, sizeof(o));
	memset(&c, 0, sizeof(c));
	c.o = &o;
	int rc = parse_args(&o, argc, argv);
	if (rc == CLI_CONTINUE && o.key_file)
		rc = load_key(o.key_file, key);
	if (rc != CLI_CONTINUE)
		goto out;
	struct moat_leak_opts lo = {.categories = o.categories,
				    .budget = o.budget,
				    .hmac_key = o.key_file ? key : NULL};
	if (moat_leak_db_new(&lo, &c.db, err, sizeof(err)) != MOAT_OK ||
	    moat_leak_scratch_new(c.db, &c.scratch) != MOAT_OK) {
		fprintf(stderr, "moat scan: %s\n",
			err[0] ? err : "cannot create the detector");
		rc = SCAN_EXIT_ERROR;
		goto out;
	}
	c.multi = o.nfiles > 1;
	double t0 = now_s(), c0 = cpu_s();
	int frc = scan_files(&c);
	if (fflush(stdout) == EOF || ferror(stdout)) {
		fprintf(stderr, "moat scan: cannot write the output\n");
		frc = -1;
	}
	if (o.stats)
		print_stats(&c, now_s() - t0, cpu_s() - c0);
	rc = frc ? SCAN_EXIT_ERROR : c.found ? SCAN_EXIT_FOUND : SCAN_EXIT_CLEAN;
out:
	memset(key, 0, sizeof(key));
	moat_leak_scratch_free(c.scratch);
	moat_leak_db_free(c.db);
	moat_free(o.files);
	return rc;
}
