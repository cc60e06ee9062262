/* test-duration.c: the duration parser behind `t` and `asynctop set slow=`. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "Duration.h"

static uint64_t ok(const char *s)
{
    uint64_t ns = 12345;
    char err[96];
    assert_int_equal(Duration_parse(s, &ns, err, sizeof err), 0);
    assert_string_equal(err, "");
    return ns;
}

static void bad(const char *s, const char *want_in_msg)
{
    uint64_t ns = 777;
    char err[96];
    assert_int_equal(Duration_parse(s, &ns, err, sizeof err), -1);
    assert_int_equal(ns, 777); /* untouched */
    assert_non_null(strstr(err, want_in_msg));
}

static void test_forms(void **state)
{
    assert_int_equal(ok("50ms"), 50000000ull);
    assert_int_equal(ok("0.2s"), 200000000ull);
    assert_int_equal(ok("250"), 250000000ull);
    assert_int_equal(ok("1.5s"), 1500000000ull);
    assert_int_equal(ok("500us"), 500000ull);
    assert_int_equal(ok("500\xc2\xb5s"), 500000ull);
    assert_int_equal(ok("  20 ms "), 20000000ull);
    assert_int_equal(ok("7ns"), 7ull);
    assert_int_equal(ok("1.000000001s"), 1000000001ull);
    assert_int_equal(ok("0.0000000019s"), 1ull); /* digits past ns are dropped */
    assert_int_equal(ok(".5s"), 500000000ull);
    assert_int_equal(ok("3."), 3000000ull);
    assert_int_equal(ok("+10ms"), 10000000ull);
    assert_int_equal(ok("0"), 0ull);
    assert_int_equal(ok("3600s"), DURATION_MAX_NS);
}

static void test_bad(void **state)
{
    bad("", "empty");
    bad("   ", "empty");
    bad("abc", "not a number");
    bad("ms", "not a number");
    bad("-5ms", "negative");
    bad("5 m s", "unknown unit");
    bad("5min", "unknown unit");
    bad("5msx", "unknown unit");
    bad("3601s", "too long");
    bad("99999999999999999999999999s", "too long");
    bad("1.2.3", "unknown unit");
    bad(".", "not a number");
    assert_int_equal(Duration_parse(NULL, NULL, NULL, 0), -1);
    char tiny[4];
    assert_int_equal(Duration_parse("x", NULL, tiny, sizeof tiny), -1);
    assert_int_equal(strlen(tiny), 3);
}

static void test_format(void **state)
{
    char b[32];
    assert_string_equal(Duration_format(500, b, sizeof b), "500ns");
    assert_string_equal(Duration_format(850000, b, sizeof b), "850us");
    assert_string_equal(Duration_format(2500000, b, sizeof b), "2.5ms");
    assert_string_equal(Duration_format(50000000, b, sizeof b), "50ms");
    assert_string_equal(Duration_format(1500000000, b, sizeof b), "1.5s");
    assert_string_equal(Duration_format(125000000000ull, b, sizeof b), "2m05s");
    assert_string_equal(Duration_format(7200000000000ull, b, sizeof b), "2h00m");
    assert_string_equal(Duration_format(UINT64_MAX, b, sizeof b), "213503d23h");
    /* what format prints, parse reads back (for the units parse knows) */
    uint64_t ns;
    assert_int_equal(Duration_parse(Duration_format(20000000, b, sizeof b), &ns, NULL, 0), 0);
    assert_int_equal(ns, 20000000);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_forms),
        cmocka_unit_test(test_bad),
        cmocka_unit_test(test_format),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
