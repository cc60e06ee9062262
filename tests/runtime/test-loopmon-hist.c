/* test-loopmon-hist.c: call-site statistics and log-linear histogram percentiles. */
#include "test-loopmon-util.h"

#include <stdlib.h>

static void test_bucket_edges(void **state)
{
    (void)state;
    /* Every value falls in the bucket whose [low, next low) holds it. */
    uint64_t vals[] = {
        0, 1, 15, 16, 17, 31, 32, 33, 1000, 65535, 65536, 123456789, (1ull << 39) + 12345};
    for (size_t i = 0; i < sizeof vals / sizeof *vals; i++) {
        unsigned b = at__hist_index(vals[i]);
        assert_true(b < AT__HIST_BUCKETS);
        assert_true(at__hist_bucket_low(b) <= vals[i]);
        if (b + 1 < AT__HIST_BUCKETS)
            assert_true(vals[i] < at__hist_bucket_low(b + 1));
    }
    srand(7);
    for (int i = 0; i < 100000; i++) {
        uint64_t v = ((uint64_t)rand() << 20 ^ (uint64_t)rand()) >> (rand() % 40);
        unsigned b = at__hist_index(v);
        assert_true(at__hist_bucket_low(b) <= v);
        assert_true(b + 1 == AT__HIST_BUCKETS || v < at__hist_bucket_low(b + 1));
        /* relative bucket width <= 1/16 above 16 */
        if (v >= 16 && b + 1 < AT__HIST_BUCKETS) {
            uint64_t w = at__hist_bucket_low(b + 1) - at__hist_bucket_low(b);
            assert_true(w * 16 <= at__hist_bucket_low(b));
        }
    }
    /* huge values are clamped into the last bucket */
    assert_int_equal(at__hist_index(UINT64_MAX), AT__HIST_BUCKETS - 1);
}

static void check_close(uint64_t got, double want, double tol)
{
    double err = ((double)got - want) / want;
    if (err < 0)
        err = -err;
    if (err > tol)
        fail_msg("got %llu, want %.0f (error %.2f%% > %.2f%%)", (unsigned long long)got, want,
                 err * 100, tol * 100);
}

static void cb_a(void)
{
}
static void cb_b(void)
{
}

static void test_site_stats(void **state)
{
    (void)state;
    uv_loop_t loop;
    at__mon_t *m;
    assert_int_equal(uv_loop_init(&loop), 0);
    assert_int_equal(at__mon_create(&loop, &m), 0);

    at__site_t *a = at__mon_site(m, (void *)cb_a, NULL);
    at__site_t *b = at__mon_site(m, (void *)cb_b, NULL);
    at__site_t *an = at__mon_site(m, (void *)cb_a, "named");
    assert_non_null(a);
    assert_ptr_not_equal(a, b);
    assert_ptr_not_equal(a, an);
    assert_ptr_equal(at__mon_site(m, (void *)cb_a, NULL), a); /* cached */
    char other[] = "named";                                   /* same content, other pointer */
    assert_ptr_equal(at__mon_site(m, (void *)cb_a, other), an);
    assert_ptr_equal(at__mon_site(m, (void *)cb_a, ""), a); /* "" = unnamed */
    assert_string_equal(an->name, "named");
    /* Named sites are cached too (by fn and name pointer): a repeated call is answered from
     * the monitor's cache, without the hash map. */
    static const char *const lit = "named";
    at__site_t *al = at__mon_site(m, (void *)cb_a, lit);
    assert_ptr_equal(al, an);
    unsigned slot = at__mon_site_slot((void *)cb_a, lit);
    assert_ptr_equal(m->cache[slot].fn, (void *)cb_a);
    assert_ptr_equal(m->cache[slot].name, lit);
    assert_ptr_equal(m->cache[slot].site, an);
    assert_ptr_equal(at__mon_site(m, (void *)cb_a, lit), an);
    /* direct-mapped: cb_b may share its slot with an entry filled since, so look it up again */
    assert_ptr_equal(at__mon_site(m, (void *)cb_b, NULL), b);
    slot = at__mon_site_slot((void *)cb_b, NULL);
    assert_ptr_equal(m->cache[slot].fn, (void *)cb_b);
    assert_ptr_equal(m->cache[slot].site, b);

    /* uniform 1..100000 ns */
    uint64_t sum = 0;
    for (uint64_t v = 1; v <= 100000; v++) {
        at__site_record(a, v);
        sum += v;
    }
    at__site_stats_t st;
    at__site_read(a, &st);
    assert_int_equal(st.count, 100000);
    assert_int_equal(st.total_ns, sum);
    assert_int_equal(st.max_ns, 100000);
    assert_int_equal(st.hist.n, 100000);
    check_close(at__hist_quantile(&st.hist, 0.5), 50000, 0.035);
    check_close(at__hist_quantile(&st.hist, 0.99), 99000, 0.035);
    check_close(at__hist_quantile(&st.hist, 0.999), 99900, 0.035);

    /* a skewed distribution: 99% at 1 us, 1% at 50 ms */
    for (int i = 0; i < 9900; i++)
        at__site_record(b, 1000);
    for (int i = 0; i < 100; i++)
        at__site_record(b, 50 * 1000 * 1000);
    at__site_read(b, &st);
    check_close(at__hist_quantile(&st.hist, 0.5), 1000, 0.035);
    check_close(at__hist_quantile(&st.hist, 0.99), 1000, 0.035);
    check_close(at__hist_quantile(&st.hist, 0.995), 50e6, 0.035);
    assert_int_equal(st.max_ns, 50 * 1000 * 1000);

    /* many sites: the hash map grows, every site stays findable, the list holds them all */
    static char fns[500];
    for (int i = 0; i < 500; i++)
        assert_non_null(at__mon_site(m, &fns[i], NULL));
    for (int i = 0; i < 500; i++)
        assert_ptr_equal(at__mon_site_slow(m, &fns[i], NULL)->fn, &fns[i]);
    int n = 0;
    for (at__site_t *s = at__mon_sites(m); s; s = atomic_load(&s->next_all))
        n++;
    assert_int_equal(n, 503);
    at__mon_stats_t ms;
    at__mon_stats(m, &ms);
    assert_int_equal(ms.nsites, 503);

    close_loop(&loop, m);
    at__loopmon_shutdown();
}

static void test_empty_quantile(void **state)
{
    (void)state;
    at__hist_snap_t s;
    memset(&s, 0, sizeof s);
    assert_int_equal(at__hist_quantile(&s, 0.5), 0);
    s.b[at__hist_index(12345)] = 1;
    s.n = 1;
    check_close(at__hist_quantile(&s, 0.01), 12345, 0.035);
    check_close(at__hist_quantile(&s, 1.0), 12345, 0.035);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bucket_edges),
        cmocka_unit_test(test_site_stats),
        cmocka_unit_test(test_empty_quantile),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
