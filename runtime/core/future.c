/* future.c: at_future_t — completion, done callbacks, cancellation, and never-retrieved error
 * reports. */
#include "core.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

at_error_t *at__error_new_at(void *ra, int code, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));

#define CHECK_FUT_THREAD(fut, what) AT__CHECK_THREAD((fut)->loop, what)

int at_future_new(at_loop_t *loop, at_future_t **out)
{
    assert(loop && out);
    *out = NULL;
    AT__CHECK_THREAD(loop, "at_future_new");
    if (atomic_load_explicit(&loop->closing, memory_order_relaxed))
        return AT_ECLOSING;
    at_future_t *f = loop->free_futures;
    if (f) {
        loop->free_futures = f->ur_next;
    } else {
        f = malloc(sizeof *f);
        if (!f)
            return AT_ENOMEM;
    }
    f->loop = loop;
    f->refs = 1;
    f->state = AT_FUTURE_PENDING;
    f->retrieved = true;
    f->in_unretrieved = false;
    f->value = NULL;
    f->dtor = NULL;
    f->err = NULL;
    f->cancel_msg = NULL;
    f->cbs_head = f->cbs_tail = NULL;
    f->ur_prev = f->ur_next = NULL;
    f->failed_at_ms = 0;
    f->id = loop->next_future_id++;
    f->cancel_hook = NULL;
    f->cancel_hook_arg = NULL;
    at__capture_site(f->stack, &f->nstack, __builtin_return_address(0));
    loop->live_futures++;
    *out = f;
    return 0;
}

at_future_t *at_future_ref(at_future_t *fut)
{
    assert(fut && fut->refs > 0);
    fut->refs++;
    return fut;
}

static void unretrieved_remove(at_loop_t *loop, at_future_t *f)
{
    if (!f->in_unretrieved)
        return;
    AT__DLIST_UNLINK_TAIL(loop->ur_head, loop->ur_tail, f, ur_prev, ur_next);
    f->ur_prev = f->ur_next = NULL;
    f->in_unretrieved = false;
    loop->nunretrieved--;
}

static void unretrieved_add(at_loop_t *loop, at_future_t *f)
{
    f->in_unretrieved = true;
    f->ur_next = NULL;
    f->ur_prev = loop->ur_tail;
    if (loop->ur_tail)
        loop->ur_tail->ur_next = f;
    else
        loop->ur_head = f;
    loop->ur_tail = f;
    loop->nunretrieved++;
}

/* "Future exception was never retrieved": log (split in lines) and event. */
static void report_never_retrieved(at_loop_t *loop, at_future_t *f, const char *when)
{
    atomic_fetch_add_explicit(&at__count_never_retrieved, 1, memory_order_relaxed);
    const at_error_t *e = f->err;
    uint64_t age = uv_now(loop->uv) - f->failed_at_ms;
    if (loop->mon) {
        at__event_t ev;
        at__event_init(&ev, AT__EV_ERROR);
        snprintf(ev.code, sizeof ev.code, "never_retrieved");
        at__event_set_error(&ev, e->code, e->domain);
        snprintf(ev.name, sizeof ev.name, "future %" PRIu64, f->id);
        snprintf(ev.text, sizeof ev.text, "Future exception was never retrieved: %s (%s): %s",
                 at_err_name(e->code), e->domain, at_error_message(e));
        ev.duration_ns = age * 1000000u;
        ev.nstack = f->nstack;
        memcpy(ev.stack, f->stack, f->nstack * sizeof(void *));
        ev.nstack2 = e->nstack;
        memcpy(ev.stack2, e->stack, e->nstack * sizeof(void *));
        at__mon_post(loop->mon, &ev);
    }
    char buf[8192];
    size_t pos = 0;
    int w = snprintf(buf, sizeof buf,
                     "Future exception was never retrieved\n"
                     "future: <Future failed id=%" PRIu64 " age=%" PRIu64 "ms (%s)>\n"
                     "error: %s (%s): %s\n"
                     "Future created at (most recent call first):\n",
                     f->id, age, when, at_err_name(e->code), e->domain, at_error_message(e));
    if (w > 0)
        pos = (size_t)w;
    at__format_stack(buf, sizeof buf, &pos, f->stack, f->nstack);
    w = snprintf(pos < sizeof buf ? buf + pos : NULL, pos < sizeof buf ? sizeof buf - pos : 0,
                 "Error raised at (most recent call first):\n");
    if (w > 0)
        pos += (size_t)w;
    at__format_stack(buf, sizeof buf, &pos, e->stack, e->nstack);
    buf[sizeof buf - 1] = '\0';
    at__log_long(AT__LOG_ERROR, buf);
}

static void future_free(at_future_t *f)
{
    at_loop_t *loop = f->loop;
    if (f->state == AT_FUTURE_FAILED && !f->retrieved)
        report_never_retrieved(loop, f, "last reference dropped");
    unretrieved_remove(loop, f);
    /* Done callbacks never scheduled (the future never completed). */
    at__slot_t *s = f->cbs_head;
    while (s) {
        at__slot_t *n = s->next;
        at__slot_put(loop, s);
        s = n;
    }
    if (f->dtor && f->value)
        f->dtor(f->value);
    at_error_unref(f->err);
    loop->live_futures--;
    if (loop->freed_when_futures_gone) {
        free(f);
        at__loop_maybe_free(loop);
    } else {
        f->ur_next = loop->free_futures;
        loop->free_futures = f;
    }
}

void at_future_unref(at_future_t *fut)
{
    if (!fut)
        return;
    assert(fut->refs > 0);
    AT__CHECK_THREAD_OR(fut->loop, "at_future_unref"); /* leaked rather than corrupted */
    if (--fut->refs == 0)
        future_free(fut);
}

/* Moves the done callbacks to the ready queue, each holding a reference. */
static void schedule_done(at_future_t *f)
{
    at_loop_t *loop = f->loop;
    at__slot_t *s = f->cbs_head;
    f->cbs_head = f->cbs_tail = NULL;
    while (s) {
        at__slot_t *n = s->next;
        if (AT__UNLIKELY(atomic_load_explicit(&loop->closing, memory_order_relaxed))) {
            at__slot_put(loop, s);
        } else {
            s->fut = at_future_ref(f);
            at__ready_push(loop, s);
        }
        s = n;
    }
}

int at_future_set_result(at_future_t *fut, void *value, void (*dtor)(void *))
{
    assert(fut);
    CHECK_FUT_THREAD(fut, "at_future_set_result");
    if (fut->state != AT_FUTURE_PENDING)
        return AT_EINVALSTATE;
    fut->state = AT_FUTURE_DONE;
    fut->value = value;
    fut->dtor = dtor;
    fut->cancel_hook = NULL;
    schedule_done(fut);
    return 0;
}

int at_future_set_error(at_future_t *fut, at_error_t *err)
{
    assert(fut && err);
    if (AT__UNLIKELY(!at__on_loop_thread(fut->loop))) {
        at_error_unref(err);
        return at__wrong_thread(fut->loop, "at_future_set_error");
    }
    if (fut->state != AT_FUTURE_PENDING) {
        at_error_unref(err);
        return AT_EINVALSTATE;
    }
    at_loop_t *loop = fut->loop;
    fut->state = AT_FUTURE_FAILED;
    fut->err = err;
    fut->retrieved = false;
    fut->failed_at_ms = uv_now(loop->uv);
    fut->cancel_hook = NULL;
    if (!atomic_load_explicit(&loop->closing, memory_order_relaxed))
        unretrieved_add(loop, fut);
    schedule_done(fut);
    return 0;
}

int at_future_fail(at_future_t *fut, int code, const char *fmt, ...)
{
    assert(fut);
    CHECK_FUT_THREAD(fut, "at_future_fail");
    va_list ap;
    va_start(ap, fmt);
    at_error_t *e = at__error_new_at(__builtin_return_address(0), code, fmt, ap);
    va_end(ap);
    return at_future_set_error(fut, e);
}

bool at_future_cancel(at_future_t *fut, const char *msg)
{
    assert(fut);
    AT__CHECK_THREAD_OR(fut->loop, "at_future_cancel", false);
    if (fut->state != AT_FUTURE_PENDING)
        return false;
    fut->state = AT_FUTURE_CANCELLED;
    fut->cancel_msg = msg;
    void (*hook)(at_future_t *, void *) = fut->cancel_hook;
    fut->cancel_hook = NULL;
    if (hook)
        hook(fut, fut->cancel_hook_arg);
    schedule_done(fut);
    return true;
}

void at__future_set_cancel_hook(at_future_t *fut, void (*hook)(at_future_t *, void *), void *arg)
{
    fut->cancel_hook = hook;
    fut->cancel_hook_arg = arg;
}

at_future_state_t at_future_state(const at_future_t *fut)
{
    assert(fut);
    return (at_future_state_t)fut->state;
}

bool at_future_done(const at_future_t *fut)
{
    assert(fut);
    return fut->state != AT_FUTURE_PENDING;
}

bool at_future_cancelled(const at_future_t *fut)
{
    assert(fut);
    return fut->state == AT_FUTURE_CANCELLED;
}

at_loop_t *at_future_loop(const at_future_t *fut)
{
    assert(fut);
    return fut->loop;
}

static void mark_retrieved(at_future_t *fut)
{
    if (fut->state == AT_FUTURE_FAILED && !fut->retrieved) {
        fut->retrieved = true;
        unretrieved_remove(fut->loop, fut);
    }
}

int at_future_result(at_future_t *fut, void **value)
{
    assert(fut);
    CHECK_FUT_THREAD(fut, "at_future_result");
    switch (fut->state) {
    case AT_FUTURE_DONE:
        if (value)
            *value = fut->value;
        return 0;
    case AT_FUTURE_FAILED:
        mark_retrieved(fut);
        return fut->err->code;
    case AT_FUTURE_CANCELLED:
        return AT_ECANCELED;
    default:
        return AT_EINVALSTATE;
    }
}

int at_future_take_result(at_future_t *fut, void **value)
{
    int r = at_future_result(fut, value);
    if (r == 0) {
        fut->value = NULL;
        fut->dtor = NULL;
    }
    return r;
}

at_error_t *at_future_error(at_future_t *fut)
{
    assert(fut);
    AT__CHECK_THREAD_OR(fut->loop, "at_future_error", NULL);
    if (fut->state != AT_FUTURE_FAILED)
        return NULL;
    mark_retrieved(fut);
    return fut->err;
}

void at_future_mark_retrieved(at_future_t *fut)
{
    assert(fut);
    AT__CHECK_THREAD_OR(fut->loop, "at_future_mark_retrieved");
    mark_retrieved(fut);
}

int at_future_add_done_callback(at_future_t *fut, at_future_cb fn, void *arg, const char *name)
{
    assert(fut && fn);
    at_loop_t *loop = fut->loop;
    CHECK_FUT_THREAD(fut, "at_future_add_done_callback");
    if (atomic_load_explicit(&loop->closing, memory_order_relaxed))
        return AT_ECLOSING;
    at__slot_t *s =
        at__slot_new(loop, AT__FN_FUTURE, AT__CB_READY, arg, name, __builtin_return_address(0));
    if (!s)
        return AT_ENOMEM;
    s->fn.fcb = fn;
    if (fut->state != AT_FUTURE_PENDING) {
        s->fut = at_future_ref(fut);
        at__ready_push(loop, s);
        return 0;
    }
    s->state = AT__SLOT_DONECB;
    AT__SLIST_APPEND(fut->cbs_head, fut->cbs_tail, s, next);
    return 0;
}

size_t at_future_remove_done_callback(at_future_t *fut, at_future_cb fn, void *arg)
{
    assert(fut);
    AT__CHECK_THREAD_OR(fut->loop, "at_future_remove_done_callback", 0);
    size_t n = 0;
    at__slot_t **pp = &fut->cbs_head, *last = NULL;
    while (*pp) {
        at__slot_t *s = *pp;
        if (s->fn.fcb == fn && s->arg == arg) {
            *pp = s->next;
            at__slot_put(fut->loop, s);
            n++;
        } else {
            last = s;
            pp = &s->next;
        }
    }
    fut->cbs_tail = last;
    return n;
}

size_t at_future_creation_stack(const at_future_t *fut, void **frames, size_t max)
{
    assert(fut);
    return at__frames_copy(frames, max, fut->stack, fut->nstack);
}

size_t at_loop_unretrieved(at_loop_t *loop, void (*visit)(const at_unretrieved_info_t *, void *),
                           void *arg)
{
    assert(loop);
    AT__CHECK_THREAD_OR(loop, "at_loop_unretrieved", 0);
    uint64_t now = uv_now(loop->uv);
    if (visit) {
        for (at_future_t *f = loop->ur_head; f; f = f->ur_next) {
            at_unretrieved_info_t info = {f, f->err, f->failed_at_ms,
                                          now > f->failed_at_ms ? now - f->failed_at_ms : 0};
            visit(&info, arg);
        }
    }
    return loop->nunretrieved;
}

void at__future_close_report(at_loop_t *loop, size_t *count)
{
    at_future_t *f;
    while ((f = loop->ur_head) != NULL) {
        report_never_retrieved(loop, f, "loop closed");
        f->retrieved = true; /* reported once */
        unretrieved_remove(loop, f);
        (*count)++;
    }
}

void at__future_free_cache(at_loop_t *loop)
{
    at_future_t *f = loop->free_futures;
    while (f) {
        at_future_t *n = f->ur_next;
        free(f);
        f = n;
    }
    loop->free_futures = NULL;
}
