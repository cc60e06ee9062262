/* test-loopmon-metrics.c: loop metrics (iterations, callbacks, busy, idle, poll, lag) are
 * plausible, the monitor never keeps a loop alive, the handle inventory, the registry. */
#include "test-loopmon-util.h"

static at__mon_t *mon;
static int fired;

__attribute__((noinline)) static void work_5ms(void)
{
    sleep_ms(5);
}

static void on_timer(uv_timer_t *t)
{
    at__cb_t cb;
    static at__site_t *site; /* what a runner keeps in its handle */
    if (!site)
        site = at__mon_site(mon, (void *)work_5ms, NULL);
    at__cb_begin(mon, &cb, site, AT__CB_TIMER);
    work_5ms();
    at__cb_end(mon, &cb);
    if (++fired == 10)
        uv_timer_stop(t);
}

static int count_mon(at__mon_t *m, void *data)
{
    if (m == mon)
        ++*(int *)data;
    return 0;
}

static void test_metrics(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_timer_t timer;
    uv_idle_t idle;
    assert_int_equal(uv_loop_init(&loop), 0);
    assert_int_equal(at__mon_create(&loop, &mon), 0);

    /* the monitor's handles never keep the loop alive */
    assert_false(uv_loop_alive(&loop));
    assert_int_equal(uv_run(&loop, UV_RUN_NOWAIT), 0);

    /* registry */
    assert_ptr_equal(at__mon_find(&loop), mon);
    int seen = 0;
    at__mon_foreach(count_mon, &seen);
    assert_int_equal(seen, 1);
    assert_true(at__mon_on_loop_thread(mon));
    assert_true(mon->id >= 1);

    uint64_t t0 = at__now_ns();
    fired = 0;
    assert_int_equal(uv_timer_init(&loop, &timer), 0);
    assert_int_equal(uv_timer_start(&timer, on_timer, 10, 10), 0);
    assert_int_equal(uv_idle_init(&loop, &idle), 0); /* inventory: inactive idle */
    at__handle_counts_t hc;
    at__mon_handles(mon, &hc);
    assert_int_equal(hc.total[UV_TIMER], 1);
    assert_int_equal(hc.active[UV_TIMER], 1);
    assert_int_equal(hc.total[UV_IDLE], 1);
    assert_int_equal(hc.active[UV_IDLE], 0);
    assert_int_equal(hc.total[UV_PREPARE], 0); /* loopmon's own are not listed */
    assert_int_equal(hc.total[UV_CHECK], 0);

    uv_run(&loop, UV_RUN_DEFAULT);
    uint64_t wall = at__now_ns() - t0;
    assert_int_equal(fired, 10);

    at__mon_stats_t st;
    at__mon_stats(mon, &st);
    printf("# iterations %llu callbacks %llu busy %.1f ms idle %.1f ms poll %.1f ms (max %.1f) "
           "wall %.1f ms lag p50 %llu ns\n",
           (unsigned long long)st.iterations, (unsigned long long)st.callbacks, st.busy_ns / 1e6,
           st.idle_ns / 1e6, st.poll_ns / 1e6, st.poll_max_ns / 1e6, wall / 1e6,
           (unsigned long long)at__hist_quantile(&st.lag, 0.5));
    assert_true(st.iterations >= 10);
    assert_int_equal(st.callbacks, 10);
    assert_true(st.busy_ns >= 50ull * 1000 * 1000); /* 10 x 5 ms */
    assert_true(st.busy_ns <= wall);
    /* the loop waited for its timers: ~10 x 5 ms idle, blocked in poll */
    assert_true(st.idle_ns > 10ull * 1000 * 1000);
    assert_true(st.poll_ns > 10ull * 1000 * 1000);
    assert_true(st.poll_ns <= wall);
    assert_true(st.busy_ns + st.poll_ns <= wall + 1000000); /* disjoint */
    assert_true(st.poll_max_ns <= st.poll_ns);
    /* one lag sample per iteration after the first poll (iterations - 1 of them: the loop ends
     * after its last poll; >= 9 because the first timer may already be due when uv_run starts,
     * after a slow start, and fire in the first iteration), each at least the 5 ms callback of
     * its iteration when one ran */
    assert_true(st.lag.n + 1 >= st.iterations && st.lag.n <= st.iterations);
    assert_true(st.lag.n >= 9);
    assert_true(st.lag_max_ns >= 5ull * 1000 * 1000);
    assert_true(st.uptime_ns >= wall);
    assert_int_equal(st.slow_count, 0);

    at__site_stats_t ss;
    at__site_read(at__mon_site(mon, (void *)work_5ms, NULL), &ss);
    assert_int_equal(ss.count, 10);
    assert_true(ss.total_ns >= 50ull * 1000 * 1000);
    uint64_t p50 = at__hist_quantile(&ss.hist, 0.5);
    assert_true(p50 >= 5ull * 1000 * 1000 * 97 / 100);

    char name[128];
    assert_string_equal(
        at__site_display_name(at__mon_site(mon, (void *)work_5ms, NULL), name, sizeof name),
        "work_5ms");

    uv_close((uv_handle_t *)&timer, NULL);
    uv_close((uv_handle_t *)&idle, NULL);
    close_loop(&loop, mon);
    assert_null(at__mon_find(&loop));
    at__loopmon_shutdown();
}

/* Someone else closes every handle (a uv_walk close-all) before the monitor is closed. */
static void close_all(uv_handle_t *h, void *arg)
{
    (void)arg;
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

static void test_closed_by_walk(void **state)
{
    (void)state;
    uv_loop_t loop;
    at__mon_t *m;
    assert_int_equal(uv_loop_init(&loop), 0);
    assert_int_equal(at__mon_create(&loop, &m), 0);
    uv_walk(&loop, close_all, NULL);
    assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
    /* still usable for timing; no metrics */
    at__cb_t cb;
    at__cb_begin(m, &cb, at__mon_site(m, (void *)close_all, NULL), AT__CB_OTHER);
    at__cb_end(m, &cb);
    close_loop(&loop, m);
    at__loopmon_shutdown();
}

/* A reader thread keeps a reference across the loop's close. */
static void test_ref_outlives_close(void **state)
{
    (void)state;
    uv_loop_t loop;
    at__mon_t *m;
    assert_int_equal(uv_loop_init(&loop), 0);
    assert_int_equal(at__mon_create(&loop, &m), 0);
    at__mon_ref(m);
    close_loop(&loop, m);
    at__mon_stats_t st;
    at__mon_stats(m, &st); /* still readable */
    assert_int_equal(st.callbacks, 0);
    at__mon_unref(m);
    at__loopmon_shutdown();
}

/* A poll of a second or more is logged at debug level in debug mode. */
static void on_late(uv_timer_t *t)
{
    (void)t;
}

static void test_long_poll_logged(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_timer_t t;
    at__mon_t *m;
    char text[8192];
    capture_start();
    at__debug_set(true);
    assert_int_equal(uv_loop_init(&loop), 0);
    assert_int_equal(at__mon_create(&loop, &m), 0);
    assert_int_equal(uv_timer_init(&loop, &t), 0);
    assert_int_equal(uv_timer_start(&t, on_late, 1100, 0), 0);
    uv_run(&loop, UV_RUN_DEFAULT);
    at__debug_set(false);
    capture_take(text, sizeof text);
    printf("# %s", text);
    assert_non_null(strstr(text, "DEBUG: poll took "));
    at__mon_stats_t st;
    at__mon_stats(m, &st);
    assert_true(st.poll_max_ns >= 1000ull * 1000 * 1000);
    assert_true(st.idle_ns >= 1000ull * 1000 * 1000);
    capture_stop();
    uv_close((uv_handle_t *)&t, NULL);
    close_loop(&loop, m);
    at__loopmon_shutdown();
}

/* The timestamp chain never bills time spent outside uv_run to the next callback. */
static at__mon_t *cmon;
static void timed_noop(uv_timer_t *t)
{
    at__cb_t cb;
    at__cb_begin(cmon, &cb, at__mon_site(cmon, (void *)timed_noop, NULL), AT__CB_TIMER);
    at__cb_end(cmon, &cb);
    (void)t;
}

static void test_chain_not_across_runs(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_timer_t t;
    assert_int_equal(uv_loop_init(&loop), 0);
    assert_int_equal(at__mon_create(&loop, &cmon), 0);
    assert_int_equal(uv_timer_init(&loop, &t), 0);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(uv_timer_start(&t, timed_noop, 0, 0), 0);
        uv_run(&loop, UV_RUN_NOWAIT);
        sleep_ms(30); /* the program does something else between runs */
    }
    at__site_stats_t st;
    at__site_read(at__mon_site(cmon, (void *)timed_noop, NULL), &st);
    assert_int_equal(st.count, 3);
    assert_true(st.max_ns < 20ull * 1000 * 1000); /* none of the 30 ms gaps */
    uv_close((uv_handle_t *)&t, NULL);
    close_loop(&loop, cmon);
    at__loopmon_shutdown();
}

/* A loop handed to another thread: a new monitor is created there, then the old one closed
 * (what core does on a loop's first run elsewhere); find gives the newer one. */
static void *create_here(void *arg)
{
    uv_loop_t *loop = arg;
    at__mon_t *m = NULL;
    if (at__mon_create(loop, &m) != 0)
        return NULL;
    return m;
}

static void test_monitor_moves_thread(void **state)
{
    (void)state;
    uv_loop_t loop;
    at__mon_t *old;
    assert_int_equal(uv_loop_init(&loop), 0);
    assert_int_equal(at__mon_create(&loop, &old), 0);
    pthread_t th;
    void *res;
    assert_int_equal(pthread_create(&th, NULL, create_here, &loop), 0);
    pthread_join(th, &res);
    at__mon_t *m = res;
    assert_non_null(m);
    assert_ptr_equal(at__mon_find(&loop), m);
    assert_false(at__mon_on_loop_thread(m));
    assert_true(pthread_equal(m->thread, th));
    at__mon_close(old);
    assert_ptr_equal(at__mon_find(&loop), m);
    close_loop(&loop, m);
    assert_null(at__mon_find(&loop));
    at__loopmon_shutdown();
}

/* ---- loop lag (issue 14) ---- */

static unsigned lag_fires, lag_fires_max, lag_spin_ms;

static void spin_ms(unsigned ms)
{
    uint64_t until = at__now_ns() + (uint64_t)ms * 1000000u;
    while (at__now_ns() < until)
        ;
}

static void on_lag_timer(uv_timer_t *t)
{
    spin_ms(lag_spin_ms);
    if (++lag_fires == lag_fires_max)
        uv_timer_stop(t);
}

/* Runs a loop whose one timer fires every `every_ms` and spins `spin_ms` each time, `fires`
 * times; returns the lag snapshot the monitor measured. */
static void run_lag_loop(unsigned every_ms, unsigned spin, unsigned fires, at__mon_stats_t *st)
{
    uv_loop_t loop;
    uv_timer_t timer;
    at__mon_t *m;
    assert_int_equal(uv_loop_init(&loop), 0);
    assert_int_equal(at__mon_create(&loop, &m), 0);
    lag_fires = 0;
    lag_fires_max = fires;
    lag_spin_ms = spin;
    assert_int_equal(uv_timer_init(&loop, &timer), 0);
    assert_int_equal(uv_timer_start(&timer, on_lag_timer, every_ms, every_ms), 0);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(lag_fires, fires);
    at__mon_stats(m, st);
    uv_close((uv_handle_t *)&timer, NULL);
    close_loop(&loop, m);
}

/* A loop that spins 200 ms in a timer every second delays everything that becomes ready
 * meanwhile by up to 200 ms: its lag p99 reads ~200 ms (it read 0, or the timer's own
 * punctuality, before: only due-versus-start of timers was counted). */
static void test_lag_of_blocked_loop(void **state)
{
    (void)state;
    at__mon_stats_t st;
    run_lag_loop(1000, 200, 3, &st);
    uint64_t p99 = at__hist_quantile(&st.lag, 0.99);
    printf("# blocked loop: %llu lag samples, p99 %.1f ms, max %.1f ms\n",
           (unsigned long long)st.lag.n, p99 / 1e6, st.lag_max_ns / 1e6);
    assert_true(st.lag.n >= 3);
    assert_true(p99 >= 150ull * 1000000 && p99 <= 300ull * 1000000);
    assert_true(st.lag_max_ns >= 200ull * 1000000);
}

/* An idle loop (a timer every 2 ms doing nothing) looks at its poll again within
 * microseconds: p99 far below a millisecond-scale stall (50 ms allows for a loaded machine
 * descheduling the thread). */
static void test_lag_of_idle_loop(void **state)
{
    (void)state;
    at__mon_stats_t st;
    run_lag_loop(2, 0, 100, &st);
    uint64_t p50 = at__hist_quantile(&st.lag, 0.5), p99 = at__hist_quantile(&st.lag, 0.99);
    printf("# idle loop: %llu lag samples, p50 %.1f us, p99 %.1f us\n",
           (unsigned long long)st.lag.n, p50 / 1e3, p99 / 1e3);
    assert_true(st.lag.n >= 100);
    assert_true(p50 < 1000000);
    assert_true(p99 < 50ull * 1000000);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_metrics),
        cmocka_unit_test(test_closed_by_walk),
        cmocka_unit_test(test_ref_outlives_close),
        cmocka_unit_test(test_long_poll_logged),
        cmocka_unit_test(test_chain_not_across_runs),
        cmocka_unit_test(test_monitor_moves_thread),
        cmocka_unit_test(test_lag_of_blocked_loop),
        cmocka_unit_test(test_lag_of_idle_loop),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
