/* `moat bench` output: the progress line, the summary, and --json. */
#include <string.h>

#include "bench.h"
#include "codec/mqtt_codec.h"

static const char *version_name(const struct bench_cfg *cfg)
{
	return cfg->proto_level == MQTT_PROTO_V5 ? "5" : "3.1.1";
}

static double per_s(uint64_t n, double s)
{
	return s > 0 ? (double)n / s : 0.0;
}

static double us(uint64_t ns)
{
	return (double)ns / 1000.0;
}

/* ---- progress --------------------------------------------------------------- */

void bench_progress(const struct bench_run *r, double t, const char *phase,
		    uint64_t sent, uint64_t received, uint64_t connected)
{
	static uint64_t last_rx;
	static double last_t;
	if (r->cfg->scenario == BENCH_CONN) {
		fprintf(stderr, "\r\033[K%6.1f s  %-7s connected %llu of %ld",
			t, phase, (unsigned long long)connected,
			r->cfg->clients);
	} else {
		double dt = t - last_t;
		fprintf(stderr,
			"\r\033[K%6.1f s  %-7s sent %llu  received %llu  "
			"(%.0f msg/s)",
			t, phase, (unsigned long long)sent,
			(unsigned long long)received,
			dt > 0 ? (double)(received - last_rx) / dt : 0.0);
	}
	last_rx = received;
	last_t = t;
	fflush(stderr);
}

void bench_progress_end(void)
{
	fputs("\r\033[K", stderr);
	fflush(stderr);
}

/* ---- text ------------------------------------------------------------------- */

static void text_latency(FILE *f, const char *label,
			 const struct bench_hist *h)
{
	if (!h->count) {
		fprintf(f, "  %-13s none\n", label);
		return;
	}
	fprintf(f,
		"  %-13s min %.3f ms  p50 %.3f ms  p99 %.3f ms  p99.9 %.3f ms"
		"  max %.3f ms\n",
		label, us(h->min) / 1000.0,
		us(bench_hist_quantile(h, 0.50)) / 1000.0,
		us(bench_hist_quantile(h, 0.99)) / 1000.0,
		us(bench_hist_quantile(h, 0.999)) / 1000.0,
		us(h->max) / 1000.0);
}

static void text_title(FILE *f, const struct bench_run *r)
{
	const struct bench_cfg *cfg = r->cfg;
	switch (cfg->scenario) {
	case BENCH_FAN_IN:
		fprintf(f, "moat bench fan-in: %zu publishers -> 1 subscriber "
			   "(%s)\n",
			r->npubs, r->subs[0].filter);
		break;
	case BENCH_FAN_OUT:
		fprintf(f, "moat bench fan-out: 1 publisher -> %zu "
			   "subscribers (%s)\n",
			r->nsubs, r->subs[0].filter);
		break;
	case BENCH_PAIRS:
	case BENCH_LATENCY:
		fprintf(f, "moat bench %s: %zu publisher/subscriber pair%s "
			   "(%s/...)\n",
			cfg->name, r->npubs, r->npubs == 1 ? "" : "s",
			cfg->topic);
		break;
	case BENCH_CONN:
		fprintf(f, "moat bench conn: %ld idle connections\n",
			cfg->clients);
		break;
	}
	fprintf(f, "  broker        %s:%ld%s, MQTT %s", cfg->host, cfg->port,
		cfg->tls ? " (TLS)" : "", version_name(cfg));
	if (cfg->sub_port)
		fprintf(f, ", subscribers on port %ld", cfg->sub_port);
	if (cfg->scenario != BENCH_CONN) {
		fprintf(f, ", QoS %ld, %ld-byte payloads", cfg->qos, cfg->size);
		if (cfg->rate)
			fprintf(f, ", %ld msg/s offered", cfg->rate);
		if (cfg->unbatched)
			fputs(", unbatched", f);
	}
	fputc('\n', f);
}

void bench_report_text(FILE *f, const struct bench_run *r)
{
	const struct bench_result *res = &r->res;
	text_title(f, r);
	fprintf(f, "  connected     %llu of %llu",
		(unsigned long long)res->connected,
		(unsigned long long)(r->npubs + r->nsubs + r->nidle));
	if (res->failed)
		fprintf(f, " (%llu failed)", (unsigned long long)res->failed);
	fprintf(f, " in %.3f s: %.0f connections/s\n", res->connect_s,
		per_s(res->connected, res->connect_s));
	if (r->cfg->scenario == BENCH_CONN) {
		text_latency(f, "connect time", &res->connect_ns);
		fprintf(f, "  held          %.1f s\n", res->hold_s);
	} else {
		fprintf(f, "  sent          %llu messages in %.2f s: %.0f "
			   "msg/s\n",
			(unsigned long long)res->sent, res->publish_s,
			per_s(res->sent, res->publish_s));
		fprintf(f, "  received      %llu of %llu in %.2f s: %.0f "
			   "msg/s\n",
			(unsigned long long)res->received,
			(unsigned long long)res->expected, res->deliver_s,
			per_s(res->received, res->deliver_s));
		fprintf(f, "  lost          %llu\n",
			(unsigned long long)res->lost);
		fprintf(f, "  duplicated    %llu\n",
			(unsigned long long)res->dup);
		fprintf(f, "  out of order  %llu\n",
			(unsigned long long)res->ooo);
		if (res->foreign)
			fprintf(f, "  foreign       %llu (not from this run)\n",
				(unsigned long long)res->foreign);
		text_latency(f, "latency", &res->latency_ns);
	}
	if (res->errors)
		fprintf(f, "  errors        %llu (first: %s)\n",
			(unsigned long long)res->errors, res->first_error);
}

/* ---- JSON --------------------------------------------------------------------- */

static void json_str(FILE *f, const char *s)
{
	fputc('"', f);
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (*p == '"' || *p == '\\')
			fprintf(f, "\\%c", *p);
		else if (*p < 0x20)
			fprintf(f, "\\u%04x", *p);
		else
			fputc(*p, f);
	}
	fputc('"', f);
}

static void json_hist(FILE *f, const char *key, const struct bench_hist *h)
{
	fprintf(f,
		"\"%s\":{\"count\":%llu,\"min\":%.1f,\"p50\":%.1f,"
		"\"p90\":%.1f,\"p99\":%.1f,\"p999\":%.1f,\"max\":%.1f,"
		"\"mean\":%.1f}",
		key, (unsigned long long)h->count,
		h->count ? us(h->min) : 0.0,
		us(bench_hist_quantile(h, 0.50)),
		us(bench_hist_quantile(h, 0.90)),
		us(bench_hist_quantile(h, 0.99)),
		us(bench_hist_quantile(h, 0.999)), us(h->max),
		h->count ? h->sum / (double)h->count / 1000.0 : 0.0);
}

static void json_u(FILE *f, const char *key, uint64_t v)
{
	fprintf(f, ",\"%s\":%llu", key, (unsigned long long)v);
}

static void json_d(FILE *f, const char *key, double v)
{
	fprintf(f, ",\"%s\":%.3f", key, v);
}

void bench_report_json(FILE *f, const struct bench_run *r)
{
	const struct bench_cfg *cfg = r->cfg;
	const struct bench_result *res = &r->res;
	fputs("{\"scenario\":", f);
	json_str(f, cfg->name);
	fputs(",\"host\":", f);
	json_str(f, cfg->host);
	fprintf(f, ",\"port\":%ld,\"tls\":%s,\"mqtt_version\":\"%s\"",
		cfg->port, cfg->tls ? "true" : "false", version_name(cfg));
	if (cfg->sub_port)
		fprintf(f, ",\"sub_port\":%ld", cfg->sub_port);
	fprintf(f, ",\"qos\":%ld,\"payload_size\":%ld,\"rate\":%ld,"
		   "\"window\":%ld,\"inflight\":%ld,\"unbatched\":%s",
		cfg->qos, cfg->size, cfg->rate, cfg->window, cfg->inflight,
		cfg->unbatched ? "true" : "false");
	fputs(",\"topic\":", f);
	json_str(f, cfg->topic);
	json_u(f, "publishers", r->npubs);
	json_u(f, "subscribers", r->nsubs);
	json_u(f, "connections", r->npubs + r->nsubs + r->nidle);
	fprintf(f, ",\"connect\":{\"attempted\":%llu,\"connected\":%llu,"
		   "\"failed\":%llu,\"time_s\":%.3f,\"per_s\":%.1f,",
		(unsigned long long)res->attempted,
		(unsigned long long)res->connected,
		(unsigned long long)res->failed, res->connect_s,
		per_s(res->connected, res->connect_s));
	json_hist(f, "latency_us", &res->connect_ns);
	fputc('}', f);
	json_d(f, "hold_s", res->hold_s);
	json_d(f, "publish_s", res->publish_s);
	json_d(f, "deliver_s", res->deliver_s);
	json_d(f, "drain_s", res->drain_s);
	json_d(f, "elapsed_s", res->elapsed_s);
	json_u(f, "sent", res->sent);
	json_u(f, "expected", res->expected);
	json_u(f, "received", res->received);
	json_u(f, "lost", res->lost);
	json_u(f, "duplicated", res->dup);
	json_u(f, "out_of_order", res->ooo);
	json_u(f, "foreign", res->foreign);
	json_d(f, "sent_per_s", per_s(res->sent, res->publish_s));
	json_d(f, "received_per_s", per_s(res->received, res->deliver_s));
	fputc(',', f);
	json_hist(f, "latency_us", &res->latency_ns);
	json_u(f, "errors", res->errors);
	fputs(",\"first_error\":", f);
	if (res->errors)
		json_str(f, res->first_error);
	else
		fputs("null", f);
	fputs("}\n", f);
}
