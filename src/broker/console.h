/* The leak console's static files, built into moatd (cmake/embed.cmake
 * from src/broker/console/). */
#ifndef MOAT_CONSOLE_H
#define MOAT_CONSOLE_H

#include <stddef.h>

struct moat_static_file {
	const char *path; /* URL path, e.g. "/console/app.js" */
	const char *type; /* Content-Type */
	const unsigned char *data;
	size_t len;
};

/* Ends with an entry whose path is NULL. */
extern const struct moat_static_file moat__console_files[];

#endif
