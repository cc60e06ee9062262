/* bench.h: the benchmark harness shared by every bench_*.c file. */
#ifndef ASYNCTOP_BENCH_H
#define ASYNCTOP_BENCH_H

#include <stddef.h>
#include <stdint.h>

/* One benchmark. run() performs one measured repetition and returns its value
 * in `unit` (for example "ns/callback", "bytes/row", "req/s"); the harness
 * calls it `reps` times and reports the median. A run() that cannot measure
 * (a missing peer, a failed syscall) prints why to stderr and returns a
 * negative value, which makes the whole program exit non-zero. */
typedef struct bench {
    const char *name; /* stable key in --json output, e.g. "call_soon_chain_ns" */
    const char *unit;
    const char *what; /* one line for the table */
    int reps;         /* repetitions; 0 means the default (5) */
    double (*run)(void);
    struct bench *next;
} bench_t;

void bench_register(bench_t *b);

/* BENCH(key, unit, what) { ... return value; }  registers at start-up. */
#define BENCH(key, unit_, what_)                                                                   \
    static double bench_run_##key(void);                                                           \
    static bench_t bench_def_##key = {#key, unit_, what_, 0, bench_run_##key, NULL};               \
    __attribute__((constructor)) static void bench_ctor_##key(void)                                \
    {                                                                                              \
        bench_register(&bench_def_##key);                                                          \
    }                                                                                              \
    static double bench_run_##key(void)

/* Monotonic clock in nanoseconds. */
uint64_t bench_now_ns(void);

/* CPU time of the calling thread in nanoseconds (CLOCK_THREAD_CPUTIME_ID): what single-thread
 * benchmarks measure, so that other processes on a shared machine do not count. */
uint64_t bench_cpu_ns(void);

/* Resident set size of this process in bytes (from /proc/self/statm). */
size_t bench_rss_bytes(void);

#endif
