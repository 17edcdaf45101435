/* The rule table: one Vectorscan pattern per rule, its category and its
 * extractor.  Patterns are anchors, not full matches: Vectorscan reports
 * only where a match ends, so each extractor finds the whole token around
 * that point and validates it in C (THREATS.md 4.2 says where a regex is
 * not enough).  Patterns are written so that one token produces one or
 * few matches: fixed-length anchors, or a boundary class in front that
 * pins the start.  Rules without a pattern are driven by the shape pass
 * (leak_lex.c); key-based rules by the JSON walker and the key=value
 * scanner (leak_json.c, leak_fields.c).  Names in comments are the
 * THREATS.md rule numbers. */
#include "leak/leak_int.h"

#define CASELESS HS_FLAG_CASELESS

static const char *const ctx_twilio[] = {"twilio", NULL};
static const char *const ctx_sas[] = {"sv", "sr", "se", "sp", "skn",
				      "sharedaccesssignature", NULL};

/* Vendor tokens (L12), after gitleaks' default rules where they exist. */
#define V(alen, cs, mn, mx, ent, sev)                                         \
	&(const struct lk_vendor)                                             \
	{                                                                     \
		alen, cs, mn, mx, ent, MOAT_LEAK_SEV_##sev, NULL              \
	}
#define VC(alen, cs, mn, mx, ent, sev, ctx)                                   \
	&(const struct lk_vendor)                                             \
	{                                                                     \
		alen, cs, mn, mx, ent, MOAT_LEAK_SEV_##sev, ctx               \
	}

static const enum lk_hunit hu_bp = HU_BP, hu_mg = HU_GLUCOSE_MG,
			   hu_mmol = HU_GLUCOSE_MMOL, hu_spo2 = HU_SPO2,
			   hu_bpm = HU_BPM;

#define R(pat, fl, cat, fn, par)                                              \
	{                                                                     \
		pat, fl, MOAT_LEAK_##cat, fn, par                             \
	}

const struct lk_rule moat__leak_rules[] = {
	/* Found by the shape pass (leak_lex.c), in enum lk_lex_rule order:
	 * no pattern. */
	R(NULL, 0, PAYMENT_CARD, moat__leak_x_pan, NULL),     /* L14 */
	R(NULL, 0, NATIONAL_ID, moat__leak_x_ssn, NULL),      /* L16 */
	R(NULL, 0, DEVICE_ID, moat__leak_x_imei, NULL),       /* L17 */
	R(NULL, 0, DEVICE_ID, moat__leak_x_iccid, NULL),      /* L17 */
	R(NULL, 0, GEOLOCATION, moat__leak_x_geo_pair, NULL), /* L5 */
	R(NULL, 0, GEOLOCATION, moat__leak_x_geo_hemi, NULL), /* L5 */
	R(NULL, 0, IBAN, moat__leak_x_iban, NULL),            /* L15 */
	R(NULL, 0, NATIONAL_ID, moat__leak_x_nino, NULL),     /* L16 */
	R(NULL, 0, VEHICLE_ID, moat__leak_x_vin, NULL),       /* L22 */
	R(NULL, 0, MAC_ADDRESS, moat__leak_x_mac, NULL),      /* L3 */
	R(NULL, 0, NATIONAL_ID, moat__leak_x_ssn9, NULL),     /* L16 */
	/* L1: only the private prefixes; the extractor parses the whole
	 * dotted token and classifies it. */
	R("(?:10\\.[0-9]{1,3}|127\\.[0-9]{1,3}|172\\.(?:1[6-9]|2[0-9]|3[01])|"
	  "192\\.168|169\\.254|100\\.(?:6[4-9]|[7-9][0-9]|1[01][0-9]|12[0-7]))"
	  "\\.[0-9]{1,3}\\.[0-9]{1,3}",
	  0, PRIVATE_IPV4, moat__leak_x_ipv4, NULL),
	/* L2: ULA fc00::/7, link-local fe80::/10, site-local fec0::/10,
	 * loopback, IPv4-mapped. */
	R("f[c-e][0-9a-f]{2}:", CASELESS, PRIVATE_IPV6, moat__leak_x_ipv6,
	  NULL),
	R("::1", 0, PRIVATE_IPV6, moat__leak_x_ipv6, NULL),
	R("::ffff:[0-9]", CASELESS, PRIVATE_IPV6, moat__leak_x_ipv6, NULL),
	/* L3 */
	/* L4 */
	R("[A-Za-z0-9._%+-]@[A-Za-z0-9]", 0, EMAIL, moat__leak_x_email, NULL),
	/* L5 */
	R("\\$(?:GP|GN|GL|GA|GB|BD|GQ)(?:GGA|RMC|GLL|GNS),", 0, GEOLOCATION,
	  moat__leak_x_nmea, NULL),
	R("[0-9](?:\\xc2[\\xb0\\xba]|\\\\u00[bB][0aA])", 0, GEOLOCATION,
	  moat__leak_x_geo_hemi, NULL),
	/* L6: passwords on command lines (--password x, mosquitto's -P x) */
	R("(?:--pass(?:word)?|--pw)[ =]", 0, CREDENTIAL, moat__leak_x_cli_pw,
	  NULL),
	R("-P ", 0, CREDENTIAL, moat__leak_x_cli_pw, NULL),
	/* device console commands (Tasmota) */
	R("(?:mqtt|web)password ", CASELESS, CREDENTIAL, moat__leak_x_console,
	  NULL),
	/* L7 */
	R("basic\\s{1,4}[A-Za-z0-9+/]{8}", CASELESS, HTTP_AUTH,
	  moat__leak_x_basic, NULL),
	R("bearer\\s{1,4}[A-Za-z0-9._~+/-]{16}", CASELESS, HTTP_AUTH,
	  moat__leak_x_bearer, NULL),
	/* L8 */
	R("ey[A-Za-z0-9_-]{10,}\\.ey[A-Za-z0-9_-]", 0, JWT, moat__leak_x_jwt,
	  NULL),
	/* JWE: a header naming "alg" or "enc" first, 5 segments */
	R("eyJ(?:hbGciOi|lbmMiOi)[A-Za-z0-9_-]{8,}\\.", 0, JWT,
	  moat__leak_x_jwe, NULL),
	/* L9 */
	R("-----BEGIN[ A-Z0-9_-]{0,100}PRIVATE KEY(?: BLOCK)?-----", 0,
	  PRIVATE_KEY, moat__leak_x_privkey, NULL),
	/* L10 */
	R("[A-Za-z0-9]://", 0, URL_CREDENTIALS, moat__leak_x_url, NULL),
	/* L11 */
	R("(?:A3T[A-Z0-9]|AKIA|ASIA|ABIA|ACCA)[A-Z2-7]{16}", 0, AWS_KEY,
	  moat__leak_x_aws, NULL),
	/* AWS STS session tokens */
	R("IQoJb3JpZ2luX2Vj[A-Za-z0-9+/]{4}", 0, AWS_KEY, moat__leak_x_vendor,
	  V(20, LK_CS_B64_ANY, 100, 2000, 40, CRITICAL)),
	R("FwoGZXIvYXdz[A-Za-z0-9+/]{8}", 0, AWS_KEY, moat__leak_x_vendor,
	  V(20, LK_CS_B64_ANY, 100, 2000, 40, CRITICAL)),
	/* L12 */
	R("gh[pousr]_[0-9A-Za-z]{36}", 0, VENDOR_TOKEN, moat__leak_x_vendor,
	  V(40, LK_CS_ALNUM, 40, 40, 30, CRITICAL)),
	R("github_pat_[0-9A-Za-z_]{82}", 0, VENDOR_TOKEN, moat__leak_x_vendor,
	  V(93, LK_CS_ALNUM_US, 93, 93, 30, CRITICAL)),
	R("glpat-[0-9A-Za-z_-]{20}", 0, VENDOR_TOKEN, moat__leak_x_vendor,
	  V(26, LK_CS_B64URL, 26, 80, 30, CRITICAL)),
	R("xox[abeoprs]-[0-9A-Za-z]{8}", 0, VENDOR_TOKEN, moat__leak_x_vendor,
	  V(13, LK_CS_SLACK, 24, 255, 30, HIGH)),
	R("hooks\\.slack\\.com/(?:services|workflows|triggers)/", 0,
	  VENDOR_TOKEN, moat__leak_x_vendor,
	  V(0, LK_CS_B64_ANY, 20, 120, 30, HIGH)),
	R("[rs]k_(?:test|live|prod)_[0-9A-Za-z]{10}", 0, VENDOR_TOKEN,
	  moat__leak_x_vendor, V(18, LK_CS_ALNUM, 18, 107, 30, CRITICAL)),
	R("whsec_[0-9A-Za-z]{32}", 0, VENDOR_TOKEN, moat__leak_x_vendor,
	  V(38, LK_CS_ALNUM, 38, 38, 30, HIGH)),
	R("AIza[0-9A-Za-z_-]{35}", 0, VENDOR_TOKEN, moat__leak_x_vendor,
	  V(39, LK_CS_B64URL, 39, 39, 30, HIGH)),
	R("SG\\.[0-9A-Za-z_-]{22}\\.[0-9A-Za-z_-]{43}", 0, VENDOR_TOKEN,
	  moat__leak_x_vendor, V(69, LK_CS_SENDGRID, 69, 69, 30, HIGH)),
	R("SK[0-9a-fA-F]{32}", 0, VENDOR_TOKEN, moat__leak_x_vendor,
	  VC(34, LK_CS_HEX, 34, 34, 30, HIGH, ctx_twilio)),
	R("[A-Za-z0-9_~.]{3}[0-9]Q~", 0, VENDOR_TOKEN, moat__leak_x_vendor,
	  V(6, LK_CS_AZURE, 37, 40, 30, HIGH)),
	R("(?:AccountKey|SharedAccessKey)=[A-Za-z0-9+/]", CASELESS,
	  VENDOR_TOKEN, moat__leak_x_vendor,
	  V(1, LK_CS_B64_ANY, 40, 100, 35, CRITICAL)),
	R("sig=[A-Za-z0-9%+/]", CASELESS, VENDOR_TOKEN, moat__leak_x_vendor,
	  VC(1, LK_CS_B64_ANY, 40, 120, 30, HIGH, ctx_sas)),
	R("ya29\\.[0-9A-Za-z_-]{20}", 0, VENDOR_TOKEN, moat__leak_x_vendor,
	  V(25, LK_CS_B64URL, 40, 2048, 35, HIGH)), /* Google OAuth */
	R("npm_[0-9A-Za-z]{36}", 0, VENDOR_TOKEN, moat__leak_x_vendor,
	  V(40, LK_CS_ALNUM, 40, 40, 30, HIGH)),
	R("pypi-AgEIcHlwaS5vcmc[0-9A-Za-z_-]{16}", 0, VENDOR_TOKEN,
	  moat__leak_x_vendor, V(36, LK_CS_B64URL, 70, 400, 30, HIGH)),
	R("sk-(?:proj|svcacct|admin)-[0-9A-Za-z_-]{20}", 0, VENDOR_TOKEN,
	  moat__leak_x_openai, NULL),
	R("T3BlbkFJ", 0, VENDOR_TOKEN, moat__leak_x_openai, NULL),
	R("sk-ant-(?:api|admin)[0-9]{2}-[0-9A-Za-z_-]{20}", 0, VENDOR_TOKEN,
	  moat__leak_x_openai, NULL),
	R("shp(?:at|ca|pa|ss)_[0-9a-fA-F]{32}", 0, VENDOR_TOKEN,
	  moat__leak_x_vendor, V(38, LK_CS_HEX, 38, 38, 30, CRITICAL)),
	R("do[opr]_v1_[0-9a-f]{64}", 0, VENDOR_TOKEN, moat__leak_x_vendor,
	  V(71, LK_CS_LHEX, 71, 71, 30, CRITICAL)),
	R("hv[sb]\\.[0-9A-Za-z_-]{24}", 0, VENDOR_TOKEN, moat__leak_x_vendor,
	  V(28, LK_CS_B64URL, 28, 200, 30, CRITICAL)),
	R("hf_[A-Za-z]{34}", 0, VENDOR_TOKEN, moat__leak_x_vendor,
	  V(37, LK_CS_ALPHA, 37, 37, 30, HIGH)),
	R("dapi[0-9a-f]{32}", 0, VENDOR_TOKEN, moat__leak_x_vendor,
	  V(36, LK_CS_LHEX, 36, 36, 30, HIGH)),
	R("PMAK-[0-9a-f]{24}-[0-9a-f]{34}", 0, VENDOR_TOKEN,
	  moat__leak_x_vendor, V(64, LK_CS_LHEX, 64, 64, 30, HIGH)),
	R("AAAA[0-9A-Za-z_-]{7}:[0-9A-Za-z_-]{140}", 0, VENDOR_TOKEN,
	  moat__leak_x_vendor, V(152, LK_CS_B64URL, 152, 400, 30, HIGH)),
	R("glsa_[0-9A-Za-z]{32}_[0-9A-Fa-f]{8}", 0, VENDOR_TOKEN,
	  moat__leak_x_vendor, V(46, LK_CS_HEX, 46, 46, 30, HIGH)),
	R("glc_[0-9A-Za-z+/]{32}", 0, VENDOR_TOKEN, moat__leak_x_vendor,
	  V(36, LK_CS_B64_ANY, 36, 400, 30, HIGH)),
	R("dckr_pat_[0-9A-Za-z_-]{27}", 0, VENDOR_TOKEN, moat__leak_x_vendor,
	  V(36, LK_CS_B64URL, 36, 36, 30, HIGH)),
	R("NRAK-[0-9A-Z]{27}", 0, VENDOR_TOKEN, moat__leak_x_vendor,
	  V(32, LK_CS_ALNUM, 32, 32, 30, HIGH)),
	R("sq0atp-[0-9A-Za-z_-]{22}", 0, VENDOR_TOKEN, moat__leak_x_vendor,
	  V(29, LK_CS_B64URL, 29, 29, 30, CRITICAL)),
	R("sq0csp-[0-9A-Za-z_-]{43}", 0, VENDOR_TOKEN, moat__leak_x_vendor,
	  V(50, LK_CS_B64URL, 50, 50, 30, CRITICAL)),
	R("lin_api_[0-9A-Za-z]{40}", 0, VENDOR_TOKEN, moat__leak_x_vendor,
	  V(48, LK_CS_ALNUM, 48, 48, 30, HIGH)),
	R("ATATT3[0-9A-Za-z_=-]{40}", 0, VENDOR_TOKEN, moat__leak_x_vendor,
	  V(46, LK_CS_B64_ANY, 46, 400, 30, HIGH)),
	R("sntryu_[0-9a-f]{64}", 0, VENDOR_TOKEN, moat__leak_x_vendor,
	  V(71, LK_CS_LHEX, 71, 71, 30, HIGH)),
	R("sbp_[0-9a-f]{40}", 0, VENDOR_TOKEN, moat__leak_x_vendor,
	  V(44, LK_CS_LHEX, 44, 44, 30, HIGH)),
	R("dp\\.pt\\.[0-9A-Za-z]{43}", 0, VENDOR_TOKEN, moat__leak_x_vendor,
	  V(49, LK_CS_ALNUM, 49, 49, 30, HIGH)),
	R("pul-[0-9a-f]{40}", 0, VENDOR_TOKEN, moat__leak_x_vendor,
	  V(44, LK_CS_LHEX, 44, 44, 30, HIGH)),
	R("aio_[0-9A-Za-z]{28}", 0, VENDOR_TOKEN, moat__leak_x_vendor,
	  V(32, LK_CS_ALNUM, 32, 32, 30, HIGH)),
	R("key-[0-9a-f]{32}", 0, VENDOR_TOKEN, moat__leak_x_vendor,
	  V(36, LK_CS_LHEX, 36, 36, 30, HIGH)),
	R("[0-9a-f]{32}-us[0-9]", 0, VENDOR_TOKEN, moat__leak_x_vendor,
	  V(36, LK_CS_DIGIT, 36, 37, 30, HIGH)),
	R("discord(?:app)?\\.com/api/webhooks/[0-9]{5}", 0, VENDOR_TOKEN,
	  moat__leak_x_vendor, V(5, LK_CS_B64_ANY, 60, 140, 30, HIGH)),
	R("[0-9]{8,10}:AA[0-9A-Za-z_-]{33}", 0, VENDOR_TOKEN,
	  moat__leak_x_telegram, NULL),
	/* L18 */
	R("MSH\\|\\^~\\\\(?:\\\\)?&", 0, HEALTH, moat__leak_x_hl7, NULL),
	R("(?:PID|OBX)\\|[0-9]{0,4}\\|", 0, HEALTH, moat__leak_x_hl7_seg, NULL),
	R("\"resourceType\"\\s{0,4}:\\s{0,4}\"(?:Patient|Observation|Condition|"
	  "MedicationRequest|MedicationStatement|Encounter|DiagnosticReport|"
	  "Procedure|AllergyIntolerance|Immunization|CarePlan)\"",
	  0, HEALTH, moat__leak_x_fhir, NULL),
	R("[0-9]{2,3}\\s?/\\s?[0-9]{2,3}\\s?mm\\s?hg", CASELESS, HEALTH,
	  moat__leak_x_health_unit, &hu_bp),
	R("[0-9]{2,3}(?:\\.[0-9])?\\s?mg/dl", CASELESS, HEALTH,
	  moat__leak_x_health_unit, &hu_mg),
	R("[0-9]{1,2}(?:\\.[0-9])?\\s?mmol/l", CASELESS, HEALTH,
	  moat__leak_x_health_unit, &hu_mmol),
	R("(?:heart rate|heartrate|pulse|blood pressure|bloodpressure|bp|spo2|"
	  "glucose|blood sugar|bloodsugar|respiratory rate|resp rate|"
	  "body temp|bodytemp|body temperature)[ :=]{1,3}[0-9]{2}",
	  CASELESS, HEALTH, moat__leak_x_health_words, NULL),
	R("spo2\\W{0,3}[0-9]{2,3}\\s?%", CASELESS, HEALTH,
	  moat__leak_x_health_unit, &hu_spo2),
	R("[0-9]{2,3}\\s?bpm", CASELESS, HEALTH, moat__leak_x_health_unit,
	  &hu_bpm),
	/* L20 */
	R("[a-z0-9]\\.(?:local|lan|internal|intranet|corp|home\\.arpa|"
	  "localdomain)",
	  CASELESS, INTERNAL_HOSTNAME, moat__leak_x_host, NULL),
	R("\\\\\\\\[A-Za-z0-9_.$-]{1,63}\\\\", 0, INTERNAL_HOSTNAME,
	  moat__leak_x_unc, NULL),
	R("[a-z]:(?:\\\\){1,2}users(?:\\\\){1,2}[a-z0-9]", CASELESS,
	  INTERNAL_HOSTNAME, moat__leak_x_winuser, NULL),
	/* L21: Tasmota's Wi-Fi passwords (Password1 ...) */
	R("password[1-4] ", CASELESS, WIFI_CREDENTIALS, moat__leak_x_console,
	  NULL),
	/* L21: Wi-Fi QR codes */
	R("WIFI:[STPH]:", 0, WIFI_CREDENTIALS, moat__leak_x_wifi_qr, NULL),
	/* "lat 45.4642 lon 9.1900": coordinates named by words */
	R("lat(?:itude)?\\s{1,3}-?[0-9]{1,2}\\.[0-9]{3}", CASELESS, GEOLOCATION,
	  moat__leak_x_geo_words, NULL),
};

const size_t moat__leak_rule_count = MOAT_ARRAY_LEN(moat__leak_rules);

_Static_assert(MOAT_ARRAY_LEN(moat__leak_rules) <= LEAK_RULES_MAX,
	       "LEAK_RULES_MAX too small");
