/* moat — error codes shared by every layer.
 *
 * MOAT_OK is 0 and every error is negative; positive values are reserved
 * for counts (bytes, items).  Numbers are never renumbered or reused. */
#ifndef MOAT_ERRORS_H
#define MOAT_ERRORS_H

enum moat_err {
	MOAT_OK = 0,
	MOAT_ENOMEM = -1,     /* allocation failed or a memory budget was hit */
	MOAT_EINVAL = -2,     /* invalid argument (caller's bug or bad config) */
	MOAT_EMALFORMED = -3, /* peer sent bytes that do not parse */
	MOAT_EPROTO = -4,     /* well-formed, but breaks the protocol rules */
	MOAT_ELIMIT = -5,     /* a configured limit was exceeded */
	MOAT_EDENIED = -6,    /* refused by policy */
	MOAT_EIO = -7,        /* I/O error; see the log for errno */
	MOAT_ETLS = -8,       /* TLS failure */
	MOAT_EAGAIN = -9,     /* would block / need more input: not an error */
	MOAT_DECLINED = -10,  /* no opinion (rule/plugin): never an error */
	MOAT_ECLOSED = -11,   /* peer closed the connection */
	MOAT_ENOTFOUND = -12, /* lookup found nothing */
	MOAT_EUTF8 = -13,     /* invalid UTF-8 in a string field */
};

/* Short human text for an error code (static storage). */
const char *moat_strerror(int err);
/* The enum name, e.g. "MOAT_EMALFORMED" (static storage). */
const char *moat_err_name(int err);

#endif
