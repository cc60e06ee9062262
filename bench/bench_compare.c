/* bench_compare.c: the instrumentation-cost rows of `make bench` — the 1M call-soon chain of
 * bench_loop.c with the exporter off, on, on with debug mode, and on with debug mode and a
 * client attached, each as a ratio to "off", from interleaved runs in one process. */
#include "bench.h"

#include <asynctop.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "at_wire.h"

/* 8M callbacks (~0.2 s): long enough for the exporter's 100 ms updates to reach the client
 * while the chain runs. */
#define LONG_CHAIN 8000000L
#define ROUNDS     5

/* ---- a client: connects to the exporter, subscribes at 100 ms, reads and discards ------- */

typedef struct client {
    pthread_t th;
    int fd;
    _Atomic int stop;
    _Atomic uint64_t bytes;
} client_t;

static void *client_main(void *arg)
{
    client_t *c = arg;
    at_wire_buf_t b;
    at_wire_buf_init(&b);
    at_wire_subscribe_t s = {.interval_ms = 100};
    at_wire_encode_subscribe(&b, &s);
    (void)!send(c->fd, b.data, b.len, MSG_NOSIGNAL);
    at_wire_buf_free(&b);
    static __thread char buf[1 << 16];
    while (!atomic_load(&c->stop)) {
        struct pollfd p = {.fd = c->fd, .events = POLLIN};
        if (poll(&p, 1, 50) != 1)
            continue;
        ssize_t n = recv(c->fd, buf, sizeof buf, 0);
        if (n <= 0)
            break;
        atomic_fetch_add(&c->bytes, (uint64_t)n);
    }
    return NULL;
}

static int client_start(client_t *c, const char *path)
{
    memset(c, 0, sizeof *c);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
    c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (c->fd < 0 || connect(c->fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        int e = errno;
        if (c->fd >= 0)
            close(c->fd);
        return -e;
    }
    return -pthread_create(&c->th, NULL, client_main, c);
}

static void client_stop(client_t *c)
{
    atomic_store(&c->stop, 1);
    pthread_join(c->th, NULL);
    close(c->fd);
}

/* ---- the chain in each mode ------------------------------------------------------------ */

typedef enum mode { EXPORT_OFF, EXPORT_ON, EXPORT_DEBUG, EXPORT_DEBUG_CLIENT, NMODES } mode_t_;

typedef struct chain {
    long left;
    client_t *client;
    char path[108];
    int client_rc;
} chain_t;

static void chain_cb(at_loop_t *loop, void *arg)
{
    chain_t *c = arg;
    if (--c->left > 0)
        at_call_soon(loop, chain_cb, c, "chain", NULL);
}

/* The client connects once the loop (and so the exporter) exists. */
static void attach_cb(at_loop_t *loop, void *arg)
{
    chain_t *c = arg;
    c->client_rc = client_start(c->client, c->path);
    if (c->client_rc == 0) {
        uint64_t t0 = bench_now_ns(); /* wait for the hello and first update (blocking: setup) */
        while (atomic_load(&c->client->bytes) == 0 && bench_now_ns() - t0 < 2000000000u)
            usleep(1000);
        if (atomic_load(&c->client->bytes) == 0)
            c->client_rc = -ETIMEDOUT;
    }
    at_call_soon(loop, chain_cb, c, "chain", NULL);
}

/* ns of loop-thread CPU per callback of the long chain in mode m; -1 on failure. */
static double chain_mode_ns(mode_t_ m)
{
    char dir[64] = "/tmp/at-bench-compare-XXXXXX";
    chain_t c = {.left = LONG_CHAIN};
    client_t cl;
    if (m == EXPORT_OFF) {
        setenv("ASYNCTOP_SOCKET", "off", 1);
    } else {
        if (!mkdtemp(dir))
            return -1;
        snprintf(c.path, sizeof c.path, "%s/s.sock", dir);
        setenv("ASYNCTOP_SOCKET", c.path, 1);
    }
    /* asynctop-bench holds two copies of the exporter (bench_export.c links its own), and the
     * second to install the blocked-loop sampling signal warns about the first's handler:
     * an artefact of this program, kept out of the output. */
    at_log_level_t level = at_get_log_level();
    at_set_log_level(AT_LOG_ERROR);
    at_loop_t *loop;
    int rc = at_loop_new(&loop, NULL);
    at_set_log_level(level);
    unsetenv("ASYNCTOP_SOCKET");
    if (rc < 0)
        return -1;
    at_set_debug(m >= EXPORT_DEBUG);
    if (m == EXPORT_DEBUG_CLIENT) {
        c.client = &cl;
        at_call_soon(loop, attach_cb, &c, "attach", NULL);
        at_loop_run(loop, AT_RUN_NOWAIT); /* attach; the chain's first callback is queued */
    } else {
        at_call_soon(loop, chain_cb, &c, "chain", NULL);
    }
    uint64_t t0 = bench_cpu_ns();
    at_loop_run(loop, AT_RUN_DEFAULT);
    uint64_t t1 = bench_cpu_ns();
    at_set_debug(false);
    uint64_t got = 0;
    if (m == EXPORT_DEBUG_CLIENT && c.client_rc == 0) {
        got = atomic_load(&cl.bytes);
        client_stop(&cl);
    }
    int closed = at_loop_close(loop, NULL);
    if (m != EXPORT_OFF) {
        unlink(c.path);
        rmdir(dir);
    }
    if (closed < 0 || c.left != 0 || c.client_rc != 0) {
        fprintf(stderr, "bench_compare: chain in mode %d failed (client: %s)\n", (int)m,
                strerror(-c.client_rc));
        return -1;
    }
    if (getenv("BENCH_VERBOSE") && m == EXPORT_DEBUG_CLIENT)
        fprintf(stderr, "  client received %llu bytes\n", (unsigned long long)got);
    return (double)(t1 - t0) / (double)LONG_CHAIN;
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Medians of ROUNDS interleaved runs of "off" and mode m; returns median(m) / median(off). */
static double ratio_to_off(mode_t_ m)
{
    double off[ROUNDS], on[ROUNDS];
    for (int i = 0; i < ROUNDS; i++) {
        off[i] = chain_mode_ns(EXPORT_OFF);
        on[i] = chain_mode_ns(m);
        if (off[i] < 0 || on[i] < 0)
            return -1;
    }
    qsort(off, ROUNDS, sizeof *off, cmp_d);
    qsort(on, ROUNDS, sizeof *on, cmp_d);
    if (getenv("BENCH_VERBOSE"))
        fprintf(stderr, "  mode %d: off %.2f, on %.2f ns/callback\n", (int)m, off[ROUNDS / 2],
                on[ROUNDS / 2]);
    return on[ROUNDS / 2] / off[ROUNDS / 2];
}

BENCH(instr_chain_export_off_ns, "ns/callback",
      "8M call-soon chain, timed, exporter off (ASYNCTOP_SOCKET=off): the base of the ratios")
{
    return chain_mode_ns(EXPORT_OFF);
}

BENCH(instr_export_on_ratio, "x", "same chain, exporter on (no client) / exporter off")
{
    return ratio_to_off(EXPORT_ON);
}

BENCH(instr_export_debug_ratio, "x", "same chain, exporter on + debug mode / exporter off")
{
    return ratio_to_off(EXPORT_DEBUG);
}

BENCH(instr_export_debug_client_ratio, "x",
      "same chain, exporter on + debug mode + a client subscribed at 100 ms / exporter off")
{
    return ratio_to_off(EXPORT_DEBUG_CLIENT);
}

/* One repetition each: every one is already a median of ROUNDS interleaved pairs. */
__attribute__((constructor(200))) static void compare_reps(void)
{
    bench_def_instr_export_on_ratio.reps = 1;
    bench_def_instr_export_debug_ratio.reps = 1;
    bench_def_instr_export_debug_client_ratio.reps = 1;
    bench_def_instr_chain_export_off_ns.reps = 3;
}
