/* -D COMMAND PROPERTY VALUE: MQTT 5 properties for the packets moat sends,
 * with mosquitto_pub/mosquitto_sub's command and property names.  One table
 * says which property goes into which packet, its type and its range; the
 * parser checks every value against it and cli_props_encode() writes each
 * packet's property block once, before connecting.  -x (session expiry)
 * and -c decide the CONNECT's Session Expiry Interval here too. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "codec/mqtt5.h"
#include "moat_cli.h"

enum pval {
	PV_FLAG,   /* byte, 0 or 1 */
	PV_U16,	   /* two bytes, within [min, max] */
	PV_U32,	   /* four bytes, within [min, max] */
	PV_VARINT, /* variable byte integer, within [min, max] */
	PV_UTF8,   /* UTF-8 string */
	PV_TOPIC,  /* UTF-8 string that is a valid topic name */
	PV_BIN,	   /* binary data (given as a string) */
	PV_PAIR,   /* user property: name and value, both UTF-8 */
};

#define CMD(x) (1u << (x))
#define MSG (CMD(CLI_PCMD_PUBLISH) | CMD(CLI_PCMD_WILL))

struct pdef {
	const char *name;
	uint8_t id;
	enum pval type;
	unsigned cmds; /* CMD(CLI_PCMD_*) where it is allowed */
	uint32_t min, max;
};

static const struct pdef pdefs[] = {
	{"payload-format-indicator", PROP_PAYLOAD_FORMAT, PV_FLAG, MSG, 0, 1},
	{"message-expiry-interval", PROP_MESSAGE_EXPIRY, PV_U32, MSG, 0,
	 UINT32_MAX},
	{"content-type", PROP_CONTENT_TYPE, PV_UTF8, MSG, 0, 0},
	{"response-topic", PROP_RESPONSE_TOPIC, PV_TOPIC, MSG, 0, 0},
	{"correlation-data", PROP_CORRELATION_DATA, PV_BIN, MSG, 0, 0},
	{"topic-alias", PROP_TOPIC_ALIAS, PV_U16, CMD(CLI_PCMD_PUBLISH), 1,
	 65535},
	{"subscription-identifier", PROP_SUBSCRIPTION_ID, PV_VARINT,
	 CMD(CLI_PCMD_SUBSCRIBE), 1, 268435455},
	{"session-expiry-interval", PROP_SESSION_EXPIRY, PV_U32,
	 CMD(CLI_PCMD_CONNECT) | CMD(CLI_PCMD_DISCONNECT), 0, UINT32_MAX},
	{"receive-maximum", PROP_RECEIVE_MAXIMUM, PV_U16, CMD(CLI_PCMD_CONNECT),
	 1, 65535},
	{"maximum-packet-size", PROP_MAXIMUM_PACKET_SIZE, PV_U32,
	 CMD(CLI_PCMD_CONNECT), 1, UINT32_MAX},
	{"topic-alias-maximum", PROP_TOPIC_ALIAS_MAXIMUM, PV_U16,
	 CMD(CLI_PCMD_CONNECT), 0, 65535},
	{"request-problem-information", PROP_REQUEST_PROBLEM_INFO, PV_FLAG,
	 CMD(CLI_PCMD_CONNECT), 0, 1},
	{"request-response-information", PROP_REQUEST_RESPONSE_INFO, PV_FLAG,
	 CMD(CLI_PCMD_CONNECT), 0, 1},
	{"authentication-method", PROP_AUTH_METHOD, PV_UTF8,
	 CMD(CLI_PCMD_CONNECT), 0, 0},
	{"authentication-data", PROP_AUTH_DATA, PV_BIN, CMD(CLI_PCMD_CONNECT),
	 0, 0},
	{"will-delay-interval", PROP_WILL_DELAY, PV_U32, CMD(CLI_PCMD_WILL), 0,
	 UINT32_MAX},
	{"reason-string", PROP_REASON_STRING, PV_UTF8,
	 CMD(CLI_PCMD_DISCONNECT), 0, 0},
	{"user-property", PROP_USER_PROPERTY, PV_PAIR, 0x1Fu, 0, 0},
};

/* COMMAND names, and which tool sends that packet. */
static const struct {
	const char *name;
	unsigned tools;
} pcmds[CLI_PCMD_N] = {
	[CLI_PCMD_CONNECT] = {"connect", CLI_PUB | CLI_SUB},
	[CLI_PCMD_PUBLISH] = {"publish", CLI_PUB},
	[CLI_PCMD_SUBSCRIBE] = {"subscribe", CLI_SUB},
	[CLI_PCMD_WILL] = {"will", CLI_PUB | CLI_SUB},
	[CLI_PCMD_DISCONNECT] = {"disconnect", CLI_PUB | CLI_SUB},
};

static const struct pdef *find_pdef(const char *name)
{
	for (size_t i = 0; i < MOAT_ARRAY_LEN(pdefs); i++)
		if (strcasecmp(pdefs[i].name, name) == 0)
			return &pdefs[i];
	return NULL;
}

static const struct pdef *pdef_by_id(uint8_t id)
{
	for (size_t i = 0; i < MOAT_ARRAY_LEN(pdefs); i++)
		if (pdefs[i].id == id)
			return &pdefs[i];
	return NULL;
}

static bool utf8_string_ok(const char *s)
{
	size_t n = strlen(s);
	return n <= 65535 && moat_utf8_valid((const uint8_t *)s, n);
}

static int parse_u32(const char *s, uint32_t min, uint32_t max, uint32_t *out)
{
	char *end;
	if (!*s || *s == '-' || *s == '+' || *s == ' ')
		return MOAT_EINVAL;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || *end || v < min || v > max)
		return MOAT_EINVAL;
	*out = (uint32_t)v;
	return MOAT_OK;
}

/* Check value(s) v1 (and v2 for a pair) against d into *p. */
static int set_value(struct cli_cfg *cfg, const struct pdef *d,
		     const char *cmd, const char *v1, const char *v2,
		     struct cli_prop *p)
{
	switch (d->type) {
	case PV_FLAG:
	case PV_U16:
	case PV_U32:
	case PV_VARINT:
		if (parse_u32(v1, d->min, d->max, &p->num) != MOAT_OK)
			return cli_usage_error(cfg, "-D %s %s needs a number "
						    "from %u to %u, not '%s'",
					       cmd, d->name, d->min, d->max,
					       v1);
		return MOAT_OK;
	case PV_TOPIC:
		if (!utf8_string_ok(v1) ||
		    !moat_topic_name_valid((const uint8_t *)v1, strlen(v1)))
			return cli_usage_error(cfg, "-D %s %s: '%s' is not a "
						    "valid topic name",
					       cmd, d->name, v1);
		break;
	case PV_UTF8:
		if (!utf8_string_ok(v1))
			return cli_usage_error(cfg, "-D %s %s: the value is "
						    "not valid UTF-8 (or longer "
						    "than 65535 bytes)",
					       cmd, d->name);
		break;
	case PV_BIN:
		if (strlen(v1) > 65535)
			return cli_usage_error(cfg, "-D %s %s: longer than "
						    "65535 bytes", cmd, d->name);
		break;
	case PV_PAIR:
		if (!utf8_string_ok(v1) || !utf8_string_ok(v2))
			return cli_usage_error(cfg, "-D %s user-property: the "
						    "name and value must be "
						    "valid UTF-8 (at most 65535 "
						    "bytes)", cmd);
		break;
	}
	p->a = v1;
	p->b = v2;
	return MOAT_OK;
}

static int add_prop(struct cli_cfg *cfg, const struct cli_prop *p)
{
	struct cli_prop *nv =
		moat_realloc(cfg->props, (cfg->n_props + 1) * sizeof(*nv));
	if (!nv)
		return cli_usage_error(cfg, "out of memory");
	nv[cfg->n_props++] = *p;
	cfg->props = nv;
	return MOAT_OK;
}

static const struct cli_prop *find_prop(const struct cli_cfg *cfg,
					enum cli_pcmd cmd, uint8_t id)
{
	for (size_t i = 0; i < cfg->n_props; i++)
		if (cfg->props[i].cmd == cmd && cfg->props[i].id == id)
			return &cfg->props[i];
	return NULL;
}

static bool has_cmd(const struct cli_cfg *cfg, enum cli_pcmd cmd)
{
	for (size_t i = 0; i < cfg->n_props; i++)
		if (cfg->props[i].cmd == cmd)
			return true;
	return false;
}

int cli_prop_parse(struct cli_cfg *cfg, int argc, char **argv, int *i)
{
	const char *opt = argv[*i];
	if (*i + 3 >= argc)
		return cli_usage_error(cfg, "%s needs COMMAND PROPERTY VALUE",
				       opt);
	const char *cmd = argv[*i + 1], *name = argv[*i + 2];
	struct cli_prop p = {.cmd = CLI_PCMD_N};
	for (int k = 0; k < CLI_PCMD_N; k++)
		if (strcasecmp(pcmds[k].name, cmd) == 0)
			p.cmd = (enum cli_pcmd)k;
	if (p.cmd == CLI_PCMD_N)
		return cli_usage_error(cfg, "-D: unknown or unsupported command "
					    "'%s' (use connect, %s, will or "
					    "disconnect)", cmd,
				       cfg->tool == CLI_PUB ? "publish"
							    : "subscribe");
	if (!(pcmds[p.cmd].tools & cfg->tool))
		return cli_usage_error(cfg, "-D %s: moat %s sends no %s packet",
				       cmd, cfg->name, pcmds[p.cmd].name);
	const struct pdef *d = find_pdef(name);
	if (!d)
		return cli_usage_error(cfg, "-D %s: unknown property '%s'", cmd,
				       name);
	if (!(d->cmds & CMD(p.cmd)))
		return cli_usage_error(cfg, "-D %s: property '%s' is not "
					    "allowed in %s", cmd, d->name,
				       pcmds[p.cmd].name);
	const char *v2 = NULL;
	if (d->type == PV_PAIR) {
		if (*i + 4 >= argc)
			return cli_usage_error(cfg, "-D %s user-property needs "
						    "a NAME and a VALUE", cmd);
		v2 = argv[*i + 4];
	}
	p.id = d->id;
	if (d->type != PV_PAIR && find_prop(cfg, p.cmd, p.id))
		return cli_usage_error(cfg, "-D %s %s given twice", cmd,
				       d->name);
	int rc = set_value(cfg, d, cmd, argv[*i + 3], v2, &p);
	if (rc != MOAT_OK)
		return rc;
	*i += d->type == PV_PAIR ? 4 : 3;
	return add_prop(cfg, &p);
}

/* -x: 0..4294967294 seconds, or -1 / 4294967295 / "∞" for never. */
static int parse_expiry(struct cli_cfg *cfg, uint32_t *out)
{
	const char *v = cfg->session_expiry_arg;
	if (!strcmp(v, "-1") || !strcmp(v, "\xe2\x88\x9e")) {
		*out = UINT32_MAX;
		return MOAT_OK;
	}
	if (parse_u32(v, 0, UINT32_MAX, out) != MOAT_OK)
		return cli_usage_error(cfg, "-x needs seconds from 0 to "
					    "4294967295, or -1 for never, not "
					    "'%s'", v);
	return MOAT_OK;
}

/* The CONNECT's Session Expiry Interval: -x, or -D connect ..., or never
 * with -c (as mosquitto does), or none (0). */
static int session_expiry(struct cli_cfg *cfg, struct cli_prop *extra,
			  bool *has_extra)
{
	const struct cli_prop *given =
		find_prop(cfg, CLI_PCMD_CONNECT, PROP_SESSION_EXPIRY);
	*has_extra = false;
	if (cfg->session_expiry_arg) {
		if (given)
			return cli_usage_error(cfg, "-x and -D connect "
						    "session-expiry-interval "
						    "exclude each other");
		*extra = (struct cli_prop){.cmd = CLI_PCMD_CONNECT,
					   .id = PROP_SESSION_EXPIRY};
		*has_extra = true;
		return parse_expiry(cfg, &extra->num);
	}
	if (!given && cfg->no_clean) {
		*extra = (struct cli_prop){.cmd = CLI_PCMD_CONNECT,
					   .id = PROP_SESSION_EXPIRY,
					   .num = UINT32_MAX};
		*has_extra = true;
	}
	return MOAT_OK;
}

static size_t value_size(const struct pdef *d, const struct cli_prop *p)
{
	switch (d->type) {
	case PV_FLAG:
		return 1;
	case PV_U16:
		return 2;
	case PV_U32:
		return 4;
	case PV_VARINT:
		return moat_mqtt_varint_size(p->num);
	case PV_UTF8:
	case PV_TOPIC:
	case PV_BIN:
		return 2 + strlen(p->a);
	case PV_PAIR:
		return 4 + strlen(p->a) + strlen(p->b);
	}
	return 0;
}

static void write_prop(struct moat_pw *w, const struct pdef *d,
		       const struct cli_prop *p)
{
	switch (d->type) {
	case PV_FLAG:
		moat_pw_u8(w, p->id, (uint8_t)p->num);
		break;
	case PV_U16:
		moat_pw_u16(w, p->id, (uint16_t)p->num);
		break;
	case PV_U32:
		moat_pw_u32(w, p->id, p->num);
		break;
	case PV_VARINT:
		moat_pw_varint(w, p->id, p->num);
		break;
	case PV_UTF8:
	case PV_TOPIC:
	case PV_BIN:
		moat_pw_bytes(w, p->id, p->a, strlen(p->a));
		break;
	case PV_PAIR: {
		size_t n = strlen(p->b);
		uint8_t len[2] = {(uint8_t)(n >> 8), (uint8_t)n};
		moat_pw_bytes(w, p->id, p->a, strlen(p->a));
		moat_pw_raw(w, len, 2);
		moat_pw_raw(w, p->b, n);
		break;
	}
	}
}

/* Encode the properties of cmd (extra first, if any) into an owned
 * buffer. */
static int encode_cmd(struct cli_cfg *cfg, enum cli_pcmd cmd,
		      const struct cli_prop *extra)
{
	size_t size = 0;
	for (size_t i = 0; i < cfg->n_props; i++)
		if (cfg->props[i].cmd == cmd)
			size += 1 + value_size(pdef_by_id(cfg->props[i].id),
					       &cfg->props[i]);
	if (extra)
		size += 1 + value_size(pdef_by_id(extra->id), extra);
	if (size == 0)
		return MOAT_OK;
	if (size > MQTT_MAX_REMAINING_LENGTH)
		return cli_usage_error(cfg, "the %s properties are too large",
				       pcmds[cmd].name);
	uint8_t *buf = moat_malloc(size);
	if (!buf)
		return cli_usage_error(cfg, "out of memory");
	struct moat_pw w;
	moat_pw_init(&w, buf, size);
	if (extra)
		write_prop(&w, pdef_by_id(extra->id), extra);
	for (size_t i = 0; i < cfg->n_props; i++)
		if (cfg->props[i].cmd == cmd)
			write_prop(&w, pdef_by_id(cfg->props[i].id),
				   &cfg->props[i]);
	cfg->props_own[cmd] = buf;
	cfg->props_enc[cmd] = (struct moat_bytes){buf, w.len};
	if (w.overflow || w.len != size)
		return cli_usage_error(cfg, "the %s properties do not encode",
				       pcmds[cmd].name);
	return MOAT_OK;
}

int cli_props_encode(struct cli_cfg *cfg)
{
	bool v5 = cfg->proto_level == MQTT_PROTO_V5;
	if (!v5 && (cfg->n_props || cfg->session_expiry_arg))
		return cli_usage_error(cfg, "%s needs MQTT 5: add -V 5",
				       cfg->n_props ? "-D" : "-x");
	if (!v5)
		return MOAT_OK;
	if (!cfg->will_topic && has_cmd(cfg, CLI_PCMD_WILL))
		return cli_usage_error(cfg, "-D will ... needs --will-topic");
	struct cli_prop extra;
	bool has_extra;
	int rc = session_expiry(cfg, &extra, &has_extra);
	if (rc != MOAT_OK)
		return rc;
	/* [MQTT-3.14.2-2]: no session expiry in DISCONNECT after 0. */
	const struct cli_prop *dis =
		find_prop(cfg, CLI_PCMD_DISCONNECT, PROP_SESSION_EXPIRY);
	const struct cli_prop *con =
		find_prop(cfg, CLI_PCMD_CONNECT, PROP_SESSION_EXPIRY);
	uint32_t con_expiry = has_extra ? extra.num : con ? con->num : 0;
	if (dis && dis->num && !con_expiry)
		return cli_usage_error(cfg, "-D disconnect "
					    "session-expiry-interval needs a "
					    "session expiry in CONNECT (-x, -c "
					    "or -D connect "
					    "session-expiry-interval)");
	for (int k = 0; k < CLI_PCMD_N; k++) {
		rc = encode_cmd(cfg, (enum cli_pcmd)k,
				k == CLI_PCMD_CONNECT && has_extra ? &extra
								   : NULL);
		if (rc != MOAT_OK)
			return rc;
	}
	return MOAT_OK;
}

void cli_props_cleanup(struct cli_cfg *cfg)
{
	for (int k = 0; k < CLI_PCMD_N; k++) {
		MOAT_FREE(cfg->props_own[k]);
		cfg->props_enc[k] = (struct moat_bytes){0};
	}
	MOAT_FREE(cfg->props);
	cfg->n_props = 0;
}

void cli_props_usage(FILE *f, enum cli_tool tool)
{
	fprintf(f, "\nMQTT 5 properties (-D COMMAND PROPERTY VALUE, needs -V 5; "
		   "user-property takes NAME VALUE):\n");
	for (int k = 0; k < CLI_PCMD_N; k++) {
		if (!(pcmds[k].tools & tool))
			continue;
		fprintf(f, "  %-11s", pcmds[k].name);
		size_t col = 13;
		for (size_t i = 0; i < MOAT_ARRAY_LEN(pdefs); i++) {
			if (!(pdefs[i].cmds & CMD(k)))
				continue;
			size_t n = strlen(pdefs[i].name);
			if (col + n + 1 > 78) {
				fprintf(f, "\n%13s", "");
				col = 13;
			}
			fprintf(f, " %s", pdefs[i].name);
			col += n + 1;
		}
		fputc('\n', f);
	}
}
