/* tui_target.c: a real program on at_loop + tasks for the inspector's end-to-end tests
 * (tests/e2e/test-tui-real.py): named tasks waiting on every kind of thing, a parent and its
 * child, slow callbacks and a stuck task on command, never-retrieved errors, executor jobs,
 * and a STATUS line with what the runtime itself holds (threshold, debug mode), all driven
 * line by line on stdin. Prints "READY pid" once the tasks exist. */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "asynctop.h"

static at_loop_t *g_loop;
static uv_pipe_t g_stdin;
static char g_line[4096];
static size_t g_linelen;

static at_event_t *g_never;   /* never set: tasks that wait forever */
static at_event_t *g_spin_ev; /* "spin N" sets it: the cruncher spins N ms */
static at_lock_t *g_lock;
static at_queue_t *g_empty_q;
static long g_spin_ms;
static volatile unsigned g_sink; /* unsigned: the spin loops wrap it */

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    fflush(stdout);
}

/* ---- the tasks ---------------------------------------------------------------------------- */

static int sleeper(void *arg, void **result)
{
    for (;;) {
        int rc = at_sleep(60000);
        if (rc != 0)
            return rc;
    }
}

static int event_waiter(void *arg, void **result)
{
    return at_event_wait(g_never);
}

static int lock_holder(void *arg, void **result)
{
    int rc = at_lock_acquire(g_lock);
    if (rc != 0)
        return rc;
    rc = at_event_wait(g_never);
    at_lock_release(g_lock);
    return rc;
}

static int lock_waiter(void *arg, void **result)
{
    int rc = at_lock_acquire(g_lock);
    if (rc == 0)
        at_lock_release(g_lock);
    return rc;
}

static int queue_reader(void *arg, void **result)
{
    void *item;
    return at_queue_get(g_empty_q, &item);
}

static int child(void *arg, void **result)
{
    return at_event_wait(g_never);
}

static int supervisor(void *arg, void **result)
{
    at_task_t *c;
    at_task_opts_t o = {.name = "worker-child"};
    int rc = at_task_spawn(at_loop_current(), child, NULL, &o, &c);
    if (rc != 0)
        return rc;
    rc = at_task_join(c, NULL);
    at_task_unref(c);
    return rc;
}

__attribute__((noinline)) static int fetch_level_two(void)
{
    int rc = at_event_wait(g_never);
    g_sink++;
    return rc;
}

__attribute__((noinline)) static int fetch_level_one(void)
{
    int rc = fetch_level_two();
    g_sink++;
    return rc;
}

static int fetcher(void *arg, void **result)
{
    return fetch_level_one();
}

/* Not a tail call: the many bulk tasks wait with this frame on their stacks (one group). */
__attribute__((noinline)) static int bulk(void *arg, void **result)
{
    int rc = at_event_wait(g_never);
    g_sink++;
    return rc;
}

/* Busy for ms milliseconds: where a task step or a callback is stuck. */
__attribute__((noinline)) static void crunch_numbers(long ms)
{
    struct timespec t0, t;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    do {
        for (int i = 0; i < 200000; i++) /* mostly here, not in the vDSO (no frame pointer) */
            g_sink++;
        clock_gettime(CLOCK_MONOTONIC, &t);
    } while ((t.tv_sec - t0.tv_sec) * 1000000000LL + (t.tv_nsec - t0.tv_nsec) < ms * 1000000LL);
}

static int cruncher(void *arg, void **result)
{
    for (;;) {
        int rc = at_event_wait(g_spin_ev);
        if (rc != 0)
            return rc;
        at_event_clear(g_spin_ev);
        crunch_numbers(g_spin_ms);
    }
}

static int failing(void *arg, void **result)
{
    return at_task_raise(AT_EIO, "disk on fire (tui test)");
}

/* A refused connection whose message has two lines (the Exceptions screen must show both). */
static int connecting(void *arg, void **result)
{
    return at_task_raise(AT_ECONNREFUSED,
                         "connect 127.0.0.1:9 (backend db)\nretried 3 times, giving up");
}

/* An executor job: sleeps on a pool thread. */
static void *pool_job(void *arg, at_error_t **err)
{
    usleep((useconds_t)(uintptr_t)arg * 1000);
    return NULL;
}

/* ---- spawning ----------------------------------------------------------------------------- */

__attribute__((noinline)) static at_task_t *spawn_named(at_task_fn fn, const char *name, bool keep)
{
    at_task_opts_t o = {.name = name};
    at_task_t *t = NULL;
    if (at_task_spawn(g_loop, fn, NULL, &o, keep ? &t : NULL) != 0) {
        fprintf(stderr, "spawn %s failed\n", name);
        exit(3);
    }
    return t;
}

__attribute__((noinline)) static void setup_tasks(void)
{
    spawn_named(sleeper, "sleeper", false);
    spawn_named(event_waiter, "event-waiter", false);
    spawn_named(lock_holder, "lock-holder", false);
    spawn_named(lock_waiter, "lock-waiter", false);
    spawn_named(queue_reader, "queue-reader", false);
    spawn_named(supervisor, "supervisor", false);
    spawn_named(fetcher, "fetcher", false);
    spawn_named(cruncher, "cruncher", false);
}

/* ---- commands ----------------------------------------------------------------------------- */

/* A plain callback stuck in a named function. */
__attribute__((noinline)) static void parse_request(long ms)
{
    crunch_numbers(ms);
    g_sink++;
}

static void on_tick(at_loop_t *loop, void *arg)
{
    g_sink++;
    at_call_later(loop, 50, on_tick, NULL, "on_tick", NULL);
}

static void on_command(at_loop_t *loop, void *arg)
{
    char *line = arg;
    char cmd[32] = "";
    long n = 0;
    sscanf(line, "%31s %ld", cmd, &n);
    if (strcmp(cmd, "spin") == 0) { /* inside the cruncher task */
        g_spin_ms = n;
        at_event_set(g_spin_ev);
    } else if (strcmp(cmd, "spincb") == 0) { /* in this callback */
        parse_request(n);
    } else if (strcmp(cmd, "many") == 0) {
        for (long i = 0; i < n; i++)
            spawn_named(bulk, "bulk", false);
    } else if (strcmp(cmd, "fail") == 0) { /* an error nobody retrieves */
        spawn_named(failing, "failing", false);
    } else if (strcmp(cmd, "refused") == 0) { /* the same, with a two-line message */
        spawn_named(connecting, "connecting", false);
        say("ERROR %d %s\n", AT_ECONNREFUSED, AT_DOMAIN); /* the error's code and domain */
    } else if (strcmp(cmd, "work") == 0) {                /* n executor jobs of 1.5 s */
        for (long i = 0; i < n; i++) {
            at_future_t *f = NULL;
            if (at_executor_submit(loop, pool_job, (void *)(uintptr_t)1500, NULL, "pool_job", &f) ==
                0) {
                at_future_mark_retrieved(f);
                at_future_unref(f);
            }
        }
    } else if (strcmp(cmd, "status") == 0) {
        say("STATUS slow_ms=%llu debug=%d tasks=%zu\n",
            (unsigned long long)at_get_slow_threshold_ms(), at_get_debug() ? 1 : 0,
            at_loop_tasks(g_loop, NULL, NULL));
    } else if (strcmp(cmd, "quit") == 0) {
        uv_close((uv_handle_t *)&g_stdin, NULL);
        at_loop_stop(loop);
    }
    say("OK %s\n", cmd);
    free(line);
}

static void on_alloc(uv_handle_t *h, size_t sz, uv_buf_t *buf)
{
    static char b[4096];
    buf->base = b;
    buf->len = sizeof b;
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    if (n < 0) {
        uv_close((uv_handle_t *)&g_stdin, NULL);
        at_loop_stop(g_loop);
        return;
    }
    for (ssize_t i = 0; i < n; i++) {
        char ch = buf->base[i];
        if (ch == '\n') {
            g_line[g_linelen] = '\0';
            g_linelen = 0;
            at_call_soon(g_loop, on_command, strdup(g_line), "on_command", NULL);
        } else if (g_linelen + 1 < sizeof g_line) {
            g_line[g_linelen++] = ch;
        }
    }
}

int main(void)
{
    if (at_loop_new(&g_loop, NULL) != 0)
        return 1;
    if (at_event_new(g_loop, &g_never) || at_event_new(g_loop, &g_spin_ev) ||
        at_lock_new(g_loop, &g_lock) || at_queue_new(g_loop, 1, &g_empty_q))
        return 1;
    setup_tasks();
    at_call_later(g_loop, 50, on_tick, NULL, "on_tick", NULL);
    uv_pipe_init(at_loop_uv(g_loop), &g_stdin, 0);
    uv_pipe_open(&g_stdin, 0);
    uv_read_start((uv_stream_t *)&g_stdin, on_alloc, on_read);
    say("READY %ld\n", (long)getpid());
    at_loop_run(g_loop, AT_RUN_DEFAULT);
    at_loop_close(g_loop, NULL);
    return 0;
}
