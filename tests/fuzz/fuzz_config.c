/* libFuzzer harness for the moatd configuration parser: the text goes
 * through moat_cfg_load_string and, when it loads, moat_cfg_finish and the
 * listener risk report.  Properties checked beyond "no crash":
 *  - a loaded config that finishes has at least one listener and every
 *    listener's risk report is a NUL-terminated string;
 *  - loading the same text twice gives the same struct (no hidden state). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/cfg.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct moat_config a, b;
	struct moat_cfg_err err;
	char *text = malloc(size ? size : 1);
	if (!text)
		return 0;
	memcpy(text, data, size);
	moat_cfg_defaults(&a);
	snprintf(a.source, sizeof(a.source), "/etc/moat/fuzz.conf");
	int rc = moat_cfg_load_string(&a, "fuzz.conf", text, size, &err);
	moat_cfg_defaults(&b);
	snprintf(b.source, sizeof(b.source), "/etc/moat/fuzz.conf");
	int rc2 = moat_cfg_load_string(&b, "fuzz.conf", text, size, &err);
	if (rc != rc2 || (rc == 0 && memcmp(&a, &b, sizeof(a)) != 0))
		abort();
	if (rc == 0 && moat_cfg_finish(&a, &err) == 0) {
		if (a.nlisteners == 0)
			abort();
		for (size_t i = 0; i < a.nlisteners; i++) {
			char risks[400];
			moat_cfg_listener_risks(&a, i, risks, sizeof(risks));
			if (strnlen(risks, sizeof(risks)) == sizeof(risks))
				abort();
		}
	}
	free(text);
	return 0;
}
