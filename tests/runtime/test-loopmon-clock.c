/* test-loopmon-clock.c: at__now_ns(): calibrated TSC (where invariant) in the CLOCK_MONOTONIC
 * domain, monotonic, usable from any thread. */
#include "test-loopmon-util.h"

#if defined(__x86_64__)
#include <cpuid.h>
#endif

static int tsc_invariant(void)
{
#if defined(__x86_64__)
    unsigned a, b, c, d;
    return __get_cpuid(0x80000007, &a, &b, &c, &d) && ((d >> 8) & 1);
#else
    return 0;
#endif
}

static void test_domain_and_calibration(void **state)
{
    (void)state;
    sleep_ms(10); /* past the calibration window */
    uint64_t a = at__now_ns();
    if (tsc_invariant())
        assert_int_equal(atomic_load(&at__clock.use_tsc), 1);
    else
        assert_int_equal(atomic_load(&at__clock.use_tsc), 0);
    sleep_ms(100);
    uint64_t x = at__now_ns(), y = at__now_ns_slow(), z = at__now_ns();
    /* same domain as CLOCK_MONOTONIC: within a millisecond (wide margin) */
    assert_true(x <= y + 1000000 && y <= z + 1000000);
    assert_true(z - a >= 100ull * 1000 * 1000); /* it measured the 100 ms sleep */
    assert_true(z - a < 60ull * 1000 * 1000 * 1000);
}

static void *reader(void *arg)
{
    int *bad = arg;
    uint64_t prev = at__now_ns();
    for (int i = 0; i < 200000; i++) {
        uint64_t t = at__now_ns();
        if (t < prev)
            (*bad)++;
        prev = t;
    }
    return NULL;
}

static void test_monotonic_threads(void **state)
{
    (void)state;
    int bad[2] = {0, 0};
    pthread_t t[2];
    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_create(&t[i], NULL, reader, &bad[i]), 0);
    for (int i = 0; i < 2; i++)
        pthread_join(t[i], NULL);
    assert_int_equal(bad[0], 0);
    assert_int_equal(bad[1], 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_domain_and_calibration),
        cmocka_unit_test(test_monotonic_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
