/* bench_loopmon.c: cost of the instrumentation layer, in thread CPU time: timing a callback
 * (begin/end, outside and inside a batch) in a uv callback chain against the same chain
 * without it, the clock, stack capture, and symbolisation cold and warm. */
#include "bench.h"
#include "loopmon.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- a ready-queue-like chain: each callback schedules the next ------------------------- */

#define BATCH 1024
typedef struct chain {
    void (*next)(struct chain *);
    uint64_t n, target;
    at__mon_t *mon;
    at__site_t *site;
    int instrumented;
} chain_t;

__attribute__((noinline)) static void chain_cb(chain_t *c)
{
    c->n++;
    c->next = chain_cb; /* "schedule the next" */
    __asm__ volatile("" ::: "memory");
}

/* One idle callback runs a batch of chained callbacks, as core's ready queue does. */
static void on_idle(uv_idle_t *h)
{
    chain_t *c = h->data;
    if (c->instrumented == 2) { /* the floor: one clock read per callback, nothing else */
        uint64_t sum = 0;
        for (int i = 0; i < BATCH; i++) {
            c->next(c);
            sum += at__now_ns();
        }
        __asm__ volatile("" ::"r"(sum));
    } else if (c->instrumented == 3) { /* as core's ready queue: one batch */
        at__mon_batch_begin(c->mon);
        for (int i = 0; i < BATCH; i++) {
            at__cb_t cb;
            at__cb_begin(c->mon, &cb, c->site, AT__CB_READY);
            c->next(c);
            at__cb_end(c->mon, &cb);
        }
        at__mon_batch_end(c->mon);
    } else if (c->instrumented) {
        for (int i = 0; i < BATCH; i++) {
            at__cb_t cb;
            at__cb_begin(c->mon, &cb, c->site, AT__CB_READY);
            c->next(c);
            at__cb_end(c->mon, &cb);
        }
    } else {
        for (int i = 0; i < BATCH; i++)
            c->next(c);
    }
    if (c->n >= c->target)
        uv_idle_stop(h);
}

/* ns per callback of one run, with or without begin/end (the monitor exists in both). */
static double chain_run(int instrumented, uint64_t target)
{
    uv_loop_t loop;
    uv_idle_t idle;
    chain_t c = {chain_cb, 0, target, NULL, NULL, instrumented};
    uv_loop_init(&loop);
    if (at__mon_create(&loop, &c.mon) != 0)
        return -1;
    c.site = at__mon_site(c.mon, (void *)chain_cb, NULL);
    uv_idle_init(&loop, &idle);
    idle.data = &c;
    uv_idle_start(&idle, on_idle);
    uint64_t t0 = bench_cpu_ns();
    uv_run(&loop, UV_RUN_DEFAULT);
    uint64_t t1 = bench_cpu_ns();
    uv_close((uv_handle_t *)&idle, NULL);
    at__mon_close(c.mon);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    return (double)(t1 - t0) / (double)c.n;
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

BENCH(loopmon_cb_overhead_ns, "ns/callback",
      "begin/end per callback: chain with minus chain without (median of 7 pairs, same run)")
{
    double d[7];
    for (int i = 0; i < 7; i++) {
        double base = chain_run(0, 2u << 20);
        double inst = chain_run(1, 2u << 20);
        d[i] = inst - base;
    }
    qsort(d, 7, sizeof *d, cmp_d);
    return d[3];
}

BENCH(loopmon_cb_overhead_batch_ns, "ns/callback",
      "the same inside at__mon_batch_begin/end, as core's ready queue runs callbacks")
{
    double d[7];
    for (int i = 0; i < 7; i++) {
        double base = chain_run(0, 2u << 20);
        double inst = chain_run(3, 2u << 20);
        d[i] = inst - base;
    }
    qsort(d, 7, sizeof *d, cmp_d);
    return d[3];
}

BENCH(loopmon_cb_clock_floor_ns, "ns/callback",
      "one at__now_ns() per callback: chain with it minus chain without (median of 7 pairs)")
{
    double d[7];
    for (int i = 0; i < 7; i++) {
        double base = chain_run(0, 2u << 20);
        double clk = chain_run(2, 2u << 20);
        d[i] = clk - base;
    }
    qsort(d, 7, sizeof *d, cmp_d);
    return d[3];
}

BENCH(loopmon_cb_chain_base_ns, "ns/callback", "the same chain without begin/end (baseline)")
{
    return chain_run(0, 2u << 20);
}

BENCH(loopmon_cb_chain_timed_ns, "ns/callback", "the same chain with begin/end")
{
    return chain_run(1, 2u << 20);
}

/* ---- raw idle chain: one callback per loop iteration, with and without a monitor -------- */

static uint64_t idle_n, idle_target;
static at__mon_t *idle_mon;
static at__site_t *idle_site;

static void on_idle_plain(uv_idle_t *h)
{
    if (++idle_n >= idle_target)
        uv_idle_stop(h);
}

static void on_idle_timed(uv_idle_t *h)
{
    at__cb_t cb;
    at__cb_begin(idle_mon, &cb, idle_site, AT__CB_OTHER);
    if (++idle_n >= idle_target)
        uv_idle_stop(h);
    at__cb_end(idle_mon, &cb);
}

static double idle_run(int monitored)
{
    uv_loop_t loop;
    uv_idle_t idle;
    uv_loop_init(&loop);
    idle_mon = NULL;
    if (monitored) {
        if (at__mon_create(&loop, &idle_mon) != 0)
            return -1;
        idle_site = at__mon_site(idle_mon, (void *)on_idle_timed, NULL);
    }
    idle_n = 0;
    idle_target = 300000;
    uv_idle_init(&loop, &idle);
    uv_idle_start(&idle, monitored ? on_idle_timed : on_idle_plain);
    uint64_t t0 = bench_cpu_ns();
    uv_run(&loop, UV_RUN_DEFAULT);
    uint64_t t1 = bench_cpu_ns();
    uv_close((uv_handle_t *)&idle, NULL);
    if (idle_mon)
        at__mon_close(idle_mon);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    return (double)(t1 - t0) / (double)idle_n;
}

BENCH(loopmon_idle_iter_ratio, "ratio",
      "uv idle chain, monitor + begin/end vs raw libuv, per loop iteration (median of 5 pairs)")
{
    double r[5];
    for (int i = 0; i < 5; i++) {
        double base = idle_run(0);
        double mon = idle_run(1);
        r[i] = mon / base;
    }
    qsort(r, 5, sizeof *r, cmp_d);
    return r[2];
}

BENCH(loopmon_idle_iter_raw_ns, "ns/iteration", "raw libuv idle chain (baseline)")
{
    return idle_run(0);
}

/* ---- clock ------------------------------------------------------------------------------- */

BENCH(loopmon_now_ns, "ns/call", "at__now_ns()")
{
    uint64_t s = 0, t0 = bench_cpu_ns();
    for (int i = 0; i < 4000000; i++)
        s += at__now_ns();
    uint64_t t1 = bench_cpu_ns();
    __asm__ volatile("" ::"r"(s));
    return (double)(t1 - t0) / 4e6;
}

/* ---- stacks ------------------------------------------------------------------------------ */

static void *frames[16];
static volatile int depth_sink;

__attribute__((noinline)) static int recurse(int d, int reps)
{
    if (d > 0) {
        int r = recurse(d - 1, reps);
        depth_sink = d;
        return r;
    }
    int n = 0;
    for (int i = 0; i < reps; i++)
        n = at__stack_capture(frames, 16, 0);
    return n;
}

BENCH(loopmon_backtrace16_ns, "ns/capture", "at__stack_capture of 16 frames")
{
    at__stack_bounds_init();
    if (recurse(20, 1) != 16)
        return -1;
    uint64_t t0 = bench_cpu_ns();
    recurse(20, 1000000);
    uint64_t t1 = bench_cpu_ns();
    return (double)(t1 - t0) / 1e6;
}

BENCH(loopmon_symbolise_cold_us, "us/address",
      "at__sym_lookup of 16 new return addresses, first use of libdw included")
{
    at__sym_reset();
    recurse(20, 1);
    at__sym_t s;
    uint64_t t0 = bench_cpu_ns();
    for (int i = 0; i < 16; i++)
        at__sym_lookup(frames[i], true, &s);
    uint64_t t1 = bench_cpu_ns();
    return (double)(t1 - t0) / 16 / 1e3;
}

BENCH(loopmon_symbolise_warm_ns, "ns/address", "at__sym_lookup of a cached address")
{
    at__sym_t s;
    recurse(20, 1);
    for (int i = 0; i < 16; i++)
        at__sym_lookup(frames[i], true, &s);
    uint64_t t0 = bench_cpu_ns();
    for (int i = 0; i < 100000; i++)
        at__sym_lookup(frames[i & 15], true, &s);
    uint64_t t1 = bench_cpu_ns();
    return (double)(t1 - t0) / 1e5;
}

/* ---- CFI unwinding (unwind.c) ------------------------------------------------------------ */

#include "../tests/runtime/nofp-chain.h"

#define UNW_SNAP (64 * 1024)
static struct {
    at__unwind_regs_t regs;
    uintptr_t lo, hi;
    char bytes[UNW_SNAP];
} unw_snap;

__attribute__((no_sanitize("address"))) static void unw_copy(char *to, uintptr_t from, size_t n)
{
    const volatile char *p = (const volatile char *)from;
    for (size_t i = 0; i < n; i++)
        to[i] = p[i];
}

/* At the bottom of a 20-frame chain built -O2 -fomit-frame-pointer: registers and the top
 * 64 KiB of the stack copied, as the sampler does. */
__attribute__((noinline)) static void unw_take(void *arg)
{
    (void)arg;
    ucontext_t uc;
    getcontext(&uc);
    at__unwind_regs_from_ucontext(&uc, &unw_snap.regs);
    at__stack_bounds_init();
    uintptr_t sp = unw_snap.regs.r[AT__UNWIND_NREGS == 17 ? 7 : 31];
    unw_snap.lo = sp;
    unw_snap.hi = at__stack_bounds.hi - sp > UNW_SNAP ? sp + UNW_SNAP : at__stack_bounds.hi;
    unw_copy(unw_snap.bytes, sp, unw_snap.hi - sp);
}

static double unwind20(int reps)
{
    nofp_recurse(20, unw_take, NULL);
    uintptr_t pcs[32];
    uint64_t t0 = bench_cpu_ns();
    for (int i = 0; i < reps; i++)
        if (at__unwind(&unw_snap.regs, unw_snap.lo, unw_snap.hi, unw_snap.bytes, pcs, 32, true,
                       NULL) < 22)
            return -1;
    uint64_t t1 = bench_cpu_ns();
    return (double)(t1 - t0) / reps / 1e3;
}

BENCH(loopmon_unwind20_cold_us, "us/unwind",
      "at__unwind of a 20-frame -O2 no-frame-pointer stack snapshot, first use (modules and "
      "their CFI read)")
{
    at__unwind_reset();
    return unwind20(1);
}

BENCH(loopmon_unwind20_warm_us, "us/unwind",
      "at__unwind of the same 20-frame snapshot again (libdw's caches warm)")
{
    unwind20(1);
    return unwind20(2000);
}
