/* export_target.c: a small libuv program instrumented with loopmon and served by the exporter,
 * driven line by line on stdin by the end-to-end tests (tests/e2e/test_export.py). */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "export.h"
#include "loopmon.h"

static uv_loop_t g_loop;
static at__mon_t *g_mon;
static at_export_attach_t *g_att;
static uv_pipe_t g_stdin;
static uv_timer_t g_tick;
static char g_line[4096];
static size_t g_linelen;
/* The program's own work: advanced by every tick, reported by the "count" command. */
static unsigned long g_ticks;

/* ---- a fake task provider: what core/tasks will give the exporter -------------------------- */

#define MAX_TASKS 200000
static at_export_task_row_t *g_tasks;
static void *(*g_create_stacks)[8];
static unsigned char *g_create_n;
static size_t g_ntasks;
static uint64_t g_next_task = 1;

static void provider_resync(void *ctx, at_export_resync_sink_t *sink)
{
    for (size_t i = 0; i < g_ntasks; i++)
        at__export_resync_add(sink, &g_tasks[i]);
}

static long task_index(uint64_t id)
{
    for (size_t i = 0; i < g_ntasks; i++)
        if (g_tasks[i].id == id)
            return (long)i;
    return -1;
}

static int provider_detail(void *ctx, uint64_t id, at_export_task_detail_t *out)
{
    long i = task_index(id);
    if (i < 0)
        return -ESRCH;
    out->row = g_tasks[i];
    out->creation.depth = g_create_n[i];
    memcpy(out->creation.pc, g_create_stacks[i], sizeof(void *) * g_create_n[i]);
    snprintf(out->wait_desc, sizeof out->wait_desc, "sleep (test task %llu)",
             (unsigned long long)id);
    return 0;
}

static int provider_cancel(void *ctx, uint64_t id)
{
    long i = task_index(id);
    if (i < 0)
        return -ESRCH;
    if (g_tasks[i].state == AT_EXPORT_TASK_CANCELLED)
        return -EALREADY;
    g_tasks[i].state = AT_EXPORT_TASK_CANCELLED;
    at__export_task_post(g_att, AT_EXPORT_TASK_CHANGED, &g_tasks[i]);
    return 0;
}

static const at_export_provider_t g_provider = {
    .name = "export-target",
    .caps = AT_EXPORT_CAP_TASKS | AT_EXPORT_CAP_TASK_DETAIL | AT_EXPORT_CAP_CANCEL,
    .resync = provider_resync,
    .task_detail = provider_detail,
    .task_cancel = provider_cancel,
};

static void task_entry(void)
{
}

__attribute__((noinline)) static void spawn_tasks(long n)
{
    for (long k = 0; k < n && g_ntasks < MAX_TASKS; k++) {
        at_export_task_row_t *t = &g_tasks[g_ntasks];
        memset(t, 0, sizeof *t);
        t->id = g_next_task++;
        t->created_ns = at__now_ns();
        t->wait_since_ns = t->created_ns;
        t->state = AT_EXPORT_TASK_WAITING;
        t->wait_kind = 3; /* sleep */
        t->entry_fn = (void *)task_entry;
        snprintf(t->name, sizeof t->name, "worker-%llu", (unsigned long long)t->id);
        g_create_n[g_ntasks] = (unsigned char)at__stack_capture(g_create_stacks[g_ntasks], 8, 0);
        t->create_pc = g_create_n[g_ntasks] ? g_create_stacks[g_ntasks][0] : NULL;
        at__export_task_post(g_att, AT_EXPORT_TASK_ADDED, t);
        g_ntasks++;
    }
}

static void finish_tasks(long n)
{
    for (long k = 0; k < n && g_ntasks > 0; k++) {
        g_ntasks--;
        at__export_task_post(g_att, AT_EXPORT_TASK_REMOVED, &g_tasks[g_ntasks]);
    }
}

/* ---- instrumented callbacks --------------------------------------------------------------- */

/* Busy for ms milliseconds: the function a blocked loop is stuck in. */
__attribute__((noinline)) static void parse_request(long ms)
{
    uint64_t end = at__now_ns() + (uint64_t)ms * 1000000u;
    volatile uint64_t x = 0;
    while (at__now_ns() < end)
        x++;
}

/* Blocked in one nanosleep() for ms milliseconds — no retry loop, so a signal that cut it short
 * would show: prints "NAP rc=R errno=E elapsed_ns=N" (the test wants rc=0, N >= ms). */
__attribute__((noinline)) static void wait_for_disk(long ms)
{
    struct timespec t0, t1, req = {ms / 1000, (ms % 1000) * 1000000L};
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int rc = nanosleep(&req, NULL);
    int e = rc == 0 ? 0 : errno;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    long long ns = (t1.tv_sec - t0.tv_sec) * 1000000000LL + (t1.tv_nsec - t0.tv_nsec);
    printf("NAP rc=%d errno=%d elapsed_ns=%lld\n", rc, e, ns);
}

/* The same with one poll() on no descriptors with a timeout: "POLL rc=R errno=E elapsed_ns=N"
 * (rc=0: it timed out; -1 EINTR: a signal cut it short). */
__attribute__((noinline)) static void wait_for_peer(long ms)
{
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int rc = poll(NULL, 0, (int)ms);
    int e = rc >= 0 ? 0 : errno;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    long long ns = (t1.tv_sec - t0.tv_sec) * 1000000000LL + (t1.tv_nsec - t0.tv_nsec);
    printf("POLL rc=%d errno=%d elapsed_ns=%lld\n", rc, e, ns);
}

/* ---- profiling a stall (issue 16): one callback that spends known shares of its time in
 * known functions. The spinning loops check the clock only every 2^16 turns, so that samples
 * land in the function itself, not in the clock call. */

static volatile uint64_t g_sink;

/* Busy for ms milliseconds in the caller's own loop; the nanoseconds it took. */
#define SPIN_BODY(ms, step)                                                                        \
    do {                                                                                           \
        struct timespec t0, t1;                                                                    \
        clock_gettime(CLOCK_MONOTONIC, &t0);                                                       \
        long long want = (long long)(ms)*1000000LL, ns = 0;                                        \
        while (ns < want) {                                                                        \
            for (int i = 0; i < 65536; i++)                                                        \
                g_sink = g_sink + (step); /* differs: no identical code folding */                 \
            clock_gettime(CLOCK_MONOTONIC, &t1);                                                   \
            ns = (t1.tv_sec - t0.tv_sec) * 1000000000LL + (t1.tv_nsec - t0.tv_nsec);               \
        }                                                                                          \
        return ns;                                                                                 \
    } while (0)

__attribute__((noinline)) static long long settle_input(long ms)
{
    SPIN_BODY(ms, 1);
}

__attribute__((noinline)) static long long scan_headers(long ms)
{
    SPIN_BODY(ms, 2);
}

__attribute__((noinline)) static long long build_reply(long ms)
{
    SPIN_BODY(ms, 3);
}

/* "profile A B": 150 ms in settle_input (the stall is being noticed), then A ms in
 * scan_headers and B ms in build_reply; prints what each took by the clock:
 * "PROFILE scan_ns=N build_ns=M". */
__attribute__((noinline)) static void serve_request(long a_ms, long b_ms)
{
    settle_input(150);
    long long a = scan_headers(a_ms);
    long long b = build_reply(b_ms);
    printf("PROFILE scan_ns=%lld build_ns=%lld\n", a, b);
}

/* Spins ms milliseconds at recursion depth d: every depth is another stack. */
__attribute__((noinline)) static long long descend(int d, long ms)
{
    if (d <= 1)
        SPIN_BODY(ms, 4);
    long long r = descend(d - 1, ms);
    g_sink = g_sink + 1; /* not a tail call: every level keeps its frame */
    return r;
}

/* "fanout N MS": MS milliseconds at each depth 1..N: N distinct stacks. */
__attribute__((noinline)) static void fan_out(long n, long ms)
{
    for (int d = 1; d <= n; d++)
        descend(d, ms);
    printf("FANOUT %ld\n", n);
}

/* ---- fork storm: children of a busy, watched process create and watch a loop of their own ---- */

/* What a forked child does: its own exporter, a loop with a monitor and an attachment (the
 * locks a parent thread may have held at the fork: the exporter's, the attachment registry's,
 * loopmon's registry), one turn of the loop, then everything closed. 0 or the failing step. */
static int fork_child_loop(void)
{
    uv_loop_t loop;
    at__mon_t *mon;
    if (uv_loop_init(&loop) != 0)
        return 10;
    if (at__mon_create(&loop, &mon) != 0)
        return 11;
    int started = at__export_start(NULL);
    at_export_attach_t *att = at__export_attach(&loop, &g_provider);
    if (att == NULL)
        return 12;
    uv_run(&loop, UV_RUN_NOWAIT);
    at__export_detach(att);
    if (started == 0)
        at__export_stop();
    at__mon_close(mon);
    uv_run(&loop, UV_RUN_DEFAULT);
    return uv_loop_close(&loop) == 0 ? 0 : 13;
}

/* Forks n children (at most 8 at once) from this loop callback while the exporter runs; a
 * child still there guard_s seconds after its fork is hung: killed and counted. Prints
 * "FORKS n=N ok=O hung=H failed=F" (failed: a child that exited non-zero or by a signal). */
static void fork_storm(long n, long guard_s)
{
    enum { INFLIGHT = 8 };
    struct {
        pid_t pid;
        uint64_t t0;
    } kids[INFLIGHT] = {{0, 0}};
    long started = 0, live = 0, ok = 0, hung = 0, failed = 0;
    int first_bad = -1;
    uint64_t guard_ns = (uint64_t)guard_s * 1000000000u;
    fflush(stdout);
    fflush(stderr);
    size_t busy = 0;
    while (started < n || live > 0) {
        /* the loop's own work goes on between forks: task changes the exporter drains (fewer
         * than its ring holds per tick, so that none is dropped) */
        for (int k = 0; k < 40 && g_ntasks > 0; k++, busy++) {
            at_export_task_row_t *row = &g_tasks[busy % g_ntasks];
            row->steps++;
            at__export_task_post(g_att, AT_EXPORT_TASK_CHANGED, row);
        }
        for (int i = 0; i < INFLIGHT && started < n; i++) {
            if (kids[i].pid != 0)
                continue;
            pid_t p = fork();
            if (p == 0)
                _exit(fork_child_loop());
            started++;
            if (p < 0) {
                failed++;
                continue;
            }
            kids[i].pid = p;
            kids[i].t0 = uv_hrtime();
            live++;
        }
        int reaped = 0;
        for (int i = 0; i < INFLIGHT; i++) {
            if (kids[i].pid == 0)
                continue;
            int st;
            pid_t r = waitpid(kids[i].pid, &st, WNOHANG);
            if (r == 0 && uv_hrtime() - kids[i].t0 > guard_ns) {
                kill(kids[i].pid, SIGKILL);
                waitpid(kids[i].pid, &st, 0);
                hung++;
            } else if (r == 0) {
                continue;
            } else if (r == kids[i].pid && WIFEXITED(st) && WEXITSTATUS(st) == 0) {
                ok++;
            } else {
                failed++;
                if (first_bad < 0)
                    first_bad = st;
            }
            kids[i].pid = 0;
            live--;
            reaped++;
        }
        if (reaped == 0 && (started == n || live == INFLIGHT)) {
            struct timespec d = {0, 1000000};
            nanosleep(&d, NULL);
        }
    }
    printf("FORKS n=%ld ok=%ld hung=%ld failed=%ld first_bad_status=%d\n", n, ok, hung, failed,
           first_bad);
}

__attribute__((noinline)) static void handle_command(char *line)
{
    char cmd[32] = "";
    long arg = 0, arg2 = 0;
    sscanf(line, "%31s %ld %ld", cmd, &arg, &arg2);
    if (strcmp(cmd, "spin") == 0 || strcmp(cmd, "slow") == 0) {
        parse_request(arg);
    } else if (strcmp(cmd, "profile") == 0) {
        serve_request(arg, arg2);
    } else if (strcmp(cmd, "fanout") == 0) {
        fan_out(arg, arg2);
    } else if (strcmp(cmd, "nap") == 0) {
        wait_for_disk(arg);
    } else if (strcmp(cmd, "pollnap") == 0) {
        wait_for_peer(arg);
    } else if (strcmp(cmd, "tasks") == 0) {
        spawn_tasks(arg);
    } else if (strcmp(cmd, "finish") == 0) {
        finish_tasks(arg);
    } else if (strcmp(cmd, "warn") == 0) {
        /* what core reports for a handle left open at close: a warning event */
        at__event_t ev;
        at__event_init(&ev, AT__EV_WARNING);
        snprintf(ev.code, sizeof ev.code, "unclosed");
        snprintf(ev.text, sizeof ev.text, "unclosed tcp handle (test %ld)", arg);
        ev.nstack = (uint8_t)at__stack_capture(ev.stack, AT__EV_STACK_MAX, 0);
        at__mon_post(g_mon, &ev);
    } else if (strcmp(cmd, "warns") == 0) {
        /* a burst: more than the event ring holds, so some are dropped (and counted) */
        for (long k = 0; k < arg; k++) {
            at__event_t ev;
            at__event_init(&ev, AT__EV_WARNING);
            snprintf(ev.code, sizeof ev.code, "burst");
            snprintf(ev.text, sizeof ev.text, "burst warning %ld", k);
            at__mon_post(g_mon, &ev);
        }
    } else if (strcmp(cmd, "count") == 0) {
        uint64_t produced[AT__EV_KIND_MAX] = {0}, dropped[AT__EV_KIND_MAX] = {0};
        for (int k = 0; k < AT__EV_KIND_MAX; k++)
            at__mon_event_counts(g_mon, (at__event_kind_t)k, &produced[k], &dropped[k]);
        /* ticks, tasks, then events produced / dropped: slow, warning */
        printf("COUNT %lu %zu %llu %llu %llu %llu\n", g_ticks, g_ntasks,
               (unsigned long long)produced[AT__EV_SLOW], (unsigned long long)dropped[AT__EV_SLOW],
               (unsigned long long)produced[AT__EV_WARNING],
               (unsigned long long)dropped[AT__EV_WARNING]);
    } else if (strcmp(cmd, "threshold") == 0) {
        at__slow_threshold_set_ns((uint64_t)arg * 1000000u);
    } else if (strcmp(cmd, "fork") == 0) {
        fflush(stdout);
        pid_t p = fork();
        if (p == 0) {
            /* the child: no exporter thread was inherited; it may start its own */
            int running = at__export_running();
            char path[128] = "";
            int r = at__export_start(NULL);
            at__export_socket_path(path, sizeof path);
            printf("CHILD inherited=%d started=%d path=%s\n", running, r, path);
            fflush(stdout);
            at__export_stop();
            _exit(0);
        }
        int st;
        waitpid(p, &st, 0);
    } else if (strcmp(cmd, "forks") == 0) {
        fork_storm(arg, arg2 > 0 ? arg2 : 10);
    } else if (strcmp(cmd, "exit") == 0) {
        printf("OK exit\n");
        fflush(stdout);
        exit(0); /* the atexit handler removes the socket */
    } else if (strcmp(cmd, "quit") == 0) {
        uv_stop(&g_loop);
    }
    printf("OK %s\n", cmd);
    fflush(stdout);
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
        uv_stop(&g_loop);
        return;
    }
    at__cb_t cb;
    at__cb_begin(g_mon, &cb, at__mon_site(g_mon, (void *)on_read, "on_command"), AT__CB_IO);
    for (ssize_t i = 0; i < n; i++) {
        char ch = buf->base[i];
        if (ch == '\n') {
            g_line[g_linelen] = '\0';
            g_linelen = 0;
            handle_command(g_line);
        } else if (g_linelen + 1 < sizeof g_line) {
            g_line[g_linelen++] = ch;
        }
    }
    at__cb_end(g_mon, &cb);
}

/* Regular activity: some callbacks and a changing task, so deltas have content. */
static void on_tick(uv_timer_t *t)
{
    at__cb_t cb;
    at__cb_begin(g_mon, &cb, at__mon_site(g_mon, (void *)on_tick, NULL), AT__CB_TIMER);
    g_ticks++;
    if (g_ntasks > 0) {
        at_export_task_row_t *row = &g_tasks[0];
        row->steps++;
        row->busy_ns += 1000;
        at__export_task_post(g_att, AT_EXPORT_TASK_CHANGED, row);
    }
    at__cb_end(g_mon, &cb);
}

int main(int argc, char **argv)
{
    at_export_config_t cfg = {0};
    int keep_going = 0; /* --keep-going: run on without an exporter when it refuses to start */
    for (int i = 1; i < argc; i += 2) {
        if (strcmp(argv[i], "--keep-going") == 0) {
            keep_going = 1;
            i--;
        } else if (i + 1 >= argc)
            break;
        else if (strcmp(argv[i], "--out-max") == 0)
            cfg.client_out_max = strtoul(argv[i + 1], NULL, 10);
        else if (strcmp(argv[i], "--stall-ms") == 0)
            cfg.stall_ms = (unsigned)strtoul(argv[i + 1], NULL, 10);
        else if (strcmp(argv[i], "--handshake-ms") == 0)
            cfg.handshake_ms = (unsigned)strtoul(argv[i + 1], NULL, 10);
        else if (strcmp(argv[i], "--nofile") == 0) {
            struct rlimit rl = {strtoul(argv[i + 1], NULL, 10), strtoul(argv[i + 1], NULL, 10)};
            setrlimit(RLIMIT_NOFILE, &rl);
        }
    }
    g_tasks = calloc(MAX_TASKS, sizeof *g_tasks);
    g_create_stacks = calloc(MAX_TASKS, sizeof *g_create_stacks);
    g_create_n = calloc(MAX_TASKS, 1);
    if (!g_tasks || !g_create_stacks || !g_create_n)
        return 1;
    uv_loop_init(&g_loop);
    at__stack_bounds_init();
    if (at__mon_create(&g_loop, &g_mon) != 0)
        return 1;
    int r = at__export_start(&cfg);
    if (r < 0 && !keep_going) {
        printf("FAILED %d\n", r);
        fflush(stdout);
        at__log_flush(1000000000u);
        return 2;
    }
    g_att = at__export_attach(&g_loop, &g_provider);
    char path[128] = "off";
    if (r < 0)
        snprintf(path, sizeof path, "refused:%d", r);
    else
        at__export_socket_path(path, sizeof path);
    printf("READY %s %ld\n", path, (long)getpid());
    fflush(stdout);

    uv_pipe_init(&g_loop, &g_stdin, 0);
    uv_pipe_open(&g_stdin, 0);
    uv_read_start((uv_stream_t *)&g_stdin, on_alloc, on_read);
    uv_timer_init(&g_loop, &g_tick);
    uv_timer_start(&g_tick, on_tick, 20, 20);
    uv_run(&g_loop, UV_RUN_DEFAULT);

    /* orderly shutdown: detach, stop the exporter, close the monitor and the loop */
    at__export_detach(g_att);
    at__export_stop();
    uv_close((uv_handle_t *)&g_stdin, NULL);
    uv_close((uv_handle_t *)&g_tick, NULL);
    at__mon_close(g_mon);
    uv_run(&g_loop, UV_RUN_DEFAULT);
    int cr = uv_loop_close(&g_loop);
    at__loopmon_shutdown();
    free(g_tasks);
    free(g_create_stacks);
    free(g_create_n);
    printf("BYE %d\n", cr);
    return cr == 0 ? 0 : 3;
}
