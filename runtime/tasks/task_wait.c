/* task_wait.c: a task waits — suspending and waking, awaiting a future, joining a task (with
 * the inline join of a task that has not started), gather, sleep, yield, cancellation, and the
 * wait queues of the primitives (sync.c, stream.c). */
#include "task_int.h"

#include <assert.h>

/* A yield with nothing else ready (at__ready_next_inline said its step would run next):
 * ends the running step's callback and begins the next step's in the same record, on the
 * task's own stack. What the ready queue would have done, less a slot and two switches:
 * the step is timed, counted and billed to the task as any other, the slow check names it. */
AT__AWAIT_TEXT static void step_restart(at_task_t *t, at__mon_t *m, at__site_t *site)
{
    at__cb_t *cb = m->cur;
    at__cb_end(m, cb);
    at__task_busy_settle(t->tl);
    at__cb_begin_full(m, cb, site, AT__CB_TASK_STEP, t->id, NULL, NULL, 0);
    at__cb_set_task_name(cb, t->name);
    at__task_open_step_set(t, site);
    t->steps++;
}

/* `t` begins a wait of `kind` on object `id` (for the inspector), undone on cancel by
 * `detach`. */
static inline void wait_begin(at_task_t *t, at_wait_kind_t kind, uint64_t id, detach_fn detach)
{
    t->state = AT_TASK_WAITING;
    t->wait_kind = (uint8_t)kind;
    t->wait_id = id;
    t->wait_since_ms = at_loop_time(t->loop);
    t->wake_code = 0;
    t->detach = detach;
}

/* `t`'s wait is over (it runs again); returns its wake code. */
static inline int wait_end(at_task_t *t)
{
    t->wait_kind = AT_WAIT_NONE;
    t->wait_id = 0;
    t->detach = NULL;
    return t->wake_code;
}

/* Suspends the running task until at__task_wake; returns the wake code. */
AT__AWAIT_TEXT static int task_suspend(at_task_t *t, at_wait_kind_t kind, uint64_t id,
                                       detach_fn detach)
{
    wait_begin(t, kind, id, detach);
    if (kind != AT_WAIT_YIELD) /* a yield is ready again at once: nothing to show */
        at__task_post(t, AT_EXPORT_TASK_CHANGED);
    at__coro_yield();
    return wait_end(t);
}

static bool take_cancel(at_task_t *t)
{
    if (t->cancel_pending) {
        t->cancel_pending = false;
        return true;
    }
    return false;
}

/* Cancels the timer of `t`'s wait (a timeout, a sleep), if any. */
static void timer_drop(at_task_t *t)
{
    if (t->timer.slot_) {
        at_handle_cancel(t->loop, t->timer);
        t->timer = (at_handle_t){0};
    }
}

static void wake_on_done(at_future_t *fut, void *arg);

/* Takes `t`'s done callback off the future it waits on, if any, with the references the
 * callbacks held. */
static void future_drop(at_task_t *t)
{
    if (t->waiting_on) {
        size_t removed = at_future_remove_done_callback(t->waiting_on, wake_on_done, t);
        t->waiting_on = NULL;
        while (removed--)
            at__task_unref_internal(t);
    }
}

static void wake_on_done(at_future_t *fut, void *arg)
{
    at_task_t *t = arg;
    if (!t->ended && t->state == AT_TASK_WAITING && t->waiting_on == fut) {
        t->waiting_on = NULL;
        timer_drop(t);
        at__task_wake(t, 0);
    }
    at__task_unref_internal(t); /* the done callback's reference */
}

static void wake_on_timer(at_loop_t *loop, void *arg)
{
    at_task_t *t = arg;
    t->timer = (at_handle_t){0};
    if (!t->ended && t->state == AT_TASK_WAITING) {
        if (t->waiting_on) {
            future_drop(t);
            at__task_wake(t, AT_ETIMEDOUT);
        } else {
            at__task_wake(t, 0); /* at_sleep */
        }
    }
}

static bool detach_future(at_task_t *t)
{
    future_drop(t);
    timer_drop(t);
    return true;
}

AT__AWAIT_TEXT static int await_impl(at_future_t *fut, uint64_t timeout_ms, void **value,
                                     at_wait_kind_t kind, uint64_t id)
{
    at_task_t *t = at__task_current();
    if (!t)
        return AT_EINVALSTATE;
    if (take_cancel(t))
        return AT_ECANCELED;
    if (!at_future_done(fut)) {
        int rc = at_future_add_done_callback(fut, wake_on_done, t, "task wake-up");
        if (rc != 0)
            return rc;
        t->refs++;
        t->waiting_on = fut;
        if (timeout_ms != UINT64_MAX) {
            rc = at_call_later(t->loop, timeout_ms, wake_on_timer, t, "task timeout", &t->timer);
            if (rc != 0) {
                detach_future(t);
                return rc;
            }
        }
        rc = task_suspend(t, kind, id, detach_future);
        if (rc != 0)
            return rc;
    }
    return at_future_result(fut, value);
}

AT__AWAIT_TEXT int at_await(at_future_t *fut, void **value)
{
    return await_impl(fut, UINT64_MAX, value, AT_WAIT_FUTURE, fut->id);
}

AT__AWAIT_TEXT int at_await_timeout(at_future_t *fut, uint64_t timeout_ms, void **value)
{
    return await_impl(fut, timeout_ms, value, AT_WAIT_FUTURE, fut->id);
}

static bool detach_join(at_task_t *t)
{
    if (t->joining) {
        t->joining->joiner = NULL;
        t->joining = NULL;
    }
    return true;
}

static bool detach_join_inline(at_task_t *t)
{
    return false; /* the joiner is on the stack below: it sees wake_code when the step returns */
}

/* Joining a task that has not started, whose first step is all that is ready: the ready
 * batch would run that step next and, if the task ends in it, the joiner right after, inline
 * in the same callback. Does the same from the joiner's stack with two switches instead of
 * four: ends the joiner's callback, begins the task's step in the same record, runs it
 * (nested: its stack returns here when it ends or waits), and if it ended, the callback
 * goes on as the joiner's next step. Returns 1 if `task` ran (then `*code` is the joiner's
 * wake code: AT_ECANCELED if it was cancelled meanwhile), 0 if the fast path does not apply. */
static inline __attribute__((always_inline)) int join_inline(at_task_t *t, at_task_t *task,
                                                             int *code)
{
    at__mon_t *m = t->loop->mon;
    at__slot_t *s = task->step.slot_;
    if (!m || !m->cur || m->cur->parent || m->cur->task_id != t->id || !s ||
        s->gen != task->step.gen_ || !at__ready_take_sole(t->loop, s))
        return 0;
    at__slot_put(t->loop, s);
    task->step = (at_handle_t){0}; /* the step's reference is ours now */
    at__cb_t *cb = m->cur;
    at__site_t *site = cb->site;
    at__cb_end(m, cb);
    at__task_busy_settle(t->tl);
    at__cb_begin_full(m, cb, task->site ? task->site : site, AT__CB_TASK_STEP, 0, NULL, NULL, 0);
    /* Waiting on the task meanwhile, as in task_suspend (the change is not posted: it ends
     * within this callback, as a yield's). A cancel finds a wake code to set, no step to
     * schedule. */
    wait_begin(t, AT_WAIT_TASK, task->id, detach_join_inline);
    const at_task_t *outer_child = at__inline_child;
    at__inline_child = task;
    at__task_run_inline(task);
    at__inline_child = outer_child;
    at__task_unref_internal(task); /* the scheduled step's reference (the joiner holds one) */
    *code = wait_end(t);
    t->state = AT_TASK_RUNNING;
    if (task->ended) {
        /* The joiner goes on in this callback, as at__task_wake's inline run would. */
        if (cb->task_id != t->id)
            at__cb_relabel_task(m, cb, t->site, t->id, t->name);
        at__task_open_step_set(t, cb->site);
        t->steps++;
    } else if (*code != 0) {
        /* The joiner was cancelled and goes on while the task waits: a step of its own. */
        step_restart(t, m, t->site ? t->site : cb->site);
    }
    /* else: the task waits; its step's callback goes on until the joiner waits too. */
    return 1;
}

AT__AWAIT_TEXT int at_task_join(at_task_t *task, void **result)
{
    at_task_t *t = at__task_current();
    if (!t)
        return AT_EINVALSTATE;
    if (t == task)
        return AT_EDEADLK;
    if (task->state == AT_TASK_CREATED && !task->joiner && !t->cancel_pending) {
        int code;
        if (join_inline(t, task, &code)) {
            if (code != 0)
                return code;
            if (task->ended)
                return at_future_result(task->fut, result);
        }
    }
    if (task->ended || task->joiner) {
        /* Ended, or someone else is the direct joiner: through the future. */
        return await_impl(task->fut, UINT64_MAX, result, AT_WAIT_TASK, task->id);
    }
    if (take_cancel(t))
        return AT_ECANCELED;
    task->joiner = t;
    t->joining = task;
    int rc = task_suspend(t, AT_WAIT_TASK, task->id, detach_join);
    if (rc != 0)
        return rc;
    return at_future_result(task->fut, result);
}

AT__AWAIT_TEXT int at_gather(at_future_t *const *futs, size_t n, at_error_t **first_error)
{
    at_task_t *t = at__task_current();
    if (!t)
        return AT_EINVALSTATE;
    if (first_error)
        *first_error = NULL;
    for (size_t i = 0; i < n; i++) {
        int rc = at_await(futs[i], NULL);
        if (rc == AT_ECANCELED && !at_future_done(futs[i])) {
            /* We were cancelled: so are the children (as asyncio.gather). */
            for (size_t j = i; j < n; j++)
                at_future_cancel(futs[j], "gather was cancelled");
            return AT_ECANCELED;
        }
    }
    int first = 0;
    for (size_t i = 0; i < n; i++) {
        int rc = at_future_result(futs[i], NULL);
        if (rc != 0 && first == 0) {
            first = rc;
            at_error_t *e = at_future_error(futs[i]);
            if (e && first_error)
                *first_error = at_error_ref(e);
        }
        at_future_mark_retrieved(futs[i]);
    }
    return first;
}

static bool detach_timer(at_task_t *t)
{
    timer_drop(t);
    return true;
}

AT__AWAIT_TEXT int at_sleep(uint64_t ms)
{
    at_task_t *t = at__task_current();
    if (!t)
        return AT_EINVALSTATE;
    if (take_cancel(t))
        return AT_ECANCELED;
    int rc = at_call_later(t->loop, ms, wake_on_timer, t, "task sleep", &t->timer);
    if (rc != 0)
        return rc;
    t->wait_arg = ms;
    return task_suspend(t, AT_WAIT_TIMER, 0, detach_timer);
}

static bool detach_yield(at_task_t *t)
{
    return false; /* its step is already scheduled */
}

AT__AWAIT_TEXT int at_yield(void)
{
    at_task_t *t = at__task_current();
    if (!t)
        return AT_EINVALSTATE;
    if (take_cancel(t))
        return AT_ECANCELED;
    at__mon_t *m = t->loop->mon;
    if (m && m->cur && !m->cur->parent && m->cur->task_id == t->id &&
        at__ready_next_inline(t->loop)) {
        step_restart(t, m, m->cur->site); /* the task's (at__task_run set it) */
        return 0;
    }
    int rc = at__task_schedule_step(t);
    if (rc != 0)
        return rc;
    rc = task_suspend(t, AT_WAIT_YIELD, 0, detach_yield);
    return rc;
}

/* The woken step of a yield finds the task READY (at__task_schedule_step set it) but
 * task_suspend set WAITING afterwards: at__task_step_cb accepts both. */

bool at_task_cancel(at_task_t *t, const char *msg)
{
    if (t->ended)
        return false;
    t->cancel_msg = msg;
    if (t->state == AT_TASK_WAITING) {
        detach_fn d = t->detach;
        bool schedule = d ? d(t) : true;
        t->wake_code = AT_ECANCELED;
        t->detach = NULL;
        if (schedule) {
            if (at__task_schedule_step(t) != 0) {
                at__log(AT__LOG_ERROR, "task '%s': out of memory scheduling its cancellation",
                        t->name);
            }
        }
        /* else: a step is already scheduled; it sees wake_code */
    } else {
        t->cancel_pending = true;
    }
    return true;
}

void at__task_fut_cancel_hook(at_future_t *fut, void *arg)
{
    at_task_t *t = arg;
    if (!t->finishing)
        at_task_cancel(t, fut->cancel_msg);
}

/* ---- wait queues for the primitives -------------------------------------------------- */

void at__waitq_push(at__waitq_t *q, at__waiter_t *w)
{
    AT__DLIST_APPEND(q->head, q->tail, w, prev, next);
    q->n++;
}

void at__waitq_remove(at__waitq_t *q, at__waiter_t *w)
{
    AT__DLIST_UNLINK_TAIL(q->head, q->tail, w, prev, next);
    w->prev = w->next = NULL;
    q->n--;
}

static bool detach_waitq(at_task_t *t)
{
    if (t->wq) {
        at__waitq_remove(t->wq, t->waiter);
        t->wq = NULL;
        t->waiter = NULL;
    }
    return true;
}

AT__AWAIT_TEXT int at__waitq_wait(at__waitq_t *q, at__waiter_t *w, at_wait_kind_t kind, uint64_t id)
{
    at_task_t *t = at__task_current();
    if (!t)
        return AT_EINVALSTATE;
    if (take_cancel(t))
        return AT_ECANCELED;
    w->task = t;
    at__waitq_push(q, w);
    t->wq = q;
    t->waiter = w;
    return task_suspend(t, kind, id, detach_waitq);
}

/* Takes waiter `w` off `q` with `value`: its task's wait is over (wake code 0); returns it. */
static at_task_t *waiter_take(at__waitq_t *q, at__waiter_t *w, void *value)
{
    at__waitq_remove(q, w);
    w->value = value;
    at_task_t *t = w->task;
    t->wq = NULL;
    t->waiter = NULL;
    t->detach = NULL;
    t->wake_code = 0;
    return t;
}

bool at__waitq_wake_one(at__waitq_t *q, void *value)
{
    at__waiter_t *w = q->head;
    if (!w)
        return false;
    at_task_t *t = waiter_take(q, w, value);
    if (at__task_schedule_step(t) != 0)
        at__log(AT__LOG_ERROR, "task '%s': out of memory scheduling its wake-up", t->name);
    return true;
}

bool at__waitq_wake_one_now(at__waitq_t *q, void *value)
{
    at__waiter_t *w = q->head;
    if (!w)
        return false;
    at_task_t *t = w->task;
    at__mon_t *m = t->loop->mon;
    if (at__coro_current() != NULL || !m || m->cur)
        return at__waitq_wake_one(q, value); /* not from a bare libuv callback */
    waiter_take(q, w, value);
    t->state = AT_TASK_READY;
    /* Run the step right here, timed as a step of its own (the libuv
     * callback we are in is not timed). */
    at__site_t *site = t->site ? t->site : at__loop_site(t->loop, (void *)at__task_step_cb, NULL);
    at__cb_t cb;
    if (site) {
        at__mon_chain_break(m); /* libuv did work since the last callback */
        /* "now running" gets the task's id only (as at__task_run does); the slow-step event
         * takes the name from the record's task name. */
        at__cb_begin_full(m, &cb, site, AT__CB_TASK_STEP, t->id, NULL, NULL, 0);
        at__cb_set_task_name(&cb, t->name);
    }
    t->refs++;
    at__task_run(t);
    at__task_unref_internal(t);
    if (site)
        at__cb_end(m, &cb);
    return true;
}
