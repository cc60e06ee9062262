/* test-loopmon-config.c: strict parsing of ASYNCTOP_SLOW_MS / ASYNCTOP_DEBUG, and the
 * process-wide debug flag and threshold. */
#include "test-loopmon-util.h"

#include <errno.h>
#include <stdlib.h>

static void test_parse_ms(void **state)
{
    (void)state;
    static const struct {
        const char *s;
        int rc;
        uint64_t ns;
    } cases[] = {
        {"100", 0, 100000000ull},
        {"0", 0, 0},
        {"20", 0, 20000000ull},
        {"0.5", 0, 500000ull},
        {"250.125", 0, 250125000ull},
        {"1.000001", 0, 1000001ull},
        {"86400000", 0, 86400000000000ull},
        {"007", 0, 7000000ull},
        {"86400000.1", -ERANGE, 0},
        {"86400001", -ERANGE, 0},
        {"99999999999999999999", -ERANGE, 0},
        {"", -EINVAL, 0},
        {" 100", -EINVAL, 0},
        {"100 ", -EINVAL, 0},
        {"100ms", -EINVAL, 0},
        {"-5", -EINVAL, 0},
        {"+5", -EINVAL, 0},
        {"1e3", -EINVAL, 0},
        {"0x10", -EINVAL, 0},
        {"1.", -EINVAL, 0},
        {".5", -EINVAL, 0},
        {"1.0000001", -EINVAL, 0},
        {"nan", -EINVAL, 0},
        {"inf", -EINVAL, 0},
        {"1,5", -EINVAL, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        uint64_t ns = 12345;
        int rc = at__parse_ms(cases[i].s, &ns);
        if (rc != cases[i].rc)
            fail_msg("at__parse_ms(\"%s\") = %d, want %d", cases[i].s, rc, cases[i].rc);
        if (rc == 0 && ns != cases[i].ns)
            fail_msg("at__parse_ms(\"%s\") gave %llu ns", cases[i].s, (unsigned long long)ns);
        if (rc != 0)
            assert_int_equal(ns, 12345); /* untouched on error */
    }
    uint64_t ns;
    assert_int_equal(at__parse_ms(NULL, &ns), -EINVAL);
}

static void test_parse_bool(void **state)
{
    (void)state;
    const char *yes[] = {"1", "yes", "YES", "true", "True", "on"};
    const char *no[] = {"0", "no", "false", "OFF", ""};
    const char *bad[] = {"2", "y", "enable", " 1", "1 ", "10", "-1"};
    bool b;
    for (size_t i = 0; i < sizeof yes / sizeof *yes; i++) {
        b = false;
        assert_int_equal(at__parse_bool(yes[i], &b), 0);
        assert_true(b);
    }
    for (size_t i = 0; i < sizeof no / sizeof *no; i++) {
        b = true;
        assert_int_equal(at__parse_bool(no[i], &b), 0);
        assert_false(b);
    }
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        assert_int_equal(at__parse_bool(bad[i], &b), -EINVAL);
}

static void test_env(void **state)
{
    (void)state;
    char text[8192];
    capture_start();

    setenv("ASYNCTOP_SLOW_MS", "250", 1);
    setenv("ASYNCTOP_DEBUG", "1", 1);
    at__config_from_env();
    assert_int_equal(at__slow_threshold_ns(), 250000000ull);
    assert_true(at__debug_enabled());

    setenv("ASYNCTOP_SLOW_MS", "12ms", 1);
    setenv("ASYNCTOP_DEBUG", "maybe", 1);
    at__config_from_env();
    assert_int_equal(at__slow_threshold_ns(), AT__SLOW_NS_DEFAULT);
    assert_false(at__debug_enabled());
    capture_take(text, sizeof text);
    assert_non_null(strstr(text, "WARNING: ASYNCTOP_DEBUG='maybe' is not a boolean"));
    assert_non_null(strstr(text, "WARNING: ASYNCTOP_SLOW_MS='12ms' is not a number of "
                                 "milliseconds"));
    assert_non_null(strstr(text, "using the default 100 ms"));

    capture_start();
    setenv("ASYNCTOP_SLOW_MS", "999999999", 1);
    at__config_from_env();
    assert_int_equal(at__slow_threshold_ns(), AT__SLOW_NS_DEFAULT);
    capture_take(text, sizeof text);
    assert_non_null(strstr(text, "ASYNCTOP_SLOW_MS='999999999' is too large"));

    /* The environment is held to the range a client's set_config is (AT__SLOW_NS_MIN ..
     * AT__SLOW_NS_MAX, export_limits.h): below 1 ms is refused as a client's 5 ns is. */
    unsetenv("ASYNCTOP_DEBUG"); /* no warnings but the ones looked for below */
    static const char *const too_small[] = {"0", "0.5", "0.999999"};
    for (size_t i = 0; i < sizeof too_small / sizeof *too_small; i++) {
        char want[96];
        capture_start();
        setenv("ASYNCTOP_SLOW_MS", too_small[i], 1);
        at__config_from_env();
        assert_int_equal(at__slow_threshold_ns(), AT__SLOW_NS_DEFAULT);
        capture_take(text, sizeof text);
        snprintf(want, sizeof want, "ASYNCTOP_SLOW_MS='%s' is too small", too_small[i]);
        assert_non_null(strstr(text, want));
    }
    setenv("ASYNCTOP_SLOW_MS", "1", 1);
    at__config_from_env();
    assert_int_equal(at__slow_threshold_ns(), AT__SLOW_NS_MIN);
    setenv("ASYNCTOP_SLOW_MS", "86400000", 1);
    at__config_from_env();
    assert_int_equal(at__slow_threshold_ns(), AT__SLOW_NS_MAX);

    capture_start();
    unsetenv("ASYNCTOP_SLOW_MS");
    unsetenv("ASYNCTOP_DEBUG");
    at__config_from_env();
    assert_int_equal(at__slow_threshold_ns(), AT__SLOW_NS_DEFAULT);
    assert_false(at__debug_enabled());
    capture_take(text, sizeof text);
    assert_string_equal(text, ""); /* no warnings when unset */

    capture_stop();
    at__loopmon_shutdown();
}

static void *toggle(void *arg)
{
    (void)arg;
    at__debug_set(true);
    at__slow_threshold_set_ns(5);
    return NULL;
}

static void test_set_from_thread(void **state)
{
    (void)state;
    at__debug_set(false);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, toggle, NULL), 0);
    pthread_join(t, NULL);
    assert_true(at__debug_enabled());
    assert_int_equal(at__slow_threshold_ns(), 5);
    /* the log level follows debug mode */
    assert_true(at__log_would_log(AT__LOG_DEBUG));
    at__debug_set(false);
    assert_false(at__log_would_log(AT__LOG_DEBUG));
    assert_true(at__log_would_log(AT__LOG_INFO));
    at__slow_threshold_set_ns(AT__SLOW_NS_DEFAULT);
    assert_string_equal(at__cb_kind_name(AT__CB_TASK_STEP), "task_step");
    assert_string_equal(at__cb_kind_name(99), "?");
}

/* Debug mode lowers only the default level: a level the application chose holds. Runs after
 * test_set_from_thread, which relies on the default. */
static void test_log_level_set_holds_in_debug(void **state)
{
    (void)state;
    at__debug_set(true);
    assert_true(at__log_would_log(AT__LOG_DEBUG)); /* the default, lowered */
    at__log_set_level(AT__LOG_WARNING);
    assert_false(at__log_would_log(AT__LOG_DEBUG));
    assert_false(at__log_would_log(AT__LOG_INFO));
    assert_true(at__log_would_log(AT__LOG_WARNING));
    at__log_set_level(AT__LOG_DEBUG);
    at__debug_set(false);
    assert_true(at__log_would_log(AT__LOG_DEBUG)); /* set, so off-debug too */
    at__log_set_level(AT__LOG_INFO);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_ms),
        cmocka_unit_test(test_parse_bool),
        cmocka_unit_test(test_env),
        cmocka_unit_test(test_set_from_thread),
        cmocka_unit_test(test_log_level_set_holds_in_debug),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
