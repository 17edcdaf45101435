/* Unit tests for bridges (docs/bridges.md): the connection sections of
 * the configuration (mosquitto's syntax, defaults, refusals) and the
 * topic mapping both ways. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "broker/bridge_int.h"
#include "config/cfg.h"

#include "test_util.h"

static struct moat_config *load(const char *text, int expect,
				const char *msg)
{
	static struct moat_config cfg;
	struct moat_cfg_err err = {{0}};
	moat_cfg_defaults(&cfg);
	int rc = moat_cfg_load_string(&cfg, "t.conf", text, strlen(text), &err);
	if (rc == MOAT_OK)
		rc = moat_cfg_finish(&cfg, &err);
	if (rc != expect)
		fail_msg("%s: rc %d, %s", text, rc, err.msg);
	if (msg && !strstr(err.msg, msg))
		fail_msg("%s: '%s' not in '%s'", text, msg, err.msg);
	return &cfg;
}

static void test_section(void **state)
{
	(void)state;
	struct moat_config *c = load(
		"connection cloud\naddress 10.0.0.1 broker.example:8883 "
		"[::1]:1884\ntopic a/# both 2 l/ r/\ntopic \"\" in 1 x/t y/t\n"
		"topic s/+\nremote_username u\nrestart_timeout 3\n"
		"bridge_protocol_version mqttv50\nconnection two\n"
		"address 127.0.0.1\ntopic # out\ntry_private false\n",
		MOAT_OK, NULL);
	assert_int_equal(c->nbridges, 2);
	const struct moat_bridge_cfg *b = &c->bridges[0];
	assert_string_equal(b->name, "cloud");
	assert_int_equal(b->naddrs, 3);
	assert_string_equal(b->addrs[0].host, "10.0.0.1");
	assert_int_equal(b->addrs[0].port, 1883);
	assert_string_equal(b->addrs[1].host, "broker.example");
	assert_int_equal(b->addrs[1].port, 8883);
	assert_string_equal(b->addrs[2].host, "::1");
	assert_int_equal(b->addrs[2].port, 1884);
	assert_int_equal(b->ntopics, 3);
	assert_int_equal(b->topics[0].dir, MOAT_BRIDGE_BOTH);
	assert_int_equal(b->topics[0].qos, 2);
	assert_string_equal(b->topics[1].pattern, "");
	assert_string_equal(b->topics[1].local_prefix, "x/t");
	assert_int_equal(b->topics[2].dir, MOAT_BRIDGE_OUT);
	assert_int_equal(b->topics[2].qos, 0);
	assert_int_equal(b->restart_base_ms, 3000);
	assert_int_equal(b->restart_cap_ms, 0);
	assert_int_equal(b->protocol_version, 1);
	assert_true(b->try_private);
	assert_true(b->notifications);
	assert_int_equal(b->keepalive, 60);
	/* mosquitto's defaults */
	assert_non_null(strstr(b->remote_clientid, ".cloud"));
	assert_string_equal(b->local_username, "cloud");
	assert_true(!strncmp(b->local_clientid, "local.", 6));
	assert_true(!strncmp(b->notification_topic, "$SYS/broker/connection/",
			     23));
	b = &c->bridges[1];
	assert_int_equal(b->restart_base_ms, 5000);
	assert_int_equal(b->restart_cap_ms, 30000);
	assert_false(b->try_private);
	assert_false(moat_bridge_tls(b));
}

static void test_refused(void **state)
{
	(void)state;
	load("address 1.2.3.4\n", MOAT_EINVAL, "after a 'connection' line");
	load("topic a out\n", MOAT_EINVAL, "after a 'connection' line");
	load("remote_username u\n", MOAT_EINVAL, "after a 'connection' line");
	load("connection a b\n", MOAT_EINVAL, "expected: connection NAME");
	load("connection a/b\n", MOAT_EINVAL, "expected: connection NAME");
	load("connection a\nconnection a\n", MOAT_EINVAL, "duplicate");
	load("connection a\ntopic x\n", MOAT_EINVAL, "needs an address");
	load("connection a\naddress h\n", MOAT_EINVAL, "topic line");
	load("connection a\naddress h:0\n", MOAT_EINVAL, "bad port");
	load("connection a\naddress h:99999\n", MOAT_EINVAL, "bad port");
	load("connection a\naddress [::1\n", MOAT_EINVAL, "bad address");
	load("connection a\naddress h\ntopic x sideways\n", MOAT_EINVAL,
	     "direction");
	load("connection a\naddress h\ntopic x in 3\n", MOAT_EINVAL, "QoS");
	load("connection a\naddress h\ntopic x in 1 a/# b/\n", MOAT_EINVAL,
	     "prefix");
	load("connection a\naddress h\ntopic a/#/b in\n", MOAT_EINVAL,
	     "valid topic filter");
	load("connection a\naddress h\ntopic \"\" in 1 a/\n", MOAT_EINVAL,
	     "both prefixes");
	load("connection a\naddress h\ntopic x\nrestart_timeout 0\n",
	     MOAT_EINVAL, "restart_timeout");
	load("connection a\naddress h\ntopic x\nrestart_timeout 9 3\n",
	     MOAT_EINVAL, "restart_timeout");
	load("connection a\naddress h\ntopic x\nremote_password p\n",
	     MOAT_EINVAL, "needs remote_username");
	load("connection a\naddress h\ntopic x\nbridge_certfile c\n",
	     MOAT_EINVAL, "go together");
	load("connection a\naddress h\ntopic x\nbridge_insecure true\n",
	     MOAT_EINVAL, "TLS bridges");
	load("connection a\naddress h\ntopic x\nstart_type lazy\n",
	     MOAT_EINVAL, "expected one of");
	load("connection a\naddress h\ntopic x\nbridge_protocol_version "
	     "mqttv31\n",
	     MOAT_EINVAL, "expected one of");
	load("connection a\naddress h\ntopic x\nremote_username u\n"
	     "remote_password p\nremote_password_file f\n",
	     MOAT_EINVAL, "exclude each other");
	char many[2048] = "connection a\naddress h\n";
	for (int i = 0; i < 17; i++)
		strcat(many, "topic x\n");
	load(many, MOAT_EINVAL, "at most 16");
}

static void map(const struct moat_bridge_cfg *bc, bool in, const char *t,
		const char *expect)
{
	char out[300];
	size_t n = 0;
	int rc = moat__bridge_map(bc, in, (const uint8_t *)t, strlen(t), out,
				  sizeof(out), &n);
	if (!expect) {
		assert_int_equal(rc, MOAT_ENOTFOUND);
		return;
	}
	assert_int_equal(rc, MOAT_OK);
	assert_int_equal(n, strlen(expect));
	assert_string_equal(out, expect);
}

static void test_map(void **state)
{
	(void)state;
	struct moat_config *c = load(
		"connection m\naddress h\n"
		"topic sensors/# out 1 \"\" site1/\n"
		"topic cmd/+ in 1 local/ remote/\n"
		"topic both/# both\n"
		"topic \"\" in 0 here/t there/t\n",
		MOAT_OK, NULL);
	const struct moat_bridge_cfg *b = &c->bridges[0];
	map(b, false, "sensors/t1", "site1/sensors/t1");
	map(b, false, "sensors", "site1/sensors"); /* '#' matches its parent */
	map(b, true, "site1/sensors/t1", NULL);    /* an out line */
	map(b, true, "remote/cmd/x", "local/cmd/x");
	map(b, true, "remote/cmd/x/y", NULL);      /* '+' is one level */
	map(b, false, "local/cmd/x", NULL);        /* an in line */
	map(b, true, "cmd/x", NULL);               /* without its prefix */
	map(b, false, "both/a", "both/a");
	map(b, true, "both/a", "both/a");
	map(b, true, "there/t", "here/t");
	map(b, true, "there/t/x", NULL);
	map(b, false, "other", NULL);
	/* Too small an output is an error, never an overflow. */
	char small[4];
	size_t n;
	assert_int_equal(moat__bridge_map(b, false, (const uint8_t *)"sensors/x",
					  9, small, sizeof(small), &n),
			 MOAT_ELIMIT);
	char f[64];
	assert_int_equal(moat__bridge_filter(&b->topics[1], true, f, sizeof(f)),
			 strlen("remote/cmd/+"));
	assert_string_equal(f, "remote/cmd/+");
}

static void test_state_topic(void **state)
{
	(void)state;
	static struct moat_broker b;
	b.cfg.nbridges = 1;
	snprintf(b.cfg.bridges[0].name, sizeof(b.cfg.bridges[0].name), "mine");
#define ST(t) moat__bridge_state_topic(&b, (const uint8_t *)(t), strlen(t))
	assert_true(ST("$SYS/broker/connection/host.cloud/state"));
	assert_false(ST("$SYS/broker/connection/mine/state"));
	assert_false(ST("$SYS/broker/connection//state"));
	assert_false(ST("$SYS/broker/connection/a/b/state"));
	assert_false(ST("$SYS/broker/connection/a/stat"));
	assert_false(ST("$SYS/broker/clients/connected"));
#undef ST
}

/* mosquitto's try_private: the bridge bit in a 3.x protocol level is
 * accepted and reported; not in 5 (or any other level). */
static void test_bridge_bit(void **state)
{
	(void)state;
	uint8_t body[] = {0x00, 0x04, 'M', 'Q', 'T', 'T', 0x84, 0x02,
			  0x00, 0x3c, 0x00, 0x01, 'b'};
	struct moat_mqtt_connect c;
	uint8_t rc;
	assert_int_equal(moat_mqtt_decode_connect(body, sizeof(body), &c, &rc),
			 MOAT_OK);
	assert_true(c.bridge);
	assert_int_equal(c.proto_level, MQTT_PROTO_V311);
	body[6] = 0x04;
	assert_int_equal(moat_mqtt_decode_connect(body, sizeof(body), &c, &rc),
			 MOAT_OK);
	assert_false(c.bridge);
	body[6] = 0x85;
	assert_int_equal(moat_mqtt_decode_connect(body, sizeof(body), &c, &rc),
			 MOAT_EPROTO);
	assert_int_equal(rc, MQTT_CONNACK_BAD_PROTOCOL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_section, setup_baseline,
						teardown_no_leaks),
		cmocka_unit_test_setup_teardown(test_refused, setup_baseline,
						teardown_no_leaks),
		cmocka_unit_test_setup_teardown(test_map, setup_baseline,
						teardown_no_leaks),
		cmocka_unit_test_setup_teardown(test_bridge_bit, setup_baseline,
						teardown_no_leaks),
		cmocka_unit_test_setup_teardown(test_state_topic,
						setup_baseline,
						teardown_no_leaks),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
