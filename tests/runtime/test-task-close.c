/* test-task-close.c: what at_loop_close does with the tasks still pending — it cancels them and
 * runs the loop until they have unwound (asyncio.run's _cancel_all_tasks), at every kind of
 * await point; what it reports (a task that swallows the cancellation: destroyed while
 * pending; an error raised while unwinding: an unhandled exception, not a never-retrieved one);
 * and that nothing leaks (ASan/LSan, valgrind). */
#include "test-core-util.h"

#include <semaphore.h>
#include <stdint.h>
#include <stdlib.h>

#define VISIBLE __attribute__((visibility("default"), noinline))

static at_loop_t *loop_new(void)
{
    at_loop_t *loop = NULL;
    assert_int_equal(at_loop_new(&loop, NULL), 0);
    return loop;
}

/* Runs the loop until `n` tasks are pending and none is ready (every one waits). */
static void run_until_all_wait(at_loop_t *loop, size_t n)
{
    for (int i = 0; i < 1000; i++) {
        at_loop_run(loop, AT_RUN_NOWAIT);
        if (at_loop_tasks(loop, NULL, NULL) == n)
            return;
    }
    fail_msg("expected %zu pending tasks, have %zu", n, at_loop_tasks(loop, NULL, NULL));
}

/* ---- a parent blocked joining its child ------------------------------------------------- */

typedef struct family {
    at_loop_t *loop;
    at_event_t *never;
    int child_rc, parent_rc;
    int child_cleanups, parent_cleanups;
    bool child_unref_done;
} family_t;

static int child_waits(void *arg, void **result)
{
    family_t *f = arg;
    f->child_rc = at_event_wait(f->never);
    f->child_cleanups++; /* cleanup code after the await point */
    return f->child_rc;
}

static int parent_joins_child(void *arg, void **result)
{
    family_t *f = arg;
    at_task_t *c;
    at_task_opts_t o = {.name = "child"};
    assert_int_equal(at_task_spawn(f->loop, child_waits, f, &o, &c), 0);
    f->parent_rc = at_task_join(c, NULL); /* the only reference to c is in this frame */
    f->parent_cleanups++;
    at_task_unref(c);
    f->child_unref_done = true;
    return f->parent_rc;
}

/* The parent's reference to its child lives in the parent's frame: destroying the parent
 * without unwinding it leaked the child (~570 bytes, LSan in tui_target). The close cancels
 * both, each runs the code after its await point, and both are freed. */
static void test_close_unwinds_parent_joining_child(void **state)
{
    capture_begin();
    family_t f = {.loop = loop_new()};
    assert_int_equal(at_event_new(f.loop, &f.never), 0);
    at_task_opts_t o = {.name = "parent"};
    assert_int_equal(at_task_spawn(f.loop, parent_joins_child, &f, &o, NULL), 0);
    run_until_all_wait(f.loop, 2);
    assert_int_equal(f.parent_cleanups + f.child_cleanups, 0);
    close_clean(f.loop);
    assert_int_equal(f.parent_rc, AT_ECANCELED);
    assert_int_equal(f.child_rc, AT_ECANCELED);
    assert_int_equal(f.parent_cleanups, 1);
    assert_int_equal(f.child_cleanups, 1);
    assert_true(f.child_unref_done);
    at_event_free(f.never);
    const char *log = capture_text();
    assert_not_contains(log, "destroyed but it is pending");
    assert_not_contains(log, "never retrieved");
    assert_not_contains(log, "unhandled exception");
    capture_end();
}

/* ---- a task that swallows the cancellation ---------------------------------------------- */

typedef struct swallow {
    at_event_t *never;
    int cancellations; /* how many times the close cancelled it */
    int polite_cleanups;
} swallow_t;

VISIBLE int swallows_cancellation(void *arg, void **result);
VISIBLE void spawn_swallower(at_loop_t *loop, swallow_t *s);

VISIBLE int swallows_cancellation(void *arg, void **result)
{
    swallow_t *s = arg;
    int rc;
    while ((rc = at_event_wait(s->never)) == AT_ECANCELED)
        s->cancellations++;            /* and awaits again */
    __asm__ volatile("" ::: "memory"); /* not a tail call: keep this frame */
    return rc;
}

VISIBLE void spawn_swallower(at_loop_t *loop, swallow_t *s)
{
    at_task_opts_t o = {.name = "stubborn"};
    assert_int_equal(at_task_spawn(loop, swallows_cancellation, s, &o, NULL), 0);
    __asm__ volatile("" ::: "memory");
}

static int polite(void *arg, void **result)
{
    swallow_t *s = arg;
    int rc = at_event_wait(s->never);
    s->polite_cleanups++;
    return rc;
}

static void test_close_reports_task_that_swallows_cancellation(void **state)
{
    capture_begin();
    at_loop_t *loop = loop_new();
    swallow_t s = {0};
    assert_int_equal(at_event_new(loop, &s.never), 0);
    spawn_swallower(loop, &s);
    at_task_opts_t o = {.name = "polite"};
    assert_int_equal(at_task_spawn(loop, polite, &s, &o, NULL), 0);
    run_until_all_wait(loop, 2);
    close_clean(loop);
    /* cancelled again after it awaited again, then given up on */
    assert_true(s.cancellations >= 2);
    assert_int_equal(s.polite_cleanups, 1);
    at_event_free(s.never);
    const char *log = capture_text();
    const char *rep = strstr(log, "Task was destroyed but it is pending!");
    if (!rep)
        print_error("%s\n", log);
    assert_non_null(rep);
    assert_null(strstr(rep + 1, "Task was destroyed but it is pending!")); /* polite is not */
    assert_contains(rep, "name='stubborn'");
    const char *created = strstr(rep, "Task created at");
    const char *susp = strstr(rep, "Task suspended at");
    assert_non_null(created);
    assert_non_null(susp);
    assert_true(created < susp);
    const char *site = strstr(created, "spawn_swallower");
    assert_true(site != NULL && site < susp);
    assert_non_null(strstr(susp, "swallows_cancellation"));
    assert_not_contains(log, "name='polite'");
    capture_end();
}

/* ---- every kind of await point ---------------------------------------------------------- */

enum {
    P_EVENT,
    P_LOCK,
    P_SEMAPHORE,
    P_QUEUE_GET,
    P_QUEUE_PUT,
    P_SLEEP,
    P_FUTURE,
    P_TIMEOUT,
    P_JOIN,
    P_EXECUTOR,
    P_ACCEPT_READ, /* accepted a connection, reads it */
    P_CONNECT_READ,
    P_N
};

static const char *const point_names[P_N] = {
    "event",  "lock",    "semaphore", "queue-get", "queue-put",   "sleep",
    "future", "timeout", "join",      "executor",  "accept-read", "connect-read"};

typedef struct points {
    at_loop_t *loop;
    at_event_t *never;
    at_lock_t *lock;
    at_semaphore_t *sem;
    at_queue_t *empty_q, *full_q;
    at_future_t *fut; /* never completed */
    at_stream_t *listener;
    int port;
    sem_t job_go; /* the executor job blocks on it until the waiting task's cleanup posts it */
    int rc[P_N];
    int cleaned[P_N];
    int holder_cleaned;
    int job_result_seen;
    int reading; /* tasks that reached at_stream_read */
} points_t;

typedef struct point_arg {
    points_t *p;
    int which;
} point_arg_t;

static point_arg_t point_args[P_N];

static void *blocking_job(void *arg, at_error_t **err)
{
    points_t *p = arg;
    sem_wait(&p->job_go);
    return (void *)0x42;
}

static int sleeps_then_returns(void *arg, void **result)
{
    return at_sleep(3600 * 1000);
}

static int lock_holder(void *arg, void **result)
{
    points_t *p = arg;
    assert_int_equal(at_lock_acquire(p->lock), 0);
    int rc = at_event_wait(p->never);
    at_lock_release(p->lock); /* its cleanup lets the lock waiter in (also cancelled) */
    p->holder_cleaned++;
    return rc;
}

static int blocked_at_point(void *arg, void **result)
{
    point_arg_t *a = arg;
    points_t *p = a->p;
    int rc = AT_EINVAL;
    switch (a->which) {
    case P_EVENT:
        rc = at_event_wait(p->never);
        break;
    case P_LOCK:
        rc = at_lock_acquire(p->lock);
        if (rc == 0)
            at_lock_release(p->lock);
        break;
    case P_SEMAPHORE:
        rc = at_semaphore_acquire(p->sem);
        break;
    case P_QUEUE_GET: {
        void *item;
        rc = at_queue_get(p->empty_q, &item);
        break;
    }
    case P_QUEUE_PUT:
        rc = at_queue_put(p->full_q, (void *)2); /* capacity 1, holds one */
        break;
    case P_SLEEP:
        rc = at_sleep(3600 * 1000);
        break;
    case P_FUTURE:
        rc = at_await(p->fut, NULL);
        break;
    case P_TIMEOUT:
        rc = at_await_timeout(p->fut, 3600 * 1000, NULL);
        break;
    case P_JOIN: {
        at_task_t *t;
        assert_int_equal(at_task_spawn(p->loop, sleeps_then_returns, NULL, NULL, &t), 0);
        rc = at_task_join(t, NULL);
        at_task_unref(t);
        break;
    }
    case P_EXECUTOR: {
        at_future_t *f;
        assert_int_equal(at_executor_submit(p->loop, blocking_job, p, NULL, "blocking", &f), 0);
        rc = at_await(f, NULL);
        /* Cleanup may await: let the job finish and take its result. */
        sem_post(&p->job_go);
        void *v = NULL;
        if (at_await(f, &v) == 0 && v == (void *)0x42)
            p->job_result_seen = 1;
        at_future_unref(f);
        break;
    }
    case P_ACCEPT_READ: {
        at_stream_t *conn;
        assert_int_equal(at_stream_accept(p->listener, &conn), 0);
        char buf[16];
        p->reading++;
        rc = (int)at_stream_read(conn, buf, sizeof buf); /* the peer never writes */
        at_stream_close(conn);
        at_stream_close(p->listener);
        break;
    }
    case P_CONNECT_READ: {
        at_stream_t *s;
        assert_int_equal(at_tcp_connect(p->loop, "127.0.0.1", p->port, &s), 0);
        char buf[16];
        p->reading++;
        rc = (int)at_stream_read(s, buf, sizeof buf);
        at_stream_close(s);
        break;
    }
    }
    p->rc[a->which] = rc;
    p->cleaned[a->which]++; /* the code after the await point ran */
    return rc;
}

static void test_close_unwinds_every_await_point(void **state)
{
    capture_begin();
    points_t p = {.loop = loop_new()};
    at_loop_t *loop = p.loop;
    assert_int_equal(sem_init(&p.job_go, 0, 0), 0);
    assert_int_equal(at_event_new(loop, &p.never), 0);
    assert_int_equal(at_lock_new(loop, &p.lock), 0);
    assert_int_equal(at_semaphore_new(loop, 0, &p.sem), 0);
    assert_int_equal(at_queue_new(loop, 1, &p.empty_q), 0);
    assert_int_equal(at_queue_new(loop, 1, &p.full_q), 0);
    assert_int_equal(at_queue_try_put(p.full_q, (void *)1), 0);
    assert_int_equal(at_future_new(loop, &p.fut), 0);
    assert_int_equal(at_tcp_listen(loop, "127.0.0.1", 0, 8, &p.listener), 0);
    p.port = at_stream_port(p.listener);
    assert_true(p.port > 0);
    at_task_opts_t ho = {.name = "lock-holder"};
    assert_int_equal(at_task_spawn(loop, lock_holder, &p, &ho, NULL), 0);
    for (int i = 0; i < P_N; i++) {
        point_args[i] = (point_arg_t){&p, i};
        at_task_opts_t o = {.name = point_names[i]};
        assert_int_equal(at_task_spawn(loop, blocked_at_point, &point_args[i], &o, NULL), 0);
    }
    /* until every task waits (P_N, the holder, the join's child), both ends of the connection
     * in their reads */
    for (int i = 0; i < 20000 && !(p.reading == 2 && at_event_waiters(p.never) == 2); i++)
        at_loop_run(loop, AT_RUN_ONCE);
    assert_int_equal(p.reading, 2);
    assert_int_equal(at_loop_tasks(loop, NULL, NULL), P_N + 2);
    for (int i = 0; i < P_N; i++)
        assert_int_equal(p.cleaned[i], 0);
    close_clean_holding(loop, 1); /* p.fut */
    for (int i = 0; i < P_N; i++) {
        if (p.cleaned[i] != 1 || p.rc[i] != AT_ECANCELED) {
            fail_msg("await point %s: cleaned %d times, returned %d", point_names[i], p.cleaned[i],
                     p.rc[i]);
        }
    }
    assert_int_equal(p.holder_cleaned, 1);
    assert_int_equal(p.job_result_seen, 1);
    at_future_unref(p.fut);
    at_event_free(p.never);
    at_lock_free(p.lock);
    at_semaphore_free(p.sem);
    at_queue_free(p.empty_q);
    at_queue_free(p.full_q);
    sem_destroy(&p.job_go);
    const char *log = capture_text();
    assert_not_contains(log, "destroyed but it is pending");
    assert_not_contains(log, "never retrieved");
    assert_not_contains(log, "unclosed");
    capture_end();
}

/* ---- what is reported of tasks that end while the close unwinds them --------------------- */

typedef struct ending {
    at_event_t *never;
    at_loop_t *loop;
    int spawned_cleanups;
} ending_t;

VISIBLE int fails_when_cancelled(void *arg, void **result);

VISIBLE int fails_when_cancelled(void *arg, void **result)
{
    ending_t *e = arg;
    int rc = at_event_wait(e->never);
    if (rc == AT_ECANCELED)
        return at_task_raise(AT_EIO, "flushing the journal failed");
    return rc;
}

static int cancelled_with_message(void *arg, void **result)
{
    ending_t *e = arg;
    int rc = at_event_wait(e->never);
    return at_task_raise(rc, "stopping: %s", at_strerror(rc)); /* AT_ECANCELED, with a message */
}

static int late_child(void *arg, void **result)
{
    ending_t *e = arg;
    int rc = at_event_wait(e->never);
    e->spawned_cleanups++;
    return rc;
}

static int spawns_in_cleanup(void *arg, void **result)
{
    ending_t *e = arg;
    int rc = at_event_wait(e->never);
    /* Cleanup code that spawns: that task is cancelled in the next round. */
    at_task_opts_t o = {.name = "late-child"};
    assert_int_equal(at_task_spawn(e->loop, late_child, e, &o, NULL), 0);
    return rc;
}

static int never_runs_body(void *arg, void **result)
{
    bool *ran = arg;
    *ran = true;
    return 0;
}

static void test_close_reports_of_unwound_tasks(void **state)
{
    capture_begin();
    at_loop_t *loop = loop_new();
    ending_t e = {.loop = loop};
    assert_int_equal(at_event_new(loop, &e.never), 0);
    at_task_t *held, *failing_held;
    at_task_opts_t o1 = {.name = "journal"};
    assert_int_equal(at_task_spawn(loop, fails_when_cancelled, &e, &o1, &failing_held), 0);
    at_task_opts_t o2 = {.name = "with-message"};
    assert_int_equal(at_task_spawn(loop, cancelled_with_message, &e, &o2, NULL), 0);
    at_task_opts_t o3 = {.name = "spawner"};
    assert_int_equal(at_task_spawn(loop, spawns_in_cleanup, &e, &o3, &held), 0);
    run_until_all_wait(loop, 3);
    bool ran = false;
    at_task_opts_t o4 = {.name = "unstarted"};
    assert_int_equal(at_task_spawn(loop, never_runs_body, &ran, &o4, NULL), 0);
    close_clean_holding(loop, 2); /* held, failing_held */
    assert_false(ran);            /* cancelled before it ever ran: its body never runs */
    assert_int_equal(e.spawned_cleanups, 1);
    /* Cancelled by the close: the holder sees it cancelled, and nothing is reported when it
     * lets go of it. */
    assert_int_equal(at_future_state(at_task_future(held)), AT_FUTURE_CANCELLED);
    assert_int_equal(at_future_state(at_task_future(failing_held)), AT_FUTURE_FAILED);
    at_task_unref(held);
    at_task_unref(failing_held);
    at_event_free(e.never);
    const char *log = capture_text();
    /* The error raised while unwinding: once, in asyncio.run()'s words, with both sites. */
    const char *un = strstr(log, "unhandled exception during at_loop_close() shutdown");
    if (!un)
        print_error("%s\n", log);
    assert_non_null(un);
    assert_null(strstr(un + 1, "unhandled exception during"));
    assert_contains(un, "name='journal'");
    assert_contains(un, "flushing the journal failed");
    const char *raised = strstr(un, "Error raised at");
    assert_non_null(raised);
    assert_non_null(strstr(raised, "fails_when_cancelled"));
    /* Not reported: cancellation (with or without a message), the spawned task, never
     * retrieved (the close's report read the error). */
    assert_not_contains(log, "never retrieved");
    assert_not_contains(log, "destroyed but it is pending");
    assert_not_contains(log, "with-message");
    capture_end();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_close_unwinds_parent_joining_child),
        cmocka_unit_test(test_close_reports_task_that_swallows_cancellation),
        cmocka_unit_test(test_close_unwinds_every_await_point),
        cmocka_unit_test(test_close_reports_of_unwound_tasks),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
