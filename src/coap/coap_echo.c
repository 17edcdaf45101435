/* Echo option values for address validation (RFC 9175 §2.4, and its
 * Appendix A "method 2": a timestamp with a MAC, so the server keeps no
 * per-peer state before the peer proved it receives at its address).
 *
 * value = t (4 bytes, big-endian seconds) || HMAC-SHA-256(key, t || addr)
 * truncated to 12 bytes.  A peer cannot forge one for another address
 * without the key; a captured one expires after the validity window. */
#include <netinet/in.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <string.h>

#include "coap_layer.h"

int coap_echo_key_init(struct coap_echo_key *key)
{
	return coap_random(key->k, sizeof(key->k));
}

size_t coap_addr_key(const struct sockaddr *sa, uint8_t out[COAP_ADDR_KEY_MAX])
{
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *s4 = (const struct sockaddr_in *)sa;
		out[0] = 4;
		memcpy(out + 1, &s4->sin_port, 2);
		memcpy(out + 3, &s4->sin_addr, 4);
		return 7;
	}
	if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *s6 =
			(const struct sockaddr_in6 *)sa;
		out[0] = 6;
		memcpy(out + 1, &s6->sin6_port, 2);
		memcpy(out + 3, &s6->sin6_addr, 16);
		return 19;
	}
	return 0;
}

static int mac(const struct coap_echo_key *key, const uint8_t t[4],
	       const uint8_t *addr, size_t addrlen,
	       uint8_t out[COAP_ECHO_MAC_LEN])
{
	uint8_t msg[4 + COAP_ADDR_KEY_MAX];
	uint8_t md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	if (addrlen > COAP_ADDR_KEY_MAX)
		return MOAT_EINVAL;
	memcpy(msg, t, 4);
	if (addrlen)
		memcpy(msg + 4, addr, addrlen);
	if (!HMAC(EVP_sha256(), key->k, (int)sizeof(key->k), msg, 4 + addrlen,
		  md, &mdlen) ||
	    mdlen < COAP_ECHO_MAC_LEN)
		return MOAT_EIO;
	memcpy(out, md, COAP_ECHO_MAC_LEN);
	return MOAT_OK;
}

int coap_echo_make(const struct coap_echo_key *key, uint32_t now_s,
		   const uint8_t *addr, size_t addrlen,
		   uint8_t out[COAP_ECHO_LEN])
{
	out[0] = (uint8_t)(now_s >> 24);
	out[1] = (uint8_t)(now_s >> 16);
	out[2] = (uint8_t)(now_s >> 8);
	out[3] = (uint8_t)now_s;
	return mac(key, out, addr, addrlen, out + 4);
}

int coap_echo_check(const struct coap_echo_key *key, uint32_t now_s,
		    uint32_t validity_s, const uint8_t *addr, size_t addrlen,
		    const uint8_t *val, size_t len)
{
	uint8_t want[COAP_ECHO_MAC_LEN];
	if (len != COAP_ECHO_LEN)
		return MOAT_EDENIED;
	uint32_t t = (uint32_t)val[0] << 24 | (uint32_t)val[1] << 16 |
		     (uint32_t)val[2] << 8 | val[3];
	if (t > now_s || now_s - t > validity_s)
		return MOAT_EDENIED;
	if (mac(key, val, addr, addrlen, want) != MOAT_OK)
		return MOAT_EDENIED;
	return CRYPTO_memcmp(want, val + 4, COAP_ECHO_MAC_LEN) == 0
		       ? MOAT_OK
		       : MOAT_EDENIED;
}
