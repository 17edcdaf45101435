/* moat payload leak detector (THREATS.md section 4, docs/leaks.md).
 *
 * Finds sensitive data in MQTT topics, payloads and property values:
 * private addresses, credentials, tokens, keys, card numbers, personal and
 * health data, locations (the 22 categories of enum moat_leak_category).
 * One pass of Vectorscan finds candidates, C validators confirm them
 * (address ranges, Luhn, IBAN mod-97, JWT header decoding, entropy,
 * plausibility, co-occurrence), and a bounded JSON walker lets key-based
 * rules see `"password": "12345"`.  It does not decide what to do with a
 * finding (log, redact, drop): that is the caller's policy.
 *
 * Threading: a struct moat_leak_db is built once and never changes; any
 * number of threads may scan with it at the same time, each with its own
 * struct moat_leak_scratch (allocated once per thread).  moat_leak_scan()
 * allocates nothing, never reads past len, and stops after the db's byte
 * budget, so its cost per message is bounded whatever the input.
 *
 * Findings never hold the matched bytes: a category-specific redacted
 * preview (e.g. "10.*.*.*", "j***@example.com", "****1111") and an
 * HMAC-SHA-256 of the match under the install key identify it in logs. */
#ifndef MOAT_LEAK_H
#define MOAT_LEAK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "moat/errors.h"

/* The categories.  Their names (moat_leak_category_name) are interfaces:
 * configuration, `moat scan --categories` and logs use them.  Values are
 * never renumbered; new categories go at the end. */
enum moat_leak_category {
	MOAT_LEAK_PRIVATE_IPV4 = 0, /* "private_ipv4" L1 */
	MOAT_LEAK_PRIVATE_IPV6,     /* "private_ipv6" L2 */
	MOAT_LEAK_MAC_ADDRESS,      /* "mac_address" L3 */
	MOAT_LEAK_EMAIL,            /* "email" L4 */
	MOAT_LEAK_GEOLOCATION,      /* "geolocation" L5 */
	MOAT_LEAK_CREDENTIAL,       /* "credential" L6 */
	MOAT_LEAK_HTTP_AUTH,        /* "http_auth" L7 */
	MOAT_LEAK_JWT,              /* "jwt" L8 */
	MOAT_LEAK_PRIVATE_KEY,      /* "private_key" L9 */
	MOAT_LEAK_URL_CREDENTIALS,  /* "url_credentials" L10 */
	MOAT_LEAK_AWS_KEY,          /* "aws_key" L11 */
	MOAT_LEAK_VENDOR_TOKEN,     /* "vendor_token" L12 */
	MOAT_LEAK_GENERIC_SECRET,   /* "generic_secret" L13 */
	MOAT_LEAK_PAYMENT_CARD,     /* "payment_card" L14 */
	MOAT_LEAK_IBAN,             /* "iban" L15 */
	MOAT_LEAK_NATIONAL_ID,      /* "national_id" L16 */
	MOAT_LEAK_DEVICE_ID,        /* "device_id" L17 */
	MOAT_LEAK_HEALTH,           /* "health" L18 */
	MOAT_LEAK_PERSON,           /* "person" L19 */
	MOAT_LEAK_INTERNAL_HOSTNAME, /* "internal_hostname" L20 */
	MOAT_LEAK_WIFI_CREDENTIALS, /* "wifi_credentials" L21 */
	MOAT_LEAK_VEHICLE_ID,       /* "vehicle_id" L22 */
	MOAT_LEAK_CATEGORY_COUNT
};

/* A set of categories: bit (1u << category). */
#define MOAT_LEAK_BIT(c) (UINT32_C(1) << (unsigned)(c))
#define MOAT_LEAK_ALL (MOAT_LEAK_BIT(MOAT_LEAK_CATEGORY_COUNT) - 1u)

/* Same values and names as the audit findings' enum moat_severity. */
enum moat_leak_severity {
	MOAT_LEAK_SEV_INFO = 0,
	MOAT_LEAK_SEV_LOW = 1,
	MOAT_LEAK_SEV_MEDIUM = 2,
	MOAT_LEAK_SEV_HIGH = 3,
	MOAT_LEAK_SEV_CRITICAL = 4,
};

/* "private_ipv4", ... ; NULL for a value out of range. */
const char *moat_leak_category_name(enum moat_leak_category c);
/* The category named name[0..len) (exact, lower case).  MOAT_OK or
 * MOAT_ENOTFOUND. */
int moat_leak_category_parse(const char *name, size_t len,
			     enum moat_leak_category *out);
/* A comma-separated list of names ("email,credential") into a set.
 * MOAT_OK, or MOAT_EINVAL with err set to "unknown category 'x'" (empty
 * names and an empty list are errors too). */
int moat_leak_categories_parse(const char *list, uint32_t *set, char *err,
			       size_t errsz);
/* "info", "low", "medium", "high", "critical"; NULL when out of range. */
const char *moat_leak_severity_name(enum moat_leak_severity s);
/* MOAT_OK or MOAT_ENOTFOUND. */
int moat_leak_severity_parse(const char *name, enum moat_leak_severity *out);

/* ---- the compiled detector ------------------------------------------------ */

#define MOAT_LEAK_KEY_LEN 32              /* install key, bytes */
#define MOAT_LEAK_DEFAULT_BUDGET 65536    /* bytes scanned per message */
#define MOAT_LEAK_MAX_BUDGET (16u << 20)  /* largest budget accepted */
#define MOAT_LEAK_DEFAULT_JSON_DEPTH 32
#define MOAT_LEAK_MAX_JSON_DEPTH 64

struct moat_leak_opts {
	/* Categories to detect; 0 means all (MOAT_LEAK_ALL). */
	uint32_t categories;
	/* Bytes of a message that are scanned; the rest is skipped and the
	 * result says so (MOAT_LEAK_R_BUDGET).  0: MOAT_LEAK_DEFAULT_BUDGET;
	 * at most MOAT_LEAK_MAX_BUDGET. */
	size_t budget;
	/* JSON nesting followed by the walker (0: default 32; at most 64).
	 * Deeper content is still scanned as text. */
	unsigned json_depth;
	/* Install key for the findings' HMACs (MOAT_LEAK_KEY_LEN bytes,
	 * copied).  NULL: a random key from the CSPRNG, so HMACs match only
	 * within this db's lifetime. */
	const uint8_t *hmac_key;
};

struct moat_leak_db;
struct moat_leak_scratch;

/* Build a detector.  opts may be NULL (all defaults).  MOAT_OK and *out
 * (free with moat_leak_db_free), MOAT_EINVAL for bad options, MOAT_ENOMEM,
 * or MOAT_EIO when Vectorscan refuses the patterns or this CPU; err gets
 * a message in every error case. */
int moat_leak_db_new(const struct moat_leak_opts *opts,
		     struct moat_leak_db **out, char *err, size_t errsz);
void moat_leak_db_free(struct moat_leak_db *db);
/* The set of categories db detects. */
uint32_t moat_leak_db_categories(const struct moat_leak_db *db);
/* The byte budget per message. */
size_t moat_leak_db_budget(const struct moat_leak_db *db);

/* Per-thread working memory for scanning with db (Vectorscan scratch,
 * findings, JSON stacks, key-class, clean-topic and structure caches,
 * decoder buffers; about 710 KiB, most of it touched only as topics
 * arrive).  Use one per
 * thread; it can be reused for any number of scans with db.  MOAT_OK and
 * *out, MOAT_ENOMEM, or MOAT_EIO. */
int moat_leak_scratch_new(const struct moat_leak_db *db,
			  struct moat_leak_scratch **out);
void moat_leak_scratch_free(struct moat_leak_scratch *s);

/* ---- findings ----------------------------------------------------------- */

#define MOAT_LEAK_MAX_FINDINGS 64 /* reported per scan (see total) */
#define MOAT_LEAK_PATH_MAX 96     /* JSON path, with NUL */
#define MOAT_LEAK_PREVIEW_MAX 48  /* preview, with NUL */
#define MOAT_LEAK_HMAC_HEX 32     /* 16 bytes of HMAC-SHA-256, as hex */

/* Finding flags. */
#define MOAT_LEAK_F_WEAK_PASSWORD 0x0001u /* credential: a common password */
#define MOAT_LEAK_F_TEST_VALUE 0x0002u    /* a published test/example value */
#define MOAT_LEAK_F_CONTEXT 0x0004u       /* a context word or key agreed */
#define MOAT_LEAK_F_JSON_STRING 0x0008u   /* range lies in a JSON string */
#define MOAT_LEAK_F_JSON_SCALAR 0x0010u   /* range is a bare JSON number/literal */
#define MOAT_LEAK_F_EXPIRED 0x0020u       /* jwt: exp in the past */
#define MOAT_LEAK_F_ALG_NONE 0x0040u      /* jwt: unsigned ("alg":"none") */
#define MOAT_LEAK_F_PRECISE 0x0080u       /* geolocation: >= 4 decimals */
#define MOAT_LEAK_F_LINKED 0x0100u        /* health: same message as a
					   * person, id or location */
#define MOAT_LEAK_F_ENCRYPTED 0x0200u     /* jwt: a JWE (5 segments) */
#define MOAT_LEAK_F_TRUNCATED 0x0400u     /* match runs into the budget end */
#define MOAT_LEAK_F_DECODED 0x0800u       /* found in decoded content: a
					   * base64 blob (the range is the
					   * blob) or CBOR (the range is the
					   * item's bytes) */

/* "weak_password", "test_value", "context", "json_string", "json_scalar",
 * "expired", "alg_none", "precise", "linked", "encrypted", "truncated",
 * "decoded" for one MOAT_LEAK_F_* bit; NULL for other values. */
const char *moat_leak_flag_name(uint32_t flag);

struct moat_leak_finding {
	enum moat_leak_category category;
	enum moat_leak_severity severity;
	uint8_t confidence; /* 0..100: how sure the validators are */
	uint32_t flags;     /* MOAT_LEAK_F_* */
	/* moat_leak_scan_msg: the part the offsets are in
	 * (MOAT_LEAK_PART_*); moat_leak_scan: always PAYLOAD. */
	uint8_t part;
	/* The sensitive bytes: data[start..end) of the scanned buffer.  For
	 * a key-based finding, the value only (not the key). */
	size_t start, end;
	/* JSON path of the value ("$.wifi.psk", "$.fixes[2].lat"); "" when
	 * the message is not JSON or the match is outside any value.  Keys
	 * that are not plain identifiers appear as ["..."] with
	 * non-printable bytes as '?'; long paths end in "...". */
	char path[MOAT_LEAK_PATH_MAX];
	/* Redacted preview, printable ASCII, never the secret itself. */
	char preview[MOAT_LEAK_PREVIEW_MAX];
	/* Lower-case hex of the first 16 bytes of
	 * HMAC-SHA-256(install key, data[start..end)). */
	char hmac[MOAT_LEAK_HMAC_HEX + 1];
};

/* Result flags. */
#define MOAT_LEAK_R_TRUNCATED 0x01u  /* more findings than were reported */
#define MOAT_LEAK_R_BUDGET 0x02u     /* input longer than the budget */
#define MOAT_LEAK_R_JSON 0x04u       /* walked as JSON */
#define MOAT_LEAK_R_JSON_ERROR 0x08u /* looked like JSON but did not parse
				      * (or hit the depth limit); the rest
				      * was scanned as text */

struct moat_leak_result {
	/* In the scratch: valid until its next scan or its free.  Sorted by
	 * start offset. */
	const struct moat_leak_finding *findings;
	size_t n;     /* entries in findings (<= MOAT_LEAK_MAX_FINDINGS) */
	size_t total; /* findings detected (> n when truncated) */
	uint32_t flags;      /* MOAT_LEAK_R_* */
	size_t scanned;      /* bytes examined: min(len, budget) */
	uint32_t categories; /* set of the categories in findings */
	enum moat_leak_severity max_severity; /* INFO when n == 0 */
};

/* Scan data[0..len) (a topic, a property value or a payload; any bytes,
 * no NUL needed) with db, using scratch s (created for db, not in use by
 * another thread).  Fills *out; allocates nothing.  Returns the number of
 * findings reported (out->n, 0 when clean) or MOAT_EINVAL for NULL
 * arguments or a scratch of another db. */
int moat_leak_scan(const struct moat_leak_db *db, struct moat_leak_scratch *s,
		   const uint8_t *data, size_t len,
		   struct moat_leak_result *out);

/* Parts of a message (struct moat_leak_finding.part). */
#define MOAT_LEAK_PART_PAYLOAD 0
#define MOAT_LEAK_PART_TOPIC 1

/* Scan a message: its topic and its payload in one call (as
 * moat_leak_scan on each; findings hold their part and offsets within
 * it, topic findings first, each part sorted by start; MOAT_LEAK_R_*
 * flags and `scanned` are the payload's, with MOAT_LEAK_R_BUDGET also
 * for a topic longer than the budget).  The scratch remembers topics
 * that had no finding (a small cache, exact bytes, topics up to 64 bytes,
 * per scratch, i.e. per thread): such a topic is not scanned again.  It
 * also remembers, per topic, the last clean JSON payload (up to 256
 * bytes) in which no rule had anything to look at, and which of its
 * member values may change harmlessly (numbers, lower-case hex strings,
 * ISO 8601 times under keys that name nothing): a payload equal to it
 * but for such values is clean without a scan (docs/leaks.md, "The
 * structure cache").  Returns the number of findings reported, or
 * MOAT_EINVAL. */
int moat_leak_scan_msg(const struct moat_leak_db *db,
		       struct moat_leak_scratch *s, const uint8_t *topic,
		       size_t tlen, const uint8_t *payload, size_t plen,
		       struct moat_leak_result *out);

/* ---- redaction ---------------------------------------------------------- */

/* Overwrite the findings of r in buf (the buffer that was scanned, len
 * bytes) in place, keeping its length: every byte of a finding's range
 * becomes '*'.  A range that is a bare JSON number or literal (flag
 * MOAT_LEAK_F_JSON_SCALAR, e.g. "pin": 123456) becomes a JSON string of
 * '*' of the same length ("****"), and a range inside a JSON string is
 * widened to whole escape sequences, so valid JSON stays valid.  Returns
 * the number of bytes changed. */
size_t moat_leak_redact_inplace(uint8_t *buf, size_t len,
				const struct moat_leak_result *r);

/* Copy in[0..len) to out, replacing each finding's range with the marker
 * "[REDACTED:<category>]" (quoted when the range was a bare JSON scalar,
 * so JSON stays valid).  MOAT_OK and *outlen, or MOAT_ELIMIT when outsz
 * is too small (*outlen is then the size needed; out is unspecified). */
int moat_leak_redact_copy(const uint8_t *in, size_t len,
			  const struct moat_leak_result *r, uint8_t *out,
			  size_t outsz, size_t *outlen);

#endif
