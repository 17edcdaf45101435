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
};

extern const struct moat_cfg_directive moat__cfg_directives[];
extern const size_t moat__cfg_ndirectives;

#endif
