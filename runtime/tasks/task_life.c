/* task_life.c: a task's life cycle — ids, the per-thread state, spawn, running a step,
 * scheduling and waking it, its end, references and the object cache. Tasks are coroutines
 * scheduled on an at_loop_t, completing a future; waiting is task_wait.c's, reports and the
 * loop's close task_close.c's (the internal contract: task_int.h). */
#include "task_int.h"
#include "stack_pool.h"

#include <assert.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static __thread tloop_t *tloops __attribute__((tls_model("initial-exec")));
__thread at_task_t *at__cur_task __attribute__((tls_model("initial-exec")));
static _Atomic uint64_t next_task_id;
static _Atomic uint64_t next_object_id;

/* Task ids: process-unique, handed to each thread in blocks (a locked add per spawn was a
 * tenth of at_task_spawn); consecutive within a thread. */
#define TASK_ID_BLOCK 1024u
static __thread uint64_t task_id_cur __attribute__((tls_model("initial-exec")));
static __thread uint64_t task_id_end __attribute__((tls_model("initial-exec")));

static inline uint64_t task_id_next(void)
{
    if (AT__UNLIKELY(task_id_cur == task_id_end)) {
        task_id_cur =
            atomic_fetch_add_explicit(&next_task_id, TASK_ID_BLOCK, memory_order_relaxed) + 1;
        task_id_end = task_id_cur + TASK_ID_BLOCK;
    }
    return task_id_cur++;
}

uint64_t at__tasks_next_object_id(void)
{
    return atomic_fetch_add_explicit(&next_object_id, 1, memory_order_relaxed) + 1;
}

/* ---- stack bounds for loopmon, the close-time hooks, per-thread state ---------------- */

/* Hot thread-locals of a shared library: initial-exec, no __tls_get_addr call. */
extern __thread at__stack_bounds_t at__stack_bounds __attribute__((tls_model("initial-exec")));
static __thread at__stack_bounds_t thread_bounds __attribute__((tls_model("initial-exec")));
static __thread bool on_coro_stack __attribute__((tls_model("initial-exec")));

/* Every switch into a coroutine points loopmon's walker at its stack; every
 * switch back restores the thread's own bounds. */
static void on_switch(const void *lo, const void *hi)
{
    if (lo) {
        if (!on_coro_stack) {
            thread_bounds = at__stack_bounds;
            on_coro_stack = true;
        }
        at__stack_bounds_set((void *)lo, (void *)hi);
    } else {
        at__stack_bounds = thread_bounds;
        on_coro_stack = false;
    }
}

/* Coroutine stack bounds for the exporter's sampling of a blocked loop thread. */
static bool coro_stack_resolve(uintptr_t addr, uintptr_t *lo, uintptr_t *hi)
{
    at__stack_fault_t f;
    if (!at__stack_lookup((const void *)addr, &f) || f.in_guard)
        return false;
    *lo = (uintptr_t)f.stack_lo;
    *hi = (uintptr_t)f.stack_hi;
    return true;
}

__attribute__((constructor)) static void tasks_init(void)
{
    at__coro_set_switch_hook(on_switch);
    at__stack_resolver_set(coro_stack_resolve);
    at__tasks_unwind_hook = at__tasks_loop_unwind;
    at__tasks_close_hook = at__tasks_loop_close;
}

tloop_t *at__tloop_find(at_loop_t *loop, bool create)
{
    for (tloop_t *t = tloops; t; t = t->next)
        if (t->loop == loop)
            return t;
    if (!create)
        return NULL;
    tloop_t *t = calloc(1, sizeof *t);
    if (t) {
        t->loop = loop;
        t->next = tloops;
        tloops = t;
        at__task_export_attach(t);
    }
    return t;
}

/* ---- life cycle ------------------------------------------------------------------- */

/* Task objects freed on this thread are kept (up to TASK_CACHE_MAX) for its next spawns,
 * while the thread has a loop with tasks: the last loop's close gives them back. Not under
 * AddressSanitizer, whose use-after-free checks a cache would blind. */
#if defined(__SANITIZE_ADDRESS__)
#define TASK_CACHE_MAX 0u
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TASK_CACHE_MAX 0u
#endif
#endif
#ifndef TASK_CACHE_MAX
#define TASK_CACHE_MAX 256u
#endif
static __thread at_task_t *task_cache __attribute__((tls_model("initial-exec")));
static __thread unsigned task_cache_n __attribute__((tls_model("initial-exec")));

static at_task_t *task_alloc(void)
{
    at_task_t *t = task_cache;
    if (t) {
        task_cache = t->next;
        task_cache_n--;
        return t;
    }
    return malloc(sizeof *t);
}

static void task_dealloc(at_task_t *t)
{
    if (tloops && task_cache_n < TASK_CACHE_MAX) {
        t->next = task_cache;
        task_cache = t;
        task_cache_n++;
        return;
    }
    free(t);
}

static void task_cache_drain(void)
{
    while (task_cache) {
        at_task_t *t = task_cache;
        task_cache = t->next;
        free(t);
    }
    task_cache_n = 0;
}

void at__tloop_free(tloop_t *tl)
{
    for (tloop_t **p = &tloops; *p; p = &(*p)->next) {
        if (*p == tl) {
            *p = tl->next;
            break;
        }
    }
    free(tl);
    if (!tloops)
        task_cache_drain(); /* the thread's last loop with tasks */
}

void at__task_failed_unlink(at_task_t *t)
{
    AT__DLIST_UNLINK(t->tl->failed, t, prev, next);
    t->prev = t->next = NULL;
    t->in_failed = false;
}

static void task_free(at_task_t *t)
{
    assert(t->ended);
    if (t->open_step) { /* (then t->tl is still alive: the close clears it) */
        t->tl->open_step.task = NULL;
        t->open_step = false;
    }
    if (t->in_failed) {
        at__task_post(t, AT_EXPORT_TASK_REMOVED); /* it stayed in the table while failed */
        at__task_failed_unlink(t);
    }
    if (t->fut->state == AT_FUTURE_FAILED && !t->fut->retrieved && t->fut->refs == 1)
        at__task_report_never_retrieved(t);
    at_future_unref(t->fut);
    at_error_unref(t->raised);
    if (t->create != &t->create1)
        free(t->create);
    task_dealloc(t);
}

void at__task_unref_internal(at_task_t *t)
{
    assert(t->refs > 0);
    if (--t->refs == 0)
        task_free(t);
}

at_task_t *at_task_ref(at_task_t *t)
{
    t->refs++;
    return t;
}

void at_task_unref(at_task_t *t)
{
    if (t)
        at__task_unref_internal(t);
}

void at__task_unlink(at_task_t *t)
{
    tloop_t *tl = t->tl;
    AT__DLIST_UNLINK_TAIL(tl->head, tl->tail, t, prev, next);
    if (AT__UNLIKELY(tl->unposted == t))
        tl->unposted = t->next; /* the tasks after it are deferred too */
    t->prev = t->next = NULL;
    tl->ntasks--;
    at__task_stack_forget(t);
}

/* The function on the task's own stack. */
AT__AWAIT_TEXT static void task_main(void *arg)
{
    at_task_t *t = arg;
    if (t->cancel_pending) { /* cancelled before it ever ran: the body does not run */
        t->cancel_pending = false;
        t->rc = AT_ECANCELED;
        return;
    }
    t->rc = t->fn(t->arg, &t->result);
}

static void step_name_detach(at_task_t *t);

/* The task's function returned: complete its future, give its stack back. */
void at__task_finish(at_task_t *t)
{
    step_name_detach(t);
    at__coro_destroy(t->co);
    t->co = NULL;
    t->finishing = true;
    int rc = t->rc;
    if (rc == 0) {
        t->state = AT_TASK_DONE;
        at_future_set_result(t->fut, t->result, NULL);
    } else if (rc == AT_ECANCELED && !t->raised) {
        t->state = AT_TASK_CANCELLED;
        at_future_cancel(t->fut, t->cancel_msg);
    } else {
        t->state = AT_TASK_FAILED;
        at_error_t *err = t->raised;
        t->raised = NULL;
        if (!err || at_error_code(err) != rc) {
            at_error_unref(err);
            err = at_error_new(rc, NULL, "task '%s' returned %s", t->name, at_err_name(rc));
        }
        at_future_set_error(t->fut, err);
    }
    t->ended = true;
    at__task_unlink(t);
    /* A failed task stays in the inspector's table until its last reference goes (its
     * error may still be unread); a cancelled one shows its end state once. */
    if (t->state == AT_TASK_DONE) {
        at__task_post(t, AT_EXPORT_TASK_REMOVED);
    } else {
        at__task_post(t, AT_EXPORT_TASK_CHANGED);
        if (t->state == AT_TASK_CANCELLED)
            at__task_post(t, AT_EXPORT_TASK_REMOVED);
    }
    if (t->state == AT_TASK_FAILED) {
        /* Until its last reference goes: reported at loop close if unread. */
        AT__DLIST_PREPEND(t->tl->failed, t, prev, next);
        t->in_failed = true;
    }
    at_task_t *j = t->joiner;
    if (j) {
        /* The joiner learns straight away (no done callback round trip). */
        t->joiner = NULL;
        j->joining = NULL;
        if (j->state == AT_TASK_WAITING)
            at__task_wake(j, 0);
    }
    at__task_unref_internal(t); /* the reference the task held on itself while alive */
}

/* A timed step's callback names its task with a pointer to the task's own name (a copy per
 * step cost more than a tenth of a spawn and join). The task may end, and be freed, before
 * that callback ends (which may report it as slow): when it ends, the callbacks still naming
 * it get this copy instead (see step_name_detach). */
static __thread char step_name[48] __attribute__((tls_model("initial-exec")));

__thread const at_task_t *at__inline_child __attribute__((tls_model("initial-exec")));

/* `t` ends: the running callbacks that name it get step_name's copy of its name. Loop thread,
 * while the loop lives. */
static void step_name_detach(at_task_t *t)
{
    at__mon_t *m = t->loop->mon;
    if (!m || t == at__inline_child)
        return;
    if (at__cb_task_name_replace(m, t->name, step_name))
        memcpy(step_name, t->name, sizeof step_name);
}

/* Adds the task's run of equal-bucket steps to its step histogram (see at_task_t.step_hist):
 * the buckets up to the run's are set to 0 on first use; a bucket that would pass UINT16_MAX
 * halves every bucket and the run (the shape stays). Loop thread. */
void at__task_steps_flush(at_task_t *t)
{
    unsigned i = t->step_run_bucket;
    uint32_t n = t->step_run_n;
    t->step_run_n = 0;
    while (t->step_hist_n <= i)
        t->step_hist[t->step_hist_n++] = 0;
    while (t->step_hist[i] + n > UINT16_MAX) {
        for (unsigned j = 0; j < t->step_hist_n; j++)
            t->step_hist[j] = (uint16_t)((t->step_hist[j] + 1u) / 2u); /* non-empty stays so */
        n = (n + 1) / 2;
    }
    t->step_hist[i] = (uint16_t)(t->step_hist[i] + n);
}

void at__task_busy_settle(tloop_t *tl)
{
    at_task_t *t = tl->open_step.task;
    if (!t)
        return;
    if (t->loop->mon) /* a batch may still hold the step's record back */
        at__mon_pending_flush(t->loop->mon);
    at__site_t *site = tl->open_step.site;
    uint64_t n = atomic_load_explicit(&site->count, memory_order_relaxed);
    if (n == tl->open_step.count)
        return; /* its callback has not ended yet */
    if (n == tl->open_step.count + 1) {
        uint64_t ns =
            atomic_load_explicit(&site->total_ns, memory_order_relaxed) - tl->open_step.total_ns;
        t->busy_ns += ns;
        at__task_step_record(t, ns);
    }
    t->open_step = false;
    tl->open_step.task = NULL;
}

/* Forgets the open step (its task is going, or its callback now belongs to another task). */
void at__task_open_step_drop(tloop_t *tl)
{
    if (tl->open_step.task) {
        tl->open_step.task->open_step = false;
        tl->open_step.task = NULL;
    }
}

/* Makes `t` the task whose step is its loop's callback still running (billed to it when that
 * callback ends, from `site`'s counters as they are now); the previous open step, if any, is
 * dropped. */
void at__task_open_step_set(at_task_t *t, at__site_t *site)
{
    tloop_t *tl = t->tl;
    at__task_open_step_drop(tl);
    tl->open_step.task = t;
    tl->open_step.site = site;
    tl->open_step.count = atomic_load_explicit(&site->count, memory_order_relaxed);
    tl->open_step.total_ns = atomic_load_explicit(&site->total_ns, memory_order_relaxed);
    t->open_step = true;
}

__attribute__((noinline)) void at__task_run(at_task_t *t)
{
    if (AT__UNLIKELY(t->tl->unposted != NULL))
        at__task_posts_flush(t->tl); /* a step from the ready queue: see at__task_post_slow */
    at__task_run_inline(t);
}

void at__task_step_cb(at_loop_t *loop, void *arg)
{
    at_task_t *t = arg;
    t->step = (at_handle_t){0};
    if (!t->ended && t->state != AT_TASK_RUNNING)
        at__task_run(t);
    at__task_unref_internal(t); /* the scheduled step's reference */
}

/* Schedules a step of `t` (soon, FIFO with every other ready callback). */
int at__task_schedule_step(at_task_t *t)
{
    at__slot_t *s = at__slot_new(t->loop, AT__FN_LOOP, AT__CB_TASK_STEP, t, "task step", NULL);
    if (!s)
        return AT_ENOMEM;
    s->fn.cb = at__task_step_cb;
    t->refs++;
    t->state = AT_TASK_READY;
    at__ready_push(t->loop, s);
    t->step = (at_handle_t){s, s->gen};
    return 0;
}

/* Ends the current wait of `t` with `code` and runs it: inline when called
 * from a plain loop callback (a future's done callback, a timer), else
 * (from another task) on a step scheduled soon. */
void at__task_wake(at_task_t *t, int code)
{
    assert(t->state == AT_TASK_WAITING);
    t->wake_code = code;
    t->detach = NULL;
    if (at__coro_current() == NULL && t->loop->mon && t->loop->mon->cur) {
        t->state = AT_TASK_READY;
        t->refs++;
        at__task_run(t);
        at__task_unref_internal(t);
    } else if (at__task_schedule_step(t) != 0) {
        at__log(AT__LOG_ERROR, "task '%s': out of memory scheduling its wake-up", t->name);
    }
}

/* Records the creation site: `st`/`n` if given, else the caller `ra` (and its
 * stack in debug mode). One frame lives inline; a debug-mode stack on the heap,
 * so that a pending task costs as little as possible otherwise. */
void at__task_set_creation(at_task_t *t, void *const *st, size_t n, void *ra)
{
    if (AT__LIKELY(!st && !at__debug_enabled() && t->create == NULL)) {
        t->create = &t->create1; /* what at__capture_site keeps outside debug mode */
        t->create1 = ra;
        t->ncreate = 1;
        return;
    }
    void *tmp[AT_STACK_MAX];
    uint8_t nt = 0;
    if (st) {
        memcpy(tmp, st, n * sizeof(void *));
        nt = (uint8_t)n;
    } else {
        at__capture_site(tmp, &nt, ra);
    }
    if (t->create && t->create != &t->create1)
        free(t->create);
    t->create = &t->create1;
    t->ncreate = 0;
    if (nt > 1) {
        void **heap = malloc(nt * sizeof(void *));
        if (heap) {
            memcpy(heap, tmp, nt * sizeof(void *));
            t->create = heap;
            t->ncreate = nt;
            return;
        }
    }
    if (nt >= 1) {
        t->create1 = tmp[0];
        t->ncreate = 1;
    }
}

/* Frees a task that never started (spawn's error paths). */
static void task_discard(at_task_t *t)
{
    if (t->create && t->create != &t->create1)
        free(t->create);
    task_dealloc(t);
}

/* The last default name this thread made: ids are consecutive within a thread, so the
 * next one is usually this one's digits plus one (a carry, no division). */
static __thread char last_name[32] __attribute__((tls_model("initial-exec")));
static __thread uint64_t last_name_id __attribute__((tls_model("initial-exec")));
static __thread uint8_t last_name_len __attribute__((tls_model("initial-exec")));

/* "task-<id>" without printf (spawn is a hot path); `out` holds at least 32 bytes. */
static void default_name(char *out, uint64_t id)
{
    if (AT__LIKELY(last_name_id != 0 && id == last_name_id + 1)) {
        int i = last_name_len - 1;
        while (i >= 5 && last_name[i] == '9')
            last_name[i--] = '0';
        if (AT__LIKELY(i >= 5)) {
            last_name[i]++;
            last_name_id = id;
            memcpy(out, last_name, 32);
            return;
        }
        /* all nines: one more digit, made below */
    }
    char digits[24];
    int n = 0;
    uint64_t v = id;
    do {
        digits[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    memcpy(out, "task-", 5);
    for (int i = 0; i < n; i++)
        out[5 + i] = digits[n - 1 - i];
    out[5 + n] = '\0';
    memset(last_name, 0, sizeof last_name);
    memcpy(last_name, out, 5 + (size_t)n);
    last_name_len = (uint8_t)(5 + n);
    last_name_id = id;
}

int at_task_spawn(at_loop_t *loop, at_task_fn fn, void *arg, const at_task_opts_t *opts,
                  at_task_t **out)
{
    assert(loop && fn);
    AT__CHECK_THREAD(loop, "at_task_spawn");
    if (atomic_load_explicit(&loop->closing, memory_order_relaxed))
        return AT_ECLOSING;
    tloop_t *tl = at__tloop_find(loop, true);
    at_task_t *t = tl ? task_alloc() : NULL;
    if (!t)
        return AT_ENOMEM;
    /* An opaque size makes this a call to libc's memset: the inline `rep stos`
     * the compiler picks for a constant size is far slower on this path. */
    size_t zero = offsetof(at_task_t, name);
    __asm__("" : "+r"(zero));
    memset(t, 0, zero);
    t->loop = loop;
    t->tl = tl;
    t->fn = fn;
    t->arg = arg;
    t->id = task_id_next();
    if (opts && opts->name)
        snprintf(t->name, sizeof t->name, "%s", opts->name);
    else
        default_name(t->name, t->id);
    t->create = NULL;
    at__task_set_creation(t, NULL, 0, __builtin_return_address(0));
    int rc = at_future_new(loop, &t->fut);
    if (rc != 0) {
        task_discard(t);
        return rc;
    }
    at__coro_opts_t co = {
        .stack_size = opts ? opts->stack_size : 0, .name = t->name, .id = t->id, .user = t};
    rc = at__coro_create(&t->co, task_main, t, &co);
    if (rc != 0) {
        at_future_unref(t->fut);
        task_discard(t);
        return rc == -ENOMEM ? AT_ENOMEM : rc;
    }
    t->site = at__loop_site(loop, (void *)fn, NULL);
    if (at__cur_task)
        t->parent_id = at__cur_task->id;
    at__future_set_cancel_hook(t->fut, at__task_fut_cancel_hook, t);
    t->refs = 1; /* held by the task itself until it ends */
    t->state = AT_TASK_CREATED;
    AT__DLIST_APPEND(tl->head, tl->tail, t, prev, next);
    tl->ntasks++;
    {
        at__mon_t *m = loop->mon;
        t->created_ns = m && m->cur ? m->cur->start_ns : at__now_ns();
    }
    rc = at__task_schedule_step(t);
    t->state = AT_TASK_CREATED;
    if (rc != 0) {
        at__task_unlink(t);
        at__coro_destroy(t->co);
        at_future_unref(t->fut);
        task_discard(t);
        return rc;
    }
    at__task_post(t, AT_EXPORT_TASK_ADDED);
    if (out)
        *out = at_task_ref(t);
    return 0;
}

at_future_t *at_task_future(at_task_t *t)
{
    return t->fut;
}

at_task_t *at_task_current(void)
{
    return at__cur_task;
}

at_task_t *at__task_current(void)
{
    return at__coro_current() ? at__cur_task : NULL;
}

at_loop_t *at__task_loop(const at_task_t *t)
{
    return t->loop;
}

at_loop_t *at_task_loop(const at_task_t *t)
{
    return t->loop;
}

int at_task_raise_at(void *pc, int code, const char *fmt, ...)
{
    at_task_t *t = at__task_current();
    if (!t)
        return code;
    va_list ap;
    va_start(ap, fmt);
    at_error_t *e = at_error_newv(code, NULL, fmt, ap);
    va_end(ap);
    if (e->is_static)
        return code;
    /* The raise site is the statement in the caller (`pc`, a label there; +1
     * because symbolisers look up return addresses at addr-1), then the
     * callers captured by at_error_newv, without our own frame and the
     * caller's (already represented by pc). */
    void *ra = __builtin_return_address(0);
    size_t k = 0;
    while (k < e->nstack && e->stack[k] != ra)
        k++;
    k = k < e->nstack ? k + 1 : (e->nstack > 0 ? 1 : 0);
    void *st[AT_STACK_MAX];
    size_t n = 0;
    st[n++] = (char *)pc + 1;
    for (size_t i = k; i < e->nstack && n < AT_STACK_MAX; i++)
        st[n++] = e->stack[i];
    memcpy(e->stack, st, n * sizeof(void *));
    e->nstack = (uint8_t)n;
    at_error_unref(t->raised);
    t->raised = e;
    return code;
}
