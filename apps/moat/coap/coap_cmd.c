/* `moat coap METHOD URI`: a CoAP client for people and scripts.
 *
 * Options come from the shared option table (moat_opts.c, CLI_COAP);
 * this file checks them, reads the payload and the PSK, opens UDP or DTLS
 * (src/net/dgram.h, src/net/dtls.h), runs the exchange (src/coap/
 * coap_client.h) and prints each response: the payload, the header and
 * options with -v (as libcoap's coap-client -v), or one JSON object with
 * --json (read by `moat scan --jsonl`).
 *
 * Exit status: 0 for a 2.xx answer, 1 for 4.xx/5.xx, 2 for errors and
 * timeouts (and usage errors). */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "coap/coap_client.h"
#include "commands.h"
#include "pubsub/moat_cli.h"
#include "net/dgram.h"
#include "net/dtls.h"

#define EXIT_COAP_OK 0
#define EXIT_COAP_ERROR_CODE 1
#define EXIT_COAP_FAIL 2
#define DEFAULT_MAX_BODY (8u << 20)
#define PSK_MAX 256 /* bytes of key */

void moat_coap_usage(FILE *f)
{
	cli_print_usage(f, CLI_COAP);
	fputs("\nMETHOD: get, put, post, delete, or observe (GET + Observe: "
	      "prints each\n"
	      "  notification until -C, -W or Ctrl-C, then deregisters).\n"
	      "URI: coap://HOST[:PORT]/PATH[?QUERY] (port 5683) or coaps://"
	      " (DTLS 1.2,\n"
	      "  port 5684) with --psk-identity, or certificates (--cafile, "
	      "--cert, --key).\n"
	      "  Credentials never go in the URI; a PSK is never taken "
	      "from the command\n"
	      "  line: --psk-file or the prompt.\n"
	      "Payloads (-m, -f, -s) go with put and post; larger than one "
	      "block, they go\n"
	      "  block-wise (Block1), and large answers are fetched "
	      "block-wise (Block2).\n"
	      "  A 4.01 with an Echo option is answered by repeating the "
	      "request with it.\n"
	      "\nExit status: 0 a 2.xx answer, 1 a 4.xx or 5.xx answer, 2 "
	      "error, timeout\nor usage error.\n",
	      f);
}

/* ---- checking the command line ------------------------------------------ */

struct coap_cmd {
	struct cli_cfg *cfg;
	struct coap_uri uri;
	struct coap_request rq;
	struct coap_client_cfg cc;
	struct moat_buf payload;
	uint8_t psk[PSK_MAX];
	size_t psk_len;
	/* output */
	const char *uri_text;
	unsigned long responses;
	uint8_t last_code;
};

static int parse_method(struct coap_cmd *c, const char *m)
{
	static const struct {
		const char *name;
		uint8_t code;
	} methods[] = {{"get", COAP_GET},	{"put", COAP_PUT},
		       {"post", COAP_POST},	{"delete", COAP_DELETE},
		       {"observe", COAP_GET}};
	for (size_t i = 0; i < MOAT_ARRAY_LEN(methods); i++) {
		if (!strcasecmp(m, methods[i].name)) {
			c->rq.method = methods[i].code;
			c->rq.observe = !strcasecmp(m, "observe");
			return MOAT_OK;
		}
	}
	return cli_usage_error(c->cfg, "unknown method '%s' (get, put, post, "
				       "delete or observe)",
			       m);
}

static int check_dtls_opts(struct coap_cmd *c)
{
	const struct cli_coap *o = &c->cfg->coap;
	bool any = o->psk_identity || o->psk_file || o->cafile || o->cert ||
		   o->key;
	if (!c->uri.secure)
		return any ? cli_usage_error(c->cfg, "--psk-identity, "
						     "--psk-file, --cafile, "
						     "--cert and --key need a "
						     "coaps:// URI")
			   : MOAT_OK;
	if (o->psk_file && !o->psk_identity)
		return cli_usage_error(c->cfg, "--psk-file needs "
					       "--psk-identity");
	if (o->psk_identity && (o->cafile || o->cert || o->key))
		return cli_usage_error(c->cfg, "use either a PSK "
					       "(--psk-identity) or "
					       "certificates, not both");
	if (o->key && !o->cert)
		return cli_usage_error(c->cfg, "--key needs --cert");
	if (o->psk_identity &&
	    (!o->psk_identity[0] || strlen(o->psk_identity) > 128))
		return cli_usage_error(c->cfg, "a PSK identity has 1 to 128 "
					       "bytes");
	return MOAT_OK;
}

static int check_args(struct coap_cmd *c)
{
	struct cli_cfg *cfg = c->cfg;
	const struct cli_coap *o = &cfg->coap;
	if (o->args.n != 2)
		return cli_usage_error(cfg, "give a METHOD and a URI, e.g. "
					    "'moat coap get "
					    "coap://localhost/path'");
	int rc = parse_method(c, o->args.v[0]);
	if (rc != MOAT_OK)
		return rc;
	const char *why;
	c->uri_text = o->args.v[1];
	if (coap_uri_parse(c->uri_text, &c->uri, &why) != MOAT_OK)
		return cli_usage_error(cfg, "bad URI '%s': %s", c->uri_text,
				       why);
	if (cfg->source != CLI_SRC_NONE && c->rq.method != COAP_PUT &&
	    c->rq.method != COAP_POST)
		return cli_usage_error(cfg, "-m, -f and -s go with put and "
					    "post");
	if (o->con && o->non)
		return cli_usage_error(cfg, "--con and --non exclude each "
					    "other");
	if (cfg->count && !c->rq.observe)
		return cli_usage_error(cfg, "-C goes with observe");
	if (cfg->json && cfg->verbose)
		return cli_usage_error(cfg, "--json and -v exclude each other");
	long bs = o->block_size ? o->block_size : 1024;
	if (bs & (bs - 1))
		return cli_usage_error(cfg, "--block-size must be a power of "
					    "2 from 16 to 1024");
	c->rq.content_format = -1;
	uint32_t cf;
	if (o->content_format) {
		if (coap_cf_parse(o->content_format, &cf) != MOAT_OK)
			return cli_usage_error(cfg, "unknown Content-Format "
						    "'%s'",
					       o->content_format);
		c->rq.content_format = (int32_t)cf;
	}
	c->cc = (struct coap_client_cfg){.tx = COAP_TX_PARAMS_DEFAULT};
	c->cc.non = o->non;
	c->cc.block_szx = coap_block_szx_for((size_t)bs);
	c->cc.max_body = o->max_body ? (size_t)o->max_body : DEFAULT_MAX_BODY;
	return check_dtls_opts(c);
}

/* ---- the pre-shared key --------------------------------------------------- */

static int hex_key(struct coap_cmd *c, const char *s, size_t n)
{
	if (n % 2 || n / 2 > PSK_MAX || n == 0)
		return MOAT_EINVAL;
	for (size_t i = 0; i < n; i += 2) {
		char h[3] = {s[i], s[i + 1], 0};
		if (!isxdigit((unsigned char)h[0]) ||
		    !isxdigit((unsigned char)h[1]))
			return MOAT_EINVAL;
		c->psk[i / 2] = (uint8_t)strtoul(h, NULL, 16);
	}
	c->psk_len = n / 2;
	return MOAT_OK;
}

/* A key line: "hex:..." or the key's bytes as they are. */
static int key_line(struct coap_cmd *c, const char *s, size_t n)
{
	if (n > 4 && !strncmp(s, "hex:", 4))
		return hex_key(c, s + 4, n - 4);
	if (n == 0 || n > PSK_MAX)
		return MOAT_EINVAL;
	memcpy(c->psk, s, n);
	c->psk_len = n;
	return MOAT_OK;
}

static int read_psk(struct coap_cmd *c)
{
	const char *path = c->cfg->coap.psk_file;
	char err[256];
	char *text = NULL;
	size_t len = 0;
	int rc;
	if (path) {
		rc = moat_file_read(path, 4096, true, &text, &len, err,
				    sizeof(err));
		if (rc != MOAT_OK) {
			cli_error(c->cfg, "%s", err);
			return EXIT_COAP_FAIL;
		}
		len = strcspn(text, "\r\n");
	} else {
		text = moat_malloc(CLI_SECRET_MAX + 1);
		if (!text)
			return EXIT_COAP_FAIL;
		rc = cli_tty_secret("PSK: ", text, &len);
		if (rc != MOAT_OK) {
			cli_error(c->cfg, "no PSK: give --psk-file FILE or run "
					  "on a terminal to be asked for it");
			moat_free(text);
			return EXIT_COAP_FAIL;
		}
	}
	rc = key_line(c, text, len);
	explicit_bzero(text, strlen(text));
	moat_free(text);
	if (rc != MOAT_OK) {
		cli_error(c->cfg, "the PSK must have 1 to %d bytes (hex:HEX "
				  "for a key in hex)", PSK_MAX);
		return EXIT_COAP_FAIL;
	}
	return MOAT_OK;
}

/* ---- output ---------------------------------------------------------------- */

/* One option's value as text: numbers for uint options (block options as
 * NUM/M/SIZE), text for strings, hex for opaque values. */
static void opt_text(const struct coap_opt *o, char *out, size_t outsz)
{
	const struct coap_optdef *d = coap_optdef(o->num);
	uint32_t v = 0;
	out[0] = 0;
	if (d && d->fmt == COAP_FMT_UINT &&
	    coap_uint_decode(o->val, o->len, &v) == MOAT_OK) {
		struct coap_block b;
		if ((o->num == COAP_OPT_BLOCK1 || o->num == COAP_OPT_BLOCK2) &&
		    coap_block_decode(v, &b) == MOAT_OK)
			snprintf(out, outsz, "%u/%d/%zu", b.num, b.more,
				 coap_block_size(b.szx));
		else
			snprintf(out, outsz, "%u", v);
	} else if (d && d->fmt == COAP_FMT_STRING) {
		moat_log_escape(o->val, o->len, out, outsz);
	} else {
		size_t k = 0;
		for (size_t i = 0; i < o->len && k + 3 < outsz; i++)
			k += (size_t)snprintf(out + k, outsz - k, "%02x",
					      o->val[i]);
	}
}

static void opt_name(uint16_t num, char *out, size_t outsz)
{
	const struct coap_optdef *d = coap_optdef(num);
	if (d)
		snprintf(out, outsz, "%s", d->name);
	else
		snprintf(out, outsz, "%u", num);
}

/* v:1 t:ACK c:2.05 i:5b5a {0a1b} [ Content-Format:0, Max-Age:60 ] */
static void print_header(FILE *f, const struct coap_msg *m)
{
	char code[5], name[32], val[300];
	coap_code_str(m->code, code);
	const char *method = COAP_CODE_CLASS(m->code) == 0 && m->code
				     ? coap_code_name(m->code)
				     : NULL;
	fprintf(f, "v:1 t:%s c:%s i:%04x {", coap_type_name(m->type),
		method ? method : code, m->mid);
	for (size_t i = 0; i < m->tkl; i++)
		fprintf(f, "%02x", m->token[i]);
	fputs("} [", f);
	struct coap_opt_iter it;
	struct coap_opt o;
	const char *sep = " ";
	coap_opt_iter_init(&it, m);
	while (coap_opt_next(&it, &o)) {
		opt_name(o.num, name, sizeof(name));
		opt_text(&o, val, sizeof(val));
		fprintf(f, "%s%s:%s", sep, name, val);
		sep = ", ";
	}
	fputs(" ]\n", f);
}

static int json_options(struct moat_buf *b, const struct coap_msg *m)
{
	struct coap_opt_iter it;
	struct coap_opt o;
	char tmp[400];
	int rc = moat_buf_append(b, "\"options\":[", 11);
	const char *sep = "";
	coap_opt_iter_init(&it, m);
	while (rc == MOAT_OK && coap_opt_next(&it, &o)) {
		const struct coap_optdef *d = coap_optdef(o.num);
		uint32_t v;
		snprintf(tmp, sizeof(tmp), "%s{\"number\":%u,\"name\":\"%s\",",
			 sep, o.num, d ? d->name : "unknown");
		sep = ",";
		rc = moat_buf_append(b, tmp, strlen(tmp));
		struct moat_bytes val = {o.val, o.len};
		if (rc != MOAT_OK)
			break;
		if (d && d->fmt == COAP_FMT_UINT &&
		    coap_uint_decode(o.val, o.len, &v) == MOAT_OK) {
			snprintf(tmp, sizeof(tmp), "\"value\":%u}", v);
			rc = moat_buf_append(b, tmp, strlen(tmp));
			continue;
		}
		if (d && d->fmt == COAP_FMT_STRING) {
			rc = cli_json_data(b, "value", val);
		} else {
			opt_text(&o, tmp, sizeof(tmp));
			rc = moat_buf_append(b, "\"value-hex\":\"", 13);
			if (rc == MOAT_OK)
				rc = moat_buf_append(b, tmp, strlen(tmp));
			if (rc == MOAT_OK)
				rc = moat_buf_append(b, "\"", 1);
		}
		if (rc == MOAT_OK)
			rc = moat_buf_append(b, "}", 1);
	}
	return rc == MOAT_OK ? moat_buf_append(b, "],", 2) : rc;
}

/* {"uri":..., "type":"ACK", "code":"2.05", "code-name":"Content",
 *  "mid":1, "token":"hex", "options":[...], "payload":"..."} */
static int print_json(const struct coap_cmd *c, const struct coap_msg *m,
		      const uint8_t *body, size_t len)
{
	struct moat_buf b;
	char tmp[160], code[5];
	const char *name = coap_code_name(m->code);
	moat_buf_init(&b, SIZE_MAX / 4);
	coap_code_str(m->code, code);
	int rc = moat_buf_append(&b, "{\"uri\":", 7);
	if (rc == MOAT_OK)
		rc = cli_json_str(&b, (struct moat_bytes){
			(const uint8_t *)c->uri_text, strlen(c->uri_text)});
	snprintf(tmp, sizeof(tmp),
		 ",\"type\":\"%s\",\"code\":\"%s\",\"code-name\":\"%s\","
		 "\"mid\":%u,\"token\":\"",
		 coap_type_name(m->type), code, name ? name : "", m->mid);
	if (rc == MOAT_OK)
		rc = moat_buf_append(&b, tmp, strlen(tmp));
	for (size_t i = 0; rc == MOAT_OK && i < m->tkl; i++) {
		snprintf(tmp, sizeof(tmp), "%02x", m->token[i]);
		rc = moat_buf_append(&b, tmp, 2);
	}
	if (rc == MOAT_OK)
		rc = moat_buf_append(&b, "\",", 2);
	if (rc == MOAT_OK)
		rc = json_options(&b, m);
	if (rc == MOAT_OK)
		rc = cli_json_data(&b, "payload",
				   (struct moat_bytes){body, len});
	if (rc == MOAT_OK)
		rc = moat_buf_append(&b, "}\n", 2);
	if (rc == MOAT_OK &&
	    fwrite(b.data, 1, moat_buf_used(&b), stdout) != moat_buf_used(&b))
		rc = MOAT_EIO;
	moat_buf_cleanup(&b);
	return rc;
}

static int on_response(void *arg, const struct coap_msg *m,
		       const uint8_t *body, size_t len)
{
	struct coap_cmd *c = arg;
	const struct cli_cfg *cfg = c->cfg;
	int rc = MOAT_OK;
	c->responses++;
	c->last_code = m->code;
	bool ok = COAP_CODE_CLASS(m->code) == 2;
	if (cfg->json) {
		rc = print_json(c, m, body, len);
	} else {
		if (cfg->verbose)
			print_header(stdout, m);
		if (ok && len && (fwrite(body, 1, len, stdout) != len ||
				  fputc('\n', stdout) == EOF))
			rc = MOAT_EIO;
		if (!ok && !cfg->quiet) {
			char code[5], diag[200] = "";
			const char *name = coap_code_name(m->code);
			coap_code_str(m->code, code);
			if (len)
				moat_log_escape(body, len, diag, sizeof(diag));
			fprintf(stderr, "moat coap: %s %s%s%s\n", code,
				name ? name : "", len ? ": " : "", diag);
		}
	}
	if (fflush(stdout) == EOF)
		rc = MOAT_EIO;
	if (rc != MOAT_OK)
		return rc;
	return cfg->count && c->responses >= (unsigned long)cfg->count
		       ? MOAT_DECLINED
		       : MOAT_OK;
}

static void on_trace(void *arg, bool out, const uint8_t *p, size_t n)
{
	(void)arg;
	struct coap_msg m;
	fputs(out ? "> " : "< ", stderr);
	if (coap_parse(p, n, &m) == MOAT_OK) {
		print_header(stderr, &m);
		return;
	}
	fprintf(stderr, "%zu bytes that are not a CoAP message (ignored)\n",
		n);
}

/* ---- transport --------------------------------------------------------------- */

struct transport {
	struct moat_dgram d;
	SSL_CTX *ctx;
	int last_errno;
};

static int io_send(void *ctx, const uint8_t *p, size_t n)
{
	struct transport *t = ctx;
	int rc = moat_dgram_send(&t->d, p, n);
	t->last_errno = errno;
	return rc;
}

static int io_recv(void *ctx, uint8_t *buf, size_t cap, uint32_t wait_ms,
		   size_t *n)
{
	struct transport *t = ctx;
	int rc = moat_dgram_recv(&t->d, buf, cap, wait_ms, n);
	t->last_errno = errno;
	/* Take the signal's byte: the deregistration that follows Ctrl-C
	 * gets its bounded wait, and a second Ctrl-C cuts it short. */
	char sig;
	if (rc == MOAT_ECLOSED)
		(void)!read(t->d.wake_fd, &sig, 1);
	return rc;
}

static int open_transport(struct coap_cmd *c, struct transport *t,
			  struct moat_dtls_client_cfg *dc)
{
	char err[512];
	const struct cli_coap *o = &c->cfg->coap;
	if (moat_dgram_open(&t->d, c->uri.host, c->uri.port, err,
			    sizeof(err)) != MOAT_OK) {
		cli_error(c->cfg, "%s", err);
		return EXIT_COAP_FAIL;
	}
	t->d.wake_fd = cli_signal_fd(); /* Ctrl-C ends an observation */
	if (!c->uri.secure)
		return MOAT_OK;
	if (o->key && moat_file_check_private(o->key, err, sizeof(err))) {
		cli_error(c->cfg, "%s", err);
		return EXIT_COAP_FAIL;
	}
	*dc = (struct moat_dtls_client_cfg){
		.psk_identity = o->psk_identity,
		.psk = c->psk,
		.psk_len = c->psk_len,
		.cafile = o->cafile,
		.certfile = o->cert,
		.keyfile = o->key,
		.host = c->uri.host,
		.host_is_ip = c->uri.host_literal,
	};
	t->ctx = moat_dtls_client_ctx(dc, err, sizeof(err));
	uint64_t deadline = c->cc.deadline_ms
				    ? c->cc.deadline_ms
				    : moat_now_ms() +
					      coap_max_transmit_wait_ms(&c->cc.tx);
	if (!t->ctx || moat_dtls_connect(t->ctx, t->d.fd, dc, deadline,
					 &t->d.ssl, err,
					 sizeof(err)) != MOAT_OK) {
		cli_error(c->cfg, "coaps://%s:%u: %s", c->uri.host, c->uri.port,
			  err);
		return EXIT_COAP_FAIL;
	}
	return MOAT_OK;
}

static int run(struct coap_cmd *c)
{
	struct cli_cfg *cfg = c->cfg;
	if (cfg->source == CLI_SRC_MESSAGE) {
		c->rq.payload = (const uint8_t *)cfg->source_arg;
		c->rq.payload_len = strlen(cfg->source_arg);
	} else if (cfg->source != CLI_SRC_NONE) {
		if (cli_read_source(cfg, &c->payload) != MOAT_OK)
			return EXIT_COAP_FAIL;
		c->rq.payload = c->payload.data;
		c->rq.payload_len = moat_buf_used(&c->payload);
	}
	if (c->uri.secure && cfg->coap.psk_identity) {
		int rc = read_psk(c);
		if (rc != MOAT_OK)
			return rc;
	}
	if (cli_catch_signals() != MOAT_OK) {
		cli_error(cfg, "cannot install signal handlers");
		return EXIT_COAP_FAIL;
	}
	c->rq.uri = &c->uri;
	if (cfg->timeout)
		c->cc.deadline_ms = moat_now_ms() + (uint64_t)cfg->timeout * 1000;
	if (cfg->debug) {
		c->cc.trace = on_trace;
		c->cc.trace_arg = c;
	}
	struct transport t = {.d = {.fd = -1, .wake_fd = -1}};
	struct moat_dtls_client_cfg dc;
	int rc = open_transport(c, &t, &dc);
	if (rc == MOAT_OK) {
		struct coap_io io = {&t, io_send, io_recv};
		char err[512];
		int r = coap_client_run(&io, &c->cc, &c->rq, on_response, c,
					err, sizeof(err));
		if (r == MOAT_EIO && t.last_errno == ECONNREFUSED)
			snprintf(err, sizeof(err), "nothing listens at %s:%u "
						   "(connection refused)",
				 c->uri.host, c->uri.port);
		else if (r == MOAT_ECLOSED)
			snprintf(err, sizeof(err), "interrupted");
		else if (r != MOAT_OK && !err[0])
			snprintf(err, sizeof(err), "%s", moat_strerror(r));
		if (r != MOAT_OK) {
			cli_error(cfg, "%s: %s", c->uri_text, err);
			rc = EXIT_COAP_FAIL;
		} else {
			rc = COAP_CODE_CLASS(c->last_code) == 2
				     ? EXIT_COAP_OK
				     : EXIT_COAP_ERROR_CODE;
		}
	}
	moat_dgram_close(&t.d);
	SSL_CTX_free(t.ctx);
	return rc;
}

int moat_coap_main(int argc, char **argv)
{
	struct cli_cfg cfg;
	struct coap_cmd c;
	memset(&c, 0, sizeof(c));
	c.cfg = &cfg;
	int rc = cli_setup(&cfg, CLI_COAP, argc, argv);
	if (rc == CLI_CONTINUE && (rc = check_args(&c)) == MOAT_OK) {
		moat_buf_init(&c.payload, c.cc.max_body + 1);
		rc = run(&c);
		moat_buf_cleanup(&c.payload);
	}
	explicit_bzero(c.psk, sizeof(c.psk));
	cli_cleanup(&cfg);
	return rc;
}
