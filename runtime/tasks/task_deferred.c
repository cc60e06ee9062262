/* task_deferred.c: deferred coroutine objects (at_coro_t) — a task made but not started,
 * then spawned, awaited in the caller's task, or dropped ("was never awaited"). */
#include "task_int.h"

#include <assert.h>
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>

int at_coro_new(at_loop_t *loop, at_task_fn fn, void *arg, const at_task_opts_t *opts,
                at_coro_t **out)
{
    assert(loop && fn && out);
    AT__CHECK_THREAD(loop, "at_coro_new");
    if (atomic_load_explicit(&loop->closing, memory_order_relaxed))
        return AT_ECLOSING;
    tloop_t *tl = at__tloop_find(loop, true);
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
        if (dladdr((void *)fn, &info) && info.dli_sname)
            snprintf(c->name, sizeof c->name, "%s", info.dli_sname);
        else
            snprintf(c->name, sizeof c->name, "%p", (void *)fn);
    }
    at__capture_site(c->create, &c->ncreate, __builtin_return_address(0));
    AT__DLIST_PREPEND(tl->coros, c, prev, next);
    *out = c;
    return 0;
}

void at__coro_unlink_free(at_coro_t *c)
{
    AT__DLIST_UNLINK(c->tl->coros, c, prev, next);
    free(c);
}

void at__coro_report_never_awaited(at_coro_t *c, const char *when)
{
    char title[128];
    snprintf(title, sizeof title, "coroutine '%s' was never awaited", c->name);
    at__task_report(c->loop, AT__EV_WARNING, "never_awaited", NULL, title, when, c->name, 0,
                    "Coroutine created at (most recent call first)", c->create, c->ncreate, NULL,
                    NULL, 0);
}

int at_coro_spawn(at_coro_t *c, at_task_t **out)
{
    at_task_opts_t o = {.name = c->name, .stack_size = c->stack_size};
    int rc = at_task_spawn(c->loop, c->fn, c->arg, &o, out);
    if (rc == 0 && out) {
        /* Its creation site is where the coroutine object was made. */
        at__task_set_creation(*out, c->create, c->ncreate, NULL);
    }
    at__coro_unlink_free(c);
    return rc;
}

int at_coro_await(at_coro_t *c, void **result)
{
    if (!at__task_current())
        return AT_EINVALSTATE;
    at_task_fn fn = c->fn;
    void *arg = c->arg;
    at__coro_unlink_free(c);
    void *r = NULL;
    int rc = fn(arg, &r);
    if (result)
        *result = r;
    return rc;
}

void at_coro_drop(at_coro_t *c)
{
    if (c) {
        at__coro_report_never_awaited(c, "dropped without being awaited or spawned");
        at__coro_unlink_free(c);
    }
}
