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
    uint64_t due = at__now_ns(); /* stand-in for the timer's due time */
    uint64_t started = at__cb_begin(mon, &cb, site, AT__CB_TIMER);
    at__mon_lag(mon, due, started);
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
    assert_int_equal(st.lag.n, 10);
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_metrics),
        cmocka_unit_test(test_closed_by_walk),
        cmocka_unit_test(test_ref_outlives_close),
        cmocka_unit_test(test_long_poll_logged),
        cmocka_unit_test(test_chain_not_across_runs),
        cmocka_unit_test(test_monitor_moves_thread),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
