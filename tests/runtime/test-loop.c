/* test-loop.c: at_loop_t — callback ordering, cancellation, batching, stop, other threads,
 * wrong-thread refusal, slow callbacks, close reports. */
#include "test-core-util.h"

#include <stdlib.h>

/* ---- ordering ------------------------------------------------------------- */

typedef struct order {
    int seq[16];
    int n;
} order_t;

static order_t order;

static void push_order(at_loop_t *loop, void *arg)
{
    (void)loop;
    order.seq[order.n++] = (int)(intptr_t)arg;
}

static void test_call_soon_fifo(void **state)
{
    (void)state;
    at_loop_t *loop;
    assert_int_equal(at_loop_new(&loop, NULL), 0);
    memset(&order, 0, sizeof order);
    for (int i = 1; i <= 5; i++)
        assert_int_equal(at_call_soon(loop, push_order, (void *)(intptr_t)i, "push", NULL), 0);
    assert_int_equal(at_loop_run(loop, AT_RUN_DEFAULT), 0);
    assert_int_equal(order.n, 5);
    for (int i = 0; i < 5; i++)
        assert_int_equal(order.seq[i], i + 1);
    close_clean(loop);
}

static void test_call_later_and_at_order(void **state)
{
    (void)state;
    at_loop_t *loop;
    assert_int_equal(at_loop_new(&loop, NULL), 0);
    memset(&order, 0, sizeof order);
    uint64_t now = at_loop_time(loop);
    assert_int_equal(at_call_later(loop, 60, push_order, (void *)4, NULL, NULL), 0);
    assert_int_equal(at_call_later(loop, 20, push_order, (void *)2, NULL, NULL), 0);
    /* same deadline as the previous one, scheduled after it: runs after it */
    assert_int_equal(at_call_at(loop, now + 20, push_order, (void *)3, NULL, NULL), 0);
    assert_int_equal(at_call_soon(loop, push_order, (void *)1, NULL, NULL), 0);
    /* a deadline in the past: as soon as possible, after what is ready */
    assert_int_equal(at_call_at(loop, 0, push_order, (void *)9, NULL, NULL), 0);
    assert_int_equal(at_loop_run(loop, AT_RUN_DEFAULT), 0);
    assert_int_equal(order.n, 5);
    int want[] = {1, 9, 2, 3, 4};
    for (int i = 0; i < 5; i++)
        assert_int_equal(order.seq[i], want[i]);
    assert_true(at_loop_time(loop) >= now + 60);
    close_clean(loop);
}

/* ---- cancellation ----------------------------------------------------------- */

static int ran;

static void count_cb(at_loop_t *loop, void *arg)
{
    (void)loop;
    (void)arg;
    ran++;
}

static at_handle_t victim;

static void cancel_victim(at_loop_t *loop, void *arg)
{
    (void)arg;
    assert_true(at_handle_cancel(loop, victim));
}

static void test_cancel(void **state)
{
    (void)state;
    at_loop_t *loop;
    assert_int_equal(at_loop_new(&loop, NULL), 0);
    ran = 0;
    at_handle_t h1, h2, zero = {0};
    assert_int_equal(at_call_soon(loop, count_cb, NULL, NULL, &h1), 0);
    assert_int_equal(at_call_later(loop, 10, count_cb, NULL, NULL, &h2), 0);
    assert_true(at_handle_pending(loop, h1));
    assert_true(at_handle_pending(loop, h2));
    assert_true(at_handle_cancel(loop, h1));
    assert_false(at_handle_cancel(loop, h1)); /* twice: no-op */
    assert_true(at_handle_cancel(loop, h2));
    assert_false(at_handle_pending(loop, h1));
    assert_false(at_handle_cancel(loop, zero));
    /* cancelled from an earlier callback of the same batch */
    assert_int_equal(at_call_soon(loop, cancel_victim, NULL, NULL, NULL), 0);
    assert_int_equal(at_call_soon(loop, count_cb, NULL, NULL, &victim), 0);
    assert_int_equal(at_loop_run(loop, AT_RUN_DEFAULT), 0);
    assert_int_equal(ran, 0);

    /* a handle whose callback ran stays dead after its slot is reused */
    at_handle_t old, fresh;
    assert_int_equal(at_call_soon(loop, count_cb, NULL, NULL, &old), 0);
    assert_int_equal(at_loop_run(loop, AT_RUN_DEFAULT), 0);
    assert_int_equal(ran, 1);
    assert_int_equal(at_call_soon(loop, count_cb, NULL, NULL, &fresh), 0);
    assert_false(at_handle_cancel(loop, old));
    assert_true(at_handle_pending(loop, fresh));
    assert_int_equal(at_loop_run(loop, AT_RUN_DEFAULT), 0);
    assert_int_equal(ran, 2);
    close_clean(loop);
}

/* ---- batching and fairness -------------------------------------------------- */

typedef struct chain {
    long left, done;
    int stop; /* set by a raw libuv timer: proves I/O phases still run */
} chain_t;

static void chain_cb(at_loop_t *loop, void *arg)
{
    chain_t *c = arg;
    c->done++;
    if (--c->left > 0 && !c->stop)
        assert_int_equal(at_call_soon(loop, chain_cb, c, "chain", NULL), 0);
}

static void stop_chain(uv_timer_t *t)
{
    chain_t *c = t->data;
    c->stop = 1;
    uv_close((uv_handle_t *)t, NULL);
}

static void test_chain_and_fairness(void **state)
{
    (void)state;
    at_loop_t *loop;
    assert_int_equal(at_loop_new(&loop, NULL), 0);
    chain_t c = {100000, 0, 0};
    assert_int_equal(at_call_soon(loop, chain_cb, &c, "chain", NULL), 0);
    assert_int_equal(at_loop_run(loop, AT_RUN_DEFAULT), 0);
    assert_int_equal(c.done, 100000);

    /* An endless chain must not starve libuv: a 5 ms timer stops it. */
    chain_t endless = {-1, 0, 0};
    uv_timer_t t;
    uv_timer_init(at_loop_uv(loop), &t);
    t.data = &endless;
    uv_timer_start(&t, stop_chain, 5, 0);
    assert_int_equal(at_call_soon(loop, chain_cb, &endless, "endless", NULL), 0);
    assert_int_equal(at_loop_run(loop, AT_RUN_DEFAULT), 0);
    assert_true(endless.stop);
    assert_true(endless.done > 0);
    close_clean(loop);
}

/* ---- stop and run modes ------------------------------------------------------- */

static void stop_cb(at_loop_t *loop, void *arg)
{
    (void)arg;
    ran++;
    assert_int_equal(at_loop_stop(loop), 0);
}

static void reenter_cb(at_loop_t *loop, void *arg)
{
    (void)arg;
    assert_int_equal(at_loop_run(loop, AT_RUN_NOWAIT), AT_EINVALSTATE);
    assert_int_equal(at_loop_close(loop, NULL), AT_EINVALSTATE);
    assert_ptr_equal(at_loop_current(), loop);
}

static void test_stop_and_modes(void **state)
{
    (void)state;
    at_loop_t *loop;
    assert_int_equal(at_loop_new(&loop, NULL), 0);
    ran = 0;
    assert_int_equal(at_call_soon(loop, stop_cb, NULL, NULL, NULL), 0);
    assert_int_equal(at_call_soon(loop, count_cb, NULL, NULL, NULL), 0);
    assert_int_equal(at_loop_run(loop, AT_RUN_DEFAULT), 1); /* stopped, work pending */
    assert_int_equal(ran, 1);                               /* stopped before the second callback */
    assert_int_equal(at_loop_run(loop, AT_RUN_DEFAULT), 0);
    assert_int_equal(ran, 2);
    assert_int_equal(at_call_soon(loop, reenter_cb, NULL, NULL, NULL), 0);
    assert_int_equal(at_loop_run(loop, AT_RUN_ONCE), 0);
    assert_null(at_loop_current());
    assert_int_equal(at_call_soon(loop, count_cb, NULL, NULL, NULL), 0);
    assert_int_equal(at_loop_run(loop, AT_RUN_NOWAIT), 0);
    assert_int_equal(ran, 3);
    close_clean(loop);
}

/* ---- other threads ------------------------------------------------------------ */

#define TS_THREADS 4
#define TS_CALLS   2000

typedef struct ts_state {
    at_loop_t *loop;
    int last[TS_THREADS];
    int received;
    int out_of_order;
} ts_state_t;

typedef struct ts_arg {
    ts_state_t *st;
    int thread;
} ts_arg_t;

static ts_state_t ts;

static void ts_cb(at_loop_t *loop, void *arg)
{
    uintptr_t v = (uintptr_t)arg;
    int th = (int)(v >> 20), i = (int)(v & 0xfffff);
    assert_true(at_loop_is_loop_thread(loop));
    if (i != ts.last[th] + 1)
        ts.out_of_order++;
    ts.last[th] = i;
    if (++ts.received == TS_THREADS * TS_CALLS)
        assert_int_equal(at_loop_unref(loop), 0);
}

static void *ts_thread(void *p)
{
    ts_arg_t *a = p;
    for (int i = 1; i <= TS_CALLS; i++) {
        uintptr_t v = ((uintptr_t)a->thread << 20) | (uintptr_t)i;
        assert_int_equal(at_call_soon_threadsafe(a->st->loop, ts_cb, (void *)v, "ts", NULL), 0);
    }
    return NULL;
}

static void test_threadsafe_many_threads(void **state)
{
    (void)state;
    memset(&ts, 0, sizeof ts);
    assert_int_equal(at_loop_new(&ts.loop, NULL), 0);
    assert_int_equal(at_loop_ref(ts.loop), 0); /* wait for the other threads */
    pthread_t th[TS_THREADS];
    ts_arg_t args[TS_THREADS];
    for (int i = 0; i < TS_THREADS; i++) {
        args[i] = (ts_arg_t){&ts, i};
        assert_int_equal(pthread_create(&th[i], NULL, ts_thread, &args[i]), 0);
    }
    assert_int_equal(at_loop_run(ts.loop, AT_RUN_DEFAULT), 0);
    for (int i = 0; i < TS_THREADS; i++)
        pthread_join(th[i], NULL);
    assert_int_equal(ts.received, TS_THREADS * TS_CALLS);
    assert_int_equal(ts.out_of_order, 0);
    for (int i = 0; i < TS_THREADS; i++)
        assert_int_equal(ts.last[i], TS_CALLS);
    close_clean(ts.loop);
}

/* A threadsafe call cancelled on the loop thread before the loop drained it. */
static void *post_one(void *p)
{
    at_handle_t *h = p;
    assert_int_equal(at_call_soon_threadsafe(ts.loop, count_cb, NULL, "posted", h), 0);
    return NULL;
}

static void test_threadsafe_cancel_before_drain(void **state)
{
    (void)state;
    memset(&ts, 0, sizeof ts);
    assert_int_equal(at_loop_new(&ts.loop, NULL), 0);
    at_handle_t h;
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, post_one, &h), 0);
    pthread_join(th, NULL);
    ran = 0;
    assert_true(at_handle_pending(ts.loop, h));
    assert_true(at_handle_cancel(ts.loop, h));
    assert_false(at_handle_cancel(ts.loop, h));
    assert_int_equal(at_loop_run(ts.loop, AT_RUN_NOWAIT), 0);
    assert_int_equal(ran, 0);
    close_clean(ts.loop);
}

/* run-and-wait: a foreign thread runs a function on the loop and gets its result */

static int answer_fn(at_loop_t *loop, void *arg, void **result)
{
    assert_true(at_loop_is_loop_thread(loop));
    *result = (char *)arg + 1;
    return 7;
}

static int stop_fn(at_loop_t *loop, void *arg, void **result)
{
    (void)arg;
    (void)result;
    at_loop_unref(loop);
    return 0;
}

static void *waiter_thread(void *p)
{
    at_loop_t *loop = p;
    static char base[4];
    void *res = NULL;
    int rc = at_loop_run_and_wait(loop, answer_fn, base, UINT64_MAX, &res);
    assert_int_equal(rc, 7);
    assert_ptr_equal(res, base + 1);
    assert_int_equal(at_loop_run_and_wait(loop, stop_fn, NULL, 10000, NULL), 0);
    return NULL;
}

static int deadlock_fn(at_loop_t *loop, void *arg, void **result)
{
    (void)arg;
    (void)result;
    (void)loop;
    return 1;
}

static void call_run_and_wait_on_loop(at_loop_t *loop, void *arg)
{
    (void)arg;
    assert_int_equal(at_loop_run_and_wait(loop, deadlock_fn, NULL, 100, NULL), AT_EDEADLK);
}

static int slow_result_fn(at_loop_t *loop, void *arg, void **result)
{
    (void)loop;
    (void)result;
    ran++;
    return (int)(intptr_t)arg;
}

static void *timeout_thread(void *p)
{
    /* the loop is not running: the wait times out; the function runs later */
    assert_int_equal(at_loop_run_and_wait(p, slow_result_fn, (void *)5, 30, NULL), AT_ETIMEDOUT);
    return NULL;
}

static void test_run_and_wait(void **state)
{
    (void)state;
    at_loop_t *loop;
    assert_int_equal(at_loop_new(&loop, NULL), 0);
    assert_int_equal(at_loop_ref(loop), 0);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, waiter_thread, loop), 0);
    assert_int_equal(at_loop_run(loop, AT_RUN_DEFAULT), 0);
    pthread_join(th, NULL);

    assert_int_equal(at_call_soon(loop, call_run_and_wait_on_loop, NULL, NULL, NULL), 0);
    assert_int_equal(at_loop_run(loop, AT_RUN_DEFAULT), 0);

    ran = 0;
    assert_int_equal(pthread_create(&th, NULL, timeout_thread, loop), 0);
    pthread_join(th, NULL);
    assert_int_equal(at_loop_run(loop, AT_RUN_DEFAULT), 0);
    assert_int_equal(ran, 1);
    close_clean(loop);
}

/* await-threadsafe: start a future on the loop, wait for it from a thread */

static void complete_later(at_loop_t *loop, void *arg)
{
    (void)loop;
    at_future_t *fut = arg;
    int *v = malloc(sizeof *v);
    *v = 42;
    assert_int_equal(at_future_set_result(fut, v, free), 0);
    at_future_unref(fut);
}

static int start_ok(at_loop_t *loop, void *arg, at_future_t **out)
{
    (void)arg;
    at_future_t *fut;
    int rc = at_future_new(loop, &fut);
    if (rc < 0)
        return rc;
    at_call_later(loop, 5, complete_later, at_future_ref(fut), NULL, NULL);
    *out = fut;
    return 0;
}

static int start_fail(at_loop_t *loop, void *arg, at_future_t **out)
{
    (void)arg;
    at_future_t *fut;
    int rc = at_future_new(loop, &fut);
    if (rc < 0)
        return rc;
    at_future_fail(fut, AT_ECONNREFUSED, "peer %s refused", "db1");
    *out = fut;
    return 0;
}

static int start_cancel(at_loop_t *loop, void *arg, at_future_t **out)
{
    (void)arg;
    at_future_t *fut;
    int rc = at_future_new(loop, &fut);
    if (rc < 0)
        return rc;
    at_future_cancel(fut, "test");
    *out = fut;
    return 0;
}

static void *await_thread(void *p)
{
    at_loop_t *loop = p;
    void *res = NULL;
    at_error_t *err = NULL;
    assert_int_equal(at_loop_await_threadsafe(loop, start_ok, NULL, 10000, &res, &err), 0);
    assert_non_null(res);
    assert_int_equal(*(int *)res, 42);
    free(res); /* ownership came with it */
    assert_null(err);
    assert_int_equal(at_loop_await_threadsafe(loop, start_fail, NULL, 10000, &res, &err),
                     AT_ECONNREFUSED);
    assert_non_null(err);
    assert_string_equal(at_error_message(err), "peer db1 refused");
    at_error_unref(err);
    assert_int_equal(at_loop_await_threadsafe(loop, start_cancel, NULL, 10000, &res, NULL),
                     AT_ECANCELED);
    assert_int_equal(at_loop_run_and_wait(loop, stop_fn, NULL, 10000, NULL), 0);
    return NULL;
}

static void test_await_threadsafe(void **state)
{
    (void)state;
    at_loop_t *loop;
    assert_int_equal(at_loop_new(&loop, NULL), 0);
    assert_int_equal(at_loop_ref(loop), 0);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, await_thread, loop), 0);
    assert_int_equal(at_loop_run(loop, AT_RUN_DEFAULT), 0);
    pthread_join(th, NULL);
    close_clean(loop);
}

/* ---- wrong thread -------------------------------------------------------------- */

static __attribute__((noinline)) void *wrong_thread_worker(void *p)
{
    at_loop_t *loop = p;
    at_future_t *fut = (at_future_t *)0x1;
    assert_int_equal(at_call_soon(loop, count_cb, NULL, NULL, NULL), AT_EWRONGTHREAD);
    assert_int_equal(at_call_later(loop, 1, count_cb, NULL, NULL, NULL), AT_EWRONGTHREAD);
    assert_int_equal(at_future_new(loop, &fut), AT_EWRONGTHREAD);
    assert_null(fut);
    assert_int_equal(at_loop_run(loop, AT_RUN_NOWAIT), AT_EWRONGTHREAD);
    assert_int_equal(at_loop_close(loop, NULL), AT_EWRONGTHREAD);
    /* stop is safe from any thread (posted through the threadsafe queue) */
    assert_int_equal(at_loop_stop(loop), 0);
    return NULL;
}

static void test_wrong_thread_refused(void **state)
{
    (void)state;
    at_loop_t *loop;
    assert_int_equal(at_loop_new(&loop, NULL), 0);
    assert_int_equal(at_loop_run(loop, AT_RUN_NOWAIT), 0); /* this thread is the loop's now */
    at_debug_counters_t before, after;
    at_debug_counters(&before);
    capture_begin();
    ran = 0;
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, wrong_thread_worker, loop), 0);
    pthread_join(th, NULL);
    const char *log = capture_text();
    assert_contains(log, "Non-thread-safe operation at_call_soon() invoked on loop");
    assert_contains(log, "Non-thread-safe operation at_future_new()");
    assert_contains(log, "wrong_thread_worker"); /* the caller's stack, symbolised */
    at_debug_counters(&after);
    assert_int_equal(after.wrong_thread - before.wrong_thread, 5);
    assert_int_equal(at_loop_run(loop, AT_RUN_DEFAULT), 0);
    assert_int_equal(ran, 0); /* nothing was scheduled */
    capture_end();
    close_clean(loop);
}

/* A loop set up on one thread and run by another belongs to the runner. */
static void *close_elsewhere(void *p)
{
    close_clean(p);
    return NULL;
}

static void *run_elsewhere(void *p)
{
    at_loop_t *loop = p;
    assert_int_equal(at_loop_run(loop, AT_RUN_DEFAULT), 0);
    assert_true(at_loop_is_loop_thread(loop));
    return NULL;
}

static void test_loop_handed_to_another_thread(void **state)
{
    (void)state;
    at_loop_t *loop;
    assert_int_equal(at_loop_new(&loop, NULL), 0);
    ran = 0;
    assert_int_equal(at_call_soon(loop, count_cb, NULL, NULL, NULL), 0);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, run_elsewhere, loop), 0);
    pthread_join(th, NULL);
    assert_int_equal(ran, 1);
    assert_false(at_loop_is_loop_thread(loop));
    capture_begin();
    assert_int_equal(at_call_soon(loop, count_cb, NULL, NULL, NULL), AT_EWRONGTHREAD);
    assert_int_equal(at_loop_close(loop, NULL), AT_EWRONGTHREAD);
    capture_end();
    assert_int_equal(pthread_create(&th, NULL, close_elsewhere, loop), 0);
    pthread_join(th, NULL);
}

/* ---- slow callbacks --------------------------------------------------------------- */

static void sleep_cb(at_loop_t *loop, void *arg)
{
    (void)loop;
    sleep_ms((unsigned)(uintptr_t)arg);
}

static void *set_threshold_thread(void *p)
{
    (void)p;
    at_set_slow_threshold_ms(20);
    return NULL;
}

static void test_slow_callbacks(void **state)
{
    (void)state;
    at_loop_t *loop;
    assert_int_equal(at_loop_new(&loop, NULL), 0);
    at_set_slow_threshold_ms(100);
    assert_int_equal(at_get_slow_threshold_ms(), 100);
    capture_begin();
    /* The 50 ms callback runs first: after a slow one, the logger thread is busy
     * symbolising it, and under valgrind (which runs one thread at a time) that
     * can delay the next callback's wake-up by tens of milliseconds. */
    assert_int_equal(at_call_soon(loop, sleep_cb, (void *)50, "sleep50-before", NULL), 0);
    assert_int_equal(at_call_soon(loop, sleep_cb, (void *)150, "sleep150", NULL), 0);
    assert_int_equal(at_loop_run(loop, AT_RUN_DEFAULT), 0);
    const char *log = capture_text();
    assert_contains(log, "Executing <sleep150");
    assert_not_contains(log, "sleep50-before");

    /* from another thread, while the loop is idle */
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, set_threshold_thread, NULL), 0);
    pthread_join(th, NULL);
    assert_int_equal(at_get_slow_threshold_ms(), 20);
    assert_int_equal(at_call_later(loop, 1, sleep_cb, (void *)50, "sleep50-after", NULL), 0);
    assert_int_equal(at_loop_run(loop, AT_RUN_DEFAULT), 0);
    log = capture_text();
    assert_contains(log, "Executing <sleep50-after");
    assert_contains(log, "seconds");
    capture_end();
    at_set_slow_threshold_ms(100);
    close_clean(loop);
}

/* ---- close reports ------------------------------------------------------------------ */

static void test_unclosed_handle_reported(void **state)
{
    (void)state;
    at_loop_t *loop;
    assert_int_equal(at_loop_new(&loop, NULL), 0);
    capture_begin();
    static uv_timer_t forgotten;
    uv_timer_init(at_loop_uv(loop), &forgotten);
    at_close_report_t rep;
    at_debug_counters_t before, after;
    at_debug_counters(&before);
    assert_int_equal(at_loop_close(loop, &rep), 0); /* owned uv loop: we close it */
    assert_int_equal(rep.unclosed_handles, 1);
    at_debug_counters(&after);
    assert_int_equal(after.unclosed - before.unclosed, 1);
    const char *log = capture_text();
    assert_contains(log, "ResourceWarning: unclosed handle uv_timer_t");
    capture_end();
}

static __attribute__((noinline)) void schedule_and_forget(at_loop_t *loop)
{
    assert_int_equal(at_call_later(loop, 100000, count_cb, NULL, "forgotten-timer", NULL), 0);
}

static void test_close_drops_scheduled(void **state)
{
    (void)state;
    at_loop_t *loop;
    assert_int_equal(at_loop_new(&loop, NULL), 0);
    capture_begin();
    at_set_debug(true);
    at_handle_t h;
    assert_int_equal(at_call_soon(loop, count_cb, NULL, "forgotten-soon", NULL), 0);
    assert_int_equal(at_call_soon(loop, count_cb, NULL, "cancelled", &h), 0);
    assert_true(at_handle_cancel(loop, h));
    schedule_and_forget(loop);
    at_set_debug(false);
    at_close_report_t rep;
    assert_int_equal(at_loop_close(loop, &rep), 0);
    assert_int_equal(rep.dropped_callbacks, 2);
    const char *log = capture_text();
    assert_contains(log, "forgotten-soon");
    assert_contains(log, "forgotten-timer");
    assert_not_contains(log, "callback cancelled");
    /* debug mode: where it was scheduled, symbolised */
    assert_contains(log, "schedule_and_forget");
    capture_end();
}

static void test_adopted_uv_loop(void **state)
{
    (void)state;
    uv_loop_t uv;
    assert_int_equal(uv_loop_init(&uv), 0);
    at_loop_t *loop;
    assert_int_equal(at_loop_new(&loop, &uv), 0);
    assert_ptr_equal(at_loop_uv(loop), &uv);
    ran = 0;
    assert_int_equal(at_call_soon(loop, count_cb, NULL, NULL, NULL), 0);
    assert_int_equal(at_loop_run(loop, AT_RUN_DEFAULT), 0);
    assert_int_equal(ran, 1);
    /* the application's handle is reported but left open on its own loop */
    uv_timer_t mine;
    uv_timer_init(&uv, &mine);
    capture_begin();
    at_close_report_t rep;
    assert_int_equal(at_loop_close(loop, &rep), 0);
    assert_int_equal(rep.unclosed_handles, 1);
    assert_contains(capture_text(), "left open");
    capture_end();
    assert_false(uv_is_closing((uv_handle_t *)&mine));
    uv_close((uv_handle_t *)&mine, NULL);
    assert_int_equal(uv_run(&uv, UV_RUN_DEFAULT), 0);
    assert_int_equal(uv_loop_close(&uv), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_call_soon_fifo),
        cmocka_unit_test(test_call_later_and_at_order),
        cmocka_unit_test(test_cancel),
        cmocka_unit_test(test_chain_and_fairness),
        cmocka_unit_test(test_stop_and_modes),
        cmocka_unit_test(test_threadsafe_many_threads),
        cmocka_unit_test(test_threadsafe_cancel_before_drain),
        cmocka_unit_test(test_run_and_wait),
        cmocka_unit_test(test_await_threadsafe),
        cmocka_unit_test(test_wrong_thread_refused),
        cmocka_unit_test(test_loop_handed_to_another_thread),
        cmocka_unit_test(test_slow_callbacks),
        cmocka_unit_test(test_unclosed_handle_reported),
        cmocka_unit_test(test_close_drops_scheduled),
        cmocka_unit_test(test_adopted_uv_loop),
    };
    return cmocka_run_group_tests_name("loop", tests, NULL, NULL);
}
