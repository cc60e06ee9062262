/* bench_export.c: what the exporter costs — its own thread's CPU while it mirrors 100,000 tasks
 * for one client at 1 Hz, and the throughput an instrumented callback chain keeps when a
 * client is attached (same run, ratios); then the same two figures on the real runtime — at_loop,
 * at_call_soon and 100,000 real tasks through the tasks layer's provider. */
#include "bench.h"
#include "export.h"
#include "loopmon.h"

#include <dirent.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "asynctop.h"
#include "at_wire.h"

/* ---- an exporter on a socket in a private directory ------------------------------------- */

static char g_dir[64];
static char g_path[96];

static int exporter_start(void)
{
    snprintf(g_dir, sizeof g_dir, "/tmp/at-bench-export-XXXXXX");
    if (mkdtemp(g_dir) == NULL)
        return -errno;
    snprintf(g_path, sizeof g_path, "%s/b.sock", g_dir);
    at_export_config_t cfg = {.socket_path = g_path, .program = "asynctop-bench"};
    return at__export_start(&cfg);
}

static void exporter_stop(void)
{
    at__export_stop();
    rmdir(g_dir);
}

/* The exporter thread's kernel tid, found by its name. */
static pid_t exporter_tid(void)
{
    DIR *d = opendir("/proc/self/task");
    struct dirent *de;
    pid_t tid = 0;
    while (d && (de = readdir(d)) != NULL) {
        char p[300], comm[32] = "";
        snprintf(p, sizeof p, "/proc/self/task/%s/comm", de->d_name);
        FILE *f = fopen(p, "r");
        if (f == NULL)
            continue;
        if (fgets(comm, sizeof comm, f) && strncmp(comm, "asynctop-export", 15) == 0)
            tid = (pid_t)atoi(de->d_name);
        fclose(f);
    }
    if (d)
        closedir(d);
    return tid;
}

/* utime + stime of a thread, in clock ticks (/proc/self/task/<tid>/stat fields 14, 15). */
static long thread_ticks(pid_t tid)
{
    char p[64], buf[1024];
    snprintf(p, sizeof p, "/proc/self/task/%ld/stat", (long)tid);
    FILE *f = fopen(p, "r");
    if (f == NULL)
        return -1;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    char *s = strrchr(buf, ')');
    if (s == NULL)
        return -1;
    unsigned long ut = 0, st = 0;
    /* after ") ": state(3) ... utime is field 14 */
    if (sscanf(s + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) != 2)
        return -1;
    return (long)(ut + st);
}

/* ---- a client thread that subscribes and reads everything ------------------------------ */

typedef struct reader {
    pthread_t th;
    uint32_t interval_ms;
    _Atomic int stop;
    _Atomic uint64_t updates;
    _Atomic uint64_t bytes;
    int fd;
} reader_t;

static void *reader_main(void *arg)
{
    reader_t *r = arg;
    at_wire_buf_t b;
    at_wire_buf_init(&b);
    at_wire_subscribe_t s = {.interval_ms = r->interval_ms};
    at_wire_encode_subscribe(&b, &s);
    (void)!send(r->fd, b.data, b.len, MSG_NOSIGNAL);
    at_wire_buf_free(&b);
    /* counts frames without decoding them: the client's cost is not what is measured */
    uint8_t hdr[4];
    size_t have = 0, need = 4, frames = 0;
    bool in_body = false;
    static __thread uint8_t buf[1 << 16];
    while (!atomic_load(&r->stop)) {
        struct pollfd pfd = {.fd = r->fd, .events = POLLIN};
        if (poll(&pfd, 1, 100) != 1)
            continue;
        ssize_t n = recv(r->fd, buf, sizeof buf, 0);
        if (n <= 0)
            break;
        atomic_fetch_add(&r->bytes, (uint64_t)n);
        for (ssize_t i = 0; i < n;) {
            size_t take = need - have;
            if (take > (size_t)(n - i))
                take = (size_t)(n - i);
            if (!in_body)
                memcpy(hdr + have, buf + i, take);
            have += take;
            i += (ssize_t)take;
            if (have < need)
                continue;
            if (!in_body) {
                need = ((size_t)hdr[0] << 24) | ((size_t)hdr[1] << 16) | ((size_t)hdr[2] << 8) |
                       hdr[3];
                in_body = true;
            } else {
                frames++;
                if (frames >= 2) /* after hello */
                    atomic_fetch_add(&r->updates, 1);
                in_body = false;
                need = 4;
            }
            have = 0;
        }
    }
    return NULL;
}

static int reader_start(reader_t *r, uint32_t interval_ms)
{
    memset(r, 0, sizeof *r);
    r->interval_ms = interval_ms;
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s", g_path);
    r->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (r->fd < 0 || connect(r->fd, (struct sockaddr *)&sa, sizeof sa) != 0)
        return -errno;
    return -pthread_create(&r->th, NULL, reader_main, r);
}

static void reader_stop(reader_t *r)
{
    atomic_store(&r->stop, 1);
    pthread_join(r->th, NULL);
    close(r->fd);
}

/* ---- 100,000 tasks on a loop thread ------------------------------------------------------ */

#define NTASKS           100000
#define CHANGES_PER_TICK 100 /* every 100 ms: 1,000 task changes a second */

typedef struct app {
    uv_loop_t loop;
    at__mon_t *mon;
    at_export_attach_t *att;
    uv_timer_t timer;
    uv_async_t stop;
    pthread_t th;
    at_export_task_row_t *rows;
    size_t next;
    _Atomic int ready;
} app_t;

static void app_resync(void *ctx, at_export_resync_sink_t *sink)
{
    app_t *a = ctx;
    for (size_t i = 0; i < NTASKS; i++)
        at__export_resync_add(sink, &a->rows[i]);
}

static void task_fn(void)
{
}

static void app_tick(uv_timer_t *t)
{
    app_t *a = t->data;
    at__cb_t cb;
    at__cb_begin(a->mon, &cb, at__mon_site(a->mon, (void *)app_tick, NULL), AT__CB_TIMER);
    for (int i = 0; i < CHANGES_PER_TICK; i++) {
        at_export_task_row_t *r = &a->rows[a->next++ % NTASKS];
        r->steps++;
        r->busy_ns += 1000;
        r->state =
            r->state == AT_EXPORT_TASK_WAITING ? AT_EXPORT_TASK_READY : AT_EXPORT_TASK_WAITING;
        at__export_task_post(a->att, AT_EXPORT_TASK_CHANGED, r);
    }
    at__cb_end(a->mon, &cb);
}

static void app_stop_cb(uv_async_t *h)
{
    app_t *a = h->data;
    uv_timer_stop(&a->timer);
    uv_close((uv_handle_t *)&a->timer, NULL);
    uv_close((uv_handle_t *)&a->stop, NULL);
    at__export_detach(a->att);
    at__mon_close(a->mon);
}

static void *app_main(void *arg)
{
    static const at_export_provider_t prov = {
        .name = "bench", .caps = AT_EXPORT_CAP_TASKS, .resync = app_resync};
    app_t *a = arg;
    at_export_provider_t *p = malloc(sizeof *p);
    *p = prov;
    p->ctx = a;
    uv_loop_init(&a->loop);
    at__stack_bounds_init();
    at__mon_create(&a->loop, &a->mon);
    a->att = at__export_attach(&a->loop, p);
    uv_timer_init(&a->loop, &a->timer);
    a->timer.data = a;
    uv_timer_start(&a->timer, app_tick, 100, 100);
    uv_async_init(&a->loop, &a->stop, app_stop_cb);
    a->stop.data = a;
    atomic_store(&a->ready, 1);
    uv_run(&a->loop, UV_RUN_DEFAULT);
    uv_loop_close(&a->loop);
    free(p);
    return NULL;
}

BENCH(export_cpu_100k_tasks, "% of a core",
      "exporter thread CPU: 100k tasks (provider), 1k changes/s, one client at 1 Hz")
{
    if (exporter_start() != 0)
        return -1;
    app_t *a = calloc(1, sizeof *a);
    a->rows = calloc(NTASKS, sizeof *a->rows);
    uint64_t now = at__now_ns();
    for (size_t i = 0; i < NTASKS; i++) {
        at_export_task_row_t *r = &a->rows[i];
        r->id = i + 1;
        r->created_ns = now;
        r->wait_since_ns = now;
        r->state = AT_EXPORT_TASK_WAITING;
        r->wait_kind = 3;
        r->entry_fn = (void *)task_fn;
        snprintf(r->name, sizeof r->name, "conn-%zu", i);
    }
    pthread_create(&a->th, NULL, app_main, a);
    while (!atomic_load(&a->ready))
        usleep(1000);
    reader_t r;
    if (reader_start(&r, 1000) != 0)
        return -1;
    /* warm-up: the resync of 100k rows and the first snapshot are not the steady state */
    uint64_t t0 = bench_now_ns();
    while (atomic_load(&r.bytes) < 2000000u && bench_now_ns() - t0 < 20000000000ull)
        usleep(10000); /* the 100k rows have arrived (about 3.5 MB) */
    uint64_t u = atomic_load(&r.updates);
    while (atomic_load(&r.updates) < u + 2 && bench_now_ns() - t0 < 20000000000ull)
        usleep(10000);
    pid_t tid = exporter_tid();
    long ticks0 = thread_ticks(tid);
    uint64_t w0 = bench_now_ns(), b0 = atomic_load(&r.bytes), u0 = atomic_load(&r.updates);
    sleep(3);
    long ticks1 = thread_ticks(tid);
    uint64_t w1 = bench_now_ns();
    uint64_t updates = atomic_load(&r.updates);
    fprintf(stderr, "  export: %llu updates, %llu bytes in the window; %ld ticks\n",
            (unsigned long long)(updates - u0), (unsigned long long)(atomic_load(&r.bytes) - b0),
            ticks1 - ticks0);
    reader_stop(&r);
    uv_async_send(&a->stop);
    pthread_join(a->th, NULL);
    exporter_stop();
    free(a->rows);
    free(a);
    if (tid == 0 || ticks0 < 0 || ticks1 < 0 || updates < 3)
        return -1;
    double cpu_s = (double)(ticks1 - ticks0) / (double)sysconf(_SC_CLK_TCK);
    return 100.0 * cpu_s / ((double)(w1 - w0) / 1e9);
}

/* ---- the instrumented chain with and without a client ----------------------------------- */

#define BATCH 1024

typedef struct chain {
    uint64_t n, target;
    at__mon_t *mon;
    at__site_t *site;
} chain_t;

__attribute__((noinline)) static void chain_cb(chain_t *c)
{
    c->n++;
    __asm__ volatile("" ::: "memory");
}

static void chain_idle(uv_idle_t *h)
{
    chain_t *c = h->data;
    for (int i = 0; i < BATCH; i++) {
        at__cb_t cb;
        at__cb_begin(c->mon, &cb, c->site, AT__CB_READY);
        chain_cb(c);
        at__cb_end(c->mon, &cb);
    }
    if (c->n >= c->target)
        uv_idle_stop(h);
}

/* ns per callback of a loopmon-timed chain (as core's ready queue runs them). */
static double chain_run(uint64_t target)
{
    uv_loop_t loop;
    uv_idle_t idle;
    chain_t c = {0, target, NULL, NULL};
    uv_loop_init(&loop);
    at__mon_create(&loop, &c.mon);
    c.site = at__mon_site(c.mon, (void *)chain_cb, NULL);
    uv_idle_init(&loop, &idle);
    idle.data = &c;
    uv_idle_start(&idle, chain_idle);
    uint64_t t0 = bench_now_ns();
    uv_run(&loop, UV_RUN_DEFAULT);
    uint64_t t1 = bench_now_ns();
    uv_close((uv_handle_t *)&idle, NULL);
    at__mon_close(c.mon);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    return (double)(t1 - t0) / (double)c.n;
}

static int cmp_d(const void *x, const void *y)
{
    double a = *(const double *)x, b = *(const double *)y;
    return (a > b) - (a < b);
}

BENCH(export_chain_client_ratio, "ratio",
      "timed callback chain: throughput with a client at 100 ms / without an exporter")
{
    /* Interleaved pairs (without, with), medians of each: the machine is shared, and noise
     * that hits one run must not be read as the exporter's cost. */
    enum { PAIRS = 5 };
    const uint64_t n = 2u * 1000u * 1000u;
    double base[PAIRS], with[PAIRS];
    chain_run(n / 4); /* warm-up */
    for (int i = 0; i < PAIRS; i++) {
        base[i] = chain_run(n);
        if (exporter_start() != 0)
            return -1;
        reader_t r;
        if (reader_start(&r, 100) != 0)
            return -1;
        usleep(200000); /* subscribed and receiving */
        with[i] = chain_run(n);
        reader_stop(&r);
        exporter_stop();
    }
    qsort(base, PAIRS, sizeof *base, cmp_d);
    qsort(with, PAIRS, sizeof *with, cmp_d);
    fprintf(stderr, "  chain: median %.2f ns/cb without an exporter, %.2f ns/cb with a client\n",
            base[PAIRS / 2], with[PAIRS / 2]);
    return base[PAIRS / 2] / with[PAIRS / 2];
}

/* ---- the real runtime: at_loop_new starts libasynctop's own exporter -------------------------
 * (The benchmark program links the exporter statically too, for the figures above; the real
 * runtime's copy is inside libasynctop and is driven by ASYNCTOP_SOCKET, like a program's.) */

static uint64_t thread_cpu_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Points ASYNCTOP_SOCKET at a private directory (on) or "off". */
static int real_socket(bool on)
{
    if (!on)
        return setenv("ASYNCTOP_SOCKET", "off", 1);
    snprintf(g_dir, sizeof g_dir, "/tmp/at-bench-export-XXXXXX");
    if (mkdtemp(g_dir) == NULL)
        return -errno;
    snprintf(g_path, sizeof g_path, "%s/r.sock", g_dir);
    return setenv("ASYNCTOP_SOCKET", g_path, 1);
}

typedef struct rchain {
    long left;
} rchain_t;

static void rchain_cb(at_loop_t *loop, void *arg)
{
    rchain_t *c = arg;
    if (--c->left > 0)
        at_call_soon(loop, rchain_cb, c, "chain", NULL);
}

/* Loop-thread CPU ns per callback of the 1M at_call_soon chain; with `client`, libasynctop's
 * exporter runs and a client reads updates at 1 Hz throughout. */
/* CPU ns of another thread of this process, by kernel tid (the kernel's per-thread CPU clock id,
 * MAKE_THREAD_CPUCLOCK(tid, CPUCLOCK_SCHED)): ns resolution, not clock ticks. -1 on error. */
static int64_t tid_cpu_ns(pid_t tid)
{
    clockid_t id = (clockid_t)((~(unsigned)tid << 3) | 6u);
    struct timespec ts;
    if (clock_gettime(id, &ts) != 0)
        return -1;
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static double real_chain_ns(bool client)
{
    enum { N = 1000000 };
    if (real_socket(client) != 0)
        return -1;
    at_loop_t *loop;
    if (at_loop_new(&loop, NULL) != 0)
        return -1;
    reader_t r;
    if (client) {
        if (reader_start(&r, 1000) != 0)
            return -1;
        uint64_t t0 = bench_now_ns();
        while (atomic_load(&r.updates) < 1 && bench_now_ns() - t0 < 5000000000ull)
            usleep(1000); /* subscribed: the first snapshot is in */
    }
    rchain_t c = {N};
    uint64_t t0 = thread_cpu_ns();
    at_call_soon(loop, rchain_cb, &c, "chain", NULL);
    at_loop_run(loop, AT_RUN_DEFAULT);
    uint64_t t1 = thread_cpu_ns();
    if (client)
        reader_stop(&r);
    at_loop_close(loop, NULL);
    if (client)
        rmdir(g_dir);
    unsetenv("ASYNCTOP_SOCKET");
    return c.left == 0 ? (double)(t1 - t0) / N : -1;
}

BENCH(export_real_chain_client_ratio, "ratio",
      "1M at_call_soon chain: throughput with a client at 1 Hz / with ASYNCTOP_SOCKET=off "
      "(target >= 0.97)")
{
    /* Interleaved pairs, medians of each (loop-thread CPU time: the neighbours do not count). */
    enum { PAIRS = 5 };
    double off[PAIRS], on[PAIRS];
    real_chain_ns(false); /* warm-up */
    for (int i = 0; i < PAIRS; i++) {
        off[i] = real_chain_ns(false);
        on[i] = real_chain_ns(true);
        if (off[i] <= 0 || on[i] <= 0)
            return -1;
    }
    qsort(off, PAIRS, sizeof *off, cmp_d);
    qsort(on, PAIRS, sizeof *on, cmp_d);
    fprintf(stderr, "  real chain: median %.2f ns/cb export off, %.2f ns/cb with a client\n",
            off[PAIRS / 2], on[PAIRS / 2]);
    return off[PAIRS / 2] / on[PAIRS / 2];
}

/* 100,000 real tasks on a loop thread of their own: all wait on one event, and one more task
 * sleeps 10 ms at a time (100 state changes a second). */
typedef struct rapp {
    pthread_t th;
    at_loop_t *loop;
    at_event_t *ev;
    _Atomic int ready;
    int failed;
    bool stopping;
} rapp_t;

static int rapp_wait(void *arg, void **result)
{
    return at_event_wait(arg);
}

static int rapp_ticker(void *arg, void **result)
{
    rapp_t *a = arg;
    while (!a->stopping) {
        int rc = at_sleep(10);
        if (rc != 0)
            return rc;
    }
    while (at_loop_tasks(a->loop, NULL, NULL) > 1) /* the others end first */
        at_yield();
    at_loop_stop(a->loop);
    return 0;
}

static void rapp_stop(at_loop_t *loop, void *arg)
{
    rapp_t *a = arg;
    a->stopping = true;
    at_event_set(a->ev);
}

static void *rapp_main(void *arg)
{
    rapp_t *a = arg;
    if (at_loop_new(&a->loop, NULL) != 0 || at_event_new(a->loop, &a->ev) != 0) {
        a->failed = 1;
        atomic_store(&a->ready, 1);
        return NULL;
    }
    at_task_opts_t o = {.name = "conn"};
    for (int i = 0; i < NTASKS; i++)
        if (at_task_spawn(a->loop, rapp_wait, a->ev, &o, NULL) != 0)
            a->failed = 1;
    at_task_opts_t to = {.name = "ticker"};
    if (at_task_spawn(a->loop, rapp_ticker, a, &to, NULL) != 0)
        a->failed = 1;
    atomic_store(&a->ready, 1);
    at_loop_run(a->loop, AT_RUN_DEFAULT);
    at_event_free(a->ev);
    at_loop_close(a->loop, NULL);
    return NULL;
}

BENCH(export_cpu_100k_real_tasks, "% of a core",
      "exporter thread CPU: 100k real tasks (tasks provider), one client at 1 Hz (target <= 5)")
{
    if (real_socket(true) != 0)
        return -1;
    rapp_t *a = calloc(1, sizeof *a);
    pthread_create(&a->th, NULL, rapp_main, a);
    while (!atomic_load(&a->ready))
        usleep(1000);
    double res = -1;
    reader_t r;
    if (!a->failed && reader_start(&r, 1000) == 0) {
        uint64_t t0 = bench_now_ns();
        while (atomic_load(&r.bytes) < 2000000u && bench_now_ns() - t0 < 30000000000ull)
            usleep(10000); /* the 100k rows have arrived */
        uint64_t u = atomic_load(&r.updates);
        while (atomic_load(&r.updates) < u + 2 && bench_now_ns() - t0 < 30000000000ull)
            usleep(10000);
        pid_t tid = exporter_tid();
        int64_t c0 = tid_cpu_ns(tid);
        uint64_t w0 = bench_now_ns(), b0 = atomic_load(&r.bytes), u0 = atomic_load(&r.updates);
        sleep(5);
        int64_t c1 = tid_cpu_ns(tid);
        uint64_t w1 = bench_now_ns();
        uint64_t updates = atomic_load(&r.updates);
        fprintf(stderr,
                "  export (real tasks): snapshot %llu bytes; %llu updates, %llu bytes, "
                "%.2f ms exporter CPU in the window\n",
                (unsigned long long)b0, (unsigned long long)(updates - u0),
                (unsigned long long)(atomic_load(&r.bytes) - b0), (double)(c1 - c0) / 1e6);
        reader_stop(&r);
        if (tid != 0 && c0 >= 0 && c1 >= c0 && updates >= 3)
            res = 100.0 * (double)(c1 - c0) / (double)(w1 - w0);
    }
    at_call_soon_threadsafe(a->loop, rapp_stop, a, "stop", NULL);
    pthread_join(a->th, NULL);
    free(a);
    rmdir(g_dir);
    unsetenv("ASYNCTOP_SOCKET");
    return res;
}
