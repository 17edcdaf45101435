/* Bridge topic mapping (mosquitto's `topic PATTERN DIR QOS LOCAL REMOTE`):
 * a message on LOCAL_PREFIX + X that matches LOCAL_PREFIX + PATTERN goes
 * to the remote as REMOTE_PREFIX + X (out), and the reverse (in).  An
 * empty pattern makes the prefixes two topics mapped onto each other.
 * Pure functions over the configuration; no allocation. */
#include <string.h>

#include "broker_int.h"
#include "bridge_int.h"

/* Does entry t (for messages travelling src -> dst) cover topic? */
static bool covers(const struct moat_bridge_topic *t, bool in,
		   const uint8_t *topic, size_t len, size_t *plen)
{
	const char *src = in ? t->remote_prefix : t->local_prefix;
	size_t sl = strlen(src);
	if (len < sl || memcmp(topic, src, sl) != 0)
		return false;
	*plen = sl;
	if (!t->pattern[0]) /* the prefix is the whole topic */
		return len == sl;
	return moat_topic_matches((const uint8_t *)t->pattern,
				  strlen(t->pattern), topic + sl, len - sl);
}

int moat__bridge_map(const struct moat_bridge_cfg *bc, bool in,
		     const uint8_t *topic, size_t len, char *out,
		     size_t outsz, size_t *outlen)
{
	for (size_t i = 0; i < bc->ntopics; i++) {
		const struct moat_bridge_topic *t = &bc->topics[i];
		size_t sl;
		if (t->dir != MOAT_BRIDGE_BOTH &&
		    t->dir != (in ? MOAT_BRIDGE_IN : MOAT_BRIDGE_OUT))
			continue;
		if (!covers(t, in, topic, len, &sl))
			continue;
		const char *dst = in ? t->local_prefix : t->remote_prefix;
		size_t dl = strlen(dst), n = dl + len - sl;
		if (n + 1 > outsz)
			return MOAT_ELIMIT;
		memcpy(out, dst, dl);
		memcpy(out + dl, topic + sl, len - sl);
		out[n] = '\0';
		*outlen = n;
		return MOAT_OK;
	}
	return MOAT_ENOTFOUND;
}

size_t moat__bridge_filter(const struct moat_bridge_topic *t, bool remote,
			   char *out, size_t outsz)
{
	int n = snprintf(out, outsz, "%s%s",
			 remote ? t->remote_prefix : t->local_prefix,
			 t->pattern);
	return n < 0 || (size_t)n >= outsz ? 0 : (size_t)n;
}

bool moat__bridge_state_topic(const struct moat_broker *b, const uint8_t *t,
			      size_t len)
{
	static const char pre[] = "$SYS/broker/connection/";
	static const char post[] = "/state";
	size_t pl = sizeof(pre) - 1, sl = sizeof(post) - 1;
	if (len <= pl + sl || memcmp(t, pre, pl) != 0 ||
	    memcmp(t + len - sl, post, sl) != 0)
		return false;
	const uint8_t *x = t + pl;
	size_t xl = len - pl - sl;
	if (memchr(x, '/', xl))
		return false;
	for (size_t i = 0; i < b->cfg.nbridges; i++) {
		const char *name = b->cfg.bridges[i].name;
		if (strlen(name) == xl && !memcmp(name, x, xl))
			return false; /* ours: only moatd writes it */
	}
	return true;
}
