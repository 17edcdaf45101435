/* Internals of the leak detector (src/leak), shared by its files only.
 *
 * A scan runs in three phases over data[0..n), n = min(len, budget):
 *  1. Vectorscan runs every rule's anchor pattern once over the bytes.
 *     Each match calls the rule's extractor with the match's end offset;
 *     the extractor finds the whole token around it (patterns carry no
 *     start offsets), validates it and records a candidate finding.  Then
 *     the shape pass (leak_lex.c) does the same for the numeric and
 *     alphanumeric shapes that have no literal to anchor a pattern on.
 *  2. JSON messages are walked (leak_json.c): every member's key is
 *     classified (leak_keys.c) and its value checked by the field rules
 *     (leak_fields.c); regex candidates inside values get their JSON path;
 *     key=value pairs inside string values are looked at too.  Text (and
 *     what follows JSON that does not parse) is searched for key=value
 *     and "key: value" pairs (moat__leak_kv_scan).
 *  3. Candidates are resolved (overlaps, the more specific category wins),
 *     sorted, given severities, HMACs and copied out (leak_scan.c). */
#ifndef MOAT_LEAK_INT_H
#define MOAT_LEAK_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <hs.h>
#include <openssl/sha.h>

#include "common/moat_common.h"
#include "leak/leak.h"

#define LEAK_CAND_MAX 256 /* candidates kept per scan before resolving */
#define LEAK_KCACHE 256   /* key-class cache slots (power of two) */
#define LEAK_KCACHE_KEY 40
#define LEAK_RULES_MAX 128 /* Vectorscan patterns */

/* ---- small character helpers ------------------------------------------ */

static inline bool lk_digit(uint8_t c)
{
	return c >= '0' && c <= '9';
}
static inline bool lk_alpha(uint8_t c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}
static inline bool lk_alnum(uint8_t c)
{
	return lk_digit(c) || lk_alpha(c);
}
static inline bool lk_hex(uint8_t c)
{
	return lk_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}
static inline bool lk_upper(uint8_t c)
{
	return c >= 'A' && c <= 'Z';
}
static inline bool lk_lower(uint8_t c)
{
	return c >= 'a' && c <= 'z';
}
static inline uint8_t lk_tolower(uint8_t c)
{
	return lk_upper(c) ? (uint8_t)(c + 32) : c;
}
static inline bool lk_space(uint8_t c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\f' ||
	       c == '\v';
}
static inline unsigned lk_hexval(uint8_t c)
{
	if (lk_digit(c))
		return (unsigned)(c - '0');
	return (unsigned)(lk_tolower(c) - 'a' + 10);
}

/* ---- key classes (leak_keys.c) ------------------------------------------ */

/* What a key (JSON member name or the key of a key=value pair) says about
 * its value. */
enum lk_kind {
	KK_NONE = 0,
	KK_CRED,      /* password, token, api_key, ... */
	KK_LAT,       /* latitude */
	KK_LON,       /* longitude */
	KK_GEO,       /* coordinates / location / position / gps container */
	KK_HEALTH,    /* a physiological measurement (sub: enum lk_health) */
	KK_PERSON,    /* a person-identifying field (sub: enum lk_person) */
	KK_PERSON_OF, /* an object about a person (patient, driver, owner) */
	KK_SSID,
	KK_DEVICE,    /* sub: enum lk_device */
	KK_NATID,     /* sub: enum lk_natid */
	KK_VIN,
	KK_MAC,
	KK_HOST,      /* host name field */
	KK_AWS_SECRET,
	KK_HUMAN_NAME_PART, /* FHIR HumanName "family"/"given"/"text" */
};

enum lk_cred {
	KC_PASSWORD = 1, /* numbers allowed ("password": 12345) */
	KC_PASS,         /* the bare word "pass": strings only */
	KC_PIN,          /* 4..12 digits */
	KC_AUTH,         /* auth / authorization: "Scheme value" allowed */
	KC_SECRET,       /* token, secret, api key, private key ... */
	KC_PSK,          /* wifi psk / wpa key / wifi password */
};

enum lk_health {
	KH_HR = 1, KH_HR_AMBIG, KH_SPO2, KH_BP, KH_SYS, KH_DIA, KH_GLUCOSE,
	KH_RESP, KH_TEMP, KH_WAVE,
};

enum lk_person {
	KP_NAME = 1, KP_DOB, KP_ADDRESS, KP_ZIP, KP_PHONE, KP_USER, KP_ID,
	KP_OWNER,
};

enum lk_device {
	KD_IMEI = 1, KD_IMEISV, KD_ICCID, KD_IMSI, KD_MEID, KD_ANDROID_ID,
	KD_AD_ID, KD_EUI,
};

enum lk_natid {
	KN_SSN = 1, KN_GENERIC, KN_NINO, KN_DNI, KN_AADHAAR, KN_SIN, KN_BSN,
	KN_PASSPORT,
};

/* Flags of a key besides its kind. */
#define KF_SECRET_WORD 0x01u /* names a secret (generic_secret may apply) */
#define KF_VETO 0x02u        /* hash/checksum/public/type...: not a secret */
#define KF_VERSION 0x04u     /* version/firmware: dotted numbers are not IPs */
#define KF_E7 0x08u          /* latitudeE7: degrees x 1e7 */
/* What a JSON member name says about its object (leak_json.c). */
#define KF_NV_NAME 0x10u     /* name, n, metric: a record's name */
#define KF_NV_VALUE 0x20u    /* value, v, val: a record's value */
#define KF_MUSIC 0x40u       /* tempo, song, track: "bpm" is music */
#define KF_FRIENDLY 0x80u    /* Home Assistant friendly_name */
#define KF_ENTITY 0x100u     /* Home Assistant entity_id */

struct lk_keyinfo {
	uint8_t kind; /* enum lk_kind */
	uint8_t sub;  /* enum lk_cred / lk_health / lk_person / ... */
	uint16_t flags;
};

struct moat_leak_db;
/* Classify key[0..len) (raw bytes, any case and separators). */
struct lk_keyinfo moat__leak_key_classify(const uint8_t *key, size_t len);

/* ---- rules (leak_rules.c) ------------------------------------------------ */

struct lk_scan;
typedef void (*lk_extract_fn)(struct lk_scan *sc, unsigned rule, size_t end);

struct lk_rule {
	const char *pattern; /* Vectorscan, anchor of the token */
	unsigned hs_flags;
	uint8_t category;    /* enum moat_leak_category */
	lk_extract_fn fn;
	/* Rule parameters for shared extractors (vendor tokens etc.). */
	const void *param;
};

/* Parameters of a vendor-token rule (moat__leak_x_vendor). */
struct lk_vendor {
	uint8_t anchor_len; /* the token starts this many bytes before the
			     * match end; 0: the secret starts at the end */
	uint8_t cs;         /* enum lk_charset of the token's body */
	uint16_t min, max;  /* token length bounds */
	uint8_t ent10;      /* minimum Shannon entropy x 10 */
	uint8_t sev;        /* enum moat_leak_severity */
	const char *const *ctx; /* context words required before, or NULL */
};

/* Parameters of a health-unit rule ("120/80 mmHg", "105 mg/dL"). */
enum lk_hunit { HU_BP = 1, HU_GLUCOSE_MG, HU_GLUCOSE_MMOL, HU_SPO2, HU_BPM };

extern const struct lk_rule moat__leak_rules[];
extern const size_t moat__leak_rule_count;

/* The first rules of the table have no pattern: the shape pass calls
 * their extractors (leak_lex.c). */
enum lk_lex_rule {
	LX_PAN, LX_SSN, LX_IMEI, LX_ICCID, LX_GEO_PAIR, LX_GEO_HEMI,
	LX_IBAN, LX_NINO, LX_VIN, LX_MAC, LX_SSN9, LX_COUNT
};
void moat__leak_lex_init(void);
void moat__leak_lex(struct lk_scan *sc);

/* ---- the compiled db ---------------------------------------------------- */

struct moat_leak_db {
	hs_database_t *hs;  /* NULL when no pattern is needed */
	uint32_t categories;
	size_t budget;
	unsigned json_depth;
	SHA256_CTX hmac_inner; /* state after absorbing key ^ ipad */
	SHA256_CTX hmac_outer; /* state after absorbing key ^ opad */
	uint64_t id;           /* ties scratches to their db */
};

/* ---- decoders (leak_cbor.c, leak_decode.c) ------------------------------- */

#define LK_SEG_MAX 512        /* segments of a CBOR transcoding */
#define LK_DECODE_MAX 16384   /* bytes of decoded or transcoded text */
#define LK_B64_MAX 6144       /* bytes a base64 blob decodes to, at most */
#define LK_B64_MIN 24         /* characters of a blob worth decoding */
#define LK_DECODES_MAX 8      /* blobs decoded per message */

/* JSON text out[os..] came from the input bytes [is, ie). */
struct lk_seg {
	uint32_t os, is, ie;
};

struct lk_decode {
	uint8_t *buf;
	size_t cap, len;
	bool cut;     /* the output did not fit */
	size_t nseg;
	struct lk_seg seg[LK_SEG_MAX];
};

/* Transcode the CBOR map or array p[0..n) into dc (JSON text and its
 * segment map).  False when p is not one well-formed item of that kind
 * (or uses what is not handled); dc->cut when the text did not fit. */
bool moat__leak_cbor_json(const uint8_t *p, size_t n, struct lk_decode *dc);

/* ---- per-scan state (inside struct moat_leak_scratch) ------------------- */

/* ---- the structure cache (leak_shape.c) --------------------------------- */

/* Per scratch, per topic (two-way sets chosen by a hash of the topic,
 * exact bytes compared, the least recently used replaced): the last clean JSON payload of the topic whose scan
 * made no rule look at anything, and its slots: member values that may
 * change without a rule noticing (numbers, hex strings, ISO 8601 times
 * under keys that name nothing).  A payload equal to it outside the
 * slots, with slot values of the same harmless kind, is clean. */
#define LK_SHAPES 1024        /* entries (power of two), 456 bytes each */
#define LK_SHAPE_TOPIC 64     /* longest topic cached */
#define LK_SHAPE_PAYLOAD 256  /* longest payload cached */
#define LK_SHAPE_SLOTS 16     /* slots per payload (more: the rest must
			       * stay the same) */

/* LS_STRING: a string value not looked at yet (see prepare()). */
enum lk_slot_kind { LS_NUMBER = 1, LS_HEX, LS_TIME, LS_STRING };

struct lk_slot {
	uint16_t off; /* in the cached payload */
	uint8_t len;
	uint8_t kind; /* enum lk_slot_kind */
};

struct lk_shape_ent {
	uint16_t plen;  /* 0: empty */
	uint8_t tlen;
	uint8_t nslot;
	bool ready;     /* slots classified, in_slot and free_dig set */
	uint8_t topic[LK_SHAPE_TOPIC];
	struct lk_slot slot[LK_SHAPE_SLOTS];
	uint64_t in_slot[LK_SHAPE_PAYLOAD / 64]; /* bit i: payload[i] is in a
						  * slot */
	uint64_t free_dig[LK_SHAPE_PAYLOAD / 64]; /* bit i: any digit may
						   * replace the digit
						   * payload[i] */
	uint8_t payload[LK_SHAPE_PAYLOAD];
};

/* A finding before resolution. */
struct lk_cand {
	struct moat_leak_finding f;
	uint16_t rule;   /* producing rule or field kind, for debugging */
	bool dead;       /* suppressed during resolution */
	bool has_path;
};

/* A key=value separator found in text: ':', '=' or "=>". */
struct lk_trig {
	uint32_t sep;    /* offset of the separator */
	uint32_t seplen;
};

/* A latitude or longitude value waiting for its partner. */
struct lk_coord {
	bool set;
	double v;
	int decimals;
	size_t s, e;
	uint8_t vflags; /* MOAT_LEAK_F_JSON_* of the value */
	char path[MOAT_LEAK_PATH_MAX];
};

/* A password-like value that an SSID in the message makes a Wi-Fi
 * credential. */
struct lk_wifi {
	size_t s, e;
	uint8_t vflags;
	bool psk;  /* the key itself says Wi-Fi (psk, wpa_key, ...) */
	bool text; /* found in text, not in a JSON member */
	bool done;
};

/* A JSON container on the walker's stack. */
struct lk_frame {
	bool obj;
	bool want_key;          /* object: the next string is a member name */
	uint32_t key_s, key_n;  /* current member name (raw, in data) */
	struct lk_keyinfo ki;   /* its class */
	struct lk_keyinfo in;   /* class of the key holding this container */
	uint32_t index;         /* array: index of the next element */
	uint32_t nnum;          /* array: elements seen (coordinate pairs) */
	bool nonnum;            /* array: an element is not a number */
	double num[3];
	int num_dec[3];
	size_t num_s[3], num_e[3];
	struct lk_coord lat, lon;
	bool ssid;              /* object has a non-empty "ssid" */
	bool psk_set;           /* object has a credential that a wifi ssid
				 * would make a wifi credential */
	size_t psk_s, psk_e;
	uint8_t psk_vflags;
	size_t start;            /* offset of the '{' or '[' */
	uint8_t role;            /* current member: enum lk_nv_role */
	bool music;              /* a tempo/song/track key: bpm is music */
	bool person_ent;         /* Home Assistant "entity_id": "person.x" */
	/* name-value records ({"name":"GPS/Latitude","value":52.1},
	 * SenML {"n":"hr","v":72}): the name's and the value's spans */
	bool nv_name, nv_val;
	uint8_t nv_vt;           /* enum lk_vtype of the value */
	uint32_t nv_ns, nv_ne, nv_vs, nv_ve;
};

/* What a member of a name-value record holds. */
enum lk_nv_role { NV_NONE = 0, NV_NAME, NV_VALUE };

struct lk_kcache_ent {
	uint8_t len; /* 0: empty */
	uint8_t key[LEAK_KCACHE_KEY];
	struct lk_keyinfo ki;
};

struct lk_scan {
	const struct moat_leak_db *db;
	const uint8_t *d;
	size_t n;           /* bytes scanned */
	bool json;          /* message is walked as JSON */
	bool binary;        /* not UTF-8 text: findings only in text islands */
	bool nested;        /* scanning decoded content: no further decoding */
	unsigned ndecoded;  /* base64 blobs decoded in this message */
	struct moat_leak_scratch *owner;
	bool stop;          /* candidate table full */
	uint32_t rflags;    /* MOAT_LEAK_R_* */
	size_t total;       /* candidates produced (kept or not) */
	size_t ncand;
	struct lk_cand cand[LEAK_CAND_MAX];
	size_t tok_end[LEAK_RULES_MAX]; /* per rule: end of the last token examined */
	/* caches for forward searches that could otherwise repeat */
	size_t pk_from, pk_end; /* private key END marker search */
	/* text-mode pairing of lat=/lon= pairs */
	struct lk_coord tlat, tlon;
	/* message-level facts for co-occurrence */
	bool any_ssid;
	size_t nwifi;
	struct lk_wifi wifi[8];
	/* JSON walker */
	size_t jnregex;     /* candidates from phase 1 (sorted by start) */
	size_t jci;         /* cursor into cand[] */
	unsigned depth;
	struct lk_frame *stack; /* json_depth + 1 frames */
	unsigned max_depth;
	struct lk_kcache_ent kcache[LEAK_KCACHE];
	/* the structure cache (leak_shape.c): whether a rule looked at
	 * anything, and the values this clean message may vary in */
	uint32_t touched;   /* extractors, field rules, decoders called */
	bool shape_rec;     /* record the slots below in this scan */
	unsigned nslot;
	struct lk_slot slot[LK_SHAPE_SLOTS];
};

/* Topics that had no finding (moat_leak_scan_msg): direct-mapped by a
 * hash, exact bytes compared. */
#define LK_TCACHE 1024
#define LK_TCACHE_TOPIC 64
struct lk_tcache_ent {
	uint8_t len; /* 0: empty */
	uint8_t topic[LK_TCACHE_TOPIC];
};

struct moat_leak_scratch {
	const struct moat_leak_db *db;
	uint64_t db_id;
	struct lk_tcache_ent tcache[LK_TCACHE];
	struct lk_shape_ent shapes[LK_SHAPES]; /* sets of two */
	uint8_t shape_victim[LK_SHAPES / 2];    /* per set: the way to
						 * replace next */
	hs_scratch_t *hs;
	struct lk_scan sc;
	struct lk_scan sub;       /* decoded content (one level deep) */
	struct lk_decode dec;     /* CBOR transcoding, into text[] */
	uint8_t raw[LK_B64_MAX];  /* a decoded base64 blob */
	uint8_t text[LK_DECODE_MAX];
	struct moat_leak_finding out[MOAT_LEAK_MAX_FINDINGS];
	struct lk_frame frames[]; /* 2 x (db->json_depth + 1): sc, sub */
};

/* A hash of a topic (both caches). */
uint32_t moat__leak_topic_hash(const uint8_t *t, size_t n);
/* Payload p[0..pn) of topic t is the cached clean structure with other
 * harmless values. */
bool moat__leak_shape_hit(struct moat_leak_scratch *s, uint32_t h,
			  const uint8_t *t, size_t tn, const uint8_t *p,
			  size_t pn);
/* Remember p[0..pn), just scanned clean into s->sc, for topic t (when
 * the scan qualifies). */
void moat__leak_shape_store(struct moat_leak_scratch *s, uint32_t h,
			    const uint8_t *t, size_t tn, const uint8_t *p,
			    size_t pn);

/* UTF-8 text: printable, tabs, line ends, valid multi-byte sequences. */
bool moat__leak_is_text(const uint8_t *d, size_t n);
/* Phases 1 and 2 and the resolution over data[0..len) into sc (the
 * scratch's sc or sub). */
void moat__leak_scan_core(struct moat_leak_scratch *s, struct lk_scan *sc,
			  const uint8_t *data, size_t len);
/* Decoded content (leak_decode.c): the base64 blob d[s..e) of sc (a JSON
 * string's content or the whole text message), and a binary message that
 * is CBOR.  Findings inside become findings of sc on the blob or on the
 * CBOR bytes they came from. */
void moat__leak_decode_b64(struct lk_scan *sc, size_t s, size_t e);
void moat__leak_decode_cbor(struct lk_scan *sc);

/* ---- recording candidates (leak_scan.c) --------------------------------- */

/* A new candidate for data[s..e) or NULL when the table is full (counted
 * in total).  The preview is empty; fill it with lk_prev_* below. */
struct lk_cand *moat__leak_add(struct lk_scan *sc, enum moat_leak_category c,
			       size_t s, size_t e, enum moat_leak_severity sev,
			       unsigned confidence, uint32_t flags);
static inline bool lk_enabled(const struct lk_scan *sc,
			      enum moat_leak_category c)
{
	return (sc->db->categories & MOAT_LEAK_BIT(c)) != 0;
}
/* Whether a candidate of category c overlaps data[s..e). */
bool moat__leak_overlaps(const struct lk_scan *sc, enum moat_leak_category c,
			 size_t s, size_t e);

/* ---- context and tokens (leak_valid.c) --------------------------------- */

/* A word of words[] (NULL-terminated, lower case) appears as a whole word
 * (not inside a longer run of letters, camelCase boundaries count) in
 * d[max(0, s - win) .. s). */
bool moat__leak_ctx_before(const struct lk_scan *sc, size_t s, size_t win,
			   const char *const *words);
/* The same in d[e .. e + win). */
bool moat__leak_ctx_after(const struct lk_scan *sc, size_t e, size_t win,
			  const char *const *words);
/* Shannon entropy (bits per byte) of p[0..n). */
double moat__leak_entropy(const uint8_t *p, size_t n);
/* Luhn mod-10 over the digits of p[0..n) (other bytes skipped). */
bool moat__leak_luhn(const uint8_t *p, size_t n);
/* Decode base64 (std or url alphabet, padding optional) of p[0..n) into
 * out (at most outsz bytes).  Returns the decoded length, or -1 when the
 * input has other bytes or a bad length.  Stops decoding (and returns
 * outsz) when out is full. */
long moat__leak_b64_decode(const uint8_t *p, size_t n, uint8_t *out,
			   size_t outsz);
/* Parse a decimal number p[0..n): optional sign, digits, optional
 * fraction.  *decimals gets the number of fraction digits.  False when
 * p[0..n) is not exactly such a number. */
bool moat__leak_parse_decimal(const uint8_t *p, size_t n, double *v,
			      int *decimals);
/* A date p[0..n) (YYYY-MM-DD, YYYY/MM/DD, YYYYMMDD, DD.MM.YYYY,
 * DD/MM/YYYY, MM/DD/YYYY, optional time after 'T' or ' ') that is a real
 * calendar date between 1900 and today. */
bool moat__leak_past_date(const uint8_t *p, size_t n);
/* A value that stands for "no secret": empty, null, ****, <redacted>,
 * ${VAR}, {{var}}, %s, env:/vault: references, true/false ... */
bool moat__leak_placeholder(const uint8_t *p, size_t n);
/* One of the embedded common passwords (case-insensitive). */
bool moat__leak_weak_password(const uint8_t *p, size_t n);
/* A top-level domain of the IANA root zone (case-insensitive). */
bool moat__leak_tld(const uint8_t *p, size_t n);
/* ISO 13616 IBAN length of the country p[0..2), or 0. */
unsigned moat__leak_iban_len(const uint8_t *cc);
/* Within the data, the offset of the first byte >= from that is not in
 * the class; classes are the LK_CS_* below. */
size_t moat__leak_span(const struct lk_scan *sc, size_t from, unsigned cs);
/* Back from `to`: the first offset s <= to such that d[s..to) is all in
 * the class. */
size_t moat__leak_rspan(const struct lk_scan *sc, size_t to, unsigned cs);
bool moat__leak_in_class(uint8_t c, unsigned cs);

enum lk_charset {
	LK_CS_ALNUM = 0,
	LK_CS_ALNUM_US,  /* [A-Za-z0-9_] */
	LK_CS_B64URL,    /* [A-Za-z0-9_-] */
	LK_CS_B64,       /* [A-Za-z0-9+/] */
	LK_CS_B64_ANY,   /* [A-Za-z0-9+/_=-] */
	LK_CS_HEX,
	LK_CS_LHEX,      /* [0-9a-f] */
	LK_CS_SLACK,     /* [A-Za-z0-9-] */
	LK_CS_AZURE,     /* [A-Za-z0-9_~.-] */
	LK_CS_SENDGRID,  /* [A-Za-z0-9_.=-] */
	LK_CS_JWT,       /* [A-Za-z0-9_.-] plus '=' */
	LK_CS_TOKEN,     /* [A-Za-z0-9._~+/=-] (bearer) */
	LK_CS_HOST,      /* [A-Za-z0-9.-] */
	LK_CS_DIGIT,
	LK_CS_VIN,       /* [A-HJ-NPR-Z0-9] */
	LK_CS_ALPHA,
	LK_CS_COUNT
};

/* Validators shared by the regex and the field rules (leak_ids.c). */
bool moat__leak_ssn_valid(const uint8_t *nine_digits);
bool moat__leak_vin_check(const uint8_t *v);
/* Confidence (0: rejected) that v[0..17) is a VIN; ctx: a "vin" key or
 * word vouches for it. */
unsigned moat__leak_vin_ok(const uint8_t *v, bool ctx);

/* ---- previews (leak_redact.c) ------------------------------------------- */

/* Printable copy helpers writing into c->f.preview (always NUL-ended). */
void moat__leak_prev_set(struct lk_cand *c, const char *s);
void moat__leak_prev_fmt(struct lk_cand *c, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* First `head` and last `tail` bytes of d[s..e) around "...", or stars
 * only when the value is short (< 4 * (head + tail)). */
void moat__leak_prev_mask(struct lk_cand *c, const uint8_t *d, size_t s,
			  size_t e, size_t head, size_t tail);
/* The HMAC of d[s..e) under the db key, hex into out (33 bytes). */
void moat__leak_hmac(const struct moat_leak_db *db, const uint8_t *d,
		     size_t s, size_t e, char *out);
int moat__leak_hmac_setup(struct moat_leak_db *db, const uint8_t *key);

/* ---- extractors (leak_net.c, leak_secret.c, leak_ids.c, leak_geo.c) ---- */

void moat__leak_x_ipv4(struct lk_scan *sc, unsigned rule, size_t end);
void moat__leak_x_ipv6(struct lk_scan *sc, unsigned rule, size_t end);
void moat__leak_x_mac(struct lk_scan *sc, unsigned rule, size_t end);
void moat__leak_x_email(struct lk_scan *sc, unsigned rule, size_t end);
void moat__leak_x_url(struct lk_scan *sc, unsigned rule, size_t end);
void moat__leak_x_host(struct lk_scan *sc, unsigned rule, size_t end);
void moat__leak_x_unc(struct lk_scan *sc, unsigned rule, size_t end);
void moat__leak_x_winuser(struct lk_scan *sc, unsigned rule, size_t end);
void moat__leak_x_wifi_qr(struct lk_scan *sc, unsigned rule, size_t end);

void moat__leak_x_basic(struct lk_scan *sc, unsigned rule, size_t end);
void moat__leak_x_bearer(struct lk_scan *sc, unsigned rule, size_t end);
void moat__leak_x_jwt(struct lk_scan *sc, unsigned rule, size_t end);
void moat__leak_x_jwe(struct lk_scan *sc, unsigned rule, size_t end);
void moat__leak_x_privkey(struct lk_scan *sc, unsigned rule, size_t end);
void moat__leak_x_aws(struct lk_scan *sc, unsigned rule, size_t end);
void moat__leak_x_vendor(struct lk_scan *sc, unsigned rule, size_t end);
void moat__leak_x_telegram(struct lk_scan *sc, unsigned rule, size_t end);
void moat__leak_x_openai(struct lk_scan *sc, unsigned rule, size_t end);

void moat__leak_x_pan(struct lk_scan *sc, unsigned rule, size_t end);
void moat__leak_x_iban(struct lk_scan *sc, unsigned rule, size_t end);
void moat__leak_x_ssn(struct lk_scan *sc, unsigned rule, size_t end);
void moat__leak_x_ssn9(struct lk_scan *sc, unsigned rule, size_t end);
void moat__leak_x_nino(struct lk_scan *sc, unsigned rule, size_t end);
void moat__leak_x_imei(struct lk_scan *sc, unsigned rule, size_t end);
void moat__leak_x_iccid(struct lk_scan *sc, unsigned rule, size_t end);
void moat__leak_x_vin(struct lk_scan *sc, unsigned rule, size_t end);

void moat__leak_x_geo_pair(struct lk_scan *sc, unsigned rule, size_t end);
void moat__leak_x_nmea(struct lk_scan *sc, unsigned rule, size_t end);
void moat__leak_x_geo_words(struct lk_scan *sc, unsigned rule, size_t end);
void moat__leak_x_geo_hemi(struct lk_scan *sc, unsigned rule, size_t end);
void moat__leak_x_hl7(struct lk_scan *sc, unsigned rule, size_t end);
void moat__leak_x_hl7_seg(struct lk_scan *sc, unsigned rule, size_t end);
void moat__leak_x_fhir(struct lk_scan *sc, unsigned rule, size_t end);
void moat__leak_x_health_unit(struct lk_scan *sc, unsigned rule, size_t end);
void moat__leak_x_health_words(struct lk_scan *sc, unsigned rule, size_t end);
void moat__leak_x_cli_pw(struct lk_scan *sc, unsigned rule, size_t end);
void moat__leak_x_console(struct lk_scan *sc, unsigned rule, size_t end);


/* A geolocation finding for data[s..e) (a coordinate pair). */
void moat__leak_geo_pair_emit(struct lk_scan *sc, size_t s, size_t e,
			      double lat, double lon, bool precise,
			      unsigned conf, uint32_t fl);

/* ---- fields (leak_fields.c) and JSON (leak_json.c) --------------------- */

/* Value kinds of a field. */
enum lk_vtype {
	LV_STRING = 1, /* JSON string: [s, e) inside the quotes */
	LV_NUMBER,     /* JSON number */
	LV_LITERAL,    /* true / false / null */
	LV_TEXT,       /* unquoted text value of a key=value pair */
	LV_QTEXT,      /* quoted text value of a key=value pair */
};

struct lk_field {
	const uint8_t *key;
	size_t klen;
	struct lk_keyinfo ki;
	struct lk_keyinfo parent; /* JSON: class of the key holding the
				   * enclosing container */
	size_t s, e;              /* value */
	enum lk_vtype vt;
	struct lk_frame *obj;     /* JSON: enclosing object frame, or NULL */
	long idx;                 /* JSON array element index, or -1 */
	bool json;                /* a JSON member (path available) */
	bool in_str;              /* text pair inside a JSON string */
};

/* Key class through the scratch's cache. */
struct lk_keyinfo moat__leak_key_class(struct lk_scan *sc, const uint8_t *k,
				       size_t n);
/* Emit a latitude and a longitude field pair (both set) and clear them. */
void moat__leak_geo_fields(struct lk_scan *sc, struct lk_coord *lat,
			   struct lk_coord *lon, bool json);

/* Apply the key-based rules to one field. */
void moat__leak_field(struct lk_scan *sc, const struct lk_field *f);
/* End of a JSON object: pairings and co-occurrence within it. */
void moat__leak_object_end(struct lk_scan *sc, struct lk_frame *fr);
/* End of the message in text mode: pending pairs. */
void moat__leak_text_end(struct lk_scan *sc);
/* key=value and "key: value" pairs in d[lo..hi): text, or the inside of a
 * JSON string (in_str). */
void moat__leak_kv_scan(struct lk_scan *sc, size_t lo, size_t hi,
			bool in_str);
/* CSV rows in d[lo..hi) (text, or the inside of a JSON string): header
 * columns and name,value cells (leak_csv.c). */
void moat__leak_csv_scan(struct lk_scan *sc, size_t lo, size_t hi,
			 bool in_str);
/* MOAT_LEAK_F_JSON_* flags for a field's value. */
uint32_t moat__leak_vflags(const struct lk_field *f);

/* Walk d[0..n) as JSON.  Regex candidates inside values get their path;
 * key=value pairs inside strings are looked at.  Returns the offset where
 * the walk stopped: n when the whole input was consumed (trailing bytes
 * after the top-level value end the walk too). */
size_t moat__leak_json_walk(struct lk_scan *sc);
/* Write the JSON path of the current walker position (with `last` as
 * the innermost member/index when given) into out. */
void moat__leak_json_path(const struct lk_scan *sc, char *out, size_t outsz);

/* A JSON member value d[s..e) (a string's inside, or a number) under a
 * key that names nothing (leak_json.c): a slot when it is of a harmless
 * kind. */
void moat__leak_shape_value(struct lk_scan *sc, size_t s, size_t e,
			    enum lk_vtype vt);

/* Top-level member `key` of the JSON object in p[0..n): its value span
 * (string: inside the quotes) and type.  False when absent or p is not an
 * object.  Small inputs only (JWT headers). */
bool moat__leak_json_get(const uint8_t *p, size_t n, const char *key,
			 size_t *vs, size_t *ve, enum lk_vtype *vt);

#endif
