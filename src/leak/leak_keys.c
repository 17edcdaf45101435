/* Key classification: what a JSON member name or the key of a key=value
 * pair says about its value.
 *
 * A key is split into lower-case words at separators (_ - . space /)
 * and camelCase boundaries: "wifiPassword" -> wifi password,
 * "APIKey" -> api key, "bp_sys" -> bp sys.  Its kind comes from the
 * longest of the last three, two or one words (joined) found in the word
 * table: "db_password" is a password because its last word is, while
 * "password_hash" and "token_type" are not, and "email_address" is
 * explicitly nothing (not a postal address).  Flags come from every word:
 * a word naming a secret (generic_secret may apply), a veto word (hash,
 * public, ...), a version word (dotted numbers are not addresses). */
#include <assert.h>
#include <pthread.h>
#include <string.h>

#include "leak/leak_int.h"

#define W_SUFFIX 0x01u  /* usable as the (compound) last word */
#define W_SECRET 0x02u  /* any word: names a secret */
#define W_VETO 0x04u    /* any word: not a secret (hash, public, ...) */
#define W_VETO_LAST 0x08u /* last word only: not a secret (id, type) */
#define W_VERSION 0x10u /* any word: version / firmware */
#define W_E7 0x20u

struct kword {
	const char *w;
	uint8_t kind, sub, wflags;
};

#define S(w, k, s) {w, k, s, W_SUFFIX}
#define SS(w, k, s) {w, k, s, W_SUFFIX | W_SECRET}
#define F(w, f) {w, KK_NONE, 0, f}

static const struct kword table[] = {
	/* credentials (L6) */
	SS("password", KK_CRED, KC_PASSWORD),
	SS("passwd", KK_CRED, KC_PASSWORD),
	SS("pwd", KK_CRED, KC_PASSWORD),
	SS("passphrase", KK_CRED, KC_PASSWORD),
	SS("passcode", KK_CRED, KC_PASSWORD),
	SS("pass", KK_CRED, KC_PASS),
	SS("pw", KK_CRED, KC_PASS),
	S("pin", KK_CRED, KC_PIN),
	S("pincode", KK_CRED, KC_PIN),
	S("simpin", KK_CRED, KC_PIN),
	SS("auth", KK_CRED, KC_AUTH),
	SS("authorization", KK_CRED, KC_AUTH),
	SS("authorisation", KK_CRED, KC_AUTH),
	SS("secret", KK_CRED, KC_SECRET),
	SS("token", KK_CRED, KC_SECRET),
	SS("apikey", KK_CRED, KC_SECRET),
	SS("apitoken", KK_CRED, KC_SECRET),
	SS("apisecret", KK_CRED, KC_SECRET),
	SS("privatekey", KK_CRED, KC_SECRET),
	SS("privkey", KK_CRED, KC_SECRET),
	SS("credential", KK_CRED, KC_SECRET),
	SS("credentials", KK_CRED, KC_SECRET),
	SS("creds", KK_CRED, KC_SECRET),
	SS("psk", KK_CRED, KC_PSK),
	SS("wpakey", KK_CRED, KC_PSK),
	SS("wpapsk", KK_CRED, KC_PSK),
	SS("wpa2key", KK_CRED, KC_PSK),
	SS("wpa2psk", KK_CRED, KC_PSK),
	SS("wpapassphrase", KK_CRED, KC_PSK),
	SS("wifipassword", KK_CRED, KC_PSK),
	SS("wifipass", KK_CRED, KC_PSK),
	SS("wifikey", KK_CRED, KC_PSK),
	SS("wifipsk", KK_CRED, KC_PSK),
	SS("wlanpassword", KK_CRED, KC_PSK),
	SS("wlankey", KK_CRED, KC_PSK),
	SS("networkkey", KK_CRED, KC_PSK),
	/* cryptographic keys (secretKey, encryption_key, LoRaWAN AppKey...)
	 * are not listed: "key" as the last word makes them generic_secret
	 * candidates, reported when the value looks random */
	SS("awssecretaccesskey", KK_AWS_SECRET, 0),
	SS("secretaccesskey", KK_AWS_SECRET, 0),
	SS("awssecretkey", KK_AWS_SECRET, 0),
	SS("awssecret", KK_AWS_SECRET, 0),
	/* words for generic_secret and vetoes */
	F("hash", W_VETO | W_SUFFIX),
	F("hashed", W_VETO),
	F("checksum", W_VETO | W_SUFFIX),
	F("crc", W_VETO),
	F("digest", W_VETO | W_SUFFIX),
	F("sha", W_VETO),
	F("sha1", W_VETO),
	F("sha256", W_VETO),
	F("sha512", W_VETO),
	F("md5", W_VETO),
	F("etag", W_VETO),
	F("fingerprint", W_VETO),
	F("thumbprint", W_VETO),
	F("public", W_VETO),
	F("pub", W_VETO),
	F("publickey", W_VETO | W_SUFFIX),
	F("page", W_VETO),
	F("next", W_VETO),
	F("continuation", W_VETO),
	F("cursor", W_VETO),
	F("pagination", W_VETO),
	F("id", W_VETO_LAST | W_SUFFIX),
	F("ids", W_VETO_LAST | W_SUFFIX),
	F("type", W_VETO_LAST | W_SUFFIX),
	F("kind", W_VETO_LAST | W_SUFFIX),
	F("url", W_VETO_LAST | W_SUFFIX),
	F("uri", W_VETO_LAST | W_SUFFIX),
	F("endpoint", W_VETO_LAST | W_SUFFIX),
	F("path", W_VETO_LAST | W_SUFFIX),
	F("file", W_VETO_LAST | W_SUFFIX),
	F("count", W_VETO_LAST | W_SUFFIX),
	F("len", W_VETO_LAST | W_SUFFIX),
	F("length", W_VETO_LAST | W_SUFFIX),
	F("size", W_VETO_LAST | W_SUFFIX),
	F("enabled", W_VETO_LAST | W_SUFFIX),
	F("required", W_VETO_LAST | W_SUFFIX),
	F("hint", W_VETO_LAST | W_SUFFIX),
	F("policy", W_VETO_LAST | W_SUFFIX),
	F("format", W_VETO_LAST | W_SUFFIX),
	F("algorithm", W_VETO_LAST | W_SUFFIX),
	F("alg", W_VETO_LAST | W_SUFFIX),
	F("mode", W_VETO_LAST | W_SUFFIX),
	F("method", W_VETO_LAST | W_SUFFIX),
	F("scheme", W_VETO_LAST | W_SUFFIX),
	F("scope", W_VETO_LAST | W_SUFFIX),
	F("status", W_VETO_LAST | W_SUFFIX),
	F("state", W_VETO_LAST | W_SUFFIX),
	F("time", W_VETO_LAST | W_SUFFIX),
	F("timestamp", W_VETO_LAST | W_SUFFIX),
	F("date", W_VETO_LAST | W_SUFFIX),
	F("at", W_VETO_LAST | W_SUFFIX),
	F("expiry", W_VETO_LAST | W_SUFFIX),
	F("expires", W_VETO_LAST | W_SUFFIX),
	F("exp", W_VETO_LAST | W_SUFFIX),
	F("ttl", W_VETO_LAST | W_SUFFIX),
	F("index", W_VETO_LAST | W_SUFFIX),
	F("issuer", W_VETO_LAST | W_SUFFIX),
	F("prefix", W_VETO_LAST | W_SUFFIX),
	F("set", W_VETO_LAST | W_SUFFIX),
	F("changed", W_VETO_LAST | W_SUFFIX),
	F("version", W_VETO_LAST | W_VERSION | W_SUFFIX),
	F("ver", W_VERSION),
	F("fw", W_VERSION),
	F("firmware", W_VERSION),
	F("sw", W_VERSION),
	F("software", W_VERSION),
	F("release", W_VERSION),
	F("build", W_VERSION),
	F("rev", W_VERSION),
	F("revision", W_VERSION),
	F("os", W_VERSION),
	F("oid", W_VERSION),
	F("snmp", W_VERSION),
	F("key", W_SECRET), /* only as the last word, see classify() */
	F("signature", W_VETO),
	F("sig", W_VETO),
	/* geolocation (L5) */
	S("lat", KK_LAT, 0),
	S("latitude", KK_LAT, 0),
	S("latdeg", KK_LAT, 0),
	S("latitudedeg", KK_LAT, 0),
	{"latitudee7", KK_LAT, 0, W_SUFFIX | W_E7},
	{"late7", KK_LAT, 0, W_SUFFIX | W_E7},
	S("lon", KK_LON, 0),
	S("lng", KK_LON, 0),
	S("long", KK_LON, 0),
	S("longitude", KK_LON, 0),
	S("londeg", KK_LON, 0),
	S("lngdeg", KK_LON, 0),
	S("longitudedeg", KK_LON, 0),
	{"longitudee7", KK_LON, 0, W_SUFFIX | W_E7},
	{"lnge7", KK_LON, 0, W_SUFFIX | W_E7},
	{"lone7", KK_LON, 0, W_SUFFIX | W_E7},
	S("coordinates", KK_GEO, 0),
	S("coords", KK_GEO, 0),
	S("coord", KK_GEO, 0),
	S("position", KK_GEO, 0),
	S("pos", KK_GEO, 0),
	S("location", KK_GEO, 0),
	S("loc", KK_GEO, 0),
	S("gps", KK_GEO, 0),
	S("geo", KK_GEO, 0),
	S("latlng", KK_GEO, 0),
	S("latlon", KK_GEO, 0),
	S("latlong", KK_GEO, 0),
	S("lnglat", KK_GEO, 0),
	S("lonlat", KK_GEO, 0),
	S("geolocation", KK_GEO, 0),
	S("geopoint", KK_GEO, 0),
	S("waypoint", KK_GEO, 0),
	S("fix", KK_GEO, 0),
	/* health (L18) */
	S("heartrate", KK_HEALTH, KH_HR),
	S("pulserate", KK_HEALTH, KH_HR),
	S("bpm", KK_HEALTH, KH_HR),
	S("pulse", KK_HEALTH, KH_HR),
	S("hr", KK_HEALTH, KH_HR_AMBIG),
	S("hrbpm", KK_HEALTH, KH_HR),
	S("spo2", KK_HEALTH, KH_SPO2),
	S("oxygensaturation", KK_HEALTH, KH_SPO2),
	S("oxygensat", KK_HEALTH, KH_SPO2),
	S("o2sat", KK_HEALTH, KH_SPO2),
	S("bloodoxygen", KK_HEALTH, KH_SPO2),
	S("bloodpressure", KK_HEALTH, KH_BP),
	S("bp", KK_HEALTH, KH_BP),
	S("bpsys", KK_HEALTH, KH_SYS),
	S("bpsystolic", KK_HEALTH, KH_SYS),
	S("systolic", KK_HEALTH, KH_SYS),
	S("bpdia", KK_HEALTH, KH_DIA),
	S("bpdiastolic", KK_HEALTH, KH_DIA),
	S("diastolic", KK_HEALTH, KH_DIA),
	S("glucose", KK_HEALTH, KH_GLUCOSE),
	S("bloodglucose", KK_HEALTH, KH_GLUCOSE),
	S("bloodsugar", KK_HEALTH, KH_GLUCOSE),
	S("resprate", KK_HEALTH, KH_RESP),
	S("respiratoryrate", KK_HEALTH, KH_RESP),
	S("respirationrate", KK_HEALTH, KH_RESP),
	S("breathingrate", KK_HEALTH, KH_RESP),
	S("bodytemp", KK_HEALTH, KH_TEMP),
	S("bodytemperature", KK_HEALTH, KH_TEMP),
	S("skintemp", KK_HEALTH, KH_TEMP),
	S("skintemperature", KK_HEALTH, KH_TEMP),
	S("ecg", KK_HEALTH, KH_WAVE),
	S("ekg", KK_HEALTH, KH_WAVE),
	/* person (L19) */
	S("firstname", KK_PERSON, KP_NAME),
	S("lastname", KK_PERSON, KP_NAME),
	S("fullname", KK_PERSON, KP_NAME),
	S("givenname", KK_PERSON, KP_NAME),
	S("familyname", KK_PERSON, KP_NAME),
	S("middlename", KK_PERSON, KP_NAME),
	S("surname", KK_PERSON, KP_NAME),
	S("realname", KK_PERSON, KP_NAME),
	S("personname", KK_PERSON, KP_NAME),
	S("patientname", KK_PERSON, KP_NAME),
	S("drivername", KK_PERSON, KP_NAME),
	S("ownername", KK_PERSON, KP_NAME),
	S("contactname", KK_PERSON, KP_NAME),
	S("customername", KK_PERSON, KP_NAME),
	S("patient", KK_PERSON, KP_OWNER),
	S("driver", KK_PERSON, KP_OWNER),
	S("owner", KK_PERSON, KP_OWNER),
	S("user", KK_PERSON, KP_USER),
	S("username", KK_PERSON, KP_USER),
	S("login", KK_PERSON, KP_USER),
	S("patientid", KK_PERSON, KP_ID),
	S("patientno", KK_PERSON, KP_ID),
	S("patientnumber", KK_PERSON, KP_ID),
	S("mrn", KK_PERSON, KP_ID),
	S("dob", KK_PERSON, KP_DOB),
	S("birthdate", KK_PERSON, KP_DOB),
	S("dateofbirth", KK_PERSON, KP_DOB),
	S("birthday", KK_PERSON, KP_DOB),
	S("address", KK_PERSON, KP_ADDRESS),
	S("street", KK_PERSON, KP_ADDRESS),
	S("streetaddress", KK_PERSON, KP_ADDRESS),
	S("zip", KK_PERSON, KP_ZIP),
	S("zipcode", KK_PERSON, KP_ZIP),
	S("postcode", KK_PERSON, KP_ZIP),
	S("postalcode", KK_PERSON, KP_ZIP),
	S("phone", KK_PERSON, KP_PHONE),
	S("phonenumber", KK_PERSON, KP_PHONE),
	S("phoneno", KK_PERSON, KP_PHONE),
	S("mobile", KK_PERSON, KP_PHONE),
	S("mobilenumber", KK_PERSON, KP_PHONE),
	S("msisdn", KK_PERSON, KP_PHONE),
	S("tel", KK_PERSON, KP_PHONE),
	S("telephone", KK_PERSON, KP_PHONE),
	S("cellphone", KK_PERSON, KP_PHONE),
	S("contactnumber", KK_PERSON, KP_PHONE),
	S("customer", KK_PERSON_OF, 0),
	S("passenger", KK_PERSON_OF, 0),
	S("occupant", KK_PERSON_OF, 0),
	S("resident", KK_PERSON_OF, 0),
	S("member", KK_PERSON_OF, 0),
	S("employee", KK_PERSON_OF, 0),
	S("person", KK_PERSON_OF, 0),
	S("contact", KK_PERSON_OF, 0),
	S("subscriber", KK_PERSON_OF, 0),
	S("caregiver", KK_PERSON_OF, 0),
	{"name", KK_HUMAN_NAME_PART, 1, W_SUFFIX | W_VETO_LAST},
	S("family", KK_HUMAN_NAME_PART, 2),
	S("given", KK_HUMAN_NAME_PART, 2),
	/* not a person's address */
	S("emailaddress", KK_NONE, 0),
	S("ipaddress", KK_NONE, 0),
	S("ipaddr", KK_NONE, 0),
	S("serveraddress", KK_NONE, 0),
	S("brokeraddress", KK_NONE, 0),
	S("bleaddress", KK_NONE, 0),
	S("btaddress", KK_NONE, 0),
	S("deviceaddress", KK_NONE, 0),
	S("registeraddress", KK_NONE, 0),
	S("slaveaddress", KK_NONE, 0),
	S("walletaddress", KK_NONE, 0),
	S("devicename", KK_NONE, 0),
	S("hostname", KK_HOST, 0),
	S("fqdn", KK_HOST, 0),
	S("computername", KK_HOST, 0),
	S("machinename", KK_HOST, 0),
	/* device and subscriber identifiers (L17) */
	S("imei", KK_DEVICE, KD_IMEI),
	S("imeisv", KK_DEVICE, KD_IMEISV),
	S("iccid", KK_DEVICE, KD_ICCID),
	S("simiccid", KK_DEVICE, KD_ICCID),
	S("imsi", KK_DEVICE, KD_IMSI),
	S("meid", KK_DEVICE, KD_MEID),
	S("androidid", KK_DEVICE, KD_ANDROID_ID),
	S("advertisingid", KK_DEVICE, KD_AD_ID),
	S("adid", KK_DEVICE, KD_AD_ID),
	S("idfa", KK_DEVICE, KD_AD_ID),
	S("gaid", KK_DEVICE, KD_AD_ID),
	S("aaid", KK_DEVICE, KD_AD_ID),
	S("deveui", KK_DEVICE, KD_EUI),
	S("eui", KK_DEVICE, KD_EUI),
	S("eui64", KK_DEVICE, KD_EUI),
	/* national identifiers (L16) */
	S("ssn", KK_NATID, KN_SSN),
	S("socialsecurity", KK_NATID, KN_SSN),
	S("socialsecuritynumber", KK_NATID, KN_SSN),
	S("socialsecurityno", KK_NATID, KN_SSN),
	S("nationalid", KK_NATID, KN_GENERIC),
	S("nationalidnumber", KK_NATID, KN_GENERIC),
	S("citizenid", KK_NATID, KN_GENERIC),
	S("idcardnumber", KK_NATID, KN_GENERIC),
	S("idnumber", KK_NATID, KN_GENERIC),
	S("personnummer", KK_NATID, KN_GENERIC),
	S("taxid", KK_NATID, KN_GENERIC),
	S("nin", KK_NATID, KN_NINO),
	S("nino", KK_NATID, KN_NINO),
	S("nationalinsurance", KK_NATID, KN_NINO),
	S("nationalinsurancenumber", KK_NATID, KN_NINO),
	S("ninumber", KK_NATID, KN_NINO),
	S("dni", KK_NATID, KN_DNI),
	S("nie", KK_NATID, KN_DNI),
	S("aadhaar", KK_NATID, KN_AADHAAR),
	S("aadhar", KK_NATID, KN_AADHAAR),
	S("aadhaarnumber", KK_NATID, KN_AADHAAR),
	S("sin", KK_NATID, KN_SIN),
	S("socialinsurancenumber", KK_NATID, KN_SIN),
	S("bsn", KK_NATID, KN_BSN),
	S("passport", KK_NATID, KN_PASSPORT),
	S("passportnumber", KK_NATID, KN_PASSPORT),
	S("passportno", KK_NATID, KN_PASSPORT),
	S("driverlicense", KK_NATID, KN_PASSPORT),
	S("driverslicense", KK_NATID, KN_PASSPORT),
	S("driverlicence", KK_NATID, KN_PASSPORT),
	S("drivinglicence", KK_NATID, KN_PASSPORT),
	S("drivinglicense", KK_NATID, KN_PASSPORT),
	/* vehicles (L22), MAC (L3), Wi-Fi (L21) */
	S("vin", KK_VIN, 0),
	S("vinnumber", KK_VIN, 0),
	S("vehicleidentificationnumber", KK_VIN, 0),
	S("chassisnumber", KK_VIN, 0),
	S("mac", KK_MAC, 0),
	S("macaddress", KK_MAC, 0),
	S("macaddr", KK_MAC, 0),
	S("hwaddr", KK_MAC, 0),
	S("hwaddress", KK_MAC, 0),
	S("bssid", KK_MAC, 0),
	S("ethaddr", KK_MAC, 0),
	S("ssid", KK_SSID, 0),
	S("essid", KK_SSID, 0),
	S("wifissid", KK_SSID, 0),
	S("wlanssid", KK_SSID, 0),
	S("networkname", KK_SSID, 0),
};

#undef S
#undef SS
#undef F

/* Open-addressing index over table[], built once. */
#define HSLOTS 1024u
static uint16_t slots[HSLOTS]; /* table index + 1; 0 = empty */
static pthread_once_t once = PTHREAD_ONCE_INIT;

static uint32_t hash(const char *s, size_t n)
{
	uint32_t h = 2166136261u;
	for (size_t i = 0; i < n; i++) {
		h ^= (uint8_t)s[i];
		h *= 16777619u;
	}
	return h;
}

static void build_index(void)
{
	for (size_t i = 0; i < MOAT_ARRAY_LEN(table); i++) {
		const char *w = table[i].w;
		uint32_t h = hash(w, strlen(w)) & (HSLOTS - 1);
		while (slots[h]) {
			assert(strcmp(table[slots[h] - 1].w, w) != 0);
			h = (h + 1) & (HSLOTS - 1);
		}
		slots[h] = (uint16_t)(i + 1);
	}
}

static const struct kword *lookup(const char *s, size_t n)
{
	uint32_t h = hash(s, n) & (HSLOTS - 1);
	while (slots[h]) {
		const struct kword *k = &table[slots[h] - 1];
		if (strlen(k->w) == n && memcmp(k->w, s, n) == 0)
			return k;
		h = (h + 1) & (HSLOTS - 1);
	}
	return NULL;
}

void moat__leak_keys_init(void);
void moat__leak_keys_init(void)
{
	pthread_once(&once, build_index);
}

#define KMAX 64
#define WMAX 16

struct words {
	char buf[KMAX];
	uint8_t start[WMAX + 1]; /* start[i]..start[i+1] is word i */
	unsigned n;
};

static bool boundary(const uint8_t *k, size_t len, size_t i)
{
	uint8_t c = k[i], p = k[i - 1];
	if (lk_upper(c) && lk_lower(p))
		return true; /* fooBar */
	if (lk_upper(c) && lk_upper(p) && i + 1 < len && lk_lower(k[i + 1]))
		return true; /* APIKey */
	return false;
}

static void split(const uint8_t *k, size_t len, struct words *w)
{
	/* Only the last KMAX bytes matter (the kind comes from the end). */
	size_t from = len > KMAX ? len - KMAX : 0;
	size_t o = 0;
	bool in_word = false;
	w->n = 0;
	for (size_t i = from; i < len; i++) {
		uint8_t c = k[i];
		if (!lk_alnum(c)) {
			in_word = false;
			continue;
		}
		bool start = !in_word || (i > from && boundary(k, len, i));
		if (start) {
			if (w->n == WMAX) { /* keep the last WMAX words */
				uint8_t drop = w->start[1];
				memmove(w->buf, w->buf + drop, o - drop);
				o -= drop;
				for (unsigned j = 0; j + 1 < WMAX; j++)
					w->start[j] = (uint8_t)(w->start[j + 1] -
								drop);
				w->n--;
			}
			w->start[w->n++] = (uint8_t)o;
		}
		w->buf[o++] = (char)lk_tolower(c);
		in_word = true;
	}
	w->start[w->n] = (uint8_t)o;
}

static bool unit_word(const char *s, size_t n)
{
	static const char *const units[] = {
		"mmol", "mgdl", "mg", "dl", "bpm", "pct", "percent", "mmhg",
		"c", "f", "celsius", "fahrenheit", "degc", "degf", "value",
		"val", "avg", "mean", "current", "cur", "last", "min", "max",
		"reading", "raw", "b64", "base64", "hex", "str", "enc",
		"encoded", NULL};
	for (const char *const *u = units; *u; u++)
		if (strlen(*u) == n && !memcmp(*u, s, n))
			return true;
	return false;
}

static bool ends_with(const char *s, size_t n, const char *suf)
{
	size_t k = strlen(suf);
	return n > k && !memcmp(s + n - k, suf, k);
}

static void suffix_word(const char *s, size_t n, struct lk_keyinfo *ki,
			uint8_t *secret)
{
	if (ends_with(s, n, "password") || ends_with(s, n, "passwd")) {
		ki->kind = KK_CRED;
		ki->sub = KC_PASSWORD;
	} else if (ends_with(s, n, "secret") || ends_with(s, n, "token")) {
		ki->kind = KK_CRED;
		ki->sub = KC_SECRET;
	}
	if (ki->kind || ends_with(s, n, "key"))
		*secret = 1;
}

/* Flags from every word: a veto word (or a last-word veto such as "id"),
 * a word naming a secret ("key" only as the last word), a version word. */
static void word_flags(const struct words *w, uint8_t *veto, uint8_t *secret,
		       uint8_t *version)
{
	for (unsigned i = 0; i < w->n; i++) {
		size_t wl = (size_t)(w->start[i + 1] - w->start[i]);
		const struct kword *e = lookup(w->buf + w->start[i], wl);
		if (!e)
			continue;
		uint8_t f = e->wflags;
		if (i + 1 == w->n && (f & W_VETO_LAST))
			*veto = 1;
		if (f & W_VETO)
			*veto = 1;
		if (f & W_VERSION)
			*version = 1;
		if ((f & W_SECRET) &&
		    (i + 1 == w->n ||
		     !(wl == 3 && !memcmp(w->buf + w->start[i], "key", 3))))
			*secret = 1;
	}
}

static bool key_is(const uint8_t *k, size_t n, const char *w)
{
	size_t wn = strlen(w);
	if (wn != n)
		return false;
	for (size_t i = 0; i < n; i++)
		if (lk_tolower(k[i]) != (uint8_t)w[i])
			return false;
	return true;
}

static bool key_has(const uint8_t *k, size_t n, const char *w)
{
	size_t wn = strlen(w);
	for (size_t i = 0; i + wn <= n; i++) {
		size_t j = 0;
		while (j < wn && lk_tolower(k[i + j]) == (uint8_t)w[j])
			j++;
		if (j == wn)
			return true;
	}
	return false;
}

/* Flags for a JSON member name about its object: a name-value record's
 * parts (Sparkplug B "name"/"value", SenML "n"/"v"), music, Home
 * Assistant's entity_id and friendly_name. */
static uint16_t record_flags(const uint8_t *k, size_t n)
{
	static const char *const names[] = {"name", "n", "metric",
					    "metricname", "measurement",
					    "key", "field", "param",
					    "parameter", NULL};
	static const char *const values[] = {"value", "v", "vs", "val",
					     "reading", NULL};
	static const char *const music[] = {"tempo", "song", "track",
					    "artist", "album", "genre",
					    "music", "playlist", "media",
					    "audio", "midi", NULL};
	uint16_t f = 0;
	for (const char *const *w = names; *w; w++)
		if (key_is(k, n, *w))
			f |= KF_NV_NAME;
	for (const char *const *w = values; *w; w++)
		if (key_is(k, n, *w))
			f |= KF_NV_VALUE;
	for (const char *const *w = music; *w && !(f & KF_MUSIC); w++)
		if (key_has(k, n, *w))
			f |= KF_MUSIC;
	if (key_is(k, n, "friendly_name"))
		f |= KF_FRIENDLY;
	if (key_is(k, n, "entity_id"))
		f |= KF_ENTITY;
	return f;
}

struct lk_keyinfo moat__leak_key_classify(const uint8_t *key, size_t len)
{
	struct lk_keyinfo ki = {0, 0, 0};
	struct words w;
	moat__leak_keys_init();
	split(key, len, &w);
	if (w.n == 0)
		return ki;
	/* units and qualifiers at the end do not change what the value is:
	 * heart_rate_bpm, glucose_mmol, password_b64, hr_max */
	while (w.n > 1 && unit_word(w.buf + w.start[w.n - 1],
				    (size_t)(w.start[w.n] - w.start[w.n - 1])))
		w.n--;
	/* kind: the longest known compound of the last 3, 2 or 1 words */
	for (unsigned k = MOAT_MIN(3u, w.n); k >= 1; k--) {
		unsigned from = w.start[w.n - k];
		const struct kword *e = lookup(w.buf + from,
					       (size_t)(w.start[w.n] - from));
		if (e && (e->wflags & W_SUFFIX)) {
			ki.kind = e->kind;
			ki.sub = e->sub;
			if (e->wflags & W_E7)
				ki.flags |= KF_E7;
			break;
		}
	}
	uint8_t veto = 0, secret = 0, version = 0;
	word_flags(&w, &veto, &secret, &version);
	/* Run-together names: "userpassword", "DEVICETOKEN", "SIGNINGKEY". */
	unsigned ls = w.start[w.n - 1];
	size_t ln = (size_t)(w.start[w.n] - ls);
	const struct kword *le = lookup(w.buf + ls, ln);
	if (ki.kind == KK_NONE && !le)
		suffix_word(w.buf + ls, ln, &ki, &secret);
	if (secret)
		ki.flags |= KF_SECRET_WORD;
	if (version)
		ki.flags |= KF_VERSION;
	if (veto) {
		ki.flags |= KF_VETO;
		if (ki.kind == KK_CRED || ki.kind == KK_AWS_SECRET)
			ki.kind = KK_NONE;
	}
	ki.flags |= record_flags(key, len);
	return ki;
}
