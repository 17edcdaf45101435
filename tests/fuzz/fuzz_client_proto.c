/* libFuzzer harness for the client core (src/client/client_proto.h): what
 * a server sends to moat pub/sub, moat bench and moat audit.
 *
 * Input layout: data[0] picks the decoder (bits 0-1: CONNACK, SUBACK,
 * UNSUBACK, PUBLISH) and the protocol level (bits 2-3: 3, 4, 5, 5); for
 * PUBLISH data[1] holds the flags.  The rest is the packet body, given as
 * an exact-size heap copy so that ASan sees any over-read.
 *
 * Beyond "no crash": everything a decoder hands back points into the
 * body; a refusal message is NUL-terminated within its buffer; the
 * acknowledgement for an accepted PUBLISH is 0 or 4 bytes.
 *
 * Seeds: corpus/client_proto, a few hand-made bodies per decoder. */
#include <stdlib.h>
#include <string.h>

#include "client/client_proto.h"

static void inside(const uint8_t *p, size_t n, const uint8_t *body,
		   size_t len)
{
	if (n && (p < body || p + n > body + len))
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const uint8_t versions[4] = {3, 4, 5, 5};
	if (size < 2)
		return 0;
	unsigned target = data[0] & 3;
	uint8_t version = versions[(data[0] >> 2) & 3];
	uint8_t flags = data[1] & 0x0F;
	size_t len = size - 2;
	uint8_t *body = malloc(len ? len : 1);
	if (!body)
		return 0;
	memcpy(body, data + 2, len);
	if (target == 0) {
		struct moat_client_connack ca;
		if (moat_client_connack_decode(body, len, version, &ca) ==
		    MOAT_OK) {
			char buf[600];
			moat_client_connack_refusal(&ca, buf, sizeof(buf));
			if (!memchr(buf, '\0', sizeof(buf)))
				abort();
			inside(ca.props.raw.p, ca.props.raw.len, body, len);
		}
	} else if (target == 1 || target == 2) {
		struct moat_client_suback sa;
		uint8_t type = target == 1 ? MQTT_SUBACK : MQTT_UNSUBACK;
		if (moat_client_suback_decode(type, body, len, version, &sa) ==
		    MOAT_OK)
			inside(sa.codes, sa.ncodes, body, len);
	} else {
		struct moat_mqtt_publish5 p5;
		if (moat_client_publish_decode(flags, body, len, version,
					       &p5) == MOAT_OK) {
			inside(p5.p.topic.p, p5.p.topic.len, body, len);
			inside(p5.p.payload.p, p5.p.payload.len, body, len);
			uint8_t ack[4];
			size_t n = moat_client_ack_for(MQTT_PUBLISH, p5.p.qos,
						       p5.p.packet_id, ack);
			if (n != 0 && n != 4)
				abort();
		}
	}
	free(body);
	return 0;
}
