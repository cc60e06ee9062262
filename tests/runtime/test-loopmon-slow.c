/* test-loopmon-slow.c: slow-callback detection through raw uv callbacks timed with
 * at__cb_begin/at__cb_end, the threshold changed from another thread, and the log line. */
#include "test-loopmon-util.h"

#include <stdlib.h>

static at__mon_t *mon;
static uv_timer_t timer;
static int step;

/* The three "application" callbacks; their names must come out of symbolisation. */
__attribute__((noinline)) static void slow_150(void)
{
    sleep_ms(150);
}
__attribute__((noinline)) static void medium_50(void)
{
    sleep_ms(50);
}

static void *lower_threshold(void *arg)
{
    (void)arg;
    at__slow_threshold_set_ns(20ull * 1000 * 1000);
    return NULL;
}

/* 50 ms during which another thread lowers the threshold to 20 ms: judged by the threshold in
 * force when it began, so not slow. */
__attribute__((noinline)) static void medium_50_lowering(void)
{
    sleep_ms(25);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, lower_threshold, NULL), 0);
    pthread_join(th, NULL);
    sleep_ms(25);
}

static void run_timed(void (*fn)(void), const char *name)
{
    at__cb_t cb;
    at__site_t *site = at__mon_site(mon, (void *)fn, name);
    assert_non_null(site);
    at__cb_begin(mon, &cb, site, AT__CB_TIMER);
    fn();
    at__cb_end(mon, &cb);
}

static void on_timer(uv_timer_t *t)
{
    /* Keep the logger idle during the timed callbacks (valgrind runs one thread at a time),
     * and since this runner did work between callbacks, break the timestamp chain. */
    at__log_flush(10ull * 1000 * 1000 * 1000);
    at__mon_chain_break(mon);
    switch (step++) {
    case 0:
        run_timed(slow_150, NULL); /* reported at 100 ms */
        break;
    case 1:
        run_timed(medium_50, NULL); /* not reported at 100 ms */
        break;
    case 2:
        /* began under 10 s (wide: valgrind makes the thread round trip slow), lowered to
         * 20 ms while it runs: not reported */
        at__slow_threshold_set_ns(10ull * 1000 * 1000 * 1000);
        run_timed(medium_50_lowering, NULL);
        break;
    case 3: {
        pthread_t th;
        assert_int_equal(pthread_create(&th, NULL, lower_threshold, NULL), 0);
        pthread_join(th, NULL);
        at__mon_chain_break(mon);
        run_timed(medium_50, NULL); /* reported at 20 ms */
        break;
    }
    case 4:
        run_timed(medium_50, "my-request"); /* a named site */
        break;
    default:
        uv_timer_stop(t);
        return;
    }
}

static double seconds_in(const char *line)
{
    const char *p = strstr(line, " took ");
    assert_non_null(p);
    return strtod(p + 6, NULL);
}

static void test_slow_detection(void **state)
{
    (void)state;
    uv_loop_t loop;
    at__slow_threshold_set_ns(AT__SLOW_NS_DEFAULT);
    capture_start();
    assert_int_equal(uv_loop_init(&loop), 0);
    assert_int_equal(at__mon_create(&loop, &mon), 0);
    assert_int_equal(uv_timer_init(&loop, &timer), 0);
    step = 0;
    assert_int_equal(uv_timer_start(&timer, on_timer, 0, 1), 0);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(step, 6);

    /* events: exactly the 150 ms one, then the two 50 ms ones after the change */
    at__event_t ev;
    assert_int_equal(at__mon_take(mon, &ev), 1);
    assert_int_equal(ev.kind, AT__EV_SLOW);
    assert_int_equal(ev.cb_kind, AT__CB_TIMER);
    assert_ptr_equal(ev.fn, (void *)slow_150);
    assert_true(ev.duration_ns >= 150ull * 1000 * 1000);
    assert_true(ev.when_ns > 0);
    assert_int_equal(at__mon_take(mon, &ev), 1);
    assert_ptr_equal(ev.fn, (void *)medium_50);
    assert_true(ev.duration_ns >= 50ull * 1000 * 1000);
    assert_string_equal(ev.name, "");
    assert_int_equal(at__mon_take(mon, &ev), 1);
    assert_ptr_equal(ev.fn, (void *)medium_50);
    assert_string_equal(ev.name, "my-request");
    assert_ptr_equal(ev.site, at__mon_site(mon, (void *)medium_50, "my-request"));
    assert_int_equal(at__mon_take(mon, &ev), 0);
    uint64_t produced, dropped;
    at__mon_event_counts(mon, AT__EV_SLOW, &produced, &dropped);
    assert_int_equal(produced, 3);
    assert_int_equal(dropped, 0);
    at__mon_stats_t st;
    at__mon_stats(mon, &st);
    assert_int_equal(st.slow_count, 3);
    assert_int_equal(st.callbacks, 5);

    /* the log lines, in asyncio's words */
    char text[16384];
    capture_take(text, sizeof text);
    char *l1 = text, *l2 = strchr(l1, '\n');
    assert_non_null(l2);
    *l2++ = '\0';
    char *l3 = strchr(l2, '\n');
    assert_non_null(l3);
    *l3++ = '\0';
    char *end = strchr(l3, '\n');
    assert_non_null(end);
    *end = '\0';
    assert_string_equal(end + 1, ""); /* nothing else was logged */
    printf("# %s\n# %s\n# %s\n", l1, l2, l3);
    assert_true(strncmp(l1, "WARNING: Executing <slow_150 at ", 32) == 0);
    assert_non_null(strstr(l1, "test-loopmon-slow.c:"));
    assert_true(strlen(l1) > 8 && !strcmp(l1 + strlen(l1) - 8, " seconds"));
    assert_true(seconds_in(l1) >= 0.150 && seconds_in(l1) < 60);
    assert_true(strncmp(l2, "WARNING: Executing <medium_50 at ", 33) == 0);
    assert_true(seconds_in(l2) >= 0.050);
    assert_true(strncmp(l3, "WARNING: Executing <my-request at ", 34) == 0);
    assert_non_null(strstr(l3, "test-loopmon-slow.c:"));
    /* the exact form: "took 0.123 seconds", three decimals */
    const char *t = strstr(l1, " took ");
    assert_true(t[6] >= '0' && t[6] <= '9' && t[7] == '.' && t[8] >= '0' && t[8] <= '9' &&
                t[9] >= '0' && t[9] <= '9' && t[10] >= '0' && t[10] <= '9' && t[11] == ' ');

    capture_stop();
    uv_close((uv_handle_t *)&timer, NULL);
    close_loop(&loop, mon);
    at__slow_threshold_set_ns(AT__SLOW_NS_DEFAULT);
    at__loopmon_shutdown();
}

/* A threshold of 0 makes every callback slow; the line also names the task. */
static void quick(void)
{
}

static void test_task_and_sched_stack(void **state)
{
    (void)state;
    uv_loop_t loop;
    at__mon_t *m;
    capture_start();
    assert_int_equal(uv_loop_init(&loop), 0);
    assert_int_equal(at__mon_create(&loop, &m), 0);
    void *sched[3] = {(void *)0x1111, (void *)0x2222, (void *)0x3333};
    at__slow_threshold_set_ns(0);
    at__cb_t cb;
    at__site_t *s = at__mon_site(m, (void *)quick, NULL);
    at__cb_begin_full(m, &cb, s, AT__CB_TASK_STEP, 77, "fetcher", sched, 3);
    quick();
    at__cb_end(m, &cb);
    at__slow_threshold_set_ns(AT__SLOW_NS_DEFAULT);
    at__event_t ev;
    assert_int_equal(at__mon_take(m, &ev), 1);
    assert_int_equal(ev.cb_kind, AT__CB_TASK_STEP);
    assert_int_equal(ev.task_id, 77);
    assert_string_equal(ev.task_name, "fetcher");
    assert_int_equal(ev.nstack, 3);
    assert_ptr_equal(ev.stack[2], (void *)0x3333);
    char text[4096];
    capture_take(text, sizeof text);
    assert_true(strncmp(text, "WARNING: Executing <quick at ", 29) == 0);
    assert_non_null(strstr(text, " seconds in task 'fetcher'\n"));
    capture_stop();
    close_loop(&loop, m);
    at__loopmon_shutdown();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_slow_detection),
        cmocka_unit_test(test_task_and_sched_stack),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
