/* Unit tests for moat bench's payloads (apps/moat/bench_payload.c): the
 * binary header, and JSON templates whose first member carries the
 * header as hex: build, stamp and read back; the built-in telemetry mix
 * is JSON; template files are checked line by line. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "bench.h"

#include "test_util.h"

static void roundtrip(struct bench_cfg *cfg, uint32_t pub)
{
	uint8_t *p;
	size_t n;
	assert_int_equal(bench_payload_build(cfg, pub, &p, &n), MOAT_OK);
	bench_payload_stamp(cfg, p, 0x0123456789abcdefu, 42);
	uint32_t rp;
	uint64_t seq, ts;
	assert_true(bench_payload_read(p, n, &rp, &seq, &ts));
	assert_int_equal(rp, pub);
	assert_true(seq == 0x0123456789abcdefu);
	assert_int_equal(ts, 42);
	if (cfg->payloads) { /* a JSON object */
		assert_int_equal(p[0], '{');
		assert_int_equal(p[n - 1], '}');
		assert_null(memchr(p, '\0', n));
	}
	moat_free(p);
}

static void test_binary(void **state)
{
	(void)state;
	struct bench_cfg cfg = {.size = 64};
	assert_int_equal(bench_payload_load(&cfg), MOAT_OK);
	roundtrip(&cfg, 7);
	uint8_t junk[64] = "not ours";
	uint32_t rp;
	uint64_t seq, ts;
	assert_false(bench_payload_read(junk, sizeof(junk), &rp, &seq, &ts));
	assert_false(bench_payload_read(junk, 3, &rp, &seq, &ts));
}

static void test_telemetry(void **state)
{
	(void)state;
	struct bench_cfg cfg = {.size = 64, .payload = "telemetry"};
	assert_int_equal(bench_payload_load(&cfg), MOAT_OK);
	assert_true(cfg.size >= 100 && cfg.size <= 250);
	for (uint32_t i = 0; i < 8; i++)
		roundtrip(&cfg, i * 1000003u);
	/* the readings follow the sequence number, lengths stay */
	uint8_t *a, *b;
	size_t na, nb;
	assert_int_equal(bench_payload_build(&cfg, 0, &a, &na), MOAT_OK);
	assert_int_equal(bench_payload_build(&cfg, 0, &b, &nb), MOAT_OK);
	bench_payload_stamp(&cfg, a, 1, 42);
	bench_payload_stamp(&cfg, b, 2, 42);
	assert_int_equal(na, nb);
	assert_memory_not_equal(a + 49, b + 49, na - 49);
	assert_non_null(memmem(a, na, "\"battery\":8", 11));
	moat_free(a);
	moat_free(b);
	/* a header with a bad hex digit is not ours */
	static const char bad[] =
		"{\"_b\":\"0000000g000000000000000000000000000000ff\",\"a\":1}";
	uint32_t rp;
	uint64_t seq, ts;
	assert_false(bench_payload_read((const uint8_t *)bad, strlen(bad), &rp,
					&seq, &ts));
	bench_payload_free(&cfg);
}

static void test_file(void **state)
{
	(void)state;
	char path[] = "/tmp/moat-bench-payload-XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	FILE *f = fdopen(fd, "w");
	fputs("{\"temp\":21.5}\n\n{}\n{\"a\":[1,2],\"b\":\"x\"}\n", f);
	fclose(f);
	struct bench_cfg cfg = {.size = 64, .payload = path};
	assert_int_equal(bench_payload_load(&cfg), MOAT_OK);
	roundtrip(&cfg, 0);
	roundtrip(&cfg, 1); /* "{}": the header alone */
	roundtrip(&cfg, 2);
	bench_payload_free(&cfg);
	f = fopen(path, "w");
	fputs("{\"ok\":1}\nnot json\n", f);
	fclose(f);
	assert_int_equal(bench_payload_load(&cfg), 2); /* usage error */
	assert_null(cfg.payloads);
	unlink(path);
	cfg.payload = "/nonexistent/payloads";
	assert_int_equal(bench_payload_load(&cfg), 2);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_binary),
		T(test_telemetry),
		T(test_file),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
