/* test-task.c: tasks on a loop — join, errors, gather, timeouts, cancellation at
 * every kind of await point, the three reports, 100k pending, suspension stacks. */
#include "test-core-util.h"

#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core.h"
#include "export_int.h"
#include "loopmon.h"
#include "stack_pool.h"
#include "tasks.h"

#include <inttypes.h>

#include "test-sanitizers.h"

#define VISIBLE __attribute__((visibility("default"), noinline))

static at_loop_t *loop_new(void)
{
    at_loop_t *loop = NULL;
    assert_int_equal(at_loop_new(&loop, NULL), 0);
    return loop;
}

static void loop_close_clean(at_loop_t *loop)
{
    at_close_report_t rep;
    assert_int_equal(at_loop_close(loop, &rep), 0);
    assert_int_equal(rep.unretrieved_errors, 0);
    assert_int_equal(rep.dropped_callbacks, 0);
    assert_int_equal(rep.live_futures, 0);
}

/* Runs `fn` as a task to completion on a fresh loop; returns its code. */
typedef struct main_ctx {
    at_loop_t *loop;
    int rc;
    bool ran;
} main_ctx_t;

/* ---- join and results ------------------------------------------------------ */

static int child_yield_then_value(void *arg, void **result)
{
    assert_int_equal(at_yield(), 0);
    *result = arg;
    return 0;
}

static int parent_joins(void *arg, void **result)
{
    main_ctx_t *m = arg;
    at_task_t *child;
    at_task_opts_t o = {.name = "child"};
    assert_int_equal(at_task_spawn(m->loop, child_yield_then_value, (void *)0x1234, &o, &child), 0);
    at_task_info_t info;
    at_task_info(child, &info);
    assert_int_equal(info.state, AT_TASK_CREATED);
    void *r = NULL;
    assert_int_equal(at_task_join(child, &r), 0);
    assert_ptr_equal(r, (void *)0x1234);
    at_task_info(child, &info);
    assert_int_equal(info.state, AT_TASK_DONE);
    assert_int_equal(info.steps, 2);
    at_task_t *self = at_task_current();
    at_task_info_t me;
    at_task_info(self, &me);
    assert_int_equal(info.parent_id, me.id);
    assert_string_equal(info.name, "child");
    at_task_unref(child);
    m->ran = true;
    return 0;
}

static void test_spawn_join(void **state)
{
    main_ctx_t m = {.loop = loop_new()};
    at_task_t *t;
    assert_int_equal(at_task_spawn(m.loop, parent_joins, &m, NULL, &t), 0);
    assert_int_equal(at_loop_run(m.loop, AT_RUN_DEFAULT), 0);
    assert_true(m.ran);
    assert_int_equal(at_future_state(at_task_future(t)), AT_FUTURE_DONE);
    assert_int_equal(at_await(at_task_future(t), NULL), AT_EINVALSTATE); /* not in a task */
    assert_int_equal(at_loop_tasks(m.loop, NULL, NULL), 0);
    at_task_unref(t);
    loop_close_clean(m.loop);
}

/* ---- errors through join and gather ---------------------------------------- */

static int fails_einval(void *arg, void **result)
{
    at_yield();
    return at_task_raise(AT_EINVAL, "bad input %d", 42);
}

static int fails_plain(void *arg, void **result)
{
    return AT_ENOENT;
}

static int ok_after_sleep(void *arg, void **result)
{
    at_sleep(1);
    *result = arg;
    return 0;
}

static int joins_failure(void *arg, void **result)
{
    main_ctx_t *m = arg;
    at_task_t *c;
    assert_int_equal(at_task_spawn(m->loop, fails_einval, NULL, NULL, &c), 0);
    assert_int_equal(at_task_join(c, NULL), AT_EINVAL);
    at_error_t *e = at_future_error(at_task_future(c));
    assert_non_null(e);
    assert_string_equal(at_error_message(e), "bad input 42");
    at_task_info_t info;
    at_task_info(c, &info);
    assert_int_equal(info.state, AT_TASK_FAILED);
    at_task_unref(c);
    /* Joining a task that returned a bare code. */
    assert_int_equal(at_task_spawn(m->loop, fails_plain, NULL, NULL, &c), 0);
    assert_int_equal(at_task_join(c, NULL), AT_ENOENT);
    at_task_unref(c);
    assert_int_equal(at_task_join(at_task_current(), NULL), AT_EDEADLK);

    /* gather: all run; the first failure in order is returned, all retrieved */
    at_task_t *ts[3];
    assert_int_equal(at_task_spawn(m->loop, ok_after_sleep, (void *)1, NULL, &ts[0]), 0);
    assert_int_equal(at_task_spawn(m->loop, fails_einval, NULL, NULL, &ts[1]), 0);
    assert_int_equal(at_task_spawn(m->loop, fails_plain, NULL, NULL, &ts[2]), 0);
    at_future_t *fs[3] = {at_task_future(ts[0]), at_task_future(ts[1]), at_task_future(ts[2])};
    at_error_t *first = NULL;
    assert_int_equal(at_gather(fs, 3, &first), AT_EINVAL);
    assert_non_null(first);
    assert_string_equal(at_error_message(first), "bad input 42");
    at_error_unref(first);
    void *v = NULL;
    assert_int_equal(at_future_result(fs[0], &v), 0);
    assert_ptr_equal(v, (void *)1);
    for (int i = 0; i < 3; i++)
        at_task_unref(ts[i]);
    /* all good */
    assert_int_equal(at_task_spawn(m->loop, ok_after_sleep, (void *)2, NULL, &ts[0]), 0);
    fs[0] = at_task_future(ts[0]);
    assert_int_equal(at_gather(fs, 1, NULL), 0);
    at_task_unref(ts[0]);
    m->ran = true;
    return 0;
}

static void test_errors_join_gather(void **state)
{
    capture_begin();
    main_ctx_t m = {.loop = loop_new()};
    assert_int_equal(at_task_spawn(m.loop, joins_failure, &m, NULL, NULL), 0);
    assert_int_equal(at_loop_run(m.loop, AT_RUN_DEFAULT), 0);
    assert_true(m.ran);
    loop_close_clean(m.loop);
    /* every error was retrieved: no report */
    assert_not_contains(capture_text(), "never retrieved");
    capture_end();
}

/* ---- timeouts ------------------------------------------------------------- */

static void complete_later(at_loop_t *loop, void *arg)
{
    at_future_set_result(arg, (void *)7, NULL);
}

static int times_out(void *arg, void **result)
{
    main_ctx_t *m = arg;
    at_future_t *f;
    assert_int_equal(at_future_new(m->loop, &f), 0);
    assert_int_equal(at_await_timeout(f, 5, NULL), AT_ETIMEDOUT);
    at_task_info_t info;
    at_task_info(at_task_current(), &info);
    assert_int_equal(info.wait_kind, AT_WAIT_NONE);
    /* Completed before the deadline: the value, and the timer is gone. */
    assert_int_equal(at_call_later(m->loop, 1, complete_later, f, NULL, NULL), 0);
    void *v = NULL;
    assert_int_equal(at_await_timeout(f, 60000, &v), 0);
    assert_ptr_equal(v, (void *)7);
    /* Already done: immediate. */
    assert_int_equal(at_await_timeout(f, 0, &v), 0);
    at_future_unref(f);
    m->ran = true;
    return 0;
}

static void test_timeouts(void **state)
{
    main_ctx_t m = {.loop = loop_new()};
    assert_int_equal(at_task_spawn(m.loop, times_out, &m, NULL, NULL), 0);
    assert_int_equal(at_loop_run(m.loop, AT_RUN_DEFAULT), 0); /* returns: no 60 s timer left */
    assert_true(m.ran);
    loop_close_clean(m.loop);
}

/* ---- cancellation at every kind of await point ------------------------------- */

enum point {
    P_FUTURE,
    P_SLEEP,
    P_YIELD,
    P_JOIN,
    P_EVENT,
    P_LOCK,
    P_SEM,
    P_QGET,
    P_QPUT,
    P_GATHER,
    P_N
};
static const char *point_names[P_N] = {"future", "sleep", "yield", "join", "event",
                                       "lock",   "sem",   "qget",  "qput", "gather"};

typedef struct cancel_ctx {
    at_loop_t *loop;
    enum point p;
    at_future_t *fut;
    at_event_t *ev;
    at_lock_t *lock;
    at_semaphore_t *sem;
    at_queue_t *q;
    at_task_t *other;
    int seen;        /* what the await returned */
    bool cleaned_up; /* the victim could await again after the cancel */
    at_wait_kind_t kind_seen;
} cancel_ctx_t;

/* The "other" task: sleeps until cancelled, holding the lock if given one. */
static int sleeper(void *arg, void **result)
{
    at_lock_t *lock = arg;
    if (lock)
        assert_int_equal(at_lock_acquire(lock), 0);
    int rc = at_sleep(60000);
    if (lock)
        at_lock_release(lock);
    return rc;
}

static int victim(void *arg, void **result)
{
    cancel_ctx_t *c = arg;
    switch (c->p) {
    case P_FUTURE:
        c->seen = at_await(c->fut, NULL);
        break;
    case P_SLEEP:
        c->seen = at_sleep(60000);
        break;
    case P_YIELD:
        c->seen = at_yield();
        break;
    case P_JOIN:
        c->seen = at_task_join(c->other, NULL);
        break;
    case P_EVENT:
        c->seen = at_event_wait(c->ev);
        break;
    case P_LOCK:
        c->seen = at_lock_acquire(c->lock);
        break;
    case P_SEM:
        c->seen = at_semaphore_acquire(c->sem);
        break;
    case P_QGET: {
        void *item;
        c->seen = at_queue_get(c->q, &item);
        break;
    }
    case P_QPUT:
        c->seen = at_queue_put(c->q, (void *)2);
        break;
    case P_GATHER: {
        at_future_t *fs[2] = {c->fut, at_task_future(c->other)};
        c->seen = at_gather(fs, 2, NULL);
        break;
    }
    default:
        break;
    }
    /* Cleanup may await again: the cancellation was delivered once. */
    c->cleaned_up = at_sleep(0) == 0;
    return c->seen;
}

static int canceller(void *arg, void **result)
{
    cancel_ctx_t *c = arg;
    at_task_t *v;
    assert_int_equal(at_task_spawn(c->loop, victim, c, NULL, &v), 0);
    /* Let the victim reach its await point (yield: be in the same batch). */
    if (c->p != P_YIELD) {
        at_sleep(1);
        at_task_info_t info;
        at_task_info(v, &info);
        assert_int_equal(info.state, AT_TASK_WAITING);
        c->kind_seen = info.wait_kind;
    } else {
        assert_int_equal(at_yield(), 0); /* victim is in its yield now */
    }
    assert_true(at_task_cancel(v, "test"));
    assert_int_equal(at_task_join(v, NULL), AT_ECANCELED);
    at_task_info_t info;
    at_task_info(v, &info);
    assert_int_equal(info.state, AT_TASK_CANCELLED);
    assert_false(at_task_cancel(v, "again"));
    at_task_unref(v);
    return 0;
}

static void test_cancel_every_await_point(void **state)
{
    for (int p = 0; p < P_N; p++) {
        cancel_ctx_t c = {.loop = loop_new(), .p = (enum point)p, .seen = 1};
        assert_int_equal(at_future_new(c.loop, &c.fut), 0);
        assert_int_equal(at_event_new(c.loop, &c.ev), 0);
        assert_int_equal(at_lock_new(c.loop, &c.lock), 0);
        assert_int_equal(at_semaphore_new(c.loop, 0, &c.sem), 0);
        assert_int_equal(at_queue_new(c.loop, 1, &c.q), 0);
        if (p == P_QPUT)
            assert_int_equal(at_queue_try_put(c.q, (void *)1), 0); /* full */
        /* The other task runs first: for P_LOCK it holds the lock. */
        assert_int_equal(
            at_task_spawn(c.loop, sleeper, p == P_LOCK ? c.lock : NULL, NULL, &c.other), 0);
        assert_int_equal(at_task_spawn(c.loop, canceller, &c, NULL, NULL), 0);
        /* run until the canceller is done, then stop the sleeper */
        while (at_loop_tasks(c.loop, NULL, NULL) > 1)
            at_loop_run(c.loop, AT_RUN_ONCE);
        print_message("await point %-7s -> %s\n", point_names[p], at_err_name(c.seen));
        assert_int_equal(c.seen, AT_ECANCELED);
        assert_true(c.cleaned_up);
        if (p != P_YIELD) {
            static const at_wait_kind_t want[P_N] = {
                AT_WAIT_FUTURE, AT_WAIT_TIMER,     AT_WAIT_YIELD, AT_WAIT_TASK,  AT_WAIT_EVENT,
                AT_WAIT_LOCK,   AT_WAIT_SEMAPHORE, AT_WAIT_QUEUE, AT_WAIT_QUEUE, AT_WAIT_FUTURE};
            assert_int_equal(c.kind_seen, want[p]);
        }
        /* The primitives hold no trace of the cancelled waiter. */
        assert_int_equal(at_event_waiters(c.ev), 0);
        at_task_cancel(c.other, NULL);
        assert_int_equal(at_loop_run(c.loop, AT_RUN_DEFAULT), 0);
        if (p == P_GATHER)
            assert_true(at_future_cancelled(c.fut)); /* gather cancels its children */
        if (p == P_QPUT) {
            void *item = NULL;
            assert_int_equal(at_queue_try_get(c.q, &item), 0);
            assert_ptr_equal(item, (void *)1); /* the cancelled put did not go in */
            assert_int_equal(at_queue_size(c.q), 0);
        }
        at_task_unref(c.other);
        at_future_unref(c.fut);
        at_event_free(c.ev);
        assert_false(at_lock_locked(c.lock));
        at_lock_free(c.lock);
        at_semaphore_free(c.sem);
        at_queue_free(c.q);
        loop_close_clean(c.loop);
    }
}

static int never_runs(void *arg, void **result)
{
    *(bool *)arg = true;
    return 0;
}

static void test_cancel_before_start(void **state)
{
    at_loop_t *loop = loop_new();
    bool ran = false;
    at_task_t *t;
    assert_int_equal(at_task_spawn(loop, never_runs, &ran, NULL, &t), 0);
    assert_true(at_task_cancel(t, "early"));
    assert_int_equal(at_loop_run(loop, AT_RUN_DEFAULT), 0);
    assert_false(ran);
    assert_true(at_future_cancelled(at_task_future(t)));
    /* Cancelling through the task's future cancels the task. */
    at_task_t *t2;
    assert_int_equal(at_task_spawn(loop, sleeper, NULL, NULL, &t2), 0);
    at_loop_run(loop, AT_RUN_NOWAIT);
    assert_true(at_future_cancel(at_task_future(t2), "via future"));
    assert_int_equal(at_loop_run(loop, AT_RUN_DEFAULT), 0);
    at_task_info_t info;
    at_task_info(t2, &info);
    assert_true(info.state == AT_TASK_CANCELLED);
    at_task_unref(t);
    at_task_unref(t2);
    loop_close_clean(loop);
}

/* ---- sync primitives in action ------------------------------------------------ */

typedef struct pc_ctx {
    at_queue_t *q;
    at_lock_t *lock;
    at_semaphore_t *sem;
    int inside, max_inside, sum, in_lock;
} pc_ctx_t;

static int producer(void *arg, void **result)
{
    pc_ctx_t *c = arg;
    for (intptr_t i = 1; i <= 100; i++)
        assert_int_equal(at_queue_put(c->q, (void *)i), 0);
    return at_queue_put(c->q, NULL);
}

static int consumer(void *arg, void **result)
{
    pc_ctx_t *c = arg;
    for (;;) {
        void *item;
        assert_int_equal(at_queue_get(c->q, &item), 0);
        if (!item)
            return 0;
        c->sum += (int)(intptr_t)item;
    }
}

static int limited(void *arg, void **result)
{
    pc_ctx_t *c = arg;
    assert_int_equal(at_semaphore_acquire(c->sem), 0);
    c->inside++;
    if (c->inside > c->max_inside)
        c->max_inside = c->inside;
    at_yield();
    c->inside--;
    at_semaphore_release(c->sem);
    assert_int_equal(at_lock_acquire(c->lock), 0);
    assert_int_equal(c->in_lock, 0);
    c->in_lock++;
    at_sleep(0);
    c->in_lock--;
    at_lock_release(c->lock);
    return 0;
}

static void test_sync_primitives(void **state)
{
    at_loop_t *loop = loop_new();
    pc_ctx_t c = {0};
    assert_int_equal(at_queue_new(loop, 3, &c.q), 0);
    assert_int_equal(at_lock_new(loop, &c.lock), 0);
    assert_int_equal(at_semaphore_new(loop, 2, &c.sem), 0);
    assert_int_equal(at_task_spawn(loop, consumer, &c, NULL, NULL), 0);
    assert_int_equal(at_task_spawn(loop, producer, &c, NULL, NULL), 0);
    for (int i = 0; i < 6; i++)
        assert_int_equal(at_task_spawn(loop, limited, &c, NULL, NULL), 0);
    assert_int_equal(at_loop_run(loop, AT_RUN_DEFAULT), 0);
    assert_int_equal(c.sum, 5050);
    assert_int_equal(c.max_inside, 2);
    assert_int_equal(at_semaphore_value(c.sem), 2);
    assert_false(at_lock_locked(c.lock));
    at_queue_free(c.q);
    at_lock_free(c.lock);
    at_semaphore_free(c.sem);
    loop_close_clean(loop);
}

/* ---- the three reports ------------------------------------------------------------ */

VISIBLE int raising_function(void *arg, void **result);
VISIBLE void spawning_function(at_loop_t *loop);
VISIBLE void coro_making_function(at_loop_t *loop, at_coro_t **out);
static void test_report_never_retrieved_at_close(void **state)
{
    capture_begin();
    at_loop_t *loop = loop_new();
    at_task_t *t;
    at_task_opts_t o = {.name = "held-bug"};
    assert_int_equal(at_task_spawn(loop, raising_function, NULL, &o, &t), 0);
    assert_int_equal(at_loop_run(loop, AT_RUN_DEFAULT), 0);
    /* Held, failed, unread: nothing yet (someone may still read it). */
    assert_not_contains(capture_text(), "never retrieved");
    at_close_report_t rep;
    assert_int_equal(at_loop_close(loop, &rep), 0);
    assert_int_equal(rep.unretrieved_errors, 0); /* reported as a task, not as a future */
    at_task_unref(t);                            /* and only once */
    const char *log = capture_text();
    const char *first = strstr(log, "Task exception was never retrieved");
    assert_non_null(first);
    assert_null(strstr(first + 1, "Task exception was never retrieved"));
    assert_contains(log, "name='held-bug'");
    assert_not_contains(log, "Future exception was never retrieved");
    capture_end();
}

VISIBLE int waits_forever(void *arg, void **result);
VISIBLE void pending_spawner(at_loop_t *loop, at_event_t *ev);

VISIBLE int raising_function(void *arg, void **result)
{
    int rc = at_task_raise(AT_EPROTO, "not consumed");
    return rc;
}

VISIBLE void spawning_function(at_loop_t *loop)
{
    at_task_opts_t o = {.name = "bug"};
    assert_int_equal(at_task_spawn(loop, raising_function, NULL, &o, NULL), 0);
}

static void test_report_never_retrieved(void **state)
{
    at_set_debug(true);
    capture_begin();
    at_loop_t *loop = loop_new();
    spawning_function(loop);
    assert_int_equal(at_loop_run(loop, AT_RUN_DEFAULT), 0);
    at__event_t ev;
    bool found = false;
    while (at__mon_take(loop->mon, &ev) == 1) {
        if (strcmp(ev.code, "task_never_retrieved") == 0) {
            found = true;
            assert_string_equal(ev.task_name, "bug");
            assert_true(ev.nstack >= 1 && ev.nstack2 >= 1);
            /* the error's own code and domain, for the wire's code and domain (issue 14) */
            assert_int_equal(ev.err_code, AT_EPROTO);
            assert_string_equal(ev.err_domain, AT_DOMAIN);
        }
    }
    assert_true(found);
    loop_close_clean(loop); /* reported once: not again as a Future at close */
    const char *log = capture_text();
    assert_contains(log, "Task exception was never retrieved");
    assert_contains(log, "name='bug'");
    assert_contains(log, "EPROTO");
    assert_contains(log, "not consumed");
    const char *created = strstr(log, "Task created at");
    const char *raised = strstr(log, "Error raised at");
    assert_non_null(created);
    assert_non_null(raised);
    assert_true(created < raised);
    /* the creation site names the spawner, the raise site the raiser */
    const char *sp = strstr(created, "spawning_function");
    assert_true(sp != NULL && sp < raised);
    if (!strstr(raised, "raising_function"))
        print_error("%s\n", log);
    assert_non_null(strstr(raised, "raising_function"));
    assert_not_contains(log, "Future exception was never retrieved");
    capture_end();
    at_set_debug(false);
}

VISIBLE int waits_forever(void *arg, void **result)
{
    int rc;
    do { /* swallows cancellation, the loop close's too: it is destroyed while pending */
        rc = at_event_wait(arg);
    } while (rc == AT_ECANCELED);
    __asm__ volatile("" ::: "memory"); /* not a tail call: keep this frame */
    return rc;
}

VISIBLE void pending_spawner(at_loop_t *loop, at_event_t *ev)
{
    at_task_opts_t o = {.name = "stuck"};
    assert_int_equal(at_task_spawn(loop, waits_forever, ev, &o, NULL), 0);
}

VISIBLE void coro_making_function(at_loop_t *loop, at_coro_t **out)
{
    at_task_opts_t o = {.name = "forgotten"};
    assert_int_equal(at_coro_new(loop, never_runs, NULL, &o, out), 0);
}

static void show_stack(at_task_t *t, void *arg)
{
    void *pcs[16];
    size_t n = at_task_suspension_stack(t, pcs, 16);
    print_message("suspension stack of pending task: %zu frames\n", n);
}

static void test_report_destroyed_pending_and_never_awaited(void **state)
{
    at_set_debug(true);
    capture_begin();
    at_loop_t *loop = loop_new();
    at_event_t *ev;
    assert_int_equal(at_event_new(loop, &ev), 0);
    pending_spawner(loop, ev);
    at_coro_t *dropped, *left;
    coro_making_function(loop, &dropped);
    coro_making_function(loop, &left);
    at_coro_drop(dropped);
    assert_int_equal(at_loop_run(loop, AT_RUN_DEFAULT), 0); /* the task waits forever */
    assert_int_equal(at_loop_tasks(loop, NULL, NULL), 1);
    at_loop_tasks(loop, show_stack, NULL);
    at_close_report_t rep;
    assert_int_equal(at_loop_close(loop, &rep), 0);
    assert_int_equal(rep.live_futures, 0);
    at_event_free(ev);
    const char *log = capture_text();
    assert_contains(log, "Task was destroyed but it is pending!");
    assert_contains(log, "name='stuck'");
    const char *created = strstr(log, "Task created at");
    assert_non_null(created);
    assert_non_null(strstr(created, "pending_spawner"));
    const char *susp = strstr(log, "Task suspended at");
    if (!susp)
        print_error("%s\n", log);
    assert_non_null(susp);
    assert_non_null(strstr(susp, "waits_forever"));
    /* never awaited: once when dropped, once at close */
    const char *na = strstr(log, "coroutine 'forgotten' was never awaited");
    assert_non_null(na);
    assert_non_null(strstr(na, "coro_making_function"));
    assert_non_null(strstr(na + 1, "coroutine 'forgotten' was never awaited"));
    assert_contains(log, "still unused when the loop closed");
    capture_end();
    at_set_debug(false);
}

static int coro_user(void *arg, void **result)
{
    at_loop_t *loop = arg;
    at_coro_t *c;
    assert_int_equal(at_coro_new(loop, child_yield_then_value, (void *)5, NULL, &c), 0);
    void *r = NULL;
    assert_int_equal(at_coro_await(c, &r), 0);
    assert_ptr_equal(r, (void *)5);
    assert_int_equal(at_coro_new(loop, child_yield_then_value, (void *)6, NULL, &c), 0);
    at_task_t *t;
    assert_int_equal(at_coro_spawn(c, &t), 0);
    assert_int_equal(at_task_join(t, &r), 0);
    assert_ptr_equal(r, (void *)6);
    at_task_unref(t);
    return 0;
}

static void test_deferred_coro_used(void **state)
{
    capture_begin();
    at_loop_t *loop = loop_new();
    assert_int_equal(at_task_spawn(loop, coro_user, loop, NULL, NULL), 0);
    assert_int_equal(at_loop_run(loop, AT_RUN_DEFAULT), 0);
    loop_close_clean(loop);
    assert_not_contains(capture_text(), "never awaited");
    capture_end();
}

/* ---- many pending tasks, suspension stacks, slow steps ------------------------------- */

static int wait_event(void *arg, void **result)
{
    return at_event_wait(arg);
}

static void test_100k_pending_tasks(void **state)
{
    size_t n = RUNNING_ON_VALGRIND || UNDER_TSAN ? 2000 : 100000;
    at_loop_t *loop = loop_new();
    at_event_t *ev;
    assert_int_equal(at_event_new(loop, &ev), 0);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(at_task_spawn(loop, wait_event, ev, NULL, NULL), 0);
    at_loop_run(loop, AT_RUN_NOWAIT);
    assert_int_equal(at_event_waiters(ev), n);
    assert_int_equal(at_loop_tasks(loop, NULL, NULL), n);
    at_event_set(ev);
    assert_int_equal(at_loop_run(loop, AT_RUN_DEFAULT), 0);
    assert_int_equal(at_loop_tasks(loop, NULL, NULL), 0);
    at_event_free(ev);
    loop_close_clean(loop);
}

VISIBLE void susp_level3(at_event_t *ev);
VISIBLE void susp_level2(at_event_t *ev);
VISIBLE void susp_level1(at_event_t *ev);

VISIBLE void susp_level3(at_event_t *ev)
{
    assert_int_equal(at_event_wait(ev), 0);
    __asm__ volatile("" ::: "memory");
}

VISIBLE void susp_level2(at_event_t *ev)
{
    susp_level3(ev);
    __asm__ volatile("" ::: "memory");
}

VISIBLE void susp_level1(at_event_t *ev)
{
    susp_level2(ev);
    __asm__ volatile("" ::: "memory");
}

static int three_deep(void *arg, void **result)
{
    susp_level1(arg);
    return 0;
}

static void test_suspension_stack(void **state)
{
    at_loop_t *loop = loop_new();
    at_event_t *ev;
    assert_int_equal(at_event_new(loop, &ev), 0);
    at_task_t *t;
    assert_int_equal(at_task_spawn(loop, three_deep, ev, NULL, &t), 0);
    at_loop_run(loop, AT_RUN_NOWAIT);
    at_task_info_t info;
    at_task_info(t, &info);
    assert_int_equal(info.state, AT_TASK_WAITING);
    assert_int_equal(info.wait_kind, AT_WAIT_EVENT);
    assert_true(info.wait_id != 0);
    void *pcs[AT_STACK_MAX];
    size_t n = at_task_suspension_stack(t, pcs, AT_STACK_MAX);
    assert_true(n >= 4);
    at_frame_t fr[AT_STACK_MAX];
    at_frames_symbolise(pcs, n, fr);
    for (size_t i = 0; i < n; i++)
        print_message("  #%zu %s (%s:%u)\n", i, fr[i].func, fr[i].file, fr[i].line);
    /* innermost first, the runtime's own frames left out */
    assert_string_equal(fr[0].func, "susp_level3");
    assert_string_equal(fr[1].func, "susp_level2");
    assert_string_equal(fr[2].func, "susp_level1");
    assert_string_equal(fr[3].func, "three_deep");
    assert_true(fr[0].line > 0);
    at_event_set(ev);
    assert_int_equal(at_loop_run(loop, AT_RUN_DEFAULT), 0);
    assert_int_equal(at_task_suspension_stack(t, pcs, AT_STACK_MAX), 0);
    at_task_unref(t);
    at_event_free(ev);
    loop_close_clean(loop);
}

/* A task joining a child that has not started runs the child's first step from its own stack
 * (join_inline): meanwhile its coroutine is not suspended, yet its stack shows the join. */
typedef struct join_point {
    at_task_t *parent;
    size_t n;
    at_frame_t fr[AT_STACK_MAX];
    int parent_state, parent_wait_kind;
} join_point_t;

static int child_looks_at_parent(void *arg, void **result)
{
    join_point_t *j = arg;
    at_task_info_t info;
    at_task_info(j->parent, &info);
    j->parent_state = info.state;
    j->parent_wait_kind = info.wait_kind;
    void *pcs[AT_STACK_MAX];
    j->n = at_task_suspension_stack(j->parent, pcs, AT_STACK_MAX);
    at_frames_symbolise(pcs, j->n, j->fr);
    return 0;
}

VISIBLE int join_point_level2(join_point_t *j);
VISIBLE int join_point_level1(join_point_t *j);

VISIBLE int join_point_level2(join_point_t *j)
{
    at_task_t *child;
    assert_int_equal(at_task_spawn(at_task_loop(j->parent), child_looks_at_parent, j, NULL, &child),
                     0);
    int rc = at_task_join(child, NULL);
    at_task_unref(child);
    __asm__ volatile("" ::: "memory");
    return rc;
}

VISIBLE int join_point_level1(join_point_t *j)
{
    int rc = join_point_level2(j);
    __asm__ volatile("" ::: "memory");
    return rc;
}

static int joins_at_depth(void *arg, void **result)
{
    join_point_t *j = arg;
    j->parent = at_task_current();
    int rc = join_point_level1(j);
    __asm__ volatile("" ::: "memory"); /* not a tail call: keep this frame */
    return rc;
}

static void test_suspension_stack_of_inline_joiner(void **state)
{
    at_loop_t *loop = loop_new();
    join_point_t j = {0};
    at_task_t *t;
    assert_int_equal(at_task_spawn(loop, joins_at_depth, &j, NULL, &t), 0);
    assert_int_equal(at_loop_run(loop, AT_RUN_DEFAULT), 0);
    assert_int_equal(at_future_result(at_task_future(t), NULL), 0);
    assert_int_equal(j.parent_state, AT_TASK_WAITING);
    assert_int_equal(j.parent_wait_kind, AT_WAIT_TASK);
    for (size_t i = 0; i < j.n; i++)
        print_message("  #%zu %s (%s:%u)\n", i, j.fr[i].func, j.fr[i].file, j.fr[i].line);
    /* from the application's frame that called at_task_join outwards */
    assert_true(j.n >= 3);
    assert_string_equal(j.fr[0].func, "join_point_level2");
    assert_string_equal(j.fr[1].func, "join_point_level1");
    assert_string_equal(j.fr[2].func, "joins_at_depth");
    at_task_unref(t);
    loop_close_clean(loop);
}

static int spins(void *arg, void **result)
{
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    do {
        clock_gettime(CLOCK_MONOTONIC, &b);
    } while ((b.tv_sec - a.tv_sec) * 1000000000L + (b.tv_nsec - a.tv_nsec) < 30000000L);
    return 0;
}

static void test_slow_step_names_task(void **state)
{
    capture_begin();
    uint64_t old = at_get_slow_threshold_ms();
    at_set_slow_threshold_ms(10);
    at_loop_t *loop = loop_new();
    at_task_opts_t o = {.name = "spinner"};
    assert_int_equal(at_task_spawn(loop, spins, NULL, &o, NULL), 0);
    assert_int_equal(at_loop_run(loop, AT_RUN_DEFAULT), 0);
    at__event_t ev;
    bool found = false;
    while (at__mon_take(loop->mon, &ev) == 1) {
        if (ev.kind == AT__EV_SLOW) {
            found = true;
            assert_int_equal(ev.cb_kind, AT__CB_TASK_STEP);
            assert_string_equal(ev.task_name, "spinner");
            assert_true(ev.task_id != 0);
        }
    }
    assert_true(found);
    at_set_slow_threshold_ms(old);
    loop_close_clean(loop);
    assert_contains(capture_text(), "spins");
    capture_end();
}

/* ---- busy time: the steps' time, not the waits' ------------------------------- */

static void spin_ms(long ms)
{
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    do {
        clock_gettime(CLOCK_MONOTONIC, &b);
    } while ((b.tv_sec - a.tv_sec) * 1000000000L + (b.tv_nsec - a.tv_nsec) < ms * 1000000L);
}

static int busy_worker(void *arg, void **result)
{
    spin_ms(20);
    assert_int_equal(at_yield(), 0);
    spin_ms(10);
    return at_sleep(300);
}

static int busy_observer(void *arg, void **result)
{
    at_task_t *w = arg;
    assert_int_equal(at_sleep(200), 0); /* the worker sleeps meanwhile */
    at_task_info_t info;
    at_task_info(w, &info);
    assert_int_equal(info.steps, 2);
    assert_int_equal(info.state, AT_TASK_WAITING);
    assert_true(info.busy_ns >= 30u * 1000 * 1000); /* both steps */
    assert_true(info.busy_ns < 150u * 1000 * 1000); /* not the sleep */
    assert_int_equal(at_task_join(w, NULL), 0);
    at_task_info(w, &info);
    assert_true(info.busy_ns >= 30u * 1000 * 1000);
    return 0;
}

static void test_busy_time(void **state)
{
    at_loop_t *loop = loop_new();
    at_task_t *w, *o;
    assert_int_equal(at_task_spawn(loop, busy_worker, NULL, NULL, &w), 0);
    assert_int_equal(at_task_spawn(loop, busy_observer, w, NULL, &o), 0);
    assert_int_equal(at_loop_run(loop, AT_RUN_DEFAULT), 0);
    assert_int_equal(at_future_result(at_task_future(o), NULL), 0);
    at_task_unref(o);
    at_task_unref(w);
    loop_close_clean(loop);
}

/* ---- a yield with nothing else ready (continued in place) ---------------------- */

static int spin_yield_spin(void *arg, void **result)
{
    spin_ms(15);
    assert_int_equal(at_yield(), 0); /* nothing else is ready */
    at_task_info_t info;
    at_task_info(at_task_current(), &info);
    assert_int_equal(info.steps, 2);
    assert_int_equal(info.state, AT_TASK_RUNNING);
    assert_true(info.busy_ns >= 15u * 1000 * 1000); /* the first step is billed already */
    spin_ms(15);
    return 0;
}

/* Still two steps: two timed callbacks, each slow on its own, each naming the task, the
 * task billed for both. */
static void test_yield_alone_is_a_step(void **state)
{
    uint64_t old = at_get_slow_threshold_ms();
    at_set_slow_threshold_ms(10);
    capture_begin();
    at_loop_t *loop = loop_new();
    at_task_opts_t o = {.name = "lone-yielder"};
    at_task_t *t;
    assert_int_equal(at_task_spawn(loop, spin_yield_spin, NULL, &o, &t), 0);
    assert_int_equal(at_loop_run(loop, AT_RUN_DEFAULT), 0);
    at_task_info_t info;
    at_task_info(t, &info);
    assert_int_equal(info.steps, 2);
    assert_true(info.busy_ns >= 30u * 1000 * 1000);
    at__event_t ev;
    int slow = 0;
    while (at__mon_take(loop->mon, &ev) == 1) {
        if (ev.kind == AT__EV_SLOW) {
            slow++;
            assert_int_equal(ev.cb_kind, AT__CB_TASK_STEP);
            assert_string_equal(ev.task_name, "lone-yielder");
            assert_true(ev.task_id != 0);
        }
    }
    assert_int_equal(slow, 2);
    at_task_unref(t);
    loop_close_clean(loop);
    capture_end();
    at_set_slow_threshold_ms(old);
}

typedef struct yield_fair {
    int yields;
    int at_timer; /* yields done when the timer ran (-1: not yet) */
} yield_fair_t;

static void fair_timer(at_loop_t *loop, void *arg)
{
    yield_fair_t *f = arg;
    f->at_timer = f->yields;
}

#define YIELD_CAP 20000000 /* seconds of yields: far beyond the timer's 1 ms */

static int yields_many(void *arg, void **result)
{
    yield_fair_t *f = arg;
    /* Armed once the task runs, so that it can only run between two of its yields. */
    assert_int_equal(
        at_call_later(at_task_loop(at_task_current()), 1, fair_timer, f, "fair timer", NULL), 0);
    for (f->yields = 0; f->at_timer < 0 && f->yields < YIELD_CAP; f->yields++)
        assert_int_equal(at_yield(), 0);
    return 0;
}

/* A task that only yields still lets the loop poll and run due timers every ready batch
 * (AT__READY_BUDGET callbacks): its in-place steps take the batch's budget. */
static void test_yield_alone_keeps_batches_fair(void **state)
{
    at_loop_t *loop = loop_new();
    yield_fair_t f = {.at_timer = -1};
    assert_int_equal(at_task_spawn(loop, yields_many, &f, NULL, NULL), 0);
    assert_int_equal(at_loop_run(loop, AT_RUN_DEFAULT), 0);
    assert_true(f.at_timer > 0);       /* it ran while the task was yielding ... */
    assert_true(f.yields < YIELD_CAP); /* ... which stopped then */
    loop_close_clean(loop);
}

/* ---- joining a task that has not started (its first step run from the joiner) ------- */

typedef struct join_ctx {
    at_loop_t *loop;
    at_task_t *parent;
    int mode; /* 0: child sleeps (the join waits); 1: child cancels its parent and ends;
                 2: child cancels its parent and sleeps */
    int parent_state, parent_wait_kind;
    uint64_t parent_wait_id, child_id;
    bool done;
} join_ctx_t;

static int join_child(void *arg, void **result)
{
    join_ctx_t *c = arg;
    at_task_info_t info;
    at_task_info(c->parent, &info); /* the parent waits on us meanwhile */
    c->parent_state = info.state;
    c->parent_wait_kind = info.wait_kind;
    c->parent_wait_id = info.wait_id;
    at_task_info(at_task_current(), &info);
    c->child_id = info.id;
    if (c->mode == 0) {
        assert_int_equal(at_sleep(1), 0);
    } else {
        assert_true(at_task_cancel(c->parent, "from the child"));
        assert_int_equal(c->mode == 1 ? at_yield() : at_sleep(1), 0);
    }
    *result = (void *)0x77;
    return 0;
}

static int join_parent(void *arg, void **result)
{
    join_ctx_t *c = arg;
    c->parent = at_task_current();
    at_task_t *child;
    assert_int_equal(at_task_spawn(c->loop, join_child, c, NULL, &child), 0);
    void *r = NULL;
    if (c->mode == 0) {
        assert_int_equal(at_task_join(child, &r), 0);
        assert_ptr_equal(r, (void *)0x77);
    } else {
        assert_int_equal(at_task_join(child, &r), AT_ECANCELED);
        assert_null(r);
        at_task_info_t me;
        at_task_info(at_task_current(), &me);
        assert_int_equal(me.steps, 2); /* the join's wake-up is a step of its own */
        assert_int_equal(me.state, AT_TASK_RUNNING);
        assert_int_equal(at_task_join(child, &r), 0); /* cleanup may await again */
        assert_ptr_equal(r, (void *)0x77);
    }
    at_task_info_t info;
    at_task_info(child, &info);
    assert_int_equal(info.state, AT_TASK_DONE);
    assert_int_equal(info.steps, 2);
    at_task_unref(child);
    c->done = true;
    return 0;
}

static void test_join_unstarted(void **state)
{
    for (int mode = 0; mode < 3; mode++) {
        join_ctx_t c = {.loop = loop_new(), .mode = mode};
        at_task_t *p;
        assert_int_equal(at_task_spawn(c.loop, join_parent, &c, NULL, &p), 0);
        assert_int_equal(at_loop_run(c.loop, AT_RUN_DEFAULT), 0);
        assert_true(c.done);
        assert_int_equal(at_future_result(at_task_future(p), NULL), 0);
        assert_int_equal(c.parent_state, AT_TASK_WAITING);
        assert_int_equal(c.parent_wait_kind, AT_WAIT_TASK);
        assert_true(c.child_id != 0);
        assert_int_equal(c.parent_wait_id, c.child_id);
        at_task_unref(p);
        loop_close_clean(c.loop);
    }
}

/* ---- recycled task objects and stacks --------------------------------------- */

#define RECYCLE_ROUNDS 2100 /* past a block of 1024 ids and a digit carry in the default names */

static int returns_arg(void *arg, void **result)
{
    assert_int_equal(at_yield(), 0);
    *result = arg;
    return 0;
}

typedef struct recycle_ctx {
    at_loop_t *loop;
    bool ran;
} recycle_ctx_t;

/* One call site for every spawn of the test (its creation site). */
static __attribute__((noinline)) int spawn_one(at_loop_t *loop, uintptr_t i,
                                               const at_task_opts_t *o, at_task_t **out)
{
    int rc = at_task_spawn(loop, returns_arg, (void *)i, o, out);
    __asm__ volatile("" ::: "memory"); /* not a tail call: the return address is in here */
    return rc;
}

/* Spawns and joins one task after another (each reuses the last one's task object and stack
 * where the runtime keeps them): every one starts fresh — its own id and default name, state,
 * counters and creation site — and ends with its own result. */
static int spawns_in_turn(void *arg, void **result)
{
    recycle_ctx_t *c = arg;
    at_task_info_t me;
    at_task_info(at_task_current(), &me);
    uint64_t last_id = 0;
    void *site = NULL;
    for (uintptr_t i = 1; i <= RECYCLE_ROUNDS; i++) {
        at_task_t *t;
        at_task_opts_t named = {.name = "named-one"};
        assert_int_equal(spawn_one(c->loop, i, i % 7 == 0 ? &named : NULL, &t), 0);
        at_task_info_t info;
        at_task_info(t, &info);
        assert_true(info.id > last_id);
        last_id = info.id;
        char want[48];
        if (i % 7 == 0)
            snprintf(want, sizeof want, "named-one");
        else
            snprintf(want, sizeof want, "task-%" PRIu64, info.id);
        assert_string_equal(info.name, want);
        assert_int_equal(info.state, AT_TASK_CREATED);
        assert_int_equal(info.steps, 0);
        assert_int_equal(info.busy_ns, 0);
        assert_int_equal(info.wait_kind, AT_WAIT_NONE);
        assert_int_equal(info.parent_id, me.id);
        assert_true(info.ncreation >= 1);
        if (!site)
            site = info.creation[0];
        assert_ptr_equal(info.creation[0], site); /* this loop, not a former owner's spawner */
        void *r = NULL;
        assert_int_equal(at_task_join(t, &r), 0);
        assert_ptr_equal(r, (void *)i);
        at_task_info(t, &info);
        assert_int_equal(info.state, AT_TASK_DONE);
        assert_int_equal(info.steps, 2);
        at_task_unref(t);
    }
    c->ran = true;
    return 0;
}

static void test_spawn_recycled_fresh(void **state)
{
    recycle_ctx_t c = {.loop = loop_new()};
    at__stack_pool_stats_t before, after;
    at_task_t *t;
    assert_int_equal(at_task_spawn(c.loop, spawns_in_turn, &c, NULL, &t), 0);
    at__stack_pool_stats(&before);
    assert_int_equal(at_loop_run(c.loop, AT_RUN_DEFAULT), 0);
    at__stack_pool_stats(&after);
    assert_true(c.ran);
    assert_int_equal(at_future_result(at_task_future(t), NULL), 0);
    /* one stack for the spawner, the others taken back from the pool: a handful carved */
    assert_true(after.slots_carved - before.slots_carved < 8);
    at_task_unref(t);
    loop_close_clean(c.loop);
}

/* ---- the task provider's posts: a task spawned and joined at once leaves none ---------------- */

typedef struct posts_ctx {
    at_loop_t *loop;
    at_event_t *ev;
    uint64_t at_once, waiter, plain, driver;
} posts_ctx_t;

static int returns_at_once(void *arg, void **result)
{
    return 0;
}

static int drives_posts(void *arg, void **result)
{
    posts_ctx_t *c = arg;
    at_task_info_t info;
    at_task_info(at_task_current(), &info);
    c->driver = info.id;
    at__export_attach_set_consumer(1); /* as a running exporter: the provider posts */
    at_task_t *t;
    assert_int_equal(at_task_spawn(c->loop, returns_arg, NULL, NULL, &t), 0);
    at_task_info(t, &info);
    c->at_once = info.id;
    assert_int_equal(at_task_join(t, NULL), 0); /* its whole life in this step */
    at_task_unref(t);
    assert_int_equal(at_task_spawn(c->loop, wait_event, c->ev, NULL, &t), 0);
    at_task_info(t, &info);
    c->waiter = info.id;
    at_task_unref(t);
    assert_int_equal(at_task_spawn(c->loop, returns_at_once, NULL, NULL, &t), 0);
    at_task_info(t, &info);
    c->plain = info.id;
    at_task_unref(t);
    assert_int_equal(at_sleep(1), 0);
    at_event_set(c->ev);
    return 0;
}

static void test_export_posts_deferred(void **state)
{
    posts_ctx_t c = {.loop = loop_new()};
    assert_int_equal(at_event_new(c.loop, &c.ev), 0);
    assert_int_equal(at_task_spawn(c.loop, drives_posts, &c, NULL, NULL), 0);
    assert_int_equal(at_loop_run(c.loop, AT_RUN_DEFAULT), 0);
    at_export_attach_t *a = at__export_attach_first();
    assert_non_null(a);
    int n[4][4] = {{0}}; /* [driver, at_once, waiter, plain][kind] */
    int order_ok = 1, waiter_added = 0;
    at_export_task_ev_t ev;
    uint64_t pos;
    while (at__export_task_take(a, &ev, &pos) == 1) {
        uint64_t id = ev.row.id;
        int who = id == c.driver    ? 0
                  : id == c.at_once ? 1
                  : id == c.waiter  ? 2
                  : id == c.plain   ? 3
                                    : -1;
        assert_true(who >= 0);
        assert_true(ev.kind >= 1 && ev.kind <= 3);
        n[who][ev.kind]++;
        if (who == 2 && ev.kind == AT_EXPORT_TASK_ADDED) {
            waiter_added = 1;
            assert_int_equal(ev.row.state, AT_EXPORT_TASK_READY); /* shown before it ran */
        }
        if (who == 2 && ev.kind != AT_EXPORT_TASK_ADDED && !waiter_added)
            order_ok = 0;
    }
    at__export_attach_set_consumer(0);
    /* spawned and joined at once: never shown, nothing posted */
    assert_int_equal(n[1][AT_EXPORT_TASK_ADDED] + n[1][AT_EXPORT_TASK_CHANGED] +
                         n[1][AT_EXPORT_TASK_REMOVED],
                     0);
    /* shown when the next spawn came, then its wait, then its end */
    assert_true(order_ok);
    assert_int_equal(n[2][AT_EXPORT_TASK_ADDED], 1);
    assert_true(n[2][AT_EXPORT_TASK_CHANGED] >= 1);
    assert_int_equal(n[2][AT_EXPORT_TASK_REMOVED], 1);
    /* shown when the driver began its sleep (before it ran), then gone */
    assert_int_equal(n[3][AT_EXPORT_TASK_ADDED], 1);
    assert_int_equal(n[3][AT_EXPORT_TASK_REMOVED], 1);
    /* spawned before anyone consumed (a new exporter would resync): its changes and its end */
    assert_int_equal(n[0][AT_EXPORT_TASK_ADDED], 0);
    assert_true(n[0][AT_EXPORT_TASK_CHANGED] >= 1);
    assert_int_equal(n[0][AT_EXPORT_TASK_REMOVED], 1);
    at_event_free(c.ev);
    loop_close_clean(c.loop);
}

/* ---- stack overflow in a task (death test in a forked child) ---------------- */

static volatile int overflow_limit = 1 << 30;

__attribute__((noinline)) static int recurse(int d)
{
    volatile char pad[512];
    pad[0] = (char)d;
    int r = d < overflow_limit ? recurse(d + 1) : 0;
    return r + pad[0];
}

static int overflows(void *arg, void **result)
{
    return recurse(0);
}

static int goes_deep(void *arg, void **result)
{
    overflow_limit = 64; /* 32 KiB of frames: the pool trims this stack when it comes back */
    int r = recurse(0);
    overflow_limit = 1 << 30;
    return r == -1 ? AT_EINVAL : 0;
}

static int shallow(void *arg, void **result)
{
    return at_yield();
}

/* Runs child() in a forked process with its stderr captured (default SIGSEGV/SIGABRT
 * dispositions) and asserts that it died of SIGABRT after writing `expect` to stderr. */
static void assert_child_aborts_with(void (*child)(void), const char *expect)
{
    int pipefd[2];
    assert_int_equal(pipe(pipefd), 0);
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(pipefd[0]);
        dup2(pipefd[1], STDERR_FILENO);
        signal(SIGSEGV, SIG_DFL);
        signal(SIGABRT, SIG_DFL);
        child();
        _exit(0);
    }
    close(pipefd[1]);
    char out[2048];
    size_t n = 0;
    ssize_t r;
    while ((r = read(pipefd[0], out + n, sizeof out - 1 - n)) > 0)
        n += (size_t)r;
    out[n] = '\0';
    close(pipefd[0]);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_contains(out, expect);
    assert_true(WIFSIGNALED(status));
    assert_int_equal(WTERMSIG(status), SIGABRT);
}

static void overflow_recycled_child(void)
{
    at_loop_t *loop = loop_new();
    at_task_opts_t o = {.stack_size = 64 * 1024};
    at_task_spawn(loop, goes_deep, NULL, &o, NULL);
    at_loop_run(loop, AT_RUN_DEFAULT);
    at_task_spawn(loop, shallow, NULL, &o, NULL);
    at_loop_run(loop, AT_RUN_DEFAULT);
    at__stack_pool_stats_t before, after;
    at__stack_pool_stats(&before);
    o.name = "recycled-runaway";
    at_task_spawn(loop, overflows, NULL, &o, NULL);
    at__stack_pool_stats(&after);
    if (after.slots_carved != before.slots_carved || after.slots_free + 1 != before.slots_free) {
        fprintf(stderr, "not a recycled stack\n");
        _exit(1);
    }
    at_loop_run(loop, AT_RUN_DEFAULT);
}

/* A stack that comes back from the pool (after a deep task and a shallow one used it) is still
 * guarded: the task that overflows it is stopped and named. */
static void test_stack_overflow_recycled_stack(void **state)
{
    if (RUNNING_ON_VALGRIND)
        skip();
    assert_child_aborts_with(overflow_recycled_child, "stack overflow in task 'recycled-runaway'");
}

static void overflow_child(void)
{
    at_loop_t *loop = loop_new();
    at_task_opts_t o = {.name = "runaway-parser", .stack_size = 64 * 1024};
    at_task_spawn(loop, overflows, NULL, &o, NULL);
    at_loop_run(loop, AT_RUN_DEFAULT);
}

static void test_stack_overflow_names_task(void **state)
{
    if (RUNNING_ON_VALGRIND)
        skip();
    assert_child_aborts_with(overflow_child, "stack overflow in task 'runaway-parser'");
}

/* Issue 14: a task's step histogram keeps a run of equal-bucket steps aside and adds it on a
 * change of bucket (or before a read); buckets up to the highest used start at 0; a bucket
 * that would pass UINT16_MAX halves them all, and the run, keeping the shape. */
static void test_step_hist_runs_and_halving(void **state)
{
    (void)state;
    at_task_t *t = calloc(1, sizeof *t);
    assert_non_null(t);
    t->step_run_bucket = 3;
    t->step_run_n = 60000;
    at__task_steps_flush(t);
    assert_int_equal(t->step_run_n, 0);
    assert_int_equal(t->step_hist_n, 4);
    assert_int_equal(t->step_hist[0] + t->step_hist[1] + t->step_hist[2], 0);
    assert_int_equal(t->step_hist[3], 60000);
    t->step_run_bucket = 1;
    t->step_run_n = 7;
    at__task_steps_flush(t);
    assert_int_equal(t->step_hist_n, 4);
    assert_int_equal(t->step_hist[1], 7);
    t->step_run_bucket = 3;
    t->step_run_n = 10000; /* 70000 would not fit: everything halves once */
    at__task_steps_flush(t);
    assert_int_equal(t->step_hist[3], 30000 + 5000);
    assert_int_equal(t->step_hist[1], 4);
    assert_int_equal(t->step_hist[0], 0);
    free(t);
}

int main(void)
{
    /* These tests read the monitor's event ring themselves: keep the exporter (its only
     * other consumer) from starting. */
    setenv("ASYNCTOP_SOCKET", "off", 1);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_spawn_join),
        cmocka_unit_test(test_step_hist_runs_and_halving),
        cmocka_unit_test(test_errors_join_gather),
        cmocka_unit_test(test_timeouts),
        cmocka_unit_test(test_cancel_every_await_point),
        cmocka_unit_test(test_cancel_before_start),
        cmocka_unit_test(test_sync_primitives),
        cmocka_unit_test(test_report_never_retrieved),
        cmocka_unit_test(test_report_never_retrieved_at_close),
        cmocka_unit_test(test_report_destroyed_pending_and_never_awaited),
        cmocka_unit_test(test_deferred_coro_used),
        cmocka_unit_test(test_100k_pending_tasks),
        cmocka_unit_test(test_suspension_stack),
        cmocka_unit_test(test_suspension_stack_of_inline_joiner),
        cmocka_unit_test(test_slow_step_names_task),
        cmocka_unit_test(test_busy_time),
        cmocka_unit_test(test_yield_alone_is_a_step),
        cmocka_unit_test(test_yield_alone_keeps_batches_fair),
        cmocka_unit_test(test_join_unstarted),
        cmocka_unit_test(test_stack_overflow_names_task),
        cmocka_unit_test(test_spawn_recycled_fresh),
        cmocka_unit_test(test_stack_overflow_recycled_stack),
        cmocka_unit_test(test_export_posts_deferred),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
