/* task_int.h: the internal contract between the task_*.c files — the per-thread task state,
 * running a step (inline: the spawn/join path must not pay a call per frame), scheduling and
 * waking, and the hooks each file gives the others. Not for sync.c or stream.c: they use
 * tasks.h. */
#ifndef AT_TASKS_TASK_INT_H
#define AT_TASKS_TASK_INT_H

#include "tasks.h"
#include "at_wire.h" /* at_wire_hist_index: the step histogram's buckets are the wire's */

#include <string.h>

/* A deferred coroutine object (at_coro_new): what at_task_spawn would take, kept until it is
 * spawned, awaited or dropped (task_deferred.c; reported at close by task_close.c). */
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

/* Hot thread-locals of a shared library: initial-exec, no __tls_get_addr call. */

/* The task whose step runs on this thread now (NULL: none). task_life.c. */
extern __thread at_task_t *at__cur_task __attribute__((tls_model("initial-exec")));

/* The task whose step at__task_join_inline runs (task_wait.c): its step's callback goes on as
 * the joiner's, which names the joiner right after, so its end needs no copy of its name
 * (see at__task_finish). task_life.c. */
extern __thread const at_task_t *at__inline_child __attribute__((tls_model("initial-exec")));

/* ---- per-thread state (task_life.c) ----------------------------------------------------- */

/* This thread's state for `loop`; with `create`, made (and attached to the exporter) if
 * missing. NULL if missing, or out of memory. Loop thread. */
tloop_t *at__tloop_find(at_loop_t *loop, bool create);

/* Forgets `tl` (the loop is closing: task_close.c) and frees it; the thread's last one gives
 * the cached task objects back. Loop thread. */
void at__tloop_free(tloop_t *tl);

/* ---- life cycle (task_life.c) ------------------------------------------------------------- */

/* Drops a reference the task layer holds on `t` (a scheduled step, a done callback, the task's
 * own while alive); the last one frees it, reporting an unread error. */
void at__task_unref_internal(at_task_t *t);

/* Takes an ended failed task off tl->failed (it stays in the exporter's table until then). */
void at__task_failed_unlink(at_task_t *t);

/* Takes `t` off its loop's list of tasks that have not ended. */
void at__task_unlink(at_task_t *t);

/* The task's function returned: completes its future, gives its stack back, wakes its joiner. */
void at__task_finish(at_task_t *t);

/* Schedules a step of `t` (soon, FIFO with every other ready callback); AT_ENOMEM. */
int at__task_schedule_step(at_task_t *t);

/* The ready-queue callback of a scheduled step (also the site key of a step that has no site of
 * its own). */
void at__task_step_cb(at_loop_t *loop, void *arg);

/* Ends the current wait of `t` with `code` and runs it: inline when called from a plain loop
 * callback (a future's done callback, a timer), else (from another task) on a step scheduled
 * soon. */
void at__task_wake(at_task_t *t, int code);

/* Runs one step of `t` from the ready queue or a wake-up (flushes deferred posts first). */
void at__task_run(at_task_t *t);

/* Records the creation site: `st`/`n` if given, else the caller `ra` (and its stack in debug
 * mode). One frame lives inline; a debug-mode stack on the heap. */
void at__task_set_creation(at_task_t *t, void *const *st, size_t n, void *ra);

/* Forgets the open step (its task is going, or its callback now belongs to another task). */
void at__task_open_step_drop(tloop_t *tl);

/* Makes `t` the task whose step is its loop's callback still running (billed to it when that
 * callback ends, from `site`'s counters as they are now); the previous open step, if any, is
 * dropped. */
void at__task_open_step_set(at_task_t *t, at__site_t *site);

/* ---- waiting (task_wait.c) ---------------------------------------------------------------- */

/* The future's cancel hook of every task: cancelling a task's future cancels the task. */
void at__task_fut_cancel_hook(at_future_t *fut, void *arg);

/* ---- deferred coroutine objects (task_deferred.c) ----------------------------------------- */

/* "coroutine '...' was never awaited" for `c`, `when` saying how it went. */
void at__coro_report_never_awaited(at_coro_t *c, const char *when);

/* Unlinks `c` from its loop's list of deferred coroutine objects and frees it. */
void at__coro_unlink_free(at_coro_t *c);

/* ---- reports and the loop's close (task_close.c) ------------------------------------------ */

/* Logs a multi-line report and posts it as an event of `kind`; `err` (NULL: none) is the error
 * reported, whose code and domain the event carries. */
void at__task_report(at_loop_t *loop, at__event_kind_t kind, const char *code,
                     const at_error_t *err, const char *title, const char *detail,
                     const char *obj_name, uint64_t task_id, const char *label1, void *const *st1,
                     size_t n1, const char *label2, void *const *st2, size_t n2);

/* "Task exception was never retrieved" for `t`, whose future failed unread; marks it read. */
void at__task_report_never_retrieved(at_task_t *t);

/* core's at__tasks_unwind_hook and at__tasks_close_hook (set by task_life.c's constructor). */
void at__tasks_loop_unwind(at_loop_t *loop);
void at__tasks_loop_close(at_loop_t *loop);

/* ---- running a step (inline) -------------------------------------------------------------- */

/* Counts one step of `ns`. A task's steps mostly fall in one bucket: they are counted as a
 * run in the task's first cache line, and the histogram at the struct's end is touched only
 * when the bucket changes. No allocation. Loop thread. */
_Static_assert(AT_EXPORT_STEP_HIST_N <= UINT8_MAX, "step_run_bucket is a uint8_t");
static inline void at__task_step_record(at_task_t *t, uint64_t ns)
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

/* Runs one step of `t` on this thread's stack: switch in, until it awaits or
 * ends. Called from a loop callback (whose timing we attribute to the task).
 * Always inlined into its callers on the spawn/join path: every return from a frame that
 * was live across a context switch is mispredicted (the return stack buffer holds the other
 * stack's addresses), so each frame fewer between the switch and the application is a
 * mispredict fewer per task. at__task_run is the out-of-line copy for the other callers. */
static inline __attribute__((always_inline)) void at__task_run_inline(at_task_t *t)
{
    at__mon_t *m = t->loop->mon;
    tloop_t *tl = t->tl;
    if (tl->open_step.task)
        at__task_busy_settle(tl);
    bool timed = false; /* the step's time is its callback's (no clock read of our own) */
    if (m && m->cur) {
        /* This callback is the task's step: time it under the task's function
         * and name, so a slow step names the task. */
        at__cb_t *cb = m->cur;
        if (cb->task_id != t->id) /* not begun as this task's step already */
            at__cb_relabel_task(m, cb, t->site, t->id, t->name);
        /* The callback is still running (the step of another task that ended in it, or of
         * this one): its time is this step's, billed when it ends. */
        at__task_open_step_set(t, cb->site);
        timed = true;
    }
    t->state = AT_TASK_RUNNING;
    t->steps++;
    at_task_t *prev = at__cur_task;
    at__cur_task = t;
    uint64_t t0 = timed ? 0 : at__now_ns();
    at__coro_resume(t->co);
    if (!timed) {
        uint64_t t1 = at__now_ns(), ns = t1 > t0 ? t1 - t0 : 0;
        t->busy_ns += ns;
        at__task_step_record(t, ns);
    }
    at__cur_task = prev;
    if (at__coro_state(t->co) == AT__CORO_DONE)
        at__task_finish(t);
}

#endif
