/* task_close.c: what the task layer reports (never-retrieved errors, never-awaited coroutines)
 * and the loop's close — unwinding the pending tasks as asyncio.run() does, then reporting and
 * freeing what is left. */
#include "task_int.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

/* ---- reports ------------------------------------------------------------------------------ */

/* Logs a multi-line report and posts it as an event of `kind`; `err` (NULL: none) is the error
 * reported, whose code and domain the event carries. */
void at__task_report(at_loop_t *loop, at__event_kind_t kind, const char *code,
                     const at_error_t *err, const char *title, const char *detail,
                     const char *obj_name, uint64_t task_id, const char *label1, void *const *st1,
                     size_t n1, const char *label2, void *const *st2, size_t n2)
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
        if (n2)
            memcpy(ev.stack2, st2, ev.nstack2 * sizeof(void *));
        at__mon_post(loop->mon, &ev);
    }
    char buf[8192];
    size_t pos = 0;
    int w = snprintf(buf, sizeof buf, "%s\n%s%s%s:\n", title, detail ? detail : "",
                     detail ? "\n" : "", label1);
    if (w > 0)
        pos = (size_t)w;
    at__format_stack(buf, sizeof buf, &pos, st1, n1);
    if (label2) {
        w = snprintf(pos < sizeof buf ? buf + pos : NULL, pos < sizeof buf ? sizeof buf - pos : 0,
                     "%s:\n", label2);
        if (w > 0)
            pos += (size_t)w;
        at__format_stack(buf, sizeof buf, &pos, st2, n2);
    }
    buf[sizeof buf - 1] = '\0';
    at__log_long(kind == AT__EV_ERROR ? AT__LOG_ERROR : AT__LOG_WARNING, buf);
}

/* Reports the error `e` of failed task `t` as an AT__EV_ERROR of `code` under `title`, with the
 * task, the error and both stacks (creation, raise). */
static void report_task_error(at_task_t *t, const at_error_t *e, const char *code,
                              const char *title)
{
    char detail[400];
    snprintf(detail, sizeof detail,
             "task: <Task failed name='%s' id=%" PRIu64 ">\nerror: %s (%s): %s", t->name, t->id,
             at_err_name(e->code), e->domain, at_error_message(e));
    at__task_report(t->loop, AT__EV_ERROR, code, e, title, detail, t->name, t->id,
                    "Task created at (most recent call first)", t->create, t->ncreate,
                    "Error raised at (most recent call first)", e->stack, e->nstack);
}

void at__task_report_never_retrieved(at_task_t *t)
{
    at_future_t *f = t->fut;
    report_task_error(t, f->err, "task_never_retrieved", "Task exception was never retrieved");
    atomic_fetch_add_explicit(&at__count_never_retrieved, 1, memory_order_relaxed);
    at_future_mark_retrieved(f);
}

/* ---- loop close ------------------------------------------------------------------------------ */

/* Unwinding at close, as asyncio.run()'s _cancel_all_tasks: every pending task is cancelled
 * (its await point returns AT_ECANCELED, its cleanup code runs) and the loop runs until those
 * tasks have finished. Bounded: a round ends when all its tasks have ended, or when none of
 * them ended for CLOSE_ROUND_MS; what is still pending then (a task that swallowed the
 * cancellation and awaits again, tasks spawned by cleanup code) is cancelled again in the next
 * round; after CLOSE_ROUNDS rounds the rest is left to at__tasks_loop_close ("Task was destroyed
 * but it is pending!"). A task that never took its cancellation holds the close CLOSE_ROUNDS *
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
    while (r->first_pending < r->n && r->tasks[r->first_pending]->ended)
        r->first_pending++;
    return r->first_pending == r->n;
}

/* The round's deadline: extended while its tasks keep ending (a thousand tasks unwinding take
 * longer than one task's grace), over when none ended since the last check. */
static void unwind_deadline(at_loop_t *loop, void *arg)
{
    unwind_round_t *r = arg;
    r->timer = (at_handle_t){0};
    size_t ended = 0;
    for (size_t i = 0; i < r->n; i++)
        ended += r->tasks[i]->ended;
    if (ended > r->ended_seen) {
        r->ended_seen = ended;
        if (at_call_later(loop, CLOSE_ROUND_MS, unwind_deadline, r, "task unwinding at close",
                          &r->timer) == 0)
            return;
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
    if (e->code != AT_ECANCELED)
        report_task_error(t, e, "unhandled", "unhandled exception during at_loop_close() shutdown");
    at_future_mark_retrieved(f);
}

/* Called by at_loop_close before the loop is marked closing (core's at__tasks_unwind_hook):
 * the loop is not running, its thread is this one. */
void at__tasks_loop_unwind(at_loop_t *loop)
{
    tloop_t *tl = at__tloop_find(loop, false);
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
        for (at_task_t *t = tl->head; t && k < r.n; t = t->next)
            r.tasks[k++] = at_task_ref(t);
        r.n = k;
        for (size_t i = 0; i < r.n; i++)
            at_task_cancel(r.tasks[i], "the loop is closing");
        uv_update_time(at_loop_uv(loop)); /* the loop may have been idle a long time */
        int rc = at_call_later(loop, CLOSE_ROUND_MS, unwind_deadline, &r, "task unwinding at close",
                               &r.timer);
        while (rc == 0 && !r.expired && !round_done(&r)) {
            rc = at_loop_run(loop, AT_RUN_ONCE);
            rc = rc < 0 ? rc : 0;
        }
        if (r.timer.slot_)
            at_handle_cancel(loop, r.timer);
        for (size_t i = 0; i < r.n; i++) {
            at_task_t *t = r.tasks[i];
            if (t->ended && t->fut->state == AT_FUTURE_FAILED && !t->fut->retrieved)
                report_failed_at_close(t);
            at__task_unref_internal(t);
        }
        free(r.tasks);
        if (rc != 0)
            return; /* the loop cannot run: at__tasks_loop_close destroys what is left */
        tl = at__tloop_find(loop, false);
    }
}

/* Called by at_loop_close after at__tasks_loop_unwind, once the loop is closing, before it drops
 * callbacks: reports and frees what the tasks layer still holds for this loop (the tasks
 * still pending are those that swallowed the unwinding's cancellations). */
void at__tasks_loop_close(at_loop_t *loop)
{
    tloop_t *tl = at__tloop_find(loop, false);
    if (!tl) {
        at__streams_close(loop);
        return;
    }
    at__task_export_detach(tl); /* the loop is going: nothing more to show */
    at__task_open_step_drop(tl);
    /* clang-analyzer cannot see the list invariants below (the head's prev is NULL, the list
     * holds a reference to each task): its use-after-free reports here are false. */
    while (tl->coros) {
        // NOLINTNEXTLINE(clang-analyzer-unix.Malloc)
        at__coro_report_never_awaited(tl->coros, "still unused when the loop closed");
        at__coro_unlink_free(tl->coros);
    }
    while (tl->head) {
        at_task_t *t = tl->head;
        void *susp[AT_STACK_MAX];
        // NOLINTNEXTLINE(clang-analyzer-unix.Malloc)
        size_t ns = at_task_suspension_stack(t, susp, AT_STACK_MAX);
        char detail[200];
        snprintf(detail, sizeof detail, "task: <Task pending name='%s' id=%" PRIu64 ">", t->name,
                 t->id);
        at__task_report(loop, AT__EV_WARNING, "task_destroyed_pending", NULL,
                        "Task was destroyed but it is pending!", detail, t->name, t->id,
                        "Task created at (most recent call first)", t->create, t->ncreate,
                        ns ? "Task suspended at (most recent call first)" : NULL, susp, ns);
        /* Undo the wait (its callbacks hold references), drop the stack. */
        if (t->state == AT_TASK_WAITING && t->detach)
            t->detach(t);
        if (t->joiner) {
            t->joiner->joining = NULL; /* destroyed next; nothing to wake */
            t->joiner = NULL;
        }
        if (t->step.slot_ && at_handle_cancel(loop, t->step))
            at__task_unref_internal(t); /* the step that will not run */
        t->finishing = true; // NOLINT(clang-analyzer-unix.Malloc): the list's reference holds t
        at__coro_destroy(t->co);
        t->co = NULL;
        t->state = AT_TASK_CANCELLED;
        at_future_cancel(t->fut, "the loop was closed");
        t->ended = true;
        at__task_unlink(t);
        at__task_unref_internal(t);
    }
    /* Failed tasks still referenced whose error nobody read: reported in the
     * task's words (core would say "Future exception" at its own step). */
    while (tl->failed) {
        at_task_t *t = tl->failed;
        at__task_failed_unlink(t);
        if (t->fut->state == AT_FUTURE_FAILED && !t->fut->retrieved)
            at__task_report_never_retrieved(t);
    }
    at__streams_close(loop);
    at__tloop_free(tl);
}
