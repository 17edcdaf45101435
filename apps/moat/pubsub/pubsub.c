/* `moat pub` and `moat sub`: the commands themselves, on top of the
 * option parser (moat_opts.c) and the client library (client/client.h).
 *
 * Output contract for scripts: `moat sub` writes only message payloads to
 * stdout, one per line, flushed after each; errors and -d debug lines go
 * to stderr. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "client/client.h"
#include "moat_cli.h"
#include "net/tls_client.h"

#define READ_CHUNK ((size_t)65536)
#define NO_DEADLINE UINT64_MAX

/* ---- shared ------------------------------------------------------------ */

/* Time left until deadline in ms for a library timeout (0 = default). */
static uint32_t op_timeout(uint64_t deadline)
{
	if (deadline == NO_DEADLINE)
		return 0;
	uint64_t now = moat_now_ms();
	uint64_t left = deadline > now ? deadline - now : 1;
	return (uint32_t)MOAT_MIN(left, MOAT_CLIENT_DEFAULT_TIMEOUT_MS);
}

/* The TLS context of the TLS options; NULL after printing the error. */
static SSL_CTX *cli_tls_ctx(const struct cli_cfg *cfg)
{
	struct moat_tls_client_opts t = {.cafile = cfg->cafile,
					 .capath = cfg->capath,
					 .certfile = cfg->certfile,
					 .keyfile = cfg->keyfile,
					 .no_name_check = cfg->insecure,
					 .min_version = cfg->tls_min};
	char err[512];
	SSL_CTX *ctx = moat_tls_client_ctx(&t, err, sizeof(err));
	if (!ctx)
		cli_error(cfg, "%s", err);
	return ctx;
}

static int cli_connect(const struct cli_cfg *cfg, struct moat_client *c,
		       uint64_t deadline)
{
	char port[16];
	snprintf(port, sizeof(port), "%ld", cfg->port);
	SSL_CTX *tls = cfg->tls ? cli_tls_ctx(cfg) : NULL;
	if (cfg->tls && !tls)
		return MOAT_ETLS;
	struct moat_client_opts o = {
		.host = cfg->host,
		.port = port,
		.tls = tls,
		.ws_path = cfg->ws ? cfg->ws_path : NULL,
		.timeout_ms = op_timeout(deadline),
		.connect = {
			.proto_level = cfg->proto_level,
			.clean_session = !cfg->no_clean,
			.keepalive = (uint16_t)cfg->keepalive,
			.client_id = cfg->client_id,
			.username = cfg->username,
			.password = (const uint8_t *)cfg->password,
			.password_len = cfg->password ? strlen(cfg->password) : 0,
			.has_password = cfg->password != NULL,
			.will_topic = cfg->will_topic,
			.will_payload = (const uint8_t *)cfg->will_payload,
			.will_payload_len =
				cfg->will_payload ? strlen(cfg->will_payload) : 0,
			.will_qos = cfg->will_qos > 0 ? (uint8_t)cfg->will_qos : 0,
			.will_retain = cfg->will_retain,
		},
		.props = cfg->props_enc[CLI_PCMD_CONNECT],
		.will_props = cfg->props_enc[CLI_PCMD_WILL]};
	bool session_present = false;
	int rc = moat_client_connect(c, &o, &session_present);
	SSL_CTX_free(tls);
	if (rc != MOAT_OK)
		cli_error(cfg, "%s", moat_client_errmsg(c));
	else if (cfg->no_clean || cfg->proto_level == MQTT_PROTO_V5)
		moat_debug("client %s: %s session", moat_client_id(c),
			   session_present ? "resumed the" : "started a new");
	return rc;
}

/* DISCONNECT, with the -D disconnect properties. */
static int cli_disconnect(const struct cli_cfg *cfg, struct moat_client *c)
{
	return moat_client_disconnect_props(
		c, 0, &cfg->props_enc[CLI_PCMD_DISCONNECT]);
}

/* One read(2) into b.  *eof is set at end of input; MOAT_ELIMIT when b is
 * full; MOAT_EIO with errno set on a read error. */
static int read_chunk(int fd, struct moat_buf *b, bool *eof)
{
	size_t room = b->max - moat_buf_used(b);
	if (room == 0)
		return MOAT_ELIMIT;
	uint8_t *dst = moat_buf_reserve(b, MOAT_MIN(READ_CHUNK, room));
	if (!dst)
		return MOAT_ENOMEM;
	ssize_t n;
	do
		n = read(fd, dst, MOAT_MIN(READ_CHUNK, room));
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return MOAT_EIO;
	if (n == 0)
		*eof = true;
	moat_buf_commit(b, (size_t)n);
	return MOAT_OK;
}

/* ---- pub ---------------------------------------------------------------- */

/* Largest payload MQTT can carry on cfg->topic (remaining length limit). */
static size_t payload_limit(const struct cli_cfg *cfg)
{
	return MQTT_MAX_REMAINING_LENGTH - 4 - strlen(cfg->topic);
}

int cli_read_source(const struct cli_cfg *cfg, struct moat_buf *b)
{
	const char *what = cfg->source == CLI_SRC_FILE ? cfg->source_arg
						       : "stdin";
	int fd = STDIN_FILENO;
	int rc = MOAT_OK;
	if (cfg->source == CLI_SRC_FILE)
		fd = open(cfg->source_arg, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		rc = MOAT_EIO;
		goto out;
	}
	bool eof = false;
	while (rc == MOAT_OK && !eof)
		rc = read_chunk(fd, b, &eof);
out:
	if (rc == MOAT_EIO)
		cli_error(cfg, "cannot read %s: %s", what, strerror(errno));
	else if (rc == MOAT_ELIMIT)
		cli_error(cfg, "%s is too large for one message (limit %zu "
			       "bytes)", what, b->max - 1);
	else if (rc != MOAT_OK)
		cli_error(cfg, "out of memory reading %s", what);
	if (fd >= 0 && fd != STDIN_FILENO)
		close(fd);
	return rc;
}

static int publish(const struct cli_cfg *cfg, struct moat_client *c,
		   const void *payload, size_t len)
{
	int rc = moat_client_publish_props(c, cfg->topic, payload, len,
					   (uint8_t)cfg->qos, cfg->retain,
					   &cfg->props_enc[CLI_PCMD_PUBLISH]);
	if (rc != MOAT_OK)
		cli_error(cfg, "%s", moat_client_errmsg(c));
	return rc;
}

/* Publish every complete line in b (at EOF also an unterminated last
 * line), without its '\n', as mosquitto_pub -l does. */
static int publish_lines(const struct cli_cfg *cfg, struct moat_client *c,
			 struct moat_buf *b, bool eof)
{
	while (moat_buf_used(b) > 0) {
		const uint8_t *start = b->data + b->off;
		size_t used = moat_buf_used(b);
		const uint8_t *nl = memchr(start, '\n', used);
		if (!nl && !eof)
			break;
		size_t len = nl ? (size_t)(nl - start) : used;
		int rc = publish(cfg, c, start, len);
		if (rc != MOAT_OK)
			return rc;
		moat_buf_consume(b, nl ? len + 1 : len);
	}
	return MOAT_OK;
}

/* -l: keep the connection alive while waiting for stdin; publish each
 * line as soon as it is complete. */
static int publish_stdin_lines(const struct cli_cfg *cfg,
			       struct moat_client *c)
{
	struct moat_buf b;
	moat_buf_init(&b, payload_limit(cfg) + 1); /* a line and its '\n' */
	bool eof = false;
	int rc = MOAT_OK;
	while (rc == MOAT_OK && !eof) {
		bool ready = false;
		rc = moat_client_loop(c, -1, STDIN_FILENO, &ready);
		if (rc != MOAT_OK) {
			cli_error(cfg, "%s", moat_client_errmsg(c));
			break;
		}
		if (!ready)
			continue;
		rc = read_chunk(STDIN_FILENO, &b, &eof);
		if (rc == MOAT_EIO)
			cli_error(cfg, "cannot read stdin: %s", strerror(errno));
		else if (rc == MOAT_ELIMIT)
			cli_error(cfg, "line too long (limit %zu bytes)",
				  b.max - 1);
		else if (rc != MOAT_OK)
			cli_error(cfg, "out of memory");
		else
			rc = publish_lines(cfg, c, &b, eof);
	}
	moat_buf_cleanup(&b);
	return rc;
}

static int publish_once(const struct cli_cfg *cfg, struct moat_client *c,
			struct moat_buf *b)
{
	switch (cfg->source) {
	case CLI_SRC_MESSAGE:
		return publish(cfg, c, cfg->source_arg, strlen(cfg->source_arg));
	case CLI_SRC_FILE:
	case CLI_SRC_STDIN:
		return publish(cfg, c, b->data + b->off, moat_buf_used(b));
	case CLI_SRC_LINES:
		return publish_stdin_lines(cfg, c);
	case CLI_SRC_NULL:
	case CLI_SRC_NONE:
		break;
	}
	return publish(cfg, c, NULL, 0);
}

int moat_pub_main(int argc, char **argv)
{
	struct cli_cfg cfg;
	struct moat_buf payload;
	struct moat_client *c = NULL;
	moat_buf_init(&payload, 0);
	int ex = cli_setup(&cfg, CLI_PUB, argc, argv);
	if (ex != CLI_CONTINUE)
		goto out;
	ex = CLI_EXIT_FAIL;
	if (cfg.debug)
		moat_log_set_level(MOAT_LOG_DEBUG);
	/* Read a file or stdin before connecting: a bad file costs no
	 * connection, and the broker never sees half a message. */
	payload.max = payload_limit(&cfg) + 1;
	if ((cfg.source == CLI_SRC_FILE || cfg.source == CLI_SRC_STDIN) &&
	    cli_read_source(&cfg, &payload) != MOAT_OK)
		goto out;
	c = moat_client_new();
	if (!c) {
		cli_error(&cfg, "out of memory");
		goto out;
	}
	if (cli_connect(&cfg, c, NO_DEADLINE) != MOAT_OK)
		goto out;
	int rc = publish_once(&cfg, c, &payload);
	/* DISCONNECT even after a failed publish: the will is for crashes. */
	int drc = cli_disconnect(&cfg, c);
	if (rc == MOAT_OK && drc != MOAT_OK)
		cli_error(&cfg, "%s", moat_client_errmsg(c));
	if (rc == MOAT_OK && drc == MOAT_OK)
		ex = CLI_EXIT_OK;
out:
	moat_client_free(c);
	moat_buf_cleanup(&payload);
	cli_cleanup(&cfg);
	return ex;
}

/* ---- sub ---------------------------------------------------------------- */

struct sub_state {
	const struct cli_cfg *cfg;
	struct moat_client *c;
	long received;	   /* messages printed, for -C */
	bool done;	   /* -C reached, or --retained-only is over */
	bool write_failed; /* stdout is gone */
};

/* SIGINT/SIGTERM end `moat sub` cleanly: the handler writes to a pipe that
 * the wait loop polls, so a signal cannot slip in before poll() starts. */
static int sig_pipe[2] = {-1, -1};

static void on_signal(int sig)
{
	(void)sig;
	int saved = errno;
	ssize_t n = write(sig_pipe[1], "s", 1);
	(void)n;
	errno = saved;
}

int cli_catch_signals(void)
{
	if (pipe2(sig_pipe, O_NONBLOCK | O_CLOEXEC) < 0)
		return MOAT_EIO;
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGINT, &sa, NULL) < 0 ||
	    sigaction(SIGTERM, &sa, NULL) < 0)
		return MOAT_EIO;
	return MOAT_OK;
}

int cli_signal_fd(void)
{
	return sig_pipe[0];
}

static void finish(struct sub_state *st)
{
	st->done = true;
	moat_client_stop(st->c);
}

static bool filtered_out(const struct cli_cfg *cfg, struct moat_bytes topic)
{
	for (size_t i = 0; i < cfg->filter_out.n; i++) {
		const char *f = cfg->filter_out.v[i];
		if (moat_topic_matches((const uint8_t *)f, strlen(f), topic.p,
				       topic.len))
			return true;
	}
	return false;
}

/* Payloads are written as they are (binary safe), one per line; -F and
 * --json format them (sub_format.c) and override -v. */
static int print_message(const struct cli_cfg *cfg,
			 const struct moat_client_msg *m)
{
	int rc = MOAT_OK;
	if (cfg->format) {
		rc = cli_format_print(cfg, stdout, m);
	} else {
		if (cfg->verbose) {
			fwrite(m->topic.p, 1, m->topic.len, stdout);
			fputc(' ', stdout);
		}
		if (m->payload.len)
			fwrite(m->payload.p, 1, m->payload.len, stdout);
	}
	if (rc == MOAT_OK && !cfg->no_eol)
		fputc('\n', stdout);
	if (fflush(stdout) != 0 || ferror(stdout))
		return MOAT_EIO;
	return rc;
}

/* The same checks, in the same order, as mosquitto_sub. */
static void on_message(void *arg, const struct moat_client_msg *m)
{
	struct sub_state *st = arg;
	const struct cli_cfg *cfg = st->cfg;
	if (st->done)
		return;
	if (cfg->retained_only && !m->retain) {
		finish(st); /* the retained messages are over */
		return;
	}
	if ((cfg->no_retained && m->retain) || filtered_out(cfg, m->topic))
		return;
	int rc = print_message(cfg, m);
	if (rc != MOAT_OK) {
		if (rc == MOAT_EIO)
			cli_error(cfg, "cannot write to stdout: %s",
				  strerror(errno));
		else
			cli_error(cfg, "cannot format a message: %s",
				  moat_strerror(rc));
		st->write_failed = true;
		finish(st);
		return;
	}
	if (cfg->count && ++st->received >= cfg->count)
		finish(st);
}

/* The subscription options byte of every filter: QoS, and for MQTT 5 No
 * Local, Retain As Published and Retain Handling. */
static uint8_t sub_options(const struct cli_cfg *cfg)
{
	unsigned o = (unsigned)cfg->qos;
	if (cfg->no_local)
		o |= 0x04;
	if (cfg->retain_as_published)
		o |= 0x08;
	if (cfg->retain_handling > 0)
		o |= (unsigned)cfg->retain_handling << 4;
	return (uint8_t)o;
}

/* A refused filter: 3.1.1 has one failure code, MQTT 5 names the reason. */
static void report_refusal(const struct cli_cfg *cfg, struct moat_client *c,
			   const char *filter, uint8_t code)
{
	if (moat_client_version(c) != MQTT_PROTO_V5) {
		cli_error(cfg, "subscription to '%s' refused by the broker",
			  filter);
		return;
	}
	const char *why = moat_client_reason_string(c);
	cli_error(cfg, "subscription to '%s' refused by the broker: %s "
		       "(0x%02X)%s%s", filter, moat_mqtt_rc_name(code), code,
		  why[0] ? ": " : "", why);
}

static int subscribe_all(const struct cli_cfg *cfg, struct moat_client *c)
{
	size_t n = cfg->filters.n;
	uint8_t *opts = moat_malloc(n);
	uint8_t *granted = moat_malloc(n);
	int rc = MOAT_ENOMEM;
	if (!opts || !granted) {
		cli_error(cfg, "out of memory");
		goto out;
	}
	memset(opts, sub_options(cfg), n);
	rc = moat_client_subscribe_props(c, cfg->filters.v, opts, n,
					 &cfg->props_enc[CLI_PCMD_SUBSCRIBE],
					 granted);
	if (rc != MOAT_OK) {
		cli_error(cfg, "%s", moat_client_errmsg(c));
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		if (granted[i] >= 0x80) {
			report_refusal(cfg, c, cfg->filters.v[i], granted[i]);
			rc = MOAT_EDENIED;
		} else if (granted[i] < cfg->qos) {
			moat_debug("subscription to '%s' granted at QoS %u",
				   cfg->filters.v[i], granted[i]);
		}
	}
out:
	moat_free(opts);
	moat_free(granted);
	return rc;
}

static bool expired(uint64_t deadline)
{
	return deadline != NO_DEADLINE && moat_now_ms() >= deadline;
}

/* Print messages until -C, --retained-only, -W, a signal or an error. */
static int sub_loop(struct sub_state *st, uint64_t deadline)
{
	const struct cli_cfg *cfg = st->cfg;
	bool signalled = false;
	while (!st->done && !signalled) {
		int timeout = -1;
		if (deadline != NO_DEADLINE) {
			if (expired(deadline)) {
				/* A clean end: DISCONNECT, so no will. */
				cli_error(cfg, "timed out");
				(void)cli_disconnect(cfg, st->c);
				return CLI_EXIT_TIMEOUT;
			}
			timeout = (int)(deadline - moat_now_ms());
		}
		int rc = moat_client_loop(st->c, timeout, sig_pipe[0],
					  &signalled);
		if (rc != MOAT_OK) {
			cli_error(cfg, "%s", moat_client_errmsg(st->c));
			return CLI_EXIT_FAIL;
		}
	}
	if (st->write_failed)
		return CLI_EXIT_FAIL;
	if (cli_disconnect(cfg, st->c) != MOAT_OK) {
		cli_error(cfg, "%s", moat_client_errmsg(st->c));
		return CLI_EXIT_FAIL;
	}
	return CLI_EXIT_OK;
}

int moat_sub_main(int argc, char **argv)
{
	struct cli_cfg cfg;
	struct sub_state st = {.cfg = &cfg};
	int ex = cli_setup(&cfg, CLI_SUB, argc, argv);
	if (ex != CLI_CONTINUE)
		goto out;
	ex = CLI_EXIT_FAIL;
	if (cfg.debug)
		moat_log_set_level(MOAT_LOG_DEBUG);
	/* -W bounds the whole run, connecting included. */
	uint64_t deadline = cfg.timeout ? moat_now_ms() +
						  (uint64_t)cfg.timeout * 1000u
					: NO_DEADLINE;
	if (cli_catch_signals() != MOAT_OK) {
		cli_error(&cfg, "cannot set up signals: %s", strerror(errno));
		goto out;
	}
	st.c = moat_client_new();
	if (!st.c) {
		cli_error(&cfg, "out of memory");
		goto out;
	}
	/* Before connecting: a resumed session may deliver at once. */
	moat_client_set_msg_cb(st.c, on_message, &st);
	if (cli_connect(&cfg, st.c, deadline) != MOAT_OK ||
	    subscribe_all(&cfg, st.c) != MOAT_OK) {
		ex = expired(deadline) ? CLI_EXIT_TIMEOUT : CLI_EXIT_FAIL;
		goto out;
	}
	ex = sub_loop(&st, deadline);
out:
	moat_client_free(st.c);
	cli_cleanup(&cfg);
	return ex;
}
