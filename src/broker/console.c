/* The leak console's static files (docs/api.md#the-leak-console): served
 * from the binary, with a Content-Security-Policy that lets the page load
 * only its own script and style and talk only to this origin. */
#include <stdint.h>
#include <string.h>

#include "console.h"
#include "http_int.h"

#define CONSOLE_CSP                                                           \
	"default-src 'none'; script-src 'self'; style-src 'self'; "           \
	"connect-src 'self'; img-src 'self'; base-uri 'none'; "               \
	"form-action 'none'; frame-ancestors 'none'"

bool moat__console_path(const char *url)
{
	return !strcmp(url, "/console") || !strncmp(url, "/console/", 9);
}

enum MHD_Result moat__console_serve(struct http_listener *l,
				    struct MHD_Connection *c, const char *url)
{
	const char *path = strcmp(url, "/console") ? url : "/console/";
	const struct moat_static_file *f = moat__console_files;
	while (f->path && strcmp(f->path, path))
		f++;
	if (!f->path)
		return moat__http_text(l, c, 404, "not found\n");
	/* The bytes are static: libmicrohttpd neither copies nor frees them. */
	struct MHD_Response *r = MHD_create_response_from_buffer(
		f->len, (void *)(uintptr_t)f->data, MHD_RESPMEM_PERSISTENT);
	if (!r)
		return MHD_NO;
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, f->type);
	MHD_add_response_header(r, "Content-Security-Policy", CONSOLE_CSP);
	MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
	MHD_add_response_header(r, "X-Frame-Options", "DENY");
	MHD_add_response_header(r, "Referrer-Policy", "no-referrer");
	MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
	moat__http_count(l->b->http, 200);
	enum MHD_Result rc = MHD_queue_response(c, 200, r);
	MHD_destroy_response(r);
	return rc;
}
