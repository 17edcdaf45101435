/* `moat bench` payloads: the binary header padded to --size (default),
 * or JSON telemetry (--payload FILE|telemetry) with the header as text
 * in its first member:
 *
 *     {"_b":"PPPPPPPPSSSSSSSSSSSSSSSSTTTTTTTTTTTTTTTT",<template members>}
 *
 * (publisher, sequence number and send time in hex), so that a broker's
 * payload inspection sees realistic JSON and the subscribers still count
 * loss and latency.  The readings change from message to message as a
 * device's do: the last digit of every number in the template (outside
 * strings) follows the sequence number (lengths stay).  Templates: one JSON object per line of FILE
 * (publisher i uses line i modulo their number), or a built-in mix of
 * 100-200 byte sensor, meter, plug and tracker readings. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "bench.h"
#include "cli_opt.h"

#define TEXT_HDR "{\"_b\":\""
#define TEXT_HDR_LEN 7u
#define TEXT_HEX 40u /* 8 + 16 + 16 hex digits */
#define TEXT_HDR_SIZE (TEXT_HDR_LEN + TEXT_HEX + 2u) /* ...", */
#define MAX_TEMPLATES 4096
#define MAX_TEMPLATE 65536
#define MAX_READINGS 64 /* numbers per template that change */

static const char *const telemetry[] = {
	"{\"temp\":21.37,\"hum\":48.2,\"battery\":87,\"rssi\":-71,\"ts\":"
	"1700000123,\"fw\":\"1.4.2\",\"uptime\":812733}",
	"{\"Time\":\"2024-05-17T10:21:07\",\"ENERGY\":{\"Power\":1432,"
	"\"Voltage\":231,\"Current\":6.204,\"Today\":3.112,\"Total\":"
	"812.44}}",
	"{\"state\":\"ON\",\"brightness\":187,\"color_temp\":370,"
	"\"linkquality\":132,\"update\":{\"state\":\"idle\"},\"update_"
	"available\":false}",
	"{\"seq\":48211,\"pressure\":1012.6,\"status\":\"ok\",\"flow\":"
	"12.74,\"valve\":1,\"interval\":60,\"site\":\"plant-3\",\"kind\":"
	"\"meter\",\"err\":0}",
	"{\"co2\":612,\"voc\":143,\"pm25\":7.1,\"pm10\":11.4,\"temp\":"
	"22.9,\"hum\":41,\"battery\":64,\"lqi\":201,\"node\":\"n0412\"}",
	"{\"speed\":0,\"heading\":212,\"odometer\":183233.4,\"ignition\":"
	"false,\"fuel\":61.5,\"engine_temp\":71,\"dtc\":[],\"sats\":11}",
};

struct bench_readings {
	size_t n;
	uint32_t off[MAX_READINGS]; /* last digits, offsets in the body */
};

struct bench_payloads {
	size_t n;
	char **t;    /* template bodies: the members after the '{' */
	size_t *len;
	struct bench_readings *rd;
};

/* The last digit of each number outside strings in t[0..n). */
static void find_readings(const char *t, size_t n, struct bench_readings *rd)
{
	bool str = false;
	rd->n = 0;
	for (size_t i = 0; i < n && rd->n < MAX_READINGS; i++) {
		char c = t[i];
		if (str) {
			if (c == '\\')
				i++;
			else if (c == '"')
				str = false;
			continue;
		}
		if (c == '"')
			str = true;
		else if (c >= '0' && c <= '9' &&
			 (i + 1 == n || !strchr("0123456789.eE", t[i + 1])))
			rd->off[rd->n++] = (uint32_t)i;
	}
}

void bench_payload_free(struct bench_cfg *cfg)
{
	struct bench_payloads *p = cfg->payloads;
	if (!p)
		return;
	for (size_t i = 0; i < p->n; i++)
		moat_free(p->t[i]);
	moat_free(p->t);
	moat_free(p->len);
	moat_free(p->rd);
	moat_free(p);
	cfg->payloads = NULL;
}

/* Add one template: a JSON object (checked only for its braces). */
static int add(struct bench_payloads *p, const char *s, size_t n)
{
	while (n && (s[n - 1] == '\n' || s[n - 1] == '\r' || s[n - 1] == ' '))
		n--;
	if (n < 2 || s[0] != '{' || s[n - 1] != '}')
		return MOAT_EINVAL;
	if (p->n == MAX_TEMPLATES)
		return MOAT_ELIMIT;
	size_t body = n - 1; /* "members}" */
	char *t = moat_malloc(body + 1);
	if (!t)
		return MOAT_ENOMEM;
	memcpy(t, s + 1, body);
	t[body] = '\0';
	/* "{}" keeps just the header: drop the comma then */
	p->t[p->n] = t;
	p->len[p->n] = body;
	find_readings(t, body, &p->rd[p->n]);
	p->n++;
	return MOAT_OK;
}

static int load_file(struct bench_payloads *p, const char *path)
{
	FILE *f = fopen(path, "r");
	if (!f) {
		fprintf(stderr, "moat bench: --payload %s: %s\n", path,
			strerror(errno));
		return CLI_EXIT_USAGE;
	}
	char *line = moat_malloc(MAX_TEMPLATE + 2);
	int rc = line ? MOAT_OK : MOAT_ENOMEM;
	unsigned long no = 0;
	while (rc == MOAT_OK && fgets(line, MAX_TEMPLATE + 2, f)) {
		no++;
		size_t n = strlen(line);
		if (n > MAX_TEMPLATE || (n == 1 && line[0] == '\n'))
			rc = n > MAX_TEMPLATE ? MOAT_ELIMIT : MOAT_OK;
		else
			rc = add(p, line, n);
	}
	fclose(f);
	moat_free(line);
	if (rc == MOAT_OK && p->n == 0)
		rc = MOAT_EINVAL;
	if (rc != MOAT_OK) {
		fprintf(stderr, "moat bench: --payload %s: line %lu: %s\n",
			path, no,
			rc == MOAT_ENOMEM ? "out of memory"
			: rc == MOAT_ELIMIT
				? "too long or too many lines (64 KiB, 4096)"
				: "expected one JSON object per line");
		return rc == MOAT_ENOMEM ? CLI_EXIT_FAIL : CLI_EXIT_USAGE;
	}
	return MOAT_OK;
}

int bench_payload_load(struct bench_cfg *cfg)
{
	if (!cfg->payload)
		return MOAT_OK;
	struct bench_payloads *p = moat_calloc(1, sizeof(*p));
	if (p) {
		p->t = moat_calloc(MAX_TEMPLATES, sizeof(*p->t));
		p->len = moat_calloc(MAX_TEMPLATES, sizeof(*p->len));
		p->rd = moat_calloc(MAX_TEMPLATES, sizeof(*p->rd));
	}
	cfg->payloads = p;
	if (!p || !p->t || !p->len || !p->rd) {
		bench_payload_free(cfg);
		return CLI_EXIT_FAIL;
	}
	int rc = MOAT_OK;
	if (!strcmp(cfg->payload, "telemetry")) {
		for (size_t i = 0; i < MOAT_ARRAY_LEN(telemetry) && !rc; i++)
			rc = add(p, telemetry[i], strlen(telemetry[i]));
		rc = rc ? CLI_EXIT_FAIL : MOAT_OK;
	} else {
		rc = load_file(p, cfg->payload);
	}
	if (rc != MOAT_OK) {
		bench_payload_free(cfg);
		return rc;
	}
	size_t sum = 0;
	for (size_t i = 0; i < p->n; i++)
		sum += TEXT_HDR_SIZE + p->len[i];
	cfg->size = (long)(sum / p->n); /* reported: the average */
	return MOAT_OK;
}

int bench_payload_build(const struct bench_cfg *cfg, uint32_t pub,
			uint8_t **out, size_t *len)
{
	const struct bench_payloads *p = cfg->payloads;
	size_t n = p ? TEXT_HDR_SIZE + p->len[pub % p->n] : (size_t)cfg->size;
	uint8_t *b = moat_malloc(n);
	if (!b)
		return MOAT_ENOMEM;
	if (!p) {
		memset(b, 'x', n);
		uint32_t magic = BENCH_MAGIC;
		memcpy(b, &magic, 4);
		memcpy(b + BENCH_OFF_PUB, &pub, 4);
		memset(b + BENCH_OFF_SEQ, 0, 16);
	} else {
		const char *t = p->t[pub % p->n];
		size_t tl = p->len[pub % p->n];
		char hdr[64];
		snprintf(hdr, sizeof(hdr), TEXT_HDR "%08x%016x%016x\"%s",
			 (unsigned)pub, 0u, 0u, tl > 1 ? "," : " ");
		memcpy(b, hdr, TEXT_HDR_SIZE);
		memcpy(b + TEXT_HDR_SIZE, t, tl);
	}
	*out = b;
	*len = n;
	return MOAT_OK;
}

static void hex(uint8_t *out, uint64_t v, unsigned digits)
{
	static const char d[] = "0123456789abcdef";
	for (unsigned i = digits; i > 0; i--, v >>= 4)
		out[i - 1] = (uint8_t)d[v & 15];
}

static bool unhex(const uint8_t *p, unsigned digits, uint64_t *v)
{
	*v = 0;
	for (unsigned i = 0; i < digits; i++) {
		uint8_t c = p[i];
		unsigned x = c >= '0' && c <= '9'   ? (unsigned)(c - '0')
			     : c >= 'a' && c <= 'f' ? (unsigned)(c - 'a' + 10)
						    : 16;
		if (x == 16)
			return false;
		*v = *v << 4 | x;
	}
	return true;
}

void bench_payload_stamp(const struct bench_cfg *cfg, uint8_t *payload,
			 uint64_t seq, uint64_t ts)
{
	if (!cfg->payloads) {
		memcpy(payload + BENCH_OFF_SEQ, &seq, 8);
		memcpy(payload + BENCH_OFF_TIME, &ts, 8);
		return;
	}
	hex(payload + TEXT_HDR_LEN + 8, seq, 16);
	hex(payload + TEXT_HDR_LEN + 24, ts, 16);
	uint64_t pub;
	if (!unhex(payload + TEXT_HDR_LEN, 8, &pub))
		return;
	const struct bench_readings *rd = &cfg->payloads->rd[pub %
							     cfg->payloads->n];
	uint8_t *body = payload + TEXT_HDR_SIZE;
	for (size_t i = 0; i < rd->n; i++)
		body[rd->off[i]] = (uint8_t)('0' + (seq + i) % 10);
}


bool bench_payload_read(const uint8_t *p, size_t n, uint32_t *pub,
			uint64_t *seq, uint64_t *ts)
{
	uint64_t v;
	if (n >= TEXT_HDR_SIZE && !memcmp(p, TEXT_HDR, TEXT_HDR_LEN)) {
		if (!unhex(p + TEXT_HDR_LEN, 8, &v) ||
		    !unhex(p + TEXT_HDR_LEN + 8, 16, seq) ||
		    !unhex(p + TEXT_HDR_LEN + 24, 16, ts))
			return false;
		*pub = (uint32_t)v;
		return true;
	}
	uint32_t magic;
	if (n < BENCH_HDR_SIZE)
		return false;
	memcpy(&magic, p, 4);
	if (magic != BENCH_MAGIC)
		return false;
	memcpy(pub, p + BENCH_OFF_PUB, 4);
	memcpy(seq, p + BENCH_OFF_SEQ, 8);
	memcpy(ts, p + BENCH_OFF_TIME, 8);
	return true;
}
