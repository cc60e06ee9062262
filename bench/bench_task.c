/* bench_task.c: tasks — spawn, run and join a task that yields once; the
 * resident memory of a pending task (100k waiting on one event). */
#include "bench.h"

#include <time.h>

#include <stdio.h>

#include "asynctop.h"

/* CPU time of this thread: on a loaded shared machine, wall time measures
 * the neighbours; every figure of this file (and its baselines) uses this. */
static uint64_t cpu_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

#define SPAWN_ROUNDS 200000

static int yield_once(void *arg, void **result)
{
    return at_yield();
}

static double spawn_join_ns;

static int spawner(void *arg, void **result)
{
    at_loop_t *loop = arg;
    uint64_t t0 = cpu_ns();
    for (int i = 0; i < SPAWN_ROUNDS; i++) {
        at_task_t *t;
        if (at_task_spawn(loop, yield_once, NULL, NULL, &t) != 0 || at_task_join(t, NULL) != 0) {
            return AT_EINVAL;
        }
        at_task_unref(t);
    }
    spawn_join_ns = (double)(cpu_ns() - t0) / SPAWN_ROUNDS;
    return 0;
}

BENCH(task_spawn_yield_join_ns, "ns/task", "spawn + run (yields once) + join a task")
{
    at_loop_t *loop;
    if (at_loop_new(&loop, NULL) != 0) {
        return -1;
    }
    at_task_t *t;
    int rc = at_task_spawn(loop, spawner, loop, NULL, &t);
    if (rc == 0) {
        at_loop_run(loop, AT_RUN_DEFAULT);
        rc = at_future_result(at_task_future(t), NULL);
        at_task_unref(t);
    }
    at_loop_close(loop, NULL);
    if (rc != 0) {
        fprintf(stderr, "bench_task: spawn/join failed: %s\n", at_err_name(rc));
        return -1;
    }
    return spawn_join_ns;
}

#define PENDING 100000

static int wait_event(void *arg, void **result)
{
    return at_event_wait(arg);
}

BENCH(task_pending_rss_bytes, "bytes/task", "resident memory of a task waiting on an event (100k)")
{
    at_loop_t *loop;
    at_event_t *ev;
    if (at_loop_new(&loop, NULL) != 0 || at_event_new(loop, &ev) != 0) {
        return -1;
    }
    size_t before = bench_rss_bytes();
    for (int i = 0; i < PENDING; i++) {
        if (at_task_spawn(loop, wait_event, ev, NULL, NULL) != 0) {
            fprintf(stderr, "bench_task: spawn %d failed\n", i);
            return -1;
        }
    }
    at_loop_run(loop, AT_RUN_NOWAIT); /* every task runs to its wait */
    size_t after = bench_rss_bytes();
    if (at_event_waiters(ev) != PENDING) {
        fprintf(stderr, "bench_task: only %zu tasks waiting\n", at_event_waiters(ev));
        return -1;
    }
    at_event_set(ev);
    at_loop_run(loop, AT_RUN_DEFAULT);
    at_event_free(ev);
    at_loop_close(loop, NULL);
    return (double)(after - before) / PENDING;
}
