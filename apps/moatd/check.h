/* moatd --check: lint a configuration file and report findings. */
#ifndef MOATD_CHECK_H
#define MOATD_CHECK_H

/* Lint file (moatd or mosquitto dialect) and print the findings to stdout
 * as text or, when format is "json", as one JSON object.  Returns the
 * exit status: 0 = no finding of high severity or above, 1 = at least
 * one, 2 = usage error or unreadable file (message on stderr). */
int moatd_check(const char *file, const char *format);
/* The same report as --format json, in *json (moat_free, *len bytes), for
 * the JSON API (moat_broker_set_check).  MOAT_OK or an error. */
int moatd_check_json(const char *file, char **json, size_t *len);

#endif
