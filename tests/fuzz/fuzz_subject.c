/* libFuzzer harness for the MQTT topic <-> NATS subject mapping
 * (src/cluster/subject.c).
 *
 * The first input byte selects the property, the rest is its input (an
 * exact-size heap copy, so ASan sees any over-read):
 *   0  topic:    a topic that encodes decodes back to the same bytes, its
 *                subject uses only [A-Za-z0-9_=-] and '.', and the same
 *                bytes round-trip as a single token;
 *   1  subject:  a subject (prefix "m") that decodes re-encodes to the
 *                same bytes (only encode's image decodes);
 *   2  match:    "FILTER\0TOPIC": when both are valid, the filter's one or
 *                two subjects match the topic's subject exactly when MQTT
 *                matching says so;
 *   3  token:    a token that unescapes re-escapes to the same bytes. */
#include <stdint.h>
#include <string.h>

#include "cluster/subject.h"
#include "codec/mqtt_codec.h"
#include "common/moat_common.h"
#include "fuzz_util.h"

static char s1[MOAT_SUBJECT_BUF], s2[MOAT_SUBJECT_BUF];
static uint8_t back[MOAT_SUBJECT_BUF];

static void topic_roundtrip(const uint8_t *t, size_t n)
{
	int sl = moat_subject_from_topic("m", t, n, s1, sizeof(s1));
	if (sl >= 0) {
		CHECK(strspn(s1, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRS"
				 "TUVWXYZ0123456789_=-.") == (size_t)sl);
		int bl = moat_subject_to_topic("m", s1, (size_t)sl, back,
					       sizeof(back));
		CHECK(bl == (int)n && !memcmp(back, t, n));
	} else {
		CHECK(sl == MOAT_EINVAL || sl == MOAT_ELIMIT);
		CHECK(sl == MOAT_ELIMIT || !moat_topic_name_valid(t, n) ||
		      !moat_utf8_valid(t, n));
	}
	int tl = moat_subject_token(t, n, s2, sizeof(s2));
	if (tl >= 0) {
		int bl = moat_subject_untoken(s2, (size_t)tl, back,
					      sizeof(back));
		CHECK(bl == (int)n && !memcmp(back, t, n));
	}
}

static void subject_canonical(const uint8_t *s, size_t n)
{
	int tl = moat_subject_to_topic("m", (const char *)s, n, back,
				       sizeof(back));
	if (tl < 0)
		return;
	int sl = moat_subject_from_topic("m", back, (size_t)tl, s1,
					 sizeof(s1));
	CHECK(sl == (int)n && !memcmp(s1, s, n));
}

static void match(const uint8_t *d, size_t n)
{
	const uint8_t *nul = memchr(d, 0, n);
	size_t parent;
	if (!nul)
		return;
	size_t fl = (size_t)(nul - d), tl = n - fl - 1;
	const uint8_t *t = nul + 1;
	int fs = moat_subject_from_filter("m", d, fl, s1, sizeof(s1), &parent);
	int ts = moat_subject_from_topic("m", t, tl, s2, sizeof(s2));
	if (fs < 0 || ts < 0)
		return;
	bool nats = moat_subject_matches(s1, (size_t)fs, s2, (size_t)ts) ||
		    (parent && moat_subject_matches(s1, parent, s2, (size_t)ts));
	CHECK(nats == moat_topic_matches(d, fl, t, tl));
}

static void token_canonical(const uint8_t *s, size_t n)
{
	int bl = moat_subject_untoken((const char *)s, n, back, sizeof(back));
	if (bl < 0)
		return;
	int tl = moat_subject_token(back, (size_t)bl, s1, sizeof(s1));
	CHECK(tl == (int)n && !memcmp(s1, s, n));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	uint8_t *in = fuzz_copy_exact(data + 1, size - 1);
	switch (data[0] & 3) {
	case 0:
		topic_roundtrip(in, size - 1);
		break;
	case 1:
		subject_canonical(in, size - 1);
		break;
	case 2:
		match(in, size - 1);
		break;
	default:
		token_canonical(in, size - 1);
		break;
	}
	free(in);
	return 0;
}
