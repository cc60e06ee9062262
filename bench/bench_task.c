/* bench_task.c: tasks — spawn, run and join a task that yields once; the
 * resident memory of a pending task (100k waiting on one event). */
#include "bench.h"

#include <time.h>

#include <stdbool.h>
#include <stdio.h>
#include <malloc.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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
        if (at_task_spawn(loop, yield_once, NULL, NULL, &t) != 0 || at_task_join(t, NULL) != 0)
            return AT_EINVAL;
        at_task_unref(t);
    }
    spawn_join_ns = (double)(cpu_ns() - t0) / SPAWN_ROUNDS;
    return 0;
}

/* Spawn + yield + join, in the environment as it is (the exporter runs unless ASYNCTOP_SOCKET
 * says off), or with the exporter off. */
static double spawn_yield_join(bool exporter_off)
{
    at_loop_t *loop;
    const char *was = getenv("ASYNCTOP_SOCKET");
    char *saved = was ? strdup(was) : NULL;
    if (exporter_off)
        setenv("ASYNCTOP_SOCKET", "off", 1);
    int lrc = at_loop_new(&loop, NULL);
    if (exporter_off) {
        if (saved)
            setenv("ASYNCTOP_SOCKET", saved, 1);
        else
            unsetenv("ASYNCTOP_SOCKET");
    }
    free(saved);
    if (lrc != 0)
        return -1;
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

/* The figure: a program as it runs, its exporter posting the task table. */
BENCH(task_spawn_yield_join_ns, "ns/task", "spawn + run (yields once) + join a task")
{
    return spawn_yield_join(false);
}

/* Debug mode records a creation stack per task (a frame-pointer walk on the hot path). */
BENCH(task_spawn_yield_join_debug_ns, "ns/task",
      "spawn + run (yields once) + join a task, debug mode on")
{
    at_set_debug(true);
    double r = spawn_yield_join(false);
    at_set_debug(false);
    return r;
}

BENCH(task_spawn_yield_join_noexport_ns, "ns/task",
      "spawn + run (yields once) + join a task, ASYNCTOP_SOCKET=off")
{
    return spawn_yield_join(true);
}

#define PENDING 100000

static int wait_event(void *arg, void **result)
{
    return at_event_wait(arg);
}

/* Resident bytes per task of 100k tasks waiting on one event. With `exported`, the process's
 * exporter runs (on a private socket) and mirrors them: its task table is counted too. */
static double pending_rss(bool exported)
{
    malloc_trim(0); /* heap freed by an earlier benchmark must not absorb these tasks */
    char dir[64] = "", path[96];
    if (exported) {
        snprintf(dir, sizeof dir, "/tmp/at-bench-task-XXXXXX");
        if (!mkdtemp(dir))
            return -1;
        snprintf(path, sizeof path, "%s/t.sock", dir);
        setenv("ASYNCTOP_SOCKET", path, 1);
    } else {
        setenv("ASYNCTOP_SOCKET", "off", 1);
    }
    at_loop_t *loop;
    at_event_t *ev;
    int rc = at_loop_new(&loop, NULL);
    unsetenv("ASYNCTOP_SOCKET");
    if (rc != 0 || at_event_new(loop, &ev) != 0)
        return -1;
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
    if (exported) {
        usleep(300000); /* the exporter's resync of the 100k rows is in its mirror */
        after = bench_rss_bytes();
    }
    at_event_set(ev);
    at_loop_run(loop, AT_RUN_DEFAULT);
    at_event_free(ev);
    at_loop_close(loop, NULL);
    if (exported)
        rmdir(dir);
    return (double)(after - before) / PENDING;
}

/* The task's own cost (the 5 KiB budget): no exporter. */
BENCH(task_pending_rss_bytes, "bytes/task", "resident memory of a task waiting on an event (100k)")
{
    return pending_rss(false);
}

BENCH(task_pending_rss_exported_bytes, "bytes/task",
      "the same with the exporter running: its mirror of the task table counted too")
{
    return pending_rss(true);
}

/* One repetition only: later ones would reuse the heap memory the first one
 * freed and under-count the task objects (stack pages are given back). */
__attribute__((constructor(200))) static void pending_rss_once(void)
{
    bench_def_task_pending_rss_bytes.reps = 1;
    bench_def_task_pending_rss_exported_bytes.reps = 1;
}

/* ---- TCP echo: a task per connection vs raw libuv callbacks ----------------------- */

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#define ECHO_CONNS 100
#define ECHO_REQS  1000 /* per connection (a run is ~0.2 s of server CPU) */
#define ECHO_MSG   64

/* The client: raw libuv on its own thread, the same for both servers. */
typedef struct echo_client_conn {
    uv_tcp_t tcp;
    uv_connect_t conn;
    char buf[ECHO_MSG];
    size_t got;
    int reqs;
} echo_client_conn_t;

typedef struct echo_client {
    int port;
    _Atomic int closed;
    void (*wake)(void *arg); /* called on the client thread once every connection is closed */
    void *wake_arg;
    uint64_t t0, t1;
    echo_client_conn_t conns[ECHO_CONNS];
} echo_client_t;

static char echo_msg[ECHO_MSG];

static void ec_alloc(uv_handle_t *h, size_t sz, uv_buf_t *b)
{
    echo_client_conn_t *c = h->data;
    b->base = c->buf + c->got;
    b->len = ECHO_MSG - c->got;
}

static void ec_closed(uv_handle_t *h)
{
    echo_client_t *cl = h->loop->data;
    if (++cl->closed == ECHO_CONNS) {
        cl->t1 = bench_now_ns();
        /* The server may already be back in its poll with nothing left to wake it. */
        cl->wake(cl->wake_arg);
    }
}

static void ec_send(echo_client_conn_t *c);

static void ec_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
    echo_client_conn_t *c = s->data;
    if (n < 0) {
        uv_close((uv_handle_t *)s, ec_closed);
        return;
    }
    c->got += (size_t)n;
    if (c->got == ECHO_MSG) {
        c->got = 0;
        if (++c->reqs == ECHO_REQS)
            uv_close((uv_handle_t *)s, ec_closed);
        else
            ec_send(c);
    }
}

static void ec_written(uv_write_t *w, int status)
{
    free(w);
}

static void ec_send(echo_client_conn_t *c)
{
    /* A request per write: the previous one's callback may still be due. */
    uv_buf_t b = uv_buf_init(echo_msg, ECHO_MSG);
    uv_write_t *w = malloc(sizeof *w);
    uv_write(w, (uv_stream_t *)&c->tcp, &b, 1, ec_written);
}

static void ec_connected(uv_connect_t *req, int status)
{
    echo_client_conn_t *c = req->data;
    if (status != 0) {
        uv_close((uv_handle_t *)&c->tcp, ec_closed);
        return;
    }
    uv_read_start((uv_stream_t *)&c->tcp, ec_alloc, ec_read);
    ec_send(c);
}

static void *echo_client_main(void *arg)
{
    echo_client_t *cl = arg;
    uv_loop_t loop;
    uv_loop_init(&loop);
    loop.data = cl;
    struct sockaddr_in addr;
    uv_ip4_addr("127.0.0.1", cl->port, &addr);
    cl->t0 = bench_now_ns();
    for (int i = 0; i < ECHO_CONNS; i++) {
        echo_client_conn_t *c = &cl->conns[i];
        uv_tcp_init(&loop, &c->tcp);
        c->tcp.data = c;
        c->conn.data = c;
        uv_tcp_connect(&c->conn, &c->tcp, (const struct sockaddr *)&addr, ec_connected);
    }
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    return NULL;
}

/* Server 1: a task per connection. */
static int echo_conn_task(void *arg, void **result)
{
    at_stream_t *conn = arg;
    char buf[4096];
    ssize_t n;
    while ((n = at_stream_read(conn, buf, sizeof buf)) > 0)
        if (at_stream_write(conn, buf, (size_t)n) != 0)
            break;
    at_stream_close(conn);
    return 0;
}

static int echo_serve_task(void *arg, void **result)
{
    at_stream_t *server = arg;
    for (;;) {
        at_stream_t *conn;
        int rc = at_stream_accept(server, &conn);
        if (rc != 0) {
            at_stream_close(server);
            return rc == AT_ECANCELED ? 0 : rc;
        }
        at_task_spawn(at_task_loop(at_task_current()), echo_conn_task, conn, NULL, NULL);
    }
}

static void echo_stop_server(at_loop_t *loop, void *arg)
{
    at_task_cancel(arg, "bench done");
}

static void echo_noop(at_loop_t *loop, void *arg)
{
}

static void echo_wake_tasks(void *arg)
{
    at_call_soon_threadsafe(arg, echo_noop, NULL, "echo done", NULL);
}

static double echo_tasks_rps(void)
{
    at_loop_t *loop;
    at_stream_t *server;
    if (at_loop_new(&loop, NULL) != 0 || at_tcp_listen(loop, "127.0.0.1", 0, 256, &server) != 0)
        return -1;
    static echo_client_t cl;
    memset(&cl, 0, sizeof cl);
    cl.port = at_stream_port(server);
    cl.wake = echo_wake_tasks;
    cl.wake_arg = loop;
    at_task_t *st;
    at_task_spawn(loop, echo_serve_task, server, NULL, &st);
    pthread_t th;
    uint64_t c0 = cpu_ns();
    pthread_create(&th, NULL, echo_client_main, &cl);
    at_loop_ref(loop); /* until the client is done */
    while (cl.closed < ECHO_CONNS)
        at_loop_run(loop, AT_RUN_ONCE);
    uint64_t c1 = cpu_ns();
    pthread_join(th, NULL);
    at_loop_unref(loop);
    at_call_soon(loop, echo_stop_server, st, NULL, NULL);
    at_loop_run(loop, AT_RUN_DEFAULT);
    at_task_unref(st);
    at_loop_close(loop, NULL);
    return (double)ECHO_CONNS * ECHO_REQS / ((double)(c1 - c0) / 1e9);
}

/* Server 2: raw libuv callbacks. */
typedef struct raw_conn {
    uv_tcp_t tcp;
    char buf[4096];
} raw_conn_t;

typedef struct raw_write {
    uv_write_t req;
    char data[];
} raw_write_t;

static void raw_alloc(uv_handle_t *h, size_t sz, uv_buf_t *b)
{
    raw_conn_t *c = h->data;
    b->base = c->buf;
    b->len = sizeof c->buf;
}

static void raw_closed(uv_handle_t *h)
{
    free(h->data);
}

static void raw_written(uv_write_t *w, int status)
{
    free(w);
}

static void raw_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
    if (n < 0) {
        uv_close((uv_handle_t *)s, raw_closed);
        return;
    }
    if (n == 0)
        return;
    /* As the task server: try the write now, queue a copy only if needed. */
    uv_buf_t out = uv_buf_init(b->base, (unsigned)n);
    int w = uv_try_write(s, &out, 1);
    if (w == n)
        return;
    if (w < 0)
        w = 0;
    raw_write_t *rw = malloc(sizeof *rw + (size_t)(n - w));
    memcpy(rw->data, b->base + w, (size_t)(n - w));
    out = uv_buf_init(rw->data, (unsigned)(n - w));
    uv_write(&rw->req, s, &out, 1, raw_written);
}

static void raw_connection(uv_stream_t *server, int status)
{
    raw_conn_t *c = malloc(sizeof *c);
    uv_tcp_init(server->loop, &c->tcp);
    c->tcp.data = c;
    if (uv_accept(server, (uv_stream_t *)&c->tcp) == 0)
        uv_read_start((uv_stream_t *)&c->tcp, raw_alloc, raw_read);
    else
        uv_close((uv_handle_t *)&c->tcp, raw_closed);
}

static void echo_wake_raw(void *arg)
{
    uv_async_send(arg);
}

static double echo_raw_rps(void)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    uv_async_t done;
    uv_async_init(&loop, &done, NULL);
    uv_tcp_t server;
    uv_tcp_init(&loop, &server);
    struct sockaddr_in addr;
    uv_ip4_addr("127.0.0.1", 0, &addr);
    uv_tcp_bind(&server, (const struct sockaddr *)&addr, 0);
    if (uv_listen((uv_stream_t *)&server, 256, raw_connection) != 0)
        return -1;
    struct sockaddr_in bound;
    int len = sizeof bound;
    uv_tcp_getsockname(&server, (struct sockaddr *)&bound, &len);
    static echo_client_t cl;
    memset(&cl, 0, sizeof cl);
    cl.port = ntohs(bound.sin_port);
    cl.wake = echo_wake_raw;
    cl.wake_arg = &done;
    pthread_t th;
    uint64_t c0 = cpu_ns();
    pthread_create(&th, NULL, echo_client_main, &cl);
    while (cl.closed < ECHO_CONNS)
        uv_run(&loop, UV_RUN_ONCE);
    uint64_t c1 = cpu_ns();
    pthread_join(th, NULL);
    uv_close((uv_handle_t *)&server, NULL);
    uv_close((uv_handle_t *)&done, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    return (double)ECHO_CONNS * ECHO_REQS / ((double)(c1 - c0) / 1e9);
}

/* Both echo servers are reported in requests per CPU-second of the server's
 * thread (the client is the same raw libuv program on its own thread): on a
 * loaded shared machine wall-clock req/s mostly measures the neighbours. */
BENCH(task_echo_tcp_rps, "req/cpu-s", "TCP echo, 100 connections, a task per connection")
{
    return echo_tasks_rps();
}

BENCH(task_echo_tcp_raw_libuv_rps, "req/cpu-s", "TCP echo, 100 connections, raw libuv callbacks")
{
    return echo_raw_rps();
}

static int cmp_double(const void *x, const void *y)
{
    double a = *(const double *)x, b = *(const double *)y;
    return (a > b) - (a < b);
}

/* The two servers above, interleaved: each pair runs both back to back (alternating which
 * goes first) and the median of the pairs' ratios is reported. The separate keys compare
 * medians taken at different moments: on a shared 2-core machine a neighbour that was busy
 * during one of them (the client thread then waits for a core, every poll returns fewer
 * events, and each request costs the server more CPU) moves their quotient far more than
 * anything the servers do. */
BENCH(task_echo_tcp_ratio, "x",
      "TCP echo, 100 connections: task per connection / raw libuv, req per CPU-s, median of "
      "7 interleaved pairs (target >= 0.9)")
{
    enum { PAIRS = 7 };
    double r[PAIRS];
    for (int i = 0; i < PAIRS; i++) {
        double t, raw;
        if (i % 2 == 0) {
            t = echo_tasks_rps();
            raw = echo_raw_rps();
        } else {
            raw = echo_raw_rps();
            t = echo_tasks_rps();
        }
        if (t <= 0 || raw <= 0)
            return -1;
        r[i] = t / raw;
    }
    qsort(r, PAIRS, sizeof *r, cmp_double);
    if (getenv("BENCH_VERBOSE")) {
        fprintf(stderr, "  echo ratios: min %.3f median %.3f max %.3f\n", r[0], r[PAIRS / 2],
                r[PAIRS - 1]);
    }
    return r[PAIRS / 2];
}

/* One repetition of 7 pairs is already a median. */
__attribute__((constructor(200))) static void echo_ratio_once(void)
{
    bench_def_task_echo_tcp_ratio.reps = 1;
}
