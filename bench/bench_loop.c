/* bench_loop.c: the runtime core's benchmarks — the 1M call-soon chain (debug off/on) against a raw
 * libuv idle chain, in one program. */
#include "bench.h"

#include <asynctop.h>
#include <stdio.h>
#include <stdlib.h>

double bench_chain_ns(bool timed, bool debug, long n);

#define CHAIN_N 1000000L

typedef struct chain {
    long left;
} chain_t;

static void chain_cb(at_loop_t *loop, void *arg)
{
    chain_t *c = arg;
    if (--c->left > 0)
        at_call_soon(loop, chain_cb, c, "chain", NULL);
}

/* ns per callback of a chain of n call-soon callbacks, each scheduling the next. `timed`
 * false runs the loop with ASYNCTOP_TIMING=off (callbacks not timed: the baseline of the
 * instrumentation's cost). The exporter is off (ASYNCTOP_SOCKET=off) unless the caller set
 * ASYNCTOP_SOCKET itself (see bench_compare.c). */
double bench_chain_ns(bool timed, bool debug, long n)
{
    if (!getenv("ASYNCTOP_SOCKET"))
        setenv("ASYNCTOP_SOCKET", "off", 1);
    setenv("ASYNCTOP_TIMING", timed ? "on" : "off", 1);
    at_loop_t *loop;
    int r = at_loop_new(&loop, NULL);
    unsetenv("ASYNCTOP_TIMING");
    if (r < 0)
        return -1;
    at_set_debug(debug);
    chain_t c = {n};
    uint64_t t0 = bench_cpu_ns();
    at_call_soon(loop, chain_cb, &c, "chain", NULL);
    at_loop_run(loop, AT_RUN_DEFAULT);
    uint64_t t1 = bench_cpu_ns();
    at_set_debug(false);
    at_close_report_t rep;
    if (at_loop_close(loop, &rep) < 0 || c.left != 0) {
        fprintf(stderr, "bench_loop: chain did not finish cleanly\n");
        return -1;
    }
    return (double)(t1 - t0) / (double)n;
}

static double chain_ns(bool debug)
{
    return bench_chain_ns(true, debug, CHAIN_N);
}

BENCH(call_soon_chain_ns, "ns/callback", "1M at_call_soon chain, each callback schedules the next")
{
    return chain_ns(false);
}

BENCH(call_soon_chain_debug_ns, "ns/callback",
      "the same chain with debug mode on (creation stacks)")
{
    return chain_ns(true);
}

BENCH(call_soon_chain_untimed_ns, "ns/callback",
      "the same chain with ASYNCTOP_TIMING=off (no instrumentation: the baseline)")
{
    return bench_chain_ns(false, false, CHAIN_N);
}

/* Same-run difference: timed minus untimed, measured back to back in each repetition. */
BENCH(call_soon_instrumentation_ns, "ns/callback",
      "instrumentation cost: timed chain - untimed chain, same repetition (target <= 10)")
{
    double base = bench_chain_ns(false, false, CHAIN_N);
    double timed = bench_chain_ns(true, false, CHAIN_N);
    if (getenv("BENCH_VERBOSE"))
        fprintf(stderr, "untimed %.2f timed %.2f\n", base, timed);
    return base > 0 && timed > 0 ? timed - base : -1;
}

typedef struct idle_chain {
    uv_idle_t idle;
    long left;
} idle_chain_t;

static void idle_cb(uv_idle_t *h)
{
    idle_chain_t *c = (idle_chain_t *)h;
    if (--c->left == 0)
        uv_idle_stop(h);
}

BENCH(libuv_idle_chain_ns, "ns/iteration",
      "raw libuv: an idle handle counting to 1M (one per loop iteration)")
{
    uv_loop_t uv;
    if (uv_loop_init(&uv) < 0)
        return -1;
    idle_chain_t c = {.left = CHAIN_N};
    uv_idle_init(&uv, &c.idle);
    uint64_t t0 = bench_cpu_ns();
    uv_idle_start(&c.idle, idle_cb);
    uv_run(&uv, UV_RUN_DEFAULT);
    uint64_t t1 = bench_cpu_ns();
    uv_close((uv_handle_t *)&c.idle, NULL);
    uv_run(&uv, UV_RUN_DEFAULT);
    uv_loop_close(&uv);
    return (double)(t1 - t0) / CHAIN_N;
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Same-run ratio of medians: 7 debug-off and 7 debug-on runs, interleaved (off, on, off, ...)
 * so that load from other processes on the machine hits both alike. */
BENCH(call_soon_chain_debug_ratio, "x",
      "debug on / off: ratio of the medians of 7 interleaved runs each (target <= 1.25)")
{
    enum { RUNS = 7 };
    double off[RUNS], on[RUNS];
    for (int i = 0; i < RUNS; i++) {
        off[i] = chain_ns(false);
        on[i] = chain_ns(true);
        if (off[i] < 0 || on[i] < 0)
            return -1;
    }
    qsort(off, RUNS, sizeof *off, cmp_d);
    qsort(on, RUNS, sizeof *on, cmp_d);
    if (getenv("BENCH_VERBOSE"))
        fprintf(stderr, "off %.2f on %.2f\n", off[RUNS / 2], on[RUNS / 2]);
    return on[RUNS / 2] / off[RUNS / 2];
}

__attribute__((constructor(200))) static void debug_ratio_once(void)
{
    bench_def_call_soon_chain_debug_ratio.reps = 1;
}

BENCH(libuv_idle_over_call_soon_ratio, "x",
      "libuv idle chain time / call-soon chain time (target >= 1)")
{
    double ours = chain_ns(false);
    double uv = bench_def_libuv_idle_chain_ns.run();
    return ours > 0 && uv > 0 ? uv / ours : -1;
}
