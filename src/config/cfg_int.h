/* Internal: the directive table shared by the parser and the reference. */
#ifndef MOAT_CFG_INT_H
#define MOAT_CFG_INT_H

#include "cfg.h"

enum moat_cfg_type {
	CFG_BOOL,
	CFG_U32,      /* plain count */
	CFG_U64,      /* plain count */
	CFG_SIZE,     /* bytes, with optional k/m/g (1024-based) suffix */
	CFG_DURATION, /* seconds, with optional s/m/h suffix */
	CFG_LOGLEVEL,
	CFG_LISTENER, /* listener PORT [ADDR] */
	CFG_STRING,   /* one word, stored in a char[len] */
	CFG_PATH,     /* a file; relative to the config file's directory */
	CFG_MSEC,     /* milliseconds: plain number = seconds; ms, s, m, h */
	CFG_ENUM,     /* one of the words in values, stored as uint32 index */
	CFG_LEAK_POLICY, /* leak_policy FILTER CATEGORY ACTION (repeatable) */
	CFG_LOG_DEST,    /* stderr | syslog | file PATH */
	/* Bridges (cfg_bridge.c) */
	CFG_BRIDGE,         /* connection NAME */
	CFG_BRIDGE_ADDRESS, /* address HOST[:PORT] [HOST[:PORT] ...] */
	CFG_BRIDGE_TOPIC,   /* topic PATTERN [DIR [QOS [LOCAL [REMOTE]]]] */
	CFG_BRIDGE_RESTART, /* restart_timeout BASE [CAP] */
	CFG_BRIDGE_SECRET,  /* remote_password */
};

struct moat_cfg_directive {
	const char *name;
	enum moat_cfg_type type;
	size_t offset;     /* into struct moat_config */
	uint64_t min, max; /* for numeric types */
	const char *def;   /* default, in config syntax; NULL = none */
	const char *help;
	bool per_listener; /* offset is into the last listener's settings */
	const char *values; /* CFG_ENUM: "a|b|c"; CFG_STRING/PATH: NULL */
	bool per_bridge; /* offset is into the last connection's settings */
};

/* The bridge directives with their own syntax (cfg_bridge.c): apply the
 * words argv[0..argc) of directive d to cfg.  NULL, or an error message
 * (in buf). */
const char *moat__cfg_bridge_apply(struct moat_config *cfg,
				   const struct moat_cfg_directive *d,
				   char *const *argv, size_t argc, char *buf,
				   size_t bufsz);
/* Checks once the whole file is read (each connection has an address
 * and a topic; TLS files that go together; a remote_password only in a
 * private file; remote_password_file read); default client ids.  NULL,
 * or an error message (in buf). */
const char *moat__cfg_bridge_finish(struct moat_config *cfg, char *buf,
				    size_t bufsz);

extern const struct moat_cfg_directive moat__cfg_directives[];
extern const size_t moat__cfg_ndirectives;

#endif
