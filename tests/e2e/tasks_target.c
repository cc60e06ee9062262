/* tasks_target.c: a real program on at_loop + tasks, served by the exporter through the tasks
 * layer's provider, driven line by line on stdin by tests/e2e/test_export_tasks.py. */
#include <pthread.h>
#include <semaphore.h>
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
static at_event_t *g_short;   /* "finish" sets it: the short tasks end */
static at_event_t *g_spin_ev; /* "spin N" sets it: the spinner spins N ms */
static at_lock_t *g_lock;
static at_semaphore_t *g_sem;
static at_queue_t *g_full_q, *g_empty_q;
static at_task_t *g_failing; /* held, never joined */
static at_task_t *g_cancellable;
static long g_spin_ms;
static int g_cancel_seen; /* the cancellable task saw AT_ECANCELED at its await point */
static int g_short_done;

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    fflush(stdout);
}

/* ---- the tasks -------------------------------------------------------------------------- */

static int sleeper(void *arg, void **result)
{
    for (;;) {
        int rc = at_sleep(5000);
        if (rc != 0)
            return rc;
    }
}

static int wait_never(void *arg, void **result)
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

static int sem_waiter(void *arg, void **result)
{
    int rc = at_semaphore_acquire(g_sem);
    if (rc == 0)
        at_semaphore_release(g_sem);
    return rc;
}

static int queue_putter(void *arg, void **result)
{
    int rc = at_queue_put(g_full_q, (void *)1);
    if (rc == 0)
        rc = at_queue_put(g_full_q, (void *)2); /* capacity 1: waits "(full)" */
    return rc;
}

static int queue_getter(void *arg, void **result)
{
    void *item;
    return at_queue_get(g_empty_q, &item);
}

static int child(void *arg, void **result)
{
    return at_event_wait(g_never);
}

static int parent(void *arg, void **result)
{
    at_task_t *c;
    at_task_opts_t o = {.name = "child"};
    int rc = at_task_spawn(at_loop_current(), child, NULL, &o, &c);
    if (rc != 0)
        return rc;
    rc = at_task_join(c, NULL);
    at_task_unref(c);
    return rc;
}

/* Three calls deep, in named functions; the volatile after each call keeps them real calls. */
static volatile unsigned g_sink;

__attribute__((noinline)) static int deep_level_three(void)
{
    int rc = at_event_wait(g_never);
    g_sink++;
    return rc;
}

__attribute__((noinline)) static int deep_level_two(void)
{
    int rc = deep_level_three();
    g_sink++;
    return rc;
}

__attribute__((noinline)) static int deep_level_one(void)
{
    int rc = deep_level_two();
    g_sink++;
    return rc;
}

static int deep(void *arg, void **result)
{
    return deep_level_one();
}

static int failing(void *arg, void **result)
{
    return at_task_raise(AT_EIO, "disk on fire (test)");
}

static int cancellable(void *arg, void **result)
{
    int rc = at_sleep(600000);
    if (rc == AT_ECANCELED)
        g_cancel_seen = 1;
    return rc;
}

static int short_task(void *arg, void **result)
{
    int rc = at_event_wait(g_short);
    g_short_done++;
    return rc;
}

/* Busy for ms milliseconds: where a task step is stuck. */
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

static int spinner(void *arg, void **result)
{
    for (;;) {
        int rc = at_event_wait(g_spin_ev);
        if (rc != 0)
            return rc;
        at_event_clear(g_spin_ev);
        crunch_numbers(g_spin_ms);
    }
}

/* Not a tail call: its frame stays on the stack where the many bulk tasks wait. */
__attribute__((noinline)) static int bulk(void *arg, void **result)
{
    int rc = at_event_wait(g_never);
    g_sink++;
    return rc;
}

/* A second loop on a thread of its own, closed while a task still waits on it: the task
 * swallows the close's cancellations, so "Task was destroyed but it is pending!" reaches the
 * exporter while it runs. */
static int forever(void *arg, void **result)
{
    at_event_t *ev = arg;
    int rc;
    do {
        rc = at_event_wait(ev);
    } while (rc == AT_ECANCELED);
    g_sink++;
    return rc;
}

static sem_t g_doomed_close;
static pthread_t g_doomed_th;

static void *doomed_loop_main(void *arg)
{
    at_loop_t *loop;
    at_event_t *ev = NULL;
    if (at_loop_new(&loop, NULL) != 0)
        return NULL;
    if (at_event_new(loop, &ev) == 0) {
        at_task_opts_t o = {.name = "doomed"};
        at_task_spawn(loop, forever, ev, &o, NULL);
        at_loop_run(loop, AT_RUN_NOWAIT); /* it starts waiting */
    }
    say("DOOMED %d\n", (int)gettid());
    sem_wait(&g_doomed_close);
    at_loop_close(loop, NULL); /* the task is destroyed while pending */
    if (ev)
        at_event_free(ev);
    return NULL;
}

static at_stream_t *g_server;

static int acceptor(void *arg, void **result)
{
    at_stream_t *conn;
    int rc = at_stream_accept(g_server, &conn);
    if (rc == 0)
        at_stream_close(conn);
    return rc;
}

/* ---- spawning --------------------------------------------------------------------------- */

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

/* The deep task is spawned here (its creation traceback names this function). */
__attribute__((noinline)) static void spawn_deep_task(void)
{
    at_task_opts_t o = {.name = "deep"};
    if (at_task_spawn(g_loop, deep, NULL, &o, NULL) != 0)
        exit(3);
    g_sink++;
}

__attribute__((noinline)) static void setup_tasks(void)
{
    spawn_named(sleeper, "sleeper", false);
    spawn_named(wait_never, "event-waiter", false);
    spawn_named(lock_holder, "lock-holder", false);
    spawn_named(lock_waiter, "lock-waiter", false);
    spawn_named(sem_waiter, "sem-waiter", false);
    spawn_named(queue_putter, "queue-putter", false);
    spawn_named(queue_getter, "queue-getter", false);
    spawn_named(parent, "parent", false);
    spawn_deep_task();
    g_failing = spawn_named(failing, "failing", true);
    g_cancellable = spawn_named(cancellable, "cancellable", true);
    spawn_named(spinner, "number-cruncher", false);
}

/* ---- commands --------------------------------------------------------------------------- */

/* Quitting: the loop stops; at_loop_close then cancels every task still pending (the parent
 * joining its child, the 100,000 bulk tasks, ...), lets them unwind and frees them. */
static int g_quitting;

static void quit(at_loop_t *loop)
{
    if (g_quitting++)
        return;
    uv_read_stop((uv_stream_t *)&g_stdin);
    uv_close((uv_handle_t *)&g_stdin, NULL);
    at_loop_stop(loop);
}

/* A plain callback stuck in a named function. */
__attribute__((noinline)) static void parse_request(long ms)
{
    crunch_numbers(ms);
}

static void on_command(at_loop_t *loop, void *arg)
{
    char *line = arg;
    char cmd[32] = "";
    long n = 0;
    sscanf(line, "%31s %ld", cmd, &n);
    if (strcmp(cmd, "spin") == 0) { /* inside the spinner task */
        g_spin_ms = n;
        at_event_set(g_spin_ev);
    } else if (strcmp(cmd, "spincb") == 0) { /* in this callback */
        parse_request(n);
    } else if (strcmp(cmd, "spawn") == 0) {
        for (long i = 0; i < n; i++) {
            char name[32];
            snprintf(name, sizeof name, "short-%ld", i);
            spawn_named(short_task, name, false);
        }
    } else if (strcmp(cmd, "finish") == 0) {
        at_event_set(g_short);
    } else if (strcmp(cmd, "many") == 0) {
        for (long i = 0; i < n; i++)
            spawn_named(bulk, "bulk", false);
    } else if (strcmp(cmd, "futfail") == 0 || strcmp(cmd, "appfail") == 0) {
        /* a future's error nobody reads: the runtime's own (AT_EIO in its domain), or one in an
         * application's domain; ERROR <code> <domain> says what the error object holds */
        at_future_t *f;
        if (at_future_new(loop, &f) == 0) {
            at_error_t *e = strcmp(cmd, "futfail") == 0
                                ? at_error_new(AT_EIO, NULL, "lost future error (test)")
                                : at_error_new(-4242, "myapp", "lost app error (test)");
            say("ERROR %d %s\n", at_error_code(e), at_error_domain(e));
            at_future_set_error(f, e);
            at_future_unref(f);
        }
    } else if (strcmp(cmd, "lostfail") == 0) { /* a failing task nobody holds */
        spawn_named(failing, "lost-failing", false);
    } else if (strcmp(cmd, "doomed") == 0) { /* "closedoomed" closes it */
        sem_init(&g_doomed_close, 0, 0);
        if (pthread_create(&g_doomed_th, NULL, doomed_loop_main, NULL) != 0)
            exit(3);
    } else if (strcmp(cmd, "closedoomed") == 0) {
        sem_post(&g_doomed_close);
        pthread_join(g_doomed_th, NULL);
    } else if (strcmp(cmd, "accept") == 0) { /* a task waiting in at_stream_accept */
        if (at_tcp_listen(loop, "127.0.0.1", 0, 8, &g_server) != 0)
            exit(3);
        spawn_named(acceptor, "acceptor", false);
    } else if (strcmp(cmd, "status") == 0) {
        say("STATUS cancel_seen=%d short_done=%d tasks=%zu\n", g_cancel_seen, g_short_done,
            at_loop_tasks(g_loop, NULL, NULL));
    } else if (strcmp(cmd, "quit") == 0) {
        quit(loop);
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
        at_call_soon(g_loop, on_command, strdup("quit"), "on_command", NULL);
        uv_read_stop(s);
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
    if (at_event_new(g_loop, &g_never) || at_event_new(g_loop, &g_short) ||
        at_event_new(g_loop, &g_spin_ev) || at_lock_new(g_loop, &g_lock) ||
        at_semaphore_new(g_loop, 0, &g_sem) || at_queue_new(g_loop, 1, &g_full_q) ||
        at_queue_new(g_loop, 1, &g_empty_q))
        return 1;
    setup_tasks();
    uv_pipe_init(at_loop_uv(g_loop), &g_stdin, 0);
    uv_pipe_open(&g_stdin, 0);
    uv_read_start((uv_stream_t *)&g_stdin, on_alloc, on_read);
    say("READY %ld\n", (long)getpid());
    at_loop_run(g_loop, AT_RUN_DEFAULT);
    /* the failing task's error was never read: reported now; the tasks still pending are
     * cancelled by the close, which runs the loop until they have ended */
    at_task_unref(g_cancellable);
    at_task_unref(g_failing);
    at_loop_close(g_loop, NULL);
    at_log_flush(5000); /* the reports are written by the log thread */
    return 0;
}
