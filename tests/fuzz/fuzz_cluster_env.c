/* libFuzzer harness for the envelope of messages between cluster nodes
 * (src/cluster/cluster_env.c): any bytes a NATS peer sends.
 *
 * Properties: decoding reads only its input (an exact-size heap copy, so
 * ASan sees any over-read) and either refuses it or gives a message that
 * encodes again into an envelope decoding to the same message (QoS,
 * retain, properties, source, payload, nonce, shared-groups flag). */
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "broker/broker_int.h"
#include "cluster/cluster_int.h"
#include "fuzz_util.h"

static const uint8_t topic[] = "fuzz/topic";

static bool same_str(const char *a, const char *b)
{
	return (!a && !b) || (a && b && !strcmp(a, b));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t *in = fuzz_copy_exact(data, size);
	uint64_t nonce;
	bool groups;
	struct moat_msg *m = NULL;
	int rc = moat__cluster_env_decode(in, size, topic, sizeof(topic) - 1,
					  &nonce, &groups, &m);
	free(in);
	if (rc) {
		CHECK(rc == MOAT_EMALFORMED || rc == MOAT_ENOMEM);
		CHECK(!m);
		return 0;
	}
	CHECK(m && m->remote && m->qos <= 2);
	uint8_t *out = malloc(moat__cluster_env_size(m));
	CHECK(out);
	size_t n = moat__cluster_env_encode(m, nonce, groups, moat_now_ms(),
					    out);
	CHECK(n <= moat__cluster_env_size(m));
	uint64_t nonce2;
	bool groups2;
	struct moat_msg *r = NULL;
	CHECK(moat__cluster_env_decode(out, n, topic, sizeof(topic) - 1,
				       &nonce2, &groups2, &r) == MOAT_OK);
	CHECK(nonce2 == nonce && groups2 == groups);
	CHECK(r->qos == m->qos && r->retain == m->retain);
	CHECK((r->expiry_ms != 0) == (m->expiry_ms != 0));
	CHECK(r->props_len == m->props_len &&
	      !memcmp(r->props, m->props, m->props_len));
	CHECK(r->payload_len == m->payload_len &&
	      !memcmp(r->payload, m->payload, m->payload_len));
	CHECK(r->has_src == m->has_src);
	if (m->has_src)
		CHECK(same_str(r->src_user, m->src_user) &&
		      same_str(r->src_cid, m->src_cid));
	moat_msg_unref(&r);
	moat_msg_unref(&m);
	free(out);
	return 0;
}
