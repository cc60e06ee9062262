/* task_info.c: a task seen from outside — its info, a loop's tasks, its suspension stack (the
 * application's frames only), symbolised frames. */
#include "task_int.h"

#include <stdio.h>

void at_task_info(const at_task_t *t, at_task_info_t *out)
{
    if (t->open_step)
        at__task_busy_settle(t->tl);
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
    tloop_t *tl = at__tloop_find(loop, false);
    if (!tl)
        return 0;
    if (visit)
        for (at_task_t *t = tl->head; t; t = t->next)
            visit(t, arg);
    return tl->ntasks;
}

size_t at_task_suspension_stack(const at_task_t *t, void **frames, size_t max)
{
    if (!t->co || t->ended)
        return 0;
    at__coro_state_t cs = at__coro_state(t->co);
    if (cs != AT__CORO_SUSPENDED && !(cs == AT__CORO_RUNNING && t->state == AT_TASK_WAITING))
        return 0;
    uintptr_t pcs[64];
    int n = at__coro_unwind(t->co, pcs, 64);
    int first = 0, last = n;
    if (cs == AT__CORO_RUNNING) {
        /* Waiting while its coroutine runs: it joined a task that had not started, whose step
         * runs from its stack (join_inline). The walk starts in the resume of that task
         * (at__coro_resume, task_run), under the await machinery of the join: show the
         * application's frames from the one that called at_task_join. */
        while (first < n && !at__coro_pc_is_await_machinery(pcs[first]))
            first++;
        if (first == n)
            return 0;
    }
    while (first < n && at__coro_pc_is_await_machinery(pcs[first]))
        first++;
    while (last > first && at__coro_pc_is_await_machinery(pcs[last - 1]))
        last--;
    if (first == n) {
        /* Only our frames (the application tail-called the await function):
         * show them rather than nothing, without the entry trampolines. */
        first = 0;
        last = n;
        while (last > 0 && at__coro_pc_is_await_machinery(pcs[last - 1]))
            last--;
        last = last + 1 < n ? last + 1 : n; /* keep the await function itself */
    }
    size_t k = 0;
    for (int i = first; i < last && k < max; i++)
        frames[k++] = (void *)pcs[i];
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
