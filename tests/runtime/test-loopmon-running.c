/* test-loopmon-running.c: "now running" read from another thread while a callback spins,
 * and nested callbacks counted exclusively. */
#include "test-loopmon-util.h"

static at__mon_t *mon;
static _Atomic int reader_saw; /* 1: reader saw the callback running; 2: reader gave up */
static _Atomic int spinning;

__attribute__((noinline)) static void spin_until_seen(void)
{
    atomic_store(&spinning, 1);
    uint64_t deadline = at__now_ns() + 20ull * 1000 * 1000 * 1000;
    while (atomic_load(&reader_saw) == 0 && at__now_ns() < deadline)
        ;
}

typedef struct reader_result {
    int rc;
    at__running_snap_t snap;
    uint64_t read_at;
} reader_result_t;

static void *reader(void *arg)
{
    reader_result_t *r = arg;
    while (!atomic_load(&spinning))
        sleep_ms(1);
    sleep_ms(30); /* the loop is "stuck" in the callback meanwhile */
    r->rc = at__mon_running_read(mon, &r->snap);
    r->read_at = at__now_ns();
    atomic_store(&reader_saw, r->rc == 1 ? 1 : 2);
    return NULL;
}

static void test_running_from_other_thread(void **state)
{
    (void)state;
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    assert_int_equal(at__mon_create(&loop, &mon), 0);

    at__running_snap_t snap;
    assert_int_equal(at__mon_running_read(mon, &snap), 0);
    assert_null(snap.site);

    reader_result_t res;
    memset(&res, 0, sizeof res);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, reader, &res), 0);
    at__site_t *site = at__mon_site(mon, (void *)spin_until_seen, NULL);
    at__cb_t cb;
    uint64_t start =
        at__cb_begin_full(mon, &cb, site, AT__CB_TASK_STEP, 4242, "parse_request", NULL, 0);
    spin_until_seen();
    at__cb_end(mon, &cb);
    pthread_join(th, NULL);

    assert_int_equal(res.rc, 1);
    assert_ptr_equal(res.snap.site, site);
    assert_int_equal(res.snap.task_id, 4242);
    assert_string_equal(res.snap.task_name, "parse_request");
    assert_int_equal(res.snap.kind, AT__CB_TASK_STEP);
    assert_int_equal(res.snap.since_ns, start);
    assert_true(res.read_at - res.snap.since_ns >= 30ull * 1000 * 1000); /* blocked >= 30 ms */

    /* after the end, nothing is running and the task is gone */
    assert_int_equal(at__mon_running_read(mon, &snap), 0);
    assert_null(snap.site);
    assert_int_equal(snap.task_id, 0);
    assert_string_equal(snap.task_name, "");

    close_loop(&loop, mon);
    at__loopmon_shutdown();
}

__attribute__((noinline)) static void outer_fn(void)
{
}
__attribute__((noinline)) static void inner_fn(void)
{
}

static void test_nested_exclusive(void **state)
{
    (void)state;
    uv_loop_t loop;
    at__mon_t *m;
    assert_int_equal(uv_loop_init(&loop), 0);
    assert_int_equal(at__mon_create(&loop, &m), 0);
    at__site_t *so = at__mon_site(m, (void *)outer_fn, NULL);
    at__site_t *si = at__mon_site(m, (void *)inner_fn, NULL);
    at__running_snap_t snap;

    at__cb_t outer, inner;
    at__cb_begin_full(m, &outer, so, AT__CB_IO, 1, "outer-task", NULL, 0);
    sleep_ms(10);
    at__cb_begin(m, &inner, si, AT__CB_EXECUTOR);
    assert_int_equal(at__mon_running_read(m, &snap), 1);
    assert_ptr_equal(snap.site, si);
    assert_int_equal(snap.task_id, 0);
    assert_int_equal(snap.kind, AT__CB_EXECUTOR);
    sleep_ms(60);
    at__cb_end(m, &inner);
    /* back in the outer one: republished with its own start and task */
    assert_int_equal(at__mon_running_read(m, &snap), 1);
    assert_ptr_equal(snap.site, so);
    assert_int_equal(snap.since_ns, outer.start_ns);
    assert_int_equal(snap.task_id, 1);
    assert_string_equal(snap.task_name, "outer-task");
    at__cb_end(m, &outer);

    at__site_stats_t o, i;
    at__site_read(so, &o);
    at__site_read(si, &i);
    assert_int_equal(o.count, 1);
    assert_int_equal(i.count, 1);
    assert_true(i.total_ns >= 60ull * 1000 * 1000);
    assert_true(o.total_ns >= 10ull * 1000 * 1000);
    assert_true(o.total_ns < i.total_ns); /* the inner 60 ms are not in the outer's time */
    at__mon_stats_t st;
    at__mon_stats(m, &st);
    assert_int_equal(st.callbacks, 2);
    assert_int_equal(st.busy_ns, o.total_ns + i.total_ns); /* counted once */

    close_loop(&loop, m);
    at__loopmon_shutdown();
}

/* A batch (core's ready queue): the begin of each callback publishes it, the batch's end
 * publishes "nothing running" as of the last end; site records are complete at the batch's
 * end; nested callbacks and the slow check work as outside a batch. */
static void test_batch(void **state)
{
    (void)state;
    uv_loop_t loop;
    at__mon_t *m;
    assert_int_equal(uv_loop_init(&loop), 0);
    assert_int_equal(at__mon_create(&loop, &m), 0);
    at__site_t *so = at__mon_site(m, (void *)outer_fn, NULL);
    at__site_t *si = at__mon_site(m, (void *)inner_fn, NULL);
    at__running_snap_t snap;
    at__site_stats_t o, i;
    uint64_t slow_before = at__slow_threshold_ns();
    at__slow_threshold_set_ns(20ull * 1000 * 1000);

    at__mon_batch_begin(m);
    at__cb_t a, b, c;
    at__cb_begin(m, &a, so, AT__CB_READY);
    assert_int_equal(at__mon_running_read(m, &snap), 1);
    assert_ptr_equal(snap.site, so);
    assert_int_equal(snap.since_ns, a.start_ns);
    at__cb_end(m, &a);
    at__cb_begin(m, &b, si, AT__CB_READY);
    assert_int_equal(at__mon_running_read(m, &snap), 1);
    assert_ptr_equal(snap.site, si);
    assert_int_equal(snap.since_ns, b.start_ns);
    assert_true(b.start_ns >= a.start_ns);
    sleep_ms(30);                          /* slow: reported at its end, not at the batch's */
    at__cb_begin(m, &c, so, AT__CB_TIMER); /* nested */
    at__cb_end(m, &c);
    uint64_t end_b = at__cb_end(m, &b);
    at__mon_stats_t st;
    at__mon_stats(m, &st);
    assert_int_equal(st.slow_count, 1);
    at__mon_batch_end(m);

    assert_int_equal(at__mon_running_read(m, &snap), 0);
    assert_null(snap.site);
    assert_int_equal(snap.since_ns, end_b);
    at__site_read(so, &o);
    at__site_read(si, &i);
    assert_int_equal(o.count, 2);
    assert_int_equal(i.count, 1);
    assert_true(i.total_ns >= 30ull * 1000 * 1000);
    assert_true(i.max_ns == i.total_ns);
    at__mon_stats(m, &st);
    assert_int_equal(st.callbacks, 3);
    assert_int_equal(st.busy_ns, o.total_ns + i.total_ns);

    at__slow_threshold_set_ns(slow_before);
    at__log_flush(1000000000ull);
    close_loop(&loop, m);
    at__loopmon_shutdown();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_running_from_other_thread),
        cmocka_unit_test(test_nested_exclusive),
        cmocka_unit_test(test_batch),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
