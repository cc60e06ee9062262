/* test-executor.c: at_executor_submit — results and errors through futures, cancellation before
 * start, statistics, close with work in flight. */
#include "test-core-util.h"

#include <stdatomic.h>
#include <stdlib.h>

static void *square(void *arg, at_error_t **err)
{
    (void)err;
    int *v = malloc(sizeof *v);
    *v = (int)(intptr_t)arg * (int)(intptr_t)arg;
    sleep_ms(5);
    return v;
}

static void *failing(void *arg, at_error_t **err)
{
    (void)arg;
    *err = at_error_new(AT_ENOENT, NULL, "no such record");
    return NULL;
}

static int done_count;

static void on_done(at_future_t *fut, void *arg)
{
    (void)fut;
    (void)arg;
    done_count++;
}

static void test_result_and_error(void **state)
{
    (void)state;
    at_loop_t *loop;
    assert_int_equal(at_loop_new(&loop, NULL), 0);
    at_future_t *ok, *bad;
    assert_int_equal(at_executor_submit(loop, square, (void *)7, free, "square", &ok), 0);
    assert_int_equal(at_executor_submit(loop, failing, NULL, NULL, NULL, &bad), 0);
    done_count = 0;
    assert_int_equal(at_future_add_done_callback(ok, on_done, NULL, NULL), 0);
    assert_int_equal(at_future_add_done_callback(bad, on_done, NULL, NULL), 0);
    assert_int_equal(at_loop_run(loop, AT_RUN_DEFAULT), 0);
    assert_int_equal(done_count, 2);
    void *v;
    assert_int_equal(at_future_result(ok, &v), 0);
    assert_int_equal(*(int *)v, 49);
    assert_int_equal(at_future_result(bad, NULL), AT_ENOENT);
    assert_string_equal(at_error_message(at_future_error(bad)), "no such record");
    at_executor_stats_t st;
    at_executor_stats(loop, &st);
    assert_int_equal(st.submitted, 2);
    assert_int_equal(st.completed, 2);
    assert_int_equal(st.queued, 0);
    assert_int_equal(st.running, 0);
    assert_true(st.run_total_ns >= 4 * 1000 * 1000); /* square slept 5 ms */
    assert_true(st.run_max_ns <= st.run_total_ns);
    at_future_unref(ok);
    at_future_unref(bad);
    close_clean(loop);
}

/* Jobs that hold every pool thread until released. */
static atomic_int release_blockers, blockers_running;

static void *blocker(void *arg, at_error_t **err)
{
    (void)arg;
    (void)err;
    atomic_fetch_add(&blockers_running, 1);
    while (!atomic_load(&release_blockers))
        sleep_ms(1);
    return NULL;
}

static int ran_queued;

static void *never_runs(void *arg, at_error_t **err)
{
    (void)arg;
    (void)err;
    ran_queued = 1;
    return NULL;
}

static void release_cb(at_loop_t *loop, void *arg)
{
    (void)loop;
    (void)arg;
    atomic_store(&release_blockers, 1);
}

#define POOL 4 /* libuv's default UV_THREADPOOL_SIZE; the test sets it */

static void test_cancel_before_start_and_stats(void **state)
{
    (void)state;
    at_loop_t *loop;
    assert_int_equal(at_loop_new(&loop, NULL), 0);
    atomic_store(&release_blockers, 0);
    atomic_store(&blockers_running, 0);
    at_future_t *b[POOL], *queued;
    for (int i = 0; i < POOL; i++)
        assert_int_equal(at_executor_submit(loop, blocker, NULL, NULL, "blocker", &b[i]), 0);
    while (atomic_load(&blockers_running) < POOL)
        sleep_ms(1);
    assert_int_equal(at_executor_submit(loop, never_runs, NULL, NULL, "queued", &queued), 0);
    at_executor_stats_t st;
    at_executor_stats(loop, &st);
    assert_int_equal(st.running, POOL);
    assert_int_equal(st.queued, 1);
    assert_true(at_future_cancel(queued, "changed my mind"));
    /* The loop's time is still the one of at_loop_new: bring it to now, so that the blockers
     * (all running by now) run at least the 20 ms of the timer, however long they took to
     * start on a loaded machine. */
    uv_update_time(at_loop_uv(loop));
    assert_int_equal(at_call_later(loop, 20, release_cb, NULL, NULL, NULL), 0);
    assert_int_equal(at_loop_run(loop, AT_RUN_DEFAULT), 0);
    assert_false(ran_queued);
    assert_int_equal(at_future_result(queued, NULL), AT_ECANCELED);
    at_executor_stats(loop, &st);
    assert_int_equal(st.submitted, POOL + 1);
    assert_int_equal(st.completed, POOL);
    assert_int_equal(st.cancelled, 1);
    assert_int_equal(st.queued, 0);
    assert_int_equal(st.running, 0);
    assert_true(st.run_max_ns >= 15 * 1000 * 1000);
    assert_true(st.wait_max_ns > 0);
    assert_true(st.wait_p50_ns <= st.wait_p99_ns);
    assert_true(st.wait_p99_ns <= st.wait_max_ns + st.wait_max_ns / 16 + 16); /* bucket midpoints */
    for (int i = 0; i < POOL; i++) {
        assert_int_equal(at_future_result(b[i], NULL), 0);
        at_future_unref(b[i]);
    }
    at_future_unref(queued);
    close_clean(loop);
}

static void *slow_job(void *arg, at_error_t **err)
{
    (void)arg;
    (void)err;
    sleep_ms(30);
    return malloc(16);
}

static void test_close_waits_for_work(void **state)
{
    (void)state;
    at_loop_t *loop;
    assert_int_equal(at_loop_new(&loop, NULL), 0);
    capture_begin();
    at_future_t *fut;
    assert_int_equal(at_executor_submit(loop, slow_job, NULL, free, NULL, &fut), 0);
    at_close_report_t rep;
    assert_int_equal(at_loop_close(loop, &rep), 0);
    assert_int_equal(rep.pending_work, 1);
    assert_int_equal(rep.live_futures, 1);
    assert_contains(capture_text(), "executor job(s) unfinished");
    capture_end();
    /* it either completed while close waited, or was cancelled before starting */
    assert_true(at_future_done(fut));
    at_future_unref(fut); /* frees the result and, last, the loop */
}

int main(void)
{
    setenv("UV_THREADPOOL_SIZE", "4", 1);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_result_and_error),
        cmocka_unit_test(test_cancel_before_start_and_stats),
        cmocka_unit_test(test_close_waits_for_work),
    };
    return cmocka_run_group_tests_name("executor", tests, NULL, NULL);
}
