/* test-debug.c: what core tells the instrumentation — every callback timed per site, slow events
 * with kind and (debug mode) scheduling stack, wrong-thread and unclosed events, loop lag. */
#include "test-core-util.h"

#include "core.h"
#include "export/export.h"

#include <stdlib.h>
#include <unistd.h>

static int take_event(at_loop_t *loop, const char *code, int kind, at__event_t *out)
{
    at__event_t ev;
    while (at__mon_take(loop->mon, &ev)) {
        if (ev.kind == kind && (!code || strcmp(ev.code, code) == 0)) {
            *out = ev;
            return 1;
        }
    }
    return 0;
}

static void nop_cb(at_loop_t *loop, void *arg)
{
    (void)loop;
    long *n = arg;
    if (--*n > 0)
        at_call_soon(loop, nop_cb, n, "counted", NULL);
}

static void test_every_callback_timed(void **state)
{
    (void)state;
    at_loop_t *loop;
    assert_int_equal(at_loop_new(&loop, NULL), 0);
    long n = 5000;
    assert_int_equal(at_call_soon(loop, nop_cb, &n, "counted", NULL), 0);
    assert_int_equal(at_loop_run(loop, AT_RUN_DEFAULT), 0);
    at__site_t *site = NULL;
    for (at__site_t *s = at__mon_sites(loop->mon); s; s = s->next_all)
        if (strcmp(s->name, "counted") == 0)
            site = s;
    assert_non_null(site);
    at__site_stats_t st;
    at__site_read(site, &st);
    assert_int_equal(st.count, 5000);
    at__mon_stats_t ms;
    at__mon_stats(loop->mon, &ms);
    assert_true(ms.callbacks >= 5000);
    assert_true(ms.lag.n >= 1); /* the iterations recorded their poll-to-poll lag */
    close_clean(loop);
}

static void sleepy(at_loop_t *loop, void *arg)
{
    (void)loop;
    sleep_ms((unsigned)(uintptr_t)arg);
}

static __attribute__((noinline)) void schedule_sleepy(at_loop_t *loop)
{
    assert_int_equal(at_call_later(loop, 1, sleepy, (void *)40, "sleepy-timer", NULL), 0);
    __asm__ volatile("" ::: "memory");
}

static void test_slow_event_kind_and_sched_stack(void **state)
{
    (void)state;
    at_loop_t *loop;
    assert_int_equal(at_loop_new(&loop, NULL), 0);
    capture_begin();
    at_set_slow_threshold_ms(20);
    at_set_debug(true);
    schedule_sleepy(loop);
    at_set_debug(false);
    assert_int_equal(at_loop_run(loop, AT_RUN_DEFAULT), 0);
    at__event_t ev;
    memset(&ev, 0, sizeof ev);
    assert_true(take_event(loop, NULL, AT__EV_SLOW, &ev));
    assert_string_equal(ev.name, "sleepy-timer");
    assert_int_equal(ev.cb_kind, AT__CB_TIMER);
    assert_true(ev.duration_ns >= 20ull * 1000 * 1000);
    assert_true(ev.nstack >= 1);
    char sym[256];
    at_symbolize(ev.stack[0], sym, sizeof sym);
    assert_contains(sym, "schedule_sleepy");
    assert_contains(capture_text(), "Executing <sleepy-timer");
    capture_end();
    at_set_slow_threshold_ms(100);
    close_clean(loop);
}

static void *wrong(void *p)
{
    assert_int_equal(at_call_soon(p, nop_cb, NULL, NULL, NULL), AT_EWRONGTHREAD);
    return NULL;
}

static void test_wrong_thread_and_unclosed_events(void **state)
{
    (void)state;
    at_loop_t *loop;
    assert_int_equal(at_loop_new(&loop, NULL), 0);
    capture_begin();
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, wrong, loop), 0);
    pthread_join(th, NULL);
    at__event_t ev;
    memset(&ev, 0, sizeof ev);
    assert_true(take_event(loop, "wrong_thread", AT__EV_WARNING, &ev));
    assert_string_equal(ev.name, "at_call_soon");
    assert_true(ev.nstack >= 1);
    /* the caller is on the stack (frame #0 may be the refused API function) */
    int found = 0;
    for (int i = 0; i < ev.nstack && i < 3; i++) {
        char sym[256];
        at_symbolize(ev.stack[i], sym, sizeof sym);
        found |= strncmp(sym, "wrong ", 6) == 0;
    }
    assert_true(found);

    /* the unclosed-handle event is posted before the monitor goes: read it
       from a sink-side view, the log, and count it */
    static uv_idle_t forgotten;
    uv_idle_init(at_loop_uv(loop), &forgotten);
    at_close_report_t rep;
    assert_int_equal(at_loop_close(loop, &rep), 0);
    assert_int_equal(rep.unclosed_handles, 1);
    assert_contains(capture_text(), "ResourceWarning: unclosed handle uv_idle_t");
    capture_end();
}

/* ---- the exporter ------------------------------------------------------------ */

/* Every at_loop_t holds one reference on the process's exporter: it runs from the first
 * at_loop_new to the last at_loop_close, whatever the order of the closes; off means off. */
static void test_exporter_refcounted_by_loops(void **state)
{
    (void)state;
    char path[64];
    snprintf(path, sizeof path, "/tmp/at-test-debug-%d.sock", (int)getpid());
    setenv("ASYNCTOP_SOCKET", path, 1);
    assert_false(at__export_running());
    at_loop_t *a, *b;
    assert_int_equal(at_loop_new(&a, NULL), 0);
    assert_true(at__export_running());
    char got[64];
    assert_int_equal(at__export_socket_path(got, sizeof got), 0);
    assert_string_equal(got, path);
    assert_int_equal(access(path, F_OK), 0);
    assert_int_equal(at_loop_new(&b, NULL), 0);
    close_clean(a); /* the first one closed: still served for b */
    assert_true(at__export_running());
    close_clean(b);
    assert_false(at__export_running());
    assert_int_equal(access(path, F_OK), -1); /* the socket is removed */

    /* ASYNCTOP_SOCKET=off (the rest of this file): the loop works, no exporter. */
    setenv("ASYNCTOP_SOCKET", "off", 1);
    assert_int_equal(at_loop_new(&a, NULL), 0);
    assert_false(at__export_running());
    close_clean(a);
}

int main(void)
{
    /* These tests read the monitor's event ring themselves: keep the exporter (its only
     * other consumer) from starting. */
    setenv("ASYNCTOP_SOCKET", "off", 1);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_exporter_refcounted_by_loops),
        cmocka_unit_test(test_every_callback_timed),
        cmocka_unit_test(test_slow_event_kind_and_sched_stack),
        cmocka_unit_test(test_wrong_thread_and_unclosed_events),
    };
    return cmocka_run_group_tests_name("debug", tests, NULL, NULL);
}
