/* test-future.c: at_future_t — results, done callbacks, cancellation, reference counts,
 * never-retrieved errors and the live unretrieved set. */
#include "test-core-util.h"

#include "core.h" /* the loop's monitor, to read the events it was sent */

#include <stdlib.h>

static int cb_order[8], ncb;

static void record_cb(at_future_t *fut, void *arg)
{
    assert_true(at_future_done(fut));
    cb_order[ncb++] = (int)(intptr_t)arg;
}

static void read_result_cb(at_future_t *fut, void *arg)
{
    void *v = NULL;
    assert_int_equal(at_future_result(fut, &v), 0);
    assert_int_equal(*(int *)v, 42);
    cb_order[ncb++] = (int)(intptr_t)arg;
}

static void test_result_and_done_callbacks(void **state)
{
    (void)state;
    at_loop_t *loop;
    assert_int_equal(at_loop_new(&loop, NULL), 0);
    at_future_t *fut;
    assert_int_equal(at_future_new(loop, &fut), 0);
    assert_int_equal(at_future_state(fut), AT_FUTURE_PENDING);
    assert_false(at_future_done(fut));
    assert_ptr_equal(at_future_loop(fut), loop);
    void *v;
    assert_int_equal(at_future_result(fut, &v), AT_EINVALSTATE);
    ncb = 0;
    assert_int_equal(at_future_add_done_callback(fut, record_cb, (void *)1, "first"), 0);
    assert_int_equal(at_future_add_done_callback(fut, read_result_cb, (void *)2, NULL), 0);
    int *val = malloc(sizeof *val);
    *val = 42;
    assert_int_equal(at_future_set_result(fut, val, free), 0);
    assert_int_equal(ncb, 0); /* done callbacks are scheduled, never called synchronously */
    int other = 1;
    assert_int_equal(at_future_set_result(fut, &other, NULL), AT_EINVALSTATE);
    assert_int_equal(at_future_state(fut), AT_FUTURE_DONE);
    assert_int_equal(at_loop_run(loop, AT_RUN_DEFAULT), 0);
    assert_int_equal(ncb, 2);
    assert_int_equal(cb_order[0], 1);
    assert_int_equal(cb_order[1], 2);
    /* added after completion: scheduled soon */
    assert_int_equal(at_future_add_done_callback(fut, record_cb, (void *)3, NULL), 0);
    assert_int_equal(ncb, 2);
    assert_int_equal(at_loop_run(loop, AT_RUN_DEFAULT), 0);
    assert_int_equal(ncb, 3);
    assert_int_equal(cb_order[2], 3);
    at_future_unref(fut); /* frees the value with free() (ASan/valgrind check) */
    close_clean(loop);
}

static void test_take_result(void **state)
{
    (void)state;
    at_loop_t *loop;
    assert_int_equal(at_loop_new(&loop, NULL), 0);
    at_future_t *fut;
    assert_int_equal(at_future_new(loop, &fut), 0);
    int *val = malloc(sizeof *val);
    assert_int_equal(at_future_set_result(fut, val, free), 0);
    void *got = NULL;
    assert_int_equal(at_future_take_result(fut, &got), 0);
    assert_ptr_equal(got, val);
    at_future_unref(fut); /* must not free val */
    free(got);
    close_clean(loop);
}

static void test_cancel(void **state)
{
    (void)state;
    at_loop_t *loop;
    assert_int_equal(at_loop_new(&loop, NULL), 0);
    at_future_t *fut;
    assert_int_equal(at_future_new(loop, &fut), 0);
    ncb = 0;
    assert_int_equal(at_future_add_done_callback(fut, record_cb, (void *)7, NULL), 0);
    assert_true(at_future_cancel(fut, "no longer needed"));
    assert_false(at_future_cancel(fut, NULL));
    assert_true(at_future_cancelled(fut));
    assert_true(at_future_done(fut));
    assert_int_equal(at_future_result(fut, NULL), AT_ECANCELED);
    assert_null(at_future_error(fut));
    assert_int_equal(at_future_set_result(fut, NULL, NULL), AT_EINVALSTATE);
    assert_int_equal(at_future_fail(fut, AT_EIO, "late"), AT_EINVALSTATE);
    assert_int_equal(at_loop_run(loop, AT_RUN_DEFAULT), 0);
    assert_int_equal(ncb, 1);
    assert_int_equal(cb_order[0], 7);
    at_future_unref(fut);
    close_clean(loop);
}

static void test_remove_done_callback(void **state)
{
    (void)state;
    at_loop_t *loop;
    assert_int_equal(at_loop_new(&loop, NULL), 0);
    at_future_t *fut;
    assert_int_equal(at_future_new(loop, &fut), 0);
    ncb = 0;
    assert_int_equal(at_future_add_done_callback(fut, record_cb, (void *)1, NULL), 0);
    assert_int_equal(at_future_add_done_callback(fut, record_cb, (void *)2, NULL), 0);
    assert_int_equal(at_future_add_done_callback(fut, record_cb, (void *)1, NULL), 0);
    assert_int_equal(at_future_remove_done_callback(fut, record_cb, (void *)1), 2);
    assert_int_equal(at_future_remove_done_callback(fut, record_cb, (void *)9), 0);
    assert_int_equal(at_future_add_done_callback(fut, record_cb, (void *)3, NULL), 0);
    assert_int_equal(at_future_set_result(fut, NULL, NULL), 0);
    assert_int_equal(at_loop_run(loop, AT_RUN_DEFAULT), 0);
    assert_int_equal(ncb, 2);
    assert_int_equal(cb_order[0], 2);
    assert_int_equal(cb_order[1], 3);
    at_future_unref(fut);
    close_clean(loop);
}

/* The done callback keeps the future alive after the last user reference. */
static void keepalive_cb(at_future_t *fut, void *arg)
{
    (void)arg;
    assert_int_equal(at_future_result(fut, NULL), 0);
    ncb++;
}

static void test_refcounts(void **state)
{
    (void)state;
    at_loop_t *loop;
    assert_int_equal(at_loop_new(&loop, NULL), 0);
    at_future_t *fut;
    assert_int_equal(at_future_new(loop, &fut), 0);
    assert_ptr_equal(at_future_ref(fut), fut);
    at_future_unref(fut); /* back to one */
    ncb = 0;
    assert_int_equal(at_future_add_done_callback(fut, keepalive_cb, NULL, NULL), 0);
    assert_int_equal(at_future_set_result(fut, NULL, NULL), 0);
    at_future_unref(fut); /* the scheduled callback still holds it */
    assert_int_equal(at_loop_run(loop, AT_RUN_DEFAULT), 0);
    assert_int_equal(ncb, 1);
    /* a pending future dropped with callbacks that never ran: no leak */
    assert_int_equal(at_future_new(loop, &fut), 0);
    assert_int_equal(at_future_add_done_callback(fut, keepalive_cb, NULL, NULL), 0);
    at_future_unref(fut);
    close_clean(loop);
}

/* ---- never-retrieved errors -------------------------------------------------------- */

static __attribute__((noinline)) at_future_t *creator_site(at_loop_t *loop)
{
    at_future_t *fut;
    assert_int_equal(at_future_new(loop, &fut), 0);
    return fut;
}

static __attribute__((noinline)) void raiser_site(at_future_t *fut)
{
    assert_int_equal(at_future_fail(fut, AT_ECONNRESET, "backend %d went away", 3), 0);
}

static int take_event(at_loop_t *loop, const char *code, at__event_t *out)
{
    at__event_t ev;
    while (at__mon_take(loop->mon, &ev)) {
        if (strcmp(ev.code, code) == 0) {
            *out = ev;
            return 1;
        }
    }
    return 0;
}

static void check_never_retrieved(bool debug)
{
    at_loop_t *loop;
    assert_int_equal(at_loop_new(&loop, NULL), 0);
    at_set_debug(debug);
    capture_begin();
    at_debug_counters_t before, after;
    at_debug_counters(&before);
    at_future_t *fut = creator_site(loop);
    raiser_site(fut);
    assert_int_equal(at_loop_unretrieved(loop, NULL, NULL), 1);
    at_future_unref(fut); /* last reference: reported now */
    assert_int_equal(at_loop_unretrieved(loop, NULL, NULL), 0);
    const char *log = capture_text();
    assert_contains(log, "ERROR: Future exception was never retrieved");
    assert_contains(log, "ECONNRESET (asynctop): backend 3 went away");
    assert_contains(log, "Future created at");
    assert_contains(log, "creator_site");
    assert_contains(log, "Error raised at");
    assert_contains(log, "raiser_site");
    if (debug) /* whole stacks: the test function that called the helpers too */
        assert_contains(log, "check_never_retrieved");
    at_debug_counters(&after);
    assert_int_equal(after.never_retrieved - before.never_retrieved, 1);
    at__event_t ev;
    memset(&ev, 0, sizeof ev);
    assert_true(take_event(loop, "never_retrieved", &ev));
    assert_int_equal(ev.kind, AT__EV_ERROR);
    /* the error's own code and domain, for the wire's code and domain (issue 14) */
    assert_int_equal(ev.err_code, AT_ECONNRESET);
    assert_string_equal(ev.err_domain, AT_DOMAIN);
    assert_true(ev.nstack >= 1);
    assert_true(ev.nstack2 >= 1);
    if (debug) {
        assert_true(ev.nstack >= 2);
        assert_true(ev.nstack2 >= 2);
    }
    char sym[256];
    at_symbolize(ev.stack[0], sym, sizeof sym);
    assert_contains(sym, "creator_site");
    at_symbolize(ev.stack2[0], sym, sizeof sym);
    assert_contains(sym, "raiser_site");
    capture_end();
    at_set_debug(false);
    close_clean(loop);
}

static void test_never_retrieved_on_last_unref(void **state)
{
    (void)state;
    check_never_retrieved(false);
}

static void test_never_retrieved_on_last_unref_debug(void **state)
{
    (void)state;
    check_never_retrieved(true);
}

static void test_never_retrieved_at_close(void **state)
{
    (void)state;
    at_loop_t *loop;
    assert_int_equal(at_loop_new(&loop, NULL), 0);
    capture_begin();
    at_future_t *fut = creator_site(loop);
    raiser_site(fut);
    at_close_report_t rep;
    assert_int_equal(at_loop_close(loop, &rep), 0);
    assert_int_equal(rep.unretrieved_errors, 1);
    assert_int_equal(rep.live_futures, 1);
    const char *log = capture_text();
    assert_contains(log, "Future exception was never retrieved");
    assert_contains(log, "loop closed");
    capture_begin();
    at_future_unref(fut); /* after close: not reported twice; frees the loop too */
    assert_not_contains(capture_text(), "never retrieved");
    capture_end();
}

/* An application's error: its own code and domain go into the event, the domain copied (cut to
 * AT__EV_DOMAIN_MAX - 1 bytes), so the event does not point into the caller's storage. */
static void test_never_retrieved_app_domain(void **state)
{
    (void)state;
    static const char domain[] = "an-application-domain-longer-than-the-event";
    at_loop_t *loop;
    assert_int_equal(at_loop_new(&loop, NULL), 0);
    capture_begin();
    at_future_t *fut;
    assert_int_equal(at_future_new(loop, &fut), 0);
    assert_int_equal(at_future_set_error(fut, at_error_new(-4242, domain, "app")), 0);
    at_future_unref(fut);
    at__event_t ev;
    assert_true(take_event(loop, "never_retrieved", &ev));
    assert_int_equal(ev.err_code, -4242);
    assert_int_equal(strlen(ev.err_domain), AT__EV_DOMAIN_MAX - 1);
    assert_memory_equal(ev.err_domain, domain, AT__EV_DOMAIN_MAX - 1);
    assert_true((void *)ev.err_domain != (void *)domain);
    capture_end();
    close_clean(loop);
}

static void test_retrieved_not_reported(void **state)
{
    (void)state;
    at_loop_t *loop;
    assert_int_equal(at_loop_new(&loop, NULL), 0);
    capture_begin();
    at_future_t *a = creator_site(loop), *b = creator_site(loop), *c = creator_site(loop);
    raiser_site(a);
    raiser_site(b);
    raiser_site(c);
    assert_int_equal(at_future_result(a, NULL), AT_ECONNRESET);
    at_error_t *e = at_future_error(b);
    assert_non_null(e);
    assert_int_equal(at_error_code(e), AT_ECONNRESET);
    assert_string_equal(at_error_message(e), "backend 3 went away");
    at_future_mark_retrieved(c);
    assert_int_equal(at_loop_unretrieved(loop, NULL, NULL), 0);
    at_future_unref(a);
    at_future_unref(b);
    at_future_unref(c);
    assert_not_contains(capture_text(), "never retrieved");
    capture_end();
    close_clean(loop);
}

typedef struct visit {
    int n;
    const at_future_t *first;
    uint64_t age_first;
} visit_t;

static void visit_cb(const at_unretrieved_info_t *info, void *arg)
{
    visit_t *v = arg;
    if (v->n++ == 0) {
        v->first = info->future;
        v->age_first = info->age_ms;
    }
    assert_int_equal(at_error_code(info->error), AT_ECONNRESET);
}

static void advance(at_loop_t *loop, void *arg)
{
    (void)loop;
    (void)arg;
}

static void test_unretrieved_live_set(void **state)
{
    (void)state;
    at_loop_t *loop;
    assert_int_equal(at_loop_new(&loop, NULL), 0);
    at_future_t *old = creator_site(loop);
    raiser_site(old);
    /* let loop time move on by at least 20 ms */
    assert_int_equal(at_call_later(loop, 20, advance, NULL, NULL, NULL), 0);
    assert_int_equal(at_loop_run(loop, AT_RUN_DEFAULT), 0);
    at_future_t *young = creator_site(loop);
    raiser_site(young);
    visit_t v = {0};
    assert_int_equal(at_loop_unretrieved(loop, visit_cb, &v), 2);
    assert_int_equal(v.n, 2);
    assert_ptr_equal(v.first, old); /* oldest first */
    assert_true(v.age_first >= 20);
    assert_int_equal(at_future_result(old, NULL), AT_ECONNRESET);
    assert_int_equal(at_loop_unretrieved(loop, NULL, NULL), 1);
    at_future_mark_retrieved(young);
    at_future_unref(old);
    at_future_unref(young);
    close_clean(loop);
}

/* ---- wrong thread ------------------------------------------------------------------ */

static void *poke_future(void *p)
{
    at_future_t *fut = p;
    assert_int_equal(at_future_set_result(fut, NULL, NULL), AT_EWRONGTHREAD);
    assert_int_equal(at_future_fail(fut, AT_EIO, "x"), AT_EWRONGTHREAD);
    assert_false(at_future_cancel(fut, NULL));
    assert_int_equal(at_future_add_done_callback(fut, record_cb, NULL, NULL), AT_EWRONGTHREAD);
    return NULL;
}

static void test_future_wrong_thread(void **state)
{
    (void)state;
    at_loop_t *loop;
    assert_int_equal(at_loop_new(&loop, NULL), 0);
    capture_begin();
    at_future_t *fut;
    assert_int_equal(at_future_new(loop, &fut), 0);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, poke_future, fut), 0);
    pthread_join(th, NULL);
    assert_int_equal(at_future_state(fut), AT_FUTURE_PENDING);
    assert_contains(capture_text(), "at_future_set_result()");
    capture_end();
    at_future_unref(fut);
    close_clean(loop);
}

int main(void)
{
    /* These tests read the monitor's event ring themselves: keep the exporter (its only
     * other consumer) from starting. */
    setenv("ASYNCTOP_SOCKET", "off", 1);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_result_and_done_callbacks),
        cmocka_unit_test(test_take_result),
        cmocka_unit_test(test_cancel),
        cmocka_unit_test(test_remove_done_callback),
        cmocka_unit_test(test_refcounts),
        cmocka_unit_test(test_never_retrieved_on_last_unref),
        cmocka_unit_test(test_never_retrieved_app_domain),
        cmocka_unit_test(test_never_retrieved_on_last_unref_debug),
        cmocka_unit_test(test_never_retrieved_at_close),
        cmocka_unit_test(test_retrieved_not_reported),
        cmocka_unit_test(test_unretrieved_live_set),
        cmocka_unit_test(test_future_wrong_thread),
    };
    return cmocka_run_group_tests_name("future", tests, NULL, NULL);
}
