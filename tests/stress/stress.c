/* stress.c: the load test behind `make stress` — one instrumented loop running call-soon chains
 * as fast as it can, 100,000 tasks changing (through an exporter task provider), bursts of
 * warnings and a steady trickle of slow callbacks, first with no client (the baseline), then
 * with 64 clients attached, some of which read slowly. It checks that the program stays correct,
 * that memory stays under a stated bound, that every event the loop produced was either
 * delivered to each verifying client or counted in the `dropped` it was sent, and prints the
 * throughput with clients as a ratio of the baseline measured in the same run.
 * Usage: stress [LOADED_SECONDS [BASELINE_SECONDS]]   (defaults 60 and 20) */
#include "core.h"
#include "export.h"
#include "export_int.h"
#include "loopmon.h"

#include <asynctop.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "at_wire.h"

#define NTASKS           100000
#define NCHAINS          64  /* call-soon chains in flight */
#define CHANGES_PER_10MS 200 /* task rows changed every 10 ms: 20,000 task events a second */
#define WARN_BURST       600 /* warnings posted at once every 500 ms (the ring holds 256) */
#define NCLIENTS         64
#define NVERIFY_FAST     4          /* decode everything, 100 ms interval */
#define NVERIFY_SLOWIV   4          /* decode everything, 1 s interval */
#define NSLOW_READERS    8          /* read 16 KiB a second */
#define OUT_MAX          (8u << 20) /* per-client output bound given to the exporter */

static int fail;
#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            printf("stress: FAILED: " __VA_ARGS__);                                                \
            putchar('\n');                                                                         \
            fail = 1;                                                                              \
        }                                                                                          \
    } while (0)

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static long rss_kb(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kb = -1;
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, "VmRSS:", 6) == 0)
            kb = strtol(line + 6, NULL, 10);
    if (f)
        fclose(f);
    return kb;
}

/* ---- the program: loop thread state ------------------------------------------------------- */

static at_loop_t *g_loop;
static at_export_attach_t *g_att;
static at_export_task_row_t *g_rows;
static size_t g_next_row;
static uint64_t g_chain_runs[NCHAINS];
static _Atomic uint64_t g_callbacks; /* all chain callbacks, read by the main thread */
static _Atomic int g_phase;          /* 0 run, 1 stop producing events, 2 quit */
static uv_timer_t g_churn, g_warn, g_slow;
static uint64_t g_warn_posted;

static void provider_resync(void *ctx, at_export_resync_sink_t *sink)
{
    for (size_t i = 0; i < NTASKS; i++)
        at__export_resync_add(sink, &g_rows[i]);
}

static const at_export_provider_t g_provider = {
    .name = "stress",
    .caps = AT_EXPORT_CAP_TASKS,
    .resync = provider_resync,
};

static void task_entry(void)
{
}

static void chain_cb(at_loop_t *loop, void *arg)
{
    uintptr_t i = (uintptr_t)arg;
    g_chain_runs[i]++;
    atomic_fetch_add_explicit(&g_callbacks, 1, memory_order_relaxed);
    if (atomic_load_explicit(&g_phase, memory_order_relaxed) < 1)
        at_call_soon(loop, chain_cb, arg, "chain", NULL);
}

static void churn_cb(uv_timer_t *t)
{
    if (atomic_load(&g_phase) != 0)
        return;
    for (int k = 0; k < CHANGES_PER_10MS; k++) {
        at_export_task_row_t *r = &g_rows[g_next_row++ % NTASKS];
        r->steps++;
        r->busy_ns += 1000;
        r->state =
            r->state == AT_EXPORT_TASK_WAITING ? AT_EXPORT_TASK_READY : AT_EXPORT_TASK_WAITING;
        at__export_task_post(g_att, AT_EXPORT_TASK_CHANGED, r);
    }
}

static void warn_cb(uv_timer_t *t)
{
    if (atomic_load(&g_phase) != 0)
        return;
    for (int k = 0; k < WARN_BURST; k++) {
        at__event_t ev;
        at__event_init(&ev, AT__EV_WARNING);
        snprintf(ev.code, sizeof ev.code, "stress");
        snprintf(ev.text, sizeof ev.text, "stress warning %llu",
                 (unsigned long long)g_warn_posted++);
        at__mon_post(g_loop->mon, &ev);
    }
}

/* One callback over the slow threshold every 100 ms: spins 1 ms against a 0.5 ms threshold. */
static void slow_cb(at_loop_t *loop, void *arg)
{
    uint64_t end = now_ns() + 1000000u;
    while (now_ns() < end) {
    }
}

static void slow_timer_cb(uv_timer_t *t)
{
    if (atomic_load(&g_phase) == 0)
        at_call_soon(g_loop, slow_cb, NULL, "stress_slow", NULL);
}

static void *loop_main(void *arg)
{
    if (at_loop_new(&g_loop, NULL) != 0) {
        fprintf(stderr, "stress: at_loop_new failed\n");
        exit(2);
    }
    uv_loop_t *uv = at_loop_uv(g_loop);
    g_att = at__export_attach(uv, &g_provider);
    for (size_t i = 0; i < NTASKS; i++) {
        at_export_task_row_t *t = &g_rows[i];
        t->id = i + 1;
        t->created_ns = at__now_ns();
        t->wait_since_ns = t->created_ns;
        t->state = AT_EXPORT_TASK_WAITING;
        t->wait_kind = 3;
        t->entry_fn = (void *)task_entry;
        snprintf(t->name, sizeof t->name, "task-%zu", i + 1);
        at__export_task_post(g_att, AT_EXPORT_TASK_ADDED, t);
    }
    for (uintptr_t i = 0; i < NCHAINS; i++)
        at_call_soon(g_loop, chain_cb, (void *)i, "chain", NULL);
    uv_timer_init(uv, &g_churn);
    uv_timer_start(&g_churn, churn_cb, 10, 10);
    uv_timer_init(uv, &g_warn);
    uv_timer_start(&g_warn, warn_cb, 500, 500);
    uv_timer_init(uv, &g_slow);
    uv_timer_start(&g_slow, slow_timer_cb, 100, 100);
    at__slow_threshold_set_ns(500000);
    at_loop_run(g_loop, AT_RUN_DEFAULT);
    at__export_detach(g_att);
    at_loop_close(g_loop, NULL);
    return NULL;
}

/* Restarts the chains and the event sources after the checks (call_soon_threadsafe). */
static void restart_cb(at_loop_t *loop, void *arg)
{
    atomic_store(&g_phase, 0);
    for (uintptr_t i = 0; i < NCHAINS; i++)
        at_call_soon(loop, chain_cb, (void *)i, "chain", NULL);
}

/* Stops the run from the loop thread (call_soon_threadsafe). */
static void stop_cb(at_loop_t *loop, void *arg)
{
    uv_close((uv_handle_t *)&g_churn, NULL);
    uv_close((uv_handle_t *)&g_warn, NULL);
    uv_close((uv_handle_t *)&g_slow, NULL);
    at_loop_stop(loop);
}

/* ---- clients (threads of this process, speaking the protocol over the socket) ------------ */

typedef enum { CL_COUNT, CL_VERIFY, CL_SLOW } cl_kind_t;

typedef struct client {
    pthread_t th;
    cl_kind_t kind;
    uint32_t interval_ms;
    int fd;
    _Atomic int stop;
    /* results */
    uint64_t frames, bytes, updates, fulls;
    uint64_t seen_warn, seen_slow; /* distinct events delivered */
    uint64_t first_seq, last_seq;  /* event seqs (one sequence for slow and exception events) */
    uint64_t last_warn_seq, last_slow_seq;
    uint64_t dropped_warn, dropped_slow, dropped_task, lagged; /* from the latest update */
    size_t ntasks;                                             /* tasks in its view */
    int decode_errors;
    int closed_by_server;
} client_t;

static char g_path[108];

static int connect_to(const char *path)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static void note_seq(client_t *c, uint64_t seq)
{
    if (c->first_seq == 0 || seq < c->first_seq)
        c->first_seq = seq;
    if (seq > c->last_seq)
        c->last_seq = seq;
}

/* The view of a verifying client: task ids present (a bitmap over 1..NTASKS). */
static void apply_update(client_t *c, const at_wire_update_t *u, unsigned char *present)
{
    c->updates++;
    if (u->full) {
        c->fulls++;
        memset(present, 0, NTASKS + 1);
        c->ntasks = 0;
    }
    for (uint32_t i = 0; i < u->n_tasks_new; i++) {
        uint64_t id = u->tasks_new[i].id;
        if (id >= 1 && id <= NTASKS && !present[id]) {
            present[id] = 1;
            c->ntasks++;
        }
    }
    for (uint32_t i = 0; i < u->n_tasks_gone; i++) {
        uint64_t id = u->tasks_gone[i];
        if (id >= 1 && id <= NTASKS && present[id]) {
            present[id] = 0;
            c->ntasks--;
        }
    }
    /* events: seqs are per loop, shared by slow and exception events, and increase */
    for (uint32_t i = 0; i < u->n_slow; i++)
        if (u->slow[i].seq > c->last_slow_seq) {
            c->last_slow_seq = u->slow[i].seq;
            c->seen_slow++;
            note_seq(c, u->slow[i].seq);
        }
    for (uint32_t i = 0; i < u->n_exc; i++)
        if (u->exc[i].seq > c->last_warn_seq) {
            c->last_warn_seq = u->exc[i].seq;
            c->seen_warn++;
            note_seq(c, u->exc[i].seq);
        }
    for (uint32_t i = 0; i < u->n_dropped; i++)
        if (!strcmp(u->dropped[i].name, "warning"))
            c->dropped_warn = u->dropped[i].n;
        else if (!strcmp(u->dropped[i].name, "slow"))
            c->dropped_slow = u->dropped[i].n;
        else if (!strcmp(u->dropped[i].name, "task"))
            c->dropped_task = u->dropped[i].n;
        else if (!strcmp(u->dropped[i].name, "lagged"))
            c->lagged = u->dropped[i].n;
}

static void *client_main(void *arg)
{
    client_t *c = arg;
    at_wire_buf_t b;
    at_wire_buf_init(&b);
    at_wire_subscribe_t s = {.interval_ms = c->interval_ms};
    at_wire_encode_subscribe(&b, &s);
    (void)!send(c->fd, b.data, b.len, MSG_NOSIGNAL);
    at_wire_buf_free(&b);
    unsigned char *present = c->kind == CL_VERIFY ? calloc(NTASKS + 1, 1) : NULL;
    at_wire_reader_t rd;
    at_wire_reader_init(&rd, AT_WIRE_MAX_FRAME_S2C);
    size_t cap = 1 << 16;
    uint8_t *buf = malloc(cap);
    uint8_t hdr[4];
    size_t have = 0, need = 4;
    int in_body = 0;
    while (!atomic_load(&c->stop)) {
        struct pollfd pfd = {.fd = c->fd, .events = POLLIN};
        if (poll(&pfd, 1, 100) != 1)
            continue;
        if (c->kind == CL_SLOW) {
            /* a slow reader: 16 KiB a second */
            uint8_t small[1600];
            ssize_t n = recv(c->fd, small, sizeof small, 0);
            if (n <= 0) {
                c->closed_by_server = 1;
                break;
            }
            c->bytes += (uint64_t)n;
            usleep(100000);
            continue;
        }
        if (c->kind == CL_COUNT) {
            ssize_t n = recv(c->fd, buf, cap, 0);
            if (n <= 0) {
                c->closed_by_server = 1;
                break;
            }
            c->bytes += (uint64_t)n;
            /* frame counting without decoding */
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
                    in_body = 1;
                } else {
                    c->frames++;
                    in_body = 0;
                    need = 4;
                }
                have = 0;
            }
            continue;
        }
        ssize_t n = recv(c->fd, buf, cap, 0);
        if (n <= 0) {
            c->closed_by_server = 1;
            break;
        }
        c->bytes += (uint64_t)n;
        if (at_wire_reader_push(&rd, buf, (size_t)n) != 0) {
            c->decode_errors++;
            break;
        }
        const uint8_t *body;
        size_t blen;
        int r;
        while ((r = at_wire_reader_next(&rd, &body, &blen)) == 1) {
            c->frames++;
            at_wire_msg_t m;
            at_wire_err_t err;
            if (at_wire_decode(body, blen, &at_wire_limits_s2c, &m, &err) != 0) {
                c->decode_errors++;
                continue;
            }
            if (m.type == AT_WIRE_UPDATE)
                apply_update(c, &m.u.update, present);
            at_wire_msg_free(&m);
        }
        if (r < 0) {
            c->decode_errors++;
            break;
        }
    }
    at_wire_reader_free(&rd);
    free(buf);
    free(present);
    return NULL;
}

/* ---- main: baseline, loaded, checks ---------------------------------------------------------- */

static double run_window(double seconds, long *rss_max)
{
    uint64_t c0 = atomic_load(&g_callbacks), t0 = now_ns();
    uint64_t end = t0 + (uint64_t)(seconds * 1e9);
    while (now_ns() < end) {
        usleep(250000);
        long r = rss_kb();
        if (r > *rss_max)
            *rss_max = r;
    }
    return (double)(atomic_load(&g_callbacks) - c0) / ((double)(now_ns() - t0) / 1e9);
}

int main(int argc, char **argv)
{
    double loaded_s = argc > 1 ? atof(argv[1]) : 60, base_s = argc > 2 ? atof(argv[2]) : 20;
    char dir[] = "/tmp/at-stress-XXXXXX";
    if (!mkdtemp(dir))
        return 2;
    snprintf(g_path, sizeof g_path, "%s/stress.sock", dir);
    /* the exporter with a stated per-client bound; at_loop_new takes a reference on it */
    at_export_config_t cfg = {.socket_path = g_path,
                              .program = "stress",
                              .client_out_max = OUT_MAX,
                              .max_clients = NCLIENTS + 8};
    if (at__export_start(&cfg) != 0) {
        fprintf(stderr, "stress: the exporter did not start\n");
        return 2;
    }
    g_rows = calloc(NTASKS, sizeof *g_rows);
    pthread_t loop_th;
    pthread_create(&loop_th, NULL, loop_main, NULL);
    while (atomic_load(&g_callbacks) == 0)
        usleep(10000);
    usleep(1000000); /* warm-up */

    long rss_base_max = 0;
    double base1 = run_window(base_s / 2, &rss_base_max);
    long rss_before_clients = rss_kb();
    printf("stress: baseline (no client) %.0f callbacks/s over %.0f s, RSS %ld KiB\n", base1,
           base_s / 2, rss_before_clients);

    static client_t cl[NCLIENTS];
    for (int i = 0; i < NCLIENTS; i++) {
        client_t *c = &cl[i];
        c->kind = i < NVERIFY_FAST + NVERIFY_SLOWIV                   ? CL_VERIFY
                  : i < NVERIFY_FAST + NVERIFY_SLOWIV + NSLOW_READERS ? CL_SLOW
                                                                      : CL_COUNT;
        c->interval_ms = i < NVERIFY_FAST ? 100 : 1000;
        c->fd = connect_to(g_path);
        if (c->fd < 0) {
            fprintf(stderr, "stress: client %d cannot connect: %s\n", i, strerror(errno));
            return 2;
        }
        pthread_create(&c->th, NULL, client_main, c);
    }
    long rss_loaded_max = 0, rss_first_half = 0;
    double loaded1 = run_window(loaded_s / 2, &rss_first_half);
    rss_loaded_max = rss_first_half;
    double loaded2 = run_window(loaded_s / 2, &rss_loaded_max);
    double loaded = (loaded1 + loaded2) / 2;
    printf("stress: with %d clients %.0f callbacks/s over %.0f s\n", NCLIENTS, loaded, loaded_s);

    /* stop producing events; let the exporter drain and every verifying client catch up */
    atomic_store(&g_phase, 1);
    usleep(3000000);
    for (int i = 0; i < NCLIENTS; i++)
        atomic_store(&cl[i].stop, 1);
    for (int i = 0; i < NCLIENTS; i++) {
        pthread_join(cl[i].th, NULL);
        close(cl[i].fd);
    }

    /* ---- checks ---- */
    uint64_t warn_p, warn_d, slow_p, slow_d;
    at__mon_event_counts(g_loop->mon, AT__EV_WARNING, &warn_p, &warn_d);
    at__mon_event_counts(g_loop->mon, AT__EV_SLOW, &slow_p, &slow_d);
    uint64_t task_p = atomic_load(&g_att->produced), task_d = atomic_load(&g_att->dropped);
    uint64_t task_taken = atomic_load(&g_att->head);
    printf("stress: events produced: %llu warnings (%llu dropped at the ring), %llu slow (%llu "
           "dropped), %llu task events (%llu dropped, %llu taken)\n",
           (unsigned long long)warn_p, (unsigned long long)warn_d, (unsigned long long)slow_p,
           (unsigned long long)slow_d, (unsigned long long)task_p, (unsigned long long)task_d,
           (unsigned long long)task_taken);
    CHECK(warn_p == g_warn_posted, "warnings produced %llu != posted %llu",
          (unsigned long long)warn_p, (unsigned long long)g_warn_posted);
    CHECK(task_p == task_taken + task_d, "task events: produced %llu != taken %llu + dropped %llu",
          (unsigned long long)task_p, (unsigned long long)task_taken, (unsigned long long)task_d);
    uint64_t chain_sum = 0;
    for (int i = 0; i < NCHAINS; i++)
        chain_sum += g_chain_runs[i];
    for (int i = 0; i < NCLIENTS; i++) {
        client_t *c = &cl[i];
        if (c->kind == CL_VERIFY) {
            printf("stress: client %2d (%4u ms): %llu updates (%llu full), %zu tasks, warnings "
                   "%llu delivered, %llu dropped (of %llu), slow %llu delivered, %llu dropped (of "
                   "%llu)\n",
                   i, c->interval_ms, (unsigned long long)c->updates, (unsigned long long)c->fulls,
                   c->ntasks, (unsigned long long)c->seen_warn, (unsigned long long)c->dropped_warn,
                   (unsigned long long)warn_p, (unsigned long long)c->seen_slow,
                   (unsigned long long)c->dropped_slow, (unsigned long long)slow_p);
            CHECK(c->decode_errors == 0, "client %d: %d decode errors", i, c->decode_errors);
            CHECK(!c->closed_by_server, "verifying client %d was disconnected", i);
            CHECK(c->ntasks == NTASKS, "client %d sees %zu tasks, not %d", i, c->ntasks, NTASKS);
            /* every event the loop produced got a seq in the stream or is counted as dropped */
            CHECK(c->last_seq + c->dropped_warn + c->dropped_slow == warn_p + slow_p,
                  "client %d: last seq %llu + dropped %llu != produced %llu", i,
                  (unsigned long long)c->last_seq,
                  (unsigned long long)(c->dropped_warn + c->dropped_slow),
                  (unsigned long long)(warn_p + slow_p));
            /* and of the seqs from its first on, it got each or was told it lagged past it */
            uint64_t span = c->last_seq - c->first_seq + 1;
            uint64_t got = c->seen_warn + c->seen_slow;
            printf("stress: client %2d: seqs %llu..%llu: %llu delivered + %llu lagged (told) = "
                   "%llu\n",
                   i, (unsigned long long)c->first_seq, (unsigned long long)c->last_seq,
                   (unsigned long long)got, (unsigned long long)c->lagged,
                   (unsigned long long)(got + c->lagged));
            CHECK(got + c->lagged == span, "client %d: %llu seqs, %llu delivered + %llu lagged", i,
                  (unsigned long long)span, (unsigned long long)got, (unsigned long long)c->lagged);
            CHECK(c->dropped_task == task_d, "client %d: task drops %llu reported, %llu counted", i,
                  (unsigned long long)c->dropped_task, (unsigned long long)task_d);
        } else if (c->kind == CL_COUNT) {
            CHECK(c->frames > 2, "client %d got %llu frames", i, (unsigned long long)c->frames);
            CHECK(!c->closed_by_server, "reading client %d was disconnected", i);
        }
    }
    int slow_cut = 0;
    for (int i = 0; i < NCLIENTS; i++)
        slow_cut += cl[i].kind == CL_SLOW && cl[i].closed_by_server;
    printf("stress: slow readers disconnected by the exporter: %d of %d\n", slow_cut,
           NSLOW_READERS);
    /* The bound docs/security.md states: what the process held before clients, plus each
     * client's output bound and 192 KiB (its input buffer, requests and record), plus 64 MiB
     * for the snapshot, the encoding buffer and the clients' own threads and decode buffers
     * (they run in this process). */
    long bound = rss_before_clients + (long)NCLIENTS * (OUT_MAX / 1024 + 192) + 64 * 1024;
    printf("stress: RSS max %ld KiB with clients (first half %ld KiB); bound %ld KiB\n",
           rss_loaded_max, rss_first_half, bound);
    CHECK(rss_loaded_max <= bound, "RSS %ld KiB over the bound %ld KiB", rss_loaded_max, bound);
    printf("stress: %llu chain callbacks in all\n", (unsigned long long)chain_sum);
    CHECK(chain_sum == atomic_load(&g_callbacks), "chain counts disagree");

    /* the baseline again, after the clients left: the ratio is against both halves */
    at_call_soon_threadsafe(g_loop, restart_cb, NULL, "restart", NULL);
    usleep(1000000);
    double base2 = run_window(base_s / 2, &rss_base_max);
    double base = (base1 + base2) / 2;
    printf("stress: baseline again %.0f callbacks/s; with clients %.3f of the mean baseline "
           "(%.0f), %.3f of the one before, %.3f of the one after\n",
           base2, loaded / base, base, loaded / base1, loaded / base2);
    atomic_store(&g_phase, 2);
    at_call_soon_threadsafe(g_loop, stop_cb, NULL, "stop", NULL);
    pthread_join(loop_th, NULL);
    at__export_stop();
    free(g_rows);
    rmdir(dir);
    printf("stress: %s\n", fail ? "FAILED" : "ok");
    return fail;
}
