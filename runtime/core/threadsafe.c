/* threadsafe.c: run a function (or start a future) on the loop from another thread and wait for the
 * outcome. */
#include "core.h"

#include <errno.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

/* Shared by the waiting thread and the loop: two references, the last one
 * frees it (and an outcome nobody claimed: the waiter timed out). */
typedef struct at__waiter {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    _Atomic int refs;
    pid_t pid; /* the waiting thread's process: a fork child has a copy, not the thread */
    bool done;
    bool claimed; /* the waiter took the outcome */
    int rc;
    void *result;
    void (*result_dtor)(void *);
    at_error_t *err;
    at_sync_fn fn;
    at_start_fn start;
    void *arg;
} at__waiter_t;

static void waiter_release(at__waiter_t *w)
{
    if (atomic_fetch_sub_explicit(&w->refs, 1, memory_order_acq_rel) != 1)
        return;
    if (!w->claimed) {
        if (w->result && w->result_dtor)
            w->result_dtor(w->result);
        at_error_unref(w->err);
    }
    pthread_cond_destroy(&w->cv);
    pthread_mutex_destroy(&w->mu);
    free(w);
}

/* Loop side: publish the outcome, wake the waiter, drop the loop's reference. */
static void waiter_complete(at__waiter_t *w, int rc)
{
    /* In a fork child, a waiter of the parent has nobody waiting, and its mutex may have been
     * held by that thread at the fork: it is left alone (the child's copy leaks). */
    if (w->pid != getpid())
        return;
    pthread_mutex_lock(&w->mu);
    w->rc = rc;
    w->done = true;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
    waiter_release(w);
}

void at__waiter_abort(void *arg)
{
    waiter_complete(arg, AT_ECLOSING);
}

static void waiter_future_done(at_future_t *fut, void *arg)
{
    at__waiter_t *w = arg;
    void (*dtor)(void *) = fut->dtor;
    int rc = at_future_take_result(fut, &w->result);
    if (rc == 0)
        w->result_dtor = dtor;
    else if (at_future_state(fut) == AT_FUTURE_FAILED)
        w->err = at_error_ref(at_future_error(fut));
    at_future_unref(fut); /* the reference start() gave us */
    waiter_complete(w, rc);
}

void at__waiter_run(at_loop_t *loop, void *arg)
{
    at__waiter_t *w = arg;
    if (w->fn) {
        void *result = NULL;
        int rc = w->fn(loop, w->arg, &result);
        w->result = result;
        waiter_complete(w, rc);
        return;
    }
    at_future_t *fut = NULL;
    int rc = w->start(loop, w->arg, &fut);
    if (rc < 0 || !fut) {
        waiter_complete(w, rc < 0 ? rc : AT_EINVAL);
        return;
    }
    rc = at_future_add_done_callback(fut, waiter_future_done, w, "at_loop_await_threadsafe");
    if (rc < 0) {
        at_future_unref(fut);
        waiter_complete(w, rc);
    }
}

static int wait_for(at_loop_t *loop, at_sync_fn fn, at_start_fn start, void *arg,
                    uint64_t timeout_ms, void **result, at_error_t **error)
{
    at__waiter_t *w = calloc(1, sizeof *w);
    if (!w)
        return AT_ENOMEM;
    w->fn = fn;
    w->start = start;
    w->arg = arg;
    if (at__on_loop_thread(loop)) {
        free(w);
        return AT_EDEADLK; /* the loop would wait for itself */
    }
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&w->cv, &ca);
    pthread_condattr_destroy(&ca);
    pthread_mutex_init(&w->mu, NULL);
    atomic_init(&w->refs, 2);
    w->pid = getpid();
    int rc = at_call_soon_threadsafe(loop, at__waiter_run, w, "at_loop_run_and_wait", NULL);
    if (rc < 0) {
        atomic_store(&w->refs, 1);
        waiter_release(w);
        return rc;
    }
    struct timespec deadline;
    clock_gettime(CLOCK_MONOTONIC, &deadline);
    bool forever = timeout_ms == UINT64_MAX;
    if (!forever) {
        deadline.tv_sec += (time_t)(timeout_ms / 1000);
        deadline.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
        if (deadline.tv_nsec >= 1000000000L) {
            deadline.tv_sec++;
            deadline.tv_nsec -= 1000000000L;
        }
    }
    pthread_mutex_lock(&w->mu);
    while (!w->done)
        if (forever)
            pthread_cond_wait(&w->cv, &w->mu);
        else if (pthread_cond_timedwait(&w->cv, &w->mu, &deadline) == ETIMEDOUT)
            break;
    if (w->done) {
        rc = w->rc;
        w->claimed = true;
        if (result)
            *result = w->result;
        else if (w->result && w->result_dtor)
            w->result_dtor(w->result);
        if (error)
            *error = w->err;
        else
            at_error_unref(w->err);
    } else {
        rc = AT_ETIMEDOUT;
    }
    pthread_mutex_unlock(&w->mu);
    waiter_release(w);
    return rc;
}

int at_loop_run_and_wait(at_loop_t *loop, at_sync_fn fn, void *arg, uint64_t timeout_ms,
                         void **result)
{
    assert(loop && fn);
    return wait_for(loop, fn, NULL, arg, timeout_ms, result, NULL);
}

int at_loop_await_threadsafe(at_loop_t *loop, at_start_fn start, void *arg, uint64_t timeout_ms,
                             void **result, at_error_t **error)
{
    assert(loop && start);
    if (error)
        *error = NULL;
    return wait_for(loop, NULL, start, arg, timeout_ms, result, error);
}
