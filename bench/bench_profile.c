/* bench_profile.c: what profiling a stall costs (docs/exporter.md, "Profiling a stall"): one
 * sample of a spinning thread as the exporter takes it every interval (signal, the handler's
 * copy of registers and 32 KiB of stack, the CFI unwind, the key by function and the count),
 * and the part of it the sampled thread pays (the handler's copy). */
#include "bench.h"
#include "export_int.h"
#include "loopmon.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

static _Atomic int g_stop;
static _Atomic pid_t g_spin_tid;
static uintptr_t g_spin_lo, g_spin_hi;
static volatile uint64_t g_spin_sink;

__attribute__((noinline)) static void spin_leaf(void)
{
    while (!atomic_load_explicit(&g_stop, memory_order_relaxed))
        for (int i = 0; i < 1000; i++)
            g_spin_sink = g_spin_sink + 1;
}

__attribute__((noinline)) static void spin_mid(void)
{
    spin_leaf();
    g_spin_sink = g_spin_sink + 1;
}

static void *spinner(void *arg)
{
    (void)arg;
    pthread_attr_t at;
    void *addr;
    size_t size;
    pthread_getattr_np(pthread_self(), &at);
    pthread_attr_getstack(&at, &addr, &size);
    pthread_attr_destroy(&at);
    g_spin_lo = (uintptr_t)addr;
    g_spin_hi = (uintptr_t)addr + size;
    atomic_store(&g_spin_tid, (pid_t)syscall(SYS_gettid));
    spin_mid();
    return NULL;
}

#define SAMPLES 200

static int cmp_u64(const void *x, const void *y)
{
    uint64_t a = *(const uint64_t *)x, b = *(const uint64_t *)y;
    return (a > b) - (a < b);
}

BENCH(export_profile_sample_us, "us/sample",
      "exporter CPU per profile sample of a spinning thread: signal, CFI unwind, key, count")
{
    if (at__export_sample_install() != 0) {
        fprintf(stderr, "export_profile_sample_us: the sampling signal is taken\n");
        return -1;
    }
    agg_t a;
    if (at__agg_init(&a) != 0)
        return -1;
    agg_loop_t *l = calloc(1, sizeof *l);
    pthread_t th;
    atomic_store(&g_stop, 0);
    atomic_store(&g_spin_tid, 0);
    if (l == NULL || pthread_create(&th, NULL, spinner, NULL) != 0)
        return -1;
    while (atomic_load(&g_spin_tid) == 0)
        usleep(1000);
    /* The exporter thread's CPU time per sample (request, then the poll that finds it in:
     * the unwind, then the count), not the wait for the sampled thread to run the handler
     * (it sleeps meanwhile); the median of SAMPLES after 20 that warm the caches. */
    static uint64_t cost[SAMPLES];
    int n = 0;
    for (int i = 0; i < SAMPLES + 20; i++) {
        uint64_t c0 = bench_cpu_ns();
        if (at__export_sample_request(atomic_load(&g_spin_tid), (void *)g_spin_lo,
                                      (void *)g_spin_hi) != 0)
            break;
        uint64_t c1 = bench_cpu_ns(), cp = 0;
        at_export_stack_t st;
        int r;
        for (;;) {
            uint64_t c = bench_cpu_ns();
            r = at__export_sample_poll(bench_now_ns(), 1000000000u, &st);
            if (r != 0) {
                cp = bench_cpu_ns() - c;
                break;
            }
            usleep(20);
        }
        if (r < 0)
            break;
        uint64_t c2 = bench_cpu_ns();
        at__profile_add(&a, l, &st);
        uint64_t c3 = bench_cpu_ns();
        if (i >= 20)
            cost[n++] = (c1 - c0) + cp + (c3 - c2);
    }
    double us = -1;
    if (n == SAMPLES && l->prof.samples == SAMPLES + 20) {
        qsort(cost, n, sizeof cost[0], cmp_u64);
        us = (double)cost[n / 2] / 1000.0;
    } else {
        fprintf(stderr, "export_profile_sample_us: %d of %d samples\n", n, SAMPLES);
    }
    atomic_store(&g_stop, 1);
    pthread_join(th, NULL);
    free(l);
    at__agg_free(&a);
    return us;
}

/* What the handler does on the sampled thread besides the signal's delivery: a word-by-word
 * copy of up to 32 KiB of stack (snap_copy in export_sample.c) and a frame-pointer walk. */
BENCH(export_profile_handler_copy_us, "us/sample",
      "the sampled thread's part: the handler's 32 KiB stack copy (word by word)")
{
    enum { WORDS = 32 * 1024 / sizeof(uintptr_t) };
    static uintptr_t src[WORDS], dst[WORDS];
    for (size_t i = 0; i < WORDS; i++)
        src[i] = i;
    const int reps = 2000;
    uint64_t t0 = bench_cpu_ns();
    for (int r = 0; r < reps; r++) {
        const volatile uintptr_t *p = src;
        for (size_t i = 0; i < WORDS; i++)
            dst[i] = p[i];
        __asm__ volatile("" : : "r"(dst) : "memory");
    }
    return (double)(bench_cpu_ns() - t0) / reps / 1000.0;
}
