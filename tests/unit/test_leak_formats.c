/* Unit tests for the leak detector on the formats devices speak (issue
 * 20): payloads inside JSON strings (HL7 v2, key=value, command lines, log
 * lines), name-value metric arrays (Sparkplug B JSON, SenML, Home
 * Assistant), CSV, Tasmota/ESPHome/Shelly console commands, coordinates
 * in strings, JWE, IPv4-mapped IPv6 with ports, log-line tags and
 * vendor-token placeholders; then binary payloads.  Every family has
 * positives and look-alikes; the examples are our own. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "leak_expect.h"
#include "test_util.h"

static void test_jwe(void **state)
{
	(void)state;
	/* header {"alg":"RSA-OAEP","enc":"A256GCM"}, 5 segments */
	static const char jwe[] =
		"eyJhbGciOiJSU0EtT0FFUCIsImVuYyI6IkEyNTZHQ00ifQ."
		"OKOawDo13gRp2ojaHV7LFpZcgV7T6DVZKTyKOMTYUmKoTCVJRgckCL9kiMT03JGe."
		"48V1_ALb6US04U3b."
		"5eym8TW_c8SuK0ltJ3rpYIzOeDQz7TALvtu6UG9oMo4vpzs9tX_EFShS8iB7j6ji."
		"XFBoMYUZodetZdvTiFvSkQ";
	char msg[512];
	snprintf(msg, sizeof(msg), "{\"id_token\":\"%s\"}", jwe);
	YES(JWT, msg);
	assert_true(first(MOAT_LEAK_JWT)->flags & MOAT_LEAK_F_ENCRYPTED);
	assert_null(first(MOAT_LEAK_CREDENTIAL));
	/* "dir" JWE: empty encrypted key; {"enc":"A128GCM","alg":"dir"} */
	YES(JWT, "token eyJlbmMiOiJBMTI4R0NNIiwiYWxnIjoiZGlyIn0..AxY8DCtDaGlsbGljb3RoZQ."
		 "KDlTtXchhZTGufMYmOYGS4HffxPSUrfmqCHXaI9wOGY.Mz-VPPyU4RlcuYv1IwIvzw");
	/* look-alikes: 3 segments of which the second is not JSON, a
	 * header that is not JSON */
	NO(JWT, "eyJhbGciOiJSU0EtT0FFUCIsImVuYyI6IkEyNTZHQ00ifQ.abc.def");
	NO(JWT, "eyJhbGciOiXXXXXXXXXXXXXXXX.aaaaaaaaaaaaaaaaaa.bbbbbbbbbbbbbbbbbbbbb."
		"ccccccccccccccccccccc.dddddddddddd");
}

static void test_ipv4_mapped_port(void **state)
{
	(void)state;
	YES(PRIVATE_IPV6, "1607425012: New connection from ::ffff:192.168.1.20:"
			  "51234 on port 1883.");
	assert_match(first(MOAT_LEAK_PRIVATE_IPV6), "::ffff:192.168.1.20");
	assert_null(first(MOAT_LEAK_PRIVATE_IPV4));
	YES(PRIVATE_IPV6, "{\"peer\":\"::ffff:10.0.0.7:8883\"}");
	/* a public mapped address is not private */
	NO(PRIVATE_IPV6, "New connection from ::ffff:8.8.8.8:51234 on port 1883.");
	NO(PRIVATE_IPV4, "New connection from ::ffff:8.8.8.8:51234 on port 1883.");
}

static void test_log_tags(void **state)
{
	(void)state;
	CLEAN("2024-01-01 auth: login ok for device 17");
	CLEAN("Jan  1 10:00:00 gw mosquitto[123]: auth: client dev1 connected");
	CLEAN("{\"log\":\"I (1234) token: refreshed for sensor 4\"}");
	/* a key with a real value still counts */
	YES(CREDENTIAL, "auth: Zk3q9VmP2x");
	YES(CREDENTIAL, "2024-01-01 password: hunter2 accepted");
	YES(CREDENTIAL, "token: 8f14e45fceea167a5a36dedd4bea2543");
}

static void test_placeholders(void **state)
{
	(void)state;
	NO(CREDENTIAL, "{\"slack_token\":\"xoxb-your-token\"}");
	NO(VENDOR_TOKEN, "{\"slack_token\":\"xoxb-your-token\"}");
	CLEAN("{\"token\":\"ghp_XXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX\"}");
	CLEAN("{\"api_key\":\"sk-****************************abcd\"}");
	CLEAN("{\"api_key\":\"AKIA\xe2\x80\xa2\xe2\x80\xa2\xe2\x80\xa2\xe2\x80"
	      "\xa2\xe2\x80\xa2WXYZ\"}");
	CLEAN("{\"password\":\"GENERATE\"}");
	CLEAN("{\"api_key\":\"[YOUR_API_KEY_HERE]\"}");
	CLEAN("api_key=[YOUR API KEY] region=eu");
	CLEAN("password=<your password> user=admin");
	CLEAN("{\"token\":\"sk_live_your_key_here\"}");
	/* real values of the same shapes */
	YES(VENDOR_TOKEN, "{\"token\":\"ghp_8f3KqZr2LmNp7XvB1cD4eF6gH9jK0lM2nO3p\"}");
	YES(CREDENTIAL, "{\"password\":\"Tr0ub4dor&3x\"}");
	YES(CREDENTIAL, "{\"password\":\"password\"}");
	YES(CREDENTIAL, "{\"api_key\":\"sk-9fJ2kLmQ8xR4vT1nB6cD3eH7\"}");
	YES(CREDENTIAL, "{\"password\":\"[9x!Pq2#z\"}");
}

static void test_hl7_in_json(void **state)
{
	(void)state;
	static const char oru[] =
		"{\"msg\":\"MSH|^~\\\\&|LAB|WARD|EHR|WARD|202401011200||ORU^R01|"
		"88|P|2.5\\rPID|1||4711^^^WARD^MR||Rossi^Maria^L||19581103|F"
		"\\rOBX|1|NM|8867-4^Heart rate^LN||96|/min|||||F\"}";
	YES(HEALTH, oru);
	YES(PERSON, oru);
	assert_string_equal(first(MOAT_LEAK_PERSON)->path, "$.msg");
	/* segments without the header, one message per string */
	YES(PERSON, "{\"seg\":\"PID|1||12^^^H^MR||Novak^Jan||19900101|M\"}");
	YES(HEALTH, "{\"obx\":\"OBX|2|NM|8480-6^Systolic^LN||131|mm[Hg]|||||F\"}");
	YES(HEALTH, "OBX|1|NM|2708-6^SpO2^LN||97|%\rOBX|2|NM|8867-4^HR^LN||61|/min");
	/* raw HL7 with a carriage return still works */
	YES(PERSON, "MSH|^~\\&|A|B|C|D|2024||ADT^A01|1|P|2.3\rPID|1||9^^^H||Kim^Lee||"
		    "20000101|F");
	/* look-alikes: pipes that are not HL7 */
	CLEAN("{\"table\":\"| PID | name |\"}");
	CLEAN("ps: PID|USER|TIME  1|root|0:01");
	CLEAN("{\"note\":\"OBX|1|NM|||\"}");
}

static void test_records(void **state)
{
	(void)state;
	/* Sparkplug B in its JSON form */
	static const char spb[] =
		"{\"timestamp\":1700000000000,\"metrics\":["
		"{\"name\":\"GPS/Latitude\",\"alias\":1,\"datatype\":10,"
		"\"value\":52.520081},{\"name\":\"GPS/Longitude\",\"alias\":2,"
		"\"datatype\":10,\"value\":13.404954}],\"seq\":3}";
	YES(GEOLOCATION, spb);
	assert_true(first(MOAT_LEAK_GEOLOCATION)->flags & MOAT_LEAK_F_PRECISE);
	YES(HEALTH, "{\"metrics\":[{\"name\":\"Patient/HeartRate\","
		    "\"value\":72}]}");
	YES(CREDENTIAL, "{\"metrics\":[{\"name\":\"Config/MqttPassword\","
			"\"type\":\"String\",\"value\":\"Zq8!vR2m\"}]}");
	/* SenML */
	YES(GEOLOCATION, "[{\"bn\":\"urn:dev:mac:0024befffe804ff1:\","
			 "\"n\":\"lat\",\"v\":48.858370},{\"n\":\"lon\","
			 "\"v\":2.294481}]");
	YES(HEALTH, "[{\"bn\":\"wearable/\",\"n\":\"heart_rate\",\"u\":"
		    "\"beat/min\",\"v\":64}]");
	/* look-alikes: ordinary metrics, out of range values */
	CLEAN("{\"metrics\":[{\"name\":\"Motor/Speed\",\"value\":1450},"
	      "{\"name\":\"Motor/Temp\",\"value\":61.5}]}");
	CLEAN("[{\"n\":\"temperature\",\"u\":\"Cel\",\"v\":23.1},"
	      "{\"n\":\"humidity\",\"u\":\"%RH\",\"v\":40}]");
	NO(HEALTH, "{\"metrics\":[{\"name\":\"Pump/HeartRate\",\"value\":900}]}");
	NO(GEOLOCATION, "{\"metrics\":[{\"name\":\"GPS/Latitude\",\"value\":"
			"52.52}]}");
}

static void test_home_assistant(void **state)
{
	(void)state;
	YES(PERSON, "{\"entity_id\":\"person.maria\",\"state\":\"home\","
		    "\"attributes\":{\"friendly_name\":\"Maria Rossi\","
		    "\"source\":\"device_tracker.phone\"}}");
	assert_string_equal(first(MOAT_LEAK_PERSON)->path,
			    "$.attributes.friendly_name");
	YES(GEOLOCATION, "{\"entity_id\":\"person.jan\",\"attributes\":"
			 "{\"friendly_name\":\"Jan Novak\",\"latitude\":50.087451,"
			 "\"longitude\":14.420671,\"gps_accuracy\":12}}");
	/* other entities' friendly names are device names */
	CLEAN("{\"entity_id\":\"light.kitchen\",\"state\":\"on\","
	      "\"attributes\":{\"friendly_name\":\"Kitchen Light\"}}");
	CLEAN("{\"entity_id\":\"sensor.person_count\",\"state\":\"2\","
	      "\"attributes\":{\"friendly_name\":\"People Home\"}}");
}

static void test_music_tempo(void **state)
{
	(void)state;
	CLEAN("{\"track\":\"Blue Monday\",\"tempo\":\"fast\",\"bpm\":130}");
	CLEAN("{\"bpm\":128,\"song\":\"Intro\"}");
	CLEAN("{\"media_title\":\"Intro\",\"bpm\":92}");
	YES(HEALTH, "{\"device\":\"band\",\"bpm\":92}");
	YES(HEALTH, "{\"song\":\"x\",\"spo2\":93}");
}

static void test_console_commands(void **state)
{
	(void)state;
	YES(CREDENTIAL, "MqttPassword S3cr3tPw!");
	assert_match(first(MOAT_LEAK_CREDENTIAL), "S3cr3tPw!");
	YES(CREDENTIAL, "{\"cmnd\":\"WebPassword kX9#mm2q\"}");
	YES(WIFI_CREDENTIALS, "Backlog SSId1 HomeNet; Password1 hunter2hunter");
	assert_match(first(MOAT_LEAK_WIFI_CREDENTIALS), "hunter2hunter");
	YES(WIFI_CREDENTIALS, "{\"cmnd\":\"SSId1 MyWifi; Password1 Sup3rSecret\"}");
	YES(WIFI_CREDENTIALS, "backlog ssid2 Guest; password2 welcome-guests; restart 1");
	/* look-alikes: the reset values, prose, a status reply */
	CLEAN("MqttPassword 1");
	CLEAN("Password1 0");
	CLEAN("Backlog MqttHost 10.1.1.1x; MqttUser dev");
	CLEAN("{\"note\":\"the mqttpassword command sets it\"}");
	CLEAN("{\"Command\":\"Unknown\",\"Input\":\"Password9\"}");
}

static void test_dms_in_strings(void **state)
{
	(void)state;
	YES(GEOLOCATION, "{\"pos\":\"48\xc2\xb0" "51'29.6\\\"N 2\xc2\xb0" "17'40.2\\\"E\"}");
	YES(GEOLOCATION, "{\"pos\":\"48\\u00b051'29.6\\\"N 2\\u00b017'40.2\\\"E\"}");
	YES(GEOLOCATION, "{\"msg\":\"parked at 52.520081, 13.404954 since 10:00\"}");
	YES(GEOLOCATION, "spotted 40\xc2\xb0" "26'46\"N 79\xc2\xb0" "58'56\"W");
	/* look-alikes */
	CLEAN("{\"t\":\"23.5\\u00b0C\",\"h\":\"41%\"}");
	CLEAN("{\"angle\":\"45\xc2\xb0 to 90\xc2\xb0\"}");
	CLEAN("{\"msg\":\"version 1.20, build 3.14\"}");
}

static void test_csv(void **state)
{
	(void)state;
	YES(HEALTH, "time,bed,measure,value,unit\n2024-01-01T10:00,12,heart_rate,88,"
		    "bpm\n2024-01-01T10:00,12,spo2,95,%");
	YES(HEALTH, "2024-01-01T10:00,12,heart_rate,88,bpm");
	YES(HEALTH, "ts;hr;spo2\n1700000000;72;97\n1700000060;75;96");
	YES(HEALTH, "{\"csv\":\"time,bed,measure,value\\n10:00,3,systolic,141\"}");
	YES(GEOLOCATION, "id,lat,lon\n7,52.520081,13.404954");
	/* look-alikes: hours, counts, ordinary telemetry */
	CLEAN("date,hr,count\n2024-01-01,14,3");
	CLEAN("2024-01-01,hr,14");
	CLEAN("time,temp,hum\n10:00,21.5,40\n10:01,21.6,41");
	CLEAN("a,b,c\n1,2,3");
	CLEAN("Jan 1, 2024, sensor restarted, code 7");
}

/* An unusual string value before an address must not hide it (the
 * walker resumes after any string). */
static void test_walker_resumes(void **state)
{
	(void)state;
	YES(PRIVATE_IPV4, "{\"re\":\"^[a-z]+#$\",\"ip\":\"192.168.4.2\"}");
	assert_string_equal(first(MOAT_LEAK_PRIVATE_IPV4)->path, "$.ip");
	YES(PRIVATE_IPV4, "{\"c\":\"# ^ [\",\"tags\":[\"[x\",\"#\"],"
			  "\"gw\":\"10.0.0.1\"}");
	YES(PRIVATE_IPV4, "{\"m\":\"key: [ x=# y=^\",\"o\":{\"ip\":\"10.2.2.2\"}}");
	YES(PRIVATE_IPV4, "{\"m\":\"\\\"[#^\\\\\",\"ip\":\"172.16.0.9\"}");
}

/* ---- binary payloads ------------------------------------------------------ */

static uint64_t rng_state;

static uint64_t rng(void)
{
	uint64_t x = rng_state; /* xorshift64 */
	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return rng_state = x;
}

static void scan_bytes(const uint8_t *p, size_t n)
{
	scan_with(db, scr, (const char *)p, n);
}

static void test_binary_frames(void **state)
{
	(void)state;
	uint8_t buf[256];
	rng_state = 42;
	for (size_t i = 0; i < sizeof(buf); i++)
		buf[i] = (uint8_t)(rng() | 0x80); /* no text at all */
	/* a real key=value inside a protobuf-like frame still counts */
	static const char kv[] = "password=hunter2x";
	memcpy(buf + 100, kv, sizeof(kv) - 1);
	scan_bytes(buf, sizeof(buf));
	assert_non_null(first(MOAT_LEAK_CREDENTIAL));
	/* so does a JSON fragment */
	static const char js[] = "{\"ip\":\"192.168.1.7\"}";
	memcpy(buf + 20, js, sizeof(js) - 1);
	scan_bytes(buf, sizeof(buf));
	assert_non_null(first(MOAT_LEAK_PRIVATE_IPV4));
	/* a key word and separator that random bytes spell: noise */
	for (size_t i = 0; i < sizeof(buf); i++)
		buf[i] = (uint8_t)(rng() | 0x80);
	memcpy(buf + 60, "pw=Xk9a", 7);
	memcpy(buf + 160, "::1", 3);
	scan_bytes(buf, sizeof(buf));
	assert_int_equal(res.n, 0);
	/* text payloads are not affected: a short one still counts */
	YES(CREDENTIAL, "pw=Xk9a");
}

/* Random payloads of 16 B..4 KiB (protobuf, CBOR, encrypted or
 * compressed telemetry look like this) give no finding.  20,000 in the
 * suite; MOAT_LEAK_RANDOM_N sets another count (the million). */
static void test_random_binary(void **state)
{
	(void)state;
	const char *env = getenv("MOAT_LEAK_RANDOM_N");
	unsigned long n = env ? strtoul(env, NULL, 10) : 20000;
	static uint8_t buf[4096];
	rng_state = 0x9e3779b97f4a7c15u;
	unsigned long bad = 0;
	for (unsigned long m = 0; m < n; m++) {
		size_t len = 16 + (size_t)(rng() % (4096 - 16 + 1));
		for (size_t i = 0; i < len; i += 8) {
			uint64_t r = rng();
			memcpy(buf + i, &r, MOAT_MIN((size_t)8, len - i));
		}
		scan_bytes(buf, len);
		if (res.n) {
			bad++;
			print_error("message %lu (%zu bytes): %s %s\n", m, len,
				    moat_leak_category_name(res.findings[0].category),
				    res.findings[0].preview);
		}
	}
	print_message("%lu random payloads, %lu with findings\n", n, bad);
	assert_int_equal(bad, 0);
}

/* ---- decoders ------------------------------------------------------------- */

/* {"lat": 52.520081, "lon": 13.404954, "password": "Zq8!vR2mXx"} */
static const uint8_t cbor_map[] =
	"\xa3\x63\x6c\x61\x74\xfb\x40\x4a\x42\x92\x03\xa3\x22\xaf\x63\x6c\x6f"
	"\x6e\xfb\x40\x2a\xcf\x56\x21\x74\xc4\xce\x68\x70\x61\x73\x73\x77\x6f"
	"\x72\x64\x6a\x5a\x71\x38\x21\x76\x52\x32\x6d\x58\x78";
/* SenML CBOR [{0: "lat", 2: 48.85837}, {0: "lon", 2: 2.294481}] */
static const uint8_t senml_cbor[] =
	"\x82\xa2\x00\x63\x6c\x61\x74\x02\xfb\x40\x48\x6d\xdf\x11\x72\xef\x0b"
	"\xa2\x00\x63\x6c\x6f\x6e\x02\xfb\x40\x02\x5b\x18\xda\xc2\x58\xd6";
/* {"temp": 21.25 (half float), "hum": 40} */
static const uint8_t cbor_clean[] =
	"\xa2\x64\x74\x65\x6d\x70\xf9\x4d\x00\x63\x68\x75\x6d\x18\x28";

static void test_cbor(void **state)
{
	(void)state;
	scan_bytes(cbor_map, sizeof(cbor_map) - 1);
	const struct moat_leak_finding *f = first(MOAT_LEAK_GEOLOCATION);
	assert_non_null(f);
	assert_true(f->flags & MOAT_LEAK_F_DECODED);
	assert_string_equal(f->path, "$.lat");
	assert_int_equal(f->start, 6); /* the double's 8 bytes */
	assert_int_equal(f->end, 14);
	f = first(MOAT_LEAK_CREDENTIAL);
	assert_non_null(f);
	assert_match(f, "Zq8!vR2mXx"); /* the text bytes themselves */
	/* redaction keeps the CBOR well-formed (and the password gone) */
	uint8_t red[sizeof(cbor_map)];
	memcpy(red, cbor_map, sizeof(cbor_map));
	moat_leak_redact_inplace(red, sizeof(cbor_map) - 1, &res);
	assert_null(memmem(red, sizeof(cbor_map) - 1, "Zq8!", 4));
	scan_bytes(red, sizeof(cbor_map) - 1);
	assert_null(first(MOAT_LEAK_CREDENTIAL));
	/* SenML CBOR labels */
	scan_bytes(senml_cbor, sizeof(senml_cbor) - 1);
	assert_non_null(first(MOAT_LEAK_GEOLOCATION));
	assert_string_equal(first(MOAT_LEAK_GEOLOCATION)->path, "$[0].v");
	/* look-alikes: ordinary CBOR telemetry, and every truncation of
	 * the map (malformed: never read past the end, no finding) */
	scan_bytes(cbor_clean, sizeof(cbor_clean) - 1);
	assert_int_equal(res.n, 0);
	for (size_t n = 1; n + 1 < sizeof(cbor_map) - 1; n++) {
		scan_bytes(cbor_map, n);
		assert_null(first(MOAT_LEAK_GEOLOCATION));
	}
}

static void test_base64_blobs(void **state)
{
	(void)state;
	/* LoRaWAN uplink (TTN v3 shape) with base64 JSON */
	YES(GEOLOCATION, "{\"end_device_ids\":{\"device_id\":\"n1\"},\"uplink_message\":"
			 "{\"f_port\":1,\"frm_payload\":\"eyJsYXQiOiA1Mi41MjAwODEsICJsb24iOiAx"
			 "My40MDQ5NTR9\"}}");
	const struct moat_leak_finding *f = first(MOAT_LEAK_GEOLOCATION);
	assert_true(f->flags & MOAT_LEAK_F_DECODED);
	assert_string_equal(f->path, "$.uplink_message.frm_payload");
	assert_match(f, "eyJsYXQiOiA1Mi41MjAwODEsICJsb24iOiAxMy40MDQ5NTR9");
	/* base64 CBOR, and a whole message that is base64 JSON */
	YES(CREDENTIAL, "{\"data\":\"o2NsYXT7QEpCkgOjIq9jbG9u+0Aqz1YhdMTOaHBhc3N3b3Jk"
			"alpxOCF2UjJtWHg=\"}");
	YES(GEOLOCATION, "eyJsYXQiOiA1Mi41MjAwODEsICJsb24iOiAxMy40MDQ5NTR9");
	/* look-alikes: base64 of clean JSON, of random bytes, hashes */
	CLEAN("{\"data\":\"eyJ0ZW1wIjogMjEuNSwgImJhdCI6IDMuMX0=\"}");
	CLEAN("{\"frm_payload\":\"q83vEjRWeJq8dP4Ag7Dd9k1xYw==\"}");
	CLEAN("{\"sha\":\"9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08\"}");
	CLEAN("{\"b\":\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\"}");
}

/* ---- one call per message ------------------------------------------------ */

static void test_scan_msg(void **state)
{
	(void)state;
	static const uint8_t t1[] = "tenants/jane.roe@example.org/state";
	static const uint8_t p1[] = "{\"password\":\"s3cr3t!x\"}";
	static const uint8_t t2[] = "site/plant-3/meter-0042/telemetry";
	static const uint8_t p2[] = "{\"temp\":21.5,\"gw\":\"10.0.0.1\"}";
	struct moat_leak_result r;
	for (int round = 0; round < 2; round++) { /* the second from cache */
		int n = moat_leak_scan_msg(db, scr, t1, sizeof(t1) - 1, p1,
					   sizeof(p1) - 1, &r);
		assert_int_equal(n, 2);
		assert_int_equal(r.findings[0].part, MOAT_LEAK_PART_TOPIC);
		assert_int_equal(r.findings[0].category, MOAT_LEAK_EMAIL);
		assert_int_equal(r.findings[1].part, MOAT_LEAK_PART_PAYLOAD);
		assert_int_equal(r.findings[1].category, MOAT_LEAK_CREDENTIAL);
		assert_int_equal(r.scanned, sizeof(p1) - 1);
		n = moat_leak_scan_msg(db, scr, t2, sizeof(t2) - 1, p2,
				       sizeof(p2) - 1, &r);
		assert_int_equal(n, 1);
		assert_int_equal(r.findings[0].part, MOAT_LEAK_PART_PAYLOAD);
		assert_int_equal(r.findings[0].category, MOAT_LEAK_PRIVATE_IPV4);
		/* the same as two scans */
		n = moat_leak_scan(db, scr, p2, sizeof(p2) - 1, &r);
		assert_int_equal(n, 1);
		assert_int_equal(r.findings[0].start, 19);
	}
	/* a clean topic that is cached does not hide a finding in another
	 * topic */
	static const uint8_t t3[] = "site/plant-3/meter-0042/telemetrx";
	static const uint8_t t4[] = "a/10.0.0.7/b/xxxxxxxxxxxxxxxxxxxxx";
	moat_leak_scan_msg(db, scr, t3, sizeof(t3) - 1, NULL, 0, &r);
	assert_int_equal(r.n, 0);
	assert_int_equal(moat_leak_scan_msg(db, scr, t4, sizeof(t4) - 1, NULL,
					    0, &r),
			 1);
	assert_int_equal(r.findings[0].part, MOAT_LEAK_PART_TOPIC);
	/* arguments */
	assert_int_equal(moat_leak_scan_msg(NULL, scr, t1, 1, p1, 1, &r),
			 MOAT_EINVAL);
	assert_int_equal(moat_leak_scan_msg(db, scr, NULL, 1, p1, 1, &r),
			 MOAT_EINVAL);
	assert_int_equal(moat_leak_scan_msg(db, scr, t1, 1, NULL, 1, &r),
			 MOAT_EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_jwe),
		T(test_ipv4_mapped_port),
		T(test_log_tags),
		T(test_placeholders),
		T(test_hl7_in_json),
		T(test_records),
		T(test_home_assistant),
		T(test_music_tempo),
		T(test_console_commands),
		T(test_dms_in_strings),
		T(test_csv),
		T(test_walker_resumes),
		T(test_binary_frames),
		T(test_random_binary),
		T(test_cbor),
		T(test_base64_blobs),
		T(test_scan_msg),
	};
	int rc = cmocka_run_group_tests(tests, group_setup, group_teardown);
	cleanup_copy(NULL);
	return rc;
}
