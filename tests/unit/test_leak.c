/* Unit tests for the payload leak detector (src/leak).
 *
 * For every category: true positives in the formats telemetry uses (JSON,
 * CSV, key=value, NMEA, free text) and look-alikes that must not be
 * reported (valid vs off-by-one Luhn, bad IBAN check digits, 10.0.0.1 vs
 * 1.10.0.0.1 vs version strings, out-of-range coordinates, JWT-shaped
 * non-JWTs, "password": "" vs "password": "12345", ...).  Then the API:
 * names, budget, truncation, category subsets, argument checks, JSON
 * limits, previews that never hold the secret, the HMAC against
 * OpenSSL's HMAC(), redaction that keeps JSON valid, sharing one db
 * between threads, and allocation failures.  Every message is scanned
 * from an exact-size heap copy so that ASan sees any read past its end. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <pthread.h>

#include "leak/leak.h"

#include "leak_expect.h"
#include "test_util.h"

/* ---- names ------------------------------------------------------------------ */

static void test_names(void **state)
{
	(void)state;
	static const char *const names[] = {
		"private_ipv4", "private_ipv6", "mac_address", "email",
		"geolocation", "credential", "http_auth", "jwt", "private_key",
		"url_credentials", "aws_key", "vendor_token", "generic_secret",
		"payment_card", "iban", "national_id", "device_id", "health",
		"person", "internal_hostname", "wifi_credentials", "vehicle_id"};
	assert_int_equal(MOAT_ARRAY_LEN(names), MOAT_LEAK_CATEGORY_COUNT);
	for (unsigned i = 0; i < MOAT_LEAK_CATEGORY_COUNT; i++) {
		enum moat_leak_category c;
		assert_string_equal(
			moat_leak_category_name((enum moat_leak_category)i),
			names[i]);
		assert_int_equal(moat_leak_category_parse(names[i],
							  strlen(names[i]), &c),
				 MOAT_OK);
		assert_int_equal(c, i);
	}
	enum moat_leak_category c;
	assert_null(moat_leak_category_name(MOAT_LEAK_CATEGORY_COUNT));
	assert_int_equal(moat_leak_category_parse("Email", 5, &c),
			 MOAT_ENOTFOUND);
	assert_int_equal(moat_leak_category_parse("emai", 4, &c),
			 MOAT_ENOTFOUND);
	uint32_t set;
	char err[64];
	assert_int_equal(moat_leak_categories_parse("email,jwt", &set, err,
						    sizeof(err)),
			 MOAT_OK);
	assert_int_equal(set, MOAT_LEAK_BIT(MOAT_LEAK_EMAIL) |
				      MOAT_LEAK_BIT(MOAT_LEAK_JWT));
	assert_int_equal(moat_leak_categories_parse("email,bogus", &set, err,
						    sizeof(err)),
			 MOAT_EINVAL);
	assert_non_null(strstr(err, "bogus"));
	assert_int_equal(moat_leak_categories_parse("", &set, err, sizeof(err)),
			 MOAT_EINVAL);
	assert_int_equal(moat_leak_categories_parse("email,", &set, err,
						    sizeof(err)),
			 MOAT_EINVAL);
	static const char *const sev[] = {"info", "low", "medium", "high",
					  "critical"};
	for (unsigned i = 0; i < 5; i++) {
		enum moat_leak_severity s;
		assert_string_equal(
			moat_leak_severity_name((enum moat_leak_severity)i),
			sev[i]);
		assert_int_equal(moat_leak_severity_parse(sev[i], &s), MOAT_OK);
		assert_int_equal(s, i);
	}
	enum moat_leak_severity s;
	assert_int_equal(moat_leak_severity_parse("severe", &s),
			 MOAT_ENOTFOUND);
	assert_string_equal(moat_leak_flag_name(MOAT_LEAK_F_WEAK_PASSWORD),
			    "weak_password");
	assert_string_equal(moat_leak_flag_name(MOAT_LEAK_F_TRUNCATED),
			    "truncated");
	assert_null(moat_leak_flag_name(3));
	assert_null(moat_leak_flag_name(0x80000000u));
}

/* ---- L1-L4 ------------------------------------------------------------------ */

static void test_private_ipv4(void **state)
{
	(void)state;
	YES(PRIVATE_IPV4, "connected to 10.0.0.1");
	assert_match(first(MOAT_LEAK_PRIVATE_IPV4), "10.0.0.1");
	assert_string_equal(first(MOAT_LEAK_PRIVATE_IPV4)->preview,
			    "10.*.*.*");
	assert_int_equal(first(MOAT_LEAK_PRIVATE_IPV4)->severity,
			 MOAT_LEAK_SEV_MEDIUM);
	YES(PRIVATE_IPV4, "{\"ip\":\"192.168.1.20\"}");
	assert_string_equal(first(MOAT_LEAK_PRIVATE_IPV4)->path, "$.ip");
	YES(PRIVATE_IPV4, "route 172.16.5.4/12 via gw");
	YES(PRIVATE_IPV4, "broker 192.168.0.10:1883 up");
	YES(PRIVATE_IPV4, "cgnat 100.64.0.1");
	YES(PRIVATE_IPV4, "lease 169.254.10.20.");
	YES(PRIVATE_IPV4, "src=172.31.255.254,dst=8.8.8.8");
	YES(PRIVATE_IPV4, "client 127.0.0.1 connected");
	assert_int_equal(first(MOAT_LEAK_PRIVATE_IPV4)->severity,
			 MOAT_LEAK_SEV_LOW);
	YES(PRIVATE_IPV4, "range 10.0.0.1-10.0.0.9");
	/* look-alikes */
	NO(PRIVATE_IPV4, "1.10.0.0.1");
	NO(PRIVATE_IPV4, "update to v10.0.0.1-beta");
	NO(PRIVATE_IPV4, "10.0.0.1-beta");
	NO(PRIVATE_IPV4, "version 10.1.2.3");
	NO(PRIVATE_IPV4, "firmware 192.168.1.1 installed");
	NO(PRIVATE_IPV4, "{\"fw_version\":\"10.0.0.1\"}");
	NO(PRIVATE_IPV4, "oid 1.3.6.1.4.1.10.0.0.1");
	NO(PRIVATE_IPV4, "10.0.0.256");
	NO(PRIVATE_IPV4, "010.0.0.1");
	NO(PRIVATE_IPV4, "8.8.8.8 and 172.32.0.1 and 192.169.1.1");
	NO(PRIVATE_IPV4, "mask 255.255.255.0");
	NO(PRIVATE_IPV4, "10.0.0");
	NO(PRIVATE_IPV4, "id10.0.0.1");
}

static void test_private_ipv6(void **state)
{
	(void)state;
	YES(PRIVATE_IPV6, "addr fd12:3456:789a:1::1 up");
	assert_match(first(MOAT_LEAK_PRIVATE_IPV6), "fd12:3456:789a:1::1");
	YES(PRIVATE_IPV6, "inet6 fe80::a00:27ff:fe4e:66a1/64");
	YES(PRIVATE_IPV6, "via fe80::1%eth0 dev eth0");
	assert_match(first(MOAT_LEAK_PRIVATE_IPV6), "fe80::1%eth0");
	YES(PRIVATE_IPV6, "listen [::1]:1883");
	YES(PRIVATE_IPV6, "{\"ip6\":\"FEC0::1\"}");
	scan("peer ::ffff:192.168.1.5");
	assert_non_null(first(MOAT_LEAK_PRIVATE_IPV6));
	assert_null(first(MOAT_LEAK_PRIVATE_IPV4)); /* the v6 one explains it */
	NO(PRIVATE_IPV6, "dns 2001:db8::1");
	NO(PRIVATE_IPV6, "multicast ff02::1");
	NO(PRIVATE_IPV6, "dead:beef");
	NO(PRIVATE_IPV6, "at 12:34:56");
	NO(PRIVATE_IPV6, "std::1");
	NO(PRIVATE_IPV6, "face:fd00");
	NO(PRIVATE_IPV6, "::ffff:8.8.8.8");
}

static void test_mac(void **state)
{
	(void)state;
	YES(MAC_ADDRESS, "bssid aa:bb:cc:dd:ee:01 joined");
	assert_string_equal(first(MOAT_LEAK_MAC_ADDRESS)->preview,
			    "aa:bb:cc:*:*:*");
	YES(MAC_ADDRESS, "AA-BB-CC-11-22-33");
	YES(MAC_ADDRESS, "Interface 0011.2233.4455 up");
	YES(MAC_ADDRESS, "{\"mac\":\"001A2B3C4D5E\"}");
	YES(MAC_ADDRESS, "long prefix to cross the first sixty-four byte "
			 "window: 3c:71:bf:12:34:56");
	NO(MAC_ADDRESS, "00:00:00:00:00:00");
	NO(MAC_ADDRESS, "ff:ff:ff:ff:ff:ff");
	NO(MAC_ADDRESS, "00:11:22:33:44:55:66");
	NO(MAC_ADDRESS, "12:34:56");
	NO(MAC_ADDRESS, "serial 12-34-56-78-90-12");
	NO(MAC_ADDRESS, "{\"mac\":\"not-a-mac\"}");
	NO(MAC_ADDRESS, "gg:hh:ii:jj:kk:ll");
}

static void test_email(void **state)
{
	(void)state;
	YES(EMAIL, "alert sent to jane.doe@example.com today");
	assert_match(first(MOAT_LEAK_EMAIL), "jane.doe@example.com");
	assert_string_equal(first(MOAT_LEAK_EMAIL)->preview,
			    "j***@example.com");
	YES(EMAIL, "{\"to\":\"ops+iot@sub.example.co.uk\"}");
	YES(EMAIL, "mailto:support@example.org");
	YES(EMAIL, "xn@xn--80akhbyknj4f.xn--p1ai");
	NO(EMAIL, "user@localhost");
	NO(EMAIL, "logo@2x.png");
	NO(EMAIL, "agent firmware@2.1.3");
	NO(EMAIL, "12345@example.com");
	NO(EMAIL, "a@b.c");
	NO(EMAIL, "mqtt://operator@broker.example.com:8883");
	NO(EMAIL, "name@domain.invalidtld");
	NO(EMAIL, "@channel");
	/* in a topic */
	YES(EMAIL, "tenants/jane.roe@example.org/devices/4/state");
}

/* ---- L5 ---------------------------------------------------------------------- */

static void test_geolocation(void **state)
{
	(void)state;
	YES(GEOLOCATION, "{\"lat\":48.858370,\"lon\":2.294481}");
	assert_true(first(MOAT_LEAK_GEOLOCATION)->flags & MOAT_LEAK_F_PRECISE);
	assert_int_equal(first(MOAT_LEAK_GEOLOCATION)->severity,
			 MOAT_LEAK_SEV_HIGH);
	assert_string_equal(first(MOAT_LEAK_GEOLOCATION)->path, "$.lat");
	YES(GEOLOCATION, "{\"position\":{\"latitude\":\"51.5074\","
			 "\"longitude\":\"-0.1278\"}}");
	YES(GEOLOCATION, "{\"latitudeE7\":488583700,\"longitudeE7\":22944810}");
	YES(GEOLOCATION, "{\"type\":\"Point\",\"coordinates\":[2.2945,48.8584]}");
	YES(GEOLOCATION, "{\"lat\":48.85,\"lng\":2.35}");
	assert_int_equal(first(MOAT_LEAK_GEOLOCATION)->severity,
			 MOAT_LEAK_SEV_MEDIUM);
	YES(GEOLOCATION,
	    "$GPGGA,123519,4807.038,N,01131.000,E,1,08,0.9,545.4,M,46.9,M,,*47");
	YES(GEOLOCATION, "GPS fix 48.858370, 2.294481 hdop 0.9");
	YES(GEOLOCATION, "position=52.3676,4.9041");
	YES(GEOLOCATION, "Truck at 48.8566, 2.3522");
	NO(GEOLOCATION, "temp 21.53412, 48.12345");
	YES(GEOLOCATION, "2024-01-15T10:00:00Z,truck-7,52.520008,13.404954,42");
	YES(GEOLOCATION, "lat=48.8566 lon=2.3522");
	YES(GEOLOCATION, "track point lat 45.4642 lon 9.1900");
	YES(GEOLOCATION, "40.7128\xc2\xb0 N, 74.0060\xc2\xb0 W");
	YES(GEOLOCATION, "48\xc2\xb0" "51'29.6\"N 2\xc2\xb0" "17'40.2\"E");
	YES(GEOLOCATION, "GPS: 34.0522 N, 118.2437 W");
	YES(GEOLOCATION, "{\"geo\":\"59.3293,18.0686\"}");
	/* look-alikes */
	NO(GEOLOCATION, "{\"lat\":95.12345,\"lon\":200.5}");
	NO(GEOLOCATION, "{\"lat\":0,\"lon\":0}");
	NO(GEOLOCATION, "{\"lat\":48.8566}");
	NO(GEOLOCATION,
	   "$GPGGA,123519,4807.038,N,01131.000,E,1,08,0.9,545.4,M,46.9,M,,*48");
	NO(GEOLOCATION, "$GPGGA,123519,,,,,0,00,,,M,,M,,*66");
	NO(GEOLOCATION, "2024-01-15,dev-1,21.5,45.2");
	NO(GEOLOCATION, "ratio 1.2345,6.7890");
	NO(GEOLOCATION, "temp 23.5\xc2\xb0" "C wind 270\xc2\xb0");
	NO(GEOLOCATION, "{\"accel\":[0.012345,-0.987654]}");
	NO(GEOLOCATION, "{\"latency\":45.123456,\"longest\":12.654321}");
	NO(GEOLOCATION, "loc 91.12345, 10.54321");
}

/* ---- L6, L13, L21 ------------------------------------------------------------- */

static void test_credential(void **state)
{
	(void)state;
	YES(CREDENTIAL, "{\"password\": \"12345\"}");
	const struct moat_leak_finding *f = first(MOAT_LEAK_CREDENTIAL);
	assert_match(f, "12345");
	assert_true(f->flags & MOAT_LEAK_F_WEAK_PASSWORD);
	assert_true(f->flags & MOAT_LEAK_F_JSON_STRING);
	assert_int_equal(f->severity, MOAT_LEAK_SEV_HIGH);
	assert_null(strstr(f->preview, "12345"));
	assert_string_equal(f->path, "$.password");
	NO(CREDENTIAL, "{\"password\": \"\"}");
	NO(CREDENTIAL, "{\"password\": null}");
	NO(CREDENTIAL, "{\"password\": \"********\"}");
	NO(CREDENTIAL, "{\"password\": \"<redacted>\"}");
	NO(CREDENTIAL, "{\"password\": \"${MQTT_PASSWORD}\"}");
	NO(CREDENTIAL, "{\"secret\": \"env:DEVICE_SECRET\"}");
	NO(CREDENTIAL, "{\"api_key\": \"YOUR_API_KEY\"}");
	YES(CREDENTIAL, "{\"password\": 12345}");
	assert_true(first(MOAT_LEAK_CREDENTIAL)->flags &
		    MOAT_LEAK_F_JSON_SCALAR);
	YES(CREDENTIAL, "{\"mqtt\":{\"user\":\"x\",\"password\":\"hunter2\"}}");
	assert_string_equal(first(MOAT_LEAK_CREDENTIAL)->path,
			    "$.mqtt.password");
	assert_true(first(MOAT_LEAK_CREDENTIAL)->flags &
		    MOAT_LEAK_F_WEAK_PASSWORD); /* hunter2 */
	YES(CREDENTIAL, "{\"db_password\":\"Tr0ub4dor&3\"}");
	YES(CREDENTIAL, "{\"adminPwd\":\"s3cr3t!\"}");
	YES(CREDENTIAL, "{\"token\":\"a8f5f167f44f4964e6c998dee827110c\"}");
	YES(CREDENTIAL, "{\"sim_pin\":\"4821\"}");
	YES(CREDENTIAL, "password=hunter2 user=x");
	YES(CREDENTIAL, "DB_PASSWORD=changeme");
	YES(CREDENTIAL, "pwd: s3cr3t!");
	YES(CREDENTIAL, "Heart: ok, password : letmein");
	YES(CREDENTIAL, "{\"cmd\":\"set\",\"payload\":\"{\\\"password\\\":"
			"\\\"Fact0ry!\\\"}\"}");
	YES(CREDENTIAL, "{\"auth\":\"admin:admin\"}");
	YES(CREDENTIAL, "mosquitto_pub -h b -u dev -P s3cret -t t -m x");
	assert_match(first(MOAT_LEAK_CREDENTIAL), "s3cret");
	YES(CREDENTIAL, "agent --password 'hunter22' --verbose");
	NO(CREDENTIAL, "scp -P 2222 file host:");
	NO(CREDENTIAL, "agent --password $PASS");
	YES(CREDENTIAL, "Server=db;User Id=sa;Password=Pa55w0rd!;");
	/* look-alikes */
	NO(CREDENTIAL, "{\"password_changed\":true,\"password_age\":12}");
	NO(CREDENTIAL, "{\"token_type\":\"Bearer\"}");
	NO(CREDENTIAL, "{\"pin\":13,\"mode\":\"output\"}");
	NO(CREDENTIAL, "{\"tests\":{\"pass\":42,\"fail\":0}}");
	NO(CREDENTIAL, "{\"auth\":true,\"auth_method\":\"password\"}");
	NO(CREDENTIAL, "{\"password_hash\":\"$2b$12$abcdefghijk\"}");
	NO(CREDENTIAL, "login failed: incorrect password");
	NO(CREDENTIAL, "Password must be at least 8 characters");
	NO(CREDENTIAL, "{\"pass_rate\":0.98}");
	NO(CREDENTIAL, "{\"pwd\":\"/var/lib/app\"}");
	NO(CREDENTIAL, "a==b password==x");
}

static void test_generic_secret(void **state)
{
	(void)state;
	YES(GENERIC_SECRET, "{\"encryption_key\":\"3q2+7wQz9XkLmN0pR5tV8yB1cE4gH6jK\"}");
	assert_int_equal(first(MOAT_LEAK_GENERIC_SECRET)->severity,
			 MOAT_LEAK_SEV_MEDIUM);
	YES(GENERIC_SECRET, "SIGNINGKEY=Zt9QmW3rX7pL2vN8kB5cJ1hF6dS4gA0e");
	YES(GENERIC_SECRET, "{\"auth_code\":\"8dJk3Lq9ZxW2mN4p\"}");
	NO(GENERIC_SECRET, "{\"key\":\"temperature\"}");
	NO(GENERIC_SECRET, "{\"checksum_sha256\":\"9f86d081884c7d659a2feaa0c55ad015\"}");
	NO(GENERIC_SECRET, "{\"public_key\":\"Zt9QmW3rX7pL2vN8kB5cJ1hF6dS4gA0e\"}");
	NO(GENERIC_SECRET, "{\"secret_key\":\"aaaaaaaaaaaaaaaaaaaaaaaa\"}");
	NO(GENERIC_SECRET, "{\"api_key_id\":\"Zt9QmW3rX7pL2vN8kB5cJ1hF6dS4gA0e\"}");
	NO(GENERIC_SECRET, "{\"key\":\"3f2c8a1e-5b7d-4c9a-8e6f-1a2b3c4d5e6f\"}");
	/* a credential key is the more specific category */
	scan("{\"api_key\":\"Zt9QmW3rX7pL2vN8kB5cJ1hF6dS4gA0e\"}");
	assert_non_null(first(MOAT_LEAK_CREDENTIAL));
	assert_null(first(MOAT_LEAK_GENERIC_SECRET));
}

static void test_wifi(void **state)
{
	(void)state;
	scan("{\"wifi\":{\"ssid\":\"HomeNet\",\"psk\":\"correcthorse\"}}");
	assert_non_null(first(MOAT_LEAK_WIFI_CREDENTIALS));
	assert_null(first(MOAT_LEAK_CREDENTIAL)); /* the same value */
	assert_string_equal(first(MOAT_LEAK_WIFI_CREDENTIALS)->path,
			    "$.wifi.psk");
	assert_match(first(MOAT_LEAK_WIFI_CREDENTIALS), "correcthorse");
	YES(WIFI_CREDENTIALS, "{\"password\":\"abc12345\",\"ssid\":\"Plant4\"}");
	YES(WIFI_CREDENTIALS, "ssid=Plant4 wpa_key=Pl4ntW1f1!");
	YES(WIFI_CREDENTIALS, "AP config: SSID=Plant4 PSK=Pl4ntW1f1!");
	YES(WIFI_CREDENTIALS, "{\"ssid\":\"a\",\"x\":{\"wpa2_psk\":\"p4ssw0rd\"}}");
	YES(WIFI_CREDENTIALS, "{\"net\":{\"ssid\":\"W-IoT\",\"key\":\"Wh4reh0use!\"}}");
	assert_null(first(MOAT_LEAK_GENERIC_SECRET));
	YES(WIFI_CREDENTIALS, "WIFI:S:HomeNet;T:WPA;P:correcthorse;;");
	assert_match(first(MOAT_LEAK_WIFI_CREDENTIALS), "correcthorse");
	NO(WIFI_CREDENTIALS, "WIFI:S:Guest;T:nopass;P:;;");
	NO(WIFI_CREDENTIALS, "{\"ssid\":\"HomeNet\",\"rssi\":-55}");
	NO(WIFI_CREDENTIALS, "{\"ssid\":\"HomeNet\",\"psk\":\"\"}");
	NO(WIFI_CREDENTIALS, "{\"ssid\":\"HomeNet\",\"password\":\"****\"}");
	scan("{\"psk\":\"correcthorse\"}");
	assert_null(first(MOAT_LEAK_WIFI_CREDENTIALS));
	assert_non_null(first(MOAT_LEAK_CREDENTIAL));
	/* a password in another object than the ssid: a credential */
	scan("{\"net\":{\"ssid\":\"a\"},\"admin\":{\"password\":\"x9y8z7\"}}");
	assert_null(first(MOAT_LEAK_WIFI_CREDENTIALS));
	assert_non_null(first(MOAT_LEAK_CREDENTIAL));
}

/* ---- L7-L12 ------------------------------------------------------------------ */

#define JWT_HS256                                                             \
	"eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwiZXhw" \
	"Ijo0MTAyNDQ0ODAwfQ.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"
#define JWT_NONE "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0."
#define JWT_NOALG                                                             \
	"eyJ0eXAiOiJKV1QifQ.eyJzdWIiOiJ4In0.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_" \
	"adQssw5c"
#define JWT_EXPIRED                                                           \
	"eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4IiwiZXhwIjoxMDAwMDAwMDAwfQ.SflKxwRJS" \
	"MeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"

static void test_http_auth(void **state)
{
	(void)state;
	YES(HTTP_AUTH, "Authorization: Basic dXNlcjpwYXNz");
	assert_match(first(MOAT_LEAK_HTTP_AUTH), "dXNlcjpwYXNz");
	assert_null(first(MOAT_LEAK_CREDENTIAL));
	YES(HTTP_AUTH, "{\"Authorization\":\"Basic YWRtaW46YWRtaW4=\"}");
	assert_true(first(MOAT_LEAK_HTTP_AUTH)->flags &
		    MOAT_LEAK_F_WEAK_PASSWORD);
	YES(HTTP_AUTH, "Authorization: Bearer 1a2b3c4d5e6f7g8h9i0jKLMNOP");
	NO(HTTP_AUTH, "Authorization: Basic dGVzdA==");
	scan("Authorization: Basic dGVzdA==");
	assert_null(first(MOAT_LEAK_CREDENTIAL));
	NO(HTTP_AUTH, "basic auth enabled");
	NO(HTTP_AUTH, "Basic configuration loaded");
	NO(HTTP_AUTH, "Authorization: Bearer <token>");
	NO(HTTP_AUTH, "Bearer token expired, refreshing");
	NO(HTTP_AUTH, "Bearer aaaaaaaaaaaaaaaaaaaaaaaa");
	/* a bearer JWT is a jwt */
	scan("Authorization: Bearer " JWT_HS256);
	assert_non_null(first(MOAT_LEAK_JWT));
	assert_null(first(MOAT_LEAK_HTTP_AUTH));
}

static void test_jwt(void **state)
{
	(void)state;
	YES(JWT, "{\"token\":\"" JWT_HS256 "\"}");
	const struct moat_leak_finding *f = first(MOAT_LEAK_JWT);
	assert_match(f, JWT_HS256);
	assert_string_equal(f->preview, "JWT alg=HS256");
	assert_false(f->flags & MOAT_LEAK_F_EXPIRED);
	assert_null(first(MOAT_LEAK_CREDENTIAL));
	YES(JWT, "id=" JWT_NONE " rest");
	assert_int_equal(first(MOAT_LEAK_JWT)->severity,
			 MOAT_LEAK_SEV_CRITICAL);
	assert_true(first(MOAT_LEAK_JWT)->flags & MOAT_LEAK_F_ALG_NONE);
	YES(JWT, JWT_EXPIRED);
	assert_true(first(MOAT_LEAK_JWT)->flags & MOAT_LEAK_F_EXPIRED);
	NO(JWT, JWT_NOALG);
	NO(JWT, "eyJhbGciOiJIUzI1NiJ9 header only");
	NO(JWT, "cursor=eyJwYWdlIjoyfQ.eyJvZmZzZXQiOjUwfQ");
	NO(JWT, "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln");
	NO(JWT, "eyAAAAAAAAAAAAAAAAAAAA.eyBBBBBBBBBBBBBBBBB.CCCCCCCCCCCCCCCCCCCC");
}

#define PEM_BODY                                                              \
	"MHcCAQEEIBkg4LVWM9nuwNSk3yByxZpYRTBnVJk5cJPgLY1zXQ8LoAoGCCqGSM49\n"    \
	"AwEHoUQDQgAEMx6xNnEXnJg1bjcFgGmR9uVLs7KCYGMzLQd3CfPQm0hbGH1yWsMx\n"    \
	"c4SqQm8uyOFnOXrYG7yLJRQ0kRw6pDgfNQ==\n"

static void test_private_key(void **state)
{
	(void)state;
	const char *pem = "-----BEGIN EC PRIVATE KEY-----\n" PEM_BODY
			  "-----END EC PRIVATE KEY-----";
	YES(PRIVATE_KEY, pem);
	assert_match(first(MOAT_LEAK_PRIVATE_KEY), pem);
	assert_int_equal(first(MOAT_LEAK_PRIVATE_KEY)->severity,
			 MOAT_LEAK_SEV_CRITICAL);
	YES(PRIVATE_KEY, "{\"key\":\"-----BEGIN RSA PRIVATE KEY-----\\n"
			 "MHcCAQEEIBkg4LVWM9nuwNSk3yByxZpYRTBnVJk5cJPgLY1zXQ8LoAoGCCqGSM49"
			 "\\nAwEHoUQDQgAEMx6xNnEXnJg1bjcFgGmR9uVLs7KCYGMzLQd3CfPQm0hbGH1"
			 "\\n-----END RSA PRIVATE KEY-----\"}");
	assert_null(first(MOAT_LEAK_GENERIC_SECRET));
	YES(PRIVATE_KEY, "-----BEGIN OPENSSH PRIVATE KEY----- "
			 "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtz");
	assert_true(first(MOAT_LEAK_PRIVATE_KEY)->flags &
		    MOAT_LEAK_F_TRUNCATED);
	YES(PRIVATE_KEY, "-----BEGIN ENCRYPTED PRIVATE KEY-----\n" PEM_BODY
			 "-----END ENCRYPTED PRIVATE KEY-----");
	assert_int_equal(first(MOAT_LEAK_PRIVATE_KEY)->severity,
			 MOAT_LEAK_SEV_HIGH);
	NO(PRIVATE_KEY, "-----BEGIN PUBLIC KEY-----\n" PEM_BODY
			"-----END PUBLIC KEY-----");
	NO(PRIVATE_KEY, "-----BEGIN CERTIFICATE-----\n" PEM_BODY
			"-----END CERTIFICATE-----");
	NO(PRIVATE_KEY, "-----BEGIN PRIVATE KEY-----\n...\n"
			"-----END PRIVATE KEY-----");
	NO(PRIVATE_KEY, "loaded the private key from /etc/moat/key.pem");
}

static void test_url_credentials(void **state)
{
	(void)state;
	YES(URL_CREDENTIALS, "mqtt://admin:s3cret@broker.example.com:1883");
	assert_match(first(MOAT_LEAK_URL_CREDENTIALS), "s3cret");
	assert_null(strstr(first(MOAT_LEAK_URL_CREDENTIALS)->preview,
			   "s3cret"));
	YES(URL_CREDENTIALS, "{\"db\":\"postgres://app:Str0ngPw@db:5432/x\"}");
	YES(URL_CREDENTIALS, "redis://:secretpass@10.0.0.5:6379/0");
	YES(URL_CREDENTIALS, "mongodb+srv://u:p4ss@cluster0.mongodb.net/db");
	NO(URL_CREDENTIALS, "mqtt://broker.example.com:1883");
	NO(URL_CREDENTIALS, "mqtt://user@broker.example.com");
	NO(URL_CREDENTIALS, "postgres://app:***@db/x");
	NO(URL_CREDENTIALS, "redis://:${REDIS_PASS}@cache:6379");
	NO(URL_CREDENTIALS, "https://example.com/a:b@c");
	NO(URL_CREDENTIALS, "mqtt://:@broker");
}

static void test_aws_key(void **state)
{
	(void)state;
	YES(AWS_KEY, "aws_access_key_id=AKIAJ7QWERTYZXCV3BNM");
	assert_match(first(MOAT_LEAK_AWS_KEY), "AKIAJ7QWERTYZXCV3BNM");
	assert_int_equal(first(MOAT_LEAK_AWS_KEY)->severity,
			 MOAT_LEAK_SEV_CRITICAL);
	scan("AKIAIOSFODNN7EXAMPLE wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY");
	assert_int_equal(res.n, 2);
	assert_true(res.findings[0].flags & MOAT_LEAK_F_TEST_VALUE);
	assert_int_equal(res.findings[1].category, MOAT_LEAK_AWS_KEY);
	YES(AWS_KEY, "{\"aws_secret_access_key\":"
		     "\"Zt9QmW3rX7pL2vN8kB5cJ1hF6dS4gA0eQ7wE2rT5\"}");
	NO(AWS_KEY, "AKIAAAAAAAAAAAAAAAAA");
	NO(AWS_KEY, "AKIAJ7QWERTYZXCV3BN");
	NO(AWS_KEY, "XAKIAJ7QWERTYZXCV3BNM");
	NO(AWS_KEY, "arn:aws:iam::123456789012:user/alice");
}

static void test_vendor_token(void **state)
{
	(void)state;
	YES(VENDOR_TOKEN, "token ghp_R2d2C3poBB8LukeLeiaHanSolo4Chewie99x");
	assert_string_equal(first(MOAT_LEAK_VENDOR_TOKEN)->preview, "ghp_****");
	YES(VENDOR_TOKEN, "{\"k\":\"glpat-Ab3dEf6hIj9kLm2nOp5q\"}");
	YES(VENDOR_TOKEN, "xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx");
	YES(VENDOR_TOKEN, "STRIPE=sk_live_51HxYzAbCdEfGhIjKlMnOpQrStUv");
	YES(VENDOR_TOKEN, "sk_test_51HxYzAbCdEfGhIjKlMnOpQrStUv");
	assert_true(first(MOAT_LEAK_VENDOR_TOKEN)->flags &
		    MOAT_LEAK_F_TEST_VALUE);
	YES(VENDOR_TOKEN, "AIzaSyD-9tSrke72PouQMnMX-a7eZSW0jkFMBWY");
	YES(VENDOR_TOKEN, "https://hooks.slack.com/services/T0ABCDEF1/B0ABCDEF2/"
			  "abcdefGHIJKLmnopQRSTuvwx");
	YES(VENDOR_TOKEN, "HostName=h.azure-devices.net;DeviceId=d;"
			  "SharedAccessKey=q8Zt2LmX9pR4vB7nK3wE6yH1aB2cD3eF4gH5iJ6kL7m=");
	YES(VENDOR_TOKEN, "bot 123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsawQ");
	YES(VENDOR_TOKEN, "ya29.a0AfH6SMBx1234567890abcdefghijklmnopqrstuvwxyzABCD");
	/* a vendor token under a credential key: the vendor token */
	scan("{\"token\":\"ghp_R2d2C3poBB8LukeLeiaHanSolo4Chewie99x\"}");
	assert_null(first(MOAT_LEAK_CREDENTIAL));
	NO(VENDOR_TOKEN, "ghp_short123");
	NO(VENDOR_TOKEN, "xoxb-your-token-here");
	NO(VENDOR_TOKEN, "ghp_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
	NO(VENDOR_TOKEN, "pip install stripe sk_live_");
}

/* ---- L14-L17, L22 ------------------------------------------------------------ */

static void test_payment_card(void **state)
{
	(void)state;
	YES(PAYMENT_CARD, "card 4111 1111 1111 1111 exp 12/25");
	assert_match(first(MOAT_LEAK_PAYMENT_CARD), "4111 1111 1111 1111");
	assert_string_equal(first(MOAT_LEAK_PAYMENT_CARD)->preview, "****1111");
	assert_true(first(MOAT_LEAK_PAYMENT_CARD)->flags &
		    MOAT_LEAK_F_TEST_VALUE);
	YES(PAYMENT_CARD, "{\"pan\":\"5425233430109903\"}");
	YES(PAYMENT_CARD, "amex 3714 496353 98431 declined");
	YES(PAYMENT_CARD, "charged 6011-0009-9013-9424");
	YES(PAYMENT_CARD, "2024-01-01,kiosk,4532015112830366,EUR");
	YES(PAYMENT_CARD, "{\"card\":4532015112830366}");
	/* valid vs off by one */
	NO(PAYMENT_CARD, "card 4111 1111 1111 1112");
	NO(PAYMENT_CARD, "{\"pan\":\"5425233430109904\"}");
	NO(PAYMENT_CARD, "4111-1111 1111-1111");
	NO(PAYMENT_CARD, "ts 1700000000123");
	NO(PAYMENT_CARD, "{\"ts\":1712345678901234}");
	NO(PAYMENT_CARD, "{\"p\":0.4111111111111111}");
	NO(PAYMENT_CARD, "call +4111111111111111");
	NO(PAYMENT_CARD, "4444444444444444");
	NO(PAYMENT_CARD, "9111111111111111");
	NO(PAYMENT_CARD, "imei 4111111111111111");
	NO(PAYMENT_CARD, "x4111111111111111");
}

static void test_iban(void **state)
{
	(void)state;
	YES(IBAN, "IBAN DE89 3704 0044 0532 0130 00");
	assert_match(first(MOAT_LEAK_IBAN), "DE89 3704 0044 0532 0130 00");
	assert_string_equal(first(MOAT_LEAK_IBAN)->preview, "DE89 ****3000");
	YES(IBAN, "{\"iban\":\"GB33BUKB20201555555555\"}");
	YES(IBAN, "FR14 2004 1010 0505 0001 3M02 606");
	YES(IBAN, "NL91ABNA0417164300,");
	/* bad check digits, lengths and countries */
	NO(IBAN, "IBAN DE88 3704 0044 0532 0130 00");
	NO(IBAN, "GB34BUKB20201555555555");
	NO(IBAN, "DE8937040044053201300");
	NO(IBAN, "DE893704004405320130001");
	NO(IBAN, "XX12345678901234");
	NO(IBAN, "part DE12ABCD5678 in stock");
}

static void test_national_id(void **state)
{
	(void)state;
	YES(NATIONAL_ID, "SSN: 536-22-1234");
	assert_match(first(MOAT_LEAK_NATIONAL_ID), "536-22-1234");
	assert_string_equal(first(MOAT_LEAK_NATIONAL_ID)->preview,
			    "***-**-1234");
	YES(NATIONAL_ID, "social security number 457 55 5462 verified");
	YES(NATIONAL_ID, "{\"ssn\":\"536221234\"}");
	YES(NATIONAL_ID, "NI number AB 12 34 56 C");
	YES(NATIONAL_ID, "{\"dni\":\"12345678Z\"}");
	YES(NATIONAL_ID, "{\"aadhaar\":\"2345 6789 0124\"}");
	YES(NATIONAL_ID, "{\"bsn\":\"111222333\"}");
	NO(NATIONAL_ID, "{\"bsn\":\"111222334\"}");
	NO(NATIONAL_ID, "{\"dni\":\"12345678A\"}");
	NO(NATIONAL_ID, "ref 457 55 5462");
	YES(NATIONAL_ID, "SSN 536221234 on file");
	NO(NATIONAL_ID, "ref 536221234");
	NO(NATIONAL_ID, "ssn 000-12-3456");
	NO(NATIONAL_ID, "ssn 666-12-3456");
	NO(NATIONAL_ID, "ssn 912-34-5678");
	NO(NATIONAL_ID, "ssn 123-45-6789");
	NO(NATIONAL_ID, "ssn 536-00-1234");
	NO(NATIONAL_ID, "ssn 536-22-0000");
	NO(NATIONAL_ID, "tel 555-123-4567");
	NO(NATIONAL_ID, "part AB123456C in stock");
	NO(NATIONAL_ID, "2024-11-1234");
}

static void test_device_id(void **state)
{
	(void)state;
	YES(DEVICE_ID, "modem IMEI: 490154203237518 registered");
	assert_match(first(MOAT_LEAK_DEVICE_ID), "490154203237518");
	assert_string_equal(first(MOAT_LEAK_DEVICE_ID)->preview,
			    "imei:****7518");
	YES(DEVICE_ID, "IMEI 35-209900-176148-1");
	YES(DEVICE_ID, "{\"imei\":\"356938035643809\"}");
	YES(DEVICE_ID, "sim iccid=89014103211118510720");
	YES(DEVICE_ID, "89014103211118510720");
	YES(DEVICE_ID, "{\"imsi\":\"310150123456789\"}");
	YES(DEVICE_ID, "imsi 310150123456789");
	YES(DEVICE_ID, "{\"android_id\":\"9774d56d682e549c\"}");
	YES(DEVICE_ID, "{\"DevEUI\":\"70B3D57ED005A1B2\"}");
	NO(DEVICE_ID, "{\"dev_eui\":\"0000000000000000\"}");
	NO(DEVICE_ID, "counter 490154203237518 packets");
	NO(DEVICE_ID, "imei 490154203237519");
	NO(DEVICE_ID, "{\"imei\":\"000000000000000\"}");
	NO(DEVICE_ID, "89014103211118510721");
	NO(DEVICE_ID, "{\"idfa\":\"00000000-0000-0000-0000-000000000000\"}");
}

static void test_vehicle_id(void **state)
{
	(void)state;
	YES(VEHICLE_ID, "1HGCM82633A004352 checked in");
	assert_string_equal(first(MOAT_LEAK_VEHICLE_ID)->preview,
			    "1HG**************");
	YES(VEHICLE_ID, "{\"vin\":\"5YJ3E1EA7KF317000\"}");
	YES(VEHICLE_ID, "VIN: WVWZZZ1JZXW000001");
	NO(VEHICLE_ID, "1HGCM82634A004352");
	NO(VEHICLE_ID, "WVWZZZ1JZXW000001");
	NO(VEHICLE_ID, "{\"fleet_id\":\"FLEET2024ALPHA001\"}");
	NO(VEHICLE_ID, "{\"hash\":\"ABCDEF0123456789A\"}");
	NO(VEHICLE_ID, "1HGCM82633A0043521");
}

/* ---- L18-L20 ---------------------------------------------------------------- */

static void test_health(void **state)
{
	(void)state;
	YES(HEALTH, "{\"heart_rate\":72,\"spo2\":97}");
	assert_string_equal(first(MOAT_LEAK_HEALTH)->preview, "heart_rate=***");
	YES(HEALTH, "{\"bp\":\"128/84\"}");
	YES(HEALTH, "{\"glucose_mmol\":6.1}");
	YES(HEALTH, "{\"body_temp\":37.8}");
	YES(HEALTH, "hr=88 bpm");
	YES(HEALTH, "BP 128/84 mmHg at 08:00");
	YES(HEALTH, "glucose 105 mg/dL");
	YES(HEALTH, "SpO2: 97%");
	YES(HEALTH, "patient 3 heart rate 142 alarm");
	YES(HEALTH, "BP 120/80");
	YES(HEALTH, "blood sugar 105");
	NO(HEALTH, "pulse 1234 counted");
	NO(HEALTH, "BP 120 ok");
	YES(HEALTH, "{\"resourceType\":\"Observation\",\"valueQuantity\":"
		    "{\"value\":72}}");
	scan("MSH|^~\\&|ADT1|MCM|LAB|MCM|198808181126||ADT^A01|1|P|2.4\r"
	     "PID|1||PATID1234^5^M11||JONES^WILLIAM^A||19610615|M");
	assert_non_null(first(MOAT_LEAK_HEALTH));
	assert_non_null(first(MOAT_LEAK_PERSON));
	assert_int_equal(first(MOAT_LEAK_HEALTH)->severity,
			 MOAT_LEAK_SEV_CRITICAL);
	/* linked to a person or a precise location */
	scan("{\"patient_id\":\"P-10442\",\"hr\":88}");
	assert_true(first(MOAT_LEAK_HEALTH)->flags & MOAT_LEAK_F_LINKED);
	scan("{\"hr\":88}");
	assert_int_equal(first(MOAT_LEAK_HEALTH)->severity, MOAT_LEAK_SEV_HIGH);
	/* implausible values and look-alikes */
	NO(HEALTH, "{\"hr\":14,\"min\":30}");
	NO(HEALTH, "{\"heart_rate\":0}");
	NO(HEALTH, "{\"heart_rate\":400}");
	NO(HEALTH, "{\"spo2\":120}");
	NO(HEALTH, "{\"pulse_count\":1234}");
	NO(HEALTH, "{\"bp\":1013.2}");
	NO(HEALTH, "{\"temp\":37.5}");
	NO(HEALTH, "fan 120 bpm");
	NO(HEALTH, "vacuum 760 mmHg");
}

static void test_person(void **state)
{
	(void)state;
	YES(PERSON, "{\"first_name\":\"Ana\",\"last_name\":\"Lopez\"}");
	assert_string_equal(first(MOAT_LEAK_PERSON)->preview, "A***");
	YES(PERSON, "{\"driver\":{\"name\":\"Kim Nguyen\"}}");
	assert_string_equal(first(MOAT_LEAK_PERSON)->path, "$.driver.name");
	YES(PERSON, "{\"resourceType\":\"Patient\",\"name\":[{\"family\":"
		    "\"Doe\",\"given\":[\"Jane\"]}]}");
	YES(PERSON, "{\"dob\":\"1975-04-12\"}");
	YES(PERSON, "Patient: John Doe, DOB 1975-04-12");
	YES(PERSON, "{\"address\":\"742 Evergreen Terrace, Springfield\"}");
	YES(PERSON, "{\"phone\":\"+34 612 345 678\"}");
	YES(PERSON, "{\"username\":\"john.smith\"}");
	YES(PERSON, "patient_name=Maria_Garcia");
	YES(PERSON, "Contact: Maria Rossi, +39 333 123 4567");
	NO(PERSON, "contact: support team");
	NO(PERSON, "{\"name\":\"Living Room Lamp\"}");
	NO(PERSON, "{\"user\":\"admin\"}");
	NO(PERSON, "{\"username\":\"homeassistant\"}");
	NO(PERSON, "{\"owner\":\"root\"}");
	NO(PERSON, "{\"dob\":\"2099-01-01\"}");
	NO(PERSON, "{\"dob\":\"1990-02-30\"}");
	NO(PERSON, "{\"address\":\"0x3F\"}");
	NO(PERSON, "{\"driver\":\"modbus\"}");
	NO(PERSON, "{\"phone\":\"1111111\"}");
	scan("{\"email\":\"john.smith@example.com\"}");
	assert_non_null(first(MOAT_LEAK_EMAIL));
	assert_null(first(MOAT_LEAK_PERSON));
}

static void test_internal_hostname(void **state)
{
	(void)state;
	YES(INTERNAL_HOSTNAME, "resolving nas01.local failed");
	assert_match(first(MOAT_LEAK_INTERNAL_HOSTNAME), "nas01.local");
	YES(INTERNAL_HOSTNAME, "{\"server\":\"db-prod-3.internal\"}");
	YES(INTERNAL_HOSTNAME, "router.home.arpa");
	YES(INTERNAL_HOSTNAME, "backup to \\\\fileserver\\share done");
	YES(INTERNAL_HOSTNAME, "{\"path\":\"\\\\\\\\fileserver\\\\share\"}");
	YES(INTERNAL_HOSTNAME, "C:\\Users\\jdoe\\AppData\\app.log");
	YES(INTERNAL_HOSTNAME, "hostname=plc-line2");
	YES(INTERNAL_HOSTNAME, "mdns: printer-3f._ipp._tcp.local");
	NO(INTERNAL_HOSTNAME, "x.local.example.com");
	NO(INTERNAL_HOSTNAME, "self.internal = True");
	NO(INTERNAL_HOSTNAME, "docker-compose.local.yml");
	NO(INTERNAL_HOSTNAME, "localhost:1883");
	NO(INTERNAL_HOSTNAME, "C:\\Users\\Public\\x");
	NO(INTERNAL_HOSTNAME, "www.example.com/local");
	NO(INTERNAL_HOSTNAME, "{\"hostname\":\"localhost\"}");
}

/* ---- the API --------------------------------------------------------------------- */

static void test_clean_telemetry(void **state)
{
	(void)state;
	CLEAN("{\"temp\":21.5,\"hum\":40.1,\"ts\":\"2024-06-01T10:00:00.123Z\"}");
	CLEAN("2024-06-01T10:00:00Z,dev-001,22.5,41,612");
	CLEAN("temp=21.5 hum=40.1 batt=87%");
	CLEAN("{\"id\":123456789,\"seq\":42,\"ts\":1700000000123}");
	CLEAN("{\"readings\":[1.234,1.256,1.301],\"unit\":\"kW\"}");
	CLEAN("");
	CLEAN("OK");
	CLEAN("\x00\x01\x02\xff\xfe");
}

static void test_budget(void **state)
{
	(void)state;
	struct moat_leak_opts o = {0, 64, 0, test_key};
	struct moat_leak_db *d;
	struct moat_leak_scratch *s;
	char err[128];
	assert_int_equal(moat_leak_db_new(&o, &d, err, sizeof(err)), MOAT_OK);
	assert_int_equal(moat_leak_db_budget(d), 64);
	assert_int_equal(moat_leak_scratch_new(d, &s), MOAT_OK);
	char msg[200];
	memset(msg, 'x', sizeof(msg));
	memcpy(msg + 10, " 10.0.0.1 ", 10);
	memcpy(msg + 150, " 10.0.0.2 ", 10);
	scan_with(d, s, msg, sizeof(msg));
	assert_int_equal(res.scanned, 64);
	assert_true(res.flags & MOAT_LEAK_R_BUDGET);
	assert_int_equal(res.n, 1);
	assert_int_equal(res.findings[0].start, 11);
	/* a match cut by the budget is not reported */
	memcpy(msg + 58, " 10.0.0.3", 9);
	scan_with(d, s, msg, sizeof(msg));
	assert_int_equal(res.n, 1);
	moat_leak_scratch_free(s);
	moat_leak_db_free(d);
	o.budget = MOAT_LEAK_MAX_BUDGET + 1;
	assert_int_equal(moat_leak_db_new(&o, &d, err, sizeof(err)),
			 MOAT_EINVAL);
	assert_null(d);
	o.budget = 0;
	o.json_depth = MOAT_LEAK_MAX_JSON_DEPTH + 1;
	assert_int_equal(moat_leak_db_new(&o, &d, err, sizeof(err)),
			 MOAT_EINVAL);
	o.json_depth = 0;
	o.categories = 1u << 30;
	assert_int_equal(moat_leak_db_new(&o, &d, err, sizeof(err)),
			 MOAT_EINVAL);
}

static void test_truncation(void **state)
{
	(void)state;
	size_t n = 100, len = 0;
	char *msg = malloc(n * 12 + 1);
	assert_non_null(msg);
	for (size_t i = 0; i < n; i++)
		len += (size_t)sprintf(msg + len, "10.0.%zu.%zu ", i / 250,
				       i % 250 + 1);
	scan_with(db, scr, msg, len);
	assert_int_equal(res.n, MOAT_LEAK_MAX_FINDINGS);
	assert_int_equal(res.total, n);
	assert_true(res.flags & MOAT_LEAK_R_TRUNCATED);
	for (size_t i = 1; i < res.n; i++)
		assert_true(res.findings[i - 1].start < res.findings[i].start);
	free(msg);
}

static void test_categories_subset(void **state)
{
	(void)state;
	struct moat_leak_opts o = {MOAT_LEAK_BIT(MOAT_LEAK_EMAIL), 0, 0,
				   test_key};
	struct moat_leak_db *d;
	struct moat_leak_scratch *s;
	assert_int_equal(moat_leak_db_new(&o, &d, NULL, 0), MOAT_OK);
	assert_int_equal(moat_leak_db_categories(d),
			 MOAT_LEAK_BIT(MOAT_LEAK_EMAIL));
	assert_int_equal(moat_leak_scratch_new(d, &s), MOAT_OK);
	const char *m = "{\"password\":\"x1y2z3\",\"ip\":\"10.0.0.1\","
			"\"to\":\"a.b@example.com\"}";
	scan_with(d, s, m, strlen(m));
	assert_int_equal(res.n, 1);
	assert_int_equal(res.findings[0].category, MOAT_LEAK_EMAIL);
	/* a scratch belongs to its db */
	struct moat_leak_result r;
	assert_int_equal(moat_leak_scan(db, s, (const uint8_t *)"x", 1, &r),
			 MOAT_EINVAL);
	moat_leak_scratch_free(s);
	moat_leak_db_free(d);
	/* only the key-based wifi category */
	o.categories = MOAT_LEAK_BIT(MOAT_LEAK_WIFI_CREDENTIALS);
	assert_int_equal(moat_leak_db_new(&o, &d, NULL, 0), MOAT_OK);
	assert_int_equal(moat_leak_scratch_new(d, &s), MOAT_OK);
	m = "{\"ssid\":\"n\",\"psk\":\"p4ssw0rd\",\"ip\":\"10.0.0.1\"}";
	scan_with(d, s, m, strlen(m));
	assert_int_equal(res.n, 1);
	assert_int_equal(res.findings[0].category, MOAT_LEAK_WIFI_CREDENTIALS);
	moat_leak_scratch_free(s);
	moat_leak_db_free(d);
}

static void test_arguments(void **state)
{
	(void)state;
	struct moat_leak_result r;
	assert_int_equal(moat_leak_scan(NULL, scr, (const uint8_t *)"x", 1, &r),
			 MOAT_EINVAL);
	assert_int_equal(moat_leak_scan(db, NULL, (const uint8_t *)"x", 1, &r),
			 MOAT_EINVAL);
	assert_int_equal(moat_leak_scan(db, scr, NULL, 1, &r), MOAT_EINVAL);
	assert_int_equal(moat_leak_scan(db, scr, (const uint8_t *)"x", 1, NULL),
			 MOAT_EINVAL);
	assert_int_equal(moat_leak_scan(db, scr, NULL, 0, &r), 0);
	assert_int_equal(r.n, 0);
	assert_int_equal(moat_leak_db_new(NULL, NULL, NULL, 0), MOAT_EINVAL);
	assert_int_equal(moat_leak_scratch_new(NULL, NULL), MOAT_EINVAL);
	moat_leak_db_free(NULL);
	moat_leak_scratch_free(NULL);
	assert_int_equal(moat_leak_redact_inplace(NULL, 0, NULL), 0);
}

static void test_json_limits(void **state)
{
	(void)state;
	/* deeper than the walker goes: the rest is still scanned as text */
	char msg[512];
	size_t o = 0;
	for (int i = 0; i < 40; i++)
		o += (size_t)sprintf(msg + o, "{\"a\":");
	o += (size_t)sprintf(msg + o, "\"password=hunter22 10.0.0.1\"");
	for (int i = 0; i < 40; i++)
		msg[o++] = '}';
	msg[o] = '\0';
	scan(msg);
	assert_true(res.flags & MOAT_LEAK_R_JSON_ERROR);
	assert_non_null(first(MOAT_LEAK_CREDENTIAL));
	assert_non_null(first(MOAT_LEAK_PRIVATE_IPV4));
	/* broken JSON: what parsed is walked, the rest is text */
	scan("{\"ssid\":\"n\",\"psk\":\"p4ssw0rd\", oops token=abcd1234xyz");
	assert_true(res.flags & MOAT_LEAK_R_JSON_ERROR);
	assert_non_null(first(MOAT_LEAK_WIFI_CREDENTIALS));
	assert_non_null(first(MOAT_LEAK_CREDENTIAL));
	/* not a JSON number: the walk stops, the rest is text */
	scan("{\"ip\": 10.0.0.1}");
	assert_true(res.flags & MOAT_LEAK_R_JSON_ERROR);
	assert_non_null(first(MOAT_LEAK_PRIVATE_IPV4));
	assert_false(first(MOAT_LEAK_PRIVATE_IPV4)->flags &
		     MOAT_LEAK_F_JSON_SCALAR);
	/* several JSON documents in one message */
	scan("{\"a\":1}\n{\"password\":\"qwerty\"}");
	assert_false(res.flags & MOAT_LEAK_R_JSON_ERROR);
	assert_string_equal(first(MOAT_LEAK_CREDENTIAL)->path, "$.password");
	/* keys that need quoting in the path, long paths */
	scan("{\"a b\":{\"c\\\"d\":{\"password\":\"zz9zz9\"}}}");
	assert_string_equal(first(MOAT_LEAK_CREDENTIAL)->path,
			    "$[\"a b\"][\"c??d\"].password");
	scan("{\"list\":[{\"x\":1},{\"password\":\"zz9zz9\"}]}");
	assert_string_equal(first(MOAT_LEAK_CREDENTIAL)->path,
			    "$.list[1].password");
	o = 0;
	o += (size_t)sprintf(msg + o, "{");
	for (int i = 0; i < 12; i++)
		o += (size_t)sprintf(msg + o, "\"level_%02d_name\":{", i);
	o += (size_t)sprintf(msg + o, "\"password\":\"zz9zz9\"");
	for (int i = 0; i < 13; i++)
		msg[o++] = '}';
	msg[o] = '\0';
	scan(msg);
	const char *p = first(MOAT_LEAK_CREDENTIAL)->path;
	assert_true(strlen(p) < MOAT_LEAK_PATH_MAX);
	assert_string_equal(p + strlen(p) - 3, "...");
}

static void test_previews_hide_secrets(void **state)
{
	(void)state;
	static const char *const msgs[] = {
		"{\"password\":\"Tr0ub4dor&3xyz\"}",
		"mqtt://admin:s3cretpassw0rd@broker.example.com",
		"card 4111111111111111",
		"AKIAJ7QWERTYZXCV3BNM",
		"{\"encryption_key\":\"3q2+7wQz9XkLmN0pR5tV8yB1cE4gH6jK\"}",
		"IBAN DE89370400440532013000",
		"{\"ssn\":\"536-22-1234\"}",
		"Authorization: Basic dXNlcjpwYXNz",
		"{\"first_name\":\"Katarzyna\"}",
		"{\"dob\":\"1975-04-12\"}",
	};
	for (size_t i = 0; i < MOAT_ARRAY_LEN(msgs); i++) {
		scan(msgs[i]);
		assert_true(res.n > 0);
		for (size_t k = 0; k < res.n; k++) {
			const struct moat_leak_finding *f = &res.findings[k];
			size_t mn = f->end - f->start;
			if (mn >= 5)
				assert_null(memmem(f->preview,
						   strlen(f->preview),
						   copy + f->start, mn));
		}
	}
}

static void test_hmac(void **state)
{
	(void)state;
	scan("{\"password\":\"12345\"}");
	const struct moat_leak_finding *f = first(MOAT_LEAK_CREDENTIAL);
	assert_non_null(f);
	unsigned char mac[EVP_MAX_MD_SIZE];
	unsigned int ml = 0;
	assert_non_null(HMAC(EVP_sha256(), test_key, sizeof(test_key),
			     (const unsigned char *)"12345", 5, mac, &ml));
	char hex[33];
	for (int i = 0; i < 16; i++)
		sprintf(hex + 2 * i, "%02x", mac[i]);
	assert_string_equal(f->hmac, hex);
	/* the same secret elsewhere has the same HMAC */
	char h1[33];
	memcpy(h1, f->hmac, sizeof(h1));
	scan("pwd=12345");
	assert_string_equal(first(MOAT_LEAK_CREDENTIAL)->hmac, h1);
	/* another key, another HMAC; no key, a random one */
	uint8_t k2[MOAT_LEAK_KEY_LEN] = {1};
	struct moat_leak_opts o = {0, 0, 0, k2};
	struct moat_leak_db *d;
	struct moat_leak_scratch *s;
	assert_int_equal(moat_leak_db_new(&o, &d, NULL, 0), MOAT_OK);
	assert_int_equal(moat_leak_scratch_new(d, &s), MOAT_OK);
	scan_with(d, s, "pwd=12345", 9);
	assert_string_not_equal(res.findings[0].hmac, h1);
	moat_leak_scratch_free(s);
	moat_leak_db_free(d);
	assert_int_equal(moat_leak_db_new(NULL, &d, NULL, 0), MOAT_OK);
	assert_int_equal(moat_leak_scratch_new(d, &s), MOAT_OK);
	scan_with(d, s, "pwd=12345", 9);
	assert_string_not_equal(res.findings[0].hmac, h1);
	moat_leak_scratch_free(s);
	moat_leak_db_free(d);
}

static void redact_expect(const char *msg, const char *want_inplace,
			  const char *want_copy)
{
	scan(msg);
	uint8_t buf[512];
	size_t len = strlen(msg), got;
	memcpy(buf, msg, len);
	int rc = moat_leak_redact_copy(copy, copy_len, &res, buf, sizeof(buf),
				       &got);
	assert_int_equal(rc, MOAT_OK);
	if (got != strlen(want_copy) || memcmp(buf, want_copy, got))
		fail_msg("copy: '%.*s', expected '%s'", (int)got, buf,
			 want_copy);
	size_t need;
	assert_int_equal(moat_leak_redact_copy(copy, copy_len, &res, buf, 3,
					       &need),
			 MOAT_ELIMIT);
	assert_int_equal(need, got);
	memcpy(buf, copy, len);
	moat_leak_redact_inplace(buf, len, &res);
	if (memcmp(buf, want_inplace, len) || strlen(want_inplace) != len)
		fail_msg("in place: '%.*s', expected '%s'", (int)len, buf,
			 want_inplace);
}

static void test_redaction(void **state)
{
	(void)state;
	redact_expect("gw 10.0.0.1 up", "gw ******** up",
		      "gw [REDACTED:private_ipv4] up");
	redact_expect("{\"password\":\"12345\",\"n\":1}",
		      "{\"password\":\"*****\",\"n\":1}",
		      "{\"password\":\"[REDACTED:credential]\",\"n\":1}");
	/* a bare JSON number becomes a string of the same length */
	redact_expect("{\"pin\":123456}", "{\"pin\":\"****\"}",
		      "{\"pin\":\"[REDACTED:credential]\"}");
	/* escapes inside the range are overwritten whole */
	redact_expect("{\"password\":\"ab\\\"cd\\u00e9f\"}",
		      "{\"password\":\"*************\"}",
		      "{\"password\":\"[REDACTED:credential]\"}");
	/* a number that is only partly the match is redacted whole */
	redact_expect("{\"x\":-4111111111111111}", "{\"x\":\"***************\"}",
		      "{\"x\":\"[REDACTED:payment_card]\"}");
	/* nothing to redact */
	redact_expect("{\"t\":1}", "{\"t\":1}", "{\"t\":1}");
	/* JSON stays JSON after redaction */
	const char *m = "{\"lat\":48.858370,\"lon\":2.294481,\"pin\":1234,"
			"\"k\":\"-----BEGIN RSA PRIVATE KEY-----\\n"
			"MHcCAQEEIBkg4LVWM9nuwNSk3yByxZpYRTBnVJk5cJPgLY1zXQ8LoAoG"
			"\\nAwEHoUQDQgAEMx6xNnEXnJg1bjcFgGmR9uVLs7KCYGMzLQd3CfPQm0h"
			"\\n-----END RSA PRIVATE KEY-----\"}";
	scan(m);
	assert_int_equal(res.n, 4);
	uint8_t buf[512];
	size_t len = strlen(m);
	memcpy(buf, m, len);
	moat_leak_redact_inplace(buf, len, &res);
	scan_with(db, scr, (const char *)buf, len);
	assert_true(res.flags & MOAT_LEAK_R_JSON);
	assert_false(res.flags & MOAT_LEAK_R_JSON_ERROR);
	assert_int_equal(res.n, 0);
}

struct thread_arg {
	const char *msg;
	size_t want;
	int failures;
};

static void *scan_thread(void *p)
{
	struct thread_arg *a = p;
	struct moat_leak_scratch *s;
	if (moat_leak_scratch_new(db, &s) != MOAT_OK) {
		a->failures++;
		return NULL;
	}
	for (int i = 0; i < 2000; i++) {
		struct moat_leak_result r;
		int rc = moat_leak_scan(db, s, (const uint8_t *)a->msg,
					strlen(a->msg), &r);
		if (rc < 0 || (size_t)rc != a->want)
			a->failures++;
	}
	moat_leak_scratch_free(s);
	return NULL;
}

static void test_threads(void **state)
{
	(void)state;
	struct thread_arg args[4] = {
		{"{\"password\":\"12345\",\"ip\":\"10.0.0.1\"}", 2, 0},
		{"card 4111 1111 1111 1111 to jane@example.com", 2, 0},
		{"{\"lat\":48.858370,\"lon\":2.294481}", 2, 0},
		{"{\"temp\":21.5}", 0, 0},
	};
	pthread_t t[4];
	for (int i = 0; i < 4; i++)
		assert_int_equal(pthread_create(&t[i], NULL, scan_thread,
						&args[i]),
				 0);
	for (int i = 0; i < 4; i++) {
		pthread_join(t[i], NULL);
		assert_int_equal(args[i].failures, 0);
	}
}

static void test_alloc_failures(void **state)
{
	(void)state;
	for (long n = 1; n <= 3; n++) {
		struct moat_leak_db *d = NULL;
		moat_alloc_fail_at(n);
		int rc = moat_leak_db_new(NULL, &d, NULL, 0);
		moat_alloc_fail_at(0);
		if (rc == MOAT_OK) {
			struct moat_leak_scratch *s = NULL;
			moat_alloc_fail_at(1);
			assert_int_equal(moat_leak_scratch_new(d, &s),
					 MOAT_ENOMEM);
			moat_alloc_fail_at(0);
			assert_null(s);
			moat_leak_db_free(d);
		} else {
			assert_int_equal(rc, MOAT_ENOMEM);
			assert_null(d);
		}
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_names),
		T(test_private_ipv4),
		T(test_private_ipv6),
		T(test_mac),
		T(test_email),
		T(test_geolocation),
		T(test_credential),
		T(test_generic_secret),
		T(test_wifi),
		T(test_http_auth),
		T(test_jwt),
		T(test_private_key),
		T(test_url_credentials),
		T(test_aws_key),
		T(test_vendor_token),
		T(test_payment_card),
		T(test_iban),
		T(test_national_id),
		T(test_device_id),
		T(test_vehicle_id),
		T(test_health),
		T(test_person),
		T(test_internal_hostname),
		T(test_clean_telemetry),
		T(test_budget),
		T(test_truncation),
		T(test_categories_subset),
		T(test_arguments),
		T(test_json_limits),
		T(test_previews_hide_secrets),
		T(test_hmac),
		T(test_redaction),
		T(test_threads),
		T(test_alloc_failures),
	};
	int rc = cmocka_run_group_tests(tests, group_setup, group_teardown);
	cleanup_copy(NULL);
	return rc;
}
