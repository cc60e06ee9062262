/* fork_uv.c: a plain libuv program for tests/preload/test_preload_programs.py's fork storm —
 * under the shim, a busy loop (a 1 ms timer, work items on libuv's thread pool) forks children
 * from a callback while the shim's exporter serves a client; each child runs a loop of its own
 * (which the shim watches, and for which it starts the child's own exporter). A line
 * "forks N GUARD_S" on stdin starts the storm (forks from the tick callback, the loop turning
 * between them) and prints "FORKS n=N ok=O hung=H failed=F": a child
 * still there GUARD_S seconds after its fork is hung (killed and counted); failed: exited
 * non-zero or by a signal. EOF on stdin: everything is closed and it exits 0. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

static uv_loop_t g_loop;
static uv_timer_t g_tick;
static uv_pipe_t g_stdin;
static char g_line[256];
static size_t g_linelen;
static int g_work_out;

static void work_cb(uv_work_t *w)
{
    (void)w;
    struct timespec d = {0, 50000};
    nanosleep(&d, NULL);
}

static void after_work_cb(uv_work_t *w, int status)
{
    (void)status;
    free(w);
    g_work_out--;
}

/* Keeps a few work items in flight: the shim's side table is used by pool threads too. */
static void queue_work(void)
{
    while (g_work_out < 32) {
        uv_work_t *w = malloc(sizeof *w);
        if (w == NULL || uv_queue_work(&g_loop, w, work_cb, after_work_cb) != 0) {
            free(w);
            return;
        }
        g_work_out++;
    }
}

static void child_timer_cb(uv_timer_t *t)
{
    uv_close((uv_handle_t *)t, NULL);
}

/* The child: a loop of its own, run to completion and closed. 0, or the failing step. */
static int child_loop(void)
{
    uv_loop_t loop;
    uv_timer_t t;
    if (uv_loop_init(&loop) != 0)
        return 10;
    uv_timer_init(&loop, &t);
    uv_timer_start(&t, child_timer_cb, 0, 0);
    if (uv_run(&loop, UV_RUN_DEFAULT) != 0)
        return 11;
    return uv_loop_close(&loop) == 0 ? 0 : 12;
}

/* The storm, one step per tick: fork into free slots (at most 8 children at once), reap, and
 * kill a child older than the guard. */
enum { INFLIGHT = 8 };
static struct {
    long n, guard_s, started, live, ok, hung, failed;
    int first_bad;
    struct {
        pid_t pid;
        uint64_t t0;
    } kids[INFLIGHT];
} g_storm;

static void storm_step(void)
{
    uint64_t guard_ns = (uint64_t)g_storm.guard_s * 1000000000u;
    for (int i = 0; i < INFLIGHT && g_storm.started < g_storm.n; i++) {
        if (g_storm.kids[i].pid != 0)
            continue;
        pid_t p = fork();
        if (p == 0)
            _exit(child_loop());
        g_storm.started++;
        if (p < 0) {
            g_storm.failed++;
            continue;
        }
        g_storm.kids[i].pid = p;
        g_storm.kids[i].t0 = uv_hrtime();
        g_storm.live++;
    }
    for (int i = 0; i < INFLIGHT; i++) {
        if (g_storm.kids[i].pid == 0)
            continue;
        int st;
        pid_t r = waitpid(g_storm.kids[i].pid, &st, WNOHANG);
        if (r == 0 && uv_hrtime() - g_storm.kids[i].t0 > guard_ns) {
            kill(g_storm.kids[i].pid, SIGKILL);
            waitpid(g_storm.kids[i].pid, &st, 0);
            g_storm.hung++;
        } else if (r == 0) {
            continue;
        } else if (r == g_storm.kids[i].pid && WIFEXITED(st) && WEXITSTATUS(st) == 0) {
            g_storm.ok++;
        } else {
            g_storm.failed++;
            if (g_storm.first_bad < 0)
                g_storm.first_bad = st;
        }
        g_storm.kids[i].pid = 0;
        g_storm.live--;
    }
    if (g_storm.started == g_storm.n && g_storm.live == 0) {
        printf("FORKS n=%ld ok=%ld hung=%ld failed=%ld first_bad_status=%d\n", g_storm.n,
               g_storm.ok, g_storm.hung, g_storm.failed, g_storm.first_bad);
        fflush(stdout);
        g_storm.n = 0;
    }
}

static void on_tick(uv_timer_t *t)
{
    (void)t;
    queue_work();
    if (g_storm.n > 0)
        storm_step();
}

static void on_alloc(uv_handle_t *h, size_t sz, uv_buf_t *buf)
{
    (void)h;
    (void)sz;
    static char b[256];
    buf->base = b;
    buf->len = sizeof b;
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    if (n < 0) {
        uv_close((uv_handle_t *)s, NULL);
        uv_close((uv_handle_t *)&g_tick, NULL);
        return;
    }
    for (ssize_t i = 0; i < n; i++) {
        char ch = buf->base[i];
        if (ch != '\n') {
            if (g_linelen + 1 < sizeof g_line)
                g_line[g_linelen++] = ch;
            continue;
        }
        g_line[g_linelen] = '\0';
        g_linelen = 0;
        long count = 0, guard = 10;
        if (g_storm.n == 0 && sscanf(g_line, "forks %ld %ld", &count, &guard) >= 1 && count > 0) {
            memset(&g_storm, 0, sizeof g_storm);
            g_storm.n = count;
            g_storm.guard_s = guard;
            g_storm.first_bad = -1;
            fflush(stdout);
        }
    }
}

int main(void)
{
    uv_loop_init(&g_loop);
    uv_timer_init(&g_loop, &g_tick);
    uv_timer_start(&g_tick, on_tick, 1, 1);
    uv_pipe_init(&g_loop, &g_stdin, 0);
    uv_pipe_open(&g_stdin, 0);
    uv_read_start((uv_stream_t *)&g_stdin, on_alloc, on_read);
    printf("READY %ld\n", (long)getpid());
    fflush(stdout);
    uv_run(&g_loop, UV_RUN_DEFAULT);
    return uv_loop_close(&g_loop) == 0 ? 0 : 3;
}
