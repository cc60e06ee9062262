/* task.c: tasks — coroutines scheduled on an at_loop_t, completing a future,
 * with cancellation, await points, per-task state and asyncio's reports. */
#include "tasks.h"
#include "at_wire.h" /* at_wire_hist_index: the step histogram's buckets are the wire's */
#include "stack_pool.h"

#include <assert.h>
#include <dlfcn.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct at_coro {
    at_loop_t *loop;
    tloop_t *tl;
    at_task_fn fn;
    void *arg;
    size_t stack_size;
    bool named;
    uint8_t ncreate;
    struct at_coro *prev, *next;
    char name[48];
    void *create[AT_STACK_MAX];
};

static __thread tloop_t *tloops __attribute__((tls_model("initial-exec")));
static __thread at_task_t *current_task __attribute__((tls_model("initial-exec")));
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

/* ---- stack bounds for loopmon, and close-time hook ------------------------ */

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
    if (!at__stack_lookup((const void *)addr, &f) || f.in_guard) {
        return false;
    }
    *lo = (uintptr_t)f.stack_lo;
    *hi = (uintptr_t)f.stack_hi;
    return true;
}

static void tasks_unwind(at_loop_t *loop);
static void tasks_close(at_loop_t *loop);

__attribute__((constructor)) static void tasks_init(void)
{
    at__coro_set_switch_hook(on_switch);
    at__stack_resolver_set(coro_stack_resolve);
    at__tasks_unwind_hook = tasks_unwind;
    at__tasks_close_hook = tasks_close;
}

static void fut_cancel_hook(at_future_t *fut, void *arg);
static void task_wake(at_task_t *t, int code);

static tloop_t *tloop_find(at_loop_t *loop, bool create)
{
    for (tloop_t *t = tloops; t; t = t->next) {
        if (t->loop == loop) {
            return t;
        }
    }
    if (!create) {
        return NULL;
    }
    tloop_t *t = calloc(1, sizeof *t);
    if (t) {
        t->loop = loop;
        t->next = tloops;
        tloops = t;
        at__task_export_attach(t);
    }
    return t;
}

/* ---- reports ------------------------------------------------------------------ */

/* Logs a multi-line report and posts it as an event of `kind`; `err` (NULL: none) is the error
 * reported, whose code and domain the event carries. */
static void report(at_loop_t *loop, at__event_kind_t kind, const char *code, const at_error_t *err,
                   const char *title, const char *detail, const char *obj_name, uint64_t task_id,
                   const char *label1, void *const *st1, size_t n1, const char *label2,
                   void *const *st2, size_t n2)
{
    if (loop->mon) {
        at__event_t ev;
        at__event_init(&ev, kind);
        snprintf(ev.code, sizeof ev.code, "%s", code);
        if (err)
            at__event_set_error(&ev, at_error_code(err), at_error_domain(err));
        snprintf(ev.name, sizeof ev.name, "%s", obj_name);
        snprintf(ev.task_name, sizeof ev.task_name, "%s", obj_name);
        snprintf(ev.text, sizeof ev.text, "%s%s%s", title, detail ? ": " : "",
                 detail ? detail : "");
        ev.task_id = task_id;
        ev.nstack = (uint8_t)(n1 > AT__EV_STACK_MAX ? AT__EV_STACK_MAX : n1);
        memcpy(ev.stack, st1, ev.nstack * sizeof(void *));
        ev.nstack2 = (uint8_t)(n2 > AT__EV_STACK_MAX ? AT__EV_STACK_MAX : n2);
        if (n2) {
            memcpy(ev.stack2, st2, ev.nstack2 * sizeof(void *));
        }
        at__mon_post(loop->mon, &ev);
    }
    char buf[8192];
    size_t pos = 0;
    int w = snprintf(buf, sizeof buf, "%s\n%s%s%s:\n", title, detail ? detail : "",
                     detail ? "\n" : "", label1);
    if (w > 0) {
        pos = (size_t)w;
    }
    at__format_stack(buf, sizeof buf, &pos, st1, n1);
    if (label2) {
        w = snprintf(pos < sizeof buf ? buf + pos : NULL, pos < sizeof buf ? sizeof buf - pos : 0,
                     "%s:\n", label2);
        if (w > 0) {
            pos += (size_t)w;
        }
        at__format_stack(buf, sizeof buf, &pos, st2, n2);
    }
    buf[sizeof buf - 1] = '\0';
    at__log_long(kind == AT__EV_ERROR ? AT__LOG_ERROR : AT__LOG_WARNING, buf);
}

static void report_never_retrieved(at_task_t *t)
{
    at_future_t *f = t->fut;
    at_error_t *e = f->err;
    char detail[400];
    snprintf(detail, sizeof detail,
             "task: <Task failed name='%s' id=%" PRIu64 ">\nerror: %s (%s): %s", t->name, t->id,
             at_err_name(e->code), e->domain, at_error_message(e));
    report(t->loop, AT__EV_ERROR, "task_never_retrieved", e, "Task exception was never retrieved",
           detail, t->name, t->id, "Task created at (most recent call first)", t->create,
           t->ncreate, "Error raised at (most recent call first)", e->stack, e->nstack);
    atomic_fetch_add_explicit(&at__count_never_retrieved, 1, memory_order_relaxed);
    at_future_mark_retrieved(f);
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

static void failed_unlink(at_task_t *t)
{
    if (t->prev) {
        t->prev->next = t->next;
    } else {
        t->tl->failed = t->next;
    }
    if (t->next) {
        t->next->prev = t->prev;
    }
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
        failed_unlink(t);
    }
    if (t->fut->state == AT_FUTURE_FAILED && !t->fut->retrieved && t->fut->refs == 1) {
        report_never_retrieved(t);
    }
    at_future_unref(t->fut);
    at_error_unref(t->raised);
    if (t->create != &t->create1) {
        free(t->create);
    }
    task_dealloc(t);
}

static void task_unref_internal(at_task_t *t)
{
    assert(t->refs > 0);
    if (--t->refs == 0) {
        task_free(t);
    }
}

at_task_t *at_task_ref(at_task_t *t)
{
    t->refs++;
    return t;
}

void at_task_unref(at_task_t *t)
{
    if (t) {
        task_unref_internal(t);
    }
}

static void unlink_task(at_task_t *t)
{
    tloop_t *tl = t->tl;
    if (t->prev) {
        t->prev->next = t->next;
    } else {
        tl->head = t->next;
    }
    if (t->next) {
        t->next->prev = t->prev;
    } else {
        tl->tail = t->prev;
    }
    if (AT__UNLIKELY(tl->unposted == t)) {
        tl->unposted = t->next; /* the tasks after it are deferred too */
    }
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
static void task_finish(at_task_t *t)
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
    unlink_task(t);
    /* A failed task stays in the inspector's table until its last reference goes (its
     * error may still be unread); a cancelled one shows its end state once. */
    if (t->state == AT_TASK_DONE) {
        at__task_post(t, AT_EXPORT_TASK_REMOVED);
    } else {
        at__task_post(t, AT_EXPORT_TASK_CHANGED);
        if (t->state == AT_TASK_CANCELLED) {
            at__task_post(t, AT_EXPORT_TASK_REMOVED);
        }
    }
    if (t->state == AT_TASK_FAILED) {
        /* Until its last reference goes: reported at loop close if unread. */
        t->next = t->tl->failed;
        if (t->next) {
            t->next->prev = t;
        }
        t->tl->failed = t;
        t->in_failed = true;
    }
    at_task_t *j = t->joiner;
    if (j) {
        /* The joiner learns straight away (no done callback round trip). */
        t->joiner = NULL;
        j->joining = NULL;
        if (j->state == AT_TASK_WAITING) {
            task_wake(j, 0);
        }
    }
    task_unref_internal(t); /* the reference the task held on itself while alive */
}

/* A timed step's callback names its task with a pointer to the task's own name (a copy per
 * step cost more than a tenth of a spawn and join). The task may end, and be freed, before
 * that callback ends (which may report it as slow): when it ends, the callbacks still naming
 * it get this copy instead (see step_name_detach). */
static __thread char step_name[48] __attribute__((tls_model("initial-exec")));

/* The task join_inline runs: its step's callback goes on as the joiner's, which names the
 * joiner right after (nothing reads the name between): its end needs no copy. */
static __thread const at_task_t *inline_child __attribute__((tls_model("initial-exec")));

/* `t` ends: the running callbacks that name it get step_name's copy of its name. Loop thread,
 * while the loop lives. */
static void step_name_detach(at_task_t *t)
{
    at__mon_t *m = t->loop->mon;
    if (!m || t == inline_child) {
        return;
    }
    for (at__cb_t *cb = m->cur; cb; cb = cb->parent) {
        if (cb->task_name == t->name) {
            memcpy(step_name, t->name, sizeof step_name);
            cb->task_name = step_name;
        }
    }
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

/* Counts one step of `ns`. A task's steps mostly fall in one bucket: they are counted as a
 * run in the task's first cache line, and the histogram at the struct's end is touched only
 * when the bucket changes. No allocation. Loop thread. */
_Static_assert(AT_EXPORT_STEP_HIST_N <= UINT8_MAX, "step_run_bucket is a uint8_t");
static inline void step_record(at_task_t *t, uint64_t ns)
{
    unsigned i = at_wire_hist_index(ns);
    i = i < AT_EXPORT_STEP_HIST_LO ? 0 : i - AT_EXPORT_STEP_HIST_LO;
    if (i >= AT_EXPORT_STEP_HIST_N)
        i = AT_EXPORT_STEP_HIST_N - 1;
    if (t->step_run_n != 0 && (i != t->step_run_bucket || t->step_run_n == UINT16_MAX))
        at__task_steps_flush(t);
    t->step_run_bucket = (uint8_t)i;
    t->step_run_n++;
}

void at__task_busy_settle(tloop_t *tl)
{
    at_task_t *t = tl->open_step.task;
    if (!t) {
        return;
    }
    if (t->loop->mon) /* a batch may still hold the step's record back */
        at__mon_pending_flush(t->loop->mon);
    at__site_t *site = tl->open_step.site;
    uint64_t n = atomic_load_explicit(&site->count, memory_order_relaxed);
    if (n == tl->open_step.count) {
        return; /* its callback has not ended yet */
    }
    if (n == tl->open_step.count + 1) {
        uint64_t ns =
            atomic_load_explicit(&site->total_ns, memory_order_relaxed) - tl->open_step.total_ns;
        t->busy_ns += ns;
        step_record(t, ns);
    }
    t->open_step = false;
    tl->open_step.task = NULL;
}

/* Forgets the open step (its task is going, or its callback now belongs to another task). */
static void open_step_drop(tloop_t *tl)
{
    if (tl->open_step.task) {
        tl->open_step.task->open_step = false;
        tl->open_step.task = NULL;
    }
}

/* Makes `t` the task whose step is its loop's callback still running (billed to it when that
 * callback ends, from `site`'s counters as they are now); the previous open step, if any, is
 * dropped. */
static inline void open_step_set(at_task_t *t, at__site_t *site)
{
    tloop_t *tl = t->tl;
    open_step_drop(tl);
    tl->open_step.task = t;
    tl->open_step.site = site;
    tl->open_step.count = atomic_load_explicit(&site->count, memory_order_relaxed);
    tl->open_step.total_ns = atomic_load_explicit(&site->total_ns, memory_order_relaxed);
    t->open_step = true;
}

/* Runs one step of `t` on this thread's stack: switch in, until it awaits or
 * ends. Called from a loop callback (whose timing we attribute to the task).
 * Always inlined into its callers on the spawn/join path: every return from a frame that
 * was live across a context switch is mispredicted (the return stack buffer holds the other
 * stack's addresses), so each frame fewer between the switch and the application is a
 * mispredict fewer per task. task_run is the out-of-line copy for the other callers. */
static inline __attribute__((always_inline)) void task_run_inline(at_task_t *t)
{
    at__mon_t *m = t->loop->mon;
    tloop_t *tl = t->tl;
    if (tl->open_step.task) {
        at__task_busy_settle(tl);
    }
    bool timed = false; /* the step's time is its callback's (no clock read of our own) */
    if (m && m->cur) {
        /* This callback is the task's step: time it under the task's function
         * and name, so a slow step names the task. */
        at__cb_t *cb = m->cur;
        if (cb->task_id != t->id) { /* not begun as this task's step already */
            cb->kind = AT__CB_TASK_STEP;
            cb->task_id = t->id;
            cb->task_name = t->name;
            if (t->site) {
                cb->site = t->site;
            }
            /* The task's id only: a reader names the task from the exporter's task table
             * (the name's copy into the seqlocked record cost a quarter of a step). */
            at__running_publish(&m->running, cb->site, cb->start_ns, t->id, NULL, AT__CB_TASK_STEP);
        }
        /* The callback is still running (the step of another task that ended in it, or of
         * this one): its time is this step's, billed when it ends. */
        open_step_set(t, cb->site);
        timed = true;
    }
    t->state = AT_TASK_RUNNING;
    t->steps++;
    at_task_t *prev = current_task;
    current_task = t;
    uint64_t t0 = timed ? 0 : at__now_ns();
    at__coro_resume(t->co);
    if (!timed) {
        uint64_t t1 = at__now_ns(), ns = t1 > t0 ? t1 - t0 : 0;
        t->busy_ns += ns;
        step_record(t, ns);
    }
    current_task = prev;
    if (at__coro_state(t->co) == AT__CORO_DONE) {
        task_finish(t);
    }
}

static __attribute__((noinline)) void task_run(at_task_t *t)
{
    if (AT__UNLIKELY(t->tl->unposted != NULL)) {
        at__task_posts_flush(t->tl); /* a step from the ready queue: see at__task_post_slow */
    }
    task_run_inline(t);
}

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
    cb->task_name = t->name;
    open_step_set(t, site);
    t->steps++;
}

static void step_cb(at_loop_t *loop, void *arg)
{
    at_task_t *t = arg;
    t->step = (at_handle_t){0};
    if (!t->ended && t->state != AT_TASK_RUNNING) {
        task_run(t);
    }
    task_unref_internal(t); /* the scheduled step's reference */
}

/* Schedules a step of `t` (soon, FIFO with every other ready callback). */
static int schedule_step(at_task_t *t)
{
    at__slot_t *s = at__slot_get(t->loop);
    if (!s) {
        return AT_ENOMEM;
    }
    s->fn_kind = AT__FN_LOOP;
    s->cb_kind = AT__CB_TASK_STEP;
    s->fn.cb = step_cb;
    s->arg = t;
    s->name = "task step";
    s->fut = NULL;
    s->nstack = 0;
    t->refs++;
    t->state = AT_TASK_READY;
    at__ready_push(t->loop, s);
    t->step = (at_handle_t){s, s->gen};
    return 0;
}

/* Ends the current wait of `t` with `code` and runs it: inline when called
 * from a plain loop callback (a future's done callback, a timer), else
 * (from another task) on a step scheduled soon. */
static void task_wake(at_task_t *t, int code)
{
    assert(t->state == AT_TASK_WAITING);
    t->wake_code = code;
    t->detach = NULL;
    if (at__coro_current() == NULL && t->loop->mon && t->loop->mon->cur) {
        t->state = AT_TASK_READY;
        t->refs++;
        task_run(t);
        task_unref_internal(t);
    } else if (schedule_step(t) != 0) {
        at__log(AT__LOG_ERROR, "task '%s': out of memory scheduling its wake-up", t->name);
    }
}

/* Records the creation site: `st`/`n` if given, else the caller `ra` (and its
 * stack in debug mode). One frame lives inline; a debug-mode stack on the heap,
 * so that a pending task costs as little as possible otherwise. */
static void set_creation(at_task_t *t, void *const *st, size_t n, void *ra)
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
    if (t->create && t->create != &t->create1) {
        free(t->create);
    }
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
    if (t->create && t->create != &t->create1) {
        free(t->create);
    }
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
        while (i >= 5 && last_name[i] == '9') {
            last_name[i--] = '0';
        }
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
    for (int i = 0; i < n; i++) {
        out[5 + i] = digits[n - 1 - i];
    }
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
    if (atomic_load_explicit(&loop->closing, memory_order_relaxed)) {
        return AT_ECLOSING;
    }
    tloop_t *tl = tloop_find(loop, true);
    at_task_t *t = tl ? task_alloc() : NULL;
    if (!t) {
        return AT_ENOMEM;
    }
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
    if (opts && opts->name) {
        snprintf(t->name, sizeof t->name, "%s", opts->name);
    } else {
        default_name(t->name, t->id);
    }
    t->create = NULL;
    set_creation(t, NULL, 0, __builtin_return_address(0));
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
    if (current_task) {
        t->parent_id = current_task->id;
    }
    at__future_set_cancel_hook(t->fut, fut_cancel_hook, t);
    t->refs = 1; /* held by the task itself until it ends */
    t->state = AT_TASK_CREATED;
    t->prev = tl->tail;
    if (tl->tail) {
        tl->tail->next = t;
    } else {
        tl->head = t;
    }
    tl->tail = t;
    tl->ntasks++;
    {
        at__mon_t *m = loop->mon;
        t->created_ns = m && m->cur ? m->cur->start_ns : at__now_ns();
    }
    rc = schedule_step(t);
    t->state = AT_TASK_CREATED;
    if (rc != 0) {
        unlink_task(t);
        at__coro_destroy(t->co);
        at_future_unref(t->fut);
        task_discard(t);
        return rc;
    }
    at__task_post(t, AT_EXPORT_TASK_ADDED);
    if (out) {
        *out = at_task_ref(t);
    }
    return 0;
}

at_future_t *at_task_future(at_task_t *t)
{
    return t->fut;
}

at_task_t *at_task_current(void)
{
    return current_task;
}

at_task_t *at__task_current(void)
{
    return at__coro_current() ? current_task : NULL;
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
    if (!t) {
        return code;
    }
    va_list ap;
    va_start(ap, fmt);
    at_error_t *e = at_error_newv(code, NULL, fmt, ap);
    va_end(ap);
    if (e->is_static) {
        return code;
    }
    /* The raise site is the statement in the caller (`pc`, a label there; +1
     * because symbolisers look up return addresses at addr-1), then the
     * callers captured by at_error_newv, without our own frame and the
     * caller's (already represented by pc). */
    void *ra = __builtin_return_address(0);
    size_t k = 0;
    while (k < e->nstack && e->stack[k] != ra) {
        k++;
    }
    k = k < e->nstack ? k + 1 : (e->nstack > 0 ? 1 : 0);
    void *st[AT_STACK_MAX];
    size_t n = 0;
    st[n++] = (char *)pc + 1;
    for (size_t i = k; i < e->nstack && n < AT_STACK_MAX; i++) {
        st[n++] = e->stack[i];
    }
    memcpy(e->stack, st, n * sizeof(void *));
    e->nstack = (uint8_t)n;
    at_error_unref(t->raised);
    t->raised = e;
    return code;
}

/* ---- waiting ---------------------------------------------------------------------- */

/* Suspends the running task until task_wake; returns the wake code. */
AT__AWAIT_TEXT static int task_suspend(at_task_t *t, at_wait_kind_t kind, uint64_t id,
                                       detach_fn detach)
{
    t->state = AT_TASK_WAITING;
    t->wait_kind = (uint8_t)kind;
    t->wait_id = id;
    t->wait_since_ms = at_loop_time(t->loop);
    t->wake_code = 0;
    t->detach = detach;
    if (kind != AT_WAIT_YIELD) { /* a yield is ready again at once: nothing to show */
        at__task_post(t, AT_EXPORT_TASK_CHANGED);
    }
    at__coro_yield();
    t->wait_kind = AT_WAIT_NONE;
    t->wait_id = 0;
    t->detach = NULL;
    return t->wake_code;
}

static bool take_cancel(at_task_t *t)
{
    if (t->cancel_pending) {
        t->cancel_pending = false;
        return true;
    }
    return false;
}

static void wake_on_done(at_future_t *fut, void *arg)
{
    at_task_t *t = arg;
    if (!t->ended && t->state == AT_TASK_WAITING && t->waiting_on == fut) {
        t->waiting_on = NULL;
        if (t->timer.slot_) {
            at_handle_cancel(t->loop, t->timer);
            t->timer = (at_handle_t){0};
        }
        task_wake(t, 0);
    }
    task_unref_internal(t); /* the done callback's reference */
}

static void wake_on_timer(at_loop_t *loop, void *arg)
{
    at_task_t *t = arg;
    t->timer = (at_handle_t){0};
    if (!t->ended && t->state == AT_TASK_WAITING) {
        if (t->waiting_on) {
            size_t removed = at_future_remove_done_callback(t->waiting_on, wake_on_done, t);
            t->waiting_on = NULL;
            while (removed--) {
                task_unref_internal(t);
            }
            task_wake(t, AT_ETIMEDOUT);
        } else {
            task_wake(t, 0); /* at_sleep */
        }
    }
}

static bool detach_future(at_task_t *t)
{
    if (t->waiting_on) {
        size_t removed = at_future_remove_done_callback(t->waiting_on, wake_on_done, t);
        t->waiting_on = NULL;
        while (removed--) {
            task_unref_internal(t);
        }
    }
    if (t->timer.slot_) {
        at_handle_cancel(t->loop, t->timer);
        t->timer = (at_handle_t){0};
    }
    return true;
}

AT__AWAIT_TEXT static int await_impl(at_future_t *fut, uint64_t timeout_ms, void **value,
                                     at_wait_kind_t kind, uint64_t id)
{
    at_task_t *t = at__task_current();
    if (!t) {
        return AT_EINVALSTATE;
    }
    if (take_cancel(t)) {
        return AT_ECANCELED;
    }
    if (!at_future_done(fut)) {
        int rc = at_future_add_done_callback(fut, wake_on_done, t, "task wake-up");
        if (rc != 0) {
            return rc;
        }
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
        if (rc != 0) {
            return rc;
        }
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
        s->gen != task->step.gen_ || !at__ready_take_sole(t->loop, s)) {
        return 0;
    }
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
    t->state = AT_TASK_WAITING;
    t->wait_kind = (uint8_t)AT_WAIT_TASK;
    t->wait_id = task->id;
    t->wait_since_ms = at_loop_time(t->loop);
    t->wake_code = 0;
    t->detach = detach_join_inline;
    const at_task_t *outer_child = inline_child;
    inline_child = task;
    task_run_inline(task);
    inline_child = outer_child;
    task_unref_internal(task); /* the scheduled step's reference (the joiner holds one) */
    t->wait_kind = AT_WAIT_NONE;
    t->wait_id = 0;
    t->detach = NULL;
    *code = t->wake_code;
    t->state = AT_TASK_RUNNING;
    if (task->ended) {
        /* The joiner goes on in this callback, as task_wake's inline run would. */
        if (cb->task_id != t->id) {
            cb->task_id = t->id;
            cb->task_name = t->name;
            if (t->site) {
                cb->site = t->site;
            }
            at__running_publish(&m->running, cb->site, cb->start_ns, t->id, NULL, AT__CB_TASK_STEP);
        }
        open_step_set(t, cb->site);
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
    if (!t) {
        return AT_EINVALSTATE;
    }
    if (t == task) {
        return AT_EDEADLK;
    }
    if (task->state == AT_TASK_CREATED && !task->joiner && !t->cancel_pending) {
        int code;
        if (join_inline(t, task, &code)) {
            if (code != 0) {
                return code;
            }
            if (task->ended) {
                return at_future_result(task->fut, result);
            }
        }
    }
    if (task->ended || task->joiner) {
        /* Ended, or someone else is the direct joiner: through the future. */
        return await_impl(task->fut, UINT64_MAX, result, AT_WAIT_TASK, task->id);
    }
    if (take_cancel(t)) {
        return AT_ECANCELED;
    }
    task->joiner = t;
    t->joining = task;
    int rc = task_suspend(t, AT_WAIT_TASK, task->id, detach_join);
    if (rc != 0) {
        return rc;
    }
    return at_future_result(task->fut, result);
}

AT__AWAIT_TEXT int at_gather(at_future_t *const *futs, size_t n, at_error_t **first_error)
{
    at_task_t *t = at__task_current();
    if (!t) {
        return AT_EINVALSTATE;
    }
    if (first_error) {
        *first_error = NULL;
    }
    for (size_t i = 0; i < n; i++) {
        int rc = at_await(futs[i], NULL);
        if (rc == AT_ECANCELED && !at_future_done(futs[i])) {
            /* We were cancelled: so are the children (as asyncio.gather). */
            for (size_t j = i; j < n; j++) {
                at_future_cancel(futs[j], "gather was cancelled");
            }
            return AT_ECANCELED;
        }
    }
    int first = 0;
    for (size_t i = 0; i < n; i++) {
        int rc = at_future_result(futs[i], NULL);
        if (rc != 0 && first == 0) {
            first = rc;
            at_error_t *e = at_future_error(futs[i]);
            if (e && first_error) {
                *first_error = at_error_ref(e);
            }
        }
        at_future_mark_retrieved(futs[i]);
    }
    return first;
}

static bool detach_timer(at_task_t *t)
{
    if (t->timer.slot_) {
        at_handle_cancel(t->loop, t->timer);
        t->timer = (at_handle_t){0};
    }
    return true;
}

AT__AWAIT_TEXT int at_sleep(uint64_t ms)
{
    at_task_t *t = at__task_current();
    if (!t) {
        return AT_EINVALSTATE;
    }
    if (take_cancel(t)) {
        return AT_ECANCELED;
    }
    int rc = at_call_later(t->loop, ms, wake_on_timer, t, "task sleep", &t->timer);
    if (rc != 0) {
        return rc;
    }
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
    if (!t) {
        return AT_EINVALSTATE;
    }
    if (take_cancel(t)) {
        return AT_ECANCELED;
    }
    at__mon_t *m = t->loop->mon;
    if (m && m->cur && !m->cur->parent && m->cur->task_id == t->id &&
        at__ready_next_inline(t->loop)) {
        step_restart(t, m, m->cur->site); /* the task's (task_run set it) */
        return 0;
    }
    int rc = schedule_step(t);
    if (rc != 0) {
        return rc;
    }
    rc = task_suspend(t, AT_WAIT_YIELD, 0, detach_yield);
    return rc;
}

/* The woken step of a yield finds the task READY (schedule_step set it) but
 * task_suspend set WAITING afterwards: step_cb accepts both. */

bool at_task_cancel(at_task_t *t, const char *msg)
{
    if (t->ended) {
        return false;
    }
    t->cancel_msg = msg;
    if (t->state == AT_TASK_WAITING) {
        detach_fn d = t->detach;
        bool schedule = d ? d(t) : true;
        t->wake_code = AT_ECANCELED;
        t->detach = NULL;
        if (schedule) {
            if (schedule_step(t) != 0) {
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

static void fut_cancel_hook(at_future_t *fut, void *arg)
{
    at_task_t *t = arg;
    if (!t->finishing) {
        at_task_cancel(t, fut->cancel_msg);
    }
}

/* ---- wait queues for the primitives -------------------------------------------------- */

void at__waitq_push(at__waitq_t *q, at__waiter_t *w)
{
    w->next = NULL;
    w->prev = q->tail;
    if (q->tail) {
        q->tail->next = w;
    } else {
        q->head = w;
    }
    q->tail = w;
    q->n++;
}

void at__waitq_remove(at__waitq_t *q, at__waiter_t *w)
{
    if (w->prev) {
        w->prev->next = w->next;
    } else {
        q->head = w->next;
    }
    if (w->next) {
        w->next->prev = w->prev;
    } else {
        q->tail = w->prev;
    }
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
    if (!t) {
        return AT_EINVALSTATE;
    }
    if (take_cancel(t)) {
        return AT_ECANCELED;
    }
    w->task = t;
    at__waitq_push(q, w);
    t->wq = q;
    t->waiter = w;
    return task_suspend(t, kind, id, detach_waitq);
}

bool at__waitq_wake_one(at__waitq_t *q, void *value)
{
    at__waiter_t *w = q->head;
    if (!w) {
        return false;
    }
    at__waitq_remove(q, w);
    w->value = value;
    at_task_t *t = w->task;
    t->wq = NULL;
    t->waiter = NULL;
    t->detach = NULL;
    t->wake_code = 0;
    if (schedule_step(t) != 0) {
        at__log(AT__LOG_ERROR, "task '%s': out of memory scheduling its wake-up", t->name);
    }
    return true;
}

bool at__waitq_wake_one_now(at__waitq_t *q, void *value)
{
    at__waiter_t *w = q->head;
    if (!w) {
        return false;
    }
    at_task_t *t = w->task;
    at__mon_t *m = t->loop->mon;
    if (at__coro_current() != NULL || !m || m->cur) {
        return at__waitq_wake_one(q, value); /* not from a bare libuv callback */
    }
    at__waitq_remove(q, w);
    w->value = value;
    t->wq = NULL;
    t->waiter = NULL;
    t->detach = NULL;
    t->wake_code = 0;
    t->state = AT_TASK_READY;
    /* Run the step right here, timed as a step of its own (the libuv
     * callback we are in is not timed). */
    at__site_t *site = t->site ? t->site : at__loop_site(t->loop, (void *)step_cb, NULL);
    at__cb_t cb;
    if (site) {
        at__mon_chain_break(m); /* libuv did work since the last callback */
        /* "now running" gets the task's id only (as task_run does); the slow-step event
         * takes the name from cb.task_name. */
        at__cb_begin_full(m, &cb, site, AT__CB_TASK_STEP, t->id, NULL, NULL, 0);
        cb.task_name = t->name;
    }
    t->refs++;
    task_run(t);
    task_unref_internal(t);
    if (site) {
        at__cb_end(m, &cb);
    }
    return true;
}

/* ---- introspection ----------------------------------------------------------------------- */

void at_task_info(const at_task_t *t, at_task_info_t *out)
{
    if (t->open_step) {
        at__task_busy_settle(t->tl);
    }
    memset(out, 0, sizeof *out);
    out->id = t->id;
    out->parent_id = t->parent_id;
    memcpy(out->name, t->name, sizeof out->name);
    out->state = (at_task_state_t)t->state;
    out->wait_kind = (at_wait_kind_t)t->wait_kind;
    out->wait_id = t->wait_id;
    out->wait_since_ms = t->wait_kind ? t->wait_since_ms : 0;
    out->busy_ns = t->busy_ns;
    out->steps = t->steps;
    out->ncreation = t->ncreate;
    memcpy(out->creation, t->create, t->ncreate * sizeof(void *));
}

size_t at_loop_tasks(at_loop_t *loop, void (*visit)(at_task_t *, void *), void *arg)
{
    tloop_t *tl = tloop_find(loop, false);
    if (!tl) {
        return 0;
    }
    if (visit) {
        for (at_task_t *t = tl->head; t; t = t->next) {
            visit(t, arg);
        }
    }
    return tl->ntasks;
}

size_t at_task_suspension_stack(const at_task_t *t, void **frames, size_t max)
{
    if (!t->co || t->ended) {
        return 0;
    }
    at__coro_state_t cs = at__coro_state(t->co);
    if (cs != AT__CORO_SUSPENDED && !(cs == AT__CORO_RUNNING && t->state == AT_TASK_WAITING)) {
        return 0;
    }
    uintptr_t pcs[64];
    int n = at__coro_unwind(t->co, pcs, 64);
    int first = 0, last = n;
    if (cs == AT__CORO_RUNNING) {
        /* Waiting while its coroutine runs: it joined a task that had not started, whose step
         * runs from its stack (join_inline). The walk starts in the resume of that task
         * (at__coro_resume, task_run), under the await machinery of the join: show the
         * application's frames from the one that called at_task_join. */
        while (first < n && !at__coro_pc_is_await_machinery(pcs[first])) {
            first++;
        }
        if (first == n) {
            return 0;
        }
    }
    while (first < n && at__coro_pc_is_await_machinery(pcs[first])) {
        first++;
    }
    while (last > first && at__coro_pc_is_await_machinery(pcs[last - 1])) {
        last--;
    }
    if (first == n) {
        /* Only our frames (the application tail-called the await function):
         * show them rather than nothing, without the entry trampolines. */
        first = 0;
        last = n;
        while (last > 0 && at__coro_pc_is_await_machinery(pcs[last - 1])) {
            last--;
        }
        last = last + 1 < n ? last + 1 : n; /* keep the await function itself */
    }
    size_t k = 0;
    for (int i = first; i < last && k < max; i++) {
        frames[k++] = (void *)pcs[i];
    }
    return k;
}

size_t at_frames_symbolise(void *const *pcs, size_t n, at_frame_t *out)
{
    for (size_t i = 0; i < n; i++) {
        at__sym_t s;
        memset(&out[i], 0, sizeof out[i]);
        out[i].pc = pcs[i];
        if (at__sym_lookup(pcs[i], true, &s) == 0) {
            snprintf(out[i].func, sizeof out[i].func, "%s", s.func);
            snprintf(out[i].file, sizeof out[i].file, "%s", s.file);
            out[i].line = s.line;
        }
    }
    return n;
}

/* ---- deferred coroutine objects ------------------------------------------------------------ */

int at_coro_new(at_loop_t *loop, at_task_fn fn, void *arg, const at_task_opts_t *opts,
                at_coro_t **out)
{
    assert(loop && fn && out);
    AT__CHECK_THREAD(loop, "at_coro_new");
    if (atomic_load_explicit(&loop->closing, memory_order_relaxed)) {
        return AT_ECLOSING;
    }
    tloop_t *tl = tloop_find(loop, true);
    at_coro_t *c = calloc(1, sizeof *c);
    if (!tl || !c) {
        free(c);
        return AT_ENOMEM;
    }
    c->loop = loop;
    c->tl = tl;
    c->fn = fn;
    c->arg = arg;
    c->stack_size = opts ? opts->stack_size : 0;
    if (opts && opts->name) {
        snprintf(c->name, sizeof c->name, "%s", opts->name);
        c->named = true;
    } else {
        Dl_info info;
        if (dladdr((void *)fn, &info) && info.dli_sname) {
            snprintf(c->name, sizeof c->name, "%s", info.dli_sname);
        } else {
            snprintf(c->name, sizeof c->name, "%p", (void *)fn);
        }
    }
    at__capture_site(c->create, &c->ncreate, __builtin_return_address(0));
    c->next = tl->coros;
    if (tl->coros) {
        tl->coros->prev = c;
    }
    tl->coros = c;
    *out = c;
    return 0;
}

static void coro_unlink_free(at_coro_t *c)
{
    if (c->prev) {
        c->prev->next = c->next;
    } else {
        c->tl->coros = c->next;
    }
    if (c->next) {
        c->next->prev = c->prev;
    }
    free(c);
}

static void report_never_awaited(at_coro_t *c, const char *when)
{
    char title[128];
    snprintf(title, sizeof title, "coroutine '%s' was never awaited", c->name);
    report(c->loop, AT__EV_WARNING, "never_awaited", NULL, title, when, c->name, 0,
           "Coroutine created at (most recent call first)", c->create, c->ncreate, NULL, NULL, 0);
}

int at_coro_spawn(at_coro_t *c, at_task_t **out)
{
    at_task_opts_t o = {.name = c->name, .stack_size = c->stack_size};
    int rc = at_task_spawn(c->loop, c->fn, c->arg, &o, out);
    if (rc == 0 && out) {
        /* Its creation site is where the coroutine object was made. */
        set_creation(*out, c->create, c->ncreate, NULL);
    }
    coro_unlink_free(c);
    return rc;
}

int at_coro_await(at_coro_t *c, void **result)
{
    if (!at__task_current()) {
        return AT_EINVALSTATE;
    }
    at_task_fn fn = c->fn;
    void *arg = c->arg;
    coro_unlink_free(c);
    void *r = NULL;
    int rc = fn(arg, &r);
    if (result) {
        *result = r;
    }
    return rc;
}

void at_coro_drop(at_coro_t *c)
{
    if (c) {
        report_never_awaited(c, "dropped without being awaited or spawned");
        coro_unlink_free(c);
    }
}

/* ---- loop close ------------------------------------------------------------------------------ */

/* Unwinding at close, as asyncio.run()'s _cancel_all_tasks: every pending task is cancelled
 * (its await point returns AT_ECANCELED, its cleanup code runs) and the loop runs until those
 * tasks have finished. Bounded: a round ends when all its tasks have ended, or when none of
 * them ended for CLOSE_ROUND_MS; what is still pending then (a task that swallowed the
 * cancellation and awaits again, tasks spawned by cleanup code) is cancelled again in the next
 * round; after CLOSE_ROUNDS rounds the rest is left to tasks_close ("Task was destroyed but it
 * is pending!"). A task that never took its cancellation holds the close CLOSE_ROUNDS *
 * CLOSE_ROUND_MS (300 ms) at most; a thousand tasks that all clean up promptly take one
 * round's steps. */
#define CLOSE_ROUNDS   3
#define CLOSE_ROUND_MS 100

typedef struct unwind_round {
    at_task_t **tasks; /* a reference to each task cancelled in this round */
    size_t n;
    size_t first_pending; /* tasks before it have all ended */
    size_t ended_seen;    /* how many had ended at the last deadline check */
    bool expired;         /* none ended for CLOSE_ROUND_MS: the round is over */
    at_handle_t timer;
} unwind_round_t;

static bool round_done(unwind_round_t *r)
{
    while (r->first_pending < r->n && r->tasks[r->first_pending]->ended) {
        r->first_pending++;
    }
    return r->first_pending == r->n;
}

/* The round's deadline: extended while its tasks keep ending (a thousand tasks unwinding take
 * longer than one task's grace), over when none ended since the last check. */
static void unwind_deadline(at_loop_t *loop, void *arg)
{
    unwind_round_t *r = arg;
    r->timer = (at_handle_t){0};
    size_t ended = 0;
    for (size_t i = 0; i < r->n; i++) {
        ended += r->tasks[i]->ended;
    }
    if (ended > r->ended_seen) {
        r->ended_seen = ended;
        if (at_call_later(loop, CLOSE_ROUND_MS, unwind_deadline, r, "task unwinding at close",
                          &r->timer) == 0) {
            return;
        }
    }
    r->expired = true;
}

/* A task that ended with an error while the close unwound it: reported as asyncio.run()
 * reports it ("unhandled exception during asyncio.run() shutdown"), and marked retrieved, so
 * that it is not reported again as never retrieved. An error whose code is AT_ECANCELED is
 * the cancellation carried on with a message (at_task_raise(AT_ECANCELED, ...)): not an
 * error of the task's, not reported. */
static void report_failed_at_close(at_task_t *t)
{
    at_future_t *f = t->fut;
    at_error_t *e = f->err;
    if (e->code != AT_ECANCELED) {
        char detail[400];
        snprintf(detail, sizeof detail,
                 "task: <Task failed name='%s' id=%" PRIu64 ">\nerror: %s (%s): %s", t->name, t->id,
                 at_err_name(e->code), e->domain, at_error_message(e));
        report(t->loop, AT__EV_ERROR, "unhandled", e,
               "unhandled exception during at_loop_close() shutdown", detail, t->name, t->id,
               "Task created at (most recent call first)", t->create, t->ncreate,
               "Error raised at (most recent call first)", e->stack, e->nstack);
    }
    at_future_mark_retrieved(f);
}

/* Called by at_loop_close before the loop is marked closing (core's at__tasks_unwind_hook):
 * the loop is not running, its thread is this one. */
static void tasks_unwind(at_loop_t *loop)
{
    tloop_t *tl = tloop_find(loop, false);
    for (int round = 0; round < CLOSE_ROUNDS && tl && tl->head; round++) {
        unwind_round_t r = {.n = tl->ntasks};
        r.tasks = malloc(r.n * sizeof *r.tasks);
        if (!r.tasks) {
            at__log(AT__LOG_ERROR,
                    "loop close: out of memory cancelling %zu pending tasks; they are destroyed "
                    "without unwinding",
                    r.n);
            return;
        }
        size_t k = 0;
        for (at_task_t *t = tl->head; t && k < r.n; t = t->next) {
            r.tasks[k++] = at_task_ref(t);
        }
        r.n = k;
        for (size_t i = 0; i < r.n; i++) {
            at_task_cancel(r.tasks[i], "the loop is closing");
        }
        uv_update_time(at_loop_uv(loop)); /* the loop may have been idle a long time */
        int rc = at_call_later(loop, CLOSE_ROUND_MS, unwind_deadline, &r, "task unwinding at close",
                               &r.timer);
        while (rc == 0 && !r.expired && !round_done(&r)) {
            rc = at_loop_run(loop, AT_RUN_ONCE);
            rc = rc < 0 ? rc : 0;
        }
        if (r.timer.slot_) {
            at_handle_cancel(loop, r.timer);
        }
        for (size_t i = 0; i < r.n; i++) {
            at_task_t *t = r.tasks[i];
            if (t->ended && t->fut->state == AT_FUTURE_FAILED && !t->fut->retrieved) {
                report_failed_at_close(t);
            }
            task_unref_internal(t);
        }
        free(r.tasks);
        if (rc != 0) {
            return; /* the loop cannot run: tasks_close destroys what is left */
        }
        tl = tloop_find(loop, false);
    }
}

/* Called by at_loop_close after tasks_unwind, once the loop is closing, before it drops
 * callbacks: reports and frees what the tasks layer still holds for this loop (the tasks
 * still pending are those that swallowed the unwinding's cancellations). */
static void tasks_close(at_loop_t *loop)
{
    tloop_t *tl = tloop_find(loop, false);
    if (!tl) {
        at__streams_close(loop);
        return;
    }
    at__task_export_detach(tl); /* the loop is going: nothing more to show */
    open_step_drop(tl);
    /* clang-analyzer cannot see the list invariants below (the head's prev is NULL, the list
     * holds a reference to each task): its use-after-free reports here are false. */
    while (tl->coros) {
        // NOLINTNEXTLINE(clang-analyzer-unix.Malloc)
        report_never_awaited(tl->coros, "still unused when the loop closed");
        coro_unlink_free(tl->coros);
    }
    while (tl->head) {
        at_task_t *t = tl->head;
        void *susp[AT_STACK_MAX];
        // NOLINTNEXTLINE(clang-analyzer-unix.Malloc)
        size_t ns = at_task_suspension_stack(t, susp, AT_STACK_MAX);
        char detail[200];
        snprintf(detail, sizeof detail, "task: <Task pending name='%s' id=%" PRIu64 ">", t->name,
                 t->id);
        report(loop, AT__EV_WARNING, "task_destroyed_pending", NULL,
               "Task was destroyed but it is pending!", detail, t->name, t->id,
               "Task created at (most recent call first)", t->create, t->ncreate,
               ns ? "Task suspended at (most recent call first)" : NULL, susp, ns);
        /* Undo the wait (its callbacks hold references), drop the stack. */
        if (t->state == AT_TASK_WAITING && t->detach) {
            t->detach(t);
        }
        if (t->joiner) {
            t->joiner->joining = NULL; /* destroyed next; nothing to wake */
            t->joiner = NULL;
        }
        if (t->step.slot_ && at_handle_cancel(loop, t->step)) {
            task_unref_internal(t); /* the step that will not run */
        }
        t->finishing = true; // NOLINT(clang-analyzer-unix.Malloc): the list's reference holds t
        at__coro_destroy(t->co);
        t->co = NULL;
        t->state = AT_TASK_CANCELLED;
        at_future_cancel(t->fut, "the loop was closed");
        t->ended = true;
        unlink_task(t);
        task_unref_internal(t);
    }
    /* Failed tasks still referenced whose error nobody read: reported in the
     * task's words (core would say "Future exception" at its own step). */
    while (tl->failed) {
        at_task_t *t = tl->failed;
        failed_unlink(t);
        if (t->fut->state == AT_FUTURE_FAILED && !t->fut->retrieved) {
            report_never_retrieved(t);
        }
    }
    at__streams_close(loop);
    for (tloop_t **p = &tloops; *p; p = &(*p)->next) {
        if (*p == tl) {
            *p = tl->next;
            break;
        }
    }
    free(tl);
    if (!tloops) {
        task_cache_drain(); /* the thread's last loop with tasks */
    }
}
