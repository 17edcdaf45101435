/* The WebSocket layer of the transport stack (net.h), server and client
 * roles: MQTT over WebSockets (RFC 6455; MQTT 5.0 §6, 3.1.1 §6).  Above
 * it, the MQTT code reads and writes the bytes of binary messages only. */
#ifndef MOAT_NET_WS_H
#define MOAT_NET_WS_H

#include <stdint.h>

#include "codec/ws.h"
#include "net/net.h"

/* A WebSocket layer over lower that first answers the client's opening
 * handshake under pol (copied), then accepts frames of at most
 * max_frame payload bytes.  NULL when out of memory. */
struct moat_net *moat_net_ws_new(struct moat_net *lower,
				 const struct moat_ws_policy *pol,
				 uint64_t max_frame);

/* A WebSocket layer in the client role over lower: it sends the opening
 * request for path on host (the Host header: "name" or "name:port"),
 * offering the sub-protocol mqtt, and checks the answer (101, the accept
 * key, mqtt selected) in its first read or write; then frames are
 * masked.  Frames from the server of more than max_frame bytes are
 * refused.  NULL when out of memory (or random bytes). */
struct moat_net *moat_net_ws_client_new(struct moat_net *lower,
					const char *host, const char *path,
					uint64_t max_frame);

/* The address of the last X-Forwarded-For entry of the client's request
 * when it was a numeric IPv4 or IPv6 address, else NULL (also without a
 * WebSocket layer in the stack n).  Whether to believe it is the
 * caller's business (websockets_trusted_proxy). */
const char *moat_net_ws_forwarded(struct moat_net *n);

#endif
